//! The on-disk format of segment files (sans-IO).
//!
//! A segment file is a 32-byte header followed by records, appended and never rewritten:
//!
//! ```text
//! file header:  "VIGILSEG" | u32 format version (1) | u32 lane | u64 segment id | u64 created_ms
//! record:       u32 body length | u32 CRC-32 of body | body
//! body (v1):    u8 version (1) | u8 kind (1 = fragment) | u8 flags (bit 0: encrypted) | u8 0
//!               u64 stream | u64 fragment number | u64 producer_ts_ms | u64 server_ts_ms
//!               u32 duration_ms | u64 track header id | u32 key generation | [12] nonce
//!               u32 payload length (plaintext) | payload (ciphertext + 16-byte tag if encrypted)
//! ```
//!
//! All integers are little-endian. The 68-byte plaintext part of the body is the AEAD's
//! associated data, so it cannot be altered without failing authentication, and it carries
//! everything needed to rebuild the index from the segments alone. The CRC finds torn and
//! partial writes without needing any key. A record is at most [`MAX_RECORD_LEN`] bytes.
//!
//! # Kind 2: a batch of log entries (`crate::logs`)
//!
//! Same frame, same body version, same 68-byte header at the same offsets, each field given a
//! meaning of its own ([`LogBatchHeader`]):
//!
//! ```text
//! body (v1, kind 2): u8 version (1) | u8 kind (2) | u8 flags (bit 0: encrypted) | u8 0
//!               u64 log group id           (where a fragment has its stream)
//!               u64 batch number           (fragment number: the same store-wide sequence)
//!               u32 log number | u32 0     (producer_ts_ms; the high half must be 0)
//!               u64 arrival_ms             (server_ts_ms)
//!               u32 entry count            (duration_ms; 1 to 65,536)
//!               u64 0                      (track header id: must be 0)
//!               u32 key generation | [12] nonce | u32 payload length (plaintext)
//!               payload (ciphertext + 16-byte tag if encrypted)
//! payload:      per entry: u16 key length | u32 data length | key | data
//! ```
//!
//! Reusing the header keeps one scanner, one checksum and one AEAD binding for both kinds,
//! and a header field that a batch does not use must be zero, so nothing can hide in it. The
//! entries' layout belongs to body version 1: changing it means a new record version.

use crate::crypto::TAG_LEN;

/// Segment file magic.
pub const SEGMENT_MAGIC: &[u8; 8] = b"VIGILSEG";
/// Segment file format version this build writes and reads.
pub const SEGMENT_VERSION: u32 = 1;
/// Length of the segment file header.
pub const SEGMENT_HEADER_LEN: u64 = 32;
/// Record body format version.
pub const RECORD_VERSION: u8 = 1;
/// Body format version of a fragment whose payload is stored in chunks ([`crate::chunks`]).
pub const CHUNKED_RECORD_VERSION: u8 = 2;
/// Kind: a fragment.
pub const KIND_FRAGMENT: u8 = 1;
/// Kind: a batch of log entries.
pub const KIND_LOG_BATCH: u8 = 2;
/// Flag: the payload is encrypted.
pub const FLAG_ENCRYPTED: u8 = 1;
/// Length of the record frame (length + CRC).
pub const FRAME_LEN: usize = 8;
/// Length of the plaintext body header.
pub const BODY_HEADER_LEN: usize = 68;
/// Largest record accepted (a fragment is at most 50 MB in KVS; this leaves room).
pub const MAX_RECORD_LEN: u32 = 64 << 20;

/// A segment file's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Retention lane.
    pub lane: u32,
    /// Segment id (also its file name).
    pub id: u64,
    /// When it was created.
    pub created_ms: u64,
}

impl SegmentHeader {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN as usize] {
        let mut out = [0u8; SEGMENT_HEADER_LEN as usize];
        let mut w = Writer(&mut out[..], 0);
        w.put(SEGMENT_MAGIC);
        w.put(&SEGMENT_VERSION.to_le_bytes());
        w.put(&self.lane.to_le_bytes());
        w.put(&self.id.to_le_bytes());
        w.put(&self.created_ms.to_le_bytes());
        out
    }

    /// Decodes a header; `Err` says what is wrong.
    pub fn decode(b: &[u8]) -> Result<Self, String> {
        let mut r = Reader(b);
        if r.take(8) != Some(SEGMENT_MAGIC.as_slice()) {
            return Err("not a Vigil segment file (bad magic)".into());
        }
        let version = r.u32().ok_or("short header")?;
        if version != SEGMENT_VERSION {
            return Err(format!(
                "segment format version {version}; this build reads {SEGMENT_VERSION}"
            ));
        }
        Ok(Self {
            lane: r.u32().ok_or("short header")?,
            id: r.u64().ok_or("short header")?,
            created_ms: r.u64().ok_or("short header")?,
        })
    }
}

