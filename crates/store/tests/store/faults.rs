//! The store on the fault-injecting filesystem: power cuts at arbitrary moments, a full disk,
//! failing fsyncs, and the free-space floor.
//!
//! Every fragment's bytes are `payload(producer_ts_ms, size)`, with a producer timestamp never
//! used twice, so any fragment found in the store can be checked against what was written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use vigil_store::check::check;
use vigil_store::conformance::{clock, payload};
use vigil_store::fs::{FaultFs, File, Fs};
use vigil_store::{FragmentMeta, NewStream, Store, StoreConfig, StoreError};

const DIR: &str = "/vigil";
/// Track headers, registered once per stream; after any crash they must still be there.
const HEADER: &[u8] = b"\x1a\x45\xdf\xa3 track header of the fault tests";

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

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Fragment sizes: mostly small, some empty, some bigger than a segment.
fn size(rng: &mut Rng) -> usize {
    match rng.below(20) {
        0 => 0,
        1 => 64 * 1024 + rng.below(60_000) as usize,
        _ => 1 + rng.below(20_000) as usize,
    }
}

/// Streams in three retention lanes, each with its track header registered.
fn streams(store: &Store) -> Vec<(u64, u64)> {
    [("cam-1h", 1), ("cam-1d", 24), ("cam-1m", 720)]
        .into_iter()
        .map(|(name, hours)| {
            let id = store
                .create_stream(NewStream {
                    name: name.into(),
                    data_retention_hours: hours,
                    ..NewStream::default()
                })
                .unwrap()
                .id;
            (id, store.register_header(id, HEADER).unwrap())
        })
        .collect()
}

/// The streams of a reopened store, by the same names.
fn existing_streams(store: &Store) -> Vec<(u64, u64)> {
    ["cam-1h", "cam-1d", "cam-1m"]
        .into_iter()
        .map(|name| {
            let id = store.stream(vigil_store::StreamRef::Name(name)).unwrap().id;
            // An unchanged header keeps its id: it is found, not registered again.
            let h = store.register_header(id, HEADER).unwrap();
            (id, h)
        })
        .collect()
}

/// Starts a fragment of `len` bytes (in up to 4 chunks) under a fresh producer timestamp;
/// returns the writer and the timestamp.
fn begin(
    store: &Store,
    (stream, header): (u64, u64),
    ts: &AtomicU64,
    len: usize,
    rng: &mut Rng,
) -> vigil_store::Result<(vigil_store::FragmentWriter, u64)> {
    let producer_ts = ts.fetch_add(1, Ordering::SeqCst);
    let mut w = store.begin_fragment(stream, header, producer_ts)?;
    let data = payload(producer_ts, len);
    let pieces = 1 + rng.below(4) as usize;
    for c in data.chunks(len.div_ceil(pieces).max(1)) {
        w.append(Bytes::copy_from_slice(c))?;
    }
    Ok((w, producer_ts))
}

/// Writes one fragment and waits for it.
fn write(
    store: &Store,
    stream: (u64, u64),
    ts: &AtomicU64,
    len: usize,
    rng: &mut Rng,
) -> vigil_store::Result<FragmentMeta> {
    let (w, _) = begin(store, stream, ts, len, rng)?;
    w.finish(1000)?.wait_blocking()
}

/// Reads `m` back and checks every byte and field.
fn assert_reads_back(store: &Store, m: &FragmentMeta) {
    let f = store.read_fragment(m.stream, m.number).unwrap_or_else(|e| {
        panic!(
            "acknowledged fragment {} of stream {} lost: {e}",
            m.number, m.stream
        )
    });
    assert_eq!(f.meta.number, m.number);
    assert_eq!(f.meta.producer_ts_ms, m.producer_ts_ms);
    assert_eq!(f.meta.server_ts_ms, m.server_ts_ms);
    assert_eq!(f.meta.size, m.size);
    assert_eq!(f.meta.header_id, m.header_id);
    assert!(
        f.payload[..] == payload(m.producer_ts_ms, m.size as usize)[..],
        "fragment {} of stream {} reads back different bytes",
        m.number,
        m.stream
    );
}

