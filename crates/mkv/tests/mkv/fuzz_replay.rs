//! Replays the `demux` fuzz target's corpus and every input the fuzzer ever failed on through
//! the target's own body, [`vigil_mkv::fuzzing::demux`], so that `cargo test` keeps them fixed
//! without nightly or cargo-fuzz (`fuzz/README.md`).

use std::path::{Path, PathBuf};

/// The files of `dir` (relative to the crate), sorted; fails if there are none, so that a moved
/// or emptied directory cannot make the replay pass by reading nothing.
fn inputs(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| {
            entry
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .path()
        })
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no inputs", dir.display());
    files
}

fn replay(dir: &str) {
    for path in inputs(dir) {
        let data =
            std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        // A panic's own message says what failed; the file name says which input.
        let outcome = std::panic::catch_unwind(|| vigil_mkv::fuzzing::demux(&data));
        if let Err(panic) = outcome {
            eprintln!("fuzz input {} failed", path.display());
            std::panic::resume_unwind(panic);
        }
    }
}

#[test]
fn fuzz_corpus() {
    replay("../../fuzz/corpus/demux");
}

#[test]
fn fuzz_regressions() {
    replay("tests/fuzz-regressions");
}
