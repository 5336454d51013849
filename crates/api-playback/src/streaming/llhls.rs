//! Low-latency HLS (draft-pantos-hls-rfc8216bis: §4.4.3.7 EXT-X-PART-INF, §4.4.3.8
//! EXT-X-SERVER-CONTROL, §4.4.4.9 EXT-X-PART, §4.4.5.3 EXT-X-PRELOAD-HINT, §6.2.5.2 blocking
//! playlist reload) on HLS sessions. KVS has no such feature; Vigil adds it without new API
//! fields, which AWS clients could not send.
//!
//! # Which sessions
//!
//! A session is low-latency when it is made (GetHLSStreamingSessionURL) in LIVE mode with
//! FRAGMENTED_MP4 segments and low-latency HLS is on for its stream: the stream tag
//! [`STREAM_TAG`] (`vigil:low-latency-hls`, `true` or `false`, set with TagStream) decides, and
//! without it the server-wide [`LowLatencyConfig::enabled`] (`[playback] low_latency_hls`,
//! `--low-latency-hls`). The part target ([`LowLatencyConfig::part_target_ms`]) is fixed in
//! the session token. MPEG_TS, LIVE_REPLAY and ON_DEMAND sessions are never low-latency (and
//! serve exactly what they served before). Every other session's playlists are untouched.
//!
//! # What a low-latency media playlist adds
//!
//! - `#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=<3 × part target>` and
//!   `#EXT-X-PART-INF:PART-TARGET=<part target>` (raised to the longest part listed, which only
//!   a frame longer than the target makes longer);
//! - `#EXT-X-PART` for the segments that end within three target durations of the playlist's
//!   end, cut as [`vigil_media::parts`] says (a part is never longer than the part target,
//!   starts at every key frame, `INDEPENDENT=YES` when it starts with one);
//! - the segment in progress: the complete parts of the fragment being received, read from the
//!   store's live edge ([`vigil_store::Store::live_edge`]: frames as ingest appends them, no
//!   polling), with its DISCONTINUITY, MAP and PROGRAM-DATE-TIME before them; a fragment that
//!   is complete but not yet indexed stays "in progress" (all its parts, no EXTINF) until it
//!   is, so it becomes a segment with the same media sequence number;
//! - `#EXT-X-PRELOAD-HINT:TYPE=PART` for the next part: the next one of the fragment being
//!   received, or part 0 of the fragment after the last one listed.
//!
//! Part URIs: `getMP4MediaPart.mp4?SessionToken=&TrackNumber=&FragmentNumber=&PartNumber=`,
//! except that part 0 of a fragment that follows another in the playlist is named after that
//! one (`AfterFragmentNumber=<previous>&PartNumber=0`): fragment numbers are given when a
//! fragment's first byte arrives, so a hint for a fragment not begun yet can only name it so,
//! and the part keeps that URI once listed (players match hints to parts by URI).
//!
//! # Blocking reloads
//!
//! `_HLS_msn=M` holds the playlist request until segment M is complete in it; with
//! `_HLS_part=P` until it holds part P of segment M (or segment M is complete, or a later
//! segment has begun). `_HLS_part` without `_HLS_msn`, an M more than two segments past the
//! last complete one, or a P past the last part of the segment in progress by more than the
//! Advance Part Limit (3 / part target in seconds, rounded up) is `InvalidArgumentException`
//! (400) at once. The hold is bounded by three target durations (at least 1 s, at most 6 s);
//! when it runs out (ingest paused) the current playlist is the answer, with 200, so players
//! simply ask again; the session stays playable until it expires. Waiting wakes on the stream's
//! changes (a frame appended, a fragment begun, ended or indexed), never on a timer.
//!
//! A part request for a part not complete yet is held the same way (at most 6 s), which is
//! how a preload hint is served: `AfterFragmentNumber` waits for the next fragment to begin.
//! A part past the last of a complete fragment, a fragment that does not exist or is outside
//! the session, or a hold that runs out is `ResourceNotFoundException` (404). So is a hint
//! that proved wrong: the hinted next part of the fragment being received when that fragment
//! ends without it (the next playlist hints part 0 of the following fragment instead).
//!
//! # Costs and limits
//!
//! Nothing is cached: each playlist answer reads and cuts the fragments whose parts it lists
//! (about three target durations of them, from disk) and the fragment being received (from
//! memory), and a held request does that again on each change of the stream. Parts of a track
//! with B-frames may time their last samples differently from the whole segment while the
//! fragment arrives (decode times are derived from presentation times, which later frames
//! change); streams without B-frames (what KVS producers and cameras send) are exact. A
//! fragment abandoned by its producer takes its listed parts with it, and one ingested under
//! a new track header lists no parts until it is a segment (its EXT-X-MAP comes with it).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use tokio::sync::watch;
use tokio::time::Instant;
use vigil_media::hls as m3u8;
use vigil_media::parts::{self, PartSpan};
use vigil_media::sample::{Sample, Track};
use vigil_store::live::{Ending, LiveFragment};
use vigil_store::{FragmentMeta, StreamRecord, StreamRef};

