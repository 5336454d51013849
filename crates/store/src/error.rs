//! The store's error type.

use std::io;

/// What went wrong in the fragment store. The API layer maps each variant to an AWS error (or an
/// ERROR ack); anything it does not map on purpose becomes an internal error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No stream by that name or id (or it is being deleted).
    #[error("stream {0} not found")]
    StreamNotFound(String),
    /// A stream by that name already exists.
    #[error("a stream named {0:?} already exists")]
    StreamExists(String),
    /// No face collection by that name.
    #[error("face collection {0} not found")]
    CollectionNotFound(String),
    /// A face collection by that name already exists.
    #[error("a face collection named {0:?} already exists")]
    CollectionExists(String),
    /// No log group by that name or id (or it is being deleted).
    #[error("log group {0} not found")]
    LogGroupNotFound(String),
    /// A log group by that name already exists.
    #[error("a log group named {0:?} already exists")]
    LogGroupExists(String),
    /// The caller's version token is stale.
    #[error("stream {stream} is at version {current}, not {given}")]
    VersionMismatch {
        /// The stream.
        stream: String,
        /// The version the caller sent.
        given: String,
        /// The stream's current version.
        current: String,
    },
    /// A request the store cannot satisfy as given (out of range, malformed).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The stream keeps no data (`DataRetentionInHours` is 0), so there is nothing archived.
    #[error("stream {0} does not retain data")]
    NoDataRetention(String),
    /// The named master key is not in the key ring.
    #[error("master key {0:?} is not configured")]
    KeyNotFound(String),
    /// No fragment with that number in that stream (never existed, expired or deleted).
    #[error("fragment {number} of stream {stream} not found")]
    FragmentNotFound {
        /// The stream id.
        stream: u64,
        /// The fragment number.
        number: u64,
    },
    /// Stored bytes failed authentication: they were changed on disk, or the key is wrong.
    #[error("{what} failed authentication (tampered, or wrong key)")]
    Authentication {
        /// What failed, e.g. "fragment 12 of stream 3".
        what: String,
    },
    /// Stored bytes are not what the store wrote (checksum or structure).
    #[error("corrupt data in {file} at byte {offset}: {detail}")]
    Corrupt {
        /// The file.
        file: String,
        /// The byte offset of the damage.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
    /// The disk is full, or above the free-space floor with nothing left to expire.
    #[error("disk full: {0}")]
    DiskFull(String),
    /// An earlier write or fsync failed; the store refuses writes until it is reopened, so that
    /// nothing is acknowledged on top of data whose state is unknown.
    #[error("the store stopped writing after an I/O failure ({0}); restart to recover")]
    Poisoned(String),
    /// The data directory is held by another process.
    #[error("data directory {0} is in use by another process")]
    Locked(String),
    /// The store was written by a newer (or unknown) version of Vigil.
    #[error("{what} has format version {found}; this build reads version {supported}")]
    FormatVersion {
        /// What carries the version.
        what: String,
        /// The version found.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// A file the data directory cannot do without is missing, unreadable or damaged: the
    /// index (`index.redb`) or the default master key (`keys/default.key`). The store refuses
    /// to open rather than start over without it; `remedy` says what to do.
    #[error("{file} {problem}. {remedy}")]
    DataDir {
        /// The file, as a path.
        file: String,
        /// What is wrong with it, e.g. "is missing, but the data keys of 3 stream(s) ...".
        problem: String,
        /// What to do about it.
        remedy: String,
    },
    /// The store is shutting down.
    #[error("the store is closed")]
    Closed,
    /// An I/O error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The embedded index database failed.
    #[error("index: {0}")]
    Index(String),
}

impl StoreError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::StorageFull {
            return Self::DiskFull(format!("{}: {source}", context.into()));
        }
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Index(e.to_string())
            }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// The store's result type.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
