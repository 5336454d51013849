//! The sans-IO streaming demuxer.
//!
//! Feed bytes with [`Demuxer::push`] in any chunking, take [`Event`]s with [`Demuxer::pull`]
//! until it returns `None` (it needs more bytes), and call [`Demuxer::finish`] at the end of the
//! input so that unknown-size elements still open are closed. The same bytes give the same
//! events whatever the chunking: every decision depends on the bytes alone, and the demuxer
//! waits (returns `None`) rather than guess when an element is not complete.
//!
//! # Memory
//!
//! The demuxer holds the bytes pushed but not yet consumed. It consumes an element as soon as it
//! is whole, reads frames and the small level-1 elements (Info, Tracks, Tags, the EBML header)
//! whole, streams through master elements (Segment, Cluster), and discards skipped elements
//! (Cues, Attachments, Void, …) as their bytes arrive without keeping them. So, when `pull`
//! returns `None`, fewer than [`Limits::max_frame_size`] (or [`Limits::max_element_size`]) plus
//! 12 header bytes are buffered; a size field above a limit is an error, not an allocation, and
//! a size field within the limits reserves at most 1 MiB ahead of the bytes themselves.
//! [`Demuxer::check_invariants`] asserts this. What a buffered element decodes into is bounded
//! as well: [`Limits::max_tracks`] TrackEntries, [`Limits::max_tag_entries`] Tag and SimpleTag
//! elements per Tags, [`Limits::max_tag_depth`] levels of nesting.
//!
//! # Unknown sizes
//!
//! Only Segment and Cluster may have an unknown size (RFC 9559 §6.2; KVS producers write both
//! so). An unknown-size Cluster ends where a level-1 element (Cluster, Tags, Cues, …), a
//! Segment or an EBML header starts, or at the end of input; an unknown-size Segment ends where
//! an EBML header or another Segment starts (GetMedia output: one document per fragment), or at
//! the end of input.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

use crate::block::{self, FLAG_DISCARDABLE, FLAG_INVISIBLE, FLAG_KEYFRAME};
use crate::ebml::{self, Children, ElementHeader};
use crate::elements;
use crate::error::{Error, ErrorKind};
use crate::event::{DEFAULT_TIMECODE_SCALE, Event, Frame, Span};
use crate::ids;

/// Bounds on what one element may make the demuxer buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest SimpleBlock or BlockGroup, in bytes (default 64 MiB; KVS caps a whole fragment
    /// at 50 MB).
    pub max_frame_size: u64,
    /// Largest EBML header, Info, Tracks or Tags element, in bytes (default 16 MiB).
    pub max_element_size: u64,
    /// Deepest nesting of SimpleTags (default 16).
    pub max_tag_depth: usize,
    /// Most TrackEntries in a Tracks element (default 127, the TrackNumbers a one-byte block
    /// header can carry; KVS accepts 3, which its ingest checks to answer with its own ack).
    pub max_tracks: usize,
    /// Most Tag and SimpleTag elements in one Tags element (default 4096).
    pub max_tag_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_size: 64 << 20,
            max_element_size: 16 << 20,
            max_tag_depth: 16,
            max_tracks: 127,
            max_tag_entries: 4096,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Segment,
    Cluster,
}

/// What the demuxer keeps of each track of the current document.
#[derive(Debug, Clone)]
struct TrackState {
    number: u64,
    default_duration_ns: Option<u64>,
    header_removal: Option<Bytes>,
}

/// Most bytes reserved ahead for an element whose size field is read but whose bytes have not
/// arrived, so that a size field alone never allocates much; larger elements grow the buffer as
/// their bytes come.
const MAX_RESERVE: usize = 1 << 20;

/// Most Skipped events held back while a Cluster's Timestamp is awaited (see `deferred`).
const MAX_DEFERRED: usize = 16;

/// An element being stepped over: its ID and offset (for a Truncated error) and how many of
/// its bytes are still to be discarded (never 0: the skip ends with its last byte).
#[derive(Debug, Clone, Copy)]
struct Skip {
    id: u32,
    offset: u64,
    remaining: u64,
}

