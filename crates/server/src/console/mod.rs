//! The web console's server side: its assets, sign-in sessions, and the few reads only the
//! console makes (the streams overview, a day's timeline, clip downloads).
//!
//! # Signing in without weakening the API
//!
//! The browser never sends the secret key. The sign-in page signs `POST /console/api/login`
//! with SigV4 in the browser (service `kinesisvideo`, the server's region), exactly as an AWS
//! SDK signs a request, and forgets the secret; the server verifies the signature through the
//! same [`Authenticator`](vigil_api_common::Authenticator) as every API call and answers with a random
//! session token in a cookie (`HttpOnly`, `SameSite=Strict`, `Secure` behind TLS, expiring after
//! [`ConsoleConfig::session_ttl`]). The server keeps only the token's SHA-256 and the
//! [`Principal`] it stands for, in memory: a restart signs everyone out, and so does revoking
//! or deleting the key (checked on every request with [`Authenticator::is_current`]).
//!
//! # What a session may do
//!
//! Exactly what its key may do: console requests run the same handlers with the same
//! [`Principal`], so the key's policy applies unchanged. `POST /console/api/kvs/{operation}`
//! runs a KVS JSON operation (its path without the slash: `listStreams`); the console-only
//! reads authorise as the operations they stand for (the overview as `ListStreams` and
//! `DescribeStream`, the timeline as `ListFragments`, a clip download as `GetClip`, the live
//! view as `GetHLSStreamingSessionURL`). State-changing requests are `POST`s that must carry
//! `X-Vigil-Console: 1`, which a cross-site form cannot send (and the cookie is `SameSite=Strict`).
//!
//! # Assets
//!
//! `GET /` is the console's page; `GET /console/...` its scripts and styles, embedded in the
//! binary by `vigil-console`, sent gzip-compressed when the client accepts it, with a strict
//! Content-Security-Policy. Content-hashed files are cached for a year, the page never.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use vigil_api_common::{Origin, Payload, Principal, Service};
use vigil_api_kvs_common::{KvsError, KvsResult, json as json_response};

use crate::ServerState;
use reads::{Query, file_time, sanitize};

mod reads;
pub mod throttle;

/// The session cookie's name.
pub const COOKIE: &str = "vigil_console";
/// The header state-changing console requests must carry.
pub const CSRF_HEADER: &str = "x-vigil-console";

/// Settings of the console.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// Whether `GET /` serves the console (the API answers either way).
    pub enabled: bool,
    /// How long a sign-in lasts.
    pub session_ttl: Duration,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            session_ttl: Duration::from_secs(12 * 3600),
        }
    }
}

/// Signed-in console sessions: the SHA-256 of each token and who it stands for.
#[derive(Debug, Default)]
pub struct Sessions {
    inner: Mutex<HashMap<[u8; 32], Session>>,
}

#[derive(Debug, Clone)]
struct Session {
    principal: Principal,
    expires_ms: u64,
}

/// The most sessions kept; the oldest-expiring go first beyond it.
const MAX_SESSIONS: usize = 10_000;

fn token_hash(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a session for `principal`; returns its token.
    fn create(&self, principal: Principal, now_ms: u64, ttl: Duration) -> KvsResult<String> {
        let mut raw = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw)
            .map_err(|_| KvsError::InternalFailure("no randomness for a session token".into()))?;
        let token = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, raw);
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let mut map = self.lock();
        map.retain(|_, s| s.expires_ms > now_ms);
        while map.len() >= MAX_SESSIONS {
            let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires_ms)
                .map(|(k, _)| *k)
            else {
                break;
            };
            map.remove(&oldest);
        }
        map.insert(
            token_hash(&token),
            Session {
                principal,
                expires_ms: now_ms.saturating_add(ttl_ms),
            },
        );
        crate::metrics::metrics()
            .console_sessions
            .set(i64::try_from(map.len()).unwrap_or(i64::MAX));
        Ok(token)
    }

    fn get(&self, token: &str, now_ms: u64) -> Option<Session> {
        let key = token_hash(token);
        let mut map = self.lock();
        match map.get(&key) {
            Some(s) if s.expires_ms > now_ms => Some(s.clone()),
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    fn remove(&self, token: &str) {
        let mut map = self.lock();
        map.remove(&token_hash(token));
        crate::metrics::metrics()
            .console_sessions
            .set(i64::try_from(map.len()).unwrap_or(i64::MAX));
    }
}

// ---- assets ----

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: blob:; media-src 'self' blob:; worker-src 'self' blob:; \
    connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

/// `GET /`: the console's page.
pub async fn index(State(state): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    if !state.cfg.console.enabled {
        return KvsError::UnknownOperationException(
            "The web console is switched off on this server ([console] enabled = false).".into(),
        )
        .into_response();
    }
    asset_response(vigil_console::index(), &headers)
}

/// `GET /console/{path}`: a script, style sheet or icon of the console.
pub async fn asset(State(state): State<Arc<ServerState>>, req: Request) -> Response {
    let path = req
        .uri()
        .path()
        .strip_prefix("/console/")
        .unwrap_or_default();
    match vigil_console::asset(path) {
        Some(a) if state.cfg.console.enabled => asset_response(a, req.headers()),
        _ => (StatusCode::NOT_FOUND, "no such console file\n").into_response(),
    }
}

fn asset_response(a: &'static vigil_console::Asset, headers: &HeaderMap) -> Response {
    let gzip_ok = headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|e| e.trim().split(';').next() == Some("gzip"));
    let (body, encoding) = match a.gzip {
        Some(gz) if gzip_ok => (gz, Some("gzip")),
        _ => (a.body, None),
    };
    let mut resp = Response::new(Body::from(Bytes::from_static(body)));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if a.immutable {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        }),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if let Some(e) = encoding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(e));
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    resp
}

