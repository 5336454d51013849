//! The conformance checks of log groups and logs ([`crate::logs`]), part of
//! [`super::run_all`]. Every check uses names of its own, so one backend serves them all in
//! turn.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use super::{Opener, clock, payload, write};
use crate::logs::{Appended, LogEntry, MAX_LOG_KEY_BYTES, NewEntry, NewLogGroup, Position};
use crate::{Clock, LogGroupRef, LogGroupStatus, NewStream, Store, StoreError};

/// Runs every log check.
pub fn run_all_logs(open: Opener<'_>) {
    log_groups(open);
    log_round_trip(open);
    log_positions(open);
    log_read_limits(open);
    log_position_at_time(open);
    log_retention(open);
    log_group_deletion(open);
    log_survives_reopen(open);
    log_subscription(open);
    log_key_rotation(open);
    logs_share_segments_with_fragments(open);
}

fn group(store: &Store, name: &str, hours: u32) -> u64 {
    store
        .create_log_group(NewLogGroup {
            retention_hours: hours,
            ..NewLogGroup::new(name)
        })
        .unwrap()
        .id
}

/// `n` entries whose keys name them (`<seed>/<i>`) and whose data is `payload` of a length
/// that varies with `i`, up to `len`.
pub fn test_entries(seed: u64, n: usize, len: usize) -> Vec<NewEntry> {
    (0..n)
        .map(|i| NewEntry {
            key: Bytes::from(format!("{seed}/{i}")),
            data: Bytes::from(payload(seed * 100_000 + i as u64, len * (i + 1) / n.max(1))),
        })
        .collect()
}

/// Appends and waits for the batch to be durable.
pub fn append(store: &Store, group: u64, log: u32, entries: &[NewEntry]) -> Appended {
    store
        .append_log(group, log, entries)
        .unwrap()
        .wait_blocking()
        .unwrap()
}

/// Everything a log holds, read in pages of `page` entries.
pub fn read_all(store: &Store, group: u64, log: u32, page: usize) -> Vec<LogEntry> {
    let mut out: Vec<LogEntry> = Vec::new();
    let mut from = Position::MIN;
    loop {
        let got = store.read_log(group, log, from, page, usize::MAX).unwrap();
        let Some(last) = got.last() else { break };
        from = last.position.next();
        out.extend(got);
    }
    out
}

/// Checks that `got` are exactly `sent`'s entries at the positions `done` gave them.
fn assert_batch(got: &[LogEntry], done: &Appended, sent: &[NewEntry]) {
    assert_eq!(got.len(), sent.len(), "entries of batch {}", done.first);
    for (i, (g, s)) in got.iter().zip(sent).enumerate() {
        assert_eq!(g.position, Position::new(done.first.batch(), i as u16));
        assert_eq!(g.arrival_ms, done.arrival_ms);
        assert_eq!(g.key, s.key);
        assert!(
            g.data == s.data,
            "data of entry {i} of batch {}",
            done.first
        );
    }
}

