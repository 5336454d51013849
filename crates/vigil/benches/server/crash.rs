//! A hundred crashes (issue 16): the server is killed with SIGKILL at random moments while
//! producers write and readers read, restarted on the same data directory each time, and
//! every fragment acknowledged PERSISTED before a kill must be there after it, byte for byte.
//!
//! `producers` PutMedia sessions, a stream each, send a fragment every 200 ms (5 frames of
//! 10 KB, 40 ms apart, with an END_OF_FRAGMENT tag) in real time; each fragment's producer
//! timecode, length and FNV-1a hash of its Cluster bytes are kept, and whether it got its
//! PERSISTED ack. `readers` GetMedia sessions (at NOW) read along to keep the read path busy.
//! After a random time (xorshift, seeded from the clock: the seed is printed) the server is
//! killed, restarted on the same directory (the time from spawn to `listening on` is its
//! ready time), and every stream is listed (ListFragments, all pages): an acknowledged
//! fragment missing is lost, a listed fragment whose producer timestamp was never sent is a
//! phantom. Fragments not yet verified are fetched with GetMediaForFragmentList and their
//! Cluster bytes compared with those sent; after the last kill `vigil check` must pass on the
//! directory, and after the last restart every fragment is fetched and compared again. The
//! producers then reconnect (a new PutMedia session; timecodes go on increasing).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vigil_mkv::{Muxer, MuxerOptions};

use crate::harness::{Quantiles, Server, micros, thousands};
use crate::http::{chunk, post_json, put_media_head, read_head};
use crate::media;
use crate::{Bench, Row};

/// Each fragment: 5 frames of 10 KB, 40 ms apart; one every 200 ms.
const FRAMES: usize = 5;
const FRAME: usize = 10_000;
const STEP_MS: u64 = 40;
const FRAGMENT_MS: u64 = FRAMES as u64 * STEP_MS;
/// Bytes of a Cluster's start that tell fragments apart (its header holds the timecode).
const KEY: usize = 32;
/// Fragments asked for per GetMediaForFragmentList call (the API allows 1000).
const FETCH_BATCH: usize = 500;
/// The Matroska Cluster element's ID.
const CLUSTER_ID: [u8; 4] = [0x1F, 0x43, 0xB6, 0x75];

/// One fragment a producer sent.
#[derive(Clone)]
struct Sent {
    len: usize,
    hash: u64,
    key: [u8; KEY],
    acked: bool,
}

/// A stream's producer state across sessions.
pub(crate) struct StreamLog {
    name: String,
    /// The next fragment's timecode, ms: never goes back, whatever the restarts.
    next_tc: u64,
    /// By producer timecode (ms).
    sent: BTreeMap<u64, Sent>,
}

impl StreamLog {
    /// A stream's log with nothing sent yet.
    pub(crate) fn new(name: String) -> Self {
        Self {
            name,
            next_tc: now_ms(),
            sent: BTreeMap::new(),
        }
    }

    /// Fragments acknowledged PERSISTED.
    pub(crate) fn acked(&self) -> usize {
        self.sent.values().filter(|s| s.acked).count()
    }
}

/// What the crash run measured.
struct Crash {
    seed: u64,
    kills: usize,
    ready_us: Vec<u32>,
    acked: u64,
    /// Acknowledged fragments verified byte-identical in the last pass.
    verified: u64,
    lost: u64,
    /// Listed fragments that were sent but whose PERSISTED ack the kill cut off.
    unacked_kept: u64,
    read_bytes: u64,
    check_ok: bool,
    errors: Vec<String>,
}

