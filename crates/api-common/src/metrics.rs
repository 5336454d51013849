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
//! Each service crate keeps its own families in a `static` struct and adds it to the registry
//! once ([`Metrics::register`], in the order the families should be rendered); this crate
//! keeps the families the front itself counts:
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `vigil_api_requests_total` | counter | `operation` | API calls routed to an operation |
//! | `vigil_api_errors_total` | counter | `type` | error responses, by AWS error type |
//! | `vigil_sigv4_failures_total` | counter | `key`, `reason` | requests that failed SigV4 verification ([`crate::auth::SigV4`]), by access key (only keys the key store holds, else `unknown`) and why |
//!
//! Families kept outside the API crates (the server's cameras) are rendered by collectors added
//! with [`Metrics::add_collector`], after every registered family.

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

/// The families of one crate, rendered together in the Prometheus text format.
pub trait Family: Send + Sync + std::fmt::Debug {
    /// Appends every family (HELP, TYPE, samples) to `out`.
    fn render(&self, out: &mut String);
}

/// The process's metrics: the front's own families and every registered set.
#[derive(Debug)]
pub struct Metrics {
    /// API calls, by operation.
    pub api_requests: CounterVec,
    /// Error responses, by AWS error type.
    pub api_errors: CounterVec,
    /// Requests that failed SigV4 verification, by access key and reason
    /// ([`crate::auth::SigV4`]).
    pub sigv4_failures: CounterVec,
    /// Families of the service crates, in registration order.
    families: Families,
    /// Renderers of families kept elsewhere.
    collectors: Collectors,
}

/// A renderer of metric families kept outside the API crates: appends them to the text.
pub type Collector = Arc<dyn Fn(&mut String) + Send + Sync>;

struct Collectors(Mutex<Vec<Collector>>);

impl std::fmt::Debug for Collectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Collectors({})", lock(&self.0).len())
    }
}

