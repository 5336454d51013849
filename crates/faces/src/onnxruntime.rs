//! The optional onnxruntime backend ([`crate::Backend::OnnxRuntime`]): the same embedded
//! models run by Microsoft's onnxruntime, loaded at run time from a `libonnxruntime` shared
//! library (the one in the PyPI `onnxruntime` wheel works; `scripts/onnxruntime.sh` sets it up
//! and prints its path). Nothing is downloaded at build or run time: the `ort` crate is built with
//! `load-dynamic` only.
//!
//! Before onnxruntime sees a model, it is rewritten in memory where it needs it (the embedded
//! files stay byte-for-byte as their packages ship them):
//! - Initializers that the file also lists as graph inputs (CenterFace lists all 194 of its
//!   weights so, an old exporter's habit) are removed from the inputs. onnxruntime must
//!   otherwise treat those weights as values a caller might override, which stops constant
//!   folding and its operator fusions: CenterFace runs about 2x slower so. tract always
//!   treats them as constants, so both backends run the same graph. (`fr_feature` has none;
//!   the step leaves it as it is.)
//! - CenterFace's declared input of `[10, 3, 32, 32]` becomes `[1, 3, height, width]` with
//!   symbolic sides, and its outputs' declared shapes are cleared, so one session takes every
//!   input shape (tract instead builds one plan per shape).
//!
//! `ort::Session::run` takes `&mut self`, so each model keeps a pool of sessions: a call takes
//! an idle one or makes a new one, and puts it back after. The pool grows to the number of
//! threads that have run the model at once and no further (the API runs at most one engine job
//! per CPU); a new session costs one graph optimisation, a few tens of milliseconds, on the
//! thread that first needs it. Each session runs on the calling thread alone (one intra-op
//! thread), like tract, so that the server's bound on concurrent engine jobs is its bound on
//! the cores they use.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::Tensor;
use prost::Message;
use tract_onnx::pb::{self, tensor_shape_proto::dimension, type_proto};

use crate::Model;
use crate::engine::Error;

/// The environment variable naming the library when the options name none (the `ort`
/// crate's own convention).
pub const LIBRARY_ENV: &str = "ORT_DYLIB_PATH";

/// The library this process loaded (onnxruntime can be loaded once per process).
static LOADED: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Loads onnxruntime from `library`, or from `$ORT_DYLIB_PATH` when `None`, once per process.
/// After a success, a call with another path fails (the first library stays loaded); after a
/// failure, another path may be tried.
pub fn load(library: Option<&Path>) -> Result<PathBuf, Error> {
    let given = match library {
        Some(p) => p.to_path_buf(),
        None => match std::env::var_os(LIBRARY_ENV) {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => {
                return Err(Error::Backend(format!(
                    "no onnxruntime library given: set the engine's library path (vigil: \
                     [faces] onnxruntime_library) or {LIBRARY_ENV}; scripts/onnxruntime.sh \
                     sets one up from the PyPI onnxruntime wheel"
                )));
            }
        },
    };
    // Absolute, so that the check below and the load see the same file (ort resolves a
    // relative path against the executable's directory first) and one library has one name.
    let wanted = std::path::absolute(&given).unwrap_or(given);
    if !wanted.is_file() {
        return Err(Error::Backend(format!(
            "the onnxruntime library {} does not exist (scripts/onnxruntime.sh sets one up)",
            wanted.display()
        )));
    }
    let mut loaded = LOADED.lock().unwrap_or_else(PoisonError::into_inner);
    match &*loaded {
        Some(path) if *path == wanted => Ok(path.clone()),
        Some(path) => Err(Error::Backend(format!(
            "onnxruntime is already loaded from {} in this process; it cannot also be loaded \
             from {}",
            path.display(),
            wanted.display()
        ))),
        None => {
            ort::init_from(&wanted)
                .map_err(|e| {
                    Error::Backend(format!(
                        "loading onnxruntime from {}: {e}",
                        wanted.display()
                    ))
                })?
                .with_name("vigil-faces")
                .commit();
            *loaded = Some(wanted.clone());
            Ok(wanted)
        }
    }
}

