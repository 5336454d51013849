//! The web console's server side: its assets, sign-in sessions, and the few reads only the
//! console makes (the streams overview, a day's timeline, clip downloads).
//!
//! # Signing in without weakening the API
//!
//! The browser never sends the secret key. The sign-in page signs `POST /console/api/login`
//! with SigV4 in the browser (service `kinesisvideo`, the server's region), exactly as an AWS
//! SDK signs a request, and forgets the secret; the server verifies the signature through the
//! same [`Authenticator`](crate::Authenticator) as every API call and answers with a random
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
use serde::Serialize;
use serde_json::json;
use vigil_store::TimestampKind;

use crate::auth::{Payload, Principal};
use crate::error::{ApiError, ApiResult};
use crate::ops::Operation;
use crate::server::{ApiState, Call, Origin};

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
    fn create(&self, principal: Principal, now_ms: u64, ttl: Duration) -> ApiResult<String> {
        let mut raw = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw)
            .map_err(|_| ApiError::InternalFailure("no randomness for a session token".into()))?;
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
        crate::metrics::global()
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
        crate::metrics::global()
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
pub async fn index(State(state): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    if !state.console_cfg.enabled {
        return ApiError::UnknownOperationException(
            "The web console is switched off on this server ([console] enabled = false).".into(),
        )
        .into_response();
    }
    asset_response(vigil_console::index(), &headers)
}

