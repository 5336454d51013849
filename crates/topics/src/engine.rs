//! [`Topics`]: topics and subscriptions over the store.
//!
//! # On the store
//!
//! - A topic is a log group of the store named `topic/NAME` (its [`TopicMeta`] in the group's
//!   attributes): log 0 holds its messages, log 1 the messages its deliveries gave up on
//!   ([`DeadLetter`]), both sealed under the group's data key and expired by its retention.
//! - A subscription is a document ([`SUBSCRIPTION_KIND`], named by its id); where its
//!   deliveries are is another ([`CURSOR_KIND`]): the position of the first message it has
//!   not finished with (delivered, filtered out or given up).
//!
//! # Durability
//!
//! - [`Topics::publish`] returns once the messages are durable in the topic's log (the
//!   store's log contract: appended to a segment, `fdatasync`ed, indexed): a message whose id
//!   was returned is delivered after any crash.
//! - A delivery cursor (the first message not finished) is written at most [`CURSOR_FLUSH`]
//!   after it moves, and when the server stops. After a crash, messages delivered in that
//!   last moment are delivered again, and after any restart so are those finished after a
//!   message still being retried: deliveries are at least once, as SNS's are. A message
//!   being retried when the server stops is retried after the restart (its count of attempts
//!   starts again).
//! - Control calls (create, subscribe, confirm, attributes, unsubscribe, delete) are durable
//!   (one index transaction each) before they return.
//!
//! # Concurrency
//!
//! Control calls do blocking store I/O: call them from a blocking context. They are
//! serialised by one lock; the in-memory maps sit behind plain locks held only to read or
//! replace an entry. Each confirmed subscription has a delivery task ([`crate::deliver`]) on
//! the runtime the engine was opened in.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::runtime::Handle;
use vigil_store::{LogGroupRef, NewEntry, NewLogGroup, Position, Store, StoreError};

use crate::deliver::{self, Delivery, DeliveryKind, SubHandle, Transport};
use crate::error::{Error, Result};
use crate::model::{
    Attributes, CURSOR_KIND, DeadLetter, META_VERSION, Message, Protocol, SUBSCRIPTION_KIND,
    Subscription, SubscriptionState, TOPIC_ATTRIBUTE, TopicInfo, TopicMeta,
};
use crate::stats::StatsRegistry;

pub use crate::attributes::{check_subscription_attribute, check_topic_attribute};

/// How long a confirmation token is valid: 3 days, as SNS's.
pub const TOKEN_TTL_MS: u64 = 3 * 24 * 3600 * 1000;

/// How soon a pending subscription's confirmation may be sent again by a repeated Subscribe.
pub const CONFIRMATION_RESEND_MS: u64 = 60_000;

/// How late a delivery cursor may be written after it moved.
pub const CURSOR_FLUSH: std::time::Duration = std::time::Duration::from_secs(1);

/// The prefix of topics' log group names.
pub const GROUP_PREFIX: &str = "topic/";

/// The log of a topic's messages.
pub const MESSAGES_LOG: u32 = 0;
/// The log of a topic's dead letters.
pub const DEAD_LETTERS_LOG: u32 = 1;

/// The server's limits and settings.
#[derive(Debug, Clone, Copy)]
pub struct TopicsConfig {
    /// Topics in all (SNS's default quota is 100,000).
    pub max_topics: usize,
    /// Subscriptions per topic, pending ones included (SNS's is 12,500,000; a server's
    /// memory holds every subscription, so Vigil's default is lower).
    pub max_subscriptions_per_topic: usize,
    /// Hours a topic keeps its messages (and dead letters): a delivery that falls further
    /// behind than this loses what expired.
    pub retention_hours: u32,
    /// Messages a subscription has in flight at once (being delivered or waiting for a
    /// retry).
    pub max_in_flight: usize,
}

