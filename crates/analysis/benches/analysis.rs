//! Live face analysis, end to end and stage by stage (`bench/run analysis`; bench/README.md).
//!
//! The input: 1280x720 at 25 fps, H.264 at 3 Mbit/s, a key frame a second, no B-frames, made
//! with ffmpeg from real photos of `crates/faces/testdata` (Obama from 1 s to 9 s, Biden from
//! 10 s to 19 s, sliding across a noisy background) and cached under `$TMPDIR/vigil-bench`.
//!
//! 1. **Stages, one core**: every frame decoded with the default build's decoder
//!    (`vigil_video::FrameDecoder`), against ffmpeg's command line decoding the same file on one
//!    thread (`-threads 1 -f null`) in the same run; then, at 5 frames a second, YUV to RGB,
//!    detection, one embedding and one search of a collection of 1,000 faces.
//! 2. **Three cameras**: three streams written to a real store in real time, frame by frame as
//!    a producer sends them, each analysed by a stream processor (the real `Analysis`) at
//!    5 frames a second; how far behind its arrival each result is, and what was skipped.
//!
//! Quick mode (`--quick`, and `cargo test`) runs 4 s of video instead of 20.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "../../../bench/support.rs"]
#[allow(dead_code)]
mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use image::RgbImage;
use support::{Row, Run, generate, loadavg, summary};
use vigil_analysis::model::{FrameResult, OutputFormat, PROCESSOR_RECORD_VERSION};
use vigil_analysis::{Analysis, AnalysisConfig, Collections, ProcessorRecord, Status};
use vigil_datastreams::{DataStreams, Limits, NewStream, StreamMode};
use vigil_faces::index::{FaceIndex, IndexConfig};
use vigil_store::{Store, StoreConfig, SystemClock};
use vigil_video::{FrameDecoder, VideoCodec};

/// Bump when the ffmpeg command changes, so a stale cached input is not reused.
const INPUT_VERSION: u32 = 1;
const FPS: u64 = 25;
const CAMERAS: usize = 3;

