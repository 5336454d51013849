//! Kinesis Data Streams: PutRecords throughput through the whole server (HTTP, JSON, the
//! engine, group commit) against the store's own durable appends of the same records in the
//! same run; PutRecord latency at 100 producers; how soon an in-process subscriber sees a
//! record; and GetRecords reading 10,000 records from disk.
//!
//! ```text
//! cargo bench --profile ci -p vigil-server --bench kinesis             # full: about 2 minutes
//! cargo bench --profile ci -p vigil-server --bench kinesis -- --quick  # about 15 s; scripts/test
//! ```
//!
//! The store is in `$VIGIL_BENCH_DIR` (default `$TMPDIR`), which must be on the disk to be
//! measured. Clients are in process, over loopback TCP with keep-alive, without signatures
//! (the server runs with anonymous access: SigV4 costs about 10 µs a request, measured by
//! `crates/auth`'s tests); each PutRecords carries 100 records, as a producer that batches does
//! (the KPL sends up to 500 a call). The reference appends the same batches to the store's logs
//! directly, from as many tasks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "../../../bench/support.rs"]
#[allow(dead_code)]
mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde_json::{Value, json};
use support::{Row, Run, loadavg, summary};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vigil_server::{Anonymous, ServerConfig, ServerState, router};
use vigil_store::{NewEntry, NewLogGroup, Store, StoreConfig, SystemClock};

const RECORDS_PER_PUT: usize = 100;

/// One keep-alive connection speaking Kinesis JSON.
struct Conn {
    s: TcpStream,
    addr: SocketAddr,
    buf: Vec<u8>,
    tmp: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Self {
        let s = TcpStream::connect(addr).await.unwrap();
        s.set_nodelay(true).unwrap();
        Self {
            s,
            addr,
            buf: Vec::new(),
            tmp: vec![0u8; 1 << 16],
        }
    }

    async fn call(&mut self, op: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let head = format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-amz-json-1.1\r\n\
             X-Amz-Target: Kinesis_20131202.{op}\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        self.s.write_all(head.as_bytes()).await.unwrap();
        self.s.write_all(body).await.unwrap();
        let (status, len, start) = loop {
            if let Some(p) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let text = String::from_utf8_lossy(&self.buf[..p]).to_ascii_lowercase();
                let status = text
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let len = text
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                break (status, len, p + 4);
            }
            let n = self.s.read(&mut self.tmp).await.unwrap();
            assert!(n > 0, "connection closed");
            self.buf.extend_from_slice(&self.tmp[..n]);
        };
        while self.buf.len() < start + len {
            let n = self.s.read(&mut self.tmp).await.unwrap();
            assert!(n > 0, "connection closed");
            self.buf.extend_from_slice(&self.tmp[..n]);
        }
        let body = self.buf[start..start + len].to_vec();
        self.buf.drain(..start + len);
        (status, body)
    }

    async fn ok(&mut self, op: &str, body: &Value) -> Value {
        let (status, out) = self.call(op, body.to_string().as_bytes()).await;
        assert_eq!(status, 200, "{op}: {}", String::from_utf8_lossy(&out));
        if out.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(&out).unwrap()
        }
    }
}

