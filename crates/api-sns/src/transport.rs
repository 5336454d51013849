//! HTTP/HTTPS deliveries: the topics engine's [`Transport`], in SNS's wire terms.
//!
//! Each attempt is one `POST` to the subscription's endpoint, with SNS's headers
//! (`x-amz-sns-message-type`, `x-amz-sns-message-id`, `x-amz-sns-topic-arn`,
//! `x-amz-sns-subscription-arn`, `Content-Type: text/plain; charset=UTF-8` unless the delivery
//! policy names another) and SNS's signed JSON document as the body, or, with
//! `RawMessageDelivery`, the message alone (`x-amz-sns-rawdelivery: true`). Links in the
//! document (`SubscribeURL`, `UnsubscribeURL`, `SigningCertURL`) start with the URL the
//! subscriber reached the server at.
//!
//! An answer of 2xx delivers; 4xx is a refusal, not retried (SNS considers it the endpoint's
//! final word); 5xx, a failed connection or no answer within [`ATTEMPT_TIMEOUT`] (SNS's 15 s)
//! is a failure the engine retries. HTTPS endpoints are checked against the system's root
//! certificates. Connections are pooled per endpoint.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use vigil_api_common::ApiConfig;
use vigil_topics::deliver::BoxFuture;
use vigil_topics::{Delivery, DeliveryKind, Outcome, Protocol, Subscription, Transport};

use crate::signing::{LazySigner, Signer, string_to_sign};

/// How long an attempt waits for the endpoint's answer (SNS's timeout).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

/// The user agent SNS's deliveries carry.
pub const USER_AGENT: &str = "Amazon Simple Notification Service Agent";

type Connector = HttpConnector<crate::reach::GuardedResolver>;
type HttpsClient = Client<hyper_rustls::HttpsConnector<Connector>, Full<Bytes>>;

/// Signatures made lately, by (message id, protocol, signature version): a notification's
/// string to sign does not name the subscription, so a message to N endpoints is signed once,
/// not N times (an RSA-2048 signature costs about a millisecond).
/// Each entry is made once: the deliveries of one message to its N subscriptions run at the
/// same moment, and the first signs while the others wait for its result.
type SignatureCache =
    std::collections::HashMap<(String, Protocol, u8), Arc<std::sync::OnceLock<String>>>;

/// How many signatures the cache keeps before it starts again.
const SIGNATURE_CACHE: usize = 4096;

/// Deliveries over HTTP and HTTPS.
pub struct HttpTransport {
    region: String,
    account: String,
    signer: Arc<LazySigner>,
    client: HttpsClient,
    signatures: std::sync::Mutex<SignatureCache>,
    /// `email` and `email-json` deliveries, when a relay is configured.
    mailer: Option<Arc<crate::mail::Mailer>>,
    /// HTTP/S attempts in flight, every subscription together (each holds a connection).
    attempts: Arc<tokio::sync::Semaphore>,
}

/// The most HTTP/S attempts in flight at once, every subscription together: a bound on the
/// connections (and file descriptors) deliveries hold. An attempt waits for its turn within
/// its time limit.
pub const MAX_ATTEMPTS_IN_FLIGHT: usize = 512;

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl HttpTransport {
    /// A transport signing with `signer`, naming ARNs in `cfg`'s region and account.
    pub fn new(
        cfg: &ApiConfig,
        signer: Arc<LazySigner>,
        mailer: Option<Arc<crate::mail::Mailer>>,
    ) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            let _ = roots.add(cert);
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth());
        let mut http = HttpConnector::new_with_resolver(crate::reach::GuardedResolver::default());
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let connector = match tls {
            Ok(tls) => hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls)
                .https_or_http()
                .enable_http1()
                .wrap_connector(http),
            Err(e) => {
                tracing::error!("TLS for SNS deliveries: {e}");
                hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(
                        rustls::ClientConfig::builder()
                            .with_root_certificates(rustls::RootCertStore::empty())
                            .with_no_client_auth(),
                    )
                    .https_or_http()
                    .enable_http1()
                    .wrap_connector(HttpConnector::new_with_resolver(
                        crate::reach::GuardedResolver::default(),
                    ))
            }
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(32)
            .build(connector);
        Self {
            region: cfg.region.clone(),
            account: cfg.account_id.clone(),
            signer,
            client,
            signatures: std::sync::Mutex::default(),
            mailer,
            attempts: Arc::new(tokio::sync::Semaphore::new(MAX_ATTEMPTS_IN_FLIGHT)),
        }
    }

    /// The signature of notification `id` for `protocol`, made once.
    fn notification_signature(
        &self,
        signer: &Signer,
        key: (String, Protocol, u8),
        text: &str,
    ) -> String {
        let version = key.2;
        let once = {
            let mut cache = self.signatures.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= SIGNATURE_CACHE && !cache.contains_key(&key) {
                cache.clear();
            }
            cache.entry(key).or_default().clone()
        };
        once.get_or_init(|| signer.sign(version, text.as_bytes()))
            .clone()
    }

    /// A topic's ARN.
    pub fn topic_arn(&self, topic: &str) -> String {
        format!("arn:aws:sns:{}:{}:{topic}", self.region, self.account)
    }

    /// The document (or raw message) and headers of a delivery, signed by `signer`.
    pub fn render(&self, signer: &Signer, d: &Delivery) -> Rendered {
        render(self, signer, d)
    }
}

