//! The stream processor operations (CreateStreamProcessor, Start, Stop, Describe, List,
//! Update, Delete) and tagging (TagResource, UntagResource, ListTagsForResource) of
//! processors and collections: validation as Rekognition's service model states it, and the
//! engine's `Analysis` underneath. What processors produce (their records, Vigil's face
//! events) is in [`crate::results`].
//!
//! Differences from AWS, also in docs/compatibility.md: face search only (ConnectedHome label
//! detection and S3 destinations are `InvalidParameterException`); the StartSelector and
//! StopSelector apply to face-search processors too; `RoleArn`, `KmsKeyId` and
//! `DataSharingPreference` are recorded and shown, not used.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};
use vigil_analysis::model::{PROCESSOR_RECORD_VERSION, Status};
use vigil_analysis::model::{ProcessorRecord, Region, StartAt};
use vigil_api_common::wire::parse_fragment_number;

use super::RekCall;
use super::error::{RekResult, RekognitionError};
use super::wire::{self, bbox_json};

/// Processors per ListStreamProcessors page, by default and at most.
const DEFAULT_PAGE: usize = 1000;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArnInput {
    arn: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Input {
    kinesis_video_stream: Option<ArnInput>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Output {
    kinesis_data_stream: Option<ArnInput>,
    s3_destination: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FaceSearch {
    collection_id: Option<String>,
    face_match_threshold: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Settings {
    face_search: Option<FaceSearch>,
    connected_home: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Notification {
    #[serde(rename = "SNSTopicArn")]
    sns_topic_arn: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BoxInput {
    width: Option<f32>,
    height: Option<f32>,
    left: Option<f32>,
    top: Option<f32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PointInput {
    x: Option<f32>,
    y: Option<f32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RegionInput {
    bounding_box: Option<BoxInput>,
    polygon: Option<Vec<PointInput>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DataSharing {
    opt_in: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateInput {
    input: Option<Input>,
    output: Option<Output>,
    name: Option<String>,
    settings: Option<Settings>,
    role_arn: Option<String>,
    tags: Option<BTreeMap<String, String>>,
    notification_channel: Option<Notification>,
    kms_key_id: Option<String>,
    regions_of_interest: Option<Vec<RegionInput>>,
    data_sharing_preference: Option<DataSharing>,
}

fn required<'a, T>(v: &'a Option<T>, member: &str) -> RekResult<&'a T> {
    v.as_ref()
        .ok_or_else(|| RekognitionError::validation("null", member, "Member must not be null"))
}

/// `StreamProcessorName`: 1-128 of `[a-zA-Z0-9_.\-]`.
pub(crate) fn processor_name<'a>(v: &'a Option<String>, member: &str) -> RekResult<&'a str> {
    let name = required(v, member)?;
    wire::check_id(
        name,
        member,
        128,
        |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'),
        "[a-zA-Z0-9_.\\-]+",
    )?;
    Ok(name)
}

/// The resource name of an ARN of `service` and `kind` (`stream/NAME[/CREATION]`), checked
/// against the model's pattern `arn:PARTITION:SERVICE:REGION:ACCOUNT(12 digits):...`.
fn arn_resource<'a>(
    arn: &'a str,
    service: &str,
    member: &str,
    pattern: &str,
) -> RekResult<&'a str> {
    let bad = || {
        RekognitionError::validation(
            arn,
            member,
            &format!("Member must satisfy regular expression pattern: {pattern}"),
        )
    };
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(_), Some(svc), Some(_), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(bad());
    };
    if svc != service
        || account.len() != 12
        || !account.bytes().all(|b| b.is_ascii_digit())
        || resource.is_empty()
    {
        return Err(bad());
    }
    Ok(resource)
}

/// The stream name of a Kinesis video or data stream ARN (`stream/NAME[/CREATION_TIME]`).
fn stream_of_arn(arn: &str, service: &str, member: &str, pattern: &str) -> RekResult<String> {
    let resource = arn_resource(arn, service, member, pattern)?;
    let name = resource
        .strip_prefix("stream/")
        .and_then(|r| r.split('/').next())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            RekognitionError::invalid(format!("{arn} is not the ARN of a stream ({member})."))
        })?;
    Ok(name.to_owned())
}

fn check_tags(tags: &BTreeMap<String, String>, member: &str) -> RekResult<()> {
    if tags.len() > 200 {
        return Err(RekognitionError::validation(
            member,
            member,
            "Member must have length less than or equal to 200",
        ));
    }
    for (k, v) in tags {
        tag_key(k, &format!("{member}.key"))?;
        if v.chars().count() > 256 {
            return Err(RekognitionError::validation(
                v,
                &format!("{member}.value"),
                "Member must have length less than or equal to 256",
            ));
        }
    }
    Ok(())
}

fn tag_key(k: &str, member: &str) -> RekResult<()> {
    let len = k.chars().count();
    if len == 0 || len > 128 {
        return Err(RekognitionError::validation(
            k,
            member,
            "Member must have length between 1 and 128",
        ));
    }
    if k.starts_with("aws:") {
        return Err(RekognitionError::validation(
            k,
            member,
            "Member must satisfy regular expression pattern: ^(?!aws:)[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*$",
        ));
    }
    Ok(())
}

fn regions(v: &Option<Vec<RegionInput>>, member: &str) -> RekResult<Vec<Region>> {
    let Some(list) = v else { return Ok(Vec::new()) };
    if list.len() > 10 {
        return Err(RekognitionError::validation(
            member,
            member,
            "Member must have length less than or equal to 10",
        ));
    }
    let ratio = |x: Option<f32>| x.filter(|x| (0.0..=1.0).contains(x));
    list.iter()
        .map(|r| match (&r.bounding_box, &r.polygon) {
            (Some(b), None) => match (ratio(b.left), ratio(b.top), ratio(b.width), ratio(b.height))
            {
                (Some(l), Some(t), Some(w), Some(h)) => Ok(Region::Box([l, t, w, h])),
                _ => Err(RekognitionError::invalid(format!(
                    "{member}: a BoundingBox needs Left, Top, Width and Height, each 0 to 1."
                ))),
            },
            (None, Some(points)) if (3..=10).contains(&points.len()) => points
                .iter()
                .map(|p| match (ratio(p.x), ratio(p.y)) {
                    (Some(x), Some(y)) => Ok([x, y]),
                    _ => Err(RekognitionError::invalid(format!(
                        "{member}: a Polygon's points need X and Y, each 0 to 1."
                    ))),
                })
                .collect::<RekResult<Vec<_>>>()
                .map(Region::Polygon),
            _ => Err(RekognitionError::invalid(format!(
                "{member}: each region is a BoundingBox or a Polygon of 3 to 10 points."
            ))),
        })
        .collect()
}

fn processor_arn(call: &RekCall, name: &str) -> String {
    format!(
        "arn:aws:rekognition:{}:{}:streamprocessor/{name}",
        call.state.cfg.region, call.state.cfg.account_id
    )
}

/// `CreateStreamProcessor`.
pub fn create(call: &RekCall) -> RekResult<Value> {
    let input: CreateInput = call.input()?;
    let name = processor_name(&input.name, "name")?;
    let input_arn = required(&input.input, "input")?
        .kinesis_video_stream
        .as_ref()
        .and_then(|s| s.arn.clone())
        .ok_or_else(|| RekognitionError::invalid("Input.KinesisVideoStream.Arn is required."))?;
    let input_stream = stream_of_arn(
        &input_arn,
        "kinesisvideo",
        "input.kinesisVideoStream.arn",
        "(^arn:([a-z\\d-]+):kinesisvideo:([a-z\\d-]+):\\d{12}:.+$)",
    )?;
    let output = required(&input.output, "output")?;
    if output.s3_destination.is_some() {
        return Err(RekognitionError::invalid(
            "Vigil writes stream processor results to Kinesis data streams only \
             (Output.KinesisDataStream); S3Destination is not supported.",
        ));
    }
    let output_arn = output
        .kinesis_data_stream
        .as_ref()
        .and_then(|s| s.arn.clone())
        .ok_or_else(|| RekognitionError::invalid("Output.KinesisDataStream.Arn is required."))?;
    let output_stream = stream_of_arn(
        &output_arn,
        "kinesis",
        "output.kinesisDataStream.arn",
        "(^arn:([a-z\\d-]+):kinesis:([a-z\\d-]+):\\d{12}:.+$)",
    )?;
    let settings = required(&input.settings, "settings")?;
    if settings.connected_home.is_some() {
        return Err(RekognitionError::invalid(
            "Vigil's stream processors do face search only (Settings.FaceSearch); \
             ConnectedHome label detection is not supported.",
        ));
    }
    let face_search = settings
        .face_search
        .as_ref()
        .ok_or_else(|| RekognitionError::invalid("Settings.FaceSearch is required."))?;
    let collection = wire::collection_id(&face_search.collection_id)?.to_owned();
    // The model: "values lower than 80 are set to 80".
    let threshold = wire::percent(
        face_search.face_match_threshold,
        "settings.faceSearch.faceMatchThreshold",
        80.0,
    )?
    .max(80.0);
    let role_arn = required(&input.role_arn, "roleArn")?.clone();
    const ROLE_PATTERN: &str = "arn:aws:iam::\\d{12}:role/?[a-zA-Z_0-9+=,.@\\-_/]+";
    let role = arn_resource(&role_arn, "iam", "roleArn", ROLE_PATTERN)?;
    let role_name = role
        .strip_prefix("role")
        .map(|r| r.strip_prefix('/').unwrap_or(r));
    let role_ok = role_name.is_some_and(|r| {
        !r.is_empty()
            && r.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-/".contains(&b))
    });
    if !role_ok || !role_arn.starts_with("arn:aws:iam::") {
        return Err(RekognitionError::validation(
            &role_arn,
            "roleArn",
            &format!("Member must satisfy regular expression pattern: {ROLE_PATTERN}"),
        ));
    }
    let tags = input.tags.clone().unwrap_or_default();
    check_tags(&tags, "tags")?;
    let notification_topic_arn = match &input.notification_channel {
        Some(n) => {
            let arn = required(&n.sns_topic_arn, "notificationChannel.sNSTopicArn")?;
            arn_resource(
                arn,
                "sns",
                "notificationChannel.sNSTopicArn",
                "(^arn:aws:sns:.*:\\w{12}:.+$)",
            )?;
            Some(arn.clone())
        }
        None => None,
    };
    if let Some(k) = &input.kms_key_id
        && (k.is_empty() || k.len() > 2048)
    {
        return Err(RekognitionError::validation(
            k,
            "kmsKeyId",
            "Member must have length between 1 and 2048",
        ));
    }
    // `^[A-Za-z0-9][A-Za-z0-9:_/+=,@.-]{0,2048}$`
    if let Some(k) = &input.kms_key_id {
        let mut bytes = k.bytes();
        let ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
            && bytes.all(|b| b.is_ascii_alphanumeric() || b":_/+=,@.-".contains(&b));
        if !ok {
            return Err(RekognitionError::validation(
                k,
                "kmsKeyId",
                "Member must satisfy regular expression pattern: \
                 ^[A-Za-z0-9][A-Za-z0-9:_/+=,@.-]{0,2048}$",
            ));
        }
    }
    let regions_of_interest = regions(&input.regions_of_interest, "regionsOfInterest")?;
    let arn = processor_arn(call, name);
    let rec = ProcessorRecord {
        v: PROCESSOR_RECORD_VERSION,
        name: name.to_owned(),
        arn: arn.clone(),
        input_stream,
        input_arn,
        output_stream,
        output_arn,
        role_arn,
        collection,
        face_match_threshold: threshold,
        notification_topic_arn,
        regions_of_interest,
        data_sharing_opt_in: input
            .data_sharing_preference
            .as_ref()
            .and_then(|d| d.opt_in)
            .unwrap_or(false),
        kms_key_id: input.kms_key_id.clone(),
        tags,
        status: Status::Stopped,
        status_message: None,
        creation_ms: 0,
        last_update_ms: 0,
        session_id: None,
        start_at: None,
        max_duration_s: None,
        run_started_ms: None,
        checkpoint: None,
    };
    call.state.analysis.create(rec)?;
    tracing::info!(processor = name, "stream processor created");
    Ok(json!({ "StreamProcessorArn": arn }))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NameInput {
    name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct KvsStartSelector {
    #[serde(rename = "ProducerTimestamp")]
    producer_timestamp: Option<i64>,
    #[serde(rename = "FragmentNumber")]
    fragment_number: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct StartSelector {
    #[serde(rename = "KVSStreamStartSelector")]
    kvs: Option<KvsStartSelector>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StopSelector {
    max_duration_in_seconds: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StartInput {
    name: Option<String>,
    start_selector: Option<StartSelector>,
    stop_selector: Option<StopSelector>,
}

/// `StartStreamProcessor`.
pub fn start(call: &RekCall) -> RekResult<Value> {
    let input: StartInput = call.input()?;
    let name = processor_name(&input.name, "name")?;
    let start = match input.start_selector.as_ref().and_then(|s| s.kvs.as_ref()) {
        None => None,
        Some(KvsStartSelector {
            producer_timestamp: Some(_),
            fragment_number: Some(_),
        }) => {
            return Err(RekognitionError::invalid(
                "KVSStreamStartSelector takes ProducerTimestamp or FragmentNumber, not both.",
            ));
        }
        Some(KvsStartSelector {
            producer_timestamp: Some(ms),
            ..
        }) => Some(StartAt::ProducerTimestamp(u64::try_from(*ms).map_err(
            |_| {
                RekognitionError::validation(
                    &ms.to_string(),
                    "startSelector.kVSStreamStartSelector.producerTimestamp",
                    "Member must have value greater than or equal to 0",
                )
            },
        )?)),
        Some(KvsStartSelector {
            fragment_number: Some(f),
            ..
        }) => {
            let member = "startSelector.kVSStreamStartSelector.fragmentNumber";
            if f.is_empty() || f.len() > 128 || !f.bytes().all(|b| b.is_ascii_digit()) {
                return Err(RekognitionError::validation(
                    f,
                    member,
                    "Member must satisfy regular expression pattern: ^[0-9]+$",
                ));
            }
            let n = parse_fragment_number(f).ok_or_else(|| {
                RekognitionError::invalid(format!("{f} is not a fragment number of this server."))
            })?;
            Some(StartAt::Fragment(n))
        }
        Some(_) => {
            return Err(RekognitionError::invalid(
                "KVSStreamStartSelector needs ProducerTimestamp or FragmentNumber.",
            ));
        }
    };
    let max = match input
        .stop_selector
        .as_ref()
        .and_then(|s| s.max_duration_in_seconds)
    {
        None => None,
        Some(s) => Some(
            u64::try_from(wire::int_in(
                Some(s),
                "stopSelector.maxDurationInSeconds",
                1,
                120,
                1,
            )?)
            .unwrap_or(1),
        ),
    };
    let session = call.state.analysis.start(name, start, max)?;
    tracing::info!(processor = name, session, "stream processor started");
    Ok(json!({ "SessionId": session }))
}

/// `StopStreamProcessor`.
pub fn stop(call: &RekCall) -> RekResult<Value> {
    let input: NameInput = call.input()?;
    let name = processor_name(&input.name, "name")?;
    call.state.analysis.stop(name)?;
    tracing::info!(processor = name, "stream processor stopped");
    Ok(json!({}))
}

/// `DeleteStreamProcessor`.
pub fn delete(call: &RekCall) -> RekResult<Value> {
    let input: NameInput = call.input()?;
    let name = processor_name(&input.name, "name")?;
    call.state.analysis.delete(name)?;
    tracing::info!(processor = name, "stream processor deleted");
    Ok(json!({}))
}

fn regions_json(regions: &[Region]) -> Vec<Value> {
    regions
        .iter()
        .map(|r| match r {
            Region::Box(b) => json!({ "BoundingBox": bbox_json(*b) }),
            Region::Polygon(p) => json!({
                "Polygon": p.iter().map(|[x, y]| json!({ "X": x, "Y": y })).collect::<Vec<_>>()
            }),
        })
        .collect()
}

/// `DescribeStreamProcessor`.
pub fn describe(call: &RekCall) -> RekResult<Value> {
    let input: NameInput = call.input()?;
    let name = processor_name(&input.name, "name")?;
    let rec = call.state.analysis.get(name)?;
    let mut out = json!({
        "Name": rec.name,
        "StreamProcessorArn": rec.arn,
        "Status": rec.status.as_str(),
        "CreationTimestamp": rec.creation_ms as f64 / 1000.0,
        "LastUpdateTimestamp": rec.last_update_ms as f64 / 1000.0,
        "Input": { "KinesisVideoStream": { "Arn": rec.input_arn } },
        "Output": { "KinesisDataStream": { "Arn": rec.output_arn } },
        "RoleArn": rec.role_arn,
        "Settings": { "FaceSearch": {
            "CollectionId": rec.collection,
            "FaceMatchThreshold": rec.face_match_threshold,
        } },
        "DataSharingPreference": { "OptIn": rec.data_sharing_opt_in },
    });
    if let Some(o) = out.as_object_mut() {
        if let Some(m) = &rec.status_message {
            o.insert("StatusMessage".into(), json!(m));
        }
        if let Some(t) = &rec.notification_topic_arn {
            o.insert("NotificationChannel".into(), json!({ "SNSTopicArn": t }));
        }
        if let Some(k) = &rec.kms_key_id {
            o.insert("KmsKeyId".into(), json!(k));
        }
        if !rec.regions_of_interest.is_empty() {
            o.insert(
                "RegionsOfInterest".into(),
                json!(regions_json(&rec.regions_of_interest)),
            );
        }
    }
    Ok(out)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListInput {
    next_token: Option<String>,
    max_results: Option<i64>,
}

/// `ListStreamProcessors`.
pub fn list(call: &RekCall) -> RekResult<Value> {
    let input: ListInput = call.input()?;
    let limit = match input.max_results {
        None => DEFAULT_PAGE,
        Some(n) => usize::try_from(wire::int_in(Some(n), "maxResults", 1, i64::MAX, 1)?)
            .unwrap_or(DEFAULT_PAGE)
            .min(DEFAULT_PAGE),
    };
    // `parse_token` answers the model's 255-character bound for tokens it did not issue.
    let after = wire::parse_token(
        &call.state.cfg.tokens,
        "ListStreamProcessors",
        &input.next_token,
    )?;
    let mut page = call.state.analysis.list(after.as_deref(), limit + 1)?;
    let more = page.len() > limit;
    page.truncate(limit);
    let mut out = json!({
        "StreamProcessors": page
            .iter()
            .map(|p| json!({ "Name": p.name, "Status": p.status.as_str() }))
            .collect::<Vec<_>>(),
    });
    if let (true, Some(last), Some(o)) = (more, page.last(), out.as_object_mut()) {
        o.insert(
            "NextToken".into(),
            json!(wire::next_token(
                &call.state.cfg.tokens,
                "ListStreamProcessors",
                &last.name
            )),
        );
    }
    Ok(out)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateInput {
    name: Option<String>,
    settings_for_update: Option<Value>,
    regions_of_interest_for_update: Option<Vec<RegionInput>>,
    data_sharing_preference_for_update: Option<DataSharing>,
    parameters_to_delete: Option<Vec<String>>,
}

/// `UpdateStreamProcessor`: regions of interest and data sharing (the settings it updates on
/// AWS are ConnectedHome's, which Vigil does not have).
pub fn update(call: &RekCall) -> RekResult<Value> {
    let input: UpdateInput = call.input()?;
    let name = processor_name(&input.name, "name")?;
    if input
        .settings_for_update
        .as_ref()
        .and_then(|s| s.get("ConnectedHomeForUpdate"))
        .is_some()
    {
        return Err(RekognitionError::invalid(
            "SettingsForUpdate.ConnectedHomeForUpdate applies to label detection, which Vigil's \
             face search processors do not do.",
        ));
    }
    let regions_new = match &input.regions_of_interest_for_update {
        Some(_) => Some(regions(
            &input.regions_of_interest_for_update,
            "regionsOfInterestForUpdate",
        )?),
        None => None,
    };
    let mut delete_regions = false;
    for p in input.parameters_to_delete.iter().flatten() {
        match p.as_str() {
            "RegionsOfInterest" => delete_regions = true,
            "ConnectedHomeMinConfidence" => {}
            other => {
                return Err(RekognitionError::validation(
                    other,
                    "parametersToDelete.member",
                    "Member must satisfy enum value set: [ConnectedHomeMinConfidence, RegionsOfInterest]",
                ));
            }
        }
    }
    let opt_in = input
        .data_sharing_preference_for_update
        .as_ref()
        .map(|d| d.opt_in.unwrap_or(false));
    call.state.analysis.update(name, |rec| {
        if delete_regions {
            rec.regions_of_interest.clear();
        }
        if let Some(r) = regions_new {
            rec.regions_of_interest = r;
        }
        if let Some(o) = opt_in {
            rec.data_sharing_opt_in = o;
        }
        Ok(())
    })?;
    Ok(json!({}))
}

/// What an ARN given to the tagging operations names.
enum Tagged {
    Collection(String),
    Processor(String),
}

fn tagged(call: &RekCall, arn: &Option<String>) -> RekResult<Tagged> {
    let arn = required(arn, "resourceArn")?;
    if arn.len() < 20 || arn.len() > 2048 {
        return Err(RekognitionError::validation(
            arn,
            "resourceArn",
            "Member must have length between 20 and 2048",
        ));
    }
    let prefix = format!(
        "arn:aws:rekognition:{}:{}:",
        call.state.cfg.region, call.state.cfg.account_id
    );
    let not_found = || {
        RekognitionError::ResourceNotFoundException(format!("The resource {arn} does not exist."))
    };
    let rest = arn.strip_prefix(&prefix).ok_or_else(not_found)?;
    if let Some(id) = rest.strip_prefix("collection/") {
        Ok(Tagged::Collection(id.to_owned()))
    } else if let Some(name) = rest.strip_prefix("streamprocessor/") {
        Ok(Tagged::Processor(name.to_owned()))
    } else {
        Err(not_found())
    }
}

fn change_tags(
    call: &RekCall,
    arn: &Option<String>,
    f: impl FnOnce(&mut BTreeMap<String, String>) -> RekResult<()>,
) -> RekResult<BTreeMap<String, String>> {
    let not_found =
        || RekognitionError::ResourceNotFoundException("The resource does not exist.".into());
    match tagged(call, arn)? {
        Tagged::Collection(id) => {
            let rec = call
                .state
                .store
                .update_collection_tags::<RekognitionError>(&id, |tags| f(tags))
                .map_err(|e| match e {
                    RekognitionError::ResourceNotFoundException(_) => not_found(),
                    other => other,
                })?;
            Ok(rec.tags)
        }
        Tagged::Processor(name) => {
            let mut failure = None;
            let rec = call
                .state
                .analysis
                .update_tags(&name, |tags| {
                    if let Err(e) = f(tags) {
                        failure = Some(e);
                        return Err(vigil_analysis::Error::Invalid(String::new()));
                    }
                    Ok(())
                })
                .map_err(|e| match (failure.take(), e) {
                    (Some(f), _) => f,
                    (None, vigil_analysis::Error::ProcessorNotFound(_)) => not_found(),
                    (None, e) => e.into(),
                })?;
            Ok(rec.tags)
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagInput {
    resource_arn: Option<String>,
    tags: Option<BTreeMap<String, String>>,
}

/// `TagResource`: processors and collections.
pub fn tag_resource(call: &RekCall) -> RekResult<Value> {
    let input: TagInput = call.input()?;
    let new = required(&input.tags, "tags")?.clone();
    check_tags(&new, "tags")?;
    change_tags(call, &input.resource_arn, |tags| {
        tags.extend(new);
        if tags.len() > 50 {
            return Err(RekognitionError::invalid(
                "A resource can have at most 50 tags.",
            ));
        }
        Ok(())
    })?;
    Ok(json!({}))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UntagInput {
    resource_arn: Option<String>,
    tag_keys: Option<Vec<String>>,
}

/// `UntagResource`.
pub fn untag_resource(call: &RekCall) -> RekResult<Value> {
    let input: UntagInput = call.input()?;
    let keys = required(&input.tag_keys, "tagKeys")?.clone();
    if keys.len() > 200 {
        return Err(RekognitionError::validation(
            "tagKeys",
            "tagKeys",
            "Member must have length less than or equal to 200",
        ));
    }
    for k in &keys {
        tag_key(k, "tagKeys.member")?;
    }
    change_tags(call, &input.resource_arn, |tags| {
        for k in &keys {
            tags.remove(k);
        }
        Ok(())
    })?;
    Ok(json!({}))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListTagsInput {
    resource_arn: Option<String>,
}

/// `ListTagsForResource`.
pub fn list_tags(call: &RekCall) -> RekResult<Value> {
    let input: ListTagsInput = call.input()?;
    let tags = change_tags(call, &input.resource_arn, |_| Ok(()))?;
    Ok(json!({ "Tags": tags }))
}
