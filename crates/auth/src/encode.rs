//! The canonical URI and canonical query string of SigV4, from the raw bytes of the request
//! target, and hex.
//!
//! Both follow what the official signers do for services other than S3, so that a request
//! they signed canonicalises here to the same bytes:
//!
//! - **URI**: the path as sent (still percent-encoded) has its dot segments and empty segments
//!   removed (RFC 3986 §5.2.4, plus AWS's "consecutive slashes"), then every byte outside the
//!   unreserved set and `/` is percent-encoded once more, so `%` becomes `%25` ("double
//!   encoding"). This is aws-sigv4's `UriPathNormalizationMode::Enabled` with
//!   `PercentEncodingMode::Double` (its defaults) and botocore's `_normalize_url_path`.
//! - **Query**: split on `&`, empty pieces skipped, each piece split at its first `=` (a name
//!   without `=` has the empty value), `+` read as a space and `%XX` decoded
//!   (`application/x-www-form-urlencoded`, as aws-sigv4 parses it; an invalid escape stays as
//!   it is), then names and values encoded with the unreserved set (`A-Z a-z 0-9 - _ . ~`),
//!   sorted by encoded name and then encoded value, and joined with `=` and `&`. Decoded bytes
//!   that are not UTF-8 are kept as they are (botocore, which signs the query as it sent it,
//!   agrees; aws-sigv4 would substitute U+FFFD). No KVS client sends such a query.

/// Whether `b` is in the SigV4 unreserved set.
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

/// The hex digit of the low four bits of `n`, upper or lower case.
fn hex_digit(n: u8, upper: bool) -> u8 {
    let n = n & 0x0f;
    match (n, upper) {
        (0..=9, _) => b'0' + n,
        (_, true) => b'A' + n - 10,
        (_, false) => b'a' + n - 10,
    }
}

/// Appends `bytes` percent-encoded: unreserved bytes (and `/` if `keep_slash`) as they are,
/// every other byte as `%XX` with upper-case hex digits.
pub(crate) fn uri_encode_into(out: &mut Vec<u8>, bytes: &[u8], keep_slash: bool) {
    for &b in bytes {
        if unreserved(b) || (keep_slash && b == b'/') {
            out.push(b);
        } else {
            out.push(b'%');
            out.push(hex_digit(b >> 4, true));
            out.push(hex_digit(b, true));
        }
    }
}

/// The canonical URI of a raw request path (module docs).
pub fn canonical_uri(raw_path: &[u8]) -> Vec<u8> {
    let normalized = normalize_path(raw_path);
    let mut out = Vec::with_capacity(normalized.len() + 16);
    uri_encode_into(&mut out, &normalized, true);
    out
}

/// Removes `.`/`..` and empty segments, keeping a leading `/` and a trailing one (aws-sigv4's
/// `normalize_uri_path`).
fn normalize_path(path: &[u8]) -> Vec<u8> {
    if path.is_empty() {
        return b"/".to_vec();
    }
    let mut segments: Vec<&[u8]> = Vec::new();
    for segment in path.split(|&b| b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = Vec::with_capacity(path.len() + 1);
    for s in &segments {
        out.push(b'/');
        out.extend_from_slice(s);
    }
    let ends_with_slash = [&b"/"[..], b"/.", b"/./", b"/..", b"/../"]
        .iter()
        .any(|end| path.ends_with(end));
    if out.is_empty() || ends_with_slash {
        out.push(b'/');
    }
    out
}

/// One query parameter, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueryParam {
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

/// Decodes a raw query string into its parameters (module docs), in order. `None` if it has
/// more than `max_params` parameters.
pub(crate) fn parse_query(raw: &[u8], max_params: usize) -> Option<Vec<QueryParam>> {
    let mut params = Vec::new();
    for piece in raw.split(|&b| b == b'&') {
        if piece.is_empty() {
            continue;
        }
        if params.len() == max_params {
            return None;
        }
        let (name, value) = match piece.iter().position(|&b| b == b'=') {
            Some(at) => (
                piece.get(..at).unwrap_or_default(),
                piece.get(at + 1..).unwrap_or_default(),
            ),
            None => (piece, &b""[..]),
        };
        params.push(QueryParam {
            name: form_decode(name),
            value: form_decode(value),
        });
    }
    Some(params)
}

/// `+` → space, `%XX` → the byte; an invalid escape is kept as it is.
fn form_decode(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|&h| hex_value(h));
                let lo = bytes.get(i + 2).and_then(|&l| hex_value(l));
                if let (Some(hi), Some(lo)) = (hi, lo) {
                    out.push(hi << 4 | lo);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            _ => out.push(b),
        }
        i += 1;
    }
    out
}

