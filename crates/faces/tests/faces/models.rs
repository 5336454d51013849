//! The embedded models are exactly the files recorded in `models/README.md`.

use sha2::{Digest, Sha256};
use vigil_faces::{MODEL_VERSION, Model};

use crate::common::crate_dir;

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn embedded_models_match_their_recorded_sha256() {
    let readme = std::fs::read_to_string(crate_dir().join("models/README.md")).unwrap();
    for model in Model::ALL {
        assert_eq!(hex(model.bytes()), model.sha256(), "{model}");
        let on_disk = std::fs::read(crate_dir().join("models").join(model.file_name())).unwrap();
        assert_eq!(hex(&on_disk), model.sha256(), "{model} on disk");
        assert!(
            readme.contains(model.sha256()),
            "models/README.md lacks {model}'s SHA-256"
        );
    }
    assert!(MODEL_VERSION.starts_with("vigil-faces-"));
}

#[test]
fn fetch_script_checks_the_same_hashes() {
    let script =
        std::fs::read_to_string(crate_dir().join("../../scripts/fetch-face-models.sh")).unwrap();
    for model in Model::ALL {
        assert!(
            script.contains(model.sha256()),
            "fetch-face-models.sh lacks {model}'s SHA-256"
        );
    }
}
