//! Stream operations: create, describe, list, delete, retention, tags, encryption,
//! monitoring, capacity mode, record size and limits.
//!
//! Streams are `ACTIVE` from the moment CreateStream returns, and stay so through every
//! change (AWS passes through `CREATING` and `UPDATING` for seconds; its waiters and every
//! client that polls for `ACTIVE` see it at once here).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};
use vigil_api_common::wire::EpochMs;
use vigil_datastreams::model::{
    DEFAULT_MAX_RECORD_KIB, Encryption, MAX_MAX_RECORD_KIB, ShardMeta, StreamInfo,
};
use vigil_datastreams::{NewStream, StreamMode};

use crate::error::{KinesisError, KinesisResult};
use crate::service::{Call, KinesisState};
use crate::validate;

/// The shard-level metrics `EnableEnhancedMonitoring` takes (`ALL` stands for every one).
pub const METRICS: [&str; 7] = [
    "IncomingBytes",
    "IncomingRecords",
    "OutgoingBytes",
    "OutgoingRecords",
    "WriteProvisionedThroughputExceeded",
    "ReadProvisionedThroughputExceeded",
    "IteratorAgeMilliseconds",
];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StreamModeDetails {
    stream_mode: String,
}

fn mode_of(d: &StreamModeDetails) -> KinesisResult<StreamMode> {
    match validate::one_of(
        "streamModeDetails.streamMode",
        &d.stream_mode,
        &["PROVISIONED", "ON_DEMAND"],
    )? {
        "ON_DEMAND" => Ok(StreamMode::OnDemand),
        _ => Ok(StreamMode::Provisioned),
    }
}

fn mode_name(m: StreamMode) -> &'static str {
    match m {
        StreamMode::Provisioned => "PROVISIONED",
        StreamMode::OnDemand => "ON_DEMAND",
    }
}

/// The shards of a stream a caller sees: open ones, and closed ones whose records may still
/// be kept (closed less than the retention period ago).
pub fn visible_shards(info: &StreamInfo, now_ms: u64) -> Vec<&ShardMeta> {
    let retention_ms = u64::from(info.retention_hours) * 3_600_000;
    info.meta
        .shards
        .iter()
        .filter(|s| {
            s.closed_ms
                .is_none_or(|c| c.saturating_add(retention_ms) > now_ms)
        })
        .collect()
}

/// A `Shard` of the model.
pub fn shard_json(s: &ShardMeta) -> Value {
    let mut range = json!({ "StartingSequenceNumber": s.starting_sequence().to_string() });
    if let Some(end) = s.ending_sequence() {
        crate::wire::set(&mut range, "EndingSequenceNumber", json!(end.to_string()));
    }
    let mut v = json!({
        "ShardId": s.id(),
        "HashKeyRange": {
            "StartingHashKey": s.start_hash.to_string(),
            "EndingHashKey": s.end_hash.to_string(),
        },
        "SequenceNumberRange": range,
    });
    if let Some(p) = s.parent {
        crate::wire::set(
            &mut v,
            "ParentShardId",
            json!(vigil_datastreams::model::shard_id(p)),
        );
    }
    if let Some(p) = s.adjacent_parent {
        crate::wire::set(
            &mut v,
            "AdjacentParentShardId",
            json!(vigil_datastreams::model::shard_id(p)),
        );
    }
    v
}

fn monitoring(info: &StreamInfo) -> Value {
    let metrics: Vec<&String> = info.meta.shard_level_metrics.iter().collect();
    json!([{ "ShardLevelMetrics": metrics }])
}

fn encryption(info: &StreamInfo, v: &mut Value) {
    match &info.meta.encryption {
        Some(e) => {
            crate::wire::set(v, "EncryptionType", json!(e.kind));
            crate::wire::set(v, "KeyId", json!(e.key_id));
        }
        None => crate::wire::set(v, "EncryptionType", json!("NONE")),
    }
}

/// The `EncryptionType` records of a stream report.
pub fn encryption_type(info: &StreamInfo) -> &str {
    info.meta
        .encryption
        .as_ref()
        .map_or("NONE", |e| e.kind.as_str())
}

fn engine<T>(call: &Call, r: vigil_datastreams::Result<T>) -> KinesisResult<T> {
    r.map_err(|e| call.engine_error(e))
}

