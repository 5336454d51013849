//! The media model every packager takes.
//!
//! A [`Track`] is what a player needs to set up a decoder; a [`Sample`] is one frame (an
//! access unit for video, a frame of audio) with its decode and presentation times in the
//! track's timescale. Matroska stores presentation timestamps only; decode times are derived
//! from them with a shift fixed per track ([`Track::dts_shift`], from the codec's declared
//! reorder depth), so fragments packaged independently get consistent decode times (see
//! [`from_fragments`]).

use bytes::Bytes;

use crate::codec::Codec;

/// A track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    /// The Matroska TrackNumber (1 is video for KVS playback).
    pub number: u64,
    /// The codec and its configuration.
    pub codec: Codec,
    /// Ticks per second of the sample times: 90,000 for video, the sample rate for audio.
    pub timescale: u32,
    /// How far decode times run ahead of the presentation order, in ticks: the codec's
    /// declared reorder depth ([`Codec::reorder_frames`]) times the track's frame duration
    /// (see [`from_fragments`]). The same for every fragment of a stream, so that fragments
    /// packaged one call each line up; fMP4 removes it from presentation with an edit list.
    pub dts_shift: i64,
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// The track number.
    pub track: u64,
    /// Decode time, in the track's timescale.
    pub dts: i64,
    /// Presentation time, in the track's timescale.
    pub pts: i64,
    /// Duration, in the track's timescale.
    pub duration: u32,
    /// A sync sample (key frame).
    pub keyframe: bool,
    /// The frame as Matroska carries it (length-prefixed NAL units for H.264/H.265, raw AAC).
    pub data: Bytes,
}

use std::collections::BTreeMap;

use vigil_mkv::{Demuxer, Event, TrackKind};

use crate::error::{Error, Result};

/// The timescale of video tracks.
pub const VIDEO_TIMESCALE: u32 = 90_000;

/// Limits on what [`from_fragments`] holds: more samples than this is an [`Error::Limit`].
pub const MAX_SAMPLES: usize = 1 << 22;

impl Track {
    /// Whether this is a video track.
    pub fn is_video(&self) -> bool {
        self.codec.is_video()
    }
}

/// Nanoseconds to ticks of `timescale`, rounded to nearest (halves away from −∞), so that
/// every time is rounded the same way and durations taken as differences sum exactly.
pub fn ns_to_ticks(ns: i64, timescale: u32) -> i64 {
    let scaled = i128::from(ns) * i128::from(timescale) + 500_000_000;
    let ticks = scaled.div_euclid(1_000_000_000);
    i64::try_from(ticks).unwrap_or(if ticks < 0 { i64::MIN } else { i64::MAX })
}

/// Demuxes a stored track header and fragment payloads (`vigil-api-kvs-common`'s crate docs: the
/// header is the EBML header, an unknown-size Segment, Info and Tracks; each payload a
/// Cluster, then producer Tags) as one stream, and returns the tracks (video and audio; tracks
/// of other kinds and their frames are left out) and the samples in stream order (decode order
/// within a track).
///
/// # Times
///
/// Presentation times are the frames' `time_ns` converted to the track's timescale (90 kHz for
/// video, the sample rate for audio) with [`ns_to_ticks`].
///
/// Matroska keeps no decode times; they are derived per track with a shift fixed for the track,
/// so that every fragment gets the same decode times whether it is packaged alone or with
/// others: the k-th sample in decode (stored) order gets the k-th smallest presentation time
/// of the call, minus the track's [`Track::dts_shift`]. The shift is the codec's declared
/// reorder depth ([`Codec::reorder_frames`]: the H.264 SPS's `max_num_reorder_frames`, the
/// H.265 SPS's `sps_max_num_reorder_pics`, 0 for audio) times the frame duration: the track's
/// DefaultDuration, else the smallest positive spacing of the call's presentation times, else
/// the last frame's duration. This is what ffmpeg's Matroska demuxer and MP4 muxer yield for
/// the same input (ffmpeg delays decoding by the SPS's reorder depth). Where the declared
/// depth is too small for the call's samples (a lying SPS, or a frame duration that varies),
/// the shift is raised to the least that keeps DTS ≤ PTS for that call, and `dts_shift`
/// reports the shift used: such streams are continuous only as far as the shifts agree.
///
/// Decode times are never negative (`tfdt` is unsigned, and a TS decode time would wrap):
/// where the shifted value of the k-th sample (k from 0) is below k, its decode time is k, so
/// the first samples of a stream whose timestamps start within the shift of zero decode one
/// tick apart rather than before zero. Only the first fragment of such a stream is affected
/// (KVS producers' timestamps are absolute), the same in every call.
///
/// Durations are the differences of consecutive decode times, so they sum to the span of the
/// track; the last sample's is its frame's duration (BlockDuration or the track's
/// DefaultDuration), else the one before it.
pub fn from_fragments(header: &[u8], payloads: &[Bytes]) -> Result<(Vec<Track>, Vec<Sample>)> {
    demux(header, payloads, true)
}

