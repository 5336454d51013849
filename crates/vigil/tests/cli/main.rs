//! End-to-end tests of the real `vigil` binary.
//!
//! This is the crate's one integration test binary; further tests go in this file or in modules
//! under `tests/cli/`. Every server runs on its own ephemeral port (`--listen 127.0.0.1:0`) and
//! reports the address it bound in its `listening on ADDR` log line.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod analysis;
mod aws_sdk;
mod camera;
mod camera_secrets;
mod check;
mod client;
mod conformance;
mod console;
mod disk_full;
mod inspect;
mod kinesis;
mod media;
mod rekognition;
mod sns;
mod tls;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Root credentials of servers started with [`Server::start_with_root`].
const ROOT_KEY: &str = "AKIDVIGILTESTROOT";
const ROOT_SECRET: &str = "vigil-test-secret/with+odd=characters";

fn vigil() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    // Tests must not depend on the environment they are run from.
    for var in [
        "VIGIL_LISTEN",
        "VIGIL_LOG_FORMAT",
        "RUST_LOG",
        "VIGIL_DATA_DIR",
        "VIGIL_MASTER_KEY",
        "VIGIL_MASTER_KEY_ID",
        "VIGIL_CONFIG",
        "VIGIL_REGION",
        "VIGIL_PUBLIC_URL",
        "VIGIL_ACCOUNT_ID",
        "VIGIL_TLS_CERT",
        "VIGIL_TLS_KEY",
        "VIGIL_TLS_SELF_SIGNED",
        "VIGIL_TLS_NAMES",
        "VIGIL_ALLOW_ANONYMOUS",
        "VIGIL_ACCESS_KEY_ID",
        "VIGIL_SECRET_ACCESS_KEY",
        "VIGIL_SHUTDOWN_TIMEOUT",
        "VIGIL_FACES_BACKEND",
        "VIGIL_ANALYSIS_FPS",
        "VIGIL_ANALYSIS_MAX_LAG_MS",
        "VIGIL_MAX_STREAM_PROCESSORS",
        "VIGIL_MAX_PUTMEDIA_SESSIONS",
        "VIGIL_MAX_PUTMEDIA_SESSIONS_PER_KEY",
        "VIGIL_PUTMEDIA_MIN_BYTES_PER_MINUTE",
        "VIGIL_ONNXRUNTIME_LIBRARY",
        "ORT_DYLIB_PATH",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap()
}

/// A `vigil serve` child process, killed on drop if the test did not stop it.
struct Server {
    child: Child,
    addr: SocketAddr,
    /// Lines of stderr read so far and lines still to come.
    log: Vec<String>,
    log_rx: mpsc::Receiver<String>,
    /// The server's data directory, removed when the server is dropped.
    data: tempfile::TempDir,
}

impl Server {
    /// Starts `vigil serve --listen 127.0.0.1:0 EXTRA_ARGS...` and waits for its address.
    fn start(extra_args: &[&str]) -> Server {
        Self::start_with(extra_args, &[])
    }

    /// Starts a server with root credentials [`ROOT_KEY`]/[`ROOT_SECRET`].
    fn start_with_root(extra_args: &[&str]) -> Server {
        Self::start_with(
            extra_args,
            &[
                ("VIGIL_ACCESS_KEY_ID", ROOT_KEY),
                ("VIGIL_SECRET_ACCESS_KEY", ROOT_SECRET),
            ],
        )
    }

    /// Starts a server with extra arguments and environment variables.
    fn start_with(extra_args: &[&str], env: &[(&str, &str)]) -> Server {
        Self::start_in(tempfile::tempdir().unwrap(), extra_args, env)
    }

    /// Starts a server on the data directory `data` (a previous server's, to restart it).
    fn start_in(data: tempfile::TempDir, extra_args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = vigil()
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .args(extra_args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A thread drains stderr so that the server never blocks on a full pipe.
        let stderr = child.stderr.take().unwrap();
        let (tx, log_rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            log: Vec::new(),
            log_rx,
            data,
        };
        let line = server.wait_for_log("listening on ");
        server.addr = bound_address(&line);
        server
    }

    /// The server's data directory.
    fn data_dir(&self) -> &std::path::Path {
        self.data.path()
    }

    /// The first stderr line so far containing `needle`, or else the next one to come.
    fn log_line(&mut self, needle: &str) -> String {
        match self.log.iter().find(|l| l.contains(needle)) {
            Some(line) => line.clone(),
            None => self.wait_for_log(needle),
        }
    }

    /// Waits for a new stderr line containing `needle` and returns it.
    fn wait_for_log(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log_rx.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "no log line with {needle:?} ({e}); log so far: {:#?}",
                    self.log
                ),
            }
        }
    }

    /// Sends `signal` (e.g. "TERM") to the server and waits for it to exit.
    fn signal_and_wait(&mut self, signal: &str) -> ExitStatus {
        let pid = self.child.id().to_string();
        let kill = Command::new("kill")
            .args([format!("-{signal}").as_str(), pid.as_str()])
            .status()
            .unwrap();
        assert!(kill.success(), "kill -{signal} {pid} failed");
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.log.extend(self.log_rx.try_iter());
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "vigil serve still running {TIMEOUT:?} after SIGTERM; log: {:#?}",
                self.log
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Extracts ADDR from a text log line "... listening on ADDR ..." or a JSON one
/// `{..."message":"listening on ADDR"...}`.
fn bound_address(line: &str) -> SocketAddr {
    let rest = &line[line.find("listening on ").unwrap() + "listening on ".len()..];
    let addr = rest
        .split(|c: char| c.is_whitespace() || c == '"')
        .next()
        .unwrap();
    addr.parse()
        .unwrap_or_else(|e| panic!("bad address {addr:?} in {line:?}: {e}"))
}

/// A response to a plain HTTP/1.1 request.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `GET path` with `Connection: close` and reads the whole response.
fn http_get(addr: SocketAddr, path: &str) -> Response {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {raw:?}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    Response {
        status,
        headers,
        body: body.to_owned(),
    }
}

#[test]
fn help_lists_serve() {
    let out = run(vigil().arg("--help"));
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.lines().any(|l| l.trim_start().starts_with("serve ")),
        "{stdout}"
    );
}

