//! GetHLSStreamingSessionURL and the HLS playback GETs (`../shared/spec/kvs-api.md` §4.3).
//!
//! # The session call
//!
//! `POST /getHLSStreamingSessionURL` checks, in this order (each failure is
//! `InvalidArgumentException`, 400, unless said otherwise): `PlaybackMode` (LIVE, the
//! default, LIVE_REPLAY, ON_DEMAND); `HLSFragmentSelector` (type SERVER_TIMESTAMP, the
//! default, or PRODUCER_TIMESTAMP; required with a StartTimestamp for LIVE_REPLAY and
//! ON_DEMAND, EndTimestamp required for ON_DEMAND; no range for LIVE; end after start and
//! within 24 h of it; with SERVER_TIMESTAMP the end must not be in the future); `Expires`
//! (300–43200 s, default 300); `MaxMediaPlaylistFragmentResults` (1–5000, default 5 for the
//! live modes, 1000 for ON_DEMAND); `ContainerFormat` (FRAGMENTED_MP4, the default, or
//! MPEG_TS); `DiscontinuityMode` (ALWAYS, NEVER, ON_DISCONTINUITY; default ALWAYS for
//! SERVER_TIMESTAMP, NEVER for PRODUCER_TIMESTAMP); `DisplayFragmentTimestamp` (ALWAYS,
//! NEVER (default)). Then the stream (404), retention (`NoDataRetentionException` for 0 h), a
//! fragment to play (`ResourceNotFoundException`: none in the range, or for LIVE none in the
//! last 30 s), and its codecs (`UnsupportedStreamMediaTypeException`: track 1 must be H.264,
//! or H.265 with fMP4, or AAC alone; track 2 AAC; G.711 is never carried over HLS). The
//! answer is
//! `{"HLSStreamingSessionURL": "<endpoint>/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken=…"}`.
//!
//! # The GETs (no SigV4: the token is the credential, [`super::session`])
//!
//! All under `/hls/v1/`, query values taken verbatim (every value Vigil issues is URL-safe):
//!
//! - `getHLSMasterPlaylist.m3u8?SessionToken=` (`application/vnd.apple.mpegurl`): one
//!   STREAM-INF for track 1 (fMP4) or for all tracks (TS), and for fMP4 with audio an
//!   EXT-X-MEDIA audio rendition for track 2. Codecs come from the newest fragment (LIVE) or
//!   the first one of the range.
//! - `getHLSMediaPlaylist.m3u8?SessionToken=&TrackNumber=` (TrackNumber 1 or 2, default 1;
//!   TS playlists carry every track): segments as [`super::window`] chooses, EXTINF = the
//!   fragment's duration, DISCONTINUITY per `DiscontinuityMode`, PROGRAM-DATE-TIME (the
//!   selector's start time) with `DisplayFragmentTimestamp` ALWAYS, and for fMP4 an EXT-X-MAP
//!   `getMP4InitFragment.mp4?SessionToken=&TrackNumber=&SequenceNumber=<track header id>&FragmentNumber=<fragment>`
//!   that changes with the track header (CodecPrivate).
//! - `getMP4InitFragment.mp4?SessionToken=&TrackNumber=&SequenceNumber=&FragmentNumber=`
//!   (`video/mp4`): `ftyp`+`moov` of the track, built from that fragment (whose header must
//!   be `SequenceNumber`).
//! - `getMP4MediaFragment.mp4?SessionToken=&TrackNumber=&FragmentNumber=` (`video/mp4`):
//!   `styp`+`moof`+`mdat` of one fragment's track.
//! - `getTSFragment.ts?SessionToken=&FragmentNumber=` (`video/mp2t`): one fragment, all
//!   tracks. Continuity counters start at 0 in every segment (sessions keep no state).
//!
//! Errors are the AWS JSON error with its status: a missing, malformed, tampered or expired
//! token is `InvalidArgumentException` (400); a deleted (or re-created) stream, a fragment
//! that is not the stream's, is outside the session's range or has expired, or a track the
//! fragment lacks is `ResourceNotFoundException` (404).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use vigil_api_common::config::PeerAddr;
use vigil_media::codec::Codec;
use vigil_media::hls as m3u8;
use vigil_media::sample::{Sample, Track};
use vigil_store::{FragmentMeta, StreamRef, TimestampKind};

