//! Vigil's Kinesis Video Streams control plane and media plane: the `kinesisvideo` and
//! `kinesis-video-media` services (`../shared/spec/kvs-api.md`), and Vigil's own camera
//! operations, so that unmodified AWS clients (the AWS SDKs, the CLI, the KVS producer SDKs)
//! create streams, stream into them and read them live.
//!
//! - [`service`]: [`Kvs`], this crate's [`vigil_api_common::front::Api`] (routing by path,
//!   authentication, the one dispatch `match`), and its state [`KvsState`].
//! - [`ops`]: the operations, one enum variant each, routed by path.
//! - [`control`]: the control plane.
//! - [`cameras`]: Vigil's own camera operations (the cameras themselves live in the binary).
//! - [`media`]: PutMedia (ingest and its acknowledgements) and GetMedia.
//! - [`metrics`]: what PutMedia counts.
//!
//! Archived media (ListFragments, GetMediaForFragmentList, HLS, DASH, clips, images) is
//! `vigil-api-playback`'s; what both speak (errors, ARNs, GetMedia documents) is in
//! `vigil-api-kvs-common`.

pub mod cameras;
pub mod control;
pub mod media;
pub mod metrics;
pub mod ops;
pub mod service;

pub use ops::Operation;
pub use service::{Call, Kvs, KvsState, run};
