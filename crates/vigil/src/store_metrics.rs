//! The store's own figures on `/metrics`, read at every scrape ([`vigil_store::Store::stats`]
//! and the data directory's free space):
//!
//! | name | type | what |
//! |---|---|---|
//! | `vigil_store_group_commits_total` | counter | group commits (each: one write per lane, one `fdatasync` per segment, one index transaction) |
//! | `vigil_store_records_total` | counter | records made durable: fragments and data-stream batches |
//! | `vigil_store_written_bytes_total` | counter | their bytes as written to the segments |
//! | `vigil_store_fsyncs_total` | counter | segment `fdatasync`s |
//! | `vigil_store_commit_seconds_total` | counter | the commit thread's time, by `phase`: `write`, `sync`, `index` |
//! | `vigil_store_free_bytes` | gauge | free space on the data directory's filesystem |
//! | `vigil_store_min_free_bytes` | gauge | the free-space floor (`--min-free-bytes`) |

use std::fmt::Write as _;
use std::sync::Arc;

use vigil_api_common::metrics::Collector;
use vigil_store::Store;

/// A collector of the store's families; it holds the store weakly (nothing is rendered once
/// the store is gone).
pub fn collector(store: &Store) -> Collector {
    let weak = store.downgrade();
    Arc::new(move |out: &mut String| {
        if let Some(store) = weak.upgrade() {
            render(&store, out);
        }
    })
}

fn render(store: &Store, out: &mut String) {
    let s = store.stats();
    let counter = |out: &mut String, name: &str, help: &str, v: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
        );
    };
    counter(
        out,
        "vigil_store_group_commits_total",
        "Group commits of the fragment store.",
        s.batches,
    );
    counter(
        out,
        "vigil_store_records_total",
        "Records made durable (fragments and data-stream batches).",
        s.records,
    );
    counter(
        out,
        "vigil_store_written_bytes_total",
        "Bytes of durable records as written to the segments.",
        s.bytes,
    );
    counter(
        out,
        "vigil_store_fsyncs_total",
        "Segment fdatasyncs made by group commits.",
        s.syncs,
    );
    let secs = |n: u64| n as f64 / 1e9;
    let name = "vigil_store_commit_seconds_total";
    let _ = writeln!(
        out,
        "# HELP {name} Time the commit thread spent, by phase.\n# TYPE {name} counter"
    );
    for (phase, n) in [
        ("write", s.write_nanos),
        ("sync", s.sync_nanos),
        ("index", s.index_nanos),
    ] {
        let _ = writeln!(out, "{name}{{phase=\"{phase}\"}} {}", secs(n));
    }
    let gauge = |out: &mut String, name: &str, help: &str, v: u64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    };
    if let Ok(free) = store.free_space() {
        gauge(
            out,
            "vigil_store_free_bytes",
            "Free space on the data directory's filesystem.",
            free,
        );
    }
    gauge(
        out,
        "vigil_store_min_free_bytes",
        "The free-space floor the store keeps.",
        store.config().min_free_bytes,
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            vigil_store::StoreConfig::new(dir.path()),
            Arc::new(vigil_store::SystemClock),
        )
        .unwrap();
        let mut out = String::new();
        collector(&store)(&mut out);
        for name in [
            "vigil_store_group_commits_total",
            "vigil_store_records_total",
            "vigil_store_written_bytes_total",
            "vigil_store_fsyncs_total",
            "vigil_store_free_bytes",
            "vigil_store_min_free_bytes",
        ] {
            assert_eq!(
                out.matches(&format!("# TYPE {name} ")).count(),
                1,
                "{name}: {out}"
            );
        }
        assert!(out.contains("vigil_store_commit_seconds_total{phase=\"sync\"}"));
        assert!(
            out.contains("vigil_store_min_free_bytes 1073741824"),
            "{out}"
        );
    }
}
