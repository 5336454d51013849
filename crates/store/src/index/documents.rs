//! Documents in the embedded index: small records an upper layer owns (a stream processor's
//! definition and state, say), kept verbatim by kind and name (`crate::documents`).

use redb::{ReadableDatabase, TableDefinition};

use super::redb::RedbIndex;
use crate::error::Result;

pub(super) const DOCUMENTS: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("documents");

pub(super) fn put(ix: &RedbIndex, kind: &str, name: &str, body: &[u8]) -> Result<()> {
    ix.write(true, |txn| {
        txn.open_table(DOCUMENTS)?.insert((kind, name), body)?;
        Ok(())
    })
}

pub(super) fn get(ix: &RedbIndex, kind: &str, name: &str) -> Result<Option<Vec<u8>>> {
    let r = ix.db.begin_read()?;
    let t = r.open_table(DOCUMENTS)?;
    Ok(t.get((kind, name))?.map(|v| v.value().to_vec()))
}

pub(super) fn list(
    ix: &RedbIndex,
    kind: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<(String, Vec<u8>)>> {
    let r = ix.db.begin_read()?;
    let t = r.open_table(DOCUMENTS)?;
    let range = match after {
        Some(a) => t.range::<(&str, &str)>((
            std::ops::Bound::Excluded((kind, a)),
            std::ops::Bound::Unbounded,
        ))?,
        None => t.range::<(&str, &str)>((kind, "")..)?,
    };
    let mut out = Vec::new();
    for item in range {
        let (k, v) = item?;
        let (k_kind, k_name) = k.value();
        if k_kind != kind || out.len() >= limit {
            break;
        }
        out.push((k_name.to_owned(), v.value().to_vec()));
    }
    Ok(out)
}

pub(super) fn delete(ix: &RedbIndex, kind: &str, name: &str) -> Result<bool> {
    ix.write(true, |txn| {
        Ok(txn.open_table(DOCUMENTS)?.remove((kind, name))?.is_some())
    })
}