#[test]
fn version_flag_prints_crate_version() {
    let out = run(vigil().arg("--version"));
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.trim(),
        format!("vigil {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn serve_rejects_bad_listen_address() {
    let out = run(vigil().args(["serve", "--listen", "not-an-address"]));
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("not-an-address"), "{stderr}");
    assert!(stderr.contains("--listen"), "{stderr}");
    assert!(stderr.contains("127.0.0.1:4567"), "{stderr}");
}

#[test]
fn serve_reads_listen_address_from_env() {
    let out = run(vigil().arg("serve").env("VIGIL_LISTEN", "bogus"));
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("bogus"), "{stderr}");
}

#[test]
fn serve_reports_an_address_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(vigil().args(["serve", "--listen", &addr]));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(&format!("error: cannot listen on {addr}: ")),
        "{stderr}"
    );
}

#[test]
fn serve_rejects_invalid_rust_log() {
    let out = run(vigil()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "vigil=notalevel"));
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("RUST_LOG"), "{stderr}");
}

#[test]
fn serve_answers_health_and_stops_on_sigterm() {
    let mut server = Server::start(&[]);

    let resp = http_get(server.addr, "/health");
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_str(&resp.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")})
    );

    assert_eq!(http_get(server.addr, "/no-such-path").status, 404);

    let status = server.signal_and_wait("TERM");
    assert!(status.success(), "{status:?}; log: {:#?}", server.log);
    assert!(
        server.log.iter().any(|l| l.contains("shutting down")),
        "{:#?}",
        server.log
    );
}

#[test]
fn serve_logs_json_and_stops_on_sigint() {
    let mut server = Server::start(&["--log-format", "json"]);
    let line = server.log.last().unwrap().clone();
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["level"], "INFO", "{line}");
    assert_eq!(
        event["fields"]["message"],
        format!("listening on {}", server.addr),
        "{line}"
    );
    assert_eq!(event["fields"]["version"], env!("CARGO_PKG_VERSION"));

    assert_eq!(http_get(server.addr, "/health").status, 200);

    let status = server.signal_and_wait("INT");
    assert!(status.success(), "{status:?}; log: {:#?}", server.log);
}

#[test]
fn connections_over_the_per_address_cap_are_closed_at_accept() {
    use std::io::{Read, Write};
    let server = Server::start(&["--max-connections-per-address", "2"]);
    let held: Vec<std::net::TcpStream> = (0..2)
        .map(|_| std::net::TcpStream::connect(server.addr).unwrap())
        .collect();
    let mut third = std::net::TcpStream::connect(server.addr).unwrap();
    third
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let _ = third.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut buf = [0u8; 64];
    // Closed without an answer: end of stream or a reset, never a response.
    match third.read(&mut buf) {
        Ok(n) => assert_eq!(n, 0, "{:?}", String::from_utf8_lossy(&buf[..n])),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ),
            "{e}"
        ),
    }
    drop(held);
    // Places come back when connections close.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let metrics = loop {
        let mut s = std::net::TcpStream::connect(server.addr).unwrap();
        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        if text.starts_with("HTTP/1.1 200") {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "never answered again");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(
        metrics.contains("vigil_connections_refused_total{limit=\"address\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("vigil_connections_open"), "{metrics}");
}

#[test]
fn console_sign_ins_that_keep_failing_are_throttled_by_address() {
    use std::io::{Read, Write};
    let server = Server::start(&[]);
    let login = || {
        let mut s = std::net::TcpStream::connect(server.addr).unwrap();
        let body = "{}";
        let _ = write!(
            s,
            "POST /console/api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        text
    };
    // Unsigned: each one a failed sign-in.
    for _ in 0..10 {
        let r = login();
        assert!(r.starts_with("HTTP/1.1 4"), "{r}");
        assert!(!r.contains("ClientLimitExceededException"), "{r}");
    }
    let r = login();
    assert!(r.contains("ClientLimitExceededException"), "{r}");
    assert!(r.contains("Too many failed sign-ins from 127.0.0.1"), "{r}");
}
