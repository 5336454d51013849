//! Playback remux throughput (`bench/README.md`): GetClip (progressive MP4) and HLS media
//! fragments (fMP4 and MPEG-TS) made from Matroska Clusters as the store holds them, against
//! `ffmpeg -i in.mkv -c copy -f mp4 out.mp4` on the same file in the same run. Prints a summary
//! table with each figure against its target.
//!
//! ```sh
//! cargo bench --profile ci -p vigil-media --bench remux             # full: about 15 s
//! cargo bench --profile ci -p vigil-media --bench remux -- --quick  # seconds; scripts/test
//! ```
//!
//! Options after `--`: `--quick`; `--pairs N` (ABBA pairs, default 9, quick 3); `--no-long`
//! (skip ffmpeg on the 10× longer input). The input (30 s, quick 10 s, of 1080p25 H.264 at
//! 6 Mbit/s with a key frame and a Cluster every second, and AAC audio) is made on first use
//! with ffmpeg and cached under `$TMPDIR/vigil-bench`; `VIGIL_BENCH_INPUT=file.mkv` measures
//! another file (without the 10× input).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "../../../bench/support.rs"]
mod support;

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::{Row, Run, Stored, generate, loadavg, median, out_dir, split_mkv, spread, summary};

use vigil_media::sample::{Sample, Track, from_fragments};
use vigil_media::ts::Continuity;
use vigil_media::{fmp4, mp4, ts};

/// Ours must be at least this many times ffmpeg's throughput (wall time, same file, same run).
const TARGET_RATIO: f64 = 3.0;
/// The long input, for ffmpeg's per-byte rate without its start-up: this many loops of the input.
const LONG_FACTOR: u32 = 10;
/// Bump when the ffmpeg command changes, so a stale cached input is not reused.
const INPUT_VERSION: &str = "v1";

