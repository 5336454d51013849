//! Fragmented and progressive MP4 made from real media split as the store holds it: ffprobe
//! must find every packet of the input with the same presentation time, decode times must
//! increase, and ffmpeg must decode it without a single error.

use std::path::{Path, PathBuf};

use vigil_media::{fmp4, mp4, sample};

use crate::common::{self, Packet, kvs_capture};

const TOLERANCE_S: f64 = 0.000_2;

/// ffprobe's packets per stream, sorted by pts.
fn by_stream(packets: &[Packet]) -> Vec<Vec<Packet>> {
    let n = packets.iter().map(|p| p.stream + 1).max().unwrap_or(0);
    let mut out = vec![Vec::new(); n];
    for p in packets {
        out[p.stream].push(p.clone());
    }
    out
}

fn assert_same_packets(input: &[Packet], output: &[Packet], shift_s: f64, what: &str) {
    let (input, output) = (by_stream(input), by_stream(output));
    assert_eq!(input.len(), output.len(), "{what}: streams");
    for (s, (a, b)) in input.iter().zip(&output).enumerate() {
        assert_eq!(a.len(), b.len(), "{what}: stream {s}: packet count");
        let mut pa: Vec<f64> = a.iter().map(|p| p.pts - shift_s).collect();
        let mut pb: Vec<f64> = b.iter().map(|p| p.pts).collect();
        pa.sort_by(f64::total_cmp);
        pb.sort_by(f64::total_cmp);
        for (x, y) in pa.iter().zip(&pb) {
            assert!(
                (x - y).abs() < TOLERANCE_S,
                "{what}: stream {s}: pts {x} vs {y}"
            );
        }
        // Decode times increase, in file order.
        let dts: Vec<f64> = b.iter().map(|p| p.dts.unwrap()).collect();
        assert!(
            dts.windows(2).all(|w| w[0] < w[1]),
            "{what}: stream {s}: dts not increasing: {dts:?}"
        );
        let keys = |v: &[Packet]| v.iter().filter(|p| p.key).count();
        assert_eq!(keys(a), keys(b), "{what}: stream {s}: key frames");
    }
}

/// Packages `input` as a clip and as fMP4 and checks both; returns their paths (in `dir`).
fn check_in(input: &Path, dir: &Path) -> (PathBuf, PathBuf) {
    let data = std::fs::read(input).unwrap();
    let stored = common::split_mkv(&data);
    assert!(!stored.payloads.is_empty());
    let in_packets = common::packets(input);

    // Progressive: the whole input as one clip; time zero is the earliest pts.
    let (tracks, samples) = sample::from_fragments(&stored.header, &stored.payloads).unwrap();
    let clip = mp4::clip(&tracks, &samples).unwrap();
    let clip_path = dir.join("clip.mp4");
    std::fs::write(&clip_path, &clip).unwrap();
    let zero = in_packets
        .iter()
        .map(|p| p.pts)
        .fold(f64::INFINITY, f64::min);
    assert_same_packets(&in_packets, &common::packets(&clip_path), zero, "clip");
    common::decodes_cleanly(&clip_path);

    // Fragmented: init segment + one media segment per stored fragment.
    let mut fmp4_bytes = fmp4::init_segment(&tracks).unwrap().to_vec();
    for (i, payload) in stored.payloads.iter().enumerate() {
        let (t, samples) =
            sample::from_fragments(&stored.header, std::slice::from_ref(payload)).unwrap();
        assert_eq!(t, tracks);
        let segment = fmp4::media_segment(i as u32 + 1, &tracks, &samples).unwrap();
        fmp4_bytes.extend_from_slice(&segment);
    }
    let fmp4_path = dir.join("stream.mp4");
    std::fs::write(&fmp4_path, &fmp4_bytes).unwrap();
    let out_packets = common::packets(&fmp4_path);
    assert_same_packets(&in_packets, &out_packets, 0.0, "fmp4");
    // The edit list takes the decode delay out of presentation: the first video packet is
    // presented at the source's first presentation time.
    let first_pts = |v: &[Packet]| v.iter().find(|p| p.stream == 0).map(|p| p.pts);
    let (a, b) = (
        first_pts(&in_packets).unwrap(),
        first_pts(&out_packets).unwrap(),
    );
    assert!(
        (a - b).abs() < TOLERANCE_S,
        "fmp4: first pts {b}, source's {a}"
    );
    common::decodes_cleanly(&fmp4_path);
    (clip_path, fmp4_path)
}

fn check(input: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let _ = check_in(input, dir.path());
}

#[test]
fn ffmpeg_h264() {
    check(&common::testdata("ffmpeg_h264.mkv"));
}

#[test]
fn ffmpeg_h264_aac() {
    check(&common::testdata("ffmpeg_h264-aac.mkv"));
}

#[test]
fn ffmpeg_h265() {
    check(&common::testdata("ffmpeg_h265.mkv"));
}

/// H.264 with two B-frames between references, AAC beside it, and timestamps as absolute as
/// a KVS producer's.
#[test]
fn ffmpeg_h264_bframes_aac() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("bframes.mkv");
    common::ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        "4",
        "-c:v",
        "libx264",
        "-bf",
        "2",
        "-g",
        "25",
        "-threads",
        "1",
        "-c:a",
        "aac",
        "-output_ts_offset",
        "1700000000",
        "-f",
        "matroska",
        path.to_str().unwrap(),
    ]);
    let (clip, fmp4) = check_in(&path, dir.path());

    // Decode times exactly as ffmpeg's own Matroska-to-MP4 remux derives them: both delay
    // decoding by the reorder depth the SPS declares (here 2 frames), in the clip and in the
    // fMP4 packaged one fragment at a time.
    let reference = dir.path().join("reference.mp4");
    common::ffmpeg(&[
        "-i",
        path.to_str().unwrap(),
        "-c",
        "copy",
        reference.to_str().unwrap(),
    ]);
    let theirs = by_stream(&common::packets(&reference));
    let relative = |v: &[Packet]| {
        let zero = v.iter().map(|p| p.pts).fold(f64::INFINITY, f64::min);
        v.iter()
            .map(|p| (p.dts.unwrap() - zero, p.pts - zero))
            .collect::<Vec<_>>()
    };
    let theirs = relative(&theirs[0]);
    assert!(
        theirs[0].0 < theirs[0].1 - 0.079,
        "ffmpeg delays by 2 frames"
    );
    for (what, path) in [("clip", &clip), ("fmp4", &fmp4)] {
        let ours = relative(&by_stream(&common::packets(path))[0]);
        assert_eq!(ours.len(), theirs.len(), "{what}");
        for (k, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert!(
                (a.0 - b.0).abs() < TOLERANCE_S && (a.1 - b.1).abs() < TOLERANCE_S,
                "{what}: video packet {k}: ours (dts, pts) {a:?}, ffmpeg's {b:?}"
            );
        }
    }
}

#[test]
fn kvs_producer_c_video() {
    check(&kvs_capture("video/putmedia-body.mkv"));
}

#[test]
fn kvs_producer_c_av() {
    check(&kvs_capture("av/putmedia-body.mkv"));
}
