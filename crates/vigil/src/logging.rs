//! Process-wide log setup: `tracing` events go to stderr, filtered by `RUST_LOG`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event (coloured when stderr is a terminal).
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global `tracing` subscriber.
///
/// The filter comes from `RUST_LOG` (`tracing_subscriber::EnvFilter` syntax) and is `info` when
/// the variable is unset or empty. An unparsable `RUST_LOG` is an error rather than being
/// silently ignored.
pub fn init(format: LogFormat) -> anyhow::Result<()> {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env()
        // The error's source chain repeats its message; print it once.
        .map_err(|e| anyhow::anyhow!("invalid RUST_LOG: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("installing the log subscriber: {e}"))
}
