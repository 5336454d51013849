//! Section 4, logs: durable appends of batches of entries (1 KB and 25 KB), one writer per
//! log, each waiting for its batch to be durable before the next, against the same raw disk
//! reference as the throughput section (one file, the store's record size, its fsync cadence).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::runtime::Runtime;
use vigil_store::{NewEntry, NewLogGroup, Store, SystemClock};

use super::{
    Plan, Rate, Row, config, drop_segment_cache, fresh_dir, median, payload, percentile,
    raw_throughput, remove_store, sample_commits,
};

/// Entries per append.
const BATCH: usize = 10;
/// Entry sizes measured.
const ENTRY_BYTES: [usize; 2] = [1_000, 25_000];

pub(crate) fn logs(rt: &Runtime, root: &Path, plan: &Plan) -> Vec<Row> {
    let writers: Vec<usize> = if plan.quick { vec![10] } else { vec![10, 100] };
    let pairs = if plan.quick { 1 } else { 3 };
    println!(
        "\n== logs: one writer per log appending batches of {BATCH} entries back to back, each \
         waiting for its batch to be durable;\n   raw: as for throughput ({pairs} store/raw \
         pair{}, each run {:.1} s measured after {:.1} s of warm-up)",
        if pairs == 1 { "" } else { "s" },
        plan.tp_measure.as_secs_f64(),
        plan.tp_warm.as_secs_f64()
    );
    let mut rows = Vec::new();
    for &entry in &ENTRY_BYTES {
        for &n in &writers {
            let dir = fresh_dir(root, &format!("logs-{entry}-{n}"));
            let store =
                Store::open(config(&dir, plan), Arc::new(SystemClock)).expect("the store opens");
            let group = store
                .create_log_group(NewLogGroup::new("bench"))
                .expect("create_log_group")
                .id;
            let raw_file = root.join("raw.bin");
            let mut runs: Vec<(Rate, Rate, Vec<Duration>)> = Vec::new();
            for _ in 0..pairs {
                let (s, mut lat) = appends(rt, &store, group, n, entry, plan);
                drop_segment_cache(&dir);
                let r = raw_throughput(&raw_file, s.write_len(), s.per_sync(), plan);
                lat.sort();
                println!(
                    "  {n:>4} logs x {entry:>5} B: store {:>4.0} MB/s ({:.0} entries/s), raw \
                     {:>4.0} MB/s, ratio {:.2}; {:.1} batches/fsync; append to durable p50 \
                     {:.2} ms, p99 {:.2} ms; ms per batch: store {}",
                    s.mb_s(),
                    s.stats.records as f64 * BATCH as f64 / s.secs,
                    r.mb_s(),
                    s.mb_s() / r.mb_s(),
                    s.per_sync(),
                    ms(percentile(&lat, 0.5)),
                    ms(percentile(&lat, 0.99)),
                    s.split()
                );
                runs.push((s, r, lat));
            }
            drop(store);
            remove_store(&dir);
            let ratio = median(runs.iter().map(|(s, r, _)| s.mb_s() / r.mb_s()).collect());
            let store_mb = median(runs.iter().map(|(s, _, _)| s.mb_s()).collect());
            let raw_mb = median(runs.iter().map(|(_, r, _)| r.mb_s()).collect());
            let per_sync = median(runs.iter().map(|(s, _, _)| s.per_sync()).collect());
            let mut lat: Vec<Duration> = runs.into_iter().flat_map(|(_, _, l)| l).collect();
            lat.sort();
            rows.push(Row {
                name: format!("log appends, {n} logs, {BATCH} x {} KB", entry / 1000),
                store: format!(
                    "{store_mb:.0} MB/s, p99 {:.1} ms",
                    ms(percentile(&lat, 0.99))
                ),
                reference: format!("raw {raw_mb:.0} MB/s"),
                value: format!("{ratio:.2}, {per_sync:.1} batches/fsync"),
                target: "-".into(),
                pass: None,
                disk: true,
            });
        }
    }
    rows
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `n` writers, one per log, appending batches of `BATCH` entries of `entry` bytes back to
/// back; the rate between group commits after the warm-up, and every append's time to
/// durable.
fn appends(
    rt: &Runtime,
    store: &Store,
    group: u64,
    n: usize,
    entry: usize,
    plan: &Plan,
) -> (Rate, Vec<Duration>) {
    let stop = Arc::new(AtomicBool::new(false));
    let data = payload(entry * BATCH);
    let tasks: Vec<_> = (0..n)
        .map(|log| {
            let (store, stop) = (store.clone(), stop.clone());
            let entries: Vec<NewEntry> = (0..BATCH)
                .map(|i| NewEntry {
                    key: Bytes::from(format!("partition-key-{log}-{i}")),
                    data: data.slice(i * entry..(i + 1) * entry),
                })
                .collect();
            rt.spawn(async move {
                let mut lat = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    store
                        .append_log(group, log as u32, &entries)
                        .expect("append_log")
                        .wait()
                        .await
                        .expect("a batch becomes durable");
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let rate = sample_commits(store, plan.tp_warm, plan.tp_measure);
    stop.store(true, Ordering::Relaxed);
    let lat = rt.block_on(async {
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("a writer task failed"));
        }
        all
    });
    (rate, lat)
}
