//! PutMedia's ingest state machine, sans I/O: request body bytes in, store operations and ack
//! decisions out.
//!
//! [`Ingest`] runs the Matroska demuxer over the body as it arrives (any chunking) and queues
//! [`Op`]s that the session driver ([`super::putmedia`]) carries out in order against the store
//! and the ack stream. It never blocks, allocates only what the input holds, and gives the same
//! ops (the same concatenated bytes) whatever the chunking. Everything here is decided by the
//! bytes alone, so it is tested without a store or a server.
//!
//! # What becomes a fragment
//!
//! Each Matroska Cluster is one fragment (`../shared/spec/kvs-api.md` §2.2), stored as
//! `media/mod.rs` says:
//!
//! - The **track header** ([`Op::RegisterHeader`]) is the producer's EBML header (raw), a Segment
//!   ID with an unknown size ([`SEGMENT_UNKNOWN_SIZE`]), and the producer's Info and Tracks
//!   (raw). It is registered when Tracks has been read, and again before the next fragment if
//!   Info or Tracks change later in the body.
//! - A fragment **begins** ([`Op::Begin`], the BUFFERING ack) when its Cluster's Timecode has
//!   been read, which Matroska puts first in the Cluster, so in practice with its first bytes.
//! - Its bytes are **appended** ([`Op::Append`]) from the Cluster ID on, each time the demuxer
//!   has consumed a whole child (a frame, a Timecode, a skipped element), so a live reader gets
//!   every frame as soon as it has arrived and never a partial one.
//! - **Tags** (level-1 elements, which end an unknown-size Cluster) attach to the fragment whose
//!   Cluster they follow, as KVS appears to do (§2.6); Tags that come while no fragment is open
//!   (before the first Cluster, or after a fragment an end-of-fragment tag completed) attach to
//!   the next fragment, **unless an end-of-fragment tag closes them before that Cluster**: then
//!   they are the Tags of a fragment that has already ended (a resumed session starts so), and
//!   are checked and dropped, never counted or stored (see [`tags`]). Tags are stored after the
//!   Cluster, in arrival order; only their custom SimpleTags are stored (see *Tags* below).
//! - A fragment is **complete** ([`Op::Complete`], the RECEIVED ack) at the next Cluster, at a
//!   Tags element holding `AWS_KINESISVIDEO_END_OF_FRAGMENT`, or at the end of the body (but a
//!   body that breaks off, the connection failing, inside a Cluster drops that fragment with
//!   ERROR 4000: the producer resends what was not acknowledged, so a short copy would be a
//!   duplicate with frames missing). The C
//!   producer sends the end-of-fragment tag after its last Cluster and waits for that
//!   fragment's PERSISTED ack before it ends the body, so the tag must complete it.
//!
//! # Tags
//!
//! Only custom metadata is stored: GetMedia writes its own reserved tags around the payload,
//! and the KVS parser library reads `AWS_KINESISVIDEO_*` tags (continuation token, millis
//! behind now, error codes) from any Tags element after the Cluster, so a producer must not be
//! able to put one there. A Tags element is therefore stored
//!
//! - **raw**, as the producer sent it, when it holds custom SimpleTags only and nothing the
//!   demuxer does not account for (`is_plain`: only Tag, Targets with its three known
//!   children, SimpleTag with at most one TagName (valid UTF-8, no NUL), TagLanguage,
//!   TagDefault and TagString or TagBinary, nested SimpleTags, and Void or CRC-32 anywhere), so
//!   that a parser cannot read a name there that ingest did not check;
//! - **re-encoded** (`vigil_mkv::encode_tags`) otherwise, holding only the custom SimpleTags
//!   as decoded, each with its own nesting; the custom children of a reserved SimpleTag take its
//!   place (image-generation and notification tags may carry custom pairs);
//! - **not at all** when it holds no custom SimpleTag.
//!
//! Reserved names producers send, and that are accepted (and not stored) at any depth:
//! [`PRODUCER_TAGS`] (`AWS_KINESISVIDEO_END_OF_FRAGMENT`, which the C producer sends, as its
//! captures show; `AWS_KINESISVIDEO_IMAGE_GENERATION` and `AWS_KINESISVIDEO_IMAGE_PREFIX`;
//! `AWS_KINESISVIDEO_NOTIFICATION`). Any other `AWS_KINESISVIDEO_*` name is ERROR 4009.
//!
//! # Timestamps and duration
//!
//! The producer timestamp is the Cluster Timecode × TimecodeScale in ms (ABSOLUTE), or
//! `x-amzn-producer-start-timestamp` + that (RELATIVE); the ack's `FragmentTimecode` is the raw
//! Cluster Timecode as sent ([`Op::Begin::timecode`]).
//!
//! **Duration rule**: the latest end of a frame minus the Cluster's time, where a frame ends at
//! its time plus its duration: its BlockDuration or its track's DefaultDuration when known,
//! else the interval since the previous frame of the same track in the fragment (the frame
//! rate, for producers such as the KVS SDKs that give frames no duration), else 0. It is
//! rounded to the nearest ms. So a 25 fps fragment of 45 frames from the C producer lasts
//! 1800 ms, the distance to the next fragment, whether or not the next Cluster has arrived
//! when the fragment completes.
//!
//! # Errors
//!
//! Every error ends the session: the driver sends one ERROR ack, drops the fragment being
//! received (the one begun and not completed, including one whose Cluster has ended but which
//! is still collecting its Tags), lets earlier fragments finish (their PERSISTED acks still go
//! out, before the ERROR ack), and ends the response. KVS does the same: the producer SDK
//! treats an ERROR ack as the end of the connection and resends from the failed fragment on a
//! new one. The checks:
//!
//! | ErrorId | when |
//! |---|---|
//! | 4000 `STREAM_READ_ERROR` | reading the body failed (a broken connection, broken chunked framing): the fragment being received is dropped if its Cluster was still open; or the body broke off at the idle timeout inside an element; or it brought in too little for too long ([`EndOfInput::TooSlow`], the minimum-progress rule: [`super::sessions::SLOW_ERROR`]), as for a broken body |
//! | 4001 `MAX_FRAGMENT_SIZE_REACHED` | a fragment (Cluster and its Tags) would pass [`MAX_FRAGMENT_BYTES`] |
//! | 4002 `MAX_FRAGMENT_DURATION_REACHED` | a frame ends more than 20 s after its Cluster's time |
//! | 4003 `MAX_CONNECTION_DURATION_REACHED` | [`Ingest::expire`]: at the next Cluster once the connection is too old; [`Ingest::displace`]: after the fragment being received, once newer connections to the stream displaced this one ([`DISPLACED_ERROR`]) |
//! | 4004 `FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS` | a Cluster's time, or a frame's, is before the latest frame of the session's previous fragment (see below) |
//! | 4006 `INVALID_MKV_DATA` | the demuxer fails; a second EBML header or Segment (KVS rejects them; so do we); a Cluster before Tracks; TimecodeScale 0 |
//! | 4007 `INVALID_PRODUCER_TIMESTAMP` | the producer timestamp is past year 9999 |
//! | 4009 `FRAGMENT_METADATA_LIMIT_REACHED` | more than [`MAX_FRAGMENT_TAGS`] (10) tags for one fragment, counting its custom SimpleTags (nested ones included) **and its end-of-fragment tag** (see [`tags`]), a custom name over 128 bytes, a value over 256 bytes, a custom name starting with `AWS`, or a reserved `AWS_KINESISVIDEO_*` name other than [`PRODUCER_TAGS`] |
//! | 4010 `TRACK_NUMBER_MISMATCH` | a frame on a track Tracks does not declare |
//! | 4012 `MORE_THAN_ALLOWED_TRACKS_FOUND` | Tracks declares more than 3 tracks |
//!
//! 4011 `FRAMES_MISSING_FOR_TRACK` (a declared track without a frame in a fragment) is **not**
//! enforced: producers legitimately send fragments without audio (an audio source that starts
//! late or stalls, a muted track), and rejecting them would lose the video with no benefit to
//! any reader; GetMedia, HLS and clips cope with a track missing from a fragment.
//!
//! Tags are counted per fragment (the custom ones of the Tags before its Cluster plus those
//! after, and the end-of-fragment tag that completes it, as KVS counts it); the other reserved
//! names producers may send ([`PRODUCER_TAGS`]) are event metadata and not counted. See
//! [`tags`] for the rule and what the SDK source says of it.
//!
//! **The 4004 rule** (§2.4: each fragment's earliest frame must be after the latest frame of
//! the previous one): a fragment's Cluster Timecode and every one of its frame times must be
//! **at or after the latest frame time** (the frame's start, not its end) of the previous
//! fragment of the session; a fragment without frames counts as one frame at its Cluster's
//! time. Equal is accepted: the next Cluster of a producer that gives frames no duration
//! starts one frame interval after the last frame (the C producer's captures: last frames at
//! +1760 ms video and +1780 ms audio, next Cluster at +1800 ms), one that starts exactly at
//! the last frame's end is later still, and a frame on another track at the same instant as
//! the previous fragment's last one orders nothing backwards. A Cluster Timecode before that
//! is refused before the fragment begins (the ERROR ack carries the timecode, no number); a
//! frame before it fails the fragment being received (dropped, ERROR with its number).

