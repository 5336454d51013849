//! The PutMedia connection(s) of `vigil put`: sends fragments, reads acks, and after a broken
//! connection or a retryable ERROR ack reconnects and resends what was not acknowledged, as
//! the KVS producer SDK does.
//!
//! # Delivery
//!
//! Each fragment is kept until its final ack: PERSISTED, or RECEIVED on a stream without
//! retention (which sends no PERSISTED). A new connection starts with the Matroska header and
//! resends every fragment kept, in order. Before resending, fragments the server stored after
//! all (their ack was lost with the connection) are looked up with `ListFragments` by producer
//! timestamp and dropped, so each fragment is stored once; without retention there is nothing
//! to look up and a fragment whose RECEIVED ack was lost may be stored twice.
//!
//! # Errors
//!
//! An ERROR ack about the data (4001 too big, 4002 too long, 4004 time going backwards, 4006
//! invalid Matroska, 4008 stream gone, ...) ends the upload with the error's meaning; a broken
//! connection, 4000 (read error), 4003 (connection too long) and 5xxx are retried with
//! back-off, up to [`MAX_FAILURES`] failures in a row without an ack in between.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::sync::mpsc;

use super::Warn;
use super::fragment::Out;
use crate::client::{Client, http};

/// Consecutive failures (without an ack in between) before giving up.
pub const MAX_FAILURES: u32 = 8;
/// A connection is replaced after this long, before KVS's 45-minute limit (as the SDK's ~40).
const ROTATE_AFTER: Duration = Duration::from_secs(40 * 60);
/// Bytes of fragments kept unacknowledged before the input is paused.
const MAX_PENDING_BYTES: usize = 512 << 20;

/// Which ack completes a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Final {
    Persisted,
    Received,
}

/// Counters shown by the progress bar and the summary.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub fragments_sent: u64,
    pub fragments_acked: u64,
    pub bytes_sent: u64,
    pub connections: u64,
    pub resent: u64,
    pub skipped_stored: u64,
    /// End of fragment sent → final ack, ms: last and sum (for the mean).
    pub last_latency_ms: f64,
    pub latency_sum_ms: f64,
}

struct Fragment {
    timecode_ms: u64,
    chunks: Vec<Bytes>,
    bytes: usize,
    complete: bool,
    /// When its last byte was sent on the current connection.
    ended_at: Option<Instant>,
}

enum AckMsg {
    Ack(Value),
    /// The response ended: cleanly (`None`) or with an error.
    End(Option<String>),
}

struct Conn {
    body: mpsc::Sender<Bytes>,
    acks: mpsc::UnboundedReceiver<AckMsg>,
    opened: Instant,
}

pub struct Uploader {
    control: Client,
    stream: String,
    header: Bytes,
    final_ack: Final,
    pending: VecDeque<Fragment>,
    pending_bytes: usize,
    conn: Option<Conn>,
    data: Option<Client>,
    failures: u32,
    pub stats: Stats,
    on_progress: Box<dyn FnMut(&Stats) + Send + Sync>,
    warn: Warn,
}

impl Uploader {
    pub fn new(
        control: Client,
        stream: &str,
        header: Bytes,
        final_ack: Final,
        on_progress: Box<dyn FnMut(&Stats) + Send + Sync>,
    ) -> Self {
        Uploader {
            control,
            stream: stream.to_owned(),
            header,
            final_ack,
            pending: VecDeque::new(),
            pending_bytes: 0,
            conn: None,
            data: None,
            failures: 0,
            stats: Stats::default(),
            on_progress,
            warn: Warn::stderr(),
        }
    }

    /// Reports warnings (lost connections, retried errors) to `warn` rather than standard
    /// error.
    pub fn with_warn(mut self, warn: Warn) -> Self {
        self.warn = warn;
        self
    }

