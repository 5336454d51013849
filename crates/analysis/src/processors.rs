//! The stream processors of a store: their definitions and states (documents in the store),
//! and the runs of those that are running (one thread each, [`crate::runtime`]).
//!
//! # Durability
//!
//! Every change of a processor (create, update, start, stop, the state a run ends in) is a
//! store document written durably before the call returns, so a processor is after a crash
//! what the last answered call made it. A run also records, at the end of every fragment it
//! analysed, that fragment's number (its checkpoint); a processor that was running when the
//! server stopped runs again when it starts ([`Analysis::resume`]), after its checkpoint.
//! Records already written to the data stream for frames after the checkpoint are written
//! again for those frames (at least once, as Rekognition's own delivery).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use tokio::sync::watch;
use vigil_datastreams::DataStreams;
use vigil_store::{Store, StreamRef};

use crate::collections::Collections;
use crate::error::{Error, Result};
use crate::model::{KIND, OutputFormat, ProcessorRecord, StartAt, Status};
use crate::runtime::{self, Outcome};

/// Settings of the analysis.
#[derive(Debug, Clone)]
pub struct AnalysisConfig {
    /// Most stream processors (Rekognition's default quota is 20 per account and region).
    pub max_processors: usize,
    /// A running processor further behind live than this skips to the next key frame.
    pub max_lag_ms: u64,
    /// Most collection matches reported per face.
    pub max_matches: usize,
    /// Frames analysed per second of video.
    pub fps: f32,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        Self {
            max_processors: 20,
            max_lag_ms: 1000,
            max_matches: 10,
            fps: crate::model::DEFAULT_ANALYSIS_FPS,
        }
    }
}

/// What a processor's runs have done since the server started (the metrics).
#[derive(Debug, Default)]
pub struct ProcessorStats {
    /// Frames decoded.
    pub frames_decoded: AtomicU64,
    /// Frames analysed (detection ran).
    pub frames_analysed: AtomicU64,
    /// Frames not analysed because nothing moved.
    pub frames_still: AtomicU64,
    /// Frames skipped: behind live, or before a key frame.
    pub frames_skipped: AtomicU64,
    /// Samples the decoder refused.
    pub decode_errors: AtomicU64,
    /// Faces seen in analysed frames.
    pub faces: AtomicU64,
    /// Faces searched in the collection (embedded).
    pub searches: AtomicU64,
    /// Records written to the data stream.
    pub records_out: AtomicU64,
    /// Face events recorded (track decided, track ended).
    pub events: AtomicU64,
    /// How far the last analysed frame was behind its arrival, ms.
    pub latency_ms: AtomicU64,
}

impl ProcessorStats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

struct Run {
    session: String,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) streams: DataStreams,
    pub(crate) collections: Arc<Collections>,
    pub(crate) format: Arc<dyn OutputFormat>,
    pub(crate) cfg: AnalysisConfig,
    handle: tokio::runtime::Handle,
    /// Serialises changes of processor documents.
    control: Mutex<()>,
    runs: Mutex<HashMap<String, Run>>,
    stats: Arc<StatsRegistry>,
    /// Where unknown-face alerts go ([`Analysis::set_alerts`]).
    pub(crate) alerts: std::sync::OnceLock<Arc<dyn crate::model::Alerts>>,
}

/// Every processor's statistics, by name: shareable without holding the store (the metrics
/// keep it).
#[derive(Debug, Default)]
pub struct StatsRegistry(Mutex<BTreeMap<String, Arc<ProcessorStats>>>);

