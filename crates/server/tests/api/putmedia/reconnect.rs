//! The official producer SDK across a reconnect: a resumed session that starts with the Tags
//! and end-of-fragment tag of the fragment the last one ended with, then re-sends a fragment
//! already persisted (the reconnect vector, built from the C producer's video capture); KVS's
//! tag limit with the end-of-fragment tag counted; and shutdown closing the connection right
//! after the last ack.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use vigil_api_kvs::media::sessions::PutMediaConfig;
use vigil_api_kvs_common::model::fragment_number;
use vigil_mkv::{Demuxer, EbmlHeader, Event, Info, Muxer, MuxerOptions, SimpleTag, Tag};

use super::{
    T, check_framing, cluster, connect, document, end_of_fragment, fragments_acked, stored,
    the_error, track,
};
use crate::common::{
    PutMediaClient, TestServer, count_acks, http_chunk, http_chunks, kvs_capture, putmedia_head,
};

// ---- the reconnect vector ----

/// The video capture's body cut at its elements, and two more fragments made of its frames.
struct Vector {
    /// EBML header, Segment, Info, Tracks, as the SDK sent them.
    preamble: Vec<u8>,
    /// Each fragment's Cluster, then its nine TEST_KEY Tags, then its end-of-fragment Tags.
    fragments: Vec<[Vec<u8>; 3]>,
    timecodes: Vec<u64>,
}

/// The capture's two fragments (byte for byte), then two more made of the same frames 2720 ms
/// later (the same nine Tags and end-of-fragment tag after each), as the SDK would go on.
fn vector() -> Vector {
    let body = std::fs::read(kvs_capture("video/putmedia-body.mkv")).unwrap();
    let events = Demuxer::read_all(&body).unwrap();
    let slice = |from: u64, to: u64| body[from as usize..to as usize].to_vec();
    let first = events
        .iter()
        .find_map(|e| match e {
            Event::ClusterStart { span, .. } => Some(span.offset),
            _ => None,
        })
        .unwrap();
    let mut fragments = Vec::new();
    let mut timecodes = Vec::new();
    let mut frames: Vec<Vec<(i64, bool, Bytes)>> = Vec::new();
    let mut tags: Vec<(u64, u64)> = Vec::new();
    let mut cluster_at = (0, 0);
    let mut flush = |cluster: (u64, u64), tags: &mut Vec<(u64, u64)>| {
        let (eof, custom) = tags.split_last().unwrap();
        assert_eq!(custom.len(), 9);
        fragments.push([
            slice(cluster.0, cluster.1),
            slice(custom[0].0, custom[8].1),
            slice(eof.0, eof.1),
        ]);
        tags.clear();
    };
    for e in &events {
        match e {
            Event::ClusterStart { timecode, .. } => {
                if !tags.is_empty() {
                    flush(cluster_at, &mut tags);
                }
                timecodes.push(*timecode);
                frames.push(Vec::new());
            }
            Event::Frame(f) => {
                frames
                    .last_mut()
                    .unwrap()
                    .push((f.timecode, f.keyframe, f.data.clone()))
            }
            Event::ClusterEnd { offset, end } => cluster_at = (*offset, *end),
            Event::Tags { span, .. } => tags.push((span.offset, span.end().unwrap())),
            _ => {}
        }
    }
    flush(cluster_at, &mut tags);
    assert_eq!(timecodes, [1_795_320_641_601, 1_795_320_643_401]);
    // Two more: the second ends 920 ms after it starts, the first lasts 1800 ms.
    let shift = 2720;
    let mut m = Muxer::new(MuxerOptions::streaming());
    m.begin_document(&EbmlHeader::kvs(), &Info::default(), &[track(1)])
        .unwrap();
    m.take();
    for i in 0..2 {
        let timecode = timecodes[i] + shift;
        m.begin_cluster(timecode).unwrap();
        for (t, key, data) in &frames[i] {
            m.write_simple_block(1, t + shift as i64, *key, data)
                .unwrap();
        }
        let tags = [fragments[i][1].clone(), fragments[i][2].clone()];
        fragments.push([m.take(), tags[0].clone(), tags[1].clone()]);
        timecodes.push(timecode);
    }
    Vector {
        preamble: body[..first as usize].to_vec(),
        fragments,
        timecodes,
    }
}

