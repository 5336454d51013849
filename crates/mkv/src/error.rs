//! Demuxer and muxer errors. A demuxer error always says where in the stream it happened and in
//! which element, so a producer's author can find the byte that is wrong.

use std::fmt;

use crate::ids;

/// A malformed or unsupported input, found at `offset` bytes from the start of the stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Error {
    /// Stream offset of the element (or byte) where the problem is.
    pub offset: u64,
    /// The element being read, where one is known.
    pub element: Option<u32>,
    pub kind: ErrorKind,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte offset {}", self.kind, self.offset)?;
        if let Some(id) = self.element {
            write!(f, " in element {}", ids::describe(id))?;
        }
        Ok(())
    }
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    #[error("not a Matroska or WebM stream: expected an EBML header, found element {}", ids::describe(*.found))]
    NotMatroska { found: u32 },
    #[error("invalid element ID (first byte {first_byte:#04X} announces more than 4 bytes)")]
    InvalidId { first_byte: u8 },
    #[error("invalid variable-size integer (first byte 0x00 announces more than 8 bytes)")]
    InvalidVint,
    #[error("unexpected element {} where {expected} was expected", ids::describe(*.found))]
    Unexpected { expected: &'static str, found: u32 },
    #[error("element {} of {size} bytes exceeds the {limit}-byte limit", ids::describe(*.id))]
    TooLarge { id: u32, size: u64, limit: u64 },
    #[error("element {} has an unknown size, which only Segment and Cluster may have", ids::describe(*.id))]
    UnknownSizeNotAllowed { id: u32 },
    #[error("element {} runs past its parent's end (byte {parent_end})", ids::describe(*.id))]
    Overrun { id: u32, parent_end: u64 },
    #[error("the input ends inside an element")]
    Truncated,
    #[error("unsupported DocType {0:?} (only \"matroska\" and \"webm\" are read)")]
    DocType(String),
    #[error("unsupported EBML header: {0}")]
    UnsupportedEbml(&'static str),
    #[error("{what} of {len} bytes is not a valid width")]
    InvalidValue { what: &'static str, len: u64 },
    #[error("missing mandatory element {}", ids::describe(*.0))]
    Missing(u32),
    #[error("invalid value: {0}")]
    Invalid(&'static str),
    #[error("a block appears before the Cluster's Timestamp")]
    BlockBeforeTimestamp,
    #[error("invalid block: {0}")]
    InvalidBlock(&'static str),
    #[error("invalid lacing: {0}")]
    InvalidLacing(&'static str),
    #[error("SimpleTags nested deeper than {0} levels")]
    TagsTooDeep(usize),
    #[error("more than {limit} {what}")]
    TooMany { what: &'static str, limit: usize },
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    #[error("timestamp out of range (cluster {cluster} + block {relative}, scale {scale} ns)")]
    TimestampOverflow {
        cluster: u64,
        relative: i16,
        scale: u64,
    },
}

impl Error {
    pub(crate) fn new(offset: u64, element: Option<u32>, kind: ErrorKind) -> Self {
        Error {
            offset,
            element,
            kind,
        }
    }
}

/// A muxer call made out of order, or a value Matroska cannot carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MuxError {
    #[error("no document is open: call begin_document or begin_segment first")]
    NoDocument,
    #[error("a document is already open")]
    DocumentOpen,
    #[error("no cluster is open: call begin_cluster first")]
    NoCluster,
    #[error("track number 0 is reserved")]
    TrackZero,
    #[error("two tracks with number {0}")]
    DuplicateTrack(u64),
    #[error("TimestampScale 0")]
    TimestampScaleZero,
    #[error(
        "block timestamp {timestamp} is {relative} from its cluster's {cluster}, outside -32768..=32767"
    )]
    RelativeTimestamp {
        timestamp: i64,
        cluster: u64,
        relative: i128,
    },
}
