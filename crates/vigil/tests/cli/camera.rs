//! Cameras pulled by the server: a real RTSP server (GStreamer's, `tests/rtsp_server.py`,
//! run with the system's python3 and its GObject bindings) serves a live test pattern;
//! `vigil serve` records it through a `[[camera]]` table; the recording is read back with
//! `vigil get` and checked with ffprobe/ffmpeg, and fragment times with ListFragments.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_kinesisvideo::types::ApiName;
use aws_sdk_kinesisvideoarchivedmedia::types::{
    FragmentSelector, FragmentSelectorType, TimestampRange,
};
use aws_smithy_types::DateTime;

use crate::aws_sdk::{control_client, http_client};
use crate::{ROOT_KEY, ROOT_SECRET, Server, http_get, vigil};

/// The interpreter with GStreamer's bindings (scripts/install-test-deps.sh installs them).
fn python() -> String {
    std::env::var("VIGIL_TEST_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".to_owned())
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `rtsp_server.py`, killed on drop.
struct RtspServer {
    child: Child,
    url: String,
}

impl RtspServer {
    // The child is killed and waited for by `Drop`, or just before a panic.
    #[allow(clippy::zombie_processes)]
    fn start(port: u16, args: &[&str]) -> RtspServer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rtsp_server.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg(port.to_string())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {} (install-test-deps.sh): {e}", python()));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(line) => line,
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("the RTSP server did not start: {e}");
                }
            };
            if let Some(url) = line.strip_prefix("ready ") {
                return RtspServer {
                    child,
                    url: url.to_owned(),
                };
            }
        }
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `vigil serve` with one camera.
fn serve_camera(dir: &Path, name: &str, url: &str) -> Server {
    serve_camera_with(dir, name, url, "")
}

/// Starts `vigil serve` with one camera, with `extra` lines in its `[[camera]]` table.
fn serve_camera_with(dir: &Path, name: &str, url: &str, extra: &str) -> Server {
    let config = dir.join("vigil.toml");
    // Credentials in the URL: the test server asks for none, so they are never used, but they
    // must not show in logs or metrics.
    let url = url.replacen("rtsp://", "rtsp://viewer:s3cret-pw@", 1);
    std::fs::write(
        &config,
        format!("[[camera]]\nname = \"{name}\"\nurl = \"{url}\"\nretention_hours = 1\n{extra}"),
    )
    .unwrap();
    Server::start_with_root(&["--config", config.to_str().unwrap()])
}

/// `vigil camera ARGS` against `server`, as root.
pub(crate) fn camera_cmd(server: &Server, home: &Path, args: &[&str]) -> std::process::Output {
    camera_cmd_as(server, home, (ROOT_KEY, ROOT_SECRET), args)
}

