//! The Rekognition API's errors, named after its exceptions, with status and body in one
//! place ([`RekognitionError::into_response`]).
//!
//! Wire format (AWS JSON 1.1): the status, `x-amzn-ErrorType: <Name>`, and the body
//! `{"__type": "<Name>", "Message": "..."}`. Rekognition's service model gives every client
//! exception status 400 (including `ResourceNotFoundException` and `AccessDeniedException`,
//! which KVS answers with 404 and 401) and its faults 500. Errors of the shared request
//! pipeline (signatures, unreadable bodies) keep their generic AWS names and statuses
//! ([`CommonError`]).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use vigil_api_common::error::{AwsError, CommonError, Protocol, render};
use vigil_store::StoreError;

/// An error the Rekognition API answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(clippy::enum_variant_names)]
pub enum RekognitionError {
    /// The collection (or face) does not exist.
    #[error("{0}")]
    ResourceNotFoundException(String),
    /// A collection by that id exists.
    #[error("{0}")]
    ResourceAlreadyExistsException(String),
    /// The resource is in a state that does not allow the call (a stream processor that runs
    /// cannot be started again, updated or deleted).
    #[error("{0}")]
    ResourceInUseException(String),
    /// A limit of the service (stream processors).
    #[error("{0}")]
    LimitExceededException(String),
    /// An input parameter violated a constraint the operation checks (no face in the image, a
    /// face id not in the collection).
    #[error("{0}")]
    InvalidParameterException(String),
    /// An input violates the service model's constraints (pattern, length, range), with
    /// AWS's message format (`1 validation error detected: Value ... at ... failed to satisfy
    /// constraint: ...`).
    #[error("{0}")]
    ValidationException(String),
    /// The image is not a JPEG or PNG Vigil can decode.
    #[error("{0}")]
    InvalidImageFormatException(String),
    /// The image is larger than 5 MB, or its dimensions are too large.
    #[error("{0}")]
    ImageTooLargeException(String),
    /// Vigil has no S3: images are given as `Bytes` only.
    #[error("{0}")]
    InvalidS3ObjectException(String),
    /// The `NextToken` is not one this server issued.
    #[error("{0}")]
    InvalidPaginationTokenException(String),
    /// The caller may not perform this action.
    #[error("{0}")]
    AccessDeniedException(String),
    /// The request body is not the operation's JSON.
    #[error("{0}")]
    SerializationException(String),
    /// No Rekognition operation by that name (or one Vigil does not implement).
    #[error("{0}")]
    UnknownOperationException(String),
    /// A server fault.
    #[error("{0}")]
    InternalServerError(String),
    /// An error of the shared request pipeline (authentication, body), answered with its
    /// generic AWS name and status.
    #[error("{0}")]
    Common(CommonError),
    /// The server cannot take the request now (storage full, shutting down): the generic
    /// `ServiceUnavailable` (503), which the SDKs retry.
    #[error("{0}")]
    ServiceUnavailable(String),
}

impl RekognitionError {
    /// The AWS error name.
    pub fn aws_code(&self) -> &'static str {
        match self {
            Self::ResourceNotFoundException(_) => "ResourceNotFoundException",
            Self::ResourceAlreadyExistsException(_) => "ResourceAlreadyExistsException",
            Self::ResourceInUseException(_) => "ResourceInUseException",
            Self::LimitExceededException(_) => "LimitExceededException",
            Self::InvalidParameterException(_) => "InvalidParameterException",
            Self::ValidationException(_) => "ValidationException",
            Self::InvalidImageFormatException(_) => "InvalidImageFormatException",
            Self::ImageTooLargeException(_) => "ImageTooLargeException",
            Self::InvalidS3ObjectException(_) => "InvalidS3ObjectException",
            Self::InvalidPaginationTokenException(_) => "InvalidPaginationTokenException",
            Self::AccessDeniedException(_) => "AccessDeniedException",
            Self::SerializationException(_) => "SerializationException",
            Self::UnknownOperationException(_) => "UnknownOperationException",
            Self::InternalServerError(_) => "InternalServerError",
            Self::Common(e) => e.aws_code(),
            Self::ServiceUnavailable(_) => "ServiceUnavailable",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InternalServerError(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Common(e) => e.status(),
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        match self {
            Self::ResourceNotFoundException(m)
            | Self::ResourceAlreadyExistsException(m)
            | Self::ResourceInUseException(m)
            | Self::LimitExceededException(m)
            | Self::InvalidParameterException(m)
            | Self::ValidationException(m)
            | Self::InvalidImageFormatException(m)
            | Self::ImageTooLargeException(m)
            | Self::InvalidS3ObjectException(m)
            | Self::InvalidPaginationTokenException(m)
            | Self::AccessDeniedException(m)
            | Self::SerializationException(m)
            | Self::UnknownOperationException(m)
            | Self::InternalServerError(m)
            | Self::ServiceUnavailable(m) => m,
            Self::Common(e) => e.message(),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        serde_json::json!({ "__type": self.aws_code(), "Message": self.message() }).to_string()
    }

    /// A shorthand for [`RekognitionError::InvalidParameterException`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::InvalidParameterException(msg.into())
    }

    /// A constraint of the service model violated by `value` at `member` (AWS's message).
    pub fn validation(value: &str, member: &str, constraint: &str) -> Self {
        let shown: String = value.chars().take(100).collect();
        Self::ValidationException(format!(
            "1 validation error detected: Value '{shown}' at '{member}' failed to satisfy \
             constraint: {constraint}"
        ))
    }

    /// The collection `id` does not exist (Rekognition's message).
    pub fn collection_not_found(id: &str) -> Self {
        Self::ResourceNotFoundException(format!("The collection id: {id} does not exist"))
    }
}

impl AwsError for RekognitionError {
    fn aws_code(&self) -> &'static str {
        RekognitionError::aws_code(self)
    }

