#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;
use crate::model::MessageAttribute;
use proptest::prelude::*;

fn attr(data_type: &str, value: &str) -> MessageAttribute {
    MessageAttribute {
        data_type: data_type.to_owned(),
        string_value: Some(value.to_owned()),
        binary_value: None,
    }
}

fn attrs(list: &[(&str, &str, &str)]) -> Attributes {
    list.iter()
        .map(|(name, t, v)| ((*name).to_owned(), attr(t, v)))
        .collect()
}

fn policy(json: &str, scope: Scope) -> FilterPolicy {
    FilterPolicy::parse(json, scope).unwrap_or_else(|e| panic!("{json}: {e}"))
}

fn attr_policy(json: &str) -> FilterPolicy {
    policy(json, Scope::MessageAttributes)
}

fn body_policy(json: &str) -> FilterPolicy {
    policy(json, Scope::MessageBody)
}

fn error(json: &str, scope: Scope) -> String {
    match FilterPolicy::parse(json, scope) {
        Ok(_) => panic!("{json} parsed"),
        Err(e) => e.0,
    }
}

fn attr_error(json: &str) -> String {
    error(json, Scope::MessageAttributes)
}

/// The example message of AWS's "Amazon SNS subscription filter policies" page.
fn example_attributes() -> Attributes {
    attrs(&[
        (
            "customer_interests",
            "String.Array",
            r#"["soccer", "rugby", "hockey"]"#,
        ),
        ("store", "String", "example_corp"),
        ("event", "String", "order_placed"),
        ("price_usd", "Number", "210.75"),
    ])
}

const EXAMPLE_BODY: &str = r#"{
        "customer_interests": ["soccer", "rugby", "hockey"],
        "store": "example_corp",
        "event": "order_placed",
        "price_usd": 210.75
    }"#;

const ACCEPTING: &str = r#"{
        "store": ["example_corp"],
        "event": [{"anything-but": "order_cancelled"}],
        "customer_interests": ["rugby", "football", "baseball"],
        "price_usd": [{"numeric": [">=", 100]}]
    }"#;

const REJECTING: &str = r#"{
        "store": ["example_corp"],
        "event": ["order_cancelled"],
        "encrypted": [false],
        "customer_interests": ["basketball", "baseball"]
    }"#;

#[test]
fn aws_example_policies_on_attributes() {
    let a = example_attributes();
    assert!(attr_policy(ACCEPTING).matches_attributes(&a));
    assert!(!attr_policy(REJECTING).matches_attributes(&a));
    // The same message with a cancelled order or a lower price is refused.
    let mut cancelled = a.clone();
    cancelled.insert("event".into(), attr("String", "order_cancelled"));
    assert!(!attr_policy(ACCEPTING).matches_attributes(&cancelled));
    let mut cheap = a.clone();
    cheap.insert("price_usd".into(), attr("Number", "99.5"));
    assert!(!attr_policy(ACCEPTING).matches_attributes(&cheap));
}

#[test]
fn aws_example_policies_on_body() {
    assert!(body_policy(ACCEPTING).matches_body(EXAMPLE_BODY));
    assert!(!body_policy(REJECTING).matches_body(EXAMPLE_BODY));
    let cancelled = EXAMPLE_BODY.replace("order_placed", "order_cancelled");
    assert!(!body_policy(ACCEPTING).matches_body(&cancelled));
}

#[test]
fn matches_dispatches_on_scope() {
    let a = example_attributes();
    assert!(attr_policy(ACCEPTING).matches(&a, "not json"));
    assert!(body_policy(ACCEPTING).matches(&Attributes::new(), EXAMPLE_BODY));
    assert!(!body_policy(ACCEPTING).matches(&a, "not json"));
    assert_eq!(attr_policy(ACCEPTING).scope(), Scope::MessageAttributes);
}

