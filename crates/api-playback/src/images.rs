//! GetImages (`../shared/spec/kvs-api.md` §4.6): still images decoded from the stored video.
//!
//! # Sampling
//!
//! The sample times run from StartTimestamp to EndTimestamp (inclusive) every
//! SamplingInterval ms (default 3000, the image generation default; at least 200), so a range
//! shorter than the interval gives the image at StartTimestamp alone. For each time `t`, the
//! fragment whose `[start, start + duration]` covers `t` (by the selector's timestamp; with
//! PRODUCER_TIMESTAMP equal timestamps keep the first ingested, as GetClip) gives the frame
//! presented at or just before `t` (its first frame if `t` falls before it); without one the
//! entry is `Error: NO_MEDIA`. With SERVER_TIMESTAMP, `t` maps to the fragment's frames by its
//! offset from the fragment's server timestamp.
//!
//! # Pictures
//!
//! Track 1 must be video. H.264 is decoded with OpenH264 ([`decode`]), from the first key frame
//! of the fragment up to the frame wanted, once per fragment for all its images. H.265 (no
//! decoder in the default build; a system decoder behind a cargo feature is future work),
//! other codecs and undecodable frames give `Error: MEDIA_ERROR`. OpenH264 decodes I/P-only
//! streams as ffmpeg does (48 dB against ffmpeg's RGB, the difference being the YUV to RGB
//! rounding), but its B-slice decoding is not bit-exact (cisco/openh264#3269): images of
//! B-frames may differ slightly (33–48 dB in the tests). WidthPixels and HeightPixels: both stretch, one keeps the aspect
//! ratio, neither keeps the native size. JPEG quality comes from
//! `FormatConfig {"JPEGQuality": "1".."100"}` (default 80).
//!
//! # Pages
//!
//! A page holds min(MaxResults, 25) images (MaxResults defaults to 25), and at most 100 MB of
//! image content (KVS's limit per request): a page that would hold more ends early, its
//! `NextToken` pointing at the first image left out. `NextToken` is base64 of a small JSON
//! object naming the stream and the next sample time; the follow-up request repeats the other
//! fields.

pub use vigil_video::decode;

use std::collections::BTreeMap;

use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use vigil_media::codec::Codec;
use vigil_media::sample::Sample;
use vigil_store::{FragmentMeta, Store, TimestampKind};

use crate::archived::require_retention;
use crate::service::Call;
use decode::{AvcConfig, Rgb};
use vigil_api_kvs_common::json as ok;
use vigil_api_kvs_common::model::EpochMs;
use vigil_api_kvs_common::{KvsError, KvsResult};

/// The longest range of sample times.
const MAX_RANGE_MS: u64 = 300_000;
/// The shortest sampling interval.
const MIN_INTERVAL_MS: u64 = 200;
/// The sampling interval when none is given.
const DEFAULT_INTERVAL_MS: u64 = 3000;
/// The most images on one page.
const PAGE_MAX: usize = 25;
/// The longest fragment ingest accepts (`ingest::MAX_FRAGMENT_DURATION_NS`): how far before a
/// sample time a fragment covering it may start.
const LOOKBACK_MS: u64 = 20_000;
/// The most image content (base64 characters) in one response: KVS's 100 MB per request.
const MAX_PAGE_BYTES: usize = 100_000_000;
/// The longest `ImageContent` KVS returns, in base64 characters.
const MAX_IMAGE_CHARS: usize = 6_291_456;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetImagesInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    image_selector_type: Option<String>,
    start_timestamp: Option<EpochMs>,
    end_timestamp: Option<EpochMs>,
    sampling_interval: Option<i64>,
    format: Option<String>,
    format_config: Option<BTreeMap<String, String>>,
    width_pixels: Option<i64>,
    height_pixels: Option<i64>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct GetImagesOutput {
    images: Vec<Image>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

/// One entry of `Images`.
#[derive(Debug, Serialize)]
struct Image {
    #[serde(rename = "TimeStamp")]
    time_stamp: EpochMs,
    #[serde(rename = "Error", skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
    #[serde(rename = "ImageContent", skip_serializing_if = "Option::is_none")]
    image_content: Option<String>,
}

/// What a `NextToken` carries.
#[derive(Debug, Serialize, Deserialize)]
struct ImagesToken {
    /// Stream id.
    s: u64,
    /// The next sample time (ms).
    t: u64,
}

/// The image format. Public for the benchmark (`benches/images.rs`), as are [`Size`] and
/// [`pictures`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JPEG at `quality` (1–100).
    Jpeg {
        /// JPEGQuality.
        quality: u8,
    },
    /// PNG.
    Png,
}

