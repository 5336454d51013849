//! SigV4 (`AWS4-HMAC-SHA256`) verification, sans-IO.
//!
//! The caller describes the request as it arrived ([`Request`]: method, raw path, raw query,
//! headers as bytes), says what the payload is ([`Payload`]) and what time it is, and gets
//! either a [`Verified`] request or an [`AuthError`] that names the AWS error to send.
//!
//! Verification runs in two steps so that a streaming body is never read before its request is
//! authenticated:
//!
//! 1. [`Verifier::begin`] checks everything but the payload: the form of the `Authorization`
//!    header or of the presigned query, the credential scope (date, region, service), the
//!    clock, the access key (through a [`CredentialLookup`]), and builds the canonical request
//!    up to its last line. Nothing here depends on the body.
//! 2. [`Pending::finish`] takes the payload and compares signatures. For `/putMedia` and other
//!    streaming calls pass [`Payload::Streaming`] at once, before reading any of the body; for
//!    JSON calls read the body (bounded by the caller) and pass it or its SHA-256.
//!
//! [`Verifier::verify`] does both at once.
//!
//! # What is signed
//!
//! - **Headers**: exactly the ones listed in `SignedHeaders`, in that list's order (which must
//!   be ascending), with the values as received: leading and trailing spaces and tabs trimmed,
//!   runs of spaces inside collapsed to one, repeated headers joined with `,` in arrival order.
//!   `host` must be signed and is used as sent (the C producer sends it without the port).
//!   Hop-by-hop headers (`connection`, `transfer-encoding`) are verified like any other when
//!   they are listed. A listed header missing from the request is an error
//!   ([`AuthError::SignedHeaderMissing`]). Callers on HTTP/2 pass the `:authority` as `host`.
//! - **URI and query**: see [`crate::encode`] (double encoding, as for every service but S3).
//! - **Payload hash**: `x-amz-content-sha256` when present (64 hex digits or
//!   `UNSIGNED-PAYLOAD`; the `STREAMING-…` aws-chunked forms are refused, since no KVS client
//!   sends aws-chunked bodies). When absent: for [`Payload::Streaming`] the SHA-256 of the empty
//!   string (the C producer's rule, "streaming treats this portion as if the body were
//!   empty"); for a body, the body's SHA-256, and for a presigned request also the
//!   empty-string hash. A declared hex hash must match a body the caller passes
//!   ([`AuthError::ContentSha256Mismatch`]); with [`Payload::Streaming`] it is reported in
//!   [`Verified::payload`] but not checked.
//!
//! # Time
//!
//! Header form: `X-Amz-Date` must be within `max_skew_ms` (5 minutes by default) of `now`,
//! either way. Presigned form: `X-Amz-Expires` is 1..=604800 s, the request is refused once
//! `now` is past `X-Amz-Date + X-Amz-Expires`, or when `X-Amz-Date` is more than
//! `max_skew_ms` in the future. The scope's date must be `X-Amz-Date`'s date.
//!
//! # Session tokens
//!
//! Vigil issues no temporary credentials, so a request with `x-amz-security-token` (header) or
//! `X-Amz-Security-Token` (query) is refused as AWS refuses a token it does not know:
//! [`AuthError::UnrecognizedClient`] with [`UnrecognizedReason::SecurityToken`]. Producers
//! configured with static keys never send one; accepting and ignoring one would let a client
//! believe a token is checked when it is not.
//!
//! # Why verification is written by hand
//!
//! `aws-sigv4` is a signer: it builds the canonical request from a request it is about to send,
//! choosing the headers itself (it leaves out `user-agent` and `transfer-encoding`, adds
//! `host` from the URI with its port) and normalising them. A verifier must instead rebuild the
//! canonical request from the exact header list a client chose and the exact bytes it sent,
//! including hop-by-hop headers and a port-less `host`, and it needs one error per AWS error
//! for each way that can fail. The tests sign requests with `aws-sigv4` and verify them here,
//! so the two stay in agreement. Signature comparison is constant-time (`ring::hmac::verify`).

