//! `vigil serve`: the server.
//!
//! Startup: settings from flags, environment and the configuration file (in that order of
//! precedence, [`crate::config`]); the listener is bound first (so a port in use fails fast);
//! then the fragment store is opened (recovering it after a crash, creating the default master
//! key on first start), the key store is opened (generating and logging root credentials on
//! first start unless `VIGIL_ACCESS_KEY_ID`/`VIGIL_SECRET_ACCESS_KEY` are set), TLS is set up
//! when asked for, and only then does `GET /health` answer: a 200 means ready.
//!
//! Shutdown, on SIGINT or SIGTERM: stop accepting connections; let PutMedia sessions finish
//! the fragments they are receiving and send their PERSISTED acks (at most
//! `--shutdown-timeout`); close the remaining connections (live GetMedia readers end there);
//! make the store's index durable; exit 0.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::ArgMatches;
use tokio::net::TcpListener;
use tracing::{info, warn};
use vigil_api_common::{Anonymous, ApiConfig, Authenticator};
use vigil_server::{ServerConfig, ServerState};
use vigil_store::{Store, SystemClock};

use crate::config::{FileConfig, defaulted};
use crate::logging::{self, LogFormat};
use crate::storage::StoreArgs;
use crate::tls;

/// The address `vigil serve` listens on unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4567";