/// Runs the crash section and gives its row of the summary.
pub fn rows(b: &Bench) -> Vec<Row> {
    let (producers, readers, kills) = (
        b.plan.crash_producers,
        b.plan.crash_readers,
        b.plan.crash_kills,
    );
    println!(
        "\n== crash: {producers} producers (a 50 KB fragment every 200 ms each) and {readers} \
         GetMedia readers; the server killed with SIGKILL {kills} times at random moments and \
         restarted on the same data; every fragment acknowledged PERSISTED must be there, byte \
         for byte"
    );
    let c = run_crash(b, producers, readers, kills);
    let q = Quantiles::of(c.ready_us.clone());
    println!(
        "   seed {:#x}; {} kills; ready to serve after a restart: p50 {:.0} ms, p99 {:.0} ms, \
         max {:.0} ms",
        c.seed, c.kills, q.p50, q.p99, q.max
    );
    println!(
        "   fragments: {} acknowledged, {} verified byte-identical, {} lost; {} kept without \
         their ack; readers read {:.1} MB; vigil check {}",
        c.acked,
        c.verified,
        c.lost,
        c.unacked_kept,
        c.read_bytes as f64 / 1e6,
        if c.check_ok { "ok" } else { "FAILED" }
    );
    println!("   errors: {}", c.errors.len());
    for e in c.errors.iter().take(crate::SHOW_ERRORS) {
        println!("      error: {e}");
    }
    let full =
        kills >= crate::CRASH_TARGET_KILLS && b.plan.crash_preload >= crate::CRASH_TARGET_FRAGMENTS;
    let errors = c.errors.len() as u64;
    vec![Row {
        name: format!("crash: {kills} SIGKILLs, {producers} producers"),
        p99: format!("{:.0} ms", q.p99),
        detail: format!("ready p50 {:.0} / max {:.0} ms", q.p50, q.max),
        count: format!("{} acked, {} lost", thousands(c.acked), c.lost),
        errors,
        cpu: String::new(),
        harness: String::new(),
        disk: String::new(),
        target: format!(
            "0 lost, 0 errors, ready p99 <= {:.0} s",
            crate::CRASH_TARGET_READY_MS / 1e3
        ),
        pass: full.then_some(
            c.lost == 0 && errors == 0 && c.check_ok && q.p99 <= crate::CRASH_TARGET_READY_MS,
        ),
    }]
}

