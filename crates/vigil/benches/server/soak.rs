//! The soak (`--only soak`; `bench/run soak`): an hour of steady load, and whether the server's
//! resources stay flat. 50 streams (quick: 5), each with a real-time producer (a fragment every
//! 200 ms: 5 frames of 2 KB, 40 ms apart, each fragment's PERSISTED awaited, as in the crash
//! section: 400 kbit/s, a camera's sub-stream) and a GetMedia reader at NOW, for an hour
//! (quick: 12 s; `--soak-secs N`). Every minute (quick: every 2 s; `--soak-sample-secs N`) the
//! server's resident memory (VmRSS), open files (`/proc/PID/fd`) and threads are sampled.
//! **Target: after the warm-up (the first tenth of the run, at least one sample), each of the
//! three stays within 10% of its value at the end of the warm-up** (open files and threads
//! within 10% or 5 of it, whichever is more, since they are small numbers); segment files,
//! counted apart, stay within the store's bound on them (256 handles; one more per segment
//! written until then); no producer errors.

use std::time::{Duration, Instant};

use crate::crash::{StreamLog, produce, read};
use crate::harness::{Server, rss_mb, status_field, thousands};
use crate::{Bench, Row};

/// The store's bound on open segment handles (`vigil_store::blob::LocalBlobs`).
const SEGMENT_HANDLES: usize = 256;

/// Frame bytes of a soak camera (5 a fragment, 5 fragments a second).
const FRAME: usize = 2_000;

