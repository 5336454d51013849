//! What the engine keeps and hands out: topics, subscriptions, messages and their attributes.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A message attribute, as SNS defines them: a data type (`String`, `Number`, `Binary`,
/// `String.Array`, optionally followed by `.` and a custom label, as in `Number.float`) and a
/// string or binary value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageAttribute {
    /// The data type, as the publisher sent it (`String`, `Number.int`, `String.Array`, ...).
    pub data_type: String,
    /// The value of `String`, `Number` and `String.Array` attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_value: Option<String>,
    /// The value of `Binary` attributes.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_bytes")]
    pub binary_value: Option<Bytes>,
}

impl MessageAttribute {
    /// The base data type: `String`, `Number`, `Binary` or `String.Array` (without the custom
    /// label a publisher may append: `Number.float` is `Number`).
    pub fn base_type(&self) -> &str {
        let t = self.data_type.as_str();
        if t == "String.Array" || t.starts_with("String.Array.") {
            return "String.Array";
        }
        t.split('.').next().unwrap_or(t)
    }
}

/// Message attributes by name.
pub type Attributes = BTreeMap<String, MessageAttribute>;

mod opt_bytes {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Bytes>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_some(&hex(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Bytes>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        match s {
            None => Ok(None),
            Some(s) => unhex(&s)
                .map(|b| Some(Bytes::from(b)))
                .ok_or_else(|| serde::de::Error::custom("bad hex")),
        }
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn unhex(s: &str) -> Option<Vec<u8>> {
        if !s.len().is_multiple_of(2) {
            return None;
        }
        (0..s.len())
            .step_by(2)
            .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
            .collect()
    }
}

/// The format version of what this module persists.
pub const META_VERSION: u32 = 1;

/// A topic, as kept in its log group's attributes (key [`TOPIC_ATTRIBUTE`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    /// [`META_VERSION`].
    pub v: u32,
    /// Its name.
    pub name: String,
    /// The attributes a caller set (`DisplayName`, `Policy`, `DeliveryPolicy`,
    /// `SignatureVersion`, `KmsMasterKeyId`, `TracingConfig`, ...), verbatim.
    pub attributes: BTreeMap<String, String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// When it was created (ms since the epoch).
    pub created_ms: u64,
}

/// The log group attribute that holds a topic's [`TopicMeta`].
pub const TOPIC_ATTRIBUTE: &str = "topic";

/// A topic and what it holds.
#[derive(Debug, Clone)]
pub struct TopicInfo {
    /// What the topic is.
    pub meta: TopicMeta,
    /// Confirmed subscriptions.
    pub confirmed: u64,
    /// Subscriptions waiting for their endpoint's confirmation.
    pub pending: u64,
    /// Subscriptions unsubscribed, still able to be confirmed again (for
    /// [`crate::engine::TOKEN_TTL_MS`]).
    pub deleted: u64,
}

/// How a subscription delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// An HTTP POST.
    Http,
    /// An HTTPS POST.
    Https,
    /// A mail with the message as its text.
    Email,
    /// A mail with SNS's JSON document as its text.
    EmailJson,
}

impl Protocol {
    /// SNS's name of the protocol (`Subscribe`'s `Protocol`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
            Self::Email => "email",
            Self::EmailJson => "email-json",
        }
    }

    /// Whether it delivers by mail (SMTP), whose retries SNS fixes.
    pub fn is_email(self) -> bool {
        matches!(self, Self::Email | Self::EmailJson)
    }

    /// From SNS's name (case-insensitive, as SNS takes it).
    pub fn from_name(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "http" => Some(Self::Http),
            "https" => Some(Self::Https),
            "email" => Some(Self::Email),
            "email-json" => Some(Self::EmailJson),
            _ => None,
        }
    }
}

/// Where a subscription is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionState {
    /// Waiting for its endpoint to confirm (with the token it was sent); gets nothing yet.
    Pending,
    /// Confirmed: receives what the topic publishes from its confirmation on.
    Confirmed,
    /// Unsubscribed; its endpoint was sent a token that subscribes it again.
    Deleted,
}

/// A subscription (a store document of kind [`SUBSCRIPTION_KIND`], named by its id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// [`META_VERSION`].
    pub v: u32,
    /// Its id (a UUID; the API's ARN is the topic's ARN, `:`, the id).
    pub id: String,
    /// Its topic's name.
    pub topic: String,
    /// How it delivers.
    pub protocol: Protocol,
    /// Where (a URL for HTTP/S).
    pub endpoint: String,
    /// The account that subscribed.
    pub owner: String,
    /// The attributes a caller set (`FilterPolicy`, `FilterPolicyScope`,
    /// `RawMessageDelivery`, `DeliveryPolicy`, `RedrivePolicy`), verbatim.
    pub attributes: BTreeMap<String, String>,
    /// Where it is in its life.
    pub state: SubscriptionState,
    /// The token its endpoint confirms with (pending, deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// When the token stops being valid (ms).
    #[serde(default)]
    pub token_expires_ms: u64,
    /// Whether `Unsubscribe` needs a signed call (ConfirmSubscription's
    /// `AuthenticateOnUnsubscribe`).
    #[serde(default)]
    pub authenticate_on_unsubscribe: bool,
    /// The URL the subscriber reached the server at, from which the links of its deliveries
    /// (confirmation, unsubscribe, signing certificate) are made.
    pub base_url: String,
    /// When it was made (ms).
    pub created_ms: u64,
}

impl Subscription {
    /// The endpoint as logs show it: scheme, host and port only (a URL's user, password,
    /// path and query may carry secrets).
    pub fn endpoint_for_logs(&self) -> String {
        let e = self.endpoint.as_str();
        let (scheme, rest) = e.split_once("://").unwrap_or(("", e));
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        format!("{scheme}://{host}")
    }
}

/// The document kind of subscriptions.
pub const SUBSCRIPTION_KIND: &str = "sns-subscription";
/// The document kind of delivery cursors (named by subscription id).
pub const CURSOR_KIND: &str = "sns-cursor";

/// A published message, as kept in its topic's log (entry key: its id; data: this, as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Its id (a UUID).
    pub id: String,
    /// Its subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Its body (with `MessageStructure=json`, the `default` member).
    pub body: String,
    /// With `MessageStructure=json`: the body per protocol (`http`, `https`, ...), when the
    /// publisher gave one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub per_protocol: BTreeMap<String, String>,
    /// Its attributes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: Attributes,
    /// When it was published (ms).
    pub timestamp_ms: u64,
}

impl Message {
    /// The body a subscription of `protocol` gets.
    pub fn body_for(&self, protocol: Protocol) -> &str {
        self.per_protocol
            .get(protocol.name())
            .map_or(self.body.as_str(), String::as_str)
    }
}

/// A message a delivery gave up on, as kept in its topic's dead-letter log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The subscription's id.
    pub subscription: String,
    /// Its endpoint.
    pub endpoint: String,
    /// The message.
    pub message: Message,
    /// Attempts made.
    pub attempts: u32,
    /// The last attempt's failure.
    pub reason: String,
    /// When it was given up (ms).
    pub at_ms: u64,
}
