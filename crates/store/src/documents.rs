//! Documents: small records an upper layer owns, kept by kind and name in the index, durably
//! (a stream processor's definition and state, say). The store reads nothing in them.
//!
//! A put or delete returns once the index transaction is durable: what was put is there after
//! a crash. Kinds and names are at most [`MAX_DOCUMENT_KEY`] bytes, bodies at most
//! [`MAX_DOCUMENT_BYTES`].

use crate::engine::Store;
use crate::error::{Result, StoreError};

/// Longest kind or name, in bytes.
pub const MAX_DOCUMENT_KEY: usize = 1024;
/// Largest document body, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;

fn check_key(kind: &str, name: &str) -> Result<()> {
    if kind.is_empty() || kind.len() > MAX_DOCUMENT_KEY || name.len() > MAX_DOCUMENT_KEY {
        return Err(StoreError::InvalidArgument(format!(
            "a document's kind must be 1 to {MAX_DOCUMENT_KEY} bytes and its name at most \
             {MAX_DOCUMENT_KEY}"
        )));
    }
    Ok(())
}

impl Store {
    /// Stores the document (`kind`, `name`), replacing any before it; durable on return.
    pub fn put_document(&self, kind: &str, name: &str, body: &[u8]) -> Result<()> {
        self.check_writable()?;
        self.check_space()?;
        check_key(kind, name)?;
        if body.len() > MAX_DOCUMENT_BYTES {
            return Err(StoreError::InvalidArgument(format!(
                "a document is at most {MAX_DOCUMENT_BYTES} bytes"
            )));
        }
        self.index().put_document(kind, name, body)
    }

    /// The document (`kind`, `name`), if there is one.
    pub fn document(&self, kind: &str, name: &str) -> Result<Option<Vec<u8>>> {
        check_key(kind, name)?;
        self.index().document(kind, name)
    }

    /// Documents of `kind` in name order after `after`, at most `limit`.
    pub fn documents(
        &self,
        kind: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        check_key(kind, after.unwrap_or_default())?;
        self.index().documents(kind, after, limit)
    }

    /// Deletes the document; whether it was there. Durable on return.
    pub fn delete_document(&self, kind: &str, name: &str) -> Result<bool> {
        self.check_writable()?;
        self.check_space_to_delete()?;
        check_key(kind, name)?;
        self.index().delete_document(kind, name)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use crate::clock::ManualClock;
    use crate::engine::{Store, StoreConfig};

    #[test]
    fn documents_persist_by_kind_and_name() {
        let dir = std::env::temp_dir().join(format!("vigil-docs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let open = || Store::open(StoreConfig::new(&dir), Arc::new(ManualClock::new(1))).unwrap();
        let store = open();
        store.put_document("processor", "b", b"{\"x\":2}").unwrap();
        store.put_document("processor", "a", b"{\"x\":1}").unwrap();
        store.put_document("other", "a", b"o").unwrap();
        store.put_document("processor", "a", b"{\"x\":3}").unwrap();
        assert!(store.put_document("", "a", b"").is_err());
        store.close().unwrap();
        drop(store);
        let store = open();
        assert_eq!(
            store.document("processor", "a").unwrap().unwrap(),
            b"{\"x\":3}"
        );
        let all = store.documents("processor", None, 10).unwrap();
        let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        let after = store.documents("processor", Some("a"), 10).unwrap();
        assert_eq!(after.len(), 1);
        assert_eq!(store.documents("processor", None, 1).unwrap().len(), 1);
        assert!(store.delete_document("processor", "a").unwrap());
        assert!(!store.delete_document("processor", "a").unwrap());
        assert_eq!(store.document("processor", "a").unwrap(), None);
        assert_eq!(store.document("other", "a").unwrap().unwrap(), b"o");
        store.close().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
