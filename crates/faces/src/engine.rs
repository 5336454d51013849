//! The engine: the models loaded and optimised once, shared by every thread.
//!
//! Two backends run the same embedded models ([`Backend`]): tract, pure Rust and built in (the
//! default), and onnxruntime, loaded at run time from a shared library when the options choose
//! it (`crate::onnxruntime` says how). Everything before and after the models
//! (resizing, decoding, NMS, alignment, normalisation) is the same code for both.
//!
//! `tract` plans are immutable once built (`SimplePlan::run(&self)` makes its own state per
//! call), so one [`Engine`] behind an `Arc` serves any number of threads without a lock on the
//! hot path. CenterFace is fully convolutional and tract optimises for one input shape, so
//! detection keeps one plan per padded input shape, built on first use (the working size fixes
//! the long side, so an image's aspect ratio picks among a few dozen shapes at most; the common
//! 16:9 and 4:3 ones are built by [`Engine::new`]).

use std::collections::HashMap;
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use image::RgbImage;
use tract_onnx::prelude::*;

use crate::detect::{self, CONFIDENCE_THRESHOLD, DetectInput, MIN_FACE_PX};
use crate::embed::{feature_input, l2_normalise};
use crate::{DetectedFace, EMBEDDING_DIM, Embedding, Model, align, quality};

type Plan = TypedRunnableModel<TypedModel>;

/// The tract version this crate pins (`Cargo.toml`; a unit test keeps the two equal).
const TRACT_VERSION: &str = "0.22.5";

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
    /// The chosen backend is not available: not built in, or its library did not load.
    #[error("{0}")]
    Backend(String),
}

/// Which inference runtime runs the models. Both give the same faces and embeddings, their
/// raw outputs within 2e-4 (`tests/faces/backend.rs`); onnxruntime is faster
/// (`bench/README.md`, Faces).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Backend {
    /// tract: pure Rust, built in, nothing to install. The default.
    #[default]
    Tract,
    /// onnxruntime, loaded at run time from a `libonnxruntime` shared library (1.17 or later;
    /// the PyPI `onnxruntime` wheel ships one, which `scripts/onnxruntime.sh` sets up). Vigil
    /// neither links nor ships it: [`Engine::with_options`] loads it (once per process) and
    /// fails with [`Error::Backend`] when it is missing or unusable.
    OnnxRuntime {
        /// The shared library; `None`: the path in `$ORT_DYLIB_PATH`.
        library: Option<PathBuf>,
    },
}

impl Backend {
    /// `tract` or `onnxruntime`.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Tract => "tract",
            Backend::OnnxRuntime { .. } => "onnxruntime",
        }
    }
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
    /// The inference runtime. Default [`Backend::Tract`].
    pub backend: Backend,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            detect_long_side: 640,
            confidence_threshold: CONFIDENCE_THRESHOLD,
            min_face_px: MIN_FACE_PX,
            backend: Backend::Tract,
        }
    }
}

/// Face detection and embeddings on the CPU. `Send + Sync`: share one through an `Arc`.
#[derive(Debug)]
pub struct Engine {
    options: EngineOptions,
    runtime: Runtime,
}

#[derive(Debug)]
enum Runtime {
    Tract(Box<TractModels>),
    Ort {
        centerface: crate::onnxruntime::OrtModel,
        feature: crate::onnxruntime::OrtModel,
        version: String,
    },
}

/// The models as tract plans.
#[derive(Debug)]
struct TractModels {
    /// CenterFace as parsed, before its input shape is set.
    centerface: InferenceModel,
    /// Optimised CenterFace plans by padded input (height, width).
    detect_plans: Mutex<HashMap<(usize, usize), Arc<Plan>>>,
    feature: Plan,
}

/// A model's outputs: each one's shape and values.
pub(crate) type Outputs = Vec<(Vec<usize>, Vec<f32>)>;

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

impl TractModels {
    fn new() -> Result<TractModels, Error> {
        let centerface = parse(Model::CenterFace)?;
        let feature = parse(Model::FrFeature)?
            .with_input_fact(0, f32::fact([1, 3, 112, 112]).into())
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(load_err(Model::FrFeature))?;
        Ok(TractModels {
            centerface,
            detect_plans: Mutex::new(HashMap::new()),
            feature,
        })
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

    fn run(plan: &Plan, model: Model, shape: &[usize], input: &[f32]) -> Result<Outputs, Error> {
        let tensor = Tensor::from_shape(shape, input).map_err(run_err(model))?;
        let outputs = plan
            .run(tvec!(tensor.into_tvalue()))
            .map_err(run_err(model))?;
        outputs
            .iter()
            .map(|o| {
                let values = o.as_slice::<f32>().map_err(run_err(model))?;
                Ok((o.shape().to_vec(), values.to_vec()))
            })
            .collect()
    }
}

impl Engine {
    /// Loads the embedded models with the default (tract) backend and options. No I/O.
    pub fn new() -> Result<Engine, Error> {
        Engine::with_options(EngineOptions::default())
    }

