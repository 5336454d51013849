//! Requests signed by the official Rust signer (`aws-sigv4`), header and presigned forms,
//! verify here; and any single changed byte of a signed part makes them fail.

use aws_sigv4::http_request::{PayloadChecksumKind, SignableBody};
use proptest::prelude::*;
use vigil_auth::{
    AuthError, Malformed, Payload, PayloadHash, UnrecognizedReason, Verified, Verifier,
    VerifierConfig,
};

use crate::common::*;

const T: u64 = 1_795_320_641_000; // 2026-11-22T04:10:41Z

fn verify(raw: &RawRequest, payload: Payload<'_>, now_ms: u64) -> Result<Verified, AuthError> {
    with_request(raw, |r| {
        Verifier::new(VerifierConfig::new(REGION)).verify(r, payload, now_ms, &Keys::example())
    })
}

fn json_headers() -> Vec<(&'static str, &'static str)> {
    vec![
        ("host", "127.0.0.1"),
        ("content-type", "application/json"),
        ("user-agent", "aws-sdk-rust/1.0 os/linux"),
    ]
}

#[test]
fn header_form_json_call() {
    let body = br#"{"StreamName":"cam-1"}"#;
    let mut s = ToSign::new("/describeStream", json_headers(), T);
    s.body = SignableBody::Bytes(body);
    let req = s.sign();
    let v = verify(&req, Payload::Body(body), T + 1_000).unwrap();
    assert_eq!(v.payload, PayloadHash::Body);
    // aws-sigv4 leaves out user-agent.
    assert_eq!(v.signed_headers, ["content-type", "host", "x-amz-date"]);
    assert!(matches!(
        verify(&req, Payload::Body(b"{}"), T),
        Err(AuthError::SignatureMismatch { .. })
    ));
}

#[test]
fn header_form_with_content_sha256() {
    let body = b"{}";
    let mut s = ToSign::new("/listStreams", json_headers(), T);
    s.body = SignableBody::Bytes(body);
    s.settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let req = s.sign();
    assert!(req.header("x-amz-content-sha256").is_some());
    assert_eq!(
        verify(&req, Payload::Body(body), T).unwrap().payload,
        PayloadHash::Body
    );
    // Streaming with a declared hash: signed, reported, not checked.
    assert!(matches!(
        verify(&req, Payload::Streaming, T).unwrap().payload,
        PayloadHash::Declared(_)
    ));
    assert_eq!(
        verify(&req, Payload::Body(b"{ }"), T).unwrap_err(),
        AuthError::ContentSha256Mismatch
    );

    let mut s = ToSign::new("/putMedia", vec![("host", "127.0.0.1")], T);
    s.body = SignableBody::UnsignedPayload;
    s.settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let req = s.sign();
    assert_eq!(
        req.header("x-amz-content-sha256"),
        Some(&b"UNSIGNED-PAYLOAD"[..])
    );
    assert_eq!(
        verify(&req, Payload::Streaming, T).unwrap().payload,
        PayloadHash::Unsigned
    );
    assert_eq!(
        verify(&req, Payload::Body(b"anything"), T).unwrap().payload,
        PayloadHash::Unsigned
    );
}

#[test]
fn put_media_signed_like_the_c_producer() {
    // Sign every header, hop-by-hop ones and user-agent included, with the empty-body hash.
    let headers = vec![
        ("connection", "keep-alive"),
        ("host", "127.0.0.1"),
        ("transfer-encoding", "chunked"),
        (
            "user-agent",
            "AWS-PRODUCER-SDK-KVS/1.6.4 GCC/12.2.0 Linux/6.18.44-fc-v657 x86_64",
        ),
        ("x-amzn-fragment-acknowledgment-required", "1"),
        ("x-amzn-fragment-timecode-type", "ABSOLUTE"),
        ("x-amzn-producer-start-timestamp", "1795320641.601"),
        ("x-amzn-stream-name", "csdk-video"),
    ];
    let mut s = ToSign::new("/putMedia", headers, T);
    s.settings.excluded_headers = None;
    let req = s.sign();
    let v = verify(&req, Payload::Streaming, T).unwrap();
    assert_eq!(v.payload, PayloadHash::EmptyString);
    assert_eq!(v.signed_headers.len(), 9);
    assert!(v.signed_headers.iter().any(|h| h == "transfer-encoding"));
}