/// A master element the demuxer is inside of.
#[derive(Debug, Clone, Copy)]
struct Open {
    kind: Kind,
    span: Span,
}

/// Sans-IO Matroska/WebM demuxer. See the [module docs](self).
#[derive(Debug)]
pub struct Demuxer {
    limits: Limits,
    buf: BytesMut,
    /// Stream offset of `buf[0]`.
    pos: u64,
    /// The element being stepped over, while some of its bytes are still to be discarded.
    skip: Option<Skip>,
    /// Open master elements: at most a Segment and a Cluster in it.
    stack: Vec<Open>,
    /// Events decoded but not yet pulled (the frames of a laced block).
    pending: VecDeque<Event>,
    /// The open Cluster's Timestamp, once read.
    cluster_timecode: Option<u64>,
    timecode_scale: u64,
    /// The current document's tracks (at most `Limits::max_tracks`).
    tracks: Vec<TrackState>,
    /// Skipped children of a Cluster that come before its Timestamp (CRC-32, Void, …), reported
    /// just after its ClusterStart so that the events nest as the elements do.
    deferred: Vec<Event>,
    seen_header: bool,
    eof: bool,
    failed: bool,
    /// Set when `pull` returned `None` for want of bytes: how many `buf` must hold to go on.
    waiting_for: Option<usize>,
}

impl Default for Demuxer {
    fn default() -> Self {
        Self::new()
    }
}

impl Demuxer {
    pub fn new() -> Self {
        Self::with_limits(Limits::default())
    }

    pub fn with_limits(limits: Limits) -> Self {
        Demuxer {
            limits,
            buf: BytesMut::new(),
            pos: 0,
            skip: None,
            stack: Vec::new(),
            pending: VecDeque::new(),
            cluster_timecode: None,
            timecode_scale: DEFAULT_TIMECODE_SCALE,
            tracks: Vec::new(),
            deferred: Vec::new(),
            seen_header: false,
            eof: false,
            failed: false,
            waiting_for: None,
        }
    }

    /// Demuxes a whole input held in memory.
    pub fn read_all(data: &[u8]) -> Result<Vec<Event>, Error> {
        let mut d = Demuxer::new();
        d.push(data);
        d.finish();
        let mut events = Vec::new();
        while let Some(ev) = d.pull() {
            events.push(ev?);
        }
        Ok(events)
    }

    /// Appends input. Bytes already consumed by skipping an element are dropped at once.
    pub fn push(&mut self, mut data: &[u8]) {
        if self.failed {
            return;
        }
        if self.buf.is_empty() {
            let n = self.skip_bytes(data.len());
            data = data.get(n..).unwrap_or_default();
            self.pos += n as u64;
        }
        self.buf.extend_from_slice(data);
        self.waiting_for = None;
    }

    /// Marks the end of input: open unknown-size elements close, and an element cut short
    /// becomes an [`ErrorKind::Truncated`] error.
    pub fn finish(&mut self) {
        self.eof = true;
        self.waiting_for = None;
    }

    /// The next event; `None` when more input is needed, or when the input is over (after
    /// [`finish`](Self::finish)), or after an error (which is returned once).
    pub fn pull(&mut self) -> Option<Result<Event, Error>> {
        if let Some(ev) = self.pending.pop_front() {
            return Some(Ok(ev));
        }
        if self.failed {
            return None;
        }
        match self.step() {
            Ok(ev) => ev.map(Ok),
            Err(e) => {
                self.failed = true;
                self.buf = BytesMut::new();
                self.stack.clear();
                self.cluster_timecode = None;
                self.skip = None;
                self.deferred.clear();
                self.waiting_for = None;
                Some(Err(e))
            }
        }
    }

    /// Stream offset of the first byte not yet consumed.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Bytes pushed but not yet consumed.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The current document's TimestampScale (ns per tick).
    pub fn timecode_scale(&self) -> u64 {
        self.timecode_scale
    }

