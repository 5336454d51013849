//! Access keys: the root key and scoped keys, persisted in one file.
//!
//! # The file
//!
//! `DATA_DIR/auth/keys.json`, mode 0600 in a 0700 directory, JSON with a `format_version`
//! (now 1; a file with another version is refused, never rewritten). It holds the root key (if
//! one was generated) and every scoped key with its name, description, [`Policy`], creation
//! time and revocation time. Secrets are stored as they are: SigV4 verification needs the
//! secret itself to compute HMACs (a hash of it would not do), so the file's protection is its
//! mode and the data directory's permissions.
//!
//! # Writers
//!
//! Every change (root generation, create, revoke, delete) is a read-modify-write of the whole
//! file under an exclusive `flock` on `auth/keys.lock`: read the file as it is on disk, change
//! it, write `keys.json.tmp` (0600), fsync it, rename it over `keys.json`, fsync the directory.
//! Writers in any process (the server, `vigil keys …` commands) are serialised by the lock;
//! readers never take it, since a rename replaces the file atomically and a reader sees either
//! the old file or the new one.
//!
//! # Readers, and the reload contract
//!
//! A [`KeyStore`] keeps the parsed file in memory with the file's identity (device, inode,
//! size, mtime and ctime in ns). **Every lookup first `stat`s the file** and re-reads it if the
//! identity changed, so a key created or revoked by another process is seen by the very next
//! request, and one revoked through this `KeyStore` is seen at once by every clone of it. A
//! lookup with its `stat` costs about 0.4 µs, a whole PutMedia header verification about
//! 5 µs (the ignored test `lookup_cost` measures both). Each write replaces the inode, so a change is never missed because
//! the size and mtime happened to stay equal. If the file cannot be read or parsed, lookups keep
//! the last good contents ([`KeyStore::reload`] reports the error); a missing file means no
//! keys (the root override, if any, still works).
//!
//! # Root
//!
//! [`KeyStore::open`] takes an optional root override (the server passes
//! `VIGIL_ACCESS_KEY_ID`/`VIGIL_SECRET_ACCESS_KEY`): it wins over a stored root, which is then
//! not accepted, and is never written to the file. Without an override and without a stored
//! root, `open` generates one (`VK` + 18 of `[A-Z0-9]`; a 40-character secret from the
//! base64 alphabet, from the system's CSPRNG), stores it, and says so ([`RootStatus::Generated`])
//! so that the caller can show it once. The root key may do everything and cannot be revoked
//! or deleted through this API.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use crate::error::UnrecognizedReason;
use crate::policy::{AccessDenied, Policy, PolicyError, Principal, PrincipalKind};
use crate::sigv4::{Credential, CredentialLookup, SecretKey};

/// The key file's format version.
pub const FORMAT_VERSION: u32 = 1;
/// The longest key name, in bytes.
pub const MAX_NAME_LEN: usize = 128;
/// The longest key description, in bytes.
pub const MAX_DESCRIPTION_LEN: usize = 1_024;

const DIR_NAME: &str = "auth";
const FILE_NAME: &str = "keys.json";
const TEMP_NAME: &str = "keys.json.tmp";
const LOCK_NAME: &str = "keys.lock";

/// What can go wrong with the key store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyStoreError {
    /// A file operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The key file is not valid JSON of the expected shape.
    #[error("{} is corrupt: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The key file has a format version this build does not know.
    #[error(
        "{} has format version {found}; this build of Vigil reads version {FORMAT_VERSION}",
        path.display()
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u64,
    },
    /// No key with this access key id.
    #[error("no access key '{0}'")]
    NotFound(String),
    /// The root key cannot be revoked or deleted.
    #[error("'{0}' is the root key, which cannot be revoked or deleted")]
    RootKey(String),
    /// The policy is not well-formed.
    #[error(transparent)]
    InvalidPolicy(#[from] PolicyError),
    /// A name, description or root override that is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The system's random generator failed.
    #[error("the system random number generator failed")]
    Random,
}

/// Root credentials given from outside (the environment), overriding the stored root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootOverride {
    /// The access key id: 1 to 128 printable ASCII characters without `/`.
    pub access_key_id: String,
    /// The secret: 1 to 256 printable ASCII characters.
    pub secret: SecretKey,
}

