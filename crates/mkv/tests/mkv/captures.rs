//! Real captures (`testdata/` and the KVS producer SDK's own output): every frame's track,
//! timestamp and key flag agree with ffprobe, any chunking gives the same events, and the KVS
//! captures' structure (unknown sizes, 8-byte sizes, Tags between Clusters) reads as recorded.

use std::path::Path;

use vigil_mkv::{Event, Frame, TagValue, TrackKind};

use crate::common::{
    demux_chunked, demux_ok, ffprobe_packets, first_tracks, kvs_capture, read, testdata,
};

fn frames(events: &[Event]) -> Vec<&Frame> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Frame(f) => Some(f),
            _ => None,
        })
        .collect()
}

fn timecode_scale(events: &[Event]) -> u64 {
    events
        .iter()
        .find_map(|e| match e {
            Event::Info { info, .. } => Some(info.timecode_scale),
            _ => None,
        })
        .unwrap_or(vigil_mkv::DEFAULT_TIMECODE_SCALE)
}

/// Compares every frame with ffprobe's packet at the same place: stream (TrackEntry order),
/// pts, key flag and bytes. ffmpeg's demuxer subtracts a track's CodecDelay (rounded to ticks) from
/// its pts, and counts every packet of an intra-only codec (audio, subtitles) as key; the
/// comparison applies the same rules. Returns the number of frames.
fn agrees_with_ffprobe(path: &Path) -> usize {
    let data = read(path);
    let events = demux_ok(&data);
    let tracks = first_tracks(&events);
    let scale = timecode_scale(&events);
    let frames = frames(&events);
    let packets = ffprobe_packets(path);
    assert_eq!(
        frames.len(),
        packets.len(),
        "frame count of {}",
        path.display()
    );
    for (i, (f, p)) in frames.iter().zip(&packets).enumerate() {
        let stream = tracks.iter().position(|t| t.number == f.track);
        assert_eq!(
            stream,
            Some(p.stream),
            "stream of frame {i} of {}",
            path.display()
        );
        let track = &tracks[p.stream];
        let delay = track.codec_delay_ns.map_or(0, |d| (d + scale / 2) / scale) as i64;
        assert_eq!(
            f.timecode - delay,
            p.pts,
            "pts of frame {i} (track {}) of {}",
            f.track,
            path.display()
        );
        let intra_only = matches!(track.kind(), TrackKind::Audio | TrackKind::Subtitle);
        assert_eq!(
            f.keyframe || intra_only,
            p.key,
            "key flag of frame {i} of {}",
            path.display()
        );
        assert!(
            f.data[..] == p.data[..],
            "data of frame {i} of {}",
            path.display()
        );
    }
    frames.len()
}

/// Any chunking gives the same events (and byte offsets) as the whole input at once.
fn chunking_invariant(path: &Path) {
    let data = read(path);
    let whole: Vec<_> = demux_ok(&data).into_iter().map(Ok).collect();
    for sizes in [
        &[1usize][..],
        &[4096],
        &[65536],
        &[7, 1, 13, 1000, 3, 65536, 2],
    ] {
        assert!(
            demux_chunked(&data, sizes) == whole,
            "chunks {sizes:?} of {} changed the events",
            path.display()
        );
    }
}

macro_rules! capture_tests {
    ($($name:ident: $path:expr, $frames:expr;)*) => {$(
        mod $name {
            use super::*;

            #[test]
            fn frames_agree_with_ffprobe() {
                assert_eq!(agrees_with_ffprobe(&$path), $frames);
            }

            #[test]
            fn any_chunking_gives_the_same_events() {
                chunking_invariant(&$path);
            }
        }
    )*};
}

capture_tests! {
    ffmpeg_h264: testdata("ffmpeg_h264.mkv"), 50;
    ffmpeg_h264_aac: testdata("ffmpeg_h264-aac.mkv"), 145;
    ffmpeg_h265: testdata("ffmpeg_h265.mkv"), 50;
    ffmpeg_opus: testdata("ffmpeg_opus.mkv"), 101;
    ffmpeg_vp9_webm: testdata("ffmpeg_vp9.webm"), 50;
    ffmpeg_h264_blockgroups: testdata("ffmpeg_h264-blockgroups.mkv"), 52;
    gstreamer_h264_streamable: testdata("gstreamer_h264-streamable.mkv"), 145;
    mkvmerge_h264_aac_xiph_laced: testdata("mkvmerge_h264-aac-laced.mkv"), 145;
    mkvmerge_aac_ebml_laced: testdata("mkvmerge_aac-ebml-laced.mkv"), 95;
    mkvmerge_ac3_fixed_laced: testdata("mkvmerge_ac3-fixed-laced.mkv"), 63;
    kvs_producer_c_video: kvs_capture("video/putmedia-body.mkv"), 68;
    kvs_producer_c_av: kvs_capture("av/putmedia-body.mkv"), 202;
}