use super::session::{Container, Discontinuity, Mode, Protocol, Selector, Session};
use super::{Window, window};
use crate::archived::require_retention;
use crate::service::{Call, PlaybackState};
use vigil_api_kvs_common::json as ok;
use vigil_api_kvs_common::model::{EpochMs, fragment_number, parse_fragment_number};
use vigil_api_kvs_common::{KvsError, KvsResult};

/// Shortest `Expires`, seconds.
pub const EXPIRES_MIN: i64 = 300;
/// Longest `Expires`, seconds.
pub const EXPIRES_MAX: i64 = 43_200;
/// Largest `MaxMediaPlaylistFragmentResults`.
pub const MAX_PLAYLIST_FRAGMENTS: i64 = 5000;
/// Longest range of a session.
const MAX_RANGE_MS: u64 = 24 * 3600 * 1000;

pub(crate) const M3U8: &str = "application/vnd.apple.mpegurl";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Input {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    playback_mode: Option<String>,
    #[serde(rename = "HLSFragmentSelector")]
    hls_fragment_selector: Option<SelectorInput>,
    container_format: Option<String>,
    discontinuity_mode: Option<String>,
    display_fragment_timestamp: Option<String>,
    expires: Option<i64>,
    max_media_playlist_fragment_results: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct SelectorInput {
    fragment_selector_type: Option<String>,
    timestamp_range: Option<RangeInput>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RangeInput {
    start_timestamp: Option<EpochMs>,
    end_timestamp: Option<EpochMs>,
}

fn enum_field<T: Copy>(
    field: &str,
    given: Option<&str>,
    default: T,
    values: &[(&str, T)],
) -> KvsResult<T> {
    let Some(given) = given else {
        return Ok(default);
    };
    values
        .iter()
        .find(|(name, _)| *name == given)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<&str> = values.iter().map(|(n, _)| *n).collect();
            KvsError::invalid(format!(
                "{field} {given:?} must be one of {}.",
                names.join(", ")
            ))
        })
}

/// The fields both session calls check the same way, checked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Common {
    pub mode: Mode,
    pub selector: Selector,
    pub start_ms: Option<u64>,
    pub end_ms: Option<u64>,
    pub expires_s: u64,
    pub max_fragments: u32,
}

