//! Pixels for GetImages: H.264 decoding (OpenH264, built from its bundled source), YUV 4:2:0
//! to RGB, resizing and JPEG/PNG encoding.
//!
//! - **Decoding**: each sample's length-prefixed NAL units become Annex B, with the SPS and
//!   PPS of the `avcC` put before every key frame. The decoder runs without flushing after
//!   each call (OpenH264's default flush loses frames of streams with B-frames) and
//!   `flush_remaining` at the end; its pictures come in presentation order, so the n-th
//!   picture out is the n-th frame in presentation order from the first key frame fed.
//! - **Colour**: BT.601 limited range (what ffmpeg assumes for untagged streams), chroma
//!   taken nearest (each chroma sample covers its 2x2 luma block, as swscale's unscaled
//!   converter does). An SPS that signals full range or BT.709 is not honoured yet.
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
    let (yp, up, vp) = (yuv.y(), yuv.u(), yuv.v());
    let mut data = vec![0u8; width * height * 3];
    for (row, line) in data.chunks_exact_mut(width * 3).enumerate() {
        let yrow = yp.get(row * ys..).unwrap_or_default();
        let urow = up.get((row / 2) * us..).unwrap_or_default();
        let vrow = vp.get((row / 2) * vs..).unwrap_or_default();
        for (col, px) in line.chunks_exact_mut(3).enumerate() {
            let y = i32::from(yrow.get(col).copied().unwrap_or(16));
            let u = i32::from(urow.get(col / 2).copied().unwrap_or(128));
            let v = i32::from(vrow.get(col / 2).copied().unwrap_or(128));
            let c = 298 * (y - 16);
            let d = u - 128;
            let e = v - 128;
            let clamp = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
            px.copy_from_slice(&[
                clamp(c + 409 * e),
                clamp(c - 100 * d - 208 * e),
                clamp(c + 516 * d),
            ]);
        }
    }
    Rgb {
        width,
        height,
        data,
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
