//! [`DataStreams`]: the engine over the store.
//!
//! # Concurrency
//!
//! Each stream has a gate (an async read-write lock). Appends hold it shared from routing
//! until their batches are durable, in a task of their own, so that a put whose caller goes
//! away (a client that hung up) still holds it until its batches are on disk; whatever changes
//! the shard map or the stream's settings holds it exclusively. So a reshard waits for the appends in flight, closes the parents at
//! exactly their last durable record (nothing can be written to a parent after its
//! `EndingSequenceNumber`), and opens the children at a position above everything written
//! before. The metadata itself sits behind a plain lock, held only to copy or replace it.
//!
//! Control-plane calls (`create`, `update`, the reshards, `delete`) and reads do blocking
//! store I/O (index transactions with an fsync, segment reads): call them from a blocking
//! context (`spawn_blocking`), never on an async runtime's workers. [`DataStreams::put`] is
//! async and does its blocking part (sealing large batches) on the blocking pool.
//!
//! # Durability
//!
//! A record reported put is durable: its batch was appended to a segment and `fdatasync`ed,
//! and indexed (the store's log contract, `vigil_store::logs`), before `put` returns. Stream
//! metadata changes are durable (one index transaction each) before the call returns.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use bytes::Bytes;
use tokio::sync::watch;
use vigil_store::{LogEntry, LogGroupRef, NewEntry, NewLogGroup, Position, Store, StoreError};

use crate::error::{Error, Result};
use crate::hash::{even_ranges, partition_hash};
use crate::model::{
    DEFAULT_MAX_RECORD_KIB, GROUP_PREFIX, META_ATTRIBUTE, ON_DEMAND_SHARDS, STREAM_META_VERSION,
    ShardMeta, StreamInfo, StreamMeta, StreamMode,
};
use crate::reshard::{self, Plan};
use crate::seq::SequenceNumber;
use crate::writer::Writers;

/// Retention of a new stream, in hours.
pub const DEFAULT_RETENTION_HOURS: u32 = 24;
/// The longest retention, in hours.
pub const MAX_RETENTION_HOURS: u32 = 8760;

/// The longest partition key, in Unicode characters (at most 1,024 bytes of UTF-8, what the
/// store takes as an entry's key).
pub const MAX_PARTITION_KEY_CHARS: usize = 256;

/// The server's limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open shards, all streams together (AWS's default account limit is 500).
    pub max_shards: u32,
    /// On-demand streams.
    pub max_on_demand_streams: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_shards: 500,
            max_on_demand_streams: 50,
        }
    }
}

/// A new stream.
#[derive(Debug, Clone)]
pub struct NewStream {
    /// Its name (validated by the caller).
    pub name: String,
    /// Capacity mode.
    pub mode: StreamMode,
    /// Shards (provisioned; on-demand streams get [`ON_DEMAND_SHARDS`]).
    pub shard_count: u32,
    /// Tags.
    pub tags: std::collections::BTreeMap<String, String>,
}

/// A record to put.
#[derive(Debug, Clone)]
pub struct NewRecord {
    /// Its partition key.
    pub partition_key: String,
    /// A hash key that overrides the partition key's.
    pub explicit_hash_key: Option<u128>,
    /// Its data.
    pub data: Bytes,
}

/// Where a put record went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Put {
    /// The shard.
    pub shard: u32,
    /// Its sequence number.
    pub sequence: SequenceNumber,
}

/// A record read back.
#[derive(Debug, Clone)]
pub struct Record {
    /// Its sequence number.
    pub sequence: SequenceNumber,
    /// When it arrived (ms since the epoch).
    pub arrival_ms: u64,
    /// Its partition key.
    pub partition_key: String,
    /// Its data.
    pub data: Bytes,
}

/// Where an iterator starts.
#[derive(Debug, Clone, Copy)]
pub enum StartAt {
    /// The oldest record kept.
    TrimHorizon,
    /// Just after the newest record.
    Latest,
    /// At this record.
    AtSequence(SequenceNumber),
    /// Just after this record.
    AfterSequence(SequenceNumber),
    /// The first record that arrived at or after this time (ms).
    AtTimestamp(u64),
}