use std::fmt;

use ring::digest;
use ring::hmac;

use crate::encode::{self, QueryParam, canonical_query, canonical_uri, hex, unhex32};
use crate::error::{AuthError, Malformed, ScopeError, UnrecognizedReason, quote};
use crate::parse::{
    Credential as ParsedCredential, parse_authorization, parse_credential, parse_signature,
    parse_signed_headers, trim_ows,
};
use crate::policy::Principal;
use crate::time::parse_amz_date;

/// The only algorithm supported.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The signing name of every KVS API (control plane, media, archived media).
pub const SERVICE: &str = "kinesisvideo";
/// Hex SHA-256 of the empty string: the payload hash of streaming requests.
pub const EMPTY_SHA256_HEX: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// The `x-amz-content-sha256` value of a request whose payload is not signed.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// The longest validity a presigned request may ask for (7 days), as AWS.
pub const MAX_EXPIRES_S: u64 = 604_800;

/// Bounds on what the verifier reads; anything longer is refused with
/// [`Malformed::TooLong`] before it is parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of the `Authorization` header value.
    pub max_authorization_len: usize,
    /// Names in `SignedHeaders`.
    pub max_signed_headers: usize,
    /// Bytes of the raw query string.
    pub max_query_len: usize,
    /// Parameters in the query string.
    pub max_query_params: usize,
    /// Bytes of the raw path.
    pub max_path_len: usize,
    /// Bytes of the canonical headers (all signed headers' names and values).
    pub max_canonical_headers_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_authorization_len: 4_096,
            max_signed_headers: 64,
            max_query_len: 16_384,
            max_query_params: 128,
            max_path_len: 8_192,
            max_canonical_headers_len: 65_536,
        }
    }
}

/// What the verifier accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierConfig {
    /// The server's region: what ARNs carry, and with [`Self::any_region`] off the only
    /// region accepted in the credential scope.
    pub region: String,
    /// Accept a credential scoped to any well-formed region (`[a-z0-9-]{1,32}`), not only
    /// [`Self::region`]: one server is every region to its clients, so a client left at its
    /// SDK's default region (the KVS producer SDK's is `us-west-2`) still gets in. The
    /// signature is checked with the region the client signed for, as always.
    pub any_region: bool,
    /// The service name the scope must have: [`SERVICE`].
    pub service: String,
    /// How far `X-Amz-Date` may be from the server's clock, either way (5 minutes, as AWS).
    pub max_skew_ms: u64,
    /// Input bounds.
    pub limits: Limits,
}

impl VerifierConfig {
    /// The defaults for a server in `region`.
    pub fn new(region: impl Into<String>) -> Self {
        Self {
            region: region.into(),
            any_region: false,
            service: SERVICE.to_owned(),
            max_skew_ms: 5 * 60 * 1_000,
            limits: Limits::default(),
        }
    }
}

/// A request as it arrived, before its body.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The method, as in the request line (`POST`).
    pub method: &'a str,
    /// The path as sent, still percent-encoded, without the query (`/putMedia`).
    pub path: &'a [u8],
    /// The query string as sent, without the `?`; empty if none.
    pub query: &'a [u8],
    /// Every header as received: name (any case) and value bytes, in arrival order, repeated
    /// headers as separate entries.
    pub headers: &'a [(&'a [u8], &'a [u8])],
}

/// The payload, as far as the signature is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload<'a> {
    /// A streaming body (`/putMedia`): never hashed. Without `x-amz-content-sha256` the
    /// payload hash is the SHA-256 of the empty string.
    Streaming,
    /// The whole body (JSON calls).
    Body(&'a [u8]),
    /// The SHA-256 of the whole body, for a caller that hashed it while reading.
    BodySha256([u8; 32]),
}

