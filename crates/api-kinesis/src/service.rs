//! This crate's API on the front: the requests it claims (`POST /` with a
//! `Kinesis_20131202.` target), their pipeline, and the one dispatch `match`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::request::Parts;
use axum::response::Response;
use serde_json::Value;
use vigil_api_common::error::AwsError;
use vigil_api_common::front::{Api, BoxFuture, is_target, target};
use vigil_api_common::{ApiConfig, Authenticator, Payload, Principal, Service};
use vigil_datastreams::DataStreams;

use crate::error::{KinesisError, KinesisResult, from_engine};
use crate::ops::Operation;
use crate::tokens::TokenKey;
use crate::wire::Encoding;
use crate::{MAX_BODY_BYTES, TARGET_PREFIX, records, shards, streams};

/// What the Kinesis handlers share.
#[derive(Debug)]
pub struct KinesisState {
    /// The data streams.
    pub engine: DataStreams,
    /// The listener's settings.
    pub cfg: ApiConfig,
    /// Authentication.
    pub auth: Arc<dyn Authenticator>,
    /// The key of ListStreams and ListShards tokens.
    pub tokens: TokenKey,
}

impl KinesisState {
    /// A state over `engine`.
    pub fn new(engine: DataStreams, cfg: ApiConfig, auth: Arc<dyn Authenticator>) -> Self {
        crate::metrics::metrics();
        Self {
            engine,
            cfg,
            auth,
            tokens: TokenKey::generate(),
        }
    }

    /// A stream's ARN.
    pub fn stream_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:kinesis:{}:{}:stream/{name}",
            self.cfg.region, self.cfg.account_id
        )
    }

    /// Now, by the store's clock.
    pub fn now_ms(&self) -> u64 {
        self.engine.store().clock().now_ms()
    }
}

/// One Kinesis call: the operation, its input, who sent it and the server.
#[derive(Debug)]
pub struct Call {
    /// The operation.
    pub op: Operation,
    /// The request head.
    pub parts: Parts,
    /// Who signed it.
    pub principal: Principal,
    /// The request body, as it came.
    pub body: Bytes,
    /// Its encoding.
    pub encoding: Encoding,
    /// The service's state.
    pub state: Arc<KinesisState>,
}

impl Call {
    /// Parses the body as the operation's input shape (which may borrow from it: JSON
    /// strings without escapes, such as base64 data, are not copied).
    pub fn input<'a, T: serde::Deserialize<'a>>(&'a self) -> KinesisResult<T> {
        crate::wire::input(self.op.name(), self.encoding, &self.body)
    }

    /// Checks that the caller may call this operation on the stream `stream` (or at all).
    pub fn authorize(&self, stream: Option<&str>) -> KinesisResult<()> {
        Ok(self
            .state
            .auth
            .authorize_action(&self.principal, &self.op.action(), stream)?)
    }

    /// The stream a request names by `StreamName` or `StreamARN` (one is required; both must
    /// agree), checked against the model's patterns, and the caller authorised for it. The
    /// stream's existence is the handler's to check, after this.
    pub fn stream(&self, name: Option<&str>, arn: Option<&str>) -> KinesisResult<String> {
        let name = crate::validate::stream_target(&self.state, name, arn)?;
        self.authorize(Some(&name))?;
        Ok(name)
    }

    /// The engine's error in this API's terms.
    pub fn engine_error(&self, e: vigil_datastreams::Error) -> KinesisError {
        from_engine(e, &self.state.cfg.account_id)
    }
}

/// Kinesis Data Streams on the front.
#[derive(Debug, Clone)]
pub struct Kinesis(pub Arc<KinesisState>);

impl Api for Kinesis {
    fn claims(&self, req: &Request) -> bool {
        is_target(req, TARGET_PREFIX)
    }

    fn handle(self: Arc<Self>, req: Request) -> BoxFuture<Response> {
        Box::pin(async move {
            let encoding = Encoding::of(req.headers());
            let name = target(req.headers(), TARGET_PREFIX)
                .unwrap_or_default()
                .to_owned();
            match call(self.0.clone(), req, encoding).await {
                Ok(out) => encoding.respond(out.as_ref()),
                Err(e) => {
                    tracing::info!(op = name, error = e.aws_code(), "{}", e.message());
                    encoding.error(&e)
                }
            }
        })
    }
}