    /// Asserts the demuxer's internal consistency; tests and fuzz targets call it after every
    /// step. A failure is a bug in this crate, never a property of the input.
    pub fn check_invariants(&self) {
        assert!(self.stack.len() <= 2, "stack {:?}", self.stack);
        if let Some(first) = self.stack.first() {
            assert_eq!(first.kind, Kind::Segment);
        }
        if let Some(second) = self.stack.get(1) {
            assert_eq!(second.kind, Kind::Cluster);
        }
        for open in &self.stack {
            assert!(
                open.span.data_offset() <= self.pos,
                "{open:?} at {}",
                self.pos
            );
            if let Some(end) = open.span.end() {
                assert!(self.pos <= end, "{open:?} overrun at {}", self.pos);
            }
        }
        if self.cluster_timecode.is_some() {
            assert_eq!(self.stack.last().map(|o| o.kind), Some(Kind::Cluster));
        }
        if let Some(skip) = self.skip {
            assert!(skip.remaining > 0);
            assert!(
                self.buf.is_empty(),
                "skipping with {} bytes buffered",
                self.buf.len()
            );
        }
        if self.failed {
            assert!(self.buf.is_empty() && self.stack.is_empty());
        }
        assert!(self.tracks.len() <= self.limits.max_tracks);
        assert!(self.deferred.len() <= MAX_DEFERRED);
        if !self.deferred.is_empty() {
            assert_eq!(self.stack.last().map(|o| o.kind), Some(Kind::Cluster));
            assert!(self.cluster_timecode.is_none());
        }
        if let Some(need) = self.waiting_for {
            let bound = self.limits.max_frame_size.max(self.limits.max_element_size)
                + (ebml::MAX_ID_LEN + ebml::MAX_SIZE_LEN) as u64;
            assert!(
                self.buf.len() < need,
                "waiting for {need} with {}",
                self.buf.len()
            );
            assert!(
                need as u64 <= bound,
                "waiting for {need} bytes, bound {bound}"
            );
        }
    }

    fn err(&self, element: Option<u32>, kind: ErrorKind) -> Error {
        Error::new(self.pos, element, kind)
    }

    fn wait(&mut self, need: usize) -> Result<Option<Event>, Error> {
        self.waiting_for = Some(need);
        Ok(None)
    }

