//! A server on port 0 and a minimal HTTP/1.1 client over raw TCP (so tests control every
//! byte, as producers' requests need).

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vigil_api_common::Authenticator;
use vigil_server::{Anonymous, ServerConfig, ServerState, router};
use vigil_store::{Store, StoreConfig, SystemClock};

mod fakes;
pub use fakes::*;

/// A running server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub state: Arc<ServerState>,
    pub _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    /// A server with anonymous access.
    pub async fn start() -> Self {
        Self::start_with(ServerConfig::default(), Arc::new(Anonymous)).await
    }

    pub async fn start_with(cfg: ServerConfig, auth: Arc<dyn Authenticator>) -> Self {
        Self::start_with_clock(cfg, auth, Arc::new(SystemClock)).await
    }

    /// A server whose store runs on `clock`.
    pub async fn start_with_clock(
        cfg: ServerConfig,
        auth: Arc<dyn Authenticator>,
        clock: Arc<dyn vigil_store::Clock>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut scfg = StoreConfig::new(dir.path());
        scfg.min_free_bytes = 0;
        let store = tokio::task::spawn_blocking(move || Store::open(scfg, clock).unwrap())
            .await
            .unwrap();
        let state = Arc::new(ServerState::new(store, cfg, auth).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            addr,
            state,
            _dir: dir,
            task,
        }
    }

    /// POSTs a JSON body; returns the status, the headers (names lower-case) and the body.
    pub async fn post(&self, path: &str, body: &Value) -> Response {
        let body = body.to_string();
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        self.raw(req.as_bytes()).await
    }

    /// Sends raw request bytes on a new connection and reads the whole response (the server
    /// must close the connection or the request must say `Connection: close`).
    pub async fn raw(&self, request: &[u8]) -> Response {
        let mut s = TcpStream::connect(self.addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        Response::parse(&buf)
    }

    /// Creates a stream; returns its ARN.
    pub async fn create_stream(&self, name: &str, retention_hours: u32) -> String {
        let r = self
            .post(
                "/createStream",
                &serde_json::json!({"StreamName": name, "DataRetentionInHours": retention_hours}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["StreamARN"].as_str().unwrap().to_owned()
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Response {
    pub fn parse(buf: &[u8]) -> Self {
        let end = buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a complete response head");
        let head = std::str::from_utf8(&buf[..end]).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (k, v) = l.split_once(':').unwrap();
                (k.trim().to_ascii_lowercase(), v.trim().to_owned())
            })
            .collect();
        let rest = &buf[end + 4..];
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
        let body = if chunked {
            dechunk(rest)
        } else {
            rest.to_vec()
        };
        Self {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// Asserts an AWS error: status, `x-amzn-ErrorType` and the body's `__type`.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(
            self.header("x-amzn-errortype"),
            Some(code),
            "{}",
            self.text()
        );
        assert_eq!(self.json()["__type"], code);
        assert!(
            self.json()["Message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
}

/// Removes chunked transfer coding (complete input).
pub fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(nl) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_str = std::str::from_utf8(&b[..nl]).unwrap();
        let size = usize::from_str_radix(size_str.split(';').next().unwrap().trim(), 16).unwrap();
        b = &b[nl + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

// ---- Streaming responses (GetMedia) ----

/// A response read as it arrives: the head at once, the body (de-chunked) a read at a time.
pub struct StreamingResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body received so far, de-chunked.
    pub body: Vec<u8>,
    /// Whether the body ended (last chunk, end of a sized body, or the connection closed).
    pub ended: bool,
    stream: TcpStream,
    /// Received and not yet de-chunked.
    raw: Vec<u8>,
    chunked: bool,
    /// `Content-Length`, for a sized body.
    content_length: Option<usize>,
}

impl TestServer {
    /// POSTs a JSON body and returns once the response head has arrived, leaving the body to
    /// be read as it comes (the connection stays open until the response is dropped).
    pub async fn open(&self, path: &str, body: &Value) -> StreamingResponse {
        let body = body.to_string();
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        let mut s = TcpStream::connect(self.addr).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        let end = loop {
            if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout(std::time::Duration::from_secs(10), s.read(&mut buf))
                .await
                .expect("no response head within 10 s")
                .unwrap();
            assert!(n > 0, "connection closed before the response head");
            raw.extend_from_slice(&buf[..n]);
        };
        let head = Response::parse(&raw[..end + 4]);
        let chunked = head
            .header("transfer-encoding")
            .is_some_and(|v| v.contains("chunked"));
        let content_length = head
            .header("content-length")
            .map(|v| v.parse::<usize>().unwrap());
        let mut r = StreamingResponse {
            status: head.status,
            headers: head.headers,
            body: Vec::new(),
            ended: false,
            stream: s,
            raw: raw[end + 4..].to_vec(),
            chunked,
            content_length,
        };
        r.decode();
        r
    }
}

impl StreamingResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Moves what can be de-chunked from `raw` to `body`.
    fn decode(&mut self) {
        if !self.chunked {
            self.body.append(&mut self.raw);
            if self.content_length.is_some_and(|n| self.body.len() >= n) {
                self.ended = true;
            }
            return;
        }
        loop {
            let Some(nl) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let size_str = std::str::from_utf8(&self.raw[..nl]).unwrap();
            let size =
                usize::from_str_radix(size_str.split(';').next().unwrap().trim(), 16).unwrap();
            if size == 0 {
                self.ended = true;
                self.raw.clear();
                return;
            }
            if self.raw.len() < nl + 2 + size + 2 {
                return;
            }
            self.body
                .extend_from_slice(&self.raw[nl + 2..nl + 2 + size]);
            self.raw.drain(..nl + 2 + size + 2);
        }
    }

    /// Reads once from the connection (waiting at most `timeout`); false if nothing came.
    pub async fn read_some(&mut self, timeout: std::time::Duration) -> bool {
        if self.ended {
            return false;
        }
        let mut buf = vec![0u8; 64 * 1024];
        match tokio::time::timeout(timeout, self.stream.read(&mut buf)).await {
            Err(_) => false,
            Ok(Ok(0)) | Ok(Err(_)) => {
                self.ended = true;
                false
            }
            Ok(Ok(n)) => {
                self.raw.extend_from_slice(&buf[..n]);
                self.decode();
                true
            }
        }
    }

    /// Reads until `done(body)` holds; panics after `timeout` or if the body ends first.
    pub async fn read_until(
        &mut self,
        timeout: std::time::Duration,
        mut done: impl FnMut(&[u8]) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + timeout;
        while !done(&self.body) {
            assert!(!self.ended, "the body ended before the expected bytes came");
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(
                !left.is_zero(),
                "timed out after {timeout:?} waiting for the body"
            );
            self.read_some(left).await;
        }
    }

    /// Reads the body to its end (within `timeout`).
    pub async fn read_to_end(&mut self, timeout: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.ended {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(!left.is_zero(), "the body did not end within {timeout:?}");
            self.read_some(left).await;
        }
    }
}

// ---- Media made by ffmpeg, split as PutMedia stores it (`media` module contract) ----

/// One Cluster of a Matroska file: a fragment's payload.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// The Cluster's Timestamp, in ms (the files are made with 1 ms ticks).
    pub timecode_ms: u64,
    /// Until the next Cluster (or the end of the last frame), in ms.
    pub duration_ms: u32,
    /// The Cluster element's bytes.
    pub bytes: bytes::Bytes,
    /// Where each element of the Cluster ends, relative to its start: the bytes split there
    /// come one element at a time (header, Timestamp, then each block).
    pub frame_ends: Vec<usize>,
    /// Its frames: absolute timecode (ms), key flag, data.
    pub frames: Vec<(i64, bool, bytes::Bytes)>,
}

/// A Matroska file split per the store contract: the track header and the Clusters.
#[derive(Debug, Clone)]
pub struct Media {
    /// The track header: EBML header, unknown-size Segment, Info, Tracks.
    pub header: Vec<u8>,
    pub clusters: Vec<Cluster>,
}

/// Splits a Matroska file into the track header and Clusters, per `vigil_api_kvs_common`.
pub fn split_mkv(data: &[u8]) -> Media {
    use vigil_mkv::{Demuxer, Event};
    let events = Demuxer::read_all(data).unwrap();
    let span_bytes =
        |span: &vigil_mkv::Span| &data[span.offset as usize..span.end().unwrap() as usize];
    let mut header = Vec::new();
    for e in &events {
        match e {
            Event::EbmlHeader { span, .. } => {
                header.extend_from_slice(span_bytes(span));
                header.extend_from_slice(&[0x18, 0x53, 0x80, 0x67]);
                header.extend_from_slice(&vigil_mkv::ebml::UNKNOWN_SIZE_8);
            }
            Event::Info { span, .. } | Event::Tracks { span, .. } => {
                header.extend_from_slice(span_bytes(span))
            }
            _ => {}
        }
    }
    let mut clusters: Vec<Cluster> = Vec::new();
    let mut start = 0u64;
    let mut timecode = 0u64;
    let mut frames = Vec::new();
    let mut ends = Vec::new();
    for e in &events {
        match e {
            Event::ClusterStart { span, timecode: t } => {
                start = span.offset;
                timecode = *t;
                frames.clear();
                ends.clear();
                ends.push((span.data_offset() - start) as usize);
            }
            Event::Frame(f) => {
                let end = (f.span.end().unwrap() - start) as usize;
                if ends.last() != Some(&end) {
                    ends.push(end);
                }
                frames.push((f.timecode, f.keyframe, f.data.clone()));
            }
            Event::ClusterEnd { offset, end } => {
                let bytes = bytes::Bytes::copy_from_slice(&data[*offset as usize..*end as usize]);
                let len = bytes.len();
                if ends.last() != Some(&len) {
                    ends.push(len);
                }
                clusters.push(Cluster {
                    timecode_ms: timecode,
                    duration_ms: 0,
                    bytes,
                    frame_ends: std::mem::take(&mut ends),
                    frames: std::mem::take(&mut frames),
                });
            }
            _ => {}
        }
    }
    for i in 0..clusters.len() {
        let next = clusters.get(i + 1).map(|c| c.timecode_ms);
        let c = &mut clusters[i];
        let last = c.frames.iter().map(|f| f.0).max().unwrap_or(0) as u64 + 40;
        c.duration_ms = (next.unwrap_or(last) - c.timecode_ms) as u32;
    }
    Media { header, clusters }
}

/// A Matroska file ffmpeg makes: `seconds` of 320x240 25 fps H.264 (a key frame a second, no
/// B-frames, so one Cluster a second), timestamps from 1.7e12 ms as KVS producers' absolute
/// ones. Made once per test process.
pub fn ffmpeg_h264() -> &'static (Vec<u8>, Media) {
    static MEDIA: std::sync::OnceLock<(Vec<u8>, Media)> = std::sync::OnceLock::new();
    MEDIA.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h264.mkv");
        let out = std::process::Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-f", "lavfi", "-i"])
            .arg("testsrc2=size=320x240:rate=25")
            .args([
                "-t", "10", "-c:v", "libx264", "-g", "25", "-bf", "0", "-crf", "30",
            ])
            .args([
                "-threads",
                "1",
                "-flags",
                "+bitexact",
                "-fflags",
                "+bitexact",
            ])
            .args(["-output_ts_offset", "1700000000", "-f", "matroska", "-y"])
            .arg(&path)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run ffmpeg ({e}); run scripts/install-test-deps.sh to install it")
            });
        assert!(
            out.status.success(),
            "ffmpeg failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let data = std::fs::read(&path).unwrap();
        let media = split_mkv(&data);
        assert_eq!(media.clusters.len(), 10, "one Cluster a second");
        (data, media)
    })
}

