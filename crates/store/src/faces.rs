//! Face collections as data: each collection's record, and its faces' metadata and identity
//! embeddings, durable in the index and with the embeddings encrypted at rest.
//!
//! The store knows a collection as a name, a record ([`CollectionRecord`]) and rows of faces
//! ([`StoredFace`]); it does not know Rekognition, images or how embeddings are compared (the
//! API layer and `vigil-faces` do).
//!
//! # Encryption
//!
//! Embeddings are biometric data. Each collection has its own 256-bit data key, stored only
//! wrapped by a master key (AES-256-GCM, associated data `vigil-ck`, the collection id and the
//! master key id: [`crate::crypto::MasterKey::wrap_collection_key`]). Each embedding is sealed
//! under it with a fresh nonce from the store's nonce source, the collection id and face id as
//! associated data, so a row moved to another face or collection fails authentication.
//! Deleting a collection deletes its key and its rows in one transaction. With encryption off
//! (`StoreConfig::encryption`), embeddings are stored in the clear, marked so in their row.
//!
//! # Durability
//!
//! Every change is one durable index transaction: [`Store::add_faces`] returns once the rows
//! and the new face count are on disk, so a face reported indexed survives a crash.
//!
//! # Row format (version 1, little-endian)
//!
//! ```text
//! u8 version (1) | u8 flags (bit 0: embedding sealed) | [u8;16] image id | f32 confidence
//! | f32 left, top, width, height (ratios of the image) | u16 n + n bytes external image id
//! (0: none) | u8 n + n bytes model version | u16 n values | embedding
//! ```
//!
//! where the embedding is `n` f32 values, or, sealed, a 12-byte nonce and the AES-GCM
//! ciphertext of those bytes with its 16-byte tag.

use std::collections::BTreeMap;
use std::sync::Arc;

use ring::aead::NONCE_LEN;
use serde::{Deserialize, Serialize};

use crate::crypto::{AeadKey, KEY_LEN, TAG_LEN, random_bytes};
use crate::engine::{Store, lock};
use crate::error::{Result, StoreError};
use crate::index::WrappedKey;

/// Format version of [`CollectionRecord`] as persisted.
pub const COLLECTION_RECORD_VERSION: u32 = 1;
/// Format version of a face row.
pub const FACE_ROW_VERSION: u8 = 1;
const FLAG_SEALED: u8 = 1;

/// A face collection, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionRecord {
    /// Persisted format version ([`COLLECTION_RECORD_VERSION`]).
    pub v: u32,
    /// Store-assigned id, never reused (a collection deleted and created again is another).
    pub id: u64,
    /// The name (Rekognition's `CollectionId`), unique.
    pub name: String,
    /// Creation time.
    pub creation_time_ms: u64,
    /// The face model the collection was created with; its embeddings come from it.
    pub face_model_version: String,
    /// Faces in the collection.
    pub face_count: u64,
    /// The master key that wraps the collection's data key.
    pub kms_key_id: String,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// A face as stored: its metadata and embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFace {
    /// The face id (Rekognition's `FaceId`, a UUID, as 128 bits).
    pub face_id: u128,
    /// The id of the image it was indexed from (`ImageId`).
    pub image_id: u128,
    /// The caller's id for that image (`ExternalImageId`).
    pub external_image_id: Option<String>,
    /// The face's box as ratios of the image's width and height: left, top, width, height.
    pub bounding_box: [f32; 4],
    /// Detection confidence, 0-100.
    pub confidence: f32,
    /// The model that indexed it (`IndexFacesModelVersion`).
    pub model_version: String,
    /// The identity embedding.
    pub embedding: Vec<f32>,
}

