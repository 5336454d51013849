//! MPEG-TS segments and HLS playlists from real captures, checked with ffprobe and ffmpeg:
//! one TS segment per fragment (Matroska Cluster), as `getTSFragment.ts` serves them, read back
//! through ffmpeg's HLS demuxer.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use vigil_media::hls::{self, Container, MasterPlaylist, MediaPlaylist, Segment};
use vigil_media::sample::{Sample, Track, from_fragments};
use vigil_media::ts::{self, Continuity, PACKET_SIZE};

/// A capture as the store holds it: a track header (EBML header, unknown-size Segment, Info,
/// Tracks) and one payload per Cluster.
pub struct Fragments {
    pub header: Vec<u8>,
    pub payloads: Vec<Bytes>,
}

impl Fragments {
    pub fn load(name: &str) -> Self {
        let stored =
            crate::common::split_mkv(&std::fs::read(crate::common::testdata(name)).unwrap());
        Fragments {
            header: stored.header,
            payloads: stored.payloads,
        }
    }

    /// Tracks and samples of each fragment, demuxed one fragment at a time as the API layer
    /// does for one segment.
    pub fn per_fragment(&self) -> Vec<(Vec<Track>, Vec<Sample>)> {
        self.payloads
            .iter()
            .map(|p| from_fragments(&self.header, std::slice::from_ref(p)).unwrap())
            .collect()
    }

    /// Tracks and each fragment's samples, with decode times derived once over the whole
    /// capture (continuous across fragments).
    pub fn session(&self) -> (Vec<Track>, Vec<Vec<Sample>>) {
        let (tracks, all) = from_fragments(&self.header, &self.payloads).unwrap();
        let mut per_track: BTreeMap<u64, std::collections::VecDeque<Sample>> = BTreeMap::new();
        for s in all {
            per_track.entry(s.track).or_default().push_back(s);
        }
        let fragments = self
            .per_fragment()
            .into_iter()
            .map(|(_, samples)| {
                samples
                    .iter()
                    .map(|s| per_track.get_mut(&s.track).unwrap().pop_front().unwrap())
                    .collect()
            })
            .collect();
        assert!(per_track.values().all(|v| v.is_empty()));
        (tracks, fragments)
    }
}

/// How the samples of each fragment are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Demux {
    /// One `from_fragments` call per fragment, as the server packages one segment a request.
    PerFragment,
    /// One call over all fragments.
    Session,
}

impl Fragments {
    /// Tracks and each fragment's samples, made as `demux` says. Per fragment, every call
    /// must yield the same tracks (the decode time shift included) and the same samples (the
    /// same decode times) as the whole capture in one call.
    pub fn demux(&self, demux: Demux) -> (Vec<Track>, Vec<Vec<Sample>>) {
        let (tracks, session) = self.session();
        match demux {
            Demux::Session => (tracks, session),
            Demux::PerFragment => {
                let mut out = Vec::new();
                for (i, (t, samples)) in self.per_fragment().into_iter().enumerate() {
                    assert_eq!(t, tracks, "fragment {i}: the same tracks alone");
                    assert_eq!(samples, session[i], "fragment {i}: the same samples alone");
                    out.push(samples);
                }
                (tracks, out)
            }
        }
    }
}

/// ffprobe's (stream index, pts, dts) in file order; panics on any stderr.
pub fn probe_pts_dts(input: &Path) -> Vec<(usize, i64, i64)> {
    let output = Command::new("ffprobe")
        .args(["-v", "error"])
        .args([
            "-show_entries",
            "packet=stream_index,pts,dts",
            "-of",
            "csv=p=0",
        ])
        .arg(input)
        .output()
        .expect("ffprobe (scripts/install-test-deps.sh)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.is_empty(),
        "ffprobe {}: {stderr}",
        input.display()
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            )
        })
        .collect()
}

/// Per stream, in file order: decode times strictly increase (across segment boundaries
/// too), presentation times are all distinct and not before their decode times.
pub fn assert_decode_order(input: &Path, what: &str) -> BTreeMap<usize, Vec<(i64, i64)>> {
    let mut per_stream: BTreeMap<usize, Vec<(i64, i64)>> = BTreeMap::new();
    for (stream, pts, dts) in probe_pts_dts(input) {
        per_stream.entry(stream).or_default().push((pts, dts));
    }
    for (stream, packets) in &per_stream {
        for (k, w) in packets.windows(2).enumerate() {
            assert!(
                w[0].1 < w[1].1,
                "{what}: stream {stream}: dts not increasing at packet {k}: {packets:?}"
            );
        }
        let mut pts: Vec<i64> = packets.iter().map(|p| p.0).collect();
        pts.sort_unstable();
        let n = pts.len();
        pts.dedup();
        assert_eq!(pts.len(), n, "{what}: stream {stream}: duplicate pts");
        assert!(
            packets.iter().all(|(pts, dts)| dts <= pts),
            "{what}: stream {stream}: dts after pts: {packets:?}"
        );
    }
    per_stream
}