    fn step(&mut self) -> Result<Option<Event>, Error> {
        loop {
            self.discard_skipped();
            if let Some(skip) = self.skip {
                if self.eof {
                    return Err(Error::new(skip.offset, Some(skip.id), ErrorKind::Truncated));
                }
                return self.wait(1);
            }

            // A known-size element whose end is reached closes (its unknown-size child first).
            if self
                .stack
                .iter()
                .any(|o| o.span.end().is_some_and(|end| self.pos >= end))
            {
                return Ok(self.close_top());
            }

            let header = match ebml::read_header(&self.buf) {
                Ok(Some(h)) => h,
                Ok(None) if !self.eof => return self.wait(self.buf.len() + 1),
                Ok(None) if !self.buf.is_empty() => {
                    return Err(self.err(None, ErrorKind::Truncated));
                }
                Ok(None) => {
                    return match self.stack.last() {
                        None => Ok(None),
                        Some(top) if top.span.size.is_some() => {
                            let id = match top.kind {
                                Kind::Segment => ids::SEGMENT,
                                Kind::Cluster => ids::CLUSTER,
                            };
                            Err(Error::new(top.span.offset, Some(id), ErrorKind::Truncated))
                        }
                        Some(_) => Ok(self.close_top()),
                    };
                }
                Err(kind) => return Err(self.err(None, kind)),
            };
            let span = Span {
                offset: self.pos,
                header_len: header.header_len,
                size: header.size,
            };

            if let Some(top) = self.stack.last()
                && top.span.size.is_none()
            {
                let ends = match top.kind {
                    Kind::Cluster => {
                        ids::is_level1(header.id)
                            || header.id == ids::EBML
                            || header.id == ids::SEGMENT
                    }
                    Kind::Segment => header.id == ids::EBML || header.id == ids::SEGMENT,
                };
                if ends {
                    return Ok(self.close_top());
                }
            }
            if let Some(parent_end) = self.stack.iter().filter_map(|o| o.span.end()).min()
                && (span.data_offset() > parent_end
                    || span.end().is_some_and(|end| end > parent_end))
            {
                return Err(self.err(
                    Some(header.id),
                    ErrorKind::Overrun {
                        id: header.id,
                        parent_end,
                    },
                ));
            }

            let context = self.stack.last().map(|o| o.kind);
            match (context, header.id) {
                (None, ids::EBML) => {
                    let Some(data) = self.take(&header, self.limits.max_element_size)? else {
                        return Ok(None);
                    };
                    let h = elements::ebml_header(data, span.data_offset())?;
                    self.seen_header = true;
                    self.timecode_scale = DEFAULT_TIMECODE_SCALE;
                    self.tracks.clear();
                    return Ok(Some(Event::EbmlHeader { span, header: h }));
                }
                (None, found) if !self.seen_header => {
                    return Err(self.err(Some(found), ErrorKind::NotMatroska { found }));
                }
                (None, ids::SEGMENT) => {
                    self.open(Kind::Segment, span);
                    return Ok(Some(Event::SegmentStart { span }));
                }
                (None, id) if id != ids::VOID && id != ids::CRC32 => {
                    return Err(self.err(
                        Some(id),
                        ErrorKind::Unexpected {
                            expected: "an EBML header or a Segment",
                            found: id,
                        },
                    ));
                }
                (Some(Kind::Segment), ids::INFO) => {
                    let Some(data) = self.take(&header, self.limits.max_element_size)? else {
                        return Ok(None);
                    };
                    let info = elements::info(data, span.data_offset())?;
                    self.timecode_scale = info.timecode_scale;
                    return Ok(Some(Event::Info { span, info }));
                }
                (Some(Kind::Segment), ids::TRACKS) => {
                    let Some(data) = self.take(&header, self.limits.max_element_size)? else {
                        return Ok(None);
                    };
                    let tracks =
                        elements::tracks(data, span.data_offset(), self.limits.max_tracks)?;
                    self.tracks = tracks
                        .iter()
                        .map(|t| TrackState {
                            number: t.number,
                            default_duration_ns: t.default_duration_ns,
                            header_removal: t.header_removal.clone(),
                        })
                        .collect();
                    return Ok(Some(Event::Tracks { span, tracks }));
                }
                (Some(Kind::Segment), ids::TAGS) => {
                    let Some(data) = self.take(&header, self.limits.max_element_size)? else {
                        return Ok(None);
                    };
                    let tags = elements::tags(
                        data,
                        span.data_offset(),
                        self.limits.max_tag_depth,
                        self.limits.max_tag_entries,
                    )?;
                    return Ok(Some(Event::Tags { span, tags }));
                }
                (Some(Kind::Segment), ids::CLUSTER) => {
                    self.open(Kind::Cluster, span);
                    self.cluster_timecode = None;
                    continue;
                }
                (Some(Kind::Segment), id @ (ids::EBML | ids::SEGMENT)) => {
                    return Err(self.err(
                        Some(id),
                        ErrorKind::Unexpected {
                            expected: "a child of the Segment",
                            found: id,
                        },
                    ));
                }
                (Some(Kind::Cluster), ids::TIMESTAMP) => {
                    // An unsigned integer: 8 bytes at most.
                    let Some(data) = self.take(&header, 8)? else {
                        return Ok(None);
                    };
                    if self.cluster_timecode.is_some() {
                        return Err(Error::new(
                            span.offset,
                            Some(ids::TIMESTAMP),
                            ErrorKind::Invalid("a second Timestamp in one Cluster"),
                        ));
                    }
                    let timecode = ebml::uint(&data)
                        .map_err(|k| Error::new(span.offset, Some(ids::TIMESTAMP), k))?;
                    self.cluster_timecode = Some(timecode);
                    let cluster = self.stack.last().map_or(span, |o| o.span);
                    self.pending.extend(self.deferred.drain(..));
                    return Ok(Some(Event::ClusterStart {
                        span: cluster,
                        timecode,
                    }));
                }
                (Some(Kind::Cluster), id @ (ids::SIMPLE_BLOCK | ids::BLOCK_GROUP)) => {
                    let Some(data) = self.take(&header, self.limits.max_frame_size)? else {
                        return Ok(None);
                    };
                    self.frames(span, id, data)?;
                    if let Some(ev) = self.pending.pop_front() {
                        return Ok(Some(ev));
                    }
                    continue;
                }
                _ => {}
            }

            // Anything else is stepped over.
            let Some(size) = header.size else {
                return Err(self.err(
                    Some(header.id),
                    ErrorKind::UnknownSizeNotAllowed { id: header.id },
                ));
            };
            self.consume(usize::from(header.header_len));
            if size > 0 {
                self.skip = Some(Skip {
                    id: header.id,
                    offset: span.offset,
                    remaining: size,
                });
                self.discard_skipped();
            }
            let event = Event::Skipped {
                id: header.id,
                span,
                depth: self.stack.len() as u8,
            };
            let before_timestamp =
                context == Some(Kind::Cluster) && self.cluster_timecode.is_none();
            if !before_timestamp {
                return Ok(Some(event));
            }
            // Held back until the ClusterStart (a few at most; more are not reported).
            if self.deferred.len() < MAX_DEFERRED {
                self.deferred.push(event);
            }
        }
    }

