//! Face search at 10,000 faces (`bench/README.md`): the HNSW graph against exact search (a dot
//! product with every face) on the same collection, in the same run.
//!
//! The collection is 1,000 synthetic identities of 10 embeddings each (512 values, each photo
//! of a person at cosine about 0.6 to the others), queried with a new embedding of a known
//! identity, as SearchFacesByImage does. Exact search is the reference: what the index must
//! beat to be worth having, and the answer its recall is measured against.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use vigil_faces::EMBEDDING_DIM;
use vigil_faces::index::{FaceIndex, IndexConfig, dot};

const FACES: usize = 10_000;
/// Search at 10,000 faces must answer within this (ms, one core, MaxFaces 10).
const TARGET_MS: f64 = 5.0;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |f: &str| args.iter().any(|a| a == f);
    let test_mode = flag("--test") || !flag("--bench");
    let quick = test_mode || flag("--quick");
    let list = flag("--list");
    if list {
        return;
    }

    let mut g = Gen(42);
    let people: Vec<Vec<f32>> = (0..FACES / 10).map(|_| g.unit()).collect();
    let vectors: Vec<Vec<f32>> = people
        .iter()
        .flat_map(|p| (0..10).map(|_| g.near(p)).collect::<Vec<_>>())
        .collect();
    let queries: Vec<Vec<f32>> = (0..200)
        .map(|i| g.near(&people[i * 5 % people.len()]))
        .collect();

    let start = Instant::now();
    let mut approx = FaceIndex::new(
        EMBEDDING_DIM,
        IndexConfig {
            approximate_above: 1,
            ..IndexConfig::default()
        },
    );
    for (i, v) in vectors.iter().enumerate() {
        approx.insert(i as u128, v).unwrap();
    }
    let build = start.elapsed();
    let mut exact = FaceIndex::new(
        EMBEDDING_DIM,
        IndexConfig {
            approximate_above: usize::MAX,
            ..IndexConfig::default()
        },
    );
    for (i, v) in vectors.iter().enumerate() {
        exact.insert(i as u128, v).unwrap();
    }

    let mut c = Criterion::default().configure_from_args();
    {
        let mut group = c.benchmark_group("search-10k");
        let mut qi = 0;
        group.bench_function("hnsw", |b| {
            b.iter(|| {
                qi = (qi + 1) % queries.len();
                black_box(approx.search(&queries[qi], 10))
            });
        });
        group.bench_function("exact", |b| {
            b.iter(|| {
                qi = (qi + 1) % queries.len();
                black_box(exact.search(&queries[qi], 10))
            });
        });
        group.finish();
    }
    c.final_summary();

    // Interleaved medians, and recall@1 of the graph against exact search.
    let reps = if quick { 3 } else { 21 };
    let (mut t_approx, mut t_exact) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        t_approx.push(time(|| {
            for q in &queries {
                black_box(approx.search(q, 10));
            }
        }));
        t_exact.push(time(|| {
            for q in &queries {
                black_box(exact.search(q, 10));
            }
        }));
    }
    let per = |t: &mut Vec<Duration>| median(t).as_secs_f64() * 1e3 / queries.len() as f64;
    let (ms_approx, ms_exact) = (per(&mut t_approx), per(&mut t_exact));
    let hits = queries
        .iter()
        .filter(|q| approx.search(q, 1)[0].key == exact.search(q, 1)[0].key)
        .count();
    println!(
        "\n{FACES} faces of {EMBEDDING_DIM} values: graph built in {:.2} s ({:.3} ms a face)",
        build.as_secs_f64(),
        build.as_secs_f64() * 1e3 / FACES as f64
    );
    println!(
        "search ms at 10,000 faces: hnsw {ms_approx:.3} ms, exact {ms_exact:.3} ms, \
         speed-up {:.1}x, recall@1 {:.3} (target <= {TARGET_MS} ms){}",
        ms_exact / ms_approx,
        hits as f64 / queries.len() as f64,
        if ms_approx <= TARGET_MS {
            ""
        } else {
            " MISSED"
        }
    );
}

fn time(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

/// Deterministic pseudo-random embeddings.
struct Gen(u64);

impl Gen {
    fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }

    fn gauss(&mut self) -> f32 {
        (0..4).map(|_| self.next_f32()).sum::<f32>() * 0.866
    }

    fn unit(&mut self) -> Vec<f32> {
        normalise((0..EMBEDDING_DIM).map(|_| self.gauss()).collect())
    }

    fn near(&mut self, base: &[f32]) -> Vec<f32> {
        let scale = 0.8 / (base.len() as f32).sqrt();
        normalise(base.iter().map(|b| b + self.gauss() * scale).collect())
    }
}

fn normalise(mut v: Vec<f32>) -> Vec<f32> {
    let n = dot(&v, &v).sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}
