//! What the analysis layer fails with. The API layer maps each variant onto its protocol's
//! errors (Rekognition's exceptions) in one place.

use vigil_store::StoreError;

/// An analysis error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No stream processor by that name.
    #[error("stream processor {0} not found")]
    ProcessorNotFound(String),
    /// A stream processor by that name exists.
    #[error("a stream processor named {0} already exists")]
    ProcessorExists(String),
    /// Not possible in the processor's state (starting one that runs, deleting one that runs).
    #[error("{0}")]
    InUse(String),
    /// An argument out of range or inconsistent.
    #[error("{0}")]
    Invalid(String),
    /// A limit of the server (processors).
    #[error("{0}")]
    LimitExceeded(String),
    /// A data stream the processor writes to failed.
    #[error("data stream: {0}")]
    DataStream(#[from] vigil_datastreams::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything else (the face engine did not load, a face could not be indexed).
    #[error("{0}")]
    Internal(String),
}

/// Analysis results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
