//! Decoding a live video track one sample at a time.
//!
//! A [`FrameDecoder`] takes each access unit as Matroska carries it (length-prefixed NAL
//! units, in decode order, with its presentation time) and gives back the pictures the
//! decoder let out, in presentation order, each with its own presentation time: decoders
//! hold pictures back by the stream's reorder depth (B-frames), so a picture is not always
//! the sample just pushed. Times are matched to pictures by order: the pictures come out in
//! presentation order, so each is the smallest presentation time pushed and not yet given.
//!
//! The decoder starts at a key frame: samples before the first are skipped (counted in
//! [`FrameDecoder::skipped`]). A sample the decoder refuses is an error; the decoder is then
//! reset and waits for the next key frame, so one bad fragment costs the pictures up to the
//! next key frame and nothing after. [`FrameDecoder::reset`] does the same on purpose (a
//! reader that skips ahead to a newer key frame).

use std::collections::BTreeMap;

#[cfg(not(feature = "ffmpeg"))]
use openh264::OpenH264API;
#[cfg(not(feature = "ffmpeg"))]
use openh264::decoder::{DecodedYUV, Decoder, DecoderConfig, Flush};
#[cfg(not(feature = "ffmpeg"))]
use openh264::formats::YUVSource;

use crate::decode::{AvcConfig, Colour, HvcConfig, PixelError, Planes, Rgb, planes_to_rgb};

/// The codecs a [`FrameDecoder`] takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// H.264: OpenH264 in the default build, libavcodec with the `ffmpeg` feature.
    H264,
    /// H.265: libavcodec, with the `ffmpeg` feature only.
    H265,
}

