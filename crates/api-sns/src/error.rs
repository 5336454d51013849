//! The errors the SNS API answers with, named after the model's exceptions, with the query
//! protocol's code (`<Code>` in the XML, what botocore raises by) and HTTP status in one place
//! ([`AwsError`]), rendered by `vigil_api_common::error::render_query`.
//!
//! The shared pipeline's failures ([`CommonError`]) take the names query-protocol services
//! give them: a bad signature is `SignatureDoesNotMatch`, an unknown key
//! `InvalidClientTokenId`, no credentials `MissingAuthenticationToken` (each 403), a key
//! policy's refusal `AuthorizationError` (403).

use axum::http::StatusCode;
use vigil_api_common::error::{AwsError, CommonError};
use vigil_store::StoreError;
use vigil_topics::Error as EngineError;

/// An error the SNS API answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(clippy::enum_variant_names)]
pub enum SnsError {
    /// A parameter is missing, malformed or not allowed (`InvalidParameter`, 400).
    #[error("{0}")]
    InvalidParameterException(String),
    /// A parameter's value is out of range (`ParameterValueInvalid`, 400): message
    /// attributes.
    #[error("{0}")]
    InvalidParameterValueException(String),
    /// No such topic or subscription (`NotFound`, 404).
    #[error("{0}")]
    NotFoundException(String),
    /// No such resource to tag (`ResourceNotFound`, 404).
    #[error("{0}")]
    ResourceNotFoundException(String),
    /// The key may not do this (`AuthorizationError`, 403).
    #[error("{0}")]
    AuthorizationErrorException(String),
    /// Too many topics (`TopicLimitExceeded`, 403).
    #[error("{0}")]
    TopicLimitExceededException(String),
    /// Too many subscriptions (`SubscriptionLimitExceeded`, 403).
    #[error("{0}")]
    SubscriptionLimitExceededException(String),
    /// Too many tags (`TagLimitExceeded`, 400).
    #[error("{0}")]
    TagLimitExceededException(String),
    /// A tag key or value the tag rules refuse (`TagPolicy`, 400).
    #[error("{0}")]
    TagPolicyException(String),
    /// PublishBatch without entries (`EmptyBatchRequest`, 400).
    #[error("{0}")]
    EmptyBatchRequestException(String),
    /// PublishBatch with more than 10 entries (`TooManyEntriesInBatchRequest`, 400).
    #[error("{0}")]
    TooManyEntriesInBatchRequestException(String),
    /// PublishBatch with two entries of one id (`BatchEntryIdsNotDistinct`, 400).
    #[error("{0}")]
    BatchEntryIdsNotDistinctException(String),
    /// PublishBatch with an id the rules refuse (`InvalidBatchEntryId`, 400).
    #[error("{0}")]
    InvalidBatchEntryIdException(String),
    /// PublishBatch over 256 KiB in all (`BatchRequestTooLong`, 400).
    #[error("{0}")]
    BatchRequestTooLongException(String),
    /// The server cannot take it now: storage full (`Throttled`, 429).
    #[error("{0}")]
    ThrottledException(String),
    /// A server fault (`InternalError`, 500).
    #[error("{0}")]
    InternalErrorException(String),
    /// An `Action` SNS does not have (`InvalidAction`, 400), or one Vigil does not answer.
    #[error("{0}")]
    InvalidAction(String),
    /// The shared pipeline's failures.
    #[error("{0}")]
    Common(CommonError),
}

impl From<CommonError> for SnsError {
    fn from(e: CommonError) -> Self {
        match e {
            CommonError::NotAuthorizedException(m) => Self::AuthorizationErrorException(m),
            CommonError::SerializationException(m) => Self::InvalidParameterException(m),
            CommonError::InternalFailure(m) => Self::InternalErrorException(m),
            other => Self::Common(other),
        }
    }
}

