//! The store's records: streams and fragments.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Format version of [`StreamRecord`] as persisted.
pub const STREAM_RECORD_VERSION: u32 = 1;

/// A stream's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StreamStatus {
    /// Usable.
    Active,
    /// Being deleted: invisible to callers, its data being purged.
    Deleting,
}

/// A stream, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamRecord {
    /// Persisted format version ([`STREAM_RECORD_VERSION`]).
    pub v: u32,
    /// Store-assigned id, never reused.
    pub id: u64,
    /// Unique name.
    pub name: String,
    /// Device name, if any.
    pub device_name: Option<String>,
    /// Media type, if any.
    pub media_type: Option<String>,
    /// The master key that wraps this stream's data keys.
    pub kms_key_id: String,
    /// Hours of retention; 0 keeps nothing on disk.
    pub data_retention_hours: u32,
    /// Beyond KVS: the most bytes of fragments kept; the oldest go first.
    pub byte_budget: Option<u64>,
    /// Opaque version token, changed on every update.
    pub version: String,
    /// Lifecycle state.
    pub status: StreamStatus,
    /// Creation time.
    pub creation_time_ms: u64,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Newest data key generation (0: none yet).
    pub key_generation: u32,
    /// Settings owned by upper layers (image generation, notifications, storage tier), kept
    /// verbatim so they can evolve without a store migration.
    pub attributes: BTreeMap<String, serde_json::Value>,
}

/// What a caller sets when creating a stream.
#[derive(Debug, Clone, Default)]
pub struct NewStream {
    /// Unique name.
    pub name: String,
    /// Device name.
    pub device_name: Option<String>,
    /// Media type.
    pub media_type: Option<String>,
    /// Master key id (`None`: the key ring's default).
    pub kms_key_id: Option<String>,
    /// Retention in hours.
    pub data_retention_hours: u32,
    /// Byte budget.
    pub byte_budget: Option<u64>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Upper-layer settings.
    pub attributes: BTreeMap<String, serde_json::Value>,
}

/// Where a record lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Location {
    /// Segment id.
    pub segment: u64,
    /// Byte offset of the record frame in the segment.
    pub offset: u64,
    /// Length of the record (frame + body).
    pub len: u32,
}

/// A stored fragment's metadata: what the index holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentMeta {
    /// Stream id.
    pub stream: u64,
    /// Fragment number, increasing with ingest order across the whole store.
    pub number: u64,
    /// Producer timestamp (ms since the epoch).
    pub producer_ts_ms: u64,
    /// Server timestamp: when the fragment's first byte arrived (ms since the epoch).
    pub server_ts_ms: u64,
    /// Duration.
    pub duration_ms: u32,
    /// Payload size in bytes (plaintext): `FragmentSizeInBytes`.
    pub size: u32,
    /// Track header id.
    pub header_id: u64,
    /// Data key generation (0: stored in clear).
    pub key_gen: u32,
    /// Where the record lives.
    pub location: Location,
}

/// Format version of [`FragmentMeta`] as encoded in the index.
pub const FRAGMENT_META_VERSION: u8 = 1;
const META_LEN: usize = 1 + 8 * 5 + 4 * 3 + 8 + 8 + 4;

impl FragmentMeta {
    /// Encodes for the index.
    pub fn encode(&self) -> [u8; META_LEN] {
        let mut out = [0u8; META_LEN];
        let parts: [&[u8]; 12] = [
            &[FRAGMENT_META_VERSION],
            &self.stream.to_le_bytes(),
            &self.number.to_le_bytes(),
            &self.producer_ts_ms.to_le_bytes(),
            &self.server_ts_ms.to_le_bytes(),
            &self.duration_ms.to_le_bytes(),
            &self.size.to_le_bytes(),
            &self.header_id.to_le_bytes(),
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

    /// Decodes from the index.
    pub fn decode(b: &[u8]) -> Option<Self> {
        let (&version, mut rest) = b.split_first()?;
        if version != FRAGMENT_META_VERSION {
            return None;
        }
        let mut u64_ = || -> Option<u64> {
            let (a, r) = rest.split_first_chunk::<8>()?;
            rest = r;
            Some(u64::from_le_bytes(*a))
        };
        let stream = u64_()?;
        let number = u64_()?;
        let producer_ts_ms = u64_()?;
        let server_ts_ms = u64_()?;
        let u32_ = |rest: &mut &[u8]| -> Option<u32> {
            let (a, r) = rest.split_first_chunk::<4>()?;
            *rest = r;
            Some(u32::from_le_bytes(*a))
        };
        let duration_ms = u32_(&mut rest)?;
        let size = u32_(&mut rest)?;
        let (h, r) = rest.split_first_chunk::<8>()?;
        rest = r;
        let key_gen = u32_(&mut rest)?;
        let (seg, r) = rest.split_first_chunk::<8>()?;
        let (off, r) = r.split_first_chunk::<8>()?;
        let (len, _) = r.split_first_chunk::<4>()?;
        Some(Self {
            stream,
            number,
            producer_ts_ms,
            server_ts_ms,
            duration_ms,
            size,
            header_id: u64::from_le_bytes(*h),
            key_gen,
            location: Location {
                segment: u64::from_le_bytes(*seg),
                offset: u64::from_le_bytes(*off),
                len: u32::from_le_bytes(*len),
            },
        })
    }
}

/// Which timestamp a range refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampKind {
    /// The producer's timestamp.
    Producer,
    /// The server's arrival timestamp.
    Server,
}

/// Where a page of a timestamp listing resumes: the last (timestamp, number) returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageCursor {
    /// Timestamp of the last item.
    pub ts_ms: u64,
    /// Fragment number of the last item.
    pub number: u64,
}

/// A page of fragments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The fragments, in timestamp order.
    pub fragments: Vec<FragmentMeta>,
    /// Where the next page starts, if there may be more.
    pub next: Option<PageCursor>,
}

/// A stream's stored data, in sum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamUsage {
    /// Fragments kept.
    pub fragments: u64,
    /// Their payload bytes.
    pub bytes: u64,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn meta_round_trip(a in any::<[u64; 7]>(), b in any::<[u32; 4]>()) {
            let m = FragmentMeta {
                stream: a[0], number: a[1], producer_ts_ms: a[2], server_ts_ms: a[3],
                duration_ms: b[0], size: b[1], header_id: a[4], key_gen: b[2],
                location: Location { segment: a[5], offset: a[6], len: b[3] },
            };
            prop_assert_eq!(FragmentMeta::decode(&m.encode()), Some(m));
        }
    }
}
