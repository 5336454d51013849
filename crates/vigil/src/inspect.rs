//! `vigil inspect`: shows what a Matroska/WebM file or stream holds, for people debugging their
//! producers.
//!
//! The input is read in 64 KiB chunks through the streaming demuxer, so a long capture or a
//! live pipe (`-`, standard input) is inspected in bounded memory.
//!
//! Without `--json`, it prints the element tree, one line per element, indented by level, with
//! byte offsets. With `--json`, it prints one JSON object: `{"documents", "clusters", "tracks"}`
//! where each track has `number`, `codec_id`, `type` (`video`, `audio`, `subtitle`, `other`),
//! `width`/`height` (video) or `sample_rate`/`channels` (audio), `frames`, `keyframes`, and
//! `first_ms`/`last_ms` (the start times of the first and last frames in file order, in integer
//! milliseconds, as the file's timecodes give them; `null` for a track without frames).
//! Several EBML documents in one input (GetMedia output) are summed per track number. Frames
//! whose track number no Tracks element declares are counted in the top-level
//! `undeclared_frames`. This shape is a contract: external checks read it.
//!
//! `keyframes` counts the frames a player can start from, as ffprobe counts them: frames whose
//! block is flagged key (a BlockGroup without ReferenceBlock is a key frame), and every frame of
//! an audio or subtitle track, whose codecs code each frame on its own (KVS producers leave the
//! key flag clear on audio blocks).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::Serialize;
use vigil_mkv::{Demuxer, Event, Frame, SimpleTag, TagValue, TrackEntry, TrackKind, ids};

/// Arguments of `vigil inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Matroska or WebM file to read, or `-` for standard input.
    #[arg(value_name = "FILE")]
    pub input: PathBuf,

    /// Print a JSON summary per track instead of the element tree.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let name = args.input.display().to_string();
    let reader: Box<dyn Read> = if args.input.as_os_str() == "-" {
        Box::new(io::stdin().lock())
    } else {
        Box::new(File::open(&args.input).with_context(|| format!("cannot open {name}"))?)
    };
    let out = BufWriter::new(io::stdout().lock());
    let result = if args.json {
        let mut summary = Summary::default();
        let r = demux(reader, &name, |ev| {
            summary.add(ev);
            Ok(())
        });
        r.and_then(|()| {
            let mut out = out;
            serde_json::to_writer(&mut out, &summary.finish())?;
            writeln!(out)?;
            out.flush()?;
            Ok(())
        })
    } else {
        let mut tree = Tree { out };
        demux(reader, &name, |ev| tree.event(&ev)).and_then(|()| Ok(tree.out.flush()?))
    };
    match result {
        // `vigil inspect big.mkv | head` is not an error.
        Err(e)
            if e.downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe) =>
        {
            Ok(())
        }
        r => r,
    }
}

/// Feeds the input through the demuxer, handing each event to `f`.
fn demux(
    mut reader: impl Read,
    name: &str,
    mut f: impl FnMut(Event) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut demuxer = Demuxer::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    let mut events = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read {name}")),
        };
        total += n as u64;
        demuxer.push(buf.get(..n).unwrap_or_default());
        while let Some(ev) = demuxer.pull() {
            events += 1;
            f(ev.with_context(|| format!("{name} is not valid Matroska"))?)?;
        }
    }
    demuxer.finish();
    while let Some(ev) = demuxer.pull() {
        events += 1;
        f(ev.with_context(|| format!("{name} is not valid Matroska"))?)?;
    }
    if events == 0 {
        bail!("{name} is empty ({total} bytes): no Matroska data");
    }
    Ok(())
}

struct Tree<W: Write> {
    out: W,
}

impl<W: Write> Tree<W> {
    fn line(&mut self, depth: usize, text: std::fmt::Arguments<'_>) -> io::Result<()> {
        writeln!(self.out, "{:width$}{text}", "", width = depth * 2)
    }