#[test]
fn paths_needing_encoding() {
    // The wire path is percent-encoded once; the canonical URI encodes it again.
    for wire in [
        "/hls/v1/getHLSMasterPlaylist.m3u8",
        "/a%20b/c%2Fd",
        "/caf%C3%A9/x:y@z",
        "/a/./b/../c//d/",
        "/%7Euser/~x",
    ] {
        let req = ToSign::new(wire, vec![("host", "127.0.0.1")], T).sign();
        verify(&req, Payload::Streaming, T).unwrap_or_else(|e| panic!("{wire}: {e}"));
    }
}

#[test]
fn query_strings() {
    for query in [
        "b=2&a=1",
        "SessionToken=CiAx%2B%2F%3D&Expires=300",
        "a=1&a=0&a=",
        "flag&x=%7E%20",
        "k=a+b",
    ] {
        let mut s = ToSign::new("/hls/v1/getHLSMediaPlaylist.m3u8", vec![("host", "h")], T);
        s.method = "GET";
        s.query = query;
        let req = s.sign();
        verify(&req, Payload::Streaming, T).unwrap_or_else(|e| panic!("{query}: {e}"));
    }
}

#[test]
fn presigned_form() {
    let mut s = ToSign::new("/putMedia", vec![("host", "127.0.0.1")], T).presigned(300);
    s.query = "X-Amzn-Stream-Name=cam-1";
    let req = s.sign();
    assert!(req.header("authorization").is_none());
    let v = verify(&req, Payload::Streaming, T + 299_000).unwrap();
    assert_eq!(v.expires_at_ms, Some(T + 300_000));
    assert_eq!(v.payload, PayloadHash::EmptyString);
    assert_eq!(v.signed_headers, ["host"]);
    // A body-hashed call presigned with the empty-body hash is accepted too.
    assert_eq!(
        verify(&req, Payload::Body(b"{}"), T).unwrap().payload,
        PayloadHash::EmptyString
    );
    verify(&req, Payload::Body(b""), T).unwrap();

    let e = verify(&req, Payload::Streaming, T + 300_001).unwrap_err();
    assert!(matches!(e, AuthError::PresignedExpired { .. }));
    assert_eq!(e.aws_code(), "InvalidSignatureException");
    assert_eq!(e.http_status(), 403);
    let e = verify(&req, Payload::Streaming, T - 6 * 60_000).unwrap_err();
    assert!(matches!(e, AuthError::SignatureNotYetCurrent { .. }));

    // The signature is not part of what is signed, every other parameter is.
    let q = String::from_utf8(req.query.clone()).unwrap();
    let mut changed = req.clone();
    changed.query = q.replace("cam-1", "cam-2").into_bytes();
    assert!(matches!(
        verify(&changed, Payload::Streaming, T),
        Err(AuthError::SignatureMismatch { .. })
    ));
    let mut longer = req.clone();
    longer.query = q
        .replace("X-Amz-Expires=300", "X-Amz-Expires=3000")
        .into_bytes();
    assert!(matches!(
        verify(&longer, Payload::Streaming, T),
        Err(AuthError::SignatureMismatch { .. })
    ));
    let mut extra = req.clone();
    extra.query = format!("{q}&x=1").into_bytes();
    assert!(matches!(
        verify(&extra, Payload::Streaming, T),
        Err(AuthError::SignatureMismatch { .. })
    ));
    // Parameters may come in any order.
    let mut reordered = req.clone();
    let mut pieces: Vec<&str> = q.split('&').collect();
    pieces.reverse();
    reordered.query = pieces.join("&").into_bytes();
    verify(&reordered, Payload::Streaming, T).unwrap();
}

