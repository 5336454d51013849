//! The Kinesis API's decoders of untrusted bytes (CBOR bodies, the PutRecords JSON input,
//! shard iterators and pagination tokens): `vigil_api_kinesis::fuzzing::wire`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vigil_api_kinesis::fuzzing::wire(data);
});
