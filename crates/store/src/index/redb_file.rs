//! Opening an index file that may be damaged, without ever panicking.
//!
//! redb returns errors for most damage, but asserts on some: a file shorter than the layout its
//! header records (a truncated `index.redb`) fails an `assert!` inside `Database::create`. So
//! before redb sees a file, [`check_header`] reads the 320-byte redb header itself and checks
//! what those asserts rely on: the magic number, a 4 KiB page size, a plausible region layout,
//! and a file at least as long as that layout. These are redb's file format 3 (redb 2 and 3);
//! a redb upgrade that changes them fails this check loudly (the store's tests open, close and
//! reopen indexes), never silently.
//!
//! As a last resort, the open and the first read run under [`std::panic::catch_unwind`], so
//! that damage the header check cannot see still comes back as an error naming the index, not
//! a crash. A panic caught there still prints its message through the process's panic hook;
//! the header check exists so that the known cases never get that far.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use redb::{Database, ReadableDatabase, TableError};

use super::redb::META;
use crate::error::{Result, StoreError};
use crate::fs::{File, RedbBackend};

/// redb's magic number, the first 9 bytes of every database file.
const MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];
/// The length of redb's database header.
const HEADER_LEN: usize = 320;
/// The page size redb uses (and the store never changes).
const PAGE_SIZE: u32 = 4096;

/// Why an index file cannot be used as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// It holds no index: 0 bytes, or a database without the store's tables (what a new data
    /// directory has, and what a lost index looks like).
    Blank(String),
    /// It is not a readable database: cut short, overwritten, or failing redb's checks.
    Damaged(String),
}

impl Unusable {
    /// What is wrong, in words.
    pub fn problem(&self) -> &str {
        match self {
            Unusable::Blank(p) | Unusable::Damaged(p) => p,
        }
    }
}

