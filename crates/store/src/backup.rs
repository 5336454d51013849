//! The index backup `index.redb.bak`, and restoring a lost or damaged index from it.
//!
//! # Why a backup, and why only part of the index
//!
//! The segments cannot rebuild the whole index: a record's plaintext header carries its stream
//! (or log group) id, number, timestamps and key generation (`crate::record`), but not the
//! stream's name or settings, its wrapped data keys, its track headers, nor anything of log
//! groups, face collections or documents; those live in the index alone. What the segments do
//! carry, the fragment and log batch index, is rebuilt by recovery. So the store keeps a copy of
//! exactly the first part ([`crate::index::BACKED_UP`]), which is small (no row per fragment),
//! and a restore puts it in place with the second part empty, for the next open to re-index
//! every segment from its start.
//!
//! # What is on disk when
//!
//! - The backup is a redb database of its own, written from one read transaction of the live
//!   index (a consistent snapshot, taken without blocking writes) into `index.redb.bak.tmp`,
//!   committed durably, then renamed over `index.redb.bak` and the directory synced. At every
//!   moment `index.redb.bak` is a whole backup: the previous one or the new one.
//! - A backup is taken when the index's metadata changed since the last one (a stream,
//!   log group or collection created, changed or deleted, a data key rotated, a track header
//!   registered, a face added, a document written): by a background thread at most every
//!   `index_backup_interval_ms` (default 10 s), and when the store closes; and once after every
//!   open (the index may hold changes a crash kept out of the backup).
//! - So after a clean shutdown the backup is current; after a crash it misses at most the
//!   metadata changes of the last `index_backup_interval_ms`.
//!
//! # Restoring
//!
//! [`restore_index`] (`vigil check --restore-index`) runs with the store closed, and only if
//! `index.redb` is missing or unusable (see [`crate::datadir`]): it copies the backup to
//! `index.redb.restoring`, opens it as an index (which checks it and creates the empty tables
//! recovery fills), keeps the damaged index as `index.redb.damaged`, renames the copy to
//! `index.redb` and syncs the directory. Opening the store then re-indexes every record of every
//! segment. What that gives back, and what it cannot:
//!
//! - every fragment and log batch in the segments whose stream or log group, and data key
//!   generation, are in the backup reads back byte-identical; so does every one that was
//!   acknowledged before the last metadata change the backup holds;
//! - lost: the metadata changes after the backup, and with them the media that needs them: a
//!   stream or log group created since (its data key is gone, so its records cannot be
//!   decrypted), fragments under a data key rotated since, the track headers registered since
//!   (their fragments read back, but cannot be played), collections and faces added since,
//!   changes to settings, tags and documents;
//! - back again: what was deleted since the backup (a stream deleted since comes back, with
//!   whatever of its media the segments still hold), and index entries that retention removed
//!   or `vigil check --repair` dropped while their segment remained (retention removes the
//!   expired ones again on its next pass; the damaged ones are reported again).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::datadir::{BACKUP_FILE, INDEX_FILE, IndexState, inspect_index, lock_dir};
use crate::engine::lock;
use crate::error::{Result, StoreError};
use crate::fs::Fs;
use crate::index::{BackupSummary, Index, RedbIndex};
use crate::logs::LogGroupStatus;
use crate::types::StreamStatus;

/// Where a backup is written before it replaces the last one.
const BACKUP_TMP: &str = "index.redb.bak.tmp";
/// Where a restored index is prepared before it replaces the damaged one.
const RESTORE_TMP: &str = "index.redb.restoring";
/// What a restore renames the damaged index to.
pub const DAMAGED_FILE: &str = "index.redb.damaged";

/// Takes the backups of one open store's index.
#[derive(Debug)]
pub(crate) struct IndexBackup {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    index: Arc<RedbIndex>,
    /// The index's change count the newest backup holds (`None`: none is current).
    taken: Mutex<Option<u64>>,
}

impl IndexBackup {
    pub(crate) fn new(fs: Arc<dyn Fs>, dir: PathBuf, index: Arc<RedbIndex>) -> Self {
        Self {
            fs,
            dir,
            index,
            taken: Mutex::new(None),
        }
    }

    /// Called once the store is open. Nothing is counted as backed up yet: after a crash (or
    /// a backup that failed at close) the index may hold metadata changes the backup lacks,
    /// so the first backup pass after every open writes a fresh one.
    pub(crate) fn opened(&self) {
        *lock(&self.taken) = None;
    }

    /// Takes a backup if the index changed since the last one; returns what it holds, or
    /// `None` if the last one is current.
    pub(crate) fn refresh(&self) -> Result<Option<BackupSummary>> {
        let mut taken = lock(&self.taken);
        // Read before the snapshot: a change counted after it may be in the backup already,
        // and only costs another one.
        let now = self.index.changes();
        if *taken == Some(now) {
            return Ok(None);
        }
        let summary = self.take()?;
        *taken = Some(now);
        Ok(Some(summary))
    }

