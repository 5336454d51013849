//! What the muxer writes parses back identically under any chunking (a property test), and
//! ffmpeg plays it: re-muxed captures in the KVS layout and in the file layout, and
//! GetMedia-style per-fragment documents.

use bytes::Bytes;
use proptest::prelude::*;
use vigil_mkv::{
    Audio, Demuxer, EbmlHeader, Event, Info, Muxer, MuxerOptions, SimpleTag, Tag, TagValue,
    Targets, TrackEntry, Video,
};

use crate::common::{
    TempDir, demux_chunked, demux_ok, ffmpeg_decode, ffprobe_packets, first_info, first_tracks,
    kvs_capture, read, testdata,
};

/// One frame to write: track, absolute timecode, key flag, payload, and whether to write it
/// as a BlockGroup (with a duration).
#[derive(Debug, Clone)]
struct TestFrame {
    track: u64,
    timecode: i64,
    keyframe: bool,
    group_duration: Option<u64>,
    data: Vec<u8>,
}

#[derive(Debug, Clone)]
struct TestCluster {
    timecode: u64,
    frames: Vec<TestFrame>,
    tags_after: Vec<Tag>,
}

#[derive(Debug, Clone)]
struct TestDoc {
    header: EbmlHeader,
    info: Info,
    tracks: Vec<TrackEntry>,
    clusters: Vec<TestCluster>,
}

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 _./-]{0,24}"
}

