//! The official KVS C producer's requests (`shared/testdata/kvs-producer-c`), byte-exact:
//! all eight verify at capture time, the README's counter-checks fail, and every way of
//! breaking one gives the AWS error it should.

use vigil_auth::{
    AuthError, Malformed, Payload, PayloadHash, ScopeError, UnrecognizedReason, Verifier,
    VerifierConfig,
};

use crate::common::*;

const FOLDERS: [&str; 2] = ["video", "av"];

fn verifier() -> Verifier {
    Verifier::new(VerifierConfig::new(REGION))
}

/// Verifies a control-plane request (JSON body) or PutMedia (streaming) at `now_ms`.
fn verify_at(
    raw: &RawRequest,
    payload: Payload<'_>,
    now_ms: u64,
    keys: &Keys,
) -> Result<vigil_auth::Verified, AuthError> {
    with_request(raw, |r| verifier().verify(r, payload, now_ms, keys))
}

fn verify(raw: &RawRequest, payload: Payload<'_>) -> Result<vigil_auth::Verified, AuthError> {
    verify_at(raw, payload, raw.amz_date_ms(), &Keys::example())
}

/// Every request of both captures with the payload it is verified with.
fn all_requests() -> Vec<(String, RawRequest, bool)> {
    let mut out = Vec::new();
    for folder in FOLDERS {
        for (name, req) in control_requests(folder) {
            out.push((format!("{folder}/{name}"), req, false));
        }
        out.push((
            format!("{folder}/PutMedia"),
            put_media_request(folder),
            true,
        ));
    }
    out
}

fn payload_of(req: &RawRequest, streaming: bool) -> Payload<'_> {
    if streaming {
        Payload::Streaming
    } else {
        Payload::Body(&req.body)
    }
}

#[test]
fn all_eight_requests_verify() {
    for (name, req, streaming) in all_requests() {
        let verified =
            verify(&req, payload_of(&req, streaming)).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(verified.access_key_id(), ACCESS_KEY, "{name}");
        assert_eq!(verified.region, REGION);
        assert_eq!(verified.expires_at_ms, None);
        assert!(verified.principal.is_root());
        let expected = if streaming {
            PayloadHash::EmptyString
        } else {
            PayloadHash::Body
        };
        assert_eq!(verified.payload, expected, "{name}");
        if streaming {
            assert_eq!(
                verified.signed_headers,
                [
                    "connection",
                    "host",
                    "transfer-encoding",
                    "user-agent",
                    "x-amz-date",
                    "x-amzn-fragment-acknowledgment-required",
                    "x-amzn-fragment-timecode-type",
                    "x-amzn-producer-start-timestamp",
                    "x-amzn-stream-name"
                ]
            );
        } else {
            assert_eq!(
                verified.signed_headers,
                ["host", "user-agent", "x-amz-date"]
            );
        }
    }
}

#[test]
fn the_two_steps_verify_headers_before_the_body() {
    let req = put_media_request("video");
    let keys = Keys::example();
    let pending = with_request(&req, |r| verifier().begin(r, req.amz_date_ms(), &keys)).unwrap();
    assert_eq!(pending.principal().access_key_id, ACCESS_KEY);
    pending.finish(Payload::Streaming).unwrap();

    let (_, json) = control_requests("video").remove(0);
    let pending = with_request(&json, |r| verifier().begin(r, json.amz_date_ms(), &keys)).unwrap();
    let sha = ring::digest::digest(&ring::digest::SHA256, &json.body);
    let mut hash = [0_u8; 32];
    hash.copy_from_slice(sha.as_ref());
    assert_eq!(
        pending.finish(Payload::BodySha256(hash)).unwrap().payload,
        PayloadHash::Body
    );
}

#[test]
fn canonical_requests_are_byte_exact() {
    // With a wrong secret the verifier reports the canonical request and string to sign it
    // computed: they must be the ones in sigv4.txt, byte for byte.
    for folder in FOLDERS {
        let expected = expected_canonical(folder);
        let mut requests: Vec<(RawRequest, bool)> = control_requests(folder)
            .into_iter()
            .map(|(_, r)| (r, false))
            .collect();
        requests.push((put_media_request(folder), true));
        assert_eq!(expected.len(), requests.len());
        for ((req, streaming), (creq, sts)) in requests.iter().zip(&expected) {
            let err = verify_at(
                req,
                payload_of(req, *streaming),
                req.amz_date_ms(),
                &Keys::with_secret("not-the-secret"),
            )
            .unwrap_err();
            let AuthError::SignatureMismatch {
                canonical_request,
                string_to_sign,
            } = &err
            else {
                panic!("{err:?}");
            };
            assert_eq!(canonical_request, creq);
            assert_eq!(string_to_sign, sts);
            assert_eq!(err.aws_code(), "InvalidSignatureException");
            assert_eq!(err.http_status(), 403);
            assert!(err.message().starts_with(
                "The request signature we calculated does not match the signature you provided."
            ));
        }
    }
}