// ---- the console API ----

/// Every request under `/console/api/`.
pub async fn api(State(state): State<Arc<ServerState>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    match api_call(state, req).await {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(path, error = e.aws_code(), "console: {}", e.message());
            e.into_response()
        }
    }
}

async fn api_call(state: Arc<ServerState>, req: Request) -> KvsResult<Response> {
    let rest = req
        .uri()
        .path()
        .strip_prefix("/console/api/")
        .unwrap_or_default()
        .to_owned();
    let method = req.method().clone();
    crate::metrics::metrics()
        .console_requests
        .inc(&[route_label(&rest)]);
    match (method, rest.as_str()) {
        (Method::GET, "info") => Ok(info(&state)),
        (Method::POST, "login") => login(state, req).await,
        (Method::POST, "logout") => {
            check_csrf(req.headers())?;
            if let Some(t) = cookie(req.headers()) {
                state.console_sessions.remove(&t);
            }
            let mut resp = json_response(&json!({}));
            set_cookie(&mut resp, &clear_cookie(&state));
            Ok(resp)
        }
        (Method::GET, "session") => {
            let (_, s) = session(&state, req.headers())?;
            Ok(json_response(&json!({
                "AccessKeyId": s.principal.access_key_id,
                "ExpiresAt": s.expires_ms as f64 / 1000.0,
                "Region": state.cfg.api.region,
            })))
        }
        (Method::GET, "streams") => {
            let (parts, body) = req.into_parts();
            let c = console_call(&state, parts, body, false).await?;
            let call = c.kvs(&state, vigil_api_kvs::Operation::ListStreams);
            let server = state.clone();
            tokio::task::spawn_blocking(move || reads::overview(&server, &call))
                .await
                .map_err(|e| KvsError::InternalFailure(format!("the handler task failed: {e}")))?
        }
        (Method::GET, "timeline") => {
            let (parts, body) = req.into_parts();
            let c = console_call(&state, parts, body, false).await?;
            let call = c.playback(&state, vigil_api_playback::Operation::ListFragments);
            vigil_api_kvs_common::blocking(call, reads::timeline).await
        }
        (Method::GET, "clip") => {
            let (parts, body) = req.into_parts();
            let mut c = console_call(&state, parts, body, false).await?;
            let q = Query::parse(c.parts.uri.query().unwrap_or(""));
            let stream = q.required("stream")?.to_owned();
            let start = q.millis("start")?;
            let end = q.millis("end")?;
            c.body = Bytes::from(
                json!({
                    "StreamName": stream,
                    "ClipFragmentSelector": {
                        "FragmentSelectorType": "PRODUCER_TIMESTAMP",
                        "TimestampRange": {
                            "StartTimestamp": start as f64 / 1000.0,
                            "EndTimestamp": end as f64 / 1000.0,
                        }
                    }
                })
                .to_string(),
            );
            let call = c.playback(&state, vigil_api_playback::Operation::GetClip);
            let mut resp = vigil_api_playback::run(call).await?;
            let name = format!("{}-{}.mp4", sanitize(&stream), file_time(start));
            if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
                resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
            }
            Ok(resp)
        }
        (Method::POST, "live") => {
            let (parts, body) = req.into_parts();
            let c = console_call(&state, parts, body, true).await?;
            let op = vigil_api_playback::Operation::GetHLSStreamingSessionURL;
            let mut call = c.playback(&state, op);
            #[derive(serde::Deserialize)]
            #[serde(rename_all = "PascalCase")]
            struct LiveInput {
                stream_name: String,
            }
            let input: LiveInput = call.input()?;
            call.body = Bytes::from(
                json!({
                    "StreamName": input.stream_name,
                    "PlaybackMode": "LIVE",
                    "ContainerFormat": "FRAGMENTED_MP4",
                    "DisplayFragmentTimestamp": "ALWAYS",
                })
                .to_string(),
            );
            vigil_api_playback::run(call).await
        }
        (Method::POST, op_path) if op_path.starts_with("kvs/") => {
            let path = op_path.strip_prefix("kvs").unwrap_or_default();
            let unknown = || {
                KvsError::UnknownOperationException(format!(
                    "No operation the console may call at /console/api/{op_path}."
                ))
            };
            let requests = &vigil_api_common::metrics::global().api_requests;
            if let Some(op) = vigil_api_kvs::Operation::from_path(path) {
                if matches!(
                    op,
                    vigil_api_kvs::Operation::PutMedia | vigil_api_kvs::Operation::GetMedia
                ) {
                    return Err(unknown());
                }
                let (parts, body) = req.into_parts();
                let c = console_call(&state, parts, body, true).await?;
                requests.inc(&[op.name()]);
                vigil_api_kvs::run(c.kvs(&state, op)).await
            } else if let Some(op) = vigil_api_playback::Operation::from_path(path) {
                let (parts, body) = req.into_parts();
                let c = console_call(&state, parts, body, true).await?;
                requests.inc(&[op.name()]);
                vigil_api_playback::run(c.playback(&state, op)).await
            } else {
                Err(unknown())
            }
        }
        (m, p) => Err(KvsError::UnknownOperationException(format!(
            "No console request {m} /console/api/{p}."
        ))),
    }
}

