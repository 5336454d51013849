//! Encryption at rest, on the real filesystem: no plaintext on disk, tampering and wrong keys
//! fail authentication (never garbage), keys supplied through configuration.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vigil_store::check::check;
use vigil_store::conformance::{clock, write};
use vigil_store::crypto::MasterKey;
use vigil_store::record::{BODY_HEADER_LEN, FRAME_LEN};
use vigil_store::{FragmentMeta, NewStream, Store, StoreConfig, StoreError};

/// Plaintext no one could mistake: it must appear nowhere on disk.
const CANARY: &[u8] = b"PLAINTEXT-CANARY:the-quick-brown-fox-0123456789";
const HEADER_CANARY: &[u8] = b"TRACK-HEADER-CANARY:codec=V_MPEG4/ISO/AVC";

fn config(dir: &Path) -> StoreConfig {
    let mut cfg = StoreConfig::new(dir);
    cfg.retention_interval_ms = 0;
    cfg.min_free_bytes = 0;
    cfg
}

fn open(cfg: StoreConfig) -> Store {
    Store::open(cfg, Arc::new(clock())).unwrap()
}

fn canary_payload(i: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for _ in 0..(1 + i * 7) {
        v.extend_from_slice(CANARY);
    }
    v
}

fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join("segments").join(format!("{segment:016x}.seg"))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every file the store keeps its data in: the segments and the index.
fn data_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = vec![(
        dir.join("index.redb"),
        std::fs::read(dir.join("index.redb")).unwrap(),
    )];
    for e in std::fs::read_dir(dir.join("segments")).unwrap() {
        let p = e.unwrap().path();
        assert_eq!(p.extension().and_then(|e| e.to_str()), Some("seg"), "{p:?}");
        out.push((p.clone(), std::fs::read(&p).unwrap()));
    }
    assert!(out.len() >= 2, "no segment files");
    out
}

/// Writes fragments of canary plaintext under a canary track header, and closes the store.
fn write_canaries(cfg: StoreConfig) -> (u64, Vec<FragmentMeta>) {
    let store = open(cfg);
    let s = store
        .create_stream(NewStream {
            name: "canary".into(),
            data_retention_hours: 24,
            ..NewStream::default()
        })
        .unwrap()
        .id;
    let h = store.register_header(s, HEADER_CANARY).unwrap();
    let metas = (0..8)
        .map(|i| write(&store, s, h, 1000 + i as u64, &canary_payload(i), 1 + i % 3))
        .collect();
    store.close().unwrap();
    (s, metas)
}

#[test]
fn no_plaintext_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (s, metas) = write_canaries(config(dir.path()));
    for (path, bytes) in data_files(dir.path()) {
        // The whole canary, and any 16-byte piece of it.
        for needle in [CANARY, HEADER_CANARY].iter().flat_map(|c| c.windows(16)) {
            assert!(
                !contains(&bytes, needle),
                "plaintext {needle:?} found in {path:?}"
            );
        }
    }
    // And the store reads it all back.
    let store = open(config(dir.path()));
    for (i, m) in metas.iter().enumerate() {
        assert_eq!(
            store.read_fragment(s, m.number).unwrap().payload[..],
            canary_payload(i)[..]
        );
    }
    assert_eq!(
        &store.header(s, metas[0].header_id).unwrap()[..],
        HEADER_CANARY
    );

    // The search can fail: with encryption off, the same canaries are there to be found.
    let plain = tempfile::tempdir().unwrap();
    let mut cfg = config(plain.path());
    cfg.encryption = false;
    write_canaries(cfg);
    let files = data_files(plain.path());
    assert!(files.iter().any(|(_, b)| contains(b, CANARY)));
    assert!(files.iter().any(|(_, b)| contains(b, HEADER_CANARY)));
}

/// The record of `m` in its segment file, with the file's bytes.
fn record(dir: &Path, m: &FragmentMeta) -> (PathBuf, Vec<u8>, usize, usize) {
    let path = segment_path(dir, m.location.segment);
    let bytes = std::fs::read(&path).unwrap();
    let start = m.location.offset as usize;
    let end = start + m.location.len as usize;
    assert!(end <= bytes.len());
    (path, bytes, start, end)
}