/// Every fragment the index holds, per stream, each checked against what was written (no
/// fragment reappears with wrong bytes, acknowledged or not). Returns them all.
fn all_fragments(store: &Store, streams: &[(u64, u64)]) -> Vec<FragmentMeta> {
    let mut out = Vec::new();
    for &(s, _) in streams {
        let mut after = None;
        loop {
            let page = store.fragments_after(s, after, 500).unwrap();
            let Some(last) = page.last() else { break };
            after = Some(last.number);
            for m in &page {
                assert_reads_back(store, m);
            }
            out.extend(page);
        }
        let usage = store.usage(s).unwrap();
        let mine: Vec<_> = out.iter().filter(|m| m.stream == s).collect();
        assert_eq!(usage.fragments, mine.len() as u64, "usage of stream {s}");
        assert_eq!(
            usage.bytes,
            mine.iter().map(|m| u64::from(m.size)).sum::<u64>(),
            "usage bytes of stream {s}"
        );
    }
    out
}

fn assert_clean(store: &Store) -> vigil_store::check::CheckReport {
    let report = check(store, false, &mut |_, _, _| {}).unwrap();
    assert!(report.is_clean(), "check found problems: {report:#?}");
    assert!(report.repairs.is_empty(), "{report:#?}");
    report
}

/// What a store recovered from a crash must satisfy: everything acknowledged reads back, the
/// check is clean, nothing unfinished is there, and it takes new fragments numbered above
/// every number handed out before.
fn verify_recovered(
    store: &Store,
    acked: &[FragmentMeta],
    unfinished: &[(u64, u64)],
    max_allocated: u64,
    ts: &AtomicU64,
) {
    let streams = existing_streams(store);
    for m in acked {
        assert_reads_back(store, m);
    }
    let all = all_fragments(store, &streams);
    assert!(all.len() >= acked.len());
    let report = assert_clean(store);
    assert_eq!(report.fragments, all.len() as u64);
    for &(stream, number) in unfinished {
        assert!(
            matches!(
                store.read_fragment(stream, number),
                Err(StoreError::FragmentNotFound { .. })
            ),
            "fragment {number}, never finished, is in the store"
        );
    }
    for (i, &(s, h)) in streams.iter().enumerate() {
        assert_eq!(&store.header(s, h).unwrap()[..], HEADER);
        let mut rng = Rng::new(i as u64);
        let m = write(store, (s, h), ts, 3000 + i, &mut rng).unwrap();
        assert!(
            m.number > max_allocated,
            "new fragment {} does not follow {max_allocated}",
            m.number
        );
        assert_reads_back(store, &m);
    }
}

