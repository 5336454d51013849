//! Shared helpers: the test photos, one engine for all tests, and the onnxruntime reference.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use image::RgbImage;
use vigil_faces::{Backend, DetectedFace, Embedding, Engine, EngineOptions, decode_image};

pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A photo from `testdata/`, decoded by the engine's own decoder.
pub fn photo(name: &str) -> RgbImage {
    let bytes = std::fs::read(crate_dir().join("testdata").join(name)).unwrap();
    decode_image(&bytes).unwrap()
}

pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::new().unwrap())
}

/// The largest face of a photo that has one, and its embedding.
pub fn largest_face(name: &str) -> (RgbImage, DetectedFace, Embedding) {
    let img = photo(name);
    let faces = engine().detect(&img).unwrap();
    let face = faces
        .first()
        .unwrap_or_else(|| panic!("no face in {name}"))
        .clone();
    let emb = engine().embed(&img, &face).unwrap();
    (img, face, emb)
}

/// A fresh scratch directory for one test.
pub fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-faces-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs one of the project's set-up scripts (`scripts/NAME`) and returns the path it prints:
/// they make what is missing, so the tests never skip for want of it.
fn set_up(name: &str) -> PathBuf {
    let script = crate_dir().join("../../scripts").join(name);
    let out = Command::new("bash").arg(&script).output().unwrap();
    assert!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// The python of the project's onnxruntime venv (`scripts/faces-venv.sh`).
pub fn python() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| set_up("faces-venv.sh"))
}

/// Runs `onnxruntime_reference.py` with `args`; its stdout.
pub fn reference(args: &[&str]) -> String {
    let script = crate_dir().join("tests/faces/onnxruntime_reference.py");
    let out = Command::new(python())
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "onnxruntime_reference.py {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn write_f32(path: &Path, values: &[f32]) {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

pub fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

/// The onnxruntime shared library of `scripts/onnxruntime.sh` (from the PyPI wheel).
pub fn onnxruntime_library() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| set_up("onnxruntime.sh"))
}

/// One engine on the onnxruntime backend for all tests.
pub fn ort_engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        Engine::with_options(EngineOptions {
            backend: Backend::OnnxRuntime {
                library: Some(onnxruntime_library().to_path_buf()),
            },
            ..EngineOptions::default()
        })
        .unwrap()
    })
}
