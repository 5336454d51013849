//! Durable logs: ordered, retained, encrypted sequences of small entries, for an upper layer
//! that needs a log per partition (a data stream's shards, say). The store knows nothing of
//! what the entries mean.
//!
//! A **log group** ([`LogGroupRecord`]) has a name, a retention, a data key (wrapped by a
//! master key with its own domain, `vigil-lk`) and attributes its owner keeps there. It holds
//! **logs**, numbered by the caller (`u32`); a log exists once something is appended to it.
//! An **append** ([`Store::append_log`]) is a batch of [`NewEntry`] (key and data) to one
//! log. The store stamps the batch with one arrival time (never decreasing along a log) and a
//! batch number from the store-wide sequence that numbers fragments, so entry
//! [`Position`]s, `(batch number, index in batch)`, are totally ordered across the store.
//!
//! # Durability contract
//!
//! A batch is one record (kind 2 in [`crate::record`]: plaintext header, the entries sealed
//! with AES-256-GCM under the group's current data key with the header as associated data,
//! CRC-32) in the same segment files and through the same group commit as fragments: one
//! durability mechanism, not two. When an append's [`LogAppend`] resolves `Ok`:
//! - the record is in a segment file that has been `fdatasync`ed (whose directory entry was
//!   synced when it was created), in the retention lane of the group's retention;
//! - its row is in the index, visible to every reader, durable at the next checkpoint; until
//!   then the segment is the log and a restart re-indexes it;
//! - it is in its log's in-memory tail and every subscriber has been told.
//!
//! So after SIGKILL or power loss, every batch reported durable reads back byte-identical, and
//! positions handed out after the restart are larger than any before it. A batch that failed
//! with [`StoreError::DiskFull`] was cut off the segment and never appears; one that failed
//! with [`StoreError::Poisoned`] may have reached the disk and reappear after a restart (the
//! caller retries: consumers see entries at least once).
//!
//! Ordering: a batch's number is drawn and the batch queued for commit under its log's lock,
//! and the commit thread commits in queue order, so along a log positions increase in the
//! order batches become durable and visible, never with a later one visible first.
//!
//! # Reading
//!
//! [`Store::read_log`] reads from a position on, from the log's in-memory tail (recent
//! durable batches, bounded by [`LogTailLimits`]) when the position is there, and from the
//! segments otherwise (checked, authenticated, and checked to be the batch the index named).
//! [`Store::read_log_memory`] serves a reader at the live edge from the tail alone, without
//! I/O (on an async runtime), and sends it to [`Store::read_log`] otherwise.
//! [`Store::log_bounds`] and [`Store::position_at_time`] locate positions;
//! [`Store::subscribe_log`] wakes an in-process consumer as soon as a batch is durable. Reads
//! block on disk: call them from a thread or `spawn_blocking`.
//!
//! # Retention and deletion
//!
//! The retention pass removes each log's batches older than the group's retention (index
//! range deletes by arrival time; a shorter retention applies at once), and the segment files
//! go once nothing, fragment or batch, lives in them. Deleting a group destroys its data keys
//! at once (crypto-shredding what is still on disk) and purges its rows in the background.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::crypto::{AeadKey, KEY_LEN, random_bytes};
use crate::engine::{Store, lock};
use crate::error::{Result, StoreError};
use crate::index::WrappedKey;

mod append;
mod read;
pub(crate) mod state;
mod types;

pub use append::LogAppend;
pub use state::LogTailLimits;
pub use types::*;

use state::{LogState, TailBudget};

/// The store's in-memory side of the logs.
#[derive(Debug)]
pub(crate) struct Logs {
    /// Every log appended or subscribed to since the store opened (a few hundred bytes each,
    /// plus its tail).
    states: Mutex<HashMap<(u64, u32), Arc<LogState>>>,
    /// Every active group's record, as last written: loaded when the store opens, then
    /// changed only under the control lock, by the calls that change the index (so it is
    /// never refilled from a read that raced a deletion).
    groups: Mutex<HashMap<u64, Arc<LogGroupRecord>>>,
    /// Unwrapped data keys by (group, generation).
    keys: Mutex<HashMap<(u64, u32), Arc<AeadKey>>>,
    budget: Arc<TailBudget>,
}

impl Logs {
    pub(crate) fn new(limits: LogTailLimits, groups: Vec<LogGroupRecord>) -> Self {
        let groups = groups
            .into_iter()
            .filter(|g| g.status == LogGroupStatus::Active)
            .map(|g| (g.id, Arc::new(g)))
            .collect();
        Self {
            states: Mutex::default(),
            groups: Mutex::new(groups),
            keys: Mutex::default(),
            budget: Arc::new(TailBudget::new(limits)),
        }
    }

    /// A log's state if it was touched since the store opened.
    pub(crate) fn state_if_any(&self, group: u64, log: u32) -> Option<Arc<LogState>> {
        lock(&self.states).get(&(group, log)).cloned()
    }
}