/// The plaintext header of a fragment record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// Flags ([`FLAG_ENCRYPTED`]).
    pub flags: u8,
    /// Stream id.
    pub stream: u64,
    /// Fragment number.
    pub number: u64,
    /// Producer timestamp.
    pub producer_ts_ms: u64,
    /// Server timestamp.
    pub server_ts_ms: u64,
    /// Duration.
    pub duration_ms: u32,
    /// Track header the fragment was ingested under.
    pub header_id: u64,
    /// Data key generation (0 when not encrypted).
    pub key_gen: u32,
    /// AEAD nonce.
    pub nonce: [u8; 12],
    /// Plaintext payload length.
    pub payload_len: u32,
    /// 0 for a body of version 1 (the payload sealed whole); otherwise the body is version 2
    /// and its payload is cut into chunks of `1 << chunk_shift` bytes, each checked on its own
    /// (see [`crate::chunks`]).
    pub chunk_shift: u8,
}

impl RecordHeader {
    /// Encodes the body header.
    pub fn encode(&self) -> [u8; BODY_HEADER_LEN] {
        let mut out = [0u8; BODY_HEADER_LEN];
        let mut w = Writer(&mut out[..], 0);
        if self.chunk_shift == 0 {
            w.put(&[RECORD_VERSION, KIND_FRAGMENT, self.flags, 0]);
        } else {
            w.put(&[
                CHUNKED_RECORD_VERSION,
                KIND_FRAGMENT,
                self.flags,
                self.chunk_shift,
            ]);
        }
        w.put(&self.stream.to_le_bytes());
        w.put(&self.number.to_le_bytes());
        w.put(&self.producer_ts_ms.to_le_bytes());
        w.put(&self.server_ts_ms.to_le_bytes());
        w.put(&self.duration_ms.to_le_bytes());
        w.put(&self.header_id.to_le_bytes());
        w.put(&self.key_gen.to_le_bytes());
        w.put(&self.nonce);
        w.put(&self.payload_len.to_le_bytes());
        out
    }

    /// Decodes a body header.
    pub fn decode(b: &[u8]) -> Result<Self, String> {
        let mut r = Reader(b);
        let fixed = r.take(4).ok_or("short record")?;
        let (flags, chunk_shift) = match fixed {
            [RECORD_VERSION, KIND_FRAGMENT, flags, 0] => (*flags, 0),
            [CHUNKED_RECORD_VERSION, KIND_FRAGMENT, flags, shift]
                if crate::chunks::SHIFTS.contains(shift) =>
            {
                (*flags, *shift)
            }
            [CHUNKED_RECORD_VERSION, KIND_FRAGMENT, _, shift] => {
                return Err(format!("chunked record with chunks of 2^{shift} bytes"));
            }
            [v, ..] if *v != RECORD_VERSION && *v != CHUNKED_RECORD_VERSION => {
                return Err(format!(
                    "record format version {v}; this build reads {RECORD_VERSION} and \
                     {CHUNKED_RECORD_VERSION}"
                ));
            }
            _ => return Err("unknown record kind".into()),
        };
        Ok(Self {
            flags,
            stream: r.u64().ok_or("short record")?,
            number: r.u64().ok_or("short record")?,
            producer_ts_ms: r.u64().ok_or("short record")?,
            server_ts_ms: r.u64().ok_or("short record")?,
            duration_ms: r.u32().ok_or("short record")?,
            header_id: r.u64().ok_or("short record")?,
            key_gen: r.u32().ok_or("short record")?,
            nonce: r
                .take(12)
                .and_then(|n| n.try_into().ok())
                .ok_or("short record")?,
            payload_len: r.u32().ok_or("short record")?,
            chunk_shift,
        })
    }