async fn call(
    state: Arc<KinesisState>,
    req: Request,
    encoding: Encoding,
) -> KinesisResult<Option<Value>> {
    let name = target(req.headers(), TARGET_PREFIX).unwrap_or_default();
    let op = Operation::from_name(name).ok_or_else(|| {
        KinesisError::UnknownOperationException(format!("Kinesis has no operation {name:?}."))
    })?;
    vigil_api_common::metrics::global()
        .api_requests
        .inc(&[op.name()]);
    let (parts, body) = req.into_parts();
    state.auth.precheck(&parts, Service::Kinesis)?;
    // Records are big; every other input fits the server's JSON body limit.
    let limit = match op {
        Operation::PutRecord | Operation::PutRecords => MAX_BODY_BYTES,
        _ => state.cfg.max_json_body,
    };
    let bytes: Bytes = vigil_api_common::body::read(body, limit).await?;
    let principal = state
        .auth
        .authenticate(&parts, Payload::Body(&bytes), Service::Kinesis)?;
    let call = Call {
        op,
        parts,
        principal,
        body: bytes,
        encoding,
        state,
    };
    tracing::debug!(op = op.name(), key = call.principal.access_key_id, "call");
    run(call).await
}

/// Runs an authenticated call: the one dispatch `match`.
pub async fn run(call: Call) -> KinesisResult<Option<Value>> {
    match call.op {
        Operation::CreateStream => blocking(call, streams::create_stream).await,
        Operation::DeleteStream => blocking(call, streams::delete_stream).await,
        Operation::DescribeStream => blocking(call, streams::describe_stream).await,
        Operation::DescribeStreamSummary => blocking(call, streams::describe_stream_summary).await,
        Operation::ListStreams => blocking(call, streams::list_streams).await,
        Operation::IncreaseStreamRetentionPeriod => {
            blocking(call, streams::increase_retention).await
        }
        Operation::DecreaseStreamRetentionPeriod => {
            blocking(call, streams::decrease_retention).await
        }
        Operation::AddTagsToStream => blocking(call, streams::add_tags_to_stream).await,
        Operation::RemoveTagsFromStream => blocking(call, streams::remove_tags_from_stream).await,
        Operation::ListTagsForStream => blocking(call, streams::list_tags_for_stream).await,
        Operation::TagResource => blocking(call, streams::tag_resource).await,
        Operation::UntagResource => blocking(call, streams::untag_resource).await,
        Operation::ListTagsForResource => blocking(call, streams::list_tags_for_resource).await,
        Operation::StartStreamEncryption => blocking(call, streams::start_encryption).await,
        Operation::StopStreamEncryption => blocking(call, streams::stop_encryption).await,
        Operation::EnableEnhancedMonitoring => blocking(call, streams::enable_monitoring).await,
        Operation::DisableEnhancedMonitoring => blocking(call, streams::disable_monitoring).await,
        Operation::DescribeLimits => blocking(call, streams::describe_limits).await,
        Operation::DescribeAccountSettings => {
            blocking(call, streams::describe_account_settings).await
        }
        Operation::UpdateStreamMode => blocking(call, streams::update_stream_mode).await,
        Operation::UpdateMaxRecordSize => blocking(call, streams::update_max_record_size).await,
        Operation::ListShards => blocking(call, shards::list_shards).await,
        Operation::UpdateShardCount => blocking(call, shards::update_shard_count).await,
        Operation::SplitShard => blocking(call, shards::split_shard).await,
        Operation::MergeShards => blocking(call, shards::merge_shards).await,
        Operation::PutRecord => records::put_record(call).await,
        Operation::PutRecords => records::put_records(call).await,
        Operation::GetShardIterator => blocking(call, records::get_shard_iterator).await,
        Operation::GetRecords => blocking(call, records::get_records).await,
        // Enhanced fan-out (consumers and SubscribeToShard over HTTP/2 event streams),
        // resource policies, account billing settings and warm throughput are not here
        // (docs/compatibility.md says what each would take).
        Operation::RegisterStreamConsumer
        | Operation::DescribeStreamConsumer
        | Operation::ListStreamConsumers
        | Operation::DeregisterStreamConsumer
        | Operation::SubscribeToShard
        | Operation::GetResourcePolicy
        | Operation::PutResourcePolicy
        | Operation::DeleteResourcePolicy
        | Operation::UpdateAccountSettings
        | Operation::UpdateStreamWarmThroughput => {
            call.authorize(None)?;
            Err(KinesisError::InvalidArgumentException(format!(
                "Vigil does not implement {} (see docs/compatibility.md); read with \
                 GetRecords (the KCL's polling retrieval).",
                call.op.name()
            )))
        }
    }
}

/// Runs a handler that does blocking store I/O on the blocking pool.
async fn blocking(
    call: Call,
    handler: fn(&Call) -> KinesisResult<Option<Value>>,
) -> KinesisResult<Option<Value>> {
    tokio::task::spawn_blocking(move || handler(&call))
        .await
        .map_err(|e| KinesisError::InternalFailureException(format!("the handler failed: {e}")))?
}