/// The requested output size (WidthPixels, HeightPixels); neither keeps the native size.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    /// WidthPixels.
    pub width: Option<usize>,
    /// HeightPixels.
    pub height: Option<usize>,
}

impl Size {
    fn for_native(self, w: usize, h: usize) -> (usize, usize) {
        let scale = |n: usize, num: usize, den: usize| {
            if den == 0 {
                1
            } else {
                ((n as u64 * num as u64 + den as u64 / 2) / den as u64).max(1) as usize
            }
        };
        match (self.width, self.height) {
            (Some(x), Some(y)) => (x, y),
            (Some(x), None) => (x, scale(h, x, w)),
            (None, Some(y)) => (scale(w, y, h), y),
            (None, None) => (w, h),
        }
    }
}

fn in_range(name: &str, v: Option<i64>, lo: i64, hi: i64) -> KvsResult<Option<usize>> {
    match v {
        None => Ok(None),
        Some(x) if (lo..=hi).contains(&x) => Ok(usize::try_from(x).ok()),
        Some(x) => Err(KvsError::invalid(format!(
            "{name} must be between {lo} and {hi}, not {x}."
        ))),
    }
}

/// GetImages: see the module docs.
pub async fn get_images(call: Call) -> KvsResult<Response> {
    let input: GetImagesInput = call.input()?;
    let kind = match input.image_selector_type.as_deref() {
        Some("PRODUCER_TIMESTAMP") => TimestampKind::Producer,
        Some("SERVER_TIMESTAMP") => TimestampKind::Server,
        Some(other) => {
            return Err(KvsError::invalid(format!(
                "ImageSelectorType {other:?} must be PRODUCER_TIMESTAMP or SERVER_TIMESTAMP."
            )));
        }
        None => return Err(KvsError::invalid("ImageSelectorType is required.")),
    };
    let (Some(EpochMs(start)), Some(EpochMs(end))) = (input.start_timestamp, input.end_timestamp)
    else {
        return Err(KvsError::invalid(
            "StartTimestamp and EndTimestamp are required.",
        ));
    };
    if end < start {
        return Err(KvsError::invalid(
            "EndTimestamp must not be before StartTimestamp.",
        ));
    }
    if end - start > MAX_RANGE_MS {
        return Err(KvsError::invalid(
            "The range of GetImages must be at most 300 seconds.",
        ));
    }
    let interval = match input.sampling_interval {
        None => DEFAULT_INTERVAL_MS,
        Some(v) => u64::try_from(v)
            .ok()
            .filter(|v| *v >= MIN_INTERVAL_MS)
            .ok_or_else(|| {
                KvsError::invalid(format!(
                    "SamplingInterval must be at least {MIN_INTERVAL_MS} ms, not {v}."
                ))
            })?,
    };
    let format = match input.format.as_deref() {
        Some("JPEG") => Format::Jpeg {
            quality: jpeg_quality(input.format_config.as_ref())?,
        },
        Some("PNG") => {
            if let Some(cfg) = &input.format_config {
                jpeg_quality(Some(cfg))?;
            }
            Format::Png
        }
        Some(other) => {
            return Err(KvsError::invalid(format!(
                "Format {other:?} must be JPEG or PNG."
            )));
        }
        None => return Err(KvsError::invalid("Format is required.")),
    };
    let size = Size {
        width: in_range("WidthPixels", input.width_pixels, 1, 3840)?,
        height: in_range("HeightPixels", input.height_pixels, 1, 2160)?,
    };
    let page = in_range("MaxResults", input.max_results, 1, 100)?
        .unwrap_or(PAGE_MAX)
        .min(PAGE_MAX);
    let rec = call.stream(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    require_retention(&rec)?;
    // Held while the page is made (decoding is the cost; a page is at most 100 MB of JSON).
    let _permit = call
        .state
        .images
        .acquire(&crate::heavy::budget_key(&call))
        .await?;
    let first = match input.next_token.as_deref() {
        None => start,
        Some(token) => {
            let t: ImagesToken = crate::archived::open_token(&call, "GetImages", token)?;
            if t.s != rec.id {
                return Err(KvsError::invalid(
                    "NextToken was issued for another stream.",
                ));
            }
            if t.t < start || t.t > end || !(t.t - start).is_multiple_of(interval) {
                return Err(KvsError::invalid(
                    "NextToken does not belong to this request's range and interval.",
                ));
            }
            t.t
        }
    };
    // The sample times of this page, and the next one's first.
    let mut times = Vec::with_capacity(page);
    let mut t = first;
    while t <= end && times.len() < page {
        times.push(t);
        t = t.saturating_add(interval);
        if t == u64::MAX {
            break;
        }
    }
    let next_token = (t <= end && times.len() == page && t != u64::MAX)
        .then(|| crate::archived::seal_token(&call, "GetImages", &ImagesToken { s: rec.id, t }));
    let store = call.state.store.clone();
    let page_times = times.clone();
    let images =
        tokio::task::spawn_blocking(move || images(&store, rec.id, kind, &times, format, size))
            .await
            .map_err(|e| KvsError::InternalFailure(format!("the images task failed: {e}")))??;
    let (images, cut_at) = limit_page(images, &page_times, MAX_PAGE_BYTES);
    let next_token = match cut_at {
        Some(t) => Some(crate::archived::seal_token(
            &call,
            "GetImages",
            &ImagesToken { s: rec.id, t },
        )),
        None => next_token,
    };
    Ok(ok(&GetImagesOutput { images, next_token }))
}

/// Keeps a page's images within `max_bytes` of image content (KVS's 100 MB per request): the
/// images from the first one over the limit on are left for the next page, whose first sample
/// time is returned. A page keeps at least one image.
fn limit_page(
    mut images: Vec<Image>,
    times: &[u64],
    max_bytes: usize,
) -> (Vec<Image>, Option<u64>) {
    let mut total = 0usize;
    for (i, image) in images.iter().enumerate() {
        total = total.saturating_add(image.image_content.as_ref().map_or(0, String::len));
        if total > max_bytes && i > 0 {
            let next = times.get(i).copied();
            images.truncate(i);
            return (images, next);
        }
    }
    (images, None)
}

fn jpeg_quality(cfg: Option<&BTreeMap<String, String>>) -> KvsResult<u8> {
    let Some(cfg) = cfg else { return Ok(80) };
    if cfg.len() != 1 {
        return Err(KvsError::invalid(
            "FormatConfig must hold one entry, JPEGQuality.",
        ));
    }
    let mut quality = 80;
    for (k, v) in cfg {
        if k != "JPEGQuality" {
            return Err(KvsError::invalid(format!(
                "FormatConfig key {k:?} is not JPEGQuality."
            )));
        }
        quality = v
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|q| (1..=100).contains(q))
            .ok_or_else(|| KvsError::invalid("JPEGQuality must be a number from 1 to 100."))?;
    }
    Ok(quality)
}

