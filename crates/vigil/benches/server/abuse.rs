//! Memory under abuse (issue 16): clients that open GetMedia, HLS segment and GetClip
//! responses on a stream of large fragments and never read them must not grow the server by
//! more than a small buffer each, and must not slow a producer on another stream.
//!
//! One server; a stream of two fragments of `fragment_bytes` each (200 KB frames), written
//! once; a producer on another stream that sends a 100 KB fragment, waits for its PERSISTED
//! ack and sends the next, timed before the abuse and during it. The abusers are `clients`
//! connections, a third each GetMedia (EARLIEST), an fMP4 HLS media segment of the first
//! large fragment, and GetClip over both: each sends its request, reads the response head
//! (200, or 400 ClientLimitExceededException where a caller's budget is full: 2 GetClip
//! and 100 playback segments per caller, and the bench's clients are one address), and reads
//! nothing more. Once they are all open the server's resident memory (VmRSS) is compared
//! with what it was before they came.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use vigil_mkv::{Muxer, MuxerOptions};

use crate::harness::Server;
use crate::http::{chunk, post_json, put_media_head, read_head};
use crate::media;
use crate::{Bench, Row};

/// Each large fragment's frames: 200 KB at 25 fps, so a 46 MB fragment is 9.2 s of a
/// 40 Mbit/s camera.
const BIG_FRAME: usize = 200_000;
/// The producer's fragments: 10 frames of 10 KB.
const SMALL_FRAMES: usize = 10;
const SMALL_FRAME: usize = 10_000;
/// Fragments the producer sends before the abuse, and during it.
const PROBES: usize = 10;

/// What the abuse run measured.
struct Abuse {
    /// VmRSS before the abusers came and once they were all open, MB.
    rss_before_mb: f64,
    rss_after_mb: f64,
    /// Per kind (GetMedia, HLS segment, GetClip): responses opened (200) and refused (400).
    opened: [u64; 3],
    refused: [u64; 3],
    /// The producer's median last byte → PERSISTED, ms, before and during.
    producer_before_ms: f64,
    producer_during_ms: f64,
    errors: Vec<String>,
}

const KINDS: [&str; 3] = ["GetMedia", "HLS segment", "GetClip"];

/// Runs the abuse section and gives its rows of the summary.
pub fn rows(b: &Bench) -> Vec<Row> {
    let (clients, bytes) = (b.plan.abuse_clients, b.plan.abuse_fragment_bytes);
    println!(
        "\n== abuse: {clients} clients open GetMedia, HLS segment and GetClip responses on two \
         {:.0} MB fragments and never read; the server's memory, and a producer on another \
         stream (100 KB fragments, last byte to PERSISTED) before and during",
        bytes as f64 / 1e6
    );
    let a = run_abuse(b, clients, bytes);
    for (i, kind) in KINDS.iter().enumerate() {
        println!(
            "   {kind}: {} opened, {} refused (ClientLimitExceededException)",
            a.opened[i], a.refused[i]
        );
    }
    let growth = a.rss_after_mb - a.rss_before_mb;
    println!(
        "   server VmRSS {:.0} MB before, {:.0} MB with them open: {growth:+.0} MB \
         ({:.0} KB per open response)",
        a.rss_before_mb,
        a.rss_after_mb,
        growth * 1024.0 / (a.opened.iter().sum::<u64>().max(1)) as f64
    );
    println!(
        "   producer: median {:.1} ms before, {:.1} ms during",
        a.producer_before_ms, a.producer_during_ms
    );
    for e in a.errors.iter().take(crate::SHOW_ERRORS) {
        println!("      error: {e}");
    }
    let full = clients >= crate::ABUSE_TARGET_CLIENTS && bytes >= 46_000_000;
    let slowed = a.producer_during_ms.is_nan()
        || a.producer_during_ms > (2.0 * a.producer_before_ms).max(a.producer_before_ms + 50.0);
    let errors = a.errors.len() as u64;
    let row = |name: String, p99: String, detail: String, target: String, pass: Option<bool>| Row {
        name,
        p99,
        detail,
        count: clients.to_string(),
        errors,
        cpu: String::new(),
        harness: String::new(),
        disk: String::new(),
        target,
        pass,
    };
    vec![
        row(
            format!("abuse: memory, {clients} non-reading clients"),
            format!("{growth:+.0} MB"),
            format!("{:.0} -> {:.0} MB", a.rss_before_mb, a.rss_after_mb),
            format!(
                "<= {:.0} MB at {} clients",
                crate::ABUSE_TARGET_MB,
                crate::ABUSE_TARGET_CLIENTS
            ),
            full.then_some(growth <= crate::ABUSE_TARGET_MB && errors == 0),
        ),
        row(
            "abuse: producer on another stream".into(),
            format!("{:.1} ms", a.producer_during_ms),
            format!("before {:.1} ms", a.producer_before_ms),
            "<= max(2x, +50 ms) of before".into(),
            full.then_some(!slowed),
        ),
    ]
}

