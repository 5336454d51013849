#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;
use proptest::prelude::*;

fn secs(list: &[u64]) -> Vec<Duration> {
    list.iter().map(|s| Duration::from_secs(*s)).collect()
}

fn schedule(p: &RetryPolicy) -> Vec<u64> {
    p.delays().map(|d| d.as_secs()).collect()
}

fn backoff_only(min: u32, max: u32, n: u32, backoff: Backoff) -> RetryPolicy {
    RetryPolicy {
        min_delay_s: min,
        max_delay_s: max,
        num_retries: n,
        num_no_delay_retries: 0,
        num_min_delay_retries: 0,
        num_max_delay_retries: 0,
        backoff,
    }
}

fn sub_error(json: &str) -> String {
    SubscriptionDeliveryPolicy::parse(json).unwrap_err().0
}

#[test]
fn http_default() {
    let p = RetryPolicy::HTTP_DEFAULT;
    assert_eq!(p.delays().collect::<Vec<_>>(), secs(&[20, 20, 20]));
    assert_eq!(p.delay_before_retry(0), None);
    assert_eq!(p.delay_before_retry(1), Some(Duration::from_secs(20)));
    assert_eq!(p.delay_before_retry(4), None);
    assert_eq!(p.total_delay(), Duration::from_secs(60));
    p.validate("healthyRetryPolicy").unwrap();
    let e = effective(None, None);
    assert_eq!(e.retry, RetryPolicy::HTTP_DEFAULT);
    assert_eq!(e.max_receives_per_second, None);
    assert_eq!(e.content_type_or_default(), "text/plain; charset=UTF-8");
}

#[test]
fn aws_example_policy_phases() {
    // "Creating an HTTP/S delivery policy": 3 at once, 2 one second apart, 10 with
    // exponential backoff from 1 to 60 seconds, 35 sixty seconds apart.
    let p = SubscriptionDeliveryPolicy::parse(
        r#"{"healthyRetryPolicy": {"minDelayTarget": 1, "maxDelayTarget": 60, "numRetries": 50,
                "numNoDelayRetries": 3, "numMinDelayRetries": 2, "numMaxDelayRetries": 35,
                "backoffFunction": "exponential"}, "throttlePolicy": {"maxReceivesPerSecond": 10}}"#,
    )
    .unwrap();
    let r = p.retry.unwrap();
    assert_eq!(p.throttle.max_receives_per_second, Some(10));
    let s = schedule(&r);
    assert_eq!(s.len(), 50);
    assert_eq!(&s[..3], &[0, 0, 0]);
    assert_eq!(&s[3..5], &[1, 1]);
    assert_eq!(&s[5..15], &[1, 1, 1, 1, 1, 2, 4, 8, 15, 30]);
    assert!(s[15..].iter().all(|d| *d == 60));
    assert_eq!(r.backoff_retries(), 10);
    assert_eq!(r.total_delay(), Duration::from_secs(2 + 64 + 35 * 60));
    assert_eq!(r.delay_before_retry(51), None);
}

#[test]
fn backoff_functions_on_aws_graph() {
    // AWS's graph: 10 retries, from 5 to 260 seconds.
    let of = |b| schedule(&backoff_only(5, 260, 10, b));
    assert_eq!(
        of(Backoff::Linear),
        [5, 30, 56, 81, 107, 132, 158, 183, 209, 234]
    );
    assert_eq!(
        of(Backoff::Arithmetic),
        [5, 9, 18, 32, 51, 74, 102, 134, 171, 213]
    );
    assert_eq!(
        of(Backoff::Geometric),
        [5, 7, 11, 16, 24, 36, 53, 79, 117, 175]
    );
    assert_eq!(
        of(Backoff::Exponential),
        [5, 5, 5, 6, 8, 12, 20, 36, 68, 132]
    );
    // The linear function is above the others everywhere, the exponential below.
    for i in 0..10 {
        assert!(of(Backoff::Linear)[i] >= of(Backoff::Arithmetic)[i]);
        assert!(of(Backoff::Exponential)[i] <= of(Backoff::Geometric)[i]);
    }
}