fn simple_tag() -> impl Strategy<Value = SimpleTag> {
    let leaf = (
        "[A-Z_]{1,20}",
        prop_oneof![
            Just(TagValue::None),
            text().prop_map(TagValue::String),
            proptest::collection::vec(any::<u8>(), 0..16)
                .prop_map(|b| TagValue::Binary(Bytes::from(b))),
        ],
        proptest::option::of("[a-z]{3}"),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(|(name, value, language, default)| SimpleTag {
            name,
            language,
            default,
            value,
            children: Vec::new(),
        });
    leaf.prop_recursive(3, 12, 3, |inner| {
        (inner.clone(), proptest::collection::vec(inner, 0..3)).prop_map(|(mut t, children)| {
            t.children = children;
            t
        })
    })
}

fn tag() -> impl Strategy<Value = Tag> {
    (
        proptest::option::of(prop_oneof![Just(50u64), Just(30)]),
        proptest::collection::vec(1u64..1000, 0..2),
        proptest::collection::vec(simple_tag(), 1..4),
    )
        .prop_map(|(type_value, track_uids, simple_tags)| Tag {
            targets: Targets {
                type_value,
                target_type: None,
                track_uids,
            },
            simple_tags,
        })
}

fn track(number: u64) -> impl Strategy<Value = TrackEntry> {
    (
        any::<bool>(),
        1u64..u64::MAX,
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
        proptest::option::of(text()),
        proptest::option::of(1u64..100_000_000),
        (16u64..4000, 16u64..4000),
        prop_oneof![Just(8000.0f64), Just(44100.0), Just(48000.0)],
        1u64..9,
    )
        .prop_map(
            move |(video, uid, private, name, default_duration_ns, (w, h), rate, channels)| {
                TrackEntry {
                    number,
                    uid,
                    track_type: if video { 1 } else { 2 },
                    codec_id: if video { "V_MPEG4/ISO/AVC" } else { "A_AAC" }.to_owned(),
                    codec_private: private.map(Bytes::from),
                    name,
                    language: None,
                    default_duration_ns,
                    codec_delay_ns: None,
                    header_removal: None,
                    video: video.then_some(Video {
                        pixel_width: w,
                        pixel_height: h,
                        display_width: None,
                        display_height: None,
                    }),
                    audio: (!video).then_some(Audio {
                        sampling_frequency: rate,
                        output_sampling_frequency: None,
                        channels,
                        bit_depth: None,
                    }),
                }
            },
        )
}

fn doc() -> impl Strategy<Value = TestDoc> {
    (1u64..4)
        .prop_flat_map(|n| {
            (
                (1..=n).map(track).collect::<Vec<_>>(),
                prop_oneof![
                    Just(1_000_000u64),
                    Just(1),
                    Just(100_000),
                    Just(1_000_000_000)
                ],
                proptest::option::of(text()),
                proptest::collection::vec(cluster(n), 0..4),
                any::<bool>(),
            )
        })
        .prop_map(|(tracks, scale, title, clusters, webm)| TestDoc {
            header: if webm {
                EbmlHeader::webm()
            } else {
                EbmlHeader::kvs()
            },
            info: Info {
                timecode_scale: scale,
                segment_uid: Some(Bytes::from_static(&[7; 16])),
                title,
                muxing_app: Some("vigil-test".to_owned()),
                writing_app: None,
                duration: None,
                date_utc: None,
            },
            tracks,
            clusters,
        })
}

fn cluster(tracks: u64) -> impl Strategy<Value = TestCluster> {
    (
        // Up to 2^33 ticks: at the largest scale generated (1 s) that is still a time in ns
        // that fits an i64; beyond, the demuxer reports TimestampOverflow (tested elsewhere).
        0u64..(1 << 33),
        proptest::collection::vec(
            (
                1..=tracks,
                -32768i64..=32767,
                any::<bool>(),
                proptest::option::of(0u64..10_000),
                proptest::collection::vec(any::<u8>(), 0..600),
            ),
            0..12,
        ),
        proptest::collection::vec(tag(), 0..2),
    )
        .prop_map(|(timecode, frames, tags_after)| TestCluster {
            timecode,
            frames: frames
                .into_iter()
                .map(|(track, rel, keyframe, group_duration, data)| TestFrame {
                    track,
                    timecode: timecode as i64 + rel,
                    keyframe,
                    group_duration,
                    data,
                })
                .collect(),
            tags_after,
        })
}

fn mux(docs: &[TestDoc], opts: MuxerOptions) -> Vec<u8> {
    let mut m = Muxer::new(opts);
    for d in docs {
        m.begin_document(&d.header, &d.info, &d.tracks).unwrap();
        for c in &d.clusters {
            m.begin_cluster(c.timecode).unwrap();
            for f in &c.frames {
                match f.group_duration {
                    None => m
                        .write_simple_block(f.track, f.timecode, f.keyframe, &f.data)
                        .unwrap(),
                    Some(dur) => m
                        .write_block_group(
                            f.track,
                            f.timecode,
                            Some(dur),
                            (!f.keyframe).then_some(-1),
                            &f.data,
                        )
                        .unwrap(),
                }
            }
            if !c.tags_after.is_empty() {
                m.write_tags(&c.tags_after).unwrap();
            }
        }
        m.end_document().unwrap();
    }
    m.take()
}

/// What the events say, in the shape of the model.
fn read_back(events: &[Event]) -> Vec<TestDoc> {
    let mut docs: Vec<TestDoc> = Vec::new();
    for e in events {
        match e {
            Event::EbmlHeader { header, .. } => docs.push(TestDoc {
                header: header.clone(),
                info: Info::default(),
                tracks: Vec::new(),
                clusters: Vec::new(),
            }),
            Event::Info { info, .. } => docs.last_mut().unwrap().info = info.clone(),
            Event::Tracks { tracks, .. } => docs.last_mut().unwrap().tracks = tracks.clone(),
            Event::ClusterStart { timecode, .. } => {
                docs.last_mut().unwrap().clusters.push(TestCluster {
                    timecode: *timecode,
                    frames: Vec::new(),
                    tags_after: Vec::new(),
                })
            }
            Event::Frame(f) => docs
                .last_mut()
                .unwrap()
                .clusters
                .last_mut()
                .unwrap()
                .frames
                .push(TestFrame {
                    track: f.track,
                    timecode: f.timecode,
                    keyframe: f.keyframe,
                    // Not compared: BlockDuration has its own test.
                    group_duration: None,
                    data: f.data.to_vec(),
                }),
            // Tags before a document's first Cluster have no place in the model.
            Event::Tags { tags, .. } => {
                if let Some(c) = docs.last_mut().unwrap().clusters.last_mut() {
                    c.tags_after.extend(tags.iter().cloned());
                }
            }
            _ => {}
        }
    }
    docs
}

fn same(written: &[TestDoc], read: &[TestDoc]) -> Result<(), TestCaseError> {
    prop_assert_eq!(written.len(), read.len());
    for (w, r) in written.iter().zip(read) {
        prop_assert_eq!(&w.header, &r.header);
        // The muxer writes the mandatory WritingApp when the caller gives none.
        let mut info = w.info.clone();
        info.writing_app = info
            .writing_app
            .or_else(|| Some(vigil_mkv::DEFAULT_APP.to_owned()));
        prop_assert_eq!(&info, &r.info);
        prop_assert_eq!(&w.tracks, &r.tracks);
        prop_assert_eq!(w.clusters.len(), r.clusters.len());
        for (wc, rc) in w.clusters.iter().zip(&r.clusters) {
            prop_assert_eq!(wc.timecode, rc.timecode);
            prop_assert_eq!(&wc.tags_after, &rc.tags_after);
            prop_assert_eq!(wc.frames.len(), rc.frames.len());
            for (wf, rf) in wc.frames.iter().zip(&rc.frames) {
                prop_assert_eq!(wf.track, rf.track);
                prop_assert_eq!(wf.timecode, rf.timecode);
                prop_assert_eq!(wf.keyframe, rf.keyframe);
                prop_assert_eq!(&wf.data, &rf.data);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Whatever the muxer writes, with known or unknown sizes, one document or several back to
    /// back, parses back to the same values under any chunking.
    #[test]
    fn muxed_documents_parse_back_under_any_chunking(
        docs in proptest::collection::vec(doc(), 1..3),
        known in any::<bool>(),
        sizes in proptest::collection::vec(1usize..3000, 1..6),
    ) {
        let opts = if known { MuxerOptions::file() } else { MuxerOptions::streaming() };
        let bytes = mux(&docs, opts);
        let whole = Demuxer::read_all(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        same(&docs, &read_back(&whole))?;
        let chunked = demux_chunked(&bytes, &sizes);
        let whole: Vec<_> = whole.into_iter().map(Ok).collect();
        prop_assert!(chunked == whole, "chunking {:?} changed the events", sizes);
    }
}

#[test]
fn block_group_duration_and_reference() {
    let doc = TestDoc {
        header: EbmlHeader::kvs(),
        info: Info::default(),
        tracks: vec![TrackEntry {
            number: 1,
            uid: 1,
            track_type: 0x11,
            codec_id: "S_TEXT/UTF8".to_owned(),
            ..Default::default()
        }],
        clusters: vec![TestCluster {
            timecode: 1000,
            frames: vec![
                TestFrame {
                    track: 1,
                    timecode: 1200,
                    keyframe: true,
                    group_duration: Some(600),
                    data: b"hello".to_vec(),
                },
                TestFrame {
                    track: 1,
                    timecode: 999,
                    keyframe: false,
                    group_duration: Some(5),
                    data: b"world".to_vec(),
                },
            ],
            tags_after: Vec::new(),
        }],
    };
    let events = demux_ok(&mux(std::slice::from_ref(&doc), MuxerOptions::file()));
    let frames: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Frame(f) => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0].duration_ns, Some(600_000_000));
    assert!(frames[0].keyframe);
    assert_eq!(frames[1].timecode, 999);
    assert!(
        !frames[1].keyframe,
        "a ReferenceBlock makes it a delta frame"
    );
}

/// Re-muxes a capture's frames as a KVS producer lays them out (unknown sizes, a Cluster per
/// video key frame, the end-of-fragment Tag last) and as a file (known sizes); ffmpeg decodes
/// both without a complaint and ffprobe sees the same packets.
#[test]
fn ffmpeg_plays_remuxed_captures() {
    let src = testdata("ffmpeg_h264-aac.mkv");
    let events = demux_ok(&read(&src));
    let info = first_info(&events);
    let tracks = first_tracks(&events);
    let video = tracks.iter().find(|t| t.video.is_some()).unwrap().number;
    let tmp = TempDir::new("remux");
    for (name, opts) in [
        ("kvs.mkv", MuxerOptions::streaming()),
        ("file.mkv", MuxerOptions::file()),
    ] {
        let mut m = Muxer::new(opts);
        m.begin_document(&EbmlHeader::kvs(), &info, &tracks)
            .unwrap();
        let mut open = false;
        for e in &events {
            let Event::Frame(f) = e else { continue };
            if !open || (f.track == video && f.keyframe) {
                m.begin_cluster(f.timecode.max(0) as u64).unwrap();
                open = true;
            }
            m.write_simple_block(f.track, f.timecode, f.keyframe, &f.data)
                .unwrap();
        }
        m.write_tags(&[Tag {
            targets: Targets::default(),
            simple_tags: vec![SimpleTag::string("AWS_KINESISVIDEO_END_OF_FRAGMENT", "")],
        }])
        .unwrap();
        m.end_document().unwrap();
        let path = tmp.0.join(name);
        std::fs::write(&path, m.take()).unwrap();
        ffmpeg_decode(&path).unwrap_or_else(|e| panic!("ffmpeg rejects {name}: {e}"));
        let ours = ffprobe_packets(&path);
        let theirs = ffprobe_packets(&src);
        assert_eq!(ours, theirs, "{name}");
    }
}

/// GetMedia's output: one EBML document per fragment, each with the producer's Info and Tracks,
/// the fragment's Tags before the Cluster (stored bytes forwarded as they are) and the
/// continuation Tags after it (`shared/spec/kvs-api.md` §3).
#[test]
fn getmedia_documents_from_stored_clusters() {
    let body = read(&kvs_capture("video/putmedia-body.mkv"));
    let events = demux_ok(&body);
    let info = first_info(&events);
    let tracks = first_tracks(&events);
    let clusters: Vec<(u64, u64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::ClusterEnd { offset, end } => Some((*offset, *end)),
            _ => None,
        })
        .collect();
    // The producer's Info and Tracks bytes, forwarded as ingested.
    let head: Vec<u8> = events
        .iter()
        .filter_map(|e| match e {
            Event::Info { span, .. } | Event::Tracks { span, .. } => {
                Some(&body[span.offset as usize..span.end().unwrap() as usize])
            }
            _ => None,
        })
        .flatten()
        .copied()
        .collect();
    let mut m = Muxer::new(MuxerOptions::streaming());
    for (i, (start, end)) in clusters.iter().enumerate() {
        let number = format!("9134385233318153150216160785295553073050467515{i}");
        m.begin_segment(&EbmlHeader::kvs()).unwrap();
        m.write_raw(&head).unwrap();
        m.write_tags(&[Tag {
            targets: Targets::default(),
            simple_tags: vec![
                SimpleTag::string("AWS_KINESISVIDEO_FRAGMENT_NUMBER", number.clone()),
                SimpleTag::string("AWS_KINESISVIDEO_SERVER_TIMESTAMP", "1795320641.700"),
                SimpleTag::string("AWS_KINESISVIDEO_PRODUCER_TIMESTAMP", "1795320641.601"),
            ],
        }])
        .unwrap();
        m.write_raw(&body[*start as usize..*end as usize]).unwrap();
        m.write_tags(&[Tag {
            targets: Targets::default(),
            simple_tags: vec![
                SimpleTag::string("AWS_KINESISVIDEO_MILLIS_BEHIND_NOW", "78569"),
                SimpleTag::string("AWS_KINESISVIDEO_CONTINUATION_TOKEN", number),
            ],
        }])
        .unwrap();
        m.end_document().unwrap();
    }
    let out = m.take();
    let read_events = demux_ok(&out);
    let docs = read_back(&read_events);
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0].tracks, tracks);
    assert_eq!(docs[1].info, info);
    let frames = |evs: &[Event]| -> Vec<(i64, bool, Bytes)> {
        evs.iter()
            .filter_map(|e| match e {
                Event::Frame(f) => Some((f.timecode, f.keyframe, f.data.clone())),
                _ => None,
            })
            .collect()
    };
    assert_eq!(frames(&read_events), frames(&events));
    // The fragment tags come before each Cluster, the continuation tags after it.
    let order: Vec<&str> = read_events
        .iter()
        .filter_map(|e| match e {
            Event::EbmlHeader { .. } => Some("ebml"),
            Event::Tags { tags, .. } => Some(match tags[0].simple_tags[0].name.as_str() {
                "AWS_KINESISVIDEO_FRAGMENT_NUMBER" => "fragment-tags",
                _ => "continuation-tags",
            }),
            Event::ClusterStart { .. } => Some("cluster"),
            Event::ClusterEnd { .. } => Some("cluster-end"),
            _ => None,
        })
        .collect();
    assert_eq!(
        order,
        [
            "ebml",
            "fragment-tags",
            "cluster",
            "cluster-end",
            "continuation-tags"
        ]
        .repeat(2)
    );
    // One fragment's document alone is a file ffmpeg plays.
    let second = read_events
        .iter()
        .filter_map(|e| match e {
            Event::EbmlHeader { span, .. } => Some(span.offset as usize),
            _ => None,
        })
        .nth(1)
        .unwrap();
    let tmp = TempDir::new("getmedia");
    let path = tmp.0.join("fragment.mkv");
    std::fs::write(&path, &out[..second]).unwrap();
    ffmpeg_decode(&path).unwrap_or_else(|e| panic!("ffmpeg rejects a fragment: {e}"));
    assert_eq!(ffprobe_packets(&path).len(), 45);
}

