//! The checks SNS makes of names, ARNs, endpoints, messages and tags, with its messages.

use std::collections::BTreeMap;

use bytes::Bytes;
use vigil_topics::{Attributes, MessageAttribute, Protocol};

use crate::error::{SnsError, SnsResult, invalid};
use crate::query::RawAttribute;

/// The largest message, body and attributes together (256 KiB).
pub const MAX_MESSAGE_BYTES: usize = 262_144;
/// Message attributes per message.
pub const MAX_MESSAGE_ATTRIBUTES: usize = 10;
/// Tags per topic.
pub const MAX_TAGS: usize = 50;
/// Entries per PublishBatch.
pub const MAX_BATCH_ENTRIES: usize = 10;

/// A topic name: 1 to 256 of `A-Z a-z 0-9 _ -` (a `.fifo` name is a FIFO topic, which Vigil
/// does not have).
pub fn topic_name(name: &str) -> SnsResult<()> {
    if name.ends_with(".fifo") {
        return Err(invalid(
            "Topic Name: Vigil has no FIFO topics (see docs/compatibility.md)",
        ));
    }
    let ok = !name.is_empty()
        && name.len() <= 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        return Err(invalid("Topic Name"));
    }
    Ok(())
}

/// The parts of an SNS ARN: `arn:aws:sns:REGION:ACCOUNT:RESOURCE`.
fn sns_arn<'a>(arn: &'a str, region: &str, account: &str) -> Option<&'a str> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(_partition), Some("sns"), Some(r), Some(a), Some(rest)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    (r == region && a == account).then_some(rest)
}

/// The topic an ARN names. A well-formed ARN of another region or account names no topic
/// here (`NotFound`); a malformed one is `InvalidParameter` naming `param`.
pub fn topic_arn(arn: &str, param: &str, region: &str, account: &str) -> SnsResult<String> {
    let well_formed = arn.starts_with("arn:") && arn.split(':').count() == 6;
    if !well_formed {
        return Err(invalid(format!("{param}: {arn:?} is not a topic ARN")));
    }
    match sns_arn(arn, region, account) {
        Some(name) if topic_name(name).is_ok() => Ok(name.to_owned()),
        Some(_) => Err(invalid(format!("{param}: {arn:?} is not a topic ARN"))),
        None => Err(SnsError::NotFoundException("Topic does not exist".into())),
    }
}

/// The topic and id a subscription ARN names (`TOPIC_ARN:ID`).
pub fn subscription_arn(arn: &str, region: &str, account: &str) -> SnsResult<(String, String)> {
    let bad = || {
        invalid(format!(
            "SubscriptionArn: {arn:?} is not a subscription ARN"
        ))
    };
    if arn.split(':').count() != 7 {
        return Err(bad());
    }
    let rest = sns_arn(arn, region, account)
        .ok_or_else(|| SnsError::NotFoundException("Subscription does not exist".into()))?;
    let (topic, id) = rest.split_once(':').ok_or_else(bad)?;
    topic_name(topic).map_err(|_| bad())?;
    if id.len() != 36 || !id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        return Err(bad());
    }
    Ok((topic.to_owned(), id.to_owned()))
}

/// A protocol Vigil delivers to, and its endpoint checked for it (`email`: whether mail can
/// go out).
pub fn endpoint(
    protocol: &str,
    endpoint: Option<&str>,
    email: bool,
) -> SnsResult<(Protocol, String)> {
    let Some(p) = Protocol::from_name(protocol) else {
        let known = ["sms", "sqs", "application", "lambda", "firehose"];
        if known.contains(&protocol.to_ascii_lowercase().as_str()) {
            return Err(invalid(format!(
                "Protocol: Vigil does not deliver to {protocol} yet (http and https; see \
                 docs/compatibility.md)"
            )));
        }
        return Err(invalid(format!("Invalid protocol type: {protocol}")));
    };
    let e = endpoint.unwrap_or_default();
    if p.is_email() {
        if !email {
            return Err(invalid(format!(
                "Protocol: {} needs an SMTP relay, and this server has none (--smtp-url)",
                p.name()
            )));
        }
        let ok = e.parse::<lettre::message::Mailbox>().is_ok() && !e.contains('<');
        if !ok {
            return Err(invalid(format!("Email address: {e:?}")));
        }
        return Ok((p, e.to_owned()));
    }
    let scheme = format!("{}://", p.name());
    let ok = e.len() > scheme.len()
        && e.get(..scheme.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(&scheme))
        && e.parse::<axum::http::Uri>()
            .ok()
            .is_some_and(|u| u.host().is_some_and(|h| !h.is_empty()));
    if !ok {
        return Err(invalid(format!(
            "{} endpoint: {e:?} is not a valid {} URL",
            p.name().to_ascii_uppercase(),
            p.name()
        )));
    }
    let literal = e
        .parse::<axum::http::Uri>()
        .ok()
        .and_then(|u| u.host().and_then(crate::reach::literal_host));
    if let Some(ip) = literal.filter(|ip| !crate::reach::allowed(*ip)) {
        return Err(invalid(format!(
            "{} endpoint: deliveries may not go to {ip} (link-local, multicast or unspecified)",
            p.name().to_ascii_uppercase()
        )));
    }
    Ok((p, e.to_owned()))
}

