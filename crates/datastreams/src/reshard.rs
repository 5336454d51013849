//! Resharding, planned without I/O: which shards close and which open, with their lineage.
//!
//! Kinesis records at most two parents per shard (`ParentShardId`, `AdjacentParentShardId`),
//! so every change is made of splits (one parent, two children) and merges (two adjacent
//! parents, one child). `UpdateShardCount` with `UNIFORM_SCALING` reaches even ranges the same
//! way AWS does, through a series of splits and merges: every open shard is first split at
//! each target boundary inside it, then the pieces of each target range are merged left to
//! right. Intermediate shards are created and closed at once; they hold no records, and a
//! reader following the lineage passes through them (an empty, closed shard, then its
//! children).

use crate::error::{Error, Result};
use crate::hash::even_ranges;
use crate::model::{ShardMeta, StreamMeta};

/// A planned change: shards to close (by index) and shards to open, in creation order (some
/// of which are themselves closed again at once: `closed_at_once`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Open shards that close.
    pub close: Vec<u32>,
    /// New shards, in index order.
    pub open: Vec<NewShard>,
}

/// A shard a plan creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewShard {
    /// Its index.
    pub index: u32,
    /// Its parent.
    pub parent: u32,
    /// Its adjacent parent (merges).
    pub adjacent_parent: Option<u32>,
    /// Its hash range.
    pub start_hash: u128,
    /// ...
    pub end_hash: u128,
    /// Whether the plan closes it again (an intermediate step).
    pub closed_at_once: bool,
}

/// Splits open shard `index` at `new_start` (the second child's first hash key).
pub fn split(meta: &StreamMeta, index: u32, new_start: u128) -> Result<Plan> {
    let s = open_shard(meta, index)?;
    if new_start <= s.start_hash || new_start > s.end_hash {
        return Err(Error::Invalid(format!(
            "NewStartingHashKey {new_start} is not in the hash key range of {} \
             ({}..={}), after its first key.",
            s.id(),
            s.start_hash,
            s.end_hash
        )));
    }
    let mut plan = Plan::default();
    let mut next = meta.next_shard_index;
    plan.close.push(index);
    for (lo, hi) in [(s.start_hash, new_start - 1), (new_start, s.end_hash)] {
        plan.open.push(NewShard {
            index: take(&mut next)?,
            parent: index,
            adjacent_parent: None,
            start_hash: lo,
            end_hash: hi,
            closed_at_once: false,
        });
    }
    Ok(plan)
}

/// Merges open shard `index` with the open shard `adjacent`, whose range must touch it.
pub fn merge(meta: &StreamMeta, index: u32, adjacent: u32) -> Result<Plan> {
    let a = open_shard(meta, index)?;
    let b = open_shard(meta, adjacent)?;
    let touching = a.end_hash.checked_add(1) == Some(b.start_hash)
        || b.end_hash.checked_add(1) == Some(a.start_hash);
    if index == adjacent || !touching {
        return Err(Error::Invalid(format!(
            "Shards {} and {} are not adjacent: their hash key ranges must be contiguous.",
            a.id(),
            b.id()
        )));
    }
    let mut next = meta.next_shard_index;
    Ok(Plan {
        close: vec![index, adjacent],
        open: vec![NewShard {
            index: take(&mut next)?,
            parent: index,
            adjacent_parent: Some(adjacent),
            start_hash: a.start_hash.min(b.start_hash),
            end_hash: a.end_hash.max(b.end_hash),
            closed_at_once: false,
        }],
    })
}

