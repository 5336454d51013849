//! The web console's server side over HTTP: its files and headers, sign-in with a SigV4-signed
//! request, the session cookie, and that a session can do exactly what its key can.

use std::sync::Arc;

use serde_json::{Value, json};
use vigil_api_common::auth::SigV4;
use vigil_auth::sign::{SigningCredentials, SigningScope, UnsignedRequest, payload_sha256_hex};
use vigil_auth::{KeyStore, NewKey, Policy, RootOverride, SecretKey};
use vigil_server::ServerConfig;
use vigil_store::SystemClock;

use crate::common::{Response, TestServer};

const ROOT: &str = "AKIDCONSOLEROOT";
const ROOT_SECRET: &str = "console-root-secret";

struct Fixture {
    server: TestServer,
    keys: KeyStore,
    _keys_dir: tempfile::TempDir,
}

async fn server() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (keys, _) = KeyStore::open(
        dir.path(),
        Some(RootOverride {
            access_key_id: ROOT.into(),
            secret: SecretKey::new(ROOT_SECRET),
        }),
    )
    .unwrap();
    let auth = Arc::new(SigV4::new("us-east-1", keys.clone(), Arc::new(SystemClock)));
    let server = TestServer::start_with(ServerConfig::default(), auth).await;
    Fixture {
        server,
        keys,
        _keys_dir: dir,
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// `POST /console/api/login`, signed as the console's page signs it.
async fn login(s: &TestServer, key: &str, secret: &str) -> Response {
    let host = s.addr.to_string();
    let body = "{}";
    let hash = payload_sha256_hex(body.as_bytes());
    let headers = [
        ("host", host.as_str()),
        ("content-type", "application/json"),
        ("x-amz-content-sha256", hash.as_str()),
    ];
    let signed = vigil_auth::sign::sign(
        &SigningCredentials {
            access_key_id: key.into(),
            secret: SecretKey::new(secret),
            session_token: None,
        },
        &SigningScope {
            region: "us-east-1".into(),
            service: "kinesisvideo".into(),
        },
        &UnsignedRequest {
            method: "POST",
            path: "/console/api/login",
            query: "",
            headers: &headers,
            payload_sha256_hex: &hash,
        },
        now_ms(),
    );
    let mut req = String::from("POST /console/api/login HTTP/1.1\r\n");
    for (k, v) in headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain(signed)
    {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ));
    s.raw(req.as_bytes()).await
}

/// The session cookie a sign-in set.
fn cookie(r: &Response) -> String {
    let set = r
        .header("set-cookie")
        .unwrap_or_else(|| panic!("no cookie: {}", r.text()));
    set.split(';').next().unwrap().to_owned()
}