/// Arguments of `vigil serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A TOML configuration file (docs/configuration.md). Flags and environment variables
    /// override what it sets.
    #[arg(long, env = "VIGIL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address to listen on, as IP:PORT (e.g. 0.0.0.0:4567 or [::]:4567). Port 0 picks a free
    /// port; the address actually bound is logged at startup.
    #[arg(
        long,
        env = "VIGIL_LISTEN",
        value_name = "IP:PORT",
        default_value = DEFAULT_LISTEN,
        value_parser = parse_listen,
    )]
    pub listen: SocketAddr,

    /// Format of the log lines written to stderr. The log filter comes from RUST_LOG
    /// (default: info).
    #[arg(long, env = "VIGIL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub store: StoreArgs,

    /// The AWS region the server answers as: ARNs carry it. Clients may sign for any region
    /// unless --strict-region is given.
    #[arg(
        long,
        env = "VIGIL_REGION",
        value_name = "REGION",
        default_value = "us-east-1"
    )]
    pub region: String,

    /// Refuse signatures scoped to another region than --region
    /// (InvalidSignatureException, as AWS answers). Default: any region is accepted, so
    /// clients left at their SDK's default region work.
    #[arg(long, env = "VIGIL_STRICT_REGION")]
    pub strict_region: bool,

    /// The URL clients reach the server at (e.g. https://nvr.home.arpa:4567), returned by
    /// GetDataEndpoint and in playback URLs. Default: the scheme and Host of each request.
    #[arg(long, env = "VIGIL_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,

    /// The 12-digit account id in ARNs.
    #[arg(
        long,
        env = "VIGIL_ACCOUNT_ID",
        value_name = "DIGITS",
        default_value = vigil_api_common::config::DEFAULT_ACCOUNT_ID
    )]
    pub account_id: String,

    /// TLS certificate chain (PEM). With --tls-key, the port speaks HTTPS (HTTP/1.1).
    #[arg(long, env = "VIGIL_TLS_CERT", value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// TLS private key (PEM) of --tls-cert.
    #[arg(long, env = "VIGIL_TLS_KEY", value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Speak HTTPS with a certificate from a local CA created in the data directory
    /// (tls/ca.pem is what producers trust; docs/tls.md).
    #[arg(long, env = "VIGIL_TLS_SELF_SIGNED", conflicts_with = "tls_cert")]
    pub tls_self_signed: bool,

    /// Extra host names or addresses for the --tls-self-signed certificate (repeatable, or
    /// comma-separated).
    #[arg(
        long = "tls-name",
        env = "VIGIL_TLS_NAMES",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub tls_names: Vec<String>,

    /// Accept requests without signatures, as the root user. For local development only.
    #[arg(long, env = "VIGIL_ALLOW_ANONYMOUS")]
    pub allow_anonymous: bool,

    /// How long shutdown waits for PutMedia sessions to finish their fragments, and for
    /// other requests to end, in seconds.
    #[arg(
        long,
        env = "VIGIL_SHUTDOWN_TIMEOUT",
        value_name = "SECS",
        default_value_t = 30
    )]
    pub shutdown_timeout: u64,

    /// Free space kept on the data directory's disk: below it the oldest segments are deleted
    /// (whole segments, oldest data first), and when only those being written are left,
    /// ingest fails with a storage error until space comes back (docs/storage.md). Bytes, or
    /// with a unit: 512MiB, 10GiB, 2GB.
    #[arg(
        long,
        env = "VIGIL_MIN_FREE_BYTES",
        value_name = "SIZE",
        default_value = "1GiB",
        value_parser = crate::storage::parse_size
    )]
    pub min_free_bytes: u64,

    /// Low-latency HLS (partial segments, blocking playlist reloads) for LIVE FRAGMENTED_MP4
    /// HLS sessions of every stream without a `vigil:low-latency-hls` tag (docs/configuration.md).
    #[arg(long, env = "VIGIL_LOW_LATENCY_HLS")]
    pub low_latency_hls: bool,

    /// The low-latency HLS part target, in milliseconds (100 to 5000).
    #[arg(
        long,
        env = "VIGIL_HLS_PART_TARGET_MS",
        value_name = "MS",
        default_value_t = vigil_api_playback::streaming::llhls::DEFAULT_PART_TARGET_MS,
        value_parser = clap::value_parser!(u32).range(
            i64::from(vigil_api_playback::streaming::llhls::MIN_PART_TARGET_MS)
                ..=i64::from(vigil_api_playback::streaming::llhls::MAX_PART_TARGET_MS)
        ),
    )]
    pub hls_part_target_ms: u32,

    /// Do not serve the web console at `/` (the API is unaffected).
    #[arg(long, env = "VIGIL_NO_CONSOLE")]
    pub no_console: bool,

    /// How long a web console sign-in lasts, in hours (1 to 720).
    #[arg(
        long,
        env = "VIGIL_CONSOLE_SESSION_HOURS",
        value_name = "HOURS",
        default_value_t = 12,
        value_parser = clap::value_parser!(u32).range(1..=720)
    )]
    pub console_session_hours: u32,

    /// The face engine's inference runtime: `tract` (pure Rust, built in) or `onnxruntime`
    /// (faster; loads the library of --onnxruntime-library, which scripts/onnxruntime.sh sets
    /// up from the PyPI wheel).
    #[arg(
        long,
        env = "VIGIL_FACES_BACKEND",
        value_name = "BACKEND",
        default_value = "tract",
        value_parser = FACES_BACKENDS
    )]
    pub faces_backend: String,

    /// The onnxruntime shared library for --faces-backend onnxruntime (default: the path in
    /// ORT_DYLIB_PATH).
    #[arg(long, env = "VIGIL_ONNXRUNTIME_LIBRARY", value_name = "PATH")]
    pub onnxruntime_library: Option<PathBuf>,

    /// Frames a stream processor analyses per second of video (1-25); the others are only
    /// decoded.
    #[arg(
        long,
        env = "VIGIL_ANALYSIS_FPS",
        value_name = "N",
        default_value_t = 5,
        value_parser = clap::value_parser!(u32).range(1..=25)
    )]
    pub analysis_fps: u32,

    /// How far behind live (ms) a stream processor may fall before it skips to the next key
    /// frame.
    #[arg(
        long,
        env = "VIGIL_ANALYSIS_MAX_LAG_MS",
        value_name = "MS",
        default_value_t = 1000,
        value_parser = clap::value_parser!(u64).range(100..=600_000)
    )]
    pub analysis_max_lag_ms: u64,

    /// The SMTP relay of SNS `email` and `email-json` subscriptions, as a URL:
    /// `smtp://host:25`, `smtp://host:587?tls=required` (STARTTLS), `smtps://host:465`, with
    /// `user:password@` to authenticate. Without it, email subscriptions are refused.
    #[arg(long, env = "VIGIL_SMTP_URL", value_name = "URL")]
    pub smtp_url: Option<String>,

    /// The sender address of SNS mail.
    #[arg(
        long,
        env = "VIGIL_SMTP_FROM",
        value_name = "ADDRESS",
        default_value = "vigil@localhost"
    )]
    pub smtp_from: String,

    /// Most stream processors the server keeps.
    #[arg(
        long,
        env = "VIGIL_MAX_STREAM_PROCESSORS",
        value_name = "N",
        default_value_t = 20,
        value_parser = clap::value_parser!(u64).range(1..=1000)
    )]
    pub max_stream_processors: u64,

    /// Networks cameras may be in (CIDR, comma-separated, or `any`): the server dials no
    /// camera address outside them. Default: the private and local ranges.
    #[arg(
        long,
        env = "VIGIL_CAMERA_NETWORKS",
        value_name = "CIDR,...",
        value_delimiter = ',',
        default_values_t = crate::camera::reach::DEFAULT_NETWORKS.map(String::from)
    )]
    pub camera_networks: Vec<String>,

    /// Most connections the server keeps open; more are closed at accept.
    #[arg(
        long,
        env = "VIGIL_MAX_CONNECTIONS",
        value_name = "N",
        default_value_t = 10_000,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    pub max_connections: usize,

    /// Most connections open from one client address (a NAT holding many cameras counts as
    /// one); more are closed at accept.
    #[arg(
        long,
        env = "VIGIL_MAX_CONNECTIONS_PER_ADDRESS",
        value_name = "N",
        default_value_t = 2_500,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    pub max_connections_per_address: usize,

    #[command(flatten)]
    pub putmedia: crate::putmedia_limits::PutMediaArgs,

    /// Cameras, from the configuration file's `[[camera]]` tables.
    #[arg(skip)]
    pub cameras: Vec<crate::camera::CameraConfig>,
}

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| {
        format!(
            "expected an IP address and port such as {DEFAULT_LISTEN}, 0.0.0.0:4567 or \
             [::]:4567 (host names are not accepted; port 0 picks a free port)"
        )
    })
}

