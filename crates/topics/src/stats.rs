//! Delivery statistics, per subscription, for the API layer to show as metrics.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::engine::lock;

/// One subscription's figures (counters since the server started).
#[derive(Debug, Default)]
pub struct SubStats {
    /// Its topic.
    pub topic: String,
    /// Messages delivered.
    pub delivered: AtomicU64,
    /// Attempts that failed (each retry that failed counts).
    pub failed_attempts: AtomicU64,
    /// Messages given up on (kept as dead letters).
    pub dead_letters: AtomicU64,
    /// Messages its filter policy left out.
    pub filtered: AtomicU64,
    /// Messages being delivered or waiting for a retry.
    pub in_flight: AtomicI64,
    /// Sum of the delivered messages' latency, publish to the endpoint's answer (ms).
    pub latency_ms_sum: AtomicU64,
}

impl SubStats {
    /// Adds one to a counter.
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Every subscription's figures.
#[derive(Debug, Default)]
pub struct StatsRegistry {
    subs: std::sync::Mutex<BTreeMap<String, Arc<SubStats>>>,
    /// Messages published, every topic together.
    pub published: AtomicU64,
}

impl StatsRegistry {
    /// The figures of subscription `id` of `topic`, made on first use.
    pub fn of(&self, id: &str, topic: &str) -> Arc<SubStats> {
        lock(&self.subs)
            .entry(id.to_owned())
            .or_insert_with(|| {
                Arc::new(SubStats {
                    topic: topic.to_owned(),
                    ..SubStats::default()
                })
            })
            .clone()
    }

    /// Forgets a subscription (unsubscribed or deleted with its topic).
    pub fn remove(&self, id: &str) {
        lock(&self.subs).remove(id);
    }

    /// Every subscription's figures, by id.
    pub fn snapshot(&self) -> Vec<(String, Arc<SubStats>)> {
        lock(&self.subs)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub(crate) fn published(&self, n: usize) {
        self.published
            .fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}
