//! What the store checks in its data directory before it opens it, and what it refuses.
//!
//! The index (`index.redb`) is the only place that holds the stream records, their wrapped
//! data keys and track headers, the log groups, face collections and documents; the default
//! master key (`keys/default.key`) is the only way to unwrap the data keys under it. Starting
//! over without either would look like a working server with every stream gone or unreadable.
//! So the store makes them only in a **new** data directory, and otherwise refuses to open
//! with a [`StoreError::DataDir`] that names the file and says what to do:
//!
//! | found | when | then |
//! |---|---|---|
//! | `index.redb` absent, or empty (0 bytes, or a database without the store's tables) | no segment file and no `index.redb.bak` | a new store: the index is created |
//! | the same | a segment file or `index.redb.bak` exists | refused: restore the index (`crate::backup`) |
//! | an index nothing was ever written to (a new one in place of the old) | a segment file exists | refused likewise |
//! | `index.redb` cut short, overwritten, or failing redb's checks | always | refused, never a panic (`index::Unusable`) |
//! | `keys/default.key` absent | the index was new | created (mode 0600, synced) |
//! | the same | some stream, log group or face collection has a key wrapped under it | refused: restore the key file |
//! | the same | nothing is wrapped under it | created, and reported as a repair |
//! | `keys/default.key` not a key file | always | refused |
//!
//! A key file that parses but holds other bytes than the ones the data keys were wrapped with
//! is not detected here: the store opens and every read under it fails authentication, which
//! `vigil check` reports fragment by fragment. Master keys supplied by configuration are
//! likewise the operator's to keep: a stream under one that is not configured fails its reads
//! with [`StoreError::KeyNotFound`].
//!
//! Nothing is written to a data directory that is refused (its `LOCK` file aside), so the
//! same refusal comes back on every try until the file is restored.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::blob::BlobStore;
use crate::crypto::MasterKey;
use crate::engine::DEFAULT_MASTER_KEY_ID;
use crate::error::{Result, StoreError};
use crate::fs::Fs;
use crate::index::{Index, RedbIndex, Unusable};

/// The index file, in the data directory.
pub const INDEX_FILE: &str = "index.redb";
/// The backup of the index the store keeps beside it ([`crate::backup`]).
pub const BACKUP_FILE: &str = "index.redb.bak";
/// The default master key's file, under the data directory.
pub const KEY_FILE: &str = "keys/default.key";

/// Where to read about all this.
const DOCS: &str = "docs/storage.md, \"A damaged data directory\"";

/// Takes the data directory's lock.
pub(crate) fn lock_dir(fs: &dyn Fs, dir: &Path) -> Result<Box<dyn std::any::Any + Send + Sync>> {
    fs.lock(&dir.join("LOCK")).map_err(|e| {
        if e.kind() == std::io::ErrorKind::WouldBlock {
            StoreError::Locked(dir.display().to_string())
        } else {
            StoreError::io(format!("locking {}", dir.display()), e)
        }
    })
}

/// The index, and whether it was made just now (a new data directory).
pub(crate) struct OpenedIndex {
    pub(crate) index: Arc<RedbIndex>,
    pub(crate) fresh: bool,
}

/// Opens the data directory's index, creating it only in a new data directory (see the
/// module docs).
pub(crate) fn open_index(fs: &dyn Fs, dir: &Path, blobs: &dyn BlobStore) -> Result<OpenedIndex> {
    let path = dir.join(INDEX_FILE);
    match inspect_index(fs, dir, blobs.list()?.len())? {
        IndexState::Sound(index) => Ok(OpenedIndex {
            index: Arc::new(index),
            fresh: false,
        }),
        IndexState::New => {
            let file = fs
                .open(&path, true)
                .map_err(|e| StoreError::io(format!("creating {}", path.display()), e))?;
            Ok(OpenedIndex {
                index: Arc::new(RedbIndex::open(file)?),
                fresh: true,
            })
        }
        IndexState::Refused(e) => Err(e),
    }
}

/// What the data directory's index file is.
pub(crate) enum IndexState {
    /// An index, open.
    Sound(RedbIndex),
    /// None (absent, or blank) in a new data directory: one may be created.
    New,
    /// Missing or unusable where data exists: the refusal.
    Refused(StoreError),
}

/// Looks at the index of `dir`, where `segments` segment files exist, creating nothing.
pub(crate) fn inspect_index(fs: &dyn Fs, dir: &Path, segments: usize) -> Result<IndexState> {
    let path = dir.join(INDEX_FILE);
    let backup = fs.exists(&dir.join(BACKUP_FILE));
    let blank_ok = segments == 0 && !backup;
    if !fs.exists(&path) {
        if blank_ok {
            return Ok(IndexState::New);
        }
        return Ok(IndexState::Refused(index_error(
            dir,
            "is missing",
            segments,
            backup,
        )));
    }
    let file = fs
        .open(&path, false)
        .map_err(|e| StoreError::io(format!("opening {}", path.display()), e))?;
    Ok(match RedbIndex::open_existing(file)? {
        Ok(index) if segments > 0 && never_used(&index)? => IndexState::Refused(index_error(
            dir,
            "is a new, unused index (no stream or log group was ever created in it, and it \
             knows no segment): not the one this directory's data was written with",
            segments,
            backup,
        )),
        Ok(index) => IndexState::Sound(index),
        Err(Unusable::Blank(_)) if blank_ok => IndexState::New,
        Err(why) => IndexState::Refused(index_error(dir, why.problem(), segments, backup)),
    })
}

