//! The engine: the models loaded and optimised once, shared by every thread.
//!
//! `tract` plans are immutable once built (`SimplePlan::run(&self)` makes its own state per
//! call), so one [`Engine`] behind an `Arc` serves any number of threads without a lock on the
//! hot path. CenterFace is fully convolutional and tract optimises for one input shape, so
//! detection keeps one plan per padded input shape, built on first use (the working size fixes
//! the long side, so an image's aspect ratio picks among a few dozen shapes at most; the common
//! 16:9 and 4:3 ones are built by [`Engine::new`]).

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::{Arc, Mutex, PoisonError};

use image::RgbImage;
use tract_onnx::prelude::*;

use crate::detect::{self, CONFIDENCE_THRESHOLD, DetectInput, MIN_FACE_PX};
use crate::embed::{feature_input, l2_normalise};
use crate::{DetectedFace, EMBEDDING_DIM, Embedding, Model, align, quality};

type Plan = TypedRunnableModel<TypedModel>;

/// CenterFace's four outputs (heatmap, scale, offset, landmarks), flat, and the maps' (height,
/// width).
pub type CenterFaceOutputs = (Vec<Vec<f32>>, (usize, usize));

/// Why the engine failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An embedded model did not load or optimise (a build defect, not an input problem).
    #[error("loading {model}: {message}")]
    Load {
        /// Which model.
        model: Model,
        /// tract's message.
        message: String,
    },
    /// A model failed while running.
    #[error("running {model}: {message}")]
    Inference {
        /// Which model.
        model: Model,
        /// tract's message.
        message: String,
    },
    /// A model's output did not have the shape the engine expects.
    #[error("unexpected output from {model}: {message}")]
    Output {
        /// Which model.
        model: Model,
        /// What was wrong.
        message: String,
    },
    /// The image has no pixels.
    #[error("empty image ({width}x{height})")]
    EmptyImage {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
    /// The face's landmarks coincide or are not finite, so no aligned crop exists.
    #[error("degenerate face landmarks: no alignment exists")]
    DegenerateLandmarks,
}

/// Tunables of the engine; [`Default`] is what [`Engine::new`] uses.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineOptions {
    /// Detection working size: images are scaled down (never up) so that their long side is at
    /// most this (rounded up to a multiple of 32). Default 640: faces of about 20 pixels at
    /// that scale are found; a larger size finds smaller faces, more slowly.
    pub detect_long_side: u32,
    /// Detector confidence below which faces are dropped, 0-1. Default
    /// [`CONFIDENCE_THRESHOLD`].
    pub confidence_threshold: f32,
    /// Faces narrower than this, image pixels, are dropped. Default [`MIN_FACE_PX`].
    pub min_face_px: f32,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            detect_long_side: 640,
            confidence_threshold: CONFIDENCE_THRESHOLD,
            min_face_px: MIN_FACE_PX,
        }
    }
}

/// Face detection and embeddings on the CPU. `Send + Sync`: share one through an `Arc`.
#[derive(Debug)]
pub struct Engine {
    options: EngineOptions,
    /// CenterFace as parsed, before its input shape is set.
    centerface: InferenceModel,
    /// Optimised CenterFace plans by padded input (height, width).
    detect_plans: Mutex<HashMap<(usize, usize), Arc<Plan>>>,
    feature: Plan,
}

fn load_err(model: Model) -> impl Fn(TractError) -> Error {
    move |e| Error::Load {
        model,
        message: format!("{e:#}"),
    }
}

fn run_err(model: Model) -> impl Fn(TractError) -> Error {
    move |e| Error::Inference {
        model,
        message: format!("{e:#}"),
    }
}

fn parse(model: Model) -> Result<InferenceModel, Error> {
    tract_onnx::onnx()
        .model_for_read(&mut Cursor::new(model.bytes()))
        .map_err(load_err(model))
}

impl Engine {
    /// Loads the embedded models with the default (tract) backend and options. No I/O.
    pub fn new() -> Result<Engine, Error> {
        Engine::with_options(EngineOptions::default())
    }

    /// Loads the embedded models with the given options. No I/O.
    pub fn with_options(options: EngineOptions) -> Result<Engine, Error> {
        let centerface = parse(Model::CenterFace)?;
        let feature = parse(Model::FrFeature)?
            .with_input_fact(0, f32::fact([1, 3, 112, 112]).into())
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(load_err(Model::FrFeature))?;
        let engine = Engine {
            options,
            centerface,
            detect_plans: Mutex::new(HashMap::new()),
            feature,
        };
        // The shapes of 16:9 and 4:3 landscape images.
        for (w, h) in [(1280, 720), (640, 480)] {
            let probe = RgbImage::new(w, h);
            let input = detect::centerface_input(&probe, engine.options.detect_long_side);
            engine.detect_plan(input.height, input.width)?;
        }
        Ok(engine)
    }

