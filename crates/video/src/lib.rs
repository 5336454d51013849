//! Video decoding for Vigil: pictures out of the H.264 and H.265 samples the store keeps.
//!
//! Two ways in, one per user:
//!
//! - [`decode`]: a run of samples at once, the pictures wanted by their index in presentation
//!   order (GetImages, which decodes one fragment per call), with the YUV to RGB conversion,
//!   bilinear resizing and the JPEG/PNG encoders GetImages answers with.
//! - [`stream`]: a [`FrameDecoder`] fed one sample at a time as a live stream arrives, giving
//!   each picture with its presentation time as soon as the decoder lets it out (the face
//!   analysis of live streams).
//!
//! The default build decodes H.264 with OpenH264 (built from its bundled source, no system
//! package); the `ffmpeg` feature adds the system's libavcodec, for H.265 and a faster H.264.
//! The crate does no I/O and knows nothing of HTTP, storage or AWS. Its input comes from
//! producers: every length and count is checked, and a malformed sample is an error, not a
//! panic.

pub mod decode;
pub mod stream;

pub use decode::{AvcConfig, Colour, HvcConfig, PixelError, Rgb};
pub use stream::{FrameDecoder, Picture, VideoCodec};