    /// Sends everything `input` yields, then waits for every fragment's final ack.
    pub async fn run(mut self, mut input: mpsc::Receiver<Out>) -> anyhow::Result<Stats> {
        let mut input_done = false;
        loop {
            if input_done && self.pending.is_empty() {
                break;
            }
            if self.conn.is_none() {
                self.connect().await?;
            }
            let accepting = !input_done && self.pending_bytes < MAX_PENDING_BYTES;
            let Some(conn) = self.conn.as_mut() else {
                continue;
            };
            tokio::select! {
                item = input.recv(), if accepting => match item {
                    Some(out) => self.take(out).await,
                    None => input_done = true,
                },
                msg = conn.acks.recv() => match msg {
                    Some(AckMsg::Ack(ack)) => self.on_ack(&ack)?,
                    Some(AckMsg::End(err)) => {
                        let why = err.unwrap_or_else(|| "the server ended the response".into());
                        self.lost(&why).await?;
                    }
                    None => self.lost("the connection closed").await?,
                },
            }
        }
        // Every fragment is acknowledged: end the body and let the response finish.
        if let Some(conn) = self.conn.take() {
            drop(conn.body);
            let mut acks = conn.acks;
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                while let Some(m) = acks.recv().await {
                    if matches!(m, AckMsg::End(_)) {
                        break;
                    }
                }
            })
            .await;
        }
        (self.on_progress)(&self.stats);
        Ok(self.stats)
    }

    /// Handles one item of input.
    async fn take(&mut self, out: Out) {
        match out {
            Out::Begin { timecode_ms } => {
                // Rotate a connection that has lived long, between fragments.
                if self
                    .conn
                    .as_ref()
                    .is_some_and(|c| c.opened.elapsed() > ROTATE_AFTER)
                {
                    self.rotate().await;
                }
                self.pending.push_back(Fragment {
                    timecode_ms,
                    chunks: Vec::new(),
                    bytes: 0,
                    complete: false,
                    ended_at: None,
                });
                self.stats.fragments_sent += 1;
            }
            Out::Data(bytes) => {
                if let Some(f) = self.pending.back_mut() {
                    f.bytes += bytes.len();
                    f.chunks.push(bytes.clone());
                }
                self.pending_bytes += bytes.len();
                self.send(bytes).await;
            }
            Out::End => {
                if let Some(f) = self.pending.back_mut() {
                    f.complete = true;
                    f.ended_at = Some(Instant::now());
                }
                (self.on_progress)(&self.stats);
            }
        }
    }

    /// Sends bytes on the current connection; a failure is noticed through its ack channel.
    async fn send(&mut self, bytes: Bytes) {
        if let Some(conn) = &self.conn {
            self.stats.bytes_sent += bytes.len() as u64;
            if conn.body.send(bytes).await.is_err() {
                tracing::debug!("the request body closed while sending");
            }
        }
    }

    fn on_ack(&mut self, ack: &Value) -> anyhow::Result<()> {
        let event = ack.get("EventType").and_then(Value::as_str).unwrap_or("");
        let timecode = ack.get("FragmentTimecode").and_then(Value::as_u64);
        tracing::debug!(%ack, "ack");
        let done = match event {
            "PERSISTED" => true,
            "RECEIVED" => self.final_ack == Final::Received,
            "ERROR" => return self.on_error(ack),
            _ => false, // BUFFERING, IDLE
        };
        if !done {
            return Ok(());
        }
        let Some(timecode) = timecode else {
            return Ok(());
        };
        if let Some(at) = self.pending.iter().position(|f| f.timecode_ms == timecode)
            && let Some(f) = self.pending.remove(at)
        {
            self.pending_bytes = self.pending_bytes.saturating_sub(f.bytes);
            self.stats.fragments_acked += 1;
            self.failures = 0;
            if let Some(t) = f.ended_at {
                let ms = t.elapsed().as_secs_f64() * 1e3;
                self.stats.last_latency_ms = ms;
                self.stats.latency_sum_ms += ms;
            }
            (self.on_progress)(&self.stats);
        }
        Ok(())
    }

    fn on_error(&mut self, ack: &Value) -> anyhow::Result<()> {
        let id = ack.get("ErrorId").and_then(Value::as_u64).unwrap_or(0);
        let code = ack
            .get("ErrorCode")
            .and_then(Value::as_str)
            .unwrap_or("UNKNOWN");
        let timecode = ack
            .get("FragmentTimecode")
            .and_then(Value::as_u64)
            .map(|t| format!(" (fragment at {t} ms)"))
            .unwrap_or_default();
        let meaning = error_meaning(id);
        if retryable(id) {
            self.warn.warn(&format!(
                "ERROR ack {id} {code}{timecode}: {meaning}; reconnecting"
            ));
            // The connection ends after an ERROR ack; its end triggers the resend.
            return Ok(());
        }
        bail!("the server refused the upload: ERROR {id} {code}{timecode}: {meaning}")
    }

    /// The connection is gone: reconnect after a back-off and resend.
    async fn lost(&mut self, why: &str) -> anyhow::Result<()> {
        self.conn = None;
        self.failures += 1;
        if self.failures > MAX_FAILURES {
            bail!("giving up after {MAX_FAILURES} failed connections: {why}");
        }
        let backoff = Duration::from_millis(250u64 << self.failures.min(7));
        self.warn.warn(&format!(
            "the PutMedia connection was lost ({why}); {} fragment(s) not yet acknowledged, \
             reconnecting in {:.1} s",
            self.pending.len(),
            backoff.as_secs_f64()
        ));
        tokio::time::sleep(backoff).await;
        self.data = None; // Ask GetDataEndpoint again, as the SDK does.
        Ok(())
    }

    /// Ends the current connection after its acks, and starts a new one at the next fragment.
    async fn rotate(&mut self) {
        if let Some(conn) = self.conn.take() {
            drop(conn.body);
            let mut acks = conn.acks;
            let _ = tokio::time::timeout(Duration::from_secs(30), async {
                while let Some(m) = acks.recv().await {
                    match m {
                        AckMsg::Ack(a) => {
                            if let Err(e) = self.on_ack(&a) {
                                tracing::warn!("{e:#}");
                            }
                        }
                        AckMsg::End(_) => break,
                    }
                }
            })
            .await;
        }
    }

    /// Opens a connection (after dropping fragments the server already stored), sends the
    /// header and every fragment kept.
    async fn connect(&mut self) -> anyhow::Result<()> {
        loop {
            match self.try_connect().await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let fatal = e
                        .downcast_ref::<crate::client::CallError>()
                        .and_then(|c| c.kind())
                        .is_some_and(|k| {
                            matches!(
                                k,
                                "ResourceNotFoundException"
                                    | "NotAuthorizedException"
                                    | "AccessDeniedException"
                                    | "UnrecognizedClientException"
                                    | "InvalidSignatureException"
                                    | "InvalidArgumentException"
                            )
                        });
                    if fatal {
                        return Err(e);
                    }
                    self.lost(&format!("{e:#}")).await?;
                }
            }
        }
    }

    async fn try_connect(&mut self) -> anyhow::Result<()> {
        let data = match &self.data {
            Some(d) => d.clone(),
            None => {
                let d = self
                    .control
                    .data_client(&self.stream, "PUT_MEDIA")
                    .await
                    .map_err(anyhow::Error::from)?;
                self.data = Some(d.clone());
                d
            }
        };
        if self.stats.connections > 0 && !self.pending.is_empty() {
            self.drop_stored().await;
        }
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let start = format!("{}.{:03}", start.as_secs(), start.subsec_millis());
        let (body_tx, body) = http::channel(64);
        let request = data.signed_request(
            "/putMedia",
            &[
                ("x-amzn-stream-name", &self.stream),
                ("x-amzn-fragment-timecode-type", "ABSOLUTE"),
                ("x-amzn-producer-start-timestamp", &start),
                ("x-amzn-fragment-acknowledgment-required", "1"),
            ],
            vigil_auth::sigv4::EMPTY_SHA256_HEX,
            body,
        )?;
        // The request is answered once its head is read; the body streams meanwhile, so the
        // header is queued first (the channel buffers it).
        body_tx
            .send(self.header.clone())
            .await
            .map_err(|_| anyhow!("the request body closed"))?;
        let response = data.send(request).await?;
        if !response.status().is_success() {
            return Err(crate::client::error_of(response).await.into());
        }
        let (ack_tx, acks) = mpsc::unbounded_channel();
        tokio::spawn(read_acks(response.into_body(), ack_tx));
        self.stats.connections += 1;
        self.conn = Some(Conn {
            body: body_tx,
            acks,
            opened: Instant::now(),
        });
        // Resend what is kept, in order.
        let chunks: Vec<Bytes> = self
            .pending
            .iter()
            .flat_map(|f| f.chunks.iter().cloned())
            .collect();
        if self.stats.connections > 1 {
            self.stats.resent +=
                self.pending.iter().filter(|f| !f.chunks.is_empty()).count() as u64;
        }
        for f in self.pending.iter_mut() {
            if f.complete {
                f.ended_at = Some(Instant::now());
            }
        }
        for c in chunks {
            self.send(c).await;
        }
        Ok(())
    }

    /// Drops the kept fragments the server stored already (ListFragments by producer time).
    async fn drop_stored(&mut self) {
        if self.final_ack != Final::Persisted {
            return;
        }
        let (Some(first), Some(last)) = (self.pending.front(), self.pending.back()) else {
            return;
        };
        let (from, to) = (first.timecode_ms, last.timecode_ms);
        let stored = match self.list_stored(from, to).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("cannot check which fragments were stored: {e:#}");
                return;
            }
        };
        let before = self.pending.len();
        let mut freed = 0;
        self.pending.retain(|f| {
            let keep = !(f.complete && stored.contains(&f.timecode_ms));
            if !keep {
                freed += f.bytes;
            }
            keep
        });
        self.pending_bytes = self.pending_bytes.saturating_sub(freed);
        let n = (before - self.pending.len()) as u64;
        self.stats.skipped_stored += n;
        self.stats.fragments_acked += n;
    }

    async fn list_stored(&self, from_ms: u64, to_ms: u64) -> anyhow::Result<Vec<u64>> {
        let listed = self
            .control
            .list_fragments(
                &self.stream,
                from_ms as f64 / 1e3,
                to_ms as f64 / 1e3 + 0.001,
            )
            .await?;
        Ok(listed
            .iter()
            .map(|f| (f.producer_s * 1e3).round() as u64)
            .collect())
    }
}

