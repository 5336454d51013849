//! What the media readers (GetMedia, GetMediaForFragmentList) add to [`crate::metrics`]:
//! a guard that counts a GetMedia reader while it lives, per-stream counters kept for the
//! reader's lifetime, and the lag histogram, whose buckets (milliseconds, up to an hour) suit
//! `MILLIS_BEHIND_NOW` better than the latency histogram's (seconds, up to 5).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::metrics::{self, Counter};

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
    pub(crate) fn render(&self, out: &mut String) {
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

/// A GetMedia reader's metrics: counts it in `vigil_getmedia_readers` until dropped, and holds
/// its stream's series.
#[derive(Debug)]
pub struct ReaderMetrics {
    fragments: Counter,
    bytes: Counter,
}

impl ReaderMetrics {
    /// A reader of `stream` starts.
    pub fn start(stream: &str) -> Self {
        let m = metrics::global();
        m.getmedia_readers.add(1);
        Self {
            fragments: m.getmedia_fragments.with(&[stream]),
            bytes: m.getmedia_bytes.with(&[stream]),
        }
    }

    /// Bytes handed to the connection.
    pub fn bytes_sent(&self, n: usize) {
        self.bytes.inc_by(n as u64);
    }

    /// A fragment sent whole, `lag_ms` behind now.
    pub fn fragment_sent(&self, lag_ms: u64) {
        self.fragments.inc();
        metrics::global().getmedia_millis_behind_now.observe(lag_ms);
    }
}

impl Drop for ReaderMetrics {
    fn drop(&mut self) {
        metrics::global().getmedia_readers.add(-1);
    }
}

/// A GetMediaForFragmentList document: a fragment (`ok`) or a per-fragment error.
pub fn list_document(ok: bool) {
    metrics::global()
        .getmedia_for_fragment_list_fragments
        .inc(&[if ok { "ok" } else { "error" }]);
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn readers_are_counted_while_they_live() {
        let text = || metrics::global().render_prometheus();
        let r = ReaderMetrics::start("readers-test");
        r.bytes_sent(1234);
        r.fragment_sent(42);
        assert!(
            text().contains("vigil_getmedia_bytes_total{stream=\"readers-test\"} 1234\n"),
            "{}",
            text()
        );
        assert!(text().contains("vigil_getmedia_fragments_total{stream=\"readers-test\"} 1\n"));
        assert!(text().contains("# TYPE vigil_getmedia_readers gauge\n"));
        assert!(text().contains("# TYPE vigil_getmedia_millis_behind_now histogram\n"));
        list_document(false);
        assert!(
            text().contains("vigil_getmedia_for_fragment_list_fragments_total{result=\"error\"}")
        );
        drop(r);
    }
}
