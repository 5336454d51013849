//! Builds documents from the fuzzer's bytes, writes them with [`Muxer`] (unknown sizes, as KVS
//! producers write, and known sizes, as files have), demuxes the result and asserts that every
//! value comes back as written, and that the output passes the `demux` target's checks.
//!
//! # What the generator restricts, and why
//!
//! It generates only what Matroska can carry and the demuxer reports as written:
//!
//! - strings hold no NUL: an EBML string ends at its first NUL (RFC 8794 §7.4), and the
//!   demuxer drops what follows;
//! - floats are never NaN, which `PartialEq` never finds equal to itself (the bits round-trip);
//! - TrackNumbers and block track numbers lie in 1..=2^56 - 2, the range of a block's
//!   variable-size track number; TrackNumbers in a document are distinct, and a TrackUID of 0,
//!   reserved, is expected back as the track number (the muxer writes it so);
//! - TimestampScale is not 0, and a block is written only when its absolute timestamp, in ticks
//!   and in nanoseconds, fits an `i64` (beyond that the demuxer reports an overflow error);
//! - the EBML header is the KVS or the WebM one with arbitrary version fields, since the
//!   demuxer rejects other DocTypes and EBMLReadVersion, EBMLMaxIDLength and EBMLMaxSizeLength
//!   beyond what it reads;
//! - SimpleTags nest at most 4 deep, below the demuxer's default limit of 16.
//!
//! Blocks are never laced (the muxer does not lace); empty Targets come back as
//! `Targets::default()`, and a missing MuxingApp or WritingApp as [`vigil_mkv::DEFAULT_APP`]
//! (both mandatory, so the muxer writes them): all of that is what is expected.

#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use vigil_mkv::{
    Audio, Demuxer, EbmlHeader, Event, Info, Muxer, MuxerOptions, SimpleTag, Tag, TagValue,
    Targets, TrackEntry, Video,
};

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(docs) = documents(&mut u) else {
        return;
    };
    for opts in [MuxerOptions::streaming(), MuxerOptions::file()] {
        let bytes = mux(&docs, opts);
        check(&docs, &bytes, opts);
        vigil_mkv::fuzzing::demux(&bytes);
    }
});

const MAX_TRACK: u64 = (1 << 56) - 2;

#[derive(Debug)]
struct Doc {
    header: EbmlHeader,
    info: Info,
    tracks: Vec<TrackEntry>,
    items: Vec<Item>,
}

#[derive(Debug)]
enum Item {
    Cluster { timecode: u64, blocks: Vec<Block> },
    Tags(Vec<Tag>),
}

#[derive(Debug)]
struct Block {
    track: u64,
    /// Absolute, in ticks; within ±32767 of the Cluster's Timestamp.
    timecode: i64,
    kind: BlockKind,
    data: Vec<u8>,
}

#[derive(Debug)]
enum BlockKind {
    Simple {
        keyframe: bool,
    },
    Group {
        duration: Option<u64>,
        reference: Option<i64>,
    },
}

// ---- Generation ----

fn documents(u: &mut Unstructured) -> Result<Vec<Doc>> {
    let n = u.int_in_range(1..=3)?;
    (0..n).map(|_| document(u)).collect()
}

fn document(u: &mut Unstructured) -> Result<Doc> {
    let mut header = if u.arbitrary()? {
        EbmlHeader::kvs()
    } else {
        EbmlHeader::webm()
    };
    header.version = u.arbitrary()?;
    header.doc_type_version = u.arbitrary()?;
    header.doc_type_read_version = u.arbitrary()?;
    let info = Info {
        timecode_scale: if u.arbitrary()? {
            vigil_mkv::DEFAULT_TIMECODE_SCALE
        } else {
            u.int_in_range(1..=u64::MAX)?
        },
        segment_uid: opt(u, |u| Ok(bytes(u)?.into()))?,
        title: opt(u, string)?,
        muxing_app: opt(u, string)?,
        writing_app: opt(u, string)?,
        duration: opt(u, float)?,
        date_utc: u.arbitrary()?,
    };
    let mut tracks: Vec<TrackEntry> = Vec::new();
    for _ in 0..u.int_in_range(0..=4)? {
        let t = track(u)?;
        if tracks.iter().all(|o| o.number != t.number) {
            tracks.push(t);
        }
    }
    let mut items = Vec::new();
    for _ in 0..u.int_in_range(0..=6)? {
        items.push(if u.ratio(1, 4)? {
            Item::Tags(tags(u)?)
        } else {
            cluster(u, &info, &tracks)?
        });
    }
    Ok(Doc {
        header,
        info,
        tracks,
        items,
    })
}

