//! Log batches on the fault-injecting filesystem: a full disk, failing fsyncs and power cuts,
//! with fragments written beside them (one group commit for both kinds).
//!
//! Every entry names itself: its key is `<tag>/<index>/<count>/<len>` and its data
//! `payload(tag << 16 | index, len)`, with a tag never used twice, so any entry found in the
//! store can be checked against what was appended, and whole batches told from partial ones.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use vigil_store::check::check;
use vigil_store::conformance::{clock, payload, write};
use vigil_store::fs::FaultFs;
use vigil_store::{
    Appended, LogEntry, NewEntry, NewLogGroup, NewStream, Position, Store, StoreConfig, StoreError,
};

const DIR: &str = "/vigil";

fn config(checkpoint_interval_ms: u64) -> StoreConfig {
    let mut cfg = StoreConfig::new(DIR);
    cfg.retention_interval_ms = 0;
    cfg.min_free_bytes = 0;
    cfg.checkpoint_interval_ms = checkpoint_interval_ms;
    // Small segments: batches cross segment boundaries, and recovery sees many files.
    cfg.segment_max_bytes = 64 << 10;
    cfg
}

fn open(fs: &FaultFs, cfg: StoreConfig) -> Store {
    Store::open_with(cfg, Arc::new(clock()), Arc::new(fs.clone())).unwrap()
}

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// A batch of 1 to 8 self-describing entries, mostly small, some over a segment's size.
fn batch(tag: u64, rng: &mut Rng) -> Vec<NewEntry> {
    let n = 1 + rng.below(8) as usize;
    (0..n)
        .map(|i| {
            let len = match rng.below(30) {
                0 => 0,
                1 => 70_000 + rng.below(10_000) as usize,
                _ => 1 + rng.below(3000) as usize,
            };
            NewEntry {
                key: Bytes::from(format!("{tag}/{i}/{n}/{len}")),
                data: Bytes::from(payload(tag << 16 | i as u64, len)),
            }
        })
        .collect()
}

fn tag_of(e: &LogEntry) -> u64 {
    let key = std::str::from_utf8(&e.key).unwrap();
    key.split('/').next().unwrap().parse().unwrap()
}

/// Every entry of a log, each checked against its key, in strictly increasing positions, in
/// whole batches (every index of each batch, one tag and arrival time per batch). Returns
/// them by tag.
fn verify_log(store: &Store, group: u64, log: u32) -> BTreeMap<u64, Vec<LogEntry>> {
    let mut all: Vec<LogEntry> = Vec::new();
    let mut from = Position::MIN;
    loop {
        let got = store.read_log(group, log, from, 50, 1 << 20).unwrap();
        let Some(last) = got.last() else { break };
        from = last.position.next();
        all.extend(got);
    }
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
    let mut by_tag: BTreeMap<u64, Vec<LogEntry>> = BTreeMap::new();
    for e in all {
        let key = std::str::from_utf8(&e.key).unwrap().to_owned();
        let f: Vec<u64> = key.split('/').map(|p| p.parse().unwrap()).collect();
        let (tag, i, n, len) = (f[0], f[1], f[2], f[3] as usize);
        assert_eq!(
            u64::from(e.position.index()),
            i,
            "entry {key} at {}",
            e.position
        );
        assert!(i < n);
        assert!(
            e.data[..] == payload(tag << 16 | i, len)[..],
            "entry {key} reads back different bytes"
        );
        by_tag.entry(tag).or_default().push(e);
    }
    for (tag, entries) in &by_tag {
        let n: usize = std::str::from_utf8(&entries[0].key)
            .unwrap()
            .split('/')
            .nth(2)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(entries.len(), n, "batch {tag} is not whole");
        let b = entries[0].position.batch();
        assert!(entries.iter().all(|e| e.position.batch() == b));
        assert!(
            entries
                .iter()
                .all(|e| e.arrival_ms == entries[0].arrival_ms)
        );
    }
    by_tag
}

/// An acknowledged batch: where it went and what it held.
#[derive(Debug, Clone)]
struct Acked {
    group: u64,
    log: u32,
    tag: u64,
    done: Appended,
    len: usize,
}

