//! `vigil camera add|list|remove`: the server's RTSP cameras, through Vigil's own API
//! operations (`PutCamera`, `ListCameras`, `DeleteCamera`; docs/cameras.md). Vigil only: KVS
//! has no such operations.
//!
//! `list` prints a table of each camera's state, counters, clock and last error, or the
//! service's JSON with `--json`.

use std::io::Write;

use anyhow::Context;
use clap::{Args as ClapArgs, Subcommand};
use serde_json::{Map, Value, json};

use crate::camera::RtpTransport;
use crate::client::{Client, ClientArgs};
use crate::stream_cmd::explain;

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    client: ClientArgs,
    /// Print the service's JSON response instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Add a camera, or replace one added with this command: the server records it from
    /// now on, and again after a restart.
    Add {
        /// The camera's name (1-64 letters, digits, `_`, `.`, `-`).
        name: String,
        /// `rtsp://[user:password@]host[:port]/path`.
        url: String,
        /// The stream it records into [default: its name].
        #[arg(long)]
        stream: Option<String>,
        /// How RTP comes: interleaved in the RTSP connection (tcp) or over udp.
        #[arg(long, value_enum, default_value = "tcp")]
        transport: TransportArg,
        /// Do not create the stream if it does not exist.
        #[arg(long)]
        no_create_stream: bool,
        /// The retention of a stream it creates, in hours.
        #[arg(long, value_name = "HOURS", default_value_t = 24)]
        retention_hours: u64,
    },
    /// List the cameras and their status.
    List,
    /// Stop recording a camera added with `vigil camera add`.
    Remove { name: String },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum TransportArg {
    Tcp,
    Udp,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: Args) -> anyhow::Result<()> {
    let client = Client::from_args(&args.client)?;
    let out = match &args.command {
        Command::Add {
            name,
            url,
            stream,
            transport,
            no_create_stream,
            retention_hours,
        } => {
            let mut input = Map::new();
            input.insert("Name".into(), json!(name));
            input.insert("Url".into(), json!(url));
            if let Some(s) = stream {
                input.insert("Stream".into(), json!(s));
            }
            let transport = match transport {
                TransportArg::Tcp => RtpTransport::Tcp,
                TransportArg::Udp => RtpTransport::Udp,
            };
            input.insert("Transport".into(), json!(transport));
            input.insert("CreateStream".into(), json!(!no_create_stream));
            input.insert("RetentionInHours".into(), json!(retention_hours));
            client
                .json("/vigil/putCamera", &Value::Object(input))
                .await
                .map_err(explain)?
        }
        Command::List => client
            .json("/vigil/listCameras", &json!({}))
            .await
            .map_err(explain)?,
        Command::Remove { name } => client
            .json("/vigil/deleteCamera", &json!({ "Name": name }))
            .await
            .map_err(explain)?,
    };
    let mut stdout = std::io::stdout().lock();
    if args.json {
        writeln!(stdout, "{}", serde_json::to_string_pretty(&out)?)?;
    } else if matches!(args.command, Command::List) {
        write_table(&mut stdout, &out)?;
    }
    Ok(())
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".to_owned(),
        Some(other) => other.to_string(),
    }
}

fn write_table(out: &mut impl Write, list: &Value) -> std::io::Result<()> {
    let cameras = list
        .get("Cameras")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    writeln!(
        out,
        "{:<20} {:<20} {:<10} {:>8} {:>9} {:>10} {:>9} LAST ERROR",
        "NAME", "STREAM", "STATE", "FRAMES", "FRAGMENTS", "CLOCK ms", "RATE"
    )?;
    for c in cameras {
        let status = c.get("Status");
        let field = |k: &str| status.and_then(|s| s.get(k));
        let clock = field("ClockErrorMs")
            .and_then(Value::as_f64)
            .map_or("-".to_owned(), |v| format!("{v:.1}"));
        let rate = field("CameraClockRate")
            .and_then(Value::as_f64)
            .map_or("-".to_owned(), |v| format!("{v:.4}"));
        writeln!(
            out,
            "{:<20} {:<20} {:<10} {:>8} {:>9} {:>10} {:>9} {}",
            text(c.get("Name")),
            text(c.get("Stream")),
            text(field("State")),
            text(field("Frames")),
            text(field("Fragments")),
            clock,
            rate,
            text(field("LastError")),
        )?;
    }
    Ok(())
}
