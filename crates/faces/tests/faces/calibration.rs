//! The calibration on the committed test set: at Rekognition's default `FaceMatchThreshold`
//! (80), every same-person pair matches and no different-person pair does.

use vigil_faces::{MATCH_THRESHOLD, similarity};

use crate::common::largest_face;

#[test]
fn threshold_80_separates_same_and_different_people() {
    let set = [
        ("obama", "obama.jpg"),
        ("obama", "obama2.jpg"),
        ("obama", "obama3.jpg"),
        ("biden", "biden.jpg"),
        ("collins", "astronaut.png"),
    ];
    let embs: Vec<_> = set
        .iter()
        .map(|(who, f)| (*who, *f, largest_face(f).2))
        .collect();
    let mut report = String::new();
    let (mut same, mut diff) = (0, 0);
    for (i, (wa, fa, ea)) in embs.iter().enumerate() {
        assert!((similarity(ea, ea) - 100.0).abs() < 1e-3);
        for (wb, fb, eb) in embs.iter().skip(i + 1) {
            let s = similarity(ea, eb);
            assert!((s - similarity(eb, ea)).abs() < 1e-4);
            report += &format!("{fa} {fb}: {s:.1}\n");
            if wa == wb {
                same += 1;
                assert!(s >= MATCH_THRESHOLD, "same person scored {s}:\n{report}");
            } else {
                diff += 1;
                assert!(
                    s < MATCH_THRESHOLD,
                    "different people scored {s}:\n{report}"
                );
            }
        }
    }
    assert_eq!((same, diff), (3, 7));
    eprintln!("{report}");
}

#[test]
fn embeddings_are_unit_length_and_512_long() {
    let (_, _, e) = largest_face("biden.jpg");
    assert_eq!(e.0.len(), vigil_faces::EMBEDDING_DIM);
    let n: f32 = e.0.iter().map(|v| v * v).sum();
    assert!((n - 1.0).abs() < 1e-4);
}
