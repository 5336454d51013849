//! The engine through its public calls, with a transport that records what it is given and
//! answers as a test tells it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vigil_store::{Store, StoreConfig, SystemClock};

use crate::deliver::BoxFuture;
use crate::{
    Delivery, DeliveryKind, MessageAttribute, NewMessage, NewSubscription, Outcome, Protocol,
    SubscriptionState, Topics, TopicsConfig, Transport,
};

/// What the fake endpoint answers next (the last entry repeats).
#[derive(Debug, Default)]
struct Fake {
    answers: Mutex<Vec<Outcome>>,
    seen: Mutex<Vec<(String, DeliveryKind)>>,
    /// Messages with this body always fail.
    failing: Mutex<Option<String>>,
}

impl Fake {
    fn answering(answers: Vec<Outcome>) -> Arc<Self> {
        Arc::new(Self {
            answers: Mutex::new(answers),
            seen: Mutex::default(),
            failing: Mutex::default(),
        })
    }

    fn notifications(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(_, k)| match k {
                DeliveryKind::Notification(m) => Some(m.body.clone()),
                _ => None,
            })
            .collect()
    }

    fn token(&self) -> Option<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(_, k)| !matches!(k, DeliveryKind::Notification(_)))
            .map(|(t, _)| t.clone())
    }
}

impl Transport for Fake {
    fn deliver(&self, d: Delivery) -> BoxFuture<Outcome> {
        let token = d.subscription.token.clone().unwrap_or_default();
        self.seen.lock().unwrap().push((token, d.kind.clone()));
        if let DeliveryKind::Notification(m) = &d.kind
            && self.failing.lock().unwrap().as_deref() == Some(m.body.as_str())
        {
            return Box::pin(async { Outcome::Failed("HTTP 500".into()) });
        }
        let mut a = self.answers.lock().unwrap();
        let out = if a.len() > 1 {
            a.remove(0)
        } else {
            a.first().cloned().unwrap_or(Outcome::Delivered)
        };
        Box::pin(async move { out })
    }
}

fn open(dir: &std::path::Path) -> Store {
    let mut cfg = StoreConfig::new(dir);
    cfg.min_free_bytes = 0;
    Store::open(cfg, Arc::new(SystemClock)).unwrap()
}

fn topics(store: &Store, t: Arc<Fake>) -> Topics {
    let topics = Topics::open(store.clone(), t, TopicsConfig::default()).unwrap();
    topics.start().unwrap();
    topics
}

fn sub(attributes: &[(&str, &str)]) -> NewSubscription {
    NewSubscription {
        protocol: Protocol::Http,
        endpoint: "http://127.0.0.1:9/hook".into(),
        owner: "000000000000".into(),
        attributes: attributes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        base_url: "http://127.0.0.1:4566".into(),
    }
}