/// Where the root credentials came from, for the server's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootStatus {
    /// The root stored in the key file.
    Stored {
        /// Its access key id.
        access_key_id: String,
    },
    /// The override (any stored root is not accepted while it is in use).
    Override {
        /// Its access key id.
        access_key_id: String,
    },
    /// Generated and stored by this `open`: show the secret once.
    Generated {
        /// Its access key id.
        access_key_id: String,
        /// Its secret.
        secret: SecretKey,
    },
}

/// A scoped key to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    /// A name for people (1 to 128 bytes, no control characters).
    pub name: String,
    /// A description (at most 1024 bytes, no control characters but newlines).
    pub description: String,
    /// What the key may do.
    pub policy: Policy,
}

/// A scoped key, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// The access key id.
    pub access_key_id: String,
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// What it may do.
    pub policy: Policy,
    /// When it was created, ms since the epoch.
    pub created_ms: u64,
    /// When it was revoked, if it was.
    pub revoked_ms: Option<u64>,
}

impl KeyInfo {
    /// Whether the key was revoked.
    pub fn is_revoked(&self) -> bool {
        self.revoked_ms.is_some()
    }
}

/// A key just created: its secret is shown this once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedKey {
    /// The key.
    pub info: KeyInfo,
    /// Its secret.
    pub secret: SecretKey,
}

/// The persisted file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct KeyFile {
    format_version: u32,
    root: Option<StoredRoot>,
    keys: Vec<StoredKey>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredRoot {
    access_key_id: String,
    secret_access_key: String,
    created_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredKey {
    access_key_id: String,
    secret_access_key: String,
    name: String,
    description: String,
    policy: Policy,
    created_ms: u64,
    revoked_ms: Option<u64>,
}

impl StoredKey {
    fn info(&self) -> KeyInfo {
        KeyInfo {
            access_key_id: self.access_key_id.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            policy: self.policy.clone(),
            created_ms: self.created_ms,
            revoked_ms: self.revoked_ms,
        }
    }
}

/// What identifies one version of the file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileIdentity {
    fn of(meta: &fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        }
    }
}

/// One lookup entry.
#[derive(Debug, Clone)]
struct Entry {
    secret: SecretKey,
    principal: Principal,
    revoked: bool,
}

/// The file as last read, indexed.
#[derive(Debug, Default)]
struct Snapshot {
    /// `None`: the file did not exist.
    identity: Option<FileIdentity>,
    file: KeyFile,
    entries: HashMap<String, Entry>,
}

impl Snapshot {
    fn new(identity: Option<FileIdentity>, file: KeyFile, root: Option<&RootOverride>) -> Self {
        let mut entries = HashMap::with_capacity(file.keys.len() + 1);
        for k in &file.keys {
            entries.insert(
                k.access_key_id.clone(),
                Entry {
                    secret: SecretKey::new(k.secret_access_key.clone()),
                    principal: Principal {
                        access_key_id: k.access_key_id.clone(),
                        kind: PrincipalKind::Key {
                            name: k.name.clone(),
                        },
                        policy: Arc::new(k.policy.clone()),
                    },
                    revoked: k.revoked_ms.is_some(),
                },
            );
        }
        // The root last, so that it wins over a scoped key that had the same id.
        let root = match (root, &file.root) {
            (Some(o), _) => Some((o.access_key_id.clone(), o.secret.clone())),
            (None, Some(r)) => Some((
                r.access_key_id.clone(),
                SecretKey::new(r.secret_access_key.clone()),
            )),
            (None, None) => None,
        };
        if let Some((id, secret)) = root {
            entries.insert(
                id.clone(),
                Entry {
                    secret,
                    principal: Principal::root(id),
                    revoked: false,
                },
            );
        }
        Self {
            identity,
            file,
            entries,
        }
    }
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    path: PathBuf,
    root_override: Option<RootOverride>,
    snapshot: RwLock<Snapshot>,
}

/// The access keys, shared: clones are cheap and see the same keys. See the module docs for
/// the file, the writers' lock and the reload contract.
#[derive(Debug, Clone)]
pub struct KeyStore {
    inner: Arc<Inner>,
}

