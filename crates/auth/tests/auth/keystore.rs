//! The key store: the file, root generation and override, scoped keys, revocation seen at once
//! by another `KeyStore` on the same directory (as by another process), writers serialised,
//! versioning, and verification against it end to end.

use std::os::unix::fs::PermissionsExt;

use vigil_auth::{
    AuthError, CredentialLookup, KeyStore, KeyStoreError, NewKey, Payload, Policy, PrincipalKind,
    RootOverride, RootStatus, SecretKey, UnrecognizedReason, Verifier, VerifierConfig,
};

use crate::common::*;

fn cams_policy() -> Policy {
    Policy {
        operations: vec![
            "PutMedia".into(),
            "DescribeStream".into(),
            "GetDataEndpoint".into(),
        ],
        streams: vec!["cam-*".into()],
    }
}

fn new_key(name: &str) -> NewKey {
    NewKey {
        name: name.into(),
        description: "front cameras\nfloor 2".into(),
        policy: cams_policy(),
    }
}

fn override_root() -> RootOverride {
    RootOverride {
        access_key_id: ACCESS_KEY.into(),
        secret: SecretKey::new(SECRET),
    }
}

#[test]
fn generates_a_root_once_and_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let (store, status) = KeyStore::open(dir.path(), None).unwrap();
    let RootStatus::Generated {
        access_key_id,
        secret,
    } = status
    else {
        panic!("{status:?}");
    };
    assert_eq!(access_key_id.len(), 20);
    assert!(access_key_id.starts_with("VK"));
    assert!(
        access_key_id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    );
    assert_eq!(secret.expose().len(), 40);
    let found = store.lookup(&access_key_id).unwrap();
    assert_eq!(found.secret, secret);
    assert!(found.principal.is_root());
    assert_eq!(store.root_access_key_id(), Some(access_key_id.clone()));

    // The file and its directory are private.
    let path = dir.path().join("auth/keys.json");
    assert_eq!(store.path(), path);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir.path().join("auth")), 0o700);
    let json: serde_json::Value = serde_json::from_slice(&read(&path)).unwrap();
    assert_eq!(json["format_version"], 1);
    assert_eq!(json["root"]["access_key_id"], access_key_id.as_str());

    drop(store);
    let (again, status) = KeyStore::open(dir.path(), None).unwrap();
    assert_eq!(
        status,
        RootStatus::Stored {
            access_key_id: access_key_id.clone()
        }
    );
    assert_eq!(again.lookup(&access_key_id).unwrap().secret, secret);
}

#[test]
fn the_override_wins_over_the_stored_root() {
    let dir = tempfile::tempdir().unwrap();
    let (_, status) = KeyStore::open(dir.path(), None).unwrap();
    let RootStatus::Generated {
        access_key_id: stored,
        ..
    } = status
    else {
        panic!()
    };

    let (store, status) = KeyStore::open(dir.path(), Some(override_root())).unwrap();
    assert_eq!(
        status,
        RootStatus::Override {
            access_key_id: ACCESS_KEY.into()
        }
    );
    assert_eq!(store.root_access_key_id().as_deref(), Some(ACCESS_KEY));
    assert!(store.lookup(ACCESS_KEY).unwrap().principal.is_root());
    assert_eq!(
        store.lookup(&stored).unwrap_err(),
        UnrecognizedReason::UnknownKey
    );
    // Not written to the file.
    let text = String::from_utf8(read(store.path())).unwrap();
    assert!(!text.contains(ACCESS_KEY));
    assert!(!text.contains(SECRET));

    // With an override on an empty directory, no root is generated.
    let empty = tempfile::tempdir().unwrap();
    let (store, _) = KeyStore::open(empty.path(), Some(override_root())).unwrap();
    assert!(store.lookup(ACCESS_KEY).is_ok());
    assert!(!store.path().exists());

    for (id, secret) in [
        ("", "s"),
        ("A/B", "s"),
        ("A B", "s"),
        ("AKID", ""),
        ("AKID", "a b"),
    ] {
        let bad = RootOverride {
            access_key_id: id.into(),
            secret: SecretKey::new(secret),
        };
        assert!(matches!(
            KeyStore::open(empty.path(), Some(bad)),
            Err(KeyStoreError::Invalid(_))
        ));
    }
}

