//! HTTP: the router, request handling common to every operation, and the one dispatch `match`.
//!
//! Every KVS operation is a `POST` to its path ([`Operation::from_path`]) on one host:port;
//! a `POST /` with `X-Amz-Target: RekognitionService.*` goes to [`crate::rekognition`].
//! For each request: find the operation (unknown path: `UnknownOperationException`, 404); for
//! PutMedia, authenticate from the headers alone and hand the still-unread body to
//! [`crate::media::putmedia`]; for every other operation read the JSON body (at most
//! [`ApiConfig::max_json_body`] bytes), authenticate with its hash, parse it
//! (`SerializationException` if it is not the operation's JSON) and call the handler.
//! Handlers authorise the caller for the stream they resolve ([`Call::stream`]).
//! `GET /health` and `GET /metrics` (Prometheus text) answer without authentication, and so do
//! the HLS and DASH playback GETs under `/hls/v1/` and `/dash/v1/`, whose `SessionToken` is their credential
//! ([`crate::media::playback`]).

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde::Serialize;
use serde::de::DeserializeOwned;
use vigil_store::{Store, StreamRecord, StreamRef};

use crate::auth::{Authenticator, Payload, Principal, Service};
use crate::error::{ApiError, ApiResult};
use crate::model::{ArnContext, parse_arn};
use crate::ops::Operation;
use crate::{control, media};

/// Settings of the API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The region the server answers for (`us-east-1`); signatures must be scoped to it.
    pub region: String,
    /// The account id in ARNs (12 digits).
    pub account_id: String,
    /// The URL clients reach this server at (`https://vigil.example.com:4567`, no trailing
    /// slash): what GetDataEndpoint returns. `None`: derived from each request's `Host` and
    /// whether the server speaks TLS.
    pub public_url: Option<String>,
    /// Whether the listener speaks TLS (for URLs derived from `Host`).
    pub tls: bool,
    /// Largest JSON request body accepted, in bytes.
    pub max_json_body: usize,
    /// What one GetClip may hold.
    pub clip_limits: crate::media::clip::ClipLimits,
    /// Low-latency HLS ([`crate::media::playback::llhls`]).
    pub low_latency_hls: crate::media::playback::llhls::LowLatencyConfig,
}

/// How long a JSON request body may take to arrive.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The account id ARNs carry unless configured otherwise.
pub const DEFAULT_ACCOUNT_ID: &str = "000000000000";

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            account_id: DEFAULT_ACCOUNT_ID.into(),
            public_url: None,
            tls: false,
            max_json_body: 1 << 20,
            clip_limits: crate::media::clip::ClipLimits::default(),
            low_latency_hls: crate::media::playback::llhls::LowLatencyConfig::default(),
        }
    }
}

/// What handlers share.
#[derive(Debug)]
pub struct ApiState {
    /// The fragment store.
    pub store: Store,
    /// Settings.
    pub cfg: ApiConfig,
    /// Authentication.
    pub auth: Arc<dyn Authenticator>,
    /// Live sessions and their shutdown.
    pub sessions: media::Sessions,
    /// The key of playback session tokens: random per server start, so a restart ends every
    /// HLS and DASH session ([`media::playback::session`]).
    pub session_key: media::playback::session::SessionKey,
    /// The server's cameras, once the binary has set them up ([`crate::cameras`]). Weak: the
    /// cameras' client holds this state through the router, and must not keep it alive.
    pub cameras: std::sync::OnceLock<std::sync::Weak<dyn crate::cameras::CameraService>>,
    /// The web console's settings ([`crate::console`]).
    pub console_cfg: crate::console::ConsoleConfig,
    /// Signed-in web console sessions.
    pub console_sessions: crate::console::Sessions,
    /// Face collections in memory and the face engine's pool ([`crate::rekognition`]).
    pub rekognition: crate::rekognition::Rekognition,
}

impl ApiState {
    /// A state over `store`.
    pub fn new(store: Store, cfg: ApiConfig, auth: Arc<dyn Authenticator>) -> Self {
        Self {
            store,
            cfg,
            auth,
            sessions: media::Sessions::default(),
            session_key: media::playback::session::SessionKey::generate(),
            cameras: std::sync::OnceLock::new(),
            console_cfg: crate::console::ConsoleConfig::default(),
            console_sessions: crate::console::Sessions::default(),
            rekognition: crate::rekognition::Rekognition::default(),
        }
    }

    /// The same state with the web console set up as `cfg` says.
    pub fn with_console(mut self, cfg: crate::console::ConsoleConfig) -> Self {
        self.console_cfg = cfg;
        self
    }

    /// Region and account, for ARNs.
    pub fn arn_context(&self) -> ArnContext {
        ArnContext {
            region: self.cfg.region.clone(),
            account_id: self.cfg.account_id.clone(),
        }
    }
}

