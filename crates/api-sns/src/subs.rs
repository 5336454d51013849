//! Subscription operations: subscribe, confirm, unsubscribe, list, attributes.

use std::collections::BTreeMap;

use vigil_topics::{NewSubscription, Subscription, SubscriptionState};

use crate::error::{SnsError, SnsResult, invalid};
use crate::query::Xml;
use crate::service::Call;
use crate::topics::default_delivery_policy;
use crate::validate;

/// Subscriptions per list page (SNS's).
const SUBS_PAGE: usize = 100;
const MAX_TOKEN: usize = 1024;

/// What `Subscribe` answers for a subscription its endpoint has not confirmed.
const PENDING: &str = "pending confirmation";

fn arn_or_pending(call: &Call, s: &Subscription) -> String {
    if s.state == SubscriptionState::Pending {
        "PendingConfirmation".to_owned()
    } else {
        call.state.subscription_arn(&s.topic, &s.id)
    }
}

/// The subscription `SubscriptionArn` names, the caller authorised for its topic (an unsigned
/// caller, following an unsubscribe link, is not checked here).
fn subscription(call: &Call) -> SnsResult<Subscription> {
    let arn = call.required("SubscriptionArn")?;
    let (topic, id) =
        validate::subscription_arn(arn, &call.state.cfg.region, &call.state.cfg.account_id)?;
    if call.principal.is_some() {
        call.authorize(Some(&topic))?;
    }
    let s = call
        .engine()
        .subscription(&id)
        .map_err(|e| call.engine_error(e))?;
    if s.topic != topic {
        return Err(SnsError::NotFoundException(
            "Subscription does not exist".into(),
        ));
    }
    Ok(s)
}

pub(crate) fn subscribe(call: &Call, rid: &str) -> SnsResult<String> {
    let topic = call.topic("TopicArn")?;
    // The confirmation is signed: have the key (made on the first subscription).
    call.state
        .signer
        .get()
        .map_err(|e| SnsError::InternalErrorException(e.to_string()))?;
    let protocol = call.required("Protocol")?;
    let (protocol, endpoint) =
        validate::endpoint(protocol, call.form.get("Endpoint"), call.state.email)?;
    let attributes = call
        .form
        .map("Attributes", "key", "value", 20)
        .map_err(invalid)?;
    // As SNS: only HTTP/S takes a delivery policy, and raw delivery is not for mail.
    if protocol.is_email() {
        for a in ["DeliveryPolicy", "RawMessageDelivery"] {
            if attributes.contains_key(a) {
                return Err(invalid(format!(
                    "Attributes: {a} is not valid for protocol {}",
                    protocol.name()
                )));
            }
        }
    }
    let return_arn = call
        .form
        .get("ReturnSubscriptionArn")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let done = call
        .engine()
        .subscribe(
            &topic,
            NewSubscription {
                protocol,
                endpoint,
                owner: call.state.cfg.account_id.clone(),
                attributes,
                base_url: call.base_url.clone(),
            },
        )
        .map_err(|e| call.engine_error(e))?;
    let s = &done.subscription;
    let arn = if s.state == SubscriptionState::Pending && !return_arn {
        PENDING.to_owned()
    } else {
        call.state.subscription_arn(&s.topic, &s.id)
    };
    let mut x = Xml::new("Subscribe");
    x.elem("SubscriptionArn", &arn);
    Ok(x.finish(rid))
}

pub(crate) fn confirm_subscription(call: &Call, rid: &str) -> SnsResult<String> {
    let arn = call.required("TopicArn")?;
    let topic = validate::topic_arn(
        arn,
        "TopicArn",
        &call.state.cfg.region,
        &call.state.cfg.account_id,
    )?;
    // The token is the credential of an unsigned confirmation; a signed one is checked too.
    if call.principal.is_some() {
        call.authorize(Some(&topic))?;
    }
    let token = call.required("Token")?;
    if token.is_empty() || token.len() > 2048 {
        return Err(invalid("Token"));
    }
    let authenticate = call
        .form
        .get("AuthenticateOnUnsubscribe")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let s = call
        .engine()
        .confirm(&topic, token, authenticate && call.principal.is_some())
        .map_err(|e| call.engine_error(e))?;
    let mut x = Xml::new("ConfirmSubscription");
    x.elem(
        "SubscriptionArn",
        &call.state.subscription_arn(&s.topic, &s.id),
    );
    Ok(x.finish(rid))
}

pub(crate) fn unsubscribe(call: &Call, rid: &str) -> SnsResult<String> {
    let s = subscription(call)?;
    if call.principal.is_none() && s.authenticate_on_unsubscribe {
        return Err(SnsError::AuthorizationErrorException(
            "This subscription was confirmed with AuthenticateOnUnsubscribe: unsubscribing \
             needs a signed request"
                .into(),
        ));
    }
    call.engine()
        .unsubscribe(&s.id)
        .map_err(|e| call.engine_error(e))?;
    Ok(Xml::finish_without_result("Unsubscribe", rid))
}

