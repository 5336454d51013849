//! Support shared by the playback benchmarks (`crates/media/benches/remux.rs`,
//! `crates/api-playback/benches/images.rs`): the input split as the store holds it, generating and
//! caching the input with ffmpeg, where ffmpeg writes, and the summary table. Each bench
//! includes this file with `#[path = "../../../bench/support.rs"] mod support;`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use vigil_mkv::{Demuxer, Event};

/// A Matroska file as the store holds it: the track header, and each Cluster's bytes.
pub struct Stored {
    pub header: Vec<u8>,
    pub payloads: Vec<Bytes>,
}

/// Splits a file into [`Stored`].
pub fn split_mkv(data: &[u8]) -> Stored {
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

/// Makes `path` with ffmpeg (`args` then `-f matroska`), atomically.
pub fn generate(path: &Path, name: &str, args: &[String]) {
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

/// Where ffmpeg writes its output: tmpfs when there is one, so that the reference pays no disk.
pub fn out_dir() -> PathBuf {
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

/// The 1, 5 and 15 minute load averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

// ---------------------------------------------------------------------------------------------
// Summary

/// One line of the summary.
pub struct Row {
    pub name: String,
    pub ours: String,
    pub reference: String,
    pub ratio: String,
    pub target: String,
    /// None: no target, shown for information.
    pub pass: Option<bool>,
}

/// What the summary's title line says.
pub struct Run<'a> {
    /// The bench (`vigil-media remux`).
    pub title: &'a str,
    /// `full`, `quick`, `test (quick)`.
    pub mode: &'a str,
    /// ABBA pairs.
    pub pairs: usize,
    /// The input, described.
    pub input: &'a str,
    /// How long the run took.
    pub took: Duration,
    /// [`loadavg`] at the start.
    pub load_before: &'a str,
}

/// Prints the table; true when a target was missed.
pub fn summary(rows: &[Row], run: &Run<'_>) -> bool {
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
        "\n{} summary ({} mode, input {}, {} ABBA pairs, load average {} -> {}, {:.0} s)",
        run.title,
        run.mode,
        run.input,
        run.pairs,
        run.load_before,
        loadavg(),
        run.took.as_secs_f64()
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
pub fn spread(v: &[f64]) -> (f64, f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (median(v.to_vec()), lo, hi)
}

/// The median; the mean of the middle two for an even count.
pub fn median(mut v: Vec<f64>) -> f64 {
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
