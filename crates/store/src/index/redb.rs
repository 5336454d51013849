//! [`RedbIndex`]: the embedded index (tables and key layout in the parent module's docs).
//! Streams, fragments and segments are here; face collections in `faces.rs`, log groups and
//! their batches in `logs.rs`, each behind the one `Index` implementation below.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};

use super::{
    CommitBatch, INDEX_FORMAT_VERSION, Index, SegmentRow, Unusable, WrappedKey, documents, faces,
    logs,
};
use crate::error::{Result, StoreError};
use crate::faces::{COLLECTION_RECORD_VERSION, CollectionRecord};
use crate::fs::{File, RedbBackend};
use crate::logs::{LogBatchMeta, LogGroupRecord};
use crate::types::{
    FragmentMeta, Page, PageCursor, STREAM_RECORD_VERSION, StreamRecord, StreamUsage, TimestampKind,
};

pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(super) const STREAMS: TableDefinition<u64, &str> = TableDefinition::new("streams");
pub(super) const STREAM_NAMES: TableDefinition<&str, u64> = TableDefinition::new("stream_names");
pub(super) const DATA_KEYS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("data_keys");
pub(super) const HEADERS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("headers");
pub(super) const FRAGMENTS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("fragments");
pub(super) const BY_SERVER: TableDefinition<(u64, u64, u64), &[u8]> =
    TableDefinition::new("by_server");
pub(super) const BY_PRODUCER: TableDefinition<(u64, u64, u64), &[u8]> =
    TableDefinition::new("by_producer");
pub(super) const SEGMENT_FRAGMENTS: TableDefinition<(u64, u64, u64), ()> =
    TableDefinition::new("segment_fragments");
pub(super) const SEGMENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("segments");
pub(super) const USAGE: TableDefinition<u64, (u64, u64)> = TableDefinition::new("usage");
pub(super) const COLLECTIONS: TableDefinition<&str, &str> = TableDefinition::new("collections");
pub(super) const COLLECTION_KEYS: TableDefinition<u64, &[u8]> =
    TableDefinition::new("collection_keys");
pub(super) const FACES: TableDefinition<(u64, u128), &[u8]> = TableDefinition::new("faces");

/// The embedded index: a redb database file.
#[derive(Debug)]
pub struct RedbIndex {
    pub(super) db: Database,
    /// Durable writes other than checkpoints: the metadata changes a backup would copy
    /// (fragment and log batch rows are written non-durably, so they do not count).
    changes: AtomicU64,
}

/// The index's page cache in memory (redb's default is 1 GiB). The pages are in the OS's
/// page cache as well, so a miss costs a `pread` from memory, not a disk seek; what this bounds
/// is the server's resident memory, which would otherwise grow with the index (some 3 MB a
/// minute at 50 cameras) up to redb's default.
pub const INDEX_CACHE_BYTES: usize = 32 << 20;

/// A redb builder with the index's settings.
pub(super) fn builder() -> redb::Builder {
    let mut b = Database::builder();
    b.set_cache_size(INDEX_CACHE_BYTES);
    b
}

pub(super) fn storage<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Index(e.to_string())
}

impl RedbIndex {
    /// Opens (creating if empty) the index in `file`. The store opens its data directory's
    /// index with [`RedbIndex::open_existing`] first, which never creates one and never
    /// panics on a damaged file; this is for a file known to be new or sound.
    pub fn open(file: Arc<dyn File>) -> Result<Self> {
        let db = builder()
            .create_with_backend(RedbBackend(file))
            .map_err(storage)?;
        Self::init(db)
    }

    /// Opens the index in `file` if it holds one (see [`redb_file`](super::redb_file)):
    /// `Ok(Err(..))` says why it cannot be used. Migrates it like [`RedbIndex::open`].
    pub fn open_existing(file: Arc<dyn File>) -> Result<std::result::Result<Self, Unusable>> {
        match super::redb_file::open_existing(file)? {
            Ok(db) => Self::init(db).map(Ok),
            Err(why) => Ok(Err(why)),
        }
    }

