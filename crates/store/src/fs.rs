//! The file layer under the store: the real filesystem, and a fault-injecting one for tests.
//!
//! Both the segment files and the index database go through [`Fs`], so a test can fail writes
//! the way a full disk does, or drop everything that was not fsynced the way a power cut does,
//! and check what the store makes of it ([`FaultFs`]).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// A directory tree of files.
pub trait Fs: Send + Sync + Debug + 'static {
    /// Opens a file for reading and writing, creating it (mode 0600) if `create`.
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn File>>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// The names of the files in a directory (not recursive).
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Creates a directory and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Makes the directory's entries (files created or removed in it) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Bytes available to unprivileged users on the filesystem holding `dir`.
    fn available_space(&self, dir: &Path) -> io::Result<u64>;
    /// Whether a file exists.
    fn exists(&self, path: &Path) -> bool;
    /// Takes an exclusive lock on a lock file, held until the returned guard drops; fails with
    /// `WouldBlock` if another process holds it.
    fn lock(&self, path: &Path) -> io::Result<Box<dyn std::any::Any + Send + Sync>>;
    /// Renames a file, replacing `to` if it exists; durable once the directory is synced.
    /// [`StdFs`] and [`FaultFs`] do it atomically; the default copies `from` to `to` (synced)
    /// and removes `from`, which a crash can leave half done.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let src = self.open(from, false)?;
        let dst = self.open(to, true)?;
        dst.set_len(0)?;
        let len = src.len()?;
        let mut buf = vec![0u8; 1 << 20];
        let mut at = 0u64;
        while at < len {
            let n = usize::try_from((len - at).min(1 << 20)).unwrap_or(1 << 20);
            let chunk = buf.get_mut(..n).ok_or(io::ErrorKind::InvalidInput)?;
            src.read_at(at, chunk)?;
            dst.write_at(at, chunk)?;
            at += n as u64;
        }
        dst.sync_data()?;
        self.remove(from)
    }
}

/// An open file.
#[allow(clippy::len_without_is_empty)]
pub trait File: Send + Sync + Debug {
    /// Its length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Reads exactly `buf.len()` bytes at `offset`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Writes all of `data` at `offset`.
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Truncates or extends (with zeros) to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes the file's data (and the length needed to read it) durable: `fdatasync`.
    fn sync_data(&self) -> io::Result<()>;
}

/// How long [`StdFs`] retries a data directory lock that is held.
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

/// The operating system's filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFs;

#[derive(Debug)]
struct StdFile(std::fs::File);

impl File for StdFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.0.write_all_at(data, offset)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
}

impl Fs for StdFs {
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn File>> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .mode(0o600)
            .open(path)?;
        Ok(Arc::new(StdFile(file)))
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file()
                && let Ok(name) = entry.file_name().into_string()
            {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::File::open(dir)?.sync_all()
    }
    fn available_space(&self, dir: &Path) -> io::Result<u64> {
        let st = rustix::fs::statvfs(dir).map_err(io::Error::from)?;
        Ok(st.f_bavail.saturating_mul(st.f_frsize))
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn lock(&self, path: &Path) -> io::Result<Box<dyn std::any::Any + Send + Sync>> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        // A lock just released can still be held for a moment: a child process forked by
        // anyone in this process shares the open file description (and its flock) until its
        // exec closes the descriptor. So a busy lock is retried for a short while before the
        // directory is reported in use by another process.
        let deadline = std::time::Instant::now() + LOCK_RETRY;
        loop {
            match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Ok(Box::new(file)),
                Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                    if std::time::Instant::now() >= deadline {
                        return Err(io::Error::from(io::ErrorKind::WouldBlock));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(io::Error::from(e)),
            }
        }
    }
}

/// An in-memory filesystem that fails and forgets on command.
///
/// Each file keeps what has been written and what has been made durable (by `sync_data`).
/// [`FaultFs::power_loss`] replaces every file by its durable content plus an arbitrary
/// subset of the writes made since (a disk may have written some of them, in any order, torn
/// at sector boundaries; a file's length is one it had since the sync), and forgets files
/// whose directory entry was never synced.
/// [`FaultFs::set_write_budget`] makes writes fail with `StorageFull` once a number of bytes has
/// been written, as a full disk does.
#[derive(Debug, Clone, Default)]
pub struct FaultFs(Arc<Mutex<FaultState>>);

#[derive(Debug, Default)]
struct FaultState {
    files: BTreeMap<PathBuf, Arc<FaultFile>>,
    /// Files whose directory entry is durable.
    durable_entries: std::collections::BTreeSet<PathBuf>,
    /// Bytes writes may still take before failing, if set.
    write_budget: Option<u64>,
    /// What `available_space` reports.
    available: u64,
    /// Fail every `sync_data` from now on.
    fail_sync: bool,
    /// Bytes written in all.
    written: u64,
}