use super::hls::{self, M3U8, Opened, Query, body, respond};
use super::session::{Container, Discontinuity, Mode, Protocol, Selector};
use super::{DISCONTINUITY_MS, window};
use crate::service::PlaybackState;
use vigil_api_kvs_common::model::{fragment_number, parse_fragment_number};
use vigil_api_kvs_common::{KvsError, KvsResult};

/// The stream tag that turns low-latency HLS on (`true`) or off (`false`) for one stream,
/// whatever the server-wide setting.
pub const STREAM_TAG: &str = "vigil:low-latency-hls";
/// The part target unless configured otherwise, ms.
pub const DEFAULT_PART_TARGET_MS: u32 = 333;
/// The shortest part target accepted, ms.
pub const MIN_PART_TARGET_MS: u32 = 100;
/// The longest part target accepted, ms.
pub const MAX_PART_TARGET_MS: u32 = 5000;
/// Parts are listed for the segments within this many target durations of the end.
const PART_HORIZON_TARGETS: u64 = 3;
/// Bounds of a held request, ms.
const HOLD_MIN_MS: u64 = 1000;
const HOLD_MAX_MS: u64 = 6000;

/// The server-wide low-latency HLS settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LowLatencyConfig {
    /// Low-latency HLS for streams without the [`STREAM_TAG`] tag.
    pub enabled: bool,
    /// The part target, ms ([`MIN_PART_TARGET_MS`]..=[`MAX_PART_TARGET_MS`]).
    pub part_target_ms: u32,
}

impl Default for LowLatencyConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            part_target_ms: DEFAULT_PART_TARGET_MS,
        }
    }
}

/// The part target of a new HLS session, or `None` for a plain one (see the module docs).
/// `prefer`: the caller asks for low latency (the web console's live view) where the stream's
/// tag does not say otherwise.
pub fn session_part_target(
    cfg: &LowLatencyConfig,
    rec: &StreamRecord,
    mode: Mode,
    container: Container,
    prefer: bool,
) -> Option<u32> {
    if mode != Mode::Live || container != Container::Fmp4 {
        return None;
    }
    let on = match rec
        .tags
        .get(STREAM_TAG)
        .map(|v| v.trim().to_ascii_lowercase())
    {
        Some(v) if v == "true" => true,
        Some(v) if v == "false" => false,
        Some(v) => {
            tracing::warn!(
                stream = rec.name,
                "tag {STREAM_TAG}={v:?} is neither true nor false; using the server's setting"
            );
            cfg.enabled || prefer
        }
        None => cfg.enabled || prefer,
    };
    on.then_some(
        cfg.part_target_ms
            .clamp(MIN_PART_TARGET_MS, MAX_PART_TARGET_MS),
    )
}