    /// Drops the buffered bytes of the element being skipped.
    fn discard_skipped(&mut self) {
        let n = self.skip_bytes(self.buf.len());
        self.consume(n);
    }

    /// How many of `available` bytes belong to the element being skipped; counts them as
    /// discarded, and ends the skip at its last byte. The caller drops them.
    fn skip_bytes(&mut self, available: usize) -> usize {
        let Some(skip) = &mut self.skip else {
            return 0;
        };
        let n = usize::try_from(skip.remaining)
            .unwrap_or(usize::MAX)
            .min(available);
        skip.remaining -= n as u64;
        if skip.remaining == 0 {
            self.skip = None;
        }
        n
    }

    /// Consumes `n` buffered bytes (`n` ≤ `buf.len()`: a header just read from it).
    fn consume(&mut self, n: usize) {
        let n = n.min(self.buf.len());
        self.buf.advance(n);
        self.pos += n as u64;
    }

    fn open(&mut self, kind: Kind, span: Span) {
        self.consume(usize::from(span.header_len));
        self.stack.push(Open { kind, span });
    }

    fn close_top(&mut self) -> Option<Event> {
        let open = self.stack.pop()?;
        Some(match open.kind {
            Kind::Segment => Event::SegmentEnd {
                offset: open.span.offset,
                end: self.pos,
            },
            Kind::Cluster => match self.cluster_timecode.take() {
                Some(_) => Event::ClusterEnd {
                    offset: open.span.offset,
                    end: self.pos,
                },
                // A Cluster without a Timestamp (and so without blocks) is reported as skipped,
                // followed by the children held back for its ClusterStart.
                None => {
                    self.pending.extend(self.deferred.drain(..));
                    Event::Skipped {
                        id: ids::CLUSTER,
                        span: Span {
                            size: Some(self.pos - open.span.data_offset()),
                            ..open.span
                        },
                        depth: self.stack.len() as u8,
                    }
                }
            },
        })
    }

    /// Takes a whole element of at most `limit` payload bytes out of the buffer, or `Ok(None)`
    /// (and a note of how many bytes are needed) when it has not fully arrived.
    fn take(&mut self, header: &ElementHeader, limit: u64) -> Result<Option<Bytes>, Error> {
        let id = header.id;
        let size = header
            .size
            .ok_or_else(|| self.err(Some(id), ErrorKind::UnknownSizeNotAllowed { id }))?;
        let too_large = || ErrorKind::TooLarge { id, size, limit };
        if size > limit {
            return Err(self.err(Some(id), too_large()));
        }
        let total = usize::try_from(size)
            .ok()
            .and_then(|s| s.checked_add(usize::from(header.header_len)))
            .ok_or_else(|| self.err(Some(id), too_large()))?;
        if self.buf.len() < total {
            if self.eof {
                return Err(self.err(Some(id), ErrorKind::Truncated));
            }
            self.buf.reserve((total - self.buf.len()).min(MAX_RESERVE));
            self.waiting_for = Some(total);
            return Ok(None);
        }
        let mut element = self.buf.split_to(total);
        element.advance(usize::from(header.header_len));
        self.pos += total as u64;
        Ok(Some(element.freeze()))
    }

