//! Server benchmarks (`bench/README.md`): the real `vigil serve` binary as a child process,
//! driven over raw HTTP/1.1 by load generators in this process. Real-time 2 Mbit/s cameras
//! (synthetic Matroska: 25 fps, a 10,000-byte frame every 40 ms, a key frame and a fragment a
//! second), measured three ways:
//!
//! 1. **ingest**: N concurrent PutMedia producers, one stream each; the time from a fragment's
//!    last byte sent to its PERSISTED ack;
//! 2. **live**: N streams, each with a producer and a GetMedia reader at NOW; the time from a
//!    frame's last byte written into PutMedia to its last byte read from GetMedia;
//! 3. **fanout**: one stream read by R GetMedia readers; each reader's lag the same way;
//! 4. **abuse**: clients that open GetMedia, HLS segment and GetClip responses on a stream of
//!    large fragments (46 MB) and never read them: the server's memory growth, and a producer
//!    on another stream timed before and during (`abuse.rs`);
//! 5. **crash**: producers and readers while the server is killed with SIGKILL at random
//!    moments and restarted on the same data: its ready time, and every fragment acknowledged
//!    PERSISTED found again byte for byte (`crash.rs`);
//! 6. **saturate**: producers sending as fast as the server takes: the store's durable rate
//!    against the raw write+fsync rate of the same disk (`saturate.rs`);
//! 7. **soak** (only when named, or in quick mode): an hour of steady load, the server's
//!    memory, open files and threads sampled each minute (`soak.rs`).
//!
//! The server's CPU is read from /proc apart from this process's (the load generators), and
//! the rest of the machine's; the harness reports how late its own timers fired, so that a
//! slow harness is not taken for a slow server, and a probe thread times a small fdatasync in
//! the server's filesystem, so that a slow disk is not either.
//!
//! ```sh
//! cargo bench --profile ci -p vigil --bench server             # full: about 2 minutes
//! cargo bench --profile ci -p vigil --bench server -- --quick  # about 25 s; scripts/test
//! ```
//!
//! Options after `--`: `--quick`; `--only ingest|live|fanout|abuse|crash|saturate|soak` (repeatable;
//! the full run leaves soak out unless named); `--soak-secs N`, `--soak-sample-secs N`; `--crash-kills N`, `--crash-preload N` (fragments written before
//! the first kill, default 100,000, quick 2,000);
//! `--streams N` (repeatable: the stream counts of ingest and live); `--readers N`
//! (repeatable: fan-out reader counts); `--secs N` (measured seconds, default 20, quick 3) and
//! `--warmup N` (seconds before, default 3, quick 1). The server runs with
//! `--allow-anonymous`: requests are not signed (signing costs once per connection, and
//! connections here last the whole run). Its data goes under `$VIGIL_BENCH_DIR`, else
//! `$TMPDIR`, in `vigil-bench-server`, which must be on the disk to be measured (the
//! filesystem is printed, with a warning if it is tmpfs or overlay). `VIGIL_BENCH_RUST_LOG` is
//! passed to the server as `RUST_LOG`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod abuse;
mod crash;
mod harness;
mod http;
mod media;
mod producer;
mod reader;
mod run;
mod saturate;
mod soak;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

use harness::{CpuUse, FsInfo, Quantiles, thousands};
use media::{FRAME_BYTES, FRAMES_PER_FRAGMENT};
use producer::AckKind;
use run::{Load, run_load};

