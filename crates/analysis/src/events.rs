//! Face events, beyond Rekognition: one event when a face's track is decided (known, with
//! who, or unknown) and one when it ends, rather than a record per frame, so that a stranger at
//! the door for 20 s is one appearance, not a hundred records.
//!
//! # The decision
//!
//! A track is **known** as soon as one search of its face matches the collection at or above
//! the processor's threshold (the best match names who). It is **unknown** once it has been
//! searched with a face good enough to trust a miss ([`GOOD_FACE_PX`] wide, sharpness at least
//! [`GOOD_SHARPNESS`]) and seen in at least [`UNKNOWN_AFTER`] analysed frames, none matching.
//! A face first seen too small or blurred is searched again whenever its view gets markedly
//! better ([`crate::track`]) and stays undecided meanwhile; a track that ends undecided is
//! reported `UNDETERMINED`. A known track stays known; an unknown one becomes known if a later,
//! better view matches (its end event says so).
//!
//! # Storage
//!
//! Each processor's events are a log of the store (group `analysis.events/<processor>`),
//! sealed under the video stream's master key and kept as long as the stream's video (24 h when
//! the stream keeps none); an entry's key is the event's kind and its data the event's JSON
//! then the track's best thumbnail (JPEG), each length-prefixed. An event is durable when the
//! run goes on past it; deleting the processor deletes its events.

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use vigil_store::{LogGroupRef, NewEntry, NewLogGroup, Position, Store, StoreError, StreamRef};

use crate::error::{Error, Result};

/// The log groups of processors' events: this prefix and the processor's name.
pub const GROUP_PREFIX: &str = "analysis.events/";
/// A face narrower than this (pixels of the frame) is too small to trust a miss.
pub const GOOD_FACE_PX: f32 = 60.0;
/// A face less sharp than this (0-100) is too blurred to trust a miss.
pub const GOOD_SHARPNESS: f32 = 20.0;
/// Analysed frames a track is seen in, none matching, before it is decided unknown.
pub const UNKNOWN_AFTER: u32 = 3;
/// The long side of thumbnails, pixels.
pub const THUMBNAIL_PX: usize = 160;

/// What an event says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// The track was decided (known or unknown).
    FaceTrackStarted,
    /// The track ended (no face matched it for a second).
    FaceTrackEnded,
}

impl EventKind {
    /// The name (`FaceTrackStarted`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::FaceTrackStarted => "FaceTrackStarted",
            EventKind::FaceTrackEnded => "FaceTrackEnded",
        }
    }
}

/// What was decided of a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Decision {
    /// A face of the collection matched.
    Known,
    /// Good views of it matched nothing.
    Unknown,
    /// It ended before a view good enough to decide.
    Undetermined,
}

impl Decision {
    /// The name (`KNOWN`).
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Known => "KNOWN",
            Decision::Unknown => "UNKNOWN",
            Decision::Undetermined => "UNDETERMINED",
        }
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaceEvent {
    /// What happened.
    pub kind: EventKind,
    /// The processor.
    pub processor: String,
    /// The video stream (name) and its ARN.
    pub stream: String,
    /// ...
    pub stream_arn: String,
    /// The run's session.
    pub session: String,
    /// The track, unique in the session.
    pub track: u64,
    /// The decision.
    pub decision: Decision,
    /// The best match's face id (known tracks).
    pub face_id: Option<u128>,
    /// Its `ExternalImageId`.
    pub external_image_id: Option<String>,
    /// Its similarity, 0-100.
    pub similarity: Option<f32>,
    /// When the face was first seen (producer time, ms).
    pub start_ms: u64,
    /// When it was last seen (producer time, ms).
    pub end_ms: u64,
    /// The fragment it was first seen in.
    pub fragment_number: u64,
}

/// An event read back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Where it is in the processor's events (an opaque, increasing cursor).
    pub position: Position,
    /// When it was recorded (ms).
    pub recorded_ms: u64,
    /// The event.
    pub event: FaceEvent,
    /// The track's best view (JPEG), if any.
    pub thumbnail: Option<Bytes>,
}

fn group_name(processor: &str) -> String {
    format!("{GROUP_PREFIX}{processor}")
}

