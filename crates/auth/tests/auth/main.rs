//! vigil-auth's integration tests: one binary, one module per concern.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod captures;
mod common;
mod fuzz_replay;
mod keystore;
mod official_signer;
