//! Low-latency HLS: partial segments cut from the fragment being ingested, blocking playlist
//! reloads, preload hints, and hls.js playing it all in headless Chromium.
//!
//! Live video is written into the store a frame at a time, in real time, as PutMedia writes
//! it (one `append` per Matroska element, see `common::Cluster::frame_ends`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vigil_api_playback::PlaybackConfig;
use vigil_api_playback::streaming::llhls::{LowLatencyConfig, STREAM_TAG};
use vigil_server::{Anonymous, ServerConfig};
use vigil_store::{ManualClock, StreamRef};

use crate::common::{Media, Response, TestServer, split_mkv};

/// `seconds` of 320x240 25 fps H.264, a key frame a second (one Cluster a second), no B-frames.
fn live_media(seconds: u32) -> Media {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.mkv");
    let out = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=320x240:rate=25")
        .args(["-t", &seconds.to_string()])
        .args(["-c:v", "libx264", "-g", "25", "-bf", "0", "-crf", "30"])
        .args(["-threads", "1", "-output_ts_offset", "1700000000"])
        .args(["-f", "matroska", "-y"])
        .arg(&path)
        .output()
        .expect("ffmpeg (scripts/install-test-deps.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    split_mkv(&std::fs::read(&path).unwrap())
}

fn ll_config(enabled: bool) -> ServerConfig {
    ServerConfig {
        playback: PlaybackConfig {
            low_latency_hls: LowLatencyConfig {
                enabled,
                part_target_ms: 333,
            },
            ..PlaybackConfig::default()
        },
        ..ServerConfig::default()
    }
}

/// Creates a stream and registers the media's track header: (stream id, header id).
async fn stream(server: &TestServer, name: &str, media: &Media) -> (u64, u64) {
    server.create_stream(name, 1).await;
    let store = &server.state.store;
    let id = store.stream(StreamRef::Name(name)).unwrap().id;
    let header_id = store.register_header(id, &media.header).unwrap();
    (id, header_id)
}

/// Writes Clusters `range` whole, at once.
async fn put_now(
    server: &TestServer,
    ids: (u64, u64),
    media: &Media,
    range: std::ops::Range<usize>,
) {
    for c in &media.clusters[range] {
        let store = &server.state.store;
        let mut w = store.begin_fragment(ids.0, ids.1, c.timecode_ms).unwrap();
        w.append(c.bytes.clone()).unwrap();
        w.finish(c.duration_ms).unwrap().wait().await.unwrap();
    }
}

/// Writes Clusters `range` in real time, an element at a time, each frame when its timestamp
/// comes (relative to the first Cluster of the range).
fn put_live(
    server: &TestServer,
    ids: (u64, u64),
    media: &Media,
    range: std::ops::Range<usize>,
) -> tokio::task::JoinHandle<()> {
    let store = server.state.store.clone();
    let clusters = media.clusters[range].to_vec();
    tokio::spawn(async move {
        let start = Instant::now();
        let t0 = clusters[0].timecode_ms as i64;
        for c in clusters {
            let mut w = store.begin_fragment(ids.0, ids.1, c.timecode_ms).unwrap();
            let mut from = 0usize;
            // frame_ends: the Cluster header and Timestamp, then one end per block.
            for (i, &end) in c.frame_ends.iter().enumerate() {
                if i >= 1 {
                    let frame_ms = c.frames.get(i - 1).map_or(0, |f| f.0) - t0;
                    let due = start + Duration::from_millis(frame_ms.max(0) as u64);
                    tokio::time::sleep_until(due.into()).await;
                }
                w.append(c.bytes.slice(from..end)).unwrap();
                from = end;
            }
            let durable = w.finish(c.duration_ms).unwrap();
            tokio::spawn(async move { durable.wait().await.unwrap() });
        }
    })
}

async fn get(server: &TestServer, url: &str) -> Response {
    let path = url
        .strip_prefix(&format!("http://{}", server.addr))
        .unwrap_or(url);
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        server.addr
    );
    server.raw(req.as_bytes()).await
}