/// Applies the configuration file to every setting left at its built-in default.
fn apply_file(args: &mut Args, m: &ArgMatches) -> anyhow::Result<()> {
    let Some(path) = args.config.clone() else {
        return Ok(());
    };
    let f = FileConfig::load(&path)?;
    let ctx = |key: &str| format!("{key} in {}", path.display());
    args.putmedia.apply_file(&f, m);
    args.cameras = f.cameras;
    if let Some(v) = f
        .max_connections
        .filter(|_| defaulted(m, "max_connections"))
    {
        args.max_connections = v.max(1);
    }
    if let Some(v) = f
        .max_connections_per_address
        .filter(|_| defaulted(m, "max_connections_per_address"))
    {
        args.max_connections_per_address = v.max(1);
    }
    if let Some(v) = f
        .camera_networks
        .filter(|_| defaulted(m, "camera_networks"))
    {
        args.camera_networks = v;
    }
    if let Some(v) = f.listen.filter(|_| defaulted(m, "listen")) {
        args.listen = parse_listen(&v)
            .map_err(anyhow::Error::msg)
            .with_context(|| ctx("listen"))?;
    }
    if let Some(v) = f.data_dir.filter(|_| defaulted(m, "data_dir")) {
        args.store.data_dir = v;
    }
    if let Some(v) = f.region.filter(|_| defaulted(m, "region")) {
        args.region = v;
    }
    if let Some(v) = f.strict_region.filter(|_| defaulted(m, "strict_region")) {
        args.strict_region = v;
    }
    if let Some(v) = f.public_url.filter(|_| defaulted(m, "public_url")) {
        args.public_url = Some(v);
    }
    if let Some(v) = f.account_id.filter(|_| defaulted(m, "account_id")) {
        args.account_id = v;
    }
    if let Some(v) = f.log_format.filter(|_| defaulted(m, "log_format")) {
        args.log_format = match v.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => bail!("{}: {other:?} is not text or json", ctx("log_format")),
        };
    }
    if let Some(v) = f
        .allow_anonymous
        .filter(|_| defaulted(m, "allow_anonymous"))
    {
        args.allow_anonymous = v;
    }
    if let Some(v) = f.master_key_id.filter(|_| defaulted(m, "master_key_id")) {
        args.store.master_key_id = v;
    }
    if let Some(v) = f
        .shutdown_timeout
        .filter(|_| defaulted(m, "shutdown_timeout"))
    {
        args.shutdown_timeout = v;
    }
    if let Some(v) = f.min_free_bytes.filter(|_| defaulted(m, "min_free_bytes")) {
        args.min_free_bytes = crate::storage::parse_size(&v.as_text())
            .map_err(|e| anyhow::anyhow!("min_free_bytes in the configuration file: {e}"))?;
    }
    let tls_flags = !defaulted(m, "tls_cert") || !defaulted(m, "tls_self_signed");
    if !tls_flags {
        match (f.tls.cert, f.tls.key, f.tls.self_signed.unwrap_or(false)) {
            (Some(c), Some(k), false) => {
                args.tls_cert = Some(c);
                args.tls_key = Some(k);
            }
            (None, None, s) => args.tls_self_signed = s,
            (Some(_), Some(_), true) => {
                bail!(
                    "{}: cert/key and self_signed exclude each other",
                    ctx("[tls]")
                )
            }
            _ => bail!("{}: cert and key go together", ctx("[tls]")),
        }
    }
    if let Some(v) = f.tls.names.filter(|_| defaulted(m, "tls_names")) {
        args.tls_names = v;
    }
    if let Some(v) = f
        .playback
        .low_latency_hls
        .filter(|_| defaulted(m, "low_latency_hls"))
    {
        args.low_latency_hls = v;
    }
    if let Some(v) = f
        .playback
        .hls_part_target_ms
        .filter(|_| defaulted(m, "hls_part_target_ms"))
    {
        use vigil_api_playback::streaming::llhls::{MAX_PART_TARGET_MS, MIN_PART_TARGET_MS};
        if !(MIN_PART_TARGET_MS..=MAX_PART_TARGET_MS).contains(&v) {
            bail!(
                "{}: {v} is not between {MIN_PART_TARGET_MS} and {MAX_PART_TARGET_MS}",
                ctx("[playback] hls_part_target_ms")
            );
        }
        args.hls_part_target_ms = v;
    }
    if let Some(v) = f.console.enabled.filter(|_| defaulted(m, "no_console")) {
        args.no_console = !v;
    }
    if let Some(v) = f
        .console
        .session_hours
        .filter(|_| defaulted(m, "console_session_hours"))
    {
        if !(1..=720).contains(&v) {
            bail!(
                "{}: {v} is not between 1 and 720",
                ctx("[console] session_hours")
            );
        }
        args.console_session_hours = v;
    }
    if let Some(v) = f.sns.smtp_url.clone().filter(|_| defaulted(m, "smtp_url")) {
        args.smtp_url = Some(v);
    }
    if let Some(v) = f
        .sns
        .smtp_from
        .clone()
        .filter(|_| defaulted(m, "smtp_from"))
    {
        args.smtp_from = v;
    }
    if let Some(v) = f.analysis.fps.filter(|_| defaulted(m, "analysis_fps")) {
        if !(1..=25).contains(&v) {
            bail!("{}: {v} is not between 1 and 25", ctx("[analysis] fps"));
        }
        args.analysis_fps = v;
    }
    if let Some(v) = f
        .analysis
        .max_lag_ms
        .filter(|_| defaulted(m, "analysis_max_lag_ms"))
    {
        if !(100..=600_000).contains(&v) {
            bail!(
                "{}: {v} is not between 100 and 600000",
                ctx("[analysis] max_lag_ms")
            );
        }
        args.analysis_max_lag_ms = v;
    }
    if let Some(v) = f
        .analysis
        .max_processors
        .filter(|_| defaulted(m, "max_stream_processors"))
    {
        if !(1..=1000).contains(&v) {
            bail!(
                "{}: {v} is not between 1 and 1000",
                ctx("[analysis] max_processors")
            );
        }
        args.max_stream_processors = v as u64;
    }
    if let Some(v) = f.faces.backend.filter(|_| defaulted(m, "faces_backend")) {
        if !FACES_BACKENDS.contains(&v.as_str()) {
            bail!(
                "{}: \"{v}\" is not \"tract\" or \"onnxruntime\"",
                ctx("[faces] backend")
            );
        }
        args.faces_backend = v;
    }
    if let Some(v) = f
        .faces
        .onnxruntime_library
        .filter(|_| defaulted(m, "onnxruntime_library"))
    {
        args.onnxruntime_library = Some(v);
    }
    Ok(())
}

