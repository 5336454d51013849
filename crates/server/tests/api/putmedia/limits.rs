//! What no one caller may take from the others: the per-key session limit (a key at its limit
//! is refused with `ClientLimitExceededException` while other keys stream on), and the
//! minimum-progress rule (a session that trickles its body ends with ERROR 4000 and gives its
//! place back).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use vigil_api_kvs::media::sessions::{ENDED_SLOW, PutMediaConfig, REFUSED_PER_KEY};

use super::{T, check_framing, cluster, connect, document, fragments_acked, stored};
use crate::common::{PutMediaClient, TestServer, count_acks, putmedia_head};

/// The request header [`ByHeader`] takes the caller's access key from.
const KEY_HEADER: &str = "x-test-access-key";

/// Lets everything through, as `Anonymous`, but as the access key the request names in
/// [`KEY_HEADER`] (signed requests, as far as the server can tell: the per-key limit counts by
/// access key).
#[derive(Debug, Default)]
struct ByHeader;

impl vigil_api_common::Authenticator for ByHeader {
    fn precheck(
        &self,
        _: &axum::http::request::Parts,
        _: vigil_api_common::Service,
    ) -> vigil_api_common::CommonResult<()> {
        Ok(())
    }

    fn authenticate(
        &self,
        parts: &axum::http::request::Parts,
        _: vigil_api_common::Payload<'_>,
        _: vigil_api_common::Service,
    ) -> vigil_api_common::CommonResult<vigil_api_common::Principal> {
        let key = parts
            .headers
            .get(KEY_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("AKIDNOHEADER");
        Ok(vigil_api_common::Principal {
            access_key_id: key.to_owned(),
            policy: None,
        })
    }

    fn authorize_action(
        &self,
        _: &vigil_api_common::Principal,
        _: &str,
        _: Option<&str>,
    ) -> vigil_api_common::CommonResult<()> {
        Ok(())
    }

    fn is_current(&self, _: &vigil_api_common::Principal) -> bool {
        true
    }
}

/// A PutMedia session to `stream` signed by `key`, once its `200` is in.
async fn connect_as(server: &TestServer, stream: &str, key: &str) -> PutMediaClient {
    let head = putmedia_head(server.addr, stream, "ABSOLUTE", &[(KEY_HEADER, key)]);
    let mut c = PutMediaClient::connect(server.addr, &head).await;
    assert_eq!(c.wait_status(T).await, 200);
    c
}

/// Streams two fragments into `c` and ends the body; both must be persisted.
async fn stream_two(c: &mut PutMediaClient, first_timecode: u64) {
    let (mut m, head) = document();
    let c0 = cluster(&mut m, first_timecode, 3, 100);
    let c1 = cluster(&mut m, first_timecode + 1000, 3, 100);
    c.send_chunk(&[head, c0, c1].concat()).await;
    c.end_body().await;
    let acks = c.wait_end(T).await;
    assert!(c.clean_end, "{acks:?}");
    assert_eq!(fragments_acked(&acks, true).len(), 2, "{acks:?}");
}

/// One key opening sessions on stream after stream reaches its limit and is refused there,
/// before the `200` and without disturbing its own sessions, while another key streams on;
/// a place the key gives back is its again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_at_its_limit_is_refused_while_others_stream() {
    let server = TestServer::start_custom(
        PutMediaConfig {
            max_sessions_per_key: 3,
            ..PutMediaConfig::default()
        },
        Arc::new(ByHeader),
        Arc::new(vigil_store::fs::StdFs),
    )
    .await;
    for name in ["hog-1", "hog-2", "hog-3", "hog-4", "fair"] {
        server.create_stream(name, 1).await;
    }
    let refused_before = vigil_api_kvs::metrics::metrics()
        .putmedia_refused
        .get(&[REFUSED_PER_KEY]);
    // Key A takes its three places, on three streams.
    let mut hogs = Vec::new();
    for name in ["hog-1", "hog-2", "hog-3"] {
        hogs.push(connect_as(&server, name, "AKIDHOG").await);
    }
    assert_eq!(server.state.kvs.sessions.active_for_key("AKIDHOG"), 3);
    // Its fourth is refused, on a new stream as on one it already streams to.
    for name in ["hog-4", "hog-1"] {
        let head = putmedia_head(server.addr, name, "ABSOLUTE", &[(KEY_HEADER, "AKIDHOG")]);
        let mut refused = PutMediaClient::connect(server.addr, &head).await;
        assert_eq!(refused.wait_status(T).await, 400);
        refused.wait_end(T).await;
        let body: Value = serde_json::from_slice(&refused.body).unwrap();
        assert_eq!(body["__type"], "ClientLimitExceededException", "{body}");
    }
    assert!(
        vigil_api_kvs::metrics::metrics()
            .putmedia_refused
            .get(&[REFUSED_PER_KEY])
            >= refused_before + 2
    );
    assert_eq!(server.state.kvs.sessions.active(), 3);

    // Key B streams as if A were not there.
    let mut fair = connect_as(&server, "fair", "AKIDFAIR").await;
    stream_two(&mut fair, 0).await;
    assert_eq!(stored(&server, "fair").len(), 2);

