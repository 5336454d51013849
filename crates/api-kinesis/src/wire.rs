//! The two encodings of a Kinesis call, chosen by the request's `Content-Type`: AWS JSON 1.1
//! (boto3, the AWS CLI, the AWS SDK for Rust, the JavaScript and Go SDKs) and AWS CBOR 1.1
//! (the AWS SDK for Java and the KCL). Handlers read and write JSON values; a CBOR call is
//! transcoded at the edge ([`crate::cbor`]), and is answered in CBOR, errors included.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::Serialize;
use serde_json::Value;
use vigil_api_common::error::{Protocol, render};

use crate::error::{KinesisError, KinesisResult};

/// The `Content-Type` of CBOR calls.
pub const CBOR_CONTENT_TYPE: &str = "application/x-amz-cbor-1.1";

/// How a call is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// AWS JSON 1.1.
    Json,
    /// AWS CBOR 1.1.
    Cbor,
}

impl Encoding {
    /// The encoding of a request, from its `Content-Type` (JSON unless it says CBOR).
    pub fn of(headers: &HeaderMap) -> Self {
        let cbor = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case(CBOR_CONTENT_TYPE));
        if cbor { Self::Cbor } else { Self::Json }
    }

    /// The error protocol of the encoding.
    pub fn protocol(self) -> Protocol {
        match self {
            Self::Json => Protocol::AwsJson11,
            Self::Cbor => Protocol::AwsCbor11,
        }
    }

    /// A 200 response with `value` (or an empty body, for operations without output).
    pub fn respond(self, value: Option<&Value>) -> Response {
        let body = match (value, self) {
            (None, _) => Vec::new(),
            (Some(v), Self::Json) => match serde_json::to_vec(v) {
                Ok(b) => b,
                Err(e) => {
                    return self.error(&KinesisError::InternalFailureException(format!(
                        "encoding the response: {e}"
                    )));
                }
            },
            (Some(v), Self::Cbor) => crate::cbor::from_json(v),
        };
        (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(self.protocol().content_type()),
            )],
            body,
        )
            .into_response()
    }

    /// The response for an error.
    pub fn error(self, e: &KinesisError) -> Response {
        render(e, self.protocol())
    }
}

/// Parses a request body as an operation's input (an empty body is `{}`). JSON is parsed
/// straight into the input shape; CBOR through its JSON transcoding.
pub fn input<'a, T: Deserialize<'a>>(
    op: &str,
    encoding: Encoding,
    body: &'a [u8],
) -> KinesisResult<T> {
    let bad = |e: serde_json::Error| {
        KinesisError::SerializationException(format!(
            "The request body is not valid input for {op}: {e}"
        ))
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return serde_json::from_slice(b"{}").map_err(bad);
    }
    match encoding {
        Encoding::Json => serde_json::from_slice(body).map_err(bad),
        Encoding::Cbor => {
            let v = crate::cbor::to_json(body).map_err(KinesisError::SerializationException)?;
            T::deserialize(v).map_err(bad)
        }
    }
}

/// A handler's output as a JSON value.
pub fn output<T: Serialize>(v: &T) -> KinesisResult<Value> {
    serde_json::to_value(v)
        .map_err(|e| KinesisError::InternalFailureException(format!("encoding: {e}")))
}

/// Sets member `key` of the JSON object `v` (nothing if `v` is not an object).
pub fn set(v: &mut Value, key: &str, value: Value) {
    if let Some(m) = v.as_object_mut() {
        m.insert(key.to_owned(), value);
    }
}
