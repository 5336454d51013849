//! The server's metrics, exported at `/metrics` in the Prometheus text format
//! ([`Metrics::render_prometheus`]).
//!
//! Plain atomics, no metrics crate: a family is a name, a help text, its label names and a map
//! from label values to an atomic counter. Hot paths look a series up once
//! ([`CounterVec::with`]) and keep the returned [`Counter`]; incrementing it is one atomic add.
//!
//! There is one set per process ([`global`]), as Prometheus registries usually are: several
//! servers in one process (tests) add to the same series.
//!
//! To add metrics: add a field to [`Metrics`], construct it in [`Metrics::new`] and render it in
//! [`Metrics::render_prometheus`]. Families in use:
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `vigil_putmedia_sessions` | gauge | | PutMedia sessions open now |
//! | `vigil_putmedia_sessions_total` | counter | | PutMedia sessions accepted (200 sent) |
//! | `vigil_putmedia_bytes_total` | counter | `stream` | request body bytes received |
//! | `vigil_putmedia_fragments_total` | counter | `stream` | fragments received whole (RECEIVED) |
//! | `vigil_putmedia_acks_total` | counter | `type` | acks sent, by `EventType` |
//! | `vigil_putmedia_errors_total` | counter | `error_id`, `error_code` | ERROR acks, by id |
//! | `vigil_store_persist_seconds` | histogram | | fragment finish → durable, retained streams |
//! | `vigil_getmedia_readers` | gauge | | GetMedia responses being streamed now |
//! | `vigil_getmedia_fragments_total` | counter | `stream` | fragments GetMedia sent whole |
//! | `vigil_getmedia_bytes_total` | counter | `stream` | body bytes GetMedia sent |
//! | `vigil_getmedia_millis_behind_now` | histogram (ms) | | `MILLIS_BEHIND_NOW` of each fragment GetMedia sent whole: how far readers lag |
//! | `vigil_getmedia_for_fragment_list_fragments_total` | counter | `result` | GetMediaForFragmentList documents: `ok`, or `error` (per-fragment error documents) |
//! | `vigil_api_requests_total` | counter | `operation` | API calls routed to an operation |
//! | `vigil_api_errors_total` | counter | `type` | error responses, by AWS error type |
//! | `vigil_faces_indexed_total` | counter | | faces IndexFaces added to collections |
//! | `vigil_face_search_seconds` | histogram | | SearchFaces/SearchFacesByImage: searching a collection's index (not the engine) |
//! | `vigil_face_engine_seconds` | histogram | | Rekognition calls that run the engine: decoding, detection and embeddings |
//!
//! Families kept outside this crate (the server's cameras) are rendered by collectors added
//! with [`Metrics::add_collector`], after the families above.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static GLOBAL: Metrics = Metrics::new();
    &GLOBAL
}

/// Every metric the server exports.
#[derive(Debug)]
pub struct Metrics {
    /// PutMedia sessions open now.
    pub putmedia_sessions: Gauge,
    /// PutMedia sessions accepted.
    pub putmedia_sessions_total: CounterVec,
    /// Request body bytes received by PutMedia, per stream.
    pub putmedia_bytes: CounterVec,
    /// Fragments received whole, per stream.
    pub putmedia_fragments: CounterVec,
    /// Acks sent, per `EventType`.
    pub putmedia_acks: CounterVec,
    /// ERROR acks, per `ErrorId` and `ErrorCode`.
    pub putmedia_errors: CounterVec,
    /// How long the store took to make a finished fragment durable.
    pub store_persist_seconds: Histogram,
    /// GetMedia responses being streamed now.
    pub getmedia_readers: Gauge,
    /// Fragments GetMedia sent whole, per stream.
    pub getmedia_fragments: CounterVec,
    /// Body bytes GetMedia sent, per stream.
    pub getmedia_bytes: CounterVec,
    /// `MILLIS_BEHIND_NOW` of each fragment GetMedia sent whole.
    pub getmedia_millis_behind_now: crate::media::readers::LagHistogram,
    /// GetMediaForFragmentList documents sent, by result (`ok`, `error`).
    pub getmedia_for_fragment_list_fragments: CounterVec,
    /// API calls, by operation.
    pub api_requests: CounterVec,
    /// Error responses, by AWS error type.
    pub api_errors: CounterVec,
    /// Signed-in web console sessions kept now.
    pub console_sessions: Gauge,
    /// Web console sign-ins.
    pub console_logins: CounterVec,
    /// Web console requests, by route.
    pub console_requests: CounterVec,
    /// Faces IndexFaces added.
    pub faces_indexed: CounterVec,
    /// Time searching a collection's face index.
    pub face_search_seconds: Histogram,
    /// Time the face engine took per call (decode, detect, embed).
    pub face_engine_seconds: Histogram,
    /// Renderers of families kept elsewhere.
    collectors: Collectors,
}

