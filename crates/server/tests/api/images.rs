//! GetImages over the ffmpeg media, checked against ffmpeg's own decode of the same frames.
//!
//! Fragments are written straight into the store as PutMedia stores them (see getmedia.rs).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use vigil_store::{FragmentMeta, StreamRef};

use crate::common::{Cluster, Media, Response, TestServer, ffmpeg_h264, split_mkv};

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

/// A server with the whole ffmpeg media in stream `name`.
async fn server_with_media(name: &str) -> (TestServer, Vec<FragmentMeta>) {
    let server = TestServer::start().await;
    let ids = stream(&server, name, 24).await;
    let mut metas = Vec::new();
    for c in &ffmpeg_h264().1.clusters {
        metas.push(put(&server, ids, c).await);
    }
    (server, metas)
}

/// The first Cluster's time (ms).
fn t0() -> u64 {
    ffmpeg_h264().1.clusters[0].timecode_ms
}

fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

async fn get_images(server: &TestServer, body: Value) -> Response {
    server.post("/getImages", &body).await
}

fn images(r: &Response) -> Vec<Value> {
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["Images"].as_array().unwrap().clone()
}

fn content(image: &Value) -> Vec<u8> {
    let b64 = image["ImageContent"]
        .as_str()
        .unwrap_or_else(|| panic!("no ImageContent: {image}"));
    BASE64.decode(b64).unwrap()
}

/// Width and height from a PNG's IHDR.
fn png_size(b: &[u8]) -> (u32, u32) {
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(&b[12..16], b"IHDR");
    (
        u32::from_be_bytes(b[16..20].try_into().unwrap()),
        u32::from_be_bytes(b[20..24].try_into().unwrap()),
    )
}

/// Width and height from a JPEG's SOF.
fn jpeg_size(b: &[u8]) -> (u32, u32) {
    assert_eq!(&b[..2], [0xff, 0xd8]);
    let mut i = 2;
    while i + 9 < b.len() {
        assert_eq!(b[i], 0xff);
        let marker = b[i + 1];
        let len = u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize;
        if (0xc0..=0xc2).contains(&marker) {
            let h = u16::from_be_bytes([b[i + 5], b[i + 6]]);
            let w = u16::from_be_bytes([b[i + 7], b[i + 8]]);
            return (u32::from(w), u32::from(h));
        }
        i += 2 + len;
    }
    panic!("no SOF in the JPEG");
}

/// ffmpeg's rgb24 decode of `input` (its `n`-th frame where given).
fn ffmpeg_rgb(input: &[u8], ext: &str, frame: Option<usize>) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("in.{ext}"));
    std::fs::write(&path, input).unwrap();
    let mut cmd = std::process::Command::new("ffmpeg");
    cmd.args(["-nostdin", "-v", "error", "-i"]).arg(&path);
    if let Some(n) = frame {
        cmd.args([
            "-vf",
            &format!("select=eq(n\\,{n})"),
            "-fps_mode",
            "passthrough",
        ]);
    }
    let out = cmd
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mse = a
        .iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    if mse == 0.0 {
        return f64::INFINITY;
    }
    10.0 * (255.0f64 * 255.0 / mse).log10()
}

/// The index (in presentation order) of the frame shown at `ms`.
fn frame_at(ms: u64) -> usize {
    frame_in(&ffmpeg_h264().1, ms)
}

