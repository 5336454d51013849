//! How PutMedia sessions end other than at the end of their body: deletion of the stream,
//! idle and connection-age limits, displacement by newer connections, shutdown, the server's
//! session limit, revoked keys and broken request bodies. Each says why with an ERROR ack
//! (shutdown and revocation excepted), after the PERSISTED acks of what it kept, and ends the
//! response with its terminating chunk.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use vigil_api_kvs::media::sessions::PutMediaConfig;

use super::{
    T, check_framing, cluster, connect, document, end_of_fragment, fragments_acked, stored,
    the_error,
};
use crate::common::{PutMediaClient, Revocable, SlowFs, TestServer, count_acks, putmedia_head};

/// The ERROR ack of a displaced session (4003), for the Cluster at `timecode` if one.
fn displaced(timecode: Option<u64>) -> Value {
    let mut ack = json!({"EventType": "ERROR", "ErrorId": 4003,
                         "ErrorCode": "MAX_CONNECTION_DURATION_REACHED"});
    if let Some(t) = timecode {
        ack["FragmentTimecode"] = json!(t);
    }
    ack
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_stream_ends_its_sessions() {
    let server = TestServer::start().await;
    let arn = server.create_stream("doomed", 1).await;
    let (mut m, head) = document();
    let c1 = cluster(&mut m, 0, 5, 100);
    let c2 = cluster(&mut m, 200, 3, 100);
    let mut c = connect(&server, "doomed", "ABSOLUTE").await;
    c.send_chunk(&[head, c1, c2].concat()).await;
    // The first fragment is complete and durable; the second is being received.
    let acks = c
        .wait_acks(T, |a| {
            count_acks(a, "PERSISTED") == 1 && count_acks(a, "BUFFERING") == 2
        })
        .await;
    let second = acks
        .iter()
        .filter(|a| a["EventType"] == "BUFFERING")
        .nth(1)
        .unwrap()["FragmentNumber"]
        .clone();
    let r = server
        .post("/deleteStream", &json!({"StreamARN": arn}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let acks = c.wait_end(T).await;
    let err = the_error(&acks);
    assert_eq!(err["ErrorId"], 4008);
    assert_eq!(err["ErrorCode"], "STREAM_NOT_ACTIVE");
    assert_eq!(err["FragmentNumber"], second);
    assert_eq!(err["FragmentTimecode"], 200);
    assert_eq!(server.state.kvs.sessions.active(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_get_idle_acks_then_end() {
    let server = TestServer::start_with_sessions(PutMediaConfig {
        idle_ack_interval: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(700),
        ..PutMediaConfig::default()
    })
    .await;
    server.create_stream("quiet", 1).await;
    let (mut m, head) = document();
    let c1 = cluster(&mut m, 0, 3, 10);
    let mut c = connect(&server, "quiet", "ABSOLUTE").await;
    c.send_chunk(&[head, c1].concat()).await;
    // No more data: IDLE acks, then the session ends, keeping the whole fragment.
    let acks = c.wait_end(T).await;
    check_framing(&c);
    assert!(count_acks(&acks, "IDLE") >= 3, "{acks:?}");
    let frags = fragments_acked(&acks, true);
    assert_eq!(frags.len(), 1);
    assert_eq!(stored(&server, "quiet").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_have_a_maximum_duration() {
    let server = TestServer::start_with_sessions(PutMediaConfig {
        idle_ack_interval: Duration::from_millis(100),
        max_connection_duration: Duration::from_millis(300),
        ..PutMediaConfig::default()
    })
    .await;
    server.create_stream("old", 1).await;
    let (mut m, head) = document();
    let c1 = cluster(&mut m, 0, 3, 10);
    let c2 = cluster(&mut m, 1000, 3, 10);
    let mut c = connect(&server, "old", "ABSOLUTE").await;
    c.send_chunk(&[head, c1].concat()).await;
    // IDLE acks come every 100 ms without data: after four, the connection is past 300 ms.
    c.wait_acks(T, |a| count_acks(a, "IDLE") >= 4).await;
    c.send_chunk(&c2).await;
    let acks = c.wait_end(T).await;
    let err = the_error(&acks);
    assert_eq!(
        err,
        &json!({"EventType": "ERROR", "FragmentTimecode": 1000, "ErrorId": 4003,
                "ErrorCode": "MAX_CONNECTION_DURATION_REACHED"})
    );
    // The fragment received before the deadline is kept.
    assert_eq!(count_acks(&acks, "PERSISTED"), 1);
    assert_eq!(stored(&server, "old").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_connection_wins() {
    let server = TestServer::start_with_sessions(PutMediaConfig {
        max_sessions_per_stream: 2,
        ..PutMediaConfig::default()
    })
    .await;
    server.create_stream("busy", 1).await;
    // Each producer is in the middle of a fragment.
    let mut producers = Vec::new();
    for i in 0..4u64 {
        let (mut m, head) = document();
        let mut c = connect(&server, "busy", "ABSOLUTE").await;
        c.send_chunk(&[head, cluster(&mut m, i * 10_000, 2, 10)].concat())
            .await;
        c.wait_acks(T, |a| count_acks(a, "BUFFERING") == 1).await;
        producers.push((c, m));
    }
    // The third and fourth made the first and second drain; with those still finishing their
    // fragments, the stream has as many connections as it may have.
    let head = putmedia_head(server.addr, "busy", "ABSOLUTE", &[]);
    let mut refused = PutMediaClient::connect(server.addr, &head).await;
    assert_eq!(refused.wait_status(T).await, 400);
    refused.wait_end(T).await;
    let body: Value = serde_json::from_slice(&refused.body).unwrap();
    assert_eq!(body["__type"], "ConnectionLimitExceededException");

    // The first producer's next Cluster completes its fragment, and its session ends there,
    // saying so: ERROR 4003 for that Cluster, after the PERSISTED ack.
    let (first, m) = &mut producers[0];
    let next = cluster(m, 1000, 2, 10);
    first.send_chunk(&next).await;
    let mut acks = first.wait_end(T).await;
    assert!(first.clean_end);
    assert_eq!(acks.pop(), Some(displaced(Some(1000))));
    assert_eq!(fragments_acked(&acks, true).len(), 1);
    assert_eq!(
        server
            .state
            .kvs
            .sessions
            .active_for(server.stream_id("busy")),
        3
    );
    let _fifth = connect(&server, "busy", "ABSOLUTE").await;
    // The newest ones still stream.
    let (last, m) = &mut producers[3];
    let next = cluster(m, 31_000, 2, 10);
    last.send_chunk(&next).await;
    last.wait_acks(T, |a| count_acks(a, "PERSISTED") == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_the_fragment_being_received_finish() {
    let server = TestServer::start().await;
    server.create_stream("draining", 1).await;
    let (mut m, head) = document();
    let c1 = cluster(&mut m, 0, 5, 100);
    let c2 = cluster(&mut m, 200, 3, 100);
    let mut c = connect(&server, "draining", "ABSOLUTE").await;
    c.send_chunk(&[head, c1, c2].concat()).await;
    c.wait_acks(T, |a| {
        count_acks(a, "PERSISTED") == 1 && count_acks(a, "BUFFERING") == 2
    })
    .await;

    let state = server.state.clone();
    let mut drain = tokio::spawn(async move { state.kvs.sessions.drain().await });
    // The second fragment is still arriving: the drain waits for it.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut drain)
            .await
            .is_err()
    );
    // New sessions are refused meanwhile.
    let refused = putmedia_head(
        server.addr,
        "draining",
        "ABSOLUTE",
        &[("Connection", "close")],
    );
    server
        .raw(&[refused, b"0\r\n\r\n".to_vec()].concat())
        .await
        .assert_error(503, "ServiceUnavailable");

    // The producer goes on: one more frame, then the end-of-fragment tag.
    m.write_simple_block(1, 320, false, &[7; 100]).unwrap();
    let more = [m.take(), end_of_fragment(&mut m)].concat();
    c.send_chunk(&more).await;
    let acks = c.wait_end(T).await;
    let frags = fragments_acked(&acks, true);
    assert_eq!(frags.len(), 2);
    tokio::time::timeout(T, drain).await.unwrap().unwrap();
    assert_eq!(server.state.kvs.sessions.active(), 0);
    let stored = stored(&server, "draining");
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[1].0.duration_ms, 160);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_has_a_session_limit() {
    let server = TestServer::start_with_sessions(PutMediaConfig {
        max_sessions: 2,
        ..PutMediaConfig::default()
    })
    .await;
    for name in ["full-a", "full-b", "full-c"] {
        server.create_stream(name, 1).await;
    }
    let mut a = connect(&server, "full-a", "ABSOLUTE").await;
    let _b = connect(&server, "full-b", "ABSOLUTE").await;
    let head = putmedia_head(server.addr, "full-c", "ABSOLUTE", &[]);
    let mut refused = PutMediaClient::connect(server.addr, &head).await;
    assert_eq!(refused.wait_status(T).await, 400);
    refused.wait_end(T).await;
    let body: Value = serde_json::from_slice(&refused.body).unwrap();
    assert_eq!(body["__type"], "ClientLimitExceededException");
    // Another stream's session (or the same stream's) is refused alike.
    let head = putmedia_head(server.addr, "full-a", "ABSOLUTE", &[]);
    let mut refused = PutMediaClient::connect(server.addr, &head).await;
    assert_eq!(refused.wait_status(T).await, 400);
    assert_eq!(server.state.kvs.sessions.active(), 2);

    // One ends: there is room again.
    a.end_body().await;
    a.wait_end(T).await;
    let mut c = connect(&server, "full-c", "ABSOLUTE").await;
    let (mut m, doc) = document();
    c.send_chunk(&[doc, cluster(&mut m, 0, 2, 10)].concat())
        .await;
    c.end_body().await;
    assert_eq!(fragments_acked(&c.wait_end(T).await, true).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_the_key_ends_the_session() {
    let auth = Arc::new(Revocable::default());
    let server = TestServer::start_custom(
        PutMediaConfig {
            auth_recheck_interval: Duration::from_millis(50),
            ..PutMediaConfig::default()
        },
        auth.clone(),
        // The complete fragment is still on its way to disk when the key is revoked.
        Arc::new(SlowFs {
            delay: Duration::from_millis(300),
        }),
    )
    .await;
    server.create_stream("revoked", 1).await;
    let (mut m, head) = document();
    let c1 = cluster(&mut m, 0, 3, 100);
    let c2 = cluster(&mut m, 1000, 3, 100);
    let mut c = connect(&server, "revoked", "ABSOLUTE").await;
    c.send_chunk(&[head, c1, c2].concat()).await;
    let acks = c
        .wait_acks(T, |a| {
            count_acks(a, "RECEIVED") == 1 && count_acks(a, "BUFFERING") == 2
        })
        .await;
    let buffering: Vec<Value> = acks
        .iter()
        .filter(|a| a["EventType"] == "BUFFERING")
        .map(|a| a["FragmentNumber"].clone())
        .collect();
    auth.revoke();
    // The session ends although the producer goes on streaming: the fragment being received
    // is dropped without an ack, the complete one is still persisted.
    let mut t = 1120;
    let acks = loop {
        m.write_simple_block(1, t, false, &[9; 100]).unwrap();
        t += 40;
        c.send_chunk(&m.take()).await;
        if let Ok(acks) = tokio::time::timeout(Duration::from_millis(10), c.wait_end(T)).await {
            break acks;
        }
    };
    assert!(acks.iter().all(|a| a["EventType"] != "ERROR"), "{acks:?}");
    let persisted: Vec<&Value> = acks
        .iter()
        .filter(|a| a["EventType"] == "PERSISTED")
        .map(|a| &a["FragmentNumber"])
        .collect();
    assert_eq!(persisted, [&buffering[0]]);
    assert!(
        !acks
            .iter()
            .any(|a| a["EventType"] == "RECEIVED" && a["FragmentNumber"] == buffering[1])
    );
    assert_eq!(stored(&server, "revoked").len(), 1);
    assert_eq!(server.state.kvs.sessions.active(), 0);
}

// ---- displacement ----

/// More than five sessions streaming to one stream: the oldest finishes the fragment it is
/// receiving, says so (4003 for what comes next) and ends; what it sends after that is not
/// stored, another stream's producer is unaffected, and the newest sessions stream on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn displaced_sessions_say_so_and_end() {
    let server = TestServer::start().await;
    server.create_stream("crowded", 1).await;
    server.create_stream("bystander", 1).await;
    assert_eq!(
        server.state.kvs.sessions.config().max_sessions_per_stream,
        5
    );
    let (mut bm, head) = document();
    let mut bystander = connect(&server, "bystander", "ABSOLUTE").await;
    bystander
        .send_chunk(&[head, cluster(&mut bm, 0, 2, 10)].concat())
        .await;
    bystander
        .wait_acks(T, |a| count_acks(a, "BUFFERING") == 1)
        .await;

    // The oldest has a fragment durable and another being received.
    let (mut m1, head) = document();
    let mut oldest = connect(&server, "crowded", "ABSOLUTE").await;
    let c0 = cluster(&mut m1, 0, 2, 10);
    let c1 = cluster(&mut m1, 1000, 2, 10);
    oldest.send_chunk(&[head, c0, c1].concat()).await;
    oldest
        .wait_acks(T, |a| {
            count_acks(a, "PERSISTED") == 1 && count_acks(a, "BUFFERING") == 2
        })
        .await;
    // The next one is between fragments: an end-of-fragment tag completed its only one.
    let (mut m2, head) = document();
    let mut second = connect(&server, "crowded", "ABSOLUTE").await;
    let c = cluster(&mut m2, 100_000, 2, 10);
    second
        .send_chunk(&[head, c, end_of_fragment(&mut m2)].concat())
        .await;
    second
        .wait_acks(T, |a| count_acks(a, "PERSISTED") == 1)
        .await;
    let mut others = Vec::new();
    for i in 0..3u64 {
        let (mut m, head) = document();
        let mut c = connect(&server, "crowded", "ABSOLUTE").await;
        c.send_chunk(&[head, cluster(&mut m, 200_000 + i * 10_000, 2, 10)].concat())
            .await;
        c.wait_acks(T, |a| count_acks(a, "BUFFERING") == 1).await;
        others.push((c, m));
    }

    // A sixth displaces the oldest. Its next Cluster completes its fragment (persisted) and
    // gets the error, which comes last, after that fragment's PERSISTED ack.
    let _sixth = connect(&server, "crowded", "ABSOLUTE").await;
    let c2 = cluster(&mut m1, 2000, 2, 10);
    let c3 = cluster(&mut m1, 3000, 2, 10);
    oldest.send_chunk(&c2).await;
    oldest.send_chunk(&c3).await;
    let mut acks = oldest.wait_end(T).await;
    assert!(oldest.clean_end, "{acks:?}");
    check_framing(&oldest);
    assert_eq!(acks.pop(), Some(displaced(Some(2000))));
    let kept: Vec<u64> = fragments_acked(&acks, true).iter().map(|f| f.0).collect();
    assert_eq!(kept, [0, 1000]);

    // A seventh displaces the next: between fragments, it ends at once, with no timecode.
    let _seventh = connect(&server, "crowded", "ABSOLUTE").await;
    let mut acks = second.wait_end(T).await;
    assert!(second.clean_end, "{acks:?}");
    assert_eq!(acks.pop(), Some(displaced(None)));
    assert_eq!(fragments_acked(&acks, true).len(), 1);

    // What the displaced sessions sent after their last fragment was not stored.
    let ts: Vec<u64> = stored(&server, "crowded")
        .iter()
        .map(|(m, _)| m.producer_ts_ms)
        .collect();
    assert_eq!(ts, [0, 1000, 100_000]);

    // The newest still stream; the other stream's producer never noticed.
    let (last, m) = &mut others[2];
    last.send_chunk(&cluster(m, 221_000, 2, 10)).await;
    last.end_body().await;
    let acks = last.wait_end(T).await;
    assert_eq!(fragments_acked(&acks, true).len(), 2);
    bystander.send_chunk(&cluster(&mut bm, 1000, 2, 10)).await;
    bystander.end_body().await;
    let acks = bystander.wait_end(T).await;
    assert!(bystander.clean_end);
    assert_eq!(fragments_acked(&acks, true).len(), 2);
    assert_eq!(stored(&server, "bystander").len(), 2);
}

// ---- broken request bodies ----

/// A request body whose chunked framing breaks (a chunk-size line that is no hex number) gets
/// ERROR 4000 and a clean end, wherever it breaks; what was complete before is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_chunked_body_gets_error_4000() {
    let server = TestServer::start().await;
    server.create_stream("broken", 1).await;
    let bad_chunk = b"zz\r\nnot a chunk\r\n";
    let read_error = |timecode: Option<u64>| {
        let mut ack = json!({"EventType": "ERROR", "ErrorId": 4000,
                             "ErrorCode": "STREAM_READ_ERROR"});
        if let Some(t) = timecode {
            ack["FragmentTimecode"] = json!(t);
        }
        ack
    };

    // Inside a fragment: that one is dropped, the one before is kept.
    let (mut m, head) = document();
    let c0 = cluster(&mut m, 0, 3, 100);
    let c1 = cluster(&mut m, 1000, 2, 100);
    let mut c = connect(&server, "broken", "ABSOLUTE").await;
    c.send_chunk(&[head, c0.clone(), c1].concat()).await;
    let acks = c
        .wait_acks(T, |a| {
            count_acks(a, "PERSISTED") == 1 && count_acks(a, "BUFFERING") == 2
        })
        .await;
    let dropped = acks
        .iter()
        .filter(|a| a["EventType"] == "BUFFERING")
        .nth(1)
        .unwrap()["FragmentNumber"]
        .clone();
    c.send(bad_chunk).await;
    let mut acks = c.wait_end(T).await;
    assert!(c.clean_end, "{acks:?}");
    check_framing(&c);
    let mut expected = read_error(Some(1000));
    expected["FragmentNumber"] = dropped.clone();
    assert_eq!(acks.pop(), Some(expected));
    let kept: Vec<Value> = acks
        .into_iter()
        .filter(|a| a["FragmentNumber"] != dropped)
        .collect();
    assert_eq!(fragments_acked(&kept, true).len(), 1);
    let stored_now = stored(&server, "broken");
    assert_eq!(stored_now.len(), 1);
    assert_eq!(stored_now[0].0.producer_ts_ms, 0);
    assert_eq!(stored_now[0].1[..], c0[..]);

    // Between fragments: nothing is dropped, but the session still says why it ends.
    let (mut m, head) = document();
    let mut c = connect(&server, "broken", "ABSOLUTE").await;
    c.send_chunk(&[head, cluster(&mut m, 5000, 2, 10), end_of_fragment(&mut m)].concat())
        .await;
    c.wait_acks(T, |a| count_acks(a, "PERSISTED") == 1).await;
    c.send(bad_chunk).await;
    let mut acks = c.wait_end(T).await;
    assert!(c.clean_end, "{acks:?}");
    assert_eq!(acks.pop(), Some(read_error(None)));
    assert_eq!(fragments_acked(&acks, true)[0].0, 5000);

    // As the very first bytes of the body: the ERROR is the only ack.
    let head = putmedia_head(server.addr, "broken", "ABSOLUTE", &[]);
    let mut c = PutMediaClient::connect(server.addr, &[&head[..], bad_chunk].concat()).await;
    assert_eq!(c.wait_status(T).await, 200);
    let acks = c.wait_end(T).await;
    assert!(c.clean_end, "{acks:?}");
    assert_eq!(acks, [read_error(None)]);
    assert_eq!(stored(&server, "broken").len(), 2);
    assert_eq!(server.state.kvs.sessions.active(), 0);
}
