//! The control plane (`kinesisvideo`): streams, tags, data endpoints and the stored
//! image-generation, notification and storage configurations (`../shared/spec/kvs-api.md`
//! §1). Each handler parses its input, validates it as the service model says, resolves and
//! authorises the stream, and calls the store.

use std::collections::BTreeMap;

use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use vigil_store::{NewStream, StreamRef};

use crate::service::Call;
use vigil_api_kvs_common::model::{StreamInfo, kms_key_id_from_client, parse_arn, stream_arn};
use vigil_api_kvs_common::validate;
use vigil_api_kvs_common::{KvsError, KvsResult};
use vigil_api_kvs_common::{json as ok, resolve_stream};

/// Treats `""` as absent: the C producer sends empty `DeviceName`/`MediaType`/`KmsKeyId`.
fn present(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StreamSelector {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
}

impl StreamSelector {
    fn name(&self) -> Option<&str> {
        self.stream_name.as_deref()
    }
    fn arn(&self) -> Option<&str> {
        self.stream_arn.as_deref()
    }
}

// ---- streams ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateStreamInput {
    stream_name: Option<String>,
    device_name: Option<String>,
    media_type: Option<String>,
    kms_key_id: Option<String>,
    data_retention_in_hours: Option<i64>,
    tags: Option<BTreeMap<String, String>>,
    stream_storage_configuration: Option<StorageConfiguration>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct StorageConfiguration {
    default_storage_tier: Option<String>,
}

/// Attribute keys in the store's stream record.
const ATTR_IMAGE_GENERATION: &str = "ImageGenerationConfiguration";
const ATTR_NOTIFICATION: &str = "NotificationConfiguration";
const ATTR_STORAGE: &str = "StreamStorageConfiguration";

fn storage_tier(cfg: &StorageConfiguration) -> KvsResult<Value> {
    match cfg.default_storage_tier.as_deref() {
        Some(t @ ("HOT" | "WARM")) => Ok(json!({ "DefaultStorageTier": t })),
        Some(other) => Err(KvsError::invalid(format!(
            "DefaultStorageTier {other:?} must be HOT or WARM."
        ))),
        None => Err(KvsError::invalid(
            "StreamStorageConfiguration needs DefaultStorageTier.",
        )),
    }
}

fn retention_hours(field: &str, h: i64) -> KvsResult<u32> {
    u32::try_from(h)
        .ok()
        .filter(|h| *h <= validate::MAX_RETENTION_HOURS)
        .ok_or_else(|| {
            KvsError::invalid(format!(
                "{field} {h} must be between 0 and {}.",
                validate::MAX_RETENTION_HOURS
            ))
        })
}

pub(crate) fn create_stream(call: &Call) -> KvsResult<Response> {
    let input: CreateStreamInput = call.input()?;
    let name = input
        .stream_name
        .as_deref()
        .ok_or_else(|| KvsError::invalid("StreamName is required."))?;
    validate::stream_name("StreamName", name)?;
    call.authorize(Some(name))?;
    let device_name = present(&input.device_name);
    if let Some(d) = device_name {
        validate::device_name(d)?;
    }
    let media_type = present(&input.media_type);
    if let Some(m) = media_type {
        validate::media_type(m)?;
    }
    let kms = present(&input.kms_key_id);
    if kms.is_some_and(|k| k.len() > 2048) {
        return Err(KvsError::invalid(
            "KmsKeyId must be at most 2048 characters.",
        ));
    }
    let retention = retention_hours(
        "DataRetentionInHours",
        input.data_retention_in_hours.unwrap_or(0),
    )?;
    // Absent: none; present, 1 to 50 (the model).
    let tags = match input.tags {
        Some(tags) => {
            validate::tags_added(&BTreeMap::new(), &tags)?;
            tags
        }
        None => BTreeMap::new(),
    };
    let mut attributes = BTreeMap::new();
    if let Some(s) = &input.stream_storage_configuration {
        attributes.insert(ATTR_STORAGE.to_owned(), storage_tier(s)?);
    }
    let ctx = call.state.arn_context();
    let rec = call.state.store.create_stream(NewStream {
        name: name.to_owned(),
        device_name: device_name.map(str::to_owned),
        media_type: media_type.map(str::to_owned),
        kms_key_id: kms.map(|k| kms_key_id_from_client(&ctx, k)),
        data_retention_hours: retention,
        byte_budget: None,
        tags,
        attributes,
    })?;
    tracing::info!(
        stream = rec.name,
        retention_hours = retention,
        "stream created"
    );
    Ok(ok(&json!({ "StreamARN": stream_arn(&ctx, &rec) })))
}

pub(crate) fn describe_stream(call: &Call) -> KvsResult<Response> {
    let input: StreamSelector = call.input()?;
    let rec = call.stream(input.name(), input.arn())?;
    Ok(ok(
        &json!({ "StreamInfo": StreamInfo::from_record(&call.state.arn_context(), &rec) }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListStreamsInput {
    max_results: Option<i64>,
    next_token: Option<String>,
    stream_name_condition: Option<NameCondition>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NameCondition {
    comparison_operator: Option<String>,
    comparison_value: Option<String>,
}

/// The model's longest control-plane `NextToken`.
const TOKEN_MAX: usize = 1024;

/// A ListStreams page token: the last name of the page, sealed with the listener's key
/// ([`vigil_api_common::token`]; base64, the model's pattern `[a-zA-Z0-9+/=]*`).
fn encode_token(call: &Call, last: &str) -> String {
    call.state.cfg.tokens.seal_str("ListStreams", last)
}

fn decode_token(call: &Call, token: &str) -> KvsResult<String> {
    call.state
        .cfg
        .tokens
        .open_str("ListStreams", token, TOKEN_MAX)
        .ok_or_else(|| KvsError::invalid("NextToken is not a token this server issued."))
}

pub(crate) fn list_streams(call: &Call) -> KvsResult<Response> {
    let input: ListStreamsInput = call.input()?;
    call.authorize(None)?;
    let limit = validate::max_results(input.max_results, 10_000, 10_000)?;
    let prefix = match &input.stream_name_condition {
        None => "",
        Some(c) => {
            if c.comparison_operator.as_deref().unwrap_or("BEGINS_WITH") != "BEGINS_WITH" {
                return Err(KvsError::invalid("ComparisonOperator must be BEGINS_WITH."));
            }
            // Absent: every name; present, it is a name prefix of 1 to 256 characters.
            let v = c.comparison_value.as_deref();
            if let Some(v) = v {
                validate::stream_name("ComparisonValue", v)?;
            }
            v.unwrap_or("")
        }
    };
    let after = match input.next_token.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => Some(decode_token(call, t)?),
        None => None,
    };
    // The streams the caller may see, one more than a page to know whether another follows.
    // The token is the last name returned, so it never names a stream outside the caller's
    // scope.
    let mut recs = Vec::new();
    let mut cursor = after;
    loop {
        let batch = call
            .state
            .store
            .list_streams(prefix, cursor.as_deref(), limit + 1)?;
        let exhausted = batch.len() <= limit;
        cursor = batch.last().map(|r| r.name.clone());
        recs.extend(
            batch
                .into_iter()
                .filter(|r| call.authorize(Some(&r.name)).is_ok()),
        );
        if recs.len() > limit || exhausted {
            break;
        }
    }
    let more = recs.len() > limit;
    recs.truncate(limit);
    let ctx = call.state.arn_context();
    let list: Vec<StreamInfo> = recs
        .iter()
        .map(|r| StreamInfo::from_record(&ctx, r))
        .collect();
    let mut out = serde_json::Map::new();
    out.insert("StreamInfoList".into(), json!(list));
    if more && let Some(last) = recs.last() {
        out.insert(
            "NextToken".into(),
            Value::String(encode_token(call, &last.name)),
        );
    }
    Ok(ok(&out))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateStreamInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    current_version: Option<String>,
    device_name: Option<String>,
    media_type: Option<String>,
}

fn current_version(v: Option<&str>) -> KvsResult<&str> {
    let v = v.ok_or_else(|| KvsError::invalid("CurrentVersion is required."))?;
    validate::version("CurrentVersion", v)?;
    Ok(v)
}

pub(crate) fn update_stream(call: &Call) -> KvsResult<Response> {
    let input: UpdateStreamInput = call.input()?;
    let version = current_version(input.current_version.as_deref())?;
    // Unlike CreateStream (where the C producer sends empty strings for unset), an empty
    // DeviceName or MediaType here breaks the model's minimum length.
    let device_name = input.device_name.clone();
    if let Some(d) = &device_name {
        validate::device_name(d)?;
    }
    let media_type = input.media_type.clone();
    if let Some(m) = &media_type {
        validate::media_type(m)?;
    }
    let rec = call.stream(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    call.state
        .store
        .update_stream(StreamRef::Id(rec.id), Some(version), |r| {
            if device_name.is_some() {
                r.device_name = device_name;
            }
            if media_type.is_some() {
                r.media_type = media_type;
            }
            Ok(())
        })?;
    Ok(ok(&json!({})))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteStreamInput {
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    current_version: Option<String>,
}

pub(crate) fn delete_stream(call: &Call) -> KvsResult<Response> {
    let input: DeleteStreamInput = call.input()?;
    let arn = input
        .stream_arn
        .as_deref()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| KvsError::invalid("StreamARN is required."))?;
    let version = match input.current_version.as_deref() {
        Some(v) => Some(current_version(Some(v))?),
        None => None,
    };
    let rec = call.stream(None, Some(arn))?;
    call.state
        .store
        .delete_stream(StreamRef::Id(rec.id), version)?;
    call.state.sessions.stream_deleted(rec.id);
    tracing::info!(stream = rec.name, "stream deleted");
    Ok(ok(&json!({})))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateDataRetentionInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    current_version: Option<String>,
    operation: Option<String>,
    data_retention_change_in_hours: Option<i64>,
}

pub(crate) fn update_data_retention(call: &Call) -> KvsResult<Response> {
    let input: UpdateDataRetentionInput = call.input()?;
    let version = current_version(input.current_version.as_deref())?;
    let increase = match input.operation.as_deref() {
        Some("INCREASE_DATA_RETENTION") => true,
        Some("DECREASE_DATA_RETENTION") => false,
        Some(other) => {
            return Err(KvsError::invalid(format!(
                "Operation {other:?} must be INCREASE_DATA_RETENTION or DECREASE_DATA_RETENTION."
            )));
        }
        None => return Err(KvsError::invalid("Operation is required.")),
    };
    let change = input
        .data_retention_change_in_hours
        .ok_or_else(|| KvsError::invalid("DataRetentionChangeInHours is required."))?;
    if change < 1 {
        return Err(KvsError::invalid(format!(
            "DataRetentionChangeInHours {change} must be at least 1."
        )));
    }
    let rec = call.stream(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    // A stale version is the first thing to tell (the store checks it again, atomically).
    if rec.version != version {
        return Err(KvsError::VersionMismatchException(format!(
            "The version {version} of stream {} is not the current version.",
            rec.name
        )));
    }
    let current = i64::from(rec.data_retention_hours);
    let new = if increase {
        current.saturating_add(change)
    } else {
        current - change
    };
    if !(0..=i64::from(validate::MAX_RETENTION_HOURS)).contains(&new) {
        return Err(KvsError::invalid(format!(
            "The retention would become {new} hours; it must stay between 0 and {}.",
            validate::MAX_RETENTION_HOURS
        )));
    }
    let hours = retention_hours("DataRetentionInHours", new)?;
    call.state
        .store
        .update_stream(StreamRef::Id(rec.id), Some(version), |r| {
            r.data_retention_hours = hours;
            Ok(())
        })?;
    tracing::info!(stream = rec.name, hours, "retention changed");
    Ok(ok(&json!({})))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetDataEndpointInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    #[serde(rename = "APIName")]
    api_name: Option<String>,
}

const API_NAMES: [&str; 8] = [
    "PUT_MEDIA",
    "GET_MEDIA",
    "LIST_FRAGMENTS",
    "GET_MEDIA_FOR_FRAGMENT_LIST",
    "GET_HLS_STREAMING_SESSION_URL",
    "GET_DASH_STREAMING_SESSION_URL",
    "GET_CLIP",
    "GET_IMAGES",
];

pub(crate) fn get_data_endpoint(call: &Call) -> KvsResult<Response> {
    let input: GetDataEndpointInput = call.input()?;
    match input.api_name.as_deref() {
        Some(n) if API_NAMES.contains(&n) => {}
        Some(n) => {
            return Err(KvsError::invalid(format!(
                "APIName {n:?} must be one of {}.",
                API_NAMES.join(", ")
            )));
        }
        None => return Err(KvsError::invalid("APIName is required.")),
    }
    call.stream(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    Ok(ok(&json!({ "DataEndpoint": call.endpoint() })))
}

// ---- tags ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagStreamInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    tags: Option<BTreeMap<String, String>>,
}

/// A stream for the tagging operations: a malformed ARN is `InvalidResourceFormatException`.
fn tagged_stream(
    call: &Call,
    name: Option<&str>,
    arn: Option<&str>,
) -> KvsResult<vigil_store::StreamRecord> {
    call.authorize_requested(name, arn)?;
    let rec = resolve_stream(&call.state.store, &call.state.cfg, name, arn, true)?;
    call.authorize(Some(&rec.name))?;
    Ok(rec)
}

fn add_tags(call: &Call, id: u64, tags: BTreeMap<String, String>) -> KvsResult<()> {
    call.state
        .store
        .modify_stream_metadata(StreamRef::Id(id), |existing, _| {
            validate::tags_added(existing, &tags)?;
            existing.extend(tags);
            Ok::<(), KvsError>(())
        })?;
    Ok(())
}

fn remove_tags(call: &Call, id: u64, keys: &[String]) -> KvsResult<()> {
    validate::tag_keys(keys)?;
    call.state
        .store
        .modify_stream_metadata(StreamRef::Id(id), |existing, _| {
            for k in keys {
                existing.remove(k);
            }
            Ok::<(), KvsError>(())
        })?;
    Ok(())
}

pub(crate) fn tag_stream(call: &Call) -> KvsResult<Response> {
    let input: TagStreamInput = call.input()?;
    let tags = input
        .tags
        .ok_or_else(|| KvsError::invalid("Tags is required."))?;
    let rec = tagged_stream(
        call,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    add_tags(call, rec.id, tags)?;
    Ok(ok(&json!({})))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UntagStreamInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    tag_key_list: Option<Vec<String>>,
}

pub(crate) fn untag_stream(call: &Call) -> KvsResult<Response> {
    let input: UntagStreamInput = call.input()?;
    let keys = input
        .tag_key_list
        .ok_or_else(|| KvsError::invalid("TagKeyList is required."))?;
    let rec = tagged_stream(
        call,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    remove_tags(call, rec.id, &keys)?;
    Ok(ok(&json!({})))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListTagsForStreamInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    next_token: Option<String>,
}

/// All tags fit one page (at most 50); a token from elsewhere is rejected.
fn check_tag_token(token: Option<&str>) -> KvsResult<()> {
    match token.filter(|t| !t.is_empty()) {
        None => Ok(()),
        Some(_) => Err(KvsError::invalid(
            "NextToken is not a token this server issued.",
        )),
    }
}

pub(crate) fn list_tags_for_stream(call: &Call) -> KvsResult<Response> {
    let input: ListTagsForStreamInput = call.input()?;
    check_tag_token(input.next_token.as_deref())?;
    let rec = tagged_stream(
        call,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    Ok(ok(&json!({ "Tags": rec.tags })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagResourceInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
    tags: Option<Vec<TagEntry>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagEntry {
    key: Option<String>,
    value: Option<String>,
}

/// The stream a generic tagging call names (signaling channels are not Vigil's).
fn resource(call: &Call, arn: Option<&str>) -> KvsResult<vigil_store::StreamRecord> {
    let arn = arn
        .filter(|a| !a.is_empty())
        .ok_or_else(|| KvsError::invalid("ResourceARN is required."))?;
    // These operations' model has no InvalidResourceFormatException: a malformed ARN breaks
    // the member's pattern (InvalidArgumentException).
    let parsed = parse_arn(arn).ok_or_else(|| {
        KvsError::invalid(format!("ResourceARN {arn:?} is not a Kinesis Video ARN."))
    })?;
    if parsed.kind != "stream" {
        return Err(KvsError::ResourceNotFoundException(format!(
            "The resource {arn} is not found."
        )));
    }
    let denied = |e| match e {
        KvsError::NotAuthorizedException(m) => KvsError::AccessDeniedException(m),
        other => other,
    };
    call.authorize(Some(parsed.name)).map_err(denied)?;
    let rec = resolve_stream(&call.state.store, &call.state.cfg, None, Some(arn), true)?;
    call.authorize(Some(&rec.name)).map_err(denied)?;
    Ok(rec)
}

pub(crate) fn tag_resource(call: &Call) -> KvsResult<Response> {
    let input: TagResourceInput = call.input()?;
    let list = input
        .tags
        .ok_or_else(|| KvsError::invalid("Tags is required."))?;
    if list.is_empty() || list.len() > validate::MAX_TAGS {
        return Err(KvsError::invalid(format!(
            "Tags must hold 1 to {} tags.",
            validate::MAX_TAGS
        )));
    }
    let mut tags = BTreeMap::new();
    for t in list {
        match (t.key, t.value) {
            (Some(k), Some(v)) => {
                tags.insert(k, v);
            }
            _ => return Err(KvsError::invalid("Each tag needs a Key and a Value.")),
        }
    }
    let rec = resource(call, input.resource_arn.as_deref())?;
    add_tags(call, rec.id, tags)?;
    Ok(ok(&json!({})))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UntagResourceInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
    tag_key_list: Option<Vec<String>>,
}

pub(crate) fn untag_resource(call: &Call) -> KvsResult<Response> {
    let input: UntagResourceInput = call.input()?;
    let keys = input
        .tag_key_list
        .ok_or_else(|| KvsError::invalid("TagKeyList is required."))?;
    let rec = resource(call, input.resource_arn.as_deref())?;
    remove_tags(call, rec.id, &keys)?;
    Ok(ok(&json!({})))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListTagsForResourceInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
    next_token: Option<String>,
}

pub(crate) fn list_tags_for_resource(call: &Call) -> KvsResult<Response> {
    let input: ListTagsForResourceInput = call.input()?;
    check_tag_token(input.next_token.as_deref())?;
    let rec = resource(call, input.resource_arn.as_deref())?;
    Ok(ok(&json!({ "Tags": rec.tags })))
}

// ---- stored configurations ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateImageGenerationInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    image_generation_configuration: Option<Value>,
}

fn string_field<'a>(v: &'a Value, field: &str) -> KvsResult<&'a str> {
    v.get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| KvsError::invalid(format!("{field} is required and must be a string.")))
}

fn one_of(field: &str, value: &str, allowed: &[&str]) -> KvsResult<()> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(KvsError::invalid(format!(
            "{field} {value:?} must be one of {}.",
            allowed.join(", ")
        )))
    }
}

fn integer_in(v: &Value, field: &str, range: std::ops::RangeInclusive<i64>) -> KvsResult<()> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(()),
        Some(x) => match x.as_i64() {
            Some(n) if range.contains(&n) => Ok(()),
            _ => Err(KvsError::invalid(format!(
                "{field} must be an integer from {} to {}.",
                range.start(),
                range.end()
            ))),
        },
    }
}

/// Checks an `ImageGenerationConfiguration` against the model (§1.4).
fn check_image_generation(c: &Value, region: &str) -> KvsResult<()> {
    if !c.is_object() {
        return Err(KvsError::invalid(
            "ImageGenerationConfiguration must be an object.",
        ));
    }
    one_of(
        "Status",
        string_field(c, "Status")?,
        &["ENABLED", "DISABLED"],
    )?;
    one_of(
        "ImageSelectorType",
        string_field(c, "ImageSelectorType")?,
        &["SERVER_TIMESTAMP", "PRODUCER_TIMESTAMP"],
    )?;
    one_of("Format", string_field(c, "Format")?, &["JPEG", "PNG"])?;
    let interval = c
        .get("SamplingInterval")
        .and_then(Value::as_i64)
        .ok_or_else(|| KvsError::invalid("SamplingInterval is required."))?;
    if !(200..=20_000).contains(&interval) {
        return Err(KvsError::invalid(format!(
            "SamplingInterval {interval} must be between 200 and 20000 milliseconds."
        )));
    }
    let dest = c
        .get("DestinationConfig")
        .filter(|d| d.is_object())
        .ok_or_else(|| KvsError::invalid("DestinationConfig is required."))?;
    let uri = string_field(dest, "Uri")?;
    let scheme_ok = uri.split_once(':').is_some_and(|(scheme, rest)| {
        !scheme.is_empty()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !rest.trim_start_matches("//").is_empty()
    });
    if !scheme_ok || uri.len() > 255 {
        return Err(KvsError::invalid(format!(
            "DestinationConfig.Uri {uri:?} must be a URI such as s3://bucket/prefix."
        )));
    }
    let dest_region = string_field(dest, "DestinationRegion")?;
    if dest_region != region {
        return Err(KvsError::invalid(format!(
            "DestinationRegion {dest_region:?} must be the stream's region, {region}."
        )));
    }
    if let Some(fc) = c.get("FormatConfig").filter(|v| !v.is_null()) {
        let map = fc
            .as_object()
            .filter(|m| m.len() == 1)
            .ok_or_else(|| KvsError::invalid("FormatConfig must be a map of one entry."))?;
        for (k, v) in map {
            let q = v.as_str().and_then(|s| s.parse::<u32>().ok());
            if k != "JPEGQuality" || !q.is_some_and(|q| (1..=100).contains(&q)) {
                return Err(KvsError::invalid(
                    "FormatConfig takes JPEGQuality, a string from \"1\" to \"100\".",
                ));
            }
        }
    }
    integer_in(c, "WidthPixels", 1..=3840)?;
    integer_in(c, "HeightPixels", 1..=2160)?;
    Ok(())
}

/// Stores (or, given null, deletes) a configuration attribute.
fn set_attribute(call: &Call, id: u64, key: &str, value: Option<Value>) -> KvsResult<()> {
    call.state
        .store
        .modify_stream_metadata(StreamRef::Id(id), |_, attrs| {
            match value {
                Some(v) => attrs.insert(key.to_owned(), v),
                None => attrs.remove(key),
            };
            Ok::<(), KvsError>(())
        })?;
    Ok(())
}

fn require_retention(rec: &vigil_store::StreamRecord) -> KvsResult<()> {
    if rec.data_retention_hours == 0 {
        return Err(KvsError::NoDataRetentionException(format!(
            "The stream {} does not retain data (DataRetentionInHours is 0).",
            rec.name
        )));
    }
    Ok(())
}

pub(crate) fn update_image_generation_configuration(call: &Call) -> KvsResult<Response> {
    let input: UpdateImageGenerationInput = call.input()?;
    let cfg = input
        .image_generation_configuration
        .filter(|v| !v.is_null());
    if let Some(c) = &cfg {
        check_image_generation(c, &call.state.cfg.region)?;
    }
    let rec = call.stream(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    if cfg.is_some() {
        require_retention(&rec)?;
    }
    set_attribute(call, rec.id, ATTR_IMAGE_GENERATION, cfg)?;
    Ok(ok(&json!({})))
}

pub(crate) fn describe_image_generation_configuration(call: &Call) -> KvsResult<Response> {
    let input: StreamSelector = call.input()?;
    let rec = call.stream(input.name(), input.arn())?;
    let mut out = serde_json::Map::new();
    if let Some(c) = rec.attributes.get(ATTR_IMAGE_GENERATION) {
        out.insert("ImageGenerationConfiguration".into(), c.clone());
    }
    Ok(ok(&out))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateNotificationInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    notification_configuration: Option<Value>,
}

fn check_notification(c: &Value) -> KvsResult<()> {
    if !c.is_object() {
        return Err(KvsError::invalid(
            "NotificationConfiguration must be an object.",
        ));
    }
    one_of(
        "Status",
        string_field(c, "Status")?,
        &["ENABLED", "DISABLED"],
    )?;
    let dest = c
        .get("DestinationConfig")
        .filter(|d| d.is_object())
        .ok_or_else(|| KvsError::invalid("DestinationConfig is required."))?;
    let uri = string_field(dest, "Uri")?;
    if uri.is_empty() || uri.len() > 255 || !uri.contains(':') {
        return Err(KvsError::invalid(format!(
            "DestinationConfig.Uri {uri:?} must name a notification topic, such as an SNS \
             topic ARN."
        )));
    }
    Ok(())
}

pub(crate) fn update_notification_configuration(call: &Call) -> KvsResult<Response> {
    let input: UpdateNotificationInput = call.input()?;
    let cfg = input.notification_configuration.filter(|v| !v.is_null());
    if let Some(c) = &cfg {
        check_notification(c)?;
    }
    let rec = call.stream(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    if cfg.is_some() {
        require_retention(&rec)?;
    }
    set_attribute(call, rec.id, ATTR_NOTIFICATION, cfg)?;
    Ok(ok(&json!({})))
}

pub(crate) fn describe_notification_configuration(call: &Call) -> KvsResult<Response> {
    let input: StreamSelector = call.input()?;
    let rec = call.stream(input.name(), input.arn())?;
    let mut out = serde_json::Map::new();
    if let Some(c) = rec.attributes.get(ATTR_NOTIFICATION) {
        out.insert("NotificationConfiguration".into(), c.clone());
    }
    Ok(ok(&out))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateStorageInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    current_version: Option<String>,
    stream_storage_configuration: Option<StorageConfiguration>,
}

pub(crate) fn update_stream_storage_configuration(call: &Call) -> KvsResult<Response> {
    let input: UpdateStorageInput = call.input()?;
    let version = current_version(input.current_version.as_deref())?;
    let cfg = input
        .stream_storage_configuration
        .as_ref()
        .ok_or_else(|| KvsError::invalid("StreamStorageConfiguration is required."))?;
    let value = storage_tier(cfg)?;
    let rec = call.stream(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    call.state
        .store
        .update_stream(StreamRef::Id(rec.id), Some(version), |r| {
            r.attributes.insert(ATTR_STORAGE.to_owned(), value);
            Ok(())
        })?;
    Ok(ok(&json!({})))
}

pub(crate) fn describe_stream_storage_configuration(call: &Call) -> KvsResult<Response> {
    let input: StreamSelector = call.input()?;
    let rec = call.stream(input.name(), input.arn())?;
    let cfg = rec
        .attributes
        .get(ATTR_STORAGE)
        .cloned()
        .unwrap_or_else(|| json!({ "DefaultStorageTier": "HOT" }));
    Ok(ok(&json!({
        "StreamName": rec.name,
        "StreamARN": stream_arn(&call.state.arn_context(), &rec),
        "StreamStorageConfiguration": cfg,
    })))
}
