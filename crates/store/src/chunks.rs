//! Fragments stored in chunks (record body version 2; sans-IO).
//!
//! A fragment can be up to 50 MB. Sealed whole (body version 1), it can be used only once all
//! of it has been read and authenticated, so every reader of a fragment held all of it in
//! memory. A body of version 2 cuts the payload into chunks of `1 << chunk_shift` bytes (the
//! last one shorter; an empty payload is one empty chunk), each followed by its own check:
//!
//! ```text
//! payload (v2):  chunk 0 | check 0 | chunk 1 | check 1 | ... | chunk n-1 | check n-1
//! check:         encrypted: the AES-256-GCM tag (16 bytes) of the chunk, sealed with nonce
//!                  `chunk_nonce(header nonce, i)` and associated data `header (68) | u32 i`
//!                not encrypted: u32 CRC-32 of `header (68) | u32 i | chunk`
//! ```
//!
//! The record around it is unchanged (its frame CRC covers the whole body, so recovery and
//! `vigil check` verify records as before), and the header's fields keep their offsets:
//! byte 0 is the version (2) and byte 3, zero in version 1, is `chunk_shift` (12 to 24: 4 KiB
//! to 16 MiB; the store writes [`DEFAULT_SHIFT`], 64 KiB). A reader can then fetch, check and
//! use one chunk at a time, so memory per reader is one chunk whatever the fragment's size,
//! and nothing unauthenticated is ever handed out. The number of chunks follows from the
//! authenticated payload length and each chunk's index is in its nonce and associated data,
//! so chunks cannot be dropped, repeated, reordered or cut short without detection.

use std::ops::RangeInclusive;

use crate::crypto::TAG_LEN;
use crate::record::{BODY_HEADER_LEN, FLAG_ENCRYPTED, FRAME_LEN, RecordHeader};

/// The chunk sizes a record may use, as powers of two.
pub const SHIFTS: RangeInclusive<u8> = 12..=24;
/// The chunk size the store writes: 64 KiB.
pub const DEFAULT_SHIFT: u8 = 16;
/// Length of a chunk's check when the record is not encrypted.
pub const CRC_LEN: usize = 4;

/// Where a chunked record's chunks are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    payload_len: u64,
    chunk_len: u64,
    check_len: u64,
}

impl Layout {
    /// The layout of a version 2 record; `None` for version 1 (one payload sealed whole).
    pub fn of(h: &RecordHeader) -> Option<Self> {
        if h.chunk_shift == 0 {
            return None;
        }
        Some(Self {
            payload_len: u64::from(h.payload_len),
            chunk_len: 1u64 << h.chunk_shift.min(*SHIFTS.end()),
            check_len: if h.flags & FLAG_ENCRYPTED != 0 {
                TAG_LEN as u64
            } else {
                CRC_LEN as u64
            },
        })
    }

