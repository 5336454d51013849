//! A damaged data directory: the default master key or the index missing, emptied, cut short or
//! overwritten. Each fault is refused on open with a `StoreError::DataDir` naming the file
//! (never a new key or index over the old data, never a panic), and the index comes back from
//! the backup the store keeps, with every stream and fragment byte for byte.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use vigil_store::backup::{restore_index, restore_index_with};
use vigil_store::check::check;
use vigil_store::conformance::{clock, payload, test_face, write};
use vigil_store::fs::FaultFs;
use vigil_store::{
    FragmentMeta, NewEntry, NewLogGroup, NewStream, Position, Store, StoreConfig, StoreError,
};

fn config(dir: &Path) -> StoreConfig {
    let mut cfg = StoreConfig::new(dir);
    cfg.retention_interval_ms = 0;
    cfg.min_free_bytes = 0;
    cfg
}

fn open(dir: &Path) -> Result<Store, StoreError> {
    Store::open(config(dir), Arc::new(clock()))
}

const HEADER: &[u8] = b"EBML header, Info, Tracks of the damage tests";

/// What a populated store holds, to compare after a restore.
struct Written {
    fragments: Vec<(u64, FragmentMeta, Vec<u8>)>,
    group: u64,
    entries: Vec<NewEntry>,
}

/// Three streams with fragments, a log group with entries, a face collection and a document;
/// closed (so the backup is current).
fn populate(dir: &Path) -> Written {
    let store = open(dir).unwrap();
    let mut fragments = Vec::new();
    for (i, name) in ["front-door", "garage", "yard"].into_iter().enumerate() {
        let s = store
            .create_stream(NewStream {
                name: name.into(),
                data_retention_hours: 24,
                ..NewStream::default()
            })
            .unwrap()
            .id;
        let h = store.register_header(s, HEADER).unwrap();
        for j in 0..4u64 {
            let seed = (i as u64) * 100 + j;
            let data = payload(seed, 3000 + 500 * j as usize);
            let m = write(&store, s, h, 1000 * j, &data, 3);
            fragments.push((s, m, data));
        }
    }
    let group = store
        .create_log_group(NewLogGroup::new("orders"))
        .unwrap()
        .id;
    let entries: Vec<NewEntry> = (0..6u64)
        .map(|i| NewEntry {
            key: Bytes::from(format!("key-{i}")),
            data: Bytes::from(payload(1000 + i, 200)),
        })
        .collect();
    for c in entries.chunks(2) {
        store
            .append_log(group, 0, c)
            .unwrap()
            .wait_blocking()
            .unwrap();
    }
    store
        .create_collection("people", "1.0", Default::default())
        .unwrap();
    store
        .add_faces("people", &[test_face(1, 1), test_face(2, 2)])
        .unwrap();
    store
        .put_document("processor", "p1", b"{\"state\":1}")
        .unwrap();
    store.close().unwrap();
    Written {
        fragments,
        group,
        entries,
    }
}

/// Everything `populate` wrote reads back byte for byte, and the check is clean.
fn assert_all_back(store: &Store, w: &Written) {
    for (s, m, data) in &w.fragments {
        let f = store.read_fragment(*s, m.number).unwrap();
        assert_eq!(f.payload[..], data[..], "fragment {}", m.number);
        assert_eq!(&store.header(*s, m.header_id).unwrap()[..], HEADER);
    }
    let got = store
        .read_log(w.group, 0, Position::new(0, 0), 100, 1 << 20)
        .unwrap();
    assert_eq!(got.len(), w.entries.len());
    for (g, e) in got.iter().zip(&w.entries) {
        assert_eq!((&g.key, &g.data), (&e.key, &e.data));
    }
    let people = store.collection("people").unwrap();
    assert_eq!(
        store.faces(&people, None, 10).unwrap(),
        vec![test_face(1, 1), test_face(2, 2)]
    );
    assert_eq!(
        store.document("processor", "p1").unwrap().as_deref(),
        Some(&b"{\"state\":1}"[..])
    );
    let report = check(store, false, &mut |_, _, _| {}).unwrap();
    assert!(report.is_clean(), "{report:#?}");
    assert_eq!(report.fragments, w.fragments.len() as u64);
}

