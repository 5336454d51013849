//! `vigil get STREAM`: reads a stream's media (GetMedia, or ListFragments and
//! GetMediaForFragmentList with `--no-follow`) and writes it as one Matroska file, to a file or
//! to standard output (`vigil get cam1 | ffplay -`).
//!
//! The service answers with one Matroska document per fragment (EBML header, Segment, Tags,
//! Info, Tracks, Cluster, Tags). The output is one document: the first fragment's EBML header,
//! Info and Tracks, then every fragment's frames in Clusters of their own, in order, with the
//! service's time stamps (TimecodeScale 1 ms). A later fragment with other tracks is written
//! as it is, after a warning, since a player cannot be told mid-file.
//!
//! `--start` selects where to begin: `earliest`, `now` (the default), a fragment number (that
//! fragment included) or an RFC 3339 time (producer time). Without `--no-follow` the command
//! keeps following the live edge, reconnecting with the last continuation token if the
//! connection breaks. With `--no-follow` it writes what is stored when it starts and exits: it
//! lists the fragments (ListFragments) and reads them in order (GetMediaForFragmentList); on a
//! stream without retention, which has no list, it reads GetMedia until it has been idle for
//! [`IDLE_END`].

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args as ClapArgs;
use http_body_util::BodyExt;
use serde_json::json;
use vigil_mkv::{Demuxer, EbmlHeader, Event, Info, Muxer, MuxerOptions, TrackEntry};

use crate::client::{CallError, Client, ClientArgs};
use crate::stream_cmd::explain;

/// How long `--no-follow` waits for more on a stream without retention.
pub const IDLE_END: Duration = Duration::from_secs(2);
/// Fragments per GetMediaForFragmentList call.
const BATCH: usize = 100;

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The stream to read.
    stream: String,
    /// Where to start: `earliest`, `now`, a fragment number (included), or an RFC 3339 time.
    #[arg(long, default_value = "now")]
    start: String,
    /// Write what is stored and exit, instead of following the live edge.
    #[arg(long)]
    no_follow: bool,
    /// Write to this file instead of standard output.
    #[arg(long, short)]
    output: Option<std::path::PathBuf>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Clone, PartialEq)]
enum Start {
    Earliest,
    Now,
    Fragment(String),
    Time(i64),
}

