//! `vigil check` on real data directories: sound, torn by a crash, damaged, locked.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use vigil_store::{FragmentMeta, NewStream, Store, StoreConfig, SystemClock};

use super::{run, vigil};

fn config(dir: &Path) -> StoreConfig {
    let mut cfg = StoreConfig::new(dir);
    cfg.retention_interval_ms = 0;
    cfg.min_free_bytes = 0;
    cfg
}

/// A store with two streams and `n` fragments each; returns the fragments written.
fn populate(dir: &Path, n: u64) -> Vec<FragmentMeta> {
    let store = Store::open(config(dir), Arc::new(SystemClock)).unwrap();
    let mut out = Vec::new();
    for name in ["front-door", "garage"] {
        let s = store
            .create_stream(NewStream {
                name: name.into(),
                data_retention_hours: 24,
                ..NewStream::default()
            })
            .unwrap()
            .id;
        let h = store
            .register_header(s, b"EBML header, Info, Tracks")
            .unwrap();
        for i in 0..n {
            let mut w = store.begin_fragment(s, h, i * 1000).unwrap();
            w.append(Bytes::from(vec![i as u8; 4000])).unwrap();
            out.push(w.finish(1000).unwrap().wait_blocking().unwrap());
        }
    }
    store.close().unwrap();
    out
}

fn segment_path(dir: &Path, id: u64) -> std::path::PathBuf {
    dir.join("segments").join(format!("{id:016x}.seg"))
}

fn check(dir: &Path, extra: &[&str]) -> (bool, String, String) {
    let out = run(vigil()
        .args(["check", "--data-dir"])
        .arg(dir)
        .args(extra)
        .env_remove("VIGIL_DATA_DIR")
        .env_remove("VIGIL_MASTER_KEY"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_sound_store_checks_clean() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 5);
    let (ok, stdout, stderr) = check(dir.path(), &[]);
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("2 stream(s), 10 fragment(s) read back"),
        "{stdout}"
    );
    assert!(stdout.trim_end().ends_with("ok"), "{stdout}");

    let (ok, stdout, _) = check(dir.path(), &["--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["clean"], true);
    assert_eq!(v["fragments"], 10);
    assert_eq!(v["records"], 10);
    assert_eq!(v["problems"].as_array().unwrap().len(), 0);
}

#[test]
fn a_torn_tail_is_cut_off_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let frags = populate(dir.path(), 3);
    let last = frags.last().unwrap().location;
    let path = segment_path(dir.path(), last.segment);
    // A crash in the middle of a write: half a record frame and some of its body.
    let mut bytes = std::fs::read(&path).unwrap();
    let clean_len = bytes.len();
    bytes.extend_from_slice(&[0x40, 0x1f, 0, 0, 1, 2, 3, 4, 9, 9, 9]);
    std::fs::write(&path, &bytes).unwrap();

    let (ok, stdout, stderr) = check(dir.path(), &[]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("repaired: cut"), "{stdout}");
    assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, clean_len);
    assert!(stdout.contains("6 fragment(s) read back"), "{stdout}");
}

#[test]
fn damage_is_found_and_repair_drops_unreadable_entries() {
    let dir = tempfile::tempdir().unwrap();
    let frags = populate(dir.path(), 3);
    let victim = frags[1].location;
    let path = segment_path(dir.path(), victim.segment);
    let mut bytes = std::fs::read(&path).unwrap();
    // A flipped bit in the middle of the record's payload.
    bytes[(victim.offset + u64::from(victim.len) / 2) as usize] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();

    let (ok, stdout, stderr) = check(dir.path(), &[]);
    assert!(!ok, "{stdout}");
    assert!(stdout.contains("PROBLEM"), "{stdout}");
    assert!(
        stdout.contains(&format!("fragment {}", frags[1].number)),
        "{stdout}"
    );
    assert!(stderr.contains("problem(s) found"), "{stderr}");

    let (_, stdout, _) = check(dir.path(), &["--repair"]);
    assert!(
        stdout.contains("repaired: removed 1 index entries"),
        "{stdout}"
    );
    // The entry is gone; the damaged bytes are still reported, as they are still there.
    let (ok, stdout, _) = check(dir.path(), &[]);
    assert!(!ok);
    assert!(
        !stdout.contains(&format!("fragment {} ", frags[1].number)),
        "{stdout}"
    );
    assert!(stdout.contains("is damaged at byte"), "{stdout}");
    assert!(stdout.contains("5 fragment(s) read back"), "{stdout}");
}

#[test]
fn a_store_in_use_or_missing_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = check(dir.path(), &[]);
    assert!(!ok);
    assert!(stderr.contains("holds no Vigil store"), "{stderr}");

    populate(dir.path(), 1);
    let held = Store::open(config(dir.path()), Arc::new(SystemClock)).unwrap();
    let (ok, _, stderr) = check(dir.path(), &[]);
    assert!(!ok);
    assert!(stderr.contains("in use by another process"), "{stderr}");
    drop(held);
    assert!(check(dir.path(), &[]).0);
}

