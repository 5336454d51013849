//! GetImages throughput (`bench/README.md`): still images (JPEG, quality 80, native size) from
//! 1280x720 H.264 fragments as the store holds them, through the function GetImages calls per
//! fragment (`images::pictures`: demux, OpenH264 decode from the key frame, YUV to RGB, JPEG,
//! base64), against ffmpeg extracting the same frames to JPEG in the same run. Prints a
//! summary table with each figure against its target.
//!
//! ```sh
//! cargo bench --profile ci -p vigil-api-playback --bench images             # full: about a minute
//! cargo bench --profile ci -p vigil-api-playback --bench images -- --quick  # seconds; scripts/test
//! ```
//!
//! Options after `--`: `--quick`; `--pairs N` (ABBA pairs, default 9, quick 3). The input
//! (20 s, quick 4 s, of 1280x720 25 fps H.264 with a key frame and a Cluster every second, no
//! B-frames) is made on first use with ffmpeg and cached under `$TMPDIR/vigil-bench`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "../../../bench/support.rs"]
mod support;

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::{Row, Run, Stored, generate, loadavg, median, out_dir, split_mkv, spread, summary};

use base64::Engine as _;
use vigil_api_playback::images::decode::{self, AvcConfig, Rgb};
use vigil_api_playback::images::{Format, Size, pictures};
use vigil_media::codec::Codec;
use vigil_media::sample::from_fragments;

/// Ours must be faster than ffmpeg (images per second, wall time, same frames, same run).
const TARGET_RATIO: f64 = 1.0;
/// Bump when the ffmpeg command changes, so a stale cached input is not reused.
const INPUT_VERSION: &str = "v1";
/// Frames per second of the input, and per GOP (a key frame, so a Cluster, every second).
const FPS: u32 = 25;
/// The frame of each GOP sampled: the 13th, at 480 ms, the one presented at the middle of a
/// 1 s fragment (sample time start + 500 ms), so each image costs half a GOP of decoding.
const SAMPLED_FRAME: u32 = 12;
/// Where in each fragment the sample time falls (ms from its first frame).
const SAMPLE_OFFSET_MS: u64 = 500;
/// JPEGQuality (GetImages' default).
const QUALITY: u8 = 80;

#[derive(Debug, Clone)]
struct Plan {
    mode: &'static str,
    quick: bool,
    /// Seconds of generated input (one fragment, one image, each).
    secs: u32,
    /// ABBA pairs: ours then ffmpeg, ffmpeg then ours, ...
    pairs: usize,
    /// One timing of ours repeats the whole input until at least this long has passed.
    min_batch: Duration,
}

