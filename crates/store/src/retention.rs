//! Retention: what is kept, and how space comes back.
//!
//! A pass (every `retention_interval_ms`, or [`crate::Store::run_retention`]):
//!
//! 1. for each stream, removes from the index the fragments whose server timestamp is older
//!    than `DataRetentionInHours`, then the oldest ones beyond its byte budget (both are index
//!    range operations);
//! 2. purges the index entries of deleted streams (their data keys are already gone);
//! 3. for each log group, removes each log's batches that arrived before its retention (index
//!    range deletes by arrival time, and the same cut in the log's in-memory tail), and purges
//!    the batch rows of deleted groups (their data keys are already gone);
//! 4. asks the commit thread to seal active segments past their maximum age;
//! 5. makes the index durable, then deletes every sealed segment file no fragment or log
//!    batch lives in any more. Space comes back a whole segment at a time, never by
//!    rewriting.
//!
//! Streams of similar retention share a lane of segments ([`crate::lane_for`]), so a segment's
//! fragments expire at about the same time. A fragment expired early (a retention decrease, a
//! budget) is unreachable at once, and its bytes, still encrypted, go with their segment.
//!
//! The free-disk floor is kept by the commit thread itself, before every write.

use tokio::sync::oneshot;

use crate::commit::Job;
use crate::engine::{Store, lock};
use crate::error::Result;
use crate::logs::{LogGroupRecord, LogGroupStatus};
use crate::types::{StreamRecord, StreamStatus};

/// Fragments removed per index transaction.
const CHUNK: usize = 10_000;

/// What a retention pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Fragments expired by age.
    pub expired: u64,
    /// Fragments removed to keep byte budgets.
    pub over_budget: u64,
    /// Fragments of deleted streams purged.
    pub purged: u64,
    /// Deleted streams fully purged.
    pub streams_purged: u64,
    /// Segment files deleted.
    pub segments_deleted: u64,
    /// Log batches expired by age.
    pub log_batches_expired: u64,
    /// Log batches of deleted groups purged.
    pub log_batches_purged: u64,
    /// Deleted log groups fully purged.
    pub log_groups_purged: u64,
}

/// Applies a log group's retention to its batches, in the index and in memory; returns how
/// many batches went.
pub(crate) fn expire_log_group(store: &Store, rec: &LogGroupRecord) -> Result<u64> {
    let index = store.index();
    let cutoff = store
        .clock()
        .now_ms()
        .saturating_sub(u64::from(rec.retention_hours) * 3_600_000);
    let mut expired = 0;
    for log in index.log_numbers(rec.id)? {
        loop {
            let n = index.expire_log_batches(rec.id, log, cutoff, CHUNK)?;
            expired += n;
            if n < CHUNK as u64 {
                break;
            }
        }
        if let Some(state) = store.0.logs.state_if_any(rec.id, log) {
            state.expire(cutoff);
        }
    }
    Ok(expired)
}

/// Applies a stream's retention and budget to its index entries.
pub(crate) fn expire_stream(store: &Store, rec: &StreamRecord) -> Result<(u64, u64)> {
    let index = store.index();
    let now = store.clock().now_ms();
    let cutoff = if rec.data_retention_hours == 0 {
        // Nothing is kept: whatever was stored under an earlier retention goes.
        u64::MAX
    } else {
        now.saturating_sub(u64::from(rec.data_retention_hours) * 3_600_000)
    };
    let mut expired = 0;
    loop {
        let n = index.expire_before(rec.id, cutoff, CHUNK)?;
        expired += n;
        if n < CHUNK as u64 {
            break;
        }
    }
    let mut over = 0;
    if let Some(budget) = rec.byte_budget {
        loop {
            let n = index.expire_to_budget(rec.id, budget, CHUNK)?;
            over += n;
            if n < CHUNK as u64 {
                break;
            }
        }
    }
    if expired + over > 0
        && let Some(live) = lock(&store.0.live).get(&rec.id)
    {
        live.touch();
    }
    Ok((expired, over))
}

pub(crate) fn run(store: &Store) -> Result<RetentionReport> {
    let mut report = RetentionReport::default();
    // Retention only removes index entries, which needs little room; on a disk with less than
    // that, the commit thread frees space first (`crate::space`).
    if let Err(e) = store.check_space_to_delete() {
        tracing::warn!(error = %e, "retention pass put off");
        return Ok(report);
    }
    let index = store.index();
    for rec in index.all_streams()? {
        // Checked again for every stream: a pass is many transactions.
        if let Err(e) = store.check_space_to_delete() {
            tracing::warn!(error = %e, "retention pass cut short");
            return Ok(report);
        }
        match rec.status {
            StreamStatus::Active => {
                let (e, o) = expire_stream(store, &rec)?;
                report.expired += e;
                report.over_budget += o;
            }
            StreamStatus::Deleting => loop {
                let before = index.usage(rec.id)?.fragments;
                let done = index.purge_stream(rec.id, CHUNK)?;
                report.purged += before.saturating_sub(index.usage(rec.id)?.fragments);
                if done {
                    report.streams_purged += 1;
                    break;
                }
            },
        }
    }
    for rec in index.all_log_groups()? {
        match rec.status {
            LogGroupStatus::Active => report.log_batches_expired += expire_log_group(store, &rec)?,
            LogGroupStatus::Deleting => loop {
                let (n, done) = index.purge_log_group(rec.id, CHUNK)?;
                report.log_batches_purged += n;
                if done {
                    report.log_groups_purged += 1;
                    break;
                }
            },
        }
    }
    // Seal old active segments (the commit thread owns them).
    let (tx, rx) = oneshot::channel();
    if store.send(Job::Maintain(tx)).is_ok() {
        let _ = rx.blocking_recv();
    }
    index.checkpoint()?;
    for row in index.segments()? {
        if row.sealed && row.live_fragments == 0 {
            index.drop_segment(row.id)?;
            store.blobs().delete(row.id)?;
            report.segments_deleted += 1;
        }
    }
    if report != RetentionReport::default() {
        tracing::info!(
            expired = report.expired,
            over_budget = report.over_budget,
            purged = report.purged,
            log_batches_expired = report.log_batches_expired,
            log_batches_purged = report.log_batches_purged,
            segments_deleted = report.segments_deleted,
            "retention pass"
        );
    }
    Ok(report)
}
