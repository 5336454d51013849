//! Each log's in-memory side: the order lock appends take, the tail of recent durable
//! batches, and the watch its subscribers hold.
//!
//! The tail holds batches in number order and loses them only from its front (to its byte
//! bounds, to retention, or all at once when the group is deleted). A batch joins it on the
//! commit thread after its record is synced and its row is in the index, so every batch from
//! the tail's front to the newest durable one is in memory, and everything before the front
//! is in the index: a reader looks in memory first and goes to the index only for positions
//! before the front.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::watch;

use super::{Appended, LogBatchMeta, LogEntry, Position};
use crate::error::{Result, StoreError};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Bounds of the logs' in-memory tails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogTailLimits {
    /// Bytes of entries (keys and data) one log keeps in memory (default 16 MiB).
    pub per_log_bytes: usize,
    /// Bytes all logs keep together (default 256 MiB). Past it, a log that takes a new batch
    /// drops its older ones, down to the new batch.
    pub total_bytes: usize,
}

impl Default for LogTailLimits {
    fn default() -> Self {
        Self {
            per_log_bytes: 16 << 20,
            total_bytes: 256 << 20,
        }
    }
}

/// The memory the tails share.
#[derive(Debug)]
pub(crate) struct TailBudget {
    limits: LogTailLimits,
    used: AtomicUsize,
}

impl TailBudget {
    pub(crate) fn new(limits: LogTailLimits) -> Self {
        Self {
            limits,
            used: AtomicUsize::new(0),
        }
    }
}

/// A durable batch in memory.
#[derive(Debug)]
struct TailBatch {
    meta: LogBatchMeta,
    entries: Vec<(Bytes, Bytes)>,
    bytes: usize,
}

#[derive(Debug, Default)]
struct Tail {
    batches: VecDeque<TailBatch>,
    bytes: usize,
}

/// What a read has gathered so far, and its limits.
#[derive(Debug)]
pub(crate) struct Collect {
    pub(crate) out: Vec<LogEntry>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

impl Collect {
    pub(crate) fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            out: Vec::new(),
            bytes: 0,
            max_entries,
            max_bytes,
        }
    }

    /// Takes an entry if the limits allow it (the first entry always fits, so that a reader
    /// never gets stuck before an entry larger than its byte limit); `false` once full.
    pub(crate) fn push(&mut self, entry: LogEntry) -> bool {
        let n = entry.key.len() + entry.data.len();
        if self.out.len() >= self.max_entries
            || (!self.out.is_empty() && self.bytes.saturating_add(n) > self.max_bytes)
        {
            return false;
        }
        self.bytes += n;
        self.out.push(entry);
        true
    }

    /// Takes the entries of a batch from position `from` on; `false` once full.
    pub(crate) fn batch(
        &mut self,
        meta: &LogBatchMeta,
        entries: &[(Bytes, Bytes)],
        from: Position,
    ) -> bool {
        let skip = if meta.batch == from.batch() {
            usize::from(from.index())
        } else {
            0
        };
        for (i, (key, data)) in entries.iter().enumerate().skip(skip) {
            let entry = LogEntry {
                position: Position::new(meta.batch, u16::try_from(i).unwrap_or(u16::MAX)),
                arrival_ms: meta.arrival_ms,
                key: key.clone(),
                data: data.clone(),
            };
            if !self.push(entry) {
                return false;
            }
        }
        true
    }
}

/// A log's in-memory state (see the module docs).
#[derive(Debug)]
pub(crate) struct LogState {
    group: u64,
    /// Held while a batch is given its number and arrival time and queued for commit, so that
    /// numbers reach the commit thread in order. Holds the newest arrival time given.
    pub(crate) order: Mutex<u64>,
    tail: Mutex<Tail>,
    durable: watch::Sender<Option<Position>>,
    closed: AtomicBool,
    budget: Arc<TailBudget>,
}

impl LogState {
    /// The state of a log whose newest durable batch is `last`.
    pub(crate) fn new(group: u64, last: Option<&LogBatchMeta>, budget: Arc<TailBudget>) -> Self {
        Self {
            group,
            order: Mutex::new(last.map_or(0, |m| m.arrival_ms)),
            tail: Mutex::default(),
            durable: watch::Sender::new(last.map(LogBatchMeta::last)),
            closed: AtomicBool::new(false),
            budget,
        }
    }

