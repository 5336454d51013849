//! A face index: the embeddings of one collection, searched by cosine similarity.
//!
//! Embeddings are L2-normalised, so cosine similarity is their dot product. Below
//! [`IndexConfig::approximate_above`] live faces the index searches exactly (a dot product with
//! every face: about 0.5 ms for 10,000 faces of 512 values on one core); above it, it also
//! keeps an HNSW graph (Malkov and Yashunin, "Efficient and robust approximate nearest neighbor
//! search using Hierarchical Navigable Small World graphs", 2016/2018, arXiv:1603.09320) and
//! searches that: Algorithm 2 (layer search), 4 (the neighbour-selection heuristic) and 5
//! (k-NN search), with `mL = 1/ln(M)` and `M0 = 2M`.
//!
//! The graph is maintained on every change: [`FaceIndex::insert`] links the new face
//! (Algorithm 1); [`FaceIndex::remove`] marks its slot dead, and dead slots stay in the graph
//! as waypoints but never appear in results. Once dead slots make up more than a quarter of
//! all slots the index is compacted and the graph rebuilt from the live faces, so deleted
//! faces cost at most a third more memory and search time. The graph is built when the live
//! count reaches the threshold and dropped when it falls under half of it.
//!
//! Everything is deterministic: levels are drawn from a seeded generator, so the same
//! sequence of inserts and removes gives the same graph and the same answers.
//!
//! The index does no I/O and knows no storage: the API layer fills it from the store.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

/// How an index searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexConfig {
    /// Live faces from which searches use the HNSW graph instead of a full scan.
    pub approximate_above: usize,
    /// Links per node on the upper layers (`M`); layer 0 keeps `2M`.
    pub m: usize,
    /// Candidate list size while linking a new node (`efConstruction`).
    pub ef_construction: usize,
    /// Candidate list size while searching (`ef`), at least the number of results asked for.
    pub ef_search: usize,
    /// Seed of the level generator.
    pub seed: u64,
}

impl Default for IndexConfig {
    fn default() -> Self {
        Self {
            approximate_above: 10_000,
            m: 16,
            ef_construction: 64,
            ef_search: 64,
            seed: 0x5eed_f00d_cafe_d00d,
        }
    }
}

/// A search result: a face's key and its cosine similarity to the query (-1..1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbour {
    /// The face's key (the API layer uses the FaceId's 128 bits).
    pub key: u128,
    /// Dot product of the two normalised embeddings.
    pub cosine: f32,
}

/// Why a vector was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// The vector does not have the index's dimension.
    #[error("an embedding of {found} values where the index holds {expected}")]
    Dimension {
        /// The index's dimension.
        expected: usize,
        /// The vector's length.
        found: usize,
    },
    /// A value is NaN or infinite.
    #[error("an embedding with a value that is not finite")]
    NotFinite,
}

/// The faces of one collection, searchable by similarity.
#[derive(Debug, Clone)]
pub struct FaceIndex {
    dim: usize,
    cfg: IndexConfig,
    /// Per slot: its key, whether it is live.
    keys: Vec<u128>,
    live: Vec<bool>,
    /// Slot `s` is `vectors[s*dim..(s+1)*dim]`.
    vectors: Vec<f32>,
    slots: HashMap<u128, u32>,
    dead: usize,
    graph: Option<Graph>,
}

impl FaceIndex {
    /// An empty index of `dim`-value vectors.
    pub fn new(dim: usize, cfg: IndexConfig) -> Self {
        Self {
            dim,
            cfg,
            keys: Vec::new(),
            live: Vec::new(),
            vectors: Vec::new(),
            slots: HashMap::new(),
            dead: 0,
            graph: None,
        }
    }

    /// Live faces.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there are no live faces.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Whether searches use the HNSW graph now.
    pub fn is_approximate(&self) -> bool {
        self.graph.is_some()
    }

    /// Whether `key` is in the index.
    pub fn contains(&self, key: u128) -> bool {
        self.slots.contains_key(&key)
    }

    /// The stored vector of `key`.
    pub fn vector(&self, key: u128) -> Option<&[f32]> {
        let slot = *self.slots.get(&key)?;
        self.slot_vector(slot)
    }