/// A producer for the whole run: a new session whenever one ends with 4003
/// (`MAX_CONNECTION_DURATION_REACHED`: KVS ends every PutMedia connection after 45 minutes,
/// and producers reconnect), as the SDKs do. Any other end is an error. Gives the log, the
/// errors and the sessions opened.
async fn keep_producing(
    addr: std::net::SocketAddr,
    mut log: StreamLog,
    until: Instant,
) -> (StreamLog, Vec<String>, u32) {
    let (mut errors, mut sessions) = (Vec::new(), 0);
    loop {
        let (l, errs) = produce(addr, log, FRAME, Some(until)).await;
        log = l;
        sessions += 1;
        let limit = errs.iter().any(|e| e.contains("4003"));
        errors.extend(errs.into_iter().filter(|e| !e.contains("4003")));
        if Instant::now() >= until {
            return (log, errors, sessions);
        }
        if !limit {
            errors.push(format!("a session ended early after {sessions} sessions"));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// A GetMedia reader at NOW for the whole run, reconnecting whenever its response ends (as
/// its producer reconnects); the bytes it read.
async fn keep_reading(addr: std::net::SocketAddr, stream: String, until: Instant) -> u64 {
    let mut total = 0;
    while Instant::now() < until {
        let began = Instant::now();
        total += read(addr, stream.clone()).await;
        // A response refused or ended at once is not retried in a spin.
        if began.elapsed() < Duration::from_secs(1) {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    total
}

/// One sample of the server's resources.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at_s: f64,
    rss_mb: f64,
    /// Open files other than segment files.
    fds: usize,
    /// Open segment files: the store keeps a handle per segment it used, up to 256, so these
    /// grow with the segments written (a new one every couple of minutes here) to that bound.
    segment_fds: usize,
    threads: usize,
}

fn sample(pid: u32, started: Instant) -> Sample {
    let (mut fds, mut segment_fds) = (0, 0);
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for e in dir.flatten() {
            match std::fs::read_link(e.path()) {
                Ok(t) if t.extension().is_some_and(|x| x == "seg") => segment_fds += 1,
                _ => fds += 1,
            }
        }
    }
    Sample {
        at_s: started.elapsed().as_secs_f64(),
        rss_mb: rss_mb(pid),
        fds,
        segment_fds,
        threads: status_field(pid, "Threads:").map_or(0, |t| t as usize),
    }
}

/// The largest departure of `values` from `base`, as a share of `base`, and whether all are
/// within `share` of it (or within `slack` units).
fn drift(base: f64, values: impl Iterator<Item = f64>, share: f64, slack: f64) -> (f64, bool) {
    let mut worst: f64 = 0.0;
    let mut ok = true;
    for v in values {
        let d = (v - base).abs();
        worst = worst.max(if base > 0.0 { d / base } else { d });
        ok &= d <= (base * share).max(slack);
    }
    (worst, ok)
}

/// Runs the soak and gives its row of the summary.
pub fn rows(b: &Bench) -> Vec<Row> {
    let streams = b.plan.soak_streams;
    let secs = b.plan.soak_secs;
    let every = b.plan.soak_sample_secs.max(1);
    println!(
        "\n== soak: {streams} streams, each a real-time producer (a {} KB fragment every 200 ms) \
         and a GetMedia reader at NOW, for {secs} s; the server's memory, open files and threads \
         sampled every {every} s",
        5 * FRAME / 1000
    );
    let server = Server::start(&b.root.join("soak"));
    let names: Vec<String> = (0..streams).map(|i| format!("soak-{i}")).collect();
    b.rt.block_on(crate::run::create_streams(server.addr, &names));
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let addr = server.addr;
    let prod: Vec<_> = names
        .iter()
        .map(|n| {
            b.rt.spawn(keep_producing(addr, StreamLog::new(n.clone()), until))
        })
        .collect();
    let read: Vec<_> = names
        .iter()
        .map(|n| b.rt.spawn(keep_reading(addr, n.clone(), until)))
        .collect();
    let mut samples = vec![sample(server.pid, started)];
    while Instant::now() < until {
        let next = started + Duration::from_secs(every * samples.len() as u64);
        std::thread::sleep(next.min(until).saturating_duration_since(Instant::now()));
        let s = sample(server.pid, started);
        println!(
            "   {:>6.0} s: VmRSS {:>7.1} MB, {:>4} open files and {:>3} segment files, {:>3} \
             threads",
            s.at_s, s.rss_mb, s.fds, s.segment_fds, s.threads
        );
        samples.push(s);
    }
    let mut errors = Vec::new();
    let (mut acked, mut sessions) = (0, 0);
    b.rt.block_on(async {
        for t in prod {
            match tokio::time::timeout(Duration::from_secs(30), t).await {
                Ok(Ok((log, errs, n))) => {
                    acked += log.acked();
                    sessions += n;
                    errors.extend(errs);
                }
                Ok(Err(e)) => errors.push(format!("a producer failed: {e}")),
                Err(_) => errors.push("a producer did not finish".into()),
            }
        }
    });
    let (warnings, logged_errors) = server.log_counts();
    server.stop();
    let mut read_bytes = 0;
    b.rt.block_on(async {
        for t in read {
            if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(30), t).await {
                read_bytes += n;
            }
        }
    });

    // The warm-up: the first tenth of the run, at least the first sample after the start.
    let warm = samples
        .iter()
        .position(|s| s.at_s >= secs as f64 / 10.0)
        .unwrap_or(1)
        .max(1)
        .min(samples.len() - 1);
    let base = samples[warm];
    let after = &samples[warm..];
    let (rss_drift, rss_ok) = drift(base.rss_mb, after.iter().map(|s| s.rss_mb), 0.10, 0.0);
    let (fd_drift, fd_ok) = drift(
        base.fds as f64,
        after.iter().map(|s| s.fds as f64),
        0.10,
        5.0,
    );
    let (th_drift, th_ok) = drift(
        base.threads as f64,
        after.iter().map(|s| s.threads as f64),
        0.10,
        5.0,
    );
    let last = samples[samples.len() - 1];
    let segments_ok = after.iter().all(|s| s.segment_fds <= SEGMENT_HANDLES);
    println!(
        "   after the warm-up ({:.0} s): VmRSS {:.1} → {:.1} MB (max drift {:.1}%), open files \
         {} → {} ({:.1}%), threads {} → {} ({:.1}%); segment files {} → {} (bound \
         {SEGMENT_HANDLES})",
        base.at_s,
        base.rss_mb,
        last.rss_mb,
        rss_drift * 100.0,
        base.fds,
        last.fds,
        fd_drift * 100.0,
        base.threads,
        last.threads,
        th_drift * 100.0,
        base.segment_fds,
        last.segment_fds
    );
    println!(
        "   {} fragments acknowledged in {sessions} PutMedia sessions; readers read {:.1} MB; the server logged {warnings} \
         warnings and {logged_errors} errors; producer errors: {}",
        thousands(acked as u64),
        read_bytes as f64 / 1e6,
        errors.len()
    );
    for e in errors.iter().take(crate::SHOW_ERRORS) {
        println!("      error: {e}");
    }
    let full = secs >= crate::SOAK_TARGET_SECS;
    vec![Row {
        name: format!("soak: {streams} streams for {secs} s"),
        p99: format!("{:.1}%", rss_drift * 100.0),
        detail: format!(
            "RSS {:.0}→{:.0} MB, fds {}→{}, threads {}→{}",
            base.rss_mb, last.rss_mb, base.fds, last.fds, base.threads, last.threads
        ),
        count: format!("{} acked", thousands(acked as u64)),
        errors: errors.len() as u64,
        cpu: String::new(),
        harness: String::new(),
        disk: String::new(),
        target: "flat within 10%".into(),
        pass: full.then_some(rss_ok && fd_ok && th_ok && segments_ok && errors.is_empty()),
    }]
}
