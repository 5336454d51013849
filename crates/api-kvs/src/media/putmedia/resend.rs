//! Re-sent fragments: a fragment the producer sends again, identical to one already stored,
//! is acknowledged without being stored twice.
//!
//! # Why
//!
//! After its connection fails (a server crash, a network cut) the producer SDK reconnects and
//! streams its buffer again from what it had not yet heard was persisted: the PIC trims its
//! buffer only on PERSISTED acks (`streamFragmentPersistedAck`, in the PIC's `Stream.c`) and
//! rolls back on reconnect (`contentViewRollbackCurrent`). A fragment Vigil had made durable
//! but whose PERSISTED ack was lost with the connection thus arrives a second time: same
//! Cluster Timecode, same bytes. Stored twice, GetMedia, HLS and clips would play it twice.
//!
//! # The rule
//!
//! A fragment is a **copy** of a stored fragment of the same stream when
//!
//! - its producer timestamp equals the stored fragment's,
//! - the stored fragment arrived (its server timestamp) at most [`RESEND_WINDOW_MS`] (10 min)
//!   before this one began,
//! - its track header is byte for byte the stored fragment's, and
//! - its bytes as they would be stored (the Cluster and its stored Tags, see
//!   [`super::super::ingest`]) are byte for byte the stored payload.
//!
//! A copy is acknowledged as the SDK expects a fragment to be: BUFFERING, RECEIVED and
//! PERSISTED with its own `FragmentTimecode` (the SDK finds the fragment in its buffer by that
//! timecode, `contentViewGetItemWithTimestamp`) and the **stored fragment's number**; its
//! PERSISTED ack goes out after those of the fragments before it in the session, as any
//! PERSISTED does. Nothing is written: **what is on disk when that PERSISTED is sent is the
//! stored fragment**, durable since before this session saw the copy (a fragment is in the
//! store's index only once its record is fsynced). The copy's own bytes are dropped.
//!
//! A fragment with the same producer timestamp and other bytes (or another track header) is
//! not a copy: it is stored as any other fragment, beside the earlier one, and readers get
//! both, in arrival order.
//!
//! # Cost, and the bound
//!
//! Each fragment of a retained stream costs one index seek as it begins (on the blocking
//! pool): the stored fragments with exactly its producer timestamp (a page of 256), of which
//! the newest [`MAX_CANDIDATES`] (8) that arrived within the last [`RESEND_WINDOW_MS`] count. The SDK can only send again what its buffer still holds (120 s
//! by default, the stream's `bufferDuration`), so an older fragment with the same timestamp is
//! no re-send of this producer's, and is not compared. Only when there is a candidate (in
//! practice, for re-sent fragments alone) is more done:
//!
//! - the fragment's bytes are held in memory until it is whole, rather than handed to its
//!   writer frame by frame (the writer holds them in memory anyway, up to 50 MB), so live
//!   readers see nothing of it until it is known not to be a copy;
//! - its BUFFERING ack waits until then too (a copy's acks all carry the stored number, so
//!   the number is known only then);
//! - the candidate's payload is read back (one record, on the blocking pool) and compared.
//!
//! Streams with retention 0 are not checked: nothing of theirs is stored to compare with (a
//! re-sent fragment may then appear twice in their in-memory window). A fragment still on its
//! way to disk in another session (not yet indexed) is not found either.

use axum::body::Bytes;
use tokio::sync::oneshot;
use tracing::Instrument;
use vigil_store::{FragmentMeta, MAX_FRAGMENT_BYTES, Store, StoreError, TimestampKind};

use super::{AckError, AckEvent, OpenFragment, Session};

/// How long after a fragment arrived a fragment with its timestamp may be a re-sent copy of it.
pub const RESEND_WINDOW_MS: u64 = 10 * 60 * 1000;
/// Most stored fragments with one producer timestamp compared with a fragment.
pub const MAX_CANDIDATES: usize = 8;
/// Fragments of the same producer timestamp read to find the newest candidates.
const CANDIDATE_PAGE: usize = 256;

/// The bytes of a fragment that may be a copy, held until it is whole.
#[derive(Debug)]
pub(super) struct Held {
    /// The stored fragments it may be a copy of.
    candidates: Vec<FragmentMeta>,
    chunks: Vec<Bytes>,
    len: usize,
}

impl Held {
    /// Holds more of the fragment's bytes; fails past [`MAX_FRAGMENT_BYTES`], as a writer does.
    pub(super) fn push(&mut self, chunk: Bytes) -> Result<(), StoreError> {
        let len = self.len.saturating_add(chunk.len());
        if len > MAX_FRAGMENT_BYTES {
            return Err(StoreError::InvalidArgument(format!(
                "fragment exceeds {MAX_FRAGMENT_BYTES} bytes"
            )));
        }
        self.len = len;
        self.chunks.push(chunk);
        Ok(())
    }
}