    /// How many durable changes other than checkpoints were made since the index was
    /// opened: when it moves, a backup is out of date.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::SeqCst)
    }

    fn init(db: Database) -> Result<Self> {
        let this = Self {
            db,
            changes: AtomicU64::new(0),
        };
        let mut txn = this.db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let version = meta.get("format_version")?.map(|v| v.value());
            match version {
                // A new index, or one of version 1 (before log groups): the log tables are
                // created below, in this transaction, with the new version.
                None | Some(1) => {
                    meta.insert("format_version", INDEX_FORMAT_VERSION)?;
                }
                Some(INDEX_FORMAT_VERSION) => {}
                Some(found) => {
                    return Err(StoreError::FormatVersion {
                        what: "the index".into(),
                        found: u32::try_from(found).unwrap_or(u32::MAX),
                        supported: INDEX_FORMAT_VERSION as u32,
                    });
                }
            }
            txn.open_table(STREAMS)?;
            txn.open_table(STREAM_NAMES)?;
            txn.open_table(DATA_KEYS)?;
            txn.open_table(HEADERS)?;
            txn.open_table(FRAGMENTS)?;
            txn.open_table(BY_SERVER)?;
            txn.open_table(BY_PRODUCER)?;
            txn.open_table(SEGMENT_FRAGMENTS)?;
            txn.open_table(SEGMENTS)?;
            txn.open_table(USAGE)?;
            txn.open_table(COLLECTIONS)?;
            txn.open_table(COLLECTION_KEYS)?;
            txn.open_table(FACES)?;
            txn.open_table(documents::DOCUMENTS)?;
            logs::create_tables(&txn)?;
        }
        txn.set_durability(Durability::Immediate)?;
        txn.commit()?;
        Ok(this)
    }

    pub(super) fn write<T>(
        &self,
        durable: bool,
        f: impl FnOnce(&mut WriteTransaction) -> Result<T>,
    ) -> Result<T> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        })?;
        let out = f(&mut txn)?;
        txn.commit()?;
        if durable {
            self.changes.fetch_add(1, Ordering::SeqCst);
        }
        Ok(out)
    }
}

fn decode_stream(json: &str) -> Result<StreamRecord> {
    let rec: StreamRecord = serde_json::from_str(json)
        .map_err(|e| StoreError::Index(format!("a stream record does not decode: {e}")))?;
    if rec.v != STREAM_RECORD_VERSION {
        return Err(StoreError::FormatVersion {
            what: format!("stream record {}", rec.id),
            found: rec.v,
            supported: STREAM_RECORD_VERSION,
        });
    }
    Ok(rec)
}

fn encode_stream(rec: &StreamRecord) -> Result<String> {
    serde_json::to_string(rec).map_err(|e| StoreError::Index(e.to_string()))
}

pub(super) fn decode_collection(json: &str) -> Result<CollectionRecord> {
    let rec: CollectionRecord = serde_json::from_str(json)
        .map_err(|e| StoreError::Index(format!("a collection record does not decode: {e}")))?;
    if rec.v != COLLECTION_RECORD_VERSION {
        return Err(StoreError::FormatVersion {
            what: format!("collection record {}", rec.name),
            found: rec.v,
            supported: COLLECTION_RECORD_VERSION,
        });
    }
    Ok(rec)
}

pub(super) fn encode_collection(rec: &CollectionRecord) -> Result<String> {
    serde_json::to_string(rec).map_err(|e| StoreError::Index(e.to_string()))
}

fn decode_meta(b: &[u8]) -> Result<FragmentMeta> {
    FragmentMeta::decode(b)
        .ok_or_else(|| StoreError::Index("a fragment entry does not decode".into()))
}

