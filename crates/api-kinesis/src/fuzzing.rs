//! The body of the `kinesis_wire` fuzz target, here so that ordinary tests run it too
//! (`fuzz/README.md`, the corpus replay in `cbor.rs`'s tests).
//!
//! The input goes through every decoder of untrusted bytes this crate has, none of which may
//! panic or hold memory out of proportion to the input:
//!
//! - as a CBOR body: `check_bounds`, then the transcoding to JSON; what decodes must encode
//!   back to CBOR (`from_json`) and decode again to the same JSON (for inputs whose JSON has
//!   no blob or timestamp member, whose types the transcoding changes on the way back);
//! - as a JSON body, the PutRecords input (the bounded record list);
//! - as text, a shard iterator (`peek_stream`, `decode`) and a pagination token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::cbor;
use crate::tokens::{Iterator, TokenKey, iterator_key};

/// Runs the checks on `data`.
pub fn wire(data: &[u8]) {
    if let Ok(json) = cbor::to_json(data) {
        let back = cbor::from_json(&json);
        let plain = !contains_typed_member(&json);
        let again = cbor::to_json(&back).expect("what the transcoding writes, it reads");
        if plain {
            assert_eq!(again, json, "CBOR -> JSON -> CBOR -> JSON is stable");
        }
    }
    let _ = crate::records::parse_put_records(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let key = iterator_key(&"5a".repeat(32));
        let _ = Iterator::peek_stream(text);
        if let Ok(it) = Iterator::decode(text, &key, u64::MAX / 2) {
            // Whatever verifies was made with the key: it re-encodes to itself.
            assert_eq!(it.encode(&key), text);
        }
        let _ = TokenKey::generate().decode(b'S', text, 0);
    }
}

fn contains_typed_member(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Object(m) => m.iter().any(|(k, v)| {
            cbor::BLOB_MEMBERS.contains(&k.as_str())
                || cbor::TIMESTAMP_MEMBERS.contains(&k.as_str())
                || contains_typed_member(v)
        }),
        serde_json::Value::Array(a) => a.iter().any(contains_typed_member),
        _ => false,
    }
}