/// As [`from_fragments`], for payloads that may end inside their last Cluster (a fragment
/// still arriving, as a live reader sees it): the frames received whole are returned and the
/// rest is left unread, not an error. The last sample of each track gets its frame's duration
/// (BlockDuration or DefaultDuration) or the one before it, which the next frame may belie;
/// every other sample's times are as [`from_fragments`] gives them for the whole payload when
/// the track's decode order is its presentation order (no B-frames).
pub fn from_fragment_prefix(
    header: &[u8],
    payloads: &[Bytes],
) -> Result<(Vec<Track>, Vec<Sample>)> {
    demux(header, payloads, false)
}

fn demux(header: &[u8], payloads: &[Bytes], whole: bool) -> Result<(Vec<Track>, Vec<Sample>)> {
    let mut scan = Scanner::new(true);
    scan.push(header)?;
    for payload in payloads {
        scan.push(payload)?;
    }
    scan.finish(whole)
        .map(|(tracks, samples, _)| (tracks, samples))
}

/// [`from_fragments`] fed a piece at a time, for input read in bounded pieces: with
/// `keep_data` false the samples come without their bytes (empty `data`) and only their sizes
/// are kept, so that a packager can lay a segment out first and fetch the frames after
/// (a second pass over the same input, [`Frames`]).
#[derive(Debug)]
pub struct Scanner {
    demuxer: Demuxer,
    keep_data: bool,
    tracks: Vec<Track>,
    /// Per track: the samples' indices in `samples`, and the last frame's duration in ns.
    per_track: BTreeMap<u64, (Vec<usize>, Option<u64>)>,
    samples: Vec<Sample>,
    /// Each sample's size in bytes.
    sizes: Vec<usize>,
    seen_tracks: bool,
    /// Per track: DefaultDuration in ticks.
    default_durations: BTreeMap<u64, Option<i64>>,
    /// Whether to find where each sample's bytes lie in the input ([`Scanner::locating`]).
    locate: bool,
    /// The input from `window_start` on: what the demuxer has not consumed yet.
    window: Vec<u8>,
    window_start: u64,
    /// Per sample: the input offset of its bytes, where they lie there as one run.
    locations: Vec<Option<u64>>,
}

impl Scanner {
    /// A scanner without data that also finds where each sample's bytes lie in the input:
    /// for a frame of an unlaced block whose data ends its element (SimpleBlocks, as KVS
    /// producers write them), the offset is checked against the input's bytes, and a
    /// second pass can read the frame by range without demuxing
    /// ([`Scanner::finish_located`]); other frames get no location.
    pub fn locating() -> Self {
        Self {
            locate: true,
            ..Self::new(false)
        }
    }