/// The router of the whole API: `GET /health`, every KVS operation and the web console.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/", get(crate::console::index).fallback(dispatch))
        .route("/console/api/{*rest}", any(crate::console::api))
        .route("/console/{*path}", get(crate::console::asset))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        // Playback GETs: the session token in the query is the credential (no SigV4).
        .route(
            "/hls/v1/getHLSMasterPlaylist.m3u8",
            get(media::playback::hls::master_playlist),
        )
        .route(
            "/hls/v1/getHLSMediaPlaylist.m3u8",
            get(media::playback::hls::media_playlist),
        )
        .route(
            "/hls/v1/getMP4InitFragment.mp4",
            get(media::playback::hls::mp4_init_fragment),
        )
        .route(
            "/hls/v1/getMP4MediaFragment.mp4",
            get(media::playback::hls::mp4_media_fragment),
        )
        .route(
            "/hls/v1/getMP4MediaPart.mp4",
            get(media::playback::llhls::mp4_media_part),
        )
        .route(
            "/hls/v1/getTSFragment.ts",
            get(media::playback::hls::ts_fragment),
        )
        .route(
            "/dash/v1/getDASHManifest.mpd",
            get(media::playback::dash::manifest),
        )
        .route(
            "/dash/v1/getMP4InitFragment.mp4",
            get(media::playback::dash::mp4_init_fragment),
        )
        .route(
            "/dash/v1/getMP4MediaFragment.mp4",
            get(media::playback::dash::mp4_media_fragment),
        )
        .fallback(dispatch)
        .with_state(state)
}

/// Body of `GET /health`.
#[derive(Debug, Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
}

async fn health() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

async fn metrics() -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        crate::metrics::global().render_prometheus(),
    )
        .into_response()
}

/// One API call: the operation, the request's head, who sent it and (for JSON operations)
/// the body.
#[derive(Debug)]
pub struct Call {
    /// The operation.
    pub op: Operation,
    /// The request line and headers.
    pub parts: Parts,
    /// Who signed it.
    pub principal: Principal,
    /// The JSON body (empty for PutMedia).
    pub body: Bytes,
    /// The server.
    pub state: Arc<ApiState>,
    /// Where the call came from.
    pub origin: Origin,
}

/// Where a call came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// An API client, signed with SigV4.
    Api,
    /// The web console, on a signed-in session ([`crate::console`]): the same handlers and
    /// policy; the live view asks for low-latency HLS.
    Console,
}

impl Call {
    /// Parses the body as the operation's input (an empty body is `{}`).
    pub fn input<T: DeserializeOwned>(&self) -> ApiResult<T> {
        let body: &[u8] = if self.body.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &self.body
        };
        serde_json::from_slice(body).map_err(|e| {
            ApiError::SerializationException(format!(
                "The request body is not valid input for {}: {e}",
                self.op.name()
            ))
        })
    }

    /// Checks that the caller may call this operation on `stream` (or at all).
    pub fn authorize(&self, stream: Option<&str>) -> ApiResult<()> {
        self.state.auth.authorize(&self.principal, self.op, stream)
    }

    /// The stream a request names by `StreamName` or `StreamARN` (one is required; if both
    /// are given they must agree), after checking that the caller may use it.
    pub fn stream(&self, name: Option<&str>, arn: Option<&str>) -> ApiResult<StreamRecord> {
        self.authorize_requested(name, arn)?;
        let rec = resolve_stream(&self.state, name, arn, false)?;
        self.authorize(Some(&rec.name))?;
        Ok(rec)
    }

    /// Authorises the stream name a request asks for, before it is looked up: a key limited
    /// to some streams must not learn whether others exist (404 against 401).
    pub fn authorize_requested(&self, name: Option<&str>, arn: Option<&str>) -> ApiResult<()> {
        match (name.filter(|n| !n.is_empty()), arn.and_then(parse_arn)) {
            (Some(n), _) => self.authorize(Some(n)),
            (None, Some(p)) => self.authorize(Some(p.name)),
            (None, None) => Ok(()),
        }
    }

    /// The URL clients reach this server at: the configured public URL, or the scheme and
    /// `Host` of this request.
    pub fn endpoint(&self) -> String {
        if let Some(url) = &self.state.cfg.public_url {
            return url.trim_end_matches('/').to_owned();
        }
        let scheme = if self.state.cfg.tls { "https" } else { "http" };
        let host = self
            .parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .or_else(|| self.parts.uri.authority().map(|a| a.to_string()))
            .unwrap_or_else(|| "localhost".into());
        format!("{scheme}://{host}")
    }
}

