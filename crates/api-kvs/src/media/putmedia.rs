//! PutMedia: the HTTP side of ingest (`../shared/spec/kvs-api.md` §2).
//!
//! # The request
//!
//! The headers are checked before anything is sent, and failures are normal JSON errors:
//! `x-amzn-stream-name` or `x-amzn-stream-arn` (a missing stream is 404
//! `ResourceNotFoundException`), `x-amzn-fragment-timecode-type` (`ABSOLUTE` or `RELATIVE`,
//! required), `x-amzn-producer-start-timestamp` (epoch seconds as any decimal number, the C
//! producer's unpadded `"<sec>.<ms>"` included, or ISO-8601; in RELATIVE mode it defaults to
//! the session's start; ABSOLUTE sessions do not use it, so there a malformed value is
//! ignored), `x-amzn-fragment-acknowledgment-required` (`1`/`0`, default `1`; with `0` only
//! ERROR and IDLE acks are sent). A bad value is 400 `InvalidArgumentException`. Then the
//! caller is authorised for the stream and the session admitted ([`super::sessions`]: past
//! the server-wide session limit or the caller's ([`session_key`]: its access key, or its
//! client address without authentication), 400 `ClientLimitExceededException`).
//!
//! # Full duplex
//!
//! Once admitted, the handler answers `200` with a chunked body fed by a channel, while a
//! spawned task (the session driver) reads the request body. Before returning, the handler
//! polls the body once: hyper answers `Expect: 100-continue` only while no response has been
//! written, so this makes the `100 Continue` go out before the `200`, as the producers expect.
//! Each ack is its own HTTP chunk, flushed at once: a flat JSON object and a line feed, well
//! under the 1024 bytes the producer SDK's parser accepts per read:
//!
//! ```text
//! {"EventType":"BUFFERING","FragmentTimecode":1795320641601,"FragmentNumber":"900000000000000000007"}
//! {"EventType":"ERROR","FragmentTimecode":0,"FragmentNumber":"9…","ErrorId":4006,"ErrorCode":"INVALID_MKV_DATA"}
//! {"EventType":"IDLE"}
//! ```
//!
//! # Who owns what
//!
//! - The **session driver** (one task per request) owns the request body, the
//!   [`Ingest`] state machine and the fragment being received (its `FragmentWriter`). It
//!   carries out the machine's ops in order: registers track headers (on the blocking pool:
//!   the store fsyncs them), begins fragments (BUFFERING), appends bytes as they arrive (live
//!   readers see each frame at once), and on completion sends RECEIVED and hands the writer to
//!   a persist task. It does not wait for durability, so acks of different fragments
//!   interleave, but it bounds what is in flight (below). A fragment with the producer
//!   timestamp of a recently stored one may be a **re-sent copy** of it ([`resend`]): its
//!   bytes are held until it is whole and then compared; a copy gets BUFFERING, RECEIVED and
//!   PERSISTED with the stored fragment's number, in order with the session's other acks, and
//!   nothing is written (the stored fragment is already durable: that is what is on disk when
//!   its PERSISTED goes out); any other fragment goes on as below.
//! - A **persist task** per completed fragment owns its writer from then on: `finish` (on the
//!   blocking pool above [`SEAL_INLINE_MAX_BYTES`], since it encrypts the whole fragment), then
//!   waits for the store's `Durable`, then for the previous fragment's ack, so that acks go
//!   out in fragment order. **PERSISTED is sent only once `Durable` has resolved**,
//!   that is once the fragment's record is fsynced in a segment and indexed (the store's
//!   durability contract). Whether the fragment is written at all is the writer's own
//!   decision, taken once when the fragment began (`FragmentWriter::retained`: the stream's
//!   retention then), so PERSISTED is sent exactly for the fragments the store wrote, whatever
//!   UpdateDataRetention does meanwhile; for a stream with retention 0 nothing is written and
//!   no PERSISTED is sent. A failure is an ERROR ack for that fragment (4008 if the stream was
//!   deleted, 5001 `ARCHIVAL_ERROR` otherwise) and ends the session.
//! - The **response** ends (the zero-length chunk) when the driver and every persist task have
//!   dropped their ack senders: after the last PERSISTED or ERROR ack. The session stays
//!   registered until then, so shutdown waits for those acks.
//!
//! # Memory: fragments in flight
//!
//! A fragment holds its bytes (up to 50 MB) from its first byte until its persist task has
//! sent its PERSISTED or ERROR ack. Each persist task holds one of the session's
//! [`PutMediaConfig::max_fragments_in_flight`] (4) permits until its ack is out; the driver
//! takes one for each completed fragment, after its RECEIVED ack, and when none is free it
//! waits, reading nothing from the request body meanwhile, so that TCP pushes back on a
//! producer faster than the disk (a bulk upload, thousands of tiny Clusters). A session thus
//! holds at most that many completed fragments plus the one being received, and the request
//! bytes of one body read. No ack is dropped or reordered by waiting; the wait ends early only
//! if the session is aborted (the completed fragment is then still persisted). Time spent
//! waiting does not count as idle.
//!
//! # Revoked keys
//!
//! Every [`PutMediaConfig::auth_recheck_interval`] (1 s) the driver asks the authenticator
//! whether the key that signed the request is still valid
//! ([`vigil_api_common::auth::Authenticator::is_current`]); once it is not (revoked or deleted), the
//! session ends as [`super::sessions::Sessions::close_all`] ends it: the fragment being
//! received is dropped without an ack, fragments already complete are still persisted and
//! acknowledged.
//!
//! # Session end
//!
//! The session ends at the end of the body; at the first error (see [`super::ingest`]: one
//! ERROR ack, the fragment being received dropped, earlier ones still persisted and
//! acknowledged, and the ERROR ack is sent after theirs); when the stream is deleted (ERROR
//! 4008); when its key is revoked (above); at shutdown (after the fragment being received,
//! without an ack saying so); when newer connections to the stream displace it (after the
//! fragment being received, then ERROR 4003 for what the producer sends next, see
//! [`super::sessions::DISPLACED_ERROR`]); when reading the body fails, a broken connection or
//! broken chunked framing (ERROR 4000; the fragment being received is dropped unless its
//! Cluster had ended); after [`PutMediaConfig::idle_timeout`] without data (the last fragment
//! is kept if its bytes are whole); when the body brings in less than
//! [`PutMediaConfig::min_progress_bytes`] in a [`PutMediaConfig::min_progress_window`] (ERROR
//! 4000, [`super::sessions::SLOW_ERROR`], the fragment being received dropped as for a broken
//! body; see below); or at the connection's maximum duration (ERROR 4003 at the next
//! Cluster). Then the response ends with its terminating chunk. If it
//! ends before the body does, the rest of the body is read and discarded for
//! [`PutMediaConfig::discard_after_end`] (5 s), so that closing the connection does not reset
//! it while the producer still has acks to read; the producer, told by an ERROR ack, closes
//! it first. A session that ends with no ack saying so (shutdown, a revoked key) stops
//! reading [`PutMediaConfig::close_delay`] (250 ms) after its response has ended instead: the
//! producer SDK would otherwise stream on into the connection until it closed, and it only
//! reconnects then. At shutdown that is right after the PERSISTED ack of the fragment that was
//! being received, which is then on disk (see [`super::sessions`]: `Control::Drain`).
//!
//! # IDLE acks
//!
//! After [`PutMediaConfig::idle_ack_interval`] (3 s) without request data, and every 3 s after
//! that, an `{"EventType":"IDLE"}` ack is sent; after 30 s the session ends, as KVS does. A
//! paused producer thus keeps getting acks, which its SDK counts as a live connection (the
//! SDK's connection-staleness check looks at when the last ack arrived). 3 s keeps well inside
//! the producer's staleness and curl's 30 s low-speed windows while costing nothing; an idle
//! stream's acks cannot reach curl's 30 bytes/s floor anyway (that would take several IDLE
//! acks a second), which is why the session ends at 30 s, when curl would give up too.
//!
//! # Minimum progress
//!
//! The same timer checks the minimum-progress rule ([`super::sessions`]: the body must bring
//! in [`PutMediaConfig::min_progress_bytes`] in every [`PutMediaConfig::min_progress_window`]):
//! the driver counts the body's bytes as they arrive ([`super::sessions::Progress`]) and, from
//! the window's end after the session's start, looks at the count every tenth of a window.
//! A session below the floor ends as a broken body does (ERROR 4000, the fragment being
//! received dropped unless its Cluster had ended, earlier ones still persisted and
//! acknowledged first), so its place is free for another. A session that trickles a byte at a
//! time never goes idle, which is why this is not the idle timeout's job alone. Waiting for a
//! permit (module docs: memory) restarts the count, as it does not count as idle either.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, BodyDataStream, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::time::{Instant, sleep_until};
use tracing::Instrument;
use vigil_store::{FragmentWriter, StoreError};

