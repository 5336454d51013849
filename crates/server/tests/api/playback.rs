//! GetHLSStreamingSessionURL and the HLS playback GETs, read by ffmpeg over HTTP.
//!
//! Fragments are written straight into the store as PutMedia stores them (see getmedia.rs).

use std::time::Duration;

use serde_json::{Value, json};
use vigil_api_playback::streaming::session::{
    Container, Discontinuity, Mode, Protocol, Selector, Session,
};
use vigil_store::{FragmentMeta, StreamRef};

use crate::common::{Cluster, Response, TestServer, ffmpeg_h264};

async fn stream(server: &TestServer, name: &str, retention_hours: u32) -> (u64, u64) {
    server.create_stream(name, retention_hours).await;
    let store = &server.state.store;
    let id = store.stream(StreamRef::Name(name)).unwrap().id;
    let header_id = store.register_header(id, &ffmpeg_h264().1.header).unwrap();
    (id, header_id)
}

async fn put(server: &TestServer, ids: (u64, u64), c: &Cluster) -> FragmentMeta {
    let store = &server.state.store;
    let mut w = store.begin_fragment(ids.0, ids.1, c.timecode_ms).unwrap();
    w.append(c.bytes.clone()).unwrap();
    let meta = w.finish(c.duration_ms).unwrap().wait().await.unwrap();
    tokio::time::sleep(Duration::from_millis(2)).await;
    meta
}

/// The producer time range of the ffmpeg media, in epoch seconds.
fn media_range() -> (f64, f64) {
    let c = &ffmpeg_h264().1.clusters;
    (
        c[0].timecode_ms as f64 / 1000.0,
        (c[c.len() - 1].timecode_ms as f64 + 500.0) / 1000.0,
    )
}

