//! Live PutMedia sessions: which streams have producers connected, so that deleting a stream
//! ends its sessions with an ERROR ack and shutdown lets in-flight fragments finish.
//!
//! # Lifecycle
//!
//! [`Sessions::admit`] registers a session before its `200` goes out, or refuses it with
//! `ServiceUnavailable` (503) once shutdown has begun. The session stays registered until its
//! reading task has ended **and** every fragment it completed has been reported durable (its
//! PERSISTED or ERROR ack sent): the [`SessionGuard`] is shared by the reading task and each
//! fragment's persist task, and the last one to drop it unregisters the session.
//!
//! # Connection limit: the newest wins
//!
//! KVS allows one connection per stream, "the newer connection throttles the older", but its
//! producer SDK overlaps two sessions on purpose while it rotates its token (the old one waits
//! for its last PERSISTED acks while the new one streams), and an old KVS document gave 5 "to
//! allow for streaming token rotation, retries". So a stream may have
//! [`PutMediaConfig::max_sessions_per_stream`] (5) sessions streaming at once; a newer one
//! **displaces** the oldest ([`Control::Displaced`]: it finishes the fragment it is receiving,
//! says so with an ERROR ack, [`DISPLACED_ERROR`], and ends) and is admitted at once. A
//! producer whose connections die silently (no FIN) is therefore never locked out by its own
//! dead connections. Displaced sessions still count against a hard bound of twice that many
//! per stream: past it (a reconnect storm while fragments finish), new sessions are refused
//! with `ConnectionLimitExceededException` (400) before the `200`.
//!
//! # Server-wide limit
//!
//! At most [`PutMediaConfig::max_sessions`] (2000) sessions are registered at once, all
//! streams together (each may hold [`PutMediaConfig::max_fragments_in_flight`] fragments of up
//! to 50 MB, see [`super::putmedia`]); past it new sessions are refused with
//! `ClientLimitExceededException` (400) before the `200`. This is checked first: a refused
//! session changes nothing (it does not displace an older session of its stream).
//!
//! # Control
//!
//! Each session watches a [`Control`] value; it only ever rises ([`Control::Run`] <
//! [`Control::Drain`] < [`Control::Displaced`] < [`Control::Abort`] <
//! [`Control::StreamDeleted`]), so a stronger instruction is never lost behind a weaker one:
//! - `Drain` ([`Sessions::shutdown`]): finish the fragment being received, then end; no new
//!   fragment begins, and no ack says why (the producer's next connection gets 503). The
//!   session's last ack is that fragment's PERSISTED (the store has it on disk then); the
//!   response ends with it, and the connection closes [`PutMediaConfig::close_delay`] later
//!   (the request body is not read on for `discard_after_end`), so that the producer, which
//!   streams on until its connection ends, reconnects at once. What it sent after that
//!   fragment had no ack, and the producer sends it again on its next connection.
//! - `Displaced` (a newer session of the stream): as `Drain`, then an ERROR ack
//!   ([`DISPLACED_ERROR`]) for what the producer sends next (with the next Cluster's timecode
//!   when that is what ends the fragment), so that the producer reconnects and resends it
//!   instead of losing it silently.
//! - `Abort` ([`Sessions::close_all`], a fragment failed to persist, or the session's key was
//!   revoked): drop the fragment being received and end, without an ack for it; the
//!   connection closes as after `Drain`.
//! - `StreamDeleted` ([`Sessions::stream_deleted`]): ERROR 4008 for the fragment being received
//!   (dropped), then end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

use vigil_api_kvs_common::{KvsError, KvsResult};

use super::ingest::AckError;

/// The ERROR ack of a session displaced by newer ones on its stream: 4003
/// `MAX_CONNECTION_DURATION_REACHED`.
///
/// KVS has no ack code for "too many connections on this stream" (its connection limit is
/// `ConnectionLimitExceededException`, an HTTP error before the `200`, which a session
/// already streaming cannot get). 4003 is the code KVS itself sends to say "this connection
/// has lasted long enough: open a new one", which is exactly what a displaced producer must
/// do; its data was fine. The producer SDK treats 4003 so: it is one of the results its
/// `CONNECTION_DROPPED_HOST_ALIVE` lists (reconnect to the same endpoint, no endpoint or
/// stream re-discovery), and it resends from the fragment the ack names. The other codes
/// would mislead it: 4000 blames the connection's reads, 4004–4012 the media, 5000/5001 the
/// service.
pub const DISPLACED_ERROR: AckError = AckError::MaxConnectionDurationReached;

