//! Low-latency HLS partial segments: where one fragment's samples of a track are cut
//! (draft-pantos-hls-rfc8216bis §4.4.4.9, EXT-X-PART).
//!
//! The rule depends only on the samples' decode times, durations and sync flags, so a fragment
//! cut while it is still arriving and cut again once complete gives the same parts (the
//! complete ones of the first cut are a prefix of the second):
//!
//! - a part starts at the fragment's first sample, and at every sync sample of a video track
//!   (so `INDEPENDENT=YES` marks exactly the parts that start with a key frame);
//! - otherwise a sample joins the current part while the part, with it, lasts at most the part
//!   target; a part always holds at least one sample (a single sample longer than the target
//!   makes a part longer than it);
//! - a sample's end (decode time plus duration) is known once the next sample has arrived or
//!   the fragment is complete, so a part is complete once the sample after it is known to
//!   start the next part (that sample is a key frame, or begins past the target, or the one
//!   after it has arrived), or when the fragment is complete.

use crate::sample::Sample;

/// One partial segment: a run of a fragment's samples of one track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartSpan {
    /// Index of its first sample in the slice given to [`cut`].
    pub start: usize,
    /// One past its last sample.
    pub end: usize,
    /// Its duration in the track's timescale (the sum of its samples' durations).
    pub duration: u64,
    /// Starts with a sync sample.
    pub independent: bool,
}

/// The complete parts of one track's samples of one fragment (decode order), cut with a part
/// target of `target` ticks of the track's timescale (see the module docs). `video`: cut at
/// every sync sample. `complete`: the fragment has ended, so its last sample's duration is
/// final and its last part is complete too.
pub fn cut(samples: &[&Sample], target: u64, video: bool, complete: bool) -> Vec<PartSpan> {
    let known = if complete {
        samples.len()
    } else {
        samples.len().saturating_sub(1)
    };
    let target = i128::from(target);
    let mut parts = Vec::new();
    let mut start = 0usize;
    let mut start_dts = 0i128;
    for (i, s) in samples.iter().enumerate() {
        if i == 0 {
            start_dts = i128::from(s.dts);
            continue;
        }
        let starts_new = if i < known {
            let end = i128::from(s.dts) + i128::from(s.duration);
            (video && s.keyframe) || end - start_dts > target
        } else {
            // Its duration is not known yet: decide only what no duration can change.
            let certain = (video && s.keyframe) || i128::from(s.dts) - start_dts > target;
            if !certain {
                break;
            }
            true
        };
        if starts_new {
            parts.push(span(samples, start, i));
            start = i;
            start_dts = i128::from(s.dts);
        }
    }
    if complete && start < samples.len() {
        parts.push(span(samples, start, samples.len()));
    }
    parts
}

fn span(samples: &[&Sample], start: usize, end: usize) -> PartSpan {
    let run = samples.get(start..end).unwrap_or_default();
    PartSpan {
        start,
        end,
        duration: run.iter().map(|s| u64::from(s.duration)).sum(),
        independent: run.first().is_some_and(|s| s.keyframe),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use bytes::Bytes;

    use super::*;

    /// 25 fps video at 90 kHz (3600 ticks a frame), key frames where `key` says.
    fn video(n: usize, key: impl Fn(usize) -> bool) -> Vec<Sample> {
        (0..n)
            .map(|i| Sample {
                track: 1,
                dts: 1_000_000 + 3600 * i as i64,
                pts: 1_000_000 + 3600 * i as i64,
                duration: 3600,
                keyframe: key(i),
                data: Bytes::new(),
            })
            .collect()
    }

    fn refs(s: &[Sample]) -> Vec<&Sample> {
        s.iter().collect()
    }

    #[test]
    fn parts_fill_the_target_and_start_at_key_frames() {
        // 25 frames, a key frame at 0 and 12; target 0.333 s = 29970 ticks: 8 frames fit.
        let s = video(25, |i| i == 0 || i == 12);
        let parts = cut(&refs(&s), 29_970, true, true);
        let bounds: Vec<(usize, usize, bool)> = parts
            .iter()
            .map(|p| (p.start, p.end, p.independent))
            .collect();
        assert_eq!(
            bounds,
            vec![
                (0, 8, true),
                (8, 12, false),
                (12, 20, true),
                (20, 25, false)
            ]
        );
        assert!(parts.iter().all(|p| p.duration <= 29_970));
        assert_eq!(parts.iter().map(|p| p.duration).sum::<u64>(), 25 * 3600);
        // Audio (not video): sync samples do not cut.
        let audio = cut(&refs(&s), 29_970, false, true);
        assert_eq!(audio.len(), 4);
        assert_eq!((audio[1].start, audio[1].end), (8, 16));
    }

    #[test]
    fn a_prefix_gives_a_prefix_of_the_parts() {
        let s = video(25, |i| i == 0);
        let whole = cut(&refs(&s), 29_970, true, true);
        for n in 0..=s.len() {
            let mut prefix: Vec<Sample> = s[..n].to_vec();
            // The last sample of a prefix has a guessed duration: make it wrong on purpose.
            if let Some(last) = prefix.last_mut() {
                last.duration = 90_000;
            }
            let parts = cut(&refs(&prefix), 29_970, true, false);
            assert!(parts.len() <= whole.len());
            assert_eq!(parts[..], whole[..parts.len()], "prefix of {n}");
            // A part is complete once the sample after it is known to start the next part:
            // here (no key frame inside, 8 frames a part) once the one after that has arrived.
            let expected = whole.iter().filter(|p| p.end + 1 < n).count();
            assert_eq!(parts.len(), expected, "prefix of {n}");
        }
    }

    #[test]
    fn a_long_sample_makes_a_part_of_its_own() {
        let mut s = video(3, |i| i == 0);
        s[1].duration = 90_000;
        s[2].dts = s[1].dts + 90_000;
        let parts = cut(&refs(&s), 29_970, true, true);
        let bounds: Vec<(usize, usize)> = parts.iter().map(|p| (p.start, p.end)).collect();
        assert_eq!(bounds, vec![(0, 1), (1, 2), (2, 3)]);
        assert_eq!(parts[1].duration, 90_000);
        // The sample after a part is a key frame, or starts past the target: the part is
        // complete without waiting for the next one.
        let keyed = video(10, |i| i == 0 || i == 5);
        let parts = cut(&refs(&keyed[..6]), 29_970, true, false);
        assert_eq!(parts.len(), 1);
        assert_eq!((parts[0].start, parts[0].end), (0, 5));
        let parts = cut(&refs(&s), 29_970, true, false);
        assert_eq!(
            parts.len(),
            2,
            "sample 2 starts 3 s in: parts 0 and 1 are complete"
        );
        assert!(cut(&[], 29_970, true, true).is_empty());
        assert!(cut(&refs(&s[..1]), 29_970, true, false).is_empty());
    }
}