/// Checks PlaybackMode, the fragment selector, Expires and the fragment count
/// (`max_field`), in that order.
pub(crate) fn common(
    playback_mode: Option<&str>,
    sel: Option<&SelectorInput>,
    selector_field: &str,
    expires: Option<i64>,
    max: Option<i64>,
    max_field: &str,
    now: u64,
) -> KvsResult<Common> {
    let mode = enum_field(
        "PlaybackMode",
        playback_mode,
        Mode::Live,
        &[
            ("LIVE", Mode::Live),
            ("LIVE_REPLAY", Mode::LiveReplay),
            ("ON_DEMAND", Mode::OnDemand),
        ],
    )?;
    let selector = enum_field(
        "FragmentSelectorType",
        sel.and_then(|s| s.fragment_selector_type.as_deref()),
        Selector::Server,
        &[
            ("SERVER_TIMESTAMP", Selector::Server),
            ("PRODUCER_TIMESTAMP", Selector::Producer),
        ],
    )?;
    let range = sel.and_then(|s| s.timestamp_range.as_ref());
    let (start_ms, end_ms) = match mode {
        Mode::Live => {
            if range.is_some() {
                return Err(KvsError::invalid(
                    "TimestampRange must not be given in LIVE mode.",
                ));
            }
            (None, None)
        }
        Mode::LiveReplay | Mode::OnDemand => {
            let range = range.ok_or_else(|| {
                KvsError::invalid(format!(
                    "{selector_field} with a TimestampRange is required in LIVE_REPLAY and \
                     ON_DEMAND modes."
                ))
            })?;
            let start = range
                .start_timestamp
                .ok_or_else(|| KvsError::invalid("StartTimestamp is required."))?
                .0;
            let end = range.end_timestamp.map(|e| e.0);
            if mode == Mode::OnDemand && end.is_none() {
                return Err(KvsError::invalid(
                    "EndTimestamp is required in ON_DEMAND mode.",
                ));
            }
            if let Some(end) = end {
                if end <= start {
                    return Err(KvsError::invalid(
                        "EndTimestamp must be after StartTimestamp.",
                    ));
                }
                if end - start > MAX_RANGE_MS {
                    return Err(KvsError::invalid(
                        "The timestamp range must be at most 24 hours.",
                    ));
                }
                if selector == Selector::Server && end > now {
                    return Err(KvsError::invalid(
                        "With SERVER_TIMESTAMP, EndTimestamp must be in the past.",
                    ));
                }
            }
            (Some(start), end)
        }
    };
    let expires = expires.unwrap_or(EXPIRES_MIN);
    if !(EXPIRES_MIN..=EXPIRES_MAX).contains(&expires) {
        return Err(KvsError::invalid(format!(
            "Expires {expires} must be between {EXPIRES_MIN} and {EXPIRES_MAX} seconds."
        )));
    }
    let max_fragments = match max {
        None if mode == Mode::OnDemand => 1000,
        None => 5,
        Some(n) if (1..=MAX_PLAYLIST_FRAGMENTS).contains(&n) => n,
        Some(n) => {
            return Err(KvsError::invalid(format!(
                "{max_field} {n} must be between 1 and {MAX_PLAYLIST_FRAGMENTS}."
            )));
        }
    };
    Ok(Common {
        mode,
        selector,
        start_ms,
        end_ms,
        expires_s: expires.unsigned_abs(),
        max_fragments: u32::try_from(max_fragments).unwrap_or(1000),
    })
}

/// The tracks of a fragment the session would play: the newest of the last 30 s (LIVE) or
/// the first of the range; `ResourceNotFoundException` when there is none. Blocking.
pub(crate) fn probe(
    state: &PlaybackState,
    stream: u64,
    c: &Common,
    now: u64,
) -> KvsResult<Vec<Track>> {
    let store = &state.store;
    let probe = match c.mode {
        Mode::Live => store
            .list_fragments(
                stream,
                TimestampKind::Server,
                now.saturating_sub(super::LIVE_RECENT_MS),
                now,
                None,
                1000,
            )?
            .fragments
            .pop(),
        Mode::LiveReplay | Mode::OnDemand => store
            .list_fragments(
                stream,
                c.selector.kind(),
                c.start_ms.unwrap_or(0),
                c.end_ms.unwrap_or(u64::MAX),
                None,
                1,
            )?
            .fragments
            .pop(),
    };
    let probe = probe.ok_or_else(|| {
        KvsError::ResourceNotFoundException(match c.mode {
            Mode::Live => "No fragments were ingested in the last 30 seconds.".into(),
            _ => "No fragments found in the requested range.".into(),
        })
    })?;
    Ok(package_times(state, &probe)?.0)
}

