//! Integration tests of the embedded store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod chunked;
mod conformance;
mod crash;
mod crash_logs;
mod damage;
mod encryption;
mod faults;
mod fuzz_replay;
mod log_faults;