async fn session_url(server: &TestServer, body: &Value) -> String {
    let r = server.post("/getHLSStreamingSessionURL", body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let url = r.json()["HLSStreamingSessionURL"]
        .as_str()
        .unwrap()
        .to_owned();
    let prefix = format!(
        "http://{}/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken=",
        server.addr
    );
    assert!(url.starts_with(&prefix), "{url}");
    url
}

async fn dash_url(server: &TestServer, body: &Value) -> String {
    let r = server.post("/getDASHStreamingSessionURL", body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let url = r.json()["DASHStreamingSessionURL"]
        .as_str()
        .unwrap()
        .to_owned();
    let prefix = format!(
        "http://{}/dash/v1/getDASHManifest.mpd?SessionToken=",
        server.addr
    );
    assert!(url.starts_with(&prefix), "{url}");
    url
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

/// Runs a tool on the blocking pool (the server shares the runtime); returns stdout, stderr.
async fn tool(program: &'static str, args: Vec<String>) -> (String, String) {
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(program)
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{program}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

/// ffprobe's packet pts through the HLS URL, and ffmpeg's decode errors.
async fn play(url: &str) -> (Vec<i64>, String) {
    let (out, err) = tool(
        "ffprobe",
        [
            "-v",
            "error",
            "-allowed_extensions",
            "ALL",
            "-show_entries",
            "packet=pts",
            "-of",
            "csv=p=0",
            url,
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    assert!(err.is_empty(), "ffprobe: {err}");
    let pts = out
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.trim_end_matches(',').parse().unwrap())
        .collect();
    let (_, decode_err) = tool(
        "ffmpeg",
        [
            "-nostdin",
            "-v",
            "error",
            "-allowed_extensions",
            "ALL",
            "-i",
            url,
            "-f",
            "null",
            "-",
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    (pts, decode_err)
}

fn assert_continuous(mut pts: Vec<i64>) {
    let frames: usize = ffmpeg_h264()
        .1
        .clusters
        .iter()
        .map(|c| c.frames.len())
        .sum();
    assert_eq!(pts.len(), frames, "every frame");
    pts.sort_unstable();
    for w in pts.windows(2) {
        assert_eq!(w[1] - w[0], 3600, "25 fps at 90 kHz: {pts:?}");
    }
}

async fn on_demand(container: &str) {
    let server = TestServer::start().await;
    let name = format!("hls-{}", container.to_ascii_lowercase().replace('_', "-"));
    let ids = stream(&server, &name, 24).await;
    for c in &ffmpeg_h264().1.clusters {
        put(&server, ids, c).await;
    }
    let (start, end) = media_range();
    let url = session_url(
        &server,
        &json!({
            "StreamName": name,
            "PlaybackMode": "ON_DEMAND",
            "ContainerFormat": container,
            "DisplayFragmentTimestamp": "ALWAYS",
            "HLSFragmentSelector": {
                "FragmentSelectorType": "PRODUCER_TIMESTAMP",
                "TimestampRange": {"StartTimestamp": start, "EndTimestamp": end}
            }
        }),
    )
    .await;
    let master = get(&server, &url).await;
    assert_eq!(master.status, 200, "{}", master.text());
    assert_eq!(
        master.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert!(master.text().contains("avc1."), "{}", master.text());
    // The test media are 25 fps.
    assert!(
        master.text().contains(",FRAME-RATE=25.000"),
        "{}",
        master.text()
    );
    let token = url.split("SessionToken=").nth(1).unwrap();
    let media = get(
        &server,
        &format!("/hls/v1/getHLSMediaPlaylist.m3u8?SessionToken={token}&TrackNumber=1"),
    )
    .await;
    let text = media.text();
    assert_eq!(media.status, 200, "{text}");
    assert!(text.contains("#EXT-X-ENDLIST"), "{text}");
    assert_eq!(text.matches("#EXTINF").count(), 10, "{text}");
    assert_eq!(text.matches("#EXT-X-PROGRAM-DATE-TIME:2023-").count(), 10);
    // PRODUCER_TIMESTAMP defaults to DiscontinuityMode NEVER.
    assert!(!text.contains("#EXT-X-DISCONTINUITY"), "{text}");
    let (pts, errors) = play(&url).await;
    assert!(errors.is_empty(), "ffmpeg decode: {errors}");
    assert_continuous(pts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_fmp4_plays_every_frame() {
    on_demand("FRAGMENTED_MP4").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_ts_plays_every_frame() {
    on_demand("MPEG_TS").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_lists_the_newest_fragments() {
    let server = TestServer::start().await;
    let ids = stream(&server, "hls-live", 24).await;
    let mut metas = Vec::new();
    for c in ffmpeg_h264().1.clusters.iter().take(4) {
        metas.push(put(&server, ids, c).await);
    }
    let url = session_url(
        &server,
        &json!({"StreamName": "hls-live", "MaxMediaPlaylistFragmentResults": 2}),
    )
    .await;
    let token = url.split("SessionToken=").nth(1).unwrap().to_owned();
    let playlist = |token: String| {
        let server = &server;
        async move {
            let r = get(
                server,
                &format!("/hls/v1/getHLSMediaPlaylist.m3u8?SessionToken={token}&TrackNumber=1"),
            )
            .await;
            assert_eq!(r.status, 200, "{}", r.text());
            r.text()
        }
    };
    let text = playlist(token.clone()).await;
    assert!(!text.contains("#EXT-X-ENDLIST"), "{text}");
    assert_eq!(text.matches("#EXTINF").count(), 2, "{text}");
    let fns = |m: &FragmentMeta| vigil_api_kvs_common::model::fragment_number(m.number);
    assert!(text.contains(&fns(&metas[2])) && text.contains(&fns(&metas[3])));
    assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:2"), "{text}");
    // A new fragment slides the window; sequence numbers stay with their fragments.
    metas.push(put(&server, ids, &ffmpeg_h264().1.clusters[4]).await);
    let text = playlist(token).await;
    assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:3"), "{text}");
    assert!(text.contains(&fns(&metas[4])) && !text.contains(&fns(&metas[2])));
    // The segments are served.
    let seg = text
        .lines()
        .find(|l| l.starts_with("getMP4MediaFragment.mp4"))
        .unwrap();
    let r = get(&server, &format!("/hls/v1/{seg}")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("video/mp4"));
}

#[tokio::test]
async fn expired_and_tampered_tokens_are_refused() {
    let server = TestServer::start().await;
    let ids = stream(&server, "hls-tok", 24).await;
    let c = &ffmpeg_h264().1.clusters[0];
    put(&server, ids, c).await;
    let rec = server.state.store.stream(StreamRef::Id(ids.0)).unwrap();
    let now = server.state.store.clock().now_ms();
    let mut session = Session {
        protocol: Protocol::Hls,
        stream: ids.0,
        stream_created_ms: rec.creation_time_ms,
        mode: Mode::OnDemand,
        selector: Selector::Producer,
        start_ms: Some(c.timecode_ms),
        end_ms: Some(c.timecode_ms + 1),
        container: Container::Fmp4,
        discontinuity: Discontinuity::Never,
        display_timestamp: false,
        display_number: false,
        max_fragments: 10,
        issued_ms: now - 400_000,
        expires_ms: now - 100_000,
        part_target_ms: None,
    };
    let master = |t: &str| format!("/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken={t}");
    let expired = server.state.playback.session_key.seal(&session);
    let r = get(&server, &master(&expired)).await;
    r.assert_error(400, "InvalidArgumentException");
    assert!(r.text().contains("expired"), "{}", r.text());
    session.expires_ms = now + 100_000;
    let good = server.state.playback.session_key.seal(&session);
    let expired_free = good.clone();
    assert_eq!(get(&server, &master(&good)).await.status, 200);
    // One character changed.
    let mut bad = good.into_bytes();
    let i = bad.len() / 2;
    bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
    let bad = String::from_utf8(bad).unwrap();
    get(&server, &master(&bad))
        .await
        .assert_error(400, "InvalidArgumentException");
    get(&server, "/hls/v1/getHLSMasterPlaylist.m3u8")
        .await
        .assert_error(400, "InvalidArgumentException");
    // An HLS token does not open DASH URLs.
    get(
        &server,
        &format!("/dash/v1/getDASHManifest.mpd?SessionToken={expired_free}"),
    )
    .await
    .assert_error(400, "InvalidArgumentException");
    // A re-created stream of the same name ends the session.
    session.stream_created_ms += 1;
    let other = server.state.playback.session_key.seal(&session);
    get(&server, &master(&other))
        .await
        .assert_error(404, "ResourceNotFoundException");
}

#[tokio::test]
async fn session_errors() {
    let server = TestServer::start().await;
    stream(&server, "hls-empty", 24).await;
    let (start, end) = media_range();
    let post = |body: Value| {
        let server = &server;
        async move { server.post("/getHLSStreamingSessionURL", &body).await }
    };
    let range = json!({"FragmentSelectorType": "PRODUCER_TIMESTAMP",
        "TimestampRange": {"StartTimestamp": start, "EndTimestamp": end}});
    post(json!({"StreamName": "hls-empty", "PlaybackMode": "ON_DEMAND", "HLSFragmentSelector": range}))
        .await
        .assert_error(404, "ResourceNotFoundException");
    post(json!({"StreamName": "hls-empty"}))
        .await
        .assert_error(404, "ResourceNotFoundException");
    server.create_stream("hls-noret", 0).await;
    post(json!({"StreamName": "hls-noret"}))
        .await
        .assert_error(400, "NoDataRetentionException");
    for bad in [
        json!({"StreamName": "hls-empty", "PlaybackMode": "ON_DEMAND"}),
        json!({"StreamName": "hls-empty", "PlaybackMode": "LIVE", "HLSFragmentSelector": range}),
        json!({"StreamName": "hls-empty", "PlaybackMode": "REPLAY"}),
        json!({"StreamName": "hls-empty", "Expires": 299}),
        json!({"StreamName": "hls-empty", "Expires": 43201}),
        json!({"StreamName": "hls-empty", "MaxMediaPlaylistFragmentResults": 0}),
        json!({"StreamName": "hls-empty", "MaxMediaPlaylistFragmentResults": 5001}),
        json!({"StreamName": "hls-empty", "ContainerFormat": "MKV"}),
        json!({"StreamName": "hls-empty", "DiscontinuityMode": "SOMETIMES"}),
    ] {
        post(bad)
            .await
            .assert_error(400, "InvalidArgumentException");
    }
    post(json!({"StreamName": "nope"}))
        .await
        .assert_error(404, "ResourceNotFoundException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dash_on_demand_plays_every_frame() {
    let server = TestServer::start().await;
    let ids = stream(&server, "dash-od", 24).await;
    let mut metas = Vec::new();
    for c in &ffmpeg_h264().1.clusters {
        metas.push(put(&server, ids, c).await);
    }
    let (start, end) = media_range();
    let url = dash_url(
        &server,
        &json!({
            "StreamName": "dash-od",
            "PlaybackMode": "ON_DEMAND",
            "DisplayFragmentNumber": "ALWAYS",
            "DASHFragmentSelector": {
                "FragmentSelectorType": "PRODUCER_TIMESTAMP",
                "TimestampRange": {"StartTimestamp": start, "EndTimestamp": end}
            }
        }),
    )
    .await;
    let mpd = get(&server, &url).await;
    assert_eq!(mpd.status, 200, "{}", mpd.text());
    assert_eq!(mpd.header("content-type"), Some("application/dash+xml"));
    let text = mpd.text();
    assert!(text.contains("type=\"static\""), "{text}");
    assert_eq!(text.matches("<S ").count(), 10, "{text}");
    assert!(text.contains(&vigil_api_kvs_common::model::fragment_number(
        metas[9].number
    )));
    let (pts, errors) = play(&url).await;
    assert!(errors.is_empty(), "ffmpeg decode: {errors}");
    assert_continuous(pts);
}

#[tokio::test]
async fn dash_live_manifest_is_dynamic() {
    let server = TestServer::start().await;
    let ids = stream(&server, "dash-live", 24).await;
    for c in ffmpeg_h264().1.clusters.iter().take(3) {
        put(&server, ids, c).await;
    }
    let url = dash_url(
        &server,
        &json!({"StreamName": "dash-live", "MaxManifestFragmentResults": 2}),
    )
    .await;
    let text = get(&server, &url).await.text();
    assert!(text.contains("type=\"dynamic\""), "{text}");
    assert_eq!(text.matches("<S ").count(), 2, "{text}");
    // The segment URL template resolves.
    let token = url.split("SessionToken=").nth(1).unwrap();
    let init = get(
        &server,
        &format!("/dash/v1/getMP4InitFragment.mp4?SessionToken={token}&TrackNumber=1"),
    )
    .await;
    assert_eq!(init.status, 200, "{}", init.text());
    let r = server
        .post(
            "/getDASHStreamingSessionURL",
            &json!({"StreamName": "dash-live", "MaxManifestFragmentResults": 5001}),
        )
        .await;
    r.assert_error(400, "InvalidArgumentException");
}

#[tokio::test]
async fn live_replay_grows_and_server_time_marks_discontinuities() {
    let server = TestServer::start().await;
    let ids = stream(&server, "hls-replay", 24).await;
    let mut metas = Vec::new();
    for c in ffmpeg_h264().1.clusters.iter().take(3) {
        metas.push(put(&server, ids, c).await);
    }
    let (start, _) = media_range();
    let third_end = (ffmpeg_h264().1.clusters[2].timecode_ms as f64 + 500.0) / 1000.0;
    // LIVE_REPLAY from the first fragment: only what has "elapsed" since the session began.
    let url = session_url(
        &server,
        &json!({
            "StreamName": "hls-replay",
            "PlaybackMode": "LIVE_REPLAY",
            "HLSFragmentSelector": {
                "FragmentSelectorType": "PRODUCER_TIMESTAMP",
                "TimestampRange": {"StartTimestamp": start}
            }
        }),
    )
    .await;
    let token = url.split("SessionToken=").nth(1).unwrap();
    let media = |token: String| {
        let server = &server;
        async move {
            let r = get(
                server,
                &format!("/hls/v1/getHLSMediaPlaylist.m3u8?SessionToken={token}"),
            )
            .await;
            assert_eq!(r.status, 200, "{}", r.text());
            r.text()
        }
    };
    let text = media(token.to_owned()).await;
    assert_eq!(text.matches("#EXTINF").count(), 1, "{text}");
    assert!(!text.contains("#EXT-X-ENDLIST"), "{text}");
    // ON_DEMAND by server time: DiscontinuityMode defaults to ALWAYS.
    let first = metas[0].server_ts_ms as f64 / 1000.0;
    let last = metas[2].server_ts_ms as f64 / 1000.0;
    let url = session_url(
        &server,
        &json!({
            "StreamName": "hls-replay",
            "PlaybackMode": "ON_DEMAND",
            "HLSFragmentSelector": {
                "TimestampRange": {"StartTimestamp": first, "EndTimestamp": last}
            }
        }),
    )
    .await;
    let token = url.split("SessionToken=").nth(1).unwrap();
    let text = media(token.to_owned()).await;
    assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 3, "{text}");
    // ON_DISCONTINUITY by producer time: the fragments follow each other.
    let url = session_url(
        &server,
        &json!({
            "StreamName": "hls-replay",
            "PlaybackMode": "ON_DEMAND",
            "DiscontinuityMode": "ON_DISCONTINUITY",
            "HLSFragmentSelector": {
                "FragmentSelectorType": "PRODUCER_TIMESTAMP",
                "TimestampRange": {"StartTimestamp": start, "EndTimestamp": third_end}
            }
        }),
    )
    .await;
    let token = url.split("SessionToken=").nth(1).unwrap().to_owned();
    let text = media(token.clone()).await;
    assert!(!text.contains("#EXT-X-DISCONTINUITY"), "{text}");
    assert_eq!(text.matches("#EXTINF").count(), 3, "{text}");
    // Fragments: unknown, outside the session, and of the wrong container.
    let seg = |f: String| {
        format!(
            "/hls/v1/getMP4MediaFragment.mp4?SessionToken={token}&TrackNumber=1&FragmentNumber={f}"
        )
    };
    get(&server, &seg("123".into()))
        .await
        .assert_error(404, "ResourceNotFoundException");
    let outside = put(&server, ids, &ffmpeg_h264().1.clusters[3]).await;
    let r = get(
        &server,
        &seg(vigil_api_kvs_common::model::fragment_number(outside.number)),
    )
    .await;
    r.assert_error(404, "ResourceNotFoundException");
    let ts = format!(
        "/hls/v1/getTSFragment.ts?SessionToken={token}&FragmentNumber={}",
        vigil_api_kvs_common::model::fragment_number(metas[0].number)
    );
    get(&server, &ts)
        .await
        .assert_error(400, "InvalidArgumentException");
    let r = get(
        &server,
        &seg(vigil_api_kvs_common::model::fragment_number(
            metas[1].number,
        )),
    )
    .await;
    assert_eq!(r.status, 200);
}

/// 4 s of H.264 (25 fps, a key frame a second) and AAC (44.1 kHz mono), from 1.7e12 ms.
fn ffmpeg_h264_aac() -> crate::common::Media {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("av.mkv");
    let out = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=320x240:rate=25")
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args([
            "-t", "4", "-c:v", "libx264", "-g", "25", "-bf", "0", "-crf", "30",
        ])
        .args(["-c:a", "aac", "-ac", "1", "-threads", "1"])
        .args(["-output_ts_offset", "1700000000", "-f", "matroska", "-y"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    crate::common::split_mkv(&std::fs::read(&path).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_plays_as_fmp4_rendition_and_in_ts() {
    let media = tokio::task::spawn_blocking(ffmpeg_h264_aac).await.unwrap();
    let server = TestServer::start().await;
    server.create_stream("hls-av", 24).await;
    let store = &server.state.store;
    let id = store.stream(StreamRef::Name("hls-av")).unwrap().id;
    let header_id = store.register_header(id, &media.header).unwrap();
    for c in &media.clusters {
        put(&server, (id, header_id), c).await;
    }
    for container in ["FRAGMENTED_MP4", "MPEG_TS"] {
        let first = media.clusters[0].timecode_ms as f64 / 1000.0;
        let url = session_url(
            &server,
            &json!({
                "StreamName": "hls-av",
                "PlaybackMode": "ON_DEMAND",
                "ContainerFormat": container,
                "HLSFragmentSelector": {
                    "FragmentSelectorType": "PRODUCER_TIMESTAMP",
                    "TimestampRange": {"StartTimestamp": first, "EndTimestamp": first + 10.0}
                }
            }),
        )
        .await;
        let master = get(&server, &url).await.text();
        assert_eq!(
            master.contains("#EXT-X-MEDIA:TYPE=AUDIO"),
            container == "FRAGMENTED_MP4",
            "{master}"
        );
        assert!(master.contains("mp4a.40.2"), "{master}");
        let (out, err) = tool(
            "ffprobe",
            [
                "-v",
                "error",
                "-allowed_extensions",
                "ALL",
                "-show_entries",
                "packet=stream_index,pts",
                "-of",
                "csv=p=0",
                &url,
            ]
            .map(String::from)
            .to_vec(),
        )
        .await;
        assert!(err.is_empty(), "ffprobe: {err}");
        // ffmpeg orders the streams as it meets them (the audio rendition may come first).
        let mut per_stream = std::collections::BTreeMap::<String, usize>::new();
        for l in out.lines().filter(|l| !l.is_empty()) {
            *per_stream
                .entry(l.split(',').next().unwrap().to_owned())
                .or_default() += 1;
        }
        let mut counts: Vec<usize> = per_stream.into_values().collect();
        counts.sort_unstable();
        assert_eq!(counts.len(), 2, "{container}: video and audio: {out}");
        assert_eq!(counts[0], 100, "every video frame");
        assert!(counts[1] > 150, "4 s of 1024-sample AAC frames: {counts:?}");
    }
}

/// A clip over the limits is capped, as KVS caps it ("100 MB or 200 fragments, whichever comes
/// first"): here at 3 fragments, then at the byte limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clips_over_the_limit_are_capped() {
    for (limits, fragments) in [
        (
            vigil_api_playback::clip::ClipLimits {
                max_fragments: 3,
                ..Default::default()
            },
            3,
        ),
        (
            vigil_api_playback::clip::ClipLimits {
                // Room for the first two fragments only.
                max_bytes: {
                    let c = &ffmpeg_h264().1.clusters;
                    (c[0].bytes.len() + c[1].bytes.len() + c[2].bytes.len() / 2) as u64
                },
                ..Default::default()
            },
            2,
        ),
    ] {
        let cfg = vigil_server::ServerConfig {
            playback: vigil_api_playback::PlaybackConfig {
                clip_limits: limits,
                ..Default::default()
            },
            ..Default::default()
        };
        let server =
            TestServer::start_with(cfg, std::sync::Arc::new(vigil_server::Anonymous)).await;
        let ids = stream(&server, "capped", 24).await;
        let clusters = &ffmpeg_h264().1.clusters;
        for c in clusters {
            put(&server, ids, c).await;
        }
        let (start, end) = media_range();
        let r = server
            .post(
                "/getClip",
                &json!({"StreamName": "capped", "ClipFragmentSelector": {
                    "FragmentSelectorType": "PRODUCER_TIMESTAMP",
                    "TimestampRange": {"StartTimestamp": start, "EndTimestamp": end}}}),
            )
            .await;
        assert_eq!(r.status, 200);
        let path = std::env::temp_dir().join(format!(
            "vigil-capped-{}-{fragments}.mp4",
            std::process::id()
        ));
        std::fs::write(&path, &r.body).unwrap();
        let (out, _) = tool(
            "ffprobe",
            vec![
                "-v".into(),
                "error".into(),
                "-count_packets".into(),
                "-show_entries".into(),
                "stream=nb_read_packets".into(),
                "-of".into(),
                "csv=p=0".into(),
                path.to_str().unwrap().into(),
            ],
        )
        .await;
        let _ = std::fs::remove_file(&path);
        let want: usize = clusters
            .iter()
            .take(fragments)
            .map(|c| c.frames.len())
            .sum();
        assert_eq!(
            out.trim().parse::<usize>().unwrap(),
            want,
            "{fragments} fragments"
        );
    }
}

/// GetClip, GetImages, GetMedia and GetMediaForFragmentList over their caps are refused at
/// once with `ClientLimitExceededException` (400), counted in
/// `vigil_heavy_reads_refused_total`; within them they are served. (The counting itself, per
/// key and in all, and the release of a place when a call ends, are
/// `vigil_api_kvs_common::budget`'s unit tests.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_reads_over_their_caps_are_refused() {
    use vigil_api_playback::heavy::HeavyLimits;
    let cfg = vigil_server::ServerConfig {
        playback: vigil_api_playback::PlaybackConfig {
            clip_calls: HeavyLimits {
                per_key: 0,
                total: 4,
                wait: std::time::Duration::ZERO,
            },
            image_calls: HeavyLimits {
                per_key: 4,
                total: 0,
                wait: std::time::Duration::from_millis(100),
            },
            fragment_list_calls: HeavyLimits {
                per_key: 0,
                total: 10,
                wait: std::time::Duration::ZERO,
            },
            segment_calls: HeavyLimits {
                per_key: 0,
                total: 10,
                wait: std::time::Duration::ZERO,
            },
            ..Default::default()
        },
        get_media: Some(HeavyLimits {
            per_key: 10,
            total: 0,
            wait: std::time::Duration::ZERO,
        }),
        ..Default::default()
    };
    let server = TestServer::start_with(cfg, std::sync::Arc::new(vigil_server::Anonymous)).await;
    let ids = stream(&server, "heavy", 24).await;
    for c in &ffmpeg_h264().1.clusters {
        put(&server, ids, c).await;
    }
    let (start, end) = media_range();
    let r = server
        .post(
            "/getClip",
            &json!({"StreamName": "heavy", "ClipFragmentSelector": {
                "FragmentSelectorType": "PRODUCER_TIMESTAMP",
                "TimestampRange": {"StartTimestamp": start, "EndTimestamp": end}}}),
        )
        .await;
    r.assert_error(400, "ClientLimitExceededException");
    assert!(r.text().contains("per access key"), "{}", r.text());
    let r = server
        .post(
            "/getImages",
            &json!({"StreamName": "heavy", "ImageSelectorType": "PRODUCER_TIMESTAMP",
                "StartTimestamp": start, "EndTimestamp": end, "Format": "JPEG"}),
        )
        .await;
    r.assert_error(400, "ClientLimitExceededException");
    assert!(r.text().contains("in all"), "{}", r.text());
    let r = server
        .post(
            "/getMedia",
            &json!({"StreamName": "heavy", "StartSelector": {"StartSelectorType": "EARLIEST"}}),
        )
        .await;
    r.assert_error(400, "ClientLimitExceededException");
    let first = server.state.store.list_fragments(
        ids.0,
        vigil_store::TimestampKind::Server,
        0,
        u64::MAX,
        None,
        1,
    );
    let number = vigil_api_kvs_common::model::fragment_number(first.unwrap().fragments[0].number);
    let r = server
        .post(
            "/getMediaForFragmentList",
            &json!({"StreamName": "heavy", "Fragments": [number]}),
        )
        .await;
    r.assert_error(400, "ClientLimitExceededException");
    assert!(r.text().contains("per access key"), "{}", r.text());
    // A playback segment, whose budget is per client address (the session's calls are not).
    let url = session_url(
        &server,
        &json!({"StreamName": "heavy", "PlaybackMode": "ON_DEMAND",
            "ContainerFormat": "FRAGMENTED_MP4", "HLSFragmentSelector": {
                "FragmentSelectorType": "PRODUCER_TIMESTAMP",
                "TimestampRange": {"StartTimestamp": start, "EndTimestamp": end}}}),
    )
    .await;
    assert_eq!(get(&server, &url).await.status, 200);
    let token = url.split("SessionToken=").nth(1).unwrap();
    let r = get(
        &server,
        &format!(
            "/hls/v1/getMP4MediaFragment.mp4?SessionToken={token}&TrackNumber=1&FragmentNumber={number}"
        ),
    )
    .await;
    r.assert_error(400, "ClientLimitExceededException");
    let metrics = server
        .raw(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .text();
    for line in [
        "vigil_heavy_reads_refused_total{operation=\"GetClip\",limit=\"key\"}",
        "vigil_heavy_reads_refused_total{operation=\"GetImages\",limit=\"total\"}",
        "vigil_heavy_reads_refused_total{operation=\"GetMedia\",limit=\"total\"}",
        "vigil_heavy_reads_refused_total{operation=\"GetMediaForFragmentList\",limit=\"key\"}",
        "vigil_heavy_reads_refused_total{operation=\"PlaybackSegment\",limit=\"key\"}",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }

    // Within the caps (the defaults), both are served.
    let server = TestServer::start().await;
    let ids = stream(&server, "heavy", 24).await;
    for c in &ffmpeg_h264().1.clusters {
        put(&server, ids, c).await;
    }
    let r = server
        .post(
            "/getClip",
            &json!({"StreamName": "heavy", "ClipFragmentSelector": {
                "FragmentSelectorType": "PRODUCER_TIMESTAMP",
                "TimestampRange": {"StartTimestamp": start, "EndTimestamp": end}}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-length").map(str::to_owned),
        Some(r.body.len().to_string())
    );
}
