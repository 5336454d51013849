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
//! # Server-wide and per-key limits
//!
//! At most [`PutMediaConfig::max_sessions`] (2000) sessions are registered at once, all
//! streams together (each may hold [`PutMediaConfig::max_fragments_in_flight`] fragments of up
//! to 50 MB, see [`super::putmedia`]), and at most [`PutMediaConfig::max_sessions_per_key`]
//! (1000) of them by one caller: one access key (without authentication, `--allow-anonymous`:
//! one client address), whatever streams they go to. Past either, new sessions are refused
//! with `ClientLimitExceededException` (400, KVS's error for a client over a limit, which the
//! producer SDKs retry with back-off) before the `200`. Both are checked first: a refused
//! session changes nothing (it does not displace an older session of its stream).
//!
//! Why per key: without it one key opening 5 sessions on each of 400 streams took every
//! place, and every other producer was refused. Why half of the total: a camera streams with
//! one session (two for a moment while it rotates its token), so one key still serves a
//! thousand cameras (the server benchmark's producers, up to 1,000, are unsigned from one
//! address: one caller), while the other half of the server stays for every other key
//! whatever one key does. Registered sessions
//! count (displaced ones still finishing their fragment too), so a key at its limit must
//! wait for its draining sessions to end; a dead connection (no FIN) of its own is freed by
//! the idle timeout or the minimum-progress rule below.
//!
//! # Minimum progress
//!
//! A session holds a place for as long as its body moves. The idle timeout
//! ([`PutMediaConfig::idle_timeout`], 30 s without a byte) alone let a session that sends one
//! byte every 29 s keep its place for ever, so a session must also bring in at least
//! [`PutMediaConfig::min_progress_bytes`] (1 KiB) of body in every
//! [`PutMediaConfig::min_progress_window`] (60 s), once it is that old; else it ends with an
//! ERROR ack [`SLOW_ERROR`] (4000, as a broken body: the server gave up reading it) and a
//! clean end of the response, and its place is free. [`Progress`] keeps the count; the
//! session driver checks it on the same timer as its idle acks ([`super::putmedia`]).
//!
//! The defaults are far below any real producer: an 8 kbit/s audio-only stream brings 60 KB a
//! minute, 60 times the floor (a producer of something other than media, a few tiny frames a
//! minute, must still add up to 1 KiB a minute, Cluster headers included). The window is
//! twice the idle timeout so that pauses the idle timeout allows are not punished: a pause
//! (under 30 s) then leaves the rest of every window to data, 30 s of it around an isolated
//! pause (any producer above 34 bytes/s passes), and even a producer silent 29 s out of every
//! 30 has 2 s of data in every window (the 8 kbit/s stream passes). Time the driver spends
//! not reading (its fragments in flight are all taken, waiting for the disk) starts the count
//! afresh, as it does not count as idle either.
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

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

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

/// The ERROR ack of a session ended by the minimum-progress rule (module docs): 4000
/// `STREAM_READ_ERROR`, "error while reading the data stream".
///
/// KVS has no code for "too slow" (it only closes idle connections, without an ack); the
/// server gave up reading the body, which is what 4000 says, and what a broken body gets too.
/// A producer whose network is that slow reconnects and resends what had no PERSISTED ack.
pub const SLOW_ERROR: AckError = AckError::StreamReadError;

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
    /// Sessions one caller (an access key; without authentication, a client address) may have
    /// registered at once, all streams together (default 1000, half of `max_sessions`, see
    /// the module docs); past it its new ones are refused with
    /// `ClientLimitExceededException`. Keep it below `max_sessions`, or one key can take
    /// every place.
    pub max_sessions_per_key: usize,
    /// The minimum-progress rule: a session whose body brings in fewer bytes than this in
    /// any [`PutMediaConfig::min_progress_window`] (once it is that old) ends with ERROR
    /// [`SLOW_ERROR`] (default 1024; 0 turns the rule off). See the module docs.
    pub min_progress_bytes: u64,
    /// The window of the minimum-progress rule, and its grace period after the session
    /// starts (default 60 s, twice the idle timeout; see the module docs).
    pub min_progress_window: Duration,
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
            max_sessions_per_key: 1000,
            min_progress_bytes: 1024,
            min_progress_window: Duration::from_secs(60),
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
    /// Whose budget it counts in (an access key, or a client address).
    key: Arc<str>,
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

