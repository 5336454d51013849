//! GetImages throughput (`bench/README.md`): still images (JPEG, quality 80, native size) from
//! 1280x720 H.264 fragments as the store holds them, through the function GetImages calls per
//! fragment (`images::pictures`: demux, OpenH264 decode from the key frame, YUV to RGB, JPEG,
//! base64), against ffmpeg extracting the same frames to JPEG in the same run. Prints a
//! summary table with each figure against its target.
//!
//! ```sh
//! cargo bench --profile ci -p vigil-api --bench images             # full: about a minute
//! cargo bench --profile ci -p vigil-api --bench images -- --quick  # seconds; scripts/test
//! ```
//!
//! Options after `--`: `--quick`; `--pairs N` (ABBA pairs, default 9, quick 3). The input
//! (20 s, quick 4 s, of 1280x720 25 fps H.264 with a key frame and a Cluster every second, no
//! B-frames) is made on first use with ffmpeg and cached under `$TMPDIR/vigil-bench`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use vigil_api::media::images::decode::{self, AvcConfig, Rgb};
use vigil_api::media::images::{Format, Size, pictures};
use vigil_media::codec::Codec;
use vigil_media::sample::from_fragments;
use vigil_mkv::{Demuxer, Event};

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

/// A Matroska file as the store holds it: the track header (EBML header, unknown-size
/// Segment, Info, Tracks) and one payload per Cluster (as `tests/media/common.rs` splits it).
struct Stored {
    header: Vec<u8>,
    payloads: Vec<Bytes>,
}

fn split_mkv(data: &[u8]) -> Stored {
    let events = Demuxer::read_all(data).expect("the benchmark input demuxes");
    let span_bytes =
        |span: &vigil_mkv::Span| &data[span.offset as usize..span.end().unwrap() as usize];
    let mut header = Vec::new();
    let mut payloads = Vec::new();
    for e in &events {
        match e {
            Event::EbmlHeader { span, .. } => {
                header.extend_from_slice(span_bytes(span));
                header.extend_from_slice(&[0x18, 0x53, 0x80, 0x67]);
                header.extend_from_slice(&vigil_mkv::ebml::UNKNOWN_SIZE_8);
            }
            Event::Info { span, .. } | Event::Tracks { span, .. } => {
                header.extend_from_slice(span_bytes(span));
            }
            Event::ClusterEnd { offset, end } => {
                payloads.push(Bytes::copy_from_slice(
                    &data[*offset as usize..*end as usize],
                ));
            }
            _ => {}
        }
    }
    Stored { header, payloads }
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
        "vigil-api images benchmark, {} mode; input {} ({what}, {:.1} Mbit/s); one JPEG \
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
    let missed = summary(&rows, &plan, &what, started.elapsed(), &load_before);
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

fn generate(path: &Path, name: &str, args: &[String]) {
    let dir = path.parent().expect("the cache path has a parent");
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    // Written under a temporary name and renamed, so that a concurrent run never reads half.
    let partial = dir.join(format!("{name}.{}.partial", std::process::id()));
    eprintln!(
        "generating the benchmark input {} with ffmpeg",
        path.display()
    );
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .args(["-f", "matroska"])
        .arg(&partial)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("ffmpeg failed ({s}) making {}", partial.display()),
        Err(e) => panic!(
            "cannot run ffmpeg ({e}), which makes the benchmark input and is the reference: \
             run scripts/install-test-deps.sh"
        ),
    }
    std::fs::rename(&partial, path)
        .unwrap_or_else(|e| panic!("{} -> {}: {e}", partial.display(), path.display()));
}

/// Where ffmpeg writes its JPEGs: tmpfs when there is one, so that the reference pays no disk.
fn out_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let writable = shm.is_dir()
        && std::fs::metadata(shm).is_ok_and(|m| !m.permissions().readonly())
        && std::fs::write(
            shm.join(format!(".vigil-probe-{}", std::process::id())),
            b"",
        )
        .is_ok();
    if writable {
        let _ = std::fs::remove_file(shm.join(format!(".vigil-probe-{}", std::process::id())));
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

// ---------------------------------------------------------------------------------------------
// Summary

struct Row {
    name: String,
    ours: String,
    reference: String,
    ratio: String,
    target: String,
    /// None: no target, shown for information.
    pass: Option<bool>,
}

/// Prints the table; true when a target was missed.
fn summary(rows: &[Row], plan: &Plan, input: &str, took: Duration, load_before: &str) -> bool {
    let mut out = String::new();
    let header = ["figure", "ours", "reference", "ratio", "target", "result"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            let result = match r.pass {
                Some(true) => "PASS",
                Some(false) => "MISS",
                None => "info",
            };
            [
                r.name.clone(),
                r.ours.clone(),
                r.reference.clone(),
                r.ratio.clone(),
                r.target.clone(),
                result.to_owned(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for c in &cells {
        for (w, s) in widths.iter_mut().zip(c) {
            *w = (*w).max(s.chars().count());
        }
    }
    let line = |out: &mut String, c: &[&str]| {
        let cols: Vec<String> = c
            .iter()
            .zip(widths)
            .map(|(s, w)| format!("{s:<w$}"))
            .collect();
        let _ = writeln!(out, "| {} |", cols.join(" | "));
    };
    let _ = writeln!(
        out,
        "\nvigil-api images summary ({} mode, input {input}, {} ABBA pairs, load average \
         {load_before} -> {}, {:.0} s)",
        plan.mode,
        plan.pairs,
        loadavg(),
        took.as_secs_f64()
    );
    line(&mut out, &header);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    let _ = writeln!(out, "|-{}-|", rule.join("-|-"));
    for c in &cells {
        line(&mut out, &c.iter().map(String::as_str).collect::<Vec<_>>());
    }
    let missed = rows.iter().any(|r| r.pass == Some(false));
    if missed {
        let _ = writeln!(
            out,
            "MISSED: {}",
            rows.iter()
                .filter(|r| r.pass == Some(false))
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    print!("{out}");
    missed
}

/// The median, the lowest and the highest.
fn spread(v: &[f64]) -> (f64, f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (median(v.to_vec()), lo, hi)
}

/// The median; the mean of the middle two for an even count.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    match (
        v.len() % 2,
        mid.checked_sub(1).and_then(|i| v.get(i)),
        v.get(mid),
    ) {
        (0, Some(a), Some(b)) => (a + b) / 2.0,
        (_, _, Some(m)) => *m,
        _ => 0.0,
    }
}
