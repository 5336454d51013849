//! What the demuxer reports, and what the muxer takes.
//!
//! Content types ([`EbmlHeader`], [`Info`], [`TrackEntry`], [`Tag`]) carry only values, so that
//! the muxer can take them; events add where in the stream each element lies ([`Span`]).

use bytes::Bytes;

/// Where an element lies in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Span {
    /// Offset of the element's first byte (its ID) from the start of the stream.
    pub offset: u64,
    /// Length of the ID and size fields.
    pub header_len: u8,
    /// Payload size, or `None` for an unknown-size Segment or Cluster.
    pub size: Option<u64>,
}

impl Span {
    /// Offset of the element's first payload byte.
    pub fn data_offset(&self) -> u64 {
        self.offset + u64::from(self.header_len)
    }

    /// Offset just past the element, where its size is known.
    pub fn end(&self) -> Option<u64> {
        self.size.map(|s| self.data_offset().saturating_add(s))
    }
}

/// One demuxer event. See the crate docs for the order they come in.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// An EBML header: a new document starts (GetMedia output holds one per fragment).
    EbmlHeader {
        span: Span,
        header: EbmlHeader,
    },
    SegmentStart {
        span: Span,
    },
    Info {
        span: Span,
        info: Info,
    },
    Tracks {
        span: Span,
        tracks: Vec<TrackEntry>,
    },
    /// A Cluster's Timestamp has been read. Reported when the Timestamp element is read, which
    /// Matroska puts first in the Cluster; `span` is the Cluster's own.
    ClusterStart {
        span: Span,
        timecode: u64,
    },
    Frame(Frame),
    /// The Cluster that started at `offset` ends at `end` (exclusive): its size ran out, or, for
    /// an unknown-size Cluster, a level-1 element, an EBML header or the end of input came.
    /// `offset..end` are the Cluster's exact bytes.
    ClusterEnd {
        offset: u64,
        end: u64,
    },
    Tags {
        span: Span,
        tags: Vec<Tag>,
    },
    /// An element the demuxer steps over without reading (Void, CRC-32, SeekHead, Cues,
    /// Chapters, Attachments, Position, PrevSize, unknown IDs…), reported for tools that show the
    /// element tree. `depth` is 0 at the top level, 1 in the Segment, 2 in a Cluster.
    Skipped {
        id: u32,
        span: Span,
        depth: u8,
    },
    /// The Segment that started at `offset` ends at `end` (exclusive).
    SegmentEnd {
        offset: u64,
        end: u64,
    },
}

/// The EBML header's fields (RFC 8794 §11.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EbmlHeader {
    pub version: u64,
    pub read_version: u64,
    pub max_id_length: u64,
    pub max_size_length: u64,
    /// `matroska` or `webm`.
    pub doc_type: String,
    pub doc_type_version: u64,
    pub doc_type_read_version: u64,
}

impl EbmlHeader {
    /// The header Kinesis Video Streams producers write (DocType `matroska`, version 2).
    pub fn kvs() -> Self {
        EbmlHeader {
            version: 1,
            read_version: 1,
            max_id_length: 4,
            max_size_length: 8,
            doc_type: "matroska".to_owned(),
            doc_type_version: 2,
            doc_type_read_version: 2,
        }
    }

    /// A WebM header.
    pub fn webm() -> Self {
        EbmlHeader {
            doc_type: "webm".to_owned(),
            doc_type_version: 4,
            ..Self::kvs()
        }
    }
}

impl Default for EbmlHeader {
    fn default() -> Self {
        Self::kvs()
    }
}

/// Segment Information (RFC 9559 §5.1.2).
#[derive(Debug, Clone, PartialEq)]
pub struct Info {
    /// Nanoseconds per timecode tick (TimestampScale; default 1 000 000, so ticks are ms).
    pub timecode_scale: u64,
    pub segment_uid: Option<Bytes>,
    pub title: Option<String>,
    pub muxing_app: Option<String>,
    pub writing_app: Option<String>,
    /// In ticks, as a float.
    pub duration: Option<f64>,
    /// Nanoseconds since 2001-01-01T00:00:00 UTC.
    pub date_utc: Option<i64>,
}

impl Default for Info {
    fn default() -> Self {
        Info {
            timecode_scale: DEFAULT_TIMECODE_SCALE,
            segment_uid: None,
            title: None,
            muxing_app: None,
            writing_app: None,
            duration: None,
            date_utc: None,
        }
    }
}

