//! Replays the `annexb` fuzz target's corpus through the target's own body,
//! [`vigil_media::fuzzing::annexb`], so that `cargo test` keeps it fixed without nightly or
//! cargo-fuzz (`fuzz/README.md`); and the same body on real encoder output, whole.

use std::path::Path;

#[test]
fn fuzz_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/annexb");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{} holds too few inputs", dir.display());
    for path in files {
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| run_annexb(&data));
        if let Err(panic) = outcome {
            eprintln!("fuzz input {} failed", path.display());
            std::panic::resume_unwind(panic);
        }
    }
}

fn run_annexb(data: &[u8]) {
    vigil_media::fuzzing::annexb(data);
}

/// The seeds are real x264/x265 output: they must parse into access units with key frames and
/// decoder configurations, or the corpus would be exercising nothing.
#[test]
fn seeds_are_real_streams() {
    use vigil_media::annexb::AccessUnits;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/annexb");
    for (name, h265) in [("x264-64x48-bframes", false), ("x265-64x48", true)] {
        let data = std::fs::read(dir.join(name)).unwrap();
        let mut r = AccessUnits::new(h265);
        r.push(&data);
        r.finish();
        let mut aus = Vec::new();
        while let Some(au) = r.pull() {
            aus.push(au.unwrap());
        }
        assert!(aus.len() >= 2, "{name}: {} access units", aus.len());
        assert!(aus[0].key, "{name}: starts with a key frame");
    }
}
