//! Vigil's topics: publish/subscribe with the semantics of Amazon SNS (API 2010-03-31), and no
//! HTTP or wire format (those are `vigil-api-sns`'s).
//!
//! - [`engine`]: [`Topics`]: topics (create, attributes, tags, delete), subscriptions
//!   (subscribe, confirm with a token, attributes, unsubscribe), publish (durable before it
//!   returns), dead letters.
//! - [`deliver`]: each confirmed subscription's delivery task, through a [`Transport`] the
//!   API layer gives (it owns the envelope, the signature and HTTP).
//! - [`filter`]: subscription filter policies (attributes or body scope).
//! - [`retry`]: delivery policies: the retry schedule, throttling, content type.
//! - [`attributes`]: the attributes a caller may set, checked.
//! - [`model`]: what is kept: topics, subscriptions, messages, dead letters.
//! - [`stats`]: delivery figures per subscription, for metrics.

pub mod attributes;
pub mod deliver;
pub mod engine;
pub mod error;
pub mod filter;
pub mod model;
pub mod retry;
pub mod stats;

pub use deliver::{Delivery, DeliveryKind, Outcome, Transport};
pub use engine::{NewMessage, NewSubscription, Subscribed, Topics, TopicsConfig};
pub use error::{Error, Result};
pub use model::{
    Attributes, DeadLetter, Message, MessageAttribute, Protocol, Subscription, SubscriptionState,
    TopicInfo, TopicMeta,
};

#[cfg(test)]
mod tests;
