//! GetDASHStreamingSessionURL and the DASH playback GETs (`../shared/spec/kvs-api.md` §4.4).
//!
//! # The session call
//!
//! `POST /getDASHStreamingSessionURL` checks `PlaybackMode`, `DASHFragmentSelector`,
//! `Expires` and `MaxManifestFragmentResults` as GetHLSStreamingSessionURL checks its fields
//! ([`super::hls`]), then `DisplayFragmentTimestamp` and `DisplayFragmentNumber` (ALWAYS,
//! NEVER (default)), the stream, retention, a fragment to play and its codecs (track 1 H.264
//! or H.265, or AAC alone; track 2 AAC, or G.711 with H.264). The answer is
//! `{"DASHStreamingSessionURL": "<endpoint>/dash/v1/getDASHManifest.mpd?SessionToken=…"}`.
//!
//! # The GETs (no SigV4; the token is the credential and only works for DASH)
//!
//! KVS's DASH segment URLs are unverified (§9); Vigil's are:
//!
//! - `getDASHManifest.mpd?SessionToken=` (`application/dash+xml`): one AdaptationSet per
//!   track with a SegmentTemplate and a SegmentTimeline of the fragments [`super::window`]
//!   chooses (sessions use DiscontinuityMode NEVER). `S@t` is the fragment's start on the
//!   session's timestamp kind (LIVE: server time) in the track's timescale, counted from the
//!   Unix epoch, `S@d` its duration; `kvs:ts` and `kvs:fn` per the Display options. ON_DEMAND
//!   manifests are static; LIVE and LIVE_REPLAY ones dynamic with `availabilityStartTime` the
//!   epoch (so `S@t` is wall-clock time), refreshed every second. LIVE_REPLAY timelines lie
//!   in the past, which players that join at the live edge by wall clock do not expect.
//! - `getMP4InitFragment.mp4?SessionToken=&TrackNumber=` (`video/mp4`): built from the first
//!   fragment of the current window (a DASH session allows no CodecPrivate change, §4.4).
//! - `getMP4MediaFragment.mp4?SessionToken=&TrackNumber=&Timescale=&Time=$Time$`
//!   (`video/mp4`; `FragmentNumber=` works too): the fragment whose start is `Time` ticks of
//!   `Timescale` (rounded to the nearest millisecond), the newest of equal starts.
//!
//! Errors as for HLS: token problems 400 `InvalidArgumentException`; an unknown fragment,
//! time or track 404 `ResourceNotFoundException`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use vigil_media::codec::Codec;
use vigil_media::dash;
use vigil_media::sample::Track;
use vigil_store::FragmentMeta;

use super::hls::{
    Opened, Query, SelectorInput, always_never, body, common, mp4_init, mp4_segment, probe, serve,
    session_fragment,
};
use super::session::{Container, Discontinuity, Mode, Protocol, Session};
use super::{list_kind, window};
use crate::archived::require_retention;
use crate::service::{Call, PlaybackState};
use vigil_api_kvs_common::json as ok;
use vigil_api_kvs_common::model::fragment_number;
use vigil_api_kvs_common::{KvsError, KvsResult};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Input {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    playback_mode: Option<String>,
    #[serde(rename = "DASHFragmentSelector")]
    dash_fragment_selector: Option<SelectorInput>,
    display_fragment_timestamp: Option<String>,
    display_fragment_number: Option<String>,
    expires: Option<i64>,
    max_manifest_fragment_results: Option<i64>,
}