fn opt<T>(
    u: &mut Unstructured,
    f: impl FnOnce(&mut Unstructured) -> Result<T>,
) -> Result<Option<T>> {
    Ok(if u.arbitrary()? { Some(f(u)?) } else { None })
}

fn bytes(u: &mut Unstructured) -> Result<Vec<u8>> {
    u.arbitrary()
}

fn string(u: &mut Unstructured) -> Result<String> {
    let s: String = u.arbitrary()?;
    Ok(s.replace('\0', ""))
}

fn float(u: &mut Unstructured) -> Result<f64> {
    let f = f64::from_bits(u.arbitrary()?);
    Ok(if f.is_nan() { 0.5 } else { f })
}

fn track_number(u: &mut Unstructured) -> Result<u64> {
    Ok(if u.arbitrary()? {
        u.int_in_range(1..=8)?
    } else {
        u.int_in_range(1..=MAX_TRACK)?
    })
}

fn track(u: &mut Unstructured) -> Result<TrackEntry> {
    Ok(TrackEntry {
        number: track_number(u)?,
        uid: u.arbitrary()?,
        track_type: u.arbitrary()?,
        codec_id: string(u)?,
        codec_private: opt(u, |u| Ok(bytes(u)?.into()))?,
        name: opt(u, string)?,
        language: opt(u, string)?,
        default_duration_ns: u.arbitrary()?,
        codec_delay_ns: u.arbitrary()?,
        header_removal: None,
        video: opt(u, |u| {
            Ok(Video {
                pixel_width: u.arbitrary()?,
                pixel_height: u.arbitrary()?,
                display_width: u.arbitrary()?,
                display_height: u.arbitrary()?,
            })
        })?,
        audio: opt(u, |u| {
            Ok(Audio {
                sampling_frequency: float(u)?,
                output_sampling_frequency: opt(u, float)?,
                channels: u.arbitrary()?,
                bit_depth: u.arbitrary()?,
            })
        })?,
    })
}

fn cluster(u: &mut Unstructured, info: &Info, tracks: &[TrackEntry]) -> Result<Item> {
    let timecode: u64 = if u.arbitrary()? {
        u.int_in_range(0..=100_000)?
    } else {
        u.arbitrary()?
    };
    let mut blocks = Vec::new();
    for _ in 0..u.int_in_range(0..=8)? {
        let track = match tracks.len() {
            0 => track_number(u)?,
            n => match tracks.get(u.choose_index(n + 1)?) {
                Some(t) => t.number,
                None => track_number(u)?,
            },
        };
        let relative: i16 = u.arbitrary()?;
        let kind = if u.arbitrary()? {
            BlockKind::Simple {
                keyframe: u.arbitrary()?,
            }
        } else {
            BlockKind::Group {
                duration: u.arbitrary()?,
                reference: u.arbitrary()?,
            }
        };
        let data = bytes(u)?;
        let absolute = i128::from(timecode) + i128::from(relative);
        let fits = i64::try_from(absolute).is_ok()
            && i64::try_from(absolute * i128::from(info.timecode_scale)).is_ok();
        if let (true, Ok(timecode)) = (fits, i64::try_from(absolute)) {
            blocks.push(Block {
                track,
                timecode,
                kind,
                data,
            });
        }
    }
    Ok(Item::Cluster { timecode, blocks })
}

