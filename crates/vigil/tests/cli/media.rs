//! The media plane end to end, against the real binary with SigV4: a producer-like PutMedia
//! client (signed with `aws-sigv4` exactly as the C producer signs: empty-string payload hash,
//! `connection`, `transfer-encoding` and `user-agent` among the signed headers) streams
//! Matroska that ffmpeg made; the official SDKs read it back (ListFragments,
//! GetMediaForFragmentList, GetMedia), and ffprobe and our demuxer check every frame.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use aws_sdk_kinesisvideo::types::ApiName;
use aws_sdk_kinesisvideoarchivedmedia::types::{
    FragmentSelector, FragmentSelectorType, TimestampRange,
};
use aws_sdk_kinesisvideomedia::types::{StartSelector, StartSelectorType};
use aws_smithy_types::DateTime;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vigil_mkv::{Demuxer, Event};

use crate::aws_sdk::{control_client, http_client};
use crate::{ROOT_KEY, ROOT_SECRET, Server};

/// 6 s of 320x240 H.264 at 25 fps, a key frame a second (so 6 Clusters), absolute
/// timestamps from 1.7e12 ms, as a KVS producer's.
pub(crate) fn ffmpeg_media(dir: &Path) -> Vec<u8> {
    let path = dir.join("in.mkv");
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=320x240:rate=25")
        .args([
            "-t", "6", "-c:v", "libx264", "-g", "25", "-bf", "0", "-crf", "30",
        ])
        .args(["-threads", "1", "-output_ts_offset", "1700000000"])
        .args(["-f", "matroska", "-y"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ffmpeg ({e}); run scripts/install-test-deps.sh"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(&path).unwrap()
}

/// (pts, key) of every video packet, as ffprobe sees them, in stream order.
fn ffprobe(dir: &Path, name: &str, data: &[u8]) -> Vec<(i64, bool)> {
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "packet=pts,flags", "-of", "csv=p=0"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (pts, flags) = l.split_once(',').unwrap();
            (pts.parse().unwrap(), flags.contains('K'))
        })
        .collect()
}

/// Splits concatenated EBML documents (GetMedia output) at their EBML headers.
pub(crate) fn documents(data: &[u8]) -> Vec<&[u8]> {
    let mut d = Demuxer::new();
    d.push(data);
    d.finish();
    let mut starts = Vec::new();
    while let Some(ev) = d.pull() {
        if let Event::EbmlHeader { span, .. } = ev.unwrap() {
            starts.push(span.offset as usize);
        }
    }
    starts.push(data.len());
    starts.windows(2).map(|w| &data[w[0]..w[1]]).collect()
}

/// A frame: track, timecode, key.
type FrameInfo = (u64, i64, bool);
/// A tag: name and (debug-printed) value.
type TagInfo = (String, String);

