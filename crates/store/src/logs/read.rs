//! Reading logs: entries from a position, bounds, positions by time, and subscriptions.
//!
//! A read looks in the log's in-memory tail first and goes to the index only for positions
//! before the tail's front; a batch joins the tail only once it is indexed, so between the
//! two nothing is missed. Reading from disk switches to the tail as soon as the tail holds
//! the rest. These calls block on disk I/O (a blocking thread or `spawn_blocking`).

use bytes::Bytes;
use tokio::sync::watch;

use super::state::Collect;
use super::{LogBatchMeta, LogBounds, LogEntry, Position};
use crate::engine::Store;
use crate::error::{Result, StoreError};
use crate::record::{
    BODY_HEADER_LEN, FLAG_ENCRYPTED, FRAME_LEN, Frame, RecordHead, check_record, decode_entries,
};

/// Index rows fetched per step of a disk read.
const ROWS_PER_STEP: usize = 32;

impl Store {
    /// Entries of log `log` of group `group` from position `from` on (inclusive), in
    /// position order: at most `max_entries`, and at most `max_bytes` of keys and data, except
    /// that the first entry is returned whatever its size (so a reader is never stuck before
    /// a large entry). Fewer, or none, at the end of what is durable. A `from` before the
    /// oldest entry kept reads from the oldest; a position need not be an entry's (one past
    /// an entry, [`Position::next`], reads on after it). Entries come from memory at the live
    /// edge and from the segments otherwise, checked and authenticated.
    pub fn read_log(
        &self,
        group: u64,
        log: u32,
        from: Position,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<Vec<LogEntry>> {
        self.active_log_group(group)?;
        let mut into = Collect::new(max_entries, max_bytes);
        if max_entries == 0 {
            return Ok(into.out);
        }
        // No state: nothing was appended to this log since the store opened, so all of it
        // is in the index (and a read makes no state: only appends and subscriptions do).
        let state = self.0.logs.state_if_any(group, log);
        if state.as_ref().is_some_and(|s| s.read(from, &mut into)) {
            return Ok(into.out);
        }
        let mut next = from.batch();
        'disk: loop {
            let rows = self.0.index.log_batches(group, log, next, ROWS_PER_STEP)?;
            if rows.is_empty() {
                break;
            }
            for m in &rows {
                let Some(after) = m.batch.checked_add(1) else {
                    break 'disk;
                };
                next = after;
                let entries = match self.read_log_batch(m) {
                    Ok(e) => e,
                    // Expired, its segment deleted, between the index look and the read.
                    Err(StoreError::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                if !into.batch(m, &entries, from) {
                    break 'disk;
                }
                // Once the rest is in memory, read it from there.
                if state
                    .as_ref()
                    .is_some_and(|s| s.read(Position::new(next, 0), &mut into))
                {
                    break 'disk;
                }
            }
        }
        Ok(into.out)
    }

    /// [`Store::read_log`] when the log's in-memory tail holds `from` (a reader at the live
    /// edge): `Some` of what it holds from there, read without I/O, so callable on an async
    /// runtime's workers; `None` when the read must go to the segments (call
    /// [`Store::read_log`] off the runtime then).
    pub fn read_log_memory(
        &self,
        group: u64,
        log: u32,
        from: Position,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<Option<Vec<LogEntry>>> {
        self.active_log_group(group)?;
        let mut into = Collect::new(max_entries, max_bytes);
        if max_entries == 0 {
            return Ok(Some(into.out));
        }
        let Some(state) = self.0.logs.state_if_any(group, log) else {
            return Ok(None);
        };
        Ok(state.read(from, &mut into).then_some(into.out))
    }

    /// Reads a batch's entries (key, data) from its record: checksum, identity (the record is
    /// the batch the row names) and authentication under the group's key.
    pub fn read_log_batch(&self, m: &LogBatchMeta) -> Result<Vec<(Bytes, Bytes)>> {
        let loc = m.location;
        let mut buf = self
            .0
            .blobs
            .read(loc.segment, loc.offset, loc.len as usize)?;
        let corrupt = |detail: String| StoreError::Corrupt {
            file: self.0.blobs.describe(loc.segment),
            offset: loc.offset,
            detail,
        };
        let frame = Frame::decode(&buf).ok_or_else(|| corrupt("short record".into()))?;
        let body = buf
            .get(FRAME_LEN..)
            .filter(|b| b.len() == frame.body_len as usize)
            .ok_or_else(|| corrupt("record length disagrees with the index".into()))?;
        let h = match check_record(&frame, body).map_err(corrupt)? {
            RecordHead::LogBatch(h) => h,
            RecordHead::Fragment(f) => {
                return Err(corrupt(format!(
                    "record holds fragment {} of stream {}, the index expected batch {} of log \
                     {} of group {}",
                    f.number, f.stream, m.batch, m.log, m.group
                )));
            }
        };
        if (h.group, h.log, h.batch) != (m.group, m.log, m.batch) || h.entries != m.entries {
            return Err(corrupt(format!(
                "record holds batch {} of log {} of group {}, the index expected batch {} of \
                 log {} of group {}",
                h.batch, h.log, h.group, m.batch, m.log, m.group
            )));
        }
        let start = FRAME_LEN + BODY_HEADER_LEN;
        if h.flags & FLAG_ENCRYPTED != 0 {
            let key = self.log_data_key(m.group, h.key_gen)?;
            let (head, payload) = buf.split_at_mut(start);
            let aad = head.get(FRAME_LEN..).unwrap_or_default();
            let n = key
                .open(h.nonce, aad, payload)
                .ok_or_else(|| StoreError::Authentication {
                    what: format!("batch {} of log {} of group {}", m.batch, m.log, m.group),
                })?;
            if n != h.payload_len as usize {
                return Err(corrupt("payload length disagrees".into()));
            }
        }
        let end = start + h.payload_len as usize;
        let payload = Bytes::from(buf).slice(start..end);
        decode_entries(&payload, h.entries).map_err(corrupt)
    }

    /// What a log holds: its oldest and newest durable entries.
    pub fn log_bounds(&self, group: u64, log: u32) -> Result<LogBounds> {
        self.active_log_group(group)?;
        let first = self.0.index.log_batches(group, log, 0, 1)?;
        let last = self.0.index.last_log_batch(group, log)?;
        Ok(LogBounds {
            first: first.first().map(LogBatchMeta::first),
            last: last.as_ref().map(LogBatchMeta::last),
            last_arrival_ms: last.map(|m| m.arrival_ms),
        })
    }

    /// The first entry of a log that arrived at or after `ts_ms` (`None`: none yet; a reader
    /// then starts at [`LogBounds::next`]).
    pub fn position_at_time(&self, group: u64, log: u32, ts_ms: u64) -> Result<Option<Position>> {
        self.active_log_group(group)?;
        Ok(self
            .0
            .index
            .log_batch_at_time(group, log, ts_ms)?
            .map(|m| m.first()))
    }

    /// A receiver of a log's newest durable position (`None` while the log is empty), changed
    /// by every durable append before the appender hears of it: an in-process consumer waits
    /// on it (`changed().await`) and then reads from where it was. It is also woken once when
    /// the group is deleted; reads fail with [`StoreError::LogGroupNotFound`] from then on.
    pub fn subscribe_log(&self, group: u64, log: u32) -> Result<watch::Receiver<Option<Position>>> {
        self.active_log_group(group)?;
        let state = self.log_state(group, log)?;
        let rx = state.subscribe();
        if state.is_closed() {
            return Err(StoreError::LogGroupNotFound(format!("#{group}")));
        }
        Ok(rx)
    }
}