/// Changes the open shards to `target` shards of even ranges (`UNIFORM_SCALING`).
pub fn uniform(meta: &StreamMeta, target: u32) -> Result<Plan> {
    let mut open: Vec<(u32, u128, u128)> = meta
        .open_shards()
        .map(|s| (s.index, s.start_hash, s.end_hash))
        .collect();
    open.sort_by_key(|&(_, lo, _)| lo);
    let goal = even_ranges(target);
    if open.len() == goal.len()
        && open
            .iter()
            .zip(&goal)
            .all(|(&(_, lo, hi), &(glo, ghi))| lo == glo && hi == ghi)
    {
        return Ok(Plan::default());
    }
    let mut plan = Plan::default();
    let mut next = meta.next_shard_index;
    // Step 1: split every open shard at each goal boundary strictly inside it.
    let mut pieces: Vec<(u32, u128, u128)> = Vec::new();
    for (index, lo, hi) in open {
        let cuts: Vec<u128> = goal
            .iter()
            .map(|&(glo, _)| glo)
            .filter(|&c| c > lo && c <= hi)
            .collect();
        if cuts.is_empty() {
            pieces.push((index, lo, hi));
            continue;
        }
        plan.close.push(index);
        let (mut parent, mut rest_lo) = (index, lo);
        for (k, &cut) in cuts.iter().enumerate() {
            let left = take(&mut next)?;
            let right = take(&mut next)?;
            plan.open.push(NewShard {
                index: left,
                parent,
                adjacent_parent: None,
                start_hash: rest_lo,
                end_hash: cut - 1,
                closed_at_once: false,
            });
            plan.open.push(NewShard {
                index: right,
                parent,
                adjacent_parent: None,
                start_hash: cut,
                end_hash: hi,
                // The right part is split again at the next cut.
                closed_at_once: k + 1 < cuts.len(),
            });
            pieces.push((left, rest_lo, cut - 1));
            parent = right;
            rest_lo = cut;
        }
        pieces.push((parent, rest_lo, hi));
    }
    // Step 2: merge the pieces of each goal range, left to right.
    for &(glo, ghi) in &goal {
        let mut group: Vec<(u32, u128, u128)> = pieces
            .iter()
            .copied()
            .filter(|&(_, lo, hi)| lo >= glo && hi <= ghi)
            .collect();
        group.sort_by_key(|&(_, lo, _)| lo);
        let mut iter = group.into_iter();
        let Some(mut acc) = iter.next() else {
            return Err(Error::Invalid("no shard covers a target range".into()));
        };
        for piece in iter {
            let child = take(&mut next)?;
            plan.close.extend([acc.0, piece.0]);
            plan.open.push(NewShard {
                index: child,
                parent: acc.0,
                adjacent_parent: Some(piece.0),
                start_hash: acc.1,
                end_hash: piece.2,
                closed_at_once: false,
            });
            acc = (child, acc.1, piece.2);
        }
    }
    // A shard both opened and closed by the plan is an intermediate one.
    let closed: std::collections::BTreeSet<u32> = plan.close.iter().copied().collect();
    for s in &mut plan.open {
        if closed.contains(&s.index) {
            s.closed_at_once = true;
        }
    }
    plan.close.retain(|i| meta.shard(*i).is_some());
    plan.close.sort_unstable();
    plan.close.dedup();
    Ok(plan)
}

fn open_shard(meta: &StreamMeta, index: u32) -> Result<&ShardMeta> {
    // The engine fills in the stream's name.
    let s = meta.shard(index).ok_or_else(|| Error::ShardNotFound {
        stream: String::new(),
        shard: crate::model::shard_id(index),
    })?;
    if !s.is_open() {
        return Err(Error::InUse(format!(
            "Shard {} is closed: only open shards can be split or merged.",
            s.id()
        )));
    }
    Ok(s)
}