#[test]
fn scoped_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = KeyStore::open(dir.path(), None).unwrap();
    let created = store.create_key(new_key("cams")).unwrap();
    let id = created.info.access_key_id.clone();
    assert!(id.starts_with("VK") && id.len() == 20);
    assert_eq!(created.secret.expose().len(), 40);
    assert!(!created.info.is_revoked());
    assert!(created.info.created_ms > 1_700_000_000_000);

    let listed = store.list_keys();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0], created.info);
    assert_eq!(store.get_key(&id), Some(created.info.clone()));
    // Listing shows no secrets (KeyInfo has none); the file has them.
    assert!(
        format!("{listed:?}")
            .find(created.secret.expose())
            .is_none()
    );

    let found = store.lookup(&id).unwrap();
    assert_eq!(found.secret, created.secret);
    assert_eq!(
        found.principal.kind,
        PrincipalKind::Key {
            name: "cams".into()
        }
    );
    assert_eq!(*found.principal.policy, cams_policy());

    store.authorize(&id, "PutMedia", Some("cam-1")).unwrap();
    store
        .authorize(&id, "GetDataEndpoint", Some("cam-7"))
        .unwrap();
    assert!(store.authorize(&id, "PutMedia", Some("door")).is_err());
    assert!(store.authorize(&id, "DeleteStream", Some("cam-1")).is_err());
    assert!(
        store
            .authorize("VKNOSUCHKEY", "PutMedia", Some("cam-1"))
            .is_err()
    );
    let root = store.root_access_key_id().unwrap();
    store
        .authorize(&root, "DeleteStream", Some("anything"))
        .unwrap();

    // Invalid keys are refused before anything is written.
    let mut bad = new_key("");
    assert!(matches!(
        store.create_key(bad.clone()),
        Err(KeyStoreError::Invalid(_))
    ));
    bad.name = "ok".into();
    bad.policy.streams = vec!["cam/1".into()];
    assert!(matches!(
        store.create_key(bad),
        Err(KeyStoreError::InvalidPolicy(_))
    ));
    assert_eq!(store.list_keys().len(), 1);
}

#[test]
fn revoke_and_delete_take_effect_at_once_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    // `server` and `cli` stand for two processes: separate stores on one directory.
    let (server, _) = KeyStore::open(dir.path(), None).unwrap();
    let (cli, _) = KeyStore::open(dir.path(), None).unwrap();
    let server_clone = server.clone();

    let created = cli.create_key(new_key("cams")).unwrap();
    let id = created.info.access_key_id;
    assert!(
        server.lookup(&id).is_ok(),
        "a key created elsewhere is seen at once"
    );

    cli.revoke_key(&id).unwrap();
    assert_eq!(server.lookup(&id).unwrap_err(), UnrecognizedReason::Revoked);
    assert!(server.get_key(&id).unwrap().is_revoked());
    assert!(server.authorize(&id, "PutMedia", Some("cam-1")).is_err());
    // Revoking again changes nothing.
    let first = server.get_key(&id).unwrap().revoked_ms;
    cli.revoke_key(&id).unwrap();
    assert_eq!(server.get_key(&id).unwrap().revoked_ms, first);

    // Revoked through the server's own store: its clones see it too.
    let other = server
        .create_key(new_key("other"))
        .unwrap()
        .info
        .access_key_id;
    assert!(server_clone.lookup(&other).is_ok());
    server.revoke_key(&other).unwrap();
    assert_eq!(
        server_clone.lookup(&other).unwrap_err(),
        UnrecognizedReason::Revoked
    );
    assert_eq!(cli.lookup(&other).unwrap_err(), UnrecognizedReason::Revoked);

    cli.delete_key(&id).unwrap();
    assert_eq!(
        server.lookup(&id).unwrap_err(),
        UnrecognizedReason::UnknownKey
    );
    assert!(matches!(
        cli.delete_key(&id),
        Err(KeyStoreError::NotFound(_))
    ));
    assert!(matches!(
        cli.revoke_key("VKNONE"),
        Err(KeyStoreError::NotFound(_))
    ));

    let root = server.root_access_key_id().unwrap();
    assert!(matches!(
        cli.revoke_key(&root),
        Err(KeyStoreError::RootKey(_))
    ));
    assert!(matches!(
        cli.delete_key(&root),
        Err(KeyStoreError::RootKey(_))
    ));
    assert!(server.lookup(&root).is_ok());
}

