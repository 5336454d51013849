//! What stream processors produce, on the wire: the records they write to their data stream,
//! in Rekognition's JSON ([`RekognitionOutput`], the engine's `OutputFormat`), and Vigil's own
//! face events ([`list_face_events`]).

use serde::Deserialize;
use serde_json::{Value, json};
use vigil_analysis::model::{FrameResult, OutputFormat};
use vigil_api_common::wire::fragment_number;

use super::RekCall;
use super::error::{RekResult, RekognitionError};
use super::processors::processor_name;
use super::wire::{self, face_json};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FaceEventsInput {
    stream_processor_name: Option<String>,
    next_token: Option<String>,
    max_results: Option<i64>,
    include_thumbnails: Option<bool>,
}

/// `ListFaceEvents` (Vigil's extension): a processor's face events, oldest first, one per
/// decided track and one per ended track, with the track's best view.
pub fn list_face_events(call: &RekCall) -> RekResult<Value> {
    use base64::Engine as _;
    let input: FaceEventsInput = call.input()?;
    let name = processor_name(&input.stream_processor_name, "streamProcessorName")?;
    let limit =
        usize::try_from(wire::int_in(input.max_results, "maxResults", 1, 100, 100)?).unwrap_or(100);
    let from = match wire::parse_token(&call.state.cfg.tokens, "ListFaceEvents", &input.next_token)?
    {
        None => vigil_store::Position::MIN,
        Some(t) => t
            .parse::<u128>()
            .map(vigil_store::Position::from_u128)
            .map_err(|_| {
                RekognitionError::InvalidPaginationTokenException("Invalid token".into())
            })?,
    };
    let thumbnails = input.include_thumbnails.unwrap_or(true);
    let page = call.state.analysis.events(name, from, limit + 1)?;
    let more = page.len() > limit;
    let events: Vec<Value> = page
        .iter()
        .take(limit)
        .map(|s| {
            let e = &s.event;
            let mut v = json!({
                "EventId": s.position.as_u128().to_string(),
                "Type": e.kind.as_str(),
                "StreamProcessorName": e.processor,
                "StreamArn": e.stream_arn,
                "SessionId": e.session,
                "TrackId": e.track,
                "Decision": e.decision.as_str(),
                "StartTimestamp": e.start_ms as f64 / 1000.0,
                "EndTimestamp": e.end_ms as f64 / 1000.0,
                "FragmentNumber": fragment_number(e.fragment_number),
                "RecordedTimestamp": s.recorded_ms as f64 / 1000.0,
            });
            if let Some(o) = v.as_object_mut() {
                if let (Some(id), Some(sim)) = (e.face_id, e.similarity) {
                    let mut m =
                        json!({ "FaceId": vigil_api_common::wire::uuid(id), "Similarity": sim });
                    if let (Some(ext), Some(mo)) = (&e.external_image_id, m.as_object_mut()) {
                        mo.insert("ExternalImageId".into(), json!(ext));
                    }
                    o.insert("MatchedFace".into(), m);
                }
                if let (true, Some(t)) = (thumbnails, &s.thumbnail) {
                    o.insert(
                        "Thumbnail".into(),
                        json!(base64::engine::general_purpose::STANDARD.encode(t)),
                    );
                }
            }
            v
        })
        .collect();
    let mut out = json!({ "FaceEvents": events });
    if let (true, Some(last), Some(o)) =
        (more, page.get(limit.saturating_sub(1)), out.as_object_mut())
    {
        o.insert(
            "NextToken".into(),
            json!(wire::next_token(
                &call.state.cfg.tokens,
                "ListFaceEvents",
                &last.position.next().as_u128().to_string()
            )),
        );
    }
    Ok(out)
}

/// The records stream processors write, in Rekognition's JSON (`../shared/spec/analysis-chain.md`
/// §3): one per analysed frame with faces, partitioned by the video stream's ARN so that a
/// camera's results stay in order on one shard.
#[derive(Debug, Clone, Copy, Default)]
pub struct RekognitionOutput;

impl OutputFormat for RekognitionOutput {
    fn frame_record(&self, f: &FrameResult) -> (String, Vec<u8>) {
        let (w, h) = (f.width.max(1) as f32, f.height.max(1) as f32);
        let faces: Vec<Value> = f
            .faces
            .iter()
            .map(|s| {
                json!({
                    "DetectedFace": wire::face_detail(&s.face, w, h),
                    "MatchedFaces": s.matches.iter().map(|m| json!({
                        "Similarity": m.similarity,
                        "Face": face_json(m.face_id, &m.meta),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let frame_ms = f.producer_ts_ms.saturating_add(f.frame_offset_ms);
        let body = json!({
            "InputInformation": { "KinesisVideo": {
                "StreamArn": f.stream_arn,
                "FragmentNumber": fragment_number(f.fragment_number),
                "ServerTimestamp": f.server_ts_ms as f64 / 1000.0,
                "ProducerTimestamp": f.producer_ts_ms as f64 / 1000.0,
                "FrameOffsetInSeconds": f.frame_offset_ms as f64 / 1000.0,
            } },
            "StreamProcessorInformation": { "Status": "RUNNING" },
            "FaceSearchResponse": faces,
        });
        tracing::trace!(processor = f.processor, frame_ms, "frame record");
        (
            f.stream_arn.clone(),
            serde_json::to_vec(&body).unwrap_or_default(),
        )
    }
}