/// One packet as ffprobe reports it: stream, pts, key flag. Panics if ffprobe complains.
pub fn ffprobe_packets(data: &[u8]) -> Vec<(usize, i64, bool)> {
    let (packets, stderr) = ffprobe_packets_and_errors(data);
    assert!(stderr.is_empty(), "ffprobe: {stderr}");
    packets
}

/// ffprobe's packets (stream, pts, key flag) and what it wrote to stderr.
pub fn ffprobe_packets_and_errors(data: &[u8]) -> (Vec<(usize, i64, bool)>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.mkv");
    std::fs::write(&path, data).unwrap();
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "packet=stream_index,pts,flags",
        ])
        .args(["-of", "csv=p=0"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run ffprobe ({e}); run scripts/install-test-deps.sh to install it")
        });
    assert!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let packets = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut f = l.split(',');
            let stream = f.next().unwrap().parse().unwrap();
            let pts = f.next().unwrap().parse().unwrap();
            let key = f.next().unwrap().starts_with('K');
            (stream, pts, key)
        })
        .collect();
    (packets, String::from_utf8_lossy(&out.stderr).into_owned())
}

// ---- PutMedia: a full-duplex producer over raw TCP ----

/// `shared/testdata/kvs-producer-c/<name>`: the official C producer's captures, in the
/// `shared/` folder beside the repository (or where `VIGIL_SHARED_DIR` says).
pub fn kvs_capture(name: &str) -> std::path::PathBuf {
    let rel = std::path::Path::new("testdata/kvs-producer-c").join(name);
    if let Some(dir) = std::env::var_os("VIGIL_SHARED_DIR").filter(|d| !d.is_empty()) {
        return std::path::PathBuf::from(dir).join(rel);
    }
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|d| d.join("shared").join(&rel))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{} not found in a shared/ folder", rel.display()))
}

