//! This crate's API on the front: the operations it claims (by path), the request pipeline
//! of each, and the one dispatch `match`.
//!
//! Every KVS operation is a `POST` to its path ([`Operation::from_path`]). For each request:
//! find the operation (this crate is also the front's fallback: an unknown path is
//! `UnknownOperationException`, 404); for PutMedia, authenticate from the headers alone and
//! hand the still-unread body to [`crate::media::putmedia`]; for every other operation read
//! the JSON body (at most [`ApiConfig::max_json_body`] bytes), authenticate with its hash,
//! parse it (`SerializationException` if it is not the operation's JSON) and call the
//! handler. Handlers authorise the caller for the stream they resolve ([`Call::stream`]).

use std::sync::{Arc, OnceLock, Weak};

use axum::body::Bytes;
use axum::extract::Request;
use axum::response::Response;
use vigil_api_common::front::{Api, BoxFuture};
use vigil_api_common::{ApiConfig, Authenticator, Origin, Payload, Service};
use vigil_api_kvs_common::budget::{HeavyLimits, HeavyReads};
use vigil_api_kvs_common::model::ArnContext;
use vigil_api_kvs_common::{Context, KvsError, KvsResult, answer, blocking, json_call, route};
use vigil_store::Store;

use crate::cameras::{self, CameraService};
use crate::ops::Operation;
use crate::{control, media};

/// One call of this crate's operations.
pub type Call = vigil_api_kvs_common::Call<Operation, KvsState>;

/// What the control and media planes share.
#[derive(Debug)]
pub struct KvsState {
    /// The fragment store.
    pub store: Store,
    /// The listener's settings.
    pub cfg: ApiConfig,
    /// Authentication.
    pub auth: Arc<dyn Authenticator>,
    /// Live PutMedia sessions and their shutdown.
    pub sessions: media::Sessions,
    /// The server's cameras, once the binary has set them up ([`crate::cameras`]). Weak: the
    /// cameras' client holds this state through the router, and must not keep it alive.
    pub cameras: OnceLock<Weak<dyn CameraService>>,
    /// GetMedia responses open ([`crate::media::getmedia::reader_limits`]).
    pub readers: HeavyReads,
}

impl KvsState {
    /// A state over `store`, with PutMedia sessions limited as `sessions` says.
    pub fn new(
        store: Store,
        cfg: ApiConfig,
        auth: Arc<dyn Authenticator>,
        sessions: media::sessions::PutMediaConfig,
    ) -> Self {
        crate::metrics::metrics();
        vigil_api_kvs_common::readers::metrics();
        Self {
            store,
            cfg,
            auth,
            sessions: media::Sessions::new(sessions),
            cameras: OnceLock::new(),
            readers: HeavyReads::new("GetMedia", media::getmedia::reader_limits()),
        }
    }

    /// The same state with GetMedia responses budgeted as `limits` says.
    #[must_use]
    pub fn with_reader_limits(mut self, limits: HeavyLimits) -> Self {
        self.readers = HeavyReads::new("GetMedia", limits);
        self
    }

    /// Region and account, for ARNs.
    pub fn arn_context(&self) -> ArnContext {
        vigil_api_kvs_common::call::arn_context(&self.cfg)
    }
}

impl Context for KvsState {
    fn store(&self) -> &Store {
        &self.store
    }

    fn config(&self) -> &ApiConfig {
        &self.cfg
    }

    fn auth(&self) -> &dyn Authenticator {
        self.auth.as_ref()
    }
}

/// The control and media planes on the front.
#[derive(Debug, Clone)]
pub struct Kvs(pub Arc<KvsState>);

impl Api for Kvs {
    fn claims(&self, req: &Request) -> bool {
        Operation::from_path(req.uri().path()).is_some()
    }

    fn handle(self: Arc<Self>, req: Request) -> BoxFuture<Response> {
        let path = req.uri().path().to_owned();
        Box::pin(answer(path, call(self.0.clone(), req)))
    }
}

async fn call(state: Arc<KvsState>, req: Request) -> KvsResult<Response> {
    let op = route(&req, Operation::from_path)?;
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
    run(json_call(state, op, parts, body).await?).await
}

/// Runs an authenticated JSON call: the one dispatch `match`.
pub async fn run(call: Call) -> KvsResult<Response> {
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
        Operation::PutMedia => Err(KvsError::InternalFailure(
            "PutMedia reached the JSON path".into(),
        )),
        // WebRTC signaling and storage and the IoT edge agent are out of Vigil's scope
        // (docs/compatibility.md).
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
        | Operation::JoinStorageSessionAsViewer => Err(KvsError::NotImplemented(format!(
            "Vigil does not implement {} (see docs/compatibility.md).",
            op.name()
        ))),
        Operation::ListCameras => cameras::list_cameras(call),
        Operation::PutCamera => cameras::put_camera(call).await,
        Operation::DeleteCamera => cameras::delete_camera(call).await,
    }
}
