//! Reading a stream in fragment-number order, from the past into the live edge.
//!
//! A [`Tail`] delivers each fragment as [`TailEvent::Start`], one or more
//! [`TailEvent::Data`], then [`TailEvent::End`] (or [`TailEvent::Aborted`] if its producer gave
//! it up, or retention expired it while it was being read). Fragments on disk come a stored
//! chunk (64 KiB) at a time, each checked before it is delivered, so a tail holds one chunk
//! in memory whatever the fragment's size (`crate::read`); the fragment being received comes
//! as ingest appends it, so a reader at the live edge runs at frame latency. Ingest never
//! waits for a reader: a reader that falls behind keeps reading, from memory while the
//! fragment is there and from disk after.
//!
//! Choosing the next fragment looks at memory first and the index second: a fragment leaves
//! memory only after it is indexed, so between the two looks nothing can be missed.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::engine::{Store, StreamRef};
use crate::error::{Result, StoreError};
use crate::live::{Ending, LiveFragment, LiveStream};
use crate::read::FragmentReader;
use crate::types::{FragmentMeta, TimestampKind};

/// Most bytes of small appends joined into one [`TailEvent::Data`].
const COALESCE: usize = 1 << crate::chunks::DEFAULT_SHIFT;

/// Where a tail starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The oldest fragment kept.
    Earliest,
    /// The live edge: the fragment being received, or else the next one to arrive.
    Now,
    /// At this fragment (`inclusive`) or just after it.
    Fragment {
        /// The fragment number.
        number: u64,
        /// Include the fragment itself.
        inclusive: bool,
    },
    /// At the fragment containing this timestamp (or the first one after it).
    Timestamp {
        /// Which timestamp.
        kind: TimestampKind,
        /// Milliseconds since the epoch.
        ts_ms: u64,
    },
}

/// The start of a fragment.
#[derive(Debug, Clone)]
pub struct FragmentStart {
    /// Stream id.
    pub stream: u64,
    /// Fragment number.
    pub number: u64,
    /// Producer timestamp.
    pub producer_ts_ms: u64,
    /// Server timestamp.
    pub server_ts_ms: u64,
    /// The track header (EBML header, Info, Tracks) the fragment was ingested under.
    pub header: Bytes,
    /// Whether the fragment is still being received.
    pub live: bool,
}

/// What a tail delivers.
#[derive(Debug, Clone)]
pub enum TailEvent {
    /// A fragment begins.
    Start(FragmentStart),
    /// Bytes of the current fragment, in order.
    Data(Bytes),
    /// The current fragment is complete.
    End {
        /// Its duration.
        duration_ms: u32,
    },
    /// The current fragment was abandoned: discard what was delivered of it.
    Aborted,
}

enum State {
    /// Between fragments; the last one delivered (or skipped) is the cursor.
    Between,
    /// Inside a live fragment, at this chunk.
    Live(Arc<LiveFragment>, usize),
    /// Inside a disk fragment, read a chunk at a time.
    Disk(Box<DiskRead>),
}

/// A disk fragment being delivered: one chunk in memory at a time.
struct DiskRead {
    /// The reader, while no read is in flight.
    reader: Option<FragmentReader>,
    /// The read in flight (kept across a cancelled `next`, so no chunk is lost).
    pending: Option<JoinHandle<(FragmentReader, Result<Option<Bytes>>)>>,
    duration_ms: u32,
}

/// A reader of a stream (see the module docs).
#[derive(Debug)]
pub struct Tail {
    store: Store,
    stream: u64,
    live: Arc<LiveStream>,
    changes: watch::Receiver<u64>,
    cursor: Option<u64>,
    state: State,
    /// Only fragments at or after this timestamp (a timestamp start before any fragment).
    not_before: Option<(TimestampKind, u64)>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            State::Between => f.write_str("Between"),
            State::Live(frag, i) => write!(f, "Live({}, {i})", frag.number),
            State::Disk(_) => f.write_str("Disk"),
        }
    }
}

impl Store {
    /// Opens a tail on a stream.
    pub fn tail(&self, stream: StreamRef<'_>, start: StartAt) -> Result<Tail> {
        let rec = self.stream(stream)?;
        let live = self.live_stream(&rec);
        let changes = live.subscribe();
        let mut not_before = None;
        let cursor = match start {
            StartAt::Earliest => None,
            StartAt::Fragment { number, inclusive } => {
                if inclusive {
                    number.checked_sub(1)
                } else {
                    Some(number)
                }
            }
            StartAt::Now => {
                let w = live.window();
                let open = w
                    .fragments
                    .values()
                    .find(|f| f.ending() == Ending::Open)
                    .map(|f| f.number);
                let newest = w.fragments.keys().next_back().copied();
                drop(w);
                match open {
                    Some(n) => n.checked_sub(1),
                    None => match newest {
                        Some(n) => Some(n),
                        None => self.0.index.last_fragment(rec.id)?.map(|m| m.number),
                    },
                }
            }
            StartAt::Timestamp { kind, ts_ms } => {
                match self.0.index.fragment_at_or_before(rec.id, kind, ts_ms)? {
                    Some(m) if ts_of(&m, kind) + u64::from(m.duration_ms) > ts_ms => {
                        m.number.checked_sub(1)
                    }
                    Some(m) => {
                        not_before = Some((kind, ts_ms));
                        Some(m.number)
                    }
                    None => {
                        not_before = Some((kind, ts_ms));
                        None
                    }
                }
            }
        };
        Ok(Tail {
            store: self.clone(),
            stream: rec.id,
            live,
            changes,
            cursor,
            state: State::Between,
            not_before,
        })
    }
}

