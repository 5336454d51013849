//! The index backup's content: a copy of the tables that the segments cannot rebuild.
//!
//! Every table of the index is in one of two lists. [`BACKED_UP`] holds what exists only in
//! the index: the `meta` sequences, stream records, names, wrapped data keys and track
//! headers, face collections (records, wrapped keys, faces), log groups (records, names,
//! wrapped keys) and documents. [`REBUILT`] holds what recovery rebuilds from the segments,
//! whose records carry their stream or log group, number, timestamps and key generation in
//! their plaintext header (`crate::record`): the fragment and log batch index, the segment rows
//! and the usage counters. A backup copies the first list in one read transaction (a
//! consistent snapshot, without blocking the writer) into a new database; a restored index
//! starts with the second list empty, so that opening it re-indexes every segment.
//!
//! A table in neither list fails the backup (and the tests), so a table added to the index
//! cannot be silently left out of it.

use std::sync::Arc;

use redb::{
    Durability, Key, MultimapTableHandle, ReadTransaction, ReadableDatabase, TableDefinition,
    TableHandle, Value, WriteTransaction,
};

use super::redb::{
    COLLECTION_KEYS, COLLECTIONS, DATA_KEYS, FACES, HEADERS, META, RedbIndex, STREAM_NAMES,
    STREAMS, storage,
};
use super::{documents, logs};
use crate::error::{Result, StoreError};
use crate::fs::{File, RedbBackend};

/// The tables a backup holds: what only the index knows.
pub const BACKED_UP: [&str; 12] = [
    "meta",
    "streams",
    "stream_names",
    "data_keys",
    "headers",
    "collections",
    "collection_keys",
    "faces",
    "documents",
    "log_groups",
    "log_group_names",
    "log_keys",
];

/// The tables a restore leaves empty, for recovery to rebuild from the segments.
pub const REBUILT: [&str; 9] = [
    "fragments",
    "by_server",
    "by_producer",
    "segment_fragments",
    "segments",
    "usage",
    "log_batches",
    "log_by_time",
    "segment_log_batches",
];

/// What a backup holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackupSummary {
    /// Stream records (active or being deleted).
    pub streams: u64,
    /// Log group records.
    pub log_groups: u64,
    /// Face collection records.
    pub collections: u64,
    /// Rows copied in all.
    pub rows: u64,
}

fn copy<K: Key + 'static, V: Value + 'static>(
    r: &ReadTransaction,
    w: &WriteTransaction,
    def: TableDefinition<'static, K, V>,
) -> Result<u64> {
    let src = r.open_table(def)?;
    let mut dst = w.open_table(def)?;
    let mut n = 0;
    for item in src.range::<K::SelfType<'_>>(..)? {
        let (k, v) = item?;
        dst.insert(k.value(), v.value())?;
        n += 1;
    }
    Ok(n)
}

/// Fails if the index holds a table in neither list (see the module docs).
fn check_tables(r: &ReadTransaction) -> Result<()> {
    for t in r.list_tables()? {
        let name = t.name();
        if !BACKED_UP.contains(&name) && !REBUILT.contains(&name) {
            return Err(StoreError::Index(format!(
                "table {name:?} is neither backed up nor rebuilt from the segments"
            )));
        }
    }
    if let Some(t) = r.list_multimap_tables()?.next() {
        return Err(StoreError::Index(format!(
            "multimap table {:?} is neither backed up nor rebuilt from the segments",
            t.name()
        )));
    }
    Ok(())
}

impl RedbIndex {
    /// Copies the tables of [`BACKED_UP`] from one snapshot of this index into a new database
    /// in `file` (which must be empty), committed durably.
    pub(crate) fn backup_into(&self, file: Arc<dyn File>) -> Result<BackupSummary> {
        let r = self.db.begin_read()?;
        check_tables(&r)?;
        let dst = super::redb::builder()
            .create_with_backend(RedbBackend(file))
            .map_err(storage)?;
        let mut w = dst.begin_write()?;
        let mut s = BackupSummary::default();
        let mut rows = copy(&r, &w, META)?;
        s.streams = copy(&r, &w, STREAMS)?;
        rows += copy(&r, &w, STREAM_NAMES)?;
        rows += copy(&r, &w, DATA_KEYS)?;
        rows += copy(&r, &w, HEADERS)?;
        s.collections = copy(&r, &w, COLLECTIONS)?;
        rows += copy(&r, &w, COLLECTION_KEYS)?;
        rows += copy(&r, &w, FACES)?;
        rows += copy(&r, &w, documents::DOCUMENTS)?;
        s.log_groups = copy(&r, &w, logs::LOG_GROUPS)?;
        rows += copy(&r, &w, logs::LOG_GROUP_NAMES)?;
        rows += copy(&r, &w, logs::LOG_KEYS)?;
        s.rows = rows + s.streams + s.collections + s.log_groups;
        w.set_durability(Durability::Immediate)?;
        w.commit()?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::path::Path;

    use super::*;
    use crate::fs::{FaultFs, Fs};

    /// The two lists are exactly the tables of an index: none missing, none in both.
    #[test]
    fn every_table_is_backed_up_or_rebuilt() {
        let fs = FaultFs::new();
        let ix = RedbIndex::open(fs.open(Path::new("/index.redb"), true).unwrap()).unwrap();
        let r = ix.db.begin_read().unwrap();
        let mut names: Vec<String> = r
            .list_tables()
            .unwrap()
            .map(|t| t.name().to_owned())
            .collect();
        names.sort();
        let mut lists: Vec<String> = BACKED_UP
            .iter()
            .chain(REBUILT.iter())
            .map(|s| (*s).to_owned())
            .collect();
        lists.sort();
        assert_eq!(names, lists);
        check_tables(&r).unwrap();
    }
}
