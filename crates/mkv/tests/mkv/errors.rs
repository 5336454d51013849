//! Malformed input: each case gives a typed error that says where (byte offset) and in which
//! element, is reported once, and never panics; hostile sizes do not allocate.

use vigil_mkv::{
    Demuxer, EbmlHeader, ErrorKind, Event, Info, Limits, Muxer, MuxerOptions, TrackEntry, ebml,
    encode_ebml_header, ids,
};

use crate::common::{demux_chunked, demux_ok, kvs_capture, read};

/// An EBML header and the start of an unknown-size Segment.
fn prologue() -> Vec<u8> {
    let mut out = Vec::new();
    encode_ebml_header(&mut out, &EbmlHeader::kvs());
    ebml::write_id(&mut out, ids::SEGMENT);
    out.extend_from_slice(&ebml::UNKNOWN_SIZE_8);
    out
}

/// Demuxes `data` whole; returns the events before the error, and the error.
fn fails(data: &[u8]) -> (Vec<Event>, vigil_mkv::Error) {
    let mut d = Demuxer::new();
    d.push(data);
    d.finish();
    let mut events = Vec::new();
    loop {
        match d.pull() {
            Some(Ok(ev)) => events.push(ev),
            Some(Err(e)) => {
                // Reported once; the demuxer stays stopped, even when fed more.
                assert!(d.pull().is_none());
                d.push(data);
                assert!(d.pull().is_none());
                d.check_invariants();
                return (events, e);
            }
            None => panic!("no error; events: {events:?}"),
        }
    }
}

#[test]
fn not_matroska() {
    let (_, e) = fails(b"RIFF\x24\x00\x00\x00WAVEfmt ");
    assert!(matches!(e.kind, ErrorKind::NotMatroska { .. }), "{e}");
    assert_eq!(e.offset, 0);
    assert!(
        e.to_string().contains("not a Matroska or WebM stream"),
        "{e}"
    );
}

#[test]
fn invalid_element_id() {
    let mut data = prologue();
    data.extend_from_slice(&[0x00, 0x81, 0x00]);
    let (events, e) = fails(&data);
    assert_eq!(events.len(), 2);
    assert_eq!(e.kind, ErrorKind::InvalidId { first_byte: 0 });
    assert_eq!(e.offset, prologue().len() as u64);
}

#[test]
fn unsupported_doc_type() {
    let mut data = Vec::new();
    encode_ebml_header(
        &mut data,
        &EbmlHeader {
            doc_type: "mp4".to_owned(),
            ..EbmlHeader::kvs()
        },
    );
    let (_, e) = fails(&data);
    assert_eq!(e.kind, ErrorKind::DocType("mp4".to_owned()));
    assert_eq!(e.element, Some(ids::EBML));
    assert!(
        e.to_string().contains("in element 0x1A45DFA3 (EBML)"),
        "{e}"
    );
}

#[test]
fn truncated_frame_names_its_element() {
    let body = read(&kvs_capture("video/putmedia-body.mkv"));
    // Cut inside the first key frame (about 119 KB, starting at byte 298).
    let (events, e) = fails(&body[..50_000]);
    assert!(matches!(events.last(), Some(Event::Skipped { .. })));
    assert_eq!(e.kind, ErrorKind::Truncated);
    assert_eq!(e.element, Some(ids::SIMPLE_BLOCK));
    assert_eq!(e.offset, 298);
    assert_eq!(
        e.to_string(),
        "the input ends inside an element at byte offset 298 in element 0xA3 (SimpleBlock)"
    );
}

/// Every prefix of a valid stream gives a prefix of its events, then at most one error: the
/// input ended inside an element.
#[test]
fn every_prefix_gives_a_prefix_of_the_events() {
    let body = read(&kvs_capture("av/putmedia-body.mkv"));
    let full = demux_ok(&body);
    let stream_events = |evs: &[Event]| -> Vec<Event> {
        evs.iter()
            .filter(|e| !matches!(e, Event::ClusterEnd { .. } | Event::SegmentEnd { .. }))
            .cloned()
            .collect()
    };
    let full = stream_events(&full);
    for cut in (0..body.len()).step_by(997).chain([body.len() - 1]) {
        let got = demux_chunked(&body[..cut], &[4096]);
        let (ok, err): (Vec<_>, Vec<_>) = got.into_iter().partition(Result::is_ok);
        let ok: Vec<Event> = ok.into_iter().map(Result::unwrap).collect();
        assert!(err.len() <= 1, "cut {cut}: {err:?}");
        if let Some(Err(e)) = err.first() {
            assert_eq!(e.kind, ErrorKind::Truncated, "cut {cut}");
        }
        let ok = stream_events(&ok);
        assert_eq!(ok[..], full[..ok.len()], "cut {cut}");
    }
}

