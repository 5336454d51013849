//! GetMedia: a stream's fragments from a starting point into the live edge, as one streaming
//! response (`../shared/spec/kvs-api.md` §3).
//!
//! # Request
//!
//! `{StreamName | StreamARN, StartSelector: {StartSelectorType, AfterFragmentNumber,
//! StartTimestamp, ContinuationToken}}`. A missing `StartSelector` or `StartSelectorType`, an
//! unknown type, or a type without the field it needs (or with a malformed one) is
//! `InvalidArgumentException` (400), checked before the stream is looked up; an unknown
//! stream is `ResourceNotFoundException` (404). Where the reading starts:
//!
//! - `NOW`: the fragment being received (from its first byte), or else the next to arrive.
//! - `EARLIEST`: the oldest fragment kept (for a stream with retention 0, the oldest still in
//!   its memory window).
//! - `FRAGMENT_NUMBER`: **at** `AfterFragmentNumber`, that fragment included. The API
//!   reference says both "the chunk after" and "from" this fragment; what clients do settles
//!   it: the fragment numbers they pass are those of fragments they want (Amazon Connect's
//!   `StartFragmentNumber`, where a call's audio begins; the fragment Rekognition Video matched
//!   a face in), and resuming *after* a fragment is what `CONTINUATION_TOKEN` is for. A
//!   well-formed number that names no fragment of the stream (never, or no longer) gives a
//!   200 whose body is one error document, `AWS_KINESISVIDEO_ERROR_ID` 4000 ("requested
//!   fragment is not found", the GetMedia error list), and ends: that is how GetMedia reports
//!   errors, and it keeps a 404 meaning "no such stream", which producers act on.
//! - `SERVER_TIMESTAMP` / `PRODUCER_TIMESTAMP`: the fragment containing `StartTimestamp`, or
//!   else the first one after it.
//! - `CONTINUATION_TOKEN`: just after the fragment that carried the token (Vigil's token is
//!   that fragment's number), whether or not it still exists; a token this server did not
//!   issue is `InvalidArgumentException`.
//!
//! # Response
//!
//! `200`, `Content-Type: video/webm`, a chunked body of one EBML document per fragment in
//! fragment-number order ([`vigil_api_kvs_common::document`]). The body follows the live edge and stays open
//! while the stream exists, however long the stream is idle (KVS's behaviour on an idle stream
//! is not documented; a reader that wants to stop closes the connection). A fragment being
//! received is sent as its bytes arrive, in whole elements (so each frame as soon as it is
//! complete; its Cluster header with an unknown size, see [`Aligner`]); the end tags (`MILLIS_BEHIND_NOW` = now − the fragment's server timestamp, by the
//! store's clock, and `CONTINUATION_TOKEN`) follow once the fragment is complete.
//!
//! A fragment its producer abandons part way (`TailEvent::Aborted`) ends at the last whole
//! element sent, with a Tags element marking it ([`vigil_api_kvs_common::document::aborted_tags`]) and no end
//! tags, so it is never complete for the Java parser library; the next fragment's EBML header
//! starts a new document, on which every reader resynchronises. If the stream is deleted, or
//! the server shuts down, an open document is closed the same way and the body ends. A read
//! failure (a damaged or unreadable fragment) ends the body with an error document,
//! `ERROR_ID` 5000.
//!
//! The body also ends, the same way (an open document closed as abandoned, no error
//! document), once the key that signed the request is revoked or deleted: every
//! [`vigil_api_common::auth::RECHECK_INTERVAL`] (1 s), while it waits for the stream or reads it, the body
//! asks the authenticator whether the caller is still valid
//! ([`vigil_api_common::auth::Authenticator::is_current`]).
//!
//! # Memory and back-pressure
//!
//! The body is a stream that reads the store's [`Tail`] only when the connection asks for more
//! (hyper polls a body only once its write buffer has room), so a reader that stops reading
//! holds at most one fragment's payload (the `Bytes` of one read, shared with the store's
//! memory where the fragment came from there) plus the connection's buffers, and ingest never
//! waits for it: the tail reads on from disk once the fragments it has not reached leave
//! memory. A closed connection drops the body, and with it the tail. Readers are independent:
//! there is no per-stream limit on their number (KVS allows three).

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::body::Body;
use axum::response::Response;
use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use tokio::time::{Instant, sleep_until};
use vigil_api_kvs_common::budget::{HeavyLimits, HeavyPermit};
use vigil_store::{StartAt, Store, StoreError, StreamRef, Tail, TailEvent, TimestampKind};