struct Server {
    state: Arc<ServerState>,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

async fn serve(store: Store) -> Server {
    let state =
        Arc::new(ServerState::new(store, ServerConfig::default(), Arc::new(Anonymous)).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(state.clone());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Server { state, addr, task }
}

fn open_store(dir: &std::path::Path) -> Store {
    let mut cfg = StoreConfig::new(dir);
    cfg.min_free_bytes = 0;
    Store::open(cfg, Arc::new(SystemClock)).unwrap()
}

fn quantiles(mut v: Vec<f64>) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

/// Records/s and MB/s of `producers` tasks each appending batches of [`RECORDS_PER_PUT`] entries of `size`
/// bytes straight to the store's logs for `secs`.
async fn raw_appends(store: &Store, producers: usize, size: usize, secs: f64) -> (f64, f64) {
    // A fresh group per call: full runs measure each configuration twice.
    static GROUPS: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "raw-{producers}-{size}-{}",
        GROUPS.fetch_add(1, Ordering::Relaxed)
    );
    let group = store.create_log_group(NewLogGroup::new(name)).unwrap();
    let entries: Arc<Vec<NewEntry>> = Arc::new(
        (0..RECORDS_PER_PUT)
            .map(|i| NewEntry {
                key: Bytes::from(format!("key-{i}")),
                data: Bytes::from(vec![b'x'; size]),
            })
            .collect(),
    );
    let count = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..producers {
        let (store, entries, count) = (store.clone(), entries.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let log = (p % 4) as u32;
                store
                    .append_log(group.id, log, &entries)
                    .unwrap()
                    .wait()
                    .await
                    .unwrap();
                count.fetch_add(RECORDS_PER_PUT as u64, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let n = count.load(Ordering::Relaxed) as f64;
    let took = started.elapsed().as_secs_f64();
    (n / took, n * (size + 5) as f64 / took / 1e6)
}

/// The same through the engine in process (no HTTP, no JSON): what the server adds above it.
async fn engine_puts(
    engine: &vigil_datastreams::DataStreams,
    stream: &str,
    producers: usize,
    size: usize,
    secs: f64,
) -> (f64, f64) {
    let count = Arc::new(AtomicU64::new(0));
    let data = Bytes::from(vec![b'x'; size]);
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..producers {
        let (engine, count, data, stream) = (
            engine.clone(),
            count.clone(),
            data.clone(),
            stream.to_owned(),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                let records = (0..RECORDS_PER_PUT)
                    .map(|i| vigil_datastreams::NewRecord {
                        partition_key: format!("{p}-{n}-{i}"),
                        explicit_hash_key: None,
                        data: data.clone(),
                    })
                    .collect();
                for r in engine.put(&stream, records).await.unwrap() {
                    r.unwrap();
                }
                n += 1;
                count.fetch_add(RECORDS_PER_PUT as u64, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let n = count.load(Ordering::Relaxed) as f64;
    let took = started.elapsed().as_secs_f64();
    (n / took, n * (size + 5) as f64 / took / 1e6)
}

/// The same through PutRecords over HTTP to a 4-shard stream. Each producer's request bodies
/// (up to 64 of them, each with its own partition keys, within 256 MiB in all) are built before the clock starts and its
/// answers are checked by a byte search: the client shares the machine's cores with the server,
/// and a real one is elsewhere, so the figure should be the server's work, not the client's.
async fn put_records(
    addr: SocketAddr,
    stream: &str,
    producers: usize,
    size: usize,
    secs: f64,
) -> (f64, f64) {
    let count = Arc::new(AtomicU64::new(0));
    let data = BASE64.encode(vec![b'x'; size]);
    let body_len = RECORDS_PER_PUT * (data.len() + 40);
    let bodies_each = ((256 << 20) / (producers * body_len)).clamp(1, 64);
    let bodies: Vec<Arc<Vec<Vec<u8>>>> = (0..producers)
        .map(|p| {
            Arc::new(
                (0..bodies_each)
                    .map(|n| {
                        let records: Vec<Value> = (0..RECORDS_PER_PUT)
                            .map(|i| json!({"Data": data, "PartitionKey": format!("{p}-{n}-{i}")}))
                            .collect();
                        json!({"StreamName": stream, "Records": records})
                            .to_string()
                            .into_bytes()
                    })
                    .collect(),
            )
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for bodies in bodies {
        let count = count.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::open(addr).await;
            let mut n = 0usize;
            while Instant::now() < deadline {
                let (status, out) = c.call("PutRecords", &bodies[n % bodies.len()]).await;
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&out));
                const NONE_FAILED: &[u8] = b"\"FailedRecordCount\":0";
                assert!(
                    out.windows(NONE_FAILED.len()).any(|w| w == NONE_FAILED),
                    "{}",
                    String::from_utf8_lossy(&out)
                );
                n += 1;
                count.fetch_add(RECORDS_PER_PUT as u64, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let n = count.load(Ordering::Relaxed) as f64;
    let took = started.elapsed().as_secs_f64();
    (n / took, n * (size + 5) as f64 / took / 1e6)
}

/// PutRecord latency (request to response: the record is durable when it answers) of
/// `producers` each putting 10 records a second, and how soon subscribers of every shard saw
/// each record after the put began.
async fn latency(server: &Server, producers: usize, secs: f64) -> (Vec<f64>, Vec<f64>) {
    let mut c = Conn::open(server.addr).await;
    c.ok(
        "CreateStream",
        &json!({"StreamName": "latency", "ShardCount": 4}),
    )
    .await;
    let origin = Instant::now();
    // Subscribers: one per shard, reading each record when its shard's position moves, and
    // taking the put's start time (µs since `origin`) from its data.
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let engine = server.state.kinesis.engine.clone();
    let mut subs = Vec::new();
    for shard in 0..4u32 {
        let engine = engine.clone();
        let seen = seen.clone();
        let mut rx = engine.subscribe("latency", shard).unwrap();
        let (info, mut pos) = engine
            .start("latency", shard, vigil_datastreams::StartAt::Latest)
            .unwrap();
        subs.push(tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let (e, p, id) = (engine.clone(), pos, info.id);
                let batch = tokio::task::spawn_blocking(move || {
                    e.read("latency", id, shard, p, 1000, 1 << 20)
                })
                .await
                .unwrap();
                let Ok(batch) = batch else { return };
                let now = origin.elapsed().as_secs_f64() * 1e6;
                for r in &batch.records {
                    let sent: f64 = std::str::from_utf8(&r.data).unwrap().parse().unwrap();
                    seen.lock().unwrap().push((now - sent) / 1000.0);
                }
                if let Some(n) = batch.next {
                    pos = n;
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for p in 0..producers {
        let addr = server.addr;
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::open(addr).await;
            let mut lat = Vec::new();
            // Staggered over the 100 ms period.
            tokio::time::sleep(Duration::from_millis((p * 100 / producers.max(1)) as u64)).await;
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            let mut i = 0u64;
            while Instant::now() < deadline {
                tick.tick().await;
                let t0 = Instant::now();
                let stamp = format!("{:.0}", origin.elapsed().as_secs_f64() * 1e6);
                c.ok(
                    "PutRecord",
                    &json!({"StreamName": "latency", "Data": BASE64.encode(stamp), "PartitionKey": format!("{p}-{i}")}),
                )
                .await;
                lat.push(t0.elapsed().as_secs_f64() * 1000.0);
                i += 1;
            }
            lat
        }));
    }
    let mut put = Vec::new();
    for t in tasks {
        put.extend(t.await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for s in subs {
        s.abort();
    }
    let visible = seen.lock().unwrap().clone();
    (put, visible)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |f: &str| args.iter().any(|a| a == f);
    let test_mode = !flag("--bench");
    let quick = flag("--quick") || test_mode;
    let mode = match (test_mode, quick) {
        (true, _) => "test (quick)",
        (false, true) => "quick",
        (false, false) => "full",
    };
    let started = Instant::now();
    let load_before = loadavg();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let rows = rt.block_on(run(quick));
    let missed = summary(
        &rows,
        &Run {
            title: "vigil-server kinesis",
            mode,
            pairs: 0,
            input: "PutRecords of 100 records; 4 shards",
            took: started.elapsed(),
            load_before: &load_before,
        },
    );
    if missed {
        eprintln!("(targets missed: see the table)");
    }
}

async fn run(quick: bool) -> Vec<Row> {
    let base = std::env::var_os("VIGIL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(base).unwrap();
    let store = open_store(dir.path());
    let server = serve(store.clone()).await;
    let mut rows = Vec::new();
    let secs = if quick { 0.5 } else { 4.0 };
    let producers: &[usize] = if quick { &[1, 10] } else { &[1, 10, 100] };
    let mut c = Conn::open(server.addr).await;
    for &size in &[1000usize, 25_000] {
        for &n in producers {
            let stream = format!("tput-{n}-{size}");
            c.ok(
                "CreateStream",
                &json!({"StreamName": stream, "ShardCount": 4}),
            )
            .await;
            // Reference and ours alternately, twice, and the better of each.
            let mut raw = (0.0f64, 0.0f64);
            let mut ours = (0.0f64, 0.0f64);
            let mut engine = (0.0f64, 0.0f64);
            for _ in 0..if quick { 1 } else { 2 } {
                let r = raw_appends(&store, n, size, secs).await;
                let e = engine_puts(&server.state.kinesis.engine, &stream, n, size, secs).await;
                let o = put_records(server.addr, &stream, n, size, secs).await;
                raw = if r.1 > raw.1 { r } else { raw };
                engine = if e.1 > engine.1 { e } else { engine };
                ours = if o.1 > ours.1 { o } else { ours };
            }
            let ratio = ours.1 / raw.1.max(1e-9);
            rows.push(Row {
                name: format!("PutRecords, {n} producers, {} KB records", size / 1000),
                ours: format!("{:.0} rec/s, {:.1} MB/s", ours.0, ours.1),
                reference: format!(
                    "store appends {:.0} rec/s, {:.1} MB/s (engine in process {:.0} rec/s)",
                    raw.0, raw.1, engine.0
                ),
                ratio: format!("{ratio:.2}"),
                target: ">= 0.80".into(),
                pass: Some(ratio >= 0.8),
            });
        }
    }

    let lat_producers = if quick { 20 } else { 100 };
    let (put, visible) = latency(&server, lat_producers, if quick { 2.0 } else { 10.0 }).await;
    let (p50, p99) = quantiles(put.clone());
    rows.push(Row {
        name: format!("PutRecord -> durable (answered), {lat_producers} producers at 10/s"),
        ours: format!("p99 {p99:.1} ms"),
        reference: format!("p50 {p50:.1} ms, {} puts", put.len()),
        ratio: String::new(),
        target: "p99 <= 20 ms".into(),
        pass: Some(p99 <= 20.0 && !put.is_empty()),
    });
    let (v50, v99) = quantiles(visible.clone());
    // The store wakes subscribers before it answers the producer: a record is visible to them
    // no later than it is durable. This is put start -> seen, so it includes the durable wait.
    rows.push(Row {
        name: "PutRecord start -> seen by an in-process subscriber".into(),
        ours: format!("p99 {v99:.1} ms"),
        reference: format!(
            "p50 {v50:.1} ms; durable p99 {p99:.1} ms; {} seen",
            visible.len()
        ),
        ratio: format!("{:.2} of durable", v99 / p99.max(1e-9)),
        target: "p99 <= 5 ms".into(),
        pass: Some(v99 <= 5.0 && visible.len() == put.len()),
    });

    // GetRecords from disk: 10,000 records of 1 KB (quick: 2,000) in one shard, then the
    // store reopened so that none is in memory.
    let n_read = if quick { 2_000 } else { 10_000 };
    c.ok(
        "CreateStream",
        &json!({"StreamName": "read", "ShardCount": 1}),
    )
    .await;
    let data = BASE64.encode(vec![b'r'; 1000]);
    for b in 0..n_read / 500 {
        let records: Vec<Value> = (0..500)
            .map(|i| json!({"Data": data, "PartitionKey": format!("{b}-{i}")}))
            .collect();
        c.ok(
            "PutRecords",
            &json!({"StreamName": "read", "Records": records}),
        )
        .await;
    }
    drop(c);
    let Server { state, task, .. } = server;
    task.abort();
    let _ = task.await;
    drop(state);
    store.close().unwrap();
    drop(store);
    let store = open_store(dir.path());
    let server = serve(store.clone()).await;
    let mut c = Conn::open(server.addr).await;
    let mut best = 0.0f64;
    for _ in 0..3 {
        let it = c
            .ok(
                "GetShardIterator",
                &json!({"StreamName": "read", "ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"}),
            )
            .await["ShardIterator"]
            .as_str()
            .unwrap()
            .to_owned();
        let t0 = Instant::now();
        let (status, body) = c
            .call(
                "GetRecords",
                json!({"ShardIterator": it, "Limit": 10000})
                    .to_string()
                    .as_bytes(),
            )
            .await;
        let took = t0.elapsed().as_secs_f64();
        assert_eq!(status, 200);
        let v: Value = serde_json::from_slice(&body).unwrap();
        let records = v["Records"].as_array().unwrap();
        assert_eq!(records.len(), n_read);
        let bytes = records.len() as f64 * 1000.0;
        best = best.max(bytes / took / 1e6);
        // Reads from disk leave nothing in the logs' in-memory tails: every pass reads the
        // segments.
    }
    rows.push(Row {
        name: format!("GetRecords of {n_read} 1 KB records from disk (one request, one core)"),
        ours: format!("{best:.0} MB/s"),
        reference: String::new(),
        ratio: String::new(),
        target: ">= 100 MB/s".into(),
        pass: Some(best >= 100.0),
    });
    server.task.abort();
    rows
}