fn assert_acked(store: &Store, a: &Acked) {
    let got = store
        .read_log(a.group, a.log, a.done.first, a.len, usize::MAX)
        .unwrap_or_else(|e| panic!("acknowledged batch {} lost: {e}", a.done.first));
    assert_eq!(got.len(), a.len, "acknowledged batch {} lost", a.done.first);
    for (i, e) in got.iter().enumerate() {
        assert_eq!(e.position, Position::new(a.done.first.batch(), i as u16));
        assert_eq!(
            tag_of(e),
            a.tag,
            "batch {} holds another's entries",
            a.done.first
        );
        assert_eq!(e.arrival_ms, a.done.arrival_ms);
    }
}

fn assert_clean(store: &Store) {
    let report = check(store, false, &mut |_, _, _| {}).unwrap();
    assert!(report.is_clean(), "check found problems: {report:#?}");
}

/// Two groups in two retention lanes, and a stream in a third.
fn setup(store: &Store) -> (Vec<u64>, (u64, u64)) {
    let groups = [("logs-1d", 24), ("logs-1w", 168)]
        .into_iter()
        .map(|(name, hours)| {
            store
                .create_log_group(NewLogGroup {
                    retention_hours: hours,
                    ..NewLogGroup::new(name)
                })
                .unwrap()
                .id
        })
        .collect();
    let s = store
        .create_stream(NewStream {
            name: "beside".into(),
            data_retention_hours: 720,
            ..NewStream::default()
        })
        .unwrap()
        .id;
    let h = store.register_header(s, b"h").unwrap();
    (groups, (s, h))
}

fn existing(store: &Store) -> Vec<u64> {
    ["logs-1d", "logs-1w"]
        .into_iter()
        .map(|n| {
            store
                .log_group(vigil_store::LogGroupRef::Name(n))
                .unwrap()
                .id
        })
        .collect()
}

fn append(
    store: &Store,
    group: u64,
    log: u32,
    tag: u64,
    rng: &mut Rng,
) -> vigil_store::Result<Acked> {
    let entries = batch(tag, rng);
    let len = entries.len();
    let done = store.append_log(group, log, &entries)?.wait_blocking()?;
    Ok(Acked {
        group,
        log,
        tag,
        done,
        len,
    })
}

/// A full disk: the append that does not fit fails (`DiskFull` when its segment write is cut
/// back; `Poisoned` when the index's own write ran out), the ones after it fail too,
/// nothing acknowledged is lost, a batch that failed with `DiskFull` never appears (before
/// or after a reopen), and once there is room the store takes appends again.
#[test]
fn disk_full_fails_a_batch_cleanly() {
    let budgets = [0u64, 1, 500, 5_000, 40_000, 66_000, 150_000, 500_000];
    let mut outcomes = BTreeMap::new();
    for (i, &budget) in budgets.iter().enumerate() {
        let fs = FaultFs::new();
        let store = open(&fs, config(3_600_000));
        let (groups, frag) = setup(&store);
        let mut rng = Rng::new(i as u64 + 1);
        let mut tag = 0;
        let mut acked: Vec<Acked> = (0..10)
            .map(|j| {
                tag += 1;
                append(&store, groups[j % 2], (j % 3) as u32, tag, &mut rng).unwrap()
            })
            .collect();
        fs.set_write_budget(Some(budget));
        let mut failed = None;
        for j in 0..1000 {
            tag += 1;
            if j % 4 == 3 {
                // A fragment now and then: both kinds share the group commit.
                let mut w = store.begin_fragment(frag.0, frag.1, tag).unwrap();
                w.append(Bytes::from(payload(tag, 2000))).unwrap();
                if w.finish(1000).unwrap().wait_blocking().is_err() {
                    break;
                }
                continue;
            }
            match append(&store, groups[j % 2], 0, tag, &mut rng) {
                Ok(a) => acked.push(a),
                Err(e) => {
                    failed = Some((tag, e));
                    break;
                }
            }
        }
        let Some((failed_tag, failure)) = failed else {
            // The fragment hit the full disk first: try the batch next.
            continue;
        };
        let first = match &failure {
            StoreError::DiskFull(_) => "DiskFull",
            StoreError::Poisoned(why) if why.contains("storage space") => "Poisoned",
            other => panic!("budget {budget}: the first failure is {other:?}"),
        };
        tag += 1;
        let again = append(&store, groups[1], 2, tag, &mut rng).unwrap_err();
        // Still full: the next append fails too, cleanly, or stops the store if what ran out
        // of room was the index's own write (opening a segment in another lane, say).
        match (first, &again) {
            ("DiskFull", StoreError::DiskFull(_)) | (_, StoreError::Poisoned(_)) => {}
            _ => panic!("budget {budget}: after {failure:?} the next append gives {again:?}"),
        }
        for a in &acked {
            assert_acked(&store, a);
        }
        let visible = |store: &Store| {
            groups
                .iter()
                .any(|&g| (0..3).any(|log| verify_log(store, g, log).contains_key(&failed_tag)))
        };
        assert!(
            !visible(&store),
            "budget {budget}: the failed batch is visible"
        );

        fs.set_write_budget(None);
        tag += 1;
        let outcome = match append(&store, groups[0], 1, tag, &mut rng) {
            Ok(a) => {
                acked.push(a);
                store.close().unwrap();
                "accepts appends again"
            }
            Err(StoreError::Poisoned(_)) => {
                drop(store);
                let store = open(&fs, config(3_600_000));
                tag += 1;
                acked.push(append(&store, existing(&store)[0], 1, tag, &mut rng).unwrap());
                "stopped (Poisoned), reopening recovered"
            }
            Err(e) => panic!("budget {budget}: after the disk has room again: {e:?}"),
        };
        outcomes.insert(budget, (first, outcome));
        let store = open(&fs, config(3_600_000));
        for a in &acked {
            assert_acked(&store, a);
        }
        if first == "DiskFull" {
            // Cut off the segment: it never reappears.
            assert!(
                !visible(&store),
                "budget {budget}: the failed batch came back"
            );
        }
        assert_clean(&store);
    }
    eprintln!("log disk full outcomes: {outcomes:#?}");
    let seen: Vec<_> = outcomes.values().collect();
    assert!(
        seen.contains(&&("DiskFull", "accepts appends again")),
        "{outcomes:?}"
    );
    assert!(
        seen.iter().any(|(first, _)| *first == "Poisoned"),
        "{outcomes:?}"
    );
}

