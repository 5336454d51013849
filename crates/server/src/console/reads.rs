//! The reads only the console makes: the streams overview and a day's timeline, each
//! authorised as the operation it stands for, and the query-string helpers of the console's
//! GETs.

use axum::response::Response;
use serde::Serialize;
use serde_json::json;
use vigil_api_kvs_common::{KvsError, KvsResult, json as json_response};
use vigil_store::TimestampKind;

use crate::ServerState;

/// A parsed query string.
pub(super) struct Query(Vec<(String, String)>);

impl Query {
    pub(super) fn parse(q: &str) -> Self {
        Self(
            q.split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (decode(k), decode(v))
                })
                .collect(),
        )
    }

    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn required(&self, key: &str) -> KvsResult<&str> {
        self.get(key)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| KvsError::invalid(format!("The query parameter {key} is required.")))
    }

    /// Milliseconds since the epoch.
    pub(super) fn millis(&self, key: &str) -> KvsResult<u64> {
        let v = self.required(key)?;
        v.parse().map_err(|_| {
            KvsError::invalid(format!(
                "The query parameter {key} must be milliseconds since the epoch, not {v:?}."
            ))
        })
    }
}

/// Percent-decoding (`+` is a space).
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(v) = hex {
                    out.push(v);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(super) fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `20261202T142233Z` for a clip's file name.
pub(super) fn file_time(ms: u64) -> String {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// How far back the ingest rate looks.
const RATE_WINDOW_MS: u64 = 10_000;

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct StreamSummary {
    stream_name: String,
    #[serde(rename = "StreamARN")]
    stream_arn: String,
    status: &'static str,
    media_type: Option<String>,
    device_name: Option<String>,
    data_retention_in_hours: u32,
    creation_time: f64,
    version: String,
    tags: std::collections::BTreeMap<String, String>,
    /// Bytes stored.
    storage_bytes: u64,
    /// Fragments stored.
    fragments: u64,
    /// Payload bytes per second over the last [`RATE_WINDOW_MS`].
    ingest_bytes_per_second: f64,
    /// Fragments per minute over the same window.
    ingest_fragments_per_minute: f64,
    last_fragment: Option<LastFragment>,
    tracks: Vec<TrackSummary>,
    low_latency_hls: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct LastFragment {
    fragment_number: String,
    server_timestamp: f64,
    producer_timestamp: f64,
    duration_ms: u32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct TrackSummary {
    number: u64,
    kind: &'static str,
    /// RFC 6381 (`avc1.64001f`, `hvc1.1.6.L93.B0`, `mp4a.40.2`).
    codec: String,
    /// `H.264`, `H.265`, `AAC`, ...
    codec_name: &'static str,
    width: Option<u32>,
    height: Option<u32>,
}

/// `GET /console/api/streams`: every stream the key may describe, with what the list shows.
pub(super) fn overview(server: &ServerState, call: &vigil_api_kvs::Call) -> KvsResult<Response> {
    call.authorize(None)?;
    let store = &call.state.store;
    let now = store.clock().now_ms();
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list_streams("", after.as_deref(), 500)?;
        let Some(last) = page.last() else { break };
        after = Some(last.name.clone());
        for rec in page {
            if call
                .authorize_as(vigil_api_kvs::Operation::DescribeStream, Some(&rec.name))
                .is_err()
            {
                continue;
            }
            out.push(summary(server, &rec, now)?);
        }
    }
    Ok(json_response(
        &json!({ "Streams": out, "Now": now as f64 / 1000.0 }),
    ))
}

fn summary(
    state: &ServerState,
    rec: &vigil_store::StreamRecord,
    now: u64,
) -> KvsResult<StreamSummary> {
    let store = &state.store;
    let usage = store.usage(rec.id)?;
    let last = store.index().last_fragment(rec.id)?;
    let recent = store.list_fragments(
        rec.id,
        TimestampKind::Server,
        now.saturating_sub(RATE_WINDOW_MS),
        now,
        None,
        10_000,
    )?;
    let recent_bytes: u64 = recent.fragments.iter().map(|f| u64::from(f.size)).sum();
    let window_s = RATE_WINDOW_MS as f64 / 1000.0;
    let tracks = match &last {
        Some(f) => track_summaries(state, f).unwrap_or_default(),
        None => Vec::new(),
    };
    let low_latency_hls = vigil_api_playback::streaming::llhls::session_part_target(
        &state.cfg.playback.low_latency_hls,
        rec,
        vigil_api_playback::streaming::session::Mode::Live,
        vigil_api_playback::streaming::session::Container::Fmp4,
        true,
    )
    .is_some();
    Ok(StreamSummary {
        stream_name: rec.name.clone(),
        stream_arn: vigil_api_kvs_common::model::stream_arn(&state.kvs.arn_context(), rec),
        status: "ACTIVE",
        media_type: rec.media_type.clone(),
        device_name: rec.device_name.clone(),
        data_retention_in_hours: rec.data_retention_hours,
        creation_time: rec.creation_time_ms as f64 / 1000.0,
        version: rec.version.clone(),
        tags: rec.tags.clone(),
        storage_bytes: usage.bytes,
        fragments: usage.fragments,
        ingest_bytes_per_second: recent_bytes as f64 / window_s,
        ingest_fragments_per_minute: recent.fragments.len() as f64 * 60.0 / window_s,
        last_fragment: last.map(|f| LastFragment {
            fragment_number: f.number.to_string(),
            server_timestamp: f.server_ts_ms as f64 / 1000.0,
            producer_timestamp: f.producer_ts_ms as f64 / 1000.0,
            duration_ms: f.duration_ms,
        }),
        tracks,
        low_latency_hls,
    })
}

fn track_summaries(
    state: &ServerState,
    f: &vigil_store::FragmentMeta,
) -> KvsResult<Vec<TrackSummary>> {
    let header = state.store.header(f.stream, f.header_id)?;
    let (tracks, _) = vigil_media::sample::from_fragments(&header, &[])
        .map_err(|e| KvsError::InternalFailure(format!("track header: {e}")))?;
    Ok(tracks
        .iter()
        .map(|t| {
            let dims = t.codec.dimensions();
            TrackSummary {
                number: t.number,
                kind: if t.is_video() { "video" } else { "audio" },
                codec: t.codec.rfc6381(),
                codec_name: t.codec.display_name(),
                width: dims.map(|d| d.0),
                height: dims.map(|d| d.1),
            }
        })
        .collect())
}

/// Adds a fragment (`start` ms, `duration` ms, `size` bytes), in start order, to `spans`: it
/// extends the last span if it starts at most `gap` after that span's end, else starts a new one.
fn add_to_spans(spans: &mut Vec<Span>, start: u64, duration: u64, size: u64, gap: u64) {
    let end = start.saturating_add(duration.max(1));
    match spans.last_mut() {
        Some(last) if start <= last.end.saturating_add(gap) => {
            last.end = last.end.max(end);
            last.fragments += 1;
            last.bytes += size;
        }
        _ => spans.push(Span {
            start,
            end,
            fragments: 1,
            bytes: size,
        }),
    }
}

/// The most fragments one timeline answer reads.
const TIMELINE_MAX_FRAGMENTS: usize = 200_000;
/// Fragments further apart than this (end to start) are separate recordings by default.
const DEFAULT_GAP_MS: u64 = 2_500;

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Span {
    start: u64,
    end: u64,
    fragments: u64,
    bytes: u64,
}

/// `GET /console/api/timeline?stream=NAME&start=MS&end=MS[&gap=MS]`: the recordings of a
/// stream in a range, by producer timestamp: fragments closer than `gap` merged into spans
/// (milliseconds since the epoch).
pub(super) fn timeline(call: &vigil_api_playback::Call) -> KvsResult<Response> {
    let q = Query::parse(call.parts.uri.query().unwrap_or(""));
    let name = q.required("stream")?;
    let rec = call.stream(Some(name), None)?;
    let start = q.millis("start")?;
    let end = q.millis("end")?;
    if end < start {
        return Err(KvsError::invalid("end must not be before start."));
    }
    let gap = match q.get("gap") {
        Some(_) => q.millis("gap")?,
        None => DEFAULT_GAP_MS,
    };
    let store = &call.state.store;
    // A fragment that began before the range and runs into it counts: look back one
    // fragment.
    let mut spans: Vec<Span> = Vec::new();
    let mut read = 0usize;
    let mut cursor = None;
    let first = store
        .index()
        .fragment_at_or_before(rec.id, TimestampKind::Producer, start)?
        .filter(|f| f.producer_ts_ms.saturating_add(u64::from(f.duration_ms)) > start);
    let mut push = |f: &vigil_store::FragmentMeta| {
        add_to_spans(
            &mut spans,
            f.producer_ts_ms,
            u64::from(f.duration_ms),
            u64::from(f.size),
            gap,
        );
    };
    if let Some(f) = &first {
        push(f);
    }
    let mut truncated = false;
    loop {
        let page =
            store.list_fragments(rec.id, TimestampKind::Producer, start, end, cursor, 1000)?;
        for f in &page.fragments {
            if first.as_ref().is_some_and(|x| x.number == f.number) {
                continue;
            }
            push(f);
        }
        read += page.fragments.len();
        match page.next {
            Some(c) if read < TIMELINE_MAX_FRAGMENTS => cursor = Some(c),
            Some(_) => {
                truncated = true;
                break;
            }
            None => break,
        }
    }
    Ok(json_response(&json!({
        "StreamName": rec.name,
        "Start": start,
        "End": end,
        "Spans": spans,
        "Truncated": truncated,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_merge_into_spans_across_small_gaps() {
        let mut spans = Vec::new();
        for (start, dur) in [
            (1_000, 2_000),
            (3_000, 2_000),
            (6_000, 1_000),
            (20_000, 2_000),
        ] {
            add_to_spans(&mut spans, start, dur, 10, 2_500);
        }
        // A fragment with no duration still covers a millisecond.
        add_to_spans(&mut spans, 30_000, 0, 1, 2_500);
        let got: Vec<(u64, u64, u64, u64)> = spans
            .iter()
            .map(|s| (s.start, s.end, s.fragments, s.bytes))
            .collect();
        assert_eq!(
            got,
            vec![
                (1_000, 7_000, 3, 30),
                (20_000, 22_000, 1, 10),
                (30_000, 30_001, 1, 1)
            ]
        );
    }
}
