//! GetMedia, ListFragments and GetMediaForFragmentList over the wire.
//!
//! Fragments are written straight into the store, as PutMedia stores them (the `media`
//! module's contract): the track header and the Clusters of a file ffmpeg made.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use vigil_api_kvs_common::document as tags;
use vigil_api_kvs_common::model::{fragment_number, ms_to_decimal_seconds};
use vigil_mkv::{Demuxer, Event};
use vigil_store::{FragmentMeta, StreamRef};

use crate::common::{
    Cluster, Media, Revocable, StreamingResponse, TestServer, ffmpeg_h264, ffprobe_packets,
    ffprobe_packets_and_errors,
};

/// How long a test waits for bytes it expects.
const T: Duration = Duration::from_secs(30);

/// The reader gauge is process-wide: the test that checks it runs alone among the tests
/// that open GetMedia readers.
static READER_GAUGE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// A stream with the ffmpeg media's track header registered.
struct Stream {
    id: u64,
    header_id: u64,
    arn: String,
}

async fn stream(server: &TestServer, name: &str, retention_hours: u32) -> Stream {
    let arn = server.create_stream(name, retention_hours).await;
    let store = &server.state.store;
    let id = store.stream(StreamRef::Name(name)).unwrap().id;
    let header_id = store.register_header(id, &ffmpeg_h264().1.header).unwrap();
    Stream { id, header_id, arn }
}

/// Writes one Cluster as a fragment and waits until it is durable.
async fn put(server: &TestServer, s: &Stream, c: &Cluster) -> FragmentMeta {
    let store = &server.state.store;
    let mut w = store
        .begin_fragment(s.id, s.header_id, c.timecode_ms)
        .unwrap();
    w.append(c.bytes.clone()).unwrap();
    let meta = w.finish(c.duration_ms).unwrap().wait().await.unwrap();
    // Distinct server timestamps, so that a timestamp names one fragment.
    tokio::time::sleep(Duration::from_millis(2)).await;
    meta
}

async fn put_all(server: &TestServer, s: &Stream, clusters: &[Cluster]) -> Vec<FragmentMeta> {
    let mut metas = Vec::new();
    for c in clusters {
        metas.push(put(server, s, c).await);
    }
    metas
}

fn media() -> &'static Media {
    &ffmpeg_h264().1
}

