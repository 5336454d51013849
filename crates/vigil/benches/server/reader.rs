//! A GetMedia reader at the live edge: `StartSelectorType` NOW, the chunked response read as
//! it arrives and demuxed with `vigil_mkv::Demuxer`; each frame's latency is the time of the
//! read that completed it minus the send time stamped in it by its producer.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};
use vigil_mkv::{Demuxer, Event};

use crate::http::{Dechunker, read_head};
use crate::media::Stamp;

/// Bytes a reader asks for per read: a frame and then some. With 1,000 readers, 16 MB.
const READ_BYTES: usize = 16 << 10;

#[derive(Debug, Clone)]
pub struct Reader {
    pub addr: SocketAddr,
    pub stream: String,
    /// The index its producer stamps in frames.
    pub index: u32,
    pub base: Instant,
    /// Frames sent in `[window.0, window.1)` (ns since base) are measured; the reader stops at
    /// the first frame sent after the window. Set when the run starts.
    pub window: Arc<OnceLock<(u64, u64)>>,
    /// Gives up at this time (a stalled server).
    pub deadline: tokio::time::Instant,
}

/// What a reader saw.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Latency of each frame sent in the window, µs.
    pub lat_us: Vec<u32>,
    /// Frames missing from the sequence (or repeated, or out of order).
    pub gaps: u64,
    pub bytes: u64,
    pub errors: Vec<String>,
}

impl Reader {
    /// Connects, sends the request and waits for the response head (reported on `ready`);
    /// then reads until a frame from after the window arrives, or the deadline.
    pub async fn run(
        self,
        connecting: Arc<Semaphore>,
        ready: mpsc::UnboundedSender<Result<(), String>>,
    ) -> Outcome {
        let mut out = Outcome::default();
        // A bounded number of readers connect at once (the listen backlog).
        let permit = connecting.acquire_owned().await;
        let fail = |out: &mut Outcome, msg: String| {
            let _ = ready.send(Err(msg.clone()));
            out.errors.push(msg);
        };
        let mut sock = match TcpStream::connect(self.addr).await {
            Ok(s) => s,
            Err(e) => {
                fail(&mut out, format!("GetMedia {}: connect: {e}", self.stream));
                return out;
            }
        };
        let _ = sock.set_nodelay(true);
        let body = format!(
            r#"{{"StreamName":"{}","StartSelector":{{"StartSelectorType":"NOW"}}}}"#,
            self.stream
        );
        let req = format!(
            "POST /getMedia HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        if let Err(e) = sock.write_all(req.as_bytes()).await {
            fail(&mut out, format!("GetMedia {}: {e}", self.stream));
            return out;
        }
        let mut buf = Vec::new();
        match tokio::time::timeout_at(self.deadline, read_head(&mut sock, &mut buf)).await {
            Ok(Ok(h)) if h.status == 200 && h.chunked => {}
            Ok(Ok(h)) => {
                fail(
                    &mut out,
                    format!(
                        "GetMedia {}: {}",
                        self.stream,
                        h.text.lines().next().unwrap_or("")
                    ),
                );
                return out;
            }
            Ok(Err(e)) => {
                fail(&mut out, format!("GetMedia {}: {e}", self.stream));
                return out;
            }
            Err(_) => {
                fail(
                    &mut out,
                    format!("GetMedia {}: no response head", self.stream),
                );
                return out;
            }
        }
        drop(permit);
        let _ = ready.send(Ok(()));

        let mut state = State {
            dechunker: Dechunker::default(),
            demuxer: Demuxer::new(),
            last_frame: None,
        };
        // What came with the head, then a read at a time.
        let at_ns = self.now_ns();
        if state.consume(&self, &buf, at_ns, &mut out) {
            return out;
        }
        drop(buf);
        let mut tmp = vec![0u8; READ_BYTES];
        loop {
            let n = match tokio::time::timeout_at(self.deadline, sock.read(&mut tmp)).await {
                Ok(Ok(0)) => {
                    out.errors
                        .push(format!("GetMedia {}: the connection closed", self.stream));
                    return out;
                }
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    out.errors.push(format!("GetMedia {}: {e}", self.stream));
                    return out;
                }
                Err(_) => {
                    out.errors.push(format!(
                        "GetMedia {}: no frame from after the window by the deadline",
                        self.stream
                    ));
                    return out;
                }
            };
            let at_ns = self.now_ns();
            if state.consume(&self, &tmp[..n], at_ns, &mut out) {
                return out;
            }
        }
    }
}

impl Reader {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A reader's decoding state.
struct State {
    dechunker: Dechunker,
    demuxer: Demuxer,
    last_frame: Option<u64>,
}

impl State {
    /// Takes bytes that arrived at `at_ns`; true when the reader is done (a frame from after
    /// the window, or an error).
    fn consume(&mut self, r: &Reader, data: &[u8], at_ns: u64, out: &mut Outcome) -> bool {
        out.bytes += data.len() as u64;
        let demuxer = &mut self.demuxer;
        let ended = match self.dechunker.feed(data, |d| demuxer.push(d)) {
            Ok(ended) => ended,
            Err(e) => {
                out.errors.push(format!("GetMedia {}: {e}", r.stream));
                return true;
            }
        };
        if ended {
            self.demuxer.finish();
        }
        while let Some(ev) = self.demuxer.pull() {
            let frame = match ev {
                Ok(Event::Frame(f)) => f,
                Ok(_) => continue,
                Err(e) => {
                    out.errors
                        .push(format!("GetMedia {}: demuxing: {e}", r.stream));
                    return true;
                }
            };
            let Some(stamp) = Stamp::read(&frame.data) else {
                out.errors
                    .push(format!("GetMedia {}: a frame without a stamp", r.stream));
                return true;
            };
            if stamp.stream != r.index {
                out.errors.push(format!(
                    "GetMedia {}: a frame of stream {}",
                    r.stream, stamp.stream
                ));
                return true;
            }
            if let Some(last) = self.last_frame
                && stamp.frame != last + 1
            {
                out.gaps += stamp.frame.abs_diff(last + 1).max(1);
            }
            self.last_frame = Some(stamp.frame);
            let (from, to) = r.window.get().copied().unwrap_or((u64::MAX, u64::MAX));
            if stamp.sent_ns >= to {
                return true;
            }
            if stamp.sent_ns >= from {
                let lat = at_ns.saturating_sub(stamp.sent_ns) / 1000;
                out.lat_us.push(u32::try_from(lat).unwrap_or(u32::MAX));
            }
        }
        if ended {
            out.errors
                .push(format!("GetMedia {}: the response ended", r.stream));
            return true;
        }
        false
    }
}
