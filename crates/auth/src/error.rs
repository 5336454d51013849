//! Why a request failed authentication, as AWS says it.
//!
//! Every [`AuthError`] variant maps to one AWS error type name ([`AuthError::aws_code`]), an
//! HTTP status ([`AuthError::http_status`]) and a message shaped like AWS's (`Display`). The API
//! layer puts the code in `x-amzn-ErrorType` and `__type`, and the message in `Message`.
//!
//! Names and statuses, and where they come from (kinesisvideo is a rest-json service; its
//! front end answers authentication failures with the `…Exception`-suffixed names of the
//! JSON protocols, not the query protocol's `SignatureDoesNotMatch`/`InvalidClientTokenId`):
//!
//! | variant | `aws_code` | status |
//! |---|---|---|
//! | `MissingAuthenticationToken` | `MissingAuthenticationTokenException` | 403 |
//! | `IncompleteSignature`, `UnsupportedAlgorithm` | `IncompleteSignatureException` | 400 |
//! | `CredentialScope`, `SignatureExpired`, `SignatureNotYetCurrent`, `PresignedExpired`, `SignedHeaderMissing`, `ContentSha256Mismatch`, `SignatureMismatch` | `InvalidSignatureException` | 403 |
//! | `UnrecognizedClient` | `UnrecognizedClientException` | 403 |
//!
//! Sources:
//! - AWS "Common Errors" pages (e.g. the CloudSearch, RDS and EMR API references):
//!   `IncompleteSignature` "The request signature does not conform to AWS standards", HTTP 400;
//!   `MissingAuthenticationToken` "The request must contain either a valid (registered) AWS
//!   access key ID or X.509 certificate", HTTP 403.
//! - API Gateway and rest-json services answer `x-amzn-ErrorType:
//!   MissingAuthenticationTokenException` with `{"message":"Missing Authentication Token"}` and
//!   403 (brain-power/Brain-Power-Amazon-Fidgetology#29).
//! - `IncompleteSignatureException`, status 400, with messages such as "'…' not a valid
//!   key=value pair (missing equal-sign) in Authorization header: '…'." and "Authorization
//!   header requires 'Signature' parameter." (iann0036/cloud9-sync#10,
//!   brendanhay/amazonka#316, awslabs/fhir-works-on-aws-deployment#379).
//! - `InvalidSignatureException` "Credential should be scoped to a valid region" with 403 from
//!   a rest-json service (aws/aws-sdk-js-v3#5576, CloudFront KeyValueStore); the message form
//!   "Credential should be scoped to a valid region, not 'us-west-1'." (aws/aws-sdk-java#1097)
//!   and "Credential should be scoped to correct service: 'batch'." (cllunsford/aws-signing-proxy#25).
//! - Clock skew: "Signature expired: 20160610T180547Z is now earlier than 20160610T180612Z
//!   (20160610T181112Z - 5 min.)" and "Signature not yet current: 20131120T113529Z is still
//!   later than 20131120T104538Z (20131120T104038Z + 5 min.)", code `InvalidSignatureException`,
//!   403 from the rest-json Glacier API (basak/glacier-cli#36; the JSON-1.x services such as
//!   Kinesis Data Streams send the same with 400: remind101/logspout-kinesis#21,
//!   s12v/awsbeats#48).
//! - `UnrecognizedClientException` "The security token included in the request is invalid."
//!   with 403 from the rest-json Lambda API (iann0036/iamlive#58) and from API Gateway
//!   (badslug/Paw-AWSSignature4DynamicValue#5).
//! - The signature mismatch message is the one every AWS SigV4 service sends: "The request
//!   signature we calculated does not match the signature you provided. Check your AWS Secret
//!   Access Key and signing method. Consult the service documentation for details." followed by
//!   the canonical request and the string to sign it expected (aws/aws-cli#6676 and the SigV4
//!   troubleshooting guide).
//! - Presigned expiry has no Coral example to copy; it reuses `InvalidSignatureException`/403
//!   (as header-form expiry does) with S3's "Request has expired" wording.
//!
//! What the C producer does with them: it acts on the status only; 401 and 403 make it fetch
//! credentials again and retry, 400 is "unknown" and retried (`../shared/spec/kvs-api.md`
//! §1.1).

use crate::time::format_amz_date;

