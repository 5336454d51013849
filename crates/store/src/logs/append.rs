//! Appending a batch of entries to a log: [`Store::append_log`] and [`LogAppend`].
//!
//! The entries are encoded on the caller's thread; then, under the log's order lock, the
//! batch gets its number and arrival time, is sealed (AES-256-GCM, the header as associated
//! data) and queued for the commit thread, so the queue holds a log's batches in number
//! order. The returned [`LogAppend`] resolves once the commit thread has synced the record,
//! indexed it, put it in the log's tail and told subscribers.

use bytes::Bytes;
use tokio::sync::oneshot;

use super::{
    Appended, LogBatchMeta, MAX_LOG_BATCH_BYTES, MAX_LOG_BATCH_ENTRIES, MAX_LOG_ENTRY_BYTES,
    MAX_LOG_KEY_BYTES, NewEntry,
};
use crate::commit::{Append, Item, Job, LogJob};
use crate::engine::{Store, lane_for, lock};
use crate::error::{Result, StoreError};
use crate::record::{
    FLAG_ENCRYPTED, LogBatchHeader, encode_entry, entry_len, finish_log_record, log_record_buffer,
};
use crate::types::Location;

/// Resolves when an appended batch is durable (see the module docs of [`crate::logs`]).
#[derive(Debug)]
pub struct LogAppend {
    rx: oneshot::Receiver<Result<Appended>>,
}

impl LogAppend {
    /// Waits for the batch to be durable; returns where its entries are.
    pub async fn wait(self) -> Result<Appended> {
        self.rx.await.unwrap_or(Err(StoreError::Closed))
    }

    /// Blocks the thread until the batch is durable (not for async contexts).
    pub fn wait_blocking(self) -> Result<Appended> {
        self.rx.blocking_recv().unwrap_or(Err(StoreError::Closed))
    }
}

fn check_entries(entries: &[NewEntry]) -> Result<usize> {
    if entries.is_empty() {
        return Err(StoreError::InvalidArgument(
            "a batch needs at least one entry".into(),
        ));
    }
    if entries.len() > MAX_LOG_BATCH_ENTRIES {
        return Err(StoreError::InvalidArgument(format!(
            "a batch holds at most {MAX_LOG_BATCH_ENTRIES} entries, not {}",
            entries.len()
        )));
    }
    let mut total = 0usize;
    for (i, e) in entries.iter().enumerate() {
        if e.key.len() > MAX_LOG_KEY_BYTES {
            return Err(StoreError::InvalidArgument(format!(
                "entry {i}: a key is at most {MAX_LOG_KEY_BYTES} bytes, not {}",
                e.key.len()
            )));
        }
        if e.data.len() > MAX_LOG_ENTRY_BYTES {
            return Err(StoreError::InvalidArgument(format!(
                "entry {i}: data is at most {MAX_LOG_ENTRY_BYTES} bytes, not {}",
                e.data.len()
            )));
        }
        total += entry_len(&e.key, &e.data);
    }
    if total > MAX_LOG_BATCH_BYTES {
        return Err(StoreError::InvalidArgument(format!(
            "a batch is at most {MAX_LOG_BATCH_BYTES} bytes encoded, not {total}"
        )));
    }
    Ok(total)
}

impl Store {
    /// Appends a batch of entries to log `log` of group `group`. The returned [`LogAppend`]
    /// resolves once the batch is durable, readable and announced to subscribers, with the
    /// position of its first entry (entry `i` is at index `i` of that batch), its size and
    /// its arrival time; only then may the caller report it stored.
    ///
    /// Fails at once for a group that does not exist, an empty batch, more than
    /// [`MAX_LOG_BATCH_ENTRIES`] entries, a key or data over [`MAX_LOG_KEY_BYTES`] or
    /// [`MAX_LOG_ENTRY_BYTES`], or more than [`MAX_LOG_BATCH_BYTES`] in all; and with
    /// [`StoreError::Poisoned`] or [`StoreError::Closed`] when the store takes no writes. The
    /// in-memory tail keeps the entries' `Bytes` as given (no copy), so a caller should not
    /// hand in slices of much larger buffers.
    pub fn append_log(&self, group: u64, log: u32, entries: &[NewEntry]) -> Result<LogAppend> {
        self.check_writable()?;
        let payload_len = check_entries(entries)?;
        let rec = self.active_log_group(group)?;
        let state = self.log_state(group, log)?;
        let key_gen = if self.config().encryption {
            rec.key_generation
        } else {
            0
        };
        let key = if key_gen > 0 {
            Some(self.log_data_key(group, key_gen)?)
        } else {
            None
        };
        let mut buf = log_record_buffer(payload_len);
        for e in entries {
            encode_entry(&mut buf, &e.key, &e.data);
        }
        let kept: Vec<(Bytes, Bytes)> = entries
            .iter()
            .map(|e| (e.key.clone(), e.data.clone()))
            .collect();
        let lane = lane_for(rec.retention_hours);
        let count = u32::try_from(entries.len()).unwrap_or(u32::MAX);
        let (tx, rx) = oneshot::channel();

        let mut last_arrival = lock(&state.order);
        // The group may have been deleted since it was looked up above.
        if state.is_closed() || !self.log_group_is_active(group) {
            return Err(StoreError::LogGroupNotFound(format!("#{group}")));
        }
        let batch = self.next_number()?;
        let arrival_ms = self.clock().now_ms().max(*last_arrival);
        let header = LogBatchHeader {
            flags: if key.is_some() { FLAG_ENCRYPTED } else { 0 },
            group,
            batch,
            log,
            arrival_ms,
            entries: count,
            key_gen,
            nonce: if key.is_some() {
                self.0.nonces.next()
            } else {
                [0; 12]
            },
            payload_len: u32::try_from(payload_len).unwrap_or(u32::MAX),
        };
        let record = match &key {
            Some(key) => {
                let seal = |aad: &[u8], buf: &mut Vec<u8>, from: usize| {
                    key.seal_tail(header.nonce, aad, buf, from);
                };
                finish_log_record(&header, buf, Some(&seal))
            }
            None => finish_log_record(&header, buf, None),
        };
        let meta = LogBatchMeta {
            group,
            log,
            batch,
            arrival_ms,
            entries: count,
            size: header.payload_len,
            key_gen,
            location: Location {
                segment: 0,
                offset: 0,
                len: 0,
            },
        };
        self.send(Job::Append(Append {
            lane,
            record,
            item: Item::LogBatch(Box::new(LogJob {
                meta,
                state: state.clone(),
                entries: kept,
                reply: tx,
            })),
        }))?;
        *last_arrival = arrival_ms;
        drop(last_arrival);
        Ok(LogAppend { rx })
    }
}
