//! A real-time PutMedia producer: one connection, one stream, a frame every 40 ms at its phase
//! of the second, acks read as they come.
//!
//! The request is what the C producer sends, unsigned (the server runs with
//! `--allow-anonymous`): a chunked body, one HTTP chunk per frame. A fragment is complete for
//! the server when the next Cluster starts, so the last frame of each fragment goes out in the
//! same write as the next Cluster's header (ID, unknown size, Timecode), as from a producer
//! whose next key frame is ready; the last fragment of the session ends with an
//! `AWS_KINESISVIDEO_END_OF_FRAGMENT` Tags element, then the body ends. The time of that write
//! is the fragment's "last byte sent".

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use crate::http::{Dechunker, chunk, read_head};
use crate::media::{Camera, FRAME_INTERVAL, FRAME_INTERVAL_MS, FRAMES_PER_FRAGMENT, Stamp};

/// How long a producer waits for its response head, and for its last acks after its body.
const ACK_TIMEOUT: Duration = Duration::from_secs(60);

/// What every producer of a run shares.
#[derive(Debug, Clone)]
pub struct Shared {
    pub addr: SocketAddr,
    /// Stamps count from here (ns).
    pub base: Instant,
    /// Cluster timecodes count from here (epoch ms).
    pub epoch_ms: u64,
    /// The run's start, once every producer (and reader) is connected.
    pub start: watch::Receiver<Option<tokio::time::Instant>>,
    /// Each producer says here that it is connected (or why not).
    pub ready: mpsc::UnboundedSender<Result<(), String>>,
    /// A bounded number of producers connect at once (the listen backlog).
    pub connecting: Arc<Semaphore>,
}

/// One producer's stream and schedule.
#[derive(Debug, Clone)]
pub struct Producer {
    pub stream: String,
    pub index: u32,
    /// Offset of its frames in the second.
    pub phase: Duration,
    /// Fragments (seconds) to send.
    pub fragments: u64,
}