/// Frames and the AWS_KINESISVIDEO_* tag values, per document.
fn demux(data: &[u8]) -> (Vec<FrameInfo>, Vec<TagInfo>) {
    let mut d = Demuxer::new();
    let (mut frames, mut tags) = (Vec::new(), Vec::new());
    for chunk in data.chunks(1000) {
        d.push(chunk);
        while let Some(ev) = d.pull() {
            match ev.unwrap() {
                Event::Frame(f) => frames.push((f.track, f.timecode, f.keyframe)),
                Event::Tags { tags: t, .. } => {
                    for tag in t {
                        for st in tag.simple_tags {
                            if st.name.starts_with("AWS_KINESISVIDEO") {
                                tags.push((st.name.clone(), format!("{:?}", st.value)));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    (frames, tags)
}

/// A producer's PutMedia connection, signed as the C producer signs: acks arrive on
/// `acks` as the server sends them (the channel closes when the response ends).
pub(crate) struct Producer {
    wr: tokio::net::tcp::OwnedWriteHalf,
    acks: tokio::sync::mpsc::UnboundedReceiver<Value>,
    reader: tokio::task::JoinHandle<()>,
}

/// The head of a PutMedia request to `stream`, signed as the C producer signs it.
fn signed_head(server: &Server, stream: &str) -> String {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    let host = server.addr.to_string();
    let start_ts = format!(
        "{:.3}",
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    );
    let headers = [
        ("host", host.as_str()),
        ("x-amzn-stream-name", stream),
        ("x-amzn-fragment-timecode-type", "ABSOLUTE"),
        ("x-amzn-producer-start-timestamp", start_ts.as_str()),
        ("x-amzn-fragment-acknowledgment-required", "1"),
        ("transfer-encoding", "chunked"),
        ("connection", "keep-alive"),
        (
            "user-agent",
            "vigil-tests/1.0 (like AWS-SDK-KVS-CPP-CLIENT)",
        ),
    ];
    let identity =
        aws_credential_types::Credentials::new(ROOT_KEY, ROOT_SECRET, None, None, "t").into();
    let mut settings = SigningSettings::default();
    // Sign what the C producer signs, hop-by-hop headers and user-agent included.
    settings.excluded_headers = Some(vec!["authorization".into()]);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("kinesisvideo")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let url = format!("http://{host}/putMedia");
    let signable = SignableRequest::new(
        "POST",
        &url,
        headers.iter().copied(),
        SignableBody::Bytes(&[]),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut head = String::from("POST /putMedia HTTP/1.1\r\n");
    for (k, v) in headers.iter().copied().chain(instructions.headers()) {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    // Unsigned, as the C producer sends it.
    head.push_str("expect: 100-continue\r\n\r\n");
    head
}

impl Producer {
    pub(crate) async fn open(server: &Server, stream: &str) -> Producer {
        let head = signed_head(server, stream);
        let sock = TcpStream::connect(server.addr).await.unwrap();
        let (rd, mut wr) = sock.into_split();
        let (tx, acks) = tokio::sync::mpsc::unbounded_channel();
        let reader = tokio::spawn(read_acks(rd, tx));
        wr.write_all(head.as_bytes()).await.unwrap();
        Producer { wr, acks, reader }
    }

    /// Sends `data` as HTTP chunks of at most `chunk` bytes.
    pub(crate) async fn send(&mut self, data: &[u8], chunk: usize) {
        for c in data.chunks(chunk) {
            self.wr
                .write_all(format!("{:x}\r\n", c.len()).as_bytes())
                .await
                .unwrap();
            self.wr.write_all(c).await.unwrap();
            self.wr.write_all(b"\r\n").await.unwrap();
        }
    }

    /// Ends the body.
    pub(crate) async fn end(&mut self) {
        self.wr.write_all(b"0\r\n\r\n").await.unwrap();
    }

    /// The next ack, or `None` when the response has ended.
    pub(crate) async fn ack(&mut self) -> Option<Value> {
        tokio::time::timeout(Duration::from_secs(30), self.acks.recv())
            .await
            .expect("an ack, or the end of the response, within 30 s")
    }

    /// Every ack until the response ends.
    pub(crate) async fn rest(mut self) -> Vec<Value> {
        let mut all = Vec::new();
        while let Some(a) = self.ack().await {
            all.push(a);
        }
        self.reader.await.unwrap();
        all
    }
}

/// Reads the response: `100 Continue`, the `200` head, then one ack per chunk, until the
/// terminating chunk.
async fn read_acks(
    mut rd: tokio::net::tcp::OwnedReadHalf,
    tx: tokio::sync::mpsc::UnboundedSender<Value>,
) {
    let mut buf = Vec::new();
    let mut continued = false;
    let mut tmp = [0u8; 4096];
    let body_start = loop {
        let n = rd.read(&mut tmp).await.unwrap();
        assert!(n > 0, "connection closed before the response head");
        buf.extend_from_slice(&tmp[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..p]).into_owned();
            if head.starts_with("HTTP/1.1 100") {
                continued = true;
                buf.drain(..p + 4);
                continue;
            }
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            assert!(
                head.to_ascii_lowercase()
                    .contains("transfer-encoding: chunked"),
                "{head}"
            );
            break p + 4;
        }
    };
    assert!(continued, "no 100 Continue for Expect: 100-continue");
    buf.drain(..body_start);
    loop {
        if let Some(nl) = buf.windows(2).position(|w| w == b"\r\n") {
            let size =
                usize::from_str_radix(std::str::from_utf8(&buf[..nl]).unwrap().trim(), 16).unwrap();
            if size == 0 {
                return;
            }
            if buf.len() >= nl + 2 + size + 2 {
                let ack = &buf[nl + 2..nl + 2 + size];
                assert!(ack.len() <= 1024, "an ack chunk over 1024 bytes");
                let _ = tx.send(serde_json::from_slice::<Value>(ack).unwrap());
                buf.drain(..nl + 2 + size + 2);
                continue;
            }
        }
        let n = rd.read(&mut tmp).await.unwrap();
        assert!(n > 0, "connection closed inside the ack stream");
        buf.extend_from_slice(&tmp[..n]);
    }
}

/// A whole PutMedia: sends `body` in chunks of `chunk` bytes while acks flow back; returns
/// every ack once the server has ended its response.
async fn put_media(server: &Server, stream: &str, body: &[u8], chunk: usize) -> Vec<Value> {
    let mut p = Producer::open(server, stream).await;
    p.send(body, chunk).await;
    p.end().await;
    p.rest().await
}

/// Byte offsets of the Clusters of a Matroska stream.
pub(crate) fn cluster_offsets(data: &[u8]) -> Vec<usize> {
    let mut d = Demuxer::new();
    d.push(data);
    d.finish();
    let mut out = Vec::new();
    while let Some(ev) = d.pull() {
        if let Event::ClusterStart { span, .. } = ev.unwrap() {
            out.push(span.offset as usize);
        }
    }
    out
}

#[test]
fn sigterm_lets_the_fragment_in_flight_persist() {
    let mut server = Server::start_with_root(&[]);
    let dir = tempfile::tempdir().unwrap();
    let input = ffmpeg_media(dir.path());
    let clusters = cluster_offsets(&input);
    assert_eq!(clusters.len(), 6);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let endpoint = format!("http://{}", server.addr);
    let mut producer = rt.block_on(async {
        let kv = control_client(&endpoint, ROOT_KEY, ROOT_SECRET, "us-east-1");
        kv.create_stream()
            .stream_name("drain")
            .data_retention_in_hours(1)
            .send()
            .await
            .unwrap();
        let mut p = Producer::open(&server, "drain").await;
        // Two whole fragments and half of the third.
        let cut = clusters[2] + (clusters[3] - clusters[2]) / 2;
        p.send(&input[..cut], 4096).await;
        let mut persisted = 0;
        let mut buffering = 0;
        while persisted < 2 || buffering < 3 {
            let a = p.ack().await.expect("acks");
            match a["EventType"].as_str() {
                Some("PERSISTED") => persisted += 1,
                Some("BUFFERING") => buffering += 1,
                Some("RECEIVED") => {}
                other => panic!("unexpected ack {other:?}: {a}"),
            }
        }
        p
    });
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    server.wait_for_log("no longer accepting connections");
    let acks = rt.block_on(async {
        // The producer finishes its fragment: the rest of it and the next Cluster's start.
        let cut = clusters[2] + (clusters[3] - clusters[2]) / 2;
        producer.send(&input[cut..clusters[3] + 64], 4096).await;
        producer.rest().await
    });
    let events: Vec<&str> = acks
        .iter()
        .filter_map(|a| a["EventType"].as_str())
        .collect();
    assert!(
        events.contains(&"RECEIVED") && events.contains(&"PERSISTED"),
        "the fragment in flight completes and persists: {acks:#?}"
    );
    assert!(!events.contains(&"ERROR"), "{acks:#?}");
    let status = server.signal_and_wait("TERM");
    assert!(status.success(), "{status:?}; log: {:#?}", server.log);
    // It was durable: a new server on the same data directory lists three fragments.
    let data = server.data.path().to_path_buf();
    let out = crate::run(
        crate::vigil()
            .args(["check", "--json", "--data-dir"])
            .arg(&data),
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["fragments"], 3, "{report}");
}

#[test]
fn putmedia_then_archived_and_live_reads_through_the_sdks() {
    let server = Server::start_with_root(&[]);
    let dir = tempfile::tempdir().unwrap();
    let input = ffmpeg_media(dir.path());
    let input_packets = ffprobe(dir.path(), "in.mkv", &input);
    assert_eq!(input_packets.len(), 150);
    let endpoint = format!("http://{}", server.addr);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let kv = control_client(&endpoint, ROOT_KEY, ROOT_SECRET, "us-east-1");
        kv.create_stream()
            .stream_name("e2e")
            .data_retention_in_hours(1)
            .send()
            .await
            .unwrap();

        // Odd chunk sizes cut through elements.
        let acks = put_media(&server, "e2e", &input, 7919).await;
        let kinds = |t: &str| acks.iter().filter(|a| a["EventType"] == t).count();
        assert_eq!(kinds("ERROR"), 0, "{acks:#?}");
        assert_eq!(kinds("BUFFERING"), 6, "{acks:#?}");
        assert_eq!(kinds("RECEIVED"), 6, "{acks:#?}");
        assert_eq!(kinds("PERSISTED"), 6, "{acks:#?}");
        let persisted: Vec<&Value> = acks
            .iter()
            .filter(|a| a["EventType"] == "PERSISTED")
            .collect();
        for (i, a) in persisted.iter().enumerate() {
            // The Cluster Timecode as sent: ms since the epoch here.
            assert_eq!(
                a["FragmentTimecode"],
                1_700_000_000_000u64 + 1000 * i as u64,
                "{a}"
            );
            assert!(a["FragmentNumber"].is_string());
        }

        // What Prometheus sees.
        let metrics = crate::http_get(server.addr, "/metrics");
        assert_eq!(metrics.status, 200);
        for line in [
            "vigil_putmedia_fragments_total{stream=\"e2e\"} 6",
            "vigil_putmedia_acks_total{type=\"PERSISTED\"} 6",
        ] {
            assert!(
                metrics.body.contains(line),
                "{line} not in {}",
                metrics.body
            );
        }
        assert!(
            metrics.body.contains("vigil_store_persist_seconds_count"),
            "{}",
            metrics.body
        );

        // The data plane through the official SDKs, at the endpoint GetDataEndpoint gives.
        let data_ep = kv
            .get_data_endpoint()
            .stream_name("e2e")
            .api_name(ApiName::ListFragments)
            .send()
            .await
            .unwrap()
            .data_endpoint
            .unwrap();
        let creds = aws_credential_types::Credentials::new(ROOT_KEY, ROOT_SECRET, None, None, "t");
        let archived = aws_sdk_kinesisvideoarchivedmedia::Client::from_conf(
            aws_sdk_kinesisvideoarchivedmedia::Config::builder()
                .behavior_version(
                    aws_sdk_kinesisvideoarchivedmedia::config::BehaviorVersion::latest(),
                )
                .region(aws_sdk_kinesisvideoarchivedmedia::config::Region::new(
                    "us-east-1",
                ))
                .credentials_provider(creds.clone())
                .endpoint_url(&data_ep)
                .http_client(http_client())
                .build(),
        );
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let mut listed = Vec::new();
        let mut pages = archived
            .list_fragments()
            .stream_name("e2e")
            .max_results(4)
            .fragment_selector(
                FragmentSelector::builder()
                    .fragment_selector_type(FragmentSelectorType::ProducerTimestamp)
                    .timestamp_range(
                        TimestampRange::builder()
                            .start_timestamp(DateTime::from_secs(1_700_000_000))
                            .end_timestamp(DateTime::from_secs(1_700_000_100))
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            listed.extend(page.unwrap().fragments.unwrap_or_default());
        }
        assert_eq!(listed.len(), 6);
        listed.sort_by_key(|f| f.producer_timestamp.unwrap().as_nanos());
        for (i, f) in listed.iter().enumerate() {
            assert_eq!(
                f.producer_timestamp.unwrap().to_millis().unwrap(),
                1_700_000_000_000 + 1000 * i as i64
            );
            assert_eq!(f.fragment_length_in_milliseconds, 1000);
            let server_ts = f.server_timestamp.unwrap().secs();
            assert!((server_ts - now).abs() < 60);
        }
        let numbers: Vec<String> = listed
            .iter()
            .map(|f| f.fragment_number.clone().unwrap())
            .collect();
        let got = archived
            .get_media_for_fragment_list()
            .stream_name("e2e")
            .set_fragments(Some(numbers.clone()))
            .send()
            .await
            .unwrap()
            .payload
            .collect()
            .await
            .unwrap()
            .into_bytes();
        let docs = documents(&got);
        assert_eq!(docs.len(), 6);
        let mut out_packets = Vec::new();
        for (i, doc) in docs.iter().enumerate() {
            out_packets.extend(ffprobe(dir.path(), &format!("gmffl-{i}.mkv"), doc));
            let (frames, tags) = demux(doc);
            assert_eq!(frames.len(), 25);
            assert!(
                tags.iter()
                    .any(|(n, v)| n == "AWS_KINESISVIDEO_FRAGMENT_NUMBER"
                        && v.contains(numbers[i].as_str())),
                "{tags:?}"
            );
        }
        assert_eq!(
            out_packets, input_packets,
            "every frame back, with its timestamp"
        );

        // GetClip: one MP4 of the whole range, every frame, decodable.
        let clip = archived
            .get_clip()
            .stream_name("e2e")
            .clip_fragment_selector(
                aws_sdk_kinesisvideoarchivedmedia::types::ClipFragmentSelector::builder()
                    .fragment_selector_type(
                        aws_sdk_kinesisvideoarchivedmedia::types::ClipFragmentSelectorType::ProducerTimestamp,
                    )
                    .timestamp_range(
                        aws_sdk_kinesisvideoarchivedmedia::types::ClipTimestampRange::builder()
                            .start_timestamp(DateTime::from_secs(1_700_000_000))
                            .end_timestamp(DateTime::from_secs(1_700_000_100))
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(clip.content_type(), Some("video/mp4"));
        let clip = clip.payload.collect().await.unwrap().into_bytes();
        let clip_packets = ffprobe(dir.path(), "clip.mp4", &clip);
        assert_eq!(clip_packets.len(), input_packets.len());
        assert_eq!(
            clip_packets.iter().filter(|p| p.1).count(),
            input_packets.iter().filter(|p| p.1).count(),
            "the same key frames"
        );
        let decode = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(dir.path().join("clip.mp4"))
            .args(["-f", "null", "-"])
            .output()
            .unwrap();
        assert!(
            decode.status.success() && decode.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&decode.stderr)
        );
        // A range without fragments.
        let e = archived
            .get_clip()
            .stream_name("e2e")
            .clip_fragment_selector(
                aws_sdk_kinesisvideoarchivedmedia::types::ClipFragmentSelector::builder()
                    .fragment_selector_type(
                        aws_sdk_kinesisvideoarchivedmedia::types::ClipFragmentSelectorType::ProducerTimestamp,
                    )
                    .timestamp_range(
                        aws_sdk_kinesisvideoarchivedmedia::types::ClipTimestampRange::builder()
                            .start_timestamp(DateTime::from_secs(1_600_000_000))
                            .end_timestamp(DateTime::from_secs(1_600_000_100))
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap_err();
        assert!(
            e.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()),
            "{e:?}"
        );

        // HLS and DASH sessions from the SDK; the URLs are followed by ffmpeg with no
        // credentials (the session token is the credential).
        let range = || {
            aws_sdk_kinesisvideoarchivedmedia::types::HlsTimestampRange::builder()
                .start_timestamp(DateTime::from_secs(1_700_000_000))
                .end_timestamp(DateTime::from_secs(1_700_000_100))
                .build()
        };
        let hls = archived
            .get_hls_streaming_session_url()
            .stream_name("e2e")
            .playback_mode(aws_sdk_kinesisvideoarchivedmedia::types::HlsPlaybackMode::OnDemand)
            .hls_fragment_selector(
                aws_sdk_kinesisvideoarchivedmedia::types::HlsFragmentSelector::builder()
                    .fragment_selector_type(
                        aws_sdk_kinesisvideoarchivedmedia::types::HlsFragmentSelectorType::ProducerTimestamp,
                    )
                    .timestamp_range(range())
                    .build(),
            )
            .send()
            .await
            .unwrap()
            .hls_streaming_session_url
            .unwrap();
        assert!(hls.starts_with(&format!("{data_ep}/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken=")), "{hls}");
        let dash = archived
            .get_dash_streaming_session_url()
            .stream_name("e2e")
            .playback_mode(aws_sdk_kinesisvideoarchivedmedia::types::DashPlaybackMode::OnDemand)
            .dash_fragment_selector(
                aws_sdk_kinesisvideoarchivedmedia::types::DashFragmentSelector::builder()
                    .fragment_selector_type(
                        aws_sdk_kinesisvideoarchivedmedia::types::DashFragmentSelectorType::ProducerTimestamp,
                    )
                    .timestamp_range(
                        aws_sdk_kinesisvideoarchivedmedia::types::DashTimestampRange::builder()
                            .start_timestamp(DateTime::from_secs(1_700_000_000))
                            .end_timestamp(DateTime::from_secs(1_700_000_100))
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap()
            .dash_streaming_session_url
            .unwrap();
        for url in [&hls, &dash] {
            let out = Command::new("ffprobe")
                .args(["-v", "error", "-select_streams", "v:0"])
                .args(["-show_entries", "packet=pts", "-of", "csv=p=0"])
                .arg(url)
                .output()
                .unwrap();
            assert!(out.status.success(), "{url}: {}", String::from_utf8_lossy(&out.stderr));
            let pts: Vec<i64> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| !l.is_empty())
                .map(|l| l.trim_end_matches(',').parse().unwrap())
                .collect();
            assert_eq!(pts.len(), input_packets.len(), "{url}");
            assert!(pts.windows(2).all(|w| w[1] - w[0] == pts[1] - pts[0]), "{url}: {pts:?}");
        }

        // GetMedia from EARLIEST through the media SDK: the same six fragments, in order.
        let media = aws_sdk_kinesisvideomedia::Client::from_conf(
            aws_sdk_kinesisvideomedia::Config::builder()
                .behavior_version(aws_sdk_kinesisvideomedia::config::BehaviorVersion::latest())
                .region(aws_sdk_kinesisvideomedia::config::Region::new("us-east-1"))
                .credentials_provider(creds)
                .endpoint_url(&data_ep)
                .http_client(http_client())
                .build(),
        );
        let mut out = media
            .get_media()
            .stream_name("e2e")
            .start_selector(
                StartSelector::builder()
                    .start_selector_type(StartSelectorType::Earliest)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        let mut bytes = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        // The response follows the live edge and never ends: read until the sixth
        // fragment's closing tags are in.
        while demux(&bytes)
            .1
            .iter()
            .filter(|(n, _)| n == "AWS_KINESISVIDEO_CONTINUATION_TOKEN")
            .count()
            < 6
        {
            let next = tokio::time::timeout_at(deadline, out.payload.next())
                .await
                .expect("GetMedia delivers the stored fragments");
            bytes.extend_from_slice(&next.unwrap().unwrap());
        }
        let (frames, tags) = demux(&bytes);
        assert_eq!(frames.len(), 150);
        let fragment_tags: Vec<&String> = tags
            .iter()
            .filter(|(n, _)| n == "AWS_KINESISVIDEO_FRAGMENT_NUMBER")
            .map(|(_, v)| v)
            .collect();
        for (tag, n) in fragment_tags.iter().zip(&numbers) {
            assert!(tag.contains(n.as_str()), "{tag} vs {n}");
        }
    });
}

/// Sends a PutMedia request head to `stream` and reads what the server answers before any
/// body (a refusal): the head and the body of the response.
async fn refused_put_media(server: &Server, stream: &str) -> (String, String) {
    let mut sock = TcpStream::connect(server.addr).await.unwrap();
    sock.write_all(signed_head(server, stream).as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..p]).into_owned();
            assert!(!head.starts_with("HTTP/1.1 100"), "admitted: {head}");
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    n.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or_else(|| panic!("no content-length in {head}"));
            if buf.len() >= p + 4 + len {
                let body = String::from_utf8_lossy(&buf[p + 4..p + 4 + len]).into_owned();
                return (head, body);
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), sock.read(&mut tmp))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        assert!(
            n > 0,
            "closed without an answer: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&tmp[..n]);
    }
}

#[test]
fn a_config_file_limits_putmedia_sessions_per_key() {
    use crate::camera::{metric, wait_metrics};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vigil.toml");
    std::fs::write(&file, "max_putmedia_sessions_per_key = 1\n").unwrap();
    let server = Server::start_with_root(&["--config", file.to_str().unwrap()]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let endpoint = format!("http://{}", server.addr);
    let mut first = rt.block_on(async {
        let kv = control_client(&endpoint, ROOT_KEY, ROOT_SECRET, "us-east-1");
        for name in ["one", "two"] {
            kv.create_stream()
                .stream_name(name)
                .data_retention_in_hours(1)
                .send()
                .await
                .unwrap();
        }
        Producer::open(&server, "one").await
    });
    let open = |n: f64| move |s: &Server| metric(s, "vigil_putmedia_sessions") == Some(n);
    wait_metrics(&server, Duration::from_secs(10), "one session", open(1.0));
    // The same key, another stream: over the key's limit while the first is open.
    let (head, body) = rt.block_on(refused_put_media(&server, "two"));
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("x-amzn-errortype: clientlimitexceededexception"),
        "{head}"
    );
    assert!(body.contains("ClientLimitExceededException"), "{body}");
    assert_eq!(
        metric(
            &server,
            "vigil_putmedia_sessions_refused_total{reason=\"per_key\"}"
        ),
        Some(1.0)
    );
    // Once the first has ended, the key's place is free again.
    rt.block_on(async {
        first.end().await;
        first.rest().await;
    });
    wait_metrics(&server, Duration::from_secs(10), "no session", open(0.0));
    rt.block_on(async {
        let mut again = Producer::open(&server, "two").await;
        again.end().await;
        again.rest().await;
    });
}