use super::acks::{AckEvent, Acks};
use super::ingest::{AckError, EndOfInput, Ingest, Op, TimecodeType};
use super::sessions::{Control, ENDED_IDLE, ENDED_SLOW, Progress, PutMediaConfig, SessionGuard};
use crate::metrics::metrics;
use crate::service::{Call, KvsState};
use vigil_api_common::Principal;
use vigil_api_common::metrics::Counter;
use vigil_api_kvs_common::resolve_stream;
use vigil_api_kvs_common::{KvsError, KvsResult};

pub mod resend;
mod timestamp;

use timestamp::parse_timestamp;

/// Fragments larger than this are sealed (encrypted) on the blocking pool rather than on the
/// runtime.
pub const SEAL_INLINE_MAX_BYTES: usize = 1 << 20;

/// Header names.
const STREAM_NAME: &str = "x-amzn-stream-name";
const STREAM_ARN: &str = "x-amzn-stream-arn";
const TIMECODE_TYPE: &str = "x-amzn-fragment-timecode-type";
const START_TIMESTAMP: &str = "x-amzn-producer-start-timestamp";
const ACK_REQUIRED: &str = "x-amzn-fragment-acknowledgment-required";

/// PutMedia: see the module docs.
pub async fn put_media(call: Call, body: Body) -> KvsResult<Response> {
    let req = RequestHeaders::parse(&call.parts.headers)?;
    let state = call.state.clone();
    let rec = resolve_stream(
        &state.store,
        &state.cfg,
        req.stream_name.as_deref(),
        req.stream_arn.as_deref(),
        false,
    )?;
    call.authorize(Some(&rec.name))?;
    let timecode_type = if req.relative {
        TimecodeType::Relative {
            start_ms: req.start_ms.unwrap_or_else(|| state.store.clock().now_ms()),
        }
    } else {
        TimecodeType::Absolute
    };
    let admission = state.sessions.admit(rec.id, &session_key(&call))?;
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    // Dropped with the response's ack stream: once its last ack is out, or once hyper drops it.
    let (response_open, response_ended) = oneshot::channel::<()>();
    let mut data = body.into_data_stream();
    // Polled once now, before the response head exists: see the module docs (100 Continue).
    let first = data.next().now_or_never();

    let m = metrics();
    m.putmedia_sessions_total.inc(&[]);
    let span = tracing::info_span!("putmedia", stream = %rec.name, session = admission.id);
    span.in_scope(|| {
        tracing::info!(
            timecode_type = if req.relative { "RELATIVE" } else { "ABSOLUTE" },
            start_ms = ?req.start_ms,
            acks = req.acks_required,
            "PutMedia session starts"
        );
    });
    let cfg = state.sessions.config().clone();
    let session = Session {
        in_flight: Arc::new(Semaphore::new(cfg.max_fragments_in_flight.max(1))),
        principal: call.principal.clone(),
        cfg,
        stream_id: rec.id,
        ingest: Ingest::new(timecode_type),
        acks: Acks {
            tx,
            fragment_acks: req.acks_required,
        },
        header_id: None,
        open: None,
        guard: admission.guard,
        control: admission.control,
        bytes_in: m.putmedia_bytes.with(&[rec.name.as_str()]),
        fragments_in: m.putmedia_fragments.with(&[rec.name.as_str()]),
        last_acked: None,
        stalled_until: None,
        response_ended: Some(response_ended),
        state,
    };
    tokio::spawn(session.run(first, data).instrument(span));
    // Lets hyper see that the body is wanted (and write the 100) before the head is written.
    tokio::task::yield_now().await;

    let acks = futures_util::stream::unfold((rx, response_open), |(mut rx, open)| async move {
        rx.recv()
            .await
            .map(|ack| (Ok::<Bytes, Infallible>(ack), (rx, open)))
    });
    let mut resp = Response::new(Body::from_stream(acks));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// Whose budget a session counts in ([`vigil_api_kvs_common::budget::budget_key`]): its
/// access key, or without authentication its client's address.
pub fn session_key(call: &Call) -> String {
    vigil_api_kvs_common::budget::budget_key(call)
}

/// The PutMedia request headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestHeaders {
    pub stream_name: Option<String>,
    pub stream_arn: Option<String>,
    /// RELATIVE timecodes (else ABSOLUTE).
    pub relative: bool,
    /// `x-amzn-producer-start-timestamp`, epoch ms.
    pub start_ms: Option<u64>,
    pub acks_required: bool,
}