/// GetHLSStreamingSessionURL: see the module docs.
pub fn get_hls_streaming_session_url(call: &Call) -> KvsResult<Response> {
    let input: Input = call.input()?;
    let now = call.state.store.clock().now_ms();
    let c = common(
        input.playback_mode.as_deref(),
        input.hls_fragment_selector.as_ref(),
        "HLSFragmentSelector",
        input.expires,
        input.max_media_playlist_fragment_results,
        "MaxMediaPlaylistFragmentResults",
        now,
    )?;
    let container = enum_field(
        "ContainerFormat",
        input.container_format.as_deref(),
        Container::Fmp4,
        &[
            ("FRAGMENTED_MP4", Container::Fmp4),
            ("MPEG_TS", Container::Ts),
        ],
    )?;
    let discontinuity = enum_field(
        "DiscontinuityMode",
        input.discontinuity_mode.as_deref(),
        match c.selector {
            Selector::Server => Discontinuity::Always,
            Selector::Producer => Discontinuity::Never,
        },
        &[
            ("ALWAYS", Discontinuity::Always),
            ("NEVER", Discontinuity::Never),
            ("ON_DISCONTINUITY", Discontinuity::OnDiscontinuity),
        ],
    )?;
    let display_timestamp = always_never(
        "DisplayFragmentTimestamp",
        input.display_fragment_timestamp.as_deref(),
    )?;
    let rec = call.stream(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    require_retention(&rec)?;
    let tracks = probe(&call.state, rec.id, &c, now)?;
    check_codecs(&tracks, container)?;
    let session = Session {
        protocol: Protocol::Hls,
        stream: rec.id,
        stream_created_ms: rec.creation_time_ms,
        mode: c.mode,
        selector: c.selector,
        start_ms: c.start_ms,
        end_ms: c.end_ms,
        container,
        discontinuity,
        display_timestamp,
        display_number: false,
        max_fragments: c.max_fragments,
        issued_ms: now,
        expires_ms: now.saturating_add(c.expires_s.saturating_mul(1000)),
        part_target_ms: super::llhls::session_part_target(
            &call.state.playback.low_latency_hls,
            &rec,
            c.mode,
            container,
            call.origin == vigil_api_common::Origin::Console,
        ),
    };
    let token = call.state.session_key.seal(&session);
    let url = format!(
        "{}/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken={token}",
        call.endpoint()
    );
    Ok(ok(&json!({ "HLSStreamingSessionURL": url })))
}

/// An `ALWAYS` | `NEVER` field (default NEVER).
pub(crate) fn always_never(field: &str, given: Option<&str>) -> KvsResult<bool> {
    enum_field(field, given, false, &[("ALWAYS", true), ("NEVER", false)])
}

/// Track 1 H.264, H.265 (fMP4 only) or AAC alone; track 2 AAC (§6.1).
fn check_codecs(tracks: &[Track], container: Container) -> KvsResult<()> {
    let unsupported = |m: &str| Err(KvsError::UnsupportedStreamMediaTypeException(m.into()));
    let Some(first) = tracks.first() else {
        return unsupported("The stream has no video or audio track.");
    };
    match (&first.codec, container) {
        (Codec::H264 { .. }, _) | (Codec::H265 { .. }, Container::Fmp4) => {}
        (Codec::H265 { .. }, Container::Ts) => {
            return unsupported("HLS over MPEG_TS does not carry H.265; use FRAGMENTED_MP4.");
        }
        (Codec::Aac { .. }, _) if tracks.len() == 1 => {}
        _ => {
            return unsupported("HLS needs H.264 or H.265 video in track 1 (or AAC audio alone).");
        }
    }
    if tracks.len() > 2 {
        return unsupported("HLS carries at most two tracks.");
    }
    if let Some(second) = tracks.get(1)
        && !matches!(second.codec, Codec::Aac { .. })
    {
        return unsupported("HLS carries only AAC audio in track 2.");
    }
    Ok(())
}

pub(crate) use super::segment::package_times;

/// Reads one fragment whole and demuxes it alone, with the samples' bytes (LL-HLS parts).
/// Blocking. What needs only times uses [`package_times`], bounded in memory.
pub(crate) fn package_input(
    state: &PlaybackState,
    m: &FragmentMeta,
) -> KvsResult<(Vec<Track>, Vec<Sample>)> {
    let header = state.store.header(m.stream, m.header_id)?;
    let frag = state.store.read_meta(m)?;
    Ok(vigil_media::sample::from_fragments(
        &header,
        &[frag.payload],
    )?)
}

// ---- the GETs ----

/// A request's query parameters (values verbatim).
#[derive(Debug)]
pub(crate) struct Query(BTreeMap<String, String>);

impl Query {
    pub(crate) fn parse(uri: &Uri) -> Self {
        let mut map = BTreeMap::new();
        for pair in uri.query().unwrap_or_default().split('&') {
            if let Some((k, v)) = pair.split_once('=') {
                map.entry(k.to_owned()).or_insert_with(|| v.to_owned());
            }
        }
        Self(map)
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub(crate) fn number(&self, name: &str) -> KvsResult<Option<u64>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| KvsError::invalid(format!("{name} {v:?} is not a number."))),
        }
    }

    pub(crate) fn track(&self) -> KvsResult<usize> {
        match self.number("TrackNumber")? {
            None => Ok(1),
            Some(n @ 1..=2) => Ok(usize::try_from(n).unwrap_or(1)),
            Some(n) => Err(KvsError::invalid(format!(
                "TrackNumber {n} must be 1 or 2."
            ))),
        }
    }

    pub(crate) fn fragment(&self) -> KvsResult<u64> {
        let f = self
            .get("FragmentNumber")
            .ok_or_else(|| KvsError::invalid("FragmentNumber is required."))?;
        parse_fragment_number(f).ok_or_else(|| {
            KvsError::ResourceNotFoundException(format!("Fragment {f:?} was not found."))
        })
    }
}

