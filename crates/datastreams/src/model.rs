//! A data stream's metadata, as the engine keeps it in its log group's attributes (JSON,
//! versioned: [`STREAM_META_VERSION`]), and the values callers see.
//!
//! A stream is one store log group (named [`GROUP_PREFIX`] + the stream's name); each shard
//! is the group's log numbered by the shard's index. The store keeps the group's name,
//! retention and creation time; everything Kinesis-specific (shards and their hash ranges
//! and lineage, capacity mode, tags, encryption and monitoring settings) is the
//! [`StreamMeta`] here.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use vigil_store::Position;

use crate::seq::SequenceNumber;

/// Format version of [`StreamMeta`].
pub const STREAM_META_VERSION: u32 = 1;
/// The attribute of the log group that holds the [`StreamMeta`].
pub const META_ATTRIBUTE: &str = "datastream";
/// Log groups of data streams are named this followed by the stream's name.
pub const GROUP_PREFIX: &str = "datastream/";

/// How a stream's capacity is managed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StreamMode {
    /// A shard count the owner sets (`UpdateShardCount`, `SplitShard`, `MergeShards`).
    Provisioned,
    /// Shards the service manages: here, a fixed set of [`ON_DEMAND_SHARDS`] (no throughput
    /// limits are enforced, so none are needed to scale).
    OnDemand,
}

/// Shards an on-demand stream has (AWS starts on-demand streams with four).
pub const ON_DEMAND_SHARDS: u32 = 4;

/// Server-side encryption as a caller set it (`StartStreamEncryption`). Data is encrypted at
/// rest whatever this says; it is what `EncryptionType` and `KeyId` report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    /// `KMS` (the only type Kinesis has).
    pub kind: String,
    /// The key id the caller named.
    pub key_id: String,
}

/// A shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMeta {
    /// Its index: `shardId-` and this zero-padded to 12 digits. Never reused in a stream.
    pub index: u32,
    /// The shard it was split from, or the first of the two it was merged from.
    pub parent: Option<u32>,
    /// The second shard of a merge.
    pub adjacent_parent: Option<u32>,
    /// First hash key it owns (decimal: JSON numbers cannot hold 128 bits).
    #[serde(with = "decimal")]
    pub start_hash: u128,
    /// Last hash key it owns.
    #[serde(with = "decimal")]
    pub end_hash: u128,
    /// Every record of the shard is at or after this position.
    #[serde(with = "decimal")]
    pub starting: u128,
    /// Once closed (split or merged away): every record of the shard is at or before this
    /// position, and no more are written to it.
    #[serde(with = "opt_decimal", default)]
    pub ending: Option<u128>,
    /// When it was created.
    pub created_ms: u64,
    /// When it was closed.
    #[serde(default)]
    pub closed_ms: Option<u64>,
}

impl ShardMeta {
    /// `shardId-000000000003`.
    pub fn id(&self) -> String {
        shard_id(self.index)
    }

    /// Whether records are still written to it.
    pub fn is_open(&self) -> bool {
        self.ending.is_none()
    }

    /// Whether it owns `hash`.
    pub fn owns(&self, hash: u128) -> bool {
        self.start_hash <= hash && hash <= self.end_hash
    }

    /// The sequence number its range starts at.
    pub fn starting_sequence(&self) -> SequenceNumber {
        SequenceNumber::new(Position::from_u128(self.starting), self.index)
    }

    /// The sequence number its range ends at, once closed.
    pub fn ending_sequence(&self) -> Option<SequenceNumber> {
        self.ending
            .map(|e| SequenceNumber::new(Position::from_u128(e), self.index))
    }
}

/// The id of shard `index`.
pub fn shard_id(index: u32) -> String {
    // Not `format!("shardId-{index:012}")`, which pads a character at a time: every record
    // of a PutRecords answer names its shard.
    let digits = index.to_string();
    let mut id = String::with_capacity(20);
    id.push_str("shardId-");
    id.extend(std::iter::repeat_n(
        '0',
        12usize.saturating_sub(digits.len()),
    ));
    id.push_str(&digits);
    id
}