impl StoredFace {
    /// The row, embedding sealed with `seal` (or in the clear if `None`).
    fn encode(&self, seal: Option<(&AeadKey, [u8; NONCE_LEN], &[u8])>) -> Result<Vec<u8>> {
        let ext = self.external_image_id.as_deref().unwrap_or("");
        let ext_len = u16::try_from(ext.len())
            .map_err(|_| StoreError::InvalidArgument("an external image id is too long".into()))?;
        let model_len = u8::try_from(self.model_version.len())
            .map_err(|_| StoreError::InvalidArgument("a model version is too long".into()))?;
        let n = u16::try_from(self.embedding.len())
            .map_err(|_| StoreError::InvalidArgument("an embedding is too long".into()))?;
        let mut out = Vec::with_capacity(64 + ext.len() + 4 * self.embedding.len() + 28);
        out.push(FACE_ROW_VERSION);
        out.push(if seal.is_some() { FLAG_SEALED } else { 0 });
        out.extend_from_slice(&self.image_id.to_be_bytes());
        out.extend_from_slice(&self.confidence.to_le_bytes());
        for v in self.bounding_box {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&ext_len.to_le_bytes());
        out.extend_from_slice(ext.as_bytes());
        out.push(model_len);
        out.extend_from_slice(self.model_version.as_bytes());
        out.extend_from_slice(&n.to_le_bytes());
        let from = match seal {
            Some((_, nonce, _)) => {
                out.extend_from_slice(&nonce);
                out.len()
            }
            None => out.len(),
        };
        for v in &self.embedding {
            out.extend_from_slice(&v.to_le_bytes());
        }
        if let Some((key, nonce, aad)) = seal {
            key.seal_tail(nonce, aad, &mut out, from);
        }
        Ok(out)
    }

    /// Decodes a row; `key` opens a sealed embedding.
    fn decode(face_id: u128, row: &[u8], key: Option<&AeadKey>, aad: &[u8]) -> Result<Self> {
        let bad = |what: &str| StoreError::Index(format!("face row: {what}"));
        let (&version, b) = row.split_first().ok_or_else(|| bad("empty"))?;
        if version != FACE_ROW_VERSION {
            return Err(StoreError::FormatVersion {
                what: "a face row".into(),
                found: u32::from(version),
                supported: u32::from(FACE_ROW_VERSION),
            });
        }
        let (&flags, b) = b.split_first().ok_or_else(|| bad("truncated"))?;
        let (image_id, b) = b
            .split_first_chunk::<16>()
            .ok_or_else(|| bad("truncated"))?;
        let (confidence, mut b) = b.split_first_chunk::<4>().ok_or_else(|| bad("truncated"))?;
        let mut bounding_box = [0f32; 4];
        for v in &mut bounding_box {
            let (x, rest) = b.split_first_chunk::<4>().ok_or_else(|| bad("truncated"))?;
            *v = f32::from_le_bytes(*x);
            b = rest;
        }
        let (ext_len, b) = b.split_first_chunk::<2>().ok_or_else(|| bad("truncated"))?;
        let (ext, b) = b
            .split_at_checked(usize::from(u16::from_le_bytes(*ext_len)))
            .ok_or_else(|| bad("truncated"))?;
        let (&model_len, b) = b.split_first().ok_or_else(|| bad("truncated"))?;
        let (model, b) = b
            .split_at_checked(usize::from(model_len))
            .ok_or_else(|| bad("truncated"))?;
        let (n, b) = b.split_first_chunk::<2>().ok_or_else(|| bad("truncated"))?;
        let n = usize::from(u16::from_le_bytes(*n));
        let plain: Vec<u8> = if flags & FLAG_SEALED != 0 {
            let key = key.ok_or_else(|| bad("sealed, and no key"))?;
            let (nonce, ct) = b
                .split_first_chunk::<NONCE_LEN>()
                .ok_or_else(|| bad("truncated"))?;
            let mut buf = ct.to_vec();
            let len =
                key.open(*nonce, aad, &mut buf)
                    .ok_or_else(|| StoreError::Authentication {
                        what: format!("the embedding of face {face_id:032x}"),
                    })?;
            buf.truncate(len);
            buf
        } else {
            b.to_vec()
        };
        if plain.len() != 4 * n {
            return Err(bad("embedding length"));
        }
        let embedding = plain
            .as_chunks::<4>()
            .0
            .iter()
            .map(|c| f32::from_le_bytes(*c))
            .collect();
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| bad("not UTF-8"));
        Ok(Self {
            face_id,
            image_id: u128::from_be_bytes(*image_id),
            external_image_id: if ext.is_empty() {
                None
            } else {
                Some(text(ext)?)
            },
            bounding_box,
            confidence: f32::from_le_bytes(*confidence),
            model_version: text(model)?,
            embedding,
        })
    }
}

fn is_sealed(row: &[u8]) -> bool {
    row.get(1).is_some_and(|f| f & FLAG_SEALED != 0)
}

fn face_aad(collection: u64, face: u128) -> Vec<u8> {
    let mut aad = Vec::with_capacity(34);
    aad.extend_from_slice(b"vigil-fe");
    aad.extend_from_slice(&collection.to_be_bytes());
    aad.extend_from_slice(&face.to_be_bytes());
    aad
}

