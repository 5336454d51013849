//! The configuration file of `vigil serve` (TOML), and how it combines with flags and
//! environment variables: a flag wins over its environment variable, which wins over the
//! file, which wins over the built-in default. `docs/configuration.md` documents every key.
//!
//! ```toml
//! listen = "0.0.0.0:4567"
//! data_dir = "/var/lib/vigil"
//! region = "eu-west-1"
//! strict_region = false
//! public_url = "https://vigil.home.arpa:4567"
//! account_id = "123456789012"
//! log_format = "json"
//! allow_anonymous = false
//! master_key_id = "vigil/master"
//! shutdown_timeout = 30
//! min_free_bytes = "10GiB"   # or a number of bytes
//! max_connections = 10000
//! max_connections_per_address = 2500
//! max_putmedia_sessions = 2000
//! max_putmedia_sessions_per_key = 1000   # keep it below max_putmedia_sessions
//! putmedia_min_bytes_per_minute = 1024   # 0 turns the minimum-progress rule off
//! camera_networks = ["192.168.1.0/24"]   # default: the private and local ranges
//!
//! [tls]
//! cert = "/etc/vigil/cert.pem"
//! key = "/etc/vigil/key.pem"
//! # self_signed = true
//! # names = ["nvr.home.arpa", "192.168.1.10"]
//!
//! [playback]
//! low_latency_hls = true
//! hls_part_target_ms = 333
//!
//! [console]
//! enabled = true
//! session_hours = 12
//!
//! [faces]
//! backend = "onnxruntime"   # or "tract" (the default)
//! onnxruntime_library = "/var/lib/vigil/onnxruntime/libonnxruntime.so.1.23.2"
//!
//! [analysis]
//! fps = 5                   # frames a stream processor analyses per second of video
//! max_lag_ms = 1000         # further behind live than this, a processor skips ahead
//! max_processors = 20
//!
//! [sns]
//! smtp_url = "smtp://relay.home.arpa:587?tls=required"   # email subscriptions' relay
//! smtp_from = "vigil@home.arpa"
//!
//! [[camera]]
//! name = "front-door"
//! url = "rtsp://viewer:secret@192.168.1.20:554/stream1"
//! # stream = "front-door"; transport = "tcp"; create_stream = true; retention_hours = 24
//! ```

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::ArgMatches;
use clap::parser::ValueSource;
use serde::Deserialize;

/// The file's contents. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--region`.
    pub region: Option<String>,
    /// `--strict-region`.
    pub strict_region: Option<bool>,
    /// `--public-url`.
    pub public_url: Option<String>,
    /// `--account-id`.
    pub account_id: Option<String>,
    /// `--log-format` (`text` or `json`).
    pub log_format: Option<String>,
    /// `--allow-anonymous`.
    pub allow_anonymous: Option<bool>,
    /// `--master-key-id`.
    pub master_key_id: Option<String>,
    /// `--shutdown-timeout`, in seconds.
    pub shutdown_timeout: Option<u64>,
    /// `--min-free-bytes`: a number of bytes or a string with a unit ("10GiB").
    pub min_free_bytes: Option<SizeValue>,
    /// TLS.
    #[serde(default)]
    pub tls: TlsFileConfig,
    /// Playback.
    #[serde(default)]
    pub playback: PlaybackFileConfig,
    /// The web console.
    #[serde(default)]
    pub console: ConsoleFileConfig,
    /// The face engine.
    #[serde(default)]
    pub faces: FacesFileConfig,
    /// Stream processors.
    #[serde(default)]
    pub analysis: AnalysisFileConfig,
    /// SNS: the SMTP relay of email subscriptions.
    #[serde(default)]
    pub sns: SnsFileConfig,
    /// `--max-connections`.
    pub max_connections: Option<usize>,
    /// `--max-connections-per-address`.
    pub max_connections_per_address: Option<usize>,
    /// `--max-putmedia-sessions`.
    pub max_putmedia_sessions: Option<usize>,
    /// `--max-putmedia-sessions-per-key`.
    pub max_putmedia_sessions_per_key: Option<usize>,
    /// `--putmedia-min-bytes-per-minute` (0: no minimum).
    pub putmedia_min_bytes_per_minute: Option<u64>,
    /// `--camera-networks`.
    pub camera_networks: Option<Vec<String>>,
    /// Cameras the server records (`[[camera]]` tables; docs/cameras.md).
    #[serde(default, rename = "camera")]
    pub cameras: Vec<crate::camera::CameraConfig>,
}

/// A size in the file: a number of bytes, or a string with a unit ("512MiB").
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SizeValue {
    /// Bytes.
    Bytes(u64),
    /// With a unit, parsed by [`crate::storage::parse_size`].
    Text(String),
}

impl SizeValue {
    /// As the flag's text.
    pub fn as_text(&self) -> String {
        match self {
            Self::Bytes(n) => n.to_string(),
            Self::Text(t) => t.clone(),
        }
    }
}

