//! H.264 and H.265 Annex B elementary streams (what `ffmpeg -f h264`, `-f hevc` and many
//! cameras' raw outputs are): NAL units between start codes, grouped into access units.
//!
//! An access unit starts at an access unit delimiter, a parameter set, an SEI, or a slice that
//! begins a picture (H.264 `first_mb_in_slice` = 0, H.265 `first_slice_segment_in_pic_flag`)
//! once the current one has a slice. It is a key frame when it holds an IDR slice (H.264) or
//! an IRAP slice (H.265). The first SPS/PPS (and VPS) make the track's `avcC`/`hvcC`; they
//! also stay in the frames, so a decoder that joins late, or a change of parameters, works.
//! Access unit delimiters are dropped (Matroska frames are access units already).
//!
//! An elementary stream has no time stamps: frame `n` is at `n / --frame-rate`, in decode
//! order. A stream with B-frames (whose presentation order differs from decode order) needs a
//! container (Matroska, MP4) to keep its presentation times.

use std::io::Read;

use anyhow::{Context, bail};
use bytes::Bytes;
use vigil_mkv::{TrackEntry, Video};

use super::{Sample, Source};

/// The largest NAL unit accepted.
const MAX_NAL: usize = 32 << 20;
/// Access units read before giving up on finding the parameter sets.
const MAX_AUS_BEFORE_PARAMETERS: usize = 300;

/// Splits a byte stream into NAL units (without start codes).
struct NalReader<R> {
    reader: R,
    buf: Vec<u8>,
    /// Where the current NAL unit's payload starts in `buf`, once a start code was seen.
    start: Option<usize>,
    /// Where to resume looking for a start code.
    scan: usize,
    eof: bool,
}

impl<R: Read> NalReader<R> {
    fn new(reader: R) -> Self {
        NalReader {
            reader,
            buf: Vec::with_capacity(1 << 20),
            start: None,
            scan: 0,
            eof: false,
        }
    }

    fn next_nal(&mut self) -> anyhow::Result<Option<Vec<u8>>> {
        loop {
            // Find the next start code (00 00 01) from `scan`.
            let mut found = None;
            let mut i = self.scan;
            while i + 3 <= self.buf.len() {
                if self.buf.get(i..i + 3) == Some(&[0, 0, 1]) {
                    found = Some(i);
                    break;
                }
                i += 1;
            }
            match (found, self.start) {
                (Some(at), None) => {
                    // Bytes before the first start code are ignored.
                    self.start = Some(at + 3);
                    self.scan = at + 3;
                }
                (Some(at), Some(start)) => {
                    // A 4-byte start code's leading zero (and trailing zeros) end the unit.
                    let mut end = at;
                    while end > start && self.buf.get(end - 1) == Some(&0) {
                        end -= 1;
                    }
                    let nal = self.buf.get(start..end).unwrap_or_default().to_vec();
                    self.buf.drain(..at + 3);
                    self.start = Some(0);
                    self.scan = 0;
                    if !nal.is_empty() {
                        return Ok(Some(nal));
                    }
                }
                (None, _) => {
                    self.scan = self
                        .buf
                        .len()
                        .saturating_sub(2)
                        .max(self.start.unwrap_or(0));
                    if self.eof {
                        let nal = match self.start {
                            Some(start) => {
                                let mut end = self.buf.len();
                                while end > start && self.buf.get(end - 1) == Some(&0) {
                                    end -= 1;
                                }
                                self.buf.get(start..end).unwrap_or_default().to_vec()
                            }
                            None => Vec::new(),
                        };
                        self.buf.clear();
                        self.start = None;
                        return Ok((!nal.is_empty()).then_some(nal));
                    }
                    if self.buf.len() > MAX_NAL {
                        bail!("a NAL unit is longer than {MAX_NAL} bytes (is this Annex B?)");
                    }
                    let mut chunk = [0u8; 1 << 16];
                    let n = self.reader.read(&mut chunk).context("reading the input")?;
                    if n == 0 {
                        self.eof = true;
                    } else {
                        self.buf
                            .extend_from_slice(chunk.get(..n).unwrap_or_default());
                    }
                }
            }
        }
    }
}

/// What a NAL unit is, for access-unit grouping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Delimiter,
    /// VPS, SPS or PPS (H.265 types 32-34; H.264 7, 8): which one.
    Parameters(u8),
    /// SEI and other units that start an access unit when one is complete.
    Prefix,
    /// A slice: whether it starts a picture, whether it is a random access point.
    Slice {
        first: bool,
        key: bool,
    },
    Other,
}

fn classify(nal: &[u8], h265: bool) -> Kind {
    let Some(&b0) = nal.first() else {
        return Kind::Other;
    };
    if h265 {
        let t = (b0 >> 1) & 0x3f;
        match t {
            0..=31 => Kind::Slice {
                first: nal.get(2).is_some_and(|b| b & 0x80 != 0),
                key: (16..=23).contains(&t),
            },
            32..=34 => Kind::Parameters(t),
            35 => Kind::Delimiter,
            39 | 41..=44 | 48..=55 => Kind::Prefix,
            _ => Kind::Other,
        }
    } else {
        let t = b0 & 0x1f;
        match t {
            1 | 5 => Kind::Slice {
                first: nal.get(1).is_some_and(|b| b & 0x80 != 0),
                key: t == 5,
            },
            7 | 8 => Kind::Parameters(t),
            9 => Kind::Delimiter,
            6 | 14..=18 => Kind::Prefix,
            _ => Kind::Other,
        }
    }
}

