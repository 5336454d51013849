//! Shard writers: the puts waiting for one shard become one store batch.
//!
//! Every put hands its records for a shard to that shard's queue. While no writer runs for
//! the shard, the put starts one; the writer takes everything queued (within
//! [`COMBINE_MAX_ENTRIES`] and [`COMBINE_MAX_BYTES`]), appends it as one batch of the shard's
//! log, waits until the batch is durable, answers each put with the position of its first
//! record (its records follow at consecutive indexes, in the order it gave them), and takes
//! what queued meanwhile; it ends when the queue is empty. So under load a shard costs the
//! store one batch per group commit, however many producers write to it (the store's cost is
//! per batch: one segment record, one index row); a put that finds the shard idle waits for
//! its own commit only, as before.
//!
//! Puts are answered in the order they queued, and a put's records are contiguous in their
//! batch: records a producer puts one after another (waiting for each answer) get
//! increasing sequence numbers, as Kinesis orders them. A batch that fails fails every put
//! in it, and none of its records is stored.
//!
//! A writer holds no gate: each put holds its stream's gate until it has its answer
//! (`engine` module docs), so a reshard still waits for every queued record to be durable.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use vigil_store::{NewEntry, Position, Store, StoreError};

/// Batches larger than this are sealed on the blocking pool rather than on the runtime.
const SEAL_INLINE_MAX_BYTES: usize = 256 << 10;
/// The most records one batch takes from the queue (a put's own always fit: at most 500).
pub(crate) const COMBINE_MAX_ENTRIES: usize = 10_000;
/// The most bytes (data and partition keys) one batch takes from the queue, unless a single
/// put's records are more.
pub(crate) const COMBINE_MAX_BYTES: usize = 8 << 20;

/// Where a put's first record went, or why its batch failed.
pub(crate) type Reply = Result<Position, Arc<StoreError>>;

/// The queues of one stream's shards.
#[derive(Debug, Default)]
pub(crate) struct Writers {
    queues: Mutex<HashMap<u32, Queue>>,
}

#[derive(Debug, Default)]
struct Queue {
    /// Whether a writer is running for the shard (it alone takes from `waiting`).
    running: bool,
    waiting: VecDeque<Waiting>,
}

#[derive(Debug)]
struct Waiting {
    entries: Vec<NewEntry>,
    bytes: usize,
    reply: oneshot::Sender<Reply>,
}

impl Writers {
    /// Queues `entries` for `shard` (a log of `group`), starting its writer if none runs.
    /// The answer comes once their batch is durable, or failed.
    pub(crate) fn submit(
        self: &Arc<Self>,
        store: &Store,
        group: u64,
        shard: u32,
        entries: Vec<NewEntry>,
    ) -> oneshot::Receiver<Reply> {
        let (tx, rx) = oneshot::channel();
        let bytes = entries.iter().map(|e| e.key.len() + e.data.len()).sum();
        let start = {
            let mut queues = self.lock();
            let q = queues.entry(shard).or_default();
            q.waiting.push_back(Waiting {
                entries,
                bytes,
                reply: tx,
            });
            !std::mem::replace(&mut q.running, true)
        };
        if start {
            let (writers, store) = (self.clone(), store.clone());
            tokio::spawn(writers.run(store, group, shard));
        }
        rx
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Queue>> {
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the writer appends next: the oldest puts within the limits (at least one), or
    /// nothing, when the queue is empty, and the writer has stopped.
    fn take(&self, shard: u32) -> Vec<Waiting> {
        let mut queues = self.lock();
        let Some(q) = queues.get_mut(&shard) else {
            return Vec::new();
        };
        let mut taken: Vec<Waiting> = Vec::new();
        let (mut entries, mut bytes) = (0usize, 0usize);
        while let Some(next) = q.waiting.front() {
            let fits = entries + next.entries.len() <= COMBINE_MAX_ENTRIES
                && bytes + next.bytes <= COMBINE_MAX_BYTES;
            if !taken.is_empty() && !fits {
                break;
            }
            let Some(w) = q.waiting.pop_front() else {
                break;
            };
            entries += w.entries.len();
            bytes += w.bytes;
            taken.push(w);
        }
        if taken.is_empty() {
            // Under the lock: a put queued after this starts a new writer.
            queues.remove(&shard);
        }
        taken
    }

    async fn run(self: Arc<Self>, store: Store, group: u64, shard: u32) {
        loop {
            let taken = self.take(shard);
            if taken.is_empty() {
                return;
            }
            let bytes: usize = taken.iter().map(|w| w.bytes).sum();
            let mut entries = Vec::with_capacity(taken.iter().map(|w| w.entries.len()).sum());
            let mut replies = Vec::with_capacity(taken.len());
            for w in taken {
                replies.push((w.entries.len(), w.reply));
                entries.extend(w.entries);
            }
            let append = if bytes > SEAL_INLINE_MAX_BYTES {
                let store = store.clone();
                tokio::task::spawn_blocking(move || store.append_log(group, shard, &entries))
                    .await
                    .map_err(|e| {
                        StoreError::InvalidArgument(format!("the append task failed: {e}"))
                    })
                    .and_then(|r| r)
            } else {
                store.append_log(group, shard, &entries)
            };
            let result = match append {
                Ok(a) => a.wait().await.map_err(Arc::new),
                Err(e) => Err(Arc::new(e)),
            };
            let mut index = 0usize;
            for (n, reply) in replies {
                let r = match &result {
                    Ok(a) => u16::try_from(index)
                        .map(|i| Position::new(a.first.batch(), i))
                        .map_err(|_| {
                            Arc::new(StoreError::InvalidArgument(format!(
                                "record {index} of a batch has no position"
                            )))
                        }),
                    Err(e) => Err(e.clone()),
                };
                // A put whose caller went away has no one to answer.
                let _ = reply.send(r);
                index += n;
            }
        }
    }
}