fn run_abuse(b: &Bench, clients: usize, fragment_bytes: usize) -> Abuse {
    let server = Server::start(&b.root.join("abuse"));
    let out =
        b.rt.block_on(drive(server.addr, server.pid, clients, fragment_bytes));
    server.stop();
    out
}

async fn drive(addr: SocketAddr, pid: u32, clients: usize, fragment_bytes: usize) -> Abuse {
    let mut out = Abuse {
        rss_before_mb: 0.0,
        rss_after_mb: 0.0,
        opened: [0; 3],
        refused: [0; 3],
        producer_before_ms: 0.0,
        producer_during_ms: 0.0,
        errors: Vec::new(),
    };
    crate::run::create_streams(addr, &["abuse-big".into(), "abuse-cam".into()]).await;
    let frames = fragment_bytes.div_ceil(BIG_FRAME);
    if let Err(e) = put(addr, "abuse-big", 2, frames, BIG_FRAME, 40).await {
        out.errors.push(format!("writing the large fragments: {e}"));
        return out;
    }
    let mut cam = match Producer::connect(addr, "abuse-cam").await {
        Ok(p) => p,
        Err(e) => {
            out.errors.push(format!("the producer: {e}"));
            return out;
        }
    };
    out.producer_before_ms = median(cam.probe(PROBES).await, &mut out.errors);

    // The session and fragment the HLS abusers ask for, and the clip's range (it must end in
    // the past).
    tokio::time::sleep(Duration::from_millis(50)).await;
    let now = now_ms() as f64 / 1000.0;
    let range = format!(
        r#"{{"StartTimestamp":{:.3},"EndTimestamp":{:.3}}}"#,
        now - 3600.0,
        now - 0.001
    );
    let hls = hls_segment_path(addr, &range).await;
    let hls = match hls {
        Ok(p) => p,
        Err(e) => {
            out.errors.push(format!("the HLS session: {e}"));
            return out;
        }
    };
    out.rss_before_mb = crate::harness::rss_mb(pid);

    let requests = [
        post(
            addr,
            "/getMedia",
            r#"{"StreamName":"abuse-big","StartSelector":{"StartSelectorType":"EARLIEST"}}"#,
        ),
        format!("GET {hls} HTTP/1.1\r\nHost: {addr}\r\n\r\n"),
        post(
            addr,
            "/getClip",
            &format!(
                r#"{{"StreamName":"abuse-big","ClipFragmentSelector":{{"FragmentSelectorType":"SERVER_TIMESTAMP","TimestampRange":{range}}}}}"#
            ),
        ),
    ];
    let permits = Arc::new(Semaphore::new(64));
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let kind = i % 3;
            let req = requests[kind].clone();
            let permits = permits.clone();
            tokio::spawn(async move {
                let _p = permits.acquire().await;
                let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
                s.write_all(req.as_bytes())
                    .await
                    .map_err(|e| e.to_string())?;
                let mut buf = Vec::new();
                let head =
                    tokio::time::timeout(Duration::from_secs(30), read_head(&mut s, &mut buf))
                        .await
                        .map_err(|_| "no response head in 30 s".to_owned())?
                        .map_err(|e| e.to_string())?;
                Ok::<_, String>((kind, head.status, s))
            })
        })
        .collect();
    let mut held = Vec::with_capacity(clients);
    for t in tasks {
        match t.await {
            Ok(Ok((kind, 200, s))) => {
                out.opened[kind] += 1;
                held.push(s);
            }
            Ok(Ok((kind, 400, s))) => {
                out.refused[kind] += 1;
                drop(s);
            }
            Ok(Ok((kind, status, _))) => {
                out.errors.push(format!("{}: HTTP {status}", KINDS[kind]));
            }
            Ok(Err(e)) => out.errors.push(e),
            Err(e) => out.errors.push(e.to_string()),
        }
    }
    // Let the server fill what it will of the sockets, then look, with the producer going.
    tokio::time::sleep(Duration::from_secs(3)).await;
    out.producer_during_ms = median(cam.probe(PROBES).await, &mut out.errors);
    out.rss_after_mb = crate::harness::rss_mb(pid);
    drop(held);
    out
}