/// Finds a stream by name or ARN. `arn_format_error`: a malformed ARN is
/// `InvalidResourceFormatException` (tagging) rather than `InvalidArgumentException`.
pub fn resolve_stream(
    state: &ApiState,
    name: Option<&str>,
    arn: Option<&str>,
    arn_format_error: bool,
) -> ApiResult<StreamRecord> {
    let name = name.filter(|n| !n.is_empty());
    let arn = arn.filter(|a| !a.is_empty());
    let by_arn = match arn {
        None => None,
        Some(arn) => {
            let bad = || {
                let msg = format!("StreamARN {arn:?} is not a Kinesis Video stream ARN.");
                if arn_format_error {
                    ApiError::InvalidResourceFormatException(msg)
                } else {
                    ApiError::invalid(msg)
                }
            };
            let parsed = parse_arn(arn).ok_or_else(bad)?;
            if parsed.kind != "stream" {
                return Err(bad());
            }
            let rec = state.store.stream(StreamRef::Name(parsed.name))?;
            if parsed.creation_ms != rec.creation_time_ms
                || parsed.region != state.cfg.region
                || parsed.account_id != state.cfg.account_id
            {
                // Same name, another stream (deleted and re-created), or another server.
                return Err(ApiError::stream_not_found());
            }
            Some(rec)
        }
    };
    match (name, by_arn) {
        (None, None) => Err(ApiError::invalid(
            "Either StreamName or StreamARN must be given.",
        )),
        (None, Some(rec)) => Ok(rec),
        (Some(name), None) => {
            crate::validate::stream_name("StreamName", name)?;
            Ok(state.store.stream(StreamRef::Name(name))?)
        }
        (Some(name), Some(rec)) if rec.name == name => Ok(rec),
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "StreamName and StreamARN name different streams.",
        )),
    }
}

/// Serialises a handler's output as the 200 response.
pub fn json<T: Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        Err(e) => ApiError::InternalFailure(format!("encoding the response: {e}")).into_response(),
    }
}

async fn dispatch(State(state): State<Arc<ApiState>>, req: Request) -> Response {
    let request_id = request_id();
    let path = req.uri().path().to_owned();
    let mut resp = if crate::rekognition::is_rekognition(req.method(), &path, req.headers()) {
        crate::rekognition::handle(state, req).await
    } else {
        match call(state, req).await {
            Ok(resp) => resp,
            Err(e) => {
                tracing::info!(path, error = e.aws_code(), "{}", e.message());
                e.into_response()
            }
        }
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-amzn-RequestId", v.clone());
        resp.headers_mut().insert("x-amz-request-id", v);
    }
    resp
}

async fn call(state: Arc<ApiState>, req: Request) -> ApiResult<Response> {
    let op = Operation::from_path(req.uri().path()).ok_or_else(|| {
        ApiError::UnknownOperationException(format!(
            "No Kinesis Video Streams operation at {}.",
            req.uri().path()
        ))
    })?;
    if req.method() != Method::POST {
        return Err(ApiError::UnknownOperationException(format!(
            "{} takes POST, not {}.",
            op.name(),
            req.method()
        )));
    }
    crate::metrics::global().api_requests.inc(&[op.name()]);
    let (parts, body) = req.into_parts();
    if op.streams_request_body() {
        let principal =
            state
                .auth
                .authenticate(&parts, Payload::Streaming, Service::KinesisVideo)?;
        let call = Call {
            op,
            parts,
            principal,
            body: Bytes::new(),
            state,
            origin: Origin::Api,
        };
        return media::put_media(call, body).await;
    }
    state.auth.precheck(&parts, Service::KinesisVideo)?;
    let bytes = read_json_body(body, state.cfg.max_json_body).await?;
    let principal =
        state
            .auth
            .authenticate(&parts, Payload::Body(&bytes), Service::KinesisVideo)?;
    let call = Call {
        op,
        parts,
        principal,
        body: bytes,
        state,
        origin: Origin::Api,
    };
    tracing::debug!(op = op.name(), key = call.principal.access_key_id, "call");
    run(call).await
}

