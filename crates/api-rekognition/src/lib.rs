//! The Rekognition face-collection API: collections of faces, indexed from images and
//! searched by face or by image, and face detection and comparison, as Amazon Rekognition
//! answers them (`RekognitionService`, API version 2016-06-27), so that the AWS SDKs' and
//! CLI's Rekognition clients work against Vigil with `--endpoint-url`.
//!
//! # Wire
//!
//! AWS JSON 1.1: `POST /` with `X-Amz-Target: RekognitionService.<Operation>` and
//! `Content-Type: application/x-amz-json-1.1`, signed with SigV4 for the service
//! `rekognition` in the server's region. Responses are `application/x-amz-json-1.1`; errors
//! are `{"__type", "Message"}` with `x-amzn-ErrorType` ([`error`]). The router sends a request
//! here when, and only when, it is a `POST /` carrying such a target ([`is_rekognition`]):
//! `GET /` and everything else stay with the rest of the server.
//!
//! Per request: the operation from the target (unknown: `UnknownOperationException`), the
//! signature checked before the body is read and again over it (at most
//! [`MAX_BODY_BYTES`]: two 5 MB images in base64 with room to spare), the caller authorised
//! for the action `rekognition:<Operation>` ([`vigil_auth::policy`]), the body parsed, and
//! the one dispatch `match` ([`handlers`]).
//!
//! # Where things are
//!
//! - [`handlers`]: one function per operation.
//! - [`wire`]: input shapes, validation (the service model's patterns, lengths and ranges),
//!   and the JSON of faces.
//! - [`collections`]: each collection's face index in memory, filled from the store.
//! - [`engine`]: the face engine (`vigil-faces`) on a bounded blocking pool.
//! - [`error`]: [`RekognitionError`], variants named after Rekognition's exceptions.
//!
//! - [`metrics`]: what the face API counts.
//!
//! Collections belong to the server (its account), like streams: they are not per region,
//! and their ARNs carry the configured region and account id.

pub use vigil_analysis::collections;
pub mod engine;
pub mod error;
pub mod handlers;
pub mod metrics;
pub mod processors;
pub mod results;
pub mod wire;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;
use vigil_api_common::front::{Api, BoxFuture};
use vigil_api_common::{ApiConfig, Authenticator, Payload, Principal, Service};
use vigil_store::Store;

pub use error::{RekResult, RekognitionError};

/// The largest request body: CompareFaces carries two images of up to 5 MB, base64-encoded.
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// How long a request body (up to two images) may take to arrive.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The target prefix of every Rekognition operation.
pub const TARGET_PREFIX: &str = "RekognitionService.";

/// The Rekognition operations Vigil implements. One variant per AWS operation; the dispatch
/// in [`call`] is one exhaustive `match`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Op {
    CreateCollection,
    DescribeCollection,
    ListCollections,
    DeleteCollection,
    IndexFaces,
    ListFaces,
    DeleteFaces,
    SearchFaces,
    SearchFacesByImage,
    DetectFaces,
    CompareFaces,
    CreateStreamProcessor,
    StartStreamProcessor,
    StopStreamProcessor,
    DescribeStreamProcessor,
    ListStreamProcessors,
    UpdateStreamProcessor,
    DeleteStreamProcessor,
    TagResource,
    UntagResource,
    ListTagsForResource,
    ListFaceEvents,
}

impl Op {
    /// Every operation.
    pub const ALL: [Op; 22] = [
        Op::CreateCollection,
        Op::DescribeCollection,
        Op::ListCollections,
        Op::DeleteCollection,
        Op::IndexFaces,
        Op::ListFaces,
        Op::DeleteFaces,
        Op::SearchFaces,
        Op::SearchFacesByImage,
        Op::DetectFaces,
        Op::CompareFaces,
        Op::CreateStreamProcessor,
        Op::StartStreamProcessor,
        Op::StopStreamProcessor,
        Op::DescribeStreamProcessor,
        Op::ListStreamProcessors,
        Op::UpdateStreamProcessor,
        Op::DeleteStreamProcessor,
        Op::TagResource,
        Op::UntagResource,
        Op::ListTagsForResource,
        Op::ListFaceEvents,
    ];

