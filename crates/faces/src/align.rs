//! Alignment: the least-squares similarity transform (rotation, uniform scale, translation; no
//! reflection) taking a face's five landmarks onto the standard ArcFace template of the 112x112
//! crop, and the bilinear warp that produces the crop.
//!
//! The closed form is Umeyama's (1991) restricted to 2-D: with both point sets centred,
//! `a = sum(x.x') / sum(|x|^2)` and `b = sum(x cross x') / sum(|x|^2)` give
//! `x' = [a -b; b a] x + t`, the same transform as scikit-image's `SimilarityTransform.estimate`
//! and insightface's `norm_crop`.

use image::{Rgb, RgbImage};

use crate::Point;

/// The side of the aligned crop.
pub const CROP_SIZE: u32 = 112;

/// The standard ArcFace five-point template for a 112x112 crop (insightface's `arcface_dst`,
/// also the `REFERENCE_FACIAL_POINTS` of the `fr_feature` package), in the order of
/// [`crate::Landmark`]: the subject's left eye (on the crop's right), right eye, nose, left and
/// right mouth corners.
pub const ARCFACE_TEMPLATE: [Point; 5] = [
    Point {
        x: 73.5318,
        y: 51.5014,
    },
    Point {
        x: 38.2946,
        y: 51.6963,
    },
    Point {
        x: 56.0252,
        y: 71.7366,
    },
    Point {
        x: 70.7299,
        y: 92.2041,
    },
    Point {
        x: 41.5493,
        y: 92.3655,
    },
];

/// `x' = a*x - b*y + tx`, `y' = b*x + a*y + ty`: a rotation by `atan2(b, a)`, a scale by
/// `hypot(a, b)` and a translation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    /// `scale * cos(angle)`.
    pub a: f64,
    /// `scale * sin(angle)`.
    pub b: f64,
    /// Translation in x.
    pub tx: f64,
    /// Translation in y.
    pub ty: f64,
}

impl Similarity {
    /// Applies the transform to a point.
    pub fn apply(&self, p: Point) -> Point {
        let (x, y) = (f64::from(p.x), f64::from(p.y));
        Point {
            x: (self.a * x - self.b * y + self.tx) as f32,
            y: (self.b * x + self.a * y + self.ty) as f32,
        }
    }

    /// The inverse transform; `None` when the scale is zero.
    pub fn inverse(&self) -> Option<Similarity> {
        let d = self.a * self.a + self.b * self.b;
        if !(d.is_finite() && d > 1e-12) {
            return None;
        }
        let (a, b) = (self.a / d, -self.b / d);
        Some(Similarity {
            a,
            b,
            tx: -(a * self.tx - b * self.ty),
            ty: -(b * self.tx + a * self.ty),
        })
    }

    /// The scale factor.
    pub fn scale(&self) -> f64 {
        self.a.hypot(self.b)
    }
}

/// The least-squares similarity transform taking `src[i]` onto `dst[i]`. `None` when the source
/// points all coincide (or are not finite), where no transform is defined.
pub fn estimate_similarity(src: &[Point], dst: &[Point]) -> Option<Similarity> {
    let n = src.len().min(dst.len());
    if n < 2 {
        return None;
    }
    let nf = n as f64;
    let mean = |pts: &[Point]| {
        let (sx, sy) = pts.iter().take(n).fold((0.0, 0.0), |(sx, sy), p| {
            (sx + f64::from(p.x), sy + f64::from(p.y))
        });
        (sx / nf, sy / nf)
    };
    let (msx, msy) = mean(src);
    let (mdx, mdy) = mean(dst);
    let (mut dot, mut cross, mut norm) = (0.0, 0.0, 0.0);
    for (s, d) in src.iter().zip(dst) {
        let (x, y) = (f64::from(s.x) - msx, f64::from(s.y) - msy);
        let (u, v) = (f64::from(d.x) - mdx, f64::from(d.y) - mdy);
        dot += x * u + y * v;
        cross += x * v - y * u;
        norm += x * x + y * y;
    }
    if !(norm.is_finite() && norm > 1e-9 && dot.is_finite() && cross.is_finite()) {
        return None;
    }
    let (a, b) = (dot / norm, cross / norm);
    Some(Similarity {
        a,
        b,
        tx: mdx - (a * msx - b * msy),
        ty: mdy - (b * msx + a * msy),
    })
}

/// Samples `image` at a continuous position (pixel centres at integers) bilinearly; pixels
/// outside the image count as black, as OpenCV's `warpAffine` with a constant border does.
fn sample(image: &RgbImage, x: f64, y: f64) -> [f64; 3] {
    let (w, h) = (i64::from(image.width()), i64::from(image.height()));
    let (x0f, y0f) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0f, y - y0f);
    let (x0, y0) = (x0f as i64, y0f as i64);
    let mut out = [0.0; 3];
    for (dy, wy) in [(0, 1.0 - fy), (1, fy)] {
        for (dx, wx) in [(0, 1.0 - fx), (1, fx)] {
            let (px, py) = (x0 + dx, y0 + dy);
            if px < 0 || py < 0 || px >= w || py >= h {
                continue;
            }
            let Rgb(p) = *image.get_pixel(px as u32, py as u32);
            let wgt = wx * wy;
            for (o, c) in out.iter_mut().zip(p) {
                *o += wgt * f64::from(c);
            }
        }
    }
    out
}

