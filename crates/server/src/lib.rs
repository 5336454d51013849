//! The server's wiring: one HTTP front over every service crate.
//!
//! Each AWS service is its own crate (`vigil-api-kvs`, `vigil-api-playback`,
//! `vigil-api-rekognition`, `vigil-api-kinesis`, `vigil-api-sns`), none of which imports
//! another; this crate builds their states over one store and one authenticator, puts them
//! behind one [`Front`] in the order their claims are asked (Rekognition and Kinesis by
//! `X-Amz-Target`, SNS by the signature's service and its delivery links, archived media by
//! path, then the KVS control and media planes, which are also the fallback that answers
//! unknown paths),
//! and adds what belongs to no service: `GET /health`, `GET /metrics` (Prometheus text), and
//! the web console ([`console`]), whose requests run as their session's key through the same
//! handlers and policies as any API call.
//!
//! `vigil serve` (in the `vigil` binary) configures and runs it; the in-process tests
//! (`tests/api/`) drive the same [`router`] over TCP.

pub mod alerts;
pub mod console;
pub mod metrics;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde::Serialize;
use vigil_analysis::{Analysis, AnalysisConfig};
use vigil_api_common::front::{Front, dispatch};
use vigil_api_common::{ApiConfig, Authenticator};
use vigil_api_kinesis::{Kinesis, KinesisState};
use vigil_api_kvs::media::sessions::PutMediaConfig;
use vigil_api_kvs::{Kvs, KvsState};
use vigil_api_playback::{Playback, PlaybackConfig, PlaybackState};
use vigil_api_rekognition::{Rekognition, RekognitionState};
use vigil_api_sns::{Sns, SnsState};
use vigil_datastreams::DataStreams;
use vigil_store::Store;

pub use console::ConsoleConfig;
pub use vigil_api_common::{Anonymous, Payload, Principal};

/// Settings of the whole server's API.
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    /// What every API reads (region, account, public URL, TLS, body limit).
    pub api: ApiConfig,
    /// Archived media: clip limits, low-latency HLS.
    pub playback: PlaybackConfig,
    /// PutMedia sessions: limits and timings.
    pub putmedia: PutMediaConfig,
    /// GetMedia responses open at once, per caller and in all (`None`: the defaults,
    /// `vigil_api_kvs::media::getmedia::reader_limits`).
    pub get_media: Option<vigil_api_kvs_common::budget::HeavyLimits>,
    /// The web console.
    pub console: ConsoleConfig,
    /// Data streams: shard limits.
    pub datastreams: vigil_datastreams::Limits,
    /// Stream processors: limits, how far behind live a run may fall.
    pub analysis: AnalysisConfig,
    /// Topics: limits, message retention, deliveries in flight.
    pub topics: vigil_topics::TopicsConfig,
    /// The SMTP relay of `email` and `email-json` subscriptions (none: they are refused).
    pub smtp: Option<vigil_api_sns::SmtpConfig>,
}

