//! The seam between the API and authentication: the server asks an [`Authenticator`] who sent
//! a request and whether they may do what it asks. `vigil serve` plugs in SigV4 verification
//! against its key store (`vigil-auth`); [`Anonymous`] lets everything through, for local
//! development only (the server logs a warning when it runs so).
//!
//! # Long-lived requests
//!
//! A PutMedia session or a GetMedia response can last for hours on the strength of one
//! signature. [`Authenticator::is_current`] says whether the principal that signed it is still
//! valid (for SigV4: its key was not revoked or deleted since); the PutMedia driver and the
//! GetMedia body ask it every [`RECHECK_INTERVAL`] (PutMedia:
//! `PutMediaConfig::auth_recheck_interval`) and end the request once it says no.

use std::sync::Arc;
use std::time::Duration;

use axum::http::request::Parts;
use vigil_store::Clock;

use crate::error::{CommonError, CommonResult};

/// How often long-lived requests (GetMedia bodies; PutMedia by default) re-check that their
/// principal is still valid ([`Authenticator::is_current`]).
pub const RECHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Who sent a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The access key id (`anonymous` without authentication).
    pub access_key_id: String,
    /// What the key may do (`None`: everything).
    pub policy: Option<vigil_auth::Principal>,
}

/// The service a request is signed for: the SigV4 credential scope's service name, which
/// depends on the API it calls (the front knows which before authenticating).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// Every Kinesis Video Streams API (`kinesisvideo`), and Vigil's own operations.
    KinesisVideo,
    /// The Rekognition API (`rekognition`).
    Rekognition,
    /// Kinesis Data Streams (`kinesis`).
    Kinesis,
}

impl Service {
    /// The signing name in the credential scope.
    pub fn signing_name(self) -> &'static str {
        match self {
            Self::KinesisVideo => vigil_auth::sigv4::SERVICE,
            Self::Rekognition => "rekognition",
            Self::Kinesis => "kinesis",
        }
    }
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
    /// Checks everything about the request's signature that does not need the body (form,
    /// date, scope, key): called before a JSON body is read, so that an unauthenticated client
    /// cannot make the server read and hold bodies. `authenticate` checks it all again.
    fn precheck(&self, parts: &Parts, service: Service) -> CommonResult<()>;

    /// Verifies the request's signature (header or presigned-query form), scoped to `service`.
    fn authenticate(
        &self,
        parts: &Parts,
        payload: Payload<'_>,
        service: Service,
    ) -> CommonResult<Principal>;

    /// Whether `principal` may perform `action`: a KVS operation's name (`PutMedia`), or a
    /// prefixed action of another service (`rekognition:IndexFaces`, `kinesis:PutRecord`:
    /// `vigil_auth::policy`), on the resource `stream` if it concerns one (a stream's name,
    /// the resource key policies match). Fails with [`CommonError::NotAuthorizedException`],
    /// which each service renames as its model says.
    fn authorize_action(
        &self,
        principal: &Principal,
        action: &str,
        stream: Option<&str>,
    ) -> CommonResult<()>;

    /// Whether `principal` (as [`Authenticator::authenticate`] returned it) is still valid:
    /// false once its key was revoked or deleted. Called about once a second by every open
    /// PutMedia session and GetMedia response, so it must be cheap (no hashing, no network)
    /// and must not block for long.
    fn is_current(&self, principal: &Principal) -> bool;

    /// Whether requests must be signed (false only for [`Anonymous`]): the web console asks
    /// for keys only when they are needed.
    fn requires_signature(&self) -> bool {
        true
    }
}

/// No authentication: every request is allowed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Anonymous;

impl Authenticator for Anonymous {
    fn precheck(&self, _: &Parts, _: Service) -> CommonResult<()> {
        Ok(())
    }

    fn authenticate(&self, _: &Parts, _: Payload<'_>, _: Service) -> CommonResult<Principal> {
        Ok(Principal {
            access_key_id: "anonymous".into(),
            policy: None,
        })
    }

    fn authorize_action(&self, _: &Principal, _: &str, _: Option<&str>) -> CommonResult<()> {
        Ok(())
    }

    fn is_current(&self, _: &Principal) -> bool {
        true
    }

    fn requires_signature(&self) -> bool {
        false
    }
}

/// SigV4 against the key store: the server's authentication.
///
/// The request is verified as it arrived: the path and query as sent, every header with its
/// bytes (hyper keeps names lower-cased, which SigV4 canonicalises to anyway, and repeated
/// headers in order). JSON calls are verified with the SHA-256 of their body; PutMedia with
/// the client's declared hash or that of the empty string (`vigil_auth::sigv4`). The key's
/// policy is looked up at each request, so a revoked key fails from the next request on, and
/// [`Authenticator::is_current`] looks the key up again (a `stat` of the key file, about
/// 0.4 µs), so open PutMedia and GetMedia requests signed with it end within a second or so.
#[derive(Debug)]
pub struct SigV4 {
    kinesis_video: vigil_auth::Verifier,
    rekognition: vigil_auth::Verifier,
    kinesis: vigil_auth::Verifier,
    keys: vigil_auth::KeyStore,
    clock: Arc<dyn Clock>,
}

impl SigV4 {
    /// Verifies signatures scoped to `region` against `keys`, dated by `clock`.
    pub fn new(region: &str, keys: vigil_auth::KeyStore, clock: Arc<dyn Clock>) -> Self {
        Self::with_regions(region, false, keys, clock)
    }