fn list(call: &Call, rid: &str, topic: Option<&str>, op: &str) -> SnsResult<String> {
    let after = match call.form.get("NextToken") {
        Some(t) => {
            let cursor = call
                .state
                .cfg
                .tokens
                .open_str(op, t, MAX_TOKEN)
                .ok_or_else(|| invalid("NextToken"))?;
            let (t, id) = cursor
                .split_once(' ')
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .ok_or_else(|| invalid("NextToken"))?;
            Some((t, id))
        }
        None => None,
    };
    let subs = call.engine().list_subscriptions(
        topic,
        after.as_ref().map(|(t, i)| (t.as_str(), i.as_str())),
        SUBS_PAGE + 1,
    );
    let more = subs.len() > SUBS_PAGE;
    let mut x = Xml::new(op);
    x.open("Subscriptions");
    for s in subs.iter().take(SUBS_PAGE) {
        x.open("member");
        x.elem("SubscriptionArn", &arn_or_pending(call, s));
        x.elem("Owner", &s.owner);
        x.elem("Protocol", s.protocol.name());
        x.elem("Endpoint", &s.endpoint);
        x.elem("TopicArn", &call.state.topic_arn(&s.topic));
        x.close("member");
    }
    x.close("Subscriptions");
    if more && let Some(last) = subs.get(SUBS_PAGE - 1) {
        let cursor = format!("{} {}", last.topic, last.id);
        x.elem("NextToken", &call.state.cfg.tokens.seal_str(op, &cursor));
    }
    Ok(x.finish(rid))
}

pub(crate) fn list_subscriptions(call: &Call, rid: &str) -> SnsResult<String> {
    call.authorize(None)?;
    list(call, rid, None, "ListSubscriptions")
}

pub(crate) fn list_subscriptions_by_topic(call: &Call, rid: &str) -> SnsResult<String> {
    let topic = call.topic("TopicArn")?;
    call.engine()
        .topic(&topic)
        .map_err(|e| call.engine_error(e))?;
    list(call, rid, Some(&topic), "ListSubscriptionsByTopic")
}

pub(crate) fn get_subscription_attributes(call: &Call, rid: &str) -> SnsResult<String> {
    let s = subscription(call)?;
    let mut attrs: BTreeMap<String, String> = BTreeMap::new();
    attrs.insert(
        "SubscriptionArn".into(),
        call.state.subscription_arn(&s.topic, &s.id),
    );
    attrs.insert("TopicArn".into(), call.state.topic_arn(&s.topic));
    attrs.insert("Owner".into(), s.owner.clone());
    attrs.insert("Protocol".into(), s.protocol.name().into());
    attrs.insert("Endpoint".into(), s.endpoint.clone());
    attrs.insert(
        "PendingConfirmation".into(),
        (s.state == SubscriptionState::Pending).to_string(),
    );
    attrs.insert(
        "ConfirmationWasAuthenticated".into(),
        s.authenticate_on_unsubscribe.to_string(),
    );
    attrs.insert("RawMessageDelivery".into(), "false".into());
    for (k, v) in &s.attributes {
        attrs.insert(k.clone(), v.clone());
    }
    if s.attributes.contains_key("FilterPolicy") && !s.attributes.contains_key("FilterPolicyScope")
    {
        attrs.insert("FilterPolicyScope".into(), "MessageAttributes".into());
    }
    let topic = call
        .engine()
        .topic(&s.topic)
        .map_err(|e| call.engine_error(e))?;
    let topic_policy = topic.meta.attributes.get("DeliveryPolicy");
    // A topic that disables subscription overrides applies its own, as the engine does.
    let overridden = topic_policy
        .and_then(|p| vigil_topics::retry::TopicDeliveryPolicy::parse(p).ok())
        .is_some_and(|p| p.disable_subscription_overrides);
    let effective = match (
        s.attributes.get("DeliveryPolicy").filter(|_| !overridden),
        topic_policy,
    ) {
        (Some(p), _) => effective_from_subscription(p),
        (None, Some(p)) => p.clone(),
        (None, None) => default_delivery_policy(),
    };
    attrs.insert("EffectiveDeliveryPolicy".into(), effective);
    let mut x = Xml::new("GetSubscriptionAttributes");
    x.map("Attributes", attrs.iter());
    Ok(x.finish(rid))
}

/// A subscription's own policy as SNS shows it in `EffectiveDeliveryPolicy`.
fn effective_from_subscription(p: &str) -> String {
    p.to_owned()
}

pub(crate) fn set_subscription_attributes(call: &Call, rid: &str) -> SnsResult<String> {
    let s = subscription(call)?;
    let key = call.required("AttributeName")?;
    let value = call.form.get("AttributeValue").unwrap_or_default();
    if s.protocol.is_email() && matches!(key, "DeliveryPolicy" | "RawMessageDelivery") {
        return Err(invalid(format!(
            "AttributeName: {key} is not valid for protocol {}",
            s.protocol.name()
        )));
    }
    call.engine()
        .set_subscription_attribute(&s.id, key, value)
        .map_err(|e| call.engine_error(e))?;
    Ok(Xml::finish_without_result("SetSubscriptionAttributes", rid))
}
