//! The conformance suite every store backend must pass.
//!
//! A backend is given as an [`Opener`]: a function that opens the store over the same
//! (persistent) backend each time it is called, with the given clock. [`run_all`] runs every
//! check; each check is also public, so a backend's test file can run them one per test.
//! The embedded backend runs it on the real filesystem and on [`crate::fs::FaultFs`];
//! object storage and PostgreSQL backends will run the same functions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::{
    Clock, ManualClock, NewStream, StartAt, Store, StoreError, StreamRef, TailEvent, TimestampKind,
};

pub mod logs;
pub use logs::*;

/// Opens the store under test (the same backend every call) with a clock.
pub type Opener<'a> = &'a dyn Fn(Arc<dyn Clock>) -> crate::Result<Store>;

/// A simulated clock starting at a fixed time (2026-01-01T00:00:00Z).
pub fn clock() -> ManualClock {
    ManualClock::new(1_767_225_600_000)
}

/// Deterministic fragment bytes.
pub fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn stream(store: &Store, name: &str, hours: u32) -> u64 {
    store
        .create_stream(NewStream {
            name: name.into(),
            data_retention_hours: hours,
            ..NewStream::default()
        })
        .unwrap()
        .id
}

/// Writes one fragment in `chunks` pieces and waits for it to be durable.
pub fn write(
    store: &Store,
    stream: u64,
    header: u64,
    producer_ts_ms: u64,
    data: &[u8],
    chunks: usize,
) -> crate::FragmentMeta {
    let mut w = store
        .begin_fragment(stream, header, producer_ts_ms)
        .unwrap();
    let n = data.len().div_ceil(chunks.max(1)).max(1);
    for c in data.chunks(n) {
        w.append(Bytes::copy_from_slice(c)).unwrap();
    }
    w.finish(1000).unwrap().wait_blocking().unwrap()
}

/// Runs every check.
pub fn run_all(open: Opener<'_>) {
    streams(open);
    round_trip(open);
    survives_reopen(open);
    time_ranges(open);
    retention(open);
    byte_budget(open);
    no_retention(open);
    retained_is_fixed_at_begin(open);
    delete_stream(open);
    key_rotation(open);
    tail(open);
    slow_reader(open);
    face_collections(open);
    logs::run_all_logs(open);
}

/// Stream records: create, find, list, update with versions, delete.
pub fn streams(open: Opener<'_>) {
    let store = open(Arc::new(clock())).unwrap();
    let mut tags = BTreeMap::new();
    tags.insert("k".to_owned(), "v".to_owned());
    let a = store
        .create_stream(NewStream {
            name: "cam-a".into(),
            device_name: Some("door".into()),
            data_retention_hours: 24,
            tags,
            ..NewStream::default()
        })
        .unwrap();
    assert_eq!(a.kms_key_id, crate::DEFAULT_MASTER_KEY_ID);
    assert!(matches!(
        store.create_stream(NewStream {
            name: "cam-a".into(),
            ..NewStream::default()
        }),
        Err(StoreError::StreamExists(_))
    ));
    assert!(matches!(
        store.create_stream(NewStream {
            name: "x".into(),
            kms_key_id: Some("no-such-key".into()),
            ..NewStream::default()
        }),
        Err(StoreError::KeyNotFound(_))
    ));
    for n in ["cam-b", "cam-c", "dog-1"] {
        stream(&store, n, 1);
    }
    assert_eq!(store.stream(StreamRef::Name("cam-a")).unwrap(), a);
    assert_eq!(store.stream(StreamRef::Id(a.id)).unwrap(), a);
    let names = |v: Vec<crate::StreamRecord>| v.into_iter().map(|s| s.name).collect::<Vec<_>>();
    assert_eq!(
        names(store.list_streams("cam-", None, 10).unwrap()),
        ["cam-a", "cam-b", "cam-c"]
    );
    assert_eq!(
        names(store.list_streams("cam-", Some("cam-a"), 1).unwrap()),
        ["cam-b"]
    );
    assert_eq!(names(store.list_streams("", None, 100).unwrap()).len(), 4);
    assert!(matches!(
        store.update_stream(StreamRef::Name("cam-a"), Some("stale"), |_| Ok(())),
        Err(StoreError::VersionMismatch { .. })
    ));
    let b = store
        .update_stream(StreamRef::Name("cam-a"), Some(&a.version), |s| {
            s.media_type = Some("video/h264".into());
            Ok(())
        })
        .unwrap();
    assert_ne!(b.version, a.version);
    assert_eq!(b.media_type.as_deref(), Some("video/h264"));
    store.delete_stream(StreamRef::Id(a.id), None).unwrap();
    assert!(matches!(
        store.stream(StreamRef::Name("cam-a")),
        Err(StoreError::StreamNotFound(_))
    ));
    // The name is free again, under a new id.
    let again = stream(&store, "cam-a", 1);
    assert_ne!(again, a.id);
}