#[test]
fn counter_checks_fail() {
    for folder in FOLDERS {
        let port = if folder == "video" { "18443" } else { "18444" };
        // Host with the port the endpoint listened on.
        for (name, mut req, streaming) in all_requests() {
            req.set_header("host", format!("127.0.0.1:{port}").as_bytes());
            let e = verify(&req, payload_of(&req, streaming)).unwrap_err();
            assert!(
                matches!(e, AuthError::SignatureMismatch { .. }),
                "{name}: {e:?}"
            );
        }
        // PutMedia with the Matroska body hashed.
        let req = put_media_request(folder);
        let body = read(&kvs_capture(&format!("{folder}/putmedia-body.mkv")));
        let e = verify(&req, Payload::Body(&body)).unwrap_err();
        assert!(matches!(e, AuthError::SignatureMismatch { .. }));
        // A JSON call whose body is not hashed.
        let (_, json) = control_requests(folder).remove(1);
        let e = verify(&json, Payload::Streaming).unwrap_err();
        assert!(matches!(e, AuthError::SignatureMismatch { .. }));
    }
}

#[test]
fn any_changed_signed_byte_fails_and_unsigned_ones_do_not_matter() {
    let req = put_media_request("video");
    // Unsigned headers may change.
    let mut unsigned = req.clone();
    unsigned.set_header("accept", b"application/json");
    unsigned.set_header("content-type", b"video/webm");
    unsigned.remove_header("expect");
    verify(&unsigned, Payload::Streaming).unwrap();
    // Header names are case-insensitive, values are trimmed.
    let mut recased = req.clone();
    for (n, v) in &mut recased.headers {
        *n = n.to_ascii_uppercase();
        v.splice(0..0, *b"  ");
        v.extend_from_slice(b" \t");
    }
    verify(&recased, Payload::Streaming).unwrap();

    for name in [
        "connection",
        "host",
        "transfer-encoding",
        "user-agent",
        "x-amzn-fragment-acknowledgment-required",
        "x-amzn-fragment-timecode-type",
        "x-amzn-producer-start-timestamp",
        "x-amzn-stream-name",
    ] {
        let value = req.header(name).unwrap().to_vec();
        for at in 0..value.len() {
            let mut changed = req.clone();
            let mut v = value.clone();
            v[at] = if v[at] == b'z' { b'y' } else { b'z' };
            changed.set_header(name, &v);
            let e = verify(&changed, Payload::Streaming).unwrap_err();
            assert!(
                matches!(e, AuthError::SignatureMismatch { .. }),
                "{name}@{at}"
            );
        }
    }
    let mut method = req.clone();
    method.method = "PUT".into();
    assert!(matches!(
        verify(&method, Payload::Streaming),
        Err(AuthError::SignatureMismatch { .. })
    ));
    let mut path = req.clone();
    path.path = b"/putmedia".to_vec();
    assert!(matches!(
        verify(&path, Payload::Streaming),
        Err(AuthError::SignatureMismatch { .. })
    ));
    let mut query = req.clone();
    query.query = b"x=1".to_vec();
    assert!(matches!(
        verify(&query, Payload::Streaming),
        Err(AuthError::SignatureMismatch { .. })
    ));
    // A repeated signed header joins the values: no longer what was signed.
    let mut repeated = req.clone();
    repeated
        .headers
        .push((b"x-amzn-stream-name".to_vec(), b"other".to_vec()));
    assert!(matches!(
        verify(&repeated, Payload::Streaming),
        Err(AuthError::SignatureMismatch { .. })
    ));
}

