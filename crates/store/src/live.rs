//! The live side of a stream: fragments still arriving, and the most recent ones, in memory.
//!
//! Ingest appends each chunk (a frame, as it completes) to the stream's in-progress fragment
//! and bumps the stream's change counter; it never waits for a reader. Readers hold an
//! `Arc` of the fragment they read and an index into its chunks, and wake on the counter, so a
//! reader at the live edge gets each frame as soon as it arrives (frame latency), and a slow one
//! simply reads on from memory, or from disk once the fragment has left memory.
//!
//! The window keeps fragments in number order and evicts only from the front, so every
//! fragment numbered above [`Window::evicted_up_to`] that still exists is in memory, and
//! everything at or below it is on disk (or gone, for a stream that keeps nothing).
//! A retained stream's fragment leaves memory once it is durable and a newer one is complete;
//! a stream with retention 0 keeps a window of recent fragments bounded by age and bytes (5
//! minutes and 200 MB by default, as KVS does).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::watch;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How a live fragment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Still arriving.
    Open,
    /// Complete, with this duration.
    Complete {
        /// Duration.
        duration_ms: u32,
    },
    /// Abandoned by its producer; readers drop what they got.
    Aborted,
}

/// A fragment in memory.
#[derive(Debug)]
pub struct LiveFragment {
    /// Stream id.
    pub stream: u64,
    /// Fragment number.
    pub number: u64,
    /// Track header id.
    pub header_id: u64,
    /// Producer timestamp.
    pub producer_ts_ms: u64,
    /// Server timestamp.
    pub server_ts_ms: u64,
    state: Mutex<FragState>,
}

#[derive(Debug)]
struct FragState {
    chunks: Vec<Bytes>,
    bytes: usize,
    ending: Ending,
    durable: bool,
}

impl LiveFragment {
    /// Chunks from index `from` on, and how the fragment stands.
    pub fn read_from(&self, from: usize) -> (Vec<Bytes>, Ending) {
        let st = lock(&self.state);
        (
            st.chunks.get(from..).unwrap_or_default().to_vec(),
            st.ending,
        )
    }

    /// Every chunk so far.
    pub fn chunks(&self) -> Vec<Bytes> {
        lock(&self.state).chunks.clone()
    }

    /// Bytes so far.
    pub fn len(&self) -> usize {
        lock(&self.state).bytes
    }

    /// Whether no byte has arrived.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How it stands.
    pub fn ending(&self) -> Ending {
        lock(&self.state).ending
    }
}

/// A stream's fragments in memory.
#[derive(Debug)]
pub struct LiveStream {
    window: Mutex<Window>,
    changes: watch::Sender<u64>,
    retained: AtomicBool,
    closed: AtomicBool,
}

/// The in-memory window (see the module docs).
#[derive(Debug, Default)]
pub struct Window {
    /// Fragments by number.
    pub fragments: BTreeMap<u64, Arc<LiveFragment>>,
    /// The highest fragment number evicted so far.
    pub evicted_up_to: Option<u64>,
    bytes: usize,
}

/// Limits of the window of a stream with retention 0.
#[derive(Debug, Clone, Copy)]
pub struct WindowLimits {
    /// Oldest fragment kept, by server timestamp.
    pub max_age_ms: u64,
    /// Bytes kept.
    pub max_bytes: usize,
}

impl Default for WindowLimits {
    fn default() -> Self {
        Self {
            max_age_ms: 5 * 60 * 1000,
            max_bytes: 200 * 1000 * 1000,
        }
    }
}

impl LiveStream {
    /// A stream whose fragments are persisted (`retained`) or only kept in memory.
    pub fn new(retained: bool) -> Self {
        Self {
            window: Mutex::default(),
            changes: watch::Sender::new(0),
            retained: AtomicBool::new(retained),
            closed: AtomicBool::new(false),
        }
    }

    /// Whether fragments are persisted.
    pub fn retained(&self) -> bool {
        self.retained.load(Ordering::SeqCst)
    }

    /// Changes whether fragments are persisted (the stream's retention changed).
    pub fn set_retained(&self, retained: bool) {
        self.retained.store(retained, Ordering::SeqCst);
    }

