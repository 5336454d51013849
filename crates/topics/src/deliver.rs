//! Deliveries: each confirmed subscription's task, which follows its topic's log and hands
//! each message its filter policy lets through to the [`Transport`], retrying as its delivery
//! policy says.
//!
//! - A subscription has up to [`crate::TopicsConfig::max_in_flight`] messages in flight
//!   (being delivered or waiting for a retry); deliveries of one subscription are not ordered
//!   (SNS's standard topics are not either), but its cursor moves only past messages it has
//!   finished with, so nothing is skipped across a restart.
//! - What an attempt's answer means, as SNS's HTTP/S deliveries: [`Outcome::Delivered`] (2xx)
//!   and [`Outcome::Rejected`] (4xx: the endpoint refused it; counted, not retried, as SNS
//!   does) finish a message; [`Outcome::Failed`] (5xx, no connection, no answer within the
//!   transport's timeout) is retried after the delay the policy gives, and when the retries
//!   run out the message is kept in the topic's dead letters with the last failure.
//! - `maxReceivesPerSecond` spaces the attempts' starts.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use vigil_store::{NewEntry, Position, StoreError};

use crate::engine::{CURSOR_FLUSH, DEAD_LETTERS_LOG, Inner, MESSAGES_LOG, lock};
use crate::filter::{FilterPolicy, Scope};
use crate::model::{CURSOR_KIND, DeadLetter, Message, Subscription, TopicMeta};
use crate::retry::{EffectivePolicy, SubscriptionDeliveryPolicy, TopicDeliveryPolicy};
use crate::stats::SubStats;

/// The longest an attempt may take, whatever the transport does (SNS's HTTP/S timeout is
/// 15 s; the transport should time out first).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// What is delivered.
#[derive(Debug, Clone)]
pub enum DeliveryKind {
    /// The subscription's confirmation request, with its token.
    Confirmation,
    /// A message.
    Notification(Arc<Message>),
    /// The news that the subscription was unsubscribed, with the token that subscribes it
    /// again.
    UnsubscribeConfirmation,
}

/// One delivery for the transport to make.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The subscription (its endpoint, attributes, token, links' base URL).
    pub subscription: Arc<Subscription>,
    /// Its topic.
    pub topic: Arc<TopicMeta>,
    /// What.
    pub kind: DeliveryKind,
}

/// An attempt's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The endpoint took it.
    Delivered,
    /// The endpoint refused it for good (an HTTP 4xx); not retried.
    Rejected(String),
    /// It did not get there (retried).
    Failed(String),
}

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Makes deliveries: the API layer's (it knows the envelope, the signature and HTTP).
pub trait Transport: Send + Sync + std::fmt::Debug + 'static {
    /// Makes one attempt.
    fn deliver(&self, d: Delivery) -> BoxFuture<Outcome>;
}

/// A delivery task's stop flag: running, stop and write the cursor (the server stops), stop
/// and leave the cursor (unsubscribed, topic deleted, superseded).
const RUNNING: u8 = 0;
const STOP_SAVE: u8 = 1;
const STOP_ABANDON: u8 = 2;

struct Run {
    cancel: Arc<AtomicU8>,
    task: JoinHandle<()>,
}

/// A subscription's in-memory side: its current record, its delivery task.
#[derive(Debug)]
pub struct SubHandle {
    sub: Mutex<Arc<Subscription>>,
    generation: AtomicU64,
    notify: Notify,
    run: Mutex<Option<Run>>,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run").finish_non_exhaustive()
    }
}

impl SubHandle {
    pub(crate) fn new(s: Subscription) -> Self {
        Self {
            sub: Mutex::new(Arc::new(s)),
            generation: AtomicU64::new(0),
            notify: Notify::new(),
            run: Mutex::new(None),
        }
    }

    /// The subscription as it is now.
    pub fn get(&self) -> Arc<Subscription> {
        lock(&self.sub).clone()
    }

    pub(crate) fn set(&self, s: Subscription) {
        *lock(&self.sub) = Arc::new(s);
    }

