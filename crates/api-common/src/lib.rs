//! What every AWS API of Vigil shares, and nothing service-specific.
//!
//! Vigil answers several AWS services on one listener: the Kinesis Video Streams services
//! (`vigil-api-kvs`, `vigil-api-playback`), Rekognition (`vigil-api-rekognition`) and Kinesis
//! Data Streams (`vigil-api-kinesis`). Each service crate owns its operations, wire shapes,
//! errors and handlers; this crate gives them the pieces every one needs and that must behave
//! the same everywhere:
//!
//! - [`front`]: the HTTP front. Each service implements [`front::Api`] (which requests it
//!   claims, from the head: `X-Amz-Target`, path, or the signature's service for the query
//!   protocol, whose `Action=` is in the body; and how it answers them); [`front::Front`]
//!   routes every request to the first service that claims it and stamps the request id on
//!   every response (each service counts its operations).
//! - [`auth`]: the [`Authenticator`] seam (SigV4 against the key store, or [`Anonymous`]),
//!   scoped per signing service ([`Service`]), and key policies.
//! - [`body`]: request bodies read with a size limit and a deadline.
//! - [`config`]: the settings every API reads (region, account, public URL).
//! - [`error`]: [`CommonError`], the failures of the shared pipeline (signatures, policies,
//!   unreadable bodies), and [`error::render`], one place that turns any service's error into
//!   a response in that service's protocol ([`error::Protocol`]: rest-json, AWS JSON 1.0/1.1,
//!   AWS CBOR 1.1, query/XML).
//! - [`metrics`]: counters, gauges and histograms rendered as Prometheus text, and the
//!   process's registry to which each service crate adds its own families.
//! - [`token`]: paging tokens, sealed with the listener's key so that a client cannot forge
//!   a cursor.
//! - [`wire`]: encodings every JSON protocol uses (epoch-second timestamps, UUIDs).
//!
//! This crate knows no operation, no stream, no AWS shape beyond those protocol rules: a
//! handler never imports the router, and no service crate imports another.

pub mod auth;
pub mod body;
pub mod config;
pub mod error;
pub mod front;
pub mod metrics;
pub mod token;
pub mod wire;

pub use auth::{Anonymous, Authenticator, Payload, Principal, Service};
pub use config::ApiConfig;
pub use error::{AwsError, CommonError, CommonResult, Protocol};
pub use front::{Front, Origin};
pub use token::PageTokens;