    /// Length of the payload as stored (with the tag, or each chunk's check, after it).
    pub fn stored_payload_len(&self) -> usize {
        if let Some(layout) = crate::chunks::Layout::of(self) {
            return layout.stored_len();
        }
        let tag = if self.flags & FLAG_ENCRYPTED != 0 {
            TAG_LEN
        } else {
            0
        };
        self.payload_len as usize + tag
    }
}

/// Seals `buf[from..]` in place (AES-GCM) and appends the tag, with `aad` as associated data.
pub type Seal<'a> = &'a dyn Fn(&[u8], &mut Vec<u8>, usize);

/// Builds a complete record (frame + body) around a payload, sealing it with `seal` when given.
/// `seal(aad, buf, from)` must encrypt `buf[from..]` in place and append the tag.
pub fn encode_record<'a>(
    header: &RecordHeader,
    payload: impl IntoIterator<Item = &'a [u8]>,
    seal: Option<Seal<'_>>,
) -> Vec<u8> {
    let h = header.encode();
    let mut buf =
        Vec::with_capacity(FRAME_LEN + BODY_HEADER_LEN + header.payload_len as usize + TAG_LEN);
    buf.extend_from_slice(&[0u8; FRAME_LEN]);
    buf.extend_from_slice(&h);
    for part in payload {
        buf.extend_from_slice(part);
    }
    finish_record(&h, buf, seal)
}

/// Completes a record whose buffer holds room for the frame, the encoded body header `h` and
/// the plaintext payload: seals the payload (when `seal` is given) and writes the frame.
fn finish_record(h: &[u8; BODY_HEADER_LEN], mut buf: Vec<u8>, seal: Option<Seal<'_>>) -> Vec<u8> {
    if let Some(seal) = seal {
        seal(h, &mut buf, FRAME_LEN + BODY_HEADER_LEN);
    }
    let body_len = u32::try_from(buf.len() - FRAME_LEN).unwrap_or(u32::MAX);
    let crc = crc32fast::hash(buf.get(FRAME_LEN..).unwrap_or_default());
    if let Some((len, rest)) = buf.split_first_chunk_mut::<4>() {
        *len = body_len.to_le_bytes();
        if let Some((c, _)) = rest.split_first_chunk_mut::<4>() {
            *c = crc.to_le_bytes();
        }
    }
    buf
}

/// What a record frame says about the bytes that follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Body length.
    pub body_len: u32,
    /// Expected CRC-32 of the body.
    pub crc: u32,
}

impl Frame {
    /// Decodes a frame; `None` if `b` is shorter than [`FRAME_LEN`].
    pub fn decode(b: &[u8]) -> Option<Self> {
        let mut r = Reader(b);
        Some(Self {
            body_len: r.u32()?,
            crc: r.u32()?,
        })
    }

    /// Whether the length is plausible.
    pub fn is_sane(&self) -> bool {
        (BODY_HEADER_LEN as u32..=MAX_RECORD_LEN).contains(&self.body_len)
    }
}

/// Checks a body against its frame and decodes its header.
pub fn check_body(frame: &Frame, body: &[u8]) -> Result<RecordHeader, String> {
    if crc32fast::hash(body) != frame.crc {
        return Err("checksum mismatch".into());
    }
    let h = RecordHeader::decode(body)?;
    if h.stored_payload_len() + BODY_HEADER_LEN != body.len() {
        return Err("payload length disagrees with record length".into());
    }
    Ok(h)
}

/// The plaintext header of a log batch record (kind 2; layout in the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogBatchHeader {
    /// Flags ([`FLAG_ENCRYPTED`]).
    pub flags: u8,
    /// Log group id.
    pub group: u64,
    /// Batch number.
    pub batch: u64,
    /// Log number in the group.
    pub log: u32,
    /// Arrival time (ms since the epoch).
    pub arrival_ms: u64,
    /// Entries in the batch (1 to 65,536).
    pub entries: u32,
    /// Data key generation (0 when not encrypted).
    pub key_gen: u32,
    /// AEAD nonce.
    pub nonce: [u8; 12],
    /// Plaintext payload length.
    pub payload_len: u32,
}

/// Most entries a batch record may hold (an entry's index in its batch is 16 bits).
pub const MAX_BATCH_ENTRIES: u32 = 1 << 16;

