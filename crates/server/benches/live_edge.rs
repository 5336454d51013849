//! The HLS live edge (`bench/README.md`): how soon what is ingested can be played, through a
//! real server on a loopback port.
//!
//! - **PERSISTED → playlist**: a 1 s fragment is written whole and, the moment it is durable
//!   (what PutMedia's PERSISTED ack waits for), a LIVE session's media playlist is asked for
//!   until it lists the fragment; the figure is the time from durable to that answer.
//! - **frame → part (low-latency HLS)**: 25 fps video is ingested a frame at a time in real
//!   time, 1 s fragments, while a client does what hls.js does (blocking reloads for the next
//!   part, then the part's GET); the figure is the time from the append of a part's last frame
//!   to the end of that part's GET.
//!
//! The reference is the frame interval (40 ms), the least a part can wait: a part is complete
//! once the frame after it arrives (or its fragment ends).
//!
//! ```sh
//! cargo bench --profile ci -p vigil-server --bench live_edge             # full: about 35 s
//! cargo bench --profile ci -p vigil-server --bench live_edge -- --quick  # about 10 s; scripts/test
//! ```
//!
//! The input (30 s of 1280x720 25 fps H.264, a key frame and a Cluster a second, no B-frames)
//! is made on first use with ffmpeg and cached under `$TMPDIR/vigil-bench`; the store is in
//! `$VIGIL_BENCH_DIR` (default `$TMPDIR`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

// Not every helper of the shared file is used here.
#[allow(dead_code)]
#[path = "../../../bench/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use support::{Row, Run, generate, loadavg, summary};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vigil_api_playback::PlaybackConfig;
use vigil_api_playback::streaming::llhls::{LowLatencyConfig, STREAM_TAG};
use vigil_media::parts::PartSpan;
use vigil_server::{Anonymous, ServerConfig, ServerState, router};
use vigil_store::{Store, StoreConfig, StreamRef, SystemClock};

const INPUT_VERSION: &str = "v1";
const SECONDS: u32 = 30;
const PART_TARGET_MS: u32 = 333;
/// PERSISTED → listed in the playlist, p95.
const TARGET_PLAYLIST_MS: f64 = 50.0;
/// A frame ingested → its part servable, p95.
const TARGET_PART_MS: f64 = 500.0;

/// One Cluster: its bytes, where each element ends (header and Timestamp first, then each
/// block), its Timestamp and duration.
struct Cluster {
    bytes: Bytes,
    ends: Vec<usize>,
    timecode_ms: u64,
    duration_ms: u32,
}

/// Per live fragment number: its Cluster's index, and when each of its frames was appended.
type Appended = BTreeMap<u64, (usize, Vec<Instant>)>;

struct Input {
    header: Vec<u8>,
    clusters: Vec<Cluster>,
}

fn input() -> Input {
    let dir = std::env::temp_dir().join("vigil-bench");
    let name = format!("live_edge-720p-{INPUT_VERSION}.mkv");
    let path: PathBuf = dir.join(&name);
    if !path.exists() {
        let args: Vec<String> = [
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=25",
            "-t",
            &SECONDS.to_string(),
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-g",
            "25",
            "-bf",
            "0",
            "-b:v",
            "3M",
            "-output_ts_offset",
            "1700000000",
        ]
        .map(String::from)
        .to_vec();
        generate(&path, &name, &args);
    }
    let data = std::fs::read(&path).unwrap();
    let stored = support::split_mkv(&data);
    let events = vigil_mkv::Demuxer::read_all(&data).unwrap();
    let mut clusters = Vec::new();
    let mut start = 0u64;
    let mut timecode = 0u64;
    let mut ends = Vec::new();
    for e in &events {
        match e {
            vigil_mkv::Event::ClusterStart { span, timecode: t } => {
                start = span.offset;
                timecode = *t;
                ends = vec![(span.data_offset() - start) as usize];
            }
            vigil_mkv::Event::Frame(f) => {
                let end = (f.span.end().unwrap() - start) as usize;
                if ends.last() != Some(&end) {
                    ends.push(end);
                }
            }
            vigil_mkv::Event::ClusterEnd { .. } => {
                let bytes = stored.payloads[clusters.len()].clone();
                if ends.last() != Some(&bytes.len()) {
                    ends.push(bytes.len());
                }
                clusters.push(Cluster {
                    bytes,
                    ends: std::mem::take(&mut ends),
                    timecode_ms: timecode,
                    duration_ms: 1000,
                });
            }
            _ => {}
        }
    }
    Input {
        header: stored.header,
        clusters,
    }
}