#[test]
fn lacing_kinds_are_exercised() {
    // Each laced capture really holds laced blocks (so the tests above cover each lacing).
    for name in [
        "mkvmerge_h264-aac-laced.mkv",
        "mkvmerge_aac-ebml-laced.mkv",
        "mkvmerge_ac3-fixed-laced.mkv",
    ] {
        let events = demux_ok(&read(&testdata(name)));
        assert!(
            frames(&events).iter().any(|f| f.lace_count > 1),
            "{name} has no laced block"
        );
    }
}

#[test]
fn unknown_sizes_from_gstreamer() {
    let events = demux_ok(&read(&testdata("gstreamer_h264-streamable.mkv")));
    let segment = events.iter().find_map(|e| match e {
        Event::SegmentStart { span } => Some(*span),
        _ => None,
    });
    assert_eq!(segment.map(|s| s.size), Some(None));
    let clusters: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::ClusterStart { span, .. } => Some(span.size),
            _ => None,
        })
        .collect();
    assert_eq!(clusters, vec![None, None]);
}

/// The SDK's video capture: two unknown-size Clusters of 45 and 23 frames, each followed by nine
/// metadata Tags and the end-of-fragment Tag (`shared/testdata/kvs-producer-c/README.md`).
#[test]
fn kvs_video_structure() {
    let data = read(&kvs_capture("video/putmedia-body.mkv"));
    let events = demux_ok(&data);

    let Event::EbmlHeader { header, .. } = &events[0] else {
        panic!("{:?}", events[0])
    };
    assert_eq!(
        (header.doc_type.as_str(), header.doc_type_version),
        ("matroska", 2)
    );
    assert_eq!(header.max_size_length, 8);
    let Event::SegmentStart { span } = &events[1] else {
        panic!("{:?}", events[1])
    };
    assert_eq!(span.size, None);
    let Event::Info { info, .. } = &events[2] else {
        panic!("{:?}", events[2])
    };
    assert_eq!(info.timecode_scale, 1_000_000);
    assert_eq!(info.title.as_deref(), Some("Kinesis Video SDK"));
    assert_eq!(info.writing_app.as_deref(), Some("Kinesis Video SDK 1.1.0"));
    assert_eq!(info.segment_uid.as_ref().map(|u| u.len()), Some(16));
    let tracks = first_tracks(&events);
    assert_eq!(tracks.len(), 1);
    assert_eq!(tracks[0].codec_id, "V_MPEG4/ISO/AVC");
    assert_eq!(tracks[0].name.as_deref(), Some("kvs_video_track"));
    assert_eq!(tracks[0].codec_private.as_ref().map(|p| p.len()), Some(45));
    let video = tracks[0].video.unwrap();
    assert_eq!((video.pixel_width, video.pixel_height), (640, 480));

    // Cluster boundaries and what follows each.
    let mut clusters = Vec::new();
    let mut after_cluster: Vec<Vec<(String, TagValue)>> = Vec::new();
    let mut per_cluster_frames = Vec::new();
    for e in &events {
        match e {
            Event::ClusterStart { span, timecode } => {
                assert_eq!(span.size, None);
                // The Cluster's bytes start with its ID and the 1-byte unknown size.
                let at = span.offset as usize;
                assert_eq!(&data[at..at + 5], &[0x1F, 0x43, 0xB6, 0x75, 0xFF]);
                clusters.push(*timecode);
                per_cluster_frames.push(0);
                after_cluster.push(Vec::new());
            }
            Event::Frame(f) => {
                *per_cluster_frames.last_mut().unwrap() += 1;
                // 8-byte size fields; the payload is the element's tail, shared, not copied.
                assert_eq!(f.span.header_len, 9);
                let end = f.span.end().unwrap() as usize;
                assert_eq!(&data[end - f.data.len()..end], &f.data[..]);
            }
            Event::Tags { tags, .. } => {
                for t in tags {
                    for st in &t.simple_tags {
                        after_cluster
                            .last_mut()
                            .unwrap()
                            .push((st.name.clone(), st.value.clone()));
                    }
                }
            }
            _ => {}
        }
    }
    assert_eq!(clusters, vec![1_795_320_641_601, 1_795_320_643_401]);
    assert_eq!(per_cluster_frames, vec![45, 23]);
    for tags in &after_cluster {
        assert_eq!(tags.len(), 10);
        for (i, (name, value)) in tags.iter().take(9).enumerate() {
            assert_eq!(name, &format!("TEST_KEY_{}", i + 1));
            assert!(
                value.as_str().unwrap().starts_with("TEST_VALUE_"),
                "{value:?}"
            );
        }
        assert_eq!(
            tags[9],
            (
                "AWS_KINESISVIDEO_END_OF_FRAGMENT".to_owned(),
                TagValue::String(String::new())
            )
        );
    }
    // Each unknown-size Cluster ends exactly where the first Tags after it starts.
    let ends: Vec<(u64, u64)> = events
        .windows(2)
        .filter_map(|w| match (&w[0], &w[1]) {
            (Event::ClusterEnd { end, .. }, Event::Tags { span, .. }) => Some((*end, span.offset)),
            _ => None,
        })
        .collect();
    assert_eq!(ends.len(), 2);
    assert!(ends.iter().all(|(a, b)| a == b));
    assert!(matches!(
        events.last(),
        Some(Event::SegmentEnd { offset: 40, end }) if *end == data.len() as u64
    ));
    // Keyframes open each cluster; 25 fps.
    let fr = frames(&events);
    assert!(fr[0].keyframe && fr[45].keyframe);
    assert_eq!(fr.iter().filter(|f| f.keyframe).count(), 2);
    assert_eq!(fr[1].timecode - fr[0].timecode, 40);
}

