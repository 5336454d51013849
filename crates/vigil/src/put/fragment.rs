//! Cuts samples into KVS fragments and writes them as a PutMedia body, sans-IO.
//!
//! A fragment starts at each key frame of the key track (the first video track; for an
//! audio-only input, every sample is a key frame and fragments are cut by duration) once the
//! fragment open has lasted `min` (KVS's 1 s minimum, by default); one that reaches `max`
//! (KVS's 20 s maximum) without a key frame is cut at the next sample anyway, with a warning,
//! since KVS would refuse it. Each fragment is one Cluster with an ABSOLUTE Timecode in ms
//! (TimecodeScale 1 ms), its frames as SimpleBlocks, and a Tags element holding
//! `AWS_KINESISVIDEO_END_OF_FRAGMENT`, as the KVS producer SDK writes them: the tag completes
//! the fragment at once on the server, so its acks do not wait for the next Cluster.
//!
//! The fragmenter hands out bytes as soon as a frame is written, so a live source reaches the
//! server (and its live readers) frame by frame; it also keeps each fragment's bytes whole
//! until the uploader drops them, so that a fragment can be resent on a new connection.

use std::collections::{BTreeMap, VecDeque};

use anyhow::{Context, bail};
use bytes::Bytes;
use vigil_mkv::{EbmlHeader, Info, Muxer, MuxerOptions, SimpleTag, Tag, TrackEntry, TrackKind};

use super::Warn;
use super::source::Sample;

/// KVS's documented fragment duration bounds, ns.
pub const MIN_FRAGMENT_NS: i64 = 1_000_000_000;
pub const MAX_FRAGMENT_NS: i64 = 20_000_000_000;
/// Fragment length of an audio-only input, ns.
pub const AUDIO_FRAGMENT_NS: i64 = 2_000_000_000;
/// The most media time one track is held waiting for another (see [`Fragmenter::push`]).
pub const MAX_HOLD_NS: i64 = 2_000_000_000;
/// KVS's limit on tracks per stream.
pub const MAX_TRACKS: usize = 3;

/// What the fragmenter produces, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// A fragment begins: its Cluster Timecode (ms since the epoch), which its acks echo.
    Begin { timecode_ms: u64 },
    /// Bytes of the fragment begun last.
    Data(Bytes),
    /// The fragment begun last is whole (its end-of-fragment tag was in the last `Data`).
    End,
}

/// Cutting rules.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub min_ns: i64,
    pub max_ns: i64,
    pub audio_ns: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            min_ns: MIN_FRAGMENT_NS,
            max_ns: MAX_FRAGMENT_NS,
            audio_ns: AUDIO_FRAGMENT_NS,
        }
    }
}

#[derive(Debug)]
pub struct Fragmenter {
    policy: Policy,
    tracks: Vec<TrackEntry>,
    key_track: Option<u64>,
    /// Added to a sample's time (ms) to place it on the wall clock.
    offset_ms: i64,
    muxer: Muxer,
    header: Bytes,
    /// The open fragment: its first sample's time (ns, input time line).
    open: Option<i64>,
    warned_long: bool,
    warned_late: bool,
    first_timecode_ms: Option<u64>,
    /// A key frame that starts a fragment, and the key-track frames after it, waiting for the
    /// other tracks to reach its time.
    held_video: VecDeque<Sample>,
    /// Frames of the other tracks, by time, waiting for the key track to reach them.
    held_other: VecDeque<Sample>,
    /// The tracks other than the key track.
    others: Vec<u64>,
    /// The latest key-track time written, ns.
    max_video_ns: Option<i64>,
    /// Per other track, the latest time seen, ns.
    other_max_ns: BTreeMap<u64, i64>,
    last_timecode_ms: Option<u64>,
    warn: Warn,
}

