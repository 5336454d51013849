//! Delivery policies of HTTP/S subscriptions, as Amazon SNS defines them: how often and how far
//! apart a failed delivery is retried, how fast deliveries may go, and the content type of the
//! request.
//!
//! A topic's `DeliveryPolicy` attribute gives defaults for all its HTTP/S subscriptions:
//!
//! ```json
//! {"http": {"defaultHealthyRetryPolicy": {..}, "disableSubscriptionOverrides": false,
//!           "defaultThrottlePolicy": {"maxReceivesPerSecond": 10},
//!           "defaultRequestPolicy": {"headerContentType": "application/json"}}}
//! ```
//!
//! and a subscription's `DeliveryPolicy` attribute its own:
//!
//! ```json
//! {"healthyRetryPolicy": {..}, "throttlePolicy": {"maxReceivesPerSecond": 10},
//!  "requestPolicy": {"headerContentType": "application/json"}}
//! ```
//!
//! where a retry policy is `{"minDelayTarget": 1, "maxDelayTarget": 60, "numRetries": 50,
//! "numNoDelayRetries": 3, "numMinDelayRetries": 2, "numMaxDelayRetries": 35,
//! "backoffFunction": "exponential"}`. What applies to a subscription ([`effective`]) is, part by
//! part, the subscription's policy (unless the topic sets `disableSubscriptionOverrides`), else
//! the topic's, else SNS's default: 3 retries 20 seconds apart ([`RetryPolicy::HTTP_DEFAULT`]),
//! no throttling, `text/plain; charset=UTF-8`.
//!
//! # The schedule
//!
//! The `numRetries` retries after the first attempt fall in four phases, in this order:
//!
//! 1. immediate: `numNoDelayRetries` retries with no delay;
//! 2. pre-backoff: `numMinDelayRetries` retries `minDelayTarget` seconds apart;
//! 3. backoff: the remaining `numRetries - numNoDelayRetries - numMinDelayRetries -
//!    numMaxDelayRetries` retries, their delays growing from `minDelayTarget` towards
//!    `maxDelayTarget` by the backoff function;
//! 4. post-backoff: `numMaxDelayRetries` retries `maxDelayTarget` seconds apart.
//!
//! AWS does not publish the backoff functions. With `k` backoff retries, the `j`-th (from 0)
//! waits `min + ⌊(max − min) · f(j)⌋` whole seconds, where `f` goes from 0 up to (not reaching)
//! 1, so that the delays rise from `minDelayTarget` to just below `maxDelayTarget`, which the
//! post-backoff phase then holds:
//!
//! | function | `f(j)` | shape (10 retries, 5 to 260 s, AWS's graph) |
//! | --- | --- | --- |
//! | linear | `j / k` | a straight line |
//! | arithmetic | `j (j + 1) / (k (k + 1))` | increments that grow by a constant |
//! | geometric | `((max/min)^(j/k) − 1) / (max/min − 1)` | delays that grow by a constant ratio |
//! | exponential | `(2^j − 1) / (2^k − 1)` | increments that double; flat, then steep |
//!
//! The linear case is fitted to what SNS accepts: with `minDelayTarget` 1, `numRetries` 5,
//! `numNoDelayRetries` 1, SNS takes `maxDelayTarget` 2399 and refuses 2400 as over an hour
//! (Crown Commercial Service's `digitalmarketplace-aws` #450), which these delays give exactly
//! (1 + 600 + 1200 + 1799 = 3600 s; 1 + 600 + 1200 + 1800 = 3601 s). AWS's guide says the last
//! backoff retry waits `maxDelayTarget`; the figures SNS accepts say it waits a step less. SNS
//! jitters the delays it uses; [`RetryPolicy::delay_before_retry`] gives the schedule without
//! jitter.
//!
//! # Validation
//!
//! As SNS states it ("Creating an HTTP/S delivery policy", the `DeliveryPolicy` JSON formats):
//! `minDelayTarget` from 1 to `maxDelayTarget`, `maxDelayTarget` at most 3600, `numRetries` from
//! 0 to 100, the phase counts 0 or more and together at most `numRetries`, the whole schedule at
//! most 3600 seconds ("The total policy retry time for an HTTP/S endpoint cannot be greater than
//! 3,600 seconds"), `backoffFunction` one of the four (in any case, as the CDK sends them in
//! capitals), `maxReceivesPerSecond` 1 or more, `headerContentType` one of the content types
//! SNS lists (with parameters such as `; charset=UTF-8`). A field given in a retry policy
//! defaults as SNS's documents say (20, 20, 3, 0, 0, 0, linear). Unknown fields are refused,
//! except those SNS itself writes into effective policies (`sicklyRetryPolicy`,
//! `guaranteed`), which are accepted and ignored; `null` stands for an absent part. The
//! messages follow the one SNS is seen to return (`healthyRetryPolicy.minDelayTarget must be
//! greater than or equal to 1`): each [`DeliveryPolicyError`] is the part of the
//! `InvalidParameter` message after `DeliveryPolicy: `.
//!
//! # Sources
//!
//! AWS's SNS developer guide: "Amazon SNS message delivery retries" (phases, the 3600-second
//! limit, the table of fields and constraints, the backoff graph), "SetSubscriptionAttributes
//! delivery policy JSON format", "SetTopicAttributes delivery policy JSON format", "Step 4:
//! Optional - Set the delivery policy" (the default: three retries, 20 seconds apart); the AWS
//! CDK's `HealthyRetryPolicy` and `RequestPolicy` documentation (constraints, the default
//! content type); awsdocs/amazon-sns-developer-guide#5 (SNS's error message).