fn post(addr: SocketAddr, path: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn median(mut ms: Vec<f64>, errors: &mut Vec<String>) -> f64 {
    if ms.is_empty() {
        errors.push("the producer got no PERSISTED ack".into());
        return f64::NAN;
    }
    ms.sort_by(f64::total_cmp);
    ms[ms.len() / 2]
}

/// An fMP4 HLS media segment URL path of the large stream's first fragment.
async fn hls_segment_path(addr: SocketAddr, range: &str) -> Result<String, String> {
    let body = format!(
        r#"{{"StreamName":"abuse-big","PlaybackMode":"ON_DEMAND","ContainerFormat":"FRAGMENTED_MP4","HLSFragmentSelector":{{"FragmentSelectorType":"SERVER_TIMESTAMP","TimestampRange":{range}}}}}"#
    );
    let (status, resp) = post_json(addr, "/getHLSStreamingSessionURL", &body)
        .await
        .map_err(|e| e.to_string())?;
    let resp = String::from_utf8_lossy(&resp).into_owned();
    if status != 200 {
        return Err(format!("HTTP {status}: {resp}"));
    }
    let token = resp
        .split("SessionToken=")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .ok_or("no SessionToken")?
        .to_owned();
    let (status, list) = post_json(addr, "/listFragments", r#"{"StreamName":"abuse-big"}"#)
        .await
        .map_err(|e| e.to_string())?;
    let list = String::from_utf8_lossy(&list).into_owned();
    if status != 200 {
        return Err(format!("ListFragments: HTTP {status}: {list}"));
    }
    let mut numbers: Vec<String> = list
        .split(r#""FragmentNumber":""#)
        .skip(1)
        .filter_map(|s| s.split('"').next().map(str::to_owned))
        .collect();
    numbers.sort();
    let first = numbers.first().ok_or("no fragments listed")?;
    Ok(format!(
        "/hls/v1/getMP4MediaFragment.mp4?SessionToken={token}&TrackNumber=1&FragmentNumber={first}"
    ))
}

/// A PutMedia session that sends one fragment at a time and times its PERSISTED ack.
struct Producer {
    sock: TcpStream,
    mux: Muxer,
    frame: Vec<u8>,
    timecode: u64,
    acks: Vec<u8>,
}

impl Producer {
    async fn connect(addr: SocketAddr, stream: &str) -> std::io::Result<Self> {
        let (sock, mux, acks) = open_session(addr, stream).await?;
        Ok(Self {
            sock,
            mux,
            frame: media::filler_of(SMALL_FRAME),
            timecode: now_ms(),
            acks,
        })
    }

    /// Sends `n` fragments one after another; each one's last byte → PERSISTED, ms.
    async fn probe(&mut self, n: usize) -> Vec<f64> {
        let mut out = Vec::new();
        for _ in 0..n {
            self.timecode = self.timecode.max(now_ms());
            let mut mkv = fragment(&mut self.mux, self.timecode, SMALL_FRAMES, &self.frame, 40);
            self.timecode += (SMALL_FRAMES as u64) * 40;
            media::end_of_fragment(&mut self.mux, &mut mkv);
            let mut buf = Vec::new();
            chunk(&mut buf, &mkv);
            if self.sock.write_all(&buf).await.is_err() {
                break;
            }
            let sent = Instant::now();
            if !wait_persisted(&mut self.sock, &mut self.acks, 1).await {
                break;
            }
            out.push(sent.elapsed().as_secs_f64() * 1000.0);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        out
    }
}

/// Opens a PutMedia session on `stream` and sends the track header: the socket, its muxer
/// and what was read after the response head.
async fn open_session(
    addr: SocketAddr,
    stream: &str,
) -> std::io::Result<(TcpStream, Muxer, Vec<u8>)> {
    let mut sock = TcpStream::connect(addr).await?;
    let _ = sock.set_nodelay(true);
    let mut mux = Muxer::new(MuxerOptions::streaming());
    let mut buf = put_media_head(addr, stream).into_bytes();
    chunk(&mut buf, &media::document(&mut mux, stream));
    sock.write_all(&buf).await?;
    let mut acks = Vec::new();
    let head = read_head(&mut sock, &mut acks).await?;
    if head.status != 200 {
        return Err(std::io::Error::other(format!(
            "PutMedia: HTTP {}",
            head.status
        )));
    }
    Ok((sock, mux, acks))
}

/// Writes `fragments` fragments of `frames` frames of `frame_bytes` each to `stream` in one
/// PutMedia session, waiting for each PERSISTED.
async fn put(
    addr: SocketAddr,
    stream: &str,
    fragments: usize,
    frames: usize,
    frame_bytes: usize,
    step_ms: u64,
) -> std::io::Result<()> {
    let (mut sock, mut mux, mut acks) = open_session(addr, stream).await?;
    let frame = media::filler_of(frame_bytes);
    let mut timecode = now_ms();
    for _ in 0..fragments {
        let mut mkv = fragment(&mut mux, timecode, frames, &frame, step_ms);
        timecode += frames as u64 * step_ms;
        media::end_of_fragment(&mut mux, &mut mkv);
        for piece in mkv.chunks(1 << 20) {
            let mut buf = Vec::new();
            chunk(&mut buf, piece);
            sock.write_all(&buf).await?;
        }
        if !wait_persisted(&mut sock, &mut acks, 1).await {
            return Err(std::io::Error::other(
                "no PERSISTED ack for a large fragment",
            ));
        }
    }
    sock.write_all(b"0\r\n\r\n").await?;
    Ok(())
}

/// Reads acks until `n` more PERSISTED ones came (60 s at most).
async fn wait_persisted(sock: &mut TcpStream, acks: &mut Vec<u8>, n: usize) -> bool {
    let count = |b: &[u8]| b.windows(9).filter(|w| w == b"PERSISTED").count();
    let want = count(acks) + n;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut tmp = vec![0u8; 16 << 10];
    while count(acks) < want {
        match tokio::time::timeout_at(deadline, sock.read(&mut tmp)).await {
            Ok(Ok(n)) if n > 0 => acks.extend_from_slice(&tmp[..n]),
            _ => return false,
        }
    }
    // Keep only the tail that may hold a partial event.
    let keep = acks.len().saturating_sub(64);
    acks.drain(..keep);
    true
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// One Cluster of `frames` frames (the first a key frame), `step_ms` apart.
fn fragment(mux: &mut Muxer, timecode: u64, frames: usize, frame: &[u8], step_ms: u64) -> Vec<u8> {
    mux.begin_cluster(timecode).expect("a cluster");
    let mut out = mux.take();
    for i in 0..frames {
        mux.write_simple_block(1, (timecode + i as u64 * step_ms) as i64, i == 0, frame)
            .expect("a frame");
        out.extend_from_slice(&mux.take());
    }
    out
}
