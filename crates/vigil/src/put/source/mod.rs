//! Inputs of `vigil put`: a file or a pipe, read into tracks and samples in decode order.
//!
//! Every input becomes the same thing, whatever its container: the Matroska `TrackEntry`s of
//! its tracks (codec id and private data as KVS producers send them) and [`Sample`]s with their
//! presentation time in ns, key-frame flag and data in Matroska's form (length-prefixed NAL
//! units for H.264/H.265, raw AAC frames). The fragmenter then cuts them into KVS fragments.

pub mod annexb;
pub mod mp4;

use std::io::Read;

use anyhow::{Context, bail};
use bytes::Bytes;
use vigil_mkv::{Demuxer, Event, TrackEntry};

/// One frame of one track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// The Matroska track number.
    pub track: u64,
    /// Presentation time, ns, on the input's own time line.
    pub pts_ns: i64,
    pub keyframe: bool,
    pub data: Bytes,
}

/// A source of samples.
pub trait Source: Send {
    /// The tracks; known before the first sample.
    fn tracks(&self) -> &[TrackEntry];
    /// The next sample in decode order, `None` at the end.
    fn next_sample(&mut self) -> anyhow::Result<Option<Sample>>;
}

/// The container of an input, from its first bytes or the user's `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Matroska or WebM.
    Mkv,
    /// MP4 or MOV (progressive or fragmented).
    Mp4,
    /// An H.264 Annex B elementary stream.
    H264,
    /// An H.265 Annex B elementary stream.
    H265,
}

/// Guesses the format from the first bytes.
pub fn sniff(head: &[u8]) -> Option<Format> {
    if head.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        return Some(Format::Mkv);
    }
    if head
        .get(4..8)
        .is_some_and(|t| matches!(t, b"ftyp" | b"moov" | b"mdat" | b"free" | b"wide" | b"styp"))
    {
        return Some(Format::Mp4);
    }
    // Annex B: a start code, then the first NAL's header.
    let nal = if head.starts_with(&[0, 0, 0, 1]) {
        head.get(4..6)
    } else if head.starts_with(&[0, 0, 1]) {
        head.get(3..5)
    } else {
        None
    }?;
    let (b0, b1) = (*nal.first()?, *nal.get(1)?);
    let h265_type = (b0 >> 1) & 0x3f;
    // H.265's VPS/SPS/PPS/AUD/SEI headers have layer id 0 and a temporal id of 1.
    if b0 & 0x81 == 0 && b1 == 1 && matches!(h265_type, 32..=35 | 39) {
        return Some(Format::H265);
    }
    if b0 & 0x80 == 0 && matches!(b0 & 0x1f, 1 | 5 | 6 | 7 | 9) {
        return Some(Format::H264);
    }
    None
}

/// Matroska and WebM, read with Vigil's demuxer: the tracks of the first Tracks element and
/// every frame (laces split) in file order. A second Segment with other tracks is refused.
pub struct MkvSource<R> {
    reader: R,
    demuxer: Demuxer,
    tracks: Vec<TrackEntry>,
    eof: bool,
    buf: Vec<u8>,
}

impl<R: Read + Send> MkvSource<R> {
    /// Reads up to the Tracks element.
    pub fn open(reader: R) -> anyhow::Result<Self> {
        let mut s = MkvSource {
            reader,
            demuxer: Demuxer::new(),
            tracks: Vec::new(),
            eof: false,
            buf: vec![0; 1 << 16],
        };
        loop {
            match s.pull()? {
                Some(Event::Tracks { tracks, .. }) => {
                    if tracks.is_empty() {
                        bail!("the input's Tracks element declares no track");
                    }
                    s.tracks = tracks;
                    return Ok(s);
                }
                Some(Event::Frame(_)) => bail!("the input has frames before its Tracks"),
                Some(_) => {}
                None => bail!("the input ended before its Tracks element"),
            }
        }
    }

    fn pull(&mut self) -> anyhow::Result<Option<Event>> {
        loop {
            if let Some(ev) = self.demuxer.pull() {
                return Ok(Some(ev.context("the input is not valid Matroska")?));
            }
            if self.eof {
                return Ok(None);
            }
            let n = self
                .reader
                .read(&mut self.buf)
                .context("reading the input")?;
            match self.buf.get(..n) {
                Some(data) if n > 0 => self.demuxer.push(data),
                _ => {
                    self.eof = true;
                    self.demuxer.finish();
                }
            }
        }
    }
}

impl<R: Read + Send> Source for MkvSource<R> {
    fn tracks(&self) -> &[TrackEntry] {
        &self.tracks
    }

    fn next_sample(&mut self) -> anyhow::Result<Option<Sample>> {
        loop {
            match self.pull()? {
                Some(Event::Frame(f)) => {
                    return Ok(Some(Sample {
                        track: f.track,
                        pts_ns: f.time_ns,
                        keyframe: f.keyframe,
                        data: f.data,
                    }));
                }
                Some(Event::Tracks { tracks, .. }) => {
                    let same = tracks.len() == self.tracks.len()
                        && tracks
                            .iter()
                            .zip(&self.tracks)
                            .all(|(a, b)| a.number == b.number && a.codec_id == b.codec_id);
                    if !same {
                        bail!("the input's tracks change mid-stream; upload each part separately");
                    }
                }
                Some(_) => {}
                None => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing() {
        assert_eq!(sniff(&[0x1A, 0x45, 0xDF, 0xA3, 1]), Some(Format::Mkv));
        assert_eq!(sniff(b"\0\0\0\x20ftypisom"), Some(Format::Mp4));
        assert_eq!(sniff(&[0, 0, 0, 1, 0x67, 0x64]), Some(Format::H264));
        assert_eq!(sniff(&[0, 0, 1, 0x09, 0xf0]), Some(Format::H264));
        assert_eq!(sniff(&[0, 0, 0, 1, 0x40, 0x01]), Some(Format::H265));
        assert_eq!(sniff(&[0, 0, 0, 1, 0x46, 0x01]), Some(Format::H265));
        assert_eq!(sniff(b"hello world"), None);
    }
}
