//! `vigil check`: verifies a data directory, and repairs what is safe to repair.
//!
//! Opening the store makes the repairs that recovery always makes (a torn tail cut off, records
//! written after the last index checkpoint indexed again, rows of missing segments dropped).
//! The check then reads every record of every segment and every fragment in the index,
//! authenticating each one. `--repair` also removes index entries whose records are damaged.
//! Exit status: 0 when the store is sound, 1 when damage remains.

use std::sync::Arc;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use vigil_store::check::{CheckReport, check};
use vigil_store::{Store, SystemClock};

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
}

/// Runs the check.
pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = args.store.data_dir.clone();
    if !dir.join("index.redb").exists() {
        anyhow::bail!("{} holds no Vigil store (no index.redb)", dir.display());
    }
    let mut cfg = args.store.config()?;
    cfg.retention_interval_ms = 0;
    cfg.min_free_bytes = 0;
    let store = Store::open(cfg, Arc::new(SystemClock))
        .with_context(|| format!("opening the store in {}", dir.display()))?;

    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut step = String::new();
    let report = check(&store, args.repair, &mut |what, done, total| {
        if what != step {
            step = what.to_owned();
            bar.set_message(step.clone());
        }
        bar.set_length(total);
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    store.close()?;

    if args.json {
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
        };
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print_text(&dir, &report);
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

fn all<'a>(a: &'a [String], b: &'a [String]) -> Vec<&'a str> {
    a.iter().chain(b).map(String::as_str).collect()
}

fn print_text(dir: &std::path::Path, r: &CheckReport) {
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