/// `GET /console/{path}`: a script, style sheet or icon of the console.
pub async fn asset(State(state): State<Arc<ApiState>>, req: Request) -> Response {
    let path = req
        .uri()
        .path()
        .strip_prefix("/console/")
        .unwrap_or_default();
    match vigil_console::asset(path) {
        Some(a) if state.console_cfg.enabled => asset_response(a, req.headers()),
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
pub async fn api(State(state): State<Arc<ApiState>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    match api_call(state, req).await {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(path, error = e.aws_code(), "console: {}", e.message());
            e.into_response()
        }
    }
}

async fn api_call(state: Arc<ApiState>, req: Request) -> ApiResult<Response> {
    let rest = req
        .uri()
        .path()
        .strip_prefix("/console/api/")
        .unwrap_or_default()
        .to_owned();
    let method = req.method().clone();
    crate::metrics::global()
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
            let mut resp = crate::server::json(&json!({}));
            set_cookie(&mut resp, &clear_cookie(&state));
            Ok(resp)
        }
        (Method::GET, "session") => {
            let (_, s) = session(&state, req.headers())?;
            Ok(crate::server::json(&json!({
                "AccessKeyId": s.principal.access_key_id,
                "ExpiresAt": s.expires_ms as f64 / 1000.0,
                "Region": state.cfg.region,
            })))
        }
        (Method::GET, "streams") => {
            let (parts, body) = req.into_parts();
            let call = console_call(&state, Operation::ListStreams, parts, body, false).await?;
            crate::server::blocking_call(call, overview).await
        }
        (Method::GET, "timeline") => {
            let (parts, body) = req.into_parts();
            let call = console_call(&state, Operation::ListFragments, parts, body, false).await?;
            crate::server::blocking_call(call, timeline).await
        }
        (Method::GET, "clip") => {
            let (parts, body) = req.into_parts();
            let mut call = console_call(&state, Operation::GetClip, parts, body, false).await?;
            let q = Query::parse(call.parts.uri.query().unwrap_or(""));
            let stream = q.required("stream")?.to_owned();
            let start = q.millis("start")?;
            let end = q.millis("end")?;
            call.body = Bytes::from(
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
            let mut resp = crate::server::run(call).await?;
            let name = format!("{}-{}.mp4", sanitize(&stream), file_time(start));
            if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
                resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
            }
            Ok(resp)
        }
        (Method::POST, "live") => {
            let (parts, body) = req.into_parts();
            let mut call = console_call(
                &state,
                Operation::GetHLSStreamingSessionURL,
                parts,
                body,
                true,
            )
            .await?;
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
            crate::server::run(call).await
        }
        (Method::POST, op_path) if op_path.starts_with("kvs/") => {
            let op = op_path
                .strip_prefix("kvs")
                .and_then(Operation::from_path)
                .filter(|op| !matches!(op, Operation::PutMedia | Operation::GetMedia))
                .ok_or_else(|| {
                    ApiError::UnknownOperationException(format!(
                        "No operation the console may call at /console/api/{op_path}."
                    ))
                })?;
            let (parts, body) = req.into_parts();
            let call = console_call(&state, op, parts, body, true).await?;
            crate::metrics::global().api_requests.inc(&[op.name()]);
            crate::server::run(call).await
        }
        (m, p) => Err(ApiError::UnknownOperationException(format!(
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

fn info(state: &ApiState) -> Response {
    crate::server::json(&json!({
        "Region": state.cfg.region,
        "Service": vigil_auth::sigv4::SERVICE,
        "Version": env!("CARGO_PKG_VERSION"),
        "AuthenticationRequired": state.auth.requires_signature(),
        "SessionHours": state.console_cfg.session_ttl.as_secs_f64() / 3600.0,
    }))
}

/// `POST /console/api/login`, signed with SigV4 by the browser (or any client).
async fn login(state: Arc<ApiState>, req: Request) -> ApiResult<Response> {
    let (parts, body) = req.into_parts();
    state
        .auth
        .precheck(&parts, crate::auth::Service::KinesisVideo)?;
    let bytes = crate::server::read_json_body(body, 4096).await?;
    let principal = state.auth.authenticate(
        &parts,
        Payload::Body(&bytes),
        crate::auth::Service::KinesisVideo,
    )?;
    let now = state.store.clock().now_ms();
    let token =
        state
            .console_sessions
            .create(principal.clone(), now, state.console_cfg.session_ttl)?;
    crate::metrics::global().console_logins.inc(&[]);
    tracing::info!(key = principal.access_key_id, "console: signed in");
    let ttl_s = state.console_cfg.session_ttl.as_secs();
    let mut resp = crate::server::json(&json!({
        "AccessKeyId": principal.access_key_id,
        "ExpiresAt": (now as f64 / 1000.0) + ttl_s as f64,
        "Region": state.cfg.region,
    }));
    let secure = if state.cfg.tls { "; Secure" } else { "" };
    set_cookie(
        &mut resp,
        &format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={ttl_s}{secure}"),
    );
    Ok(resp)
}

fn clear_cookie(state: &ApiState) -> String {
    let secure = if state.cfg.tls { "; Secure" } else { "" };
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

fn check_csrf(headers: &HeaderMap) -> ApiResult<()> {
    if headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()) == Some("1") {
        Ok(())
    } else {
        Err(ApiError::AccessDeniedException(format!(
            "Console requests that change state must carry the header {CSRF_HEADER}: 1."
        )))
    }
}

/// The session a request belongs to.
fn session(state: &ApiState, headers: &HeaderMap) -> ApiResult<(String, Session)> {
    let token = cookie(headers).ok_or_else(|| {
        ApiError::MissingAuthenticationTokenException("Sign in to the console first.".into())
    })?;
    let now = state.store.clock().now_ms();
    let s = state.console_sessions.get(&token, now).ok_or_else(|| {
        ApiError::UnrecognizedClientException(
            "The console session has expired or was ended; sign in again.".into(),
        )
    })?;
    if !state.auth.is_current(&s.principal) {
        state.console_sessions.remove(&token);
        return Err(ApiError::UnrecognizedClientException(
            "The access key of this console session was revoked or deleted.".into(),
        ));
    }
    Ok((token, s))
}

/// A call from the console: the session's principal, the request's JSON body.
async fn console_call(
    state: &Arc<ApiState>,
    op: Operation,
    parts: Parts,
    body: Body,
    changes_state: bool,
) -> ApiResult<Call> {
    if changes_state || parts.method == Method::POST {
        check_csrf(&parts.headers)?;
    }
    let (_, s) = session(state, &parts.headers)?;
    let body = crate::server::read_json_body(body, state.cfg.max_json_body).await?;
    Ok(Call {
        op,
        parts,
        principal: s.principal,
        body,
        state: state.clone(),
        origin: Origin::Console,
    })
}

// ---- console-only reads ----

/// A parsed query string.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: &str) -> Self {
        Self(
            q.split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (decode(k), decode(v))
                })
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn required(&self, key: &str) -> ApiResult<&str> {
        self.get(key)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::invalid(format!("The query parameter {key} is required.")))
    }

    /// Milliseconds since the epoch.
    fn millis(&self, key: &str) -> ApiResult<u64> {
        let v = self.required(key)?;
        v.parse().map_err(|_| {
            ApiError::invalid(format!(
                "The query parameter {key} must be milliseconds since the epoch, not {v:?}."
            ))
        })
    }
}

/// Percent-decoding (`+` is a space).
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(v) = hex {
                    out.push(v);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `20261202T142233Z` for a clip's file name.
fn file_time(ms: u64) -> String {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// How far back the ingest rate looks.
const RATE_WINDOW_MS: u64 = 10_000;

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct StreamSummary {
    stream_name: String,
    #[serde(rename = "StreamARN")]
    stream_arn: String,
    status: &'static str,
    media_type: Option<String>,
    device_name: Option<String>,
    data_retention_in_hours: u32,
    creation_time: f64,
    version: String,
    tags: std::collections::BTreeMap<String, String>,
    /// Bytes stored.
    storage_bytes: u64,
    /// Fragments stored.
    fragments: u64,
    /// Payload bytes per second over the last [`RATE_WINDOW_MS`].
    ingest_bytes_per_second: f64,
    /// Fragments per minute over the same window.
    ingest_fragments_per_minute: f64,
    last_fragment: Option<LastFragment>,
    tracks: Vec<TrackSummary>,
    low_latency_hls: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct LastFragment {
    fragment_number: String,
    server_timestamp: f64,
    producer_timestamp: f64,
    duration_ms: u32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct TrackSummary {
    number: u64,
    kind: &'static str,
    /// RFC 6381 (`avc1.64001f`, `hvc1.1.6.L93.B0`, `mp4a.40.2`).
    codec: String,
    /// `H.264`, `H.265`, `AAC`, ...
    codec_name: &'static str,
    width: Option<u32>,
    height: Option<u32>,
}

/// `GET /console/api/streams`: every stream the key may describe, with what the list shows.
fn overview(call: &Call) -> ApiResult<Response> {
    call.authorize(None)?;
    let state = &call.state;
    let store = &state.store;
    let now = store.clock().now_ms();
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list_streams("", after.as_deref(), 500)?;
        let Some(last) = page.last() else { break };
        after = Some(last.name.clone());
        for rec in page {
            if state
                .auth
                .authorize(&call.principal, Operation::DescribeStream, Some(&rec.name))
                .is_err()
            {
                continue;
            }
            out.push(summary(state, &rec, now)?);
        }
    }
    Ok(crate::server::json(
        &json!({ "Streams": out, "Now": now as f64 / 1000.0 }),
    ))
}

fn summary(
    state: &ApiState,
    rec: &vigil_store::StreamRecord,
    now: u64,
) -> ApiResult<StreamSummary> {
    let store = &state.store;
    let usage = store.usage(rec.id)?;
    let last = store.index().last_fragment(rec.id)?;
    let recent = store.list_fragments(
        rec.id,
        TimestampKind::Server,
        now.saturating_sub(RATE_WINDOW_MS),
        now,
        None,
        10_000,
    )?;
    let recent_bytes: u64 = recent.fragments.iter().map(|f| u64::from(f.size)).sum();
    let window_s = RATE_WINDOW_MS as f64 / 1000.0;
    let tracks = match &last {
        Some(f) => track_summaries(state, f).unwrap_or_default(),
        None => Vec::new(),
    };
    let low_latency_hls = crate::media::playback::llhls::session_part_target(
        &state.cfg.low_latency_hls,
        rec,
        crate::media::playback::session::Mode::Live,
        crate::media::playback::session::Container::Fmp4,
        true,
    )
    .is_some();
    Ok(StreamSummary {
        stream_name: rec.name.clone(),
        stream_arn: crate::model::stream_arn(&state.arn_context(), rec),
        status: "ACTIVE",
        media_type: rec.media_type.clone(),
        device_name: rec.device_name.clone(),
        data_retention_in_hours: rec.data_retention_hours,
        creation_time: rec.creation_time_ms as f64 / 1000.0,
        version: rec.version.clone(),
        tags: rec.tags.clone(),
        storage_bytes: usage.bytes,
        fragments: usage.fragments,
        ingest_bytes_per_second: recent_bytes as f64 / window_s,
        ingest_fragments_per_minute: recent.fragments.len() as f64 * 60.0 / window_s,
        last_fragment: last.map(|f| LastFragment {
            fragment_number: f.number.to_string(),
            server_timestamp: f.server_ts_ms as f64 / 1000.0,
            producer_timestamp: f.producer_ts_ms as f64 / 1000.0,
            duration_ms: f.duration_ms,
        }),
        tracks,
        low_latency_hls,
    })
}

fn track_summaries(
    state: &ApiState,
    f: &vigil_store::FragmentMeta,
) -> ApiResult<Vec<TrackSummary>> {
    let header = state.store.header(f.stream, f.header_id)?;
    let (tracks, _) = vigil_media::sample::from_fragments(&header, &[])
        .map_err(|e| ApiError::InternalFailure(format!("track header: {e}")))?;
    Ok(tracks
        .iter()
        .map(|t| {
            let dims = t.codec.dimensions();
            TrackSummary {
                number: t.number,
                kind: if t.is_video() { "video" } else { "audio" },
                codec: t.codec.rfc6381(),
                codec_name: t.codec.display_name(),
                width: dims.map(|d| d.0),
                height: dims.map(|d| d.1),
            }
        })
        .collect())
}

/// Adds a fragment (`start` ms, `duration` ms, `size` bytes), in start order, to `spans`: it
/// extends the last span if it starts at most `gap` after that span's end, else starts a new one.
fn add_to_spans(spans: &mut Vec<Span>, start: u64, duration: u64, size: u64, gap: u64) {
    let end = start.saturating_add(duration.max(1));
    match spans.last_mut() {
        Some(last) if start <= last.end.saturating_add(gap) => {
            last.end = last.end.max(end);
            last.fragments += 1;
            last.bytes += size;
        }
        _ => spans.push(Span {
            start,
            end,
            fragments: 1,
            bytes: size,
        }),
    }
}

/// The most fragments one timeline answer reads.
const TIMELINE_MAX_FRAGMENTS: usize = 200_000;
/// Fragments further apart than this (end to start) are separate recordings by default.
const DEFAULT_GAP_MS: u64 = 2_500;

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Span {
    start: u64,
    end: u64,
    fragments: u64,
    bytes: u64,
}

/// `GET /console/api/timeline?stream=NAME&start=MS&end=MS[&gap=MS]`: the recordings of a
/// stream in a range, by producer timestamp: fragments closer than `gap` merged into spans
/// (milliseconds since the epoch).
fn timeline(call: &Call) -> ApiResult<Response> {
    let q = Query::parse(call.parts.uri.query().unwrap_or(""));
    let name = q.required("stream")?;
    let rec = call.stream(Some(name), None)?;
    let start = q.millis("start")?;
    let end = q.millis("end")?;
    if end < start {
        return Err(ApiError::invalid("end must not be before start."));
    }
    let gap = match q.get("gap") {
        Some(_) => q.millis("gap")?,
        None => DEFAULT_GAP_MS,
    };
    let store = &call.state.store;
    // A fragment that began before the range and runs into it counts: look back one
    // fragment.
    let mut spans: Vec<Span> = Vec::new();
    let mut read = 0usize;
    let mut cursor = None;
    let first = store
        .index()
        .fragment_at_or_before(rec.id, TimestampKind::Producer, start)?
        .filter(|f| f.producer_ts_ms.saturating_add(u64::from(f.duration_ms)) > start);
    let mut push = |f: &vigil_store::FragmentMeta| {
        add_to_spans(
            &mut spans,
            f.producer_ts_ms,
            u64::from(f.duration_ms),
            u64::from(f.size),
            gap,
        );
    };
    if let Some(f) = &first {
        push(f);
    }
    let mut truncated = false;
    loop {
        let page =
            store.list_fragments(rec.id, TimestampKind::Producer, start, end, cursor, 1000)?;
        for f in &page.fragments {
            if first.as_ref().is_some_and(|x| x.number == f.number) {
                continue;
            }
            push(f);
        }
        read += page.fragments.len();
        match page.next {
            Some(c) if read < TIMELINE_MAX_FRAGMENTS => cursor = Some(c),
            Some(_) => {
                truncated = true;
                break;
            }
            None => break,
        }
    }
    Ok(crate::server::json(&json!({
        "StreamName": rec.name,
        "Start": start,
        "End": end,
        "Spans": spans,
        "Truncated": truncated,
    })))
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
    fn fragments_merge_into_spans_across_small_gaps() {
        let mut spans = Vec::new();
        for (start, dur) in [
            (1_000, 2_000),
            (3_000, 2_000),
            (6_000, 1_000),
            (20_000, 2_000),
        ] {
            add_to_spans(&mut spans, start, dur, 10, 2_500);
        }
        // A fragment with no duration still covers a millisecond.
        add_to_spans(&mut spans, 30_000, 0, 1, 2_500);
        let got: Vec<(u64, u64, u64, u64)> = spans
            .iter()
            .map(|s| (s.start, s.end, s.fragments, s.bytes))
            .collect();
        assert_eq!(
            got,
            vec![
                (1_000, 7_000, 3, 30),
                (20_000, 22_000, 1, 10),
                (30_000, 30_001, 1, 1)
            ]
        );
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