fn run_crash(b: &Bench, producers: usize, readers: usize, kills: usize) -> Crash {
    let dir = b.root.join("crash");
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64
        | 1;
    let mut rng = XorShift(seed);
    let mut c = Crash {
        seed,
        kills,
        ready_us: Vec::new(),
        acked: 0,
        verified: 0,
        lost: 0,
        unacked_kept: 0,
        read_bytes: 0,
        check_ok: false,
        errors: Vec::new(),
    };
    let mut server = Server::start(&dir);
    let names: Vec<String> = (0..producers).map(|i| format!("crash-{i}")).collect();
    b.rt.block_on(crate::run::create_streams(server.addr, &names));
    let mut logs: Vec<StreamLog> = names
        .iter()
        .map(|n| StreamLog {
            name: n.clone(),
            next_tc: now_ms(),
            sent: BTreeMap::new(),
        })
        .collect();
    let preload_total = b.plan.crash_preload;
    if preload_total > 0 {
        // Producer timestamps in the past, ending now, so the campaign's follow on.
        let per_stream = preload_total.div_ceil(producers.max(1));
        let first = now_ms() - (per_stream as u64 + 5) * FRAGMENT_MS;
        let started = Instant::now();
        let addr = server.addr;
        let tasks: Vec<_> = logs
            .drain(..)
            .map(|mut log| {
                log.next_tc = first;
                b.rt.spawn(preload(addr, log, per_stream))
            })
            .collect();
        b.rt.block_on(async {
            for t in tasks {
                let (log, errs) = t.await.expect("a preload task");
                logs.push(log);
                c.errors.extend(errs);
            }
        });
        for log in &mut logs {
            log.next_tc = log.next_tc.max(now_ms());
        }
        let n: usize = logs.iter().map(StreamLog::acked).sum();
        println!(
            "   preloaded {} fragments in {:.1} s",
            thousands(n as u64),
            started.elapsed().as_secs_f64()
        );
    }
    // Fragment numbers already verified byte-identical, per stream.
    let mut verified: Vec<HashSet<String>> = vec![HashSet::new(); producers];
    let mut lost: HashSet<(usize, u64)> = HashSet::new();
    let (lo, hi) = if b.plan.quick {
        (300, 1500)
    } else {
        (300, 3000)
    };
    for k in 1..=kills {
        let addr = server.addr;
        let prod: Vec<_> = logs
            .drain(..)
            .map(|log| b.rt.spawn(produce(addr, log, FRAME, None)))
            .collect();
        let read: Vec<_> = (0..readers)
            .map(|i| b.rt.spawn(read(addr, names[i % producers.max(1)].clone())))
            .collect();
        let wait = lo + rng.next() % (hi - lo);
        std::thread::sleep(Duration::from_millis(wait));
        server.kill();
        b.rt.block_on(async {
            for t in prod {
                match tokio::time::timeout(Duration::from_secs(30), t).await {
                    Ok(Ok((log, errs))) => {
                        logs.push(log);
                        c.errors.extend(errs);
                    }
                    Ok(Err(e)) => panic!("a crash producer failed: {e}"),
                    Err(_) => panic!("a crash producer did not stop 30 s after the kill"),
                }
            }
            for t in read {
                if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(30), t).await {
                    c.read_bytes += n;
                }
            }
        });
        let last = k == kills;
        if last {
            c.check_ok = vigil_check(&dir, &mut c.errors);
        }
        server = Server::start_keep(&dir);
        c.ready_us.push(micros(server.ready));
        let acked: usize = logs
            .iter()
            .map(|l| l.sent.values().filter(|s| s.acked).count())
            .sum();
        let v = b.rt.block_on(verify(
            server.addr,
            &logs,
            &mut verified,
            &mut lost,
            last,
            &mut c.errors,
        ));
        println!(
            "   kill {k} after {wait} ms: ready again in {:.0} ms; {acked} acknowledged so far, \
             {} fetched and identical, {} lost",
            server.ready.as_secs_f64() * 1e3,
            v.checked,
            lost.len()
        );
        if last {
            c.verified = v.checked;
            c.unacked_kept = v.unacked_kept;
        }
    }
    let (warnings, errors) = server.log_counts();
    if errors > 0 {
        println!("   (the server logged {warnings} warnings and {errors} errors)");
    }
    server.stop();
    c.acked = logs
        .iter()
        .map(|l| l.sent.values().filter(|s| s.acked).count() as u64)
        .sum();
    c.lost = lost.len() as u64;
    c
}

