//! Face analysis for Vigil: detection (boxes, five landmarks, confidence), alignment onto the
//! standard 112x112 template, identity embeddings, similarity on Rekognition's 0-100 scale, and
//! face indexes for search.
//!
//! The crate does no I/O and knows nothing of HTTP, storage or AWS: images in, values out.
//!
//! The engine ([`Engine`]) runs two ONNX models embedded in the binary (see `models/README.md`
//! for their provenance, licences and SHA-256): the CenterFace detector (boxes, five landmarks,
//! confidence, at any input size) and the `fr_feature` embedder (512 values from a 112x112 crop
//! aligned onto the standard ArcFace five-point template). Inference is pure Rust (`tract-onnx`)
//! by default, or onnxruntime loaded from a shared library when the options ask for it
//! ([`Backend`]); no model is read from disk or downloaded at run time.
//!
//! Pipeline: [`decode_image`] (bounded in memory) -> [`Engine::detect`] (resize, CenterFace,
//! decoding, NMS, pose and quality) -> [`Engine::embed`] (similarity transform from the five
//! landmarks, bilinear warp, normalisation, `fr_feature`, L2 normalisation) -> [`similarity`]
//! (cosine mapped onto Rekognition's 0-100 scale, 80 at the calibrated match threshold).

mod align;
mod calibration;
mod detect;
mod embed;
mod engine;
mod image;
mod models;
mod onnxruntime;
mod quality;

pub use align::{ARCFACE_TEMPLATE, CROP_SIZE, Similarity, align_face, estimate_similarity};
pub use calibration::{MATCH_COSINE, MATCH_THRESHOLD, cosine, similarity, similarity_from_cosine};
pub use detect::{CONFIDENCE_THRESHOLD, MIN_FACE_PX, nms};
pub use engine::{Backend, Engine, EngineOptions, Error};
pub use image::{ImageError, MAX_PIXELS, decode_image};
pub use models::{MODEL_VERSION, Model};

/// Internals exposed for the parity tests and benchmarks (tensors exactly as each model gets
/// them). Not part of the stable API.
#[doc(hidden)]
pub mod internals {
    pub use crate::detect::{DetectInput, centerface_input, decode_centerface};
    pub use crate::embed::feature_input;
}

pub mod index;

/// A point in image pixels (origin top left, x to the right, y down).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Point {
    /// Pixels from the left edge.
    pub x: f32,
    /// Pixels from the top edge.
    pub y: f32,
}

/// An axis-aligned box in image pixels.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Rect {
    /// Left edge, pixels.
    pub left: f32,
    /// Top edge, pixels.
    pub top: f32,
    /// Width, pixels.
    pub width: f32,
    /// Height, pixels.
    pub height: f32,
}

/// Head orientation in degrees, as Rekognition reports it (each in -180..180).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Pose {
    /// Rotation in the image plane.
    pub roll: f32,
    /// Turn left/right.
    pub yaw: f32,
    /// Nod up/down.
    pub pitch: f32,
}

/// Image quality of the face region, each 0-100 (higher is better), as Rekognition reports it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Quality {
    /// Mean brightness of the face region.
    pub brightness: f32,
    /// Sharpness of the face region.
    pub sharpness: f32,
}

/// One detected face.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectedFace {
    /// The face's box, clipped to the image.
    pub rect: Rect,
    /// Five landmarks in the order of [`Landmark`]: the subject's left eye (on the image's
    /// right for a frontal face, Rekognition's `eyeLeft`), right eye, nose tip, left and right
    /// mouth corners.
    pub landmarks: [Point; 5],
    /// Detector confidence, 0-1.
    pub confidence: f32,
    /// Head pose estimated from the landmarks.
    pub pose: Pose,
    /// Brightness and sharpness of the face region.
    pub quality: Quality,
}

/// The order of [`DetectedFace::landmarks`], named as Rekognition names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Landmark {
    /// `eyeLeft`.
    EyeLeft,
    /// `eyeRight`.
    EyeRight,
    /// `nose`.
    Nose,
    /// `mouthLeft`.
    MouthLeft,
    /// `mouthRight`.
    MouthRight,
}

/// An identity embedding: L2-normalised, [`EMBEDDING_DIM`] values.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding(pub Box<[f32]>);

/// The length of an [`Embedding`].
pub const EMBEDDING_DIM: usize = 512;
