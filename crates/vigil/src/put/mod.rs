//! `vigil put STREAM [FILE|-]`: uploads media to a stream with PutMedia, as a KVS producer.
//!
//! The input (Matroska/WebM, MP4, or an H.264/H.265 Annex B elementary stream with
//! `--frame-rate`) is read into samples ([`source`]), re-cut into KVS fragments at key frames
//! ([`fragment`]) and sent with ABSOLUTE timecodes ([`upload`]), which keeps every fragment
//! until it is acknowledged and resends it on a new connection if the old one breaks.
//!
//! Placement on the wall clock: a recorded file is placed so that it ends now (or starts at
//! `--start-time`) and is sent as fast as the server takes it; `--realtime` sends it at its
//! own pace starting now, as a camera would; a pipe (`-`) is live: it starts now and is sent
//! as it comes.

pub mod fragment;
pub mod source;
pub mod upload;

/// Where the fragmenter and the uploader report what they survive (a dropped late frame, a
/// lost connection): standard error for `vigil put`, the log for the server's cameras.
#[derive(Clone)]
pub struct Warn(Arc<dyn Fn(&str) + Send + Sync>);

impl Warn {
    /// `warning: MESSAGE` on standard error.
    pub fn stderr() -> Warn {
        Warn(Arc::new(|m: &str| eprintln!("warning: {m}")))
    }

    /// A warning reported by `f`.
    pub fn to(f: impl Fn(&str) + Send + Sync + 'static) -> Warn {
        Warn(Arc::new(f))
    }

    /// Reports `message`.
    pub fn warn(&self, message: &str) {
        (self.0)(message)
    }
}

impl std::fmt::Debug for Warn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Warn")
    }
}

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Args as ClapArgs;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::client::{Client, ClientArgs};
use crate::stream_cmd::explain;
use fragment::{Fragmenter, Out, Policy};
use source::{Format, MkvSource, Source};
use upload::{Final, Stats, Uploader};

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The stream to upload to.
    stream: String,
    /// The input: a file, or `-` (the default) for standard input, read live.
    #[arg(default_value = "-")]
    input: String,
    /// The input's format [default: guessed from its first bytes].
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Frames per second of an H.264/H.265 elementary stream, which carries no time stamps.
    #[arg(long, value_name = "FPS", default_value_t = 25.0)]
    frame_rate: f64,
    /// Send a file at its own pace, starting now, as a live camera would.
    #[arg(long)]
    realtime: bool,
    /// Place a file so that it starts at this time (RFC 3339) rather than ending now.
    #[arg(long, value_name = "TIME", conflicts_with = "realtime")]
    start_time: Option<String>,
    /// Create the stream if it does not exist.
    #[arg(long)]
    create: bool,
    /// The retention of a stream created with --create, in hours.
    #[arg(long, value_name = "HOURS", default_value_t = 24, requires = "create")]
    retention_hours: u64,
    /// No progress bar or summary.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    client: ClientArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(run_async(args))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// A reader that counts what it reads, for the progress bar.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl<R: Seek> Seek for Counting<R> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// Where the input comes from.
enum Input {
    File(File),
    Stdin,
}

/// The largest MP4 read whole from a pipe (MP4 needs random access).
const MAX_PIPED_MP4: u64 = 4 << 30;

/// Opens `input` as a source of `format` (guessed from the first bytes when `None`).
fn open_source(
    input: Input,
    count: Arc<AtomicU64>,
    format: Option<Format>,
    frame_rate: f64,
) -> anyhow::Result<Box<dyn Source>> {
    let guess = |head: &[u8]| match source::sniff(head) {
        Some(f) => Ok(f),
        None if head.is_empty() => bail!("the input is empty"),
        None => bail!(
            "cannot tell the input's format from its first bytes; give --format \
             (mkv, mp4, h264 or h265)"
        ),
    };
    match input {
        Input::File(mut file) => {
            let format = match format {
                Some(f) => f,
                None => {
                    let mut head = Vec::with_capacity(16);
                    (&mut file)
                        .take(16)
                        .read_to_end(&mut head)
                        .context("reading the input")?;
                    file.seek(SeekFrom::Start(0))
                        .context("seeking in the input")?;
                    guess(&head)?
                }
            };
            let reader = BufReader::with_capacity(1 << 16, Counting { inner: file, count });
            if format == Format::Mp4 {
                return Ok(Box::new(source::mp4::Mp4Source::open(reader)?));
            }
            streaming(reader, format, frame_rate)
        }
        Input::Stdin => {
            let mut reader = BufReader::with_capacity(
                1 << 16,
                Counting {
                    inner: std::io::stdin(),
                    count,
                },
            );
            let format = match format {
                Some(f) => f,
                None => {
                    guess(std::io::BufRead::fill_buf(&mut reader).context("reading the input")?)?
                }
            };
            if format == Format::Mp4 {
                let mut all = Vec::new();
                reader
                    .take(MAX_PIPED_MP4)
                    .read_to_end(&mut all)
                    .context("reading the input")?;
                return Ok(Box::new(source::mp4::Mp4Source::open(
                    std::io::Cursor::new(all),
                )?));
            }
            streaming(reader, format, frame_rate)
        }
    }
}