/// Runs `f` on the blocking pool (store reads, packaging).
async fn blocking<T: Send + 'static>(
    state: &Arc<PlaybackState>,
    f: impl FnOnce(&PlaybackState) -> KvsResult<T> + Send + 'static,
) -> KvsResult<T> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || f(&state))
        .await
        .unwrap_or_else(|e| Err(KvsError::InternalFailure(format!("playback task: {e}"))))
}

/// Parses the query and opens the session.
async fn open(state: &Arc<PlaybackState>, uri: Uri) -> KvsResult<(Arc<Opened>, Arc<Query>)> {
    blocking(state, move |st| {
        let q = Query::parse(&uri);
        let o = hls::open(st, &q, Protocol::Hls)?;
        Ok((Arc::new(o), Arc::new(q)))
    })
    .await
}

// ---- cutting fragments into parts ----

/// Where a fragment's bytes are.
#[derive(Debug, Clone)]
enum Source {
    /// Indexed: read from disk, complete.
    Indexed(FragmentMeta),
    /// In memory, maybe still arriving.
    Live(Arc<LiveFragment>),
}

impl Source {
    fn number(&self) -> u64 {
        match self {
            Source::Indexed(m) => m.number,
            Source::Live(f) => f.number,
        }
    }
}

/// One track of a fragment, cut into its complete parts.
struct Cut {
    track: Track,
    samples: Vec<Sample>,
    parts: Vec<PartSpan>,
    complete: bool,
}

impl Cut {
    fn seconds(&self, p: &PartSpan) -> f64 {
        p.duration as f64 / f64::from(self.track.timescale.max(1))
    }
}

fn cut_fragment(
    state: &PlaybackState,
    stream: u64,
    src: &Source,
    track: usize,
    target_ms: u32,
) -> KvsResult<Cut> {
    let (tracks, samples, complete) = match src {
        Source::Indexed(meta) => {
            let (t, s) = hls::package_input(state, meta)?;
            (t, s, true)
        }
        Source::Live(f) => {
            let header = state.store.header(stream, f.header_id)?;
            let chunks = f.chunks();
            let complete = matches!(f.ending(), Ending::Complete { .. });
            let (t, s) = if complete {
                vigil_media::sample::from_fragments(&header, &chunks)?
            } else {
                vigil_media::sample::from_fragment_prefix(&header, &chunks)?
            };
            (t, s, complete)
        }
    };
    let t = hls::pick_track(&tracks, track)?.clone();
    let samples: Vec<Sample> = samples
        .into_iter()
        .filter(|x| x.track == t.number)
        .collect();
    let target = u64::from(target_ms) * u64::from(t.timescale) / 1000;
    let refs: Vec<&Sample> = samples.iter().collect();
    let parts = parts::cut(&refs, target, t.is_video(), complete);
    Ok(Cut {
        track: t,
        samples,
        parts,
        complete,
    })
}

/// How a part URI names its fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Named {
    /// By its number.
    Fragment(u64),
    /// As the fragment after this one (part 0 only).
    After(u64),
}

fn part_uri(token: &str, track: usize, named: Named, k: usize) -> String {
    match named {
        Named::Fragment(n) => format!(
            "getMP4MediaPart.mp4?SessionToken={token}&TrackNumber={track}&FragmentNumber={}&PartNumber={k}",
            fragment_number(n)
        ),
        Named::After(n) => format!(
            "getMP4MediaPart.mp4?SessionToken={token}&TrackNumber={track}&AfterFragmentNumber={}&PartNumber={k}",
            fragment_number(n)
        ),
    }
}

/// The name of part `k` of fragment `number`, which follows `previous` in the playlist.
fn naming(number: u64, previous: Option<u64>, k: usize) -> Named {
    match previous {
        Some(p) if k == 0 => Named::After(p),
        _ => Named::Fragment(number),
    }
}

