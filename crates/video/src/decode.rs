//! Pictures out of stored video, one call per run of samples (what GetImages does per fragment):
//! H.264 decoding (OpenH264, built from its bundled source; or, with the
//! `ffmpeg` feature, H.264 and H.265 with the system's libavcodec, [`libav`]), YUV 4:2:0 to
//! RGB, resizing and JPEG/PNG encoding.
//!
//! - **Decoding**: each sample's length-prefixed NAL units become Annex B, with the SPS and
//!   PPS of the `avcC` put before every key frame. The decoder runs without flushing after
//!   each call (OpenH264's default flush loses frames of streams with B-frames) and
//!   `flush_remaining` at the end; its pictures come in presentation order, so the n-th
//!   picture out is the n-th frame in presentation order from the first key frame fed.
//! - **Colour**: BT.601 limited range (what ffmpeg assumes for untagged streams), chroma
//!   taken nearest (each chroma sample covers its 2x2 luma block, as swscale's unscaled
//!   converter does). With libavcodec the picture's reported matrix (BT.709 or BT.601) and
//!   range (full or limited) are honoured; OpenH264 reports neither, so its pictures are
//!   always converted as BT.601 limited range.
//! - **Resizing**: bilinear on RGB, pixel centres aligned.

use openh264::OpenH264API;
use openh264::decoder::{DecodedYUV, Decoder, DecoderConfig, Flush};
use openh264::formats::YUVSource;

/// An RGB picture, 8 bits per channel, rows packed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgb {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height * 3` bytes.
    pub data: Vec<u8>,
}

/// Why a picture could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PixelError {
    /// The `avcC` record is malformed.
    #[error("malformed avcC")]
    Avcc,
    /// A sample is malformed (its NAL lengths run past its end).
    #[error("malformed sample")]
    Sample,
    /// OpenH264 refused the stream.
    #[error("decoding failed: {0}")]
    Decode(String),
    /// The encoder failed.
    #[error("encoding failed: {0}")]
    Encode(String),
    /// This build has no decoder for the codec.
    #[error("{0}")]
    Unsupported(String),
}

/// The parameter sets and NAL length size of an `avcC` record.
#[derive(Debug, Clone)]
pub struct AvcConfig {
    /// Bytes of each NAL unit's length prefix (1, 2 or 4).
    pub length_size: usize,
    /// The SPS and PPS NAL units in Annex B (each after a start code).
    pub parameter_sets: Vec<u8>,
}

const START_CODE: [u8; 4] = [0, 0, 0, 1];

impl AvcConfig {
    /// Parses an AVCDecoderConfigurationRecord.
    pub fn parse(avcc: &[u8]) -> Result<Self, PixelError> {
        let mut r = Reader(avcc);
        let head = r.take(5).ok_or(PixelError::Avcc)?;
        let length_size = usize::from(head.get(4).ok_or(PixelError::Avcc)? & 3) + 1;
        if length_size == 3 {
            return Err(PixelError::Avcc);
        }
        let mut parameter_sets = Vec::new();
        let sps_count = r.u8().ok_or(PixelError::Avcc)? & 0x1f;
        for _ in 0..sps_count {
            let len = r.u16().ok_or(PixelError::Avcc)?;
            parameter_sets.extend_from_slice(&START_CODE);
            parameter_sets.extend_from_slice(r.take(usize::from(len)).ok_or(PixelError::Avcc)?);
        }
        let pps_count = r.u8().ok_or(PixelError::Avcc)?;
        for _ in 0..pps_count {
            let len = r.u16().ok_or(PixelError::Avcc)?;
            parameter_sets.extend_from_slice(&START_CODE);
            parameter_sets.extend_from_slice(r.take(usize::from(len)).ok_or(PixelError::Avcc)?);
        }
        if sps_count == 0 || pps_count == 0 {
            return Err(PixelError::Avcc);
        }
        Ok(Self {
            length_size,
            parameter_sets,
        })
    }