    /// Adds (or replaces) the vector of `key`.
    pub fn insert(&mut self, key: u128, vector: &[f32]) -> Result<(), IndexError> {
        if vector.len() != self.dim {
            return Err(IndexError::Dimension {
                expected: self.dim,
                found: vector.len(),
            });
        }
        if !vector.iter().all(|v| v.is_finite()) {
            return Err(IndexError::NotFinite);
        }
        self.remove(key);
        let Ok(slot) = u32::try_from(self.keys.len()) else {
            // 4 billion slots: far beyond memory for 512-value vectors.
            return Err(IndexError::Dimension {
                expected: self.dim,
                found: 0,
            });
        };
        self.keys.push(key);
        self.live.push(true);
        self.vectors.extend_from_slice(vector);
        self.slots.insert(key, slot);
        if let Some(mut g) = self.graph.take() {
            g.insert(self, slot);
            self.graph = Some(g);
        } else if self.slots.len() >= self.cfg.approximate_above {
            self.rebuild();
        }
        Ok(())
    }

    /// Removes `key`; whether it was there.
    pub fn remove(&mut self, key: u128) -> bool {
        let Some(slot) = self.slots.remove(&key) else {
            return false;
        };
        if let Some(l) = self.live.get_mut(slot as usize) {
            *l = false;
        }
        self.dead += 1;
        if self.graph.is_some() && self.slots.len() < self.cfg.approximate_above / 2 {
            self.graph = None;
        }
        if self.dead * 4 > self.keys.len() && self.dead >= 64 {
            self.rebuild();
        }
        true
    }

    /// The `k` live faces most similar to `query` (highest cosine first), exactly below the
    /// threshold and approximately above it.
    pub fn search(&self, query: &[f32], k: usize) -> Vec<Neighbour> {
        if k == 0 || query.len() != self.dim || self.slots.is_empty() {
            return Vec::new();
        }
        let found = match &self.graph {
            Some(g) => g.search(self, query, k, self.cfg.ef_search.max(k)),
            None => self.search_exact_slots(query, k),
        };
        found
            .into_iter()
            .filter_map(|c| {
                Some(Neighbour {
                    key: *self.keys.get(c.slot as usize)?,
                    cosine: c.score,
                })
            })
            .collect()
    }

    /// The `k` most similar live faces by a full scan, whatever the size.
    pub fn search_exact(&self, query: &[f32], k: usize) -> Vec<Neighbour> {
        if k == 0 || query.len() != self.dim {
            return Vec::new();
        }
        self.search_exact_slots(query, k)
            .into_iter()
            .filter_map(|c| {
                Some(Neighbour {
                    key: *self.keys.get(c.slot as usize)?,
                    cosine: c.score,
                })
            })
            .collect()
    }

    fn search_exact_slots(&self, query: &[f32], k: usize) -> Vec<Scored> {
        // A min-heap of the best k so far.
        let mut best: BinaryHeap<std::cmp::Reverse<Scored>> = BinaryHeap::with_capacity(k + 1);
        for (slot, (v, &live)) in self
            .vectors
            .chunks_exact(self.dim.max(1))
            .zip(&self.live)
            .enumerate()
        {
            if !live {
                continue;
            }
            let s = Scored {
                score: dot(query, v),
                slot: slot as u32,
            };
            if best.len() < k {
                best.push(std::cmp::Reverse(s));
            } else if best.peek().is_some_and(|w| s > w.0) {
                best.pop();
                best.push(std::cmp::Reverse(s));
            }
        }
        let mut out: Vec<Scored> = best.into_iter().map(|r| r.0).collect();
        out.sort_by(|a, b| b.cmp(a));
        out
    }

    fn slot_vector(&self, slot: u32) -> Option<&[f32]> {
        let start = slot as usize * self.dim;
        self.vectors.get(start..start + self.dim)
    }

