//! In-process tests of the API: a real server on port 0 over a store in a temporary
//! directory, driven over TCP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
mod console;
mod control;
mod getmedia;
mod images;
mod kinesis;
mod llhls;
mod playback;
mod putmedia;
mod streamed;