impl KeyStore {
    /// Opens (creating if need be) `data_dir/auth/keys.json`. With `root_override`, that root
    /// is the one accepted; without, the stored root, generated now if there is none.
    pub fn open(
        data_dir: &Path,
        root_override: Option<RootOverride>,
    ) -> Result<(KeyStore, RootStatus), KeyStoreError> {
        if let Some(o) = &root_override {
            validate_override(o)?;
        }
        let dir = data_dir.join(DIR_NAME);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| io_error("create directory", &dir, e))?;
        let store = KeyStore {
            inner: Arc::new(Inner {
                path: dir.join(FILE_NAME),
                dir,
                root_override,
                snapshot: RwLock::new(Snapshot::default()),
            }),
        };
        store.reload()?;
        let status = if let Some(o) = &store.inner.root_override {
            RootStatus::Override {
                access_key_id: o.access_key_id.clone(),
            }
        } else if let Some(access_key_id) = store.root_access_key_id() {
            RootStatus::Stored { access_key_id }
        } else {
            // Another process may generate one first: decide under the lock.
            store.modify(|file| {
                if let Some(root) = &file.root {
                    return Ok(RootStatus::Stored {
                        access_key_id: root.access_key_id.clone(),
                    });
                }
                let access_key_id = generate_key_id(file)?;
                let secret = generate_secret()?;
                file.root = Some(StoredRoot {
                    access_key_id: access_key_id.clone(),
                    secret_access_key: secret.expose().to_owned(),
                    created_ms: now_ms(),
                });
                Ok(RootStatus::Generated {
                    access_key_id,
                    secret,
                })
            })?
        };
        Ok((store, status))
    }

    /// The key file's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The access key id of the root key in use (the override's, or the stored one).
    pub fn root_access_key_id(&self) -> Option<String> {
        if let Some(o) = &self.inner.root_override {
            return Some(o.access_key_id.clone());
        }
        self.refresh();
        self.read()
            .file
            .root
            .as_ref()
            .map(|r| r.access_key_id.clone())
    }

    /// Creates a scoped key; its secret is in the result and nowhere else but the file.
    pub fn create_key(&self, new: NewKey) -> Result<CreatedKey, KeyStoreError> {
        validate_text("name", &new.name, MAX_NAME_LEN, false)?;
        validate_text("description", &new.description, MAX_DESCRIPTION_LEN, true)?;
        new.policy.validate()?;
        self.modify(|file| {
            let access_key_id = generate_key_id(file)?;
            let secret = generate_secret()?;
            let key = StoredKey {
                access_key_id,
                secret_access_key: secret.expose().to_owned(),
                name: new.name.clone(),
                description: new.description.clone(),
                policy: new.policy.clone(),
                created_ms: now_ms(),
                revoked_ms: None,
            };
            let info = key.info();
            file.keys.push(key);
            Ok(CreatedKey { info, secret })
        })
    }

    /// Every scoped key (not the root), without secrets, oldest first.
    pub fn list_keys(&self) -> Vec<KeyInfo> {
        self.refresh();
        self.read().file.keys.iter().map(StoredKey::info).collect()
    }

    /// One scoped key, without its secret.
    pub fn get_key(&self, access_key_id: &str) -> Option<KeyInfo> {
        self.refresh();
        self.read()
            .file
            .keys
            .iter()
            .find(|k| k.access_key_id == access_key_id)
            .map(StoredKey::info)
    }

    /// Revokes a scoped key: from now on every request signed with it fails with
    /// `UnrecognizedClientException`. Revoking a revoked key changes nothing.
    pub fn revoke_key(&self, access_key_id: &str) -> Result<KeyInfo, KeyStoreError> {
        self.modify(|file| {
            if file
                .root
                .as_ref()
                .is_some_and(|r| r.access_key_id == access_key_id)
            {
                return Err(KeyStoreError::RootKey(access_key_id.to_owned()));
            }
            let key = file
                .keys
                .iter_mut()
                .find(|k| k.access_key_id == access_key_id)
                .ok_or_else(|| KeyStoreError::NotFound(access_key_id.to_owned()))?;
            key.revoked_ms.get_or_insert_with(now_ms);
            Ok(key.info())
        })
    }

    /// Deletes a scoped key (revoked or not) from the file.
    pub fn delete_key(&self, access_key_id: &str) -> Result<(), KeyStoreError> {
        self.modify(|file| {
            if file
                .root
                .as_ref()
                .is_some_and(|r| r.access_key_id == access_key_id)
            {
                return Err(KeyStoreError::RootKey(access_key_id.to_owned()));
            }
            let before = file.keys.len();
            file.keys.retain(|k| k.access_key_id != access_key_id);
            if file.keys.len() == before {
                return Err(KeyStoreError::NotFound(access_key_id.to_owned()));
            }
            Ok(())
        })
    }

    /// Allows or denies `operation` (on `stream_name`) to the key as it is now; an unknown or
    /// revoked key is denied.
    pub fn authorize(
        &self,
        access_key_id: &str,
        operation: &str,
        stream_name: Option<&str>,
    ) -> Result<(), AccessDenied> {
        match self.lookup(access_key_id) {
            Ok(credential) => credential.principal.authorize(operation, stream_name),
            Err(_) => Err(AccessDenied {
                access_key_id: access_key_id.to_owned(),
                operation: operation.to_owned(),
                stream_name: stream_name.map(str::to_owned),
            }),
        }
    }

    /// Re-reads the file if it changed since it was last read. True if it was re-read.
    pub fn reload(&self) -> Result<bool, KeyStoreError> {
        let identity = self.stat()?;
        if self.read().identity == identity && identity.is_some() {
            return Ok(false);
        }
        let (identity, file) = self.read_file()?;
        let mut snapshot = self.write();
        *snapshot = Snapshot::new(identity, file, self.inner.root_override.as_ref());
        Ok(true)
    }

    /// `reload`, keeping the last good contents on error (the next call tries again).
    fn refresh(&self) {
        let _ = self.reload();
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Snapshot> {
        self.inner
            .snapshot
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Snapshot> {
        self.inner
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn stat(&self) -> Result<Option<FileIdentity>, KeyStoreError> {
        match fs::metadata(&self.inner.path) {
            Ok(meta) => Ok(Some(FileIdentity::of(&meta))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("stat", &self.inner.path, e)),
        }
    }

    /// Reads and parses the file as it is on disk now.
    fn read_file(&self) -> Result<(Option<FileIdentity>, KeyFile), KeyStoreError> {
        let path = &self.inner.path;
        let mut f = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok((
                    None,
                    KeyFile {
                        format_version: FORMAT_VERSION,
                        ..KeyFile::default()
                    },
                ));
            }
            Err(e) => return Err(io_error("open", path, e)),
        };
        // The identity of the file actually read (not of whatever the path names later).
        let meta = f.metadata().map_err(|e| io_error("stat", path, e))?;
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        io::Read::read_to_end(&mut f, &mut bytes).map_err(|e| io_error("read", path, e))?;
        Ok((Some(FileIdentity::of(&meta)), parse_key_file(path, &bytes)?))
    }

    /// Read-modify-write of the file under the writers' lock (module docs).
    fn modify<T>(
        &self,
        change: impl FnOnce(&mut KeyFile) -> Result<T, KeyStoreError>,
    ) -> Result<T, KeyStoreError> {
        let dir = &self.inner.dir;
        let lock_path = dir.join(LOCK_NAME);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| io_error("open", &lock_path, e))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io_error("lock", &lock_path, e.into()))?;

        let (_, mut file) = self.read_file()?;
        let out = change(&mut file)?;
        file.format_version = FORMAT_VERSION;
        let mut json = serde_json::to_vec_pretty(&file).map_err(|e| KeyStoreError::Corrupt {
            path: self.inner.path.clone(),
            reason: e.to_string(),
        })?;
        json.push(b'\n');

        let temp = dir.join(TEMP_NAME);
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&temp)
            .map_err(|e| io_error("create", &temp, e))?;
        f.write_all(&json)
            .map_err(|e| io_error("write", &temp, e))?;
        f.sync_all().map_err(|e| io_error("fsync", &temp, e))?;
        drop(f);
        fs::rename(&temp, &self.inner.path).map_err(|e| io_error("rename", &temp, e))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_error("fsync", dir, e))?;

        let identity = self.stat()?;
        *self.write() = Snapshot::new(identity, file, self.inner.root_override.as_ref());
        // The lock is released when `lock` is dropped, after the snapshot is in place.
        drop(lock);
        Ok(out)
    }
}

