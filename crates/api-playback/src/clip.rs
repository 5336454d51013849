//! GetClip (`../shared/spec/kvs-api.md` §4.5): one progressive MP4 for a timestamp range,
//! remuxed from the stored fragments by `vigil-media`, never decoded.
//!
//! Selection: the fragments whose start lies in [StartTimestamp, EndTimestamp] (inclusive),
//! in timestamp order, up to [`ClipLimits`] (KVS's 200 fragments and 100 MB by default): a
//! longer range gives a clip of its first fragments, as KVS caps clips. With
//! PRODUCER_TIMESTAMP, fragments with the same producer timestamp are deduplicated and the
//! first ingested wins. Every fragment must share one track header (a codec private change
//! within a clip is `InvalidCodecPrivateDataException`). Track 1 must be H.264 or H.265;
//! audio may be AAC, or G.711 with H.264 (§6.1).
//!
//! Memory: the clip is laid out from the samples' times and sizes (a first pass over the
//! fragments, a stored chunk at a time), then its `moov` is sent and its `mdat` streamed from
//! a second pass as the client reads, so a clip costs its sample tables and one chunk, not
//! its size (`crate::streaming::segment`).

use axum::response::Response;
use serde::Deserialize;
use vigil_media::codec::Codec;
use vigil_store::{FragmentMeta, TimestampKind};

use crate::archived::{FragmentSelector, require_retention, selector_range};
use crate::service::Call;
use crate::streaming::segment::{Streamed, clip_body, clip_scan};
use vigil_api_kvs_common::{KvsError, KvsResult};

/// What one clip may hold.
#[derive(Debug, Clone, Copy)]
pub struct ClipLimits {
    /// Most fragments.
    pub max_fragments: usize,
    /// Most bytes of fragments.
    pub max_bytes: u64,
}

impl Default for ClipLimits {
    fn default() -> Self {
        Self {
            max_fragments: 200,
            max_bytes: 100 * 1000 * 1000,
        }
    }
}

/// The longest range a clip may span.
const MAX_RANGE_MS: u64 = 24 * 3600 * 1000;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetClipInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    clip_fragment_selector: Option<FragmentSelector>,
}

/// GetClip: see the module docs.
pub async fn get_clip(call: Call) -> KvsResult<Response> {
    let input: GetClipInput = call.input()?;
    let selector = input
        .clip_fragment_selector
        .as_ref()
        .ok_or_else(|| KvsError::invalid("ClipFragmentSelector is required."))?;
    let (kind, start, end) = selector_range(selector)?;
    if end <= start {
        return Err(KvsError::invalid(
            "EndTimestamp must be after StartTimestamp.",
        ));
    }
    if end - start > MAX_RANGE_MS {
        return Err(KvsError::invalid(
            "The range of a clip must be at most 24 hours.",
        ));
    }
    let rec = call.stream(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    require_retention(&rec)?;
    // Held until the client has taken the whole clip (the body owns it), or CLIP_HOLD.
    let permit = call
        .state
        .clips
        .acquire(&crate::heavy::budget_key(&call))
        .await?;
    let permit = std::sync::Arc::new(std::sync::Mutex::new(Some(permit)));
    tokio::spawn({
        let permit = permit.clone();
        async move {
            tokio::time::sleep(crate::heavy::CLIP_HOLD).await;
            permit.lock().unwrap_or_else(|p| p.into_inner()).take();
        }
    });
    let limits = call.state.playback.clip_limits;
    let state = call.state.clone();
    tokio::task::spawn_blocking(move || -> KvsResult<Response> {
        let store = &state.store;
        let metas = select(store, rec.id, kind, start, end, limits)?;
        let first = metas.first().ok_or_else(|| {
            KvsError::ResourceNotFoundException("No fragments found in the requested range.".into())
        })?;
        if metas.iter().any(|m| m.header_id != first.header_id) {
            return Err(KvsError::InvalidCodecPrivateDataException(
                "The codec private data or the tracks change within the requested range; \
                 ask for a range within one producer session."
                    .into(),
            ));
        }
        // First pass: the samples' times, sizes and places, a stored chunk at a time.
        let ((tracks, samples, sizes), order) = clip_scan(store, &metas)?;
        check_codecs(&tracks)?;
        let head = vigil_media::mp4::clip_head(&tracks, &samples, &sizes)?;
        let length = head.len() as u64 + sizes.iter().map(|&s| s as u64).sum::<u64>();
        // The second pass is the body: the frames, read again as the client takes them, the
        // permit kept until the last is sent (or the client goes): a client that does not
        // read keeps its place in the budget.
        let release = Box::new(move || {
            permit.lock().unwrap_or_else(|p| p.into_inner()).take();
        });
        let body = Streamed {
            content_type: "video/mp4",
            head,
            length: Some(length),
            tracks: tracks.iter().map(|t| t.number).collect(),
            metas,
            release: Some(release),
        };
        clip_body(&state, body, order)
    })
    .await
    .map_err(|e| KvsError::InternalFailure(format!("the clip task failed: {e}")))?
}

/// The fragments of a clip, in timestamp order, within the limits.
fn select(
    store: &vigil_store::Store,
    stream: u64,
    kind: TimestampKind,
    start: u64,
    end: u64,
    limits: ClipLimits,
) -> KvsResult<Vec<FragmentMeta>> {
    let mut out: Vec<FragmentMeta> = Vec::new();
    let mut bytes = 0u64;
    let mut cursor = None;
    loop {
        let page = store.list_fragments(stream, kind, start, end, cursor, 1000)?;
        for m in page.fragments {
            let ts = |m: &FragmentMeta| match kind {
                TimestampKind::Producer => m.producer_ts_ms,
                TimestampKind::Server => m.server_ts_ms,
            };
            if kind == TimestampKind::Producer
                && let Some(prev) = out.last_mut()
                && ts(prev) == ts(&m)
            {
                // The first ingested of equal producer timestamps wins.
                if m.number < prev.number {
                    bytes = bytes - u64::from(prev.size) + u64::from(m.size);
                    *prev = m;
                }
                continue;
            }
            if out.len() >= limits.max_fragments
                || bytes.saturating_add(u64::from(m.size)) > limits.max_bytes
            {
                return Ok(out);
            }
            bytes += u64::from(m.size);
            out.push(m);
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(out),
        }
    }
}

/// Track 1 video (H.264 or H.265); audio AAC, or G.711 with H.264 (§6.1).
fn check_codecs(tracks: &[vigil_media::sample::Track]) -> KvsResult<()> {
    let unsupported = |m: &str| Err(KvsError::UnsupportedStreamMediaTypeException(m.into()));
    let Some(first) = tracks.first() else {
        return unsupported("The stream has no video or audio track.");
    };
    let h264 = match first.codec {
        Codec::H264 { .. } => true,
        Codec::H265 { .. } => false,
        _ => return unsupported("GetClip needs H.264 or H.265 video in the first track."),
    };
    for t in tracks.iter().skip(1) {
        match t.codec {
            Codec::Aac { .. } => {}
            Codec::G711 { .. } if h264 => {}
            _ => {
                return unsupported(
                    "GetClip carries AAC audio (or G.711 with H.264) besides the video.",
                );
            }
        }
    }
    Ok(())
}
