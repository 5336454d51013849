//! H.264 and H.265 Annex B elementary streams as a source: `vigil_media::annexb` groups the
//! bytes into access units; the first SPS/PPS (and VPS) make the track's `avcC`/`hvcC`, and
//! stay in the frames too, so that a decoder joining late, or a change of parameters, works.
//!
//! An elementary stream has no time stamps: frame `n` is at `n / --frame-rate`, in decode
//! order. A stream with B-frames (whose presentation order differs from decode order) needs a
//! container (Matroska, MP4) to keep its presentation times.

use std::collections::VecDeque;
use std::io::Read;

use anyhow::{Context, bail};
use bytes::Bytes;
use vigil_media::annexb::{AccessUnit, AccessUnits, NalKind, classify};
use vigil_mkv::{TrackEntry, Video};

use super::{Sample, Source};

/// Access units read before giving up on finding the parameter sets.
const MAX_AUS_BEFORE_PARAMETERS: usize = 300;

pub struct AnnexBSource<R> {
    reader: R,
    units: AccessUnits,
    eof: bool,
    frame_ns: f64,
    tracks: Vec<TrackEntry>,
    ready: VecDeque<AccessUnit>,
    frames: u64,
}

impl<R: Read + Send> AnnexBSource<R> {
    pub fn open(reader: R, h265: bool, frame_rate: f64) -> anyhow::Result<Self> {
        if !(frame_rate.is_finite() && frame_rate > 0.0 && frame_rate <= 1000.0) {
            bail!("--frame-rate must be between 0 and 1000, not {frame_rate}");
        }
        let mut s = AnnexBSource {
            reader,
            units: AccessUnits::new(h265),
            eof: false,
            frame_ns: 1e9 / frame_rate,
            tracks: Vec::new(),
            ready: VecDeque::new(),
            frames: 0,
        };
        // Read access units until the parameter sets are known.
        let mut vps: Vec<Vec<u8>> = Vec::new();
        let mut sps: Vec<Vec<u8>> = Vec::new();
        let mut pps: Vec<Vec<u8>> = Vec::new();
        while s.ready.len() < MAX_AUS_BEFORE_PARAMETERS {
            let Some(au) = s.read_au()? else { break };
            for nal in &au.nals {
                match classify(nal, h265) {
                    NalKind::Parameters(32) if vps.is_empty() => vps.push(nal.clone()),
                    NalKind::Parameters(7 | 33) if sps.is_empty() => sps.push(nal.clone()),
                    NalKind::Parameters(8 | 34) if pps.is_empty() => pps.push(nal.clone()),
                    _ => {}
                }
            }
            s.ready.push_back(au);
            if !sps.is_empty() && !pps.is_empty() && (!h265 || !vps.is_empty()) {
                break;
            }
        }
        let (codec_id, private, size) = if h265 {
            let private =
                vigil_media::codec::hevc_decoder_config(&refs(&vps), &refs(&sps), &refs(&pps))
                    .context(
                        "no usable H.265 VPS/SPS/PPS at the start of the input (is it H.265?)",
                    )?;
            let info = sps
                .first()
                .and_then(|s| vigil_media::codec::h265_sps(s))
                .context("the H.265 SPS does not parse")?;
            ("V_MPEGH/ISO/HEVC", private, (info.width, info.height))
        } else {
            let private = vigil_media::codec::avc_decoder_config(&refs(&sps), &refs(&pps))
                .context("no usable H.264 SPS/PPS at the start of the input (is it H.264?)")?;
            let size = sps
                .first()
                .and_then(|s| vigil_media::codec::h264_sps_size(s))
                .context("the H.264 SPS does not parse")?;
            ("V_MPEG4/ISO/AVC", private, size)
        };
        s.tracks = vec![TrackEntry {
            number: 1,
            uid: 1,
            track_type: 1,
            codec_id: codec_id.to_owned(),
            codec_private: Some(Bytes::from(private)),
            name: Some("video".to_owned()),
            video: Some(Video {
                pixel_width: u64::from(size.0),
                pixel_height: u64::from(size.1),
                ..Video::default()
            }),
            ..TrackEntry::default()
        }];
        Ok(s)
    }

    /// The next whole access unit.
    fn read_au(&mut self) -> anyhow::Result<Option<AccessUnit>> {
        let mut chunk = vec![0u8; 1 << 16];
        loop {
            match self.units.pull() {
                Some(Ok(au)) => return Ok(Some(au)),
                Some(Err(e)) => return Err(e).context("the input is not a usable Annex B stream"),
                None if self.eof => return Ok(None),
                None => {}
            }
            let n = self.reader.read(&mut chunk).context("reading the input")?;
            match chunk.get(..n) {
                Some(data) if n > 0 => self.units.push(data),
                _ => {
                    self.eof = true;
                    self.units.finish();
                }
            }
        }
    }
}

fn refs(v: &[Vec<u8>]) -> Vec<&[u8]> {
    v.iter().map(Vec::as_slice).collect()
}

impl<R: Read + Send> Source for AnnexBSource<R> {
    fn tracks(&self) -> &[TrackEntry] {
        &self.tracks
    }

    fn next_sample(&mut self) -> anyhow::Result<Option<Sample>> {
        let au = match self.ready.pop_front() {
            Some(au) => au,
            None => match self.read_au()? {
                Some(au) => au,
                None => return Ok(None),
            },
        };
        let pts_ns = (self.frames as f64 * self.frame_ns).round() as i64;
        self.frames += 1;
        Ok(Some(Sample {
            track: 1,
            pts_ns,
            keyframe: au.key,
            data: Bytes::from(au.length_prefixed()),
        }))
    }
}
