//! The body of the `demux` fuzz target, here so that ordinary tests replay the fuzz corpus and
//! every crash the fuzzer found through the same code (`fuzz/README.md`).

use crate::{Demuxer, Event, Limits};

/// Demuxes `data` twice, whole and in chunks whose sizes come from the data itself, calling
/// [`Demuxer::check_invariants`] after every step, and asserts that both give the same events
/// and the same error. Small limits make the size checks reachable.
pub fn demux(data: &[u8]) {
    let limits = Limits {
        max_frame_size: 1 << 16,
        max_element_size: 1 << 14,
        max_tag_depth: 8,
        max_tracks: 16,
        max_tag_entries: 64,
    };
    let whole = run(data, &[usize::MAX], limits);
    // Chunk sizes from the first bytes: 1..=64, cycling.
    let sizes: Vec<usize> = data
        .iter()
        .take(8)
        .map(|&b| usize::from(b % 64) + 1)
        .collect();
    let chunked = run(data, if sizes.is_empty() { &[1] } else { &sizes }, limits);
    // Compared through their Debug form: exact, and a NaN Duration equals itself there.
    assert_eq!(
        format!("{whole:?}"),
        format!("{chunked:?}"),
        "chunking changed the events"
    );
}

/// Demuxes `data` pushed in chunks of `sizes` bytes (cycled; `usize::MAX` for the whole input
/// at once) under `limits`, calling [`Demuxer::check_invariants`] after every push and pull,
/// and returns every event and error in order.
pub fn run(data: &[u8], sizes: &[usize], limits: Limits) -> Vec<Result<Event, crate::Error>> {
    let mut d = Demuxer::with_limits(limits);
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes
            .get(i % sizes.len().max(1))
            .copied()
            .unwrap_or(1)
            .clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        i += 1;
        d.push(chunk);
        d.check_invariants();
        while let Some(ev) = d.pull() {
            d.check_invariants();
            out.push(ev);
        }
    }
    d.finish();
    d.check_invariants();
    while let Some(ev) = d.pull() {
        d.check_invariants();
        out.push(ev);
    }
    out
}
