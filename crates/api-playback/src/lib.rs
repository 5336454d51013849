//! Vigil's Kinesis Video Streams archived media: the `kinesis-video-archived-media` service
//! (`../shared/spec/kvs-api.md` §4), so that the AWS SDKs, the CLI, players given an HLS or
//! DASH URL, and KVS's own tools read stored media back.
//!
//! - [`service`]: [`Playback`], this crate's [`vigil_api_common::front::Api`], its state
//!   [`PlaybackState`], the one dispatch `match`, and the playback GETs ([`service::routes`]).
//! - [`ops`]: the operations, one enum variant each, routed by path.
//! - [`archived`]: ListFragments and GetMediaForFragmentList.
//! - [`streaming`]: HLS and DASH sessions (GetHLSStreamingSessionURL,
//!   GetDASHStreamingSessionURL, their GETs, low-latency HLS).
//! - [`clip`]: GetClip (MP4 clips packaged by `vigil-media`).
//! - [`images`]: GetImages (frames decoded with OpenH264 or libavcodec, then JPEG or PNG).
//! - [`heavy`]: the caps on concurrent GetClip and GetImages calls, per key and in all.
//!
//! Fragments are read as `vigil-api-kvs-common`'s crate docs say they are stored.

pub mod archived;
pub mod clip;
pub mod heavy;
pub mod images;
pub mod ops;
pub mod service;
pub mod streaming;

pub use ops::Operation;
pub use service::{Call, Playback, PlaybackConfig, PlaybackState, routes, run};
