#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
mod dash;
mod fuzz_replay;
mod golden;
mod hls_ts;
mod mp4_out;