pub mod tags;

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};
use vigil_mkv::{Demuxer, Error as MkvError, ErrorKind, Event, Frame, Limits, ids};
use vigil_store::MAX_FRAGMENT_BYTES;

use super::sessions::DISPLACED_ERROR;

/// Most tracks a stream may declare (KVS: 3).
pub const MAX_TRACKS: usize = 3;
/// Longest fragment, in ns (KVS: 20 s).
pub const MAX_FRAGMENT_DURATION_NS: i128 = 20_000_000_000;
/// Most metadata tags per fragment, its end-of-fragment tag counted (see the module docs).
pub const MAX_FRAGMENT_TAGS: usize = 10;
/// Longest custom tag name, in bytes.
pub const MAX_TAG_NAME_BYTES: usize = 128;
/// Longest custom tag value, in bytes.
pub const MAX_TAG_VALUE_BYTES: usize = 256;
/// Names of tags the service interprets; they are not custom metadata.
pub const RESERVED_TAG_PREFIX: &str = "AWS_KINESISVIDEO_";
/// The tag that ends the fragment it follows.
pub const END_OF_FRAGMENT_TAG: &str = "AWS_KINESISVIDEO_END_OF_FRAGMENT";
/// The reserved names producers may send: accepted, interpreted (the end-of-fragment tag) or
/// not, and never stored. Any other reserved name is ERROR 4009.
pub const PRODUCER_TAGS: [&str; 4] = [
    END_OF_FRAGMENT_TAG,
    "AWS_KINESISVIDEO_IMAGE_GENERATION",
    "AWS_KINESISVIDEO_IMAGE_PREFIX",
    "AWS_KINESISVIDEO_NOTIFICATION",
];
/// A Segment ID with an unknown size, as the stored track header carries it.
pub const SEGMENT_UNKNOWN_SIZE: [u8; 12] = [
    0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
];
/// Most body bytes held while waiting for an element to end: a whole frame or header element
/// (the demuxer's limits) and some.
const MAX_BUFFERED_BYTES: usize = MAX_FRAGMENT_BYTES + (17 << 20);
/// The latest producer timestamp accepted: 9999-12-31T23:59:59.999Z.
const MAX_TIMESTAMP_MS: i128 = 253_402_300_799_999;