    fn take(&self) -> Result<BackupSummary> {
        let fs = self.fs.as_ref();
        let tmp = self.dir.join(BACKUP_TMP);
        let io = |e| StoreError::io(format!("writing {}", tmp.display()), e);
        if fs.exists(&tmp) {
            fs.remove(&tmp).map_err(io)?;
        }
        let written = fs.open(&tmp, true).map_err(io).and_then(|file| {
            let summary = self.index.backup_into(file.clone())?;
            file.sync_data().map_err(io)?;
            Ok(summary)
        });
        let summary = match written {
            Ok(summary) => summary,
            Err(e) => {
                // A copy cut short (a full disk) gives its space back at once, not at the
                // next try: the index may need it.
                let _ = fs.remove(&tmp);
                return Err(e);
            }
        };
        if let Err(e) = fs.rename(&tmp, &self.dir.join(BACKUP_FILE)) {
            let _ = fs.remove(&tmp);
            return Err(io(e));
        }
        fs.sync_dir(&self.dir).map_err(io)?;
        Ok(summary)
    }
}

/// What [`restore_index`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// What was wrong with the index it replaced.
    pub problem: String,
    /// Where the damaged index was kept (`None`: there was none).
    pub kept_damaged: Option<PathBuf>,
    /// Active streams in the restored index.
    pub streams: usize,
    /// Active log groups in it.
    pub log_groups: usize,
    /// Face collections in it.
    pub collections: usize,
}

/// Restores the index of the data directory `dir` on the real filesystem from its backup:
/// see the module docs.
pub fn restore_index(dir: &Path) -> Result<RestoreReport> {
    restore_index_with(&crate::fs::StdFs, dir)
}

fn copy_file(fs: &dyn Fs, from: &Path, to: &Path) -> Result<()> {
    let io = |e| StoreError::io(format!("copying {} to {}", from.display(), to.display()), e);
    let src = fs.open(from, false).map_err(io)?;
    if fs.exists(to) {
        fs.remove(to).map_err(io)?;
    }
    let dst = fs.open(to, true).map_err(io)?;
    let len = src.len().map_err(io)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < len {
        let n = usize::try_from((len - at).min(1 << 20)).unwrap_or(1 << 20);
        let chunk = buf
            .get_mut(..n)
            .ok_or_else(|| io(std::io::Error::from(std::io::ErrorKind::InvalidInput)))?;
        src.read_at(at, chunk).map_err(io)?;
        dst.write_at(at, chunk).map_err(io)?;
        at += n as u64;
    }
    dst.sync_data().map_err(io)
}

/// [`restore_index`] on a given filesystem.
pub fn restore_index_with(fs: &dyn Fs, dir: &Path) -> Result<RestoreReport> {
    let _lock = lock_dir(fs, dir)?;
    let index_path = dir.join(INDEX_FILE);
    let backup = dir.join(BACKUP_FILE);
    if !fs.exists(&backup) {
        return Err(StoreError::DataDir {
            file: backup.display().to_string(),
            problem: "is missing".into(),
            remedy: format!(
                "There is no backup index to restore: restore {INDEX_FILE} from your backup of \
                 the data directory"
            ),
        });
    }
    let segments = fs
        .list(&dir.join("segments"))
        .map(|names| names.iter().filter(|n| n.ends_with(".seg")).count())
        .unwrap_or(0);
    let problem = match inspect_index(fs, dir, segments)? {
        IndexState::Sound(_) => {
            return Err(StoreError::InvalidArgument(format!(
                "{} is sound: restoring would replace it with the older backup, so only a \
                 missing or damaged index is restored",
                index_path.display()
            )));
        }
        IndexState::Refused(StoreError::DataDir { problem, .. }) => problem,
        IndexState::Refused(e) => return Err(e),
        // A backup exists, so the index is never taken for a new one.
        IndexState::New => "is missing".to_owned(),
    };

    let tmp = dir.join(RESTORE_TMP);
    copy_file(fs, &backup, &tmp)?;
    let (streams, log_groups, collections) = {
        let file = fs
            .open(&tmp, false)
            .map_err(|e| StoreError::io(format!("opening {}", tmp.display()), e))?;
        let index = match RedbIndex::open_existing(file.clone())? {
            Ok(index) => index,
            Err(why) => {
                return Err(StoreError::DataDir {
                    file: backup.display().to_string(),
                    problem: why.problem().to_owned(),
                    remedy: format!(
                        "The backup is damaged too: restore {INDEX_FILE} from your backup of the \
                         data directory"
                    ),
                });
            }
        };
        let streams = index
            .all_streams()?
            .iter()
            .filter(|s| s.status == StreamStatus::Active)
            .count();
        let groups = index
            .all_log_groups()?
            .iter()
            .filter(|g| g.status == LogGroupStatus::Active)
            .count();
        let collections = crate::datadir::count_collections(&index)?;
        index.checkpoint()?;
        drop(index);
        file.sync_data()
            .map_err(|e| StoreError::io(format!("writing {}", tmp.display()), e))?;
        (streams, groups, collections)
    };
    let rename = |from: &Path, to: &Path| {
        fs.rename(from, to).map_err(|e| {
            StoreError::io(
                format!("renaming {} to {}", from.display(), to.display()),
                e,
            )
        })
    };
    let kept_damaged = if fs.exists(&index_path) {
        let damaged = dir.join(DAMAGED_FILE);
        rename(&index_path, &damaged)?;
        Some(damaged)
    } else {
        None
    };
    rename(&tmp, &index_path)?;
    fs.sync_dir(dir)
        .map_err(|e| StoreError::io(format!("syncing {}", dir.display()), e))?;
    Ok(RestoreReport {
        problem,
        kept_damaged,
        streams,
        log_groups,
        collections,
    })
}
