//! The Kinesis API's errors, named after the model's exceptions, with their status in one
//! place ([`KinesisError::status`]).
//!
//! Wire (AWS JSON 1.1): every client error is 400 (signature failures too, as AWS's JSON
//! services answer them) and `InternalFailureException` (the only `fault` of the model) 500; the body is `{"__type": NAME, "message": TEXT}`, and a request
//! sent in CBOR gets the same two members as a CBOR map (the Java SDK parses every body of a
//! CBOR call as CBOR). botocore takes the name from `__type` only; the Rust SDK prefers the
//! `x-amzn-ErrorType` header, which carries the same name. Errors of the shared pipeline keep
//! their generic AWS names and statuses ([`CommonError`]), in the request's encoding.

use axum::http::StatusCode;
use vigil_api_common::error::{AwsError, CommonError};
use vigil_datastreams::Error as EngineError;
use vigil_store::StoreError;

/// An error the Kinesis API answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(clippy::enum_variant_names)]
pub enum KinesisError {
    /// No such stream (or shard).
    #[error("{0}")]
    ResourceNotFoundException(String),
    /// The stream exists, or is not in a state for this.
    #[error("{0}")]
    ResourceInUseException(String),
    /// An argument is wrong for the stream or the operation.
    #[error("{0}")]
    InvalidArgumentException(String),
    /// An input violates the model's constraints (length, pattern, range, enum), in AWS's
    /// message format; also: the operation does not apply to an on-demand stream.
    #[error("{0}")]
    ValidationException(String),
    /// A limit of the server (shards, streams).
    #[error("{0}")]
    LimitExceededException(String),
    /// The shard iterator is older than five minutes.
    #[error("{0}")]
    ExpiredIteratorException(String),
    /// The pagination token is older than five minutes.
    #[error("{0}")]
    ExpiredNextTokenException(String),
    /// The caller's key policy does not allow the action.
    #[error("{0}")]
    AccessDeniedException(String),
    /// The body is not the operation's JSON (or CBOR).
    #[error("{0}")]
    SerializationException(String),
    /// No such operation.
    #[error("{0}")]
    UnknownOperationException(String),
    /// A server fault (storage failing or full, shutting down): 500, which every SDK retries.
    #[error("{0}")]
    InternalFailureException(String),
    /// An error of the shared request pipeline (signatures).
    #[error("{0}")]
    Common(CommonError),
}