/// Log groups: create (names unique, retention at least 1 hour, a known master key), find by
/// name and id, list by prefix in pages, update retention and attributes under a rising
/// version (and nothing else), delete (the name is free again, under a new id), reopen.
pub fn log_groups(open: Opener<'_>) {
    let clock = clock();
    let (a, b) = {
        let store = open(Arc::new(clock.clone())).unwrap();
        let mut attributes = BTreeMap::new();
        attributes.insert(
            "shards".to_owned(),
            serde_json::json!([{"log": 0}, {"log": 1}]),
        );
        let a = store
            .create_log_group(NewLogGroup {
                retention_hours: 48,
                attributes: attributes.clone(),
                ..NewLogGroup::new("lg-a")
            })
            .unwrap();
        assert_eq!(a.retention_hours, 48);
        assert_eq!(a.kms_key_id, crate::DEFAULT_MASTER_KEY_ID);
        assert_eq!(a.key_generation, 1);
        assert_eq!(a.status, LogGroupStatus::Active);
        assert_eq!(a.creation_time_ms, clock.now_ms());
        assert_eq!(a.attributes, attributes);
        assert_eq!(NewLogGroup::new("x").retention_hours, 24, "the default");
        assert!(matches!(
            store.create_log_group(NewLogGroup::new("lg-a")),
            Err(StoreError::LogGroupExists(_))
        ));
        for bad in [
            NewLogGroup {
                retention_hours: 0,
                ..NewLogGroup::new("lg-zero")
            },
            NewLogGroup::new(""),
        ] {
            assert!(matches!(
                store.create_log_group(bad),
                Err(StoreError::InvalidArgument(_))
            ));
        }
        assert!(matches!(
            store.create_log_group(NewLogGroup {
                kms_key_id: Some("no-such-key".into()),
                ..NewLogGroup::new("lg-key")
            }),
            Err(StoreError::KeyNotFound(_))
        ));
        let b = store.create_log_group(NewLogGroup::new("lg-b")).unwrap();
        store.create_log_group(NewLogGroup::new("lg-c")).unwrap();
        store.create_log_group(NewLogGroup::new("lgx-1")).unwrap();
        assert_ne!(a.id, b.id);
        assert_eq!(store.log_group(LogGroupRef::Name("lg-a")).unwrap(), a);
        assert_eq!(store.log_group(LogGroupRef::Id(a.id)).unwrap(), a);
        let names = |prefix: &str, after: Option<&str>, limit| -> Vec<String> {
            let v = store.list_log_groups(prefix, after, limit).unwrap();
            v.into_iter().map(|g| g.name).collect()
        };
        assert_eq!(names("lg-", None, 10), ["lg-a", "lg-b", "lg-c"]);
        assert_eq!(names("lg-", Some("lg-a"), 1), ["lg-b"]);
        assert!(names("lg-", Some("lg-c"), 10).is_empty());
        assert_eq!(names("lg", None, 10), ["lg-a", "lg-b", "lg-c", "lgx-1"]);

        // Retention and attributes change, with the version; nothing else may.
        let updated = store
            .update_log_group(LogGroupRef::Name("lg-a"), |g| {
                g.retention_hours = 72;
                g.attributes
                    .insert("owner".into(), serde_json::json!("engine"));
                Ok::<_, StoreError>(())
            })
            .unwrap();
        assert_eq!(updated.version, a.version + 1);
        assert_eq!(updated.retention_hours, 72);
        assert_eq!(updated.attributes.len(), 2);
        for f in [
            (|g: &mut crate::LogGroupRecord| g.name = "renamed".into())
                as fn(&mut crate::LogGroupRecord),
            |g| g.key_generation += 1,
            |g| g.retention_hours = 0,
            |g| g.status = LogGroupStatus::Deleting,
        ] {
            let r = store.update_log_group(LogGroupRef::Id(a.id), |g| {
                f(g);
                Ok::<_, StoreError>(())
            });
            assert!(matches!(r, Err(StoreError::InvalidArgument(_))), "{r:?}");
        }
        let r = store.update_log_group(LogGroupRef::Id(a.id), |g| {
            g.retention_hours = 1;
            Err(StoreError::InvalidArgument("the caller's own check".into()))
        });
        assert!(r.is_err());
        assert_eq!(store.log_group(LogGroupRef::Id(a.id)).unwrap(), updated);

        store.delete_log_group(LogGroupRef::Name("lg-c")).unwrap();
        assert!(matches!(
            store.log_group(LogGroupRef::Name("lg-c")),
            Err(StoreError::LogGroupNotFound(_))
        ));
        assert!(matches!(
            store.delete_log_group(LogGroupRef::Name("lg-c")),
            Err(StoreError::LogGroupNotFound(_))
        ));
        assert_eq!(names("lg-", None, 10), ["lg-a", "lg-b"]);
        let again = store.create_log_group(NewLogGroup::new("lg-c")).unwrap();
        assert!(again.id > b.id, "ids are never reused");
        store.close().unwrap();
        (updated, b)
    };
    let store = open(Arc::new(clock)).unwrap();
    assert_eq!(store.log_group(LogGroupRef::Name("lg-a")).unwrap(), a);
    assert_eq!(store.log_group(LogGroupRef::Id(b.id)).unwrap(), b);
    let v = store.list_log_groups("lg-", None, 10).unwrap();
    assert_eq!(v.len(), 3);
    // Streams are another id space and another name space.
    store
        .create_stream(NewStream {
            name: "lg-a".into(),
            data_retention_hours: 1,
            ..NewStream::default()
        })
        .unwrap();
}

