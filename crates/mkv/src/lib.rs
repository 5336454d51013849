//! Matroska and WebM, as Amazon Kinesis Video Streams speaks them: a sans-IO streaming
//! demuxer and a muxer.
//!
//! This crate does no I/O and knows nothing of HTTP, storage or AWS: it turns bytes into
//! [`Event`]s and values into bytes. It implements the parts of RFC 8794 (EBML) and RFC 9559
//! (Matroska) that live media needs, including what KVS producers and GetMedia put on the wire
//! (`../shared/spec/kvs-api.md` §2.6 and §3): unknown-size Segments and Clusters, 8-byte size
//! fields, Tags between Clusters, and several EBML documents back to back.
//!
//! # Demuxing
//!
//! ```
//! use vigil_mkv::{Demuxer, Event};
//! # let input: &[u8] = &[];
//! let mut demuxer = Demuxer::new();
//! for chunk in input.chunks(4096) {
//!     demuxer.push(chunk);
//!     while let Some(event) = demuxer.pull() {
//!         match event? {
//!             Event::Frame(frame) => { /* frame.data is zero-copy */ }
//!             _ => {}
//!         }
//!     }
//! }
//! demuxer.finish();
//! while let Some(event) = demuxer.pull() {
//!     event?;
//! }
//! # Ok::<(), vigil_mkv::Error>(())
//! ```
//!
//! Events come in stream order. For each document: [`Event::EbmlHeader`],
//! [`Event::SegmentStart`], then the Segment's children as they come: [`Event::Info`],
//! [`Event::Tracks`], [`Event::Tags`], [`Event::Skipped`] for what is stepped over, and for
//! each Cluster [`Event::ClusterStart`] (once its Timestamp is read), one [`Event::Frame`] per
//! frame (per lace of a laced block), and [`Event::ClusterEnd`]; finally [`Event::SegmentEnd`].
//! Every event carries byte offsets, so that a fragment's exact bytes can be kept and forwarded
//! without re-encoding.
//!
//! Malformed input gives an [`Error`] with its byte offset, element and kind; nothing panics,
//! and [`Limits`] bound what a size field can make the demuxer hold.
//!
//! # Muxing
//!
//! [`Muxer`] writes documents with known or unknown sizes; `encode_*` functions write single
//! elements for callers that assemble output themselves (GetMedia's per-fragment documents).

mod block;
mod demux;
pub mod ebml;
mod elements;
mod error;
mod event;
pub mod fuzzing;
pub mod ids;
mod mux;

pub use demux::{Demuxer, Limits};
pub use error::{Error, ErrorKind, MuxError};
pub use event::{
    Audio, DEFAULT_TIMECODE_SCALE, EbmlHeader, Event, Frame, Info, SimpleTag, Span, Tag, TagValue,
    Targets, TrackEntry, TrackKind, Video,
};
pub use mux::{
    DEFAULT_APP, Muxer, MuxerOptions, SizeMode, encode_ebml_header, encode_info, encode_tags,
    encode_tracks,
};