impl Store {
    /// Creates a face collection with a fresh data key, durably.
    pub fn create_collection(
        &self,
        name: &str,
        face_model_version: &str,
        tags: BTreeMap<String, String>,
    ) -> Result<CollectionRecord> {
        self.check_writable()?;
        self.check_space()?;
        if name.is_empty() {
            return Err(StoreError::InvalidArgument(
                "a collection needs a name".into(),
            ));
        }
        let kms_key_id = self.0.keys.default_id().to_owned();
        let master = self.0.keys.get(&kms_key_id)?;
        let _g = lock(&self.0.control);
        if self.0.index.collection(name)?.is_some() {
            return Err(StoreError::CollectionExists(name.to_owned()));
        }
        let id = self.0.index.meta("next_collection_id")?.unwrap_or(1);
        self.0.index.set_meta("next_collection_id", id + 1)?;
        let key = random_bytes::<KEY_LEN>()?;
        let wrapped = WrappedKey {
            master_id: kms_key_id.clone(),
            wrapped: master.wrap_collection_key(id, &key)?,
        };
        let record = CollectionRecord {
            v: COLLECTION_RECORD_VERSION,
            id,
            name: name.to_owned(),
            creation_time_ms: self.0.clock.now_ms(),
            face_model_version: face_model_version.to_owned(),
            face_count: 0,
            kms_key_id,
            tags,
        };
        self.0.index.create_collection(&record, &wrapped)?;
        lock(&self.0.collection_keys).insert(id, Arc::new(AeadKey::new(&key)));
        Ok(record)
    }

    /// Changes a face collection's tags with `f` (under the store's control lock, so that
    /// concurrent changes do not lose each other's); durable on return.
    pub fn update_collection_tags<E: From<StoreError>>(
        &self,
        name: &str,
        f: impl FnOnce(&mut BTreeMap<String, String>) -> std::result::Result<(), E>,
    ) -> std::result::Result<CollectionRecord, E> {
        self.check_writable()?;
        self.check_space()?;
        let _g = lock(&self.0.control);
        let rec = self
            .0
            .index
            .collection(name)?
            .ok_or_else(|| StoreError::CollectionNotFound(name.to_owned()))?;
        let mut tags = rec.tags;
        f(&mut tags)?;
        Ok(self.0.index.set_collection_tags(name, &tags)?)
    }

    /// A face collection.
    pub fn collection(&self, name: &str) -> Result<CollectionRecord> {
        self.0
            .index
            .collection(name)?
            .ok_or_else(|| StoreError::CollectionNotFound(name.to_owned()))
    }