/// The chunked body `b` de-chunked, as far as its chunks are whole.
fn whole_chunks(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&b[..nl]).unwrap(), 16).unwrap();
        if size == 0 || b.len() < nl + 2 + size + 2 {
            break;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + size]);
        b = &b[nl + 4 + size..];
    }
    out
}

/// A Cluster's bytes after its ID and size (GetMedia may write the size otherwise), from its
/// Timecode on.
fn cluster_body(c: &[u8]) -> &[u8] {
    &c[4 + c[4].leading_zeros() as usize + 1..]
}

/// How many times `needle` is in `hay`.
fn occurrences(hay: &[u8], needle: &[u8]) -> usize {
    let key = &needle[..needle.len().min(32)];
    hay.windows(key.len())
        .enumerate()
        .filter(|(i, w)| *w == key && hay[*i..].starts_with(needle))
        .count()
}

/// Session one streams the capture's two fragments (persisted) and is cut in the middle of a
/// third. Session two resumes as the SDK does: the first fragment's Tags and end-of-fragment
/// tag before any Cluster, the second fragment re-sent whole, then the third and a fourth.
/// No ERROR ack, every fragment PERSISTED, and each stored once, byte for byte as sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_session_stores_each_fragment_once() {
    let server = TestServer::start().await;
    server.create_stream("csdk-video", 2).await;
    let head = std::fs::read(kvs_capture("video/putmedia-headers.txt")).unwrap();
    let v = vector();
    let wire = std::fs::read(kvs_capture("video/putmedia-wire.bin")).unwrap();

    // Session one: the capture as sent, byte for byte, then half of the third Cluster.
    let mut one = PutMediaClient::connect(server.addr, &head).await;
    assert!(one.send(&wire[..wire.len() - 5]).await);
    one.wait_acks(T, |a| count_acks(a, "PERSISTED") == 2).await;
    let third = &v.fragments[2][0];
    one.send_chunk(&third[..third.len() / 2]).await;
    let acks = one.wait_acks(T, |a| count_acks(a, "BUFFERING") == 3).await;
    let first_numbers: Vec<Value> = acks
        .iter()
        .filter(|a| a["EventType"] == "PERSISTED")
        .map(|a| a["FragmentNumber"].clone())
        .collect();
    drop(one);
    for _ in 0..300 {
        if server.state.kvs.sessions.active() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.state.kvs.sessions.active(), 0);
    assert_eq!(stored(&server, "csdk-video").len(), 2);

    // Session two, the reconnect vector.
    let f = &v.fragments;
    let resumed = [
        v.preamble.clone(),
        f[0][1].clone(),
        f[0][2].clone(),
        f[1].concat(),
        f[2].concat(),
        f[3].concat(),
    ]
    .concat();
    let mut two = PutMediaClient::connect(server.addr, &head).await;
    assert!(two.send(&http_chunks(&resumed, &[65524, 4000, 777])).await);
    two.wait_acks(T, |a| count_acks(a, "PERSISTED") == 3).await;
    assert!(two.end_body().await);
    let acks = two.wait_end(T).await;
    assert!(two.clean_end);
    check_framing(&two);
    assert!(acks.iter().all(|a| a["EventType"] != "ERROR"), "{acks:?}");
    let frags = fragments_acked(&acks, true);
    assert_eq!(
        frags.iter().map(|f| f.0).collect::<Vec<_>>(),
        &v.timecodes[1..]
    );
    // The re-sent one is acknowledged as the fragment already stored.
    assert_eq!(json!(frags[0].1), first_numbers[1]);

    let stored = stored(&server, "csdk-video");
    let ts: Vec<u64> = stored.iter().map(|(m, _)| m.producer_ts_ms).collect();
    assert_eq!(ts, v.timecodes);
    for (i, (_, payload)) in stored.iter().enumerate() {
        // The Cluster and its nine Tags, as sent; never the end-of-fragment tag, and no Tags of
        // another fragment.
        assert_eq!(payload[..], [&f[i][0][..], &f[i][1][..]].concat(), "{i}");
    }
    assert_eq!(json!(fragment_number(stored[1].0.number)), first_numbers[1]);

    // ListFragments and GetMedia show each fragment once.
    let list = json!({"StreamName": "csdk-video", "FragmentSelector": {
        "FragmentSelectorType": "PRODUCER_TIMESTAMP",
        "TimestampRange": {"StartTimestamp": 1_795_320_000u64, "EndTimestamp": 1_795_321_000u64}}});
    let r = server.post("/listFragments", &list).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut listed: Vec<String> = r.json()["Fragments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["FragmentNumber"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    let numbers: Vec<String> = stored
        .iter()
        .map(|(m, _)| fragment_number(m.number))
        .collect();
    assert_eq!(listed, numbers);
    let mut media = server
        .open(
            "/getMedia",
            &json!({"StreamName": "csdk-video", "StartSelector": {"StartSelectorType": "EARLIEST"}}),
        )
        .await;
    assert_eq!(media.status, 200);
    let last = cluster_body(&f[3][0]);
    media.read_until(T, |b| occurrences(b, last) == 1).await;
    // Anything that would follow (a second copy) has had time to come.
    while media.read_some(Duration::from_millis(300)).await {}
    for (i, frag) in f.iter().enumerate() {
        assert_eq!(
            occurrences(&media.body, cluster_body(&frag[0])),
            1,
            "fragment {i}"
        );
    }
}

