//! The model's constraints on inputs (lengths, patterns, ranges, enums), answered as AWS
//! answers them: `ValidationException` with "1 validation error detected: Value '...' at
//! 'member' failed to satisfy constraint: ...". botocore checks only required members and
//! minimums on the client, so everything else arrives here and is checked here.

use std::collections::BTreeMap;

use crate::error::{KinesisError, KinesisResult};
use crate::service::KinesisState;

/// Most tags on a stream.
pub const MAX_TAGS: usize = 50;

/// A name of the model's `StreamName` (and `ConsumerName`) shape: 1-128 of `[a-zA-Z0-9_.-]`.
pub fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Checks a `StreamName` member.
pub fn stream_name(member: &str, s: &str) -> KinesisResult<()> {
    if s.is_empty() || s.chars().count() > 128 {
        return Err(KinesisError::validation(
            s,
            member,
            "Member must have length between 1 and 128",
        ));
    }
    if !is_name(s) {
        return Err(KinesisError::validation(
            s,
            member,
            "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
        ));
    }
    Ok(())
}

/// The stream name of a stream ARN (`arn:aws*:kinesis:REGION:ACCOUNT:stream/NAME`) on this
/// server; `None` if it is not such an ARN (another service, a consumer ARN, another region
/// or account).
pub fn stream_of_arn<'a>(state: &KinesisState, arn: &'a str) -> Option<&'a str> {
    let mut parts = arn.splitn(6, ':');
    let (prefix, partition, service, region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    let name = resource.strip_prefix("stream/")?;
    (prefix == "arn"
        && partition.starts_with("aws")
        && service == "kinesis"
        && region == state.cfg.region
        && account == state.cfg.account_id
        && is_name(name))
    .then_some(name)
}

/// The stream a request names by `StreamName`, `StreamARN`, or both (which must agree).
pub fn stream_target(
    state: &KinesisState,
    name: Option<&str>,
    arn: Option<&str>,
) -> KinesisResult<String> {
    if let Some(n) = name {
        stream_name("streamName", n)?;
    }
    let from_arn = match arn {
        None => None,
        Some(a) => {
            if a.is_empty() || a.len() > 2048 {
                return Err(KinesisError::validation(
                    a,
                    "streamARN",
                    "Member must have length between 1 and 2048",
                ));
            }
            let looks_like =
                a.starts_with("arn:aws") && a.contains(":kinesis:") && a.contains(":stream/");
            if !looks_like {
                return Err(KinesisError::validation(
                    a,
                    "streamARN",
                    "Member must satisfy regular expression pattern: \
                     arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+",
                ));
            }
            Some(stream_of_arn(state, a).ok_or_else(|| {
                KinesisError::ResourceNotFoundException(format!(
                    "Stream {a} under account {} not found.",
                    state.cfg.account_id
                ))
            })?)
        }
    };
    match (name, from_arn) {
        (Some(n), Some(a)) if n != a => Err(KinesisError::invalid(format!(
            "StreamName {n} and StreamARN {} name different streams.",
            arn.unwrap_or_default()
        ))),
        (Some(n), _) => Ok(n.to_owned()),
        (None, Some(a)) => Ok(a.to_owned()),
        (None, None) => Err(KinesisError::invalid(
            "Either StreamName or StreamARN must be provided.",
        )),
    }
}

/// Checks tags to add: keys 1-128 and values 0-256 characters, of the characters AWS allows.
pub fn tags(tags: &BTreeMap<String, String>) -> KinesisResult<()> {
    if tags.is_empty() || tags.len() > 200 {
        return Err(KinesisError::validation(
            &format!("{} tags", tags.len()),
            "tags",
            "Member must have length between 1 and 200",
        ));
    }
    let ok = |s: &str| {
        s.chars()
            .all(|c| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@%".contains(c))
    };
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 || !ok(k) {
            return Err(KinesisError::invalid(format!(
                "Tag key {k:?} must be 1-128 Unicode letters, digits, white space or _ . : / = + - @ %."
            )));
        }
        if v.chars().count() > 256 || !ok(v) {
            return Err(KinesisError::invalid(format!(
                "Tag value {v:?} must be at most 256 Unicode letters, digits, white space or \
                 _ . : / = + - @ %."
            )));
        }
    }
    Ok(())
}

