//! Fragments stored in chunks, on the real filesystem: a tail delivers a large fragment a
//! checked chunk at a time, ranges read only what they need, and a damaged chunk fails
//! authentication at that chunk (never garbage, never the chunks after it).

use std::path::Path;
use std::sync::Arc;

use vigil_store::chunks::{DEFAULT_SHIFT, Layout};
use vigil_store::conformance::{clock, write};
use vigil_store::record::{BODY_HEADER_LEN, FRAME_LEN, RecordHeader};
use vigil_store::{NewStream, StartAt, Store, StoreConfig, StoreError, StreamRef, TailEvent};

const CHUNK: usize = 1 << DEFAULT_SHIFT;

fn config(dir: &Path) -> StoreConfig {
    let mut cfg = StoreConfig::new(dir);
    cfg.retention_interval_ms = 0;
    cfg.min_free_bytes = 0;
    cfg
}

fn open(dir: &Path) -> Store {
    Store::open(config(dir), Arc::new(clock())).unwrap()
}

/// A payload of `len` bytes that differs at every offset that matters.
fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 997) as u8).collect()
}

fn stream(store: &Store) -> u64 {
    store
        .create_stream(NewStream {
            name: "big".into(),
            data_retention_hours: 24,
            ..NewStream::default()
        })
        .unwrap()
        .id
}

/// Every event of one fragment from a tail at the start of the stream.
fn tail_events(store: &Store) -> Vec<Result<TailEvent, StoreError>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut t = store
            .tail(StreamRef::Name("big"), StartAt::Earliest)
            .unwrap();
        let mut out = Vec::new();
        loop {
            let e = t.next().await;
            let last = matches!(e, Err(_) | Ok(TailEvent::End { .. } | TailEvent::Aborted));
            out.push(e);
            if last {
                return out;
            }
        }
    })
}

#[test]
fn a_large_fragment_is_read_a_chunk_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let s = stream(&store);
    let h = store.register_header(s, b"track header").unwrap();
    let data = payload(20 * CHUNK + 1234);
    let meta = write(&store, s, h, 1_000, &data, 7);
    // Twenty-one chunks, each with its tag, in the record the index points to.
    let head_len = (FRAME_LEN + BODY_HEADER_LEN) as u32;
    assert_eq!(meta.location.len, head_len + data.len() as u32 + 21 * 16);

    // From the memory window, the appends as they came (shared, not copied); from disk
    // after a restart, the stored chunks.
    let appended = data.len().div_ceil(7);
    let from_memory = tail_events(&store);
    assert!(from_memory.iter().all(|e| match e {
        Ok(TailEvent::Data(d)) => d.len() <= appended,
        _ => true,
    }));
    store.close().unwrap();
    drop(store);
    let store = open(dir.path());
    let from_disk = tail_events(&store);
    for (events, want_chunks) in [(from_memory, 7), (from_disk, 21)] {
        let mut got = Vec::new();
        let mut chunks = 0;
        for e in &events {
            match e.as_ref().unwrap() {
                TailEvent::Start(start) => {
                    assert_eq!(start.number, meta.number);
                    assert_eq!(&start.header[..], b"track header");
                }
                TailEvent::Data(d) => {
                    assert!(want_chunks == 7 || d.len() <= CHUNK, "{} bytes", d.len());
                    chunks += 1;
                    got.extend_from_slice(d);
                }
                TailEvent::End { duration_ms } => assert_eq!(*duration_ms, 1000),
                TailEvent::Aborted => panic!("aborted"),
            }
        }
        assert_eq!(chunks, want_chunks);
        assert!(got == data, "the chunks do not make the payload");
    }

    // Whole reads and ranges agree with what was written.
    assert!(store.read_meta(&meta).unwrap().payload[..] == data[..]);
    let mut r = store.open_fragment(&meta).unwrap();
    for (at, len) in [
        (0, 10),
        (CHUNK - 3, 7),
        (5 * CHUNK, 3 * CHUNK + 1),
        (data.len() - 5, 100),
        (data.len(), 10),
        (0, data.len()),
    ] {
        let want = &data[at.min(data.len())..(at + len).min(data.len())];
        assert!(
            r.read_range(at as u64, len).unwrap() == want,
            "range {at}+{len}"
        );
    }
    let mut streamed = Vec::new();
    while let Some(c) = r.next_chunk().unwrap() {
        streamed.extend_from_slice(&c);
    }
    assert!(streamed == data);
    store.close().unwrap();
}

#[test]
fn a_damaged_chunk_fails_where_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let s = stream(&store);
    let h = store.register_header(s, b"track header").unwrap();
    let data = payload(8 * CHUNK);
    let meta = write(&store, s, h, 1_000, &data, 3);
    store.close().unwrap();
    drop(store);

    // One bit of chunk 5's ciphertext, in the segment file.
    let path = dir
        .path()
        .join("segments")
        .join(format!("{:016x}.seg", meta.location.segment));
    let mut bytes = std::fs::read(&path).unwrap();
    let start = meta.location.offset as usize + FRAME_LEN;
    let head = RecordHeader::decode(&bytes[start..]).unwrap();
    let (off, _) = Layout::of(&head).unwrap().stored(5).unwrap();
    bytes[start + BODY_HEADER_LEN + off as usize + 100] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();

    let store = open(dir.path());
    let events = tail_events(&store);
    let data_events = events
        .iter()
        .filter(|e| matches!(e, Ok(TailEvent::Data(_))))
        .count();
    assert_eq!(data_events, 5, "chunks 0 to 4 are delivered, nothing after");
    assert!(
        matches!(events.last(), Some(Err(StoreError::Authentication { .. }))),
        "{:?}",
        events.last()
    );
    // A whole read checks the record's CRC first.
    assert!(matches!(
        store.read_meta(&meta),
        Err(StoreError::Corrupt { .. })
    ));
    let mut r = store.open_fragment(&meta).unwrap();
    assert!(r.read_range(0, 5 * CHUNK).unwrap()[..] == data[..5 * CHUNK]);
    assert!(matches!(
        r.read_range(5 * CHUNK as u64, 1),
        Err(StoreError::Authentication { .. })
    ));
}