impl LogBatchHeader {
    /// Encodes the body header.
    pub fn encode(&self) -> [u8; BODY_HEADER_LEN] {
        let mut out = [0u8; BODY_HEADER_LEN];
        let mut w = Writer(&mut out[..], 0);
        w.put(&[RECORD_VERSION, KIND_LOG_BATCH, self.flags, 0]);
        w.put(&self.group.to_le_bytes());
        w.put(&self.batch.to_le_bytes());
        w.put(&u64::from(self.log).to_le_bytes());
        w.put(&self.arrival_ms.to_le_bytes());
        w.put(&self.entries.to_le_bytes());
        w.put(&0u64.to_le_bytes());
        w.put(&self.key_gen.to_le_bytes());
        w.put(&self.nonce);
        w.put(&self.payload_len.to_le_bytes());
        out
    }

    /// Decodes a body header of kind 2.
    pub fn decode(b: &[u8]) -> Result<Self, String> {
        let mut r = Reader(b);
        let short = "short record";
        let flags = match r.take(4).ok_or(short)? {
            [RECORD_VERSION, KIND_LOG_BATCH, flags, 0] => *flags,
            [v, ..] if *v != RECORD_VERSION => {
                return Err(format!(
                    "record format version {v}; this build reads {RECORD_VERSION}"
                ));
            }
            _ => return Err("not a log batch record".into()),
        };
        let group = r.u64().ok_or(short)?;
        let batch = r.u64().ok_or(short)?;
        let log = u32::try_from(r.u64().ok_or(short)?)
            .map_err(|_| "a log batch record's log number is out of range")?;
        let arrival_ms = r.u64().ok_or(short)?;
        let entries = r.u32().ok_or(short)?;
        if r.u64().ok_or(short)? != 0 {
            return Err("a log batch record has a reserved field set".into());
        }
        if !(1..=MAX_BATCH_ENTRIES).contains(&entries) {
            return Err(format!(
                "a log batch record says it holds {entries} entries"
            ));
        }
        Ok(Self {
            flags,
            group,
            batch,
            log,
            arrival_ms,
            entries,
            key_gen: r.u32().ok_or(short)?,
            nonce: r.take(12).and_then(|n| n.try_into().ok()).ok_or(short)?,
            payload_len: r.u32().ok_or(short)?,
        })
    }

    /// Length of the payload as stored (with the tag when encrypted).
    pub fn stored_payload_len(&self) -> usize {
        stored_len(self.flags, self.payload_len)
    }
}

fn stored_len(flags: u8, payload_len: u32) -> usize {
    let tag = if flags & FLAG_ENCRYPTED != 0 {
        TAG_LEN
    } else {
        0
    };
    payload_len as usize + tag
}

/// The header of a record of any kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordHead {
    /// A fragment (kind 1).
    Fragment(RecordHeader),
    /// A batch of log entries (kind 2).
    LogBatch(LogBatchHeader),
}

impl RecordHead {
    /// Decodes a body header of either kind.
    pub fn decode(b: &[u8]) -> Result<Self, String> {
        match b.get(..2) {
            Some([RECORD_VERSION, KIND_LOG_BATCH]) => LogBatchHeader::decode(b).map(Self::LogBatch),
            _ => RecordHeader::decode(b).map(Self::Fragment),
        }
    }

    /// Encodes the body header.
    pub fn encode(&self) -> [u8; BODY_HEADER_LEN] {
        match self {
            Self::Fragment(h) => h.encode(),
            Self::LogBatch(h) => h.encode(),
        }
    }

    /// Length of the payload as stored.
    pub fn stored_payload_len(&self) -> usize {
        match self {
            Self::Fragment(h) => h.stored_payload_len(),
            Self::LogBatch(h) => h.stored_payload_len(),
        }
    }

    /// The fragment or batch number (both come from the store-wide sequence).
    pub fn number(&self) -> u64 {
        match self {
            Self::Fragment(h) => h.number,
            Self::LogBatch(h) => h.batch,
        }
    }

    /// When the record's data arrived: a fragment's server timestamp, a batch's arrival.
    pub fn arrival_ms(&self) -> u64 {
        match self {
            Self::Fragment(h) => h.server_ts_ms,
            Self::LogBatch(h) => h.arrival_ms,
        }
    }
}