/// Crash images taken at many moments: while three threads write (some waiting for each
/// fragment, some not), with a fragment half-appended and another finished but not waited
/// for. The recovered store must hold every fragment acknowledged before the image was taken.
fn power_loss_round(iteration: u64, checkpoint_interval_ms: u64) {
    let fs = FaultFs::new();
    let store = open(&fs, config(checkpoint_interval_ms));
    let streams = streams(&store);
    let ts = Arc::new(AtomicU64::new(1_000_000 * (iteration + 1)));
    let mut rng = Rng::new(iteration);
    let acked: Arc<Mutex<Vec<FragmentMeta>>> = Arc::default();
    let allocated = Arc::new(AtomicU64::new(0));

    // Some fragments acknowledged one by one before anything else happens.
    for _ in 0..(5 + rng.below(20)) {
        let s = streams[rng.below(3) as usize];
        let m = write(&store, s, &ts, size(&mut rng), &mut rng).unwrap();
        allocated.fetch_max(m.number, Ordering::SeqCst);
        acked.lock().unwrap().push(m);
    }

    // Writers: each finishes fragments and, every other one, waits for it before going on.
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..3u64)
        .map(|t| {
            let (store, ts, acked, stop, allocated) = (
                store.clone(),
                ts.clone(),
                acked.clone(),
                stop.clone(),
                allocated.clone(),
            );
            let stream = streams[t as usize];
            std::thread::spawn(move || {
                let mut rng = Rng::new(iteration * 31 + t + 1);
                let mut pending = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let len = size(&mut rng);
                    let (w, _) = begin(&store, stream, &ts, len, &mut rng).unwrap();
                    allocated.fetch_max(w.number(), Ordering::SeqCst);
                    let durable = w.finish(1000).unwrap();
                    if rng.below(2) == 0 {
                        pending.push(durable);
                        continue;
                    }
                    for d in pending.drain(..).chain(std::iter::once(durable)) {
                        let m = d.wait_blocking().unwrap();
                        acked.lock().unwrap().push(m);
                    }
                }
                for d in pending {
                    acked.lock().unwrap().push(d.wait_blocking().unwrap());
                }
            })
        })
        .collect();

    // A fragment half-appended, and one finished but never waited for.
    let (half, _) = begin(&store, streams[0], &ts, 5000, &mut rng).unwrap();
    let (done, _) = begin(&store, streams[1], &ts, 7000, &mut rng).unwrap();
    let in_flight_number = done.number();
    let in_flight = done.finish(500).unwrap();
    allocated.fetch_max(in_flight_number, Ordering::SeqCst);
    allocated.fetch_max(half.number(), Ordering::SeqCst);

    // Cut the power once the writers have had fragments acknowledged, a different number each
    // round (the writers keep going meanwhile).
    let target = acked.lock().unwrap().len() + (iteration as usize * 7) % 40;
    while acked.lock().unwrap().len() < target {
        std::thread::yield_now();
    }
    // What was acknowledged before the cut must survive; what comes after need not.
    let before_cut: Vec<FragmentMeta> = acked.lock().unwrap().clone();
    let max_allocated_before_cut = allocated.load(Ordering::SeqCst);
    let image = fs.crash_image(iteration * 1_000_003 + checkpoint_interval_ms);

    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    let _ = in_flight.wait_blocking();
    // The old store lives on in the old world; the new one starts from the image.
    let half_number = half.number();
    drop(half);
    drop(store);

    let store = open(&image, config(checkpoint_interval_ms));
    if checkpoint_interval_ms >= 3_600_000 {
        // No checkpoint ran after the first fragments: the index entries came back from the
        // segments.
        assert!(
            store.recovery_report().reindexed >= before_cut.len() as u64,
            "{:?}",
            store.recovery_report()
        );
    }
    verify_recovered(
        &store,
        &before_cut,
        &[(streams[0].0, half_number)],
        max_allocated_before_cut,
        &ts,
    );
    // Everything stays put through a clean close and a second recovery.
    store.close().unwrap();
    drop(store);
    let store = open(&image, config(checkpoint_interval_ms));
    for m in &before_cut {
        assert_reads_back(&store, m);
    }
    assert_clean(&store);
}

#[test]
fn power_loss_while_writing_loses_nothing_acknowledged() {
    for iteration in 0..30 {
        // Checkpoints every few milliseconds, and never (the segments are the whole log).
        let interval = if iteration % 2 == 0 { 3_600_000 } else { 2 };
        power_loss_round(iteration, interval);
    }
}

/// The in-place `power_loss`, on a store left idle: the old store is leaked (a crashed process
/// runs no destructors), and with checkpoints an hour apart its commit thread never touches the
/// files again, so the same filesystem can be reopened.
#[test]
fn power_loss_in_place_with_an_idle_store() {
    for seed in 0..5u64 {
        let fs = FaultFs::new();
        let store = open(&fs, config(3_600_000));
        let streams = streams(&store);
        let ts = AtomicU64::new(1);
        let mut rng = Rng::new(seed);
        let acked: Vec<_> = (0..40)
            .map(|i| write(&store, streams[i % 3], &ts, size(&mut rng), &mut rng).unwrap())
            .collect();
        let max = acked.iter().map(|m| m.number).max().unwrap();
        // A fragment in the making, lost with the power.
        let (half, _) = begin(&store, streams[2], &ts, 10_000, &mut rng).unwrap();
        let half_number = half.number();
        fs.power_loss(seed);
        std::mem::forget(half);
        std::mem::forget(store);

        let store = open(&fs, config(3_600_000));
        assert!(store.recovery_report().reindexed >= acked.len() as u64);
        verify_recovered(
            &store,
            &acked,
            &[(streams[2].0, half_number)],
            half_number.max(max),
            &ts,
        );
    }
}