fn parse_start(s: &str) -> anyhow::Result<Start> {
    Ok(match s {
        "earliest" | "EARLIEST" => Start::Earliest,
        "now" | "NOW" => Start::Now,
        n if !n.is_empty() && n.len() <= 128 && n.bytes().all(|b| b.is_ascii_digit()) => {
            Start::Fragment(n.to_owned())
        }
        t => Start::Time(crate::put::parse_time_ms(t).with_context(|| {
            "--start takes earliest, now, a fragment number or an RFC 3339 time".to_string()
        })?),
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(run_async(args))
}

/// Turns the service's documents into one Matroska file.
struct Writer<W: Write> {
    out: W,
    muxer: Muxer,
    demuxer: Demuxer,
    tracks: Option<Vec<TrackEntry>>,
    /// The open output Cluster's time, ms.
    cluster_at: Option<i64>,
    warned: bool,
    pub frames: u64,
    pub fragments: u64,
    pub continuation: Option<String>,
}

impl<W: Write> Writer<W> {
    fn new(out: W) -> Self {
        Writer {
            out,
            muxer: Muxer::new(MuxerOptions::streaming()),
            demuxer: Demuxer::new(),
            tracks: None,
            cluster_at: None,
            warned: false,
            frames: 0,
            fragments: 0,
            continuation: None,
        }
    }

    /// Starts reading a new response (the demuxer is per response).
    fn new_response(&mut self) {
        self.demuxer = Demuxer::new();
    }

    fn push(&mut self, data: &[u8]) -> anyhow::Result<()> {
        self.demuxer.push(data);
        self.drain()
    }

    fn finish_response(&mut self) -> anyhow::Result<()> {
        self.demuxer.finish();
        self.drain()
    }

    fn drain(&mut self) -> anyhow::Result<()> {
        while let Some(ev) = self.demuxer.pull() {
            match ev.context("the service's media is not valid Matroska")? {
                Event::Tracks { tracks, .. } => match &self.tracks {
                    None => {
                        let info = Info {
                            muxing_app: Some("vigil".into()),
                            writing_app: Some(format!("vigil get {}", env!("CARGO_PKG_VERSION"))),
                            ..Info::default()
                        };
                        self.muxer
                            .begin_document(&EbmlHeader::kvs(), &info, &tracks)
                            .context("writing the output's header")?;
                        self.tracks = Some(tracks);
                    }
                    Some(first) => {
                        if *first != tracks && !self.warned {
                            self.warned = true;
                            eprintln!(
                                "warning: the stream's tracks change after the first fragment; \
                                 the output keeps the first fragment's track header"
                            );
                        }
                    }
                },
                Event::ClusterStart { .. } => {
                    self.fragments += 1;
                }
                Event::Frame(f) => {
                    if self.tracks.is_none() {
                        bail!("the service sent frames before their Tracks");
                    }
                    let ms = f.time_ns.div_euclid(1_000_000);
                    let ms_u = u64::try_from(ms).unwrap_or(0);
                    // A Cluster per fragment, and a new one when a block would not fit.
                    if self.need_cluster(ms) {
                        self.muxer
                            .begin_cluster(ms_u)
                            .context("writing a Cluster")?;
                        self.cluster_at = Some(ms);
                    }
                    self.muxer
                        .write_simple_block(f.track, ms, f.keyframe, &f.data)
                        .context("writing a frame")?;
                    self.frames += 1;
                }
                Event::ClusterEnd { .. } => {
                    self.cluster_at = None;
                }
                Event::Tags { tags, .. } => {
                    for t in &tags {
                        for st in &t.simple_tags {
                            if st.name == "AWS_KINESISVIDEO_CONTINUATION_TOKEN"
                                && let Some(v) = st.value.as_str()
                            {
                                self.continuation = Some(v.to_owned());
                            }
                        }
                    }
                    // The fragment (Cluster and its end Tags) is whole: let it out.
                    self.flush()?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn need_cluster(&self, ms: i64) -> bool {
        match self.cluster_at {
            None => true,
            Some(at) => !(at - 30_000..at + 30_000).contains(&ms),
        }
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        let bytes = self.muxer.take();
        if !bytes.is_empty() {
            self.out.write_all(&bytes).context("writing the output")?;
            self.out.flush().context("writing the output")?;
        }
        Ok(())
    }
}

async fn run_async(args: Args) -> anyhow::Result<()> {
    let start = parse_start(&args.start)?;
    let client = Client::from_args(&args.client)?;
    let out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut w = Writer::new(out);
    if args.no_follow {
        match list_fragments(&client, &args.stream, &start).await {
            Ok(numbers) => read_list(&client, &args.stream, &numbers, &mut w).await?,
            Err(e) if e.kind() == Some("NoDataRetentionException") => {
                follow(&client, &args.stream, start, Some(IDLE_END), &mut w).await?
            }
            Err(e) => return Err(explain(e)),
        }
    } else {
        follow(&client, &args.stream, start, None, &mut w).await?;
    }
    w.flush()?;
    if let Some(p) = &args.output {
        eprintln!(
            "{}: {} fragment(s), {} frame(s) written to {}",
            args.stream,
            w.fragments,
            w.frames,
            p.display()
        );
    }
    Ok(())
}

/// Orders fragment numbers (decimal strings of any length) numerically.
fn numeric_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// The fragment numbers stored from `start` on, in order.
async fn list_fragments(
    control: &Client,
    stream: &str,
    start: &Start,
) -> Result<Vec<String>, CallError> {
    if *start == Start::Now {
        return Ok(Vec::new());
    }
    let from_s = match start {
        Start::Time(ms) => *ms as f64 / 1e3,
        _ => 0.0,
    };
    // Up to 2100-01-01.
    let mut all: Vec<(String, f64)> = control
        .list_fragments(stream, from_s, 4_102_444_800.0)
        .await?
        .into_iter()
        .map(|f| (f.number, f.producer_s))
        .collect();
    all.sort_by(|a, b| numeric_cmp(&a.0, &b.0));
    all.dedup_by(|a, b| a.0 == b.0);
    if let Start::Fragment(first) = start {
        all.retain(|(n, _)| numeric_cmp(n, first) != std::cmp::Ordering::Less);
    }
    Ok(all.into_iter().map(|(n, _)| n).collect())
}

/// Reads listed fragments in batches, in order.
async fn read_list<W: Write>(
    control: &Client,
    stream: &str,
    numbers: &[String],
    w: &mut Writer<W>,
) -> anyhow::Result<()> {
    if numbers.is_empty() {
        return Ok(());
    }
    let client = control
        .data_client(stream, "GET_MEDIA_FOR_FRAGMENT_LIST")
        .await
        .map_err(explain)?;
    for batch in numbers.chunks(BATCH) {
        let response = client
            .call(
                "/getMediaForFragmentList",
                &json!({"StreamName": stream, "Fragments": batch}),
            )
            .await
            .map_err(explain)?;
        w.new_response();
        let mut body = response.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.context("reading the media")?;
            if let Ok(data) = frame.into_data() {
                w.push(&data)?;
            }
        }
        w.finish_response()?;
    }
    Ok(())
}

/// GetMedia from `start`, following the live edge; reconnects with the continuation token.
/// With `idle_end`, returns once no data has come for that long.
async fn follow<W: Write>(
    control: &Client,
    stream: &str,
    start: Start,
    idle_end: Option<Duration>,
    w: &mut Writer<W>,
) -> anyhow::Result<()> {
    let mut selector = match &start {
        Start::Earliest => json!({"StartSelectorType": "EARLIEST"}),
        Start::Now => json!({"StartSelectorType": "NOW"}),
        Start::Fragment(n) => {
            json!({"StartSelectorType": "FRAGMENT_NUMBER", "AfterFragmentNumber": n})
        }
        Start::Time(ms) => json!({
            "StartSelectorType": "PRODUCER_TIMESTAMP",
            "StartTimestamp": *ms as f64 / 1e3,
        }),
    };
    let mut failures = 0u32;
    loop {
        let client = control
            .data_client(stream, "GET_MEDIA")
            .await
            .map_err(explain)?;
        let response = match client
            .call(
                "/getMedia",
                &json!({"StreamName": stream, "StartSelector": selector}),
            )
            .await
        {
            Ok(r) => r,
            Err(e @ CallError::Aws { .. }) => return Err(explain(e)),
            Err(e) => {
                failures += 1;
                if failures > 8 {
                    return Err(explain(e));
                }
                eprintln!("warning: GetMedia failed ({e}); retrying");
                tokio::time::sleep(Duration::from_millis(250 << failures.min(6))).await;
                continue;
            }
        };
        w.new_response();
        let mut body = response.into_body();
        loop {
            let next = match idle_end {
                Some(idle) => match tokio::time::timeout(idle, body.frame()).await {
                    Ok(f) => f,
                    Err(_) => {
                        w.finish_response()?;
                        return Ok(());
                    }
                },
                None => body.frame().await,
            };
            match next {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        failures = 0;
                        w.push(&data)?;
                    }
                }
                Some(Err(e)) => {
                    eprintln!("warning: the GetMedia connection broke ({e}); resuming");
                    break;
                }
                None => break,
            }
        }
        w.finish_response()?;
        if idle_end.is_some() {
            return Ok(());
        }
        match &w.continuation {
            Some(token) => {
                selector =
                    json!({"StartSelectorType": "CONTINUATION_TOKEN", "ContinuationToken": token});
            }
            None => {
                selector = json!({"StartSelectorType": "NOW"});
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn starts() {
        assert_eq!(parse_start("earliest").unwrap(), Start::Earliest);
        assert_eq!(parse_start("now").unwrap(), Start::Now);
        assert_eq!(
            parse_start("91343852333181432392682062607743920146264130006").unwrap(),
            Start::Fragment("91343852333181432392682062607743920146264130006".into())
        );
        assert_eq!(
            parse_start("2026-12-01T08:00:00Z").unwrap(),
            Start::Time(1_796_112_000_000)
        );
        assert!(parse_start("yesterday").is_err());
    }

    #[test]
    fn fragment_numbers_order_numerically() {
        let mut v = vec!["91000", "9100", "900000000000000000012", "9"];
        v.sort_by(|a, b| numeric_cmp(a, b));
        assert_eq!(v, ["9", "9100", "91000", "900000000000000000012"]);
    }
}