#[test]
fn serve_opens_the_store_and_creates_its_master_key() {
    let mut server = super::Server::start(&[]);
    assert!(
        server.log.iter().any(|l| l.contains("store open")),
        "{:#?}",
        server.log
    );
    let dir = server.data_dir().to_owned();
    let key = dir.join("keys").join("default.key");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", key.display());
    assert!(dir.join("index.redb").exists());
    // A second server on the same directory is refused, clearly.
    let out = run(vigil()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("in use by another process"), "{stderr}");
    assert!(server.signal_and_wait("TERM").success());
}

/// Runs `vigil serve` on `dir`, which must refuse to start: returns its stderr.
pub(crate) fn serve_refuses(dir: &Path) -> String {
    use std::io::Read;
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let mut child = vigil()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("vigil serve started on a damaged data directory");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// `vigil check` on a data directory the store refuses: a problem, never "ok".
fn check_refuses(dir: &Path, needle: &str) {
    let (ok, stdout, stderr) = check(dir, &[]);
    assert!(!ok, "{stdout}{stderr}");
    assert!(!stdout.contains("  ok"), "{stdout}");
    assert!(
        stdout.contains("PROBLEM") && stdout.contains(needle),
        "{stdout}"
    );
    assert!(stderr.contains(needle), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let (ok, stdout, _) = check(dir, &["--json"]);
    assert!(!ok);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["clean"], false);
    assert!(v["problems"][0].as_str().unwrap().contains(needle), "{v}");
}

#[test]
fn a_deleted_master_key_is_refused_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 2);
    let key = dir.path().join("keys").join("default.key");
    let saved = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();

    let stderr = serve_refuses(dir.path());
    assert!(stderr.contains("keys/default.key is missing"), "{stderr}");
    assert!(stderr.contains("2 stream(s)"), "{stderr}");
    assert!(stderr.contains("Restore keys/default.key"), "{stderr}");
    check_refuses(dir.path(), "keys/default.key is missing");
    assert!(!key.exists(), "a new master key was made");

    std::fs::write(&key, saved).unwrap();
    let (ok, stdout, stderr) = check(dir.path(), &[]);
    assert!(ok, "{stdout}{stderr}");
}

#[test]
fn an_emptied_index_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 2);
    std::fs::write(dir.path().join("index.redb"), b"").unwrap();
    let stderr = serve_refuses(dir.path());
    assert!(stderr.contains("index.redb is empty"), "{stderr}");
    assert!(stderr.contains("vigil check --restore-index"), "{stderr}");
    check_refuses(dir.path(), "index.redb is empty");
    assert_eq!(
        std::fs::metadata(dir.path().join("index.redb"))
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn a_truncated_index_is_refused_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 2);
    let index = dir.path().join("index.redb");
    let bytes = std::fs::read(&index).unwrap();
    std::fs::write(&index, &bytes[..bytes.len() / 2]).unwrap();
    let stderr = serve_refuses(dir.path());
    assert!(stderr.contains("index.redb is cut short"), "{stderr}");
    check_refuses(dir.path(), "index.redb is cut short");
}

#[test]
fn restore_index_brings_back_every_stream_and_fragment() {
    let dir = tempfile::tempdir().unwrap();
    let frags = populate(dir.path(), 3);
    let index = dir.path().join("index.redb");
    let bytes = std::fs::read(&index).unwrap();
    std::fs::write(&index, &bytes[..bytes.len() / 3]).unwrap();
    assert!(!check(dir.path(), &[]).0);

    let (ok, stdout, stderr) = check(dir.path(), &["--restore-index"]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("restored"), "{stdout}");
    assert!(stdout.contains("2 stream(s)"), "{stdout}");
    assert!(stdout.contains("index.redb.damaged"), "{stdout}");
    assert!(stdout.contains("6 record(s)"), "{stdout}");
    assert!(stdout.trim_end().ends_with("ok"), "{stdout}");
    assert!(dir.path().join("index.redb.damaged").exists());

    // Clean from now on, and every fragment reads back byte for byte.
    let (ok, stdout, stderr) = check(dir.path(), &[]);
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("2 stream(s), 6 fragment(s) read back"),
        "{stdout}"
    );
    {
        let store = Store::open(config(dir.path()), Arc::new(SystemClock)).unwrap();
        for (i, m) in frags.iter().enumerate() {
            let f = store.read_fragment(m.stream, m.number).unwrap();
            assert_eq!(f.payload[..], vec![(i % 3) as u8; 4000][..]);
        }
    }
    // A sound index is never replaced by the older backup.
    let (ok, _, stderr) = check(dir.path(), &["--restore-index"]);
    assert!(!ok);
    assert!(stderr.contains("is sound"), "{stderr}");

    // And the server starts on it.
    let data = tempfile::TempDir::new().unwrap();
    std::fs::remove_dir(data.path()).unwrap();
    std::fs::rename(dir.path(), data.path()).unwrap();
    let mut server = super::Server::start_in(data, &[], &[]);
    assert!(
        server.log.iter().any(|l| l.contains("store open")),
        "{:#?}",
        server.log
    );
    assert!(server.signal_and_wait("TERM").success());
}