/// An ack error (`../shared/spec/kvs-api.md` §2.5): `ErrorId` and `ErrorCode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckError {
    /// 4000: reading the body failed.
    StreamReadError,
    /// 4001: a fragment over 50 MB.
    MaxFragmentSizeReached,
    /// 4002: a fragment over 20 s.
    MaxFragmentDurationReached,
    /// 4003: a connection over 45 min.
    MaxConnectionDurationReached,
    /// 4004: a fragment's timecode before the previous one's.
    FragmentTimecodeLesserThanPrevious,
    /// 4006: malformed Matroska.
    InvalidMkvData,
    /// 4007: a producer timestamp out of range.
    InvalidProducerTimestamp,
    /// 4008: the stream was deleted.
    StreamNotActive,
    /// 4009: too many or too large metadata tags.
    FragmentMetadataLimitReached,
    /// 4010: a frame on an undeclared track.
    TrackNumberMismatch,
    /// 4011: a declared track without frames (not enforced; see the module docs).
    FramesMissingForTrack,
    /// 4012: more than 3 tracks.
    MoreThanAllowedTracksFound,
    /// 5000: an internal error.
    InternalError,
    /// 5001: the fragment could not be stored.
    ArchivalError,
}

impl AckError {
    /// The `ErrorId`.
    pub fn id(self) -> u32 {
        match self {
            Self::StreamReadError => 4000,
            Self::MaxFragmentSizeReached => 4001,
            Self::MaxFragmentDurationReached => 4002,
            Self::MaxConnectionDurationReached => 4003,
            Self::FragmentTimecodeLesserThanPrevious => 4004,
            Self::InvalidMkvData => 4006,
            Self::InvalidProducerTimestamp => 4007,
            Self::StreamNotActive => 4008,
            Self::FragmentMetadataLimitReached => 4009,
            Self::TrackNumberMismatch => 4010,
            Self::FramesMissingForTrack => 4011,
            Self::MoreThanAllowedTracksFound => 4012,
            Self::InternalError => 5000,
            Self::ArchivalError => 5001,
        }
    }

