//! Golden outputs: the SHA-256 of what is served for one capture, pinned to
//! [`vigil_media::FORMAT_VERSION`]. A change here means players and caches see different
//! bytes for the same stored fragments.

use vigil_media::sample::from_fragments;
use vigil_media::ts::{self, Continuity};
use vigil_media::{FORMAT_VERSION, fmp4, mp4};

use crate::hls_ts::Fragments;

/// The version the hashes below were taken at.
const GOLDEN_VERSION: u32 = 1;
/// `ffmpeg_h264-aac.mkv`: the fMP4 init segment (both tracks).
const FMP4_INIT: &str = "c449de4caa4cefb612127d115e82d6bdee7a37a50f4913203afb88f9356aec1d";
/// The fMP4 media segment of the first fragment (demuxed alone), sequence 1.
const FMP4_SEGMENT: &str = "41ec30e3f056c9fe69e00fb53818acafa73f244fd802c8274ea8658c10acf982";
/// The TS segment of the first fragment (demuxed alone), fresh continuity counters.
const TS_SEGMENT: &str = "77f136057f82c0b09246556903a52a75ec2ed9127ec5a278d3d9c7d471d962c1";
/// The whole capture as one clip.
const CLIP: &str = "435289c5f970ee775c5f270136450f747412bacc487db0c214140378fde4a7e8";

fn sha256(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn served_bytes_are_pinned_to_the_format_version() {
    let fragments = Fragments::load("ffmpeg_h264-aac.mkv");
    let (tracks, samples) = from_fragments(
        &fragments.header,
        std::slice::from_ref(&fragments.payloads[0]),
    )
    .unwrap();
    let (all_tracks, all_samples) = from_fragments(&fragments.header, &fragments.payloads).unwrap();
    let got = [
        ("FMP4_INIT", sha256(&fmp4::init_segment(&tracks).unwrap())),
        (
            "FMP4_SEGMENT",
            sha256(&fmp4::media_segment(1, &tracks, &samples).unwrap()),
        ),
        (
            "TS_SEGMENT",
            sha256(&ts::segment(&tracks, &samples, &mut Continuity::new()).unwrap()),
        ),
        (
            "CLIP",
            sha256(&mp4::clip(&all_tracks, &all_samples).unwrap()),
        ),
    ];
    let want = [FMP4_INIT, FMP4_SEGMENT, TS_SEGMENT, CLIP];
    let differ: Vec<String> = got
        .iter()
        .zip(want)
        .filter(|((_, g), w)| g != w)
        .map(|((name, g), _)| format!("const {name}: &str = \"{g}\";"))
        .collect();
    assert!(
        differ.is_empty() && FORMAT_VERSION == GOLDEN_VERSION,
        "served bytes changed (FORMAT_VERSION {FORMAT_VERSION}, hashes taken at \
         {GOLDEN_VERSION}). If the change is intended, bump vigil_media::FORMAT_VERSION, set \
         GOLDEN_VERSION to it and update these hashes in tests/media/golden.rs:\n{}",
        differ.join("\n")
    );
}