/// Reads the ack stream: JSON objects, one per chunk as the server sends them, but parsed
/// from the bytes as they arrive whatever their split.
async fn read_acks(body: hyper::body::Incoming, tx: mpsc::UnboundedSender<AckMsg>) {
    let mut body = body;
    let mut buf: Vec<u8> = Vec::new();
    loop {
        match body.frame().await {
            None => {
                let _ = tx.send(AckMsg::End(None));
                return;
            }
            Some(Err(e)) => {
                let _ = tx.send(AckMsg::End(Some(format!("reading acks: {e}"))));
                return;
            }
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                buf.extend_from_slice(&data);
                let mut stream = serde_json::Deserializer::from_slice(&buf).into_iter::<Value>();
                let mut consumed = 0;
                loop {
                    match stream.next() {
                        Some(Ok(v)) => {
                            consumed = stream.byte_offset();
                            let _ = tx.send(AckMsg::Ack(v));
                        }
                        Some(Err(e)) if e.is_eof() => break,
                        Some(Err(e)) => {
                            let _ = tx.send(AckMsg::End(Some(format!("a malformed ack: {e}"))));
                            return;
                        }
                        None => {
                            consumed = buf.len();
                            break;
                        }
                    }
                }
                buf.drain(..consumed.min(buf.len()));
                if buf.len() > 1 << 20 {
                    let _ = tx.send(AckMsg::End(Some("an ack larger than 1 MiB".into())));
                    return;
                }
            }
        }
    }
}

