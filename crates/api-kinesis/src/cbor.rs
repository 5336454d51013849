//! AWS CBOR 1.1 (`application/x-amz-cbor-1.1`), the wire of the AWS SDK for Java v1 and v2
//! and so of the Kinesis Client Library, as a transcoding to and from the JSON the handlers
//! read and write.
//!
//! The two encodings carry the same members; they differ in two types (checked against the
//! Java SDK v2's `SdkCborGenerator` and `AwsCborProtocolFactory`):
//!
//! - **blobs** (`Data`) are byte strings in CBOR and base64 text in JSON;
//! - **timestamps** are tag 1 around an **integer of epoch milliseconds** in CBOR (not RFC
//!   8949's seconds: the Java SDK writes `toEpochMilli()` and parses the number as
//!   milliseconds whatever the tag), and epoch seconds as a number in JSON.
//!
//! Requests are self-describing: a byte string becomes base64 text, a tag-1 integer becomes
//! seconds. Responses are not (JSON has no blob or timestamp type), so the members of
//! those types in the model's output shapes are named here ([`BLOB_MEMBERS`],
//! [`TIMESTAMP_MEMBERS`]).
//!
//! Decoding is bounded: the body was read whole under a size limit, nesting is limited by
//! the decoder's recursion limit, and a declared length longer than the input fails.

use std::io::Cursor;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ciborium::value::{Integer, Value as Cbor};
use serde_json::{Map, Number, Value as Json};

/// Output members of type blob in the Kinesis model.
pub const BLOB_MEMBERS: [&str; 1] = ["Data"];
/// Output members of type timestamp in the Kinesis model.
pub const TIMESTAMP_MEMBERS: [&str; 6] = [
    "ApproximateArrivalTimestamp",
    "StreamCreationTimestamp",
    "ConsumerCreationTimestamp",
    "StartedAt",
    "EndedAt",
    "EarliestAllowedEndAt",
];

/// The deepest nesting accepted in a request.
const MAX_DEPTH: usize = 32;
/// The most CBOR items (heads) in a request: a PutRecords of 500 records has about 3,600.
pub const MAX_ITEMS: usize = 20_000;

/// Checks a CBOR body's shape before it is decoded: at most [`MAX_ITEMS`] items, and no
/// declared length beyond what the body holds or that many items, so that what the decoder
/// builds stays in proportion to the body. A linear scan of item heads: definite strings are
/// skipped, everything else is one head.
pub fn check_bounds(body: &[u8]) -> Result<(), String> {
    let mut at = 0usize;
    let mut items = 0usize;
    while let Some(&b) = body.get(at) {
        at += 1;
        items += 1;
        if items > MAX_ITEMS {
            return Err(format!("the CBOR body has more than {MAX_ITEMS} items"));
        }
        let (major, info) = (b >> 5, b & 0x1f);
        let arg = match info {
            0..=23 => u64::from(info),
            24..=27 => {
                let n = 1usize << (info - 24);
                let bytes = body
                    .get(at..at + n)
                    .ok_or_else(|| "the CBOR body ends inside an item head".to_owned())?;
                at += n;
                bytes.iter().fold(0u64, |v, x| (v << 8) | u64::from(*x))
            }
            // Indefinite length (strings, arrays, maps) or break: no argument.
            31 if major >= 2 => continue,
            _ => return Err(format!("a CBOR item head with reserved bits ({b:#04x})")),
        };
        let left = (body.len() - at) as u64;
        match major {
            // Byte and text strings: their bytes follow.
            2 | 3 => {
                if arg > left {
                    return Err("a CBOR string longer than the body".into());
                }
                at += arg as usize;
            }
            // Arrays and maps: their items follow (and are counted as they come).
            4 | 5 if arg > left || arg > MAX_ITEMS as u64 => {
                return Err("a CBOR array or map longer than the body".into());
            }
            _ => {}
        }
    }
    Ok(())
}

/// A CBOR request body as the JSON value the handlers parse.
pub fn to_json(body: &[u8]) -> Result<Json, String> {
    check_bounds(body)?;
    let mut cursor = Cursor::new(body);
    let value: Cbor = ciborium::de::from_reader_with_recursion_limit(&mut cursor, MAX_DEPTH)
        .map_err(|e| format!("the CBOR body does not decode: {e}"))?;
    if usize::try_from(cursor.position()).ok() != Some(body.len()) {
        return Err("the CBOR body has bytes after its value".into());
    }
    cbor_to_json(value)
}

