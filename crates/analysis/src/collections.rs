//! The searchable side of face collections: per collection, a [`FaceIndex`] of its embeddings
//! and the metadata search results show, kept in memory and filled from the store.
//!
//! The store is the truth; memory follows it. A collection is loaded on first use (every
//! face, in pages, through [`Store::faces`]), and [`Collections::warm_up`] loads them all at
//! server start. Every change goes to the store first (durably) and then to memory, under the
//! collection's write lock, so a search never sees a face the store does not have, and a face
//! the store has is searchable once the call that added it has answered. A collection is
//! identified by its store id as well as its name, so one deleted and created again (by this
//! or another handle on the store) is never served from the old one's memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use vigil_faces::EMBEDDING_DIM;
use vigil_faces::index::{FaceIndex, IndexConfig};
use vigil_store::{CollectionRecord, Store, StoredFace};

use crate::error::{Error, Result};

/// Faces read from the store per page while loading.
const LOAD_PAGE: usize = 1000;

/// What a search result shows of a face, besides its similarity.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceMeta {
    /// `ImageId`.
    pub image_id: u128,
    /// `ExternalImageId`.
    pub external_image_id: Option<String>,
    /// Left, top, width, height as ratios of the image.
    pub bounding_box: [f32; 4],
    /// 0-100.
    pub confidence: f32,
    /// `IndexFacesModelVersion`.
    pub model_version: String,
}

impl FaceMeta {
    fn of(f: &StoredFace) -> Self {
        Self {
            image_id: f.image_id,
            external_image_id: f.external_image_id.clone(),
            bounding_box: f.bounding_box,
            confidence: f.confidence,
            model_version: f.model_version.clone(),
        }
    }
}

/// One collection in memory.
#[derive(Debug)]
pub struct Loaded {
    /// The store's id of the collection this memory is of.
    pub id: u64,
    /// Its embeddings.
    pub index: FaceIndex,
    /// Its faces' metadata, by face id.
    pub faces: HashMap<u128, FaceMeta>,
}

impl Loaded {
    /// Adds faces already stored.
    pub fn add(&mut self, faces: &[StoredFace]) -> Result<()> {
        for f in faces {
            self.index.insert(f.face_id, &f.embedding).map_err(|e| {
                Error::Internal(format!("face {:032x} cannot be indexed: {e}", f.face_id))
            })?;
            self.faces.insert(f.face_id, FaceMeta::of(f));
        }
        Ok(())
    }

    /// Removes faces already removed from the store.
    pub fn remove(&mut self, ids: &[u128]) {
        for id in ids {
            self.index.remove(*id);
            self.faces.remove(id);
        }
    }
}

#[derive(Debug)]
struct Slot {
    state: RwLock<Option<Loaded>>,
}

/// Every collection in memory, by name.
#[derive(Debug)]
pub struct Collections {
    map: Mutex<HashMap<String, Arc<Slot>>>,
    cfg: IndexConfig,
}

fn not_loaded() -> Error {
    Error::Internal("a face collection did not load".into())
}

impl Default for Collections {
    fn default() -> Self {
        Self::new(IndexConfig::default())
    }
}

impl Collections {
    /// No collection loaded yet; indexes built with `cfg`.
    pub fn new(cfg: IndexConfig) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            cfg,
        }
    }

    fn slot(&self, name: &str) -> Arc<Slot> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(name.to_owned())
            .or_insert_with(|| {
                Arc::new(Slot {
                    state: RwLock::new(None),
                })
            })
            .clone()
    }

    /// Forgets a collection's memory (after it was deleted).
    pub fn forget(&self, name: &str) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(name);
    }

    /// Loads `rec`'s faces from the store into `state` unless it holds them already.
    fn ensure(
        &self,
        store: &Store,
        rec: &CollectionRecord,
        state: &mut Option<Loaded>,
    ) -> Result<()> {
        if state.as_ref().is_some_and(|l| l.id == rec.id) {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let mut loaded = Loaded {
            id: rec.id,
            index: FaceIndex::new(EMBEDDING_DIM, self.cfg),
            faces: HashMap::new(),
        };
        let mut after = None;
        loop {
            let page = store.faces(rec, after, LOAD_PAGE)?;
            loaded.add(&page)?;
            match page.last() {
                Some(f) if page.len() == LOAD_PAGE => after = Some(f.face_id),
                _ => break,
            }
        }
        tracing::info!(
            collection = rec.name,
            faces = loaded.faces.len(),
            approximate = loaded.index.is_approximate(),
            ms = started.elapsed().as_millis() as u64,
            "face collection loaded"
        );
        *state = Some(loaded);
        Ok(())
    }

    /// The collection `rec`, loaded, for searching. Blocking (may load from the store).
    pub fn read<T, E: From<Error>>(
        &self,
        store: &Store,
        rec: &CollectionRecord,
        f: impl FnOnce(&Loaded) -> Result<T, E>,
    ) -> Result<T, E> {
        let slot = self.slot(&rec.name);
        {
            let guard = slot.state.read().unwrap_or_else(|e| e.into_inner());
            if let Some(loaded) = guard.as_ref().filter(|l| l.id == rec.id) {
                return f(loaded);
            }
        }
        let mut guard = slot.state.write().unwrap_or_else(|e| e.into_inner());
        self.ensure(store, rec, &mut guard)?;
        match guard.as_ref() {
            Some(loaded) => f(loaded),
            None => Err(not_loaded().into()),
        }
    }

    /// The collection `name`, loaded and locked for writing, with its current record: for
    /// changes, which go to the store and then to `Loaded` under this lock. Blocking.
    pub fn write<T, E: From<Error>>(
        &self,
        store: &Store,
        name: &str,
        f: impl FnOnce(&CollectionRecord, &mut Loaded) -> Result<T, E>,
    ) -> Result<T, E> {
        let slot = self.slot(name);
        let mut guard = slot.state.write().unwrap_or_else(|e| e.into_inner());
        let rec = store.collection(name).map_err(Error::from)?;
        self.ensure(store, &rec, &mut guard)?;
        match guard.as_mut() {
            Some(loaded) => f(&rec, loaded),
            None => Err(not_loaded().into()),
        }
    }

    /// Loads every collection of the store (at server start, on the blocking pool).
    pub fn warm_up(&self, store: &Store) -> Result<usize> {
        let mut after: Option<String> = None;
        let mut n = 0;
        loop {
            let page = store.list_collections(after.as_deref(), 100)?;
            for rec in &page {
                self.read::<_, Error>(store, rec, |_| Ok(()))?;
                n += 1;
            }
            match page.last() {
                Some(rec) if page.len() == 100 => after = Some(rec.name.clone()),
                _ => return Ok(n),
            }
        }
    }
}