impl Fragmenter {
    /// A fragmenter for `tracks` (video and audio only, at most [`MAX_TRACKS`]); a sample at
    /// input time `t` ns is placed at `offset_ms + t / 1e6` ms since the epoch.
    pub fn new(tracks: &[TrackEntry], offset_ms: i64, policy: Policy) -> anyhow::Result<Self> {
        let tracks: Vec<TrackEntry> = tracks
            .iter()
            .filter(|t| matches!(t.kind(), TrackKind::Video | TrackKind::Audio))
            .cloned()
            .collect();
        if tracks.is_empty() {
            bail!("the input has no video or audio track");
        }
        if tracks.len() > MAX_TRACKS {
            bail!(
                "the input has {} audio and video tracks; KVS streams take at most {MAX_TRACKS}",
                tracks.len()
            );
        }
        if let Some(t) = tracks.iter().find(|t| t.header_removal.is_some()) {
            bail!(
                "track {} uses Matroska header-removal compression, which KVS does not support; \
                 remux the file without it (ffmpeg -c copy)",
                t.number
            );
        }
        let key_track = tracks
            .iter()
            .find(|t| t.kind() == TrackKind::Video)
            .map(|t| t.number);
        let mut muxer = Muxer::new(MuxerOptions::streaming());
        let info = Info {
            muxing_app: Some("vigil".into()),
            writing_app: Some(format!("vigil put {}", env!("CARGO_PKG_VERSION"))),
            ..Info::default()
        };
        muxer
            .begin_document(&EbmlHeader::kvs(), &info, &tracks)
            .context("writing the Matroska header")?;
        let header = Bytes::from(muxer.take());
        let others = tracks
            .iter()
            .filter(|t| Some(t.number) != key_track)
            .map(|t| t.number)
            .collect();
        Ok(Fragmenter {
            policy,
            tracks,
            key_track,
            offset_ms,
            muxer,
            header,
            open: None,
            warned_long: false,
            warned_late: false,
            first_timecode_ms: None,
            held_video: VecDeque::new(),
            held_other: VecDeque::new(),
            others,
            max_video_ns: None,
            other_max_ns: BTreeMap::new(),
            last_timecode_ms: None,
            warn: Warn::stderr(),
        })
    }

    /// Reports warnings to `warn` rather than standard error.
    pub fn set_warn(&mut self, warn: Warn) {
        self.warn = warn;
    }

    /// Places the input's time `t` ns at `offset_ms + t / 1e6` ms since the epoch.
    pub fn set_offset(&mut self, offset_ms: i64) {
        self.offset_ms = offset_ms;
    }

    /// The tracks that are sent.
    pub fn tracks(&self) -> &[TrackEntry] {
        &self.tracks
    }

    /// The start of a PutMedia body: EBML header, Segment (unknown size), Info, Tracks. Every
    /// connection starts with it.
    pub fn header(&self) -> Bytes {
        self.header.clone()
    }

    fn place(&self, pts_ns: i64) -> i64 {
        self.offset_ms.saturating_add(pts_ns.div_euclid(1_000_000))
    }

    /// Takes one sample (in the input's order).
    ///
    /// Frames of the other tracks (audio) go into the fragment their time falls in, whatever
    /// their place in the input: files interleave by decode time, so audio a little before a
    /// key frame's presentation time often comes after it. A key frame that starts a fragment
    /// is therefore held (with the video after it) until every other track has reached its
    /// time, and an audio frame is held until the video has reached its time; neither waits
    /// for more than [`MAX_HOLD_NS`] of media. KVS refuses a fragment that starts before the
    /// previous one ends (ERROR 4004).
    pub fn push(&mut self, s: &Sample, out: &mut Vec<Out>) -> anyhow::Result<()> {
        if !self.tracks.iter().any(|t| t.number == s.track) {
            return Ok(()); // A track that is not sent (subtitles, a fourth track).
        }
        match self.key_track {
            None => {
                let cut = self.is_cut(s);
                return self.write(s, cut, out);
            }
            Some(k) if s.track == k => {
                if !self.held_video.is_empty() {
                    self.held_video.push_back(s.clone());
                } else if self.open.is_none() {
                    if !s.keyframe {
                        return Ok(()); // Nothing plays before the first key frame.
                    }
                    self.write(s, true, out)?;
                    self.max_video_ns = Some(s.pts_ns);
                } else if self.is_cut(s) {
                    self.held_video.push_back(s.clone());
                } else {
                    self.write(s, false, out)?;
                    self.max_video_ns =
                        Some(self.max_video_ns.map_or(s.pts_ns, |m| m.max(s.pts_ns)));
                }
            }
            Some(_) => {
                // Sorted by time; audio comes nearly sorted, so insert from the back.
                let at = self
                    .held_other
                    .iter()
                    .rposition(|h| h.pts_ns <= s.pts_ns)
                    .map_or(0, |i| i + 1);
                self.held_other.insert(at, s.clone());
                let m = self.other_max_ns.entry(s.track).or_insert(s.pts_ns);
                *m = (*m).max(s.pts_ns);
            }
        }
        self.process(false, out)
    }