/// `vigil check --data-dir DIR` on the stopped server's data; true when it passes.
fn vigil_check(dir: &Path, errors: &mut Vec<String>) -> bool {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("check")
        .arg("--data-dir")
        .arg(dir)
        .env_remove("VIGIL_DATA_DIR")
        .env_remove("VIGIL_MASTER_KEY")
        .output()
        .expect("running vigil check");
    if !out.status.success() {
        errors.push(format!(
            "vigil check failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    out.status.success()
}

// ---------------------------------------------------------------------------------------------
// Verification

/// What one verification pass found.
struct Pass {
    /// Acknowledged fragments fetched and found byte-identical in this pass.
    checked: u64,
    unacked_kept: u64,
}

/// Lists every stream's fragments; checks that no acknowledged one is missing and none was
/// never sent; fetches the ones not yet verified (all of them when `all`) and compares their
/// Cluster bytes with those sent.
async fn verify(
    addr: SocketAddr,
    logs: &[StreamLog],
    verified: &mut [HashSet<String>],
    lost: &mut HashSet<(usize, u64)>,
    all: bool,
    errors: &mut Vec<String>,
) -> Pass {
    let mut pass = Pass {
        checked: 0,
        unacked_kept: 0,
    };
    for (i, log) in logs.iter().enumerate() {
        let listed = match list_fragments(addr, &log.name).await {
            Ok(l) => l,
            Err(e) => {
                errors.push(format!("ListFragments {}: {e}", log.name));
                continue;
            }
        };
        let mut seen = HashSet::new();
        let mut fetch = Vec::new();
        for (number, tc) in listed {
            let Some(sent) = log.sent.get(&tc) else {
                errors.push(format!(
                    "{}: fragment {number} (producer timestamp {tc} ms) was never sent",
                    log.name
                ));
                continue;
            };
            if !seen.insert(tc) {
                errors.push(format!("{}: timecode {tc} listed twice", log.name));
                continue;
            }
            if !sent.acked {
                pass.unacked_kept += 1;
            } else if all || !verified[i].contains(&number) {
                fetch.push((number, tc));
            }
        }
        for (&tc, s) in &log.sent {
            if s.acked && !seen.contains(&tc) && lost.insert((i, tc)) {
                errors.push(format!(
                    "{}: the fragment at {tc} ms was acknowledged PERSISTED and is gone",
                    log.name
                ));
            }
        }
        for batch in fetch.chunks(FETCH_BATCH) {
            match fetch_and_compare(addr, log, batch).await {
                Ok(bad) => {
                    for (number, tc) in batch {
                        if bad.contains(tc) {
                            errors.push(format!(
                                "{}: fragment {number} ({tc} ms) is not the Cluster sent",
                                log.name
                            ));
                        } else {
                            pass.checked += 1;
                            verified[i].insert(number.clone());
                        }
                    }
                }
                Err(e) => errors.push(format!("GetMediaForFragmentList {}: {e}", log.name)),
            }
        }
    }
    pass
}

/// Every fragment of a stream: (fragment number, producer timestamp in ms).
async fn list_fragments(addr: SocketAddr, stream: &str) -> Result<Vec<(String, u64)>, String> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let body = match &token {
            None => serde_json::json!({ "StreamName": stream }),
            Some(t) => serde_json::json!({ "StreamName": stream, "NextToken": t }),
        };
        let (status, resp) = post_json(addr, "/listFragments", &body.to_string())
            .await
            .map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&resp)));
        }
        let v: serde_json::Value =
            serde_json::from_slice(&resp).map_err(|e| format!("a response not JSON: {e}"))?;
        let frags = v["Fragments"]
            .as_array()
            .ok_or("no Fragments in the response")?;
        for f in frags {
            let number = f["FragmentNumber"]
                .as_str()
                .ok_or("a fragment without FragmentNumber")?;
            let ts = f["ProducerTimestamp"]
                .as_f64()
                .ok_or("a fragment without ProducerTimestamp")?;
            out.push((number.to_owned(), (ts * 1000.0).round() as u64));
        }
        match v["NextToken"].as_str() {
            Some(t) if !t.is_empty() => token = Some(t.to_owned()),
            _ => return Ok(out),
        }
    }
}

/// Fetches `batch` and finds each one's Cluster in the body; the timecodes of those not found
/// byte-identical.
async fn fetch_and_compare(
    addr: SocketAddr,
    log: &StreamLog,
    batch: &[(String, u64)],
) -> Result<HashSet<u64>, String> {
    let numbers: Vec<&str> = batch.iter().map(|(n, _)| n.as_str()).collect();
    let body = serde_json::json!({ "StreamName": log.name, "Fragments": numbers });
    let (status, resp) = post_json(addr, "/getMediaForFragmentList", &body.to_string())
        .await
        .map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&resp)));
    }
    let by_key: HashMap<[u8; KEY], u64> = batch
        .iter()
        .map(|(_, tc)| (log.sent[tc].key, *tc))
        .collect();
    let mut good = HashSet::new();
    let mut at = 0;
    while let Some(p) = find(&resp[at..], &CLUSTER_ID) {
        let p = at + p;
        at = p + 1;
        let Some(key) = resp.get(p..p + KEY) else {
            break;
        };
        let Some(&tc) = by_key.get(key) else {
            continue;
        };
        let s = &log.sent[&tc];
        if resp.get(p..p + s.len).is_some_and(|c| fnv1a(c) == s.hash) {
            good.insert(tc);
            at = p + s.len;
        }
    }
    Ok(batch
        .iter()
        .map(|(_, tc)| *tc)
        .filter(|tc| !good.contains(tc))
        .collect())
}