/// Batches read back entry for entry, key and data, with their positions and arrival time;
/// from any position inside or between batches; the same from memory and, after a reopen,
/// from disk. Bad batches are refused.
pub fn log_round_trip(open: Opener<'_>) {
    let clock = clock();
    let (g, sent) = {
        let store = open(Arc::new(clock.clone())).unwrap();
        let g = group(&store, "rt-log", 24);
        let mut first = test_entries(1, 3, 3000);
        first.push(NewEntry {
            key: Bytes::new(),
            data: Bytes::new(),
        });
        first.push(NewEntry {
            key: Bytes::from(vec![b'k'; MAX_LOG_KEY_BYTES]),
            data: Bytes::from(payload(77, (1 << 20) + 1)),
        });
        let a = append(&store, g, 0, &first);
        assert_eq!(a.first.index(), 0);
        assert_eq!(a.entries, 5);
        assert_eq!(a.arrival_ms, clock.now_ms());
        assert_eq!(a.last(), Position::new(a.first.batch(), 4));
        clock.advance_ms(10);
        let second = test_entries(2, 1, 10);
        let b = append(&store, g, 0, &second);
        assert!(b.first > a.last());
        let sent = vec![(a, first), (b, second.clone())];
        check_round_trip(&store, g, &sent);

        // Refused: nothing in a batch, an oversized key, an unknown group.
        let bad_key = [NewEntry {
            key: Bytes::from(vec![0; MAX_LOG_KEY_BYTES + 1]),
            data: Bytes::new(),
        }];
        for entries in [&[][..], &bad_key[..]] {
            assert!(matches!(
                store.append_log(g, 0, entries),
                Err(StoreError::InvalidArgument(_))
            ));
        }
        assert!(matches!(
            store.append_log(1 << 40, 0, &second),
            Err(StoreError::LogGroupNotFound(_))
        ));
        assert!(matches!(
            store.read_log(1 << 40, 0, Position::MIN, 10, 1000),
            Err(StoreError::LogGroupNotFound(_))
        ));
        // A log never written to is empty.
        assert!(
            store
                .read_log(g, 9, Position::MIN, 10, 1000)
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.log_bounds(g, 9).unwrap(), crate::LogBounds::default());
        store.close().unwrap();
        (g, sent)
    };
    // From disk, the same.
    let store = open(Arc::new(clock)).unwrap();
    check_round_trip(&store, g, &sent);
}

fn check_round_trip(store: &Store, g: u64, sent: &[(Appended, Vec<NewEntry>)]) {
    let all = store
        .read_log(g, 0, Position::MIN, 100, usize::MAX)
        .unwrap();
    let (a, first) = &sent[0];
    let (b, second) = &sent[1];
    assert_batch(&all[..5], a, first);
    assert_batch(&all[5..], b, second);
    // From inside the first batch; from one past its end (the next batch); past everything.
    let mid = store
        .read_log(g, 0, Position::new(a.first.batch(), 3), 100, usize::MAX)
        .unwrap();
    assert_eq!(mid, all[3..]);
    let next = store
        .read_log(g, 0, a.last().next(), 100, usize::MAX)
        .unwrap();
    assert_eq!(next, all[5..]);
    let between = store
        .read_log(g, 0, Position::new(a.first.batch() + 1, 0), 100, usize::MAX)
        .unwrap();
    assert_eq!(between, all[5..]);
    assert!(
        store
            .read_log(g, 0, b.last().next(), 100, usize::MAX)
            .unwrap()
            .is_empty()
    );
    let bounds = store.log_bounds(g, 0).unwrap();
    assert_eq!(bounds.first, Some(a.first));
    assert_eq!(bounds.last, Some(b.last()));
    assert_eq!(bounds.next(), b.last().next());
    assert_eq!(bounds.last_arrival_ms, Some(b.arrival_ms));
}

