//! SIGKILL at arbitrary moments, in a real process on the real filesystem: a child
//! (`examples/crash_writer.rs`) writes fragments from several threads and reports each one
//! that is durable; it is killed after a while, the store is opened here and everything it
//! reported must read back byte for byte. The same data directory goes through every round,
//! so the store accumulates segments and crashes on top of earlier recoveries.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil_store::check::check;
use vigil_store::conformance::{clock, payload};
use vigil_store::{Store, StoreConfig};

const ROUNDS: u64 = 20;
/// The child's track header (see the example).
const HEADER: &[u8] = b"\x1a\x45\xdf\xa3 crash writer track header";

/// A fragment the child reported durable.
#[derive(Debug, Clone, Copy)]
struct Reported {
    stream: u64,
    number: u64,
    seed: u64,
    len: usize,
    round: u64,
}

fn writer_binary() -> PathBuf {
    // target/<profile>/deps/store-<hash> → target/<profile>/examples/crash_writer
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("examples").join("crash_writer"))
        .unwrap();
    assert!(
        path.exists(),
        "{} is missing: the crash test runs the crash_writer example, which `cargo test -p \
         vigil-store` builds (a `--test store` run alone does not; build it with `cargo build \
         --profile <same profile> -p vigil-store --example crash_writer`)",
        path.display()
    );
    path
}

fn parse(line: &str, round: u64) -> Reported {
    let f: Vec<&str> = line.split_whitespace().collect();
    assert!(
        f.len() == 5 && f[0] == "DURABLE",
        "unexpected output: {line:?}"
    );
    Reported {
        stream: f[1].parse().unwrap(),
        number: f[2].parse().unwrap(),
        seed: f[3].parse().unwrap(),
        len: f[4].parse().unwrap(),
        round,
    }
}

#[test]
fn sigkill_loses_nothing_reported_durable() {
    let binary = writer_binary();
    let dir = tempfile::tempdir().unwrap();
    let mut reported: Vec<Reported> = Vec::new();
    let started = Instant::now();
    let (mut repairs, mut reindexed) = (Vec::new(), 0);
    for round in 0..ROUNDS {
        // Checkpoints every 50 ms, or never (recovery re-indexes everything from the segments).
        let checkpoint_ms = if round % 3 == 2 { 3_600_000 } else { 50 };
        let run_ms = 50 + (round * 7919 + 13) % 451; // 50..=500, a different one each round
        let mut child = Command::new(&binary)
            .arg(dir.path())
            .arg((round + 1).to_string())
            .arg(checkpoint_ms.to_string())
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
        // Let it run; stop early if it dies by itself.
        let deadline = Instant::now() + Duration::from_millis(run_ms);
        while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        let lines = lines.join().unwrap();
        let errors = errors.join().unwrap();
        assert_eq!(
            status.signal(),
            Some(9),
            "round {round}: the writer exited by itself ({status}): {errors}"
        );
        let new: Vec<Reported> = lines.iter().map(|l| parse(l, round)).collect();
        // Numbers keep increasing across crashes and restarts.
        let before = reported.iter().map(|r| r.number).max().unwrap_or(0);
        assert!(new.iter().all(|r| r.number > before), "round {round}");
        reported.extend(new);

        let store = Store::open(config(dir.path()), Arc::new(clock())).unwrap();
        repairs.extend(store.recovery_report().repairs.iter().cloned());
        reindexed += store.recovery_report().reindexed;
        verify(&store, &reported, round);
        store.close().unwrap();
        drop(store);
    }
    let rounds_with_writes = reported
        .iter()
        .map(|r| r.round)
        .collect::<BTreeSet<_>>()
        .len();
    eprintln!(
        "crash test: {ROUNDS} kills, {} fragments reported durable ({} MB) in {rounds_with_writes} \
         rounds, {reindexed} re-indexed from segments on open, {:.1} s; repairs: {repairs:#?}",
        reported.len(),
        reported.iter().map(|r| r.len).sum::<usize>() / 1_000_000,
        started.elapsed().as_secs_f64()
    );
    assert!(
        rounds_with_writes as u64 >= ROUNDS / 2,
        "too few rounds got anything written: {rounds_with_writes}"
    );
}

fn config(dir: &std::path::Path) -> StoreConfig {
    let mut cfg = StoreConfig::new(dir);
    cfg.retention_interval_ms = 0;
    cfg.min_free_bytes = 0;
    cfg
}

fn verify(store: &Store, reported: &[Reported], round: u64) {
    // Everything reported durable, in any round so far, reads back byte for byte.
    for r in reported {
        let f = store.read_fragment(r.stream, r.number).unwrap_or_else(|e| {
            panic!(
                "after the kill of round {round}: fragment {} of stream {} (reported durable in \
                 round {}) is lost: {e}",
                r.number, r.stream, r.round
            )
        });
        assert_eq!(f.meta.producer_ts_ms, r.seed);
        assert_eq!(f.meta.size as usize, r.len);
        assert!(
            f.payload[..] == payload(r.seed, r.len)[..],
            "round {round}: fragment {} of stream {} reads back different bytes",
            r.number,
            r.stream
        );
    }
    // Nothing else in the store is garbage either: every fragment it holds, reported or not
    // (written but killed before it could say so), has the bytes it was written with. (The
    // check below authenticates them all every round; this reads them all in the last.)
    let streams: BTreeSet<u64> = reported.iter().map(|r| r.stream).collect();
    for &s in &streams {
        if round + 1 == ROUNDS {
            let mut after = None;
            loop {
                let page = store.fragments_after(s, after, 1000).unwrap();
                let Some(last) = page.last() else { break };
                after = Some(last.number);
                for m in &page {
                    let f = store.read_fragment(s, m.number).unwrap();
                    assert!(f.payload[..] == payload(m.producer_ts_ms, m.size as usize)[..]);
                }
            }
        }
        let h = reported.iter().find(|r| r.stream == s).unwrap();
        let header_id = store.fragment(s, h.number).unwrap().header_id;
        assert_eq!(&store.header(s, header_id).unwrap()[..], HEADER);
    }
    let report = check(store, false, &mut |_, _, _| {}).unwrap();
    assert!(
        report.is_clean(),
        "round {round}: check found problems: {report:#?}"
    );
    assert!(
        report.fragments >= reported.len() as u64,
        "round {round}: {report:#?}"
    );
}
