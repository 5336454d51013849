//! Fragment store benchmarks (`bench/README.md`): ingest throughput against the raw disk in the
//! same run, finish-to-durable latency of real-time camera streams, timestamp-range pages
//! of a large index, and durable log appends against the raw disk (`store/logs.rs`). Prints a
//! summary table with each figure against its target.
//!
//! ```sh
//! cargo bench --profile ci -p vigil-store --bench store             # full: a few minutes
//! cargo bench --profile ci -p vigil-store --bench store -- --quick  # seconds; scripts/test
//! ```
//!
//! Options after `--`: `--quick`; `--only throughput|latency|index|logs` and `--streams N` (both
//! repeatable: run only these sections, these stream counts);
//! `--fragment-bytes N` (default 250000: 1 s at 2 Mbit/s); `--chunks N` (appends per fragment
//! in the latency test, default 25, one per 40 ms frame; 1 appends the whole fragment at the end
//! of its second); `--no-encryption` (store in clear, to see what encryption costs). Data goes under `$VIGIL_BENCH_DIR`, else `$TMPDIR/vigil-bench-store`, which
//! must be on the disk to be measured: the filesystem is printed, with a warning if it is tmpfs
//! or overlay.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::runtime::Runtime;
use vigil_store::index::CommitBatch;
use vigil_store::{
    FragmentMeta, Location, NewStream, Store, StoreConfig, StoreStats, SystemClock, TimestampKind,
};

/// One second of a 2 Mbit/s camera stream.
const DEFAULT_FRAGMENT_BYTES: usize = 250_000;
/// Frames per fragment in the latency test (25 fps, one append per frame).
const DEFAULT_CHUNKS: usize = 25;
/// Store throughput must be at least this share of the raw disk's at the same fsync cadence.
const TARGET_RATIO: f64 = 0.80;
/// Stream counts the ratio target applies to.
const RATIO_TARGET_STREAMS: [usize; 2] = [10, 100];
/// p99 from `finish()` to durable, for 100 real-time streams.
const TARGET_LATENCY_P99_MS: f64 = 20.0;
const LATENCY_TARGET_STREAMS: usize = 100;
/// p99 of one page of a timestamp-range listing.
const TARGET_INDEX_P99_MS: f64 = 5.0;
/// Fragments per page.
const PAGE: usize = 1000;
/// The index is filled in commits of this many fragments.
const INDEX_BATCH: u64 = 10_000;
/// The raw reference writes from a pool this large (twice a large L3 cache).
const RAW_POOL_BYTES: usize = 64 << 20;
/// Index timestamps start here (2026-01-01T00:00:00Z), one fragment per second.
const BASE_TS_MS: u64 = 1_767_225_600_000;

/// What one run does.
#[derive(Debug, Clone)]
struct Plan {
    mode: &'static str,
    quick: bool,
    fragment_bytes: usize,
    chunks: usize,
    /// `--no-encryption`: store fragments in clear (to see what encryption costs).
    encryption: bool,
    throughput: bool,
    latency: bool,
    index: bool,
    logs: bool,
    /// Stream counts, warm-up and measured window, alternating store/raw pairs.
    tp_streams: Vec<usize>,
    tp_warm: Duration,
    tp_measure: Duration,
    tp_reps: usize,
    lat_streams: Vec<usize>,
    lat_secs: u64,
    index_fragments: u64,
    index_queries: usize,
}