pub fn to_90k(ticks: i64, timescale: u32) -> i64 {
    (i128::from(ticks) * 90_000).div_euclid(i128::from(timescale)) as i64
}

/// Runs ffprobe's packet listing; returns (stream index, pts) pairs and stderr.
pub fn probe_packets(args: &[&str], input: &Path) -> (Vec<(usize, i64)>, String) {
    let output = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .args(["-show_entries", "packet=stream_index,pts", "-of", "csv=p=0"])
        .arg(input)
        .output()
        .expect("ffprobe (scripts/install-test-deps.sh)");
    assert!(
        output.status.success(),
        "ffprobe {}: {}",
        input.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let packets = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let (stream, pts) = line.split_once(',').unwrap();
            (
                stream.parse().unwrap(),
                pts.trim_end_matches(',').parse().unwrap(),
            )
        })
        .collect();
    (
        packets,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Decodes with ffmpeg; returns stderr (empty when clean).
pub fn decode(args: &[&str], input: &Path) -> String {
    let output = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error"])
        .args(args)
        .arg("-i")
        .arg(input)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    assert!(
        output.status.success(),
        "ffmpeg {}: {}",
        input.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Groups (stream, pts) pairs per stream, sorted.
fn by_stream(packets: &[(usize, i64)]) -> BTreeMap<usize, Vec<i64>> {
    let mut map: BTreeMap<usize, Vec<i64>> = BTreeMap::new();
    for &(stream, pts) in packets {
        map.entry(stream).or_default().push(pts);
    }
    for v in map.values_mut() {
        v.sort_unstable();
    }
    map
}

fn hls_session(name: &str, expected_frames: &[usize]) {
    let fragments = Fragments::load(name);
    assert_eq!(fragments.payloads.len(), 2, "{name}: 2 Clusters");
    let dir = tempfile::tempdir().unwrap();
    let mut continuity = Continuity::new();
    let mut segments = Vec::new();
    // Expected pts per TS stream (= track index), 90 kHz.
    let mut expected: BTreeMap<usize, Vec<i64>> = BTreeMap::new();
    let mut all_tracks = Vec::new();
    for (i, (tracks, samples)) in fragments.per_fragment().into_iter().enumerate() {
        let bytes = ts::segment(&tracks, &samples, &mut continuity).unwrap();
        assert_eq!(bytes.len() % PACKET_SIZE, 0);
        let file = format!("getTSFragment{i}.ts");
        let path = dir.path().join(&file);
        std::fs::write(&path, &bytes).unwrap();

        // The segment alone: every sample, at its time.
        let mut want: BTreeMap<usize, Vec<i64>> = BTreeMap::new();
        for s in &samples {
            let index = tracks.iter().position(|t| t.number == s.track).unwrap();
            want.entry(index)
                .or_default()
                .push(to_90k(s.pts, tracks[index].timescale));
        }
        for v in want.values_mut() {
            v.sort_unstable();
        }
        let (packets, stderr) = probe_packets(&[], &path);
        assert_eq!(stderr, "", "{name} segment {i}");
        assert_eq!(by_stream(&packets), want, "{name} segment {i}");
        assert_eq!(decode(&[], &path), "", "{name} segment {i} decodes alone");
        for (k, v) in want {
            expected.entry(k).or_default().extend(v);
        }

        let duration = samples
            .iter()
            .filter(|s| s.track == tracks[0].number)
            .map(|s| f64::from(s.duration) / f64::from(tracks[0].timescale))
            .sum();
        segments.push(Segment {
            uri: file,
            duration,
            program_date_time_ms: Some(1_684_331_315_994 + 1000 * i as i64),
            ..Segment::default()
        });
        all_tracks = tracks;
    }
    let playlist = hls::media_playlist(&MediaPlaylist {
        container: Some(Container::Ts),
        segments,
        independent_segments: true,
        ended: true,
        ..MediaPlaylist::default()
    })
    .unwrap();
    assert!(playlist.contains("#EXT-X-TARGETDURATION:1\n"), "{playlist}");
    let index = dir.path().join("index.m3u8");
    std::fs::write(&index, &playlist).unwrap();
    let master = hls::master_playlist(&MasterPlaylist {
        uri: "index.m3u8".into(),
        tracks: all_tracks.clone(),
        audio: None,
        bandwidth: 400_000,
        frame_rate: Some(25.0),
        independent_segments: true,
    })
    .unwrap();
    assert!(
        master.contains("RESOLUTION=320x240,FRAME-RATE=25.000"),
        "{master}"
    );
    let master_path = dir.path().join("master.m3u8");
    std::fs::write(&master_path, &master).unwrap();

    for path in [&index, &master_path] {
        let (packets, stderr) = probe_packets(&[], path);
        assert_eq!(stderr, "", "{name}: {}", path.display());
        let got = by_stream(&packets);
        let counts: Vec<usize> = got.values().map(Vec::len).collect();
        assert_eq!(
            counts, expected_frames,
            "{name}: every frame of every track"
        );
        assert_eq!(got, expected, "{name}: the timestamps given");
        // Continuous: video frames 40 ms (3600) apart, AAC frames about 21.3 ms apart.
        let video = &got[&0];
        assert!(video.windows(2).all(|w| w[1] - w[0] == 3600), "{video:?}");
        if let Some(audio) = got.get(&1) {
            assert!(
                audio
                    .windows(2)
                    .all(|w| (1800..=2000).contains(&(w[1] - w[0]))),
                "{audio:?}"
            );
        }
        assert_eq!(
            decode(&[], path),
            "",
            "{name}: {} decodes cleanly",
            path.display()
        );
    }
}

#[test]
fn hls_ts_h264() {
    hls_session("ffmpeg_h264.mkv", &[50]);
}

#[test]
fn hls_ts_h264_aac() {
    hls_session("ffmpeg_h264-aac.mkv", &[50, 95]);
}

#[test]
fn continuity_counters_carry_across_segments() {
    let fragments = Fragments::load("ffmpeg_h264-aac.mkv");
    let mut continuity = Continuity::new();
    let mut last: BTreeMap<u16, u8> = BTreeMap::new();
    for (tracks, samples) in fragments.per_fragment() {
        let bytes = ts::segment(&tracks, &samples, &mut continuity).unwrap();
        let first = &bytes[..PACKET_SIZE];
        assert_eq!(first[1] & 0x1F, 0);
        assert_eq!(first[2], 0, "PAT first");
        assert_eq!(
            u16::from(bytes[PACKET_SIZE + 1] & 0x1F) << 8 | u16::from(bytes[PACKET_SIZE + 2]),
            ts::PMT_PID
        );
        for packet in bytes.chunks(PACKET_SIZE) {
            assert_eq!(packet[0], 0x47);
            let pid = u16::from(packet[1] & 0x1F) << 8 | u16::from(packet[2]);
            let cc = packet[3] & 0x0F;
            if let Some(prev) = last.insert(pid, cc) {
                assert_eq!(cc, (prev + 1) & 0x0F, "pid {pid:#x}");
            }
        }
    }
    assert_eq!(last.len(), 4, "PAT, PMT, video, audio");
}

#[test]
fn hls_ts_aac_alone() {
    // KVS serves AAC alone over TS too (§6.1).
    let fragments = Fragments::load("ffmpeg_h264-aac.mkv");
    let dir = tempfile::tempdir().unwrap();
    let mut continuity = Continuity::new();
    let mut segments = Vec::new();
    let mut expected = Vec::new();
    for (i, (tracks, samples)) in fragments.per_fragment().into_iter().enumerate() {
        let audio: Vec<Track> = tracks.into_iter().filter(|t| !t.is_video()).collect();
        let samples: Vec<Sample> = samples
            .into_iter()
            .filter(|s| s.track == audio[0].number)
            .collect();
        expected.extend(samples.iter().map(|s| to_90k(s.pts, audio[0].timescale)));
        let file = format!("a{i}.ts");
        std::fs::write(
            dir.path().join(&file),
            ts::segment(&audio, &samples, &mut continuity).unwrap(),
        )
        .unwrap();
        segments.push(Segment {
            uri: file,
            duration: samples.iter().map(|s| f64::from(s.duration)).sum::<f64>() / 48_000.0,
            ..Segment::default()
        });
    }
    let index = dir.path().join("index.m3u8");
    let playlist = MediaPlaylist {
        container: Some(Container::Ts),
        segments,
        ended: true,
        ..MediaPlaylist::default()
    };
    std::fs::write(&index, hls::media_playlist(&playlist).unwrap()).unwrap();
    let (packets, stderr) = probe_packets(&[], &index);
    assert_eq!(stderr, "");
    let got = by_stream(&packets);
    expected.sort_unstable();
    assert_eq!(got.len(), 1);
    assert_eq!(got[&0], expected);
    assert_eq!(decode(&[], &index), "");
}

#[test]
fn hls_fmp4_with_audio_rendition() {
    hls_fmp4(Demux::PerFragment);
}

#[test]
fn hls_fmp4_with_audio_rendition_whole_session() {
    hls_fmp4(Demux::Session);
}

fn hls_fmp4(demux: Demux) {
    // FRAGMENTED_MP4 sessions: one media playlist per track, EXT-X-MAP to the init segment,
    // the audio in an EXT-X-MEDIA rendition of the master playlist.
    let fragments = Fragments::load("ffmpeg_h264-aac.mkv");
    let dir = tempfile::tempdir().unwrap();
    let (tracks, per_fragment) = fragments.demux(demux);
    let mut uris = Vec::new();
    let mut expected: Vec<Vec<i64>> = Vec::new();
    for track in &tracks {
        let n = track.number;
        let init = format!("init{n}.mp4");
        std::fs::write(
            dir.path().join(&init),
            vigil_media::fmp4::init_segment(std::slice::from_ref(track)).unwrap(),
        )
        .unwrap();
        let mut segments = Vec::new();
        let mut pts = Vec::new();
        for (i, samples) in per_fragment.iter().enumerate() {
            let samples: Vec<Sample> = samples.iter().filter(|s| s.track == n).cloned().collect();
            let uri = format!("getMP4MediaFragment{n}_{i}.mp4");
            let bytes = vigil_media::fmp4::media_segment(
                u32::try_from(i + 1).unwrap(),
                std::slice::from_ref(track),
                &samples,
            )
            .unwrap();
            std::fs::write(dir.path().join(&uri), bytes).unwrap();
            // fMP4 streams keep the track timescale.
            pts.extend(samples.iter().map(|s| s.pts));
            segments.push(Segment {
                uri,
                duration: samples.iter().map(|s| f64::from(s.duration)).sum::<f64>()
                    / f64::from(track.timescale),
                discontinuity: i == 0,
                program_date_time_ms: Some(1_684_331_315_994 + 1000 * i as i64),
                map_uri: Some(init.clone()),
                parts: Vec::new(),
            });
        }
        pts.sort_unstable();
        expected.push(pts);
        let text = hls::media_playlist(&MediaPlaylist {
            container: Some(Container::Fmp4),
            segments,
            independent_segments: true,
            ended: true,
            ..MediaPlaylist::default()
        })
        .unwrap();
        assert!(text.starts_with("#EXTM3U\n#EXT-X-VERSION:7\n"), "{text}");
        assert_eq!(text.matches("#EXT-X-MAP:").count(), 1, "{text}");
        let uri = format!("getHLSMediaPlaylist{n}.m3u8");
        std::fs::write(dir.path().join(&uri), text).unwrap();
        uris.push(uri);
    }
    let master = hls::master_playlist(&MasterPlaylist {
        uri: uris[0].clone(),
        tracks: vec![tracks[0].clone()],
        audio: Some(hls::AudioRendition {
            uri: uris[1].clone(),
            track: tracks[1].clone(),
            group_id: "audio".into(),
            name: "Track 2".into(),
            language: None,
        }),
        bandwidth: 400_000,
        frame_rate: Some(25.0),
        independent_segments: true,
    })
    .unwrap();
    assert!(
        master.contains("CODECS=\"avc1.64000d,mp4a.40.2\""),
        "{master}"
    );
    let path = dir.path().join("getHLSMasterPlaylist.m3u8");
    std::fs::write(&path, &master).unwrap();

    let (packets, stderr) = probe_packets(&[], &path);
    assert_eq!(stderr, "");
    let got = by_stream(&packets);
    let mut got: Vec<Vec<i64>> = got.into_values().collect();
    // Which stream ffmpeg lists first is its choice: match by count.
    got.sort_by_key(Vec::len);
    expected.sort_by_key(Vec::len);
    assert_eq!(
        got.iter().map(Vec::len).collect::<Vec<_>>(),
        [50, 95],
        "every frame of both renditions"
    );
    for (got, want) in got.iter().zip(&expected) {
        // The edit list takes the decode delay out: the times given, exactly.
        assert_eq!(got, want, "{demux:?}");
    }
    assert_decode_order(&path, &format!("{demux:?}"));
    assert_eq!(decode(&[], &path), "");
}
