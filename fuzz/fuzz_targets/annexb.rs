//! `vigil_media::fuzzing::annexb`: H.264/H.265 Annex B access units, whole and chunked, and the
//! SPS parsers and decoder configuration builders on every parameter set found.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vigil_media::fuzzing::annexb(data);
});
