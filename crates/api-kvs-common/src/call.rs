//! One call of a KVS operation, and what every handler asks of it: its input, whether the
//! caller may do it, and the stream it names.
//!
//! Each KVS service crate has its own operation enum and state; `Call<O, S>` is generic over
//! both (each crate names its own `type Call = vigil_api_kvs_common::Call<Operation, State>`),
//! so that stream resolution and authorisation are written once.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use vigil_api_common::{ApiConfig, Authenticator, Origin, Principal};
use vigil_store::{Store, StreamRecord, StreamRef};

use crate::error::{KvsError, KvsResult};
use crate::model::{ArnContext, parse_arn};

/// A KVS operation: its AWS name (as in IAM actions and key policies).
pub trait Operation: Copy + std::fmt::Debug + Send + Sync + 'static {
    /// The AWS name (`PutMedia`).
    fn name(self) -> &'static str;
}

/// What a KVS call needs of its service's state.
pub trait Context: Send + Sync + 'static {
    /// The fragment store.
    fn store(&self) -> &Store;
    /// The listener's settings.
    fn config(&self) -> &ApiConfig;
    /// Authentication and key policies.
    fn auth(&self) -> &dyn Authenticator;
}

/// One API call: the operation, the request's head, who sent it and (for JSON operations)
/// the body.
#[derive(Debug)]
pub struct Call<O, S> {
    /// The operation.
    pub op: O,
    /// The request line and headers.
    pub parts: Parts,
    /// Who signed it.
    pub principal: Principal,
    /// The JSON body (empty for PutMedia).
    pub body: Bytes,
    /// The service's state.
    pub state: Arc<S>,
    /// Where the call came from.
    pub origin: Origin,
}

impl<O: Operation, S: Context> Call<O, S> {
    /// Parses the body as the operation's input (an empty body is `{}`).
    pub fn input<T: DeserializeOwned>(&self) -> KvsResult<T> {
        let body: &[u8] = if self.body.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &self.body
        };
        serde_json::from_slice(body).map_err(|e| {
            KvsError::SerializationException(format!(
                "The request body is not valid input for {}: {e}",
                self.op.name()
            ))
        })
    }

    /// Checks that the caller may call this operation on `stream` (or at all).
    pub fn authorize(&self, stream: Option<&str>) -> KvsResult<()> {
        self.authorize_as(self.op, stream)
    }

    /// Checks that the caller may call `op` on `stream` (or at all): for reads that stand
    /// for another operation.
    pub fn authorize_as<P: Operation>(&self, op: P, stream: Option<&str>) -> KvsResult<()> {
        Ok(self
            .state
            .auth()
            .authorize_action(&self.principal, op.name(), stream)?)
    }

    /// The stream a request names by `StreamName` or `StreamARN` (one is required; if both
    /// are given they must agree), after checking that the caller may use it.
    pub fn stream(&self, name: Option<&str>, arn: Option<&str>) -> KvsResult<StreamRecord> {
        self.authorize_requested(name, arn)?;
        let rec = resolve_stream(self.state.store(), self.state.config(), name, arn, false)?;
        self.authorize(Some(&rec.name))?;
        Ok(rec)
    }

    /// Authorises the stream name a request asks for, before it is looked up: a key limited
    /// to some streams must not learn whether others exist (404 against 401).
    pub fn authorize_requested(&self, name: Option<&str>, arn: Option<&str>) -> KvsResult<()> {
        match (name.filter(|n| !n.is_empty()), arn.and_then(parse_arn)) {
            (Some(n), _) => self.authorize(Some(n)),
            (None, Some(p)) => self.authorize(Some(p.name)),
            (None, None) => Ok(()),
        }
    }

    /// The URL clients reach this server at: the configured public URL, or the scheme and
    /// `Host` of this request.
    pub fn endpoint(&self) -> String {
        self.state.config().endpoint(&self.parts)
    }

    /// Region and account, for ARNs.
    pub fn arn_context(&self) -> ArnContext {
        arn_context(self.state.config())
    }
}

/// Region and account of a server, for ARNs.
pub fn arn_context(cfg: &ApiConfig) -> ArnContext {
    ArnContext {
        region: cfg.region.clone(),
        account_id: cfg.account_id.clone(),
    }
}

