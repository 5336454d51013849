//! Topic operations: create, delete, list, attributes, tags, permissions.

use std::collections::BTreeMap;

use crate::error::{SnsError, SnsResult, invalid};
use crate::query::Xml;
use crate::service::Call;
use crate::validate;

/// Topics per ListTopics page (SNS's).
const TOPICS_PAGE: usize = 100;
/// The longest paging token taken.
const MAX_TOKEN: usize = 1024;

/// The policy SNS gives a topic that has none set.
pub fn default_policy(topic_arn: &str, account: &str) -> String {
    serde_json::json!({
        "Version": "2008-10-17",
        "Id": "__default_policy_ID",
        "Statement": [{
            "Sid": "__default_statement_ID",
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": [
                "SNS:GetTopicAttributes", "SNS:SetTopicAttributes", "SNS:AddPermission",
                "SNS:RemovePermission", "SNS:DeleteTopic", "SNS:Subscribe",
                "SNS:ListSubscriptionsByTopic", "SNS:Publish"
            ],
            "Resource": topic_arn,
            "Condition": {"StringEquals": {"AWS:SourceOwner": account}}
        }]
    })
    .to_string()
}

/// The HTTP/S delivery policy that applies when none is set (SNS's default), as
/// `EffectiveDeliveryPolicy` shows it.
pub fn default_delivery_policy() -> String {
    serde_json::json!({
        "http": {
            "defaultHealthyRetryPolicy": {
                "minDelayTarget": 20, "maxDelayTarget": 20, "numRetries": 3,
                "numMaxDelayRetries": 0, "numNoDelayRetries": 0, "numMinDelayRetries": 0,
                "backoffFunction": "linear"
            },
            "disableSubscriptionOverrides": false,
            "defaultRequestPolicy": {"headerContentType": "text/plain; charset=UTF-8"}
        }
    })
    .to_string()
}

pub(crate) fn create_topic(call: &Call, rid: &str) -> SnsResult<String> {
    let name = call.required("Name")?;
    validate::topic_name(name)?;
    call.authorize(Some(name))?;
    let attributes = call
        .form
        .map("Attributes", "key", "value", 100)
        .map_err(invalid)?;
    let tags = call.form.tags("Tags", 100).map_err(invalid)?;
    validate::tags(&tags)?;
    if call.form.get("DataProtectionPolicy").is_some() {
        return Err(invalid(
            "DataProtectionPolicy: Vigil has no message data protection (see \
             docs/compatibility.md)",
        ));
    }
    let tags: BTreeMap<String, String> = tags.into_iter().collect();
    call.engine()
        .create_topic(name, attributes, tags)
        .map_err(|e| call.engine_error(e))?;
    let mut x = Xml::new("CreateTopic");
    x.elem("TopicArn", &call.state.topic_arn(name));
    Ok(x.finish(rid))
}

pub(crate) fn delete_topic(call: &Call, rid: &str) -> SnsResult<String> {
    let name = call.topic("TopicArn")?;
    call.engine()
        .delete_topic(&name)
        .map_err(|e| call.engine_error(e))?;
    Ok(Xml::finish_without_result("DeleteTopic", rid))
}

pub(crate) fn list_topics(call: &Call, rid: &str) -> SnsResult<String> {
    call.authorize(None)?;
    let after = match call.form.get("NextToken") {
        Some(t) => Some(
            call.state
                .cfg
                .tokens
                .open_str("ListTopics", t, MAX_TOKEN)
                .ok_or_else(|| invalid("NextToken"))?,
        ),
        None => None,
    };
    let names = call.engine().list_topics(after.as_deref(), TOPICS_PAGE + 1);
    let more = names.len() > TOPICS_PAGE;
    let mut x = Xml::new("ListTopics");
    x.open("Topics");
    for n in names.iter().take(TOPICS_PAGE) {
        x.open("member");
        x.elem("TopicArn", &call.state.topic_arn(n));
        x.close("member");
    }
    x.close("Topics");
    if more && let Some(last) = names.get(TOPICS_PAGE - 1) {
        x.elem(
            "NextToken",
            &call.state.cfg.tokens.seal_str("ListTopics", last),
        );
    }
    Ok(x.finish(rid))
}