/// A copy is only a copy if its bytes are the same: a fragment with the timestamp of a stored
/// one and one frame changed is stored beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_different_fragment_with_a_stored_timestamp_is_stored() {
    let server = TestServer::start().await;
    server.create_stream("twice", 1).await;
    let (mut m, head) = document();
    let c0 = cluster(&mut m, 1000, 3, 50);
    let eof = end_of_fragment(&mut m);
    let mut c = connect(&server, "twice", "ABSOLUTE").await;
    c.send_chunk(&[head.clone(), c0.clone(), eof.clone()].concat())
        .await;
    c.end_body().await;
    assert_eq!(fragments_acked(&c.wait_end(T).await, true).len(), 1);

    // The same again, then one byte changed.
    let mut changed = c0.clone();
    *changed.last_mut().unwrap() ^= 1;
    for (body, stored_after) in [(&c0, 1), (&changed, 2)] {
        let mut c = connect(&server, "twice", "ABSOLUTE").await;
        c.send_chunk(&[&head[..], &body[..], &eof[..]].concat())
            .await;
        c.end_body().await;
        let acks = c.wait_end(T).await;
        let frags = fragments_acked(&acks, true);
        assert_eq!(frags.len(), 1);
        assert_eq!(frags[0].0, 1000);
        let stored = stored(&server, "twice");
        assert_eq!(stored.len(), stored_after);
        assert_eq!(frags[0].1, fragment_number(stored.last().unwrap().0.number));
        assert_eq!(stored.last().unwrap().1[..], body[..]);
    }
}

// ---- the tag limit ----

/// 10 tags a fragment, the end-of-fragment tag counted: 9 and the end-of-fragment tag are
/// fine, 10 and the end-of-fragment tag are ERROR 4009 for that fragment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_tags_a_fragment_the_end_of_fragment_tag_counted() {
    let server = TestServer::start().await;
    server.create_stream("tagged", 1).await;
    for (n, timecode) in [(9, 0u64), (10, 5000)] {
        let (mut m, head) = document();
        let c0 = cluster(&mut m, timecode, 2, 10);
        for i in 0..n {
            m.write_tags(&[Tag {
                simple_tags: vec![SimpleTag::string(format!("KEY_{i}"), "value")],
                ..Tag::default()
            }])
            .unwrap();
        }
        let tags = m.take();
        let mut c = connect(&server, "tagged", "ABSOLUTE").await;
        c.send_chunk(&[head, c0, tags, end_of_fragment(&mut m)].concat())
            .await;
        c.end_body().await;
        let acks = c.wait_end(T).await;
        if n == 9 {
            assert_eq!(fragments_acked(&acks, true).len(), 1);
        } else {
            let err = the_error(&acks);
            assert_eq!(err["ErrorId"], 4009);
            assert_eq!(err["ErrorCode"], "FRAGMENT_METADATA_LIMIT_REACHED");
            assert_eq!(err["FragmentTimecode"], timecode);
            assert_eq!(count_acks(&acks, "PERSISTED"), 0);
        }
    }
    assert_eq!(stored(&server, "tagged").len(), 1);
}

