//! What PutMedia adds to the metrics (`/metrics`).
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `vigil_putmedia_sessions` | gauge | | PutMedia sessions open now |
//! | `vigil_putmedia_sessions_total` | counter | | PutMedia sessions accepted (200 sent) |
//! | `vigil_putmedia_sessions_refused_total` | counter | `reason` | sessions refused before the 200: `per_key`, `per_stream`, `total` ([`crate::media::sessions`]) |
//! | `vigil_putmedia_sessions_ended_total` | counter | `reason` | sessions the server ended: `displaced`, `slow` (minimum progress), `idle` |
//! | `vigil_putmedia_bytes_total` | counter | `stream` | request body bytes received |
//! | `vigil_putmedia_fragments_total` | counter | `stream` | fragments received whole (RECEIVED) |
//! | `vigil_putmedia_acks_total` | counter | `type` | acks sent, by `EventType` |
//! | `vigil_putmedia_errors_total` | counter | `error_id`, `error_code` | ERROR acks, by id |
//! | `vigil_store_persist_seconds` | histogram | | fragment finish → durable, retained streams |

use std::sync::Once;

use vigil_api_common::metrics::{CounterVec, Family, Gauge, Histogram, global};

/// PutMedia's families.
#[derive(Debug)]
pub struct KvsMetrics {
    /// PutMedia sessions open now.
    pub putmedia_sessions: Gauge,
    /// PutMedia sessions accepted.
    pub putmedia_sessions_total: CounterVec,
    /// PutMedia sessions refused before the `200`, by the limit they met.
    pub putmedia_refused: CounterVec,
    /// PutMedia sessions the server ended for its own reasons, by reason.
    pub putmedia_ended: CounterVec,
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
}

impl Family for KvsMetrics {
    fn render(&self, out: &mut String) {
        self.putmedia_sessions.render(out);
        self.putmedia_sessions_total.render(out);
        self.putmedia_refused.render(out);
        self.putmedia_ended.render(out);
        self.putmedia_bytes.render(out);
        self.putmedia_fragments.render(out);
        self.putmedia_acks.render(out);
        self.putmedia_errors.render(out);
        self.store_persist_seconds.render(out);
    }
}

static METRICS: KvsMetrics = KvsMetrics {
    putmedia_sessions: Gauge::new("vigil_putmedia_sessions", "PutMedia sessions open now."),
    putmedia_sessions_total: CounterVec::new(
        "vigil_putmedia_sessions_total",
        "PutMedia sessions accepted.",
        &[],
    ),
    putmedia_refused: CounterVec::new(
        "vigil_putmedia_sessions_refused_total",
        "PutMedia sessions refused before the 200, by the limit they met (per_key, per_stream, \
         total).",
        &["reason"],
    ),
    putmedia_ended: CounterVec::new(
        "vigil_putmedia_sessions_ended_total",
        "PutMedia sessions the server ended, by reason (displaced, slow, idle).",
        &["reason"],
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
};

/// PutMedia's families, added to the process's registry on first use.
pub fn metrics() -> &'static KvsMetrics {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| global().register(&METRICS));
    &METRICS
}