fn le_u32(header: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = header.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

/// Checks the redb header of `file` against its length (see the module docs). `Ok(Err(..))`
/// says what is wrong with the file; `Err` is an I/O error reading it.
pub fn check_header(file: &dyn File) -> Result<std::result::Result<(), Unusable>> {
    let len = file
        .len()
        .map_err(|e| StoreError::io("reading the index", e))?;
    if len == 0 {
        return Ok(Err(Unusable::Blank("is empty (0 bytes)".into())));
    }
    if len < HEADER_LEN as u64 {
        return Ok(Err(Unusable::Damaged(format!(
            "is cut short: {len} bytes, less than a database header ({HEADER_LEN} bytes)"
        ))));
    }
    let mut header = [0u8; HEADER_LEN];
    file.read_at(0, &mut header)
        .map_err(|e| StoreError::io("reading the index", e))?;
    // redb writes its header with the magic number zeroed, syncs, then writes the magic: a
    // crash in between, during the very first open, leaves zeros. Blank (what is done with a
    // blank index depends on what else the directory holds: `crate::datadir`).
    if header
        .get(..MAGIC.len())
        .is_some_and(|m| m.iter().all(|b| *b == 0))
    {
        return Ok(Err(Unusable::Blank(
            "has no database header yet (a first open cut short)".into(),
        )));
    }
    if header.get(..MAGIC.len()) != Some(MAGIC.as_slice()) {
        return Ok(Err(Unusable::Damaged(
            "is not a redb database (its first bytes are not redb's magic number)".into(),
        )));
    }
    let field = |at| le_u32(&header, at).map(u64::from);
    let (Some(page), Some(region_header), Some(region_pages), Some(full), Some(trailing)) =
        (field(12), field(16), field(20), field(24), field(28))
    else {
        return Ok(Err(Unusable::Damaged("has a short header".into())));
    };
    if page != u64::from(PAGE_SIZE) || region_pages == 0 || (full == 0 && trailing == 0) {
        return Ok(Err(Unusable::Damaged(format!(
            "has a damaged header (page size {page}, {full} full region(s) of {region_pages} \
             pages, {trailing} trailing pages)"
        ))));
    }
    // The layout redb asserts the file holds: a header page, the full regions, the trailing
    // partial region.
    let region = (region_header + region_pages) * page;
    let tail = if trailing > 0 {
        (region_header + trailing) * page
    } else {
        0
    };
    let expected = full
        .checked_mul(region)
        .and_then(|b| b.checked_add(page + tail));
    match expected {
        Some(expected) if len >= expected => Ok(Ok(())),
        Some(expected) => Ok(Err(Unusable::Damaged(format!(
            "is cut short: {len} bytes, of the {expected} its header records"
        )))),
        None => Ok(Err(Unusable::Damaged(
            "has a damaged header (an impossible layout)".into(),
        ))),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

/// Opens the database in `file` if it holds a Vigil index (a `meta` table), never creating
/// one: see the module docs. `Ok(Err(..))` says why the file cannot be used.
pub fn open_existing(file: Arc<dyn File>) -> Result<std::result::Result<Database, Unusable>> {
    if let Err(why) = check_header(file.as_ref())? {
        return Ok(Err(why));
    }
    let opened = catch_unwind(AssertUnwindSafe(|| {
        let db = match super::redb::builder().create_with_backend(RedbBackend(file)) {
            Ok(db) => db,
            Err(e) => return Err(Unusable::Damaged(format!("cannot be opened: {e}"))),
        };
        let has_meta =
            db.begin_read()
                .map_err(|e| e.to_string())
                .and_then(|r| match r.open_table(META) {
                    Ok(_) => Ok(true),
                    Err(TableError::TableDoesNotExist(_)) => Ok(false),
                    Err(e) => Err(e.to_string()),
                });
        match has_meta {
            Ok(true) => Ok(db),
            Ok(false) => Err(Unusable::Blank(
                "holds no index (a database without the store's tables)".into(),
            )),
            Err(e) => Err(Unusable::Damaged(format!("cannot be read: {e}"))),
        }
    }));
    Ok(opened.unwrap_or_else(|payload| {
        Err(Unusable::Damaged(format!(
            "cannot be opened (the database library failed: {})",
            panic_message(payload.as_ref())
        )))
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use std::path::Path;

    use super::*;
    use crate::fs::{FaultFs, Fs};
    use crate::index::{Index, RedbIndex};

    /// A real index, its header checked, then cut at every kind of length: each cut is
    /// `Damaged`, never a panic, and the whole file opens.
    #[test]
    fn truncation_anywhere_is_damage_and_never_a_panic() {
        let fs = FaultFs::new();
        let path = Path::new("/index.redb");
        {
            let ix = RedbIndex::open(fs.open(path, true).unwrap()).unwrap();
            for i in 0..2000 {
                ix.set_meta(&format!("k{i}"), i).unwrap();
            }
        }
        let full = fs.read_file(path).unwrap();
        let file = fs.open(path, false).unwrap();
        assert_eq!(check_header(file.as_ref()).unwrap(), Ok(()));
        assert!(open_existing(file.clone()).unwrap().is_ok());
        for cut in [1, 100, 319, 320, 4096, 8192, full.len() / 2, full.len() - 1] {
            fs.write_file(path, full[..cut].to_vec());
            let got = open_existing(file.clone()).unwrap();
            assert!(
                matches!(got, Err(Unusable::Damaged(_))),
                "cut {cut}: {got:?}"
            );
        }
        fs.write_file(path, Vec::new());
        assert!(matches!(
            open_existing(file.clone()).unwrap(),
            Err(Unusable::Blank(_))
        ));
        let mut garbage = full.clone();
        garbage[..9].copy_from_slice(b"not redb!");
        fs.write_file(path, garbage);
        assert!(matches!(
            open_existing(file.clone()).unwrap(),
            Err(Unusable::Damaged(_))
        ));
        fs.write_file(path, full);
        assert!(open_existing(file).unwrap().is_ok());
    }

    /// A valid database without the store's tables is `Blank`, and looking does not make it
    /// an index.
    #[test]
    fn a_database_without_tables_is_blank() {
        let fs = FaultFs::new();
        let path = Path::new("/index.redb");
        let file = fs.open(path, true).unwrap();
        drop(
            Database::builder()
                .create_with_backend(RedbBackend(file.clone()))
                .unwrap(),
        );
        for _ in 0..2 {
            assert!(matches!(
                open_existing(file.clone()).unwrap(),
                Err(Unusable::Blank(_))
            ));
        }
    }
}
