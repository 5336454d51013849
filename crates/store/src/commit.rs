//! The commit thread: group commit of fragment and log batch records.
//!
//! Writers hand finished, sealed records over a channel: fragments (`ingest`) and batches of
//! log entries (`logs`), in one queue, so both kinds share each batch's fsyncs and index
//! transaction, and a log's batches are committed in the order they were queued. The thread
//! takes everything waiting (up to `max_batch_bytes`), and for the whole batch:
//!
//! 1. checks free space, deleting the oldest segments while it is under the floor, or fails
//!    the batch with `DiskFull` if nothing is left to delete;
//! 2. appends each record to its lane's active segment (rotating by size and age), small
//!    neighbouring records with one `pwrite`;
//! 3. `fdatasync`s each segment it wrote to: **from here the records are durable**;
//! 4. adds their entries to the index in one transaction, visible to readers at once and made
//!    durable by the next checkpoint (every `checkpoint_interval_ms`; until then the segments
//!    are the log, and a restart re-indexes from them);
//! 5. answers every writer, tells the live windows the fragments are durable, and puts each
//!    log batch in its log's in-memory tail (and tells its subscribers) before answering.
//!
//! So 1 or 100 streams cost one fsync per lane per batch, and a fragment is never reported
//! durable before its bytes are on disk. If a write fails (disk full), the batch is cut back
//! off the segment and fails cleanly. If an fsync or the cut-back fails, the state of the file
//! is unknown, so the store stops accepting writes ([`StoreError::Poisoned`]) rather than
//! acknowledge anything on top of it; reopening recovers. The same when the index fails
//! (redb refuses every call after an I/O error of its own, so nothing is clean about it).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::blob::BlobStore;
use crate::clock::Clock;
use crate::engine::{StoreConfig, lock};
use crate::error::{Result, StoreError};
use crate::fs::Fs;
use crate::index::{CommitBatch, Index, SegmentRow};
use crate::live::{LiveStream, WindowLimits};
use crate::logs::state::LogState;
use crate::logs::{Appended, LogBatchMeta};
use crate::record::{SEGMENT_HEADER_LEN, SegmentHeader};
use crate::types::{FragmentMeta, Location};

/// Counts of what the commit thread has done since the store was opened: see
/// [`crate::Store::stats`]. Only successful group commits count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Group commits.
    pub batches: u64,
    /// Records made durable: fragments and log batches.
    pub records: u64,
    /// Their bytes as written to the segments (frame, header, ciphertext and tag).
    pub bytes: u64,
    /// Segment `fdatasync`s made by group commits: one per lane written per batch, plus one
    /// for a segment a batch fills and rotates out of its lane.
    pub syncs: u64,
    /// Time the commit thread spent appending records to segments (free-space check, segment
    /// rotation and `pwrite`s), in nanoseconds.
    pub write_nanos: u64,
    /// ... in the segment `fdatasync`s.
    pub sync_nanos: u64,
    /// ... adding the batches to the index (one non-durable redb transaction each).
    pub index_nanos: u64,
}

/// The commit thread's counters behind [`StoreStats`], shared with the store handle.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    batches: AtomicU64,
    records: AtomicU64,
    bytes: AtomicU64,
    syncs: AtomicU64,
    write_nanos: AtomicU64,
    sync_nanos: AtomicU64,
    index_nanos: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> StoreStats {
        StoreStats {
            batches: self.batches.load(Ordering::Relaxed),
            records: self.records.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            syncs: self.syncs.load(Ordering::Relaxed),
            write_nanos: self.write_nanos.load(Ordering::Relaxed),
            sync_nanos: self.sync_nanos.load(Ordering::Relaxed),
            index_nanos: self.index_nanos.load(Ordering::Relaxed),
        }
    }
}

/// Work for the commit thread.
pub(crate) enum Job {
    /// Append a record.
    Append(Append),
    /// Seal active segments older than the maximum age; answer when done.
    Maintain(oneshot::Sender<()>),
}