/// Rewrites the record frame's CRC so that it matches the (tampered) body.
fn fix_crc(bytes: &mut [u8], start: usize, end: usize) {
    let crc = crc32fast::hash(&bytes[start + FRAME_LEN..end]);
    bytes[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn tampering_fails_the_checksum_or_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let (s, metas) = write_canaries(config(dir.path()));
    let (flipped, crc_fixed, relabelled, intact) = (&metas[2], &metas[4], &metas[6], &metas[7]);

    // One byte of ciphertext flipped: the CRC catches it first.
    let (path, mut bytes, start, _) = record(dir.path(), flipped);
    let payload_at = start + FRAME_LEN + BODY_HEADER_LEN;
    bytes[payload_at + 10] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();

    // One byte of ciphertext flipped and the CRC made to match: only the AEAD can tell.
    let (path, mut bytes, start, end2) = record(dir.path(), crc_fixed);
    let payload_at = start + FRAME_LEN + BODY_HEADER_LEN;
    bytes[payload_at + (end2 - payload_at) / 2] ^= 0x80;
    fix_crc(&mut bytes, start, end2);
    std::fs::write(&path, &bytes).unwrap();

    // The plaintext header's producer timestamp changed, CRC recomputed: the header is the
    // AEAD's associated data, so the record no longer authenticates.
    let (path, mut bytes, start, end3) = record(dir.path(), relabelled);
    let ts_at = start + FRAME_LEN + 4 + 8 + 8; // version/kind/flags/0, stream, number
    let ts = u64::from_le_bytes(bytes[ts_at..ts_at + 8].try_into().unwrap());
    assert_eq!(ts, relabelled.producer_ts_ms);
    bytes[ts_at..ts_at + 8].copy_from_slice(&(ts + 1).to_le_bytes());
    fix_crc(&mut bytes, start, end3);
    std::fs::write(&path, &bytes).unwrap();

    let store = open(config(dir.path()));
    assert!(
        store.recovery_report().repairs.is_empty(),
        "{:?}",
        store.recovery_report()
    );
    let err = store.read_fragment(s, flipped.number).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    let err = store.read_fragment(s, crc_fixed.number).unwrap_err();
    assert!(matches!(err, StoreError::Authentication { .. }), "{err:?}");
    let err = store.read_fragment(s, relabelled.number).unwrap_err();
    assert!(matches!(err, StoreError::Authentication { .. }), "{err:?}");
    // The others are untouched.
    assert_eq!(
        store.read_fragment(s, intact.number).unwrap().payload[..],
        canary_payload(7)[..]
    );
    assert_eq!(
        store.read_fragment(s, metas[0].number).unwrap().payload[..],
        canary_payload(0)[..]
    );
    // The check finds the three.
    let report = check(&store, false, &mut |_, _, _| {}).unwrap();
    assert!(!report.is_clean());
    for m in [flipped, crc_fixed, relabelled] {
        let needle = format!("fragment {} of stream", m.number);
        assert!(
            report.problems.iter().any(|p| p.contains(&needle)),
            "{needle}: {:#?}",
            report.problems
        );
    }
}

fn replace_default_key(dir: &Path, bytes: [u8; 32]) -> Vec<u8> {
    let path = dir.join("keys").join("default.key");
    let old = std::fs::read(&path).unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&path, format!("vigil-master-key v1\n{hex}\n")).unwrap();
    old
}

#[test]
fn default_key_file_is_private_and_a_wrong_key_never_decrypts() {
    let dir = tempfile::tempdir().unwrap();
    let (s, metas) = write_canaries(config(dir.path()));
    let key_path = dir.path().join("keys").join("default.key");
    let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    let text = std::fs::read_to_string(&key_path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("vigil-master-key v1"));
    assert_eq!(lines.next().map(str::len), Some(64));

    // Another valid key in its place: the store opens, every read fails authentication.
    let original = replace_default_key(dir.path(), [0x5a; 32]);
    {
        let store = open(config(dir.path()));
        for m in &metas {
            let err = store.read_fragment(s, m.number).unwrap_err();
            assert!(matches!(err, StoreError::Authentication { .. }), "{err:?}");
        }
        let err = store.header(s, metas[0].header_id).unwrap_err();
        assert!(matches!(err, StoreError::Authentication { .. }), "{err:?}");
        let report = check(&store, false, &mut |_, _, _| {}).unwrap();
        assert_eq!(report.problems.len(), metas.len(), "{report:#?}");
    }

    // The right key back: all of it reads again (the failures were the key, not damage).
    std::fs::write(&key_path, original).unwrap();
    let store = open(config(dir.path()));
    for (i, m) in metas.iter().enumerate() {
        assert_eq!(
            store.read_fragment(s, m.number).unwrap().payload[..],
            canary_payload(i)[..]
        );
    }
    assert!(check(&store, false, &mut |_, _, _| {}).unwrap().is_clean());
}

