//! The engine's errors: what a caller did wrong, in terms the API layer maps to SNS's
//! exceptions one to one, and the store's failures passed through.

use vigil_store::StoreError;

/// An error of the topics engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such topic.
    #[error("Topic does not exist")]
    TopicNotFound(String),
    /// No such subscription (or it was unsubscribed).
    #[error("Subscription does not exist")]
    SubscriptionNotFound(String),
    /// An argument the engine refuses (its message says which and why, in SNS's words).
    #[error("{0}")]
    Invalid(String),
    /// A limit of the server (topics, subscriptions).
    #[error("{0}")]
    LimitExceeded(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Results of the engine.
pub type Result<T> = std::result::Result<T, Error>;