/// The `[playback]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaybackFileConfig {
    /// `--low-latency-hls`.
    pub low_latency_hls: Option<bool>,
    /// `--hls-part-target-ms`.
    pub hls_part_target_ms: Option<u32>,
}

/// The `[console]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleFileConfig {
    /// `--no-console` (inverted).
    pub enabled: Option<bool>,
    /// `--console-session-hours`.
    pub session_hours: Option<u32>,
}

/// The `[faces]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FacesFileConfig {
    /// `--faces-backend` (`tract` or `onnxruntime`).
    pub backend: Option<String>,
    /// `--onnxruntime-library`.
    pub onnxruntime_library: Option<PathBuf>,
}

/// The `[sns]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnsFileConfig {
    /// `--smtp-url`.
    pub smtp_url: Option<String>,
    /// `--smtp-from`.
    pub smtp_from: Option<String>,
}

/// The `[analysis]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisFileConfig {
    /// `--analysis-fps`.
    pub fps: Option<u32>,
    /// `--analysis-max-lag-ms`.
    pub max_lag_ms: Option<u64>,
    /// `--max-stream-processors`.
    pub max_processors: Option<usize>,
}

/// The `[tls]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFileConfig {
    /// `--tls-cert`.
    pub cert: Option<PathBuf>,
    /// `--tls-key`.
    pub key: Option<PathBuf>,
    /// `--tls-self-signed`.
    pub self_signed: Option<bool>,
    /// `--tls-name` (repeatable).
    pub names: Option<Vec<String>>,
}

impl FileConfig {
    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the configuration file {}", path.display()))?;
        // A parse error quotes the offending line, which may be a camera URL's.
        toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}", crate::camera::redact_text(&e.to_string())))
            .with_context(|| format!("in the configuration file {}", path.display()))
    }
}

/// Whether an argument was left at its built-in default (neither flag nor environment).
pub fn defaulted(m: &ArgMatches, id: &str) -> bool {
    matches!(m.value_source(id), None | Some(ValueSource::DefaultValue))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_key_and_rejects_unknown_ones() {
        let c: FileConfig = toml::from_str(
            r#"
            listen = "0.0.0.0:4567"
            data_dir = "/var/lib/vigil"
            region = "eu-west-1"
            public_url = "https://nvr:4567"
            account_id = "123456789012"
            log_format = "json"
            allow_anonymous = false
            master_key_id = "k"
            max_putmedia_sessions = 100
            max_putmedia_sessions_per_key = 10
            putmedia_min_bytes_per_minute = 0
            min_free_bytes = "2GiB"
            [tls]
            self_signed = true
            names = ["nvr.home.arpa"]
            [playback]
            low_latency_hls = true
            hls_part_target_ms = 400
            [faces]
            backend = "onnxruntime"
            onnxruntime_library = "/opt/ort/libonnxruntime.so"
            [[camera]]
            name = "door"
            url = "rtsp://u:p@10.0.0.5/s1"
            transport = "udp"
            [[camera]]
            name = "yard"
            url = "rtsp://10.0.0.6/s1"
            stream = "garden"
            "#,
        )
        .unwrap_or_default();
        assert_eq!(c.region.as_deref(), Some("eu-west-1"));
        assert_eq!(c.max_putmedia_sessions, Some(100));
        assert_eq!(c.max_putmedia_sessions_per_key, Some(10));
        assert_eq!(c.putmedia_min_bytes_per_minute, Some(0));
        assert_eq!(
            c.min_free_bytes.map(|v| v.as_text()).as_deref(),
            Some("2GiB")
        );
        assert_eq!(c.tls.self_signed, Some(true));
        assert_eq!(
            c.tls.names.as_deref(),
            Some(&["nvr.home.arpa".to_owned()][..])
        );
        assert_eq!(c.playback.low_latency_hls, Some(true));
        assert_eq!(c.playback.hls_part_target_ms, Some(400));
        assert_eq!(c.faces.backend.as_deref(), Some("onnxruntime"));
        assert_eq!(
            c.faces.onnxruntime_library.as_deref(),
            Some(Path::new("/opt/ort/libonnxruntime.so"))
        );
        assert_eq!(c.cameras.len(), 2);
        assert_eq!(c.cameras.get(1).map(|c| c.stream_name()), Some("garden"));
        assert!(toml::from_str::<FileConfig>("regoin = \"x\"").is_err());
        assert!(toml::from_str::<FileConfig>("[playback]\nlow_latency = true").is_err());
    }

    #[test]
    fn parse_errors_show_no_camera_password() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("vigil.toml");
        let text = "camera = [{ name = \"x\", url = \"rtsp://u:hunter2@10.0.0.5/s\", port = 1 }]\n";
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        let e = format!(
            "{:#}",
            FileConfig::load(&path).err().unwrap_or_else(|| panic!())
        );
        assert!(
            e.contains("port") && e.contains("rtsp://u:***@10.0.0.5/s"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
    }
}