/// A full disk: writes past the budget fail with `DiskFull`, nothing acknowledged is lost, and
/// once there is room again the store takes writes (reopened if it had to stop).
#[test]
fn disk_full_fails_cleanly_and_loses_nothing() {
    let budgets = [
        0u64, 1, 100, 4_000, 20_000, 65_000, 70_000, 150_000, 400_000, 1_000_000,
    ];
    let mut outcomes = BTreeMap::new();
    for (i, &budget) in budgets.iter().enumerate() {
        let fs = FaultFs::new();
        let store = open(&fs, config(3_600_000));
        let streams = streams(&store);
        let ts = AtomicU64::new(1);
        let mut rng = Rng::new(i as u64 + 100);
        let mut acked: Vec<FragmentMeta> = (0..10)
            .map(|j| write(&store, streams[j % 3], &ts, 4000, &mut rng).unwrap())
            .collect();

        fs.set_write_budget(Some(budget));
        let mut failure = None;
        for j in 0..1000 {
            match write(
                &store,
                streams[j % 3],
                &ts,
                1000 + rng.below(8000) as usize,
                &mut rng,
            ) {
                Ok(m) => acked.push(m),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let failure = failure.expect("the budget must run out");
        // A segment write that does not fit is cut back and fails `DiskFull`; a failure in
        // the index (its pages are written at each commit) stops the store: `Poisoned`.
        let first = match &failure {
            StoreError::DiskFull(_) => "DiskFull",
            StoreError::Poisoned(why) if why.contains("storage space") => "Poisoned",
            other => panic!("budget {budget}: the first failure is {other:?}"),
        };
        // The write after the failure fails too while the disk stays full, and cleanly.
        let again = write(&store, streams[0], &ts, 100, &mut rng).unwrap_err();
        match (first, &again) {
            ("DiskFull", StoreError::DiskFull(_)) | ("Poisoned", StoreError::Poisoned(_)) => {}
            _ => panic!("budget {budget}: after {failure:?} the next write gives {again:?}"),
        }
        for m in &acked {
            assert_reads_back(&store, m);
        }

        fs.set_write_budget(None);
        let outcome = match write(&store, streams[1], &ts, 2000, &mut rng) {
            Ok(m) => {
                acked.push(m);
                store.close().unwrap();
                "accepts writes again"
            }
            Err(StoreError::Poisoned(_)) => {
                // The failure reached the index: it stopped, and reopening recovers.
                drop(store);
                let store = open(&fs, config(3_600_000));
                let m = write(&store, streams[1], &ts, 2000, &mut rng).unwrap();
                acked.push(m);
                "stopped (Poisoned), reopening recovered"
            }
            Err(e) => panic!("budget {budget}: after the disk has room again: {e:?}"),
        };
        outcomes.insert(budget, (first, outcome));
        // Everything acknowledged is there after a reopen, and the store checks clean.
        let store = open(&fs, config(3_600_000));
        for m in &acked {
            assert_reads_back(&store, m);
        }
        all_fragments(&store, &streams);
        assert_clean(&store);
    }
    eprintln!("disk full outcomes: {outcomes:#?}");
    // Both ways of running out are covered: a segment write cut back (the store goes on), and
    // an index commit that failed (the store stops until reopened).
    let seen: Vec<_> = outcomes.values().collect();
    assert!(
        seen.contains(&&("DiskFull", "accepts writes again")),
        "{outcomes:?}"
    );
    assert!(
        seen.contains(&&("Poisoned", "stopped (Poisoned), reopening recovered")),
        "{outcomes:?}"
    );
}

/// A failed fsync: the write waiting on it fails, the store refuses every later write
/// (`Poisoned`), and reopening (on the same disk, or after a power cut) has every acknowledged
/// fragment.
#[test]
fn fsync_failure_poisons_and_reopening_recovers() {
    for power_cut in [false, true] {
        let fs = FaultFs::new();
        let store = open(&fs, config(3_600_000));
        let streams = streams(&store);
        let ts = AtomicU64::new(1);
        let mut rng = Rng::new(7);
        // 10 fragments of 3000 bytes: the active segments have room for the next ones, so the
        // failing fsync is the batch's own, not a segment creation's.
        let acked: Vec<FragmentMeta> = (0..10)
            .map(|j| write(&store, streams[j % 3], &ts, 3000, &mut rng).unwrap())
            .collect();
        fs.set_fail_sync(true);
        let err = write(&store, streams[0], &ts, 3000, &mut rng).unwrap_err();
        assert!(matches!(err, StoreError::Poisoned(_)), "{err:?}");
        for s in &streams {
            let err = write(&store, *s, &ts, 10, &mut rng).unwrap_err();
            assert!(matches!(err, StoreError::Poisoned(_)), "{err:?}");
        }
        assert!(matches!(
            store.begin_fragment(streams[0].0, streams[0].1, 0),
            Err(StoreError::Poisoned(_))
        ));
        assert!(matches!(
            store.register_header(streams[0].0, b"another header"),
            Err(StoreError::Poisoned(_))
        ));
        // Reads still work.
        for m in &acked {
            assert_reads_back(&store, m);
        }
        drop(store);
        fs.set_fail_sync(false);
        let disk = if power_cut {
            fs.crash_image(99)
        } else {
            fs.clone()
        };
        let store = open(&disk, config(3_600_000));
        verify_recovered(&store, &acked, &[], 0, &ts);
    }
}

/// A filesystem whose free space is what is left of a capacity after the files on it, so that
/// deleting a segment gives space back.
#[derive(Debug)]
struct Capacity {
    fs: FaultFs,
    capacity: Mutex<u64>,
}

impl Capacity {
    fn used(&self) -> u64 {
        let mut used = 0;
        for dir in [PathBuf::from(DIR), Path::new(DIR).join("segments")] {
            for name in self.fs.list(&dir).unwrap() {
                used += self.fs.open(&dir.join(name), false).unwrap().len().unwrap();
            }
        }
        used
    }
}

impl Fs for Capacity {
    fn open(&self, path: &Path, create: bool) -> std::io::Result<Arc<dyn File>> {
        self.fs.open(path, create)
    }
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        self.fs.remove(path)
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        self.fs.list(dir)
    }
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        self.fs.create_dir_all(dir)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.fs.sync_dir(dir)
    }
    fn available_space(&self, _dir: &Path) -> std::io::Result<u64> {
        Ok(self.capacity.lock().unwrap().saturating_sub(self.used()))
    }
    fn exists(&self, path: &Path) -> bool {
        self.fs.exists(path)
    }
    fn lock(&self, path: &Path) -> std::io::Result<Box<dyn std::any::Any + Send + Sync>> {
        self.fs.lock(path)
    }
}