impl Store {
    /// Whether a tail can deliver fragment `number` of a stream now: it is in the stream's
    /// memory window (being received, or recent; not abandoned) or in the index.
    pub fn has_fragment(&self, stream: StreamRef<'_>, number: u64) -> Result<bool> {
        let rec = self.stream(stream)?;
        // Memory first, the index second: a fragment leaves memory only once indexed.
        let in_memory = self
            .live_stream(&rec)
            .window()
            .fragments
            .get(&number)
            .is_some_and(|f| f.ending() != Ending::Aborted);
        Ok(in_memory || self.0.index.fragment(rec.id, number)?.is_some())
    }
}

/// A stream's live edge at one instant ([`Store::live_edge`]).
#[derive(Debug)]
pub struct LiveEdge {
    /// The fragments in memory (being received, or received and not yet evicted; abandoned
    /// ones left out), in number order. A fragment above the index's newest is not indexed
    /// yet; one at or below it may be in both.
    pub fragments: Vec<Arc<LiveFragment>>,
    /// Wakes on every later change of the stream: a chunk appended, a fragment begun, ended or
    /// indexed, the stream deleted. Subscribed before the snapshot was taken, so nothing
    /// between the two is missed.
    pub changes: watch::Receiver<u64>,
}

impl Store {
    /// The fragments of a stream in memory and a receiver of its changes: what a reader that
    /// packages the fragment being received (low-latency HLS parts) needs, without a
    /// [`Tail`]'s one-fragment-at-a-time order.
    pub fn live_edge(&self, stream: StreamRef<'_>) -> Result<LiveEdge> {
        let rec = self.stream(stream)?;
        let live = self.live_stream(&rec);
        let changes = live.subscribe();
        if live.is_closed() {
            return Err(StoreError::StreamNotFound(format!("#{}", rec.id)));
        }
        let fragments = live
            .window()
            .fragments
            .values()
            .filter(|f| f.ending() != Ending::Aborted)
            .cloned()
            .collect();
        Ok(LiveEdge { fragments, changes })
    }
}

fn ts_of(m: &FragmentMeta, kind: TimestampKind) -> u64 {
    match kind {
        TimestampKind::Producer => m.producer_ts_ms,
        TimestampKind::Server => m.server_ts_ms,
    }
}

enum Next {
    Live(Arc<LiveFragment>),
    Disk(FragmentMeta),
}

impl Tail {
    /// The last fragment fully delivered or skipped.
    pub fn cursor(&self) -> Option<u64> {
        self.cursor
    }

    /// The next event; waits at the live edge. Fails with `StreamNotFound` once the stream is
    /// deleted.
    pub async fn next(&mut self) -> Result<TailEvent> {
        loop {
            if self.live.is_closed() {
                return Err(StoreError::StreamNotFound(format!("#{}", self.stream)));
            }
            // Mark the current state seen before looking, so a change after the look wakes us.
            self.changes.borrow_and_update();
            match &mut self.state {
                State::Disk(read) => {
                    let (chunk, duration_ms) = (read.next().await, read.duration_ms);
                    return match chunk {
                        Ok(Some(data)) => Ok(TailEvent::Data(data)),
                        Ok(None) => {
                            self.state = State::Between;
                            Ok(TailEvent::End { duration_ms })
                        }
                        // Expired by retention while it was being read: what was delivered
                        // of it is withdrawn, and the tail moves on.
                        Err(e) if is_gone(&e) => {
                            self.state = State::Between;
                            Ok(TailEvent::Aborted)
                        }
                        Err(e) => {
                            self.state = State::Between;
                            Err(e)
                        }
                    };
                }
                State::Live(frag, at) => {
                    let (chunks, ending) = frag.read_from(*at);
                    if !chunks.is_empty() {
                        // Small appends are joined up to a chunk's size; a large one goes
                        // as it is, shared with the memory window (never copied whole).
                        let mut n = 1;
                        let mut len = chunks.first().map_or(0, Bytes::len);
                        while let Some(c) = chunks.get(n)
                            && len + c.len() <= COALESCE
                        {
                            len += c.len();
                            n += 1;
                        }
                        *at += n;
                        let data = if n == 1 {
                            chunks.into_iter().next().unwrap_or_default()
                        } else {
                            let mut v = Vec::with_capacity(len);
                            for c in chunks.iter().take(n) {
                                v.extend_from_slice(c);
                            }
                            Bytes::from(v)
                        };
                        return Ok(TailEvent::Data(data));
                    }
                    match ending {
                        Ending::Open => {}
                        Ending::Complete { duration_ms } => {
                            self.cursor = Some(frag.number);
                            self.state = State::Between;
                            return Ok(TailEvent::End { duration_ms });
                        }
                        Ending::Aborted => {
                            self.cursor = Some(frag.number);
                            self.state = State::Between;
                            return Ok(TailEvent::Aborted);
                        }
                    }
                }
                State::Between => {
                    if let Some(event) = self.start_next().await? {
                        return Ok(event);
                    }
                }
            }
            if self.changes.changed().await.is_err() {
                return Err(StoreError::Closed);
            }
        }
    }