/// Positions increase with every append, within a log and across logs and fragments (one
/// store-wide sequence), whether appends wait for each other or not; and concurrent readers
/// never see a later batch of a log before an earlier one.
pub fn log_positions(open: Opener<'_>) {
    let store = open(Arc::new(clock())).unwrap();
    let g = group(&store, "positions", 24);
    let s = super::stream(&store, "positions-s", 24);
    let h = store.register_header(s, b"h").unwrap();
    let mut last = Position::MIN;
    let mut last_number = 0;
    for i in 0..12u64 {
        let done = append(&store, g, (i % 3) as u32, &test_entries(i, 2, 100));
        assert!(done.first > last, "batch {i}");
        assert!(done.first.batch() > last_number);
        last = done.last();
        let m = write(&store, s, h, i, b"f", 1);
        assert!(m.number > done.first.batch(), "a fragment after the batch");
        last_number = m.number;
    }
    // Pipelined: queued before any is durable, resolved in order.
    let pending: Vec<_> = (0..20u64)
        .map(|i| {
            store
                .append_log(g, 0, &test_entries(100 + i, 1, 10))
                .unwrap()
        })
        .collect();
    let done: Vec<Appended> = pending
        .into_iter()
        .map(|p| p.wait_blocking().unwrap())
        .collect();
    assert!(done.windows(2).all(|w| w[0].first < w[1].first));
    assert!(done[0].first.batch() > last_number);

    // Four writers on one log, and a reader that must only ever see a prefix of the log.
    let log = 7;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut seen: Vec<LogEntry> = Vec::new();
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) || reads == 0 {
                let now = read_all(&store, g, log, 7);
                assert!(now.windows(2).all(|w| w[0].position < w[1].position));
                assert!(now.len() >= seen.len(), "entries vanished");
                assert_eq!(
                    now[..seen.len()],
                    seen[..],
                    "a later batch was visible first"
                );
                seen = now;
                reads += 1;
            }
            seen
        })
    };
    let writers: Vec<_> = (0..4u64)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                (0..25u64)
                    .map(|i| {
                        let e = test_entries(1000 + t * 100 + i, 1 + (i % 3) as usize, 64);
                        (append(&store, g, log, &e), e)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut sent: Vec<(Appended, Vec<NewEntry>)> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    reader.join().unwrap();
    sent.sort_by_key(|(a, _)| a.first);
    let all = read_all(&store, g, log, 1000);
    let mut at = 0;
    for (a, e) in &sent {
        assert_batch(&all[at..at + e.len()], a, e);
        at += e.len();
    }
    assert_eq!(at, all.len(), "nothing else in the log");
}

/// Read limits: at most `max_entries`, at most `max_bytes` of keys and data (except a first
/// entry larger than that, returned alone), across batch boundaries; the same from memory
/// and from disk.
pub fn log_read_limits(open: Opener<'_>) {
    let clock = clock();
    let (g, from_memory) = {
        let store = open(Arc::new(clock.clone())).unwrap();
        let g = group(&store, "limits", 24);
        let small: Vec<NewEntry> = (0..10)
            .map(|i| NewEntry {
                key: Bytes::from(format!("k{i}")),
                data: Bytes::from(vec![i as u8; 100]),
            })
            .collect();
        let a = append(&store, g, 0, &small);
        let big = [
            NewEntry {
                key: Bytes::from_static(b"big"),
                data: Bytes::from(vec![0xbb; 5000]),
            },
            NewEntry {
                key: Bytes::from_static(b"after"),
                data: Bytes::from(vec![0xaa; 10]),
            },
        ];
        let b = append(&store, g, 0, &big);
        let reads = reads(&store, g, a, b);
        store.close().unwrap();
        (g, (a, b, reads))
    };
    let store = open(Arc::new(clock)).unwrap();
    let (a, b, reads_then) = from_memory;
    assert_eq!(reads(&store, g, a, b), reads_then, "disk and memory agree");
}

fn reads(store: &Store, g: u64, a: Appended, b: Appended) -> Vec<Vec<LogEntry>> {
    let read = |from, n, bytes| store.read_log(g, 0, from, n, bytes).unwrap();
    let at = |p: &Vec<LogEntry>| {
        p.iter()
            .map(|e| (e.position.batch(), e.position.index()))
            .collect::<Vec<_>>()
    };
    let ab = a.first.batch();
    let bb = b.first.batch();
    let out = vec![
        read(a.first, 3, usize::MAX),
        // 102 bytes each: two fit in 250.
        read(a.first, 100, 250),
        // Across the boundary: the last two small ones, then the big one does not fit.
        read(Position::new(ab, 8), 100, 300),
        // The big one first: returned alone, whatever the limit.
        read(b.first, 100, 100),
        read(b.first, 100, 1),
        read(b.first.next(), 100, 100),
        read(a.first, 0, usize::MAX),
        read(Position::new(ab, 5), 7, usize::MAX),
    ];
    assert_eq!(at(&out[0]), [(ab, 0), (ab, 1), (ab, 2)]);
    assert_eq!(at(&out[1]), [(ab, 0), (ab, 1)]);
    assert_eq!(at(&out[2]), [(ab, 8), (ab, 9)]);
    assert_eq!(at(&out[3]), [(bb, 0)]);
    assert_eq!(out[3][0].data.len(), 5000);
    assert_eq!(at(&out[4]), [(bb, 0)]);
    assert_eq!(at(&out[5]), [(bb, 1)]);
    assert!(out[6].is_empty());
    assert_eq!(
        at(&out[7]),
        [
            (ab, 5),
            (ab, 6),
            (ab, 7),
            (ab, 8),
            (ab, 9),
            (bb, 0),
            (bb, 1)
        ]
    );
    out
}

/// Positions by arrival time: the first batch at or after a time; arrival times never go
/// back along a log, even when the clock does, and across a reopen.
pub fn log_position_at_time(open: Opener<'_>) {
    let clock = clock();
    let t0 = clock.now_ms();
    let (g, b, c) = {
        let store = open(Arc::new(clock.clone())).unwrap();
        let g = group(&store, "at-time", 24);
        let a = append(&store, g, 0, &test_entries(1, 2, 10));
        clock.set_ms(t0 + 1000);
        let b = append(&store, g, 0, &test_entries(2, 2, 10));
        clock.set_ms(t0 + 2000);
        let c = append(&store, g, 0, &test_entries(3, 2, 10));
        // Another log's batches do not count.
        clock.set_ms(t0 + 1500);
        append(&store, g, 1, &test_entries(4, 1, 10));
        let at = |ts| store.position_at_time(g, 0, ts).unwrap();
        assert_eq!(at(0), Some(a.first));
        assert_eq!(at(t0), Some(a.first));
        assert_eq!(at(t0 + 1), Some(b.first));
        assert_eq!(at(t0 + 1000), Some(b.first));
        assert_eq!(at(t0 + 1999), Some(c.first));
        assert_eq!(at(t0 + 2000), Some(c.first));
        assert_eq!(at(t0 + 2001), None);
        // The clock goes back: the arrival time holds.
        clock.set_ms(t0 + 500);
        let d = append(&store, g, 0, &test_entries(5, 1, 10));
        assert_eq!(d.arrival_ms, t0 + 2000);
        assert_eq!(at(t0 + 2000), Some(c.first));
        let bounds = store.log_bounds(g, 0).unwrap();
        assert_eq!(bounds.first, Some(a.first));
        assert_eq!(bounds.last, Some(d.last()));
        assert_eq!(bounds.last_arrival_ms, Some(t0 + 2000));
        store.close().unwrap();
        (g, b, c)
    };
    clock.set_ms(t0);
    let store = open(Arc::new(clock.clone())).unwrap();
    assert_eq!(store.position_at_time(g, 0, t0 + 1).unwrap(), Some(b.first));
    let e = append(&store, g, 0, &test_entries(6, 1, 10));
    assert_eq!(
        e.arrival_ms,
        t0 + 2000,
        "not before the newest arrival, across a reopen"
    );
    assert!(e.first > c.last());
}

/// Retention with a simulated clock: batches older than the group's retention vanish (from
/// memory as from the index), other groups' stay, their segments go once empty, and a
/// shorter retention applies at once.
pub fn log_retention(open: Opener<'_>) {
    let clock = clock();
    let store = open(Arc::new(clock.clone())).unwrap();
    let short = group(&store, "ret-log-1h", 1);
    let long = group(&store, "ret-log-24h", 24);
    let old: Vec<Appended> = (0..5u64)
        .map(|i| {
            append(&store, short, 1, &test_entries(10 + i, 1, 2000));
            append(&store, short, 0, &test_entries(i, 3, 2000))
        })
        .collect();
    let kept_entries = test_entries(99, 2, 100);
    let kept = append(&store, long, 0, &kept_entries);
    clock.advance_ms(3_600_000 + 1);
    let fresh_entries = test_entries(50, 2, 100);
    let fresh = append(&store, short, 0, &fresh_entries);
    let r = store.run_retention().unwrap();
    assert_eq!(r.log_batches_expired, 10, "{r:?}");
    // Read without a reopen: the in-memory tail has lost them too.
    let left = read_all(&store, short, 0, 100);
    assert_batch(&left, &fresh, &fresh_entries);
    assert!(read_all(&store, short, 1, 100).is_empty());
    // From where an expired batch was: on to what is left, nothing expired.
    for a in &old {
        let from_old = store.read_log(short, 0, a.first, 100, usize::MAX).unwrap();
        assert_batch(&from_old, &fresh, &fresh_entries);
    }
    assert_eq!(store.log_bounds(short, 0).unwrap().first, Some(fresh.first));
    assert_eq!(store.log_bounds(short, 1).unwrap().first, None);
    assert_eq!(
        store.position_at_time(short, 0, 0).unwrap(),
        Some(fresh.first)
    );
    assert_batch(&read_all(&store, long, 0, 100), &kept, &kept_entries);
    clock.advance_ms(3_600_000 + 1);
    let r2 = store.run_retention().unwrap();
    assert_eq!(r2.log_batches_expired, 1);
    assert!(
        r.segments_deleted + r2.segments_deleted >= 1,
        "the 1-hour lane's old segment goes: {r:?} {r2:?}"
    );
    assert_batch(&read_all(&store, long, 0, 100), &kept, &kept_entries);
    // A shorter retention: at once, without a retention pass.
    store
        .update_log_group(LogGroupRef::Id(long), |g| {
            g.retention_hours = 1;
            Ok::<_, StoreError>(())
        })
        .unwrap();
    assert!(read_all(&store, long, 0, 100).is_empty());
    assert_eq!(store.log_bounds(long, 0).unwrap().first, None);
}

/// Deleting a group: gone for callers at once, its keys destroyed (its batches cannot be
/// decrypted any more), subscribers woken, its rows purged by retention; the name is free.
pub fn log_group_deletion(open: Opener<'_>) {
    let store = open(Arc::new(clock())).unwrap();
    let g = group(&store, "doomed-log", 24);
    append(&store, g, 0, &test_entries(1, 2, 100));
    append(&store, g, 3, &test_entries(2, 1, 100));
    let rows = store.index().log_batches(g, 0, 0, 10).unwrap();
    assert_eq!(rows.len(), 1);
    assert!(store.read_log_batch(&rows[0]).is_ok());
    let mut rx = store.subscribe_log(g, 0).unwrap();
    rx.borrow_and_update();
    store.delete_log_group(LogGroupRef::Id(g)).unwrap();
    assert!(rx.has_changed().unwrap_or(true), "subscribers are woken");
    let gone = |r: crate::Result<()>| matches!(r, Err(StoreError::LogGroupNotFound(_)));
    assert!(gone(store.log_group(LogGroupRef::Id(g)).map(|_| ())));
    assert!(gone(
        store.log_group(LogGroupRef::Name("doomed-log")).map(|_| ())
    ));
    assert!(gone(
        store.append_log(g, 0, &test_entries(3, 1, 1)).map(|_| ())
    ));
    assert!(gone(
        store.read_log(g, 0, Position::MIN, 10, 100).map(|_| ())
    ));
    assert!(gone(store.log_bounds(g, 0).map(|_| ())));
    assert!(gone(store.position_at_time(g, 0, 0).map(|_| ())));
    assert!(gone(store.subscribe_log(g, 0).map(|_| ())));
    assert!(gone(
        store.rotate_log_key(LogGroupRef::Id(g), None).map(|_| ())
    ));
    // Crypto-shredded: no key left, so the bytes still in the segment cannot be opened.
    assert!(store.index().log_keys(g).unwrap().is_empty());
    if store.config().encryption {
        assert!(matches!(
            store.read_log_batch(&rows[0]),
            Err(StoreError::Authentication { .. })
        ));
    }
    let rec = store.index().log_group(g).unwrap().unwrap();
    assert_eq!(rec.status, LogGroupStatus::Deleting);
    let r = store.run_retention().unwrap();
    assert_eq!(r.log_groups_purged, 1, "{r:?}");
    assert_eq!(r.log_batches_purged, 2);
    assert!(store.index().log_group(g).unwrap().is_none());
    assert!(store.index().log_batches(g, 0, 0, 10).unwrap().is_empty());
    assert!(store.index().log_numbers(g).unwrap().is_empty());
    let again = group(&store, "doomed-log", 24);
    assert_ne!(again, g);
    assert!(read_all(&store, again, 0, 10).is_empty());
}

/// Everything durable is there after a reopen, and positions keep increasing.
pub fn log_survives_reopen(open: Opener<'_>) {
    let clock = clock();
    let (g, sent) = {
        let store = open(Arc::new(clock.clone())).unwrap();
        let g = group(&store, "reopen-log", 24);
        let sent: Vec<(u32, Appended, Vec<NewEntry>)> = (0..30u64)
            .map(|i| {
                let log = (i % 3) as u32;
                let e = test_entries(i, 1 + (i % 4) as usize, 3000);
                (log, append(&store, g, log, &e), e)
            })
            .collect();
        store.close().unwrap();
        (g, sent)
    };
    let store = open(Arc::new(clock)).unwrap();
    for log in 0..3 {
        let all = read_all(&store, g, log, 5);
        let mut at = 0;
        for (_, a, e) in sent.iter().filter(|(l, _, _)| *l == log) {
            assert_batch(&all[at..at + e.len()], a, e);
            at += e.len();
        }
        assert_eq!(at, all.len());
        let last = sent.iter().rfind(|(l, _, _)| *l == log).unwrap();
        assert_eq!(
            *store.subscribe_log(g, log).unwrap().borrow(),
            Some(last.1.last())
        );
    }
    // Nothing is in memory after a restart: the memory-only read sends a reader to disk.
    assert_eq!(
        store
            .read_log_memory(g, 1, Position::MIN, 10, 1 << 20)
            .unwrap(),
        None
    );
    let max = sent.iter().map(|(_, a, _)| a.last()).max().unwrap();
    let next = append(&store, g, 1, &test_entries(999, 1, 10));
    assert!(next.first > max);
    // A reader at the live edge is served from memory, and nothing older is made up.
    let live = store
        .read_log_memory(g, 1, next.first, 10, 1 << 20)
        .unwrap()
        .unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live.first().unwrap().position, next.first);
    assert_eq!(
        store
            .read_log_memory(g, 1, Position::MIN, 10, 1 << 20)
            .unwrap(),
        None
    );
    assert!(
        store
            .read_log_memory(g, 1, next.first.next(), 10, 1 << 20)
            .unwrap()
            .unwrap()
            .is_empty()
    );
}