    /// Drops dead slots and rebuilds the graph (if above the threshold) from the live faces,
    /// in slot order.
    fn rebuild(&mut self) {
        let mut keys = Vec::with_capacity(self.slots.len());
        let mut vectors = Vec::with_capacity(self.slots.len() * self.dim);
        for (slot, (&key, &live)) in self.keys.iter().zip(&self.live).enumerate() {
            if let (true, Some(v)) = (live, self.slot_vector(slot as u32)) {
                keys.push(key);
                vectors.extend_from_slice(v);
            }
        }
        self.slots = keys
            .iter()
            .enumerate()
            .map(|(i, &k)| (k, i as u32))
            .collect();
        self.live = vec![true; keys.len()];
        self.keys = keys;
        self.vectors = vectors;
        self.dead = 0;
        self.graph = None;
        if self.slots.len() >= self.cfg.approximate_above {
            let mut g = Graph::new(self.cfg);
            for slot in 0..self.keys.len() as u32 {
                g.insert(self, slot);
            }
            self.graph = Some(g);
        }
    }

    /// Checks the index's internal consistency (tests call it after every change).
    pub fn check_invariants(&self) {
        assert_eq!(self.keys.len(), self.live.len());
        assert_eq!(self.vectors.len(), self.keys.len() * self.dim);
        assert_eq!(self.live.iter().filter(|l| !**l).count(), self.dead);
        assert_eq!(self.live.iter().filter(|l| **l).count(), self.slots.len());
        for (&key, &slot) in &self.slots {
            assert_eq!(self.keys.get(slot as usize), Some(&key));
            assert_eq!(self.live.get(slot as usize), Some(&true));
        }
        if let Some(g) = &self.graph {
            assert_eq!(g.links.len(), self.keys.len(), "every slot is in the graph");
            for (slot, levels) in g.links.iter().enumerate() {
                for (level, links) in levels.iter().enumerate() {
                    let max = if level == 0 { 2 * g.cfg.m } else { g.cfg.m };
                    assert!(links.len() <= max, "slot {slot} level {level}");
                    for &n in links {
                        assert!((n as usize) < self.keys.len());
                        assert_ne!(n as usize, slot);
                        assert!(g.links.get(n as usize).is_some_and(|l| l.len() > level));
                    }
                }
            }
        }
    }
}

/// The dot product, in eight lanes the compiler vectorises.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (ac, ar) = a.as_chunks::<8>();
    let (bc, br) = b.as_chunks::<8>();
    let mut acc = [0f32; 8];
    for (x, y) in ac.iter().zip(bc) {
        for ((s, p), q) in acc.iter_mut().zip(x).zip(y) {
            *s += p * q;
        }
    }
    let tail: f32 = ar.iter().zip(br).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// A slot and its similarity to a query, ordered by similarity (then slot, for determinism).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Scored {
    score: f32,
    slot: u32,
}

impl Eq for Scored {}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.slot.cmp(&self.slot))
    }
}

/// The HNSW graph over an index's slots.
#[derive(Debug, Clone)]
struct Graph {
    cfg: IndexConfig,
    /// Per slot, per level (0 up to the slot's level), its neighbours.
    links: Vec<Vec<Vec<u32>>>,
    entry: Option<u32>,
    rng: u64,
}

/// The highest level a node may get (a million faces need about 5 with M = 16).
const MAX_LEVEL: usize = 12;

impl Graph {
    fn new(cfg: IndexConfig) -> Self {
        Self {
            cfg,
            links: Vec::new(),
            entry: None,
            rng: cfg.seed,
        }
    }

    fn max_links(&self, level: usize) -> usize {
        if level == 0 {
            2 * self.cfg.m
        } else {
            self.cfg.m
        }
    }

    fn top_level(&self) -> usize {
        self.entry
            .and_then(|e| self.links.get(e as usize))
            .map_or(0, |l| l.len().saturating_sub(1))
    }

    /// A level drawn as `floor(-ln(U) * mL)`.
    fn random_level(&mut self) -> usize {
        // SplitMix64.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let u = ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let ml = 1.0 / (self.cfg.m.max(2) as f64).ln();
        ((-u.ln() * ml) as usize).min(MAX_LEVEL)
    }

    fn neighbours(&self, slot: u32, level: usize) -> &[u32] {
        self.links
            .get(slot as usize)
            .and_then(|l| l.get(level))
            .map_or(&[], Vec::as_slice)
    }

