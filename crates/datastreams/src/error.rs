//! The engine's errors: what a caller did wrong, in terms the API layer maps to its
//! exceptions one to one, and the store's failures passed through.

use vigil_store::StoreError;

/// An error of the data streams engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such stream (or it was deleted).
    #[error("stream {0} not found")]
    StreamNotFound(String),
    /// No such shard in the stream.
    #[error("shard {shard} of stream {stream} not found")]
    ShardNotFound {
        /// The stream.
        stream: String,
        /// The shard id asked for.
        shard: String,
    },
    /// A stream by that name exists.
    #[error("stream {0} already exists")]
    StreamExists(String),
    /// The request is well formed but not possible in the stream's state (a closed shard
    /// asked to split, a shard count already being changed).
    #[error("{0}")]
    InUse(String),
    /// An argument out of range or inconsistent with the stream.
    #[error("{0}")]
    Invalid(String),
    /// A record larger than the stream's `MaxRecordSizeInKiB` (data and partition key).
    #[error("record {index} is {size} bytes (data and partition key); at most {limit}")]
    RecordTooLarge {
        /// Its index in the put.
        index: usize,
        /// Its size.
        size: usize,
        /// The stream's limit.
        limit: usize,
    },
    /// A limit of the server (shards, streams).
    #[error("{0}")]
    LimitExceeded(String),
    /// Not possible in the stream's capacity mode (resharding an on-demand stream).
    #[error("{0}")]
    WrongMode(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Results of the engine.
pub type Result<T> = std::result::Result<T, Error>;