#[derive(Debug, Clone)]
struct Plan {
    mode: &'static str,
    quick: bool,
    /// Seconds of generated input.
    secs: u32,
    /// ABBA pairs: ours then ffmpeg, ffmpeg then ours, ...
    pairs: usize,
    /// One timing of ours repeats the work until at least this long has passed.
    min_batch: Duration,
    long: bool,
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
            secs: if quick { 10 } else { 30 },
            pairs: pairs.unwrap_or(if quick { 3 } else { 9 }),
            min_batch: Duration::from_millis(if quick { 50 } else { 300 }),
            long: !flag("--no-long"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The work measured

/// GetClip: every Cluster demuxed in one call, one progressive MP4 in memory.
fn get_clip(s: &Stored) -> usize {
    let (tracks, samples) = from_fragments(&s.header, &s.payloads).expect("from_fragments");
    mp4::clip(&tracks, &samples).expect("mp4::clip").len()
}

/// What the HLS media-segment requests for every fragment do: each fragment demuxed alone,
/// then one fMP4 media segment.
fn hls_fmp4(s: &Stored) -> usize {
    let mut out = 0;
    for (i, payload) in s.payloads.iter().enumerate() {
        let (tracks, samples) =
            from_fragments(&s.header, std::slice::from_ref(payload)).expect("from_fragments");
        out += fmp4::media_segment(i as u32 + 1, &tracks, &samples)
            .expect("fmp4::media_segment")
            .len();
    }
    out
}

/// The same with MPEG-TS segments (continuity counters carried from one to the next, as a
/// player's sequence of requests would see them).
fn hls_ts(s: &Stored) -> usize {
    let mut continuity = Continuity::new();
    let mut out = 0;
    for payload in &s.payloads {
        let (tracks, samples) =
            from_fragments(&s.header, std::slice::from_ref(payload)).expect("from_fragments");
        out += ts::segment(&tracks, &samples, &mut continuity)
            .expect("ts::segment")
            .len();
    }
    out
}

type Work = fn(&Stored) -> usize;

const FIGURES: [(&str, &str, Work); 3] = [
    (
        "GetClip remux (all Clusters -> MP4)",
        "clip",
        get_clip as Work,
    ),
    ("HLS fMP4 fragments (per Cluster)", "fmp4", hls_fmp4),
    ("HLS TS fragments (per Cluster)", "ts", hls_ts),
];

/// Seconds per pass: the work repeated until `min` has passed (at least once).
fn time_ours(s: &Stored, work: Work, min: Duration) -> f64 {
    let start = Instant::now();
    let mut n = 0u32;
    loop {
        black_box(work(black_box(s)));
        n += 1;
        let took = start.elapsed();
        if took >= min {
            return took.as_secs_f64() / f64::from(n);
        }
    }
}

/// Wall time of `ffmpeg -v error -i INPUT -c copy -f mp4 OUT`, start-up included.
fn time_ffmpeg(input: &Path, out: &Path) -> f64 {
    let start = Instant::now();
    let res = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-i"])
        .arg(input)
        .args(["-c", "copy", "-f", "mp4"])
        .arg(out)
        .output()
        .expect("ffmpeg runs");
    let took = start.elapsed().as_secs_f64();
    assert!(
        res.status.success() && res.stderr.is_empty(),
        "ffmpeg -c copy {}: {}",
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
    let (input, long) = inputs(&plan);
    let data = std::fs::read(&input).unwrap_or_else(|e| panic!("{}: {e}", input.display()));
    let bytes = data.len() as f64;
    let stored = split_mkv(&data);
    drop(data);
    let long_bytes = long.as_ref().map(|p| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .len() as f64
    });
    let (tracks, samples) = check(&stored);
    let video: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.track == tracks[0].number)
        .collect();
    // Seconds of media: the first track's span, its last sample's duration included.
    let secs = match (
        video.iter().map(|s| s.pts).min(),
        video.iter().max_by_key(|s| s.pts),
    ) {
        (Some(first), Some(last)) => {
            (last.pts - first + i64::from(last.duration)) as f64
                / f64::from(tracks[0].timescale.max(1))
        }
        _ => 0.0,
    };
    let what = format!(
        "{:.1} MB, {secs:.1} s, {} Clusters",
        bytes / 1e6,
        stored.payloads.len()
    );
    println!(
        "vigil-media remux benchmark, {} mode; input {} ({what}, {} tracks, {} samples of which \
         {} of track {}, {:.1} Mbit/s)",
        plan.mode,
        input.display(),
        tracks.len(),
        samples.len(),
        video.len(),
        tracks[0].number,
        bytes * 8.0 / 1e6 / secs.max(1e-9),
    );
    let out_dir = out_dir();
    let out = out_dir.join(format!("vigil-bench-remux-{}.mp4", std::process::id()));
    println!(
        "{} CPUs; load average {load_before}; ffmpeg writes to {}; {} ABBA pairs; MB/s are of \
         input bytes (the .mkv file's size)",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        out_dir.display(),
        plan.pairs
    );

    // Warm-up: code, allocator, page cache of the input files.
    for (_, _, work) in FIGURES {
        black_box(work(&stored));
    }
    time_ffmpeg(&input, &out);
    if let Some(l) = &long {
        time_ffmpeg(l, &out);
    }

    let mut ours: Vec<Vec<f64>> = vec![Vec::new(); FIGURES.len()];
    let mut reference = Vec::new();
    let mut reference_long = Vec::new();
    for pair in 0..plan.pairs {
        let run_ours = |ours: &mut Vec<Vec<f64>>| {
            for (i, (_, _, work)) in FIGURES.iter().enumerate() {
                ours[i].push(time_ours(&stored, *work, plan.min_batch));
            }
        };
        let run_ref = |reference: &mut Vec<f64>, reference_long: &mut Vec<f64>| {
            reference.push(time_ffmpeg(&input, &out));
            if let Some(l) = &long {
                reference_long.push(time_ffmpeg(l, &out));
            }
        };
        if pair % 2 == 0 {
            run_ours(&mut ours);
            run_ref(&mut reference, &mut reference_long);
        } else {
            run_ref(&mut reference, &mut reference_long);
            run_ours(&mut ours);
        }
        let mut line = format!("  pair {}:", pair + 1);
        for (i, (_, short, _)) in FIGURES.iter().enumerate() {
            let _ = write!(line, " {short} {:.0} MB/s,", bytes / ours[i][pair] / 1e6);
        }
        let _ = write!(line, " ffmpeg {:.0} MB/s", bytes / reference[pair] / 1e6);
        if let (Some(lb), Some(t)) = (long_bytes, reference_long.get(pair)) {
            let _ = write!(line, ", ffmpeg x{LONG_FACTOR} {:.0} MB/s", lb / t / 1e6);
        }
        println!("{line}");
    }
    let _ = std::fs::remove_file(&out);

    // Rows: ratios are taken per pair (ours and ffmpeg timed next to each other), then the
    // median and range over the pairs.
    let mut rows = Vec::new();
    let ref_rate = median(reference.iter().map(|t| bytes / t).collect());
    let marginal: Option<Vec<f64>> = long_bytes.map(|lb| {
        reference
            .iter()
            .zip(&reference_long)
            .map(|(ts, tl)| (lb - bytes) / (tl - ts).max(1e-9))
            .collect()
    });
    for (i, (name, _, _)) in FIGURES.iter().enumerate() {
        let rates: Vec<f64> = ours[i].iter().map(|t| bytes / t).collect();
        let ratios: Vec<f64> = rates
            .iter()
            .zip(&reference)
            .map(|(r, t)| r / (bytes / t))
            .collect();
        let (ratio, lo, hi) = spread(&ratios);
        rows.push(Row {
            name: (*name).to_owned(),
            ours: format!("{:.0} MB/s", median(rates.clone()) / 1e6),
            reference: format!("ffmpeg {:.0} MB/s", ref_rate / 1e6),
            ratio: format!("{ratio:.1}x ({lo:.1}-{hi:.1})"),
            target: format!(">= {TARGET_RATIO:.0}x"),
            pass: Some(ratio >= TARGET_RATIO),
        });
        if let Some(m) = &marginal {
            let ratios: Vec<f64> = rates.iter().zip(m).map(|(r, m)| r / m).collect();
            let (ratio, lo, hi) = spread(&ratios);
            rows.push(Row {
                name: "  same, vs ffmpeg per byte (start-up excluded)".into(),
                ours: format!("{:.0} MB/s", median(rates) / 1e6),
                reference: format!("ffmpeg {:.0} MB/s", median(m.clone()) / 1e6),
                ratio: format!("{ratio:.1}x ({lo:.1}-{hi:.1})"),
                target: "-".into(),
                pass: None,
            });
        }
    }
    if let (Some(lb), Some(m)) = (long_bytes, &marginal) {
        let long_rate = median(reference_long.iter().map(|t| lb / t).collect());
        let startup: Vec<f64> = reference
            .iter()
            .zip(m)
            .map(|(t, m)| (t - bytes / m) * 1e3)
            .collect();
        rows.push(Row {
            name: format!("ffmpeg on the x{LONG_FACTOR} input ({:.0} MB)", lb / 1e6),
            ours: "-".into(),
            reference: format!("{:.0} MB/s wall", long_rate / 1e6),
            ratio: format!("start-up {:.0} ms", median(startup)),
            target: "-".into(),
            pass: None,
        });
    }
    let missed = summary(
        &rows,
        &Run {
            title: "vigil-media remux",
            mode: plan.mode,
            pairs: plan.pairs,
            input: &what,
            took: started.elapsed(),
            load_before: &load_before,
        },
    );
    if missed && !plan.quick {
        eprintln!("error: remux missed a target (see the table above)");
        std::process::exit(1);
    }
}

/// Checks once that the work does what it should (every sample packaged, outputs not empty),
/// and returns the whole input's tracks and samples.
fn check(s: &Stored) -> (Vec<Track>, Vec<Sample>) {
    assert!(
        !s.payloads.is_empty(),
        "the benchmark input has no Clusters"
    );
    let (tracks, samples) = from_fragments(&s.header, &s.payloads).expect("from_fragments");
    assert!(!tracks.is_empty() && !samples.is_empty());
    let per_fragment: usize = s
        .payloads
        .iter()
        .map(|p| {
            from_fragments(&s.header, std::slice::from_ref(p))
                .expect("from_fragments")
                .1
                .len()
        })
        .sum();
    assert_eq!(
        per_fragment,
        samples.len(),
        "per-Cluster demux loses no sample"
    );
    let clip = mp4::clip(&tracks, &samples).expect("mp4::clip");
    assert_eq!(
        clip.get(4..8),
        Some(&b"ftyp"[..]),
        "a clip starts with ftyp"
    );
    assert!(hls_fmp4(s) > 0 && hls_ts(s) > 0);
    (tracks, samples)
}

// ---------------------------------------------------------------------------------------------
// Input

/// The input file and, unless `--no-long` or `VIGIL_BENCH_INPUT`, the 10× longer one.
fn inputs(plan: &Plan) -> (PathBuf, Option<PathBuf>) {
    if let Some(path) = std::env::var_os("VIGIL_BENCH_INPUT") {
        return (PathBuf::from(path), None);
    }
    let dir = std::env::temp_dir().join("vigil-bench");
    let name = format!("remux_h264-1080p25-aac-{}s-{INPUT_VERSION}.mkv", plan.secs);
    let input = dir.join(&name);
    if !input.exists() {
        generate(&input, &name, &generate_args(plan.secs));
    }
    if !plan.long {
        return (input, None);
    }
    let long_name = format!(
        "remux_h264-1080p25-aac-{}s-x{LONG_FACTOR}-{INPUT_VERSION}.mkv",
        plan.secs
    );
    let long = dir.join(&long_name);
    if !long.exists() {
        // The same media looped by stream copy: cheap, and the same bytes per second.
        let mut args: Vec<String> = ["-stream_loop", &(LONG_FACTOR - 1).to_string(), "-i"]
            .map(String::from)
            .to_vec();
        args.push(input.display().to_string());
        args.extend(["-c", "copy"].map(String::from));
        generate(&long, &long_name, &args);
    }
    (input, Some(long))
}

/// `secs` of 1920x1080 at 25 fps, H.264 at 6 Mbit/s with a key frame every second (so a
/// Cluster every second, as KVS producers send), and AAC audio. Temporal noise keeps the
/// encoder from coding the test pattern for nearly nothing, so the frames have a camera's sizes.
fn generate_args(secs: u32) -> Vec<String> {
    [
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=size=1920x1080:rate=25:duration={secs}"),
        "-f",
        "lavfi",
        "-i",
        &format!("sine=frequency=440:sample_rate=48000:duration={secs}"),
        "-vf",
        "noise=alls=12:allf=t",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-pix_fmt",
        "yuv420p",
        "-b:v",
        "6M",
        "-maxrate",
        "6M",
        "-bufsize",
        "12M",
        "-g",
        "25",
        "-keyint_min",
        "25",
        "-sc_threshold",
        "0",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
    ]
    .map(String::from)
    .to_vec()
}
