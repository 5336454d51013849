//! Rekognition stream processors against the real binary, through boto3
//! (`tests/analysis_clients.py`, in the venv of `scripts/aws-venv.sh`): lifecycle, validation,
//! errors and tags; every FAILED cause; three cameras pushed with `vigil put --realtime`, a
//! known and an unknown face, read back from the data stream; and a restart mid-run.
//!
//! The video is made here with ffmpeg from real photos in `crates/faces/testdata` (their
//! provenance is in its PROVENANCE.md): a still background, Obama (obama2.jpg) sliding
//! across it from 1 s to 6 s, Joe Biden from 8 s to 13 s, so that when each is in view is
//! known. The collection holds a different photo of Obama (obama.jpg).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::client::ffmpeg;
use crate::{ROOT_KEY, ROOT_SECRET, Server};

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../faces/testdata")
        .join(name)
}

/// `faces.mkv` and `obama.jpg` in `dir`.
fn media(dir: &Path) {
    let out = dir.join("faces.mkv");
    let filter = "[1]scale=-2:340,setsar=1[a];\
                  [2]crop=iw:ih*0.5:0:0,scale=-2:340,setsar=1[b];\
                  [0][a]overlay=x='40+(t-1)*60':y=10:enable='between(t,1,6)'[v1];\
                  [v1][b]overlay=x='380-(t-8)*50':y=10:enable='between(t,8,13)',format=yuv420p[v]";
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=0x505050:s=640x360:r=25:d=16",
        "-loop",
        "1",
        "-i",
        testdata("obama2.jpg").to_str().unwrap(),
        "-loop",
        "1",
        "-i",
        testdata("biden.jpg").to_str().unwrap(),
        "-filter_complex",
        filter,
        "-map",
        "[v]",
        "-t",
        "16",
        "-c:v",
        "libx264",
        "-g",
        "25",
        "-bf",
        "0",
        "-crf",
        "26",
        "-threads",
        "1",
        out.to_str().unwrap(),
    ]);
    std::fs::copy(testdata("obama.jpg"), dir.join("obama.jpg")).unwrap();
}

/// Runs the script's tests `only` (all but the restart phases when empty) against `server`.
fn script(server: &Server, media: &Path, home: &Path, only: &[&str]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/analysis_clients.py");
    let out = Command::new(crate::kinesis::aws_python())
        .arg(&path)
        .arg(format!("http://{}", server.addr))
        .args([ROOT_KEY, ROOT_SECRET, "us-east-1", "000000000000"])
        .arg(env!("CARGO_BIN_EXE_vigil"))
        .arg(media)
        .args(only)
        // For `vigil put`, which the script runs.
        .env("HOME", home)
        .env("AWS_ACCESS_KEY_ID", ROOT_KEY)
        .env("AWS_SECRET_ACCESS_KEY", ROOT_SECRET)
        .env("AWS_ENDPOINT_URL", format!("http://{}", server.addr))
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let expected: &[&str] = if only.is_empty() {
        &[
            "test_every_failed_cause",
            "test_lifecycle_validation_errors_and_tags",
            "test_three_cameras_known_and_unknown",
        ]
    } else {
        only
    };
    for t in expected {
        assert!(
            stdout.contains(&format!("ok   {t}")),
            "{t} did not run: {stdout}"
        );
    }
}

#[test]
fn boto3_drives_stream_processors_on_three_cameras() {
    let dir = tempfile::tempdir().unwrap();
    media(dir.path());
    let server = Server::start_with_root(&[]);
    script(&server, dir.path(), dir.path(), &[]);
}

#[test]
fn a_running_processor_runs_again_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    media(dir.path());
    let env = [
        ("VIGIL_ACCESS_KEY_ID", ROOT_KEY),
        ("VIGIL_SECRET_ACCESS_KEY", ROOT_SECRET),
    ];
    let mut server = Server::start_with(&[], &env);
    script(&server, dir.path(), dir.path(), &["test_restart_phase_1"]);
    assert!(server.signal_and_wait("TERM").success());
    let data = std::mem::replace(&mut server.data, tempfile::tempdir().unwrap());
    drop(server);
    let mut server = Server::start_in(data, &[], &env);
    let line = server.log_line("stream processors running again");
    assert!(line.contains("processors=1"), "{line}");
    script(&server, dir.path(), dir.path(), &["test_restart_phase_2"]);
}