async fn request(
    s: &TestServer,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    csrf: bool,
    body: &Value,
) -> Response {
    let body = if method == "GET" {
        String::new()
    } else {
        body.to_string()
    };
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: {}\r\n", s.addr);
    if let Some(c) = cookie {
        req.push_str(&format!("cookie: {c}\r\n"));
    }
    if csrf {
        req.push_str("x-vigil-console: 1\r\n");
    }
    req.push_str(&format!(
        "content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ));
    s.raw(req.as_bytes()).await
}

#[tokio::test]
async fn the_page_and_its_files() {
    let f = server().await;
    let s = &f.server;
    let page = s
        .raw(
            format!(
                "GET / HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
                s.addr
            )
            .as_bytes(),
        )
        .await;
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    let html = page.text();
    let script = html
        .split("src=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    assert!(
        script.starts_with("/console/app-") && script.ends_with(".js"),
        "{script}"
    );

    let plain = s
        .raw(
            format!(
                "GET {script} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
                s.addr
            )
            .as_bytes(),
        )
        .await;
    assert_eq!(plain.status, 200);
    assert!(
        plain
            .header("content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
    assert_eq!(
        plain.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(plain.header("content-encoding"), None);
    let gz = s
        .raw(format!("GET {script} HTTP/1.1\r\nhost: {}\r\naccept-encoding: br, gzip;q=0.8\r\nconnection: close\r\n\r\n", s.addr).as_bytes())
        .await;
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert!(
        gz.body.len() * 2 < plain.body.len(),
        "{} vs {}",
        gz.body.len(),
        plain.body.len()
    );

    let missing = s
        .raw(
            format!(
                "GET /console/nope.js HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
                s.addr
            )
            .as_bytes(),
        )
        .await;
    assert_eq!(missing.status, 404);
    // POST / is still the API's (no operation there), not the page.
    s.post("/", &json!({}))
        .await
        .assert_error(404, "UnknownOperationException");

    let info = request(s, "GET", "/console/api/info", None, false, &json!({})).await;
    assert_eq!(info.status, 200);
    assert_eq!(info.json()["Region"], "us-east-1");
    assert_eq!(info.json()["AuthenticationRequired"], true);
}

#[tokio::test]
async fn sign_in_and_sessions() {
    let f = server().await;
    let s = &f.server;

    // Wrong secret, unknown key: the API's errors.
    login(s, ROOT, "wrong")
        .await
        .assert_error(403, "InvalidSignatureException");
    login(s, "AKIDNOSUCHKEY", "x")
        .await
        .assert_error(403, "UnrecognizedClientException");
    // No session: nothing.
    request(s, "GET", "/console/api/streams", None, false, &json!({}))
        .await
        .assert_error(403, "MissingAuthenticationTokenException");
    request(
        s,
        "GET",
        "/console/api/streams",
        Some("vigil_console=forged"),
        false,
        &json!({}),
    )
    .await
    .assert_error(403, "UnrecognizedClientException");

    let r = login(s, ROOT, ROOT_SECRET).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["AccessKeyId"], ROOT);
    let set = r.header("set-cookie").unwrap();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains(ROOT_SECRET));
    let c = cookie(&r);

    // KVS operations through the session; state changes need the header.
    request(
        s,
        "POST",
        "/console/api/kvs/createStream",
        Some(&c),
        false,
        &json!({"StreamName": "cam1", "DataRetentionInHours": 2}),
    )
    .await
    .assert_error(401, "AccessDeniedException");
    let created = request(
        s,
        "POST",
        "/console/api/kvs/createStream",
        Some(&c),
        true,
        &json!({"StreamName": "cam1", "DataRetentionInHours": 2}),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.text());
    request(
        s,
        "POST",
        "/console/api/kvs/createStream",
        Some(&c),
        true,
        &json!({"StreamName": "cam2", "DataRetentionInHours": 0}),
    )
    .await;
    let list = request(
        s,
        "POST",
        "/console/api/kvs/listStreams",
        Some(&c),
        true,
        &json!({}),
    )
    .await;
    assert_eq!(list.json()["StreamInfoList"].as_array().unwrap().len(), 2);
    request(
        s,
        "POST",
        "/console/api/kvs/putMedia",
        Some(&c),
        true,
        &json!({}),
    )
    .await
    .assert_error(404, "UnknownOperationException");

    // The overview.
    let o = request(
        s,
        "GET",
        "/console/api/streams",
        Some(&c),
        false,
        &json!({}),
    )
    .await;
    assert_eq!(o.status, 200, "{}", o.text());
    let streams = o.json()["Streams"].as_array().unwrap().clone();
    assert_eq!(streams.len(), 2);
    assert_eq!(streams[0]["StreamName"], "cam1");
    assert_eq!(streams[0]["DataRetentionInHours"], 2);
    assert_eq!(streams[0]["Fragments"], 0);
    assert_eq!(streams[0]["IngestBytesPerSecond"], 0.0);
    assert!(streams[0]["LastFragment"].is_null());

    // The timeline of an empty day; bad parameters.
    let t = request(
        s,
        "GET",
        &format!("/console/api/timeline?stream=cam1&start=0&end={}", now_ms()),
        Some(&c),
        false,
        &json!({}),
    )
    .await;
    assert_eq!(t.status, 200, "{}", t.text());
    assert_eq!(t.json()["Spans"], json!([]));
    request(
        s,
        "GET",
        "/console/api/timeline?stream=cam1&start=x&end=1",
        Some(&c),
        false,
        &json!({}),
    )
    .await
    .assert_error(400, "InvalidArgumentException");
    request(
        s,
        "GET",
        "/console/api/timeline?stream=nope&start=0&end=1",
        Some(&c),
        false,
        &json!({}),
    )
    .await
    .assert_error(404, "ResourceNotFoundException");
    // Live view of a stream without fragments: the API's answer.
    request(
        s,
        "POST",
        "/console/api/live",
        Some(&c),
        true,
        &json!({"StreamName": "cam1"}),
    )
    .await
    .assert_error(404, "ResourceNotFoundException");

    // A key limited to cam1 and reads sees only cam1 and cannot create.
    let limited = f
        .keys
        .create_key(NewKey {
            name: "viewer".into(),
            description: String::new(),
            policy: Policy {
                operations: vec!["List*".into(), "Describe*".into(), "Get*".into()],
                streams: vec!["cam1".into()],
            },
        })
        .unwrap();
    let lr = login(s, &limited.info.access_key_id, limited.secret.expose()).await;
    assert_eq!(lr.status, 200, "{}", lr.text());
    let lc = cookie(&lr);
    let o = request(
        s,
        "GET",
        "/console/api/streams",
        Some(&lc),
        false,
        &json!({}),
    )
    .await;
    let names: Vec<Value> = o.json()["Streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["StreamName"].clone())
        .collect();
    assert_eq!(names, vec![json!("cam1")]);
    request(
        s,
        "POST",
        "/console/api/kvs/createStream",
        Some(&lc),
        true,
        &json!({"StreamName": "cam3"}),
    )
    .await
    .assert_error(401, "NotAuthorizedException");
    request(
        s,
        "GET",
        "/console/api/timeline?stream=cam2&start=0&end=1",
        Some(&lc),
        false,
        &json!({}),
    )
    .await
    .assert_error(401, "NotAuthorizedException");

    // Revoking the key ends its sessions at once.
    f.keys.revoke_key(&limited.info.access_key_id).unwrap();
    request(
        s,
        "GET",
        "/console/api/session",
        Some(&lc),
        false,
        &json!({}),
    )
    .await
    .assert_error(403, "UnrecognizedClientException");

    // Signing out ends the session.
    let who = request(
        s,
        "GET",
        "/console/api/session",
        Some(&c),
        false,
        &json!({}),
    )
    .await;
    assert_eq!(who.json()["AccessKeyId"], ROOT);
    let out = request(s, "POST", "/console/api/logout", Some(&c), true, &json!({})).await;
    assert_eq!(out.status, 200);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    request(
        s,
        "GET",
        "/console/api/session",
        Some(&c),
        false,
        &json!({}),
    )
    .await
    .assert_error(403, "UnrecognizedClientException");
}