async fn get_media(server: &TestServer, name: &str, selector: Value) -> StreamingResponse {
    let r = server
        .open(
            "/getMedia",
            &json!({"StreamName": name, "StartSelector": selector}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("video/webm"));
    r
}

/// ffprobe's packets of concatenated documents. ffmpeg (5.1) reads every document, but warns
/// at each unknown-size Segment after the first ("Found unknown-length element with ID
/// 0x18538067 … for which no syntax for parsing is available"): it reads the next EBML header
/// inside the unknown-size Segment before it. That warning is allowed, nothing else.
fn ffprobe_concatenated(body: &[u8]) -> Vec<(usize, i64, bool)> {
    let (packets, errors) = ffprobe_packets_and_errors(body);
    for line in errors.lines() {
        assert!(
            line.contains("Found unknown-length element with ID 0x18538067"),
            "ffprobe: {line}"
        );
    }
    packets
}

/// Occurrences of `needle` in `hay`.
fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

/// Whether `hay` contains `needle`.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Reads until `n` fragments are complete (their end tags came).
async fn read_fragments(r: &mut StreamingResponse, n: usize) {
    // Count incrementally: the body can be many megabytes.
    let token = tags::CONTINUATION_TOKEN.as_bytes();
    let (mut scanned, mut seen) = (0usize, 0usize);
    r.read_until(T, |b| {
        let from = scanned.saturating_sub(token.len() - 1);
        seen += count(&b[from..], token);
        scanned = b.len();
        seen >= n
    })
    .await;
}

/// One EBML document of the output.
#[derive(Debug, Default)]
struct Doc {
    /// Every SimpleTag, in order.
    tags: Vec<(String, String)>,
    frames: Vec<(i64, bool, Bytes)>,
}

impl Doc {
    fn tag(&self, name: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn number(&self) -> &str {
        self.tag(tags::FRAGMENT_NUMBER).unwrap()
    }

    fn complete(&self) -> bool {
        self.tag(tags::CONTINUATION_TOKEN).is_some()
    }
}

/// Demuxes output into documents (a last one may be partial).
fn docs(body: &[u8]) -> Vec<Doc> {
    let mut d = Demuxer::new();
    d.push(body);
    let mut docs: Vec<Doc> = Vec::new();
    while let Some(e) = d.pull() {
        match e.unwrap() {
            Event::EbmlHeader { .. } => docs.push(Doc::default()),
            Event::Tags { tags, .. } => {
                let doc = docs.last_mut().unwrap();
                for t in tags.iter().flat_map(|t| &t.simple_tags) {
                    doc.tags
                        .push((t.name.clone(), t.value.as_str().unwrap_or("").to_owned()));
                }
            }
            Event::Frame(f) => {
                docs.last_mut()
                    .unwrap()
                    .frames
                    .push((f.timecode, f.keyframe, f.data.clone()));
            }
            _ => {}
        }
    }
    docs
}

fn numbers(docs: &[Doc]) -> Vec<String> {
    docs.iter().map(|d| d.number().to_owned()).collect()
}

fn numbers_of(metas: &[FragmentMeta]) -> Vec<String> {
    metas.iter().map(|m| fragment_number(m.number)).collect()
}

/// Checks a complete fragment's document against what was written.
fn check_doc(d: &Doc, m: &FragmentMeta, c: &Cluster) {
    assert_eq!(d.number(), fragment_number(m.number));
    assert_eq!(
        d.tag(tags::SERVER_TIMESTAMP),
        Some(ms_to_decimal_seconds(m.server_ts_ms).as_str())
    );
    assert_eq!(
        d.tag(tags::PRODUCER_TIMESTAMP),
        Some(ms_to_decimal_seconds(c.timecode_ms).as_str())
    );
    assert_eq!(
        d.tag(tags::CONTINUATION_TOKEN),
        Some(fragment_number(m.number).as_str())
    );
    let behind: u64 = d.tag(tags::MILLIS_BEHIND_NOW).unwrap().parse().unwrap();
    assert!(behind < 600_000, "{behind}");
    assert_eq!(d.frames, c.frames, "frames of {}", d.number());
    // The fragment tags come first, the end tags last.
    assert_eq!(d.tags[0].0, tags::FRAGMENT_NUMBER);
    assert_eq!(d.tags.last().unwrap().0, tags::CONTINUATION_TOKEN);
}

/// The first `n` fragment numbers a GetMedia with this selector returns.
async fn first_numbers(server: &TestServer, name: &str, selector: Value, n: usize) -> Vec<String> {
    let mut r = get_media(server, name, selector).await;
    read_fragments(&mut r, n).await;
    let docs = docs(&r.body);
    numbers(&docs[..n])
}

#[tokio::test]
async fn earliest_sends_every_fragment_as_a_document() {
    let _g = READER_GAUGE.read().await;
    let server = TestServer::start().await;
    let s = stream(&server, "cam", 24).await;
    let metas = put_all(&server, &s, &media().clusters).await;
    let mut r = get_media(&server, "cam", json!({"StartSelectorType": "EARLIEST"})).await;
    read_fragments(&mut r, 10).await;
    let docs = docs(&r.body);
    assert_eq!(docs.len(), 10);
    for ((d, m), c) in docs.iter().zip(&metas).zip(&media().clusters) {
        check_doc(d, m, c);
    }
    // ffmpeg reads the concatenated documents as the file they came from.
    assert_eq!(
        ffprobe_concatenated(&r.body),
        ffprobe_packets(&ffmpeg_h264().0)
    );
    // And each document alone.
    let second = r
        .body
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == [0x1A, 0x45, 0xDF, 0xA3])
        .map(|(i, _)| i)
        .nth(1)
        .unwrap();
    assert_eq!(ffprobe_packets(&r.body[..second]).len(), 25);
}

#[tokio::test]
async fn start_selectors() {
    let _g = READER_GAUGE.read().await;
    let server = TestServer::start().await;
    let s = stream(&server, "cam", 24).await;
    let metas = put_all(&server, &s, &media().clusters).await;
    let all = numbers_of(&metas);
    let clusters = &media().clusters;

    // FRAGMENT_NUMBER starts *at* the fragment named (the choice in `getmedia`'s docs).
    let sel = json!({"StartSelectorType": "FRAGMENT_NUMBER", "AfterFragmentNumber": all[3]});
    assert_eq!(first_numbers(&server, "cam", sel, 7).await, &all[3..]);
    // CONTINUATION_TOKEN resumes after the fragment that carried it.
    let sel = json!({"StartSelectorType": "CONTINUATION_TOKEN", "ContinuationToken": all[3]});
    assert_eq!(first_numbers(&server, "cam", sel, 6).await, &all[4..]);
    // A timestamp inside a fragment starts at that fragment.
    let ts = (clusters[2].timecode_ms + 500) as f64 / 1000.0;
    let sel = json!({"StartSelectorType": "PRODUCER_TIMESTAMP", "StartTimestamp": ts});
    assert_eq!(first_numbers(&server, "cam", sel, 8).await, &all[2..]);
    // One before every fragment starts at the first.
    let sel = json!({"StartSelectorType": "PRODUCER_TIMESTAMP", "StartTimestamp": 1_000_000});
    assert_eq!(first_numbers(&server, "cam", sel, 10).await, all);
    let ts = metas[5].server_ts_ms as f64 / 1000.0;
    let sel = json!({"StartSelectorType": "SERVER_TIMESTAMP", "StartTimestamp": ts});
    assert_eq!(first_numbers(&server, "cam", sel, 5).await, &all[5..]);
    // EARLIEST ignores the other fields.
    let sel = json!({"StartSelectorType": "EARLIEST", "AfterFragmentNumber": all[5]});
    assert_eq!(first_numbers(&server, "cam", sel, 10).await, all);
}

/// A fragment number that names no fragment of the stream: a 200 whose body is one error
/// document (ERROR_ID 4000), then the end.
#[tokio::test]
async fn unknown_fragment_numbers_get_an_error_document() {
    let _g = READER_GAUGE.read().await;
    let server = TestServer::start().await;
    let s = stream(&server, "cam", 24).await;
    let other = stream(&server, "other", 24).await;
    let metas = put_all(&server, &s, &media().clusters[..2]).await;
    let theirs = put(&server, &other, &media().clusters[0]).await;
    for given in [
        fragment_number(metas[1].number + 1000),
        fragment_number(theirs.number),
        "12345".to_owned(),
    ] {
        let sel = json!({"StartSelectorType": "FRAGMENT_NUMBER", "AfterFragmentNumber": given});
        let mut r = get_media(&server, "cam", sel).await;
        r.read_to_end(T).await;
        let docs = docs(&r.body);
        assert_eq!(docs.len(), 1, "{given}");
        assert_eq!(
            docs[0].tags,
            vec![
                (tags::FRAGMENT_NUMBER.to_owned(), given.clone()),
                (tags::ERROR_ID.to_owned(), "4000".to_owned()),
                (tags::ERROR_CODE.to_owned(), "FRAGMENT_NOT_FOUND".to_owned()),
            ]
        );
    }
}

/// A reader at NOW gets each frame of the fragment being received as it is appended, before
/// the fragment ends; a fragment its producer abandons ends at a whole element, and the
/// reader goes on with the next one.
#[tokio::test]
async fn now_follows_the_live_edge_frame_by_frame() {
    let _g = READER_GAUGE.read().await;
    let server = TestServer::start().await;
    let s = stream(&server, "cam", 24).await;
    let clusters = &media().clusters;
    let old = put_all(&server, &s, &clusters[..2]).await;
    let mut r = get_media(&server, "cam", json!({"StartSelectorType": "NOW"})).await;

    // A fragment arrives an element at a time.
    let store = &server.state.store;
    let c = &clusters[2];
    let mut w = store
        .begin_fragment(s.id, s.header_id, c.timecode_ms)
        .unwrap();
    let live_number = w.number();
    let mut at = 0;
    let mut r2 = None;
    for (i, &end) in c.frame_ends.iter().enumerate().take(4) {
        w.append(c.bytes.slice(at..end)).unwrap();
        at = end;
        if i > 0 {
            // Frame i-1 is complete: the reader has it now.
            let frame = c.frames[i - 1].2.clone();
            r.read_until(T, |b| contains(b, &frame)).await;
        }
        if i == 1 {
            // A reader at NOW while a fragment is being received starts with that fragment.
            r2 = Some(get_media(&server, "cam", json!({"StartSelectorType": "NOW"})).await);
        }
    }
    assert_eq!(count(&r.body, tags::CONTINUATION_TOKEN.as_bytes()), 0);
    w.append(c.bytes.slice(at..)).unwrap();
    let live = w.finish(c.duration_ms).unwrap().wait().await.unwrap();
    read_fragments(&mut r, 1).await;

    // A fragment abandoned in the middle of its fourth frame.
    let c = &clusters[3];
    let mut w = store
        .begin_fragment(s.id, s.header_id, c.timecode_ms)
        .unwrap();
    let aborted_number = w.number();
    let cut = c.frame_ends[3] + 10;
    w.append(c.bytes.slice(..cut)).unwrap();
    let frame = c.frames[2].2.clone();
    r.read_until(T, |b| contains(b, &frame)).await;
    drop(w);
    r.read_until(T, |b| contains(b, tags::FRAGMENT_ABORTED.as_bytes()))
        .await;
    let next = put(&server, &s, &clusters[4]).await;
    read_fragments(&mut r, 2).await;

    let docs = docs(&r.body);
    assert_eq!(docs.len(), 3);
    check_doc(&docs[0], &live, &clusters[2]);
    assert_eq!(docs[1].number(), fragment_number(aborted_number));
    assert!(!docs[1].complete());
    assert_eq!(
        docs[1].tag(tags::FRAGMENT_ABORTED),
        Some("true"),
        "{:?}",
        docs[1].tags
    );
    // Whole frames only: the three complete before the cut.
    assert_eq!(docs[1].frames, clusters[3].frames[..3]);
    check_doc(&docs[2], &next, &clusters[4]);
    assert_eq!(live.number, live_number);
    // ffmpeg wrote the Cluster with a known size; live, it is forwarded with an unknown size.
    let unknown_size_cluster = [0x1F, 0x43, 0xB6, 0x75, 1, 255, 255, 255, 255, 255, 255, 255];
    assert!(contains(&r.body, &unknown_size_cluster));
    let mut r2 = r2.unwrap();
    read_fragments(&mut r2, 2).await;
    let docs2 = self::docs(&r2.body);
    assert_eq!(numbers(&docs2), numbers(&docs));
    check_doc(&docs2[0], &live, &clusters[2]);
    assert!(old.iter().all(|m| m.number < live_number));
    // ffmpeg decodes the live output too (the abandoned fragment's frames included).
    let packets = ffprobe_concatenated(&r.body);
    assert_eq!(packets.len(), 25 + 3 + 25);
}

#[tokio::test]
async fn retention_zero_serves_the_memory_window() {
    let _g = READER_GAUGE.read().await;
    let server = TestServer::start().await;
    let s = stream(&server, "mem", 0).await;
    let metas = put_all(&server, &s, &media().clusters[..3]).await;
    let mut r = get_media(&server, "mem", json!({"StartSelectorType": "EARLIEST"})).await;
    read_fragments(&mut r, 3).await;
    let docs = docs(&r.body);
    for ((d, m), c) in docs.iter().zip(&metas).zip(&media().clusters) {
        check_doc(d, m, c);
    }
    let sel = json!({"StartSelectorType": "FRAGMENT_NUMBER", "AfterFragmentNumber": fragment_number(metas[1].number)});
    assert_eq!(
        first_numbers(&server, "mem", sel, 2).await,
        &numbers_of(&metas)[1..]
    );
    // The archive is not there.
    let list = json!({"StreamName": "mem", "FragmentSelector": {"FragmentSelectorType": "SERVER_TIMESTAMP",
        "TimestampRange": {"StartTimestamp": 0, "EndTimestamp": 4_000_000_000u64}}});
    server
        .post("/listFragments", &list)
        .await
        .assert_error(400, "NoDataRetentionException");
    let frags = json!({"StreamName": "mem", "Fragments": [fragment_number(metas[0].number)]});
    server
        .post("/getMediaForFragmentList", &frags)
        .await
        .assert_error(400, "NoDataRetentionException");
}

/// A reader that does not read holds up nothing: the writer writes megabytes of fragments
/// (which leave memory for disk meanwhile), then the reader gets every one, in order.
#[tokio::test]
async fn a_slow_reader_does_not_hold_up_the_writer() {
    let _g = READER_GAUGE.read().await;
    let server = TestServer::start().await;
    let s = stream(&server, "cam", 24).await;
    let mut r = get_media(&server, "cam", json!({"StartSelectorType": "EARLIEST"})).await;
    let clusters = &media().clusters;
    let n = 400; // about 8 MB: more than the socket buffers hold
    let store = &server.state.store;
    let write = async {
        let mut durable = Vec::new();
        for i in 0..n {
            let c = &clusters[i % clusters.len()];
            let mut w = store
                .begin_fragment(s.id, s.header_id, c.timecode_ms)
                .unwrap();
            w.append(c.bytes.clone()).unwrap();
            durable.push(w.finish(c.duration_ms).unwrap());
        }
        let mut metas = Vec::new();
        for d in durable {
            metas.push(d.wait().await.unwrap());
        }
        metas
    };
    let metas = tokio::time::timeout(T, write)
        .await
        .expect("the writer was held up");
    read_fragments(&mut r, n).await;
    let docs = docs(&r.body);
    assert_eq!(numbers(&docs), numbers_of(&metas));
    for (i, d) in docs.iter().enumerate() {
        assert_eq!(d.frames, clusters[i % clusters.len()].frames);
    }
}

#[tokio::test]
async fn many_readers_each_get_everything() {
    let _g = READER_GAUGE.read().await;
    let server = TestServer::start().await;
    let s = stream(&server, "cam", 24).await;
    let clusters = &media().clusters;
    let mut metas = put_all(&server, &s, &clusters[..3]).await;
    let mut readers = Vec::new();
    for _ in 0..50 {
        readers.push(get_media(&server, "cam", json!({"StartSelectorType": "EARLIEST"})).await);
    }
    metas.extend(put_all(&server, &s, &clusters[3..6]).await);
    let want = numbers_of(&metas);
    let tasks: Vec<_> = readers
        .into_iter()
        .map(|mut r| {
            tokio::spawn(async move {
                read_fragments(&mut r, 6).await;
                numbers(&docs(&r.body))
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), want);
    }
}

/// Readers that hang up are dropped (the gauge goes back down), even on an idle stream, and a
/// deleted stream ends its readers' bodies.
#[tokio::test]
async fn readers_end_with_their_connection_or_their_stream() {
    let _g = READER_GAUGE.write().await;
    let gauge = &vigil_api_kvs_common::readers::metrics().getmedia_readers;
    let server = TestServer::start().await;
    let s = stream(&server, "cam", 24).await;
    put_all(&server, &s, &media().clusters[..1]).await;
    let before = gauge.get();
    let mut readers = Vec::new();
    for _ in 0..10 {
        let mut r = get_media(&server, "cam", json!({"StartSelectorType": "EARLIEST"})).await;
        read_fragments(&mut r, 1).await;
        readers.push(r);
    }
    assert_eq!(gauge.get(), before + 10);
    drop(readers);
    let deadline = tokio::time::Instant::now() + T;
    while gauge.get() != before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "readers left behind"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let mut r = get_media(&server, "cam", json!({"StartSelectorType": "NOW"})).await;
    let d = server
        .post("/deleteStream", &json!({"StreamARN": s.arn}))
        .await;
    assert_eq!(d.status, 200, "{}", d.text());
    r.read_to_end(T).await;
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn revoking_the_key_ends_the_response() {
    let _g = READER_GAUGE.read().await;
    let auth = std::sync::Arc::new(Revocable::default());
    let server = TestServer::start_with(vigil_server::ServerConfig::default(), auth.clone()).await;
    let s = stream(&server, "watched", 24).await;
    let clusters = &media().clusters;
    let done = put(&server, &s, &clusters[0]).await;
    let mut r = get_media(&server, "watched", json!({"StartSelectorType": "EARLIEST"})).await;
    read_fragments(&mut r, 1).await;

    // A fragment is being received when the reader's key is revoked.
    let store = &server.state.store;
    let c = &clusters[1];
    let mut w = store
        .begin_fragment(s.id, s.header_id, c.timecode_ms)
        .unwrap();
    let live = w.number();
    w.append(c.bytes.slice(..c.frame_ends[2])).unwrap();
    let frame = c.frames[0].2.clone();
    r.read_until(T, |b| contains(b, &frame)).await;
    auth.revoke();
    // Re-checked every second: the body ends, its open document closed as abandoned.
    r.read_to_end(Duration::from_secs(10)).await;
    let docs = docs(&r.body);
    assert_eq!(docs.len(), 2);
    check_doc(&docs[0], &done, &clusters[0]);
    assert_eq!(docs[1].number(), fragment_number(live));
    assert!(!docs[1].complete());
    assert_eq!(docs[1].tag(tags::FRAGMENT_ABORTED), Some("true"));
    // The writer is not disturbed.
    w.append(c.bytes.slice(c.frame_ends[2]..)).unwrap();
    w.finish(c.duration_ms).unwrap().wait().await.unwrap();
}

#[tokio::test]
async fn get_media_errors() {
    let server = TestServer::start().await;
    stream(&server, "cam", 24).await;
    let now = json!({"StartSelectorType": "NOW"});
    server
        .post(
            "/getMedia",
            &json!({"StreamName": "nope", "StartSelector": now}),
        )
        .await
        .assert_error(404, "ResourceNotFoundException");
    for bad in [
        json!({"StreamName": "cam"}),
        json!({"StreamName": "cam", "StartSelector": {}}),
        json!({"StreamName": "cam", "StartSelector": {"StartSelectorType": "LATEST"}}),
        json!({"StreamName": "cam", "StartSelector": {"StartSelectorType": "FRAGMENT_NUMBER"}}),
        json!({"StreamName": "cam", "StartSelector": {"StartSelectorType": "FRAGMENT_NUMBER",
            "AfterFragmentNumber": "12ab"}}),
        json!({"StreamName": "cam", "StartSelector": {"StartSelectorType": "SERVER_TIMESTAMP"}}),
        json!({"StreamName": "cam", "StartSelector": {"StartSelectorType": "CONTINUATION_TOKEN",
            "ContinuationToken": "not-ours"}}),
        json!({"StartSelector": now}),
    ] {
        server
            .post("/getMedia", &bad)
            .await
            .assert_error(400, "InvalidArgumentException");
    }
}

/// Every page of ListFragments on `cam` for `selector` (`Null`: none, every fragment).
async fn list_all(server: &TestServer, selector: Value, page: usize) -> (Vec<Value>, usize) {
    let mut out = Vec::new();
    let mut pages = 0;
    let mut token: Option<String> = None;
    loop {
        let body = match &token {
            None if selector.is_null() => json!({"StreamName": "cam", "MaxResults": page}),
            None => json!({"StreamName": "cam", "FragmentSelector": selector, "MaxResults": page}),
            Some(t) => json!({"StreamName": "cam", "NextToken": t, "MaxResults": page}),
        };
        let r = server.post("/listFragments", &body).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        pages += 1;
        let frags = v["Fragments"].as_array().unwrap();
        assert!(frags.len() <= page);
        out.extend(frags.iter().cloned());
        match v.get("NextToken").and_then(Value::as_str) {
            Some(t) => token = Some(t.to_owned()),
            None => return (out, pages),
        }
    }
}

fn range(kind: &str, start_ms: u64, end_ms: u64) -> Value {
    json!({"FragmentSelectorType": kind, "TimestampRange": {
        "StartTimestamp": start_ms as f64 / 1000.0, "EndTimestamp": end_ms as f64 / 1000.0}})
}

#[tokio::test]
async fn list_fragments_pages_and_ranges() {
    let server = TestServer::start().await;
    let s = stream(&server, "cam", 24).await;
    let clusters = &media().clusters;
    let metas = put_all(&server, &s, clusters).await;
    let all = numbers_of(&metas);

    // Everything, three at a time: each fragment once, with its metadata.
    let (frags, pages) = list_all(
        &server,
        range("PRODUCER_TIMESTAMP", 0, 4_000_000_000_000),
        3,
    )
    .await;
    assert_eq!(pages, 4);
    // A last full page says there is no more.
    let (by_five, pages) =
        list_all(&server, range("SERVER_TIMESTAMP", 0, 4_000_000_000_000), 5).await;
    assert_eq!((by_five.len(), pages), (10, 2));
    let mut got: Vec<String> = frags
        .iter()
        .map(|f| f["FragmentNumber"].as_str().unwrap().to_owned())
        .collect();
    got.sort();
    assert_eq!(got, all);
    let by_number: BTreeMap<&str, &Value> = frags
        .iter()
        .map(|f| (f["FragmentNumber"].as_str().unwrap(), f))
        .collect();
    for (m, c) in metas.iter().zip(clusters) {
        let f = by_number[fragment_number(m.number).as_str()];
        assert_eq!(f["FragmentSizeInBytes"], c.bytes.len());
        assert_eq!(f["FragmentLengthInMilliseconds"], c.duration_ms);
        assert_eq!(
            f["ProducerTimestamp"].as_f64().unwrap(),
            c.timecode_ms as f64 / 1000.0
        );
        assert_eq!(
            f["ServerTimestamp"].as_f64().unwrap(),
            m.server_ts_ms as f64 / 1000.0
        );
    }

    // Ranges hold the fragments whose start lies in them, both ends included.
    let (frags, _) = list_all(
        &server,
        range(
            "PRODUCER_TIMESTAMP",
            clusters[2].timecode_ms,
            clusters[5].timecode_ms,
        ),
        100,
    )
    .await;
    let mut got: Vec<&str> = frags
        .iter()
        .map(|f| f["FragmentNumber"].as_str().unwrap())
        .collect();
    got.sort();
    assert_eq!(got, &all[2..=5]);
    let (frags, _) = list_all(
        &server,
        range(
            "SERVER_TIMESTAMP",
            metas[4].server_ts_ms,
            metas[4].server_ts_ms,
        ),
        100,
    )
    .await;
    assert_eq!(frags.len(), 1);
    assert_eq!(frags[0]["FragmentNumber"], all[4]);
    let (frags, pages) = list_all(
        &server,
        range(
            "PRODUCER_TIMESTAMP",
            clusters[2].timecode_ms + 1,
            clusters[3].timecode_ms - 1,
        ),
        100,
    )
    .await;
    assert!(frags.is_empty());
    assert_eq!(pages, 1);

    // Without a selector (`aws kinesis-video-archived-media list-fragments --stream-name cam`):
    // every fragment of the stream, a page at a time, in server-timestamp order.
    let (frags, pages) = list_all(&server, Value::Null, 4).await;
    let listed: Vec<&str> = frags
        .iter()
        .map(|f| f["FragmentNumber"].as_str().unwrap())
        .collect();
    assert_eq!(listed, all, "every fragment, in order");
    assert_eq!(pages, all.len().div_ceil(4));
    let r = server
        .post("/listFragments", &json!({"StreamName": "cam"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["Fragments"].as_array().unwrap().len(), all.len());

    // A token is only good for its stream.
    let other = stream(&server, "other", 24).await;
    let r = server
        .post(
            "/listFragments",
            &json!({"StreamName": "cam", "MaxResults": 1,
                "FragmentSelector": range("SERVER_TIMESTAMP", 0, 4_000_000_000_000)}),
        )
        .await;
    let token = r.json()["NextToken"].as_str().unwrap().to_owned();
    server
        .post(
            "/listFragments",
            &json!({"StreamARN": other.arn, "NextToken": token}),
        )
        .await
        .assert_error(400, "InvalidArgumentException");
    // Tokens are sealed: one made up from what a token looks like is refused, as is one over
    // the model's 4096 characters.
    let forged = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        json!({"s": 1, "k": "s", "a": 0, "b": u64::MAX, "ts": 0, "n": 0}).to_string(),
    );
    for bad in [
        json!({"StreamName": "cam", "NextToken": forged}),
        json!({"StreamName": "cam", "NextToken": "A".repeat(4100)}),
        json!({"StreamName": "cam", "FragmentSelector": {"FragmentSelectorType": "SERVER_TIMESTAMP"}}),
        json!({"StreamName": "cam", "MaxResults": 0, "FragmentSelector": range("SERVER_TIMESTAMP", 0, 1)}),
        json!({"StreamName": "cam", "FragmentSelector": range("SERVER_TIMESTAMP", 5, 1)}),
        json!({"StreamName": "cam", "NextToken": "bm90IG91cnM="}),
    ] {
        server
            .post("/listFragments", &bad)
            .await
            .assert_error(400, "InvalidArgumentException");
    }
}

#[tokio::test]
async fn get_media_for_fragment_list_in_the_order_asked() {
    let server = TestServer::start().await;
    let s = stream(&server, "cam", 24).await;
    let clusters = &media().clusters;
    let metas = put_all(&server, &s, clusters).await;
    let (frags, _) = list_all(&server, range("SERVER_TIMESTAMP", 0, 4_000_000_000_000), 4).await;
    let mut listed: Vec<String> = frags
        .iter()
        .map(|f| f["FragmentNumber"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    listed.reverse();
    let missing = fragment_number(metas[9].number + 500);
    let mut asked = listed.clone();
    asked.insert(3, missing.clone());
    asked.push(listed[0].clone());

    let mut r = server
        .open(
            "/getMediaForFragmentList",
            &json!({"StreamName": "cam", "Fragments": asked}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("video/webm"));
    r.read_to_end(T).await;
    let docs = docs(&r.body);
    assert_eq!(numbers(&docs), asked);
    for d in &docs {
        if d.number() == missing {
            assert_eq!(d.tag(tags::ERROR_ID), Some("3000"));
            assert_eq!(d.tag(tags::ERROR_CODE), Some("FRAGMENT_NOT_FOUND"));
            assert_eq!(d.tag(tags::EXCEPTION_ERROR_CODE), Some("3000"));
            assert!(d.tag(tags::EXCEPTION_MESSAGE).is_some());
            assert!(d.frames.is_empty());
            continue;
        }
        let i = metas
            .iter()
            .position(|m| fragment_number(m.number) == d.number())
            .unwrap();
        check_doc(d, &metas[i], &clusters[i]);
        assert_eq!(
            d.tag(tags::SERVER_SIDE_TIMESTAMP),
            d.tag(tags::SERVER_TIMESTAMP)
        );
        assert_eq!(
            d.tag(tags::PRODUCER_SIDE_TIMESTAMP),
            d.tag(tags::PRODUCER_TIMESTAMP)
        );
    }
    // ffmpeg reads the fragments' documents (the error document has no track).
    let ok: Vec<String> = listed.iter().take(2).cloned().collect();
    let r = server
        .post(
            "/getMediaForFragmentList",
            &json!({"StreamName": "cam", "Fragments": ok}),
        )
        .await;
    assert_eq!(ffprobe_concatenated(&r.body).len(), 50);

    // Errors before anything is sent.
    let many: Vec<String> = (0..1001).map(|_| listed[0].clone()).collect();
    for bad in [
        json!({"StreamName": "cam"}),
        json!({"StreamName": "cam", "Fragments": []}),
        json!({"StreamName": "cam", "Fragments": many}),
        json!({"StreamName": "cam", "Fragments": ["12a"]}),
        json!({"StreamName": "cam", "Fragments": ["12345"]}),
        json!({"Fragments": [listed[0]]}),
    ] {
        server
            .post("/getMediaForFragmentList", &bad)
            .await
            .assert_error(400, "InvalidArgumentException");
    }
    let thousand: Vec<String> = (0..1000).map(|_| listed[0].clone()).collect();
    let r = server
        .post(
            "/getMediaForFragmentList",
            &json!({"StreamName": "cam", "Fragments": thousand}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(count(&r.body, tags::CONTINUATION_TOKEN.as_bytes()), 1000);
    server
        .post(
            "/getMediaForFragmentList",
            &json!({"StreamName": "nope", "Fragments": [listed[0]]}),
        )
        .await
        .assert_error(404, "ResourceNotFoundException");
}