#[derive(Debug)]
struct Families(Mutex<Vec<&'static dyn Family>>);

impl Metrics {
    /// Empty metrics.
    pub const fn new() -> Self {
        Self {
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
            sigv4_failures: CounterVec::new(
                "vigil_sigv4_failures_total",
                "Requests that failed SigV4 verification, by access key id (only ids the key \
                 store holds; any other is unknown) and reason.",
                &["key", "reason"],
            ),
            families: Families(Mutex::new(Vec::new())),
            collectors: Collectors(Mutex::new(Vec::new())),
        }
    }

    /// Adds a crate's families (once: registering the same set again changes nothing).
    pub fn register(&self, family: &'static dyn Family) {
        let mut families = lock(&self.families.0);
        let addr = |f: &&'static dyn Family| std::ptr::from_ref::<dyn Family>(*f).cast::<()>();
        if !families.iter().any(|f| addr(f) == addr(&family)) {
            families.push(family);
        }
    }

    /// Adds a renderer of families kept outside the API crates; it runs at every scrape and
    /// must write whole families (HELP, TYPE, samples) in the text format.
    pub fn add_collector(&self, collector: Collector) {
        lock(&self.collectors.0).push(collector);
    }

    /// All metrics in the Prometheus text exposition format (version 0.0.4).
    pub fn render_prometheus(&self) -> String {
        let mut out = String::new();
        let families: Vec<&'static dyn Family> = lock(&self.families.0).clone();
        for f in families {
            f.render(&mut out);
        }
        self.api_requests.render(&mut out);
        self.api_errors.render(&mut out);
        self.sigv4_failures.render(&mut out);
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

    /// Appends the family in the text format.
    pub fn render(&self, out: &mut String) {
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

    /// Appends the gauge in the text format.
    pub fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "gauge");
        let _ = writeln!(out, "{} {}", self.name, self.get());
    }
}

/// A gauge family: one series per combination of label values.
#[derive(Debug)]
pub struct GaugeVec {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    series: Mutex<BTreeMap<Vec<String>, i64>>,
}

impl GaugeVec {
    /// A family.
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

    /// Sets a series.
    pub fn set(&self, values: &[&str], v: i64) {
        let key: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        lock(&self.series).insert(key, v);
    }

    /// A series' value (0 if it does not exist).
    pub fn get(&self, values: &[&str]) -> i64 {
        let key: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        lock(&self.series).get(&key).copied().unwrap_or(0)
    }

    /// Drops a series (a stream that was deleted).
    pub fn remove(&self, values: &[&str]) {
        let key: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        lock(&self.series).remove(&key);
    }

    /// Appends the family in the text format.
    pub fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "gauge");
        for (values, v) in lock(&self.series).iter() {
            out.push_str(self.name);
            labels(out, self.labels, values);
            let _ = writeln!(out, " {v}");
        }
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

    /// Appends the histogram in the text format.
    pub fn render(&self, out: &mut String) {
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

/// Upper bounds of the lag histogram's buckets, in milliseconds (then `+Inf`).
pub const LAG_BUCKETS_MS: [u64; 11] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000, 3_600_000,
];

/// A histogram of lags in milliseconds over [`LAG_BUCKETS_MS`] (no labels).
#[derive(Debug)]
pub struct LagHistogram {
    name: &'static str,
    help: &'static str,
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    buckets: [AtomicU64; LAG_BUCKETS_MS.len() + 1],
    sum_ms: AtomicU64,
    count: AtomicU64,
}

impl LagHistogram {
    /// An empty histogram.
    pub const fn new(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            buckets: [const { AtomicU64::new(0) }; LAG_BUCKETS_MS.len() + 1],
            sum_ms: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one lag.
    pub fn observe(&self, lag_ms: u64) {
        let i = LAG_BUCKETS_MS
            .iter()
            .position(|&le| lag_ms <= le)
            .unwrap_or(LAG_BUCKETS_MS.len());
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_ms.fetch_add(lag_ms, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Appends the histogram in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let name = self.name;
        let _ = writeln!(out, "# HELP {name} {}", self.help);
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0u64;
        for (i, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = LAG_BUCKETS_MS
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), u64::to_string);
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_sum {}", self.sum_ms.load(Ordering::Relaxed));
        let _ = writeln!(out, "{name}_count {}", self.count());
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

    #[derive(Debug)]
    struct Test {
        bytes: CounterVec,
        errors: CounterVec,
        sessions: Gauge,
        persist: Histogram,
    }

    impl Family for Test {
        fn render(&self, out: &mut String) {
            self.bytes.render(out);
            self.errors.render(out);
            self.sessions.render(out);
            self.persist.render(out);
        }
    }

    static TEST: Test = Test {
        bytes: CounterVec::new("t_bytes_total", "Bytes.", &["stream"]),
        errors: CounterVec::new("t_errors_total", "Errors.", &["error_id", "error_code"]),
        sessions: Gauge::new("t_sessions", "Sessions."),
        persist: Histogram::new("t_persist_seconds", "Persist."),
    };

    #[test]
    fn renders_the_text_format() {
        let m = Metrics::new();
        m.register(&TEST);
        m.register(&TEST);
        TEST.bytes.inc_by(&["cam\"1"], 10);
        TEST.bytes.with(&["cam\"1"]).inc_by(5);
        TEST.errors.inc(&["4006", "INVALID_MKV_DATA"]);
        TEST.sessions.add(2);
        TEST.sessions.add(-1);
        TEST.persist.observe(Duration::from_micros(1500));
        TEST.persist.observe(Duration::from_secs(9));
        m.api_requests.inc(&["PutMedia"]);
        let text = m.render_prometheus();
        assert_eq!(text.matches("# TYPE t_bytes_total counter\n").count(), 1);
        assert!(text.contains("t_bytes_total{stream=\"cam\\\"1\"} 15\n"));
        assert!(
            text.contains("t_errors_total{error_id=\"4006\",error_code=\"INVALID_MKV_DATA\"} 1\n")
        );
        assert!(text.contains("t_sessions 1\n"));
        assert!(text.contains("t_persist_seconds_bucket{le=\"0.001\"} 0\n"));
        assert!(text.contains("t_persist_seconds_bucket{le=\"0.0025\"} 1\n"));
        assert!(text.contains("t_persist_seconds_bucket{le=\"5\"} 1\n"));
        assert!(text.contains("t_persist_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("t_persist_seconds_count 2\n"));
        assert!(text.contains("t_persist_seconds_sum 9.0015\n"));
        assert!(text.contains("vigil_api_requests_total{operation=\"PutMedia\"} 1\n"));
        assert_eq!(TEST.bytes.get(&["cam\"1"]), 15);
        assert_eq!(TEST.bytes.get(&["other"]), 0);
    }

    #[test]
    fn lag_histogram_is_cumulative() {
        let h = LagHistogram::new("lag", "Lag.");
        for ms in [50, 700, 10_000_000] {
            h.observe(ms);
        }
        let mut text = String::new();
        h.render(&mut text);
        for line in [
            "# TYPE lag histogram",
            "lag_bucket{le=\"100\"} 1",
            "lag_bucket{le=\"500\"} 1",
            "lag_bucket{le=\"1000\"} 2",
            "lag_bucket{le=\"3600000\"} 2",
            "lag_bucket{le=\"+Inf\"} 3",
            "lag_sum 10000750",
            "lag_count 3",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }
}
