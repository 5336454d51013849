//! PutMedia over the wire: the official C producer's captures replayed byte for byte, ffmpeg
//! media in odd chunk sizes, every error ack, retention 0, many producers at once; how sessions
//! end otherwise (stream deletion, idle and connection limits, displacement, shutdown, revoked
//! keys, broken bodies) is in [`sessions`]; a producer's reconnect (a resumed session's Tags, a
//! re-sent fragment), the tag limit and closing at shutdown are in [`reconnect`]; the per-key
//! session limit and the minimum-progress rule are in [`limits`].
//!
//! Tests wait on acks, never on fixed sleeps (except where the point is that time passes:
//! idle and connection-age limits, with short limits).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use vigil_api_kvs::media::sessions::PutMediaConfig;
use vigil_api_kvs_common::model::fragment_number;
use vigil_mkv::{
    Demuxer, EbmlHeader, Event, Info, Muxer, MuxerOptions, SimpleTag, Tag, TrackEntry, Video,
};
use vigil_store::FragmentMeta;

use crate::common::{
    PutMediaClient, SlowFs, TestServer, count_acks, ffmpeg_h264, http_chunk, http_chunks,
    kvs_capture, putmedia_head, split_mkv,
};

/// How long a test waits for what it expects.
const T: Duration = Duration::from_secs(30);

const CLUSTER_ID: [u8; 4] = [0x1F, 0x43, 0xB6, 0x75];

mod limits;
mod reconnect;
mod sessions;

// ---- helpers ----

/// Checks the ack framing: every chunk one flat JSON object and a line feed, ≤ 1024 bytes.
fn check_framing(c: &PutMediaClient) {
    for chunk in &c.chunks {
        assert!(chunk.len() <= 1024, "ack of {} bytes", chunk.len());
        assert!(chunk.starts_with(b"{\"EventType\":\""), "{chunk:?}");
        assert!(chunk.ends_with(b"}\n"), "{chunk:?}");
        let v: Value = serde_json::from_slice(chunk).unwrap();
        assert!(
            v.as_object()
                .unwrap()
                .values()
                .all(|v| !v.is_object() && !v.is_array())
        );
    }
}

/// The fragments a session's acks describe, in order of their BUFFERING acks: (timecode,
/// number). Checks that each got BUFFERING, RECEIVED and (if `persisted`) PERSISTED, in that
/// order, with the same timecode, and no other ack; IDLE acks are ignored, ERROR acks are not
/// allowed.
fn fragments_acked(acks: &[Value], persisted: bool) -> Vec<(u64, String)> {
    let mut order: Vec<String> = Vec::new();
    let mut events: std::collections::HashMap<String, Vec<(String, u64)>> = Default::default();
    for a in acks {
        let kind = a["EventType"].as_str().unwrap();
        match kind {
            "IDLE" => {
                assert_eq!(a, &json!({"EventType": "IDLE"}));
                continue;
            }
            "BUFFERING" | "RECEIVED" | "PERSISTED" => {}
            other => panic!("unexpected ack {other}: {acks:?}"),
        }
        let number = a["FragmentNumber"].as_str().unwrap().to_owned();
        let timecode = a["FragmentTimecode"].as_u64().unwrap();
        if !events.contains_key(&number) {
            order.push(number.clone());
        }
        events
            .entry(number)
            .or_default()
            .push((kind.to_owned(), timecode));
    }
    let expected: &[&str] = if persisted {
        &["BUFFERING", "RECEIVED", "PERSISTED"]
    } else {
        &["BUFFERING", "RECEIVED"]
    };
    order
        .into_iter()
        .map(|n| {
            let ev = &events[&n];
            let kinds: Vec<&str> = ev.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(kinds, expected, "fragment {n}: {acks:?}");
            assert!(ev.iter().all(|(_, t)| *t == ev[0].1), "{ev:?}");
            (ev[0].1, n)
        })
        .collect()
}

/// Every stored fragment of a stream, in number order, with its payload.
fn stored(server: &TestServer, stream: &str) -> Vec<(FragmentMeta, Bytes)> {
    let id = server.stream_id(stream);
    let store = &server.state.store;
    store
        .fragments_after(id, None, 10_000)
        .unwrap()
        .into_iter()
        .map(|m| (m, store.read_fragment(id, m.number).unwrap().payload))
        .collect()
}

fn track(number: u64) -> TrackEntry {
    TrackEntry {
        number,
        uid: number,
        track_type: 1,
        codec_id: "V_MPEG4/ISO/AVC".into(),
        video: Some(Video {
            pixel_width: 64,
            pixel_height: 48,
            ..Video::default()
        }),
        ..TrackEntry::default()
    }
}