/// Header stripping (ContentCompAlgo 3): the KVS capture's frames all start with the same five
/// bytes (an AVCC length of 2 and an access unit delimiter). A file that stores them stripped
/// is decoded by ffmpeg, and the demuxer gives back the original frames, as ffprobe does.
#[test]
fn header_stripped_frames_are_restored() {
    use vigil_mkv::{ebml, encode_info, ids};
    let events = demux_ok(&read(&kvs_capture("video/putmedia-body.mkv")));
    let originals: Vec<&vigil_mkv::Frame> = events
        .iter()
        .filter_map(|e| match e {
            Event::Frame(f) => Some(f),
            _ => None,
        })
        .collect();
    let prefix = originals[0].data.slice(..5);
    assert!(originals.iter().all(|f| f.data.starts_with(&prefix)));
    let track = events
        .iter()
        .find_map(|e| match e {
            Event::Tracks { tracks, .. } => Some(tracks[0].clone()),
            _ => None,
        })
        .unwrap();

    let mut out = Vec::new();
    vigil_mkv::encode_ebml_header(&mut out, &EbmlHeader::kvs());
    ebml::write_master(&mut out, ids::SEGMENT, |o| {
        encode_info(o, &Info::default());
        ebml::write_master(o, ids::TRACKS, |o| {
            ebml::write_master(o, ids::TRACK_ENTRY, |o| {
                ebml::write_uint(o, ids::TRACK_NUMBER, 1);
                ebml::write_uint(o, ids::TRACK_UID, 1);
                ebml::write_uint(o, ids::TRACK_TYPE, 1);
                ebml::write_binary(o, ids::CODEC_ID, track.codec_id.as_bytes());
                ebml::write_binary(o, ids::CODEC_PRIVATE, track.codec_private.as_ref().unwrap());
                ebml::write_master(o, ids::VIDEO, |o| {
                    ebml::write_uint(o, ids::PIXEL_WIDTH, 640);
                    ebml::write_uint(o, ids::PIXEL_HEIGHT, 480);
                });
                ebml::write_master(o, ids::CONTENT_ENCODINGS, |o| {
                    ebml::write_master(o, ids::CONTENT_ENCODING, |o| {
                        ebml::write_master(o, ids::CONTENT_COMPRESSION, |o| {
                            ebml::write_uint(o, ids::CONTENT_COMP_ALGO, 3);
                            ebml::write_binary(o, ids::CONTENT_COMP_SETTINGS, &prefix);
                        });
                    });
                });
            });
        });
        ebml::write_master(o, ids::CLUSTER, |o| {
            ebml::write_uint(o, ids::TIMESTAMP, 0);
            for (i, f) in originals.iter().enumerate() {
                let mut block = vec![0x81, 0, (i * 40 % 256) as u8, 0];
                block[1] = (i * 40 / 256) as u8;
                block[3] = if f.keyframe { 0x80 } else { 0 };
                block.extend_from_slice(&f.data[5..]);
                ebml::write_binary(o, ids::SIMPLE_BLOCK, &block);
            }
        });
    });

    let restored = demux_ok(&out);
    let tracks = restored.iter().find_map(|e| match e {
        Event::Tracks { tracks, .. } => Some(tracks[0].header_removal.clone()),
        _ => None,
    });
    assert_eq!(tracks, Some(Some(prefix.clone())));
    let frames: Vec<Bytes> = restored
        .iter()
        .filter_map(|e| match e {
            Event::Frame(f) => Some(f.data.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(frames.len(), originals.len());
    assert!(frames.iter().zip(&originals).all(|(a, b)| a == &b.data));

    let tmp = TempDir::new("header-removal");
    let path = tmp.0.join("stripped.mkv");
    std::fs::write(&path, &out).unwrap();
    ffmpeg_decode(&path).unwrap_or_else(|e| panic!("ffmpeg rejects the stripped file: {e}"));
    let packets = ffprobe_packets(&path);
    assert!(
        packets
            .iter()
            .map(|p| &p.data[..])
            .eq(frames.iter().map(|f| &f[..]))
    );
}
