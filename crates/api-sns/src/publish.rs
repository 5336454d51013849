//! Publishing: `Publish`, `PublishBatch`, and Vigil's `ListDeadLetters`.
//!
//! A message is durable in its topic's log when its `MessageId` is returned (the topics
//! engine's contract); a batch's entries are appended together, each checked on its own
//! first, so that a batch answers per entry as SNS does.

use std::collections::{BTreeMap, BTreeSet};

use vigil_store::Position;
use vigil_topics::NewMessage;

use crate::error::{SnsError, SnsResult, invalid};
use crate::query::{Form, Xml};
use crate::service::Call;
use crate::validate;

/// A message of a Publish, or of a batch entry, checked.
fn message(form: &Form) -> SnsResult<NewMessage> {
    if form.get("PhoneNumber").is_some() {
        return Err(invalid(
            "PhoneNumber: Vigil does not send SMS (see docs/compatibility.md)",
        ));
    }
    if form.get("MessageDeduplicationId").is_some() {
        return Err(invalid(
            "MessageDeduplicationId Reason: The request includes MessageDeduplicationId \
             parameter that is not valid for this topic type",
        ));
    }
    let body = form.get("Message").unwrap_or_default();
    if body.is_empty() {
        return Err(invalid("Empty message"));
    }
    let subject = form.get("Subject").map(str::to_owned);
    if let Some(s) = &subject {
        validate::subject(s)?;
    }
    let attributes = validate::message_attributes(
        form.message_attributes("MessageAttributes", 100)
            .map_err(invalid)?,
    )?;
    if validate::message_size(body, &attributes) > validate::MAX_MESSAGE_BYTES {
        return Err(invalid("Message too long"));
    }
    let mut m = NewMessage {
        subject,
        body: body.to_owned(),
        per_protocol: BTreeMap::new(),
        attributes,
    };
    match form.get("MessageStructure") {
        None => {}
        Some("json") => {
            let v: serde_json::Value = serde_json::from_str(body)
                .map_err(|_| invalid("Message Structure - JSON message body failed to parse"))?;
            let obj = v
                .as_object()
                .ok_or_else(|| invalid("Message Structure - JSON message body failed to parse"))?;
            let mut default = None;
            for (k, v) in obj {
                let Some(text) = v.as_str() else {
                    return Err(invalid(format!(
                        "Message Structure - the value of {k:?} must be a string"
                    )));
                };
                if k == "default" {
                    default = Some(text.to_owned());
                } else {
                    m.per_protocol.insert(k.clone(), text.to_owned());
                }
            }
            m.body = default.ok_or_else(|| {
                invalid("Message Structure - No default entry in JSON message body")
            })?;
        }
        Some(_) => return Err(invalid("MessageStructure")),
    }
    Ok(m)
}

/// The topic of a Publish: `TopicArn` or `TargetArn`.
fn target(call: &Call) -> SnsResult<String> {
    match (call.form.get("TopicArn"), call.form.get("TargetArn")) {
        (Some(_), _) => call.topic("TopicArn"),
        (None, Some(_)) => call.topic("TargetArn"),
        (None, None) if call.form.get("PhoneNumber").is_some() => Err(invalid(
            "PhoneNumber: Vigil does not send SMS (see docs/compatibility.md)",
        )),
        (None, None) => Err(invalid(
            "TopicArn or TargetArn Reason: no value for required parameter",
        )),
    }
}

pub(crate) async fn publish(call: Call, rid: String) -> SnsResult<String> {
    let topic = target(&call)?;
    let m = message(&call.form)?;
    let ids = call
        .engine()
        .publish(&topic, vec![m])
        .await
        .map_err(|e| call.engine_error(e))?;
    let mut x = Xml::new("Publish");
    x.elem("MessageId", ids.first().map_or("", String::as_str));
    Ok(x.finish(&rid))
}

