//! SIGKILL at arbitrary moments while log batches and fragments are written together, in a
//! real process on the real filesystem: the child (`examples/crash_writer.rs` in its `logs`
//! mode) reports each fragment and each batch once durable; it is killed after a while, the
//! store is opened here, and every batch it reported must read back whole and byte-identical,
//! every entry in the store must be one that was appended (whole batches only), and the
//! positions (and fragment numbers) handed out after each restart must be larger than any
//! before it. The same data directory goes through every round.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil_store::check::check;
use vigil_store::conformance::{clock, payload};
use vigil_store::{LogGroupRef, Position, Store, StoreConfig};

const ROUNDS: u64 = 12;
const GROUPS: [&str; 2] = ["crash-logs-1d", "crash-logs-1w"];
const LOGS: u32 = 4;

/// A batch the child reported durable.
#[derive(Debug, Clone, Copy)]
struct Batch {
    group: u64,
    log: u32,
    first: Position,
    count: usize,
    tag: u64,
    crc: u32,
    round: u64,
}

fn writer_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("examples").join("crash_writer"))
        .unwrap();
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build --profile <same profile> -p vigil-store \
         --example crash_writer` (a full `cargo test -p vigil-store` does)",
        path.display()
    );
    path
}

fn config(dir: &std::path::Path) -> StoreConfig {
    let mut cfg = StoreConfig::new(dir);
    cfg.retention_interval_ms = 0;
    cfg.min_free_bytes = 0;
    cfg
}

/// Runs the child for `run_ms` and kills it; returns its report lines.
fn run_child(binary: &PathBuf, dir: &std::path::Path, round: u64, run_ms: u64) -> Vec<String> {
    let checkpoint_ms = if round % 3 == 2 { 3_600_000 } else { 50 };
    let mut child = Command::new(binary)
        .arg(dir)
        .arg((round + 101).to_string())
        .arg(checkpoint_ms.to_string())
        .arg("logs")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    let mut stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_millis(run_ms);
    while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    let errors = errors.join().unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "round {round}: the writer exited by itself ({status}): {errors}"
    );
    lines.join().unwrap()
}

#[test]
fn sigkill_loses_no_acknowledged_log_batch() {
    let binary = writer_binary();
    let dir = tempfile::tempdir().unwrap();
    let mut batches: Vec<Batch> = Vec::new();
    let mut fragments: Vec<(u64, u64)> = Vec::new();
    // The largest number (batch or fragment) in the store after the last reopen.
    let mut max_before = 0u64;
    let started = Instant::now();
    for round in 0..ROUNDS {
        let run_ms = 100 + (round * 7919 + 13) % 401;
        let lines = run_child(&binary, dir.path(), round, run_ms);
        let mut new_numbers = Vec::new();
        for line in &lines {
            let f: Vec<&str> = line.split_whitespace().collect();
            match f.first().copied() {
                Some("DURABLE") if f.len() == 5 => {
                    let number: u64 = f[2].parse().unwrap();
                    fragments.push((f[1].parse().unwrap(), number));
                    new_numbers.push(number);
                }
                Some("LOG") if f.len() == 7 => {
                    let b = Batch {
                        group: f[1].parse().unwrap(),
                        log: f[2].parse().unwrap(),
                        first: Position::from_u128(f[3].parse().unwrap()),
                        count: f[4].parse().unwrap(),
                        tag: f[5].parse().unwrap(),
                        crc: f[6].parse().unwrap(),
                        round,
                    };
                    new_numbers.push(b.first.batch());
                    batches.push(b);
                }
                _ => panic!("unexpected output: {line:?}"),
            }
        }
        // One sequence for both kinds, increasing across crashes and restarts.
        assert!(
            new_numbers.iter().all(|&n| n > max_before),
            "round {round}: a number at or below {max_before} was handed out after the restart"
        );

        let store = Store::open(config(dir.path()), Arc::new(clock())).unwrap();
        max_before = verify(&store, &batches, &fragments, round);
        store.close().unwrap();
        drop(store);
    }
    let rounds_with_batches = batches
        .iter()
        .map(|b| b.round)
        .collect::<BTreeSet<_>>()
        .len();
    eprintln!(
        "log crash test: {ROUNDS} kills, {} batches ({} entries) and {} fragments reported \
         durable, in {rounds_with_batches} rounds, {:.1} s",
        batches.len(),
        batches.iter().map(|b| b.count).sum::<usize>(),
        fragments.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        rounds_with_batches as u64 >= ROUNDS / 2,
        "too few rounds got a batch written: {rounds_with_batches}"
    );
}

/// Checks the store against everything reported so far; returns the largest number in it.
fn verify(store: &Store, batches: &[Batch], fragments: &[(u64, u64)], round: u64) -> u64 {
    for b in batches {
        let got = store
            .read_log(b.group, b.log, b.first, b.count, usize::MAX)
            .unwrap_or_else(|e| panic!("round {round}: batch {} lost: {e}", b.first));
        assert_eq!(
            got.len(),
            b.count,
            "after the kill of round {round}: batch {} (reported durable in round {}) lost",
            b.first,
            b.round
        );
        let mut crc = crc32fast::Hasher::new();
        for (i, e) in got.iter().enumerate() {
            assert_eq!(e.position, Position::new(b.first.batch(), i as u16));
            let key = std::str::from_utf8(&e.key).unwrap();
            assert!(key.starts_with(&format!("{}/{i}/", b.tag)), "{key}");
            crc.update(&e.data);
        }
        assert_eq!(
            crc.finalize(),
            b.crc,
            "round {round}: batch {} differs",
            b.first
        );
    }
    // Every entry of every log is one that was appended, in whole batches, in increasing
    // positions (reported or not: some were durable when the kill came, unreported).
    let mut max = 0u64;
    let mut in_store = 0u64;
    for name in GROUPS {
        let Ok(g) = store.log_group(LogGroupRef::Name(name)) else {
            continue;
        };
        for log in 0..LOGS {
            let mut from = Position::MIN;
            let mut last: Option<Position> = None;
            let mut sizes: BTreeMap<u64, (usize, usize)> = BTreeMap::new();
            loop {
                let got = store.read_log(g.id, log, from, 500, 8 << 20).unwrap();
                let Some(end) = got.last() else { break };
                from = end.position.next();
                for e in &got {
                    assert!(last.is_none_or(|l| l < e.position));
                    last = Some(e.position);
                    let key = std::str::from_utf8(&e.key).unwrap();
                    let f: Vec<u64> = key.split('/').map(|p| p.parse().unwrap()).collect();
                    let (tag, i, n, len) = (f[0], f[1], f[2] as usize, f[3] as usize);
                    assert_eq!(u64::from(e.position.index()), i);
                    assert!(e.data[..] == payload(tag << 16 | i, len)[..], "entry {key}");
                    let s = sizes.entry(e.position.batch()).or_insert((0, n));
                    s.0 += 1;
                    assert_eq!(s.1, n);
                    in_store += 1;
                }
            }
            for (batch, (seen, n)) in sizes {
                assert_eq!(seen, n, "round {round}: batch {batch} is not whole");
            }
            if let Some(l) = last {
                max = max.max(l.batch());
            }
        }
    }
    let report = check(store, false, &mut |_, _, _| {}).unwrap();
    assert!(
        report.is_clean(),
        "round {round}: check found problems: {report:#?}"
    );
    assert!(report.log_batches >= batches.len() as u64, "{report:#?}");
    assert!(in_store >= batches.iter().map(|b| b.count as u64).sum::<u64>());
    // Every fragment reported durable is there too (the fragment crash test reads them back
    // byte for byte); unreported ones may have higher numbers: the index knows them all.
    for &(stream, number) in fragments {
        assert!(
            store.fragment(stream, number).is_ok(),
            "round {round}: fragment {number} of stream {stream} lost"
        );
    }
    for rec in store.index().all_streams().unwrap() {
        if let Some(m) = store.index().last_fragment(rec.id).unwrap() {
            max = max.max(m.number).max(m.header_id);
        }
    }
    max
}
