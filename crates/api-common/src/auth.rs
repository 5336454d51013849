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
//!
//! # Failures, counted
//!
//! Every request [`SigV4`] refuses adds one to `vigil_sigv4_failures_total{key,reason}`
//! ([`crate::metrics`]): `reason` is why ([`failure_reason`], a fixed set of names), `key` the
//! access key id the request claims, but only if the key store holds that key (revoked keys
//! included); any other id, or none, is `unknown`. Anyone can send made-up key ids, and a
//! label per id would let them grow the metrics without bound; the keys the store holds are
//! the administrator's. A request is counted once: [`Authenticator::precheck`] and
//! [`Authenticator::authenticate`] count their own failures, and a request that fails the
//! first never reaches the second.

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
    /// SNS topics (`sns`).
    Sns,
}

impl Service {
    /// The signing name in the credential scope.
    pub fn signing_name(self) -> &'static str {
        match self {
            Self::KinesisVideo => vigil_auth::sigv4::SERVICE,
            Self::Rekognition => "rekognition",
            Self::Kinesis => "kinesis",
            Self::Sns => "sns",
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
    sns: vigil_auth::Verifier,
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
            sns: verifier(Service::Sns),
            keys,
            clock,
        }
    }

    fn verifier(&self, service: Service) -> &vigil_auth::Verifier {
        match service {
            Service::KinesisVideo => &self.kinesis_video,
            Service::Rekognition => &self.rekognition,
            Service::Kinesis => &self.kinesis,
            Service::Sns => &self.sns,
        }
    }

    /// Counts a refused request (module docs: failures, counted). `named`: the key id the
    /// error names, if it names one.
    fn count_failure(&self, parts: &Parts, reason: &'static str, named: Option<&str>) {
        use vigil_auth::CredentialLookup as _;
        let claimed = named.map(str::to_owned).or_else(|| claimed_key_id(parts));
        let known = claimed.filter(|id| {
            matches!(
                self.keys.lookup(id),
                Ok(_) | Err(vigil_auth::UnrecognizedReason::Revoked)
            )
        });
        crate::metrics::global()
            .sigv4_failures
            .inc(&[known.as_deref().unwrap_or(UNKNOWN_KEY), reason]);
    }

    /// [`auth_error`], counted.
    fn refuse(&self, parts: &Parts, e: &vigil_auth::AuthError) -> CommonError {
        let named = match e {
            vigil_auth::AuthError::UnrecognizedClient { access_key_id, .. } => {
                Some(access_key_id.as_str())
            }
            _ => None,
        };
        self.count_failure(parts, failure_reason(e), named);
        auth_error(e)
    }
}

/// `key` of `vigil_sigv4_failures_total` for an access key id the key store does not hold (or
/// a request without one).
pub const UNKNOWN_KEY: &str = "unknown";

/// `reason` of `vigil_sigv4_failures_total` for a JSON call signed with `UNSIGNED-PAYLOAD`.
pub const UNSIGNED_PAYLOAD: &str = "unsigned_payload";

/// `reason` of `vigil_sigv4_failures_total`: one name per kind of [`vigil_auth::AuthError`].
pub fn failure_reason(e: &vigil_auth::AuthError) -> &'static str {
    use vigil_auth::{AuthError, UnrecognizedReason};
    match e {
        AuthError::MissingAuthenticationToken => "missing",
        AuthError::IncompleteSignature(_) => "malformed",
        AuthError::UnsupportedAlgorithm { .. } => "algorithm",
        AuthError::CredentialScope(_) => "scope",
        AuthError::SignatureExpired { .. } | AuthError::PresignedExpired { .. } => "expired",
        AuthError::SignatureNotYetCurrent { .. } => "not_yet_current",
        AuthError::UnrecognizedClient { reason, .. } => match reason {
            UnrecognizedReason::UnknownKey => "unknown_key",
            UnrecognizedReason::Revoked => "revoked",
            UnrecognizedReason::SecurityToken => "security_token",
            _ => "other",
        },
        AuthError::SignedHeaderMissing { .. } => "signed_header_missing",
        AuthError::ContentSha256Mismatch => "content_sha256",
        AuthError::SignatureMismatch { .. } => "signature",
        _ => "other",
    }
}

