//! `vigil keys`: access keys beyond root, each limited by a policy (operations and stream-name
//! patterns). The keys live in `DATA_DIR/auth/keys.json` (mode 0600), shared with a running
//! server: a key created or revoked here is seen by the server's next request.

use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;
use vigil_auth::{KeyInfo, KeyStore, NewKey, Policy, RootStatus};

/// Arguments of `vigil keys`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The data directory of the server.
    #[arg(
        long,
        env = "VIGIL_DATA_DIR",
        value_name = "DIR",
        default_value = "vigil-data",
        global = true
    )]
    pub data_dir: PathBuf,

    #[command(subcommand)]
    pub command: KeysCommand,
}

/// What to do with keys.
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Create a key; its secret is printed once.
    Create {
        /// A name for people, e.g. "front-door camera".
        #[arg(long)]
        name: String,
        /// What it is for.
        #[arg(long, default_value = "")]
        description: String,
        /// Operations it may call (KVS names; Rekognition and Kinesis actions with their
        /// prefix, `rekognition:IndexFaces`, `kinesis:Get*`; '*' and '?' patterns),
        /// comma-separated or repeated, e.g. --allow PutMedia,DescribeStream,GetDataEndpoint.
        #[arg(
            long = "allow",
            value_name = "OPERATION",
            value_delimiter = ',',
            required = true
        )]
        operations: Vec<String>,
        /// Streams it may use (name patterns), e.g. --streams 'cam-*'.
        #[arg(
            long = "streams",
            value_name = "PATTERN",
            value_delimiter = ',',
            default_value = "*"
        )]
        streams: Vec<String>,
        /// Print the key as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the keys (never their secrets).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key: requests signed with it fail from now on.
    Revoke {
        /// Its access key id.
        access_key_id: String,
    },
    /// Delete a key from the key file.
    Delete {
        /// Its access key id.
        access_key_id: String,
    },
}

#[derive(Serialize)]
struct KeyJson<'a> {
    access_key_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_access_key: Option<&'a str>,
    name: &'a str,
    description: &'a str,
    operations: &'a [String],
    streams: &'a [String],
    created_ms: u64,
    revoked_ms: Option<u64>,
}

fn key_json<'a>(k: &'a KeyInfo, secret: Option<&'a str>) -> KeyJson<'a> {
    KeyJson {
        access_key_id: &k.access_key_id,
        secret_access_key: secret,
        name: &k.name,
        description: &k.description,
        operations: &k.policy.operations,
        streams: &k.policy.streams,
        created_ms: k.created_ms,
        revoked_ms: k.revoked_ms,
    }
}

/// Runs `vigil keys`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let (keys, root) = KeyStore::open(&args.data_dir, None)
        .with_context(|| format!("opening the key store in {}", args.data_dir.display()))?;
    if let RootStatus::Generated {
        access_key_id,
        secret,
    } = &root
    {
        eprintln!(
            "generated root credentials (shown once): access key id {access_key_id}, secret \
             access key {}",
            secret.expose()
        );
    }
    match args.command {
        KeysCommand::Create {
            name,
            description,
            operations,
            streams,
            json,
        } => {
            let created = keys
                .create_key(NewKey {
                    name,
                    description,
                    policy: Policy {
                        operations,
                        streams,
                    },
                })
                .context("creating the key")?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&key_json(
                        &created.info,
                        Some(created.secret.expose())
                    ))?
                );
            } else {
                println!("access key id:     {}", created.info.access_key_id);
                println!("secret access key: {}", created.secret.expose());
                println!("(the secret is shown only now)");
            }
        }
        KeysCommand::List { json } => {
            let list = keys.list_keys();
            if json {
                let v: Vec<KeyJson<'_>> = list.iter().map(|k| key_json(k, None)).collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if list.is_empty() {
                println!("no keys besides root");
            } else {
                println!(
                    "{:<24} {:<8} {:<24} {:<32} streams",
                    "access key id", "state", "name", "operations"
                );
                for k in &list {
                    println!(
                        "{:<24} {:<8} {:<24} {:<32} {}",
                        k.access_key_id,
                        if k.is_revoked() { "revoked" } else { "active" },
                        k.name,
                        k.policy.operations.join(","),
                        k.policy.streams.join(",")
                    );
                }
            }
        }
        KeysCommand::Revoke { access_key_id } => {
            keys.revoke_key(&access_key_id)
                .with_context(|| format!("revoking {access_key_id}"))?;
            println!("revoked {access_key_id}");
        }
        KeysCommand::Delete { access_key_id } => {
            keys.delete_key(&access_key_id)
                .with_context(|| format!("deleting {access_key_id}"))?;
            println!("deleted {access_key_id}");
        }
    }
    Ok(())
}
