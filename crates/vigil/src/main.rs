//! `vigil`: the one binary of Vigil, a self-hosted Amazon Kinesis Video Streams.
//!
//! It is both the server (`vigil serve`) and the command-line client. Each subcommand lives in
//! its own module, which owns its clap `Args` struct and a `run` function; adding a subcommand
//! is one variant of [`Command`] and one arm of the `match` in [`main`]. A subcommand returns
//! `anyhow::Result<()>`; an error is printed as one line (`error: context: cause`) and the
//! process exits with status 1. Usage errors are clap's: status 2.

mod camera;
mod camera_cmd;
mod check;
mod client;
mod config;
mod get;
mod http;
mod inspect;
mod keys;
mod logging;
mod playback_cmd;
mod put;
mod putmedia_limits;
mod serve;
mod storage;
mod store_metrics;
mod stream_cmd;
mod tls;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "vigil", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the Vigil server.
    Serve(Box<serve::Args>),
    /// Show the element tree of a Matroska/WebM file or stream, or a per-track JSON summary.
    Inspect(inspect::Args),
    /// Verify a data directory (every record, every fragment authenticated), repairing what is
    /// safe to repair.
    Check(check::Args),
    /// Manage access keys: create scoped keys, list and revoke them.
    Keys(keys::Args),
    /// Create, list, describe, update and delete streams (against Vigil or KVS).
    Stream(stream_cmd::Args),
    /// Upload a file or a live pipe to a stream (PutMedia), resending after a broken
    /// connection.
    Put(put::Args),
    /// Read a stream's media (GetMedia) into one Matroska file or standard output.
    Get(get::Args),
    /// Save an MP4 clip of a time range (GetClip).
    Clip(playback_cmd::ClipArgs),
    /// Print an HLS playback URL for a player (GetHLSStreamingSessionURL).
    HlsUrl(playback_cmd::UrlArgs),
    /// Print a DASH playback URL for a player (GetDASHStreamingSessionURL).
    DashUrl(playback_cmd::UrlArgs),
    /// Save JPEG or PNG images of a time range (GetImages).
    Images(playback_cmd::ImagesArgs),
    /// Add, list and remove the cameras a Vigil server records (Vigil only).
    Camera(camera_cmd::Args),
    /// Print a shell completion script: `vigil completions bash > /etc/bash_completion.d/vigil`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        Command::Serve(args) => match matches.subcommand_matches("serve") {
            Some(m) => serve::run(*args, m),
            None => Err(anyhow::anyhow!("internal error: no serve arguments")),
        },
        Command::Keys(args) => keys::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Check(args) => check::run(args),
        Command::Stream(args) => stream_cmd::run(args),
        Command::Put(args) => put::run(args),
        Command::Get(args) => get::run(args),
        Command::Clip(args) => playback_cmd::clip(args),
        Command::HlsUrl(args) => playback_cmd::session_url(args, false),
        Command::DashUrl(args) => playback_cmd::session_url(args, true),
        Command::Images(args) => playback_cmd::images(args),
        Command::Camera(args) => camera_cmd::run(args),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "vigil", &mut std::io::stdout());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the context chain on one line: "cannot listen on ...: Address in use".
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