#[derive(Default)]
struct AccessUnit {
    nals: Vec<Vec<u8>>,
    has_slice: bool,
    key: bool,
}

pub struct AnnexBSource<R> {
    nals: NalReader<R>,
    h265: bool,
    frame_ns: f64,
    tracks: Vec<TrackEntry>,
    current: AccessUnit,
    ready: std::collections::VecDeque<AccessUnit>,
    pending_nal: Option<Vec<u8>>,
    frames: u64,
}

impl<R: Read + Send> AnnexBSource<R> {
    pub fn open(reader: R, h265: bool, frame_rate: f64) -> anyhow::Result<Self> {
        if !(frame_rate.is_finite() && frame_rate > 0.0 && frame_rate <= 1000.0) {
            bail!("--frame-rate must be between 0 and 1000, not {frame_rate}");
        }
        let mut s = AnnexBSource {
            nals: NalReader::new(reader),
            h265,
            frame_ns: 1e9 / frame_rate,
            tracks: Vec::new(),
            current: AccessUnit::default(),
            ready: Default::default(),
            pending_nal: None,
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
                    Kind::Parameters(32) if vps.is_empty() => vps.push(nal.clone()),
                    Kind::Parameters(7 | 33) if sps.is_empty() => sps.push(nal.clone()),
                    Kind::Parameters(8 | 34) if pps.is_empty() => pps.push(nal.clone()),
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
        loop {
            let nal = match self.pending_nal.take() {
                Some(n) => Some(n),
                None => self.nals.next_nal()?,
            };
            let Some(nal) = nal else {
                let au = std::mem::take(&mut self.current);
                return Ok(au.has_slice.then_some(au));
            };
            let kind = classify(&nal, self.h265);
            let starts_new = match kind {
                Kind::Delimiter | Kind::Parameters(_) | Kind::Prefix => true,
                Kind::Slice { first, .. } => first,
                Kind::Other => false,
            };
            if starts_new && self.current.has_slice {
                self.pending_nal = Some(nal);
                return Ok(Some(std::mem::take(&mut self.current)));
            }
            match kind {
                Kind::Delimiter => {}
                Kind::Slice { key, .. } => {
                    self.current.has_slice = true;
                    self.current.key |= key;
                    self.current.nals.push(nal);
                }
                _ => self.current.nals.push(nal),
            }
        }
    }
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
        let mut data = Vec::with_capacity(au.nals.iter().map(|n| n.len() + 4).sum());
        for nal in &au.nals {
            data.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            data.extend_from_slice(nal);
        }
        let pts_ns = (self.frames as f64 * self.frame_ns).round() as i64;
        self.frames += 1;
        Ok(Some(Sample {
            track: 1,
            pts_ns,
            keyframe: au.key,
            data: Bytes::from(data),
        }))
    }
}

fn refs(v: &[Vec<u8>]) -> Vec<&[u8]> {
    v.iter().map(Vec::as_slice).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn nal_splitting_any_start_code_and_chunking() {
        let stream = [
            &[0u8, 0, 0, 1, 0x09, 0xf0][..],
            &[0, 0, 1, 0x67, 1, 2, 3],
            &[0, 0, 0, 1, 0x68, 4],
            &[0, 0, 1, 0x65, 0x88, 0, 0, 3, 1],
        ]
        .concat();
        // One byte at a time through a reader that returns short reads.
        struct Slow<'a>(&'a [u8]);
        impl Read for Slow<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let Some((&b, rest)) = self.0.split_first() else {
                    return Ok(0);
                };
                buf[0] = b;
                self.0 = rest;
                Ok(1)
            }
        }
        let mut r = NalReader::new(Slow(&stream));
        let mut got = Vec::new();
        while let Some(n) = r.next_nal().unwrap() {
            got.push(n);
        }
        assert_eq!(
            got,
            vec![
                vec![0x09, 0xf0],
                vec![0x67, 1, 2, 3],
                vec![0x68, 4],
                vec![0x65, 0x88, 0, 0, 3, 1]
            ]
        );
    }

    #[test]
    fn classification() {
        assert_eq!(
            classify(&[0x65, 0x88], false),
            Kind::Slice {
                first: true,
                key: true
            }
        );
        assert_eq!(
            classify(&[0x41, 0x12], false),
            Kind::Slice {
                first: false,
                key: false
            }
        );
        assert_eq!(classify(&[0x40, 0x01], true), Kind::Parameters(32));
        assert_eq!(
            classify(&[0x26, 0x01, 0xaf], true),
            Kind::Slice {
                first: true,
                key: true
            }
        );
    }
}