use crate::service::Call;
use vigil_api_common::auth::{Authenticator, Principal, RECHECK_INTERVAL};
use vigil_api_kvs_common::document::{self, Aligner, ChunkError, Flavor, FragmentHead};
use vigil_api_kvs_common::media_response;
use vigil_api_kvs_common::model::{is_fragment_number_shape, parse_fragment_number, seconds_to_ms};
use vigil_api_kvs_common::readers::ReaderMetrics;
use vigil_api_kvs_common::{KvsError, KvsResult};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetMediaInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    start_selector: Option<StartSelectorInput>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StartSelectorInput {
    start_selector_type: Option<String>,
    after_fragment_number: Option<String>,
    start_timestamp: Option<f64>,
    continuation_token: Option<String>,
}

/// A start selector, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// `NOW`.
    Now,
    /// `EARLIEST`.
    Earliest,
    /// `FRAGMENT_NUMBER`: the string given, and the fragment it names if it is one this
    /// server issued.
    Fragment {
        /// `AfterFragmentNumber` as given.
        given: String,
        /// The store's number.
        number: Option<u64>,
    },
    /// `SERVER_TIMESTAMP` or `PRODUCER_TIMESTAMP`.
    Timestamp(TimestampKind, u64),
    /// `CONTINUATION_TOKEN`: after this fragment.
    After(u64),
}