    /// The stream was deleted: readers end, writers fail.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.changed();
    }

    /// Whether the stream was deleted.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// A receiver that wakes on every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn changed(&self) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Locks the window.
    pub fn window(&self) -> MutexGuard<'_, Window> {
        lock(&self.window)
    }

    /// Adds a new, empty fragment.
    pub fn begin(
        &self,
        stream: u64,
        number: u64,
        header_id: u64,
        producer_ts_ms: u64,
        server_ts_ms: u64,
    ) -> Arc<LiveFragment> {
        let f = Arc::new(LiveFragment {
            stream,
            number,
            header_id,
            producer_ts_ms,
            server_ts_ms,
            state: Mutex::new(FragState {
                chunks: Vec::new(),
                bytes: 0,
                ending: Ending::Open,
                durable: false,
            }),
        });
        self.window().fragments.insert(number, f.clone());
        self.changed();
        f
    }

    /// Appends a chunk to a fragment.
    pub fn append(&self, f: &LiveFragment, chunk: Bytes) {
        let n = chunk.len();
        {
            let mut st = lock(&f.state);
            st.bytes += n;
            st.chunks.push(chunk);
        }
        self.window().bytes += n;
        self.changed();
    }

    /// Ends a fragment.
    pub fn end(&self, f: &LiveFragment, ending: Ending, now_ms: u64, limits: WindowLimits) {
        lock(&f.state).ending = ending;
        self.evict(now_ms, limits);
        self.changed();
    }

    /// Records that a fragment's fate is settled: durable, or failed for good. Either way it
    /// may leave memory (a failed one was never on disk, so readers skip it from then on).
    pub fn persisted(&self, number: u64, now_ms: u64, limits: WindowLimits) {
        if let Some(f) = self.window().fragments.get(&number) {
            lock(&f.state).durable = true;
        }
        self.evict(now_ms, limits);
        self.changed();
    }

    /// Wakes readers (after the index changed).
    pub fn touch(&self) {
        self.changed();
    }

    fn evict(&self, now_ms: u64, limits: WindowLimits) {
        let mut w = self.window();
        let newest_complete = w
            .fragments
            .values()
            .rev()
            .find(|f| matches!(f.ending(), Ending::Complete { .. }))
            .map(|f| f.number);
        while let Some((&number, front)) = w.fragments.first_key_value() {
            let (ending, durable, bytes) = {
                let st = lock(&front.state);
                (st.ending, st.durable, st.bytes)
            };
            let evict = match ending {
                Ending::Aborted => true,
                Ending::Open => false,
                Ending::Complete { .. } if self.retained() => {
                    durable && Some(number) != newest_complete
                }
                Ending::Complete { .. } => {
                    now_ms.saturating_sub(front.server_ts_ms) > limits.max_age_ms
                        || w.bytes > limits.max_bytes
                }
            };
            if !evict {
                break;
            }
            w.fragments.pop_first();
            w.bytes = w.bytes.saturating_sub(bytes);
            w.evicted_up_to = Some(w.evicted_up_to.map_or(number, |e| e.max(number)));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn retained_window_evicts_in_order_once_durable() {
        let s = LiveStream::new(true);
        let lim = WindowLimits::default();
        let a = s.begin(1, 10, 1, 0, 0);
        let b = s.begin(1, 11, 1, 0, 0);
        s.append(&b, Bytes::from_static(b"x"));
        s.end(&b, Ending::Complete { duration_ms: 1 }, 0, lim);
        s.persisted(11, 0, lim);
        // 10 is still open, so 11 stays too (eviction is from the front only).
        assert_eq!(s.window().fragments.len(), 2);
        s.end(&a, Ending::Complete { duration_ms: 1 }, 0, lim);
        s.persisted(10, 0, lim);
        // 10 is durable and not the newest complete: gone; 11 is the newest: kept.
        let w = s.window();
        assert_eq!(w.fragments.keys().copied().collect::<Vec<_>>(), vec![11]);
        assert_eq!(w.evicted_up_to, Some(10));
    }

    #[test]
    fn unretained_window_is_bounded() {
        let s = LiveStream::new(false);
        let lim = WindowLimits {
            max_age_ms: 1000,
            max_bytes: 10,
        };
        for n in 0..5u64 {
            let f = s.begin(1, n, 1, 0, n * 100);
            s.append(&f, Bytes::from_static(b"1234"));
            s.end(&f, Ending::Complete { duration_ms: 100 }, n * 100, lim);
        }
        let w = s.window();
        assert!(w.bytes <= 10);
        assert_eq!(w.fragments.keys().copied().collect::<Vec<_>>(), vec![3, 4]);
        drop(w);
        s.end(&s.begin(1, 5, 1, 0, 5000), Ending::Aborted, 5000, lim);
        assert_eq!(s.window().fragments.len(), 0);
    }
}