impl RequestHeaders {
    pub(crate) fn parse(h: &HeaderMap) -> KvsResult<Self> {
        let relative = match header_str(h, TIMECODE_TYPE)? {
            Some(v) if v.eq_ignore_ascii_case("ABSOLUTE") => false,
            Some(v) if v.eq_ignore_ascii_case("RELATIVE") => true,
            Some(v) => {
                return Err(KvsError::invalid(format!(
                    "{TIMECODE_TYPE} {v:?} is not ABSOLUTE or RELATIVE."
                )));
            }
            None => {
                return Err(KvsError::invalid(format!(
                    "The {TIMECODE_TYPE} header (ABSOLUTE or RELATIVE) is required."
                )));
            }
        };
        // Only RELATIVE sessions use the start timestamp: in ABSOLUTE mode a value that is not
        // a timestamp is ignored rather than refused.
        let start_ms = match header_str(h, START_TIMESTAMP) {
            Ok(None | Some("")) => None,
            Ok(Some(v)) => match parse_timestamp(v) {
                Some(ms) => Some(ms),
                None if relative => {
                    return Err(KvsError::invalid(format!(
                        "{START_TIMESTAMP} {v:?} is not a timestamp (epoch seconds or ISO-8601)."
                    )));
                }
                None => None,
            },
            Err(e) if relative => return Err(e),
            Err(_) => None,
        };
        let acks_required = match header_str(h, ACK_REQUIRED)? {
            None | Some("") => true,
            Some(v) if v == "1" || v.eq_ignore_ascii_case("true") => true,
            Some(v) if v == "0" || v.eq_ignore_ascii_case("false") => false,
            Some(v) => {
                return Err(KvsError::invalid(format!(
                    "{ACK_REQUIRED} {v:?} is not 1 or 0."
                )));
            }
        };
        Ok(Self {
            stream_name: header_str(h, STREAM_NAME)?.map(str::to_owned),
            stream_arn: header_str(h, STREAM_ARN)?.map(str::to_owned),
            relative,
            start_ms,
            acks_required,
        })
    }
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> KvsResult<Option<&'a str>> {
    match h.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.trim()))
            .map_err(|_| KvsError::invalid(format!("The {name} header is not valid text."))),
    }
}