    /// Algorithm 1: links slot `q` (the next slot, `links.len()`) into the graph.
    fn insert(&mut self, index: &FaceIndex, q: u32) {
        let level = self.random_level();
        debug_assert_eq!(q as usize, self.links.len());
        self.links.push(vec![Vec::new(); level + 1]);
        let Some(entry) = self.entry else {
            self.entry = Some(q);
            return;
        };
        let Some(query) = index.slot_vector(q) else {
            return;
        };
        let top = self.top_level();
        let mut eps = vec![Scored {
            score: index.slot_vector(entry).map_or(-1.0, |v| dot(query, v)),
            slot: entry,
        }];
        for l in (level + 1..=top).rev() {
            eps = self.search_layer(index, query, &eps, 1, l, false);
        }
        for l in (0..=level.min(top)).rev() {
            let candidates =
                self.search_layer(index, query, &eps, self.cfg.ef_construction, l, false);
            let max = self.max_links(l);
            let chosen = select(index, &candidates, self.cfg.m);
            if let Some(mine) = self.links.get_mut(q as usize).and_then(|x| x.get_mut(l)) {
                *mine = chosen.iter().map(|c| c.slot).collect();
            }
            for c in &chosen {
                self.link(index, c.slot, q, l, max);
            }
            eps = candidates;
        }
        if level > top {
            self.entry = Some(q);
        }
    }

    /// Adds `to` to `from`'s links at `level`, shrinking them with the heuristic if too many.
    fn link(&mut self, index: &FaceIndex, from: u32, to: u32, level: usize, max: usize) {
        let Some(list) = self
            .links
            .get_mut(from as usize)
            .and_then(|x| x.get_mut(level))
        else {
            return;
        };
        list.push(to);
        if list.len() <= max {
            return;
        }
        let Some(base) = index.slot_vector(from) else {
            return;
        };
        let mut scored: Vec<Scored> = list
            .iter()
            .filter_map(|&n| {
                Some(Scored {
                    score: dot(base, index.slot_vector(n)?),
                    slot: n,
                })
            })
            .collect();
        scored.sort_by(|a, b| b.cmp(a));
        let kept = select(index, &scored, max);
        if let Some(list) = self
            .links
            .get_mut(from as usize)
            .and_then(|x| x.get_mut(level))
        {
            *list = kept.iter().map(|c| c.slot).collect();
        }
    }

    /// Algorithm 2: the `ef` nodes nearest `query` at `level`, best first, starting from
    /// `eps`. With `live_only`, dead slots are walked through but not returned.
    fn search_layer(
        &self,
        index: &FaceIndex,
        query: &[f32],
        eps: &[Scored],
        ef: usize,
        level: usize,
        live_only: bool,
    ) -> Vec<Scored> {
        let is_live = |s: u32| !live_only || index.live.get(s as usize).copied().unwrap_or(false);
        let mut visited = vec![0u64; self.links.len().div_ceil(64)];
        let mut visit = |s: u32| -> bool {
            let (w, b) = ((s / 64) as usize, s % 64);
            match visited.get_mut(w) {
                Some(word) if *word & (1 << b) == 0 => {
                    *word |= 1 << b;
                    true
                }
                _ => false,
            }
        };
        // Candidates: best first. Results: worst first, at most ef.
        let mut candidates: BinaryHeap<Scored> = BinaryHeap::new();
        let mut results: BinaryHeap<std::cmp::Reverse<Scored>> = BinaryHeap::new();
        for &e in eps {
            if visit(e.slot) {
                candidates.push(e);
                if is_live(e.slot) {
                    results.push(std::cmp::Reverse(e));
                }
            }
        }
        while results.len() > ef {
            results.pop();
        }
        while let Some(c) = candidates.pop() {
            if results.len() >= ef && results.peek().is_some_and(|w| c.score < w.0.score) {
                break;
            }
            for &n in self.neighbours(c.slot, level) {
                if !visit(n) {
                    continue;
                }
                let Some(v) = index.slot_vector(n) else {
                    continue;
                };
                let s = Scored {
                    score: dot(query, v),
                    slot: n,
                };
                let worst = results.peek().map(|w| w.0.score);
                if results.len() < ef || worst.is_some_and(|w| s.score > w) {
                    candidates.push(s);
                    if is_live(n) {
                        results.push(std::cmp::Reverse(s));
                        if results.len() > ef {
                            results.pop();
                        }
                    }
                }
            }
        }
        let mut out: Vec<Scored> = results.into_iter().map(|r| r.0).collect();
        out.sort_by(|a, b| b.cmp(a));
        out
    }

