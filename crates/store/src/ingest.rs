//! Writing fragments: [`FragmentWriter`] and [`Durable`].
//!
//! `begin_fragment` gives the fragment its number (as the first byte arrives, so the BUFFERING
//! ack can carry it) and its server timestamp, and puts it in the stream's live window; each
//! `append` makes the bytes visible to live readers at once; `finish` seals the record
//! (AES-256-GCM) on the caller's thread and hands it to the commit thread, returning a
//! [`Durable`] that resolves once the fragment is on disk and indexed. Dropping a writer
//! without finishing aborts the fragment: live readers are told to discard it, and nothing
//! is written.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::chunks;
use crate::commit::{Append, Item, Job};
use crate::engine::{Store, StreamRef, lane_for};
use crate::error::{Result, StoreError};
use crate::live::{Ending, LiveFragment, LiveStream};
use crate::record::{FLAG_ENCRYPTED, RecordHeader};
use crate::types::{FragmentMeta, Location};

/// Largest fragment accepted, in bytes (KVS: 50 MB).
pub const MAX_FRAGMENT_BYTES: usize = 50 * 1000 * 1000;

/// A fragment being received.
#[derive(Debug)]
pub struct FragmentWriter {
    store: Store,
    live: Arc<LiveStream>,
    frag: Arc<LiveFragment>,
    retained: bool,
    lane: u32,
    key_gen: u32,
    bytes: usize,
    done: bool,
}

/// Resolves when a fragment is durable (or immediately, for a stream that keeps nothing).
#[derive(Debug)]
pub struct Durable {
    inner: DurableInner,
}

#[derive(Debug)]
enum DurableInner {
    Ready(Option<Result<FragmentMeta>>),
    Waiting(oneshot::Receiver<Result<FragmentMeta>>),
}

impl Durable {
    /// Waits for the fragment to be durable; returns its stored metadata.
    pub async fn wait(self) -> Result<FragmentMeta> {
        match self.inner {
            DurableInner::Ready(r) => r.unwrap_or(Err(StoreError::Closed)),
            DurableInner::Waiting(rx) => rx.await.unwrap_or(Err(StoreError::Closed)),
        }
    }

    /// Blocks the thread until the fragment is durable (not for async contexts).
    pub fn wait_blocking(self) -> Result<FragmentMeta> {
        match self.inner {
            DurableInner::Ready(r) => r.unwrap_or(Err(StoreError::Closed)),
            DurableInner::Waiting(rx) => rx.blocking_recv().unwrap_or(Err(StoreError::Closed)),
        }
    }
}

impl Store {
    /// Starts a fragment of `stream` under track header `header_id`, stamped now.
    pub fn begin_fragment(
        &self,
        stream: u64,
        header_id: u64,
        producer_ts_ms: u64,
    ) -> Result<FragmentWriter> {
        self.check_writable()?;
        let rec = self.stream(StreamRef::Id(stream))?;
        let live = self.live_stream(&rec);
        let number = self.next_number()?;
        let server_ts_ms = self.clock().now_ms();
        let frag = live.begin(stream, number, header_id, producer_ts_ms, server_ts_ms);
        Ok(FragmentWriter {
            store: self.clone(),
            live,
            frag,
            retained: rec.data_retention_hours > 0,
            lane: lane_for(rec.data_retention_hours),
            key_gen: if self.config().encryption {
                rec.key_generation
            } else {
                0
            },
            bytes: 0,
            done: false,
        })
    }
}

impl FragmentWriter {
    /// The fragment's number.
    pub fn number(&self) -> u64 {
        self.frag.number
    }

    /// Its server timestamp.
    pub fn server_ts_ms(&self) -> u64 {
        self.frag.server_ts_ms
    }

    /// Whether the fragment will be written to disk when finished: the stream's retention was
    /// above 0 when the fragment began (read once, in `begin_fragment`; a later
    /// UpdateDataRetention does not change it). `finish` writes it and its [`Durable`] resolves
    /// once it is on disk exactly when this is true; otherwise it lives only in memory.
    pub fn retained(&self) -> bool {
        self.retained
    }