/// The values of `--faces-backend` (each a [`vigil_faces::Backend::name`]).
const FACES_BACKENDS: [&str; 2] = ["tract", "onnxruntime"];

/// The face engine's options from the flags.
fn faces_options(args: &Args) -> vigil_faces::EngineOptions {
    let onnxruntime = vigil_faces::Backend::OnnxRuntime {
        library: args.onnxruntime_library.clone(),
    };
    vigil_faces::EngineOptions {
        backend: if args.faces_backend == onnxruntime.name() {
            onnxruntime
        } else {
            vigil_faces::Backend::Tract
        },
        ..vigil_faces::EngineOptions::default()
    }
}

/// Checks settings that clap cannot.
fn validate(args: &Args) -> anyhow::Result<()> {
    let region_ok = !args.region.is_empty()
        && args.region.len() <= 32
        && args
            .region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !region_ok {
        bail!(
            "--region {:?} is not a region name such as us-east-1",
            args.region
        );
    }
    if args.account_id.len() != 12 || !args.account_id.bytes().all(|b| b.is_ascii_digit()) {
        bail!("--account-id {:?} must be 12 digits", args.account_id);
    }
    if let Some(url) = &args.public_url {
        let ok = (url.starts_with("http://") || url.starts_with("https://"))
            && url.split_once("://").is_some_and(|(_, rest)| {
                let host = rest.trim_end_matches('/');
                !host.is_empty() && !host.contains('/')
            });
        if !ok {
            bail!(
                "--public-url {url:?} must be a scheme and host, with an optional port and no \
                 path, such as https://nvr.home.arpa:4567"
            );
        }
    }
    Ok(())
}

