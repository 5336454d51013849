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
//! the server-wide session limit, 400 `ClientLimitExceededException`).
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
//!   interleave, but it bounds what is in flight (below).
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
//! acknowledged); when the stream is deleted (ERROR 4008); when its key is revoked (above); at
//! shutdown, or when a newer connection to the stream wins (after the fragment being
//! received); after
//! [`PutMediaConfig::idle_timeout`] without data (the last fragment is kept if its bytes are
//! whole); or at the connection's maximum duration (ERROR 4003 at the next Cluster). If it
//! ends before the body does, the rest of the body is read and discarded for
//! [`PutMediaConfig::discard_after_end`], so that closing the connection does not reset it
//! while the producer still has acks to read.
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

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::body::{Body, BodyDataStream, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::time::{Instant, sleep_until};
use tracing::Instrument;
use vigil_store::{FragmentWriter, StoreError};

use super::ingest::{AckError, EndOfInput, Ingest, Op, TimecodeType};
use super::sessions::{Control, PutMediaConfig, SessionGuard};
use crate::metrics::metrics;
use crate::service::{Call, KvsState};
use vigil_api_common::Principal;
use vigil_api_common::metrics::Counter;
use vigil_api_kvs_common::model::{fragment_number, seconds_to_ms};
use vigil_api_kvs_common::resolve_stream;
use vigil_api_kvs_common::{KvsError, KvsResult};

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
    let admission = state.sessions.admit(rec.id)?;
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
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
        state,
    };
    tokio::spawn(session.run(first, data).instrument(span));
    // Lets hyper see that the body is wanted (and write the 100) before the head is written.
    tokio::task::yield_now().await;

    let acks = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|ack| (Ok::<Bytes, Infallible>(ack), rx))
    });
    let mut resp = Response::new(Body::from_stream(acks));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
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

/// The latest timestamp accepted: 9999-12-31T23:59:59.999Z, in ms.
const MAX_TIMESTAMP_MS: u64 = 253_402_300_799_999;

/// Parses a producer start timestamp into epoch ms: decimal epoch seconds (`1732012345.678`;
/// `1700000000.5` is 500 ms, as KVS reads the C producer's unpadded milliseconds; more than
/// three decimals round to the nearest ms), any other number form (`1.7e9`), or ISO-8601
/// (`2024-11-19T10:32:25.678Z`, with `Z` or an offset; none means UTC).
pub(crate) fn parse_timestamp(s: &str) -> Option<u64> {
    let s = s.trim();
    parse_decimal_seconds(s)
        .or_else(|| s.parse::<f64>().ok().and_then(seconds_to_ms))
        .or_else(|| parse_iso8601(s))
        .filter(|ms| *ms <= MAX_TIMESTAMP_MS)
}

fn parse_decimal_seconds(s: &str) -> Option<u64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) {
        return None;
    }
    let secs: u64 = int.parse().ok()?;
    let d = |i: usize| frac.as_bytes().get(i).map_or(0, |b| u64::from(b - b'0'));
    let ms = d(0) * 100 + d(1) * 10 + d(2) + u64::from(d(3) >= 5);
    secs.checked_mul(1000)?.checked_add(ms)
}

/// `YYYY-MM-DDTHH:MM:SS[.fff…][Z|±HH:MM|±HHMM]` (a space may replace the `T`).
fn parse_iso8601(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = s.get(from..from + len)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let sep = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut rest = s.get(19..)?;
    let mut ms = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let digits = frac.get(..n)?;
        let d = |i: usize| digits.as_bytes().get(i).map_or(0, |c| i64::from(c - b'0'));
        ms = d(0) * 100 + d(1) * 10 + d(2) + i64::from(d(3) >= 5);
        rest = frac.get(n..)?;
    }
    let offset_secs = match rest {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let tz = rest.get(1..)?.replace(':', "");
            if tz.len() != 4 || !tz.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let h: i64 = tz.get(..2)?.parse().ok()?;
            let m: i64 = tz.get(2..)?.parse().ok()?;
            sign * (h * 3600 + m * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    u64::try_from(secs.checked_mul(1000)?.checked_add(ms)?).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An ack's `EventType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AckEvent {
    Buffering,
    Received,
    Persisted,
    Error(AckError),
    Idle,
}

impl AckEvent {
    fn name(self) -> &'static str {
        match self {
            Self::Buffering => "BUFFERING",
            Self::Received => "RECEIVED",
            Self::Persisted => "PERSISTED",
            Self::Error(_) => "ERROR",
            Self::Idle => "IDLE",
        }
    }
}

/// One ack, as sent: a flat JSON object and a line feed. Every value is an integer or a fixed
/// ASCII string, so nothing needs escaping (the producer SDK's parser knows no escapes).
fn encode_ack(event: AckEvent, timecode: Option<u64>, number: Option<u64>) -> String {
    let mut s = format!("{{\"EventType\":\"{}\"", event.name());
    if let Some(tc) = timecode {
        let _ = write!(s, ",\"FragmentTimecode\":{tc}");
    }
    if let Some(n) = number {
        let _ = write!(s, ",\"FragmentNumber\":\"{}\"", fragment_number(n));
    }
    if let AckEvent::Error(e) = event {
        let _ = write!(s, ",\"ErrorId\":{},\"ErrorCode\":\"{}\"", e.id(), e.code());
    }
    s.push_str("}\n");
    s
}

