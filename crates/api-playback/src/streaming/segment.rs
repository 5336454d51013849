//! HLS and DASH media segments streamed from the store in bounded memory.
//!
//! A segment is one fragment repackaged (fMP4 `moof`+`mdat` of one track, or MPEG-TS of all
//! of them). Built whole, each response held the fragment and its segment (up to twice 50 MB)
//! until the client took it. Here it takes two passes over the stored fragment, each a stored
//! chunk (64 KiB) at a time ([`vigil_store::FragmentReader`]):
//!
//! 1. on the request's blocking thread, the fragment is demuxed for the samples' times and
//!    sizes only ([`package_times`]), and the segment's head is laid out from them: fMP4's
//!    `styp`, `moof` and `mdat` header, or TS's PAT and PMT. Anything wrong with the fragment
//!    (codec, structure) is an error answer here, before the 200.
//! 2. the body reads the fragment again, a chunk each time the client has taken what came
//!    before, and writes the frames: fMP4's `mdat` is the track's frames in stream order; TS
//!    interleaves tracks by decode time, so a frame that comes ahead of its turn waits (a few
//!    frames at most, as Matroska interleaves by time).
//!
//! A response holds one chunk and the frames it completes, whatever the fragment's size. If
//! the second pass does not find what the first did (a fragment damaged between the two, or
//! expired by retention mid-body), the body ends with an error, so that the client sees a cut
//! connection rather than a wrong segment.

use std::collections::{BTreeMap, VecDeque};

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use vigil_media::sample::{Frames, Sample, Scanner, Track};
use vigil_media::ts::{Continuity, SegmentWriter};
use vigil_store::{FragmentMeta, FragmentReader, Store};

use crate::service::PlaybackState;
use vigil_api_kvs_common::KvsResult;

use super::hls::{Handler, pick_track, respond, serve};
use super::session::Protocol;
use crate::heavy::HeavyPermit;

/// Serves a media segment GET (HLS fMP4 or TS, DASH) within the playback segments' budget
/// ([`crate::heavy::segment_limits`]): the GETs carry no signature, so the caller is its client
/// address. The permit is held by the response's body until it is sent or dropped.
pub(crate) async fn serve_segment(
    state: std::sync::Arc<PlaybackState>,
    uri: axum::http::Uri,
    peer: Option<axum::Extension<vigil_api_common::config::PeerAddr>>,
    protocol: Protocol,
    handler: Handler,
) -> Response {
    let key = peer.map_or_else(|| "anonymous".to_owned(), |p| p.0.0.ip().to_string());
    let permit = match state.segments.acquire(&key).await {
        Ok(p) => p,
        Err(e) => return respond(Err(e)),
    };
    let response = serve(state, uri, protocol, handler).await;
    let (parts, body) = response.into_parts();
    Response::from_parts(
        parts,
        Body::new(Held {
            inner: body,
            _permit: permit,
        }),
    )
}

/// A body that holds a budget's permit until it is done.
struct Held {
    inner: Body,
    _permit: HeavyPermit,
}