/// `vigil camera ARGS` against `server`, signed with `key` (id, secret).
fn camera_cmd_as(
    server: &Server,
    home: &Path,
    key: (&str, &str),
    args: &[&str],
) -> std::process::Output {
    vigil()
        .env("AWS_ACCESS_KEY_ID", key.0)
        .env("AWS_SECRET_ACCESS_KEY", key.1)
        .env("AWS_REGION", "us-east-1")
        .env("HOME", home)
        .arg("camera")
        .args(args)
        .args(["--endpoint-url", &format!("http://{}", server.addr)])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `vigil camera list --json`: the camera named `name`, if listed.
pub(crate) fn listed(server: &Server, home: &Path, name: &str) -> Option<serde_json::Value> {
    let out = camera_cmd(server, home, &["list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["Cameras"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["Name"] == name)
        .cloned()
}

/// The value of a metric series, if present.
pub(crate) fn metric(server: &Server, series: &str) -> Option<f64> {
    let body = http_get(server.addr, "/metrics").body;
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Waits until `cond` holds for the metrics, up to `limit`.
pub(crate) fn wait_metrics(
    server: &Server,
    limit: Duration,
    what: &str,
    cond: impl Fn(&Server) -> bool,
) {
    let deadline = Instant::now() + limit;
    while !cond(server) {
        assert!(
            Instant::now() < deadline,
            "{what} not reached in {limit:?}; metrics:\n{}",
            http_get(server.addr, "/metrics")
                .body
                .lines()
                .filter(|l| l.starts_with("vigil_camera"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        thread::sleep(Duration::from_millis(250));
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// (stream index, pts ms, key) of every packet of a recording made by `vigil get`.
fn recording(server: &Server, dir: &Path, stream: &str) -> Vec<(u32, i64, bool)> {
    recording_from(server, dir, stream, "earliest")
}

/// The same, from `--start START`; the recording must decode without an error.
fn recording_from(server: &Server, dir: &Path, stream: &str, start: &str) -> Vec<(u32, i64, bool)> {
    let file = dir.join(format!("{stream}-{}.mkv", now_ms()));
    let out = vigil()
        .env("AWS_ACCESS_KEY_ID", ROOT_KEY)
        .env("AWS_SECRET_ACCESS_KEY", ROOT_SECRET)
        .env("AWS_REGION", "us-east-1")
        .env("HOME", dir)
        .args(["get", stream, "--start", start, "--no-follow", "-o"])
        .arg(&file)
        .args(["--endpoint-url", &format!("http://{}", server.addr)])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "vigil get: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decode = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(&file)
        // Frames keep their own times (a fast camera's are not 25 per second of server time).
        .args([
            "-fps_mode",
            "passthrough",
            "-enc_time_base",
            "-1",
            "-f",
            "null",
            "-",
        ])
        .output()
        .unwrap();
    assert!(
        decode.status.success() && decode.stderr.is_empty(),
        "ffmpeg cannot decode the recording: {}",
        String::from_utf8_lossy(&decode.stderr)
    );
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "packet=stream_index,pts_time,flags",
        ])
        .args(["-of", "csv=p=0"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(probe.status.success());
    String::from_utf8(probe.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut f = l.split(',');
            let s = f.next().unwrap().parse().unwrap();
            let pts = (f.next().unwrap().parse::<f64>().unwrap() * 1000.0).round() as i64;
            (s, pts, f.next().unwrap_or("").contains('K'))
        })
        .collect()
}

fn codecs(server: &Server, dir: &Path, stream: &str) -> Vec<String> {
    let file = dir.join("codecs.mkv");
    let out = vigil()
        .env("AWS_ACCESS_KEY_ID", ROOT_KEY)
        .env("AWS_SECRET_ACCESS_KEY", ROOT_SECRET)
        .env("AWS_REGION", "us-east-1")
        .env("HOME", dir)
        .args(["get", stream, "--start", "earliest", "--no-follow", "-o"])
        .arg(&file)
        .args(["--endpoint-url", &format!("http://{}", server.addr)])
        .output()
        .unwrap();
    assert!(out.status.success());
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_name"])
        .args(["-of", "csv=p=0"])
        .arg(&file)
        .output()
        .unwrap();
    String::from_utf8(probe.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// (producer, server) timestamps of every fragment of `stream`, ms, by producer time.
fn fragment_times(server: &Server, stream: &str) -> Vec<(i64, i64)> {
    let endpoint = format!("http://{}", server.addr);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let kv = control_client(&endpoint, ROOT_KEY, ROOT_SECRET, "us-east-1");
        let data_ep = kv
            .get_data_endpoint()
            .stream_name(stream)
            .api_name(ApiName::ListFragments)
            .send()
            .await
            .unwrap()
            .data_endpoint
            .unwrap();
        let creds = aws_credential_types::Credentials::new(ROOT_KEY, ROOT_SECRET, None, None, "t");
        let archived = aws_sdk_kinesisvideoarchivedmedia::Client::from_conf(
            aws_sdk_kinesisvideoarchivedmedia::Config::builder()
                .behavior_version(
                    aws_sdk_kinesisvideoarchivedmedia::config::BehaviorVersion::latest(),
                )
                .region(aws_sdk_kinesisvideoarchivedmedia::config::Region::new(
                    "us-east-1",
                ))
                .credentials_provider(creds)
                .endpoint_url(&data_ep)
                .http_client(http_client())
                .build(),
        );
        let mut pages = archived
            .list_fragments()
            .stream_name(stream)
            .fragment_selector(
                FragmentSelector::builder()
                    .fragment_selector_type(FragmentSelectorType::ServerTimestamp)
                    .timestamp_range(
                        TimestampRange::builder()
                            .start_timestamp(DateTime::from_secs(1_700_000_000))
                            .end_timestamp(DateTime::from_secs(4_000_000_000))
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            for f in page.unwrap().fragments.unwrap_or_default() {
                out.push((
                    f.producer_timestamp.unwrap().to_millis().unwrap(),
                    f.server_timestamp.unwrap().to_millis().unwrap(),
                ));
            }
        }
        out.sort_unstable();
        out
    })
}

#[test]
fn camera_records_h264_and_aac_and_reconnects_after_the_camera_returns() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let camera = RtspServer::start(port, &["--audio"]);
    let mut server = serve_camera(dir.path(), "door", &camera.url);
    assert!(
        server
            .log
            .iter()
            .any(|l| l.contains("camera started") && l.contains("rtsp://viewer:***@")),
        "{:#?}",
        server.log
    );
    wait_metrics(&server, Duration::from_secs(40), "4 fragments", |s| {
        metric(s, "vigil_camera_fragments_total{camera=\"door\"}").unwrap_or(0.0) >= 4.0
    });
    assert_eq!(
        metric(
            &server,
            "vigil_camera_state{camera=\"door\",state=\"streaming\"}"
        ),
        Some(1.0)
    );
    let mut got_codecs = codecs(&server, dir.path(), "door");
    got_codecs.sort();
    assert_eq!(got_codecs, ["aac", "h264"]);

    // Frames present, decodable, key frames first, on the server's clock.
    let packets = recording(&server, dir.path(), "door");
    let checked_at = now_ms();
    let video: Vec<&(u32, i64, bool)> = packets.iter().filter(|p| p.0 == 0).collect();
    let audio = packets.iter().filter(|p| p.0 == 1).count();
    assert!(video.len() >= 75, "{} video frames", video.len());
    assert!(audio >= 100, "{audio} audio frames");
    assert!(video[0].2, "the recording starts with a key frame");
    let last = video.iter().map(|p| p.1).max().unwrap();
    assert!(
        last <= checked_at && last >= checked_at - 3000,
        "the last frame is at {last} ms, fetched at {checked_at} ms"
    );
    for (producer, server_ts) in fragment_times(&server, "door") {
        assert!(
            (producer - server_ts).abs() <= 250,
            "fragment at {producer} ms arrived at {server_ts} ms"
        );
    }
    let log = server.log.join("\n");
    assert!(!log.contains("s3cret-pw"), "the password is in the log");
    assert!(!http_get(server.addr, "/metrics").body.contains("s3cret-pw"));

    // The camera goes away: the error and the back-off show.
    drop(camera);
    let killed_at = now_ms();
    wait_metrics(&server, Duration::from_secs(20), "backoff", |s| {
        metric(s, "vigil_camera_state{camera=\"door\",state=\"backoff\"}") == Some(1.0)
    });
    let line = server.wait_for_log("camera error");
    assert!(line.contains("door"), "{line}");
    assert!(!line.contains("s3cret-pw"), "{line}");
    let errors = metric(&server, "vigil_camera_errors_total{camera=\"door\"}").unwrap();
    assert!(errors >= 1.0);
    // `vigil camera list` shows the state and the error.
    let cam = listed(&server, dir.path(), "door").unwrap();
    assert_eq!(cam["Status"]["State"], "backoff", "{cam:#}");
    assert!(
        cam["Status"]["LastError"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{cam:#}"
    );
    assert_eq!(cam["Source"], "config");
    assert_eq!(cam["Url"].as_str().unwrap(), camera_url_shown(port));
    let table = camera_cmd(&server, dir.path(), &["list"]);
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(
        table.contains("door") && table.contains("backoff"),
        "{table}"
    );
    // A camera of the configuration file cannot be removed through the API.
    let out = camera_cmd(&server, dir.path(), &["remove", "door"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ResourceInUseException"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    thread::sleep(Duration::from_secs(3));
    assert_eq!(
        metric(&server, "vigil_camera_sessions_total{camera=\"door\"}"),
        Some(1.0),
        "no session while the camera is away"
    );

    // It comes back on the same address: recording resumes.
    let camera = RtspServer::start(port, &["--audio"]);
    let fragments_before =
        metric(&server, "vigil_camera_fragments_total{camera=\"door\"}").unwrap();
    wait_metrics(&server, Duration::from_secs(60), "a second session", |s| {
        metric(s, "vigil_camera_sessions_total{camera=\"door\"}").unwrap_or(0.0) >= 2.0
            && metric(s, "vigil_camera_fragments_total{camera=\"door\"}").unwrap_or(0.0)
                >= fragments_before + 3.0
    });
    let packets = recording(&server, dir.path(), "door");
    let after: Vec<i64> = packets
        .iter()
        .filter(|p| p.0 == 0 && p.1 > killed_at)
        .map(|p| p.1)
        .collect();
    assert!(
        after.len() >= 50,
        "{} frames after the restart",
        after.len()
    );
    drop(camera);
    assert!(server.signal_and_wait("TERM").success());
}

fn camera_url_shown(port: u16) -> String {
    format!("rtsp://viewer:***@127.0.0.1:{port}/cam")
}

/// Cameras added with `vigil camera add` are recorded, listed, kept in a private cameras.json
/// sealed under the master key (no password or URL in the clear) across a restart, and stop
/// when removed.
#[test]
fn cameras_added_through_the_api_survive_a_restart_and_can_be_removed() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let camera = RtspServer::start(port, &[]);
    let server = Server::start_with_root(&[]);
    let url = camera
        .url
        .replacen("rtsp://", "rtsp://viewer:s3cret-pw@", 1);
    let out = camera_cmd(
        &server,
        dir.path(),
        &[
            "add",
            "porch",
            &url,
            "--stream",
            "porch-cam",
            "--retention-hours",
            "2",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = camera_cmd(&server, dir.path(), &["add", "bad name", &url]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("InvalidArgumentException"));
    let clash = camera_cmd(
        &server,
        dir.path(),
        &["add", "other", &url, "--stream", "porch-cam"],
    );
    assert!(String::from_utf8_lossy(&clash.stderr).contains("ResourceInUseException"));
    wait_metrics(&server, Duration::from_secs(40), "2 fragments", |s| {
        metric(s, "vigil_camera_fragments_total{camera=\"porch\"}").unwrap_or(0.0) >= 2.0
    });
    let cam = listed(&server, dir.path(), "porch").unwrap();
    assert_eq!(cam["Status"]["State"], "streaming", "{cam:#}");
    assert_eq!(cam["Stream"], "porch-cam");
    assert_eq!(cam["Source"], "api");
    assert!(cam["Status"]["Frames"].as_u64().unwrap() > 25, "{cam:#}");
    assert!(!cam.to_string().contains("s3cret-pw"));
    assert_eq!(cam["Url"].as_str().unwrap(), camera_url_shown(port));
    let file = server.data_dir().join("cameras.json");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "cameras.json holds passwords");
    crate::camera_secrets::assert_sealed(&file, &[&url, "s3cret-pw", "porch-cam"]);

    // The operations are authorised like KVS ones: a key allowed ListCameras on other
    // streams sees no camera, and may not add one.
    let created = vigil()
        .args([
            "keys",
            "create",
            "--name",
            "viewer",
            "--allow",
            "ListCameras",
        ])
        .args(["--streams", "other-*", "--json", "--data-dir"])
        .arg(server.data_dir())
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    let key = (
        created["access_key_id"].as_str().unwrap(),
        created["secret_access_key"].as_str().unwrap(),
    );
    let out = camera_cmd_as(&server, dir.path(), key, &["list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Cameras"].as_array().unwrap().len(), 0, "{v}");
    let out = camera_cmd_as(
        &server,
        dir.path(),
        key,
        &["add", "x", &url, "--stream", "other-1"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && (err.contains("AccessDeniedException") || err.contains("NotAuthorizedException")),
        "{err}"
    );
    let out = camera_cmd_as(&server, dir.path(), key, &["remove", "porch"]);
    assert!(!out.status.success());

    // Adding cameras must be granted by name: a key allowed every KVS operation on every
    // stream may not.
    let broad = vigil()
        .args(["keys", "create", "--name", "broad", "--allow", "*"])
        .args(["--streams", "*", "--json", "--data-dir"])
        .arg(server.data_dir())
        .output()
        .unwrap();
    assert!(broad.status.success());
    let broad: serde_json::Value = serde_json::from_slice(&broad.stdout).unwrap();
    let broad = (
        broad["access_key_id"].as_str().unwrap(),
        broad["secret_access_key"].as_str().unwrap(),
    );
    let out = camera_cmd_as(
        &server,
        dir.path(),
        broad,
        &["add", "y", &url, "--stream", "other-2"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("NotAuthorizedException"),
        "{err}"
    );
    // And the server dials no address outside camera_networks (default: private ranges).
    let out = camera_cmd_as(
        &server,
        dir.path(),
        (ROOT_KEY, ROOT_SECRET),
        &["add", "outside", "rtsp://203.0.113.7/stream1"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("InvalidArgumentException")
            && err.contains("203.0.113.7 is outside"),
        "{err}"
    );

    // A restart on the same data directory starts it again.
    let mut server = server;
    assert!(server.signal_and_wait("TERM").success());
    assert!(
        !server.log.iter().any(|l| l.contains("s3cret-pw")),
        "{:#?}",
        server.log
    );
    let data = std::mem::replace(&mut server.data, tempfile::tempdir().unwrap());
    drop(server);
    let server = Server::start_in(
        data,
        &[],
        &[
            ("VIGIL_ACCESS_KEY_ID", ROOT_KEY),
            ("VIGIL_SECRET_ACCESS_KEY", ROOT_SECRET),
        ],
    );
    wait_metrics(
        &server,
        Duration::from_secs(40),
        "fragments after the restart",
        |s| metric(s, "vigil_camera_fragments_total{camera=\"porch\"}").unwrap_or(0.0) >= 2.0,
    );
    assert_eq!(
        listed(&server, dir.path(), "porch").unwrap()["Source"],
        "api"
    );

    // Removed: listed no more, not in the file, its task gone from the metrics.
    let out = camera_cmd(&server, dir.path(), &["remove", "porch"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(listed(&server, dir.path(), "porch").is_none());
    crate::camera_secrets::assert_sealed(&server.data_dir().join("cameras.json"), &["porch"]);
    assert!(
        !server.log.iter().any(|l| l.contains("s3cret-pw")),
        "{:#?}",
        server.log
    );
    assert!(metric(&server, "vigil_camera_frames_total{camera=\"porch\"}").is_none());
    let missing = camera_cmd(&server, dir.path(), &["remove", "porch"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("ResourceNotFoundException"));
    drop(camera);
}

/// Picture sizes of the first `n` frames of `vigil get --start START`.
fn frame_sizes(server: &Server, dir: &Path, stream: &str, start: &str) -> Vec<String> {
    let file = dir.join(format!("sizes-{}.mkv", now_ms()));
    let out = vigil()
        .env("AWS_ACCESS_KEY_ID", ROOT_KEY)
        .env("AWS_SECRET_ACCESS_KEY", ROOT_SECRET)
        .env("AWS_REGION", "us-east-1")
        .env("HOME", dir)
        .args(["get", stream, "--start", start, "--no-follow", "-o"])
        .arg(&file)
        .args(["--endpoint-url", &format!("http://{}", server.addr)])
        .output()
        .unwrap();
    assert!(out.status.success());
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "quiet",
            "-select_streams",
            "v",
            "-show_entries",
            "stream=width,height",
        ])
        .args(["-of", "csv=p=0"])
        .arg(&file)
        .output()
        .unwrap();
    String::from_utf8(probe.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The camera switches to a larger picture mid-session (new SPS/PPS): the server ends the
/// PutMedia session with the old track header and starts one with the new, in the same RTSP
/// session, with no ERROR ack and no gap in time.
#[test]
fn new_codec_parameters_mid_session_start_a_new_upload() {
    let dir = tempfile::tempdir().unwrap();
    let camera = RtspServer::start(free_port(), &["--resize-after", "4"]);
    let mut server = serve_camera(dir.path(), "gate", &camera.url);
    server.wait_for_log("new codec parameters: new upload");
    let switched_at = now_ms();
    wait_metrics(
        &server,
        Duration::from_secs(30),
        "fragments after the switch",
        |s| metric(s, "vigil_camera_fragments_total{camera=\"gate\"}").unwrap_or(0.0) >= 8.0,
    );
    assert_eq!(
        metric(&server, "vigil_camera_sessions_total{camera=\"gate\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(&server, "vigil_camera_errors_total{camera=\"gate\"}"),
        Some(0.0)
    );
    assert_eq!(metric(&server, "vigil_putmedia_sessions_total"), Some(2.0));
    let metrics = http_get(server.addr, "/metrics").body;
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("vigil_putmedia_errors_total{")),
        "{metrics}"
    );
    assert_eq!(
        frame_sizes(&server, dir.path(), "gate", "earliest"),
        ["320,240"]
    );
    let after =
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(switched_at + 1500) * 1_000_000)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
    assert_eq!(
        frame_sizes(&server, dir.path(), "gate", &after),
        ["480,360"]
    );
    let packets = recording_from(&server, dir.path(), "gate", &after);
    assert!(packets.len() >= 50, "{} frames", packets.len());
    // No gap between the two uploads: fragments follow each other, one or two key-frame
    // intervals (1 s) apart (a fragment lasts at least 1 s, so one ending a hair short of
    // it takes the next key frame too); an overlap would have been an ERROR ack (4004).
    let times = fragment_times(&server, "gate");
    assert!(
        times
            .windows(2)
            .all(|w| (900..=2100).contains(&(w[1].0 - w[0].0))),
        "{times:?}"
    );
}

/// H.265, with RTP over UDP.
#[test]
fn h265_camera_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let camera = RtspServer::start(free_port(), &["--codec", "h265"]);
    let server = serve_camera_with(dir.path(), "yard", &camera.url, "transport = \"udp\"\n");
    wait_metrics(&server, Duration::from_secs(40), "3 fragments", |s| {
        metric(s, "vigil_camera_fragments_total{camera=\"yard\"}").unwrap_or(0.0) >= 3.0
    });
    assert_eq!(codecs(&server, dir.path(), "yard"), ["hevc"]);
    let packets = recording(&server, dir.path(), "yard");
    assert!(packets.len() >= 50, "{} frames", packets.len());
    assert!(packets[0].2, "the recording starts with a key frame");
}

/// The camera's clock runs 7 % fast: its RTP time advances 1.07 s per second. Uncorrected,
/// its frames would be placed 2.1 s ahead of the server's clock after 30 s; recorded, every
/// fragment after the first 10 s starts within 150 ms of its arrival on the server's clock
/// (docs/cameras.md).
#[test]
fn a_camera_whose_clock_runs_fast_follows_the_server_clock() {
    follows_the_server_clock(1.07, "fast");
}

/// The same with a clock 7 % slow.
#[test]
fn a_camera_whose_clock_runs_slow_follows_the_server_clock() {
    follows_the_server_clock(0.93, "slow");
}

fn follows_the_server_clock(rate: f64, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let camera = RtspServer::start(free_port(), &["--clock-rate", &rate.to_string()]);
    let server = serve_camera(dir.path(), name, &camera.url);
    let fragments = format!("vigil_camera_fragments_total{{camera=\"{name}\"}}");
    wait_metrics(&server, Duration::from_secs(60), "30 fragments", |s| {
        metric(s, &fragments).unwrap_or(0.0) >= 30.0
    });
    // The camera's clock really is off: the server measures its rate, and the recording holds
    // 25 x rate frames per second of server time (25 per second of camera time).
    let measured = metric(
        &server,
        &format!("vigil_camera_clock_rate{{camera=\"{name}\"}}"),
    )
    .unwrap();
    assert!(
        (measured - rate).abs() < 0.01,
        "measured camera clock rate {measured}"
    );
    let packets = recording(&server, dir.path(), name);
    let first = packets.iter().map(|p| p.1).min().unwrap();
    let last = packets.iter().map(|p| p.1).max().unwrap();
    let fps = (packets.len() - 1) as f64 * 1000.0 / (last - first) as f64;
    assert!(
        (fps - 25.0 * rate).abs() < 0.4,
        "{fps:.2} frames per server second over {} frames",
        packets.len()
    );
    // Every fragment starts where the server's clock says it arrived.
    let times = fragment_times(&server, name);
    let start = times[0].1;
    let (mut worst, mut worst_first_10s) = (0, 0);
    for &(producer, server_ts) in &times {
        let error = (producer - server_ts).abs();
        if server_ts - start >= 10_000 {
            worst = worst.max(error);
        } else {
            worst_first_10s = worst_first_10s.max(error);
        }
    }
    eprintln!(
        "camera clock x{rate}: measured rate {measured:.4}, {fps:.2} fps, {} fragments, worst \
         |producer - server| in the first 10 s: {worst_first_10s} ms, after: {worst} ms",
        times.len()
    );
    assert!(worst <= 150, "worst error {worst} ms: {times:?}");
}