/// Runs the server until SIGINT or SIGTERM.
pub fn run(mut args: Args, matches: &ArgMatches) -> anyhow::Result<()> {
    apply_file(&mut args, matches)?;
    validate(&args)?;
    logging::init(args.log_format)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(serve(args))
}

/// The root credentials from the environment, if set.
fn root_override() -> anyhow::Result<Option<vigil_auth::RootOverride>> {
    let id = std::env::var("VIGIL_ACCESS_KEY_ID")
        .ok()
        .filter(|v| !v.is_empty());
    let secret = std::env::var("VIGIL_SECRET_ACCESS_KEY")
        .ok()
        .filter(|v| !v.is_empty());
    match (id, secret) {
        (Some(access_key_id), Some(secret)) => Ok(Some(vigil_auth::RootOverride {
            access_key_id,
            secret: vigil_auth::SecretKey::new(secret),
        })),
        (None, None) => Ok(None),
        _ => bail!("VIGIL_ACCESS_KEY_ID and VIGIL_SECRET_ACCESS_KEY must be set together"),
    }
}

fn authenticator(
    args: &Args,
    store: &Store,
) -> anyhow::Result<(Arc<dyn Authenticator>, vigil_auth::KeyStore)> {
    let (keys, root) = vigil_auth::KeyStore::open(&args.store.data_dir, root_override()?)
        .context("opening the key store")?;
    match &root {
        vigil_auth::RootStatus::Generated {
            access_key_id,
            secret,
        } => {
            // Shown once: the secret is in DATA_DIR/auth/keys.json (mode 0600) from now on.
            warn!(
                access_key_id,
                secret_access_key = secret.expose(),
                "generated root credentials (shown once; set VIGIL_ACCESS_KEY_ID and \
                 VIGIL_SECRET_ACCESS_KEY to use your own)"
            );
        }
        vigil_auth::RootStatus::Stored { access_key_id } => {
            info!(access_key_id, "root credentials from the key store");
        }
        vigil_auth::RootStatus::Override { access_key_id } => {
            info!(access_key_id, "root credentials from VIGIL_ACCESS_KEY_ID");
        }
    }
    if args.allow_anonymous {
        warn!(
            "--allow-anonymous: requests without a signature are accepted with full rights; \
             for local development only"
        );
        return Ok((Arc::new(Anonymous), keys));
    }
    Ok((
        Arc::new(vigil_api_common::auth::SigV4::with_regions(
            &args.region,
            !args.strict_region,
            keys.clone(),
            store.clock().clone(),
        )),
        keys,
    ))
}