/// Ingest: p99 from a fragment's last byte sent to PERSISTED, at this many producers.
const INGEST_TARGET_STREAMS: usize = 1000;
const INGEST_TARGET_P99_MS: f64 = 50.0;
/// Live: p99 from a frame's last byte into PutMedia to its last byte out of GetMedia.
const LIVE_TARGET_STREAMS: usize = 100;
const LIVE_TARGET_P99_MS: f64 = 20.0;
/// Fan-out: the worst reader's p99 lag, at this many readers of one stream.
const FANOUT_TARGET_READERS: usize = 1000;
const FANOUT_TARGET_P99_MS: f64 = 1000.0;
/// Abuse: at this many non-reading clients on 46 MB fragments, the server grows by at most
/// this much.
const ABUSE_TARGET_CLIENTS: usize = 1000;
const ABUSE_TARGET_MB: f64 = 256.0;
/// Crash: at this many SIGKILLs, no fragment acknowledged PERSISTED may be lost.
const CRASH_TARGET_KILLS: usize = 100;
/// Crash: ... with at least this many fragments in the data directory (written first).
const CRASH_TARGET_FRAGMENTS: usize = 100_000;
/// Crash: the ready time's p99 target after a kill, ms.
const CRASH_TARGET_READY_MS: f64 = 2000.0;
/// Soak: the run this long is judged against its target.
const SOAK_TARGET_SECS: u64 = 3600;
/// Error messages printed per run (all are counted).
const SHOW_ERRORS: usize = 5;

/// What one run does.
#[derive(Debug, Clone)]
struct Plan {
    mode: &'static str,
    quick: bool,
    ingest: bool,
    live: bool,
    fanout: bool,
    abuse: bool,
    abuse_clients: usize,
    abuse_fragment_bytes: usize,
    crash: bool,
    crash_producers: usize,
    crash_readers: usize,
    crash_kills: usize,
    /// Fragments written before the first kill.
    crash_preload: usize,
    saturate: bool,
    saturate_producers: usize,
    soak: bool,
    soak_streams: usize,
    soak_secs: u64,
    soak_sample_secs: u64,
    ingest_streams: Vec<usize>,
    live_streams: Vec<usize>,
    fanout_readers: Vec<usize>,
    warm: Duration,
    measure: Duration,
}

impl Plan {
    fn from_args() -> Self {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let flag = |f: &str| args.iter().any(|a| a == f);
        let values = |f: &str| -> Vec<String> {
            args.iter()
                .enumerate()
                .filter(|(_, a)| *a == f)
                .map(|(i, _)| {
                    args.get(i + 1)
                        .cloned()
                        .unwrap_or_else(|| panic!("{f} needs a value"))
                })
                .collect()
        };
        let numbers = |f: &str| -> Vec<usize> {
            values(f)
                .iter()
                .map(|v| v.parse().unwrap_or_else(|e| panic!("{f} {v:?}: {e}")))
                .collect()
        };
        let only = values("--only");
        for o in &only {
            assert!(
                [
                    "ingest", "live", "fanout", "abuse", "crash", "saturate", "soak"
                ]
                .contains(&o.as_str()),
                "--only takes ingest, live, fanout, abuse, crash, saturate or soak, not {o:?}"
            );
        }
        let section = |s: &str| only.is_empty() || only.iter().any(|o| o == s);
        // `cargo bench` passes --bench; `cargo test --benches` does not: run the quick plan.
        let test_mode = !flag("--bench");
        let quick = flag("--quick") || test_mode;
        let mut plan = Self {
            mode: "full",
            quick,
            ingest: section("ingest"),
            live: section("live"),
            fanout: section("fanout"),
            abuse: section("abuse"),
            abuse_clients: ABUSE_TARGET_CLIENTS,
            abuse_fragment_bytes: 46_000_000,
            crash: section("crash"),
            crash_producers: 50,
            crash_readers: 20,
            crash_kills: CRASH_TARGET_KILLS,
            crash_preload: CRASH_TARGET_FRAGMENTS,
            saturate: section("saturate"),
            saturate_producers: 100,
            // An hour: only when named (quick mode runs a short one, so that it never rots).
            soak: only.iter().any(|o| o == "soak") || (quick && only.is_empty()),
            soak_streams: 50,
            soak_secs: SOAK_TARGET_SECS,
            soak_sample_secs: 60,
            ingest_streams: vec![10, 100, 500, INGEST_TARGET_STREAMS],
            live_streams: vec![LIVE_TARGET_STREAMS],
            fanout_readers: vec![FANOUT_TARGET_READERS],
            warm: Duration::from_secs(3),
            measure: Duration::from_secs(20),
        };
        if quick {
            plan = Self {
                mode: if test_mode { "test (quick)" } else { "quick" },
                ingest_streams: vec![10, 100],
                live_streams: vec![10],
                fanout_readers: vec![50],
                abuse_clients: 60,
                abuse_fragment_bytes: 8_000_000,
                crash_producers: 5,
                crash_readers: 2,
                crash_kills: 5,
                crash_preload: 2_000,
                saturate_producers: 10,
                soak_streams: 5,
                soak_secs: 12,
                soak_sample_secs: 2,
                warm: Duration::from_secs(1),
                measure: Duration::from_secs(3),
                ..plan
            };
        }
        let streams = numbers("--streams");
        if !streams.is_empty() {
            plan.ingest_streams = streams.clone();
            plan.live_streams = streams;
        }
        let readers = numbers("--readers");
        if !readers.is_empty() {
            plan.fanout_readers = readers;
        }
        if let Some(&s) = numbers("--secs").last() {
            plan.measure = Duration::from_secs(s.max(1) as u64);
        }
        if let Some(&n) = numbers("--crash-preload").last() {
            plan.crash_preload = n;
        }
        if let Some(&n) = numbers("--crash-kills").last() {
            plan.crash_kills = n;
        }
        if let Some(&s) = numbers("--soak-secs").last() {
            plan.soak_secs = s.max(1) as u64;
        }
        if let Some(&s) = numbers("--soak-sample-secs").last() {
            plan.soak_sample_secs = s.max(1) as u64;
        }
        if let Some(&s) = numbers("--warmup").last() {
            plan.warm = Duration::from_secs(s as u64);
        }
        plan
    }