#[test]
fn signature_and_key_errors() {
    let (_, req) = control_requests("av").remove(0);
    let auth = String::from_utf8(req.header("authorization").unwrap().to_vec()).unwrap();

    // A flipped byte in the signature.
    let mut flipped = req.clone();
    let last = auth.len() - 1;
    let mut a = auth.clone().into_bytes();
    a[last] = if a[last] == b'0' { b'1' } else { b'0' };
    flipped.set_header("authorization", &a);
    assert!(matches!(
        verify(&flipped, Payload::Body(&req.body)),
        Err(AuthError::SignatureMismatch { .. })
    ));

    // A changed body.
    let mut body = req.body.clone();
    body[3] ^= 1;
    assert!(matches!(
        verify(&req, Payload::Body(&body)),
        Err(AuthError::SignatureMismatch { .. })
    ));

    // An unknown key.
    let unknown = Keys(vec![]);
    let e = verify_at(&req, Payload::Body(&req.body), req.amz_date_ms(), &unknown).unwrap_err();
    assert_eq!(
        e,
        AuthError::UnrecognizedClient {
            access_key_id: ACCESS_KEY.into(),
            reason: UnrecognizedReason::UnknownKey
        }
    );
    assert_eq!(e.aws_code(), "UnrecognizedClientException");
    assert_eq!(e.http_status(), 403);
    assert_eq!(
        e.message(),
        "The security token included in the request is invalid."
    );

    // A session token, which Vigil never issued.
    let mut token = req.clone();
    token
        .headers
        .push((b"X-Amz-Security-Token".to_vec(), b"FwoGZXIvYXdzE".to_vec()));
    assert!(matches!(
        verify(&token, Payload::Body(&req.body)),
        Err(AuthError::UnrecognizedClient {
            reason: UnrecognizedReason::SecurityToken,
            ..
        })
    ));
}

#[test]
fn clock_skew() {
    let req = put_media_request("video");
    let t = req.amz_date_ms();
    let keys = Keys::example();
    let minute = 60_000;
    for ok in [t - 5 * minute, t, t + 5 * minute, t + 4 * minute + 59_999] {
        verify_at(&req, Payload::Streaming, ok, &keys).unwrap();
    }
    let e = verify_at(&req, Payload::Streaming, t + 6 * minute, &keys).unwrap_err();
    assert!(matches!(e, AuthError::SignatureExpired { .. }));
    assert_eq!(e.aws_code(), "InvalidSignatureException");
    assert_eq!(e.http_status(), 403);
    assert_eq!(
        e.message(),
        "Signature expired: 20261122T041041Z is now earlier than 20261122T041141Z \
         (20261122T041641Z - 5 min.)"
    );
    let e = verify_at(&req, Payload::Streaming, t - 6 * minute, &keys).unwrap_err();
    assert!(matches!(e, AuthError::SignatureNotYetCurrent { .. }));
    assert_eq!(
        e.message(),
        "Signature not yet current: 20261122T041041Z is still later than 20261122T040941Z \
         (20261122T040441Z + 5 min.)"
    );
    // The allowed skew is configurable.
    let mut config = VerifierConfig::new(REGION);
    config.max_skew_ms = 15 * minute;
    let lenient = Verifier::new(config);
    with_request(&req, |r| {
        lenient.verify(r, Payload::Streaming, t + 14 * minute, &keys)
    })
    .unwrap();
}

#[test]
fn scope_errors() {
    let req = put_media_request("video");
    let auth = String::from_utf8(req.header("authorization").unwrap().to_vec()).unwrap();
    let keys = Keys::example();

    // The server in another region.
    let e = with_request(&req, |r| {
        Verifier::new(VerifierConfig::new("eu-west-1")).verify(
            r,
            Payload::Streaming,
            req.amz_date_ms(),
            &keys,
        )
    })
    .unwrap_err();
    assert_eq!(
        e,
        AuthError::CredentialScope(ScopeError::Region {
            region: "us-east-1".into(),
            expected: "eu-west-1".into()
        })
    );
    assert_eq!(e.aws_code(), "InvalidSignatureException");
    assert_eq!(e.http_status(), 403);
    assert!(
        e.message()
            .starts_with("Credential should be scoped to a valid region, not 'us-east-1'.")
    );
    // A server that takes any region: the capture (signed for us-east-1) verifies, checked
    // with the region it was signed for; a scope edited to another region does not (the
    // signing key is derived from it), nor does one that is no region name.
    let any = |r: &RawRequest| {
        let mut cfg = VerifierConfig::new("eu-west-1");
        cfg.any_region = true;
        with_request(r, |r| {
            Verifier::new(cfg).verify(r, Payload::Streaming, req.amz_date_ms(), &keys)
        })
    };
    assert_eq!(any(&req).unwrap().region, "us-east-1");
    let mut edited = req.clone();
    edited.set_header(
        "authorization",
        auth.replace("/us-east-1/", "/us-west-2/").as_bytes(),
    );
    assert!(matches!(
        any(&edited).unwrap_err(),
        AuthError::SignatureMismatch { .. }
    ));
    let mut edited = req.clone();
    edited.set_header(
        "authorization",
        auth.replace("/us-east-1/", "/US_EAST/").as_bytes(),
    );
    assert!(matches!(
        any(&edited).unwrap_err(),
        AuthError::CredentialScope(ScopeError::Region { .. })
    ));

    let with_auth = |from: &str, to: &str| {
        let mut r = req.clone();
        r.set_header("authorization", auth.replace(from, to).as_bytes());
        verify(&r, Payload::Streaming).unwrap_err()
    };
    let e = with_auth("/kinesisvideo/", "/s3/");
    assert!(matches!(
        &e,
        AuthError::CredentialScope(ScopeError::Service { service, .. }) if service == "s3"
    ));
    assert_eq!(
        e.message(),
        "Credential should be scoped to correct service: 'kinesisvideo'. "
    );
    assert!(matches!(
        with_auth("/aws4_request", "/aws5_request"),
        AuthError::CredentialScope(ScopeError::Terminator(_))
    ));
    let e = with_auth("/20261122/", "/20261121/");
    assert!(matches!(
        e,
        AuthError::CredentialScope(ScopeError::Date { .. })
    ));
    assert_eq!(
        e.message(),
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from \
         HTTP: '20261121' != '20261122', from '20261122T041041Z'."
    );
}

