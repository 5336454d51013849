//! The body of the `sigv4_parse` fuzz target, here so that ordinary tests run it too
//! (`fuzz/README.md`).
//!
//! The input is split at its first seven `\n` bytes into an `Authorization` header value, an
//! `X-Amz-Date` value, a raw path, a raw query, a `Host` value, an `x-amz-content-sha256`
//! value, more headers (`name:value`, separated by `\r`) and a body. It checks that:
//!
//! - the header, credential and `SignedHeaders` parsers never panic, and what they accept has
//!   the shape they promise;
//! - the canonical query string is a fixed point (canonicalising it again gives it back) made
//!   only of unreserved bytes, `%XX`, `=` and `&`; the canonical URI starts with `/`, has no
//!   empty segment and is made only of unreserved bytes, `/` and `%XX`;
//! - the verifier never panics, and every error has an AWS code and a 400 or 403 status;
//! - when the verifier says which signature it expected (a header-form mismatch), a request
//!   carrying that signature is accepted: the verifier agrees with itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use ring::hmac;

use crate::encode::{canonical_query, canonical_uri, hex, parse_query};
use crate::error::{AuthError, UnrecognizedReason};
use crate::parse::{parse_authorization, parse_credential, parse_signed_headers};
use crate::policy::Principal;
use crate::sigv4::{
    Credential, CredentialLookup, Limits, Payload, Request, SecretKey, Verifier, VerifierConfig,
    signing_key,
};
use crate::time::parse_amz_date;

/// The key the fuzzer's requests may be signed with.
pub const FUZZ_ACCESS_KEY_ID: &str = "AKIDEXAMPLE";
/// Its secret.
pub const FUZZ_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

struct FuzzKeys;

impl CredentialLookup for FuzzKeys {
    fn lookup(&self, access_key_id: &str) -> Result<Credential, UnrecognizedReason> {
        if access_key_id == FUZZ_ACCESS_KEY_ID {
            Ok(Credential {
                secret: SecretKey::new(FUZZ_SECRET),
                principal: Principal::root(FUZZ_ACCESS_KEY_ID),
            })
        } else {
            Err(UnrecognizedReason::UnknownKey)
        }
    }
}

fn is_hex_upper(b: u8) -> bool {
    b.is_ascii_digit() || (b'A'..=b'F').contains(&b)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

/// Asserts that `s` is made of unreserved bytes, `%XX` and the bytes in `also`.
fn assert_encoded(s: &[u8], also: &[u8]) {
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if b == b'%' {
            assert!(i + 2 < s.len() && is_hex_upper(s[i + 1]) && is_hex_upper(s[i + 2]));
            i += 3;
        } else {
            assert!(is_unreserved(b) || also.contains(&b), "{s:?}");
            i += 1;
        }
    }
}