/// Removes fragments' entries and accounting inside a transaction, opening each table once.
fn remove_all(txn: &WriteTransaction, metas: &[FragmentMeta]) -> Result<()> {
    if metas.is_empty() {
        return Ok(());
    }
    let mut frags = txn.open_table(FRAGMENTS)?;
    let mut by_server = txn.open_table(BY_SERVER)?;
    let mut by_producer = txn.open_table(BY_PRODUCER)?;
    let mut seg_frags = txn.open_table(SEGMENT_FRAGMENTS)?;
    let mut segs = txn.open_table(SEGMENTS)?;
    let mut usage = txn.open_table(USAGE)?;
    // Accumulate the counter changes, then write each row once.
    let mut seg_delta: std::collections::HashMap<u64, (u64, u64)> = Default::default();
    let mut usage_delta: std::collections::HashMap<u64, (u64, u64)> = Default::default();
    for m in metas {
        if frags.remove((m.stream, m.number))?.is_none() {
            continue;
        }
        by_server.remove((m.stream, m.server_ts_ms, m.number))?;
        by_producer.remove((m.stream, m.producer_ts_ms, m.number))?;
        seg_frags.remove((m.location.segment, m.stream, m.number))?;
        let d = seg_delta.entry(m.location.segment).or_default();
        d.0 += 1;
        d.1 += u64::from(m.location.len);
        let u = usage_delta.entry(m.stream).or_default();
        u.0 += 1;
        u.1 += u64::from(m.size);
    }
    for (seg, (n, bytes)) in seg_delta {
        let row = segs
            .get(seg)?
            .and_then(|v| SegmentRow::decode(seg, v.value()));
        if let Some(mut row) = row {
            row.live_fragments = row.live_fragments.saturating_sub(n);
            row.live_bytes = row.live_bytes.saturating_sub(bytes);
            segs.insert(seg, row.encode().as_slice())?;
        }
    }
    for (stream, (n, bytes)) in usage_delta {
        let (had_n, had_b) = usage.get(stream)?.map(|v| v.value()).unwrap_or((0, 0));
        usage.insert(
            stream,
            (had_n.saturating_sub(n), had_b.saturating_sub(bytes)),
        )?;
    }
    Ok(())
}

impl Index for RedbIndex {
    fn meta(&self, key: &str) -> Result<Option<u64>> {
        let r = self.db.begin_read()?;
        Ok(r.open_table(META)?.get(key)?.map(|v| v.value()))
    }

    fn set_meta(&self, key: &str, value: u64) -> Result<()> {
        self.write(true, |txn| {
            txn.open_table(META)?.insert(key, value)?;
            Ok(())
        })
    }

    fn create_stream(&self, record: &StreamRecord, key: &WrappedKey) -> Result<()> {
        let json = encode_stream(record)?;
        self.write(true, |txn| {
            let mut names = txn.open_table(STREAM_NAMES)?;
            if names.get(record.name.as_str())?.is_some() {
                return Err(StoreError::StreamExists(record.name.clone()));
            }
            names.insert(record.name.as_str(), record.id)?;
            txn.open_table(STREAMS)?.insert(record.id, json.as_str())?;
            txn.open_table(DATA_KEYS)?
                .insert((record.id, record.key_generation), key.encode().as_slice())?;
            Ok(())
        })
    }

    fn stream(&self, id: u64) -> Result<Option<StreamRecord>> {
        let r = self.db.begin_read()?;
        let t = r.open_table(STREAMS)?;
        let v = t.get(id)?;
        v.map(|v| decode_stream(v.value())).transpose()
    }

    fn stream_by_name(&self, name: &str) -> Result<Option<StreamRecord>> {
        let r = self.db.begin_read()?;
        let Some(id) = r.open_table(STREAM_NAMES)?.get(name)?.map(|v| v.value()) else {
            return Ok(None);
        };
        let t = r.open_table(STREAMS)?;
        let v = t.get(id)?;
        v.map(|v| decode_stream(v.value())).transpose()
    }

    fn list_streams(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StreamRecord>> {
        let r = self.db.begin_read()?;
        let names = r.open_table(STREAM_NAMES)?;
        let streams = r.open_table(STREAMS)?;
        let start = match after {
            Some(a) if a >= prefix => a,
            _ => prefix,
        };
        let mut out = Vec::new();
        for item in names.range(start..)? {
            let (name, id) = item?;
            let name = name.value();
            if after == Some(name) {
                continue;
            }
            if !name.starts_with(prefix) || out.len() >= limit {
                break;
            }
            if let Some(v) = streams.get(id.value())? {
                out.push(decode_stream(v.value())?);
            }
        }
        Ok(out)
    }

    fn all_streams(&self) -> Result<Vec<StreamRecord>> {
        let r = self.db.begin_read()?;
        let t = r.open_table(STREAMS)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            out.push(decode_stream(item?.1.value())?);
        }
        Ok(out)
    }

