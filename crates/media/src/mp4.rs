//! Progressive MP4 for GetClip (`../shared/spec/kvs-api.md` §4.5): `ftyp`, then `moov` at the
//! front (so players start before the whole file is read), then one `mdat`.
//!
//! Samples are stored in the order given (stream order: tracks interleaved as the Matroska
//! Clusters had them); each run of consecutive samples of one track is a chunk. The sample
//! tables are `stts`, `ctts` (only where a presentation time differs from its decode time;
//! version 1, signed, when an offset is negative), `stss` (only when some sample is not a
//! sync sample), `stsz`, `stsc` and `stco`, or `co64` when the file passes 4 GiB. Chunk offsets
//! are computed after the `moov` is sized (its size does not depend on their values).
//!
//! Time zero of the clip is the earliest presentation time of any track. Each track has an
//! edit list: an empty edit for the time its first presented sample comes after zero, then
//! its media from its earliest presentation time, so that composition offsets (B-frames) do
//! not delay the start and tracks stay aligned.

use bytes::Bytes;

use crate::boxes::{self, MOVIE_TIMESCALE, Writer};
use crate::error::{Error, Result};
use crate::sample::{Sample, Track};

/// What the sample tables of one track need.
struct TrackPlan<'a> {
    track: &'a Track,
    samples: Vec<&'a Sample>,
    /// Each sample's size.
    sizes: Vec<usize>,
    /// (offset of the chunk within the mdat payload, samples in it)
    chunks: Vec<(u64, u32)>,
}

/// A progressive MP4 holding `samples` (each track's in decode order). Tracks without samples
/// are left out; every sample's track must be in `tracks`.
pub fn clip(tracks: &[Track], samples: &[Sample]) -> Result<Bytes> {
    let sizes: Vec<usize> = samples.iter().map(|s| s.data.len()).collect();
    let head = clip_head(tracks, samples, &sizes)?;
    let total = head.len() + sizes.iter().sum::<usize>();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&head);
    for sample in samples {
        out.extend_from_slice(&sample.data);
    }
    Ok(Bytes::from(out))
}

/// The start of [`clip`] (`ftyp`, `moov` and the `mdat` header) for samples given without
/// their bytes, `sizes[i]` being sample `i`'s size: the `mdat` payload that must follow is
/// every sample's bytes in the order given. For a clip whose frames are streamed after.
pub fn clip_head(tracks: &[Track], samples: &[Sample], sizes: &[usize]) -> Result<Bytes> {
    if samples.is_empty() {
        return Err(Error::Limit("a clip needs samples".to_owned()));
    }
    if sizes.len() != samples.len() {
        return Err(Error::Limit("a size for every sample".to_owned()));
    }
    let mut plans: Vec<TrackPlan> = tracks
        .iter()
        .map(|track| TrackPlan {
            track,
            samples: Vec::new(),
            sizes: Vec::new(),
            chunks: Vec::new(),
        })
        .collect();
    let mut offset = 0u64;
    let mut previous: Option<usize> = None;
    for (sample, &size) in samples.iter().zip(sizes) {
        let i = tracks
            .iter()
            .position(|t| t.number == sample.track)
            .ok_or_else(|| Error::Limit(format!("sample of unknown track {}", sample.track)))?;
        let Some(plan) = plans.get_mut(i) else {
            continue;
        };
        plan.samples.push(sample);
        plan.sizes.push(size);
        match plan.chunks.last_mut() {
            Some((_, count)) if previous == Some(i) => *count += 1,
            _ => plan.chunks.push((offset, 1)),
        }
        previous = Some(i);
        offset += size as u64;
    }
    let data_len = offset;
    plans.retain(|p| !p.samples.is_empty());

    // Time zero: the earliest presentation time, in ms.
    let start_ms = |p: &TrackPlan| {
        let min_pts = p.samples.iter().map(|s| s.pts).min().unwrap_or(0);
        i128::from(min_pts) * 1000 / i128::from(p.track.timescale.max(1))
    };
    let zero_ms = plans.iter().map(start_ms).min().unwrap_or(0);

    let ftyp = {
        let mut w = Writer::new();
        boxes::file_type(
            &mut w,
            b"ftyp",
            b"isom",
            0x200,
            &[b"isom", b"iso2", b"avc1", b"mp41"],
        );
        w.finish()?
    };
    // Size the moov with offsets from 0, then write it with the real ones.
    let co64 = {
        let probe = moov(&plans, zero_ms, start_ms, 0, false)?;
        let header = boxes::mdat_header(data_len).len() as u64;
        (ftyp.len() as u64 + probe.len() as u64 + header + data_len) > u64::from(u32::MAX)
    };
    let moov_len = moov(&plans, zero_ms, start_ms, 0, co64)?.len() as u64;
    let header = boxes::mdat_header(data_len);
    let base = ftyp.len() as u64 + moov_len + header.len() as u64;
    let moov = moov(&plans, zero_ms, start_ms, base, co64)?;

    let mut out = Vec::with_capacity(ftyp.len() + moov.len() + header.len());
    out.extend_from_slice(&ftyp);
    out.extend_from_slice(&moov);
    out.extend_from_slice(&header);
    Ok(Bytes::from(out))
}

