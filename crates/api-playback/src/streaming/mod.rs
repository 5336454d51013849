//! Playback sessions: GetHLSStreamingSessionURL, GetDASHStreamingSessionURL and their
//! playback GETs (`../shared/spec/kvs-api.md` §4.3, §4.4).
//!
//! - [`session`]: the signed, expiring `SessionToken` that is the only credential of the
//!   playback GETs.
//! - [`hls`]: the HLS session call and the `/hls/v1/` GETs (master and media playlists, fMP4
//!   init and media segments, TS segments).
//! - [`llhls`]: low-latency HLS on LIVE fMP4 sessions: partial segments cut from the
//!   fragment being received, blocking playlist reloads, preload hints.
//! - [`dash`]: the DASH session call and the `/dash/v1/` GETs (manifest, fMP4 segments).
//! - `segment`: fMP4 and TS media segments streamed from the store in two bounded passes
//!   (memory per response: one stored chunk, whatever the fragment's size).
//!
//! # Which fragments a media playlist (or DASH manifest) lists ([`window`])
//!
//! One segment per stored fragment, in the selector's timestamp order (with
//! PRODUCER_TIMESTAMP, equal start times are deduplicated and the larger fragment number
//! wins). Fragments are counted from a fixed anchor so that a fragment keeps its media
//! sequence number across playlist reloads:
//!
//! - ON_DEMAND: the first `MaxMediaPlaylistFragmentResults` fragments whose start lies in
//!   [StartTimestamp, EndTimestamp]; `#EXT-X-ENDLIST`.
//! - LIVE_REPLAY: fragments whose start lies in [StartTimestamp, StartTimestamp + time since
//!   the session began] (and ≤ EndTimestamp), the newest N of them; `#EXT-X-ENDLIST` once the
//!   replay has reached EndTimestamp, if one was given.
//! - LIVE: by server time, fragments from the anchor (session start − 30 s − N × 20 s) up to
//!   now, the newest N; never ends.
//!
//! Each request lists the fragment metadata from the anchor (a page of 1000 at a time), so a
//! long LIVE or LIVE_REPLAY session costs one index scan of its fragments per playlist
//! request. Fragments removed by retention after the anchor shift later sequence numbers.

pub mod dash;
pub mod hls;
pub mod llhls;
pub(crate) mod segment;
pub mod session;

use std::collections::{BTreeMap, VecDeque};

use vigil_store::{FragmentMeta, PageCursor, Store, TimestampKind};

use session::{Discontinuity, Mode, Session};
use vigil_api_kvs_common::KvsResult;

/// Largest gap or overlap between fragments that is not a discontinuity (ON_DISCONTINUITY).
pub const DISCONTINUITY_MS: u64 = 50;
/// LIVE: a session needs a fragment this recent when it is made.
pub const LIVE_RECENT_MS: u64 = 30_000;
/// LIVE: how far before the session the anchor lies, per playlist fragment.
const LIVE_LOOKBACK_PER_FRAGMENT_MS: u64 = 20_000;

/// One segment of a media playlist.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The fragment.
    pub meta: FragmentMeta,
    /// Its start on the session's timestamp kind (ms).
    pub ts_ms: u64,
    /// `#EXT-X-DISCONTINUITY` before it.
    pub discontinuity: bool,
    /// The first fragment of the scan with the same track header (its init segment source).
    pub init_fragment: u64,
}

/// The segments of a media playlist.
#[derive(Debug, Clone, Default)]
pub struct Window {
    /// Oldest first.
    pub entries: Vec<Entry>,
    /// Media sequence number of the first entry.
    pub media_sequence: u64,
    /// Discontinuities before the first entry.
    pub discontinuity_sequence: u64,
    /// Whether the playlist is complete.
    pub ended: bool,
}

/// The timestamp kind a session lists fragments by (LIVE: server time).
pub fn list_kind(s: &Session) -> TimestampKind {
    match s.mode {
        Mode::Live => TimestampKind::Server,
        Mode::LiveReplay | Mode::OnDemand => s.selector.kind(),
    }
}

pub(crate) fn ts_of(kind: TimestampKind, m: &FragmentMeta) -> u64 {
    match kind {
        TimestampKind::Producer => m.producer_ts_ms,
        TimestampKind::Server => m.server_ts_ms,
    }
}