/// The loaded library in words: its version as its file name gives it (`libonnxruntime.so.1.23.2`,
/// `libonnxruntime.1.23.2.dylib`; onnxruntime's C API reports it only through a raw pointer
/// that `ort` keeps private) and the commit its build info names, e.g. `1.23.2 (a83fc4d58c)`.
pub fn describe(library: &Path) -> String {
    let name = library
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let version = name
        .strip_prefix("libonnxruntime.so.")
        .or_else(|| {
            name.strip_prefix("libonnxruntime.")
                .and_then(|v| v.strip_suffix(".dylib"))
        })
        .filter(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .map_or_else(|| library.display().to_string(), str::to_owned);
    let commit = ort::info()
        .split(',')
        .find_map(|part| part.trim().strip_prefix("git-commit-id="))
        .map(str::to_owned);
    match commit {
        Some(c) => format!("{version} ({c})"),
        None => version,
    }
}

fn model_err(model: Model) -> impl Fn(String) -> Error {
    move |message| Error::Load { model, message }
}

/// The model's bytes as onnxruntime gets them (see the module docs).
pub fn prepared_model(model: Model) -> Result<Vec<u8>, Error> {
    let err = model_err(model);
    let mut proto =
        pb::ModelProto::decode(model.bytes()).map_err(|e| err(format!("not ONNX: {e}")))?;
    let graph = proto
        .graph
        .as_mut()
        .ok_or_else(|| err("the file has no graph".into()))?;
    let weights: std::collections::HashSet<String> =
        graph.initializer.iter().map(|t| t.name.clone()).collect();
    graph.input.retain(|i| !weights.contains(&i.name));
    if model == Model::CenterFace {
        let input = graph
            .input
            .first_mut()
            .ok_or_else(|| err("CenterFace has no input".into()))?;
        set_shape(
            input,
            vec![
                dimension::Value::DimValue(1),
                dimension::Value::DimValue(3),
                dimension::Value::DimParam("height".into()),
                dimension::Value::DimParam("width".into()),
            ],
        );
        for output in &mut graph.output {
            if let Some(type_proto::Value::TensorType(t)) =
                output.r#type.as_mut().and_then(|t| t.value.as_mut())
            {
                t.shape = None;
            }
        }
    }
    Ok(proto.encode_to_vec())
}

fn set_shape(value: &mut pb::ValueInfoProto, dims: Vec<dimension::Value>) {
    if let Some(type_proto::Value::TensorType(t)) =
        value.r#type.as_mut().and_then(|t| t.value.as_mut())
    {
        t.shape = Some(pb::TensorShapeProto {
            dim: dims
                .into_iter()
                .map(|v| pb::tensor_shape_proto::Dimension {
                    denotation: String::new(),
                    value: Some(v),
                })
                .collect(),
        });
    }
}

/// One model: its prepared bytes and a pool of idle sessions.
#[derive(Debug)]
pub struct OrtModel {
    model: Model,
    bytes: Vec<u8>,
    idle: Mutex<Vec<Session>>,
}

impl OrtModel {
    /// Prepares `model` and makes its first session (which checks that onnxruntime takes it).
    pub fn new(model: Model) -> Result<OrtModel, Error> {
        let this = OrtModel {
            model,
            bytes: prepared_model(model)?,
            idle: Mutex::new(Vec::new()),
        };
        let first = this.session()?;
        this.put_back(first);
        Ok(this)
    }

    fn session(&self) -> Result<Session, Error> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        if let Some(s) = idle {
            return Ok(s);
        }
        let err = model_err(self.model);
        let built = |e: ort::Error<ort::session::builder::SessionBuilder>| err(e.to_string());
        Session::builder()
            .map_err(|e| err(e.to_string()))?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(built)?
            .with_intra_threads(1)
            .map_err(built)?
            .with_inter_threads(1)
            .map_err(built)?
            .commit_from_memory(&self.bytes)
            .map_err(|e| err(e.to_string()))
    }

    fn put_back(&self, session: Session) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(session);
    }

    /// Runs the model on one float tensor of `shape`; each output's shape and values.
    pub fn run(&self, shape: &[usize], input: &[f32]) -> Result<crate::engine::Outputs, Error> {
        let err = |e: ort::Error| Error::Inference {
            model: self.model,
            message: e.to_string(),
        };
        let tensor = Tensor::from_array((shape.to_vec(), input.to_vec())).map_err(err)?;
        let mut session = self.session()?;
        let result = session
            .run(ort::inputs![tensor])
            .map_err(err)
            .and_then(|outputs| {
                outputs
                    .values()
                    .map(|v| {
                        let (shape, data) = v.try_extract_tensor::<f32>().map_err(err)?;
                        let shape = shape
                            .iter()
                            .map(|&d| usize::try_from(d).unwrap_or(0))
                            .collect();
                        Ok((shape, data.to_vec()))
                    })
                    .collect::<Result<Vec<_>, Error>>()
            });
        // A session that failed a run is still sound (onnxruntime keeps no state between
        // runs), so it goes back either way.
        self.put_back(session);
        result
    }
}