/// What the payload hash in the verified signature was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadHash {
    /// The SHA-256 of the body the caller passed: the body is authenticated.
    Body,
    /// The SHA-256 of the empty string: a streaming request (or a presigned one), whose body
    /// the signature does not cover.
    EmptyString,
    /// `UNSIGNED-PAYLOAD`: the client chose not to sign the body.
    Unsigned,
    /// `x-amz-content-sha256` declared this hash of a streamed body; it was signed, but the
    /// body was not checked against it.
    Declared([u8; 32]),
}

/// An access key's secret. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(String);

impl SecretKey {
    /// Wraps a secret access key.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// A key found by a [`CredentialLookup`]: its secret and who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The secret the signature must have been made with.
    pub secret: SecretKey,
    /// Who signs with it, and what they may do.
    pub principal: Principal,
}

/// Finds the secret of an access key. [`crate::KeyStore`] is the server's; tests and other
/// callers can provide their own.
pub trait CredentialLookup {
    /// The key's credential, or why there is none.
    fn lookup(&self, access_key_id: &str) -> Result<Credential, UnrecognizedReason>;
}

/// An authenticated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Who signed it (the access key id is `principal.access_key_id`).
    pub principal: Principal,
    /// The credential scope's region (the server's).
    pub region: String,
    /// `X-Amz-Date`, ms since the epoch (whole seconds).
    pub signed_at_ms: u64,
    /// Presigned requests: when they stop being valid, ms since the epoch.
    pub expires_at_ms: Option<u64>,
    /// The signed header names, lower case, ascending.
    pub signed_headers: Vec<String>,
    /// What the signature says about the body.
    pub payload: PayloadHash,
}

impl Verified {
    /// The access key that signed the request.
    pub fn access_key_id(&self) -> &str {
        &self.principal.access_key_id
    }
}

/// The verifier: a configuration, and the two steps.
#[derive(Debug, Clone)]
pub struct Verifier {
    config: VerifierConfig,
}

/// A request whose signature is ready to be checked once the payload is known
/// ([`Pending::finish`]). Everything else about it has been verified.
pub struct Pending {
    /// The canonical request without its last line (the payload hash).
    canonical_prefix: Vec<u8>,
    amz_date: String,
    scope: String,
    signing_key: hmac::Key,
    signature: [u8; 32],
    declared: Option<Declared>,
    presigned: bool,
    verified: Verified,
}

impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending")
            .field("access_key_id", &self.verified.principal.access_key_id)
            .field("scope", &self.scope)
            .field("amz_date", &self.amz_date)
            .field("presigned", &self.presigned)
            .finish_non_exhaustive()
    }
}

/// A parsed `x-amz-content-sha256`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Declared {
    Unsigned,
    Sha256([u8; 32]),
}

/// The signature parameters, from either the header or the query.
struct SignatureParts<'a> {
    credential: &'a [u8],
    signed_headers: &'a [u8],
    signature: [u8; 32],
    amz_date: &'a [u8],
    /// Presigned: `X-Amz-Expires` in seconds.
    expires_s: Option<u64>,
    security_token: bool,
}

impl Verifier {
    /// A verifier with this configuration.
    pub fn new(config: VerifierConfig) -> Self {
        Self { config }
    }

    /// The configuration.
    pub fn config(&self) -> &VerifierConfig {
        &self.config
    }

    /// Verifies a request in one go (see [`Verifier::begin`] and [`Pending::finish`]).
    pub fn verify<K: CredentialLookup + ?Sized>(
        &self,
        request: &Request<'_>,
        payload: Payload<'_>,
        now_ms: u64,
        keys: &K,
    ) -> Result<Verified, AuthError> {
        self.begin(request, now_ms, keys)?.finish(payload)
    }