impl Plan {
    fn from_args() -> Self {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let flag = |f: &str| args.iter().any(|a| a == f);
        let value = |f: &str| -> Option<usize> {
            let i = args.iter().position(|a| a == f)?;
            let v = args
                .get(i + 1)
                .unwrap_or_else(|| panic!("{f} needs a value"));
            Some(v.parse().unwrap_or_else(|e| panic!("{f} {v}: {e}")))
        };
        let only: Vec<&str> = args
            .iter()
            .enumerate()
            .filter(|(_, a)| *a == "--only")
            .map(|(i, _)| args.get(i + 1).map(String::as_str).unwrap_or(""))
            .collect();
        for o in &only {
            assert!(
                ["throughput", "latency", "index", "logs"].contains(o),
                "--only takes throughput, latency, index or logs, not {o:?}"
            );
        }
        let section = |s: &str| only.is_empty() || only.contains(&s);
        let counts: Vec<usize> = args
            .iter()
            .enumerate()
            .filter(|(_, a)| *a == "--streams")
            .map(|(i, _)| {
                let v = args.get(i + 1).map_or("", String::as_str);
                v.parse().unwrap_or_else(|e| panic!("--streams {v:?}: {e}"))
            })
            .collect();
        // `cargo bench` passes --bench; `cargo test --benches` does not: run the quick plan.
        let test_mode = !flag("--bench");
        let quick = flag("--quick") || test_mode;
        let fragment_bytes = value("--fragment-bytes").unwrap_or(DEFAULT_FRAGMENT_BYTES);
        let chunks = value("--chunks").unwrap_or(DEFAULT_CHUNKS).max(1);
        assert!(fragment_bytes > 0, "--fragment-bytes must be positive");
        let base = Self {
            mode: "full",
            quick,
            fragment_bytes,
            chunks,
            encryption: !flag("--no-encryption"),
            throughput: section("throughput"),
            latency: section("latency"),
            index: section("index"),
            logs: section("logs"),
            tp_streams: vec![1, 10, 100, 1000],
            tp_warm: Duration::from_millis(500),
            tp_measure: Duration::from_secs(2),
            tp_reps: 6,
            lat_streams: vec![100, 1000],
            lat_secs: 20,
            index_fragments: 1_000_000,
            index_queries: 2000,
        };
        let mut plan = if quick {
            Self {
                mode: if test_mode { "test (quick)" } else { "quick" },
                tp_streams: vec![1, 10, 100],
                tp_warm: Duration::from_millis(300),
                tp_measure: Duration::from_millis(700),
                tp_reps: 4,
                lat_streams: vec![100],
                lat_secs: 3,
                index_fragments: 100_000,
                index_queries: 300,
                ..base
            }
        } else {
            base
        };
        if !counts.is_empty() {
            plan.tp_streams = counts.clone();
            plan.lat_streams = counts;
        }
        plan
    }
}