/// Finds a stream by name or ARN. `arn_format_error`: a malformed ARN is
/// `InvalidResourceFormatException` (tagging) rather than `InvalidArgumentException`.
pub fn resolve_stream(
    store: &Store,
    cfg: &ApiConfig,
    name: Option<&str>,
    arn: Option<&str>,
    arn_format_error: bool,
) -> KvsResult<StreamRecord> {
    let name = name.filter(|n| !n.is_empty());
    let arn = arn.filter(|a| !a.is_empty());
    let by_arn = match arn {
        None => None,
        Some(arn) => {
            let bad = || {
                let msg = format!("StreamARN {arn:?} is not a Kinesis Video stream ARN.");
                if arn_format_error {
                    KvsError::InvalidResourceFormatException(msg)
                } else {
                    KvsError::invalid(msg)
                }
            };
            let parsed = parse_arn(arn).ok_or_else(bad)?;
            if parsed.kind != "stream" {
                return Err(bad());
            }
            let rec = store.stream(StreamRef::Name(parsed.name))?;
            if parsed.creation_ms != rec.creation_time_ms
                || parsed.region != cfg.region
                || parsed.account_id != cfg.account_id
            {
                // Same name, another stream (deleted and re-created), or another server.
                return Err(KvsError::stream_not_found());
            }
            Some(rec)
        }
    };
    match (name, by_arn) {
        (None, None) => Err(KvsError::invalid(
            "Either StreamName or StreamARN must be given.",
        )),
        (None, Some(rec)) => Ok(rec),
        (Some(name), None) => {
            crate::validate::stream_name("StreamName", name)?;
            Ok(store.stream(StreamRef::Name(name))?)
        }
        (Some(name), Some(rec)) if rec.name == name => Ok(rec),
        (Some(_), Some(_)) => Err(KvsError::invalid(
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
        Err(e) => KvsError::InternalFailure(format!("encoding the response: {e}")).into_response(),
    }
}

/// The `Content-Type` of GetMedia and GetMediaForFragmentList bodies.
pub const MEDIA_CONTENT_TYPE: &str = "video/webm";

/// A 200 with a streaming media body (GetMedia, GetMediaForFragmentList).
pub fn media_response(body: axum::body::Body) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(MEDIA_CONTENT_TYPE),
        )],
        body,
    )
        .into_response()
}

/// The operation a request names by its path (`from_path`), which must be a `POST`
/// (`UnknownOperationException`, 404, otherwise, as KVS answers), counted in
/// `vigil_api_requests_total`.
pub fn route<O: Operation>(
    req: &axum::extract::Request,
    from_path: impl Fn(&str) -> Option<O>,
) -> KvsResult<O> {
    let op = from_path(req.uri().path()).ok_or_else(|| {
        KvsError::UnknownOperationException(format!(
            "No Kinesis Video Streams operation at {}.",
            req.uri().path()
        ))
    })?;
    if req.method() != axum::http::Method::POST {
        return Err(KvsError::UnknownOperationException(format!(
            "{} takes POST, not {}.",
            op.name(),
            req.method()
        )));
    }
    vigil_api_common::metrics::global()
        .api_requests
        .inc(&[op.name()]);
    Ok(op)
}

/// The call of a JSON operation: the signature's head checked before the body is read (at
/// most [`ApiConfig::max_json_body`] bytes), then the signature over the body.
pub async fn json_call<O: Operation, S: Context>(
    state: Arc<S>,
    op: O,
    parts: Parts,
    body: axum::body::Body,
) -> KvsResult<Call<O, S>> {
    let auth = state.auth();
    auth.precheck(&parts, vigil_api_common::Service::KinesisVideo)?;
    let bytes = vigil_api_common::body::read(body, state.config().max_json_body).await?;
    let principal = auth.authenticate(
        &parts,
        vigil_api_common::Payload::Body(&bytes),
        vigil_api_common::Service::KinesisVideo,
    )?;
    tracing::debug!(op = op.name(), key = principal.access_key_id, "call");
    Ok(Call {
        op,
        parts,
        principal,
        body: bytes,
        state,
        origin: Origin::Api,
    })
}

/// A request answered by `call`: its error, if any, logged with the path and sent in the KVS
/// form.
pub async fn answer(
    path: String,
    call: impl std::future::Future<Output = KvsResult<Response>>,
) -> Response {
    match call.await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::info!(path, error = e.aws_code(), "{}", e.message());
            e.into_response()
        }
    }
}

/// Runs a handler on the blocking pool: the control plane's store calls commit to the index
/// durably (an fsync) and take the store's locks, which must not stall the runtime's workers
/// (they carry every ack and every live frame).
pub async fn blocking<O: Operation, S: Context>(
    call: Call<O, S>,
    handler: fn(&Call<O, S>) -> KvsResult<Response>,
) -> KvsResult<Response> {
    tokio::task::spawn_blocking(move || handler(&call))
        .await
        .map_err(|e| KvsError::InternalFailure(format!("the handler task failed: {e}")))?
}