#[test]
fn concurrent_writers_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    KeyStore::open(dir.path(), None).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let path = dir.path().to_owned();
            std::thread::spawn(move || {
                // Each thread its own store, as each process would have.
                let (store, _) = KeyStore::open(&path, None).unwrap();
                (0..5)
                    .map(|i| {
                        store
                            .create_key(new_key(&format!("k{t}-{i}")))
                            .unwrap()
                            .info
                            .access_key_id
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let ids: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let (store, status) = KeyStore::open(dir.path(), None).unwrap();
    assert!(
        matches!(status, RootStatus::Stored { .. }),
        "one root, generated once"
    );
    let listed = store.list_keys();
    assert_eq!(listed.len(), 20);
    for id in ids {
        assert!(store.lookup(&id).is_ok());
    }
}

#[test]
fn versions_and_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = KeyStore::open(dir.path(), None).unwrap();
    let id = store
        .create_key(new_key("cams"))
        .unwrap()
        .info
        .access_key_id;
    let path = store.path().to_owned();
    let good = read(&path);

    // A file from a newer Vigil is refused, not rewritten.
    let newer = String::from_utf8(good.clone())
        .unwrap()
        .replace("\"format_version\": 1", "\"format_version\": 2");
    std::fs::write(&path, &newer).unwrap();
    assert!(matches!(
        KeyStore::open(dir.path(), None),
        Err(KeyStoreError::UnsupportedVersion { found: 2, .. })
    ));
    assert!(matches!(
        store.create_key(new_key("x")),
        Err(KeyStoreError::UnsupportedVersion { .. })
    ));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), newer);

    // A corrupt file: opening fails; a running store keeps what it had and says why.
    std::fs::write(&path, b"{\"format_version\": 1, \"keys\": [").unwrap();
    assert!(matches!(
        KeyStore::open(dir.path(), None),
        Err(KeyStoreError::Corrupt { .. })
    ));
    assert!(matches!(store.reload(), Err(KeyStoreError::Corrupt { .. })));
    assert!(store.lookup(&id).is_ok());

    // Repaired: read again.
    std::fs::write(&path, &good).unwrap();
    store.reload().unwrap();
    assert!(store.lookup(&id).is_ok());

    // Deleted: no keys (the root is gone with it).
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        store.lookup(&id).unwrap_err(),
        UnrecognizedReason::UnknownKey
    );
    assert_eq!(store.root_access_key_id(), None);
}

#[test]
fn verification_against_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = KeyStore::open(dir.path(), None).unwrap();
    let created = store.create_key(new_key("cams")).unwrap();
    let id = created.info.access_key_id.clone();

    let t = now_ms();
    let mut s = ToSign::new(
        "/putMedia",
        vec![("host", "127.0.0.1"), ("x-amzn-stream-name", "cam-1")],
        t,
    );
    s.access_key = &id;
    s.secret = created.secret.expose();
    let raw = s.sign();
    let verifier = Verifier::new(VerifierConfig::new(REGION));
    // Through a trait object, as a server holding `Arc<dyn CredentialLookup>` would.
    let keys: &dyn CredentialLookup = &store;
    let verified = with_request(&raw, |r| verifier.verify(r, Payload::Streaming, t, keys)).unwrap();
    assert_eq!(verified.access_key_id(), id);
    verified
        .principal
        .authorize("PutMedia", Some("cam-1"))
        .unwrap();
    let denied = verified
        .principal
        .authorize("DeleteStream", Some("cam-1"))
        .unwrap_err();
    assert_eq!(
        denied.to_string(),
        format!(
            "User: {id} is not authorized to perform: kinesisvideo:DeleteStream on resource: stream/cam-1"
        )
    );

    store.revoke_key(&id).unwrap();
    let e = with_request(&raw, |r| verifier.verify(r, Payload::Streaming, t, &store)).unwrap_err();
    assert_eq!(
        e,
        AuthError::UnrecognizedClient {
            access_key_id: id,
            reason: UnrecognizedReason::Revoked
        }
    );
    assert_eq!(e.aws_code(), "UnrecognizedClientException");
}