    /// Tells the task its subscription or topic changed.
    pub(crate) fn changed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_one();
    }

    /// Asks the task to end; with `save`, it writes its cursor first (the server stops),
    /// without, it leaves it (unsubscribed, topic deleted: the caller joins the task, then
    /// deletes the cursor).
    pub(crate) fn stop(&self, save: bool) {
        if let Some(r) = lock(&self.run).as_ref() {
            let flag = if save { STOP_SAVE } else { STOP_ABANDON };
            let _ = r
                .cancel
                .compare_exchange(RUNNING, flag, Ordering::SeqCst, Ordering::SeqCst);
        }
        self.notify.notify_one();
    }

    /// Waits for the task to end.
    pub(crate) async fn join(&self) {
        let task = lock(&self.run).take().map(|r| r.task);
        if let Some(t) = task {
            let _ = t.await;
        }
    }

    /// Waits, from a blocking context, for the task to end (at most [`ATTEMPT_TIMEOUT`] and
    /// a little more).
    pub(crate) fn join_blocking(self: &Arc<Self>, rt: &Handle) {
        let (tx, rx) = std::sync::mpsc::channel();
        let me = self.clone();
        rt.spawn(async move {
            me.join().await;
            let _ = tx.send(());
        });
        let _ = rx.recv_timeout(ATTEMPT_TIMEOUT + Duration::from_secs(5));
    }
}

/// Starts a subscription's delivery task (after the one before it ends, if any).
pub(crate) fn spawn(inner: &Arc<Inner>, h: Arc<SubHandle>) {
    let cancel = Arc::new(AtomicU8::new(RUNNING));
    let mut run = lock(&h.run);
    let prev = run.take();
    if let Some(p) = &prev {
        p.cancel.store(STOP_ABANDON, Ordering::SeqCst);
    }
    h.notify.notify_one();
    let task = inner.runtime.spawn(deliveries(
        inner.clone(),
        h.clone(),
        cancel.clone(),
        prev.map(|p| p.task),
    ));
    *run = Some(Run { cancel, task });
}

/// Sends a control message (a confirmation, an unsubscribe confirmation) in the background:
/// up to three attempts, 2 and 10 s apart. It is not kept: a subscriber that missed it
/// subscribes again, which sends it again.
pub(crate) fn spawn_control(inner: &Arc<Inner>, d: Delivery) {
    let transport = inner.transport.clone();
    inner.runtime.spawn(async move {
        for delay in [0u64, 2, 10] {
            tokio::time::sleep(Duration::from_secs(delay)).await;
            let what = match d.kind {
                DeliveryKind::Confirmation => "confirmation",
                _ => "unsubscribe confirmation",
            };
            match tokio::time::timeout(ATTEMPT_TIMEOUT, transport.deliver(d.clone())).await {
                Ok(Outcome::Delivered) => return,
                Ok(Outcome::Rejected(e)) => {
                    tracing::warn!(
                        subscription = d.subscription.id,
                        endpoint = d.subscription.endpoint_for_logs(),
                        "{what} refused: {e}"
                    );
                    return;
                }
                Ok(Outcome::Failed(e)) => {
                    tracing::info!(
                        subscription = d.subscription.id,
                        endpoint = d.subscription.endpoint_for_logs(),
                        "{what} failed: {e}"
                    );
                }
                Err(_) => tracing::info!(subscription = d.subscription.id, "{what} timed out"),
            }
        }
    });
}

/// What a subscription's task applies, made again when the subscription or topic changes.
struct Compiled {
    sub: Arc<Subscription>,
    topic: Arc<TopicMeta>,
    /// `None`: no policy; `Some(Err)`: a kept policy that no longer parses, which lets
    /// nothing through (fail closed) until it is set again.
    filter: Option<Result<FilterPolicy, ()>>,
    policy: EffectivePolicy,
}

impl Compiled {
    fn passes(&self, m: &Message) -> bool {
        match &self.filter {
            None => true,
            Some(Ok(f)) => f.matches(&m.attributes, m.body_for(self.sub.protocol)),
            Some(Err(())) => false,
        }
    }
}