fn tags(u: &mut Unstructured) -> Result<Vec<Tag>> {
    let mut tags = Vec::new();
    for _ in 0..u.int_in_range(0..=3)? {
        let targets = Targets {
            type_value: u.arbitrary()?,
            target_type: opt(u, string)?,
            track_uids: u.arbitrary()?,
        };
        let mut simple_tags = Vec::new();
        for _ in 0..u.int_in_range(0..=3)? {
            simple_tags.push(simple_tag(u, 1)?);
        }
        tags.push(Tag {
            targets,
            simple_tags,
        });
    }
    Ok(tags)
}

fn simple_tag(u: &mut Unstructured, depth: usize) -> Result<SimpleTag> {
    let name = string(u)?;
    let language = opt(u, string)?;
    let default = u.arbitrary()?;
    let value = match u.int_in_range(0..=2)? {
        0 => TagValue::None,
        1 => TagValue::String(string(u)?),
        _ => TagValue::Binary(bytes(u)?.into()),
    };
    let mut children = Vec::new();
    if depth < 4 {
        for _ in 0..u.int_in_range(0..=2)? {
            children.push(simple_tag(u, depth + 1)?);
        }
    }
    Ok(SimpleTag {
        name,
        language,
        default,
        value,
        children,
    })
}

// ---- Muxing ----

fn mux(docs: &[Doc], opts: MuxerOptions) -> Vec<u8> {
    let mut m = Muxer::new(opts);
    let mut out = Vec::new();
    for doc in docs {
        m.begin_document(&doc.header, &doc.info, &doc.tracks)
            .expect("begin_document");
        for item in &doc.items {
            match item {
                Item::Cluster { timecode, blocks } => {
                    m.begin_cluster(*timecode).expect("begin_cluster");
                    for b in blocks {
                        match b.kind {
                            BlockKind::Simple { keyframe } => {
                                m.write_simple_block(b.track, b.timecode, keyframe, &b.data)
                            }
                            BlockKind::Group {
                                duration,
                                reference,
                            } => m.write_block_group(
                                b.track, b.timecode, duration, reference, &b.data,
                            ),
                        }
                        .expect("write block");
                    }
                }
                Item::Tags(tags) => m.write_tags(tags).expect("write_tags"),
            }
            // Take output as it comes, as a producer would.
            out.extend_from_slice(&m.take());
        }
        m.end_document().expect("end_document");
    }
    out.extend_from_slice(&m.take());
    out
}

// ---- Checking ----

/// What the demuxer is expected to report, spans left out.
#[derive(Debug, PartialEq)]
enum Expected {
    EbmlHeader(EbmlHeader),
    SegmentStart,
    Info(Info),
    Tracks(Vec<TrackEntry>),
    ClusterStart(u64),
    Frame {
        track: u64,
        timecode: i64,
        time_ns: i64,
        duration_ns: Option<u64>,
        keyframe: bool,
        data: Vec<u8>,
    },
    ClusterEnd,
    Tags(Vec<Tag>),
    SegmentEnd,
}

fn expected(docs: &[Doc]) -> Vec<Expected> {
    let mut out = Vec::new();
    for doc in docs {
        out.push(Expected::EbmlHeader(doc.header.clone()));
        out.push(Expected::SegmentStart);
        let mut info = doc.info.clone();
        for app in [&mut info.muxing_app, &mut info.writing_app] {
            app.get_or_insert_with(|| vigil_mkv::DEFAULT_APP.to_owned());
        }
        out.push(Expected::Info(info));
        let tracks: Vec<TrackEntry> = doc
            .tracks
            .iter()
            .map(|t| TrackEntry {
                uid: if t.uid == 0 { t.number } else { t.uid },
                ..t.clone()
            })
            .collect();
        out.push(Expected::Tracks(tracks.clone()));
        let scale = doc.info.timecode_scale;
        for item in &doc.items {
            match item {
                Item::Cluster { timecode, blocks } => {
                    out.push(Expected::ClusterStart(*timecode));
                    for b in blocks {
                        let default_duration = tracks
                            .iter()
                            .find(|t| t.number == b.track)
                            .and_then(|t| t.default_duration_ns);
                        let (duration_ns, keyframe) = match b.kind {
                            BlockKind::Simple { keyframe } => (default_duration, keyframe),
                            BlockKind::Group {
                                duration,
                                reference,
                            } => (
                                duration
                                    .map(|d| d.saturating_mul(scale))
                                    .or(default_duration),
                                reference.is_none(),
                            ),
                        };
                        out.push(Expected::Frame {
                            track: b.track,
                            timecode: b.timecode,
                            time_ns: i64::try_from(i128::from(b.timecode) * i128::from(scale))
                                .expect("generated to fit"),
                            duration_ns,
                            keyframe,
                            data: b.data.clone(),
                        });
                    }
                    out.push(Expected::ClusterEnd);
                }
                Item::Tags(tags) => out.push(Expected::Tags(tags.clone())),
            }
        }
        out.push(Expected::SegmentEnd);
    }
    out
}