/// A full disk under group commits of many small batches, which the commit thread writes
/// with one `pwrite` per run of neighbouring records: batches that fail with `DiskFull` never
/// appear (then or after a reopen), every acknowledged one reads back, and once there is room
/// the next commit writes only its own records.
#[test]
fn disk_full_under_gathered_writes() {
    let small = |tag: u64, rng: &mut Rng| -> Vec<NewEntry> {
        let n = 1 + rng.below(4) as usize;
        (0..n)
            .map(|i| {
                let len = 1 + rng.below(1500) as usize;
                NewEntry {
                    key: Bytes::from(format!("{tag}/{i}/{n}/{len}")),
                    data: Bytes::from(payload(tag << 16 | i as u64, len)),
                }
            })
            .collect()
    };
    // Outcomes seen: (some acknowledged under the budget, some failed with DiskFull).
    let mut seen_outcomes = BTreeSet::new();
    let mut went_on = 0;
    // A fine grid: which write a budget runs out in (a segment's, or the index's, which
    // poisons the store instead) depends on how the commit thread happened to group the queued
    // appends, so a few budgets may all miss the case where commits pass and then one fails.
    let budgets: Vec<u64> = (0..80).map(|k| k * 5_000).collect();
    for (i, &budget) in budgets.iter().enumerate() {
        let fs = FaultFs::new();
        let store = open(&fs, config(3_600_000));
        let (groups, _) = setup(&store);
        let mut rng = Rng::new(100 + i as u64);
        let mut tag = 0u64;
        // Each lane's segment exists before the disk fills.
        let mut acked = Vec::new();
        for &group in &groups {
            tag += 1;
            acked.push(append(&store, group, 0, tag, &mut rng).unwrap());
        }
        let before = acked.len();
        fs.set_write_budget(Some(budget));
        let mut failed = Vec::new();
        // Waves of 20 queued without waiting, so that the commit thread finds them together,
        // in runs of 5 per group (each group is in its own lane, so its own segment).
        'waves: for wave in 0..10usize {
            let mut queued = Vec::new();
            for j in 0..20usize {
                tag += 1;
                let entries = small(tag, &mut rng);
                let (group, log) = (groups[(j / 5) % 2], ((wave + j) % 3) as u32);
                match store.append_log(group, log, &entries) {
                    Ok(a) => queued.push((group, log, tag, entries.len(), a)),
                    Err(StoreError::DiskFull(_) | StoreError::Poisoned(_)) => break,
                    Err(e) => panic!("budget {budget}: append {tag}: {e:?}"),
                }
            }
            let mut stop = false;
            for (group, log, tag, len, a) in queued {
                match a.wait_blocking() {
                    Ok(done) => acked.push(Acked {
                        group,
                        log,
                        tag,
                        done,
                        len,
                    }),
                    Err(StoreError::DiskFull(_)) => {
                        failed.push(tag);
                        stop = true;
                    }
                    // The index's own write ran out after the records were durable: they
                    // are indexed on restart, so they may come back (as after a timeout).
                    Err(StoreError::Poisoned(_)) => stop = true,
                    Err(e) => panic!("budget {budget}: batch {tag}: {e:?}"),
                }
            }
            if stop {
                break 'waves;
            }
        }
        seen_outcomes.insert((acked.len() > before, !failed.is_empty()));
        let visible = |store: &Store| -> BTreeSet<u64> {
            let mut seen = BTreeSet::new();
            for &g in &groups {
                for log in 0..3 {
                    seen.extend(verify_log(store, g, log).into_keys());
                }
            }
            seen
        };
        for a in &acked {
            assert_acked(&store, a);
        }
        let seen = visible(&store);
        assert!(
            failed.iter().all(|t| !seen.contains(t)),
            "budget {budget}: a batch that failed with DiskFull is visible"
        );
        fs.set_write_budget(None);
        // The commit after a failed one writes only its own records (unless the store
        // stopped: the index's own write ran out of room).
        for group in [groups[0], groups[1]] {
            tag += 1;
            let after = small(tag, &mut rng);
            match store
                .append_log(group, 0, &after)
                .and_then(|a| a.wait_blocking())
            {
                Ok(done) => {
                    went_on += 1;
                    acked.push(Acked {
                        group,
                        log: 0,
                        tag,
                        len: after.len(),
                        done,
                    });
                }
                Err(StoreError::Poisoned(_)) => {}
                Err(e) => panic!("budget {budget}: with room again: {e:?}"),
            }
        }
        drop(store);
        let store = open(&fs, config(3_600_000));
        for a in &acked {
            assert_acked(&store, a);
        }
        let seen = visible(&store);
        assert!(
            failed.iter().all(|t| !seen.contains(t)),
            "budget {budget}: a batch that failed with DiskFull came back"
        );
        tag += 1;
        append(&store, existing(&store)[0], 1, tag, &mut rng).unwrap();
        assert_clean(&store);
    }
    assert!(
        seen_outcomes.contains(&(true, true)),
        "no budget let some commits through and failed a later one: {seen_outcomes:?}"
    );
    assert!(went_on > 0, "no store took appends after its disk was full");
}