/// A checked session: its token (for URLs) and contents.
pub(crate) struct Opened {
    pub token: String,
    pub session: Session,
    pub now_ms: u64,
}

pub(crate) fn open(state: &PlaybackState, q: &Query, protocol: Protocol) -> KvsResult<Opened> {
    let token = q
        .get("SessionToken")
        .ok_or_else(|| KvsError::invalid("SessionToken is required."))?;
    let now_ms = state.store.clock().now_ms();
    let session = state.session_key.open(token, now_ms)?;
    if session.protocol != protocol {
        return Err(KvsError::invalid(
            "SessionToken is not valid for this protocol.",
        ));
    }
    let rec = state
        .store
        .stream(StreamRef::Id(session.stream))
        .map_err(|_| KvsError::stream_not_found())?;
    if rec.creation_time_ms != session.stream_created_ms {
        return Err(KvsError::stream_not_found());
    }
    require_retention(&rec)?;
    Ok(Opened {
        token: token.to_owned(),
        session,
        now_ms,
    })
}

pub(crate) type Handler = fn(&PlaybackState, &Opened, &Query) -> KvsResult<Response>;

/// Runs a GET handler on the blocking pool (store reads, packaging).
pub(crate) async fn serve(
    state: Arc<PlaybackState>,
    uri: Uri,
    protocol: Protocol,
    handler: Handler,
) -> Response {
    let result = tokio::task::spawn_blocking(move || {
        let q = Query::parse(&uri);
        let opened = open(&state, &q, protocol)?;
        handler(&state, &opened, &q)
    })
    .await
    .unwrap_or_else(|e| Err(KvsError::InternalFailure(format!("playback task: {e}"))));
    respond(result)
}

/// A playback GET's answer: the response, or the error as AWS JSON (logged).
pub(crate) fn respond(result: KvsResult<Response>) -> Response {
    match result {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(error = e.aws_code(), "playback: {}", e.message());
            e.into_response()
        }
    }
}

pub(crate) fn body(content_type: &'static str, bytes: impl Into<Bytes>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        bytes.into(),
    )
        .into_response()
}

/// `GET /hls/v1/getHLSMasterPlaylist.m3u8`.
pub async fn master_playlist(State(state): State<Arc<PlaybackState>>, uri: Uri) -> Response {
    serve(state, uri, Protocol::Hls, master).await
}

/// `GET /hls/v1/getHLSMediaPlaylist.m3u8` (low-latency sessions: [`super::llhls`]).
pub async fn media_playlist(State(state): State<Arc<PlaybackState>>, uri: Uri) -> Response {
    respond(super::llhls::media_playlist(state, uri).await)
}

/// `GET /hls/v1/getMP4InitFragment.mp4`.
pub async fn mp4_init_fragment(State(state): State<Arc<PlaybackState>>, uri: Uri) -> Response {
    serve(state, uri, Protocol::Hls, init).await
}

/// `GET /hls/v1/getMP4MediaFragment.mp4`.
pub async fn mp4_media_fragment(
    State(state): State<Arc<PlaybackState>>,
    peer: Option<Extension<PeerAddr>>,
    uri: Uri,
) -> Response {
    super::segment::serve_segment(state, uri, peer, Protocol::Hls, mp4_fragment).await
}

