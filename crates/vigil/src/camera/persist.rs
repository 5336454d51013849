//! Cameras added through the API, kept in `DATA_DIR/cameras.json` across restarts, sealed
//! under the store's default master key (their URLs hold the cameras' passwords).
//!
//! Format version 2, what this code writes (docs/cameras.md, "Camera credentials at rest"):
//!
//! ```json
//! {
//!   "version": 2,
//!   "encryption": "AES-256-GCM",
//!   "master_key": "alias/aws/kinesisvideo",
//!   "wrapped_key": "<base64: the file's key, wrapped under the master key>",
//!   "nonce": "<base64: 12 bytes>",
//!   "sealed": "<base64: {\"cameras\": [...]} encrypted, then the 16-byte tag>"
//! }
//! ```
//!
//! The whole camera list (each camera as a `[[camera]]` table would hold it) is sealed with
//! [`vigil_store::Store::seal_document`]: a fresh file key and a fresh random nonce at every
//! save, the file's identity and format version ([`SEALED_NAME`]) and the master key's id as
//! associated data. Only the format version and the master key's id are readable without the
//! key.
//!
//! Version 1 (earlier versions of Vigil) held the list in the clear (`{"version": 1,
//! "cameras": [...]}`); such a file is read once at startup and rewritten sealed
//! ([`Loaded::rewrite`]), and so is one sealed under a master key that is no longer the
//! default. A file that cannot be read back (not a camera list, a version this code does not
//! know, a master key that is not configured, or a seal that fails authentication) is a
//! [`vigil_store::StoreError::DataDir`] naming the file and what to do: the server does not
//! start rather than drop the cameras it holds.
//!
//! The file is replaced atomically: written to a temporary file created with mode 0600,
//! flushed to disk, renamed over the old one, and the directory flushed, so a crash leaves the
//! old list or the new one, never a mix. Writers are serialised by the [`super::Manager`].

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use vigil_store::{SealedDocument, Store, StoreError};

use super::CameraConfig;

/// The file's name in the data directory.
pub const FILE_NAME: &str = "cameras.json";
/// The format version this code writes: the camera list sealed.
pub const VERSION: u32 = 2;
/// The format version of earlier versions of Vigil: the camera list in the clear.
pub const PLAIN_VERSION: u32 = 1;
/// The name the camera list is sealed under (bound as associated data): the file's identity
/// and format version, so that no other sealed document opens as this file.
pub const SEALED_NAME: &str = "vigil cameras.json v2";
/// What the file says it is encrypted with.
const ENCRYPTION: &str = "AES-256-GCM";
/// Where to read about it.
const DOCS: &str = "docs/cameras.md, \"Camera credentials at rest\"";

/// Version 1: the list in the clear.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainFile {
    #[allow(dead_code)]
    version: u32,
    cameras: Vec<CameraConfig>,
}

/// Version 2: the list sealed.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SealedFile {
    version: u32,
    encryption: String,
    master_key: String,
    wrapped_key: String,
    nonce: String,
    sealed: String,
}

/// What version 2 seals.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Contents {
    cameras: Vec<CameraConfig>,
}

/// Any version: its version, first.
#[derive(Deserialize)]
struct Probe {
    version: Option<u32>,
}

/// The cameras read from the file.
#[derive(Debug)]
pub struct Loaded {
    pub cameras: Vec<CameraConfig>,
    /// Why the file must be written again (sealed under the default master key) at once:
    /// it is in the clear (version 1), or sealed under another master key.
    pub rewrite: Option<String>,
}

/// The file of the cameras added through the API.
#[derive(Debug, Clone)]
pub struct CameraFile {
    path: PathBuf,
    /// Whose master key seals it.
    store: Store,
}