impl Session {
    /// The held bytes for a fragment beginning now with `producer_ts_ms`, if a stored fragment
    /// may be what it is a copy of (see the module docs); `None` otherwise, or if the index
    /// cannot tell (the fragment is then stored as any other).
    pub(super) async fn may_be_resent(&self, producer_ts_ms: u64) -> Option<Held> {
        let store = self.state.store.clone();
        let stream = self.stream_id;
        let found =
            tokio::task::spawn_blocking(move || candidates(&store, stream, producer_ts_ms)).await;
        let candidates = match found {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                tracing::warn!("looking for a stored copy of a fragment: {e}");
                return None;
            }
            Err(e) => {
                tracing::warn!("looking for a stored copy of a fragment: {e}");
                return None;
            }
        };
        if candidates.is_empty() {
            return None;
        }
        tracing::debug!(
            producer_ts_ms,
            candidates = candidates.len(),
            "a fragment with the timestamp of a stored one: held until it is whole"
        );
        Some(Held {
            candidates,
            chunks: Vec::new(),
            len: 0,
        })
    }

    /// A fragment whose bytes were held is whole: if it is a copy, acknowledges it and drops
    /// it (`None`); otherwise hands its bytes to its writer, sends its BUFFERING ack and gives
    /// it back to be completed as usual. `None` too if that fails (the session then fails).
    pub(super) async fn settle_held(
        &mut self,
        open: OpenFragment,
        held: Held,
    ) -> Option<OpenFragment> {
        let store = self.state.store.clone();
        let (stream, header_id) = (self.stream_id, open.header_id);
        let compared = tokio::task::spawn_blocking(move || {
            let copy = find_copy(&store, stream, header_id, &held);
            (copy, held)
        })
        .await;
        let held = match compared {
            Ok((Some(copy), _)) => {
                self.ack_copy(open, copy);
                return None;
            }
            Ok((None, held)) => held,
            Err(e) => {
                self.open = Some(open);
                self.fail(
                    AckError::InternalError,
                    None,
                    format!("comparing a fragment with its stored copy: {e}"),
                );
                return None;
            }
        };
        let mut open = open;
        for chunk in held.chunks {
            if let Err(e) = open.writer.append(chunk) {
                let error = match e {
                    StoreError::InvalidArgument(_) => AckError::MaxFragmentSizeReached,
                    ref other => super::store_ack_error(other),
                };
                self.open = Some(open);
                self.fail(error, None, e.to_string());
                return None;
            }
        }
        self.acks.send(
            AckEvent::Buffering,
            Some(open.timecode),
            Some(open.writer.number()),
        );
        Some(open)
    }

    /// Acknowledges a re-sent copy of `stored` (module docs): BUFFERING and RECEIVED now,
    /// PERSISTED once the fragments before it are acknowledged; nothing is written.
    fn ack_copy(&mut self, open: OpenFragment, stored: FragmentMeta) {
        let OpenFragment {
            writer, timecode, ..
        } = open;
        tracing::info!(
            fragment = stored.number,
            timecode,
            producer_ts_ms = stored.producer_ts_ms,
            "a re-sent copy of a stored fragment: acknowledged, not stored again"
        );
        // Live readers drop what they were told of it (nothing: its bytes were held).
        writer.abort();
        let number = Some(stored.number);
        self.acks.send(AckEvent::Buffering, Some(timecode), number);
        self.acks.send(AckEvent::Received, Some(timecode), number);
        let (acked, next) = oneshot::channel();
        let previous = self.last_acked.replace(next);
        let acks = self.acks.clone();
        // Keeps the session registered (shutdown waits) until the ack is out.
        let guard = self.guard.clone();
        let send = async move {
            if let Some(previous) = previous {
                // An error means the previous task is gone (it has acknowledged): go on.
                let _ = previous.await;
            }
            acks.send(AckEvent::Persisted, Some(timecode), number);
            let _ = acked.send(());
            drop(guard);
        };
        tokio::spawn(send.in_current_span());
    }
}

/// The stored fragments of `stream` a fragment beginning now with `producer_ts_ms` may be a
/// copy of: one index seek (blocking).
fn candidates(
    store: &Store,
    stream: u64,
    producer_ts_ms: u64,
) -> Result<Vec<FragmentMeta>, StoreError> {
    let since = store.clock().now_ms().saturating_sub(RESEND_WINDOW_MS);
    // Fragments of one producer timestamp come in number order, oldest first: read a page
    // and keep the newest that arrived within the window (a producer whose clock repeats
    // itself must not fill the candidates with old fragments).
    let page = store.list_fragments(
        stream,
        TimestampKind::Producer,
        producer_ts_ms,
        producer_ts_ms,
        None,
        CANDIDATE_PAGE,
    )?;
    let mut recent: Vec<FragmentMeta> = page
        .fragments
        .into_iter()
        .filter(|m| m.server_ts_ms >= since)
        .collect();
    let skip = recent.len().saturating_sub(MAX_CANDIDATES);
    Ok(recent.split_off(skip))
}

/// The candidate `held` is a copy of, if any (blocking: reads the candidates back). A
/// candidate that cannot be read is not a copy.
fn find_copy(store: &Store, stream: u64, header_id: u64, held: &Held) -> Option<FragmentMeta> {
    let same_header = |other: u64| {
        other == header_id
            || matches!(
                (store.header(stream, other), store.header(stream, header_id)),
                (Ok(a), Ok(b)) if a == b
            )
    };
    held.candidates
        .iter()
        .filter(|c| c.size as usize == held.len && same_header(c.header_id))
        .find(|c| match store.read_meta(c) {
            Ok(stored) => same_bytes(&stored.payload, &held.chunks),
            Err(e) => {
                tracing::warn!(
                    fragment = c.number,
                    "reading a stored fragment back to compare: {e}"
                );
                false
            }
        })
        .copied()
}

/// Whether `chunks`, end to end, are `stored`.
fn same_bytes(stored: &[u8], chunks: &[Bytes]) -> bool {
    let mut rest = stored;
    for chunk in chunks {
        let Some((head, tail)) = rest.split_at_checked(chunk.len()) else {
            return false;
        };
        if head != &chunk[..] {
            return false;
        }
        rest = tail;
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_chunks_end_to_end() {
        let chunks = [Bytes::from_static(b"abc"), Bytes::from_static(b"de")];
        assert!(same_bytes(b"abcde", &chunks));
        assert!(!same_bytes(b"abcdef", &chunks));
        assert!(!same_bytes(b"abcd", &chunks));
        assert!(!same_bytes(b"abxde", &chunks));
        assert!(same_bytes(b"", &[]));
    }
}