    fn status(&self) -> StatusCode {
        RekognitionError::status(self)
    }

    fn message(&self) -> &str {
        RekognitionError::message(self)
    }
}

impl IntoResponse for RekognitionError {
    fn into_response(self) -> Response {
        match &self {
            // The pipeline's errors and ServiceUnavailable are the generic AWS ones, in the
            // rest-json form the KVS API answers them in.
            Self::Common(_) | Self::ServiceUnavailable(_) => render(&self, Protocol::RestJson),
            _ => render(&self, Protocol::AwsJson11Message),
        }
    }
}

impl From<CommonError> for RekognitionError {
    fn from(e: CommonError) -> Self {
        match e {
            // Key policies deny with KVS's name; Rekognition's is AccessDeniedException.
            CommonError::NotAuthorizedException(m) => Self::AccessDeniedException(m),
            CommonError::SerializationException(m) => Self::SerializationException(m),
            CommonError::InternalFailure(m) => Self::InternalServerError(m),
            other => Self::Common(other),
        }
    }
}

/// Store errors the API passes through on purpose; the rest are internal errors (logged with
/// their detail, answered without it).
impl From<StoreError> for RekognitionError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::CollectionNotFound(id) => Self::collection_not_found(&id),
            StoreError::CollectionExists(id) => Self::ResourceAlreadyExistsException(format!(
                "The collection id: {id} already exists"
            )),
            StoreError::InvalidArgument(m) => Self::InvalidParameterException(m),
            StoreError::DiskFull(m) => Self::ServiceUnavailable(format!("storage is full: {m}")),
            StoreError::Closed => Self::ServiceUnavailable("the server is shutting down".into()),
            other => {
                tracing::error!("store error: {other}");
                Self::InternalServerError("An internal error occurred.".into())
            }
        }
    }
}

impl From<vigil_analysis::Error> for RekognitionError {
    fn from(e: vigil_analysis::Error) -> Self {
        use vigil_analysis::Error as A;
        match e {
            A::ProcessorNotFound(name) => Self::ResourceNotFoundException(format!(
                "The stream processor {name} does not exist."
            )),
            A::ProcessorExists(name) => Self::ResourceInUseException(format!(
                "A stream processor named {name} already exists."
            )),
            A::InUse(m) => Self::ResourceInUseException(m),
            A::Invalid(m) => Self::InvalidParameterException(m),
            A::LimitExceeded(m) => Self::LimitExceededException(m),
            A::Store(e) => e.into(),
            A::DataStream(vigil_datastreams::Error::StreamNotFound(name)) => {
                Self::InvalidParameterException(format!(
                    "The Kinesis data stream {name} does not exist."
                ))
            }
            A::DataStream(other) => {
                tracing::error!("data stream error: {other}");
                Self::InternalServerError("An internal error occurred.".into())
            }
            A::Internal(m) => {
                tracing::error!("analysis error: {m}");
                Self::InternalServerError(m)
            }
        }
    }
}

/// Results of the Rekognition API.
pub type RekResult<T> = std::result::Result<T, RekognitionError>;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn statuses_and_bodies() {
        let e = RekognitionError::collection_not_found("people");
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        let body: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(body["__type"], "ResourceNotFoundException");
        assert_eq!(body["Message"], "The collection id: people does not exist");
        assert_eq!(
            RekognitionError::InternalServerError("x".into()).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let denied: RekognitionError = CommonError::NotAuthorizedException("no".into()).into();
        assert_eq!(denied.aws_code(), "AccessDeniedException");
        assert_eq!(denied.status(), StatusCode::BAD_REQUEST);
        let sig: RekognitionError = CommonError::InvalidSignatureException("bad".into()).into();
        assert_eq!(sig.aws_code(), "InvalidSignatureException");
        assert_eq!(sig.status(), StatusCode::FORBIDDEN);
        let v = RekognitionError::validation(
            "a b",
            "collectionId",
            "Member must satisfy regular expression pattern: [a-zA-Z0-9_.\\-]+",
        );
        assert_eq!(
            v.message(),
            "1 validation error detected: Value 'a b' at 'collectionId' failed to satisfy \
             constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.\\-]+"
        );
    }
}