/// A size field far beyond the limit is refused from the header alone: nothing is waited for
/// and nothing is allocated for it.
#[test]
fn hostile_size_is_refused_before_its_bytes_arrive() {
    let mut data = prologue();
    ebml::write_id(&mut data, ids::CLUSTER);
    data.extend_from_slice(&ebml::UNKNOWN_SIZE_8);
    ebml::write_uint(&mut data, ids::TIMESTAMP, 0);
    ebml::write_id(&mut data, ids::SIMPLE_BLOCK);
    ebml::write_vint_width(&mut data, 1 << 55, 8);
    let mut d = Demuxer::new();
    d.push(&data);
    let mut result = None;
    while let Some(r) = d.pull() {
        if let Err(e) = r {
            result = Some(e);
        }
    }
    let e = result.expect("no error without the frame's bytes");
    assert_eq!(
        e.kind,
        ErrorKind::TooLarge {
            id: ids::SIMPLE_BLOCK,
            size: 1 << 55,
            limit: Limits::default().max_frame_size
        }
    );
    d.check_invariants();
}

#[test]
fn configurable_limits() {
    let mut m = Muxer::new(MuxerOptions::streaming());
    m.begin_document(&EbmlHeader::kvs(), &Info::default(), &[track(1)])
        .unwrap();
    m.begin_cluster(0).unwrap();
    m.write_simple_block(1, 0, true, &[0; 2000]).unwrap();
    let data = m.take();
    let mut d = Demuxer::with_limits(Limits {
        max_frame_size: 1000,
        ..Limits::default()
    });
    d.push(&data);
    let err = std::iter::from_fn(|| d.pull())
        .find_map(Result::err)
        .unwrap();
    assert!(matches!(
        err.kind,
        ErrorKind::TooLarge {
            size: 2004,
            limit: 1000,
            ..
        }
    ));
}

fn track(number: u64) -> TrackEntry {
    TrackEntry {
        number,
        uid: number,
        track_type: 1,
        codec_id: "V_MPEG4/ISO/AVC".to_owned(),
        ..Default::default()
    }
}

#[test]
fn unknown_size_only_for_segment_and_cluster() {
    let mut data = prologue();
    ebml::write_id(&mut data, ids::TAGS);
    data.push(0xFF);
    let (_, e) = fails(&data);
    assert_eq!(e.kind, ErrorKind::UnknownSizeNotAllowed { id: ids::TAGS });
}

