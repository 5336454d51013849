//! Parses arbitrary bytes as the signature parts of a request (`Authorization` header,
//! `X-Amz-Date`, path, query, `Host`, `x-amz-content-sha256`, body) and verifies them,
//! checking the canonical forms and that the verifier accepts the signature it says it
//! expected (`vigil_auth::fuzzing::sigv4_parse`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _verified = vigil_auth::fuzzing::sigv4_parse(data);
});