    /// Whether the log's group was deleted.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// The group was deleted: the tail goes, subscribers are woken (and their reads fail).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let mut tail = lock(&self.tail);
        self.release(tail.bytes);
        *tail = Tail::default();
        drop(tail);
        self.durable.send_modify(|_| {});
    }

    /// A receiver of the newest durable position.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Option<Position>> {
        self.durable.subscribe()
    }

    fn release(&self, bytes: usize) {
        self.budget.used.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// A batch is durable and indexed (the commit thread, in commit order): it joins the tail
    /// and subscribers are told. Fails if the group was deleted meanwhile (its row was not
    /// indexed, or is being purged).
    pub(crate) fn committed(
        &self,
        meta: LogBatchMeta,
        entries: Vec<(Bytes, Bytes)>,
    ) -> Result<Appended> {
        if self.is_closed() {
            return Err(StoreError::LogGroupNotFound(format!("#{}", self.group)));
        }
        let bytes: usize = entries.iter().map(|(k, d)| k.len() + d.len()).sum();
        let limits = self.budget.limits;
        {
            let mut tail = lock(&self.tail);
            tail.bytes += bytes;
            self.budget.used.fetch_add(bytes, Ordering::Relaxed);
            tail.batches.push_back(TailBatch {
                meta,
                entries,
                bytes,
            });
            while tail.batches.len() > 1
                && (tail.bytes > limits.per_log_bytes
                    || self.budget.used.load(Ordering::Relaxed) > limits.total_bytes)
            {
                if let Some(front) = tail.batches.pop_front() {
                    tail.bytes -= front.bytes;
                    self.release(front.bytes);
                }
            }
        }
        self.durable.send_replace(Some(meta.last()));
        Ok(Appended {
            first: meta.first(),
            entries: meta.entries,
            arrival_ms: meta.arrival_ms,
        })
    }

    /// Drops the tail's batches that arrived before `cutoff_ms` (retention).
    pub(crate) fn expire(&self, cutoff_ms: u64) {
        let mut tail = lock(&self.tail);
        while tail
            .batches
            .front()
            .is_some_and(|b| b.meta.arrival_ms < cutoff_ms)
        {
            if let Some(front) = tail.batches.pop_front() {
                tail.bytes -= front.bytes;
                self.release(front.bytes);
            }
        }
    }

    /// Reads from the tail into `into` when the tail covers `from` (it holds the batch `from`
    /// is in or an earlier one, or `from` is past everything durable); `false` when it does
    /// not and the reader must go to the index.
    pub(crate) fn read(&self, from: Position, into: &mut Collect) -> bool {
        let tail = lock(&self.tail);
        let Some(front) = tail.batches.front() else {
            return false;
        };
        if from < front.meta.first() {
            return false;
        }
        for b in &tail.batches {
            if b.meta.last() < from {
                continue;
            }
            if !into.batch(&b.meta, &b.entries, from) {
                break;
            }
        }
        true
    }

    #[cfg(test)]
    fn held(&self) -> (Vec<u64>, usize) {
        let tail = lock(&self.tail);
        (
            tail.batches.iter().map(|b| b.meta.batch).collect(),
            tail.bytes,
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::types::Location;

    fn meta(batch: u64, entries: u32, arrival_ms: u64) -> LogBatchMeta {
        LogBatchMeta {
            group: 1,
            log: 0,
            batch,
            arrival_ms,
            entries,
            size: 0,
            key_gen: 0,
            location: Location {
                segment: 1,
                offset: 0,
                len: 0,
            },
        }
    }

    fn entries(n: usize, len: usize) -> Vec<(Bytes, Bytes)> {
        (0..n)
            .map(|i| {
                (
                    Bytes::from(format!("k{i}")),
                    Bytes::from(vec![i as u8; len]),
                )
            })
            .collect()
    }

    fn state(limits: LogTailLimits) -> LogState {
        LogState::new(1, None, Arc::new(TailBudget::new(limits)))
    }

    #[test]
    fn tail_evicts_from_the_front_to_its_bounds() {
        let s = state(LogTailLimits {
            per_log_bytes: 100,
            total_bytes: 1000,
        });
        let mut rx = s.subscribe();
        assert_eq!(*rx.borrow_and_update(), None);
        for b in 1..=5u64 {
            // 3 entries of 2 + 10 bytes: 36 bytes a batch.
            let done = s.committed(meta(b * 10, 3, b), entries(3, 10)).unwrap();
            assert_eq!(done.first, Position::new(b * 10, 0));
            assert_eq!(*rx.borrow_and_update(), Some(Position::new(b * 10, 2)));
        }
        let (held, bytes) = s.held();
        assert_eq!(held, [40, 50], "36 * 2 <= 100 < 36 * 3");
        assert_eq!(bytes, 72);
        assert_eq!(s.budget.used.load(Ordering::Relaxed), 72);
        // Not covered before the front: the index has it.
        assert!(!s.read(Position::new(30, 2), &mut Collect::new(10, 1000)));
        let mut c = Collect::new(10, 1000);
        assert!(s.read(Position::new(40, 1), &mut c));
        let got: Vec<_> = c.out.iter().map(|e| e.position).collect();
        assert_eq!(
            got,
            [
                Position::new(40, 1),
                Position::new(40, 2),
                Position::new(50, 0),
                Position::new(50, 1),
                Position::new(50, 2)
            ]
        );
        // Past the end: covered, nothing there yet.
        let mut c = Collect::new(10, 1000);
        assert!(s.read(Position::new(51, 0), &mut c));
        assert!(c.out.is_empty());
        // A single batch larger than the bound stays (the newest is always kept).
        s.committed(meta(60, 1, 6), entries(1, 500)).unwrap();
        assert_eq!(s.held().0, [60]);
        s.expire(7);
        assert_eq!(s.held(), (vec![], 0));
        assert_eq!(s.budget.used.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn the_shared_bound_trims_the_log_that_grows() {
        let budget = Arc::new(TailBudget::new(LogTailLimits {
            per_log_bytes: 1000,
            total_bytes: 100,
        }));
        let a = LogState::new(1, None, budget.clone());
        let b = LogState::new(1, None, budget.clone());
        a.committed(meta(1, 1, 1), entries(1, 58)).unwrap();
        b.committed(meta(2, 1, 1), entries(1, 28)).unwrap();
        assert_eq!(budget.used.load(Ordering::Relaxed), 90);
        b.committed(meta(3, 1, 1), entries(1, 28)).unwrap();
        assert_eq!(
            b.held().0,
            [3],
            "over the shared bound: b drops its older batch"
        );
        assert_eq!(a.held().0, [1]);
        assert_eq!(budget.used.load(Ordering::Relaxed), 90);
        a.close();
        assert!(a.is_closed());
        assert_eq!(budget.used.load(Ordering::Relaxed), 30);
        assert!(matches!(
            a.committed(meta(4, 1, 1), entries(1, 1)),
            Err(StoreError::LogGroupNotFound(_))
        ));
    }

    #[test]
    fn limits_and_the_oversized_first_entry() {
        let s = state(LogTailLimits::default());
        s.committed(
            meta(7, 4, 1),
            vec![
                (Bytes::new(), Bytes::from(vec![0; 50])),
                (Bytes::new(), Bytes::from(vec![1; 10])),
                (Bytes::new(), Bytes::from(vec![2; 10])),
                (Bytes::new(), Bytes::from(vec![3; 10])),
            ],
        )
        .unwrap();
        let read = |from, n, bytes| {
            let mut c = Collect::new(n, bytes);
            assert!(s.read(from, &mut c));
            c.out.iter().map(|e| e.position.index()).collect::<Vec<_>>()
        };
        assert_eq!(
            read(Position::new(7, 0), 10, 20),
            [0],
            "larger than the limit, alone"
        );
        assert_eq!(read(Position::new(7, 1), 10, 20), [1, 2]);
        assert_eq!(read(Position::new(7, 1), 1, 1000), [1]);
        assert_eq!(read(Position::new(7, 0), 10, 1000), [0, 1, 2, 3]);
        assert!(read(Position::new(7, 0), 0, 1000).is_empty());
    }
}
