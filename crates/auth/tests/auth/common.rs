//! Helpers shared by the test modules: the KVS producer captures, a raw HTTP request parser,
//! a fixed key set, and signing with the official `aws-sigv4` signer.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use vigil_auth::{Credential, CredentialLookup, Principal, Request, SecretKey, UnrecognizedReason};

pub const ACCESS_KEY: &str = "AKIDEXAMPLE";
pub const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
pub const REGION: &str = "us-east-1";
/// 2026-11-22T04:10:41Z, when the video capture was made.
pub const CAPTURE_MS: u64 = 1_795_320_641_000;

/// `shared/testdata/kvs-producer-c/<name>`: the official KVS producer SDK's captures, in the
/// `shared/` folder beside the repository (or where `VIGIL_SHARED_DIR` says).
pub fn kvs_capture(name: &str) -> PathBuf {
    let rel = Path::new("testdata/kvs-producer-c").join(name);
    if let Some(dir) = std::env::var_os("VIGIL_SHARED_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join(rel);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = manifest
        .canonicalize()
        .unwrap_or_else(|_| manifest.to_owned());
    for dir in manifest.ancestors() {
        let candidate = dir.join("shared").join(&rel);
        if candidate.exists() {
            return candidate;
        }
    }
    panic!(
        "the KVS producer captures ({}) were not found in a shared/ folder beside the \
         repository; set VIGIL_SHARED_DIR to the folder that holds testdata/kvs-producer-c",
        rel.display()
    );
}

pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// An HTTP/1.1 request as it arrived, split the way an HTTP server splits it.
#[derive(Debug, Clone)]
pub struct RawRequest {
    pub method: String,
    pub path: Vec<u8>,
    pub query: Vec<u8>,
    /// Names as sent; values with leading and trailing whitespace removed, as hyper does.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl RawRequest {
    /// Parses the request line and headers of `head` (up to and including CRLF CRLF).
    pub fn parse_head(head: &[u8]) -> RawRequest {
        let text = std::str::from_utf8(head).unwrap();
        let mut lines = text.split("\r\n");
        let request_line = lines.next().unwrap();
        let mut parts = request_line.split(' ');
        let method = parts.next().unwrap().to_owned();
        let target = parts.next().unwrap();
        assert_eq!(parts.next(), Some("HTTP/1.1"));
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut headers = Vec::new();
        for line in lines {
            if line.is_empty() {
                continue;
            }
            let (name, value) = line.split_once(':').unwrap();
            headers.push((
                name.as_bytes().to_vec(),
                value.trim_matches([' ', '\t']).as_bytes().to_vec(),
            ));
        }
        RawRequest {
            method,
            path: path.as_bytes().to_vec(),
            query: query.as_bytes().to_vec(),
            headers,
            body: Vec::new(),
        }
    }

    pub fn header_refs(&self) -> Vec<(&[u8], &[u8])> {
        self.headers
            .iter()
            .map(|(n, v)| (n.as_slice(), v.as_slice()))
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.as_slice())
    }

    pub fn set_header(&mut self, name: &str, value: &[u8]) {
        let h = self
            .headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .unwrap_or_else(|| panic!("no {name} header"));
        h.1 = value.to_vec();
    }

    pub fn remove_header(&mut self, name: &str) {
        self.headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case(name.as_bytes()));
    }

    /// `X-Amz-Date` in ms since the epoch; the capture time if it is missing or malformed.
    pub fn amz_date_ms(&self) -> u64 {
        let date = self
            .header("x-amz-date")
            .map(|d| d.to_vec())
            .or_else(|| {
                let q = std::str::from_utf8(&self.query).unwrap();
                q.split('&')
                    .find_map(|p| p.strip_prefix("X-Amz-Date="))
                    .map(|d| d.as_bytes().to_vec())
            })
            .unwrap_or_default();
        vigil_auth::time::parse_amz_date(&date).unwrap_or(CAPTURE_MS)
    }
}