#[test]
fn presigned_errors() {
    let req = ToSign::new("/getMedia", vec![("host", "127.0.0.1")], T)
        .presigned(60)
        .sign();
    let q = String::from_utf8(req.query.clone()).unwrap();
    let with = |query: String| {
        let mut r = req.clone();
        r.query = query.into_bytes();
        verify(&r, Payload::Streaming, T).unwrap_err()
    };
    let without = |name: &str| {
        q.split('&')
            .filter(|p| !p.starts_with(&format!("{name}=")))
            .collect::<Vec<_>>()
            .join("&")
    };
    for name in [
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
    ] {
        let e = with(without(name));
        assert!(
            matches!(e, AuthError::IncompleteSignature(Malformed::MissingQueryParameter(n)) if n == name),
            "{name}: {e:?}"
        );
        assert_eq!(e.http_status(), 400);
    }
    assert!(matches!(
        with(without("X-Amz-Algorithm")),
        AuthError::IncompleteSignature(Malformed::MissingQueryParameter("X-Amz-Algorithm"))
    ));
    assert!(matches!(
        with(q.replace("X-Amz-Expires=60", "X-Amz-Expires=604801")),
        AuthError::IncompleteSignature(Malformed::BadExpires(_))
    ));
    assert!(matches!(
        with(q.replace("X-Amz-Expires=60", "X-Amz-Expires=0")),
        AuthError::IncompleteSignature(Malformed::BadExpires(_))
    ));
    assert!(matches!(
        with(format!("{q}&X-Amz-Date=20261122T041041Z")),
        AuthError::IncompleteSignature(Malformed::DuplicateQueryParameter("X-Amz-Date"))
    ));
    assert!(matches!(
        with(q.replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256")),
        AuthError::UnsupportedAlgorithm { .. }
    ));
    assert!(matches!(
        with(format!("{q}&X-Amz-Security-Token=abc")),
        AuthError::UnrecognizedClient {
            reason: UnrecognizedReason::SecurityToken,
            ..
        }
    ));
}

#[test]
fn session_tokens_are_refused() {
    let mut s = ToSign::new("/describeStream", json_headers(), T);
    s.session_token = Some("FwoGZXIvYXdzEBAaDH");
    let req = s.sign();
    assert!(req.header("x-amz-security-token").is_some());
    assert!(matches!(
        verify(&req, Payload::Body(b""), T),
        Err(AuthError::UnrecognizedClient {
            reason: UnrecognizedReason::SecurityToken,
            ..
        })
    ));
}

#[test]
fn other_region_service_or_key() {
    let mut s = ToSign::new("/describeStream", json_headers(), T);
    s.region = "ap-south-1";
    assert!(matches!(
        verify(&s.sign(), Payload::Body(b""), T),
        Err(AuthError::CredentialScope(_))
    ));
    let mut s = ToSign::new("/describeStream", json_headers(), T);
    s.service = "kinesis";
    assert!(matches!(
        verify(&s.sign(), Payload::Body(b""), T),
        Err(AuthError::CredentialScope(_))
    ));
    let mut s = ToSign::new("/describeStream", json_headers(), T);
    s.access_key = "AKIDOTHER";
    assert!(matches!(
        verify(&s.sign(), Payload::Body(b""), T),
        Err(AuthError::UnrecognizedClient {
            reason: UnrecognizedReason::UnknownKey,
            ..
        })
    ));
    let mut s = ToSign::new("/describeStream", json_headers(), T);
    s.secret = "wrong";
    assert!(matches!(
        verify(&s.sign(), Payload::Body(b""), T),
        Err(AuthError::SignatureMismatch { .. })
    ));
}

/// A random request to sign.
#[derive(Debug, Clone)]
struct Random {
    method: &'static str,
    segments: Vec<Vec<u8>>,
    params: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    presigned: bool,
}

fn random_request() -> impl Strategy<Value = Random> {
    let segment = proptest::collection::vec(any::<u8>(), 1..12);
    // Query names and values: any Unicode text (aws-sigv4 decodes the query as UTF-8 and
    // would replace the bytes of invalid UTF-8, where botocore and this crate keep them).
    let text = ".{0,8}";
    // Header values: printable ASCII and spaces (runs of spaces included); aws-sigv4 neither
    // trims nor collapses tabs, which HTTP servers strip, so none here.
    let value = "[ -~]{0,24}".prop_map(|s| s.to_string());
    (
        prop_oneof![Just("GET"), Just("POST"), Just("PUT")],
        proptest::collection::vec(segment, 0..4),
        proptest::collection::vec((text, text), 0..4),
        proptest::collection::vec(("x-[a-z]{1,8}", value), 0..4),
        proptest::collection::vec(any::<u8>(), 0..64),
        any::<bool>(),
    )
        .prop_map(
            |(method, segments, params, headers, body, presigned)| Random {
                method,
                segments,
                params,
                headers,
                body,
                presigned,
            },
        )
}

struct Signed {
    raw: RawRequest,
    body: Vec<u8>,
    /// The signed header names other than host and x-amz-date.
    signed: Vec<String>,
}

fn sign_random(r: &Random) -> Signed {
    let path: String = r
        .segments
        .iter()
        .map(|s| format!("/{}", pct(s, false)))
        .collect();
    let path = if path.is_empty() {
        "/".to_owned()
    } else {
        path
    };
    let query = r
        .params
        .iter()
        .map(|(k, v)| format!("{}={}", pct(k.as_bytes(), false), pct(v.as_bytes(), false)))
        .collect::<Vec<_>>()
        .join("&");
    // Distinct header names (aws-sigv4 would join repeated ones; tested elsewhere).
    let mut headers: Vec<(&str, &str)> = vec![("host", "vigil.example:8443")];
    for (n, v) in &r.headers {
        if !headers.iter().any(|(m, _)| m == n) {
            headers.push((n, v));
        }
    }
    let signed = headers
        .iter()
        .skip(1)
        .map(|(n, _)| (*n).to_owned())
        .collect();
    let mut s = ToSign::new(&path, headers, T);
    s.method = r.method;
    s.query = &query;
    s.body = if r.presigned {
        SignableBody::Bytes(b"")
    } else {
        SignableBody::Bytes(&r.body)
    };
    if r.presigned {
        s = s.presigned(900);
    }
    Signed {
        raw: s.sign(),
        body: if r.presigned {
            Vec::new()
        } else {
            r.body.clone()
        },
        signed,
    }
}

/// Replaces the byte at `at` with one that changes what it means: `z`, or `y` for a `z`
/// (neither is a hex digit, so a changed `%XX` escape changes too).
fn change(bytes: &mut [u8], at: usize) {
    bytes[at] = if bytes[at] == b'z' { b'y' } else { b'z' };
}

/// Indexes of alphanumeric bytes (changing one of them always changes the canonical form).
fn alnum_positions(bytes: &[u8]) -> Vec<usize> {
    (0..bytes.len())
        .filter(|&i| bytes[i].is_ascii_alphanumeric())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn official_signatures_verify(r in random_request()) {
        let s = sign_random(&r);
        let v = verify(&s.raw, Payload::Body(&s.body), T);
        prop_assert!(v.is_ok(), "{:?}: {:?}", s.raw, v);
    }

    #[test]
    fn any_single_byte_change_fails(r in random_request(), pick in any::<prop::sample::Index>(), which in 0_usize..6) {
        let s = sign_random(&r);
        let mut raw = s.raw.clone();
        let mut body = s.body.clone();
        let changed = match which {
            // The path.
            0 => {
                let positions = alnum_positions(&raw.path);
                if positions.is_empty() { false } else { change(&mut raw.path, *pick.get(&positions)); true }
            }
            // The query, presigned parameters included (but not the signature itself: a
            // changed hex digit of it is case 5).
            1 => {
                let sig_at = raw.query.windows(16).position(|w| w == b"X-Amz-Signature=");
                let positions: Vec<usize> = alnum_positions(&raw.query)
                    .into_iter()
                    .filter(|&i| sig_at.is_none_or(|s| i < s || i >= s + 16 + 64))
                    .collect();
                if positions.is_empty() { false } else { change(&mut raw.query, *pick.get(&positions)); true }
            }
            // A signed header's value.
            2 => {
                let candidates: Vec<usize> = (0..raw.headers.len())
                    .filter(|&i| {
                        let name = String::from_utf8_lossy(&raw.headers[i].0).to_ascii_lowercase();
                        (s.signed.contains(&name) || name == "host" || name == "x-amz-date")
                            && !alnum_positions(&raw.headers[i].1).is_empty()
                    })
                    .collect();
                if candidates.is_empty() { false } else {
                    let h = *pick.get(&candidates);
                    let positions = alnum_positions(&raw.headers[h].1);
                    change(&mut raw.headers[h].1, *pick.get(&positions));
                    true
                }
            }
            // The body (header form only: presigned requests do not sign it).
            3 => {
                if r.presigned || body.is_empty() { false } else {
                    let at = pick.index(body.len());
                    body[at] ^= 0x01;
                    true
                }
            }
            // The method.
            4 => { raw.method = format!("{}X", raw.method); true }
            // The signature.
            _ => {
                let flip = |b: u8| if b == b'0' { b'1' } else { b'0' };
                if let Some((_, v)) = raw.headers.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(b"authorization")) {
                    let last = v.len() - 1;
                    v[last] = flip(v[last]);
                } else {
                    let at = raw.query.windows(16).position(|w| w == b"X-Amz-Signature=").unwrap() + 16;
                    raw.query[at] = flip(raw.query[at]);
                }
                true
            }
        };
        if changed {
            let v = verify(&raw, Payload::Body(&body), T);
            prop_assert!(v.is_err(), "case {which} still verified: {:?}", raw);
        }
    }
}