// ---- shutdown ----

/// At shutdown the session finishes the fragment being received, sends its PERSISTED ack, ends
/// the response and closes the connection right after, although the producer streams on (not
/// `discard_after_end` later): the producer reconnects at once, and nothing it had
/// acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_the_connection_after_the_last_ack() {
    let server = TestServer::start_with_sessions(PutMediaConfig {
        discard_after_end: Duration::from_secs(20),
        ..PutMediaConfig::default()
    })
    .await;
    server.create_stream("stopping", 1).await;
    let s = TcpStream::connect(server.addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let (mut r, mut w) = s.into_split();
    let head = putmedia_head(server.addr, "stopping", "ABSOLUTE", &[]);
    let (mut m, doc) = document();
    w.write_all(&[head, http_chunk(&doc)].concat())
        .await
        .unwrap();
    // The producer: a frame every 10 ms, a new Cluster every 200 ms, until the server closes.
    let producer = tokio::spawn(async move {
        for i in 0..3000u64 {
            let t = (i * 10) as i64;
            let bytes = if i % 20 == 0 {
                m.begin_cluster(i * 10).unwrap();
                m.write_simple_block(1, t, true, &[1; 200]).unwrap();
                m.take()
            } else {
                m.write_simple_block(1, t, false, &[2; 200]).unwrap();
                m.take()
            };
            if w.write_all(&http_chunk(&bytes)).await.is_err() {
                return i;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        3000
    });
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 65536];
    let mut last_chunk_at = None;
    let mut drain = None;
    let acks = |raw: &[u8]| -> Vec<Value> {
        let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            return Vec::new();
        };
        whole_chunks(&raw[at + 4..])
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    };
    let closed_at = loop {
        let n = match tokio::time::timeout(T, r.read(&mut buf)).await {
            Ok(Ok(n)) => n,
            // A reset counts as the close.
            Ok(Err(_)) => 0,
            Err(_) => panic!("the connection stayed open; acks {:?}", acks(&raw)),
        };
        if n == 0 {
            break Instant::now();
        }
        raw.extend_from_slice(&buf[..n]);
        if raw.ends_with(b"\r\n0\r\n\r\n") && last_chunk_at.is_none() {
            last_chunk_at = Some(Instant::now());
        }
        if drain.is_none() && count_acks(&acks(&raw), "PERSISTED") >= 2 {
            let state = server.state.clone();
            drain = Some((
                Instant::now(),
                tokio::spawn(async move { state.kvs.sessions.drain().await }),
            ));
        }
    };
    let (drain_at, drain) = drain.expect("two fragments persisted before the drain");
    tokio::time::timeout(T, drain).await.unwrap().unwrap();
    let last_chunk_at = last_chunk_at.expect("the response ended with its terminating chunk");
    assert!(
        closed_at - last_chunk_at < Duration::from_secs(2),
        "closed {:?} after the last ack",
        closed_at - last_chunk_at
    );
    assert!(closed_at - drain_at < Duration::from_secs(4));
    let sent = tokio::time::timeout(T, producer).await.unwrap().unwrap();
    assert!(sent < 3000);
    // Every fragment begun was persisted, and is stored.
    let acks = acks(&raw);
    let frags = fragments_acked(&acks, true);
    assert!(frags.len() >= 3, "{acks:?}");
    let stored = stored(&server, "stopping");
    assert_eq!(stored.len(), frags.len());
    for ((meta, _), (timecode, number)) in stored.iter().zip(&frags) {
        assert_eq!(meta.producer_ts_ms, *timecode);
        assert_eq!(&fragment_number(meta.number), number);
    }
    assert_eq!(server.state.kvs.sessions.active(), 0);
}
