//! Errors of the shared request pipeline, and the one place any service's error becomes a
//! response ([`render`]).
//!
//! Every AWS protocol carries an error the same three ways: an HTTP status, the error's name
//! (`x-amzn-ErrorType` header and the body's `__type`, which botocore and the AWS SDKs key
//! on), and a message. What differs is the body's encoding and the message member's spelling
//! ([`Protocol`]). Each service names its errors after its own model's exceptions (an enum per
//! service, implementing [`AwsError`]); the shared pipeline's failures ([`CommonError`]) are
//! the generic AWS ones and each service passes them through or renames them (a key policy's
//! denial is `NotAuthorizedException` in KVS, `AccessDeniedException` in Rekognition and
//! Kinesis).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An error as the wire carries it.
pub trait AwsError {
    /// The AWS error name: the `x-amzn-ErrorType` header and the body's `__type`.
    fn aws_code(&self) -> &'static str;
    /// The HTTP status.
    fn status(&self) -> StatusCode;
    /// The message.
    fn message(&self) -> &str;
}

/// How a service encodes its error bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// rest-json as the Kinesis Video Streams services answer it: `application/json`,
    /// `{"__type": NAME, "Message": ...}`.
    RestJson,
    /// AWS JSON 1.1 with the message in `Message` (Rekognition).
    AwsJson11Message,
    /// AWS JSON 1.1 with the message in `message` (Kinesis Data Streams).
    AwsJson11,
    /// AWS JSON 1.0 (`application/x-amz-json-1.0`), message in `message`.
    AwsJson10,
    /// AWS CBOR 1.1 (`application/x-amz-cbor-1.1`): the same two members as
    /// [`Protocol::AwsJson11`], as a CBOR map.
    AwsCbor11,
    /// The query protocol's XML (`text/xml`): `<ErrorResponse xmlns=NAMESPACE><Error>
    /// <Type>Sender|Receiver</Type><Code>..</Code><Message>..</Message></Error>
    /// <RequestId>..</RequestId></ErrorResponse>`, with the service's namespace
    /// (`http://sns.amazonaws.com/doc/2010-03-31/`). Rendered by [`render_query`], which
    /// needs the request id.
    Query {
        /// The service's XML namespace.
        xmlns: &'static str,
    },
}

impl Protocol {
    /// The `Content-Type` of bodies in this protocol.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::RestJson => "application/json",
            Self::AwsJson11Message | Self::AwsJson11 => "application/x-amz-json-1.1",
            Self::AwsJson10 => "application/x-amz-json-1.0",
            Self::AwsCbor11 => "application/x-amz-cbor-1.1",
            Self::Query { .. } => "text/xml",
        }
    }

    /// The error body for `code` and `message`.
    pub fn error_body(self, code: &str, message: &str) -> Vec<u8> {
        match self {
            Self::RestJson | Self::AwsJson11Message => {
                serde_json::json!({ "__type": code, "Message": message })
                    .to_string()
                    .into_bytes()
            }
            Self::AwsJson11 | Self::AwsJson10 => {
                serde_json::json!({ "__type": code, "message": message })
                    .to_string()
                    .into_bytes()
            }
            Self::AwsCbor11 => cbor_error_body(code, message),
            Self::Query { xmlns } => query_error_body(xmlns, code, message, 400, ""),
        }
    }
}

/// The query protocol's error document.
fn query_error_body(
    xmlns: &str,
    code: &str,
    message: &str,
    status: u16,
    request_id: &str,
) -> Vec<u8> {
    let kind = if status >= 500 { "Receiver" } else { "Sender" };
    format!(
        "<ErrorResponse xmlns=\"{}\"><Error><Type>{kind}</Type><Code>{}</Code><Message>{}</Message>\
         </Error><RequestId>{}</RequestId></ErrorResponse>",
        xml_escape(xmlns),
        xml_escape(code),
        xml_escape(message),
        xml_escape(request_id)
    )
    .into_bytes()
}

/// Text with XML's five special characters escaped.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The response for `e` in the query protocol of the service with namespace `xmlns`, carrying
/// the front's request id (`crate::front::RequestId`) in its body as the header does.
pub fn render_query(e: &dyn AwsError, xmlns: &'static str, request_id: &str) -> Response {
    let mut resp = render(e, Protocol::Query { xmlns });
    *resp.body_mut() = axum::body::Body::from(query_error_body(
        xmlns,
        e.aws_code(),
        e.message(),
        e.status().as_u16(),
        request_id,
    ));
    resp
}

/// `{"__type": code, "message": message}` as a definite-length CBOR map of two text strings
/// (RFC 8949 §3.1: major types 5 and 3).
fn cbor_error_body(code: &str, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + code.len() + message.len());
    out.push(0xa2);
    for s in ["__type", code, "message", message] {
        cbor_text(&mut out, s);
    }
    out
}

