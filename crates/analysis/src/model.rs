//! What a stream processor is, as the store keeps it (a JSON document of kind [`KIND`],
//! versioned), and the results it produces before any wire format is put on them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The store's document kind of stream processors.
pub const KIND: &str = "analysis.stream-processor";
/// Format version of [`ProcessorRecord`] as persisted.
pub const PROCESSOR_RECORD_VERSION: u32 = 1;
/// Frames analysed per second of video, unless the processor says otherwise.
pub const DEFAULT_ANALYSIS_FPS: f32 = 5.0;

/// A processor's lifecycle state (Rekognition's `StreamProcessorStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Created or stopped: not analysing.
    Stopped,
    /// Start was asked; analysis is being set up.
    Starting,
    /// Following its stream.
    Running,
    /// Stopped by a cause it cannot get past (its stream, collection or data stream is gone);
    /// `status_message` says which.
    Failed,
    /// Stop was asked; analysis is ending.
    Stopping,
    /// An update is being applied.
    Updating,
}

impl Status {
    /// The AWS name (`RUNNING`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Stopped => "STOPPED",
            Status::Starting => "STARTING",
            Status::Running => "RUNNING",
            Status::Failed => "FAILED",
            Status::Stopping => "STOPPING",
            Status::Updating => "UPDATING",
        }
    }

    /// Whether analysis runs (or is about to): the processor cannot be started, updated or
    /// deleted.
    pub fn is_active(self) -> bool {
        matches!(self, Status::Starting | Status::Running | Status::Stopping)
    }
}

/// Where a run starts (Rekognition's `KVSStreamStartSelector`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StartAt {
    /// At the fragment holding this producer timestamp (ms since the epoch), or the first
    /// after it.
    ProducerTimestamp(u64),
    /// At this fragment.
    Fragment(u64),
}

/// A region of the frame faces are reported in, as ratios of the frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Region {
    /// Left, top, width, height.
    Box([f32; 4]),
    /// A polygon's points (x, y).
    Polygon(Vec<[f32; 2]>),
}

impl Region {
    /// Whether the point (ratios of the frame) is in the region.
    pub fn contains(&self, x: f32, y: f32) -> bool {
        match self {
            Region::Box([l, t, w, h]) => x >= *l && x <= l + w && y >= *t && y <= t + h,
            Region::Polygon(points) => {
                // Even-odd rule.
                let mut inside = false;
                let n = points.len();
                for i in 0..n {
                    let (Some(a), Some(b)) = (points.get(i), points.get((i + n - 1) % n)) else {
                        continue;
                    };
                    let ([xi, yi], [xj, yj]) = (*a, *b);
                    if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
                        inside = !inside;
                    }
                }
                inside
            }
        }
    }
}

/// A stream processor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessorRecord {
    /// Persisted format version ([`PROCESSOR_RECORD_VERSION`]).
    pub v: u32,
    /// Its name, unique.
    pub name: String,
    /// Its ARN (`arn:aws:rekognition:REGION:ACCOUNT:streamprocessor/NAME`).
    pub arn: String,
    /// The video stream it analyses (name), and the ARN it was given as.
    pub input_stream: String,
    /// The input's ARN.
    pub input_arn: String,
    /// The data stream its results go to (name), and the ARN.
    pub output_stream: String,
    /// The output's ARN.
    pub output_arn: String,
    /// `RoleArn`: recorded and shown, not used (Vigil has no IAM roles).
    pub role_arn: String,
    /// The face collection searched.
    pub collection: String,
    /// Matches below this similarity (0-100) are not reported.
    pub face_match_threshold: f32,
    /// `NotificationChannel.SNSTopicArn`.
    pub notification_topic_arn: Option<String>,
    /// Faces are reported only where their box's centre is in one of these (all of the frame
    /// when empty).
    pub regions_of_interest: Vec<Region>,
    /// `DataSharingPreference.OptIn`: recorded (nothing leaves the server).
    pub data_sharing_opt_in: bool,
    /// `KmsKeyId`: recorded.
    pub kms_key_id: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Lifecycle state.
    pub status: Status,
    /// Why it is FAILED (or other news of its state).
    pub status_message: Option<String>,
    /// Creation time (ms since the epoch).
    pub creation_ms: u64,
    /// Last change of definition or state (ms).
    pub last_update_ms: u64,
    /// The current (or last) run's session id.
    pub session_id: Option<String>,
    /// Where the current run started.
    pub start_at: Option<StartAt>,
    /// The current run ends after this many seconds.
    pub max_duration_s: Option<u64>,
    /// When the current run started (ms).
    pub run_started_ms: Option<u64>,
    /// The last fragment the current run analysed to its end: a run resumed after a restart
    /// goes on after it.
    pub checkpoint: Option<u64>,
}

/// A face seen in a frame, with what the collection said of it.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceSighting {
    /// The detector's face, in the frame's pixels.
    pub face: vigil_faces::DetectedFace,
    /// The collection's faces like it, best first, at or above the threshold.
    pub matches: Vec<Match>,
    /// The track the face belongs to.
    pub track: u64,
}

/// A face of the collection that matched.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    /// Its face id.
    pub face_id: u128,
    /// Similarity, 0-100.
    pub similarity: f32,
    /// What the collection keeps of it.
    pub meta: crate::collections::FaceMeta,
}

/// One analysed frame that holds at least one face.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameResult {
    /// The processor's name.
    pub processor: String,
    /// The video stream's ARN.
    pub stream_arn: String,
    /// The fragment the frame is in.
    pub fragment_number: u64,
    /// The fragment's server timestamp (ms).
    pub server_ts_ms: u64,
    /// The fragment's producer timestamp (ms).
    pub producer_ts_ms: u64,
    /// The frame's offset from the fragment's start (ms).
    pub frame_offset_ms: u64,
    /// The frame's size.
    pub width: u32,
    /// ...
    pub height: u32,
    /// The faces, largest first.
    pub faces: Vec<FaceSighting>,
}

/// Renders analysis results for the data stream: the API layer's wire format (Rekognition's
/// JSON), given to the engine so that it knows no wire format itself.
pub trait OutputFormat: Send + Sync + std::fmt::Debug {
    /// The partition key and data of the record for `frame`.
    fn frame_record(&self, frame: &FrameResult) -> (String, Vec<u8>);
}

/// Where a processor's alerts go: its `NotificationChannel` topic, through the server's
/// topics (the server gives this; the analysis knows no topic). Called once per track decided
/// unknown, after its event is recorded, from the processor's thread: it must not block
/// (publish in the background) and logs its own failures.
pub trait Alerts: Send + Sync + std::fmt::Debug {
    /// Publishes the alert for `event` to the topic `topic_arn`.
    fn unknown_face(&self, topic_arn: &str, event: &crate::events::FaceEvent);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions() {
        let b = Region::Box([0.1, 0.1, 0.5, 0.5]);
        assert!(b.contains(0.3, 0.3));
        assert!(!b.contains(0.7, 0.3));
        let tri = Region::Polygon(vec![[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]);
        assert!(tri.contains(0.2, 0.2));
        assert!(!tri.contains(0.8, 0.8));
        assert!(!Region::Polygon(vec![]).contains(0.5, 0.5));
    }
}