#[test]
fn each_phase() {
    let p = RetryPolicy {
        min_delay_s: 10,
        max_delay_s: 100,
        num_retries: 9,
        num_no_delay_retries: 2,
        num_min_delay_retries: 2,
        num_max_delay_retries: 2,
        backoff: Backoff::Linear,
    };
    assert_eq!(schedule(&p), [0, 0, 10, 10, 10, 40, 70, 100, 100]);
    // Without a backoff phase.
    let p = RetryPolicy {
        num_retries: 6,
        ..p
    };
    assert_eq!(schedule(&p), [0, 0, 10, 10, 100, 100]);
    // No retries at all.
    let none = RetryPolicy {
        num_retries: 0,
        num_no_delay_retries: 0,
        num_min_delay_retries: 0,
        num_max_delay_retries: 0,
        ..p
    };
    assert_eq!(none.delay_before_retry(1), None);
    assert_eq!(none.total_delay(), Duration::ZERO);
}

#[test]
fn total_time_fits_what_sns_accepts() {
    // digitalmarketplace-aws #450: with these, 2399 passes and 2400 is over an hour.
    let p = |max: u32| {
        format!(
            r#"{{"http": {{"defaultHealthyRetryPolicy": {{"minDelayTarget": 1, "maxDelayTarget": {max},
                "numRetries": 5, "numMaxDelayRetries": 0, "numNoDelayRetries": 1, "numMinDelayRetries": 0,
                "backoffFunction": "linear"}}, "disableSubscriptionOverrides": true}}}}"#
        )
    };
    let ok = TopicDeliveryPolicy::parse(&p(2399)).unwrap();
    assert_eq!(ok.retry.unwrap().total_delay(), Duration::from_secs(3600));
    assert!(ok.disable_subscription_overrides);
    assert_eq!(
        TopicDeliveryPolicy::parse(&p(2400)).unwrap_err().0,
        "http.defaultHealthyRetryPolicy: the total retry time must not exceed 3600 seconds"
    );
}