/// A renderer of metric families kept outside this crate: appends them to the text.
pub type Collector = Arc<dyn Fn(&mut String) + Send + Sync>;

struct Collectors(Mutex<Vec<Collector>>);

impl std::fmt::Debug for Collectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Collectors({})", lock(&self.0).len())
    }
}

impl Metrics {
    /// Empty metrics.
    pub const fn new() -> Self {
        Self {
            putmedia_sessions: Gauge::new("vigil_putmedia_sessions", "PutMedia sessions open now."),
            putmedia_sessions_total: CounterVec::new(
                "vigil_putmedia_sessions_total",
                "PutMedia sessions accepted.",
                &[],
            ),
            putmedia_bytes: CounterVec::new(
                "vigil_putmedia_bytes_total",
                "Request body bytes received by PutMedia.",
                &["stream"],
            ),
            putmedia_fragments: CounterVec::new(
                "vigil_putmedia_fragments_total",
                "Fragments received whole by PutMedia.",
                &["stream"],
            ),
            putmedia_acks: CounterVec::new(
                "vigil_putmedia_acks_total",
                "PutMedia acknowledgement events sent, by EventType.",
                &["type"],
            ),
            putmedia_errors: CounterVec::new(
                "vigil_putmedia_errors_total",
                "PutMedia ERROR acks sent, by ErrorId.",
                &["error_id", "error_code"],
            ),
            store_persist_seconds: Histogram::new(
                "vigil_store_persist_seconds",
                "Time from finishing a fragment to the store reporting it durable.",
            ),
            getmedia_readers: Gauge::new(
                "vigil_getmedia_readers",
                "GetMedia responses being streamed now.",
            ),
            getmedia_fragments: CounterVec::new(
                "vigil_getmedia_fragments_total",
                "Fragments GetMedia sent whole.",
                &["stream"],
            ),
            getmedia_bytes: CounterVec::new(
                "vigil_getmedia_bytes_total",
                "Body bytes GetMedia sent.",
                &["stream"],
            ),
            getmedia_millis_behind_now: crate::media::readers::LagHistogram::new(
                "vigil_getmedia_millis_behind_now",
                "How far behind now each fragment GetMedia sent whole was \
                 (AWS_KINESISVIDEO_MILLIS_BEHIND_NOW), in milliseconds.",
            ),
            getmedia_for_fragment_list_fragments: CounterVec::new(
                "vigil_getmedia_for_fragment_list_fragments_total",
                "Documents GetMediaForFragmentList sent, by result.",
                &["result"],
            ),
            api_requests: CounterVec::new(
                "vigil_api_requests_total",
                "API calls received, by operation.",
                &["operation"],
            ),
            api_errors: CounterVec::new(
                "vigil_api_errors_total",
                "Error responses sent, by AWS error type.",
                &["type"],
            ),
            console_sessions: Gauge::new(
                "vigil_console_sessions",
                "Signed-in web console sessions kept now.",
            ),
            console_logins: CounterVec::new(
                "vigil_console_logins_total",
                "Web console sign-ins.",
                &[],
            ),
            console_requests: CounterVec::new(
                "vigil_console_requests_total",
                "Web console API requests, by route.",
                &["route"],
            ),
            faces_indexed: CounterVec::new(
                "vigil_faces_indexed_total",
                "Faces IndexFaces added to collections.",
                &[],
            ),
            face_search_seconds: Histogram::new(
                "vigil_face_search_seconds",
                "Time searching a face collection's index (SearchFaces, SearchFacesByImage).",
            ),
            face_engine_seconds: Histogram::new(
                "vigil_face_engine_seconds",
                "Time the face engine took per Rekognition call: decoding, detection, embeddings.",
            ),
            collectors: Collectors(Mutex::new(Vec::new())),
        }
    }

