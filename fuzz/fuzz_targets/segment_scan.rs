//! Scans arbitrary bytes as the records of a segment file, plainly and thoroughly, checking
//! what the scanners report against the bytes (`vigil_store::fuzzing::segment_scan`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vigil_store::fuzzing::segment_scan(data);
});