impl http_body::Body for Held {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The tracks of a fragment and its samples' times, without their bytes (`data` is empty),
/// and each sample's size: one pass over the stored fragment, a chunk at a time. Blocking.
pub(crate) fn package_times(
    state: &PlaybackState,
    m: &FragmentMeta,
) -> KvsResult<(Vec<Track>, Vec<Sample>, Vec<usize>)> {
    let header = state.store.header(m.stream, m.header_id)?;
    let mut reader = state.store.open_fragment(m)?;
    let mut scan = Scanner::new(false);
    scan.push(&header)?;
    while let Some(chunk) = reader.next_chunk()? {
        scan.push(&chunk)?;
    }
    Ok(scan.finish(true)?)
}

/// As [`package_times`] over several fragments of one track header (in order), with where
/// each sample's bytes lie: (fragment index, offset in its payload), where the scanner could
/// place them (`vigil_media::sample::Scanner::locating`). Blocking.
#[allow(clippy::type_complexity)]
fn package_located(
    store: &Store,
    metas: &[FragmentMeta],
) -> KvsResult<(
    Vec<Track>,
    Vec<Sample>,
    Vec<usize>,
    Option<Vec<(usize, u64)>>,
)> {
    let first = metas
        .first()
        .ok_or_else(|| vigil_api_kvs_common::KvsError::InternalFailure("no fragments".into()))?;
    let header = store.header(first.stream, first.header_id)?;
    let mut scan = Scanner::locating();
    scan.push(&header)?;
    // Where each fragment's payload starts in the scanned input.
    let mut bases = Vec::with_capacity(metas.len());
    let mut base = header.len() as u64;
    for m in metas {
        bases.push(base);
        base += u64::from(m.size);
        let mut reader = store.open_fragment(m)?;
        while let Some(chunk) = reader.next_chunk()? {
            scan.push(&chunk)?;
        }
    }
    let (tracks, samples, sizes, locations) = scan.finish_located(true)?;
    let located = locations
        .iter()
        .map(|at| {
            let at = (*at)?;
            let k = bases.iter().rposition(|&b| b <= at)?;
            Some((k, at - bases.get(k)?))
        })
        .collect::<Option<Vec<_>>>();
    Ok((tracks, samples, sizes, located))
}

/// `moof`+`mdat` of one fragment's track (1-based position in the track header), streamed.
pub(crate) fn mp4_segment(
    state: &PlaybackState,
    meta: &FragmentMeta,
    track: usize,
) -> KvsResult<Response> {
    let (tracks, samples, sizes, located) =
        package_located(&state.store, std::slice::from_ref(meta))?;
    let t = pick_track(&tracks, track)?.clone();
    let mut own = Vec::new();
    let mut own_sizes = Vec::new();
    let mut ranges = VecDeque::new();
    for (i, (sample, size)) in samples.into_iter().zip(sizes).enumerate() {
        if sample.track == t.number {
            if let Some(at) = located.as_ref().and_then(|l| l.get(i)) {
                ranges.push_back((at.0, at.1, size));
            }
            own.push(sample);
            own_sizes.push(size);
        }
    }
    let sequence = u32::try_from(meta.number % (1 << 32)).unwrap_or(1).max(1);
    let head = vigil_media::fmp4::media_segment_head(
        sequence,
        std::slice::from_ref(&t),
        &own,
        &own_sizes,
    )?;
    let order = if located.is_some() {
        Order::Ranges {
            ranges,
            readers: Vec::new(),
        }
    } else {
        Order::Mp4 {
            sizes: own_sizes.into(),
        }
    };
    streamed(state, meta, "video/mp4", head, vec![t.number], order)
}

/// A TS segment of one fragment (every track), streamed.
pub(crate) fn ts_segment(state: &PlaybackState, meta: &FragmentMeta) -> KvsResult<Response> {
    let (tracks, samples, sizes) = package_times(state, meta)?;
    let numbers = tracks.iter().map(|t| t.number).collect();
    let writer = SegmentWriter::new(tracks, samples)?;
    let mut continuity = Continuity::new();
    let mut head = Vec::new();
    writer.start(&mut head, &mut continuity)?;
    let order = Order::Ts {
        position: 0,
        writer: Box::new(writer),
        continuity: Box::new(continuity),
        sizes,
        waiting: BTreeMap::new(),
    };
    streamed(state, meta, "video/mp2t", Bytes::from(head), numbers, order)
}

/// The most bytes in one piece of a body.
const PIECE: usize = 64 * 1024;

/// How the second pass turns frames into the body.
#[derive(Debug)]
enum Order {
    /// The frames as they come (one track), each the size the first pass saw.
    Mp4 { sizes: VecDeque<usize> },
    /// The frames read by range where the first pass found them, without demuxing: a piece
    /// at a time, so that memory is one piece whatever the frames' sizes.
    Ranges {
        /// (fragment index, offset in its payload, length) of each frame still to send.
        ranges: VecDeque<(usize, u64, usize)>,
        /// Each fragment's reader once opened.
        readers: Vec<Option<FragmentReader>>,
    },
    /// The frames in the writer's order.
    Ts {
        /// The next place in `writer.order()`.
        position: usize,
        writer: Box<SegmentWriter>,
        continuity: Box<Continuity>,
        sizes: Vec<usize>,
        /// Frames that came ahead of their turn, by sample index.
        waiting: BTreeMap<usize, Bytes>,
    },
}

impl Order {
    /// Takes frame `index` (stream order) and appends what can be written to `out`.
    fn frame(
        &mut self,
        index: usize,
        data: Bytes,
        out: &mut VecDeque<Bytes>,
    ) -> Result<(), String> {
        match self {
            Self::Ranges { .. } => return Err(format!("frame {index} came to a ranged body")),
            Self::Mp4 { sizes } => {
                if sizes.pop_front() != Some(data.len()) {
                    return Err(format!("frame {index} differs from the first pass"));
                }
                // Copied out in pieces: a frame's bytes share the demuxer's buffer, which
                // they would otherwise keep whole while the client is slow.
                for piece in data.chunks(PIECE) {
                    out.push_back(Bytes::copy_from_slice(piece));
                }
            }
            Self::Ts {
                position,
                writer,
                continuity,
                sizes,
                waiting,
            } => {
                if sizes.get(index) != Some(&data.len()) {
                    return Err(format!("frame {index} differs from the first pass"));
                }
                waiting.insert(index, data);
                let mut buf = Vec::new();
                while let Some(&next) = writer.order().get(*position)
                    && let Some(data) = waiting.remove(&next)
                {
                    writer
                        .write(&mut buf, next, &data, continuity)
                        .map_err(|e| e.to_string())?;
                    *position += 1;
                }
                for piece in buf.chunks(PIECE) {
                    out.push_back(Bytes::copy_from_slice(piece));
                }
            }
        }
        Ok(())
    }