/// Matroska's default TimestampScale: 1 ms ticks.
pub const DEFAULT_TIMECODE_SCALE: u64 = 1_000_000;

/// A track's kind, from its TrackType.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackKind {
    Video,
    Audio,
    Subtitle,
    Other,
}

impl TrackKind {
    pub fn from_track_type(track_type: u64) -> Self {
        match track_type {
            1 => TrackKind::Video,
            2 => TrackKind::Audio,
            0x11 => TrackKind::Subtitle,
            _ => TrackKind::Other,
        }
    }

    /// `video`, `audio`, `subtitle` or `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            TrackKind::Video => "video",
            TrackKind::Audio => "audio",
            TrackKind::Subtitle => "subtitle",
            TrackKind::Other => "other",
        }
    }
}

/// A TrackEntry (RFC 9559 §5.1.4.1).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrackEntry {
    pub number: u64,
    pub uid: u64,
    /// 1 video, 2 audio, 0x11 subtitle, … (see [`TrackKind`]).
    pub track_type: u64,
    pub codec_id: String,
    pub codec_private: Option<Bytes>,
    pub name: Option<String>,
    pub language: Option<String>,
    pub default_duration_ns: Option<u64>,
    pub codec_delay_ns: Option<u64>,
    /// The bytes a header-stripping ContentEncoding (ContentCompAlgo 3) removed from the start
    /// of every frame; the demuxer puts them back, so [`Frame::data`] is always the whole frame.
    /// The muxer writes frames whole and ignores this.
    pub header_removal: Option<Bytes>,
    pub video: Option<Video>,
    pub audio: Option<Audio>,
}

impl TrackEntry {
    pub fn kind(&self) -> TrackKind {
        TrackKind::from_track_type(self.track_type)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Video {
    pub pixel_width: u64,
    pub pixel_height: u64,
    pub display_width: Option<u64>,
    pub display_height: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Audio {
    /// Hz (default 8000).
    pub sampling_frequency: f64,
    pub output_sampling_frequency: Option<f64>,
    /// Default 1.
    pub channels: u64,
    pub bit_depth: Option<u64>,
}

impl Default for Audio {
    fn default() -> Self {
        Audio {
            sampling_frequency: 8000.0,
            output_sampling_frequency: None,
            channels: 1,
            bit_depth: None,
        }
    }
}

/// One frame from a SimpleBlock or a BlockGroup's Block; a laced block gives several.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The SimpleBlock's or BlockGroup's span.
    pub span: Span,
    pub track: u64,
    /// Absolute timestamp in ticks: Cluster Timestamp + the block's relative timestamp. The
    /// n-th of N laced frames adds floor(n × D / N) ticks, D being the block's duration in ticks
    /// (BlockDuration, or N × DefaultDuration), as ffmpeg computes it.
    pub timecode: i64,
    /// `timecode` × TimestampScale.
    pub time_ns: i64,
    /// From BlockDuration (divided among laces) or else the track's DefaultDuration.
    pub duration_ns: Option<u64>,
    /// SimpleBlock key flag; for a BlockGroup, the absence of ReferenceBlock.
    pub keyframe: bool,
    pub discardable: bool,
    pub invisible: bool,
    /// This frame's place in its block's lace (0 and 1 when the block is not laced).
    pub lace_index: u16,
    pub lace_count: u16,
    pub data: Bytes,
}

/// A Tag: the SimpleTags that apply to its Targets (RFC 9559 §5.1.8).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tag {
    pub targets: Targets,
    pub simple_tags: Vec<SimpleTag>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Targets {
    pub type_value: Option<u64>,
    pub target_type: Option<String>,
    pub track_uids: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SimpleTag {
    pub name: String,
    pub language: Option<String>,
    pub default: Option<bool>,
    pub value: TagValue,
    /// Nested SimpleTags.
    pub children: Vec<SimpleTag>,
}

impl SimpleTag {
    /// A SimpleTag with a string value.
    pub fn string(name: impl Into<String>, value: impl Into<String>) -> Self {
        SimpleTag {
            name: name.into(),
            value: TagValue::String(value.into()),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TagValue {
    #[default]
    None,
    String(String),
    Binary(Bytes),
}

impl TagValue {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            TagValue::String(s) => Some(s),
            _ => None,
        }
    }
}