/// The client the cameras upload with: the server's own router in this process, signed with
/// the root credentials (so requests take the same authentication path as any producer's).
fn camera_client(
    args: &Args,
    keys: &vigil_auth::KeyStore,
    app: axum::Router,
) -> anyhow::Result<crate::client::Client> {
    use vigil_auth::sigv4::CredentialLookup;
    let id = keys
        .root_access_key_id()
        .context("the key store has no root key")?;
    let credential = keys
        .lookup(&id)
        .map_err(|e| anyhow::anyhow!("the root key cannot be used: {e:?}"))?;
    crate::client::Client::new(
        crate::client::profile::Resolved {
            endpoint_url: "http://vigil.internal".to_owned(),
            region: args.region.clone(),
            credentials: vigil_auth::sign::SigningCredentials {
                access_key_id: id,
                secret: credential.secret,
                session_token: None,
            },
        },
        crate::client::Transport::InProcess(app),
    )
}

/// Loads every face collection's index, and then the face engine's models if there is any
/// collection, in the background, so that the first Rekognition calls do not pay for them; a
/// call that comes first loads what it needs itself (each loads once). A server without
/// collections loads the engine on its first image call.
fn warm_up_faces(state: Arc<vigil_api_rekognition::RekognitionState>) {
    tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        match state.collections.warm_up(&state.store) {
            Ok(0) => {}
            Ok(n) => {
                if let Err(e) = vigil_api_rekognition::engine::engine() {
                    warn!("face engine: {}", e.message());
                }
                info!(
                    collections = n,
                    ms = started.elapsed().as_millis() as u64,
                    "face collections and engine ready"
                );
            }
            Err(e) => warn!("loading face collections: {}", e),
        }
    });
}

