//! What the Rekognition API adds to the metrics (`/metrics`).
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `vigil_faces_indexed_total` | counter | | faces IndexFaces added to collections |
//! | `vigil_face_search_seconds` | histogram | | SearchFaces/SearchFacesByImage: searching a collection's index (not the engine) |
//! | `vigil_face_engine_seconds` | histogram | | Rekognition calls that run the engine: decoding, detection and embeddings |
//! | `vigil_processor_frames_decoded_total` | counter | `processor` | frames a stream processor decoded |
//! | `vigil_processor_frames_analysed_total` | counter | `processor` | frames it searched for faces |
//! | `vigil_processor_frames_still_total` | counter | `processor` | sampled frames not searched: nothing moved |
//! | `vigil_processor_frames_skipped_total` | counter | `processor` | frames skipped: behind live, or before a key frame |
//! | `vigil_processor_decode_errors_total` | counter | `processor` | samples or fragments the decoder refused |
//! | `vigil_processor_faces_total` | counter | `processor` | faces seen in analysed frames |
//! | `vigil_processor_searches_total` | counter | `processor` | faces embedded and searched in the collection |
//! | `vigil_processor_records_total` | counter | `processor` | records written to the data stream |
//! | `vigil_processor_events_total` | counter | `processor` | face events recorded (a track decided, a track ended) |
//! | `vigil_processor_latency_milliseconds` | gauge | `processor` | how far behind its arrival the last analysed frame was |

use std::sync::atomic::Ordering;
use std::sync::{Mutex, Once};

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

/// The processors whose statistics `/metrics` shows: those of the latest state built (a
/// process serves one; tests build several in turn).
/// (The statistics only: holding the analysis would hold its store open.)
static PROCESSORS: Mutex<Option<std::sync::Arc<vigil_analysis::StatsRegistry>>> = Mutex::new(None);

/// Shows these processors' statistics in the metrics.
pub fn register_processors(stats: std::sync::Arc<vigil_analysis::StatsRegistry>) {
    *PROCESSORS.lock().unwrap_or_else(|e| e.into_inner()) = Some(stats);
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| global().add_collector(std::sync::Arc::new(render_processors)));
}

fn render_processors(out: &mut String) {
    use std::fmt::Write as _;
    use vigil_analysis::ProcessorStats as S;
    let stats = match PROCESSORS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
    {
        Some(a) => a.all(),
        None => return,
    };
    type Field = fn(&S) -> &std::sync::atomic::AtomicU64;
    let families: [(&str, &str, &str, Field); 10] = [
        (
            "vigil_processor_frames_decoded_total",
            "counter",
            "Frames a stream processor decoded.",
            |s| &s.frames_decoded,
        ),
        (
            "vigil_processor_frames_analysed_total",
            "counter",
            "Frames a stream processor searched for faces.",
            |s| &s.frames_analysed,
        ),
        (
            "vigil_processor_frames_still_total",
            "counter",
            "Sampled frames not searched because nothing moved.",
            |s| &s.frames_still,
        ),
        (
            "vigil_processor_frames_skipped_total",
            "counter",
            "Frames skipped: behind live, or before a key frame.",
            |s| &s.frames_skipped,
        ),
        (
            "vigil_processor_decode_errors_total",
            "counter",
            "Samples or fragments the decoder refused.",
            |s| &s.decode_errors,
        ),
        (
            "vigil_processor_faces_total",
            "counter",
            "Faces seen in analysed frames.",
            |s| &s.faces,
        ),
        (
            "vigil_processor_searches_total",
            "counter",
            "Faces embedded and searched in the collection.",
            |s| &s.searches,
        ),
        (
            "vigil_processor_records_total",
            "counter",
            "Records written to the data stream.",
            |s| &s.records_out,
        ),
        (
            "vigil_processor_events_total",
            "counter",
            "Face events recorded: a track decided, a track ended.",
            |s| &s.events,
        ),
        (
            "vigil_processor_latency_milliseconds",
            "gauge",
            "How far behind its arrival the last analysed frame was.",
            |s| &s.latency_ms,
        ),
    ];
    for (name, kind, help, field) in families {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (processor, s) in &stats {
            let label = processor.replace('\\', "\\\\").replace('"', "\\\"");
            let _ = writeln!(
                out,
                "{name}{{processor=\"{label}\"}} {}",
                field(s).load(Ordering::Relaxed)
            );
        }
    }
}
