//! Parsers of the untrusted parts of a SigV4 request: the `Authorization` header, the
//! credential scope and the `SignedHeaders` list.
//!
//! Panic-free and bounded: every input is capped by [`Limits`] before it is looked at, nothing
//! is indexed, and errors quote at most 256 bytes of what they reject.

use crate::encode::unhex32;
use crate::error::{AuthError, Malformed, quote};
use crate::sigv4::{ALGORITHM, Limits};

/// The parts of an `AWS4-HMAC-SHA256` `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuthorizationHeader<'a> {
    /// `Credential=`: `key/date/region/service/terminator`.
    pub credential: &'a [u8],
    /// `SignedHeaders=`, as sent.
    pub signed_headers: &'a [u8],
    /// `Signature=`, decoded.
    pub signature: [u8; 32],
}

/// HTTP optional whitespace.
fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ows(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_ows(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// Parses an `Authorization` header value:
/// `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
///
/// The components may come in any order, separated by commas and optional whitespace; unknown
/// components are ignored, as the SigV4 specification leaves room for them.
pub(crate) fn parse_authorization<'a>(
    value: &'a [u8],
    limits: &Limits,
) -> Result<AuthorizationHeader<'a>, AuthError> {
    if value.len() > limits.max_authorization_len {
        return Err(AuthError::IncompleteSignature(Malformed::TooLong {
            what: "Authorization header",
            limit: limits.max_authorization_len,
            unit: "bytes",
        }));
    }
    let value = trim_ows(value);
    let (algorithm, rest) = match value.iter().position(|&b| is_ows(b)) {
        Some(at) => (
            value.get(..at).unwrap_or_default(),
            value.get(at..).unwrap_or_default(),
        ),
        None => (value, &b""[..]),
    };
    if algorithm != ALGORITHM.as_bytes() {
        return Err(AuthError::UnsupportedAlgorithm {
            algorithm: quote(algorithm),
        });
    }
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for component in rest.split(|&b| b == b',') {
        let component = trim_ows(component);
        if component.is_empty() {
            continue;
        }
        let Some(eq) = component.iter().position(|&b| b == b'=') else {
            return Err(AuthError::IncompleteSignature(Malformed::NotKeyValuePair {
                component: quote(component),
                header: quote(value),
            }));
        };
        let key = trim_ows(component.get(..eq).unwrap_or_default());
        let val = trim_ows(component.get(eq + 1..).unwrap_or_default());
        let slot = match key {
            b"Credential" => &mut credential,
            b"SignedHeaders" => &mut signed_headers,
            b"Signature" => &mut signature,
            _ => continue,
        };
        if slot.replace(val).is_some() {
            return Err(AuthError::IncompleteSignature(
                Malformed::DuplicateComponent(quote(key)),
            ));
        }
    }
    let credential = credential.ok_or(AuthError::IncompleteSignature(
        Malformed::MissingComponent("Credential"),
    ))?;
    let signed_headers = signed_headers.ok_or(AuthError::IncompleteSignature(
        Malformed::MissingComponent("SignedHeaders"),
    ))?;
    let signature = signature.ok_or(AuthError::IncompleteSignature(
        Malformed::MissingComponent("Signature"),
    ))?;
    Ok(AuthorizationHeader {
        credential,
        signed_headers,
        signature: parse_signature(signature)?,
    })
}

/// A signature: 64 hex digits.
pub(crate) fn parse_signature(value: &[u8]) -> Result<[u8; 32], AuthError> {
    unhex32(value)
        .ok_or_else(|| AuthError::IncompleteSignature(Malformed::BadSignature(quote(value))))
}

/// A credential: `access-key-id/YYYYMMDD/region/service/aws4_request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Credential<'a> {
    pub access_key_id: &'a str,
    pub date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    pub terminator: &'a str,
}