fn compile(inner: &Inner, h: &SubHandle) -> Option<(Compiled, u64)> {
    let generation = h.generation.load(Ordering::SeqCst);
    let sub = h.get();
    let topic = lock(&inner.topics).get(&sub.topic)?.meta.clone();
    let scope = match sub.attributes.get("FilterPolicyScope").map(String::as_str) {
        Some("MessageBody") => Scope::MessageBody,
        _ => Scope::MessageAttributes,
    };
    let filter = sub
        .attributes
        .get("FilterPolicy")
        .filter(|f| !f.is_empty())
        .map(|f| {
            FilterPolicy::parse(f, scope).map_err(|e| {
                tracing::error!(subscription = sub.id, "its filter policy no longer parses, so nothing is delivered until it is set again: {e}");
            })
        });
    let topic_policy = topic
        .attributes
        .get("DeliveryPolicy")
        .and_then(|p| TopicDeliveryPolicy::parse(p).ok());
    let sub_policy = sub
        .attributes
        .get("DeliveryPolicy")
        .and_then(|p| SubscriptionDeliveryPolicy::parse(p).ok());
    let mut policy = crate::retry::effective(topic_policy.as_ref(), sub_policy.as_ref());
    if sub.protocol.is_email() {
        // Only HTTP/S retries follow a delivery policy.
        policy = EffectivePolicy {
            retry: crate::retry::RetryPolicy::SMTP,
            ..EffectivePolicy::default()
        };
    }
    Some((
        Compiled {
            sub,
            topic,
            filter,
            policy,
        },
        generation,
    ))
}

struct Done {
    position: Position,
    message: Arc<Message>,
    attempt: u32,
    outcome: Outcome,
}