/// Whether it changed anything.
fn raise(tx: &watch::Sender<Control>, c: Control) -> bool {
    tx.send_if_modified(|current| {
        if c > *current {
            *current = c;
            true
        } else {
            false
        }
    })
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

    /// Registers a new session of `stream` by the caller `key` (an access key id, or a client
    /// address without authentication), or refuses it (see the module docs).
    pub fn admit(&self, stream: u64, key: &str) -> KvsResult<Admission> {
        let m = crate::metrics::metrics();
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
            m.putmedia_refused.inc(&[REFUSED_TOTAL]);
            return Err(KvsError::ClientLimitExceededException(format!(
                "The server has {total} PutMedia connections open; retry later."
            )));
        }
        let per_key = self.cfg.max_sessions_per_key.max(1);
        let mine = inner.sessions.values().filter(|e| &*e.key == key).count();
        if mine >= per_key {
            tracing::warn!(
                key,
                sessions = mine,
                "PutMedia refused: the caller has as many sessions as one caller may"
            );
            m.putmedia_refused.inc(&[REFUSED_PER_KEY]);
            return Err(KvsError::ClientLimitExceededException(format!(
                "This access key has {mine} PutMedia connections open, the most one key may \
                 have; retry when one has ended."
            )));
        }
        let max = self.cfg.max_sessions_per_stream.max(1);
        let registered = inner
            .sessions
            .values()
            .filter(|e| e.stream == stream)
            .count();
        if registered >= max.saturating_mul(2) {
            m.putmedia_refused.inc(&[REFUSED_PER_STREAM]);
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
                if raise(&e.control, Control::Displaced) {
                    m.putmedia_ended.inc(&[ENDED_DISPLACED]);
                }
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
                key: key.into(),
                control: control.clone(),
            },
        );
        self.registry.active.send_replace(inner.sessions.len());
        m.putmedia_sessions.add(1);
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

    /// Sessions of the caller `key` open now.
    pub fn active_for_key(&self, key: &str) -> usize {
        lock(&self.registry.inner)
            .sessions
            .values()
            .filter(|e| &*e.key == key)
            .count()
    }
}

/// `reason` of `vigil_putmedia_sessions_refused_total`: the server-wide limit.
pub const REFUSED_TOTAL: &str = "total";
/// `reason` of `vigil_putmedia_sessions_refused_total`: the caller's limit.
pub const REFUSED_PER_KEY: &str = "per_key";
/// `reason` of `vigil_putmedia_sessions_refused_total`: the stream's hard bound.
pub const REFUSED_PER_STREAM: &str = "per_stream";
/// `reason` of `vigil_putmedia_sessions_ended_total`: displaced by newer sessions.
pub const ENDED_DISPLACED: &str = "displaced";
/// `reason` of `vigil_putmedia_sessions_ended_total`: the minimum-progress rule.
pub const ENDED_SLOW: &str = "slow";
/// `reason` of `vigil_putmedia_sessions_ended_total`: the idle timeout.
pub const ENDED_IDLE: &str = "idle";

/// How many sub-windows [`Progress`] counts a window in.
const PROGRESS_SLOTS: u32 = 10;