    fn put_stream(&self, record: &StreamRecord) -> Result<()> {
        let json = encode_stream(record)?;
        self.write(true, |txn| {
            txn.open_table(STREAMS)?.insert(record.id, json.as_str())?;
            Ok(())
        })
    }

    fn mark_deleted(&self, record: &StreamRecord) -> Result<()> {
        let json = encode_stream(record)?;
        self.write(true, |txn| {
            txn.open_table(STREAM_NAMES)?.remove(record.name.as_str())?;
            txn.open_table(STREAMS)?.insert(record.id, json.as_str())?;
            txn.open_table(DATA_KEYS)?
                .retain_in((record.id, 0)..=(record.id, u32::MAX), |_, _| false)?;
            txn.open_table(HEADERS)?
                .retain_in((record.id, 0)..=(record.id, u64::MAX), |_, _| false)?;
            Ok(())
        })
    }

    fn purge_stream(&self, id: u64, max: usize) -> Result<bool> {
        self.write(true, |txn| {
            let batch: Vec<FragmentMeta> = {
                let t = txn.open_table(FRAGMENTS)?;
                let mut v = Vec::new();
                for item in t.range((id, 0)..=(id, u64::MAX))?.take(max) {
                    v.push(decode_meta(item?.1.value())?);
                }
                v
            };
            remove_all(txn, &batch)?;
            if batch.len() < max {
                txn.open_table(STREAMS)?.remove(id)?;
                txn.open_table(USAGE)?.remove(id)?;
                return Ok(true);
            }
            Ok(false)
        })
    }

    fn add_data_key(&self, stream: u64, generation: u32, key: &WrappedKey) -> Result<()> {
        self.write(true, |txn| {
            txn.open_table(DATA_KEYS)?
                .insert((stream, generation), key.encode().as_slice())?;
            Ok(())
        })
    }

    fn data_keys(&self, stream: u64) -> Result<Vec<(u32, WrappedKey)>> {
        let r = self.db.begin_read()?;
        let t = r.open_table(DATA_KEYS)?;
        let mut out = Vec::new();
        for item in t.range((stream, 0)..=(stream, u32::MAX))? {
            let (k, v) = item?;
            let key = WrappedKey::decode(v.value())
                .ok_or_else(|| StoreError::Index("a wrapped data key does not decode".into()))?;
            out.push((k.value().1, key));
        }
        Ok(out)
    }

    fn put_header(&self, stream: u64, id: u64, sealed: &[u8]) -> Result<()> {
        self.write(true, |txn| {
            txn.open_table(HEADERS)?.insert((stream, id), sealed)?;
            Ok(())
        })
    }

    fn header(&self, stream: u64, id: u64) -> Result<Option<Vec<u8>>> {
        let r = self.db.begin_read()?;
        Ok(r.open_table(HEADERS)?
            .get((stream, id))?
            .map(|v| v.value().to_vec()))
    }

    fn latest_header(&self, stream: u64) -> Result<Option<(u64, Vec<u8>)>> {
        let r = self.db.begin_read()?;
        let t = r.open_table(HEADERS)?;
        let last = t.range((stream, 0)..=(stream, u64::MAX))?.next_back();
        match last {
            Some(item) => {
                let (k, v) = item?;
                Ok(Some((k.value().1, v.value().to_vec())))
            }
            None => Ok(None),
        }
    }