/// `GET /hls/v1/getTSFragment.ts`.
pub async fn ts_fragment(
    State(state): State<Arc<PlaybackState>>,
    peer: Option<Extension<PeerAddr>>,
    uri: Uri,
) -> Response {
    super::segment::serve_segment(state, uri, peer, Protocol::Hls, ts).await
}

/// Frames per second of a video track, from one fragment's samples: the frame count over the
/// span of their presentation times (plus one frame). `None` with fewer than two frames.
fn frame_rate(track: &Track, samples: &[vigil_media::sample::Sample]) -> Option<f64> {
    let pts: Vec<i64> = samples
        .iter()
        .filter(|s| s.track == track.number)
        .map(|s| s.pts)
        .collect();
    let (min, max) = (pts.iter().min()?, pts.iter().max()?);
    let n = pts.len();
    if n < 2 || max <= min {
        return None;
    }
    let span = (max - min) as f64 * n as f64 / (n - 1) as f64;
    let rate = n as f64 * f64::from(track.timescale) / span;
    // Whole rates print as such; 29.97 and the like keep three decimals.
    Some((rate * 1000.0).round() / 1000.0)
}

fn no_fragments() -> KvsError {
    KvsError::ResourceNotFoundException("The session has no fragments to play.".into())
}

fn master(state: &PlaybackState, o: &Opened, _q: &Query) -> KvsResult<Response> {
    let s = &o.session;
    let w = window(&state.store, s, o.now_ms)?;
    let probe = match s.mode {
        Mode::Live => w.entries.last(),
        Mode::LiveReplay | Mode::OnDemand => w.entries.first(),
    }
    .ok_or_else(no_fragments)?;
    let (tracks, samples, _) = package_times(state, &probe.meta)?;
    check_codecs(&tracks, s.container)?;
    let frame_rate = tracks
        .first()
        .filter(|t| t.codec.is_video())
        .and_then(|t| frame_rate(t, &samples));
    let bandwidth = w
        .entries
        .iter()
        .map(|e| u64::from(e.meta.size) * 8000 / u64::from(e.meta.duration_ms.max(1)))
        .max()
        .unwrap_or(1)
        .max(1);
    let playlist = |track: usize| {
        format!(
            "getHLSMediaPlaylist.m3u8?SessionToken={}&TrackNumber={track}",
            o.token
        )
    };
    let (main, audio) = match s.container {
        Container::Ts => (tracks.clone(), None),
        Container::Fmp4 => {
            let main: Vec<Track> = tracks.iter().take(1).cloned().collect();
            let audio = tracks.get(1).map(|t| m3u8::AudioRendition {
                uri: playlist(2),
                track: t.clone(),
                group_id: "audio".into(),
                name: "Audio".into(),
                language: None,
            });
            (main, audio)
        }
    };
    let text = m3u8::master_playlist(&m3u8::MasterPlaylist {
        uri: playlist(1),
        tracks: main,
        audio,
        bandwidth,
        frame_rate,
        independent_segments: true,
    })?;
    Ok(body(M3U8, text))
}

/// The plain (not low-latency) media playlist.
pub(crate) fn media(state: &PlaybackState, o: &Opened, q: &Query) -> KvsResult<Response> {
    let track = q.track()?;
    let w: Window = window(&state.store, &o.session, o.now_ms)?;
    let text = m3u8::media_playlist(&media_document(&o.session, &o.token, track, &w))?;
    Ok(body(M3U8, text))
}