    /// A scanner; the first bytes pushed are the track header.
    pub fn new(keep_data: bool) -> Self {
        Self {
            demuxer: Demuxer::new(),
            keep_data,
            tracks: Vec::new(),
            per_track: BTreeMap::new(),
            samples: Vec::new(),
            sizes: Vec::new(),
            seen_tracks: false,
            default_durations: BTreeMap::new(),
            locate: false,
            window: Vec::new(),
            window_start: 0,
            locations: Vec::new(),
        }
    }

    /// Demuxes the next bytes.
    pub fn push(&mut self, bytes: &[u8]) -> Result<()> {
        if self.locate {
            self.window.extend_from_slice(bytes);
        }
        self.demuxer.push(bytes);
        self.drain()?;
        if self.locate {
            // What the demuxer consumed holds no frame still to come.
            let consumed = self.demuxer.position().saturating_sub(self.window_start);
            let cut = usize::try_from(consumed)
                .unwrap_or(usize::MAX)
                .min(self.window.len());
            self.window.drain(..cut);
            self.window_start += cut as u64;
        }
        Ok(())
    }

    /// The tracks, the samples (times as [`from_fragments`] gives them) and each sample's
    /// size. `whole`: the input ended at a fragment's end (else a prefix, as
    /// [`from_fragment_prefix`]).
    pub fn finish(self, whole: bool) -> Result<(Vec<Track>, Vec<Sample>, Vec<usize>)> {
        self.finish_located(whole)
            .map(|(tracks, samples, sizes, _)| (tracks, samples, sizes))
    }

    /// As [`Scanner::finish`], with each sample's location in the input (`None` everywhere
    /// unless the scanner is [`Scanner::locating`]).
    #[allow(clippy::type_complexity)]
    pub fn finish_located(
        mut self,
        whole: bool,
    ) -> Result<(Vec<Track>, Vec<Sample>, Vec<usize>, Vec<Option<u64>>)> {
        if whole {
            self.demuxer.finish();
            self.drain()?;
        }
        let Self {
            mut tracks,
            per_track,
            mut samples,
            sizes,
            default_durations,
            mut locations,
            ..
        } = self;
        locations.resize(samples.len(), None);
        if tracks.is_empty() {
            return Err(Error::Matroska("no video or audio track".to_owned()));
        }
        for track in &mut tracks {
            let Some((indices, last_duration_ns)) = per_track.get(&track.number) else {
                continue;
            };
            let last_duration = last_duration_ns
                .and_then(|ns| i64::try_from(ns).ok())
                .map(|ns| ns_to_ticks(ns, track.timescale));
            let frame = default_durations
                .get(&track.number)
                .copied()
                .flatten()
                .or_else(|| min_spacing(&samples, indices))
                .or(last_duration)
                .unwrap_or(0);
            let declared = i64::from(track.codec.reorder_frames()).saturating_mul(frame);
            track.dts_shift = derive_decode_times(&mut samples, indices, last_duration, declared)?;
        }
        Ok((tracks, samples, sizes, locations))
    }