fn part_list(
    token: &str,
    track: usize,
    number: u64,
    previous: Option<u64>,
    cut: &Cut,
) -> Vec<m3u8::Part> {
    cut.parts
        .iter()
        .enumerate()
        .map(|(k, p)| m3u8::Part {
            uri: part_uri(token, track, naming(number, previous, k), k),
            duration: cut.seconds(p),
            independent: p.independent,
        })
        .collect()
}

// ---- the media playlist ----

/// A low-latency media playlist and where it stands.
#[derive(Debug)]
struct Built {
    text: String,
    /// Media sequence number of the last complete segment.
    last_complete: Option<u64>,
    /// Media sequence number of the segment in progress (after the last complete one).
    pending_msn: u64,
    /// Complete parts of the segment in progress.
    pending_parts: usize,
    /// TARGETDURATION, seconds.
    target_duration_s: u64,
}

fn build(
    state: &PlaybackState,
    o: &Opened,
    track: usize,
    target_ms: u32,
) -> KvsResult<(Built, watch::Receiver<u64>)> {
    let s = &o.session;
    // The live edge first: a change after this snapshot wakes the caller.
    let edge = state.store.live_edge(StreamRef::Id(s.stream))?;
    let now_ms = state.store.clock().now_ms();
    let w = window(&state.store, s, now_ms)?;
    let mut doc = hls::media_document(s, &o.token, track, &w);
    let longest_ms = w
        .entries
        .iter()
        .map(|e| u64::from(e.meta.duration_ms))
        .max()
        .unwrap_or(0);
    let target_duration_s = longest_ms.div_ceil(1000).max(1);
    let mut longest_part = f64::from(target_ms) / 1000.0;

    // Parts of the newest complete segments.
    let horizon_ms = PART_HORIZON_TARGETS * target_duration_s * 1000;
    let mut covered_ms = 0u64;
    for (i, e) in w.entries.iter().enumerate().rev() {
        if covered_ms >= horizon_ms {
            break;
        }
        covered_ms += u64::from(e.meta.duration_ms);
        let cut = cut_fragment(state, s.stream, &Source::Indexed(e.meta), track, target_ms)?;
        let previous = i
            .checked_sub(1)
            .and_then(|j| w.entries.get(j))
            .map(|p| p.meta.number);
        let list = part_list(&o.token, track, e.meta.number, previous, &cut);
        for p in &list {
            longest_part = longest_part.max(p.duration);
        }
        if let Some(seg) = doc.segments.get_mut(i) {
            seg.parts = list;
        }
    }

    // The segment in progress.
    let mut ll = m3u8::LowLatency {
        can_block_reload: true,
        ..m3u8::LowLatency::default()
    };
    if let Some(last) = w.entries.last() {
        let previous = Some(last.meta.number);
        match edge.fragments.iter().find(|f| f.number > last.meta.number) {
            Some(f) if f.header_id == last.meta.header_id => {
                let cut =
                    cut_fragment(state, s.stream, &Source::Live(f.clone()), track, target_ms)?;
                ll.pending_parts = part_list(&o.token, track, f.number, previous, &cut);
                for p in &ll.pending_parts {
                    longest_part = longest_part.max(p.duration);
                }
                ll.pending_discontinuity = match s.discontinuity {
                    Discontinuity::Always => true,
                    Discontinuity::Never => false,
                    Discontinuity::OnDiscontinuity => {
                        last.ts_ms
                            .saturating_add(u64::from(last.meta.duration_ms))
                            .abs_diff(f.server_ts_ms)
                            > DISCONTINUITY_MS
                    }
                };
                ll.pending_map_uri = doc.segments.last().and_then(|x| x.map_uri.clone());
                ll.pending_program_date_time_ms = if s.display_timestamp {
                    i64::try_from(match s.selector {
                        Selector::Producer => f.producer_ts_ms,
                        Selector::Server => f.server_ts_ms,
                    })
                    .ok()
                } else {
                    None
                };
                let next = cut.parts.len();
                ll.preload_hint = Some(if cut.complete {
                    part_uri(&o.token, track, Named::After(f.number), 0)
                } else {
                    part_uri(&o.token, track, naming(f.number, previous, next), next)
                });
            }
            // A new track header: its parts wait until it is a segment with its own MAP.
            Some(_) => {}
            None => {
                ll.preload_hint =
                    Some(part_uri(&o.token, track, Named::After(last.meta.number), 0));
            }
        }
    }
    // Whole milliseconds, rounded up, so that no part listed is longer.
    ll.part_target = (longest_part * 1000.0).ceil() / 1000.0;
    let pending_parts = ll.pending_parts.len();
    doc.low_latency = Some(ll);
    let text = m3u8::media_playlist(&doc)?;
    let count = w.entries.len() as u64;
    Ok((
        Built {
            text,
            last_complete: count.checked_sub(1).map(|c| w.media_sequence + c),
            pending_msn: w.media_sequence + count,
            pending_parts,
            target_duration_s,
        },
        edge.changes,
    ))
}