// ---- CreateStream, DeleteStream ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateStreamInput {
    stream_name: Option<String>,
    shard_count: Option<i64>,
    stream_mode_details: Option<StreamModeDetails>,
    tags: Option<BTreeMap<String, String>>,
    #[serde(rename = "WarmThroughputMiBps")]
    warm_throughput_mibps: Option<i64>,
    #[serde(rename = "MaxRecordSizeInKiB")]
    max_record_size_in_kib: Option<i64>,
}

pub(crate) fn create_stream(call: &Call) -> KinesisResult<Option<Value>> {
    let input: CreateStreamInput = call.input()?;
    let name = input
        .stream_name
        .ok_or_else(|| validate::null("streamName"))?;
    validate::stream_name("streamName", &name)?;
    call.authorize(Some(&name))?;
    let mode = match &input.stream_mode_details {
        Some(d) => mode_of(d)?,
        None => StreamMode::Provisioned,
    };
    let shard_count = match (mode, input.shard_count) {
        (StreamMode::Provisioned, None) => {
            return Err(KinesisError::invalid(
                "ShardCount is required for a stream in PROVISIONED mode.",
            ));
        }
        (_, Some(n)) => {
            validate::range("shardCount", n, 1, 100_000)?;
            u32::try_from(n).unwrap_or(u32::MAX)
        }
        (StreamMode::OnDemand, None) => 0,
    };
    if let Some(w) = input.warm_throughput_mibps {
        validate::range("warmThroughputMiBps", w, 0, i64::from(i32::MAX))?;
    }
    let max_kib = match input.max_record_size_in_kib {
        Some(k) => {
            validate::range(
                "maxRecordSizeInKiB",
                k,
                i64::from(DEFAULT_MAX_RECORD_KIB),
                i64::from(MAX_MAX_RECORD_KIB),
            )?;
            u32::try_from(k).unwrap_or(DEFAULT_MAX_RECORD_KIB)
        }
        None => DEFAULT_MAX_RECORD_KIB,
    };
    let tags = input.tags.unwrap_or_default();
    if !tags.is_empty() {
        validate::tags(&tags)?;
        if tags.len() > validate::MAX_TAGS {
            return Err(KinesisError::invalid(format!(
                "A stream can have at most {} tags.",
                validate::MAX_TAGS
            )));
        }
    }
    let engine_ = &call.state.engine;
    engine(
        call,
        engine_.create(NewStream {
            name: name.clone(),
            mode,
            shard_count,
            tags,
        }),
    )?;
    if max_kib != DEFAULT_MAX_RECORD_KIB {
        engine(
            call,
            engine_.update(&name, |_, meta| {
                meta.max_record_size_kib = max_kib;
                Ok(())
            }),
        )?;
    }
    tracing::info!(stream = name, ?mode, shard_count, "data stream created");
    Ok(None)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StreamRefInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
}

