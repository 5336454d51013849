//! `vigil stream ...`: the control plane from the command line (create, list, describe,
//! update, delete, retention, tags), against Vigil or KVS.
//!
//! Output is a table (or `key: value` lines for one stream) by default, or the service's own
//! JSON with `--json`. Commands that need a stream's ARN or version (delete, update,
//! retention) read it with DescribeStream first, so the user names streams only.

use std::io::Write;

use anyhow::{Context, bail};
use clap::{Args as ClapArgs, Subcommand};
use serde_json::{Map, Value, json};

use crate::client::{CallError, Client, ClientArgs};

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
    /// Create a stream.
    Create {
        /// The stream's name (1-256 characters: letters, digits, `_`, `.`, `-`).
        name: String,
        /// How long fragments are kept, in hours (0: not stored, live only).
        #[arg(long, default_value_t = 24, value_name = "HOURS")]
        retention_hours: u64,
        /// The media type, as a MIME type (`video/h264`, `video/h264,audio/aac`).
        #[arg(long)]
        media_type: Option<String>,
        /// The device that writes to it.
        #[arg(long)]
        device_name: Option<String>,
        /// The KMS key id recorded for the stream's encryption.
        #[arg(long)]
        kms_key_id: Option<String>,
        /// A tag, `KEY=VALUE` (repeatable).
        #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
        tags: Vec<(String, String)>,
    },
    /// List streams.
    List {
        /// Only names starting with this.
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Show a stream.
    Describe { name: String },
    /// Change a stream's media type or device name.
    Update {
        name: String,
        #[arg(long)]
        media_type: Option<String>,
        #[arg(long)]
        device_name: Option<String>,
    },
    /// Delete a stream and its media.
    Delete { name: String },
    /// Set how long a stream keeps its fragments.
    Retention {
        name: String,
        /// The new retention in hours (the change applies to fragments stored from now on).
        #[arg(long, value_name = "HOURS")]
        hours: u64,
    },
    /// Add or change tags: `vigil stream tag cam1 site=home floor=1`.
    Tag {
        name: String,
        #[arg(value_name = "KEY=VALUE", required = true, value_parser = parse_tag)]
        tags: Vec<(String, String)>,
    },
    /// Remove tags by key.
    Untag {
        name: String,
        #[arg(value_name = "KEY", required = true)]
        keys: Vec<String>,
    },
    /// List a stream's tags.
    Tags { name: String },
}

fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
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
        Command::Create {
            name,
            retention_hours,
            media_type,
            device_name,
            kms_key_id,
            tags,
        } => {
            let mut input = Map::new();
            input.insert("StreamName".into(), json!(name));
            input.insert("DataRetentionInHours".into(), json!(retention_hours));
            insert_opt(&mut input, "MediaType", media_type);
            insert_opt(&mut input, "DeviceName", device_name);
            insert_opt(&mut input, "KmsKeyId", kms_key_id);
            if !tags.is_empty() {
                input.insert("Tags".into(), tag_map(tags));
            }
            let out = call(&client, "/createStream", Value::Object(input)).await?;
            if !args.json {
                println!("created {name}");
                if let Some(arn) = out.get("StreamARN").and_then(Value::as_str) {
                    println!("{arn}");
                }
                return Ok(());
            }
            out
        }
        Command::List { prefix } => {
            let mut all = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let mut input = Map::new();
                input.insert("MaxResults".into(), json!(10000));
                if let Some(p) = prefix {
                    input.insert(
                        "StreamNameCondition".into(),
                        json!({"ComparisonOperator": "BEGINS_WITH", "ComparisonValue": p}),
                    );
                }
                if let Some(t) = &token {
                    input.insert("NextToken".into(), json!(t));
                }
                let page = call(&client, "/listStreams", Value::Object(input)).await?;
                if let Some(list) = page.get("StreamInfoList").and_then(Value::as_array) {
                    all.extend(list.iter().cloned());
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
            if !args.json {
                print_streams(&all);
                return Ok(());
            }
            json!({ "StreamInfoList": all })
        }
        Command::Describe { name } => {
            let out = describe(&client, name).await?;
            if !args.json {
                print_stream(&out);
                return Ok(());
            }
            json!({ "StreamInfo": out })
        }
        Command::Update {
            name,
            media_type,
            device_name,
        } => {
            if media_type.is_none() && device_name.is_none() {
                bail!("nothing to update: give --media-type and/or --device-name");
            }
            let info = describe(&client, name).await?;
            let mut input = Map::new();
            input.insert("StreamName".into(), json!(name));
            input.insert("CurrentVersion".into(), field(&info, "Version"));
            insert_opt(&mut input, "MediaType", media_type);
            insert_opt(&mut input, "DeviceName", device_name);
            call(&client, "/updateStream", Value::Object(input)).await?
        }
        Command::Delete { name } => {
            let info = describe(&client, name).await?;
            call(
                &client,
                "/deleteStream",
                json!({"StreamARN": field(&info, "StreamARN"), "CurrentVersion": field(&info, "Version")}),
            )
            .await?
        }
        Command::Retention { name, hours } => {
            let info = describe(&client, name).await?;
            let current = info
                .get("DataRetentionInHours")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            if current == *hours {
                if !args.json {
                    println!("{name}: retention is already {hours} h");
                }
                return Ok(());
            }
            let (operation, change) = if *hours > current {
                ("INCREASE_DATA_RETENTION", hours - current)
            } else {
                ("DECREASE_DATA_RETENTION", current - hours)
            };
            call(
                &client,
                "/updateDataRetention",
                json!({
                    "StreamName": name,
                    "CurrentVersion": field(&info, "Version"),
                    "Operation": operation,
                    "DataRetentionChangeInHours": change,
                }),
            )
            .await?
        }
        Command::Tag { name, tags } => {
            call(
                &client,
                "/tagStream",
                json!({"StreamName": name, "Tags": tag_map(tags)}),
            )
            .await?
        }
        Command::Untag { name, keys } => {
            call(
                &client,
                "/untagStream",
                json!({"StreamName": name, "TagKeyList": keys}),
            )
            .await?
        }
        Command::Tags { name } => {
            let mut tags = Map::new();
            let mut token: Option<String> = None;
            loop {
                let mut input = Map::new();
                input.insert("StreamName".into(), json!(name));
                if let Some(t) = &token {
                    input.insert("NextToken".into(), json!(t));
                }
                let input = Value::Object(input);
                let page = call(&client, "/listTagsForStream", input).await?;
                if let Some(map) = page.get("Tags").and_then(Value::as_object) {
                    tags.extend(map.clone());
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
            if !args.json {
                let rows: Vec<Vec<String>> = tags
                    .iter()
                    .map(|(k, v)| vec![k.clone(), v.as_str().unwrap_or_default().to_owned()])
                    .collect();
                print_table(&["KEY", "VALUE"], &rows);
                return Ok(());
            }
            json!({ "Tags": tags })
        }
    };
    if args.json {
        let mut stdout = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut stdout, &out)?;
        writeln!(stdout)?;
    }
    Ok(())
}