    /// Releases what can be placed now (everything when `eof`).
    fn process(&mut self, eof: bool, out: &mut Vec<Out>) -> anyhow::Result<()> {
        loop {
            if let Some(cut_at) = self.held_video.front().map(|k| k.pts_ns) {
                // Audio before the pending cut belongs to the fragment open now.
                while self.held_other.front().is_some_and(|a| a.pts_ns < cut_at) {
                    if let Some(a) = self.held_other.pop_front() {
                        self.write_other(&a, out)?;
                    }
                }
                let caught_up = self
                    .others
                    .iter()
                    .all(|t| self.other_max_ns.get(t).is_some_and(|&m| m >= cut_at));
                let lag = self
                    .held_video
                    .back()
                    .map_or(0, |v| v.pts_ns.saturating_sub(cut_at));
                if !(eof || caught_up || lag >= MAX_HOLD_NS) {
                    return Ok(());
                }
                if let Some(k) = self.held_video.pop_front() {
                    self.write(&k, true, out)?;
                    self.max_video_ns = Some(k.pts_ns);
                }
                while let Some(v) = self.held_video.front().cloned() {
                    if self.is_cut(&v) {
                        break;
                    }
                    if let Some(v) = self.held_video.pop_front() {
                        self.write(&v, false, out)?;
                        self.max_video_ns =
                            Some(self.max_video_ns.map_or(v.pts_ns, |m| m.max(v.pts_ns)));
                    }
                }
                continue;
            }
            // No cut pending: audio the video has passed can go.
            let span = match (self.held_other.front(), self.held_other.back()) {
                (Some(f), Some(b)) => b.pts_ns.saturating_sub(f.pts_ns),
                _ => 0,
            };
            while let Some(a) = self.held_other.front() {
                let passed = self.max_video_ns.is_some_and(|m| a.pts_ns <= m);
                if !(eof || passed || span >= MAX_HOLD_NS) {
                    break;
                }
                if let Some(a) = self.held_other.pop_front() {
                    self.write_other(&a, out)?;
                }
            }
            return Ok(());
        }
    }

    /// Writes a frame of a track other than the key track into the open fragment; one from
    /// before that fragment (it came too late to place) is dropped.
    fn write_other(&mut self, a: &Sample, out: &mut Vec<Out>) -> anyhow::Result<()> {
        match self.open {
            Some(start) if a.pts_ns >= start => self.write(a, false, out),
            Some(_) if self.last_timecode_ms == self.first_timecode_ms => {
                // Before the first key frame: nothing before it can be played.
                Ok(())
            }
            Some(_) => {
                if !self.warned_late {
                    self.warned_late = true;
                    self.warn.warn(&format!(
                        "a frame of track {} at {} ms came after its fragment was sent; it is \
                         dropped",
                        a.track,
                        a.pts_ns / 1_000_000
                    ));
                }
                Ok(())
            }
            None => Ok(()), // Before the first key frame.
        }
    }

    /// Whether a key-track sample starts a new fragment.
    fn is_cut(&mut self, s: &Sample) -> bool {
        let Some(start) = self.open else {
            return self.key_track.is_none() || s.keyframe;
        };
        let age = s.pts_ns.saturating_sub(start);
        if self.key_track.is_none() {
            age >= self.policy.audio_ns
        } else if s.keyframe {
            age >= self.policy.min_ns
        } else if age >= self.policy.max_ns {
            if !self.warned_long {
                self.warned_long = true;
                self.warn.warn(&format!(
                    "no key frame for {} s; cutting a fragment without one (KVS allows at \
                     most {} s per fragment; set a shorter key-frame interval on the encoder)",
                    age / 1_000_000_000,
                    self.policy.max_ns / 1_000_000_000
                ));
            }
            true
        } else {
            false
        }
    }

