//! The seam between the API and authentication: the server asks an [`Authenticator`] who sent
//! a request and whether they may do what it asks. `vigil serve` plugs in SigV4 verification
//! against its key store (`vigil-auth`); [`Anonymous`] lets everything through, for local
//! development only (the server logs a warning when it runs so).

use std::sync::Arc;

use axum::http::request::Parts;
use vigil_store::Clock;

use crate::error::{ApiError, ApiResult};
use crate::ops::Operation;

/// Who sent a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The access key id (`anonymous` without authentication).
    pub access_key_id: String,
    /// What the key may do (`None`: everything).
    pub policy: Option<vigil_auth::Principal>,
}

/// What the signature covers of the body.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// A JSON body, read whole: its bytes.
    Body(&'a [u8]),
    /// A streamed body (PutMedia), not hashed: the signature uses the hash the client sent in
    /// `x-amz-content-sha256`, or that of the empty string.
    Streaming,
}

/// Authentication and authorisation of requests.
pub trait Authenticator: Send + Sync + std::fmt::Debug + 'static {
    /// Verifies the request's signature (header or presigned-query form).
    fn authenticate(&self, parts: &Parts, payload: Payload<'_>) -> ApiResult<Principal>;

    /// Whether `principal` may call `op` (on the stream named `stream`, when the operation
    /// concerns one). Fails with `NotAuthorizedException` (or `AccessDeniedException` for the
    /// generic tagging operations).
    fn authorize(
        &self,
        principal: &Principal,
        op: Operation,
        stream: Option<&str>,
    ) -> ApiResult<()>;
}

/// No authentication: every request is allowed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Anonymous;

impl Authenticator for Anonymous {
    fn authenticate(&self, _: &Parts, _: Payload<'_>) -> ApiResult<Principal> {
        Ok(Principal {
            access_key_id: "anonymous".into(),
            policy: None,
        })
    }

    fn authorize(&self, _: &Principal, _: Operation, _: Option<&str>) -> ApiResult<()> {
        Ok(())
    }
}

/// SigV4 against the key store: the server's authentication.
///
/// The request is verified as it arrived: the path and query as sent, every header with its
/// bytes (hyper keeps names lower-cased, which SigV4 canonicalises to anyway, and repeated
/// headers in order). JSON calls are verified with the SHA-256 of their body; PutMedia with
/// the client's declared hash or that of the empty string (`vigil_auth::sigv4`). The key's
/// policy is looked up at each request, so a revoked key fails from the next request on.
#[derive(Debug)]
pub struct SigV4 {
    verifier: vigil_auth::Verifier,
    keys: vigil_auth::KeyStore,
    clock: Arc<dyn Clock>,
}

impl SigV4 {
    /// Verifies signatures scoped to `region` against `keys`, dated by `clock`.
    pub fn new(region: &str, keys: vigil_auth::KeyStore, clock: Arc<dyn Clock>) -> Self {
        Self {
            verifier: vigil_auth::Verifier::new(vigil_auth::VerifierConfig::new(region)),
            keys,
            clock,
        }
    }
}

/// The API error for an authentication failure: the variant of the same AWS name.
pub fn auth_error(e: &vigil_auth::AuthError) -> ApiError {
    let msg = e.message();
    match e.aws_code() {
        "MissingAuthenticationTokenException" => ApiError::MissingAuthenticationTokenException(msg),
        "IncompleteSignatureException" => ApiError::IncompleteSignatureException(msg),
        "UnrecognizedClientException" => ApiError::UnrecognizedClientException(msg),
        _ => ApiError::InvalidSignatureException(msg),
    }
}

impl Authenticator for SigV4 {
    fn authenticate(&self, parts: &Parts, payload: Payload<'_>) -> ApiResult<Principal> {
        let headers: Vec<(&[u8], &[u8])> = parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().as_bytes(), v.as_bytes()))
            .collect();
        let request = vigil_auth::Request {
            method: parts.method.as_str(),
            path: parts.uri.path().as_bytes(),
            query: parts.uri.query().unwrap_or("").as_bytes(),
            headers: &headers,
        };
        let verified = self
            .verifier
            .begin(&request, self.clock.now_ms(), &self.keys)
            .and_then(|pending| {
                pending.finish(match payload {
                    Payload::Body(b) => vigil_auth::Payload::Body(b),
                    Payload::Streaming => vigil_auth::Payload::Streaming,
                })
            })
            .map_err(|e| auth_error(&e))?;
        Ok(Principal {
            access_key_id: verified.principal.access_key_id.clone(),
            policy: Some(verified.principal),
        })
    }

    fn authorize(
        &self,
        principal: &Principal,
        op: Operation,
        stream: Option<&str>,
    ) -> ApiResult<()> {
        match &principal.policy {
            None => Ok(()),
            Some(p) => p
                .authorize(op.name(), stream)
                .map_err(|denied| ApiError::NotAuthorizedException(denied.to_string())),
        }
    }
}
