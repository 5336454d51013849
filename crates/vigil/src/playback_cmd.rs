//! `vigil clip`, `vigil hls-url`, `vigil dash-url` and `vigil images`: the archived-media
//! calls (GetClip, GetHLSStreamingSessionURL, GetDASHStreamingSessionURL, GetImages) from the
//! command line, against Vigil or KVS.
//!
//! Times are RFC 3339 (`2026-12-01T08:00:00Z`), `now`, or an offset from now (`-10m`, `-30s`,
//! `-2h`); they select by producer time unless `--server-time` is given.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use base64::Engine;
use clap::{Args as ClapArgs, ValueEnum};
use http_body_util::BodyExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value, json};

use crate::client::{Client, ClientArgs};
use crate::stream_cmd::explain;

/// A time on the command line → seconds since the epoch.
pub fn parse_when(text: &str) -> anyhow::Result<f64> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    if text == "now" {
        return Ok(now);
    }
    if let Some(rel) = text.strip_prefix('-') {
        let (num, unit) =
            rel.split_at(rel.find(|c: char| !c.is_ascii_digit()).unwrap_or(rel.len()));
        let n: f64 = num
            .parse()
            .with_context(|| format!("{text:?}: expected -N followed by s, m, h or d"))?;
        let scale = match unit {
            "s" | "" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => bail!("{text:?}: the unit must be s, m, h or d"),
        };
        return Ok(now - n * scale);
    }
    Ok(crate::put::parse_time_ms(text)? as f64 / 1e3)
}

#[derive(Debug, ClapArgs)]
pub struct RangeArgs {
    /// Start of the range: RFC 3339, `now`, or `-10m` style offsets from now.
    #[arg(long)]
    start: String,
    /// End of the range (same forms).
    #[arg(long, default_value = "now")]
    end: String,
    /// Select by the time the server received fragments rather than the producer's time.
    #[arg(long)]
    server_time: bool,
}

impl RangeArgs {
    fn range(&self) -> anyhow::Result<Value> {
        let (start, end) = (parse_when(&self.start)?, parse_when(&self.end)?);
        if end <= start {
            bail!("--end must be after --start");
        }
        Ok(json!({"StartTimestamp": start, "EndTimestamp": end}))
    }

    fn origin(&self) -> &'static str {
        if self.server_time {
            "SERVER_TIMESTAMP"
        } else {
            "PRODUCER_TIMESTAMP"
        }
    }
}

#[derive(Debug, ClapArgs)]
pub struct ClipArgs {
    stream: String,
    #[command(flatten)]
    range: RangeArgs,
    /// The MP4 file to write [default: STREAM.mp4].
    #[arg(long, short)]
    output: Option<PathBuf>,
    #[command(flatten)]
    client: ClientArgs,
}