use std::time::Duration;

use serde_json::{Map, Value};

/// The longest `maxDelayTarget`, and the longest whole schedule, in seconds.
pub const MAX_DELAY_S: u32 = 3600;

/// The most retries a policy may ask for.
pub const MAX_RETRIES: u32 = 100;

/// The content type of HTTP/S notifications when no policy sets one.
pub const DEFAULT_CONTENT_TYPE: &str = "text/plain; charset=UTF-8";

/// The media types SNS accepts in `headerContentType` (parameters may follow them).
pub const CONTENT_TYPES: &[&str] = &[
    "application/atom+xml",
    "application/json",
    "application/octet-stream",
    "application/soap+xml",
    "application/x-www-form-urlencoded",
    "application/xhtml+xml",
    "application/xml",
    "text/css",
    "text/csv",
    "text/html",
    "text/plain",
    "text/xml",
];

/// How the delays of the backoff phase grow from `minDelayTarget` to `maxDelayTarget`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backoff {
    /// By equal steps (SNS's default).
    #[default]
    Linear,
    /// By steps that grow by a constant amount.
    Arithmetic,
    /// By a constant ratio.
    Geometric,
    /// By steps that double.
    Exponential,
}

impl Backoff {
    /// The name in a delivery policy: `linear`, `arithmetic`, `geometric`, `exponential`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backoff::Linear => "linear",
            Backoff::Arithmetic => "arithmetic",
            Backoff::Geometric => "geometric",
            Backoff::Exponential => "exponential",
        }
    }

    /// Parses a name, in any case.
    pub fn parse(s: &str) -> Option<Backoff> {
        [
            Backoff::Linear,
            Backoff::Arithmetic,
            Backoff::Geometric,
            Backoff::Exponential,
        ]
        .into_iter()
        .find(|b| b.as_str().eq_ignore_ascii_case(s))
    }
}

/// A retry policy (`healthyRetryPolicy`, `defaultHealthyRetryPolicy`): the four phases of
/// retries after a failed first attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// `minDelayTarget`: the delay of the pre-backoff phase and of the first backoff retry,
    /// in seconds.
    pub min_delay_s: u32,
    /// `maxDelayTarget`: the delay the backoff phase rises towards and the post-backoff phase
    /// holds, in seconds.
    pub max_delay_s: u32,
    /// `numRetries`: all retries, of all phases.
    pub num_retries: u32,
    /// `numNoDelayRetries`: the retries made at once.
    pub num_no_delay_retries: u32,
    /// `numMinDelayRetries`: the pre-backoff retries, `minDelayTarget` apart.
    pub num_min_delay_retries: u32,
    /// `numMaxDelayRetries`: the post-backoff retries, `maxDelayTarget` apart.
    pub num_max_delay_retries: u32,
    /// `backoffFunction`.
    pub backoff: Backoff,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::HTTP_DEFAULT
    }
}

impl RetryPolicy {
    /// AWS's default for HTTP/S: 3 retries, 20 s apart (minDelayTarget 20, maxDelayTarget 20,
    /// numRetries 3, others 0, linear).
    pub const HTTP_DEFAULT: RetryPolicy = RetryPolicy {
        min_delay_s: 20,
        max_delay_s: 20,
        num_retries: 3,
        num_no_delay_retries: 0,
        num_min_delay_retries: 0,
        num_max_delay_retries: 0,
        backoff: Backoff::Linear,
    };