/// Timings and limits of PutMedia sessions.
#[derive(Debug, Clone)]
pub struct PutMediaConfig {
    /// Sessions one stream may have streaming at once (default 5); a newer one makes the
    /// oldest drain. Twice as many may be registered (draining ones included) before new
    /// ones are refused (see the module docs).
    pub max_sessions_per_stream: usize,
    /// An IDLE ack is sent after this long without request data, and again at this interval
    /// (default 3 s; see [`super::putmedia`] for the choice).
    pub idle_ack_interval: Duration,
    /// A session with no request data for this long ends (default 30 s, as KVS).
    pub idle_timeout: Duration,
    /// The longest connection (default 45 min, as KVS): then error 4003.
    pub max_connection_duration: Duration,
    /// After a session ended early (an error, shutdown, deletion), how long the rest of the
    /// request body is still read and discarded, so that the producer reads the final acks
    /// before the connection closes (a close with unread data resets the connection, and a
    /// reset can destroy acks the producer has not read yet). Default 5 s. A session told to
    /// stop without an ack saying so ([`Control::Drain`], [`Control::Abort`]) stops reading
    /// sooner: [`PutMediaConfig::close_delay`] after its last ack.
    pub discard_after_end: Duration,
    /// How long after its last ack a session that was told to drain or abort (which no ack
    /// tells the producer) still reads and discards the request body before the connection
    /// closes: time for those acks to reach the producer before a close with request bytes
    /// unread resets the connection. The producer SDK, which keeps streaming into a connection
    /// until it ends, then reconnects at once instead of after `discard_after_end`. Default
    /// 250 ms.
    pub close_delay: Duration,
    /// Sessions registered at once on the whole server, all streams together (default 2000);
    /// past it new ones are refused with `ClientLimitExceededException`.
    pub max_sessions: usize,
    /// Fragments one session may have received and not yet acknowledged as durable (default
    /// 4; at least 1). When none is free the session stops reading its request body until one
    /// is, so a producer faster than the disk is slowed down by TCP instead of filling memory
    /// (see [`super::putmedia`]).
    pub max_fragments_in_flight: usize,
    /// How often a session re-checks that its key is still valid
    /// ([`vigil_api_common::auth::Authenticator::is_current`]; default 1 s).
    pub auth_recheck_interval: Duration,
}

impl Default for PutMediaConfig {
    fn default() -> Self {
        Self {
            max_sessions_per_stream: 5,
            idle_ack_interval: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(30),
            max_connection_duration: Duration::from_secs(45 * 60),
            discard_after_end: Duration::from_secs(5),
            close_delay: Duration::from_millis(250),
            max_sessions: 2000,
            max_fragments_in_flight: 4,
            auth_recheck_interval: vigil_api_common::auth::RECHECK_INTERVAL,
        }
    }
}

/// What a session is told to do; see the module docs. Ordered by strength.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Control {
    /// Carry on.
    Run,
    /// Finish the fragment being received, then end (shutdown).
    Drain,
    /// A newer session of the stream won: finish the fragment being received, then
    /// [`DISPLACED_ERROR`] and end.
    Displaced,
    /// Drop the fragment being received and end.
    Abort,
    /// The stream was deleted: ERROR 4008, then end.
    StreamDeleted,
}

/// The server's PutMedia sessions.
#[derive(Debug)]
pub struct Sessions {
    cfg: PutMediaConfig,
    registry: Arc<Registry>,
}

#[derive(Debug)]
struct Registry {
    inner: Mutex<Inner>,
    /// How many sessions are registered.
    active: watch::Sender<usize>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    draining: bool,
    sessions: HashMap<u64, Entry>,
}