    /// The AWS name (`IndexFaces`).
    pub fn name(self) -> &'static str {
        match self {
            Op::CreateCollection => "CreateCollection",
            Op::DescribeCollection => "DescribeCollection",
            Op::ListCollections => "ListCollections",
            Op::DeleteCollection => "DeleteCollection",
            Op::IndexFaces => "IndexFaces",
            Op::ListFaces => "ListFaces",
            Op::DeleteFaces => "DeleteFaces",
            Op::SearchFaces => "SearchFaces",
            Op::SearchFacesByImage => "SearchFacesByImage",
            Op::DetectFaces => "DetectFaces",
            Op::CompareFaces => "CompareFaces",
            Op::CreateStreamProcessor => "CreateStreamProcessor",
            Op::StartStreamProcessor => "StartStreamProcessor",
            Op::StopStreamProcessor => "StopStreamProcessor",
            Op::DescribeStreamProcessor => "DescribeStreamProcessor",
            Op::ListStreamProcessors => "ListStreamProcessors",
            Op::UpdateStreamProcessor => "UpdateStreamProcessor",
            Op::DeleteStreamProcessor => "DeleteStreamProcessor",
            Op::TagResource => "TagResource",
            Op::UntagResource => "UntagResource",
            Op::ListTagsForResource => "ListTagsForResource",
            Op::ListFaceEvents => "ListFaceEvents",
        }
    }

    /// The action key policies name (`rekognition:IndexFaces`).
    pub fn action(self) -> String {
        format!("{}{}", vigil_auth::policy::REKOGNITION_PREFIX, self.name())
    }

    /// The operation named `name`.
    pub fn from_name(name: &str) -> Option<Op> {
        Self::ALL.into_iter().find(|op| op.name() == name)
    }
}

/// Whether a request is for this API: `POST /` with a `RekognitionService.` target.
pub fn is_rekognition(req: &Request) -> bool {
    vigil_api_common::front::is_target(req, TARGET_PREFIX)
}

/// One Rekognition call: the operation, who sent it, the body and the server.
#[derive(Debug)]
pub struct RekCall {
    /// The operation.
    pub op: Op,
    /// The request head.
    pub parts: Parts,
    /// Who signed it.
    pub principal: Principal,
    /// The JSON body.
    pub body: Bytes,
    /// The service's state.
    pub state: Arc<RekognitionState>,
}

impl RekCall {
    /// Parses the body as the operation's input (an empty body is `{}`).
    pub fn input<T: DeserializeOwned>(&self) -> RekResult<T> {
        let body: &[u8] = if self.body.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &self.body
        };
        serde_json::from_slice(body).map_err(|e| {
            RekognitionError::SerializationException(format!(
                "The request body is not valid input for {}: {e}",
                self.op.name()
            ))
        })
    }

    /// Region and account, for ARNs.
    pub fn collection_arn(&self, id: &str) -> String {
        format!(
            "arn:aws:rekognition:{}:{}:collection/{id}",
            self.state.cfg.region, self.state.cfg.account_id
        )
    }
}

/// What the Rekognition handlers share.
#[derive(Debug)]
pub struct RekognitionState {
    /// The store (face collections).
    pub store: Store,
    /// The listener's settings.
    pub cfg: ApiConfig,
    /// Authentication.
    pub auth: Arc<dyn Authenticator>,
    /// Face indexes in memory.
    pub collections: Arc<collections::Collections>,
    /// The engine's pool.
    pub engine: engine::FaceEngine,
    /// Stream processors.
    pub analysis: vigil_analysis::Analysis,
}

impl RekognitionState {
    /// A state over the analysis' store, collections and processors.
    pub fn new(
        analysis: vigil_analysis::Analysis,
        collections: Arc<collections::Collections>,
        cfg: ApiConfig,
        auth: Arc<dyn Authenticator>,
    ) -> Self {
        metrics::metrics();
        metrics::register_processors(analysis.stats_registry());
        Self {
            store: analysis.store().clone(),
            cfg,
            auth,
            collections,
            engine: engine::FaceEngine::default(),
            analysis,
        }
    }
}

/// The Rekognition API on the front.
#[derive(Debug, Clone)]
pub struct Rekognition(pub Arc<RekognitionState>);

impl Api for Rekognition {
    fn claims(&self, req: &Request) -> bool {
        is_rekognition(req)
    }

    fn handle(self: Arc<Self>, req: Request) -> BoxFuture<Response> {
        Box::pin(handle(self.0.clone(), req))
    }
}

/// Handles a request [`is_rekognition`] accepted.
pub async fn handle(state: Arc<RekognitionState>, req: Request) -> Response {
    let started = Instant::now();
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let result = call(state, req).await;
    let op = target.strip_prefix(TARGET_PREFIX).unwrap_or(&target);
    match result {
        Ok(body) => {
            tracing::debug!(
                op,
                ms = started.elapsed().as_millis() as u64,
                "rekognition call"
            );
            ok(&body)
        }
        Err(e) => {
            tracing::info!(op, error = e.aws_code(), "{}", e.message());
            e.into_response()
        }
    }
}

