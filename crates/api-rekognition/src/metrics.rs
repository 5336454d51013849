//! What the Rekognition API adds to the metrics (`/metrics`).
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `vigil_faces_indexed_total` | counter | | faces IndexFaces added to collections |
//! | `vigil_face_search_seconds` | histogram | | SearchFaces/SearchFacesByImage: searching a collection's index (not the engine) |
//! | `vigil_face_engine_seconds` | histogram | | Rekognition calls that run the engine: decoding, detection and embeddings |

use std::sync::Once;

use vigil_api_common::metrics::{CounterVec, Family, Histogram, global};

/// The Rekognition API's families.
#[derive(Debug)]
pub struct RekognitionMetrics {
    /// Faces IndexFaces added.
    pub faces_indexed: CounterVec,
    /// Time searching a collection's face index.
    pub face_search_seconds: Histogram,
    /// Time the face engine took per call (decode, detect, embed).
    pub face_engine_seconds: Histogram,
}

impl Family for RekognitionMetrics {
    fn render(&self, out: &mut String) {
        self.faces_indexed.render(out);
        self.face_search_seconds.render(out);
        self.face_engine_seconds.render(out);
    }
}

static METRICS: RekognitionMetrics = RekognitionMetrics {
    faces_indexed: CounterVec::new(
        "vigil_faces_indexed_total",
        "Faces IndexFaces added to collections.",
        &[],
    ),
    face_search_seconds: Histogram::new(
        "vigil_face_search_seconds",
        "Time searching a face collection's index (SearchFaces, SearchFacesByImage).",
    ),
    face_engine_seconds: Histogram::new(
        "vigil_face_engine_seconds",
        "Time the face engine took per Rekognition call: decoding, detection, embeddings.",
    ),
};

/// The families, added to the process's registry on first use.
pub fn metrics() -> &'static RekognitionMetrics {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| global().register(&METRICS));
    &METRICS
}