    fn apply(&self, batch: &CommitBatch, durable: bool) -> Result<()> {
        self.write(durable, |txn| {
            let mut frags = txn.open_table(FRAGMENTS)?;
            let mut by_server = txn.open_table(BY_SERVER)?;
            let mut by_producer = txn.open_table(BY_PRODUCER)?;
            let mut seg_frags = txn.open_table(SEGMENT_FRAGMENTS)?;
            let mut usage = txn.open_table(USAGE)?;
            let streams = txn.open_table(STREAMS)?;
            let mut segs = txn.open_table(SEGMENTS)?;
            for row in &batch.segments {
                // The counters belong to the index (retention decrements them concurrently).
                let mut row = *row;
                if let Some(old) = segs
                    .get(row.id)?
                    .and_then(|v| SegmentRow::decode(row.id, v.value()))
                {
                    row.live_fragments = old.live_fragments;
                    row.live_bytes = old.live_bytes;
                    row.indexed_len = row.indexed_len.max(old.indexed_len);
                    row.max_server_ts_ms = row.max_server_ts_ms.max(old.max_server_ts_ms);
                    row.sealed |= old.sealed;
                }
                segs.insert(row.id, row.encode().as_slice())?;
            }
            let mut live_streams: std::collections::HashMap<u64, bool> = Default::default();
            for m in &batch.fragments {
                // A stream deleted while its fragment was in flight, or a record replayed by
                // recovery that is already indexed, adds nothing.
                let live = match live_streams.get(&m.stream) {
                    Some(&l) => l,
                    None => {
                        let l = streams
                            .get(m.stream)?
                            .map(|v| decode_stream(v.value()))
                            .transpose()?
                            .is_some_and(|s| s.status == crate::types::StreamStatus::Active);
                        live_streams.insert(m.stream, l);
                        l
                    }
                };
                if !live || frags.get((m.stream, m.number))?.is_some() {
                    continue;
                }
                let enc = m.encode();
                frags.insert((m.stream, m.number), enc.as_slice())?;
                by_server.insert((m.stream, m.server_ts_ms, m.number), enc.as_slice())?;
                by_producer.insert((m.stream, m.producer_ts_ms, m.number), enc.as_slice())?;
                seg_frags.insert((m.location.segment, m.stream, m.number), ())?;
                let (n, b) = usage.get(m.stream)?.map(|v| v.value()).unwrap_or((0, 0));
                usage.insert(m.stream, (n + 1, b + u64::from(m.size)))?;
                let row = segs
                    .get(m.location.segment)?
                    .and_then(|v| SegmentRow::decode(m.location.segment, v.value()));
                if let Some(mut row) = row {
                    row.live_fragments += 1;
                    row.live_bytes += u64::from(m.location.len);
                    segs.insert(m.location.segment, row.encode().as_slice())?;
                }
            }
            logs::insert_all(txn, &batch.log_batches, &mut segs)?;
            Ok(())
        })
    }

    fn checkpoint(&self) -> Result<()> {
        // Not through `write`: a checkpoint changes nothing a backup holds.
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        txn.commit()?;
        Ok(())
    }

    fn fragment(&self, stream: u64, number: u64) -> Result<Option<FragmentMeta>> {
        let r = self.db.begin_read()?;
        let t = r.open_table(FRAGMENTS)?;
        let v = t.get((stream, number))?;
        v.map(|v| decode_meta(v.value())).transpose()
    }

