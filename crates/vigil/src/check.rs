//! `vigil check`: verifies a data directory, and repairs what is safe to repair.
//!
//! Opening the store makes the repairs that recovery always makes (a torn tail cut off, records
//! written after the last index checkpoint indexed again, rows of missing segments dropped).
//! The check then reads every record of every segment and every fragment in the index,
//! authenticating each one. `--repair` also removes index entries whose records are damaged.
//! It also reads `cameras.json` back as the server does at start (sealed under the default
//! master key): a file that does not open is a problem, since the server refuses to start on
//! it. Exit status: 0 when the store is sound, 1 when damage remains.
//!
//! A data directory the store refuses to open (its index or `keys/default.key` missing or
//! damaged: `vigil_store::datadir`) is reported as a problem, with the store's message naming
//! the file and what to do, and exit status 1; never "ok". `--restore-index` first replaces a
//! missing or damaged index with the backup the server keeps (`index.redb.bak`, see
//! `vigil_store::backup`), keeping the damaged one as `index.redb.damaged`, then checks the
//! store as usual: opening it re-indexes every segment.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use vigil_store::backup::{RestoreReport, restore_index};
use vigil_store::check::{CheckReport, check};
use vigil_store::datadir::{BACKUP_FILE, INDEX_FILE};
use vigil_store::{Store, StoreError, SystemClock};

use crate::storage::StoreArgs;

/// Arguments of `vigil check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub store: StoreArgs,

    /// Also remove index entries whose records are damaged (they can never be read).
    #[arg(long)]
    pub repair: bool,

    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,

    /// First restore a missing or damaged index.redb from the backup the server keeps
    /// (index.redb.bak); the damaged index is kept as index.redb.damaged. Refused while
    /// index.redb is sound.
    #[arg(long)]
    pub restore_index: bool,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    clean: bool,
    segments: usize,
    segment_bytes: u64,
    records: u64,
    streams: usize,
    fragments: u64,
    log_groups: usize,
    log_batches: u64,
    reindexed: u64,
    repairs: Vec<&'a str>,
    problems: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    restored: Option<&'a str>,
    /// Cameras in `cameras.json`, read back and authenticated (absent: no file, or it failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    cameras: Option<usize>,
}

/// Runs the check.
pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = args.store.data_dir.clone();
    let restored = if args.restore_index {
        let r = restore_index(&dir)
            .with_context(|| format!("restoring the index of {}", dir.display()))?;
        let line = restored_line(&dir, &r);
        if !args.json {
            println!("{line}");
        }
        Some(line)
    } else {
        None
    };
    if !holds_a_store(&dir) {
        anyhow::bail!("{} holds no Vigil store (no index.redb)", dir.display());
    }
    let mut cfg = args.store.config()?;
    cfg.retention_interval_ms = 0;
    cfg.min_free_bytes = 0;
    let store = match Store::open(cfg, Arc::new(SystemClock)) {
        Ok(store) => store,
        Err(e) => {
            if matches!(e, StoreError::DataDir { .. }) {
                // Damage like any other: reported, never "ok".
                let problem = e.to_string();
                let report = CheckReport {
                    problems: vec![problem],
                    ..CheckReport::default()
                };
                if args.json {
                    print_json(&report, restored.as_deref(), None)?;
                } else {
                    println!("store {}", dir.display());
                    for line in &report.problems {
                        println!("  PROBLEM: {line}");
                    }
                }
            }
            return Err(anyhow::Error::new(e))
                .with_context(|| format!("opening the store in {}", dir.display()));
        }
    };

    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut step = String::new();
    let mut report = check(&store, args.repair, &mut |what, done, total| {
        if what != step {
            step = what.to_owned();
            bar.set_message(step.clone());
        }
        bar.set_length(total);
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    let cameras = check_cameras(&dir, &store, &mut report);
    store.close()?;

    if args.json {
        print_json(&report, restored.as_deref(), cameras)?;
    } else {
        print_text(&dir, &report, cameras);
    }
    if report.is_clean() {
        Ok(())
    } else {
        anyhow::bail!(
            "{} problem(s) found in {}",
            report.problems.len() + report.recovery.problems.len(),
            dir.display()
        )
    }
}

/// Reads `cameras.json` back as the server does at start (sealed under the store's default
/// master key): a file that does not open is a problem; the number of cameras it holds
/// otherwise (`None`: no file).
fn check_cameras(dir: &Path, store: &Store, report: &mut CheckReport) -> Option<usize> {
    let file = crate::camera::persist::CameraFile::new(dir, store.clone());
    if !file.path().exists() {
        return None;
    }
    match file.load() {
        Ok(loaded) => {
            if let Some(why) = loaded.rewrite {
                report.repairs.push(format!(
                    "{} will be sealed again at the next start: {why}",
                    file.path().display()
                ));
            }
            Some(loaded.cameras.len())
        }
        Err(e) => {
            report.problems.push(format!("{e:#}"));
            None
        }
    }
}

/// Whether `dir` holds anything of a store: an index, its backup, or segment files.
fn holds_a_store(dir: &Path) -> bool {
    let segments = std::fs::read_dir(dir.join("segments"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|e| e.path().extension().is_some_and(|x| x == "seg"))
        })
        .unwrap_or(false);
    dir.join(INDEX_FILE).exists() || dir.join(BACKUP_FILE).exists() || segments
}