fn msg(body: &str, kind: Option<&str>) -> NewMessage {
    let mut attributes = BTreeMap::new();
    if let Some(k) = kind {
        attributes.insert(
            "kind".to_owned(),
            MessageAttribute {
                data_type: "String".into(),
                string_value: Some(k.into()),
                binary_value: None,
            },
        );
    }
    NewMessage {
        body: body.into(),
        attributes,
        ..NewMessage::default()
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// Waits until `f` holds (at most 20 s).
async fn until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..400 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Makes a topic and a confirmed subscription to it.
async fn subscribed(
    t: &Topics,
    fake: &Arc<Fake>,
    attrs: &[(&'static str, &'static str)],
) -> String {
    let t2 = t.clone();
    let attrs: Vec<(&'static str, &'static str)> = attrs.to_vec();
    let s = blocking(move || {
        t2.create_topic("alerts", BTreeMap::new(), BTreeMap::new())
            .unwrap();
        t2.subscribe("alerts", sub(&attrs)).unwrap()
    })
    .await;
    assert_eq!(s.subscription.state, SubscriptionState::Pending);
    until("the confirmation", || fake.token().is_some()).await;
    let token = fake.token().unwrap();
    let t2 = t.clone();
    let c = blocking(move || t2.confirm("alerts", &token, false).unwrap()).await;
    assert_eq!(c.state, SubscriptionState::Confirmed);
    c.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_subscription_gets_every_message_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let fake = Fake::answering(vec![Outcome::Delivered]);
    let t = topics(&store, fake.clone());
    // Before any subscription is confirmed, nothing is delivered.
    let t2 = t.clone();
    blocking(move || {
        t2.create_topic("alerts", BTreeMap::new(), BTreeMap::new())
            .unwrap()
    })
    .await;
    t.publish("alerts", vec![msg("early", None)]).await.unwrap();
    subscribed(&t, &fake, &[]).await;
    let mut batch = Vec::new();
    for i in 0..50 {
        batch.push(msg(&format!("m{i}"), None));
    }
    let ids = t.publish("alerts", batch).await.unwrap();
    assert_eq!(ids.len(), 50);
    until("50 deliveries", || fake.notifications().len() >= 50).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut got = fake.notifications();
    got.sort();
    let mut want: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
    want.sort();
    assert_eq!(
        got, want,
        "each message once, and not the one before the confirmation"
    );
    let info = t.topic("alerts").unwrap();
    assert_eq!((info.confirmed, info.pending), (1, 0));
    let t2 = t.clone();
    blocking(move || t2.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_then_dead_lettered_and_refusals_are_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let fail = || Outcome::Failed("HTTP 503".into());
    // Confirmation, then: fail, fail, deliver (retried); then fail x3 (dead); then 4xx.
    let fake = Fake::answering(vec![
        Outcome::Delivered,
        fail(),
        fail(),
        Outcome::Delivered,
        fail(),
        fail(),
        fail(),
        Outcome::Rejected("HTTP 403".into()),
        Outcome::Delivered,
    ]);
    let t = topics(&store, fake.clone());
    let policy =
        r#"{"healthyRetryPolicy": {"minDelayTarget": 1, "maxDelayTarget": 1, "numRetries": 2}}"#;
    let id = subscribed(&t, &fake, &[("DeliveryPolicy", policy)]).await;
    t.publish("alerts", vec![msg("retried", None)])
        .await
        .unwrap();
    until("the retried message", || {
        fake.notifications()
            .iter()
            .filter(|m| *m == "retried")
            .count()
            == 3
    })
    .await;
    t.publish("alerts", vec![msg("dead", None)]).await.unwrap();
    let stats = t.stats().of(&id, "alerts");
    until("the dead letter", || {
        stats
            .dead_letters
            .load(std::sync::atomic::Ordering::Relaxed)
            == 1
    })
    .await;
    assert_eq!(
        fake.notifications().iter().filter(|m| *m == "dead").count(),
        3
    );
    t.publish("alerts", vec![msg("refused", None)])
        .await
        .unwrap();
    until("the refusal", || {
        fake.notifications().iter().any(|m| m == "refused")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        fake.notifications()
            .iter()
            .filter(|m| *m == "refused")
            .count(),
        1,
        "a 4xx is not retried"
    );
    let t2 = t.clone();
    let (letters, _) = blocking(move || {
        t2.dead_letters("alerts", vigil_store::Position::MIN, 10)
            .unwrap()
    })
    .await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].message.body, "dead");
    assert_eq!(letters[0].attempts, 3);
    assert_eq!(letters[0].reason, "HTTP 503");
    let t2 = t.clone();
    blocking(move || t2.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_policy_lets_through_what_matches() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let fake = Fake::answering(vec![Outcome::Delivered]);
    let t = topics(&store, fake.clone());
    let id = subscribed(&t, &fake, &[("FilterPolicy", r#"{"kind": ["unknown"]}"#)]).await;
    t.publish(
        "alerts",
        vec![
            msg("a stranger", Some("unknown")),
            msg("a resident", Some("known")),
            msg("no attributes", None),
        ],
    )
    .await
    .unwrap();
    let stats = t.stats().of(&id, "alerts");
    until("the filtered ones", || {
        stats.filtered.load(std::sync::atomic::Ordering::Relaxed) == 2
    })
    .await;
    until("the delivery", || !fake.notifications().is_empty()).await;
    assert_eq!(fake.notifications(), ["a stranger"]);
    // A bad policy is refused, and the one there stays.
    let t2 = t.clone();
    let id2 = id.clone();
    let err = blocking(move || {
        t2.set_subscription_attribute(&id2, "FilterPolicy", r#"{"kind": "unknown"}"#)
    })
    .await;
    assert!(matches!(err, Err(crate::Error::Invalid(_))), "{err:?}");
    let t2 = t.clone();
    blocking(move || t2.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_being_retried_at_a_stop_is_delivered_once_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let fake = Fake::answering(vec![Outcome::Delivered, Outcome::Failed("down".into())]);
    let t = topics(&store, fake.clone());
    let policy =
        r#"{"healthyRetryPolicy": {"minDelayTarget": 1, "maxDelayTarget": 1, "numRetries": 100}}"#;
    subscribed(&t, &fake, &[("DeliveryPolicy", policy)]).await;
    t.publish(
        "alerts",
        vec![msg("pending", None), msg("pending too", None)],
    )
    .await
    .unwrap();
    until("a failed attempt", || fake.notifications().len() >= 2).await;
    let t2 = t.clone();
    blocking(move || t2.shutdown()).await;
    drop(t);
    let s2 = store.clone();
    blocking(move || s2.close().unwrap()).await;
    drop(store);

    let store = open(dir.path());
    let fake = Fake::answering(vec![Outcome::Delivered]);
    let t = topics(&store, fake.clone());
    until("the deliveries after the restart", || {
        fake.notifications().len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut got = fake.notifications();
    got.sort();
    assert_eq!(got, ["pending", "pending too"]);
    let t2 = t.clone();
    blocking(move || t2.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribing_stops_deliveries_and_its_token_subscribes_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let fake = Fake::answering(vec![Outcome::Delivered]);
    let t = topics(&store, fake.clone());
    let id = subscribed(&t, &fake, &[]).await;
    let before = fake.seen.lock().unwrap().len();
    let t2 = t.clone();
    let id2 = id.clone();
    blocking(move || t2.unsubscribe(&id2).unwrap()).await;
    until("the unsubscribe confirmation", || {
        fake.seen.lock().unwrap().len() > before
    })
    .await;
    assert!(matches!(
        fake.seen.lock().unwrap().last().unwrap().1,
        DeliveryKind::UnsubscribeConfirmation
    ));
    assert!(t.subscription(&id).is_err());
    assert_eq!(t.topic("alerts").unwrap().deleted, 1);
    t.publish("alerts", vec![msg("after", None)]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(fake.notifications().is_empty());
    // The unsubscribe confirmation's token subscribes it again.
    let token = fake.token().unwrap();
    let t2 = t.clone();
    blocking(move || t2.confirm("alerts", &token, false).unwrap()).await;
    t.publish("alerts", vec![msg("again", None)]).await.unwrap();
    until("the delivery", || !fake.notifications().is_empty()).await;
    assert_eq!(fake.notifications(), ["again"]);
    // A token is good once.
    let token = "0".repeat(128);
    let t2 = t.clone();
    assert!(
        blocking(move || t2.confirm("alerts", &token, false))
            .await
            .is_err()
    );
    // Deleting the topic takes its subscriptions.
    let t2 = t.clone();
    blocking(move || t2.delete_topic("alerts").unwrap()).await;
    assert!(t.subscription(&id).is_err());
    assert!(t.topic("alerts").is_err());
    assert!(t.list_subscriptions(None, None, 10).is_empty());
    let t2 = t.clone();
    blocking(move || t2.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_topic_is_idempotent_and_its_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = topics(&store, Fake::answering(vec![Outcome::Delivered]));
    let t2 = t.clone();
    blocking(move || {
        let mut a = BTreeMap::new();
        a.insert("DisplayName".to_owned(), "Door".to_owned());
        t2.create_topic("door", a.clone(), BTreeMap::new()).unwrap();
        t2.create_topic("door", a, BTreeMap::new()).unwrap();
        let mut other = BTreeMap::new();
        other.insert("DisplayName".to_owned(), "Gate".to_owned());
        assert!(t2.create_topic("door", other, BTreeMap::new()).is_err());
        t2.tag_topic("door", &[("room".into(), "hall".into())], 50)
            .unwrap();
        t2.set_topic_attribute("door", "SignatureVersion", "2")
            .unwrap();
        assert!(
            t2.set_topic_attribute("door", "SignatureVersion", "3")
                .is_err()
        );
        t2.subscribe("door", sub(&[])).unwrap();
        t2.shutdown();
    })
    .await;
    drop(t);
    let s2 = store.clone();
    blocking(move || s2.close().unwrap()).await;
    drop(store);
    let store = open(dir.path());
    let t = topics(&store, Fake::answering(vec![Outcome::Delivered]));
    let info = t.topic("door").unwrap();
    assert_eq!(info.meta.attributes.get("DisplayName").unwrap(), "Door");
    assert_eq!(info.meta.attributes.get("SignatureVersion").unwrap(), "2");
    assert_eq!(info.meta.tags.get("room").unwrap(), "hall");
    assert_eq!(info.pending, 1);
    assert_eq!(t.list_topics(None, 10), ["door"]);
    let t2 = t.clone();
    blocking(move || t2.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_being_retried_does_not_hold_back_the_ones_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let fake = Fake::answering(vec![Outcome::Delivered]);
    let t = topics(&store, fake.clone());
    let policy = r#"{"healthyRetryPolicy": {"minDelayTarget": 60, "maxDelayTarget": 60, "numRetries": 50}, "throttlePolicy": {"maxReceivesPerSecond": 1000}}"#;
    let id = subscribed(&t, &fake, &[("DeliveryPolicy", policy)]).await;
    *fake.failing.lock().unwrap() = Some("stuck".into());
    t.publish("alerts", vec![msg("stuck", None)]).await.unwrap();
    until("the first attempt", || !fake.notifications().is_empty()).await;
    // Far more than the window (64) after it: all delivered while it waits a minute, and
    // neither the window nor the throttle is held by it.
    for chunk in 0..5 {
        let batch = (0..50)
            .map(|i| msg(&format!("m{chunk}-{i}"), None))
            .collect();
        t.publish("alerts", batch).await.unwrap();
    }
    let stats = t.stats().of(&id, "alerts");
    until("250 deliveries behind the stuck one", || {
        stats.delivered.load(std::sync::atomic::Ordering::Relaxed) == 250
    })
    .await;
    assert_eq!(
        stats.in_flight.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    let t2 = t.clone();
    blocking(move || t2.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribing_again_resends_a_confirmation_at_most_once_a_minute() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let fake = Fake::answering(vec![Outcome::Delivered]);
    let t = topics(&store, fake.clone());
    let t2 = t.clone();
    let (first, again) = blocking(move || {
        t2.create_topic("alerts", BTreeMap::new(), BTreeMap::new())
            .unwrap();
        let first = t2.subscribe("alerts", sub(&[])).unwrap();
        let mut again = Vec::new();
        for _ in 0..20 {
            again.push(t2.subscribe("alerts", sub(&[])).unwrap());
        }
        (first, again)
    })
    .await;
    assert!(
        again
            .iter()
            .all(|s| s.existed && s.subscription.id == first.subscription.id)
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        fake.seen.lock().unwrap().len(),
        1,
        "one confirmation, not 21"
    );
    let t2 = t.clone();
    blocking(move || t2.shutdown()).await;
}