    /// Verifies everything about `request` but the signature over its payload: the form of
    /// the signature, its scope and time, the key. Reads nothing of the body.
    pub fn begin<K: CredentialLookup + ?Sized>(
        &self,
        request: &Request<'_>,
        now_ms: u64,
        keys: &K,
    ) -> Result<Pending, AuthError> {
        let limits = &self.config.limits;
        if request.path.len() > limits.max_path_len {
            return Err(too_long("path", limits.max_path_len, "bytes"));
        }
        if request.query.len() > limits.max_query_len {
            return Err(too_long("query string", limits.max_query_len, "bytes"));
        }
        let params = encode::parse_query(request.query, limits.max_query_params)
            .ok_or_else(|| too_long("query string", limits.max_query_params, "parameters"))?;
        let authorization = single_header(request.headers, "authorization", "Authorization")?
            .map(trim_ows)
            .filter(|v| !v.is_empty());
        let presigned = params.iter().any(|p| {
            matches!(
                p.name.as_slice(),
                b"X-Amz-Algorithm" | b"X-Amz-Credential" | b"X-Amz-Signature"
            )
        });

        let parts = match (authorization, presigned) {
            (None, false) => return Err(AuthError::MissingAuthenticationToken),
            (Some(_), true) => {
                return Err(AuthError::IncompleteSignature(Malformed::BothMechanisms));
            }
            (Some(value), false) => header_parts(value, request, limits)?,
            (None, true) => query_parts(&params)?,
        };

        let signed_headers = parse_signed_headers(parts.signed_headers, limits)?;
        let credential = parse_credential(parts.credential)?;
        let signed_at_ms = parse_amz_date(parts.amz_date).ok_or_else(|| {
            AuthError::IncompleteSignature(Malformed::BadDate(quote(parts.amz_date)))
        })?;
        // `parse_amz_date` accepted exactly 16 ASCII bytes.
        let amz_date = String::from_utf8_lossy(parts.amz_date).into_owned();
        self.check_scope(&credential, &amz_date)?;
        let expires_at_ms = self.check_time(signed_at_ms, parts.expires_s, now_ms)?;

        if parts.security_token {
            return Err(AuthError::UnrecognizedClient {
                access_key_id: credential.access_key_id.to_owned(),
                reason: UnrecognizedReason::SecurityToken,
            });
        }
        let found = keys.lookup(credential.access_key_id).map_err(|reason| {
            AuthError::UnrecognizedClient {
                access_key_id: credential.access_key_id.to_owned(),
                reason,
            }
        })?;

        let declared = declared_payload(request.headers)?;

        let mut canonical_prefix = Vec::with_capacity(512);
        canonical_prefix.extend_from_slice(request.method.as_bytes());
        canonical_prefix.push(b'\n');
        canonical_prefix.extend_from_slice(&canonical_uri(request.path));
        canonical_prefix.push(b'\n');
        canonical_prefix.extend_from_slice(&canonical_query(&params, |p| {
            presigned && p.name == b"X-Amz-Signature"
        }));
        canonical_prefix.push(b'\n');
        let headers_start = canonical_prefix.len();
        for name in &signed_headers {
            canonical_prefix.extend_from_slice(name.as_bytes());
            canonical_prefix.push(b':');
            if !canonical_header_value(&mut canonical_prefix, request.headers, name) {
                return Err(AuthError::SignedHeaderMissing {
                    name: (*name).to_owned(),
                });
            }
            canonical_prefix.push(b'\n');
            if canonical_prefix.len() - headers_start > limits.max_canonical_headers_len {
                return Err(too_long(
                    "signed headers",
                    limits.max_canonical_headers_len,
                    "bytes",
                ));
            }
        }
        canonical_prefix.push(b'\n');
        canonical_prefix.extend_from_slice(parts.signed_headers);
        canonical_prefix.push(b'\n');

        let signing_key = signing_key(
            found.secret.expose(),
            credential.date,
            credential.region,
            credential.service,
        );
        Ok(Pending {
            canonical_prefix,
            scope: credential.scope(),
            amz_date,
            signing_key,
            signature: parts.signature,
            declared,
            presigned: parts.expires_s.is_some(),
            verified: Verified {
                principal: found.principal,
                region: credential.region.to_owned(),
                signed_at_ms,
                expires_at_ms,
                signed_headers: signed_headers.iter().map(|&s| s.to_owned()).collect(),
                payload: PayloadHash::EmptyString,
            },
        })
    }