    // A's sessions were not touched: they stream too.
    let mut first = hogs.remove(0);
    stream_two(&mut first, 10_000).await;
    // That one ended: A has a place again.
    let mut again = connect_as(&server, "hog-4", "AKIDHOG").await;
    stream_two(&mut again, 20_000).await;
    assert_eq!(stored(&server, "hog-4").len(), 2);
}

/// A session that trickles its body (a byte every 40 ms or so, never idle) is ended by the
/// minimum-progress rule: the fragment it had completed is persisted and acknowledged, the one
/// it was trickling gets ERROR 4000 and is dropped, the response ends cleanly, and its place
/// is free. A producer at a normal rate on the same server is never ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_session_is_ended_and_its_place_freed() {
    let server = TestServer::start_with_sessions(PutMediaConfig {
        min_progress_bytes: 512,
        min_progress_window: Duration::from_secs(1),
        // The trickler's place and the steady producer's: the server is full.
        max_sessions: 2,
        ..PutMediaConfig::default()
    })
    .await;
    server.create_stream("trickle", 1).await;
    server.create_stream("steady", 1).await;
    let ended_before = vigil_api_kvs::metrics::metrics()
        .putmedia_ended
        .get(&[ENDED_SLOW]);

    // The trickler: a whole fragment, the start of the next, then a byte at a time.
    let (mut m, head) = document();
    let c0 = cluster(&mut m, 0, 3, 100);
    let c1 = cluster(&mut m, 1000, 3, 100);
    let (c1_start, c1_rest) = c1.split_at(40);
    let mut trickler = connect(&server, "trickle", "ABSOLUTE").await;
    trickler
        .send_chunk(&[head, c0.clone(), c1_start.to_vec()].concat())
        .await;
    let acks = trickler
        .wait_acks(T, |a| {
            count_acks(a, "PERSISTED") == 1 && count_acks(a, "BUFFERING") == 2
        })
        .await;
    let trickled = acks
        .iter()
        .filter(|a| a["EventType"] == "BUFFERING")
        .nth(1)
        .unwrap()["FragmentNumber"]
        .clone();

    // The steady producer: a 100-byte frame every 40 ms or so (2.5 KB/s).
    let (mut sm, head) = document();
    let mut steady = connect(&server, "steady", "ABSOLUTE").await;
    sm.begin_cluster(0).unwrap();
    sm.write_simple_block(1, 0, true, &[7; 100]).unwrap();
    steady.send_chunk(&[head, sm.take()].concat()).await;
    // The server is full.
    let full = putmedia_head(server.addr, "trickle", "ABSOLUTE", &[]);
    let mut refused = PutMediaClient::connect(server.addr, &full).await;
    assert_eq!(refused.wait_status(T).await, 400);

    let mut rest = c1_rest.iter();
    let mut frame = 0i64;
    let acks = loop {
        if let Some(b) = rest.next() {
            trickler.send_chunk(&[*b]).await;
        }
        frame += 1;
        sm.write_simple_block(1, frame * 40, false, &[7; 100])
            .unwrap();
        steady.send_chunk(&sm.take()).await;
        if let Ok(acks) =
            tokio::time::timeout(Duration::from_millis(40), trickler.wait_end(T)).await
        {
            break acks;
        }
        // A fragment is at most 20 s long: 500 frames of the steady producer's.
        assert!(frame < 450, "the trickler was never ended");
    };
    assert!(trickler.clean_end, "{acks:?}");
    check_framing(&trickler);
    let mut acks = acks;
    let error = acks.pop().unwrap();
    assert_eq!(
        error,
        json!({"EventType": "ERROR", "FragmentTimecode": 1000, "FragmentNumber": trickled,
               "ErrorId": 4000, "ErrorCode": "STREAM_READ_ERROR"})
    );
    let kept: Vec<Value> = acks
        .into_iter()
        .filter(|a| a["FragmentNumber"] != trickled)
        .collect();
    assert_eq!(fragments_acked(&kept, true).len(), 1);
    let stored_now = stored(&server, "trickle");
    assert_eq!(stored_now.len(), 1);
    assert_eq!(stored_now[0].1[..], c0[..]);
    assert!(
        vigil_api_kvs::metrics::metrics()
            .putmedia_ended
            .get(&[ENDED_SLOW])
            > ended_before
    );

    // Its place is free: a new session of the stream gets in and streams.
    let mut next = connect(&server, "trickle", "ABSOLUTE").await;
    let (mut m, head) = document();
    next.send_chunk(&[head, cluster(&mut m, 5000, 2, 100)].concat())
        .await;
    next.end_body().await;
    assert_eq!(fragments_acked(&next.wait_end(T).await, true).len(), 1);

    // The steady producer was never ended: both its fragments are stored.
    sm.begin_cluster(50_000).unwrap();
    sm.write_simple_block(1, 50_000, true, &[1; 100]).unwrap();
    steady.send_chunk(&sm.take()).await;
    steady.end_body().await;
    let acks = steady.wait_end(T).await;
    assert!(steady.clean_end, "{acks:?}");
    assert_eq!(fragments_acked(&acks, true).len(), 2, "{acks:?}");
    assert_eq!(stored(&server, "steady").len(), 2);
}