#[derive(Debug)]
struct Entry {
    stream: u64,
    control: Arc<watch::Sender<Control>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Default for Sessions {
    fn default() -> Self {
        Self::new(PutMediaConfig::default())
    }
}

/// A session admitted by [`Sessions::admit`].
#[derive(Debug)]
pub struct Admission {
    /// The session's id (unique in this process run), for logs.
    pub id: u64,
    /// What the session is told to do.
    pub control: watch::Receiver<Control>,
    /// Keeps the session registered while held (by the reading task and persist tasks).
    pub guard: Arc<SessionGuard>,
}

/// Keeps a session registered; the last clone dropped unregisters it.
#[derive(Debug)]
pub struct SessionGuard {
    registry: Arc<Registry>,
    id: u64,
    control: Arc<watch::Sender<Control>>,
}

impl SessionGuard {
    /// Tells the session to do `c`, unless it was already told something stronger.
    pub fn raise(&self, c: Control) {
        raise(&self.control, c);
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let mut inner = lock(&self.registry.inner);
        if inner.sessions.remove(&self.id).is_some() {
            let n = inner.sessions.len();
            self.registry.active.send_replace(n);
            crate::metrics::metrics().putmedia_sessions.add(-1);
        }
    }
}

fn raise(tx: &watch::Sender<Control>, c: Control) {
    tx.send_if_modified(|current| {
        if c > *current {
            *current = c;
            true
        } else {
            false
        }
    });
}

impl Sessions {
    /// Sessions with these settings.
    pub fn new(cfg: PutMediaConfig) -> Self {
        Self {
            cfg,
            registry: Arc::new(Registry {
                inner: Mutex::new(Inner::default()),
                active: watch::Sender::new(0),
            }),
        }
    }

    /// The settings.
    pub fn config(&self) -> &PutMediaConfig {
        &self.cfg
    }

    /// Registers a new session of `stream`, or refuses it (see the module docs).
    pub fn admit(&self, stream: u64) -> KvsResult<Admission> {
        let mut inner = lock(&self.registry.inner);
        if inner.draining {
            return Err(KvsError::ServiceUnavailable(
                "The server is shutting down; retry on another endpoint or later.".into(),
            ));
        }
        let total = inner.sessions.len();
        if total >= self.cfg.max_sessions {
            tracing::warn!(
                sessions = total,
                "PutMedia refused: the server has as many sessions as it may"
            );
            return Err(KvsError::ClientLimitExceededException(format!(
                "The server has {total} PutMedia connections open; retry later."
            )));
        }
        let max = self.cfg.max_sessions_per_stream.max(1);
        let registered = inner
            .sessions
            .values()
            .filter(|e| e.stream == stream)
            .count();
        if registered >= max.saturating_mul(2) {
            return Err(KvsError::ConnectionLimitExceededException(format!(
                "The stream has {registered} PutMedia connections still open; retry later."
            )));
        }
        let mut streaming: Vec<(u64, &Entry)> = inner
            .sessions
            .iter()
            .filter(|(_, e)| e.stream == stream && *e.control.borrow() == Control::Run)
            .map(|(id, e)| (*id, e))
            .collect();
        if streaming.len() >= max {
            streaming.sort_by_key(|(id, _)| *id);
            if let Some((oldest, e)) = streaming.first() {
                tracing::info!(
                    session = oldest,
                    "a newer PutMedia connection to the stream wins; this one is displaced"
                );
                raise(&e.control, Control::Displaced);
            }
        }
        inner.next_id += 1;
        let id = inner.next_id;
        let (tx, rx) = watch::channel(Control::Run);
        let control = Arc::new(tx);
        inner.sessions.insert(
            id,
            Entry {
                stream,
                control: control.clone(),
            },
        );
        self.registry.active.send_replace(inner.sessions.len());
        crate::metrics::metrics().putmedia_sessions.add(1);
        Ok(Admission {
            id,
            control: rx,
            guard: Arc::new(SessionGuard {
                registry: self.registry.clone(),
                id,
                control,
            }),
        })
    }

    /// A stream was deleted: its sessions send ERROR 4008 and end.
    pub fn stream_deleted(&self, stream: u64) {
        let inner = lock(&self.registry.inner);
        for e in inner.sessions.values().filter(|e| e.stream == stream) {
            raise(&e.control, Control::StreamDeleted);
        }
    }

