//! The store: streams, keys, headers and reads; see the crate docs for the durability contract.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak, mpsc};
use std::thread::JoinHandle;

use bytes::Bytes;

use crate::backup::IndexBackup;
use crate::blob::{BlobStore, LocalBlobs};
use crate::clock::Clock;
use crate::commit::{Committer, Counters, Job, StoreStats};
use crate::crypto::{AeadKey, KEY_LEN, KeyRing, MasterKey, NonceSource, random_bytes};
use crate::error::{Result, StoreError};
use crate::fs::Fs;
use crate::index::{Index, WrappedKey};
use crate::live::{LiveStream, WindowLimits};
use crate::logs::{LogTailLimits, Logs};
use crate::recovery::{RecoveryReport, recover};
use crate::types::{
    FragmentMeta, NewStream, Page, PageCursor, STREAM_RECORD_VERSION, StreamRecord, StreamStatus,
    StreamUsage, TimestampKind,
};

/// The id of the master key created in the data directory on first start. It is what KVS
/// reports for streams created without a `KmsKeyId`.
pub const DEFAULT_MASTER_KEY_ID: &str = "alias/aws/kinesisvideo";

/// Fragment numbers are reserved durably in blocks of this many, so they keep increasing across
/// restarts without a write per fragment.
const SEQ_BLOCK: u64 = 1 << 20;

/// How the store is set up. [`StoreConfig::new`] gives the defaults.
#[derive(Debug)]
pub struct StoreConfig {
    /// The data directory.
    pub data_dir: PathBuf,
    /// Encrypt fragments and track headers at rest (default true).
    pub encryption: bool,
    /// Master keys supplied by configuration, besides the one kept in the data directory.
    pub master_keys: Vec<MasterKey>,
    /// The master key new streams use when they name none (default:
    /// [`DEFAULT_MASTER_KEY_ID`], kept in `keys/default.key`).
    pub default_master_key: Option<String>,
    /// A segment is sealed and a new one started past this size (default 256 MiB).
    pub segment_max_bytes: u64,
    /// ... or this age (default 1 hour).
    pub segment_max_age_ms: u64,
    /// The index is made durable at least this often (default 1 s); the segments are the log
    /// in between, so this bounds how much is scanned on restart, not what is durable.
    pub checkpoint_interval_ms: u64,
    /// Retention runs this often in the background (default 60 s; 0: only when called).
    pub retention_interval_ms: u64,
    /// The index backup `index.redb.bak` is refreshed this often when the index's metadata
    /// changed (default 10 s; 0: only when the store closes). See [`crate::backup`].
    pub index_backup_interval_ms: u64,
    /// Free disk space kept: below it the oldest segments are deleted, and if that is not
    /// enough, writes fail (default 1 GiB).
    pub min_free_bytes: u64,
    /// Largest group commit in bytes (default 64 MiB).
    pub max_batch_bytes: usize,
    /// The in-memory window of streams with retention 0.
    pub live_window: WindowLimits,
    /// The in-memory tails of logs ([`crate::logs`]).
    pub log_tail: LogTailLimits,
}

impl StoreConfig {
    /// Defaults for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            encryption: true,
            master_keys: Vec::new(),
            default_master_key: None,
            segment_max_bytes: 256 << 20,
            segment_max_age_ms: 3600 * 1000,
            checkpoint_interval_ms: 1000,
            retention_interval_ms: 60 * 1000,
            index_backup_interval_ms: 10 * 1000,
            min_free_bytes: 1 << 30,
            max_batch_bytes: 64 << 20,
            live_window: WindowLimits::default(),
            log_tail: LogTailLimits::default(),
        }
    }
}

/// Names a stream by name or by id.
#[derive(Debug, Clone, Copy)]
pub enum StreamRef<'a> {
    /// By name.
    Name(&'a str),
    /// By id.
    Id(u64),
}

/// Which retention lane a retention period writes to: streams with similar retention share
/// segment files, so a segment's bytes expire together.
pub fn lane_for(retention_hours: u32) -> u32 {
    const CLASSES: [u32; 8] = [1, 6, 24, 72, 168, 720, 2160, 8760];
    CLASSES
        .iter()
        .position(|&c| retention_hours <= c)
        .unwrap_or(CLASSES.len()) as u32
}