/// A field of a JSON object, `null` when missing.
fn field(v: &Value, key: &str) -> Value {
    v.get(key).cloned().unwrap_or(Value::Null)
}

fn insert_opt(map: &mut Map<String, Value>, key: &str, value: &Option<String>) {
    if let Some(v) = value {
        map.insert(key.to_owned(), json!(v));
    }
}

fn tag_map(tags: &[(String, String)]) -> Value {
    Value::Object(tags.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

/// One call, its AWS error turned into a one-line message.
async fn call(client: &Client, path: &str, input: Value) -> anyhow::Result<Value> {
    client.json(path, &input).await.map_err(explain)
}

/// DescribeStream's `StreamInfo`, the AWS error kept for callers that act on its kind (a
/// missing stream to create).
pub async fn stream_info(client: &Client, name: &str) -> Result<Value, CallError> {
    let out = client
        .json("/describeStream", &json!({"StreamName": name}))
        .await?;
    out.get("StreamInfo").cloned().ok_or_else(|| {
        CallError::Transport(anyhow::anyhow!("DescribeStream returned no StreamInfo"))
    })
}

/// DescribeStream's `StreamInfo`, errors explained.
pub async fn describe(client: &Client, name: &str) -> anyhow::Result<Value> {
    stream_info(client, name).await.map_err(explain)
}

/// An error as the user reads it: the AWS name and message, with a hint for the common ones.
pub fn explain(e: CallError) -> anyhow::Error {
    let hint = match e.kind() {
        Some("ResourceNotFoundException") => " (no such stream; `vigil stream list` shows them)",
        Some("NotAuthorizedException" | "UnrecognizedClientException") => {
            " (check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or --profile)"
        }
        Some("InvalidSignatureException") => " (check the secret key and the clock)",
        _ => "",
    };
    anyhow::anyhow!("{e}{hint}")
}

fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Epoch seconds (as KVS sends them) as RFC 3339.
fn time_text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_f64)
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s as i64).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| text(v, key))
}

fn print_streams(list: &[Value]) {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            vec![
                text(s, "StreamName"),
                text(s, "Status"),
                text(s, "MediaType"),
                format!("{} h", text(s, "DataRetentionInHours")),
                time_text(s, "CreationTime"),
            ]
        })
        .collect();
    print_table(
        &["NAME", "STATUS", "MEDIA TYPE", "RETENTION", "CREATED"],
        &rows,
    );
}

fn print_stream(s: &Value) {
    for (label, key) in [
        ("name", "StreamName"),
        ("arn", "StreamARN"),
        ("status", "Status"),
        ("media type", "MediaType"),
        ("device", "DeviceName"),
        ("kms key", "KmsKeyId"),
        ("version", "Version"),
    ] {
        println!("{label:<11} {}", text(s, key));
    }
    println!("{:<11} {} h", "retention", text(s, "DataRetentionInHours"));
    println!("{:<11} {}", "created", time_text(s, "CreationTime"));
}

/// Prints rows under headers, columns aligned.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            s.push_str(cell);
            if i + 1 < widths.len() {
                s.extend(std::iter::repeat_n(
                    ' ',
                    w.saturating_sub(cell.chars().count()),
                ));
            }
        }
        println!("{}", s.trim_end());
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
}