pub(crate) async fn publish_batch(call: Call, rid: String) -> SnsResult<String> {
    let topic = call.topic("TopicArn")?;
    let entries = call
        .form
        .struct_list("PublishBatchRequestEntries", 100)
        .map_err(invalid)?;
    if entries.is_empty() {
        return Err(SnsError::EmptyBatchRequestException(
            "The batch request doesn't contain any entries".into(),
        ));
    }
    if entries.len() > validate::MAX_BATCH_ENTRIES {
        return Err(SnsError::TooManyEntriesInBatchRequestException(format!(
            "The batch request contains more entries than permissible ({}).",
            validate::MAX_BATCH_ENTRIES
        )));
    }
    let mut seen = BTreeSet::new();
    let mut total = 0usize;
    let mut ok: Vec<(String, NewMessage)> = Vec::new();
    let mut failed: Vec<(String, &'static str, String)> = Vec::new();
    for e in &entries {
        let id = e.get("Id").unwrap_or_default().to_owned();
        let id_ok = !id.is_empty()
            && id.len() <= 80
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !id_ok {
            return Err(SnsError::InvalidBatchEntryIdException(
                "The Id of a batch entry in a batch request doesn't abide by the specification."
                    .into(),
            ));
        }
        if !seen.insert(id.clone()) {
            return Err(SnsError::BatchEntryIdsNotDistinctException(
                "Two or more batch entries in the request have the same Id.".into(),
            ));
        }
        match message(e) {
            Ok(m) => {
                total += validate::message_size(&m.body, &m.attributes)
                    + m.per_protocol.values().map(String::len).sum::<usize>();
                ok.push((id, m));
            }
            Err(err) => {
                use vigil_api_common::error::AwsError as _;
                failed.push((id, err.aws_code(), err.message().to_owned()));
            }
        }
    }
    if total > validate::MAX_MESSAGE_BYTES {
        return Err(SnsError::BatchRequestTooLongException(
            "The length of all the messages put together is more than the limit.".into(),
        ));
    }
    let (names, messages): (Vec<String>, Vec<NewMessage>) = ok.into_iter().unzip();
    let ids = call
        .engine()
        .publish(&topic, messages)
        .await
        .map_err(|e| call.engine_error(e))?;
    let mut x = Xml::new("PublishBatch");
    x.open("Successful");
    for (name, mid) in names.iter().zip(ids.iter()) {
        x.open("member");
        x.elem("Id", name);
        x.elem("MessageId", mid);
        x.close("member");
    }
    x.close("Successful");
    x.open("Failed");
    for (name, code, msg) in &failed {
        x.open("member");
        x.elem("Id", name);
        x.elem("Code", code);
        x.elem("Message", msg);
        x.elem("SenderFault", "true");
        x.close("member");
    }
    x.close("Failed");
    Ok(x.finish(&rid))
}

/// Vigil's extension: the messages a topic's deliveries gave up on (`TopicArn`, optional
/// `NextToken`, `MaxItems` up to 100), newest last.
pub(crate) fn list_dead_letters(call: &Call, rid: &str) -> SnsResult<String> {
    let topic = call.topic("TopicArn")?;
    let max = match call.form.get("MaxItems") {
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| invalid("MaxItems: from 1 to 100"))?,
        None => 100,
    };
    let from = match call.form.get("NextToken") {
        Some(t) => call
            .state
            .cfg
            .tokens
            .open_str("ListDeadLetters", t, 256)
            .and_then(|s| s.parse::<u128>().ok())
            .map(Position::from_u128)
            .ok_or_else(|| invalid("NextToken"))?,
        None => Position::MIN,
    };
    let (letters, next) = call
        .engine()
        .dead_letters(&topic, from, max)
        .map_err(|e| call.engine_error(e))?;
    let mut x = Xml::new("ListDeadLetters");
    x.open("DeadLetters");
    for l in &letters {
        x.open("member");
        x.elem(
            "SubscriptionArn",
            &call.state.subscription_arn(&topic, &l.subscription),
        );
        x.elem("Endpoint", &l.endpoint);
        x.elem("MessageId", &l.message.id);
        if let Some(s) = &l.message.subject {
            x.elem("Subject", s);
        }
        x.elem("Message", &l.message.body);
        x.elem("Attempts", &l.attempts.to_string());
        x.elem("Reason", &l.reason);
        x.elem("Timestamp", &vigil_auth::time::format_iso8601_ms(l.at_ms));
        x.close("member");
    }
    x.close("DeadLetters");
    if letters.len() == max {
        x.elem(
            "NextToken",
            &call
                .state
                .cfg
                .tokens
                .seal_str("ListDeadLetters", &next.as_u128().to_string()),
        );
    }
    Ok(x.finish(rid))
}