/// The access key id a request claims (the first element of its `Credential`, in the
/// `Authorization` header or the presigned `X-Amz-Credential`), whatever else is wrong with
/// it: only for the failure metric, so only a plausible id (1 to 128 ASCII letters and
/// digits), else `None`.
fn claimed_key_id(parts: &Parts) -> Option<String> {
    const MAX: usize = 128;
    let plausible = |id: &[u8]| {
        (!id.is_empty() && id.len() <= MAX && id.iter().all(u8::is_ascii_alphanumeric))
            .then(|| String::from_utf8_lossy(id).into_owned())
    };
    if let Some(v) = parts.headers.get(axum::http::header::AUTHORIZATION) {
        let v = v.as_bytes();
        const KEY: &[u8] = b"Credential=";
        let at = v.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
        let rest = v.get(at..)?;
        let end = rest
            .iter()
            .position(|b| matches!(b, b'/' | b',' | b' '))
            .unwrap_or(rest.len());
        return plausible(rest.get(..end)?);
    }
    let query = parts.uri.query()?;
    let value = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("X-Amz-Credential="))?;
    // The scope's slashes are sent as `/` or `%2F`.
    let end = value
        .char_indices()
        .find(|&(i, c)| {
            c == '/'
                || (c == '%'
                    && value
                        .get(i..i + 3)
                        .is_some_and(|e| e.eq_ignore_ascii_case("%2F")))
        })
        .map_or(value.len(), |(i, _)| i);
    plausible(value.get(..end)?.as_bytes())
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
        .map_err(|e| self.refuse(parts, &e))
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
        .map_err(|e| self.refuse(parts, &e))?;
        if matches!(payload, Payload::Body(_))
            && verified.payload == vigil_auth::PayloadHash::Unsigned
        {
            self.count_failure(
                parts,
                UNSIGNED_PAYLOAD,
                Some(&verified.principal.access_key_id),
            );
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
    use crate::error::AwsError as _;

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

    /// A JSON call to `/describeStream` signed by `id` with `secret` at `now_ms`.
    fn signed(id: &str, secret: &vigil_auth::SecretKey, now_ms: u64, query: &str) -> Parts {
        use vigil_auth::sign::{SigningCredentials, SigningScope, UnsignedRequest, sign};
        let body = b"{}";
        let hash = vigil_auth::sign::payload_sha256_hex(body);
        let headers = [("host", "vigil.test"), ("content-type", "application/json")];
        let added = sign(
            &SigningCredentials {
                access_key_id: id.into(),
                secret: secret.clone(),
                session_token: None,
            },
            &SigningScope {
                region: "us-east-1".into(),
                service: "kinesisvideo".into(),
            },
            &UnsignedRequest {
                method: "POST",
                path: "/describeStream",
                query,
                headers: &headers,
                payload_sha256_hex: &hash,
            },
            now_ms,
        );
        let uri = if query.is_empty() {
            "/describeStream".to_owned()
        } else {
            format!("/describeStream?{query}")
        };
        let mut req = axum::http::Request::builder().method("POST").uri(uri);
        for (k, v) in headers
            .iter()
            .map(|(k, v)| (*k, *v))
            .chain(added.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        {
            req = req.header(k, v);
        }
        req.body(()).unwrap().into_parts().0
    }

    #[test]
    fn failures_are_counted_per_known_key_and_reason() {
        let dir = tempfile::tempdir().unwrap();
        let (keys, _) = KeyStore::open(dir.path(), None).unwrap();
        let now_ms = 1_750_000_000_000;
        let clock = Arc::new(vigil_store::ManualClock::new(now_ms));
        let auth = SigV4::new("us-east-1", keys.clone(), clock);
        let good = keys.create_key(new_key("good")).unwrap();
        let revoked = keys.create_key(new_key("gone")).unwrap();
        keys.revoke_key(&revoked.info.access_key_id).unwrap();
        let id = good.info.access_key_id.as_str();
        let failures = &crate::metrics::global().sigv4_failures;
        let count = |key: &str, reason: &str| failures.get(&[key, reason]);
        let unknown_before = count(UNKNOWN_KEY, "unknown_key");
        let json = Payload::Body(b"{}");

        // Signed right: nothing counted.
        let ok = signed(id, &good.secret, now_ms, "");
        auth.precheck(&ok, Service::KinesisVideo).unwrap();
        auth.authenticate(&ok, json, Service::KinesisVideo).unwrap();
        // A wrong secret: the key is the store's, so it is named.
        let wrong = vigil_auth::SecretKey::new("not-the-secret");
        let bad = signed(id, &wrong, now_ms, "");
        auth.precheck(&bad, Service::KinesisVideo).unwrap();
        let e = auth
            .authenticate(&bad, json, Service::KinesisVideo)
            .unwrap_err();
        assert_eq!(e.aws_code(), "InvalidSignatureException");
        assert_eq!(count(id, "signature"), 1);
        // Too old: refused by the precheck, counted there once.
        let old = signed(id, &good.secret, now_ms - 3_600_000, "");
        assert!(auth.precheck(&old, Service::KinesisVideo).is_err());
        assert_eq!(count(id, "expired"), 1);
        // A revoked key is still the store's.
        let gone = signed(&revoked.info.access_key_id, &revoked.secret, now_ms, "");
        assert!(
            auth.authenticate(&gone, json, Service::KinesisVideo)
                .is_err()
        );
        assert_eq!(count(&revoked.info.access_key_id, "revoked"), 1);
        // Made-up ids are never labels: they all count as `unknown`.
        for i in 0..5 {
            let made_up = format!("AKIDMADEUP{i:010}");
            let r = signed(&made_up, &wrong, now_ms, "");
            assert!(auth.authenticate(&r, json, Service::KinesisVideo).is_err());
            assert_eq!(count(&made_up, "unknown_key"), 0);
        }
        assert!(count(UNKNOWN_KEY, "unknown_key") >= unknown_before + 5);
        let text = crate::metrics::global().render_prometheus();
        assert!(!text.contains("AKIDMADEUP"), "{text}");
        assert!(text.contains(&format!(
            "vigil_sigv4_failures_total{{key=\"{id}\",reason=\"signature\"}} 1\n"
        )));

        // The presigned form names its key in the query: a malformed signature there.
        let query = format!(
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={id}%2F20250615%2Fus-east-1%2F\
             kinesisvideo%2Faws4_request&X-Amz-Date=20250615T150640Z&X-Amz-Expires=300&\
             X-Amz-SignedHeaders=host&X-Amz-Signature=nothex"
        );
        let parts = axum::http::Request::builder()
            .method("POST")
            .uri(format!("/describeStream?{query}"))
            .header("host", "vigil.test")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        assert!(auth.precheck(&parts, Service::KinesisVideo).is_err());
        assert_eq!(count(id, "malformed"), 1);
        // No signature at all.
        let parts = axum::http::Request::builder()
            .uri("/describeStream")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let before = count(UNKNOWN_KEY, "missing");
        assert!(auth.precheck(&parts, Service::KinesisVideo).is_err());
        assert!(count(UNKNOWN_KEY, "missing") > before);
    }

    #[test]
    fn the_claimed_key_id_is_read_from_either_form() {
        let parts = |uri: &str, auth: Option<&str>| {
            let mut b = axum::http::Request::builder().uri(uri);
            if let Some(a) = auth {
                b = b.header("authorization", a);
            }
            b.body(()).unwrap().into_parts().0
        };
        let header = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250615/us-east-1/kinesisvideo/\
                      aws4_request, SignedHeaders=host, Signature=00";
        assert_eq!(
            claimed_key_id(&parts("/", Some(header))).as_deref(),
            Some("AKIDEXAMPLE")
        );
        assert_eq!(
            claimed_key_id(&parts("/?X-Amz-Credential=AKID2%2f2025", None)).as_deref(),
            Some("AKID2")
        );
        assert_eq!(
            claimed_key_id(&parts("/?a=b&X-Amz-Credential=AKID3/2025", None)).as_deref(),
            Some("AKID3")
        );
        // Anything but a plausible id is no id.
        for bad in [
            "AWS4-HMAC-SHA256 Credential=/2025",
            "AWS4-HMAC-SHA256 Credential=AK%22ID/2025",
            "AWS4-HMAC-SHA256 Signature=00",
        ] {
            assert_eq!(claimed_key_id(&parts("/", Some(bad))), None, "{bad}");
        }
        let long = format!("AWS4-HMAC-SHA256 Credential={}/2025", "A".repeat(129));
        assert_eq!(claimed_key_id(&parts("/", Some(&long))), None);
        assert_eq!(claimed_key_id(&parts("/", None)), None);
    }
}