impl CredentialLookup for KeyStore {
    fn lookup(&self, access_key_id: &str) -> Result<Credential, UnrecognizedReason> {
        self.refresh();
        match self.read().entries.get(access_key_id) {
            None => Err(UnrecognizedReason::UnknownKey),
            Some(e) if e.revoked => Err(UnrecognizedReason::Revoked),
            Some(e) => Ok(Credential {
                secret: e.secret.clone(),
                principal: e.principal.clone(),
            }),
        }
    }
}

fn parse_key_file(path: &Path, bytes: &[u8]) -> Result<KeyFile, KeyStoreError> {
    let corrupt = |e: serde_json::Error| KeyStoreError::Corrupt {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    #[derive(Deserialize)]
    struct Version {
        format_version: u64,
    }
    let version: Version = serde_json::from_slice(bytes).map_err(corrupt)?;
    if version.format_version != u64::from(FORMAT_VERSION) {
        return Err(KeyStoreError::UnsupportedVersion {
            path: path.to_owned(),
            found: version.format_version,
        });
    }
    serde_json::from_slice(bytes).map_err(corrupt)
}

fn io_error(op: &'static str, path: &Path, source: io::Error) -> KeyStoreError {
    KeyStoreError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn validate_text(
    what: &str,
    value: &str,
    max_len: usize,
    newlines: bool,
) -> Result<(), KeyStoreError> {
    let ok = (newlines || !value.is_empty())
        && value.len() <= max_len
        && value
            .chars()
            .all(|c| !c.is_control() || (newlines && c == '\n'));
    if ok {
        Ok(())
    } else {
        Err(KeyStoreError::Invalid(format!(
            "the key's {what} must be {}at most {max_len} bytes without control characters",
            if newlines { "" } else { "1 to " }
        )))
    }
}

fn validate_override(o: &RootOverride) -> Result<(), KeyStoreError> {
    let id = &o.access_key_id;
    let secret = o.secret.expose();
    if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_graphic() && b != b'/') {
        return Err(KeyStoreError::Invalid(
            "the root access key id must be 1 to 128 printable ASCII characters without '/'"
                .to_owned(),
        ));
    }
    if secret.is_empty() || secret.len() > 256 || !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(KeyStoreError::Invalid(
            "the root secret access key must be 1 to 256 printable ASCII characters".to_owned(),
        ));
    }
    Ok(())
}

