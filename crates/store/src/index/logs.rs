//! Log groups and their batches in the embedded index (`crate::logs`).
//!
//! A batch has three rows, written and removed together: its [`LogBatchMeta`] under
//! (group, log, batch number), a time row under (group, log, arrival_ms, batch number) for
//! "the first batch at or after a time" and for expiry, and a membership row under
//! (segment, group, log, batch number) so that dropping a segment finds its batches. Each
//! batch also counts in its segment row's `live_fragments` and `live_bytes`.

use std::collections::HashMap;

use redb::{ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction};

use super::WrappedKey;
use super::redb::{RedbIndex, SEGMENTS};
use crate::error::{Result, StoreError};
use crate::index::SegmentRow;
use crate::logs::{LOG_GROUP_RECORD_VERSION, LogBatchMeta, LogGroupRecord, LogGroupStatus};

pub(super) const LOG_GROUPS: TableDefinition<u64, &str> = TableDefinition::new("log_groups");
pub(super) const LOG_GROUP_NAMES: TableDefinition<&str, u64> =
    TableDefinition::new("log_group_names");
pub(super) const LOG_KEYS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("log_keys");
pub(super) const LOG_BATCHES: TableDefinition<(u64, u32, u64), &[u8]> =
    TableDefinition::new("log_batches");
pub(super) const LOG_BY_TIME: TableDefinition<(u64, u32, u64, u64), ()> =
    TableDefinition::new("log_by_time");
pub(super) const SEGMENT_LOG_BATCHES: TableDefinition<(u64, u64, u32, u64), ()> =
    TableDefinition::new("segment_log_batches");

/// Creates the log tables if they are missing (a new index, or one of format version 1).
pub(super) fn create_tables(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(LOG_GROUPS)?;
    txn.open_table(LOG_GROUP_NAMES)?;
    txn.open_table(LOG_KEYS)?;
    txn.open_table(LOG_BATCHES)?;
    txn.open_table(LOG_BY_TIME)?;
    txn.open_table(SEGMENT_LOG_BATCHES)?;
    Ok(())
}

fn decode_group(json: &str) -> Result<LogGroupRecord> {
    let rec: LogGroupRecord = serde_json::from_str(json)
        .map_err(|e| StoreError::Index(format!("a log group record does not decode: {e}")))?;
    if rec.v != LOG_GROUP_RECORD_VERSION {
        return Err(StoreError::FormatVersion {
            what: format!("log group record {}", rec.id),
            found: rec.v,
            supported: LOG_GROUP_RECORD_VERSION,
        });
    }
    Ok(rec)
}

fn encode_group(rec: &LogGroupRecord) -> Result<String> {
    serde_json::to_string(rec).map_err(|e| StoreError::Index(e.to_string()))
}

fn decode_batch(b: &[u8]) -> Result<LogBatchMeta> {
    LogBatchMeta::decode(b)
        .ok_or_else(|| StoreError::Index("a log batch row does not decode".into()))
}

pub(super) fn create_group(
    ix: &RedbIndex,
    record: &LogGroupRecord,
    key: &WrappedKey,
) -> Result<()> {
    let json = encode_group(record)?;
    ix.write(true, |txn| {
        let mut names = txn.open_table(LOG_GROUP_NAMES)?;
        if names.get(record.name.as_str())?.is_some() {
            return Err(StoreError::LogGroupExists(record.name.clone()));
        }
        names.insert(record.name.as_str(), record.id)?;
        txn.open_table(LOG_GROUPS)?
            .insert(record.id, json.as_str())?;
        txn.open_table(LOG_KEYS)?
            .insert((record.id, record.key_generation), key.encode().as_slice())?;
        Ok(())
    })
}

pub(super) fn group(ix: &RedbIndex, id: u64) -> Result<Option<LogGroupRecord>> {
    let r = ix.db.begin_read()?;
    let t = r.open_table(LOG_GROUPS)?;
    let v = t.get(id)?;
    v.map(|v| decode_group(v.value())).transpose()
}