/// The fragment being received.
#[derive(Debug)]
struct OpenFragment {
    writer: FragmentWriter,
    timecode: u64,
    /// The track header it is ingested under.
    header_id: u64,
    /// Its bytes, held back while it may be a re-sent copy of a stored fragment (see
    /// [`resend`]); `None`: they go to the writer as they come.
    held: Option<resend::Held>,
}

/// One PutMedia session's driver (see the module docs).
#[derive(Debug)]
struct Session {
    state: Arc<KvsState>,
    cfg: PutMediaConfig,
    stream_id: u64,
    ingest: Ingest,
    acks: Acks,
    header_id: Option<u64>,
    open: Option<OpenFragment>,
    guard: Arc<SessionGuard>,
    control: watch::Receiver<Control>,
    bytes_in: Counter,
    fragments_in: Counter,
    /// Resolves when the previous fragment's persist task has sent its PERSISTED (or ERROR)
    /// ack: each persist task waits for it first, so acks go out in fragment order.
    last_acked: Option<oneshot::Receiver<()>>,
    /// Permits for completed fragments not yet acknowledged (module docs: memory).
    in_flight: Arc<Semaphore>,
    /// Who signed the request, re-checked every `cfg.auth_recheck_interval`.
    principal: Principal,
    /// When the driver last waited for a permit and read nothing meanwhile: that time is not
    /// idle time.
    stalled_until: Option<Instant>,
    /// Resolves (with an error) once the response has ended: its last ack is out.
    response_ended: Option<oneshot::Receiver<()>>,
}