impl TestServer {
    /// A server with anonymous access whose PutMedia sessions use `cfg`.
    pub async fn start_with_sessions(cfg: vigil_api_kvs::media::sessions::PutMediaConfig) -> Self {
        Self::start_custom(cfg, Arc::new(Anonymous), Arc::new(vigil_store::fs::StdFs)).await
    }

    /// A server whose PutMedia sessions use `cfg`, with `auth`, over a store on `fs`.
    pub async fn start_custom(
        cfg: vigil_api_kvs::media::sessions::PutMediaConfig,
        auth: Arc<dyn Authenticator>,
        fs: Arc<dyn vigil_store::fs::Fs>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut scfg = StoreConfig::new(dir.path());
        scfg.min_free_bytes = 0;
        let store = tokio::task::spawn_blocking(move || {
            Store::open_with(scfg, Arc::new(SystemClock), fs).unwrap()
        })
        .await
        .unwrap();
        let cfg = ServerConfig {
            putmedia: cfg,
            ..ServerConfig::default()
        };
        let state = Arc::new(ServerState::new(store, cfg, auth).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            addr,
            state,
            _dir: dir,
            task,
        }
    }

    /// The id of an active stream.
    pub fn stream_id(&self, name: &str) -> u64 {
        self.state
            .store
            .stream(vigil_store::StreamRef::Name(name))
            .unwrap()
            .id
    }
}