/// Under the free-space floor the commit thread deletes the oldest segments, oldest first,
/// until the floor is kept; when there is nothing left to delete, writes fail with `DiskFull`.
#[test]
fn free_space_floor_deletes_the_oldest_segments_then_fails() {
    const FLOOR: u64 = 1 << 20;
    let fs = Arc::new(Capacity {
        fs: FaultFs::new(),
        capacity: Mutex::new(1 << 40),
    });
    let mut cfg = config(3_600_000);
    cfg.min_free_bytes = FLOOR;
    let store = Store::open_with(cfg, Arc::new(clock()), fs.clone()).unwrap();
    let s = store
        .create_stream(NewStream {
            name: "floor".into(),
            data_retention_hours: 24,
            ..NewStream::default()
        })
        .unwrap()
        .id;
    let h = store.register_header(s, HEADER).unwrap();
    let ts = AtomicU64::new(1);
    let mut rng = Rng::new(1);
    // 60 fragments of 10 kB: about 10 segments of 64 KiB.
    let metas: Vec<FragmentMeta> = (0..60)
        .map(|_| write(&store, (s, h), &ts, 10_000, &mut rng).unwrap())
        .collect();
    let segments: Vec<u64> = {
        let mut v: Vec<u64> = metas.iter().map(|m| m.location.segment).collect();
        v.dedup();
        v
    };
    assert!(segments.len() >= 8, "{segments:?}");

    // Room for the floor, the next fragment, and not the ~200 kB over it: the oldest segments
    // (about three) must go, no more.
    let used = fs.used();
    *fs.capacity.lock().unwrap() = used + FLOOR - 200_000;
    let next = write(&store, (s, h), &ts, 10_000, &mut rng).unwrap();
    assert!(fs.capacity.lock().unwrap().saturating_sub(fs.used()) >= FLOOR);
    let gone: Vec<&FragmentMeta> = metas
        .iter()
        .filter(|m| match store.read_fragment(s, m.number) {
            Err(StoreError::FragmentNotFound { .. }) => true,
            Ok(f) => {
                assert_eq!(f.payload[..], payload(m.producer_ts_ms, 10_000)[..]);
                false
            }
            Err(e) => panic!("fragment {}: {e}", m.number),
        })
        .collect();
    assert!(!gone.is_empty(), "nothing was deleted");
    assert!(
        gone.len() < metas.len() / 2,
        "too much was deleted: {}",
        gone.len()
    );
    // Oldest first: what is gone is a prefix, whole segments of it.
    assert!(gone.iter().zip(&metas).all(|(g, m)| g.number == m.number));
    let first_kept = metas[gone.len()];
    assert!(
        gone.iter()
            .all(|g| g.location.segment < first_kept.location.segment)
    );
    assert_reads_back(&store, &next);
    assert_eq!(
        store.usage(s).unwrap().fragments,
        (metas.len() - gone.len() + 1) as u64
    );

    // Below the floor with everything already on disk: every segment but the one being
    // written goes, and that is not enough. What that segment holds stays readable.
    *fs.capacity.lock().unwrap() = FLOOR / 2;
    let err = write(&store, (s, h), &ts, 10_000, &mut rng).unwrap_err();
    assert!(matches!(err, StoreError::DiskFull(_)), "{err:?}");
    let active = next.location.segment;
    let kept: Vec<&FragmentMeta> = metas
        .iter()
        .chain([&next])
        .filter(|m| m.location.segment == active)
        .collect();
    assert!(!kept.is_empty());
    assert_eq!(store.usage(s).unwrap().fragments, kept.len() as u64);
    for m in &kept {
        assert_reads_back(&store, m);
    }
    for m in metas.iter().filter(|m| m.location.segment != active) {
        assert!(matches!(
            store.read_fragment(s, m.number),
            Err(StoreError::FragmentNotFound { .. })
        ));
    }
    let err = write(&store, (s, h), &ts, 10, &mut rng).unwrap_err();
    assert!(matches!(err, StoreError::DiskFull(_)), "{err:?}");
    // Control calls that write to the index are refused under half the floor: the index
    // could not survive a write that fails for space.
    let err = store
        .create_stream(NewStream {
            name: "more".into(),
            data_retention_hours: 24,
            ..NewStream::default()
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::DiskFull(_)), "{err:?}");

    // Room again: writes resume, and the store checks clean.
    *fs.capacity.lock().unwrap() = 1 << 40;
    let m = write(&store, (s, h), &ts, 10_000, &mut rng).unwrap();
    assert_reads_back(&store, &m);
    assert_clean(&store);
    store.close().unwrap();
}

