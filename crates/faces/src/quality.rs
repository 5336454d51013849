//! Head pose and image quality of a detected face. Both are estimates from cheap measurements,
//! not models: good enough to rank faces (frontal before profile, sharp before blurred) and to
//! fill Rekognition's `Pose` and `Quality`, not to measure angles.
//!
//! - **Roll**: the angle of the line from the image-left eye to the image-right eye, degrees,
//!   positive clockwise in the image (y down).
//! - **Yaw**: in the face's frame (roll removed), the nose tip's horizontal offset from the eye
//!   midpoint, as a fraction of half the eye distance, `r`; `yaw = asin(clamp(r * 0.9))`.
//!   The factor comes from the template: a head turned by `t` moves the nose tip (about 0.55
//!   half-eye-distances in front of the eye plane... roughly) by `sin t` of that depth while
//!   the eyes close in by `cos t`; 0.9 makes a 45-degree turn of an average face read 45.
//!   Positive: the nose points to the image's right (the subject turns to their left).
//! - **Pitch**: where the nose tip sits between the eye line and the mouth line, `q` (0.495 on
//!   the ArcFace template, a frontal face); `pitch = asin(clamp((0.495 - q) * 2.5))`. Positive:
//!   the head tilts up.
//! - **Brightness**: the mean luma (BT.601) of the face box, 0-255 scaled to 0-100.
//! - **Sharpness**: the variance `v` of the 4-neighbour Laplacian of the luma of the aligned
//!   112x112 crop (so the figure does not depend on the face's size in the image), mapped to
//!   0-100 by `100 * v / (v + 100)`: a blurred face (variance under 50) scores under 33, a
//!   sharp one (several hundred) over 75.

use image::RgbImage;

use crate::{Point, Pose, Quality, Rect};

fn luma(p: &image::Rgb<u8>) -> f64 {
    0.299 * f64::from(p.0[0]) + 0.587 * f64::from(p.0[1]) + 0.114 * f64::from(p.0[2])
}

/// The head pose estimated from five landmarks in [`crate::Landmark`] order.
pub fn pose(lm: &[Point; 5]) -> Pose {
    let [eye_l, eye_r, nose, mouth_l, mouth_r] = *lm;
    // Image-left eye is the subject's right eye.
    let (dx, dy) = (f64::from(eye_l.x - eye_r.x), f64::from(eye_l.y - eye_r.y));
    let eye_dist = dx.hypot(dy);
    if !(eye_dist.is_finite() && eye_dist > 1e-6) {
        return Pose::default();
    }
    let roll = dy.atan2(dx);
    let (c, s) = (roll.cos(), roll.sin());
    // Into the face's frame: rotate by -roll about the eye midpoint.
    let mid = (
        f64::from(eye_l.x + eye_r.x) / 2.0,
        f64::from(eye_l.y + eye_r.y) / 2.0,
    );
    let local = |p: Point| {
        let (x, y) = (f64::from(p.x) - mid.0, f64::from(p.y) - mid.1);
        (x * c + y * s, -x * s + y * c)
    };
    let (nx, ny) = local(nose);
    let mouth_y = (local(mouth_l).1 + local(mouth_r).1) / 2.0;
    let r = nx / (eye_dist / 2.0);
    let yaw = (r * 0.9).clamp(-1.0, 1.0).asin();
    let q = if mouth_y > 1e-6 { ny / mouth_y } else { 0.495 };
    let pitch = ((0.495 - q) * 2.5).clamp(-1.0, 1.0).asin();
    let deg = |v: f64| v.to_degrees() as f32;
    Pose {
        roll: deg(roll),
        yaw: deg(yaw),
        pitch: deg(pitch),
    }
}

/// Mean luma of the box, 0-100.
pub fn brightness(image: &RgbImage, rect: &Rect) -> f32 {
    let x0 = rect.left.max(0.0) as u32;
    let y0 = rect.top.max(0.0) as u32;
    let x1 = ((rect.left + rect.width).max(0.0) as u32).min(image.width());
    let y1 = ((rect.top + rect.height).max(0.0) as u32).min(image.height());
    let (mut sum, mut n) = (0.0, 0u64);
    for y in y0..y1 {
        for x in x0..x1 {
            sum += luma(image.get_pixel(x, y));
            n += 1;
        }
    }
    if n == 0 {
        return 0.0;
    }
    (sum / n as f64 / 255.0 * 100.0) as f32
}

/// Sharpness 0-100 from the variance of the Laplacian of a crop's luma.
pub fn sharpness(crop: &RgbImage) -> f32 {
    let (w, h) = (crop.width(), crop.height());
    if w < 3 || h < 3 {
        return 0.0;
    }
    let l = |x: u32, y: u32| luma(crop.get_pixel(x, y));
    let (mut sum, mut sum2, mut n) = (0.0, 0.0, 0.0);
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let v = l(x - 1, y) + l(x + 1, y) + l(x, y - 1) + l(x, y + 1) - 4.0 * l(x, y);
            sum += v;
            sum2 += v * v;
            n += 1.0;
        }
    }
    let var = (sum2 / n - (sum / n) * (sum / n)).max(0.0);
    (100.0 * var / (var + 100.0)) as f32
}

/// Brightness of the box and sharpness of the aligned crop.
pub fn quality(image: &RgbImage, rect: &Rect, aligned: Option<&RgbImage>) -> Quality {
    Quality {
        brightness: brightness(image, rect),
        sharpness: aligned.map_or(0.0, sharpness),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;
    use crate::ARCFACE_TEMPLATE;

    #[test]
    fn the_template_is_frontal() {
        let p = pose(&ARCFACE_TEMPLATE);
        assert!(
            p.roll.abs() < 1.0 && p.yaw.abs() < 3.0 && p.pitch.abs() < 1.0,
            "{p:?}"
        );
    }

    #[test]
    fn roll_follows_the_eye_line() {
        let rot = crate::Similarity {
            a: 30f64.to_radians().cos(),
            b: 30f64.to_radians().sin(),
            tx: 5.0,
            ty: 9.0,
        };
        let p = pose(&ARCFACE_TEMPLATE.map(|q| rot.apply(q)));
        assert!((p.roll - 30.0).abs() < 1.0, "{p:?}");
        assert!(p.yaw.abs() < 3.0 && p.pitch.abs() < 1.0, "{p:?}");
        // The nose moved to the image's right: positive yaw.
        let mut turned = ARCFACE_TEMPLATE;
        turned[2].x += 10.0;
        assert!(pose(&turned).yaw > 20.0);
    }

    #[test]
    fn brightness_and_sharpness_ranges() {
        let white = RgbImage::from_pixel(20, 20, image::Rgb([255, 255, 255]));
        let r = Rect {
            left: 0.0,
            top: 0.0,
            width: 20.0,
            height: 20.0,
        };
        assert!((brightness(&white, &r) - 100.0).abs() < 1e-3);
        assert_eq!(sharpness(&white), 0.0);
        let checker = RgbImage::from_fn(20, 20, |x, y| {
            if (x + y) % 2 == 0 {
                image::Rgb([255, 255, 255])
            } else {
                image::Rgb([0, 0, 0])
            }
        });
        assert!(sharpness(&checker) > 99.0);
    }
}