fn cbor_to_json(v: Cbor) -> Result<Json, String> {
    Ok(match v {
        Cbor::Null => Json::Null,
        Cbor::Bool(b) => Json::Bool(b),
        Cbor::Integer(i) => integer(i)?,
        Cbor::Float(f) => Number::from_f64(f)
            .map(Json::Number)
            .ok_or_else(|| format!("{f} is not a number JSON can carry"))?,
        Cbor::Text(s) => Json::String(s),
        Cbor::Bytes(b) => Json::String(BASE64.encode(b)),
        Cbor::Tag(1, inner) => match *inner {
            // AWS CBOR: epoch milliseconds.
            Cbor::Integer(i) => {
                let ms = i128::from(i);
                Number::from_f64(ms as f64 / 1000.0)
                    .map(Json::Number)
                    .ok_or_else(|| "a timestamp out of range".to_owned())?
            }
            // Tolerated: seconds, as RFC 8949 has it.
            Cbor::Float(f) => Number::from_f64(f)
                .map(Json::Number)
                .ok_or_else(|| "a timestamp out of range".to_owned())?,
            other => cbor_to_json(other)?,
        },
        Cbor::Tag(_, inner) => cbor_to_json(*inner)?,
        Cbor::Array(items) => Json::Array(
            items
                .into_iter()
                .map(cbor_to_json)
                .collect::<Result<_, _>>()?,
        ),
        Cbor::Map(entries) => {
            let mut m = Map::new();
            for (k, v) in entries {
                let Cbor::Text(k) = k else {
                    return Err("a CBOR map key that is not text".into());
                };
                m.insert(k, cbor_to_json(v)?);
            }
            Json::Object(m)
        }
        _ => return Err("a CBOR value of an unsupported type".into()),
    })
}

fn integer(i: Integer) -> Result<Json, String> {
    let v = i128::from(i);
    if let Ok(u) = u64::try_from(v) {
        return Ok(Json::Number(u.into()));
    }
    i64::try_from(v)
        .map(|n| Json::Number(n.into()))
        .map_err(|_| format!("{v} is out of range"))
}

/// A handler's JSON output as a CBOR body.
pub fn from_json(v: &Json) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail, and every value here has a CBOR encoding.
    let _ = ciborium::ser::into_writer(&json_to_cbor(v, None), &mut out);
    out
}

