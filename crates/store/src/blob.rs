//! The blob side of the store: segment files.
//!
//! [`BlobStore`] is the seam for other backends (object storage through `object_store`);
//! [`LocalBlobs`] keeps segments as files `segments/<id as 16 hex digits>.seg` on an [`Fs`].
//! The engine decides what goes where and when; this layer only creates, appends, syncs, reads,
//! truncates and deletes.

use std::collections::HashMap;
use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::error::{Result, StoreError};
use crate::fs::{File, Fs};
use crate::record::SegmentHeader;

/// Storage for segments.
pub trait BlobStore: Send + Sync + Debug {
    /// Creates a segment holding only its header, durably (data and directory entry).
    fn create(&self, header: &SegmentHeader) -> Result<()>;
    /// Writes bytes at an offset of a segment; durable only after [`BlobStore::sync`].
    fn write(&self, segment: u64, offset: u64, data: &[u8]) -> Result<()>;
    /// Makes a segment's writes durable.
    fn sync(&self, segment: u64) -> Result<()>;
    /// Reads `len` bytes at `offset`.
    fn read(&self, segment: u64, offset: u64, len: usize) -> Result<Vec<u8>>;
    /// A segment's length.
    fn len(&self, segment: u64) -> Result<u64>;
    /// Cuts a segment to `len` bytes, durably.
    fn truncate(&self, segment: u64, len: u64) -> Result<()>;
    /// Deletes a segment.
    fn delete(&self, segment: u64) -> Result<()>;
    /// The ids of every segment present.
    fn list(&self) -> Result<Vec<u64>>;
    /// Where a segment lives, for messages.
    fn describe(&self, segment: u64) -> String;
}

/// Segment files in a directory.
#[derive(Debug)]
pub struct LocalBlobs {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    open: Mutex<HashMap<u64, Arc<dyn File>>>,
}

impl LocalBlobs {
    /// Segments under `dir` (created if missing).
    pub fn new(fs: Arc<dyn Fs>, dir: PathBuf) -> Result<Self> {
        fs.create_dir_all(&dir)
            .map_err(|e| StoreError::io(format!("creating {}", dir.display()), e))?;
        Ok(Self {
            fs,
            dir,
            open: Mutex::default(),
        })
    }

    fn path(&self, segment: u64) -> PathBuf {
        self.dir.join(format!("{segment:016x}.seg"))
    }

    fn file(&self, segment: u64) -> Result<Arc<dyn File>> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = open.get(&segment) {
            return Ok(f.clone());
        }
        let path = self.path(segment);
        let f = self
            .fs
            .open(&path, false)
            .map_err(|e| StoreError::io(format!("opening {}", path.display()), e))?;
        // Keep a bounded number of handles.
        if open.len() >= 256 {
            open.clear();
        }
        open.insert(segment, f.clone());
        Ok(f)
    }

    fn ctx(&self, what: &str, segment: u64) -> String {
        format!("{what} {}", self.path(segment).display())
    }
}

impl BlobStore for LocalBlobs {
    fn create(&self, header: &SegmentHeader) -> Result<()> {
        let path = self.path(header.id);
        let f = self
            .fs
            .open(&path, true)
            .map_err(|e| StoreError::io(self.ctx("creating", header.id), e))?;
        f.set_len(0)
            .and_then(|()| f.write_at(0, &header.encode()))
            .and_then(|()| f.sync_data())
            .and_then(|()| self.fs.sync_dir(&self.dir))
            .map_err(|e| StoreError::io(self.ctx("creating", header.id), e))?;
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(header.id, f);
        Ok(())
    }

    fn write(&self, segment: u64, offset: u64, data: &[u8]) -> Result<()> {
        self.file(segment)?
            .write_at(offset, data)
            .map_err(|e| StoreError::io(self.ctx("writing", segment), e))
    }

    fn sync(&self, segment: u64) -> Result<()> {
        self.file(segment)?
            .sync_data()
            .map_err(|e| StoreError::io(self.ctx("syncing", segment), e))
    }

    fn read(&self, segment: u64, offset: u64, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.file(segment)?
            .read_at(offset, &mut buf)
            .map_err(|e| StoreError::io(self.ctx("reading", segment), e))?;
        Ok(buf)
    }

    fn len(&self, segment: u64) -> Result<u64> {
        self.file(segment)?
            .len()
            .map_err(|e| StoreError::io(self.ctx("reading", segment), e))
    }

    fn truncate(&self, segment: u64, len: u64) -> Result<()> {
        let f = self.file(segment)?;
        f.set_len(len)
            .and_then(|()| f.sync_data())
            .map_err(|e| StoreError::io(self.ctx("truncating", segment), e))
    }

    fn delete(&self, segment: u64) -> Result<()> {
        // The cache stays locked until the name is gone, so that no reader reopens the file
        // in between and pins its space (the floor counts on it being freed).
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.remove(&segment);
        let path = self.path(segment);
        let removed = self.fs.remove(&path);
        drop(open);
        match removed {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(self.ctx("deleting", segment), e)),
        }
        self.fs
            .sync_dir(&self.dir)
            .map_err(|e| StoreError::io(self.ctx("deleting", segment), e))
    }

    fn list(&self) -> Result<Vec<u64>> {
        let names = self
            .fs
            .list(&self.dir)
            .map_err(|e| StoreError::io(format!("listing {}", self.dir.display()), e))?;
        Ok(names
            .iter()
            .filter_map(|n| n.strip_suffix(".seg"))
            .filter(|n| n.len() == 16)
            .filter_map(|n| u64::from_str_radix(n, 16).ok())
            .collect())
    }

    fn describe(&self, segment: u64) -> String {
        self.path(segment).display().to_string()
    }
}