    /// The `ErrorCode` (the Java SDK's enum name).
    pub fn code(self) -> &'static str {
        match self {
            Self::StreamReadError => "STREAM_READ_ERROR",
            Self::MaxFragmentSizeReached => "MAX_FRAGMENT_SIZE_REACHED",
            Self::MaxFragmentDurationReached => "MAX_FRAGMENT_DURATION_REACHED",
            Self::MaxConnectionDurationReached => "MAX_CONNECTION_DURATION_REACHED",
            Self::FragmentTimecodeLesserThanPrevious => "FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS",
            Self::InvalidMkvData => "INVALID_MKV_DATA",
            Self::InvalidProducerTimestamp => "INVALID_PRODUCER_TIMESTAMP",
            Self::StreamNotActive => "STREAM_NOT_ACTIVE",
            Self::FragmentMetadataLimitReached => "FRAGMENT_METADATA_LIMIT_REACHED",
            Self::TrackNumberMismatch => "TRACK_NUMBER_MISMATCH",
            Self::FramesMissingForTrack => "FRAMES_MISSING_FOR_TRACK",
            Self::MoreThanAllowedTracksFound => "MORE_THAN_ALLOWED_TRACKS_FOUND",
            Self::InternalError => "INTERNAL_ERROR",
            Self::ArchivalError => "ARCHIVAL_ERROR",
        }
    }
}

/// How cluster timecodes map to producer timestamps (`x-amzn-fragment-timecode-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimecodeType {
    /// Cluster timecodes are epoch times.
    Absolute,
    /// Cluster timecodes count from `start_ms` (`x-amzn-producer-start-timestamp`).
    Relative {
        /// The session's start, epoch ms.
        start_ms: u64,
    },
}

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Register this track header; fragments from now on are ingested under it.
    RegisterHeader(Bytes),
    /// A fragment begins: `begin_fragment`, then a BUFFERING ack.
    Begin {
        /// The Cluster Timecode as sent (the acks' `FragmentTimecode`).
        timecode: u64,
        /// The producer timestamp, epoch ms.
        producer_ts_ms: u64,
    },
    /// Append to the fragment begun last.
    Append(Bytes),
    /// The fragment begun last is whole: a RECEIVED ack, then `finish`.
    Complete {
        /// Its duration (see the module docs).
        duration_ms: u32,
    },
    /// Send an ERROR ack. If a fragment is open (begun, not completed) it is dropped and the ack
    /// carries its timecode and number; otherwise it carries `timecode` when there is one (a
    /// Cluster refused before it began). An [`Op::End`] always follows.
    Error {
        /// The error.
        error: AckError,
        /// The timecode of a Cluster refused before it began.
        timecode: Option<u64>,
        /// What went wrong, for the log.
        detail: String,
    },
    /// Stop reading the body; the session ends once earlier fragments are durable.
    End,
}

/// Why the input ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndOfInput {
    /// The request body ended.
    BodyEnd,
    /// No data came for the idle timeout.
    Idle,
    /// Reading the request body failed (the connection broke).
    ReadError,
    /// The body brought in too little for too long (the minimum-progress rule,
    /// [`super::sessions`]): ended as a broken body is, with [`super::sessions::SLOW_ERROR`].
    TooSlow,
}

impl EndOfInput {
    /// Whether the input was cut off (rather than ended by the producer or its silence): the
    /// fragment being received is dropped unless its Cluster had ended, and the session ends
    /// with an ERROR ack.
    fn cut(self) -> bool {
        matches!(self, Self::ReadError | Self::TooSlow)
    }
}

/// Per-track frame timing within a fragment, for its duration.
#[derive(Debug, Clone, Copy)]
struct TrackTiming {
    track: u64,
    last_ns: i128,
    gap_ns: Option<i128>,
}

/// The fragment being received.
#[derive(Debug)]
struct Fragment {
    timecode: u64,
    start_ns: i128,
    /// Its Cluster is still open (bytes go to it).
    in_cluster: bool,
    bytes: usize,
    custom_tags: usize,
    /// Tags that came before the Cluster, appended when it ends.
    early_tags: Vec<Bytes>,
    /// The latest frame end so far.
    end_ns: i128,
    /// The latest frame time (start) so far.
    latest_frame_ns: Option<i128>,
    tracks: Vec<TrackTiming>,
}

/// What a Tags element holds.
struct TagsSummary {
    /// Custom SimpleTags, nested ones included.
    custom: usize,
    end_of_fragment: bool,
    /// Whether a SimpleTag (at any depth) has a reserved name.
    reserved: bool,
}