/// A PutMedia request head: chunked body, `x-amzn-*` headers as the C producer sends them
/// (plus `extra` lines). `stream` is a name, or an ARN (sent as `x-amzn-stream-arn`).
pub fn putmedia_head(
    addr: SocketAddr,
    stream: &str,
    timecode_type: &str,
    extra: &[(&str, &str)],
) -> Vec<u8> {
    let mut h = format!(
        "POST /putMedia HTTP/1.1\r\nHost: {addr}\r\ntransfer-encoding: chunked\r\n\
         x-amzn-fragment-acknowledgment-required: 1\r\n\
         x-amzn-fragment-timecode-type: {timecode_type}\r\n\
         x-amzn-producer-start-timestamp: 1700000000.5\r\n"
    );
    if stream.starts_with("arn:") {
        h.push_str(&format!("x-amzn-stream-arn: {stream}\r\n"));
    } else {
        h.push_str(&format!("x-amzn-stream-name: {stream}\r\n"));
    }
    for (k, v) in extra {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    h.push_str("\r\n");
    h.into_bytes()
}

/// `data` as one HTTP chunk.
pub fn http_chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// `data` in HTTP chunks of `sizes` bytes (cycled), without the terminating chunk.
pub fn http_chunks(data: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].clamp(1, rest.len());
        out.extend_from_slice(&http_chunk(&rest[..n]));
        rest = &rest[n..];
        i += 1;
    }
    out
}

