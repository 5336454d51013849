//! Saturated ingest (`--only saturate`): as much as the server takes, against what the disk
//! takes. 100 producers (quick: 10), a stream each, send 1 MB fragments (25 frames of 40 KB)
//! back to back on one PutMedia session, as fast as TCP lets them (the server's four
//! fragments in flight per session push back), reading their acks as they come. The figure is
//! the store's durable write rate over the window (`vigil_store_written_bytes_total` from
//! `GET /metrics` at both ends, with its group commits and fsyncs), against the **raw**
//! figure of the same disk in the same run: one file written with the store's average record
//! size, an `fdatasync` after as many records as the store put in its average group commit,
//! no encryption, no index, no network; measured twice right after the server's run (the
//! mean of both). **Target: the server's rate ≥ 0.95 of the raw figure** (full mode; quick only
//! reports).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vigil_mkv::{Muxer, MuxerOptions};

use crate::crash::{fragment, now_ms};
use crate::harness::{Server, thousands};
use crate::http::{chunk, put_media_head, read_head};
use crate::media;
use crate::{Bench, Row};

/// Frames per fragment and their size: 1 MB fragments.
const FRAMES: usize = 25;
const FRAME: usize = 40_000;
/// The ratio to the raw disk figure the server must reach.
const TARGET_RATIO: f64 = 0.95;

/// The store's counters from `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
struct StoreCounters {
    bytes: u64,
    records: u64,
    fsyncs: u64,
    commits: u64,
}

async fn scrape(addr: SocketAddr) -> StoreCounters {
    let Ok((200, body)) = crate::http::get(addr, "/metrics").await else {
        return StoreCounters::default();
    };
    let text = String::from_utf8_lossy(&body);
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(0)
    };
    StoreCounters {
        bytes: value("vigil_store_written_bytes_total"),
        records: value("vigil_store_records_total"),
        fsyncs: value("vigil_store_fsyncs_total"),
        commits: value("vigil_store_group_commits_total"),
    }
}

