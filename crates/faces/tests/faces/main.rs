//! vigil-faces' integration tests, one binary: the models' hashes, detection and embeddings on
//! real photos (`testdata/PROVENANCE.md`), the calibration, parity with onnxruntime, and
//! property tests of the alignment maths.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod backend;
mod calibration;
mod common;
mod detection;
mod models;
mod parity;
mod props;
