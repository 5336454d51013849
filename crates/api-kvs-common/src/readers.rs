//! What the media readers (GetMedia, GetMediaForFragmentList) add to the metrics: a guard
//! that counts a GetMedia reader while it lives, per-stream counters kept for the reader's
//! lifetime, and the lag histogram of `MILLIS_BEHIND_NOW`.
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `vigil_getmedia_readers` | gauge | | GetMedia responses being streamed now |
//! | `vigil_getmedia_fragments_total` | counter | `stream` | fragments GetMedia sent whole |
//! | `vigil_getmedia_bytes_total` | counter | `stream` | body bytes GetMedia sent |
//! | `vigil_getmedia_millis_behind_now` | histogram (ms) | | `MILLIS_BEHIND_NOW` of each fragment GetMedia sent whole: how far readers lag |
//! | `vigil_getmedia_for_fragment_list_fragments_total` | counter | `result` | GetMediaForFragmentList documents: `ok`, or `error` (per-fragment error documents) |

use std::sync::Once;

use vigil_api_common::metrics::{self, Counter, CounterVec, Family, Gauge, LagHistogram};

/// The readers' families.
#[derive(Debug)]
pub struct ReaderFamilies {
    /// GetMedia responses being streamed now.
    pub getmedia_readers: Gauge,
    /// Fragments GetMedia sent whole, per stream.
    pub getmedia_fragments: CounterVec,
    /// Body bytes GetMedia sent, per stream.
    pub getmedia_bytes: CounterVec,
    /// `MILLIS_BEHIND_NOW` of each fragment GetMedia sent whole.
    pub getmedia_millis_behind_now: LagHistogram,
    /// GetMediaForFragmentList documents sent, by result (`ok`, `error`).
    pub getmedia_for_fragment_list_fragments: CounterVec,
}

impl Family for ReaderFamilies {
    fn render(&self, out: &mut String) {
        self.getmedia_readers.render(out);
        self.getmedia_fragments.render(out);
        self.getmedia_bytes.render(out);
        self.getmedia_millis_behind_now.render(out);
        self.getmedia_for_fragment_list_fragments.render(out);
    }
}

static FAMILIES: ReaderFamilies = ReaderFamilies {
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
    getmedia_millis_behind_now: LagHistogram::new(
        "vigil_getmedia_millis_behind_now",
        "How far behind now each fragment GetMedia sent whole was \
         (AWS_KINESISVIDEO_MILLIS_BEHIND_NOW), in milliseconds.",
    ),
    getmedia_for_fragment_list_fragments: CounterVec::new(
        "vigil_getmedia_for_fragment_list_fragments_total",
        "Documents GetMediaForFragmentList sent, by result.",
        &["result"],
    ),
};

/// The readers' families, added to the process's registry on first use.
pub fn metrics() -> &'static ReaderFamilies {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| metrics::global().register(&FAMILIES));
    &FAMILIES
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
        let m = metrics();
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
        metrics().getmedia_millis_behind_now.observe(lag_ms);
    }
}

impl Drop for ReaderMetrics {
    fn drop(&mut self) {
        metrics().getmedia_readers.add(-1);
    }
}

/// A GetMediaForFragmentList document: a fragment (`ok`) or a per-fragment error.
pub fn list_document(ok: bool) {
    metrics()
        .getmedia_for_fragment_list_fragments
        .inc(&[if ok { "ok" } else { "error" }]);
}

#[cfg(test)]
mod tests {
    use super::*;

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