fn restored_line(dir: &Path, r: &RestoreReport) -> String {
    let mut line = format!(
        "restored {} from {BACKUP_FILE} (it {}): {} stream(s), {} data stream log group(s), {} \
         face collection(s); every segment is indexed again",
        dir.join(INDEX_FILE).display(),
        r.problem,
        r.streams,
        r.log_groups,
        r.collections
    );
    if let Some(kept) = &r.kept_damaged {
        line.push_str(&format!(
            "; the damaged index is kept as {}",
            kept.display()
        ));
    }
    line
}

fn print_json(
    report: &CheckReport,
    restored: Option<&str>,
    cameras: Option<usize>,
) -> anyhow::Result<()> {
    let json = JsonReport {
        clean: report.is_clean(),
        segments: report.segments,
        segment_bytes: report.segment_bytes,
        records: report.records,
        streams: report.streams,
        fragments: report.fragments,
        log_groups: report.log_groups,
        log_batches: report.log_batches,
        reindexed: report.recovery.reindexed,
        repairs: all(&report.recovery.repairs, &report.repairs),
        problems: all(&report.recovery.problems, &report.problems),
        restored,
        cameras,
    };
    println!("{}", serde_json::to_string_pretty(&json)?);
    Ok(())
}

fn all<'a>(a: &'a [String], b: &'a [String]) -> Vec<&'a str> {
    a.iter().chain(b).map(String::as_str).collect()
}

fn print_text(dir: &Path, r: &CheckReport, cameras: Option<usize>) {
    println!("store {}", dir.display());
    println!(
        "  {} segment(s), {} bytes, {} intact record(s)",
        r.segments, r.segment_bytes, r.records
    );
    println!(
        "  {} stream(s), {} fragment(s) read back and authenticated",
        r.streams, r.fragments
    );
    println!(
        "  {} data stream log group(s), {} record batch(es) read back and authenticated",
        r.log_groups, r.log_batches
    );
    if let Some(n) = cameras {
        println!("  {n} camera(s) in cameras.json read back and authenticated");
    }
    if r.recovery.reindexed > 0 {
        println!(
            "  {} record(s) written after the last index checkpoint were indexed again",
            r.recovery.reindexed
        );
    }
    for line in all(&r.recovery.repairs, &r.repairs) {
        println!("  repaired: {line}");
    }
    for line in all(&r.recovery.problems, &r.problems) {
        println!("  PROBLEM: {line}");
    }
    if r.is_clean() {
        println!("  ok");
    }
}
