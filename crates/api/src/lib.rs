//! Vigil's Kinesis Video Streams API: the HTTP face of the server.
//!
//! This is the only crate that knows AWS JSON shapes and error names. It turns requests into
//! calls on the fragment store (`vigil-store`) and the Matroska crate (`vigil-mkv`), and
//! answers as KVS does, closely enough that unmodified AWS clients (the AWS SDKs, the CLI, the
//! KVS producer SDKs) work against it. `../shared/spec/kvs-api.md` is the wire reference.
//!
//! - [`server`]: the router, the request pipeline and the one dispatch `match`.
//! - [`ops`]: the operations, one enum variant each, routed by path.
//! - [`error`]: [`ApiError`], variants named after the AWS exceptions.
//! - [`auth`]: the seam to authentication ([`Authenticator`]).
//! - [`control`]: the control plane.
//! - [`cameras`]: Vigil's own camera operations (the cameras themselves live in the binary).
//! - [`console`]: the web console's assets, sign-in sessions and console-only reads.
//! - [`media`]: PutMedia, GetMedia, ListFragments, GetMediaForFragmentList.
//! - [`model`], [`validate`]: wire shapes and the service model's validation rules.
//! - [`metrics`]: counters and histograms for `/metrics`.
//! - [`rekognition`]: the Rekognition face-collection API (AWS JSON 1.1 at `POST /`).

pub mod auth;
pub mod cameras;
pub mod console;
pub mod control;
pub mod error;
pub mod media;
pub mod metrics;
pub mod model;
pub mod ops;
pub mod rekognition;
pub mod server;
pub mod validate;

pub use auth::{Anonymous, Authenticator, Payload, Principal};
pub use error::{ApiError, ApiResult};
pub use ops::Operation;
pub use server::{ApiConfig, ApiState, Call, Origin, router};