/// Fragments and headers read back byte for byte with their metadata.
pub fn round_trip(open: Opener<'_>) {
    let clock = clock();
    let store = open(Arc::new(clock.clone())).unwrap();
    let s = stream(&store, "rt", 24);
    let h1 = store.register_header(s, b"header one").unwrap();
    assert_eq!(store.register_header(s, b"header one").unwrap(), h1);
    let mut metas = Vec::new();
    for i in 0..5u64 {
        clock.advance_ms(1000);
        let data = payload(i, 1000 + 7919 * i as usize);
        metas.push((
            write(&store, s, h1, 5_000 + i * 1000, &data, 1 + i as usize),
            data,
        ));
    }
    let h2 = store.register_header(s, b"header two").unwrap();
    assert!(h2 > h1);
    let last = write(&store, s, h2, 99_000, b"", 1);
    for (m, data) in &metas {
        let f = store.read_fragment(s, m.number).unwrap();
        assert_eq!(&f.payload[..], &data[..]);
        assert_eq!(f.meta, *m);
        assert_eq!(m.size as usize, data.len());
        assert_eq!(m.duration_ms, 1000);
    }
    assert!(metas.windows(2).all(|w| w[0].0.number < w[1].0.number));
    assert!(
        metas
            .windows(2)
            .all(|w| w[0].0.server_ts_ms < w[1].0.server_ts_ms)
    );
    assert_eq!(
        store.read_fragment(s, last.number).unwrap().payload.len(),
        0
    );
    assert_eq!(&store.header(s, h1).unwrap()[..], b"header one");
    assert_eq!(&store.header(s, h2).unwrap()[..], b"header two");
    assert!(matches!(
        store.read_fragment(s, 1 << 60),
        Err(StoreError::FragmentNotFound { .. })
    ));
    let usage = store.usage(s).unwrap();
    assert_eq!(usage.fragments, 6);
    assert_eq!(
        usage.bytes,
        metas.iter().map(|(_, d)| d.len() as u64).sum::<u64>()
    );
}

/// Everything durable is there after a reopen; numbers keep increasing.
pub fn survives_reopen(open: Opener<'_>) {
    let clock = clock();
    let (s, metas) = {
        let store = open(Arc::new(clock.clone())).unwrap();
        let s = stream(&store, "reopen", 24);
        let h = store.register_header(s, b"hdr").unwrap();
        let metas: Vec<_> = (0..20u64)
            .map(|i| write(&store, s, h, i, &payload(100 + i, 5000), 2))
            .collect();
        store.close().unwrap();
        (s, metas)
    };
    let store = open(Arc::new(clock.clone())).unwrap();
    for (i, m) in metas.iter().enumerate() {
        let f = store.read_fragment(s, m.number).unwrap();
        assert_eq!(&f.payload[..], &payload(100 + i as u64, 5000)[..]);
    }
    let h = store.register_header(s, b"hdr").unwrap();
    let next = write(&store, s, h, 999, b"after", 1);
    assert!(next.number > metas.last().unwrap().number);
}

