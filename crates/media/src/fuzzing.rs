//! The body of the `annexb` fuzz target, here so that ordinary tests replay the fuzz corpus
//! through the same code (`fuzz/README.md`).

use crate::annexb::{AccessUnits, NalKind, classify};
use crate::codec::{avc_decoder_config, h264_sps_size, h265_sps, hevc_decoder_config};

/// Reads `data` as H.264 and as H.265, whole and in chunks whose sizes come from the data,
/// asserting that both give the same access units; then runs the SPS parsers and the decoder
/// configuration builders on every parameter set found. Nothing may panic.
pub fn annexb(data: &[u8]) {
    let sizes: Vec<usize> = data
        .iter()
        .take(8)
        .map(|&b| usize::from(b % 32) + 1)
        .collect();
    for h265 in [false, true] {
        let whole = run(data, &[usize::MAX], h265);
        let chunked = run(data, if sizes.is_empty() { &[1] } else { &sizes }, h265);
        assert_eq!(whole, chunked, "chunking changed the access units");
        let (mut vps, mut sps, mut pps) = (Vec::new(), Vec::new(), Vec::new());
        for au in whole.iter().flatten() {
            assert!(!au.nals.is_empty());
            assert_eq!(
                au.length_prefixed().len(),
                au.nals.iter().map(|n| n.len() + 4).sum::<usize>()
            );
            for nal in &au.nals {
                match classify(nal, h265) {
                    NalKind::Parameters(32) => vps.push(nal.as_slice()),
                    NalKind::Parameters(7 | 33) => {
                        sps.push(nal.as_slice());
                        let _ = h264_sps_size(nal);
                        let _ = h265_sps(nal);
                    }
                    NalKind::Parameters(8 | 34) => pps.push(nal.as_slice()),
                    _ => {}
                }
            }
        }
        let _ = avc_decoder_config(&sps, &pps);
        let _ = hevc_decoder_config(&vps, &sps, &pps);
    }
}

type Outcome = Vec<Result<crate::annexb::AccessUnit, crate::annexb::AnnexBError>>;

fn run(data: &[u8], sizes: &[usize], h265: bool) -> Outcome {
    let mut r = AccessUnits::new(h265);
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes
            .get(i % sizes.len().max(1))
            .copied()
            .unwrap_or(usize::MAX)
            .min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        r.push(chunk);
        rest = tail;
        i += 1;
        while let Some(au) = r.pull() {
            let stop = au.is_err();
            out.push(au);
            if stop {
                return out;
            }
        }
    }
    r.finish();
    while let Some(au) = r.pull() {
        let stop = au.is_err();
        out.push(au);
        if stop {
            break;
        }
    }
    out
}