/// A failed fsync: the append waiting on it fails and is never visible, every later write
/// fails with `Poisoned` (appends, new groups, fragments), reads go on, and reopening (on the
/// same disk, or after a power cut) has every acknowledged batch and takes appends at larger
/// positions.
#[test]
fn fsync_failure_poisons_log_appends() {
    for power_cut in [false, true] {
        let fs = FaultFs::new();
        let store = open(&fs, config(3_600_000));
        let (groups, frag) = setup(&store);
        let mut rng = Rng::new(9);
        let acked: Vec<Acked> = (0..10u64)
            .map(|t| append(&store, groups[(t % 2) as usize], 0, t + 1, &mut rng).unwrap())
            .collect();
        let max = acked.iter().map(|a| a.done.last()).max().unwrap();
        fs.set_fail_sync(true);
        let err = append(&store, groups[0], 0, 100, &mut rng).unwrap_err();
        assert!(matches!(err, StoreError::Poisoned(_)), "{err:?}");
        assert!(
            !verify_log(&store, groups[0], 0).contains_key(&100),
            "a batch whose fsync failed is visible"
        );
        for (t, &g) in groups.iter().enumerate() {
            let err = append(&store, g, 1, 200 + t as u64, &mut rng).unwrap_err();
            assert!(matches!(err, StoreError::Poisoned(_)), "{err:?}");
        }
        assert!(matches!(
            store.create_log_group(NewLogGroup::new("later")),
            Err(StoreError::Poisoned(_))
        ));
        assert!(matches!(
            store.begin_fragment(frag.0, frag.1, 0),
            Err(StoreError::Poisoned(_))
        ));
        for a in &acked {
            assert_acked(&store, a);
        }
        drop(store);
        fs.set_fail_sync(false);
        let disk = if power_cut {
            fs.crash_image(17)
        } else {
            fs.clone()
        };
        let store = open(&disk, config(3_600_000));
        for a in &acked {
            assert_acked(&store, a);
        }
        let groups = existing(&store);
        for &g in &groups {
            for log in 0..2 {
                verify_log(&store, g, log);
            }
        }
        let next = append(&store, groups[1], 0, 300, &mut rng).unwrap();
        assert!(next.done.first > max);
        assert_acked(&store, &next);
        assert_clean(&store);
    }
}