impl Default for TopicsConfig {
    fn default() -> Self {
        Self {
            max_topics: 100_000,
            max_subscriptions_per_topic: 10_000,
            retention_hours: 24,
            max_in_flight: 64,
        }
    }
}

/// A new subscription.
#[derive(Debug, Clone)]
pub struct NewSubscription {
    /// How it delivers.
    pub protocol: Protocol,
    /// Where.
    pub endpoint: String,
    /// The subscribing account.
    pub owner: String,
    /// Its attributes (checked by [`check_subscription_attribute`]).
    pub attributes: BTreeMap<String, String>,
    /// The URL the subscriber reached the server at.
    pub base_url: String,
}

/// What `subscribe` did.
#[derive(Debug, Clone)]
pub struct Subscribed {
    /// The subscription.
    pub subscription: Subscription,
    /// Whether it existed already (same protocol and endpoint).
    pub existed: bool,
}

/// A message to publish.
#[derive(Debug, Clone, Default)]
pub struct NewMessage {
    /// Subject.
    pub subject: Option<String>,
    /// Body (with a per-protocol structure: the default).
    pub body: String,
    /// Bodies per protocol.
    pub per_protocol: BTreeMap<String, String>,
    /// Attributes.
    pub attributes: Attributes,
}

#[derive(Debug)]
pub(crate) struct TopicEntry {
    pub(crate) group: u64,
    pub(crate) meta: Arc<TopicMeta>,
}

/// The topics of a store, and their deliveries.
#[derive(Debug, Clone)]
pub struct Topics(pub(crate) Arc<Inner>);

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) cfg: TopicsConfig,
    pub(crate) topics: Mutex<BTreeMap<String, TopicEntry>>,
    pub(crate) subs: Mutex<HashMap<String, Arc<SubHandle>>>,
    control: Mutex<()>,
    pub(crate) runtime: Handle,
    pub(crate) stats: Arc<StatsRegistry>,
    started: std::sync::atomic::AtomicBool,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn group_name(topic: &str) -> String {
    format!("{GROUP_PREFIX}{topic}")
}

/// A fresh confirmation token: 64 random bytes, hex (SNS's are as long).
fn new_token() -> String {
    let mut b = [0u8; 64];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A fresh UUID (v4).
pub fn new_uuid() -> String {
    let mut b = [0u8; 16];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    let mut v = u128::from_be_bytes(b);
    v = (v & !(0xf << 76)) | (0x4 << 76);
    v = (v & !(0x3 << 62)) | (0x2 << 62);
    let h = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        h.get(0..8).unwrap_or_default(),
        h.get(8..12).unwrap_or_default(),
        h.get(12..16).unwrap_or_default(),
        h.get(16..20).unwrap_or_default(),
        h.get(20..32).unwrap_or_default()
    )
}