fn ms(ticks: i128, timescale: u32) -> u64 {
    u64::try_from(ticks * i128::from(MOVIE_TIMESCALE) / i128::from(timescale.max(1))).unwrap_or(0)
}

fn moov(
    plans: &[TrackPlan],
    zero_ms: i128,
    start_ms: impl Fn(&TrackPlan) -> i128,
    base: u64,
    co64: bool,
) -> Result<Vec<u8>> {
    let mut w = Writer::new();
    let mut result = Ok(());
    let mut durations = Vec::new();
    for p in plans {
        let media: i128 = p.samples.iter().map(|s| i128::from(s.duration)).sum();
        let first_dts = p.samples.first().map_or(0, |s| s.dts);
        let min_pts = p.samples.iter().map(|s| s.pts).min().unwrap_or(0);
        let media_time = (i128::from(min_pts) - i128::from(first_dts)).max(0);
        let empty = u64::try_from(start_ms(p) - zero_ms).unwrap_or(0);
        let edit = ms((media - media_time).max(0), p.track.timescale);
        durations.push((media, media_time, empty, edit));
    }
    let movie = durations
        .iter()
        .map(|(_, _, empty, edit)| empty + edit)
        .max()
        .unwrap_or(0);
    w.boxed(b"moov", |w| {
        boxes::mvhd(w, movie, boxes::track_id(plans.len()));
        for (k, (p, &(media, media_time, empty, edit))) in plans.iter().zip(&durations).enumerate()
        {
            w.boxed(b"trak", |w| {
                boxes::tkhd(w, boxes::track_id(k), p.track, empty + edit);
                boxes::edts(w, empty, edit, i64::try_from(media_time).unwrap_or(0));
                w.boxed(b"mdia", |w| {
                    boxes::mdhd(w, p.track.timescale, u64::try_from(media).unwrap_or(0));
                    boxes::hdlr(w, p.track.is_video());
                    w.boxed(b"minf", |w| {
                        boxes::media_header_and_dinf(w, p.track.is_video());
                        w.boxed(b"stbl", |w| {
                            if let Err(e) = boxes::stsd(w, p.track) {
                                result = Err(e);
                            }
                            if let Err(e) = sample_tables(w, p, base, co64) {
                                result = Err(e);
                            }
                        });
                    });
                });
            });
        }
    });
    result?;
    w.finish()
}

/// Run-length encodes `values`.
fn runs<T: PartialEq + Copy>(values: impl Iterator<Item = T>) -> Vec<(u32, T)> {
    let mut out: Vec<(u32, T)> = Vec::new();
    for v in values {
        match out.last_mut() {
            Some((n, last)) if *last == v => *n += 1,
            _ => out.push((1, v)),
        }
    }
    out
}

fn count(n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error::Limit("too many samples".to_owned()))
}

