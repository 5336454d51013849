//! What the SNS API adds to the metrics (`/metrics`).
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `vigil_sns_published_total` | counter | | messages published, every topic |
//! | `vigil_sns_delivered_total` | counter | `topic`, `subscription` | messages delivered |
//! | `vigil_sns_failed_attempts_total` | counter | `topic`, `subscription` | delivery attempts that failed or were refused |
//! | `vigil_sns_dead_letters_total` | counter | `topic`, `subscription` | messages given up on |
//! | `vigil_sns_filtered_total` | counter | `topic`, `subscription` | messages the filter policy left out |
//! | `vigil_sns_in_flight` | gauge | `topic`, `subscription` | messages being delivered or waiting for a retry |
//! | `vigil_sns_delivery_latency_ms_sum` | counter | `topic`, `subscription` | publish to delivery, summed over delivered messages (with `delivered_total`: the mean) |
//!
//! `subscription` is not the subscription's id but the first 8 bytes of its SHA-256, hex: a
//! subscription's ARN is what an unsigned unsubscribe link names, and `/metrics` is open.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Once};

use vigil_api_common::metrics::global;
use vigil_topics::stats::StatsRegistry;

/// The statistics `/metrics` shows: those of the latest state built (a process serves one;
/// tests build several in turn).
static STATS: Mutex<Option<Arc<StatsRegistry>>> = Mutex::new(None);

/// Shows these deliveries' statistics in the metrics.
pub fn register(stats: Arc<StatsRegistry>) {
    *STATS.lock().unwrap_or_else(|e| e.into_inner()) = Some(stats);
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| global().add_collector(Arc::new(render)));
}

/// What names a subscription in the metrics: a digest of its id, which stays secret.
fn label(id: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, id.as_bytes())
        .as_ref()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn render(out: &mut String) {
    let Some(stats) = STATS.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
        return;
    };
    let _ = writeln!(
        out,
        "# HELP vigil_sns_published_total Messages published, every topic together.\n\
         # TYPE vigil_sns_published_total counter\nvigil_sns_published_total {}",
        stats.published.load(Ordering::Relaxed)
    );
    let subs = stats.snapshot();
    type Get = fn(&vigil_topics::stats::SubStats) -> i64;
    let families: [(&str, &str, &str, Get); 6] = [
        (
            "vigil_sns_delivered_total",
            "counter",
            "Messages delivered.",
            |s| s.delivered.load(Ordering::Relaxed) as i64,
        ),
        (
            "vigil_sns_failed_attempts_total",
            "counter",
            "Delivery attempts that failed or were refused.",
            |s| s.failed_attempts.load(Ordering::Relaxed) as i64,
        ),
        (
            "vigil_sns_dead_letters_total",
            "counter",
            "Messages given up on, kept as dead letters.",
            |s| s.dead_letters.load(Ordering::Relaxed) as i64,
        ),
        (
            "vigil_sns_filtered_total",
            "counter",
            "Messages the subscription's filter policy left out.",
            |s| s.filtered.load(Ordering::Relaxed) as i64,
        ),
        (
            "vigil_sns_in_flight",
            "gauge",
            "Messages being delivered or waiting for a retry.",
            |s| s.in_flight.load(Ordering::Relaxed),
        ),
        (
            "vigil_sns_delivery_latency_ms_sum",
            "counter",
            "Publish to delivery in milliseconds, summed over delivered messages.",
            |s| s.latency_ms_sum.load(Ordering::Relaxed) as i64,
        ),
    ];
    for (name, kind, help, get) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (id, s) in &subs {
            let _ = writeln!(
                out,
                "{name}{{topic=\"{}\",subscription=\"{}\"}} {}",
                escape(&s.topic),
                label(id),
                get(s)
            );
        }
    }
}