    fn fragments_after(
        &self,
        stream: u64,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<FragmentMeta>> {
        let start = match after {
            Some(u64::MAX) => return Ok(Vec::new()),
            Some(n) => n + 1,
            None => 0,
        };
        let r = self.db.begin_read()?;
        let t = r.open_table(FRAGMENTS)?;
        let mut out = Vec::new();
        for item in t.range((stream, start)..=(stream, u64::MAX))?.take(limit) {
            out.push(decode_meta(item?.1.value())?);
        }
        Ok(out)
    }

    fn last_fragment(&self, stream: u64) -> Result<Option<FragmentMeta>> {
        let r = self.db.begin_read()?;
        let t = r.open_table(FRAGMENTS)?;
        let last = t.range((stream, 0)..=(stream, u64::MAX))?.next_back();
        last.map(|item| decode_meta(item?.1.value())).transpose()
    }

    fn fragments_by_time(
        &self,
        stream: u64,
        kind: TimestampKind,
        start_ms: u64,
        end_ms: u64,
        after: Option<PageCursor>,
        limit: usize,
    ) -> Result<Page> {
        let r = self.db.begin_read()?;
        let t = r.open_table(match kind {
            TimestampKind::Server => BY_SERVER,
            TimestampKind::Producer => BY_PRODUCER,
        })?;
        let from = match after {
            Some(c) if c.number == u64::MAX => (stream, c.ts_ms.saturating_add(1), 0),
            Some(c) => (stream, c.ts_ms, c.number + 1),
            None => (stream, start_ms, 0),
        };
        let to = (stream, end_ms, u64::MAX);
        let mut fragments = Vec::new();
        if from <= to && limit > 0 {
            for item in t.range(from..=to)?.take(limit) {
                fragments.push(decode_meta(item?.1.value())?);
            }
        }
        let next = if fragments.len() == limit {
            fragments.last().map(|m| PageCursor {
                ts_ms: match kind {
                    TimestampKind::Server => m.server_ts_ms,
                    TimestampKind::Producer => m.producer_ts_ms,
                },
                number: m.number,
            })
        } else {
            None
        };
        Ok(Page { fragments, next })
    }

    fn fragment_at_or_before(
        &self,
        stream: u64,
        kind: TimestampKind,
        ts_ms: u64,
    ) -> Result<Option<FragmentMeta>> {
        let r = self.db.begin_read()?;
        let t = r.open_table(match kind {
            TimestampKind::Server => BY_SERVER,
            TimestampKind::Producer => BY_PRODUCER,
        })?;
        let last = t
            .range((stream, 0, 0)..=(stream, ts_ms, u64::MAX))?
            .next_back();
        last.map(|item| decode_meta(item?.1.value())).transpose()
    }

    fn usage(&self, stream: u64) -> Result<StreamUsage> {
        let r = self.db.begin_read()?;
        let (fragments, bytes) = r
            .open_table(USAGE)?
            .get(stream)?
            .map(|v| v.value())
            .unwrap_or((0, 0));
        Ok(StreamUsage { fragments, bytes })
    }

    fn expire_before(&self, stream: u64, cutoff_ms: u64, max: usize) -> Result<u64> {
        if cutoff_ms == 0 {
            return Ok(0);
        }
        self.write(false, |txn| {
            let batch: Vec<FragmentMeta> = {
                let t = txn.open_table(BY_SERVER)?;
                let mut v = Vec::new();
                for item in t.range((stream, 0, 0)..(stream, cutoff_ms, 0))?.take(max) {
                    v.push(decode_meta(item?.1.value())?);
                }
                v
            };
            remove_all(txn, &batch)?;
            Ok(batch.len() as u64)
        })
    }

    fn expire_to_budget(&self, stream: u64, budget: u64, max: usize) -> Result<u64> {
        self.write(false, |txn| {
            let (_, mut bytes) = txn
                .open_table(USAGE)?
                .get(stream)?
                .map(|v| v.value())
                .unwrap_or((0, 0));
            let mut batch = Vec::new();
            {
                let t = txn.open_table(FRAGMENTS)?;
                for item in t.range((stream, 0)..=(stream, u64::MAX))? {
                    if bytes <= budget || batch.len() >= max {
                        break;
                    }
                    let m = decode_meta(item?.1.value())?;
                    bytes = bytes.saturating_sub(u64::from(m.size));
                    batch.push(m);
                }
            }
            remove_all(txn, &batch)?;
            Ok(batch.len() as u64)
        })
    }

    fn remove_fragments(&self, fragments: &[FragmentMeta]) -> Result<()> {
        self.write(true, |txn| {
            remove_all(txn, fragments)?;
            Ok(())
        })
    }

    fn segments(&self) -> Result<Vec<SegmentRow>> {
        let r = self.db.begin_read()?;
        let t = r.open_table(SEGMENTS)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (k, v) = item?;
            let row = SegmentRow::decode(k.value(), v.value())
                .ok_or_else(|| StoreError::Index("a segment row does not decode".into()))?;
            out.push(row);
        }
        Ok(out)
    }