    /// Adds a renderer of families kept outside this crate; it runs at every scrape and
    /// must write whole families (HELP, TYPE, samples) in the text format.
    pub fn add_collector(&self, collector: Collector) {
        lock(&self.collectors.0).push(collector);
    }

    /// All metrics in the Prometheus text exposition format (version 0.0.4).
    pub fn render_prometheus(&self) -> String {
        let mut out = String::new();
        self.putmedia_sessions.render(&mut out);
        self.putmedia_sessions_total.render(&mut out);
        self.putmedia_bytes.render(&mut out);
        self.putmedia_fragments.render(&mut out);
        self.putmedia_acks.render(&mut out);
        self.putmedia_errors.render(&mut out);
        self.store_persist_seconds.render(&mut out);
        self.getmedia_readers.render(&mut out);
        self.getmedia_fragments.render(&mut out);
        self.getmedia_bytes.render(&mut out);
        self.getmedia_millis_behind_now.render(&mut out);
        self.getmedia_for_fragment_list_fragments.render(&mut out);
        self.api_requests.render(&mut out);
        self.api_errors.render(&mut out);
        self.console_sessions.render(&mut out);
        self.console_logins.render(&mut out);
        self.console_requests.render(&mut out);
        self.faces_indexed.render(&mut out);
        self.face_search_seconds.render(&mut out);
        self.face_engine_seconds.render(&mut out);
        let collectors: Vec<Collector> = lock(&self.collectors.0).clone();
        for c in collectors {
            c(&mut out);
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One counter series.
#[derive(Debug, Clone)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// Adds `n`.
    pub fn inc_by(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds 1.
    pub fn inc(&self) {
        self.inc_by(1);
    }

    /// The value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A counter family: one series per combination of label values.
#[derive(Debug)]
pub struct CounterVec {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    series: Mutex<BTreeMap<Vec<String>, Counter>>,
}

impl CounterVec {
    /// A family; `name` should end in `_total`.
    pub const fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Self {
        Self {
            name,
            help,
            labels,
            series: Mutex::new(BTreeMap::new()),
        }
    }

    /// The series with these label values (as many as the family has labels), created at 0.
    pub fn with(&self, values: &[&str]) -> Counter {
        let key: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        lock(&self.series)
            .entry(key)
            .or_insert_with(|| Counter(Arc::new(AtomicU64::new(0))))
            .clone()
    }

    /// Adds `n` to a series.
    pub fn inc_by(&self, values: &[&str], n: u64) {
        self.with(values).inc_by(n);
    }

    /// Adds 1 to a series.
    pub fn inc(&self, values: &[&str]) {
        self.inc_by(values, 1);
    }

    /// A series' value (0 if it does not exist).
    pub fn get(&self, values: &[&str]) -> u64 {
        let key: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        lock(&self.series).get(&key).map_or(0, Counter::get)
    }

    fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "counter");
        for (values, counter) in lock(&self.series).iter() {
            out.push_str(self.name);
            labels(out, self.labels, values);
            let _ = writeln!(out, " {}", counter.get());
        }
    }
}

/// A gauge (no labels).
#[derive(Debug)]
pub struct Gauge {
    name: &'static str,
    help: &'static str,
    value: AtomicI64,
}

impl Gauge {
    /// A gauge at 0.
    pub const fn new(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            value: AtomicI64::new(0),
        }
    }

    /// Adds `n` (negative to subtract).
    pub fn add(&self, n: i64) {
        self.value.fetch_add(n, Ordering::Relaxed);
    }

    /// Sets the value.
    pub fn set(&self, n: i64) {
        self.value.store(n, Ordering::Relaxed);
    }

    /// The value.
    pub fn get(&self) -> i64 {
        self.value.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "gauge");
        let _ = writeln!(out, "{} {}", self.name, self.get());
    }
}

