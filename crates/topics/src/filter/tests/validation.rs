//! The refusals of [`FilterPolicy::parse`]: SNS's wording and limits.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;

#[test]
fn errors_with_aws_wording() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{"key":[["value"]]}"#,
            "Match value must be String, number, true, false, or null",
        ),
        (
            r#"{"key":[{"wrong-operator":true}]}"#,
            "Unrecognized match type wrong-operator",
        ),
        (
            r#"{"key":[{"suffix":"value","prefix":"value2"}]}"#,
            "Only one key allowed in match expression",
        ),
        (
            r#"{"key":[{"suffix":100}]}"#,
            "suffix match pattern must be a string",
        ),
        (
            r#"{"key":[{"suffix":null}]}"#,
            "suffix match pattern must be a string",
        ),
        (
            r#"{"key":[{"suffix":[]}]}"#,
            "suffix match pattern must be a string",
        ),
        (
            r#"{"key":[{"prefix":["a"]}]}"#,
            "prefix match pattern must be a string",
        ),
        (
            r#"{"key":[{"equals-ignore-case":1}]}"#,
            "equals-ignore-case match pattern must be a string",
        ),
        (
            r#"{"key":{"suffix":"value"}}"#,
            "Filter policy scope MessageAttributes does not support nested filter policy",
        ),
        (
            r#"{"key":"value"}"#,
            "\"key\" must be an object or an array",
        ),
        (
            r#"{"key":[{"numeric":[]}]}"#,
            "Invalid member in numeric match: ]",
        ),
        (
            r#"{"key":[{"numeric":["operator"]}]}"#,
            "Unrecognized numeric range operator: operator",
        ),
        (
            r#"{"key":[{"numeric":[1,"<="]}]}"#,
            "Invalid member in numeric match: 1",
        ),
        (
            r#"{"key":[{"numeric":["=","000"]}]}"#,
            "Value of equals must be numeric",
        ),
        (
            r#"{"key":[{"numeric":[">="]}]}"#,
            "Value of >= must be numeric",
        ),
        (
            r#"{"key":[{"numeric":["<",100,">",10]}]}"#,
            "Too many elements in numeric expression",
        ),
        (
            r#"{"key":[{"numeric":[">=",1,">",2]}]}"#,
            "Bad numeric range operator: >",
        ),
        (
            r#"{"key":[{"numeric":[">",3,"<",1]}]}"#,
            "Bottom must be less than top",
        ),
        (
            r#"{"key":[{"numeric":[">",20,"<="]}]}"#,
            "Value of <= must be numeric",
        ),
        (
            r#"{"key":[{"numeric":[">",20,30]}]}"#,
            "Bad value in numeric range: 30",
        ),
        (
            r#"{"key":[{"numeric":[">",20,"test"]}]}"#,
            "Bad numeric range operator: test",
        ),
        (
            r#"{"key":[{"numeric":[">","20","<","30"]}]}"#,
            "Value of > must be numeric",
        ),
        (
            r#"{"key":[{"numeric":[">",20,"<","30"]}]}"#,
            "Value of < must be numeric",
        ),
        (
            r#"{"key":[{"numeric":[">",20,"<",30,"<",50]}]}"#,
            "Too many terms in numeric range expression",
        ),
        (
            r#"{"key":[{"numeric":">"}]}"#,
            "Value of numeric must be an array.",
        ),
        (
            r#"{"key":[{"numeric":["<", 1e10]}]}"#,
            "Value must be between -1.0E9 and 1.0E9, inclusive",
        ),
        (
            r#"{"key":[{"exists":null}]}"#,
            "exists match pattern must be either true or false.",
        ),
        (
            r#"{"key":[{"exists":"no"}]}"#,
            "exists match pattern must be either true or false.",
        ),
        (
            r#"{"key":[{"anything-but":{"wrong-operator":null}}]}"#,
            "Unsupported anything-but pattern: wrong-operator",
        ),
        (
            r#"{"key":[{"anything-but":{"suffix":"test"}}]}"#,
            "Unsupported anything-but pattern: suffix",
        ),
        (
            r#"{"key":[{"anything-but":{"exists":false}}]}"#,
            "Unsupported anything-but pattern: exists",
        ),
        (
            r#"{"key":[{"anything-but":{"prefix":false}}]}"#,
            "prefix match pattern must be a string",
        ),
        (
            r#"{"key":[{"anything-but":{"prefix":""}}]}"#,
            "Null prefix not allowed",
        ),
        (
            r#"{"key":[{"anything-but":{}}]}"#,
            "Anything-But expression name not found",
        ),
        (
            r#"{"key":[{"anything-but":true}]}"#,
            "Value of anything-but must be an array or single string/number value.",
        ),
        (
            r#"{"key":[{"anything-but":[true]}]}"#,
            "Inside anything but list, start|null|boolean is not supported.",
        ),
        (
            r#"{"key":[{"anything-but":["a", 1]}]}"#,
            "Inside anything but list, either all values are number or string, mixed type is not supported",
        ),
        (
            r#"{"key":[{"anything-but":[]}]}"#,
            "Inside anything but list, either all values are number or string, mixed type is not supported",
        ),
        (r#"{"key":[{}]}"#, "Match expression name not found"),
        (r#"{"key":[]}"#, "Empty arrays are not allowed"),
        ("{}", "Empty objects are not allowed"),
        ("[]", "Filter is not an object"),
        (
            r#"{"key":[{"cidr":10}]}"#,
            "prefix match pattern must be a string",
        ),
        (
            r#"{"key":[{"cidr":"10.0.0.0"}]}"#,
            "Malformed CIDR, one '/' required",
        ),
        (
            r#"{"key":[{"cidr":"10.0.0.0/x"}]}"#,
            "Malformed CIDR, mask bits must be an integer",
        ),
        (
            r#"{"key":[{"cidr":"10.0.0.0/-1"}]}"#,
            "Malformed CIDR, mask bits must not be negative",
        ),
        (
            r#"{"key":[{"cidr":"10.0.0.0/32"}]}"#,
            "IPv4 mask bits must be < 32",
        ),
        (
            r#"{"key":[{"cidr":"::/128"}]}"#,
            "IPv6 mask bits must be < 128",
        ),
        (
            r#"{"key":[{"cidr":"host/24"}]}"#,
            "Nonstandard IP address: host",
        ),
        (
            r#"{"key":[{"cidr":"10.0.0.256/24"}]}"#,
            "Invalid IP address: 10.0.0.256",
        ),
        (
            r#"{"$or":[{"a":["x"]}]}"#,
            "There must have at least 2 Objects in $or relationship.",
        ),
        (
            r#"{"$or":{"a":["x"]}}"#,
            "It must be an Array followed with $or.",
        ),
        (
            r#"{"$or":[{"a":["x"]}, "b"]}"#,
            "Only JSON object is allowed in array of $or relationship.",
        ),
        (
            r#"{"$or":[{"a":["x"]}, {"prefix":["b"]}]}"#,
            "prefix is Ruler reserved fieldName which cannot be used inside $or.",
        ),
    ];
    for (json, message) in cases {
        assert_eq!(attr_error(json), *message, "{json}");
    }
    assert!(attr_error("{not json").starts_with("failed to parse JSON."));
    assert!(attr_error("").starts_with("failed to parse JSON."));
}

