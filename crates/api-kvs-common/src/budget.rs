//! Budgets of concurrent calls, per caller and in all: what bounds the reads that cost the
//! most (GetClip, GetImages in `vigil-api-playback`) and the ones a client can hold open
//! (GetMedia, GetMediaForFragmentList).
//!
//! Each operation has its own budget: at most [`HeavyLimits::per_key`] calls at once from one
//! caller ([`budget_key`]: its access key, or without authentication, `--allow-anonymous`,
//! its client address), and [`HeavyLimits::total`] from everyone. A call beyond either waits
//! up to [`HeavyLimits::wait`] for a place, then is refused with
//! `ClientLimitExceededException` (KVS's error for a client over its limits, which the SDKs
//! retry with back-off), before it reads anything. A permit is held as long as the call's
//! caller decides (a streamed response's body owns it) and given back when dropped, whatever
//! way the call ends.
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `vigil_heavy_reads` | gauge | `operation` | budgeted calls being served now |
//! | `vigil_heavy_reads_refused_total` | counter | `operation`, `limit` | calls refused (`key` or `total`) |

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use crate::call::{Call, Context};
use crate::{KvsError, KvsResult};
use vigil_api_common::metrics::{self, CounterVec, Family, GaugeVec};

/// One operation's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeavyLimits {
    /// Calls at once from one access key.
    pub per_key: usize,
    /// Calls at once in all.
    pub total: usize,
    /// How long a call over the budget waits for a place before it is refused.
    pub wait: Duration,
}

/// The calls in flight of one operation.
#[derive(Debug)]
pub struct HeavyReads {
    operation: &'static str,
    limits: HeavyLimits,
    state: Arc<Mutex<InFlight>>,
    /// Woken when a place is given back.
    freed: Arc<tokio::sync::Notify>,
}

#[derive(Debug, Default)]
struct InFlight {
    total: usize,
    per_key: HashMap<String, usize>,
}

/// A call's place in the budget, given back when dropped.
#[derive(Debug)]
pub struct HeavyPermit {
    operation: &'static str,
    key: String,
    state: Arc<Mutex<InFlight>>,
    freed: Arc<tokio::sync::Notify>,
}

impl HeavyReads {
    /// A budget for `operation` (its AWS name, for messages and metrics).
    pub fn new(operation: &'static str, limits: HeavyLimits) -> Self {
        families();
        Self {
            operation,
            limits,
            state: Arc::default(),
            freed: Arc::default(),
        }
    }

    /// A permit for one call by `key`, waiting up to the budget's `wait` for a place; else
    /// `ClientLimitExceededException`.
    pub async fn acquire(&self, key: &str) -> KvsResult<HeavyPermit> {
        let deadline = tokio::time::Instant::now() + self.limits.wait;
        loop {
            // Registered before trying, so that a place given back in between wakes it.
            let woken = self.freed.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let (limit, error) = match self.try_acquire(key) {
                Ok(permit) => return Ok(permit),
                Err(refused) => refused,
            };
            if self.limits.wait.is_zero() || tokio::time::timeout_at(deadline, woken).await.is_err()
            {
                families().refused.inc(&[self.operation, limit]);
                return Err(error);
            }
        }
    }

    /// A permit at once, or the limit met and its error.
    fn try_acquire(&self, key: &str) -> Result<HeavyPermit, (&'static str, KvsError)> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mine = s.per_key.get(key).copied().unwrap_or(0);
        let refused = if mine >= self.limits.per_key {
            Some(("key", format!("{} per access key", self.limits.per_key)))
        } else if s.total >= self.limits.total {
            Some(("total", format!("{} in all", self.limits.total)))
        } else {
            None
        };
        if let Some((limit, what)) = refused {
            return Err((
                limit,
                KvsError::ClientLimitExceededException(format!(
                    "Too many {} calls at once (at most {what}); retry when one has ended.",
                    self.operation
                )),
            ));
        }
        s.total += 1;
        *s.per_key.entry(key.to_owned()).or_insert(0) += 1;
        families().in_flight.set(
            &[self.operation],
            i64::try_from(s.total).unwrap_or(i64::MAX),
        );
        Ok(HeavyPermit {
            operation: self.operation,
            key: key.to_owned(),
            state: self.state.clone(),
            freed: self.freed.clone(),
        })
    }
}

/// Whose budget a call counts in: its access key, or without authentication (every caller
/// is `anonymous` then) its client's address.
pub fn budget_key<O, S: Context>(call: &Call<O, S>) -> String {
    if call.state.auth().requires_signature() {
        return call.principal.access_key_id.clone();
    }
    call.parts
        .extensions
        .get::<vigil_api_common::config::PeerAddr>()
        .map_or_else(
            || call.principal.access_key_id.clone(),
            |p| p.0.ip().to_string(),
        )
}

impl Drop for HeavyPermit {
    fn drop(&mut self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.total = s.total.saturating_sub(1);
        if let Some(n) = s.per_key.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                s.per_key.remove(&self.key);
            }
        }
        families().in_flight.set(
            &[self.operation],
            i64::try_from(s.total).unwrap_or(i64::MAX),
        );
        drop(s);
        self.freed.notify_waiters();
    }
}

#[derive(Debug)]
struct HeavyFamilies {
    in_flight: GaugeVec,
    refused: CounterVec,
}

impl Family for HeavyFamilies {
    fn render(&self, out: &mut String) {
        self.in_flight.render(out);
        self.refused.render(out);
    }
}

static FAMILIES: HeavyFamilies = HeavyFamilies {
    in_flight: GaugeVec::new(
        "vigil_heavy_reads",
        "Budgeted reads (GetClip, GetImages, GetMedia, GetMediaForFragmentList) being served \
         now.",
        &["operation"],
    ),
    refused: CounterVec::new(
        "vigil_heavy_reads_refused_total",
        "Budgeted reads refused with ClientLimitExceededException, by the limit they met \
         (key or total).",
        &["operation", "limit"],
    ),
};

fn families() -> &'static HeavyFamilies {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| metrics::global().register(&FAMILIES));
    &FAMILIES
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn per_key_and_total_caps_and_release() {
        let h = HeavyReads::new(
            "GetClip",
            HeavyLimits {
                per_key: 2,
                total: 3,
                wait: Duration::ZERO,
            },
        );
        let a1 = h.acquire("A").await.unwrap();
        let _a2 = h.acquire("A").await.unwrap();
        let e = h.acquire("A").await.unwrap_err();
        assert_eq!(e.aws_code(), "ClientLimitExceededException");
        let _b1 = h.acquire("B").await.unwrap();
        assert!(h.acquire("C").await.is_err(), "the total is reached");
        drop(a1);
        let _c1 = h.acquire("C").await.unwrap();
        assert!(h.acquire("A").await.is_err());
    }

    #[tokio::test]
    async fn a_call_over_the_budget_waits_for_a_place() {
        let h = Arc::new(HeavyReads::new(
            "GetImages",
            HeavyLimits {
                per_key: 1,
                total: 1,
                wait: Duration::from_secs(5),
            },
        ));
        let first = h.acquire("A").await.unwrap();
        let waiting = tokio::spawn({
            let h = h.clone();
            async move { h.acquire("A").await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "it waits while the place is taken");
        drop(first);
        waiting.await.unwrap().unwrap();
        // And gives up after its wait.
        let h = HeavyReads::new(
            "GetImages",
            HeavyLimits {
                per_key: 1,
                total: 1,
                wait: Duration::from_millis(50),
            },
        );
        let _held = h.acquire("A").await.unwrap();
        assert!(h.acquire("A").await.is_err());
    }
}