    fn find_next(&self) -> Result<Option<Next>> {
        let after = self.cursor;
        let in_memory = {
            let w = self.live.window();
            let range = match after {
                Some(n) => w.fragments.range(n.saturating_add(1)..),
                None => w.fragments.range(..),
            };
            range
                .map(|(_, f)| f.clone())
                .find(|f| f.ending() != Ending::Aborted)
        };
        let on_disk = self
            .store
            .0
            .index
            .fragments_after(self.stream, after, 1)?
            .into_iter()
            .next();
        Ok(match (in_memory, on_disk) {
            (Some(m), Some(d)) if d.number < m.number => Some(Next::Disk(d)),
            (Some(m), _) => Some(Next::Live(m)),
            (None, Some(d)) => Some(Next::Disk(d)),
            (None, None) => None,
        })
    }

    async fn start_next(&mut self) -> Result<Option<TailEvent>> {
        loop {
            let Some(next) = self.find_next()? else {
                return Ok(None);
            };
            let (number, producer, server, duration) = match &next {
                Next::Live(f) => (f.number, f.producer_ts_ms, f.server_ts_ms, None),
                Next::Disk(m) => (
                    m.number,
                    m.producer_ts_ms,
                    m.server_ts_ms,
                    Some(m.duration_ms),
                ),
            };
            if let Some((kind, ts)) = self.not_before {
                let t = match kind {
                    TimestampKind::Producer => producer,
                    TimestampKind::Server => server,
                };
                let end = t + u64::from(duration.unwrap_or(0));
                if end < ts && duration.is_some() {
                    self.cursor = Some(number);
                    continue;
                }
                self.not_before = None;
            }
            match next {
                Next::Live(frag) => {
                    let header = self.store.header(self.stream, frag.header_id)?;
                    let start = FragmentStart {
                        stream: self.stream,
                        number: frag.number,
                        producer_ts_ms: frag.producer_ts_ms,
                        server_ts_ms: frag.server_ts_ms,
                        header,
                        live: frag.ending() == Ending::Open,
                    };
                    self.state = State::Live(frag, 0);
                    return Ok(Some(TailEvent::Start(start)));
                }
                Next::Disk(meta) => {
                    let store = self.store.clone();
                    let open = tokio::task::spawn_blocking(move || {
                        let reader = store.open_fragment(&meta)?;
                        let header = store.header(meta.stream, meta.header_id)?;
                        Ok::<_, StoreError>((reader, header))
                    })
                    .await
                    .map_err(|e| StoreError::Index(format!("reader task failed: {e}")))?;
                    let (reader, header) = match open {
                        Ok(x) => x,
                        // Expired between the index look and the read: move on.
                        Err(e) if is_gone(&e) => {
                            self.cursor = Some(meta.number);
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    self.cursor = Some(meta.number);
                    self.state = State::Disk(Box::new(DiskRead {
                        reader: Some(reader),
                        pending: None,
                        duration_ms: meta.duration_ms,
                    }));
                    // Start now, the chunks next, then End.
                    return Ok(Some(TailEvent::Start(FragmentStart {
                        stream: self.stream,
                        number: meta.number,
                        producer_ts_ms: meta.producer_ts_ms,
                        server_ts_ms: meta.server_ts_ms,
                        header,
                        live: false,
                    })));
                }
            }
        }
    }
}

impl DiskRead {
    /// The next chunk, read on a blocking thread; cancel-safe (an interrupted read is picked
    /// up by the next call).
    async fn next(&mut self) -> Result<Option<Bytes>> {
        if self.pending.is_none() {
            let Some(mut reader) = self.reader.take() else {
                return Ok(None);
            };
            self.pending = Some(tokio::task::spawn_blocking(move || {
                let chunk = reader.next_chunk();
                (reader, chunk)
            }));
        }
        let Some(pending) = self.pending.as_mut() else {
            return Ok(None);
        };
        let joined = pending.await;
        self.pending = None;
        let (reader, chunk) =
            joined.map_err(|e| StoreError::Index(format!("reader task failed: {e}")))?;
        self.reader = Some(reader);
        chunk
    }
}

/// Whether a read failed because the fragment is gone (expired or its stream deleted).
fn is_gone(e: &StoreError) -> bool {
    match e {
        StoreError::FragmentNotFound { .. } => true,
        StoreError::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
        _ => false,
    }
}
