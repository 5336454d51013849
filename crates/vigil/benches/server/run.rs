//! One run: a fresh server, its streams, GetMedia readers, then real-time producers, for the
//! plan's warm-up and measured window; CPU, disk and the server's log alongside.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Semaphore, mpsc, watch};

use crate::Bench;
use crate::harness::{self, CpuSample, CpuUse, DiskProbe, Quantiles, Server};
use crate::producer::{self, Producer, Shared};
use crate::reader::{self, Reader};

/// Connections opened at once.
const CONNECT_CONCURRENCY: usize = 64;

/// What a run gave.
pub struct Load {
    pub producers: Vec<producer::Outcome>,
    /// Each reader's stream index and outcome.
    pub readers: Vec<(u32, reader::Outcome)>,
    pub cpu: CpuUse,
    /// The disk probe's write + fdatasync latency in the window.
    pub disk: Quantiles,
    /// The server's `vigil_store_persist_seconds` histogram over the window (fragment
    /// finish to PERSISTED sent, by the server's clock): cumulative (bound in s, count).
    pub persist: Vec<(f64, u64)>,
    /// The measured window, ns since base.
    pub window: (u64, u64),
    /// The server's peak resident memory, MB.
    pub server_rss_mb: f64,
    /// Server log lines at WARN and ERROR during the run.
    pub log: (u64, u64),
    pub log_tail: String,
}

/// Starts a server, creates `streams` streams, connects a GetMedia reader to the stream of
/// each entry of `readers`, then a producer per stream; runs them for the plan's time.
pub fn run_load(b: &Bench, label: &str, streams: usize, readers: &[u32]) -> Load {
    let server = Server::start(&b.root.join(label));
    let mut load = b.rt.block_on(drive(b, &server, streams, readers));
    load.log = server.log_counts();
    load.server_rss_mb = harness::peak_rss_mb(&server.pid.to_string());
    load.log_tail = server.log_tail(20);
    server.stop();
    load
}