/// Whether an ERROR ack is worth a new connection.
fn retryable(id: u64) -> bool {
    matches!(id, 4000 | 4003 | 5000..=5999)
}

/// What an ERROR ack id means, for the user.
pub fn error_meaning(id: u64) -> &'static str {
    match id {
        4000 => "the server could not read the data (connection problem)",
        4001 => "a fragment is larger than 50 MB; use a shorter key-frame interval",
        4002 => "a fragment is longer than the maximum duration; use a shorter key-frame interval",
        4003 => "the connection lasted longer than 45 minutes",
        4004 => "a fragment's time stamp is earlier than the previous one's",
        4005 | 4012 => "the media has more tracks than allowed (3)",
        4006 => "the data is not valid Matroska",
        4007 => "the producer timestamp is invalid",
        4008 => "the stream is not active (deleted?)",
        4009 => "too many metadata tags on a fragment, or a tag too long",
        4010 => "a frame's track number is not declared in the Tracks header",
        4011 => "a fragment has no frame for one of its tracks",
        4500..=4506 => "the stream's KMS key cannot be used",
        4507 => "the stream was deleted",
        5000 => "internal server error",
        5001 => "the server failed to store the fragment",
        _ => "unknown error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_classes() {
        assert!(retryable(4000) && retryable(4003) && retryable(5001));
        assert!(!retryable(4004) && !retryable(4006) && !retryable(4008));
        assert!(error_meaning(4001).contains("50 MB"));
    }
}