    /// Writes a sample, first starting a new fragment at it when `cut`.
    fn write(&mut self, s: &Sample, cut: bool, out: &mut Vec<Out>) -> anyhow::Result<()> {
        if self.open.is_none() && !cut {
            return Ok(());
        }
        if cut {
            self.end(out)?;
            let timecode = self.place(s.pts_ns);
            let timecode_ms = u64::try_from(timecode)
                .context("a sample lies before 1970 once placed on the wall clock")?;
            if self.last_timecode_ms.is_some_and(|l| timecode_ms <= l) {
                bail!(
                    "the input's time stamps go backwards or repeat at {} ms; KVS needs \
                     increasing fragment times",
                    s.pts_ns / 1_000_000
                );
            }
            self.last_timecode_ms = Some(timecode_ms);
            self.first_timecode_ms.get_or_insert(timecode_ms);
            self.muxer
                .begin_cluster(timecode_ms)
                .context("starting a Cluster")?;
            self.open = Some(s.pts_ns);
            out.push(Out::Begin { timecode_ms });
        }
        self.muxer
            .write_simple_block(s.track, self.place(s.pts_ns), s.keyframe, &s.data)
            .with_context(|| {
                format!(
                    "the frame at {} ms of track {} is too far from its fragment's start",
                    s.pts_ns / 1_000_000,
                    s.track
                )
            })?;
        out.push(Out::Data(Bytes::from(self.muxer.take())));
        Ok(())
    }

    /// The end of the input: places what is held and ends the last fragment.
    pub fn finish(&mut self, out: &mut Vec<Out>) -> anyhow::Result<()> {
        self.process(true, out)?;
        self.end(out)
    }