#[test]
fn validation_errors() {
    let r = |fields: &str| sub_error(&format!(r#"{{"healthyRetryPolicy": {{{fields}}}}}"#));
    assert_eq!(
        r(r#""numRetries": 0, "minDelayTarget": 0, "maxDelayTarget": 0"#),
        "healthyRetryPolicy.minDelayTarget must be greater than or equal to 1"
    );
    assert_eq!(
        r(r#""minDelayTarget": 1, "maxDelayTarget": 3601, "numRetries": 0"#),
        "healthyRetryPolicy.maxDelayTarget must be less than or equal to 3600"
    );
    assert_eq!(
        r(r#""minDelayTarget": 30, "maxDelayTarget": 20"#),
        "healthyRetryPolicy.minDelayTarget must be less than or equal to healthyRetryPolicy.maxDelayTarget"
    );
    assert_eq!(
        r(r#""minDelayTarget": 1, "maxDelayTarget": 1, "numRetries": 101"#),
        "healthyRetryPolicy.numRetries must be less than or equal to 100"
    );
    assert_eq!(
        r(r#""numRetries": 3, "numNoDelayRetries": 2, "numMaxDelayRetries": 2"#),
        "healthyRetryPolicy.numRetries must be greater than or equal to the sum of numNoDelayRetries, numMinDelayRetries and numMaxDelayRetries"
    );
    assert_eq!(
        r(r#""numRetries": -1"#),
        "healthyRetryPolicy.numRetries must be greater than or equal to 0"
    );
    assert_eq!(
        r(r#""numRetries": 2.5"#),
        "healthyRetryPolicy.numRetries must be an integer"
    );
    assert_eq!(
        r(r#""numRetries": "3""#),
        "healthyRetryPolicy.numRetries must be an integer"
    );
    assert_eq!(
        r(r#""minDelayTarget": 99999999999"#),
        "healthyRetryPolicy.minDelayTarget must be less than or equal to healthyRetryPolicy.maxDelayTarget"
    );
    assert_eq!(
        r(r#""backoffFunction": "quadratic""#),
        "healthyRetryPolicy.backoffFunction must be one of linear, arithmetic, geometric, exponential"
    );
    assert_eq!(
        r(r#""numRetries": 100, "minDelayTarget": 60, "maxDelayTarget": 60"#),
        "healthyRetryPolicy: the total retry time must not exceed 3600 seconds"
    );
    assert_eq!(
        r(r#""delay": 1"#),
        "healthyRetryPolicy: unknown field delay"
    );
    assert_eq!(
        sub_error(r#"{"throttlePolicy": {"maxReceivesPerSecond": 0}}"#),
        "throttlePolicy.maxReceivesPerSecond must be greater than or equal to 1"
    );
    assert_eq!(
        sub_error(r#"{"requestPolicy": {"headerContentType": "image/png"}}"#),
        format!(
            "requestPolicy.headerContentType must be one of {}",
            CONTENT_TYPES.join(", ")
        )
    );
    assert_eq!(sub_error(r#"{"retry": {}}"#), "unknown field retry");
    assert_eq!(
        sub_error(r#"{"healthyRetryPolicy": 3}"#),
        "healthyRetryPolicy must be a JSON object"
    );
    assert_eq!(sub_error("[]"), "the delivery policy must be a JSON object");
    assert!(sub_error("{").starts_with("failed to parse JSON."));
    assert_eq!(
        TopicDeliveryPolicy::parse(r#"{"http": {"disableSubscriptionOverrides": "yes"}}"#)
            .unwrap_err()
            .0,
        "http.disableSubscriptionOverrides must be true or false"
    );
    assert_eq!(
        TopicDeliveryPolicy::parse(r#"{"sqs": {}}"#).unwrap_err().0,
        "unknown field sqs"
    );
    assert_eq!(
        TopicDeliveryPolicy::parse(
            r#"{"http": {"defaultHealthyRetryPolicy": {"minDelayTarget": 0}}}"#
        )
        .unwrap_err()
        .0,
        "http.defaultHealthyRetryPolicy.minDelayTarget must be greater than or equal to 1"
    );
}

#[test]
fn parses_what_sns_writes() {
    // The EffectiveDeliveryPolicy SNS returns for subscriptions and topics.
    let s = SubscriptionDeliveryPolicy::parse(
        r#"{"healthyRetryPolicy":{"minDelayTarget":20,"maxDelayTarget":20,"numRetries":3,"numMaxDelayRetries":0,"numNoDelayRetries":0,"numMinDelayRetries":0,"backoffFunction":"linear"},"sicklyRetryPolicy":null,"throttlePolicy":null,"guaranteed":false}"#,
    )
    .unwrap();
    assert_eq!(s.retry, Some(RetryPolicy::HTTP_DEFAULT));
    assert_eq!(s.throttle, ThrottlePolicy::default());
    let t = TopicDeliveryPolicy::parse(
        r#"{"http":{"defaultHealthyRetryPolicy":{"minDelayTarget":20,"maxDelayTarget":20,"numRetries":3,"numMaxDelayRetries":0,"numNoDelayRetries":0,"numMinDelayRetries":0,"backoffFunction":"linear"},"disableSubscriptionOverrides":false,"defaultRequestPolicy":{"headerContentType":"text/plain; charset=UTF-8"}}}"#,
    )
    .unwrap();
    assert_eq!(t.content_type.as_deref(), Some("text/plain; charset=UTF-8"));
    assert_eq!(
        TopicDeliveryPolicy::parse("{}").unwrap(),
        TopicDeliveryPolicy::default()
    );
    // The CDK sends the backoff function in capitals; missing fields default.
    let c = SubscriptionDeliveryPolicy::parse(
        r#"{"healthyRetryPolicy":{"minDelayTarget":5,"maxDelayTarget":10,"numRetries":6,"backoffFunction":"EXPONENTIAL"},"requestPolicy":{"headerContentType":"application/json"}}"#,
    )
    .unwrap();
    assert_eq!(c.retry.unwrap().backoff, Backoff::Exponential);
    assert_eq!(c.content_type.as_deref(), Some("application/json"));
    let only =
        SubscriptionDeliveryPolicy::parse(r#"{"healthyRetryPolicy":{"numRetries":5}}"#).unwrap();
    assert_eq!(schedule(&only.retry.unwrap()), [20, 20, 20, 20, 20]);
    // Round trip.
    let r = c.retry.unwrap();
    let again = SubscriptionDeliveryPolicy::parse(
        &serde_json::json!({"healthyRetryPolicy": r.to_json()}).to_string(),
    )
    .unwrap();
    assert_eq!(again.retry, Some(r));
    assert!(is_supported_content_type("Application/XML;charset=UTF-8"));
    assert!(!is_supported_content_type("image/png"));
}

#[test]
fn effective_precedence() {
    let topic = TopicDeliveryPolicy::parse(
        r#"{"http":{"defaultHealthyRetryPolicy":{"minDelayTarget":5,"maxDelayTarget":5,"numRetries":1},"defaultThrottlePolicy":{"maxReceivesPerSecond":7},"defaultRequestPolicy":{"headerContentType":"application/xml"}}}"#,
    )
    .unwrap();
    let sub = SubscriptionDeliveryPolicy::parse(
        r#"{"healthyRetryPolicy":{"minDelayTarget":1,"maxDelayTarget":1,"numRetries":2},"throttlePolicy":{"maxReceivesPerSecond":3}}"#,
    )
    .unwrap();
    // The subscription's, part by part, else the topic's.
    let e = effective(Some(&topic), Some(&sub));
    assert_eq!(e.retry.num_retries, 2);
    assert_eq!(e.max_receives_per_second, Some(3));
    assert_eq!(e.content_type.as_deref(), Some("application/xml"));
    // The topic's alone.
    let e = effective(Some(&topic), None);
    assert_eq!(e.retry.num_retries, 1);
    assert_eq!(e.max_receives_per_second, Some(7));
    // Overrides disabled: the subscription's are ignored.
    let locked = TopicDeliveryPolicy {
        disable_subscription_overrides: true,
        ..topic.clone()
    };
    let e = effective(Some(&locked), Some(&sub));
    assert_eq!(e.retry.num_retries, 1);
    assert_eq!(e.max_receives_per_second, Some(7));
    let bare = TopicDeliveryPolicy {
        disable_subscription_overrides: true,
        ..TopicDeliveryPolicy::default()
    };
    assert_eq!(
        effective(Some(&bare), Some(&sub)),
        EffectivePolicy::default()
    );
    // The subscription's alone.
    let e = effective(None, Some(&sub));
    assert_eq!(e.retry.num_retries, 2);
    assert_eq!(e.content_type, None);
}

#[test]
fn unvalidated_policies_do_not_panic() {
    let extreme = RetryPolicy {
        min_delay_s: u32::MAX,
        max_delay_s: 0,
        num_retries: u32::MAX,
        num_no_delay_retries: u32::MAX,
        num_min_delay_retries: u32::MAX,
        num_max_delay_retries: u32::MAX,
        backoff: Backoff::Exponential,
    };
    for n in [0, 1, 2, u32::MAX - 1, u32::MAX] {
        let _ = extreme.delay_before_retry(n);
    }
    for backoff in [
        Backoff::Linear,
        Backoff::Arithmetic,
        Backoff::Geometric,
        Backoff::Exponential,
    ] {
        let p = RetryPolicy {
            min_delay_s: 0,
            max_delay_s: u32::MAX,
            num_retries: u32::MAX,
            num_no_delay_retries: 0,
            num_min_delay_retries: 0,
            num_max_delay_retries: 0,
            backoff,
        };
        for n in [1, 2, 1000, u32::MAX / 2, u32::MAX] {
            let d = p.delay_before_retry(n).unwrap();
            assert!(d <= Duration::from_secs(u64::from(u32::MAX)));
        }
    }
    assert!(extreme.validate("p").is_err());
}

fn arb_policy() -> impl Strategy<Value = RetryPolicy> {
    (
        1u32..=3600,
        0u32..=3600,
        0u32..=100,
        0u32..=100,
        0u32..=100,
        0u32..=100,
        0usize..4,
    )
        .prop_map(|(min, extra, n, a, b, c, f)| {
            let max = min.saturating_add(extra).min(3600);
            let a = a.min(n);
            let b = b.min(n - a);
            let c = c.min(n - a - b);
            RetryPolicy {
                min_delay_s: min.min(max),
                max_delay_s: max,
                num_retries: n,
                num_no_delay_retries: a,
                num_min_delay_retries: b,
                num_max_delay_retries: c,
                backoff: [
                    Backoff::Linear,
                    Backoff::Arithmetic,
                    Backoff::Geometric,
                    Backoff::Exponential,
                ][f],
            }
        })
}

proptest! {
    #[test]
    fn schedule_shape(p in arb_policy()) {
        let s: Vec<Duration> = p.delays().collect();
        prop_assert_eq!(s.len(), p.num_retries as usize);
        let min = Duration::from_secs(u64::from(p.min_delay_s));
        let max = Duration::from_secs(u64::from(p.max_delay_s));
        let no_delay = p.num_no_delay_retries as usize;
        let pre = no_delay + p.num_min_delay_retries as usize;
        let backoff_end = pre + p.backoff_retries() as usize;
        for (i, d) in s.iter().enumerate() {
            if i < no_delay {
                prop_assert_eq!(*d, Duration::ZERO);
            } else {
                prop_assert!(min <= *d && *d <= max, "{:?} at {} of {:?}", d, i, p);
            }
        }
        // Monotone through the backoff phase, and from one phase to the next.
        for w in s.windows(2) {
            prop_assert!(w[0] <= w[1], "{:?}", s);
        }
        if backoff_end > pre {
            prop_assert_eq!(s[pre], min);
            prop_assert!(s[backoff_end - 1] <= max);
        }
        prop_assert_eq!(p.delay_before_retry(p.num_retries + 1), None);
        // Parsing what to_json writes gives the policy back, or the validation error.
        let json = serde_json::json!({"healthyRetryPolicy": p.to_json()}).to_string();
        match SubscriptionDeliveryPolicy::parse(&json) {
            Ok(back) => {
                prop_assert_eq!(back.retry, Some(p));
                prop_assert!(p.total_delay() <= Duration::from_secs(3600));
            }
            Err(e) => prop_assert!(e.0.contains("total retry time"), "{}", e),
        }
    }

    #[test]
    fn parse_never_panics(s in any::<String>()) {
        let _ = TopicDeliveryPolicy::parse(&s);
        let _ = SubscriptionDeliveryPolicy::parse(&s);
    }

    #[test]
    fn parse_never_panics_on_policies(
        fields in prop::collection::btree_map(
            prop_oneof![
                Just("minDelayTarget"), Just("maxDelayTarget"), Just("numRetries"),
                Just("numNoDelayRetries"), Just("numMinDelayRetries"),
                Just("numMaxDelayRetries"), Just("backoffFunction"), Just("other"),
            ],
            prop_oneof![
                any::<i64>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                any::<f64>().prop_map(Value::from),
                Just(Value::Null),
                Just(Value::from("EXPONENTIAL")),
                "[a-z]{0,8}".prop_map(Value::from),
            ],
            0..8,
        ),
        rate in prop_oneof![any::<i64>().prop_map(Value::from), Just(Value::Null), Just(Value::from("x"))],
        content_type in prop_oneof![Just(Value::from("text/plain")), "[a-z/;= ]{0,12}".prop_map(Value::from), Just(Value::Null)],
    ) {
        let retry: Map<String, Value> = fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let sub = serde_json::json!({
            "healthyRetryPolicy": retry,
            "throttlePolicy": {"maxReceivesPerSecond": rate},
            "requestPolicy": {"headerContentType": content_type},
        });
        if let Ok(p) = SubscriptionDeliveryPolicy::parse(&sub.to_string())
            && let Some(r) = p.retry
        {
            prop_assert!(r.validate("p").is_ok());
            prop_assert!(r.total_delay() <= Duration::from_secs(3600));
        }
        let topic = serde_json::json!({"http": {
            "defaultHealthyRetryPolicy": sub["healthyRetryPolicy"],
            "defaultThrottlePolicy": sub["throttlePolicy"],
            "defaultRequestPolicy": sub["requestPolicy"],
        }});
        let _ = TopicDeliveryPolicy::parse(&topic.to_string());
    }
}
