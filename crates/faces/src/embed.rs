//! `fr_feature`'s input and output.
//!
//! Input: the 112x112 crop aligned onto [`crate::ARCFACE_TEMPLATE`], RGB, `(x - 127) / 128`,
//! NCHW (the package's own `preprocessFeature`; its `cv.imread` of a canvas gives RGBA, and it
//! takes channels 0, 1, 2). Output: 512 values, not normalised; the engine L2-normalises them.

use image::RgbImage;

/// The `fr_feature` input tensor (1x3x112x112) of an aligned crop.
pub fn feature_input(crop: &RgbImage) -> Vec<f32> {
    let plane = (crop.width() * crop.height()) as usize;
    let mut t = vec![0f32; 3 * plane];
    for (i, p) in crop.pixels().enumerate() {
        for (c, v) in p.0.iter().enumerate() {
            if let Some(slot) = t.get_mut(c * plane + i) {
                *slot = (f32::from(*v) - 127.0) / 128.0;
            }
        }
    }
    t
}

/// `v / |v|`; `None` when the norm is zero or not finite.
pub fn l2_normalise(v: &[f32]) -> Option<Box<[f32]>> {
    let norm = v
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt();
    if !(norm.is_finite() && norm > 1e-12) {
        return None;
    }
    Some(v.iter().map(|x| (f64::from(*x) / norm) as f32).collect())
}