#[test]
fn missing_or_malformed_authentication() {
    let req = put_media_request("video");
    let auth = String::from_utf8(req.header("authorization").unwrap().to_vec()).unwrap();

    let mut none = req.clone();
    none.remove_header("authorization");
    let e = verify(&none, Payload::Streaming).unwrap_err();
    assert_eq!(e, AuthError::MissingAuthenticationToken);
    assert_eq!(e.aws_code(), "MissingAuthenticationTokenException");
    assert_eq!(e.http_status(), 403);
    let mut empty = req.clone();
    empty.set_header("authorization", b"  ");
    assert_eq!(
        verify(&empty, Payload::Streaming).unwrap_err(),
        AuthError::MissingAuthenticationToken
    );

    // A signed header missing from the request.
    let mut missing = req.clone();
    missing.remove_header("transfer-encoding");
    let e = verify(&missing, Payload::Streaming).unwrap_err();
    assert_eq!(
        e,
        AuthError::SignedHeaderMissing {
            name: "transfer-encoding".into()
        }
    );
    assert_eq!(e.http_status(), 403);

    let mut no_date = req.clone();
    no_date.remove_header("x-amz-date");
    assert_eq!(
        verify(&no_date, Payload::Streaming).unwrap_err(),
        AuthError::IncompleteSignature(Malformed::MissingDate)
    );
    let mut bad_date = req.clone();
    bad_date.set_header("x-amz-date", b"2026-11-22T04:10:41Z");
    assert!(matches!(
        verify(&bad_date, Payload::Streaming),
        Err(AuthError::IncompleteSignature(Malformed::BadDate(_)))
    ));
    let mut two = req.clone();
    two.headers
        .push((b"Authorization".to_vec(), auth.clone().into_bytes()));
    assert_eq!(
        verify(&two, Payload::Streaming).unwrap_err(),
        AuthError::IncompleteSignature(Malformed::DuplicateHeader("Authorization"))
    );

    type Check = fn(&AuthError) -> bool;
    let cases: Vec<(String, Check)> = vec![
        (auth.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512"), |e| {
            matches!(e, AuthError::UnsupportedAlgorithm { .. })
        }),
        ("AWS AKIDEXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=".into(), |e| {
            matches!(e, AuthError::UnsupportedAlgorithm { .. })
        }),
        (auth.replace("Credential=", "Credential "), |e| {
            matches!(
                e,
                AuthError::IncompleteSignature(Malformed::NotKeyValuePair { .. })
            )
        }),
        (auth.replace("Signature=", "Sig="), |e| {
            *e == AuthError::IncompleteSignature(Malformed::MissingComponent("Signature"))
        }),
        (auth.replace(", SignedHeaders=", ", X="), |e| {
            *e == AuthError::IncompleteSignature(Malformed::MissingComponent("SignedHeaders"))
        }),
        (auth.replace("Credential=", "Foo="), |e| {
            *e == AuthError::IncompleteSignature(Malformed::MissingComponent("Credential"))
        }),
        (auth.replace("AKIDEXAMPLE/", "AKIDEXAMPLE/x/"), |e| {
            matches!(
                e,
                AuthError::IncompleteSignature(Malformed::BadCredential(_))
            )
        }),
        (
            auth.replace(
                "SignedHeaders=connection;host",
                "SignedHeaders=host;connection",
            ),
            |e| {
                matches!(
                    e,
                    AuthError::IncompleteSignature(Malformed::BadSignedHeaders(_))
                )
            },
        ),
        (auth.replace("connection;host;", "connection;"), |e| {
            *e == AuthError::IncompleteSignature(Malformed::HostNotSigned)
        }),
        (
            auth.replace("Signature=7ea32b0c", "Signature=7ea32b0"),
            |e| {
                matches!(
                    e,
                    AuthError::IncompleteSignature(Malformed::BadSignature(_))
                )
            },
        ),
        (format!("{auth}, Signature=00"), |e| {
            matches!(
                e,
                AuthError::IncompleteSignature(Malformed::DuplicateComponent(_))
            )
        }),
        (
            auth.replace("Credential=", &format!("Credential={}", "A".repeat(5000))),
            |e| matches!(e, AuthError::IncompleteSignature(Malformed::TooLong { .. })),
        ),
    ];
    for (value, check) in cases {
        let mut r = req.clone();
        r.set_header("authorization", value.as_bytes());
        let e = verify(&r, Payload::Streaming).unwrap_err();
        assert!(check(&e), "{value}: {e:?}");
        assert_eq!(e.http_status(), 400, "{value}");
        assert_eq!(e.aws_code(), "IncompleteSignatureException");
    }
}