/// GetDASHStreamingSessionURL: see the module docs.
pub fn get_dash_streaming_session_url(call: &Call) -> KvsResult<Response> {
    let input: Input = call.input()?;
    let now = call.state.store.clock().now_ms();
    let c = common(
        input.playback_mode.as_deref(),
        input.dash_fragment_selector.as_ref(),
        "DASHFragmentSelector",
        input.expires,
        input.max_manifest_fragment_results,
        "MaxManifestFragmentResults",
        now,
    )?;
    let display_timestamp = always_never(
        "DisplayFragmentTimestamp",
        input.display_fragment_timestamp.as_deref(),
    )?;
    let display_number = always_never(
        "DisplayFragmentNumber",
        input.display_fragment_number.as_deref(),
    )?;
    let rec = call.stream(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    require_retention(&rec)?;
    let tracks = probe(&call.state, rec.id, &c, now)?;
    check_codecs(&tracks)?;
    let session = Session {
        protocol: Protocol::Dash,
        stream: rec.id,
        stream_created_ms: rec.creation_time_ms,
        mode: c.mode,
        selector: c.selector,
        start_ms: c.start_ms,
        end_ms: c.end_ms,
        container: Container::Fmp4,
        discontinuity: Discontinuity::Never,
        display_timestamp,
        display_number,
        max_fragments: c.max_fragments,
        issued_ms: now,
        expires_ms: now.saturating_add(c.expires_s.saturating_mul(1000)),
        part_target_ms: None,
    };
    let token = call.state.session_key.seal(&session);
    let url = format!(
        "{}/dash/v1/getDASHManifest.mpd?SessionToken={token}",
        call.endpoint()
    );
    Ok(ok(&json!({ "DASHStreamingSessionURL": url })))
}

/// Track 1 H.264 or H.265, or AAC alone; track 2 AAC, or G.711 with H.264 (§6.1).
fn check_codecs(tracks: &[Track]) -> KvsResult<()> {
    let unsupported = |m: &str| Err(KvsError::UnsupportedStreamMediaTypeException(m.into()));
    let Some(first) = tracks.first() else {
        return unsupported("The stream has no video or audio track.");
    };
    let h264 = match first.codec {
        Codec::H264 { .. } => true,
        Codec::H265 { .. } => false,
        Codec::Aac { .. } if tracks.len() == 1 => false,
        _ => {
            return unsupported("DASH needs H.264 or H.265 video in track 1 (or AAC audio alone).");
        }
    };
    if tracks.len() > 2 {
        return unsupported("DASH carries at most two tracks.");
    }
    match tracks.get(1).map(|t| &t.codec) {
        None | Some(Codec::Aac { .. }) => Ok(()),
        Some(Codec::G711 { .. }) if h264 => Ok(()),
        Some(_) => unsupported("DASH carries AAC audio (or G.711 with H.264) in track 2."),
    }
}

/// `GET /dash/v1/getDASHManifest.mpd`.
pub async fn manifest(State(state): State<Arc<PlaybackState>>, uri: Uri) -> Response {
    serve(state, uri, Protocol::Dash, manifest_body).await
}

/// `GET /dash/v1/getMP4InitFragment.mp4`.
pub async fn mp4_init_fragment(State(state): State<Arc<PlaybackState>>, uri: Uri) -> Response {
    serve(state, uri, Protocol::Dash, init).await
}

/// `GET /dash/v1/getMP4MediaFragment.mp4`.
pub async fn mp4_media_fragment(
    State(state): State<Arc<PlaybackState>>,
    peer: Option<axum::Extension<vigil_api_common::config::PeerAddr>>,
    uri: Uri,
) -> Response {
    super::segment::serve_segment(state, uri, peer, Protocol::Dash, media).await
}

/// Milliseconds to ticks of `timescale`, rounded to nearest.
fn ticks(ms: u64, timescale: u32) -> u64 {
    let t = (u128::from(ms) * u128::from(timescale) + 500) / 1000;
    u64::try_from(t).unwrap_or(u64::MAX)
}

/// Ticks of `timescale` to milliseconds, rounded to nearest.
fn ms(ticks: u64, timescale: u32) -> u64 {
    let ts = u128::from(timescale.max(1));
    let m = (u128::from(ticks) * 1000 + ts / 2) / ts;
    u64::try_from(m).unwrap_or(u64::MAX)
}

fn no_fragments() -> KvsError {
    KvsError::ResourceNotFoundException("The session has no fragments to play.".into())
}

fn manifest_body(state: &PlaybackState, o: &Opened, _q: &Query) -> KvsResult<Response> {
    let s = &o.session;
    let w = window(&state.store, s, o.now_ms)?;
    let probe = match s.mode {
        Mode::Live => w.entries.last(),
        Mode::LiveReplay | Mode::OnDemand => w.entries.first(),
    }
    .ok_or_else(no_fragments)?;
    let (tracks, _, _) = super::hls::package_times(state, &probe.meta)?;
    check_codecs(&tracks)?;
    let bandwidth = w
        .entries
        .iter()
        .map(|e| u64::from(e.meta.size) * 8000 / u64::from(e.meta.duration_ms.max(1)))
        .max()
        .unwrap_or(1)
        .max(1);
    let display_kind = s.selector.kind();
    let adaptation_sets = tracks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let n = i + 1;
            let segments = w
                .entries
                .iter()
                .map(|e| dash::TimelineSegment {
                    start: ticks(e.ts_ms, t.timescale),
                    duration: ticks(u64::from(e.meta.duration_ms), t.timescale),
                    kvs_ts_ms: s
                        .display_timestamp
                        .then(|| i64::try_from(super::ts_of(display_kind, &e.meta)).ok())
                        .flatten(),
                    kvs_fn: s.display_number.then(|| fragment_number(e.meta.number)),
                })
                .collect();
            dash::AdaptationSet {
                track: t.clone(),
                bandwidth,
                frame_rate: None,
                initialization: format!(
                    "getMP4InitFragment.mp4?SessionToken={}&TrackNumber={n}",
                    o.token
                ),
                media: format!(
                    "getMP4MediaFragment.mp4?SessionToken={}&TrackNumber={n}&Timescale={}&Time=$Time$",
                    o.token, t.timescale
                ),
                start_number: w.media_sequence,
                segments,
            }
        })
        .collect();
    let span_ms = match (w.entries.first(), w.entries.last()) {
        (Some(a), Some(b)) => b
            .ts_ms
            .saturating_add(u64::from(b.meta.duration_ms))
            .saturating_sub(a.ts_ms),
        _ => 0,
    };
    let kind = match s.mode {
        Mode::OnDemand => dash::MpdKind::Static {
            duration_ms: span_ms,
        },
        Mode::Live | Mode::LiveReplay => dash::MpdKind::Dynamic {
            availability_start_time_ms: 0,
            publish_time_ms: i64::try_from(o.now_ms).unwrap_or(i64::MAX),
            minimum_update_period_ms: 1000,
            time_shift_buffer_depth_ms: span_ms.max(1000),
        },
    };
    let text = dash::mpd(&dash::Mpd {
        kind,
        min_buffer_time_ms: 2000,
        adaptation_sets,
    })?;
    Ok(body("application/dash+xml", text))
}

