//! Fragmented MP4 (ISO/IEC 14496-12 §8.8; CMAF-style) for HLS (fMP4, RFC 8216 §3.3) and DASH
//! (`../shared/spec/kvs-api.md` §4.3, §4.4): one init segment per track set, one media segment
//! per fragment.
//!
//! The boxes are written by hand (`boxes.rs` says why: only encoding, a fixed handful of boxes). An init segment is `ftyp`
//! (`iso6`, compatible `iso6 iso5 mp41 dash cmfc`) and `moov` (`mvhd`, one `trak` per track
//! with an empty sample table and one sample entry, `mvex`/`trex`). A media segment is `styp`,
//! `moof` (`mfhd`; per track a `traf` with `tfhd` (default-base-is-moof), `tfdt` version 1 (the
//! track's first decode time) and `trun` version 1 (data offset, per-sample duration, size,
//! flags and signed composition offset)), then one `mdat` holding each track's samples in
//! `traf` order.
//!
//! Decode times run ahead of presentation by the track's fixed [`Track::dts_shift`] (the
//! reorder delay; `sample` says how it is chosen). The media timeline is the samples' times
//! plus that shift (`tfdt` = DTS + shift, never negative), and a track with a shift has an edit
//! list in the init segment (`edts`/`elst`: one edit, `segment_duration` 0, i.e. all
//! fragments, from `media_time` = shift) that takes it out of presentation again, so players
//! present each sample at its source presentation time and decode times stay where ffmpeg's
//! MP4 demuxer reads them (DTS = the sample's `dts`). Since the shift is the same in every
//! call, segments packaged one at a time, in any order, fit the same init segment.

use bytes::Bytes;

use crate::boxes::{self, NON_SYNC_FLAGS, SYNC_FLAGS, Writer};
use crate::error::{Error, Result};
use crate::sample::{Sample, Track};

/// The init segment for `tracks` (track IDs are 1, 2, … in this order).
pub fn init_segment(tracks: &[Track]) -> Result<Bytes> {
    if tracks.is_empty() {
        return Err(Error::Limit("no tracks".to_owned()));
    }
    let mut w = Writer::new();
    boxes::file_type(
        &mut w,
        b"ftyp",
        b"iso6",
        0,
        &[b"iso6", b"iso5", b"mp41", b"dash", b"cmfc"],
    );
    let mut result = Ok(());
    w.boxed(b"moov", |w| {
        boxes::mvhd(w, 0, boxes::track_id(tracks.len()));
        for (i, track) in tracks.iter().enumerate() {
            w.boxed(b"trak", |w| {
                boxes::tkhd(w, boxes::track_id(i), track, 0);
                if track.dts_shift > 0 {
                    // One edit over all fragments (segment_duration 0), from the shift on.
                    boxes::edts(w, 0, 0, track.dts_shift);
                }
                w.boxed(b"mdia", |w| {
                    boxes::mdhd(w, track.timescale, 0);
                    boxes::hdlr(w, track.is_video());
                    w.boxed(b"minf", |w| {
                        boxes::media_header_and_dinf(w, track.is_video());
                        w.boxed(b"stbl", |w| {
                            if let Err(e) = boxes::stsd(w, track) {
                                result = Err(e);
                            }
                            w.full(b"stts", 0, 0, |w| w.u32(0));
                            w.full(b"stsc", 0, 0, |w| w.u32(0));
                            w.full(b"stsz", 0, 0, |w| w.zeros(8));
                            w.full(b"stco", 0, 0, |w| w.u32(0));
                        });
                    });
                });
            });
        }
        w.boxed(b"mvex", |w| {
            for i in 0..tracks.len() {
                boxes::trex(w, boxes::track_id(i));
            }
        });
    });
    result?;
    Ok(Bytes::from(w.finish()?))
}

/// A media segment holding `samples` (each track's in decode order; tracks without samples
/// get no `traf`), numbered `sequence` (`mfhd`; 1 for the first). Every sample's track must be
/// in `tracks`.
pub fn media_segment(sequence: u32, tracks: &[Track], samples: &[Sample]) -> Result<Bytes> {
    let sizes: Vec<usize> = samples.iter().map(|s| s.data.len()).collect();
    let (head, order) = layout(sequence, tracks, samples, &sizes)?;
    let mut out = Vec::with_capacity(head.len() + sizes.iter().sum::<usize>());
    out.extend_from_slice(&head);
    for i in order {
        if let Some(s) = samples.get(i) {
            out.extend_from_slice(&s.data);
        }
    }
    Ok(Bytes::from(out))
}