#[derive(Debug, Default)]
struct FaultFile {
    fs: std::sync::Weak<Mutex<FaultState>>,
    inner: Mutex<FaultFileInner>,
}

#[derive(Debug, Default, Clone)]
struct FaultFileInner {
    current: Vec<u8>,
    durable: Vec<u8>,
    /// Writes since the last sync: (offset, bytes) or a length change.
    pending: Vec<Pending>,
}

#[derive(Debug, Clone)]
enum Pending {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The xorshift64* generator power cuts draw from.
fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// A file's content after a power cut. Lengths are metadata, which a journaling filesystem
/// keeps in order: the file has the length it had after some prefix of the operations since the
/// last sync, the last write of that prefix possibly torn at a sector boundary. Within that
/// length, each 512-byte sector written since the sync landed or not, in any order.
fn after_power_loss(f: &FaultFileInner, next: &mut impl FnMut() -> u64) -> Vec<u8> {
    let ops = f.pending.len();
    let prefix = usize::try_from(next() % (ops as u64 + 1)).unwrap_or(ops);
    let mut content = f.durable.clone();
    for (i, p) in f.pending.iter().enumerate() {
        match p {
            Pending::SetLen(len) => {
                if i < prefix {
                    content.resize(usize::try_from(*len).unwrap_or(usize::MAX), 0);
                }
            }
            Pending::Write(offset, data) => {
                let offset = usize::try_from(*offset).unwrap_or(usize::MAX);
                let extent = if i < prefix {
                    data.len()
                } else if i == prefix {
                    let sectors = data.len().div_ceil(512) as u64;
                    (usize::try_from(next() % (sectors + 1)).unwrap_or(0) * 512).min(data.len())
                } else {
                    0
                };
                if content.len() < offset + extent {
                    content.resize(offset + extent, 0);
                }
                for (j, sector) in data.chunks(512).enumerate() {
                    if next().is_multiple_of(2) {
                        let at = offset + j * 512;
                        let end = (at + sector.len()).min(content.len());
                        if let (Some(dst), Some(src)) = (
                            content.get_mut(at..end),
                            sector.get(..end.saturating_sub(at)),
                        ) {
                            dst.copy_from_slice(src);
                        }
                    }
                }
            }
        }
    }
    content
}

impl FaultFs {
    /// An empty filesystem reporting 1 TiB free.
    pub fn new() -> Self {
        let fs = Self::default();
        lock(&fs.0).available = 1 << 40;
        fs
    }

    /// Writes fail with `StorageFull` after `bytes` more bytes (`None`: never).
    pub fn set_write_budget(&self, bytes: Option<u64>) {
        lock(&self.0).write_budget = bytes;
    }

    /// What `available_space` reports.
    pub fn set_available_space(&self, bytes: u64) {
        lock(&self.0).available = bytes;
    }

    /// Makes every later `sync_data` fail with an I/O error (`false` heals).
    pub fn set_fail_sync(&self, fail: bool) {
        lock(&self.0).fail_sync = fail;
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        lock(&self.0).written
    }

    /// Simulates a power cut: see the type's docs. `seed` picks which unsynced writes survive.
    pub fn power_loss(&self, seed: u64) {
        let mut next = rng(seed);
        let mut st = lock(&self.0);
        let durable_entries = st.durable_entries.clone();
        st.files.retain(|path, _| durable_entries.contains(path));
        for file in st.files.values() {
            let mut f = lock(&file.inner);
            let content = after_power_loss(&f, &mut next);
            f.pending.clear();
            f.durable = content.clone();
            f.current = content;
        }
    }

    /// What a machine rebooting after a power cut at this instant finds on this disk, as a new,
    /// independent filesystem; this one is left as it is. Unlike [`FaultFs::power_loss`], the
    /// store that was running keeps its own (doomed) world and cannot write into the new one,
    /// as a crashed process cannot. The image is atomic: every file is held while it is taken,
    /// so no write lands between two files' copies. `seed` picks which unsynced writes survive.
    pub fn crash_image(&self, seed: u64) -> FaultFs {
        let mut next = rng(seed);
        let st = lock(&self.0);
        let held: Vec<(&PathBuf, MutexGuard<'_, FaultFileInner>)> = st
            .files
            .iter()
            .filter(|(path, _)| st.durable_entries.contains(*path))
            .map(|(path, f)| (path, lock(&f.inner)))
            .collect();
        let image = FaultFs::new();
        {
            let mut new = lock(&image.0);
            new.available = st.available;
            for (path, f) in &held {
                let content = after_power_loss(f, &mut next);
                let file = Arc::new(FaultFile {
                    fs: Arc::downgrade(&image.0),
                    inner: Mutex::new(FaultFileInner {
                        current: content.clone(),
                        durable: content,
                        pending: Vec::new(),
                    }),
                });
                new.files.insert((*path).clone(), file);
                new.durable_entries.insert((*path).clone());
            }
        }
        image
    }

    /// A copy of a file's current content (for tampering tests).
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let st = lock(&self.0);
        st.files.get(path).map(|f| lock(&f.inner).current.clone())
    }

