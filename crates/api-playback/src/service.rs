//! This crate's API on the front: the operations it claims (by path), their request pipeline
//! and the one dispatch `match`, and the playback GETs, whose only credential is the session
//! token in their query ([`crate::streaming::session`]).
//!
//! The pipeline is the KVS one (`vigil-api-kvs`'s `service` module): a `POST` to the
//! operation's path, the signature checked before the JSON body is read (at most
//! [`ApiConfig::max_json_body`] bytes) and again over it, the body parsed, the handler called;
//! handlers authorise the caller for the stream they resolve.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::response::Response;
use axum::routing::get;
use vigil_api_common::front::{Api, BoxFuture};
use vigil_api_common::{ApiConfig, Authenticator};
use vigil_api_kvs_common::model::ArnContext;
use vigil_api_kvs_common::{Context, KvsResult, answer, blocking, json_call, route};
use vigil_store::Store;

use crate::clip::ClipLimits;
use crate::heavy::{HeavyLimits, HeavyReads};
use crate::ops::Operation;
use crate::streaming::llhls::LowLatencyConfig;
use crate::streaming::session::SessionKey;
use crate::streaming::{dash, hls, llhls};
use crate::{archived, clip, images};

/// One call of this crate's operations.
pub type Call = vigil_api_kvs_common::Call<Operation, PlaybackState>;

/// Settings of archived media.
#[derive(Debug, Clone)]
pub struct PlaybackConfig {
    /// What one GetClip may hold.
    pub clip_limits: ClipLimits,
    /// GetClip calls at once ([`crate::heavy`]).
    pub clip_calls: HeavyLimits,
    /// GetImages calls at once ([`crate::heavy`]).
    pub image_calls: HeavyLimits,
    /// GetMediaForFragmentList responses open at once ([`crate::heavy`]).
    pub fragment_list_calls: HeavyLimits,
    /// HLS and DASH media segments being sent at once, per client address and in all
    /// ([`crate::heavy`]).
    pub segment_calls: HeavyLimits,
    /// Low-latency HLS ([`crate::streaming::llhls`]).
    pub low_latency_hls: LowLatencyConfig,
}

impl Default for PlaybackConfig {
    fn default() -> Self {
        Self {
            clip_limits: ClipLimits::default(),
            clip_calls: crate::heavy::clip_limits(),
            image_calls: crate::heavy::image_limits(),
            fragment_list_calls: crate::heavy::fragment_list_limits(),
            segment_calls: crate::heavy::segment_limits(),
            low_latency_hls: LowLatencyConfig::default(),
        }
    }
}

/// What the archived-media handlers share.
#[derive(Debug)]
pub struct PlaybackState {
    /// The fragment store.
    pub store: Store,
    /// The listener's settings.
    pub cfg: ApiConfig,
    /// This crate's settings.
    pub playback: PlaybackConfig,
    /// Authentication.
    pub auth: Arc<dyn Authenticator>,
    /// The key of playback session tokens: random per server start, so a restart ends every
    /// HLS and DASH session ([`crate::streaming::session`]).
    pub session_key: SessionKey,
    /// GetClip calls in flight.
    pub clips: HeavyReads,
    /// GetImages calls in flight.
    pub images: HeavyReads,
    /// GetMediaForFragmentList responses open.
    pub fragment_lists: HeavyReads,
    /// HLS and DASH media segments being sent.
    pub segments: HeavyReads,
}

impl PlaybackState {
    /// A state over `store`.
    pub fn new(
        store: Store,
        cfg: ApiConfig,
        playback: PlaybackConfig,
        auth: Arc<dyn Authenticator>,
    ) -> Self {
        vigil_api_kvs_common::readers::metrics();
        let (clip_calls, image_calls, list_calls, segment_calls) = (
            playback.clip_calls,
            playback.image_calls,
            playback.fragment_list_calls,
            playback.segment_calls,
        );
        Self {
            store,
            cfg,
            playback,
            auth,
            session_key: SessionKey::generate(),
            clips: HeavyReads::new("GetClip", clip_calls),
            images: HeavyReads::new("GetImages", image_calls),
            fragment_lists: HeavyReads::new("GetMediaForFragmentList", list_calls),
            segments: HeavyReads::new("PlaybackSegment", segment_calls),
        }
    }

    /// Region and account, for ARNs.
    pub fn arn_context(&self) -> ArnContext {
        vigil_api_kvs_common::call::arn_context(&self.cfg)
    }
}

impl Context for PlaybackState {
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

/// Archived media on the front.
#[derive(Debug, Clone)]
pub struct Playback(pub Arc<PlaybackState>);

impl Api for Playback {
    fn claims(&self, req: &Request) -> bool {
        Operation::from_path(req.uri().path()).is_some()
    }

    fn handle(self: Arc<Self>, req: Request) -> BoxFuture<Response> {
        let path = req.uri().path().to_owned();
        Box::pin(answer(path, call(self.0.clone(), req)))
    }
}

async fn call(state: Arc<PlaybackState>, req: Request) -> KvsResult<Response> {
    let op = route(&req, Operation::from_path)?;
    let (parts, body) = req.into_parts();
    run(json_call(state, op, parts, body).await?).await
}

/// The playback GETs under `/hls/v1/` and `/dash/v1/` (no SigV4: the session token in the
/// query is the credential).
pub fn routes(state: Arc<PlaybackState>) -> Router {
    Router::new()
        .route(
            "/hls/v1/getHLSMasterPlaylist.m3u8",
            get(hls::master_playlist),
        )
        .route("/hls/v1/getHLSMediaPlaylist.m3u8", get(hls::media_playlist))
        .route(
            "/hls/v1/getMP4InitFragment.mp4",
            get(hls::mp4_init_fragment),
        )
        .route(
            "/hls/v1/getMP4MediaFragment.mp4",
            get(hls::mp4_media_fragment),
        )
        .route("/hls/v1/getMP4MediaPart.mp4", get(llhls::mp4_media_part))
        .route("/hls/v1/getTSFragment.ts", get(hls::ts_fragment))
        .route("/dash/v1/getDASHManifest.mpd", get(dash::manifest))
        .route(
            "/dash/v1/getMP4InitFragment.mp4",
            get(dash::mp4_init_fragment),
        )
        .route(
            "/dash/v1/getMP4MediaFragment.mp4",
            get(dash::mp4_media_fragment),
        )
        .with_state(state)
}

/// Runs an authenticated JSON call: the one dispatch `match`.
pub async fn run(call: Call) -> KvsResult<Response> {
    match call.op {
        Operation::ListFragments => blocking(call, archived::list_fragments).await,
        Operation::GetMediaForFragmentList => archived::get_media_for_fragment_list(call).await,
        Operation::GetClip => clip::get_clip(call).await,
        Operation::GetHLSStreamingSessionURL => {
            blocking(call, hls::get_hls_streaming_session_url).await
        }
        Operation::GetDASHStreamingSessionURL => {
            blocking(call, dash::get_dash_streaming_session_url).await
        }
        Operation::GetImages => images::get_images(call).await,
    }
}