    /// One sample in Annex B, after the parameter sets when `with_parameter_sets`.
    pub fn annex_b(&self, sample: &[u8], with_parameter_sets: bool) -> Result<Vec<u8>, PixelError> {
        let mut out = Vec::with_capacity(sample.len() + 64);
        if with_parameter_sets {
            out.extend_from_slice(&self.parameter_sets);
        }
        let mut r = Reader(sample);
        while !r.0.is_empty() {
            let len_bytes = r.take(self.length_size).ok_or(PixelError::Sample)?;
            let len = len_bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            let nal = r.take(len).ok_or(PixelError::Sample)?;
            if nal.is_empty() {
                continue;
            }
            out.extend_from_slice(&START_CODE);
            out.extend_from_slice(nal);
        }
        Ok(out)
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }
    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
    }
}

/// Decodes `samples` (one access unit each, length-prefixed, in decode order, the first a key
/// frame) until the pictures in presentation order reach the largest of `wanted` (indices
/// into that order), and returns the wanted ones as RGB, in `wanted`'s order (`None` where
/// the stream ended first).
pub fn decode_h264(
    config: &AvcConfig,
    samples: &[(&[u8], bool)],
    wanted: &[usize],
) -> Result<Vec<Option<Rgb>>, PixelError> {
    let mut out: Vec<Option<Rgb>> = vec![None; wanted.len()];
    let Some(&last) = wanted.iter().max() else {
        return Ok(out);
    };
    let mut decoder = Decoder::with_api_config(
        OpenH264API::from_source(),
        DecoderConfig::new().flush_after_decode(Flush::NoFlush),
    )
    .map_err(|e| PixelError::Decode(e.to_string()))?;
    let mut produced = 0usize;
    let take = |yuv: &DecodedYUV<'_>, out: &mut Vec<Option<Rgb>>, n: usize| {
        if wanted.contains(&n) {
            let rgb = yuv_to_rgb(yuv);
            for (slot, w) in out.iter_mut().zip(wanted) {
                if *w == n {
                    *slot = Some(rgb.clone());
                }
            }
        }
    };
    for (data, keyframe) in samples {
        if produced > last {
            break;
        }
        let packet = config.annex_b(data, *keyframe)?;
        let picture = decoder
            .decode(&packet)
            .map_err(|e| PixelError::Decode(e.to_string()))?;
        if let Some(yuv) = picture {
            take(&yuv, &mut out, produced);
            produced += 1;
        }
    }
    if produced <= last {
        let rest = decoder
            .flush_remaining()
            .map_err(|e| PixelError::Decode(e.to_string()))?;
        for yuv in &rest {
            take(yuv, &mut out, produced);
            produced += 1;
        }
    }
    Ok(out)
}

/// YUV 4:2:0 to RGB, BT.601 limited range, chroma nearest (see the module docs).
fn yuv_to_rgb(yuv: &DecodedYUV<'_>) -> Rgb {
    let (width, height) = yuv.dimensions();
    let (ys, us, vs) = yuv.strides();
    planes_to_rgb(
        Planes {
            width,
            height,
            y: (yuv.y(), ys),
            u: (yuv.u(), us),
            v: (yuv.v(), vs),
        },
        Colour::default(),
    )
}

/// How a picture's YUV values map to RGB: the matrix and the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Colour {
    /// BT.709 coefficients (HD); BT.601 otherwise (what untagged streams get, as in ffmpeg).
    pub bt709: bool,
    /// Full range (0-255); limited (16-235, 16-240) otherwise.
    pub full_range: bool,
}

impl Colour {
    /// Fixed-point (x256) coefficients: luma scale, V→R, U→G, V→G, U→B.
    fn coefficients(self) -> (i32, i32, i32, i32, i32) {
        match (self.bt709, self.full_range) {
            (false, false) => (298, 409, 100, 208, 516),
            (true, false) => (298, 459, 55, 136, 541),
            (false, true) => (256, 359, 88, 183, 454),
            (true, true) => (256, 403, 48, 120, 475),
        }
    }
}