    /// Whether every frame was written.
    fn complete(&self) -> bool {
        match self {
            Self::Mp4 { sizes } => sizes.is_empty(),
            Self::Ranges { ranges, .. } => ranges.is_empty(),
            Self::Ts {
                position, writer, ..
            } => *position == writer.order().len(),
        }
    }
}

/// The second pass, as the body's state.
struct Pass {
    store: Store,
    /// The fragments still to read, in order.
    metas: VecDeque<FragmentMeta>,
    header: Option<Bytes>,
    /// The fragment being read.
    reader: Option<FragmentReader>,
    frames: Frames,
    /// Frames seen so far (their index in stream order).
    seen: usize,
    order: Order,
    out: VecDeque<Bytes>,
    done: bool,
    /// Run once the body is complete or dropped (a heavy-read permit's release).
    release: Option<Box<dyn FnOnce() + Send>>,
}

impl std::fmt::Debug for Pass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pass")
            .field("metas", &self.metas.len())
            .field("seen", &self.seen)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release();
        }
    }
}

/// What a streamed body is made of: the fragments it reads (one track header), its head, the
/// tracks whose frames go into it and how.
pub(crate) struct Streamed {
    pub(crate) content_type: &'static str,
    pub(crate) head: Bytes,
    /// The whole body's length, where it is known before the frames are read.
    pub(crate) length: Option<u64>,
    pub(crate) tracks: Vec<u64>,
    pub(crate) metas: Vec<FragmentMeta>,
    pub(crate) release: Option<Box<dyn FnOnce() + Send>>,
}

fn streamed(
    state: &PlaybackState,
    meta: &FragmentMeta,
    content_type: &'static str,
    head: Bytes,
    tracks: Vec<u64>,
    order: Order,
) -> KvsResult<Response> {
    let length = match &order {
        Order::Mp4 { sizes } => Some(head.len() as u64 + sizes.iter().sum::<usize>() as u64),
        Order::Ranges { ranges, .. } => {
            Some(head.len() as u64 + ranges.iter().map(|r| r.2 as u64).sum::<u64>())
        }
        Order::Ts { .. } => None,
    };
    let s = Streamed {
        content_type,
        head,
        length,
        tracks,
        metas: vec![*meta],
        release: None,
    };
    streamed_body(state, s, order)
}

/// The first pass of a clip over `metas`: its tracks, samples and sizes, and how the second
/// pass is to fetch them ([`clip_body`]). Blocking.
pub(crate) fn clip_scan(store: &Store, metas: &[FragmentMeta]) -> KvsResult<(Scanned, ClipOrder)> {
    let (tracks, samples, sizes, located) = package_located(store, metas)?;
    let order = match located {
        Some(at) => Order::Ranges {
            ranges: at
                .into_iter()
                .zip(&sizes)
                .map(|((k, off), &len)| (k, off, len))
                .collect(),
            readers: Vec::new(),
        },
        None => Order::Mp4 {
            sizes: sizes.clone().into(),
        },
    };
    Ok(((tracks, samples, sizes), ClipOrder(order)))
}

/// Tracks, samples without their bytes, and each sample's size.
pub(crate) type Scanned = (Vec<Track>, Vec<Sample>, Vec<usize>);

/// How a clip's second pass fetches its samples (from [`clip_scan`]).
#[derive(Debug)]
pub(crate) struct ClipOrder(Order);

/// A clip's body (`vigil_media::mp4::clip_head` then every sample's bytes in stream order),
/// streamed from `s.metas` in turn.
pub(crate) fn clip_body(
    state: &PlaybackState,
    s: Streamed,
    order: ClipOrder,
) -> KvsResult<Response> {
    streamed_body(state, s, order.0)
}

