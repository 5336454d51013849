//! Similarity on Rekognition's 0-100 scale.
//!
//! The engine compares embeddings by cosine (both are L2-normalised, so a dot product). The
//! cosine `c` is mapped to a score by a monotone, piecewise-linear function anchored at the
//! calibrated match cosine `t` ([`MATCH_COSINE`]):
//!
//! ```text
//! c <= 0      ->  0
//! 0 < c < t   ->  80 * c / t
//! t <= c <= 1 ->  80 + 20 * (c - t) / (1 - t)
//! ```
//!
//! so that Rekognition's default `FaceMatchThreshold` of 80 ([`MATCH_THRESHOLD`]) falls exactly
//! at `t`, identical crops score 100 and unrelated faces (cosine near 0) score near 0. `t` was
//! chosen on the benchmark's photo set (`bench/README.md`, "faces"): it is the threshold at a
//! false-accept rate of 0.1% there, and it separates the committed test set (every same-person
//! pair scores 80 or more, every different-person pair less; `tests/faces/calibration.rs`).

use crate::Embedding;

/// Rekognition's default `FaceMatchThreshold`: a similarity of at least this is a match.
pub const MATCH_THRESHOLD: f32 = 80.0;

/// The cosine that maps to [`MATCH_THRESHOLD`].
pub const MATCH_COSINE: f32 = 0.45;

/// The 0-100 similarity of a cosine (see the module doc).
pub fn similarity_from_cosine(cosine: f32) -> f32 {
    let c = if cosine.is_finite() {
        cosine.clamp(-1.0, 1.0)
    } else {
        0.0
    };
    let t = MATCH_COSINE;
    if c <= 0.0 {
        0.0
    } else if c < t {
        MATCH_THRESHOLD * c / t
    } else {
        MATCH_THRESHOLD + (100.0 - MATCH_THRESHOLD) * (c - t) / (1.0 - t)
    }
}

/// The cosine of two embeddings (their dot product: both are L2-normalised). Embeddings of
/// different lengths compare over the shorter.
pub fn cosine(a: &Embedding, b: &Embedding) -> f32 {
    a.0.iter().zip(b.0.iter()).map(|(x, y)| x * y).sum()
}

/// Similarity on Rekognition's 0-100 scale (calibrated: 80 = the match threshold).
pub fn similarity(a: &Embedding, b: &Embedding) -> f32 {
    similarity_from_cosine(cosine(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_and_monotone() {
        assert_eq!(similarity_from_cosine(-0.5), 0.0);
        assert_eq!(similarity_from_cosine(0.0), 0.0);
        assert!((similarity_from_cosine(MATCH_COSINE) - 80.0).abs() < 1e-4);
        assert!((similarity_from_cosine(1.0) - 100.0).abs() < 1e-4);
        assert_eq!(similarity_from_cosine(f32::NAN), 0.0);
        let mut last = -1.0;
        for i in -100..=100 {
            let s = similarity_from_cosine(i as f32 / 100.0);
            assert!(s >= last, "not monotone at {i}");
            last = s;
        }
    }
}
