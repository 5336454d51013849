//! PutMedia acks (`../shared/spec/kvs-api.md` §2.3): their encoding, and the ack stream of one
//! session. See [`super::putmedia`] for when each is sent.

use std::fmt::Write as _;

use axum::body::Bytes;
use tokio::sync::mpsc;

use super::ingest::AckError;
use crate::metrics::metrics;
use vigil_api_kvs_common::model::fragment_number;

/// An ack's `EventType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AckEvent {
    Buffering,
    Received,
    Persisted,
    Error(AckError),
    Idle,
}

impl AckEvent {
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Buffering => "BUFFERING",
            Self::Received => "RECEIVED",
            Self::Persisted => "PERSISTED",
            Self::Error(_) => "ERROR",
            Self::Idle => "IDLE",
        }
    }
}

/// One ack, as sent: a flat JSON object and a line feed. Every value is an integer or a fixed
/// ASCII string, so nothing needs escaping (the producer SDK's parser knows no escapes).
pub(super) fn encode_ack(event: AckEvent, timecode: Option<u64>, number: Option<u64>) -> String {
    let mut s = format!("{{\"EventType\":\"{}\"", event.name());
    if let Some(tc) = timecode {
        let _ = write!(s, ",\"FragmentTimecode\":{tc}");
    }
    if let Some(n) = number {
        let _ = write!(s, ",\"FragmentNumber\":\"{}\"", fragment_number(n));
    }
    if let AckEvent::Error(e) = event {
        let _ = write!(s, ",\"ErrorId\":{},\"ErrorCode\":\"{}\"", e.id(), e.code());
    }
    s.push_str("}\n");
    s
}

/// The ack stream of one session (cloned into persist tasks; the response ends when every
/// clone is gone).
#[derive(Debug, Clone)]
pub(super) struct Acks {
    pub(super) tx: mpsc::UnboundedSender<Bytes>,
    /// Whether BUFFERING, RECEIVED and PERSISTED are sent
    /// (`x-amzn-fragment-acknowledgment-required`).
    pub(super) fragment_acks: bool,
}

impl Acks {
    pub(super) fn send(&self, event: AckEvent, timecode: Option<u64>, number: Option<u64>) {
        let fragment_ack = matches!(
            event,
            AckEvent::Buffering | AckEvent::Received | AckEvent::Persisted
        );
        if fragment_ack && !self.fragment_acks {
            return;
        }
        let m = metrics();
        m.putmedia_acks.inc(&[event.name()]);
        if let AckEvent::Error(e) = event {
            let id = e.id().to_string();
            m.putmedia_errors.inc(&[id.as_str(), e.code()]);
        }
        // A closed channel means the connection is gone; the driver notices on the body side.
        let _ = self
            .tx
            .send(Bytes::from(encode_ack(event, timecode, number)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_acks() {
        assert_eq!(
            encode_ack(AckEvent::Buffering, Some(1_795_320_641_601), Some(7)),
            "{\"EventType\":\"BUFFERING\",\"FragmentTimecode\":1795320641601,\
             \"FragmentNumber\":\"900000000000000000007\"}\n"
        );
        assert_eq!(
            encode_ack(AckEvent::Error(AckError::InvalidMkvData), Some(0), None),
            "{\"EventType\":\"ERROR\",\"FragmentTimecode\":0,\"ErrorId\":4006,\
             \"ErrorCode\":\"INVALID_MKV_DATA\"}\n"
        );
        assert_eq!(
            encode_ack(AckEvent::Idle, None, None),
            "{\"EventType\":\"IDLE\"}\n"
        );
        let longest = encode_ack(
            AckEvent::Error(AckError::FragmentTimecodeLesserThanPrevious),
            Some(u64::MAX),
            Some(u64::MAX),
        );
        assert!(longest.len() < 1024);
    }
}