/// The media playlist of `track` over a window, without low-latency parts.
pub(crate) fn media_document(
    s: &Session,
    token: &str,
    track: usize,
    w: &Window,
) -> m3u8::MediaPlaylist {
    let display_kind = s.selector.kind();
    let segments = w
        .entries
        .iter()
        .map(|e| {
            let number = fragment_number(e.meta.number);
            let (uri, map_uri) = match s.container {
                Container::Ts => (
                    format!("getTSFragment.ts?SessionToken={token}&FragmentNumber={number}"),
                    None,
                ),
                Container::Fmp4 => (
                    format!(
                        "getMP4MediaFragment.mp4?SessionToken={token}&TrackNumber={track}&FragmentNumber={number}"
                    ),
                    Some(format!(
                        "getMP4InitFragment.mp4?SessionToken={token}&TrackNumber={track}&SequenceNumber={}&FragmentNumber={}",
                        e.meta.header_id,
                        fragment_number(e.init_fragment)
                    )),
                ),
            };
            let pdt = match display_kind {
                TimestampKind::Producer => e.meta.producer_ts_ms,
                TimestampKind::Server => e.meta.server_ts_ms,
            };
            m3u8::Segment {
                uri,
                duration: f64::from(e.meta.duration_ms) / 1000.0,
                discontinuity: e.discontinuity,
                program_date_time_ms: if s.display_timestamp {
                    i64::try_from(pdt).ok()
                } else {
                    None
                },
                map_uri,
                parts: Vec::new(),
            }
        })
        .collect();
    m3u8::MediaPlaylist {
        container: Some(match s.container {
            Container::Fmp4 => m3u8::Container::Fmp4,
            Container::Ts => m3u8::Container::Ts,
        }),
        media_sequence: w.media_sequence,
        discontinuity_sequence: w.discontinuity_sequence,
        independent_segments: true,
        playlist_type: (s.mode == Mode::OnDemand).then_some(m3u8::PlaylistType::Vod),
        segments,
        low_latency: None,
        ended: w.ended,
    }
}

/// The session's fragment `number`, checked against its stream and range.
pub(crate) fn session_fragment(
    state: &PlaybackState,
    s: &Session,
    number: u64,
) -> KvsResult<FragmentMeta> {
    let meta = state.store.fragment(s.stream, number)?;
    if !super::in_scope(s, &meta) {
        return Err(KvsError::ResourceNotFoundException(format!(
            "Fragment {} is not part of this session.",
            fragment_number(number)
        )));
    }
    Ok(meta)
}

pub(crate) fn pick_track(tracks: &[Track], track: usize) -> KvsResult<&Track> {
    tracks.get(track.saturating_sub(1)).ok_or_else(|| {
        KvsError::ResourceNotFoundException(format!("The stream has no track {track}."))
    })
}

fn init(state: &PlaybackState, o: &Opened, q: &Query) -> KvsResult<Response> {
    let track = q.track()?;
    let meta = session_fragment(state, &o.session, q.fragment()?)?;
    if let Some(seq) = q.number("SequenceNumber")?
        && seq != meta.header_id
    {
        return Err(KvsError::ResourceNotFoundException(format!(
            "No init fragment {seq} for this fragment."
        )));
    }
    mp4_init(state, &meta, track)
}

fn mp4_fragment(state: &PlaybackState, o: &Opened, q: &Query) -> KvsResult<Response> {
    if o.session.container != Container::Fmp4 {
        return Err(KvsError::invalid("This session serves MPEG_TS segments."));
    }
    let track = q.track()?;
    let meta = session_fragment(state, &o.session, q.fragment()?)?;
    mp4_segment(state, &meta, track)
}

pub(crate) use super::segment::mp4_segment;

/// `ftyp`+`moov` of a track, built from `meta`.
pub(crate) fn mp4_init(
    state: &PlaybackState,
    meta: &FragmentMeta,
    track: usize,
) -> KvsResult<Response> {
    let (tracks, _, _) = package_times(state, meta)?;
    let t = pick_track(&tracks, track)?;
    let bytes = vigil_media::fmp4::init_segment(std::slice::from_ref(t))?;
    Ok(body("video/mp4", bytes))
}

fn ts(state: &PlaybackState, o: &Opened, q: &Query) -> KvsResult<Response> {
    if o.session.container != Container::Ts {
        return Err(KvsError::invalid(
            "This session serves FRAGMENTED_MP4 segments.",
        ));
    }
    let meta = session_fragment(state, &o.session, q.fragment()?)?;
    super::segment::ts_segment(state, &meta)
}