/// A stored fragment read back.
#[derive(Debug, Clone)]
pub struct StoredFragment {
    /// Its metadata.
    pub meta: FragmentMeta,
    /// Its bytes, as ingested.
    pub payload: Bytes,
}

/// A handle to the fragment store; clones share it. Dropping the last handle flushes and stops
/// the background threads.
#[derive(Debug, Clone)]
pub struct Store(pub(crate) Arc<Inner>);

/// A handle that does not keep the store open ([`Store::downgrade`]): for observers such as
/// the metrics, which must not outlive it.
#[derive(Debug, Clone)]
pub struct WeakStore(Weak<Inner>);

impl WeakStore {
    /// The store, while some [`Store`] handle keeps it open.
    pub fn upgrade(&self) -> Option<Store> {
        self.0.upgrade().map(Store)
    }
}

pub(crate) struct Inner {
    pub(crate) cfg: StoreConfig,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) index: Arc<dyn Index>,
    pub(crate) blobs: Arc<dyn BlobStore>,
    /// The filesystem, for free space ([`crate::space`]).
    pub(crate) fs: Arc<dyn Fs>,
    pub(crate) keys: KeyRing,
    pub(crate) nonces: NonceSource,
    data_keys: Mutex<HashMap<(u64, u32), Arc<AeadKey>>>,
    headers: Mutex<HashMap<(u64, u64), Bytes>>,
    seq: Mutex<(u64, u64)>,
    pub(crate) live: Arc<Mutex<HashMap<u64, Arc<LiveStream>>>>,
    pub(crate) jobs: Mutex<Option<mpsc::Sender<Job>>>,
    pub(crate) poison: Arc<Mutex<Option<String>>>,
    counters: Arc<Counters>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    pub(crate) control: Mutex<()>,
    /// Unwrapped data keys of face collections ([`crate::faces`]).
    pub(crate) collection_keys: Mutex<HashMap<u64, Arc<AeadKey>>>,
    /// Log groups, keys and each log's tail ([`crate::logs`]).
    pub(crate) logs: Logs,
    stop: Arc<(Mutex<bool>, Condvar)>,
    /// The index backup, for a store opened on its data directory ([`crate::backup`]).
    backup: Option<IndexBackup>,
    recovery: RecoveryReport,
    closed: AtomicBool,
    _lock: Box<dyn Any + Send + Sync>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("data_dir", &self.cfg.data_dir)
            .finish_non_exhaustive()
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn new_version() -> Result<String> {
    let b = random_bytes::<10>()?;
    Ok(b.iter().map(|b| format!("{b:02x}")).collect())
}

impl Store {
    /// Opens (creating if needed) the store in `cfg.data_dir` on the real filesystem.
    pub fn open(cfg: StoreConfig, clock: Arc<dyn Clock>) -> Result<Self> {
        Self::open_with(cfg, clock, Arc::new(crate::fs::StdFs))
    }

    /// Opens the store on a given filesystem (tests use [`crate::fs::FaultFs`]).
    ///
    /// Opening refuses a data directory whose index or default master key is missing or
    /// damaged, with a [`StoreError::DataDir`] naming the file (see [`crate::datadir`]); it
    /// makes them only in a new data directory. It recovers from a crash: records written
    /// after the last index checkpoint are re-indexed, a torn tail (a record cut short or
    /// failing its checksum at the end of a lane's newest segment) is cut off, and index rows
    /// of missing segment files are dropped. [`Store::recovery_report`] says what was done.
    pub fn open_with(cfg: StoreConfig, clock: Arc<dyn Clock>, fs: Arc<dyn Fs>) -> Result<Self> {
        let dir = cfg.data_dir.clone();
        fs.create_dir_all(&dir)
            .map_err(|e| StoreError::io(format!("creating {}", dir.display()), e))?;
        let lock_guard = crate::datadir::lock_dir(fs.as_ref(), &dir)?;
        let blobs: Arc<dyn BlobStore> =
            Arc::new(LocalBlobs::new(fs.clone(), dir.join("segments"))?);
        let opened = crate::datadir::open_index(fs.as_ref(), &dir, blobs.as_ref())?;
        let backup = IndexBackup::new(fs.clone(), dir, opened.index.clone());
        let index: Arc<dyn Index> = opened.index;
        Self::assemble(
            cfg,
            clock,
            fs,
            (index, blobs),
            lock_guard,
            opened.fresh,
            Some(backup),
        )
    }