/// A subscriber learns of each durable append before the appender does, and can read it.
pub fn log_subscription(open: Opener<'_>) {
    let store = open(Arc::new(clock())).unwrap();
    let g = group(&store, "subscribed", 24);
    let mut rx = store.subscribe_log(g, 0).unwrap();
    let mut other = store.subscribe_log(g, 1).unwrap();
    assert_eq!(*rx.borrow_and_update(), None);
    let done = append(&store, g, 0, &test_entries(1, 3, 10));
    assert!(rx.has_changed().unwrap(), "told before the append resolved");
    assert_eq!(*rx.borrow_and_update(), Some(done.last()));
    assert!(
        !other.has_changed().unwrap(),
        "another log's subscribers are not"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let writer = {
            let store = store.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                append(&store, g, 0, &test_entries(2, 1, 10))
            })
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), rx.changed())
            .await
            .expect("woken by the append")
            .unwrap();
        let seen = *rx.borrow_and_update();
        let second = writer.join().unwrap();
        assert_eq!(seen, Some(second.last()));
        let got = store
            .read_log(g, 0, done.last().next(), 10, usize::MAX)
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].position, second.first);
    });
    other.borrow_and_update();
}

/// Rotating a group's data key: new batches use the new generation, old ones stay readable.
pub fn log_key_rotation(open: Opener<'_>) {
    let clock = clock();
    let (g, a, b) = {
        let store = open(Arc::new(clock.clone())).unwrap();
        let g = group(&store, "rotate-log", 24);
        let a = append(&store, g, 0, &test_entries(1, 2, 100));
        assert_eq!(store.rotate_log_key(LogGroupRef::Id(g), None).unwrap(), 2);
        let b = append(&store, g, 0, &test_entries(2, 2, 100));
        let rows = store.index().log_batches(g, 0, 0, 10).unwrap();
        if store.config().encryption {
            assert_eq!(rows[0].key_gen, 1);
            assert_eq!(rows[1].key_gen, 2);
        } else {
            assert!(rows.iter().all(|r| r.key_gen == 0));
        }
        let rec = store.log_group(LogGroupRef::Id(g)).unwrap();
        assert_eq!(rec.key_generation, 2);
        assert!(matches!(
            store.rotate_log_key(LogGroupRef::Id(g), Some("missing")),
            Err(StoreError::KeyNotFound(_))
        ));
        store.close().unwrap();
        (g, a, b)
    };
    let store = open(Arc::new(clock)).unwrap();
    let all = read_all(&store, g, 0, 100);
    assert_batch(&all[..2], &a, &test_entries(1, 2, 100));
    assert_batch(&all[2..], &b, &test_entries(2, 2, 100));
}