/// Checks tag keys to remove (1-50 of 1-128 characters).
pub fn tag_keys(keys: &[String]) -> KinesisResult<()> {
    if keys.is_empty() || keys.len() > 50 {
        return Err(KinesisError::validation(
            &format!("{} keys", keys.len()),
            "tagKeys",
            "Member must have length between 1 and 50",
        ));
    }
    for k in keys {
        if k.is_empty() || k.chars().count() > 128 {
            return Err(KinesisError::validation(
                k,
                "tagKeys.member",
                "Member must have length between 1 and 128",
            ));
        }
    }
    Ok(())
}

/// Checks a shard id member (the model's pattern) and returns its index.
pub fn shard(member: &str, id: &str) -> KinesisResult<Option<u32>> {
    if !is_name(id) {
        return Err(KinesisError::validation(
            id,
            member,
            "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
        ));
    }
    Ok(vigil_datastreams::model::parse_shard_id(id))
}

/// A required member that is missing (AWS's message).
pub fn null(member: &str) -> KinesisError {
    KinesisError::validation("null", member, "Member must not be null")
}

/// Checks an integer against an inclusive range.
pub fn range(member: &str, v: i64, min: i64, max: i64) -> KinesisResult<()> {
    if v < min {
        return Err(KinesisError::validation(
            &v.to_string(),
            member,
            &format!("Member must have value greater than or equal to {min}"),
        ));
    }
    if v > max {
        return Err(KinesisError::validation(
            &v.to_string(),
            member,
            &format!("Member must have value less than or equal to {max}"),
        ));
    }
    Ok(())
}

/// Checks a hash key member (`0|([1-9]\d{0,38})`, below 2^128) and returns it.
pub fn hash_key(member: &str, s: &str) -> KinesisResult<u128> {
    let pattern_ok = !s.is_empty()
        && s.len() <= 39
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    if !pattern_ok {
        return Err(KinesisError::validation(
            s,
            member,
            "Member must satisfy regular expression pattern: 0|([1-9]\\d{0,38})",
        ));
    }
    vigil_datastreams::hash::parse_hash_key(s).ok_or_else(|| {
        KinesisError::invalid(format!(
            "Invalid {member}. {member} must be in the range: [0, 2^128-1]. Specified value \
             was {s}"
        ))
    })
}

/// Checks a sequence number member's shape (`0|([1-9]\d{0,128})`).
pub fn sequence_shape(member: &str, s: &str) -> KinesisResult<()> {
    if vigil_datastreams::SequenceNumber::is_model_shape(s) {
        Ok(())
    } else {
        Err(KinesisError::validation(
            s,
            member,
            "Member must satisfy regular expression pattern: 0|([1-9]\\d{0,128})",
        ))
    }
}

/// Checks an enum member.
pub fn one_of<'a>(member: &str, v: &'a str, allowed: &[&str]) -> KinesisResult<&'a str> {
    if allowed.contains(&v) {
        Ok(v)
    } else {
        Err(KinesisError::validation(
            v,
            member,
            &format!(
                "Member must satisfy enum value set: [{}]",
                allowed.join(", ")
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use vigil_api_common::error::AwsError;

    #[test]
    fn names_and_keys() {
        assert!(is_name("faces.v1-a_b"));
        assert!(!is_name("a b"));
        assert!(!is_name(&"a".repeat(129)));
        let e = stream_name("streamName", "a/b").unwrap_err();
        assert_eq!(e.aws_code(), "ValidationException");
        assert_eq!(
            e.message(),
            "1 validation error detected: Value 'a/b' at 'streamName' failed to satisfy \
             constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"
        );
        assert_eq!(hash_key("explicitHashKey", "0").unwrap(), 0);
        assert_eq!(
            hash_key("explicitHashKey", "340282366920938463463374607431768211456")
                .unwrap_err()
                .aws_code(),
            "InvalidArgumentException"
        );
        assert_eq!(
            hash_key("explicitHashKey", "01").unwrap_err().aws_code(),
            "ValidationException"
        );
        assert_eq!(shard("shardId", "shardId-000000000002").unwrap(), Some(2));
        assert_eq!(shard("shardId", "other").unwrap(), None);
        assert!(range("limit", 0, 1, 10).is_err());
        assert!(range("limit", 11, 1, 10).is_err());
        assert!(one_of("type", "LATEST", &["LATEST"]).is_ok());
        assert!(one_of("type", "BOGUS", &["LATEST"]).is_err());
        let mut t = BTreeMap::new();
        t.insert("team".to_owned(), "home cams".to_owned());
        assert!(tags(&t).is_ok());
        t.insert("bad*key".to_owned(), String::new());
        assert!(tags(&t).is_err());
    }
}