/// Upper bounds of the [`Histogram`] buckets, in seconds.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A latency histogram (no labels) over [`LATENCY_BUCKETS`].
#[derive(Debug)]
pub struct Histogram {
    name: &'static str,
    help: &'static str,
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// An empty histogram.
    pub const fn new(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            buckets: [const { AtomicU64::new(0) }; LATENCY_BUCKETS.len() + 1],
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(LATENCY_BUCKETS.len());
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "histogram");
        let mut cumulative = 0u64;
        for (i, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = LATENCY_BUCKETS
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
            let _ = writeln!(out, "{}_bucket{{le=\"{le}\"}} {cumulative}", self.name);
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{}_sum {sum}", self.name);
        let _ = writeln!(out, "{}_count {}", self.name, self.count());
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Writes `{a="x",b="y"}` (nothing when there are no labels).
fn labels(out: &mut String, names: &[&str], values: &[String]) {
    let pairs: Vec<(&str, &str)> = names
        .iter()
        .zip(values)
        .map(|(n, v)| (*n, v.as_str()))
        .collect();
    if pairs.is_empty() {
        return;
    }
    out.push('{');
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        escape_label(out, value);
        out.push('"');
    }
    out.push('}');
}

/// Escapes a label value: backslash, double quote and line feed.
fn escape_label(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format() {
        let m = Metrics::new();
        m.putmedia_bytes.inc_by(&["cam\"1"], 10);
        m.putmedia_bytes.with(&["cam\"1"]).inc_by(5);
        m.putmedia_errors.inc(&["4006", "INVALID_MKV_DATA"]);
        m.putmedia_sessions.add(2);
        m.putmedia_sessions.add(-1);
        m.store_persist_seconds.observe(Duration::from_micros(1500));
        m.store_persist_seconds.observe(Duration::from_secs(9));
        let text = m.render_prometheus();
        assert!(text.contains("# TYPE vigil_putmedia_bytes_total counter\n"));
        assert!(text.contains("vigil_putmedia_bytes_total{stream=\"cam\\\"1\"} 15\n"));
        assert!(text.contains(
            "vigil_putmedia_errors_total{error_id=\"4006\",error_code=\"INVALID_MKV_DATA\"} 1\n"
        ));
        assert!(text.contains("vigil_putmedia_sessions 1\n"));
        assert!(text.contains("vigil_store_persist_seconds_bucket{le=\"0.001\"} 0\n"));
        assert!(text.contains("vigil_store_persist_seconds_bucket{le=\"0.0025\"} 1\n"));
        assert!(text.contains("vigil_store_persist_seconds_bucket{le=\"5\"} 1\n"));
        assert!(text.contains("vigil_store_persist_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("vigil_store_persist_seconds_count 2\n"));
        assert!(text.contains("vigil_store_persist_seconds_sum 9.0015\n"));
        assert_eq!(m.putmedia_bytes.get(&["cam\"1"]), 15);
        assert_eq!(m.putmedia_bytes.get(&["other"]), 0);
    }
}