/// What the response reader saw.
enum Received {
    Head(Vec<u8>),
    Chunk(Vec<u8>),
    Body(Vec<u8>),
    /// The terminating chunk (a clean end).
    LastChunk,
    End,
}

/// A producer connection: writes the request as the test says, while a task reads the
/// response as it comes (interim 1xx heads, the final head, then every chunk on its own).
pub struct PutMediaClient {
    w: tokio::net::tcp::OwnedWriteHalf,
    rx: tokio::sync::mpsc::UnboundedReceiver<Received>,
    /// Every response head received, raw, in order (1xx heads first).
    pub heads: Vec<Vec<u8>>,
    /// The final status, once its head has arrived.
    pub status: Option<u16>,
    /// The response body's chunks, each as sent (a chunked response).
    pub chunks: Vec<Vec<u8>>,
    /// The body of a response that is not chunked (a JSON error).
    pub body: Vec<u8>,
    /// Whether the response has ended (terminating chunk, or the connection closed).
    pub ended: bool,
    /// Whether it ended with its terminating chunk.
    pub clean_end: bool,
}

impl PutMediaClient {
    /// Connects and sends `head`.
    pub async fn connect(addr: SocketAddr, head: &[u8]) -> Self {
        let s = TcpStream::connect(addr).await.unwrap();
        s.set_nodelay(true).unwrap();
        let (r, mut w) = s.into_split();
        w.write_all(head).await.unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(read_response(r, tx));
        Self {
            w,
            rx,
            heads: Vec::new(),
            status: None,
            chunks: Vec::new(),
            body: Vec::new(),
            ended: false,
            clean_end: false,
        }
    }

    /// Writes raw request bytes; false if the connection no longer takes them.
    pub async fn send(&mut self, bytes: &[u8]) -> bool {
        self.w.write_all(bytes).await.is_ok()
    }

    /// Writes `data` as one HTTP chunk.
    pub async fn send_chunk(&mut self, data: &[u8]) -> bool {
        self.send(&http_chunk(data)).await
    }

    /// Writes the terminating chunk.
    pub async fn end_body(&mut self) -> bool {
        self.send(b"0\r\n\r\n").await
    }

    /// Takes one thing the reader saw (waiting at most `timeout`); false on timeout or once
    /// the response has ended.
    async fn recv(&mut self, timeout: std::time::Duration) -> bool {
        if self.ended {
            return false;
        }
        match tokio::time::timeout(timeout, self.rx.recv()).await {
            Err(_) => false,
            Ok(None) | Ok(Some(Received::End)) => {
                self.ended = true;
                true
            }
            Ok(Some(Received::LastChunk)) => {
                (self.ended, self.clean_end) = (true, true);
                true
            }
            Ok(Some(Received::Head(h))) => {
                let status: u16 = std::str::from_utf8(&h)
                    .unwrap()
                    .split(' ')
                    .nth(1)
                    .unwrap()
                    .parse()
                    .unwrap();
                if status >= 200 {
                    self.status = Some(status);
                }
                self.heads.push(h);
                true
            }
            Ok(Some(Received::Chunk(c))) => {
                self.chunks.push(c);
                true
            }
            Ok(Some(Received::Body(b))) => {
                self.body.extend_from_slice(&b);
                true
            }
        }
    }

