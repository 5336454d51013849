//! Unknown-face alerts from stream processors to SNS topics: the glue between the analysis
//! engine (which decides a track is a stranger) and the topics engine (which delivers), so that
//! neither knows the other, and neither service crate imports the other.
//!
//! Each alert is one message to the processor's `NotificationChannel.SNSTopicArn` topic:
//! - subject `Unknown face on CAMERA`;
//! - body, JSON: `{"Type": "FaceTrackStarted", "Decision": "UNKNOWN", "Camera", "StreamArn",
//!   "StreamProcessorName", "SessionId", "TrackId", "StartTimestamp" (epoch seconds),
//!   "FragmentNumber"}`;
//! - message attributes `kind` (`FaceTrackStarted`), `camera` (the video stream's name) and
//!   `decision` (`UNKNOWN`), all `String`, for subscription filter policies.
//!
//! A topic of another region or account than the server's, or one that does not exist, gets
//! nothing: logged as a warning. Publishing runs in the background; the event itself is
//! already durable in the processor's events (`ListFaceEvents`), so a crash between the two
//! loses the alert, not the event.

use std::collections::BTreeMap;

use vigil_analysis::events::FaceEvent;
use vigil_topics::{MessageAttribute, NewMessage, Topics};

/// Alerts through the server's topics.
#[derive(Debug)]
pub struct TopicAlerts {
    /// The topics.
    pub topics: Topics,
    /// The server's region and account: a topic ARN must name them.
    pub region: String,
    /// ...
    pub account: String,
    /// Where to publish from.
    pub runtime: tokio::runtime::Handle,
}

fn string(v: &str) -> MessageAttribute {
    MessageAttribute {
        data_type: "String".into(),
        string_value: Some(v.to_owned()),
        binary_value: None,
    }
}

impl TopicAlerts {
    /// The topic a `arn:aws:sns:REGION:ACCOUNT:NAME` names on this server.
    fn topic_name<'a>(&self, arn: &'a str) -> Option<&'a str> {
        let rest = arn.strip_prefix("arn:aws:sns:")?;
        let (region, rest) = rest.split_once(':')?;
        let (account, name) = rest.split_once(':')?;
        (region == self.region && account == self.account && !name.contains(':')).then_some(name)
    }

    /// The alert's message.
    pub fn message(event: &FaceEvent) -> NewMessage {
        let body = serde_json::json!({
            "Type": "FaceTrackStarted",
            "Decision": "UNKNOWN",
            "Camera": event.stream,
            "StreamArn": event.stream_arn,
            "StreamProcessorName": event.processor,
            "SessionId": event.session,
            "TrackId": event.track,
            "StartTimestamp": event.start_ms as f64 / 1000.0,
            "FragmentNumber": vigil_api_common::wire::fragment_number(event.fragment_number),
        });
        let mut attributes = BTreeMap::new();
        attributes.insert("kind".to_owned(), string("FaceTrackStarted"));
        attributes.insert("camera".to_owned(), string(&event.stream));
        attributes.insert("decision".to_owned(), string("UNKNOWN"));
        NewMessage {
            subject: Some(
                format!("Unknown face on {}", event.stream)
                    .chars()
                    .take(100)
                    .collect(),
            ),
            body: body.to_string(),
            per_protocol: BTreeMap::new(),
            attributes,
        }
    }
}

impl vigil_analysis::Alerts for TopicAlerts {
    fn unknown_face(&self, topic_arn: &str, event: &FaceEvent) {
        let Some(name) = self.topic_name(topic_arn).map(str::to_owned) else {
            tracing::warn!(
                processor = event.processor,
                topic = topic_arn,
                "an unknown-face alert for a topic this server does not hold"
            );
            return;
        };
        let topics = self.topics.clone();
        let message = Self::message(event);
        let processor = event.processor.clone();
        self.runtime.spawn(async move {
            match topics.publish(&name, vec![message]).await {
                Ok(ids) => tracing::info!(
                    processor,
                    topic = name,
                    message = ids.first().map(String::as_str).unwrap_or_default(),
                    "unknown-face alert published"
                ),
                Err(e) => tracing::warn!(processor, topic = name, "an unknown-face alert: {e}"),
            }
        });
    }
}
