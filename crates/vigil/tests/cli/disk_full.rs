//! A full disk, for real: the data directory on a 64 MiB tmpfs this test mounts (it runs as
//! root, as CI does), a producer streaming into it, and the disk then filled to the last
//! byte by another file. What must hold (issue 16): the fragment that no longer fits gets an
//! ERROR ack with KVS's storage-failure code and the session ends cleanly; control calls that
//! write answer a clear error; reads keep working and every fragment already PERSISTED reads
//! back frame for frame; and once the file is gone, ingest resumes by itself (a new session)
//! and the store checks clean.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use vigil_mkv::{Demuxer, Event};

use crate::aws_sdk::{control_client, http_client};
use crate::media::{Producer, cluster_offsets, documents, ffmpeg_media};
use crate::{ROOT_KEY, ROOT_SECRET, Server};

/// A tmpfs mounted on a fresh directory, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("vigil-disk-full")
            .arg(dir.path())
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs and must run as root (CI does): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Free bytes on the filesystem holding `dir`.
fn free_bytes(dir: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap()
}

/// Writes `path` until the filesystem refuses another byte.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    for size in [1 << 20, 4096, 1] {
        let block = vec![0xa5u8; size];
        while f.write_all(&block).is_ok() {}
    }
    let _ = f.sync_all();
}

/// (offset, timecode, bytes) of every frame in `data`.
fn frames_at(data: &[u8]) -> Vec<(u64, i64, Vec<u8>)> {
    let mut d = Demuxer::new();
    d.push(data);
    d.finish();
    let mut out = Vec::new();
    while let Some(ev) = d.pull() {
        if let Event::Frame(f) = ev.unwrap() {
            out.push((f.span.offset, f.timecode, f.data.to_vec()));
        }
    }
    out
}

/// (timecode, bytes) of every frame in `data`.
fn frames(data: &[u8]) -> Vec<(i64, Vec<u8>)> {
    frames_at(data)
        .into_iter()
        .map(|(_, t, d)| (t, d))
        .collect()
}

fn events(acks: &[Value], kind: &str) -> usize {
    acks.iter().filter(|a| a["EventType"] == kind).count()
}