impl Credential<'_> {
    /// `date/region/service/terminator`: the credential scope as it goes in the string to sign.
    pub fn scope(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.date, self.region, self.service, self.terminator
        )
    }
}

/// Splits a credential into its five parts. Each part must be non-empty printable ASCII
/// without spaces (what any access key id, date, region or service name is).
pub(crate) fn parse_credential(value: &[u8]) -> Result<Credential<'_>, AuthError> {
    let bad = || AuthError::IncompleteSignature(Malformed::BadCredential(quote(value)));
    if !value.iter().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    let text = std::str::from_utf8(value).map_err(|_| bad())?;
    let mut parts = text.split('/');
    let mut next = || parts.next().filter(|p| !p.is_empty()).ok_or_else(bad);
    let credential = Credential {
        access_key_id: next()?,
        date: next()?,
        region: next()?,
        service: next()?,
        terminator: next()?,
    };
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(credential)
}

/// Whether `b` may appear in a lower-case header name (RFC 9110 `tchar`, upper case excluded).
fn is_lower_tchar(b: u8) -> bool {
    b.is_ascii_lowercase()
        || b.is_ascii_digit()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// Splits `SignedHeaders`: distinct lower-case header names in ascending byte order, separated
/// by `;`, `host` among them, at most `limits.max_signed_headers`.
pub(crate) fn parse_signed_headers<'a>(
    value: &'a [u8],
    limits: &Limits,
) -> Result<Vec<&'a str>, AuthError> {
    let bad = || AuthError::IncompleteSignature(Malformed::BadSignedHeaders(quote(value)));
    let mut names: Vec<&str> = Vec::new();
    for name in value.split(|&b| b == b';') {
        if names.len() == limits.max_signed_headers {
            return Err(AuthError::IncompleteSignature(Malformed::TooLong {
                what: "SignedHeaders list",
                limit: limits.max_signed_headers,
                unit: "names",
            }));
        }
        if name.is_empty() || !name.iter().all(|&b| is_lower_tchar(b)) {
            return Err(bad());
        }
        let name = std::str::from_utf8(name).map_err(|_| bad())?;
        if names.last().is_some_and(|&last| last >= name) {
            return Err(bad());
        }
        names.push(name);
    }
    if !names.contains(&"host") {
        return Err(AuthError::IncompleteSignature(Malformed::HostNotSigned));
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    const SIG: &str = "54f9742440bc4d0934feec5e7d0187157e932d8b39c5d706e2e7a32253985f72";

    fn auth(v: &str) -> Result<AuthorizationHeader<'_>, AuthError> {
        parse_authorization(v.as_bytes(), &Limits::default())
    }

    fn incomplete(r: Result<impl std::fmt::Debug, AuthError>) -> Malformed {
        match r {
            Err(AuthError::IncompleteSignature(m)) => m,
            other => panic!("expected IncompleteSignature, got {other:?}"),
        }
    }

    #[test]
    fn parses_the_c_producer_header() {
        let v = format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261122/us-east-1/kinesisvideo/aws4_request, \
             SignedHeaders=host;user-agent;x-amz-date, Signature={SIG}"
        );
        let a = auth(&v).unwrap();
        assert_eq!(
            a.credential,
            b"AKIDEXAMPLE/20261122/us-east-1/kinesisvideo/aws4_request"
        );
        assert_eq!(a.signed_headers, b"host;user-agent;x-amz-date");
        assert_eq!(crate::encode::hex(&a.signature), SIG);
    }

    #[test]
    fn tolerates_order_spacing_and_unknown_components() {
        let v = format!(
            "AWS4-HMAC-SHA256   Signature={SIG},SignedHeaders=host ,  Foo=bar,\tCredential=K/d/r/s/t,"
        );
        let a = auth(&v).unwrap();
        assert_eq!(a.credential, b"K/d/r/s/t");
        assert_eq!(a.signed_headers, b"host");
    }

    #[test]
    fn malformed_headers() {
        assert!(matches!(
            auth("AWS4-HMAC-SHA256"),
            Err(AuthError::IncompleteSignature(Malformed::MissingComponent(
                "Credential"
            )))
        ));
        assert!(matches!(
            incomplete(auth("AWS4-HMAC-SHA256 Credential=a/b/c/d/e, Signature=00")),
            Malformed::MissingComponent("SignedHeaders")
        ));
        assert!(matches!(
            incomplete(auth(
                "AWS4-HMAC-SHA256 Credential=a/b/c/d/e, SignedHeaders=host"
            )),
            Malformed::MissingComponent("Signature")
        ));
        assert!(matches!(
            incomplete(auth("AWS4-HMAC-SHA256 Credential a/b/c/d/e")),
            Malformed::NotKeyValuePair { .. }
        ));
        assert!(matches!(
            incomplete(auth(&format!(
                "AWS4-HMAC-SHA256 Credential=a, Credential=b, SignedHeaders=host, Signature={SIG}"
            ))),
            Malformed::DuplicateComponent(_)
        ));
        assert!(matches!(
            incomplete(auth(
                "AWS4-HMAC-SHA256 Credential=a/b/c/d/e, SignedHeaders=host, Signature=xyz"
            )),
            Malformed::BadSignature(_)
        ));
        let long = format!("AWS4-HMAC-SHA256 Credential={}", "a".repeat(5000));
        assert!(matches!(incomplete(auth(&long)), Malformed::TooLong { .. }));
    }

    #[test]
    fn other_algorithms() {
        for v in [
            "AWS4-HMAC-SHA512 Credential=a",
            "AWS4-ECDSA-P256-SHA256 Credential=a",
            "AWS AKIDEXAMPLE:c2lnbmF0dXJl",
            "Bearer abc",
            "",
            "aws4-hmac-sha256 Credential=a",
        ] {
            assert!(
                matches!(auth(v), Err(AuthError::UnsupportedAlgorithm { .. })),
                "{v}"
            );
        }
    }

    #[test]
    fn credentials() {
        let c =
            parse_credential(b"AKIDEXAMPLE/20261122/us-east-1/kinesisvideo/aws4_request").unwrap();
        assert_eq!(c.access_key_id, "AKIDEXAMPLE");
        assert_eq!(c.scope(), "20261122/us-east-1/kinesisvideo/aws4_request");
        for bad in [
            &b""[..],
            b"a/b/c/d",
            b"a/b/c/d/e/f",
            b"/b/c/d/e",
            b"a/b//d/e",
            b"a/b/c/d/",
            b"a b/c/d/e/f",
            b"a/b/c/d/\xff",
        ] {
            assert!(matches!(
                parse_credential(bad),
                Err(AuthError::IncompleteSignature(Malformed::BadCredential(_)))
            ));
        }
    }

    #[test]
    fn signed_headers() {
        let l = Limits::default();
        assert_eq!(
            parse_signed_headers(b"connection;host;x-amz-date", &l).unwrap(),
            ["connection", "host", "x-amz-date"]
        );
        for bad in [
            &b""[..],
            b"host;",
            b";host",
            b"Host",
            b"x-amz-date;host",
            b"host;host",
            b"host;a b",
        ] {
            assert!(
                matches!(
                    parse_signed_headers(bad, &l),
                    Err(AuthError::IncompleteSignature(Malformed::BadSignedHeaders(
                        _
                    )))
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(matches!(
            parse_signed_headers(b"content-type;x-amz-date", &l),
            Err(AuthError::IncompleteSignature(Malformed::HostNotSigned))
        ));
        let many: Vec<String> = (0..65).map(|i| format!("h{i:03}")).collect();
        assert!(matches!(
            parse_signed_headers(many.join(";").as_bytes(), &l),
            Err(AuthError::IncompleteSignature(Malformed::TooLong { .. }))
        ));
    }
}