/// The minimum-progress rule's count for one session (module docs): the body bytes that
/// arrived in each tenth of the window, for the last window. Bounded: at most 11 counts.
///
/// Bytes are counted generously: a tenth that overlaps the window at all counts whole, so a
/// session is never ended while it met the rule, and one that did not is ended at most a
/// tenth of the window late.
#[derive(Debug)]
pub struct Progress {
    min_bytes: u64,
    window: Duration,
    slot: Duration,
    /// Where counting (re)started: the session's start, or the end of a pause in reading.
    since: Instant,
    /// (slot number since `since`, bytes), oldest first.
    slots: VecDeque<(u64, u64)>,
}

impl Progress {
    /// A count for a session starting at `now`, with `cfg`'s rule.
    pub fn new(cfg: &PutMediaConfig, now: Instant) -> Self {
        let window = cfg.min_progress_window;
        Self {
            min_bytes: cfg.min_progress_bytes,
            window,
            slot: (window / PROGRESS_SLOTS).max(Duration::from_millis(1)),
            since: now,
            slots: VecDeque::new(),
        }
    }

    /// Whether the rule is on.
    pub fn enabled(&self) -> bool {
        self.min_bytes > 0 && !self.window.is_zero()
    }

    /// When the rule is first checked: the end of the grace period.
    pub fn first_check(&self) -> Instant {
        self.since + self.window
    }

    /// How often the rule is checked once the grace period is over.
    pub fn check_interval(&self) -> Duration {
        self.slot
    }