/// Why the server's state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data streams did not load.
    #[error("loading the data streams: {0}")]
    DataStreams(#[from] vigil_datastreams::Error),
    /// The stream processors did not load.
    #[error("loading the stream processors: {0}")]
    Analysis(#[from] vigil_analysis::Error),
    /// SNS did not start (its signing key, its topics).
    #[error("starting SNS: {0}")]
    Sns(#[from] vigil_api_sns::StartError),
}

/// Every service's state, over one store and one authenticator.
#[derive(Debug)]
pub struct ServerState {
    /// The fragment store.
    pub store: Store,
    /// Settings.
    pub cfg: ServerConfig,
    /// Authentication.
    pub auth: Arc<dyn Authenticator>,
    /// The KVS control and media planes.
    pub kvs: Arc<KvsState>,
    /// Archived media.
    pub playback: Arc<PlaybackState>,
    /// Rekognition.
    pub rekognition: Arc<RekognitionState>,
    /// Kinesis Data Streams.
    pub kinesis: Arc<KinesisState>,
    /// SNS topics.
    pub sns: Arc<SnsState>,
    /// Signed-in web console sessions.
    pub console_sessions: console::Sessions,
    /// Failed console sign-ins per client address.
    pub console_throttle: console::throttle::SignInThrottle,
}

impl ServerState {
    /// Every service over `store`, configured as `cfg` says. Blocking: it loads the data
    /// streams from the store. Call it within the tokio runtime (stream processors run on
    /// it); none runs until [`ServerState::resume_processors`].
    pub fn new(
        store: Store,
        cfg: ServerConfig,
        auth: Arc<dyn Authenticator>,
    ) -> Result<Self, StartError> {
        let mut kvs = KvsState::new(
            store.clone(),
            cfg.api.clone(),
            auth.clone(),
            cfg.putmedia.clone(),
        );
        if let Some(limits) = cfg.get_media {
            kvs = kvs.with_reader_limits(limits);
        }
        let kvs = Arc::new(kvs);
        let playback = Arc::new(PlaybackState::new(
            store.clone(),
            cfg.api.clone(),
            cfg.playback.clone(),
            auth.clone(),
        ));
        let datastreams = DataStreams::open(store.clone(), cfg.datastreams)?;
        let collections = Arc::new(vigil_analysis::Collections::default());
        let analysis = Analysis::open(
            store.clone(),
            datastreams.clone(),
            collections.clone(),
            Arc::new(vigil_api_rekognition::results::RekognitionOutput),
            cfg.analysis.clone(),
        )?;
        let sns = Arc::new(SnsState::open(
            store.clone(),
            cfg.api.clone(),
            auth.clone(),
            cfg.topics,
            cfg.smtp.as_ref(),
        )?);
        // Unknown faces are published to a processor's NotificationChannel topic.
        analysis.set_alerts(Arc::new(alerts::TopicAlerts {
            topics: sns.engine.clone(),
            region: cfg.api.region.clone(),
            account: cfg.api.account_id.clone(),
            runtime: tokio::runtime::Handle::current(),
        }));
        let rekognition = Arc::new(RekognitionState::new(
            analysis,
            collections,
            cfg.api.clone(),
            auth.clone(),
        ));
        let kinesis = Arc::new(KinesisState::new(
            datastreams,
            cfg.api.clone(),
            auth.clone(),
        ));
        metrics::metrics();
        Ok(Self {
            store,
            cfg,
            auth,
            kvs,
            playback,
            rekognition,
            kinesis,
            sns,
            console_sessions: console::Sessions::default(),
            console_throttle: console::throttle::SignInThrottle::default(),
        })
    }

    /// Runs again the stream processors that were running when the server stopped; how many.
    /// Blocking.
    pub fn resume_processors(&self) -> vigil_analysis::Result<usize> {
        self.rekognition.analysis.resume()
    }

    /// Ends the stream processors' runs (at shutdown; they resume at the next start).
    /// Blocking.
    pub fn stop_processors(&self) {
        self.rekognition.analysis.shutdown();
    }

    /// Starts the topics' deliveries; how many subscriptions deliver. Blocking.
    pub fn start_deliveries(&self) -> vigil_topics::Result<usize> {
        self.sns.start()
    }

    /// Stops the topics' deliveries, each writing where it is (at shutdown). Blocking.
    pub fn stop_deliveries(&self) {
        self.sns.shutdown();
    }

    /// The front: every API, in the order their claims are asked.
    pub fn front(&self) -> Front {
        Front::new(Arc::new(Kvs(self.kvs.clone())))
            .with(Arc::new(Rekognition(self.rekognition.clone())))
            .with(Arc::new(Kinesis(self.kinesis.clone())))
            .with(Arc::new(Sns(self.sns.clone())))
            .with(Arc::new(Playback(self.playback.clone())))
    }
}

/// The router of the whole server: `GET /health`, `GET /metrics`, the playback GETs, the web
/// console, and every AWS operation through the front.
pub fn router(state: Arc<ServerState>) -> Router {
    let front = Arc::new(state.front());
    let aws = Router::new().fallback(dispatch).with_state(front.clone());
    Router::new()
        .route(
            "/",
            get({
                let front = front.clone();
                move |state: axum::extract::State<Arc<ServerState>>, req: axum::extract::Request| {
                    let front = front.clone();
                    async move {
                        // SNS's links (`GET /?Action=ConfirmSubscription&...`) are API calls;
                        // a plain `GET /` is the console.
                        if req.uri().query().is_some_and(|q| q.contains("Action=")) {
                            front.handle(req).await
                        } else {
                            console::index(state, req.headers().clone()).await
                        }
                    }
                }
            })
            .fallback(move |req| {
                let front = front.clone();
                async move { front.handle(req).await }
            }),
        )
        .route("/console/api/{*rest}", any(console::api))
        .route("/console/{*path}", get(console::asset))
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .with_state(state.clone())
        .merge(vigil_api_playback::routes(state.playback.clone()))
        .merge(aws)
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

async fn metrics_text() -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        vigil_api_common::metrics::global().render_prometheus(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn no_two_operations_share_a_path() {
        let mut paths: Vec<&str> = vigil_api_kvs::Operation::ALL
            .iter()
            .map(|o| o.path())
            .chain(vigil_api_playback::Operation::ALL.iter().map(|o| o.path()))
            .collect();
        let n = paths.len();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), n);
    }
}