type BodyItem = Option<Result<Bytes, axum::Error>>;

impl Session {
    async fn run(mut self, first: Option<BodyItem>, mut data: BodyDataStream) {
        let cfg = self.cfg.clone();
        let started = Instant::now();
        let deadline = started + cfg.max_connection_duration;
        let mut expired = false;
        let mut last_data = started;
        let mut next_idle = started + cfg.idle_ack_interval;
        let mut next_auth_check = started + cfg.auth_recheck_interval;
        // The minimum-progress rule (module docs), checked on the idle acks' timer.
        // `None`: the rule is off.
        let mut progress = Progress::new(&cfg, started);
        let mut next_progress = progress.enabled().then(|| progress.first_check());
        let mut body_done = false;
        if let Some(item) = first {
            if let Some(Ok(chunk)) = &item {
                progress.record(started, chunk.len());
            }
            body_done = self.on_body(item);
            self.apply().await;
        }
        while !self.ingest.is_ended() {
            if let Some(resumed) = self.stalled_until.take() {
                // Waiting for a permit, the driver read nothing: that was not the producer's
                // silence, nor its slowness.
                last_data = last_data.max(resumed);
                next_idle = next_idle.max(resumed + cfg.idle_ack_interval);
                if next_progress.is_some() {
                    progress.restart(resumed);
                    next_progress = Some(progress.first_check());
                }
            }
            tokio::select! {
                biased;
                changed = self.control.changed() => {
                    if changed.is_err() {
                        // The guard holds the sender: cannot happen while we run.
                        self.ingest.abort();
                    } else {
                        let c = *self.control.borrow_and_update();
                        self.on_control(c);
                    }
                }
                () = sleep_until(deadline), if !expired => {
                    expired = true;
                    tracing::info!("the connection reached its maximum duration");
                    self.ingest.expire();
                }
                // Before the body, which a fast producer may keep always ready.
                () = sleep_until(next_auth_check) => {
                    next_auth_check = Instant::now() + cfg.auth_recheck_interval;
                    if !self.state.auth.is_current(&self.principal) {
                        tracing::warn!(
                            key = self.principal.access_key_id,
                            "the session's access key was revoked; ending the session"
                        );
                        self.on_control(Control::Abort);
                    }
                }
                item = data.next() => {
                    let now = Instant::now();
                    last_data = now;
                    next_idle = now + cfg.idle_ack_interval;
                    if let Some(Ok(chunk)) = &item {
                        progress.record(now, chunk.len());
                    }
                    body_done = self.on_body(item);
                }
                () = sleep_until(next_progress.map_or(next_idle, |p| p.min(next_idle))) => {
                    let now = Instant::now();
                    if next_progress.is_some_and(|p| now >= p) {
                        next_progress = Some(now + progress.check_interval());
                        if progress.too_slow(now) {
                            tracing::info!(
                                bytes = progress.in_window(now),
                                "fewer than {} body bytes in {:?}; ending the session",
                                cfg.min_progress_bytes,
                                cfg.min_progress_window
                            );
                            metrics().putmedia_ended.inc(&[ENDED_SLOW]);
                            self.ingest.finish(EndOfInput::TooSlow);
                        }
                    }
                    if now < next_idle || self.ingest.is_ended() {
                        // Only the progress check was due.
                    } else if last_data.elapsed() >= cfg.idle_timeout {
                        tracing::info!("no data for {:?}; ending the session", cfg.idle_timeout);
                        metrics().putmedia_ended.inc(&[ENDED_IDLE]);
                        self.ingest.finish(EndOfInput::Idle);
                    } else {
                        self.acks.send(AckEvent::Idle, None, None);
                        next_idle += cfg.idle_ack_interval;
                    }
                }
            }
            self.apply().await;
        }
        if let Some(open) = self.open.take() {
            open.writer.abort();
        }
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "PutMedia session ends"
        );
        // Told to stop without an ack saying so (shutdown, a revoked key): the producer goes
        // on streaming into the connection, so it is closed soon after the last ack (module
        // docs: session end).
        let unannounced = matches!(*self.control.borrow(), Control::Drain | Control::Abort);
        let response_ended = self.response_ended.take();
        // The response ends once the persist tasks have dropped their ack senders too.
        drop(self);
        if !body_done {
            let discard = async { while let Some(Ok(_)) = data.next().await {} };
            let close = async {
                if let (true, Some(ended)) = (unannounced, response_ended) {
                    let _ = ended.await;
                    tokio::time::sleep(cfg.close_delay).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            let until_closed = async {
                tokio::select! {
                    () = discard => {}
                    () = close => tracing::debug!("last ack out: closing the connection"),
                }
            };
            let _ = tokio::time::timeout(cfg.discard_after_end, until_closed).await;
        }
    }

    /// Feeds a body item to the machine; whether the body is over.
    fn on_body(&mut self, item: BodyItem) -> bool {
        match item {
            Some(Ok(chunk)) => {
                self.bytes_in.inc_by(chunk.len() as u64);
                self.ingest.push(&chunk);
                false
            }
            Some(Err(e)) => {
                tracing::info!("reading the request body failed: {e}");
                self.ingest.finish(EndOfInput::ReadError);
                true
            }
            None => {
                self.ingest.finish(EndOfInput::BodyEnd);
                true
            }
        }
    }

    fn on_control(&mut self, c: Control) {
        match c {
            Control::Run => {}
            Control::Drain => {
                tracing::info!("told to drain: ending after the fragment being received");
                self.ingest.drain();
            }
            Control::Displaced => {
                tracing::info!(
                    "displaced by newer connections to the stream: ending after the fragment \
                     being received"
                );
                self.ingest.displace();
            }
            Control::Abort => {
                if let Some(open) = self.open.take() {
                    open.writer.abort();
                }
                self.ingest.abort();
            }
            Control::StreamDeleted => self.fail(
                AckError::StreamNotActive,
                None,
                "the stream was deleted".into(),
            ),
        }
    }

    /// Carries out the machine's queued ops.
    async fn apply(&mut self) {
        while let Some(op) = self.ingest.next_op() {
            match op {
                Op::RegisterHeader(header) => self.register_header(header).await,
                Op::Begin {
                    timecode,
                    producer_ts_ms,
                } => self.begin(timecode, producer_ts_ms).await,
                Op::Append(bytes) => self.append(bytes),
                Op::Complete { duration_ms } => self.complete(duration_ms).await,
                Op::Error {
                    error,
                    timecode,
                    detail,
                } => self.send_error(error, timecode, &detail),
                Op::End => {}
            }
        }
    }

    async fn register_header(&mut self, header: Bytes) {
        let store = self.state.store.clone();
        let stream = self.stream_id;
        match tokio::task::spawn_blocking(move || store.register_header(stream, &header)).await {
            Ok(Ok(id)) => {
                tracing::debug!(header = id, "track header registered");
                self.header_id = Some(id);
            }
            Ok(Err(e)) => self.fail(
                store_ack_error(&e),
                None,
                format!("registering the track header: {e}"),
            ),
            Err(e) => self.fail(
                AckError::InternalError,
                None,
                format!("registering the track header: {e}"),
            ),
        }
    }

    async fn begin(&mut self, timecode: u64, producer_ts_ms: u64) {
        let Some(header_id) = self.header_id else {
            return self.fail(
                AckError::InternalError,
                Some(timecode),
                "a fragment without a track header".into(),
            );
        };
        match self
            .state
            .store
            .begin_fragment(self.stream_id, header_id, producer_ts_ms)
        {
            Ok(writer) => {
                let number = writer.number();
                tracing::debug!(
                    fragment = number,
                    timecode,
                    producer_ts_ms,
                    "fragment begins"
                );
                // Only what the store writes can have a stored copy (see `resend`).
                let held = if writer.retained() {
                    self.may_be_resent(producer_ts_ms).await
                } else {
                    None
                };
                if held.is_none() {
                    self.acks
                        .send(AckEvent::Buffering, Some(timecode), Some(number));
                }
                self.open = Some(OpenFragment {
                    writer,
                    timecode,
                    header_id,
                    held,
                });
            }
            Err(e) => self.fail(
                store_ack_error(&e),
                Some(timecode),
                format!("beginning a fragment: {e}"),
            ),
        }
    }

    fn append(&mut self, bytes: Bytes) {
        let Some(open) = self.open.as_mut() else {
            return;
        };
        let appended = match open.held.as_mut() {
            Some(held) => held.push(bytes),
            None => open.writer.append(bytes),
        };
        if let Err(e) = appended {
            let error = match e {
                StoreError::InvalidArgument(_) => AckError::MaxFragmentSizeReached,
                ref other => store_ack_error(other),
            };
            self.fail(error, None, e.to_string());
        }
    }

    async fn complete(&mut self, duration_ms: u32) {
        let Some(mut open) = self.open.take() else {
            return;
        };
        if let Some(held) = open.held.take() {
            // A copy is acknowledged there; any other fragment's bytes are now in its writer.
            match self.settle_held(open, held).await {
                Some(to_store) => open = to_store,
                None => return,
            }
        }
        let number = open.writer.number();
        tracing::debug!(
            fragment = number,
            timecode = open.timecode,
            duration_ms,
            bytes = open.writer.len(),
            "fragment received"
        );
        self.acks
            .send(AckEvent::Received, Some(open.timecode), Some(number));
        self.fragments_in.inc();
        let permit = self.in_flight_permit().await;
        let (acked, next) = oneshot::channel();
        let order = Order {
            previous: self.last_acked.replace(next),
            acked,
        };
        let task = persist(
            open,
            duration_ms,
            self.acks.clone(),
            self.guard.clone(),
            order,
            permit,
        );
        tokio::spawn(task.in_current_span());
    }

    /// A permit for one more fragment in flight (module docs: memory), waiting for one if
    /// need be, without reading the body meanwhile. `None` if the session was aborted while
    /// waiting: the fragment is persisted anyway, and the session ends.
    async fn in_flight_permit(&mut self) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = self.in_flight.clone().try_acquire_owned() {
            return Some(permit);
        }
        tracing::debug!("as many fragments in flight as allowed; pausing the body");
        // A clone, so that the run loop still sees the change as new.
        let mut control = self.control.clone();
        let permit = tokio::select! {
            biased;
            permit = self.in_flight.clone().acquire_owned() => permit.ok(),
            _ = control.wait_for(|c| *c >= Control::Abort) => None,
        };
        self.stalled_until = Some(Instant::now());
        if permit.is_none() {
            let c = *self.control.borrow();
            self.on_control(c);
        }
        permit
    }

