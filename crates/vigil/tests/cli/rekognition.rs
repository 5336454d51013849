//! The Rekognition face-collection API driven by the official AWS SDK for Rust
//! (`aws-sdk-rekognition`) against the real binary, signing with SigV4 for `rekognition`,
//! with real photos (`crates/faces/testdata/`, provenance in its PROVENANCE.md): Barack Obama
//! (three photos), Joe Biden, Eileen Collins, a group of five, and a cup of coffee.

use aws_sdk_rekognition::Client;
use aws_sdk_rekognition::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_rekognition::error::ProvideErrorMetadata;
use aws_sdk_rekognition::primitives::Blob;
use aws_sdk_rekognition::types::{
    Attribute, BoundingBox, FaceMatch, Image, QualityFilter, Reason, S3Object,
};

use crate::aws_sdk::http_client;
use crate::{ROOT_KEY, ROOT_SECRET, Server};

fn photo(name: &str) -> Image {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../faces/testdata")
        .join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Image::builder().bytes(Blob::new(bytes)).build()
}

fn client(server: &Server, key: &str, secret: &str) -> Client {
    let cfg = aws_sdk_rekognition::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(key, secret, None, None, "vigil-tests"))
        .endpoint_url(format!("http://{}", server.addr))
        .http_client(http_client())
        .build();
    Client::from_conf(cfg)
}

fn root(server: &Server) -> Client {
    client(server, ROOT_KEY, ROOT_SECRET)
}

/// The onnxruntime library of `scripts/onnxruntime.sh` (set up from the PyPI wheel if missing).
fn onnxruntime_library() -> String {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/onnxruntime.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn code<E: ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("(none)").to_owned()
}

fn assert_ratio_box(b: &BoundingBox) {
    for v in [b.left(), b.top(), b.width(), b.height()] {
        let v = v.unwrap();
        assert!((0.0..=1.0).contains(&v), "{b:?}");
    }
    assert!(
        b.width().unwrap() > 0.0 && b.height().unwrap() > 0.0,
        "{b:?}"
    );
}

fn external_ids(matches: &[FaceMatch]) -> Vec<String> {
    matches
        .iter()
        .map(|m| {
            m.face()
                .and_then(|f| f.external_image_id())
                .unwrap_or("-")
                .to_owned()
        })
        .collect()
}

/// Indexes one photo's faces under `external`; returns the FaceIds.
async fn index(rk: &Client, collection: &str, file: &str, external: &str) -> Vec<String> {
    let out = rk
        .index_faces()
        .collection_id(collection)
        .image(photo(file))
        .external_image_id(external)
        .send()
        .await
        .unwrap();
    assert_eq!(out.face_model_version(), Some("vigil-faces-1"));
    out.face_records()
        .iter()
        .map(|r| r.face().unwrap().face_id().unwrap().to_owned())
        .collect()
}