    /// SNS's fixed policy for SMTP (`email`, `email-json`) endpoints, which no delivery policy
    /// changes: 2 retries 10 s apart, 10 backing off from 10 s to 600 s, then 38 at 600 s
    /// (AWS's "Amazon SNS message delivery retries": 50 attempts over about 6 hours).
    pub const SMTP: RetryPolicy = RetryPolicy {
        min_delay_s: 10,
        max_delay_s: 600,
        num_retries: 50,
        num_no_delay_retries: 0,
        num_min_delay_retries: 2,
        num_max_delay_retries: 38,
        backoff: Backoff::Exponential,
    };

    /// The retries of the backoff phase: those the other three phases leave of `numRetries`.
    pub fn backoff_retries(&self) -> u32 {
        self.num_retries
            .saturating_sub(self.num_no_delay_retries)
            .saturating_sub(self.num_min_delay_retries)
            .saturating_sub(self.num_max_delay_retries)
    }

    /// The delay before retry `n` (1-based: the delay between the first attempt and the first
    /// retry is `delay_before_retry(1)`); `None` when retry `n` is beyond num_retries.
    pub fn delay_before_retry(&self, n: u32) -> Option<Duration> {
        if n == 0 || n > self.num_retries {
            return None;
        }
        let n = u64::from(n);
        let no_delay = u64::from(self.num_no_delay_retries);
        let pre = no_delay + u64::from(self.num_min_delay_retries);
        let backoff = u64::from(self.backoff_retries());
        let secs = if n <= no_delay {
            0
        } else if n <= pre {
            u64::from(self.min_delay_s)
        } else if n <= pre + backoff {
            self.backoff_delay(n - pre - 1, backoff)
        } else {
            u64::from(self.max_delay_s)
        };
        Some(Duration::from_secs(secs))
    }

    /// The delay of backoff retry `j` (from 0) of `k`, in seconds.
    fn backoff_delay(&self, j: u64, k: u64) -> u64 {
        let min = u64::from(self.min_delay_s);
        let max = u64::from(self.max_delay_s);
        if max <= min || k == 0 {
            return min;
        }
        let span = max - min;
        let step = match self.backoff {
            Backoff::Linear => {
                let s = u128::from(span) * u128::from(j) / u128::from(k);
                u64::try_from(s).unwrap_or(span)
            }
            Backoff::Arithmetic => {
                let num = u128::from(span) * u128::from(j) * (u128::from(j) + 1);
                let den = u128::from(k) * (u128::from(k) + 1);
                u64::try_from(num / den).unwrap_or(span)
            }
            Backoff::Geometric => {
                if min == 0 {
                    // No ratio from zero: grow linearly instead.
                    let s = u128::from(span) * u128::from(j) / u128::from(k);
                    u64::try_from(s).unwrap_or(span)
                } else {
                    let ratio = max as f64 / min as f64;
                    let f = (ratio.powf(j as f64 / k as f64) - 1.0) / (ratio - 1.0);
                    fraction_of(span, f)
                }
            }
            Backoff::Exponential => {
                let f = if k <= 1000 {
                    ((j as f64).exp2() - 1.0) / ((k as f64).exp2() - 1.0)
                } else {
                    (j as f64 - k as f64).exp2()
                };
                fraction_of(span, f)
            }
        };
        min + step.min(span)
    }

