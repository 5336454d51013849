//! Demuxes arbitrary bytes whole and in chunks, checking the demuxer's invariants after every
//! step and that both ways give the same events (`vigil_mkv::fuzzing::demux`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vigil_mkv::fuzzing::demux(data);
});