    fn check_scope(&self, c: &ParsedCredential<'_>, amz_date: &str) -> Result<(), AuthError> {
        let request_date = amz_date.get(..8).unwrap_or_default();
        if c.date != request_date {
            return Err(AuthError::CredentialScope(ScopeError::Date {
                scope_date: c.date.to_owned(),
                request_date: request_date.to_owned(),
                amz_date: amz_date.to_owned(),
            }));
        }
        if c.terminator != "aws4_request" {
            return Err(AuthError::CredentialScope(ScopeError::Terminator(
                c.terminator.to_owned(),
            )));
        }
        if c.service != self.config.service {
            return Err(AuthError::CredentialScope(ScopeError::Service {
                service: c.service.to_owned(),
                expected: self.config.service.clone(),
            }));
        }
        let well_formed = !c.region.is_empty()
            && c.region.len() <= 32
            && c.region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if c.region != self.config.region && !(self.config.any_region && well_formed) {
            return Err(AuthError::CredentialScope(ScopeError::Region {
                region: c.region.to_owned(),
                expected: self.config.region.clone(),
            }));
        }
        Ok(())
    }

    /// Checks the clock; returns when a presigned request expires.
    fn check_time(
        &self,
        signed_at_ms: u64,
        expires_s: Option<u64>,
        now_ms: u64,
    ) -> Result<Option<u64>, AuthError> {
        let max_skew_ms = self.config.max_skew_ms;
        if signed_at_ms > now_ms.saturating_add(max_skew_ms) {
            return Err(AuthError::SignatureNotYetCurrent {
                signed_at_ms,
                now_ms,
                max_skew_ms,
            });
        }
        match expires_s {
            None => {
                if signed_at_ms.saturating_add(max_skew_ms) < now_ms {
                    return Err(AuthError::SignatureExpired {
                        signed_at_ms,
                        now_ms,
                        max_skew_ms,
                    });
                }
                Ok(None)
            }
            Some(expires_s) => {
                let expires_at_ms = signed_at_ms.saturating_add(expires_s.saturating_mul(1_000));
                if now_ms > expires_at_ms {
                    return Err(AuthError::PresignedExpired {
                        expires_at_ms,
                        now_ms,
                    });
                }
                Ok(Some(expires_at_ms))
            }
        }
    }
}

impl Pending {
    /// Who signed the request (not yet proven: the signature is checked by `finish`).
    pub fn principal(&self) -> &Principal {
        &self.verified.principal
    }

    /// Checks the signature over the payload.
    pub fn finish(self, payload: Payload<'_>) -> Result<Verified, AuthError> {
        let body_sha256 = match payload {
            Payload::Streaming => None,
            Payload::Body(body) => Some(sha256(body)),
            Payload::BodySha256(hash) => Some(hash),
        };
        // At most two payload hashes to try, the first one being the one reported on failure.
        let mut candidates: Vec<(String, PayloadHash)> = Vec::with_capacity(2);
        match (self.declared, body_sha256) {
            (Some(Declared::Unsigned), _) => {
                candidates.push((UNSIGNED_PAYLOAD.to_owned(), PayloadHash::Unsigned));
            }
            (Some(Declared::Sha256(declared)), Some(body)) => {
                if declared != body {
                    return Err(AuthError::ContentSha256Mismatch);
                }
                candidates.push((hex(&declared), PayloadHash::Body));
            }
            (Some(Declared::Sha256(declared)), None) => {
                candidates.push((hex(&declared), PayloadHash::Declared(declared)));
            }
            (None, Some(body)) => {
                let body_hex = hex(&body);
                let empty = body_hex == EMPTY_SHA256_HEX;
                candidates.push((body_hex, PayloadHash::Body));
                if self.presigned && !empty {
                    candidates.push((EMPTY_SHA256_HEX.to_owned(), PayloadHash::EmptyString));
                }
            }
            (None, None) => {
                candidates.push((EMPTY_SHA256_HEX.to_owned(), PayloadHash::EmptyString));
            }
        }

        let mut first_failure = None;
        for (payload_hex, kind) in candidates {
            let mut canonical = self.canonical_prefix.clone();
            canonical.extend_from_slice(payload_hex.as_bytes());
            let string_to_sign = format!(
                "{ALGORITHM}\n{}\n{}\n{}",
                self.amz_date,
                self.scope,
                hex(&sha256(&canonical))
            );
            if hmac::verify(
                &self.signing_key,
                string_to_sign.as_bytes(),
                &self.signature,
            )
            .is_ok()
            {
                let mut verified = self.verified;
                verified.payload = kind;
                return Ok(verified);
            }
            first_failure.get_or_insert((canonical, string_to_sign));
        }
        let (canonical, string_to_sign) = first_failure.unwrap_or_default();
        Err(AuthError::SignatureMismatch {
            canonical_request: String::from_utf8_lossy(&canonical).into_owned(),
            string_to_sign,
        })
    }
}

