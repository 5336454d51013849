//! Face collections in the embedded index: records, keys and face rows (`crate::faces`).

use redb::{ReadableDatabase, ReadableTable};

use super::WrappedKey;
use super::redb::{
    COLLECTION_KEYS, COLLECTIONS, FACES, RedbIndex, decode_collection, encode_collection,
};
use crate::error::{Result, StoreError};
use crate::faces::CollectionRecord;

pub(super) fn create_collection(
    ix: &RedbIndex,
    record: &CollectionRecord,
    key: &WrappedKey,
) -> Result<()> {
    let json = encode_collection(record)?;
    ix.write(true, |txn| {
        let mut t = txn.open_table(COLLECTIONS)?;
        if t.get(record.name.as_str())?.is_some() {
            return Err(StoreError::CollectionExists(record.name.clone()));
        }
        t.insert(record.name.as_str(), json.as_str())?;
        txn.open_table(COLLECTION_KEYS)?
            .insert(record.id, key.encode().as_slice())?;
        Ok(())
    })
}

pub(super) fn collection(ix: &RedbIndex, name: &str) -> Result<Option<CollectionRecord>> {
    let r = ix.db.begin_read()?;
    let t = r.open_table(COLLECTIONS)?;
    let v = t.get(name)?;
    v.map(|v| decode_collection(v.value())).transpose()
}

pub(super) fn list_collections(
    ix: &RedbIndex,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<CollectionRecord>> {
    let r = ix.db.begin_read()?;
    let t = r.open_table(COLLECTIONS)?;
    let mut out = Vec::new();
    let range = match after {
        Some(a) => t.range::<&str>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded))?,
        None => t.range::<&str>(..)?,
    };
    for item in range {
        if out.len() >= limit {
            break;
        }
        out.push(decode_collection(item?.1.value())?);
    }
    Ok(out)
}

pub(super) fn collection_key(ix: &RedbIndex, id: u64) -> Result<Option<WrappedKey>> {
    let r = ix.db.begin_read()?;
    let t = r.open_table(COLLECTION_KEYS)?;
    let v = t.get(id)?;
    v.map(|v| {
        WrappedKey::decode(v.value())
            .ok_or_else(|| StoreError::Index("a wrapped collection key does not decode".into()))
    })
    .transpose()
}

pub(super) fn delete_collection(ix: &RedbIndex, name: &str) -> Result<Option<CollectionRecord>> {
    ix.write(true, |txn| {
        let rec = {
            let mut t = txn.open_table(COLLECTIONS)?;
            let rec = t
                .get(name)?
                .map(|v| decode_collection(v.value()))
                .transpose()?;
            if rec.is_some() {
                t.remove(name)?;
            }
            rec
        };
        if let Some(rec) = &rec {
            txn.open_table(COLLECTION_KEYS)?.remove(rec.id)?;
            txn.open_table(FACES)?
                .retain_in((rec.id, 0)..=(rec.id, u128::MAX), |_, _| false)?;
        }
        Ok(rec)
    })
}

pub(super) fn set_collection_tags(
    ix: &RedbIndex,
    name: &str,
    tags: &std::collections::BTreeMap<String, String>,
) -> Result<CollectionRecord> {
    ix.write(true, |txn| {
        let mut t = txn.open_table(COLLECTIONS)?;
        let mut rec = t
            .get(name)?
            .map(|v| decode_collection(v.value()))
            .transpose()?
            .ok_or_else(|| StoreError::CollectionNotFound(name.to_owned()))?;
        rec.tags = tags.clone();
        let json = encode_collection(&rec)?;
        t.insert(name, json.as_str())?;
        Ok(rec)
    })
}

pub(super) fn add_faces(
    ix: &RedbIndex,
    name: &str,
    rows: &[(u128, Vec<u8>)],
) -> Result<CollectionRecord> {
    ix.write(true, |txn| {
        let mut t = txn.open_table(COLLECTIONS)?;
        let mut rec = t
            .get(name)?
            .map(|v| decode_collection(v.value()))
            .transpose()?
            .ok_or_else(|| StoreError::CollectionNotFound(name.to_owned()))?;
        let mut faces = txn.open_table(FACES)?;
        for (id, row) in rows {
            if faces.insert((rec.id, *id), row.as_slice())?.is_none() {
                rec.face_count += 1;
            }
        }
        let json = encode_collection(&rec)?;
        t.insert(name, json.as_str())?;
        Ok(rec)
    })
}

pub(super) fn remove_faces(ix: &RedbIndex, name: &str, ids: &[u128]) -> Result<Vec<u128>> {
    ix.write(true, |txn| {
        let mut t = txn.open_table(COLLECTIONS)?;
        let mut rec = t
            .get(name)?
            .map(|v| decode_collection(v.value()))
            .transpose()?
            .ok_or_else(|| StoreError::CollectionNotFound(name.to_owned()))?;
        let mut faces = txn.open_table(FACES)?;
        let mut removed = Vec::new();
        for id in ids {
            if faces.remove((rec.id, *id))?.is_some() {
                removed.push(*id);
            }
        }
        rec.face_count = rec.face_count.saturating_sub(removed.len() as u64);
        let json = encode_collection(&rec)?;
        t.insert(name, json.as_str())?;
        Ok(removed)
    })
}

pub(super) fn faces(
    ix: &RedbIndex,
    collection: u64,
    after: Option<u128>,
    limit: usize,
) -> Result<Vec<(u128, Vec<u8>)>> {
    let r = ix.db.begin_read()?;
    let t = r.open_table(FACES)?;
    let start = match after {
        Some(u128::MAX) => return Ok(Vec::new()),
        Some(a) => a + 1,
        None => 0,
    };
    let mut out = Vec::new();
    for item in t
        .range((collection, start)..=(collection, u128::MAX))?
        .take(limit)
    {
        let (k, v) = item?;
        out.push((k.value().1, v.value().to_vec()));
    }
    Ok(out)
}

pub(super) fn face(ix: &RedbIndex, collection: u64, face: u128) -> Result<Option<Vec<u8>>> {
    let r = ix.db.begin_read()?;
    let t = r.open_table(FACES)?;
    Ok(t.get((collection, face))?.map(|v| v.value().to_vec()))
}