/// What a blocking reload asks for (`_HLS_msn`, `_HLS_part`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Wanted {
    msn: u64,
    part: Option<u64>,
}

impl Wanted {
    fn parse(q: &Query) -> KvsResult<Option<Self>> {
        let msn = q.number("_HLS_msn")?;
        let part = q.number("_HLS_part")?;
        match (msn, part) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(KvsError::invalid("_HLS_part requires _HLS_msn.")),
            (Some(msn), part) => Ok(Some(Self { msn, part })),
        }
    }

    /// Whether `b` has what is asked for.
    fn satisfied(&self, b: &Built) -> bool {
        let complete = b.last_complete.is_some_and(|l| self.msn <= l);
        match self.part {
            None => complete,
            Some(p) => {
                complete
                    || (self.msn == b.pending_msn
                        && usize::try_from(p).is_ok_and(|p| p < b.pending_parts))
            }
        }
    }

    /// Whether it asks too far ahead of `b` (the request is refused at once).
    fn too_far(&self, b: &Built, target_ms: u32) -> bool {
        if self.msn > b.pending_msn.saturating_add(1) {
            return true;
        }
        let advance = if target_ms < 1000 {
            u64::from(3000u32.div_ceil(target_ms.max(1)))
        } else {
            3
        };
        match self.part {
            Some(p) if self.msn == b.pending_msn => {
                p >= (b.pending_parts as u64).saturating_add(advance)
            }
            Some(p) if self.msn > b.pending_msn => p >= advance,
            _ => false,
        }
    }
}

fn hold(target_duration_s: u64) -> Duration {
    Duration::from_millis((target_duration_s * 3000).clamp(HOLD_MIN_MS, HOLD_MAX_MS))
}

/// `GET /hls/v1/getHLSMediaPlaylist.m3u8`: plain sessions as [`hls::media`]; low-latency
/// ones as the module docs say.
pub(crate) async fn media_playlist(state: Arc<PlaybackState>, uri: Uri) -> KvsResult<Response> {
    let (o, q) = open(&state, uri).await?;
    let Some(target_ms) = o.session.part_target_ms else {
        return blocking(&state, move |st| hls::media(st, &o, &q)).await;
    };
    let track = q.track()?;
    let wanted = Wanted::parse(&q)?;
    let started = Instant::now();
    let mut first = true;
    loop {
        let o2 = o.clone();
        let (built, mut changes) =
            blocking(&state, move |st| build(st, &o2, track, target_ms)).await?;
        let Some(wanted) = wanted else {
            return Ok(body(M3U8, built.text));
        };
        if first && wanted.too_far(&built, target_ms) {
            return Err(KvsError::invalid(format!(
                "_HLS_msn={} _HLS_part={:?} is too far ahead of the playlist (segment {} in \
                 progress, {} parts).",
                wanted.msn, wanted.part, built.pending_msn, built.pending_parts
            )));
        }
        first = false;
        if wanted.satisfied(&built) {
            return Ok(body(M3U8, built.text));
        }
        let deadline = started + hold(built.target_duration_s);
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            // The hold ran out (or the store closed): the playlist as it is.
            Ok(Err(_)) | Err(_) => return Ok(body(M3U8, built.text)),
        }
    }
}