/// A GET over a fresh connection: status and body.
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let status = std::str::from_utf8(&buf[9..12]).unwrap().parse().unwrap();
    (status, buf[split + 4..].to_vec())
}

async fn post(addr: std::net::SocketAddr, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text[9..12].parse().unwrap();
    (status, text.split_once("\r\n\r\n").unwrap().1.to_owned())
}

/// The path of a LIVE session's track 1 media playlist.
async fn media_playlist(addr: std::net::SocketAddr, stream: &str) -> String {
    let (status, body) = post(
        addr,
        "/getHLSStreamingSessionURL",
        &format!(r#"{{"StreamName":"{stream}","Expires":3600}}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let url = v["HLSStreamingSessionURL"].as_str().unwrap();
    let token = url.split_once("SessionToken=").unwrap().1;
    format!("/hls/v1/getHLSMediaPlaylist.m3u8?SessionToken={token}&TrackNumber=1")
}

fn quantiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.95), at(1.0))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |f: &str| args.iter().any(|a| a == f);
    // `cargo bench` passes --bench; `cargo test --benches` does not: run the quick plan.
    let test_mode = !flag("--bench");
    let quick = flag("--quick") || test_mode;
    let mode = match (test_mode, quick) {
        (true, _) => "test (quick)",
        (false, true) => "quick",
        (false, false) => "full",
    };
    let seconds = if quick { 8 } else { SECONDS - 2 };
    let started = Instant::now();
    let load_before = loadavg();
    let input = input();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let rows = rt.block_on(run(input, seconds as usize));
    let missed = summary(
        &rows,
        &Run {
            title: "vigil-server live_edge",
            mode,
            pairs: 0,
            input: &format!("{seconds} s of 1280x720 25 fps H.264, 1 s fragments"),
            took: started.elapsed(),
            load_before: &load_before,
        },
    );
    if missed {
        eprintln!("(targets missed: see the table)");
    }
}

