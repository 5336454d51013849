//! The server's cameras: RTSP sources that `vigil serve` pulls into streams.
//!
//! Each camera (from `[[camera]]` tables of the configuration file, [`CameraConfig`]) gets one
//! task ([`worker`]): it connects with `retina` (DESCRIBE, SETUP over TCP interleaved or UDP,
//! PLAY), turns H.264/H.265 video and AAC audio into [`crate::put::source::Sample`]s placed on
//! the server's clock ([`clock`]), cuts them into KVS fragments at key frames with
//! [`crate::put::fragment::Fragmenter`] and sends them with PutMedia through
//! [`crate::put::upload::Uploader`], exactly as `vigil put` does. When the connection fails or
//! the camera stops sending, the task records the error and reconnects with exponential
//! back-off (1 s doubling to 30 s, ±20 % jitter).
//!
//! PutMedia goes to the server's own router in this process ([`crate::client::Transport`]'s
//! `InProcess`), signed with the root credentials: the same authentication, ingest path,
//! acks and metrics as any producer, without TCP, TLS certificates or host names.
//!
//! Cameras can also be added, listed and removed at run time through Vigil's own API
//! operations (`vigil_api_kvs::cameras`: `PutCamera`, `ListCameras`, `DeleteCamera`, which
//! [`Manager`] serves as a `CameraService`); those are kept in `DATA_DIR/cameras.json`, sealed
//! under the store's default master key ([`persist`]), and started again at the next start.
//! Cameras of the configuration file can only be changed there.
//!
//! Status ([`CameraStatus`]): state (connecting, streaming, backoff), last error, frames,
//! fragments, last frame time, clock error and rate; in the logs (target `vigil::camera`),
//! at `/metrics` (`vigil_camera_*`, rendered by [`Manager::render_metrics`]) and through
//! [`Manager::list`]. Passwords in camera URLs (and credential-like query parameters) never
//! reach logs, status or `Debug` output: [`redact`], and [`redact_text`] for text that may
//! quote a URL (a configuration file's parse error).

pub mod clock;
pub mod persist;
pub mod reach;
pub mod worker;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use vigil_api_kvs::cameras::{CameraError, CameraFuture, CameraService, PutCameraInput};

use crate::client::Client;

/// How RTP reaches the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RtpTransport {
    /// Interleaved in the RTSP TCP connection (works through NAT and firewalls).
    #[default]
    Tcp,
    /// RTP/RTCP over UDP (retina's support is experimental: no reordering; LAN only).
    Udp,
}

fn yes() -> bool {
    true
}

fn default_retention() -> u64 {
    24
}

/// One camera: a `[[camera]]` table.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// A name of 1 to 64 letters, digits, `_`, `.` and `-`.
    pub name: String,
    /// `rtsp://[user:password@]host[:port]/path`.
    pub url: String,
    /// The stream it records into (default: its name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// `tcp` (default) or `udp`.
    #[serde(default)]
    pub transport: RtpTransport,
    /// Create the stream if it does not exist (default true).
    #[serde(default = "yes")]
    pub create_stream: bool,
    /// The retention of a stream it creates, hours (default 24).
    #[serde(default = "default_retention")]
    pub retention_hours: u64,
}

impl std::fmt::Debug for CameraConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CameraConfig")
            .field("name", &self.name)
            .field("url", &redact(&self.url))
            .field("stream", &self.stream)
            .field("transport", &self.transport)
            .field("create_stream", &self.create_stream)
            .field("retention_hours", &self.retention_hours)
            .finish()
    }
}

impl CameraConfig {
    /// The stream it records into.
    pub fn stream_name(&self) -> &str {
        self.stream.as_deref().unwrap_or(&self.name)
    }