#[test]
fn key_and_complexity_limits() {
    let six = r#"{"key1":["value1"],"key2":["value2"],"key3":["value3"],"key4":["value4"],"key5":["value5"],"key6":["value6"]}"#;
    assert_eq!(
        attr_error(six),
        "Filter policy can not have more than 5 keys"
    );
    assert_eq!(
        error(six, Scope::MessageBody),
        "Filter policy can not have more than 5 keys"
    );
    let five = r#"{"key1":["value1"],"key2":["value2"],"key3":["value3"],"key4":["value4"],"key5":["value5"]}"#;
    attr_policy(five);

    let values = |n: usize| {
        let v: Vec<String> = (0..n).map(|i| format!("\"value{i}\"")).collect();
        v.join(",")
    };
    assert_eq!(
        attr_error(&format!(r#"{{"key":[{}]}}"#, values(151))),
        "Filter policy is too complex"
    );
    attr_policy(&format!(r#"{{"key":[{}]}}"#, values(150)));
    assert_eq!(
        attr_error(&format!(
            r#"{{"key1":[{}],"key2":[{}]}}"#,
            values(100),
            values(51)
        )),
        "Filter policy is too complex"
    );
    attr_policy(&format!(
        r#"{{"key1":[{}],"key2":[{}]}}"#,
        values(50),
        values(3)
    ));

    // AWS's nested example: 3 x 4 x 2 x 3 x 1 x 3 = 216.
    let nested = r#"{
            "key_a": {"key_b": {"key_c": ["value_one", "value_two", "value_three", "value_four"]}},
            "key_d": {"key_e": ["value_one", "value_two", "value_three"]},
            "key_f": ["value_one", "value_two", "value_three"]
        }"#;
    assert_eq!(
        error(nested, Scope::MessageBody),
        "Filter policy is too complex"
    );
    // In a body policy only the top-level keys count towards the five.
    body_policy(
        r#"{"state": ["SUCCESS"], "severity": [{"exists": true}], "message": [{"exists": true}], "finding": {"standard_control": [{"exists": true}], "region": [{"exists": true}], "account": [{"exists": true}]}}"#,
    );

    // With $or the combinations add up over the alternatives: 24 + 64 + 64 = 152.
    let or_flat = r#"{
            "source": ["aws.cloudwatch", "aws.events", "aws.test", "aws.test2"],
            "$or": [
                {"metricName": ["CPUUtilization", "ReadLatency", "t1", "t2", "t3", "t4"]},
                {"metricType": ["MetricType", "TestType", "TestType2", "TestType3"],
                 "$or": [{"metricId": [1234, 4321, 5678, 9012]}, {"spaceId": [1, 2, 3, 4]}]}
            ]
        }"#;
    assert_eq!(attr_error(or_flat), "Filter policy is too complex");
    // 18 + 48 + 84 = 150 passes.
    attr_policy(
        r#"{
            "source": ["aws.cloudwatch", "aws.events", "aws.test"],
            "$or": [
                {"metricName": ["CPUUtilization", "ReadLatency", "TestVal", "TestVal2", "TestVal3", "TestVal4"]},
                {"metricType": ["MetricType", "TestType", "TestType2", "TestType3"],
                 "$or": [{"metricId": [1234, 4321, 5678, 9012]}, {"spaceId": [1, 2, 3, 4, 5, 6, 7]}]}
            ]
        }"#,
    );
    // 24 + 72 + 16 + 48 = 160, with the depth factor.
    let or_nested = r#"{
            "$or": [{"metricName": ["CPUUtilization", "ReadLatency", "TestValue"]}, {"namespace": ["AWS/EC2", "AWS/ES"]}],
            "detail": {"scope": ["Service", "Test"],
                       "$or": [{"source": ["aws.cloudwatch"]}, {"type": ["CloudWatch Alarm State Change", "TestValue", "TestValue2"]}]}
        }"#;
    assert_eq!(
        error(or_nested, Scope::MessageBody),
        "Filter policy is too complex"
    );

    // Many $or alternatives stop at the limit rather than exhausting memory.
    let alternatives: Vec<String> = (0..10_000)
        .map(|i| format!(r#"{{"k{i}":["v"]}}"#))
        .collect();
    let wide = format!(r#"{{"$or":[{}]}}"#, alternatives.join(","));
    assert_eq!(attr_error(&wide), "Filter policy is too complex");
    // Deep nesting is too complex by itself, or too deep for the parser.
    let deep = format!("{}[\"x\"]{}", "{\"k\":".repeat(200), "}".repeat(200));
    assert!(FilterPolicy::parse(&deep, Scope::MessageBody).is_err());
}

#[test]
fn size_limit() {
    let long = format!(r#"{{"key":["{}"]}}"#, "x".repeat(MAX_POLICY_BYTES));
    assert_eq!(
        attr_error(&long),
        "Filter policy can not be larger than 256 KB"
    );
}

#[test]
fn api_messages() {
    let e = FilterPolicyError("Filter policy is too complex".into());
    assert_eq!(
        e.api_message(false),
        "Invalid parameter: FilterPolicy: Filter policy is too complex"
    );
    assert_eq!(
        e.api_message(true),
        "Invalid parameter: Attributes Reason: FilterPolicy: Filter policy is too complex"
    );
    let nested = FilterPolicy::parse(r#"{"a":{"b":["c"]}}"#, Scope::MessageAttributes).unwrap_err();
    assert_eq!(
        nested.api_message(false),
        "Invalid parameter: Filter policy scope MessageAttributes does not support nested filter policy"
    );
    assert_eq!(Scope::parse("MessageBody"), Some(Scope::MessageBody));
    assert_eq!(Scope::parse("RandomValue"), None);
    assert_eq!(Scope::MessageAttributes.as_str(), "MessageAttributes");
}