fn find(hay: &[u8], needle: &[u8; 4]) -> Option<usize> {
    hay.windows(4).position(|w| w == needle)
}

// ---------------------------------------------------------------------------------------------
// Load

/// One PutMedia session on `log`'s stream until the server goes: a fragment every 200 ms,
/// each one's PERSISTED awaited. Gives the log back with the errors the server acked.
pub(crate) async fn produce(
    addr: SocketAddr,
    mut log: StreamLog,
    frame_bytes: usize,
    until: Option<Instant>,
) -> (StreamLog, Vec<String>) {
    let mut errors = Vec::new();
    let Ok(mut sock) = TcpStream::connect(addr).await else {
        return (log, errors);
    };
    let _ = sock.set_nodelay(true);
    let mut mux = Muxer::new(MuxerOptions::streaming());
    let mut buf = put_media_head(addr, &log.name).into_bytes();
    chunk(&mut buf, &media::document(&mut mux, &log.name));
    if sock.write_all(&buf).await.is_err() {
        return (log, errors);
    }
    let mut acks = Vec::new();
    match read_head(&mut sock, &mut acks).await {
        Ok(h) if h.status == 200 => {}
        Ok(h) => {
            errors.push(format!("PutMedia {}: HTTP {}", log.name, h.status));
            return (log, errors);
        }
        Err(_) => return (log, errors),
    }
    let frame = media::filler_of(frame_bytes);
    while until.is_none_or(|u| Instant::now() < u) {
        let tc = log.next_tc.max(now_ms());
        let started = Instant::now();
        match send_logged(&mut sock, &mut mux, &mut acks, &mut log, tc, &frame, FRAMES).await {
            Ack::Persisted => {}
            Ack::Error(e) => {
                errors.push(format!("{}: fragment at {tc} ms: {e}", log.name));
                break;
            }
            Ack::Gone => break,
        }
        let due = started + Duration::from_millis(FRAGMENT_MS);
        tokio::time::sleep_until(due.into()).await;
    }
    (log, errors)
}

/// Sends `count` small fragments (one 1 KB frame each) back to back on one session, each
/// one's PERSISTED awaited and logged as the campaign's are: what fills the data directory
/// before the kills.
async fn preload(addr: SocketAddr, mut log: StreamLog, count: usize) -> (StreamLog, Vec<String>) {
    let mut errors = Vec::new();
    let mut sock = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) => {
            let why = format!("preload {}: {e}", log.name);
            return (log, vec![why]);
        }
    };
    let _ = sock.set_nodelay(true);
    let mut mux = Muxer::new(MuxerOptions::streaming());
    let mut buf = put_media_head(addr, &log.name).into_bytes();
    chunk(&mut buf, &media::document(&mut mux, &log.name));
    let mut acks = Vec::new();
    if sock.write_all(&buf).await.is_err()
        || !matches!(read_head(&mut sock, &mut acks).await, Ok(h) if h.status == 200)
    {
        let why = format!("preload {}: no PutMedia session", log.name);
        return (log, vec![why]);
    }
    let frame = media::filler_of(1000);
    for _ in 0..count {
        let tc = log.next_tc;
        match send_logged(&mut sock, &mut mux, &mut acks, &mut log, tc, &frame, 1).await {
            Ack::Persisted => {}
            Ack::Error(e) => {
                errors.push(format!("preload {}: fragment at {tc} ms: {e}", log.name));
                break;
            }
            Ack::Gone => {
                errors.push(format!(
                    "preload {}: no ack, or the connection broke",
                    log.name
                ));
                break;
            }
        }
    }
    (log, errors)
}

