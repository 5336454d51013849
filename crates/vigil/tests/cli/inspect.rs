//! `vigil inspect`: the element tree, the JSON summary (a contract external checks read), and
//! errors on invalid input.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::{run, vigil};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The official KVS producer SDK's captures, in the `shared/` folder beside the repository (or
/// where `VIGIL_SHARED_DIR` says).
fn kvs_capture(name: &str) -> PathBuf {
    let rel = Path::new("testdata/kvs-producer-c").join(name);
    if let Some(dir) = std::env::var_os("VIGIL_SHARED_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join(rel);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|d| d.join("shared").join(&rel))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{} not found in a shared/ folder", rel.display()))
}

fn inspect_json(path: &Path) -> Value {
    let out = run(vigil().args(["inspect", "--json"]).arg(path));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn json_summary_of_the_kvs_video_capture() {
    assert_eq!(
        inspect_json(&kvs_capture("video/putmedia-body.mkv")),
        json!({
            "documents": 1,
            "clusters": 2,
            "undeclared_frames": 0,
            "tracks": [{
                "number": 1, "codec_id": "V_MPEG4/ISO/AVC", "type": "video",
                "width": 640, "height": 480,
                "frames": 68, "keyframes": 2,
                "first_ms": 1_795_320_641_601_i64, "last_ms": 1_795_320_644_281_i64,
            }]
        })
    );
}

#[test]
fn json_summary_of_the_kvs_audio_video_capture() {
    // RELATIVE timecodes; audio blocks carry no key flag, but every AAC frame stands alone.
    assert_eq!(
        inspect_json(&kvs_capture("av/putmedia-body.mkv"))["tracks"],
        json!([
            {"number": 1, "codec_id": "V_MPEG4/ISO/AVC", "type": "video", "width": 640,
             "height": 480, "frames": 68, "keyframes": 2, "first_ms": 0, "last_ms": 2680},
            {"number": 2, "codec_id": "A_AAC", "type": "audio", "sample_rate": 48000.0,
             "channels": 2, "frames": 134, "keyframes": 134, "first_ms": 1, "last_ms": 2660},
        ])
    );
}

/// Several EBML documents on standard input (as GetMedia serves) are summed per track.
#[test]
fn json_sums_documents_read_from_stdin() {
    let video = std::fs::read(kvs_capture("video/putmedia-body.mkv")).unwrap();
    let av = std::fs::read(kvs_capture("av/putmedia-body.mkv")).unwrap();
    let mut child = vigil()
        .args(["inspect", "--json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        for part in [&video, &av, &video] {
            stdin.write_all(part).unwrap();
        }
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["documents"], 3);
    assert_eq!(v["clusters"], 6);
    let t = &v["tracks"];
    assert_eq!(t[0]["frames"], 68 * 3);
    assert_eq!(t[0]["keyframes"], 6);
    assert_eq!(t[0]["first_ms"], 1_795_320_641_601_i64);
    assert_eq!(t[0]["last_ms"], 1_795_320_644_281_i64);
    assert_eq!(t[1]["frames"], 134);
    assert_eq!(t.as_array().unwrap().len(), 2);
}

/// Per track: frame and key-frame counts and first/last start times agree with ffprobe's
/// packets. (Opus is left out: ffprobe shifts its timestamps by the CodecDelay, while inspect
/// reports the file's own timecodes; the mkv crate's tests check that rule.)
#[test]
fn json_agrees_with_ffprobe_on_the_test_vectors() {
    let mut checked = 0;
    for entry in std::fs::read_dir(repo().join("testdata")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.ends_with(".mkv") || name.ends_with(".webm")) || name.contains("opus") {
            continue;
        }
        let ours = inspect_json(&path);
        let out = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "packet=stream_index,pts_time,flags",
            ])
            .args(["-of", "csv=p=0"])
            .arg(&path)
            .output()
            .expect("ffprobe (scripts/install-test-deps.sh installs it)");
        assert!(out.status.success());
        let mut per_stream: Vec<(u64, u64, Option<i64>, Option<i64>)> = Vec::new();
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            let f: Vec<&str> = line.split(',').collect();
            let stream: usize = f[0].parse().unwrap();
            // pts_time is in seconds with 6 decimals; floor to integer ms like inspect.
            let ms = (f[1].parse::<f64>().unwrap() * 1000.0 + 1e-6).floor() as i64;
            if per_stream.len() <= stream {
                per_stream.resize(stream + 1, (0, 0, None, None));
            }
            let s = &mut per_stream[stream];
            s.0 += 1;
            s.1 += u64::from(f[2].starts_with('K'));
            s.2.get_or_insert(ms);
            s.3 = Some(ms);
        }
        let tracks = ours["tracks"].as_array().unwrap();
        assert_eq!(tracks.len(), per_stream.len(), "{name}");
        for (t, (frames, keys, first, last)) in tracks.iter().zip(&per_stream) {
            assert_eq!(t["frames"], *frames, "{name} track {}", t["number"]);
            assert_eq!(t["keyframes"], *keys, "{name} track {}", t["number"]);
            assert_eq!(t["first_ms"], json!(first), "{name} track {}", t["number"]);
            assert_eq!(t["last_ms"], json!(last), "{name} track {}", t["number"]);
        }
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} test vectors found");
}

