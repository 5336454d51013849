//! `vigil serve`: the HTTP server.
//!
//! It opens the fragment store in the data directory (recovering it after a crash, creating the
//! default master key on first start, running retention in the background) and, for now,
//! answers only `GET /health`. The router is built by [`router`], separately from binding and
//! signal handling, so that it can be served on any listener.
//!
//! Shutdown: on SIGINT or SIGTERM the server stops accepting connections, lets in-flight
//! requests finish, makes the store's index durable, and the process exits with status 0.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tokio::net::TcpListener;
use tracing::info;
use vigil_store::{Store, SystemClock};

use crate::logging::{self, LogFormat};
use crate::storage::StoreArgs;

/// The address `vigil serve` listens on unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4567";

/// Arguments of `vigil serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
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
}

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| {
        format!(
            "expected an IP address and port such as {DEFAULT_LISTEN}, 0.0.0.0:4567 or \
             [::]:4567 (host names are not accepted; port 0 picks a free port)"
        )
    })
}

/// Runs the server until SIGINT or SIGTERM.
pub fn run(args: Args) -> anyhow::Result<()> {
    logging::init(args.log_format)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(serve(args.listen, args.store))
}

async fn serve(listen: SocketAddr, store_args: StoreArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let cfg = store_args.config()?;
    let dir = store_args.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || {
        Store::open(cfg, Arc::new(SystemClock))
            .with_context(|| format!("opening the store in {}", dir.display()))
    })
    .await
    .context("opening the store")??;
    let recovery = store.recovery_report();
    info!(
        data_dir = %store_args.data_dir.display(),
        segments = recovery.segments,
        reindexed = recovery.reindexed,
        "store open"
    );
    for line in &recovery.repairs {
        tracing::warn!("store repaired: {line}");
    }
    for line in &recovery.problems {
        tracing::error!("store damage (run `vigil check`): {line}");
    }
    let bound = listener.local_addr().context("reading the bound address")?;
    info!(version = env!("CARGO_PKG_VERSION"), "listening on {bound}");
    axum::serve(listener, router())
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP")?;
    tokio::task::spawn_blocking(move || store.close())
        .await
        .context("closing the store")??;
    info!("shut down");
    Ok(())
}

/// The HTTP routes of the server.
pub fn router() -> Router {
    Router::new().route("/health", get(health))
}

/// Body of `GET /health`.
#[derive(Debug, Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
}

async fn health() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
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
    use super::parse_listen;

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
