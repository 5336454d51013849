//! Conformance with the botocore service models (`tests/conformance.py`, through boto3 in the
//! venv of `scripts/aws-venv.sh`): every operation of `kinesisvideo`, `kinesis-video-media`,
//! `kinesis-video-archived-media` and `rekognition` that Vigil implements is called with the
//! model's required members, then with each optional member, then with each of the model's
//! constraints broken; every operation it does not implement must be listed as such in
//! docs/compatibility.md.
//!
//! The media: four minutes of ffmpeg's test pattern (H.264, a key frame every 2 s), pushed
//! with `vigil put --realtime` while the script runs, so that live playback has a live edge;
//! the face is a real photo from `crates/faces/testdata` (provenance in its PROVENANCE.md).

use std::path::Path;
use std::process::Command;

use crate::client::ffmpeg;
use crate::{ROOT_KEY, ROOT_SECRET, Server};

#[test]
fn every_model_operation_answers_as_the_model_says() {
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("conf.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x180:rate=10:duration=240",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "20",
        "-bf",
        "0",
        "-pix_fmt",
        "yuv420p",
        "-threads",
        "1",
        media.to_str().unwrap(),
    ]);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(
        root.join("../faces/testdata/obama.jpg"),
        dir.path().join("obama.jpg"),
    )
    .unwrap();
    let server = Server::start_with_root(&[]);
    let endpoint = format!("http://{}", server.addr);
    let out = Command::new(crate::kinesis::aws_python())
        .arg(root.join("tests/conformance.py"))
        .args([
            &endpoint,
            ROOT_KEY,
            ROOT_SECRET,
            "us-east-1",
            "000000000000",
        ])
        .arg(env!("CARGO_BIN_EXE_vigil"))
        .arg(dir.path())
        .arg(root.join("../../docs/compatibility.md"))
        // For `vigil put`, which the script runs.
        .env("HOME", dir.path())
        .env("AWS_ACCESS_KEY_ID", ROOT_KEY)
        .env("AWS_SECRET_ACCESS_KEY", ROOT_SECRET)
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // The summary line: the script got to the end, and checked something.
    let summary = stdout
        .lines()
        .find(|l| l.ends_with(" 0 failures"))
        .unwrap_or_else(|| panic!("no summary: {stdout}"));
    let count = |what: &str| -> u32 {
        summary
            .split(", ")
            .find(|p| p.contains(what))
            .and_then(|p| p.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    assert!(count("operations not implemented") >= 60, "{summary}");
    assert!(count("valid calls") >= 140, "{summary}");
    assert!(count("constraint checks") >= 300, "{summary}");
}