// ---- parts ----

/// `GET /hls/v1/getMP4MediaPart.mp4`.
pub async fn mp4_media_part(State(state): State<Arc<PlaybackState>>, uri: Uri) -> Response {
    respond(media_part(state, uri).await)
}

async fn media_part(state: Arc<PlaybackState>, uri: Uri) -> KvsResult<Response> {
    let (o, q) = open(&state, uri).await?;
    let Some(target_ms) = o.session.part_target_ms else {
        return Err(KvsError::invalid(
            "This session is not a low-latency HLS session.",
        ));
    };
    let track = q.track()?;
    let k = q
        .number("PartNumber")?
        .ok_or_else(|| KvsError::invalid("PartNumber is required."))?;
    let k = usize::try_from(k).map_err(|_| KvsError::invalid("PartNumber is too large."))?;
    let named = match (q.get("FragmentNumber"), q.get("AfterFragmentNumber")) {
        (Some(_), None) => Named::Fragment(q.fragment()?),
        (None, Some(a)) if k == 0 => Named::After(parse_fragment_number(a).ok_or_else(|| {
            KvsError::ResourceNotFoundException(format!("Fragment {a:?} was not found."))
        })?),
        (None, Some(_)) => {
            return Err(KvsError::invalid(
                "AfterFragmentNumber names part 0 of a fragment only.",
            ));
        }
        _ => {
            return Err(KvsError::invalid(
                "Exactly one of FragmentNumber and AfterFragmentNumber is required.",
            ));
        }
    };
    let deadline = Instant::now() + Duration::from_millis(HOLD_MAX_MS);
    loop {
        let o2 = o.clone();
        let (found, mut changes) = blocking(&state, move |st| {
            find_part(st, &o2, track, named, k, target_ms)
        })
        .await?;
        if let Some(response) = found {
            return Ok(response);
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => {
                return Err(KvsError::ResourceNotFoundException(format!(
                    "Part {k} is not available."
                )));
            }
        }
    }
}