    fn event(&mut self, ev: &Event) -> anyhow::Result<()> {
        match ev {
            Event::EbmlHeader { span, header: h } => self.line(
                0,
                format_args!(
                    "EBML @{} size {}: DocType {} v{} (reads as v{}), EBML v{}",
                    span.offset,
                    size(span.size),
                    h.doc_type.escape_debug(),
                    h.doc_type_version,
                    h.doc_type_read_version,
                    h.version
                ),
            )?,
            Event::SegmentStart { span } => self.line(
                0,
                format_args!("Segment @{} size {}", span.offset, size(span.size)),
            )?,
            Event::Info { span, info } => {
                self.line(
                    1,
                    format_args!("Info @{} size {}", span.offset, size(span.size)),
                )?;
                self.line(2, format_args!("TimestampScale {} ns", info.timecode_scale))?;
                if let Some(uid) = &info.segment_uid {
                    self.line(2, format_args!("SegmentUUID {}", hex(uid)))?;
                }
                for (label, v) in [
                    ("Title", &info.title),
                    ("MuxingApp", &info.muxing_app),
                    ("WritingApp", &info.writing_app),
                ] {
                    if let Some(v) = v {
                        self.line(2, format_args!("{label} {v:?}"))?;
                    }
                }
                if let Some(d) = info.duration {
                    self.line(2, format_args!("Duration {d} ticks"))?;
                }
                if let Some(d) = info.date_utc {
                    self.line(2, format_args!("DateUTC {d} ns after 2001-01-01"))?;
                }
            }
            Event::Tracks { span, tracks } => {
                self.line(
                    1,
                    format_args!("Tracks @{} size {}", span.offset, size(span.size)),
                )?;
                for t in tracks {
                    self.line(2, format_args!("{}", describe_track(t)))?;
                }
            }
            Event::ClusterStart { span, timecode } => self.line(
                1,
                format_args!(
                    "Cluster @{} size {}: Timestamp {timecode}",
                    span.offset,
                    size(span.size)
                ),
            )?,
            Event::Frame(f) => self.line(2, format_args!("{}", describe_frame(f)))?,
            Event::ClusterEnd { offset, end } => self.line(
                1,
                format_args!("Cluster end @{end} ({} bytes)", end - offset),
            )?,
            Event::Tags { span, tags } => {
                self.line(
                    1,
                    format_args!("Tags @{} size {}", span.offset, size(span.size)),
                )?;
                for tag in tags {
                    let t = &tag.targets;
                    let mut targets = String::new();
                    if let Some(v) = t.type_value {
                        targets += &format!(" TargetTypeValue {v}");
                    }
                    if let Some(v) = &t.target_type {
                        targets += &format!(" TargetType {v:?}");
                    }
                    if !t.track_uids.is_empty() {
                        targets += &format!(" TagTrackUID {:?}", t.track_uids);
                    }
                    self.line(2, format_args!("Tag{targets}"))?;
                    for st in &tag.simple_tags {
                        self.simple_tag(3, st)?;
                    }
                }
            }
            Event::Skipped { id, span, depth } => self.line(
                usize::from(*depth),
                format_args!(
                    "{} @{} size {} (skipped)",
                    ids::name(*id).map_or_else(|| format!("{id:#X}"), str::to_owned),
                    span.offset,
                    size(span.size)
                ),
            )?,
            Event::SegmentEnd { offset, end } => self.line(
                0,
                format_args!("Segment end @{end} ({} bytes)", end - offset),
            )?,
        }
        Ok(())
    }

    fn simple_tag(&mut self, depth: usize, st: &SimpleTag) -> io::Result<()> {
        let value = match &st.value {
            TagValue::None => String::new(),
            TagValue::String(s) => format!(" = {s:?}"),
            TagValue::Binary(b) => format!(" = binary {} bytes", b.len()),
        };
        self.line(depth, format_args!("{}{value}", st.name.escape_debug()))?;
        for child in &st.children {
            self.simple_tag(depth + 1, child)?;
        }
        Ok(())
    }
}