/// A record to append.
pub(crate) struct Append {
    pub lane: u32,
    pub record: Vec<u8>,
    pub item: Item,
}

/// What a record is, and whom to answer.
pub(crate) enum Item {
    /// A fragment. Its metadata's location is filled in here.
    Fragment {
        meta: FragmentMeta,
        reply: oneshot::Sender<Result<FragmentMeta>>,
    },
    /// A batch of log entries.
    LogBatch(Box<LogJob>),
}

/// A log batch on its way to disk.
pub(crate) struct LogJob {
    /// Its row; the location is filled in here.
    pub meta: LogBatchMeta,
    /// Its log's state: the tail it joins once durable.
    pub state: Arc<LogState>,
    /// Its entries (key, data), for the tail.
    pub entries: Vec<(Bytes, Bytes)>,
    pub reply: oneshot::Sender<Result<Appended>>,
}

impl Append {
    /// When the record's data arrived (the segment's newest time, for the free-space floor).
    fn time_ms(&self) -> u64 {
        match &self.item {
            Item::Fragment { meta, .. } => meta.server_ts_ms,
            Item::LogBatch(job) => job.meta.arrival_ms,
        }
    }
}

/// Records under this size are gathered for one `pwrite` with the ones next to them in their
/// segment: a group commit of many small log batches costs a few system calls, not one each.
/// Larger records are written as they are (copying them would cost more than the call).
const COALESCE_RECORD_MAX: usize = 16 << 10;
/// The most bytes gathered before they are written.
const COALESCE_BUFFER_MAX: usize = 256 << 10;

/// Bytes gathered for one segment, to be written at `offset`.
#[derive(Default)]
struct Gathered {
    segment: u64,
    offset: u64,
    buf: Vec<u8>,
}

struct Active {
    id: u64,
    len: u64,
    created_ms: u64,
    max_server_ts_ms: u64,
}

pub(crate) struct Committer {
    clock: Arc<dyn Clock>,
    fs: Arc<dyn Fs>,
    index: Arc<dyn Index>,
    blobs: Arc<dyn BlobStore>,
    live: Arc<Mutex<HashMap<u64, Arc<LiveStream>>>>,
    poison: Arc<Mutex<Option<String>>>,
    data_dir: PathBuf,
    segment_max_bytes: u64,
    segment_max_age_ms: u64,
    checkpoint_every: Duration,
    min_free_bytes: u64,
    max_batch_bytes: usize,
    window: WindowLimits,
    next_segment: u64,
    active: HashMap<u32, Active>,
    gathered: Gathered,
    counters: Arc<Counters>,
}

