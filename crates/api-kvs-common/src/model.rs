//! Wire shapes shared by the operations: timestamps, fragment numbers, ARNs, `StreamInfo`.
//!
//! Conventions (`../shared/spec/kvs-api.md` §1.1, §2.7): timestamps in JSON bodies are epoch
//! seconds as JSON numbers (integers, decimals or exponent forms in; decimals with millisecond
//! precision out); fragment numbers are decimal strings, never JSON numbers.

use serde::Serialize;
use vigil_store::StreamRecord;

pub use vigil_api_common::wire::{EpochMs, seconds_to_ms};
pub use vigil_api_common::wire::{
    FRAGMENT_NUMBER_DIGITS, fragment_number, is_fragment_number_shape, parse_fragment_number,
};

/// Milliseconds as epoch seconds with three decimals, as MKV tags carry them
/// (`"1726677687.758"`).
pub fn ms_to_decimal_seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// Where the server is, for ARNs.
#[derive(Debug, Clone)]
pub struct ArnContext {
    /// The region (`us-east-1`).
    pub region: String,
    /// The 12-digit account id.
    pub account_id: String,
}

/// A stream's ARN: `arn:aws:kinesisvideo:<region>:<account>:stream/<name>/<creation ms>`.
pub fn stream_arn(ctx: &ArnContext, rec: &StreamRecord) -> String {
    format!(
        "arn:aws:kinesisvideo:{}:{}:stream/{}/{}",
        ctx.region, ctx.account_id, rec.name, rec.creation_time_ms
    )
}

/// A parsed Kinesis Video ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedArn<'a> {
    /// `stream` or `channel`.
    pub kind: &'a str,
    /// The resource name.
    pub name: &'a str,
    /// The creation time suffix.
    pub creation_ms: u64,
    /// The region in the ARN.
    pub region: &'a str,
    /// The account in the ARN.
    pub account_id: &'a str,
}

/// Parses `arn:<partition>:kinesisvideo:<region>:<account>:<kind>/<name>/<digits>`; `None` if
/// it is not of that form (the service model's pattern).
pub fn parse_arn(arn: &str) -> Option<ParsedArn<'_>> {
    if arn.is_empty() || arn.len() > 1024 {
        return None;
    }
    let mut parts = arn.splitn(6, ':');
    let (prefix, partition, service, region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    let partition_ok = !partition.is_empty()
        && partition
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let region_ok = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let account_ok = !account.is_empty() && account.bytes().all(|b| b.is_ascii_digit());
    if prefix != "arn" || service != "kinesisvideo" || !partition_ok || !region_ok || !account_ok {
        return None;
    }
    let mut r = resource.splitn(3, '/');
    let (kind, name, suffix) = (r.next()?, r.next()?, r.next()?);
    if kind.is_empty()
        || !kind.bytes().all(|b| b.is_ascii_lowercase())
        || !crate::validate::is_resource_name(name)
        || suffix.is_empty()
        || !suffix.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some(ParsedArn {
        kind,
        name,
        creation_ms: suffix.parse().ok()?,
        region,
        account_id: account,
    })
}

/// `StreamInfo`, as DescribeStream and ListStreams return it. Unset device name and media
/// type are left out, as KVS does.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamInfo {
    /// Device name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
    /// Stream name.
    pub stream_name: String,
    /// Stream ARN.
    #[serde(rename = "StreamARN")]
    pub stream_arn: String,
    /// Media type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The KMS key id, as an ARN.
    pub kms_key_id: String,
    /// Version token.
    pub version: String,
    /// `ACTIVE` (streams are usable as soon as they are created).
    pub status: &'static str,
    /// Creation time.
    pub creation_time: EpochMs,
    /// Retention.
    pub data_retention_in_hours: u32,
}