    /// Every retry's delay, in order (`numRetries` of them).
    pub fn delays(&self) -> impl Iterator<Item = Duration> + '_ {
        (1..=self.num_retries).map_while(|n| self.delay_before_retry(n))
    }

    /// The whole schedule: the delays of all retries added up.
    pub fn total_delay(&self) -> Duration {
        self.delays().fold(Duration::ZERO, Duration::saturating_add)
    }

    /// Checks the policy as SNS does; `path` names it in the messages
    /// (`healthyRetryPolicy`, `http.defaultHealthyRetryPolicy`).
    pub fn validate(&self, path: &str) -> Result<(), DeliveryPolicyError> {
        if self.min_delay_s < 1 {
            return Err(err(format!(
                "{path}.minDelayTarget must be greater than or equal to 1"
            )));
        }
        if self.max_delay_s > MAX_DELAY_S {
            return Err(err(format!(
                "{path}.maxDelayTarget must be less than or equal to {MAX_DELAY_S}"
            )));
        }
        if self.min_delay_s > self.max_delay_s {
            return Err(err(format!(
                "{path}.minDelayTarget must be less than or equal to {path}.maxDelayTarget"
            )));
        }
        if self.num_retries > MAX_RETRIES {
            return Err(err(format!(
                "{path}.numRetries must be less than or equal to {MAX_RETRIES}"
            )));
        }
        let phases = u64::from(self.num_no_delay_retries)
            + u64::from(self.num_min_delay_retries)
            + u64::from(self.num_max_delay_retries);
        if phases > u64::from(self.num_retries) {
            return Err(err(format!(
                "{path}.numRetries must be greater than or equal to the sum of \
                 numNoDelayRetries, numMinDelayRetries and numMaxDelayRetries"
            )));
        }
        if self.total_delay() > Duration::from_secs(u64::from(MAX_DELAY_S)) {
            return Err(err(format!(
                "{path}: the total retry time must not exceed {MAX_DELAY_S} seconds"
            )));
        }
        Ok(())
    }

    /// The policy as SNS writes it (in `EffectiveDeliveryPolicy`).
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "minDelayTarget": self.min_delay_s,
            "maxDelayTarget": self.max_delay_s,
            "numRetries": self.num_retries,
            "numNoDelayRetries": self.num_no_delay_retries,
            "numMinDelayRetries": self.num_min_delay_retries,
            "numMaxDelayRetries": self.num_max_delay_retries,
            "backoffFunction": self.backoff.as_str(),
        })
    }

    fn from_json(v: &Value, path: &str) -> Result<Option<Self>, DeliveryPolicyError> {
        let Some(map) = object_or_null(v, path)? else {
            return Ok(None);
        };
        known_fields(
            map,
            path,
            &[
                "minDelayTarget",
                "maxDelayTarget",
                "numRetries",
                "numNoDelayRetries",
                "numMinDelayRetries",
                "numMaxDelayRetries",
                "backoffFunction",
            ],
        )?;
        let d = RetryPolicy::HTTP_DEFAULT;
        let backoff = match map.get("backoffFunction") {
            None | Some(Value::Null) => d.backoff,
            Some(Value::String(s)) => Backoff::parse(s).ok_or_else(|| bad_backoff(path))?,
            Some(_) => return Err(bad_backoff(path)),
        };
        let policy = RetryPolicy {
            min_delay_s: count(map, path, "minDelayTarget", d.min_delay_s)?,
            max_delay_s: count(map, path, "maxDelayTarget", d.max_delay_s)?,
            num_retries: count(map, path, "numRetries", d.num_retries)?,
            num_no_delay_retries: count(map, path, "numNoDelayRetries", 0)?,
            num_min_delay_retries: count(map, path, "numMinDelayRetries", 0)?,
            num_max_delay_retries: count(map, path, "numMaxDelayRetries", 0)?,
            backoff,
        };
        policy.validate(path)?;
        Ok(Some(policy))
    }
}

/// `min + ⌊span · f⌋`'s step, for a fraction `f` in [0, 1].
fn fraction_of(span: u64, f: f64) -> u64 {
    if !f.is_finite() || f <= 0.0 {
        return 0;
    }
    let step = (span as f64 * f.min(1.0)).floor();
    if step >= span as f64 {
        span
    } else {
        step as u64
    }
}

/// Why a delivery policy was refused: the part of SNS's `InvalidParameter` message after
/// `DeliveryPolicy: ` (as in `healthyRetryPolicy.minDelayTarget must be greater than or equal
/// to 1`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DeliveryPolicyError(pub String);

fn err(msg: impl Into<String>) -> DeliveryPolicyError {
    DeliveryPolicyError(msg.into())
}

fn bad_backoff(path: &str) -> DeliveryPolicyError {
    err(format!(
        "{path}.backoffFunction must be one of linear, arithmetic, geometric, exponential"
    ))
}

/// A throttle policy (`throttlePolicy`, `defaultThrottlePolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ThrottlePolicy {
    /// `maxReceivesPerSecond`: the most deliveries per second to the subscription; `None`
    /// for no throttling.
    pub max_receives_per_second: Option<u32>,
}

impl ThrottlePolicy {
    fn from_json(v: &Value, path: &str) -> Result<Self, DeliveryPolicyError> {
        let Some(map) = object_or_null(v, path)? else {
            return Ok(ThrottlePolicy::default());
        };
        known_fields(map, path, &["maxReceivesPerSecond"])?;
        let max = match map.get("maxReceivesPerSecond") {
            None | Some(Value::Null) => None,
            Some(_) => {
                let n = count(map, path, "maxReceivesPerSecond", 0)?;
                if n < 1 {
                    return Err(err(format!(
                        "{path}.maxReceivesPerSecond must be greater than or equal to 1"
                    )));
                }
                Some(n)
            }
        };
        Ok(ThrottlePolicy {
            max_receives_per_second: max,
        })
    }
}