#[test]
fn child_running_past_its_parent() {
    let mut data = prologue();
    ebml::write_id(&mut data, ids::CLUSTER);
    ebml::write_vint(&mut data, 10);
    ebml::write_uint(&mut data, ids::TIMESTAMP, 5); // 3 bytes
    ebml::write_id(&mut data, ids::SIMPLE_BLOCK);
    ebml::write_vint(&mut data, 20); // 3 + 2 + 20 > 10
    data.extend_from_slice(&[0x81, 0, 0, 0x80]);
    data.extend_from_slice(&[0; 16]);
    let (_, e) = fails(&data);
    assert!(
        matches!(
            e.kind,
            ErrorKind::Overrun {
                id: ids::SIMPLE_BLOCK,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn block_before_cluster_timestamp() {
    let mut data = prologue();
    ebml::write_id(&mut data, ids::CLUSTER);
    data.push(0xFF);
    ebml::write_binary(&mut data, ids::SIMPLE_BLOCK, &[0x81, 0, 0, 0x80, 1]);
    let (_, e) = fails(&data);
    assert_eq!(e.kind, ErrorKind::BlockBeforeTimestamp);
    assert_eq!(e.element, Some(ids::SIMPLE_BLOCK));
}

#[test]
fn bad_lacing_is_an_error_not_a_panic() {
    let mut data = prologue();
    ebml::write_id(&mut data, ids::CLUSTER);
    data.push(0xFF);
    ebml::write_uint(&mut data, ids::TIMESTAMP, 0);
    // Xiph lacing claiming a 250-byte first frame in a 3-byte payload.
    ebml::write_binary(
        &mut data,
        ids::SIMPLE_BLOCK,
        &[0x81, 0, 0, 0x82, 1, 250, 1, 2, 3],
    );
    let (_, e) = fails(&data);
    assert!(matches!(e.kind, ErrorKind::InvalidLacing(_)), "{e}");
}

#[test]
fn tags_nested_too_deep() {
    let mut st = Vec::new();
    ebml::write_binary(&mut st, ids::TAG_NAME, b"X");
    for _ in 0..40 {
        let mut outer = Vec::new();
        ebml::write_master(&mut outer, ids::SIMPLE_TAG, |o| o.extend_from_slice(&st));
        st = outer;
    }
    let mut data = prologue();
    ebml::write_master(&mut data, ids::TAGS, |o| {
        ebml::write_master(o, ids::TAG, |o| o.extend_from_slice(&st))
    });
    let (_, e) = fails(&data);
    assert_eq!(e.kind, ErrorKind::TagsTooDeep(16));
}

#[test]
fn ebml_header_inside_a_sized_segment() {
    let mut inner = Vec::new();
    encode_ebml_header(&mut inner, &EbmlHeader::kvs());
    let mut data = Vec::new();
    encode_ebml_header(&mut data, &EbmlHeader::kvs());
    ebml::write_master(&mut data, ids::SEGMENT, |o| o.extend_from_slice(&inner));
    let (_, e) = fails(&data);
    assert!(
        matches!(
            e.kind,
            ErrorKind::Unexpected {
                found: ids::EBML,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn empty_input_has_no_events() {
    assert!(demux_ok(&[]).is_empty());
}

#[test]
fn muxer_refuses_what_matroska_cannot_carry() {
    use vigil_mkv::MuxError;
    let mut m = Muxer::new(MuxerOptions::streaming());
    assert_eq!(m.begin_cluster(0), Err(MuxError::NoDocument));
    m.begin_document(&EbmlHeader::kvs(), &Info::default(), &[track(1)])
        .unwrap();
    assert_eq!(
        m.begin_document(&EbmlHeader::kvs(), &Info::default(), &[]),
        Err(MuxError::DocumentOpen)
    );
    assert_eq!(
        m.write_simple_block(1, 0, true, b"x"),
        Err(MuxError::NoCluster)
    );
    m.begin_cluster(100_000).unwrap();
    assert!(matches!(
        m.write_simple_block(1, 0, true, b"x"),
        Err(MuxError::RelativeTimestamp { .. })
    ));
    assert_eq!(
        m.write_simple_block(0, 100_000, true, b"x"),
        Err(MuxError::TrackZero)
    );
}

#[test]
fn timestamp_beyond_i64_nanoseconds() {
    let mut m = Muxer::new(MuxerOptions::streaming());
    let info = Info {
        timecode_scale: 1_000_000_000,
        ..Info::default()
    };
    m.begin_document(&EbmlHeader::kvs(), &info, &[track(1)])
        .unwrap();
    m.begin_cluster(1 << 40).unwrap();
    m.write_simple_block(1, 1 << 40, true, b"x").unwrap();
    let (_, e) = fails(&m.take());
    assert!(matches!(e.kind, ErrorKind::TimestampOverflow { .. }), "{e}");
}

/// Elements the demuxer steps over (Attachments, Chapters, Cues, Void) are reported and
/// discarded as their bytes arrive, whatever their size: nothing of them is buffered.
#[test]
fn skipped_elements_are_not_buffered() {
    let mut data = prologue();
    let big = vec![0x5A; 300_000];
    for id in [ids::ATTACHMENTS, ids::CHAPTERS, ids::CUES, ids::VOID] {
        ebml::write_binary(&mut data, id, &big);
    }
    ebml::write_id(&mut data, ids::CLUSTER);
    data.push(0xFF);
    ebml::write_uint(&mut data, ids::TIMESTAMP, 7);
    ebml::write_binary(&mut data, ids::SIMPLE_BLOCK, &[0x81, 0, 1, 0x80, 9]);
    let mut d = Demuxer::new();
    let mut events = Vec::new();
    for chunk in data.chunks(4096) {
        d.push(chunk);
        assert!(d.buffered() <= 4096 + 12, "{} bytes buffered", d.buffered());
        while let Some(ev) = d.pull() {
            events.push(ev.unwrap());
        }
        d.check_invariants();
    }
    d.finish();
    while let Some(ev) = d.pull() {
        events.push(ev.unwrap());
    }
    let skipped: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            Event::Skipped { id, depth: 1, span } => {
                assert_eq!(span.size, Some(300_000));
                Some(*id)
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        skipped,
        [ids::ATTACHMENTS, ids::CHAPTERS, ids::CUES, ids::VOID]
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Frame(f) if f.timecode == 8))
    );
}

/// Found by the fuzzer: an unknown-size Cluster whose header alone runs past the end of a
/// known-size Segment.
#[test]
fn unknown_size_child_header_past_its_parent() {
    let mut data = Vec::new();
    encode_ebml_header(&mut data, &EbmlHeader::kvs());
    ebml::write_id(&mut data, ids::SEGMENT);
    ebml::write_vint(&mut data, 6);
    ebml::write_id(&mut data, ids::CLUSTER);
    data.extend_from_slice(&ebml::UNKNOWN_SIZE_8);
    let (_, e) = fails(&data);
    assert!(
        matches!(
            e.kind,
            ErrorKind::Overrun {
                id: ids::CLUSTER,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("runs past its parent's end"), "{e}");
}

/// A Tracks element of many tiny TrackEntries is refused past `max_tracks`, before it can cost
/// quadratic time or much memory.
#[test]
fn too_many_tracks() {
    let mut data = prologue();
    ebml::write_master(&mut data, ids::TRACKS, |o| {
        for n in 1..=200u64 {
            ebml::write_master(o, ids::TRACK_ENTRY, |o| {
                ebml::write_uint(o, ids::TRACK_NUMBER, n)
            });
        }
    });
    let (_, e) = fails(&data);
    assert_eq!(
        e.kind,
        ErrorKind::TooMany {
            what: "TrackEntries",
            limit: 127
        }
    );
}

/// Empty SimpleTags cost 3 bytes each on the wire and far more decoded: bounded per Tags.
#[test]
fn too_many_tag_entries() {
    let mut data = prologue();
    ebml::write_master(&mut data, ids::TAGS, |o| {
        ebml::write_master(o, ids::TAG, |o| {
            for _ in 0..5000 {
                ebml::write_master(o, ids::SIMPLE_TAG, |_| {});
            }
        })
    });
    let (_, e) = fails(&data);
    assert!(
        matches!(e.kind, ErrorKind::TooMany { limit: 4096, .. }),
        "{e}"
    );
}

#[test]
fn truncated_skipped_element_names_it() {
    let mut data = prologue();
    let at = data.len() as u64;
    ebml::write_binary(&mut data, ids::CUES, &[0; 1000]);
    let (events, e) = fails(&data[..data.len() - 10]);
    assert!(matches!(
        events.last(),
        Some(Event::Skipped { id: ids::CUES, .. })
    ));
    assert_eq!(
        (e.kind, e.element, e.offset),
        (ErrorKind::Truncated, Some(ids::CUES), at)
    );
}

/// A track with a ContentEncoding: `encoding` is the ContentEncoding element's payload.
fn encoded_track(encoding: &[u8]) -> Vec<u8> {
    let mut data = prologue();
    ebml::write_master(&mut data, ids::TRACKS, |o| {
        ebml::write_master(o, ids::TRACK_ENTRY, |o| {
            ebml::write_uint(o, ids::TRACK_NUMBER, 1);
            ebml::write_uint(o, ids::TRACK_TYPE, 1);
            ebml::write_binary(o, ids::CODEC_ID, b"V_MPEG4/ISO/AVC");
            ebml::write_master(o, ids::CONTENT_ENCODINGS, |o| {
                ebml::write_binary(o, ids::CONTENT_ENCODING, encoding)
            });
        })
    });
    data
}

#[test]
fn compressed_or_encrypted_frames_are_refused() {
    let mut zlib = Vec::new();
    ebml::write_master(&mut zlib, ids::CONTENT_COMPRESSION, |o| {
        ebml::write_uint(o, ids::CONTENT_COMP_ALGO, 0)
    });
    let (_, e) = fails(&encoded_track(&zlib));
    assert!(matches!(e.kind, ErrorKind::Unsupported(_)), "{e}");
    assert_eq!(e.element, Some(ids::CONTENT_ENCODING));
    let mut encrypted = Vec::new();
    ebml::write_uint(&mut encrypted, ids::CONTENT_ENCODING_TYPE, 1);
    let (_, e) = fails(&encoded_track(&encrypted));
    assert!(e.to_string().contains("encrypted"), "{e}");
}

#[test]
fn encodings_that_leave_frames_alone_are_accepted() {
    // An empty ContentEncoding (mkvmerge writes one when it finds no header to strip), and a
    // compression of CodecPrivate only (scope 2).
    let mut private_only = Vec::new();
    ebml::write_uint(&mut private_only, ids::CONTENT_ENCODING_SCOPE, 2);
    ebml::write_master(&mut private_only, ids::CONTENT_COMPRESSION, |_| {});
    for encoding in [Vec::new(), private_only] {
        let events = demux_ok(&encoded_track(&encoding));
        let Some(Event::Tracks { tracks, .. }) = events.get(2) else {
            panic!("{events:?}")
        };
        assert_eq!(tracks[0].header_removal, None);
    }
}

#[test]
fn muxer_refuses_a_zero_scale_and_duplicate_tracks() {
    use vigil_mkv::MuxError;
    let mut m = Muxer::new(MuxerOptions::file());
    let zero = Info {
        timecode_scale: 0,
        ..Info::default()
    };
    assert_eq!(
        m.begin_document(&EbmlHeader::kvs(), &zero, &[track(1)]),
        Err(MuxError::TimestampScaleZero)
    );
    assert_eq!(
        m.begin_document(&EbmlHeader::kvs(), &Info::default(), &[track(2), track(2)]),
        Err(MuxError::DuplicateTrack(2))
    );
    assert!(
        m.take().is_empty(),
        "nothing is written for a refused document"
    );
}