/// A decoded picture: 8-bit 4:2:0, each plane packed (no row padding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picture {
    /// Presentation time, in the caller's units (as pushed).
    pub pts: i64,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height` luma samples.
    pub y: Vec<u8>,
    /// `ceil(width / 2) * ceil(height / 2)` samples.
    pub u: Vec<u8>,
    /// As `u`.
    pub v: Vec<u8>,
    /// How the values map to RGB.
    pub colour: Colour,
}

impl Picture {
    fn chroma_width(&self) -> usize {
        self.width.div_ceil(2)
    }

    /// The picture in RGB (the conversion of [`crate::decode`]).
    pub fn to_rgb(&self) -> Rgb {
        let cw = self.chroma_width();
        planes_to_rgb(
            Planes {
                width: self.width,
                height: self.height,
                y: (&self.y, self.width),
                u: (&self.u, cw),
                v: (&self.v, cw),
            },
            self.colour,
        )
    }

    /// Copies three strided planes into a packed picture.
    fn from_planes(pts: i64, p: Planes<'_>, colour: Colour) -> Self {
        let (w, h) = (p.width, p.height);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let pack = |(data, stride): (&[u8], usize), w: usize, h: usize| {
            let mut out = Vec::with_capacity(w * h);
            for row in 0..h {
                let line = data
                    .get(row * stride..)
                    .and_then(|d| d.get(..w))
                    .unwrap_or_default();
                out.extend_from_slice(line);
                // A short plane (never from a sane decoder) is padded, not a panic.
                out.resize((row + 1) * w, 128);
            }
            out
        };
        Picture {
            pts,
            width: w,
            height: h,
            y: pack(p.y, w, h),
            u: pack(p.u, cw, ch),
            v: pack(p.v, cw, ch),
            colour,
        }
    }
}

enum Inner {
    #[cfg(not(feature = "ffmpeg"))]
    OpenH264(Box<Decoder>),
    #[cfg(feature = "ffmpeg")]
    Libav(Box<ffmpeg_next::decoder::Video>),
}

/// Decodes one video track sample by sample (see the module docs).
pub struct FrameDecoder {
    codec: VideoCodec,
    config: AvcConfig,
    inner: Option<Inner>,
    /// Presentation times pushed and not yet given, with how many samples carry each.
    pending: BTreeMap<i64, usize>,
    /// Waiting for a key frame.
    need_key: bool,
    skipped: u64,
}

impl std::fmt::Debug for FrameDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameDecoder")
            .field("codec", &self.codec)
            .field("pending", &self.pending.len())
            .field("need_key", &self.need_key)
            .field("skipped", &self.skipped)
            .finish()
    }
}

/// Most presentation times held for pictures not yet out: a decoder's reorder depth is at
/// most 16 pictures; more means the decoder is dropping pictures, and the oldest times go.
const MAX_PENDING: usize = 64;

impl FrameDecoder {
    /// A decoder for `codec`, configured by its Matroska CodecPrivate (`avcC` for H.264,
    /// `hvcC` for H.265). H.265 without the `ffmpeg` feature is [`PixelError::Unsupported`].
    pub fn new(codec: VideoCodec, codec_private: &[u8]) -> Result<Self, PixelError> {
        let config = match codec {
            VideoCodec::H264 => AvcConfig::parse(codec_private)?,
            VideoCodec::H265 => {
                if !cfg!(feature = "ffmpeg") {
                    return Err(PixelError::Unsupported(
                        "H.265 needs a build with the `ffmpeg` feature".into(),
                    ));
                }
                HvcConfig::parse(codec_private)?.as_avc()
            }
        };
        Ok(Self {
            codec,
            config,
            inner: None,
            pending: BTreeMap::new(),
            need_key: true,
            skipped: 0,
        })
    }

    /// Which decoder runs: `"openh264"` or `"libavcodec"`.
    pub fn implementation(&self) -> &'static str {
        if cfg!(feature = "ffmpeg") {
            "libavcodec"
        } else {
            "openh264"
        }
    }

    /// Samples skipped because the decoder was waiting for a key frame.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Whether the next sample must be a key frame to be decoded.
    pub fn waiting_for_key_frame(&self) -> bool {
        self.need_key
    }

    /// Drops the decoder's state and the pictures it holds back: decoding resumes at the next
    /// key frame.
    pub fn reset(&mut self) {
        self.inner = None;
        self.pending.clear();
        self.need_key = true;
    }

    fn open(&self) -> Result<Inner, PixelError> {
        #[cfg(feature = "ffmpeg")]
        {
            let kind = match self.codec {
                VideoCodec::H264 => crate::decode::libav::Kind::H264,
                VideoCodec::H265 => crate::decode::libav::Kind::H265,
            };
            Ok(Inner::Libav(Box::new(crate::decode::libav::open(kind)?)))
        }
        #[cfg(not(feature = "ffmpeg"))]
        {
            let d = Decoder::with_api_config(
                OpenH264API::from_source(),
                DecoderConfig::new().flush_after_decode(Flush::NoFlush),
            )
            .map_err(|e| PixelError::Decode(e.to_string()))?;
            Ok(Inner::OpenH264(Box::new(d)))
        }
    }

    /// Feeds one access unit (length-prefixed NAL units, decode order) presented at `pts`;
    /// returns the pictures that came out, in presentation order. On an error the decoder is
    /// reset (see the module docs).
    pub fn push(
        &mut self,
        sample: &[u8],
        keyframe: bool,
        pts: i64,
    ) -> Result<Vec<Picture>, PixelError> {
        if self.need_key && !keyframe {
            self.skipped += 1;
            return Ok(Vec::new());
        }
        let result = self.push_inner(sample, keyframe, pts);
        if result.is_err() {
            self.reset();
        }
        result
    }

    fn push_inner(
        &mut self,
        sample: &[u8],
        keyframe: bool,
        pts: i64,
    ) -> Result<Vec<Picture>, PixelError> {
        let packet = self.config.annex_b(sample, keyframe)?;
        if self.inner.is_none() {
            self.inner = Some(self.open()?);
        }
        self.need_key = false;
        *self.pending.entry(pts).or_default() += 1;
        while self.pending.values().sum::<usize>() > MAX_PENDING {
            take_pts(&mut self.pending);
        }
        let mut out = Vec::new();
        match self.inner.as_mut() {
            #[cfg(not(feature = "ffmpeg"))]
            Some(Inner::OpenH264(d)) => {
                let picture = d
                    .decode(&packet)
                    .map_err(|e| PixelError::Decode(e.to_string()))?;
                if let Some(yuv) = picture {
                    let planes = planes_of(&yuv);
                    let pts = take_pts(&mut self.pending);
                    out.push(Picture::from_planes(pts, planes, Colour::default()));
                }
            }
            #[cfg(feature = "ffmpeg")]
            Some(Inner::Libav(d)) => {
                use crate::decode::libav::{colour_of, err};
                d.send_packet(&ffmpeg_next::Packet::copy(&packet))
                    .map_err(err)?;
                let mut frame = ffmpeg_next::frame::Video::empty();
                while d.receive_frame(&mut frame).is_ok() {
                    let colour = colour_of(&frame)?;
                    let planes = Planes {
                        width: frame.width() as usize,
                        height: frame.height() as usize,
                        y: (frame.data(0), frame.stride(0)),
                        u: (frame.data(1), frame.stride(1)),
                        v: (frame.data(2), frame.stride(2)),
                    };
                    let pts = take_pts(&mut self.pending);
                    out.push(Picture::from_planes(pts, planes, colour));
                }
            }
            None => {}
        }
        Ok(out)
    }
}

/// The smallest presentation time pending (the picture just out is the earliest one).
fn take_pts(pending: &mut BTreeMap<i64, usize>) -> i64 {
    let Some(mut first) = pending.first_entry() else {
        return 0;
    };
    let pts = *first.key();
    if *first.get() > 1 {
        *first.get_mut() -= 1;
    } else {
        first.remove();
    }
    pts
}

#[cfg(not(feature = "ffmpeg"))]
fn planes_of<'a>(yuv: &'a DecodedYUV<'a>) -> Planes<'a> {
    let (width, height) = yuv.dimensions();
    let (ys, us, vs) = yuv.strides();
    Planes {
        width,
        height,
        y: (yuv.y(), ys),
        u: (yuv.u(), us),
        v: (yuv.v(), vs),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;
    use vigil_mkv::{Demuxer, Event};

    /// A sample: data, key frame, presentation time (ms).
    type Sample = (Vec<u8>, bool, i64);

    /// The codec private data and samples of a file's first track.
    fn frames(file: &[u8]) -> (Vec<u8>, Vec<Sample>) {
        let mut private = Vec::new();
        let mut out = Vec::new();
        for e in Demuxer::read_all(file).unwrap() {
            match e {
                Event::Tracks { tracks, .. } => {
                    private = tracks[0].codec_private.clone().unwrap().to_vec();
                }
                Event::Frame(f) if f.track == 1 => {
                    out.push((f.data.to_vec(), f.keyframe, f.time_ns / 1_000_000));
                }
                _ => {}
            }
        }
        (private, out)
    }

    fn check(codec: VideoCodec, file: &[u8]) {
        let (private, samples) = frames(file);
        let mut d = FrameDecoder::new(codec, &private).unwrap();
        let mut got = Vec::new();
        // A P-frame first is skipped: decoding starts at a key frame.
        let (first_p, ..) = samples.iter().find(|s| !s.1).unwrap().clone();
        assert!(d.push(&first_p, false, 0).unwrap().is_empty());
        assert_eq!(d.skipped(), 1);
        for (data, key, pts) in &samples {
            got.extend(d.push(data, *key, *pts).unwrap());
        }
        // Pictures come out in presentation order, each with its own time: the file's times
        // sorted, less the few the decoder still holds back (the stream's reorder depth).
        let mut times: Vec<i64> = samples.iter().map(|s| s.2).collect();
        times.sort_unstable();
        let out: Vec<i64> = got.iter().map(|p| p.pts).collect();
        assert!(
            out.len() + 4 >= times.len(),
            "{} of {}",
            out.len(),
            times.len()
        );
        assert_eq!(out, times[..out.len()]);
        let p = &got[0];
        assert_eq!((p.width, p.height), (320, 240));
        assert_eq!(p.y.len(), 320 * 240);
        assert_eq!(p.u.len(), 160 * 120);
        let rgb = p.to_rgb();
        assert_eq!(rgb.data.len(), 320 * 240 * 3);
        // The same pictures as the whole-run decoder gives (GetImages' path).
        let config = match codec {
            VideoCodec::H264 => AvcConfig::parse(&private).unwrap(),
            VideoCodec::H265 => HvcConfig::parse(&private).unwrap().as_avc(),
        };
        let data: Vec<(&[u8], bool)> = samples.iter().map(|s| (s.0.as_slice(), s.1)).collect();
        let wanted = [0usize, 7, 30];
        #[cfg(not(feature = "ffmpeg"))]
        let batch = crate::decode::decode_h264(&config, &data, &wanted).unwrap();
        #[cfg(feature = "ffmpeg")]
        let batch = {
            let kind = match codec {
                VideoCodec::H264 => crate::decode::libav::Kind::H264,
                VideoCodec::H265 => crate::decode::libav::Kind::H265,
            };
            crate::decode::libav::decode(kind, &config, &data, &wanted).unwrap()
        };
        for (i, w) in wanted.iter().enumerate() {
            assert_eq!(batch[i].as_ref().unwrap(), &got[*w].to_rgb(), "picture {w}");
        }
        // A garbage sample is an error, and decoding resumes at the next key frame.
        assert!(d.push(&[0, 0, 0, 9, 1], true, 0).is_err());
        assert!(d.waiting_for_key_frame());
        let (key, _, pts) = samples.iter().find(|s| s.1).unwrap();
        assert!(d.push(key, true, *pts).is_ok());
        assert!(!d.waiting_for_key_frame());
    }

    #[test]
    fn h264_pictures_come_out_in_presentation_order_with_their_times() {
        check(
            VideoCodec::H264,
            include_bytes!("../../../testdata/ffmpeg_h264.mkv"),
        );
    }

    #[cfg(feature = "ffmpeg")]
    #[test]
    fn h265_pictures_come_out_in_presentation_order_with_their_times() {
        check(
            VideoCodec::H265,
            include_bytes!("../../../testdata/ffmpeg_h265.mkv"),
        );
    }

    #[cfg(not(feature = "ffmpeg"))]
    #[test]
    fn h265_needs_the_ffmpeg_feature() {
        assert!(matches!(
            FrameDecoder::new(VideoCodec::H265, &[]),
            Err(PixelError::Unsupported(_))
        ));
    }
}
