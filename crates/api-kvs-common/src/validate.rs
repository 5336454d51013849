//! Validation rules of the service models (`../shared/spec/kvs-api.md` §1.2), checked by the
//! server because clients check only required fields and types (§8, trap 20). Failures are
//! `InvalidArgumentException` with a message naming the parameter.

use std::collections::BTreeMap;

use crate::error::{KvsError, KvsResult};

/// Most tags on one stream.
pub const MAX_TAGS: usize = 50;
/// Most hours of retention (10 years).
pub const MAX_RETENTION_HOURS: u32 = 87_600;

/// `[a-zA-Z0-9_.-]+`, 1–256: stream and channel names.
pub fn is_resource_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Checks a stream name.
pub fn stream_name(field: &str, s: &str) -> KvsResult<()> {
    if is_resource_name(s) {
        Ok(())
    } else {
        Err(KvsError::invalid(format!(
            "{field} {s:?} must be 1 to 256 characters of a-z, A-Z, 0-9, '_', '.' and '-'."
        )))
    }
}

/// Checks a device name (`[a-zA-Z0-9_.-]+`, 1–128).
pub fn device_name(s: &str) -> KvsResult<()> {
    if is_resource_name(s) && s.len() <= 128 {
        Ok(())
    } else {
        Err(KvsError::invalid(format!(
            "DeviceName {s:?} must be 1 to 128 characters of a-z, A-Z, 0-9, '_', '.' and '-'."
        )))
    }
}

/// Checks a media type: `type/subtype` pairs separated by commas, 1–128 characters, each part
/// of `[\w\-\.\+]`.
pub fn media_type(s: &str) -> KvsResult<()> {
    let part = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'+'))
    };
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.split(',').all(|m| {
            let mut it = m.splitn(2, '/');
            matches!((it.next(), it.next()), (Some(a), Some(b)) if part(a) && part(b))
        });
    if ok {
        Ok(())
    } else {
        Err(KvsError::invalid(format!(
            "MediaType {s:?} must be one or more comma-separated type/subtype values such as \
             video/h264 or video/h264,audio/aac."
        )))
    }
}

/// Checks a version token (`[a-zA-Z0-9]+`, 1–64).
pub fn version(field: &str, s: &str) -> KvsResult<()> {
    if !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(KvsError::invalid(format!(
            "{field} must be 1 to 64 letters and digits."
        )))
    }
}

/// A tag key or value character: `[\p{L}\p{Z}\p{N}_.:/=+\-@]`.
fn tag_char(c: char) -> bool {
    c.is_alphanumeric()
        || c.is_whitespace()
        || c == '\u{a0}'
        || matches!(c, '_' | '.' | ':' | '/' | '=' | '+' | '-' | '@')
}

/// Checks one tag.
pub fn tag(key: &str, value: &str) -> KvsResult<()> {
    let klen = key.chars().count();
    if klen == 0 || klen > 128 || !key.chars().all(tag_char) {
        return Err(KvsError::invalid(format!(
            "Tag key {key:?} must be 1 to 128 letters, digits, spaces and _.:/=+-@."
        )));
    }
    if value.chars().count() > 256 || !value.chars().all(tag_char) {
        return Err(KvsError::invalid(format!(
            "The value of tag {key:?} must be at most 256 letters, digits, spaces and _.:/=+-@."
        )));
    }
    Ok(())
}

/// Checks tags being added and that the result stays within [`MAX_TAGS`].
pub fn tags_added(
    existing: &BTreeMap<String, String>,
    added: &BTreeMap<String, String>,
) -> KvsResult<()> {
    // The model's bounds on one request (InvalidArgumentException), before the bound on
    // what the stream would hold (TagsPerResourceExceededLimitException).
    if added.is_empty() || added.len() > MAX_TAGS {
        return Err(KvsError::invalid(format!(
            "Tags must hold 1 to {MAX_TAGS} tags, not {}.",
            added.len()
        )));
    }
    for (k, v) in added {
        tag(k, v)?;
    }
    let total = existing.len() + added.keys().filter(|k| !existing.contains_key(*k)).count();
    if total > MAX_TAGS {
        return Err(KvsError::TagsPerResourceExceededLimitException(format!(
            "A stream can have at most {MAX_TAGS} tags; this request would make {total}."
        )));
    }
    Ok(())
}

/// Checks a list of tag keys to remove (1–50 keys).
pub fn tag_keys(keys: &[String]) -> KvsResult<()> {
    if keys.is_empty() || keys.len() > MAX_TAGS {
        return Err(KvsError::invalid(format!(
            "TagKeyList must hold 1 to {MAX_TAGS} keys."
        )));
    }
    for k in keys {
        tag(k, "")?;
    }
    Ok(())
}

/// Checks `MaxResults` against its range.
pub fn max_results(given: Option<i64>, max: usize, default: usize) -> KvsResult<usize> {
    match given {
        None => Ok(default),
        Some(n) if n >= 1 && n as u64 <= max as u64 => Ok(n as usize),
        Some(n) => Err(KvsError::invalid(format!(
            "MaxResults {n} must be between 1 and {max}."
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_resource_name("cam-1_front.door"));
        assert!(!is_resource_name(""));
        assert!(!is_resource_name("a b"));
        assert!(!is_resource_name(&"a".repeat(257)));
        assert!(is_resource_name(&"a".repeat(256)));
        assert!(device_name(&"d".repeat(129)).is_err());
    }

    #[test]
    fn media_types() {
        for ok in [
            "video/h264",
            "video/h264,audio/aac",
            "application/x-thing+json",
        ] {
            assert!(media_type(ok).is_ok(), "{ok}");
        }
        for bad in ["", "video", "video/", "/h264", "video/h264,", "video/h 264"] {
            assert!(media_type(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tag_rules() {
        assert!(tag("owner", "alice@example.com").is_ok());
        assert!(tag("Ort", "Küche 1").is_ok());
        assert!(tag("", "v").is_err());
        assert!(tag("k", &"v".repeat(257)).is_err());
        assert!(tag("k*", "v").is_err());
        let existing: BTreeMap<String, String> =
            (0..50).map(|i| (format!("k{i}"), String::new())).collect();
        let same: BTreeMap<String, String> = [("k1".to_owned(), "x".to_owned())].into();
        assert!(
            tags_added(&existing, &same).is_ok(),
            "overwriting is not adding"
        );
        let new: BTreeMap<String, String> = [("k50".to_owned(), "x".to_owned())].into();
        assert!(matches!(
            tags_added(&existing, &new),
            Err(KvsError::TagsPerResourceExceededLimitException(_))
        ));
    }

    #[test]
    fn max_results_range() {
        assert_eq!(max_results(None, 1000, 1000).ok(), Some(1000));
        assert_eq!(max_results(Some(1), 1000, 1000).ok(), Some(1));
        assert!(max_results(Some(0), 1000, 1000).is_err());
        assert!(max_results(Some(1001), 1000, 1000).is_err());
        assert!(max_results(Some(-5), 1000, 1000).is_err());
    }
}