/// Checks a body of any kind against its frame and decodes its header.
pub fn check_record(frame: &Frame, body: &[u8]) -> Result<RecordHead, String> {
    if crc32fast::hash(body) != frame.crc {
        return Err("checksum mismatch".into());
    }
    let h = RecordHead::decode(body)?;
    if h.stored_payload_len() + BODY_HEADER_LEN != body.len() {
        return Err("payload length disagrees with record length".into());
    }
    Ok(h)
}

/// A buffer to build a log batch record in: room for the frame and the body header, then
/// the entries ([`encode_entry`]); [`finish_log_record`] completes it once the header is
/// known.
pub fn log_record_buffer(payload_capacity: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(FRAME_LEN + BODY_HEADER_LEN + payload_capacity + TAG_LEN);
    buf.resize(FRAME_LEN + BODY_HEADER_LEN, 0);
    buf
}

/// Appends one entry's encoding to a payload.
pub fn encode_entry(buf: &mut Vec<u8>, key: &[u8], data: &[u8]) {
    buf.extend_from_slice(&u16::try_from(key.len()).unwrap_or(u16::MAX).to_le_bytes());
    buf.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_le_bytes());
    buf.extend_from_slice(key);
    buf.extend_from_slice(data);
}

/// Bytes an entry takes in a payload.
pub fn entry_len(key: &[u8], data: &[u8]) -> usize {
    6 + key.len() + data.len()
}

/// Completes a record built in a [`log_record_buffer`]: writes the header (whose
/// `payload_len` must be the length of the entries after it), seals the payload with `seal`
/// when given, and writes the frame.
pub fn finish_log_record(
    header: &LogBatchHeader,
    mut buf: Vec<u8>,
    seal: Option<Seal<'_>>,
) -> Vec<u8> {
    let h = header.encode();
    if let Some(dst) = buf.get_mut(FRAME_LEN..FRAME_LEN + BODY_HEADER_LEN) {
        dst.copy_from_slice(&h);
    }
    finish_record(&h, buf, seal)
}

/// Splits a batch's plaintext payload into its `count` entries (key, data), as slices of
/// `payload`. `Err` says what is wrong: a length running past the end, bytes left over, or
/// another number of entries.
pub fn decode_entries(
    payload: &bytes::Bytes,
    count: u32,
) -> Result<Vec<(bytes::Bytes, bytes::Bytes)>, String> {
    let mut out = Vec::with_capacity(usize::try_from(count).unwrap_or(0).min(1 << 16));
    let mut at = 0usize;
    while at < payload.len() {
        let rest = payload.get(at..).unwrap_or_default();
        let mut r = Reader(rest);
        let bad = || format!("entry {} of the batch is cut off", out.len());
        let key_len = r
            .take(2)
            .and_then(|b| b.try_into().ok())
            .map(u16::from_le_bytes)
            .ok_or_else(bad)?;
        let data_len = r.u32().ok_or_else(bad)?;
        let key_at = at + 6;
        let data_at = key_at + usize::from(key_len);
        let end = data_at
            .checked_add(usize::try_from(data_len).map_err(|_| bad())?)
            .filter(|&e| e <= payload.len())
            .ok_or_else(bad)?;
        out.push((payload.slice(key_at..data_at), payload.slice(data_at..end)));
        at = end;
    }
    if out.len() as u64 != u64::from(count) {
        return Err(format!(
            "the batch holds {} entries, its header says {count}",
            out.len()
        ));
    }
    Ok(out)
}

struct Writer<'a>(&'a mut [u8], usize);