/// A child of a shard read to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    /// The child's index.
    pub index: u32,
    /// Its parents (one for a split, two for a merge).
    pub parents: Vec<u32>,
    /// Its hash range.
    pub start_hash: u128,
    /// ...
    pub end_hash: u128,
}

/// What a read returned.
#[derive(Debug, Clone)]
pub struct ReadBatch {
    /// Records, in order.
    pub records: Vec<Record>,
    /// Where the next read starts; `None` once a closed shard has been read to its end.
    pub next: Option<Position>,
    /// How far behind the newest record of the shard the reader is, in milliseconds (0
    /// when caught up).
    pub millis_behind_latest: u64,
    /// A closed shard's children, once it has been read to its end.
    pub children: Vec<Child>,
}

/// The data streams of a store.
#[derive(Debug, Clone)]
pub struct DataStreams(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    store: Store,
    limits: Limits,
    streams: Mutex<HashMap<String, Arc<Stream>>>,
    /// Held from checking a limit to committing what counts against it (creates, reshards,
    /// mode changes), so that concurrent calls cannot pass a limit together.
    limits_lock: Mutex<()>,
}

#[derive(Debug)]
struct Stream {
    group: u64,
    name: String,
    created_ms: u64,
    /// Shared by puts until their batches are durable; exclusive for changes (module docs).
    gate: Arc<tokio::sync::RwLock<()>>,
    state: RwLock<State>,
    /// The shards' writers, which make the puts queued for a shard one batch.
    writers: Arc<Writers>,
}