#[test]
fn configured_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let with_key = |bytes: [u8; 32], default: bool| {
        let mut cfg = config(dir.path());
        cfg.master_keys.push(MasterKey::new("site-key", bytes));
        if default {
            cfg.default_master_key = Some("site-key".into());
        }
        cfg
    };
    let (s, metas) = {
        let store = open(with_key([7; 32], true));
        let rec = store
            .create_stream(NewStream {
                name: "site".into(),
                data_retention_hours: 24,
                ..NewStream::default()
            })
            .unwrap();
        assert_eq!(rec.kms_key_id, "site-key");
        let h = store.register_header(rec.id, HEADER_CANARY).unwrap();
        let metas: Vec<_> = (0..3)
            .map(|i| write(&store, rec.id, h, i as u64, &canary_payload(i), 1))
            .collect();
        store.close().unwrap();
        (rec.id, metas)
    };
    // Nothing of it on disk in the clear either.
    for (path, bytes) in data_files(dir.path()) {
        assert!(!contains(&bytes, CANARY), "{path:?}");
        assert!(!contains(&bytes, HEADER_CANARY), "{path:?}");
    }

    // Without the key: it cannot be the default, and the stream's data cannot be read.
    let err = Store::open(with_key_missing_default(dir.path()), Arc::new(clock())).unwrap_err();
    assert!(
        matches!(err, StoreError::KeyNotFound(ref k) if k == "site-key"),
        "{err:?}"
    );
    {
        let store = open(config(dir.path()));
        assert_eq!(
            store
                .stream(vigil_store::StreamRef::Id(s))
                .unwrap()
                .kms_key_id,
            "site-key"
        );
        for m in &metas {
            let err = store.read_fragment(s, m.number).unwrap_err();
            assert!(
                matches!(err, StoreError::KeyNotFound(ref k) if k == "site-key"),
                "{err:?}"
            );
        }
        let err = store.header(s, metas[0].header_id).unwrap_err();
        assert!(matches!(err, StoreError::KeyNotFound(_)), "{err:?}");
    }
    // The same id with other bytes: authentication fails.
    {
        let store = open(with_key([8; 32], false));
        let err = store.read_fragment(s, metas[0].number).unwrap_err();
        assert!(matches!(err, StoreError::Authentication { .. }), "{err:?}");
    }
    // With the key configured (not as the default), everything reads back.
    let store = open(with_key([7; 32], false));
    for (i, m) in metas.iter().enumerate() {
        assert_eq!(
            store.read_fragment(s, m.number).unwrap().payload[..],
            canary_payload(i)[..]
        );
    }
    assert_eq!(
        &store.header(s, metas[0].header_id).unwrap()[..],
        HEADER_CANARY
    );
    // New streams take the file key again.
    let other = store
        .create_stream(NewStream {
            name: "other".into(),
            data_retention_hours: 24,
            ..NewStream::default()
        })
        .unwrap();
    assert_eq!(other.kms_key_id, vigil_store::DEFAULT_MASTER_KEY_ID);
}

fn with_key_missing_default(dir: &Path) -> StoreConfig {
    let mut cfg = config(dir);
    cfg.default_master_key = Some("site-key".into());
    cfg
}