fn main() {
    let started = Instant::now();
    let plan = Plan::from_args();
    let root = bench_dir();
    // Leftovers of an interrupted run would only take disk space.
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap_or_else(|e| panic!("{}: {e}", root.display()));
    let fs = describe_fs(&root);
    println!(
        "vigil-store benchmark, {} mode; data in {} ({})",
        plan.mode,
        root.display(),
        fs.describe
    );
    if fs.fake {
        eprintln!(
            "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             !!! WARNING: {} is on {}: fsync there does not reach a disk, so the\n\
             !!! throughput and latency figures below mean NOTHING. Set VIGIL_BENCH_DIR to a\n\
             !!! directory on a real disk (ext4, xfs, ...).\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n",
            root.display(),
            fs.name
        );
    }
    check_space(&root, &plan);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    println!(
        "{workers} CPUs; fragments of {} bytes (1 s at {:.1} Mbit/s){}",
        plan.fragment_bytes,
        plan.fragment_bytes as f64 * 8.0 / 1e6,
        if plan.encryption {
            ""
        } else {
            "; ENCRYPTION OFF (--no-encryption)"
        }
    );

    let mut rows = Vec::new();
    if plan.throughput {
        rows.extend(throughput(&rt, &root, &plan));
    }
    if plan.latency {
        rows.extend(latency(&rt, &root, &plan));
    }
    if plan.index {
        rows.extend(index(&root, &plan));
    }
    if plan.logs {
        rows.extend(logs::logs(&rt, &root, &plan));
    }
    drop(rt);
    let _ = std::fs::remove_dir_all(&root);

    let missed = summary(&rows, &plan, &fs, started.elapsed());
    if missed && !plan.quick {
        eprintln!("error: the store missed a target (see the table above)");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------------------------
// Setup

fn bench_dir() -> PathBuf {
    std::env::var_os("VIGIL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join("vigil-bench-store")
}

struct FsInfo {
    name: String,
    describe: String,
    /// tmpfs, overlay or another filesystem where fsync figures mean nothing.
    fake: bool,
}

/// The filesystem type (statfs `f_type`) and the device it is mounted from (/proc/mounts).
fn describe_fs(dir: &Path) -> FsInfo {
    let st = rustix::fs::statfs(dir).unwrap_or_else(|e| panic!("statfs {}: {e}", dir.display()));
    #[allow(clippy::unnecessary_cast)]
    let magic = (st.f_type as i64 as u64) & 0xffff_ffff;
    let (name, fake) = match magic {
        0xEF53 => ("ext4", false),
        0x5846_5342 => ("xfs", false),
        0x9123_683E => ("btrfs", false),
        0x2FC1_2FC1 => ("zfs", false),
        0xF2F5_2010 => ("f2fs", false),
        0x0102_1994 => ("tmpfs", true),
        0x794C_7630 => ("overlay", true),
        0x8584_58F6 => ("ramfs", true),
        0x6969 => ("nfs", false),
        0x0102_1997 => ("9p", false),
        0x6573_5546 => ("fuse", false),
        _ => ("unknown", false),
    };
    let name = if name == "unknown" {
        format!("filesystem type {magic:#x}")
    } else {
        name.to_owned()
    };
    // The mount with the longest prefix of the directory's real path.
    let real = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mount = mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (dev, at) = (f.next()?, f.next()?);
            real.starts_with(at)
                .then(|| (at.len(), dev.to_owned(), at.to_owned()))
        })
        .max_by_key(|(len, _, _)| *len);
    let describe = match mount {
        Some((_, dev, at)) => format!("{name} on {dev}, mounted at {at}"),
        None => name.clone(),
    };
    FsInfo {
        name,
        describe,
        fake,
    }
}

/// Fails early, and says why, when the disk cannot hold what the run writes.
fn check_space(dir: &Path, plan: &Plan) {
    let st = rustix::fs::statvfs(dir).unwrap_or_else(|e| panic!("statvfs {}: {e}", dir.display()));
    let avail = st.f_bavail.saturating_mul(st.f_frsize);
    // A store keeps every rep of one stream count: allow 600 MB/s for all of them.
    let need = if plan.throughput {
        (plan.tp_reps as f64 * (plan.tp_warm + plan.tp_measure).as_secs_f64() * 600e6) as u64
    } else {
        0
    } + (1 << 30);
    assert!(
        avail >= need,
        "{} has {} MB free; this run needs about {} MB: set VIGIL_BENCH_DIR to a roomier disk",
        dir.display(),
        avail / 1_000_000,
        need / 1_000_000
    );
}

fn config(dir: &Path, plan: &Plan) -> StoreConfig {
    let mut cfg = StoreConfig::new(dir);
    cfg.encryption = plan.encryption;
    if let Some(mb) = std::env::var("VIGIL_BENCH_SEGMENT_MB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        cfg.segment_max_bytes = mb << 20;
    }
    cfg.retention_interval_ms = 0;
    cfg.min_free_bytes = 0;
    cfg
}

/// Removes a store and waits for the filesystem to settle (the journal commit that frees its
/// blocks, with their discards), so that one test's clean-up does not stall the next one's
/// fsyncs.
fn remove_store(dir: &Path) {
    std::fs::remove_dir_all(dir).unwrap_or_else(|e| panic!("removing {}: {e}", dir.display()));
    settle(dir.parent().unwrap_or(dir));
}

/// Drops the (clean, fsynced) page cache of a store's segments, so that runs do not grow the
/// page cache into memory the machine has not used yet: on a VM, first touches of memory are
/// slow, and that would weigh on whichever run came first.
fn drop_segment_cache(store_dir: &Path) {
    let dir = store_dir.join("segments");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed)
            .unwrap_or_else(|e| panic!("fadvise {}: {e}", path.display()));
    }
}