fn too_long(what: &'static str, limit: usize, unit: &'static str) -> AuthError {
    AuthError::IncompleteSignature(Malformed::TooLong { what, limit, unit })
}

/// The value of a header that may appear at most once.
fn single_header<'a>(
    headers: &[(&[u8], &'a [u8])],
    lower_name: &str,
    display_name: &'static str,
) -> Result<Option<&'a [u8]>, AuthError> {
    let mut found = None;
    for (name, value) in headers {
        if name.eq_ignore_ascii_case(lower_name.as_bytes()) && found.replace(*value).is_some() {
            return Err(AuthError::IncompleteSignature(Malformed::DuplicateHeader(
                display_name,
            )));
        }
    }
    Ok(found)
}

/// Header form: the `Authorization` header and `X-Amz-Date`.
fn header_parts<'a>(
    authorization: &'a [u8],
    request: &Request<'a>,
    limits: &Limits,
) -> Result<SignatureParts<'a>, AuthError> {
    let header = parse_authorization(authorization, limits)?;
    let amz_date = single_header(request.headers, "x-amz-date", "X-Amz-Date")?
        .map(trim_ows)
        .ok_or(AuthError::IncompleteSignature(Malformed::MissingDate))?;
    let security_token = request
        .headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case(b"x-amz-security-token"));
    Ok(SignatureParts {
        credential: header.credential,
        signed_headers: header.signed_headers,
        signature: header.signature,
        amz_date,
        expires_s: None,
        security_token,
    })
}

/// Presigned form: the `X-Amz-*` query parameters.
fn query_parts(params: &[QueryParam]) -> Result<SignatureParts<'_>, AuthError> {
    let get = |name: &'static str| -> Result<Option<&[u8]>, AuthError> {
        let mut found = None;
        for p in params {
            if p.name == name.as_bytes() && found.replace(p.value.as_slice()).is_some() {
                return Err(AuthError::IncompleteSignature(
                    Malformed::DuplicateQueryParameter(name),
                ));
            }
        }
        Ok(found)
    };
    let required = |name: &'static str| -> Result<&[u8], AuthError> {
        get(name)?.ok_or(AuthError::IncompleteSignature(
            Malformed::MissingQueryParameter(name),
        ))
    };
    let algorithm = required("X-Amz-Algorithm")?;
    if algorithm != ALGORITHM.as_bytes() {
        return Err(AuthError::UnsupportedAlgorithm {
            algorithm: quote(algorithm),
        });
    }
    let credential = required("X-Amz-Credential")?;
    let amz_date = required("X-Amz-Date")?;
    let expires = required("X-Amz-Expires")?;
    let signed_headers = required("X-Amz-SignedHeaders")?;
    let signature = parse_signature(required("X-Amz-Signature")?)?;
    let security_token = get("X-Amz-Security-Token")?.is_some();
    let expires_s = parse_expires(expires)
        .ok_or_else(|| AuthError::IncompleteSignature(Malformed::BadExpires(quote(expires))))?;
    Ok(SignatureParts {
        credential,
        signed_headers,
        signature,
        amz_date,
        expires_s: Some(expires_s),
        security_token,
    })
}

