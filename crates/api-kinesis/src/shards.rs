//! Shards: ListShards, and resharding (UpdateShardCount, SplitShard, MergeShards).
//!
//! Reshards take effect when the call returns (AWS passes through `UPDATING`): the parents
//! are closed at their last record, the children open above it, and a reader that follows
//! `ChildShards` (or the shards' parent ids) reads every record exactly once, in order per
//! shard ([`vigil_datastreams::engine`] says how).

use serde::Deserialize;
use serde_json::{Value, json};
use vigil_api_common::wire::EpochMs;
use vigil_datastreams::model::{ShardMeta, shard_id};

use crate::error::{KinesisError, KinesisResult};
use crate::service::Call;
use crate::streams::{shard_json, visible_shards};
use crate::tokens::Refused;
use crate::validate;

/// What a pagination token of `kind` continues after, or the error AWS gives.
pub(crate) fn token(call: &Call, kind: u8, t: &str, now: u64) -> KinesisResult<String> {
    if t.is_empty() || t.len() > 1_048_576 {
        return Err(KinesisError::validation(
            "(token)",
            "nextToken",
            "Member must have length between 1 and 1048576",
        ));
    }
    call.state.tokens.decode(kind, t, now).map_err(|e| match e {
        Refused::Invalid => KinesisError::invalid("NextToken is not a token this server issued."),
        Refused::Expired { .. } => KinesisError::ExpiredNextTokenException(
            "The NextToken has expired: tokens are valid for 300 seconds.".into(),
        ),
    })
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ShardFilter {
    #[serde(rename = "Type")]
    kind: Option<String>,
    shard_id: Option<String>,
    timestamp: Option<EpochMs>,
}

/// Where a ListShards listing goes on: its stream, the shard it continues after, and the
/// filter of its first page (a `NextToken` carries all three: `NAME/AFTER/TYPE/MS`).
struct Listing {
    stream: String,
    after: Option<u32>,
    filter: Option<ShardFilter>,
}

impl Listing {
    fn token_text(&self, after: u32) -> String {
        let (kind, ts) = match &self.filter {
            Some(f) => (
                f.kind.clone().unwrap_or_default(),
                f.timestamp.map(|t| t.0.to_string()).unwrap_or_default(),
            ),
            None => (String::new(), String::new()),
        };
        format!("{}/{after}/{kind}/{ts}", self.stream)
    }

    fn from_token_text(t: &str) -> Option<Self> {
        let mut parts = t.splitn(4, '/');
        let stream = parts.next()?.to_owned();
        let after = parts.next()?.parse().ok()?;
        let kind = parts.next()?;
        let ts = parts.next()?;
        let filter = (!kind.is_empty()).then(|| ShardFilter {
            kind: Some(kind.to_owned()),
            shard_id: None,
            timestamp: ts.parse().ok().map(EpochMs),
        });
        Some(Self {
            stream,
            after: Some(after),
            filter,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListShardsInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    next_token: Option<String>,
    exclusive_start_shard_id: Option<String>,
    max_results: Option<i64>,
    stream_creation_timestamp: Option<EpochMs>,
    shard_filter: Option<ShardFilter>,
}

/// Where a ListShards page starts: the stream and the shard index it continues after.
fn list_start(call: &Call, input: &ListShardsInput, now: u64) -> KinesisResult<Listing> {
    if let Some(t) = &input.next_token {
        if input.exclusive_start_shard_id.is_some() {
            return Err(KinesisError::invalid(
                "NextToken and ExclusiveStartShardId cannot be provided together.",
            ));
        }
        if input.shard_filter.is_some() {
            return Err(KinesisError::invalid(
                "NextToken and ShardFilter cannot be provided together.",
            ));
        }
        if input.stream_creation_timestamp.is_some() {
            return Err(KinesisError::invalid(
                "NextToken and StreamCreationTimestamp cannot be provided together.",
            ));
        }
        let inner = token(call, b'H', t, now)?;
        let listing = Listing::from_token_text(&inner)
            .ok_or_else(|| KinesisError::invalid("NextToken is not a token this server issued."))?;
        let stream = listing.stream.as_str();
        // botocore's paginator sends the first page's StreamName again with the token (AWS
        // refuses that); Vigil accepts it when it names the token's stream.
        if let Some(n) = input.stream_name.as_deref().or(input
            .stream_arn
            .as_deref()
            .and_then(|a| validate::stream_of_arn(&call.state, a)))
            && n != stream
        {
            return Err(KinesisError::invalid(
                "NextToken and StreamName cannot be provided together.",
            ));
        }
        call.authorize(Some(stream))?;
        return Ok(listing);
    }
    if input.stream_name.is_none() && input.stream_arn.is_none() {
        return Err(KinesisError::invalid(
            "Either NextToken or StreamName should be provided.",
        ));
    }
    let name = call.stream(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    let after = match &input.exclusive_start_shard_id {
        Some(id) => Some(validate::shard("exclusiveStartShardId", id)?.unwrap_or(u32::MAX)),
        None => None,
    };
    Ok(Listing {
        stream: name,
        after,
        filter: input.shard_filter.clone(),
    })
}

pub(crate) fn list_shards(call: &Call) -> KinesisResult<Option<Value>> {
    let input: ListShardsInput = call.input()?;
    let limit = match input.max_results {
        Some(m) => {
            validate::range("maxResults", m, 1, 10_000)?;
            usize::try_from(m.min(1000)).unwrap_or(1000)
        }
        None => 1000,
    };
    let now = call.state.now_ms();
    let listing = list_start(call, &input, now)?;
    let name = listing.stream.clone();
    let mut after = listing.after;
    let info = call
        .state
        .engine
        .describe(&name)
        .map_err(|e| call.engine_error(e))?;
    if let Some(ts) = input.stream_creation_timestamp
        && ts.0 / 1000 != info.created_ms / 1000
    {
        return Err(KinesisError::ResourceNotFoundException(format!(
            "Stream {name} under account {} was not created at the given timestamp.",
            call.state.cfg.account_id
        )));
    }
    let visible = visible_shards(&info, now);
    let retention_ms = u64::from(info.retention_hours) * 3_600_000;
    let trim_horizon = now.saturating_sub(retention_ms);
    let filtered: Vec<&ShardMeta> = match &listing.filter {
        None => visible,
        Some(f) => {
            let kind = f
                .kind
                .as_deref()
                .ok_or_else(|| validate::null("shardFilter.type"))?;
            let kind = validate::one_of(
                "shardFilter.type",
                kind,
                &[
                    "AFTER_SHARD_ID",
                    "AT_TRIM_HORIZON",
                    "FROM_TRIM_HORIZON",
                    "AT_LATEST",
                    "AT_TIMESTAMP",
                    "FROM_TIMESTAMP",
                ],
            )?;
            let ts = || {
                f.timestamp.map(|t| t.0).ok_or_else(|| {
                    KinesisError::invalid(format!("ShardFilter {kind} needs a Timestamp."))
                })
            };
            match kind {
                "AFTER_SHARD_ID" => {
                    match (f.shard_id.as_deref(), after) {
                        (Some(id), _) => {
                            let from = validate::shard("shardFilter.shardId", id)?;
                            after = Some(from.unwrap_or(u32::MAX).max(after.unwrap_or(0)));
                        }
                        // A later page: its token says where it goes on.
                        (None, Some(_)) => {}
                        (None, None) => {
                            return Err(KinesisError::invalid(
                                "ShardFilter AFTER_SHARD_ID needs a ShardId.",
                            ));
                        }
                    }
                    visible
                }
                "AT_LATEST" => visible.into_iter().filter(|s| s.is_open()).collect(),
                // The shards open at a time: created at or before it, and open or closed at
                // or after it.
                "AT_TRIM_HORIZON" | "AT_TIMESTAMP" => {
                    let at = if kind == "AT_TIMESTAMP" {
                        ts()?
                    } else {
                        trim_horizon
                    };
                    visible
                        .into_iter()
                        .filter(|s| {
                            (s.created_ms <= at || s.parent.is_none())
                                && s.closed_ms.is_none_or(|c| c >= at)
                        })
                        .collect()
                }
                // Closed at or after a time, and every open shard.
                "FROM_TIMESTAMP" => {
                    let from = ts()?.max(trim_horizon);
                    visible
                        .into_iter()
                        .filter(|s| s.closed_ms.is_none_or(|c| c >= from))
                        .collect()
                }
                _ => visible,
            }
        }
    };
    let shards: Vec<&ShardMeta> = filtered
        .into_iter()
        .filter(|s| after.is_none_or(|a| s.index > a))
        .collect();
    let more = shards.len() > limit;
    let page: Vec<&ShardMeta> = shards.into_iter().take(limit).collect();
    let mut out = json!({ "Shards": page.iter().map(|s| shard_json(s)).collect::<Vec<_>>() });
    if more && let Some(last) = page.last() {
        let token = call
            .state
            .tokens
            .encode(b'H', &listing.token_text(last.index), now);
        crate::wire::set(&mut out, "NextToken", json!(token));
    }
    Ok(Some(out))
}

fn shard_index(call: &Call, name: &str, member: &str, id: &str) -> KinesisResult<u32> {
    validate::shard(member, id)?.ok_or_else(|| {
        KinesisError::ResourceNotFoundException(format!(
            "Could not find shard {id} in stream {name} under account {}.",
            call.state.cfg.account_id
        ))
    })
}

pub(crate) fn update_shard_count(call: &Call) -> KinesisResult<Option<Value>> {
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Input {
        stream_name: Option<String>,
        #[serde(rename = "StreamARN")]
        stream_arn: Option<String>,
        target_shard_count: Option<i64>,
        scaling_type: Option<String>,
    }
    let input: Input = call.input()?;
    let target = input
        .target_shard_count
        .ok_or_else(|| validate::null("targetShardCount"))?;
    validate::range("targetShardCount", target, 1, 100_000)?;
    let scaling = input
        .scaling_type
        .ok_or_else(|| validate::null("scalingType"))?;
    validate::one_of("scalingType", &scaling, &["UNIFORM_SCALING"])?;
    let name = call.stream(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    let target = u32::try_from(target).unwrap_or(u32::MAX);
    let (before, _) = call
        .state
        .engine
        .update_shard_count(&name, target)
        .map_err(|e| call.engine_error(e))?;
    tracing::info!(
        stream = name,
        target,
        "data stream resharded (uniform scaling)"
    );
    Ok(Some(json!({
        "StreamName": name,
        "StreamARN": call.state.stream_arn(&name),
        "CurrentShardCount": before.meta.open_shards().count(),
        "TargetShardCount": target,
    })))
}

pub(crate) fn split_shard(call: &Call) -> KinesisResult<Option<Value>> {
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Input {
        stream_name: Option<String>,
        #[serde(rename = "StreamARN")]
        stream_arn: Option<String>,
        shard_to_split: Option<String>,
        new_starting_hash_key: Option<String>,
    }
    let input: Input = call.input()?;
    let shard = input
        .shard_to_split
        .ok_or_else(|| validate::null("shardToSplit"))?;
    let key = input
        .new_starting_hash_key
        .ok_or_else(|| validate::null("newStartingHashKey"))?;
    let key = validate::hash_key("newStartingHashKey", &key)?;
    let name = call.stream(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    let index = shard_index(call, &name, "shardToSplit", &shard)?;
    call.state
        .engine
        .split_shard(&name, index, key)
        .map_err(|e| call.engine_error(e))?;
    tracing::info!(stream = name, shard = shard_id(index), "shard split");
    Ok(None)
}

pub(crate) fn merge_shards(call: &Call) -> KinesisResult<Option<Value>> {
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Input {
        stream_name: Option<String>,
        #[serde(rename = "StreamARN")]
        stream_arn: Option<String>,
        shard_to_merge: Option<String>,
        adjacent_shard_to_merge: Option<String>,
    }
    let input: Input = call.input()?;
    let a = input
        .shard_to_merge
        .ok_or_else(|| validate::null("shardToMerge"))?;
    let b = input
        .adjacent_shard_to_merge
        .ok_or_else(|| validate::null("adjacentShardToMerge"))?;
    let name = call.stream(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    let ia = shard_index(call, &name, "shardToMerge", &a)?;
    let ib = shard_index(call, &name, "adjacentShardToMerge", &b)?;
    call.state
        .engine
        .merge_shards(&name, ia, ib)
        .map_err(|e| call.engine_error(e))?;
    tracing::info!(stream = name, a, b, "shards merged");
    Ok(None)
}

/// The index in a `ShardId` member of GetShardIterator and the like.
pub(crate) fn index_of(call: &Call, name: &str, id: &str) -> KinesisResult<u32> {
    match validate::shard("shardId", id)? {
        Some(i) => Ok(i),
        None => Err(KinesisError::ResourceNotFoundException(format!(
            "Shard {id} in stream {name} under account {} does not exist",
            call.state.cfg.account_id
        ))),
    }
}
