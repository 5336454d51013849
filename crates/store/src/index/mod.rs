//! The index side of the store: stream records, data keys, track headers, the fragment index
//! by number, producer timestamp and server timestamp, log groups and their batches, with
//! per-segment accounting.
//!
//! [`Index`] is the seam for other backends (PostgreSQL); [`RedbIndex`] is the embedded one.
//! Why redb: pure Rust (no C toolchain, quick to build), ACID with copy-on-write B-trees,
//! readers that never block the writer (MVCC), and a commit that can be made non-durable, which
//! lets the segment files act as the write-ahead log (see the crate docs): the hot path does one
//! fsync per group commit, on the segment, and the index is made durable by a periodic
//! checkpoint. SQLite would do the same job with a C dependency and a SQL layer we do not need.
//!
//! Tables (keys are big-endian tuples, so ranges follow numeric order):
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | name | u64 (format version, id sequences) |
//! | `streams` | stream id | [`StreamRecord`](crate::StreamRecord) as JSON (versioned) |
//! | `stream_names` | name | stream id |
//! | `data_keys` | (stream, generation) | master key id + wrapped key |
//! | `headers` | (stream, header id) | sealed track header |
//! | `fragments` | (stream, number) | [`FragmentMeta`] (versioned binary) |
//! | `by_server` / `by_producer` | (stream, ts_ms, number) | [`FragmentMeta`] |
//! | `segment_fragments` | (segment, stream, number) | () |
//! | `segments` | segment id | [`SegmentRow`] |
//! | `usage` | stream | (fragments, bytes) |
//! | `collections` | collection name | [`CollectionRecord`] as JSON (versioned) |
//! | `collection_keys` | collection id | master key id + wrapped key |
//! | `faces` | (collection id, face id) | a face row (versioned binary, embedding sealed: `crate::faces`) |
//! | `log_groups` | group id | [`LogGroupRecord`] as JSON (versioned) |
//! | `log_group_names` | name | group id |
//! | `log_keys` | (group, generation) | master key id + wrapped key |
//! | `log_batches` | (group, log, batch number) | [`LogBatchMeta`] (versioned binary) |
//! | `log_by_time` | (group, log, arrival_ms, batch number) | () |
//! | `segment_log_batches` | (segment, group, log, batch number) | () |
//!
//! The three face tables were added without a format version change: an index written before
//! them opens with them created empty, and an older build ignores them. The log tables came
//! with format version 2, because an older build must not open a store that has log batches:
//! it would take their records (kind 2) for damage and cut them off the newest segment with
//! whatever follows them. Opening a version 1 index migrates it (the log tables are created
//! empty and the version is raised, in one transaction); an older build then refuses it with
//! a [`StoreError::FormatVersion`](crate::StoreError::FormatVersion).
//!
//! A segment's `live_fragments` counts every record in the index that lives in it, fragments
//! and log batches alike, so a sealed segment is deleted only once both kinds are gone from it.

use std::fmt::Debug;

use crate::error::Result;
use crate::faces::CollectionRecord;
use crate::logs::{LogBatchMeta, LogGroupRecord};
use crate::types::{FragmentMeta, Page, PageCursor, StreamRecord, StreamUsage, TimestampKind};

mod backup;
mod documents;
mod faces;
mod logs;
mod redb;
mod redb_file;

pub use self::backup::{BACKED_UP, BackupSummary, REBUILT};
pub use self::redb::RedbIndex;
pub use self::redb_file::Unusable;

/// The index format version this build writes (and the newest it reads; version 1 is
/// migrated on open).
pub const INDEX_FORMAT_VERSION: u64 = 2;

/// A segment file's row in the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SegmentRow {
    /// Segment id.
    pub id: u64,
    /// Retention lane.
    pub lane: u32,
    /// Creation time.
    pub created_ms: u64,
    /// No more records will be appended.
    pub sealed: bool,
    /// Bytes of the file whose records are in the index (the recovery scan starts here).
    pub indexed_len: u64,
    /// Records in the index that live in this segment: fragments and log batches (the
    /// segment file can go once this is 0 and it is sealed).
    pub live_fragments: u64,
    /// Their record bytes.
    pub live_bytes: u64,
    /// Newest server timestamp of any record appended.
    pub max_server_ts_ms: u64,
}