fn ok(body: &Value) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-amz-json-1.1"),
            )],
            bytes,
        )
            .into_response(),
        Err(e) => RekognitionError::InternalServerError(format!("encoding the response: {e}"))
            .into_response(),
    }
}

async fn call(state: Arc<RekognitionState>, req: Request) -> RekResult<Value> {
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let name = target.strip_prefix(TARGET_PREFIX).unwrap_or_default();
    let op = Op::from_name(name).ok_or_else(|| {
        RekognitionError::UnknownOperationException(format!(
            "Vigil does not implement the Rekognition operation {name:?} (see \
             docs/compatibility.md)."
        ))
    })?;
    vigil_api_common::metrics::global()
        .api_requests
        .inc(&[op.name()]);
    let (parts, body) = req.into_parts();
    state.auth.precheck(&parts, Service::Rekognition)?;
    let bytes = vigil_api_common::body::read_within(body, MAX_BODY_BYTES, BODY_TIMEOUT).await?;
    let principal = state
        .auth
        .authenticate(&parts, Payload::Body(&bytes), Service::Rekognition)?;
    state
        .auth
        .authorize_action(&principal, &op.action(), None)?;
    let call = RekCall {
        op,
        parts,
        principal,
        body: bytes,
        state,
    };
    tracing::debug!(op = op.name(), key = call.principal.access_key_id, "call");
    match op {
        Op::CreateCollection => blocking(call, handlers::create_collection).await,
        Op::DescribeCollection => blocking(call, handlers::describe_collection).await,
        Op::ListCollections => blocking(call, handlers::list_collections).await,
        Op::DeleteCollection => blocking(call, handlers::delete_collection).await,
        Op::ListFaces => blocking(call, handlers::list_faces).await,
        Op::DeleteFaces => blocking(call, handlers::delete_faces).await,
        Op::SearchFaces => blocking(call, handlers::search_faces).await,
        Op::IndexFaces => handlers::index_faces(call).await,
        Op::SearchFacesByImage => handlers::search_faces_by_image(call).await,
        Op::DetectFaces => handlers::detect_faces(call).await,
        Op::CompareFaces => handlers::compare_faces(call).await,
        Op::CreateStreamProcessor => blocking(call, processors::create).await,
        Op::StartStreamProcessor => blocking(call, processors::start).await,
        Op::StopStreamProcessor => blocking(call, processors::stop).await,
        Op::DescribeStreamProcessor => blocking(call, processors::describe).await,
        Op::ListStreamProcessors => blocking(call, processors::list).await,
        Op::UpdateStreamProcessor => blocking(call, processors::update).await,
        Op::DeleteStreamProcessor => blocking(call, processors::delete).await,
        Op::TagResource => blocking(call, processors::tag_resource).await,
        Op::UntagResource => blocking(call, processors::untag_resource).await,
        Op::ListTagsForResource => blocking(call, processors::list_tags).await,
        Op::ListFaceEvents => blocking(call, results::list_face_events).await,
    }
}

/// Runs a handler that touches the store (fsyncs, locks) on the blocking pool.
async fn blocking(call: RekCall, handler: fn(&RekCall) -> RekResult<Value>) -> RekResult<Value> {
    tokio::task::spawn_blocking(move || handler(&call))
        .await
        .map_err(|e| RekognitionError::InternalServerError(format!("the handler failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for op in Op::ALL {
            assert_eq!(Op::from_name(op.name()), Some(op));
            assert_eq!(op.action(), format!("rekognition:{}", op.name()));
        }
        assert_eq!(Op::from_name("indexFaces"), None);
        let req = |method: &str, path: &str, target: Option<&str>| {
            let mut b = Request::builder().method(method).uri(path);
            if let Some(t) = target {
                b = b.header("x-amz-target", t);
            }
            b.body(axum::body::Body::empty()).unwrap_or_default()
        };
        assert!(!is_rekognition(&req("POST", "/", None)));
        let target = Some("RekognitionService.IndexFaces");
        assert!(is_rekognition(&req("POST", "/", target)));
        assert!(!is_rekognition(&req("GET", "/", target)));
        assert!(!is_rekognition(&req("POST", "/console", target)));
        assert!(!is_rekognition(&req(
            "POST",
            "/",
            Some("Kinesis_20131202.PutRecord")
        )));
    }
}