pub(crate) fn get_topic_attributes(call: &Call, rid: &str) -> SnsResult<String> {
    let name = call.topic("TopicArn")?;
    let info = call
        .engine()
        .topic(&name)
        .map_err(|e| call.engine_error(e))?;
    let arn = call.state.topic_arn(&name);
    let account = &call.state.cfg.account_id;
    let mut attrs: BTreeMap<String, String> = BTreeMap::new();
    attrs.insert("TopicArn".into(), arn.clone());
    attrs.insert("Owner".into(), account.clone());
    attrs.insert("Policy".into(), default_policy(&arn, account));
    attrs.insert("DisplayName".into(), String::new());
    attrs.insert("SubscriptionsConfirmed".into(), info.confirmed.to_string());
    attrs.insert("SubscriptionsPending".into(), info.pending.to_string());
    attrs.insert("SubscriptionsDeleted".into(), info.deleted.to_string());
    attrs.insert("EffectiveDeliveryPolicy".into(), default_delivery_policy());
    for (k, v) in &info.meta.attributes {
        attrs.insert(k.clone(), v.clone());
    }
    if let Some(p) = info.meta.attributes.get("DeliveryPolicy") {
        attrs.insert("EffectiveDeliveryPolicy".into(), p.clone());
    }
    let mut x = Xml::new("GetTopicAttributes");
    x.map("Attributes", attrs.iter());
    Ok(x.finish(rid))
}

/// Attributes SNS computes, which no call sets.
const READ_ONLY: [&str; 7] = [
    "TopicArn",
    "Owner",
    "SubscriptionsConfirmed",
    "SubscriptionsPending",
    "SubscriptionsDeleted",
    "EffectiveDeliveryPolicy",
    "FifoTopic",
];

pub(crate) fn set_topic_attributes(call: &Call, rid: &str) -> SnsResult<String> {
    let name = call.topic("TopicArn")?;
    let key = call.required("AttributeName")?;
    let value = call.form.get("AttributeValue").unwrap_or_default();
    if READ_ONLY.contains(&key) {
        return Err(invalid(format!("AttributeName: {key} cannot be set")));
    }
    call.engine()
        .set_topic_attribute(&name, key, value)
        .map_err(|e| call.engine_error(e))?;
    Ok(Xml::finish_without_result("SetTopicAttributes", rid))
}

/// The topic a tagging call's `ResourceArn` names (only topics are tagged here).
fn resource(call: &Call) -> SnsResult<String> {
    let arn = call.required("ResourceArn")?;
    let name = validate::topic_arn(
        arn,
        "ResourceArn",
        &call.state.cfg.region,
        &call.state.cfg.account_id,
    )
    .map_err(|e| match e {
        SnsError::NotFoundException(_) => {
            SnsError::ResourceNotFoundException("Resource does not exist".into())
        }
        other => other,
    })?;
    call.authorize(Some(&name))?;
    call.engine().topic(&name).map_err(|e| match e {
        vigil_topics::Error::TopicNotFound(_) => {
            SnsError::ResourceNotFoundException("Resource does not exist".into())
        }
        other => call.engine_error(other),
    })?;
    Ok(name)
}

pub(crate) fn tag_resource(call: &Call, rid: &str) -> SnsResult<String> {
    let name = resource(call)?;
    let tags = call.form.tags("Tags", 100).map_err(invalid)?;
    validate::tags(&tags)?;
    call.engine()
        .tag_topic(&name, &tags, validate::MAX_TAGS)
        .map_err(|e| call.engine_error(e))?;
    // TagResource has an (empty) output shape: botocore needs its Result element.
    Ok(Xml::new("TagResource").finish(rid))
}

