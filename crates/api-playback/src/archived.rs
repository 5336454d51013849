//! The archive: ListFragments and GetMediaForFragmentList (`../shared/spec/kvs-api.md` §4.1,
//! §4.2).

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::json;
use vigil_store::{
    FragmentMeta, FragmentReader, PageCursor, Store, StoreError, StreamRecord, TimestampKind,
};

use crate::service::Call;
use vigil_api_kvs_common::document::{self, ChunkError, Flavor, FragmentHead};
use vigil_api_kvs_common::json as ok;
use vigil_api_kvs_common::media_response;
use vigil_api_kvs_common::model::{
    EpochMs, fragment_number, is_fragment_number_shape, parse_fragment_number,
};
use vigil_api_kvs_common::readers;
use vigil_api_kvs_common::validate;
use vigil_api_kvs_common::{KvsError, KvsResult};

/// Default `MaxResults` of ListFragments (the service's).
pub const LIST_FRAGMENTS_DEFAULT: usize = 100;
/// Largest `MaxResults` of ListFragments.
pub const LIST_FRAGMENTS_MAX: usize = 1000;

/// The archived operations need a stream that keeps data.
pub(crate) fn require_retention(rec: &StreamRecord) -> KvsResult<()> {
    if rec.data_retention_hours == 0 {
        return Err(KvsError::NoDataRetentionException(format!(
            "The stream {} does not retain data (DataRetentionInHours is 0).",
            rec.name
        )));
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListFragmentsInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
    fragment_selector: Option<FragmentSelector>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct FragmentSelector {
    pub fragment_selector_type: Option<String>,
    pub timestamp_range: Option<TimestampRange>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TimestampRange {
    pub start_timestamp: Option<EpochMs>,
    pub end_timestamp: Option<EpochMs>,
}

/// A selector's kind and range, checked.
pub(crate) fn selector_range(s: &FragmentSelector) -> KvsResult<(TimestampKind, u64, u64)> {
    let kind = match s.fragment_selector_type.as_deref() {
        Some("PRODUCER_TIMESTAMP") => TimestampKind::Producer,
        Some("SERVER_TIMESTAMP") => TimestampKind::Server,
        Some(other) => {
            return Err(KvsError::invalid(format!(
                "FragmentSelectorType {other:?} must be PRODUCER_TIMESTAMP or SERVER_TIMESTAMP."
            )));
        }
        None => return Err(KvsError::invalid("FragmentSelectorType is required.")),
    };
    let range = s
        .timestamp_range
        .as_ref()
        .ok_or_else(|| KvsError::invalid("TimestampRange is required."))?;
    let (start, end) = match (range.start_timestamp, range.end_timestamp) {
        (Some(s), Some(e)) => (s.0, e.0),
        _ => {
            return Err(KvsError::invalid(
                "TimestampRange needs StartTimestamp and EndTimestamp.",
            ));
        }
    };
    if end < start {
        return Err(KvsError::invalid(
            "EndTimestamp must not be before StartTimestamp.",
        ));
    }
    Ok((kind, start, end))
}

/// What a ListFragments `NextToken` carries: the query and where the next page starts, as a
/// small JSON object in a token sealed with the listener's key
/// ([`vigil_api_common::token`]).
#[derive(Debug, Serialize, Deserialize)]
struct ListToken {
    /// Stream id: a token is only good for the stream it came from.
    s: u64,
    /// `p` producer, `s` server.
    k: char,
    a: u64,
    b: u64,
    ts: u64,
    n: u64,
}

/// The model's longest `NextToken` of ListFragments and GetImages.
pub(crate) const TOKEN_MAX: usize = 4096;

/// A sealed token of `value`, for the operation `purpose`.
pub(crate) fn seal_token<T: Serialize>(call: &Call, purpose: &str, value: &T) -> String {
    call.state
        .cfg
        .tokens
        .seal(purpose, &serde_json::to_vec(value).unwrap_or_default())
}

/// What a token sealed for `purpose` carries; `InvalidArgumentException` for anything else.
pub(crate) fn open_token<T: serde::de::DeserializeOwned>(
    call: &Call,
    purpose: &str,
    token: &str,
) -> KvsResult<T> {
    call.state
        .cfg
        .tokens
        .open(purpose, token, TOKEN_MAX)
        .and_then(|b| serde_json::from_slice::<T>(&b).ok())
        .ok_or_else(|| KvsError::invalid("NextToken is not a token this server issued."))
}

/// One entry of ListFragments' `Fragments`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct FragmentJson {
    pub fragment_number: String,
    pub fragment_size_in_bytes: u64,
    pub producer_timestamp: EpochMs,
    pub server_timestamp: EpochMs,
    pub fragment_length_in_milliseconds: u64,
}

impl From<&FragmentMeta> for FragmentJson {
    fn from(m: &FragmentMeta) -> Self {
        Self {
            fragment_number: fragment_number(m.number),
            fragment_size_in_bytes: u64::from(m.size),
            producer_timestamp: EpochMs(m.producer_ts_ms),
            server_timestamp: EpochMs(m.server_ts_ms),
            fragment_length_in_milliseconds: u64::from(m.duration_ms),
        }
    }
}

/// ListFragments: fragments whose start timestamp lies in the range (inclusive at both ends),
/// a page at a time. Without a `FragmentSelector`, every fragment of the stream (as KVS
/// lists them, and as `aws kinesis-video-archived-media list-fragments --stream-name X`
/// asks), in server-timestamp order. Vigil returns each page in timestamp order (KVS promises
/// no order).
pub fn list_fragments(call: &Call) -> KvsResult<Response> {
    let input: ListFragmentsInput = call.input()?;
    let limit = validate::max_results(
        input.max_results,
        LIST_FRAGMENTS_MAX,
        LIST_FRAGMENTS_DEFAULT,
    )?;
    let rec = call.stream(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    require_retention(&rec)?;
    let (kind, start, end, after) = match input.next_token.as_deref() {
        Some(token) => {
            let t: ListToken = open_token(call, "ListFragments", token)?;
            if t.s != rec.id {
                return Err(KvsError::invalid(
                    "NextToken was issued for another stream.",
                ));
            }
            let kind = if t.k == 'p' {
                TimestampKind::Producer
            } else {
                TimestampKind::Server
            };
            let cursor = PageCursor {
                ts_ms: t.ts,
                number: t.n,
            };
            (kind, t.a, t.b, Some(cursor))
        }
        None => match input.fragment_selector.as_ref() {
            Some(sel) => {
                let (kind, start, end) = selector_range(sel)?;
                (kind, start, end, None)
            }
            None => (TimestampKind::Server, 0, u64::MAX, None),
        },
    };
    // One more than the page holds: a NextToken only when there is more (the store's cursor
    // comes with every full page, so a last full page would lead to an empty one).
    let mut page = call
        .state
        .store
        .list_fragments(rec.id, kind, start, end, after, limit + 1)?;
    let next = if page.fragments.len() > limit {
        page.fragments.truncate(limit);
        page.fragments.last().map(|m| PageCursor {
            ts_ms: match kind {
                TimestampKind::Producer => m.producer_ts_ms,
                TimestampKind::Server => m.server_ts_ms,
            },
            number: m.number,
        })
    } else {
        None
    };
    let fragments: Vec<FragmentJson> = page.fragments.iter().map(FragmentJson::from).collect();
    let mut out = serde_json::Map::new();
    out.insert("Fragments".into(), json!(fragments));
    if let Some(next) = next {
        out.insert(
            "NextToken".into(),
            json!(seal_token(
                call,
                "ListFragments",
                &ListToken {
                    s: rec.id,
                    k: if kind == TimestampKind::Producer {
                        'p'
                    } else {
                        's'
                    },
                    a: start,
                    b: end,
                    ts: next.ts_ms,
                    n: next.number,
                }
            )),
        );
    }
    Ok(ok(&out))
}

/// Most fragments one GetMediaForFragmentList may ask for (the model's limit).
pub const FRAGMENT_LIST_MAX: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetMediaForFragmentListInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    fragments: Option<Vec<String>>,
}

/// Checks a `Fragments` list: 1 to [`FRAGMENT_LIST_MAX`] fragment numbers this server issued.
fn fragment_list(fragments: Option<Vec<String>>) -> KvsResult<Vec<(String, u64)>> {
    let fragments = fragments.ok_or_else(|| KvsError::invalid("Fragments is required."))?;
    if fragments.is_empty() || fragments.len() > FRAGMENT_LIST_MAX {
        return Err(KvsError::invalid(format!(
            "Fragments must hold 1 to {FRAGMENT_LIST_MAX} fragment numbers, not {}.",
            fragments.len()
        )));
    }
    fragments
        .into_iter()
        .map(|f| {
            if !is_fragment_number_shape(&f) {
                return Err(KvsError::invalid(format!(
                    "Fragment number {f:?} must be 1 to 128 digits."
                )));
            }
            // KVS answers numbers that cannot be this stream's with "Fragment numbers are
            // invalid" (observed); numbers of the right form that name nothing get a
            // per-fragment error in the body.
            match parse_fragment_number(&f) {
                Some(n) => Ok((f, n)),
                None => Err(KvsError::invalid(format!(
                    "Fragment numbers are invalid: {f} is not a fragment number of this server."
                ))),
            }
        })
        .collect()
}

/// GetMediaForFragmentList: the listed fragments, each as a GetMedia document
/// ([`vigil_api_kvs_common::document`]), in the order asked (repeats included), as a streaming `video/webm`
/// body.
///
/// - Checked before anything is sent: `Fragments` holds 1 to 1000 strings of 1 to 128 digits
///   (`InvalidArgumentException` otherwise: the model's constraints; KVS's service model has no
///   other error for too many), each a fragment number this server issued
///   (`InvalidArgumentException`, "Fragment numbers are invalid", as KVS answers numbers that
///   cannot be the stream's); the stream exists (404) and keeps data
///   (`NoDataRetentionException`).
/// - A listed fragment that is not in the archive (expired, of another stream, or not yet
///   durable: archived reads see what ListFragments lists) becomes an error document in its
///   place and the body goes on: `AWS_KINESISVIDEO_FRAGMENT_NUMBER`, `AWS_KINESISVIDEO_ERROR_ID`
///   `3000` and `AWS_KINESISVIDEO_ERROR_CODE` `FRAGMENT_NOT_FOUND` (what KVS was observed to
///   send, with a 200), plus the documented `AWS_KINESISVIDEO_EXCEPTION_ERROR_CODE` and
///   `AWS_KINESISVIDEO_EXCEPTION_MESSAGE`. A fragment that cannot be read (damaged) gets the
///   same with ERROR_ID 5000.
/// - Each document carries the GetMedia tags and the `_SIDE_` timestamp names this operation's
///   documentation gives, and the end tags (`MILLIS_BEHIND_NOW`, `CONTINUATION_TOKEN`) so that
///   the Java parser library counts it complete.
///
/// Fragments are read a stored chunk (64 KiB) at a time on the blocking pool (reads
/// decrypt), and only when the connection has taken the previous one: a request holds at most
/// one chunk in memory, whatever the fragments' sizes. A chunk that cannot be read (damaged)
/// ends its document with the abandoned-fragment tags, then the error document.
pub async fn get_media_for_fragment_list(call: Call) -> KvsResult<Response> {
    let input: GetMediaForFragmentListInput = call.input()?;
    let fragments = fragment_list(input.fragments)?;
    let rec = call.stream(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    require_retention(&rec)?;
    // Held by the body: a caller's open responses are bounded (`crate::heavy`).
    let permit = call
        .state
        .fragment_lists
        .acquire(&crate::heavy::budget_key(&call))
        .await?;
    let state = ListReader {
        _permit: permit,
        store: call.state.store.clone(),
        stream: rec.id,
        fragments: fragments.into_iter(),
        out: VecDeque::new(),
        open: None,
    };
    let body = futures_util::stream::unfold(state, |mut r| async move {
        loop {
            if let Some(b) = r.out.pop_front() {
                return Some((Ok::<_, Infallible>(b), r));
            }
            if let Some(open) = r.open.take() {
                r.next_chunk(open).await;
                continue;
            }
            let (given, number) = r.fragments.next()?;
            r.start(given, number).await;
        }
    });
    Ok(media_response(Body::from_stream(body)))
}

#[derive(Debug)]
struct ListReader {
    _permit: crate::heavy::HeavyPermit,
    store: Store,
    stream: u64,
    fragments: std::vec::IntoIter<(String, u64)>,
    out: VecDeque<Bytes>,
    /// The fragment whose document is being sent, read a stored chunk at a time.
    open: Option<(String, FragmentReader)>,
}

impl ListReader {
    /// Opens one listed fragment: its document's start into `out`, or an error document.
    async fn start(&mut self, given: String, number: u64) {
        let store = self.store.clone();
        let stream = self.stream;
        let read = tokio::task::spawn_blocking(move || {
            let meta = store.fragment(stream, number)?;
            let reader = store.open_fragment(&meta)?;
            let header = store.header(stream, meta.header_id)?;
            Ok::<_, StoreError>((reader, header))
        })
        .await;
        let error = match read {
            Ok(Ok((reader, header))) => {
                let m = reader.meta();
                let head = FragmentHead {
                    number: m.number,
                    producer_ts_ms: m.producer_ts_ms,
                    server_ts_ms: m.server_ts_ms,
                };
                self.out.extend(document::document_start(
                    &header,
                    &head,
                    Flavor::FragmentList,
                ));
                self.open = Some((given, reader));
                return;
            }
            Ok(Err(e)) => Self::error(&given, &e),
            Err(e) => {
                tracing::error!("GetMediaForFragmentList: reader task failed: {e}");
                ChunkError::list_fragment_unreadable(&given)
            }
        };
        readers::list_document(false);
        self.out.push_back(document::error_document(&given, &error));
    }

    /// The open fragment's next stored chunk into `out`; its end tags after the last one. A
    /// chunk that cannot be read ends the document as abandoned, then an error document.
    async fn next_chunk(&mut self, (given, mut reader): (String, FragmentReader)) {
        let read = tokio::task::spawn_blocking(move || {
            let chunk = reader.next_chunk();
            (reader, chunk)
        })
        .await;
        let error = match read {
            Ok((reader, Ok(Some(chunk)))) => {
                self.out.push_back(chunk);
                self.open = Some((given, reader));
                return;
            }
            Ok((reader, Ok(None))) => {
                let m = reader.meta();
                let lag = self.store.clock().now_ms().saturating_sub(m.server_ts_ms);
                self.out.push_back(document::end_tags(m.number, lag));
                readers::list_document(true);
                return;
            }
            Ok((reader, Err(e))) => {
                self.out
                    .push_back(document::aborted_tags(reader.meta().number));
                Self::error(&given, &e)
            }
            Err(e) => {
                tracing::error!("GetMediaForFragmentList: reader task failed: {e}");
                ChunkError::list_fragment_unreadable(&given)
            }
        };
        readers::list_document(false);
        self.out.push_back(document::error_document(&given, &error));
    }

    /// The error document's contents for a fragment that could not be read.
    fn error(given: &str, e: &StoreError) -> ChunkError {
        match e {
            StoreError::FragmentNotFound { .. } | StoreError::StreamNotFound(_) => {
                ChunkError::list_fragment_not_found(given)
            }
            // Expired between the index look and the read.
            StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ChunkError::list_fragment_not_found(given)
            }
            e => {
                tracing::error!("GetMediaForFragmentList: fragment {given}: {e}");
                ChunkError::list_fragment_unreadable(given)
            }
        }
    }
}