pub(super) fn group_by_name(ix: &RedbIndex, name: &str) -> Result<Option<LogGroupRecord>> {
    let r = ix.db.begin_read()?;
    let Some(id) = r.open_table(LOG_GROUP_NAMES)?.get(name)?.map(|v| v.value()) else {
        return Ok(None);
    };
    let t = r.open_table(LOG_GROUPS)?;
    let v = t.get(id)?;
    v.map(|v| decode_group(v.value())).transpose()
}

pub(super) fn list_groups(
    ix: &RedbIndex,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<LogGroupRecord>> {
    let r = ix.db.begin_read()?;
    let names = r.open_table(LOG_GROUP_NAMES)?;
    let groups = r.open_table(LOG_GROUPS)?;
    let start = match after {
        Some(a) if a >= prefix => a,
        _ => prefix,
    };
    let mut out = Vec::new();
    for item in names.range(start..)? {
        let (name, id) = item?;
        let name = name.value();
        if after == Some(name) {
            continue;
        }
        if !name.starts_with(prefix) || out.len() >= limit {
            break;
        }
        if let Some(v) = groups.get(id.value())? {
            out.push(decode_group(v.value())?);
        }
    }
    Ok(out)
}

pub(super) fn all_groups(ix: &RedbIndex) -> Result<Vec<LogGroupRecord>> {
    let r = ix.db.begin_read()?;
    let t = r.open_table(LOG_GROUPS)?;
    let mut out = Vec::new();
    for item in t.iter()? {
        out.push(decode_group(item?.1.value())?);
    }
    Ok(out)
}

pub(super) fn put_group(ix: &RedbIndex, record: &LogGroupRecord) -> Result<()> {
    let json = encode_group(record)?;
    ix.write(true, |txn| {
        txn.open_table(LOG_GROUPS)?
            .insert(record.id, json.as_str())?;
        Ok(())
    })
}

pub(super) fn add_key(
    ix: &RedbIndex,
    record: &LogGroupRecord,
    generation: u32,
    key: &WrappedKey,
) -> Result<()> {
    let json = encode_group(record)?;
    ix.write(true, |txn| {
        txn.open_table(LOG_KEYS)?
            .insert((record.id, generation), key.encode().as_slice())?;
        txn.open_table(LOG_GROUPS)?
            .insert(record.id, json.as_str())?;
        Ok(())
    })
}

pub(super) fn keys(ix: &RedbIndex, group: u64) -> Result<Vec<(u32, WrappedKey)>> {
    let r = ix.db.begin_read()?;
    let t = r.open_table(LOG_KEYS)?;
    let mut out = Vec::new();
    for item in t.range((group, 0)..=(group, u32::MAX))? {
        let (k, v) = item?;
        let key = WrappedKey::decode(v.value())
            .ok_or_else(|| StoreError::Index("a wrapped log key does not decode".into()))?;
        out.push((k.value().1, key));
    }
    Ok(out)
}

pub(super) fn mark_deleted(ix: &RedbIndex, record: &LogGroupRecord) -> Result<()> {
    let json = encode_group(record)?;
    ix.write(true, |txn| {
        txn.open_table(LOG_GROUP_NAMES)?
            .remove(record.name.as_str())?;
        txn.open_table(LOG_GROUPS)?
            .insert(record.id, json.as_str())?;
        txn.open_table(LOG_KEYS)?
            .retain_in((record.id, 0)..=(record.id, u32::MAX), |_, _| false)?;
        Ok(())
    })
}

pub(super) fn purge(ix: &RedbIndex, id: u64, max: usize) -> Result<(u64, bool)> {
    ix.write(true, |txn| {
        let batch: Vec<LogBatchMeta> = {
            let t = txn.open_table(LOG_BATCHES)?;
            let mut v = Vec::new();
            for item in t.range((id, 0, 0)..=(id, u32::MAX, u64::MAX))?.take(max) {
                v.push(decode_batch(item?.1.value())?);
            }
            v
        };
        remove_all(txn, &batch)?;
        let n = batch.len() as u64;
        if batch.len() < max {
            txn.open_table(LOG_GROUPS)?.remove(id)?;
            return Ok((n, true));
        }
        Ok((n, false))
    })
}

pub(super) fn batches(
    ix: &RedbIndex,
    group: u64,
    log: u32,
    from_batch: u64,
    limit: usize,
) -> Result<Vec<LogBatchMeta>> {
    let r = ix.db.begin_read()?;
    let t = r.open_table(LOG_BATCHES)?;
    let mut out = Vec::new();
    for item in t
        .range((group, log, from_batch)..=(group, log, u64::MAX))?
        .take(limit)
    {
        out.push(decode_batch(item?.1.value())?);
    }
    Ok(out)
}

pub(super) fn last_batch(ix: &RedbIndex, group: u64, log: u32) -> Result<Option<LogBatchMeta>> {
    let r = ix.db.begin_read()?;
    let t = r.open_table(LOG_BATCHES)?;
    let last = t
        .range((group, log, 0)..=(group, log, u64::MAX))?
        .next_back();
    last.map(|item| decode_batch(item?.1.value())).transpose()
}

pub(super) fn batch_at_time(
    ix: &RedbIndex,
    group: u64,
    log: u32,
    ts_ms: u64,
) -> Result<Option<LogBatchMeta>> {
    let r = ix.db.begin_read()?;
    let by_time = r.open_table(LOG_BY_TIME)?;
    let first = by_time
        .range((group, log, ts_ms, 0)..=(group, log, u64::MAX, u64::MAX))?
        .next();
    let Some(item) = first else {
        return Ok(None);
    };
    let (_, _, _, number) = item?.0.value();
    let t = r.open_table(LOG_BATCHES)?;
    let v = t.get((group, log, number))?;
    v.map(|v| decode_batch(v.value())).transpose()
}

pub(super) fn log_numbers(ix: &RedbIndex, group: u64) -> Result<Vec<u32>> {
    let r = ix.db.begin_read()?;
    let t = r.open_table(LOG_BATCHES)?;
    let mut out = Vec::new();
    let mut from = 0u32;
    // One seek per log: the first row at or after (group, from), then past that log.
    while let Some(item) = t
        .range((group, from, 0)..=(group, u32::MAX, u64::MAX))?
        .next()
    {
        let (_, log, _) = item?.0.value();
        out.push(log);
        match log.checked_add(1) {
            Some(next) => from = next,
            None => break,
        }
    }
    Ok(out)
}

pub(super) fn expire(
    ix: &RedbIndex,
    group: u64,
    log: u32,
    cutoff_ms: u64,
    max: usize,
) -> Result<u64> {
    if cutoff_ms == 0 {
        return Ok(0);
    }
    ix.write(false, |txn| {
        let batch: Vec<LogBatchMeta> = {
            let by_time = txn.open_table(LOG_BY_TIME)?;
            let rows = txn.open_table(LOG_BATCHES)?;
            let mut v = Vec::new();
            for item in by_time
                .range((group, log, 0, 0)..(group, log, cutoff_ms, 0))?
                .take(max)
            {
                let (_, _, _, number) = item?.0.value();
                if let Some(row) = rows.get((group, log, number))? {
                    v.push(decode_batch(row.value())?);
                }
            }
            v
        };
        remove_all(txn, &batch)?;
        Ok(batch.len() as u64)
    })
}

/// Adds batches' rows and segment accounting inside a group commit's transaction. A batch of
/// a group that is gone or being deleted, or one already indexed (replayed by recovery), adds
/// nothing.
pub(super) fn insert_all(
    txn: &WriteTransaction,
    metas: &[LogBatchMeta],
    segs: &mut Table<'_, u64, &[u8]>,
) -> Result<()> {
    if metas.is_empty() {
        return Ok(());
    }
    let mut rows = txn.open_table(LOG_BATCHES)?;
    let mut by_time = txn.open_table(LOG_BY_TIME)?;
    let mut members = txn.open_table(SEGMENT_LOG_BATCHES)?;
    let groups = txn.open_table(LOG_GROUPS)?;
    let mut active: HashMap<u64, bool> = HashMap::new();
    // Segment accounting, summed per segment: one row update each, not one per batch.
    let mut seg_delta: HashMap<u64, (u64, u64)> = HashMap::new();
    for m in metas {
        let live = match active.get(&m.group) {
            Some(&l) => l,
            None => {
                let l = groups
                    .get(m.group)?
                    .map(|v| decode_group(v.value()))
                    .transpose()?
                    .is_some_and(|g| g.status == LogGroupStatus::Active);
                active.insert(m.group, l);
                l
            }
        };
        if !live || rows.get((m.group, m.log, m.batch))?.is_some() {
            continue;
        }
        rows.insert((m.group, m.log, m.batch), m.encode().as_slice())?;
        by_time.insert((m.group, m.log, m.arrival_ms, m.batch), ())?;
        members.insert((m.location.segment, m.group, m.log, m.batch), ())?;
        let d = seg_delta.entry(m.location.segment).or_default();
        d.0 += 1;
        d.1 += u64::from(m.location.len);
    }
    for (seg, (n, bytes)) in seg_delta {
        let row = segs
            .get(seg)?
            .and_then(|v| SegmentRow::decode(seg, v.value()));
        if let Some(mut row) = row {
            row.live_fragments += n;
            row.live_bytes += bytes;
            segs.insert(seg, row.encode().as_slice())?;
        }
    }
    Ok(())
}

/// Removes batches' rows and accounting inside a transaction (batches already gone are
/// skipped).
pub(super) fn remove_all(txn: &WriteTransaction, metas: &[LogBatchMeta]) -> Result<()> {
    if metas.is_empty() {
        return Ok(());
    }
    let mut rows = txn.open_table(LOG_BATCHES)?;
    let mut by_time = txn.open_table(LOG_BY_TIME)?;
    let mut members = txn.open_table(SEGMENT_LOG_BATCHES)?;
    let mut segs = txn.open_table(SEGMENTS)?;
    let mut seg_delta: HashMap<u64, (u64, u64)> = HashMap::new();
    for m in metas {
        if rows.remove((m.group, m.log, m.batch))?.is_none() {
            continue;
        }
        by_time.remove((m.group, m.log, m.arrival_ms, m.batch))?;
        members.remove((m.location.segment, m.group, m.log, m.batch))?;
        let d = seg_delta.entry(m.location.segment).or_default();
        d.0 += 1;
        d.1 += u64::from(m.location.len);
    }
    for (seg, (n, bytes)) in seg_delta {
        let row = segs
            .get(seg)?
            .and_then(|v| SegmentRow::decode(seg, v.value()));
        if let Some(mut row) = row {
            row.live_fragments = row.live_fragments.saturating_sub(n);
            row.live_bytes = row.live_bytes.saturating_sub(bytes);
            segs.insert(seg, row.encode().as_slice())?;
        }
    }
    Ok(())
}

/// Removes every batch of a segment inside a transaction; returns how many there were.
pub(super) fn drop_segment(txn: &WriteTransaction, segment: u64) -> Result<u64> {
    let metas: Vec<LogBatchMeta> = {
        let members = txn.open_table(SEGMENT_LOG_BATCHES)?;
        let rows = txn.open_table(LOG_BATCHES)?;
        let mut v = Vec::new();
        let range = (segment, 0, 0, 0)..=(segment, u64::MAX, u32::MAX, u64::MAX);
        for item in members.range(range)? {
            let (_, g, l, b) = item?.0.value();
            if let Some(row) = rows.get((g, l, b))? {
                v.push(decode_batch(row.value())?);
            }
        }
        v
    };
    remove_all(txn, &metas)?;
    txn.open_table(SEGMENT_LOG_BATCHES)?.retain_in(
        (segment, 0, 0, 0)..=(segment, u64::MAX, u32::MAX, u64::MAX),
        |_, _| false,
    )?;
    Ok(metas.len() as u64)
}