#[test]
fn sdk_drives_face_collections() {
    let server = Server::start_with_root(&[]);
    let rk = root(&server);
    runtime().block_on(async {
        // Collections.
        let created = rk
            .create_collection()
            .collection_id("people")
            .send()
            .await
            .unwrap();
        assert_eq!(created.status_code(), Some(200));
        assert_eq!(
            created.collection_arn(),
            Some("aws:rekognition:us-east-1:000000000000:collection/people")
        );
        let e = rk
            .create_collection()
            .collection_id("people")
            .send()
            .await
            .unwrap_err();
        assert!(
            e.as_service_error()
                .unwrap()
                .is_resource_already_exists_exception()
        );
        rk.create_collection()
            .collection_id("empty.one")
            .send()
            .await
            .unwrap();

        // IndexFaces: one face per portrait, with its box, landmarks and ids.
        let out = rk
            .index_faces()
            .collection_id("people")
            .image(photo("obama.jpg"))
            .external_image_id("obama")
            .detection_attributes(Attribute::All)
            .send()
            .await
            .unwrap();
        assert_eq!(out.face_records().len(), 1, "{out:?}");
        let rec = &out.face_records()[0];
        let face = rec.face().unwrap();
        let obama_id = face.face_id().unwrap().to_owned();
        assert_eq!(obama_id.len(), 36);
        assert_eq!(face.external_image_id(), Some("obama"));
        assert_eq!(face.index_faces_model_version(), Some("vigil-faces-1"));
        assert!(face.confidence().unwrap() > 90.0, "{face:?}");
        assert_ratio_box(face.bounding_box().unwrap());
        let detail = rec.face_detail().unwrap();
        let types: Vec<&str> = detail
            .landmarks()
            .iter()
            .map(|l| l.r#type().unwrap().as_str())
            .collect();
        assert_eq!(
            types,
            ["eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight"]
        );
        assert!(detail.pose().is_some() && detail.quality().is_some());
        assert!(
            detail.age_range().is_none() && detail.emotions().is_empty(),
            "not computed"
        );
        assert!(out.unindexed_faces().is_empty());

        let obama2 = index(&rk, "people", "obama2.jpg", "obama-2").await;
        assert_eq!(obama2.len(), 1);
        let collins = index(&rk, "people", "astronaut.png", "collins").await;
        assert_eq!(collins.len(), 1);
        assert!(
            index(&rk, "people", "coffee.png", "coffee")
                .await
                .is_empty()
        );
        let described = rk
            .describe_collection()
            .collection_id("people")
            .send()
            .await
            .unwrap();
        assert_eq!(described.face_count(), Some(3));
        assert_eq!(
            described.collection_arn(),
            Some("arn:aws:rekognition:us-east-1:000000000000:collection/people")
        );
        assert!(described.creation_timestamp().is_some());

        // SearchFacesByImage: another photo of a known person matches him, and only him.
        let found = rk
            .search_faces_by_image()
            .collection_id("people")
            .image(photo("obama3.jpg"))
            .send()
            .await
            .unwrap();
        let ids = external_ids(found.face_matches());
        assert!(!ids.is_empty(), "{found:?}");
        assert!(ids.iter().all(|i| i.starts_with("obama")), "{ids:?}");
        for m in found.face_matches() {
            assert!(m.similarity().unwrap() >= 80.0, "{m:?}");
        }
        let sims: Vec<f32> = found
            .face_matches()
            .iter()
            .map(|m| m.similarity().unwrap())
            .collect();
        assert!(sims.windows(2).all(|w| w[0] >= w[1]), "sorted: {sims:?}");
        assert_ratio_box(found.searched_face_bounding_box().unwrap());
        assert!(found.searched_face_confidence().unwrap() > 90.0);
        // Someone not in the collection: no match.
        let found = rk
            .search_faces_by_image()
            .collection_id("people")
            .image(photo("biden.jpg"))
            .send()
            .await
            .unwrap();
        assert!(found.face_matches().is_empty(), "{found:?}");
        // A low threshold shows the others, still best first and capped by MaxFaces.
        let found = rk
            .search_faces_by_image()
            .collection_id("people")
            .image(photo("biden.jpg"))
            .face_match_threshold(0.0)
            .max_faces(2)
            .send()
            .await
            .unwrap();
        assert!(found.face_matches().len() <= 2);
        assert!(
            found
                .face_matches()
                .iter()
                .all(|m| m.similarity().unwrap() < 80.0)
        );
        // No face at all.
        let e = rk
            .search_faces_by_image()
            .collection_id("people")
            .image(photo("coffee.png"))
            .send()
            .await
            .unwrap_err();
        assert!(
            e.as_service_error()
                .unwrap()
                .is_invalid_parameter_exception(),
            "{e:?}"
        );

        // SearchFaces by FaceId.
        let found = rk
            .search_faces()
            .collection_id("people")
            .face_id(&obama_id)
            .send()
            .await
            .unwrap();
        assert_eq!(found.searched_face_id(), Some(obama_id.as_str()));
        assert_eq!(external_ids(found.face_matches()), ["obama-2"]);
        assert!(found.face_matches()[0].similarity().unwrap() >= 80.0);
        let found = rk
            .search_faces()
            .collection_id("people")
            .face_id(&collins[0])
            .send()
            .await
            .unwrap();
        assert!(found.face_matches().is_empty(), "{found:?}");

        // CompareFaces.
        let cmp = rk
            .compare_faces()
            .source_image(photo("obama.jpg"))
            .target_image(photo("obama3.jpg"))
            .send()
            .await
            .unwrap();
        assert_eq!(cmp.face_matches().len(), 1, "{cmp:?}");
        assert!(cmp.face_matches()[0].similarity().unwrap() >= 80.0);
        assert_ratio_box(cmp.source_image_face().unwrap().bounding_box().unwrap());
        let cmp = rk
            .compare_faces()
            .source_image(photo("obama2.jpg"))
            .target_image(photo("group.jpg"))
            .send()
            .await
            .unwrap();
        assert!(cmp.face_matches().is_empty(), "{cmp:?}");
        assert!(cmp.unmatched_faces().len() >= 4, "{cmp:?}");
        let cmp = rk
            .compare_faces()
            .source_image(photo("biden.jpg"))
            .target_image(photo("group.jpg"))
            .similarity_threshold(0.0)
            .send()
            .await
            .unwrap();
        let sims: Vec<f32> = cmp
            .face_matches()
            .iter()
            .map(|m| m.similarity().unwrap())
            .collect();
        assert!(
            sims.len() >= 4 && sims.windows(2).all(|w| w[0] >= w[1]),
            "{sims:?}"
        );

        // DetectFaces.
        let det = rk
            .detect_faces()
            .image(photo("group.jpg"))
            .send()
            .await
            .unwrap();
        assert!(det.face_details().len() >= 4, "{det:?}");
        for f in det.face_details() {
            assert_ratio_box(f.bounding_box().unwrap());
            assert_eq!(f.landmarks().len(), 5);
            for l in f.landmarks() {
                assert!(
                    (0.0..=1.0).contains(&l.x().unwrap()) && (0.0..=1.0).contains(&l.y().unwrap())
                );
            }
            let q = f.quality().unwrap();
            assert!((0.0..=100.0).contains(&q.brightness().unwrap()));
            assert!((0.0..=100.0).contains(&q.sharpness().unwrap()));
            assert!((0.0..=100.0).contains(&f.confidence().unwrap()));
        }
        let det = rk
            .detect_faces()
            .image(photo("coffee.png"))
            .send()
            .await
            .unwrap();
        assert!(det.face_details().is_empty());

        // IndexFaces with MaxFaces: the largest faces go in, the rest are reported.
        let out = rk
            .index_faces()
            .collection_id("people")
            .image(photo("group.jpg"))
            .max_faces(2)
            .quality_filter(QualityFilter::None)
            .send()
            .await
            .unwrap();
        assert_eq!(out.face_records().len(), 2, "{out:?}");
        assert!(out.unindexed_faces().len() >= 2);
        assert!(
            out.unindexed_faces()
                .iter()
                .all(|u| u.reasons() == [Reason::ExceedsMaxFaces])
        );
        let area = |b: &BoundingBox| b.width().unwrap() * b.height().unwrap();
        let smallest_kept = out
            .face_records()
            .iter()
            .map(|r| area(r.face().unwrap().bounding_box().unwrap()))
            .fold(f32::MAX, f32::min);
        for u in out.unindexed_faces() {
            assert!(area(u.face_detail().unwrap().bounding_box().unwrap()) <= smallest_kept);
        }

        // ListFaces, two at a time: every face once, in one order.
        let mut listed = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = rk
                .list_faces()
                .collection_id("people")
                .max_results(2)
                .set_next_token(token.clone())
                .send()
                .await
                .unwrap();
            pages += 1;
            assert!(page.faces().len() <= 2);
            listed.extend(page.faces().iter().map(|f| f.face_id().unwrap().to_owned()));
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        assert_eq!(listed.len(), 5, "{listed:?}");
        assert!(pages >= 3);
        let mut sorted = listed.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, listed, "in FaceId order, no repeats");
        let e = rk
            .list_faces()
            .collection_id("people")
            .next_token("not-a-token")
            .send()
            .await
            .unwrap_err();
        assert!(
            e.as_service_error()
                .unwrap()
                .is_invalid_pagination_token_exception()
        );

        // DeleteFaces.
        let missing = "00000000-0000-4000-8000-000000000000";
        let del = rk
            .delete_faces()
            .collection_id("people")
            .face_ids(&obama2[0])
            .face_ids(missing)
            .send()
            .await
            .unwrap();
        assert_eq!(del.deleted_faces(), [obama2[0].clone()]);
        assert_eq!(del.unsuccessful_face_deletions().len(), 1);
        assert_eq!(
            del.unsuccessful_face_deletions()[0].face_id(),
            Some(missing)
        );
        let found = rk
            .search_faces()
            .collection_id("people")
            .face_id(&obama_id)
            .send()
            .await
            .unwrap();
        assert!(
            found.face_matches().is_empty(),
            "deleted faces are not found: {found:?}"
        );
        let described = rk
            .describe_collection()
            .collection_id("people")
            .send()
            .await
            .unwrap();
        assert_eq!(described.face_count(), Some(4));

        // ListCollections, paged.
        let first = rk.list_collections().max_results(1).send().await.unwrap();
        assert_eq!(first.collection_ids(), ["empty.one"]);
        assert_eq!(first.face_model_versions(), ["vigil-faces-1"]);
        let second = rk
            .list_collections()
            .max_results(1)
            .next_token(first.next_token().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(second.collection_ids(), ["people"]);
        assert!(second.next_token().is_none());

        // Errors.
        let e = rk
            .describe_collection()
            .collection_id("nobody")
            .send()
            .await
            .unwrap_err();
        assert!(
            e.as_service_error()
                .unwrap()
                .is_resource_not_found_exception(),
            "{e:?}"
        );
        let e = rk
            .index_faces()
            .collection_id("nobody")
            .image(photo("obama.jpg"))
            .send()
            .await
            .unwrap_err();
        assert!(
            e.as_service_error()
                .unwrap()
                .is_resource_not_found_exception()
        );
        let e = rk
            .search_faces_by_image()
            .collection_id("nobody")
            .image(photo("obama.jpg"))
            .send()
            .await
            .unwrap_err();
        assert!(
            e.as_service_error()
                .unwrap()
                .is_resource_not_found_exception()
        );
        let e = rk
            .detect_faces()
            .image(
                Image::builder()
                    .bytes(Blob::new(b"not an image at all".to_vec()))
                    .build(),
            )
            .send()
            .await
            .unwrap_err();
        assert!(
            e.as_service_error()
                .unwrap()
                .is_invalid_image_format_exception(),
            "{e:?}"
        );
        let e = rk
            .index_faces()
            .collection_id("people")
            .image(
                Image::builder()
                    .s3_object(S3Object::builder().bucket("photos").name("a.jpg").build())
                    .build(),
            )
            .send()
            .await
            .unwrap_err();
        assert!(
            e.as_service_error()
                .unwrap()
                .is_invalid_s3_object_exception(),
            "{e:?}"
        );
        assert!(e.message().unwrap().contains("Bytes"), "{e:?}");
        let e = rk
            .detect_faces()
            .image(
                Image::builder()
                    .bytes(Blob::new(vec![0xff; 5 * 1024 * 1024 + 1]))
                    .build(),
            )
            .send()
            .await
            .unwrap_err();
        assert!(
            e.as_service_error().unwrap().is_image_too_large_exception(),
            "{e:?}"
        );
        let e = rk
            .create_collection()
            .collection_id("no spaces")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "ValidationException");
        let e = rk
            .search_faces()
            .collection_id("people")
            .face_id(&obama_id)
            .face_match_threshold(101.0)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "ValidationException");
        let e = rk
            .search_faces()
            .collection_id("people")
            .face_id(&obama_id)
            .max_faces(0)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "ValidationException");
        let e = rk
            .search_faces()
            .collection_id("people")
            .face_id(missing)
            .send()
            .await
            .unwrap_err();
        assert!(
            e.as_service_error()
                .unwrap()
                .is_invalid_parameter_exception(),
            "{e:?}"
        );
        let e = rk
            .index_faces()
            .collection_id("people")
            .image(photo("obama.jpg"))
            .external_image_id("has spaces")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "ValidationException");

        // DeleteCollection: gone, with its faces.
        let del = rk
            .delete_collection()
            .collection_id("people")
            .send()
            .await
            .unwrap();
        assert_eq!(del.status_code(), Some(200));
        let e = rk
            .describe_collection()
            .collection_id("people")
            .send()
            .await
            .unwrap_err();
        assert!(
            e.as_service_error()
                .unwrap()
                .is_resource_not_found_exception()
        );
        let e = rk
            .delete_collection()
            .collection_id("people")
            .send()
            .await
            .unwrap_err();
        assert!(
            e.as_service_error()
                .unwrap()
                .is_resource_not_found_exception()
        );
        rk.create_collection()
            .collection_id("people")
            .send()
            .await
            .unwrap();
        let listed = rk
            .list_faces()
            .collection_id("people")
            .send()
            .await
            .unwrap();
        assert!(
            listed.faces().is_empty(),
            "a new collection of the same name is empty"
        );
    });
}