/// The `headerContentType` of a request policy (`requestPolicy`, `defaultRequestPolicy`).
fn content_type_from_json(v: &Value, path: &str) -> Result<Option<String>, DeliveryPolicyError> {
    let Some(map) = object_or_null(v, path)? else {
        return Ok(None);
    };
    known_fields(map, path, &["headerContentType"])?;
    match map.get("headerContentType") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if is_supported_content_type(s) => Ok(Some(s.clone())),
        Some(_) => Err(err(format!(
            "{path}.headerContentType must be one of {}",
            CONTENT_TYPES.join(", ")
        ))),
    }
}

/// Whether SNS takes this `headerContentType`: a listed media type, in any case, optionally
/// followed by parameters (`text/plain; charset=UTF-8`).
pub fn is_supported_content_type(s: &str) -> bool {
    let media = s.split(';').next().unwrap_or("").trim();
    CONTENT_TYPES.iter().any(|t| t.eq_ignore_ascii_case(media))
}

/// A topic's `DeliveryPolicy` attribute: `{"http": {"defaultHealthyRetryPolicy": {...}, "disableSubscriptionOverrides": bool, "defaultThrottlePolicy": {"maxReceivesPerSecond": n}, "defaultRequestPolicy": {"headerContentType": "..."}}}`
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicDeliveryPolicy {
    /// `defaultHealthyRetryPolicy`.
    pub retry: Option<RetryPolicy>,
    /// `disableSubscriptionOverrides`: subscriptions' own policies are ignored.
    pub disable_subscription_overrides: bool,
    /// `defaultThrottlePolicy`.
    pub throttle: ThrottlePolicy,
    /// `defaultRequestPolicy.headerContentType`.
    pub content_type: Option<String>,
}

/// A subscription's `DeliveryPolicy` attribute: `{"healthyRetryPolicy": {...}, "throttlePolicy": {"maxReceivesPerSecond": n}, "requestPolicy": {"headerContentType": "..."}}`
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubscriptionDeliveryPolicy {
    /// `healthyRetryPolicy`.
    pub retry: Option<RetryPolicy>,
    /// `throttlePolicy`.
    pub throttle: ThrottlePolicy,
    /// `requestPolicy.headerContentType`.
    pub content_type: Option<String>,
}

fn parse_root(json: &str) -> Result<Map<String, Value>, DeliveryPolicyError> {
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(err("the delivery policy must be a JSON object")),
        Err(e) => Err(err(format!("failed to parse JSON. {e}"))),
    }
}

fn object_or_null<'a>(
    v: &'a Value,
    path: &str,
) -> Result<Option<&'a Map<String, Value>>, DeliveryPolicyError> {
    match v {
        Value::Null => Ok(None),
        Value::Object(m) => Ok(Some(m)),
        _ => Err(err(format!("{path} must be a JSON object"))),
    }
}

fn known_fields(
    map: &Map<String, Value>,
    path: &str,
    known: &[&str],
) -> Result<(), DeliveryPolicyError> {
    match map.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) if path.is_empty() => Err(err(format!("unknown field {k}"))),
        Some(k) => Err(err(format!("{path}: unknown field {k}"))),
        None => Ok(()),
    }
}

/// A non-negative integer field, `default` when absent or null; values beyond `u32` saturate
/// (and fail the range checks that follow).
fn count(
    map: &Map<String, Value>,
    path: &str,
    name: &str,
    default: u32,
) -> Result<u32, DeliveryPolicyError> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => {
            if let Some(u) = n.as_u64() {
                Ok(u32::try_from(u).unwrap_or(u32::MAX))
            } else if n.as_i64().is_some() {
                Err(err(format!(
                    "{path}.{name} must be greater than or equal to 0"
                )))
            } else {
                Err(err(format!("{path}.{name} must be an integer")))
            }
        }
        Some(_) => Err(err(format!("{path}.{name} must be an integer"))),
    }
}