pub fn clip(args: ClipArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let client = Client::from_args(&args.client)?;
        let data = client
            .data_client(&args.stream, "GET_CLIP")
            .await
            .map_err(explain)?;
        let input = json!({
            "StreamName": args.stream,
            "ClipFragmentSelector": {
                "FragmentSelectorType": args.range.origin(),
                "TimestampRange": args.range.range()?,
            }
        });
        let response = data.call("/getClip", &input).await.map_err(explain)?;
        let path = args
            .output
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{}.mp4", args.stream)));
        let mut file = std::fs::File::create(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let bar = ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        let mut body = response.into_body();
        let mut total = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.context("reading the clip")?;
            if let Ok(data) = frame.into_data() {
                file.write_all(&data)
                    .with_context(|| format!("writing {}", path.display()))?;
                total += data.len() as u64;
                bar.set_position(total);
            }
        }
        bar.finish_and_clear();
        file.sync_all().ok();
        eprintln!("{}: {total} bytes", path.display());
        Ok(())
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    Live,
    LiveReplay,
    OnDemand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Container {
    Fmp4,
    Ts,
}

#[derive(Debug, ClapArgs)]
pub struct UrlArgs {
    stream: String,
    /// LIVE follows the live edge; LIVE_REPLAY starts at --start and follows; ON_DEMAND plays
    /// --start to --end.
    #[arg(long, value_enum, default_value = "live")]
    mode: Mode,
    /// Start (LIVE_REPLAY, ON_DEMAND): RFC 3339, `now`, or `-10m` style.
    #[arg(long)]
    start: Option<String>,
    /// End (ON_DEMAND).
    #[arg(long)]
    end: Option<String>,
    /// Select by server time rather than producer time.
    #[arg(long)]
    server_time: bool,
    /// How long the URL works, in seconds (300 to 43200).
    #[arg(long, default_value_t = 3600)]
    expires: u64,
    /// HLS segment container (HLS only).
    #[arg(long, value_enum, default_value = "fmp4")]
    container: Container,
    #[command(flatten)]
    client: ClientArgs,
}

/// GetHLSStreamingSessionURL (`dash` false) or GetDASHStreamingSessionURL: prints the URL.
pub fn session_url(args: UrlArgs, dash: bool) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let client = Client::from_args(&args.client)?;
        let (api, path, selector_key, url_key) = if dash {
            (
                "GET_DASH_STREAMING_SESSION_URL",
                "/getDASHStreamingSessionURL",
                "DASHFragmentSelector",
                "DASHStreamingSessionURL",
            )
        } else {
            (
                "GET_HLS_STREAMING_SESSION_URL",
                "/getHLSStreamingSessionURL",
                "HLSFragmentSelector",
                "HLSStreamingSessionURL",
            )
        };
        let data = client
            .data_client(&args.stream, api)
            .await
            .map_err(explain)?;
        let mut input = Map::new();
        input.insert("StreamName".into(), json!(args.stream));
        input.insert(
            "PlaybackMode".into(),
            json!(match args.mode {
                Mode::Live => "LIVE",
                Mode::LiveReplay => "LIVE_REPLAY",
                Mode::OnDemand => "ON_DEMAND",
            }),
        );
        input.insert("Expires".into(), json!(args.expires));
        if !dash {
            input.insert(
                "ContainerFormat".into(),
                json!(match args.container {
                    Container::Fmp4 => "FRAGMENTED_MP4",
                    Container::Ts => "MPEG_TS",
                }),
            );
        }
        let origin = if args.server_time {
            "SERVER_TIMESTAMP"
        } else {
            "PRODUCER_TIMESTAMP"
        };
        let mut range = Map::new();
        if let Some(s) = &args.start {
            range.insert("StartTimestamp".into(), json!(parse_when(s)?));
        }
        if let Some(e) = &args.end {
            range.insert("EndTimestamp".into(), json!(parse_when(e)?));
        }
        match (args.mode, range.is_empty()) {
            (Mode::Live, true) => {}
            (Mode::Live, false) => bail!("--start and --end are for live-replay and on-demand"),
            (_, true) => bail!("live-replay and on-demand need --start"),
            (_, false) => {
                input.insert(
                    selector_key.into(),
                    json!({"FragmentSelectorType": origin, "TimestampRange": range}),
                );
            }
        }
        let out = data
            .json(path, &Value::Object(input))
            .await
            .map_err(explain)?;
        let url = out
            .get(url_key)
            .and_then(Value::as_str)
            .with_context(|| format!("the response has no {url_key}"))?;
        println!("{url}");
        Ok(())
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImageFormat {
    Jpeg,
    Png,
}

#[derive(Debug, ClapArgs)]
pub struct ImagesArgs {
    stream: String,
    #[command(flatten)]
    range: RangeArgs,
    /// One image every this many milliseconds (at least 200).
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    interval: u64,
    #[arg(long, value_enum, default_value = "jpeg")]
    format: ImageFormat,
    /// Width in pixels (the height follows the aspect ratio unless given).
    #[arg(long)]
    width: Option<u32>,
    #[arg(long)]
    height: Option<u32>,
    /// JPEG quality, 1 to 100.
    #[arg(long)]
    quality: Option<u32>,
    /// The directory to write the images to (created if missing).
    #[arg(long, short, default_value = ".")]
    output: PathBuf,
    #[command(flatten)]
    client: ClientArgs,
}

pub fn images(args: ImagesArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let client = Client::from_args(&args.client)?;
        let data = client
            .data_client(&args.stream, "GET_IMAGES")
            .await
            .map_err(explain)?;
        std::fs::create_dir_all(&args.output)
            .with_context(|| format!("cannot create {}", args.output.display()))?;
        let range = args.range.range()?;
        let mut base = Map::new();
        base.insert("StreamName".into(), json!(args.stream));
        base.insert(
            "ImageSelectorType".into(),
            json!(if args.range.server_time {
                "SERVER_TIMESTAMP"
            } else {
                "PRODUCER_TIMESTAMP"
            }),
        );
        base.insert(
            "StartTimestamp".into(),
            range.get("StartTimestamp").cloned().unwrap_or_default(),
        );
        base.insert(
            "EndTimestamp".into(),
            range.get("EndTimestamp").cloned().unwrap_or_default(),
        );
        base.insert("SamplingInterval".into(), json!(args.interval));
        let (format, ext) = match args.format {
            ImageFormat::Jpeg => ("JPEG", "jpg"),
            ImageFormat::Png => ("PNG", "png"),
        };
        base.insert("Format".into(), json!(format));
        if let Some(w) = args.width {
            base.insert("WidthPixels".into(), json!(w));
        }
        if let Some(h) = args.height {
            base.insert("HeightPixels".into(), json!(h));
        }
        if let Some(q) = args.quality {
            base.insert("FormatConfig".into(), json!({"JPEGQuality": q.to_string()}));
        }
        let bar = ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {pos} image(s) {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        let (mut written, mut missing) = (0u64, 0u64);
        let mut token: Option<String> = None;
        loop {
            let mut input = base.clone();
            if let Some(t) = &token {
                input.insert("NextToken".into(), json!(t));
            }
            let page = data
                .json("/getImages", &Value::Object(input))
                .await
                .map_err(explain)?;
            for image in page
                .get("Images")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let ts = image
                    .get("TimeStamp")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0);
                match image.get("ImageContent").and_then(Value::as_str) {
                    Some(b64) => {
                        let bytes = base64::engine::general_purpose::STANDARD
                            .decode(b64)
                            .context("an image is not valid base64")?;
                        let name = args.output.join(format!("{}-{:.3}.{ext}", args.stream, ts));
                        std::fs::write(&name, bytes)
                            .with_context(|| format!("writing {}", name.display()))?;
                        written += 1;
                        bar.inc(1);
                    }
                    None => {
                        missing += 1;
                        let error = image.get("Error").and_then(Value::as_str).unwrap_or("?");
                        bar.set_message(format!(
                            "{missing} without an image (last: {error} at {ts:.3})"
                        ));
                    }
                }
            }
            token = page
                .get("NextToken")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        bar.finish_and_clear();
        eprintln!(
            "{written} image(s) written to {}{}",
            args.output.display(),
            if missing > 0 {
                format!("; {missing} sample time(s) had no image (NO_MEDIA or MEDIA_ERROR)")
            } else {
                String::new()
            }
        );
        if written == 0 && missing > 0 {
            bail!("no image in the range");
        }
        Ok(())
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn times() {
        let now = parse_when("now").unwrap();
        let ten = parse_when("-10m").unwrap();
        assert!((now - ten - 600.0).abs() < 1.0);
        assert!((now - parse_when("-2h").unwrap() - 7200.0).abs() < 1.0);
        assert_eq!(parse_when("2026-12-01T08:00:00Z").unwrap(), 1_796_112_000.0);
        assert!(parse_when("-10y").is_err());
        assert!(parse_when("soon").is_err());
    }
}