/// The ingest state machine. See the [module docs](self).
#[derive(Debug)]
pub struct Ingest {
    timecode_type: TimecodeType,
    demux: Demuxer,
    /// Body bytes from stream offset `raw_off` on, not yet handed out or dropped.
    raw: BytesMut,
    raw_off: u64,
    /// Bytes before this offset belong to nothing (a skipped element) and are dropped.
    discard_until: u64,
    ebml: Option<Bytes>,
    info: Option<Bytes>,
    tracks: Option<Bytes>,
    track_numbers: Vec<u64>,
    timecode_scale: u64,
    segment_seen: bool,
    header_dirty: bool,
    fragment: Option<Fragment>,
    /// Tags waiting for the next fragment.
    pending_tags: Vec<Bytes>,
    pending_custom: usize,
    /// The latest frame time of the previous fragment (its Cluster's time if it had none):
    /// the 4004 bound.
    prev_latest_ns: Option<i128>,
    draining: bool,
    /// [`Ingest::displace`] while a Cluster was open: [`DISPLACED_ERROR`] when it ends.
    displaced: bool,
    expired: bool,
    eof: Option<EndOfInput>,
    ended: bool,
    ops: VecDeque<Op>,
}

impl Ingest {
    /// A machine for one PutMedia body.
    pub fn new(timecode_type: TimecodeType) -> Self {
        let limits = Limits {
            // A bigger frame could never fit in a fragment; refusing it bounds the buffer.
            max_frame_size: MAX_FRAGMENT_BYTES as u64,
            ..Limits::default()
        };
        Self {
            timecode_type,
            demux: Demuxer::with_limits(limits),
            raw: BytesMut::new(),
            raw_off: 0,
            discard_until: 0,
            ebml: None,
            info: None,
            tracks: None,
            track_numbers: Vec::new(),
            timecode_scale: vigil_mkv::DEFAULT_TIMECODE_SCALE,
            segment_seen: false,
            header_dirty: false,
            fragment: None,
            pending_tags: Vec::new(),
            pending_custom: 0,
            prev_latest_ns: None,
            draining: false,
            displaced: false,
            expired: false,
            eof: None,
            ended: false,
            ops: VecDeque::new(),
        }
    }

    /// The next op to carry out.
    pub fn next_op(&mut self) -> Option<Op> {
        self.ops.pop_front()
    }

    /// Whether the machine has ended (an [`Op::End`] was queued); it ignores input from then on.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Whether a fragment has begun and not completed.
    pub fn in_fragment(&self) -> bool {
        self.fragment.is_some()
    }

    /// Feeds body bytes.
    pub fn push(&mut self, data: &[u8]) {
        if self.ended || data.is_empty() {
            return;
        }
        self.raw.extend_from_slice(data);
        self.demux.push(data);
        self.discard_skipped();
        self.pump();
        self.flush_cluster(self.demux.position());
        if self.raw.len() > MAX_BUFFERED_BYTES {
            // Only bytes before a Cluster's Timecode can pile up so (every element elsewhere
            // is bounded by the demuxer's limits, or streamed, or discarded).
            self.fail(
                AckError::InvalidMkvData,
                None,
                format!("more than {MAX_BUFFERED_BYTES} bytes before a Cluster's Timecode"),
            );
        }
    }

    /// The input is over: completes the fragment being received (if its bytes are whole) and
    /// ends.
    pub fn finish(&mut self, how: EndOfInput) {
        if self.ended {
            return;
        }
        // A body that broke off inside a Cluster leaves that fragment incomplete: the producer
        // resends it on a new connection (the SDK resends what was not acknowledged), so it is
        // dropped rather than stored short. A Cluster that has ended (its Tags are being read)
        // holds all its frames and is kept. This is decided before the demuxer is told of the
        // end, which would end an unknown-size Cluster there.
        let broken = match &self.fragment {
            Some(f) if how.cut() && f.in_cluster => Some(f.timecode),
            _ => None,
        };
        self.eof = Some(how);
        let (error, why) = if how == EndOfInput::TooSlow {
            (
                super::sessions::SLOW_ERROR,
                "the request body brought in too little (minimum progress)",
            )
        } else {
            (AckError::StreamReadError, "the request body broke off")
        };
        if let Some(timecode) = broken {
            self.fail(error, Some(timecode), format!("{why} inside a fragment"));
            return;
        }
        self.demux.finish();
        self.pump();
        if self.ended {
            return;
        }
        if let Some(fragment) = self.fragment.take() {
            self.complete(fragment);
        }
        if how.cut() {
            // Between fragments, or after a whole one: nothing is lost, but the producer must
            // still hear why the session ends (it may have sent more that never arrived).
            self.fail(error, None, why.to_owned());
        } else {
            self.end();
        }
    }