/// The fragments that may cover `times` (sorted): those starting from LOOKBACK before the
/// first to the last, in timestamp order, deduplicated as GetClip does.
fn fragments(
    store: &Store,
    stream: u64,
    kind: TimestampKind,
    times: &[u64],
) -> KvsResult<Vec<FragmentMeta>> {
    let (Some(&lo), Some(&hi)) = (times.first(), times.last()) else {
        return Ok(Vec::new());
    };
    let mut out: Vec<FragmentMeta> = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.list_fragments(
            stream,
            kind,
            lo.saturating_sub(LOOKBACK_MS),
            hi,
            cursor,
            1000,
        )?;
        for m in page.fragments {
            if kind == TimestampKind::Producer
                && let Some(prev) = out.last_mut()
                && prev.producer_ts_ms == m.producer_ts_ms
            {
                if m.number < prev.number {
                    *prev = m;
                }
                continue;
            }
            out.push(m);
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(out),
        }
    }
}

fn fragment_ts(m: &FragmentMeta, kind: TimestampKind) -> u64 {
    match kind {
        TimestampKind::Producer => m.producer_ts_ms,
        TimestampKind::Server => m.server_ts_ms,
    }
}

/// The images for `times`, in order.
fn images(
    store: &Store,
    stream: u64,
    kind: TimestampKind,
    times: &[u64],
    format: Format,
    size: Size,
) -> KvsResult<Vec<Image>> {
    let metas = fragments(store, stream, kind, times)?;
    // Per sample time: the covering fragment (the latest starting at or before it).
    let mut by_fragment: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let mut out: Vec<Image> = times
        .iter()
        .map(|&t| Image {
            time_stamp: EpochMs(t),
            error: Some("NO_MEDIA"),
            image_content: None,
        })
        .collect();
    for (i, &t) in times.iter().enumerate() {
        let covering = metas.iter().enumerate().rev().find(|(_, m)| {
            let s = fragment_ts(m, kind);
            s <= t && t <= s.saturating_add(u64::from(m.duration_ms))
        });
        if let Some((f, _)) = covering {
            by_fragment.entry(f).or_default().push(i);
        }
    }
    let mut headers: BTreeMap<u64, Bytes> = BTreeMap::new();
    for (f, wanted) in by_fragment {
        let Some(meta) = metas.get(f) else { continue };
        let header = match headers.get(&meta.header_id) {
            Some(h) => h.clone(),
            None => {
                let h = store.header(stream, meta.header_id)?;
                headers.insert(meta.header_id, h.clone());
                h
            }
        };
        let payload = store.read_meta(meta)?.payload;
        // Producer times (ms) of the wanted images.
        let producer_times: Vec<u64> = wanted
            .iter()
            .filter_map(|&i| times.get(i))
            .map(|&t| {
                t.saturating_sub(fragment_ts(meta, kind))
                    .saturating_add(meta.producer_ts_ms)
            })
            .collect();
        let pictures = pictures(&header, payload, &producer_times, format, size);
        for (&i, picture) in wanted.iter().zip(pictures) {
            if let Some(slot) = out.get_mut(i) {
                match picture {
                    Some(content) => {
                        slot.error = None;
                        slot.image_content = Some(content);
                    }
                    None => slot.error = Some("MEDIA_ERROR"),
                }
            }
        }
    }
    Ok(out)
}