fn take(next: &mut u32) -> Result<u32> {
    let i = *next;
    *next = next
        .checked_add(1)
        .ok_or_else(|| Error::LimitExceeded("the stream has used every shard index".into()))?;
    Ok(i)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::model::{DEFAULT_MAX_RECORD_KIB, STREAM_META_VERSION, StreamMode};

    fn meta(n: u32) -> StreamMeta {
        StreamMeta {
            v: STREAM_META_VERSION,
            mode: StreamMode::Provisioned,
            shards: even_ranges(n)
                .into_iter()
                .enumerate()
                .map(|(i, (lo, hi))| ShardMeta {
                    index: i as u32,
                    parent: None,
                    adjacent_parent: None,
                    start_hash: lo,
                    end_hash: hi,
                    starting: 0,
                    ending: None,
                    created_ms: 0,
                    closed_ms: None,
                })
                .collect(),
            next_shard_index: n,
            tags: BTreeMap::new(),
            encryption: None,
            shard_level_metrics: BTreeSet::new(),
            max_record_size_kib: DEFAULT_MAX_RECORD_KIB,
            iterator_key: String::new(),
            updated_ms: 0,
        }
    }

    /// Applies a plan as the engine does, returning the open shards' ranges.
    fn apply(m: &mut StreamMeta, p: &Plan) -> Vec<(u128, u128)> {
        for i in &p.close {
            if let Some(s) = m.shards.iter_mut().find(|s| s.index == *i) {
                s.ending = Some(0);
            }
        }
        for s in &p.open {
            m.shards.push(ShardMeta {
                index: s.index,
                parent: Some(s.parent),
                adjacent_parent: s.adjacent_parent,
                start_hash: s.start_hash,
                end_hash: s.end_hash,
                starting: 0,
                ending: s.closed_at_once.then_some(0),
                created_ms: 0,
                closed_ms: None,
            });
            m.next_shard_index = m.next_shard_index.max(s.index + 1);
        }
        let mut r: Vec<(u128, u128)> = m
            .open_shards()
            .map(|s| (s.start_hash, s.end_hash))
            .collect();
        r.sort();
        r
    }

    #[test]
    fn uniform_scaling_reaches_even_ranges_through_splits_and_merges() {
        for (from, to) in [
            (1, 2),
            (2, 1),
            (3, 2),
            (2, 3),
            (4, 8),
            (8, 4),
            (5, 7),
            (7, 5),
            (10, 20),
            (3, 5),
        ] {
            let mut m = meta(from);
            let p = uniform(&m, to).unwrap();
            let open = apply(&mut m, &p);
            assert_eq!(open, even_ranges(to), "{from} -> {to}");
            // Every new shard has one parent (split) or two adjacent ones (merge), and every
            // parent is closed.
            for s in &p.open {
                let parent = m.shard(s.parent).unwrap();
                assert!(
                    !parent.is_open(),
                    "{from} -> {to}: parent {} open",
                    s.parent
                );
                if let Some(adj) = s.adjacent_parent {
                    let a = m.shard(adj).unwrap();
                    assert!(!a.is_open());
                    assert!(
                        parent.end_hash + 1 == a.start_hash || a.end_hash + 1 == parent.start_hash
                    );
                    assert_eq!(s.start_hash, parent.start_hash.min(a.start_hash));
                    assert_eq!(s.end_hash, parent.end_hash.max(a.end_hash));
                } else {
                    assert!(s.start_hash >= parent.start_hash && s.end_hash <= parent.end_hash);
                }
            }
            assert!(uniform(&m, to).unwrap().open.is_empty(), "already even");
        }
    }

    #[test]
    fn split_and_merge_check_their_shards() {
        let m = meta(2);
        let p = split(&m, 0, 1 << 100).unwrap();
        assert_eq!(p.close, vec![0]);
        assert_eq!(p.open[0].end_hash, (1 << 100) - 1);
        assert_eq!(p.open[1].start_hash, 1 << 100);
        assert!(matches!(split(&m, 0, 0), Err(Error::Invalid(_))));
        assert!(matches!(split(&m, 0, u128::MAX), Err(Error::Invalid(_))));
        assert!(split(&m, 1, u128::MAX).is_ok());
        let p = merge(&m, 1, 0).unwrap();
        assert_eq!(p.open[0].parent, 1);
        assert_eq!(p.open[0].adjacent_parent, Some(0));
        assert_eq!((p.open[0].start_hash, p.open[0].end_hash), (0, u128::MAX));
        let m3 = meta(3);
        assert!(matches!(merge(&m3, 0, 2), Err(Error::Invalid(_))));
        assert!(matches!(merge(&m3, 0, 0), Err(Error::Invalid(_))));
    }
}
