//! The data streams engine over a real store in a temporary directory: puts and reads,
//! routing, reshards read through their lineage, reopening, subscriptions, deletion, puts
//! racing a reshard, and concurrent puts sharing a shard's batches.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use vigil_datastreams::hash::partition_hash;
use vigil_datastreams::{
    DataStreams, Error, Limits, NewRecord, NewStream, Record, StartAt, StreamMode,
};
use vigil_store::{Store, StoreConfig, SystemClock};

fn open(dir: &std::path::Path) -> (Store, DataStreams) {
    let mut cfg = StoreConfig::new(dir);
    cfg.min_free_bytes = 0;
    let store = Store::open(cfg, Arc::new(SystemClock)).unwrap();
    let ds = DataStreams::open(store.clone(), Limits::default()).unwrap();
    (store, ds)
}

fn create(ds: &DataStreams, name: &str, shards: u32) {
    ds.create(NewStream {
        name: name.into(),
        mode: StreamMode::Provisioned,
        shard_count: shards,
        tags: BTreeMap::new(),
    })
    .unwrap();
}

fn record(key: &str, data: &str) -> NewRecord {
    NewRecord {
        partition_key: key.into(),
        explicit_hash_key: None,
        data: Bytes::from(data.to_owned()),
    }
}

/// Every record of a shard from its trim horizon to its end or tip.
fn read_shard(ds: &DataStreams, name: &str, shard: u32) -> (Vec<Record>, Vec<u32>) {
    let (info, mut pos) = ds.start(name, shard, StartAt::TrimHorizon).unwrap();
    let mut out = Vec::new();
    loop {
        let b = ds.read(name, info.id, shard, pos, 3, 1 << 20).unwrap();
        out.extend(b.records.clone());
        match b.next {
            None => return (out, b.children.iter().map(|c| c.index).collect()),
            Some(n) if b.records.is_empty() => {
                assert_eq!(n, pos);
                return (out, Vec::new());
            }
            Some(n) => pos = n,
        }
    }
}

