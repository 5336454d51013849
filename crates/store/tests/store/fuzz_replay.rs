//! Replays the `segment_scan` fuzz target's corpus through the target's own body,
//! [`vigil_store::fuzzing::segment_scan`], so that `cargo test` keeps it passing without
//! nightly or cargo-fuzz (`fuzz/README.md`).

use std::path::Path;

#[test]
fn segment_scan_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/segment_scan");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    // A moved or emptied corpus must not make this pass by reading nothing.
    assert!(files.len() > 10, "{} holds too few inputs", dir.display());
    for path in files {
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| vigil_store::fuzzing::segment_scan(&data));
        if let Err(panic) = outcome {
            eprintln!("fuzz input {} failed", path.display());
            std::panic::resume_unwind(panic);
        }
    }
}