/// A KVS-style document (unknown sizes, one video track) with its header written.
fn document() -> (Muxer, Vec<u8>) {
    let mut m = Muxer::new(MuxerOptions::streaming());
    m.begin_document(&EbmlHeader::kvs(), &Info::default(), &[track(1)])
        .unwrap();
    let head = m.take();
    (m, head)
}

/// A Cluster at `timecode` of `frames` frames of `size` bytes, 40 ms apart, on track 1.
fn cluster(m: &mut Muxer, timecode: u64, frames: usize, size: usize) -> Vec<u8> {
    m.begin_cluster(timecode).unwrap();
    for i in 0..frames {
        let t = timecode as i64 + 40 * i as i64;
        m.write_simple_block(1, t, i == 0, &vec![i as u8; size])
            .unwrap();
    }
    m.take()
}

fn end_of_fragment(m: &mut Muxer) -> Vec<u8> {
    m.write_tags(&[Tag {
        simple_tags: vec![SimpleTag::string("AWS_KINESISVIDEO_END_OF_FRAGMENT", "")],
        ..Tag::default()
    }])
    .unwrap();
    m.take()
}

fn the_error(acks: &[Value]) -> &Value {
    let errors: Vec<&Value> = acks.iter().filter(|a| a["EventType"] == "ERROR").collect();
    assert_eq!(errors.len(), 1, "{acks:?}");
    errors[0]
}

async fn connect(server: &TestServer, stream: &str, timecode_type: &str) -> PutMediaClient {
    let head = putmedia_head(server.addr, stream, timecode_type, &[]);
    let mut c = PutMediaClient::connect(server.addr, &head).await;
    assert_eq!(c.wait_status(T).await, 200);
    c
}

// ---- the official C producer ----

/// What a capture must give.
struct Capture {
    folder: &'static str,
    stream: &'static str,
    timecodes: [u64; 2],
    producer_ts: [u64; 2],
    durations: [u32; 2],
    frames: [usize; 2],
    /// Producer Tags elements stored with each fragment.
    tags: [usize; 2],
}