/// Face embeddings are biometric data: none of their bytes are on disk in the clear, they
/// read back after a reopen, and a collection's rows cannot be opened with another key.
#[test]
fn face_embeddings_are_encrypted_at_rest() {
    use vigil_store::conformance::test_face;
    let write = |cfg: StoreConfig| {
        let store = open(cfg);
        store
            .create_collection("people", "1.0", Default::default())
            .unwrap();
        let faces: Vec<_> = (0..20u64)
            .map(|i| test_face(u128::from(i) + 1, i))
            .collect();
        store.add_faces("people", &faces).unwrap();
        store.close().unwrap();
        faces
    };
    let needles = |faces: &[vigil_store::StoredFace]| -> Vec<Vec<u8>> {
        faces
            .iter()
            .flat_map(|f| {
                f.embedding
                    .chunks(4)
                    .map(|c| c.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let faces = write(config(dir.path()));
    let index = std::fs::read(dir.path().join("index.redb")).unwrap();
    for n in needles(&faces) {
        assert!(!contains(&index, &n), "embedding bytes {n:?} in the index");
    }
    let store = open(config(dir.path()));
    let rec = store.collection("people").unwrap();
    assert_eq!(store.faces(&rec, None, 100).unwrap(), faces);
    drop(store);

    // Another default master key cannot open them: authentication fails, no garbage.
    std::fs::write(
        dir.path().join("keys").join("default.key"),
        format!("vigil-master-key v1\n{}\n", "ab".repeat(32)),
    )
    .unwrap();
    let store = open(config(dir.path()));
    let rec = store.collection("people").unwrap();
    assert!(matches!(
        store.faces(&rec, None, 100),
        Err(StoreError::Authentication { .. })
    ));
    drop(store);

    // The search can fail: with encryption off, the embeddings are there to be found.
    let plain = tempfile::tempdir().unwrap();
    let mut cfg = config(plain.path());
    cfg.encryption = false;
    let faces = write(cfg);
    let index = std::fs::read(plain.path().join("index.redb")).unwrap();
    assert!(needles(&faces).iter().any(|n| contains(&index, n)));
}

/// Log entries (keys and data) are sealed at rest like fragments: none of their bytes are on
/// disk in the clear, they read back after a reopen, and a changed byte of a batch's
/// ciphertext or plaintext header fails authentication (never garbage), which the check
/// reports.
#[test]
fn log_entries_are_encrypted_at_rest_and_tamper_evident() {
    use vigil_store::{NewEntry, NewLogGroup, Position};
    const KEY_CANARY: &[u8] = b"PARTITION-KEY-CANARY:customer-42";
    let entries: Vec<NewEntry> = (0..6)
        .map(|i| NewEntry {
            key: bytes::Bytes::from([KEY_CANARY, format!("/{i}").as_bytes()].concat()),
            data: bytes::Bytes::from(canary_payload(i)),
        })
        .collect();
    let write = |cfg: StoreConfig| {
        let store = open(cfg);
        let g = store
            .create_log_group(NewLogGroup::new("canary-logs"))
            .unwrap()
            .id;
        let done: Vec<_> = entries
            .chunks(2)
            .map(|c| store.append_log(g, 0, c).unwrap().wait_blocking().unwrap())
            .collect();
        store.close().unwrap();
        (g, done)
    };
    let dir = tempfile::tempdir().unwrap();
    let (g, done) = write(config(dir.path()));
    for (path, bytes) in data_files(dir.path()) {
        for needle in [CANARY, KEY_CANARY].iter().flat_map(|c| c.windows(16)) {
            assert!(
                !contains(&bytes, needle),
                "plaintext {needle:?} in {path:?}"
            );
        }
    }
    let store = open(config(dir.path()));
    let got = store
        .read_log(g, 0, Position::MIN, 100, usize::MAX)
        .unwrap();
    assert_eq!(got.len(), entries.len());
    for (e, s) in got.iter().zip(&entries) {
        assert_eq!((&e.key, &e.data), (&s.key, &s.data));
    }
    let rows = store.index().log_batches(g, 0, 0, 10).unwrap();
    assert_eq!(rows.len(), 3);
    drop(store);

    // Batch 0: a ciphertext byte flipped, CRC fixed. Batch 1: its arrival time (in the
    // associated data) changed, CRC fixed. Batch 2 untouched.
    for (row, at) in [
        (&rows[0], FRAME_LEN + BODY_HEADER_LEN + 20),
        (&rows[1], FRAME_LEN + 28),
    ] {
        let path = segment_path(dir.path(), row.location.segment);
        let mut bytes = std::fs::read(&path).unwrap();
        let start = row.location.offset as usize;
        let end = start + row.location.len as usize;
        bytes[start + at] ^= 0x04;
        fix_crc(&mut bytes, start, end);
        std::fs::write(&path, &bytes).unwrap();
    }
    let store = open(config(dir.path()));
    for (row, first) in rows.iter().zip(&done).take(2) {
        let err = store
            .read_log(g, 0, first.first, 10, usize::MAX)
            .unwrap_err();
        assert!(matches!(err, StoreError::Authentication { .. }), "{err:?}");
        assert!(store.read_log_batch(row).is_err());
    }
    let last = store.read_log(g, 0, done[2].first, 10, usize::MAX).unwrap();
    assert_eq!(last.len(), 2);
    assert_eq!(last[1].data, entries[5].data);
    let report = check(&store, false, &mut |_, _, _| {}).unwrap();
    assert!(!report.is_clean());
    assert_eq!(report.log_batches, 3);
    for row in &rows[..2] {
        let needle = format!("batch {} of log 0 of log group", row.batch);
        assert!(
            report.problems.iter().any(|p| p.contains(&needle)),
            "{needle}: {:#?}",
            report.problems
        );
    }
    drop(store);

    // The search can fail: with encryption off, the canaries are there to be found.
    let plain = tempfile::tempdir().unwrap();
    let mut cfg = config(plain.path());
    cfg.encryption = false;
    write(cfg);
    let files = data_files(plain.path());
    assert!(files.iter().any(|(_, b)| contains(b, CANARY)));
    assert!(files.iter().any(|(_, b)| contains(b, KEY_CANARY)));
}
