//! Encryption at rest: AES-256-GCM per fragment under a per-stream data key, data keys wrapped
//! by a master key.
//!
//! - A **master key** is 32 random bytes with an id. The default one is created when the data
//!   directory is new, as `keys/default.key` (mode 0600), and never silently replaced (see
//!   `crate::datadir`); others can be supplied through configuration. A stream's `KmsKeyId`
//!   names the master key that wraps its data keys.
//! - A **data key** is 32 random bytes per stream and generation. It is stored only wrapped
//!   (AES-256-GCM under the master key, the stream id, generation and master key id as
//!   associated data). Rotating a stream's key adds a generation; new fragments use the newest,
//!   old fragments keep the generation they were written with.
//! - Each fragment is sealed in chunks of 64 KiB (`crate::chunks`), so that it can be read
//!   back a chunk at a time, each chunk authenticated before any of it is used. Chunk `i` has
//!   the 96-bit nonce made of 4 random bytes drawn when the store opens and a 64-bit counter
//!   plus `i` (a record reserves as many counter values as it has chunks), so a nonce never
//!   repeats under one key. The associated data is the record's plaintext header (stream,
//!   fragment number, timestamps, key generation, length) and the chunk's index, so moving,
//!   relabelling, reordering or cutting chunks fails authentication. Fragments written before
//!   chunking (body version 1) are sealed whole, with the header alone as associated data.
//!
//! Deleting a stream deletes its wrapped data keys, so its bytes are unreadable at once even
//! while the segment files holding them wait for expiry.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::{Result, StoreError};
use crate::fs::Fs;

/// AES-GCM tag length.
pub const TAG_LEN: usize = 16;
/// Key length.
pub const KEY_LEN: usize = 32;

const MASTER_KEY_MAGIC: &str = "vigil-master-key v1";

/// Random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| StoreError::Index("the system random generator failed".into()))?;
    Ok(out)
}

/// A 256-bit AES-GCM key.
pub struct AeadKey(LessSafeKey);

impl fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AeadKey(..)")
    }
}

impl AeadKey {
    /// A key from its bytes.
    pub fn new(bytes: &[u8; KEY_LEN]) -> Self {
        // A 32-byte slice is always a valid AES-256 key.
        match UnboundKey::new(&AES_256_GCM, bytes) {
            Ok(k) => Self(LessSafeKey::new(k)),
            Err(_) => unreachable_key(),
        }
    }

    /// Encrypts `buf[from..]` in place and appends the tag.
    pub fn seal_tail(&self, nonce: [u8; NONCE_LEN], aad: &[u8], buf: &mut Vec<u8>, from: usize) {
        let tag = match buf.get_mut(from..) {
            Some(plain) => self.0.seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                plain,
            ),
            None => return,
        };
        // Sealing fails only past 2^36 bytes, far beyond a fragment's bounded size.
        if let Ok(tag) = tag {
            buf.extend_from_slice(tag.as_ref());
        }
    }

    /// Encrypts `buf` in place and returns the tag (a chunk of a chunked record).
    pub fn seal_in_place(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> [u8; TAG_LEN] {
        let mut out = [0u8; TAG_LEN];
        // Sealing fails only past 2^36 bytes; a chunk is at most 16 MiB.
        if let Ok(tag) = self.0.seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            buf,
        ) {
            out.copy_from_slice(tag.as_ref());
        }
        out
    }

    /// Decrypts `buf` (ciphertext then tag) in place; returns the plaintext length.
    pub fn open(&self, nonce: [u8; NONCE_LEN], aad: &[u8], buf: &mut [u8]) -> Option<usize> {
        self.0
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), buf)
            .ok()
            .map(|p| p.len())
    }
}

fn unreachable_key() -> ! {
    // AES_256_GCM accepts every 32-byte key; ring documents no other failure.
    panic!("ring rejected a 32-byte AES-256 key")
}

/// Draws unique nonces: a random prefix per process and a counter.
#[derive(Debug)]
pub struct NonceSource {
    prefix: [u8; 4],
    counter: AtomicU64,
}

impl NonceSource {
    /// A new source with a fresh random prefix.
    pub fn new() -> Result<Self> {
        Ok(Self {
            prefix: random_bytes::<4>()?,
            counter: AtomicU64::new(0),
        })
    }

    /// The next nonce.
    pub fn next(&self) -> [u8; NONCE_LEN] {
        self.reserve(1)
    }