#[test]
fn faces_survive_a_restart() {
    let mut server = Server::start_with_root(&[]);
    let (obama, biden) = runtime().block_on(async {
        let rk = root(&server);
        rk.create_collection()
            .collection_id("door")
            .send()
            .await
            .unwrap();
        let obama = index(&rk, "door", "obama.jpg", "obama").await;
        let biden = index(&rk, "door", "biden.jpg", "biden").await;
        (obama, biden)
    });
    let data = std::mem::replace(&mut server.data, tempfile::tempdir().unwrap());
    drop(server);
    // Restarted on the other backend: faces indexed with tract are found with onnxruntime
    // (the same models, so the same embeddings to float rounding).
    let library = onnxruntime_library();
    let mut server = Server::start_in(
        data,
        &["--onnxruntime-library", library.as_str()],
        &[
            ("VIGIL_ACCESS_KEY_ID", ROOT_KEY),
            ("VIGIL_SECRET_ACCESS_KEY", ROOT_SECRET),
            ("VIGIL_FACES_BACKEND", "onnxruntime"),
        ],
    );
    // The binary loads a non-default backend before it listens, so the lines may be in.
    let loaded = server.log_line("face engine loaded");
    assert!(loaded.contains("onnxruntime 1.23.2"), "{loaded}");
    server.log_line("face collections and engine ready");
    runtime().block_on(async {
        let rk = root(&server);
        let described = rk
            .describe_collection()
            .collection_id("door")
            .send()
            .await
            .unwrap();
        assert_eq!(described.face_count(), Some(2));
        let found = rk
            .search_faces_by_image()
            .collection_id("door")
            .image(photo("obama2.jpg"))
            .send()
            .await
            .unwrap();
        assert_eq!(external_ids(found.face_matches()), ["obama"], "{found:?}");
        assert_eq!(
            found.face_matches()[0].face().unwrap().face_id(),
            Some(obama[0].as_str())
        );
        let listed = rk.list_faces().collection_id("door").send().await.unwrap();
        let mut ids: Vec<String> = listed
            .faces()
            .iter()
            .map(|f| f.face_id().unwrap().to_owned())
            .collect();
        ids.sort();
        let mut want = vec![obama[0].clone(), biden[0].clone()];
        want.sort();
        assert_eq!(ids, want);
    });
}