    fn drop_segment(&self, segment: u64) -> Result<u64> {
        self.write(true, |txn| {
            let metas: Vec<FragmentMeta> = {
                let seg_frags = txn.open_table(SEGMENT_FRAGMENTS)?;
                let frags = txn.open_table(FRAGMENTS)?;
                let mut v = Vec::new();
                for item in seg_frags.range((segment, 0, 0)..=(segment, u64::MAX, u64::MAX))? {
                    let (k, _) = item?;
                    let (_, s, n) = k.value();
                    if let Some(m) = frags.get((s, n))? {
                        v.push(decode_meta(m.value())?);
                    }
                }
                v
            };
            remove_all(txn, &metas)?;
            let batches = logs::drop_segment(txn, segment)?;
            txn.open_table(SEGMENT_FRAGMENTS)?
                .retain_in((segment, 0, 0)..=(segment, u64::MAX, u64::MAX), |_, _| {
                    false
                })?;
            txn.open_table(SEGMENTS)?.remove(segment)?;
            Ok(metas.len() as u64 + batches)
        })
    }

    fn create_collection(&self, record: &CollectionRecord, key: &WrappedKey) -> Result<()> {
        faces::create_collection(self, record, key)
    }

    fn collection(&self, name: &str) -> Result<Option<CollectionRecord>> {
        faces::collection(self, name)
    }

    fn list_collections(&self, after: Option<&str>, limit: usize) -> Result<Vec<CollectionRecord>> {
        faces::list_collections(self, after, limit)
    }