async fn session(server: &TestServer, name: &str) -> String {
    let r = server
        .post(
            "/getHLSStreamingSessionURL",
            &json!({"StreamName": name, "PlaybackMode": "LIVE", "Expires": 3600}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["HLSStreamingSessionURL"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The media playlist URL of track 1 (from the master playlist).
async fn media_url(server: &TestServer, master: &str) -> String {
    let r = get(server, master).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let base = master.rsplit_once('/').unwrap().0;
    let line = r
        .text()
        .lines()
        .find(|l| l.starts_with("getHLSMediaPlaylist"))
        .unwrap()
        .to_owned();
    format!("{base}/{line}")
}

/// A part as listed: URI, duration (s), INDEPENDENT=YES.
type PartLine = (String, f64, bool);

/// What a low-latency playlist holds.
#[derive(Debug, Default)]
struct Parsed {
    media_sequence: u64,
    /// Per complete segment: its URI and its parts (URI, duration, independent).
    segments: Vec<(String, Vec<PartLine>)>,
    /// Parts after the last complete segment.
    pending: Vec<PartLine>,
    hint: Option<String>,
    part_target: Option<f64>,
    server_control: Option<String>,
}

impl Parsed {
    fn pending_msn(&self) -> u64 {
        self.media_sequence + self.segments.len() as u64
    }
}

fn attr<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let at = line.find(&format!("{name}="))? + name.len() + 1;
    let rest = &line[at..];
    if let Some(q) = rest.strip_prefix('"') {
        q.split('"').next()
    } else {
        rest.split(',').next()
    }
}

fn parse(text: &str) -> Parsed {
    let mut p = Parsed::default();
    let mut parts = Vec::new();
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if let Some(v) = l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            p.media_sequence = v.parse().unwrap();
        } else if let Some(v) = l.strip_prefix("#EXT-X-PART-INF:") {
            p.part_target = attr(v, "PART-TARGET").map(|t| t.parse().unwrap());
        } else if let Some(v) = l.strip_prefix("#EXT-X-SERVER-CONTROL:") {
            p.server_control = Some(v.to_owned());
        } else if let Some(v) = l.strip_prefix("#EXT-X-PART:") {
            parts.push((
                attr(v, "URI").unwrap().to_owned(),
                attr(v, "DURATION").unwrap().parse().unwrap(),
                attr(v, "INDEPENDENT") == Some("YES"),
            ));
        } else if let Some(v) = l.strip_prefix("#EXT-X-PRELOAD-HINT:") {
            assert_eq!(attr(v, "TYPE"), Some("PART"));
            p.hint = Some(attr(v, "URI").unwrap().to_owned());
        } else if l.starts_with("#EXTINF:") {
            let uri = lines.next().unwrap().to_owned();
            p.segments.push((uri, std::mem::take(&mut parts)));
        }
    }
    p.pending = parts;
    p
}

fn abs(base: &str, rel: &str) -> String {
    format!("{}/{rel}", base.rsplit_once('/').unwrap().0)
}

/// ffprobe's frames (pts, key flag) of an fMP4 file, and ffmpeg's decode errors.
fn probe_frames(data: &[u8]) -> (Vec<(i64, bool)>, String) {
    let (packets, stderr) = crate::common::ffprobe_packets_and_errors(data);
    assert!(stderr.is_empty(), "ffprobe: {stderr}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("parts.mp4");
    std::fs::write(&path, data).unwrap();
    let out = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    (
        packets
            .into_iter()
            .map(|(_, pts, key)| (pts, key))
            .collect(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parts_block_and_decode() {
    let media = live_media(8);
    let server = TestServer::start_with(ll_config(true), Arc::new(Anonymous)).await;
    let ids = stream(&server, "cam", &media).await;
    put_now(&server, ids, &media, 0..2).await;
    let master = session(&server, "cam").await;
    let pusher = put_live(&server, ids, &media, 2..8);
    let url = media_url(&server, &master).await;

    // A plain reload: the low-latency tags, parts of the complete segments, a hint.
    let r = get(&server, &url).await;
    assert_eq!(r.status, 200);
    let text = r.text();
    let p = parse(&text);
    assert_eq!(
        p.server_control.as_deref(),
        Some("CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.999"),
        "{text}"
    );
    assert_eq!(p.part_target, Some(0.333));
    assert_eq!(p.segments.len(), 2, "{text}");
    for (_, parts) in &p.segments {
        // 25 fps, 333 ms: 8 frames a part, a key frame a second: 8 + 8 + 8 + 1.
        let durations: Vec<f64> = parts.iter().map(|x| x.1).collect();
        assert_eq!(durations, vec![0.32, 0.32, 0.32, 0.04], "{text}");
        let independent: Vec<bool> = parts.iter().map(|x| x.2).collect();
        assert_eq!(independent, vec![true, false, false, false]);
    }
    assert!(p.hint.is_some(), "{text}");

    // Too far ahead: 400 at once; _HLS_part alone: 400.
    let pending = p.pending_msn();
    for q in [
        format!("&_HLS_msn={}", pending + 2),
        format!("&_HLS_msn={pending}&_HLS_part=40"),
        "&_HLS_part=1".to_owned(),
    ] {
        let t = Instant::now();
        let r = get(&server, &format!("{url}{q}")).await;
        r.assert_error(400, "InvalidArgumentException");
        assert!(t.elapsed() < Duration::from_millis(500), "{q}");
    }

    // Blocking reloads: each next part, as hls.js asks for it.
    let mut seen = p;
    let mut waits = Vec::new();
    for _ in 0..8 {
        let (msn, part) = (seen.pending_msn(), seen.pending.len());
        let t = Instant::now();
        let r = get(&server, &format!("{url}&_HLS_msn={msn}&_HLS_part={part}")).await;
        assert_eq!(r.status, 200);
        waits.push(t.elapsed());
        let next = parse(&r.text());
        let has = next.pending_msn() > msn || next.pending.len() > part;
        assert!(has, "part {part} of {msn} is in the answer:\n{}", r.text());
        seen = next;
    }
    // A part is 320 ms: the held requests answered as parts completed, not at the hold's end.
    assert!(
        waits.iter().all(|w| *w < Duration::from_millis(1500)),
        "{waits:?}"
    );

    // The preload hint, asked for at once, is answered when the part is complete.
    let hint = seen.hint.clone().unwrap();
    let t = Instant::now();
    let r = get(&server, &abs(&url, &hint)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("video/mp4"));
    assert!(t.elapsed() < Duration::from_millis(1500));
    let after = parse(&get(&server, &url).await.text());
    let all_parts: Vec<&String> = after
        .segments
        .iter()
        .flat_map(|s| s.1.iter().map(|x| &x.0))
        .chain(after.pending.iter().map(|x| &x.0))
        .collect();
    assert!(all_parts.contains(&&hint), "the hinted part keeps its URI");

    pusher.await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Once complete: init + every part of every listed segment, concatenated, decodes to
    // exactly the frames of those fragments.
    let r = get(&server, &url).await;
    let text = r.text();
    let done = parse(&text);
    let init_uri = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
        .unwrap()
        .trim_end_matches('"')
        .to_owned();
    let mut file = get(&server, &abs(&url, &init_uri)).await.body;
    let mut expected = Vec::new();
    // Parts are listed for the segments within three target durations (3 s) of the end.
    let with_parts: Vec<bool> = done.segments.iter().map(|s| !s.1.is_empty()).collect();
    assert_eq!(with_parts, vec![false, false, true, true, true], "{text}");
    let first_listed = media.clusters.len() - done.segments.len();
    for (i, (_, parts)) in done.segments.iter().enumerate() {
        for (uri, _, _) in parts {
            let r = get(&server, &abs(&url, uri)).await;
            assert_eq!(r.status, 200, "{uri}: {}", r.text());
            file.extend_from_slice(&r.body);
        }
        if parts.is_empty() {
            continue;
        }
        for f in &media.clusters[first_listed + i].frames {
            expected.push((f.0 * 90, f.1));
        }
    }
    let (frames, errors) = tokio::task::spawn_blocking(move || probe_frames(&file))
        .await
        .unwrap();
    assert!(errors.is_empty(), "ffmpeg: {errors}");
    assert_eq!(frames, expected);

    // A part past the end of a complete fragment, and a fragment that does not exist: 404.
    let last_part = &done.segments[4].1.last().unwrap().0;
    let beyond = last_part.replace("PartNumber=3", "PartNumber=4");
    get(&server, &abs(&url, &beyond))
        .await
        .assert_error(404, "ResourceNotFoundException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_sessions_survive_a_pause_in_ingest() {
    let media = live_media(3);
    let clock = Arc::new(ManualClock::new(1_800_000_000_000));
    let server =
        TestServer::start_with_clock(ll_config(true), Arc::new(Anonymous), clock.clone()).await;
    let ids = stream(&server, "cam", &media).await;
    put_now(&server, ids, &media, 0..3).await;
    let master = session(&server, "cam").await;
    let url = media_url(&server, &master).await;
    let before = get(&server, &url).await.text();
    assert_eq!(parse(&before).segments.len(), 3);

    // Ten minutes without a fragment.
    clock.advance_ms(600_000);
    let r = get(&server, &master).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = get(&server, &url).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), before, "the same segments, still playable");
    let seg = &parse(&before).segments[2].0;
    assert_eq!(get(&server, &abs(&url, seg)).await.status, 200);
    // A held reload for the next part runs out and answers the playlist as it is.
    let pending = parse(&before).pending_msn();
    let t = Instant::now();
    let r = get(&server, &format!("{url}&_HLS_msn={pending}&_HLS_part=0")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), before);
    let held = t.elapsed();
    assert!(
        held >= Duration::from_millis(2900) && held < Duration::from_secs(5),
        "{held:?}"
    );
    // ... but a new LIVE session needs a fragment from the last 30 s, as KVS does.
    server
        .post(
            "/getHLSStreamingSessionURL",
            &json!({"StreamName": "cam", "PlaybackMode": "LIVE"}),
        )
        .await
        .assert_error(404, "ResourceNotFoundException");
    // Ingest resumes: the next segment follows.
    put_now(&server, ids, &media, 0..1).await;
    let p = parse(&get(&server, &url).await.text());
    assert_eq!(p.pending_msn(), pending + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_tag_overrides_the_server_setting() {
    let media = live_media(2);
    for (server_on, tag, expect) in [
        (false, None, false),
        (false, Some("true"), true),
        (true, Some("false"), false),
        (true, Some("TRUE"), true),
        (true, Some("maybe"), true),
    ] {
        let server = TestServer::start_with(ll_config(server_on), Arc::new(Anonymous)).await;
        let ids = stream(&server, "cam", &media).await;
        if let Some(tag) = tag {
            let r = server
                .post(
                    "/tagStream",
                    &json!({"StreamName": "cam", "Tags": {STREAM_TAG: tag}}),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text());
        }
        put_now(&server, ids, &media, 0..2).await;
        let master = session(&server, "cam").await;
        let url = media_url(&server, &master).await;
        let text = get(&server, &url).await.text();
        assert_eq!(text.contains("#EXT-X-PART-INF"), expect, "{tag:?}: {text}");
        assert_eq!(text.contains("#EXT-X-PART:"), expect);
        if !expect {
            // Plain sessions: no part GETs, and blocking parameters change nothing.
            assert!(!text.contains("SERVER-CONTROL"));
            let again = get(&server, &format!("{url}&_HLS_msn=99&_HLS_part=0")).await;
            assert_eq!(again.status, 200);
            assert_eq!(again.text(), text);
        }
        // MPEG_TS sessions are never low-latency.
        let r = server
            .post(
                "/getHLSStreamingSessionURL",
                &json!({"StreamName": "cam", "ContainerFormat": "MPEG_TS"}),
            )
            .await;
        let ts_master = r.json()["HLSStreamingSessionURL"]
            .as_str()
            .unwrap()
            .to_owned();
        let ts_text = get(&server, &media_url(&server, &ts_master).await)
            .await
            .text();
        assert!(!ts_text.contains("#EXT-X-PART"), "{ts_text}");
    }
}

/// Runs the hls.js player (crates/server/tests/browser/play.mjs) for `seconds`.
async fn hlsjs_play(url: &str, seconds: u32) -> Value {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        dir.join("node_modules/hls.js").exists()
            && dir.join("node_modules/playwright-core").exists(),
        "{}/node_modules is missing: run scripts/install-test-deps.sh",
        dir.display()
    );
    let url = url.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .current_dir(&dir)
            .arg("play.mjs")
            .arg(&url)
            .arg(seconds.to_string())
            .output()
            .expect("node (scripts/install-test-deps.sh installs it)")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "play.mjs: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hlsjs_plays_low_latency_in_chromium() {
    let media = live_media(30);
    let server = TestServer::start_with(ll_config(true), Arc::new(Anonymous)).await;
    let ids = stream(&server, "cam", &media).await;
    put_now(&server, ids, &media, 0..2).await;
    let pusher = put_live(&server, ids, &media, 2..30);
    let master = session(&server, "cam").await;
    let s = hlsjs_play(&master, 14).await;
    pusher.abort();
    eprintln!("hls.js: {s}");
    assert_eq!(s["fatal"], Value::Null, "{s}");
    // Every playlist, part and init request succeeded, and Chromium logged no error.
    assert_eq!(s["failedRequests"], json!([]), "{s}");
    assert_eq!(s["console"], json!([]), "{s}");
    assert_eq!(s["videoWidth"], 320, "{s}");
    assert_eq!(s["videoHeight"], 240, "{s}");
    assert_eq!(s["canBlockReload"], true, "{s}");
    // Playing: at least 8 s of the 14 s (startup included) played.
    assert!(s["currentTime"].as_f64().unwrap() >= 8.0, "{s}");
    // Parts were loaded, and playlists reloaded with blocking requests.
    assert!(s["partsLoaded"].as_u64().unwrap() >= 10, "{s}");
    assert!(s["partRequests"].as_u64().unwrap() >= 10, "{s}");
    assert!(s["blockingReloads"].as_u64().unwrap() >= 10, "{s}");
    // Low latency: behind the live edge by about PART-HOLD-BACK (1 s), not by three
    // segments (3 s and more) as with plain HLS.
    let latency = s["latency"].as_f64().unwrap();
    assert!(latency < 2.5, "latency {latency} s: {s}");
}
