//! `vigil put` benchmark (`bench/README.md`): a recorded 1080p H.264 + AAC Matroska file
//! uploaded as fast as possible to a real `vigil serve` on this machine (PutMedia, every
//! fragment PERSISTED: fsynced and indexed), in MB/s of input, beside `cat FILE > /dev/null`
//! on the same file in the same run (the file is in the page cache for both).
//!
//! ```sh
//! cargo bench --profile ci -p vigil --bench put             # full: 60 s of 1080p, 5 runs each
//! cargo bench --profile ci -p vigil --bench put -- --quick  # 10 s of 720p, 2 runs each
//! ```
//!
//! The server's data goes under `$VIGIL_BENCH_DIR`, else `$TMPDIR`, in `vigil-bench-put`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "AKIDBENCHPUT";
const SECRET: &str = "bench-put-secret";

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(data: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("VIGIL_ACCESS_KEY_ID", KEY)
        .env("VIGIL_SECRET_ACCESS_KEY", SECRET)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next().expect("the server exited").unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest
                .split(|c: char| c.is_whitespace() || c == '"')
                .next()
                .unwrap()
                .to_owned();
        }
    };
    // Keep draining the log so that the server never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    Server { child, addr }
}

fn make_input(dir: &Path, quick: bool) -> PathBuf {
    let path = dir.join(if quick { "in-720p.mkv" } else { "in-1080p.mkv" });
    if path.exists() {
        return path;
    }
    let (size, secs) = if quick {
        ("1280x720", "10")
    } else {
        ("1920x1080", "60")
    };
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={size}:rate=25"))
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            secs,
        ])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-b:v",
            "12M",
            "-g",
            "50",
        ])
        .args(["-c:a", "aac", "-f", "matroska"])
        .arg(&path)
        .output()
        .expect("ffmpeg (scripts/install-test-deps.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 2 } else { 5 };
    let base = std::env::var_os("VIGIL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join("vigil-bench-put");
    let _ = std::fs::remove_dir_all(base.join("data"));
    std::fs::create_dir_all(&base).unwrap();
    let input = make_input(&base, quick);
    let size = std::fs::metadata(&input).unwrap().len() as f64;
    let server = start_server(&base.join("data"));

    let cat = || {
        let t = Instant::now();
        let st = Command::new("sh")
            .arg("-c")
            .arg(format!("cat '{}' > /dev/null", input.display()))
            .status()
            .unwrap();
        assert!(st.success());
        t.elapsed()
    };
    cat(); // into the page cache
    let mut cat_rates = Vec::new();
    let mut put_rates = Vec::new();
    for i in 0..runs {
        cat_rates.push(size / cat().as_secs_f64() / 1e6);
        let t = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["put", &format!("bench-{i}"), "--create", "--quiet"])
            .arg(&input)
            .args(["--endpoint-url", &format!("http://{}", server.addr)])
            .env("AWS_ACCESS_KEY_ID", KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("HOME", &base)
            .env_remove("AWS_PROFILE")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let elapsed = t.elapsed();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        put_rates.push(size / elapsed.as_secs_f64() / 1e6);
    }
    let (put, cat) = (median(put_rates.clone()), median(cat_rates.clone()));
    println!(
        "\nvigil put: {} ({:.1} MB), {runs} runs each, medians",
        input.file_name().unwrap().to_string_lossy(),
        size / 1e6
    );
    println!("| figure | MB/s | runs |");
    println!("|---|---|---|");
    println!("| vigil put (every fragment PERSISTED) | {put:.0} | {put_rates:.0?} |");
    println!("| cat FILE > /dev/null | {cat:.0} | {cat_rates:.0?} |");
    println!("| ratio put / cat | {:.3} | |", put / cat);
    println!(
        "(the whole upload, including reading the file twice: once to find its span, once to send it; {:?} per run)",
        Duration::from_secs_f64(size / put / 1e6)
    );
    drop(server);
    let _ = std::fs::remove_dir_all(base.join("data"));
}