impl CameraFile {
    /// The file in `data_dir`, sealed under `store`'s default master key.
    pub fn new(data_dir: &Path, store: Store) -> CameraFile {
        CameraFile {
            path: data_dir.join(FILE_NAME),
            store,
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The refusal of a file that cannot be read back.
    fn refused(&self, problem: String, remedy: String) -> anyhow::Error {
        StoreError::DataDir {
            file: self.path.display().to_string(),
            problem,
            remedy,
        }
        .into()
    }

    /// The remedy for a damaged file, after `why`.
    fn restore_or_delete(&self, why: &str) -> String {
        format!(
            "{why}Vigil does not start without the cameras it holds. Restore {FILE_NAME} from \
             your backup of the data directory or, to give up the cameras added through the \
             API, delete {} and add them again with `vigil camera add` (see {DOCS})",
            self.path.display()
        )
    }

    /// A file that parses as no camera list. Only the position is told: serde's messages
    /// can quote the file's strings, and those hold passwords.
    fn not_a_list(&self, e: &serde_json::Error) -> anyhow::Error {
        self.refused(
            format!(
                "is not a camera list (bad JSON or an unexpected field at line {}, column {})",
                e.line(),
                e.column()
            ),
            self.restore_or_delete(""),
        )
    }

    /// The cameras kept (none when there is no file), and whether to write them again.
    pub fn load(&self) -> anyhow::Result<Loaded> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Loaded {
                    cameras: Vec::new(),
                    rewrite: None,
                });
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.path.display())),
        };
        let probe: Probe = serde_json::from_slice(&bytes).map_err(|e| self.not_a_list(&e))?;
        match probe.version {
            Some(PLAIN_VERSION) => {
                let file: PlainFile =
                    serde_json::from_slice(&bytes).map_err(|e| self.not_a_list(&e))?;
                Ok(Loaded {
                    cameras: file.cameras,
                    rewrite: Some(format!(
                        "it holds the cameras in the clear (format version {PLAIN_VERSION}, \
                         from an earlier version of Vigil)"
                    )),
                })
            }
            Some(VERSION) => self.load_sealed(&bytes),
            Some(v) => Err(self.refused(
                format!("has format version {v}; this vigil reads versions {PLAIN_VERSION} and {VERSION}"),
                format!(
                    "It was written by a newer version of Vigil: run that version, or restore \
                     {FILE_NAME} from your backup of the data directory (see {DOCS})"
                ),
            )),
            None => Err(self.refused(
                "is not a camera list (it has no format version)".into(),
                self.restore_or_delete(""),
            )),
        }
    }

    fn load_sealed(&self, bytes: &[u8]) -> anyhow::Result<Loaded> {
        let file: SealedFile = serde_json::from_slice(bytes).map_err(|e| self.not_a_list(&e))?;
        let damaged =
            |what: &str| self.refused(format!("is damaged: {what}"), self.restore_or_delete(""));
        if file.encryption != ENCRYPTION {
            return Err(damaged(&format!(
                "encryption {:?} is not {ENCRYPTION}",
                file.encryption
            )));
        }
        let decode = |field: &str, s: &str| {
            B64.decode(s)
                .map_err(|_| damaged(&format!("its {field} is not base64")))
        };
        let doc = SealedDocument {
            master_key: file.master_key.clone(),
            wrapped_key: decode("wrapped_key", &file.wrapped_key)?,
            nonce: decode("nonce", &file.nonce)?
                .try_into()
                .map_err(|_| damaged("its nonce is not 12 bytes"))?,
            ciphertext: decode("sealed", &file.sealed)?,
        };
        let plain = match self.store.open_document(SEALED_NAME, &doc) {
            Ok(plain) => plain,
            Err(StoreError::KeyNotFound(id)) => {
                return Err(self.refused(
                    format!("is sealed under master key {id:?}, which is not configured"),
                    format!(
                        "Configure that master key again as when the file was written \
                         (VIGIL_MASTER_KEY with VIGIL_MASTER_KEY_ID={id:?}; see \
                         docs/storage.md, \"Encryption at rest\"). {}",
                        self.restore_or_delete("Otherwise: ")
                    ),
                ));
            }
            Err(StoreError::Authentication { .. }) => {
                return Err(self.refused(
                    format!(
                        "fails authentication under master key {:?}: it was changed or \
                         damaged, or the key is not the one it was sealed with",
                        doc.master_key
                    ),
                    self.restore_or_delete(&format!(
                        "If the key file was replaced, restore {} first. ",
                        vigil_store::datadir::KEY_FILE
                    )),
                ));
            }
            Err(e) => {
                return Err(e).with_context(|| format!("opening {}", self.path.display()));
            }
        };
        let contents: Contents = serde_json::from_slice(&plain).map_err(|e| {
            damaged(&format!(
                "its sealed list does not parse (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let default = self.store.default_master_key_id();
        Ok(Loaded {
            cameras: contents.cameras,
            rewrite: (doc.master_key != default).then(|| {
                format!(
                    "it is sealed under master key {:?}, not the default {default:?}",
                    doc.master_key
                )
            }),
        })
    }

    /// Replaces the file's cameras with `cameras`, sealed, atomically.
    pub fn save(&self, cameras: &[CameraConfig]) -> anyhow::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let tmp = dir.join(format!(".{FILE_NAME}.tmp"));
        let plain = serde_json::to_vec(&Contents {
            cameras: cameras.to_vec(),
        })
        .context("encoding the camera list")?;
        let doc = self
            .store
            .seal_document(SEALED_NAME, &plain)
            .context("sealing the camera list")?;
        drop(plain);
        let body = serde_json::to_vec_pretty(&SealedFile {
            version: VERSION,
            encryption: ENCRYPTION.to_owned(),
            master_key: doc.master_key,
            wrapped_key: B64.encode(&doc.wrapped_key),
            nonce: B64.encode(doc.nonce),
            sealed: B64.encode(&doc.ciphertext),
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
            f.write_all(b"\n")?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            std::fs::File::open(dir)?.sync_all()
        };
        write().with_context(|| format!("writing {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;

    use super::*;

    const PASSWORD: &str = "hunter2-pw";

    fn store(dir: &Path) -> Store {
        Store::open(
            vigil_store::StoreConfig::new(dir),
            Arc::new(vigil_store::SystemClock),
        )
        .unwrap()
    }

    fn cam(name: &str) -> CameraConfig {
        toml::from_str(&format!(
            "name = \"{name}\"\nurl = \"rtsp://viewer:{PASSWORD}@10.1.2.3/s\"\ntransport = \"udp\""
        ))
        .unwrap()
    }

    fn text(path: &Path) -> String {
        String::from_utf8(std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn sealed_round_trip_private_and_versioned() {
        let dir = tempfile::tempdir().unwrap();
        let file = CameraFile::new(dir.path(), store(dir.path()));
        let loaded = file.load().unwrap();
        assert!(loaded.cameras.is_empty() && loaded.rewrite.is_none());
        let cams = vec![cam("door"), cam("porch")];
        file.save(&cams).unwrap();
        let loaded = file.load().unwrap();
        assert_eq!(loaded.cameras, cams);
        assert!(loaded.rewrite.is_none(), "{:?}", loaded.rewrite);

        let path = dir.path().join(FILE_NAME);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let on_disk = text(&path);
        for clear in [PASSWORD, "rtsp://", "10.1.2.3", "viewer", "door", "porch"] {
            assert!(!on_disk.contains(clear), "{clear} in {on_disk}");
        }
        let v: serde_json::Value = serde_json::from_str(&on_disk).unwrap();
        assert_eq!(v["version"], 2);
        assert_eq!(v["encryption"], "AES-256-GCM");
        assert_eq!(v["master_key"], vigil_store::DEFAULT_MASTER_KEY_ID);

        // A fresh nonce and key at every write, even of the same list.
        file.save(&cams).unwrap();
        let again: serde_json::Value = serde_json::from_str(&text(&path)).unwrap();
        assert_ne!(again["nonce"], v["nonce"]);
        assert_ne!(again["sealed"], v["sealed"]);
        assert_eq!(file.load().unwrap().cameras, cams);

        file.save(&[]).unwrap();
        assert!(file.load().unwrap().cameras.is_empty());
        assert!(!dir.path().join(format!(".{FILE_NAME}.tmp")).exists());
    }

    #[test]
    fn a_plain_file_is_read_once_and_rewritten_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        // What version 1 wrote.
        let plain = serde_json::json!({
            "version": 1,
            "cameras": [serde_json::to_value(cam("door")).unwrap()],
        });
        std::fs::write(&path, serde_json::to_vec_pretty(&plain).unwrap()).unwrap();
        assert!(text(&path).contains(PASSWORD));
        let file = CameraFile::new(dir.path(), store(dir.path()));
        let loaded = file.load().unwrap();
        assert_eq!(loaded.cameras, vec![cam("door")]);
        let why = loaded.rewrite.unwrap();
        assert!(why.contains("in the clear"), "{why}");
        file.save(&loaded.cameras).unwrap();
        assert!(!text(&path).contains(PASSWORD));
        let loaded = file.load().unwrap();
        assert_eq!(loaded.cameras, vec![cam("door")]);
        assert!(loaded.rewrite.is_none());
    }

    #[test]
    fn files_that_cannot_be_read_back_are_refused_never_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let file = CameraFile::new(dir.path(), store(dir.path()));
        file.save(&[cam("door")]).unwrap();
        let good = text(&path);
        let refused = |body: &str| {
            std::fs::write(&path, body).unwrap();
            let e = format!("{:#}", file.load().unwrap_err());
            assert!(e.contains(&path.display().to_string()), "{e}");
            assert!(!e.contains(PASSWORD), "{e}");
            e
        };

        // One bit of the sealed list changed.
        let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
        let mut sealed = B64.decode(v["sealed"].as_str().unwrap()).unwrap();
        sealed[3] ^= 1;
        v["sealed"] = B64.encode(&sealed).into();
        let e = refused(&v.to_string());
        assert!(e.contains("fails authentication"), "{e}");
        assert!(e.contains("delete"), "{e}");

        // Relabelled as another version, or sealed under a key that is not configured.
        let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
        v["master_key"] = "vigil/gone".into();
        let e = refused(&v.to_string());
        assert!(
            e.contains("master key \"vigil/gone\", which is not configured"),
            "{e}"
        );
        assert!(e.contains("VIGIL_MASTER_KEY"), "{e}");
        let e = refused(&good.replace("\"version\": 2", "\"version\": 3"));
        assert!(e.contains("format version 3"), "{e}");

        // Not a camera list; a version 1 file whose strings would echo in serde's message.
        assert!(refused("garbage").contains("is not a camera list"));
        assert!(refused("{}").contains("no format version"));
        let e = refused(&format!(
            r#"{{"version": 1, "cameras": [{{"name": "x", "url": "rtsp://h/", "create_stream": "rtsp://u:{PASSWORD}@h/"}}]}}"#
        ));
        assert!(e.contains("is not a camera list"), "{e}");

        // Whatever was refused, the good file still reads back.
        std::fs::write(&path, &good).unwrap();
        assert_eq!(file.load().unwrap().cameras, vec![cam("door")]);
    }

    #[test]
    fn another_default_key_rewrites_under_it_and_the_wrong_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = store(dir.path());
        CameraFile::new(dir.path(), first.clone())
            .save(&[cam("door")])
            .unwrap();
        let path = dir.path().join(FILE_NAME);
        first.close().unwrap();
        drop(first);

        // A configured key becomes the default: the file still opens, and is to be resealed.
        let mut cfg = vigil_store::StoreConfig::new(dir.path());
        cfg.master_keys
            .push(vigil_store::crypto::MasterKey::new("vigil/master", [5; 32]));
        cfg.default_master_key = Some("vigil/master".into());
        let other = Store::open(cfg, Arc::new(vigil_store::SystemClock)).unwrap();
        let file = CameraFile::new(dir.path(), other.clone());
        let loaded = file.load().unwrap();
        assert_eq!(loaded.cameras, vec![cam("door")]);
        assert!(loaded.rewrite.unwrap().contains("not the default"));
        file.save(&loaded.cameras).unwrap();
        assert!(text(&path).contains("\"vigil/master\""));
        drop(file);
        other.close().unwrap();
        drop(other);

        // The same id with other key bytes: authentication fails.
        let mut cfg = vigil_store::StoreConfig::new(dir.path());
        cfg.master_keys
            .push(vigil_store::crypto::MasterKey::new("vigil/master", [6; 32]));
        let wrong = Store::open(cfg, Arc::new(vigil_store::SystemClock)).unwrap();
        let e = format!(
            "{:#}",
            CameraFile::new(dir.path(), wrong).load().unwrap_err()
        );
        assert!(e.contains("fails authentication"), "{e}");
    }
}