fn not_found(r: LogGroupRef<'_>) -> StoreError {
    StoreError::LogGroupNotFound(match r {
        LogGroupRef::Name(n) => n.to_owned(),
        LogGroupRef::Id(id) => format!("#{id}"),
    })
}

impl Store {
    /// Creates a log group with a fresh data key, durably.
    pub fn create_log_group(&self, new: NewLogGroup) -> Result<LogGroupRecord> {
        self.check_writable()?;
        self.check_space()?;
        if new.name.is_empty() {
            return Err(StoreError::InvalidArgument(
                "a log group needs a name".into(),
            ));
        }
        check_retention(new.retention_hours)?;
        let kms_key_id = new
            .kms_key_id
            .clone()
            .unwrap_or_else(|| self.0.keys.default_id().to_owned());
        let master = self.0.keys.get(&kms_key_id)?;
        let _g = lock(&self.0.control);
        if self.0.index.log_group_by_name(&new.name)?.is_some() {
            return Err(StoreError::LogGroupExists(new.name));
        }
        let id = self.0.index.meta("next_log_group_id")?.unwrap_or(1);
        self.0.index.set_meta("next_log_group_id", id + 1)?;
        let key = random_bytes::<KEY_LEN>()?;
        let wrapped = WrappedKey {
            master_id: kms_key_id.clone(),
            wrapped: master.wrap_log_key(id, 1, &key)?,
        };
        let record = LogGroupRecord {
            v: LOG_GROUP_RECORD_VERSION,
            id,
            name: new.name,
            retention_hours: new.retention_hours,
            kms_key_id,
            key_generation: 1,
            creation_time_ms: self.0.clock.now_ms(),
            status: LogGroupStatus::Active,
            version: 1,
            attributes: new.attributes,
        };
        self.0.index.create_log_group(&record, &wrapped)?;
        let logs = &self.0.logs;
        lock(&logs.keys).insert((id, 1), Arc::new(AeadKey::new(&key)));
        lock(&logs.groups).insert(id, Arc::new(record.clone()));
        Ok(record)
    }

    /// An active log group.
    pub fn log_group(&self, r: LogGroupRef<'_>) -> Result<LogGroupRecord> {
        if let LogGroupRef::Id(id) = r {
            return self.active_log_group(id).map(|g| (*g).clone());
        }
        match self.read_log_group(r)? {
            Some(rec) if rec.status == LogGroupStatus::Active => Ok(rec),
            _ => Err(not_found(r)),
        }
    }

    fn read_log_group(&self, r: LogGroupRef<'_>) -> Result<Option<LogGroupRecord>> {
        match r {
            LogGroupRef::Name(n) => self.0.index.log_group_by_name(n),
            LogGroupRef::Id(id) => self.0.index.log_group(id),
        }
    }

    /// An active group's record (from memory).
    pub(crate) fn active_log_group(&self, id: u64) -> Result<Arc<LogGroupRecord>> {
        lock(&self.0.logs.groups)
            .get(&id)
            .cloned()
            .ok_or_else(|| not_found(LogGroupRef::Id(id)))
    }

    /// Whether a group is active (the check appends repeat under their log's lock).
    pub(crate) fn log_group_is_active(&self, id: u64) -> bool {
        lock(&self.0.logs.groups).contains_key(&id)
    }