/// Runs `f` with the `Request` view of `raw`.
pub fn with_request<T>(raw: &RawRequest, f: impl FnOnce(&Request<'_>) -> T) -> T {
    let headers = raw.header_refs();
    let request = Request {
        method: &raw.method,
        path: &raw.path,
        query: &raw.query,
        headers: &headers,
    };
    f(&request)
}

/// The three control-plane requests of a capture folder's `requests.txt` (README: a marker
/// line, the head up to CRLF CRLF, `content-length` bytes of body, one LF).
pub fn control_requests(folder: &str) -> Vec<(String, RawRequest)> {
    let bytes = read(&kvs_capture(&format!("{folder}/requests.txt")));
    let mut out = Vec::new();
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        assert!(rest.starts_with(b"##### "), "marker expected");
        let marker_end = rest.iter().position(|&b| b == b'\n').unwrap();
        let marker = std::str::from_utf8(&rest[..marker_end]).unwrap();
        let name = marker
            .split(": ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap();
        rest = &rest[marker_end + 1..];
        let head_end = rest.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let mut req = RawRequest::parse_head(&rest[..head_end]);
        let len: usize = std::str::from_utf8(req.header("content-length").unwrap())
            .unwrap()
            .parse()
            .unwrap();
        req.body = rest[head_end..head_end + len].to_vec();
        rest = &rest[head_end + len..];
        assert_eq!(rest.first(), Some(&b'\n'));
        rest = &rest[1..];
        out.push((name.to_owned(), req));
    }
    assert_eq!(out.len(), 3);
    out
}

/// The PutMedia request head of a capture folder.
pub fn put_media_request(folder: &str) -> RawRequest {
    RawRequest::parse_head(&read(&kvs_capture(&format!(
        "{folder}/putmedia-headers.txt"
    ))))
}

/// `sigv4.txt`: per request, the canonical request and the string to sign, in order.
pub fn expected_canonical(folder: &str) -> Vec<(String, String)> {
    let text = String::from_utf8(read(&kvs_capture(&format!("{folder}/sigv4.txt")))).unwrap();
    text.split("##### ")
        .filter(|s| !s.is_empty())
        .map(|section| {
            let creq = section
                .split("--- canonical request\n")
                .nth(1)
                .unwrap()
                .split("\n--- string to sign\n")
                .next()
                .unwrap();
            let sts = section
                .split("--- string to sign\n")
                .nth(1)
                .unwrap()
                .split("\n--- signature")
                .next()
                .unwrap();
            (creq.to_owned(), sts.to_owned())
        })
        .collect()
}

/// A fixed set of keys: `AKIDEXAMPLE` (root) and any others given.
#[derive(Debug, Clone)]
pub struct Keys(pub Vec<(String, String, Principal)>);

impl Keys {
    pub fn example() -> Self {
        Keys(vec![(
            ACCESS_KEY.to_owned(),
            SECRET.to_owned(),
            Principal::root(ACCESS_KEY),
        )])
    }

    pub fn with_secret(secret: &str) -> Self {
        Keys(vec![(
            ACCESS_KEY.to_owned(),
            secret.to_owned(),
            Principal::root(ACCESS_KEY),
        )])
    }
}

impl CredentialLookup for Keys {
    fn lookup(&self, access_key_id: &str) -> Result<Credential, UnrecognizedReason> {
        self.0
            .iter()
            .find(|(id, _, _)| id == access_key_id)
            .map(|(_, secret, principal)| Credential {
                secret: SecretKey::new(secret.clone()),
                principal: principal.clone(),
            })
            .ok_or(UnrecognizedReason::UnknownKey)
    }
}

/// Percent-encodes everything but the unreserved set (and `/` if `keep_slash`): the test's own
/// encoder, independent of the crate's.
pub fn pct(s: &[u8], keep_slash: bool) -> String {
    let mut out = String::new();
    for &b in s {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What to sign with the official signer.
pub struct ToSign<'a> {
    pub method: &'a str,
    /// The path as it goes on the wire (already percent-encoded).
    pub path: &'a str,
    /// The query as it goes on the wire (already percent-encoded), without `?`.
    pub query: &'a str,
    /// Headers other than those the signer adds; `host` included.
    pub headers: Vec<(&'a str, &'a str)>,
    pub body: SignableBody<'a>,
    pub settings: SigningSettings,
    pub access_key: &'a str,
    pub secret: &'a str,
    pub session_token: Option<&'a str>,
    pub region: &'a str,
    pub service: &'a str,
    pub time_ms: u64,
}

impl<'a> ToSign<'a> {
    pub fn new(path: &'a str, headers: Vec<(&'a str, &'a str)>, time_ms: u64) -> Self {
        ToSign {
            method: "POST",
            path,
            query: "",
            headers,
            body: SignableBody::Bytes(b""),
            settings: SigningSettings::default(),
            access_key: ACCESS_KEY,
            secret: SECRET,
            session_token: None,
            region: REGION,
            service: "kinesisvideo",
            time_ms,
        }
    }

    pub fn presigned(mut self, expires_s: u64) -> Self {
        self.settings.signature_location = SignatureLocation::QueryParams;
        self.settings.expires_in = Some(Duration::from_secs(expires_s));
        self
    }

    /// Signs with `aws-sigv4` and returns the request as the server receives it.
    pub fn sign(self) -> RawRequest {
        let identity: Identity = Credentials::from_keys(
            self.access_key,
            self.secret,
            self.session_token.map(str::to_owned),
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(self.region)
            .name(self.service)
            .time(UNIX_EPOCH + Duration::from_millis(self.time_ms))
            .settings(self.settings)
            .build()
            .unwrap()
            .into();
        let uri = if self.query.is_empty() {
            format!("https://127.0.0.1:18443{}", self.path)
        } else {
            format!("https://127.0.0.1:18443{}?{}", self.path, self.query)
        };
        let signable =
            SignableRequest::new(self.method, uri, self.headers.iter().copied(), self.body)
                .unwrap();
        let (instructions, _signature) = sign(signable, &params).unwrap().into_parts();
        let mut headers: Vec<(Vec<u8>, Vec<u8>)> = self
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_bytes().to_vec(),
                    v.trim_matches([' ', '\t']).as_bytes().to_vec(),
                )
            })
            .collect();
        for (n, v) in instructions.headers() {
            headers.push((n.as_bytes().to_vec(), v.as_bytes().to_vec()));
        }
        let mut query = self.query.to_owned();
        for (n, v) in instructions.params() {
            if !query.is_empty() {
                query.push('&');
            }
            query.push_str(&pct(n.as_bytes(), false));
            query.push('=');
            query.push_str(&pct(v.as_bytes(), false));
        }
        RawRequest {
            method: self.method.to_owned(),
            path: self.path.as_bytes().to_vec(),
            query: query.into_bytes(),
            headers,
            body: Vec::new(),
        }
    }
}

/// Now, in ms since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}