fn random_bytes<const N: usize>() -> Result<[u8; N], KeyStoreError> {
    let mut buf = [0_u8; N];
    SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| KeyStoreError::Random)?;
    Ok(buf)
}

/// `VK` and 18 characters of `[A-Z0-9]`, unused in `file`.
fn generate_key_id(file: &KeyFile) -> Result<String, KeyStoreError> {
    const ALPHABET: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    loop {
        let mut id = String::from("VK");
        while id.len() < 20 {
            for b in random_bytes::<32>()? {
                // Rejection sampling keeps the characters uniform (252 = 7 * 36).
                if b < 252
                    && id.len() < 20
                    && let Some(&c) = ALPHABET.get(usize::from(b % 36))
                {
                    id.push(char::from(c));
                }
            }
        }
        let taken = file.root.as_ref().is_some_and(|r| r.access_key_id == id)
            || file.keys.iter().any(|k| k.access_key_id == id);
        if !taken {
            return Ok(id);
        }
    }
}

/// 40 characters of the base64 alphabet (240 random bits).
fn generate_secret() -> Result<SecretKey, KeyStoreError> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let secret: String = random_bytes::<40>()?
        .iter()
        .filter_map(|&b| ALPHABET.get(usize::from(b & 63)).map(|&c| char::from(c)))
        .collect();
    Ok(SecretKey::new(secret))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn generated_ids_and_secrets() {
        let file = KeyFile::default();
        let id = generate_key_id(&file).unwrap();
        assert_eq!(id.len(), 20);
        assert!(id.starts_with("VK"));
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        );
        let s = generate_secret().unwrap();
        assert_eq!(s.expose().len(), 40);
        assert_ne!(generate_secret().unwrap(), s);
        assert_eq!(format!("{s:?}"), "SecretKey(<redacted>)");
    }

    #[test]
    fn text_validation() {
        assert!(validate_text("name", "cams", 128, false).is_ok());
        assert!(validate_text("name", "", 128, false).is_err());
        assert!(validate_text("name", "a\nb", 128, false).is_err());
        assert!(validate_text("description", "", 1024, true).is_ok());
        assert!(validate_text("description", "a\nb", 1024, true).is_ok());
        assert!(validate_text("description", "a\u{7}", 1024, true).is_err());
        assert!(validate_text("name", &"x".repeat(129), 128, false).is_err());
    }
}