    fn set_collection_tags(
        &self,
        name: &str,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<CollectionRecord> {
        faces::set_collection_tags(self, name, tags)
    }

    fn collection_key(&self, id: u64) -> Result<Option<WrappedKey>> {
        faces::collection_key(self, id)
    }

    fn delete_collection(&self, name: &str) -> Result<Option<CollectionRecord>> {
        faces::delete_collection(self, name)
    }

    fn add_faces(&self, name: &str, rows: &[(u128, Vec<u8>)]) -> Result<CollectionRecord> {
        faces::add_faces(self, name, rows)
    }

    fn remove_faces(&self, name: &str, ids: &[u128]) -> Result<Vec<u128>> {
        faces::remove_faces(self, name, ids)
    }

    fn faces(
        &self,
        collection: u64,
        after: Option<u128>,
        limit: usize,
    ) -> Result<Vec<(u128, Vec<u8>)>> {
        faces::faces(self, collection, after, limit)
    }

    fn face(&self, collection: u64, face: u128) -> Result<Option<Vec<u8>>> {
        faces::face(self, collection, face)
    }

    fn create_log_group(&self, record: &LogGroupRecord, key: &WrappedKey) -> Result<()> {
        logs::create_group(self, record, key)
    }

    fn log_group(&self, id: u64) -> Result<Option<LogGroupRecord>> {
        logs::group(self, id)
    }

    fn log_group_by_name(&self, name: &str) -> Result<Option<LogGroupRecord>> {
        logs::group_by_name(self, name)
    }

    fn list_log_groups(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LogGroupRecord>> {
        logs::list_groups(self, prefix, after, limit)
    }

    fn all_log_groups(&self) -> Result<Vec<LogGroupRecord>> {
        logs::all_groups(self)
    }

    fn put_log_group(&self, record: &LogGroupRecord) -> Result<()> {
        logs::put_group(self, record)
    }

    fn add_log_key(
        &self,
        record: &LogGroupRecord,
        generation: u32,
        key: &WrappedKey,
    ) -> Result<()> {
        logs::add_key(self, record, generation, key)
    }

    fn log_keys(&self, group: u64) -> Result<Vec<(u32, WrappedKey)>> {
        logs::keys(self, group)
    }

    fn mark_log_group_deleted(&self, record: &LogGroupRecord) -> Result<()> {
        logs::mark_deleted(self, record)
    }

    fn purge_log_group(&self, id: u64, max: usize) -> Result<(u64, bool)> {
        logs::purge(self, id, max)
    }

    fn log_batches(
        &self,
        group: u64,
        log: u32,
        from_batch: u64,
        limit: usize,
    ) -> Result<Vec<LogBatchMeta>> {
        logs::batches(self, group, log, from_batch, limit)
    }

    fn last_log_batch(&self, group: u64, log: u32) -> Result<Option<LogBatchMeta>> {
        logs::last_batch(self, group, log)
    }

    fn log_batch_at_time(&self, group: u64, log: u32, ts_ms: u64) -> Result<Option<LogBatchMeta>> {
        logs::batch_at_time(self, group, log, ts_ms)
    }

    fn log_numbers(&self, group: u64) -> Result<Vec<u32>> {
        logs::log_numbers(self, group)
    }

    fn expire_log_batches(&self, group: u64, log: u32, cutoff_ms: u64, max: usize) -> Result<u64> {
        logs::expire(self, group, log, cutoff_ms, max)
    }

    fn remove_log_batches(&self, batches: &[LogBatchMeta]) -> Result<()> {
        self.write(true, |txn| logs::remove_all(txn, batches))
    }

    fn put_document(&self, kind: &str, name: &str, body: &[u8]) -> Result<()> {
        documents::put(self, kind, name, body)
    }

    fn document(&self, kind: &str, name: &str) -> Result<Option<Vec<u8>>> {
        documents::get(self, kind, name)
    }

    fn documents(
        &self,
        kind: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        documents::list(self, kind, after, limit)
    }

    fn delete_document(&self, kind: &str, name: &str) -> Result<bool> {
        documents::delete(self, kind, name)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::path::Path;

    use super::*;
    use crate::fs::{FaultFs, Fs};
    use crate::logs::{LOG_GROUP_RECORD_VERSION, LogGroupStatus};
    use crate::types::StreamStatus;

    fn open(fs: &FaultFs) -> Result<RedbIndex> {
        RedbIndex::open(fs.open(Path::new("/index.redb"), true).unwrap())
    }

    fn stream_record() -> StreamRecord {
        StreamRecord {
            v: STREAM_RECORD_VERSION,
            id: 1,
            name: "cam".into(),
            device_name: None,
            media_type: None,
            kms_key_id: "k".into(),
            data_retention_hours: 24,
            byte_budget: None,
            version: "v".into(),
            status: StreamStatus::Active,
            creation_time_ms: 1,
            tags: Default::default(),
            key_generation: 1,
            attributes: Default::default(),
        }
    }

    fn set_version(ix: &RedbIndex, v: u64) {
        ix.write(true, |txn| {
            txn.open_table(META)?.insert("format_version", v)?;
            Ok(())
        })
        .unwrap();
    }

    /// An index of format version 1 (before log groups) is migrated on open: the log tables
    /// are created, the version raised, and what it held is kept. A newer version is refused.
    #[test]
    fn version_1_is_migrated_and_newer_versions_refused() {
        let fs = FaultFs::new();
        let key = WrappedKey {
            master_id: "k".into(),
            wrapped: vec![1, 2, 3],
        };
        {
            let ix = open(&fs).unwrap();
            ix.create_stream(&stream_record(), &key).unwrap();
            // Make it exactly what version 1 wrote: no log tables.
            ix.write(true, |txn| {
                use crate::index::logs::*;
                assert!(txn.delete_table(LOG_GROUPS)?);
                assert!(txn.delete_table(LOG_GROUP_NAMES)?);
                assert!(txn.delete_table(LOG_KEYS)?);
                assert!(txn.delete_table(LOG_BATCHES)?);
                assert!(txn.delete_table(LOG_BY_TIME)?);
                assert!(txn.delete_table(SEGMENT_LOG_BATCHES)?);
                Ok(())
            })
            .unwrap();
            set_version(&ix, 1);
        }
        let ix = open(&fs).unwrap();
        assert_eq!(
            ix.meta("format_version").unwrap(),
            Some(INDEX_FORMAT_VERSION)
        );
        assert_eq!(ix.stream_by_name("cam").unwrap(), Some(stream_record()));
        let group = LogGroupRecord {
            v: LOG_GROUP_RECORD_VERSION,
            id: 1,
            name: "g".into(),
            retention_hours: 24,
            kms_key_id: "k".into(),
            key_generation: 1,
            creation_time_ms: 1,
            status: LogGroupStatus::Active,
            version: 1,
            attributes: Default::default(),
        };
        ix.create_log_group(&group, &key).unwrap();
        assert_eq!(ix.log_group_by_name("g").unwrap(), Some(group));
        set_version(&ix, INDEX_FORMAT_VERSION + 1);
        drop(ix);
        assert!(matches!(
            open(&fs),
            Err(StoreError::FormatVersion {
                found: 3,
                supported: 2,
                ..
            })
        ));
    }
}
