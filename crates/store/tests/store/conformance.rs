//! The conformance suite against the embedded backend, on disk and on the fault-injecting
//! filesystem (with no faults injected).

use std::sync::Arc;

use vigil_store::conformance as suite;
use vigil_store::fs::FaultFs;
use vigil_store::{Clock, Store, StoreConfig};

fn config(dir: &std::path::Path) -> StoreConfig {
    let mut cfg = StoreConfig::new(dir);
    cfg.retention_interval_ms = 0;
    cfg.min_free_bytes = 0;
    cfg
}

macro_rules! on_disk {
    ($($name:ident),*) => {$(
        #[test]
        fn $name() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().to_owned();
            suite::$name(&move |clock: Arc<dyn Clock>| Store::open(config(&path), clock));
        }
    )*};
}

mod disk {
    use super::*;
    on_disk!(
        streams,
        round_trip,
        survives_reopen,
        time_ranges,
        retention,
        byte_budget,
        no_retention,
        retained_is_fixed_at_begin,
        delete_stream,
        key_rotation,
        tail,
        slow_reader,
        face_collections,
        log_groups,
        log_round_trip,
        log_positions,
        log_read_limits,
        log_position_at_time,
        log_retention,
        log_group_deletion,
        log_survives_reopen,
        log_subscription,
        log_key_rotation,
        logs_share_segments_with_fragments
    );
}

#[test]
fn fault_fs_passes_the_whole_suite() {
    let fs = FaultFs::new();
    let path = std::path::PathBuf::from("/vigil");
    // Every check uses its own stream names, so one directory serves them all in turn.
    suite::run_all(&|clock: Arc<dyn Clock>| {
        Store::open_with(config(&path), clock, Arc::new(fs.clone()))
    });
}

#[test]
fn plaintext_store_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    suite::run_all(&move |clock: Arc<dyn Clock>| {
        let mut cfg = config(&path);
        cfg.encryption = false;
        Store::open(cfg, clock)
    });
}