#[derive(Debug, Clone)]
struct State {
    retention_hours: u32,
    meta: StreamMeta,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Stream {
    fn state(&self) -> State {
        self.state.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_state(&self, s: State) {
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = s;
    }

    fn info(&self) -> StreamInfo {
        let s = self.state();
        StreamInfo {
            name: self.name.clone(),
            id: self.group,
            created_ms: self.created_ms,
            retention_hours: s.retention_hours,
            meta: s.meta,
        }
    }
}

/// A store error for the stream `name`: its log group gone (deleted since it was looked up)
/// is the stream not found; anything else passes through.
fn gone(name: &str, e: StoreError) -> Error {
    match e {
        StoreError::LogGroupNotFound(_) => Error::StreamNotFound(name.to_owned()),
        other => Error::Store(other),
    }
}

fn decode_meta(rec: &vigil_store::LogGroupRecord) -> Result<StreamMeta> {
    let value = rec.attributes.get(META_ATTRIBUTE).cloned().ok_or_else(|| {
        Error::Store(StoreError::InvalidArgument(format!(
            "log group {} has no data stream metadata",
            rec.name
        )))
    })?;
    let meta: StreamMeta = serde_json::from_value(value).map_err(|e| {
        Error::Store(StoreError::InvalidArgument(format!(
            "the data stream metadata of {} does not parse: {e}",
            rec.name
        )))
    })?;
    if meta.v != STREAM_META_VERSION {
        return Err(Error::Store(StoreError::InvalidArgument(format!(
            "the data stream metadata of {} is version {}; this build reads {STREAM_META_VERSION}",
            rec.name, meta.v
        ))));
    }
    Ok(meta)
}

fn encode_meta(meta: &StreamMeta) -> Result<serde_json::Value> {
    serde_json::to_value(meta)
        .map_err(|e| Error::Store(StoreError::InvalidArgument(format!("encoding: {e}"))))
}

fn random_hex() -> Result<String> {
    let mut b = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .map_err(|_| Error::Store(StoreError::InvalidArgument("no randomness".into())))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

impl DataStreams {
    /// The data streams of `store`, loaded from its log groups (blocking).
    pub fn open(store: Store, limits: Limits) -> Result<Self> {
        let mut streams = HashMap::new();
        let mut after: Option<String> = None;
        loop {
            let page = store.list_log_groups(GROUP_PREFIX, after.as_deref(), 500)?;
            let Some(last) = page.last() else { break };
            after = Some(last.name.clone());
            for rec in page {
                let Some(name) = rec.name.strip_prefix(GROUP_PREFIX) else {
                    continue;
                };
                let meta = decode_meta(&rec)?;
                streams.insert(
                    name.to_owned(),
                    Arc::new(Stream {
                        group: rec.id,
                        name: name.to_owned(),
                        created_ms: rec.creation_time_ms,
                        gate: Arc::new(tokio::sync::RwLock::new(())),
                        writers: Arc::default(),
                        state: RwLock::new(State {
                            retention_hours: rec.retention_hours,
                            meta,
                        }),
                    }),
                );
            }
        }
        Ok(Self(Arc::new(Inner {
            store,
            limits,
            streams: Mutex::new(streams),
            limits_lock: Mutex::new(()),
        })))
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.0.store
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        self.0.limits
    }

    fn stream(&self, name: &str) -> Result<Arc<Stream>> {
        lock(&self.0.streams)
            .get(name)
            .cloned()
            .ok_or_else(|| Error::StreamNotFound(name.to_owned()))
    }

    /// Open shards of every stream, and the number of on-demand streams.
    pub fn usage(&self) -> (u32, u32) {
        let streams: Vec<Arc<Stream>> = lock(&self.0.streams).values().cloned().collect();
        let mut shards = 0u32;
        let mut on_demand = 0u32;
        for s in streams {
            let st = s.state();
            shards = shards.saturating_add(st.meta.open_shards().count() as u32);
            if st.meta.mode == StreamMode::OnDemand {
                on_demand += 1;
            }
        }
        (shards, on_demand)
    }

    fn check_shard_limit(&self, adding: u32) -> Result<()> {
        let (open, _) = self.usage();
        let limit = self.0.limits.max_shards;
        if open.saturating_add(adding) > limit {
            return Err(Error::LimitExceeded(format!(
                "This request would exceed the shard limit for the account: {open} open shards, \
                 {adding} more asked for, limit {limit}."
            )));
        }
        Ok(())
    }

    /// Creates a stream (blocking).
    pub fn create(&self, new: NewStream) -> Result<StreamInfo> {
        let _limits = lock(&self.0.limits_lock);
        let shards = match new.mode {
            StreamMode::Provisioned => new.shard_count,
            StreamMode::OnDemand => ON_DEMAND_SHARDS,
        };
        if shards == 0 {
            return Err(Error::Invalid("ShardCount must be at least 1.".into()));
        }
        if new.mode == StreamMode::OnDemand {
            let (_, on_demand) = self.usage();
            if on_demand >= self.0.limits.max_on_demand_streams {
                return Err(Error::LimitExceeded(format!(
                    "This request would exceed the on-demand stream limit of {}.",
                    self.0.limits.max_on_demand_streams
                )));
            }
        }
        self.check_shard_limit(shards)?;
        let now = self.0.store.clock().now_ms();
        let floor = self.0.store.next_log_position().as_u128();
        let meta = StreamMeta {
            v: STREAM_META_VERSION,
            mode: new.mode,
            shards: even_ranges(shards)
                .into_iter()
                .zip(0u32..)
                .map(|((lo, hi), index)| ShardMeta {
                    index,
                    parent: None,
                    adjacent_parent: None,
                    start_hash: lo,
                    end_hash: hi,
                    starting: floor,
                    ending: None,
                    created_ms: now,
                    closed_ms: None,
                })
                .collect(),
            next_shard_index: shards,
            tags: new.tags,
            encryption: None,
            shard_level_metrics: Default::default(),
            max_record_size_kib: DEFAULT_MAX_RECORD_KIB,
            iterator_key: random_hex()?,
            updated_ms: now,
        };
        let mut group = NewLogGroup::new(format!("{GROUP_PREFIX}{}", new.name));
        group.retention_hours = DEFAULT_RETENTION_HOURS;
        group
            .attributes
            .insert(META_ATTRIBUTE.to_owned(), encode_meta(&meta)?);
        if lock(&self.0.streams).contains_key(&new.name) {
            return Err(Error::StreamExists(new.name));
        }
        // Not under the streams lock: creating the group is an index transaction with an
        // fsync, and puts look streams up on the runtime. The store refuses a second group of
        // the same name, so two racing creates cannot both succeed.
        let rec = match self.0.store.create_log_group(group) {
            Ok(r) => r,
            Err(StoreError::LogGroupExists(_)) => return Err(Error::StreamExists(new.name)),
            Err(e) => return Err(e.into()),
        };
        let stream = Arc::new(Stream {
            group: rec.id,
            name: new.name.clone(),
            created_ms: rec.creation_time_ms,
            gate: Arc::new(tokio::sync::RwLock::new(())),
            writers: Arc::default(),
            state: RwLock::new(State {
                retention_hours: rec.retention_hours,
                meta,
            }),
        });
        let info = stream.info();
        lock(&self.0.streams).insert(new.name, stream);
        Ok(info)
    }

    /// A stream.
    pub fn describe(&self, name: &str) -> Result<StreamInfo> {
        Ok(self.stream(name)?.info())
    }

    /// Streams in name order after `after`, at most `limit`.
    pub fn list(&self, after: Option<&str>, limit: usize) -> Vec<StreamInfo> {
        let mut names: Vec<(String, Arc<Stream>)> = lock(&self.0.streams)
            .iter()
            .filter(|(n, _)| after.is_none_or(|a| n.as_str() > a))
            .map(|(n, s)| (n.clone(), s.clone()))
            .collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        names
            .into_iter()
            .take(limit)
            .map(|(_, s)| s.info())
            .collect()
    }

    /// Deletes a stream (blocking): gone at once, its records unreadable (their keys
    /// destroyed), its space reclaimed by retention.
    pub fn delete(&self, name: &str) -> Result<()> {
        let stream = self.stream(name)?;
        let _gate = stream.gate.blocking_write();
        match self.0.store.delete_log_group(LogGroupRef::Id(stream.group)) {
            Ok(()) | Err(StoreError::LogGroupNotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let mut streams = lock(&self.0.streams);
        if streams.get(name).is_some_and(|s| s.group == stream.group) {
            streams.remove(name);
        }
        Ok(())
    }

    /// Changes a stream's settings (blocking): `f` may change the retention (hours) and the
    /// metadata's tags, encryption, monitoring, record size and mode (not its shards); the
    /// change is durable when this returns.
    pub fn update(
        &self,
        name: &str,
        f: impl FnOnce(&mut u32, &mut StreamMeta) -> Result<()>,
    ) -> Result<StreamInfo> {
        let stream = self.stream(name)?;
        let _limits = lock(&self.0.limits_lock);
        let _gate = stream.gate.blocking_write();
        let mut st = stream.state();
        let before = st.meta.mode;
        let shards = st.meta.shards.clone();
        let next = st.meta.next_shard_index;
        f(&mut st.retention_hours, &mut st.meta)?;
        if st.meta.shards != shards || st.meta.next_shard_index != next {
            return Err(Error::Invalid("shards change only by resharding".into()));
        }
        if before != StreamMode::OnDemand && st.meta.mode == StreamMode::OnDemand {
            let (_, on_demand) = self.usage();
            if on_demand >= self.0.limits.max_on_demand_streams {
                return Err(Error::LimitExceeded(format!(
                    "This request would exceed the on-demand stream limit of {}.",
                    self.0.limits.max_on_demand_streams
                )));
            }
        }
        self.persist(&stream, st)?;
        Ok(stream.info())
    }

    fn persist(&self, stream: &Stream, st: State) -> Result<()> {
        let json = encode_meta(&st.meta)?;
        let retention = st.retention_hours;
        self.0
            .store
            .update_log_group::<StoreError>(LogGroupRef::Id(stream.group), |rec| {
                rec.retention_hours = retention;
                rec.attributes.insert(META_ATTRIBUTE.to_owned(), json);
                Ok(())
            })
            .map_err(|e| gone(&stream.name, e))?;
        stream.set_state(st);
        Ok(())
    }

    /// Splits a shard (blocking).
    pub fn split_shard(&self, name: &str, shard: u32, new_start: u128) -> Result<StreamInfo> {
        self.reshard(name, 1, |meta| reshard::split(meta, shard, new_start))
    }

    /// Merges two adjacent shards (blocking).
    pub fn merge_shards(&self, name: &str, shard: u32, adjacent: u32) -> Result<StreamInfo> {
        self.reshard(name, 0, |meta| reshard::merge(meta, shard, adjacent))
    }

    /// Changes the number of open shards to `target`, with even hash ranges (blocking).
    /// Returns the stream before and after.
    pub fn update_shard_count(&self, name: &str, target: u32) -> Result<(StreamInfo, StreamInfo)> {
        let before = self.describe(name)?;
        let open = before.meta.open_shards().count() as u32;
        if target == 0 || target > open.saturating_mul(2) || target.saturating_mul(2) < open {
            return Err(Error::Invalid(format!(
                "TargetShardCount {target} must be between half and double the open shard count \
                 ({open})."
            )));
        }
        let after = self.reshard(name, target.saturating_sub(open), |meta| {
            reshard::uniform(meta, target)
        })?;
        Ok((before, after))
    }

    fn reshard(
        &self,
        name: &str,
        adding: u32,
        plan: impl FnOnce(&StreamMeta) -> Result<Plan>,
    ) -> Result<StreamInfo> {
        let stream = self.stream(name)?;
        let _limits = lock(&self.0.limits_lock);
        let _gate = stream.gate.blocking_write();
        let mut st = stream.state();
        if st.meta.mode == StreamMode::OnDemand {
            return Err(Error::WrongMode(format!(
                "Stream {name} is in ON_DEMAND mode: its shards are managed by the service."
            )));
        }
        self.check_shard_limit(adding)?;
        let plan = plan(&st.meta).map_err(|e| match e {
            Error::ShardNotFound { shard, .. } => Error::ShardNotFound {
                stream: name.to_owned(),
                shard,
            },
            other => other,
        })?;
        if plan.open.is_empty() {
            return Ok(stream.info());
        }
        let now = self.0.store.clock().now_ms();
        // Every append in flight is durable (the gate is ours): a parent's last durable
        // record is its last record.
        for index in &plan.close {
            let bounds = self
                .0
                .store
                .log_bounds(stream.group, *index)
                .map_err(|e| gone(name, e))?;
            if let Some(s) = st.meta.shards.iter_mut().find(|s| s.index == *index) {
                let last = bounds.last.map_or(s.starting, Position::as_u128);
                s.ending = Some(last.max(s.starting));
                s.closed_ms = Some(now);
            }
        }
        let floor = self.0.store.next_log_position().as_u128();
        for n in &plan.open {
            st.meta.shards.push(ShardMeta {
                index: n.index,
                parent: Some(n.parent),
                adjacent_parent: n.adjacent_parent,
                start_hash: n.start_hash,
                end_hash: n.end_hash,
                starting: floor,
                ending: n.closed_at_once.then_some(floor),
                created_ms: now,
                closed_ms: n.closed_at_once.then_some(now),
            });
            st.meta.next_shard_index = st.meta.next_shard_index.max(n.index + 1);
        }
        st.meta.updated_ms = now;
        self.prune(&mut st, now);
        self.persist(&stream, st)?;
        Ok(stream.info())
    }

    /// Forgets closed shards closed longer than the retention period ago: every record they
    /// held has expired, so a reader has nothing to read in them (their children keep their
    /// ids as parents, as on AWS, where expired parents leave the listings too). Runs at each
    /// reshard; listings filter such shards out in between (`visible` callers).
    fn prune(&self, st: &mut State, now: u64) {
        let retention_ms = u64::from(st.retention_hours) * 3_600_000;
        st.meta.shards.retain(|s| {
            s.closed_ms
                .is_none_or(|closed| closed.saturating_add(retention_ms) > now)
        });
    }

    /// Puts records (async): each routed to the open shard that owns its hash key, appended
    /// in order per shard, durable when this returns. One result per record, in order: a
    /// shard whose append failed fails its records only (with the store's error, shared).
    pub async fn put(
        &self,
        name: &str,
        records: Vec<NewRecord>,
    ) -> Result<Vec<std::result::Result<Put, Arc<StoreError>>>> {
        let stream = self.stream(name)?;
        let gate = stream.gate.clone().read_owned().await;
        // Deleted while this waited for the gate?
        self.stream(name)
            .ok()
            .filter(|s| s.group == stream.group)
            .ok_or_else(|| Error::StreamNotFound(name.to_owned()))?;
        let st = stream.state();
        let limit = st.meta.max_record_size_kib as usize * 1024;
        let mut by_shard: Vec<(u32, Vec<usize>, Vec<NewEntry>)> = Vec::new();
        for (i, r) in records.iter().enumerate() {
            // Checked here, not by the store: a batch the store refuses fails every put
            // combined into it (`writer`).
            let chars = r.partition_key.chars().count();
            if chars == 0 || chars > MAX_PARTITION_KEY_CHARS {
                return Err(Error::Invalid(format!(
                    "Record {i}: a partition key has 1 to {MAX_PARTITION_KEY_CHARS} characters, not {chars}."
                )));
            }
            let size = r.data.len() + r.partition_key.len();
            if size > limit {
                return Err(Error::RecordTooLarge {
                    index: i,
                    size,
                    limit,
                });
            }
            let hash = r
                .explicit_hash_key
                .unwrap_or_else(|| partition_hash(&r.partition_key));
            let shard =
                st.meta.route(hash).map(|s| s.index).ok_or_else(|| {
                    Error::Invalid(format!("No open shard owns hash key {hash}."))
                })?;
            let entry = NewEntry {
                key: Bytes::copy_from_slice(r.partition_key.as_bytes()),
                data: r.data.clone(),
            };
            match by_shard.iter_mut().find(|(s, _, _)| *s == shard) {
                Some((_, idx, entries)) => {
                    idx.push(i);
                    entries.push(entry);
                }
                None => by_shard.push((shard, vec![i], vec![entry])),
            }
        }
        // The appends and their waits run in a task that owns the gate: if this future is
        // dropped (the client went away), records already queued still become durable before
        // a reshard may read the shards' last positions.
        let store = self.0.store.clone();
        let group = stream.group;
        let writers = stream.writers.clone();
        let count = records.len();
        let task = tokio::spawn(async move {
            let _gate = gate;
            let pending: Vec<_> = by_shard
                .into_iter()
                .map(|(shard, idx, entries)| {
                    (shard, idx, writers.submit(&store, group, shard, entries))
                })
                .collect();
            let mut out: Vec<Option<std::result::Result<Put, Arc<StoreError>>>> = vec![None; count];
            for (shard, idx, reply) in pending {
                let first = reply
                    .await
                    .unwrap_or_else(|_| Err(Arc::new(StoreError::Closed)));
                for (k, i) in idx.into_iter().enumerate() {
                    let r = match &first {
                        Ok(p) => Ok(Put {
                            shard,
                            sequence: SequenceNumber::new(
                                Position::new(
                                    p.batch(),
                                    p.index()
                                        .saturating_add(u16::try_from(k).unwrap_or(u16::MAX)),
                                ),
                                shard,
                            ),
                        }),
                        Err(e) => Err(e.clone()),
                    };
                    if let Some(slot) = out.get_mut(i) {
                        *slot = Some(r);
                    }
                }
            }
            out
        });
        let out = task.await.map_err(|e| {
            Error::Store(StoreError::InvalidArgument(format!(
                "the put task failed: {e}"
            )))
        })?;
        Ok(out
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Arc::new(StoreError::Closed))))
            .collect())
    }

    /// Where an iterator of `shard` starting as `at` begins (blocking).
    pub fn start(&self, name: &str, shard: u32, at: StartAt) -> Result<(StreamInfo, Position)> {
        let stream = self.stream(name)?;
        let info = stream.info();
        let s = info
            .meta
            .shard(shard)
            .cloned()
            .ok_or_else(|| Error::ShardNotFound {
                stream: name.to_owned(),
                shard: crate::model::shard_id(shard),
            })?;
        let check = |seq: SequenceNumber| -> Result<Position> {
            if seq.shard != shard
                || seq.position.as_u128() < s.starting
                || s.ending.is_some_and(|e| seq.position.as_u128() > e)
            {
                return Err(Error::Invalid(format!(
                    "StartingSequenceNumber {seq} used in GetShardIterator on shard {} in stream \
                     {name} is invalid because it did not come from this stream and shard.",
                    s.id()
                )));
            }
            Ok(seq.position)
        };
        let after_end = |s: &ShardMeta| -> Result<Position> {
            match s.ending {
                Some(e) => Ok(Position::from_u128(e).next()),
                None => Ok(self
                    .0
                    .store
                    .log_bounds(stream.group, shard)
                    .map_err(|e| gone(name, e))?
                    .next()),
            }
        };
        let pos = match at {
            StartAt::TrimHorizon => Position::from_u128(s.starting),
            StartAt::Latest => after_end(&s)?,
            StartAt::AtSequence(seq) => check(seq)?,
            StartAt::AfterSequence(seq) => check(seq)?.next(),
            StartAt::AtTimestamp(ts) => {
                match self
                    .0
                    .store
                    .position_at_time(stream.group, shard, ts)
                    .map_err(|e| gone(name, e))?
                {
                    Some(p) => p,
                    None => after_end(&s)?,
                }
            }
        };
        Ok((info, pos))
    }

    /// Reads records of `shard` from `from` on (blocking): at most `max_records` and about
    /// `max_bytes`. `stream_id` is the stream's id as [`StreamInfo::id`] gave it: a stream
    /// deleted and created again under the same name is another stream.
    pub fn read(
        &self,
        name: &str,
        stream_id: u64,
        shard: u32,
        from: Position,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<ReadBatch> {
        let stream = self
            .stream(name)
            .ok()
            .filter(|s| s.group == stream_id)
            .ok_or_else(|| Error::StreamNotFound(name.to_owned()))?;
        let st = stream.state();
        let s = st
            .meta
            .shard(shard)
            .cloned()
            .ok_or_else(|| Error::ShardNotFound {
                stream: name.to_owned(),
                shard: crate::model::shard_id(shard),
            })?;
        let bounds = self
            .0
            .store
            .log_bounds(stream.group, shard)
            .map_err(|e| gone(name, e))?;
        let entries: Vec<LogEntry> = self
            .0
            .store
            .read_log(stream.group, shard, from, max_records, max_bytes)
            .map_err(|e| gone(name, e))?;
        let last_read = entries.last().map(|e| e.position);
        let caught_up = match (last_read, bounds.last) {
            (_, None) => true,
            (Some(r), Some(l)) => r >= l,
            (None, Some(l)) => from > l,
        };
        let now = self.0.store.clock().now_ms();
        let millis_behind_latest = if caught_up {
            0
        } else {
            entries
                .last()
                .map_or(0, |e| now.saturating_sub(e.arrival_ms))
        };
        let next = last_read.map_or(from, Position::next);
        let records = entries
            .into_iter()
            .map(|e| Record {
                sequence: SequenceNumber::new(e.position, shard),
                arrival_ms: e.arrival_ms,
                partition_key: String::from_utf8_lossy(&e.key).into_owned(),
                data: e.data,
            })
            .collect();
        if !s.is_open() && caught_up {
            let children = st
                .meta
                .children(shard)
                .into_iter()
                .map(|c| Child {
                    index: c.index,
                    parents: std::iter::once(c.parent)
                        .chain(std::iter::once(c.adjacent_parent))
                        .flatten()
                        .collect(),
                    start_hash: c.start_hash,
                    end_hash: c.end_hash,
                })
                .collect();
            return Ok(ReadBatch {
                records,
                next: None,
                millis_behind_latest: 0,
                children,
            });
        }
        Ok(ReadBatch {
            records,
            next: Some(next),
            millis_behind_latest,
            children: Vec::new(),
        })
    }

    /// A receiver of a shard's newest durable position, for in-process consumers: it changes
    /// after every durable put to the shard (before the producer hears of it), and once more
    /// if the stream is deleted.
    pub fn subscribe(&self, name: &str, shard: u32) -> Result<watch::Receiver<Option<Position>>> {
        let stream = self.stream(name)?;
        if stream.state().meta.shard(shard).is_none() {
            return Err(Error::ShardNotFound {
                stream: name.to_owned(),
                shard: crate::model::shard_id(shard),
            });
        }
        self.0
            .store
            .subscribe_log(stream.group, shard)
            .map_err(|e| gone(name, e))
    }
}
