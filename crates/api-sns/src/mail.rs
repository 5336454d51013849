//! Deliveries to `email` and `email-json` endpoints: mail through the SMTP relay the operator
//! configures (`--smtp-url`, `--smtp-from`), as SNS sends them.
//!
//! - The confirmation is a mail with the `SubscribeURL` to follow (subject "AWS Notification -
//!   Subscription Confirmation").
//! - An `email` notification is the message as text (subject: the message's `Subject`, else
//!   "AWS Notification Message"), then the unsubscribe link; `email-json` sends SNS's JSON
//!   document (the HTTP body) as the text.
//! - The sender's name is the topic's `DisplayName` when it has one.
//! - An unsubscribe sends nothing by mail (SNS shows a page instead).
//!
//! A relay's permanent refusal (5xx) is [`Outcome::Rejected`], not retried; a transient one
//! (4xx), no connection or no answer is [`Outcome::Failed`], retried on SNS's fixed SMTP
//! schedule (`vigil_topics::retry::RetryPolicy::SMTP`).

use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use vigil_topics::{Delivery, DeliveryKind, Outcome};

/// Where mail goes out.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// The relay, as a URL: `smtp://host:25` (no TLS), `smtp://host:587?tls=required`
    /// (STARTTLS), `smtps://host:465` (TLS), with `user:password@` for authentication.
    pub url: String,
    /// The sender address (`vigil@example.org`).
    pub from: String,
}

/// Why the mail settings were refused.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The relay URL.
    #[error("--smtp-url: {0}")]
    Url(String),
    /// The sender.
    #[error("--smtp-from: {0}")]
    From(String),
}

/// The relay and the sender.
pub struct Mailer {
    relay: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// A mailer for `cfg`; checks the URL and the sender, connects to nothing yet.
    pub fn new(cfg: &SmtpConfig) -> Result<Self, MailError> {
        let relay = AsyncSmtpTransport::<Tokio1Executor>::from_url(&cfg.url)
            .map_err(|e| MailError::Url(e.to_string()))?
            .timeout(Some(std::time::Duration::from_secs(15)))
            .build();
        let from = cfg
            .from
            .parse::<Mailbox>()
            .map_err(|e| MailError::From(e.to_string()))?;
        Ok(Self { relay, from })
    }

    /// Sends one delivery; `json` is SNS's document of it (what `email-json` and the links
    /// come from), `topic_arn` its topic.
    pub async fn send(&self, d: &Delivery, doc: &serde_json::Value, topic_arn: &str) -> Outcome {
        let sub = &d.subscription;
        let to = match sub.endpoint.parse::<Mailbox>() {
            Ok(m) => m,
            Err(e) => return Outcome::Rejected(format!("the endpoint is not an address: {e}")),
        };
        let display = d
            .topic
            .attributes
            .get("DisplayName")
            .filter(|n| !n.is_empty())
            .cloned()
            .unwrap_or_else(|| "AWS Notifications".to_owned());
        let from = Mailbox::new(Some(display), self.from.email.clone());
        let field = |k: &str| doc.get(k).and_then(|v| v.as_str()).unwrap_or_default();
        let (subject, text) = match &d.kind {
            DeliveryKind::Confirmation => (
                "AWS Notification - Subscription Confirmation".to_owned(),
                format!(
                    "You have chosen to subscribe to the topic:\n{topic_arn}\n\nTo confirm this \
                     subscription, click or visit the link below (If this was in error no \
                     action is necessary):\n{}\n",
                    field("SubscribeURL")
                ),
            ),
            DeliveryKind::UnsubscribeConfirmation => return Outcome::Delivered,
            DeliveryKind::Notification(m) => {
                let subject = m
                    .subject
                    .clone()
                    .unwrap_or_else(|| "AWS Notification Message".to_owned());
                let text = if sub.protocol == vigil_topics::Protocol::EmailJson {
                    doc.to_string()
                } else {
                    format!(
                        "{}\n\n--\nIf you wish to stop receiving notifications from this topic, \
                         please click or visit the link below to unsubscribe:\n{}\n",
                        m.body_for(sub.protocol),
                        field("UnsubscribeURL")
                    )
                };
                (subject, text)
            }
        };
        let mail = Message::builder()
            .from(from)
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(text);
        let mail = match mail {
            Ok(m) => m,
            Err(e) => return Outcome::Rejected(format!("the mail: {e}")),
        };
        match self.relay.send(mail).await {
            Ok(_) => Outcome::Delivered,
            Err(e) if e.is_permanent() => Outcome::Rejected(format!("the relay refused it: {e}")),
            Err(e) => Outcome::Failed(format!("the relay: {e}")),
        }
    }
}