/// The encoded images (base64) of one fragment at `producer_times` (ms); `None` where the
/// frame could not be made (MEDIA_ERROR). What GetImages does per fragment once it has read
/// the fragment's header and payload from the store; public for the benchmark.
pub fn pictures(
    header: &[u8],
    payload: Bytes,
    producer_times: &[u64],
    format: Format,
    size: Size,
) -> Vec<Option<String>> {
    let fail = || vec![None; producer_times.len()];
    let Ok((tracks, samples)) = vigil_media::sample::from_fragments(header, &[payload]) else {
        return fail();
    };
    let Some(track) = tracks.first() else {
        return fail();
    };
    let (config, decoder) = match &track.codec {
        Codec::H264 { avcc, .. } => match AvcConfig::parse(avcc) {
            Ok(c) => (c, Decoder::H264),
            Err(_) => return fail(),
        },
        #[cfg(feature = "ffmpeg")]
        Codec::H265 { hvcc, .. } => match decode::HvcConfig::parse(hvcc) {
            Ok(c) => (c.as_avc(), Decoder::H265),
            Err(_) => return fail(),
        },
        // H.265 needs the `ffmpeg` feature; audio or other codecs are the wrong media.
        _ => return fail(),
    };
    let video: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.track == track.number)
        .skip_while(|s| !s.keyframe)
        .collect();
    if video.is_empty() {
        return fail();
    }
    let timescale = i128::from(track.timescale);
    let wanted: Vec<usize> = producer_times
        .iter()
        .map(|&ms| {
            let ticks = i64::try_from(i128::from(ms) * timescale / 1000).unwrap_or(i64::MAX);
            presentation_index(&video, ticks)
        })
        .collect();
    let data: Vec<(&[u8], bool)> = video
        .iter()
        .map(|s| (s.data.as_ref(), s.keyframe))
        .collect();
    let Ok(frames) = decoder.decode(&config, &data, &wanted) else {
        return fail();
    };
    frames
        .into_iter()
        .map(|f| f.and_then(|rgb| encode(&rgb, format, size)))
        .collect()
}

/// The decoder of a picture: OpenH264 for H.264 in the default build; with the `ffmpeg`
/// feature, libavcodec for H.264 (faster) and H.265.
#[derive(Debug, Clone, Copy)]
enum Decoder {
    H264,
    #[cfg(feature = "ffmpeg")]
    H265,
}