/// The plain `FaultFs` floor: with the reported free space fixed below the floor, a write
/// deletes every segment but those being written and still fails with `DiskFull`; the
/// fragments in those stay readable.
#[test]
fn fixed_free_space_below_the_floor_fails_with_disk_full() {
    let fs = FaultFs::new();
    let mut cfg = config(3_600_000);
    cfg.min_free_bytes = 10 << 20;
    let store = open(&fs, cfg);
    let streams = streams(&store);
    let ts = AtomicU64::new(1);
    let mut rng = Rng::new(3);
    let metas: Vec<_> = (0..30)
        .map(|i| write(&store, streams[i % 3], &ts, 10_000, &mut rng).unwrap())
        .collect();
    fs.set_available_space(5 << 20);
    let err = write(&store, streams[0], &ts, 10, &mut rng).unwrap_err();
    assert!(matches!(err, StoreError::DiskFull(_)), "{err:?}");
    // Each stream has a lane of its own here: its newest segment is the one being written.
    let newest = |stream: u64| {
        metas
            .iter()
            .filter(|m| m.stream == stream)
            .map(|m| m.location.segment)
            .max()
    };
    let mut gone = 0;
    for m in &metas {
        if Some(m.location.segment) == newest(m.stream) {
            assert_reads_back(&store, m);
        } else {
            gone += 1;
            assert!(matches!(
                store.read_fragment(m.stream, m.number),
                Err(StoreError::FragmentNotFound { .. })
            ));
        }
    }
    assert!(gone > 0, "no segment was deleted");
    fs.set_available_space(1 << 40);
    let m = write(&store, streams[1], &ts, 10, &mut rng).unwrap();
    assert_reads_back(&store, &m);
    assert_clean(&store);
}
