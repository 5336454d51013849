#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
use super::*;
use proptest::prelude::*;

// Bodies as botocore 1.43.11 sends them (captured from `client.meta.events`'
// `before-send`, `request.body`). The same bodies are the fuzz target's seeds.
const CREATE_TOPIC: &str = "Action=CreateTopic&Version=2010-03-31&Name=alerts&\
    Attributes.entry.1.key=DisplayName&Attributes.entry.1.value=Alerts+%26+co&\
    Attributes.entry.2.key=FifoTopic&Attributes.entry.2.value=false&\
    Tags.member.1.Key=team&Tags.member.1.Value=vision&\
    Tags.member.2.Key=env&Tags.member.2.Value=prod";
// `create_topic(Name='empty', Tags=[], Attributes={})`: the empty list is sent, the empty
// map is not.
const CREATE_TOPIC_EMPTY: &str = "Action=CreateTopic&Version=2010-03-31&Name=empty&Tags=";
const PUBLISH: &str = "Action=Publish&Version=2010-03-31&\
    TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A123456789012%3Aalerts&\
    Message=a+%3Cb%3E+%26+%22c%22+%27d%27+%C3%A9+%F0%9F%99%82%0D%0A%2B%3D%25&\
    Subject=Hi+there&\
    MessageAttributes.entry.1.Name=kind&MessageAttributes.entry.1.Value.DataType=String&\
    MessageAttributes.entry.1.Value.StringValue=unknown&\
    MessageAttributes.entry.2.Name=raw&MessageAttributes.entry.2.Value.DataType=Binary&\
    MessageAttributes.entry.2.Value.BinaryValue=AAH%2B%2Fw%3D%3D&\
    MessageAttributes.entry.3.Name=n&MessageAttributes.entry.3.Value.DataType=Number&\
    MessageAttributes.entry.3.Value.StringValue=42";
const PUBLISH_BATCH: &str = "Action=PublishBatch&Version=2010-03-31&\
    TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A123456789012%3Aalerts&\
    PublishBatchRequestEntries.member.1.Id=1&\
    PublishBatchRequestEntries.member.1.Message=one&\
    PublishBatchRequestEntries.member.1.MessageAttributes.entry.1.Name=k&\
    PublishBatchRequestEntries.member.1.MessageAttributes.entry.1.Value.DataType=String&\
    PublishBatchRequestEntries.member.1.MessageAttributes.entry.1.Value.StringValue=v&\
    PublishBatchRequestEntries.member.2.Id=2&\
    PublishBatchRequestEntries.member.2.Message=two&\
    PublishBatchRequestEntries.member.2.MessageGroupId=g";
const ADD_PERMISSION: &str = "Action=AddPermission&Version=2010-03-31&\
    TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A123456789012%3Aalerts&Label=l&\
    AWSAccountId.member.1=111122223333&AWSAccountId.member.2=444455556666&\
    ActionName.member.1=Publish";
const UNTAG_EMPTY: &str = "Action=UntagResource&Version=2010-03-31&\
    ResourceArn=arn%3Aaws%3Asns%3Aus-east-1%3A123456789012%3Aalerts&TagKeys=";
const SUBSCRIBE: &str = "Action=Subscribe&Version=2010-03-31&\
    TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A123456789012%3Aalerts&Protocol=https&\
    Endpoint=https%3A%2F%2Fexample.com%2Fhook%3Fa%3D1%26b%3D2&\
    Attributes.entry.1.key=RawMessageDelivery&Attributes.entry.1.value=true&\
    Attributes.entry.2.key=FilterPolicy&\
    Attributes.entry.2.value=%7B%22kind%22%3A%5B%22person%22%5D%7D&\
    ReturnSubscriptionArn=true";
const GET_SMS_ATTRIBUTES: &str =
    "Action=GetSMSAttributes&Version=2010-03-31&attributes.member.1=DefaultSMSType";

fn form(body: &str) -> Form {
    Form::parse(body.as_bytes()).unwrap()
}