    /// Decodes a SimpleBlock or BlockGroup into `pending` frames.
    fn frames(&mut self, span: Span, id: u32, data: Bytes) -> Result<(), Error> {
        let err = |kind| Error::new(span.offset, Some(id), kind);
        let simple = id == ids::SIMPLE_BLOCK;
        let (block_data, duration_ticks, referenced) = if simple {
            (data, None, false)
        } else {
            let mut block = None;
            let mut duration = None;
            let mut referenced = false;
            for child in Children::new(data, span.data_offset()) {
                let child = child.map_err(|(offset, kind)| Error::new(offset, Some(id), kind))?;
                match child.id {
                    ids::BLOCK => block = Some(child.data),
                    ids::BLOCK_DURATION => {
                        duration = Some(
                            ebml::uint(&child.data)
                                .map_err(|k| Error::new(child.offset, Some(child.id), k))?,
                        );
                    }
                    ids::REFERENCE_BLOCK => referenced = true,
                    _ => {}
                }
            }
            let block = block.ok_or_else(|| err(ErrorKind::Missing(ids::BLOCK)))?;
            (block, duration, referenced)
        };
        let cluster = self
            .cluster_timecode
            .ok_or_else(|| err(ErrorKind::BlockBeforeTimestamp))?;
        let b = block::parse(&block_data).map_err(err)?;
        let scale = self.timecode_scale;
        let overflow = || {
            err(ErrorKind::TimestampOverflow {
                cluster,
                relative: b.relative,
                scale,
            })
        };
        let block_timecode = i128::from(cluster) + i128::from(b.relative);
        let count = b.frames.len() as u64;
        let track = self.tracks.iter().find(|t| t.number == b.track);
        let default_duration_ns = track.and_then(|t| t.default_duration_ns);
        let header_removal = track.and_then(|t| t.header_removal.clone());
        // The block's duration in ticks, for spreading its laces (as ffmpeg does, so that the
        // timestamps agree with ffprobe's): BlockDuration, or DefaultDuration per frame.
        let block_ticks = match duration_ticks {
            Some(d) => Some(d),
            None => default_duration_ns.map(|d| d.saturating_mul(count) / scale),
        };
        let duration_ns = match duration_ticks {
            Some(d) => Some(d.saturating_mul(scale) / count.max(1)),
            None => default_duration_ns,
        };
        let (keyframe, discardable) = if simple {
            (
                b.flags & FLAG_KEYFRAME != 0,
                b.flags & FLAG_DISCARDABLE != 0,
            )
        } else {
            (!referenced, false)
        };
        for (i, mut data) in b.frames.into_iter().enumerate() {
            if let Some(prefix) = &header_removal {
                // Header stripping: the one case where a frame is copied.
                let mut whole = BytesMut::with_capacity(prefix.len() + data.len());
                whole.extend_from_slice(prefix);
                whole.extend_from_slice(&data);
                data = whole.freeze();
            }
            let offset = match block_ticks {
                Some(d) if count > 1 => u128::from(d) * i as u128 / u128::from(count),
                _ => 0,
            };
            let timecode =
                i64::try_from(block_timecode + offset as i128).map_err(|_| overflow())?;
            let time_ns =
                i64::try_from(i128::from(timecode) * i128::from(scale)).map_err(|_| overflow())?;
            self.pending.push_back(Event::Frame(Frame {
                span,
                track: b.track,
                timecode,
                time_ns,
                duration_ns,
                keyframe,
                discardable,
                invisible: b.flags & FLAG_INVISIBLE != 0,
                // A lace holds at most 256 frames.
                lace_index: i as u16,
                lace_count: count as u16,
                data,
            }));
        }
        Ok(())
    }
}