impl AwsError for SnsError {
    fn aws_code(&self) -> &'static str {
        match self {
            Self::InvalidParameterException(_) => "InvalidParameter",
            Self::InvalidParameterValueException(_) => "ParameterValueInvalid",
            Self::NotFoundException(_) => "NotFound",
            Self::ResourceNotFoundException(_) => "ResourceNotFound",
            Self::AuthorizationErrorException(_) => "AuthorizationError",
            Self::TopicLimitExceededException(_) => "TopicLimitExceeded",
            Self::SubscriptionLimitExceededException(_) => "SubscriptionLimitExceeded",
            Self::TagLimitExceededException(_) => "TagLimitExceeded",
            Self::TagPolicyException(_) => "TagPolicy",
            Self::EmptyBatchRequestException(_) => "EmptyBatchRequest",
            Self::TooManyEntriesInBatchRequestException(_) => "TooManyEntriesInBatchRequest",
            Self::BatchEntryIdsNotDistinctException(_) => "BatchEntryIdsNotDistinct",
            Self::InvalidBatchEntryIdException(_) => "InvalidBatchEntryId",
            Self::BatchRequestTooLongException(_) => "BatchRequestTooLong",
            Self::ThrottledException(_) => "Throttled",
            Self::InternalErrorException(_) => "InternalError",
            Self::InvalidAction(_) => "InvalidAction",
            Self::Common(c) => match c {
                CommonError::InvalidSignatureException(_) => "SignatureDoesNotMatch",
                CommonError::UnrecognizedClientException(_) => "InvalidClientTokenId",
                CommonError::MissingAuthenticationTokenException(_) => "MissingAuthenticationToken",
                CommonError::IncompleteSignatureException(_) => "IncompleteSignature",
                CommonError::NotAuthorizedException(_) => "AuthorizationError",
                CommonError::SerializationException(_) => "InvalidParameter",
                CommonError::InternalFailure(_) => "InternalError",
            },
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::NotFoundException(_) | Self::ResourceNotFoundException(_) => {
                StatusCode::NOT_FOUND
            }
            Self::AuthorizationErrorException(_)
            | Self::TopicLimitExceededException(_)
            | Self::SubscriptionLimitExceededException(_) => StatusCode::FORBIDDEN,
            Self::ThrottledException(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::InternalErrorException(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Common(c) => match c {
                CommonError::IncompleteSignatureException(_)
                | CommonError::SerializationException(_) => StatusCode::BAD_REQUEST,
                CommonError::InternalFailure(_) => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::FORBIDDEN,
            },
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn message(&self) -> &str {
        match self {
            Self::InvalidParameterException(m)
            | Self::InvalidParameterValueException(m)
            | Self::NotFoundException(m)
            | Self::ResourceNotFoundException(m)
            | Self::AuthorizationErrorException(m)
            | Self::TopicLimitExceededException(m)
            | Self::SubscriptionLimitExceededException(m)
            | Self::TagLimitExceededException(m)
            | Self::TagPolicyException(m)
            | Self::EmptyBatchRequestException(m)
            | Self::TooManyEntriesInBatchRequestException(m)
            | Self::BatchEntryIdsNotDistinctException(m)
            | Self::InvalidBatchEntryIdException(m)
            | Self::BatchRequestTooLongException(m)
            | Self::ThrottledException(m)
            | Self::InternalErrorException(m)
            | Self::InvalidAction(m) => m,
            Self::Common(c) => c.message(),
        }
    }
}

/// An `InvalidParameter` in SNS's words: `Invalid parameter: WHAT`.
pub fn invalid(what: impl std::fmt::Display) -> SnsError {
    SnsError::InvalidParameterException(format!("Invalid parameter: {what}"))
}

/// The engine's error in this API's terms.
pub fn from_engine(e: EngineError) -> SnsError {
    match e {
        EngineError::TopicNotFound(_) => SnsError::NotFoundException("Topic does not exist".into()),
        EngineError::SubscriptionNotFound(_) => {
            SnsError::NotFoundException("Subscription does not exist".into())
        }
        EngineError::Invalid(m) => invalid(m),
        EngineError::LimitExceeded(m) if m.starts_with("Topic") => {
            SnsError::TopicLimitExceededException(m)
        }
        EngineError::LimitExceeded(m) if m.starts_with("Subscription") => {
            SnsError::SubscriptionLimitExceededException(m)
        }
        EngineError::LimitExceeded(m) => SnsError::TagLimitExceededException(m),
        // A topic deleted while the call ran.
        EngineError::Store(StoreError::LogGroupNotFound(_)) => {
            SnsError::NotFoundException("Topic does not exist".into())
        }
        EngineError::Store(StoreError::DiskFull(m)) => {
            SnsError::ThrottledException(format!("storage is full: {m}"))
        }
        EngineError::Store(e) => SnsError::InternalErrorException(e.to_string()),
    }
}

/// Results of the SNS API.
pub type SnsResult<T> = std::result::Result<T, SnsError>;