fn value_invalid(m: String) -> SnsError {
    SnsError::InvalidParameterValueException(m)
}

fn attribute_name_ok(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !name.is_empty()
        && name.len() <= 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
        && !lower.starts_with("aws.")
        && !lower.starts_with("amazon.")
}

/// A valid SNS number: at most ±1e9, at most 5 digits after the point.
fn number_ok(s: &str) -> bool {
    let t = s.trim();
    let Ok(v) = t.parse::<f64>() else {
        return false;
    };
    let decimals = t
        .split_once(['e', 'E'])
        .map_or(t, |(m, _)| m)
        .split_once('.')
        .map_or(0, |(_, d)| d.len());
    v.is_finite() && v.abs() <= 1e9 && decimals <= 5
}

/// Message attributes as a request gave them, checked as SNS checks them.
pub fn message_attributes(raw: BTreeMap<String, RawAttribute>) -> SnsResult<Attributes> {
    if raw.len() > MAX_MESSAGE_ATTRIBUTES {
        return Err(value_invalid(format!(
            "Number of message attributes [{}] exceeds the allowed maximum [{MAX_MESSAGE_ATTRIBUTES}].",
            raw.len()
        )));
    }
    let mut out = Attributes::new();
    for (name, a) in raw {
        if !attribute_name_ok(&name) {
            return Err(value_invalid(format!(
                "The message attribute name '{name}' is invalid"
            )));
        }
        let Some(data_type) = a.data_type.filter(|t| !t.is_empty()) else {
            return Err(value_invalid(format!(
                "The message attribute '{name}' must contain non-empty message attribute type."
            )));
        };
        let attr = MessageAttribute {
            data_type: data_type.clone(),
            string_value: a.string_value,
            binary_value: a.binary_value.map(Bytes::from),
        };
        let base = attr.base_type().to_owned();
        match base.as_str() {
            "String" | "Number" | "String.Array" => {
                let Some(v) = attr.string_value.as_deref().filter(|v| !v.is_empty()) else {
                    return Err(value_invalid(format!(
                        "The message attribute '{name}' must contain non-empty message \
                         attribute value for message attribute type '{base}'."
                    )));
                };
                if base == "Number" && !number_ok(v) {
                    return Err(value_invalid(format!(
                        "The message attribute '{name}' with type 'Number' must be a number \
                         from -1e9 to 1e9 with at most 5 digits after the point."
                    )));
                }
                if base == "String.Array" {
                    let ok = serde_json::from_str::<serde_json::Value>(v)
                        .ok()
                        .and_then(|j| j.as_array().cloned())
                        .is_some_and(|a| a.iter().all(|e| !e.is_array() && !e.is_object()));
                    if !ok {
                        return Err(value_invalid(format!(
                            "The message attribute '{name}' with type 'String.Array' must \
                             be a JSON array of strings, numbers, booleans or nulls."
                        )));
                    }
                }
            }
            "Binary" => {
                if attr.binary_value.as_ref().is_none_or(|b| b.is_empty()) {
                    return Err(value_invalid(format!(
                        "The message attribute '{name}' must contain non-empty message \
                         attribute value for message attribute type 'Binary'."
                    )));
                }
            }
            _ => {
                return Err(value_invalid(format!(
                    "The message attribute '{name}' has an invalid message attribute type, \
                     the set of supported type prefixes is Binary, Number, and String."
                )));
            }
        }
        out.insert(name, attr);
    }
    Ok(out)
}

/// A message's size as SNS counts it: the body and each attribute's name, type and value.
pub fn message_size(body: &str, attrs: &Attributes) -> usize {
    body.len()
        + attrs
            .iter()
            .map(|(n, a)| {
                n.len()
                    + a.data_type.len()
                    + a.string_value.as_ref().map_or(0, String::len)
                    + a.binary_value.as_ref().map_or(0, Bytes::len)
            })
            .sum::<usize>()
}

