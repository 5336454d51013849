//! SNS topics: Publish to an HTTP subscriber's receipt (latency at a steady 100 publishes/s),
//! and 1,000 publishes/s fanned out to 10 HTTP subscribers, sustained, with every delivery
//! counted (nothing lost) and the process's CPU use.
//!
//! ```text
//! cargo bench --profile ci -p vigil-server --bench sns             # full: about a minute
//! cargo bench --profile ci -p vigil-server --bench sns -- --quick  # about 10 s; scripts/test
//! ```
//!
//! The server runs in process with anonymous access over loopback TCP (requests carry an
//! `sns` credential scope so that the front routes them, and no signature: SigV4 costs about
//! 10 µs a request); the subscribers (axum) and publishers run in the same process on a
//! runtime of their own, whose threads' CPU time is subtracted from the process's to give the
//! server's. Deliveries are signed with SignatureVersion 1 (SHA1withRSA, SNS's default) and,
//! in a second pass, 2 (SHA256withRSA).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "../../../bench/support.rs"]
#[allow(dead_code)]
mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::HeaderMap;
use support::{Row, Run, loadavg, summary};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vigil_server::{Anonymous, ServerConfig, ServerState, router};
use vigil_store::{Store, StoreConfig, SystemClock};

/// One keep-alive connection speaking SNS's query protocol.
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

    async fn request(&mut self, head: String, body: &[u8]) -> (u16, String) {
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
        let body = String::from_utf8_lossy(&self.buf[start..start + len]).into_owned();
        self.buf.drain(..start + len);
        (status, body)
    }

    /// An SNS action; the response's XML.
    async fn call(&mut self, params: &[(&str, &str)]) -> String {
        // (The serializer is not Send: finished before the first await.)
        let body = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("Version", "2010-03-31");
            for (k, v) in params {
                form.append_pair(k, v);
            }
            form.finish()
        };
        let head = format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=bench/20261207/us-east-1/sns/aws4_request, \
             SignedHeaders=host, Signature=00\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        let (status, out) = self.request(head, body.as_bytes()).await;
        assert_eq!(status, 200, "{params:?}: {out}");
        out
    }

    async fn get(&mut self, path_and_query: &str) -> u16 {
        let head = format!(
            "GET {path_and_query} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\n\r\n",
            self.addr
        );
        self.request(head, b"").await.0
    }
}

/// Between `<tag>` and `</tag>`.
fn xml_value(xml: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = xml.find(&open).unwrap() + open.len();
    let end = xml[start..].find(&format!("</{tag}>")).unwrap() + start;
    xml[start..end].to_owned()
}

/// What the subscribers share: when each message was published, what they received.
#[derive(Default)]
struct Sink {
    sent: Mutex<HashMap<String, Instant>>,
    latencies_ms: Mutex<Vec<f64>>,
    received: AtomicU64,
    server: Mutex<Option<SocketAddr>>,
}

async fn endpoint(State(sink): State<Arc<Sink>>, headers: HeaderMap, body: String) -> &'static str {
    let kind = headers
        .get("x-amz-sns-message-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if kind == "SubscriptionConfirmation" {
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        let url = doc["SubscribeURL"].as_str().unwrap().to_owned();
        let server = sink.server.lock().unwrap().unwrap();
        tokio::spawn(async move {
            let path = &url[url.find("/?").unwrap()..];
            let status = Conn::open(server).await.get(path).await;
            assert_eq!(status, 200, "confirming");
        });
        return "";
    }
    let id = headers
        .get("x-amz-sns-message-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if let Some(at) = sink.sent.lock().unwrap().get(id) {
        sink.latencies_ms
            .lock()
            .unwrap()
            .push(at.elapsed().as_secs_f64() * 1000.0);
    }
    sink.received.fetch_add(1, Ordering::Relaxed);
    ""
}

/// The runtime the subscribers and publishers run on (threads named [`CLIENT_THREAD`]), apart
/// from the server's, so that the server's CPU can be told from theirs.
static CLIENTS: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
const CLIENT_THREAD: &str = "bench-client";

fn clients() -> &'static tokio::runtime::Runtime {
    CLIENTS.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(CLIENT_THREAD)
            .enable_all()
            .build()
            .unwrap()
    })
}