    /// Active log groups in name order whose names start with `prefix`, after `after`, at
    /// most `limit`.
    pub fn list_log_groups(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LogGroupRecord>> {
        Ok(self
            .0
            .index
            .list_log_groups(prefix, after, limit)?
            .into_iter()
            .filter(|g| g.status == LogGroupStatus::Active)
            .collect())
    }

    /// Changes a log group, durably: `f` sees the record under the store's control lock (so
    /// a check in it sees no concurrent change) and may change its `retention_hours` and
    /// `attributes`; changing anything else fails with [`StoreError::InvalidArgument`], and
    /// if `f` fails nothing changes. The version is raised. A shorter retention takes effect
    /// at once: older batches are unreachable when this returns.
    pub fn update_log_group<E: From<StoreError>>(
        &self,
        r: LogGroupRef<'_>,
        f: impl FnOnce(&mut LogGroupRecord) -> std::result::Result<(), E>,
    ) -> std::result::Result<LogGroupRecord, E> {
        self.check_writable()?;
        self.check_space()?;
        let _g = lock(&self.0.control);
        let before = self.log_group(r)?;
        let mut rec = before.clone();
        f(&mut rec)?;
        let unchanged = LogGroupRecord {
            retention_hours: before.retention_hours,
            attributes: before.attributes.clone(),
            ..rec.clone()
        };
        if unchanged != before {
            return Err(StoreError::InvalidArgument(
                "only a log group's retention and attributes can be changed".into(),
            )
            .into());
        }
        check_retention(rec.retention_hours)?;
        rec.version = before.version + 1;
        self.0.index.put_log_group(&rec)?;
        lock(&self.0.logs.groups).insert(rec.id, Arc::new(rec.clone()));
        if rec.retention_hours < before.retention_hours {
            crate::retention::expire_log_group(self, &rec)?;
        }
        Ok(rec)
    }

    /// Deletes a log group: at once it is gone for callers, its data keys are destroyed (its
    /// batches can no longer be decrypted, wherever their bytes are) and its name is free;
    /// its rows are purged by the retention pass.
    pub fn delete_log_group(&self, r: LogGroupRef<'_>) -> Result<()> {
        self.check_writable()?;
        self.check_space_to_delete()?;
        let _g = lock(&self.0.control);
        let mut rec = self.log_group(r)?;
        rec.status = LogGroupStatus::Deleting;
        rec.version += 1;
        self.0.index.mark_log_group_deleted(&rec)?;
        let logs = &self.0.logs;
        lock(&logs.groups).remove(&rec.id);
        lock(&logs.keys).retain(|(g, _), _| *g != rec.id);
        let closed: Vec<Arc<LogState>> = {
            let mut states = lock(&logs.states);
            let mine: Vec<(u64, u32)> = states
                .keys()
                .filter(|(g, _)| *g == rec.id)
                .copied()
                .collect();
            mine.iter().filter_map(|k| states.remove(k)).collect()
        };
        for s in closed {
            s.close();
        }
        Ok(())
    }

    /// Starts a new data key generation for a log group (new batches use it), optionally
    /// under another master key (which becomes the group's `kms_key_id`). Returns the
    /// generation. Older batches keep the generation they were sealed with.
    pub fn rotate_log_key(&self, r: LogGroupRef<'_>, master_key: Option<&str>) -> Result<u32> {
        self.check_writable()?;
        self.check_space()?;
        let _g = lock(&self.0.control);
        let mut rec = self.log_group(r)?;
        let master_id = master_key.unwrap_or(&rec.kms_key_id).to_owned();
        let master = self.0.keys.get(&master_id)?;
        let generation = rec.key_generation + 1;
        let key = random_bytes::<KEY_LEN>()?;
        let wrapped = WrappedKey {
            master_id: master_id.clone(),
            wrapped: master.wrap_log_key(rec.id, generation, &key)?,
        };
        rec.key_generation = generation;
        rec.kms_key_id = master_id;
        rec.version += 1;
        self.0.index.add_log_key(&rec, generation, &wrapped)?;
        let logs = &self.0.logs;
        lock(&logs.keys).insert((rec.id, generation), Arc::new(AeadKey::new(&key)));
        lock(&logs.groups).insert(rec.id, Arc::new(rec));
        Ok(generation)
    }

    /// A group's data key of one generation.
    pub(crate) fn log_data_key(&self, group: u64, generation: u32) -> Result<Arc<AeadKey>> {
        if let Some(k) = lock(&self.0.logs.keys).get(&(group, generation)) {
            return Ok(k.clone());
        }
        let keys = self.0.index.log_keys(group)?;
        let (_, wrapped) = keys.iter().find(|(g, _)| *g == generation).ok_or_else(|| {
            StoreError::Authentication {
                what: format!("data key {generation} of log group #{group} (missing)"),
            }
        })?;
        let master = self.0.keys.get(&wrapped.master_id)?;
        let key = Arc::new(master.unwrap_log_key(group, generation, &wrapped.wrapped)?);
        // Cached only while the group is active, checked under the cache's lock: a deletion
        // removes the group first and the keys second, so no key outlives it in memory.
        let mut keys = lock(&self.0.logs.keys);
        if self.log_group_is_active(group) {
            keys.insert((group, generation), key.clone());
        }
        Ok(key)
    }

    /// A log's in-memory state, made on first use from the index's newest batch. No batch of
    /// a log is in flight before its state exists (appends make it first), so that read
    /// cannot miss one. Made only for an active group, checked under the states' lock: a
    /// deletion removes the group first and its states second, so it closes every state made
    /// before it.
    pub(crate) fn log_state(&self, group: u64, log: u32) -> Result<Arc<LogState>> {
        let logs = &self.0.logs;
        let mut states = lock(&logs.states);
        if let Some(s) = states.get(&(group, log)) {
            return Ok(s.clone());
        }
        if !self.log_group_is_active(group) {
            return Err(not_found(LogGroupRef::Id(group)));
        }
        let last = self.0.index.last_log_batch(group, log)?;
        let s = Arc::new(LogState::new(group, last.as_ref(), logs.budget.clone()));
        states.insert((group, log), s.clone());
        Ok(s)
    }
}

fn check_retention(hours: u32) -> Result<()> {
    if hours == 0 {
        return Err(StoreError::InvalidArgument(
            "a log group keeps its entries for at least 1 hour".into(),
        ));
    }
    Ok(())
}