    /// Opens the store over any index and blob backends.
    pub fn open_on(
        cfg: StoreConfig,
        clock: Arc<dyn Clock>,
        fs: Arc<dyn Fs>,
        index: Arc<dyn Index>,
        blobs: Arc<dyn BlobStore>,
    ) -> Result<Self> {
        let fresh = index.segments()?.is_empty() && blobs.list()?.is_empty();
        Self::assemble(cfg, clock, fs, (index, blobs), Box::new(()), fresh, None)
    }

    fn assemble(
        mut cfg: StoreConfig,
        clock: Arc<dyn Clock>,
        fs: Arc<dyn Fs>,
        (index, blobs): (Arc<dyn Index>, Arc<dyn BlobStore>),
        lock_guard: Box<dyn Any + Send + Sync>,
        fresh: bool,
        backup: Option<IndexBackup>,
    ) -> Result<Self> {
        let dir = cfg.data_dir.clone();
        let mut key_repairs = Vec::new();
        let file_key = crate::datadir::default_key(
            fs.as_ref(),
            &dir,
            index.as_ref(),
            fresh,
            &mut key_repairs,
        )?;
        // A new file is durable only once the directory holding its entry is synced: without
        // this, a power cut soon after the first start could lose `index.redb` (every stream
        // record and data key) even though its contents were fsynced.
        fs.sync_dir(&dir)
            .map_err(|e| StoreError::io(format!("syncing {}", dir.display()), e))?;
        let mut keys = KeyRing::new(file_key);
        for k in std::mem::take(&mut cfg.master_keys) {
            keys.add(k);
        }
        if let Some(id) = &cfg.default_master_key {
            keys.set_default(id)?;
        }

        let (mut recovery, max_number, max_segment) = recover(index.as_ref(), blobs.as_ref())?;
        recovery.repairs.extend(key_repairs);
        let reserved = index.meta("seq_reserved")?.unwrap_or(0);
        let next = reserved.max(max_number.saturating_add(1)).max(1);
        index.set_meta("seq_reserved", next + SEQ_BLOCK)?;

        let logs = Logs::new(cfg.log_tail, index.all_log_groups()?);
        let live = Arc::new(Mutex::new(HashMap::new()));
        let poison = Arc::new(Mutex::new(None));
        let counters = Arc::new(Counters::default());
        let (tx, rx) = mpsc::channel();
        let committer = Committer::new(
            &cfg,
            clock.clone(),
            fs.clone(),
            index.clone(),
            blobs.clone(),
            live.clone(),
            poison.clone(),
            max_segment + 1,
            counters.clone(),
        );
        let commit_thread = std::thread::Builder::new()
            .name("vigil-store-commit".into())
            .spawn(move || committer.run(rx))
            .map_err(|e| StoreError::io("starting the commit thread", e))?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let inner = Arc::new(Inner {
            cfg,
            clock,
            index,
            blobs,
            fs,
            keys,
            nonces: NonceSource::new()?,
            data_keys: Mutex::default(),
            headers: Mutex::default(),
            seq: Mutex::new((next, next + SEQ_BLOCK)),
            live,
            jobs: Mutex::new(Some(tx)),
            poison,
            counters,
            threads: Mutex::new(vec![commit_thread]),
            control: Mutex::new(()),
            collection_keys: Mutex::default(),
            logs,
            stop: stop.clone(),
            backup,
            recovery,
            closed: AtomicBool::new(false),
            _lock: lock_guard,
        });
        if inner.cfg.retention_interval_ms > 0 {
            let weak = Arc::downgrade(&inner);
            let interval = inner.cfg.retention_interval_ms;
            let t = std::thread::Builder::new()
                .name("vigil-store-retention".into())
                .spawn(move || retention_loop(weak, stop, interval))
                .map_err(|e| StoreError::io("starting the retention thread", e))?;
            lock(&inner.threads).push(t);
        }
        if let Some(b) = &inner.backup {
            b.opened();
            if inner.cfg.index_backup_interval_ms > 0 {
                let weak = Arc::downgrade(&inner);
                let interval = inner.cfg.index_backup_interval_ms;
                let stop = inner.stop.clone();
                let t = std::thread::Builder::new()
                    .name("vigil-store-backup".into())
                    .spawn(move || backup_loop(weak, stop, interval))
                    .map_err(|e| StoreError::io("starting the index backup thread", e))?;
                lock(&inner.threads).push(t);
            }
        }
        Ok(Self(inner))
    }