/// The index of a shard id: `shardId-000000000003` (as Kinesis also takes `3` and
/// `shardId-3`).
pub fn parse_shard_id(id: &str) -> Option<u32> {
    let digits = id.strip_prefix("shardId-").unwrap_or(id);
    if digits.is_empty() || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Everything Kinesis-specific about a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamMeta {
    /// Format version ([`STREAM_META_VERSION`]).
    pub v: u32,
    /// Capacity mode.
    pub mode: StreamMode,
    /// Every shard not yet expired, open and closed, in index order.
    pub shards: Vec<ShardMeta>,
    /// The index the next new shard gets.
    pub next_shard_index: u32,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Encryption as set by `StartStreamEncryption` (`None`: `EncryptionType` `NONE`).
    pub encryption: Option<Encryption>,
    /// Shard-level metrics enabled (`EnableEnhancedMonitoring`).
    pub shard_level_metrics: BTreeSet<String>,
    /// The largest record accepted, in KiB (`UpdateMaxRecordSize`; default 1024).
    pub max_record_size_kib: u32,
    /// The key that authenticates this stream's shard iterators (hex), random at creation:
    /// iterators survive a restart, and die with the stream.
    pub iterator_key: String,
    /// Milliseconds of the last reshard or mode change, for `UPDATING` bookkeeping.
    #[serde(default)]
    pub updated_ms: u64,
}

/// The default and smallest `MaxRecordSizeInKiB`.
pub const DEFAULT_MAX_RECORD_KIB: u32 = 1024;
/// The largest `MaxRecordSizeInKiB`.
pub const MAX_MAX_RECORD_KIB: u32 = 10240;

impl StreamMeta {
    /// The shard with index `index`.
    pub fn shard(&self, index: u32) -> Option<&ShardMeta> {
        self.shards.iter().find(|s| s.index == index)
    }

    /// The open shards, in index order.
    pub fn open_shards(&self) -> impl Iterator<Item = &ShardMeta> {
        self.shards.iter().filter(|s| s.is_open())
    }

    /// The open shard that owns `hash` (the open shards partition the key space, so there
    /// is exactly one).
    pub fn route(&self, hash: u128) -> Option<&ShardMeta> {
        self.open_shards().find(|s| s.owns(hash))
    }

    /// The shards created from `index` (its children), in index order.
    pub fn children(&self, index: u32) -> Vec<&ShardMeta> {
        self.shards
            .iter()
            .filter(|s| s.parent == Some(index) || s.adjacent_parent == Some(index))
            .collect()
    }
}

/// What a caller sees of a stream: the store's record and the engine's metadata together.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    /// The stream's name.
    pub name: String,
    /// The store's id of its log group: identifies this incarnation of the name.
    pub id: u64,
    /// When it was created.
    pub created_ms: u64,
    /// Retention in hours.
    pub retention_hours: u32,
    /// The metadata.
    pub meta: StreamMeta,
}

mod decimal {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

mod opt_decimal {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<u128>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.collect_str(v),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u128>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(s) => s.parse().map(Some).map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn shard_ids() {
        assert_eq!(shard_id(3), "shardId-000000000003");
        for i in [
            0,
            9,
            10,
            123_456,
            999_999_999_999u64.min(u64::from(u32::MAX)) as u32,
            u32::MAX,
        ] {
            assert_eq!(shard_id(i), format!("shardId-{i:012}"));
        }
        assert_eq!(parse_shard_id("shardId-000000000003"), Some(3));
        assert_eq!(parse_shard_id("shardId-3"), Some(3));
        assert_eq!(parse_shard_id("3"), Some(3));
        assert_eq!(parse_shard_id("shardId-"), None);
        assert_eq!(parse_shard_id("shard-3"), None);
        assert_eq!(parse_shard_id("shardId-0000000000001"), None);
    }

    #[test]
    fn meta_round_trips_through_json() {
        let meta = StreamMeta {
            v: STREAM_META_VERSION,
            mode: StreamMode::Provisioned,
            shards: vec![ShardMeta {
                index: 0,
                parent: None,
                adjacent_parent: None,
                start_hash: 0,
                end_hash: u128::MAX,
                starting: 5 << 16,
                ending: Some(u128::from(u64::MAX) << 16),
                created_ms: 1,
                closed_ms: Some(2),
            }],
            next_shard_index: 1,
            tags: BTreeMap::new(),
            encryption: None,
            shard_level_metrics: BTreeSet::new(),
            max_record_size_kib: DEFAULT_MAX_RECORD_KIB,
            iterator_key: "00".into(),
            updated_ms: 0,
        };
        let json = serde_json::to_value(&meta).unwrap();
        assert_eq!(
            json["shards"][0]["end_hash"],
            "340282366920938463463374607431768211455"
        );
        let back: StreamMeta = serde_json::from_value(json).unwrap();
        assert_eq!(back, meta);
    }
}