#[test]
fn string_exact_matching() {
    let p = attr_policy(r#"{"customer_interests": ["rugby", "tennis"]}"#);
    let m = |t: &str, v: &str| p.matches_attributes(&attrs(&[("customer_interests", t, v)]));
    assert!(m("String", "rugby"));
    assert!(m("String", "tennis"));
    assert!(m("String.Array", r#"["rugby", "tennis"]"#));
    assert!(!m("String", "baseball"));
    assert!(!m("String", "Rugby"));
    assert!(!m("String.Array", r#"["baseball"]"#));
    let b = body_policy(r#"{"customer_interests": ["rugby", "tennis"]}"#);
    assert!(b.matches_body(r#"{"customer_interests": "rugby"}"#));
    assert!(b.matches_body(r#"{"customer_interests": "tennis"}"#));
    assert!(!b.matches_body(r#"{"customer_interests": "baseball"}"#));
}

#[test]
fn string_anything_but_matching() {
    let p = attr_policy(r#"{"customer_interests": [{"anything-but": ["rugby", "tennis"]}]}"#);
    let m = |t: &str, v: &str| p.matches_attributes(&attrs(&[("customer_interests", t, v)]));
    assert!(m("String", "baseball"));
    assert!(m("String", "football"));
    assert!(!m("String", "rugby"));
    // String.Array: only when none of the elements is listed.
    assert!(m("String.Array", r#"["baseball", "football"]"#));
    assert!(!m("String.Array", r#"["rugby", "baseball"]"#));
    // A number is not "anything but" a string.
    assert!(!m("Number", "5"));
    // Absent: anything-but needs a value, unless combined with exists: false.
    assert!(!p.matches_attributes(&attrs(&[("other", "String", "x")])));
    let with_absent =
        attr_policy(r#"{"customer_interests": [{"anything-but": ["rugby"]}, {"exists": false}]}"#);
    assert!(with_absent.matches_attributes(&attrs(&[("other", "String", "x")])));
    // Message bodies: an array matches if one of its elements is not listed.
    let b = body_policy(r#"{"customer_interests": [{"anything-but": ["rugby", "tennis"]}]}"#);
    assert!(b.matches_body(r#"{"customer_interests": "baseball"}"#));
    assert!(b.matches_body(r#"{"customer_interests": ["rugby", "baseball"]}"#));
    assert!(!b.matches_body(r#"{"customer_interests": "rugby"}"#));
    // A single value.
    let single = attr_policy(r#"{"event": [{"anything-but": "order_cancelled"}]}"#);
    assert!(single.matches_attributes(&attrs(&[("event", "String", "order_placed")])));
    assert!(!single.matches_attributes(&attrs(&[("event", "String", "order_cancelled")])));
}

#[test]
fn prefix_and_anything_but_prefix() {
    let p = attr_policy(r#"{"customer_interests": [{"prefix": "bas"}]}"#);
    let m = |v: &str| p.matches_attributes(&attrs(&[("customer_interests", "String", v)]));
    assert!(m("baseball"));
    assert!(m("basketball"));
    assert!(!m("rugby"));
    let n = attr_policy(r#"{"customer_interests": [{"anything-but": {"prefix": "bas"}}]}"#);
    let m = |v: &str| n.matches_attributes(&attrs(&[("customer_interests", "String", v)]));
    assert!(m("rugby"));
    assert!(!m("baseball"));
    assert!(!m("basketball"));
    let b = body_policy(r#"{"customer_interests": [{"prefix": "bas"}]}"#);
    assert!(b.matches_body(r#"{"customer_interests": "baseball"}"#));
    assert!(!b.matches_body(r#"{"customer_interests": "rugby"}"#));
}

#[test]
fn suffix_matching() {
    let p = attr_policy(r#"{"customer_interests": [{"suffix": "ball"}]}"#);
    let m = |v: &str| p.matches_attributes(&attrs(&[("customer_interests", "String", v)]));
    assert!(m("baseball"));
    assert!(m("basketball"));
    assert!(!m("rugby"));
    let b = body_policy(r#"{"customer_interests": [{"suffix": "ball"}]}"#);
    assert!(b.matches_body(r#"{"customer_interests": "baseball"}"#));
    assert!(!b.matches_body(r#"{"customer_interests": "rugby"}"#));
}

#[test]
fn equals_ignore_case_matching() {
    let p = attr_policy(r#"{"customer_interests": [{"equals-ignore-case": "tennis"}]}"#);
    let m = |v: &str| p.matches_attributes(&attrs(&[("customer_interests", "String", v)]));
    assert!(m("TENNIS"));
    assert!(m("Tennis"));
    assert!(m("tennis"));
    assert!(!m("rugby"));
    assert!(!m("tennis "));
    let b = body_policy(r#"{"customer_interests": [{"equals-ignore-case": "TeNnIs"}]}"#);
    assert!(b.matches_body(r#"{"customer_interests": "tennis"}"#));
    assert!(!b.matches_body(r#"{"customer_interests": "rugby"}"#));
}

#[test]
fn ip_address_matching() {
    let p = attr_policy(r#"{"source_ip": [{"cidr": "10.0.0.0/24"}]}"#);
    let m = |v: &str| p.matches_attributes(&attrs(&[("source_ip", "String", v)]));
    assert!(m("10.0.0.0"));
    assert!(m("10.0.0.255"));
    assert!(!m("10.1.1.0"));
    assert!(!m("not an address"));
    assert!(!m("::1"));
    let v6 = body_policy(r#"{"source_ip": [{"cidr": "2001:db8::/32"}]}"#);
    assert!(v6.matches_body(r#"{"source_ip": "2001:db8:1::5"}"#));
    assert!(!v6.matches_body(r#"{"source_ip": "2001:db9::5"}"#));
    assert!(!v6.matches_body(r#"{"source_ip": "10.0.0.1"}"#));
    // Exact addresses compare as addresses.
    let exact = body_policy(r#"{"source_ip": ["::1"]}"#);
    assert!(exact.matches_body(r#"{"source_ip": "0:0:0:0:0:0:0:1"}"#));
}

#[test]
fn numeric_exact_matching() {
    let p = attr_policy(r#"{"price_usd": [{"numeric": ["=", 301.5]}]}"#);
    let m = |t: &str, v: &str| p.matches_attributes(&attrs(&[("price_usd", t, v)]));
    assert!(m("Number", "301.5"));
    assert!(m("Number", "3.015e2"));
    assert!(m("Number.float", "301.500001"));
    assert!(!m("Number", "301.51"));
    // A String attribute never matches a numeric condition.
    assert!(!m("String", "301.5"));
    let b = body_policy(r#"{"price_usd": [{"numeric": ["=", 301.5]}]}"#);
    assert!(b.matches_body(r#"{"price_usd": 301.5}"#));
    assert!(b.matches_body(r#"{"price_usd": 3.015e2}"#));
    assert!(!b.matches_body(r#"{"price_usd": "301.5"}"#));
    // A plain number in the array.
    let plain = attr_policy(r#"{"price": [100]}"#);
    assert!(plain.matches_attributes(&attrs(&[("price", "Number", "100.0")])));
    assert!(plain.matches_attributes(&attrs(&[("price", "Number", "1e2")])));
    assert!(!plain.matches_attributes(&attrs(&[("price", "String", "100")])));
    assert!(!plain.matches_attributes(&attrs(&[("price", "Number", "100.1")])));
    // A Number attribute never matches a string condition.
    let string = attr_policy(r#"{"price": ["100"]}"#);
    assert!(!string.matches_attributes(&attrs(&[("price", "Number", "100")])));
    assert!(string.matches_attributes(&attrs(&[("price", "String", "100")])));
}

#[test]
fn numeric_anything_but_matching() {
    let p = attr_policy(r#"{"price": [{"anything-but": [100, 500]}]}"#);
    let m = |t: &str, v: &str| p.matches_attributes(&attrs(&[("price", t, v)]));
    assert!(m("Number", "101"));
    assert!(m("Number", "100.1"));
    assert!(!m("Number", "100"));
    assert!(!m("Number", "500.0"));
    assert!(!m("String", "101"));
    let b = body_policy(r#"{"price": [{"anything-but": [100, 500]}]}"#);
    assert!(b.matches_body(r#"{"price": 101}"#));
    assert!(b.matches_body(r#"{"price": [100, 50]}"#));
    assert!(!b.matches_body(r#"{"price": 100}"#));
}

#[test]
fn numeric_range_matching() {
    let negative = attr_policy(r#"{"price_usd": [{"numeric": ["<", 0]}]}"#);
    assert!(negative.matches_attributes(&attrs(&[("price_usd", "Number", "-0.5")])));
    assert!(!negative.matches_attributes(&attrs(&[("price_usd", "Number", "0")])));
    let p = attr_policy(r#"{"price_usd": [{"numeric": [">", 0, "<=", 150]}]}"#);
    let m = |v: &str| p.matches_attributes(&attrs(&[("price_usd", "Number", v)]));
    assert!(m("150"));
    assert!(m("0.00001"));
    assert!(!m("0"));
    assert!(!m("150.00001"));
    assert!(!m("210.75"));
    // Values beyond ±10⁹ compare with nothing.
    let big = attr_policy(r#"{"n": [{"numeric": [">=", 0]}]}"#);
    assert!(!big.matches_attributes(&attrs(&[("n", "Number", "5e12")])));
    assert!(big.matches_attributes(&attrs(&[("n", "Number", "1e9")])));
    let b = body_policy(r#"{"price_usd": [{"numeric": [">", 0, "<=", 150]}]}"#);
    assert!(b.matches_body(r#"{"price_usd": 100}"#));
    assert!(!b.matches_body(r#"{"price_usd": 210.75}"#));
    assert!(b.matches_body(r#"{"price_usd": [210.75, 5]}"#));
}

#[test]
fn key_matching() {
    let p = attr_policy(r#"{"store": [{"exists": true}]}"#);
    assert!(p.matches_attributes(&attrs(&[
        ("store", "String", "fans"),
        (
            "customer_interests",
            "String.Array",
            r#"["baseball", "basketball"]"#
        ),
    ])));
    assert!(!p.matches_attributes(&attrs(&[(
        "customer_interests",
        "String.Array",
        r#"["baseball", "basketball"]"#
    )])));
    let b = body_policy(r#"{"store": [{"exists": true}]}"#);
    assert!(
        b.matches_body(r#"{"store": "fans", "customer_interests": ["baseball", "basketball"]}"#)
    );
    assert!(!b.matches_body(r#"{"customer_interests": ["baseball", "basketball"]}"#));
    // The key must have a non-null, non-empty value.
    assert!(!b.matches_body(r#"{"store": null}"#));
    assert!(!b.matches_body(r#"{"store": []}"#));
    // exists works on leaves only.
    assert!(!b.matches_body(r#"{"store": {"name": "fans"}}"#));

    let absent = attr_policy(r#"{"store": [{"exists": false}]}"#);
    assert!(!absent.matches_attributes(&attrs(&[("store", "String", "fans")])));
    assert!(absent.matches_attributes(&attrs(&[(
        "customer_interests",
        "String.Array",
        r#"["baseball"]"#
    )])));
    // "exists": false only matches if at least one attribute is present.
    assert!(!absent.matches_attributes(&Attributes::new()));
    let b = body_policy(r#"{"store": [{"exists": false}]}"#);
    assert!(!b.matches_body(r#"{"store": "fans", "customer_interests": ["baseball"]}"#));
    assert!(b.matches_body(r#"{"customer_interests": ["baseball"]}"#));
    assert!(!b.matches_body("{}"));
}

#[test]
fn binary_attributes_are_ignored() {
    let p = attr_policy(r#"{"blob": [{"exists": true}]}"#);
    let mut a = Attributes::new();
    a.insert(
        "blob".into(),
        MessageAttribute {
            data_type: "Binary".into(),
            string_value: None,
            binary_value: Some(bytes::Bytes::from_static(b"\x01\x02")),
        },
    );
    assert!(!p.matches_attributes(&a));
    let q = attr_policy(r#"{"blob": ["AQI="]}"#);
    assert!(!q.matches_attributes(&a));
    // A message with only Binary attributes has none that "exists": false can rely on.
    let absent = attr_policy(r#"{"store": [{"exists": false}]}"#);
    assert!(!absent.matches_attributes(&a));
}

#[test]
fn and_or_logic() {
    let and =
        attr_policy(r#"{"customer_interests": ["rugby"], "price_usd": [{"numeric": [">", 100]}]}"#);
    assert!(and.matches_attributes(&attrs(&[
        ("customer_interests", "String", "rugby"),
        ("price_usd", "Number", "101"),
    ])));
    assert!(!and.matches_attributes(&attrs(&[
        ("customer_interests", "String", "rugby"),
        ("price_usd", "Number", "100"),
    ])));
    assert!(!and.matches_attributes(&attrs(&[("customer_interests", "String", "rugby")])));

    let or = attr_policy(r#"{"customer_interests": ["rugby", "football", "baseball"]}"#);
    for v in ["rugby", "football", "baseball"] {
        assert!(or.matches_attributes(&attrs(&[("customer_interests", "String", v)])));
    }
    assert!(!or.matches_attributes(&attrs(&[("customer_interests", "String", "tennis")])));

    // The OR operator, AWS's example.
    let p = attr_policy(
        r#"{"source": ["aws.cloudwatch"], "$or": [{"metricName": ["CPUUtilization"]}, {"namespace": ["AWS/EC2"]}]}"#,
    );
    assert!(p.matches_attributes(&attrs(&[
        ("source", "String", "aws.cloudwatch"),
        ("metricName", "String", "CPUUtilization"),
    ])));
    assert!(p.matches_attributes(&attrs(&[
        ("source", "String", "aws.cloudwatch"),
        ("namespace", "String", "AWS/EC2"),
    ])));
    assert!(!p.matches_attributes(&attrs(&[
        ("source", "String", "aws.cloudwatch"),
        ("metricName", "String", "ReadLatency"),
    ])));
    assert!(!p.matches_attributes(&attrs(&[("metricName", "String", "CPUUtilization")])));
}

#[test]
fn or_operator_on_nested_body() {
    // LocalStack's AWS-validated case: 7 of these 12 messages pass.
    let p = body_policy(
        r#"{
                "$or": [
                    {"metricName": ["CPUUtilization", "ReadLatency"]},
                    {"namespace": ["AWS/EC2", "AWS/ES"]}
                ],
                "detail": {
                    "scope": ["Service"],
                    "$or": [
                        {"source": ["aws.cloudwatch"]},
                        {"type": ["CloudWatch Alarm State Change"]}
                    ]
                }
            }"#,
    );
    let failing = [
        r#"{"metricName": "CPUUtilization", "detail": {"scope": "aws.cloudwatch", "type": "CloudWatch Alarm State Change"}}"#,
        r#"{"metricName": "CPUUtilization", "detail": {"scope": "Service", "type": "CPUUtilization"}}"#,
        r#"{"metricName": "CPUUtilization", "detail": {"type": "CloudWatch Alarm State Change"}}"#,
        r#"{"metricName": "CPUUtilization", "detail": {"scope": "Service"}}"#,
        r#"{"metricName": "CPUUtilization", "scope": "Service"}"#,
    ];
    let passing = [
        r#"{"metricName": "CPUUtilization", "detail": {"scope": "Service", "source": "aws.cloudwatch"}}"#,
        r#"{"metricName": "ReadLatency", "detail": {"scope": "Service", "source": "aws.cloudwatch"}}"#,
        r#"{"namespace": "AWS/EC2", "detail": {"scope": "Service", "source": "aws.cloudwatch"}}"#,
        r#"{"namespace": "AWS/ES", "detail": {"scope": "Service", "source": "aws.cloudwatch"}}"#,
        r#"{"metricName": "CPUUtilization", "detail": {"scope": "Service", "type": "CloudWatch Alarm State Change"}}"#,
        r#"{"metricName": "AWS/EC2", "namespace": "AWS/ES", "detail": {"scope": "Service", "type": "CloudWatch Alarm State Change"}}"#,
        r#"{"namespace": "AWS/EC2", "detail": {"scope": "Service", "type": "CloudWatch Alarm State Change"}}"#,
    ];
    for m in failing {
        assert!(!p.matches_body(m), "{m}");
    }
    for m in passing {
        assert!(p.matches_body(m), "{m}");
    }
}

#[test]
fn nested_body_keys() {
    let p = body_policy(
        r#"{"object": {"key": [{"prefix": "auto-"}, "hardcodedvalue"], "nested_key": [{"exists": false}]}, "test": [{"exists": false}]}"#,
    );
    assert!(p.matches_body(r#"{"object": {"key": "auto-test"}}"#));
    assert!(p.matches_body(r#"{"object": {"key": "hardcodedvalue"}}"#));
    assert!(!p.matches_body(r#"{"object": {"key": "test-auto"}}"#));
    assert!(!p.matches_body(r#"{"object": {"key": "auto-test"}, "test": "just-exists"}"#));
    assert!(!p.matches_body(r#"{"object": {"key": "auto-test", "nested_key": "just-exists"}}"#));
    assert!(!p.matches_body(r#"{"object": {"test": "auto-test"}}"#));
    assert!(!p.matches_body(r#"{"test": "auto-test"}"#));
    assert!(!p.matches_body("Regular string message"));
    assert!(!p.matches_body(r#""Regular string message""#));
    assert!(!p.matches_body("[1, 2]"));
}

#[test]
fn dotted_keys_match_nesting() {
    let p = body_policy(r#"{"object.nested": ["string.value"]}"#);
    assert!(p.matches_body(r#"{"object": {"nested": "string.value"}}"#));
    assert!(p.matches_body(r#"{"object.nested": "string.value"}"#));
    assert!(!p.matches_body(r#"{"object": {"nested": "test-auto"}}"#));
    let deep = body_policy(r#"{"object.nested.test": ["string.value"]}"#);
    for m in [
        r#"{"object": {"nested": {"test": "string.value"}}}"#,
        r#"{"object.nested.test": "string.value"}"#,
        r#"{"object.nested": {"test": "string.value"}}"#,
        r#"{"object": {"nested.test": "string.value"}}"#,
    ] {
        assert!(deep.matches_body(m), "{m}");
    }
    assert!(!deep.matches_body(r#"{"object": {"nested": {"test": "string.notvalue"}}}"#));
}

#[test]
fn body_arrays_and_arrays_of_objects() {
    let q1 = body_policy(r#"{"headers": {"route-to": ["queue1"]}}"#);
    assert!(!q1.matches_body(r#"{"headers": {"route-to": ["queue3"]}}"#));
    assert!(q1.matches_body(r#"{"headers": {"route-to": ["queue1"]}}"#));
    assert!(q1.matches_body(r#"{"headers": {"route-to": ["queue1", "queue2"]}}"#));
    assert!(!q1.matches_body(r#"{"headers": {"route-to": ["queue2"]}}"#));

    // The S3 event example of AWS's payload-filtering announcement.
    let p = body_policy(
        r#"{"Records": {"s3": {"object": {"key": [{"prefix": "auto-"}]}}, "eventName": [{"prefix": "ObjectCreated:"}]}}"#,
    );
    let created = r#"{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"object": {"key": "auto-insurance-2314.xml", "size": 17}}}]}"#;
    assert!(p.matches_body(created));
    assert!(!p.matches_body(&created.replace("ObjectCreated:Put", "ObjectRemoved:Delete")));
    assert!(!p.matches_body(&created.replace("auto-insurance", "home-insurance")));
    let multiple = r#"{"Records": [
            {"eventName": "ObjectCreated:Put", "s3": {"object": [[{"key": "auto-insurance-2314.xml"}]]}},
            {"eventName": "ObjectRemoved:Delete", "s3": {"object": {"key": "home-insurance-2314.xml"}}}
        ]}"#;
    assert!(p.matches_body(multiple));
}

#[test]
fn null_true_false_values() {
    let p = body_policy(r#"{"a": [null], "b": [true], "c": [false]}"#);
    assert!(p.matches_body(r#"{"a": null, "b": true, "c": false}"#));
    assert!(!p.matches_body(r#"{"a": "null", "b": true, "c": false}"#));
    assert!(!p.matches_body(r#"{"b": true, "c": false}"#));
    // Attributes have no nulls or booleans, except in String.Array elements.
    let a = attr_policy(r#"{"attr1": [null, {"anything-but": "whatever"}]}"#);
    assert!(!a.matches_attributes(&attrs(&[("other", "String", "x")])));
    assert!(!a.matches_attributes(&Attributes::new()));
    assert!(a.matches_attributes(&attrs(&[("attr1", "String", "x")])));
    assert!(a.matches_attributes(&attrs(&[("attr1", "String.Array", "[null]")])));
    let encrypted = attr_policy(r#"{"encrypted": [false]}"#);
    assert!(!encrypted.matches_attributes(&attrs(&[("encrypted", "String", "false")])));
    assert!(encrypted.matches_attributes(&attrs(&[("encrypted", "String.Array", "[false]")])));
}

#[test]
fn string_array_attributes() {
    let p = attr_policy(r#"{"store": ["value1"]}"#);
    let m = |v: &str| p.matches_attributes(&attrs(&[("store", "String.Array", v)]));
    assert!(m(r#"["value1", "value2"]"#));
    assert!(!m(r#"["value2", "value3"]"#));
    assert!(!m("not json"));
    assert!(!m(r#""value1""#));
    let n = attr_policy(r#"{"sizes": [{"numeric": [">", 10]}]}"#);
    assert!(n.matches_attributes(&attrs(&[("sizes", "String.Array", "[1, 20]")])));
    assert!(!n.matches_attributes(&attrs(&[("sizes", "String.Array", r#"["20"]"#)])));
}

#[test]
fn attribute_types_with_labels() {
    let p = attr_policy(r#"{"a": ["x"], "n": [{"numeric": ["=", 1]}]}"#);
    assert!(p.matches_attributes(&attrs(&[
        ("a", "String.label", "x"),
        ("n", "Number.int", "1"),
    ])));
    assert!(!p.matches_attributes(&attrs(&[("a", "String", "x"), ("n", "Number", "one")])));
}

mod validation;

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("$or".to_owned()),
        Just("prefix".to_owned()),
        Just("suffix".to_owned()),
        Just("anything-but".to_owned()),
        Just("numeric".to_owned()),
        Just("exists".to_owned()),
        Just("cidr".to_owned()),
        Just("equals-ignore-case".to_owned()),
        "[a-c]{1,2}(\\.[a-c])?",
    ]
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-2e9f64..2e9).prop_map(Value::from),
        prop_oneof![
            Just("=".to_owned()),
            Just("<".to_owned()),
            Just(">=".to_owned()),
            Just("<=".to_owned()),
            Just("10.0.0.0/8".to_owned()),
            Just("::1".to_owned()),
            "[a-c0-9./:]{0,6}",
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(arb_key(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_attributes() -> impl Strategy<Value = Attributes> {
    let data_type = prop_oneof![
        Just("String"),
        Just("Number"),
        Just("String.Array"),
        Just("Binary"),
        Just("Number.x"),
        Just("Other"),
    ];
    let value = prop_oneof![
        any::<String>(),
        arb_json().prop_map(|v| v.to_string()),
        "-?[0-9]{1,12}(\\.[0-9]{0,6})?(e[0-9]{1,3})?",
    ];
    prop::collection::btree_map(
        "[a-c]{1,2}(\\.[a-c])?",
        (data_type, prop::option::of(value)).prop_map(|(t, v)| MessageAttribute {
            data_type: t.to_owned(),
            string_value: v,
            binary_value: None,
        }),
        0..5,
    )
}

proptest! {
    #[test]
    fn parse_never_panics_on_strings(s in any::<String>()) {
        let _ = FilterPolicy::parse(&s, Scope::MessageAttributes);
        let _ = FilterPolicy::parse(&s, Scope::MessageBody);
    }

    #[test]
    fn parse_and_match_never_panic(
        policy in arb_json(),
        attributes in arb_attributes(),
        body in prop_oneof![arb_json().prop_map(|v| v.to_string()), any::<String>()],
    ) {
        let json = policy.to_string();
        for scope in [Scope::MessageAttributes, Scope::MessageBody] {
            if let Ok(p) = FilterPolicy::parse(&json, scope) {
                let _ = p.matches_attributes(&attributes);
                let _ = p.matches_body(&body);
                let _ = p.matches(&attributes, &body);
            }
        }
    }

    #[test]
    fn valid_policies_match_without_panicking(
        key in "[a-c]{1,2}",
        ops in prop::collection::vec(prop_oneof![
            Just(r#""x""#.to_owned()),
            Just("5".to_owned()),
            Just(r#"{"prefix":"a"}"#.to_owned()),
            Just(r#"{"suffix":"b"}"#.to_owned()),
            Just(r#"{"equals-ignore-case":"AbC"}"#.to_owned()),
            Just(r#"{"anything-but":["a","b"]}"#.to_owned()),
            Just(r#"{"anything-but":[1,2]}"#.to_owned()),
            Just(r#"{"anything-but":{"prefix":"a"}}"#.to_owned()),
            Just(r#"{"numeric":[">",0,"<=",100]}"#.to_owned()),
            Just(r#"{"exists":true}"#.to_owned()),
            Just(r#"{"exists":false}"#.to_owned()),
            Just(r#"{"cidr":"10.0.0.0/8"}"#.to_owned()),
            Just("null".to_owned()),
        ], 1..6),
        attributes in arb_attributes(),
        body in arb_json().prop_map(|v| v.to_string()),
    ) {
        let json = format!(r#"{{"{key}":[{}]}}"#, ops.join(","));
        let p = FilterPolicy::parse(&json, Scope::MessageAttributes).unwrap();
        let _ = p.matches_attributes(&attributes);
        let q = FilterPolicy::parse(&json, Scope::MessageBody).unwrap();
        let _ = q.matches_body(&body);
    }
}
