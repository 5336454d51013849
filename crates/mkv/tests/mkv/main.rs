//! The Matroska crate's integration tests: one test binary, one module per concern.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod captures;
mod common;
mod errors;
mod fuzz_replay;
mod roundtrip;