/// A fragment sent whole.
#[derive(Debug, Clone, Copy)]
pub struct Sent {
    pub timecode: u64,
    /// When its last byte (with the next Cluster's header) was handed to the socket.
    pub done_ns: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckKind {
    Buffering,
    Received,
    Persisted,
    Error,
    Idle,
    Other,
}

#[derive(Debug, Clone)]
pub struct Ack {
    pub kind: AckKind,
    pub timecode: u64,
    pub at_ns: u64,
    /// ErrorId and ErrorCode of an ERROR ack.
    pub error: Option<String>,
}

/// What a producer saw.
#[derive(Debug, Default)]
pub struct Outcome {
    pub sent: Vec<Sent>,
    /// Send time of every frame (ns since base), in order.
    pub frames_ns: Vec<u64>,
    pub acks: Vec<Ack>,
    /// How late each frame's timer fired, beyond the later of its due time and the end of the
    /// previous write, in µs, with the frame's due time (ns since base).
    pub timer_lag: Vec<(u64, u32)>,
    /// The longest write (a full socket buffer: the server not reading).
    pub write_max: Duration,
    /// HTTP errors, connection errors, a response that did not end.
    pub errors: Vec<String>,
}

fn ns_since(base: Instant) -> u64 {
    u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

impl Producer {
    pub async fn run(self, mut shared: Shared) -> Outcome {
        let mut out = Outcome::default();
        let permit = shared.connecting.clone().acquire_owned().await;
        let sock = match TcpStream::connect(shared.addr).await {
            Ok(s) => s,
            Err(e) => {
                let msg = format!("{}: connect: {e}", self.stream);
                let _ = shared.ready.send(Err(msg.clone()));
                out.errors.push(msg);
                return out;
            }
        };
        let _ = sock.set_nodelay(true);
        let (rd, mut wr) = sock.into_split();
        let (head_tx, head_rx) = oneshot::channel();
        let acks = tokio::spawn(read_acks(rd, shared.base, head_tx));

        let start_ts = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let head = format!(
            "POST /putMedia HTTP/1.1\r\nhost: {}\r\nx-amzn-stream-name: {}\r\n\
             x-amzn-fragment-timecode-type: ABSOLUTE\r\n\
             x-amzn-producer-start-timestamp: {start_ts:.3}\r\n\
             x-amzn-fragment-acknowledgment-required: 1\r\ntransfer-encoding: chunked\r\n\
             connection: keep-alive\r\ncontent-type: application/json\r\n\
             user-agent: vigil-bench/1.0 (like AWS-SDK-KVS-CPP-CLIENT)\r\n\r\n",
            shared.addr, self.stream
        );
        let mut cam = Camera::new(self.index);
        let mut buf = head.into_bytes();
        chunk(&mut buf, &cam.header(&self.stream));
        if let Err(e) = wr.write_all(&buf).await {
            let msg = format!("{}: sending the request head: {e}", self.stream);
            let _ = shared.ready.send(Err(msg.clone()));
            out.errors.push(msg);
            return out;
        }
        match tokio::time::timeout(ACK_TIMEOUT, head_rx).await {
            Ok(Ok(Ok(()))) => {
                drop(permit);
                let _ = shared.ready.send(Ok(()));
            }
            Ok(Ok(Err(e))) => {
                let msg = format!("{}: {e}", self.stream);
                let _ = shared.ready.send(Err(msg.clone()));
                out.errors.push(msg);
                if let Ok((_, errors)) = acks.await {
                    out.errors.extend(errors);
                }
                return out;
            }
            _ => {
                let msg = format!("{}: no response head in {ACK_TIMEOUT:?}", self.stream);
                let _ = shared.ready.send(Err(msg.clone()));
                out.errors.push(msg);
                return out;
            }
        }
        let start = loop {
            if let Some(s) = *shared.start.borrow_and_update() {
                break s;
            }
            if shared.start.changed().await.is_err() {
                return out;
            }
        };

        let phase_ms = self.phase.as_millis() as u64;
        let second = Duration::from_secs(1);
        let mut mkv = Vec::with_capacity(16 << 10);
        let mut prev_end = start;
        let mut frame_no = 0u64;
        out.frames_ns
            .reserve((self.fragments * FRAMES_PER_FRAGMENT) as usize);
        'send: for k in 0..self.fragments {
            let timecode = shared.epoch_ms + phase_ms + k * 1000;
            for j in 0..FRAMES_PER_FRAGMENT {
                let due = start + self.phase + second * k as u32 + FRAME_INTERVAL * j as u32;
                tokio::time::sleep_until(due).await;
                let woke = tokio::time::Instant::now();
                let due_ns = u64::try_from((due.into_std() - shared.base).as_nanos()).unwrap_or(0);
                out.timer_lag
                    .push((due_ns, crate::harness::micros(woke - due.max(prev_end))));

                let sent_ns = ns_since(shared.base);
                mkv.clear();
                if k == 0 && j == 0 {
                    cam.cluster(timecode, &mut mkv);
                }
                let stamp = Stamp {
                    stream: self.index,
                    frame: frame_no,
                    sent_ns,
                };
                cam.frame(timecode + j * FRAME_INTERVAL_MS, j == 0, stamp, &mut mkv);
                let last_frame = j + 1 == FRAMES_PER_FRAGMENT;
                let last_fragment = k + 1 == self.fragments;
                if last_frame {
                    if last_fragment {
                        cam.end_of_fragment(&mut mkv);
                    } else {
                        cam.cluster(timecode + 1000, &mut mkv);
                    }
                }
                buf.clear();
                chunk(&mut buf, &mkv);
                if last_frame && last_fragment {
                    buf.extend_from_slice(b"0\r\n\r\n");
                }
                if let Err(e) = wr.write_all(&buf).await {
                    out.errors
                        .push(format!("{}: writing frame {frame_no}: {e}", self.stream));
                    break 'send;
                }
                prev_end = tokio::time::Instant::now();
                out.write_max = out.write_max.max(prev_end - woke);
                out.frames_ns.push(sent_ns);
                frame_no += 1;
                if last_frame {
                    out.sent.push(Sent {
                        timecode,
                        done_ns: sent_ns,
                    });
                }
            }
        }
        match tokio::time::timeout(ACK_TIMEOUT, acks).await {
            Ok(Ok((list, errors))) => {
                out.acks = list;
                out.errors.extend(errors);
            }
            Ok(Err(e)) => out.errors.push(format!("{}: ack reader: {e}", self.stream)),
            Err(_) => out.errors.push(format!(
                "{}: the ack stream did not end {ACK_TIMEOUT:?} after the body",
                self.stream
            )),
        }
        drop(wr);
        out
    }
}

/// Reads the response: the head (reported on `head_tx`), then every ack until the response
/// ends. Returns the acks and any errors.
async fn read_acks(
    mut rd: OwnedReadHalf,
    base: Instant,
    head_tx: oneshot::Sender<Result<(), String>>,
) -> (Vec<Ack>, Vec<String>) {
    let mut buf = Vec::new();
    let mut acks = Vec::new();
    let head = match read_head(&mut rd, &mut buf).await {
        Ok(h) => h,
        Err(e) => {
            let _ = head_tx.send(Err(format!("reading the response head: {e}")));
            return (acks, vec![]);
        }
    };
    if head.status != 200 || !head.chunked {
        let mut rest = buf;
        let _ = tokio::time::timeout(Duration::from_secs(5), rd.read_to_end(&mut rest)).await;
        let _ = head_tx.send(Err(format!(
            "HTTP {}: {} {}",
            head.status,
            head.text.lines().next().unwrap_or(""),
            String::from_utf8_lossy(&rest)
        )));
        return (acks, vec![]);
    }
    let _ = head_tx.send(Ok(()));
    let mut errors = Vec::new();
    let mut dechunker = Dechunker::default();
    let mut line = Vec::new();
    let mut tmp = vec![0u8; 4096];
    let mut pending = buf;
    loop {
        let at_ns = ns_since(base);
        let mut done = match dechunker.feed(&pending, |d| line.extend_from_slice(d)) {
            Ok(done) => done,
            Err(e) => {
                errors.push(format!("ack stream: {e}"));
                true
            }
        };
        while let Some(nl) = line.iter().position(|&b| b == b'\n') {
            let ack: Vec<u8> = line.drain(..=nl).collect();
            match parse_ack(&ack, at_ns) {
                Ok(a) => acks.push(a),
                Err(e) => {
                    errors.push(e);
                    done = true;
                }
            }
        }
        if done {
            return (acks, errors);
        }
        match rd.read(&mut tmp).await {
            Ok(0) => {
                errors.push("the connection closed inside the ack stream".into());
                return (acks, errors);
            }
            Ok(n) => pending = tmp[..n].to_vec(),
            Err(e) => {
                errors.push(format!("reading acks: {e}"));
                return (acks, errors);
            }
        }
    }
}

fn parse_ack(raw: &[u8], at_ns: u64) -> Result<Ack, String> {
    let v: Value = serde_json::from_slice(raw).map_err(|e| {
        format!(
            "an ack that is not JSON ({e}): {}",
            String::from_utf8_lossy(raw)
        )
    })?;
    let kind = match v["EventType"].as_str() {
        Some("BUFFERING") => AckKind::Buffering,
        Some("RECEIVED") => AckKind::Received,
        Some("PERSISTED") => AckKind::Persisted,
        Some("ERROR") => AckKind::Error,
        Some("IDLE") => AckKind::Idle,
        _ => AckKind::Other,
    };
    Ok(Ack {
        kind,
        timecode: v["FragmentTimecode"].as_u64().unwrap_or(0),
        at_ns,
        error: (kind == AckKind::Error)
            .then(|| format!("ERROR ack {} {}", v["ErrorId"], v["ErrorCode"])),
    })
}