/// Fragments and log batches of the same retention share segment files, and a segment goes
/// only when neither kind lives in it.
pub fn logs_share_segments_with_fragments(open: Opener<'_>) {
    let clock = clock();
    let store = open(Arc::new(clock.clone())).unwrap();
    let s = super::stream(&store, "mixed-s", 24);
    let g = group(&store, "mixed-g", 24);
    let h = store.register_header(s, b"h").unwrap();
    let m = write(&store, s, h, 1, b"fragment", 1);
    let entries = test_entries(1, 2, 100);
    let done = append(&store, g, 0, &entries);
    let row = store.index().log_batches(g, 0, 0, 1).unwrap()[0];
    assert_eq!(
        row.location.segment, m.location.segment,
        "one lane, one segment"
    );
    store.delete_stream(crate::StreamRef::Id(s), None).unwrap();
    clock.advance_ms(3_600_000 + 1);
    let r = store.run_retention().unwrap();
    assert_eq!(r.streams_purged, 1);
    assert!(
        store
            .blobs()
            .list()
            .unwrap()
            .contains(&row.location.segment),
        "a batch still lives in the segment: {r:?}"
    );
    assert_batch(&read_all(&store, g, 0, 10), &done, &entries);
    store.delete_log_group(LogGroupRef::Id(g)).unwrap();
    let r = store.run_retention().unwrap();
    assert!(r.segments_deleted >= 1, "{r:?}");
    assert!(
        !store
            .blobs()
            .list()
            .unwrap()
            .contains(&row.location.segment)
    );
}