fn testdata(name: &str) -> String {
    format!("{}/../faces/testdata/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The cached input (`secs` long).
fn input(secs: u32) -> PathBuf {
    let dir = std::env::temp_dir().join("vigil-bench");
    let name = format!("analysis-720p25-{secs}s-{INPUT_VERSION}.mkv");
    let path = dir.join(&name);
    if !path.exists() {
        let s = secs as f32 / 20.0;
        let filter = format!(
            "[0]noise=alls=8:allf=t[bg];[1]scale=-2:700,setsar=1[a];\
             [2]crop=iw:ih*0.5:0:0,scale=-2:700,setsar=1[b];\
             [bg][a]overlay=x='100+(t-{a0})*{va}':y=10:enable='between(t,{a0},{a1})'[v1];\
             [v1][b]overlay=x='700-(t-{b0})*{vb}':y=10:enable='between(t,{b0},{b1})',format=yuv420p[v]",
            a0 = 1.0 * s,
            a1 = 9.0 * s,
            va = 40.0 / s,
            b0 = 10.0 * s,
            b1 = 19.0 * s,
            vb = 30.0 / s,
        );
        let args: Vec<String> = [
            "-f",
            "lavfi",
            "-i",
            &format!("color=c=0x506070:s=1280x720:r={FPS}:d={secs}"),
            "-loop",
            "1",
            "-i",
            &testdata("obama2.jpg"),
            "-loop",
            "1",
            "-i",
            &testdata("biden.jpg"),
            "-filter_complex",
            &filter,
            "-map",
            "[v]",
            "-t",
            &secs.to_string(),
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
            "-threads",
            "1",
            "-output_ts_offset",
            "1700000000",
        ]
        .map(String::from)
        .to_vec();
        generate(&path, &name, &args);
    }
    path
}

/// One Cluster: its bytes, where its header and each frame end, and its timecode (ms).
struct Cluster {
    bytes: Bytes,
    ends: Vec<usize>,
    timecode_ms: u64,
}

struct Input {
    header: Vec<u8>,
    clusters: Vec<Cluster>,
    avcc: Vec<u8>,
    /// Every frame: data, key frame, presentation time (ms).
    frames: Vec<(Bytes, bool, i64)>,
}

fn load(path: &PathBuf) -> Input {
    let data = std::fs::read(path).unwrap();
    let stored = support::split_mkv(&data);
    let mut clusters = Vec::new();
    let mut frames = Vec::new();
    let mut avcc = Vec::new();
    let (mut start, mut timecode, mut ends) = (0u64, 0u64, Vec::new());
    for e in vigil_mkv::Demuxer::read_all(&data).unwrap() {
        match e {
            vigil_mkv::Event::Tracks { tracks, .. } => {
                avcc = tracks[0].codec_private.clone().unwrap().to_vec();
            }
            vigil_mkv::Event::ClusterStart { span, timecode: t } => {
                start = span.offset;
                timecode = t;
                ends = vec![(span.data_offset() - start) as usize];
            }
            vigil_mkv::Event::Frame(f) => {
                ends.push((f.span.end().unwrap() - start) as usize);
                frames.push((f.data.clone(), f.keyframe, f.time_ns / 1_000_000));
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
                });
            }
            _ => {}
        }
    }
    Input {
        header: stored.header,
        clusters,
        avcc,
        frames,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Part 1: each stage on this thread.
fn stages(input: &Input, path: &PathBuf, rows: &mut Vec<Row>) {
    // ffmpeg's command line, one thread, the same file (best of two).
    let mut reference = f64::INFINITY;
    for _ in 0..2 {
        let t = Instant::now();
        let out = std::process::Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-threads", "1", "-i"])
            .arg(path)
            .args(["-f", "null", "-"])
            .output()
            .expect("ffmpeg (scripts/install-test-deps.sh)");
        assert!(out.status.success());
        reference = reference.min(ms(t.elapsed()));
    }
    let reference = reference / input.frames.len() as f64;
    let engine = vigil_analysis::engine::engine().unwrap();
    let mut index = FaceIndex::new(vigil_faces::EMBEDDING_DIM, IndexConfig::default());
    let mut seed = 1u64;
    for key in 0..1000u128 {
        let v: Vec<f32> = (0..vigil_faces::EMBEDDING_DIM)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let v: Vec<f32> = v.iter().map(|x| x / norm).collect();
        index.insert(key, &v).unwrap();
    }
    let mut decoder = FrameDecoder::new(VideoCodec::H264, &input.avcc).unwrap();
    let (mut decode, mut rgb, mut detect, mut embed, mut search) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut last: Option<i64> = None;
    for (data, key, pts) in &input.frames {
        let t = Instant::now();
        let pictures = decoder.push(data, *key, *pts).unwrap();
        decode.push(ms(t.elapsed()));
        for p in pictures {
            if last.is_some_and(|l| p.pts - l < 199) {
                continue;
            }
            last = Some(p.pts);
            let t = Instant::now();
            let img = p.to_rgb();
            let img = RgbImage::from_raw(img.width as u32, img.height as u32, img.data).unwrap();
            rgb.push(ms(t.elapsed()));
            let t = Instant::now();
            let faces = engine.detect(&img).unwrap();
            detect.push(ms(t.elapsed()));
            if let Some(face) = faces.first() {
                let t = Instant::now();
                let e = engine.embed(&img, face).unwrap();
                embed.push(ms(t.elapsed()));
                let t = Instant::now();
                std::hint::black_box(index.search(&e.0, 10));
                search.push(ms(t.elapsed()));
            }
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let ours = mean(&decode);
    rows.push(Row {
        name: format!(
            "decode 720p H.264, one core ({}, {} frames)",
            decoder.implementation(),
            decode.len()
        ),
        ours: format!("{ours:.2} ms/frame"),
        reference: format!("ffmpeg -threads 1: {reference:.2} ms/frame"),
        ratio: format!("{:.2}x ffmpeg's speed", reference / ours),
        target: ">= 1.00x".into(),
        pass: Some(reference / ours >= 1.0),
    });
    let (d, e) = (mean(&detect), mean(&embed));
    rows.push(Row {
        name: format!(
            "detection + one embedding, 720p frame, one core ({} frames, {} faces)",
            detect.len(),
            embed.len()
        ),
        ours: format!("{:.1} ms", d + e),
        reference: format!(
            "detect {d:.1} ms, embed {e:.1} ms, YUV->RGB {:.1} ms, search of 1000 {:.3} ms",
            mean(&rgb),
            mean(&search)
        ),
        ratio: String::new(),
        target: "<= 15 ms".into(),
        pass: Some(d + e <= 15.0),
    });
    let per_camera = ours * FPS as f64 + (d + mean(&rgb)) * 5.0 + e * 5.0;
    rows.push(Row {
        name: "CPU for one camera at 720p25, 5 analysed frames a second".into(),
        ours: format!("{:.0} ms per second of video", per_camera),
        reference: format!(
            "decode {:.0}, RGB {:.0}, detect {:.0}, embed {:.0} (if every analysed frame \
             searched a face)",
            ours * FPS as f64,
            mean(&rgb) * 5.0,
            d * 5.0,
            e * 5.0
        ),
        ratio: format!("{:.2} cameras a core", 1000.0 / per_camera),
        target: String::new(),
        pass: None,
    });
}

/// Notes when each result was written and for which frame.
#[derive(Debug, Default)]
struct Timing(Mutex<Vec<f64>>);

impl OutputFormat for Timing {
    fn frame_record(&self, f: &FrameResult) -> (String, Vec<u8>) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as f64;
        let arrived = (f.server_ts_ms + f.frame_offset_ms) as f64;
        self.0.lock().unwrap().push(now - arrived);
        (f.stream_arn.clone(), b"{}".to_vec())
    }
}

/// Part 2: three cameras in real time through the real processors.
async fn cameras(input: Arc<Input>, rows: &mut Vec<Row>) {
    let base = std::env::var_os("VIGIL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(base).unwrap();
    let mut cfg = StoreConfig::new(dir.path());
    cfg.min_free_bytes = 0;
    let store = Store::open(cfg, Arc::new(SystemClock)).unwrap();
    let streams = DataStreams::open(store.clone(), Limits::default()).unwrap();
    streams
        .create(NewStream {
            name: "out".into(),
            mode: StreamMode::Provisioned,
            shard_count: 1,
            tags: BTreeMap::new(),
        })
        .unwrap();
    store
        .create_collection("home", "m", BTreeMap::new())
        .unwrap();
    let timing = Arc::new(Timing::default());
    let analysis = Analysis::open(
        store.clone(),
        streams,
        Arc::new(Collections::default()),
        timing.clone(),
        AnalysisConfig::default(),
    )
    .unwrap();
    let mut ids = Vec::new();
    for cam in 0..CAMERAS {
        let name = format!("cam-{cam}");
        let rec = store
            .create_stream(vigil_store::NewStream {
                name: name.clone(),
                device_name: None,
                media_type: None,
                kms_key_id: None,
                data_retention_hours: 24,
                byte_budget: None,
                tags: BTreeMap::new(),
                attributes: BTreeMap::new(),
            })
            .unwrap();
        let header = store.register_header(rec.id, &input.header).unwrap();
        ids.push((rec.id, header));
        analysis
            .create(ProcessorRecord {
                v: PROCESSOR_RECORD_VERSION,
                name: name.clone(),
                arn: name.clone(),
                input_stream: name.clone(),
                input_arn: name.clone(),
                output_stream: "out".into(),
                output_arn: "out".into(),
                role_arn: String::new(),
                collection: "home".into(),
                face_match_threshold: 80.0,
                notification_topic_arn: None,
                regions_of_interest: Vec::new(),
                data_sharing_opt_in: false,
                kms_key_id: None,
                tags: BTreeMap::new(),
                status: Status::Stopped,
                status_message: None,
                creation_ms: 0,
                last_update_ms: 0,
                session_id: None,
                start_at: None,
                max_duration_s: None,
                run_started_ms: None,
                checkpoint: None,
            })
            .unwrap();
        analysis.start(&name, None, None).unwrap();
    }
    // The engine loaded before the clock starts (a server warms it at start).
    vigil_analysis::engine::engine().unwrap();
    let started = Instant::now();
    let mut writers = Vec::new();
    for (id, header) in ids {
        let store = store.clone();
        let input = input.clone();
        writers.push(tokio::spawn(async move {
            let t0 = input.clusters[0].timecode_ms;
            for c in &input.clusters {
                let mut w = store.begin_fragment(id, header, c.timecode_ms).unwrap();
                let mut from = 0;
                for (i, &end) in c.ends.iter().enumerate() {
                    if i >= 1 {
                        let due = started
                            + Duration::from_millis(
                                c.timecode_ms - t0 + (i as u64 - 1) * (1000 / FPS),
                            );
                        tokio::time::sleep_until(due.into()).await;
                    }
                    w.append(c.bytes.slice(from..end)).unwrap();
                    from = end;
                }
                tokio::spawn(w.finish(1000).unwrap().wait());
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let video_s = input.frames.len() as f64 / FPS as f64;
    let a = analysis.clone();
    tokio::task::spawn_blocking(move || {
        for cam in 0..CAMERAS {
            a.stop(&format!("cam-{cam}")).unwrap();
        }
    })
    .await
    .unwrap();
    let (mut analysed, mut still, mut skipped, mut decoded) = (0, 0, 0, 0);
    for (_, s) in analysis.stats() {
        use std::sync::atomic::Ordering::Relaxed;
        analysed += s.frames_analysed.load(Relaxed);
        still += s.frames_still.load(Relaxed);
        skipped += s.frames_skipped.load(Relaxed);
        decoded += s.frames_decoded.load(Relaxed);
    }
    let lags = timing.0.lock().unwrap().clone();
    let sampled = (video_s * 5.0) as u64 * CAMERAS as u64;
    rows.push(Row {
        name: format!("{CAMERAS} cameras at 720p25, 5 analysed a second: behind live (p99)"),
        ours: format!("{:.0} ms", quantile(lags.clone(), 0.99)),
        reference: format!(
            "p50 {:.0} ms over {} results",
            quantile(lags.clone(), 0.5),
            lags.len()
        ),
        ratio: String::new(),
        target: "< 1000 ms".into(),
        pass: Some(!lags.is_empty() && quantile(lags, 0.99) < 1000.0),
    });
    let total = input.frames.len() as u64 * CAMERAS as u64;
    rows.push(Row {
        name: format!("{CAMERAS} cameras: frames kept up with"),
        ours: format!(
            "{:.0}% of sampled frames analysed or still",
            100.0 * (analysed + still) as f64 / sampled.max(1) as f64
        ),
        reference: format!(
            "{decoded} of {total} frames decoded, {skipped} skipped (behind live); {analysed} \
             searched, {still} still"
        ),
        ratio: String::new(),
        target: "nothing skipped".into(),
        pass: Some(skipped == 0),
    });
    analysis.shutdown();
    store.close().unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |f: &str| args.iter().any(|a| a == f);
    let test_mode = !flag("--bench");
    let quick = flag("--quick") || test_mode;
    let mode = match (test_mode, quick) {
        (true, _) => "test (quick)",
        (false, true) => "quick",
        (false, false) => "full",
    };
    let secs = if quick { 4 } else { 20 };
    let load_before = loadavg();
    let started = Instant::now();
    let path = input(secs);
    let input = Arc::new(load(&path));
    let mut rows = Vec::new();
    stages(&input, &path, &mut rows);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(cameras(input.clone(), &mut rows));
    let missed = summary(
        &rows,
        &Run {
            title: "vigil-analysis analysis",
            mode,
            pairs: 0,
            input: &format!("{secs} s of 1280x720 H.264 at 25 fps, 3 Mbit/s, faces in view"),
            took: started.elapsed(),
            load_before: &load_before,
        },
    );
    if missed {
        eprintln!("(targets missed: see the table)");
    }
}