/// The SDK's audio+video capture, RELATIVE timecodes: clusters at 0 and 1800, audio interleaved
/// 1 ms after coinciding video frames, one end-of-fragment Tag at the end.
#[test]
fn kvs_av_structure() {
    let events = demux_ok(&read(&kvs_capture("av/putmedia-body.mkv")));
    let tracks = first_tracks(&events);
    assert_eq!(tracks.len(), 2);
    assert_eq!(tracks[1].codec_id, "A_AAC");
    assert_eq!(tracks[1].name.as_deref(), Some("kvs_audio_track"));
    assert_eq!(
        tracks[1].codec_private.as_deref(),
        Some(&[0x11u8, 0x90][..])
    );
    let audio = tracks[1].audio.unwrap();
    assert_eq!((audio.sampling_frequency, audio.channels), (48000.0, 2));

    let clusters: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::ClusterStart { timecode, .. } => Some(*timecode),
            _ => None,
        })
        .collect();
    assert_eq!(clusters, vec![0, 1800]);
    let fr = frames(&events);
    let audio: Vec<i64> = fr
        .iter()
        .filter(|f| f.track == 2)
        .map(|f| f.timecode)
        .collect();
    assert_eq!(audio.len(), 134);
    assert_eq!(&audio[..4], &[1, 20, 41, 60]);
    assert!(fr.iter().filter(|f| f.track == 2).all(|f| !f.keyframe));
    let tags: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, Event::Tags { .. }))
        .collect();
    assert_eq!(tags.len(), 1);
    assert!(matches!(events[events.len() - 2], Event::Tags { .. }));
}

/// Several EBML documents back to back (as GetMedia serves): each unknown-size Segment ends
/// where the next EBML header starts.
#[test]
fn documents_back_to_back() {
    let video = read(&kvs_capture("video/putmedia-body.mkv"));
    let av = read(&kvs_capture("av/putmedia-body.mkv"));
    let mut data = video.clone();
    data.extend_from_slice(&av);
    data.extend_from_slice(&video);
    let events = demux_ok(&data);
    let headers: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::EbmlHeader { span, .. } => Some(span.offset),
            _ => None,
        })
        .collect();
    let second = video.len() as u64;
    let third = second + av.len() as u64;
    assert_eq!(headers, vec![0, second, third]);
    let segment_ends: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::SegmentEnd { end, .. } => Some(*end),
            _ => None,
        })
        .collect();
    assert_eq!(segment_ends, vec![second, third, data.len() as u64]);
    assert_eq!(frames(&events).len(), 68 + 202 + 68);
    // The second document's RELATIVE timecodes are read with its own Tracks.
    assert_eq!(frames(&events).iter().filter(|f| f.track == 2).count(), 134);
    let whole: Vec<_> = events.into_iter().map(Ok).collect();
    assert!(demux_chunked(&data, &[4093]) == whole);
}

/// ffmpeg writes a CRC-32 as each Cluster's first child, before its Timestamp; it is reported
/// after the ClusterStart, so that events nest as the elements do.
#[test]
fn cluster_children_follow_their_cluster_start() {
    let events = demux_ok(&read(&testdata("ffmpeg_h264.mkv")));
    let mut in_cluster = false;
    let mut crcs = 0;
    for e in &events {
        match e {
            Event::ClusterStart { .. } => in_cluster = true,
            Event::ClusterEnd { .. } => in_cluster = false,
            Event::Skipped { id, depth: 2, .. } => {
                assert!(in_cluster, "{e:?} outside its Cluster");
                crcs += usize::from(*id == vigil_mkv::ids::CRC32);
            }
            _ => {}
        }
    }
    assert!(crcs >= 2, "{crcs} CRC-32 elements in clusters");
}