    /// Checks the name, URL and stream name.
    pub fn validate(&self) -> anyhow::Result<()> {
        let name_ok = |s: &str, max: usize| {
            !s.is_empty()
                && s.len() <= max
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        };
        if !name_ok(&self.name, 64) {
            bail!(
                "camera name {:?} must be 1 to 64 letters, digits, '_', '.' or '-'",
                self.name
            );
        }
        if !name_ok(self.stream_name(), 256) {
            bail!(
                "camera {}: stream name {:?} must be 1 to 256 letters, digits, '_', '.' or '-'",
                self.name,
                self.stream_name()
            );
        }
        let url = url::Url::parse(&self.url).map_err(|e| {
            anyhow::anyhow!("camera {}: bad url {}: {e}", self.name, redact(&self.url))
        })?;
        if url.scheme() != "rtsp" || url.host_str().is_none_or(str::is_empty) {
            bail!(
                "camera {}: url {} must be rtsp://[user:password@]host[:port]/path",
                self.name,
                redact(&self.url)
            );
        }
        if self.retention_hours == 0 && self.create_stream {
            // A stream without retention stores nothing; KVS allows it, a recorder should not.
            bail!(
                "camera {}: retention_hours must be at least 1 for a stream it creates",
                self.name
            );
        }
        Ok(())
    }
}

/// Query parameters that hold credentials in some cameras' URLs (`?user=admin&pwd=...`),
/// compared without case.
const SECRET_PARAMS: [&str; 10] = [
    "password",
    "passwd",
    "pass",
    "pwd",
    "psw",
    "secret",
    "token",
    "auth",
    "key",
    "signature",
];

/// A URL with its password, and the values of credential-like query parameters
/// ([`SECRET_PARAMS`]), replaced by `***`, for logs and status.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            let secret = |k: &str| SECRET_PARAMS.iter().any(|s| k.eq_ignore_ascii_case(s));
            if u.query_pairs().any(|(k, _)| secret(&k)) {
                let pairs: Vec<(String, String)> = u
                    .query_pairs()
                    .map(|(k, v)| {
                        let v = if secret(&k) {
                            "***".into()
                        } else {
                            v.into_owned()
                        };
                        (k.into_owned(), v)
                    })
                    .collect();
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            u.to_string()
        }
        // Unparseable: keep only what follows the last `@` (a password may hold an `@` or a
        // `?`), and no query.
        Err(_) => {
            let (masked, rest) = match url.rsplit_once('@') {
                Some((_, rest)) => ("***@", rest),
                None => ("", url),
            };
            let rest = rest.split_once('?').map_or(rest, |(before, _)| before);
            format!("{masked}{rest}")
        }
    }
}

/// `text` with the password of every URL in it (`scheme://user:password@host`) replaced by
/// `***`: for messages that may quote a camera URL, such as a configuration file's parse
/// error, which shows the offending line.
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        // Up to a quote, a space or the end of the line, and not only to the path: a
        // password written unencoded may hold a `/`, `?`, `#` or `@`, so everything up to the
        // last `@` goes (a `@` in a path hides more than needed, never less).
        let end = tail
            .find(|c: char| matches!(c, '"' | '\'' | '`') || c.is_whitespace())
            .unwrap_or(tail.len());
        let (url, after) = tail.split_at(end);
        match url.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _)) => {
                    let _ = write!(out, "{user}:***@{host}");
                }
                None => out.push_str(url),
            },
            None => out.push_str(url),
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// What a camera's task is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Connecting,
    Streaming,
    Backoff,
    Stopped,
}

impl State {
    const ALL: [State; 4] = [
        State::Connecting,
        State::Streaming,
        State::Backoff,
        State::Stopped,
    ];

    fn as_str(self) -> &'static str {
        match self {
            State::Connecting => "connecting",
            State::Streaming => "streaming",
            State::Backoff => "backoff",
            State::Stopped => "stopped",
        }
    }
}

/// A camera's status, as `vigil camera list --json` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CameraStatus {
    pub state: State,
    /// The latest error, and when (ms since the epoch).
    pub last_error: Option<String>,
    pub last_error_ms: Option<i64>,
    /// When the back-off ends (ms since the epoch), in state `backoff`.
    pub retry_at_ms: Option<i64>,
    /// RTSP sessions started (PLAY answered).
    pub sessions: u64,
    /// Connection attempts that failed, and sessions that ended with an error.
    pub errors: u64,
    pub frames: u64,
    /// Fragments acknowledged as stored.
    pub fragments: u64,
    /// The latest frame's time as recorded (ms since the epoch).
    pub last_frame_ms: Option<i64>,
    /// Codecs of the current session (`video/h264`, `audio/aac`).
    pub codecs: Vec<String>,
    /// Server clock minus the recorded time at the latest clock update, ms.
    pub clock_error_ms: Option<f64>,
    /// The camera clock's measured rate against the server's (media s per wall s; 1.05: its
    /// clock runs 5 % fast).
    pub camera_clock_rate: Option<f64>,
}