/// The canonical query string of decoded parameters, leaving out those for which `skip` says so.
pub(crate) fn canonical_query<'a>(
    params: impl IntoIterator<Item = &'a QueryParam>,
    skip: impl Fn(&QueryParam) -> bool,
) -> Vec<u8> {
    let mut encoded: Vec<(Vec<u8>, Vec<u8>)> = params
        .into_iter()
        .filter(|p| !skip(p))
        .map(|p| {
            let mut name = Vec::with_capacity(p.name.len());
            uri_encode_into(&mut name, &p.name, false);
            let mut value = Vec::with_capacity(p.value.len());
            uri_encode_into(&mut value, &p.value, false);
            (name, value)
        })
        .collect();
    encoded.sort();
    let mut out = Vec::new();
    for (i, (name, value)) in encoded.iter().enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        out.extend_from_slice(name);
        out.push(b'=');
        out.extend_from_slice(value);
    }
    out
}

/// The value of a hexadecimal digit (either case).
pub(crate) fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(hex_digit(b >> 4, false)));
        s.push(char::from(hex_digit(b, false)));
    }
    s
}

/// Decodes exactly 64 hex digits (either case) into 32 bytes.
pub(crate) fn unhex32(s: &[u8]) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0_u8; 32];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let [hi, lo] = *pair else { return None };
        *o = hex_value(hi)? << 4 | hex_value(lo)?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    fn uri(p: &str) -> String {
        String::from_utf8(canonical_uri(p.as_bytes())).unwrap()
    }

    #[test]
    fn canonical_uri_cases() {
        assert_eq!(uri(""), "/");
        assert_eq!(uri("/"), "/");
        assert_eq!(uri("/putMedia"), "/putMedia");
        assert_eq!(
            uri("/hls/v1/getHLSMasterPlaylist.m3u8"),
            "/hls/v1/getHLSMasterPlaylist.m3u8"
        );
        // Already-encoded bytes are encoded again (the SigV4 test suite's get-space case,
        // double-encoded for non-S3 services).
        assert_eq!(uri("/example%20space/"), "/example%2520space/");
        assert_eq!(uri("/a:b,c@d"), "/a%3Ab%2Cc%40d");
        assert_eq!(uri("/~user/x_y-z.1"), "/~user/x_y-z.1");
        assert_eq!(uri("/a/./b/../c"), "/a/c");
        assert_eq!(uri("//a//b//"), "/a/b/");
        assert_eq!(uri("/a/.."), "/");
        assert_eq!(uri("/a/b/."), "/a/b/");
        assert_eq!(uri("/../../x"), "/x");
        assert_eq!(uri("/é"), "/%C3%A9");
    }

    fn query(q: &str) -> String {
        let params = parse_query(q.as_bytes(), 100).unwrap();
        String::from_utf8(canonical_query(&params, |_| false)).unwrap()
    }

    #[test]
    fn canonical_query_cases() {
        assert_eq!(query(""), "");
        assert_eq!(query("b=2&a=1"), "a=1&b=2");
        assert_eq!(query("a=2&a=1&a=10"), "a=1&a=10&a=2");
        assert_eq!(query("a&&b="), "a=&b=");
        assert_eq!(query("k=a+b%20c"), "k=a%20b%20c");
        assert_eq!(query("k=%2b%2F%7e"), "k=%2B%2F~");
        assert_eq!(query("k=%zz%4"), "k=%25zz%254");
        assert_eq!(query("x=a=b"), "x=a%3Db");
        // Sorted by the encoded name: "%25" < "A" < "_".
        assert_eq!(query("_=1&A=2&%25=3"), "%25=3&A=2&_=1");
    }

    #[test]
    fn query_param_limit() {
        assert!(parse_query(b"a&b&c", 3).is_some());
        assert!(parse_query(b"a&b&c&d", 3).is_none());
        assert!(parse_query(b"a&&&&b&c", 3).is_some());
    }

    #[test]
    fn hex_round_trip() {
        let bytes: Vec<u8> = (0..32).map(|i| i * 7).collect();
        let h = hex(&bytes);
        assert_eq!(unhex32(h.as_bytes()).unwrap().to_vec(), bytes);
        assert_eq!(
            unhex32(h.to_uppercase().as_bytes()).unwrap().to_vec(),
            bytes
        );
        assert!(unhex32(&h.as_bytes()[1..]).is_none());
        assert!(
            unhex32(b"g000000000000000000000000000000000000000000000000000000000000000").is_none()
        );
    }
}
