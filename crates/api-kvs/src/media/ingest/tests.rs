//! The ingest session's tests: documents built with the muxer, fed in every chunking.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use vigil_mkv::{
    EbmlHeader, Info, Muxer, MuxerOptions, SimpleTag, Tag, TrackEntry, Video, encode_tags,
};

use super::tags::is_plain;
use super::*;

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

fn tag(name: &str, value: &str) -> Tag {
    Tag {
        simple_tags: vec![SimpleTag::string(name, value)],
        ..Tag::default()
    }
}

fn eofr() -> Tag {
    tag(END_OF_FRAGMENT_TAG, "")
}

/// A muxer with a document of `tracks` tracks begun; returns it and the header bytes.
fn document(tracks: u64) -> (Muxer, Vec<u8>) {
    let mut m = Muxer::new(MuxerOptions::streaming());
    let tracks: Vec<TrackEntry> = (1..=tracks).map(track).collect();
    m.begin_document(&EbmlHeader::kvs(), &Info::default(), &tracks)
        .unwrap();
    let head = m.take();
    (m, head)
}

/// Runs `input` through a machine in chunks of `size`, then ends it.
fn run(input: &[u8], size: usize, how: EndOfInput) -> Vec<Op> {
    let mut ingest = Ingest::new(TimecodeType::Absolute);
    let mut ops = Vec::new();
    for chunk in input.chunks(size.max(1)) {
        ingest.push(chunk);
        while let Some(op) = ingest.next_op() {
            ops.push(op);
        }
    }
    ingest.finish(how);
    while let Some(op) = ingest.next_op() {
        ops.push(op);
    }
    ops
}

/// Merges consecutive appends, so that chunkings compare equal.
fn merged(ops: Vec<Op>) -> Vec<Op> {
    let mut out: Vec<Op> = Vec::new();
    for op in ops {
        if let (Op::Append(b), Some(Op::Append(prev))) = (&op, out.last_mut()) {
            let mut v = prev.to_vec();
            v.extend_from_slice(b);
            *prev = Bytes::from(v);
            continue;
        }
        out.push(op);
    }
    out
}

fn error_of(ops: &[Op]) -> Option<(AckError, Option<u64>)> {
    ops.iter().find_map(|op| match op {
        Op::Error {
            error, timecode, ..
        } => Some((*error, *timecode)),
        _ => None,
    })
}

#[test]
fn clusters_and_tags_become_fragments_whatever_the_chunking() {
    let (mut m, head) = document(1);
    m.write_tags(&[tag("EARLY", "1")]).unwrap();
    let early = m.take();
    m.begin_cluster(1000).unwrap();
    for i in 0..10 {
        m.write_simple_block(1, 1000 + i * 40, i == 0, &[i as u8; 50])
            .unwrap();
    }
    let cluster1 = m.take();
    m.write_tags(&[tag("A", "x")]).unwrap();
    let tags_a = m.take();
    m.write_tags(&[eofr()]).unwrap();
    let eofr1 = m.take();
    m.begin_cluster(1400).unwrap();
    m.write_simple_block(1, 1400, true, &[9; 10]).unwrap();
    m.write_simple_block(1, 1440, false, &[9; 10]).unwrap();
    let cluster2 = m.take();
    let input = [
        head.clone(),
        early.clone(),
        cluster1.clone(),
        tags_a.clone(),
        eofr1,
        cluster2.clone(),
    ]
    .concat();

    let expected = vec![
        // EBML header + unknown-size Segment + Info + Tracks: what the muxer wrote.
        Op::RegisterHeader(Bytes::from(head.clone())),
        Op::Begin {
            timecode: 1000,
            producer_ts_ms: 1000,
        },
        Op::Append(Bytes::from([cluster1, early, tags_a].concat())),
        Op::Complete { duration_ms: 400 },
        Op::Begin {
            timecode: 1400,
            producer_ts_ms: 1400,
        },
        Op::Append(Bytes::from(cluster2)),
        Op::Complete { duration_ms: 80 },
        Op::End,
    ];
    for size in [1, 2, 3, 7, 64, 1000, usize::MAX] {
        let ops = merged(run(&input, size, EndOfInput::BodyEnd));
        assert_eq!(ops, expected, "chunk size {size}");
    }
}

