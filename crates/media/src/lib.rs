//! Packaging for playback: Kinesis Video Streams fragments (Matroska Clusters, as the store
//! holds them) remuxed, never decoded, into what players read: fragmented MP4 (HLS and DASH
//! init and media segments), progressive MP4 (GetClip), MPEG-TS (HLS), and the HLS and DASH
//! manifests (`../shared/spec/kvs-api.md` §4.3-§4.5).
//!
//! This crate does no I/O and knows nothing of HTTP, storage or AWS JSON: it turns tracks and
//! samples ([`sample`]) into bytes and text.
//!
//! - [`codec`]: codec identification and configuration (H.264 `avcC`, H.265 `hvcC`, AAC
//!   AudioSpecificConfig, G.711 WAVEFORMATEX) from Matroska CodecID and CodecPrivate, and the
//!   RFC 6381 codec strings manifests carry.
//! - [`sample`]: the model every packager takes: [`sample::Track`] and [`sample::Sample`],
//!   and their extraction from a track header and fragment payloads. Decode times are
//!   derived with a shift fixed per track (the codec's declared reorder depth × the frame
//!   duration, [`sample::Track::dts_shift`]), so each fragment may be packaged alone, in its
//!   own call, and still line up with its neighbours.
//! - [`fmp4`]: fragmented MP4 init and media segments (HLS fMP4, DASH).
//! - [`mp4`]: progressive MP4 with the `moov` in front (GetClip).
//! - [`ts`]: MPEG-TS segments for HLS (H.264 and AAC).
//! - [`hls`]: HLS master and media playlists, low-latency HLS included.
//! - [`parts`]: where low-latency HLS partial segments are cut in a fragment's samples.
//! - [`dash`]: DASH manifests (SegmentTemplate + SegmentTimeline).

/// The version of what this crate serves. Bump it whenever the bytes packaged for the same
/// input change (box layout, decode times, edit lists, TS muxing, …): caches and golden tests
/// (`tests/media/golden.rs`, which pins the SHA-256 of packaged outputs to this version) key
/// on it, so a change of served bytes without a bump fails the tests.
pub const FORMAT_VERSION: u32 = 1;

pub mod annexb;
mod boxes;
pub mod codec;
pub mod dash;
pub mod error;
pub mod fmp4;
pub mod fuzzing;
pub mod hls;
pub mod mp4;
pub mod parts;
pub mod sample;
pub mod ts;

pub use error::{Error, Result};