impl AwsError for KinesisError {
    fn aws_code(&self) -> &'static str {
        match self {
            Self::ResourceNotFoundException(_) => "ResourceNotFoundException",
            Self::ResourceInUseException(_) => "ResourceInUseException",
            Self::InvalidArgumentException(_) => "InvalidArgumentException",
            Self::ValidationException(_) => "ValidationException",
            Self::LimitExceededException(_) => "LimitExceededException",
            Self::ExpiredIteratorException(_) => "ExpiredIteratorException",
            Self::ExpiredNextTokenException(_) => "ExpiredNextTokenException",
            Self::AccessDeniedException(_) => "AccessDeniedException",
            Self::SerializationException(_) => "SerializationException",
            Self::UnknownOperationException(_) => "UnknownOperationException",
            Self::InternalFailureException(_) => "InternalFailureException",
            Self::Common(e) => e.aws_code(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::InternalFailureException(_) => StatusCode::INTERNAL_SERVER_ERROR,
            // AWS JSON services answer signature failures 400 too (the KVS services, rest-json,
            // answer 403).
            Self::Common(e) if e.status().is_server_error() => e.status(),
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn message(&self) -> &str {
        match self {
            Self::ResourceNotFoundException(m)
            | Self::ResourceInUseException(m)
            | Self::InvalidArgumentException(m)
            | Self::ValidationException(m)
            | Self::LimitExceededException(m)
            | Self::ExpiredIteratorException(m)
            | Self::ExpiredNextTokenException(m)
            | Self::AccessDeniedException(m)
            | Self::SerializationException(m)
            | Self::UnknownOperationException(m)
            | Self::InternalFailureException(m) => m,
            Self::Common(e) => e.message(),
        }
    }
}

impl KinesisError {
    /// A shorthand for [`KinesisError::InvalidArgumentException`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::InvalidArgumentException(msg.into())
    }

    /// A constraint of the model violated by `value` at `member` (AWS's message).
    pub fn validation(value: &str, member: &str, constraint: &str) -> Self {
        let shown: String = value.chars().take(100).collect();
        Self::ValidationException(format!(
            "1 validation error detected: Value '{shown}' at '{member}' failed to satisfy \
             constraint: {constraint}"
        ))
    }
}

impl From<CommonError> for KinesisError {
    fn from(e: CommonError) -> Self {
        match e {
            CommonError::NotAuthorizedException(m) => Self::AccessDeniedException(m),
            CommonError::SerializationException(m) => Self::SerializationException(m),
            CommonError::InternalFailure(m) => Self::InternalFailureException(m),
            other => Self::Common(other),
        }
    }
}

/// Store errors answered in Kinesis's terms; the rest are internal failures (logged with
/// their detail, answered without it).
impl From<StoreError> for KinesisError {
    fn from(e: StoreError) -> Self {
        Self::from(&e)
    }
}

impl From<&StoreError> for KinesisError {
    fn from(e: &StoreError) -> Self {
        match e {
            StoreError::DiskFull(m) => {
                Self::InternalFailureException(format!("storage is full: {m}"))
            }
            StoreError::Closed => {
                Self::InternalFailureException("the server is shutting down".into())
            }
            StoreError::InvalidArgument(m) => Self::InvalidArgumentException(m.clone()),
            other => {
                tracing::error!("store error: {other}");
                Self::InternalFailureException("Internal Service Failure".into())
            }
        }
    }
}

/// The engine's errors, for a server of account `account` (the messages name it as AWS's do).
pub fn from_engine(e: EngineError, account: &str) -> KinesisError {
    match e {
        EngineError::StreamNotFound(s) => KinesisError::ResourceNotFoundException(format!(
            "Stream {s} under account {account} not found."
        )),
        EngineError::ShardNotFound { stream, shard } => KinesisError::ResourceNotFoundException(
            format!("Shard {shard} in stream {stream} under account {account} does not exist"),
        ),
        EngineError::StreamExists(s) => KinesisError::ResourceInUseException(format!(
            "Stream {s} under account {account} already exists."
        )),
        EngineError::InUse(m) => KinesisError::ResourceInUseException(m),
        EngineError::Invalid(m) => KinesisError::InvalidArgumentException(m),
        EngineError::LimitExceeded(m) => KinesisError::LimitExceededException(m),
        EngineError::RecordTooLarge { index, size, limit } => {
            KinesisError::ValidationException(format!(
                "1 validation error detected: Value at 'records.{}.member.data' failed to \
                 satisfy constraint: Member must have length less than or equal to {limit} \
                 (data and partition key, {size} bytes)",
                index + 1
            ))
        }
        EngineError::WrongMode(m) => KinesisError::ValidationException(m),
        EngineError::Store(e) => e.into(),
    }
}

/// Results of the Kinesis API.
pub type KinesisResult<T> = std::result::Result<T, KinesisError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(
            KinesisError::ResourceNotFoundException("x".into()).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            KinesisError::InternalFailureException("x".into()).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let denied: KinesisError = CommonError::NotAuthorizedException("no".into()).into();
        assert_eq!(denied.aws_code(), "AccessDeniedException");
        let sig: KinesisError = CommonError::InvalidSignatureException("bad".into()).into();
        assert_eq!(sig.aws_code(), "InvalidSignatureException");
        assert_eq!(sig.status(), StatusCode::BAD_REQUEST);
        let e = from_engine(EngineError::StreamNotFound("s1".into()), "123456789012");
        assert_eq!(
            e.message(),
            "Stream s1 under account 123456789012 not found."
        );
    }
}
