//! Free space: what the store does as its disk fills up.
//!
//! The store keeps [`StoreConfig::min_free_bytes`] free (the *floor*). Three rules keep a
//! full disk a clean, recoverable state rather than a broken store:
//!
//! 1. **Group commits keep the floor.** Before a batch is written, the commit thread deletes
//!    the oldest segments that are not being written to (oldest data first, whole segments)
//!    until the batch fits above the floor. If only the segments being written to are left,
//!    the batch fails with [`StoreError::DiskFull`]: nothing is written, nothing acknowledged
//!    before is touched, and the data in those segments stays readable. The next batch tries
//!    again, so ingest resumes by itself once space comes back (see below for what frees it).
//! 2. **Half the floor is the index's.** The index (redb) cannot survive a write that fails
//!    for space: after one, it refuses every call until it is reopened. So nothing writes to
//!    the index when less than half the floor is free ([`Store::check_space`]): control calls
//!    (streams, headers, collections, documents, log groups) fail with `DiskFull`. The group
//!    commit's own index update
//!    runs only after its segment write kept the floor, so it has at least the floor's half
//!    to grow into.
//! 3. **Under half the floor, segments go before their index rows.** When the commit thread
//!    must delete a segment with so little space that the index update itself might not fit,
//!    it removes the file first (freeing its space) and then its index rows. A crash between
//!    the two leaves index rows of a missing segment, which opening drops (reported).
//!
//! Deletes are the exception to rule 2 (of a stream, a log group, a collection, faces, a
//! document, and retention's removal of expired entries): they are how space is freed, and
//! their index updates are a few pages, so they need only [`DELETE_MIN_FREE`] (checked before
//! each stream in a retention pass). The index backup, a copy of the index written beside
//! the old one, waits while less than half the floor plus the index's size is free.
//!
//! What frees space once a batch has failed: anything outside the store (another file
//! removed), or the store's own sealed segments aging out. The segments being written to are
//! kept until they are sealed (at `segment_max_bytes` or `segment_max_age_ms`, 1 hour by
//! default), so a stream deleted in that state gives its space back only then.
//!
//! Opening the store writes to the index (recovery re-indexes, the sequence reservation) with
//! no space check: on a disk with no room at all it fails with the I/O error (redb's
//! copy-on-write keeps the last durable state), and starts once space is freed.
//!
//! A floor of 0 (`vigil check`) turns rules 2 and 3 off.

use crate::engine::Store;
use crate::error::{Result, StoreError};

impl Store {
    /// Free space on the data directory's filesystem, in bytes (what the floor is kept
    /// against; the server's `vigil_store_free_bytes`).
    pub fn free_space(&self) -> Result<u64> {
        self.0
            .fs
            .available_space(&self.0.cfg.data_dir)
            .map_err(|e| StoreError::io("reading free space", e))
    }

    /// Fails with [`StoreError::DiskFull`] when less than half the free-space floor is left:
    /// called before every write to the index outside the commit thread (rule 2 above).
    pub(crate) fn check_space(&self) -> Result<()> {
        let floor = self.0.cfg.min_free_bytes;
        if floor == 0 {
            return Ok(());
        }
        let free = self.free_space()?;
        if free < index_reserve(floor) {
            return Err(StoreError::DiskFull(format!(
                "{free} bytes free on {}, under half the free-space floor of {floor} bytes; \
                 free some space (ingest resumes by itself)",
                self.0.cfg.data_dir.display()
            )));
        }
        Ok(())
    }

    /// Whether the index backup may be refreshed: it writes a copy of the index (at most the
    /// index file's size) beside the old one, which must not eat the index's own half of the
    /// floor.
    pub(crate) fn room_for_backup(&self) -> bool {
        let floor = self.0.cfg.min_free_bytes;
        if floor == 0 {
            return true;
        }
        let index = self.0.cfg.data_dir.join(crate::datadir::INDEX_FILE);
        let size = self
            .0
            .fs
            .open(&index, false)
            .and_then(|f| f.len())
            .unwrap_or(0);
        self.free_space()
            .is_ok_and(|free| free >= index_reserve(floor).saturating_add(size))
    }

    /// Fails with [`StoreError::DiskFull`] when less than [`DELETE_MIN_FREE`] is left (and the
    /// floor is not 0).
    pub(crate) fn check_space_to_delete(&self) -> Result<()> {
        if self.0.cfg.min_free_bytes == 0 {
            return Ok(());
        }
        let free = self.free_space()?;
        if free < DELETE_MIN_FREE.min(index_reserve(self.0.cfg.min_free_bytes)) {
            return Err(StoreError::DiskFull(format!(
                "{free} bytes free on {}: even a delete needs {DELETE_MIN_FREE}",
                self.0.cfg.data_dir.display()
            )));
        }
        Ok(())
    }
}

/// Free space a delete (a stream's or a log group's) needs: its index update is a few pages.
pub const DELETE_MIN_FREE: u64 = 1 << 20;

/// The free space below which nothing but the commit thread writes to the index.
pub(crate) fn index_reserve(floor: u64) -> u64 {
    floor / 2
}