impl Committer {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        cfg: &StoreConfig,
        clock: Arc<dyn Clock>,
        fs: Arc<dyn Fs>,
        index: Arc<dyn Index>,
        blobs: Arc<dyn BlobStore>,
        live: Arc<Mutex<HashMap<u64, Arc<LiveStream>>>>,
        poison: Arc<Mutex<Option<String>>>,
        next_segment: u64,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            clock,
            fs,
            index,
            blobs,
            live,
            poison,
            data_dir: cfg.data_dir.clone(),
            segment_max_bytes: cfg.segment_max_bytes,
            segment_max_age_ms: cfg.segment_max_age_ms,
            checkpoint_every: Duration::from_millis(cfg.checkpoint_interval_ms.max(1)),
            min_free_bytes: cfg.min_free_bytes,
            max_batch_bytes: cfg.max_batch_bytes,
            window: cfg.live_window,
            next_segment,
            active: HashMap::new(),
            gathered: Gathered::default(),
            counters,
        }
    }

    pub(crate) fn run(mut self, rx: mpsc::Receiver<Job>) {
        let mut last_checkpoint = Instant::now();
        let mut dirty = false;
        loop {
            // Nothing to checkpoint: wait a whole interval. (Counting from the last checkpoint
            // here made the wait zero once a clean store had been idle for an interval, and the
            // thread spun on `recv_timeout(0)`, burning a core.)
            let wait = if dirty {
                self.checkpoint_every
                    .saturating_sub(last_checkpoint.elapsed())
            } else {
                self.checkpoint_every
            };
            let first = match rx.recv_timeout(wait) {
                Ok(job) => Some(job),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let mut batch = Vec::new();
            let mut bytes = 0usize;
            let mut next = first;
            while let Some(job) = next.take() {
                match job {
                    Job::Append(a) => {
                        bytes += a.record.len();
                        batch.push(a);
                    }
                    Job::Maintain(reply) => {
                        self.seal_old();
                        let _ = reply.send(());
                    }
                }
                if bytes < self.max_batch_bytes {
                    next = rx.try_recv().ok();
                }
            }
            // Only a batch that reached the index leaves something to checkpoint: a failed one
            // (a full disk) must not make the checkpoint write to the index.
            if !batch.is_empty() && self.commit(batch) {
                dirty = true;
            }
            if dirty && last_checkpoint.elapsed() >= self.checkpoint_every {
                if let Err(e) = self.index.checkpoint() {
                    // redb refuses every call after a failed write: stop here, as for `apply`.
                    self.poison(format!("index checkpoint failed: {e}"));
                }
                dirty = false;
                last_checkpoint = Instant::now();
            }
        }
        // Shutting down: seal nothing, just make the index durable.
        if let Err(e) = self.index.checkpoint() {
            tracing::error!(error = %e, "final index checkpoint failed");
        }
    }

    fn poisoned(&self) -> Option<String> {
        lock(&self.poison).clone()
    }

    fn poison(&self, why: String) {
        tracing::error!(reason = %why, "fragment store stops writing");
        lock(&self.poison).get_or_insert(why);
    }

    /// Fails every append of a batch. The fragments leave the live windows (they will never be
    /// durable), so they do not hold back the eviction of the ones after them; the log
    /// batches never reach their tails.
    fn fail_all(&self, batch: Vec<Append>, err: impl Fn() -> StoreError) {
        let now = self.clock.now_ms();
        let live = lock(&self.live).clone();
        for a in batch {
            match a.item {
                Item::Fragment { meta, reply } => {
                    let _ = reply.send(Err(err()));
                    if let Some(s) = live.get(&meta.stream) {
                        s.persisted(meta.number, now, self.window);
                    }
                }
                Item::LogBatch(job) => {
                    let _ = job.reply.send(Err(err()));
                }
            }
        }
    }

    /// Commits a batch; whether it reached the index (every writer is answered either way).
    fn commit(&mut self, batch: Vec<Append>) -> bool {
        if let Some(p) = self.poisoned() {
            self.fail_all(batch, || StoreError::Poisoned(p.clone()));
            return false;
        }
        let started = Instant::now();
        let need: u64 = batch.iter().map(|a| a.record.len() as u64).sum();
        match self.ensure_space(need) {
            Ok(()) => {}
            Err(StoreError::DiskFull(msg)) => {
                self.fail_all(batch, || StoreError::DiskFull(msg.clone()));
                return false;
            }
            // Freeing space failed half way (a segment deleted, its rows not, or the index
            // refusing): nothing is clean about the state, as after a failed fsync.
            Err(e) => {
                self.poison(format!("freeing space failed: {e}"));
                let msg = e.to_string();
                self.fail_all(batch, || StoreError::Poisoned(msg.clone()));
                return false;
            }
        }
        let now = self.clock.now_ms();
        // Segment lengths before this batch, to cut back to on failure.
        let mut before: HashMap<u64, u64> = HashMap::new();
        let mut locations = Vec::with_capacity(batch.len());
        let mut failure = None;
        for a in &batch {
            match self.append(a, now, &mut before) {
                Ok(location) => locations.push(location),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        match failure {
            None => failure = self.flush_gathered().err(),
            // Cut back below: what was gathered is never written.
            Some(_) => self.gathered.buf.clear(),
        }
        let written = Instant::now();
        // Segments this batch rotated out were synced when they were (see `append`).
        let to_sync: Vec<u64> = before
            .keys()
            .copied()
            .filter(|seg| self.active.values().any(|a| a.id == *seg))
            .collect();
        if failure.is_none() {
            for &seg in &to_sync {
                if let Err(e) = self.blobs.sync(seg) {
                    // After a failed fsync the kernel may have dropped the dirty pages: nothing
                    // written since the last good fsync can be trusted.
                    self.poison(format!("fsync of segment {seg} failed: {e}"));
                    let msg = e.to_string();
                    self.fail_all(batch, || StoreError::Poisoned(msg.clone()));
                    return false;
                }
            }
        }
        if let Some(e) = failure {
            for (&seg, &len) in &before {
                if let Err(te) = self.blobs.truncate(seg, len) {
                    self.poison(format!("could not cut segment {seg} back after {e}: {te}"));
                }
                if let Some(a) = self.active.values_mut().find(|a| a.id == seg) {
                    a.len = len;
                }
            }
            let msg = match &e {
                StoreError::Poisoned(why) => why.clone(),
                e => e.to_string(),
            };
            let full = matches!(e, StoreError::DiskFull(_));
            let poisoned = matches!(e, StoreError::Poisoned(_));
            self.fail_all(batch, || {
                if full {
                    StoreError::DiskFull(msg.clone())
                } else if poisoned {
                    StoreError::Poisoned(msg.clone())
                } else {
                    StoreError::Io {
                        context: "appending to a segment".into(),
                        source: std::io::Error::other(msg.clone()),
                    }
                }
            });
            return false;
        }
        let synced = Instant::now();
        let rows = before
            .keys()
            .filter_map(|seg| self.active.values().find(|a| a.id == *seg))
            .map(|a| self.row(a, false))
            .collect();
        let mut apply = CommitBatch {
            fragments: Vec::new(),
            log_batches: Vec::new(),
            segments: rows,
        };
        for (a, &location) in batch.iter().zip(&locations) {
            match &a.item {
                Item::Fragment { meta, .. } => {
                    apply.fragments.push(FragmentMeta { location, ..*meta })
                }
                Item::LogBatch(job) => apply.log_batches.push(LogBatchMeta {
                    location,
                    ..job.meta
                }),
            }
        }
        if let Err(e) = self.index.apply(&apply, false) {
            // The records are durable in the segments and will be indexed on restart, but the
            // live index is now behind: stop, rather than serve a store that disagrees.
            self.poison(format!("index update failed: {e}"));
            let msg = e.to_string();
            self.fail_all(batch, || StoreError::Poisoned(msg.clone()));
            return false;
        }
        let c = &self.counters;
        c.batches.fetch_add(1, Ordering::Relaxed);
        c.records.fetch_add(batch.len() as u64, Ordering::Relaxed);
        c.bytes.fetch_add(need, Ordering::Relaxed);
        c.syncs.fetch_add(to_sync.len() as u64, Ordering::Relaxed);
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        c.write_nanos
            .fetch_add(nanos(written - started), Ordering::Relaxed);
        c.sync_nanos
            .fetch_add(nanos(synced - written), Ordering::Relaxed);
        c.index_nanos
            .fetch_add(nanos(synced.elapsed()), Ordering::Relaxed);
        let now = self.clock.now_ms();
        let live = lock(&self.live).clone();
        for (a, location) in batch.into_iter().zip(locations) {
            match a.item {
                Item::Fragment { meta, reply } => {
                    let meta = FragmentMeta { location, ..meta };
                    let _ = reply.send(Ok(meta));
                    if let Some(s) = live.get(&meta.stream) {
                        s.persisted(meta.number, now, self.window);
                    }
                }
                Item::LogBatch(job) => {
                    let LogJob {
                        meta,
                        state,
                        entries,
                        reply,
                    } = *job;
                    let meta = LogBatchMeta { location, ..meta };
                    // Readable from memory, and subscribers woken, before the writer hears.
                    let result = state.committed(meta, entries);
                    let _ = reply.send(result);
                }
            }
        }
        true
    }

    fn row(&self, a: &Active, sealed: bool) -> SegmentRow {
        SegmentRow {
            id: a.id,
            lane: 0,
            created_ms: a.created_ms,
            sealed,
            indexed_len: a.len,
            live_fragments: 0,
            live_bytes: 0,
            max_server_ts_ms: a.max_server_ts_ms,
        }
        .with_lane(self.lane_of(a.id))
    }

    fn lane_of(&self, id: u64) -> u32 {
        self.active
            .iter()
            .find(|(_, a)| a.id == id)
            .map(|(l, _)| *l)
            .unwrap_or(0)
    }

    fn append(&mut self, a: &Append, now: u64, before: &mut HashMap<u64, u64>) -> Result<Location> {
        let len = a.record.len() as u64;
        let rotate = match self.active.get(&a.lane) {
            None => true,
            Some(s) => {
                (s.len + len > self.segment_max_bytes && s.len > SEGMENT_HEADER_LEN)
                    || now.saturating_sub(s.created_ms) > self.segment_max_age_ms
            }
        };
        if rotate {
            self.flush_gathered()?;
            // What this batch appended to the lane's segment must be on disk before a newer
            // segment exists: recovery takes damage at the end of a lane's newest segment for a
            // torn write and cuts it off, but in an older segment for damage, and reports it.
            if let Some(old) = self.active.get(&a.lane).map(|s| s.id)
                && before.contains_key(&old)
            {
                if let Err(e) = self.blobs.sync(old) {
                    self.poison(format!("fsync of segment {old} failed: {e}"));
                    return Err(StoreError::Poisoned(e.to_string()));
                }
                self.counters.syncs.fetch_add(1, Ordering::Relaxed);
            }
            match self.rotate(a.lane, now) {
                Ok(()) => {}
                // The index database stops after an I/O error of its own (every later call
                // fails), so this is no clean failure of one batch: stop writing.
                Err(StoreError::Index(e)) => {
                    let why = format!("index update failed while rotating a segment: {e}");
                    self.poison(why.clone());
                    return Err(StoreError::Poisoned(why));
                }
                Err(e) => return Err(e),
            }
        }
        let seg = self
            .active
            .get_mut(&a.lane)
            .ok_or_else(|| StoreError::Index("no active segment".into()))?;
        before.entry(seg.id).or_insert(seg.len);
        let location = Location {
            segment: seg.id,
            offset: seg.len,
            len: u32::try_from(len).unwrap_or(u32::MAX),
        };
        seg.len += len;
        seg.max_server_ts_ms = seg.max_server_ts_ms.max(a.time_ms());
        self.write(location.segment, location.offset, &a.record)?;
        Ok(location)
    }

    /// Writes a record at `offset` of `segment`, or gathers it with the ones before it
    /// ([`COALESCE_RECORD_MAX`]); [`Self::flush_gathered`] writes what was gathered, before any
    /// fsync.
    fn write(&mut self, segment: u64, offset: u64, record: &[u8]) -> Result<()> {
        if record.len() >= COALESCE_RECORD_MAX {
            self.flush_gathered()?;
            return self.blobs.write(segment, offset, record);
        }
        let g = &self.gathered;
        let follows = !g.buf.is_empty()
            && g.segment == segment
            && g.offset + g.buf.len() as u64 == offset
            && g.buf.len() + record.len() <= COALESCE_BUFFER_MAX;
        if !follows {
            self.flush_gathered()?;
            self.gathered.segment = segment;
            self.gathered.offset = offset;
        }
        self.gathered.buf.extend_from_slice(record);
        Ok(())
    }

    /// Writes the gathered records (the buffer is empty afterwards, written or not).
    fn flush_gathered(&mut self) -> Result<()> {
        if self.gathered.buf.is_empty() {
            return Ok(());
        }
        let g = &self.gathered;
        let written = self.blobs.write(g.segment, g.offset, &g.buf);
        self.gathered.buf.clear();
        written
    }

    /// Seals the lane's active segment (if any) and starts a new one.
    fn rotate(&mut self, lane: u32, now: u64) -> Result<()> {
        if let Some(old) = self.active.remove(&lane) {
            let mut row = self.row_for(&old, lane);
            row.sealed = true;
            self.index.apply(
                &CommitBatch {
                    segments: vec![row],
                    ..CommitBatch::default()
                },
                false,
            )?;
        }
        let id = self.next_segment;
        self.next_segment += 1;
        let header = SegmentHeader {
            lane,
            id,
            created_ms: now,
        };
        self.blobs.create(&header)?;
        let active = Active {
            id,
            len: SEGMENT_HEADER_LEN,
            created_ms: now,
            max_server_ts_ms: 0,
        };
        let row = self.row_for(&active, lane);
        self.index.apply(
            &CommitBatch {
                segments: vec![row],
                ..CommitBatch::default()
            },
            false,
        )?;
        self.active.insert(lane, active);
        Ok(())
    }

    fn row_for(&self, a: &Active, lane: u32) -> SegmentRow {
        SegmentRow {
            id: a.id,
            lane,
            created_ms: a.created_ms,
            sealed: false,
            indexed_len: a.len,
            live_fragments: 0,
            live_bytes: 0,
            max_server_ts_ms: a.max_server_ts_ms,
        }
    }

    /// Seals active segments past their age, so retention can delete them once empty.
    fn seal_old(&mut self) {
        let now = self.clock.now_ms();
        let old: Vec<u32> = self
            .active
            .iter()
            .filter(|(_, a)| now.saturating_sub(a.created_ms) > self.segment_max_age_ms)
            .map(|(l, _)| *l)
            .collect();
        for lane in old {
            if let Some(a) = self.active.remove(&lane) {
                let mut row = self.row_for(&a, lane);
                row.sealed = true;
                if let Err(e) = self.index.apply(
                    &CommitBatch {
                        segments: vec![row],
                        ..CommitBatch::default()
                    },
                    false,
                ) {
                    tracing::warn!(error = %e, "sealing an old segment failed");
                    self.active.insert(lane, a);
                }
            }
        }
    }

    /// Keeps `min_free_bytes` free after writing `need` bytes, deleting the oldest segments
    /// that are not being written to (see [`crate::space`]).
    fn ensure_space(&mut self, need: u64) -> Result<()> {
        loop {
            let avail = self
                .fs
                .available_space(&self.data_dir)
                .map_err(|e| StoreError::io("reading free space", e))?;
            if avail >= self.min_free_bytes.saturating_add(need) {
                return Ok(());
            }
            let mut rows = self.index.segments()?;
            rows.retain(|r| {
                (r.live_fragments > 0 || r.sealed) && !self.active.values().any(|a| a.id == r.id)
            });
            rows.sort_by_key(|r| (r.max_server_ts_ms, r.id));
            let Some(oldest) = rows.first().copied() else {
                return Err(StoreError::DiskFull(format!(
                    "{avail} bytes free, the floor is {} and nothing is left to expire but the \
                     segments being written",
                    self.min_free_bytes
                )));
            };
            // So little left that the index update might not fit: free the file's space first
            // (a crash in between leaves rows of a missing segment, which opening drops).
            let dropped = if avail < crate::space::index_reserve(self.min_free_bytes) {
                self.blobs.delete(oldest.id)?;
                self.index.drop_segment(oldest.id)?
            } else {
                let dropped = self.index.drop_segment(oldest.id)?;
                self.blobs.delete(oldest.id)?;
                dropped
            };
            tracing::warn!(
                segment = oldest.id,
                fragments = dropped,
                free_bytes = avail,
                floor = self.min_free_bytes,
                "under the free-space floor: deleted the oldest segment"
            );
            let live = lock(&self.live).clone();
            for s in live.values() {
                s.touch();
            }
        }
    }
}

impl SegmentRow {
    fn with_lane(mut self, lane: u32) -> Self {
        self.lane = lane;
        self
    }
}
