//! Live video analysis for Vigil: stream processors that follow a video stream, find the faces
//! in it, follow them from frame to frame, search them in a face collection, and write what
//! they saw to a data stream, as Rekognition Video's stream processors do.
//!
//! The crate knows the store (video streams, collections, documents), the data streams
//! engine, the face engine and the video decoders; it knows nothing of HTTP or of AWS's wire
//! formats: the API layer gives it the format of the records it writes
//! ([`model::OutputFormat`]).
//!
//! - [`processors`]: the processors' definitions and states, durable in the store, and their
//!   runs ([`Analysis`]).
//! - [`runtime`]: one run (decode, sample, motion, detect, track, search, write).
//! - [`collections`]: each face collection's index in memory, filled from the store (shared
//!   with the face API).
//! - [`engine`]: the process's face engine.
//! - [`events`]: face events, one per appearance (Vigil's, beyond Rekognition).
//! - [`track`], [`motion`]: the tracker and the motion test.

pub mod collections;
pub mod engine;
pub mod error;
pub mod events;
pub mod model;
pub mod motion;
pub mod processors;
mod runtime;
pub mod track;

pub use collections::Collections;
pub use error::{Error, Result};
pub use model::{Alerts, OutputFormat, ProcessorRecord, StartAt, Status};
pub use processors::{Analysis, AnalysisConfig, ProcessorStats, StatsRegistry};