#[test]
fn tree_shows_elements_with_offsets() {
    let out = run(vigil()
        .args(["inspect"])
        .arg(kvs_capture("video/putmedia-body.mkv")));
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "EBML @0 size 35: DocType matroska v2 (reads as v2), EBML v1\n",
        "Segment @40 size unknown\n",
        "  Info @45 size 103\n",
        "    Title \"Kinesis Video SDK\"\n",
        "    Track 1: video V_MPEG4/ISO/AVC 640x480, name \"kvs_video_track\"",
        "  Cluster @280 size unknown: Timestamp 1795320641601\n",
        "    Position @295 size 1 (skipped)\n",
        "    Frame @298 track 1 timestamp 1795320641601 (1795320641601 ms) key, 119389 bytes\n",
        "  Cluster end @917418 (917138 bytes)\n",
        "  Tags @917418 size 62\n",
        "      TEST_KEY_1 = \"TEST_VALUE_1\"\n",
        "      AWS_KINESISVIDEO_END_OF_FRAGMENT = \"\"\n",
        "Segment end @1404631 (1404591 bytes)\n",
    ] {
        assert!(
            text.contains(needle),
            "missing {needle:?} in:\n{}",
            &text[..3000]
        );
    }
    assert_eq!(text.matches("  Frame @").count(), 68);
}

#[test]
fn invalid_input_fails_with_a_message() {
    let dir = std::env::temp_dir().join(format!("vigil-inspect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let body = std::fs::read(kvs_capture("video/putmedia-body.mkv")).unwrap();
    let cases: [(&str, Vec<u8>, &str); 3] = [
        (
            "wav.bin",
            b"RIFF\x24\0\0\0WAVEfmt ".to_vec(),
            "is not valid Matroska: not a Matroska or WebM stream",
        ),
        (
            "cut.mkv",
            body[..50_000].to_vec(),
            "the input ends inside an element at byte offset 298 in element 0xA3 (SimpleBlock)",
        ),
        ("empty.mkv", Vec::new(), "no Matroska data"),
    ];
    for (name, bytes, message) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        for json in [false, true] {
            let mut cmd = vigil();
            cmd.arg("inspect");
            if json {
                cmd.arg("--json");
            }
            let out = run(cmd.arg(&path));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
            assert!(stderr.contains(message), "{name}: {stderr}");
        }
    }
    let out = run(vigil().args(["inspect", "/nonexistent/x.mkv"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open /nonexistent/x.mkv"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Frames of a track no Tracks element declares are counted apart, and strings from the file
/// reach the terminal escaped.
#[test]
fn undeclared_tracks_and_control_codes() {
    use vigil_mkv::{EbmlHeader, Info, Muxer, MuxerOptions, TrackEntry};
    let mut m = Muxer::new(MuxerOptions::streaming());
    let track = TrackEntry {
        number: 1,
        uid: 1,
        track_type: 1,
        codec_id: "V_\u{1b}[31mRED".to_owned(),
        ..Default::default()
    };
    m.begin_document(&EbmlHeader::kvs(), &Info::default(), &[track])
        .unwrap();
    m.begin_cluster(0).unwrap();
    m.write_simple_block(1, 0, true, b"a").unwrap();
    m.write_simple_block(9, 1, true, b"b").unwrap();
    m.write_simple_block(9, 2, false, b"c").unwrap();
    m.end_document().unwrap();
    let dir = std::env::temp_dir().join(format!("vigil-inspect-esc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("undeclared.mkv");
    std::fs::write(&path, m.take()).unwrap();

    let v = inspect_json(&path);
    assert_eq!(v["undeclared_frames"], 2);
    assert_eq!(v["tracks"].as_array().unwrap().len(), 1);
    assert_eq!(v["tracks"][0]["frames"], 1);

    let out = run(vigil().arg("inspect").arg(&path));
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(text.contains(r"V_\u{1b}[31mRED"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}