    /// Overwrites a file's content, durably (for tampering tests).
    pub fn write_file(&self, path: &Path, data: Vec<u8>) {
        let st = lock(&self.0);
        if let Some(f) = st.files.get(path) {
            let mut f = lock(&f.inner);
            f.durable = data.clone();
            f.current = data;
            f.pending.clear();
        }
    }
}

impl FaultFile {
    fn charge(&self, bytes: u64) -> io::Result<()> {
        let Some(fs) = self.fs.upgrade() else {
            return Ok(());
        };
        let mut st = lock(&fs);
        if let Some(budget) = st.write_budget {
            if bytes > budget {
                st.write_budget = Some(0);
                return Err(io::Error::from(io::ErrorKind::StorageFull));
            }
            st.write_budget = Some(budget - bytes);
        }
        st.written += bytes;
        Ok(())
    }
}

impl File for FaultFile {
    fn len(&self) -> io::Result<u64> {
        Ok(lock(&self.inner).current.len() as u64)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let f = lock(&self.inner);
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let src = f
            .current
            .get(start..start.saturating_add(buf.len()))
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.charge(data.len() as u64)?;
        let mut f = lock(&self.inner);
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        let end = start + data.len();
        if f.current.len() < end {
            f.current.resize(end, 0);
        }
        if let Some(dst) = f.current.get_mut(start..end) {
            dst.copy_from_slice(data);
        }
        f.pending.push(Pending::Write(offset, data.to_vec()));
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let old = lock(&self.inner).current.len() as u64;
        if len > old {
            self.charge(len - old)?;
        }
        let mut f = lock(&self.inner);
        f.current.resize(
            usize::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?,
            0,
        );
        f.pending.push(Pending::SetLen(len));
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        if let Some(fs) = self.fs.upgrade()
            && lock(&fs).fail_sync
        {
            return Err(io::Error::other("injected fsync failure"));
        }
        let mut f = lock(&self.inner);
        f.durable = f.current.clone();
        f.pending.clear();
        Ok(())
    }
}

impl Fs for FaultFs {
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn File>> {
        let mut st = lock(&self.0);
        if let Some(f) = st.files.get(path) {
            return Ok(f.clone());
        }
        if !create {
            return Err(io::ErrorKind::NotFound.into());
        }
        let f = Arc::new(FaultFile {
            fs: Arc::downgrade(&self.0),
            inner: Mutex::default(),
        });
        st.files.insert(path.to_path_buf(), f.clone());
        Ok(f)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut st = lock(&self.0);
        st.durable_entries.remove(path);
        st.files
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| io::ErrorKind::NotFound.into())
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let st = lock(&self.0);
        Ok(st
            .files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect())
    }
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = lock(&self.0);
        let names: Vec<PathBuf> = st
            .files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .cloned()
            .collect();
        st.durable_entries.extend(names);
        Ok(())
    }
    fn available_space(&self, _dir: &Path) -> io::Result<u64> {
        Ok(lock(&self.0).available)
    }
    fn exists(&self, path: &Path) -> bool {
        lock(&self.0).files.contains_key(path)
    }
    /// Atomic, and, until the directory is synced, a power cut forgets both names (a
    /// pessimistic model: a real filesystem keeps one of them).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = lock(&self.0);
        let f = st.files.remove(from).ok_or(io::ErrorKind::NotFound)?;
        st.durable_entries.remove(from);
        st.durable_entries.remove(to);
        st.files.insert(to.to_path_buf(), f);
        Ok(())
    }
    fn lock(&self, _path: &Path) -> io::Result<Box<dyn std::any::Any + Send + Sync>> {
        Ok(Box::new(()))
    }
}

/// Lets the index database live on an [`Fs`] file.
#[derive(Debug)]
pub(crate) struct RedbBackend(pub(crate) Arc<dyn File>);

impl redb::StorageBackend for RedbBackend {
    fn len(&self) -> io::Result<u64> {
        self.0.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.0.read_at(offset, out)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.0.write_at(offset, data)
    }
}