/// The span `[from, to]` of fragment start times a session covers at `now_ms`, and whether
/// the playlist is complete then.
fn span(s: &Session, now_ms: u64) -> (u64, u64, bool) {
    match s.mode {
        Mode::OnDemand => (s.start_ms.unwrap_or(0), s.end_ms.unwrap_or(u64::MAX), true),
        Mode::LiveReplay => {
            let start = s.start_ms.unwrap_or(0);
            let reached = start.saturating_add(now_ms.saturating_sub(s.issued_ms));
            match s.end_ms {
                Some(end) if reached >= end => (start, end, true),
                Some(end) => (start, reached.min(end), false),
                None => (start, reached, false),
            }
        }
        Mode::Live => (live_anchor(s), now_ms, false),
    }
}

/// LIVE: where a session starts counting fragments.
pub(crate) fn live_anchor(s: &Session) -> u64 {
    let back = LIVE_RECENT_MS
        .saturating_add(LIVE_LOOKBACK_PER_FRAGMENT_MS.saturating_mul(u64::from(s.max_fragments)));
    s.issued_ms.saturating_sub(back)
}

/// Whether a fragment belongs to a session at all (what segment GETs check): its start lies
/// in the session's range (LIVE: at or after the anchor).
pub fn in_scope(s: &Session, m: &FragmentMeta) -> bool {
    let ts = ts_of(list_kind(s), m);
    match s.mode {
        Mode::Live => ts >= live_anchor(s),
        Mode::OnDemand | Mode::LiveReplay => {
            ts >= s.start_ms.unwrap_or(0) && ts <= s.end_ms.unwrap_or(u64::MAX)
        }
    }
}

/// The media playlist's segments at `now_ms`: see the module docs. Blocking (index reads).
pub fn window(store: &Store, s: &Session, now_ms: u64) -> KvsResult<Window> {
    let kind = list_kind(s);
    let (from, to, ended) = span(s, now_ms);
    let n = usize::try_from(s.max_fragments)
        .unwrap_or(usize::MAX)
        .max(1);
    let on_demand = s.mode == Mode::OnDemand;
    let mut out: VecDeque<Entry> = VecDeque::new();
    let mut media_sequence = 0u64;
    let mut discontinuity_sequence = 0u64;
    let mut first_of_header: BTreeMap<u64, u64> = BTreeMap::new();
    // The previous fragment kept (after deduplication): (ts, duration).
    let mut prev: Option<(u64, u64)> = None;
    let mut pending: Option<FragmentMeta> = None;
    let mut cursor: Option<PageCursor> = None;
    let mut done = false;
    if from > to {
        return Ok(Window {
            ended,
            ..Window::default()
        });
    }
    // `push` takes the next deduplicated fragment in order.
    let mut push = |m: FragmentMeta, out: &mut VecDeque<Entry>| -> bool {
        let ts = ts_of(kind, &m);
        let discontinuity = match s.discontinuity {
            Discontinuity::Always => true,
            Discontinuity::Never => false,
            Discontinuity::OnDiscontinuity => match prev {
                None => false,
                Some((pts, pdur)) => pts.saturating_add(pdur).abs_diff(ts) > DISCONTINUITY_MS,
            },
        };
        prev = Some((ts, u64::from(m.duration_ms)));
        let init_fragment = *first_of_header.entry(m.header_id).or_insert(m.number);
        out.push_back(Entry {
            meta: m,
            ts_ms: ts,
            discontinuity,
            init_fragment,
        });
        if on_demand {
            return out.len() >= n;
        }
        while out.len() > n {
            if let Some(old) = out.pop_front() {
                media_sequence += 1;
                if old.discontinuity {
                    discontinuity_sequence += 1;
                }
            }
        }
        false
    };
    while !done {
        let page = store.list_fragments(s.stream, kind, from, to, cursor, 1000)?;
        for m in page.fragments {
            if kind == TimestampKind::Producer
                && let Some(p) = pending.as_mut()
                && ts_of(kind, p) == ts_of(kind, &m)
            {
                // Equal producer start times: the newer (larger number) wins.
                if m.number > p.number {
                    *p = m;
                }
                continue;
            }
            if let Some(p) = pending.replace(m)
                && push(p, &mut out)
            {
                done = true;
                pending = None;
                break;
            }
        }
        match page.next {
            Some(next) if !done => cursor = Some(next),
            _ => break,
        }
    }
    if let Some(p) = pending {
        push(p, &mut out);
    }
    Ok(Window {
        entries: out.into(),
        media_sequence,
        discontinuity_sequence,
        ended,
    })
}