    fn drain(&mut self) -> Result<()> {
        while let Some(event) = self.demuxer.pull() {
            match event.map_err(|e| Error::Matroska(e.to_string()))? {
                Event::Tracks {
                    tracks: entries, ..
                } => {
                    if self.seen_tracks {
                        continue;
                    }
                    self.seen_tracks = true;
                    for entry in &entries {
                        let kind = entry.kind();
                        if kind != TrackKind::Video && kind != TrackKind::Audio {
                            continue;
                        }
                        let codec = Codec::from_track(entry)?;
                        let timescale = match codec.audio_format() {
                            Some((rate, _)) => rate,
                            None => VIDEO_TIMESCALE,
                        };
                        if self.tracks.iter().any(|t| t.number == entry.number) {
                            return Err(Error::Matroska(format!(
                                "track number {} twice",
                                entry.number
                            )));
                        }
                        let frame_ticks = entry
                            .default_duration_ns
                            .and_then(|ns| i64::try_from(ns).ok())
                            .map(|ns| ns_to_ticks(ns, timescale))
                            .filter(|&t| t > 0);
                        self.default_durations.insert(entry.number, frame_ticks);
                        self.tracks.push(Track {
                            number: entry.number,
                            codec,
                            timescale,
                            dts_shift: 0,
                        });
                        self.per_track.insert(entry.number, (Vec::new(), None));
                    }
                }
                Event::Frame(frame) => {
                    let Some(track) = self.tracks.iter().find(|t| t.number == frame.track) else {
                        continue;
                    };
                    let Some((indices, last_duration)) = self.per_track.get_mut(&frame.track)
                    else {
                        continue;
                    };
                    if self.samples.len() >= MAX_SAMPLES {
                        return Err(Error::Limit(format!("more than {MAX_SAMPLES} samples")));
                    }
                    let pts = ns_to_ticks(frame.time_ns, track.timescale);
                    indices.push(self.samples.len());
                    self.sizes.push(frame.data.len());
                    if self.locate {
                        let at = locate_frame(&self.window, self.window_start, &frame);
                        self.locations.push(at);
                    }
                    *last_duration = frame.duration_ns;
                    self.samples.push(Sample {
                        track: frame.track,
                        dts: pts,
                        pts,
                        duration: 0,
                        keyframe: frame.keyframe,
                        data: if self.keep_data {
                            frame.data
                        } else {
                            Bytes::new()
                        },
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Where `frame`'s bytes lie in the input, if they end its element and are there.
fn locate_frame(window: &[u8], window_start: u64, frame: &vigil_mkv::Frame) -> Option<u64> {
    if frame.lace_count > 1 {
        return None;
    }
    let end = frame
        .span
        .offset
        .checked_add(u64::from(frame.span.header_len))?
        .checked_add(frame.span.size?)?;
    let start = end.checked_sub(frame.data.len() as u64)?;
    let from = usize::try_from(start.checked_sub(window_start)?).ok()?;
    let bytes = window.get(from..from.checked_add(frame.data.len())?)?;
    (bytes == &frame.data[..]).then_some(start)
}

/// The frames of the tracks asked for, in stream order, from input fed a piece at a time:
/// the second pass over what a [`Scanner`] without data saw, yielding the bytes in the same
/// order as its samples.
#[derive(Debug)]
pub struct Frames {
    demuxer: Demuxer,
    tracks: Vec<u64>,
}

impl Frames {
    /// Frames of `tracks`; the first bytes pushed are the track header.
    pub fn new(tracks: Vec<u64>) -> Self {
        Self {
            demuxer: Demuxer::new(),
            tracks,
        }
    }

    /// Demuxes the next bytes (`None`: the input's end) and appends each whole frame found,
    /// with its track number, to `out`.
    pub fn push(&mut self, bytes: Option<&[u8]>, out: &mut Vec<(u64, Bytes)>) -> Result<()> {
        match bytes {
            Some(b) => self.demuxer.push(b),
            None => self.demuxer.finish(),
        }
        while let Some(event) = self.demuxer.pull() {
            if let Event::Frame(f) = event.map_err(|e| Error::Matroska(e.to_string()))?
                && self.tracks.contains(&f.track)
            {
                out.push((f.track, f.data));
            }
        }
        Ok(())
    }
}

/// The smallest positive difference between the presentation times of the samples at
/// `indices`.
fn min_spacing(samples: &[Sample], indices: &[usize]) -> Option<i64> {
    let mut pts: Vec<i64> = indices
        .iter()
        .filter_map(|&i| samples.get(i).map(|s| s.pts))
        .collect();
    pts.sort_unstable();
    pts.windows(2)
        .filter_map(|w| match w {
            [a, b] => Some(b.saturating_sub(*a)),
            _ => None,
        })
        .filter(|&d| d > 0)
        .min()
}

/// Sets `dts` and `duration` of the samples at `indices` (one track, decode order) from their
/// `pts` with the shift `declared` (raised where the samples need more; see
/// [`from_fragments`]); returns the shift used.
fn derive_decode_times(
    samples: &mut [Sample],
    indices: &[usize],
    last_duration: Option<i64>,
    declared: i64,
) -> Result<i64> {
    let mut pts: Vec<i64> = Vec::with_capacity(indices.len());
    for &i in indices {
        pts.push(samples.get(i).map_or(0, |s| s.pts));
    }
    let mut sorted = pts.clone();
    sorted.sort_unstable();
    let shift = sorted
        .iter()
        .zip(&pts)
        .map(|(s, p)| s.saturating_sub(*p))
        .max()
        .unwrap_or(0)
        .max(declared)
        .max(0);
    let dts: Vec<i64> = (0i64..)
        .zip(&sorted)
        .map(|(k, s)| s.saturating_sub(shift).max(k))
        .collect();
    let mut previous: Option<u32> = None;
    for (k, &i) in indices.iter().enumerate() {
        let this = dts.get(k).copied().unwrap_or(0);
        let duration = match dts.get(k + 1) {
            Some(next) => next.saturating_sub(this),
            None => last_duration.or(previous.map(i64::from)).unwrap_or(0),
        };
        let duration = u32::try_from(duration)
            .map_err(|_| Error::Limit(format!("sample duration {duration} out of range")))?;
        previous = Some(duration);
        if let Some(sample) = samples.get_mut(i) {
            sample.dts = this;
            sample.duration = duration;
        }
    }
    Ok(shift)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    fn sample(pts: i64) -> Sample {
        Sample {
            track: 1,
            dts: 0,
            pts,
            duration: 0,
            keyframe: false,
            data: Bytes::new(),
        }
    }

    fn derive(pts: &[i64], last: Option<i64>) -> Vec<(i64, i64, u32)> {
        let mut s: Vec<Sample> = pts.iter().map(|&p| sample(p)).collect();
        let idx: Vec<usize> = (0..s.len()).collect();
        derive_decode_times(&mut s, &idx, last, 0).unwrap();
        s.iter().map(|s| (s.dts, s.pts, s.duration)).collect()
    }

    #[test]
    fn no_reordering() {
        assert_eq!(
            derive(&[100, 110, 120], Some(10)),
            vec![(100, 100, 10), (110, 110, 10), (120, 120, 10)]
        );
        assert_eq!(
            derive(&[100, 110], None),
            vec![(100, 100, 10), (110, 110, 10)]
        );
    }

    #[test]
    fn b_frames() {
        // I0 P3 B1 B2 in decode order, frames of 10 ticks.
        let out = derive(&[1000, 1030, 1010, 1020], Some(10));
        assert_eq!(
            out,
            vec![
                (990, 1000, 10),
                (1000, 1030, 10),
                (1010, 1010, 10),
                (1020, 1020, 10)
            ]
        );
        assert!(out.iter().all(|(d, p, _)| d <= p));
    }

    #[test]
    fn declared_shift_is_kept_per_fragment() {
        // I0 P3 B1 B2 | I4 P7 B5 B6, frames of 10 ticks, a declared depth of 2 frames: each
        // half alone gets the decode times it gets within the whole.
        let pts = [1000, 1030, 1010, 1020, 1040, 1070, 1050, 1060];
        let mut whole: Vec<Sample> = pts.iter().map(|&p| sample(p)).collect();
        let idx: Vec<usize> = (0..whole.len()).collect();
        assert_eq!(
            derive_decode_times(&mut whole, &idx, Some(10), 20).unwrap(),
            20
        );
        let mut halves = Vec::new();
        for half in pts.chunks(4) {
            let mut s: Vec<Sample> = half.iter().map(|&p| sample(p)).collect();
            derive_decode_times(&mut s, &[0, 1, 2, 3], Some(10), 20).unwrap();
            halves.extend(s);
        }
        let dts = |v: &[Sample]| v.iter().map(|s| s.dts).collect::<Vec<_>>();
        assert_eq!(dts(&whole), dts(&halves));
        assert_eq!(
            dts(&whole),
            vec![980, 990, 1000, 1010, 1020, 1030, 1040, 1050]
        );
        // A declared depth too small is raised to what the samples need.
        let mut s: Vec<Sample> = pts.iter().map(|&p| sample(p)).collect();
        assert_eq!(derive_decode_times(&mut s, &idx, Some(10), 0).unwrap(), 10);
    }

    #[test]
    fn shift_fixed_where_fragments_reorder_differently() {
        // I0 P1 | I2 P5 B3 B4, frames of 10 ticks: the first fragment has no reordering, the
        // second needs one frame. Derived per call from the samples alone, the second would
        // start decoding at 1010, where the first's last sample decodes; with the track's
        // shift (here one frame) both line up.
        let first = [1000, 1010];
        let second = [1020, 1050, 1030, 1040];
        let run = |pts: &[i64], declared: i64| {
            let mut s: Vec<Sample> = pts.iter().map(|&p| sample(p)).collect();
            let idx: Vec<usize> = (0..s.len()).collect();
            derive_decode_times(&mut s, &idx, Some(10), declared).unwrap();
            s.iter().map(|s| s.dts).collect::<Vec<_>>()
        };
        assert_eq!(run(&first, 0).last(), run(&second, 0).first());
        let mut fixed = run(&first, 10);
        fixed.extend(run(&second, 10));
        assert_eq!(fixed, vec![990, 1000, 1010, 1020, 1030, 1040]);
    }

    #[test]
    fn never_negative() {
        let out = derive(&[0, 30, 10, 20], None);
        assert_eq!(out, vec![(0, 0, 1), (1, 30, 9), (10, 10, 10), (20, 20, 10)]);
    }

    #[test]
    fn rounding() {
        assert_eq!(ns_to_ticks(33_366_666, 90_000), 3003);
        assert_eq!(ns_to_ticks(-1, 90_000), 0);
        assert_eq!(ns_to_ticks(1_000_000_000, 48_000), 48_000);
    }

    /// The located scanner's offsets point at exactly each sample's bytes in the input, and
    /// its times and sizes are the whole scan's; frames it cannot place (laced blocks) get
    /// none, and SimpleBlocks always get one.
    #[test]
    fn located_samples_point_at_their_bytes() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/");
        for (file, all_placed) in [
            ("ffmpeg_h264.mkv", true),
            ("ffmpeg_h264-aac.mkv", true),
            ("ffmpeg_h264-blockgroups.mkv", false),
            ("mkvmerge_h264-aac-laced.mkv", false),
        ] {
            let input = std::fs::read(format!("{root}{file}")).unwrap();
            let mut whole = Scanner::new(true);
            whole.push(&input).unwrap();
            let (_, want, _) = whole.finish(true).unwrap();
            for piece in [1000, 4096, 65536] {
                let mut scan = Scanner::locating();
                for c in input.chunks(piece) {
                    scan.push(c).unwrap();
                }
                let (_, got, sizes, at) = scan.finish_located(true).unwrap();
                assert_eq!(got.len(), want.len(), "{file}");
                let mut placed = 0;
                for ((g, w), (size, at)) in got.iter().zip(&want).zip(sizes.iter().zip(&at)) {
                    assert_eq!((g.pts, g.dts, g.duration), (w.pts, w.dts, w.duration));
                    assert!(g.data.is_empty());
                    assert_eq!(*size, w.data.len());
                    if let Some(at) = at {
                        let at = *at as usize;
                        assert_eq!(&input[at..at + size], &w.data[..], "{file}");
                        placed += 1;
                    }
                }
                if all_placed {
                    assert_eq!(placed, want.len(), "{file}");
                } else {
                    assert!(placed > 0 && placed <= want.len(), "{file}: {placed}");
                }
            }
        }
    }
}