async fn serve(mut args: Args) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let mut cfg = args.store.config()?;
    cfg.min_free_bytes = args.min_free_bytes;
    let dir = args.store.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || {
        Store::open(cfg, Arc::new(SystemClock))
            .with_context(|| format!("opening the store in {}", dir.display()))
    })
    .await
    .context("opening the store")??;
    let recovery = store.recovery_report();
    info!(
        data_dir = %args.store.data_dir.display(),
        segments = recovery.segments,
        reindexed = recovery.reindexed,
        "store open"
    );
    for line in &recovery.repairs {
        warn!("store repaired: {line}");
    }
    for line in &recovery.problems {
        tracing::error!("store damage (run `vigil check`): {line}");
    }
    let (auth, keys) = authenticator(&args, &store)?;
    let tls = if args.tls_self_signed {
        let names: BTreeSet<String> = tls::default_names(
            args.listen.ip(),
            args.public_url.as_deref(),
            &args.tls_names,
        );
        let ss = tls::ensure_self_signed(&args.store.data_dir.join("tls"), &names)?;
        info!(
            ca = %ss.ca_cert.display(),
            names = ss.names.join(","),
            issued = ss.issued,
            "TLS with the local CA (producers trust the CA file)"
        );
        Some(tls::server_config(&ss.cert, &ss.key)?)
    } else if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        Some(tls::server_config(cert, key)?)
    } else {
        None
    };
    let server_cfg = ServerConfig {
        api: ApiConfig {
            region: args.region.clone(),
            account_id: args.account_id.clone(),
            public_url: args.public_url.clone(),
            tls: tls.is_some(),
            ..ApiConfig::default()
        },
        playback: vigil_api_playback::PlaybackConfig {
            low_latency_hls: vigil_api_playback::streaming::llhls::LowLatencyConfig {
                enabled: args.low_latency_hls,
                part_target_ms: args.hls_part_target_ms,
            },
            ..vigil_api_playback::PlaybackConfig::default()
        },
        console: vigil_server::ConsoleConfig {
            enabled: !args.no_console,
            session_ttl: std::time::Duration::from_secs(
                u64::from(args.console_session_hours) * 3600,
            ),
        },
        analysis: vigil_analysis::AnalysisConfig {
            fps: args.analysis_fps as f32,
            max_lag_ms: args.analysis_max_lag_ms,
            max_processors: usize::try_from(args.max_stream_processors).unwrap_or(20),
            ..vigil_analysis::AnalysisConfig::default()
        },
        putmedia: args.putmedia.config(),
        smtp: args.smtp_url.clone().map(|url| vigil_api_sns::SmtpConfig {
            url,
            from: args.smtp_from.clone(),
        }),
        ..ServerConfig::default()
    };
    // Blocking: it reads the data streams' records from the store.
    let state_store = store.clone();
    let state = Arc::new(
        tokio::task::spawn_blocking(move || ServerState::new(state_store, server_cfg, auth))
            .await
            .context("loading the data streams and stream processors from the store")?
            .context("loading the data streams and stream processors from the store")?,
    );
    let faces = faces_options(&args);
    let backend = faces.backend.name();
    let load_now = faces.backend != vigil_faces::Backend::Tract;
    vigil_api_rekognition::engine::configure(faces);
    if load_now {
        // Loaded now: a missing or unusable library is a start-up error, not a failure of
        // the first Rekognition call.
        vigil_api_rekognition::engine::engine()
            .map_err(|e| anyhow::anyhow!("{}", e.message()))
            .with_context(|| format!("loading the face engine ({backend} backend)"))?;
    }
    warm_up_faces(state.rekognition.clone());
    let resumed = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || state.resume_processors())
            .await
            .context("resuming the stream processors")?
            .context("resuming the stream processors")?
    };
    if resumed > 0 {
        info!(processors = resumed, "stream processors running again");
    }
    let delivering = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || state.start_deliveries())
            .await
            .context("starting the topics' deliveries")?
            .context("starting the topics' deliveries")?
    };
    if delivering > 0 {
        info!(subscriptions = delivering, "topic deliveries running");
    }
    let app = vigil_server::router(state.clone());
    let networks = crate::camera::reach::Networks::parse(&args.camera_networks)
        .map_err(anyhow::Error::msg)
        .context("--camera-networks")?;
    let cameras = crate::camera::Manager::new(
        camera_client(&args, &keys, app.clone())?,
        &args.store.data_dir,
        store.clone(),
        networks,
    );
    // Read (and, from an earlier version, sealed) before any camera starts: a camera list that
    // cannot be read back stops the start here.
    let persisted = cameras.load_persisted()?;
    // The API and the metrics hold the cameras weakly: the cameras' client holds the router,
    // which holds the API state.
    let camera_service: Arc<dyn vigil_api_kvs::cameras::CameraService> = Arc::new(cameras.clone());
    let _ = state.kvs.cameras.set(Arc::downgrade(&camera_service));
    vigil_api_common::metrics::global().add_collector(cameras.metrics_collector());
    vigil_api_common::metrics::global().add_collector(crate::store_metrics::collector(&store));
    crate::camera::start_configured(&cameras, std::mem::take(&mut args.cameras))?;
    cameras.start_persisted(persisted);
    let bound = listener.local_addr().context("reading the bound address")?;
    info!(
        version = env!("CARGO_PKG_VERSION"),
        region = args.region,
        tls = tls.is_some(),
        "listening on {bound}"
    );
    if !args.no_console {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = args
            .public_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{bound}"));
        info!("web console at {}/", url.trim_end_matches('/'));
    }
    let limits = crate::http::ConnectionLimits {
        total: args.max_connections,
        per_address: args.max_connections_per_address,
    };
    let graceful = crate::http::accept_loop(listener, tls, app, limits, shutdown_signal()).await;
    let timeout = Duration::from_secs(args.shutdown_timeout);
    info!("no longer accepting connections; stopping cameras");
    cameras.stop_all().await;
    drop(camera_service);
    info!("finishing PutMedia sessions");
    if tokio::time::timeout(timeout, state.kvs.sessions.drain())
        .await
        .is_err()
    {
        warn!("PutMedia sessions still open after {timeout:?}; closing them");
        state.kvs.sessions.close_all();
    }
    // Long enough for a drained session to finish discarding its producer's body (so that
    // closing the connection cannot reset it before the last acks are read).
    if tokio::time::timeout(Duration::from_secs(6), graceful.shutdown())
        .await
        .is_err()
    {
        info!("closing connections still open (live readers)");
    }
    info!("stopping the stream processors' runs");
    {
        let state = state.clone();
        let _ = tokio::task::spawn_blocking(move || state.stop_processors()).await;
    }
    info!("stopping the topics' deliveries");
    {
        let state = state.clone();
        let _ = tokio::task::spawn_blocking(move || state.stop_deliveries()).await;
    }
    drop(state);
    tokio::task::spawn_blocking(move || store.close())
        .await
        .context("closing the store")??;
    info!("shut down");
    Ok(())
}

