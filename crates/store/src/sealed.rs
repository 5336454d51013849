//! Sealed documents: small secrets an upper layer keeps outside the index (in files of the
//! data directory), encrypted and authenticated under the store's master key. The binary
//! seals its camera list (`DATA_DIR/cameras.json`, RTSP passwords) this way.
//!
//! Envelope encryption, as for streams: each [`Store::seal_document`] draws a fresh 32-byte
//! document key and a fresh random 96-bit nonce, seals the document with AES-256-GCM under the
//! document key, and wraps the document key under the **default** master key. Sealing
//! again (every save of the file) draws both anew, so a nonce is never reused under a key.
//!
//! - The document's associated data is a domain (`vigil-sd`, which no other kind of sealed
//!   bytes uses), the sealing format version, the document's **name** (its identity and
//!   format version, chosen by the caller: `"cameras.json v2"`) and the master key's id. A
//!   sealed document opens only under the name it was sealed with, and changing any byte, the
//!   recorded master key id included, fails authentication.
//! - The document key is wrapped as stream data keys are ([`crate::crypto::MasterKey::wrap`]),
//!   in the slot of stream 0, generation 0, which no stream has (stream ids and key
//!   generations start at 1; generation 0 means "not encrypted"), so a document key can never
//!   be taken for a stream's data key, nor one of those for a document key.
//!
//! Sealing does not depend on [`crate::StoreConfig::encryption`]: that switch is about media
//! and log data (fragments, track headers, log batches, embeddings), while a master key always
//! exists, and secrets are sealed whatever it says.
//!
//! Opening needs the master key the document was sealed under ([`SealedDocument::master_key`]):
//! if it is not configured, [`StoreError::KeyNotFound`]; if the bytes, name or key do not
//! match, [`StoreError::Authentication`]. A document sealed under another key than the
//! current default still opens (its key is in the ring); [`SealedDocument::master_key`] tells
//! the caller when to seal it again under the default.

use std::fmt;

use ring::aead::NONCE_LEN;

use crate::crypto::{AeadKey, KEY_LEN, MasterKey, random_bytes};
use crate::engine::Store;
use crate::error::{Result, StoreError};

/// The version of the sealing format this code writes and reads (bound as associated data).
pub const SEALED_FORMAT: u8 = 1;

/// The domain of sealed documents' associated data.
const DOMAIN: &[u8; 8] = b"vigil-sd";

/// The wrapping slot of document keys: stream 0, generation 0, which no stream has.
const WRAP_SLOT: (u64, u32) = (0, 0);

/// A sealed document, as the caller keeps it (it chooses the encoding).
#[derive(Clone, PartialEq, Eq)]
pub struct SealedDocument {
    /// The id of the master key the document key is wrapped under.
    pub master_key: String,
    /// The document key, wrapped: nonce (12), key (32), tag (16).
    pub wrapped_key: Vec<u8>,
    /// The document's nonce.
    pub nonce: [u8; NONCE_LEN],
    /// The document, encrypted, then the 16-byte tag.
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for SealedDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedDocument")
            .field("master_key", &self.master_key)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

/// The associated data of document `name` under master key `master`.
fn aad(name: &str, master: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(DOMAIN.len() + 1 + 4 + name.len() + master.len());
    aad.extend_from_slice(DOMAIN);
    aad.push(SEALED_FORMAT);
    // The name's length first, so that (name, master id) splits one way only.
    aad.extend_from_slice(&u32::try_from(name.len()).unwrap_or(u32::MAX).to_be_bytes());
    aad.extend_from_slice(name.as_bytes());
    aad.extend_from_slice(master.as_bytes());
    aad
}

/// Seals `plain` as document `name` under `master`.
pub fn seal(master: &MasterKey, name: &str, plain: &[u8]) -> Result<SealedDocument> {
    let key = random_bytes::<KEY_LEN>()?;
    let wrapped_key = master.wrap(WRAP_SLOT.0, WRAP_SLOT.1, &key)?;
    let nonce = random_bytes::<NONCE_LEN>()?;
    let mut ciphertext = plain.to_vec();
    AeadKey::new(&key).seal_tail(nonce, &aad(name, master.id()), &mut ciphertext, 0);
    Ok(SealedDocument {
        master_key: master.id().to_owned(),
        wrapped_key,
        nonce,
        ciphertext,
    })
}

/// Opens document `name`, sealed under `master` (whose id must be the one recorded).
pub fn open(master: &MasterKey, name: &str, doc: &SealedDocument) -> Result<Vec<u8>> {
    let fail = || StoreError::Authentication {
        what: format!("sealed document {name:?} (master key {:?})", doc.master_key),
    };
    if master.id() != doc.master_key {
        return Err(fail());
    }
    let key = master
        .unwrap_key(WRAP_SLOT.0, WRAP_SLOT.1, &doc.wrapped_key)
        .map_err(|_| fail())?;
    let mut buf = doc.ciphertext.clone();
    let n = key
        .open(doc.nonce, &aad(name, &doc.master_key), &mut buf)
        .ok_or_else(fail)?;
    buf.truncate(n);
    Ok(buf)
}

impl Store {
    /// The id of the master key [`Store::seal_document`] seals under (the default one).
    pub fn default_master_key_id(&self) -> &str {
        self.0.keys.default_id()
    }

