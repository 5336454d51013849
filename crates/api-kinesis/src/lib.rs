//! Vigil's Kinesis Data Streams API: the `kinesis` service (API 2013-12-02) over the data
//! streams engine (`vigil-datastreams`), so that the Kinesis clients people already have
//! (boto3, the AWS CLI, the AWS SDK for Rust, the AWS SDK for Java v2 and the KCL) read and
//! write Vigil's data streams unchanged. `../shared/spec/analysis-chain.md` §2 is the digest;
//! botocore's service model is the reference.
//!
//! # Wire
//!
//! `POST /` with `X-Amz-Target: Kinesis_20131202.<Operation>`, signed with SigV4 for the
//! service `kinesis` in the server's region, in AWS JSON 1.1 or AWS CBOR 1.1 by its
//! `Content-Type` ([`wire::Encoding`], [`cbor`]). Per request: the operation from the target
//! (unknown: `UnknownOperationException`), the signature checked before the body is read (at
//! most [`MAX_BODY_BYTES`]) and again over it, the caller authorised for the action
//! `kinesis:<Operation>` on the stream it names ([`vigil_auth::policy`]), the body decoded,
//! and the one dispatch `match` ([`service`]).
//!
//! # Where things are
//!
//! - [`service`]: [`Kinesis`], this crate's front API, its state, the dispatch.
//! - [`streams`]: streams: create, describe, list, delete, retention, tags, encryption,
//!   monitoring, mode, limits.
//! - [`shards`]: ListShards and resharding (UpdateShardCount, SplitShard, MergeShards).
//! - [`records`]: PutRecord, PutRecords, GetShardIterator, GetRecords.
//! - [`tokens`]: shard iterators and pagination tokens.
//! - [`validate`]: the model's constraints, answered as AWS answers them.
//! - [`error`], [`metrics`], [`ops`], [`wire`], [`cbor`]; [`fuzzing`], the body of the
//!   `kinesis_wire` fuzz target.
//!
//! Streams belong to the server (its account) and region, like KVS streams; their ARNs carry
//! the configured region and account id: `arn:aws:kinesis:REGION:ACCOUNT:stream/NAME`.

pub mod cbor;
pub mod error;
pub mod fuzzing;
pub mod metrics;
pub mod ops;
pub mod records;
pub mod service;
pub mod shards;
pub mod streams;
pub mod tokens;
pub mod validate;
pub mod wire;

/// The largest request body: PutRecords carries up to 5 MiB of records, base64-encoded
/// (4/3 of that), and stream names and keys beside them; records may be raised to 10 MiB
/// each (`UpdateMaxRecordSize`), so a PutRecord of one such record, in base64, fits too.
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// The target prefix of every Kinesis operation.
pub const TARGET_PREFIX: &str = "Kinesis_20131202.";

pub use error::{KinesisError, KinesisResult};
pub use ops::Operation;
pub use service::{Call, Kinesis, KinesisState};