    /// The options in use.
    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    fn detect_plan(&self, height: usize, width: usize) -> Result<Arc<Plan>, Error> {
        let cached = self
            .detect_plans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(height, width))
            .cloned();
        if let Some(plan) = cached {
            return Ok(plan);
        }
        // Built outside the lock: two threads may both build the same shape once; the second
        // insert wins, harmlessly.
        let mut model = self.centerface.clone();
        let err = load_err(Model::CenterFace);
        model
            .set_input_fact(0, f32::fact([1, 3, height, width]).into())
            .map_err(&err)?;
        for i in 0..model.output_outlets().map_err(&err)?.len() {
            model
                .set_output_fact(i, InferenceFact::default())
                .map_err(&err)?;
        }
        let plan = Arc::new(
            model
                .into_optimized()
                .and_then(|m| m.into_runnable())
                .map_err(&err)?,
        );
        self.detect_plans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((height, width), Arc::clone(&plan));
        Ok(plan)
    }

    /// Runs CenterFace on a prepared input; its four outputs (heatmap, scale, offset,
    /// landmarks), flat, and the maps' (height, width).
    pub fn run_centerface(&self, input: &DetectInput) -> Result<CenterFaceOutputs, Error> {
        let model = Model::CenterFace;
        let plan = self.detect_plan(input.height, input.width)?;
        let tensor = Tensor::from_shape(&[1, 3, input.height, input.width], &input.tensor)
            .map_err(run_err(model))?;
        let outputs = plan
            .run(tvec!(tensor.into_tvalue()))
            .map_err(run_err(model))?;
        let (mh, mw) = (input.height / 4, input.width / 4);
        let mut flat = Vec::with_capacity(4);
        for (i, channels) in [1usize, 2, 2, 10].into_iter().enumerate() {
            let out = outputs.get(i).ok_or_else(|| Error::Output {
                model,
                message: format!("{} outputs, expected 4", outputs.len()),
            })?;
            if out.shape() != [1, channels, mh, mw] {
                return Err(Error::Output {
                    model,
                    message: format!(
                        "output {i} has shape {:?}, expected [1, {channels}, {mh}, {mw}]",
                        out.shape()
                    ),
                });
            }
            flat.push(out.as_slice::<f32>().map_err(run_err(model))?.to_vec());
        }
        Ok((flat, (mh, mw)))
    }

    /// Runs `fr_feature` on a prepared 1x3x112x112 input; its 512 raw values.
    pub fn run_feature(&self, input: &[f32]) -> Result<Vec<f32>, Error> {
        let model = Model::FrFeature;
        let tensor = Tensor::from_shape(&[1, 3, 112, 112], input).map_err(run_err(model))?;
        let outputs = self
            .feature
            .run(tvec!(tensor.into_tvalue()))
            .map_err(run_err(model))?;
        let out = outputs.first().ok_or_else(|| Error::Output {
            model,
            message: "no output".into(),
        })?;
        let values = out.as_slice::<f32>().map_err(run_err(model))?;
        if values.len() != EMBEDDING_DIM {
            return Err(Error::Output {
                model,
                message: format!("{} values, expected {EMBEDDING_DIM}", values.len()),
            });
        }
        Ok(values.to_vec())
    }

    /// Faces in the image, largest box first. Faces narrower than
    /// [`EngineOptions::min_face_px`] (20 px by default) or below the confidence threshold are
    /// not reported.
    pub fn detect(&self, image: &RgbImage) -> Result<Vec<DetectedFace>, Error> {
        if image.width() == 0 || image.height() == 0 {
            return Err(Error::EmptyImage {
                width: image.width(),
                height: image.height(),
            });
        }
        let input = detect::centerface_input(image, self.options.detect_long_side);
        let (out, (mh, mw)) = self.run_centerface(&input)?;
        let [heat, scale, offset, lms] = out.as_slice() else {
            return Err(Error::Output {
                model: Model::CenterFace,
                message: "expected 4 outputs".into(),
            });
        };
        let candidates = detect::decode_centerface(
            heat,
            scale,
            offset,
            lms,
            mh,
            mw,
            input.height,
            input.width,
            self.options.confidence_threshold,
        );
        let mut faces: Vec<DetectedFace> = candidates
            .iter()
            .filter_map(|c| {
                let (rect, landmarks) = detect::to_image(c, &input, image);
                if rect.width < self.options.min_face_px || rect.height <= 0.0 {
                    return None;
                }
                let aligned = align::align_face(image, &landmarks);
                Some(DetectedFace {
                    rect,
                    landmarks,
                    confidence: c.score.clamp(0.0, 1.0),
                    pose: quality::pose(&landmarks),
                    quality: quality::quality(image, &rect, aligned.as_ref()),
                })
            })
            .collect();
        faces.sort_by(|a, b| {
            let area = |f: &DetectedFace| f.rect.width * f.rect.height;
            area(b).total_cmp(&area(a))
        });
        Ok(faces)
    }

    /// The identity embedding of a detected face: the crop aligned from its five landmarks,
    /// `fr_feature`, L2-normalised.
    pub fn embed(&self, image: &RgbImage, face: &DetectedFace) -> Result<Embedding, Error> {
        let crop = align::align_face(image, &face.landmarks).ok_or(Error::DegenerateLandmarks)?;
        self.embed_aligned(&crop)
    }

    /// The embedding of a crop already aligned onto [`crate::ARCFACE_TEMPLATE`] (112x112).
    pub fn embed_aligned(&self, crop: &RgbImage) -> Result<Embedding, Error> {
        if crop.dimensions() != (align::CROP_SIZE, align::CROP_SIZE) {
            return Err(Error::Output {
                model: Model::FrFeature,
                message: format!("crop is {:?}, expected 112x112", crop.dimensions()),
            });
        }
        let raw = self.run_feature(&feature_input(crop))?;
        l2_normalise(&raw)
            .map(Embedding)
            .ok_or_else(|| Error::Output {
                model: Model::FrFeature,
                message: "embedding has zero or non-finite norm".into(),
            })
    }
}