    /// Face collections in name order after `after`, at most `limit`.
    pub fn list_collections(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<CollectionRecord>> {
        self.0.index.list_collections(after, limit)
    }

    /// Deletes a face collection with its key and all its faces, durably.
    pub fn delete_collection(&self, name: &str) -> Result<CollectionRecord> {
        self.check_writable()?;
        self.check_space_to_delete()?;
        let _g = lock(&self.0.control);
        let rec = self
            .0
            .index
            .delete_collection(name)?
            .ok_or_else(|| StoreError::CollectionNotFound(name.to_owned()))?;
        lock(&self.0.collection_keys).remove(&rec.id);
        Ok(rec)
    }

    fn collection_data_key(&self, rec: &CollectionRecord) -> Result<Arc<AeadKey>> {
        if let Some(k) = lock(&self.0.collection_keys).get(&rec.id) {
            return Ok(k.clone());
        }
        let wrapped =
            self.0
                .index
                .collection_key(rec.id)?
                .ok_or_else(|| StoreError::Authentication {
                    what: format!("the key of face collection {} (missing)", rec.name),
                })?;
        let master = self.0.keys.get(&wrapped.master_id)?;
        let key = Arc::new(master.unwrap_collection_key(rec.id, &wrapped.wrapped)?);
        lock(&self.0.collection_keys).insert(rec.id, key.clone());
        Ok(key)
    }

    /// Adds faces to a collection, durably (embeddings sealed); returns the updated record.
    pub fn add_faces(&self, name: &str, faces: &[StoredFace]) -> Result<CollectionRecord> {
        self.check_writable()?;
        self.check_space()?;
        let rec = self.collection(name)?;
        let key = if self.0.cfg.encryption {
            Some(self.collection_data_key(&rec)?)
        } else {
            None
        };
        let mut rows = Vec::with_capacity(faces.len());
        for f in faces {
            let aad = face_aad(rec.id, f.face_id);
            let seal = key
                .as_deref()
                .map(|k| (k, self.0.nonces.next(), aad.as_slice()));
            rows.push((f.face_id, f.encode(seal)?));
        }
        let updated = self.0.index.add_faces(name, &rows)?;
        if updated.id != rec.id {
            // Deleted and created again between the two reads: these rows were sealed for the
            // old collection's key, so they must not stay in the new one.
            let ids: Vec<u128> = faces.iter().map(|f| f.face_id).collect();
            self.0.index.remove_faces(name, &ids)?;
            return Err(StoreError::CollectionNotFound(name.to_owned()));
        }
        Ok(updated)
    }

    /// Removes faces from a collection, durably; returns the ids that were there.
    pub fn delete_faces(&self, name: &str, faces: &[u128]) -> Result<Vec<u128>> {
        self.check_writable()?;
        self.check_space_to_delete()?;
        self.0.index.remove_faces(name, faces)
    }

    /// A collection's faces in face id order after `after`, at most `limit`, embeddings
    /// opened.
    pub fn faces(
        &self,
        rec: &CollectionRecord,
        after: Option<u128>,
        limit: usize,
    ) -> Result<Vec<StoredFace>> {
        let rows = self.0.index.faces(rec.id, after, limit)?;
        let key = if rows.iter().any(|(_, row)| is_sealed(row)) {
            Some(self.collection_data_key(rec)?)
        } else {
            None
        };
        rows.iter()
            .map(|(id, row)| StoredFace::decode(*id, row, key.as_deref(), &face_aad(rec.id, *id)))
            .collect()
    }

    /// One face of a collection.
    pub fn face(&self, rec: &CollectionRecord, face_id: u128) -> Result<Option<StoredFace>> {
        let Some(row) = self.0.index.face(rec.id, face_id)? else {
            return Ok(None);
        };
        let key = if is_sealed(&row) {
            Some(self.collection_data_key(rec)?)
        } else {
            None
        };
        StoredFace::decode(face_id, &row, key.as_deref(), &face_aad(rec.id, face_id)).map(Some)
    }
}

/// The size of a sealed row's overhead beyond the plain row: nonce and tag.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    fn face(id: u128) -> StoredFace {
        StoredFace {
            face_id: id,
            image_id: 0xabcdef,
            external_image_id: Some("door:2026-01-01".into()),
            bounding_box: [0.1, 0.2, 0.3, 0.4],
            confidence: 99.5,
            model_version: "7.0".into(),
            embedding: (0..512).map(|i| i as f32 / 512.0).collect(),
        }
    }

    #[test]
    fn rows_round_trip_sealed_and_plain() {
        let key = AeadKey::new(&[3; 32]);
        let f = face(42);
        let aad = face_aad(1, 42);
        let sealed = f.encode(Some((&key, [9; 12], &aad))).unwrap();
        let plain = f.encode(None).unwrap();
        assert_eq!(sealed.len(), plain.len() + SEAL_OVERHEAD);
        assert_eq!(
            StoredFace::decode(42, &sealed, Some(&key), &aad).unwrap(),
            f
        );
        assert_eq!(StoredFace::decode(42, &plain, None, &aad).unwrap(), f);
        // The embedding's bytes are not in the sealed row.
        let needle: Vec<u8> = f.embedding[100..104]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert!(plain.windows(16).any(|w| w == needle.as_slice()));
        assert!(!sealed.windows(16).any(|w| w == needle.as_slice()));
        // Another face's or collection's associated data, another key: refused.
        assert!(matches!(
            StoredFace::decode(43, &sealed, Some(&key), &face_aad(1, 43)),
            Err(StoreError::Authentication { .. })
        ));
        assert!(StoredFace::decode(42, &sealed, Some(&key), &face_aad(2, 42)).is_err());
        assert!(StoredFace::decode(42, &sealed, Some(&AeadKey::new(&[4; 32])), &aad).is_err());
        // Every truncation is an error, never a panic.
        for n in 0..sealed.len() {
            assert!(StoredFace::decode(42, &sealed[..n], Some(&key), &aad).is_err());
        }
        let mut no_ext = f.clone();
        no_ext.external_image_id = None;
        let row = no_ext.encode(None).unwrap();
        assert_eq!(StoredFace::decode(42, &row, None, &aad).unwrap(), no_ext);
    }
}