/// Runs the checks of the module docs on one input. Returns how many requests it verified,
/// counting those it repaired (so that tests can tell the repair path ran).
pub fn sigv4_parse(data: &[u8]) -> usize {
    let mut fields = data.splitn(8, |&b| b == b'\n');
    let mut next = || fields.next().unwrap_or_default();
    let authorization = next();
    let amz_date = next();
    let path = next();
    let query = next();
    let host = next();
    let content_sha256 = next();
    let more_headers = next();
    let body = next();
    let limits = Limits::default();

    // The parsers on their own.
    if let Ok(header) = parse_authorization(authorization, &limits) {
        if let Ok(c) = parse_credential(header.credential) {
            assert_eq!(c.scope().split('/').count(), 4);
        }
        if let Ok(names) = parse_signed_headers(header.signed_headers, &limits) {
            assert!(names.len() <= limits.max_signed_headers);
            assert!(names.windows(2).all(|w| w[0] < w[1]));
            assert!(names.contains(&"host"));
        }
    }

    // Canonical forms.
    if let Some(params) = parse_query(query, limits.max_query_params) {
        let canonical = canonical_query(&params, |_| false);
        assert_encoded(&canonical, b"=&");
        let again = parse_query(&canonical, usize::MAX).unwrap();
        assert_eq!(again.len(), params.len());
        assert_eq!(canonical_query(&again, |_| false), canonical);
    }
    let uri = canonical_uri(path);
    assert!(uri.starts_with(b"/"));
    assert!(!uri.windows(2).any(|w| w == b"//"));
    assert_encoded(&uri, b"/");

    // The verifier.
    let mut headers: Vec<(&[u8], &[u8])> = vec![(b"Host", host), (b"X-Amz-Date", amz_date)];
    if !authorization.is_empty() {
        headers.push((b"Authorization", authorization));
    }
    if !content_sha256.is_empty() {
        headers.push((b"x-amz-content-sha256", content_sha256));
    }
    for line in more_headers
        .split(|&b| b == b'\r')
        .filter(|l| !l.is_empty())
    {
        let mut nv = line.splitn(2, |&b| b == b':');
        headers.push((nv.next().unwrap_or_default(), nv.next().unwrap_or_default()));
    }
    let verifier = Verifier::new(VerifierConfig::new("us-east-1"));
    let now_ms = parse_amz_date(amz_date).unwrap_or(0);
    let mut verified = 0;
    for payload in [Payload::Streaming, Payload::Body(body)] {
        let request = Request {
            method: "POST",
            path,
            query,
            headers: &headers,
        };
        let Err(e) = verifier.verify(&request, payload, now_ms, &FuzzKeys) else {
            verified += 1;
            continue;
        };
        assert!(matches!(e.http_status(), 400 | 403));
        assert!(e.aws_code().ends_with("Exception"));
        assert!(!e.message().is_empty());
        let AuthError::SignatureMismatch { string_to_sign, .. } = &e else {
            continue;
        };
        // Sign what the verifier expected, and offer that signature in its place.
        let sign = |credential: &[u8]| {
            let c = parse_credential(credential).unwrap();
            let key = signing_key(FUZZ_SECRET, c.date, c.region, c.service);
            hex(hmac::sign(&key, string_to_sign.as_bytes()).as_ref())
        };
        let fixed_header;
        let fixed_query;
        let mut fixed_headers = headers.clone();
        let mut fixed_request = request;
        if let Ok(header) = parse_authorization(authorization, &limits) {
            // Header form, unless the Authorization header signs itself.
            let signed = std::str::from_utf8(header.signed_headers).unwrap();
            if signed.split(';').any(|n| n == "authorization") {
                continue;
            }
            fixed_header = format!(
                "AWS4-HMAC-SHA256 Credential={}, SignedHeaders={signed}, Signature={}",
                std::str::from_utf8(header.credential).unwrap(),
                sign(header.credential)
            );
            for h in &mut fixed_headers {
                if h.0 == b"Authorization" {
                    h.1 = fixed_header.as_bytes();
                }
            }
            fixed_request.headers = &fixed_headers;
        } else {
            // Presigned: replace X-Amz-Signature, which the canonical query leaves out.
            let params = parse_query(query, usize::MAX).unwrap();
            let credential = &params
                .iter()
                .find(|p| p.name == b"X-Amz-Credential")
                .unwrap()
                .value;
            let mut q: Vec<u8> = Vec::new();
            for piece in query.split(|&b| b == b'&') {
                let name = piece.split(|&b| b == b'=').next().unwrap_or_default();
                let decoded = parse_query(name, 1).unwrap_or_default();
                if decoded
                    .first()
                    .is_some_and(|p| p.name == b"X-Amz-Signature")
                {
                    continue;
                }
                q.extend_from_slice(piece);
                q.push(b'&');
            }
            q.extend_from_slice(b"X-Amz-Signature=");
            q.extend_from_slice(sign(credential).as_bytes());
            fixed_query = q;
            fixed_request.query = &fixed_query;
        }
        let request = fixed_request;
        if let Err(e) = verifier.verify(&request, payload, now_ms, &FuzzKeys) {
            panic!("the signature the verifier expected was refused: {e:?}");
        }
        verified += 1;
    }
    verified
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_valid_request_and_its_repair() {
        // A C producer request whose signature was zeroed: the repair path must find it.
        let input = b"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261122/us-east-1/kinesisvideo/aws4_request, SignedHeaders=host;x-amz-date, Signature=0000000000000000000000000000000000000000000000000000000000000000\n20261122T041041Z\n/putMedia\n\n127.0.0.1\n\n\n";
        assert_eq!(sigv4_parse(input), 2);
        // The same, presigned.
        let input = b"\n20261122T041041Z\n/getMedia\nX-Amz-Signature=00&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20261122%2Fus-east-1%2Fkinesisvideo%2Faws4_request&X-Amz-Date=20261122T041041Z&X-Amz-Expires=300&X-Amz-SignedHeaders=host&X-Amz-Signature=0000000000000000000000000000000000000000000000000000000000000000\n127.0.0.1\n\n\n";
        assert_eq!(sigv4_parse(input), 0, "two signatures: refused");
        let input = b"\n20261122T041041Z\n/getMedia\nX-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20261122%2Fus-east-1%2Fkinesisvideo%2Faws4_request&X-Amz-Date=20261122T041041Z&X-Amz-Expires=300&X-Amz-SignedHeaders=host&X-Amz-Signature=0000000000000000000000000000000000000000000000000000000000000000\n127.0.0.1\n\n\n";
        assert_eq!(sigv4_parse(input), 2);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = sigv4_parse(&data);
        }

        #[test]
        fn never_panics_on_near_valid_input(
            date in "2026112[0-9]T0[0-9]{5}Z",
            signed in "(host|host;x-amz-date|connection;host|host;x-amz-content-sha256)",
            path in "/[a-zA-Z0-9%./~ -]{0,20}",
            query in "[a-zA-Z0-9%=&+-]{0,30}",
        ) {
            let input = format!(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{}/us-east-1/kinesisvideo/aws4_request, SignedHeaders={signed}, Signature={}\n{date}\n{path}\n{query}\n127.0.0.1\n\nconnection:keep-alive\nbody",
                &date[..8],
                "ab".repeat(32)
            );
            let _ = sigv4_parse(input.as_bytes());
        }
    }
}