    /// An ERROR ack: for the fragment being received (dropped) if there is one, else for
    /// `timecode` if given. It goes out after the acks of the fragments completed before it
    /// (their PERSISTED or ERROR), so that it is the session's last ack: the producer SDK
    /// takes an ERROR ack as the end of the connection, and would resend what it had not yet
    /// heard was persisted.
    fn send_error(&mut self, error: AckError, timecode: Option<u64>, detail: &str) {
        let (timecode, number) = match self.open.take() {
            Some(open) => {
                let number = open.writer.number();
                open.writer.abort();
                (Some(open.timecode), Some(number))
            }
            None => (timecode, None),
        };
        tracing::warn!(
            error_id = error.id(),
            error_code = error.code(),
            fragment = number,
            timecode,
            "PutMedia error: {detail}"
        );
        let event = AckEvent::Error(error);
        match self.last_acked.take() {
            None => self.acks.send(event, timecode, number),
            Some(previous) => {
                let acks = self.acks.clone();
                // Keeps the session registered (shutdown waits) until the ack is out.
                let guard = self.guard.clone();
                let send = async move {
                    // An error means the previous task is gone (it has acknowledged): go on.
                    let _ = previous.await;
                    acks.send(event, timecode, number);
                    drop(guard);
                };
                tokio::spawn(send.in_current_span());
            }
        }
    }

