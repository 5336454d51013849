//! Kinesis Data Streams against the real binary: boto3, the AWS CLI and the Java SDK's CBOR
//! wire (`tests/kinesis_clients.py`, in the venv of `scripts/aws-venv.sh`), the AWS SDK for
//! Rust for the core path, a restart, and SIGKILL under load.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};

use crate::aws_sdk::http_client;
use crate::{ROOT_KEY, ROOT_SECRET, Server};

fn client(server: &Server) -> Client {
    let cfg = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            ROOT_KEY,
            ROOT_SECRET,
            None,
            None,
            "vigil-tests",
        ))
        .endpoint_url(format!("http://{}", server.addr))
        .http_client(http_client())
        .build();
    Client::from_conf(cfg)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The python of `scripts/aws-venv.sh` (made from PyPI if missing).
pub(crate) fn aws_python() -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/aws-venv.sh");
    let out = Command::new("bash").arg(&script).output().unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn boto3_the_aws_cli_and_the_java_cbor_wire_drive_data_streams() {
    let server = Server::start_with_root(&[]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kinesis_clients.py");
    let out = Command::new(aws_python())
        .arg(&script)
        .args([
            format!("http://{}", server.addr),
            ROOT_KEY.to_owned(),
            ROOT_SECRET.to_owned(),
            "us-east-1".to_owned(),
            "000000000000".to_owned(),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // Every test ran (a renamed or lost test would not show here).
    for t in [
        "test_streams_tags_retention_encryption_monitoring_limits",
        "test_errors_by_name_and_status",
        "test_put_records_batches_of_500_read_back_exactly_once",
        "test_reshards_keep_every_record_once_in_order",
        "test_at_timestamp",
        "test_the_aws_cli",
        "test_cbor_wire",
    ] {
        assert!(
            stdout.contains(&format!("ok   {t}")),
            "{t} did not pass:\n{stdout}"
        );
    }
}

/// Every record of every shard of `stream`, from the trim horizon, as (sequence number,
/// partition key, data).
async fn read_all(k: &Client, stream: &str) -> Vec<(String, String, Vec<u8>)> {
    let shards = k.list_shards().stream_name(stream).send().await.unwrap();
    let mut out = Vec::new();
    for shard in shards.shards() {
        let mut it = k
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator()
            .map(str::to_owned);
        while let Some(i) = it {
            let got = k.get_records().shard_iterator(i).send().await.unwrap();
            for r in got.records() {
                out.push((
                    r.sequence_number().to_owned(),
                    r.partition_key().to_owned(),
                    r.data().as_ref().to_vec(),
                ));
            }
            if got.records().is_empty() && got.millis_behind_latest() == Some(0) {
                break;
            }
            it = got.next_shard_iterator().map(str::to_owned);
        }
    }
    out
}

#[test]
fn the_rust_sdk_core_path_and_a_restart() {
    let mut server = Server::start_with_root(&[]);
    let rt = runtime();
    let sent = rt.block_on(async {
        let k = client(&server);
        k.create_stream()
            .stream_name("faces")
            .shard_count(2)
            .send()
            .await
            .unwrap();
        k.add_tags_to_stream()
            .stream_name("faces")
            .tags("home", "door")
            .send()
            .await
            .unwrap();
        let d = k
            .describe_stream_summary()
            .stream_name("faces")
            .send()
            .await
            .unwrap();
        let d = d.stream_description_summary().unwrap();
        assert_eq!(d.stream_status().as_str(), "ACTIVE");
        assert_eq!(d.open_shard_count(), 2);
        assert_eq!(
            d.stream_arn(),
            "arn:aws:kinesis:us-east-1:000000000000:stream/faces"
        );
        let one = k
            .put_record()
            .stream_name("faces")
            .partition_key("alice")
            .data(Blob::new(b"first".to_vec()))
            .send()
            .await
            .unwrap();
        assert_eq!(one.sequence_number().len(), 56);
        let entries: Vec<PutRecordsRequestEntry> = (0..100)
            .map(|i| {
                PutRecordsRequestEntry::builder()
                    .partition_key(format!("p{i}"))
                    .data(Blob::new(format!("record {i}").into_bytes()))
                    .build()
                    .unwrap()
            })
            .collect();
        let many = k
            .put_records()
            .stream_name("faces")
            .set_records(Some(entries))
            .send()
            .await
            .unwrap();
        assert_eq!(many.failed_record_count(), Some(0));
        assert_eq!(many.records().len(), 100);
        let err = k
            .describe_stream()
            .stream_name("missing")
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("ResourceNotFoundException"), "{err:?}");
        let got = read_all(&k, "faces").await;
        assert_eq!(got.len(), 101);
        let mut sent: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        sent.insert(one.sequence_number().to_owned(), b"first".to_vec());
        for r in many.records() {
            let i = sent.len() - 1;
            sent.insert(
                r.sequence_number().unwrap().to_owned(),
                format!("record {i}").into_bytes(),
            );
        }
        let read: BTreeMap<String, Vec<u8>> = got.into_iter().map(|(s, _, d)| (s, d)).collect();
        assert_eq!(read, sent, "every record read back once, byte for byte");
        sent
    });
    // Restart: streams, shards, tags and records are all there.
    let data = std::mem::replace(&mut server.data, tempfile::tempdir().unwrap());
    drop(server);
    let server = Server::start_in(
        data,
        &[],
        &[
            ("VIGIL_ACCESS_KEY_ID", ROOT_KEY),
            ("VIGIL_SECRET_ACCESS_KEY", ROOT_SECRET),
        ],
    );
    rt.block_on(async {
        let k = client(&server);
        let tags = k
            .list_tags_for_stream()
            .stream_name("faces")
            .send()
            .await
            .unwrap();
        assert_eq!(tags.tags().len(), 1);
        let read: BTreeMap<String, Vec<u8>> = read_all(&k, "faces")
            .await
            .into_iter()
            .map(|(s, _, d)| (s, d))
            .collect();
        assert_eq!(read, sent, "records survive a restart");
        let after = k
            .put_record()
            .stream_name("faces")
            .partition_key("alice")
            .data(Blob::new(b"after".to_vec()))
            .send()
            .await
            .unwrap();
        let last_before = sent.keys().max().unwrap();
        assert!(
            after.sequence_number() > last_before.as_str(),
            "sequence numbers keep increasing across a restart"
        );
    });
}

#[test]
fn acknowledged_records_survive_sigkill_under_load() {
    let mut server = Server::start_with_root(&[]);
    let rt = runtime();
    // Every record carries a unique id; `acked` holds those PutRecords reported stored.
    let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let sent: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    rt.block_on(async {
        let k = client(&server);
        k.create_stream()
            .stream_name("load")
            .shard_count(4)
            .send()
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for p in 0..8 {
            let k = k.clone();
            let acked = acked.clone();
            let sent = sent.clone();
            tasks.push(tokio::spawn(async move {
                for batch in 0.. {
                    let ids: Vec<String> = (0..50).map(|i| format!("p{p}-b{batch}-r{i}")).collect();
                    sent.lock().unwrap().extend(ids.iter().cloned());
                    let entries = ids
                        .iter()
                        .map(|id| {
                            PutRecordsRequestEntry::builder()
                                .partition_key(id)
                                .data(Blob::new(id.clone().into_bytes()))
                                .build()
                                .unwrap()
                        })
                        .collect();
                    let Ok(out) = k
                        .put_records()
                        .stream_name("load")
                        .set_records(Some(entries))
                        .send()
                        .await
                    else {
                        return;
                    };
                    let mut a = acked.lock().unwrap();
                    for (id, r) in ids.iter().zip(out.records()) {
                        if let Some(seq) = r.sequence_number() {
                            a.insert(id.clone(), seq.to_owned());
                        }
                    }
                }
            }));
        }
        let started = Instant::now();
        while acked.lock().unwrap().len() < 2000 && started.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.signal_and_wait("KILL");
        for t in tasks {
            let _ = t.await;
        }
    });
    let acked = acked.lock().unwrap().clone();
    let sent = sent.lock().unwrap().clone();
    assert!(acked.len() >= 2000, "{} records acknowledged", acked.len());
    let data = std::mem::replace(&mut server.data, tempfile::tempdir().unwrap());
    drop(server);
    let server = Server::start_in(
        data,
        &[],
        &[
            ("VIGIL_ACCESS_KEY_ID", ROOT_KEY),
            ("VIGIL_SECRET_ACCESS_KEY", ROOT_SECRET),
        ],
    );
    rt.block_on(async {
        let k = client(&server);
        let got = read_all(&k, "load").await;
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for (seq, key, data) in got {
            assert_eq!(key.as_bytes(), &data[..], "data and key of one record");
            assert!(sent.contains(&key), "{key} was never sent");
            assert!(seen.insert(key.clone(), seq).is_none(), "{key} read twice");
        }
        for (id, seq) in &acked {
            assert_eq!(
                seen.get(id),
                Some(seq),
                "acknowledged {id} lost after SIGKILL"
            );
        }
        println!(
            "{} acknowledged, {} read back after SIGKILL ({} sent)",
            acked.len(),
            seen.len(),
            sent.len()
        );
    });
}
