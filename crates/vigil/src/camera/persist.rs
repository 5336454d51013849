//! Cameras added through the API, kept in `DATA_DIR/cameras.json` across restarts.
//!
//! The file is versioned (`{"version": 1, "cameras": [...]}`, each camera as a `[[camera]]`
//! table would hold it) and replaced atomically: written to a temporary file created with mode
//! 0600 (camera URLs hold passwords), flushed to disk, renamed over the old one, and the
//! directory flushed, so a crash leaves the old list or the new one, never a mix. Writers are
//! serialised by the [`super::Manager`].

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::CameraConfig;

/// The file's name in the data directory.
pub const FILE_NAME: &str = "cameras.json";
/// The format version this code writes and reads.
pub const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    cameras: Vec<CameraConfig>,
}

/// The file of the cameras added through the API.
#[derive(Debug, Clone)]
pub struct CameraFile {
    path: PathBuf,
}

impl CameraFile {
    /// The file in `data_dir`.
    pub fn new(data_dir: &Path) -> CameraFile {
        CameraFile {
            path: data_dir.join(FILE_NAME),
        }
    }

    /// The cameras kept; none when there is no file.
    pub fn load(&self) -> anyhow::Result<Vec<CameraConfig>> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.path.display())),
        };
        let file: File = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a camera list", self.path.display()))?;
        if file.version != VERSION {
            bail!(
                "{} has format version {}; this vigil reads version {VERSION}",
                self.path.display(),
                file.version
            );
        }
        Ok(file.cameras)
    }

    /// Replaces the file's cameras with `cameras`, atomically.
    pub fn save(&self, cameras: &[CameraConfig]) -> anyhow::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let tmp = dir.join(format!(".{FILE_NAME}.tmp"));
        let body = serde_json::to_vec_pretty(&File {
            version: VERSION,
            cameras: cameras.to_vec(),
        })
        .context("encoding the camera list")?;
        let write = || -> std::io::Result<()> {
            let _ = std::fs::remove_file(&tmp);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            std::fs::File::open(dir)?.sync_all()
        };
        write().with_context(|| format!("writing {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn round_trip_private_and_versioned() {
        let dir = tempfile::tempdir().unwrap();
        let file = CameraFile::new(dir.path());
        assert!(file.load().unwrap().is_empty());
        let cam: CameraConfig =
            toml::from_str("name = \"door\"\nurl = \"rtsp://u:p@h/s\"\ntransport = \"udp\"")
                .unwrap();
        file.save(std::slice::from_ref(&cam)).unwrap();
        assert_eq!(file.load().unwrap(), vec![cam]);
        let path = dir.path().join(FILE_NAME);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        file.save(&[]).unwrap();
        assert!(file.load().unwrap().is_empty());
        std::fs::write(&path, r#"{"version": 2, "cameras": []}"#).unwrap();
        assert!(file.load().unwrap_err().to_string().contains("version 2"));
    }
}