#[test]
fn a_full_disk_fails_ingest_cleanly_keeps_reads_and_recovers_by_itself() {
    let disk = Tmpfs::mount("64m");
    let media_dir = tempfile::tempdir().unwrap();
    let input = ffmpeg_media(media_dir.path());
    let clusters = cluster_offsets(&input);
    assert_eq!(clusters.len(), 6);
    let data = tempfile::tempdir_in(disk.path()).unwrap();
    let data_path: PathBuf = data.path().to_path_buf();
    let filler = disk.path().join("filler");
    let mut server = Server::start_in(
        data,
        &["--min-free-bytes", "8MiB"],
        &[
            ("VIGIL_ACCESS_KEY_ID", ROOT_KEY),
            ("VIGIL_SECRET_ACCESS_KEY", ROOT_SECRET),
        ],
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let endpoint = format!("http://{}", server.addr);
    let kv = control_client(&endpoint, ROOT_KEY, ROOT_SECRET, "us-east-1");
    let creds = aws_credential_types::Credentials::new(ROOT_KEY, ROOT_SECRET, None, None, "t");
    let archived = aws_sdk_kinesisvideoarchivedmedia::Client::from_conf(
        aws_sdk_kinesisvideoarchivedmedia::Config::builder()
            .behavior_version(aws_sdk_kinesisvideoarchivedmedia::config::BehaviorVersion::latest())
            .region(aws_sdk_kinesisvideoarchivedmedia::config::Region::new(
                "us-east-1",
            ))
            .credentials_provider(creds)
            .endpoint_url(&endpoint)
            .http_client(http_client())
            .build(),
    );
    // Every fragment the store holds, read back whole: (number, its frames).
    let stored = || {
        rt.block_on(async {
            let mut numbers: Vec<String> = archived
                .list_fragments()
                .stream_name("door")
                .send()
                .await
                .unwrap()
                .fragments
                .unwrap_or_default()
                .into_iter()
                .filter_map(|f| f.fragment_number)
                .collect();
            numbers.sort_by_key(|n| n.parse::<u128>().unwrap());
            if numbers.is_empty() {
                return Vec::new();
            }
            let got = archived
                .get_media_for_fragment_list()
                .stream_name("door")
                .set_fragments(Some(numbers.clone()))
                .send()
                .await
                .unwrap()
                .payload
                .collect()
                .await
                .unwrap()
                .into_bytes();
            documents(&got).into_iter().map(frames).collect::<Vec<_>>()
        })
    };
    // What was sent, fragment by fragment.
    let all = frames_at(&input);
    let sent: Vec<Vec<(i64, Vec<u8>)>> = (0..6)
        .map(|i| {
            let from = clusters[i] as u64;
            let to = clusters.get(i + 1).map_or(u64::MAX, |&c| c as u64);
            all.iter()
                .filter(|(at, _, _)| (from..to).contains(at))
                .map(|(_, t, d)| (*t, d.clone()))
                .collect()
        })
        .collect();
    assert!(sent.iter().all(|f| f.len() == 25));

    // Three fragments in, PERSISTED; the fourth begun.
    let mut producer = rt.block_on(async {
        kv.create_stream()
            .stream_name("door")
            .data_retention_in_hours(24)
            .send()
            .await
            .unwrap();
        let mut p = Producer::open(&server, "door").await;
        p.send(&input[..clusters[3] + 64], 4096).await;
        let mut persisted = 0;
        while persisted < 3 {
            let a = p.ack().await.expect("acks");
            assert_ne!(a["EventType"], "ERROR", "{a}");
            if a["EventType"] == "PERSISTED" {
                persisted += 1;
            }
        }
        p
    });
    assert_eq!(stored(), sent[..3]);

    // Another file takes the rest of the disk.
    fill(&filler);
    assert!(free_bytes(disk.path()) < 64 << 10, "the disk is not full");

    // The fourth fragment cannot be stored: an ERROR ack with 5001 (ARCHIVAL_ERROR), and the
    // response ends (the session is over) instead of hanging or going silent.
    let acks = rt.block_on(async {
        producer
            .send(&input[clusters[3] + 64..clusters[4] + 64], 4096)
            .await;
        producer.rest().await
    });
    let errors: Vec<&Value> = acks.iter().filter(|a| a["EventType"] == "ERROR").collect();
    assert_eq!(errors.len(), 1, "{acks:#?}");
    assert_eq!(errors[0]["ErrorId"], 5001, "{acks:#?}");
    assert_eq!(events(&acks, "PERSISTED"), 0, "{acks:#?}");

    // A control call that writes is refused with a clear error; reads keep working.
    rt.block_on(async {
        let err = kv
            .create_stream()
            .stream_name("garden")
            .data_retention_in_hours(24)
            .send()
            .await
            .unwrap_err();
        let text = format!(
            "{:?}",
            aws_sdk_kinesisvideo::error::DisplayErrorContext(&err)
        );
        assert!(text.contains("storage is full"), "{text}");
        let d = kv
            .describe_stream()
            .stream_name("door")
            .send()
            .await
            .unwrap();
        assert_eq!(d.stream_info.unwrap().stream_name.as_deref(), Some("door"));
    });
    assert_eq!(stored(), sent[..3], "what was PERSISTED reads back as sent");
    // Space comes back: a new session stores the rest, without a restart (a store that had
    // poisoned itself would refuse every write until one). The producer sends it all again,
    // as an SDK resuming after an error may: the three stored fragments are acknowledged as
    // re-sent copies, not stored twice.
    std::fs::remove_file(&filler).unwrap();
    let acks = rt.block_on(async {
        let mut p = Producer::open(&server, "door").await;
        p.send(&input, 4096).await;
        p.end().await;
        p.rest().await
    });
    assert_eq!(events(&acks, "ERROR"), 0, "{acks:#?}");
    assert_eq!(events(&acks, "PERSISTED"), 6, "{acks:#?}");
    assert_eq!(stored(), sent, "every fragment, once each, as sent");
    rt.block_on(async {
        kv.create_stream()
            .stream_name("garden")
            .data_retention_in_hours(24)
            .send()
            .await
            .unwrap();
    });

    let status = server.signal_and_wait("TERM");
    assert!(status.success(), "{status:?}; log: {:#?}", server.log);
    let out = crate::run(
        crate::vigil()
            .args(["check", "--json", "--data-dir"])
            .arg(&data_path),
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["fragments"], 6, "{report}");
    drop(server);
    drop(disk);
}