impl Default for CameraStatus {
    fn default() -> Self {
        CameraStatus {
            state: State::Connecting,
            last_error: None,
            last_error_ms: None,
            retry_at_ms: None,
            sessions: 0,
            errors: 0,
            frames: 0,
            fragments: 0,
            last_frame_ms: None,
            codecs: Vec::new(),
            clock_error_ms: None,
            camera_clock_rate: None,
        }
    }
}

/// A camera's status, shared by its task and the readers.
#[derive(Debug, Default)]
pub struct SharedStatus(Mutex<CameraStatus>);

impl SharedStatus {
    /// Locks the status for an update or a read.
    pub fn lock(&self) -> MutexGuard<'_, CameraStatus> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A camera in [`Manager::list`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CameraInfo {
    pub name: String,
    /// The URL with its password hidden.
    pub url: String,
    pub stream: String,
    pub transport: RtpTransport,
    /// Where it was declared: `config` (the configuration file) or `api` (`PutCamera`).
    pub source: &'static str,
    pub status: CameraStatus,
}

struct Running {
    config: CameraConfig,
    source: &'static str,
    status: Arc<SharedStatus>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The cameras of a server and their tasks.
#[derive(Clone)]
pub struct Manager {
    client: Client,
    cameras: Arc<Mutex<BTreeMap<String, Running>>>,
    /// Where cameras added through the API are kept (sealed).
    file: persist::CameraFile,
    /// Serialises the API's changes (stop, start, save).
    changes: Arc<tokio::sync::Mutex<()>>,
    /// Where cameras may be ([`reach`]).
    networks: Arc<reach::Networks>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("cameras", &self.lock().keys().collect::<Vec<_>>())
            .finish()
    }
}

/// How long stopping waits for a camera to send its last fragment.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

impl Manager {
    /// A manager whose cameras upload with `client` (in-process, root credentials), keeping
    /// the cameras added through the API in `data_dir`, sealed under `store`'s default master
    /// key.
    pub fn new(
        client: Client,
        data_dir: &std::path::Path,
        store: vigil_store::Store,
        networks: reach::Networks,
    ) -> Manager {
        Manager {
            client,
            cameras: Arc::default(),
            file: persist::CameraFile::new(data_dir, store),
            changes: Arc::default(),
            networks: Arc::new(networks),
        }
    }

    /// The cameras added through the API before the last stop, read from `cameras.json`
    /// before any camera starts. A file in the clear (from an earlier version) or sealed under
    /// a master key that is no longer the default is rewritten sealed under the default one
    /// at once; a file that cannot be read back is an error that names it and what to do
    /// ([`persist`]), and the server does not start.
    pub fn load_persisted(&self) -> anyhow::Result<Vec<CameraConfig>> {
        let loaded = self.file.load()?;
        if let Some(why) = loaded.rewrite {
            self.file.save(&loaded.cameras)?;
            tracing::info!(
                file = %self.file.path().display(),
                cameras = loaded.cameras.len(),
                "camera list rewritten, sealed under the default master key: {why}"
            );
        }
        Ok(loaded.cameras)
    }

    /// Starts the cameras of [`Manager::load_persisted`]. One that clashes with a camera of
    /// the configuration file (same name or stream) is not started: logged.
    pub fn start_persisted(&self, cameras: Vec<CameraConfig>) {
        for c in cameras {
            let name = c.name.clone();
            if let Err(e) = self.start(c, "api") {
                tracing::warn!(camera = name, "camera from cameras.json not started: {e:#}");
            }
        }
    }

