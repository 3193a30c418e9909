//! `natrium`: the command-line client for NATS and Natrium.
//!
//! Natrium is meant to be a drop-in NATS server, so its client tool mirrors
//! the `nats` CLI: the same global connection flags and environment
//! variables, and (over time) the same command tree — pub/sub/request/reply,
//! stream, consumer, kv, object, account, server, backup. Today it has
//! `bench`, which exists first because we need a load generator that drives
//! nats-server and natrium-server identically to compare them.
//!
//! Layout: this file holds only the clap root and the process boundary
//! (runtime, exit status, the single error line); [`connect`] turns the
//! global flags into a connection; each command lives in its own module
//! (`bench/`, later `stream/`, `kv/`, ...) with one file per subcommand.

mod backup;
mod backup_verify;
mod bench;
mod connect;
mod error;
mod units;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::connect::ConnectArgs;
use crate::error::{Error, Result};

/// Command-line client for NATS and Natrium servers.
#[derive(Parser, Debug)]
#[command(name = "natrium", version, about, propagate_version = true)]
struct Cli {
    /// How to reach and authenticate to the server (valid on every command).
    #[command(flatten)]
    conn: ConnectArgs,

    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The top-level command tree.
#[derive(Subcommand, Debug)]
enum Command {
    /// Measure throughput and latency of a NATS server.
    Bench(bench::BenchArgs),
    /// Streams: backup and restore.
    #[command(subcommand)]
    Stream(StreamCommand),
    /// The account: backup and restore of all its streams.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Work with backups offline (`backup verify DIR`).
    Backup(backup_verify::BackupArgs),
}

/// `natrium stream …`.
#[derive(Subcommand, Debug)]
enum StreamCommand {
    /// Back up a stream into a folder (`stream.tar.s2` + `backup.json`).
    #[command(alias = "snapshot")]
    Backup(backup::StreamBackupArgs),
    /// Restore a stream from a backup folder.
    Restore(backup::StreamRestoreArgs),
}

/// `natrium account …`.
#[derive(Subcommand, Debug)]
enum AccountCommand {
    /// Back up every stream of the account (one folder per stream).
    Backup(backup::AccountBackupArgs),
    /// Restore every stream folder of an account backup.
    Restore(backup::AccountRestoreArgs),
}

impl Command {
    /// Worker threads the async runtime should have, if the command says
    /// (benchmarks let the user size the client); `None` means one per
    /// CPU core.
    fn runtime_threads(&self) -> Option<usize> {
        match self {
            Command::Bench(args) => args.threads(),
            Command::Backup(_) => Some(1),
            _ => None,
        }
    }
}

/// Runs the chosen command to completion.
async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Bench(args) => bench::run(&cli.conn, args).await,
        Command::Stream(StreamCommand::Backup(a)) => backup::run_stream_backup(&cli.conn, a).await,
        Command::Stream(StreamCommand::Restore(a)) => {
            backup::run_stream_restore(&cli.conn, a).await
        }
        Command::Account(AccountCommand::Backup(a)) => {
            backup::run_account_backup(&cli.conn, a).await
        }
        Command::Account(AccountCommand::Restore(a)) => {
            backup::run_account_restore(&cli.conn, a).await
        }
        Command::Backup(args) => backup_verify::run(args),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = cli.command.runtime_threads() {
        builder.worker_threads(n);
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&Error::Internal(format!("cannot start async runtime: {e}"))),
    };
    let result = runtime.block_on(run(cli));
    // Worker tasks (e.g. benchmark repliers) may still be parked on sockets;
    // don't wait for them at exit.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// Prints the one-line error message and picks the exit status.
fn fail(e: &Error) -> ExitCode {
    eprintln!("natrium: error: {e}");
    ExitCode::from(e.exit_code())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_work_after_subcommands() {
        let cli = Cli::try_parse_from([
            "natrium",
            "bench",
            "pub",
            "--msgs",
            "10",
            "-s",
            "nats://127.0.0.1:1234",
            "--timeout",
            "2s",
        ])
        .expect("parses");
        assert_eq!(cli.conn.server, "nats://127.0.0.1:1234");
        assert_eq!(cli.conn.timeout, std::time::Duration::from_secs(2));
    }

    #[test]
    fn password_requires_user() {
        assert!(Cli::try_parse_from(["natrium", "--password", "x", "bench", "pub"]).is_err());
    }
}