/// Timestamp ranges: inclusive at both ends, paginated by cursor, in timestamp order.
pub fn time_ranges(open: Opener<'_>) {
    let clock = clock();
    let store = open(Arc::new(clock.clone())).unwrap();
    let s = stream(&store, "ranges", 24);
    let other = stream(&store, "ranges-other", 24);
    let h = store.register_header(s, b"h").unwrap();
    let ho = store.register_header(other, b"h").unwrap();
    let t0 = clock.now_ms();
    let mut all = Vec::new();
    for i in 0..2500u64 {
        clock.set_ms(t0 + i * 10);
        // Producer timestamps run backwards in blocks, to tell the two indexes apart.
        all.push(write(&store, s, h, 1_000_000 - i, &[i as u8], 1));
        if i % 100 == 0 {
            write(&store, other, ho, 1_000_000 - i, b"o", 1);
        }
    }
    // Server range [t0+100, t0+24_990] inclusive: fragments 10..=2499.
    let mut got = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_fragments(
                s,
                TimestampKind::Server,
                t0 + 100,
                t0 + 24_990,
                cursor,
                1000,
            )
            .unwrap();
        assert!(page.fragments.len() <= 1000);
        got.extend(page.fragments);
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(got.len(), 2490);
    assert_eq!(got.first().unwrap().number, all[10].number);
    assert!(got.iter().all(|m| m.stream == s));
    assert!(
        got.windows(2)
            .all(|w| w[0].server_ts_ms < w[1].server_ts_ms)
    );
    // Producer range, exact ends.
    let page = store
        .list_fragments(
            s,
            TimestampKind::Producer,
            1_000_000 - 4,
            1_000_000,
            None,
            1000,
        )
        .unwrap();
    let mut nums: Vec<u64> = page.fragments.iter().map(|m| m.number).collect();
    nums.sort();
    assert_eq!(nums, all[..5].iter().map(|m| m.number).collect::<Vec<_>>());
    assert!(page.next.is_none());
    let empty = store
        .list_fragments(s, TimestampKind::Server, 0, t0 - 1, None, 1000)
        .unwrap();
    assert!(empty.fragments.is_empty() && empty.next.is_none());
}

/// Retention by age, with a simulated clock: expired fragments vanish, their segments go.
pub fn retention(open: Opener<'_>) {
    let clock = clock();
    let store = open(Arc::new(clock.clone())).unwrap();
    let s = stream(&store, "ret", 1);
    let keep = stream(&store, "ret-long", 24);
    let h = store.register_header(s, b"h").unwrap();
    let hk = store.register_header(keep, b"h").unwrap();
    let old: Vec<_> = (0..10)
        .map(|i| write(&store, s, h, i, &payload(i, 2000), 1))
        .collect();
    let kept = write(&store, keep, hk, 0, b"long", 1);
    clock.advance_ms(3_600_000 + 1);
    let fresh = write(&store, s, h, 99, b"fresh", 1);
    let r = store.run_retention().unwrap();
    assert_eq!(r.expired, 10);
    for m in &old {
        assert!(matches!(
            store.read_fragment(s, m.number),
            Err(StoreError::FragmentNotFound { .. })
        ));
    }
    assert_eq!(
        &store.read_fragment(s, fresh.number).unwrap().payload[..],
        b"fresh"
    );
    assert_eq!(
        &store.read_fragment(keep, kept.number).unwrap().payload[..],
        b"long"
    );
    // Sealed by age and empty: the old segment of the 1-hour lane is deleted, the others stay.
    clock.advance_ms(3_600_000 + 1);
    let r = store.run_retention().unwrap();
    assert_eq!(r.expired, 1);
    assert!(r.segments_deleted >= 1, "{r:?}");
    assert_eq!(
        &store.read_fragment(keep, kept.number).unwrap().payload[..],
        b"long"
    );
    // Decreasing retention expires at once.
    let rec = store.stream(StreamRef::Id(keep)).unwrap();
    clock.advance_ms(3_600_000);
    store
        .update_stream(StreamRef::Id(keep), Some(&rec.version), |r| {
            r.data_retention_hours = 1;
            Ok(())
        })
        .unwrap();
    assert!(store.read_fragment(keep, kept.number).is_err());
}

