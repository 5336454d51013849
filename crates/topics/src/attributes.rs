//! Which topic and subscription attributes a caller may set, and the checks of their values
//! (SNS's names and messages: the API layer answers `InvalidParameter` with them).

use crate::error::{Error, Result};

/// Checks a topic attribute a caller may set (`CreateTopic`, `SetTopicAttributes`).
pub fn check_topic_attribute(name: &str, value: &str) -> Result<()> {
    match name {
        "DisplayName" => {
            if value.chars().count() > 100 {
                return Err(Error::Invalid("DisplayName: at most 100 characters".into()));
            }
        }
        "DataProtectionPolicy" => {
            return Err(Error::Invalid(
                "DataProtectionPolicy: Vigil has no message data protection (see \
                 docs/compatibility.md)"
                    .into(),
            ));
        }
        "Policy" => {
            serde_json::from_str::<serde_json::Value>(value)
                .ok()
                .filter(serde_json::Value::is_object)
                .ok_or_else(|| Error::Invalid(format!("{name}: not a JSON object")))?;
        }
        "DeliveryPolicy" => {
            crate::retry::TopicDeliveryPolicy::parse(value)
                .map_err(|e| Error::Invalid(format!("DeliveryPolicy: {e}")))?;
        }
        "SignatureVersion" => {
            if value != "1" && value != "2" {
                return Err(Error::Invalid("SignatureVersion: must be 1 or 2".into()));
            }
        }
        "TracingConfig" => {
            if value != "PassThrough" && value != "Active" {
                return Err(Error::Invalid(
                    "TracingConfig: must be PassThrough or Active".into(),
                ));
            }
        }
        "KmsMasterKeyId" => {}
        "FifoTopic" | "ContentBasedDeduplication" | "FifoThroughputScope" | "ArchivePolicy" => {
            if name == "FifoTopic" && value.eq_ignore_ascii_case("false") {
                return Ok(());
            }
            return Err(Error::Invalid(format!(
                "{name}: Vigil has no FIFO topics (see docs/compatibility.md)"
            )));
        }
        n if n.ends_with("FeedbackRoleArn") || n.ends_with("FeedbackSampleRate") => {}
        _ => {
            return Err(Error::Invalid(format!(
                "AttributeName: {name} is not valid"
            )));
        }
    }
    Ok(())
}

/// Checks a subscription attribute a caller may set (`Subscribe`,
/// `SetSubscriptionAttributes`).
pub fn check_subscription_attribute(name: &str, value: &str, scope: Option<&str>) -> Result<()> {
    match name {
        "FilterPolicy" => {
            if !value.is_empty() {
                crate::filter::FilterPolicy::parse(value, filter_scope(scope)?)
                    .map_err(|e| Error::Invalid(format!("FilterPolicy: {e}")))?;
            }
        }
        "FilterPolicyScope" => {
            filter_scope(Some(value))?;
        }
        "RawMessageDelivery" => {
            if !value.eq_ignore_ascii_case("true") && !value.eq_ignore_ascii_case("false") {
                return Err(Error::Invalid(format!(
                    "RawMessageDelivery: Invalid value [{value}]. Must be true or false."
                )));
            }
        }
        "DeliveryPolicy" => {
            crate::retry::SubscriptionDeliveryPolicy::parse(value)
                .map_err(|e| Error::Invalid(format!("DeliveryPolicy: {e}")))?;
        }
        "RedrivePolicy" => {
            return Err(Error::Invalid(
                "RedrivePolicy: Vigil has no SQS queues to redrive to; what a subscription \
                 gives up on is kept in its topic's dead letters (see docs/notifications.md)"
                    .into(),
            ));
        }
        "SubscriptionRoleArn" | "ReplayPolicy" => {
            return Err(Error::Invalid(format!(
                "{name}: only Kinesis Data Firehose subscriptions take it, and Vigil has none"
            )));
        }
        _ => {
            return Err(Error::Invalid(format!(
                "AttributeName: {name} is not valid"
            )));
        }
    }
    Ok(())
}

fn filter_scope(s: Option<&str>) -> Result<crate::filter::Scope> {
    match s {
        None | Some("MessageAttributes") => Ok(crate::filter::Scope::MessageAttributes),
        Some("MessageBody") => Ok(crate::filter::Scope::MessageBody),
        Some(v) => Err(Error::Invalid(format!(
            "FilterPolicyScope: Invalid value [{v}]. Please use either MessageBody or \
             MessageAttributes"
        ))),
    }
}