/// A bounded label for metrics.
fn route_label(rest: &str) -> &'static str {
    match rest {
        "info" => "info",
        "login" => "login",
        "logout" => "logout",
        "session" => "session",
        "streams" => "streams",
        "timeline" => "timeline",
        "clip" => "clip",
        "live" => "live",
        r if r.starts_with("kvs/") => "kvs",
        _ => "other",
    }
}

fn info(state: &ServerState) -> Response {
    json_response(&json!({
        "Region": state.cfg.api.region,
        "Service": vigil_auth::sigv4::SERVICE,
        "Version": env!("CARGO_PKG_VERSION"),
        "AuthenticationRequired": state.auth.requires_signature(),
        "SessionHours": state.cfg.console.session_ttl.as_secs_f64() / 3600.0,
    }))
}

/// `POST /console/api/login`, signed with SigV4 by the browser (or any client).
async fn login(state: Arc<ServerState>, req: Request) -> KvsResult<Response> {
    let (parts, body) = req.into_parts();
    let peer = parts
        .extensions
        .get::<vigil_api_common::config::PeerAddr>()
        .map(|p| p.0.ip());
    let now = state.store.clock().now_ms();
    if let Some(ip) = peer
        && let Err(wait_s) = state.console_throttle.attempt(ip, now)
    {
        crate::metrics::metrics().console_login_throttled.inc(&[]);
        return Err(KvsError::ClientLimitExceededException(format!(
            "Too many failed sign-ins from {ip}; try again in {wait_s} s."
        )));
    }
    let signed = async {
        state.auth.precheck(&parts, Service::KinesisVideo)?;
        let bytes = vigil_api_common::body::read(body, 4096).await?;
        KvsResult::Ok(state.auth.authenticate(
            &parts,
            Payload::Body(&bytes),
            Service::KinesisVideo,
        )?)
    };
    // A failed attempt keeps its place in the throttle; a successful one gives it back.
    let principal = signed.await?;
    if let Some(ip) = peer {
        state.console_throttle.succeeded(ip);
    }
    let token =
        state
            .console_sessions
            .create(principal.clone(), now, state.cfg.console.session_ttl)?;
    crate::metrics::metrics().console_logins.inc(&[]);
    tracing::info!(key = principal.access_key_id, "console: signed in");
    let ttl_s = state.cfg.console.session_ttl.as_secs();
    let mut resp = json_response(&json!({
        "AccessKeyId": principal.access_key_id,
        "ExpiresAt": (now as f64 / 1000.0) + ttl_s as f64,
        "Region": state.cfg.api.region,
    }));
    let secure = if state.cfg.api.tls { "; Secure" } else { "" };
    set_cookie(
        &mut resp,
        &format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={ttl_s}{secure}"),
    );
    Ok(resp)
}

