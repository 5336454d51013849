//! Writes fragments (and log batches) into a store until it is killed: the child process of
//! the SIGKILL tests (`tests/store/crash.rs`, `tests/store/crash_logs.rs`).
//!
//! Usage: `crash_writer <data dir> <seed> <checkpoint interval ms> [logs]`
//!
//! Opens the store on the real filesystem (creating or reusing three streams), then writes
//! fragments of pseudo-random sizes from several threads forever. Each fragment's bytes are
//! `conformance::payload(p, len)` where `p` is also its producer timestamp; once a fragment is
//! durable it prints `DURABLE <stream id> <fragment number> <p> <len>` and flushes, so that
//! whatever the killer has read was acknowledged before the kill.
//!
//! With `logs`, two more threads append batches of entries to four logs of two log groups
//! (creating or reusing them) at the same time. Every entry names itself: key
//! `<tag>/<index>/<count>/<len>`, data `payload(tag << 16 | index, len)`, the tag unique to
//! the batch. Once a batch is durable it prints `LOG <group id> <log> <first position>
//! <count> <tag> <CRC-32 of the entries' data, concatenated>` and flushes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use vigil_store::conformance::payload;
use vigil_store::{
    LogGroupRef, NewEntry, NewLogGroup, NewStream, Store, StoreConfig, StreamRef, SystemClock,
};

const THREADS: u64 = 4;
const LOG_THREADS: u64 = 2;
const LOG_GROUPS: [(&str, u32); 2] = [("crash-logs-1d", 24), ("crash-logs-1w", 168)];
const STREAMS: [(&str, u32); 3] = [("crash-1h", 1), ("crash-1d", 24), ("crash-1m", 720)];
/// The track header every stream uses.
const HEADER: &[u8] = b"\x1a\x45\xdf\xa3 crash writer track header";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let logs = args.get(4).map(String::as_str) == Some("logs");
    if !(args.len() == 4 || args.len() == 5 && logs) {
        eprintln!("usage: crash_writer <data dir> <seed> <checkpoint interval ms> [logs]");
        std::process::exit(2);
    }
    let seed: u64 = args[2].parse().expect("seed");
    let mut cfg = StoreConfig::new(&args[1]);
    cfg.checkpoint_interval_ms = args[3].parse().expect("checkpoint interval");
    cfg.retention_interval_ms = 0;
    cfg.min_free_bytes = 0;
    // Segments rotate often, so crashes land around rotations too.
    cfg.segment_max_bytes = 1 << 20;
    let store = Store::open(cfg, Arc::new(SystemClock)).expect("opening the store");

    let streams: Vec<(u64, u64)> = STREAMS
        .iter()
        .map(|&(name, hours)| {
            let id = match store.stream(StreamRef::Name(name)) {
                Ok(rec) => rec.id,
                Err(_) => {
                    store
                        .create_stream(NewStream {
                            name: name.into(),
                            data_retention_hours: hours,
                            ..NewStream::default()
                        })
                        .expect("creating a stream")
                        .id
                }
            };
            (id, store.register_header(id, HEADER).expect("header"))
        })
        .collect();

    // Writers run until the process is killed; one returns only on a failure it has reported,
    // and then the process exits with an error, so the test sees it.
    let (failed, failure) = std::sync::mpsc::channel();
    for t in 0..THREADS {
        let (store, streams, failed) = (store.clone(), streams.clone(), failed.clone());
        std::thread::spawn(move || {
            writer(&store, &streams, seed, t);
            let _ = failed.send(());
        });
    }
    if logs {
        let groups: Vec<u64> = LOG_GROUPS
            .iter()
            .map(
                |&(name, hours)| match store.log_group(LogGroupRef::Name(name)) {
                    Ok(rec) => rec.id,
                    Err(_) => {
                        store
                            .create_log_group(NewLogGroup {
                                retention_hours: hours,
                                ..NewLogGroup::new(name)
                            })
                            .expect("creating a log group")
                            .id
                    }
                },
            )
            .collect();
        for t in 0..LOG_THREADS {
            let (store, groups, failed) = (store.clone(), groups.clone(), failed.clone());
            std::thread::spawn(move || {
                log_writer(&store, &groups, seed, THREADS + t);
                let _ = failed.send(());
            });
        }
    }
    let _ = failure.recv();
    std::process::exit(1);
}