    /// Algorithm 5: the `k` live nodes nearest `query`.
    fn search(&self, index: &FaceIndex, query: &[f32], k: usize, ef: usize) -> Vec<Scored> {
        let Some(entry) = self.entry else {
            return Vec::new();
        };
        let mut eps = vec![Scored {
            score: index.slot_vector(entry).map_or(-1.0, |v| dot(query, v)),
            slot: entry,
        }];
        for l in (1..=self.top_level()).rev() {
            eps = self.search_layer(index, query, &eps, 1, l, false);
        }
        let mut found = self.search_layer(index, query, &eps, ef, 0, true);
        found.truncate(k);
        found
    }
}

/// Algorithm 4 (without extending or keeping pruned candidates): from `candidates`, best
/// first, keeps each one that is nearer the query than any already kept, up to `m`. This
/// keeps links pointing in diverse directions, which is what gives HNSW its recall on
/// clustered data.
fn select(index: &FaceIndex, candidates: &[Scored], m: usize) -> Vec<Scored> {
    let mut kept: Vec<Scored> = Vec::with_capacity(m);
    for &c in candidates {
        if kept.len() >= m {
            break;
        }
        let Some(cv) = index.slot_vector(c.slot) else {
            continue;
        };
        let diverse = kept.iter().all(|r| {
            index
                .slot_vector(r.slot)
                .is_none_or(|rv| dot(cv, rv) < c.score)
        });
        if diverse {
            kept.push(c);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    /// Deterministic pseudo-random unit vectors.
    pub(crate) struct Gen(u64);

    impl Gen {
        pub(crate) fn next_f32(&mut self) -> f32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        }

        /// Roughly Gaussian (sum of uniforms).
        pub(crate) fn gauss(&mut self) -> f32 {
            (0..4).map(|_| self.next_f32()).sum::<f32>() * 0.866
        }

        pub(crate) fn unit(&mut self, dim: usize) -> Vec<f32> {
            normalise((0..dim).map(|_| self.gauss()).collect())
        }

        /// `base` plus noise of relative size `noise`, normalised.
        pub(crate) fn near(&mut self, base: &[f32], noise: f32) -> Vec<f32> {
            let scale = noise / (base.len() as f32).sqrt();
            normalise(base.iter().map(|b| b + self.gauss() * scale).collect())
        }
    }

    pub(crate) fn normalise(mut v: Vec<f32>) -> Vec<f32> {
        let n = dot(&v, &v).sqrt();
        v.iter_mut().for_each(|x| *x /= n);
        v
    }

    fn cfg(approximate_above: usize) -> IndexConfig {
        IndexConfig {
            approximate_above,
            ..IndexConfig::default()
        }
    }

    #[test]
    fn dot_matches_the_naive_sum() {
        let mut g = Gen(7);
        for len in [0, 1, 7, 8, 9, 512, 515] {
            let a: Vec<f32> = (0..len).map(|_| g.next_f32()).collect();
            let b: Vec<f32> = (0..len).map(|_| g.next_f32()).collect();
            let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - naive).abs() < 1e-4, "{len}");
        }
    }

    #[test]
    fn exact_search_insert_replace_remove() {
        let mut g = Gen(1);
        let mut idx = FaceIndex::new(16, cfg(1000));
        assert!(idx.search(&g.unit(16), 3).is_empty());
        let vs: Vec<Vec<f32>> = (0..50).map(|_| g.unit(16)).collect();
        for (i, v) in vs.iter().enumerate() {
            idx.insert(i as u128, v).unwrap();
        }
        idx.check_invariants();
        assert_eq!(idx.len(), 50);
        let hits = idx.search(&vs[7], 3);
        assert_eq!(hits.len(), 3);
        assert_eq!(hits[0].key, 7);
        assert!((hits[0].cosine - 1.0).abs() < 1e-5);
        assert!(hits[0].cosine >= hits[1].cosine && hits[1].cosine >= hits[2].cosine);
        // Replace key 7 with the vector of 8: both now match that vector exactly.
        idx.insert(7, &vs[8]).unwrap();
        idx.check_invariants();
        assert_eq!(idx.len(), 50);
        let hits = idx.search(&vs[8], 2);
        let mut keys: Vec<u128> = hits.iter().map(|h| h.key).collect();
        keys.sort_unstable();
        assert_eq!(keys, [7, 8]);
        assert!(idx.remove(8));
        assert!(!idx.remove(8));
        idx.check_invariants();
        assert_eq!(idx.search(&vs[8], 1)[0].key, 7);
        assert_eq!(idx.search(&vs[0], 100).len(), 49);
        assert_eq!(
            idx.insert(1, &[0.0; 3]),
            Err(IndexError::Dimension {
                expected: 16,
                found: 3
            })
        );
        assert_eq!(idx.insert(1, &[f32::NAN; 16]), Err(IndexError::NotFinite));
        // The failed inserts changed nothing.
        assert!(idx.contains(1));
        idx.check_invariants();
    }

    #[test]
    fn the_graph_is_built_dropped_and_compacted() {
        let mut g = Gen(2);
        let mut idx = FaceIndex::new(32, cfg(200));
        for i in 0..199u128 {
            idx.insert(i, &g.unit(32)).unwrap();
        }
        assert!(!idx.is_approximate());
        idx.insert(199, &g.unit(32)).unwrap();
        assert!(idx.is_approximate());
        idx.check_invariants();
        for i in 200..400u128 {
            idx.insert(i, &g.unit(32)).unwrap();
        }
        idx.check_invariants();
        // Remove a quarter and more: compaction.
        for i in 0..120u128 {
            idx.remove(i);
            idx.check_invariants();
        }
        assert_eq!(idx.len(), 280);
        assert!(idx.dead < 100, "compacted: {} dead", idx.dead);
        assert!(idx.is_approximate());
        // Every live face finds itself first.
        for i in 120..400u128 {
            let v = idx.vector(i).unwrap().to_vec();
            assert_eq!(idx.search(&v, 1)[0].key, i);
        }
        // Under half the threshold: back to exact.
        for i in 120..320u128 {
            idx.remove(i);
        }
        idx.check_invariants();
        assert!(!idx.is_approximate());
        assert_eq!(idx.len(), 80);
        assert!(idx.search(&g.unit(32), 500).iter().all(|n| n.key >= 320));
    }

    /// Recall against exact search at 10,000 faces of 512 values, the way faces are searched:
    /// 1,000 identities of 10 photos each, queried with another photo of a known identity.
    /// Also on uniformly random queries, the hardest case (no query has a clear neighbour).
    #[test]
    fn recall_at_10k_against_exact_search() {
        const DIM: usize = 512;
        let mut g = Gen(3);
        let mut idx = FaceIndex::new(DIM, cfg(5_000));
        let people: Vec<Vec<f32>> = (0..1000).map(|_| g.unit(DIM)).collect();
        let mut key = 0u128;
        for p in &people {
            for _ in 0..10 {
                // Photos of one person: cosine about 0.6-0.7 to each other, as embeddings of
                // the same face in different photos are.
                idx.insert(key, &g.near(p, 0.8)).unwrap();
                key += 1;
            }
        }
        assert!(idx.is_approximate());
        idx.check_invariants();
        let (mut hit1, mut hit10, mut random_hit1) = (0usize, 0usize, 0usize);
        let queries = 200;
        for q in 0..queries {
            let query = g.near(&people[q * 5], 0.8);
            let exact = idx.search_exact(&query, 10);
            let approx = idx.search(&query, 10);
            assert_eq!(approx.len(), 10);
            if approx[0].key == exact[0].key {
                hit1 += 1;
            }
            hit10 += approx
                .iter()
                .filter(|a| exact.iter().any(|e| e.key == a.key))
                .count();
            let random = g.unit(DIM);
            if idx.search(&random, 1)[0].key == idx.search_exact(&random, 1)[0].key {
                random_hit1 += 1;
            }
        }
        let recall1 = hit1 as f64 / queries as f64;
        let recall10 = hit10 as f64 / (queries * 10) as f64;
        let random1 = random_hit1 as f64 / queries as f64;
        eprintln!(
            "recall@1 {recall1:.3}, recall@10 {recall10:.3}, random queries recall@1 {random1:.3}"
        );
        assert!(recall1 >= 0.95, "recall@1 {recall1}");
        assert!(recall10 >= 0.9, "recall@10 {recall10}");
        assert!(random1 >= 0.5, "random-query recall@1 {random1}");
    }
}