impl Topics {
    /// The topics of `store`, their deliveries made by `transport`. Blocking (it loads every
    /// topic and subscription); call it within a tokio runtime, on which the deliveries run
    /// once [`Topics::start`] is called.
    pub fn open(store: Store, transport: Arc<dyn Transport>, cfg: TopicsConfig) -> Result<Self> {
        let runtime = Handle::try_current().map_err(|_| {
            Error::Invalid("the topics engine needs a tokio runtime to deliver on".into())
        })?;
        let mut topics = BTreeMap::new();
        let mut after: Option<String> = None;
        loop {
            let page = store.list_log_groups(GROUP_PREFIX, after.as_deref(), 500)?;
            let Some(last) = page.last() else { break };
            after = Some(last.name.clone());
            for g in page {
                let Some(meta) = g
                    .attributes
                    .get(TOPIC_ATTRIBUTE)
                    .and_then(|v| serde_json::from_value::<TopicMeta>(v.clone()).ok())
                else {
                    tracing::warn!(group = g.name, "a topic's log group without its metadata");
                    continue;
                };
                topics.insert(
                    meta.name.clone(),
                    TopicEntry {
                        group: g.id,
                        meta: Arc::new(meta),
                    },
                );
            }
        }
        let mut subs = HashMap::new();
        let mut after: Option<String> = None;
        loop {
            let page = store.documents(SUBSCRIPTION_KIND, after.as_deref(), 500)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (name, body) in page {
                match serde_json::from_slice::<Subscription>(&body) {
                    Ok(s) if topics.contains_key(&s.topic) => {
                        subs.insert(s.id.clone(), Arc::new(SubHandle::new(s)));
                    }
                    Ok(_) => {
                        // Its topic was deleted in a crash before the subscription went.
                        let _ = store.delete_document(SUBSCRIPTION_KIND, &name);
                        let _ = store.delete_document(CURSOR_KIND, &name);
                    }
                    Err(e) => tracing::warn!(subscription = name, "unreadable: {e}"),
                }
            }
        }
        Ok(Self(Arc::new(Inner {
            store,
            transport,
            cfg,
            topics: Mutex::new(topics),
            subs: Mutex::new(subs),
            control: Mutex::new(()),
            runtime,
            stats: Arc::new(StatsRegistry::default()),
            started: std::sync::atomic::AtomicBool::new(false),
        })))
    }

