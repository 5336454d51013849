//! Vigil's SNS-compatible API (2010-03-31) over the topics engine (`vigil-topics`).
//!
//! The query protocol: `POST /` with a form-encoded body (`Action=Publish&Version=2010-03-31&
//! ...`), routed by the signature's service (`sns`), answered in XML
//! (`http://sns.amazonaws.com/doc/2010-03-31/`), errors as `<ErrorResponse>` with SNS's codes.
//!
//! - [`service`]: the requests this crate claims, the pipeline, the one dispatch `match`.
//! - [`query`]: the form decoding (lists, maps, message attributes, structures) and the XML
//!   writer.
//! - [`topics`], [`subs`], [`publish`]: the handlers.
//! - [`validate`]: names, ARNs, endpoints, messages and tags, checked as SNS checks them.
//! - [`error`]: [`SnsError`], SNS's exceptions with their codes and statuses.
//! - [`signing`]: the key deliveries are signed with and its certificate (made on the first
//!   subscription, not at start).
//! - [`transport`]: HTTP/HTTPS deliveries: SNS's headers and signed JSON document.
//! - [`reach`]: the addresses deliveries may not go to (link-local, multicast).
//! - [`mail`]: `email` and `email-json` deliveries through an SMTP relay.
//! - [`metrics`]: delivery figures per subscription on `/metrics`.

pub mod error;
pub mod mail;
pub mod metrics;
pub mod publish;
pub mod query;
pub mod reach;
pub mod service;
pub mod signing;
pub mod subs;
pub mod topics;
pub mod transport;
pub mod validate;

use std::sync::Arc;

use vigil_api_common::{ApiConfig, Authenticator};
use vigil_store::Store;
use vigil_topics::{Topics, TopicsConfig};

pub use error::{SnsError, SnsResult};
pub use mail::SmtpConfig;
pub use service::{Sns, SnsState};

/// Why SNS could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The mail settings.
    #[error(transparent)]
    Mail(#[from] mail::MailError),
    /// The topics did not load.
    #[error("loading the topics: {0}")]
    Topics(#[from] vigil_topics::Error),
}

impl SnsState {
    /// SNS over `store`: its signing key (made on first start), its HTTP/S transport and the
    /// topics engine. Blocking; call it within the tokio runtime the deliveries run on (they
    /// start with [`SnsState::start`]).
    pub fn open(
        store: Store,
        cfg: ApiConfig,
        auth: Arc<dyn Authenticator>,
        topics: TopicsConfig,
        smtp: Option<&SmtpConfig>,
    ) -> Result<Self, StartError> {
        let signer = Arc::new(signing::LazySigner::new(store.clone()));
        let mailer = smtp.map(mail::Mailer::new).transpose()?.map(Arc::new);
        let email = mailer.is_some();
        let transport = Arc::new(transport::HttpTransport::new(&cfg, signer.clone(), mailer));
        let engine = Topics::open(store, transport, topics)?;
        metrics::register(engine.stats());
        Ok(Self {
            engine,
            cfg,
            auth,
            signer,
            email,
        })
    }

    /// Starts the deliveries; how many subscriptions deliver. Blocking.
    pub fn start(&self) -> Result<usize, vigil_topics::Error> {
        let n = self.engine.start()?;
        if self.engine.subscription_count() > 0 {
            // Deliveries sign, and subscribers fetch the certificate: have the key before
            // the first.
            if let Err(e) = self.signer.get() {
                tracing::error!("{e}");
            }
        }
        Ok(n)
    }

    /// Stops the deliveries, writing where each is. Blocking.
    pub fn shutdown(&self) {
        self.engine.shutdown();
    }
}