/// `stts`, `ctts`, `stss`, `stsz`, `stsc`, `stco`/`co64`.
fn sample_tables(w: &mut Writer, p: &TrackPlan, base: u64, co64: bool) -> Result<()> {
    let stts = runs(p.samples.iter().map(|s| s.duration));
    w.full(b"stts", 0, 0, |w| {
        w.u32(stts.len() as u32);
        for (n, d) in &stts {
            w.u32(*n);
            w.u32(*d);
        }
    });
    let mut offsets = Vec::with_capacity(p.samples.len());
    for s in &p.samples {
        let cto = s.pts.saturating_sub(s.dts);
        offsets.push(i32::try_from(cto).map_err(|_| {
            Error::Limit(format!(
                "track {}: composition offset {cto} out of range",
                s.track
            ))
        })?);
    }
    if offsets.iter().any(|&o| o != 0) {
        let negative = offsets.iter().any(|&o| o < 0);
        let ctts = runs(offsets.iter().copied());
        w.full(b"ctts", u8::from(negative), 0, |w| {
            w.u32(ctts.len() as u32);
            for (n, o) in &ctts {
                w.u32(*n);
                w.i32(*o);
            }
        });
    }
    if p.samples.iter().any(|s| !s.keyframe) {
        let sync: Vec<u32> = (1u32..)
            .zip(&p.samples)
            .filter(|(_, s)| s.keyframe)
            .map(|(i, _)| i)
            .collect();
        w.full(b"stss", 0, 0, |w| {
            w.u32(sync.len() as u32);
            for i in &sync {
                w.u32(*i);
            }
        });
    }
    let n = count(p.samples.len())?;
    let mut sizes = Vec::with_capacity(p.sizes.len());
    for &size in &p.sizes {
        sizes
            .push(u32::try_from(size).map_err(|_| Error::Limit("a sample over 4 GiB".to_owned()))?);
    }
    w.full(b"stsz", 0, 0, |w| {
        w.u32(0);
        w.u32(n);
        for s in &sizes {
            w.u32(*s);
        }
    });
    let stsc = runs(p.chunks.iter().map(|(_, n)| *n));
    w.full(b"stsc", 0, 0, |w| {
        w.u32(stsc.len() as u32);
        let mut first = 1u32;
        for (chunks, per) in &stsc {
            w.u32(first);
            w.u32(*per);
            w.u32(1);
            first += chunks;
        }
    });
    let chunks = count(p.chunks.len())?;
    if co64 {
        w.full(b"co64", 0, 0, |w| {
            w.u32(chunks);
            for (o, _) in &p.chunks {
                w.u64(base + o);
            }
        });
    } else {
        let mut small = Vec::with_capacity(p.chunks.len());
        for (o, _) in &p.chunks {
            small.push(
                u32::try_from(base + o)
                    .map_err(|_| Error::Limit("offset past 4 GiB".to_owned()))?,
            );
        }
        w.full(b"stco", 0, 0, |w| {
            w.u32(chunks);
            for o in &small {
                w.u32(*o);
            }
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;
    use crate::boxes::tests::parse;
    use crate::codec::Codec;

    #[test]
    fn layout_and_offsets() {
        let track = Track {
            number: 1,
            codec: Codec::H264 {
                avcc: Bytes::from_static(&[1, 0x64, 0, 0x1f, 0xff, 0xe0, 0]),
                width: 640,
                height: 480,
            },
            timescale: 90_000,
            dts_shift: 0,
        };
        let samples: Vec<Sample> = (0..5)
            .map(|i| Sample {
                track: 1,
                dts: i * 3000,
                pts: i * 3000 + 3000,
                duration: 3000,
                keyframe: i == 0,
                data: Bytes::from(vec![i as u8; 10 + i as usize]),
            })
            .collect();
        let out = clip(&[track], &samples).unwrap();
        let top = parse(&out);
        let kinds: Vec<_> = top.iter().map(|b| b.kind).collect();
        assert_eq!(kinds, vec![*b"ftyp", *b"moov", *b"mdat"]);
        let stbl = &top[1].children[1].children[2].children[2].children[2];
        let kinds: Vec<_> = stbl.children.iter().map(|b| b.kind).collect();
        assert_eq!(
            kinds,
            vec![
                *b"stsd", *b"stts", *b"ctts", *b"stss", *b"stsz", *b"stsc", *b"stco"
            ]
        );
        let stco = &stbl.children[6].body;
        let offset = u32::from_be_bytes(stco[8..12].try_into().unwrap()) as usize;
        assert_eq!(offset, out.len() - top[2].body.len());
        assert_eq!(&out[offset..offset + 10], &[0u8; 10]);
    }
}