/// The `DataDir` refusal of opening `dir`, checked to name `file`.
fn refusal(dir: &Path, file: &str) -> (String, String) {
    match open(dir) {
        Err(StoreError::DataDir {
            file: f,
            problem,
            remedy,
        }) => {
            assert_eq!(PathBuf::from(&f), dir.join(file), "{problem}");
            (problem, remedy)
        }
        Err(e) => panic!("expected a DataDir error for {file}, got {e:?}"),
        Ok(_) => panic!("the store opened without {file} being sound"),
    }
}

fn key_path(dir: &Path) -> PathBuf {
    dir.join("keys").join("default.key")
}

#[test]
fn a_missing_default_key_is_refused_and_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let w = populate(dir.path());
    let key = std::fs::read(key_path(dir.path())).unwrap();
    std::fs::remove_file(key_path(dir.path())).unwrap();
    for _ in 0..2 {
        let (problem, remedy) = refusal(dir.path(), "keys/default.key");
        assert!(problem.contains("is missing"), "{problem}");
        assert!(problem.contains("3 stream(s)"), "{problem}");
        assert!(problem.contains("1 data stream log group(s)"), "{problem}");
        assert!(problem.contains("1 face collection(s)"), "{problem}");
        assert!(remedy.contains("Restore keys/default.key"), "{remedy}");
        assert!(!key_path(dir.path()).exists(), "a new key was made");
    }
    // The key back: everything reads again.
    std::fs::write(key_path(dir.path()), key).unwrap();
    assert_all_back(&open(dir.path()).unwrap(), &w);
}

#[test]
fn an_unreadable_default_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path());
    std::fs::write(key_path(dir.path()), "not a key\n").unwrap();
    let (problem, remedy) = refusal(dir.path(), "keys/default.key");
    assert!(problem.contains("is unreadable"), "{problem}");
    assert!(remedy.contains("3 stream(s)"), "{remedy}");
    assert_eq!(
        std::fs::read(key_path(dir.path())).unwrap(),
        b"not a key\n",
        "the file was touched"
    );
}

/// Nothing wrapped under it, nothing lost: a missing key is made again, and the report says so.
#[test]
fn a_missing_key_that_nothing_needs_is_made_again_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    open(dir.path()).unwrap().close().unwrap();
    std::fs::remove_file(key_path(dir.path())).unwrap();
    let store = open(dir.path()).unwrap();
    assert!(key_path(dir.path()).exists());
    let repairs = &store.recovery_report().repairs;
    assert!(
        repairs
            .iter()
            .any(|r| r.contains("created") && r.contains("default.key")),
        "{repairs:?}"
    );
}

#[test]
fn a_missing_or_emptied_index_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path());
    let index = dir.path().join("index.redb");
    let good = std::fs::read(&index).unwrap();

    std::fs::remove_file(&index).unwrap();
    for _ in 0..2 {
        let (problem, remedy) = refusal(dir.path(), "index.redb");
        assert!(problem.contains("is missing"), "{problem}");
        assert!(problem.contains("segment file(s)"), "{problem}");
        assert!(remedy.contains("vigil check --restore-index"), "{remedy}");
        assert!(!index.exists(), "a new index was made");
    }

    std::fs::write(&index, b"").unwrap();
    for _ in 0..2 {
        let (problem, _) = refusal(dir.path(), "index.redb");
        assert!(problem.contains("is empty"), "{problem}");
        assert_eq!(std::fs::metadata(&index).unwrap().len(), 0);
    }

    // Without segments or backup it would be a new store; with them it is a lost index, even
    // with no backup to offer.
    std::fs::remove_file(dir.path().join("index.redb.bak")).unwrap();
    let (_, remedy) = refusal(dir.path(), "index.redb");
    assert!(
        remedy.contains("your backup of the data directory"),
        "{remedy}"
    );

    std::fs::write(&index, good).unwrap();
    assert!(open(dir.path()).is_ok());
}