/// A request that failed authentication. Matchable; see the module docs for the AWS names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Neither an `Authorization` header nor presigned query parameters.
    #[error("Missing Authentication Token")]
    MissingAuthenticationToken,
    /// The `Authorization` header or the presigned query parameters are malformed or
    /// incomplete.
    #[error("{0}")]
    IncompleteSignature(Malformed),
    /// An algorithm other than `AWS4-HMAC-SHA256` (SigV2, SigV4a, another scheme).
    #[error("Unsupported AWS 'algorithm': '{algorithm}'.")]
    UnsupportedAlgorithm {
        /// The algorithm as sent (lossily decoded, truncated to 256 bytes).
        algorithm: String,
    },
    /// The credential scope names another date, region, service or terminator.
    #[error("{0}")]
    CredentialScope(ScopeError),
    /// Header form: `X-Amz-Date` is older than now minus the allowed skew.
    #[error(
        "Signature expired: {} is now earlier than {} ({} - {} min.)",
        format_amz_date(*signed_at_ms),
        format_amz_date(now_ms.saturating_sub(*max_skew_ms)),
        format_amz_date(*now_ms),
        max_skew_ms / 60_000
    )]
    SignatureExpired {
        /// `X-Amz-Date`, ms since the epoch.
        signed_at_ms: u64,
        /// The server's clock.
        now_ms: u64,
        /// The allowed skew.
        max_skew_ms: u64,
    },
    /// `X-Amz-Date` is later than now plus the allowed skew (both forms).
    #[error(
        "Signature not yet current: {} is still later than {} ({} + {} min.)",
        format_amz_date(*signed_at_ms),
        format_amz_date(now_ms.saturating_add(*max_skew_ms)),
        format_amz_date(*now_ms),
        max_skew_ms / 60_000
    )]
    SignatureNotYetCurrent {
        /// `X-Amz-Date`, ms since the epoch.
        signed_at_ms: u64,
        /// The server's clock.
        now_ms: u64,
        /// The allowed skew.
        max_skew_ms: u64,
    },
    /// Presigned form: `X-Amz-Date` + `X-Amz-Expires` is in the past.
    #[error(
        "Request has expired: it was valid until {} and it is now {}.",
        format_amz_date(*expires_at_ms),
        format_amz_date(*now_ms)
    )]
    PresignedExpired {
        /// `X-Amz-Date` + `X-Amz-Expires`, ms since the epoch.
        expires_at_ms: u64,
        /// The server's clock.
        now_ms: u64,
    },
    /// The access key is unknown or revoked, or the request carries a session token (Vigil
    /// issues none). AWS gives the same answer for all three.
    #[error("The security token included in the request is invalid.")]
    UnrecognizedClient {
        /// The access key id from the credential scope.
        access_key_id: String,
        /// Which of the three it was, for the server's log (not for the client).
        reason: UnrecognizedReason,
    },
    /// A header named in `SignedHeaders` is not in the request.
    #[error(
        "The request signature we calculated does not match the signature you provided: \
         the signed header '{name}' is not in the request."
    )]
    SignedHeaderMissing {
        /// The header name as listed in `SignedHeaders`.
        name: String,
    },
    /// `x-amz-content-sha256` is a hash that is not the SHA-256 of the body.
    #[error("The provided 'x-amz-content-sha256' header does not match what was computed.")]
    ContentSha256Mismatch,
    /// The signature does not match the one computed with the key's secret.
    #[error(
        "The request signature we calculated does not match the signature you provided. Check \
         your AWS Secret Access Key and signing method. Consult the service documentation for \
         details.\n\nThe Canonical String for this request should have been\n'{canonical_request}'\
         \n\nThe String-to-Sign should have been\n'{string_to_sign}'\n"
    )]
    SignatureMismatch {
        /// The canonical request the server computed (lossily decoded).
        canonical_request: String,
        /// The string to sign the server computed.
        string_to_sign: String,
    },
}

impl AuthError {
    /// The AWS error type name, for `x-amzn-ErrorType` and the body's `__type`.
    pub fn aws_code(&self) -> &'static str {
        match self {
            AuthError::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            AuthError::IncompleteSignature(_) | AuthError::UnsupportedAlgorithm { .. } => {
                "IncompleteSignatureException"
            }
            AuthError::CredentialScope(_)
            | AuthError::SignatureExpired { .. }
            | AuthError::SignatureNotYetCurrent { .. }
            | AuthError::PresignedExpired { .. }
            | AuthError::SignedHeaderMissing { .. }
            | AuthError::ContentSha256Mismatch
            | AuthError::SignatureMismatch { .. } => "InvalidSignatureException",
            AuthError::UnrecognizedClient { .. } => "UnrecognizedClientException",
        }
    }

    /// The HTTP status AWS answers with: 400 for a malformed signature, 403 otherwise.
    pub fn http_status(&self) -> u16 {
        match self {
            AuthError::IncompleteSignature(_) | AuthError::UnsupportedAlgorithm { .. } => 400,
            _ => 403,
        }
    }

    /// The message for the client (the body's `Message`); the same as `Display`.
    pub fn message(&self) -> String {
        self.to_string()
    }
}