/// Completes on the first SIGINT (Ctrl-C) or, on Unix, SIGTERM.
///
/// If a handler cannot be installed, that is logged and the signal is waited on no further:
/// failing to start would be worse than not stopping gracefully on that one signal.
async fn shutdown_signal() {
    let ctrl_c = async {
        match tokio::signal::ctrl_c().await {
            Ok(()) => info!("received SIGINT, shutting down"),
            Err(e) => {
                tracing::error!("cannot listen for SIGINT: {e}");
                std::future::pending::<()>().await;
            }
        }
    };

    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
                info!("received SIGTERM, shutting down");
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use clap::{CommandFactory, FromArgMatches, Parser};

    use super::{Args, apply_file, parse_listen};

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    /// `vigil serve ARGS` with the configuration file applied.
    fn settings(args: &[&str]) -> anyhow::Result<Args> {
        let m = Cli::command()
            .try_get_matches_from(std::iter::once("serve").chain(args.iter().copied()))?;
        let mut a = Cli::from_arg_matches(&m)?.args;
        apply_file(&mut a, &m)?;
        Ok(a)
    }

    #[test]
    fn low_latency_hls_from_the_file_unless_flags_say_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vigil.toml");
        let path = file.to_str().unwrap();
        std::fs::write(
            &file,
            "[playback]\nlow_latency_hls = true\nhls_part_target_ms = 400\n",
        )
        .unwrap();
        let a = settings(&["--config", path]).unwrap();
        assert!(a.low_latency_hls);
        assert_eq!(a.hls_part_target_ms, 400);
        let a = settings(&["--config", path, "--hls-part-target-ms", "500"]).unwrap();
        assert_eq!(a.hls_part_target_ms, 500, "the flag wins");
        let a = settings(&[]).unwrap();
        assert!(!a.low_latency_hls);
        assert_eq!(a.hls_part_target_ms, 333);
        assert!(settings(&["--hls-part-target-ms", "50"]).is_err());
        std::fs::write(&file, "[playback]\nhls_part_target_ms = 50\n").unwrap();
        let e = settings(&["--config", path]).unwrap_err().to_string();
        assert!(e.contains("hls_part_target_ms"), "{e}");
    }

    #[test]
    fn putmedia_limits_from_the_file_unless_flags_say_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vigil.toml");
        let path = file.to_str().unwrap();
        std::fs::write(
            &file,
            "max_putmedia_sessions = 50\nmax_putmedia_sessions_per_key = 0\n\
             putmedia_min_bytes_per_minute = 0\n",
        )
        .unwrap();
        let c = settings(&["--config", path]).unwrap().putmedia.config();
        assert_eq!(c.max_sessions, 50);
        assert_eq!(c.max_sessions_per_key, 1, "at least 1");
        assert_eq!(c.min_progress_bytes, 0, "the rule off");
        let a = settings(&["--config", path, "--max-putmedia-sessions-per-key", "7"]).unwrap();
        assert_eq!(a.putmedia.max_putmedia_sessions_per_key, 7, "the flag wins");
        let c = settings(&[]).unwrap().putmedia.config();
        assert_eq!((c.max_sessions, c.max_sessions_per_key), (2000, 1000));
        assert_eq!(c.min_progress_bytes, 1024);
        assert!(settings(&["--max-putmedia-sessions", "0"]).is_err());
        assert!(settings(&["--max-putmedia-sessions-per-key", "0"]).is_err());
    }

    #[test]
    fn parse_listen_accepts_ipv4_ipv6_and_port_zero() {
        assert_eq!(
            parse_listen("127.0.0.1:0").map(|a| a.port()),
            Ok(0),
            "port 0"
        );
        assert!(parse_listen("[::1]:4567").is_ok());
        assert!(parse_listen("0.0.0.0:4567").is_ok());
    }

    #[test]
    fn parse_listen_rejects_names_and_missing_ports() {
        for bad in ["not-an-address", "localhost:4567", "127.0.0.1", ":4567", ""] {
            let err = parse_listen(bad).err();
            assert!(
                err.as_deref().is_some_and(|e| e.contains("127.0.0.1:4567")),
                "{bad:?} gave {err:?}"
            );
        }
    }
}
