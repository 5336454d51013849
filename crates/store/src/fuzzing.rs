//! The body of the `segment_scan` fuzz target, here so that ordinary tests run it too.
//!
//! A segment file comes back from disk, where anything may have happened to it: the scanners
//! must never panic on it, and what they report must be consistent with the bytes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::PathBuf;
use std::sync::Arc;

use crate::blob::{BlobStore, LocalBlobs};
use crate::fs::FaultFs;
use crate::record::{BODY_HEADER_LEN, FRAME_LEN, SEGMENT_HEADER_LEN, SegmentHeader};
use crate::recovery::{scan_segment, scan_segment_thorough};

/// Scans `data` as the records of a segment (after a valid header) both ways and checks what
/// the scanners report against the bytes.
pub fn segment_scan(data: &[u8]) {
    let fs = FaultFs::new();
    let blobs = LocalBlobs::new(Arc::new(fs), PathBuf::from("/fuzz")).unwrap();
    let header = SegmentHeader {
        lane: 0,
        id: 1,
        created_ms: 0,
    };
    blobs.create(&header).unwrap();
    blobs.write(1, SEGMENT_HEADER_LEN, data).unwrap();
    let len = SEGMENT_HEADER_LEN + data.len() as u64;

    let scan = scan_segment(&blobs, 1, 0).unwrap();
    assert_eq!(scan.len, len);
    assert!(scan.end <= len);
    assert_eq!(scan.damage.is_none(), scan.end == len);
    let mut at = SEGMENT_HEADER_LEN;
    for r in &scan.records {
        // Records are contiguous from the header on, and each one's bytes decode to it.
        assert_eq!(r.location.offset, at);
        let end = at + u64::from(r.location.len);
        assert!(end <= scan.end);
        let bytes = &data[(at - SEGMENT_HEADER_LEN) as usize..(end - SEGMENT_HEADER_LEN) as usize];
        assert_eq!(
            &bytes[FRAME_LEN..FRAME_LEN + BODY_HEADER_LEN],
            &r.header.encode()[..]
        );
        // A chunked fragment's chunks are where its layout says, and checking them never
        // panics (a record whose frame checks out may still hold a bad chunk).
        if let crate::record::RecordHead::Fragment(h) = &r.header
            && let Some(layout) = crate::chunks::Layout::of(h)
        {
            let payload = &bytes[FRAME_LEN + BODY_HEADER_LEN..];
            assert_eq!(layout.stored_len(), payload.len());
            let hb = h.encode();
            for i in 0..layout.chunk_count() {
                let (off, len) = layout.stored(i).unwrap();
                let mut chunk = payload[off as usize..off as usize + len].to_vec();
                let open = |_: [u8; 12], _: &[u8], _: &mut [u8]| None;
                let _ = crate::chunks::open_chunk(h, &hb, i, &mut chunk, Some(&open));
            }
        }
        at = end;
    }
    assert_eq!(at, scan.end);

    let (thorough, damage) = scan_segment_thorough(&blobs, 1).unwrap();
    // The thorough scan finds at least what the plain one does, in the same order first.
    assert!(thorough.records.len() >= scan.records.len());
    for (a, b) in scan.records.iter().zip(&thorough.records) {
        assert_eq!(a.location, b.location);
    }
    assert_eq!(damage.is_empty(), scan.damage.is_none());
    let mut last = 0;
    for r in &thorough.records {
        assert!(r.location.offset >= last);
        last = r.location.offset + u64::from(r.location.len);
        assert!(last <= len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{RecordHeader, encode_record};
    use proptest::prelude::*;

    fn record(n: u64, len: usize) -> Vec<u8> {
        let h = RecordHeader {
            flags: 0,
            stream: 1,
            number: n,
            producer_ts_ms: n,
            server_ts_ms: n,
            duration_ms: 1,
            header_id: 0,
            key_gen: 0,
            nonce: [0; 12],
            payload_len: len as u32,
            // Both body versions: whole (1) and chunked (2, 4 KiB chunks).
            chunk_shift: if n.is_multiple_of(2) { 0 } else { 12 },
        };
        let payload = vec![n as u8; len];
        if h.chunk_shift == 0 {
            encode_record(&h, [payload.as_slice()], None)
        } else {
            crate::chunks::encode_chunked(&h, [payload.as_slice()], None)
        }
    }

    #[test]
    fn intact_torn_and_damaged_segments() {
        let mut data: Vec<u8> = (0..5).flat_map(|n| record(n, 100 * n as usize)).collect();
        segment_scan(&data);
        let whole = data.len();
        data.truncate(whole - 3);
        segment_scan(&data);
        data.truncate(whole);
        data[FRAME_LEN + BODY_HEADER_LEN + 1] ^= 1; // damage inside the first record
        segment_scan(&data);
        segment_scan(&[]);
        segment_scan(&[0xff; 7]);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            segment_scan(&data);
        }

        #[test]
        fn records_with_damage(count in 1usize..6, flip in any::<prop::sample::Index>(), cut in any::<prop::sample::Index>()) {
            let mut data: Vec<u8> = (0..count as u64).flat_map(|n| record(n, 37 * n as usize)).collect();
            let i = flip.index(data.len());
            data[i] ^= 0x5a;
            segment_scan(&data);
            data.truncate(cut.index(data.len() + 1));
            segment_scan(&data);
        }
    }
}