fn settle(dir: &Path) {
    let f = std::fs::File::open(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    rustix::fs::syncfs(&f).unwrap_or_else(|e| panic!("syncfs {}: {e}", dir.display()));
    std::thread::sleep(Duration::from_millis(200));
}

fn fresh_dir(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Opens a store in `dir` with `n` streams (retention 24 h, one lane), each with a track header.
fn open_with_streams(dir: &Path, n: usize, plan: &Plan) -> (Store, Vec<(u64, u64)>) {
    let t = Instant::now();
    let store = Store::open(config(dir, plan), Arc::new(SystemClock)).expect("the store opens");
    let streams = (0..n)
        .map(|i| {
            let id = store
                .create_stream(NewStream {
                    name: format!("cam-{i:05}"),
                    data_retention_hours: 24,
                    ..NewStream::default()
                })
                .expect("create_stream")
                .id;
            let header = store
                .register_header(id, b"EBML header, Info, Tracks")
                .expect("register_header");
            (id, header)
        })
        .collect();
    println!(
        "  (opened a store with {n} stream{} in {:.1} s)",
        if n == 1 { "" } else { "s" },
        t.elapsed().as_secs_f64()
    );
    (store, streams)
}

/// Incompressible bytes.
fn payload(len: usize) -> Bytes {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    Bytes::from(v)
}

/// `payload` as `n` appends of about equal size (frames).
fn frames(payload: &Bytes, n: usize) -> Vec<Bytes> {
    let step = payload.len().div_ceil(n.max(1)).max(1);
    (0..payload.len())
        .step_by(step)
        .map(|at| payload.slice(at..(at + step).min(payload.len())))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. Throughput

/// A rate measured between two group-commit (or fsync) boundaries.
#[derive(Debug, Clone, Copy, Default)]
struct Rate {
    bytes: u64,
    secs: f64,
    stats: StoreStats,
}

impl Rate {
    fn mb_s(&self) -> f64 {
        self.bytes as f64 / self.secs.max(1e-9) / 1e6
    }
    fn per_sync(&self) -> f64 {
        self.stats.records as f64 / self.stats.syncs.max(1) as f64
    }
    /// How a group commit's time went, in ms per batch: pwrite, fdatasync, index, and the
    /// rest (waiting for records, answering writers, checkpoints).
    fn split(&self) -> String {
        let s = &self.stats;
        let ms = |ns: u64| ns as f64 / 1e6 / s.batches.max(1) as f64;
        let all = self.secs * 1e3 / s.batches.max(1) as f64;
        let other = all - ms(s.write_nanos) - ms(s.sync_nanos) - ms(s.index_nanos);
        format!(
            "{all:.2} = write {:.2} + fsync {:.2} + index {:.2} + other {:.2}",
            ms(s.write_nanos),
            ms(s.sync_nanos),
            ms(s.index_nanos),
            other.max(0.0)
        )
    }

    fn write_len(&self) -> usize {
        (self.stats.bytes / self.stats.records.max(1)) as usize
    }
}

fn delta(a: StoreStats, b: StoreStats) -> StoreStats {
    StoreStats {
        batches: b.batches - a.batches,
        records: b.records - a.records,
        bytes: b.bytes - a.bytes,
        syncs: b.syncs - a.syncs,
        write_nanos: b.write_nanos - a.write_nanos,
        sync_nanos: b.sync_nanos - a.sync_nanos,
        index_nanos: b.index_nanos - a.index_nanos,
    }
}

fn throughput(rt: &Runtime, root: &Path, plan: &Plan) -> Vec<Row> {
    println!(
        "\n== throughput: every stream writes fragments back to back, waiting for each to be \
         durable;\n   raw: one file, writes of the store's record size, fdatasync after the \
         store's average group commit\n   ({} store/raw pairs in ABBA order, each run {:.1} s \
         measured after {:.1} s of warm-up; the ratio is the median of the pairs)",
        plan.tp_reps,
        plan.tp_measure.as_secs_f64(),
        plan.tp_warm.as_secs_f64()
    );
    let data = payload(plan.fragment_bytes);
    let mut rows = Vec::new();
    for &n in &plan.tp_streams {
        let dir = fresh_dir(root, &format!("throughput-{n}"));
        let (store, streams) = open_with_streams(&dir, n, plan);
        let raw_file = root.join("raw.bin");
        let mut pairs: Vec<(Rate, Rate)> = Vec::new();
        for rep in 0..plan.tp_reps {
            // Store then raw, raw then store, ... so that a drift in the machine's speed
            // weighs on both alike. Raw takes the cadence of the nearest store run.
            let (s, r) = match pairs.last() {
                Some((prev, _)) if rep % 2 == 1 => {
                    let r = raw_throughput(&raw_file, prev.write_len(), prev.per_sync(), plan);
                    let s = store_throughput(rt, &store, &streams, &data, plan);
                    drop_segment_cache(&dir);
                    (s, r)
                }
                _ => {
                    let s = store_throughput(rt, &store, &streams, &data, plan);
                    drop_segment_cache(&dir);
                    let r = raw_throughput(&raw_file, s.write_len(), s.per_sync(), plan);
                    (s, r)
                }
            };
            println!(
                "  {n:>4} x{}: store {:>4.0} MB/s, raw {:>4.0} MB/s, ratio {:.2}; {:.1} \
                 records/fsync; ms per batch: store {}, raw {}",
                rep + 1,
                s.mb_s(),
                r.mb_s(),
                s.mb_s() / r.mb_s(),
                s.per_sync(),
                s.split(),
                r.split()
            );
            pairs.push((s, r));
        }
        drop(store);
        remove_store(&dir);
        let store_mb = median(pairs.iter().map(|(s, _)| s.mb_s()).collect());
        let raw_mb = median(pairs.iter().map(|(_, r)| r.mb_s()).collect());
        let ratios: Vec<f64> = pairs.iter().map(|(s, r)| s.mb_s() / r.mb_s()).collect();
        let (lo, hi) = ratios
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), &r| (lo.min(r), hi.max(r)));
        let ratio = median(ratios);
        let per_sync = median(pairs.iter().map(|(s, _)| s.per_sync()).collect());
        let target = RATIO_TARGET_STREAMS.contains(&n);
        rows.push(Row {
            name: format!("throughput, {n} stream{}", if n == 1 { "" } else { "s" }),
            store: format!("{store_mb:.0} MB/s"),
            reference: format!("raw {raw_mb:.0} MB/s"),
            value: format!("{ratio:.2} ({lo:.2}-{hi:.2}), {per_sync:.1} rec/fsync"),
            target: if target {
                format!("ratio >= {TARGET_RATIO:.2}")
            } else {
                "-".into()
            },
            pass: target.then_some(ratio >= TARGET_RATIO),
            disk: true,
        });
    }
    rows
}

/// Every stream a tokio task writing fragments back to back, each waiting for the last to be
/// durable; the rate is taken between group commits after the warm-up.
fn store_throughput(
    rt: &Runtime,
    store: &Store,
    streams: &[(u64, u64)],
    data: &Bytes,
    plan: &Plan,
) -> Rate {
    let stop = Arc::new(AtomicBool::new(false));
    let chunks = frames(data, DEFAULT_CHUNKS);
    let tasks: Vec<_> = streams
        .iter()
        .map(|&(id, header)| {
            let (store, stop, chunks) = (store.clone(), stop.clone(), chunks.clone());
            rt.spawn(async move {
                let mut ts = BASE_TS_MS;
                while !stop.load(Ordering::Relaxed) {
                    let mut w = store
                        .begin_fragment(id, header, ts)
                        .expect("begin_fragment");
                    for c in &chunks {
                        w.append(c.clone()).expect("append");
                    }
                    let durable = w.finish(1000).expect("finish");
                    durable.wait().await.expect("a fragment becomes durable");
                    ts += 1000;
                }
            })
        })
        .collect();
    let rate = sample_commits(store, plan.tp_warm, plan.tp_measure);
    stop.store(true, Ordering::Relaxed);
    rt.block_on(async {
        for t in tasks {
            t.await.expect("a writer task failed");
        }
    });
    rate
}

/// Polls the store's counters and measures between the first group commit after `warm` and the
/// last one before `warm + measure`, so that no partial batch skews the rate.
fn sample_commits(store: &Store, warm: Duration, measure: Duration) -> Rate {
    let start = Instant::now();
    let mut last = store.stats();
    let mut first: Option<(Instant, StoreStats)> = None;
    let mut end: Option<(Instant, StoreStats)> = None;
    loop {
        std::thread::sleep(Duration::from_millis(1));
        let now = Instant::now();
        let s = store.stats();
        if s.batches != last.batches {
            last = s;
            match first {
                None if now - start >= warm => first = Some((now, s)),
                Some((t0, _)) if now - t0 <= measure => end = Some((now, s)),
                _ => {}
            }
        }
        if let Some((t0, _)) = first
            && now - t0 > measure
        {
            break;
        }
        assert!(
            now - start < warm + measure * 10,
            "the store committed nothing for a long time: {last:?}"
        );
    }
    let (t0, s0) = first.expect("a commit after the warm-up");
    let (t1, s1) = end.unwrap_or_else(|| panic!("only one group commit in {measure:?}"));
    let stats = delta(s0, s1);
    Rate {
        bytes: stats.bytes,
        secs: (t1 - t0).as_secs_f64(),
        stats,
    }
}

/// The disk's reference: one file, `write_len`-byte writes, an fdatasync after every
/// `per_sync` writes on average, as the store did; no encryption, no index, no threads.
fn raw_throughput(path: &Path, write_len: usize, per_sync: f64, plan: &Plan) -> Rate {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // Distinct source bytes for every write, as the store's records are: cycling through one
    // hot buffer would write from the CPU cache, which no ingest path does.
    let pool = payload(RAW_POOL_BYTES.max(2 * write_len));
    let slots = (pool.len() / write_len.max(1)).max(1);
    let mut slot = 0;
    let start = Instant::now();
    let (mut offset, mut credit) = (0u64, 0.0f64);
    // The same counters as the store's, for the same per-batch figures.
    let mut total = StoreStats::default();
    let mut first: Option<(Instant, StoreStats)> = None;
    let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    let rate = loop {
        credit += per_sync.max(1.0);
        let n = credit.floor();
        credit -= n;
        let t = Instant::now();
        for _ in 0..n as u64 {
            let buf = &pool[slot * write_len..(slot + 1) * write_len];
            slot = (slot + 1) % slots;
            file.write_all_at(buf, offset)
                .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
            offset += write_len as u64;
        }
        let written = Instant::now();
        file.sync_data()
            .unwrap_or_else(|e| panic!("fdatasync {}: {e}", path.display()));
        let now = Instant::now();
        total.batches += 1;
        total.syncs += 1;
        total.records += n as u64;
        total.bytes += n as u64 * write_len as u64;
        total.write_nanos += nanos(written - t);
        total.sync_nanos += nanos(now - written);
        match first {
            None if now - start >= plan.tp_warm => first = Some((now, total)),
            Some((t0, s0)) if now - t0 >= plan.tp_measure => {
                let stats = delta(s0, total);
                break Rate {
                    bytes: stats.bytes,
                    secs: (now - t0).as_secs_f64(),
                    stats,
                };
            }
            _ => {}
        }
    };
    drop(file);
    std::fs::remove_file(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    settle(path.parent().unwrap_or(path));
    rate
}

// ---------------------------------------------------------------------------------------------
// 2. Latency

fn latency(rt: &Runtime, root: &Path, plan: &Plan) -> Vec<Row> {
    println!(
        "\n== latency: real-time streams, one {}-byte fragment per second each in {} append{}, \
         start phases staggered over the second; {} s; time from finish() to durable",
        plan.fragment_bytes,
        plan.chunks,
        if plan.chunks == 1 { "" } else { "s" },
        plan.lat_secs
    );
    let data = payload(plan.fragment_bytes);
    let mut rows = Vec::new();
    for &n in &plan.lat_streams {
        let dir = fresh_dir(root, &format!("latency-{n}"));
        let (store, streams) = open_with_streams(&dir, n, plan);
        let before = store.stats();
        let (mut lat, lag) = latency_run(rt, &store, &streams, &data, plan);
        let stats = delta(before, store.stats());
        drop(store);
        remove_store(&dir);
        lat.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let (p50, p99, max) = (
            ms(percentile(&lat, 0.50)),
            ms(percentile(&lat, 0.99)),
            ms(percentile(&lat, 1.0)),
        );
        println!(
            "  {n:>4} streams: {} fragments, p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms; \
             {:.1} records/fsync; harness timer lag max {:.1} ms",
            lat.len(),
            stats.records as f64 / stats.syncs.max(1) as f64,
            ms(lag)
        );
        let target = n == LATENCY_TARGET_STREAMS;
        rows.push(Row {
            name: format!("latency, {n} real-time streams"),
            store: format!("p99 {p99:.1} ms"),
            reference: format!("p50 {p50:.1}, max {max:.1} ms"),
            value: format!("{} frags", lat.len()),
            target: if target {
                format!("p99 <= {TARGET_LATENCY_P99_MS:.0} ms")
            } else {
                "-".into()
            },
            pass: target.then_some(p99 <= TARGET_LATENCY_P99_MS),
            disk: true,
        });
    }
    rows
}

/// Runs the real-time streams; returns every fragment's finish-to-durable time and how late
/// the harness's timers fired at worst (if that is large, the harness, not the store, is slow).
fn latency_run(
    rt: &Runtime,
    store: &Store,
    streams: &[(u64, u64)],
    data: &Bytes,
    plan: &Plan,
) -> (Vec<Duration>, Duration) {
    let chunks = frames(data, plan.chunks);
    let n = streams.len() as u32;
    let secs = plan.lat_secs;
    let second = Duration::from_secs(1);
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let tasks: Vec<_> = streams
        .iter()
        .zip(0u32..)
        .map(|(&(id, header), i)| {
            let (store, chunks) = (store.clone(), chunks.clone());
            let phase = second * i / n;
            rt.spawn(async move {
                let mut waits = Vec::with_capacity(secs as usize);
                let mut lag = Duration::ZERO;
                let at = |k: u64, c: usize| {
                    start
                        + phase
                        + second * k as u32
                        + second * (c as u32 + 1) / chunks.len() as u32
                };
                for k in 0..secs {
                    tokio::time::sleep_until(start + phase + second * k as u32).await;
                    let mut w = store
                        .begin_fragment(id, header, BASE_TS_MS + k * 1000)
                        .expect("begin_fragment");
                    for (c, chunk) in chunks.iter().enumerate() {
                        let due = at(k, c);
                        tokio::time::sleep_until(due).await;
                        lag = lag.max(tokio::time::Instant::now() - due);
                        w.append(chunk.clone()).expect("append");
                    }
                    let t0 = Instant::now();
                    let durable = w.finish(1000).expect("finish");
                    waits.push(tokio::spawn(async move {
                        durable.wait().await.expect("a fragment becomes durable");
                        t0.elapsed()
                    }));
                }
                let mut out = Vec::with_capacity(waits.len());
                for w in waits {
                    out.push(w.await.expect("a waiter task failed"));
                }
                (out, lag)
            })
        })
        .collect();
    rt.block_on(async {
        let mut all = Vec::new();
        let mut lag = Duration::ZERO;
        for t in tasks {
            let (v, l) = t.await.expect("a stream task failed");
            all.extend(v);
            lag = lag.max(l);
        }
        (all, lag)
    })
}

// ---------------------------------------------------------------------------------------------
// 3. Index

fn index(root: &Path, plan: &Plan) -> Vec<Row> {
    let total = plan.index_fragments;
    println!(
        "\n== index: pages of {PAGE} fragments by server-timestamp range out of {total} in one \
         stream; {} random start points, each page and the page after it (next cursor)",
        plan.index_queries
    );
    assert!(
        total >= 4 * PAGE as u64,
        "the index test needs more fragments"
    );
    let dir = fresh_dir(root, "index");
    let (store, streams) = open_with_streams(&dir, 1, plan);
    let (stream, header) = streams[0];
    let t = Instant::now();
    let mut number = 0u64;
    while number < total {
        let fragments = (number..(number + INDEX_BATCH).min(total))
            .map(|i| synthetic(stream, header, i))
            .collect();
        number += INDEX_BATCH;
        store
            .index()
            .apply(
                &CommitBatch {
                    fragments,
                    ..CommitBatch::default()
                },
                false,
            )
            .expect("index apply");
    }
    store.index().checkpoint().expect("index checkpoint");
    let fill = t.elapsed();
    assert_eq!(store.usage(stream).expect("usage").fragments, total);
    println!(
        "  filled in {:.1} s ({:.0} fragments/s in commits of {INDEX_BATCH})",
        fill.as_secs_f64(),
        total as f64 / fill.as_secs_f64()
    );

    // An hour of fragments from a random second: more than two pages.
    let span_ms = 3_600_000;
    let last_start = total - 3600;
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let (mut first, mut next) = (Vec::new(), Vec::new());
    for _ in 0..plan.index_queries {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let from = rng % last_start;
        let start_ms = BASE_TS_MS + from * 1000 + rng % 1000;
        let t = Instant::now();
        let page = store
            .list_fragments(
                stream,
                TimestampKind::Server,
                start_ms,
                start_ms + span_ms,
                None,
                PAGE,
            )
            .expect("list_fragments");
        first.push(t.elapsed());
        check_page(&page.fragments, start_ms, None);
        let cursor = page.next.expect("a full page has a next cursor");
        let t = Instant::now();
        let page2 = store
            .list_fragments(
                stream,
                TimestampKind::Server,
                start_ms,
                start_ms + span_ms,
                Some(cursor),
                PAGE,
            )
            .expect("list_fragments (next)");
        next.push(t.elapsed());
        check_page(&page2.fragments, start_ms, Some(cursor.number));
    }
    drop(store);
    remove_store(&dir);

    let mut rows = Vec::new();
    for (what, mut v) in [("first page", first), ("next page", next)] {
        v.sort();
        let ms = |q: f64| percentile(&v, q).as_secs_f64() * 1e3;
        let (p50, p99, max) = (ms(0.5), ms(0.99), ms(1.0));
        println!("  {what}: p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms");
        rows.push(Row {
            name: format!("index, {what} of {PAGE} of {}", thousands(total)),
            store: format!("p99 {p99:.2} ms"),
            reference: format!("p50 {p50:.2} ms"),
            value: format!("{} pages", v.len()),
            target: format!("p99 <= {TARGET_INDEX_P99_MS:.0} ms"),
            pass: Some(p99 <= TARGET_INDEX_P99_MS),
            disk: false,
        });
    }
    rows
}

/// The `i`th fragment of the synthetic stream: one a second, 250 KB, in segments of 1000.
fn synthetic(stream: u64, header: u64, i: u64) -> FragmentMeta {
    FragmentMeta {
        stream,
        number: i + 1,
        producer_ts_ms: BASE_TS_MS + i * 1000,
        server_ts_ms: BASE_TS_MS + i * 1000 + 250,
        duration_ms: 1000,
        size: 250_000,
        header_id: header,
        key_gen: 1,
        location: Location {
            segment: 1 + i / 1000,
            offset: 32 + (i % 1000) * 250_092,
            len: 250_092,
        },
    }
}

/// A page holds `PAGE` fragments in timestamp order, consecutive from the first at or after
/// `start_ms` (one a second), or from `after` when following a cursor.
fn check_page(page: &[FragmentMeta], start_ms: u64, after: Option<u64>) {
    assert_eq!(page.len(), PAGE, "a page from {start_ms} is full");
    let first = page.first().map_or(0, |m| m.number);
    match after {
        Some(n) => assert_eq!(first, n + 1, "the next page follows the cursor"),
        None => {
            let ts = page.first().map_or(0, |m| m.server_ts_ms);
            assert!(
                ts >= start_ms && ts < start_ms + 1000,
                "the page starts at the first fragment of the range"
            );
        }
    }
    for (m, n) in page.iter().zip(first..) {
        assert_eq!(
            m.number, n,
            "pages hold consecutive fragments in timestamp order"
        );
    }
}

#[path = "store/logs.rs"]
mod logs;
#[path = "store/summary.rs"]
mod summary;

use summary::{Row, median, percentile, summary, thousands};