    /// The server is shutting down: end after the fragment being received (at once if there is
    /// none, or if its Cluster has ended).
    pub fn drain(&mut self) {
        if self.ended {
            return;
        }
        match self.fragment.take() {
            None => self.end(),
            Some(f) if !f.in_cluster => {
                self.complete(f);
                self.end();
            }
            Some(f) => {
                self.fragment = Some(f);
                self.draining = true;
            }
        }
    }

    /// A newer connection to the stream won ([`super::sessions`]): end after the fragment
    /// being received with [`DISPLACED_ERROR`]. At once if there is none, or if its Cluster
    /// has ended (it is then complete); else when it ends: at the next Cluster, which the
    /// ack names (its timecode: the producer resends from there), or at an end-of-fragment
    /// tag. A body that ends first ends the session as usual, without the error (nothing was
    /// cut short).
    pub fn displace(&mut self) {
        if self.ended {
            return;
        }
        match self.fragment.take() {
            None => self.fail_displaced(None),
            Some(f) if !f.in_cluster => {
                self.complete(f);
                self.fail_displaced(None);
            }
            Some(f) => {
                self.fragment = Some(f);
                self.displaced = true;
            }
        }
    }

    /// The connection reached its maximum duration: error 4003 now if no fragment is being
    /// received, else when the next Cluster starts.
    pub fn expire(&mut self) {
        if self.ended {
            return;
        }
        if self.fragment.is_none() {
            self.fail(
                AckError::MaxConnectionDurationReached,
                None,
                "the connection reached its maximum duration".into(),
            );
        } else {
            self.expired = true;
        }
    }

    /// The driver failed (a store error): stop at once, discarding queued ops.
    pub fn abort(&mut self) {
        self.ended = true;
        self.fragment = None;
        self.ops.clear();
    }

    // ---- internals ----

    fn end(&mut self) {
        self.ops.push_back(Op::End);
        self.ended = true;
        self.fragment = None;
    }

    fn fail_displaced(&mut self, timecode: Option<u64>) {
        self.fail(
            DISPLACED_ERROR,
            timecode,
            "a newer connection to the stream displaced this one".into(),
        );
    }

    fn fail(&mut self, error: AckError, timecode: Option<u64>, detail: String) {
        if self.ended {
            return;
        }
        self.ops.push_back(Op::Error {
            error,
            timecode,
            detail,
        });
        self.end();
    }

    fn pump(&mut self) {
        while !self.ended {
            match self.demux.pull() {
                None => break,
                Some(Ok(event)) => self.on_event(event),
                Some(Err(e)) => self.on_mkv_error(&e),
            }
        }
    }