    /// Waits for the final response head; returns its status.
    pub async fn wait_status(&mut self, timeout: std::time::Duration) -> u16 {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.status.is_none() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(
                self.recv(left).await && !(self.ended && self.status.is_none()),
                "no response head within {timeout:?}"
            );
        }
        self.status.unwrap()
    }

    /// The acks so far, each chunk parsed as one JSON object.
    pub fn acks(&self) -> Vec<Value> {
        self.chunks
            .iter()
            .map(|c| {
                serde_json::from_slice(c).unwrap_or_else(|e| {
                    panic!(
                        "ack chunk is not one JSON object ({e}): {:?}",
                        String::from_utf8_lossy(c)
                    )
                })
            })
            .collect()
    }

    /// Reads acks until `done(acks)` holds; panics after `timeout` or if the response ends
    /// first.
    pub async fn wait_acks(
        &mut self,
        timeout: std::time::Duration,
        mut done: impl FnMut(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let acks = self.acks();
            if done(&acks) {
                return acks;
            }
            assert!(
                !self.ended,
                "the response ended before the expected acks: {acks:?}"
            );
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(
                !left.is_zero(),
                "timed out after {timeout:?} waiting for acks; got {acks:?}"
            );
            self.recv(left).await;
        }
    }

    /// Reads to the end of the response; returns the acks.
    pub async fn wait_end(&mut self, timeout: std::time::Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.ended {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(
                !left.is_zero(),
                "the response did not end within {timeout:?}; acks {:?}",
                self.acks()
            );
            self.recv(left).await;
        }
        if self.chunks.is_empty() {
            Vec::new()
        } else {
            self.acks()
        }
    }
}

/// Counts acks of one `EventType`.
pub fn count_acks(acks: &[Value], event: &str) -> usize {
    acks.iter().filter(|a| a["EventType"] == event).count()
}

async fn read_response(
    mut r: tokio::net::tcp::OwnedReadHalf,
    tx: tokio::sync::mpsc::UnboundedSender<Received>,
) {
    let mut buf: Vec<u8> = Vec::new();
    // Heads: 1xx interim ones, then the final one.
    let (chunked, mut length) = loop {
        let end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            if !fill(&mut r, &mut buf).await {
                let _ = tx.send(Received::End);
                return;
            }
        };
        let head: Vec<u8> = buf.drain(..end + 4).collect();
        let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
        let status: u16 = text.split(' ').nth(1).unwrap().parse().unwrap();
        let _ = tx.send(Received::Head(head));
        if status >= 200 {
            let chunked = text.contains("transfer-encoding: chunked");
            let length = text
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse::<usize>().unwrap());
            break (chunked, length);
        }
    };
    if !chunked {
        loop {
            if !buf.is_empty() {
                let n = length.map_or(buf.len(), |l| l.min(buf.len()));
                let _ = tx.send(Received::Body(buf.drain(..n).collect()));
                if let Some(l) = &mut length {
                    *l -= n;
                }
            }
            if length == Some(0) || !fill(&mut r, &mut buf).await {
                let _ = tx.send(Received::End);
                return;
            }
        }
    }
    loop {
        let Some(nl) = buf.windows(2).position(|w| w == b"\r\n") else {
            if !fill(&mut r, &mut buf).await {
                let _ = tx.send(Received::End);
                return;
            }
            continue;
        };
        let size =
            usize::from_str_radix(std::str::from_utf8(&buf[..nl]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            let _ = tx.send(Received::LastChunk);
            return;
        }
        while buf.len() < nl + 2 + size + 2 {
            if !fill(&mut r, &mut buf).await {
                let _ = tx.send(Received::End);
                return;
            }
        }
        let chunk = buf[nl + 2..nl + 2 + size].to_vec();
        assert_eq!(&buf[nl + 2 + size..nl + 4 + size], b"\r\n", "chunk framing");
        buf.drain(..nl + 4 + size);
        let _ = tx.send(Received::Chunk(chunk));
    }
}

/// Reads more bytes into `buf`; false at the end of the connection.
async fn fill(r: &mut tokio::net::tcp::OwnedReadHalf, buf: &mut Vec<u8>) -> bool {
    let mut tmp = vec![0u8; 64 * 1024];
    match r.read(&mut tmp).await {
        Ok(n) if n > 0 => {
            buf.extend_from_slice(&tmp[..n]);
            true
        }
        _ => false,
    }
}