impl StatsRegistry {
    /// Every processor's statistics since the server started.
    pub fn all(&self) -> Vec<(String, Arc<ProcessorStats>)> {
        lock(&self.0)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// The stream processors (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct Analysis(Arc<Inner>);

impl std::fmt::Debug for Analysis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analysis")
            .field("cfg", &self.0.cfg)
            .field("running", &lock(&self.0.runs).len())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_ms(store: &Store) -> u64 {
    store.clock().now_ms()
}

/// A random UUID (version 4), for session ids.
pub fn random_uuid() -> Result<String> {
    let mut b = vigil_store::crypto::random_bytes::<16>()?;
    if let Some(x) = b.get_mut(6) {
        *x = (*x & 0x0f) | 0x40;
    }
    if let Some(x) = b.get_mut(8) {
        *x = (*x & 0x3f) | 0x80;
    }
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    let part = |r: std::ops::Range<usize>| h.get(r).unwrap_or_default().to_owned();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        part(0..8),
        part(8..12),
        part(12..16),
        part(16..20),
        part(20..32)
    ))
}

impl Analysis {
    /// The processors of `store`; runs start on the threads of the current tokio runtime's
    /// handle (call from within the runtime). Nothing runs until [`Analysis::resume`].
    pub fn open(
        store: Store,
        streams: DataStreams,
        collections: Arc<Collections>,
        format: Arc<dyn OutputFormat>,
        cfg: AnalysisConfig,
    ) -> Result<Self> {
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|e| Error::Internal(format!("the analysis needs a tokio runtime: {e}")))?;
        Ok(Self(Arc::new(Inner {
            store,
            streams,
            collections,
            format,
            cfg,
            handle,
            control: Mutex::new(()),
            runs: Mutex::new(HashMap::new()),
            stats: Arc::default(),
            alerts: std::sync::OnceLock::new(),
        })))
    }

    /// Sends each processor's unknown-face alerts (one per track decided unknown) to its
    /// `NotificationChannel` topic through `alerts`; without it, a processor's topic is kept
    /// and shown only. Set once, before [`Analysis::resume`].
    pub fn set_alerts(&self, alerts: Arc<dyn crate::model::Alerts>) {
        let _ = self.0.alerts.set(alerts);
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.0.store
    }

    /// The data streams.
    pub fn streams(&self) -> &DataStreams {
        &self.0.streams
    }

    /// The settings.
    pub fn config(&self) -> &AnalysisConfig {
        &self.0.cfg
    }

    /// Every processor's statistics since the server started.
    pub fn stats(&self) -> Vec<(String, Arc<ProcessorStats>)> {
        self.0.stats.all()
    }

    /// The statistics, apart from the rest (which holds the store).
    pub fn stats_registry(&self) -> Arc<StatsRegistry> {
        self.0.stats.clone()
    }

    pub(crate) fn stats_of(inner: &Inner, name: &str) -> Arc<ProcessorStats> {
        lock(&inner.stats.0)
            .entry(name.to_owned())
            .or_default()
            .clone()
    }

    /// The processor named `name`.
    pub fn get(&self, name: &str) -> Result<ProcessorRecord> {
        load(&self.0.store, name)
    }

    /// The face events of the processor `name` from `from` on, at most `limit`.
    pub fn events(
        &self,
        name: &str,
        from: vigil_store::Position,
        limit: usize,
    ) -> Result<Vec<crate::events::StoredEvent>> {
        load(&self.0.store, name)?;
        crate::events::read(&self.0.store, name, from, limit)
    }

    /// Processors in name order after `after`, at most `limit`.
    pub fn list(&self, after: Option<&str>, limit: usize) -> Result<Vec<ProcessorRecord>> {
        self.0
            .store
            .documents(KIND, after, limit)?
            .into_iter()
            .map(|(_, body)| decode(&body))
            .collect()
    }

    /// Creates a processor (STOPPED). Its video stream, collection and data stream must
    /// exist.
    pub fn create(&self, mut rec: ProcessorRecord) -> Result<ProcessorRecord> {
        let _g = lock(&self.0.control);
        if self.0.store.document(KIND, &rec.name)?.is_some() {
            return Err(Error::ProcessorExists(rec.name));
        }
        let n = self
            .0
            .store
            .documents(KIND, None, self.0.cfg.max_processors)?
            .len();
        if n >= self.0.cfg.max_processors {
            return Err(Error::LimitExceeded(format!(
                "The server has {n} stream processors, its limit."
            )));
        }
        self.check_inputs(&rec)?;
        let now = now_ms(&self.0.store);
        rec.status = Status::Stopped;
        rec.creation_ms = now;
        rec.last_update_ms = now;
        save(&self.0.store, &rec)?;
        Ok(rec)
    }

    fn check_inputs(&self, rec: &ProcessorRecord) -> Result<()> {
        match self.0.store.stream(StreamRef::Name(&rec.input_stream)) {
            Ok(_) => {}
            Err(vigil_store::StoreError::StreamNotFound(_)) => {
                return Err(Error::Invalid(format!(
                    "The Kinesis video stream {} does not exist.",
                    rec.input_arn
                )));
            }
            Err(e) => return Err(e.into()),
        }
        self.0.store.collection(&rec.collection)?;
        self.0.streams.describe(&rec.output_stream)?;
        Ok(())
    }

    /// Changes a processor that is not running with `f`; durable on return.
    pub fn update(
        &self,
        name: &str,
        f: impl FnOnce(&mut ProcessorRecord) -> Result<()>,
    ) -> Result<ProcessorRecord> {
        let _g = lock(&self.0.control);
        let mut rec = load(&self.0.store, name)?;
        if rec.status.is_active() {
            return Err(Error::InUse(format!(
                "The stream processor {name} is {}: stop it to update it.",
                rec.status.as_str()
            )));
        }
        f(&mut rec)?;
        rec.name = name.to_owned();
        rec.last_update_ms = now_ms(&self.0.store);
        save(&self.0.store, &rec)?;
        Ok(rec)
    }

    /// Changes a processor's tags (in any state).
    pub fn update_tags(
        &self,
        name: &str,
        f: impl FnOnce(&mut BTreeMap<String, String>) -> Result<()>,
    ) -> Result<ProcessorRecord> {
        let _g = lock(&self.0.control);
        let mut rec = load(&self.0.store, name)?;
        f(&mut rec.tags)?;
        save(&self.0.store, &rec)?;
        Ok(rec)
    }

    /// Deletes a processor that is not running.
    pub fn delete(&self, name: &str) -> Result<()> {
        let _g = lock(&self.0.control);
        let rec = load(&self.0.store, name)?;
        if rec.status.is_active() {
            return Err(Error::InUse(format!(
                "The stream processor {name} is {}: stop it to delete it.",
                rec.status.as_str()
            )));
        }
        crate::events::delete(&self.0.store, name)?;
        self.0.store.delete_document(KIND, name)?;
        lock(&self.0.stats.0).remove(name);
        Ok(())
    }

    /// Starts a processor: it follows its stream from `start` (the live edge when `None`),
    /// for at most `max_duration_s`. Returns the run's session id.
    pub fn start(
        &self,
        name: &str,
        start: Option<StartAt>,
        max_duration_s: Option<u64>,
    ) -> Result<String> {
        let _g = lock(&self.0.control);
        let mut rec = load(&self.0.store, name)?;
        if rec.status.is_active() {
            return Err(Error::InUse(format!(
                "The stream processor {name} is already {}.",
                rec.status.as_str()
            )));
        }
        self.check_inputs(&rec)?;
        let session = random_uuid()?;
        let now = now_ms(&self.0.store);
        rec.status = Status::Running;
        rec.status_message = None;
        rec.session_id = Some(session.clone());
        rec.start_at = start;
        rec.max_duration_s = max_duration_s;
        rec.run_started_ms = Some(now);
        rec.checkpoint = None;
        rec.last_update_ms = now;
        save(&self.0.store, &rec)?;
        self.spawn(&rec, session.clone())?;
        Ok(session)
    }

    /// Stops a running processor: its run ends (after the frame it is analysing) before this
    /// returns. Blocking.
    pub fn stop(&self, name: &str) -> Result<ProcessorRecord> {
        let run = {
            let _g = lock(&self.0.control);
            let mut rec = load(&self.0.store, name)?;
            if !rec.status.is_active() {
                return Err(Error::InUse(format!(
                    "The stream processor {name} is {}, not running.",
                    rec.status.as_str()
                )));
            }
            rec.status = Status::Stopping;
            rec.last_update_ms = now_ms(&self.0.store);
            save(&self.0.store, &rec)?;
            lock(&self.0.runs).remove(name)
        };
        if let Some(mut run) = run {
            let _ = run.stop.send(true);
            if let Some(t) = run.thread.take() {
                let _ = t.join();
            }
        }
        let _g = lock(&self.0.control);
        let mut rec = load(&self.0.store, name)?;
        if rec.status == Status::Stopping {
            rec.status = Status::Stopped;
            rec.last_update_ms = now_ms(&self.0.store);
            save(&self.0.store, &rec)?;
        }
        Ok(rec)
    }

    /// Runs again every processor that was running when the server stopped (at start).
    /// Returns how many.
    pub fn resume(&self) -> Result<usize> {
        let mut after: Option<String> = None;
        let mut n = 0;
        loop {
            let page = self.list(after.as_deref(), 100)?;
            for rec in &page {
                let _g = lock(&self.0.control);
                let Ok(mut rec) = load(&self.0.store, &rec.name) else {
                    continue;
                };
                match rec.status {
                    Status::Running | Status::Starting => {
                        let session = match rec.session_id.clone() {
                            Some(s) => s,
                            None => random_uuid()?,
                        };
                        rec.status = Status::Running;
                        rec.session_id = Some(session.clone());
                        save(&self.0.store, &rec)?;
                        self.spawn(&rec, session)?;
                        n += 1;
                    }
                    Status::Stopping | Status::Updating => {
                        rec.status = Status::Stopped;
                        save(&self.0.store, &rec)?;
                    }
                    Status::Stopped | Status::Failed => {}
                }
            }
            match page.last() {
                Some(rec) if page.len() == 100 => after = Some(rec.name.clone()),
                _ => return Ok(n),
            }
        }
    }

    /// Ends every run (at shutdown), leaving the processors RUNNING in the store so that they
    /// resume at the next start. Blocking.
    pub fn shutdown(&self) {
        let runs: Vec<Run> = lock(&self.0.runs).drain().map(|(_, r)| r).collect();
        for r in &runs {
            let _ = r.stop.send(true);
        }
        for mut r in runs {
            if let Some(t) = r.thread.take() {
                let _ = t.join();
            }
        }
    }

    fn spawn(&self, rec: &ProcessorRecord, session: String) -> Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let inner = self.0.clone();
        let name = rec.name.clone();
        let run_session = session.clone();
        let thread = std::thread::Builder::new()
            .name(format!("analysis-{}", rec.name))
            .spawn(move || {
                let handle = inner.handle.clone();
                let outcome = runtime::run(&inner, &handle, &name, stop_rx);
                finish(&inner, &name, &run_session, outcome);
            })
            .map_err(|e| Error::Internal(format!("starting the processor's thread: {e}")))?;
        lock(&self.0.runs).insert(
            rec.name.clone(),
            Run {
                session,
                stop: stop_tx,
                thread: Some(thread),
            },
        );
        Ok(())
    }
}

