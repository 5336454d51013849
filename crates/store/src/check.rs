//! Verifying a store: what `vigil check` runs.
//!
//! Opening the store already makes the safe repairs (see [`crate::recovery`]), and refuses a
//! data directory whose index or default master key is missing or damaged (see
//! [`crate::datadir`]): a check never reports such a store sound. The check then reads
//! everything: every record of every segment (checksums), every fragment the index knows (the
//! record it points to is intact, is that fragment, and authenticates under the stream's key;
//! its track header is in the index), and every log batch likewise (under its group's key, its entries decoding
//! to the count its header gives). With `repair`, index entries whose records are damaged are
//! removed, since they can never be read; nothing else is changed.

use std::collections::HashSet;

use crate::engine::Store;
use crate::error::Result;
use crate::logs::{LogBatchMeta, LogGroupStatus};
use crate::recovery::{RecoveryReport, scan_segment_thorough};
use crate::types::{FragmentMeta, StreamStatus};

/// What a check found.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// What opening the store recovered and repaired.
    pub recovery: RecoveryReport,
    /// Segment files read.
    pub segments: usize,
    /// Intact records in them.
    pub records: u64,
    /// Bytes of segment files.
    pub segment_bytes: u64,
    /// Streams checked.
    pub streams: usize,
    /// Fragments in the index, all read back and authenticated.
    pub fragments: u64,
    /// Log groups checked.
    pub log_groups: usize,
    /// Log batches in the index, all read back and authenticated.
    pub log_batches: u64,
    /// Damage found.
    pub problems: Vec<String>,
    /// Repairs made by the check itself.
    pub repairs: Vec<String>,
}

impl CheckReport {
    /// Whether the store is sound (after repairs).
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.recovery.problems.is_empty()
    }
}

/// Progress of a check: `(step, done, total)`.
pub type Progress<'a> = &'a mut dyn FnMut(&str, u64, u64);

/// Checks `store` (see the module docs).
pub fn check(store: &Store, repair: bool, progress: Progress<'_>) -> Result<CheckReport> {
    let mut report = CheckReport {
        recovery: store.recovery_report().clone(),
        ..CheckReport::default()
    };
    let blobs = store.blobs();
    let index = store.index();

    let ids = blobs.list()?;
    let total = ids.len() as u64;
    for (i, &id) in ids.iter().enumerate() {
        progress("segments", i as u64, total);
        let (scan, damage) = scan_segment_thorough(blobs.as_ref(), id)?;
        report.segments += 1;
        report.segment_bytes += scan.len;
        report.records += scan.records.len() as u64;
        for d in damage {
            report.problems.push(format!(
                "{} ({} bytes) is damaged at {d}",
                blobs.describe(id),
                scan.len
            ));
        }
    }
    progress("segments", total, total);

    let streams = index.all_streams()?;
    let total: u64 = streams
        .iter()
        .map(|s| index.usage(s.id).map(|u| u.fragments).unwrap_or(0))
        .sum();
    let mut done = 0;
    let mut damaged: Vec<FragmentMeta> = Vec::new();
    for s in streams.iter().filter(|s| s.status == StreamStatus::Active) {
        report.streams += 1;
        let mut after = None;
        let mut count = 0u64;
        let mut bytes = 0u64;
        // Track headers seen in the index, so that each is looked up once.
        let mut headers: HashSet<u64> = HashSet::new();
        loop {
            let page = index.fragments_after(s.id, after, 1000)?;
            let Some(last) = page.last() else { break };
            after = Some(last.number);
            for m in &page {
                count += 1;
                bytes += u64::from(m.size);
                done += 1;
                // Reading checks the record's checksum, identity and authentication itself.
                if let Err(e) = store.read_meta(m) {
                    report
                        .problems
                        .push(format!("fragment {} of stream {:?}: {e}", m.number, s.name));
                    damaged.push(*m);
                } else if !headers.contains(&m.header_id) {
                    if index.header(s.id, m.header_id)?.is_some() {
                        headers.insert(m.header_id);
                    } else {
                        // Readable, but not playable: its header was lost with the index (one
                        // registered after the backup it was restored from).
                        report.problems.push(format!(
                            "fragment {} of stream {:?}: its track header {} is not in the index",
                            m.number, s.name, m.header_id
                        ));
                    }
                }
            }
            progress("fragments", done, total);
        }
        report.fragments += count;
        let usage = index.usage(s.id)?;
        if usage.fragments != count || usage.bytes != bytes {
            report.problems.push(format!(
                "stream {:?}: usage says {} fragments / {} bytes, the index holds {count} / {bytes}",
                s.name, usage.fragments, usage.bytes
            ));
        }
    }
    let damaged_batches = check_logs(store, &mut report, progress)?;
    if repair && !damaged.is_empty() {
        index.remove_fragments(&damaged)?;
        report.repairs.push(format!(
            "removed {} index entries whose records are damaged",
            damaged.len()
        ));
    }
    if repair && !damaged_batches.is_empty() {
        index.remove_log_batches(&damaged_batches)?;
        report.repairs.push(format!(
            "removed {} log batch entries whose records are damaged",
            damaged_batches.len()
        ));
    }
    Ok(report)
}

/// Reads back every batch of every active log group; returns the damaged ones.
fn check_logs(
    store: &Store,
    report: &mut CheckReport,
    progress: Progress<'_>,
) -> Result<Vec<LogBatchMeta>> {
    let index = store.index();
    let mut damaged = Vec::new();
    let groups = index.all_log_groups()?;
    for g in groups.iter().filter(|g| g.status == LogGroupStatus::Active) {
        report.log_groups += 1;
        for log in index.log_numbers(g.id)? {
            let mut from = 0;
            loop {
                let page = index.log_batches(g.id, log, from, 1000)?;
                let Some(last) = page.last() else { break };
                let Some(next) = last.batch.checked_add(1) else {
                    break;
                };
                from = next;
                for m in &page {
                    report.log_batches += 1;
                    if let Err(e) = store.read_log_batch(m) {
                        report.problems.push(format!(
                            "batch {} of log {log} of log group {:?}: {e}",
                            m.batch, g.name
                        ));
                        damaged.push(*m);
                    }
                }
                progress("log batches", report.log_batches, report.log_batches);
            }
        }
    }
    Ok(damaged)
}