/// A master key id as KVS reports it: an ARN (`arn:aws:kms:<region>:<account>:<key id>`).
pub fn kms_key_arn(ctx: &ArnContext, key_id: &str) -> String {
    if key_id.starts_with("arn:") {
        key_id.to_owned()
    } else {
        format!("arn:aws:kms:{}:{}:{key_id}", ctx.region, ctx.account_id)
    }
}

/// The master key id a client's `KmsKeyId` names: an ARN of this server's region and account
/// is reduced to its key id (`arn:aws:kms:us-east-1:1234:alias/x` → `alias/x`).
pub fn kms_key_id_from_client(ctx: &ArnContext, given: &str) -> String {
    let prefix = format!("arn:aws:kms:{}:{}:", ctx.region, ctx.account_id);
    given.strip_prefix(&prefix).unwrap_or(given).to_owned()
}

impl StreamInfo {
    /// From the store's record.
    pub fn from_record(ctx: &ArnContext, rec: &StreamRecord) -> Self {
        Self {
            device_name: rec.device_name.clone(),
            stream_name: rec.name.clone(),
            stream_arn: stream_arn(ctx, rec),
            media_type: rec.media_type.clone(),
            kms_key_id: kms_key_arn(ctx, &rec.kms_key_id),
            version: rec.version.clone(),
            status: "ACTIVE",
            creation_time: EpochMs(rec.creation_time_ms),
            data_retention_in_hours: rec.data_retention_hours,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragment_numbers_round_trip_and_sort_as_strings() {
        for n in [0, 1, 42, u64::MAX / 3, u64::MAX] {
            let s = fragment_number(n);
            assert_eq!(s.len(), FRAGMENT_NUMBER_DIGITS);
            assert_eq!(parse_fragment_number(&s), Some(n));
        }
        assert!(fragment_number(9) < fragment_number(10));
        assert_eq!(parse_fragment_number("12345"), None);
        assert_eq!(parse_fragment_number("9x0000000000000000001"), None);
        assert_eq!(parse_fragment_number(""), None);
    }

    #[test]
    fn timestamps_are_epoch_seconds() {
        let v: EpochMs = serde_json::from_str("1639473904.764").unwrap_or(EpochMs(0));
        assert_eq!(v, EpochMs(1_639_473_904_764));
        let v: EpochMs = serde_json::from_str("1.639473904764E9").unwrap_or(EpochMs(0));
        assert_eq!(v, EpochMs(1_639_473_904_764));
        let v: EpochMs = serde_json::from_str("1704067200").unwrap_or(EpochMs(0));
        assert_eq!(v, EpochMs(1_704_067_200_000));
        assert!(serde_json::from_str::<EpochMs>("-1").is_err());
        assert!(serde_json::from_str::<EpochMs>("\"1\"").is_err());
        assert_eq!(
            serde_json::to_string(&EpochMs(1_639_473_904_764))
                .ok()
                .as_deref(),
            Some("1639473904.764")
        );
        assert_eq!(ms_to_decimal_seconds(1_726_677_687_058), "1726677687.058");
    }

    #[test]
    fn arns_parse() {
        let a = parse_arn("arn:aws:kinesisvideo:us-east-1:123456789012:stream/cam-1/1639473904764");
        assert_eq!(
            a,
            Some(ParsedArn {
                kind: "stream",
                name: "cam-1",
                creation_ms: 1_639_473_904_764,
                region: "us-east-1",
                account_id: "123456789012"
            })
        );
        for bad in [
            "",
            "arn:aws:kinesis:us-east-1:1:stream/a/1",
            "arn:aws:kinesisvideo:us-east-1:1:stream/a",
            "arn:aws:kinesisvideo:us-east-1:x:stream/a/1",
            "arn:aws:kinesisvideo:us-east-1:1:stream/a b/1",
            "arn:aws:kinesisvideo:us-east-1:1:stream/a/1x",
        ] {
            assert_eq!(parse_arn(bad), None, "{bad}");
        }
    }
}
