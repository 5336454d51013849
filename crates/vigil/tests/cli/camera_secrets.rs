//! Camera credentials at rest: `cameras.json` sealed under the store's master key (no
//! password, URL or camera name in the clear), a file in the clear from an earlier version
//! sealed at the first start, and a file that fails authentication refused, never emptied.
//! No RTSP server is needed: the cameras stay in back-off, which is enough to be kept,
//! listed and logged.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::camera::{free_port, listed, metric, wait_metrics};
use crate::{ROOT_KEY, ROOT_SECRET, Server, http_get};

const PASSWORD: &str = "pl41n-pw";

const ROOT: [(&str, &str); 2] = [
    ("VIGIL_ACCESS_KEY_ID", ROOT_KEY),
    ("VIGIL_SECRET_ACCESS_KEY", ROOT_SECRET),
];

/// `path` is a private, sealed camera list: format version 2, mode 0600, and none of `clear`
/// (nor any RTSP URL) in it.
pub(crate) fn assert_sealed(path: &Path, clear: &[&str]) {
    let text = String::from_utf8(std::fs::read(path).unwrap()).unwrap();
    let mode = std::fs::metadata(path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", path.display());
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["version"], 2, "{text}");
    assert_eq!(v["encryption"], "AES-256-GCM", "{text}");
    assert!(
        v["sealed"].as_str().is_some_and(|s| !s.is_empty()),
        "{text}"
    );
    for s in clear.iter().chain(&["rtsp://", "rtsp:", "@127.0.0.1"]) {
        assert!(
            !text.contains(s),
            "{s:?} in the clear in {}: {text}",
            path.display()
        );
    }
}

/// The server's log holds no `PASSWORD`.
fn assert_log_clean(server: &Server) {
    let leaked: Vec<&String> = server.log.iter().filter(|l| l.contains(PASSWORD)).collect();
    assert!(leaked.is_empty(), "{leaked:#?}");
}

/// Stops `server` and hands back its data directory.
fn stop(mut server: Server) -> tempfile::TempDir {
    assert!(server.signal_and_wait("TERM").success());
    assert_log_clean(&server);
    std::mem::replace(&mut server.data, tempfile::tempdir().unwrap())
}

#[test]
fn a_plain_cameras_json_is_sealed_at_start_kept_across_restarts_and_refused_if_altered() {
    let home = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    // Nothing listens there: the camera fails and backs off, and is kept all the same.
    let port = free_port();
    let url = format!("rtsp://viewer:{PASSWORD}@127.0.0.1:{port}/cam");
    let file = data.path().join("cameras.json");
    // What an earlier version of Vigil wrote.
    let plain = serde_json::json!({
        "version": 1,
        "cameras": [{
            "name": "shed",
            "url": url,
            "stream": "shed-cam",
            "transport": "tcp",
            "create_stream": true,
            "retention_hours": 2,
        }],
    });
    std::fs::write(&file, serde_json::to_vec_pretty(&plain).unwrap()).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();

    // First start: read once, rewritten sealed before the camera starts.
    let mut server = Server::start_in(data, &[], &ROOT);
    let line = server.log_line("camera list rewritten");
    assert!(line.contains("in the clear"), "{line}");
    assert_sealed(&file, &[&url, PASSWORD, "shed", "viewer"]);
    assert!(!server.data_dir().join(".cameras.json.tmp").exists());
    wait_metrics(&server, Duration::from_secs(20), "a failed attempt", |s| {
        metric(s, "vigil_camera_errors_total{camera=\"shed\"}").unwrap_or(0.0) >= 1.0
    });
    let cam = listed(&server, home.path(), "shed").unwrap();
    assert_eq!(cam["Source"], "api", "{cam:#}");
    assert_eq!(cam["Stream"], "shed-cam");
    assert_eq!(
        cam["Url"].as_str().unwrap(),
        format!("rtsp://viewer:***@127.0.0.1:{port}/cam")
    );
    assert!(cam["Status"]["LastError"].as_str().is_some(), "{cam:#}");
    assert!(!cam.to_string().contains(PASSWORD), "{cam:#}");
    assert!(!http_get(server.addr, "/metrics").body.contains(PASSWORD));
    server.log_line("camera error");
    let data = stop(server);

    // A restart reads the sealed file back as it is, and starts the camera again.
    let sealed = std::fs::read(&file).unwrap();
    let server = Server::start_in(data, &[], &ROOT);
    assert_eq!(
        listed(&server, home.path(), "shed").unwrap()["Source"],
        "api"
    );
    assert!(
        !server
            .log
            .iter()
            .any(|l| l.contains("camera list rewritten")),
        "{:#?}",
        server.log
    );
    assert_eq!(
        std::fs::read(&file).unwrap(),
        sealed,
        "rewritten for nothing"
    );
    let data = stop(server);

    // `vigil check` reads the sealed list back too.
    let out = crate::run(
        crate::vigil()
            .args(["check", "--json", "--data-dir"])
            .arg(data.path()),
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["cameras"], 1, "{report}");
    assert_eq!(report["clean"], true, "{report}");

    // One character of the sealed list changed: the server does not start, and says which
    // file and what to do; the file is left as it was.
    let mut v: serde_json::Value = serde_json::from_slice(&sealed).unwrap();
    let body = v["sealed"].as_str().unwrap().to_owned();
    let (first, rest) = body.split_at(1);
    let other = if first == "A" { "B" } else { "A" };
    v["sealed"] = format!("{other}{rest}").into();
    let altered = serde_json::to_vec_pretty(&v).unwrap();
    std::fs::write(&file, &altered).unwrap();
    let stderr = crate::check::serve_refuses(data.path());
    assert!(
        stderr.contains(&format!("{} fails authentication", file.display())),
        "{stderr}"
    );
    // `vigil check` says the same, and fails.
    let out = crate::vigil()
        .args(["check", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("PROBLEM") && text.contains("fails authentication"),
        "{text}"
    );
    assert!(!text.contains(PASSWORD), "{text}");
    assert!(stderr.contains("Restore cameras.json"), "{stderr}");
    assert!(stderr.contains("vigil camera add"), "{stderr}");
    assert!(!stderr.contains(PASSWORD), "{stderr}");
    assert_eq!(std::fs::read(&file).unwrap(), altered);

    // Restored, it starts again with its camera.
    std::fs::write(&file, &sealed).unwrap();
    let server = Server::start_in(data, &[], &ROOT);
    assert!(listed(&server, home.path(), "shed").is_some());
    drop(stop(server));
}