/// Warps `image` with `to_crop` (image pixels to crop pixels) into a `size`x`size` crop.
pub fn warp(image: &RgbImage, to_crop: &Similarity, size: u32) -> Option<RgbImage> {
    let back = to_crop.inverse()?;
    let mut crop = RgbImage::new(size, size);
    for (u, v, px) in crop.enumerate_pixels_mut() {
        let (u, v) = (f64::from(u), f64::from(v));
        let x = back.a * u - back.b * v + back.tx;
        let y = back.b * u + back.a * v + back.ty;
        let s = sample(image, x, y);
        *px = Rgb(s.map(|c| c.round().clamp(0.0, 255.0) as u8));
    }
    Some(crop)
}

/// The 112x112 crop of the face whose landmarks (in [`crate::Landmark`] order) are given,
/// aligned onto [`ARCFACE_TEMPLATE`]. `None` when the landmarks are degenerate.
pub fn align_face(image: &RgbImage, landmarks: &[Point; 5]) -> Option<RgbImage> {
    let t = estimate_similarity(landmarks, &ARCFACE_TEMPLATE)?;
    warp(image, &t, CROP_SIZE)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;

    fn close(a: Point, b: Point, eps: f32) -> bool {
        (a.x - b.x).abs() < eps && (a.y - b.y).abs() < eps
    }

    #[test]
    fn recovers_a_known_transform() {
        let (scale, angle) = (2.5f64, 0.3f64);
        let t = Similarity {
            a: scale * angle.cos(),
            b: scale * angle.sin(),
            tx: 17.0,
            ty: -4.0,
        };
        let dst: Vec<Point> = ARCFACE_TEMPLATE.iter().map(|p| t.apply(*p)).collect();
        let est = estimate_similarity(&ARCFACE_TEMPLATE, &dst).unwrap();
        assert!((est.a - t.a).abs() < 1e-4 && (est.b - t.b).abs() < 1e-4);
        assert!((est.tx - t.tx).abs() < 1e-3 && (est.ty - t.ty).abs() < 1e-3);
        assert!((est.scale() - scale).abs() < 1e-4);
    }

    #[test]
    fn inverse_round_trips() {
        let t = Similarity {
            a: 0.8,
            b: -0.6,
            tx: 3.0,
            ty: 9.0,
        };
        let inv = t.inverse().unwrap();
        let p = Point { x: 12.5, y: -7.25 };
        assert!(close(inv.apply(t.apply(p)), p, 1e-4));
    }

    #[test]
    fn identity_on_the_template_and_degenerate_input() {
        let t = estimate_similarity(&ARCFACE_TEMPLATE, &ARCFACE_TEMPLATE).unwrap();
        assert!((t.a - 1.0).abs() < 1e-9 && t.b.abs() < 1e-9 && t.tx.abs() < 1e-6);
        let same = [Point { x: 5.0, y: 5.0 }; 5];
        assert_eq!(estimate_similarity(&same, &ARCFACE_TEMPLATE), None);
        let nan = [Point {
            x: f32::NAN,
            y: 0.0,
        }; 5];
        assert_eq!(estimate_similarity(&nan, &ARCFACE_TEMPLATE), None);
    }

    #[test]
    fn warp_by_identity_copies_and_translation_shifts() {
        let img = RgbImage::from_fn(8, 8, |x, y| Rgb([(x * 30) as u8, (y * 30) as u8, 100]));
        let id = Similarity {
            a: 1.0,
            b: 0.0,
            tx: 0.0,
            ty: 0.0,
        };
        assert_eq!(warp(&img, &id, 8).unwrap(), img);
        // Crop pixel (u, v) = image pixel (u + 2, v + 1); beyond the image it is black.
        let shift = Similarity {
            a: 1.0,
            b: 0.0,
            tx: -2.0,
            ty: -1.0,
        };
        let out = warp(&img, &shift, 8).unwrap();
        assert_eq!(out.get_pixel(0, 0), img.get_pixel(2, 1));
        assert_eq!(out.get_pixel(7, 7).0, [0, 0, 0]);
        // Half a pixel: the mean of two neighbours.
        let half = Similarity {
            a: 1.0,
            b: 0.0,
            tx: -0.5,
            ty: 0.0,
        };
        let out = warp(&img, &half, 8).unwrap();
        assert_eq!(out.get_pixel(1, 0).0[0], 45);
    }
}