/// A CBOR text string (major type 3) with its length in the shortest form.
fn cbor_text(out: &mut Vec<u8>, s: &str) {
    cbor_head(out, 3, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// A CBOR item head: major type `major` (0-7) and argument `n`, shortest form.
fn cbor_head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend_from_slice(&[m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

/// The response for `e` in `protocol`: counted in `vigil_api_errors_total`, logged (server
/// faults as errors, client errors at debug level), with status, `x-amzn-ErrorType` and body.
pub fn render(e: &dyn AwsError, protocol: Protocol) -> Response {
    let code = e.aws_code();
    crate::metrics::global().api_errors.inc(&[code]);
    if e.status().is_server_error() {
        tracing::error!(error = code, "{}", e.message());
    } else {
        tracing::debug!(error = code, "{}", e.message());
    }
    let mut resp = (e.status(), protocol.error_body(code, e.message())).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(protocol.content_type()),
    );
    h.insert("x-amzn-ErrorType", HeaderValue::from_static(code));
    resp
}

/// A failure of the request pipeline every service shares: authentication, authorisation by
/// key policy, reading the body. Names and statuses are the generic AWS ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(clippy::enum_variant_names)]
pub enum CommonError {
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
    /// The caller's key policy does not allow the action (each service answers with its own
    /// name for this: see the module docs).
    #[error("{0}")]
    NotAuthorizedException(String),
    /// The request body could not be read (too large, too slow, broken).
    #[error("{0}")]
    SerializationException(String),
    /// A server fault in the pipeline.
    #[error("{0}")]
    InternalFailure(String),
}

impl AwsError for CommonError {
    fn aws_code(&self) -> &'static str {
        match self {
            Self::InvalidSignatureException(_) => "InvalidSignatureException",
            Self::UnrecognizedClientException(_) => "UnrecognizedClientException",
            Self::MissingAuthenticationTokenException(_) => "MissingAuthenticationTokenException",
            Self::IncompleteSignatureException(_) => "IncompleteSignatureException",
            Self::NotAuthorizedException(_) => "NotAuthorizedException",
            Self::SerializationException(_) => "SerializationException",
            Self::InternalFailure(_) => "InternalFailure",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::InvalidSignatureException(_)
            | Self::UnrecognizedClientException(_)
            | Self::MissingAuthenticationTokenException(_) => StatusCode::FORBIDDEN,
            Self::NotAuthorizedException(_) => StatusCode::UNAUTHORIZED,
            Self::IncompleteSignatureException(_) | Self::SerializationException(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::InternalFailure(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn message(&self) -> &str {
        match self {
            Self::InvalidSignatureException(m)
            | Self::UnrecognizedClientException(m)
            | Self::MissingAuthenticationTokenException(m)
            | Self::IncompleteSignatureException(m)
            | Self::NotAuthorizedException(m)
            | Self::SerializationException(m)
            | Self::InternalFailure(m) => m,
        }
    }
}

/// Results of the shared pipeline.
pub type CommonResult<T> = std::result::Result<T, CommonError>;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn bodies_per_protocol() {
        let rest = Protocol::RestJson.error_body("ResourceNotFoundException", "gone");
        let v: serde_json::Value = serde_json::from_slice(&rest).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"__type": "ResourceNotFoundException", "Message": "gone"})
        );
        let json = Protocol::AwsJson11.error_body("ResourceNotFoundException", "gone");
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["message"], "gone");
        // {"__type": "X", "message": "m"} in CBOR, byte by byte.
        let cbor = Protocol::AwsCbor11.error_body("X", "m");
        let mut want = vec![0xa2, 0x66];
        want.extend_from_slice(b"__type");
        want.extend_from_slice(&[0x61, b'X', 0x67]);
        want.extend_from_slice(b"message");
        want.extend_from_slice(&[0x61, b'm']);
        assert_eq!(cbor, want);
        let mut long = Vec::new();
        cbor_head(&mut long, 2, 300);
        assert_eq!(long, [0x59, 0x01, 0x2c]);
    }

    #[test]
    fn query_errors_are_xml() {
        let e = CommonError::InvalidSignatureException("a <b> & 'c'".into());
        let body = Protocol::Query {
            xmlns: "http://sns.amazonaws.com/doc/2010-03-31/",
        }
        .error_body(e.aws_code(), e.message());
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "<ErrorResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><Error>\
             <Type>Sender</Type><Code>InvalidSignatureException</Code>\
             <Message>a &lt;b&gt; &amp; &apos;c&apos;</Message></Error><RequestId></RequestId>\
             </ErrorResponse>"
        );
        let r = render_query(&CommonError::InternalFailure("x".into()), "urn:x", "req-1");
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(r.headers().get(header::CONTENT_TYPE).unwrap(), "text/xml");
    }

    #[test]
    fn rendered_with_name_and_status() {
        let r = render(
            &CommonError::InvalidSignatureException("bad".into()),
            Protocol::RestJson,
        );
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            r.headers().get("x-amzn-ErrorType").unwrap(),
            "InvalidSignatureException"
        );
        assert_eq!(
            r.headers().get(header::CONTENT_TYPE).unwrap(),
            "application/json"
        );
    }
}