/// Runs an authenticated JSON call: the one dispatch `match`.
pub(crate) async fn run(call: Call) -> ApiResult<Response> {
    let op = call.op;
    match op {
        Operation::CreateStream => blocking(call, control::create_stream).await,
        Operation::DescribeStream => blocking(call, control::describe_stream).await,
        Operation::ListStreams => blocking(call, control::list_streams).await,
        Operation::UpdateStream => blocking(call, control::update_stream).await,
        Operation::DeleteStream => blocking(call, control::delete_stream).await,
        Operation::UpdateDataRetention => blocking(call, control::update_data_retention).await,
        Operation::GetDataEndpoint => blocking(call, control::get_data_endpoint).await,
        Operation::TagStream => blocking(call, control::tag_stream).await,
        Operation::UntagStream => blocking(call, control::untag_stream).await,
        Operation::ListTagsForStream => blocking(call, control::list_tags_for_stream).await,
        Operation::TagResource => blocking(call, control::tag_resource).await,
        Operation::UntagResource => blocking(call, control::untag_resource).await,
        Operation::ListTagsForResource => blocking(call, control::list_tags_for_resource).await,
        Operation::DescribeImageGenerationConfiguration => {
            blocking(call, control::describe_image_generation_configuration).await
        }
        Operation::UpdateImageGenerationConfiguration => {
            blocking(call, control::update_image_generation_configuration).await
        }
        Operation::DescribeNotificationConfiguration => {
            blocking(call, control::describe_notification_configuration).await
        }
        Operation::UpdateNotificationConfiguration => {
            blocking(call, control::update_notification_configuration).await
        }
        Operation::DescribeStreamStorageConfiguration => {
            blocking(call, control::describe_stream_storage_configuration).await
        }
        Operation::UpdateStreamStorageConfiguration => {
            blocking(call, control::update_stream_storage_configuration).await
        }
        Operation::GetMedia => media::get_media(call).await,
        Operation::ListFragments => blocking(call, media::list_fragments).await,
        Operation::GetMediaForFragmentList => media::get_media_for_fragment_list(call).await,
        Operation::PutMedia => Err(ApiError::InternalFailure(
            "PutMedia reached the JSON path".into(),
        )),
        // WebRTC signaling and storage and the IoT edge agent are out of Vigil's scope
        // (docs/compatibility.md).
        Operation::GetClip => media::get_clip(call).await,
        Operation::GetHLSStreamingSessionURL => {
            blocking(call, media::playback::hls::get_hls_streaming_session_url).await
        }
        Operation::GetDASHStreamingSessionURL => {
            blocking(call, media::playback::dash::get_dash_streaming_session_url).await
        }
        Operation::GetImages => media::get_images(call).await,
        Operation::DescribeMediaStorageConfiguration
        | Operation::UpdateMediaStorageConfiguration
        | Operation::DescribeMappedResourceConfiguration
        | Operation::StartEdgeConfigurationUpdate
        | Operation::DescribeEdgeConfiguration
        | Operation::DeleteEdgeConfiguration
        | Operation::ListEdgeAgentConfigurations
        | Operation::CreateSignalingChannel
        | Operation::DescribeSignalingChannel
        | Operation::ListSignalingChannels
        | Operation::UpdateSignalingChannel
        | Operation::DeleteSignalingChannel
        | Operation::GetSignalingChannelEndpoint
        | Operation::GetIceServerConfig
        | Operation::SendAlexaOfferToMaster
        | Operation::JoinStorageSession
        | Operation::JoinStorageSessionAsViewer => Err(ApiError::NotImplemented(format!(
            "Vigil does not implement {} (see docs/compatibility.md).",
            op.name()
        ))),
        Operation::ListCameras => crate::cameras::list_cameras(call),
        Operation::PutCamera => crate::cameras::put_camera(call).await,
        Operation::DeleteCamera => crate::cameras::delete_camera(call).await,
    }
}

/// Runs a handler on the blocking pool: the control plane's store calls commit to the index
/// durably (an fsync) and take the store's locks, which must not stall the runtime's workers
/// (they carry every ack and every live frame).
async fn blocking(call: Call, handler: fn(&Call) -> ApiResult<Response>) -> ApiResult<Response> {
    blocking_call(call, handler).await
}

/// [`blocking`], for the console's own handlers.
pub(crate) async fn blocking_call(
    call: Call,
    handler: fn(&Call) -> ApiResult<Response>,
) -> ApiResult<Response> {
    tokio::task::spawn_blocking(move || handler(&call))
        .await
        .map_err(|e| ApiError::InternalFailure(format!("the handler task failed: {e}")))?
}

/// Reads a JSON body of at most `limit` bytes, within [`BODY_TIMEOUT`].
pub(crate) async fn read_json_body(body: Body, limit: usize) -> ApiResult<Bytes> {
    tokio::time::timeout(BODY_TIMEOUT, read_body(body, limit))
        .await
        .map_err(|_| {
            ApiError::SerializationException(format!(
                "The request body did not arrive within {} s.",
                BODY_TIMEOUT.as_secs()
            ))
        })?
}

/// Reads a JSON body of at most `limit` bytes.
async fn read_body(body: Body, limit: usize) -> ApiResult<Bytes> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        ApiError::SerializationException(format!(
            "The request body could not be read (at most {limit} bytes): {e}"
        ))
    })
}

/// A request id: 32 random hex digits in the UUID layout.
fn request_id() -> String {
    let mut b = [0u8; 16];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).is_err() {
        return "00000000-0000-0000-0000-000000000000".into();
    }
    crate::rekognition::wire::uuid(u128::from_be_bytes(b))
}