#[test]
fn a_missing_onnxruntime_library_stops_the_server_at_start() {
    let data = tempfile::tempdir().unwrap();
    let mut child = crate::vigil()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--faces-backend",
            "onnxruntime",
        ])
        .args([
            "--onnxruntime-library",
            "/nonexistent/libonnxruntime.so",
            "--data-dir",
        ])
        .arg(data.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("vigil serve kept running without its onnxruntime library");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(
        stderr.contains("loading the face engine (onnxruntime backend)")
            && stderr.contains("/nonexistent/libonnxruntime.so does not exist")
            && stderr.contains("scripts/onnxruntime.sh"),
        "{stderr}"
    );
}

#[test]
fn key_policies_name_rekognition_actions() {
    let server = Server::start_with_root(&[]);
    let key = |name: &str, allow: &str| -> (String, String) {
        let out = crate::run(
            crate::vigil()
                .args(["keys", "--data-dir"])
                .arg(server.data_dir())
                .args(["create", "--name", name, "--allow", allow, "--json"]),
        );
        assert!(out.status.success(), "{out:?}");
        let k: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (
            k["access_key_id"].as_str().unwrap().to_owned(),
            k["secret_access_key"].as_str().unwrap().to_owned(),
        )
    };
    let (kvs_id, kvs_secret) = key("kvs", "*");
    let (search_id, search_secret) = key("viewer", "rekognition:Describe*,rekognition:ListFaces");
    runtime().block_on(async {
        root(&server)
            .create_collection()
            .collection_id("staff")
            .send()
            .await
            .unwrap();
        // `*` is every KVS operation; face collections must be named.
        let e = client(&server, &kvs_id, &kvs_secret)
            .describe_collection()
            .collection_id("staff")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "AccessDeniedException", "{e:?}");
        assert!(
            e.message()
                .unwrap()
                .contains("rekognition:DescribeCollection")
        );
        let limited = client(&server, &search_id, &search_secret);
        limited
            .describe_collection()
            .collection_id("staff")
            .send()
            .await
            .unwrap();
        limited
            .list_faces()
            .collection_id("staff")
            .send()
            .await
            .unwrap();
        let e = limited
            .delete_collection()
            .collection_id("staff")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "AccessDeniedException");
        // A wrong secret fails the signature.
        let e = client(&server, &search_id, "wrong")
            .list_collections()
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "InvalidSignatureException", "{e:?}");
    });
}
