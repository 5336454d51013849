//! SigV4 signing for Vigil's own client (`vigil put`, `vigil get`, `vigil stream ...`), sans-IO.
//!
//! The client needs what the official producers do and nothing more: sign a request's method,
//! path, query and the headers it chooses, with the payload hash it declares (the SHA-256 of a
//! JSON body, or of the empty string for a streaming `/putMedia` body, as the C producer does).
//! The canonical request is built with the same functions the [verifier](crate::sigv4) uses, so
//! a request signed here verifies there by construction; the tests also check the signatures
//! against `aws-sigv4`, the official Rust signer, so that a request signed here is accepted by
//! AWS itself.
//!
//! Signing writes three headers: `x-amz-date`, `x-amz-security-token` when the credentials are
//! temporary (AWS STS; Vigil refuses them, KVS needs them), and `authorization`. Every header
//! the caller passes is signed, so the caller passes exactly what it sends (`host` included).

use std::fmt;

use ring::digest;
use ring::hmac;

use crate::encode::{canonical_query, canonical_uri, hex, parse_query};
use crate::sigv4::{ALGORITHM, SecretKey, signing_key};
use crate::time::format_amz_date;

/// Credentials to sign with.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningCredentials {
    /// The access key id (`AKIA...`).
    pub access_key_id: String,
    /// Its secret.
    pub secret: SecretKey,
    /// A session token, for temporary credentials.
    pub session_token: Option<String>,
}

impl fmt::Debug for SigningCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret", &self.secret)
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// What a request is signed for: region and service (`kinesisvideo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningScope {
    /// The region (`us-east-1`).
    pub region: String,
    /// The signing name of the service.
    pub service: String,
}

/// A request to sign.
#[derive(Debug, Clone, Copy)]
pub struct UnsignedRequest<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The path as it will be sent (percent-encoded where needed).
    pub path: &'a str,
    /// The query as it will be sent, without `?`.
    pub query: &'a str,
    /// The headers that will be sent, every one of them signed; `host` must be among them.
    pub headers: &'a [(&'a str, &'a str)],
    /// The hex SHA-256 of the payload ([`payload_sha256_hex`]), or the empty-string hash for a
    /// streaming body.
    pub payload_sha256_hex: &'a str,
}

/// The hex SHA-256 of a body.
pub fn payload_sha256_hex(body: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, body).as_ref())
}