/// A delivery as it goes on the wire.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// `x-amz-sns-message-type`.
    pub message_type: &'static str,
    /// `x-amz-sns-message-id`.
    pub message_id: String,
    /// The body.
    pub body: String,
    /// Whether the body is the raw message.
    pub raw: bool,
}

/// A JSON object written in the order members are added (SNS's documents have a fixed
/// order, which some subscribers' parsers show).
struct Ordered(String);

impl Ordered {
    fn new() -> Self {
        Self("{".to_owned())
    }

    fn raw(&mut self, k: &str, json: &str) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        self.0.push_str(&serde_json::Value::from(k).to_string());
        self.0.push(':');
        self.0.push_str(json);
    }

    fn str(&mut self, k: &str, v: &str) {
        let json = serde_json::Value::from(v).to_string();
        self.raw(k, &json);
    }

    fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn signature_version(d: &Delivery) -> u8 {
    match d
        .topic
        .attributes
        .get("SignatureVersion")
        .map(String::as_str)
    {
        Some("2") => 2,
        _ => 1,
    }
}

fn render(t: &HttpTransport, signer: &Signer, d: &Delivery) -> Rendered {
    let sub: &Subscription = &d.subscription;
    let topic_arn = t.topic_arn(&d.topic.name);
    let sub_arn = format!("{topic_arn}:{}", sub.id);
    let base = sub.base_url.trim_end_matches('/');
    let cert_url = format!("{base}{}", signer.cert_path());
    let version = signature_version(d);
    match &d.kind {
        DeliveryKind::Notification(m) => {
            let message = m.body_for(sub.protocol);
            let raw = sub
                .attributes
                .get("RawMessageDelivery")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
            if raw {
                return Rendered {
                    message_type: "Notification",
                    message_id: m.id.clone(),
                    body: message.to_owned(),
                    raw: true,
                };
            }
            let ts = vigil_auth::time::format_iso8601_ms(m.timestamp_ms);
            let mut members: Vec<(&str, &str)> = vec![("Message", message), ("MessageId", &m.id)];
            if let Some(s) = &m.subject {
                members.push(("Subject", s));
            }
            members.extend([
                ("Timestamp", ts.as_str()),
                ("TopicArn", topic_arn.as_str()),
                ("Type", "Notification"),
            ]);
            let signature = t.notification_signature(
                signer,
                (m.id.clone(), sub.protocol, version),
                &string_to_sign(&members),
            );
            let unsubscribe = format!(
                "{base}/?Action=Unsubscribe&SubscriptionArn={}",
                urlencode(&sub_arn)
            );
            let mut o = Ordered::new();
            o.str("Type", "Notification");
            o.str("MessageId", &m.id);
            o.str("TopicArn", &topic_arn);
            if let Some(s) = &m.subject {
                o.str("Subject", s);
            }
            o.str("Message", message);
            o.str("Timestamp", &ts);
            o.str("SignatureVersion", &version.to_string());
            o.str("Signature", &signature);
            o.str("SigningCertURL", &cert_url);
            o.str("UnsubscribeURL", &unsubscribe);
            if !m.attributes.is_empty() {
                let mut attrs = Ordered::new();
                for (name, a) in &m.attributes {
                    let value = match (&a.string_value, &a.binary_value) {
                        (Some(s), _) => s.clone(),
                        (None, Some(b)) => {
                            use base64::Engine as _;
                            base64::engine::general_purpose::STANDARD.encode(b)
                        }
                        (None, None) => String::new(),
                    };
                    let mut one = Ordered::new();
                    one.str("Type", &a.data_type);
                    one.str("Value", &value);
                    attrs.raw(name, &one.finish());
                }
                o.raw("MessageAttributes", &attrs.finish());
            }
            Rendered {
                message_type: "Notification",
                message_id: m.id.clone(),
                body: o.finish(),
                raw: false,
            }
        }
        DeliveryKind::Confirmation | DeliveryKind::UnsubscribeConfirmation => {
            let confirmation = matches!(d.kind, DeliveryKind::Confirmation);
            let kind = if confirmation {
                "SubscriptionConfirmation"
            } else {
                "UnsubscribeConfirmation"
            };
            let token = sub.token.clone().unwrap_or_default();
            let message = if confirmation {
                format!(
                    "You have chosen to subscribe to the topic {topic_arn}.\nTo confirm the \
                     subscription, visit the SubscribeURL included in this message."
                )
            } else {
                format!(
                    "You have chosen to deactivate subscription {sub_arn}.\nTo cancel this \
                     operation and restore the subscription, visit the SubscribeURL included \
                     in this message."
                )
            };
            let id = vigil_topics::engine::new_uuid();
            let subscribe = format!(
                "{base}/?Action=ConfirmSubscription&TopicArn={}&Token={}",
                urlencode(&topic_arn),
                urlencode(&token)
            );
            let ts = vigil_auth::time::format_iso8601_ms(now_ms());
            let members = [
                ("Message", message.as_str()),
                ("MessageId", id.as_str()),
                ("SubscribeURL", subscribe.as_str()),
                ("Timestamp", ts.as_str()),
                ("Token", token.as_str()),
                ("TopicArn", topic_arn.as_str()),
                ("Type", kind),
            ];
            let signature = signer.sign(version, string_to_sign(&members).as_bytes());
            let mut o = Ordered::new();
            o.str("Type", kind);
            o.str("MessageId", &id);
            o.str("Token", &token);
            o.str("TopicArn", &topic_arn);
            o.str("Message", &message);
            o.str("SubscribeURL", &subscribe);
            o.str("Timestamp", &ts);
            o.str("SignatureVersion", &version.to_string());
            o.str("Signature", &signature);
            o.str("SigningCertURL", &cert_url);
            Rendered {
                message_type: kind,
                message_id: id,
                body: o.finish(),
                raw: false,
            }
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Transport for HttpTransport {
    fn deliver(&self, d: Delivery) -> BoxFuture<Outcome> {
        let signer = match self.signer.loaded() {
            Some(s) => s,
            // Loaded at start and by the first Subscribe, so only a race gets here: load it
            // off the runtime's workers, and let the retry find it.
            None => {
                let lazy = self.signer.clone();
                return Box::pin(async move {
                    match tokio::task::spawn_blocking(move || lazy.get()).await {
                        Ok(Err(e)) => Outcome::Failed(e.to_string()),
                        _ => Outcome::Failed("the signing key was not loaded yet".into()),
                    }
                });
            }
        };
        let r = self.render(&signer, &d);
        let topic_arn = self.topic_arn(&d.topic.name);
        let sub = d.subscription.clone();
        let content_type = content_type(&d);
        let client = self.client.clone();
        if sub.protocol.is_email() {
            let mailer = self.mailer.clone();
            return Box::pin(async move {
                let Some(mailer) = mailer else {
                    return Outcome::Failed("no SMTP relay is configured (--smtp-url)".into());
                };
                let doc: serde_json::Value =
                    serde_json::from_str(&r.body).unwrap_or(serde_json::Value::Null);
                mailer.send(&d, &doc, &topic_arn).await
            });
        }
        let attempts = self.attempts.clone();
        Box::pin(async move {
            let Ok(_turn) = attempts.acquire_owned().await else {
                return Outcome::Failed("the server is stopping".into());
            };
            // `https://user:password@host/...`: SNS sends the user information as HTTP
            // basic authentication, not in the URL.
            let (url, basic) = split_userinfo(&sub.endpoint);
            // A literal address is not resolved, so the resolver's check does not see it.
            let host = url
                .parse::<hyper::Uri>()
                .ok()
                .and_then(|u| u.host().map(str::to_owned));
            if let Some(ip) = host.as_deref().and_then(crate::reach::literal_host)
                && !crate::reach::allowed(ip)
            {
                return Outcome::Rejected(format!("deliveries may not go to {ip}"));
            }
            let mut req = hyper::Request::post(url.as_str())
                .header("content-type", content_type)
                .header("user-agent", USER_AGENT)
                .header("x-amz-sns-message-type", r.message_type)
                .header("x-amz-sns-message-id", r.message_id.as_str())
                .header("x-amz-sns-topic-arn", topic_arn.as_str());
            if r.message_type != "SubscriptionConfirmation" {
                req = req.header(
                    "x-amz-sns-subscription-arn",
                    format!("{topic_arn}:{}", sub.id),
                );
            }
            if r.raw {
                req = req.header("x-amz-sns-rawdelivery", "true");
            }
            if let Some(b) = basic {
                req = req.header("authorization", b);
            }
            let req = match req.body(Full::new(Bytes::from(r.body))) {
                Ok(r) => r,
                Err(e) => return Outcome::Rejected(format!("the endpoint's URL: {e}")),
            };
            let sent = tokio::time::timeout(ATTEMPT_TIMEOUT, async {
                let resp = client.request(req).await?;
                let status = resp.status();
                // Read (a bounded part of) the answer so that the connection can be reused.
                let _ = http_body_util::Limited::new(resp.into_body(), 64 << 10)
                    .collect()
                    .await;
                Ok::<_, hyper_util::client::legacy::Error>(status)
            })
            .await;
            match sent {
                Err(_) => Outcome::Failed(format!("no answer within {ATTEMPT_TIMEOUT:?}")),
                Ok(Err(e)) => Outcome::Failed(error_chain(&e)),
                Ok(Ok(s)) if s.is_success() => Outcome::Delivered,
                Ok(Ok(s)) if s.is_client_error() => Outcome::Rejected(format!("HTTP {s}")),
                Ok(Ok(s)) => Outcome::Failed(format!("HTTP {s}")),
            }
        })
    }
}

/// The endpoint without its user information, and that information as an `Authorization:
/// Basic` value.
fn split_userinfo(endpoint: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = endpoint.split_once("://") else {
        return (endpoint.to_owned(), None);
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return (endpoint.to_owned(), None);
    };
    let decoded: Vec<u8> =
        form_urlencoded::parse(format!("u={}", userinfo.replace('+', "%2B")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned().into_bytes())
            .unwrap_or_default();
    use base64::Engine as _;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(decoded)
    );
    (format!("{scheme}://{host}{tail}"), Some(basic))
}

fn content_type(d: &Delivery) -> String {
    let topic = d
        .topic
        .attributes
        .get("DeliveryPolicy")
        .and_then(|p| vigil_topics::retry::TopicDeliveryPolicy::parse(p).ok());
    let sub = d
        .subscription
        .attributes
        .get("DeliveryPolicy")
        .and_then(|p| vigil_topics::retry::SubscriptionDeliveryPolicy::parse(p).ok());
    vigil_topics::retry::effective(topic.as_ref(), sub.as_ref())
        .content_type
        .unwrap_or_else(|| "text/plain; charset=UTF-8".to_owned())
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::split_userinfo;

    #[test]
    fn user_information_becomes_basic_authentication() {
        assert_eq!(
            split_userinfo("https://alice:s%40cret@example.com:8443/hook?x=1"),
            (
                "https://example.com:8443/hook?x=1".to_owned(),
                // base64("alice:s@cret")
                Some("Basic YWxpY2U6c0BjcmV0".to_owned())
            )
        );
        assert_eq!(
            split_userinfo("http://127.0.0.1:9/a@b"),
            ("http://127.0.0.1:9/a@b".to_owned(), None)
        );
    }
}
