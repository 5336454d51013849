//! Responses streamed from fragments larger than a stored chunk (64 KiB): HLS fMP4 and TS
//! segments, DASH segments, GetClip, GetMediaForFragmentList and GetMedia are read from the
//! store a chunk at a time (two passes for the packaged ones), and must be byte for byte what
//! packaging the whole fragment in memory gives (`vigil_media`'s whole-input functions).

use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use vigil_api_kvs_common::model::fragment_number;
use vigil_media::sample::from_fragments;
use vigil_store::StreamRef;

use crate::common::{Media, TestServer, split_mkv};

/// Two seconds of 1280x720 H.264 at a high quality: Clusters of hundreds of KB, so each
/// fragment is many stored chunks. Made once per test process.
fn large_media() -> &'static Media {
    static MEDIA: std::sync::OnceLock<Media> = std::sync::OnceLock::new();
    MEDIA.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("large.mkv");
        let out = std::process::Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-f", "lavfi", "-i"])
            .arg("testsrc2=size=1280x720:rate=25,noise=alls=40:allf=t")
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .args([
                "-t", "2", "-c:v", "libx264", "-g", "25", "-bf", "2", "-crf", "8",
            ])
            .args(["-c:a", "aac", "-b:a", "64k", "-threads", "1"])
            .args(["-flags", "+bitexact", "-fflags", "+bitexact"])
            .args(["-output_ts_offset", "1700000000", "-f", "matroska", "-y"])
            .arg(&path)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run ffmpeg ({e}); run scripts/install-test-deps.sh to install it")
            });
        assert!(
            out.status.success(),
            "ffmpeg failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let media = split_mkv(&std::fs::read(&path).unwrap());
        assert!(media.clusters.len() >= 2);
        for c in &media.clusters {
            assert!(
                c.bytes.len() > 4 * 65536,
                "a Cluster of {} bytes",
                c.bytes.len()
            );
        }
        media
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_fragments_stream_exactly_what_whole_packaging_gives() {
    let server = TestServer::start().await;
    let media = large_media();
    server.create_stream("large", 24).await;
    let store = &server.state.store;
    let id = store.stream(StreamRef::Name("large")).unwrap().id;
    let header_id = store.register_header(id, &media.header).unwrap();
    let mut metas = Vec::new();
    for c in &media.clusters {
        let mut w = store.begin_fragment(id, header_id, c.timecode_ms).unwrap();
        w.append(c.bytes.clone()).unwrap();
        metas.push(w.finish(c.duration_ms).unwrap().wait().await.unwrap());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let payloads: Vec<Bytes> = media.clusters.iter().map(|c| c.bytes.clone()).collect();
    let first = &metas[0];
    let number = fragment_number(first.number);

    // HLS: a session, then its segments for the first fragment.
    let start = media.clusters[0].timecode_ms as f64 / 1000.0;
    let end = start + 10.0;
    let selector = json!({
        "FragmentSelectorType": "PRODUCER_TIMESTAMP",
        "TimestampRange": {"StartTimestamp": start, "EndTimestamp": end}
    });
    let whole = from_fragments(&media.header, &payloads[..1]).unwrap();
    let (tracks, samples) = (&whole.0, &whole.1);
    for container in ["FRAGMENTED_MP4", "MPEG_TS"] {
        let r = server
            .post(
                "/getHLSStreamingSessionURL",
                &json!({"StreamName": "large", "PlaybackMode": "ON_DEMAND",
                        "ContainerFormat": container, "HLSFragmentSelector": selector}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let url = r.json()["HLSStreamingSessionURL"]
            .as_str()
            .unwrap()
            .to_owned();
        let token = url.split("SessionToken=").nth(1).unwrap().to_owned();
        if container == "FRAGMENTED_MP4" {
            for (track, t) in tracks.iter().enumerate() {
                let r = get(
                    &server,
                    &format!(
                        "/hls/v1/getMP4MediaFragment.mp4?SessionToken={token}&TrackNumber={}&FragmentNumber={number}",
                        track + 1
                    ),
                )
                .await;
                assert_eq!(r.status, 200, "{}", r.text());
                let own: Vec<_> = samples
                    .iter()
                    .filter(|s| s.track == t.number)
                    .cloned()
                    .collect();
                let want = vigil_media::fmp4::media_segment(
                    u32::try_from(first.number % (1 << 32)).unwrap().max(1),
                    std::slice::from_ref(t),
                    &own,
                )
                .unwrap();
                assert_eq!(r.header("content-length"), Some(&*want.len().to_string()));
                assert!(r.body == want, "fMP4 segment of track {}", track + 1);
            }
        } else {
            let r = get(
                &server,
                &format!("/hls/v1/getTSFragment.ts?SessionToken={token}&FragmentNumber={number}"),
            )
            .await;
            assert_eq!(r.status, 200, "{}", r.text());
            let want =
                vigil_media::ts::segment(tracks, samples, &mut vigil_media::ts::Continuity::new())
                    .unwrap();
            assert!(r.body == want, "TS segment");
        }
    }

    // GetClip over both fragments.
    let r = server
        .post(
            "/getClip",
            &json!({"StreamName": "large", "ClipFragmentSelector": selector}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (all_tracks, all_samples) = from_fragments(&media.header, &payloads).unwrap();
    let want = vigil_media::mp4::clip(&all_tracks, &all_samples).unwrap();
    assert_eq!(r.header("content-length"), Some(&*want.len().to_string()));
    assert!(r.body == want, "clip");

    // GetMediaForFragmentList and GetMedia carry each payload whole, in order.
    let list: Vec<String> = metas.iter().map(|m| fragment_number(m.number)).collect();
    let r = server
        .post(
            "/getMediaForFragmentList",
            &json!({"StreamName": "large", "Fragments": list}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_payloads_in_order(&r.body, &payloads);
    let mut r = server
        .open(
            "/getMedia",
            &json!({"StreamName": "large", "StartSelector": {"StartSelectorType": "EARLIEST"}}),
        )
        .await;
    assert_eq!(r.status, 200);
    let want: usize = payloads.iter().map(Bytes::len).sum();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while r.body.len() < want + 2048 && tokio::time::Instant::now() < deadline {
        r.read_some(Duration::from_secs(1)).await;
    }
    eprintln!("GetMedia body {} bytes, payloads {want}", r.body.len());
    assert_payloads_in_order(&r.body, &payloads);
}

async fn get(server: &TestServer, path: &str) -> crate::common::Response {
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        server.addr
    );
    server.raw(req.as_bytes()).await
}

fn assert_payloads_in_order(body: &[u8], payloads: &[Bytes]) {
    let mut at = 0;
    for (i, p) in payloads.iter().enumerate() {
        let found = body[at..]
            .windows(p.len())
            .position(|w| w == &p[..])
            .unwrap_or_else(|| panic!("payload {i} is not in the body whole"));
        at += found + p.len();
    }
}