    /// The number of chunks (at least one).
    pub fn chunk_count(&self) -> u32 {
        let n = self.payload_len.div_ceil(self.chunk_len).max(1);
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// The plaintext bytes in a chunk.
    pub fn chunk_len(&self) -> u64 {
        self.chunk_len
    }

    /// The payload's length as stored.
    pub fn stored_len(&self) -> usize {
        let n = self.payload_len + u64::from(self.chunk_count()) * self.check_len;
        usize::try_from(n).unwrap_or(usize::MAX)
    }

    /// Chunk `i` in the plaintext: its offset and length; `None` past the last chunk.
    pub fn plain(&self, i: u32) -> Option<(u64, usize)> {
        if i >= self.chunk_count() {
            return None;
        }
        let start = u64::from(i) * self.chunk_len;
        let len = self.chunk_len.min(self.payload_len.saturating_sub(start));
        Some((start, usize::try_from(len).ok()?))
    }

    /// Chunk `i` as stored, from the start of the payload: its offset and length, check
    /// included; `None` past the last chunk.
    pub fn stored(&self, i: u32) -> Option<(u64, usize)> {
        let (start, len) = self.plain(i)?;
        let offset = start + u64::from(i) * self.check_len;
        Some((offset, len + usize::try_from(self.check_len).ok()?))
    }

    /// The chunk that holds plaintext offset `at` (the last chunk for offsets past the end).
    pub fn chunk_at(&self, at: u64) -> u32 {
        let i = (at / self.chunk_len).min(u64::from(self.chunk_count()) - 1);
        u32::try_from(i).unwrap_or(u32::MAX)
    }
}

/// The nonce of chunk `i`: the record's nonce with `i` added to its 64-bit counter half.
pub fn chunk_nonce(base: [u8; 12], i: u32) -> [u8; 12] {
    let mut out = base;
    let (_, counter) = out.split_at_mut(4);
    let mut c = [0u8; 8];
    c.copy_from_slice(counter);
    let n = u64::from_be_bytes(c).wrapping_add(u64::from(i));
    counter.copy_from_slice(&n.to_be_bytes());
    out
}

/// The associated data of chunk `i`: the body header and the chunk's index.
pub fn chunk_aad(header: &[u8; BODY_HEADER_LEN], i: u32) -> [u8; BODY_HEADER_LEN + 4] {
    let mut out = [0u8; BODY_HEADER_LEN + 4];
    let (h, idx) = out.split_at_mut(BODY_HEADER_LEN);
    h.copy_from_slice(header);
    idx.copy_from_slice(&i.to_le_bytes());
    out
}

/// The check of chunk `i` of a record that is not encrypted.
pub fn chunk_crc(header: &[u8; BODY_HEADER_LEN], i: u32, chunk: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(header);
    h.update(&i.to_le_bytes());
    h.update(chunk);
    h.finalize()
}

/// Encrypts a chunk in place and returns its tag: `seal(nonce, aad, chunk)`.
pub type ChunkSeal<'a> = &'a dyn Fn([u8; 12], &[u8], &mut [u8]) -> [u8; TAG_LEN];

/// Decrypts a chunk (ciphertext then tag) in place: `open(nonce, aad, chunk)`, the
/// plaintext length if it authenticates.
pub type ChunkOpen<'a> = &'a dyn Fn([u8; 12], &[u8], &mut [u8]) -> Option<usize>;

/// Builds a complete chunked record (frame + body) around a payload of exactly
/// `header.payload_len` bytes. `header.chunk_shift` must be in [`SHIFTS`]; `seal` is given
/// exactly when the header says the record is encrypted.
pub fn encode_chunked<'a>(
    header: &RecordHeader,
    payload: impl IntoIterator<Item = &'a [u8]>,
    seal: Option<ChunkSeal<'_>>,
) -> Vec<u8> {
    let mut header = *header;
    if !SHIFTS.contains(&header.chunk_shift) {
        header.chunk_shift = DEFAULT_SHIFT;
    }
    let hb = header.encode();
    let layout = Layout::of(&header).unwrap_or(Layout {
        payload_len: 0,
        chunk_len: 1 << DEFAULT_SHIFT,
        check_len: 0,
    });
    let mut buf = Vec::with_capacity(FRAME_LEN + BODY_HEADER_LEN + layout.stored_len());
    buf.extend_from_slice(&[0u8; FRAME_LEN]);
    buf.extend_from_slice(&hb);
    let chunk_len = usize::try_from(layout.chunk_len).unwrap_or(usize::MAX);
    let mut index = 0u32;
    let mut chunk_start = buf.len();
    let finish = |buf: &mut Vec<u8>, i: u32, start: usize| match seal {
        Some(seal) => {
            let tag = match buf.get_mut(start..) {
                Some(chunk) => seal(chunk_nonce(header.nonce, i), &chunk_aad(&hb, i), chunk),
                None => [0; TAG_LEN],
            };
            buf.extend_from_slice(&tag);
        }
        None => {
            let crc = chunk_crc(&hb, i, buf.get(start..).unwrap_or_default());
            buf.extend_from_slice(&crc.to_le_bytes());
        }
    };
    for mut part in payload {
        while !part.is_empty() {
            let room = chunk_len.saturating_sub(buf.len() - chunk_start);
            let (now, rest) = part.split_at(room.min(part.len()));
            buf.extend_from_slice(now);
            part = rest;
            if buf.len() - chunk_start == chunk_len {
                finish(&mut buf, index, chunk_start);
                index += 1;
                chunk_start = buf.len();
            }
        }
    }
    if index < layout.chunk_count() && (index == 0 || buf.len() > chunk_start) {
        finish(&mut buf, index, chunk_start);
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

/// Checks chunk `i` as stored (`chunk` holds it with its check) and leaves its plaintext in
/// `chunk`. `open` is needed when the record is encrypted.
pub fn open_chunk(
    header: &RecordHeader,
    header_bytes: &[u8; BODY_HEADER_LEN],
    i: u32,
    chunk: &mut Vec<u8>,
    open: Option<ChunkOpen<'_>>,
) -> Result<(), String> {
    let layout = Layout::of(header).ok_or("not a chunked record")?;
    let (_, plain_len) = layout.plain(i).ok_or("chunk past the end of the record")?;
    let (_, stored_len) = layout.stored(i).ok_or("chunk past the end of the record")?;
    if chunk.len() != stored_len {
        return Err(format!(
            "chunk {i} is {} bytes, the record says {stored_len}",
            chunk.len()
        ));
    }
    if header.flags & FLAG_ENCRYPTED != 0 {
        let open = open.ok_or("an encrypted chunk needs its key")?;
        let aad = chunk_aad(header_bytes, i);
        match open(chunk_nonce(header.nonce, i), &aad, chunk) {
            Some(n) if n == plain_len => {}
            _ => return Err(format!("chunk {i} failed authentication")),
        }
    } else {
        let data = chunk.get(..plain_len).unwrap_or_default();
        let mut stored = [0u8; CRC_LEN];
        stored.copy_from_slice(chunk.get(plain_len..).unwrap_or(&[0; CRC_LEN]));
        if chunk_crc(header_bytes, i, data) != u32::from_le_bytes(stored) {
            return Err(format!("chunk {i}: checksum mismatch"));
        }
    }
    chunk.truncate(plain_len);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use proptest::prelude::*;

    use super::*;
    use crate::crypto::AeadKey;
    use crate::record::{Frame, check_body};

    fn header(len: u32, encrypted: bool, shift: u8) -> RecordHeader {
        RecordHeader {
            flags: if encrypted { FLAG_ENCRYPTED } else { 0 },
            stream: 7,
            number: 42,
            producer_ts_ms: 1000,
            server_ts_ms: 2000,
            duration_ms: 2000,
            header_id: 3,
            key_gen: u32::from(encrypted),
            nonce: [1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0xff, 0xfe],
            payload_len: len,
            chunk_shift: shift,
        }
    }

    /// Encodes, checks the frame, then opens every chunk in turn.
    fn round_trip(payload: &[u8], encrypted: bool, shift: u8, cut: usize) -> Vec<u8> {
        let key = AeadKey::new(&[9; 32]);
        let h = header(payload.len() as u32, encrypted, shift);
        let seal = |n: [u8; 12], aad: &[u8], b: &mut [u8]| key.seal_in_place(n, aad, b);
        let open = |n: [u8; 12], aad: &[u8], b: &mut [u8]| key.open(n, aad, b);
        let parts: Vec<&[u8]> = if cut < payload.len() {
            vec![&payload[..cut], &payload[cut..]]
        } else {
            vec![payload]
        };
        let rec = encode_chunked(&h, parts, encrypted.then_some(&seal as ChunkSeal));
        let frame = Frame::decode(&rec).unwrap();
        let body = &rec[FRAME_LEN..];
        let decoded = check_body(&frame, body).unwrap();
        assert_eq!(decoded, h);
        let layout = Layout::of(&decoded).unwrap();
        assert_eq!(layout.stored_len() + BODY_HEADER_LEN, body.len());
        let hb: [u8; BODY_HEADER_LEN] = body[..BODY_HEADER_LEN].try_into().unwrap();
        let stored = &body[BODY_HEADER_LEN..];
        if encrypted && !payload.is_empty() {
            assert_ne!(
                &stored[..payload.len().min(16)],
                &payload[..payload.len().min(16)]
            );
        }
        let mut out = Vec::new();
        for i in 0..layout.chunk_count() {
            let (off, len) = layout.stored(i).unwrap();
            let mut c = stored[off as usize..off as usize + len].to_vec();
            open_chunk(
                &decoded,
                &hb,
                i,
                &mut c,
                encrypted.then_some(&open as ChunkOpen),
            )
            .unwrap();
            assert_eq!(layout.plain(i).unwrap(), (out.len() as u64, c.len()));
            out.extend_from_slice(&c);
        }
        assert!(layout.plain(layout.chunk_count()).is_none());
        out
    }

    #[test]
    fn sizes_at_chunk_boundaries() {
        for len in [0usize, 1, 4095, 4096, 4097, 8192, 3 * 4096 + 5] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            for encrypted in [false, true] {
                assert_eq!(
                    round_trip(&payload, encrypted, 12, len / 3),
                    payload,
                    "{len}"
                );
            }
        }
    }

    #[test]
    fn chunk_nonces_follow_the_counter() {
        let base = [1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
        assert_eq!(chunk_nonce(base, 0), base);
        assert_eq!(chunk_nonce(base, 1), [1, 2, 3, 4, 0, 0, 0, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn swapped_chunks_and_changed_headers_are_refused() {
        let key = AeadKey::new(&[9; 32]);
        let payload = vec![5u8; 3 * 4096];
        for encrypted in [false, true] {
            let h = header(payload.len() as u32, encrypted, 12);
            let seal = |n: [u8; 12], aad: &[u8], b: &mut [u8]| key.seal_in_place(n, aad, b);
            let open = |n: [u8; 12], aad: &[u8], b: &mut [u8]| key.open(n, aad, b);
            let rec = encode_chunked(
                &h,
                [payload.as_slice()],
                encrypted.then_some(&seal as ChunkSeal),
            );
            let body = &rec[FRAME_LEN..];
            let hb: [u8; BODY_HEADER_LEN] = body[..BODY_HEADER_LEN].try_into().unwrap();
            let layout = Layout::of(&h).unwrap();
            let (off1, len1) = layout.stored(1).unwrap();
            let chunk1 = body[BODY_HEADER_LEN + off1 as usize..][..len1].to_vec();
            // Chunk 1's bytes offered as chunk 0 (same plaintext, different index).
            let mut c = chunk1.clone();
            assert!(
                open_chunk(&h, &hb, 0, &mut c, encrypted.then_some(&open as ChunkOpen)).is_err()
            );
            // Under a relabelled header (another fragment number).
            let mut other = h;
            other.number += 1;
            let ob = other.encode();
            let mut c = chunk1.clone();
            assert!(
                open_chunk(
                    &other,
                    &ob,
                    1,
                    &mut c,
                    encrypted.then_some(&open as ChunkOpen)
                )
                .is_err()
            );
            // Cut short.
            let mut c = chunk1[..len1 - 1].to_vec();
            assert!(
                open_chunk(&h, &hb, 1, &mut c, encrypted.then_some(&open as ChunkOpen)).is_err()
            );
            let mut c = chunk1;
            open_chunk(&h, &hb, 1, &mut c, encrypted.then_some(&open as ChunkOpen)).unwrap();
            assert_eq!(c, vec![5u8; 4096]);
        }
    }

    #[test]
    fn layouts_locate_offsets() {
        let l = Layout::of(&header(10_000, true, 12)).unwrap();
        assert_eq!(l.chunk_count(), 3);
        assert_eq!(l.plain(2), Some((8192, 10_000 - 8192)));
        assert_eq!(l.stored(2), Some((8192 + 32, 10_000 - 8192 + 16)));
        assert_eq!(l.chunk_at(0), 0);
        assert_eq!(l.chunk_at(4096), 1);
        assert_eq!(l.chunk_at(1 << 40), 2);
        assert_eq!(Layout::of(&header(0, false, 12)).unwrap().chunk_count(), 1);
        assert!(Layout::of(&header(10, false, 0)).is_none());
    }

    proptest! {
        #[test]
        fn any_payload_round_trips(
            payload in proptest::collection::vec(any::<u8>(), 0..20_000),
            encrypted in any::<bool>(),
            cut in 0usize..20_000,
        ) {
            prop_assert_eq!(round_trip(&payload, encrypted, 12, cut), payload);
        }

        #[test]
        fn any_bit_flip_in_a_chunk_is_found(
            payload in proptest::collection::vec(any::<u8>(), 1..10_000),
            encrypted in any::<bool>(),
            bit in any::<prop::sample::Index>(),
        ) {
            let key = AeadKey::new(&[9; 32]);
            let h = header(payload.len() as u32, encrypted, 12);
            let seal = |n: [u8; 12], aad: &[u8], b: &mut [u8]| key.seal_in_place(n, aad, b);
            let open = |n: [u8; 12], aad: &[u8], b: &mut [u8]| key.open(n, aad, b);
            let mut rec = encode_chunked(&h, [payload.as_slice()], encrypted.then_some(&seal as ChunkSeal));
            let start = FRAME_LEN + BODY_HEADER_LEN;
            let at = start * 8 + bit.index((rec.len() - start) * 8);
            rec[at / 8] ^= 1 << (at % 8);
            let hb = h.encode();
            let layout = Layout::of(&h).unwrap();
            let mut failed = false;
            for i in 0..layout.chunk_count() {
                let (off, len) = layout.stored(i).unwrap();
                let mut c = rec[start + off as usize..][..len].to_vec();
                failed |= open_chunk(&h, &hb, i, &mut c, encrypted.then_some(&open as ChunkOpen)).is_err();
            }
            prop_assert!(failed);
        }
    }
}