impl SegmentRow {
    pub(crate) fn encode(&self) -> [u8; 49] {
        let mut out = [0u8; 49];
        let parts: [&[u8]; 7] = [
            &self.lane.to_le_bytes(),
            &self.created_ms.to_le_bytes(),
            &[u8::from(self.sealed)],
            &self.indexed_len.to_le_bytes(),
            &self.live_fragments.to_le_bytes(),
            &self.live_bytes.to_le_bytes(),
            &self.max_server_ts_ms.to_le_bytes(),
        ];
        let mut at = 0;
        for p in parts {
            if let Some(d) = out.get_mut(at..at + p.len()) {
                d.copy_from_slice(p);
            }
            at += p.len();
        }
        out
    }

    pub(crate) fn decode(id: u64, b: &[u8]) -> Option<Self> {
        let (lane, b) = b.split_first_chunk::<4>()?;
        let (created, b) = b.split_first_chunk::<8>()?;
        let (&sealed, b) = b.split_first()?;
        let (indexed, b) = b.split_first_chunk::<8>()?;
        let (frags, b) = b.split_first_chunk::<8>()?;
        let (bytes, b) = b.split_first_chunk::<8>()?;
        let (max_ts, _) = b.split_first_chunk::<8>()?;
        Some(Self {
            id,
            lane: u32::from_le_bytes(*lane),
            created_ms: u64::from_le_bytes(*created),
            sealed: sealed != 0,
            indexed_len: u64::from_le_bytes(*indexed),
            live_fragments: u64::from_le_bytes(*frags),
            live_bytes: u64::from_le_bytes(*bytes),
            max_server_ts_ms: u64::from_le_bytes(*max_ts),
        })
    }
}

/// A wrapped data key and the master key that wrapped it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// Master key id.
    pub master_id: String,
    /// Wrapped bytes.
    pub wrapped: Vec<u8>,
}

impl WrappedKey {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let id = self.master_id.as_bytes();
        let mut out = Vec::with_capacity(2 + id.len() + self.wrapped.len());
        out.extend_from_slice(&u16::try_from(id.len()).unwrap_or(0).to_le_bytes());
        out.extend_from_slice(id);
        out.extend_from_slice(&self.wrapped);
        out
    }
    pub(crate) fn decode(b: &[u8]) -> Option<Self> {
        let (len, rest) = b.split_first_chunk::<2>()?;
        let len = usize::from(u16::from_le_bytes(*len));
        let id = rest.get(..len)?;
        Some(Self {
            master_id: String::from_utf8(id.to_vec()).ok()?,
            wrapped: rest.get(len..)?.to_vec(),
        })
    }
}

/// What one group commit adds to the index.
#[derive(Debug, Default, Clone)]
pub struct CommitBatch {
    /// New fragments.
    pub fragments: Vec<FragmentMeta>,
    /// New log batches.
    pub log_batches: Vec<LogBatchMeta>,
    /// New or changed segment rows.
    pub segments: Vec<SegmentRow>,
}

/// The index side of the store. Every method is a transaction of its own.
pub trait Index: Send + Sync + Debug {
    /// A counter in the metadata table.
    fn meta(&self, key: &str) -> Result<Option<u64>>;
    /// Sets a counter, durably.
    fn set_meta(&self, key: &str, value: u64) -> Result<()>;