/// Signs `request` at `now_ms` (ms since the epoch). Returns the headers to add, lower-case
/// names: `x-amz-date`, then `x-amz-security-token` if any, then `authorization`.
pub fn sign(
    credentials: &SigningCredentials,
    scope: &SigningScope,
    request: &UnsignedRequest<'_>,
    now_ms: u64,
) -> Vec<(String, String)> {
    let amz_date = format_amz_date(now_ms);
    let date = amz_date.get(..8).unwrap_or_default().to_owned();
    let mut extra: Vec<(String, String)> = vec![("x-amz-date".to_owned(), amz_date.clone())];
    if let Some(token) = &credentials.session_token {
        extra.push(("x-amz-security-token".to_owned(), token.clone()));
    }

    // Headers: lower-case names, values trimmed with inner runs of spaces collapsed, repeated
    // names joined with `,` in order; sorted by name.
    let mut headers: Vec<(String, String)> = Vec::with_capacity(request.headers.len() + 2);
    for (name, value) in request
        .headers
        .iter()
        .map(|(n, v)| (*n, *v))
        .chain(extra.iter().map(|(n, v)| (n.as_str(), v.as_str())))
    {
        let name = name.to_ascii_lowercase();
        let value = canonical_value(value);
        match headers.iter_mut().find(|(n, _)| *n == name) {
            Some((_, existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            None => headers.push((name, value)),
        }
    }
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let signed_headers = headers
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");

    let params = parse_query(request.query.as_bytes(), usize::MAX).unwrap_or_default();
    let mut canonical = Vec::with_capacity(512);
    canonical.extend_from_slice(request.method.as_bytes());
    canonical.push(b'\n');
    canonical.extend_from_slice(&canonical_uri(request.path.as_bytes()));
    canonical.push(b'\n');
    canonical.extend_from_slice(&canonical_query(&params, |_| false));
    canonical.push(b'\n');
    for (name, value) in &headers {
        canonical.extend_from_slice(name.as_bytes());
        canonical.push(b':');
        canonical.extend_from_slice(value.as_bytes());
        canonical.push(b'\n');
    }
    canonical.push(b'\n');
    canonical.extend_from_slice(signed_headers.as_bytes());
    canonical.push(b'\n');
    canonical.extend_from_slice(request.payload_sha256_hex.as_bytes());

    let credential_scope = format!("{date}/{}/{}/aws4_request", scope.region, scope.service);
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{credential_scope}\n{}",
        hex(digest::digest(&digest::SHA256, &canonical).as_ref())
    );
    let key = signing_key(
        credentials.secret.expose(),
        &date,
        &scope.region,
        &scope.service,
    );
    let signature = hex(hmac::sign(&key, string_to_sign.as_bytes()).as_ref());
    extra.push((
        "authorization".to_owned(),
        format!(
            "{ALGORITHM} Credential={}/{credential_scope}, SignedHeaders={signed_headers}, Signature={signature}",
            credentials.access_key_id
        ),
    ));
    extra
}

/// Trims spaces and tabs and collapses inner runs of spaces, as the verifier reads a value.
fn canonical_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut previous_space = false;
    for c in value.trim_matches([' ', '\t']).chars() {
        if c == ' ' {
            if previous_space {
                continue;
            }
            previous_space = true;
        } else {
            previous_space = false;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;
    use crate::UnrecognizedReason;
    use crate::policy::Principal;
    use crate::sigv4::{Credential, CredentialLookup, Payload, Request, Verifier, VerifierConfig};

    struct OneKey;
    impl CredentialLookup for OneKey {
        fn lookup(&self, id: &str) -> Result<Credential, UnrecognizedReason> {
            if id == "AKIDEXAMPLE" {
                Ok(Credential {
                    secret: SecretKey::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
                    principal: Principal::root(id),
                })
            } else {
                Err(UnrecognizedReason::UnknownKey)
            }
        }
    }

    fn creds() -> SigningCredentials {
        SigningCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret: SecretKey::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: None,
        }
    }

    fn scope() -> SigningScope {
        SigningScope {
            region: "us-east-1".into(),
            service: "kinesisvideo".into(),
        }
    }

    #[test]
    fn signed_requests_verify() {
        let now = 1_700_000_000_000;
        let body = br#"{"StreamName":"cam 1"}"#;
        let hash = payload_sha256_hex(body);
        let headers = [
            ("host", "127.0.0.1:4566"),
            ("content-type", "application/json"),
            ("x-amzn-stream-name", "  cam   1 "),
        ];
        let added = sign(
            &creds(),
            &scope(),
            &UnsignedRequest {
                method: "POST",
                path: "/describeStream",
                query: "b=2&a=x+y",
                headers: &headers,
                payload_sha256_hex: &hash,
            },
            now,
        );
        let all: Vec<(&[u8], &[u8])> = headers
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
            .chain(added.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
            .collect();
        let verifier = Verifier::new(VerifierConfig::new("us-east-1"));
        let request = Request {
            method: "POST",
            path: b"/describeStream",
            query: b"b=2&a=x+y",
            headers: &all,
        };
        let ok = verifier.verify(&request, Payload::Body(body), now, &OneKey);
        assert!(ok.is_ok(), "{ok:?}");
        // A different body does not verify.
        let bad = verifier.verify(&request, Payload::Body(b"{}"), now, &OneKey);
        assert!(bad.is_err());
    }

    #[test]
    fn session_token_is_signed() {
        let mut c = creds();
        c.session_token = Some("token".into());
        let added = sign(
            &c,
            &scope(),
            &UnsignedRequest {
                method: "POST",
                path: "/putMedia",
                query: "",
                headers: &[("host", "h")],
                payload_sha256_hex: crate::sigv4::EMPTY_SHA256_HEX,
            },
            0,
        );
        let auth = &added.last().unwrap().1;
        assert!(
            auth.contains("SignedHeaders=host;x-amz-date;x-amz-security-token"),
            "{auth}"
        );
        assert_eq!(added[1], ("x-amz-security-token".into(), "token".into()));
    }
}
