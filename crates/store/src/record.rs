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

use crate::crypto::TAG_LEN;

/// Segment file magic.
pub const SEGMENT_MAGIC: &[u8; 8] = b"VIGILSEG";
/// Segment file format version this build writes and reads.
pub const SEGMENT_VERSION: u32 = 1;
/// Length of the segment file header.
pub const SEGMENT_HEADER_LEN: u64 = 32;
/// Record body format version.
pub const RECORD_VERSION: u8 = 1;
/// Kind: a fragment.
pub const KIND_FRAGMENT: u8 = 1;
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
}

impl RecordHeader {
    /// Encodes the body header.
    pub fn encode(&self) -> [u8; BODY_HEADER_LEN] {
        let mut out = [0u8; BODY_HEADER_LEN];
        let mut w = Writer(&mut out[..], 0);
        w.put(&[RECORD_VERSION, KIND_FRAGMENT, self.flags, 0]);
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
        match fixed {
            [RECORD_VERSION, KIND_FRAGMENT, flags, 0] => {
                let flags = *flags;
                let h = Self {
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
                };
                Ok(h)
            }
            [v, ..] if *v != RECORD_VERSION => Err(format!(
                "record format version {v}; this build reads {RECORD_VERSION}"
            )),
            _ => Err("unknown record kind".into()),
        }
    }

    /// Length of the payload as stored (with the tag when encrypted).
    pub fn stored_payload_len(&self) -> usize {
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
    if let Some(seal) = seal {
        seal(&h, &mut buf, FRAME_LEN + BODY_HEADER_LEN);
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
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = SegmentHeader::decode(&bytes);
            let _ = RecordHeader::decode(&bytes);
            if let Some(f) = Frame::decode(&bytes) {
                let _ = f.is_sane();
                let _ = check_body(&f, bytes.get(FRAME_LEN..).unwrap_or_default());
            }
        }
    }
}