fn json_to_cbor(v: &Json, member: Option<&str>) -> Cbor {
    match v {
        Json::Null => Cbor::Null,
        Json::Bool(b) => Cbor::Bool(*b),
        Json::Number(n) => {
            if member.is_some_and(|m| TIMESTAMP_MEMBERS.contains(&m)) {
                let ms = (n.as_f64().unwrap_or(0.0) * 1000.0).round() as i64;
                return Cbor::Tag(1, Box::new(Cbor::Integer(ms.into())));
            }
            if let Some(u) = n.as_u64() {
                Cbor::Integer(u.into())
            } else if let Some(i) = n.as_i64() {
                Cbor::Integer(i.into())
            } else {
                Cbor::Float(n.as_f64().unwrap_or(0.0))
            }
        }
        Json::String(s) => {
            if member.is_some_and(|m| BLOB_MEMBERS.contains(&m))
                && let Ok(b) = BASE64.decode(s)
            {
                return Cbor::Bytes(b);
            }
            Cbor::Text(s.clone())
        }
        Json::Array(items) => Cbor::Array(items.iter().map(|i| json_to_cbor(i, member)).collect()),
        Json::Object(m) => Cbor::Map(
            m.iter()
                .map(|(k, v)| (Cbor::Text(k.clone()), json_to_cbor(v, Some(k))))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    /// The Java SDK v2's PutRecord body (an indefinite-length map, as Jackson writes it):
    /// `{"StreamName": "s1", "Data": h'00ff68656c6c6f', "PartitionKey": "pk"}`.
    const JAVA_PUT_RECORD: &str = "bf6a53747265616d4e616d65627331644461746147 00ff68656c6c6f6c506172746974696f6e4b6579 62706bff";

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn decodes_what_the_java_sdk_sends() {
        let v = to_json(&hex(JAVA_PUT_RECORD)).unwrap();
        assert_eq!(v["StreamName"], "s1");
        assert_eq!(v["PartitionKey"], "pk");
        assert_eq!(
            BASE64.decode(v["Data"].as_str().unwrap()).unwrap(),
            b"\x00\xffhello"
        );
        // GetShardIterator's Timestamp: tag 1, integer milliseconds (c1 1b ...).
        let mut body = vec![0xa1, 0x69];
        body.extend_from_slice(b"Timestamp");
        body.extend_from_slice(&[0xc1, 0x1b]);
        body.extend_from_slice(&1_459_799_926_480u64.to_be_bytes());
        let v = to_json(&body).unwrap();
        assert_eq!(v["Timestamp"].as_f64().unwrap(), 1_459_799_926.48);
    }

    #[test]
    fn refuses_what_is_not_one_cbor_value() {
        assert!(to_json(&[]).is_err());
        let mut two = hex(JAVA_PUT_RECORD);
        two.push(0x00);
        assert!(to_json(&two).is_err(), "trailing bytes");
        // A byte string claiming 2^32 bytes in a 6-byte body.
        assert!(to_json(&[0x5a, 0xff, 0xff, 0xff, 0xff, 0x00]).is_err());
        // Nesting past the limit.
        let deep = vec![0x81; 100];
        assert!(to_json(&deep).is_err());
        // An array claiming 2^32 items, and a body of more items than allowed.
        assert!(to_json(&[0x9a, 0xff, 0xff, 0xff, 0xff, 0x00]).is_err());
        let mut many = vec![0x9f];
        many.extend(std::iter::repeat_n(0x00, MAX_ITEMS));
        many.push(0xff);
        assert!(check_bounds(&many).unwrap_err().contains("more than"));
        // A reserved head.
        assert!(check_bounds(&[0x1c]).is_err());
        assert!(check_bounds(&hex(JAVA_PUT_RECORD)).is_ok());
        // A map keyed by an integer.
        assert!(to_json(&[0xa1, 0x01, 0x02]).is_err());
    }

    #[test]
    fn encodes_blobs_and_timestamps_as_the_java_sdk_reads_them() {
        let out = serde_json::json!({
            "Records": [{
                "Data": BASE64.encode(b"hi"),
                "ApproximateArrivalTimestamp": 1_700_000_000.456,
                "PartitionKey": "pk",
                "SequenceNumber": "4001"
            }],
            "MillisBehindLatest": 0
        });
        let bytes = from_json(&out);
        let v: Cbor = ciborium::de::from_reader(&bytes[..]).unwrap();
        let Cbor::Map(top) = v else { panic!() };
        let records = &top
            .iter()
            .find(|(k, _)| k.as_text() == Some("Records"))
            .unwrap()
            .1;
        let Cbor::Array(items) = records else {
            panic!()
        };
        let Cbor::Map(rec) = &items[0] else { panic!() };
        let get = |name: &str| {
            rec.iter()
                .find(|(k, _)| k.as_text() == Some(name))
                .unwrap()
                .1
                .clone()
        };
        assert_eq!(get("Data"), Cbor::Bytes(b"hi".to_vec()));
        assert_eq!(
            get("ApproximateArrivalTimestamp"),
            Cbor::Tag(1, Box::new(Cbor::Integer(1_700_000_000_456i64.into())))
        );
        assert_eq!(get("PartitionKey"), Cbor::Text("pk".into()));
    }

    #[test]
    fn the_fuzz_corpus_replays() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/kinesis_wire");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            crate::fuzzing::wire(&data);
            n += 1;
        }
        assert!(n >= 6, "{} holds {n} seeds", dir.display());
        // The Java SDK's bodies in the corpus decode.
        let put = std::fs::read(dir.join("java-put-record.cbor")).unwrap();
        assert_eq!(to_json(&put).unwrap()["PartitionKey"], "pk");
        let gsi = std::fs::read(dir.join("java-get-shard-iterator.cbor")).unwrap();
        assert_eq!(
            to_json(&gsi).unwrap()["Timestamp"].as_f64(),
            Some(1_459_799_926.48)
        );
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_decode_or_fail_cleanly(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            crate::fuzzing::wire(&body);
        }
    }
}