impl Writer<'_> {
    fn put(&mut self, b: &[u8]) {
        if let Some(dst) = self.0.get_mut(self.1..self.1 + b.len()) {
            dst.copy_from_slice(b);
        }
        self.1 += b.len();
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;
    use proptest::prelude::*;

    fn header(len: u32) -> RecordHeader {
        RecordHeader {
            flags: 0,
            stream: 3,
            number: 99,
            producer_ts_ms: 1_700_000_000_123,
            server_ts_ms: 1_700_000_000_456,
            duration_ms: 2000,
            header_id: 42,
            key_gen: 0,
            nonce: [5; 12],
            payload_len: len,
            chunk_shift: 0,
        }
    }

    #[test]
    fn segment_header_round_trip() {
        let h = SegmentHeader {
            lane: 2,
            id: 77,
            created_ms: 123,
        };
        assert_eq!(SegmentHeader::decode(&h.encode()), Ok(h));
        let mut bad = h.encode();
        bad[8] = 2;
        assert!(
            SegmentHeader::decode(&bad)
                .unwrap_err()
                .contains("version 2")
        );
        assert!(SegmentHeader::decode(b"VIGILSEG").is_err());
    }

    fn batch_header() -> LogBatchHeader {
        LogBatchHeader {
            flags: FLAG_ENCRYPTED,
            group: 7,
            batch: 1234,
            log: 3,
            arrival_ms: 1_767_225_600_000,
            entries: 2,
            key_gen: 1,
            nonce: [9; 12],
            payload_len: 40,
        }
    }

    #[test]
    fn log_batch_header_layout_and_checks() {
        let h = batch_header();
        let enc = h.encode();
        // The documented offsets: kind, group, batch, log, arrival, count, reserved.
        assert_eq!(
            enc[..4],
            [RECORD_VERSION, KIND_LOG_BATCH, FLAG_ENCRYPTED, 0]
        );
        assert_eq!(enc[4..12], 7u64.to_le_bytes());
        assert_eq!(enc[12..20], 1234u64.to_le_bytes());
        assert_eq!(enc[20..28], 3u64.to_le_bytes());
        assert_eq!(enc[28..36], 1_767_225_600_000u64.to_le_bytes());
        assert_eq!(enc[36..40], 2u32.to_le_bytes());
        assert_eq!(enc[40..48], [0; 8]);
        assert_eq!(LogBatchHeader::decode(&enc), Ok(h));
        assert_eq!(RecordHead::decode(&enc), Ok(RecordHead::LogBatch(h)));
        assert_eq!(RecordHead::LogBatch(h).encode(), enc);
        assert_eq!(RecordHead::LogBatch(h).stored_payload_len(), 40 + TAG_LEN);
        assert_eq!(RecordHead::LogBatch(h).number(), 1234);
        assert!(RecordHeader::decode(&enc).is_err(), "not a fragment");
        let frag = header(5);
        assert_eq!(
            RecordHead::decode(&frag.encode()),
            Ok(RecordHead::Fragment(frag))
        );
        assert!(
            LogBatchHeader::decode(&frag.encode()).is_err(),
            "not a batch"
        );
        let with = |at: usize, v: u8| {
            let mut b = enc;
            b[at] = v;
            LogBatchHeader::decode(&b)
        };
        assert!(with(24, 1).unwrap_err().contains("log number"));
        assert!(with(44, 1).unwrap_err().contains("reserved"));
        assert!(with(3, 1).is_err());
        assert!(with(0, 2).unwrap_err().contains("version 2"));
        let mut none = h;
        none.entries = 0;
        assert!(LogBatchHeader::decode(&none.encode()).is_err());
        none.entries = MAX_BATCH_ENTRIES + 1;
        assert!(LogBatchHeader::decode(&none.encode()).is_err());
        none.entries = MAX_BATCH_ENTRIES;
        assert!(LogBatchHeader::decode(&none.encode()).is_ok());
        for n in 0..BODY_HEADER_LEN {
            assert!(RecordHead::decode(&enc[..n]).is_err());
        }
        // An unknown kind is refused.
        assert!(with(1, 3).is_err());
        let mut unknown = enc;
        unknown[1] = 3;
        assert!(RecordHead::decode(&unknown).is_err());
    }

    #[test]
    fn sealed_log_batch_binds_its_header() {
        let key = crate::crypto::AeadKey::new(&[3; 32]);
        let mut buf = log_record_buffer(0);
        encode_entry(&mut buf, b"key-1", b"secret data");
        encode_entry(&mut buf, b"", b"");
        let mut h = batch_header();
        h.payload_len = (buf.len() - FRAME_LEN - BODY_HEADER_LEN) as u32;
        let seal =
            |aad: &[u8], buf: &mut Vec<u8>, from: usize| key.seal_tail(h.nonce, aad, buf, from);
        let rec = finish_log_record(&h, buf, Some(&seal));
        assert!(!rec.windows(11).any(|w| w == b"secret data"));
        let frame = Frame::decode(&rec).unwrap();
        let RecordHead::LogBatch(got) = check_record(&frame, &rec[FRAME_LEN..]).unwrap() else {
            panic!("a batch")
        };
        assert_eq!(got, h);
        let mut payload = rec[FRAME_LEN + BODY_HEADER_LEN..].to_vec();
        let aad = &rec[FRAME_LEN..FRAME_LEN + BODY_HEADER_LEN];
        let n = key.open(h.nonce, aad, &mut payload.clone()).unwrap();
        assert_eq!(n, h.payload_len as usize);
        // Another batch number in the associated data: refused.
        let mut other = h;
        other.batch += 1;
        assert!(key.open(h.nonce, &other.encode(), &mut payload).is_none());
    }

    proptest! {
        #[test]
        fn record_round_trip(payload in proptest::collection::vec(any::<u8>(), 0..2000), number in any::<u64>()) {
            let mut h = header(payload.len() as u32);
            h.number = number;
            let rec = encode_record(&h, [payload.as_slice()], None);
            let frame = Frame::decode(&rec).unwrap();
            prop_assert!(frame.is_sane());
            let body = &rec[FRAME_LEN..];
            prop_assert_eq!(frame.body_len as usize, body.len());
            prop_assert_eq!(check_body(&frame, body), Ok(h));
            prop_assert_eq!(&body[BODY_HEADER_LEN..], &payload[..]);
        }

        #[test]
        fn any_bit_flip_is_detected(payload in proptest::collection::vec(any::<u8>(), 1..300), bit in any::<prop::sample::Index>()) {
            let rec = encode_record(&header(payload.len() as u32), [payload.as_slice()], None);
            let mut bad = rec.clone();
            let i = bit.index(bad.len() * 8);
            bad[i / 8] ^= 1 << (i % 8);
            let ok = Frame::decode(&bad).and_then(|f| {
                let body = bad.get(FRAME_LEN..FRAME_LEN + f.body_len as usize)?;
                check_body(&f, body).ok()
            });
            prop_assert!(ok.is_none());
        }

        #[test]
        fn log_batch_record_round_trip(
            entries in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..40), proptest::collection::vec(any::<u8>(), 0..500)),
                1..20,
            ),
            group in any::<u64>(), batch in any::<u64>(), log in any::<u32>(), arrival in any::<u64>(),
            key_gen in any::<u32>(), nonce in any::<[u8; 12]>(),
        ) {
            let mut buf = log_record_buffer(0);
            for (k, d) in &entries {
                encode_entry(&mut buf, k, d);
            }
            let payload_len = (buf.len() - FRAME_LEN - BODY_HEADER_LEN) as u32;
            prop_assert_eq!(
                payload_len as usize,
                entries.iter().map(|(k, d)| entry_len(k, d)).sum::<usize>()
            );
            let h = LogBatchHeader {
                flags: 0, group, batch, log, arrival_ms: arrival,
                entries: entries.len() as u32, key_gen, nonce, payload_len,
            };
            let rec = finish_log_record(&h, buf, None);
            let frame = Frame::decode(&rec).unwrap();
            prop_assert!(frame.is_sane());
            let body = &rec[FRAME_LEN..];
            prop_assert_eq!(check_record(&frame, body), Ok(RecordHead::LogBatch(h)));
            // The fragment-only check refuses it rather than misreading it.
            prop_assert!(check_body(&frame, body).is_err());
            let payload = bytes::Bytes::copy_from_slice(&body[BODY_HEADER_LEN..]);
            let got = decode_entries(&payload, h.entries).unwrap();
            prop_assert_eq!(got.len(), entries.len());
            for ((k, d), (gk, gd)) in entries.iter().zip(&got) {
                prop_assert_eq!(&gk[..], &k[..]);
                prop_assert_eq!(&gd[..], &d[..]);
            }
            // Another count, or any cut, is an error, never a panic or a wrong split.
            prop_assert!(decode_entries(&payload, h.entries + 1).is_err());
            for n in 0..payload.len() {
                let cut = payload.slice(..n);
                prop_assert!(decode_entries(&cut, h.entries).is_err());
            }
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = SegmentHeader::decode(&bytes);
            let _ = RecordHeader::decode(&bytes);
            let _ = RecordHead::decode(&bytes);
            let _ = decode_entries(&bytes::Bytes::copy_from_slice(&bytes), 3);
            if let Some(f) = Frame::decode(&bytes) {
                let _ = f.is_sane();
                let _ = check_body(&f, bytes.get(FRAME_LEN..).unwrap_or_default());
                let _ = check_record(&f, bytes.get(FRAME_LEN..).unwrap_or_default());
            }
        }
    }
}