/// Power cuts at many moments while threads append (some waiting for each batch, some
/// keeping several in flight) and another writes fragments: the recovered store holds every
/// batch acknowledged before the cut, whole and byte-identical, shows only whole batches that
/// were appended, and hands out larger positions than any it holds.
#[test]
fn power_loss_keeps_every_acknowledged_batch() {
    for iteration in 0..16u64 {
        let checkpoint = if iteration % 2 == 0 { 3_600_000 } else { 3 };
        let fs = FaultFs::new();
        let store = open(&fs, config(checkpoint));
        let (groups, frag) = setup(&store);
        let tags = Arc::new(AtomicU64::new(1 + iteration * 1_000_000));
        let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for t in 0..3u64 {
            let (store, tags, acked, stop) =
                (store.clone(), tags.clone(), acked.clone(), stop.clone());
            let group = groups[(t % 2) as usize];
            threads.push(std::thread::spawn(move || {
                let mut rng = Rng::new(iteration * 7 + t);
                let mut pending = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let tag = tags.fetch_add(1, Ordering::SeqCst);
                    let log = rng.below(2) as u32;
                    let entries = batch(tag, &mut rng);
                    let len = entries.len();
                    let p = store.append_log(group, log, &entries).unwrap();
                    pending.push((p, log, tag, len));
                    if t == 0 || rng.below(3) == 0 {
                        for (p, log, tag, len) in pending.drain(..) {
                            let done = p.wait_blocking().unwrap();
                            acked.lock().unwrap().push(Acked {
                                group,
                                log,
                                tag,
                                done,
                                len,
                            });
                        }
                    }
                }
                for (p, _, _, _) in pending {
                    p.wait_blocking().unwrap();
                }
            }));
        }
        {
            let (store, stop) = (store.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                let mut p = 0;
                while !stop.load(Ordering::SeqCst) {
                    p += 1;
                    write(&store, frag.0, frag.1, p, &payload(p, 3000), 2);
                }
            }));
        }
        let target = 5 + (iteration as usize * 5) % 40;
        while acked.lock().unwrap().len() < target {
            std::thread::yield_now();
        }
        let before_cut: Vec<Acked> = acked.lock().unwrap().clone();
        let image = fs.crash_image(iteration * 7_919 + checkpoint);
        stop.store(true, Ordering::SeqCst);
        for t in threads {
            t.join().unwrap();
        }
        drop(store);

        let store = open(&image, config(checkpoint));
        for a in &before_cut {
            assert_acked(&store, a);
        }
        let groups = existing(&store);
        let mut seen = BTreeSet::new();
        let mut max = Position::MIN;
        for &g in &groups {
            for log in 0..2 {
                for (tag, entries) in verify_log(&store, g, log) {
                    assert!(seen.insert(tag), "batch {tag} appears twice");
                    max = max.max(entries.last().unwrap().position);
                }
            }
        }
        assert!(seen.len() >= before_cut.len());
        assert_clean(&store);
        let mut rng = Rng::new(iteration);
        let next = append(&store, groups[0], 0, u64::MAX >> 20, &mut rng).unwrap();
        assert!(next.done.first > max, "{} after {max}", next.done.first);
        // And a second recovery changes nothing.
        store.close().unwrap();
        drop(store);
        let store = open(&image, config(checkpoint));
        for a in &before_cut {
            assert_acked(&store, a);
        }
        assert_acked(&store, &next);
    }
}