/// Whether a continuation token has the model's shape (`^[a-zA-Z0-9_\.\-]+$`, 1–128).
fn is_token_shape(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn selector(input: Option<&StartSelectorInput>) -> KvsResult<Selector> {
    let s = input.ok_or_else(|| KvsError::invalid("StartSelector is required."))?;
    let kind = s
        .start_selector_type
        .as_deref()
        .ok_or_else(|| KvsError::invalid("StartSelector.StartSelectorType is required."))?;
    let timestamp = |kind| {
        let secs = s.start_timestamp.ok_or_else(|| {
            KvsError::invalid(
                "StartSelector.StartTimestamp is required for this StartSelectorType.",
            )
        })?;
        let ms = seconds_to_ms(secs).ok_or_else(|| {
            KvsError::invalid(format!(
                "StartSelector.StartTimestamp {secs} is not a timestamp in epoch seconds."
            ))
        })?;
        Ok(Selector::Timestamp(kind, ms))
    };
    match kind {
        "NOW" => Ok(Selector::Now),
        "EARLIEST" => Ok(Selector::Earliest),
        "FRAGMENT_NUMBER" => {
            let given = s.after_fragment_number.as_deref().ok_or_else(|| {
                KvsError::invalid(
                    "StartSelector.AfterFragmentNumber is required for FRAGMENT_NUMBER.",
                )
            })?;
            if !is_fragment_number_shape(given) {
                return Err(KvsError::invalid(format!(
                    "StartSelector.AfterFragmentNumber {given:?} must be 1 to 128 digits."
                )));
            }
            Ok(Selector::Fragment {
                given: given.to_owned(),
                number: parse_fragment_number(given),
            })
        }
        "SERVER_TIMESTAMP" => timestamp(TimestampKind::Server),
        "PRODUCER_TIMESTAMP" => timestamp(TimestampKind::Producer),
        "CONTINUATION_TOKEN" => {
            let token = s.continuation_token.as_deref().ok_or_else(|| {
                KvsError::invalid(
                    "StartSelector.ContinuationToken is required for CONTINUATION_TOKEN.",
                )
            })?;
            if !is_token_shape(token) {
                return Err(KvsError::invalid(format!(
                    "StartSelector.ContinuationToken {token:?} is malformed."
                )));
            }
            let number = parse_fragment_number(token).ok_or_else(|| {
                KvsError::invalid(format!(
                    "StartSelector.ContinuationToken {token:?} is not a token this server issued."
                ))
            })?;
            Ok(Selector::After(number))
        }
        other => Err(KvsError::invalid(format!(
            "StartSelector.StartSelectorType {other:?} must be one of FRAGMENT_NUMBER, \
             SERVER_TIMESTAMP, PRODUCER_TIMESTAMP, NOW, EARLIEST, CONTINUATION_TOKEN."
        ))),
    }
}

/// GetMedia: see the module docs.
pub async fn get_media(call: Call) -> KvsResult<Response> {
    let input: GetMediaInput = call.input()?;
    let selector = selector(input.start_selector.as_ref())?;
    let rec = call.stream(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    let store = call.state.store.clone();
    let start = match &selector {
        Selector::Now => StartAt::Now,
        Selector::Earliest => StartAt::Earliest,
        Selector::Timestamp(kind, ts_ms) => StartAt::Timestamp {
            kind: *kind,
            ts_ms: *ts_ms,
        },
        Selector::After(number) => StartAt::Fragment {
            number: *number,
            inclusive: false,
        },
        Selector::Fragment { given, number } => {
            let found = match number {
                Some(n) => store.has_fragment(StreamRef::Id(rec.id), *n)?,
                None => false,
            };
            match number {
                Some(n) if found => StartAt::Fragment {
                    number: *n,
                    inclusive: true,
                },
                _ => {
                    let doc = document::error_document(given, &ChunkError::fragment_not_found());
                    return Ok(media_response(Body::from(doc)));
                }
            }
        }
    };
    // Held by the body for as long as it lasts: a caller's open responses are bounded.
    let permit = call
        .state
        .readers
        .acquire(&vigil_api_kvs_common::budget::budget_key(&call))
        .await?;
    let tail = store.tail(StreamRef::Id(rec.id), start)?;
    tracing::debug!(stream = rec.name, ?selector, "GetMedia");
    let metrics = ReaderMetrics::start(&rec.name);
    let access = Access {
        auth: call.state.auth.clone(),
        principal: call.principal.clone(),
    };
    Ok(media_response(Body::from_stream(reader_stream(
        store, tail, metrics, access, permit,
    ))))
}

/// GetMedia's default budget ([`vigil_api_kvs_common::budget`]): 1000 responses open per
/// caller, 5000 in all, refused with `ClientLimitExceededException` beyond. Each holds
/// about one stored chunk (64 KiB) and a connection's buffers whatever the fragments' sizes,
/// so one key's readers that do not read hold a few hundred MB at most, while a fan-out of a
/// thousand viewers of one stream (the server benchmark's) still fits one key. KVS itself
/// allows 3 per stream.
pub fn reader_limits() -> HeavyLimits {
    HeavyLimits {
        per_key: 1000,
        total: 5000,
        wait: std::time::Duration::ZERO,
    }
}

/// The fragment whose document is open.
#[derive(Debug)]
struct Open {
    number: u64,
    server_ts_ms: u64,
    /// For a fragment still being received: its payload is sent in whole elements.
    aligner: Option<Aligner>,
}

/// Who is reading, re-checked while the body lasts (see the module docs).
#[derive(Debug)]
struct Access {
    auth: Arc<dyn Authenticator>,
    principal: Principal,
}

/// One GetMedia body (see the module docs).
#[derive(Debug)]
struct Reader {
    store: Store,
    tail: Tail,
    /// Bytes ready to send, in order.
    out: VecDeque<Bytes>,
    open: Option<Open>,
    last_number: Option<u64>,
    done: bool,
    metrics: ReaderMetrics,
    access: Access,
    /// When `access` is next re-checked.
    next_auth_check: Instant,
    /// Its place in the caller's budget of open responses.
    _permit: HeavyPermit,
}

/// The body: reads the tail only when polled.
fn reader_stream(
    store: Store,
    tail: Tail,
    metrics: ReaderMetrics,
    access: Access,
    permit: HeavyPermit,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    let reader = Reader {
        store,
        tail,
        out: VecDeque::new(),
        open: None,
        last_number: None,
        done: false,
        metrics,
        access,
        next_auth_check: Instant::now() + RECHECK_INTERVAL,
        _permit: permit,
    };
    futures_util::stream::unfold(reader, |mut r| async move {
        loop {
            if let Some(b) = r.out.pop_front() {
                r.metrics.bytes_sent(b.len());
                return Some((Ok(b), r));
            }
            if r.done {
                return None;
            }
            r.step().await;
        }
    })
}

impl Reader {
    /// The next tail event; `None` once the caller's key is no longer valid. The tail's read
    /// is never cancelled by a re-check (a slow disk read could otherwise never finish).
    async fn next_event(&mut self) -> Option<vigil_store::Result<TailEvent>> {
        let next = self.tail.next();
        tokio::pin!(next);
        loop {
            tokio::select! {
                event = &mut next => return Some(event),
                () = sleep_until(self.next_auth_check) => {
                    self.next_auth_check = Instant::now() + RECHECK_INTERVAL;
                    if !self.access.auth.is_current(&self.access.principal) {
                        return None;
                    }
                }
            }
        }
    }

    /// Reads one tail event into `out` (or marks the body done).
    async fn step(&mut self) {
        let Some(event) = self.next_event().await else {
            tracing::warn!(
                key = self.access.principal.access_key_id,
                "GetMedia: the reader's access key was revoked; ending the response"
            );
            self.close_open();
            self.done = true;
            return;
        };
        match event {
            Ok(TailEvent::Start(start)) => {
                // A Start while a document is open cannot happen (the tail ends or aborts
                // each fragment first); close it anyway rather than nest documents.
                self.close_open();
                let head = FragmentHead {
                    number: start.number,
                    producer_ts_ms: start.producer_ts_ms,
                    server_ts_ms: start.server_ts_ms,
                };
                self.out.extend(document::document_start(
                    &start.header,
                    &head,
                    Flavor::GetMedia,
                ));
                self.open = Some(Open {
                    number: start.number,
                    server_ts_ms: start.server_ts_ms,
                    aligner: start.live.then(Aligner::new),
                });
            }
            Ok(TailEvent::Data(data)) => match self.open.as_mut() {
                Some(Open {
                    aligner: Some(a), ..
                }) => a.push(data, &mut self.out),
                Some(_) => self.out.push_back(data),
                None => {}
            },
            Ok(TailEvent::End { .. }) => {
                if let Some(mut open) = self.open.take() {
                    if let Some(a) = open.aligner.as_mut() {
                        a.finish(&mut self.out);
                    }
                    let lag = self
                        .store
                        .clock()
                        .now_ms()
                        .saturating_sub(open.server_ts_ms);
                    self.out.push_back(document::end_tags(open.number, lag));
                    self.last_number = Some(open.number);
                    self.metrics.fragment_sent(lag);
                }
            }
            Ok(TailEvent::Aborted) => self.close_open(),
            Err(StoreError::StreamNotFound(_) | StoreError::Closed) => {
                self.close_open();
                self.done = true;
            }
            Err(e) => {
                tracing::error!("GetMedia: reading the stream failed: {e}");
                let number = self.open.as_ref().map(|o| o.number).or(self.last_number);
                self.close_open();
                let number = vigil_api_kvs_common::model::fragment_number(number.unwrap_or(0));
                self.out
                    .push_back(document::error_document(&number, &ChunkError::internal()));
                self.done = true;
            }
        }
    }

    /// Ends the open document, if any, as an abandoned fragment's.
    fn close_open(&mut self) {
        if let Some(mut open) = self.open.take() {
            if let Some(a) = open.aligner.as_mut() {
                a.discard();
            }
            self.out.push_back(document::aborted_tags(open.number));
            self.last_number = Some(open.number);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn sel(json: &str) -> KvsResult<Selector> {
        let input: StartSelectorInput = serde_json::from_str(json).unwrap();
        selector(Some(&input))
    }

    #[test]
    fn selectors_are_checked() {
        assert_eq!(sel(r#"{"StartSelectorType":"NOW"}"#), Ok(Selector::Now));
        assert_eq!(
            sel(r#"{"StartSelectorType":"EARLIEST","AfterFragmentNumber":"x"}"#),
            Ok(Selector::Earliest)
        );
        assert_eq!(
            sel(
                r#"{"StartSelectorType":"FRAGMENT_NUMBER","AfterFragmentNumber":"900000000000000000012"}"#
            ),
            Ok(Selector::Fragment {
                given: "900000000000000000012".into(),
                number: Some(12)
            })
        );
        assert_eq!(
            sel(r#"{"StartSelectorType":"FRAGMENT_NUMBER","AfterFragmentNumber":"12"}"#),
            Ok(Selector::Fragment {
                given: "12".into(),
                number: None
            })
        );
        assert_eq!(
            sel(r#"{"StartSelectorType":"PRODUCER_TIMESTAMP","StartTimestamp":1700000000.5}"#),
            Ok(Selector::Timestamp(
                TimestampKind::Producer,
                1_700_000_000_500
            ))
        );
        assert_eq!(
            sel(
                r#"{"StartSelectorType":"CONTINUATION_TOKEN","ContinuationToken":"900000000000000000012"}"#
            ),
            Ok(Selector::After(12))
        );
        for bad in [
            r#"{}"#,
            r#"{"StartSelectorType":"LATEST"}"#,
            r#"{"StartSelectorType":"FRAGMENT_NUMBER"}"#,
            r#"{"StartSelectorType":"FRAGMENT_NUMBER","AfterFragmentNumber":"12a"}"#,
            r#"{"StartSelectorType":"FRAGMENT_NUMBER","AfterFragmentNumber":""}"#,
            r#"{"StartSelectorType":"SERVER_TIMESTAMP"}"#,
            r#"{"StartSelectorType":"SERVER_TIMESTAMP","StartTimestamp":-1}"#,
            r#"{"StartSelectorType":"CONTINUATION_TOKEN"}"#,
            r#"{"StartSelectorType":"CONTINUATION_TOKEN","ContinuationToken":"a b"}"#,
            r#"{"StartSelectorType":"CONTINUATION_TOKEN","ContinuationToken":"abc"}"#,
        ] {
            assert!(
                matches!(sel(bad), Err(KvsError::InvalidArgumentException(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            selector(None),
            Err(KvsError::InvalidArgumentException(_))
        ));
    }
}
