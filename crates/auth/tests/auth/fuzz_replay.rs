//! Replays the `sigv4_parse` fuzz target's corpus through the target's own body,
//! [`vigil_auth::fuzzing::sigv4_parse`], so that `cargo test` keeps it passing without
//! nightly or cargo-fuzz (`fuzz/README.md`).

use std::path::Path;

#[test]
fn sigv4_parse_corpus() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = manifest
        .canonicalize()
        .unwrap_or_else(|_| manifest.to_owned());
    let dir = manifest.join("../../fuzz/corpus/sigv4_parse");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut verified = 0;
    // A moved or emptied corpus must not make this pass by reading nothing.
    assert!(files.len() > 10, "{} holds too few inputs", dir.display());
    for path in files {
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| vigil_auth::fuzzing::sigv4_parse(&data));
        match outcome {
            Ok(n) => verified += n,
            Err(panic) => {
                eprintln!("fuzz input {} failed", path.display());
                std::panic::resume_unwind(panic);
            }
        }
    }
    // The captures verify as they are, and the zeroed signatures are repaired.
    assert!(verified >= 10, "only {verified} requests verified");
}