/// The part's response if it is complete; `None` if it may still come.
fn find_part(
    state: &PlaybackState,
    o: &Opened,
    track: usize,
    named: Named,
    k: usize,
    target_ms: u32,
) -> KvsResult<(Option<Response>, watch::Receiver<u64>)> {
    let s = &o.session;
    let edge = state.store.live_edge(StreamRef::Id(s.stream))?;
    let src = match named {
        Named::Fragment(n) => match edge.fragments.iter().find(|f| f.number == n) {
            Some(f) => Source::Live(f.clone()),
            None => Source::Indexed(hls::session_fragment(state, s, n)?),
        },
        Named::After(a) => {
            let in_memory = edge.fragments.iter().find(|f| f.number > a);
            let on_disk = state
                .store
                .fragments_after(s.stream, Some(a), 1)?
                .into_iter()
                .next();
            match (in_memory, on_disk) {
                (Some(m), Some(d)) if d.number < m.number => Source::Indexed(d),
                (Some(m), _) => Source::Live(m.clone()),
                (None, Some(d)) => Source::Indexed(d),
                (None, None) => return Ok((None, edge.changes)),
            }
        }
    };
    if let Source::Indexed(meta) = &src
        && !super::in_scope(s, meta)
    {
        return Err(KvsError::ResourceNotFoundException(format!(
            "Fragment {} is not part of this session.",
            fragment_number(meta.number)
        )));
    }
    let cut = cut_fragment(state, s.stream, &src, track, target_ms)?;
    if let Some(p) = cut.parts.get(k) {
        let samples = cut.samples.get(p.start..p.end).unwrap_or_default();
        let sequence = u32::try_from(src.number() % (1 << 32)).unwrap_or(1).max(1);
        let bytes =
            vigil_media::fmp4::media_segment(sequence, std::slice::from_ref(&cut.track), samples)?;
        return Ok((Some(body("video/mp4", bytes)), edge.changes));
    }
    if cut.complete {
        return Err(KvsError::ResourceNotFoundException(format!(
            "Fragment {} has {} parts.",
            fragment_number(src.number()),
            cut.parts.len()
        )));
    }
    Ok((None, edge.changes))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn built(last_complete: Option<u64>, pending_msn: u64, pending_parts: usize) -> Built {
        Built {
            text: String::new(),
            last_complete,
            pending_msn,
            pending_parts,
            target_duration_s: 1,
        }
    }

    fn want(msn: u64, part: Option<u64>) -> Wanted {
        Wanted { msn, part }
    }

    #[test]
    fn blocking_reload_waits_for_the_segment_or_part() {
        // Segments up to 9 complete; segment 10 in progress with 2 parts (0 and 1).
        let b = built(Some(9), 10, 2);
        assert!(want(9, None).satisfied(&b));
        assert!(want(3, None).satisfied(&b));
        assert!(!want(10, None).satisfied(&b), "10 is not complete");
        assert!(want(10, Some(0)).satisfied(&b));
        assert!(want(10, Some(1)).satisfied(&b));
        assert!(!want(10, Some(2)).satisfied(&b), "part 2 is not there yet");
        assert!(!want(11, Some(0)).satisfied(&b));
        // A part past the end of a complete segment: that segment or later is there.
        assert!(want(9, Some(40)).satisfied(&b));
        // No segment yet.
        let empty = built(None, 0, 0);
        assert!(!want(0, None).satisfied(&empty));
        assert!(!want(0, Some(0)).satisfied(&empty));
    }

    #[test]
    fn too_far_ahead_is_refused() {
        let b = built(Some(9), 10, 2);
        // 333 ms parts: Advance Part Limit 10.
        assert!(!want(11, None).too_far(&b, 333));
        assert!(want(12, None).too_far(&b, 333), "more than last + 2");
        assert!(!want(10, Some(11)).too_far(&b, 333));
        assert!(want(10, Some(12)).too_far(&b, 333));
        assert!(!want(11, Some(9)).too_far(&b, 333));
        assert!(want(11, Some(10)).too_far(&b, 333));
        // Parts of a second or more: limit 3.
        assert!(want(10, Some(5)).too_far(&b, 1000));
        assert!(!want(10, Some(4)).too_far(&b, 1000));
        assert!(
            !want(0, Some(1000)).too_far(&b, 333),
            "the past is never too far"
        );
    }

    #[test]
    fn parse_and_hold() {
        let q = |s: &str| Query::parse(&format!("/x?{s}").parse::<Uri>().unwrap());
        assert_eq!(Wanted::parse(&q("a=1")).unwrap(), None);
        assert_eq!(
            Wanted::parse(&q("_HLS_msn=4&_HLS_part=2")).unwrap(),
            Some(want(4, Some(2)))
        );
        assert_eq!(
            Wanted::parse(&q("_HLS_msn=4")).unwrap(),
            Some(want(4, None))
        );
        assert!(Wanted::parse(&q("_HLS_part=2")).is_err());
        assert!(Wanted::parse(&q("_HLS_msn=x")).is_err());
        assert_eq!(hold(1), Duration::from_millis(3000));
        assert_eq!(hold(10), Duration::from_millis(HOLD_MAX_MS));
    }

    #[test]
    fn part_names() {
        assert_eq!(naming(8, Some(7), 0), Named::After(7));
        assert_eq!(naming(8, Some(7), 1), Named::Fragment(8));
        assert_eq!(naming(8, None, 0), Named::Fragment(8));
        assert_eq!(
            part_uri("T", 1, Named::After(7), 0),
            "getMP4MediaPart.mp4?SessionToken=T&TrackNumber=1&AfterFragmentNumber=900000000000000000007&PartNumber=0"
        );
    }
}