fn streamed_body(state: &PlaybackState, s: Streamed, order: Order) -> KvsResult<Response> {
    let first = s
        .metas
        .first()
        .ok_or_else(|| vigil_api_kvs_common::KvsError::InternalFailure("no fragments".into()))?;
    let header = state.store.header(first.stream, first.header_id)?;
    let pass = Pass {
        store: state.store.clone(),
        metas: s.metas.into(),
        header: Some(header),
        reader: None,
        frames: Frames::new(s.tracks),
        seen: 0,
        order,
        out: VecDeque::from([s.head]),
        done: false,
        release: s.release,
    };
    let body = futures_util::stream::unfold(pass, |mut p| async move {
        loop {
            if let Some(b) = p.out.pop_front() {
                return Some((Ok::<_, std::io::Error>(b), p));
            }
            if p.done {
                if let Some(release) = p.release.take() {
                    release();
                }
                return None;
            }
            if let Err(e) = p.step().await {
                tracing::error!("playback body cut short: {e}");
                p.done = true;
                return Some((Err(std::io::Error::other(e)), p));
            }
        }
    });
    let mut response = (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(s.content_type),
        )],
        Body::from_stream(body),
    )
        .into_response();
    if let Some(len) = s.length {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    Ok(response)
}

impl Pass {
    /// Reads the next chunk (opening the next fragment first) and turns it into body bytes.
    async fn step(&mut self) -> Result<(), String> {
        if matches!(self.order, Order::Ranges { .. }) {
            return self.step_ranges().await;
        }
        let mut frames = Vec::new();
        if let Some(h) = self.header.take() {
            self.frames
                .push(Some(&h), &mut frames)
                .map_err(|e| e.to_string())?;
        }
        let reader = match self.reader.take() {
            Some(r) => Some(r),
            None => match self.metas.pop_front() {
                Some(meta) => {
                    let store = self.store.clone();
                    let opened = tokio::task::spawn_blocking(move || store.open_fragment(&meta))
                        .await
                        .map_err(|e| format!("reader task: {e}"))?;
                    Some(opened.map_err(|e| format!("fragment {}: {e}", meta.number))?)
                }
                None => None,
            },
        };
        let chunk = match reader {
            Some(mut reader) => {
                let (reader, chunk) = tokio::task::spawn_blocking(move || {
                    let chunk = reader.next_chunk();
                    (reader, chunk)
                })
                .await
                .map_err(|e| format!("reader task: {e}"))?;
                let number = reader.meta().number;
                let chunk = chunk.map_err(|e| format!("fragment {number}: {e}"))?;
                if chunk.is_some() {
                    self.reader = Some(reader);
                }
                Some(chunk)
            }
            None => None,
        };
        match &chunk {
            // A chunk, or the end of one fragment (the next one continues the stream).
            Some(Some(c)) => self.frames.push(Some(c), &mut frames),
            Some(None) => Ok(()),
            // The end of the last one.
            None => self.frames.push(None, &mut frames),
        }
        .map_err(|e| e.to_string())?;
        for (_, data) in frames {
            self.order.frame(self.seen, data, &mut self.out)?;
            self.seen += 1;
        }
        if chunk.is_none() {
            if !self.order.complete() {
                return Err("the fragments ended before their last frame".into());
            }
            self.done = true;
        }
        Ok(())
    }

    /// The next piece of the next frame, read by range.
    async fn step_ranges(&mut self) -> Result<(), String> {
        let Order::Ranges { ranges, readers } = &mut self.order else {
            return Err("not a ranged body".into());
        };
        let Some(&(k, at, len)) = ranges.front() else {
            self.done = true;
            return Ok(());
        };
        let take = len.min(PIECE);
        if readers.len() <= k {
            readers.resize_with(k + 1, || None);
        }
        let reader = readers.get_mut(k).and_then(Option::take);
        let meta = *self
            .metas
            .get(k)
            .ok_or_else(|| format!("no fragment {k}"))?;
        let store = self.store.clone();
        let (reader, piece) = tokio::task::spawn_blocking(move || {
            let mut reader = match reader {
                Some(r) => r,
                None => match store.open_fragment(&meta) {
                    Ok(r) => r,
                    Err(e) => return (None, Err(e)),
                },
            };
            let piece = reader.read_range(at, take);
            (Some(reader), piece)
        })
        .await
        .map_err(|e| format!("reader task: {e}"))?;
        let piece = piece.map_err(|e| format!("fragment {}: {e}", meta.number))?;
        if piece.len() != take {
            return Err(format!(
                "fragment {}: a frame runs past its end",
                meta.number
            ));
        }
        if let Some(slot) = readers.get_mut(k) {
            *slot = reader;
        }
        // A fragment's reader is dropped once its last frame is sent.
        match ranges.front_mut() {
            Some(front) if front.2 > take => {
                front.1 += take as u64;
                front.2 -= take;
            }
            _ => {
                ranges.pop_front();
                if ranges.front().is_none_or(|r| r.0 != k)
                    && let Some(slot) = readers.get_mut(k)
                {
                    *slot = None;
                }
            }
        }
        self.out.push_back(piece);
        if ranges.is_empty() {
            self.done = true;
        }
        Ok(())
    }
}