/// The index (in presentation order) of the frame of `media` shown at `ms`.
fn frame_in(media: &Media, ms: u64) -> usize {
    let mut times: Vec<i64> = media
        .clusters
        .iter()
        .flat_map(|c| c.frames.iter().map(|f| f.0))
        .collect();
    times.sort_unstable();
    times.iter().filter(|t| **t <= ms as i64).count() - 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn png_matches_ffmpeg_decode() {
    let (server, _) = server_with_media("png").await;
    // Every 1.37 s from 0.5 s: a sample time between frames, in several fragments.
    let start = t0() + 500;
    let r = get_images(
        &server,
        json!({"StreamName": "png", "ImageSelectorType": "PRODUCER_TIMESTAMP",
               "StartTimestamp": secs(start), "EndTimestamp": secs(start + 5000),
               "SamplingInterval": 1370, "Format": "PNG"}),
    )
    .await;
    let imgs = images(&r);
    assert_eq!(imgs.len(), 4, "{imgs:?}");
    assert!(r.json().get("NextToken").is_none());
    let mut worst = f64::INFINITY;
    for (k, img) in imgs.iter().enumerate() {
        let t = start + 1370 * k as u64;
        assert_eq!(img["TimeStamp"].as_f64().unwrap(), secs(t));
        assert!(img.get("Error").is_none(), "{img}");
        let png = content(img);
        assert_eq!(png_size(&png), (320, 240));
        let ours = ffmpeg_rgb(&png, "png", None);
        let theirs = ffmpeg_rgb(&ffmpeg_h264().0, "mkv", Some(frame_at(t)));
        let p = psnr(&ours, &theirs);
        // The neighbouring frame must match worse: the right frame was picked.
        let other = ffmpeg_rgb(&ffmpeg_h264().0, "mkv", Some(frame_at(t) + 1));
        assert!(
            psnr(&ours, &other) < p,
            "frame {} is not the best match",
            frame_at(t)
        );
        eprintln!("PNG at {t}: frame {} PSNR {p:.2} dB", frame_at(t));
        worst = worst.min(p);
    }
    assert!(worst >= 40.0, "PNG PSNR {worst:.2} dB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jpeg_quality_and_sizes() {
    let (server, _) = server_with_media("jpeg").await;
    let t = t0() + 3210;
    let body = |extra: Value| {
        let mut b = json!({"StreamName": "jpeg", "ImageSelectorType": "PRODUCER_TIMESTAMP",
               "StartTimestamp": secs(t), "EndTimestamp": secs(t),
               "SamplingInterval": 200, "Format": "JPEG"});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    // Native size, default quality.
    let imgs = images(&get_images(&server, body(json!({}))).await);
    assert_eq!(imgs.len(), 1);
    let jpg = content(&imgs[0]);
    assert_eq!(jpeg_size(&jpg), (320, 240));
    let theirs = ffmpeg_rgb(&ffmpeg_h264().0, "mkv", Some(frame_at(t)));
    let p = psnr(&ffmpeg_rgb(&jpg, "jpg", None), &theirs);
    eprintln!("JPEG q80 PSNR {p:.2} dB");
    assert!(p >= 30.0, "JPEG PSNR {p:.2} dB");
    // Quality changes the size.
    let q = |n: &str| json!({"FormatConfig": {"JPEGQuality": n}});
    let small = content(&images(&get_images(&server, body(q("10"))).await)[0]);
    let big = content(&images(&get_images(&server, body(q("100"))).await)[0]);
    assert!(small.len() < jpg.len() && jpg.len() < big.len());
    let p100 = psnr(&ffmpeg_rgb(&big, "jpg", None), &theirs);
    eprintln!("JPEG q100 PSNR {p100:.2} dB");
    // Width alone keeps the aspect ratio; both stretch; height alone too.
    for (extra, size) in [
        (json!({"WidthPixels": 160}), (160, 120)),
        (json!({"HeightPixels": 60}), (80, 60)),
        (json!({"WidthPixels": 100, "HeightPixels": 50}), (100, 50)),
        (json!({"WidthPixels": 640, "HeightPixels": 480}), (640, 480)),
    ] {
        let img = content(&images(&get_images(&server, body(extra.clone())).await)[0]);
        assert_eq!(jpeg_size(&img), size, "{extra}");
        let rgb = ffmpeg_rgb(&img, "jpg", None);
        assert_eq!(rgb.len() as u32, size.0 * size.1 * 3);
    }
    // PNG resized.
    let mut b = body(json!({"WidthPixels": 33, "HeightPixels": 17}));
    b["Format"] = json!("PNG");
    let png = content(&images(&get_images(&server, b).await)[0]);
    assert_eq!(png_size(&png), (33, 17));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_media_outside_fragments_and_server_timestamps() {
    let (server, _) = server_with_media("nomedia").await;
    let last = ffmpeg_h264().1.clusters.last().unwrap();
    let end_of_media = last.timecode_ms + u64::from(last.duration_ms);
    // From 2 s before the media to 1 s into it.
    let r = get_images(
        &server,
        json!({"StreamName": "nomedia", "ImageSelectorType": "PRODUCER_TIMESTAMP",
               "StartTimestamp": secs(t0() - 2000), "EndTimestamp": secs(t0() + 1000),
               "SamplingInterval": 1000, "Format": "JPEG"}),
    )
    .await;
    let imgs = images(&r);
    let errors: Vec<&str> = imgs
        .iter()
        .map(|i| i["Error"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(errors, ["NO_MEDIA", "NO_MEDIA", "-", "-"]);
    assert!(imgs[0].get("ImageContent").is_none());
    assert_eq!(imgs[0]["TimeStamp"].as_f64().unwrap(), secs(t0() - 2000));
    // After the end.
    let r = get_images(
        &server,
        json!({"StreamName": "nomedia", "ImageSelectorType": "PRODUCER_TIMESTAMP",
               "StartTimestamp": secs(end_of_media + 500), "EndTimestamp": secs(end_of_media + 900),
               "SamplingInterval": 1000, "Format": "PNG"}),
    )
    .await;
    let imgs = images(&r);
    assert_eq!(
        imgs.len(),
        1,
        "a range shorter than the interval: StartTimestamp alone"
    );
    assert_eq!(imgs[0]["Error"], "NO_MEDIA");
    // By server timestamp: 0.5 s into the third fragment's arrival (alone in its stream:
    // the test writes fragments faster than real time, so their server ranges overlap).
    let ids = stream(&server, "srv", 24).await;
    let meta = put(&server, ids, &ffmpeg_h264().1.clusters[2]).await;
    let st = meta.server_ts_ms + 500;
    let r = get_images(
        &server,
        json!({"StreamName": "srv", "ImageSelectorType": "SERVER_TIMESTAMP",
               "StartTimestamp": secs(st), "EndTimestamp": secs(st),
               "Format": "PNG"}),
    )
    .await;
    let img = &images(&r)[0];
    let ours = ffmpeg_rgb(&content(img), "png", None);
    let frame = frame_at(meta.producer_ts_ms + 500);
    let theirs = ffmpeg_rgb(&ffmpeg_h264().0, "mkv", Some(frame));
    assert!(psnr(&ours, &theirs) >= 40.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages() {
    let (server, _) = server_with_media("pages").await;
    // 0 to 9 s every 200 ms: 46 sample times.
    let body = |max: Option<u64>, token: Option<&str>| {
        let mut b = json!({"StreamName": "pages", "ImageSelectorType": "PRODUCER_TIMESTAMP",
               "StartTimestamp": secs(t0()), "EndTimestamp": secs(t0() + 9000),
               "SamplingInterval": 200, "Format": "JPEG", "WidthPixels": 32});
        if let Some(m) = max {
            b["MaxResults"] = json!(m);
        }
        if let Some(t) = token {
            b["NextToken"] = json!(t);
        }
        b
    };
    for (max, sizes) in [
        (Some(10), vec![10, 10, 10, 10, 6]),
        (Some(100), vec![25, 21]),
        (None, vec![25, 21]),
        (Some(46), vec![25, 21]),
        (Some(23), vec![23, 23]),
    ] {
        let mut token: Option<String> = None;
        let mut got = Vec::new();
        let mut times = Vec::new();
        loop {
            let r = get_images(&server, body(max, token.as_deref())).await;
            let imgs = images(&r);
            got.push(imgs.len());
            for i in &imgs {
                assert!(i.get("Error").is_none(), "{i}");
                times.push(i["TimeStamp"].as_f64().unwrap());
            }
            match r.json()["NextToken"].as_str() {
                Some(t) => token = Some(t.to_owned()),
                None => break,
            }
        }
        assert_eq!(got, sizes, "MaxResults {max:?}");
        let want: Vec<f64> = (0..46).map(|k| secs(t0() + 200 * k)).collect();
        assert_eq!(times, want);
    }
    // A token from another stream is refused.
    stream(&server, "pages2", 24).await;
    let r = get_images(&server, body(Some(10), None)).await;
    let token = r.json()["NextToken"].as_str().unwrap().to_owned();
    let mut b = body(Some(10), Some(&token));
    b["StreamName"] = json!("pages2");
    get_images(&server, b)
        .await
        .assert_error(400, "InvalidArgumentException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_requests() {
    let server = TestServer::start().await;
    stream(&server, "inv", 24).await;
    stream(&server, "noret", 0).await;
    let base = json!({"StreamName": "inv", "ImageSelectorType": "PRODUCER_TIMESTAMP",
               "StartTimestamp": secs(t0()), "EndTimestamp": secs(t0() + 1000),
               "SamplingInterval": 500, "Format": "JPEG"});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        if v.is_null() {
            b.as_object_mut().unwrap().remove(k);
        } else {
            b[k] = v;
        }
        b
    };
    // Fine as it is (no media: NO_MEDIA entries).
    let imgs = images(&get_images(&server, base.clone()).await);
    assert_eq!(imgs.len(), 3);
    for bad in [
        with("EndTimestamp", json!(secs(t0() + 300_001))),
        with("EndTimestamp", json!(secs(t0() - 1))),
        with("EndTimestamp", Value::Null),
        with("ImageSelectorType", json!("NOW")),
        with("SamplingInterval", json!(199)),
        with("Format", json!("GIF")),
        with("Format", Value::Null),
        with("FormatConfig", json!({"JPEGQuality": "0"})),
        with("FormatConfig", json!({"JPEGQuality": "101"})),
        with("FormatConfig", json!({"Quality": "50"})),
        with("WidthPixels", json!(0)),
        with("WidthPixels", json!(3841)),
        with("HeightPixels", json!(2161)),
        with("MaxResults", json!(0)),
        with("MaxResults", json!(101)),
        with("NextToken", json!("bm90IGEgdG9rZW4=")),
    ] {
        get_images(&server, bad.clone())
            .await
            .assert_error(400, "InvalidArgumentException");
    }
    // Exactly 300 s is fine.
    let imgs = images(
        &get_images(
            &server,
            with("EndTimestamp", json!(secs(t0() + 300_000)))
                .as_object()
                .map(|o| {
                    let mut o = o.clone();
                    o.insert("SamplingInterval".into(), json!(60_000));
                    Value::Object(o)
                })
                .unwrap(),
        )
        .await,
    );
    assert_eq!(imgs.len(), 6);
    let mut b = base.clone();
    b["StreamName"] = json!("noret");
    get_images(&server, b)
        .await
        .assert_error(400, "NoDataRetentionException");
    let mut b = base.clone();
    b["StreamName"] = json!("missing");
    get_images(&server, b)
        .await
        .assert_error(404, "ResourceNotFoundException");
}

/// B-frames: pictures come out of the decoder reordered; each image must still be the frame
/// shown at its time (OpenH264's flush-after-each-decode default would lose some). OpenH264's
/// B-slice decoding is not bit-exact with ffmpeg's (cisco/openh264#3269: deblocking strengths
/// of some B macroblocks): 33–48 dB here against 48 dB for I/P-only streams, so the bar is
/// JPEG's, and each image must match its own frame far better than the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_frames() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.mkv");
    let out = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=176x144:rate=25")
        .args([
            "-t", "3", "-c:v", "libx264", "-g", "25", "-bf", "3", "-crf", "30",
        ])
        .args([
            "-threads",
            "1",
            "-flags",
            "+bitexact",
            "-fflags",
            "+bitexact",
        ])
        .args(["-output_ts_offset", "1700000000", "-f", "matroska", "-y"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let data = std::fs::read(&path).unwrap();
    let media = split_mkv(&data);
    assert_eq!(media.clusters.len(), 3);
    let server = TestServer::start().await;
    server.create_stream("bf", 24).await;
    let store = &server.state.store;
    let id = store.stream(StreamRef::Name("bf")).unwrap().id;
    let header_id = store.register_header(id, &media.header).unwrap();
    for c in &media.clusters {
        put(&server, (id, header_id), c).await;
    }
    let start = media.clusters[0].timecode_ms;
    // Every 200 ms plus 10 ms: frames at all positions of the GOPs' reordering.
    let r = get_images(
        &server,
        json!({"StreamName": "bf", "ImageSelectorType": "PRODUCER_TIMESTAMP",
               "StartTimestamp": secs(start + 10), "EndTimestamp": secs(start + 2990),
               "SamplingInterval": 200, "Format": "PNG"}),
    )
    .await;
    let imgs = images(&r);
    assert_eq!(imgs.len(), 15);
    let mut worst = f64::INFINITY;
    for (k, img) in imgs.iter().enumerate() {
        let t = start + 10 + 200 * k as u64;
        let ours = ffmpeg_rgb(&content(img), "png", None);
        let n = frame_in(&media, t);
        let theirs = ffmpeg_rgb(&data, "mkv", Some(n));
        let p = psnr(&ours, &theirs);
        let next = psnr(&ours, &ffmpeg_rgb(&data, "mkv", Some(n + 1)));
        assert!(
            next < p,
            "image {k} at {t}: frame {n} is not the best match"
        );
        worst = worst.min(p);
    }
    eprintln!("B-frames PNG worst PSNR {worst:.2} dB");
    assert!(worst >= 30.0, "PSNR {worst:.2} dB");
}

/// H.265: without the `ffmpeg` feature there is no decoder and each image is `MEDIA_ERROR`;
/// with it, the images are libavcodec's pictures of the right frames (PSNR against ffmpeg's
/// decode of the same frames).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h265_images() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h265.mkv");
    let out = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=176x144:rate=25")
        .args([
            "-t",
            "1",
            "-c:v",
            "libx265",
            "-x265-params",
            "log-level=none",
        ])
        .args(["-output_ts_offset", "1700000000", "-f", "matroska", "-y"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mkv = std::fs::read(&path).unwrap();
    let media = split_mkv(&mkv);
    let server = TestServer::start().await;
    server.create_stream("hevc", 24).await;
    let store = &server.state.store;
    let id = store.stream(StreamRef::Name("hevc")).unwrap().id;
    let header_id = store.register_header(id, &media.header).unwrap();
    for c in &media.clusters {
        put(&server, (id, header_id), c).await;
    }
    let start = media.clusters[0].timecode_ms;
    let r = get_images(
        &server,
        json!({"StreamName": "hevc", "ImageSelectorType": "PRODUCER_TIMESTAMP",
               "StartTimestamp": secs(start + 100), "EndTimestamp": secs(start + 500),
               "SamplingInterval": 200, "Format": "PNG"}),
    )
    .await;
    let imgs = images(&r);
    assert_eq!(imgs.len(), 3);
    if cfg!(feature = "ffmpeg") {
        for (k, img) in imgs.iter().enumerate() {
            assert!(img.get("Error").is_none(), "{img}");
            let png = content(img);
            assert_eq!(png_size(&png), (176, 144));
            // 100, 300 and 500 ms in: frames 2, 7 and 12 at 25 fps.
            let n = (100 + 200 * k) / 40;
            let ours = ffmpeg_rgb(&png, "png", None);
            let p = psnr(&ours, &ffmpeg_rgb(&mkv, "mkv", Some(n)));
            let other = psnr(&ours, &ffmpeg_rgb(&mkv, "mkv", Some(n + 1)));
            eprintln!("H.265 frame {n}: PSNR {p:.2} dB (next frame {other:.2} dB)");
            assert!(
                p >= 40.0 && other < p,
                "frame {n}: {p:.2} dB, next {other:.2} dB"
            );
        }
    } else {
        for i in &imgs {
            assert_eq!(i["Error"], "MEDIA_ERROR", "{i}");
            assert!(i.get("ImageContent").is_none());
        }
    }
}