impl Decoder {
    fn decode(
        self,
        config: &AvcConfig,
        samples: &[(&[u8], bool)],
        wanted: &[usize],
    ) -> Result<Vec<Option<decode::Rgb>>, decode::PixelError> {
        match self {
            #[cfg(not(feature = "ffmpeg"))]
            Decoder::H264 => decode::decode_h264(config, samples, wanted),
            #[cfg(feature = "ffmpeg")]
            Decoder::H264 => {
                decode::libav::decode(decode::libav::Kind::H264, config, samples, wanted)
            }
            #[cfg(feature = "ffmpeg")]
            Decoder::H265 => {
                decode::libav::decode(decode::libav::Kind::H265, config, samples, wanted)
            }
        }
    }
}

/// Where the frame shown at `ticks` comes out of the decoder: its index in presentation
/// order from the first key frame. Pictures come out GOP by GOP (in decode order of the key
/// frames), each GOP in presentation order.
fn presentation_index(video: &[&Sample], ticks: i64) -> usize {
    // The frame presented at or just before `ticks`, else the first presented.
    let target = video
        .iter()
        .enumerate()
        .filter(|(_, s)| s.pts <= ticks)
        .max_by_key(|(i, s)| (s.pts, std::cmp::Reverse(*i)))
        .or_else(|| video.iter().enumerate().min_by_key(|(_, s)| s.pts));
    let Some((ti, target)) = target else { return 0 };
    let gop_start = video
        .iter()
        .take(ti + 1)
        .rposition(|s| s.keyframe)
        .unwrap_or(0);
    let gop_end = video
        .iter()
        .skip(gop_start + 1)
        .position(|s| s.keyframe)
        .map_or(video.len(), |p| gop_start + 1 + p);
    let before = video
        .get(gop_start..gop_end)
        .unwrap_or_default()
        .iter()
        .filter(|s| s.pts < target.pts)
        .count();
    gop_start + before
}

fn encode(rgb: &Rgb, format: Format, size: Size) -> Option<String> {
    let (w, h) = size.for_native(rgb.width, rgb.height);
    let resized;
    let pic = if (w, h) == (rgb.width, rgb.height) {
        rgb
    } else {
        resized = decode::resize(rgb, w, h);
        &resized
    };
    let bytes = match format {
        Format::Jpeg { quality } => decode::jpeg(pic, quality).ok()?,
        Format::Png => decode::png(pic).ok()?,
    };
    let b64 = BASE64.encode(bytes);
    (b64.len() <= MAX_IMAGE_CHARS).then_some(b64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_stop_at_the_byte_limit() {
        let image = |t: u64, len: usize| Image {
            time_stamp: EpochMs(t),
            error: if len == 0 { Some("NO_MEDIA") } else { None },
            image_content: (len > 0).then(|| "A".repeat(len)),
        };
        let times = [1000, 2000, 3000, 4000];
        let page = || {
            vec![
                image(1000, 40),
                image(2000, 0),
                image(3000, 40),
                image(4000, 40),
            ]
        };
        // Everything fits.
        let (kept, next) = limit_page(page(), &times, 120);
        assert_eq!((kept.len(), next), (4, None));
        // The fourth image goes over 100 bytes: it moves to the next page.
        let (kept, next) = limit_page(page(), &times, 100);
        assert_eq!((kept.len(), next), (3, Some(4000)));
        // The third goes over 70: it and the fourth move.
        let (kept, next) = limit_page(page(), &times, 70);
        assert_eq!((kept.len(), next), (2, Some(3000)));
        // A first image over the limit on its own is still sent, alone.
        let (kept, next) = limit_page(page(), &times, 10);
        assert_eq!((kept.len(), next), (1, Some(2000)));
    }

    #[test]
    fn sizes() {
        let s = |w, h| Size {
            width: w,
            height: h,
        };
        assert_eq!(s(None, None).for_native(320, 240), (320, 240));
        assert_eq!(s(Some(160), None).for_native(320, 240), (160, 120));
        assert_eq!(s(None, Some(60)).for_native(320, 240), (80, 60));
        assert_eq!(s(Some(100), Some(100)).for_native(320, 240), (100, 100));
        assert_eq!(s(Some(1), None).for_native(320, 240), (1, 1));
    }
}