impl TopicDeliveryPolicy {
    /// Parses and validates a topic's `DeliveryPolicy` attribute.
    pub fn parse(json: &str) -> Result<Self, DeliveryPolicyError> {
        let root = parse_root(json)?;
        known_fields(&root, "", &["http"])?;
        let Some(http) = root.get("http") else {
            return Ok(TopicDeliveryPolicy::default());
        };
        let Some(http) = object_or_null(http, "http")? else {
            return Ok(TopicDeliveryPolicy::default());
        };
        known_fields(
            http,
            "http",
            &[
                "defaultHealthyRetryPolicy",
                "defaultSicklyRetryPolicy",
                "disableSubscriptionOverrides",
                "defaultThrottlePolicy",
                "defaultRequestPolicy",
            ],
        )?;
        let retry = match http.get("defaultHealthyRetryPolicy") {
            Some(v) => RetryPolicy::from_json(v, "http.defaultHealthyRetryPolicy")?,
            None => None,
        };
        let disable_subscription_overrides = match http.get("disableSubscriptionOverrides") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(err(
                    "http.disableSubscriptionOverrides must be true or false",
                ));
            }
        };
        let throttle = match http.get("defaultThrottlePolicy") {
            Some(v) => ThrottlePolicy::from_json(v, "http.defaultThrottlePolicy")?,
            None => ThrottlePolicy::default(),
        };
        let content_type = match http.get("defaultRequestPolicy") {
            Some(v) => content_type_from_json(v, "http.defaultRequestPolicy")?,
            None => None,
        };
        Ok(TopicDeliveryPolicy {
            retry,
            disable_subscription_overrides,
            throttle,
            content_type,
        })
    }
}

impl SubscriptionDeliveryPolicy {
    /// Parses and validates a subscription's `DeliveryPolicy` attribute.
    pub fn parse(json: &str) -> Result<Self, DeliveryPolicyError> {
        let root = parse_root(json)?;
        known_fields(
            &root,
            "",
            &[
                "healthyRetryPolicy",
                "sicklyRetryPolicy",
                "throttlePolicy",
                "requestPolicy",
                "guaranteed",
            ],
        )?;
        let retry = match root.get("healthyRetryPolicy") {
            Some(v) => RetryPolicy::from_json(v, "healthyRetryPolicy")?,
            None => None,
        };
        let throttle = match root.get("throttlePolicy") {
            Some(v) => ThrottlePolicy::from_json(v, "throttlePolicy")?,
            None => ThrottlePolicy::default(),
        };
        let content_type = match root.get("requestPolicy") {
            Some(v) => content_type_from_json(v, "requestPolicy")?,
            None => None,
        };
        Ok(SubscriptionDeliveryPolicy {
            retry,
            throttle,
            content_type,
        })
    }
}

/// What applies to one HTTP/S subscription: the subscription's policy unless the topic disables overrides, then the topic's default, then HTTP_DEFAULT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectivePolicy {
    /// The retry schedule.
    pub retry: RetryPolicy,
    /// The most deliveries per second; `None` for no throttling.
    pub max_receives_per_second: Option<u32>,
    /// The content type of requests, if a policy sets one ([`DEFAULT_CONTENT_TYPE`] if not).
    pub content_type: Option<String>,
}

impl Default for EffectivePolicy {
    fn default() -> Self {
        effective(None, None)
    }
}

impl EffectivePolicy {
    /// The content type to send: the policy's, or [`DEFAULT_CONTENT_TYPE`].
    pub fn content_type_or_default(&self) -> &str {
        self.content_type.as_deref().unwrap_or(DEFAULT_CONTENT_TYPE)
    }
}

/// The policy one HTTP/S subscription runs under, part by part (retry, throttle, content
/// type): the subscription's, unless the topic disables subscription overrides; else the
/// topic's default; else SNS's ([`RetryPolicy::HTTP_DEFAULT`], no throttling, no content type).
pub fn effective(
    topic: Option<&TopicDeliveryPolicy>,
    sub: Option<&SubscriptionDeliveryPolicy>,
) -> EffectivePolicy {
    let overrides = !topic.is_some_and(|t| t.disable_subscription_overrides);
    let sub = sub.filter(|_| overrides);
    EffectivePolicy {
        retry: sub
            .and_then(|s| s.retry)
            .or_else(|| topic.and_then(|t| t.retry))
            .unwrap_or(RetryPolicy::HTTP_DEFAULT),
        max_receives_per_second: sub
            .and_then(|s| s.throttle.max_receives_per_second)
            .or_else(|| topic.and_then(|t| t.throttle.max_receives_per_second)),
        content_type: sub
            .and_then(|s| s.content_type.clone())
            .or_else(|| topic.and_then(|t| t.content_type.clone())),
    }
}

#[cfg(test)]
mod tests;