pub(crate) fn delete_stream(call: &Call) -> KinesisResult<Option<Value>> {
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Input {
        stream_name: Option<String>,
        #[serde(rename = "StreamARN")]
        stream_arn: Option<String>,
        enforce_consumer_deletion: Option<bool>,
    }
    let input: Input = call.input()?;
    let _ = input.enforce_consumer_deletion;
    let name = call.stream(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    engine(call, call.state.engine.delete(&name))?;
    let m = crate::metrics::metrics();
    m.iterator_age_ms.remove(&[&name]);
    tracing::info!(stream = name, "data stream deleted");
    Ok(None)
}

// ---- DescribeStream, DescribeStreamSummary, ListStreams ----

fn description_head(state: &KinesisState, info: &StreamInfo) -> Value {
    let mut v = json!({
        "StreamName": info.name,
        "StreamARN": state.stream_arn(&info.name),
        "StreamStatus": "ACTIVE",
        "StreamModeDetails": { "StreamMode": mode_name(info.meta.mode) },
        "RetentionPeriodHours": info.retention_hours,
        "StreamCreationTimestamp": EpochMs(info.created_ms),
        "EnhancedMonitoring": monitoring(info),
    });
    encryption(info, &mut v);
    v
}

pub(crate) fn describe_stream(call: &Call) -> KinesisResult<Option<Value>> {
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Input {
        stream_name: Option<String>,
        #[serde(rename = "StreamARN")]
        stream_arn: Option<String>,
        limit: Option<i64>,
        exclusive_start_shard_id: Option<String>,
    }
    let input: Input = call.input()?;
    let limit = match input.limit {
        Some(l) => {
            validate::range("limit", l, 1, 10_000)?;
            usize::try_from(l.min(100)).unwrap_or(100)
        }
        None => 100,
    };
    let after = match &input.exclusive_start_shard_id {
        Some(id) => Some(validate::shard("exclusiveStartShardId", id)?.unwrap_or(u32::MAX)),
        None => None,
    };
    let name = call.stream(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    let info = engine(call, call.state.engine.describe(&name))?;
    let shards: Vec<&ShardMeta> = visible_shards(&info, call.state.now_ms())
        .into_iter()
        .filter(|s| after.is_none_or(|a| s.index > a))
        .collect();
    let has_more = shards.len() > limit;
    let page: Vec<Value> = shards.into_iter().take(limit).map(shard_json).collect();
    let mut d = description_head(&call.state, &info);
    crate::wire::set(&mut d, "Shards", json!(page));
    crate::wire::set(&mut d, "HasMoreShards", json!(has_more));
    Ok(Some(json!({ "StreamDescription": d })))
}

pub(crate) fn describe_stream_summary(call: &Call) -> KinesisResult<Option<Value>> {
    let input: StreamRefInput = call.input()?;
    let name = call.stream(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    let info = engine(call, call.state.engine.describe(&name))?;
    let mut d = description_head(&call.state, &info);
    crate::wire::set(
        &mut d,
        "OpenShardCount",
        json!(info.meta.open_shards().count()),
    );
    crate::wire::set(&mut d, "ConsumerCount", json!(0));
    crate::wire::set(
        &mut d,
        "MaxRecordSizeInKiB",
        json!(info.meta.max_record_size_kib),
    );
    Ok(Some(json!({ "StreamDescriptionSummary": d })))
}

pub(crate) fn list_streams(call: &Call) -> KinesisResult<Option<Value>> {
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Input {
        limit: Option<i64>,
        exclusive_start_stream_name: Option<String>,
        next_token: Option<String>,
    }
    let input: Input = call.input()?;
    call.authorize(None)?;
    let limit = match input.limit {
        Some(l) => {
            validate::range("limit", l, 1, 10_000)?;
            usize::try_from(l.min(100)).unwrap_or(100)
        }
        None => 100,
    };
    let now = call.state.now_ms();
    let after = match (&input.next_token, &input.exclusive_start_stream_name) {
        (Some(t), _) => Some(crate::shards::token(call, b'S', t, now)?),
        (None, Some(n)) => {
            validate::stream_name("exclusiveStartStreamName", n)?;
            Some(n.clone())
        }
        (None, None) => None,
    };
    let mut names = Vec::new();
    let mut summaries = Vec::new();
    let mut cursor = after;
    let mut has_more = false;
    'pages: loop {
        let page = call.state.engine.list(cursor.as_deref(), 500);
        let Some(last) = page.last() else { break };
        cursor = Some(last.name.clone());
        for info in page {
            if call.authorize(Some(&info.name)).is_err() {
                continue;
            }
            if names.len() == limit {
                has_more = true;
                break 'pages;
            }
            summaries.push(json!({
                "StreamName": info.name,
                "StreamARN": call.state.stream_arn(&info.name),
                "StreamStatus": "ACTIVE",
                "StreamModeDetails": { "StreamMode": mode_name(info.meta.mode) },
                "StreamCreationTimestamp": EpochMs(info.created_ms),
            }));
            names.push(info.name);
        }
    }
    let mut out = json!({
        "StreamNames": names,
        "HasMoreStreams": has_more,
        "StreamSummaries": summaries,
    });
    if has_more && let Some(last) = names.last() {
        crate::wire::set(
            &mut out,
            "NextToken",
            json!(call.state.tokens.encode(b'S', last, now)),
        );
    }
    Ok(Some(out))
}

// ---- retention ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RetentionInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    retention_period_hours: Option<i64>,
}

fn retention(call: &Call, increase: bool) -> KinesisResult<Option<Value>> {
    let input: RetentionInput = call.input()?;
    let hours = input
        .retention_period_hours
        .ok_or_else(|| validate::null("retentionPeriodHours"))?;
    let name = call.stream(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    let (min, max) = (
        i64::from(vigil_datastreams::engine::DEFAULT_RETENTION_HOURS),
        i64::from(vigil_datastreams::engine::MAX_RETENTION_HOURS),
    );
    if !(min..=max).contains(&hours) {
        return Err(KinesisError::invalid(format!(
            "Minimum allowed retention period is {min} hours and maximum is {max} hours; {hours} \
             was requested."
        )));
    }
    let hours = u32::try_from(hours).unwrap_or(u32::MAX);
    engine(
        call,
        call.state.engine.update(&name, |current, _| {
            if increase && hours < *current {
                return Err(vigil_datastreams::Error::Invalid(format!(
                    "Requested retention period ({hours} hours) for stream {name} can not be \
                     shorter than existing retention period ({current} hours). Use \
                     DecreaseRetentionPeriod API."
                )));
            }
            if !increase && hours > *current {
                return Err(vigil_datastreams::Error::Invalid(format!(
                    "Requested retention period ({hours} hours) for stream {name} can not be \
                     longer than existing retention period ({current} hours). Use \
                     IncreaseRetentionPeriod API."
                )));
            }
            *current = hours;
            Ok(())
        }),
    )?;
    Ok(None)
}

pub(crate) fn increase_retention(call: &Call) -> KinesisResult<Option<Value>> {
    retention(call, true)
}

pub(crate) fn decrease_retention(call: &Call) -> KinesisResult<Option<Value>> {
    retention(call, false)
}

// ---- tags ----

fn add_tags(call: &Call, name: &str, tags: BTreeMap<String, String>) -> KinesisResult<()> {
    validate::tags(&tags)?;
    engine(
        call,
        call.state.engine.update(name, |_, meta| {
            let mut next = meta.tags.clone();
            next.extend(tags);
            if next.len() > validate::MAX_TAGS {
                return Err(vigil_datastreams::Error::Invalid(format!(
                    "Failed to add tags to stream {name}: a stream can have at most {} tags.",
                    validate::MAX_TAGS
                )));
            }
            meta.tags = next;
            Ok(())
        }),
    )?;
    Ok(())
}

fn remove_tags(call: &Call, name: &str, keys: &[String]) -> KinesisResult<()> {
    validate::tag_keys(keys)?;
    engine(
        call,
        call.state.engine.update(name, |_, meta| {
            for k in keys {
                meta.tags.remove(k);
            }
            Ok(())
        }),
    )?;
    Ok(())
}

pub(crate) fn add_tags_to_stream(call: &Call) -> KinesisResult<Option<Value>> {
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Input {
        stream_name: Option<String>,
        #[serde(rename = "StreamARN")]
        stream_arn: Option<String>,
        tags: Option<BTreeMap<String, String>>,
    }
    let input: Input = call.input()?;
    let tags = input.tags.ok_or_else(|| validate::null("tags"))?;
    let name = call.stream(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    add_tags(call, &name, tags)?;
    Ok(None)
}

pub(crate) fn remove_tags_from_stream(call: &Call) -> KinesisResult<Option<Value>> {
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Input {
        stream_name: Option<String>,
        #[serde(rename = "StreamARN")]
        stream_arn: Option<String>,
        tag_keys: Option<Vec<String>>,
    }
    let input: Input = call.input()?;
    let keys = input.tag_keys.ok_or_else(|| validate::null("tagKeys"))?;
    let name = call.stream(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    remove_tags(call, &name, &keys)?;
    Ok(None)
}

pub(crate) fn list_tags_for_stream(call: &Call) -> KinesisResult<Option<Value>> {
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Input {
        stream_name: Option<String>,
        #[serde(rename = "StreamARN")]
        stream_arn: Option<String>,
        exclusive_start_tag_key: Option<String>,
        limit: Option<i64>,
    }
    let input: Input = call.input()?;
    let limit = match input.limit {
        Some(l) => {
            validate::range("limit", l, 1, 50)?;
            usize::try_from(l).unwrap_or(50)
        }
        None => 50,
    };
    let name = call.stream(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    let info = engine(call, call.state.engine.describe(&name))?;
    let after = input.exclusive_start_tag_key;
    let tags: Vec<(&String, &String)> = info
        .meta
        .tags
        .iter()
        .filter(|(k, _)| after.as_ref().is_none_or(|a| *k > a))
        .collect();
    let has_more = tags.len() > limit;
    let list: Vec<Value> = tags
        .into_iter()
        .take(limit)
        .map(|(k, v)| json!({ "Key": k, "Value": v }))
        .collect();
    Ok(Some(json!({ "Tags": list, "HasMoreTags": has_more })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResourceInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
    tags: Option<BTreeMap<String, String>>,
    tag_keys: Option<Vec<String>>,
}

/// The stream a `ResourceARN` names (a consumer ARN names none here: Vigil has no consumers).
fn resource(call: &Call, arn: Option<&str>) -> KinesisResult<String> {
    let arn = arn.ok_or_else(|| validate::null("resourceARN"))?;
    if arn.contains("/consumer/") {
        return Err(KinesisError::ResourceNotFoundException(format!(
            "Consumer {arn} not found: Vigil has no stream consumers."
        )));
    }
    call.stream(None, Some(arn))
}

pub(crate) fn tag_resource(call: &Call) -> KinesisResult<Option<Value>> {
    let input: ResourceInput = call.input()?;
    let name = resource(call, input.resource_arn.as_deref())?;
    let tags = input.tags.ok_or_else(|| validate::null("tags"))?;
    add_tags(call, &name, tags)?;
    Ok(None)
}

pub(crate) fn untag_resource(call: &Call) -> KinesisResult<Option<Value>> {
    let input: ResourceInput = call.input()?;
    let name = resource(call, input.resource_arn.as_deref())?;
    let keys = input.tag_keys.ok_or_else(|| validate::null("tagKeys"))?;
    remove_tags(call, &name, &keys)?;
    Ok(None)
}

pub(crate) fn list_tags_for_resource(call: &Call) -> KinesisResult<Option<Value>> {
    let input: ResourceInput = call.input()?;
    let name = resource(call, input.resource_arn.as_deref())?;
    let info = engine(call, call.state.engine.describe(&name))?;
    let list: Vec<Value> = info
        .meta
        .tags
        .iter()
        .map(|(k, v)| json!({ "Key": k, "Value": v }))
        .collect();
    Ok(Some(json!({ "Tags": list })))
}

// ---- encryption, monitoring ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EncryptionInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    encryption_type: Option<String>,
    key_id: Option<String>,
}

fn encryption_input(call: &Call) -> KinesisResult<(String, String)> {
    let input: EncryptionInput = call.input()?;
    let kind = input
        .encryption_type
        .ok_or_else(|| validate::null("encryptionType"))?;
    validate::one_of("encryptionType", &kind, &["NONE", "KMS"])?;
    if kind != "KMS" {
        return Err(KinesisError::invalid(
            "EncryptionType must be KMS (the only server-side encryption Kinesis has).",
        ));
    }
    let key = input.key_id.ok_or_else(|| validate::null("keyId"))?;
    if key.is_empty() || key.len() > 2048 {
        return Err(KinesisError::validation(
            &key,
            "keyId",
            "Member must have length between 1 and 2048",
        ));
    }
    let name = call.stream(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    Ok((name, key))
}

pub(crate) fn start_encryption(call: &Call) -> KinesisResult<Option<Value>> {
    let (name, key) = encryption_input(call)?;
    engine(
        call,
        call.state.engine.update(&name, |_, meta| {
            meta.encryption = Some(Encryption {
                kind: "KMS".into(),
                key_id: key,
            });
            Ok(())
        }),
    )?;
    Ok(None)
}

pub(crate) fn stop_encryption(call: &Call) -> KinesisResult<Option<Value>> {
    let (name, _) = encryption_input(call)?;
    engine(
        call,
        call.state.engine.update(&name, |_, meta| {
            meta.encryption = None;
            Ok(())
        }),
    )?;
    Ok(None)
}

fn monitoring_change(call: &Call, enable: bool) -> KinesisResult<Option<Value>> {
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Input {
        stream_name: Option<String>,
        #[serde(rename = "StreamARN")]
        stream_arn: Option<String>,
        shard_level_metrics: Option<Vec<String>>,
    }
    let input: Input = call.input()?;
    let asked = input
        .shard_level_metrics
        .ok_or_else(|| validate::null("shardLevelMetrics"))?;
    if asked.is_empty() || asked.len() > 7 {
        return Err(KinesisError::validation(
            &format!("{} metrics", asked.len()),
            "shardLevelMetrics",
            "Member must have length between 1 and 7",
        ));
    }
    let mut allowed: Vec<&str> = METRICS.to_vec();
    allowed.push("ALL");
    let mut names: Vec<String> = Vec::new();
    for m in &asked {
        match validate::one_of("shardLevelMetrics.member", m, &allowed)? {
            "ALL" => names.extend(METRICS.iter().map(|s| (*s).to_owned())),
            other => names.push(other.to_owned()),
        }
    }
    let name = call.stream(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    let before = engine(call, call.state.engine.describe(&name))?;
    let after = engine(
        call,
        call.state.engine.update(&name, |_, meta| {
            for n in names {
                if enable {
                    meta.shard_level_metrics.insert(n);
                } else {
                    meta.shard_level_metrics.remove(&n);
                }
            }
            Ok(())
        }),
    )?;
    Ok(Some(json!({
        "StreamName": name,
        "StreamARN": call.state.stream_arn(&name),
        "CurrentShardLevelMetrics": before.meta.shard_level_metrics,
        "DesiredShardLevelMetrics": after.meta.shard_level_metrics,
    })))
}

pub(crate) fn enable_monitoring(call: &Call) -> KinesisResult<Option<Value>> {
    monitoring_change(call, true)
}

pub(crate) fn disable_monitoring(call: &Call) -> KinesisResult<Option<Value>> {
    monitoring_change(call, false)
}

// ---- limits, account settings, mode, record size ----

pub(crate) fn describe_limits(call: &Call) -> KinesisResult<Option<Value>> {
    call.authorize(None)?;
    let (open, on_demand) = call.state.engine.usage();
    let limits = call.state.engine.limits();
    Ok(Some(json!({
        "ShardLimit": limits.max_shards,
        "OpenShardCount": open,
        "OnDemandStreamCount": on_demand,
        "OnDemandStreamCountLimit": limits.max_on_demand_streams,
    })))
}

pub(crate) fn describe_account_settings(call: &Call) -> KinesisResult<Option<Value>> {
    call.authorize(None)?;
    Ok(Some(json!({
        "MinimumThroughputBillingCommitment": { "Status": "DISABLED" }
    })))
}

pub(crate) fn update_stream_mode(call: &Call) -> KinesisResult<Option<Value>> {
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Input {
        #[serde(rename = "StreamARN")]
        stream_arn: Option<String>,
        stream_mode_details: Option<StreamModeDetails>,
    }
    let input: Input = call.input()?;
    let arn = input
        .stream_arn
        .ok_or_else(|| validate::null("streamARN"))?;
    let details = input
        .stream_mode_details
        .ok_or_else(|| validate::null("streamModeDetails"))?;
    let mode = mode_of(&details)?;
    let name = call.stream(None, Some(&arn))?;
    engine(
        call,
        call.state.engine.update(&name, |_, meta| {
            if meta.mode == mode {
                return Err(vigil_datastreams::Error::InUse(format!(
                    "Stream {name} is already in {} mode.",
                    mode_name(mode)
                )));
            }
            meta.mode = mode;
            Ok(())
        }),
    )?;
    Ok(None)
}

pub(crate) fn update_max_record_size(call: &Call) -> KinesisResult<Option<Value>> {
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Input {
        #[serde(rename = "StreamARN")]
        stream_arn: Option<String>,
        #[serde(rename = "MaxRecordSizeInKiB")]
        max_record_size_in_kib: Option<i64>,
    }
    let input: Input = call.input()?;
    let kib = input
        .max_record_size_in_kib
        .ok_or_else(|| validate::null("maxRecordSizeInKiB"))?;
    validate::range(
        "maxRecordSizeInKiB",
        kib,
        i64::from(DEFAULT_MAX_RECORD_KIB),
        i64::from(MAX_MAX_RECORD_KIB),
    )?;
    let name = call.stream(None, input.stream_arn.as_deref())?;
    engine(
        call,
        call.state.engine.update(&name, |_, meta| {
            meta.max_record_size_kib = u32::try_from(kib).unwrap_or(DEFAULT_MAX_RECORD_KIB);
            Ok(())
        }),
    )?;
    Ok(None)
}