/// The three planes of an 8-bit 4:2:0 picture, each with its stride.
pub(crate) struct Planes<'a> {
    pub(crate) width: usize,
    pub(crate) height: usize,
    pub(crate) y: (&'a [u8], usize),
    pub(crate) u: (&'a [u8], usize),
    pub(crate) v: (&'a [u8], usize),
}

/// 8-bit YUV 4:2:0 to RGB, chroma nearest (see the module docs).
pub(crate) fn planes_to_rgb(p: Planes<'_>, colour: Colour) -> Rgb {
    let (width, height) = (p.width, p.height);
    let (ky, kvr, kug, kvg, kub) = colour.coefficients();
    let y_off = if colour.full_range { 0 } else { 16 };
    let mut data = vec![0u8; width * height * 3];
    for (row, line) in data.chunks_exact_mut(width * 3).enumerate() {
        let yrow = p.y.0.get(row * p.y.1..).unwrap_or_default();
        let urow = p.u.0.get((row / 2) * p.u.1..).unwrap_or_default();
        let vrow = p.v.0.get((row / 2) * p.v.1..).unwrap_or_default();
        for (col, px) in line.chunks_exact_mut(3).enumerate() {
            let y = i32::from(yrow.get(col).copied().unwrap_or(16));
            let u = i32::from(urow.get(col / 2).copied().unwrap_or(128));
            let v = i32::from(vrow.get(col / 2).copied().unwrap_or(128));
            let c = ky * (y - y_off);
            let d = u - 128;
            let e = v - 128;
            let clamp = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
            px.copy_from_slice(&[
                clamp(c + kvr * e),
                clamp(c - kug * d - kvg * e),
                clamp(c + kub * d),
            ]);
        }
    }
    Rgb {
        width,
        height,
        data,
    }
}

/// The parameter sets and NAL length size of an `hvcC` record, for decoders that take Annex B.
#[derive(Debug, Clone)]
pub struct HvcConfig {
    /// Bytes of each NAL unit's length prefix (1, 2 or 4).
    pub length_size: usize,
    /// The VPS, SPS and PPS NAL units in Annex B (each after a start code).
    pub parameter_sets: Vec<u8>,
}

impl HvcConfig {
    /// Parses an HEVCDecoderConfigurationRecord.
    pub fn parse(hvcc: &[u8]) -> Result<Self, PixelError> {
        let mut r = Reader(hvcc);
        r.take(21).ok_or(PixelError::Avcc)?;
        let length_size = usize::from(r.u8().ok_or(PixelError::Avcc)? & 3) + 1;
        if length_size == 3 {
            return Err(PixelError::Avcc);
        }
        let arrays = r.u8().ok_or(PixelError::Avcc)?;
        let mut parameter_sets = Vec::new();
        for _ in 0..arrays {
            r.u8().ok_or(PixelError::Avcc)?;
            let count = r.u16().ok_or(PixelError::Avcc)?;
            for _ in 0..count {
                let len = usize::from(r.u16().ok_or(PixelError::Avcc)?);
                let nal = r.take(len).ok_or(PixelError::Avcc)?;
                parameter_sets.extend_from_slice(&START_CODE);
                parameter_sets.extend_from_slice(nal);
            }
        }
        Ok(Self {
            length_size,
            parameter_sets,
        })
    }

    /// The same as an [`AvcConfig`] (the conversion to Annex B is the same).
    pub fn as_avc(&self) -> AvcConfig {
        AvcConfig {
            length_size: self.length_size,
            parameter_sets: self.parameter_sets.clone(),
        }
    }
}

/// Decoding with the system's FFmpeg (libavcodec), behind the `ffmpeg` feature: H.264 and
/// H.265, one thread per decoder (the per-core figure is what the benchmark measures), the
/// samples fed as Annex B with the parameter sets before each key frame, 8-bit 4:2:0 pictures
/// converted with the colour the decoder reports (BT.601 or BT.709, limited or full range).
#[cfg(feature = "ffmpeg")]
pub mod libav {
    use ffmpeg_next as ff;

    use super::{AvcConfig, Colour, PixelError, Planes, Rgb, planes_to_rgb};

    /// Which decoder.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Kind {
        H264,
        H265,
    }

    pub(crate) fn err(e: ff::Error) -> PixelError {
        PixelError::Decode(e.to_string())
    }

    pub(crate) fn colour_of(frame: &ff::frame::Video) -> Result<Colour, PixelError> {
        use ff::format::Pixel;
        let full = match frame.format() {
            Pixel::YUV420P => frame.color_range() == ff::color::Range::JPEG,
            Pixel::YUVJ420P => true,
            other => {
                return Err(PixelError::Decode(format!(
                    "pictures in {other:?} are not supported (8-bit 4:2:0 only)"
                )));
            }
        };
        Ok(Colour {
            bt709: matches!(frame.color_space(), ff::color::Space::BT709),
            full_range: full,
        })
    }

    fn rgb_of(frame: &ff::frame::Video) -> Result<Rgb, PixelError> {
        let colour = colour_of(frame)?;
        Ok(planes_to_rgb(
            Planes {
                width: frame.width() as usize,
                height: frame.height() as usize,
                y: (frame.data(0), frame.stride(0)),
                u: (frame.data(1), frame.stride(1)),
                v: (frame.data(2), frame.stride(2)),
            },
            colour,
        ))
    }

    /// A libavcodec decoder of `kind` on one thread.
    pub(crate) fn open(kind: Kind) -> Result<ff::decoder::Video, PixelError> {
        ff::init().map_err(err)?;
        ff::util::log::set_level(ff::util::log::Level::Fatal);
        let id = match kind {
            Kind::H264 => ff::codec::Id::H264,
            Kind::H265 => ff::codec::Id::HEVC,
        };
        let codec = ff::decoder::find(id)
            .ok_or_else(|| PixelError::Decode(format!("FFmpeg has no {id:?} decoder")))?;
        let mut ctx = ff::codec::context::Context::new_with_codec(codec);
        ctx.set_threading(ff::threading::Config {
            kind: ff::threading::Type::None,
            count: 1,
            ..Default::default()
        });
        ctx.decoder().video().map_err(err)
    }

    /// As [`super::decode_h264`], with libavcodec.
    pub fn decode(
        kind: Kind,
        config: &AvcConfig,
        samples: &[(&[u8], bool)],
        wanted: &[usize],
    ) -> Result<Vec<Option<Rgb>>, PixelError> {
        let mut out: Vec<Option<Rgb>> = vec![None; wanted.len()];
        let Some(&last) = wanted.iter().max() else {
            return Ok(out);
        };
        let mut decoder = open(kind)?;
        let mut produced = 0usize;
        let mut frame = ff::frame::Video::empty();
        let mut take = |frame: &ff::frame::Video, n: usize| -> Result<(), PixelError> {
            if wanted.contains(&n) {
                let rgb = rgb_of(frame)?;
                for (slot, w) in out.iter_mut().zip(wanted) {
                    if *w == n {
                        *slot = Some(rgb.clone());
                    }
                }
            }
            Ok(())
        };
        for (data, keyframe) in samples {
            if produced > last {
                break;
            }
            let packet = ff::Packet::copy(&config.annex_b(data, *keyframe)?);
            decoder.send_packet(&packet).map_err(err)?;
            while decoder.receive_frame(&mut frame).is_ok() {
                take(&frame, produced)?;
                produced += 1;
            }
        }
        if produced <= last {
            decoder.send_eof().map_err(err)?;
            while decoder.receive_frame(&mut frame).is_ok() {
                take(&frame, produced)?;
                produced += 1;
            }
        }
        Ok(out)
    }
}

/// Bilinear resize to `width` x `height` (both at least 1).
pub fn resize(src: &Rgb, width: usize, height: usize) -> Rgb {
    if src.width == width && src.height == height {
        return src.clone();
    }
    let mut data = vec![0u8; width * height * 3];
    if src.width == 0 || src.height == 0 {
        return Rgb {
            width,
            height,
            data,
        };
    }
    // Source coordinate of a destination index, pixel centres aligned.
    let map = |i: usize, dst: usize, srcn: usize| -> (usize, usize, f32) {
        let x = ((i as f32 + 0.5) * srcn as f32 / dst as f32 - 0.5).max(0.0);
        let x0 = (x.floor() as usize).min(srcn - 1);
        let x1 = (x0 + 1).min(srcn - 1);
        (x0, x1, x - x0 as f32)
    };
    let cols: Vec<(usize, usize, f32)> = (0..width).map(|i| map(i, width, src.width)).collect();
    let px = |x: usize, y: usize, c: usize| -> f32 {
        f32::from(
            src.data
                .get((y * src.width + x) * 3 + c)
                .copied()
                .unwrap_or(0),
        )
    };
    for (row, line) in data.chunks_exact_mut(width * 3).enumerate() {
        let (y0, y1, fy) = map(row, height, src.height);
        for ((x0, x1, fx), out) in cols.iter().zip(line.chunks_exact_mut(3)) {
            for (c, o) in out.iter_mut().enumerate() {
                let top = px(*x0, y0, c) * (1.0 - fx) + px(*x1, y0, c) * fx;
                let bottom = px(*x0, y1, c) * (1.0 - fx) + px(*x1, y1, c) * fx;
                *o = (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    Rgb {
        width,
        height,
        data,
    }
}

/// A JPEG of `rgb` at `quality` (1–100).
pub fn jpeg(rgb: &Rgb, quality: u8) -> Result<Vec<u8>, PixelError> {
    let w = u16::try_from(rgb.width).map_err(|e| PixelError::Encode(e.to_string()))?;
    let h = u16::try_from(rgb.height).map_err(|e| PixelError::Encode(e.to_string()))?;
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, quality)
        .encode(&rgb.data, w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| PixelError::Encode(e.to_string()))?;
    Ok(out)
}

/// A PNG of `rgb`.
pub fn png(rgb: &Rgb) -> Result<Vec<u8>, PixelError> {
    let w = u32::try_from(rgb.width).map_err(|e| PixelError::Encode(e.to_string()))?;
    let h = u32::try_from(rgb.height).map_err(|e| PixelError::Encode(e.to_string()))?;
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc
            .write_header()
            .map_err(|e| PixelError::Encode(e.to_string()))?;
        writer
            .write_image_data(&rgb.data)
            .map_err(|e| PixelError::Encode(e.to_string()))?;
        writer
            .finish()
            .map_err(|e| PixelError::Encode(e.to_string()))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn avcc_and_annex_b() {
        // version, profile, compat, level, 0xff (4-byte lengths), 1 SPS, 1 PPS.
        let avcc = [
            1, 0x42, 0, 0x1e, 0xff, 0xe1, 0, 2, 0x67, 0xaa, 1, 0, 2, 0x68, 0xbb,
        ];
        let c = AvcConfig::parse(&avcc).unwrap();
        assert_eq!(c.length_size, 4);
        assert_eq!(
            c.parameter_sets,
            [0, 0, 0, 1, 0x67, 0xaa, 0, 0, 0, 1, 0x68, 0xbb]
        );
        let sample = [0, 0, 0, 2, 0x65, 1, 0, 0, 0, 1, 0x06];
        assert_eq!(
            c.annex_b(&sample, false).unwrap(),
            [0, 0, 0, 1, 0x65, 1, 0, 0, 0, 1, 0x06]
        );
        assert!(c.annex_b(&[0, 0, 0, 9, 1], false).is_err());
        assert!(AvcConfig::parse(&avcc[..10]).is_err());
    }

    #[test]
    fn resize_keeps_flat_colour_and_size() {
        let src = Rgb {
            width: 4,
            height: 2,
            data: [10u8, 20, 30].repeat(8),
        };
        let r = resize(&src, 7, 5);
        assert_eq!((r.width, r.height, r.data.len()), (7, 5, 105));
        assert!(r.data.chunks(3).all(|p| p == [10, 20, 30]));
    }
}