fn log_writer(store: &Store, groups: &[u64], seed: u64, thread: u64) {
    let mut rng = (seed * 1_000 + thread).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let mut pending = Vec::new();
    for counter in 0u64.. {
        let group = groups[(next() % groups.len() as u64) as usize];
        let log = (next() % 4) as u32;
        let tag = (seed << 40) | (thread << 32) | counter;
        let n = 1 + (next() % 20) as usize;
        let entries: Vec<NewEntry> = (0..n as u64)
            .map(|i| {
                // Mostly small entries, one in forty up to 200 kB.
                let len = if next() % 40 == 0 {
                    next() % 200_000
                } else {
                    next() % 2_000
                } as usize;
                NewEntry {
                    key: Bytes::from(format!("{tag}/{i}/{n}/{len}")),
                    data: Bytes::from(payload(tag << 16 | i, len)),
                }
            })
            .collect();
        let mut crc = crc32fast::Hasher::new();
        for e in &entries {
            crc.update(&e.data);
        }
        match store.append_log(group, log, &entries) {
            Ok(p) => pending.push((p, group, log, tag, crc.finalize())),
            Err(e) => return fail(&e),
        }
        // Keep up to three batches in flight before waiting.
        if pending.len() > (next() % 4) as usize {
            for (p, group, log, tag, crc) in pending.drain(..) {
                match p.wait_blocking() {
                    Ok(done) => {
                        let mut out = std::io::stdout().lock();
                        let _ = writeln!(
                            out,
                            "LOG {group} {log} {} {} {tag} {crc}",
                            done.first.as_u128(),
                            done.entries
                        );
                        let _ = out.flush();
                    }
                    Err(e) => return fail(&e),
                }
            }
        }
    }
}

fn writer(store: &Store, streams: &[(u64, u64)], seed: u64, thread: u64) {
    let mut rng = (seed * 1_000 + thread).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let mut pending = Vec::new();
    for counter in 0u64.. {
        let (stream, header) = streams[(next() % streams.len() as u64) as usize];
        // Mostly small fragments, one in sixteen up to 300 kB.
        let len = if next() % 16 == 0 {
            1 + next() % 300_000
        } else {
            1 + next() % 20_000
        } as usize;
        // Unique across runs, threads and fragments; also the producer timestamp.
        let p = (seed << 40) | (thread << 32) | counter;
        let data = payload(p, len);
        let mut w = match store.begin_fragment(stream, header, p) {
            Ok(w) => w,
            Err(e) => return fail(&e),
        };
        let pieces = 1 + (next() % 4) as usize;
        for c in data.chunks(len.div_ceil(pieces)) {
            if let Err(e) = w.append(Bytes::copy_from_slice(c)) {
                return fail(&e);
            }
        }
        match w.finish(1000) {
            Ok(d) => pending.push((d, stream, p, len)),
            Err(e) => return fail(&e),
        }
        // Keep up to two fragments in flight before waiting.
        if pending.len() > (next() % 3) as usize {
            for (d, stream, p, len) in pending.drain(..) {
                match d.wait_blocking() {
                    Ok(m) => {
                        let mut out = std::io::stdout().lock();
                        let _ = writeln!(out, "DURABLE {stream} {} {p} {len}", m.number);
                        let _ = out.flush();
                    }
                    Err(e) => return fail(&e),
                }
            }
        }
    }
}

fn fail(e: &vigil_store::StoreError) {
    eprintln!("crash_writer: write failed: {e}");
}