/// The delivery task of one subscription.
async fn deliveries(
    inner: Arc<Inner>,
    h: Arc<SubHandle>,
    cancel: Arc<AtomicU8>,
    prev: Option<JoinHandle<()>>,
) {
    if let Some(p) = prev {
        let _ = p.await;
    }
    let id = h.get().id.clone();
    let Some((mut c, mut generation)) = compile(&inner, &h) else {
        return;
    };
    let stats = inner.stats.of(&id, &c.sub.topic);
    let Some(group) = lock(&inner.topics).get(&c.sub.topic).map(|t| t.group) else {
        return;
    };
    let store = inner.store.clone();
    let cursor = {
        let store = store.clone();
        let id = id.clone();
        tokio::task::spawn_blocking(move || -> Result<Position, StoreError> {
            match store.document(CURSOR_KIND, &id)? {
                Some(b) => Ok(std::str::from_utf8(&b)
                    .ok()
                    .and_then(|s| s.parse::<u128>().ok())
                    .map_or(Position::MIN, Position::from_u128)),
                None => Ok(store.log_bounds(group, MESSAGES_LOG)?.next()),
            }
        })
        .await
    };
    let mut cursor = match cursor {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            tracing::error!(subscription = id, "reading its delivery cursor: {e}");
            return;
        }
        Err(_) => return,
    };
    let mut wake = match store.subscribe_log(group, MESSAGES_LOG) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(subscription = id, "following its topic: {e}");
            return;
        }
    };
    let mut next_read = cursor;
    let mut written = cursor;
    let mut last_write = Instant::now();
    // Messages read and not finished: false while in flight, true once finished.
    let mut slots: BTreeMap<Position, bool> = BTreeMap::new();
    // Attempts by task, so that one that panicked still finishes its message.
    let mut attempts: JoinSet<Done> = JoinSet::new();
    let mut running: HashMap<tokio::task::Id, (Position, Arc<Message>, u32)> = HashMap::new();
    let mut next_start = tokio::time::Instant::now();
    // Messages in flight (the window), and everything read past the oldest unfinished one
    // (finished or filtered out behind a message being retried), bounded apart.
    let max = inner.cfg.max_in_flight.max(1);
    let max_read = max.saturating_mul(READ_AHEAD);
    loop {
        if cancel.load(Ordering::SeqCst) != RUNNING {
            break;
        }
        if h.generation.load(Ordering::SeqCst) != generation {
            match compile(&inner, &h) {
                Some((c2, g)) => {
                    c = c2;
                    generation = g;
                }
                None => break,
            }
        }
        // Read what is new, as far as the window allows.
        let mut read_some = false;
        let open = running_count(&slots);
        let has_room =
            |slots: &BTreeMap<Position, bool>| running_count(slots) < max && slots.len() < max_read;
        if has_room(&slots) {
            wake.borrow_and_update();
            let room = (max - open).min(max_read - slots.len());
            let s2 = store.clone();
            let from = next_read;
            // At the live edge the log's memory has it: no trip to the blocking pool.
            let read = match store.read_log_memory(group, MESSAGES_LOG, from, room, 4 << 20) {
                Ok(Some(entries)) => Ok(Ok(entries)),
                Ok(None) => {
                    tokio::task::spawn_blocking(move || {
                        s2.read_log(group, MESSAGES_LOG, from, room, 4 << 20)
                    })
                    .await
                }
                Err(e) => Ok(Err(e)),
            };
            match read {
                Ok(Ok(entries)) => {
                    read_some = !entries.is_empty();
                    for e in entries {
                        next_read = e.position.next();
                        let msg = match serde_json::from_slice::<Message>(&e.data) {
                            Ok(m) => Arc::new(m),
                            Err(err) => {
                                tracing::error!(subscription = id, position = %e.position, "an unreadable message: {err}");
                                slots.insert(e.position, true);
                                continue;
                            }
                        };
                        if !c.passes(&msg) {
                            SubStats::inc(&stats.filtered);
                            slots.insert(e.position, true);
                            continue;
                        }
                        slots.insert(e.position, false);
                        stats.in_flight.fetch_add(1, Ordering::Relaxed);
                        let at = throttled(&mut next_start, &c.policy);
                        launch(
                            &inner,
                            &mut attempts,
                            &mut running,
                            &c,
                            e.position,
                            msg,
                            1,
                            at,
                        );
                    }
                }
                Ok(Err(StoreError::LogGroupNotFound(_))) => break,
                Ok(Err(e)) => {
                    tracing::warn!(subscription = id, "reading its topic: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(_) => break,
            }
        }
        // Move the cursor past what is finished.
        while let Some((&p, &done)) = slots.first_key_value() {
            if !done {
                break;
            }
            slots.remove(&p);
        }
        cursor = slots.first_key_value().map_or(next_read, |(p, _)| *p);
        // At most one write a second: each is an index transaction (an fsync).
        if cursor != written
            && last_write.elapsed() >= CURSOR_FLUSH
            && cancel.load(Ordering::SeqCst) == RUNNING
        {
            if write_cursor(&store, &id, cursor).await {
                written = cursor;
            }
            last_write = Instant::now();
        }
        if read_some && has_room(&slots) {
            continue;
        }
        let flush_in = CURSOR_FLUSH.saturating_sub(last_write.elapsed());
        tokio::select! {
            Some(joined) = attempts.join_next_with_id(), if !attempts.is_empty() => {
                let done = match joined {
                    Ok((task, done)) => {
                        running.remove(&task);
                        done
                    }
                    // An attempt that panicked: its message failed this attempt.
                    Err(e) => {
                        let Some((position, message, attempt)) = running.remove(&e.id()) else {
                            continue;
                        };
                        Done { position, message, attempt, outcome: Outcome::Failed(format!("the delivery failed: {e}")) }
                    }
                };
                finish(&inner, &mut attempts, &mut running, &c, &stats, &mut slots, group, done).await;
            }
            r = wake.changed(), if has_room(&slots) => {
                if r.is_err() {
                    break;
                }
            }
            () = h.notify.notified() => {}
            () = tokio::time::sleep(flush_in), if cursor != written => {}
        }
    }
    attempts.abort_all();
    let open = slots.values().filter(|d| !**d).count();
    stats
        .in_flight
        .fetch_sub(i64::try_from(open).unwrap_or(0), Ordering::Relaxed);
    let cursor = slots.first_key_value().map_or(next_read, |(p, _)| *p);
    if cursor != written && cancel.load(Ordering::SeqCst) != STOP_ABANDON {
        write_cursor(&store, &id, cursor).await;
    }
}

/// How far past the oldest unfinished message a subscription reads, in windows.
const READ_AHEAD: usize = 16;

fn running_count(slots: &BTreeMap<Position, bool>) -> usize {
    slots.values().filter(|d| !**d).count()
}

/// When a message's first attempt may start, under the throttle policy (retries start when
/// their delay says, and do not push fresh messages back).
fn throttled(
    next_start: &mut tokio::time::Instant,
    policy: &EffectivePolicy,
) -> tokio::time::Instant {
    let want = tokio::time::Instant::now();
    let Some(rate) = policy.max_receives_per_second.filter(|r| *r > 0) else {
        return want;
    };
    let at = want.max(*next_start);
    *next_start = at + Duration::from_secs(1) / rate;
    at
}

#[allow(clippy::too_many_arguments)]
fn launch(
    inner: &Arc<Inner>,
    attempts: &mut JoinSet<Done>,
    running: &mut HashMap<tokio::task::Id, (Position, Arc<Message>, u32)>,
    c: &Compiled,
    position: Position,
    message: Arc<Message>,
    attempt: u32,
    at: tokio::time::Instant,
) {
    let transport = inner.transport.clone();
    let d = Delivery {
        subscription: c.sub.clone(),
        topic: c.topic.clone(),
        kind: DeliveryKind::Notification(message.clone()),
    };
    let what = (position, message.clone(), attempt);
    let handle = attempts.spawn_on(
        async move {
            tokio::time::sleep_until(at).await;
            let outcome = match tokio::time::timeout(ATTEMPT_TIMEOUT, transport.deliver(d)).await {
                Ok(o) => o,
                Err(_) => Outcome::Failed(format!("no answer within {ATTEMPT_TIMEOUT:?}")),
            };
            Done {
                position,
                message,
                attempt,
                outcome,
            }
        },
        &inner.runtime,
    );
    running.insert(handle.id(), what);
}

#[allow(clippy::too_many_arguments)]
async fn finish(
    inner: &Arc<Inner>,
    attempts: &mut JoinSet<Done>,
    running: &mut HashMap<tokio::task::Id, (Position, Arc<Message>, u32)>,
    c: &Compiled,
    stats: &SubStats,
    slots: &mut BTreeMap<Position, bool>,
    group: u64,
    done: Done,
) {
    let reason = match done.outcome {
        Outcome::Delivered => {
            SubStats::inc(&stats.delivered);
            let now = inner.store.clock().now_ms();
            stats.latency_ms_sum.fetch_add(
                now.saturating_sub(done.message.timestamp_ms),
                Ordering::Relaxed,
            );
            None
        }
        Outcome::Rejected(e) => {
            SubStats::inc(&stats.failed_attempts);
            tracing::warn!(
                subscription = c.sub.id,
                message = done.message.id,
                "the endpoint refused the message, not retried: {e}"
            );
            None
        }
        Outcome::Failed(e) => {
            SubStats::inc(&stats.failed_attempts);
            match c.policy.retry.delay_before_retry(done.attempt) {
                Some(delay) => {
                    tracing::debug!(
                        subscription = c.sub.id,
                        message = done.message.id,
                        attempt = done.attempt,
                        "delivery failed, retrying in {delay:?}: {e}"
                    );
                    let at = tokio::time::Instant::now() + delay;
                    launch(
                        inner,
                        attempts,
                        running,
                        c,
                        done.position,
                        done.message,
                        done.attempt + 1,
                        at,
                    );
                    return;
                }
                None => Some(e),
            }
        }
    };
    if let Some(reason) = reason {
        SubStats::inc(&stats.dead_letters);
        tracing::warn!(
            subscription = c.sub.id,
            message = done.message.id,
            attempts = done.attempt,
            "delivery gave up, kept as a dead letter: {reason}"
        );
        let letter = DeadLetter {
            subscription: c.sub.id.clone(),
            endpoint: c.sub.endpoint.clone(),
            message: (*done.message).clone(),
            attempts: done.attempt,
            reason,
            at_ms: inner.store.clock().now_ms(),
        };
        if let Ok(data) = serde_json::to_vec(&letter) {
            let entry = NewEntry {
                key: Bytes::from(c.sub.id.clone().into_bytes()),
                data: Bytes::from(data),
            };
            match inner.store.append_log(group, DEAD_LETTERS_LOG, &[entry]) {
                Ok(a) => {
                    if let Err(e) = a.wait().await {
                        tracing::error!(subscription = c.sub.id, "keeping a dead letter: {e}");
                    }
                }
                Err(e) => tracing::error!(subscription = c.sub.id, "keeping a dead letter: {e}"),
            }
        }
    }
    stats.in_flight.fetch_sub(1, Ordering::Relaxed);
    if let Some(s) = slots.get_mut(&done.position) {
        *s = true;
    }
}

async fn write_cursor(store: &vigil_store::Store, id: &str, cursor: Position) -> bool {
    let store = store.clone();
    let name = id.to_owned();
    let r = tokio::task::spawn_blocking(move || {
        store.put_document(CURSOR_KIND, &name, cursor.as_u128().to_string().as_bytes())
    })
    .await;
    match r {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::warn!(subscription = id, "writing its delivery cursor: {e}");
            false
        }
        Err(_) => false,
    }
}
