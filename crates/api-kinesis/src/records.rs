//! Records: PutRecord, PutRecords, GetShardIterator, GetRecords.
//!
//! A put answers only once its records are durable (the engine's contract). GetRecords never
//! waits: a reader at the tip gets no records and a fresh iterator at once, as on AWS.
//! Vigil enforces the record and request size limits of the model, not AWS's per-shard
//! throughput quotas (1 MB/s or 1,000 records/s in, 2 MB/s and 5 calls/s out):
//! `ProvisionedThroughputExceededException` is never returned.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::BytesMut;
use serde::Deserialize;
use serde_json::{Value, json};
use vigil_api_common::wire::EpochMs;
use vigil_datastreams::model::shard_id;
use vigil_datastreams::{NewRecord, SequenceNumber, StartAt};

use crate::error::{KinesisError, KinesisResult};
use crate::metrics::metrics;
use crate::service::Call;
use crate::shards::index_of;
use crate::streams::encryption_type;
use crate::tokens::{Iterator, Refused, iterator_key};
use crate::validate;

/// Most records in one PutRecords.
pub const MAX_PUT_RECORDS: usize = 500;
/// Most bytes (data and partition keys) in one PutRecords.
pub const MAX_PUT_RECORDS_BYTES: usize = 5 << 20;
/// Most records one GetRecords returns.
pub const MAX_GET_RECORDS: i64 = 10_000;
/// About the most bytes one GetRecords returns.
pub const MAX_GET_RECORDS_BYTES: usize = 10 << 20;

/// A list of which at most [`MAX_PUT_RECORDS`] elements are kept: the rest are counted and
/// skipped, so that a body of a million entries costs no more memory than the largest
/// PutRecords (and is refused by its count).
#[derive(Debug)]
struct Bounded<T> {
    items: Vec<T>,
    total: usize,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Bounded<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visit<T> {
            type Value = Bounded<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                let mut total = 0usize;
                loop {
                    if items.len() < MAX_PUT_RECORDS {
                        match seq.next_element::<T>()? {
                            Some(t) => items.push(t),
                            None => break,
                        }
                    } else if seq.next_element::<serde::de::IgnoredAny>()?.is_none() {
                        break;
                    }
                    total += 1;
                }
                Ok(Bounded { items, total })
            }
        }
        d.deserialize_seq(Visit(std::marker::PhantomData))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry<'a> {
    #[serde(borrow)]
    data: Option<Cow<'a, str>>,
    #[serde(borrow)]
    partition_key: Option<Cow<'a, str>>,
    explicit_hash_key: Option<String>,
}

/// A request entry as the engine takes it; `at` names it in messages (`records.3`).
/// Where a member is, in validation messages: `records.3.member.` for PutRecords' third
/// record, nothing for PutRecord's.
fn member(at: Option<usize>) -> String {
    at.map_or_else(String::new, |i| format!("records.{}.member.", i + 1))
}

/// One record of the input, its data decoded into `buf`'s spare room (it grows if need be):
/// the records of a PutRecords share one allocation.
fn record(at: Option<usize>, e: Entry<'_>, buf: &mut BytesMut) -> KinesisResult<NewRecord> {
    let data = e
        .data
        .ok_or_else(|| validate::null(&format!("{}data", member(at))))?;
    buf.clear();
    buf.resize(base64::decoded_len_estimate(data.len()), 0);
    let n = BASE64.decode_slice(data.as_bytes(), buf).map_err(|_| {
        let shown: String = data.chars().take(40).collect();
        KinesisError::SerializationException(format!("{}Data is not base64: {shown}", member(at)))
    })?;
    buf.truncate(n);
    let data = buf.split().freeze();
    let key = e
        .partition_key
        .ok_or_else(|| validate::null(&format!("{}partitionKey", member(at))))?;
    let chars = key.chars().count();
    if chars == 0 || chars > 256 {
        return Err(KinesisError::validation(
            &key,
            &format!("{}partitionKey", member(at)),
            "Member must have length between 1 and 256",
        ));
    }
    let explicit_hash_key = match e.explicit_hash_key {
        Some(h) => Some(validate::hash_key("explicitHashKey", &h)?),
        None => None,
    };
    Ok(NewRecord {
        partition_key: key.into_owned(),
        explicit_hash_key,
        data,
    })
}