async fn subscriber(sink: Arc<Sink>) -> SocketAddr {
    let app = axum::Router::new()
        .fallback(axum::routing::post(endpoint))
        .with_state(sink);
    let (tx, rx) = tokio::sync::oneshot::channel();
    clients().spawn(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        tx.send(listener.local_addr().unwrap()).unwrap();
        axum::serve(listener, app).await.unwrap()
    });
    rx.await.unwrap()
}

/// User and system time in seconds (clock ticks, 100 a second on Linux) of a `stat` line.
fn stat_seconds(stat: &str) -> f64 {
    let after = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds of the whole process, and of the server alone (the process less the client
/// runtime's threads).
fn cpu_seconds() -> (f64, f64) {
    let total = stat_seconds(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default());
    let mut clients = 0.0;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            if stat.contains(&format!("({CLIENT_THREAD})")) {
                clients += stat_seconds(&stat);
            }
        }
    }
    (total, total - clients)
}

fn quantiles(mut v: Vec<f64>) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

/// A topic with `n` confirmed HTTP subscriptions to `sink`'s endpoints, signed with `version`.
async fn topic(c: &mut Conn, name: &str, sink: &Arc<Sink>, n: usize, version: &str) -> String {
    let arn = xml_value(
        &c.call(&[("Action", "CreateTopic"), ("Name", name)]).await,
        "TopicArn",
    );
    c.call(&[
        ("Action", "SetTopicAttributes"),
        ("TopicArn", &arn),
        ("AttributeName", "SignatureVersion"),
        ("AttributeValue", version),
    ])
    .await;
    for _ in 0..n {
        let addr = subscriber(sink.clone()).await;
        c.call(&[
            ("Action", "Subscribe"),
            ("TopicArn", &arn),
            ("Protocol", "http"),
            ("Endpoint", &format!("http://{addr}/hook")),
        ])
        .await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = c
            .call(&[("Action", "ListSubscriptionsByTopic"), ("TopicArn", &arn)])
            .await;
        if !list.contains("PendingConfirmation") {
            break;
        }
        assert!(Instant::now() < deadline, "subscriptions not confirmed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    arn
}

async fn publish(c: &mut Conn, arn: &str, sink: &Sink, i: usize) {
    let sent = Instant::now();
    let xml = c
        .call(&[
            ("Action", "Publish"),
            ("TopicArn", arn),
            ("Subject", "Unknown face"),
            ("Message", &format!("{{\"camera\":\"front\",\"n\":{i}}}")),
            ("MessageAttributes.entry.1.Name", "decision"),
            ("MessageAttributes.entry.1.Value.DataType", "String"),
            ("MessageAttributes.entry.1.Value.StringValue", "unknown"),
        ])
        .await;
    sink.sent
        .lock()
        .unwrap()
        .insert(xml_value(&xml, "MessageId"), sent);
}

/// Steady publishes at `rate` a second from `conns` connections for `secs`; what was
/// published, the rate reached, and the process's CPU cores over the run and its drain.
async fn sustained(
    server: SocketAddr,
    arn: &str,
    sink: &Arc<Sink>,
    rate: f64,
    conns: usize,
    secs: f64,
    fanout: u64,
) -> (u64, f64, f64, f64, f64) {
    let cpu0 = cpu_seconds();
    let started = Instant::now();
    let published = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for k in 0..conns {
        let (arn, sink, published) = (arn.to_owned(), sink.clone(), published.clone());
        tasks.push(clients().spawn(async move {
            let mut c = Conn::open(server).await;
            let each = rate / conns as f64;
            let mut i = 0usize;
            while started.elapsed().as_secs_f64() < secs {
                let due = started + Duration::from_secs_f64(i as f64 / each);
                tokio::time::sleep_until(due.into()).await;
                publish(&mut c, &arn, &sink, k * 1_000_000 + i).await;
                published.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let took = started.elapsed().as_secs_f64();
    let n = published.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(60);
    while sink.received.load(Ordering::Relaxed) < n * fanout && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu1 = cpu_seconds();
    (
        n,
        n as f64 / took,
        (cpu1.0 - cpu0.0) / wall,
        (cpu1.1 - cpu0.1) / wall,
        wall - took,
    )
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
            title: "vigil-server sns",
            mode,
            pairs: 0,
            input: "Publish with a subject and an attribute; HTTP subscribers in process",
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
    let mut cfg = StoreConfig::new(dir.path());
    cfg.min_free_bytes = 0;
    let store =
        tokio::task::spawn_blocking(move || Store::open(cfg, Arc::new(SystemClock)).unwrap())
            .await
            .unwrap();
    let state =
        Arc::new(ServerState::new(store, ServerConfig::default(), Arc::new(Anonymous)).unwrap());
    {
        let s = state.clone();
        tokio::task::spawn_blocking(move || s.start_deliveries().unwrap())
            .await
            .unwrap();
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = listener.local_addr().unwrap();
    let app = router(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut rows = Vec::new();
    let mut c = Conn::open(server).await;

    // Latency: one subscriber, 100 publishes a second.
    let sink = Arc::new(Sink::default());
    *sink.server.lock().unwrap() = Some(server);
    let arn = topic(&mut c, "latency", &sink, 1, "1").await;
    let n = if quick { 100 } else { 1000 };
    let t0 = Instant::now();
    for i in 0..n {
        tokio::time::sleep_until((t0 + Duration::from_millis(10 * i as u64)).into()).await;
        publish(&mut c, &arn, &sink, i).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while sink.received.load(Ordering::Relaxed) < n as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (p50, p99) = quantiles(sink.latencies_ms.lock().unwrap().clone());
    rows.push(Row {
        name: format!("Publish -> HTTP subscriber, p50 ({n} at 100/s)"),
        ours: format!("{p50:.1} ms"),
        reference: "-".into(),
        ratio: "-".into(),
        target: "-".into(),
        pass: None,
    });
    rows.push(Row {
        name: "Publish -> HTTP subscriber, p99".into(),
        ours: format!("{p99:.1} ms"),
        reference: "-".into(),
        ratio: "-".into(),
        target: "<= 50 ms".into(),
        pass: Some(p99 <= 50.0),
    });

    // Fan-out: 1,000 publishes a second to 10 subscribers, each signature version.
    let secs = if quick { 2.0 } else { 20.0 };
    for version in ["1", "2"] {
        let sink = Arc::new(Sink::default());
        *sink.server.lock().unwrap() = Some(server);
        let arn = topic(&mut c, &format!("fanout-v{version}"), &sink, 10, version).await;
        let (published, rate, cores, server_cores, drain) =
            sustained(server, &arn, &sink, 1000.0, 64, secs, 10).await;
        let got = sink.received.load(Ordering::Relaxed);
        let (p50, p99) = quantiles(sink.latencies_ms.lock().unwrap().clone());
        rows.push(Row {
            name: format!("1,000 publishes/s x 10 subscribers (v{version}): rate"),
            ours: format!("{rate:.0}/s"),
            reference: "1000/s".into(),
            ratio: format!("{:.2}", rate / 1000.0),
            target: ">= 0.95".into(),
            pass: Some(rate >= 950.0),
        });
        rows.push(Row {
            name: format!("  delivered (v{version})"),
            ours: format!("{got}"),
            reference: format!("{}", published * 10),
            ratio: format!("{:.4}", got as f64 / (published * 10) as f64),
            target: "= 1 (nothing lost)".into(),
            pass: Some(got == published * 10),
        });
        rows.push(Row {
            name: format!("  server CPU (v{version}; drained {drain:.1} s after)"),
            ours: format!("{server_cores:.2} cores"),
            reference: "1 core".into(),
            ratio: format!("{server_cores:.2}"),
            target: "<= 1.0".into(),
            pass: Some(server_cores <= 1.0),
        });
        rows.push(Row {
            name: format!("  server CPU per publish of 10 deliveries (v{version})"),
            ours: format!(
                "{:.2} ms",
                server_cores * (secs + drain) * 1000.0 / published.max(1) as f64
            ),
            reference: "1.00 ms".into(),
            ratio: "-".into(),
            target: "(1 core at 1,000/s)".into(),
            pass: None,
        });
        rows.push(Row {
            name: format!("  process CPU, clients included (v{version})"),
            ours: format!("{cores:.2} cores"),
            reference: "-".into(),
            ratio: "-".into(),
            target: "-".into(),
            pass: None,
        });
        rows.push(Row {
            name: format!("  latency p50 / p99 (v{version})"),
            ours: format!("{p50:.1} / {p99:.1} ms"),
            reference: "-".into(),
            ratio: "-".into(),
            target: "-".into(),
            pass: None,
        });
    }
    let s = state.clone();
    tokio::task::spawn_blocking(move || s.stop_deliveries())
        .await
        .unwrap();
    rows
}