    /// Refreshes the index backup `index.redb.bak` now if the index's metadata changed since
    /// the last one (the store does it by itself every `index_backup_interval_ms` and when it
    /// closes): see [`crate::backup`]. Returns whether a backup was written; always `false`
    /// for a store opened with [`Store::open_on`], which keeps none. Blocking.
    pub fn backup_index(&self) -> Result<bool> {
        match &self.0.backup {
            Some(b) => Ok(b.refresh()?.is_some()),
            None => Ok(false),
        }
    }

    /// What opening the store recovered and repaired.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.0.recovery
    }

    /// What group commit has done since the store was opened (batches, records, bytes,
    /// fsyncs): `records / batches` is the average group commit. Cheap; for benchmarks and
    /// metrics.
    pub fn stats(&self) -> StoreStats {
        self.0.counters.snapshot()
    }

    /// The configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.0.cfg
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.0.clock
    }

    /// The ids of the configured master keys.
    pub fn master_key_ids(&self) -> Vec<String> {
        self.0.keys.ids().map(str::to_owned).collect()
    }

    /// The index backend.
    pub fn index(&self) -> &Arc<dyn Index> {
        &self.0.index
    }

    /// A handle that does not keep the store open.
    pub fn downgrade(&self) -> WeakStore {
        WeakStore(Arc::downgrade(&self.0))
    }

    /// The blob backend.
    pub fn blobs(&self) -> &Arc<dyn BlobStore> {
        &self.0.blobs
    }

    /// Flushes the index and stops the background threads; later writes fail with
    /// [`StoreError::Closed`]. Dropping the last handle does the same.
    pub fn close(&self) -> Result<()> {
        self.0.shutdown();
        self.0.index.checkpoint()?;
        self.0.final_backup();
        Ok(())
    }

    pub(crate) fn check_writable(&self) -> Result<()> {
        if let Some(p) = lock(&self.0.poison).as_ref() {
            return Err(StoreError::Poisoned(p.clone()));
        }
        if self.0.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        Ok(())
    }

    /// Allocates the next fragment (or header, or log batch) number.
    pub(crate) fn next_number(&self) -> Result<u64> {
        let mut seq = lock(&self.0.seq);
        if seq.0 >= seq.1 {
            self.check_space()?;
            let reserved = seq.1 + SEQ_BLOCK;
            self.0.index.set_meta("seq_reserved", reserved)?;
            seq.1 = reserved;
        }
        let n = seq.0;
        seq.0 += 1;
        Ok(n)
    }

    /// A position at or below that of every log entry appended from now on (and above every
    /// entry appended before): where a log created now starts. Numbers are allocated in
    /// increasing order and never reused, also across restarts (they are reserved durably in
    /// blocks), so this holds for as long as the store lives.
    pub fn next_log_position(&self) -> crate::logs::Position {
        crate::logs::Position::new(lock(&self.0.seq).0, 0)
    }

    // ---- streams ----

    /// Creates a stream with a fresh data key.
    pub fn create_stream(&self, new: NewStream) -> Result<StreamRecord> {
        if new.name.is_empty() {
            return Err(StoreError::InvalidArgument("a stream needs a name".into()));
        }
        let kms_key_id = new
            .kms_key_id
            .clone()
            .unwrap_or_else(|| self.0.keys.default_id().to_owned());
        let master = self.0.keys.get(&kms_key_id)?;
        let _g = lock(&self.0.control);
        self.check_space()?;
        if self.0.index.stream_by_name(&new.name)?.is_some() {
            return Err(StoreError::StreamExists(new.name));
        }
        let id = self.0.index.meta("next_stream_id")?.unwrap_or(1);
        self.0.index.set_meta("next_stream_id", id + 1)?;
        let key = random_bytes::<KEY_LEN>()?;
        let wrapped = WrappedKey {
            master_id: kms_key_id.clone(),
            wrapped: master.wrap(id, 1, &key)?,
        };
        let record = StreamRecord {
            v: STREAM_RECORD_VERSION,
            id,
            name: new.name,
            device_name: new.device_name,
            media_type: new.media_type,
            kms_key_id,
            data_retention_hours: new.data_retention_hours,
            byte_budget: new.byte_budget,
            version: new_version()?,
            status: StreamStatus::Active,
            creation_time_ms: self.0.clock.now_ms(),
            tags: new.tags,
            key_generation: 1,
            attributes: new.attributes,
        };
        self.0.index.create_stream(&record, &wrapped)?;
        lock(&self.0.data_keys).insert((id, 1), Arc::new(AeadKey::new(&key)));
        Ok(record)
    }

    /// An active stream.
    pub fn stream(&self, r: StreamRef<'_>) -> Result<StreamRecord> {
        let rec = match r {
            StreamRef::Name(n) => self.0.index.stream_by_name(n)?,
            StreamRef::Id(id) => self.0.index.stream(id)?,
        };
        match rec {
            Some(rec) if rec.status == StreamStatus::Active => Ok(rec),
            _ => Err(StoreError::StreamNotFound(match r {
                StreamRef::Name(n) => n.to_owned(),
                StreamRef::Id(id) => format!("#{id}"),
            })),
        }
    }

    /// Active streams in name order whose names start with `prefix`, after `after`.
    pub fn list_streams(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StreamRecord>> {
        Ok(self
            .0
            .index
            .list_streams(prefix, after, limit)?
            .into_iter()
            .filter(|s| s.status == StreamStatus::Active)
            .collect())
    }

    /// Changes a stream: checks `expected_version` (if given), applies `f`, issues a new version.
    /// A shorter retention takes effect at once: older fragments become unreachable now and
    /// their bytes go with their segments.
    pub fn update_stream(
        &self,
        r: StreamRef<'_>,
        expected_version: Option<&str>,
        f: impl FnOnce(&mut StreamRecord) -> Result<()>,
    ) -> Result<StreamRecord> {
        let _g = lock(&self.0.control);
        let mut rec = self.stream(r)?;
        self.check_space()?;
        if let Some(v) = expected_version
            && v != rec.version
        {
            return Err(StoreError::VersionMismatch {
                stream: rec.name,
                given: v.to_owned(),
                current: rec.version,
            });
        }
        let before = rec.clone();
        f(&mut rec)?;
        self.0.keys.get(&rec.kms_key_id)?;
        rec.id = before.id;
        rec.v = STREAM_RECORD_VERSION;
        rec.status = before.status;
        rec.version = new_version()?;
        self.0.index.put_stream(&rec)?;
        if let Some(live) = lock(&self.0.live).get(&rec.id) {
            live.set_retained(rec.data_retention_hours > 0);
        }
        if rec.data_retention_hours < before.data_retention_hours
            || rec.byte_budget.unwrap_or(u64::MAX) < before.byte_budget.unwrap_or(u64::MAX)
        {
            crate::retention::expire_stream(self, &rec)?;
        }
        Ok(rec)
    }

    /// Changes a stream's tags and upper-layer attributes, durably, without issuing a new
    /// version (KVS does not change a stream's version when it is tagged). `f` sees only those
    /// two maps, under the store's control lock (so a check in `f` sees no concurrent
    /// change); everything else stays as it was. If `f` fails, nothing changes.
    pub fn modify_stream_metadata<E: From<StoreError>>(
        &self,
        r: StreamRef<'_>,
        f: impl FnOnce(
            &mut BTreeMap<String, String>,
            &mut BTreeMap<String, serde_json::Value>,
        ) -> std::result::Result<(), E>,
    ) -> std::result::Result<StreamRecord, E> {
        let _g = lock(&self.0.control);
        let mut rec = self.stream(r)?;
        self.check_space()?;
        f(&mut rec.tags, &mut rec.attributes)?;
        self.0.index.put_stream(&rec)?;
        Ok(rec)
    }

    /// Deletes a stream: at once it is gone for callers and its data keys are destroyed (its
    /// bytes can no longer be decrypted); its index entries are purged in the background.
    ///
    /// Allowed on a full disk, as long as [`crate::space::DELETE_MIN_FREE`] is free: it is
    /// how space is freed, and its index update is a few pages.
    pub fn delete_stream(&self, r: StreamRef<'_>, expected_version: Option<&str>) -> Result<()> {
        let _g = lock(&self.0.control);
        let mut rec = self.stream(r)?;
        self.check_space_to_delete()?;
        if let Some(v) = expected_version
            && v != rec.version
        {
            return Err(StoreError::VersionMismatch {
                stream: rec.name,
                given: v.to_owned(),
                current: rec.version,
            });
        }
        rec.status = StreamStatus::Deleting;
        self.0.index.mark_deleted(&rec)?;
        lock(&self.0.data_keys).retain(|(s, _), _| *s != rec.id);
        lock(&self.0.headers).retain(|(s, _), _| *s != rec.id);
        if let Some(live) = lock(&self.0.live).remove(&rec.id) {
            live.close();
        }
        Ok(())
    }

    /// Starts a new data key generation for a stream (new fragments use it), optionally under
    /// another master key (which becomes the stream's `KmsKeyId`). Returns the generation.
    pub fn rotate_data_key(&self, r: StreamRef<'_>, master_key: Option<&str>) -> Result<u32> {
        let _g = lock(&self.0.control);
        let mut rec = self.stream(r)?;
        self.check_space()?;
        let master_id = master_key.unwrap_or(&rec.kms_key_id).to_owned();
        let master = self.0.keys.get(&master_id)?;
        let generation = rec.key_generation + 1;
        let key = random_bytes::<KEY_LEN>()?;
        let wrapped = WrappedKey {
            master_id: master_id.clone(),
            wrapped: master.wrap(rec.id, generation, &key)?,
        };
        self.0.index.add_data_key(rec.id, generation, &wrapped)?;
        rec.key_generation = generation;
        rec.kms_key_id = master_id;
        rec.version = new_version()?;
        self.0.index.put_stream(&rec)?;
        lock(&self.0.data_keys).insert((rec.id, generation), Arc::new(AeadKey::new(&key)));
        Ok(generation)
    }

    /// What a stream stores.
    pub fn usage(&self, stream: u64) -> Result<StreamUsage> {
        self.0.index.usage(stream)
    }

    pub(crate) fn data_key(&self, stream: u64, generation: u32) -> Result<Arc<AeadKey>> {
        if let Some(k) = lock(&self.0.data_keys).get(&(stream, generation)) {
            return Ok(k.clone());
        }
        let keys = self.0.index.data_keys(stream)?;
        let (_, wrapped) = keys.iter().find(|(g, _)| *g == generation).ok_or_else(|| {
            StoreError::Authentication {
                what: format!("data key {generation} of stream {stream} (missing)"),
            }
        })?;
        let master = self.0.keys.get(&wrapped.master_id)?;
        let key = Arc::new(master.unwrap_key(stream, generation, &wrapped.wrapped)?);
        lock(&self.0.data_keys).insert((stream, generation), key.clone());
        Ok(key)
    }

    /// A stream's live state (its memory window and change notifications), made on first use.
    ///
    /// The caller looked the stream up first, so it may have been deleted since: a state made
    /// here for a stream the index no longer holds as active is closed at once (and dropped
    /// from the map), never left open for a reader to wait on for ever.
    pub(crate) fn live_stream(&self, rec: &StreamRecord) -> Arc<LiveStream> {
        let (live, made) = {
            let mut map = lock(&self.0.live);
            match map.get(&rec.id) {
                Some(l) => (l.clone(), false),
                None => {
                    let l = Arc::new(LiveStream::new(rec.data_retention_hours > 0));
                    map.insert(rec.id, l.clone());
                    (l, true)
                }
            }
        };
        // `delete_stream` marks the stream deleted before it takes the live state out: a state
        // made after the lookup and before the removal is closed there, one made after the
        // removal is closed here.
        if made
            && matches!(
                self.stream(StreamRef::Id(rec.id)),
                Err(StoreError::StreamNotFound(_))
            )
        {
            let mut map = lock(&self.0.live);
            if map.get(&rec.id).is_some_and(|l| Arc::ptr_eq(l, &live)) {
                map.remove(&rec.id);
            }
            drop(map);
            live.close();
        }
        live
    }

    // ---- track headers ----

    /// Records the track header (EBML header, Info, Tracks as ingested) new fragments of a
    /// stream are ingested under, durably; an unchanged header keeps its id.
    pub fn register_header(&self, stream: u64, header: &[u8]) -> Result<u64> {
        self.check_writable()?;
        let rec = self.stream(StreamRef::Id(stream))?;
        if let Some((id, latest)) = self.latest_header(stream)?
            && latest.as_ref() == header
        {
            return Ok(id);
        }
        self.check_space()?;
        let id = self.next_number()?;
        let mut sealed = Vec::with_capacity(16 + header.len() + 16);
        if self.0.cfg.encryption {
            let nonce = self.0.nonces.next();
            sealed.extend_from_slice(&rec.key_generation.to_le_bytes());
            sealed.extend_from_slice(&nonce);
            let from = sealed.len();
            sealed.extend_from_slice(header);
            let key = self.data_key(stream, rec.key_generation)?;
            key.seal_tail(nonce, &header_aad(stream, id), &mut sealed, from);
        } else {
            sealed.extend_from_slice(&0u32.to_le_bytes());
            sealed.extend_from_slice(header);
        }
        self.0.index.put_header(stream, id, &sealed)?;
        lock(&self.0.headers).insert((stream, id), Bytes::copy_from_slice(header));
        Ok(id)
    }

    fn latest_header(&self, stream: u64) -> Result<Option<(u64, Bytes)>> {
        let cached = lock(&self.0.headers)
            .iter()
            .filter(|((s, _), _)| *s == stream)
            .max_by_key(|((_, id), _)| *id)
            .map(|((_, id), b)| (*id, b.clone()));
        if cached.is_some() {
            return Ok(cached);
        }
        match self.0.index.latest_header(stream)? {
            Some((id, sealed)) => Ok(Some((id, self.open_header(stream, id, sealed)?))),
            None => Ok(None),
        }
    }

    /// A track header by id.
    pub fn header(&self, stream: u64, id: u64) -> Result<Bytes> {
        if let Some(b) = lock(&self.0.headers).get(&(stream, id)) {
            return Ok(b.clone());
        }
        let sealed = self
            .0
            .index
            .header(stream, id)?
            .ok_or(StoreError::FragmentNotFound { stream, number: id })?;
        let plain = self.open_header(stream, id, sealed)?;
        let mut cache = lock(&self.0.headers);
        if cache.len() > 4096 {
            cache.clear();
        }
        cache.insert((stream, id), plain.clone());
        Ok(plain)
    }

    fn open_header(&self, stream: u64, id: u64, sealed: Vec<u8>) -> Result<Bytes> {
        let fail = || StoreError::Authentication {
            what: format!("track header {id} of stream {stream}"),
        };
        let (generation, rest) = sealed.split_first_chunk::<4>().ok_or_else(fail)?;
        let generation = u32::from_le_bytes(*generation);
        if generation == 0 {
            return Ok(Bytes::copy_from_slice(rest));
        }
        let (nonce, ct) = rest.split_first_chunk::<12>().ok_or_else(fail)?;
        let mut buf = ct.to_vec();
        let key = self.data_key(stream, generation)?;
        let n = key
            .open(*nonce, &header_aad(stream, id), &mut buf)
            .ok_or_else(fail)?;
        buf.truncate(n);
        Ok(Bytes::from(buf))
    }

    // ---- reads ----

    /// A fragment's metadata.
    pub fn fragment(&self, stream: u64, number: u64) -> Result<FragmentMeta> {
        self.stream(StreamRef::Id(stream))?;
        self.0
            .index
            .fragment(stream, number)?
            .ok_or(StoreError::FragmentNotFound { stream, number })
    }

    /// Reads a fragment's bytes back, checked (CRC) and authenticated (AES-GCM).
    pub fn read_fragment(&self, stream: u64, number: u64) -> Result<StoredFragment> {
        let meta = self.fragment(stream, number)?;
        self.read_meta(&meta)
    }

    /// Fragments in number order after `after`.
    pub fn fragments_after(
        &self,
        stream: u64,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<FragmentMeta>> {
        self.stream(StreamRef::Id(stream))?;
        self.0.index.fragments_after(stream, after, limit)
    }

    /// A page of fragments by timestamp range (inclusive), in timestamp order.
    pub fn list_fragments(
        &self,
        stream: u64,
        kind: TimestampKind,
        start_ms: u64,
        end_ms: u64,
        after: Option<PageCursor>,
        limit: usize,
    ) -> Result<Page> {
        self.stream(StreamRef::Id(stream))?;
        self.0
            .index
            .fragments_by_time(stream, kind, start_ms, end_ms, after, limit)
    }

    /// Runs retention once now (the background thread does this every
    /// `retention_interval_ms`): see [`crate::retention`]. Blocking: call it from a thread,
    /// or `spawn_blocking`, never directly on an async runtime.
    pub fn run_retention(&self) -> Result<crate::retention::RetentionReport> {
        crate::retention::run(self)
    }

    pub(crate) fn send(&self, job: Job) -> Result<()> {
        let jobs = lock(&self.0.jobs);
        let tx = jobs.as_ref().ok_or(StoreError::Closed)?;
        tx.send(job).map_err(|_| StoreError::Closed)
    }
}

fn header_aad(stream: u64, id: u64) -> Vec<u8> {
    let mut aad = b"vigil-hdr".to_vec();
    aad.extend_from_slice(&stream.to_le_bytes());
    aad.extend_from_slice(&id.to_le_bytes());
    aad
}

impl Inner {
    fn shutdown(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        {
            let (m, cv) = &*self.stop;
            *lock(m) = true;
            cv.notify_all();
        }
        lock(&self.jobs).take();
        let threads = std::mem::take(&mut *lock(&self.threads));
        let me = std::thread::current().id();
        for t in threads {
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
    }
}

impl Inner {
    /// The backup taken on close: a failure is logged, not returned, since everything the
    /// store holds is durable by now and the previous backup is still whole.
    fn final_backup(&self) {
        if let Some(b) = &self.backup
            && let Err(e) = b.refresh()
        {
            tracing::warn!(error = %e, "the index backup on close failed");
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown();
        if let Err(e) = self.index.checkpoint() {
            tracing::warn!(error = %e, "final index checkpoint failed");
        }
        self.final_backup();
    }
}

/// Waits `interval_ms`, or less if the store stops; returns whether it stopped. A stop
/// signalled before the wait began is seen at once.
fn wait_or_stop(stop: &(Mutex<bool>, Condvar), interval_ms: u64) -> bool {
    let (m, cv) = stop;
    let guard = lock(m);
    let (guard, _) = cv
        .wait_timeout_while(
            guard,
            std::time::Duration::from_millis(interval_ms),
            |stopped| !*stopped,
        )
        .unwrap_or_else(|e| e.into_inner());
    *guard
}

fn backup_loop(weak: Weak<Inner>, stop: Arc<(Mutex<bool>, Condvar)>, interval_ms: u64) {
    while !wait_or_stop(&stop, interval_ms) {
        let Some(inner) = weak.upgrade() else { return };
        let store = Store(inner);
        if !store.room_for_backup() {
            tracing::debug!("index backup put off: too little free space");
            continue;
        }
        if let Some(b) = &store.0.backup
            && let Err(e) = b.refresh()
        {
            tracing::warn!(error = %e, "refreshing the index backup failed");
        }
    }
}

fn retention_loop(weak: Weak<Inner>, stop: Arc<(Mutex<bool>, Condvar)>, interval_ms: u64) {
    while !wait_or_stop(&stop, interval_ms) {
        let Some(inner) = weak.upgrade() else { return };
        let store = Store(inner);
        if let Err(e) = store.run_retention() {
            tracing::warn!(error = %e, "retention pass failed");
        }
    }
}