    /// Seals `plain` as the document `name` (its identity and format version, bound as
    /// associated data) under the default master key: see the [module docs](self).
    pub fn seal_document(&self, name: &str, plain: &[u8]) -> Result<SealedDocument> {
        seal(self.0.keys.get(self.0.keys.default_id())?, name, plain)
    }

    /// Opens the document `name`: [`StoreError::KeyNotFound`] if its master key is not
    /// configured, [`StoreError::Authentication`] if it was altered, sealed under another
    /// name, or under other key bytes with the same id.
    pub fn open_document(&self, name: &str, doc: &SealedDocument) -> Result<Vec<u8>> {
        open(self.0.keys.get(&doc.master_key)?, name, doc)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn round_trip_fresh_each_time() {
        let mk = MasterKey::new("k1", [7; 32]);
        let a = seal(&mk, "doc v1", b"secret stuff").unwrap();
        let b = seal(&mk, "doc v1", b"secret stuff").unwrap();
        assert_eq!(open(&mk, "doc v1", &a).unwrap(), b"secret stuff");
        assert_eq!(open(&mk, "doc v1", &b).unwrap(), b"secret stuff");
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.wrapped_key, b.wrapped_key);
        assert_ne!(a.ciphertext, b.ciphertext);
        assert_eq!(a.ciphertext.len(), b"secret stuff".len() + 16);
        assert!(!format!("{a:?}").contains("ciphertext:"));
        assert_eq!(
            open(&mk, "doc v1", &seal(&mk, "doc v1", b"").unwrap()).unwrap(),
            b""
        );
    }

    #[test]
    fn bound_to_name_key_and_bytes() {
        let mk = MasterKey::new("k1", [7; 32]);
        let doc = seal(&mk, "doc v1", b"secret stuff").unwrap();
        let fails = |d: &SealedDocument, name: &str, key: &MasterKey| {
            matches!(open(key, name, d), Err(StoreError::Authentication { .. }))
        };
        assert!(fails(&doc, "doc v2", &mk), "another name");
        assert!(
            fails(&doc, "doc v1", &MasterKey::new("k1", [8; 32])),
            "other bytes"
        );
        assert!(
            fails(&doc, "doc v1", &MasterKey::new("k2", [7; 32])),
            "another id"
        );
        let mut relabelled = doc.clone();
        relabelled.master_key = "k2".into();
        assert!(fails(&relabelled, "doc v1", &MasterKey::new("k2", [7; 32])));
        for i in 0..doc.ciphertext.len() {
            let mut t = doc.clone();
            t.ciphertext[i] ^= 1;
            assert!(fails(&t, "doc v1", &mk), "byte {i}");
        }
        let mut t = doc.clone();
        t.nonce[0] ^= 1;
        assert!(fails(&t, "doc v1", &mk));
        let mut t = doc.clone();
        t.wrapped_key[20] ^= 1;
        assert!(fails(&t, "doc v1", &mk));
        let mut t = doc.clone();
        t.ciphertext.truncate(4);
        assert!(fails(&t, "doc v1", &mk));
    }

    #[test]
    fn document_keys_are_not_data_keys() {
        let mk = MasterKey::new("k1", [7; 32]);
        let doc = seal(&mk, "doc v1", b"x").unwrap();
        // Only the reserved slot unwraps it, which no stream has.
        assert!(mk.unwrap_key(1, 1, &doc.wrapped_key).is_err());
        assert!(mk.unwrap_collection_key(0, &doc.wrapped_key).is_err());
        assert!(mk.unwrap_log_key(0, 0, &doc.wrapped_key).is_err());
    }

    #[test]
    fn the_store_seals_under_its_default_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = crate::StoreConfig::new(dir.path());
        cfg.master_keys.push(MasterKey::new("other", [3; 32]));
        let store = Store::open(cfg, std::sync::Arc::new(crate::ManualClock::new(1))).unwrap();
        assert_eq!(store.default_master_key_id(), crate::DEFAULT_MASTER_KEY_ID);
        let doc = store.seal_document("doc v1", b"hello").unwrap();
        assert_eq!(doc.master_key, crate::DEFAULT_MASTER_KEY_ID);
        assert_eq!(store.open_document("doc v1", &doc).unwrap(), b"hello");
        let mut unknown = doc.clone();
        unknown.master_key = "gone".into();
        assert!(matches!(
            store.open_document("doc v1", &unknown),
            Err(StoreError::KeyNotFound(id)) if id == "gone"
        ));
        store.close().unwrap();
        drop(store);

        // Another default: new seals use it, the old document still opens.
        let mut cfg = crate::StoreConfig::new(dir.path());
        cfg.master_keys.push(MasterKey::new("other", [3; 32]));
        cfg.default_master_key = Some("other".into());
        let store = Store::open(cfg, std::sync::Arc::new(crate::ManualClock::new(1))).unwrap();
        assert_eq!(store.open_document("doc v1", &doc).unwrap(), b"hello");
        assert_eq!(
            store.seal_document("doc v1", b"x").unwrap().master_key,
            "other"
        );
        store.close().unwrap();
    }
}