/// The id of a processor's events group, created if missing with the video stream's
/// retention and master key.
pub(crate) fn group(store: &Store, processor: &str, stream: &str) -> Result<u64> {
    let name = group_name(processor);
    match store.log_group(LogGroupRef::Name(&name)) {
        Ok(g) => return Ok(g.id),
        Err(StoreError::LogGroupNotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let video = store.stream(StreamRef::Name(stream))?;
    let mut new = NewLogGroup::new(name.clone());
    new.retention_hours = if video.data_retention_hours > 0 {
        video.data_retention_hours
    } else {
        24
    };
    new.kms_key_id = Some(video.kms_key_id.clone());
    match store.create_log_group(new) {
        Ok(g) => Ok(g.id),
        Err(StoreError::LogGroupExists(_)) => Ok(store.log_group(LogGroupRef::Name(&name))?.id),
        Err(e) => Err(e.into()),
    }
}

/// Deletes a processor's events (with the processor).
pub(crate) fn delete(store: &Store, processor: &str) -> Result<()> {
    match store.delete_log_group(LogGroupRef::Name(&group_name(processor))) {
        Ok(()) | Err(StoreError::LogGroupNotFound(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Appends an event, durably.
pub(crate) fn record(
    store: &Store,
    group: u64,
    event: &FaceEvent,
    thumbnail: Option<&[u8]>,
) -> Result<()> {
    let json = serde_json::to_vec(event)
        .map_err(|e| Error::Internal(format!("encoding a face event: {e}")))?;
    let thumb = thumbnail.unwrap_or_default();
    let mut data = BytesMut::with_capacity(8 + json.len() + thumb.len());
    data.put_u32(u32::try_from(json.len()).unwrap_or(u32::MAX));
    data.put_slice(&json);
    data.put_u32(u32::try_from(thumb.len()).unwrap_or(u32::MAX));
    data.put_slice(thumb);
    store
        .append_log(
            group,
            0,
            &[NewEntry {
                key: Bytes::from_static(event.kind.as_str().as_bytes()),
                data: data.freeze(),
            }],
        )?
        .wait_blocking()?;
    Ok(())
}

/// Splits an entry's data into the event and its thumbnail.
pub fn decode(data: &Bytes) -> Option<(FaceEvent, Option<Bytes>)> {
    let take = |at: usize| -> Option<(Bytes, usize)> {
        let len = data.get(at..at.checked_add(4)?)?;
        let len = u32::from_be_bytes(len.try_into().ok()?) as usize;
        let start = at + 4;
        let end = start.checked_add(len)?;
        if end > data.len() {
            return None;
        }
        Some((data.slice(start..end), end))
    };
    let (json, next) = take(0)?;
    let (thumb, _) = take(next)?;
    let event = serde_json::from_slice(&json).ok()?;
    Some((event, (!thumb.is_empty()).then_some(thumb)))
}

/// A processor's events from `from` on (inclusive), at most `limit`.
pub fn read(
    store: &Store,
    processor: &str,
    from: Position,
    limit: usize,
) -> Result<Vec<StoredEvent>> {
    let group = match store.log_group(LogGroupRef::Name(&group_name(processor))) {
        Ok(g) => g.id,
        Err(StoreError::LogGroupNotFound(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let entries = store.read_log(group, 0, from, limit, 16 << 20)?;
    Ok(entries
        .into_iter()
        .filter_map(|e| {
            let (event, thumbnail) = decode(&e.data)?;
            Some(StoredEvent {
                position: e.position,
                recorded_ms: e.arrival_ms,
                event,
                thumbnail,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn entries_round_trip_and_garbage_is_refused() {
        let event = FaceEvent {
            kind: EventKind::FaceTrackEnded,
            processor: "p".into(),
            stream: "cam".into(),
            stream_arn: "arn".into(),
            session: "s".into(),
            track: 3,
            decision: Decision::Unknown,
            face_id: None,
            external_image_id: None,
            similarity: None,
            start_ms: 1,
            end_ms: 2,
            fragment_number: 7,
        };
        let json = serde_json::to_vec(&event).unwrap();
        let mut data = BytesMut::new();
        data.put_u32(json.len() as u32);
        data.put_slice(&json);
        data.put_u32(3);
        data.put_slice(b"jpg");
        let (back, thumb) = decode(&data.clone().freeze()).unwrap();
        assert_eq!(back, event);
        assert_eq!(thumb.unwrap(), Bytes::from_static(b"jpg"));
        for cut in 0..data.len() {
            assert!(decode(&Bytes::copy_from_slice(&data[..cut])).is_none());
        }
        let mut huge = BytesMut::new();
        huge.put_u32(u32::MAX);
        assert!(decode(&huge.freeze()).is_none());
    }
}