    /// Begins shutdown: new sessions are refused, and every session ends once the fragment it
    /// is receiving is complete (its PERSISTED ack still goes out). Returns at once; see
    /// [`Sessions::drain`].
    pub fn shutdown(&self) {
        let mut inner = lock(&self.registry.inner);
        inner.draining = true;
        for e in inner.sessions.values() {
            raise(&e.control, Control::Drain);
        }
    }

    /// [`Sessions::shutdown`], then waits until every session has ended and every fragment
    /// they completed is durable and acknowledged. Cancel-safe: wrap it in a timeout, and call
    /// [`Sessions::close_all`] if it runs out.
    pub async fn drain(&self) {
        self.shutdown();
        let mut active = self.registry.active.subscribe();
        // The sender lives in `self`, so this cannot fail while we borrow it.
        let _ = active.wait_for(|n| *n == 0).await;
    }

    /// Ends every session now, dropping the fragments they are receiving (no ack for them).
    /// Fragments already complete still finish persisting.
    pub fn close_all(&self) {
        let inner = lock(&self.registry.inner);
        for e in inner.sessions.values() {
            raise(&e.control, Control::Abort);
        }
    }

    /// Sessions open now.
    pub fn active(&self) -> usize {
        lock(&self.registry.inner).sessions.len()
    }

    /// Sessions of `stream` open now.
    pub fn active_for(&self, stream: u64) -> usize {
        lock(&self.registry.inner)
            .sessions
            .values()
            .filter(|e| e.stream == stream)
            .count()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_newest_wins_up_to_a_bound_and_shutdown_drains() {
        let s = Sessions::new(PutMediaConfig {
            max_sessions_per_stream: 2,
            ..PutMediaConfig::default()
        });
        let a = s.admit(1).unwrap();
        let b = s.admit(1).unwrap();
        // A third: the oldest drains.
        let c = s.admit(1).unwrap();
        assert_eq!(*a.control.borrow(), Control::Displaced);
        assert_eq!(*b.control.borrow(), Control::Run);
        let d = s.admit(1).unwrap();
        assert_eq!(*b.control.borrow(), Control::Displaced);
        // Four registered (two draining): the bound.
        let err = s.admit(1).unwrap_err();
        assert_eq!(err.aws_code(), "ConnectionLimitExceededException");
        drop(a);
        let e = s.admit(1).unwrap();
        assert_eq!(*c.control.borrow(), Control::Displaced);
        let other = s.admit(2).unwrap();
        assert_eq!(s.active(), 5);
        assert_eq!(s.active_for(1), 4);

        s.stream_deleted(1);
        assert_eq!(*d.control.borrow(), Control::StreamDeleted);
        assert_eq!(*other.control.borrow(), Control::Run);
        // A weaker instruction does not replace a stronger one.
        s.shutdown();
        assert_eq!(*d.control.borrow(), Control::StreamDeleted);
        assert_eq!(*other.control.borrow(), Control::Drain);
        assert_eq!(s.admit(3).unwrap_err().aws_code(), "ServiceUnavailable");

        let held = other.guard.clone();
        drop((b, c, d, e, other));
        assert_eq!(s.active(), 1);
        let release = tokio::spawn(async move {
            drop(held);
        });
        tokio::time::timeout(Duration::from_secs(5), s.drain())
            .await
            .unwrap();
        release.await.unwrap();
        assert_eq!(s.active(), 0);
    }

    #[test]
    fn the_server_wide_limit_refuses_without_side_effects() {
        let s = Sessions::new(PutMediaConfig {
            max_sessions: 2,
            max_sessions_per_stream: 1,
            ..PutMediaConfig::default()
        });
        let a = s.admit(1).unwrap();
        let b = s.admit(2).unwrap();
        let err = s.admit(1).unwrap_err();
        assert_eq!(err.aws_code(), "ClientLimitExceededException");
        // The refused session did not make the stream's session drain.
        assert_eq!(*a.control.borrow(), Control::Run);
        assert_eq!(
            s.admit(3).unwrap_err().aws_code(),
            "ClientLimitExceededException"
        );
        assert_eq!(s.active(), 2);
        drop(b);
        let _c = s.admit(3).unwrap();
        assert_eq!(s.active(), 2);
    }
}