    /// Fragments (seconds) each producer sends: the warm-up, the window, and one more second
    /// so that every fragment of the window completes and every reader sees a frame after it.
    fn fragments(&self) -> u64 {
        (self.warm + self.measure).as_secs_f64().ceil() as u64 + 1
    }
}

fn main() {
    let started = Instant::now();
    let plan = Plan::from_args();
    let root = harness::bench_dir();
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap_or_else(|e| panic!("{}: {e}", root.display()));
    let fs = harness::describe_fs(&root);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let nofile = harness::raise_nofile();
    println!(
        "vigil server benchmark, {} mode; server data in {} ({}); {cores} CPUs; open-file \
         limit {nofile}",
        plan.mode,
        root.display(),
        fs.describe
    );
    if fs.fake {
        eprintln!(
            "\n!!! WARNING: {} is on {}: fsync there reaches no disk, so the PERSISTED figures\n\
             !!! mean NOTHING. Set VIGIL_BENCH_DIR to a directory on a real disk.\n",
            root.display(),
            fs.name
        );
    }
    let most = plan
        .ingest_streams
        .iter()
        .chain(&plan.live_streams)
        .max()
        .copied()
        .unwrap_or(1) as u64;
    harness::check_space(
        &root,
        most * (FRAME_BYTES as u64 * FRAMES_PER_FRAGMENT) * plan.fragments() + (1 << 30),
    );
    println!(
        "each camera: {} fps, {FRAME_BYTES}-byte frames, a key frame and a Cluster (fragment) \
         a second, {:.1} Mbit/s; frames due every 40 ms at the stream's phase of the second; \
         {:.0} s warm-up, {:.0} s measured; server: vigil serve --allow-anonymous (unsigned \
         requests)",
        FRAMES_PER_FRAGMENT,
        (FRAME_BYTES as u64 * FRAMES_PER_FRAGMENT * 8) as f64 / 1e6,
        plan.warm.as_secs_f64(),
        plan.measure.as_secs_f64()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let bench = Bench {
        rt,
        root: root.clone(),
        plan: plan.clone(),
        base: Instant::now(),
        cores,
    };

    let mut rows = Vec::new();
    if plan.ingest {
        rows.extend(ingest(&bench));
    }
    if plan.live {
        rows.extend(live(&bench));
    }
    if plan.fanout {
        rows.extend(fanout(&bench));
    }
    if plan.abuse {
        rows.extend(abuse::rows(&bench));
    }
    if plan.crash {
        rows.extend(crash::rows(&bench));
    }
    if plan.saturate {
        rows.extend(saturate::rows(&bench));
    }
    if plan.soak {
        rows.extend(soak::rows(&bench));
    }
    drop(bench);
    let _ = std::fs::remove_dir_all(&root);

    let missed = summary(&rows, &plan, &fs, cores, started.elapsed());
    if missed && !plan.quick {
        eprintln!("error: the server missed a target (see the table above)");
        std::process::exit(1);
    }
}

struct Bench {
    rt: Runtime,
    root: std::path::PathBuf,
    plan: Plan,
    /// Every stamp and arrival time counts from here.
    base: Instant,
    cores: usize,
}

impl Bench {
    fn ns(&self, t: tokio::time::Instant) -> u64 {
        u64::try_from(t.into_std().saturating_duration_since(self.base).as_nanos())
            .unwrap_or(u64::MAX)
    }
}

/// Errors of a run: counted, the first few kept.
#[derive(Default)]
struct Errors {
    count: u64,
    first: Vec<String>,
}

impl Errors {
    fn add(&mut self, n: u64, msg: impl FnOnce() -> String) {
        if n == 0 {
            return;
        }
        self.count += n;
        if self.first.len() < SHOW_ERRORS {
            self.first.push(msg());
        }
    }

    fn print(&self) {
        for e in &self.first {
            println!("      error: {e}");
        }
        if self.count > self.first.len() as u64 {
            println!("      ... {} errors in all", self.count);
        }
    }
}

/// Producer-side figures of a run.
struct Ingest {
    /// Last byte sent → PERSISTED, and → RECEIVED, µs, fragments completed in the window.
    persisted: Vec<u32>,
    received: Vec<u32>,
    /// Fragments completed in the window.
    in_window: u64,
    errors: Errors,
    /// Harness timer lag in the window, µs.
    timer_lag: Vec<u32>,
    write_max: Duration,
}

fn ingest_figures(load: &Load) -> Ingest {
    let (w0, w1) = load.window;
    let inside = |ns: u64| ns >= w0 && ns < w1;
    let mut r = Ingest {
        persisted: Vec::new(),
        received: Vec::new(),
        in_window: 0,
        errors: Errors::default(),
        timer_lag: Vec::new(),
        write_max: Duration::ZERO,
    };
    for p in &load.producers {
        for e in &p.errors {
            r.errors.add(1, || e.clone());
        }
        for a in p.acks.iter().filter(|a| a.kind == AckKind::Error) {
            r.errors
                .add(1, || a.error.clone().unwrap_or_else(|| "ERROR ack".into()));
        }
        for s in &p.sent {
            let ack = |kind| {
                p.acks
                    .iter()
                    .find(|a| a.kind == kind && a.timecode == s.timecode)
                    .map(|a| {
                        harness::micros(Duration::from_nanos(a.at_ns.saturating_sub(s.done_ns)))
                    })
            };
            let persisted = ack(AckKind::Persisted);
            r.errors.add(u64::from(persisted.is_none()), || {
                format!("no PERSISTED ack for the fragment at {}", s.timecode)
            });
            if inside(s.done_ns) {
                r.in_window += 1;
                r.persisted.extend(persisted);
                r.received.extend(ack(AckKind::Received));
            }
        }
        r.timer_lag.extend(
            p.timer_lag
                .iter()
                .filter(|(due, _)| inside(*due))
                .map(|(_, lag)| *lag),
        );
        r.write_max = r.write_max.max(p.write_max);
    }
    r
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// "gen 35%, others 4% CPU; timers late p99 0.9 / max 3.1 ms".
fn harness_text(cpu: &CpuUse, lag: &Quantiles) -> String {
    format!(
        "gen {:.0}%, others {:.0}% CPU; timers late p99 {:.1} / max {:.1} ms",
        cpu.bench * 100.0,
        cpu.others * 100.0,
        lag.p99,
        lag.max
    )
}

fn print_common(load: &Load, lag: &Quantiles, write_max: Duration) {
    println!(
        "      {}\n      harness: timers late p50 {:.2} / p99 {:.2} / max {:.2} ms over {} \
         ticks; longest write {:.1} ms; disk probe (4 KiB write + fdatasync every 100 ms) \
         p50 {:.1} / p99 {:.1} / max {:.1} ms\n      peak memory: server {:.0} MB, bench \
         process {:.0} MB (so far); server log: {} WARN, {} ERROR lines",
        load.cpu.line(),
        lag.p50,
        lag.p99,
        lag.max,
        thousands(lag.n as u64),
        ms(write_max),
        load.disk.p50,
        load.disk.p99,
        load.disk.max,
        load.server_rss_mb,
        harness::peak_rss_mb("self"),
        load.log.0,
        load.log.1
    );
    if load.log.1 > 0 {
        println!("      server log (last lines):\n{}", load.log_tail);
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Ingest

fn ingest(b: &Bench) -> Vec<Row> {
    println!(
        "\n== ingest: real-time PutMedia producers, one stream each; time from a fragment's last \
         byte sent (with the next Cluster's header) to its PERSISTED ack"
    );
    let mut rows = Vec::new();
    for &n in &b.plan.ingest_streams {
        let load = run_load(b, &format!("ingest-{n}"), n, &[]);
        let f = ingest_figures(&load);
        let p = Quantiles::of(f.persisted);
        let rcv = Quantiles::of(f.received);
        let lag = Quantiles::of(f.timer_lag);
        println!(
            "  {n:>4} producers: {} of {} fragments persisted; last byte -> PERSISTED p50 \
             {:.1} ms, p99 {:.1} ms, max {:.1} ms (-> RECEIVED p50 {:.2}, p99 {:.2}, max {:.1} \
             ms); {} errors",
            p.n, f.in_window, p.p50, p.p99, p.max, rcv.p50, rcv.p99, rcv.max, f.errors.count
        );
        f.errors.print();
        let bound =
            |q| run::bucket_quantile(&load.persist, q).map_or("?".into(), |ms| format!("{ms}"));
        println!(
            "      the server's own finish -> PERSISTED sent (vigil_store_persist_seconds, \
             bucket bounds): p50 <= {} ms, p99 <= {} ms",
            bound(0.5),
            bound(0.99)
        );
        print_common(&load, &lag, f.write_max);
        assert!(
            p.n > 0,
            "no fragment was persisted: the server is not working"
        );
        let target = n == INGEST_TARGET_STREAMS;
        let ok = f.errors.count == 0 && p.n as u64 == f.in_window;
        rows.push(Row {
            name: format!("ingest, {n} producers: last byte -> PERSISTED"),
            p99: format!("{:.1} ms", p.p99),
            detail: format!("{:.1} / {:.1} ms", p.p50, p.max),
            count: format!("{} frags", thousands(p.n as u64)),
            errors: f.errors.count,
            cpu: load.cpu.server_text(),
            harness: harness_text(&load.cpu, &lag),
            disk: format!("{:.1} ms", load.disk.p99),
            target: if target {
                format!("p99 <= {INGEST_TARGET_P99_MS:.0} ms, 0 errors")
            } else {
                "0 errors".into()
            },
            pass: Some(ok && (!target || p.p99 <= INGEST_TARGET_P99_MS)),
        });
    }
    rows
}

// ---------------------------------------------------------------------------------------------
// 2. Live latency and 3. fan-out

/// Reader-side figures: every frame's latency, per reader; frames missed.
struct Readers {
    all: Vec<u32>,
    /// Each reader's p99, ms.
    per_reader_p99: Vec<f64>,
    errors: Errors,
    frames: u64,
}

fn reader_figures(load: &Load) -> Readers {
    let (w0, w1) = load.window;
    let expected: Vec<u64> = load
        .producers
        .iter()
        .map(|p| p.frames_ns.iter().filter(|&&t| t >= w0 && t < w1).count() as u64)
        .collect();
    let mut r = Readers {
        all: Vec::new(),
        per_reader_p99: Vec::new(),
        errors: Errors::default(),
        frames: 0,
    };
    for (i, o) in &load.readers {
        for e in &o.errors {
            r.errors.add(1, || e.clone());
        }
        let want = expected.get(*i as usize).copied().unwrap_or(0);
        let got = o.lat_us.len() as u64;
        r.errors.add(want.saturating_sub(got), || {
            format!("stream {i}: a reader got {got} of the window's {want} frames")
        });
        r.errors.add(o.gaps, || {
            format!("stream {i}: {} frames missing or out of order", o.gaps)
        });
        r.frames += got;
        r.per_reader_p99.push(Quantiles::of(o.lat_us.clone()).p99);
        r.all.extend_from_slice(&o.lat_us);
    }
    r
}

fn live(b: &Bench) -> Vec<Row> {
    println!(
        "\n== live: real-time producers and one GetMedia reader (NOW) per stream; time from a \
         frame's last byte written into PutMedia to its last byte read from GetMedia"
    );
    let mut rows = Vec::new();
    for &n in &b.plan.live_streams {
        let readers: Vec<u32> = (0..n as u32).collect();
        let load = run_load(b, &format!("live-{n}"), n, &readers);
        let ing = ingest_figures(&load);
        let r = reader_figures(&load);
        let q = Quantiles::of(r.all);
        let lag = Quantiles::of(ing.timer_lag);
        let p = Quantiles::of(ing.persisted);
        let errors = r.errors.count + ing.errors.count;
        println!(
            "  {n:>4} streams: {} frames read; latency p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms; \
             {errors} errors (PERSISTED p99 {:.1} ms)",
            thousands(r.frames),
            q.p50,
            q.p99,
            q.max,
            p.p99
        );
        ing.errors.print();
        r.errors.print();
        print_common(&load, &lag, ing.write_max);
        assert!(q.n > 0, "no frame was read: the server is not working");
        let target = n == LIVE_TARGET_STREAMS;
        rows.push(Row {
            name: format!("live, {n} streams: PutMedia -> GetMedia, per frame"),
            p99: format!("{:.2} ms", q.p99),
            detail: format!("{:.2} / {:.1} ms", q.p50, q.max),
            count: format!("{} frames", thousands(q.n as u64)),
            errors,
            cpu: load.cpu.server_text(),
            harness: harness_text(&load.cpu, &lag),
            disk: format!("{:.1} ms", load.disk.p99),
            target: if target {
                format!("p99 <= {LIVE_TARGET_P99_MS:.0} ms, 0 errors")
            } else {
                "0 errors".into()
            },
            pass: Some(errors == 0 && (!target || q.p99 <= LIVE_TARGET_P99_MS)),
        });
    }
    rows
}

fn fanout(b: &Bench) -> Vec<Row> {
    println!(
        "\n== fanout: one real-time stream, many GetMedia readers (NOW); each reader's lag: \
         frame last byte read - frame written into PutMedia"
    );
    let mut rows = Vec::new();
    for &n in &b.plan.fanout_readers {
        let load = run_load(b, &format!("fanout-{n}"), 1, &vec![0; n]);
        let ing = ingest_figures(&load);
        let r = reader_figures(&load);
        let mut per = r.per_reader_p99.clone();
        per.sort_by(f64::total_cmp);
        let worst = per.last().copied().unwrap_or(0.0);
        let median_reader = per.get(per.len() / 2).copied().unwrap_or(0.0);
        let q = Quantiles::of(r.all);
        let lag = Quantiles::of(ing.timer_lag);
        let errors = r.errors.count + ing.errors.count;
        println!(
            "  {n:>4} readers: {} frames read; lag over all p50 {:.2} ms, p99 {:.2} ms, max \
             {:.1} ms; per reader p99: median {median_reader:.2} ms, worst {worst:.2} ms; \
             {errors} errors",
            thousands(r.frames),
            q.p50,
            q.p99,
            q.max
        );
        ing.errors.print();
        r.errors.print();
        print_common(&load, &lag, ing.write_max);
        assert!(q.n > 0, "no frame was read: the server is not working");
        let target = n == FANOUT_TARGET_READERS;
        rows.push(Row {
            name: format!("fan-out, 1 stream x {n} readers: worst reader's p99 lag"),
            p99: format!("{worst:.1} ms"),
            detail: format!(
                "all: p50 {:.1}, p99 {:.1}, max {:.1} ms",
                q.p50, q.p99, q.max
            ),
            count: format!("{} frames", thousands(q.n as u64)),
            errors,
            cpu: load.cpu.server_text(),
            harness: harness_text(&load.cpu, &lag),
            disk: format!("{:.1} ms", load.disk.p99),
            target: if target {
                format!("worst p99 < {FANOUT_TARGET_P99_MS:.0} ms, 0 errors")
            } else {
                "0 errors".into()
            },
            pass: Some(errors == 0 && (!target || worst < FANOUT_TARGET_P99_MS)),
        });
    }
    rows
}

// ---------------------------------------------------------------------------------------------
// Summary

struct Row {
    name: String,
    p99: String,
    /// p50 / max.
    detail: String,
    count: String,
    errors: u64,
    cpu: String,
    harness: String,
    /// The disk probe's fdatasync p99.
    disk: String,
    target: String,
    /// None: no target, shown for information.
    pass: Option<bool>,
}

/// Prints the table; true when a target was missed.
fn summary(rows: &[Row], plan: &Plan, fs: &FsInfo, cores: usize, took: Duration) -> bool {
    let header = [
        "figure",
        "p99",
        "p50 / max",
        "n",
        "errors",
        "server CPU",
        "harness",
        "fsync probe p99",
        "target",
        "result",
    ];
    let cells: Vec<[String; 10]> = rows
        .iter()
        .map(|r| {
            let result = match r.pass {
                Some(true) => "PASS",
                Some(false) => "MISS",
                None => "info",
            };
            let result = if fs.fake && r.name.starts_with("ingest") {
                format!("{result} ({} - meaningless)", fs.name)
            } else {
                result.to_owned()
            };
            [
                r.name.clone(),
                r.p99.clone(),
                r.detail.clone(),
                r.count.clone(),
                r.errors.to_string(),
                r.cpu.clone(),
                r.harness.clone(),
                r.disk.clone(),
                r.target.clone(),
                result,
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for c in &cells {
        for (w, s) in widths.iter_mut().zip(c) {
            *w = (*w).max(s.len());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, c: &[&str]| {
        let cols: Vec<String> = c
            .iter()
            .zip(widths)
            .map(|(s, w)| format!("{s:<w$}"))
            .collect();
        let _ = writeln!(out, "| {} |", cols.join(" | "));
    };
    let _ = writeln!(
        out,
        "\nvigil server summary ({} mode, {cores} CPUs, data on {}, {:.0} s)",
        plan.mode,
        fs.describe,
        took.as_secs_f64()
    );
    line(&mut out, &header);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    let _ = writeln!(out, "|-{}-|", rule.join("-|-"));
    for c in &cells {
        line(&mut out, &c.iter().map(String::as_str).collect::<Vec<_>>());
    }
    let missed = rows.iter().any(|r| r.pass == Some(false));
    if missed {
        let _ = writeln!(
            out,
            "MISSED: {}",
            rows.iter()
                .filter(|r| r.pass == Some(false))
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    print!("{out}");
    missed
}
