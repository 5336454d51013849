//! Kinesis Data Streams in process, where time can be moved: iterators and pagination tokens
//! expire after five minutes, retention expires records, and the routing of Kinesis requests
//! beside the other APIs on the one listener.

use std::sync::Arc;

use serde_json::{Value, json};
use vigil_server::{Anonymous, ServerConfig};
use vigil_store::ManualClock;

use crate::common::{Response, TestServer};

const START_MS: u64 = 1_800_000_000_000;

async fn kinesis(server: &TestServer, op: &str, body: &Value) -> Response {
    let body = body.to_string();
    let req = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: Kinesis_20131202.{op}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.addr,
        body.len()
    );
    server.raw(req.as_bytes()).await
}

async fn ok(server: &TestServer, op: &str, body: Value) -> Value {
    let r = kinesis(server, op, &body).await;
    assert_eq!(r.status, 200, "{op}: {}", r.text());
    if r.body.is_empty() {
        json!({})
    } else {
        r.json()
    }
}

async fn error(server: &TestServer, op: &str, body: Value) -> (u16, String) {
    let r = kinesis(server, op, &body).await;
    let v = r.json();
    (
        r.status,
        v["__type"].as_str().unwrap_or_default().to_owned(),
    )
}

async fn started() -> (TestServer, ManualClock) {
    let clock = ManualClock::new(START_MS);
    let server = TestServer::start_with_clock(
        ServerConfig::default(),
        Arc::new(Anonymous),
        Arc::new(clock.clone()),
    )
    .await;
    (server, clock)
}

#[tokio::test]
async fn iterators_and_tokens_expire_after_five_minutes() {
    let (server, clock) = started().await;
    ok(
        &server,
        "CreateStream",
        json!({"StreamName": "s", "ShardCount": 1}),
    )
    .await;
    for i in 0..3 {
        ok(
            &server,
            "PutRecord",
            json!({"StreamName": "s", "PartitionKey": "k", "Data": base64(&format!("r{i}"))}),
        )
        .await;
    }
    let it = ok(
        &server,
        "GetShardIterator",
        json!({"StreamName": "s", "ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"}),
    )
    .await["ShardIterator"]
        .as_str()
        .unwrap()
        .to_owned();
    clock.advance_ms(300_000);
    let got = ok(
        &server,
        "GetRecords",
        json!({"ShardIterator": it, "Limit": 1}),
    )
    .await;
    assert_eq!(
        got["Records"].as_array().unwrap().len(),
        1,
        "valid for 300 s"
    );
    assert!(got["MillisBehindLatest"].as_u64().unwrap() > 0, "{got}");
    let next = got["NextShardIterator"].as_str().unwrap().to_owned();
    clock.advance_ms(1);
    assert_eq!(
        error(&server, "GetRecords", json!({"ShardIterator": it})).await,
        (400, "ExpiredIteratorException".to_owned())
    );
    // The next iterator is fresh: it carries on after the first record.
    let rest = ok(&server, "GetRecords", json!({"ShardIterator": next})).await;
    let datas: Vec<&str> = rest["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Data"].as_str().unwrap())
        .collect();
    assert_eq!(datas, [base64("r1"), base64("r2")]);
    assert_eq!(rest["MillisBehindLatest"], 0);

    for name in ["t1", "t2"] {
        ok(
            &server,
            "CreateStream",
            json!({"StreamName": name, "ShardCount": 1}),
        )
        .await;
    }
    let page = ok(&server, "ListStreams", json!({"Limit": 1})).await;
    assert_eq!(page["HasMoreStreams"], true);
    let token = page["NextToken"].as_str().unwrap().to_owned();
    let second = ok(
        &server,
        "ListStreams",
        json!({"NextToken": token, "Limit": 1}),
    )
    .await;
    assert_eq!(second["StreamNames"], json!(["t1"]));
    clock.advance_ms(300_001);
    assert_eq!(
        error(&server, "ListStreams", json!({"NextToken": token})).await,
        (400, "ExpiredNextTokenException".to_owned())
    );
}

#[tokio::test]
async fn retention_expires_records_and_the_trim_horizon_moves() {
    let (server, clock) = started().await;
    ok(
        &server,
        "CreateStream",
        json!({"StreamName": "r", "ShardCount": 1}),
    )
    .await;
    ok(
        &server,
        "PutRecord",
        json!({"StreamName": "r", "PartitionKey": "k", "Data": base64("old")}),
    )
    .await;
    clock.advance_ms(23 * 3_600_000);
    ok(
        &server,
        "PutRecord",
        json!({"StreamName": "r", "PartitionKey": "k", "Data": base64("new")}),
    )
    .await;
    clock.advance_ms(2 * 3_600_000);
    let store = server.state.store.clone();
    tokio::task::spawn_blocking(move || store.run_retention().unwrap())
        .await
        .unwrap();
    let it = ok(
        &server,
        "GetShardIterator",
        json!({"StreamName": "r", "ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"}),
    )
    .await;
    let got = ok(
        &server,
        "GetRecords",
        json!({"ShardIterator": it["ShardIterator"]}),
    )
    .await;
    let datas: Vec<&str> = got["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Data"].as_str().unwrap())
        .collect();
    assert_eq!(
        datas,
        [base64("new")],
        "the record older than 24 hours is gone"
    );
}

#[tokio::test]
async fn kinesis_answers_beside_the_other_apis() {
    let (server, _) = started().await;
    // A Kinesis target on POST / is Kinesis's; a Rekognition one Rekognition's; a KVS path
    // KVS's; and a target no API has is an unknown operation.
    assert_eq!(
        error(&server, "DescribeStream", json!({"StreamName": "none"})).await,
        (400, "ResourceNotFoundException".to_owned())
    );
    let r = kinesis(&server, "ListStreams", &json!({})).await;
    assert_eq!(r.header("content-type"), Some("application/x-amz-json-1.1"));
    assert!(r.header("x-amzn-requestid").is_some());
    let r = server.post("/listStreams", &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["StreamInfoList"].is_array(), "KVS ListStreams");
    assert_eq!(
        error(&server, "Bogus", json!({})).await,
        (400, "UnknownOperationException".to_owned())
    );
    let metrics = server
        .raw(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    let text = metrics.text();
    assert!(
        text.contains("vigil_api_requests_total{operation=\"DescribeStream\"}"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE vigil_kinesis_records_in_total counter"),
        "{text}"
    );
}

fn base64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}