/// PutRecords' records, their data in one allocation.
fn records(entries: Vec<Entry<'_>>) -> KinesisResult<Vec<NewRecord>> {
    let room = entries
        .iter()
        .map(|e| {
            e.data
                .as_ref()
                .map_or(0, |d| base64::decoded_len_estimate(d.len()))
        })
        .sum();
    let mut buf = BytesMut::with_capacity(room);
    entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| record(Some(i), e, &mut buf))
        .collect()
}

fn describe(call: &Call, name: &str) -> KinesisResult<vigil_datastreams::StreamInfo> {
    call.state
        .engine
        .describe(name)
        .map_err(|e| call.engine_error(e))
}

pub(crate) async fn put_record(call: Call) -> KinesisResult<Option<Value>> {
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Input<'a> {
        stream_name: Option<String>,
        #[serde(rename = "StreamARN")]
        stream_arn: Option<String>,
        #[serde(borrow)]
        data: Option<Cow<'a, str>>,
        #[serde(borrow)]
        partition_key: Option<Cow<'a, str>>,
        explicit_hash_key: Option<String>,
        sequence_number_for_ordering: Option<String>,
    }
    let input: Input = call.input()?;
    if let Some(s) = &input.sequence_number_for_ordering {
        // Positions only increase: every record is after any earlier one of its shard.
        validate::sequence_shape("sequenceNumberForOrdering", s)?;
    }
    let rec = record(
        None,
        Entry {
            data: input.data,
            partition_key: input.partition_key,
            explicit_hash_key: input.explicit_hash_key,
        },
        &mut BytesMut::new(),
    )?;
    let name = call.stream(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    // Described before the put: once a record is stored, nothing may fail the call (the
    // client would retry and store it twice).
    let info = describe(&call, &name)?;
    let bytes = (rec.data.len() + rec.partition_key.len()) as u64;
    let m = metrics();
    let mut results = call
        .state
        .engine
        .put(&name, vec![rec])
        .await
        .map_err(|e| call.engine_error(e))?;
    let put = match results.pop() {
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            m.put_failures.inc(&[&name]);
            return Err(KinesisError::from(e.as_ref()));
        }
        None => {
            return Err(KinesisError::InternalFailureException(
                "the put returned no result".into(),
            ));
        }
    };
    m.records_in.inc(&[&name]);
    m.bytes_in.inc_by(&[&name], bytes);
    Ok(Some(json!({
        "ShardId": shard_id(put.shard),
        "SequenceNumber": put.sequence.to_string(),
        "EncryptionType": encryption_type(&info),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordsInput<'a> {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    #[serde(borrow)]
    records: Option<Bounded<Entry<'a>>>,
}

/// PutRecords' JSON input and its records, as the handler reads them (for the fuzz target).
pub(crate) fn parse_put_records(body: &[u8]) -> KinesisResult<Vec<NewRecord>> {
    let input: PutRecordsInput =
        crate::wire::input("PutRecords", crate::wire::Encoding::Json, body)?;
    records(input.records.map(|r| r.items).unwrap_or_default())
}

pub(crate) async fn put_records(call: Call) -> KinesisResult<Option<Value>> {
    let input: PutRecordsInput = call.input()?;
    let entries = input.records.ok_or_else(|| validate::null("records"))?;
    if entries.total == 0 || entries.total > MAX_PUT_RECORDS {
        return Err(KinesisError::validation(
            &format!("{} records", entries.total),
            "records",
            &format!("Member must have length between 1 and {MAX_PUT_RECORDS}"),
        ));
    }
    let records = records(entries.items)?;
    let name = call.stream(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    let info = describe(&call, &name)?;
    let total: usize = records
        .iter()
        .map(|r| r.data.len() + r.partition_key.len())
        .sum();
    if total > MAX_PUT_RECORDS_BYTES {
        return Err(KinesisError::invalid(format!(
            "Records size exceeds {} MB limit: {total} bytes of data and partition keys.",
            MAX_PUT_RECORDS_BYTES >> 20
        )));
    }
    let sizes: Vec<u64> = records
        .iter()
        .map(|r| (r.data.len() + r.partition_key.len()) as u64)
        .collect();
    let results = call
        .state
        .engine
        .put(&name, records)
        .await
        .map_err(|e| call.engine_error(e))?;
    let m = metrics();
    let mut failed = 0u64;
    let mut stored = (0u64, 0u64);
    let mut out = Vec::with_capacity(results.len());
    for (r, size) in results.iter().zip(&sizes) {
        match r {
            Ok(p) => {
                stored.0 += 1;
                stored.1 += *size;
                out.push(json!({
                    "SequenceNumber": p.sequence.to_string(),
                    "ShardId": shard_id(p.shard),
                }));
            }
            Err(e) => {
                failed += 1;
                tracing::warn!(stream = name, error = %e, "PutRecords entry failed");
                out.push(json!({
                    "ErrorCode": "InternalFailure",
                    "ErrorMessage": "Internal service failure.",
                }));
            }
        }
    }
    m.records_in.inc_by(&[&name], stored.0);
    m.bytes_in.inc_by(&[&name], stored.1);
    if failed > 0 {
        m.put_failures.inc_by(&[&name], failed);
    }
    Ok(Some(json!({
        "FailedRecordCount": failed,
        "Records": out,
        "EncryptionType": encryption_type(&info),
    })))
}

pub(crate) fn get_shard_iterator(call: &Call) -> KinesisResult<Option<Value>> {
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Input {
        stream_name: Option<String>,
        #[serde(rename = "StreamARN")]
        stream_arn: Option<String>,
        shard_id: Option<String>,
        shard_iterator_type: Option<String>,
        starting_sequence_number: Option<String>,
        timestamp: Option<EpochMs>,
    }
    let input: Input = call.input()?;
    let shard = input.shard_id.ok_or_else(|| validate::null("shardId"))?;
    let kind = input
        .shard_iterator_type
        .ok_or_else(|| validate::null("shardIteratorType"))?;
    let kind = validate::one_of(
        "shardIteratorType",
        &kind,
        &[
            "AT_SEQUENCE_NUMBER",
            "AFTER_SEQUENCE_NUMBER",
            "TRIM_HORIZON",
            "LATEST",
            "AT_TIMESTAMP",
        ],
    )?;
    if let Some(s) = &input.starting_sequence_number {
        validate::sequence_shape("startingSequenceNumber", s)?;
    }
    let name = call.stream(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    let index = index_of(call, &name, &shard)?;
    let now = call.state.now_ms();
    let sequence = |s: &Option<String>| -> KinesisResult<SequenceNumber> {
        let s = s.as_deref().ok_or_else(|| {
            KinesisError::invalid(format!(
                "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and \
                 StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no \
                 StartingSequenceNumber. Request specified {kind} and no StartingSequenceNumber."
            ))
        })?;
        SequenceNumber::parse(s).ok_or_else(|| {
            KinesisError::invalid(format!(
                "StartingSequenceNumber {s} used in GetShardIterator on shard {shard} in stream \
                 {name} under account {} is invalid.",
                call.state.cfg.account_id
            ))
        })
    };
    let at = match kind {
        "AT_SEQUENCE_NUMBER" => StartAt::AtSequence(sequence(&input.starting_sequence_number)?),
        "AFTER_SEQUENCE_NUMBER" => {
            StartAt::AfterSequence(sequence(&input.starting_sequence_number)?)
        }
        other => {
            if input.starting_sequence_number.is_some() {
                return Err(KinesisError::invalid(format!(
                    "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and \
                     StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no \
                     StartingSequenceNumber. Request specified {other} and also a \
                     StartingSequenceNumber."
                )));
            }
            match other {
                "TRIM_HORIZON" => StartAt::TrimHorizon,
                "LATEST" => StartAt::Latest,
                _ => {
                    let ts = input.timestamp.ok_or_else(|| {
                        KinesisError::invalid(
                            "Must specify timestampInMillis parameter for iterator of type \
                             AT_TIMESTAMP.",
                        )
                    })?;
                    if ts.0 > now {
                        return Err(KinesisError::invalid(format!(
                            "The timestampInMillis parameter cannot be greater than the \
                             currentTimestampInMillis. timestampInMillis: {}, \
                             currentTimestampInMillis: {now}",
                            ts.0
                        )));
                    }
                    StartAt::AtTimestamp(ts.0)
                }
            }
        }
    };
    let (info, position) = call
        .state
        .engine
        .start(&name, index, at)
        .map_err(|e| call.engine_error(e))?;
    let it = Iterator {
        stream: name,
        stream_id: info.id,
        shard: index,
        position,
        issued_ms: now,
    };
    Ok(Some(json!({
        "ShardIterator": it.encode(&iterator_key(&info.meta.iterator_key)),
    })))
}

pub(crate) fn get_records(call: &Call) -> KinesisResult<Option<Value>> {
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Input {
        shard_iterator: Option<String>,
        limit: Option<i64>,
        #[serde(rename = "StreamARN")]
        stream_arn: Option<String>,
    }
    let input: Input = call.input()?;
    let text = input
        .shard_iterator
        .ok_or_else(|| validate::null("shardIterator"))?;
    if text.is_empty() || text.len() > 512 {
        return Err(KinesisError::validation(
            &text,
            "shardIterator",
            "Member must have length between 1 and 512",
        ));
    }
    let limit = match input.limit {
        Some(l) if l > MAX_GET_RECORDS => {
            return Err(KinesisError::invalid(format!(
                "Limit {l} is greater than the largest GetRecords allows ({MAX_GET_RECORDS})."
            )));
        }
        Some(l) => {
            validate::range("limit", l, 1, MAX_GET_RECORDS)?;
            usize::try_from(l).unwrap_or(10_000)
        }
        None => 10_000,
    };
    let invalid = || KinesisError::invalid("Invalid ShardIterator.");
    let (name, stream_id) = Iterator::peek_stream(&text).ok_or_else(invalid)?;
    if !validate::is_name(&name) {
        return Err(invalid());
    }
    call.authorize(Some(&name))?;
    if let Some(arn) = &input.stream_arn {
        let named = validate::stream_target(&call.state, None, Some(arn))?;
        if named != name {
            return Err(KinesisError::invalid(
                "StreamARN does not name the stream of the ShardIterator.",
            ));
        }
    }
    let info = describe(call, &name)?;
    if info.id != stream_id {
        // The stream of this iterator was deleted (a stream of the same name may exist).
        return Err(KinesisError::ResourceNotFoundException(format!(
            "The stream of this shard iterator, {name} under account {}, no longer exists.",
            call.state.cfg.account_id
        )));
    }
    let now = call.state.now_ms();
    let key = iterator_key(&info.meta.iterator_key);
    let it = Iterator::decode(&text, &key, now).map_err(|e| match e {
        Refused::Invalid => invalid(),
        Refused::Expired { issued_ms } => KinesisError::ExpiredIteratorException(format!(
            "Iterator expired. The iterator was created at time {issued_ms} ms while right now \
             it is {now} ms, which is further in the future than the tolerated delay of \
             300000 milliseconds."
        )),
    })?;
    let batch = call
        .state
        .engine
        .read(
            &name,
            it.stream_id,
            it.shard,
            it.position,
            limit,
            MAX_GET_RECORDS_BYTES,
        )
        .map_err(|e| call.engine_error(e))?;
    let kind = encryption_type(&info);
    let m = metrics();
    let mut bytes = 0u64;
    let records: Vec<Value> = batch
        .records
        .iter()
        .map(|r| {
            bytes += (r.data.len() + r.partition_key.len()) as u64;
            json!({
                "SequenceNumber": r.sequence.to_string(),
                "ApproximateArrivalTimestamp": EpochMs(r.arrival_ms),
                "Data": BASE64.encode(&r.data),
                "PartitionKey": r.partition_key,
                "EncryptionType": kind,
            })
        })
        .collect();
    m.records_out.inc_by(&[&name], records.len() as u64);
    m.bytes_out.inc_by(&[&name], bytes);
    m.iterator_age_ms.set(
        &[&name],
        i64::try_from(batch.millis_behind_latest).unwrap_or(i64::MAX),
    );
    let mut out = json!({
        "Records": records,
        "MillisBehindLatest": batch.millis_behind_latest,
    });
    if let Some(next) = batch.next {
        let next_it = Iterator {
            position: next,
            issued_ms: now,
            ..it
        };
        crate::wire::set(&mut out, "NextShardIterator", json!(next_it.encode(&key)));
    } else {
        let children: Vec<Value> = batch
            .children
            .iter()
            .map(|c| {
                json!({
                    "ShardId": shard_id(c.index),
                    "ParentShards": c.parents.iter().map(|p| shard_id(*p)).collect::<Vec<_>>(),
                    "HashKeyRange": {
                        "StartingHashKey": c.start_hash.to_string(),
                        "EndingHashKey": c.end_hash.to_string(),
                    },
                })
            })
            .collect();
        crate::wire::set(&mut out, "ChildShards", json!(children));
    }
    Ok(Some(out))
}