    /// Starts the deliveries of every confirmed subscription, and drops pending and
    /// unsubscribed ones whose token has expired. Blocking.
    pub fn start(&self) -> Result<usize> {
        self.0
            .started
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.purge_expired()?;
        // Expired tokens are dropped hourly too (a weak handle: the task must not keep the
        // store open).
        let weak = Arc::downgrade(&self.0);
        self.0.runtime.spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                let Some(inner) = weak.upgrade() else { return };
                let t = Topics(inner);
                let r = tokio::task::spawn_blocking(move || t.purge_expired()).await;
                if let Ok(Err(e)) = r {
                    tracing::warn!("dropping expired subscriptions: {e}");
                }
            }
        });
        let subs: Vec<Arc<SubHandle>> = lock(&self.0.subs).values().cloned().collect();
        let mut n = 0;
        for h in subs {
            if h.get().state == SubscriptionState::Confirmed {
                deliver::spawn(&self.0, h);
                n += 1;
            }
        }
        Ok(n)
    }

    /// Stops every delivery and writes where each is. Blocking: waits for the delivery
    /// tasks to end (each ends after its current attempts, at most their timeout).
    pub fn shutdown(&self) {
        let subs: Vec<Arc<SubHandle>> = lock(&self.0.subs).values().cloned().collect();
        for h in &subs {
            h.stop(true);
        }
        for h in subs {
            h.join_blocking(&self.0.runtime);
        }
    }

    /// Subscriptions kept, in every state.
    pub fn subscription_count(&self) -> usize {
        lock(&self.0.subs).len()
    }

    /// Delivery statistics per subscription.
    pub fn stats(&self) -> Arc<StatsRegistry> {
        self.0.stats.clone()
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.0.store
    }

    fn now_ms(&self) -> u64 {
        self.0.store.clock().now_ms()
    }

    fn purge_expired(&self) -> Result<()> {
        let _g = lock(&self.0.control);
        let now = self.now_ms();
        let expired: Vec<String> = lock(&self.0.subs)
            .values()
            .map(|h| h.get())
            .filter(|s| s.state != SubscriptionState::Confirmed && s.token_expires_ms <= now)
            .map(|s| s.id.clone())
            .collect();
        for id in expired {
            self.0.store.delete_document(SUBSCRIPTION_KIND, &id)?;
            lock(&self.0.subs).remove(&id);
        }
        Ok(())
    }

    fn group_of(&self, topic: &str) -> Result<(u64, Arc<TopicMeta>)> {
        lock(&self.0.topics)
            .get(topic)
            .map(|t| (t.group, t.meta.clone()))
            .ok_or_else(|| Error::TopicNotFound(topic.to_owned()))
    }

    /// Creates a topic, or returns the one of that name when its attributes and tags are
    /// those asked for (SNS's `CreateTopic` is idempotent); with other attributes, `Invalid`.
    pub fn create_topic(
        &self,
        name: &str,
        attributes: BTreeMap<String, String>,
        tags: BTreeMap<String, String>,
    ) -> Result<TopicInfo> {
        for (k, v) in &attributes {
            check_topic_attribute(k, v)?;
        }
        let _g = lock(&self.0.control);
        if let Ok((_, meta)) = self.group_of(name) {
            let same_attrs = attributes
                .iter()
                .all(|(k, v)| meta.attributes.get(k) == Some(v));
            if !same_attrs {
                return Err(Error::Invalid(
                    "Topic already exists with different attributes".into(),
                ));
            }
            if !tags.is_empty() && tags != meta.tags {
                return Err(Error::Invalid(
                    "Tags: Topic already exists with different tags".into(),
                ));
            }
            return self.topic(name);
        }
        if lock(&self.0.topics).len() >= self.0.cfg.max_topics {
            return Err(Error::LimitExceeded(format!(
                "Topic limit exceeded: this server takes at most {} topics",
                self.0.cfg.max_topics
            )));
        }
        let meta = TopicMeta {
            v: META_VERSION,
            name: name.to_owned(),
            attributes,
            tags,
            created_ms: self.now_ms(),
        };
        let mut group = NewLogGroup::new(group_name(name));
        group.retention_hours = self.0.cfg.retention_hours;
        group.attributes.insert(
            TOPIC_ATTRIBUTE.to_owned(),
            serde_json::to_value(&meta).map_err(|e| Error::Invalid(e.to_string()))?,
        );
        let rec = self.0.store.create_log_group(group)?;
        lock(&self.0.topics).insert(
            name.to_owned(),
            TopicEntry {
                group: rec.id,
                meta: Arc::new(meta),
            },
        );
        self.topic(name)
    }

    /// A topic and its subscription counts.
    pub fn topic(&self, name: &str) -> Result<TopicInfo> {
        let (_, meta) = self.group_of(name)?;
        let (mut confirmed, mut pending, mut deleted) = (0, 0, 0);
        for h in lock(&self.0.subs).values() {
            let s = h.get();
            if s.topic != name {
                continue;
            }
            match s.state {
                SubscriptionState::Confirmed => confirmed += 1,
                SubscriptionState::Pending => pending += 1,
                SubscriptionState::Deleted => deleted += 1,
            }
        }
        Ok(TopicInfo {
            meta: (*meta).clone(),
            confirmed,
            pending,
            deleted,
        })
    }

    /// Topic names after `after`, in order, at most `limit`.
    pub fn list_topics(&self, after: Option<&str>, limit: usize) -> Vec<String> {
        let topics = lock(&self.0.topics);
        let range = match after {
            Some(a) => {
                topics.range::<str, _>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded))
            }
            None => topics.range::<str, _>(..),
        };
        range.take(limit).map(|(k, _)| k.clone()).collect()
    }

    /// Changes a topic's metadata with `f`, durably.
    fn update_topic(&self, name: &str, f: impl FnOnce(&mut TopicMeta) -> Result<()>) -> Result<()> {
        let _g = lock(&self.0.control);
        let (group, meta) = self.group_of(name)?;
        let mut meta = (*meta).clone();
        f(&mut meta)?;
        let value = serde_json::to_value(&meta).map_err(|e| Error::Invalid(e.to_string()))?;
        self.0
            .store
            .update_log_group::<StoreError>(LogGroupRef::Id(group), |rec| {
                rec.attributes.insert(TOPIC_ATTRIBUTE.to_owned(), value);
                Ok(())
            })?;
        let meta = Arc::new(meta);
        if let Some(t) = lock(&self.0.topics).get_mut(name) {
            t.meta = meta;
        }
        // Its subscriptions' delivery policy may follow the topic's.
        for h in lock(&self.0.subs).values() {
            if h.get().topic == name {
                h.changed();
            }
        }
        Ok(())
    }

    /// Sets (or, with an empty value, removes) a topic attribute.
    pub fn set_topic_attribute(&self, name: &str, key: &str, value: &str) -> Result<()> {
        if !value.is_empty() {
            check_topic_attribute(key, value)?;
        } else {
            check_topic_attribute(key, "").or_else(|e| match key {
                "Policy" | "DeliveryPolicy" | "SignatureVersion" | "TracingConfig" => Ok(()),
                _ => Err(e),
            })?;
        }
        self.update_topic(name, |m| {
            if value.is_empty() {
                m.attributes.remove(key);
            } else {
                m.attributes.insert(key.to_owned(), value.to_owned());
            }
            Ok(())
        })
    }

    /// Changes one attribute from what it is (`None`: not set) to what `f` makes of it, under
    /// the control lock, so that two read-modify-writes (AddPermission's edits of `Policy`)
    /// cannot lose one another's change.
    pub fn modify_topic_attribute(
        &self,
        name: &str,
        key: &str,
        f: impl FnOnce(Option<&str>) -> Result<String>,
    ) -> Result<()> {
        self.update_topic(name, |m| {
            let next = f(m.attributes.get(key).map(String::as_str))?;
            check_topic_attribute(key, &next)?;
            m.attributes.insert(key.to_owned(), next);
            Ok(())
        })
    }

    /// Adds or replaces tags; at most `max` in all.
    pub fn tag_topic(&self, name: &str, tags: &[(String, String)], max: usize) -> Result<()> {
        self.update_topic(name, |m| {
            let mut next = m.tags.clone();
            for (k, v) in tags {
                next.insert(k.clone(), v.clone());
            }
            if next.len() > max {
                return Err(Error::LimitExceeded(format!(
                    "Could not complete request: tag quota of per resource exceeded (at most \
                     {max})"
                )));
            }
            m.tags = next;
            Ok(())
        })
    }

    /// Removes tags.
    pub fn untag_topic(&self, name: &str, keys: &[String]) -> Result<()> {
        self.update_topic(name, |m| {
            for k in keys {
                m.tags.remove(k);
            }
            Ok(())
        })
    }

    /// Deletes a topic, its subscriptions and its messages. Deleting a topic that does not
    /// exist succeeds, as in SNS.
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        let _g = lock(&self.0.control);
        let Ok((group, _)) = self.group_of(name) else {
            return Ok(());
        };
        let subs: Vec<Arc<SubHandle>> = lock(&self.0.subs)
            .values()
            .filter(|h| h.get().topic == name)
            .cloned()
            .collect();
        // The topic goes first: if that fails nothing changed; after it, its subscriptions'
        // tasks end by themselves (their log is gone), and what is left of them is removed
        // here or, after a crash, when the engine opens (subscriptions of no topic).
        match self.0.store.delete_log_group(LogGroupRef::Id(group)) {
            Ok(()) | Err(StoreError::LogGroupNotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        lock(&self.0.topics).remove(name);
        for h in &subs {
            h.stop(false);
        }
        for h in &subs {
            h.join_blocking(&self.0.runtime);
            let id = h.get().id.clone();
            for kind in [SUBSCRIPTION_KIND, CURSOR_KIND] {
                if let Err(e) = self.0.store.delete_document(kind, &id) {
                    tracing::warn!(
                        subscription = id,
                        "removing a deleted topic's subscription: {e}"
                    );
                }
            }
            lock(&self.0.subs).remove(&id);
            self.0.stats.remove(&id);
        }
        Ok(())
    }

    fn put_subscription(&self, s: &Subscription) -> Result<()> {
        let body = serde_json::to_vec(s).map_err(|e| Error::Invalid(e.to_string()))?;
        self.0.store.put_document(SUBSCRIPTION_KIND, &s.id, &body)?;
        Ok(())
    }

    fn handle(&self, id: &str) -> Result<Arc<SubHandle>> {
        lock(&self.0.subs)
            .get(id)
            .cloned()
            .ok_or_else(|| Error::SubscriptionNotFound(id.to_owned()))
    }

    /// Subscribes an endpoint to a topic. A new subscription is pending: its endpoint is sent
    /// a confirmation with a token, and it gets nothing until confirmed with it. The same
    /// protocol and endpoint again return the subscription there is (sending a pending one
    /// its confirmation again); with other attributes, `Invalid`.
    pub fn subscribe(&self, topic: &str, new: NewSubscription) -> Result<Subscribed> {
        let scope = new.attributes.get("FilterPolicyScope").map(String::as_str);
        for (k, v) in &new.attributes {
            check_subscription_attribute(k, v, scope)?;
        }
        let _g = lock(&self.0.control);
        let (_, meta) = self.group_of(topic)?;
        let existing: Vec<Arc<SubHandle>> = lock(&self.0.subs)
            .values()
            .filter(|h| {
                let s = h.get();
                s.topic == topic && s.protocol == new.protocol && s.endpoint == new.endpoint
            })
            .cloned()
            .collect();
        let now = self.now_ms();
        for h in existing {
            let s = h.get();
            match s.state {
                SubscriptionState::Confirmed | SubscriptionState::Pending => {
                    let same = new
                        .attributes
                        .iter()
                        .all(|(k, v)| s.attributes.get(k) == Some(v));
                    if !same {
                        return Err(Error::Invalid(
                            "Attributes: Subscription already exists with different attributes"
                                .into(),
                        ));
                    }
                    // A pending one gets its confirmation again, at most once a minute (a
                    // caller repeating Subscribe cannot make the server post in a loop).
                    let issued = s.token_expires_ms.saturating_sub(TOKEN_TTL_MS);
                    if s.state == SubscriptionState::Pending
                        && now.saturating_sub(issued) >= CONFIRMATION_RESEND_MS
                    {
                        let mut s2 = (*s).clone();
                        s2.token = Some(new_token());
                        s2.token_expires_ms = now.saturating_add(TOKEN_TTL_MS);
                        self.put_subscription(&s2)?;
                        h.set(s2.clone());
                        self.send_control(&meta, &h, DeliveryKind::Confirmation);
                        return Ok(Subscribed {
                            subscription: s2,
                            existed: true,
                        });
                    }
                    return Ok(Subscribed {
                        subscription: (*s).clone(),
                        existed: true,
                    });
                }
                SubscriptionState::Deleted => {
                    // Subscribing again makes a new subscription; the old one goes.
                    self.0.store.delete_document(SUBSCRIPTION_KIND, &s.id)?;
                    lock(&self.0.subs).remove(&s.id);
                }
            }
        }
        let count = lock(&self.0.subs)
            .values()
            .filter(|h| {
                let s = h.get();
                s.topic == topic && s.state != SubscriptionState::Deleted
            })
            .count();
        if count >= self.0.cfg.max_subscriptions_per_topic {
            return Err(Error::LimitExceeded(format!(
                "Subscription limit exceeded: this server takes at most {} subscriptions per \
                 topic",
                self.0.cfg.max_subscriptions_per_topic
            )));
        }
        let s = Subscription {
            v: META_VERSION,
            id: new_uuid(),
            topic: topic.to_owned(),
            protocol: new.protocol,
            endpoint: new.endpoint,
            owner: new.owner,
            attributes: new.attributes,
            state: SubscriptionState::Pending,
            token: Some(new_token()),
            token_expires_ms: now.saturating_add(TOKEN_TTL_MS),
            authenticate_on_unsubscribe: false,
            base_url: new.base_url,
            created_ms: now,
        };
        self.put_subscription(&s)?;
        let h = Arc::new(SubHandle::new(s.clone()));
        lock(&self.0.subs).insert(s.id.clone(), h.clone());
        self.send_control(&meta, &h, DeliveryKind::Confirmation);
        Ok(Subscribed {
            subscription: s,
            existed: false,
        })
    }

    /// Sends a confirmation or an unsubscribe confirmation, in the background.
    fn send_control(&self, meta: &Arc<TopicMeta>, h: &Arc<SubHandle>, kind: DeliveryKind) {
        let d = Delivery {
            subscription: h.get(),
            topic: meta.clone(),
            kind,
        };
        deliver::spawn_control(&self.0, d);
    }

    /// Confirms a subscription of `topic` with the token its endpoint was sent (pending, or
    /// unsubscribed: that subscribes it again). It receives what is published from now on.
    pub fn confirm(
        &self,
        topic: &str,
        token: &str,
        authenticate_on_unsubscribe: bool,
    ) -> Result<Subscription> {
        let _g = lock(&self.0.control);
        let (group, _) = self.group_of(topic)?;
        let now = self.now_ms();
        let h = lock(&self.0.subs)
            .values()
            .find(|h| {
                let s = h.get();
                s.topic == topic && s.token.as_deref() == Some(token)
            })
            .cloned();
        let Some(h) = h.filter(|h| h.get().token_expires_ms > now) else {
            return Err(Error::Invalid("Token: Invalid token".into()));
        };
        let mut s = (*h.get()).clone();
        s.state = SubscriptionState::Confirmed;
        s.token = None;
        s.token_expires_ms = 0;
        s.authenticate_on_unsubscribe = authenticate_on_unsubscribe;
        let from = self
            .0
            .store
            .log_bounds(group, crate::engine::MESSAGES_LOG)?
            .next();
        self.0
            .store
            .put_document(CURSOR_KIND, &s.id, from.as_u128().to_string().as_bytes())?;
        self.put_subscription(&s)?;
        h.set(s.clone());
        if self.0.started.load(std::sync::atomic::Ordering::SeqCst) {
            deliver::spawn(&self.0, h);
        }
        Ok(s)
    }

    /// A subscription.
    pub fn subscription(&self, id: &str) -> Result<Subscription> {
        let s = self.handle(id)?.get();
        if s.state == SubscriptionState::Deleted {
            return Err(Error::SubscriptionNotFound(id.to_owned()));
        }
        Ok((*s).clone())
    }

    /// Subscriptions (of `topic`, or all), pending and confirmed, ordered by (topic, id),
    /// after the (topic, id) `after`, at most `limit`.
    pub fn list_subscriptions(
        &self,
        topic: Option<&str>,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Vec<Subscription> {
        let mut all: Vec<Arc<Subscription>> = lock(&self.0.subs)
            .values()
            .map(|h| h.get())
            .filter(|s| s.state != SubscriptionState::Deleted)
            .filter(|s| topic.is_none_or(|t| s.topic == t))
            .filter(|s| after.is_none_or(|(t, i)| (s.topic.as_str(), s.id.as_str()) > (t, i)))
            .collect();
        all.sort_by(|a, b| (&a.topic, &a.id).cmp(&(&b.topic, &b.id)));
        all.into_iter().take(limit).map(|s| (*s).clone()).collect()
    }

    /// Sets (or, with an empty value, removes) a subscription attribute.
    pub fn set_subscription_attribute(&self, id: &str, key: &str, value: &str) -> Result<()> {
        let _g = lock(&self.0.control);
        let h = self.handle(id)?;
        let mut s = (*h.get()).clone();
        if s.state == SubscriptionState::Deleted {
            return Err(Error::SubscriptionNotFound(id.to_owned()));
        }
        let scope = if key == "FilterPolicyScope" {
            Some(value)
        } else {
            s.attributes.get("FilterPolicyScope").map(String::as_str)
        };
        if value.is_empty() && matches!(key, "FilterPolicy" | "DeliveryPolicy") {
            s.attributes.remove(key);
        } else {
            check_subscription_attribute(key, value, scope)?;
            // A new scope must fit the filter there is.
            if key == "FilterPolicyScope"
                && let Some(f) = s.attributes.get("FilterPolicy")
            {
                check_subscription_attribute("FilterPolicy", f, scope)?;
            }
            s.attributes.insert(key.to_owned(), value.to_owned());
        }
        self.put_subscription(&s)?;
        h.set(s);
        h.changed();
        Ok(())
    }

    /// Unsubscribes. An HTTP/S endpoint is sent an unsubscribe confirmation whose token
    /// subscribes it again (for [`TOKEN_TTL_MS`]).
    pub fn unsubscribe(&self, id: &str) -> Result<()> {
        let _g = lock(&self.0.control);
        let h = self.handle(id)?;
        let mut s = (*h.get()).clone();
        if s.state == SubscriptionState::Deleted {
            return Err(Error::SubscriptionNotFound(id.to_owned()));
        }
        let (_, meta) = self.group_of(&s.topic)?;
        let was_confirmed = s.state == SubscriptionState::Confirmed;
        s.state = SubscriptionState::Deleted;
        s.token = Some(new_token());
        s.token_expires_ms = self.now_ms().saturating_add(TOKEN_TTL_MS);
        // The durable change first: if it fails, nothing changed and deliveries go on.
        self.put_subscription(&s)?;
        h.set(s);
        h.stop(false);
        h.join_blocking(&self.0.runtime);
        // A cursor left by a failure here is overwritten by the next confirmation.
        if let Err(e) = self.0.store.delete_document(CURSOR_KIND, id) {
            tracing::warn!(subscription = id, "deleting its delivery cursor: {e}");
        }
        self.0.stats.remove(id);
        if was_confirmed {
            self.send_control(&meta, &h, DeliveryKind::UnsubscribeConfirmation);
        }
        Ok(())
    }

    /// Publishes messages to a topic; their ids, once they are durable (in the order given).
    pub async fn publish(&self, topic: &str, messages: Vec<NewMessage>) -> Result<Vec<String>> {
        let (group, _) = self.group_of(topic)?;
        let now = self.now_ms();
        let mut ids = Vec::with_capacity(messages.len());
        let mut entries = Vec::with_capacity(messages.len());
        for m in messages {
            let id = new_uuid();
            let msg = Message {
                id: id.clone(),
                subject: m.subject,
                body: m.body,
                per_protocol: m.per_protocol,
                attributes: m.attributes,
                timestamp_ms: now,
            };
            let data = serde_json::to_vec(&msg).map_err(|e| Error::Invalid(e.to_string()))?;
            entries.push(NewEntry {
                key: Bytes::from(id.clone().into_bytes()),
                data: Bytes::from(data),
            });
            ids.push(id);
        }
        if entries.is_empty() {
            return Ok(ids);
        }
        let append = self.0.store.append_log(group, MESSAGES_LOG, &entries)?;
        append.wait().await?;
        self.0.stats.published(entries.len());
        Ok(ids)
    }

    /// Dead letters of a topic from `from` on, at most `limit`, and where the next page
    /// starts. Blocking.
    pub fn dead_letters(
        &self,
        topic: &str,
        from: Position,
        limit: usize,
    ) -> Result<(Vec<DeadLetter>, Position)> {
        let (group, _) = self.group_of(topic)?;
        let entries = self
            .0
            .store
            .read_log(group, DEAD_LETTERS_LOG, from, limit, 4 << 20)?;
        let next = entries.last().map_or(from, |e| e.position.next());
        let letters = entries
            .iter()
            .filter_map(|e| serde_json::from_slice::<DeadLetter>(&e.data).ok())
            .collect();
        Ok((letters, next))
    }
}