/// A subject: 1 to 100 printable ASCII characters, no line breaks.
pub fn subject(s: &str) -> SnsResult<()> {
    let ok = !s.is_empty() && s.len() <= 100 && s.bytes().all(|b| (0x20..0x7f).contains(&b));
    if !ok {
        return Err(invalid("Subject"));
    }
    Ok(())
}

/// Tags: keys 1 to 128 and values up to 256 characters of letters, digits, spaces and
/// `_ . : / = + - @`; keys unique.
pub fn tags(tags: &[(String, String)]) -> SnsResult<()> {
    let allowed = |c: char| c.is_alphanumeric() || " _.:/=+-@".contains(c);
    let mut seen = std::collections::BTreeSet::new();
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 || !k.chars().all(allowed) {
            return Err(SnsError::TagPolicyException(format!(
                "Invalid tag key: {k:?}"
            )));
        }
        if v.chars().count() > 256 || !v.chars().all(allowed) {
            return Err(SnsError::TagPolicyException(format!(
                "Invalid tag value for key {k:?}"
            )));
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            return Err(SnsError::TagPolicyException(
                "Tag keys may not start with aws:".into(),
            ));
        }
        if !seen.insert(k) {
            return Err(invalid(format!("Tags: the key {k:?} appears twice")));
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(SnsError::TagLimitExceededException(
            "Could not complete request: tag quota of per resource exceeded".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn arns() {
        let t = topic_arn(
            "arn:aws:sns:us-east-1:000000000000:alerts",
            "TopicArn",
            "us-east-1",
            "000000000000",
        );
        assert_eq!(t.unwrap(), "alerts");
        assert!(matches!(
            topic_arn(
                "arn:aws:sns:eu-west-1:000000000000:alerts",
                "TopicArn",
                "us-east-1",
                "000000000000"
            ),
            Err(SnsError::NotFoundException(_))
        ));
        assert!(matches!(
            topic_arn("alerts", "TopicArn", "us-east-1", "000000000000"),
            Err(SnsError::InvalidParameterException(_))
        ));
        let s = subscription_arn(
            "arn:aws:sns:us-east-1:000000000000:alerts:0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9",
            "us-east-1",
            "000000000000",
        )
        .unwrap();
        assert_eq!(s.0, "alerts");
        assert!(
            subscription_arn(
                "arn:aws:sns:us-east-1:000000000000:alerts",
                "us-east-1",
                "000000000000"
            )
            .is_err()
        );
    }

    #[test]
    fn endpoints_and_names() {
        assert!(endpoint("http", Some("http://127.0.0.1:9/x"), false).is_ok());
        assert!(endpoint("HTTPS", Some("https://example.com/"), false).is_ok());
        assert!(endpoint("http", Some("https://example.com/"), false).is_err());
        assert!(endpoint("http", Some("http://"), false).is_err());
        assert!(endpoint("http", Some("http://169.254.169.254/latest"), false).is_err());
        assert!(endpoint("http", Some("http://[fe80::1]:80/"), false).is_err());
        assert!(endpoint("email", Some("a@b.c"), false).is_err());
        assert!(endpoint("email", Some("a@b.c"), true).is_ok());
        assert!(endpoint("email-json", Some("not an address"), true).is_err());
        assert!(endpoint("sqs", Some("arn:aws:sqs:us-east-1:1:q"), true).is_err());
        assert!(topic_name("alerts-1_x").is_ok());
        assert!(topic_name("a.fifo").is_err());
        assert!(topic_name("").is_err());
        assert!(topic_name(&"a".repeat(257)).is_err());
        assert!(subject("Unknown face").is_ok());
        assert!(subject("two\nlines").is_err());
    }

    #[test]
    fn attributes() {
        let one = |t: &str, v: &str| {
            let mut m = BTreeMap::new();
            m.insert(
                "kind".to_owned(),
                RawAttribute {
                    data_type: Some(t.to_owned()),
                    string_value: Some(v.to_owned()),
                    binary_value: None,
                },
            );
            message_attributes(m)
        };
        assert!(one("String", "unknown").is_ok());
        assert!(one("Number", "12.5").is_ok());
        assert!(one("Number.float", "-3").is_ok());
        assert!(one("Number", "1e10").is_err());
        assert!(one("Number", "1.123456").is_err());
        assert!(one("Number", "x").is_err());
        assert!(one("String.Array", "[\"a\", 1, true]").is_ok());
        assert!(one("String.Array", "[[1]]").is_err());
        assert!(one("Text", "x").is_err());
        assert!(one("String", "").is_err());
    }
}