/// A source that reads its input front to back (Matroska, Annex B).
fn streaming<R: Read + Send + 'static>(
    reader: R,
    format: Format,
    frame_rate: f64,
) -> anyhow::Result<Box<dyn Source>> {
    Ok(match format {
        Format::Mkv => Box::new(MkvSource::open(reader)?),
        Format::Mp4 => bail!("MP4 input needs random access"),
        Format::H264 | Format::H265 => Box::new(source::annexb::AnnexBSource::open(
            reader,
            format == Format::H265,
            frame_rate,
        )?),
    })
}

/// Where a file's media starts and ends, ns (a first pass over it): from its first key frame
/// of video (what a fragment can start with; for audio only, its first frame) to its last
/// frame.
fn time_span(
    path: &PathBuf,
    format: Option<Format>,
    frame_rate: f64,
) -> anyhow::Result<(i64, i64)> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut src = open_source(Input::File(file), Arc::default(), format, frame_rate)?;
    let video = src
        .tracks()
        .iter()
        .find(|t| t.kind() == vigil_mkv::TrackKind::Video)
        .map(|t| t.number);
    let (mut first, mut last) = (None::<i64>, i64::MIN);
    while let Some(s) = src.next_sample()? {
        let starts = match video {
            Some(v) => s.track == v && s.keyframe,
            None => true,
        };
        if starts && first.is_none_or(|f| s.pts_ns < f) {
            first = Some(s.pts_ns);
        }
        last = last.max(s.pts_ns);
    }
    match first {
        Some(first) if first <= last => Ok((first, last)),
        _ => bail!("{} holds no frame to start a fragment with", path.display()),
    }
}

/// The stream's retention decides the final ack; `--create` creates a missing stream.
async fn prepare_stream(client: &Client, args: &Args, media_type: &str) -> anyhow::Result<Final> {
    let info = match crate::stream_cmd::stream_info(client, &args.stream).await {
        Ok(info) => info,
        Err(e) if args.create && e.kind() == Some("ResourceNotFoundException") => {
            client
                .json(
                    "/createStream",
                    &json!({
                        "StreamName": args.stream,
                        "MediaType": media_type,
                        "DataRetentionInHours": args.retention_hours,
                    }),
                )
                .await
                .map_err(explain)?;
            if !args.quiet {
                eprintln!("created stream {}", args.stream);
            }
            crate::stream_cmd::describe(client, &args.stream).await?
        }
        Err(e) => return Err(explain(e)),
    };
    let retention = info
        .get("DataRetentionInHours")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    Ok(if retention > 0 {
        Final::Persisted
    } else {
        Final::Received
    })
}

/// The MIME media type KVS records for these tracks.
fn media_type(tracks: &[vigil_mkv::TrackEntry]) -> String {
    let types: Vec<&str> = tracks
        .iter()
        .filter_map(|t| match t.codec_id.as_str() {
            "V_MPEG4/ISO/AVC" => Some("video/h264"),
            "V_MPEGH/ISO/HEVC" => Some("video/h265"),
            "A_AAC" => Some("audio/aac"),
            "A_MS/ACM" => Some("audio/basic"),
            _ => None,
        })
        .collect();
    if types.is_empty() {
        "video/h264".to_owned()
    } else {
        types.join(",")
    }
}

