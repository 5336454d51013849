//! Property tests of the alignment maths.

use proptest::prelude::*;
use vigil_faces::{ARCFACE_TEMPLATE, Point, Similarity, estimate_similarity};

fn transform() -> impl Strategy<Value = Similarity> {
    (
        0.05f64..20.0,
        -std::f64::consts::PI..std::f64::consts::PI,
        -2000.0f64..2000.0,
        -2000.0f64..2000.0,
    )
        .prop_map(|(s, r, tx, ty)| Similarity {
            a: s * r.cos(),
            b: s * r.sin(),
            tx,
            ty,
        })
}

proptest! {
    /// Aligning a transformed template recovers the transform (and its inverse maps the
    /// points back onto the template).
    #[test]
    fn estimate_recovers_the_transform(t in transform()) {
        let moved: Vec<Point> = ARCFACE_TEMPLATE.iter().map(|p| t.apply(*p)).collect();
        let est = estimate_similarity(&ARCFACE_TEMPLATE, &moved).unwrap();
        let tol = 1e-3 * t.scale().max(1.0);
        prop_assert!((est.a - t.a).abs() < 1e-4 && (est.b - t.b).abs() < 1e-4, "{est:?} vs {t:?}");
        prop_assert!((est.tx - t.tx).abs() < tol && (est.ty - t.ty).abs() < tol, "{est:?} vs {t:?}");
        let back = estimate_similarity(&moved, &ARCFACE_TEMPLATE).unwrap();
        for (m, p) in moved.iter().zip(ARCFACE_TEMPLATE) {
            let q = back.apply(*m);
            prop_assert!((q.x - p.x).abs() < 0.05 && (q.y - p.y).abs() < 0.05, "{q:?} vs {p:?}");
        }
    }

    /// With noise on the landmarks, the estimate is the least-squares one: no other similarity
    /// nearby fits better.
    #[test]
    fn estimate_is_least_squares(t in transform(), noise in proptest::collection::vec(-3.0f32..3.0, 10), da in -0.01f64..0.01, db in -0.01f64..0.01) {
        let moved: Vec<Point> = ARCFACE_TEMPLATE.iter().enumerate()
            .map(|(i, p)| { let q = t.apply(*p); Point { x: q.x + noise[2 * i], y: q.y + noise[2 * i + 1] } })
            .collect();
        let est = estimate_similarity(&ARCFACE_TEMPLATE, &moved).unwrap();
        let err = |s: &Similarity| -> f64 {
            ARCFACE_TEMPLATE.iter().zip(&moved).map(|(p, m)| {
                let q = s.apply(*p);
                f64::from(q.x - m.x).powi(2) + f64::from(q.y - m.y).powi(2)
            }).sum()
        };
        let other = Similarity { a: est.a + da * est.scale(), b: est.b + db * est.scale(), ..est };
        prop_assert!(err(&est) <= err(&other) * (1.0 + 1e-6) + 1e-2);
    }
}