/// A byte budget drops the oldest fragments first.
pub fn byte_budget(open: Opener<'_>) {
    let store = open(Arc::new(clock())).unwrap();
    let s = store
        .create_stream(NewStream {
            name: "budget".into(),
            data_retention_hours: 24,
            byte_budget: Some(10_000),
            ..NewStream::default()
        })
        .unwrap()
        .id;
    let h = store.register_header(s, b"h").unwrap();
    let metas: Vec<_> = (0..10)
        .map(|i| write(&store, s, h, i, &payload(i, 3000), 1))
        .collect();
    let r = store.run_retention().unwrap();
    assert_eq!(r.over_budget, 7);
    assert_eq!(store.usage(s).unwrap().bytes, 9000);
    assert!(store.read_fragment(s, metas[6].number).is_err());
    assert!(store.read_fragment(s, metas[7].number).is_ok());
}

/// Retention 0: nothing persisted, live readers still served from memory.
pub fn no_retention(open: Opener<'_>) {
    let store = open(Arc::new(clock())).unwrap();
    let s = stream(&store, "live-only", 0);
    let h = store.register_header(s, b"h").unwrap();
    let m = write(&store, s, h, 1, b"ephemeral", 1);
    assert!(store.read_fragment(s, m.number).is_err());
    assert_eq!(store.usage(s).unwrap().fragments, 0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut t = store.tail(StreamRef::Id(s), StartAt::Earliest).unwrap();
        let TailEvent::Start(start) = t.next().await.unwrap() else {
            panic!("expected a start")
        };
        assert_eq!(start.number, m.number);
        let TailEvent::Data(d) = t.next().await.unwrap() else {
            panic!("expected data")
        };
        assert_eq!(&d[..], b"ephemeral");
    });
}

/// A writer's `retained` is the stream's retention as the fragment began, and says exactly
/// whether `finish` writes it: a retention change while the fragment is open changes neither.
pub fn retained_is_fixed_at_begin(open: Opener<'_>) {
    let store = open(Arc::new(clock())).unwrap();
    let kept = stream(&store, "retained-then-not", 24);
    let h = store.register_header(kept, b"h").unwrap();
    let mut w = store.begin_fragment(kept, h, 1).unwrap();
    assert!(w.retained());
    w.append(Bytes::from_static(b"kept")).unwrap();
    store
        .update_stream(StreamRef::Id(kept), None, |r| {
            r.data_retention_hours = 0;
            Ok(())
        })
        .unwrap();
    assert!(w.retained(), "fixed when the fragment began");
    let m = w.finish(1000).unwrap().wait_blocking().unwrap();
    assert_eq!(
        &store.read_fragment(kept, m.number).unwrap().payload[..],
        b"kept"
    );

    let ephemeral = stream(&store, "not-then-retained", 0);
    let h = store.register_header(ephemeral, b"h").unwrap();
    let mut w = store.begin_fragment(ephemeral, h, 1).unwrap();
    assert!(!w.retained());
    w.append(Bytes::from_static(b"memory")).unwrap();
    store
        .update_stream(StreamRef::Id(ephemeral), None, |r| {
            r.data_retention_hours = 24;
            Ok(())
        })
        .unwrap();
    assert!(!w.retained());
    let m = w.finish(1000).unwrap().wait_blocking().unwrap();
    assert!(
        store.read_fragment(ephemeral, m.number).is_err(),
        "never written"
    );
    // The next fragment follows the new retention.
    assert!(store.begin_fragment(ephemeral, h, 2).unwrap().retained());
}

/// Deleting a stream makes its data unreachable at once, and retention purges it.
pub fn delete_stream(open: Opener<'_>) {
    let store = open(Arc::new(clock())).unwrap();
    let s = stream(&store, "doomed", 24);
    let h = store.register_header(s, b"h").unwrap();
    let m = write(&store, s, h, 1, b"secret", 1);
    // A reader that looked the stream up just before the delete (a stream processor starting
    // as its stream goes) and makes the live state only after it: the state is born closed,
    // so the reader ends instead of waiting for ever.
    let looked_up = store.stream(StreamRef::Id(s)).unwrap();
    store.delete_stream(StreamRef::Id(s), None).unwrap();
    assert!(store.live_stream(&looked_up).is_closed());
    assert!(matches!(
        store.tail(StreamRef::Id(s), StartAt::Now),
        Err(StoreError::StreamNotFound(_))
    ));
    assert!(store.read_fragment(s, m.number).is_err());
    assert!(store.begin_fragment(s, h, 2).is_err());
    let r = store.run_retention().unwrap();
    assert_eq!(r.streams_purged, 1);
    assert_eq!(r.purged, 1);
}

