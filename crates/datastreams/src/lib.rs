//! Vigil's data streams: sharded, ordered, durable record streams with the semantics of Amazon
//! Kinesis Data Streams (API 2013-12-02), and no HTTP or wire format (those are
//! `vigil-api-kinesis`'s).
//!
//! - [`engine`]: [`DataStreams`], the streams of a store: create, describe, change, reshard,
//!   delete; put records (durable before they are reported put); read them from a position;
//!   subscribe to a shard for in-process consumers.
//! - [`model`]: a stream's metadata (shards with their hash ranges and lineage, mode, tags,
//!   settings), kept in its store log group's attributes.
//! - [`hash`]: partition keys to hash keys (MD5), and even hash ranges.
//! - [`seq`]: sequence numbers, which sort as the records' store positions do.
//! - [`reshard`]: splits, merges and uniform scaling, planned without I/O.
//! - `writer`: each shard's writer, which makes the puts queued for it one store batch.
//!
//! # On the store
//!
//! A stream is one log group of the store (`vigil_store::logs`), a shard one log of it: a
//! record is an entry (partition key, data), appended through the same group commit as media
//! fragments, sealed under the group's data key, expired by the group's retention. The store
//! gives each entry a position from its store-wide sequence, so positions increase along a
//! shard in the order records become durable, and a reshard's children start above
//! everything their parents hold.

pub mod engine;
pub mod error;
pub mod hash;
pub mod model;
pub mod reshard;
pub mod seq;
mod writer;

pub use engine::{
    Child, DataStreams, Limits, NewRecord, NewStream, Put, ReadBatch, Record, StartAt,
};
pub use error::{Error, Result};
pub use model::{StreamInfo, StreamMeta, StreamMode};
pub use seq::SequenceNumber;