    /// Creates a stream and its first data key, durably; fails if the name is taken.
    fn create_stream(&self, record: &StreamRecord, key: &WrappedKey) -> Result<()>;
    /// A stream by id.
    fn stream(&self, id: u64) -> Result<Option<StreamRecord>>;
    /// A stream by name.
    fn stream_by_name(&self, name: &str) -> Result<Option<StreamRecord>>;
    /// Streams in name order: names starting with `prefix`, after `after`, at most `limit`.
    fn list_streams(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StreamRecord>>;
    /// Every stream record, including those being deleted.
    fn all_streams(&self) -> Result<Vec<StreamRecord>>;
    /// Replaces a stream record, durably.
    fn put_stream(&self, record: &StreamRecord) -> Result<()>;
    /// Marks a stream deleted, durably: frees its name and destroys its data keys, so its bytes
    /// can no longer be decrypted; its index entries are purged by [`Index::purge_stream`].
    fn mark_deleted(&self, record: &StreamRecord) -> Result<()>;
    /// Deletes up to `max` of a deleted stream's fragments; `true` when none are left (and the
    /// record itself is gone).
    fn purge_stream(&self, id: u64, max: usize) -> Result<bool>;

    /// Adds a data key generation, durably.
    fn add_data_key(&self, stream: u64, generation: u32, key: &WrappedKey) -> Result<()>;
    /// A stream's data keys.
    fn data_keys(&self, stream: u64) -> Result<Vec<(u32, WrappedKey)>>;

    /// Stores a (sealed) track header, durably.
    fn put_header(&self, stream: u64, id: u64, sealed: &[u8]) -> Result<()>;
    /// A track header.
    fn header(&self, stream: u64, id: u64) -> Result<Option<Vec<u8>>>;
    /// The newest track header of a stream.
    fn latest_header(&self, stream: u64) -> Result<Option<(u64, Vec<u8>)>>;

    /// Applies a group commit. Visible to readers at once; durable if `durable`, else at the
    /// next [`Index::checkpoint`] (the segments are the log until then).
    fn apply(&self, batch: &CommitBatch, durable: bool) -> Result<()>;
    /// Makes everything applied so far durable.
    fn checkpoint(&self) -> Result<()>;

    /// A fragment by number.
    fn fragment(&self, stream: u64, number: u64) -> Result<Option<FragmentMeta>>;
    /// Fragments in number order after `after` (from the first if `None`), at most `limit`.
    fn fragments_after(
        &self,
        stream: u64,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<FragmentMeta>>;
    /// The newest fragment.
    fn last_fragment(&self, stream: u64) -> Result<Option<FragmentMeta>>;
    /// Fragments whose `kind` timestamp is in `[start_ms, end_ms]`, in (timestamp, number)
    /// order, after `after`, at most `limit`: one index seek, never a scan.
    fn fragments_by_time(
        &self,
        stream: u64,
        kind: TimestampKind,
        start_ms: u64,
        end_ms: u64,
        after: Option<PageCursor>,
        limit: usize,
    ) -> Result<Page>;
    /// The newest fragment whose `kind` timestamp is at or before `ts_ms`.
    fn fragment_at_or_before(
        &self,
        stream: u64,
        kind: TimestampKind,
        ts_ms: u64,
    ) -> Result<Option<FragmentMeta>>;
    /// What a stream stores.
    fn usage(&self, stream: u64) -> Result<StreamUsage>;

    /// Removes up to `max` of a stream's fragments with a server timestamp before `cutoff_ms`,
    /// oldest first; returns how many.
    fn expire_before(&self, stream: u64, cutoff_ms: u64, max: usize) -> Result<u64>;
    /// Removes a stream's oldest fragments until it stores at most `budget` bytes, at most `max`
    /// of them; returns how many.
    fn expire_to_budget(&self, stream: u64, budget: u64, max: usize) -> Result<u64>;
    /// Removes these fragments' entries (e.g. ones whose records are damaged), durably.
    fn remove_fragments(&self, fragments: &[FragmentMeta]) -> Result<()>;
    /// Every segment row.
    fn segments(&self) -> Result<Vec<SegmentRow>>;
    /// Removes every fragment and log batch in a segment and the segment's row, durably, so
    /// the file can go; returns how many records were removed.
    fn drop_segment(&self, segment: u64) -> Result<u64>;

    /// Creates a face collection and its key, durably; fails with
    /// [`StoreError::CollectionExists`] if the name is taken.
    fn create_collection(&self, record: &CollectionRecord, key: &WrappedKey) -> Result<()>;
    /// A face collection by name.
    fn collection(&self, name: &str) -> Result<Option<CollectionRecord>>;
    /// Face collections in name order after `after`, at most `limit`.
    fn list_collections(&self, after: Option<&str>, limit: usize) -> Result<Vec<CollectionRecord>>;
    /// Replaces a face collection's tags, durably; the updated record, or
    /// [`StoreError::CollectionNotFound`](crate::StoreError::CollectionNotFound).
    fn set_collection_tags(
        &self,
        name: &str,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<CollectionRecord>;
    /// A face collection's wrapped key.
    fn collection_key(&self, id: u64) -> Result<Option<WrappedKey>>;
    /// Deletes a face collection, its key and every face in it, durably (one transaction);
    /// the record deleted, or `None` if there was none by that name.
    fn delete_collection(&self, name: &str) -> Result<Option<CollectionRecord>>;
    /// Adds face rows (face id, encoded row) to the collection `name` and raises its face
    /// count, durably (one transaction); fails with [`StoreError::CollectionNotFound`] if the
    /// collection is gone. Returns the updated record.
    fn add_faces(&self, name: &str, rows: &[(u128, Vec<u8>)]) -> Result<CollectionRecord>;
    /// Removes faces from the collection `name` and lowers its face count, durably; returns
    /// the ids that were there.
    fn remove_faces(&self, name: &str, faces: &[u128]) -> Result<Vec<u128>>;
    /// A collection's face rows in face id order after `after`, at most `limit`.
    fn faces(
        &self,
        collection: u64,
        after: Option<u128>,
        limit: usize,
    ) -> Result<Vec<(u128, Vec<u8>)>>;
    /// One face row.
    fn face(&self, collection: u64, face: u128) -> Result<Option<Vec<u8>>>;

    /// Creates a log group and its first data key, durably; fails with
    /// [`StoreError::LogGroupExists`](crate::StoreError::LogGroupExists) if the name is taken.
    fn create_log_group(&self, record: &LogGroupRecord, key: &WrappedKey) -> Result<()>;
    /// A log group by id (in any state).
    fn log_group(&self, id: u64) -> Result<Option<LogGroupRecord>>;
    /// A log group by name (only groups not being deleted have a name).
    fn log_group_by_name(&self, name: &str) -> Result<Option<LogGroupRecord>>;
    /// Log groups in name order: names starting with `prefix`, after `after`, at most
    /// `limit`.
    fn list_log_groups(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LogGroupRecord>>;
    /// Every log group record, including those being deleted.
    fn all_log_groups(&self) -> Result<Vec<LogGroupRecord>>;
    /// Replaces a log group record, durably.
    fn put_log_group(&self, record: &LogGroupRecord) -> Result<()>;
    /// Adds a data key generation and replaces the group's record, durably (one
    /// transaction).
    fn add_log_key(&self, record: &LogGroupRecord, generation: u32, key: &WrappedKey)
    -> Result<()>;
    /// A log group's data keys.
    fn log_keys(&self, group: u64) -> Result<Vec<(u32, WrappedKey)>>;
    /// Marks a log group deleted, durably: frees its name and destroys its data keys in one
    /// transaction, so its batches can no longer be decrypted; its batch rows are purged by
    /// [`Index::purge_log_group`].
    fn mark_log_group_deleted(&self, record: &LogGroupRecord) -> Result<()>;
    /// Deletes up to `max` batch rows of a deleted log group; returns how many, and `true`
    /// when none are left (and the record itself is gone).
    fn purge_log_group(&self, id: u64, max: usize) -> Result<(u64, bool)>;

    /// A log's batches in number order from `from_batch` (inclusive), at most `limit`.
    fn log_batches(
        &self,
        group: u64,
        log: u32,
        from_batch: u64,
        limit: usize,
    ) -> Result<Vec<LogBatchMeta>>;
    /// A log's newest batch.
    fn last_log_batch(&self, group: u64, log: u32) -> Result<Option<LogBatchMeta>>;
    /// A log's first batch that arrived at or after `ts_ms`: one index seek.
    fn log_batch_at_time(&self, group: u64, log: u32, ts_ms: u64) -> Result<Option<LogBatchMeta>>;
    /// The numbers of a group's logs that hold batches, in order.
    fn log_numbers(&self, group: u64) -> Result<Vec<u32>>;
    /// Removes up to `max` of a log's batches that arrived before `cutoff_ms`, oldest first;
    /// returns how many.
    fn expire_log_batches(&self, group: u64, log: u32, cutoff_ms: u64, max: usize) -> Result<u64>;
    /// Removes these batches' rows (e.g. ones whose records are damaged), durably.
    fn remove_log_batches(&self, batches: &[LogBatchMeta]) -> Result<()>;

    /// Stores a document (`kind`, `name`) durably, replacing any before it.
    fn put_document(&self, kind: &str, name: &str, body: &[u8]) -> Result<()>;
    /// A document.
    fn document(&self, kind: &str, name: &str) -> Result<Option<Vec<u8>>>;
    /// Documents of `kind` in name order after `after`, at most `limit`.
    fn documents(
        &self,
        kind: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>>;
    /// Deletes a document durably; whether it was there.
    fn delete_document(&self, kind: &str, name: &str) -> Result<bool>;
}
