//! The Kinesis Video Streams services' errors, named after the AWS exceptions, with their
//! HTTP status in one place ([`KvsError::status`]) and their body rendered by
//! `vigil_api_common::error::render` in the rest-json form.
//!
//! Wire format (`../shared/spec/kvs-api.md` §1.1): the status, the header
//! `x-amzn-ErrorType: <Name>` (botocore and the Rust SDK key on it), a request id in
//! `x-amzn-RequestId`, and the body `{"__type": "<Name>", "Message": "..."}` (`__type` for
//! clients that read the body only; KVS writes `Message` with a capital M). Statuses follow the
//! service models: 404 for `ResourceNotFoundException` (the C producer's DescribeStream → 404
//! is what makes it create the stream), 401 for `NotAuthorizedException` and
//! `AccessDeniedException`, 403 for signature failures, 400 for the rest of the client errors.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use vigil_api_common::error::{AwsError, CommonError, Protocol, render};
use vigil_store::StoreError;

/// An error the API answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(clippy::enum_variant_names)]
pub enum KvsError {
    /// The stream (or fragment, or resource) does not exist.
    #[error("{0}")]
    ResourceNotFoundException(String),
    /// The resource is busy, or a stream by that name exists.
    #[error("{0}")]
    ResourceInUseException(String),
    /// A parameter is missing, malformed or out of range.
    #[error("{0}")]
    InvalidArgumentException(String),
    /// The `CurrentVersion` given is not the stream's.
    #[error("{0}")]
    VersionMismatchException(String),
    /// The caller may not do this.
    #[error("{0}")]
    NotAuthorizedException(String),
    /// The caller may not do this (the generic tagging operations' name for it).
    #[error("{0}")]
    AccessDeniedException(String),
    /// Too many calls, or a limit of the server reached.
    #[error("{0}")]
    ClientLimitExceededException(String),
    /// Too many connections to one stream.
    #[error("{0}")]
    ConnectionLimitExceededException(String),
    /// More than 50 tags on one resource.
    #[error("{0}")]
    TagsPerResourceExceededLimitException(String),
    /// An ARN that is not a Kinesis Video ARN.
    #[error("{0}")]
    InvalidResourceFormatException(String),
    /// The stream keeps no data (`DataRetentionInHours` is 0).
    #[error("{0}")]
    NoDataRetentionException(String),
    /// The request went to the wrong endpoint.
    #[error("{0}")]
    InvalidEndpointException(String),
    /// More fragments asked for than one request may.
    #[error("{0}")]
    FragmentLimitExceeded(String),
    /// The request body is not the JSON the operation takes.
    #[error("{0}")]
    SerializationException(String),
    /// No operation at this path.
    #[error("{0}")]
    UnknownOperationException(String),
    /// A signature failure (wrong secret, mangled request, expired or future date).
    #[error("{0}")]
    InvalidSignatureException(String),
    /// An unknown or revoked access key.
    #[error("{0}")]
    UnrecognizedClientException(String),
    /// The request carries no credentials.
    #[error("{0}")]
    MissingAuthenticationTokenException(String),
    /// The Authorization header or presigned query is malformed.
    #[error("{0}")]
    IncompleteSignatureException(String),
    /// The stream's codecs are not ones this output can carry.
    #[error("{0}")]
    UnsupportedStreamMediaTypeException(String),
    /// A track needs codec private data and has none.
    #[error("{0}")]
    MissingCodecPrivateDataException(String),
    /// A track's codec private data does not parse, or changes where it may not.
    #[error("{0}")]
    InvalidCodecPrivateDataException(String),
    /// A frame could not be parsed.
    #[error("{0}")]
    InvalidMediaFrameException(String),
    /// An operation of the KVS API that Vigil does not implement (WebRTC, edge agents).
    #[error("{0}")]
    NotImplemented(String),
    /// A server fault.
    #[error("{0}")]
    InternalFailure(String),
    /// The server cannot take the request now (shutting down, store unavailable).
    #[error("{0}")]
    ServiceUnavailable(String),
}

/// The AWS message for a missing stream (observed from KVS).
pub const STREAM_NOT_FOUND: &str = "The requested stream is not found or not active.";

