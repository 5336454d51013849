//! The values of the log side of the store: groups, positions, entries and batch rows.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::types::Location;

/// Format version of [`LogGroupRecord`] as persisted.
pub const LOG_GROUP_RECORD_VERSION: u32 = 1;
/// Retention of a group created without one, in hours.
pub const DEFAULT_LOG_RETENTION_HOURS: u32 = 24;
/// Longest entry key, in bytes (256 characters of UTF-8 at up to 4 bytes each).
pub const MAX_LOG_KEY_BYTES: usize = 1024;
/// Largest entry data, in bytes.
pub const MAX_LOG_ENTRY_BYTES: usize = 10 << 20;
/// Most entries in one batch: an entry's index in its batch is 16 bits.
pub const MAX_LOG_BATCH_ENTRIES: usize = 1 << 16;
/// Largest batch, in bytes of its encoded entries (keys, data and 6 bytes of lengths each).
pub const MAX_LOG_BATCH_BYTES: usize = 32 << 20;

/// A log group's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LogGroupStatus {
    /// Usable.
    Active,
    /// Being deleted: invisible to callers, its keys destroyed, its index rows being purged.
    Deleting,
}

/// A log group, as the store keeps it (JSON in the index, versioned).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogGroupRecord {
    /// Persisted format version ([`LOG_GROUP_RECORD_VERSION`]).
    pub v: u32,
    /// Store-assigned id, never reused (its own id space, apart from streams').
    pub id: u64,
    /// Unique name.
    pub name: String,
    /// Hours a batch is kept after its arrival (at least 1).
    pub retention_hours: u32,
    /// The master key that wraps the group's data keys.
    pub kms_key_id: String,
    /// Newest data key generation; new batches are sealed under it.
    pub key_generation: u32,
    /// Creation time.
    pub creation_time_ms: u64,
    /// Lifecycle state.
    pub status: LogGroupStatus,
    /// Raised by every change of the record.
    pub version: u64,
    /// Owned by the upper layer (a data stream's shard map, say), kept verbatim.
    pub attributes: BTreeMap<String, serde_json::Value>,
}

/// What a caller sets when creating a log group.
#[derive(Debug, Clone)]
pub struct NewLogGroup {
    /// Unique name.
    pub name: String,
    /// Retention in hours (at least 1).
    pub retention_hours: u32,
    /// Master key id (`None`: the key ring's default).
    pub kms_key_id: Option<String>,
    /// Upper-layer attributes.
    pub attributes: BTreeMap<String, serde_json::Value>,
}

impl NewLogGroup {
    /// A group named `name` with the default retention, key and no attributes.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            retention_hours: DEFAULT_LOG_RETENTION_HOURS,
            kms_key_id: None,
            attributes: BTreeMap::new(),
        }
    }
}

/// Names a log group by name or by id.
#[derive(Debug, Clone, Copy)]
pub enum LogGroupRef<'a> {
    /// By name.
    Name(&'a str),
    /// By id.
    Id(u64),
}

/// Where an entry is: its batch's number (from the store-wide sequence fragments are numbered
/// from) and its index in the batch. Ordered as `(batch, index)`, which is the order entries
/// become durable and visible in a log, and the order of arrival across the whole store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position(u128);

impl Position {
    /// The smallest position: reading from it starts at the oldest entry kept.
    pub const MIN: Self = Self(0);

    /// The position of entry `index` of batch `batch`.
    pub fn new(batch: u64, index: u16) -> Self {
        Self(u128::from(batch) << 16 | u128::from(index))
    }

    /// The batch number.
    pub fn batch(self) -> u64 {
        u64::try_from(self.0 >> 16).unwrap_or(u64::MAX)
    }

    /// The entry's index in its batch.
    pub fn index(self) -> u16 {
        (self.0 & 0xffff) as u16
    }

    /// As one number, `batch << 16 | index` (what an upper layer can print as a sequence
    /// number: it sorts as positions do).
    pub fn as_u128(self) -> u128 {
        self.0
    }

    /// From [`Position::as_u128`]. Any value is a position (one past a batch's last entry
    /// reads from the next batch).
    pub fn from_u128(v: u128) -> Self {
        Self(v)
    }

    /// The position just after this one: where a reader that has this entry goes on.
    pub fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An entry to append: a key (an upper layer's partition key, opaque here) and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    /// Key, at most [`MAX_LOG_KEY_BYTES`].
    pub key: Bytes,
    /// Data, at most [`MAX_LOG_ENTRY_BYTES`].
    pub data: Bytes,
}

/// An entry read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Where it is.
    pub position: Position,
    /// When its batch arrived (ms since the epoch; never decreases along a log).
    pub arrival_ms: u64,
    /// Its key.
    pub key: Bytes,
    /// Its data.
    pub data: Bytes,
}

/// What a durable append resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The position of the batch's first entry; entry `i` is at `Position::new(first.batch(),
    /// i)`.
    pub first: Position,
    /// Entries in the batch.
    pub entries: u32,
    /// The batch's arrival time.
    pub arrival_ms: u64,
}

impl Appended {
    /// The position of the batch's last entry.
    pub fn last(&self) -> Position {
        let last = self.entries.saturating_sub(1);
        Position::new(self.first.batch(), u16::try_from(last).unwrap_or(u16::MAX))
    }
}

/// What a log holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogBounds {
    /// The oldest entry kept.
    pub first: Option<Position>,
    /// The newest durable entry. Everything appended later gets a larger position, so a
    /// reader that starts at `last.next()` (or [`Position::MIN`] when `None`) reads only
    /// entries appended after this call.
    pub last: Option<Position>,
    /// Arrival time of the newest batch.
    pub last_arrival_ms: Option<u64>,
}