fn check(docs: &[Doc], bytes: &[u8], opts: MuxerOptions) {
    let events = match Demuxer::read_all(bytes) {
        Ok(events) => events,
        Err(e) => panic!("{opts:?}: muxer output does not demux: {e}"),
    };
    let mut actual = Vec::new();
    let mut open_segment = None;
    let mut open_cluster = None;
    for ev in events {
        actual.push(match ev {
            Event::EbmlHeader { header, .. } => Expected::EbmlHeader(header),
            Event::SegmentStart { span } => {
                open_segment = Some(span);
                Expected::SegmentStart
            }
            Event::Info { info, .. } => Expected::Info(info),
            Event::Tracks { tracks, .. } => Expected::Tracks(tracks),
            Event::ClusterStart { span, timecode } => {
                open_cluster = Some(span);
                Expected::ClusterStart(timecode)
            }
            Event::Frame(f) => {
                assert_eq!((f.lace_index, f.lace_count), (0, 1), "{opts:?}: laced");
                assert!(!f.discardable && !f.invisible, "{opts:?}: flags {f:?}");
                // The frame's bytes lie in its block's span: at its end for a SimpleBlock, and
                // before BlockDuration and ReferenceBlock in a BlockGroup.
                let end = f.span.end().expect("blocks have known sizes");
                let block = usize::try_from(f.span.data_offset())
                    .ok()
                    .zip(usize::try_from(end).ok())
                    .and_then(|(start, end)| bytes.get(start..end))
                    .expect("frame span inside the input");
                let inside =
                    f.data.is_empty() || block.windows(f.data.len()).any(|w| w == f.data.as_ref());
                assert!(inside, "{opts:?}: frame data outside its span");
                Expected::Frame {
                    track: f.track,
                    timecode: f.timecode,
                    time_ns: f.time_ns,
                    duration_ns: f.duration_ns,
                    keyframe: f.keyframe,
                    data: f.data.to_vec(),
                }
            }
            Event::ClusterEnd { offset, end } => {
                let span = open_cluster
                    .take()
                    .expect("ClusterEnd without ClusterStart");
                assert_eq!(offset, span.offset, "{opts:?}: ClusterEnd offset");
                if let Some(known) = span.end() {
                    assert_eq!(end, known, "{opts:?}: known-size Cluster end");
                }
                Expected::ClusterEnd
            }
            Event::Tags { tags, .. } => Expected::Tags(tags),
            Event::Skipped { id, span, .. } => {
                panic!(
                    "{opts:?}: the muxer wrote an element the demuxer skipped: {id:#x} at {span:?}"
                )
            }
            Event::SegmentEnd { offset, end } => {
                let span = open_segment
                    .take()
                    .expect("SegmentEnd without SegmentStart");
                assert_eq!(offset, span.offset, "{opts:?}: SegmentEnd offset");
                if let Some(known) = span.end() {
                    assert_eq!(end, known, "{opts:?}: known-size Segment end");
                }
                Expected::SegmentEnd
            }
        });
    }
    let want = expected(docs);
    assert_eq!(actual.len(), want.len(), "{opts:?}: event count");
    for (i, (a, w)) in actual.iter().zip(&want).enumerate() {
        assert_eq!(a, w, "{opts:?}: event {i}");
    }
}