/// What is wrong with a malformed `Authorization` header or presigned query
/// ([`AuthError::IncompleteSignature`]). Values quoted in messages are lossily decoded and
/// truncated to 256 bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    /// A comma-separated component of the `Authorization` header has no `=`.
    #[error(
        "'{component}' not a valid key=value pair (missing equal-sign) in Authorization \
         header: '{header}'."
    )]
    NotKeyValuePair {
        /// The component.
        component: String,
        /// The whole header value.
        header: String,
    },
    /// `Credential`, `SignedHeaders` or `Signature` is missing from the header.
    #[error("Authorization header requires '{0}' parameter.")]
    MissingComponent(&'static str),
    /// A component appears twice in the header.
    #[error("Authorization header has more than one '{0}' parameter.")]
    DuplicateComponent(String),
    /// A header that must appear at most once appears more than once.
    #[error("The request has more than one '{0}' header.")]
    DuplicateHeader(&'static str),
    /// Header form without an `X-Amz-Date` header.
    #[error("Authorization header requires existence of a 'X-Amz-Date' header.")]
    MissingDate,
    /// `X-Amz-Date` is not `YYYYMMDDTHHMMSSZ`.
    #[error(
        "Date must be in ISO-8601 'basic format'. Got '{0}'. See http://en.wikipedia.org/wiki/ISO_8601"
    )]
    BadDate(String),
    /// The credential is not `key/date/region/service/terminator`.
    #[error(
        "Credential must have exactly 5 slash-delimited elements, e.g. \
         keyid/date/region/service/term, got '{0}'"
    )]
    BadCredential(String),
    /// `SignedHeaders` is not a `;`-separated, sorted list of distinct lower-case names.
    #[error(
        "SignedHeaders must be distinct lower-case header names in ascending order, separated \
         by ';', got '{0}'"
    )]
    BadSignedHeaders(String),
    /// `host` is not among the signed headers.
    #[error("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")]
    HostNotSigned,
    /// The signature is not 64 hexadecimal digits.
    #[error("Signature must be 64 hexadecimal digits, got '{0}'")]
    BadSignature(String),
    /// A presigned request lacks one of the required query parameters.
    #[error(
        "AWS query-string parameters must include '{0}'. Re-examine the query-string parameters."
    )]
    MissingQueryParameter(&'static str),
    /// A presigned query parameter appears more than once.
    #[error("The query-string parameter '{0}' appears more than once.")]
    DuplicateQueryParameter(&'static str),
    /// `X-Amz-Expires` is not an integer in 1..=604800.
    #[error("X-Amz-Expires must be an integer number of seconds from 1 to 604800, got '{0}'")]
    BadExpires(String),
    /// Both an `Authorization` header and presigned query parameters.
    #[error(
        "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the \
         Authorization header should be specified"
    )]
    BothMechanisms,
    /// `x-amz-content-sha256` is neither a hex SHA-256 nor `UNSIGNED-PAYLOAD`.
    #[error(
        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD or a hex SHA-256 value; '{0}' is not \
         supported"
    )]
    BadContentSha256(String),
    /// An input is over one of the [`crate::Limits`].
    #[error("The {what} is longer than {limit} {unit}.")]
    TooLong {
        /// What was too long.
        what: &'static str,
        /// The limit.
        limit: usize,
        /// Its unit ("bytes", "names", "parameters").
        unit: &'static str,
    },
}

/// Which part of the credential scope is wrong ([`AuthError::CredentialScope`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScopeError {
    /// The scope's date is not the date of `X-Amz-Date`.
    #[error(
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from \
         HTTP: '{scope_date}' != '{request_date}', from '{amz_date}'."
    )]
    Date {
        /// The date in the scope.
        scope_date: String,
        /// `X-Amz-Date`'s date.
        request_date: String,
        /// `X-Amz-Date`.
        amz_date: String,
    },
    /// The scope's region is not the server's.
    #[error(
        "Credential should be scoped to a valid region, not '{region}'. This endpoint's region \
         is '{expected}'."
    )]
    Region {
        /// The region in the scope.
        region: String,
        /// The server's region.
        expected: String,
    },
    /// The scope's service is not `kinesisvideo`.
    #[error("Credential should be scoped to correct service: '{expected}'. ")]
    Service {
        /// The service in the scope.
        service: String,
        /// The service expected.
        expected: String,
    },
    /// The scope does not end with `aws4_request`.
    #[error("Credential should be scoped with a valid terminator: 'aws4_request', not '{0}'.")]
    Terminator(String),
}

/// Why an access key was not accepted ([`AuthError::UnrecognizedClient`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnrecognizedReason {
    /// No such key.
    UnknownKey,
    /// The key exists but was revoked.
    Revoked,
    /// The request carries `X-Amz-Security-Token`; Vigil issues no temporary credentials, so
    /// no token can be valid.
    SecurityToken,
}

/// Quotes untrusted bytes in a message: lossily decoded, at most 256 bytes.
pub(crate) fn quote(bytes: &[u8]) -> String {
    let cut = bytes.get(..256).unwrap_or(bytes);
    let mut s = String::from_utf8_lossy(cut).into_owned();
    if cut.len() < bytes.len() {
        s.push('…');
    }
    s
}