    /// Bytes so far.
    pub fn len(&self) -> usize {
        self.bytes
    }

    /// Whether nothing was appended yet.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// Appends bytes (live readers see them at once). Fails past [`MAX_FRAGMENT_BYTES`].
    pub fn append(&mut self, chunk: Bytes) -> Result<()> {
        if self.bytes + chunk.len() > MAX_FRAGMENT_BYTES {
            return Err(StoreError::InvalidArgument(format!(
                "fragment {} exceeds {MAX_FRAGMENT_BYTES} bytes",
                self.frag.number
            )));
        }
        self.bytes += chunk.len();
        self.live.append(&self.frag, chunk);
        Ok(())
    }

    /// Completes the fragment. The returned [`Durable`] resolves once it is durable; for a
    /// stream with retention 0 it resolves at once and the fragment lives only in memory.
    pub fn finish(mut self, duration_ms: u32) -> Result<Durable> {
        self.done = true;
        let store = self.store.clone();
        let now = store.clock().now_ms();
        let limits = store.config().live_window;
        if self.live.is_closed() {
            self.live.end(&self.frag, Ending::Aborted, now, limits);
            return Err(StoreError::StreamNotFound(format!("#{}", self.frag.stream)));
        }
        if let Err(e) = store.check_writable() {
            self.live.end(&self.frag, Ending::Aborted, now, limits);
            return Err(e);
        }
        let f = &self.frag;
        let meta = FragmentMeta {
            stream: f.stream,
            number: f.number,
            producer_ts_ms: f.producer_ts_ms,
            server_ts_ms: f.server_ts_ms,
            duration_ms,
            size: u32::try_from(self.bytes).unwrap_or(u32::MAX),
            header_id: f.header_id,
            key_gen: self.key_gen,
            location: Location {
                segment: 0,
                offset: 0,
                len: 0,
            },
        };
        self.live
            .end(&self.frag, Ending::Complete { duration_ms }, now, limits);
        if !self.retained {
            return Ok(Durable {
                inner: DurableInner::Ready(Some(Ok(meta))),
            });
        }
        let chunks = self.frag.chunks();
        let mut header = RecordHeader {
            flags: if self.key_gen > 0 { FLAG_ENCRYPTED } else { 0 },
            stream: meta.stream,
            number: meta.number,
            producer_ts_ms: meta.producer_ts_ms,
            server_ts_ms: meta.server_ts_ms,
            duration_ms,
            header_id: meta.header_id,
            key_gen: self.key_gen,
            nonce: [0; 12],
            payload_len: meta.size,
            chunk_shift: chunks::DEFAULT_SHIFT,
        };
        let parts = chunks.iter().map(|c| c.as_ref());
        let record = if self.key_gen > 0 {
            let count = chunks::Layout::of(&header).map_or(1, |l| l.chunk_count());
            header.nonce = store.0.nonces.reserve(u64::from(count));
            let key = store.data_key(meta.stream, self.key_gen)?;
            let seal = move |nonce: [u8; 12], aad: &[u8], buf: &mut [u8]| {
                key.seal_in_place(nonce, aad, buf)
            };
            chunks::encode_chunked(&header, parts, Some(&seal))
        } else {
            chunks::encode_chunked(&header, parts, None)
        };
        let (tx, rx) = oneshot::channel();
        store.send(Job::Append(Append {
            lane: self.lane,
            record,
            item: Item::Fragment { meta, reply: tx },
        }))?;
        Ok(Durable {
            inner: DurableInner::Waiting(rx),
        })
    }

    /// Abandons the fragment.
    pub fn abort(mut self) {
        self.abort_inner();
    }

    fn abort_inner(&mut self) {
        if !self.done {
            self.done = true;
            let now = self.store.clock().now_ms();
            self.live.end(
                &self.frag,
                Ending::Aborted,
                now,
                self.store.config().live_window,
            );
        }
    }
}

impl Drop for FragmentWriter {
    fn drop(&mut self) {
        self.abort_inner();
    }
}