    /// Ends the open fragment, if any, with its end-of-fragment tag.
    fn end(&mut self, out: &mut Vec<Out>) -> anyhow::Result<()> {
        if self.open.take().is_none() {
            return Ok(());
        }
        self.muxer
            .write_tags(&[Tag {
                simple_tags: vec![SimpleTag::string("AWS_KINESISVIDEO_END_OF_FRAGMENT", "")],
                ..Tag::default()
            }])
            .context("writing the end-of-fragment tag")?;
        out.push(Out::Data(Bytes::from(self.muxer.take())));
        out.push(Out::End);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use vigil_mkv::{Demuxer, Event, Video};

    fn video(n: u64) -> TrackEntry {
        TrackEntry {
            number: n,
            uid: n,
            track_type: 1,
            codec_id: "V_MPEG4/ISO/AVC".into(),
            codec_private: Some(Bytes::from_static(&[1, 0x42, 0, 0x1e, 0xff, 0xe0, 0])),
            video: Some(Video {
                pixel_width: 64,
                pixel_height: 64,
                ..Video::default()
            }),
            ..TrackEntry::default()
        }
    }

    fn sample(track: u64, ms: i64, key: bool) -> Sample {
        Sample {
            track,
            pts_ns: ms * 1_000_000,
            keyframe: key,
            data: Bytes::from(vec![ms as u8; 10]),
        }
    }

    #[test]
    fn cuts_at_key_frames_after_the_minimum() {
        let mut f = Fragmenter::new(&[video(1)], 1_000_000, Policy::default()).unwrap();
        let mut body = f.header().to_vec();
        let mut out = Vec::new();
        // A non-key frame before the first key frame is dropped; key frames every 500 ms cut
        // every second one (1 s minimum).
        f.push(&sample(1, 0, false), &mut out).unwrap();
        for i in 0..100 {
            f.push(&sample(1, 40 * i, i % 12 == 0 && i > 0), &mut out)
                .unwrap();
        }
        f.finish(&mut out).unwrap();
        let begins: Vec<u64> = out
            .iter()
            .filter_map(|o| match o {
                Out::Begin { timecode_ms } => Some(*timecode_ms),
                _ => None,
            })
            .collect();
        // Key frames every 480 ms from 480: a fragment at the first one a second or more
        // after the last: 480, 1920, 3360.
        assert_eq!(begins, [1_000_480, 1_001_920, 1_003_360]);
        assert_eq!(out.iter().filter(|o| **o == Out::End).count(), 3);
        for o in &out {
            if let Out::Data(d) = o {
                body.extend_from_slice(d);
            }
        }
        let events = Demuxer::read_all(&body).unwrap();
        let frames = events
            .iter()
            .filter(|e| matches!(e, Event::Frame(_)))
            .count();
        assert_eq!(frames, 100 - 12);
        let tags = events
            .iter()
            .filter(|e| matches!(e, Event::Tags { .. }))
            .count();
        assert_eq!(tags, 3);
    }

    /// Audio interleaved by decode time (video decode times run 80 ms behind their
    /// presentation times with B-frames) lands in the fragment of its own time, so that no
    /// fragment starts before the previous one ends; nothing is lost but audio before the
    /// first key frame.
    #[test]
    fn interleaved_audio_goes_by_time() {
        let mut audio = video(2);
        audio.track_type = 2;
        audio.codec_id = "A_AAC".into();
        audio.video = None;
        let mut f = Fragmenter::new(&[video(1), audio], 0, Policy::default()).unwrap();
        let mut input: Vec<(i64, Sample)> = Vec::new();
        for i in 0..150i64 {
            // Decode order: each key frame, then pairs of frames in swapped presentation order.
            let pts = match (i % 25) % 3 {
                _ if i % 25 == 0 => i * 40,
                1 => (i + 1) * 40,
                2 => (i - 1) * 40,
                _ => i * 40,
            };
            input.push((i * 40 - 80, sample(1, pts, i % 25 == 0)));
        }
        for j in 0..281i64 {
            let pts_us = j * 21_333;
            let mut a = sample(2, 0, true);
            a.pts_ns = pts_us * 1000;
            input.push((pts_us / 1000, a));
        }
        input.sort_by_key(|(dts, s)| (*dts, s.track));
        let mut out = Vec::new();
        for (_, s) in &input {
            f.push(s, &mut out).unwrap();
        }
        f.finish(&mut out).unwrap();
        let mut body = f.header().to_vec();
        for o in &out {
            if let Out::Data(d) = o {
                body.extend_from_slice(d);
            }
        }
        let mut fragments: Vec<Vec<(u64, i64)>> = Vec::new();
        for e in Demuxer::read_all(&body).unwrap() {
            match e {
                Event::ClusterStart { .. } => fragments.push(Vec::new()),
                Event::Frame(fr) => fragments
                    .last_mut()
                    .unwrap()
                    .push((fr.track, fr.time_ns / 1_000_000)),
                _ => {}
            }
        }
        assert_eq!(fragments.len(), 6);
        for pair in fragments.windows(2) {
            let end = pair[0].iter().map(|f| f.1).max().unwrap();
            let start = pair[1].iter().map(|f| f.1).min().unwrap();
            assert!(start > end, "a fragment starts at {start} before {end}");
        }
        let count = |t: u64| fragments.iter().flatten().filter(|f| f.0 == t).count();
        assert_eq!(count(1), 150);
        assert_eq!(count(2), 281);
    }

    #[test]
    fn long_gops_are_cut_and_audio_only_by_duration() {
        let policy = Policy {
            max_ns: 2_000_000_000,
            ..Policy::default()
        };
        let mut f = Fragmenter::new(&[video(1)], 0, policy).unwrap();
        let mut out = Vec::new();
        for i in 0..100 {
            f.push(&sample(1, 100 * i, i == 0), &mut out).unwrap();
        }
        let n = out
            .iter()
            .filter(|o| matches!(o, Out::Begin { .. }))
            .count();
        assert_eq!(n, 5);

        let mut audio = video(2);
        audio.track_type = 2;
        audio.codec_id = "A_AAC".into();
        audio.video = None;
        let mut f = Fragmenter::new(&[audio], 0, Policy::default()).unwrap();
        let mut out = Vec::new();
        for i in 0..100 {
            f.push(&sample(2, 100 * i, true), &mut out).unwrap();
        }
        let n = out
            .iter()
            .filter(|o| matches!(o, Out::Begin { .. }))
            .count();
        assert_eq!(n, 5);
    }
}