/// The start of [`media_segment`] (`styp`, `moof` and the `mdat` header) for samples given
/// without their bytes, `sizes[i]` being sample `i`'s size: the `mdat` payload that must follow
/// is the samples' bytes, each track's in turn (in `tracks` order), so for one track it is
/// its samples' bytes in order. For a packager that streams the frames after.
pub fn media_segment_head(
    sequence: u32,
    tracks: &[Track],
    samples: &[Sample],
    sizes: &[usize],
) -> Result<Bytes> {
    layout(sequence, tracks, samples, sizes).map(|(head, _)| head)
}

/// The segment's head and the order of the samples in its `mdat`.
fn layout(
    sequence: u32,
    tracks: &[Track],
    samples: &[Sample],
    sizes: &[usize],
) -> Result<(Bytes, Vec<usize>)> {
    if sizes.len() != samples.len() {
        return Err(Error::Limit("a size for every sample".to_owned()));
    }
    let mut per_track: Vec<Vec<(usize, &Sample)>> = vec![Vec::new(); tracks.len()];
    for (index, sample) in samples.iter().enumerate() {
        let i = tracks
            .iter()
            .position(|t| t.number == sample.track)
            .ok_or_else(|| Error::Limit(format!("sample of unknown track {}", sample.track)))?;
        if let Some(list) = per_track.get_mut(i) {
            list.push((index, sample));
        }
    }
    if samples.is_empty() {
        return Err(Error::Limit("a media segment needs samples".to_owned()));
    }

    let mut w = Writer::new();
    boxes::file_type(&mut w, b"styp", b"msdh", 0, &[b"msdh", b"msix"]);
    let moof_start = w.len();
    // (position of trun's data_offset, offset of the track's data within the mdat payload)
    let mut patches: Vec<(usize, u64)> = Vec::new();
    let mut data_len = 0u64;
    let mut result = Ok(());
    w.boxed(b"moof", |w| {
        w.full(b"mfhd", 0, 0, |w| w.u32(sequence));
        for (i, list) in per_track.iter().enumerate() {
            let Some((_, first)) = list.first() else {
                continue;
            };
            w.boxed(b"traf", |w| {
                w.full(b"tfhd", 0, 0x02_0000, |w| w.u32(boxes::track_id(i)));
                let shift = tracks.get(i).map_or(0, |t| t.dts_shift.max(0));
                let tfdt = first.dts.saturating_add(shift);
                if tfdt < 0 {
                    result = Err(Error::Limit(format!(
                        "track {}: negative decode time {}",
                        first.track, first.dts
                    )));
                }
                w.full(b"tfdt", 1, 0, |w| w.u64(tfdt.max(0) as u64));
                // data-offset, duration, size, flags, composition time offset.
                w.full(b"trun", 1, 0x0f01, |w| {
                    w.u32(u32::try_from(list.len()).unwrap_or(u32::MAX));
                    patches.push((w.len(), data_len));
                    w.u32(0);
                    for &(index, s) in list {
                        let len = sizes.get(index).copied().unwrap_or(0);
                        let size = u32::try_from(len).unwrap_or(u32::MAX);
                        let cto = s.pts.saturating_sub(s.dts);
                        let cto = i32::try_from(cto).unwrap_or_else(|_| {
                            result = Err(Error::Limit(format!(
                                "track {}: composition offset {cto} out of range",
                                s.track
                            )));
                            0
                        });
                        w.u32(s.duration);
                        w.u32(size);
                        w.u32(if s.keyframe {
                            SYNC_FLAGS
                        } else {
                            NON_SYNC_FLAGS
                        });
                        w.i32(cto);
                        data_len += len as u64;
                    }
                });
            });
        }
    });
    result?;
    let moof_len = (w.len() - moof_start) as u64;
    let header = boxes::mdat_header(data_len);
    for (pos, offset) in patches {
        let data_offset = moof_len + header.len() as u64 + offset;
        let data_offset = u32::try_from(data_offset)
            .map_err(|_| Error::Limit("a media segment over 4 GiB".to_owned()))?;
        w.patch_u32(pos, data_offset);
    }
    w.bytes(&header);
    let order = per_track.iter().flatten().map(|&(i, _)| i).collect();
    Ok((Bytes::from(w.finish()?), order))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;
    use crate::boxes::tests::parse;
    use crate::codec::Codec;
    use proptest::prelude::*;

    fn tracks() -> Vec<Track> {
        vec![
            Track {
                number: 1,
                codec: Codec::H264 {
                    avcc: Bytes::from_static(&[1, 0x64, 0, 0x1f, 0xff, 0xe0, 0]),
                    width: 640,
                    height: 480,
                },
                timescale: 90_000,
                dts_shift: 3003,
            },
            Track {
                number: 2,
                codec: Codec::Aac {
                    asc: Bytes::from_static(&[0x11, 0x90]),
                    sample_rate: 48_000,
                    channels: 2,
                },
                timescale: 48_000,
                dts_shift: 0,
            },
        ]
    }

    #[test]
    fn init_layout() {
        let init = init_segment(&tracks()).unwrap();
        let top = parse(&init);
        let kinds: Vec<_> = top.iter().map(|b| &b.kind).collect();
        assert_eq!(kinds, vec![b"ftyp", b"moov"]);
        let moov: Vec<_> = top[1].children.iter().map(|b| b.kind).collect();
        assert_eq!(moov, vec![*b"mvhd", *b"trak", *b"trak", *b"mvex"]);
    }

    fn be32(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
    }

    proptest! {
        /// Sizes add up, and each trun reads back as the samples given, pointing at their
        /// bytes in the mdat.
        #[test]
        fn media_segment_reads_back(
            spec in proptest::collection::vec((1u64..=2, 0u32..4000, -3000i64..3000, any::<bool>(), 0usize..300), 1..40),
            sequence in any::<u32>(),
        ) {
            let mut dts = [1_000_000i64, 1_000_000];
            let samples: Vec<Sample> = spec.iter().enumerate().map(|(n, &(track, duration, cto, keyframe, len))| {
                let t = (track - 1) as usize;
                let s = Sample {
                    track,
                    dts: dts[t],
                    pts: dts[t] + cto,
                    duration,
                    keyframe,
                    data: Bytes::from(vec![n as u8; len]),
                };
                dts[t] += i64::from(duration);
                s
            }).collect();
            let seg = media_segment(sequence, &tracks(), &samples).unwrap();
            let top = parse(&seg);
            prop_assert_eq!(top.len(), 3);
            prop_assert_eq!(&top[2].kind, b"mdat");
            let moof_len = 8 + top[1].body.len();
            let mdat_start = seg.len() - top[2].body.len();
            prop_assert_eq!(be32(&top[1].children[0].body, 4), sequence);
            for traf in &top[1].children[1..] {
                let tfhd = &traf.children[0].body;
                let number = u64::from(be32(tfhd, 4));
                let expected: Vec<&Sample> = samples.iter().filter(|s| s.track == number).collect();
                let tfdt = &traf.children[1].body;
                prop_assert_eq!(u64::from_be_bytes(tfdt[4..12].try_into().unwrap()) as i64, expected[0].dts + tracks()[number as usize - 1].dts_shift);
                let trun = &traf.children[2].body;
                prop_assert_eq!(be32(trun, 4) as usize, expected.len());
                // data_offset is from the moof's first byte.
                let moof_start = mdat_start - 8 - moof_len;
                let mut at = moof_start + be32(trun, 8) as usize;
                for (k, s) in expected.iter().enumerate() {
                    let e = 12 + k * 16;
                    prop_assert_eq!(be32(trun, e), s.duration);
                    prop_assert_eq!(be32(trun, e + 4) as usize, s.data.len());
                    prop_assert_eq!(be32(trun, e + 8) == SYNC_FLAGS, s.keyframe);
                    prop_assert_eq!(be32(trun, e + 12) as i32 as i64, s.pts - s.dts);
                    prop_assert_eq!(&seg[at..at + s.data.len()], &s.data[..]);
                    at += s.data.len();
                }
            }
        }
    }
}