impl LogBounds {
    /// Where a reader that wants only what comes next starts.
    pub fn next(&self) -> Position {
        self.last.map_or(Position::MIN, Position::next)
    }
}

/// A stored batch's row in the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogBatchMeta {
    /// Log group id.
    pub group: u64,
    /// Log number in the group.
    pub log: u32,
    /// Batch number (store-wide sequence).
    pub batch: u64,
    /// Arrival time.
    pub arrival_ms: u64,
    /// Entries in the batch.
    pub entries: u32,
    /// Bytes of its encoded entries (plaintext).
    pub size: u32,
    /// Data key generation (0: stored in clear).
    pub key_gen: u32,
    /// Where the record lives.
    pub location: Location,
}

/// Format version of [`LogBatchMeta`] as encoded in the index.
pub const LOG_BATCH_META_VERSION: u8 = 1;
const BATCH_META_LEN: usize = 1 + 8 + 4 + 8 + 8 + 4 + 4 + 4 + 8 + 8 + 4;

impl LogBatchMeta {
    /// The position of the batch's first entry.
    pub fn first(&self) -> Position {
        Position::new(self.batch, 0)
    }

    /// The position of the batch's last entry.
    pub fn last(&self) -> Position {
        Appended {
            first: self.first(),
            entries: self.entries,
            arrival_ms: self.arrival_ms,
        }
        .last()
    }

    /// Encodes for the index.
    pub fn encode(&self) -> [u8; BATCH_META_LEN] {
        let mut out = [0u8; BATCH_META_LEN];
        let parts: [&[u8]; 11] = [
            &[LOG_BATCH_META_VERSION],
            &self.group.to_le_bytes(),
            &self.log.to_le_bytes(),
            &self.batch.to_le_bytes(),
            &self.arrival_ms.to_le_bytes(),
            &self.entries.to_le_bytes(),
            &self.size.to_le_bytes(),
            &self.key_gen.to_le_bytes(),
            &self.location.segment.to_le_bytes(),
            &self.location.offset.to_le_bytes(),
            &self.location.len.to_le_bytes(),
        ];
        let mut at = 0;
        for p in parts {
            if let Some(dst) = out.get_mut(at..at + p.len()) {
                dst.copy_from_slice(p);
            }
            at += p.len();
        }
        out
    }

    /// Decodes from the index; `None` if the bytes are not a row of this version.
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != BATCH_META_LEN {
            return None;
        }
        let (&version, rest) = b.split_first()?;
        if version != LOG_BATCH_META_VERSION {
            return None;
        }
        let (group, rest) = u64_le(rest)?;
        let (log, rest) = u32_le(rest)?;
        let (batch, rest) = u64_le(rest)?;
        let (arrival_ms, rest) = u64_le(rest)?;
        let (entries, rest) = u32_le(rest)?;
        let (size, rest) = u32_le(rest)?;
        let (key_gen, rest) = u32_le(rest)?;
        let (segment, rest) = u64_le(rest)?;
        let (offset, rest) = u64_le(rest)?;
        let (len, _) = u32_le(rest)?;
        Some(Self {
            group,
            log,
            batch,
            arrival_ms,
            entries,
            size,
            key_gen,
            location: Location {
                segment,
                offset,
                len,
            },
        })
    }
}

pub(crate) fn u64_le(b: &[u8]) -> Option<(u64, &[u8])> {
    let (a, rest) = b.split_first_chunk::<8>()?;
    Some((u64::from_le_bytes(*a), rest))
}

pub(crate) fn u32_le(b: &[u8]) -> Option<(u32, &[u8])> {
    let (a, rest) = b.split_first_chunk::<4>()?;
    Some((u32::from_le_bytes(*a), rest))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn positions_order_by_batch_then_index() {
        let a = Position::new(5, 65_535);
        let b = Position::new(6, 0);
        assert!(a < b);
        assert!(Position::new(5, 1) < Position::new(5, 2));
        assert_eq!(
            a.next(),
            b,
            "one past a batch's last possible entry is the next batch"
        );
        assert_eq!(a.batch(), 5);
        assert_eq!(a.index(), 65_535);
        assert_eq!(Position::from_u128(a.as_u128()), a);
        assert_eq!(a.as_u128(), (5 << 16) | 65_535);
        assert_eq!(Position::MIN, Position::new(0, 0));
        let top = Position::from_u128(u128::MAX);
        assert_eq!(top.next(), top, "saturates");
        assert_eq!(top.batch(), u64::MAX);
        assert_eq!(
            Position::new(7, 3).to_string(),
            ((7u128 << 16) | 3).to_string()
        );
        let done = Appended {
            first: Position::new(9, 0),
            entries: 3,
            arrival_ms: 1,
        };
        assert_eq!(done.last(), Position::new(9, 2));
    }

    proptest! {
        #[test]
        fn position_order_is_tuple_order(a in any::<(u64, u16)>(), b in any::<(u64, u16)>()) {
            let (pa, pb) = (Position::new(a.0, a.1), Position::new(b.0, b.1));
            prop_assert_eq!(pa.cmp(&pb), a.cmp(&b));
            prop_assert_eq!((pa.batch(), pa.index()), a);
        }

        #[test]
        fn batch_meta_round_trip(a in any::<[u64; 5]>(), b in any::<[u32; 5]>()) {
            let m = LogBatchMeta {
                group: a[0], log: b[0], batch: a[1], arrival_ms: a[2], entries: b[1],
                size: b[2], key_gen: b[3],
                location: Location { segment: a[3], offset: a[4], len: b[4] },
            };
            let enc = m.encode();
            prop_assert_eq!(LogBatchMeta::decode(&enc), Some(m));
            for n in 0..enc.len() {
                prop_assert_eq!(LogBatchMeta::decode(&enc[..n]), None);
            }
        }
    }
}
