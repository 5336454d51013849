//! Demuxer throughput on a 1080p H.264 camera-like stream, against the physical limit of
//! copying the same bytes in the same chunks (`bench/README.md`).
//!
//! The input is made on first use with ffmpeg and cached (set `VIGIL_BENCH_INPUT` to use
//! another file). After criterion's groups, a summary times demux and copy interleaved in the
//! same run and prints their ratio against the target.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use vigil_mkv::{Demuxer, Event};

/// Chunk sizes a network ingest sees: a small read, and a large one.
const CHUNKS: [(usize, &str); 2] = [(4 << 10, "4KiB"), (64 << 10, "64KiB")];

/// Demux must run at a quarter of memcpy speed or better, so that it is never what limits a
/// 10 Gbit/s ingest.
const TARGET_RATIO: f64 = 0.25;

/// Bump when the ffmpeg command changes, so a stale cached input is not reused.
const INPUT_NAME: &str = "ffmpeg_h264-1080p-v1.mkv";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |f: &str| args.iter().any(|a| a == f);
    // `cargo bench` passes --bench; `cargo test --benches` does not (criterion's test mode,
    // which runs each benchmark once).
    let test_mode = flag("--test") || !flag("--bench");
    let quick = test_mode || flag("--quick");
    let list = flag("--list");

    let input = if list { Vec::new() } else { input() };
    let mut c = Criterion::default().configure_from_args();
    for (chunk, label) in CHUNKS {
        let mut group = c.benchmark_group(format!("chunks-{label}"));
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter("demux"), &input, |b, input| {
            b.iter(|| black_box(demux(input, chunk)));
        });
        let mut buf = Vec::with_capacity(input.len());
        group.bench_with_input(BenchmarkId::from_parameter("copy"), &input, |b, input| {
            b.iter(|| black_box(copy(input, chunk, &mut buf)));
        });
        group.finish();
    }
    c.final_summary();

    if !list && !flag("--profile-time") {
        summary(&input, if quick { 3 } else { 41 });
    }
}

/// Pushes `data` in `chunk`-byte pieces, pulls every event, and counts the frames.
fn demux(data: &[u8], chunk: usize) -> u64 {
    let mut d = Demuxer::new();
    let mut frames = 0;
    let mut count = |d: &mut Demuxer| {
        while let Some(event) = d.pull() {
            if let Event::Frame(frame) = event.expect("the benchmark input demuxes") {
                black_box(&frame);
                frames += 1;
            }
        }
    };
    for piece in data.chunks(chunk) {
        d.push(piece);
        count(&mut d);
    }
    d.finish();
    count(&mut d);
    frames
}

/// The reference: the same bytes, in the same pieces, appended to a buffer allocated once.
fn copy(data: &[u8], chunk: usize, buf: &mut Vec<u8>) -> usize {
    buf.clear();
    for piece in data.chunks(chunk) {
        buf.extend_from_slice(black_box(piece));
    }
    black_box(buf.as_slice());
    buf.len()
}

/// Times demux and copy alternately, `reps` times each per chunk size, and prints the median
/// throughputs and their ratio.
fn summary(input: &[u8], reps: usize) {
    let frames = demux(input, 64 << 10);
    println!(
        "\ninput: {} bytes, {frames} frames ({reps} interleaved repetitions per figure)",
        input.len()
    );
    let mut buf = Vec::with_capacity(input.len());
    for (chunk, label) in CHUNKS {
        let mut demux_times = Vec::with_capacity(reps);
        let mut copy_times = Vec::with_capacity(reps);
        for _ in 0..reps {
            demux_times.push(time(|| {
                black_box(demux(input, chunk));
            }));
            copy_times.push(time(|| {
                black_box(copy(input, chunk, &mut buf));
            }));
        }
        let demux_rate = rate(input.len(), median(&mut demux_times));
        let copy_rate = rate(input.len(), median(&mut copy_times));
        let ratio = demux_rate / copy_rate;
        println!(
            "demux/copy {label}: demux {:.2} GB/s, copy {:.2} GB/s, ratio {ratio:.2} (target >= {TARGET_RATIO}){}",
            demux_rate / 1e9,
            copy_rate / 1e9,
            if ratio >= TARGET_RATIO { "" } else { " MISSED" },
        );
    }
}

fn time(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

/// Bytes per second.
fn rate(bytes: usize, took: Duration) -> f64 {
    bytes as f64 / took.as_secs_f64().max(1e-9)
}

/// The benchmark input: `VIGIL_BENCH_INPUT`, or the cached ffmpeg capture, made if missing.
fn input() -> Vec<u8> {
    if let Some(path) = std::env::var_os("VIGIL_BENCH_INPUT") {
        let path = PathBuf::from(path);
        return std::fs::read(&path)
            .unwrap_or_else(|e| panic!("VIGIL_BENCH_INPUT={}: {e}", path.display()));
    }
    let path = std::env::temp_dir().join("vigil-bench").join(INPUT_NAME);
    if !path.exists() {
        generate(&path);
    }
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// 10 s of 1920x1080 at 25 fps, H.264 at 6 Mbit/s with a key frame every 2 s, as an IP camera
/// sends. Temporal noise keeps the encoder from coding the test pattern for nearly nothing, so
/// the frame sizes are those of a real camera at that bitrate.
fn generate(path: &Path) {
    let dir = path.parent().expect("the cache path has a parent");
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    // Written under a temporary name and renamed, so that a concurrent run never reads half.
    let partial = dir.join(format!("{INPUT_NAME}.{}.partial", std::process::id()));
    eprintln!(
        "generating the benchmark input {} with ffmpeg",
        path.display()
    );
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1920x1080:rate=25:duration=10",
        ])
        .args(["-vf", "noise=alls=12:allf=t"])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        ])
        .args(["-b:v", "6M", "-maxrate", "6M", "-bufsize", "12M"])
        .args(["-g", "50", "-keyint_min", "50", "-sc_threshold", "0"])
        .args(["-f", "matroska"])
        .arg(&partial)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("ffmpeg failed ({s}) making {}", partial.display()),
        Err(e) => panic!(
            "cannot run ffmpeg ({e}), which makes the benchmark input: \
             run scripts/install-test-deps.sh, or set VIGIL_BENCH_INPUT to a Matroska file"
        ),
    }
    std::fs::rename(&partial, path)
        .unwrap_or_else(|e| panic!("{} -> {}: {e}", partial.display(), path.display()));
}