    /// The first of `n` consecutive nonces, all reserved: the record's chunk `i` uses the
    /// counter plus `i` ([`crate::chunks::chunk_nonce`]).
    pub fn reserve(&self, n: u64) -> [u8; NONCE_LEN] {
        let n = self.counter.fetch_add(n.max(1), Ordering::Relaxed);
        let mut out = [0u8; NONCE_LEN];
        let (p, c) = out.split_at_mut(4);
        p.copy_from_slice(&self.prefix);
        c.copy_from_slice(&n.to_be_bytes());
        out
    }
}

/// A master key with its id.
pub struct MasterKey {
    id: String,
    key: AeadKey,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id).finish()
    }
}

impl MasterKey {
    /// A master key from its id and bytes.
    pub fn new(id: impl Into<String>, bytes: [u8; KEY_LEN]) -> Self {
        Self {
            id: id.into(),
            key: AeadKey::new(&bytes),
        }
    }

    /// Its id (what a stream's `KmsKeyId` holds).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Parses a key written as 64 hexadecimal digits.
    pub fn from_hex(id: impl Into<String>, hex: &str) -> Result<Self> {
        let bytes = decode_hex(hex.trim()).ok_or_else(|| {
            StoreError::InvalidArgument("a master key is 64 hexadecimal digits (32 bytes)".into())
        })?;
        Ok(Self::new(id, bytes))
    }

    /// Loads the key file at `path` under the id `id`; `Ok(None)` if there is no such file.
    /// A file that is not a master key file is [`StoreError::Corrupt`].
    pub fn load(fs: &dyn Fs, path: &Path, id: &str) -> Result<Option<Self>> {
        if !fs.exists(path) {
            return Ok(None);
        }
        let file = fs
            .open(path, false)
            .map_err(|e| StoreError::io(format!("opening {}", path.display()), e))?;
        let len = file
            .len()
            .map_err(|e| StoreError::io(format!("reading {}", path.display()), e))?;
        let mut buf = vec![0u8; usize::try_from(len.min(4096)).unwrap_or(4096)];
        file.read_at(0, &mut buf)
            .map_err(|e| StoreError::io(format!("reading {}", path.display()), e))?;
        let text = String::from_utf8_lossy(&buf);
        let mut lines = text.lines();
        let bad = || StoreError::Corrupt {
            file: path.display().to_string(),
            offset: 0,
            detail: format!("not a master key file (expected \"{MASTER_KEY_MAGIC}\")"),
        };
        if lines.next() != Some(MASTER_KEY_MAGIC) {
            return Err(bad());
        }
        let hex = lines.next().ok_or_else(bad)?;
        Self::from_hex(id, hex).map(Some).map_err(|_| bad())
    }

    /// Creates the key file at `path` with a new random key under the id `id` (mode 0600,
    /// synced with its directory). Whether a new key may be made is the caller's decision:
    /// see `crate::datadir`.
    pub fn create(fs: &dyn Fs, path: &Path, id: &str) -> Result<Self> {
        let dir = path.parent().unwrap_or(Path::new("."));
        fs.create_dir_all(dir)
            .map_err(|e| StoreError::io(format!("creating {}", dir.display()), e))?;
        let bytes = random_bytes::<KEY_LEN>()?;
        let text = format!("{MASTER_KEY_MAGIC}\n{}\n", encode_hex(&bytes));
        let file = fs
            .open(path, true)
            .map_err(|e| StoreError::io(format!("creating {}", path.display()), e))?;
        file.set_len(0)
            .and_then(|()| file.write_at(0, text.as_bytes()))
            .and_then(|()| file.sync_data())
            .and_then(|()| fs.sync_dir(dir))
            .map_err(|e| StoreError::io(format!("writing {}", path.display()), e))?;
        Ok(Self::new(id, bytes))
    }

    fn aad(&self, stream: u64, generation: u32) -> Vec<u8> {
        self.aad_for(b"vigil-dk", stream, generation)
    }

    /// Associated data of a wrapped key: a domain (stream data keys `vigil-dk`, face
    /// collection keys `vigil-ck`, log group keys `vigil-lk`, so that one kind cannot be
    /// passed off as another), the owner's id, the generation and the master key id.
    fn aad_for(&self, domain: &[u8; 8], id: u64, generation: u32) -> Vec<u8> {
        let mut aad = Vec::with_capacity(20 + self.id.len());
        aad.extend_from_slice(domain);
        aad.extend_from_slice(&id.to_be_bytes());
        aad.extend_from_slice(&generation.to_be_bytes());
        aad.extend_from_slice(self.id.as_bytes());
        aad
    }