/// Records how a run ended, if it is still the processor's current run.
fn finish(inner: &Inner, name: &str, session: &str, outcome: Outcome) {
    let _g = lock(&inner.control);
    {
        let mut runs = lock(&inner.runs);
        if runs.get(name).is_some_and(|r| r.session == session) {
            runs.remove(name);
        }
    }
    let Ok(mut rec) = load(&inner.store, name) else {
        return;
    };
    if rec.session_id.as_deref() != Some(session) || rec.status != Status::Running {
        return;
    }
    match outcome {
        Outcome::Stopped => return,
        Outcome::Finished => {
            tracing::info!(processor = name, "stream processor finished its run");
            rec.status = Status::Stopped;
        }
        Outcome::Failed(message) => {
            tracing::warn!(processor = name, "stream processor failed: {message}");
            rec.status = Status::Failed;
            rec.status_message = Some(message);
        }
    }
    rec.last_update_ms = now_ms(&inner.store);
    if let Err(e) = save(&inner.store, &rec) {
        tracing::error!(processor = name, "recording the processor's end: {e}");
    }
}

/// Records a run's checkpoint (the last fragment it analysed to its end), if the run is still
/// the processor's current one.
pub(crate) fn checkpoint(inner: &Inner, name: &str, session: &str, fragment: u64) -> Result<()> {
    let _g = lock(&inner.control);
    let mut rec = load(&inner.store, name)?;
    if rec.session_id.as_deref() == Some(session) && rec.status == Status::Running {
        rec.checkpoint = Some(fragment);
        save(&inner.store, &rec)?;
    }
    Ok(())
}