impl KvsError {
    /// The AWS error name: the `x-amzn-ErrorType` header and the body's `__type`.
    pub fn aws_code(&self) -> &'static str {
        match self {
            Self::ResourceNotFoundException(_) => "ResourceNotFoundException",
            Self::ResourceInUseException(_) => "ResourceInUseException",
            Self::InvalidArgumentException(_) => "InvalidArgumentException",
            Self::VersionMismatchException(_) => "VersionMismatchException",
            Self::NotAuthorizedException(_) => "NotAuthorizedException",
            Self::AccessDeniedException(_) => "AccessDeniedException",
            Self::ClientLimitExceededException(_) => "ClientLimitExceededException",
            Self::ConnectionLimitExceededException(_) => "ConnectionLimitExceededException",
            Self::TagsPerResourceExceededLimitException(_) => {
                "TagsPerResourceExceededLimitException"
            }
            Self::InvalidResourceFormatException(_) => "InvalidResourceFormatException",
            Self::NoDataRetentionException(_) => "NoDataRetentionException",
            Self::InvalidEndpointException(_) => "InvalidEndpointException",
            Self::FragmentLimitExceeded(_) => "FragmentLimitExceeded",
            Self::SerializationException(_) => "SerializationException",
            Self::UnknownOperationException(_) => "UnknownOperationException",
            Self::InvalidSignatureException(_) => "InvalidSignatureException",
            Self::UnrecognizedClientException(_) => "UnrecognizedClientException",
            Self::MissingAuthenticationTokenException(_) => "MissingAuthenticationTokenException",
            Self::IncompleteSignatureException(_) => "IncompleteSignatureException",
            Self::UnsupportedStreamMediaTypeException(_) => "UnsupportedStreamMediaTypeException",
            Self::MissingCodecPrivateDataException(_) => "MissingCodecPrivateDataException",
            Self::InvalidCodecPrivateDataException(_) => "InvalidCodecPrivateDataException",
            Self::InvalidMediaFrameException(_) => "InvalidMediaFrameException",
            Self::NotImplemented(_) => "NotImplemented",
            Self::InternalFailure(_) => "InternalFailure",
            Self::ServiceUnavailable(_) => "ServiceUnavailable",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::ResourceNotFoundException(_) | Self::UnknownOperationException(_) => {
                StatusCode::NOT_FOUND
            }
            Self::NotAuthorizedException(_) | Self::AccessDeniedException(_) => {
                StatusCode::UNAUTHORIZED
            }
            Self::InvalidSignatureException(_)
            | Self::UnrecognizedClientException(_)
            | Self::MissingAuthenticationTokenException(_) => StatusCode::FORBIDDEN,
            Self::InternalFailure(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Self::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::ResourceInUseException(_)
            | Self::InvalidArgumentException(_)
            | Self::VersionMismatchException(_)
            | Self::ClientLimitExceededException(_)
            | Self::ConnectionLimitExceededException(_)
            | Self::TagsPerResourceExceededLimitException(_)
            | Self::InvalidResourceFormatException(_)
            | Self::NoDataRetentionException(_)
            | Self::InvalidEndpointException(_)
            | Self::FragmentLimitExceeded(_)
            | Self::SerializationException(_)
            | Self::UnsupportedStreamMediaTypeException(_)
            | Self::MissingCodecPrivateDataException(_)
            | Self::InvalidCodecPrivateDataException(_)
            | Self::InvalidMediaFrameException(_)
            | Self::IncompleteSignatureException(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        match self {
            Self::ResourceNotFoundException(m)
            | Self::ResourceInUseException(m)
            | Self::InvalidArgumentException(m)
            | Self::VersionMismatchException(m)
            | Self::NotAuthorizedException(m)
            | Self::AccessDeniedException(m)
            | Self::ClientLimitExceededException(m)
            | Self::ConnectionLimitExceededException(m)
            | Self::TagsPerResourceExceededLimitException(m)
            | Self::InvalidResourceFormatException(m)
            | Self::NoDataRetentionException(m)
            | Self::InvalidEndpointException(m)
            | Self::FragmentLimitExceeded(m)
            | Self::SerializationException(m)
            | Self::UnknownOperationException(m)
            | Self::InvalidSignatureException(m)
            | Self::UnrecognizedClientException(m)
            | Self::MissingAuthenticationTokenException(m)
            | Self::IncompleteSignatureException(m)
            | Self::UnsupportedStreamMediaTypeException(m)
            | Self::MissingCodecPrivateDataException(m)
            | Self::InvalidCodecPrivateDataException(m)
            | Self::InvalidMediaFrameException(m)
            | Self::NotImplemented(m)
            | Self::InternalFailure(m)
            | Self::ServiceUnavailable(m) => m,
        }
    }

    /// A missing stream, with KVS's message.
    pub fn stream_not_found() -> Self {
        Self::ResourceNotFoundException(STREAM_NOT_FOUND.into())
    }

    /// A shorthand for [`KvsError::InvalidArgumentException`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::InvalidArgumentException(msg.into())
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        String::from_utf8_lossy(&Protocol::RestJson.error_body(self.aws_code(), self.message()))
            .into_owned()
    }
}

impl AwsError for KvsError {
    fn aws_code(&self) -> &'static str {
        KvsError::aws_code(self)
    }

