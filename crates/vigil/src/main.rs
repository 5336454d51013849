//! `vigil`: the one binary of Vigil, a self-hosted Amazon Kinesis Video Streams.
//!
//! It is both the server (`vigil serve`) and the command-line client. Each subcommand lives in
//! its own module, which owns its clap `Args` struct and a `run` function; adding a subcommand
//! is one variant of [`Command`] and one arm of the `match` in [`main`]. A subcommand returns
//! `anyhow::Result<()>`; an error is printed as one line (`error: context: cause`) and the
//! process exits with status 1. Usage errors are clap's: status 2.

mod check;
mod inspect;
mod logging;
mod serve;
mod storage;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "vigil", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the Vigil server.
    Serve(serve::Args),
    /// Show the element tree of a Matroska/WebM file or stream, or a per-track JSON summary.
    Inspect(inspect::Args),
    /// Verify a data directory (every record, every fragment authenticated), repairing what is
    /// safe to repair.
    Check(check::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Check(args) => check::run(args),
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