/// One producer: fragments back to back until `until`; (fragments PERSISTED, errors).
async fn produce(addr: SocketAddr, stream: String, until: Instant) -> (u64, Vec<String>) {
    let Ok(sock) = TcpStream::connect(addr).await else {
        return (0, vec![format!("{stream}: cannot connect")]);
    };
    let _ = sock.set_nodelay(true);
    let (mut rd, mut wr) = sock.into_split();
    let mut mux = Muxer::new(MuxerOptions::streaming());
    let mut buf = put_media_head(addr, &stream).into_bytes();
    chunk(&mut buf, &media::document(&mut mux, &stream));
    if wr.write_all(&buf).await.is_err() {
        return (0, vec![format!("{stream}: the request broke")]);
    }
    let name = stream.clone();
    let acks = tokio::spawn(async move {
        let mut acks = Vec::new();
        match read_head(&mut rd, &mut acks).await {
            Ok(h) if h.status == 200 => {}
            Ok(h) => return (0, vec![format!("{name}: HTTP {}", h.status)]),
            Err(e) => return (0, vec![format!("{name}: {e}")]),
        }
        let (mut persisted, mut errors) = (0u64, Vec::new());
        let mut tmp = vec![0u8; 16 << 10];
        loop {
            // An event whose type has not fully arrived waits for the next read.
            while let Some(p) = find(&acks, b"\"EventType\":\"")
                && acks.len() >= p + 13 + 9
            {
                let rest = &acks[p + 13..];
                if rest.starts_with(b"PERSISTED") {
                    persisted += 1;
                } else if rest.starts_with(b"ERROR") {
                    let text: String = String::from_utf8_lossy(rest).chars().take(160).collect();
                    errors.push(format!("{name}: {text}"));
                }
                acks.drain(..p + 13);
            }
            match tokio::time::timeout(Duration::from_secs(60), rd.read(&mut tmp)).await {
                Ok(Ok(n)) if n > 0 => acks.extend_from_slice(&tmp[..n]),
                _ => return (persisted, errors),
            }
        }
    });
    let frame = media::filler_of(FRAME);
    // Timecodes from ten days ago, a second a fragment: never in the future.
    let mut tc = now_ms() - 10 * 86_400_000;
    while Instant::now() < until {
        let mut mkv = fragment(&mut mux, tc, &frame, FRAMES);
        tc += 1000;
        if Instant::now() >= until {
            media::end_of_fragment(&mut mux, &mut mkv);
        }
        let mut buf = Vec::with_capacity(mkv.len() + 16);
        chunk(&mut buf, &mkv);
        if wr.write_all(&buf).await.is_err() {
            break;
        }
    }
    let _ = wr.write_all(b"0\r\n\r\n").await;
    match acks.await {
        Ok(r) => r,
        Err(e) => (0, vec![format!("{stream}: {e}")]),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The raw figure: `secs` of writes of `record` bytes, an `fdatasync` after every
/// `per_sync` of them, into one file in `dir`; MB/s.
fn raw_rate(dir: &Path, record: usize, per_sync: usize, secs: f64) -> f64 {
    let path = dir.join("raw-reference");
    let mut f = std::fs::File::create(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let block = media::filler_of(record.max(1));
    let started = Instant::now();
    let mut written = 0u64;
    while started.elapsed().as_secs_f64() < secs {
        for _ in 0..per_sync.max(1) {
            f.write_all(&block).expect("the raw reference writes");
            written += block.len() as u64;
        }
        f.sync_data().expect("the raw reference syncs");
    }
    let rate = written as f64 / started.elapsed().as_secs_f64() / 1e6;
    drop(f);
    let _ = std::fs::remove_file(&path);
    rate
}

/// Runs the section and gives its row of the summary.
pub fn rows(b: &Bench) -> Vec<Row> {
    let producers = b.plan.saturate_producers;
    println!(
        "\n== saturated ingest: {producers} producers sending 1 MB fragments back to back; the \
         store's durable write rate against the raw write+fdatasync rate of the same disk"
    );
    let dir = b.root.join("saturate");
    let server = Server::start(&dir);
    let names: Vec<String> = (0..producers).map(|i| format!("sat-{i}")).collect();
    b.rt.block_on(crate::run::create_streams(server.addr, &names));
    let until = Instant::now() + b.plan.warm + b.plan.measure + Duration::from_secs(1);
    let tasks: Vec<_> = names
        .iter()
        .map(|n| b.rt.spawn(produce(server.addr, n.clone(), until)))
        .collect();
    std::thread::sleep(b.plan.warm);
    let m0 = b.rt.block_on(scrape(server.addr));
    let t0 = Instant::now();
    std::thread::sleep(b.plan.measure);
    let m1 = b.rt.block_on(scrape(server.addr));
    let window = t0.elapsed().as_secs_f64();
    let (mut persisted, mut errors) = (0u64, Vec::new());
    b.rt.block_on(async {
        for t in tasks {
            match tokio::time::timeout(Duration::from_secs(120), t).await {
                Ok(Ok((n, e))) => {
                    persisted += n;
                    errors.extend(e);
                }
                Ok(Err(e)) => errors.push(format!("a producer failed: {e}")),
                Err(_) => errors.push("a producer did not finish".into()),
            }
        }
    });
    server.stop();
    let bytes = m1.bytes.saturating_sub(m0.bytes);
    let records = m1.records.saturating_sub(m0.records).max(1);
    let fsyncs = m1.fsyncs.saturating_sub(m0.fsyncs).max(1);
    let commits = m1.commits.saturating_sub(m0.commits);
    let store_rate = bytes as f64 / window / 1e6;
    let record = (bytes / records) as usize;
    let per_sync = (records as f64 / fsyncs as f64).round().max(1.0) as usize;
    // The raw figure at the store's cadence, which is known only now: two runs after the
    // server's, their mean.
    let raw_secs = b.plan.measure.as_secs_f64().min(10.0);
    let raw_a = raw_rate(&b.root, record, per_sync, raw_secs);
    let raw_b = raw_rate(&b.root, record, per_sync, raw_secs);
    let raw = (raw_a + raw_b) / 2.0;
    let ratio = if raw > 0.0 { store_rate / raw } else { 0.0 };
    println!(
        "   server: {store_rate:.0} MB/s durable over {window:.0} s ({} records of {} KB, \
         {commits} group commits, {:.1} records per fsync); {} fragments PERSISTED in all",
        thousands(records),
        record / 1000,
        records as f64 / fsyncs as f64,
        thousands(persisted)
    );
    println!(
        "   raw: {raw_a:.0} and {raw_b:.0} MB/s ({} KB writes, an fdatasync every {per_sync}); \
         ratio {ratio:.2}; errors: {}",
        record / 1000,
        errors.len()
    );
    for e in errors.iter().take(crate::SHOW_ERRORS) {
        println!("      error: {e}");
    }
    vec![Row {
        name: format!("saturated ingest, {producers} producers"),
        p99: format!("{ratio:.2} of raw"),
        detail: format!("{store_rate:.0} MB/s vs raw {raw:.0} MB/s"),
        count: format!("{} frags", thousands(persisted)),
        errors: errors.len() as u64,
        cpu: String::new(),
        harness: String::new(),
        disk: String::new(),
        target: format!(">= {TARGET_RATIO:.2} of raw"),
        pass: (!b.plan.quick).then_some(ratio >= TARGET_RATIO && errors.is_empty()),
    }]
}