    fn status(&self) -> StatusCode {
        KvsError::status(self)
    }

    fn message(&self) -> &str {
        KvsError::message(self)
    }
}

impl IntoResponse for KvsError {
    fn into_response(self) -> Response {
        render(&self, Protocol::RestJson)
    }
}

/// The shared pipeline's failures, under the same names (KVS's are the generic AWS ones).
impl From<CommonError> for KvsError {
    fn from(e: CommonError) -> Self {
        match e {
            CommonError::InvalidSignatureException(m) => Self::InvalidSignatureException(m),
            CommonError::UnrecognizedClientException(m) => Self::UnrecognizedClientException(m),
            CommonError::MissingAuthenticationTokenException(m) => {
                Self::MissingAuthenticationTokenException(m)
            }
            CommonError::IncompleteSignatureException(m) => Self::IncompleteSignatureException(m),
            CommonError::NotAuthorizedException(m) => Self::NotAuthorizedException(m),
            CommonError::SerializationException(m) => Self::SerializationException(m),
            CommonError::InternalFailure(m) => Self::InternalFailure(m),
        }
    }
}

/// Store errors the API passes through on purpose; the rest are internal failures (logged with
/// their detail, answered without it).
impl From<StoreError> for KvsError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::StreamNotFound(_) => Self::stream_not_found(),
            StoreError::StreamExists(name) => {
                Self::ResourceInUseException(format!("The stream {name} already exists."))
            }
            StoreError::VersionMismatch { stream, given, .. } => Self::VersionMismatchException(
                format!("The version {given} of stream {stream} is not the current version."),
            ),
            StoreError::InvalidArgument(m) => Self::InvalidArgumentException(m),
            StoreError::NoDataRetention(name) => Self::NoDataRetentionException(format!(
                "The stream {name} does not retain data (DataRetentionInHours is 0)."
            )),
            StoreError::KeyNotFound(id) => Self::InvalidArgumentException(format!(
                "KmsKeyId {id} is not a key this server has."
            )),
            StoreError::FragmentNotFound { number, .. } => {
                Self::ResourceNotFoundException(format!(
                    "Fragment {} was not found.",
                    crate::model::fragment_number(number)
                ))
            }
            StoreError::DiskFull(m) => Self::ServiceUnavailable(format!("storage is full: {m}")),
            StoreError::Closed => Self::ServiceUnavailable("the server is shutting down".into()),
            other => {
                tracing::error!("store error: {other}");
                Self::InternalFailure("An internal error occurred.".into())
            }
        }
    }
}

/// Results of the API layer.
pub type KvsResult<T> = std::result::Result<T, KvsError>;

/// Packaging errors, in the playback APIs' terms.
impl From<vigil_media::Error> for KvsError {
    fn from(e: vigil_media::Error) -> Self {
        let msg = e.to_string();
        match e {
            vigil_media::Error::UnsupportedCodec { .. } => {
                Self::UnsupportedStreamMediaTypeException(msg)
            }
            vigil_media::Error::MissingCodecPrivate { .. } => {
                Self::MissingCodecPrivateDataException(msg)
            }
            vigil_media::Error::InvalidCodecPrivate { .. } => {
                Self::InvalidCodecPrivateDataException(msg)
            }
            vigil_media::Error::InvalidFrame { .. } | vigil_media::Error::Matroska(_) => {
                Self::InvalidMediaFrameException(msg)
            }
            _ => Self::InvalidArgumentException(msg),
        }
    }
}