    /// Wraps a data key: nonce (12) + ciphertext (32) + tag (16).
    pub fn wrap(&self, stream: u64, generation: u32, key: &[u8; KEY_LEN]) -> Result<Vec<u8>> {
        let nonce = random_bytes::<NONCE_LEN>()?;
        let mut buf = nonce.to_vec();
        buf.extend_from_slice(key);
        self.key
            .seal_tail(nonce, &self.aad(stream, generation), &mut buf, NONCE_LEN);
        Ok(buf)
    }

    /// Wraps the data key of face collection `collection` (its embeddings' key).
    pub fn wrap_collection_key(&self, collection: u64, key: &[u8; KEY_LEN]) -> Result<Vec<u8>> {
        let nonce = random_bytes::<NONCE_LEN>()?;
        let mut buf = nonce.to_vec();
        buf.extend_from_slice(key);
        self.key.seal_tail(
            nonce,
            &self.aad_for(b"vigil-ck", collection, 1),
            &mut buf,
            NONCE_LEN,
        );
        Ok(buf)
    }

    /// Unwraps the data key of face collection `collection`.
    pub fn unwrap_collection_key(&self, collection: u64, wrapped: &[u8]) -> Result<AeadKey> {
        let fail = || StoreError::Authentication {
            what: format!(
                "the key of face collection #{collection} (master key {:?})",
                self.id
            ),
        };
        let (nonce, rest) = wrapped.split_first_chunk::<NONCE_LEN>().ok_or_else(fail)?;
        let mut buf = rest.to_vec();
        let n = self
            .key
            .open(*nonce, &self.aad_for(b"vigil-ck", collection, 1), &mut buf)
            .ok_or_else(fail)?;
        let bytes: [u8; KEY_LEN] = buf
            .get(..n)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(fail)?;
        Ok(AeadKey::new(&bytes))
    }

    /// Wraps generation `generation` of the data key of log group `group` (domain
    /// `vigil-lk`, so that it cannot pass for a stream's or a collection's key with the same
    /// id).
    pub fn wrap_log_key(
        &self,
        group: u64,
        generation: u32,
        key: &[u8; KEY_LEN],
    ) -> Result<Vec<u8>> {
        let nonce = random_bytes::<NONCE_LEN>()?;
        let mut buf = nonce.to_vec();
        buf.extend_from_slice(key);
        self.key.seal_tail(
            nonce,
            &self.aad_for(b"vigil-lk", group, generation),
            &mut buf,
            NONCE_LEN,
        );
        Ok(buf)
    }

    /// Unwraps a log group's data key.
    pub fn unwrap_log_key(&self, group: u64, generation: u32, wrapped: &[u8]) -> Result<AeadKey> {
        let fail = || StoreError::Authentication {
            what: format!(
                "data key {generation} of log group #{group} (master key {:?})",
                self.id
            ),
        };
        let (nonce, rest) = wrapped.split_first_chunk::<NONCE_LEN>().ok_or_else(fail)?;
        let mut buf = rest.to_vec();
        let n = self
            .key
            .open(
                *nonce,
                &self.aad_for(b"vigil-lk", group, generation),
                &mut buf,
            )
            .ok_or_else(fail)?;
        let bytes: [u8; KEY_LEN] = buf
            .get(..n)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(fail)?;
        Ok(AeadKey::new(&bytes))
    }

    /// Unwraps a data key.
    pub fn unwrap_key(&self, stream: u64, generation: u32, wrapped: &[u8]) -> Result<AeadKey> {
        let fail = || StoreError::Authentication {
            what: format!(
                "data key {generation} of stream {stream} (master key {:?})",
                self.id
            ),
        };
        let (nonce, rest) = wrapped.split_first_chunk::<NONCE_LEN>().ok_or_else(fail)?;
        let mut buf = rest.to_vec();
        let n = self
            .key
            .open(*nonce, &self.aad(stream, generation), &mut buf)
            .ok_or_else(fail)?;
        let bytes: [u8; KEY_LEN] = buf
            .get(..n)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(fail)?;
        Ok(AeadKey::new(&bytes))
    }
}

/// The master keys the store knows, and which one new streams use.
#[derive(Debug)]
pub struct KeyRing {
    keys: BTreeMap<String, MasterKey>,
    default: String,
}