pub(crate) fn load(store: &Store, name: &str) -> Result<ProcessorRecord> {
    match store.document(KIND, name)? {
        Some(body) => decode(&body),
        None => Err(Error::ProcessorNotFound(name.to_owned())),
    }
}

fn decode(body: &[u8]) -> Result<ProcessorRecord> {
    serde_json::from_slice(body)
        .map_err(|e| Error::Internal(format!("a stream processor record does not decode: {e}")))
}

fn save(store: &Store, rec: &ProcessorRecord) -> Result<()> {
    let body = serde_json::to_vec(rec)
        .map_err(|e| Error::Internal(format!("encoding a stream processor record: {e}")))?;
    store.put_document(KIND, &rec.name, &body)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use vigil_datastreams::{DataStreams, Limits, NewStream, StreamMode};
    use vigil_store::{ManualClock, Store, StoreConfig};

    use super::*;
    use crate::model::{FrameResult, PROCESSOR_RECORD_VERSION};

    #[derive(Debug)]
    struct Plain;

    impl OutputFormat for Plain {
        fn frame_record(&self, f: &FrameResult) -> (String, Vec<u8>) {
            (f.stream_arn.clone(), Vec::new())
        }
    }

    fn open(dir: &std::path::Path) -> Analysis {
        let store = Store::open(StoreConfig::new(dir), Arc::new(ManualClock::new(1_000))).unwrap();
        let streams = DataStreams::open(store.clone(), Limits::default()).unwrap();
        Analysis::open(
            store,
            streams,
            Arc::new(Collections::default()),
            Arc::new(Plain),
            AnalysisConfig {
                max_processors: 2,
                ..AnalysisConfig::default()
            },
        )
        .unwrap()
    }

    fn record(name: &str) -> ProcessorRecord {
        ProcessorRecord {
            v: PROCESSOR_RECORD_VERSION,
            name: name.into(),
            arn: format!("arn:aws:rekognition:r:000000000000:streamprocessor/{name}"),
            input_stream: "cam".into(),
            input_arn: "arn:aws:kinesisvideo:r:000000000000:stream/cam/1".into(),
            output_stream: "out".into(),
            output_arn: "arn:aws:kinesis:r:000000000000:stream/out".into(),
            role_arn: "arn:aws:iam::000000000000:role/r".into(),
            collection: "people".into(),
            face_match_threshold: 80.0,
            notification_topic_arn: None,
            regions_of_interest: Vec::new(),
            data_sharing_opt_in: false,
            kms_key_id: None,
            tags: BTreeMap::new(),
            status: Status::Running,
            status_message: None,
            creation_ms: 0,
            last_update_ms: 0,
            session_id: None,
            start_at: None,
            max_duration_s: None,
            run_started_ms: None,
            checkpoint: None,
        }
    }

    fn wait_for(a: &Analysis, name: &str, status: Status) -> ProcessorRecord {
        for _ in 0..200 {
            let rec = a.get(name).unwrap();
            if rec.status == status {
                return rec;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("{name} never became {status:?}: {:?}", a.get(name));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lifecycle_is_durable_and_a_deleted_stream_fails_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        tokio::task::spawn_blocking(move || {
            let a = open(&path);
            // Its inputs must exist.
            assert!(matches!(a.create(record("p")), Err(Error::Invalid(_))));
            let store = a.store().clone();
            store
                .create_stream(vigil_store::NewStream {
                    name: "cam".into(),
                    device_name: None,
                    media_type: None,
                    kms_key_id: None,
                    data_retention_hours: 24,
                    byte_budget: None,
                    tags: BTreeMap::new(),
                    attributes: BTreeMap::new(),
                })
                .unwrap();
            assert!(matches!(
                a.create(record("p")),
                Err(Error::Store(vigil_store::StoreError::CollectionNotFound(_)))
            ));
            store
                .create_collection("people", "m", BTreeMap::new())
                .unwrap();
            assert!(matches!(a.create(record("p")), Err(Error::DataStream(_))));
            a.streams()
                .create(NewStream {
                    name: "out".into(),
                    mode: StreamMode::Provisioned,
                    shard_count: 1,
                    tags: BTreeMap::new(),
                })
                .unwrap();
            // Created STOPPED whatever the record said; names are unique; the limit holds.
            assert_eq!(a.create(record("p")).unwrap().status, Status::Stopped);
            assert!(matches!(
                a.create(record("p")),
                Err(Error::ProcessorExists(_))
            ));
            a.create(record("q")).unwrap();
            assert!(matches!(
                a.create(record("r")),
                Err(Error::LimitExceeded(_))
            ));
            let names: Vec<String> = a
                .list(None, 10)
                .unwrap()
                .into_iter()
                .map(|r| r.name)
                .collect();
            assert_eq!(names, ["p", "q"]);
            assert_eq!(a.list(Some("p"), 10).unwrap().len(), 1);
            // Start, and what a running processor refuses.
            let session = a.start("p", None, None).unwrap();
            assert_eq!(session.len(), 36);
            let rec = a.get("p").unwrap();
            assert_eq!(
                (rec.status, rec.session_id.as_deref()),
                (Status::Running, Some(session.as_str()))
            );
            assert!(matches!(a.start("p", None, None), Err(Error::InUse(_))));
            assert!(matches!(a.delete("p"), Err(Error::InUse(_))));
            assert!(matches!(a.update("p", |_| Ok(())), Err(Error::InUse(_))));
            a.update_tags("p", |t| {
                t.insert("k".into(), "v".into());
                Ok(())
            })
            .unwrap();
            // A shutdown leaves it RUNNING in the store, and it runs again on resume.
            a.shutdown();
            assert_eq!(a.get("p").unwrap().status, Status::Running);
            store.close().unwrap();
            drop((a, store));
            let a = open(&path);
            assert_eq!(a.resume().unwrap(), 1);
            assert_eq!(
                a.get("p").unwrap().tags.get("k").map(String::as_str),
                Some("v")
            );
            assert_eq!(a.stop("p").unwrap().status, Status::Stopped);
            assert!(matches!(a.stop("p"), Err(Error::InUse(_))));
            // A run whose stream is deleted fails, saying why.
            a.start("q", Some(StartAt::ProducerTimestamp(0)), None)
                .unwrap();
            a.store()
                .delete_stream(vigil_store::StreamRef::Name("cam"), None)
                .unwrap();
            let rec = wait_for(&a, "q", Status::Failed);
            assert!(rec.status_message.unwrap().contains("does not exist"));
            assert!(matches!(a.start("q", None, None), Err(Error::Invalid(_))));
            a.delete("q").unwrap();
            assert!(matches!(a.get("q"), Err(Error::ProcessorNotFound(_))));
            a.delete("p").unwrap();
            a.store().close().unwrap();
        })
        .await
        .unwrap();
    }
}