    /// Adds a camera through the API, or replaces one added that way; then saves the list.
    pub async fn put_api(&self, config: CameraConfig) -> Result<(), CameraError> {
        let _changing = self.changes.lock().await;
        config
            .validate()
            .map_err(|e| CameraError::Invalid(format!("{e:#}")))?;
        self.networks
            .check_url(&config.url)
            .await
            .map_err(|e| CameraError::Invalid(format!("camera {}: {e}", config.name)))?;
        let existing = self.lock().get(&config.name).map(|r| r.source);
        match existing {
            Some("config") => {
                return Err(CameraError::InUse(format!(
                    "camera {} is declared in the configuration file; change it there",
                    config.name
                )));
            }
            Some(_) => {
                let old = self.lock().remove(&config.name);
                if let Some(old) = old {
                    finish(old).await;
                }
            }
            None => {}
        }
        self.start(config, "api")
            .map_err(|e| CameraError::InUse(format!("{e:#}")))?;
        self.save()
    }

    /// Removes a camera added through the API; then saves the list.
    pub async fn delete_api(&self, name: &str) -> Result<(), CameraError> {
        let _changing = self.changes.lock().await;
        let source = self.lock().get(name).map(|r| r.source);
        match source {
            None => Err(CameraError::NotFound(format!(
                "There is no camera named {name}."
            ))),
            Some("config") => Err(CameraError::InUse(format!(
                "camera {name} is declared in the configuration file; remove it there"
            ))),
            Some(_) => {
                let old = self.lock().remove(name);
                if let Some(old) = old {
                    finish(old).await;
                }
                self.save()
            }
        }
    }

    fn save(&self) -> Result<(), CameraError> {
        let api: Vec<CameraConfig> = self
            .lock()
            .values()
            .filter(|r| r.source == "api")
            .map(|r| r.config.clone())
            .collect();
        self.file
            .save(&api)
            .map_err(|e| CameraError::Internal(format!("{e:#}")))
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Running>> {
        self.cameras.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a camera's task. A camera of that name must not exist, nor one recording into
    /// the same stream.
    pub fn start(&self, config: CameraConfig, source: &'static str) -> anyhow::Result<()> {
        config.validate()?;
        let mut cameras = self.lock();
        if cameras.contains_key(&config.name) {
            bail!("a camera named {} exists already", config.name);
        }
        if let Some(other) = cameras
            .values()
            .find(|r| r.config.stream_name() == config.stream_name())
        {
            bail!(
                "cameras {} and {} would both record into stream {}",
                other.config.name,
                config.name,
                config.stream_name()
            );
        }
        let status = Arc::new(SharedStatus::default());
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(worker::run(
            config.clone(),
            self.client.clone(),
            status.clone(),
            stopped,
            // The operator's own cameras are not checked (`reach`).
            (source != "config").then(|| self.networks.clone()),
        ));
        tracing::info!(
            camera = config.name,
            url = redact(&config.url),
            stream = config.stream_name(),
            "camera started"
        );
        cameras.insert(
            config.name.clone(),
            Running {
                config,
                source,
                status,
                stop,
                task,
            },
        );
        Ok(())
    }

    /// Stops every camera.
    pub async fn stop_all(&self) {
        let all: Vec<Running> = std::mem::take(&mut *self.lock()).into_values().collect();
        futures_util::future::join_all(all.into_iter().map(finish)).await;
    }

    /// Every camera and its status, by name.
    pub fn list(&self) -> Vec<CameraInfo> {
        list_of(&self.lock())
    }

    /// A collector of the `vigil_camera_*` families for `/metrics`; it holds the cameras
    /// weakly, and renders nothing once the manager is gone.
    pub fn metrics_collector(&self) -> vigil_api_common::metrics::Collector {
        let cameras = Arc::downgrade(&self.cameras);
        Arc::new(move |out: &mut String| {
            if let Some(cameras) = cameras.upgrade() {
                let list = list_of(&cameras.lock().unwrap_or_else(|e| e.into_inner()));
                render_metrics(&list, out);
            }
        })
    }
}

fn list_of(cameras: &BTreeMap<String, Running>) -> Vec<CameraInfo> {
    cameras
        .values()
        .map(|r| CameraInfo {
            name: r.config.name.clone(),
            url: redact(&r.config.url),
            stream: r.config.stream_name().to_owned(),
            transport: r.config.transport,
            source: r.source,
            status: r.status.lock().clone(),
        })
        .collect()
}

/// The `vigil_camera_*` families in the Prometheus text format.
fn render_metrics(cams: &[CameraInfo], out: &mut String) {
    {
        if cams.is_empty() {
            return;
        }
        let mut family =
            |name: &str, kind: &str, help: &str, f: &dyn Fn(&CameraInfo, &mut String)| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                for c in cams {
                    f(c, out);
                }
            };
        family(
            "vigil_camera_state",
            "gauge",
            "1 for the state each camera is in.",
            &|c, out| {
                for s in State::ALL {
                    let v = u8::from(c.status.state == s);
                    let _ = writeln!(
                        out,
                        "vigil_camera_state{{camera=\"{}\",state=\"{}\"}} {v}",
                        c.name,
                        s.as_str()
                    );
                }
            },
        );
        let counters: [CounterFamily; 4] = [
            (
                "vigil_camera_sessions_total",
                "RTSP sessions started.",
                |s| s.sessions,
            ),
            (
                "vigil_camera_errors_total",
                "Failed connections and sessions ended by an error.",
                |s| s.errors,
            ),
            ("vigil_camera_frames_total", "Frames received.", |s| {
                s.frames
            }),
            (
                "vigil_camera_fragments_total",
                "Fragments acknowledged as stored.",
                |s| s.fragments,
            ),
        ];
        for (name, help, get) in counters {
            family(name, "counter", help, &|c, out| {
                let _ = writeln!(out, "{name}{{camera=\"{}\"}} {}", c.name, get(&c.status));
            });
        }
        let gauges: [GaugeFamily; 3] = [
            (
                "vigil_camera_last_frame_timestamp_seconds",
                "Recorded time of the latest frame.",
                |s| s.last_frame_ms.map(|ms| ms as f64 / 1e3),
            ),
            (
                "vigil_camera_clock_error_seconds",
                "Server clock minus recorded time at the latest clock update.",
                |s| s.clock_error_ms.map(|ms| ms / 1e3),
            ),
            (
                "vigil_camera_clock_rate",
                "The camera clock's measured rate against the server's.",
                |s| s.camera_clock_rate,
            ),
        ];
        for (name, help, get) in gauges {
            family(name, "gauge", help, &|c, out| {
                if let Some(v) = get(&c.status) {
                    let _ = writeln!(out, "{name}{{camera=\"{}\"}} {v}", c.name);
                }
            });
        }
    }
}

impl CameraService for Manager {
    fn list(&self) -> Vec<(String, serde_json::Value)> {
        Manager::list(self)
            .into_iter()
            .map(|c| {
                let stream = c.stream.clone();
                (stream, serde_json::to_value(c).unwrap_or_default())
            })
            .collect()
    }