/// Every record of a stream, read from its first shards through the lineage (a child once all
/// its parents are read, as the KCL does).
fn read_lineage(ds: &DataStreams, name: &str) -> Vec<(u32, Record)> {
    let info = ds.describe(name).unwrap();
    let parents: BTreeMap<u32, Vec<u32>> = info
        .meta
        .shards
        .iter()
        .map(|s| {
            (
                s.index,
                s.parent.into_iter().chain(s.adjacent_parent).collect(),
            )
        })
        .collect();
    let mut pending: Vec<u32> = info
        .meta
        .shards
        .iter()
        .filter(|s| s.parent.is_none())
        .map(|s| s.index)
        .collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    while let Some(shard) = pending.pop() {
        let (records, children) = read_shard(ds, name, shard);
        let seqs: Vec<_> = records.iter().map(|r| r.sequence).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order in {shard}");
        out.extend(records.into_iter().map(|r| (shard, r)));
        done.insert(shard);
        for c in children {
            if parents[&c].iter().all(|p| done.contains(p)) && !pending.contains(&c) {
                pending.push(c);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_go_to_the_shard_of_their_hash_and_read_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, ds) = open(dir.path());
    let d = ds.clone();
    tokio::task::spawn_blocking(move || create(&d, "s", 3))
        .await
        .unwrap();
    let records: Vec<NewRecord> = (0..300)
        .map(|i| record(&format!("k{i}"), &format!("d{i}")))
        .collect();
    let puts = ds.put("s", records).await.unwrap();
    let info = ds.describe("s").unwrap();
    for (i, p) in puts.iter().enumerate() {
        let p = p.as_ref().unwrap();
        let s = info.meta.shard(p.shard).unwrap();
        assert!(s.owns(partition_hash(&format!("k{i}"))));
    }
    let d = ds.clone();
    let read = tokio::task::spawn_blocking(move || read_lineage(&d, "s"))
        .await
        .unwrap();
    let got: BTreeMap<String, String> = read
        .iter()
        .map(|(_, r)| {
            (
                r.partition_key.clone(),
                String::from_utf8(r.data.to_vec()).unwrap(),
            )
        })
        .collect();
    assert_eq!(got.len(), 300);
    for i in 0..300 {
        assert_eq!(got[&format!("k{i}")], format!("d{i}"));
    }
    let explicit = NewRecord {
        explicit_hash_key: Some(u128::MAX),
        ..record("any", "x")
    };
    let p = ds
        .put("s", vec![explicit])
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    assert_eq!(p.shard, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reshards_keep_every_record_once_and_the_children_above_their_parents() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, ds) = open(dir.path());
    let d = ds.clone();
    tokio::task::spawn_blocking(move || create(&d, "r", 2))
        .await
        .unwrap();
    let mut sent = Vec::new();
    for round in 0..5 {
        let recs: Vec<NewRecord> = (0..40)
            .map(|i| record(&format!("k{i}"), &format!("{round}:{i}")))
            .collect();
        sent.extend(
            recs.iter()
                .map(|r| (r.partition_key.clone(), r.data.clone())),
        );
        for p in ds.put("r", recs).await.unwrap() {
            p.unwrap();
        }
        let d = ds.clone();
        tokio::task::spawn_blocking(move || match round {
            0 => drop(d.update_shard_count("r", 3).unwrap()),
            1 => drop(d.update_shard_count("r", 6).unwrap()),
            2 => drop(d.update_shard_count("r", 4).unwrap()),
            3 => {
                let open: Vec<u32> = d
                    .describe("r")
                    .unwrap()
                    .meta
                    .open_shards()
                    .map(|s| s.index)
                    .collect();
                let s = d
                    .describe("r")
                    .unwrap()
                    .meta
                    .shard(open[0])
                    .cloned()
                    .unwrap();
                d.split_shard(
                    "r",
                    s.index,
                    vigil_datastreams::hash::midpoint(s.start_hash, s.end_hash),
                )
                .unwrap();
            }
            _ => {}
        })
        .await
        .unwrap();
    }
    let d = ds.clone();
    let read = tokio::task::spawn_blocking(move || read_lineage(&d, "r"))
        .await
        .unwrap();
    assert_eq!(read.len(), sent.len());
    // Per partition key, the order of the puts.
    for i in 0..40 {
        let key = format!("k{i}");
        let got: Vec<&Bytes> = read
            .iter()
            .filter(|(_, r)| r.partition_key == key)
            .map(|(_, r)| &r.data)
            .collect();
        let want: Vec<&Bytes> = sent
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, d)| d)
            .collect();
        assert_eq!(got, want, "{key}");
    }
    let info = ds.describe("r").unwrap();
    assert_eq!(info.meta.open_shards().count(), 5);
    for s in &info.meta.shards {
        for parent in s.parent.iter().chain(s.adjacent_parent.iter()) {
            let p = info.meta.shard(*parent).unwrap();
            assert!(
                p.ending.unwrap() <= s.starting,
                "child {} above parent {}",
                s.index,
                parent
            );
        }
    }
    // The open shards partition the hash key space.
    let mut open: Vec<(u128, u128)> = info
        .meta
        .open_shards()
        .map(|s| (s.start_hash, s.end_hash))
        .collect();
    open.sort();
    assert_eq!(open[0].0, 0);
    assert_eq!(open.last().unwrap().1, u128::MAX);
    assert!(open.windows(2).all(|w| w[0].1 + 1 == w[1].0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_racing_a_reshard_land_once_and_before_their_shards_close() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, ds) = open(dir.path());
    let d = ds.clone();
    tokio::task::spawn_blocking(move || create(&d, "race", 1))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for p in 0..4 {
        let ds = ds.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for b in 0..30 {
                let recs: Vec<NewRecord> = (0..10)
                    .map(|i| record(&format!("p{p}-{b}-{i}"), "x"))
                    .collect();
                for (i, r) in ds.put("race", recs).await.unwrap().into_iter().enumerate() {
                    acked.push((format!("p{p}-{b}-{i}"), r.unwrap()));
                }
            }
            acked
        }));
    }
    let d = ds.clone();
    let resharder = tokio::task::spawn_blocking(move || {
        for target in [2, 4, 3, 6, 3, 2] {
            d.update_shard_count("race", target).unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    resharder.await.unwrap();
    let info = ds.describe("race").unwrap();
    for (_, put) in &acked {
        let s = info.meta.shard(put.shard).unwrap();
        let pos = put.sequence.position.as_u128();
        assert!(
            pos >= s.starting && s.ending.is_none_or(|e| pos <= e),
            "inside its shard's range"
        );
    }
    let d = ds.clone();
    let read = tokio::task::spawn_blocking(move || read_lineage(&d, "race"))
        .await
        .unwrap();
    let got: BTreeSet<String> = read.iter().map(|(_, r)| r.partition_key.clone()).collect();
    assert_eq!(read.len(), acked.len(), "nothing twice");
    assert_eq!(got, acked.iter().map(|(k, _)| k.clone()).collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_store_has_the_streams_and_positions_go_on_increasing() {
    let dir = tempfile::tempdir().unwrap();
    let last = {
        let (store, ds) = open(dir.path());
        let d = ds.clone();
        tokio::task::spawn_blocking(move || {
            create(&d, "keep", 2);
            d.update("keep", |hours, meta| {
                *hours = 48;
                meta.tags.insert("a".into(), "b".into());
                Ok(())
            })
            .unwrap();
            d.update_shard_count("keep", 4).unwrap();
        })
        .await
        .unwrap();
        let puts = ds
            .put(
                "keep",
                (0..10).map(|i| record(&format!("{i}"), "v")).collect(),
            )
            .await
            .unwrap();
        let last = puts
            .iter()
            .map(|p| p.as_ref().unwrap().sequence.position)
            .max()
            .unwrap();
        drop(ds);
        store.close().unwrap();
        last
    };
    let (_store, ds) = open(dir.path());
    let info = ds.describe("keep").unwrap();
    assert_eq!(info.retention_hours, 48);
    assert_eq!(info.meta.tags["a"], "b");
    assert_eq!(info.meta.open_shards().count(), 4);
    assert_eq!(info.meta.shards.len(), 6);
    let d = ds.clone();
    let read = tokio::task::spawn_blocking(move || read_lineage(&d, "keep"))
        .await
        .unwrap();
    assert_eq!(read.len(), 10);
    let p = ds
        .put("keep", vec![record("z", "after")])
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    assert!(p.sequence.position > last);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_wake_when_a_record_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, ds) = open(dir.path());
    let d = ds.clone();
    tokio::task::spawn_blocking(move || create(&d, "sub", 1))
        .await
        .unwrap();
    let mut rx = ds.subscribe("sub", 0).unwrap();
    assert_eq!(*rx.borrow_and_update(), None);
    let waiter = tokio::spawn(async move {
        rx.changed().await.unwrap();
        *rx.borrow()
    });
    let p = ds
        .put("sub", vec![record("k", "v")])
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen, Some(p.sequence.position));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_streams_are_gone_and_their_names_free() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, ds) = open(dir.path());
    let d = ds.clone();
    tokio::task::spawn_blocking(move || create(&d, "gone", 1))
        .await
        .unwrap();
    ds.put("gone", vec![record("k", "v")]).await.unwrap();
    let old = ds.describe("gone").unwrap().id;
    let d = ds.clone();
    tokio::task::spawn_blocking(move || {
        assert!(matches!(
            d.create(NewStream {
                name: "gone".into(),
                mode: StreamMode::Provisioned,
                shard_count: 1,
                tags: BTreeMap::new()
            }),
            Err(Error::StreamExists(_))
        ));
        d.delete("gone").unwrap();
        assert!(matches!(d.describe("gone"), Err(Error::StreamNotFound(_))));
        create(&d, "gone", 1);
        assert!(matches!(
            d.read("gone", old, 0, vigil_store::Position::MIN, 10, 1 << 20),
            Err(Error::StreamNotFound(_))
        ));
        let (info, pos) = d.start("gone", 0, StartAt::TrimHorizon).unwrap();
        assert!(
            d.read("gone", info.id, 0, pos, 10, 1 << 20)
                .unwrap()
                .records
                .is_empty()
        );
    })
    .await
    .unwrap();
    assert!(matches!(
        ds.put("nope", vec![record("k", "v")]).await,
        Err(Error::StreamNotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_modes() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(dir.path());
    cfg.min_free_bytes = 0;
    let store = Store::open(cfg, Arc::new(SystemClock)).unwrap();
    let ds = DataStreams::open(
        store,
        Limits {
            max_shards: 6,
            max_on_demand_streams: 1,
        },
    )
    .unwrap();
    tokio::task::spawn_blocking(move || {
        create(&ds, "a", 4);
        assert!(matches!(
            ds.update_shard_count("a", 8),
            Err(Error::LimitExceeded(_))
        ));
        assert!(matches!(
            ds.update_shard_count("a", 1),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            ds.create(NewStream {
                name: "b".into(),
                mode: StreamMode::Provisioned,
                shard_count: 3,
                tags: BTreeMap::new()
            }),
            Err(Error::LimitExceeded(_))
        ));
        ds.update_shard_count("a", 2).unwrap();
        ds.create(NewStream {
            name: "od".into(),
            mode: StreamMode::OnDemand,
            shard_count: 0,
            tags: BTreeMap::new(),
        })
        .map(drop)
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            ds.update_shard_count("od", 2),
            Err(Error::WrongMode(_))
        ));
        assert!(matches!(
            ds.create(NewStream {
                name: "od2".into(),
                mode: StreamMode::OnDemand,
                shard_count: 0,
                tags: BTreeMap::new()
            }),
            Err(Error::LimitExceeded(_))
        ));
        assert_eq!(ds.usage(), (6, 1));
    })
    .await
    .unwrap();
}

/// Producers putting at once to one shard share its batches (the shard writer): every put
/// still gets its own sequence numbers, in the order of its records and above the producer's
/// previous put, and the shard reads back each put's records together, in that order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_to_one_shard_keep_each_producers_order() {
    const PRODUCERS: usize = 24;
    const PUTS: usize = 25;
    const EACH: usize = 7;
    let dir = tempfile::tempdir().unwrap();
    let (_store, ds) = open(dir.path());
    let d = ds.clone();
    tokio::task::spawn_blocking(move || create(&d, "one", 1))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for p in 0..PRODUCERS {
        let ds = ds.clone();
        tasks.push(tokio::spawn(async move {
            let mut last = None;
            let mut mine = Vec::new();
            for n in 0..PUTS {
                let records = (0..EACH)
                    .map(|i| record(&format!("{p}"), &format!("{p}/{n}/{i}")))
                    .collect();
                let puts = ds.put("one", records).await.unwrap();
                assert_eq!(puts.len(), EACH);
                for put in puts {
                    let put = put.unwrap();
                    assert_eq!(put.shard, 0);
                    assert!(Some(put.sequence) > last, "producer {p} put {n}");
                    last = Some(put.sequence);
                    mine.push(put.sequence);
                }
            }
            mine
        }));
    }
    let mut all = BTreeSet::new();
    for t in tasks {
        for s in t.await.unwrap() {
            assert!(all.insert(s), "sequence number {s:?} given twice");
        }
    }
    assert_eq!(all.len(), PRODUCERS * PUTS * EACH);
    let d = ds.clone();
    let (read, children) = tokio::task::spawn_blocking(move || read_shard(&d, "one", 0))
        .await
        .unwrap();
    assert!(children.is_empty());
    assert_eq!(read.len(), all.len());
    // Read order is sequence order, and is exactly the set the puts were given.
    let read_seqs: Vec<_> = read.iter().map(|r| r.sequence).collect();
    assert_eq!(read_seqs, all.iter().copied().collect::<Vec<_>>());
    // Each put's records are adjacent and in order; each producer's puts in order.
    let mut next: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
    for r in &read {
        let text = String::from_utf8(r.data.to_vec()).unwrap();
        let v: Vec<usize> = text.split('/').map(|x| x.parse().unwrap()).collect();
        let (p, n, i) = (v[0], v[1], v[2]);
        let want = next.get(&p).copied().unwrap_or((0, 0));
        assert_eq!((n, i), want, "producer {p}");
        next.insert(
            p,
            if i + 1 == EACH {
                (n + 1, 0)
            } else {
                (n, i + 1)
            },
        );
        if i > 0 {
            // The record before this one in the shard is the put's previous record.
            let k = read_seqs.binary_search(&r.sequence).unwrap();
            let prev = String::from_utf8(read[k - 1].data.to_vec()).unwrap();
            assert_eq!(prev, format!("{p}/{n}/{}", i - 1));
        }
    }
    assert!(next.values().all(|&v| v == (PUTS, 0)));
}