pub(crate) fn untag_resource(call: &Call, rid: &str) -> SnsResult<String> {
    let name = resource(call)?;
    let keys = call.form.list("TagKeys", 100).map_err(invalid)?;
    call.engine()
        .untag_topic(&name, &keys)
        .map_err(|e| call.engine_error(e))?;
    Ok(Xml::new("UntagResource").finish(rid))
}

pub(crate) fn list_tags_for_resource(call: &Call, rid: &str) -> SnsResult<String> {
    let name = resource(call)?;
    let info = call
        .engine()
        .topic(&name)
        .map_err(|e| call.engine_error(e))?;
    let mut x = Xml::new("ListTagsForResource");
    x.open("Tags");
    for (k, v) in &info.meta.tags {
        x.open("member");
        x.elem("Key", k);
        x.elem("Value", v);
        x.close("member");
    }
    x.close("Tags");
    Ok(x.finish(rid))
}

/// Edits the statements of the topic's policy (its own, or SNS's default) with `f`, under the
/// engine's control lock.
fn edit_policy(
    call: &Call,
    name: &str,
    f: impl FnOnce(&mut Vec<serde_json::Value>) -> Result<(), String>,
) -> SnsResult<()> {
    let arn = call.state.topic_arn(name);
    let account = call.state.cfg.account_id.clone();
    call.engine()
        .modify_topic_attribute(name, "Policy", |current| {
            let text = current.map_or_else(|| default_policy(&arn, &account), str::to_owned);
            let bad = || vigil_topics::Error::Invalid("Policy".into());
            let mut doc: serde_json::Value = serde_json::from_str(&text).map_err(|_| bad())?;
            let statements = doc
                .get_mut("Statement")
                .and_then(serde_json::Value::as_array_mut)
                .ok_or_else(bad)?;
            f(statements).map_err(vigil_topics::Error::Invalid)?;
            Ok(doc.to_string())
        })
        .map_err(|e| call.engine_error(e))
}

pub(crate) fn add_permission(call: &Call, rid: &str) -> SnsResult<String> {
    let name = call.topic("TopicArn")?;
    let label = call.required("Label")?;
    if label.is_empty()
        || label.len() > 80
        || !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(invalid("Label"));
    }
    let accounts = call.form.list("AWSAccountId", 100).map_err(invalid)?;
    let actions = call.form.list("ActionName", 100).map_err(invalid)?;
    if accounts.is_empty() {
        return Err(invalid("AWSAccountId is required"));
    }
    if actions.is_empty() {
        return Err(invalid("ActionName is required"));
    }
    let arn = call.state.topic_arn(&name);
    let principals: Vec<String> = accounts
        .iter()
        .map(|a| format!("arn:aws:iam::{a}:root"))
        .collect();
    let actions: Vec<String> = actions.iter().map(|a| format!("SNS:{a}")).collect();
    edit_policy(call, &name, |statements| {
        if statements
            .iter()
            .any(|s| s.get("Sid").and_then(|v| v.as_str()) == Some(label))
        {
            return Err("Statement already exists".into());
        }
        statements.push(serde_json::json!({
            "Sid": label, "Effect": "Allow", "Principal": {"AWS": principals},
            "Action": actions, "Resource": arn,
        }));
        Ok(())
    })?;
    Ok(Xml::finish_without_result("AddPermission", rid))
}

pub(crate) fn remove_permission(call: &Call, rid: &str) -> SnsResult<String> {
    let name = call.topic("TopicArn")?;
    let label = call.required("Label")?;
    edit_policy(call, &name, |statements| {
        let before = statements.len();
        statements.retain(|s| s.get("Sid").and_then(|v| v.as_str()) != Some(label));
        if statements.len() == before {
            return Err("Label".into());
        }
        Ok(())
    })?;
    Ok(Xml::finish_without_result("RemovePermission", rid))
}