/// `X-Amz-Expires`: decimal seconds, 1..=604800, at most 6 digits.
fn parse_expires(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 6 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = value
        .iter()
        .fold(0_u64, |acc, &b| acc * 10 + u64::from(b - b'0'));
    (1..=MAX_EXPIRES_S).contains(&n).then_some(n)
}

/// `x-amz-content-sha256`, if present.
fn declared_payload(headers: &[(&[u8], &[u8])]) -> Result<Option<Declared>, AuthError> {
    let Some(value) = single_header(headers, "x-amz-content-sha256", "x-amz-content-sha256")?
    else {
        return Ok(None);
    };
    let value = trim_ows(value);
    if value == UNSIGNED_PAYLOAD.as_bytes() {
        return Ok(Some(Declared::Unsigned));
    }
    unhex32(value)
        .map(|h| Some(Declared::Sha256(h)))
        .ok_or_else(|| AuthError::IncompleteSignature(Malformed::BadContentSha256(quote(value))))
}

/// Appends the canonical value of header `name` (lower case): every value of that name,
/// trimmed, inner runs of spaces collapsed, joined with `,`. False if there is none.
fn canonical_header_value(out: &mut Vec<u8>, headers: &[(&[u8], &[u8])], name: &str) -> bool {
    let mut any = false;
    for (n, value) in headers {
        if !n.eq_ignore_ascii_case(name.as_bytes()) {
            continue;
        }
        if any {
            out.push(b',');
        }
        any = true;
        let mut previous_space = false;
        for &b in trim_ows(value) {
            if b == b' ' {
                if previous_space {
                    continue;
                }
                previous_space = true;
            } else {
                previous_space = false;
            }
            out.push(b);
        }
    }
    any
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0_u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The SigV4 signing key: HMAC chain of secret, date, region, service and `aws4_request`.
pub(crate) fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> hmac::Key {
    let mut k_secret = Vec::with_capacity(4 + secret.len());
    k_secret.extend_from_slice(b"AWS4");
    k_secret.extend_from_slice(secret.as_bytes());
    let mut key = hmac::Key::new(hmac::HMAC_SHA256, &k_secret);
    for part in [date, region, service, "aws4_request"] {
        let tag = hmac::sign(&key, part.as_bytes());
        key = hmac::Key::new(hmac::HMAC_SHA256, tag.as_ref());
    }
    key
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn expires_values() {
        assert_eq!(parse_expires(b"1"), Some(1));
        assert_eq!(parse_expires(b"604800"), Some(604_800));
        assert_eq!(parse_expires(b"000300"), Some(300));
        for bad in [
            &b""[..],
            b"0",
            b"604801",
            b"-1",
            b"+5",
            b"1.5",
            b"9999999",
            b" 5",
        ] {
            assert_eq!(parse_expires(bad), None);
        }
    }

    #[test]
    fn header_values_are_trimmed_and_collapsed() {
        let headers: &[(&[u8], &[u8])] = &[
            (b"X-Foo", b"  a   b \t c  "),
            (b"x-bar", b"1"),
            (b"x-foo", b"\tsecond"),
        ];
        let mut out = Vec::new();
        assert!(canonical_header_value(&mut out, headers, "x-foo"));
        assert_eq!(out, b"a b \t c,second");
        assert!(!canonical_header_value(&mut Vec::new(), headers, "x-baz"));
    }

    #[test]
    fn the_aws_documentation_signing_key() {
        // "Examples of how to derive a signing key for Signature Version 4" (AWS General
        // Reference): iam, us-east-1, 20120215.
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20120215",
            "us-east-1",
            "iam",
        );
        // The documented kSigning is f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d;
        // a key cannot be printed, so compare what it signs with an HMAC under the raw bytes.
        let raw =
            unhex32(b"f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d").unwrap();
        let expected = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &raw), b"x");
        assert_eq!(hmac::sign(&key, b"x").as_ref(), expected.as_ref());
    }
}