    /// A failure of the driver's own (a store error, deletion): ERROR ack, then the session
    /// ends.
    fn fail(&mut self, error: AckError, timecode: Option<u64>, detail: String) {
        self.send_error(error, timecode, &detail);
        self.ingest.abort();
    }
}

/// The ack error for a store failure.
fn store_ack_error(e: &StoreError) -> AckError {
    match e {
        StoreError::StreamNotFound(_) => AckError::StreamNotActive,
        _ => AckError::ArchivalError,
    }
}

/// Where a persist task's ack goes in the session's order of fragments.
#[derive(Debug)]
struct Order {
    /// Resolves (or is dropped) once the previous fragment's ack is out.
    previous: Option<oneshot::Receiver<()>>,
    /// Fired once this fragment's ack is out.
    acked: oneshot::Sender<()>,
}

/// Finishes a complete fragment and acknowledges it once durable (see the module docs).
/// Fragments are sealed and made durable concurrently, but acknowledged in order: a producer
/// that trims its buffer up to the newest PERSISTED fragment must never be told of fragment
/// N before fragment N-1.
async fn persist(
    open: OpenFragment,
    duration_ms: u32,
    acks: Acks,
    guard: Arc<SessionGuard>,
    order: Order,
    permit: Option<OwnedSemaphorePermit>,
) {
    let OpenFragment {
        writer, timecode, ..
    } = open;
    let number = writer.number();
    // Taken from the writer: PERSISTED is sent exactly when the store writes the fragment.
    let retained = writer.retained();
    let started = Instant::now();
    let finished = if writer.len() > SEAL_INLINE_MAX_BYTES {
        match tokio::task::spawn_blocking(move || writer.finish(duration_ms)).await {
            Ok(r) => r.map_err(|e| (store_ack_error(&e), e.to_string())),
            Err(e) => Err((AckError::InternalError, format!("sealing task failed: {e}"))),
        }
    } else {
        writer
            .finish(duration_ms)
            .map_err(|e| (store_ack_error(&e), e.to_string()))
    };
    let durable = match finished {
        Ok(durable) => durable
            .wait()
            .await
            .map_err(|e| (store_ack_error(&e), e.to_string())),
        Err(e) => Err(e),
    };
    if let Some(previous) = order.previous {
        // An error means the previous task is gone (it has acknowledged or failed): go on.
        let _ = previous.await;
    }
    match durable {
        Ok(meta) => {
            if retained {
                metrics().store_persist_seconds.observe(started.elapsed());
                acks.send(AckEvent::Persisted, Some(timecode), Some(number));
            }
            tracing::debug!(
                fragment = number,
                timecode,
                producer_ts_ms = meta.producer_ts_ms,
                bytes = meta.size,
                retained,
                "fragment durable"
            );
        }
        Err((error, detail)) => {
            tracing::warn!(
                error_id = error.id(),
                error_code = error.code(),
                fragment = number,
                timecode,
                "storing the fragment failed: {detail}"
            );
            acks.send(AckEvent::Error(error), Some(timecode), Some(number));
            guard.raise(Control::Abort);
        }
    }
    let _ = order.acked.send(());
    // The fragment's bytes are gone and its ack is out: the driver may take another.
    drop(permit);
    drop(guard);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_headers() {
        let mut h = HeaderMap::new();
        h.insert(STREAM_NAME, HeaderValue::from_static("cam"));
        h.insert(TIMECODE_TYPE, HeaderValue::from_static("RELATIVE"));
        h.insert(START_TIMESTAMP, HeaderValue::from_static("1700000000.5"));
        h.insert(ACK_REQUIRED, HeaderValue::from_static("0"));
        let r = RequestHeaders::parse(&h).unwrap();
        assert_eq!(
            r,
            RequestHeaders {
                stream_name: Some("cam".into()),
                stream_arn: None,
                relative: true,
                start_ms: Some(1_700_000_000_500),
                acks_required: false,
            }
        );
        h.insert(TIMECODE_TYPE, HeaderValue::from_static("SOMETIMES"));
        assert!(RequestHeaders::parse(&h).is_err());
        h.remove(TIMECODE_TYPE);
        assert!(RequestHeaders::parse(&h).is_err());
        h.insert(TIMECODE_TYPE, HeaderValue::from_static("absolute"));
        h.insert(ACK_REQUIRED, HeaderValue::from_static("maybe"));
        assert!(RequestHeaders::parse(&h).is_err());

        // The start timestamp matters only in RELATIVE mode: elsewhere a bad one is ignored.
        h.insert(ACK_REQUIRED, HeaderValue::from_static("1"));
        for bad in [
            HeaderValue::from_static("yesterday"),
            HeaderValue::from_bytes(b"\xff").unwrap(),
        ] {
            h.insert(START_TIMESTAMP, bad);
            h.insert(TIMECODE_TYPE, HeaderValue::from_static("ABSOLUTE"));
            let r = RequestHeaders::parse(&h).unwrap();
            assert_eq!((r.relative, r.start_ms), (false, None));
            h.insert(TIMECODE_TYPE, HeaderValue::from_static("RELATIVE"));
            assert!(RequestHeaders::parse(&h).is_err());
        }
    }
}