/// The ack stream of one session (cloned into persist tasks; the response ends when every
/// clone is gone).
#[derive(Debug, Clone)]
struct Acks {
    tx: mpsc::UnboundedSender<Bytes>,
    /// Whether BUFFERING, RECEIVED and PERSISTED are sent
    /// (`x-amzn-fragment-acknowledgment-required`).
    fragment_acks: bool,
}

impl Acks {
    fn send(&self, event: AckEvent, timecode: Option<u64>, number: Option<u64>) {
        let fragment_ack = matches!(
            event,
            AckEvent::Buffering | AckEvent::Received | AckEvent::Persisted
        );
        if fragment_ack && !self.fragment_acks {
            return;
        }
        let m = metrics();
        m.putmedia_acks.inc(&[event.name()]);
        if let AckEvent::Error(e) = event {
            let id = e.id().to_string();
            m.putmedia_errors.inc(&[id.as_str(), e.code()]);
        }
        // A closed channel means the connection is gone; the driver notices on the body side.
        let _ = self
            .tx
            .send(Bytes::from(encode_ack(event, timecode, number)));
    }
}

/// The fragment being received.
#[derive(Debug)]
struct OpenFragment {
    writer: FragmentWriter,
    timecode: u64,
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
        let mut body_done = false;
        if let Some(item) = first {
            body_done = self.on_body(item);
            self.apply().await;
        }
        while !self.ingest.is_ended() {
            if let Some(resumed) = self.stalled_until.take() {
                // Waiting for a permit, the driver read nothing: that was not the producer's
                // silence.
                last_data = last_data.max(resumed);
                next_idle = next_idle.max(resumed + cfg.idle_ack_interval);
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
                    body_done = self.on_body(item);
                }
                () = sleep_until(next_idle) => {
                    if last_data.elapsed() >= cfg.idle_timeout {
                        tracing::info!("no data for {:?}; ending the session", cfg.idle_timeout);
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
        // The response ends once the persist tasks have dropped their ack senders too.
        drop(self);
        if !body_done {
            let discard = async { while let Some(Ok(_)) = data.next().await {} };
            let _ = tokio::time::timeout(cfg.discard_after_end, discard).await;
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
                } => self.begin(timecode, producer_ts_ms),
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

    fn begin(&mut self, timecode: u64, producer_ts_ms: u64) {
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
                self.acks
                    .send(AckEvent::Buffering, Some(timecode), Some(number));
                self.open = Some(OpenFragment { writer, timecode });
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
        if let Err(e) = open.writer.append(bytes) {
            let error = match e {
                StoreError::InvalidArgument(_) => AckError::MaxFragmentSizeReached,
                ref other => store_ack_error(other),
            };
            self.fail(error, None, e.to_string());
        }
    }

    async fn complete(&mut self, duration_ms: u32) {
        let Some(open) = self.open.take() else {
            return;
        };
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
    /// `timecode` if given.
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
        self.acks.send(AckEvent::Error(error), timecode, number);
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
    let OpenFragment { writer, timecode } = open;
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
    fn parses_producer_timestamps() {
        assert_eq!(parse_timestamp("1795320641.601"), Some(1_795_320_641_601));
        // The C producer's unpadded milliseconds read as a decimal, as KVS reads them.
        assert_eq!(parse_timestamp("1700000000.5"), Some(1_700_000_000_500));
        assert_eq!(parse_timestamp("1700000000.05"), Some(1_700_000_000_050));
        assert_eq!(parse_timestamp("1700000000"), Some(1_700_000_000_000));
        assert_eq!(parse_timestamp("1700000000."), Some(1_700_000_000_000));
        assert_eq!(parse_timestamp("1700000000.0015"), Some(1_700_000_000_002));
        assert_eq!(parse_timestamp("1.7e9"), Some(1_700_000_000_000));
        assert_eq!(
            parse_timestamp("2023-11-14T22:13:20Z"),
            Some(1_700_000_000_000)
        );
        assert_eq!(
            parse_timestamp("2023-11-14T23:13:20.250+01:00"),
            Some(1_700_000_000_250)
        );
        assert_eq!(parse_timestamp("1970-01-01 00:00:00.5"), Some(500));
        for bad in [
            "",
            "abc",
            "-5",
            "1e30",
            "2023-13-01T00:00:00Z",
            "2023-11-14T22:13:20X",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

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

    #[test]
    fn encodes_acks() {
        assert_eq!(
            encode_ack(AckEvent::Buffering, Some(1_795_320_641_601), Some(7)),
            "{\"EventType\":\"BUFFERING\",\"FragmentTimecode\":1795320641601,\
             \"FragmentNumber\":\"900000000000000000007\"}\n"
        );
        assert_eq!(
            encode_ack(AckEvent::Error(AckError::InvalidMkvData), Some(0), None),
            "{\"EventType\":\"ERROR\",\"FragmentTimecode\":0,\"ErrorId\":4006,\
             \"ErrorCode\":\"INVALID_MKV_DATA\"}\n"
        );
        assert_eq!(
            encode_ack(AckEvent::Idle, None, None),
            "{\"EventType\":\"IDLE\"}\n"
        );
        let longest = encode_ack(
            AckEvent::Error(AckError::FragmentTimecodeLesserThanPrevious),
            Some(u64::MAX),
            Some(u64::MAX),
        );
        assert!(longest.len() < 1024);
    }
}