fn size(size: Option<u64>) -> String {
    size.map_or_else(|| "unknown".to_owned(), |s| s.to_string())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn describe_track(t: &TrackEntry) -> String {
    // Strings from the file are escaped, so that a file cannot put control codes on a terminal.
    let mut s = format!(
        "Track {}: {} {}",
        t.number,
        t.kind().as_str(),
        t.codec_id.escape_debug()
    );
    if let Some(v) = &t.video {
        s += &format!(" {}x{}", v.pixel_width, v.pixel_height);
    }
    if let Some(a) = &t.audio {
        s += &format!(" {} Hz {} ch", a.sampling_frequency, a.channels);
        if let Some(b) = a.bit_depth {
            s += &format!(" {b} bit");
        }
    }
    if let Some(n) = &t.name {
        s += &format!(", name {n:?}");
    }
    if let Some(l) = &t.language {
        s += &format!(", language {}", l.escape_debug());
    }
    if let Some(h) = &t.header_removal {
        s += &format!(", header stripping {}", hex(h));
    }
    if let Some(d) = t.default_duration_ns {
        s += &format!(", DefaultDuration {d} ns");
    }
    if let Some(d) = t.codec_delay_ns {
        s += &format!(", CodecDelay {d} ns");
    }
    if let Some(p) = &t.codec_private {
        s += &format!(", CodecPrivate {} bytes", p.len());
    }
    s += &format!(", UID {}", t.uid);
    s
}

fn describe_frame(f: &Frame) -> String {
    let mut s = format!(
        "{} @{} track {} timestamp {} ({} ms)",
        if f.lace_count > 1 {
            "Laced frame"
        } else {
            "Frame"
        },
        f.span.offset,
        f.track,
        f.timecode,
        f.time_ns.div_euclid(1_000_000)
    );
    if f.keyframe {
        s += " key";
    }
    if f.discardable {
        s += " discardable";
    }
    if f.invisible {
        s += " invisible";
    }
    if let Some(d) = f.duration_ns {
        s += &format!(" duration {d} ns");
    }
    if f.lace_count > 1 {
        s += &format!(" lace {}/{}", f.lace_index + 1, f.lace_count);
    }
    s += &format!(", {} bytes", f.data.len());
    s
}

/// Memory: one entry per declared track (the demuxer bounds a Tracks element to
/// `Limits::max_tracks` entries; a long GetMedia stream repeats the same numbers).
#[derive(Debug, Default)]
struct Summary {
    documents: u64,
    clusters: u64,
    undeclared_frames: u64,
    tracks: BTreeMap<u64, TrackSummary>,
    /// The current document's track numbers and kinds.
    kinds: BTreeMap<u64, TrackKind>,
}

#[derive(Debug, Serialize)]
struct JsonSummary {
    documents: u64,
    clusters: u64,
    undeclared_frames: u64,
    tracks: Vec<TrackSummary>,
}

#[derive(Debug, Serialize)]
struct TrackSummary {
    number: u64,
    codec_id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    width: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    height: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sample_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    channels: Option<u64>,
    frames: u64,
    keyframes: u64,
    first_ms: Option<i64>,
    last_ms: Option<i64>,
}

impl TrackSummary {
    fn new(number: u64) -> Self {
        TrackSummary {
            number,
            codec_id: String::new(),
            kind: TrackKind::Other.as_str(),
            width: None,
            height: None,
            sample_rate: None,
            channels: None,
            frames: 0,
            keyframes: 0,
            first_ms: None,
            last_ms: None,
        }
    }
}

impl Summary {
    fn add(&mut self, ev: Event) {
        match ev {
            Event::EbmlHeader { .. } => {
                self.documents += 1;
                self.kinds.clear();
            }
            Event::Tracks { tracks, .. } => {
                for t in tracks {
                    self.kinds.insert(t.number, t.kind());
                    let s = self
                        .tracks
                        .entry(t.number)
                        .or_insert_with(|| TrackSummary::new(t.number));
                    if s.codec_id.is_empty() {
                        s.codec_id = t.codec_id.clone();
                        s.kind = t.kind().as_str();
                        s.width = t.video.map(|v| v.pixel_width);
                        s.height = t.video.map(|v| v.pixel_height);
                        s.sample_rate = t.audio.map(|a| a.sampling_frequency);
                        s.channels = t.audio.map(|a| a.channels);
                    }
                }
            }
            Event::ClusterStart { .. } => self.clusters += 1,
            Event::Frame(f) => {
                let Some(kind) = self.kinds.get(&f.track) else {
                    self.undeclared_frames += 1;
                    return;
                };
                let intra_only = matches!(kind, TrackKind::Audio | TrackKind::Subtitle);
                let ms = f.time_ns.div_euclid(1_000_000);
                let Some(s) = self.tracks.get_mut(&f.track) else {
                    return;
                };
                s.frames += 1;
                if f.keyframe || intra_only {
                    s.keyframes += 1;
                }
                s.first_ms.get_or_insert(ms);
                s.last_ms = Some(ms);
            }
            _ => {}
        }
    }

    fn finish(self) -> JsonSummary {
        JsonSummary {
            documents: self.documents,
            clusters: self.clusters,
            undeclared_frames: self.undeclared_frames,
            tracks: self.tracks.into_values().collect(),
        }
    }
}
