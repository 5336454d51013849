//! The SNS query protocol's request decoding (a form body, then every reader on the
//! prefixes SNS uses) and its XML text escaping: `vigil_api_sns::query::fuzz_form`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vigil_api_sns::query::fuzz_form(data);
});
