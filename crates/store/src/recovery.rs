//! Recovery on open, and the scan it shares with `vigil check`.
//!
//! The index is made durable by checkpoints, and everything appended since is in the segments,
//! each record self-describing and checksummed. So on open:
//!
//! - every segment is read from the length the index has indexed (its whole length if the index
//!   has no row for it) to its end, and each intact record, fragment or log batch, is indexed
//!   again (idempotently; a batch of a group deleted meanwhile is not);
//! - the first record that is cut short or fails its checksum in a lane's **newest** segment is
//!   a torn write of a batch that was never reported durable: the file is cut back to the last
//!   intact record. In an older segment (synced in full before the next one was created) it is
//!   damage, not a torn write: it is reported and left for `vigil check` to show;
//! - a file too short to hold a segment header is a segment whose creation was cut off; it held
//!   nothing and is deleted;
//! - an index row whose file is gone is dropped with its fragments and batches, and reported;
//! - every segment present is sealed: new data goes to new segments.

use std::collections::{BTreeMap, HashMap};

use crate::blob::BlobStore;
use crate::error::Result;
use crate::index::{CommitBatch, Index, SegmentRow};
use crate::logs::LogBatchMeta;
use crate::record::{
    FRAME_LEN, Frame, RecordHead, SEGMENT_HEADER_LEN, SegmentHeader, check_record,
};
use crate::types::{FragmentMeta, Location};

/// What recovery did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments read.
    pub segments: usize,
    /// Records found after the last checkpoint and indexed again.
    pub reindexed: u64,
    /// Repairs made, in words.
    pub repairs: Vec<String>,
    /// Damage found and left in place, in words.
    pub problems: Vec<String>,
}

/// One record found by a scan.
#[derive(Debug, Clone, Copy)]
pub struct ScannedRecord {
    /// The record's header (a fragment's or a log batch's).
    pub header: RecordHead,
    /// Where it is.
    pub location: Location,
}

/// The result of scanning a segment from an offset.
#[derive(Debug, Clone)]
pub struct Scan {
    /// Intact records.
    pub records: Vec<ScannedRecord>,
    /// Where the intact part ends.
    pub end: u64,
    /// The file's length.
    pub len: u64,
    /// Why the scan stopped before the end, if it did.
    pub damage: Option<String>,
}

/// Reads records of `segment` from `from` on, stopping at the first one that is not intact.
pub fn scan_segment(blobs: &dyn BlobStore, segment: u64, from: u64) -> Result<Scan> {
    scan(blobs, segment, from)
}

/// Reads every record of `segment` it can: past a record whose body fails its checksum but
/// whose frame is plausible, it goes on with the next one (`damage` then lists each, and `end`
/// is where the first damage is). Stops at a frame that cannot be followed.
pub fn scan_segment_thorough(blobs: &dyn BlobStore, segment: u64) -> Result<(Scan, Vec<String>)> {
    let mut all = Vec::new();
    let mut first: Option<Scan> = None;
    let mut at = SEGMENT_HEADER_LEN;
    loop {
        let part = scan(blobs, segment, at)?;
        let records = part.records.clone();
        let stop = part.end;
        let damage = part.damage.clone();
        match &mut first {
            None => first = Some(part),
            Some(f) => f.records.extend(records),
        }
        let Some(d) = damage else { break };
        all.push(format!("byte {stop}: {d}"));
        // Skip the damaged record if its frame can be trusted for its length.
        let len = blobs.len(segment)?;
        if len - stop < FRAME_LEN as u64 {
            break;
        }
        let frame = Frame::decode(&blobs.read(segment, stop, FRAME_LEN)?).filter(Frame::is_sane);
        match frame {
            Some(f) if stop + FRAME_LEN as u64 + u64::from(f.body_len) <= len => {
                at = stop + FRAME_LEN as u64 + u64::from(f.body_len);
            }
            _ => break,
        }
    }
    let scan = first.unwrap_or(Scan {
        records: Vec::new(),
        end: SEGMENT_HEADER_LEN,
        len: 0,
        damage: None,
    });
    Ok((scan, all))
}