    /// Loads the embedded models with the given options. No I/O with tract; with onnxruntime,
    /// loads its shared library (once per process).
    pub fn with_options(options: EngineOptions) -> Result<Engine, Error> {
        let runtime = match &options.backend {
            Backend::Tract => {
                let tract = TractModels::new()?;
                // The plans for 16:9 and 4:3 landscape images.
                for (w, h) in [(1280, 720), (640, 480)] {
                    let probe = RgbImage::new(w, h);
                    let input = detect::centerface_input(&probe, options.detect_long_side);
                    tract.detect_plan(input.height, input.width)?;
                }
                Runtime::Tract(Box::new(tract))
            }
            Backend::OnnxRuntime { library } => {
                let path = crate::onnxruntime::load(library.as_deref())?;
                Runtime::Ort {
                    centerface: crate::onnxruntime::OrtModel::new(Model::CenterFace)?,
                    feature: crate::onnxruntime::OrtModel::new(Model::FrFeature)?,
                    version: crate::onnxruntime::describe(&path),
                }
            }
        };
        Ok(Engine { options, runtime })
    }

    /// The options in use.
    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// The backend in words, for logs and reports: `tract 0.22.5`, or `onnxruntime 1.23.2
    /// (a83fc4d58c)` (the version from the library's file name, the commit from its build).
    pub fn backend_description(&self) -> String {
        match &self.runtime {
            Runtime::Tract(_) => format!("tract {TRACT_VERSION}"),
            Runtime::Ort { version, .. } => format!("onnxruntime {version}"),
        }
    }

    /// Runs CenterFace on a prepared input; its four outputs (heatmap, scale, offset,
    /// landmarks), flat, and the maps' (height, width).
    pub fn run_centerface(&self, input: &DetectInput) -> Result<CenterFaceOutputs, Error> {
        let model = Model::CenterFace;
        let shape = [1, 3, input.height, input.width];
        let outputs = match &self.runtime {
            Runtime::Tract(t) => {
                let plan = t.detect_plan(input.height, input.width)?;
                TractModels::run(&plan, model, &shape, &input.tensor)?
            }
            Runtime::Ort { centerface, .. } => centerface.run(&shape, &input.tensor)?,
        };
        let (mh, mw) = (input.height / 4, input.width / 4);
        if outputs.len() != 4 {
            return Err(Error::Output {
                model,
                message: format!("{} outputs, expected 4", outputs.len()),
            });
        }
        let mut flat = Vec::with_capacity(4);
        for (i, ((shape, values), channels)) in
            outputs.into_iter().zip([1usize, 2, 2, 10]).enumerate()
        {
            if shape[..] != [1, channels, mh, mw] || values.len() != channels * mh * mw {
                return Err(Error::Output {
                    model,
                    message: format!(
                        "output {i} has shape {shape:?}, expected [1, {channels}, {mh}, {mw}]"
                    ),
                });
            }
            flat.push(values);
        }
        Ok((flat, (mh, mw)))
    }

    /// Runs `fr_feature` on a prepared 1x3x112x112 input; its 512 raw values.
    pub fn run_feature(&self, input: &[f32]) -> Result<Vec<f32>, Error> {
        let model = Model::FrFeature;
        let shape = [1, 3, 112, 112];
        let outputs = match &self.runtime {
            Runtime::Tract(t) => TractModels::run(&t.feature, model, &shape, input)?,
            Runtime::Ort { feature, .. } => feature.run(&shape, input)?,
        };
        let (_, values) = outputs.into_iter().next().ok_or_else(|| Error::Output {
            model,
            message: "no output".into(),
        })?;
        if values.len() != EMBEDDING_DIM {
            return Err(Error::Output {
                model,
                message: format!("{} values, expected {EMBEDDING_DIM}", values.len()),
            });
        }
        Ok(values)
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

#[cfg(test)]
mod tests {
    #[test]
    fn tract_version_is_the_pinned_one() {
        let manifest = include_str!("../Cargo.toml");
        assert!(
            manifest.contains(&format!("tract-onnx = \"={}\"", super::TRACT_VERSION)),
            "TRACT_VERSION does not match the tract-onnx pin in Cargo.toml"
        );
    }
}