#[test]
fn frames_are_appended_as_soon_as_they_are_whole() {
    let (mut m, head) = document(1);
    m.begin_cluster(0).unwrap();
    m.write_simple_block(1, 0, true, &[1; 100]).unwrap();
    let first = m.take();
    m.write_simple_block(1, 40, false, &[2; 100]).unwrap();
    let second = m.take();
    let mut ingest = Ingest::new(TimecodeType::Relative { start_ms: 5000 });
    ingest.push(&head);
    ingest.push(&first);
    let mut ops = Vec::new();
    while let Some(op) = ingest.next_op() {
        ops.push(op);
    }
    assert!(matches!(
        ops[1],
        Op::Begin {
            timecode: 0,
            producer_ts_ms: 5000
        }
    ));
    let appended: usize = ops
        .iter()
        .map(|op| match op {
            Op::Append(b) => b.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(appended, first.len());
    // Half a frame: nothing new.
    ingest.push(&second[..50]);
    assert_eq!(ingest.next_op(), None);
    ingest.push(&second[50..]);
    assert_eq!(ingest.next_op(), Some(Op::Append(Bytes::from(second))));
    assert!(ingest.in_fragment());
}

#[test]
fn reserved_only_tags_are_not_stored_and_the_last_fragment_ends_at_the_body_end() {
    let (mut m, head) = document(1);
    m.begin_cluster(0).unwrap();
    m.write_simple_block(1, 0, true, &[1; 10]).unwrap();
    let cluster = m.take();
    m.write_tags(&[tag("AWS_KINESISVIDEO_NOTIFICATION", "")])
        .unwrap();
    let input = [head, cluster.clone(), m.take()].concat();
    let ops = merged(run(&input, 5, EndOfInput::BodyEnd));
    assert_eq!(ops[2], Op::Append(Bytes::from(cluster)));
    assert_eq!(ops[3], Op::Complete { duration_ms: 0 });
    assert_eq!(ops[4], Op::End);
}

#[test]
fn errors_end_the_session() {
    // 4004: the second Cluster is earlier.
    let (mut m, head) = document(1);
    m.begin_cluster(2000).unwrap();
    m.write_simple_block(1, 2000, true, &[1]).unwrap();
    m.begin_cluster(1000).unwrap();
    m.write_simple_block(1, 1000, true, &[1]).unwrap();
    let ops = run(&[head, m.take()].concat(), 9, EndOfInput::BodyEnd);
    assert_eq!(
        error_of(&ops),
        Some((AckError::FragmentTimecodeLesserThanPrevious, Some(1000)))
    );
    assert!(ops.contains(&Op::Complete { duration_ms: 0 }));
    assert_eq!(ops.last(), Some(&Op::End));

    // 4010: a frame on track 2 of a one-track stream.
    let (mut m, head) = document(1);
    m.begin_cluster(0).unwrap();
    m.write_simple_block(2, 0, true, &[1]).unwrap();
    let ops = run(&[head, m.take()].concat(), 4, EndOfInput::BodyEnd);
    assert_eq!(error_of(&ops), Some((AckError::TrackNumberMismatch, None)));

    // 4012: four tracks.
    let (_, head) = document(4);
    let ops = run(&head, 100, EndOfInput::BodyEnd);
    assert_eq!(
        error_of(&ops),
        Some((AckError::MoreThanAllowedTracksFound, None))
    );

    // 4002: a frame 25 s into its Cluster.
    let (mut m, head) = document(1);
    m.begin_cluster(0).unwrap();
    m.write_simple_block(1, 0, true, &[1]).unwrap();
    m.write_simple_block(1, 25_000, false, &[1]).unwrap();
    let ops = run(&[head, m.take()].concat(), 100, EndOfInput::BodyEnd);
    assert_eq!(
        error_of(&ops),
        Some((AckError::MaxFragmentDurationReached, None))
    );

    // 4009: eleven custom tags, an AWS name, a long value.
    for tags in [
        (0..11)
            .map(|i| tag(&format!("K{i}"), "v"))
            .collect::<Vec<_>>(),
        vec![tag("AWSX", "v")],
        vec![tag("K", &"v".repeat(257))],
    ] {
        let (mut m, head) = document(1);
        m.begin_cluster(0).unwrap();
        m.write_simple_block(1, 0, true, &[1]).unwrap();
        m.write_tags(&tags).unwrap();
        let ops = run(&[head, m.take()].concat(), 100, EndOfInput::BodyEnd);
        assert_eq!(
            error_of(&ops),
            Some((AckError::FragmentMetadataLimitReached, None))
        );
        assert!(!ops.iter().any(|op| matches!(op, Op::Complete { .. })));
    }

    // 4006: a second EBML header; garbage; a truncated body (4000 when it broke off).
    let (mut m, head) = document(1);
    m.begin_cluster(0).unwrap();
    m.write_simple_block(1, 0, true, &[1]).unwrap();
    let body = [head.clone(), m.take(), head.clone()].concat();
    let ops = run(&body, 3, EndOfInput::BodyEnd);
    assert_eq!(error_of(&ops), Some((AckError::InvalidMkvData, None)));
    let ops = run(
        &[&head[..], &[0x00, 0x00, 0x00]].concat(),
        3,
        EndOfInput::BodyEnd,
    );
    assert_eq!(error_of(&ops), Some((AckError::InvalidMkvData, None)));
    let cut = &head[..head.len() - 3];
    let ops = run(cut, 3, EndOfInput::BodyEnd);
    assert_eq!(error_of(&ops), Some((AckError::InvalidMkvData, None)));
    let ops = run(cut, 3, EndOfInput::Idle);
    assert_eq!(error_of(&ops), Some((AckError::StreamReadError, None)));
}

/// A body that breaks off between two frames of a Cluster drops that fragment (4000, the
/// producer resends it) and keeps the fragments before it; the same bytes ending cleanly
/// complete it.
#[test]
fn a_broken_body_drops_the_fragment_in_progress() {
    let (mut m, head) = document(1);
    m.begin_cluster(0).unwrap();
    m.write_simple_block(1, 0, true, &[1]).unwrap();
    m.begin_cluster(1000).unwrap();
    m.write_simple_block(1, 1000, true, &[2]).unwrap();
    m.write_simple_block(1, 1040, false, &[3]).unwrap();
    let body = [head, m.take()].concat();
    let completes = |ops: &[Op]| {
        ops.iter()
            .filter(|op| matches!(op, Op::Complete { .. }))
            .count()
    };
    let ops = run(&body, 5, EndOfInput::ReadError);
    assert_eq!(
        error_of(&ops),
        Some((AckError::StreamReadError, Some(1000)))
    );
    assert_eq!(completes(&ops), 1);
    let ops = run(&body, 5, EndOfInput::BodyEnd);
    assert_eq!(error_of(&ops), None);
    assert_eq!(completes(&ops), 2);
    let ops = run(&body, 5, EndOfInput::Idle);
    assert_eq!(completes(&ops), 2);

    // Broken between fragments (the chunked framing, say): nothing is dropped, but the
    // session still ends with 4000 rather than in silence.
    m.write_tags(&[eofr()]).unwrap();
    let whole = [&body[..], &m.take()[..]].concat();
    for cut in [whole.as_slice(), &head_of(&whole)] {
        let ops = run(cut, 5, EndOfInput::ReadError);
        assert_eq!(error_of(&ops), Some((AckError::StreamReadError, None)));
        assert_eq!(ops.last(), Some(&Op::End));
    }
    assert_eq!(completes(&run(&whole, 5, EndOfInput::ReadError)), 2);
}

/// The document header of `body` (everything before its first Cluster).
fn head_of(body: &[u8]) -> Vec<u8> {
    let at = body
        .windows(4)
        .position(|w| w == ids::CLUSTER.to_be_bytes())
        .unwrap();
    body[..at].to_vec()
}

/// The bytes a machine appends after the first fragment's Cluster: its stored Tags.
fn stored_tags(input: &[u8], cluster_len: usize) -> Vec<u8> {
    let ops = merged(run(input, 7, EndOfInput::BodyEnd));
    assert_eq!(error_of(&ops), None, "{ops:?}");
    let appended: Vec<u8> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Append(b) => Some(b.to_vec()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .concat();
    appended[cluster_len..].to_vec()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn nested(name: &str, value: &str, children: Vec<SimpleTag>) -> SimpleTag {
    SimpleTag {
        children,
        ..SimpleTag::string(name, value)
    }
}

#[test]
fn reserved_tags_are_refused_or_never_stored() {
    // Names GetMedia's readers act on: refused alone, beside a custom tag, nested in one.
    for forged in [
        "AWS_KINESISVIDEO_CONTINUATION_TOKEN",
        "AWS_KINESISVIDEO_MILLIS_BEHIND_NOW",
        "AWS_KINESISVIDEO_ERROR_CODE",
        "AWS_KINESISVIDEO_FRAGMENT_ABORTED",
        "AWS_KINESISVIDEO_FRAGMENT_NUMBER",
    ] {
        for simple_tags in [
            vec![SimpleTag::string(forged, "1")],
            vec![
                SimpleTag::string("CAMERA", "x"),
                SimpleTag::string(forged, "1"),
            ],
            vec![nested("CAMERA", "x", vec![SimpleTag::string(forged, "1")])],
        ] {
            let (mut m, head) = document(1);
            m.begin_cluster(0).unwrap();
            m.write_simple_block(1, 0, true, &[1]).unwrap();
            m.write_tags(&[Tag {
                simple_tags,
                ..Tag::default()
            }])
            .unwrap();
            let ops = run(&[head, m.take()].concat(), 5, EndOfInput::BodyEnd);
            assert_eq!(
                error_of(&ops),
                Some((AckError::FragmentMetadataLimitReached, None)),
                "{forged}"
            );
            assert!(!ops.iter().any(|op| matches!(op, Op::Complete { .. })));
        }
    }

    // The families producers send are accepted and not stored; the custom tags beside or
    // under them are, with their nesting.
    let (mut m, head) = document(1);
    m.begin_cluster(0).unwrap();
    m.write_simple_block(1, 0, true, &[1]).unwrap();
    let cluster = m.take();
    let sent = [
        Tag {
            simple_tags: vec![
                SimpleTag::string("AWS_KINESISVIDEO_IMAGE_GENERATION", ""),
                SimpleTag::string("AWS_KINESISVIDEO_IMAGE_PREFIX", "cam1/"),
                nested("CAMERA", "front", vec![SimpleTag::string("LENS", "wide")]),
            ],
            ..Tag::default()
        },
        Tag {
            simple_tags: vec![nested(
                "AWS_KINESISVIDEO_NOTIFICATION",
                "",
                vec![SimpleTag::string("EVENT", "motion")],
            )],
            ..Tag::default()
        },
    ];
    m.write_tags(&sent).unwrap();
    m.write_tags(&[eofr()]).unwrap();
    let tags = stored_tags(
        &[head.clone(), cluster.clone(), m.take()].concat(),
        cluster.len(),
    );
    let mut expected = Vec::new();
    encode_tags(
        &mut expected,
        &[
            Tag {
                simple_tags: vec![nested(
                    "CAMERA",
                    "front",
                    vec![SimpleTag::string("LENS", "wide")],
                )],
                ..Tag::default()
            },
            Tag {
                simple_tags: vec![SimpleTag::string("EVENT", "motion")],
                ..Tag::default()
            },
        ],
    );
    assert_eq!(tags, expected);
    assert!(!contains(&tags, b"AWS"));

    // Custom tags alone are stored as sent (with the 8-byte sizes the PIC writes).
    let mut encoded = Vec::new();
    encode_tags(&mut encoded, &[tag_of(&[("CAMERA", "front")])]);
    let h = vigil_mkv::ebml::read_header(&encoded).unwrap().unwrap();
    let mut custom = Vec::new();
    vigil_mkv::ebml::write_id(&mut custom, ids::TAGS);
    vigil_mkv::ebml::write_vint_width(
        &mut custom,
        (encoded.len() - usize::from(h.header_len)) as u64,
        8,
    );
    custom.extend_from_slice(&encoded[usize::from(h.header_len)..]);
    let tags = stored_tags(
        &[head, cluster.clone(), custom.clone()].concat(),
        cluster.len(),
    );
    assert_eq!(tags, custom);
}

fn tag_of(pairs: &[(&str, &str)]) -> Tag {
    Tag {
        simple_tags: pairs
            .iter()
            .map(|(k, v)| SimpleTag::string(*k, *v))
            .collect(),
        ..Tag::default()
    }
}

#[test]
fn tags_holding_what_the_decoder_skips_are_re_encoded() {
    use vigil_mkv::ebml::{write_binary, write_master};
    const FORGED: &[u8] = b"AWS_KINESISVIDEO_CONTINUATION_TOKEN";
    // Each decodes to custom tags only, but a parser that pairs names and values by their
    // SimpleTag (the KVS parser library) or reads elements wherever they are would find
    // the forged name in the raw bytes.
    let hidden: [fn(&mut Vec<u8>); 4] = [
        // Two names in one SimpleTag: the decoder keeps the last.
        |o| {
            write_master(o, ids::SIMPLE_TAG, |o| {
                write_binary(o, ids::TAG_NAME, FORGED);
                write_binary(o, ids::TAG_STRING, b"forged");
                write_binary(o, ids::TAG_NAME, b"CAMERA");
            });
        },
        // A name with a NUL, which the decoder cuts.
        |o| {
            write_master(o, ids::SIMPLE_TAG, |o| {
                write_binary(o, ids::TAG_NAME, b"CAMERA\0AWS_KINESISVIDEO_X");
                write_binary(o, ids::TAG_STRING, b"front");
            });
        },
        // A SimpleTag inside Targets, which the decoder does not look into.
        |o| {
            write_master(o, ids::TARGETS, |o| {
                write_master(o, ids::SIMPLE_TAG, |o| {
                    write_binary(o, ids::TAG_NAME, FORGED);
                    write_binary(o, ids::TAG_STRING, b"forged");
                });
            });
            write_master(o, ids::SIMPLE_TAG, |o| {
                write_binary(o, ids::TAG_NAME, b"CAMERA");
                write_binary(o, ids::TAG_STRING, b"front");
            });
        },
        // Two values in one SimpleTag (the parser library fails on it).
        |o| {
            write_master(o, ids::SIMPLE_TAG, |o| {
                write_binary(o, ids::TAG_NAME, b"CAMERA");
                write_binary(o, ids::TAG_STRING, b"front");
                write_binary(o, ids::TAG_STRING, b"back");
            });
        },
    ];
    for (i, body) in hidden.iter().enumerate() {
        let (mut m, head) = document(1);
        m.begin_cluster(0).unwrap();
        m.write_simple_block(1, 0, true, &[1]).unwrap();
        let cluster = m.take();
        let mut tags = Vec::new();
        write_master(&mut tags, ids::TAGS, |o| write_master(o, ids::TAG, *body));
        let stored = stored_tags(
            &[head, cluster.clone(), tags.clone()].concat(),
            cluster.len(),
        );
        assert_ne!(stored, tags, "case {i}");
        assert!(is_plain(&Bytes::from(stored.clone())), "case {i}");
        assert!(!contains(&stored, b"AWS"), "case {i}");
        assert!(contains(&stored, b"CAMERA"), "case {i}");
    }
}

#[test]
fn no_frame_may_come_before_the_previous_fragments_latest() {
    // Fragment 1: frames at 1000 … 1360 ms (10, 40 ms apart).
    let first = |m: &mut Muxer| {
        m.begin_cluster(1000).unwrap();
        for i in 0..10 {
            m.write_simple_block(1, 1000 + i * 40, i == 0, &[1])
                .unwrap();
        }
    };
    // A Cluster after fragment 1 began but before its last frame: refused before it begins.
    let (mut m, head) = document(1);
    first(&mut m);
    m.begin_cluster(1200).unwrap();
    m.write_simple_block(1, 1200, true, &[2]).unwrap();
    let ops = run(&[head, m.take()].concat(), 11, EndOfInput::BodyEnd);
    assert_eq!(
        error_of(&ops),
        Some((AckError::FragmentTimecodeLesserThanPrevious, Some(1200)))
    );
    assert_eq!(
        ops.iter().filter(|o| matches!(o, Op::Begin { .. })).count(),
        1
    );

    // A Cluster in order whose first frame (a negative block offset) is before it: the
    // fragment begins, then fails.
    let (mut m, head) = document(1);
    first(&mut m);
    m.begin_cluster(1400).unwrap();
    m.write_simple_block(1, 1300, true, &[2]).unwrap();
    let ops = run(&[head, m.take()].concat(), 11, EndOfInput::BodyEnd);
    assert_eq!(
        error_of(&ops),
        Some((AckError::FragmentTimecodeLesserThanPrevious, None))
    );
    assert_eq!(
        ops.iter().filter(|o| matches!(o, Op::Begin { .. })).count(),
        2
    );
    assert_eq!(
        ops.iter()
            .filter(|o| matches!(o, Op::Complete { .. }))
            .count(),
        1
    );

    // At the last frame's time, at its end, or later (another track too): accepted.
    for (cluster, frames) in [
        (1360, vec![(1, 1360)]),
        (1400, vec![(1, 1400), (2, 1400)]),
        (1360, vec![(2, 1360), (1, 1400)]),
    ] {
        let (mut m, head) = document(2);
        first(&mut m);
        m.begin_cluster(cluster).unwrap();
        for (track, t) in frames {
            m.write_simple_block(track, t, track == 1, &[3]).unwrap();
        }
        let ops = run(&[head, m.take()].concat(), 11, EndOfInput::BodyEnd);
        assert_eq!(error_of(&ops), None, "Cluster at {cluster}: {ops:?}");
        assert_eq!(
            ops.iter()
                .filter(|o| matches!(o, Op::Complete { .. }))
                .count(),
            2
        );
    }
}

#[test]
fn the_duration_counts_the_last_frame() {
    // Frames without durations, 40 ms apart: the last one lasts 40 ms too.
    let (mut m, head) = document(2);
    m.begin_cluster(100).unwrap();
    for i in 0..45 {
        m.write_simple_block(1, 100 + i * 40, i == 0, &[1]).unwrap();
        m.write_simple_block(2, 101 + i * 40, false, &[2]).unwrap();
    }
    m.write_tags(&[eofr()]).unwrap();
    let ops = run(&[head, m.take()].concat(), 17, EndOfInput::BodyEnd);
    assert!(ops.contains(&Op::Complete { duration_ms: 1801 }), "{ops:?}");

    // A BlockDuration is used as given.
    let (mut m, head) = document(1);
    m.begin_cluster(0).unwrap();
    m.write_block_group(1, 0, Some(700), None, &[1]).unwrap();
    let ops = run(&[head, m.take()].concat(), 17, EndOfInput::BodyEnd);
    assert!(ops.contains(&Op::Complete { duration_ms: 700 }), "{ops:?}");
}

#[test]
fn drain_and_expiry_end_after_the_fragment() {
    let (mut m, head) = document(1);
    m.begin_cluster(0).unwrap();
    m.write_simple_block(1, 0, true, &[1]).unwrap();
    let c1 = m.take();
    m.begin_cluster(1000).unwrap();
    m.write_simple_block(1, 1000, true, &[1]).unwrap();
    let c2 = m.take();

    let mut ingest = Ingest::new(TimecodeType::Absolute);
    ingest.push(&head);
    ingest.push(&c1);
    ingest.drain();
    assert!(!ingest.is_ended());
    ingest.push(&c2);
    let ops: Vec<Op> = std::iter::from_fn(|| ingest.next_op()).collect();
    assert_eq!(
        ops.iter().filter(|o| matches!(o, Op::Begin { .. })).count(),
        1
    );
    assert_eq!(ops[ops.len() - 2], Op::Complete { duration_ms: 0 });
    assert_eq!(ops.last(), Some(&Op::End));

    let mut ingest = Ingest::new(TimecodeType::Absolute);
    ingest.push(&head);
    ingest.push(&c1);
    ingest.expire();
    ingest.push(&c2);
    let ops: Vec<Op> = std::iter::from_fn(|| ingest.next_op()).collect();
    assert_eq!(
        error_of(&ops),
        Some((AckError::MaxConnectionDurationReached, Some(1000)))
    );
    assert!(ops.contains(&Op::Complete { duration_ms: 0 }));
}

#[test]
fn displacement_ends_after_the_fragment_with_an_error() {
    let (mut m, head) = document(1);
    m.begin_cluster(0).unwrap();
    m.write_simple_block(1, 0, true, &[1]).unwrap();
    let c1 = m.take();
    m.begin_cluster(1000).unwrap();
    m.write_simple_block(1, 1000, true, &[1]).unwrap();
    let c2 = m.take();
    m.write_tags(&[eofr()]).unwrap();
    let eofr1 = m.take();
    m.write_tags(&[tag("A", "x")]).unwrap();
    let tags_a = m.take();
    let ops_of =
        |ingest: &mut Ingest| -> Vec<Op> { std::iter::from_fn(|| ingest.next_op()).collect() };
    let displaced = |timecode| Some((DISPLACED_ERROR, timecode));

    // In a Cluster: the fragment completes at the next Cluster, which the error names.
    let mut ingest = Ingest::new(TimecodeType::Absolute);
    ingest.push(&head);
    ingest.push(&c1);
    ingest.displace();
    assert!(!ingest.is_ended());
    ingest.push(&c2);
    let ops = ops_of(&mut ingest);
    assert_eq!(error_of(&ops), displaced(Some(1000)));
    let n = ops.len();
    assert_eq!(ops[n - 3], Op::Complete { duration_ms: 0 });
    assert!(matches!(ops[n - 2], Op::Error { .. }));
    assert_eq!(ops[n - 1], Op::End);
    assert_eq!(
        ops.iter().filter(|o| matches!(o, Op::Begin { .. })).count(),
        1
    );

    // Or at an end-of-fragment tag, with no next Cluster to name.
    let mut ingest = Ingest::new(TimecodeType::Absolute);
    ingest.push(&head);
    ingest.push(&c1);
    ingest.displace();
    ingest.push(&eofr1);
    let ops = ops_of(&mut ingest);
    assert_eq!(error_of(&ops), displaced(None));
    assert!(ops.contains(&Op::Complete { duration_ms: 0 }));
    assert!(ingest.is_ended());

    // Between fragments, or with the Cluster ended: at once.
    let inputs = [
        ([&head[..], &c1, &eofr1].concat(), 1),
        ([&head[..], &c1, &tags_a].concat(), 1),
        (head.clone(), 0),
    ];
    for (input, expected) in inputs {
        let mut ingest = Ingest::new(TimecodeType::Absolute);
        ingest.push(&input);
        let before = ops_of(&mut ingest);
        ingest.displace();
        assert!(ingest.is_ended());
        let ops = ops_of(&mut ingest);
        assert_eq!(error_of(&ops), displaced(None));
        assert_eq!(ops.last(), Some(&Op::End));
        let completed = [before, ops].concat();
        assert_eq!(
            completed
                .iter()
                .filter(|o| matches!(o, Op::Complete { .. }))
                .count(),
            expected
        );
    }

    // A body that ends first ends the session as usual.
    let mut ingest = Ingest::new(TimecodeType::Absolute);
    ingest.push(&head);
    ingest.push(&c1);
    ingest.displace();
    ingest.finish(EndOfInput::BodyEnd);
    let ops = ops_of(&mut ingest);
    assert_eq!(error_of(&ops), None);
    assert_eq!(ops.last(), Some(&Op::End));
}

/// `n` Tags elements of one custom SimpleTag each, as the C producer writes them.
fn custom_tags(m: &mut Muxer, n: usize) -> Vec<u8> {
    for i in 0..n {
        m.write_tags(&[tag(&format!("TEST_KEY_{i}"), "TEST_VALUE")])
            .unwrap();
    }
    m.take()
}

fn count_completes(ops: &[Op]) -> usize {
    ops.iter()
        .filter(|op| matches!(op, Op::Complete { .. }))
        .count()
}

/// A Cluster at `timecode` of two frames 40 ms apart.
fn two_frames(m: &mut Muxer, timecode: u64) -> Vec<u8> {
    m.begin_cluster(timecode).unwrap();
    m.write_simple_block(1, timecode as i64, true, &[1; 20])
        .unwrap();
    m.write_simple_block(1, timecode as i64 + 40, false, &[2; 20])
        .unwrap();
    m.take()
}

/// KVS's limit of 10 tags a fragment counts the end-of-fragment tag: 9 custom tags and the
/// end-of-fragment tag pass, 10 and the end-of-fragment tag are 4009 (the fragment dropped);
/// 10 custom tags without one (the next Cluster completes the fragment) pass.
#[test]
fn the_end_of_fragment_tag_counts_toward_the_limit() {
    for (n, eof, ok) in [(9, true, true), (10, true, false), (10, false, true)] {
        let (mut m, head) = document(1);
        let c1 = two_frames(&mut m, 0);
        let tags = custom_tags(&mut m, n);
        let end = if eof {
            m.write_tags(&[eofr()]).unwrap();
            m.take()
        } else {
            two_frames(&mut m, 1000)
        };
        let ops = run(&[head, c1, tags, end].concat(), 13, EndOfInput::BodyEnd);
        if ok {
            assert_eq!(error_of(&ops), None, "{n} tags, {eof}: {ops:?}");
            assert!(count_completes(&ops) >= 1);
        } else {
            assert_eq!(
                error_of(&ops),
                Some((AckError::FragmentMetadataLimitReached, None)),
                "{n} tags, {eof}"
            );
            assert_eq!(count_completes(&ops), 0);
        }
    }
    // Tags before the Cluster count too.
    let (mut m, head) = document(1);
    let early = custom_tags(&mut m, 5);
    let c1 = two_frames(&mut m, 0);
    let late = custom_tags(&mut m, 5);
    m.write_tags(&[eofr()]).unwrap();
    let ops = run(
        &[head, early, c1, late, m.take()].concat(),
        64,
        EndOfInput::BodyEnd,
    );
    assert_eq!(
        error_of(&ops),
        Some((AckError::FragmentMetadataLimitReached, None))
    );
}

/// A resumed session (the SDK after a reconnect) starts with the Tags of the fragment the
/// previous one ended with and its end-of-fragment tag: they are dropped, not counted toward
/// the next fragment (which has its own 9 and end-of-fragment tag), and not stored. The same
/// holds for such a group between two fragments; Tags not closed by an end-of-fragment tag
/// still go to the next fragment.
#[test]
fn tags_of_an_ended_fragment_are_dropped() {
    let (mut m, head) = document(1);
    let orphans = custom_tags(&mut m, 9);
    m.write_tags(&[eofr()]).unwrap();
    let orphan_eof = m.take();
    let c1 = two_frames(&mut m, 5000);
    let tags1 = custom_tags(&mut m, 9);
    m.write_tags(&[eofr()]).unwrap();
    let eof1 = m.take();
    let between = custom_tags(&mut m, 9);
    m.write_tags(&[eofr()]).unwrap();
    let between_eof = m.take();
    let early2 = custom_tags(&mut m, 1);
    let c2 = two_frames(&mut m, 6000);
    let input = [
        head.clone(),
        orphans,
        orphan_eof,
        c1.clone(),
        tags1.clone(),
        eof1,
        between,
        between_eof,
        early2.clone(),
        c2.clone(),
    ]
    .concat();
    let expected = vec![
        Op::RegisterHeader(Bytes::from(head)),
        Op::Begin {
            timecode: 5000,
            producer_ts_ms: 5000,
        },
        Op::Append(Bytes::from([c1, tags1].concat())),
        Op::Complete { duration_ms: 80 },
        Op::Begin {
            timecode: 6000,
            producer_ts_ms: 6000,
        },
        Op::Append(Bytes::from([c2, early2].concat())),
        Op::Complete { duration_ms: 80 },
        Op::End,
    ];
    for size in [1, 5, 64, 4096, usize::MAX] {
        let ops = merged(run(&input, size, EndOfInput::BodyEnd));
        assert_eq!(ops, expected, "chunk size {size}");
    }

    // Checked all the same: a group of 10 and its end-of-fragment tag is refused.
    let (mut m, head) = document(1);
    let orphans = custom_tags(&mut m, 10);
    m.write_tags(&[eofr()]).unwrap();
    let ops = run(&[head, orphans, m.take()].concat(), 64, EndOfInput::BodyEnd);
    assert_eq!(
        error_of(&ops),
        Some((AckError::FragmentMetadataLimitReached, None))
    );
}