/// Rotating a data key: new fragments use the new generation, old ones stay readable.
pub fn key_rotation(open: Opener<'_>) {
    let store = open(Arc::new(clock())).unwrap();
    let s = stream(&store, "rotate", 24);
    let h = store.register_header(s, b"h").unwrap();
    let a = write(&store, s, h, 1, b"before", 1);
    let g = store.rotate_data_key(StreamRef::Id(s), None).unwrap();
    assert_eq!(g, 2);
    let b = write(&store, s, h, 2, b"after", 1);
    if store.config().encryption {
        assert_eq!(a.key_gen, 1);
        assert_eq!(b.key_gen, 2);
    }
    assert_eq!(
        &store.read_fragment(s, a.number).unwrap().payload[..],
        b"before"
    );
    assert_eq!(
        &store.read_fragment(s, b.number).unwrap().payload[..],
        b"after"
    );
    assert!(matches!(
        store.rotate_data_key(StreamRef::Id(s), Some("missing")),
        Err(StoreError::KeyNotFound(_))
    ));
}

/// Tails: from the start through disk into the live edge frame by frame; from NOW; from a
/// number; from a timestamp.
pub fn tail(open: Opener<'_>) {
    let clock = clock();
    let store = open(Arc::new(clock.clone())).unwrap();
    let s = stream(&store, "tail", 24);
    let h = store.register_header(s, b"track header").unwrap();
    let t0 = clock.now_ms();
    let done: Vec<_> = (0..3u64)
        .map(|i| {
            clock.set_ms(t0 + i * 1000);
            write(&store, s, h, t0 + i * 1000, &payload(i, 300), 3)
        })
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut t = store.tail(StreamRef::Id(s), StartAt::Earliest).unwrap();
        for (i, m) in done.iter().enumerate() {
            let TailEvent::Start(st) = t.next().await.unwrap() else {
                panic!("expected start")
            };
            assert_eq!(st.number, m.number);
            assert_eq!(&st.header[..], b"track header");
            let mut got = Vec::new();
            loop {
                match t.next().await.unwrap() {
                    TailEvent::Data(d) => got.extend_from_slice(&d),
                    TailEvent::End { duration_ms } => {
                        assert_eq!(duration_ms, 1000);
                        break;
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            assert_eq!(got, payload(i as u64, 300));
        }
        // The live edge: each chunk as it is appended.
        clock.set_ms(t0 + 3000);
        let mut w = store.begin_fragment(s, h, t0 + 3000).unwrap();
        let mut now = store.tail(StreamRef::Id(s), StartAt::Now).unwrap();
        let TailEvent::Start(st) = t.next().await.unwrap() else {
            panic!("expected the live start")
        };
        assert!(st.live);
        assert_eq!(st.number, w.number());
        assert!(matches!(now.next().await.unwrap(), TailEvent::Start(_)));
        // The live edge: the fragment being received, and a receiver woken by each chunk.
        let mut edge = store.live_edge(StreamRef::Id(s)).unwrap();
        let live = edge
            .fragments
            .iter()
            .find(|f| f.number == w.number())
            .unwrap()
            .clone();
        assert_eq!(live.ending(), crate::live::Ending::Open);
        assert!(!edge.changes.has_changed().unwrap());
        for frame in [b"frame-1".as_slice(), b"frame-2"] {
            w.append(Bytes::copy_from_slice(frame)).unwrap();
            let TailEvent::Data(d) = t.next().await.unwrap() else {
                panic!("expected data")
            };
            assert_eq!(&d[..], frame);
        }
        assert!(edge.changes.has_changed().unwrap());
        edge.changes.borrow_and_update();
        assert_eq!(live.chunks().concat(), b"frame-1frame-2");
        let number = w.number();
        w.finish(500).unwrap().wait().await.unwrap();
        assert!(edge.changes.has_changed().unwrap());
        assert_eq!(
            live.ending(),
            crate::live::Ending::Complete { duration_ms: 500 }
        );
        assert!(matches!(
            t.next().await.unwrap(),
            TailEvent::End { duration_ms: 500 }
        ));
        // An aborted fragment is announced and skipped.
        let mut w = store.begin_fragment(s, h, t0 + 4000).unwrap();
        w.append(Bytes::from_static(b"partial")).unwrap();
        assert!(matches!(t.next().await.unwrap(), TailEvent::Start(_)));
        assert!(matches!(t.next().await.unwrap(), TailEvent::Data(_)));
        let aborted = w.number();
        assert!(
            store
                .live_edge(StreamRef::Id(s))
                .unwrap()
                .fragments
                .iter()
                .any(|f| f.number == aborted)
        );
        w.abort();
        assert!(matches!(t.next().await.unwrap(), TailEvent::Aborted));
        // Abandoned fragments are not at the live edge.
        assert!(
            !store
                .live_edge(StreamRef::Id(s))
                .unwrap()
                .fragments
                .iter()
                .any(|f| f.number == aborted)
        );

        // From a number, exclusive and inclusive.
        let mut t = store
            .tail(
                StreamRef::Id(s),
                StartAt::Fragment {
                    number: done[1].number,
                    inclusive: false,
                },
            )
            .unwrap();
        let TailEvent::Start(st) = t.next().await.unwrap() else {
            panic!()
        };
        assert_eq!(st.number, done[2].number);
        let mut t = store
            .tail(
                StreamRef::Id(s),
                StartAt::Fragment {
                    number: done[1].number,
                    inclusive: true,
                },
            )
            .unwrap();
        let TailEvent::Start(st) = t.next().await.unwrap() else {
            panic!()
        };
        assert_eq!(st.number, done[1].number);
        // From a timestamp inside fragment 1 (its 1 s duration covers t0+1500).
        let mut t = store
            .tail(
                StreamRef::Id(s),
                StartAt::Timestamp {
                    kind: TimestampKind::Producer,
                    ts_ms: t0 + 1500,
                },
            )
            .unwrap();
        let TailEvent::Start(st) = t.next().await.unwrap() else {
            panic!()
        };
        assert_eq!(st.number, done[1].number);
        let _ = number;
    });
}

/// A reader that stops reading never holds ingest back; when it resumes it reads every
/// fragment in order, from disk for those that have left memory, then from memory.
pub fn slow_reader(open: Opener<'_>) {
    let clock = clock();
    let store = open(Arc::new(clock.clone())).unwrap();
    let s = stream(&store, "slow", 24);
    let h = store.register_header(s, b"h").unwrap();
    let first = write(&store, s, h, 0, &payload(0, 1000), 1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut t = store.tail(StreamRef::Id(s), StartAt::Earliest).unwrap();
    rt.block_on(async {
        let TailEvent::Start(st) = t.next().await.unwrap() else {
            panic!("expected a start")
        };
        assert_eq!(st.number, first.number);
    });
    // The reader stalls in the middle of a fragment while 60 more arrive and become durable.
    let later: Vec<_> = (1..=60u64)
        .map(|i| write(&store, s, h, i, &payload(i, 1000 + i as usize), 2))
        .collect();
    rt.block_on(async {
        // Fragment 0's start was delivered before the stall.
        let mut seen = vec![first.number];
        let mut current = Vec::new();
        let mut ended = 0;
        while ended < 61 {
            match t.next().await.unwrap() {
                TailEvent::Start(st) => {
                    seen.push(st.number);
                    current.clear();
                }
                TailEvent::Data(d) => current.extend_from_slice(&d),
                TailEvent::End { .. } => {
                    let i = ended as u64;
                    let len = if i == 0 { 1000 } else { 1000 + i as usize };
                    assert_eq!(current, payload(i, len), "fragment {i}");
                    ended += 1;
                }
                TailEvent::Aborted => panic!("nothing was aborted"),
            }
        }
        let mut expected = vec![first.number];
        expected.extend(later.iter().map(|m| m.number));
        assert_eq!(seen, expected);
    });
}

/// A face of `collection`-independent test data: embedding values derived from `seed`.
pub fn test_face(face_id: u128, seed: u64) -> crate::StoredFace {
    let bytes = payload(seed, 512);
    crate::StoredFace {
        face_id,
        image_id: u128::from(seed) << 64 | 7,
        external_image_id: seed.is_multiple_of(2).then(|| format!("photo-{seed}.jpg")),
        bounding_box: [0.25, 0.125, 0.5, 0.625],
        confidence: 99.25,
        model_version: "1.0".into(),
        embedding: bytes.iter().map(|&b| f32::from(b) / 255.0 - 0.5).collect(),
    }
}

/// Face collections: create, list in name order with paging, add and remove faces with their
/// count, read faces back in id order, survive a reopen, and go with all their faces when
/// deleted (a collection created again under the name is empty).
pub fn face_collections(open: Opener<'_>) {
    {
        let store = open(Arc::new(clock())).unwrap();
        let mut tags = BTreeMap::new();
        tags.insert("site".to_owned(), "hq".to_owned());
        let a = store.create_collection("faces-b", "1.0", tags).unwrap();
        assert_eq!(a.face_count, 0);
        assert_eq!(a.creation_time_ms, clock().now_ms());
        assert!(matches!(
            store.create_collection("faces-b", "1.0", BTreeMap::new()),
            Err(StoreError::CollectionExists(_))
        ));
        store
            .create_collection("faces-a", "1.0", BTreeMap::new())
            .unwrap();
        store
            .create_collection("faces-c", "1.0", BTreeMap::new())
            .unwrap();
        let names = |after: Option<&str>, limit| -> Vec<String> {
            store
                .list_collections(after, limit)
                .unwrap()
                .into_iter()
                .map(|c| c.name)
                .filter(|n| n.starts_with("faces-"))
                .collect()
        };
        assert_eq!(names(None, 100), ["faces-a", "faces-b", "faces-c"]);
        assert_eq!(names(Some("faces-a"), 1), ["faces-b"]);
        assert!(names(Some("faces-c"), 100).is_empty());

        let faces: Vec<_> = (0..5u64)
            .map(|i| test_face(1000 - u128::from(i), i))
            .collect();
        let rec = store.add_faces("faces-b", &faces).unwrap();
        assert_eq!(rec.face_count, 5);
        // Adding a face again does not count it twice.
        let rec = store.add_faces("faces-b", &faces[..1]).unwrap();
        assert_eq!(rec.face_count, 5);
        assert!(matches!(
            store.add_faces("no-such", &faces),
            Err(StoreError::CollectionNotFound(_))
        ));
        let removed = store.delete_faces("faces-b", &[996, 5, 997]).unwrap();
        assert_eq!(removed, [996, 997]);
        assert_eq!(store.collection("faces-b").unwrap().face_count, 3);
        store.close().unwrap();
    }
    let store = open(Arc::new(clock())).unwrap();
    let rec = store.collection("faces-b").unwrap();
    assert_eq!(rec.face_count, 3);
    assert_eq!(rec.tags.get("site").map(String::as_str), Some("hq"));
    let all = store.faces(&rec, None, 100).unwrap();
    let ids: Vec<u128> = all.iter().map(|f| f.face_id).collect();
    assert_eq!(ids, [998, 999, 1000], "in id order");
    assert_eq!(all[2], test_face(1000, 0), "read back as written");
    assert_eq!(all[0], test_face(998, 2));
    let page = store.faces(&rec, Some(998), 1).unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].face_id, 999);
    assert_eq!(store.face(&rec, 999).unwrap().unwrap(), test_face(999, 1));
    assert_eq!(store.face(&rec, 996).unwrap(), None);

    let deleted = store.delete_collection("faces-b").unwrap();
    assert_eq!(deleted.id, rec.id);
    assert!(matches!(
        store.collection("faces-b"),
        Err(StoreError::CollectionNotFound(_))
    ));
    assert!(matches!(
        store.delete_collection("faces-b"),
        Err(StoreError::CollectionNotFound(_))
    ));
    assert!(
        store.faces(&rec, None, 100).unwrap().is_empty(),
        "faces deleted"
    );
    let again = store
        .create_collection("faces-b", "1.0", BTreeMap::new())
        .unwrap();
    assert_ne!(again.id, rec.id, "ids are never reused");
    assert!(store.faces(&again, None, 100).unwrap().is_empty());
    store.delete_collection("faces-a").unwrap();
    store.delete_collection("faces-b").unwrap();
    store.delete_collection("faces-c").unwrap();
}