fn scan(blobs: &dyn BlobStore, segment: u64, from: u64) -> Result<Scan> {
    let len = blobs.len(segment)?;
    let mut at = from.max(SEGMENT_HEADER_LEN);
    let mut records = Vec::new();
    let mut damage = None;
    while at < len {
        if len - at < FRAME_LEN as u64 {
            damage = Some(format!("{} bytes of a cut-off record", len - at));
            break;
        }
        let frame_bytes = blobs.read(segment, at, FRAME_LEN)?;
        let Some(frame) = Frame::decode(&frame_bytes).filter(Frame::is_sane) else {
            damage = Some("a record frame with an impossible length".into());
            break;
        };
        let body_len = u64::from(frame.body_len);
        if len - at - (FRAME_LEN as u64) < body_len {
            damage = Some("a record cut off before its end".into());
            break;
        }
        // Read the header and checksum the body without holding big records twice.
        let body = blobs.read(segment, at + FRAME_LEN as u64, frame.body_len as usize)?;
        match check_record(&frame, &body) {
            Ok(header) => records.push(ScannedRecord {
                header,
                location: Location {
                    segment,
                    offset: at,
                    len: u32::try_from(FRAME_LEN as u64 + body_len).unwrap_or(u32::MAX),
                },
            }),
            Err(e) => {
                damage = Some(e);
                break;
            }
        }
        at += FRAME_LEN as u64 + body_len;
    }
    Ok(Scan {
        records,
        end: at.min(len),
        len,
        damage,
    })
}

/// The index entry a fragment record stands for (`None` for another kind).
pub fn meta_of(r: &ScannedRecord) -> Option<FragmentMeta> {
    let RecordHead::Fragment(h) = &r.header else {
        return None;
    };
    Some(FragmentMeta {
        stream: h.stream,
        number: h.number,
        producer_ts_ms: h.producer_ts_ms,
        server_ts_ms: h.server_ts_ms,
        duration_ms: h.duration_ms,
        size: h.payload_len,
        header_id: h.header_id,
        key_gen: h.key_gen,
        location: r.location,
    })
}

/// The index row a log batch record stands for (`None` for another kind).
pub fn batch_of(r: &ScannedRecord) -> Option<LogBatchMeta> {
    let RecordHead::LogBatch(h) = &r.header else {
        return None;
    };
    Some(LogBatchMeta {
        group: h.group,
        log: h.log,
        batch: h.batch,
        arrival_ms: h.arrival_ms,
        entries: h.entries,
        size: h.payload_len,
        key_gen: h.key_gen,
        location: r.location,
    })
}