/// Sends one fragment at timecode `tc` (`frames` copies of `frame`, then the end-of-fragment
/// tag) on an open session, logs it in `log` as sent (and moves `log.next_tc` past it), and
/// waits for its ack; a PERSISTED marks it acknowledged. A write that fails is `Ack::Gone`.
async fn send_logged(
    sock: &mut TcpStream,
    mux: &mut Muxer,
    acks: &mut Vec<u8>,
    log: &mut StreamLog,
    tc: u64,
    frame: &[u8],
    frames: usize,
) -> Ack {
    log.next_tc = tc + FRAGMENT_MS;
    let cluster = fragment(mux, tc, frame, frames);
    let mut key = [0u8; KEY];
    key.copy_from_slice(&cluster[..KEY]);
    log.sent.insert(
        tc,
        Sent {
            len: cluster.len(),
            hash: fnv1a(&cluster),
            key,
            acked: false,
        },
    );
    let mut mkv = cluster;
    media::end_of_fragment(mux, &mut mkv);
    let mut buf = Vec::new();
    chunk(&mut buf, &mkv);
    if sock.write_all(&buf).await.is_err() {
        return Ack::Gone;
    }
    let ack = wait_ack(sock, acks).await;
    if matches!(ack, Ack::Persisted)
        && let Some(s) = log.sent.get_mut(&tc)
    {
        s.acked = true;
    }
    ack
}

enum Ack {
    Persisted,
    Error(String),
    /// The connection closed (the kill) or went silent.
    Gone,
}

/// Reads ack events until the fragment's PERSISTED (or ERROR) comes.
async fn wait_ack(sock: &mut TcpStream, acks: &mut Vec<u8>) -> Ack {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut tmp = vec![0u8; 4096];
    loop {
        if let Some(p) = find_str(acks, b"\"PERSISTED\"") {
            acks.drain(..p + 11);
            return Ack::Persisted;
        }
        if let Some(p) = find_str(acks, b"\"ERROR\"") {
            let text = String::from_utf8_lossy(&acks[p..]).into_owned();
            return Ack::Error(text.chars().take(200).collect());
        }
        match tokio::time::timeout_at(deadline, sock.read(&mut tmp)).await {
            Ok(Ok(n)) if n > 0 => acks.extend_from_slice(&tmp[..n]),
            _ => return Ack::Gone,
        }
    }
}

fn find_str(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A GetMedia reader at NOW that reads until the server goes; the bytes it read.
pub(crate) async fn read(addr: SocketAddr, stream: String) -> u64 {
    let body =
        format!(r#"{{"StreamName":"{stream}","StartSelector":{{"StartSelectorType":"NOW"}}}}"#);
    let req = format!(
        "POST /getMedia HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return 0;
    };
    if s.write_all(req.as_bytes()).await.is_err() {
        return 0;
    }
    let mut total = 0u64;
    let mut tmp = vec![0u8; 64 << 10];
    loop {
        match tokio::time::timeout(Duration::from_secs(20), s.read(&mut tmp)).await {
            Ok(Ok(n)) if n > 0 => total += n as u64,
            _ => return total,
        }
    }
}

/// One Cluster of `FRAMES` frames (the first a key frame), `STEP_MS` apart; each frame's
/// first 8 bytes are its timecode, so that no two fragments hold the same bytes.
pub(crate) fn fragment(mux: &mut Muxer, timecode: u64, frame: &[u8], frames: usize) -> Vec<u8> {
    mux.begin_cluster(timecode).expect("a cluster");
    let mut out = mux.take();
    let mut data = frame.to_vec();
    for i in 0..frames {
        let t = timecode + i as u64 * STEP_MS;
        data[..8].copy_from_slice(&t.to_le_bytes());
        mux.write_simple_block(1, t as i64, i == 0, &data)
            .expect("a frame");
        out.extend_from_slice(&mux.take());
    }
    out
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// FNV-1a, 64 bits.
fn fnv1a(data: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// xorshift64: the kill moments.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}