    fn slot_of(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.since).as_nanos();
        u64::try_from(elapsed / self.slot.as_nanos().max(1)).unwrap_or(u64::MAX)
    }

    /// `n` body bytes arrived at `now`.
    pub fn record(&mut self, now: Instant, n: usize) {
        let slot = self.slot_of(now);
        let n = n as u64;
        match self.slots.back_mut() {
            Some((s, bytes)) if *s == slot => *bytes = bytes.saturating_add(n),
            _ => self.slots.push_back((slot, n)),
        }
        self.prune(now);
    }

    /// The driver read nothing until `now` through no fault of the producer: counting starts
    /// again (with a new grace period).
    pub fn restart(&mut self, now: Instant) {
        self.since = now;
        self.slots.clear();
    }

    /// Drops the counts of tenths wholly before the window ending at `now`.
    fn prune(&mut self, now: Instant) {
        let Some(start) = now
            .saturating_duration_since(self.since)
            .checked_sub(self.window)
        else {
            return;
        };
        let slot_ns = self.slot.as_nanos().max(1);
        // Slot `s` covers [s, s + 1) slots: it ends at or before the window's start when
        // (s + 1) * slot <= start.
        let first_kept = u64::try_from(start.as_nanos() / slot_ns).unwrap_or(u64::MAX);
        while self.slots.front().is_some_and(|(s, _)| *s < first_kept) {
            self.slots.pop_front();
        }
    }

    /// Bytes counted in the window ending at `now`.
    pub fn in_window(&mut self, now: Instant) -> u64 {
        self.prune(now);
        self.slots.iter().map(|(_, b)| *b).sum()
    }

    /// Whether the session broke the rule by `now`: older than the window (since counting
    /// started) and fewer than the minimum bytes in it.
    pub fn too_slow(&mut self, now: Instant) -> bool {
        if !self.enabled() || now.saturating_duration_since(self.since) < self.window {
            return false;
        }
        self.in_window(now) < self.min_bytes
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
        let a = s.admit(1, "K").unwrap();
        let b = s.admit(1, "K").unwrap();
        // A third: the oldest drains.
        let c = s.admit(1, "K").unwrap();
        assert_eq!(*a.control.borrow(), Control::Displaced);
        assert_eq!(*b.control.borrow(), Control::Run);
        let d = s.admit(1, "K").unwrap();
        assert_eq!(*b.control.borrow(), Control::Displaced);
        // Four registered (two draining): the bound.
        let err = s.admit(1, "K").unwrap_err();
        assert_eq!(err.aws_code(), "ConnectionLimitExceededException");
        drop(a);
        let e = s.admit(1, "K").unwrap();
        assert_eq!(*c.control.borrow(), Control::Displaced);
        let other = s.admit(2, "K").unwrap();
        assert_eq!(s.active(), 5);
        assert_eq!(s.active_for(1), 4);

        s.stream_deleted(1);
        assert_eq!(*d.control.borrow(), Control::StreamDeleted);
        assert_eq!(*other.control.borrow(), Control::Run);
        // A weaker instruction does not replace a stronger one.
        s.shutdown();
        assert_eq!(*d.control.borrow(), Control::StreamDeleted);
        assert_eq!(*other.control.borrow(), Control::Drain);
        assert_eq!(
            s.admit(3, "K").unwrap_err().aws_code(),
            "ServiceUnavailable"
        );

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
        let a = s.admit(1, "K").unwrap();
        let b = s.admit(2, "K").unwrap();
        let err = s.admit(1, "K").unwrap_err();
        assert_eq!(err.aws_code(), "ClientLimitExceededException");
        // The refused session did not make the stream's session drain.
        assert_eq!(*a.control.borrow(), Control::Run);
        assert_eq!(
            s.admit(3, "K").unwrap_err().aws_code(),
            "ClientLimitExceededException"
        );
        assert_eq!(s.active(), 2);
        drop(b);
        let _c = s.admit(3, "K").unwrap();
        assert_eq!(s.active(), 2);
    }

    #[test]
    fn one_key_cannot_take_every_place() {
        let s = Sessions::new(PutMediaConfig {
            max_sessions: 5,
            max_sessions_per_key: 3,
            max_sessions_per_stream: 1,
            ..PutMediaConfig::default()
        });
        let refused = || {
            crate::metrics::metrics()
                .putmedia_refused
                .get(&[REFUSED_PER_KEY])
        };
        let a1 = s.admit(1, "A").unwrap();
        let _a2 = s.admit(2, "A").unwrap();
        let _a3 = s.admit(3, "A").unwrap();
        let before = refused();
        // A's fourth is refused, whatever stream it is for, and changes nothing: it does not
        // displace A's own session of stream 1.
        for stream in [1, 4] {
            let err = s.admit(stream, "A").unwrap_err();
            assert_eq!(err.aws_code(), "ClientLimitExceededException");
            assert_eq!(err.status().as_u16(), 400);
        }
        assert!(refused() >= before + 2);
        assert_eq!(*a1.control.borrow(), Control::Run);
        assert_eq!(s.active_for_key("A"), 3);
        // Another key still gets in, up to the server's limit.
        let b1 = s.admit(4, "B").unwrap();
        let _b2 = s.admit(5, "B").unwrap();
        assert_eq!(
            s.admit(6, "C").unwrap_err().aws_code(),
            "ClientLimitExceededException"
        );
        assert_eq!(s.active_for_key("B"), 2);
        // A place A gives back is A's again; B's is anyone's.
        drop(a1);
        let _a4 = s.admit(1, "A").unwrap();
        drop(b1);
        let _c1 = s.admit(6, "C").unwrap();
        assert_eq!(s.active(), 5);
    }

    #[test]
    fn displaced_sessions_still_count_against_their_key() {
        let s = Sessions::new(PutMediaConfig {
            max_sessions_per_key: 2,
            max_sessions_per_stream: 1,
            ..PutMediaConfig::default()
        });
        let a = s.admit(1, "A").unwrap();
        let b = s.admit(1, "A").unwrap();
        assert_eq!(*a.control.borrow(), Control::Displaced);
        // Until the displaced one has finished, the key has no place left.
        assert!(s.admit(1, "A").is_err());
        drop(a);
        let _c = s.admit(1, "A").unwrap();
        assert_eq!(*b.control.borrow(), Control::Displaced);
    }

    fn progress(bytes: u64, window_s: u64) -> (Progress, Instant) {
        let cfg = PutMediaConfig {
            min_progress_bytes: bytes,
            min_progress_window: Duration::from_secs(window_s),
            ..PutMediaConfig::default()
        };
        let t0 = Instant::now();
        (Progress::new(&cfg, t0), t0)
    }

    #[test]
    fn a_trickle_breaks_the_minimum_progress_rule_after_the_grace_period() {
        let (mut p, t0) = progress(1024, 60);
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(p.first_check(), at(60));
        assert_eq!(p.check_interval(), Duration::from_secs(6));
        // The attack of the issue: 5 bytes, then a byte every 29 s (never idle for 30 s).
        p.record(t0, 5);
        for s in [29, 58] {
            p.record(at(s), 1);
            assert!(!p.too_slow(at(s)), "within the grace period");
        }
        assert!(p.too_slow(at(60)));
        // Every later window too.
        p.record(at(87), 1);
        assert!(p.too_slow(at(90)));
        // The count is bounded: eleven tenths at most.
        for s in 0..1000 {
            p.record(at(100) + Duration::from_millis(s * 100), 1);
        }
        assert!(p.slots.len() <= 11, "{}", p.slots.len());
    }

    #[test]
    fn real_producers_never_break_the_minimum_progress_rule() {
        // 8 kbit/s of audio: 1000 bytes a second, in 20 ms frames of 20 bytes.
        let (mut p, t0) = progress(1024, 60);
        for ms in (0..600_000u64).step_by(20) {
            let now = t0 + Duration::from_millis(ms);
            p.record(now, 20);
            if ms % 1000 == 0 {
                assert!(!p.too_slow(now), "at {ms} ms");
            }
        }
        // The same producer pausing 29 s out of every 30 (never idle for the 30 s timeout):
        // every window still holds 2 s of it.
        let (mut p, t0) = progress(1024, 60);
        for cycle in 0..20u64 {
            let start = t0 + Duration::from_secs(cycle * 30);
            for ms in (0..1000u64).step_by(20) {
                p.record(start + Duration::from_millis(ms), 20);
            }
            for s in 1..=30 {
                let now = start + Duration::from_secs(s);
                assert!(!p.too_slow(now), "at {:?}", now - t0);
            }
        }
        // 40 bytes a second with one 29 s pause: the window over the pause holds 31 s of it.
        let (mut p, t0) = progress(1024, 60);
        for s in (0..300u64).filter(|s| !(100..129).contains(s)) {
            let now = t0 + Duration::from_secs(s);
            p.record(now, 40);
            assert!(!p.too_slow(now), "at {s} s");
        }
        // 1 KiB in any window passes however it is spread; a window with less does not.
        let (mut p, t0) = progress(1024, 60);
        let at = |s: u64| t0 + Duration::from_secs(s);
        p.record(at(0), 1024);
        assert!(!p.too_slow(at(60)));
        assert!(
            !p.too_slow(at(65)),
            "counted while its tenth overlaps the window"
        );
        assert!(p.too_slow(at(66)));
        assert_eq!(p.in_window(at(66)), 0);
    }

    #[test]
    fn pauses_in_reading_restart_the_count_and_zero_turns_the_rule_off() {
        let (mut p, t0) = progress(1024, 60);
        let at = |s: u64| t0 + Duration::from_secs(s);
        p.record(at(0), 10);
        // The driver read nothing from 50 s to 100 s (its fragments in flight were all taken).
        p.restart(at(100));
        assert_eq!(p.first_check(), at(160));
        assert!(!p.too_slow(at(120)));
        assert!(p.too_slow(at(160)));

        let (mut off, t0) = progress(0, 60);
        assert!(!off.enabled());
        assert!(!off.too_slow(t0 + Duration::from_secs(3600)));
        let (mut off, t0) = progress(1024, 0);
        assert!(!off.enabled());
        assert!(!off.too_slow(t0 + Duration::from_secs(3600)));
    }
}