async fn run(input: Input, seconds: usize) -> Vec<Row> {
    let base = std::env::var_os("VIGIL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(base).unwrap();
    let mut scfg = StoreConfig::new(dir.path());
    scfg.min_free_bytes = 0;
    let store = Store::open(scfg, Arc::new(SystemClock)).unwrap();
    let cfg = ServerConfig {
        playback: PlaybackConfig {
            low_latency_hls: LowLatencyConfig {
                enabled: false,
                part_target_ms: PART_TARGET_MS,
            },
            ..PlaybackConfig::default()
        },
        ..ServerConfig::default()
    };
    let state = Arc::new(ServerState::new(store.clone(), cfg, Arc::new(Anonymous)).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, router(state)).await });
    let input = Arc::new(input);

    // ---- PERSISTED → playlist ----
    post(
        addr,
        "/createStream",
        r#"{"StreamName":"plain","DataRetentionInHours":1}"#,
    )
    .await;
    let id = store.stream(StreamRef::Name("plain")).unwrap().id;
    let header = store.register_header(id, &input.header).unwrap();
    let mut playlist_ms = Vec::new();
    let mut path = None;
    for c in input.clusters.iter().take(seconds) {
        let mut w = store.begin_fragment(id, header, c.timecode_ms).unwrap();
        w.append(c.bytes.clone()).unwrap();
        let number = vigil_api_kvs_common::model::fragment_number(w.number());
        w.finish(c.duration_ms).unwrap().wait().await.unwrap();
        let acked = Instant::now();
        let p = match &path {
            Some(p) => p,
            None => path.insert(media_playlist(addr, "plain").await),
        };
        loop {
            let (status, body) = get(addr, p).await;
            assert_eq!(status, 200);
            if String::from_utf8_lossy(&body).contains(&number) {
                break;
            }
        }
        playlist_ms.push(acked.elapsed().as_secs_f64() * 1000.0);
    }

    // ---- frame → part, low-latency HLS ----
    post(
        addr,
        "/createStream",
        r#"{"StreamName":"ll","DataRetentionInHours":1}"#,
    )
    .await;
    post(
        addr,
        "/tagStream",
        &format!(r#"{{"StreamName":"ll","Tags":{{"{STREAM_TAG}":"true"}}}}"#),
    )
    .await;
    let id = store.stream(StreamRef::Name("ll")).unwrap().id;
    let header = store.register_header(id, &input.header).unwrap();
    for c in input.clusters.iter().take(2) {
        let mut w = store.begin_fragment(id, header, c.timecode_ms).unwrap();
        w.append(c.bytes.clone()).unwrap();
        w.finish(c.duration_ms).unwrap().wait().await.unwrap();
    }
    let path = media_playlist(addr, "ll").await;
    // Where the server cuts each Cluster's parts (the same function).
    let spans: Vec<Vec<PartSpan>> = input
        .clusters
        .iter()
        .map(|c| {
            let (tracks, samples) =
                vigil_media::sample::from_fragments(&input.header, std::slice::from_ref(&c.bytes))
                    .unwrap();
            let target = u64::from(PART_TARGET_MS) * u64::from(tracks[0].timescale) / 1000;
            let refs: Vec<_> = samples.iter().collect();
            vigil_media::parts::cut(&refs, target, true, true)
        })
        .collect();
    // Per live Cluster: its fragment number, and when each frame was appended.
    let appended: Arc<Mutex<Appended>> = Arc::default();
    let live = 2..seconds.min(input.clusters.len());
    let writer = {
        let (store, input, appended) = (store.clone(), input.clone(), appended.clone());
        let live = live.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let t0 = input.clusters[live.start].timecode_ms;
            for ci in live {
                let c = &input.clusters[ci];
                let mut w = store.begin_fragment(id, header, c.timecode_ms).unwrap();
                let number = w.number();
                appended.lock().unwrap().insert(number, (ci, Vec::new()));
                let frame_ms = 40u64;
                let mut from = 0;
                for (i, &end) in c.ends.iter().enumerate() {
                    if i >= 1 {
                        let due = start
                            + Duration::from_millis(c.timecode_ms - t0 + (i as u64 - 1) * frame_ms);
                        tokio::time::sleep_until(due.into()).await;
                    }
                    w.append(c.bytes.slice(from..end)).unwrap();
                    from = end;
                    if i >= 1 {
                        appended
                            .lock()
                            .unwrap()
                            .get_mut(&number)
                            .unwrap()
                            .1
                            .push(Instant::now());
                    }
                }
                let durable = w.finish(c.duration_ms).unwrap();
                tokio::spawn(durable.wait());
            }
        })
    };
    // The client: blocking reload for the next part, then that part's GET.
    let mut part_ms = Vec::new();
    let mut since_first_ms = Vec::new();
    let (mut msn, mut part) = (None::<u64>, 0usize);
    let mut fetched = std::collections::BTreeSet::new();
    while !writer.is_finished() {
        let q = match msn {
            Some(m) => format!("{path}&_HLS_msn={m}&_HLS_part={part}"),
            None => path.clone(),
        };
        let (status, body) = get(addr, &q).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let text = String::from_utf8(body).unwrap();
        let (m, in_progress, listed) = parts(&text);
        (msn, part) = (Some(m), in_progress);
        for uri in listed {
            if !fetched.insert(uri.clone()) {
                continue;
            }
            let (status, _) = get(addr, &format!("/hls/v1/{uri}")).await;
            let served = Instant::now();
            assert_eq!(status, 200, "{uri}");
            // Which Cluster and part: by fragment number (part 0 named after the previous).
            let k: usize = field(&uri, "PartNumber").parse().unwrap();
            let number = match field(&uri, "FragmentNumber") {
                "" => {
                    let prev = vigil_api_kvs_common::model::parse_fragment_number(field(
                        &uri,
                        "AfterFragmentNumber",
                    ))
                    .unwrap();
                    let map = appended.lock().unwrap();
                    match map.range(prev + 1..).next() {
                        Some((n, _)) => *n,
                        None => continue,
                    }
                }
                f => vigil_api_kvs_common::model::parse_fragment_number(f).unwrap(),
            };
            let map = appended.lock().unwrap();
            let Some((ci, times)) = map.get(&number) else {
                continue;
            };
            let span = spans[*ci][k];
            let (Some(last), Some(first)) = (times.get(span.end - 1), times.get(span.start)) else {
                continue;
            };
            part_ms.push(served.duration_since(*last).as_secs_f64() * 1000.0);
            since_first_ms.push(served.duration_since(*first).as_secs_f64() * 1000.0);
        }
    }
    server.abort();
    store.close().unwrap();

    let (p50, p95, max) = quantiles(playlist_ms.clone());
    let (q50, q95, qmax) = quantiles(part_ms.clone());
    let (f50, f95, fmax) = quantiles(since_first_ms);
    vec![
        Row {
            name: format!("PERSISTED -> in playlist ({} fragments)", playlist_ms.len()),
            ours: format!("p50 {p50:.1} ms, p95 {p95:.1} ms, max {max:.1} ms"),
            reference: "-".into(),
            ratio: "-".into(),
            target: format!("p95 <= {TARGET_PLAYLIST_MS:.0} ms"),
            pass: Some(p95 <= TARGET_PLAYLIST_MS),
        },
        Row {
            name: format!(
                "last frame -> part served, LL-HLS ({} parts)",
                part_ms.len()
            ),
            ours: format!("p50 {q50:.1} ms, p95 {q95:.1} ms, max {qmax:.1} ms"),
            reference: "frame interval 40 ms".into(),
            ratio: format!("{:.2}", q50 / 40.0),
            target: format!("p95 <= {TARGET_PART_MS:.0} ms"),
            pass: Some(q95 <= TARGET_PART_MS && !part_ms.is_empty()),
        },
        Row {
            name: "first frame -> part served, LL-HLS".into(),
            ours: format!("p50 {f50:.1} ms, p95 {f95:.1} ms, max {fmax:.1} ms"),
            reference: format!("part target {PART_TARGET_MS} ms"),
            ratio: format!("{:.2}", f50 / f64::from(PART_TARGET_MS)),
            target: "-".into(),
            pass: None,
        },
    ]
}

/// The media sequence number of the segment in progress, how many parts it has, and the URIs
/// of every part listed.
fn parts(text: &str) -> (u64, usize, Vec<String>) {
    let mut msn = 0u64;
    let mut in_progress = 0;
    let mut uris = Vec::new();
    for l in text.lines() {
        if let Some(v) = l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            msn = v.parse().unwrap();
        } else if l.starts_with("#EXTINF:") {
            msn += 1;
            in_progress = 0;
        } else if let Some(v) = l.strip_prefix("#EXT-X-PART:") {
            let uri = v.split("URI=\"").nth(1).unwrap().split('"').next().unwrap();
            uris.push(uri.to_owned());
            in_progress += 1;
        }
    }
    (msn, in_progress, uris)
}

/// A query parameter of a URI ("" when absent).
fn field<'a>(uri: &'a str, name: &str) -> &'a str {
    uri.split(['?', '&'])
        .find_map(|kv| kv.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
        .unwrap_or("")
}