/// Brings the index up to date with the segments. Returns the report, the highest number
/// seen (fragment, track header or log batch), and the highest segment id seen.
pub(crate) fn recover(
    index: &dyn Index,
    blobs: &dyn BlobStore,
) -> Result<(RecoveryReport, u64, u64)> {
    let mut report = RecoveryReport::default();
    let rows: HashMap<u64, SegmentRow> = index.segments()?.into_iter().map(|r| (r.id, r)).collect();
    let files = blobs.list()?;
    let mut max_number = 0u64;
    let mut max_segment = rows.keys().copied().max().unwrap_or(0);

    // Headers first, to know each lane's newest segment.
    let mut headers: BTreeMap<u64, SegmentHeader> = BTreeMap::new();
    for &id in &files {
        max_segment = max_segment.max(id);
        let len = blobs.len(id)?;
        if len < SEGMENT_HEADER_LEN {
            blobs.delete(id)?;
            report.repairs.push(format!(
                "deleted {}: a segment whose creation was cut off ({len} bytes)",
                blobs.describe(id)
            ));
            continue;
        }
        let bytes = blobs.read(id, 0, SEGMENT_HEADER_LEN as usize)?;
        match SegmentHeader::decode(&bytes) {
            Ok(h) if h.id == id => {
                headers.insert(id, h);
            }
            Ok(h) => report.problems.push(format!(
                "{} says it is segment {}; left alone",
                blobs.describe(id),
                h.id
            )),
            Err(e) => report
                .problems
                .push(format!("{}: {e}; left alone", blobs.describe(id))),
        }
    }
    let mut newest_in_lane: HashMap<u32, u64> = HashMap::new();
    for h in headers.values() {
        let e = newest_in_lane.entry(h.lane).or_insert(h.id);
        *e = (*e).max(h.id);
    }

    for (&id, h) in &headers {
        report.segments += 1;
        let row = rows.get(&id);
        let from = row.map_or(SEGMENT_HEADER_LEN, |r| r.indexed_len);
        let scan = scan_segment(blobs, id, from)?;
        if let Some(damage) = &scan.damage {
            if newest_in_lane.get(&h.lane) == Some(&id) {
                blobs.truncate(id, scan.end)?;
                report.repairs.push(format!(
                    "cut {} back from {} to {} bytes: {damage} (a write torn by a crash, never \
                     reported durable)",
                    blobs.describe(id),
                    scan.len,
                    scan.end
                ));
            } else {
                report.problems.push(format!(
                    "{} is damaged at byte {}: {damage}",
                    blobs.describe(id),
                    scan.end
                ));
            }
        }
        let mut max_ts = row.map_or(0, |r| r.max_server_ts_ms);
        for r in &scan.records {
            max_number = max_number.max(r.header.number());
            if let RecordHead::Fragment(f) = &r.header {
                max_number = max_number.max(f.header_id);
            }
            max_ts = max_ts.max(r.header.arrival_ms());
        }
        let metas: Vec<FragmentMeta> = scan.records.iter().filter_map(meta_of).collect();
        let batches: Vec<LogBatchMeta> = scan.records.iter().filter_map(batch_of).collect();
        report.reindexed += scan.records.len() as u64;
        let seg_row = SegmentRow {
            id,
            lane: h.lane,
            created_ms: h.created_ms,
            sealed: true,
            indexed_len: scan.end,
            live_fragments: 0,
            live_bytes: 0,
            max_server_ts_ms: max_ts,
        };
        let mut first = true;
        for chunk in metas.chunks(1000) {
            index.apply(
                &CommitBatch {
                    fragments: chunk.to_vec(),
                    log_batches: Vec::new(),
                    segments: if first { vec![seg_row] } else { Vec::new() },
                },
                false,
            )?;
            first = false;
        }
        for chunk in batches.chunks(1000) {
            index.apply(
                &CommitBatch {
                    fragments: Vec::new(),
                    log_batches: chunk.to_vec(),
                    segments: if first { vec![seg_row] } else { Vec::new() },
                },
                false,
            )?;
            first = false;
        }
        if first {
            index.apply(
                &CommitBatch {
                    segments: vec![seg_row],
                    ..CommitBatch::default()
                },
                false,
            )?;
        }
    }
    let mut missing: Vec<&SegmentRow> = rows
        .values()
        .filter(|r| !headers.contains_key(&r.id))
        .collect();
    missing.sort_by_key(|r| r.id);
    for row in missing {
        if files.contains(&row.id) {
            continue; // present but unreadable: reported above, kept
        }
        let dropped = index.drop_segment(row.id)?;
        if dropped > 0 {
            report.problems.push(format!(
                "segment {} is missing: its {dropped} fragments and log batches were removed from \
                 the index",
                row.id
            ));
        } else {
            report.repairs.push(format!(
                "dropped the index row of deleted segment {}",
                row.id
            ));
        }
    }
    index.checkpoint()?;
    Ok((report, max_number, max_segment))
}