/// A new store's index in place of the one the segments were written with.
#[test]
fn an_index_replaced_by_a_new_one_is_refused() {
    let fs = FaultFs::new();
    let dir = Path::new("/vigil");
    let cfg = || {
        let mut c = config(dir);
        c.index_backup_interval_ms = 0;
        c
    };
    let store = Store::open_with(cfg(), Arc::new(clock()), Arc::new(fs.clone())).unwrap();
    let s = store
        .create_stream(NewStream {
            name: "cam".into(),
            data_retention_hours: 24,
            ..NewStream::default()
        })
        .unwrap()
        .id;
    let h = store.register_header(s, HEADER).unwrap();
    write(&store, s, h, 1, b"media", 1);
    drop(store);
    // A new, empty store's index file, in place of this one.
    let blank = FaultFs::new();
    let mut c = config(dir);
    c.index_backup_interval_ms = 0;
    let other = Store::open_with(c, Arc::new(clock()), Arc::new(blank.clone())).unwrap();
    drop(other);
    let fresh = blank.read_file(&dir.join("index.redb")).unwrap();
    fs.write_file(&dir.join("index.redb"), fresh);
    for _ in 0..2 {
        match Store::open_with(cfg(), Arc::new(clock()), Arc::new(fs.clone())) {
            Err(StoreError::DataDir { file, problem, .. }) => {
                assert_eq!(file, "/vigil/index.redb");
                assert!(problem.contains("new, unused index"), "{problem}");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_truncated_or_overwritten_index_is_refused_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path());
    let index = dir.path().join("index.redb");
    let good = std::fs::read(&index).unwrap();
    for cut in [1, 200, 4096, 40_000, good.len() / 2, good.len() - 4096] {
        std::fs::write(&index, &good[..cut]).unwrap();
        let (problem, remedy) = refusal(dir.path(), "index.redb");
        assert!(problem.contains("cut short"), "cut {cut}: {problem}");
        assert!(remedy.contains("--restore-index"), "{remedy}");
        assert_eq!(std::fs::metadata(&index).unwrap().len(), cut as u64);
    }
    let mut overwritten = good.clone();
    overwritten[..64].fill(0x5a);
    std::fs::write(&index, &overwritten).unwrap();
    let (problem, _) = refusal(dir.path(), "index.redb");
    assert!(problem.contains("not a redb database"), "{problem}");
    std::fs::write(&index, good).unwrap();
    assert!(open(dir.path()).is_ok());
}

#[test]
fn the_index_is_restored_from_its_backup() {
    let dir = tempfile::tempdir().unwrap();
    let w = populate(dir.path());
    let index = dir.path().join("index.redb");
    let good = std::fs::read(&index).unwrap();
    // Each fault, restored in turn.
    for fault in ["missing", "empty", "truncated"] {
        match fault {
            "missing" => std::fs::remove_file(&index).unwrap(),
            "empty" => std::fs::write(&index, b"").unwrap(),
            _ => std::fs::write(&index, &good[..good.len() / 3]).unwrap(),
        }
        assert!(open(dir.path()).is_err());
        let r = restore_index(dir.path()).unwrap();
        assert_eq!((r.streams, r.log_groups, r.collections), (3, 1, 1), "{r:?}");
        assert_eq!(
            r.kept_damaged.is_some(),
            fault != "missing",
            "{fault}: {r:?}"
        );
        let store = open(dir.path()).unwrap();
        // Every record is indexed again from the segments.
        let rep = store.recovery_report();
        assert_eq!(rep.reindexed, (w.fragments.len() + 3) as u64, "{rep:?}");
        assert!(rep.problems.is_empty(), "{rep:?}");
        assert_all_back(&store, &w);
        store.close().unwrap();
    }
    // A sound index is not replaced.
    let err = restore_index(dir.path()).unwrap_err();
    assert!(err.to_string().contains("is sound"), "{err}");
    // Nor is one restored from a backup that is not there.
    std::fs::remove_file(&index).unwrap();
    std::fs::remove_file(dir.path().join("index.redb.bak")).unwrap();
    let err = restore_index(dir.path()).unwrap_err();
    assert!(
        matches!(err, StoreError::DataDir { ref file, .. } if file.ends_with("index.redb.bak")),
        "{err:?}"
    );
}

/// The backup is rewritten when the index's metadata changed, and once after each open.
#[test]
fn backups_follow_metadata_changes() {
    let dir = tempfile::tempdir().unwrap();
    let bak = dir.path().join("index.redb.bak");
    let store = open(dir.path()).unwrap();
    assert!(store.backup_index().unwrap(), "no backup yet");
    assert!(!store.backup_index().unwrap());
    let s = store
        .create_stream(NewStream {
            name: "cam".into(),
            data_retention_hours: 24,
            ..NewStream::default()
        })
        .unwrap()
        .id;
    assert!(store.backup_index().unwrap());
    let h = store.register_header(s, HEADER).unwrap();
    assert!(store.backup_index().unwrap());
    // Fragments are not metadata: the segments hold them.
    write(&store, s, h, 1, b"media", 1);
    assert!(!store.backup_index().unwrap());
    store.close().unwrap();
    drop(store);
    assert!(bak.exists());
    // After an open the first pass writes a fresh backup (a crash may have left changes out of
    // the last one), and then none until the metadata changes.
    let store = open(dir.path()).unwrap();
    assert!(
        store.backup_index().unwrap(),
        "a fresh backup after opening"
    );
    assert!(!store.backup_index().unwrap());
    store.close().unwrap();
}

/// A power cut, then a lost index: what the backup held comes back, with every fragment acked
/// before or after it; what changed after the backup is lost, and the check tells.
#[test]
fn a_restore_after_a_crash_loses_only_metadata_changed_after_the_backup() {
    let fs = FaultFs::new();
    let dir = Path::new("/vigil");
    let mut cfg = config(dir);
    cfg.index_backup_interval_ms = 0;
    let store = Store::open_with(cfg, Arc::new(clock()), Arc::new(fs.clone())).unwrap();
    let new_stream = |name: &str| {
        store
            .create_stream(NewStream {
                name: name.into(),
                data_retention_hours: 24,
                ..NewStream::default()
            })
            .unwrap()
            .id
    };
    let a = new_stream("kept");
    let h = store.register_header(a, HEADER).unwrap();
    let mut acked: Vec<(FragmentMeta, Vec<u8>)> = (0..3)
        .map(|i| {
            let data = payload(i, 2000);
            (write(&store, a, h, i, &data, 2), data)
        })
        .collect();
    assert!(store.backup_index().unwrap());
    // After the backup: more fragments of the stream it knows (kept), a new stream and a new
    // track header (both lost).
    for i in 3..6 {
        let data = payload(i, 2000);
        acked.push((write(&store, a, h, i, &data, 2), data));
    }
    let b = new_stream("created-after-the-backup");
    let hb = store.register_header(b, HEADER).unwrap();
    write(&store, b, hb, 1, &payload(50, 100), 1);
    let h2 = store.register_header(a, b"a new track header").unwrap();
    let orphan = write(&store, a, h2, 9, &payload(9, 100), 1);

    let image = fs.crash_image(7);
    drop(store);
    image.write_file(&dir.join("index.redb"), b"redb".to_vec());
    let reopen = || {
        let mut cfg = config(dir);
        cfg.index_backup_interval_ms = 0;
        Store::open_with(cfg, Arc::new(clock()), Arc::new(image.clone()))
    };
    assert!(matches!(reopen(), Err(StoreError::DataDir { .. })));
    let r = restore_index_with(&image, dir).unwrap();
    assert_eq!(r.streams, 1, "{r:?}");
    let store = reopen().unwrap();
    for (m, data) in &acked {
        assert_eq!(
            store.read_fragment(a, m.number).unwrap().payload[..],
            data[..]
        );
    }
    assert!(
        store
            .stream(vigil_store::StreamRef::Name("created-after-the-backup"))
            .is_err()
    );
    // The fragment under the lost header reads back, but cannot be played: the check says so.
    assert!(store.read_fragment(a, orphan.number).is_ok());
    let report = check(&store, false, &mut |_, _, _| {}).unwrap();
    assert_eq!(report.problems.len(), 1, "{report:#?}");
    assert!(
        report.problems[0].contains("track header")
            && report.problems[0].contains("not in the index"),
        "{report:#?}"
    );
    assert_eq!(report.fragments, acked.len() as u64 + 1);
}
