//! The face engine as the API uses it: one [`vigil_faces::Engine`] per server, created on
//! first use (its models load in the time of a few requests; the binary warms it at start),
//! and a bounded pool for the CPU-heavy work.
//!
//! Decoding, detection and embedding take tens of milliseconds of CPU each. They run on
//! tokio's blocking pool, at most [`FaceEngine::permits`] at a time (the number of CPUs), so
//! a burst of image requests queues instead of spawning hundreds of threads that would
//! compete for the same cores; the runtime's workers, which carry every PutMedia ack and live
//! frame, never run them.

use std::sync::Arc;

use image::RgbImage;
use tokio::sync::Semaphore;
use vigil_faces::{DetectedFace, Embedding, Engine, ImageError};

use super::error::{RekResult, RekognitionError};

/// The largest image Rekognition takes inline (`Image.Bytes`), in bytes: 5 MB.
pub const MAX_IMAGE_BYTES: usize = 5 * 1024 * 1024;

/// The pool engine work runs on. The engine itself is one per process ([`engine`]).
#[derive(Debug)]
pub struct FaceEngine {
    permits: Arc<Semaphore>,
    n_permits: usize,
}

impl Default for FaceEngine {
    fn default() -> Self {
        let n = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            permits: Arc::new(Semaphore::new(n)),
            n_permits: n,
        }
    }
}

pub use vigil_analysis::engine::configure;

/// The process's engine ([`vigil_analysis::engine::engine`]).
pub fn engine() -> RekResult<Arc<Engine>> {
    Ok(vigil_analysis::engine::engine()?)
}

/// A decoded image.
#[derive(Debug)]
pub struct Picture {
    /// The pixels.
    pub image: RgbImage,
}

impl Picture {
    /// Width in pixels, as f32 (for ratios).
    pub fn width(&self) -> f32 {
        self.image.width().max(1) as f32
    }

    /// Height in pixels, as f32.
    pub fn height(&self) -> f32 {
        self.image.height().max(1) as f32
    }
}

impl FaceEngine {
    /// How many engine jobs run at once.
    pub fn permits(&self) -> usize {
        self.n_permits
    }

    /// Runs `f` with the engine on the blocking pool, within the pool's bound. The time it
    /// takes, waiting for the pool included, is `vigil_face_engine_seconds`.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Engine) -> RekResult<T> + Send + 'static,
    ) -> RekResult<T> {
        let started = std::time::Instant::now();
        let out = async {
            let _permit = self.permits.clone().acquire_owned().await.map_err(|_| {
                RekognitionError::InternalServerError("the face engine pool is closed".into())
            })?;
            tokio::task::spawn_blocking(move || f(&*engine()?))
                .await
                .map_err(|e| {
                    RekognitionError::InternalServerError(format!("an engine task failed: {e}"))
                })?
        }
        .await;
        crate::metrics::metrics()
            .face_engine_seconds
            .observe(started.elapsed());
        out
    }
}

/// Decodes `Image.Bytes` (already base64-decoded): JPEG or PNG, at most 5 MB.
pub fn decode(bytes: &[u8]) -> RekResult<Picture> {
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(RekognitionError::ImageTooLargeException(format!(
            "Image size is too large: {} bytes, at most {MAX_IMAGE_BYTES}.",
            bytes.len()
        )));
    }
    match vigil_faces::decode_image(bytes) {
        Ok(image) => Ok(Picture { image }),
        Err(e @ ImageError::TooLarge { .. }) => Err(RekognitionError::ImageTooLargeException(
            format!("Image size is too large: {e}."),
        )),
        Err(e) => Err(RekognitionError::InvalidImageFormatException(format!(
            "Request has invalid image format: {e}."
        ))),
    }
}

/// Detects faces (largest first).
pub fn detect(engine: &Engine, picture: &Picture) -> RekResult<Vec<DetectedFace>> {
    engine
        .detect(&picture.image)
        .map_err(|e| RekognitionError::InternalServerError(format!("face detection: {e}")))
}

/// The embedding of one detected face.
pub fn embed(engine: &Engine, picture: &Picture, face: &DetectedFace) -> RekResult<Embedding> {
    engine
        .embed(&picture.image, face)
        .map_err(|e| RekognitionError::InternalServerError(format!("face embedding: {e}")))
}