    /// [`Self::new`], accepting signatures scoped to any region when `any_region`
    /// ([`vigil_auth::VerifierConfig::any_region`]).
    pub fn with_regions(
        region: &str,
        any_region: bool,
        keys: vigil_auth::KeyStore,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let verifier = |service: Service| {
            let mut cfg = vigil_auth::VerifierConfig::new(region);
            cfg.any_region = any_region;
            cfg.service = service.signing_name().to_owned();
            vigil_auth::Verifier::new(cfg)
        };
        Self {
            kinesis_video: verifier(Service::KinesisVideo),
            rekognition: verifier(Service::Rekognition),
            kinesis: verifier(Service::Kinesis),
            keys,
            clock,
        }
    }

    fn verifier(&self, service: Service) -> &vigil_auth::Verifier {
        match service {
            Service::KinesisVideo => &self.kinesis_video,
            Service::Rekognition => &self.rekognition,
            Service::Kinesis => &self.kinesis,
        }
    }
}

/// The API error for an authentication failure: the variant of the same AWS name.
pub fn auth_error(e: &vigil_auth::AuthError) -> CommonError {
    let msg = e.message();
    match e.aws_code() {
        "MissingAuthenticationTokenException" => {
            CommonError::MissingAuthenticationTokenException(msg)
        }
        "IncompleteSignatureException" => CommonError::IncompleteSignatureException(msg),
        "UnrecognizedClientException" => CommonError::UnrecognizedClientException(msg),
        _ => CommonError::InvalidSignatureException(msg),
    }
}

/// The request as `vigil_auth` takes it: every header with its bytes, as received.
fn with_request<T>(parts: &Parts, f: impl FnOnce(&vigil_auth::Request<'_>) -> T) -> T {
    let headers: Vec<(&[u8], &[u8])> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().as_bytes(), v.as_bytes()))
        .collect();
    f(&vigil_auth::Request {
        method: parts.method.as_str(),
        path: parts.uri.path().as_bytes(),
        query: parts.uri.query().unwrap_or("").as_bytes(),
        headers: &headers,
    })
}

impl Authenticator for SigV4 {
    fn precheck(&self, parts: &Parts, service: Service) -> CommonResult<()> {
        let verifier = self.verifier(service);
        with_request(parts, |r| {
            verifier.begin(r, self.clock.now_ms(), &self.keys).map(drop)
        })
        .map_err(|e| auth_error(&e))
    }

    fn authenticate(
        &self,
        parts: &Parts,
        payload: Payload<'_>,
        service: Service,
    ) -> CommonResult<Principal> {
        let verifier = self.verifier(service);
        let verified = with_request(parts, |request| {
            verifier
                .begin(request, self.clock.now_ms(), &self.keys)
                .and_then(|pending| {
                    pending.finish(match payload {
                        Payload::Body(b) => vigil_auth::Payload::Body(b),
                        Payload::Streaming => vigil_auth::Payload::Streaming,
                    })
                })
        })
        .map_err(|e| auth_error(&e))?;
        if matches!(payload, Payload::Body(_))
            && verified.payload == vigil_auth::PayloadHash::Unsigned
        {
            // The signature would not cover the body: a captured request could be replayed
            // against another stream within the clock-skew window.
            return Err(CommonError::InvalidSignatureException(
                "UNSIGNED-PAYLOAD is accepted only on PutMedia; sign the JSON body's SHA-256."
                    .into(),
            ));
        }
        Ok(Principal {
            access_key_id: verified.principal.access_key_id.clone(),
            policy: Some(verified.principal),
        })
    }

    fn authorize_action(
        &self,
        principal: &Principal,
        action: &str,
        stream: Option<&str>,
    ) -> CommonResult<()> {
        match &principal.policy {
            None => Ok(()),
            Some(p) => p
                .authorize(action, stream)
                .map_err(|denied| CommonError::NotAuthorizedException(denied.to_string())),
        }
    }

    fn is_current(&self, principal: &Principal) -> bool {
        use vigil_auth::CredentialLookup as _;
        self.keys.lookup(&principal.access_key_id).is_ok()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use vigil_auth::{KeyStore, NewKey, Policy, RootStatus};

    use super::*;

    fn principal(access_key_id: &str) -> Principal {
        Principal {
            access_key_id: access_key_id.into(),
            policy: None,
        }
    }

    fn new_key(name: &str) -> NewKey {
        NewKey {
            name: name.into(),
            description: String::new(),
            policy: Policy::allow_all(),
        }
    }

    #[test]
    fn a_revoked_or_deleted_key_is_no_longer_current() {
        let dir = tempfile::tempdir().unwrap();
        let (keys, root) = KeyStore::open(dir.path(), None).unwrap();
        let RootStatus::Generated {
            access_key_id: root_id,
            ..
        } = root
        else {
            panic!("a new key store generates its root: {root:?}");
        };
        let auth = SigV4::new(
            "us-east-1",
            keys.clone(),
            Arc::new(vigil_store::SystemClock),
        );
        let revoked = keys
            .create_key(new_key("revoked"))
            .unwrap()
            .info
            .access_key_id;
        let deleted = keys
            .create_key(new_key("deleted"))
            .unwrap()
            .info
            .access_key_id;
        let kept = keys.create_key(new_key("kept")).unwrap().info.access_key_id;
        for id in [&root_id, &revoked, &deleted, &kept] {
            assert!(auth.is_current(&principal(id)), "{id}");
        }
        // Changed from another process (`vigil keys revoke`), as a second store on the file.
        let (other, _) = KeyStore::open(dir.path(), None).unwrap();
        other.revoke_key(&revoked).unwrap();
        other.delete_key(&deleted).unwrap();
        assert!(!auth.is_current(&principal(&revoked)));
        assert!(!auth.is_current(&principal(&deleted)));
        assert!(auth.is_current(&principal(&kept)));
        assert!(auth.is_current(&principal(&root_id)));
        assert!(!auth.is_current(&principal("AKIDNEVERISSUED")));
        assert!(Anonymous.is_current(&principal("anonymous")));
    }
}