    fn stream_of(&self, name: &str) -> Option<String> {
        self.lock()
            .get(name)
            .map(|r| r.config.stream_name().to_owned())
    }

    fn put(&self, input: PutCameraInput) -> CameraFuture<()> {
        let m = self.clone();
        Box::pin(async move {
            let transport = match input.transport.as_deref() {
                None | Some("tcp") => RtpTransport::Tcp,
                Some("udp") => RtpTransport::Udp,
                Some(other) => {
                    return Err(CameraError::Invalid(format!(
                        "Transport {other:?} is not tcp or udp."
                    )));
                }
            };
            m.put_api(CameraConfig {
                name: input.name,
                url: input.url,
                stream: input.stream,
                transport,
                create_stream: input.create_stream.unwrap_or(true),
                retention_hours: input.retention_in_hours.unwrap_or_else(default_retention),
            })
            .await
        })
    }

    fn delete(&self, name: String) -> CameraFuture<()> {
        let m = self.clone();
        Box::pin(async move { m.delete_api(&name).await })
    }
}

/// A counter family: name, help, and its value in a status.
type CounterFamily = (&'static str, &'static str, fn(&CameraStatus) -> u64);
/// A gauge family: name, help, and its value in a status, if known.
type GaugeFamily = (&'static str, &'static str, fn(&CameraStatus) -> Option<f64>);

async fn finish(running: Running) {
    let _ = running.stop.send(true);
    let mut task = running.task;
    if tokio::time::timeout(STOP_TIMEOUT, &mut task).await.is_err() {
        task.abort();
    }
    tracing::info!(camera = running.config.name, "camera stopped");
}

/// Starts the cameras of the configuration file.
pub fn start_configured(manager: &Manager, cameras: Vec<CameraConfig>) -> anyhow::Result<()> {
    for c in cameras {
        let name = c.name.clone();
        manager
            .start(c, "config")
            .with_context(|| format!("[[camera]] {name} in the configuration file"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn cam(name: &str, url: &str) -> CameraConfig {
        toml::from_str(&format!("name = \"{name}\"\nurl = \"{url}\"")).unwrap()
    }

    #[test]
    fn defaults_and_validation() {
        let c = cam("door", "rtsp://admin:hunter2@10.0.0.5:554/s1");
        assert_eq!(c.stream_name(), "door");
        assert_eq!(c.transport, RtpTransport::Tcp);
        assert!(c.create_stream);
        assert_eq!(c.retention_hours, 24);
        c.validate().unwrap();
        assert!(cam("bad name", "rtsp://h/").validate().is_err());
        assert!(cam("x", "http://h/").validate().is_err());
        assert!(cam("x", "not a url").validate().is_err());
        assert!(
            toml::from_str::<CameraConfig>("name = \"x\"\nurl = \"rtsp://h/\"\nport = 1").is_err()
        );
    }

    #[test]
    fn passwords_are_never_shown() {
        let c = cam("door", "rtsp://admin:hunter2@10.0.0.5:554/s1");
        assert_eq!(redact(&c.url), "rtsp://admin:***@10.0.0.5:554/s1");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(redact("rtsp://h/x"), "rtsp://h/x");
        assert!(!redact("::garbage:pw@host").contains("pw"));
        let e = cam("x", "rtsp://u:hunter2@/").validate().unwrap_err();
        assert!(!format!("{e:#}").contains("hunter2"), "{e:#}");
        // An unencoded `@` in the password, unparseable URLs, query credentials.
        assert_eq!(
            redact("rtsp://admin:hun@ter2@10.0.0.5/s1"),
            "rtsp://admin:***@10.0.0.5/s1"
        );
        assert_eq!(redact("rtsp://u:hun@ter2@[bad/x"), "***@[bad/x");
        assert_eq!(redact("rtsp://u:p@[bad/x?pwd=hunter2"), "***@[bad/x");
        assert_eq!(redact("rtsp://u:hun?ter2@[bad/x"), "***@[bad/x");
        assert_eq!(redact("rtsp://[bad/x?pwd=hunter2"), "rtsp://[bad/x");
        assert_eq!(
            redact("rtsp://10.0.0.5/live?user=admin&PWD=hunter2&channel=1"),
            "rtsp://10.0.0.5/live?user=admin&PWD=***&channel=1"
        );
        assert_eq!(
            redact("rtsp://10.0.0.5/live?channel=1&subtype=0"),
            "rtsp://10.0.0.5/live?channel=1&subtype=0"
        );
        let c = cam("door", "rtsp://10.0.0.5/live?password=hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
        let info = CameraInfo {
            name: c.name.clone(),
            url: redact(&c.url),
            stream: c.stream_name().to_owned(),
            transport: c.transport,
            source: "api",
            status: CameraStatus::default(),
        };
        assert!(!serde_json::to_string(&info).unwrap().contains("hunter2"));
    }

    #[test]
    fn passwords_are_cut_out_of_text() {
        let toml_error = "TOML parse error at line 3, column 7\n  |\n3 | camera = [{name = \"x\", \
                          url = \"rtsp://admin:hun@t/er2@10.0.0.5:554/s1\", port = 1}]\n";
        let shown = redact_text(toml_error);
        assert!(!shown.contains("hun") && !shown.contains("er2"), "{shown}");
        assert!(
            shown.contains("url = \"rtsp://admin:***@10.0.0.5:554/s1\""),
            "{shown}"
        );
        assert_eq!(
            redact_text("a rtsp://h/x and http://u:p@h, rtsps://u@h"),
            "a rtsp://h/x and http://u:***@h, rtsps://u@h"
        );
        assert_eq!(redact_text("no url"), "no url");
        assert_eq!(redact_text("rtsp://"), "rtsp://");
    }
}