async fn replay(cap: Capture) {
    let server = TestServer::start().await;
    server.create_stream(cap.stream, 2).await;
    let read = |f: &str| std::fs::read(kvs_capture(&format!("{}/{f}", cap.folder))).unwrap();
    let (head, wire, body) = (
        read("putmedia-headers.txt"),
        read("putmedia-wire.bin"),
        read("putmedia-body.mkv"),
    );
    let bytes_before = vigil_api_kvs::metrics::metrics()
        .putmedia_bytes
        .get(&[cap.stream]);
    let (wire, terminator) = wire.split_at(wire.len() - 5);
    assert_eq!(terminator, b"0\r\n\r\n");

    let mut c = PutMediaClient::connect(server.addr, &head).await;
    assert!(c.send(wire).await);
    // As the producer does, the body ends only after the last fragment's PERSISTED ack: the
    // end-of-fragment tag must complete it, and acks flow while the body is still open.
    c.wait_acks(T, |a| count_acks(a, "PERSISTED") == 2).await;
    assert!(!c.ended);
    assert!(c.send(terminator).await);
    let acks = c.wait_end(T).await;

    // `Expect: 100-continue` is answered before the 200.
    assert_eq!(c.heads.len(), 2, "{:?}", c.heads);
    assert!(c.heads[0].starts_with(b"HTTP/1.1 100 Continue\r\n\r\n"));
    assert!(c.heads[1].starts_with(b"HTTP/1.1 200 OK\r\n"));
    let head1 = String::from_utf8_lossy(&c.heads[1]).to_ascii_lowercase();
    assert!(head1.contains("transfer-encoding: chunked"), "{head1}");
    check_framing(&c);
    assert_eq!(acks.len(), 6, "{acks:?}");
    let frags = fragments_acked(&acks, true);
    assert_eq!(frags.iter().map(|f| f.0).collect::<Vec<_>>(), cap.timecodes);
    assert!(frags[0].1 < frags[1].1, "fragment numbers sort as strings");

    // The store holds what the acks said, as `media/mod.rs` defines it.
    let id = server.stream_id(cap.stream);
    let stored = stored(&server, cap.stream);
    assert_eq!(stored.len(), 2);
    let expected_header = split_mkv(&body).header;
    let body_clusters: Vec<&[u8]> = Demuxer::read_all(&body)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            Event::ClusterEnd { offset, end } => Some(&body[offset as usize..end as usize]),
            _ => None,
        })
        .collect();
    for (i, (meta, payload)) in stored.iter().enumerate() {
        assert_eq!(fragment_number(meta.number), frags[i].1);
        assert_eq!(meta.producer_ts_ms, cap.producer_ts[i], "fragment {i}");
        assert_eq!(meta.duration_ms, cap.durations[i], "fragment {i}");
        assert_eq!(meta.size as usize, payload.len());
        assert!(payload.starts_with(&CLUSTER_ID));
        assert!(
            payload.starts_with(body_clusters[i]),
            "the Cluster as ingested"
        );
        let header = server.state.store.header(id, meta.header_id).unwrap();
        assert_eq!(header[..], expected_header[..]);
        let doc = [&header[..], &payload[..]].concat();
        let events = Demuxer::read_all(&doc).unwrap();
        let frames = events
            .iter()
            .filter(|e| matches!(e, Event::Frame(_)))
            .count();
        assert_eq!(frames, cap.frames[i], "fragment {i}");
        let tags: Vec<&Vec<Tag>> = events
            .iter()
            .filter_map(|e| match e {
                Event::Tags { tags, .. } => Some(tags),
                _ => None,
            })
            .collect();
        assert_eq!(tags.len(), cap.tags[i], "fragment {i}");
        for st in tags
            .iter()
            .flat_map(|t| t.iter())
            .flat_map(|t| &t.simple_tags)
        {
            assert!(st.name.starts_with("TEST_KEY_"), "{}", st.name);
        }
    }
    let m = vigil_api_kvs::metrics::metrics();
    assert_eq!(
        m.putmedia_bytes.get(&[cap.stream]) - bytes_before,
        body.len() as u64,
        "body bytes counted"
    );
    let text = vigil_api_common::metrics::global().render_prometheus();
    assert!(text.contains(&format!(
        "vigil_putmedia_fragments_total{{stream=\"{}\"}}",
        cap.stream
    )));
    assert!(text.contains("vigil_putmedia_acks_total{type=\"PERSISTED\"}"));
    // The session is over.
    assert_eq!(server.state.kvs.sessions.active(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_the_c_producer_video_capture() {
    replay(Capture {
        folder: "video",
        stream: "csdk-video",
        timecodes: [1_795_320_641_601, 1_795_320_643_401],
        producer_ts: [1_795_320_641_601, 1_795_320_643_401],
        // 45 frames 40 ms apart, then 23.
        durations: [1800, 920],
        frames: [45, 23],
        // The nine TEST_KEY Tags after each Cluster; not the end-of-fragment one.
        tags: [9, 9],
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_the_c_producer_audio_video_capture() {
    replay(Capture {
        folder: "av",
        stream: "csdk-av",
        // RELATIVE: the acks echo the raw timecodes; the store adds the start timestamp.
        timecodes: [0, 1800],
        producer_ts: [1_795_320_646_897, 1_795_320_648_697],
        durations: [1800, 920],
        frames: [45 + 90, 23 + 44],
        tags: [0, 0],
    })
    .await;
}

// ---- ffmpeg media ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_media_in_odd_chunk_sizes() {
    let (data, media) = ffmpeg_h264();
    let server = TestServer::start().await;
    server.create_stream("ffmpeg-odd", 24).await;
    let mut c = connect(&server, "ffmpeg-odd", "ABSOLUTE").await;
    // Sizes that cut through every kind of element.
    let sizes = [
        1, 2, 3, 5, 7, 11, 13, 17, 4093, 19, 23, 29, 1021, 31, 37, 41,
    ];
    assert!(c.send(&http_chunks(data, &sizes)).await);
    assert!(c.end_body().await);
    let acks = c.wait_end(T).await;
    check_framing(&c);
    let frags = fragments_acked(&acks, true);
    let timecodes: Vec<u64> = media.clusters.iter().map(|c| c.timecode_ms).collect();
    assert_eq!(frags.iter().map(|f| f.0).collect::<Vec<_>>(), timecodes);

    // ffmpeg writes a Tags element (ENCODER, DURATION) before the Clusters: it attaches to the
    // first fragment, after its Cluster.
    let early_tags: Vec<&[u8]> = Demuxer::read_all(data)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            Event::Tags { span, .. } => {
                Some(&data[span.offset as usize..span.end().unwrap() as usize])
            }
            _ => None,
        })
        .collect();
    assert_eq!(early_tags.len(), 1);
    let stored = stored(&server, "ffmpeg-odd");
    assert_eq!(stored.len(), media.clusters.len());
    for (i, ((meta, payload), cluster)) in stored.iter().zip(&media.clusters).enumerate() {
        assert_eq!(fragment_number(meta.number), frags[i].1);
        assert_eq!(meta.producer_ts_ms, cluster.timecode_ms);
        assert_eq!(meta.duration_ms, cluster.duration_ms, "fragment {i}");
        let expected = if i == 0 {
            [&cluster.bytes[..], early_tags[0]].concat()
        } else {
            cluster.bytes.to_vec()
        };
        assert_eq!(payload[..], expected[..], "fragment {i}");
        let header = server
            .state
            .store
            .header(meta.stream, meta.header_id)
            .unwrap();
        assert_eq!(header[..], media.header[..]);
    }
}

// ---- errors ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_mkv_ends_the_session_and_keeps_earlier_fragments() {
    let (data, media) = ffmpeg_h264();
    let server = TestServer::start().await;
    server.create_stream("malformed", 24).await;
    let cluster_ends: Vec<usize> = Demuxer::read_all(data)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            Event::ClusterEnd { end, .. } => Some(end as usize),
            _ => None,
        })
        .collect();
    // Three Clusters, then bytes that are no element at all.
    let body = [
        &data[..cluster_ends[2]],
        &[0u8; 64][..],
        &data[cluster_ends[2]..],
    ]
    .concat();
    let mut c = connect(&server, "malformed", "ABSOLUTE").await;
    assert!(c.send(&http_chunks(&body, &[997])).await);
    c.end_body().await;
    let acks = c.wait_end(T).await;
    check_framing(&c);

    let err = the_error(&acks);
    assert_eq!(err["ErrorId"], 4006);
    assert_eq!(err["ErrorCode"], "INVALID_MKV_DATA");
    // The third fragment (still collecting its Tags) is dropped; the first two are kept.
    assert_eq!(err["FragmentTimecode"], media.clusters[2].timecode_ms);
    let dropped = err["FragmentNumber"].as_str().unwrap().to_owned();
    let ok: Vec<Value> = acks
        .iter()
        .filter(|a| a["FragmentNumber"] != dropped.as_str())
        .cloned()
        .collect();
    let frags = fragments_acked(&ok, true);
    assert_eq!(frags.len(), 2);
    let stored = stored(&server, "malformed");
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[1].1[..], media.clusters[1].bytes[..]);
    assert_eq!(server.state.kvs.sessions.active(), 0);
    let metrics = vigil_api_common::metrics::global().render_prometheus();
    assert!(metrics.contains(
        "vigil_putmedia_errors_total{error_id=\"4006\",error_code=\"INVALID_MKV_DATA\"}"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragment_acks_can_be_turned_off() {
    let server = TestServer::start().await;
    server.create_stream("quiet-acks", 1).await;
    let (mut m, head) = document();
    let body = [
        head,
        cluster(&mut m, 0, 3, 10),
        cluster(&mut m, 1000, 3, 10),
    ]
    .concat();
    let mut h = putmedia_head(server.addr, "quiet-acks", "ABSOLUTE", &[]);
    let text = String::from_utf8(h).unwrap();
    h = text
        .replace(
            "x-amzn-fragment-acknowledgment-required: 1",
            "x-amzn-fragment-acknowledgment-required: 0",
        )
        .into_bytes();
    let mut c = PutMediaClient::connect(server.addr, &h).await;
    assert_eq!(c.wait_status(T).await, 200);
    c.send_chunk(&body).await;
    c.end_body().await;
    assert!(c.wait_end(T).await.is_empty());
    assert_eq!(stored(&server, "quiet-acks").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fragment_over_50_mb_is_refused() {
    let server = TestServer::start().await;
    server.create_stream("big", 1).await;

    // Frames that add up to more than 50 MB.
    let (mut m, head) = document();
    let small = cluster(&mut m, 0, 2, 100);
    let big = cluster(&mut m, 1000, 5, 10_500_000);
    let mut c = connect(&server, "big", "ABSOLUTE").await;
    c.send_chunk(&[head.clone(), small].concat()).await;
    let sent = c.send(&http_chunks(&big, &[1 << 20])).await;
    if sent {
        c.end_body().await;
    }
    let acks = c.wait_end(T).await;
    let err = the_error(&acks);
    assert_eq!(err["ErrorId"], 4001);
    assert_eq!(err["ErrorCode"], "MAX_FRAGMENT_SIZE_REACHED");
    assert_eq!(err["FragmentTimecode"], 1000);
    assert!(err["FragmentNumber"].is_string());
    assert_eq!(count_acks(&acks, "PERSISTED"), 1);
    assert_eq!(stored(&server, "big").len(), 1);

    // One frame over 50 MB: refused from its header alone.
    let (mut m, head) = document();
    let start = cluster(&mut m, 0, 1, 10);
    let mut huge = Vec::new();
    vigil_mkv::ebml::write_id(&mut huge, vigil_mkv::ids::SIMPLE_BLOCK);
    vigil_mkv::ebml::write_vint(&mut huge, 60_000_000);
    huge.extend_from_slice(&[0x81, 0, 40, 0x80, 1, 2, 3]);
    let mut c = connect(&server, "big", "ABSOLUTE").await;
    c.send_chunk(&[head, start, huge].concat()).await;
    let acks = c.wait_end(T).await;
    let err = the_error(&acks);
    assert_eq!(err["ErrorId"], 4001);
    assert_eq!(err["FragmentTimecode"], 0);
    assert_eq!(stored(&server, "big").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timecodes_going_backwards_are_refused() {
    let server = TestServer::start().await;
    server.create_stream("backwards", 1).await;
    let (mut m, head) = document();
    let c1 = cluster(&mut m, 5000, 3, 10);
    let c2 = cluster(&mut m, 4000, 3, 10);
    let mut c = connect(&server, "backwards", "ABSOLUTE").await;
    c.send_chunk(&[head, c1, c2].concat()).await;
    c.end_body().await;
    let acks = c.wait_end(T).await;
    let err = the_error(&acks);
    assert_eq!(
        err,
        &json!({"EventType": "ERROR", "FragmentTimecode": 4000, "ErrorId": 4004,
                "ErrorCode": "FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS"})
    );
    let ok: Vec<Value> = acks
        .iter()
        .filter(|a| a["EventType"] != "ERROR")
        .cloned()
        .collect();
    assert_eq!(fragments_acked(&ok, true)[0].0, 5000);
    assert_eq!(stored(&server, "backwards").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_on_an_undeclared_track_is_refused() {
    let server = TestServer::start().await;
    server.create_stream("tracks", 1).await;
    let (mut m, head) = document();
    m.begin_cluster(0).unwrap();
    m.write_simple_block(1, 0, true, &[1; 10]).unwrap();
    m.write_simple_block(3, 40, false, &[1; 10]).unwrap();
    let body = [head, m.take()].concat();
    let mut c = connect(&server, "tracks", "ABSOLUTE").await;
    c.send_chunk(&body).await;
    c.end_body().await;
    let acks = c.wait_end(T).await;
    assert_eq!(acks[0]["EventType"], "BUFFERING");
    let err = the_error(&acks);
    assert_eq!(err["ErrorId"], 4010);
    assert_eq!(err["ErrorCode"], "TRACK_NUMBER_MISMATCH");
    assert_eq!(err["FragmentNumber"], acks[0]["FragmentNumber"]);
    assert_eq!(err["FragmentTimecode"], 0);
    assert_eq!(acks.len(), 2);
    assert!(stored(&server, "tracks").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_before_the_200_are_json() {
    let server = TestServer::start().await;
    server.create_stream("exists", 1).await;
    let close = [("Connection", "close")];
    let body = b"0\r\n\r\n";

    let head = putmedia_head(server.addr, "missing", "ABSOLUTE", &close);
    let r = server.raw(&[head, body.to_vec()].concat()).await;
    r.assert_error(404, "ResourceNotFoundException");

    for (tc_type, extra) in [
        ("SOMETIMES", vec![]),
        (
            "RELATIVE",
            vec![("x-amzn-producer-start-timestamp", "yesterday")],
        ),
        (
            "ABSOLUTE",
            vec![("x-amzn-fragment-acknowledgment-required", "maybe")],
        ),
    ] {
        let mut extra = extra;
        extra.push(("Connection", "close"));
        let mut head = putmedia_head(server.addr, "exists", tc_type, &extra);
        if extra.len() > 1 {
            // The header given last replaces the default one the helper wrote.
            let text = String::from_utf8(head).unwrap();
            let name = extra[0].0;
            let mut lines: Vec<&str> = text.split("\r\n").collect();
            let first = lines.iter().position(|l| l.starts_with(name)).unwrap();
            lines.remove(first);
            head = lines.join("\r\n").into_bytes();
        }
        let r = server.raw(&[head, body.to_vec()].concat()).await;
        r.assert_error(400, "InvalidArgumentException");
    }

    // ABSOLUTE sessions do not use the start timestamp: a bad one is ignored.
    let mut head = putmedia_head(server.addr, "exists", "ABSOLUTE", &[]);
    let text = String::from_utf8(head).unwrap();
    head = text
        .replace(
            "x-amzn-producer-start-timestamp: 1700000000.5",
            "x-amzn-producer-start-timestamp: yesterday",
        )
        .into_bytes();
    let mut c = PutMediaClient::connect(server.addr, &head).await;
    assert_eq!(c.wait_status(T).await, 200);
    let (mut m, doc) = document();
    c.send_chunk(&[doc, cluster(&mut m, 7000, 2, 10)].concat())
        .await;
    c.end_body().await;
    let acks = c.wait_end(T).await;
    assert_eq!(fragments_acked(&acks, true)[0].0, 7000);

    // No timecode type at all.
    let head = "POST /putMedia HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked\r\n\
                x-amzn-stream-name: exists\r\nConnection: close\r\n\r\n0\r\n\r\n";
    server
        .raw(head.as_bytes())
        .await
        .assert_error(400, "InvalidArgumentException");
}

/// Failures of some sessions leave another stream's producer alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_do_not_disturb_other_streams() {
    let (data, media) = ffmpeg_h264();
    let server = TestServer::start().await;
    server.create_stream("steady", 24).await;
    server.create_stream("faulty", 24).await;
    let mut good = connect(&server, "steady", "ABSOLUTE").await;
    let half = data.len() / 2;
    good.send(&http_chunks(&data[..half], &[4096])).await;
    good.wait_acks(T, |a| count_acks(a, "PERSISTED") >= 2).await;

    // Meanwhile, on the other stream: malformed data, backwards timecodes, a bad track, too
    // many tags, too many tracks.
    let (mut m, head) = document();
    let c1 = cluster(&mut m, 5000, 2, 10);
    let c2 = cluster(&mut m, 4000, 2, 10);
    let mut bad_track = Muxer::new(MuxerOptions::streaming());
    bad_track
        .begin_document(&EbmlHeader::kvs(), &Info::default(), &[track(1)])
        .unwrap();
    bad_track.begin_cluster(0).unwrap();
    bad_track.write_simple_block(2, 0, true, &[0]).unwrap();
    let (mut tagged, tagged_head) = document();
    let tagged_cluster = cluster(&mut tagged, 0, 2, 10);
    let eleven: Vec<Tag> = (0..11)
        .map(|i| Tag {
            simple_tags: vec![SimpleTag::string(format!("KEY_{i}"), "value")],
            ..Tag::default()
        })
        .collect();
    tagged.write_tags(&eleven).unwrap();
    let mut four = Muxer::new(MuxerOptions::streaming());
    four.begin_document(
        &EbmlHeader::kvs(),
        &Info::default(),
        &[track(1), track(2), track(3), track(4)],
    )
    .unwrap();
    let bodies = [
        [&head[..], &[0x00; 32][..]].concat(),
        [head.clone(), c1, c2].concat(),
        bad_track.take(),
        [tagged_head, tagged_cluster, tagged.take()].concat(),
        four.take(),
    ];
    let mut faulty = Vec::new();
    for body in bodies {
        let mut c = connect(&server, "faulty", "ABSOLUTE").await;
        c.send_chunk(&body).await;
        c.end_body().await;
        faulty.push(c);
    }
    let mut ids = Vec::new();
    for c in &mut faulty {
        let acks = c.wait_end(T).await;
        ids.push(the_error(&acks)["ErrorId"].as_u64().unwrap());
    }
    assert_eq!(ids, [4006, 4004, 4010, 4009, 4012]);
    assert!(
        stored(&server, "faulty").len() == 1,
        "only the 5000 fragment"
    );

    // The steady producer carries on.
    good.send(&http_chunks(&data[half..], &[4096])).await;
    good.end_body().await;
    let acks = good.wait_end(T).await;
    assert_eq!(fragments_acked(&acks, true).len(), media.clusters.len());
    assert_eq!(stored(&server, "steady").len(), media.clusters.len());
}

// ---- retention, many producers ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_zero_gets_no_persisted_acks() {
    let (data, media) = ffmpeg_h264();
    let server = TestServer::start().await;
    let arn = server.create_stream("ephemeral", 0).await;
    // By ARN this time.
    let mut c = connect(&server, &arn, "RELATIVE").await;
    c.send(&http_chunks(data, &[8192])).await;
    c.end_body().await;
    let acks = c.wait_end(T).await;
    check_framing(&c);
    assert_eq!(count_acks(&acks, "PERSISTED"), 0);
    let frags = fragments_acked(&acks, false);
    assert_eq!(frags.len(), media.clusters.len());
    assert_eq!(server.state.kvs.sessions.active(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_producers_at_once() {
    let (data, media) = ffmpeg_h264();
    let server = std::sync::Arc::new(TestServer::start().await);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let server = server.clone();
        tasks.spawn(async move {
            let name = format!("crowd-{i}");
            server.create_stream(&name, 1).await;
            let mut c = connect(&server, &name, "ABSOLUTE").await;
            // Each producer cuts its chunks differently.
            c.send(&http_chunks(data, &[1000 + 97 * i, 13 + i])).await;
            c.end_body().await;
            let acks = c.wait_end(T).await;
            (name, fragments_acked(&acks, true).len())
        });
    }
    while let Some(r) = tasks.join_next().await {
        let (name, n) = r.unwrap();
        assert_eq!(n, media.clusters.len(), "{name}");
        let stored = stored(&server, &name);
        assert_eq!(stored.len(), media.clusters.len(), "{name}");
        for ((_, payload), cluster) in stored.iter().zip(&media.clusters).skip(1) {
            assert_eq!(payload[..], cluster.bytes[..], "{name}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_stream_while_the_body_is_open() {
    // One frame at a time: each fragment's acks come while the request goes on.
    let server = TestServer::start().await;
    server.create_stream("live", 1).await;
    let (mut m, head) = document();
    let mut c = connect(&server, "live", "RELATIVE").await;
    c.send_chunk(&head).await;
    for f in 0..3u64 {
        let bytes = cluster(&mut m, f * 1000, 2, 50);
        c.send(&http_chunk(&bytes)).await;
        c.wait_acks(T, |a| count_acks(a, "BUFFERING") == f as usize + 1)
            .await;
        c.wait_acks(T, |a| count_acks(a, "PERSISTED") == f as usize)
            .await;
    }
    c.send_chunk(&end_of_fragment(&mut m)).await;
    c.wait_acks(T, |a| count_acks(a, "PERSISTED") == 3).await;
    c.end_body().await;
    let acks = c.wait_end(T).await;
    let frags = fragments_acked(&acks, true);
    assert_eq!(
        frags.iter().map(|f| f.0).collect::<Vec<_>>(),
        [0, 1000, 2000]
    );
    // RELATIVE: the start timestamp header (1700000000.5) plus the timecode.
    let stored = stored(&server, "live");
    let ts: Vec<u64> = stored.iter().map(|(m, _)| m.producer_ts_ms).collect();
    assert_eq!(
        ts,
        [1_700_000_000_500, 1_700_000_001_500, 1_700_000_002_500]
    );
}

// ---- memory and limits ----

/// The most fragments received and not yet acknowledged as durable at any point of a
/// session's acks (RECEIVED acks so far minus PERSISTED and ERROR ones).
fn most_in_flight(acks: &[Value]) -> i64 {
    let mut n = 0i64;
    let mut most = 0;
    for a in acks {
        match a["EventType"].as_str() {
            Some("RECEIVED") => n += 1,
            Some("PERSISTED" | "ERROR") => n -= 1,
            _ => {}
        }
        most = most.max(n);
    }
    most
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_faster_than_the_disk_is_held_back() {
    let server = TestServer::start_custom(
        PutMediaConfig {
            max_fragments_in_flight: 2,
            ..PutMediaConfig::default()
        },
        Arc::new(vigil_server::Anonymous),
        Arc::new(SlowFs {
            delay: Duration::from_millis(20),
        }),
    )
    .await;
    server.create_stream("bulk", 1).await;
    // A file uploaded at once: many small fragments in one request chunk.
    let (mut m, head) = document();
    let n = 40;
    let mut body = head;
    for i in 0..n {
        body.extend(cluster(&mut m, i * 100, 2, 1000));
    }
    body.extend(end_of_fragment(&mut m));
    let mut c = connect(&server, "bulk", "ABSOLUTE").await;
    assert!(c.send_chunk(&body).await);
    c.end_body().await;
    let acks = c.wait_end(T).await;
    check_framing(&c);
    let frags = fragments_acked(&acks, true);
    assert_eq!(frags.len(), n as usize);
    // Two fragments persisting, and one received waiting for its turn: never more.
    let most = most_in_flight(&acks);
    assert!(
        most <= 3,
        "{most} fragments received and not yet durable at once"
    );
    // PERSISTED acks in fragment order.
    let persisted: Vec<&str> = acks
        .iter()
        .filter(|a| a["EventType"] == "PERSISTED")
        .map(|a| a["FragmentNumber"].as_str().unwrap())
        .collect();
    let numbers: Vec<&str> = frags.iter().map(|f| f.1.as_str()).collect();
    assert_eq!(persisted, numbers);
    assert_eq!(stored(&server, "bulk").len(), n as usize);
    assert_eq!(server.state.kvs.sessions.active(), 0);
}

// ---- reserved tags ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_cannot_inject_reserved_tags() {
    let server = TestServer::start().await;
    server.create_stream("forger", 1).await;
    // A tag the KVS parser library reads after a Cluster (the continuation token), beside a
    // custom tag: refused, and the fragment with it.
    let (mut m, head) = document();
    let c1 = cluster(&mut m, 0, 2, 10);
    m.write_tags(&[Tag {
        simple_tags: vec![
            SimpleTag::string("CAMERA", "front"),
            SimpleTag::string("AWS_KINESISVIDEO_CONTINUATION_TOKEN", "1"),
        ],
        ..Tag::default()
    }])
    .unwrap();
    let mut c = connect(&server, "forger", "ABSOLUTE").await;
    c.send_chunk(&[head, c1, m.take()].concat()).await;
    c.end_body().await;
    let acks = c.wait_end(T).await;
    let err = the_error(&acks);
    assert_eq!(err["ErrorId"], 4009);
    assert_eq!(err["ErrorCode"], "FRAGMENT_METADATA_LIMIT_REACHED");
    assert_eq!(count_acks(&acks, "PERSISTED"), 0);
    assert!(stored(&server, "forger").is_empty());

    // The reserved tags producers send are accepted and not stored; custom ones are.
    let (mut m, head) = document();
    let c1 = cluster(&mut m, 0, 2, 10);
    m.write_tags(&[Tag {
        simple_tags: vec![
            SimpleTag::string("AWS_KINESISVIDEO_IMAGE_GENERATION", ""),
            SimpleTag::string("AWS_KINESISVIDEO_IMAGE_PREFIX", "cam1/"),
            SimpleTag::string("CAMERA", "front"),
        ],
        ..Tag::default()
    }])
    .unwrap();
    let tags = m.take();
    let mut c = connect(&server, "forger", "ABSOLUTE").await;
    c.send_chunk(&[head.clone(), c1.clone(), tags, end_of_fragment(&mut m)].concat())
        .await;
    c.end_body().await;
    let acks = c.wait_end(T).await;
    assert_eq!(fragments_acked(&acks, true).len(), 1);
    let stored = stored(&server, "forger");
    let (_, payload) = &stored[0];
    assert!(payload.starts_with(&c1));
    let names: Vec<String> = Demuxer::read_all(&[&head[..], &payload[..]].concat())
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            Event::Tags { tags, .. } => Some(tags),
            _ => None,
        })
        .flatten()
        .flat_map(|t| t.simple_tags)
        .map(|st| st.name)
        .collect();
    assert_eq!(names, ["CAMERA"]);
}

// ---- timecodes: the previous fragment's latest frame ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fragment_overlapping_the_previous_one_is_refused() {
    let server = TestServer::start().await;
    server.create_stream("overlap", 1).await;
    // Frames at 5000 … 5160 ms; the next Cluster starts at 5100, after the first one's start
    // but before its last frame.
    let (mut m, head) = document();
    let c1 = cluster(&mut m, 5000, 5, 10);
    let c2 = cluster(&mut m, 5100, 3, 10);
    let mut c = connect(&server, "overlap", "ABSOLUTE").await;
    c.send_chunk(&[head, c1, c2].concat()).await;
    c.end_body().await;
    let acks = c.wait_end(T).await;
    let err = the_error(&acks);
    assert_eq!(
        err,
        &json!({"EventType": "ERROR", "FragmentTimecode": 5100, "ErrorId": 4004,
                "ErrorCode": "FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS"})
    );
    assert_eq!(stored(&server, "overlap").len(), 1);

    // Starting one frame interval after the last frame (as the C producer does) is fine.
    let (mut m, head) = document();
    let c1 = cluster(&mut m, 6000, 5, 10);
    let c2 = cluster(&mut m, 6200, 3, 10);
    let mut c = connect(&server, "overlap", "ABSOLUTE").await;
    c.send_chunk(&[head, c1, c2].concat()).await;
    c.end_body().await;
    let acks = c.wait_end(T).await;
    assert_eq!(fragments_acked(&acks, true).len(), 2);
}