async fn drive(b: &Bench, server: &Server, streams: usize, readers: &[u32]) -> Load {
    let plan = &b.plan;
    let names: Vec<String> = (0..streams).map(|i| format!("bench-{i:04}")).collect();
    let t = Instant::now();
    create_streams(server.addr, &names).await;
    let created = t.elapsed();

    let connecting = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let window = Arc::new(OnceLock::new());
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(60) + (plan.warm + plan.measure) * 2;
    // Readers first: at NOW on a stream with nothing yet, each waits for the first fragment.
    let t = Instant::now();
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let reader_tasks: Vec<_> = readers
        .iter()
        .map(|&i| {
            let r = Reader {
                addr: server.addr,
                stream: names[i as usize].clone(),
                index: i,
                base: b.base,
                window: window.clone(),
                deadline,
            };
            (i, tokio::spawn(r.run(connecting.clone(), ready_tx.clone())))
        })
        .collect();
    let mut setup_errors = Vec::new();
    for _ in 0..readers.len() {
        if let Some(Err(e)) = ready_rx.recv().await {
            setup_errors.push(e);
        }
    }
    let readers_ready = t.elapsed();

    let t = Instant::now();
    let (start_tx, start_rx) = watch::channel(None);
    let shared = Shared {
        addr: server.addr,
        base: b.base,
        epoch_ms: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64,
        start: start_rx,
        ready: ready_tx,
        connecting,
    };
    let second = Duration::from_secs(1);
    let producer_tasks: Vec<_> = names
        .iter()
        .zip(0u32..)
        .map(|(name, i)| {
            let p = Producer {
                stream: name.clone(),
                index: i,
                phase: second * i / streams as u32,
                fragments: plan.fragments(),
            };
            tokio::spawn(p.run(shared.clone()))
        })
        .collect();
    drop(shared);
    for _ in 0..streams {
        if let Some(Err(e)) = ready_rx.recv().await {
            setup_errors.push(e);
        }
    }
    println!(
        "  (server at {}: {streams} streams created in {:.1} s, {} readers connected in \
         {:.1} s, producers in {:.1} s)",
        server.addr,
        created.as_secs_f64(),
        readers.len(),
        readers_ready.as_secs_f64(),
        t.elapsed().as_secs_f64()
    );

    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let (w0, w1) = (start + plan.warm, start + plan.warm + plan.measure);
    let _ = window.set((b.ns(w0), b.ns(w1)));
    let _ = start_tx.send(Some(start));
    // The CPU counters at the window's edges (timers for pacing, not for synchronisation).
    tokio::time::sleep_until(w0).await;
    let cpu0 = CpuSample::take(server.pid);
    let probe = DiskProbe::start(&b.root);
    let persist0 = persist_histogram(server.addr).await;
    tokio::time::sleep_until(w1).await;
    let cpu1 = CpuSample::take(server.pid);
    let probe = probe.stop_soon();
    let persist1 = persist_histogram(server.addr).await;

    let mut producers = Vec::with_capacity(streams);
    for t in producer_tasks {
        producers.push(t.await.expect("a producer task failed"));
    }
    let mut reader_outcomes = Vec::with_capacity(readers.len());
    for (i, t) in reader_tasks {
        reader_outcomes.push((i, t.await.expect("a reader task failed")));
    }
    if let Some(p) = producers.first_mut() {
        p.errors.extend(setup_errors);
    }
    let disk = Quantiles::of(
        tokio::task::spawn_blocking(move || probe.join())
            .await
            .unwrap_or_default(),
    );
    let persist = persist1
        .iter()
        .map(|&(le, n)| {
            let before = persist0
                .iter()
                .find(|(l, _)| *l == le)
                .map_or(0, |(_, c)| *c);
            (le, n.saturating_sub(before))
        })
        .collect();
    Load {
        disk,
        persist,
        producers,
        readers: reader_outcomes,
        cpu: CpuUse::between(cpu0, cpu1, b.cores),
        window: (b.ns(w0), b.ns(w1)),
        server_rss_mb: 0.0,
        log: (0, 0),
        log_tail: String::new(),
    }
}

/// Creates the streams (retention 1 h), a few requests at a time.
pub async fn create_streams(addr: SocketAddr, names: &[String]) {
    let permits = Arc::new(Semaphore::new(8));
    let tasks: Vec<_> = names
        .iter()
        .map(|name| {
            let (permits, name) = (permits.clone(), name.clone());
            tokio::spawn(async move {
                let _p = permits.acquire().await;
                let body = format!(r#"{{"StreamName":"{name}","DataRetentionInHours":1}}"#);
                let (status, resp) = crate::http::post_json(addr, "/createStream", &body)
                    .await
                    .unwrap_or_else(|e| panic!("CreateStream {name}: {e}"));
                assert_eq!(
                    status,
                    200,
                    "CreateStream {name}: {}",
                    String::from_utf8_lossy(&resp)
                );
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("CreateStream");
    }
}

/// The cumulative buckets of the server's `vigil_store_persist_seconds` histogram, from
/// `GET /metrics` (empty if it cannot be read).
async fn persist_histogram(addr: SocketAddr) -> Vec<(f64, u64)> {
    let Ok((200, body)) = crate::http::get(addr, "/metrics").await else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&body);
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("vigil_store_persist_seconds_bucket{le=\"")?;
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect()
}

/// The bucket bound under which quantile `q` of a cumulative histogram lies, in ms.
pub fn bucket_quantile(h: &[(f64, u64)], q: f64) -> Option<f64> {
    let total = h.iter().map(|(_, n)| *n).max()?;
    if total == 0 {
        return None;
    }
    let rank = (q * total as f64).ceil() as u64;
    h.iter().find(|(_, n)| *n >= rank).map(|(le, _)| le * 1e3)
}