impl KeyRing {
    /// A ring whose default key is `default`.
    pub fn new(default: MasterKey) -> Self {
        let id = default.id.clone();
        let mut keys = BTreeMap::new();
        keys.insert(id.clone(), default);
        Self { keys, default: id }
    }

    /// Adds a key (new streams keep using the default).
    pub fn add(&mut self, key: MasterKey) {
        self.keys.insert(key.id.clone(), key);
    }

    /// Makes `id` the key new streams use.
    pub fn set_default(&mut self, id: &str) -> Result<()> {
        if !self.keys.contains_key(id) {
            return Err(StoreError::KeyNotFound(id.into()));
        }
        self.default = id.into();
        Ok(())
    }

    /// The default key's id.
    pub fn default_id(&self) -> &str {
        &self.default
    }

    /// A key by id.
    pub fn get(&self, id: &str) -> Result<&MasterKey> {
        self.keys
            .get(id)
            .ok_or_else(|| StoreError::KeyNotFound(id.into()))
    }

    /// The ids of every key.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn wrap_round_trip_and_binding() {
        let mk = MasterKey::new("k1", [7; 32]);
        let dk = [9u8; 32];
        let w = mk.wrap(5, 1, &dk).unwrap();
        assert_eq!(w.len(), 12 + 32 + 16);
        assert!(mk.unwrap_key(5, 1, &w).is_ok());
        assert!(matches!(
            mk.unwrap_key(6, 1, &w),
            Err(StoreError::Authentication { .. })
        ));
        assert!(mk.unwrap_key(5, 2, &w).is_err());
        let other = MasterKey::new("k1", [8; 32]);
        assert!(other.unwrap_key(5, 1, &w).is_err());
        let mut t = w.clone();
        t[20] ^= 1;
        assert!(mk.unwrap_key(5, 1, &t).is_err());
    }

    #[test]
    fn collection_keys_are_not_stream_keys() {
        let mk = MasterKey::new("k1", [7; 32]);
        let ck = mk.wrap_collection_key(5, &[4; 32]).unwrap();
        assert!(mk.unwrap_collection_key(5, &ck).is_ok());
        assert!(mk.unwrap_collection_key(6, &ck).is_err());
        assert!(
            mk.unwrap_key(5, 1, &ck).is_err(),
            "a collection key is no stream key"
        );
        let dk = mk.wrap(5, 1, &[4; 32]).unwrap();
        assert!(mk.unwrap_collection_key(5, &dk).is_err());
    }

    #[test]
    fn log_keys_are_neither_stream_nor_collection_keys() {
        let mk = MasterKey::new("k1", [7; 32]);
        let lk = mk.wrap_log_key(5, 1, &[4; 32]).unwrap();
        assert!(mk.unwrap_log_key(5, 1, &lk).is_ok());
        assert!(mk.unwrap_log_key(6, 1, &lk).is_err());
        assert!(mk.unwrap_log_key(5, 2, &lk).is_err());
        assert!(
            mk.unwrap_key(5, 1, &lk).is_err(),
            "a log key is no stream key"
        );
        assert!(mk.unwrap_collection_key(5, &lk).is_err());
        let dk = mk.wrap(5, 1, &[4; 32]).unwrap();
        assert!(mk.unwrap_log_key(5, 1, &dk).is_err());
        let ck = mk.wrap_collection_key(5, &[4; 32]).unwrap();
        assert!(mk.unwrap_log_key(5, 1, &ck).is_err());
        assert!(
            MasterKey::new("k2", [7; 32])
                .unwrap_log_key(5, 1, &lk)
                .is_err()
        );
    }

    #[test]
    fn seal_open() {
        let k = AeadKey::new(&[1; 32]);
        let mut buf = b"hdr".to_vec();
        buf.extend_from_slice(b"secret payload");
        k.seal_tail([3; 12], b"aad", &mut buf, 3);
        assert_ne!(&buf[3..17], b"secret payload");
        let n = k.open([3; 12], b"aad", &mut buf[3..]).unwrap();
        assert_eq!(&buf[3..3 + n], b"secret payload");
    }

    #[test]
    fn nonces_are_unique() {
        let s = NonceSource::new().unwrap();
        let a = s.next();
        let b = s.next();
        assert_ne!(a, b);
        assert_eq!(a[..4], b[..4]);
    }

    #[test]
    fn hex() {
        let k = [0xabu8; 32];
        assert_eq!(decode_hex::<32>(&encode_hex(&k)), Some(k));
        assert_eq!(decode_hex::<32>("zz"), None);
    }
}