/// Whether an index is one nothing was ever written to: no stream or log group was ever
/// created in it (their id sequences are unset; a restored backup keeps them) and it has no
/// segment row. Segment files beside such an index are not its data: it was replaced by a new
/// one. (Segments come only from streams and log groups, and the first durable write after a
/// segment's creation makes its row durable.)
fn never_used(index: &RedbIndex) -> Result<bool> {
    Ok(index.meta("next_stream_id")?.is_none()
        && index.meta("next_log_group_id")?.is_none()
        && index.segments()?.is_empty())
}

/// The refusal of an index that is missing or unusable.
pub(crate) fn index_error(dir: &Path, problem: &str, segments: usize, backup: bool) -> StoreError {
    let problem = if segments > 0 {
        format!("{problem}, but segments/ holds {segments} segment file(s)")
    } else {
        problem.to_owned()
    };
    let remedy = if backup {
        format!(
            "The index alone holds the streams, their data keys and track headers, so Vigil \
             will not start without it. Restore it from the backup the server keeps \
             ({BACKUP_FILE}) with `vigil check --restore-index --data-dir {}` (see {DOCS})",
            dir.display()
        )
    } else {
        format!(
            "The index alone holds the streams, their data keys and track headers, so Vigil \
             will not start without it, and there is no {BACKUP_FILE} to restore it from: \
             restore {INDEX_FILE} from your backup of the data directory (see {DOCS})"
        )
    };
    StoreError::DataDir {
        file: dir.join(INDEX_FILE).display().to_string(),
        problem,
        remedy,
    }
}

/// What is wrapped under one master key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyUse {
    /// Streams with a data key (any generation) wrapped under it.
    pub streams: usize,
    /// Log groups likewise.
    pub log_groups: usize,
    /// Face collections likewise.
    pub collections: usize,
}

impl KeyUse {
    /// Counts what the index has wrapped under master key `master`.
    pub fn of(index: &dyn Index, master: &str) -> Result<Self> {
        let mut u = Self::default();
        for s in index.all_streams()? {
            if index
                .data_keys(s.id)?
                .iter()
                .any(|(_, k)| k.master_id == master)
            {
                u.streams += 1;
            }
        }
        for g in index.all_log_groups()? {
            if index
                .log_keys(g.id)?
                .iter()
                .any(|(_, k)| k.master_id == master)
            {
                u.log_groups += 1;
            }
        }
        for_each_collection(index, &mut |c| {
            if index
                .collection_key(c.id)?
                .is_some_and(|k| k.master_id == master)
            {
                u.collections += 1;
            }
            Ok(())
        })?;
        Ok(u)
    }

    /// Whether anything is.
    pub fn any(&self) -> bool {
        self.streams + self.log_groups + self.collections > 0
    }
}

impl fmt::Display for KeyUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = [
            (self.streams, "stream(s)"),
            (self.log_groups, "data stream log group(s)"),
            (self.collections, "face collection(s)"),
        ]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        f.write_str(&parts.join(", "))
    }
}

fn for_each_collection(
    index: &dyn Index,
    f: &mut dyn FnMut(&crate::faces::CollectionRecord) -> Result<()>,
) -> Result<()> {
    let mut after: Option<String> = None;
    loop {
        let page = index.list_collections(after.as_deref(), 1000)?;
        for c in &page {
            f(c)?;
        }
        match page.last() {
            Some(last) if page.len() == 1000 => after = Some(last.name.clone()),
            _ => return Ok(()),
        }
    }
}

/// The face collections in an index.
pub(crate) fn count_collections(index: &dyn Index) -> Result<usize> {
    let mut n = 0;
    for_each_collection(index, &mut |_| {
        n += 1;
        Ok(())
    })?;
    Ok(n)
}

/// Loads the default master key, creating it only where that loses nothing (see the module
/// docs); a repair made is pushed to `repairs`.
pub(crate) fn default_key(
    fs: &dyn Fs,
    dir: &Path,
    index: &dyn Index,
    fresh: bool,
    repairs: &mut Vec<String>,
) -> Result<MasterKey> {
    let path = dir.join(KEY_FILE);
    let file = path.display().to_string();
    match MasterKey::load(fs, &path, DEFAULT_MASTER_KEY_ID) {
        Ok(Some(key)) => return Ok(key),
        Ok(None) => {}
        Err(StoreError::Corrupt { detail, .. }) => {
            let uses = KeyUse::of(index, DEFAULT_MASTER_KEY_ID)?;
            let remedy = if uses.any() {
                format!(
                    "The data keys of {uses} are wrapped under it: restore {KEY_FILE} from your \
                     backup of it (see {DOCS})"
                )
            } else {
                format!(
                    "Nothing stored is wrapped under it: if you do not need it, delete it and \
                     Vigil makes a new one (see {DOCS})"
                )
            };
            return Err(StoreError::DataDir {
                file,
                problem: format!("is unreadable: {detail}"),
                remedy,
            });
        }
        Err(e) => return Err(e),
    }
    if fresh {
        return MasterKey::create(fs, &path, DEFAULT_MASTER_KEY_ID);
    }
    let uses = KeyUse::of(index, DEFAULT_MASTER_KEY_ID)?;
    if uses.any() {
        return Err(StoreError::DataDir {
            file,
            problem: format!(
                "is missing, but the data keys of {uses} are wrapped under it (master key \
                 {DEFAULT_MASTER_KEY_ID:?})"
            ),
            remedy: format!(
                "Restore {KEY_FILE} from your backup of it. Vigil does not make a new one: \
                 nothing stored under the old one could be read with it (see {DOCS})"
            ),
        });
    }
    let key = MasterKey::create(fs, &path, DEFAULT_MASTER_KEY_ID)?;
    repairs.push(format!(
        "created {file}: it was missing, and nothing stored is wrapped under it"
    ));
    Ok(key)
}