fn init(state: &PlaybackState, o: &Opened, q: &Query) -> KvsResult<Response> {
    let track = q.track()?;
    let meta = match q.get("FragmentNumber") {
        Some(_) => session_fragment(state, &o.session, q.fragment()?)?,
        None => window(&state.store, &o.session, o.now_ms)?
            .entries
            .first()
            .map(|e| e.meta)
            .ok_or_else(no_fragments)?,
    };
    mp4_init(state, &meta, track)
}

fn media(state: &PlaybackState, o: &Opened, q: &Query) -> KvsResult<Response> {
    let track = q.track()?;
    let meta = match q.get("FragmentNumber") {
        Some(_) => session_fragment(state, &o.session, q.fragment()?)?,
        None => by_time(state, &o.session, q)?,
    };
    mp4_segment(state, &meta, track)
}

/// The fragment a `Time`/`Timescale` pair names.
fn by_time(state: &PlaybackState, s: &Session, q: &Query) -> KvsResult<FragmentMeta> {
    let time = q
        .number("Time")?
        .ok_or_else(|| KvsError::invalid("FragmentNumber or Time is required."))?;
    let timescale = q
        .number("Timescale")?
        .and_then(|t| u32::try_from(t).ok())
        .filter(|t| *t > 0)
        .ok_or_else(|| KvsError::invalid("Timescale must be a positive number."))?;
    let at = ms(time, timescale);
    let page = state
        .store
        .list_fragments(s.stream, list_kind(s), at, at, None, 100)?;
    let meta = page
        .fragments
        .into_iter()
        .max_by_key(|m| m.number)
        .ok_or_else(|| {
            KvsError::ResourceNotFoundException(format!("No fragment starts at {time}."))
        })?;
    session_fragment(state, s, meta.number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        for ts in [1000u32, 8000, 44_100, 48_000, 90_000] {
            for m in [0u64, 1, 999, 1_700_000_000_123, 1_700_000_009_999] {
                assert_eq!(ms(ticks(m, ts), ts), m, "{ts} {m}");
            }
        }
    }
}