#[test]
fn content_sha256_header() {
    let (_, req) = control_requests("video").remove(2);
    // A declared hash that is not the body's.
    let mut declared = req.clone();
    declared
        .headers
        .push((b"x-amz-content-sha256".to_vec(), vec![b'a'; 64]));
    let e = verify(&declared, Payload::Body(&req.body)).unwrap_err();
    assert_eq!(e, AuthError::ContentSha256Mismatch);
    assert_eq!(e.aws_code(), "InvalidSignatureException");
    // Streaming aws-chunked forms are refused.
    let mut chunked = req.clone();
    chunked.headers.push((
        b"x-amz-content-sha256".to_vec(),
        b"STREAMING-UNSIGNED-PAYLOAD-TRAILER".to_vec(),
    ));
    assert!(matches!(
        verify(&chunked, Payload::Body(&req.body)),
        Err(AuthError::IncompleteSignature(Malformed::BadContentSha256(
            _
        )))
    ));
}

#[test]
fn presigned_form_of_a_capture_is_refused_when_mixed() {
    let mut req = put_media_request("video");
    req.query = b"X-Amz-Algorithm=AWS4-HMAC-SHA256".to_vec();
    assert_eq!(
        verify(&req, Payload::Streaming).unwrap_err(),
        AuthError::IncompleteSignature(Malformed::BothMechanisms)
    );
}

/// Vigil's own signer, given the headers the C producer signed at the time it signed them,
/// writes the very `Authorization` header the C producer sent, for all eight requests.
#[test]
fn our_signer_reproduces_the_producers_signatures() {
    use vigil_auth::sign::{
        SigningCredentials, SigningScope, UnsignedRequest, payload_sha256_hex, sign,
    };
    let credentials = SigningCredentials {
        access_key_id: ACCESS_KEY.to_owned(),
        secret: vigil_auth::SecretKey::new(SECRET),
        session_token: None,
    };
    let scope = SigningScope {
        region: REGION.to_owned(),
        service: "kinesisvideo".to_owned(),
    };
    for (name, req, streaming) in all_requests() {
        let authorization = std::str::from_utf8(req.header("authorization").unwrap()).unwrap();
        let signed = authorization
            .split("SignedHeaders=")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap();
        let headers: Vec<(String, String)> = req
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    String::from_utf8(n.clone()).unwrap().to_ascii_lowercase(),
                    String::from_utf8(v.clone()).unwrap(),
                )
            })
            .filter(|(n, _)| n != "x-amz-date" && signed.split(';').any(|s| s == n))
            .collect();
        let refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let hash = if streaming {
            vigil_auth::sigv4::EMPTY_SHA256_HEX.to_owned()
        } else {
            payload_sha256_hex(&req.body)
        };
        let path = String::from_utf8(req.path.clone()).unwrap();
        let query = String::from_utf8(req.query.clone()).unwrap();
        let added = sign(
            &credentials,
            &scope,
            &UnsignedRequest {
                method: &req.method,
                path: &path,
                query: &query,
                headers: &refs,
                payload_sha256_hex: &hash,
            },
            req.amz_date_ms(),
        );
        let ours = &added.iter().find(|(n, _)| n == "authorization").unwrap().1;
        assert_eq!(ours, authorization, "{name}");
        let date = &added.iter().find(|(n, _)| n == "x-amz-date").unwrap().1;
        assert_eq!(date.as_bytes(), req.header("x-amz-date").unwrap(), "{name}");
    }
}