impl Plan {
    fn from_args() -> Self {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let flag = |f: &str| args.iter().any(|a| a == f);
        // `cargo bench` passes --bench; `cargo test --benches` does not: run the quick plan.
        let test_mode = !flag("--bench");
        let quick = flag("--quick") || test_mode;
        let pairs = args.iter().position(|a| a == "--pairs").map(|i| {
            let v = args.get(i + 1).map_or("", String::as_str);
            v.parse::<usize>()
                .unwrap_or_else(|e| panic!("--pairs {v:?}: {e}"))
                .max(1)
        });
        Self {
            mode: match (test_mode, quick) {
                (true, _) => "test (quick)",
                (false, true) => "quick",
                (false, false) => "full",
            },
            quick,
            secs: if quick { 4 } else { 20 },
            pairs: pairs.unwrap_or(if quick { 3 } else { 9 }),
            min_batch: Duration::from_millis(if quick { 50 } else { 500 }),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The work measured

/// One image per fragment: `pictures` (what GetImages runs per fragment after reading it from
/// the store) at the fragment's sample time, JPEG at native size. Returns the base64 bytes.
fn ours(s: &Stored, times: &[u64]) -> usize {
    let format = Format::Jpeg { quality: QUALITY };
    let size = Size {
        width: None,
        height: None,
    };
    let mut out = 0;
    for (payload, &t) in s.payloads.iter().zip(times) {
        let images = pictures(&s.header, payload.clone(), &[t], format, size);
        out += images[0].as_ref().expect("an image").len();
    }
    out
}

/// For the breakdown: the decoding part of `pictures` alone (demux, `decode_h264` from the key
/// frame to the sampled frame, YUV to RGB), one frame per fragment.
fn decode_part(s: &Stored) -> Vec<Rgb> {
    s.payloads
        .iter()
        .map(|p| {
            let (tracks, samples) =
                from_fragments(&s.header, std::slice::from_ref(p)).expect("from_fragments");
            let Codec::H264 { avcc, .. } = &tracks[0].codec else {
                panic!("the input is H.264")
            };
            let config = AvcConfig::parse(avcc).expect("avcC");
            let data: Vec<(&[u8], bool)> = samples
                .iter()
                .filter(|x| x.track == tracks[0].number)
                .map(|x| (x.data.as_ref(), x.keyframe))
                .collect();
            let mut frames = decode::decode_h264(&config, &data, &[SAMPLED_FRAME as usize])
                .expect("decode_h264");
            frames.pop().flatten().expect("the sampled frame")
        })
        .collect()
}

/// For the breakdown: the encoding part of `pictures` alone (JPEG, base64).
fn encode_part(frames: &[Rgb]) -> usize {
    frames
        .iter()
        .map(|f| {
            let jpeg = decode::jpeg(f, QUALITY).expect("jpeg");
            base64::engine::general_purpose::STANDARD.encode(jpeg).len()
        })
        .sum()
}

/// Seconds per pass of `work`, repeated until `min` has passed.
fn time_ours<T>(mut work: impl FnMut() -> T, min: Duration) -> f64 {
    let start = Instant::now();
    let mut n = 0u32;
    loop {
        black_box(work());
        n += 1;
        let took = start.elapsed();
        if took >= min {
            return took.as_secs_f64() / f64::from(n);
        }
    }
}

/// Wall time of ffmpeg extracting the 13th frame of every GOP to JPEG in `dir`, on one
/// thread (decoder and filters), start-up included.
fn time_ffmpeg(input: &Path, dir: &Path) -> f64 {
    let start = Instant::now();
    let res = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-threads", "1"])
        .args(["-filter_threads", "1", "-i"])
        .arg(input)
        .args([
            "-vf",
            &format!("select='eq(mod(n\\,{FPS})\\,{SAMPLED_FRAME})'"),
        ])
        .args(["-vsync", "0", "-q:v", "3", "-f", "image2"])
        .arg(dir.join("%04d.jpg"))
        .output()
        .expect("ffmpeg runs");
    let took = start.elapsed().as_secs_f64();
    assert!(
        res.status.success() && res.stderr.is_empty(),
        "ffmpeg -vf select {}: {}",
        input.display(),
        String::from_utf8_lossy(&res.stderr)
    );
    took
}

// ---------------------------------------------------------------------------------------------
// Main

fn main() {
    let started = Instant::now();
    let plan = Plan::from_args();
    let load_before = loadavg();
    let input = input(&plan);
    let data = std::fs::read(&input).unwrap_or_else(|e| panic!("{}: {e}", input.display()));
    let bytes = data.len() as f64;
    let stored = split_mkv(&data);
    drop(data);
    let times = sample_times(&stored);
    let n = times.len() as f64;
    let what = format!(
        "{:.1} MB, {} fragments of 1 s, 1280x720 {FPS} fps",
        bytes / 1e6,
        stored.payloads.len()
    );
    let dir = out_dir().join(format!("vigil-bench-images-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    println!(
        "vigil-api-playback images benchmark, {} mode; input {} ({what}, {:.1} Mbit/s); one JPEG \
         (quality {QUALITY}, native size) per fragment at its middle (+{SAMPLE_OFFSET_MS} ms: \
         frame {} of {FPS}, decoded from the key frame)",
        plan.mode,
        input.display(),
        bytes * 8.0 / 1e6 / f64::from(plan.secs),
        SAMPLED_FRAME + 1,
    );
    println!(
        "{} CPUs; load average {load_before}; single-threaded (ffmpeg -threads 1 \
         -filter_threads 1, writing to {}); {} ABBA pairs",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        dir.display(),
        plan.pairs
    );

    // Warm-up and checks: code, allocator, page cache; both make one JPEG per fragment.
    let jpegs = check(&stored, &times);
    time_ffmpeg(&input, &dir);
    let ffmpeg_jpegs = std::fs::read_dir(&dir).map_or(0, Iterator::count);
    assert_eq!(ffmpeg_jpegs, jpegs, "ffmpeg makes as many images as ours");

    let frames = decode_part(&stored);
    let mut our_times = Vec::new();
    let mut decode_times = Vec::new();
    let mut encode_times = Vec::new();
    let mut reference = Vec::new();
    for pair in 0..plan.pairs {
        let run_ours = |our_times: &mut Vec<f64>| {
            our_times.push(time_ours(
                || ours(black_box(&stored), &times),
                plan.min_batch,
            ));
        };
        if pair % 2 == 0 {
            run_ours(&mut our_times);
            reference.push(time_ffmpeg(&input, &dir));
        } else {
            reference.push(time_ffmpeg(&input, &dir));
            run_ours(&mut our_times);
        }
        // The breakdown, for information, outside the pair.
        decode_times.push(time_ours(
            || decode_part(black_box(&stored)),
            plan.min_batch,
        ));
        encode_times.push(time_ours(
            || encode_part(black_box(&frames)),
            plan.min_batch,
        ));
        println!(
            "  pair {}: ours {:.1} images/s ({:.1} ms each), ffmpeg {:.1} images/s ({:.0} ms \
             wall)",
            pair + 1,
            n / our_times[pair],
            our_times[pair] / n * 1e3,
            n / reference[pair],
            reference[pair] * 1e3
        );
    }
    let _ = std::fs::remove_dir_all(&dir);

    let rates: Vec<f64> = our_times.iter().map(|t| n / t).collect();
    let ref_rates: Vec<f64> = reference.iter().map(|t| n / t).collect();
    let ratios: Vec<f64> = rates.iter().zip(&ref_rates).map(|(a, b)| a / b).collect();
    let (ratio, lo, hi) = spread(&ratios);
    let (r, rlo, rhi) = spread(&rates);
    let (f, flo, fhi) = spread(&ref_rates);
    let ms_each = |v: &[f64]| median(v.to_vec()) / n * 1e3;
    let rows = [
        Row {
            name: "GetImages 720p JPEG q80, 1 per 1 s GOP (half-GOP decode)".into(),
            ours: format!("{r:.1} images/s/core ({rlo:.1}-{rhi:.1})"),
            reference: format!("ffmpeg {f:.1} images/s ({flo:.1}-{fhi:.1})"),
            ratio: format!("{ratio:.2}x ({lo:.2}-{hi:.2})"),
            target: format!("> {TARGET_RATIO:.0}x"),
            pass: Some(ratio > TARGET_RATIO),
        },
        Row {
            name: format!(
                "  of which demux + decode {} frames + RGB",
                SAMPLED_FRAME + 1
            ),
            ours: format!("{:.1} ms/image", ms_each(&decode_times)),
            reference: format!("ffmpeg {:.0} ms wall", median(reference.clone()) * 1e3),
            ratio: "-".into(),
            target: "-".into(),
            pass: None,
        },
        Row {
            name: "  of which JPEG + base64".into(),
            ours: format!("{:.1} ms/image", ms_each(&encode_times)),
            reference: "-".into(),
            ratio: "-".into(),
            target: "-".into(),
            pass: None,
        },
    ];
    let missed = summary(
        &rows,
        &Run {
            title: "vigil-api-playback images",
            mode: plan.mode,
            pairs: plan.pairs,
            input: &what,
            took: started.elapsed(),
            load_before: &load_before,
        },
    );
    if missed && !plan.quick {
        eprintln!("error: images missed a target (see the table above)");
        std::process::exit(1);
    }
}

/// Per fragment, the sample time (ms, on the track's clock as `pictures` takes it): its
/// first frame's time plus [`SAMPLE_OFFSET_MS`]. Checks that each fragment is one GOP.
fn sample_times(s: &Stored) -> Vec<u64> {
    assert!(
        !s.payloads.is_empty(),
        "the benchmark input has no Clusters"
    );
    s.payloads
        .iter()
        .map(|p| {
            let (tracks, samples) =
                from_fragments(&s.header, std::slice::from_ref(p)).expect("from_fragments");
            let track = &tracks[0];
            let video: Vec<_> = samples.iter().filter(|x| x.track == track.number).collect();
            assert!(
                video.len() == FPS as usize
                    && video[0].keyframe
                    && video.iter().skip(1).all(|x| !x.keyframe),
                "each Cluster is one GOP of {FPS} frames starting with a key frame"
            );
            let first = video.iter().map(|x| x.pts).min().expect("frames");
            let ms = u64::try_from(first).expect("pts >= 0") * 1000 / u64::from(track.timescale);
            ms + SAMPLE_OFFSET_MS
        })
        .collect()
}

/// Checks once that every fragment gives a JPEG (base64 of one starts `/9j/`), and returns
/// how many.
fn check(s: &Stored, times: &[u64]) -> usize {
    let mut n = 0;
    for (payload, &t) in s.payloads.iter().zip(times) {
        let images = pictures(
            &s.header,
            payload.clone(),
            &[t],
            Format::Jpeg { quality: QUALITY },
            Size {
                width: None,
                height: None,
            },
        );
        let image = images[0].as_ref().expect("every fragment gives an image");
        assert!(image.starts_with("/9j/"), "a JPEG");
        n += 1;
    }
    n
}

// ---------------------------------------------------------------------------------------------
// Input

/// The cached input, made on first use.
fn input(plan: &Plan) -> PathBuf {
    let dir = std::env::temp_dir().join("vigil-bench");
    let name = format!("images_h264-720p25-{}s-{INPUT_VERSION}.mkv", plan.secs);
    let input = dir.join(&name);
    if !input.exists() {
        generate(&input, &name, &generate_args(plan.secs));
    }
    input
}

/// `secs` of 1280x720 at 25 fps, H.264 at 3 Mbit/s, no B-frames, a key frame every second
/// (so a Cluster every second, as KVS producers send). Temporal noise keeps the encoder from
/// coding the test pattern for nearly nothing, so the frames have a camera's sizes.
fn generate_args(secs: u32) -> Vec<String> {
    [
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=size=1280x720:rate={FPS}:duration={secs}"),
        "-vf",
        "noise=alls=12:allf=t",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-pix_fmt",
        "yuv420p",
        "-b:v",
        "3M",
        "-maxrate",
        "3M",
        "-bufsize",
        "6M",
        "-g",
        &FPS.to_string(),
        "-keyint_min",
        &FPS.to_string(),
        "-sc_threshold",
        "0",
        "-bf",
        "0",
    ]
    .map(String::from)
    .to_vec()
}