fn clear_cookie(state: &ServerState) -> String {
    let secure = if state.cfg.api.tls { "; Secure" } else { "" };
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}

fn set_cookie(resp: &mut Response, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// The session token from the request's cookies.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty())
}

fn check_csrf(headers: &HeaderMap) -> KvsResult<()> {
    if headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()) == Some("1") {
        Ok(())
    } else {
        Err(KvsError::AccessDeniedException(format!(
            "Console requests that change state must carry the header {CSRF_HEADER}: 1."
        )))
    }
}

/// The session a request belongs to.
fn session(state: &ServerState, headers: &HeaderMap) -> KvsResult<(String, Session)> {
    let token = cookie(headers).ok_or_else(|| {
        KvsError::MissingAuthenticationTokenException("Sign in to the console first.".into())
    })?;
    let now = state.store.clock().now_ms();
    let s = state.console_sessions.get(&token, now).ok_or_else(|| {
        KvsError::UnrecognizedClientException(
            "The console session has expired or was ended; sign in again.".into(),
        )
    })?;
    if !state.auth.is_current(&s.principal) {
        state.console_sessions.remove(&token);
        return Err(KvsError::UnrecognizedClientException(
            "The access key of this console session was revoked or deleted.".into(),
        ));
    }
    Ok((token, s))
}

/// A request from the console: the session's principal and the request's JSON body, ready
/// to become a call of either KVS crate.
struct ConsoleCall {
    parts: Parts,
    principal: Principal,
    body: Bytes,
}

impl ConsoleCall {
    fn kvs(self, state: &ServerState, op: vigil_api_kvs::Operation) -> vigil_api_kvs::Call {
        vigil_api_kvs::Call {
            op,
            parts: self.parts,
            principal: self.principal,
            body: self.body,
            state: state.kvs.clone(),
            origin: Origin::Console,
        }
    }

    fn playback(
        self,
        state: &ServerState,
        op: vigil_api_playback::Operation,
    ) -> vigil_api_playback::Call {
        vigil_api_playback::Call {
            op,
            parts: self.parts,
            principal: self.principal,
            body: self.body,
            state: state.playback.clone(),
            origin: Origin::Console,
        }
    }
}

/// A request from the console: its session (and, when it changes state or is a `POST`, the
/// CSRF header) checked, its JSON body read.
async fn console_call(
    state: &Arc<ServerState>,
    parts: Parts,
    body: Body,
    changes_state: bool,
) -> KvsResult<ConsoleCall> {
    if changes_state || parts.method == Method::POST {
        check_csrf(&parts.headers)?;
    }
    let (_, s) = session(state, &parts.headers)?;
    let body = vigil_api_common::body::read(body, state.cfg.api.max_json_body).await?;
    Ok(ConsoleCall {
        parts,
        principal: s.principal,
        body,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_queries_parse() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; vigil_console=tok-en_1; c=d"),
        );
        assert_eq!(cookie(&h).as_deref(), Some("tok-en_1"));
        h.insert(header::COOKIE, HeaderValue::from_static("vigil_console="));
        assert_eq!(cookie(&h), None);
        let q = Query::parse("stream=cam%201&start=5&x=%zz&y=a+b");
        assert_eq!(q.get("stream"), Some("cam 1"));
        assert_eq!(q.millis("start").unwrap(), 5);
        assert_eq!(q.get("x"), Some("%zz"));
        assert_eq!(q.get("y"), Some("a b"));
        assert!(q.millis("x").is_err());
        assert!(q.required("missing").is_err());
    }

    #[test]
    fn file_times_are_utc() {
        assert_eq!(file_time(0), "19700101T000000Z");
        assert_eq!(file_time(1_764_685_353_000), "20251202T142233Z");
        assert_eq!(file_time(951_782_400_000), "20000229T000000Z");
        assert_eq!(sanitize("cam/1 x"), "cam_1_x");
    }

    #[test]
    fn sessions_expire_and_end() {
        let s = Sessions::default();
        let p = Principal {
            access_key_id: "AKID".into(),
            policy: None,
        };
        let t = s.create(p.clone(), 1_000, Duration::from_secs(10)).unwrap();
        assert_eq!(t.len(), 43);
        assert_eq!(s.get(&t, 5_000).unwrap().principal, p);
        assert!(s.get(&t, 11_000).is_none(), "expired");
        let t2 = s.create(p, 1_000, Duration::from_secs(10)).unwrap();
        assert_ne!(t, t2);
        s.remove(&t2);
        assert!(s.get(&t2, 2_000).is_none(), "signed out");
        assert!(s.get("not-a-token", 2_000).is_none());
    }
}