    fn on_mkv_error(&mut self, e: &MkvError) {
        let error = match e.kind {
            ErrorKind::TooLarge {
                id: ids::SIMPLE_BLOCK | ids::BLOCK_GROUP,
                ..
            } => AckError::MaxFragmentSizeReached,
            ErrorKind::Truncated
                if matches!(
                    self.eof,
                    Some(EndOfInput::Idle | EndOfInput::ReadError | EndOfInput::TooSlow)
                ) =>
            {
                AckError::StreamReadError
            }
            _ => AckError::InvalidMkvData,
        };
        self.fail(error, None, e.to_string());
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::EbmlHeader { span, .. } => {
                if self.segment_seen {
                    return self.fail(
                        AckError::InvalidMkvData,
                        None,
                        "a second EBML header in one PutMedia body".into(),
                    );
                }
                if let Some(b) = self.take_element(span.offset, span.end()) {
                    self.ebml = Some(b);
                }
            }
            Event::SegmentStart { span } => {
                if self.segment_seen {
                    return self.fail(
                        AckError::InvalidMkvData,
                        None,
                        "a second Segment in one PutMedia body".into(),
                    );
                }
                self.segment_seen = true;
                self.drop_raw_to(span.data_offset());
            }
            Event::Info { span, info } => {
                if info.timecode_scale == 0 {
                    return self.fail(AckError::InvalidMkvData, None, "TimecodeScale 0".into());
                }
                self.timecode_scale = info.timecode_scale;
                if let Some(b) = self.take_element(span.offset, span.end()) {
                    self.info = Some(b);
                    self.header_dirty = true;
                }
            }
            Event::Tracks { span, tracks } => {
                if tracks.len() > MAX_TRACKS {
                    return self.fail(
                        AckError::MoreThanAllowedTracksFound,
                        None,
                        format!("{} tracks; at most {MAX_TRACKS} are allowed", tracks.len()),
                    );
                }
                self.track_numbers = tracks.iter().map(|t| t.number).collect();
                if let Some(b) = self.take_element(span.offset, span.end()) {
                    self.tracks = Some(b);
                    self.register_header();
                }
            }
            Event::ClusterStart { span, timecode } => self.on_cluster_start(span.offset, timecode),
            Event::Frame(frame) => self.on_frame(&frame),
            Event::ClusterEnd { end, .. } => self.on_cluster_end(end),
            Event::Tags { span, tags } => self.on_tags(span.offset, span.end(), &tags),
            Event::Skipped { span, .. } => {
                if !self.fragment.as_ref().is_some_and(|f| f.in_cluster) {
                    let end = span.end().unwrap_or_else(|| self.demux.position());
                    self.discard_until = self.discard_until.max(end);
                    self.discard_skipped();
                }
            }
            Event::SegmentEnd { .. } => {}
        }
    }

    fn register_header(&mut self) {
        let parts = [
            self.ebml.as_deref().unwrap_or_default(),
            &SEGMENT_UNKNOWN_SIZE,
            self.info.as_deref().unwrap_or_default(),
            self.tracks.as_deref().unwrap_or_default(),
        ];
        let header: Vec<u8> = parts.concat();
        self.ops.push_back(Op::RegisterHeader(Bytes::from(header)));
        self.header_dirty = false;
    }

    fn on_cluster_start(&mut self, offset: u64, timecode: u64) {
        if self.tracks.is_none() {
            return self.fail(
                AckError::InvalidMkvData,
                Some(timecode),
                "a Cluster before the Tracks element".into(),
            );
        }
        if let Some(previous) = self.fragment.take() {
            self.complete(previous);
        }
        if self.displaced {
            return self.fail_displaced(Some(timecode));
        }
        if self.draining {
            return self.end();
        }
        if self.expired {
            return self.fail(
                AckError::MaxConnectionDurationReached,
                Some(timecode),
                "the connection reached its maximum duration".into(),
            );
        }
        let start_ns = i128::from(timecode) * i128::from(self.timecode_scale);
        let relative_ms = start_ns / 1_000_000;
        let producer_ms = match self.timecode_type {
            TimecodeType::Absolute => relative_ms,
            TimecodeType::Relative { start_ms } => i128::from(start_ms) + relative_ms,
        };
        let producer_ts_ms = match u64::try_from(producer_ms) {
            Ok(ms) if producer_ms <= MAX_TIMESTAMP_MS => ms,
            _ => {
                return self.fail(
                    AckError::InvalidProducerTimestamp,
                    Some(timecode),
                    format!("producer timestamp {producer_ms} ms is out of range"),
                );
            }
        };
        if let Some(previous) = self.prev_latest_ns
            && start_ns < previous
        {
            return self.fail(
                AckError::FragmentTimecodeLesserThanPrevious,
                Some(timecode),
                format!(
                    "Cluster at {start_ns} ns is before the previous fragment's latest frame \
                     ({previous} ns)"
                ),
            );
        }
        if self.header_dirty {
            self.register_header();
        }
        self.ops.push_back(Op::Begin {
            timecode,
            producer_ts_ms,
        });
        self.drop_raw_to(offset);
        self.fragment = Some(Fragment {
            timecode,
            start_ns,
            in_cluster: true,
            bytes: 0,
            custom_tags: std::mem::take(&mut self.pending_custom),
            early_tags: std::mem::take(&mut self.pending_tags),
            end_ns: start_ns,
            latest_frame_ns: None,
            tracks: Vec::new(),
        });
        self.flush_cluster(self.demux.position());
    }

    fn on_frame(&mut self, frame: &Frame) {
        if !self.track_numbers.contains(&frame.track) {
            return self.fail(
                AckError::TrackNumberMismatch,
                None,
                format!(
                    "a frame on track {}, which Tracks does not declare",
                    frame.track
                ),
            );
        }
        let Some(f) = self.fragment.as_mut() else {
            return self.fail(
                AckError::InvalidMkvData,
                None,
                "a frame outside a Cluster".into(),
            );
        };
        let t = i128::from(frame.time_ns);
        if let Some(previous) = self.prev_latest_ns
            && t < previous
        {
            return self.fail(
                AckError::FragmentTimecodeLesserThanPrevious,
                None,
                format!(
                    "a frame at {t} ns is before the previous fragment's latest frame \
                     ({previous} ns)"
                ),
            );
        }
        f.latest_frame_ns = Some(f.latest_frame_ns.map_or(t, |l| l.max(t)));
        let known = frame.duration_ns.map(i128::from);
        let offset = t + known.unwrap_or(0) - f.start_ns;
        if offset > MAX_FRAGMENT_DURATION_NS {
            return self.fail(
                AckError::MaxFragmentDurationReached,
                None,
                format!(
                    "a frame ends {} ms after its Cluster starts; fragments last at most {} ms",
                    offset / 1_000_000,
                    MAX_FRAGMENT_DURATION_NS / 1_000_000
                ),
            );
        }
        let entry = f.tracks.iter_mut().find(|e| e.track == frame.track);
        let previous_gap = entry.as_ref().and_then(|e| e.gap_ns);
        let gap = entry.as_ref().map(|e| t - e.last_ns).filter(|g| *g > 0);
        let estimate = known.or(gap).or(previous_gap).unwrap_or(0);
        f.end_ns = f.end_ns.max(t + estimate);
        match entry {
            Some(e) => {
                e.last_ns = t;
                e.gap_ns = gap.or(previous_gap);
            }
            None => f.tracks.push(TrackTiming {
                track: frame.track,
                last_ns: t,
                gap_ns: None,
            }),
        }
        self.flush_cluster(self.demux.position());
    }

    fn on_cluster_end(&mut self, end: u64) {
        self.flush_cluster(end);
        let early = match self.fragment.as_mut() {
            Some(f) => {
                f.in_cluster = false;
                std::mem::take(&mut f.early_tags)
            }
            None => Vec::new(),
        };
        for tags in early {
            self.append_to_fragment(tags);
        }
    }

    fn complete(&mut self, f: Fragment) {
        let ns = (f.end_ns - f.start_ns).max(0);
        let ms = (ns + 500_000) / 1_000_000;
        let duration_ms = u32::try_from(ms).unwrap_or(u32::MAX);
        self.prev_latest_ns = Some(f.latest_frame_ns.unwrap_or(f.start_ns));
        self.ops.push_back(Op::Complete { duration_ms });
    }

    /// Appends the Cluster's bytes up to stream offset `to`.
    fn flush_cluster(&mut self, to: u64) {
        if !self.fragment.as_ref().is_some_and(|f| f.in_cluster) {
            return;
        }
        let end = self.raw_end();
        let to = to.min(end);
        if to <= self.raw_off {
            return;
        }
        let Some(n) = usize::try_from(to - self.raw_off).ok() else {
            return;
        };
        let chunk = self.raw.split_to(n.min(self.raw.len())).freeze();
        self.raw_off = to;
        self.append_to_fragment(chunk);
    }

    fn append_to_fragment(&mut self, chunk: Bytes) {
        let Some(f) = self.fragment.as_mut() else {
            return;
        };
        let total = f.bytes.saturating_add(chunk.len());
        if total > MAX_FRAGMENT_BYTES {
            let timecode = f.timecode;
            return self.fail(
                AckError::MaxFragmentSizeReached,
                None,
                format!("the fragment at timecode {timecode} passes {MAX_FRAGMENT_BYTES} bytes"),
            );
        }
        f.bytes = total;
        self.ops.push_back(Op::Append(chunk));
    }

    fn raw_end(&self) -> u64 {
        self.raw_off + self.raw.len() as u64
    }

    /// Drops buffered bytes before stream offset `to`.
    fn drop_raw_to(&mut self, to: u64) {
        if to <= self.raw_off {
            return;
        }
        let n = usize::try_from(to - self.raw_off)
            .unwrap_or(usize::MAX)
            .min(self.raw.len());
        self.raw.advance(n);
        self.raw_off += n as u64;
    }

    fn discard_skipped(&mut self) {
        self.drop_raw_to(self.discard_until);
    }

    /// The raw bytes of a whole element the demuxer has just read, `offset..end`. The demuxer
    /// reports only elements whose bytes have all been pushed and that begin after what was
    /// handed out, so `None` (after failing the session) would be a bug, not an input.
    fn take_element(&mut self, offset: u64, end: Option<u64>) -> Option<Bytes> {
        let bytes = match end {
            Some(end) if offset >= self.raw_off && end >= offset && end <= self.raw_end() => {
                self.drop_raw_to(offset);
                usize::try_from(end - offset).ok().map(|n| {
                    let element = self.raw.split_to(n.min(self.raw.len())).freeze();
                    self.raw_off = end;
                    element
                })
            }
            _ => None,
        };
        if bytes.is_none() {
            self.fail(
                AckError::InternalError,
                None,
                format!("element at byte {offset} is not in the buffered input"),
            );
        }
        bytes
    }
}

#[cfg(test)]
mod tests;