async fn run_async(args: Args) -> anyhow::Result<()> {
    let client = Client::from_args(&args.client)?;
    let is_file = args.input != "-";
    let path = PathBuf::from(&args.input);

    // Where the input's time line lands on the wall clock.
    let (offset_ms, total) = if is_file {
        let size = std::fs::metadata(&path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .len();
        let offset = if args.realtime {
            None // decided at the first sample
        } else {
            let (first, last) = time_span(&path, args.format, args.frame_rate)?;
            Some(match &args.start_time {
                Some(t) => parse_time_ms(t)? - first / 1_000_000,
                // The last frame lands one ms before now.
                None => now_ms() - last / 1_000_000 - 1,
            })
        };
        (offset, Some(size))
    } else {
        (None, None)
    };

    let read = Arc::new(AtomicU64::new(0));
    let input = if is_file {
        Input::File(File::open(&path).with_context(|| format!("cannot open {}", path.display()))?)
    } else {
        Input::Stdin
    };
    let count = read.clone();
    let format = args.format;
    let frame_rate = args.frame_rate;
    // The source is opened on the blocking thread (a pipe may take time to start).
    let (src_tx, src_rx) = tokio::sync::oneshot::channel();
    let (tx, rx) = mpsc::channel::<Out>(256);
    let pace = args.realtime;
    let reader_thread = std::thread::spawn(move || -> anyhow::Result<()> {
        let mut src = match open_source(input, count, format, frame_rate) {
            Ok(s) => s,
            Err(e) => {
                let _ = src_tx.send(None);
                return Err(e);
            }
        };
        let mut fragmenter = match Fragmenter::new(src.tracks(), 0, Policy::default()) {
            Ok(f) => f,
            Err(e) => {
                let _ = src_tx.send(None);
                return Err(e);
            }
        };
        let header = fragmenter.header();
        let _ = src_tx.send(Some((header, fragmenter.tracks().to_vec())));
        feed(&mut *src, &mut fragmenter, offset_ms, pace, &tx)
    });
    let Ok(Some((header, tracks))) = src_rx.await else {
        return match reader_thread.join() {
            Ok(Err(e)) => Err(e),
            _ => Err(anyhow::anyhow!("the input could not be read")),
        };
    };

    let final_ack = prepare_stream(&client, &args, &media_type(&tracks)).await?;

    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        match total {
            Some(len) => ProgressBar::new(len).with_style(
                ProgressStyle::with_template(
                    "{spinner} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{spinner} {bytes} {bytes_per_sec} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        }
    };
    bar.enable_steady_tick(Duration::from_millis(200));
    let progress_bar = bar.clone();
    let progress_read = read.clone();
    let on_progress = Box::new(move |s: &Stats| {
        progress_bar.set_position(progress_read.load(Ordering::Relaxed));
        progress_bar.set_message(format!(
            "{} sent, {} acknowledged, ack {:.0} ms",
            s.fragments_sent, s.fragments_acked, s.last_latency_ms
        ));
    });
    let uploader = Uploader::new(client, &args.stream, header, final_ack, on_progress);
    let result = uploader.run(rx).await;
    bar.finish_and_clear();
    let input_result = reader_thread
        .join()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the input reader panicked")));
    let stats = result.with_context(|| format!("uploading to stream {:?}", args.stream))?;
    if !args.quiet {
        let mean = if stats.fragments_acked > 0 {
            stats.latency_sum_ms / stats.fragments_acked as f64
        } else {
            0.0
        };
        eprintln!(
            "{}: {} fragment(s) {}, {} bytes sent, mean ack latency {:.1} ms{}",
            args.stream,
            stats.fragments_acked,
            match final_ack {
                Final::Persisted => "persisted",
                Final::Received => "received (the stream keeps no data)",
            },
            stats.bytes_sent,
            mean,
            if stats.connections > 1 {
                format!(
                    ", {} connections ({} fragment(s) resent, {} found stored)",
                    stats.connections, stats.resent, stats.skipped_stored
                )
            } else {
                String::new()
            }
        );
    }
    input_result.context("reading the input")
}

/// The reader thread: samples → fragments → the uploader.
fn feed(
    src: &mut dyn Source,
    fragmenter: &mut Fragmenter,
    offset_ms: Option<i64>,
    pace: bool,
    tx: &mpsc::Sender<Out>,
) -> anyhow::Result<()> {
    let mut out = Vec::new();
    let mut placed = offset_ms.is_some();
    if let Some(o) = offset_ms {
        fragmenter.set_offset(o);
    }
    let start = std::time::Instant::now();
    let mut first_pts: Option<i64> = None;
    while let Some(s) = src.next_sample()? {
        if !placed {
            // Live: the first sample is now.
            fragmenter.set_offset(now_ms() - s.pts_ns / 1_000_000);
            placed = true;
        }
        if pace {
            let first = *first_pts.get_or_insert(s.pts_ns);
            let due = Duration::from_nanos(u64::try_from(s.pts_ns - first).unwrap_or(0));
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        fragmenter.push(&s, &mut out)?;
        for o in out.drain(..) {
            if tx.blocking_send(o).is_err() {
                return Ok(()); // The uploader stopped; it reports why.
            }
        }
    }
    fragmenter.finish(&mut out)?;
    for o in out.drain(..) {
        if tx.blocking_send(o).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// RFC 3339 → ms since the epoch.
pub fn parse_time_ms(text: &str) -> anyhow::Result<i64> {
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .with_context(|| format!("{text:?} is not an RFC 3339 time (2026-12-01T08:00:00Z)"))?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}
