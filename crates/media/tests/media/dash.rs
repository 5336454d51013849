//! DASH manifests over fMP4 segments from real captures, read back with ffprobe.

use std::collections::BTreeMap;

use vigil_media::dash::{self, AdaptationSet, Mpd, MpdKind, TimelineSegment};
use vigil_media::fmp4;
use vigil_media::sample::Track;

use crate::hls_ts::{Demux, Fragments, assert_decode_order, decode, probe_packets};

/// Writes a static MPD over per-track fMP4 segments of `name` (the tracks `keep` selects) and
/// checks what ffprobe reads through it: `expected_frames` packets per stream, at the
/// samples' times. `last_dropped`: ffmpeg 5.1's DASH demuxer, with two representations, does
/// not return the last packet of the one that ends last (it does the same on ffmpeg's own
/// `-f dash -use_timeline 1` output of this file), so `expected_frames` is one short there and
/// the times are compared as a prefix.
fn dash_session(
    name: &str,
    keep: fn(&Track) -> bool,
    expected_frames: &[usize],
    last_dropped: bool,
    demux: Demux,
) {
    let fragments = Fragments::load(name);
    let dir = tempfile::tempdir().unwrap();
    let (tracks, per_fragment) = fragments.demux(demux);
    let tracks: Vec<Track> = tracks.into_iter().filter(keep).collect();
    let mut end_ms = 0u64;
    let mut sets = Vec::new();
    let mut expected: BTreeMap<usize, Vec<i64>> = BTreeMap::new();
    for (index, track) in tracks.iter().enumerate() {
        let n = track.number;
        std::fs::write(
            dir.path().join(format!("init{n}.mp4")),
            fmp4::init_segment(std::slice::from_ref(track)).unwrap(),
        )
        .unwrap();
        let mut segments = Vec::new();
        for (i, samples) in per_fragment.iter().enumerate() {
            let samples: Vec<_> = samples.iter().filter(|s| s.track == n).cloned().collect();
            let bytes = fmp4::media_segment(
                u32::try_from(i + 1).unwrap(),
                std::slice::from_ref(track),
                &samples,
            )
            .unwrap();
            std::fs::write(dir.path().join(format!("media{n}_{i}.mp4")), bytes).unwrap();
            segments.push(TimelineSegment {
                start: u64::try_from(samples[0].dts).unwrap(),
                duration: samples.iter().map(|s| u64::from(s.duration)).sum(),
                kvs_ts_ms: Some(1_684_331_315_994 + 1000 * i as i64),
                kvs_fn: Some(format!("9134385233318{i}")),
            });
            expected
                .entry(index)
                .or_default()
                .extend(samples.iter().map(|s| s.pts));
        }
        let end = segments.last().map_or(0, |s| s.start + s.duration);
        end_ms = end_ms.max((end * 1000).div_ceil(u64::from(track.timescale)));
        sets.push(AdaptationSet {
            track: track.clone(),
            bandwidth: 200_000,
            frame_rate: track.codec.is_video().then_some((25, 1)),
            initialization: format!("init{n}.mp4"),
            media: format!("media{n}_$Number$.mp4"),
            start_number: 0,
            segments,
        });
    }
    let text = dash::mpd(&Mpd {
        kind: MpdKind::Static {
            duration_ms: end_ms,
        },
        min_buffer_time_ms: 2000,
        adaptation_sets: sets,
    })
    .unwrap();
    assert!(text.contains("xmlns:kvs="), "{text}");
    let path = dir.path().join("manifest.mpd");
    std::fs::write(&path, &text).unwrap();

    let (packets, stderr) = probe_packets(&[], &path);
    assert_eq!(stderr, "", "{name}");
    let mut got: BTreeMap<usize, Vec<i64>> = BTreeMap::new();
    for (stream, pts) in packets {
        got.entry(stream).or_default().push(pts);
    }
    let counts: Vec<usize> = got.values().map(Vec::len).collect();
    assert_eq!(counts, expected_frames, "{name}: every frame\n{text}");
    for v in got.values_mut().chain(expected.values_mut()) {
        v.sort_unstable();
    }
    // The edit list takes the decode delay out: the times given, exactly.
    for (stream, pts) in &got {
        let mut want = expected[stream].clone();
        if last_dropped {
            want.truncate(pts.len());
        }
        assert_eq!(
            pts, &want,
            "{name} {demux:?}: stream {stream}: the timestamps given\n{text}"
        );
    }
    assert_decode_order(&path, &format!("{name} {demux:?}"));
    assert_eq!(decode(&[], &path), "", "{name} decodes cleanly");
}

#[test]
fn dash_h264() {
    dash_session(
        "ffmpeg_h264.mkv",
        |_| true,
        &[50],
        false,
        Demux::PerFragment,
    );
}

#[test]
fn dash_h264_whole_session() {
    dash_session("ffmpeg_h264.mkv", |_| true, &[50], false, Demux::Session);
}

#[test]
fn dash_h264_aac() {
    dash_session(
        "ffmpeg_h264-aac.mkv",
        |_| true,
        &[50, 94],
        true,
        Demux::PerFragment,
    );
}

#[test]
fn dash_aac_alone() {
    dash_session(
        "ffmpeg_h264-aac.mkv",
        |t| !t.codec.is_video(),
        &[95],
        false,
        Demux::PerFragment,
    );
}