fn invalid<T: std::fmt::Debug>(r: Result<T, QueryError>) -> String {
    match r {
        Err(QueryError::Invalid(m)) => m,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn malformed(body: &[u8]) -> String {
    match Form::parse(body) {
        Err(QueryError::Malformed(m)) => m,
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[test]
fn query_botocore_create_topic() {
    let f = form(CREATE_TOPIC);
    assert_eq!(f.action(), Some("CreateTopic"));
    assert_eq!(f.version(), Some("2010-03-31"));
    assert_eq!(f.get("Name"), Some("alerts"));
    let attrs = f.map("Attributes", "key", "value", 10).unwrap();
    assert_eq!(
        attrs.into_iter().collect::<Vec<_>>(),
        [
            ("DisplayName".to_owned(), "Alerts & co".to_owned()),
            ("FifoTopic".to_owned(), "false".to_owned())
        ]
    );
    assert_eq!(
        f.tags("Tags", 50).unwrap(),
        [
            ("team".to_owned(), "vision".to_owned()),
            ("env".to_owned(), "prod".to_owned())
        ]
    );
    // Tags as a generic structure list.
    let tags = f.struct_list("Tags", 50).unwrap();
    assert_eq!(tags.len(), 2);
    assert_eq!(tags[1].get("Key"), Some("env"));
    assert_eq!(f.sub("Tags.member.1").get("Value"), Some("vision"));
    assert_eq!(f.sub("Attributes").len(), 4);
    assert!(f.sub("Nothing").is_empty());
    assert_eq!(f.len(), 11);
}

#[test]
fn query_botocore_empty_list_and_absent_map() {
    let f = form(CREATE_TOPIC_EMPTY);
    assert_eq!(f.get("Tags"), Some(""));
    assert!(f.tags("Tags", 50).unwrap().is_empty());
    assert!(f.struct_list("Tags", 50).unwrap().is_empty());
    assert!(f.map("Attributes", "key", "value", 10).unwrap().is_empty());
    let f = form(UNTAG_EMPTY);
    assert!(f.list("TagKeys", 50).unwrap().is_empty());
    // Absent entirely: empty too.
    assert!(f.list("Nope", 50).unwrap().is_empty());
    assert!(
        f.message_attributes("MessageAttributes", 10)
            .unwrap()
            .is_empty()
    );
    // A bare prefix with a value is not a list.
    let f = form("TagKeys=a");
    assert!(invalid(f.list("TagKeys", 50)).contains("TagKeys.member.N"));
    assert!(invalid(f.map("TagKeys", "key", "value", 5)).contains("TagKeys.entry.N"));
}

#[test]
fn query_botocore_publish() {
    let f = form(PUBLISH);
    assert_eq!(
        f.get("TopicArn"),
        Some("arn:aws:sns:us-east-1:123456789012:alerts")
    );
    assert_eq!(f.get("Message"), Some("a <b> & \"c\" 'd' é 🙂\r\n+=%"));
    assert_eq!(f.get("Subject"), Some("Hi there"));
    let a = f.message_attributes("MessageAttributes", 10).unwrap();
    assert_eq!(a.len(), 3);
    assert_eq!(
        a["kind"],
        RawAttribute {
            data_type: Some("String".into()),
            string_value: Some("unknown".into()),
            binary_value: None
        }
    );
    assert_eq!(
        a["raw"],
        RawAttribute {
            data_type: Some("Binary".into()),
            string_value: None,
            binary_value: Some(vec![0, 1, 0xfe, 0xff])
        }
    );
    assert_eq!(a["n"].string_value.as_deref(), Some("42"));
    // The limit is the caller's.
    assert!(invalid(f.message_attributes("MessageAttributes", 2)).contains("at most 2"));
}

#[test]
fn query_botocore_publish_batch() {
    let f = form(PUBLISH_BATCH);
    let entries = f.struct_list("PublishBatchRequestEntries", 10).unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].get("Id"), Some("1"));
    assert_eq!(entries[0].get("Message"), Some("one"));
    let a = entries[0]
        .message_attributes("MessageAttributes", 10)
        .unwrap();
    assert_eq!(a["k"].string_value.as_deref(), Some("v"));
    assert_eq!(entries[1].get("MessageGroupId"), Some("g"));
    assert!(
        entries[1]
            .message_attributes("MessageAttributes", 10)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        entries[0].iter().map(|(k, _)| k).collect::<Vec<_>>(),
        [
            "Id",
            "Message",
            "MessageAttributes.entry.1.Name",
            "MessageAttributes.entry.1.Value.DataType",
            "MessageAttributes.entry.1.Value.StringValue"
        ]
    );
}

#[test]
fn query_botocore_lists_and_lower_case_members() {
    let f = form(ADD_PERMISSION);
    assert_eq!(
        f.list("AWSAccountId", 10).unwrap(),
        ["111122223333", "444455556666"]
    );
    assert_eq!(f.list("ActionName", 10).unwrap(), ["Publish"]);
    let f = form(GET_SMS_ATTRIBUTES);
    assert_eq!(f.list("attributes", 10).unwrap(), ["DefaultSMSType"]);
    let f = form(SUBSCRIBE);
    assert_eq!(f.get("Endpoint"), Some("https://example.com/hook?a=1&b=2"));
    let m = f.map("Attributes", "key", "value", 10).unwrap();
    assert_eq!(m["FilterPolicy"], r#"{"kind":["person"]}"#);
    assert_eq!(m["RawMessageDelivery"], "true");
    assert_eq!(f.get("ReturnSubscriptionArn"), Some("true"));
}

#[test]
fn query_list_indices_are_checked() {
    let f = form("L.member.1=a&L.member.3=c");
    assert!(invalid(f.list("L", 10)).contains("L.member.2 is missing"));
    let f = form("L.member.2=b");
    assert!(invalid(f.list("L", 10)).contains("L.member.1 is missing"));
    let f = form("L.member.0=a");
    assert!(invalid(f.list("L", 10)).contains("start at 1"));
    for bad in ["01", "-1", "+1", "x", "", "1x", "99999999999999999999999"] {
        let f = Form::parse(format!("L.member.{bad}=a&L.member.1=b").as_bytes()).unwrap();
        invalid(f.list("L", 10));
    }
    // Order in the body does not matter; index order does (10 after 9, not after 1).
    let body: Vec<String> = (1..=11)
        .rev()
        .map(|i| format!("L.member.{i}={i}"))
        .collect();
    let f = form(&body.join("&"));
    let want: Vec<String> = (1..=11).map(|i| i.to_string()).collect();
    assert_eq!(f.list("L", 11).unwrap(), want);
    assert!(invalid(f.list("L", 10)).contains("at most 10"));
    assert!(invalid(f.list("L", 0)).contains("at most 0"));
    // A list of strings has no structure members, a list of structures no scalars.
    invalid(form("L.member.1=a&L.member.1.x=b").list("L", 10));
    invalid(form("L.member.1.x=b").list("L", 10));
    invalid(form("L.member.1=a").struct_list("L", 10));
    invalid(form("L.member.1=a").tags("L", 10));
    // Other names under the prefix are unknown parameters, not errors.
    let f = form("L.member.1=a&L.other=x&L.memberx=y&Lx.member.2=z");
    assert_eq!(f.list("L", 10).unwrap(), ["a"]);
    // A bare empty prefix next to elements: the elements win.
    assert_eq!(form("L=&L.member.1=a").list("L", 10).unwrap(), ["a"]);
}

#[test]
fn query_map_entries_are_checked() {
    let m = |body: &str| form(body).map("A", "key", "value", 10);
    assert!(invalid(m("A.entry.1.key=k")).contains("needs both"));
    assert!(invalid(m("A.entry.1.value=v")).contains("needs both"));
    assert!(invalid(m("A.entry.1.key=k&A.entry.1.value=v&A.entry.1.x=y")).contains(".x"));
    assert!(invalid(m("A.entry.1=k")).contains("structure"));
    assert!(
        invalid(m(
            "A.entry.1.key=k&A.entry.1.value=v&A.entry.2.key=k&A.entry.2.value=w"
        ))
        .contains("more than once")
    );
    assert!(invalid(m("A.entry.2.key=k&A.entry.2.value=v")).contains("missing"));
    // Empty keys and values are values.
    let ok = m("A.entry.1.key=&A.entry.1.value=").unwrap();
    assert_eq!(ok[""], "");
    // Keys with other names.
    let f = form("M.entry.1.Name=n&M.entry.1.Value=v");
    assert_eq!(f.map("M", "Name", "Value", 1).unwrap()["n"], "v");
}

#[test]
fn query_message_attributes_are_checked() {
    let a = |body: &str| form(body).message_attributes("M", 10);
    assert!(invalid(a("M.entry.1.Name=n")).contains("needs both"));
    assert!(invalid(a("M.entry.1.Value.DataType=String")).contains("needs both"));
    assert!(invalid(a("M.entry.1.Name=n&M.entry.1.Value.Other=x")).contains("Value.Other"));
    assert!(invalid(a("M.entry.1.Name=n&M.entry.1.Value.BinaryValue=%21%21")).contains("base64"));
    assert!(
        invalid(a("M.entry.1.Name=n&M.entry.1.Value.StringValue=a&\
             M.entry.2.Name=n&M.entry.2.Value.StringValue=b"))
        .contains("more than once")
    );
    // The data type is the service's to check; base64 padding is optional.
    let ok = a("M.entry.1.Name=n&M.entry.1.Value.BinaryValue=AAH%2B%2Fw").unwrap();
    assert_eq!(ok["n"].data_type, None);
    assert_eq!(
        ok["n"].binary_value.as_deref(),
        Some(&[0, 1, 0xfe, 0xff][..])
    );
}

#[test]
fn query_tags_keep_order_and_duplicates() {
    let f = form(
        "Tags.member.2.Key=b&Tags.member.2.Value=2&Tags.member.1.Key=a&Tags.member.1.Value=1&\
         Tags.member.3.Key=a&Tags.member.3.Value=3",
    );
    assert_eq!(
        f.tags("Tags", 50).unwrap(),
        [
            ("a".into(), "1".into()),
            ("b".into(), "2".into()),
            ("a".into(), "3".into())
        ]
    );
    assert!(invalid(form("Tags.member.1.Key=a").tags("Tags", 5)).contains("needs both"));
    assert!(invalid(form("Tags.member.1.Value=a").tags("Tags", 5)).contains("needs both"));
}

#[test]
fn query_form_decoding() {
    let f = form("a=1&&b&c=x=y&%41%42=%e2%82%ac&plus=a+b%2Bc&pct=100%&bad=%zz%4");
    assert_eq!(f.get("a"), Some("1"));
    assert_eq!(f.get("b"), Some(""));
    assert_eq!(f.get("c"), Some("x=y"));
    assert_eq!(f.get("AB"), Some("€"));
    assert_eq!(f.get("plus"), Some("a b+c"));
    assert_eq!(f.get("pct"), Some("100%"));
    assert_eq!(f.get("bad"), Some("%zz%4"));
    assert_eq!(f.len(), 7);
    assert!(Form::parse(b"").unwrap().is_empty());
    assert!(Form::parse(b"&&&").unwrap().is_empty());
    assert_eq!(form("=v").get(""), Some("v"));
}

#[test]
fn query_malformed_bodies() {
    assert!(malformed(b"a=%ff").contains("UTF-8"));
    assert!(malformed(b"a=\xff").contains("UTF-8"));
    assert!(malformed(b"%c3=1").contains("UTF-8"));
    // A name twice, however it is spelt.
    assert!(malformed(b"Name=a&Name=b").contains("Name"));
    assert!(malformed(b"Name=a&Na%6De=b").contains("more than once"));
    // Name length: decoded, at most MAX_KEY_LEN bytes.
    let long = "k".repeat(MAX_KEY_LEN);
    assert!(Form::parse(format!("{long}=v").as_bytes()).is_ok());
    assert!(Form::parse(format!("{}=v", "%6B".repeat(MAX_KEY_LEN)).as_bytes()).is_ok());
    assert!(malformed(format!("{long}k=v").as_bytes()).contains("longer"));
    assert!(
        malformed(format!("{}=v", "%6B".repeat(MAX_KEY_LEN + 1)).as_bytes()).contains("longer")
    );
    // Values are not limited here (the body's size is).
    assert!(Form::parse(format!("k={}", "v".repeat(100_000)).as_bytes()).is_ok());
    // Pair count.
    let body: Vec<String> = (0..MAX_PAIRS).map(|i| format!("k{i}=")).collect();
    assert_eq!(form(&body.join("&")).len(), MAX_PAIRS);
    assert!(malformed(format!("{}&x=1", body.join("&")).as_bytes()).contains("parameters"));
}

#[test]
fn query_encode_is_botocore_encoding() {
    // Re-encoding the botocore bodies gives their pairs back with the same spelling.
    for body in [
        CREATE_TOPIC,
        PUBLISH,
        PUBLISH_BATCH,
        SUBSCRIBE,
        ADD_PERMISSION,
    ] {
        let f = form(body);
        let mut ours: Vec<&str> = Vec::new();
        let enc = f.encode();
        ours.extend(enc.split('&'));
        let mut theirs: Vec<&str> = body.split('&').collect();
        ours.sort_unstable();
        theirs.sort_unstable();
        assert_eq!(ours, theirs);
    }
}

// Each document below was parsed with botocore 1.43.11's own `QueryParser`
// (`botocore.parsers.create_parser('query').parse({'body': doc, 'headers': {},
// 'status_code': 200}, op_model.output_shape)`); the parsed value is in the comment.

#[test]
fn query_xml_create_topic_and_no_result() {
    let mut x = Xml::new("CreateTopic");
    x.elem("TopicArn", "arn:aws:sns:us-east-1:123456789012:alerts");
    // {'TopicArn': 'arn:aws:sns:us-east-1:123456789012:alerts',
    //  'ResponseMetadata': {'RequestId': 'req-1'}}
    assert_eq!(x.finish("req-1"), XML_CREATE_TOPIC);
    // {'ResponseMetadata': {'RequestId': 'req-2'}}
    assert_eq!(
        Xml::finish_without_result("DeleteTopic", "req-2"),
        XML_DELETE_TOPIC
    );
    // An output shape without members still has its Result element: {'ResponseMetadata':
    // {'RequestId': 'req-3'}} (without it botocore's parser raises KeyError).
    assert_eq!(Xml::new("TagResource").finish("req-3"), XML_TAG_RESOURCE);
}

#[test]
fn query_xml_lists() {
    let mut x = Xml::new("ListTopics");
    x.open("Topics");
    for arn in [
        "arn:aws:sns:us-east-1:123456789012:a",
        "arn:aws:sns:us-east-1:123456789012:b",
    ] {
        x.open("member").elem("TopicArn", arn).close("member");
    }
    x.close("Topics").elem("NextToken", "t+/=");
    // {'Topics': [{'TopicArn': '...:a'}, {'TopicArn': '...:b'}], 'NextToken': 't+/=', ..}
    assert_eq!(x.finish("req-4"), XML_LIST_TOPICS);

    let mut x = Xml::new("ListTagsForResource");
    x.open("Tags");
    for (k, v) in [("team", "vision"), ("empty", "")] {
        x.open("member")
            .elem("Key", k)
            .elem("Value", v)
            .close("member");
    }
    // {'Tags': [{'Key': 'team', 'Value': 'vision'}, {'Key': 'empty', 'Value': ''}], ..}
    assert_eq!(x.finish("req-5"), XML_LIST_TAGS);

    let mut x = Xml::new("ListPhoneNumbersOptedOut");
    x.strings("phoneNumbers", ["+15550100", "+15550101"]);
    // {'phoneNumbers': ['+15550100', '+15550101'], ..}
    assert_eq!(x.finish("req-6"), XML_PHONE_NUMBERS);

    let mut x = Xml::new("PublishBatch");
    x.open("Successful")
        .open("member")
        .elem("Id", "1")
        .elem("MessageId", "5e1b7a")
        .close("member")
        .close("Successful");
    x.open("Failed")
        .open("member")
        .elem("Id", "2")
        .elem("Code", "InvalidParameter")
        .elem("Message", "bad")
        .elem("SenderFault", "true")
        .close("member");
    // Failed left open: finish closes it.
    // {'Successful': [{'Id': '1', 'MessageId': '5e1b7a'}], 'Failed': [{'Id': '2', 'Code':
    //  'InvalidParameter', 'Message': 'bad', 'SenderFault': True}], ..}
    assert_eq!(x.finish("req-7"), XML_PUBLISH_BATCH);
    // Empty lists.
    let mut x = Xml::new("ListTopics");
    x.strings("Topics", Vec::<String>::new());
    // {'Topics': [], ..}
    assert_eq!(x.finish("req-8"), XML_LIST_TOPICS_EMPTY);
}

#[test]
fn query_xml_maps_and_escaping() {
    let mut x = Xml::new("GetTopicAttributes");
    x.map(
        "Attributes",
        [
            ("DisplayName", "a <b> & \"c\" 'd' é 🙂"),
            ("Policy", "{\r\n  \"x\": 1\n}\t"),
            ("Odd", "nul\u{0}bell\u{7}ff\u{FFFF}ok\u{10FFFF}"),
        ],
    );
    // {'Attributes': {'DisplayName': 'a <b> & "c" \'d\' é 🙂', 'Policy':
    //  '{\r\n  "x": 1\n}\t', 'Odd': 'nul\ufffdbell\ufffdff\ufffdok\U0010ffff'}, ..}
    assert_eq!(x.finish("req-<9>"), XML_ATTRIBUTES);
    let mut x = Xml::new("GetSMSAttributes");
    x.map("attributes", Vec::<(String, String)>::new());
    // {'attributes': {}, ..}
    assert_eq!(x.finish("req-10"), XML_SMS_EMPTY);
    assert!(is_xml_text("tab\tlf\ncr\ré🙂\u{FFFD}"));
    assert!(!is_xml_text("a\u{1}"));
    assert!(!is_xml_text("a\u{FFFE}"));
    assert!(!is_xml_text("\u{0}"));
}

const XML_CREATE_TOPIC: &str = "<CreateTopicResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><CreateTopicResult><TopicArn>arn:aws:sns:us-east-1:123456789012:alerts</TopicArn></CreateTopicResult><ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata></CreateTopicResponse>";
const XML_DELETE_TOPIC: &str = "<DeleteTopicResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><ResponseMetadata><RequestId>req-2</RequestId></ResponseMetadata></DeleteTopicResponse>";
const XML_TAG_RESOURCE: &str = "<TagResourceResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><TagResourceResult></TagResourceResult><ResponseMetadata><RequestId>req-3</RequestId></ResponseMetadata></TagResourceResponse>";
const XML_LIST_TOPICS: &str = "<ListTopicsResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><ListTopicsResult><Topics><member><TopicArn>arn:aws:sns:us-east-1:123456789012:a</TopicArn></member><member><TopicArn>arn:aws:sns:us-east-1:123456789012:b</TopicArn></member></Topics><NextToken>t+/=</NextToken></ListTopicsResult><ResponseMetadata><RequestId>req-4</RequestId></ResponseMetadata></ListTopicsResponse>";
const XML_LIST_TAGS: &str = "<ListTagsForResourceResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><ListTagsForResourceResult><Tags><member><Key>team</Key><Value>vision</Value></member><member><Key>empty</Key><Value></Value></member></Tags></ListTagsForResourceResult><ResponseMetadata><RequestId>req-5</RequestId></ResponseMetadata></ListTagsForResourceResponse>";
const XML_PHONE_NUMBERS: &str = "<ListPhoneNumbersOptedOutResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><ListPhoneNumbersOptedOutResult><phoneNumbers><member>+15550100</member><member>+15550101</member></phoneNumbers></ListPhoneNumbersOptedOutResult><ResponseMetadata><RequestId>req-6</RequestId></ResponseMetadata></ListPhoneNumbersOptedOutResponse>";
const XML_PUBLISH_BATCH: &str = "<PublishBatchResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><PublishBatchResult><Successful><member><Id>1</Id><MessageId>5e1b7a</MessageId></member></Successful><Failed><member><Id>2</Id><Code>InvalidParameter</Code><Message>bad</Message><SenderFault>true</SenderFault></member></Failed></PublishBatchResult><ResponseMetadata><RequestId>req-7</RequestId></ResponseMetadata></PublishBatchResponse>";
const XML_LIST_TOPICS_EMPTY: &str = "<ListTopicsResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><ListTopicsResult><Topics></Topics></ListTopicsResult><ResponseMetadata><RequestId>req-8</RequestId></ResponseMetadata></ListTopicsResponse>";
const XML_ATTRIBUTES: &str = "<GetTopicAttributesResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><GetTopicAttributesResult><Attributes><entry><key>DisplayName</key><value>a &lt;b&gt; &amp; &quot;c&quot; &apos;d&apos; é 🙂</value></entry><entry><key>Policy</key><value>{&#xD;\n  &quot;x&quot;: 1\n}\t</value></entry><entry><key>Odd</key><value>nul\u{FFFD}bell\u{FFFD}ff\u{FFFD}ok\u{10FFFF}</value></entry></Attributes></GetTopicAttributesResult><ResponseMetadata><RequestId>req-&lt;9&gt;</RequestId></ResponseMetadata></GetTopicAttributesResponse>";
const XML_SMS_EMPTY: &str = "<GetSMSAttributesResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><GetSMSAttributesResult><attributes></attributes></GetSMSAttributesResult><ResponseMetadata><RequestId>req-10</RequestId></ResponseMetadata></GetSMSAttributesResponse>";

#[test]
fn query_fuzz_corpus_replays() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/sns_query");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("the sns_query corpus") {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        fuzz_form(&data);
        n += 1;
    }
    assert!(n > 0, "the sns_query corpus is empty");
    // The botocore seeds are there and parse.
    for body in [CREATE_TOPIC, PUBLISH, PUBLISH_BATCH] {
        fuzz_form(body.as_bytes());
    }
}

/// A list encoded as botocore encodes it (`prefix=` when empty).
fn encode_list(prefix: &str, items: &[String]) -> String {
    if items.is_empty() {
        return format!("{prefix}=");
    }
    let mut body = String::new();
    for (i, s) in items.iter().enumerate() {
        push_pair(&mut body, &format!("{prefix}.member.{}", i + 1), s);
    }
    body
}

fn attribute() -> impl Strategy<Value = RawAttribute> {
    (
        proptest::option::of("[A-Za-z.]{0,12}"),
        proptest::option::of(any::<String>()),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
    )
        .prop_filter("some value", |(t, s, b)| {
            t.is_some() || s.is_some() || b.is_some()
        })
        .prop_map(|(data_type, string_value, binary_value)| RawAttribute {
            data_type,
            string_value,
            binary_value,
        })
}

proptest! {
    #[test]
    fn query_prop_parse_never_panics(body in proptest::collection::vec(any::<u8>(), 0..400)) {
        fuzz_form(&body);
    }

    #[test]
    fn query_prop_parse_never_panics_on_formish(body in "((A|L|M|Tags)(\\.(member|entry|Name|Value|key|value|Key|DataType|StringValue|BinaryValue|0|01|[0-9]{1,2})){0,4}(=[%+&.=0-9a-fA-F]{0,6})?&?){0,12}") {
        fuzz_form(body.as_bytes());
        if let Ok(f) = Form::parse(body.as_bytes()) {
            for p in ["A", "L", "M", "Tags"] {
                let _ = (f.list(p, 5), f.struct_list(p, 5), f.map(p, "key", "value", 5),
                         f.message_attributes(p, 5), f.tags(p, 5));
            }
        }
    }

    #[test]
    fn query_prop_form_round_trips(pairs in proptest::collection::btree_map("\\PC{0,40}", any::<String>(), 0..20)) {
        let f = Form { pairs };
        prop_assert_eq!(Form::parse(f.encode().as_bytes()), Ok(f));
    }

    #[test]
    fn query_prop_list_round_trips(items in proptest::collection::vec(any::<String>(), 0..12), other in any::<String>()) {
        let mut body = encode_list("AWSAccountId", &items);
        push_pair(&mut body, "Label", &other);
        let f = form(&body);
        prop_assert_eq!(f.list("AWSAccountId", 12), Ok(items.clone()));
        prop_assert_eq!(f.get("Label"), Some(other.as_str()));
        if !items.is_empty() {
            prop_assert!(f.list("AWSAccountId", items.len() - 1).is_err());
        }
    }

    #[test]
    fn query_prop_map_round_trips(m in proptest::collection::btree_map(any::<String>(), any::<String>(), 0..12)) {
        let mut body = String::from("Action=CreateTopic");
        for (i, (k, v)) in m.iter().enumerate() {
            push_pair(&mut body, &format!("Attributes.entry.{}.key", i + 1), k);
            push_pair(&mut body, &format!("Attributes.entry.{}.value", i + 1), v);
        }
        prop_assert_eq!(form(&body).map("Attributes", "key", "value", 12), Ok(m));
    }

    #[test]
    fn query_prop_tags_round_trip(tags in proptest::collection::vec((any::<String>(), any::<String>()), 0..12)) {
        let mut body = String::new();
        if tags.is_empty() {
            body.push_str("Tags=");
        }
        for (i, (k, v)) in tags.iter().enumerate() {
            push_pair(&mut body, &format!("Tags.member.{}.Key", i + 1), k);
            push_pair(&mut body, &format!("Tags.member.{}.Value", i + 1), v);
        }
        prop_assert_eq!(form(&body).tags("Tags", 50), Ok(tags));
    }

    #[test]
    fn query_prop_batch_attributes_round_trip(
        entries in proptest::collection::vec(
            (any::<String>(), proptest::collection::btree_map("[a-zA-Z0-9_.-]{1,20}", attribute(), 0..5)),
            0..4,
        ),
    ) {
        // PublishBatchRequestEntries.member.N.{Message, MessageAttributes.entry.M.*}
        let mut body = String::from("Action=PublishBatch");
        if entries.is_empty() {
            body.push_str("&PublishBatchRequestEntries=");
        }
        for (i, (msg, attrs)) in entries.iter().enumerate() {
            let m = format!("PublishBatchRequestEntries.member.{}", i + 1);
            push_pair(&mut body, &format!("{m}.Id"), &i.to_string());
            push_pair(&mut body, &format!("{m}.Message"), msg);
            for (j, (name, a)) in attrs.iter().enumerate() {
                let e = format!("{m}.MessageAttributes.entry.{}", j + 1);
                push_pair(&mut body, &format!("{e}.Name"), name);
                if let Some(t) = &a.data_type {
                    push_pair(&mut body, &format!("{e}.Value.DataType"), t);
                }
                if let Some(s) = &a.string_value {
                    push_pair(&mut body, &format!("{e}.Value.StringValue"), s);
                }
                if let Some(b) = &a.binary_value {
                    push_pair(&mut body, &format!("{e}.Value.BinaryValue"),
                              &base64::engine::general_purpose::STANDARD.encode(b));
                }
            }
        }
        let f = form(&body);
        let got = f.struct_list("PublishBatchRequestEntries", 10).unwrap();
        prop_assert_eq!(got.len(), entries.len());
        for (g, (msg, attrs)) in got.iter().zip(&entries) {
            prop_assert_eq!(g.get("Message"), Some(msg.as_str()));
            prop_assert_eq!(&g.message_attributes("MessageAttributes", 10).unwrap(), attrs);
        }
    }

    #[test]
    fn query_prop_xml_text_unescapes(s in any::<String>()) {
        let mut text = String::new();
        escape_text(&mut text, &s);
        prop_assert!(is_xml_text(&text));
        prop_assert!(!text.contains('<') && !text.contains('\r'));
        let expected: String = s.chars().map(|c| if is_xml_char(c) { c } else { '\u{FFFD}' }).collect();
        prop_assert_eq!(unescape(&text), expected);
    }
}
