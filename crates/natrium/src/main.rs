//! `natrium`: the command-line client for NATS and Natrium.
//!
//! Natrium is meant to be a drop-in NATS server, so its client tool mirrors
//! the `nats` CLI: the same global connection flags and environment
//! variables, named contexts, and the same command tree — pub/sub/request/
//! reply, server, stream, consumer, kv, object, account — plus `bench`, the
//! load generator that drives nats-server and natrium-server identically.
//!
//! Layout: this file holds only the clap root and the process boundary
//! (runtime, exit status, the single error line); [`connect`] turns the
//! global flags (and the selected context) into a connection; each command
//! group lives in its own module under `cmd/` (and `bench/`); [`output`]
//! prints tables, JSON and prompts; [`jsapi`] speaks the JetStream API.

mod backup;
mod backup_verify;
mod bench;
mod cmd;
mod connect;
mod error;
mod heap;
mod jsapi;
mod output;
mod template;
mod units;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

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
    /// Publish messages.
    #[command(alias = "publish")]
    Pub(cmd::core::PubArgs),
    /// Subscribe and print messages.
    #[command(alias = "subscribe")]
    Sub(cmd::core::SubArgs),
    /// Send requests and print the responses.
    #[command(alias = "req")]
    Request(cmd::core::RequestArgs),
    /// Answer requests on a subject.
    Reply(cmd::core::ReplyArgs),
    /// Server information, ping and health checks.
    Server(cmd::server::ServerArgs),
    /// JetStream streams.
    #[command(alias = "str")]
    Stream(cmd::stream::StreamArgs),
    /// JetStream consumers.
    #[command(alias = "con")]
    Consumer(cmd::consumer::ConsumerArgs),
    /// Key/value buckets.
    Kv(cmd::kv::KvArgs),
    /// Object store buckets.
    #[command(alias = "obj")]
    Object(cmd::object::ObjectArgs),
    /// Account information, JetStream limits and reports.
    Account(cmd::account::AccountArgs),
    /// Named connection settings.
    #[command(alias = "ctx")]
    Context(cmd::context::ContextArgs),
    /// Measure throughput and latency of a NATS server.
    Bench(bench::BenchArgs),
    /// Work with backups offline (`backup verify|ls|prune`).
    Backup(backup_verify::BackupArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// Shell to generate for.
        shell: clap_complete::Shell,
    },
    /// Write man pages for natrium and every subcommand into a directory.
    Man {
        /// Directory to write the pages to (created if missing).
        dir: PathBuf,
    },
}

impl Command {
    /// Whether the command moves a whole stream's data (stream or account backup and
    /// restore), so is worth running next to the connection's task (see `main`).
    fn moves_bulk_data(&self) -> bool {
        match self {
            Command::Stream(a) => a.moves_bulk_data(),
            Command::Account(a) => a.moves_bulk_data(),
            _ => false,
        }
    }

    /// Worker threads the async runtime should have, if the command says
    /// (benchmarks let the user size the client); `None` means one per
    /// CPU core.
    fn runtime_threads(&self) -> Option<usize> {
        match self {
            Command::Bench(args) => args.threads(),
            Command::Backup(_) => Some(1),
            _ => Some(2),
        }
    }
}

/// Runs the chosen command to completion.
async fn run(cli: Cli) -> Result<()> {
    let mut conn = cli.conn;
    match cli.command {
        Command::Context(a) => return cmd::context::run(&conn, a),
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "natrium", &mut out);
            return output::out_bytes(&out, false);
        }
        Command::Man { dir } => return write_man_pages(&dir),
        Command::Backup(args) => return backup_verify::run(args).await,
        _ => {}
    }
    conn.apply_context()?;
    match cli.command {
        Command::Pub(a) => cmd::core::publish(&conn, a).await,
        Command::Sub(a) => cmd::core::subscribe(&conn, a).await,
        Command::Request(a) => cmd::core::request(&conn, a).await,
        Command::Reply(a) => cmd::core::reply(&conn, a).await,
        Command::Server(a) => cmd::server::run(&conn, a).await,
        Command::Stream(a) => cmd::stream::run(&conn, a).await,
        Command::Consumer(a) => cmd::consumer::run(&conn, a).await,
        Command::Kv(a) => cmd::kv::run(&conn, a).await,
        Command::Object(a) => cmd::object::run(&conn, a).await,
        Command::Account(a) => cmd::account::run(&conn, a).await,
        Command::Bench(args) => bench::run(&conn, args).await,
        Command::Context(_)
        | Command::Completions { .. }
        | Command::Man { .. }
        | Command::Backup(_) => Ok(()),
    }
}

/// Writes `natrium.1` and `natrium-<sub>[-<sub>].1` for every subcommand.
fn write_man_pages(dir: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::BadInput(format!("cannot create {}: {e}", dir.display())))?;
    let mut cmd = Cli::command();
    cmd.build();
    let mut count = 0;
    fn walk(
        cmd: &clap::Command,
        name: &str,
        dir: &std::path::Path,
        count: &mut usize,
    ) -> Result<()> {
        // clap wants a 'static name; this process writes the pages and exits.
        let page = cmd
            .clone()
            .name(&*Box::leak(name.to_string().into_boxed_str()));
        let mut buf = Vec::new();
        clap_mangen::Man::new(page).render(&mut buf)?;
        let path = dir.join(format!("{name}.1"));
        std::fs::write(&path, buf)
            .map_err(|e| Error::BadInput(format!("cannot write {}: {e}", path.display())))?;
        *count += 1;
        for sub in cmd.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            walk(sub, &format!("{name}-{}", sub.get_name()), dir, count)?;
        }
        Ok(())
    }
    walk(&cmd, "natrium", dir, &mut count)?;
    output::out(format!("Wrote {count} man pages to {}", dir.display()))
}

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("natrium: internal error: {msg}{at} (please report this)");
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    // async-nats (TLS to NATS) and object_store (HTTPS to S3) enable different rustls
    // crypto backends, so rustls cannot pick one by itself: choose ring, once, before
    // any TLS is set up. An error only means one is already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Before any other thread exists: chunk-sized buffers are reused, not mapped anew.
    heap::keep_freed_memory();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = cli.command.runtime_threads() {
        builder.worker_threads(n);
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&Error::Internal(format!("cannot start async runtime: {e}"))),
    };
    let result = if cli.command.moves_bulk_data() {
        // On a worker, beside the connection's task: each chunk the connection task
        // hands over is then a task switch on the same thread, where on this (main)
        // thread it was a futex wake-up of another one. Measured on a 1 GiB backup
        // into RAM: ~20% less CPU for the CLI and a tenth of the context switches, the
        // same wall time (the server is the bound); a restore likewise. Left to the
        // CPU the transfers share with the server and its publishers.
        runtime.block_on(async move {
            tokio::spawn(run(cli))
                .await
                .unwrap_or_else(|e| Err(Error::Internal(format!("the command's task failed: {e}"))))
        })
    } else {
        runtime.block_on(run(cli))
    };
    // Worker tasks (e.g. benchmark repliers) may still be parked on sockets;
    // don't wait for them at exit.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// Reports a command-line parsing problem in one line (help and version
/// requests print as usual).
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
        _ => {}
    }
    // clap spreads one complaint over several lines (the missing arguments,
    // the possible values, a tip); fold them into one, without the usage.
    let text = e.render().to_string();
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect();
    let mut line = parts
        .join(" ")
        .trim_start_matches("error: ")
        .replace(" tip: ", "; tip: ");
    if line.is_empty() {
        line = "invalid arguments".into();
    }
    eprintln!("natrium: error: {line} (see --help)");
    ExitCode::from(2)
}

/// Prints the one-line error message and picks the exit status.
fn fail(e: &Error) -> ExitCode {
    match e {
        // A health check already printed its status line.
        Error::Check(_) => {}
        // The reader went away (`| head`): not worth a message.
        Error::Output(io) if io.kind() == std::io::ErrorKind::BrokenPipe => {
            return ExitCode::SUCCESS;
        }
        _ => eprintln!("natrium: error: {e}"),
    }
    ExitCode::from(e.exit_code())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(cli.conn.server.as_deref(), Some("nats://127.0.0.1:1234"));
        assert_eq!(cli.conn.timeout, std::time::Duration::from_secs(2));
    }

    #[test]
    fn password_requires_user() {
        assert!(Cli::try_parse_from(["natrium", "--password", "x", "bench", "pub"]).is_err());
    }

    #[test]
    fn json_flag_on_groups() {
        assert!(Cli::try_parse_from(["natrium", "stream", "ls", "--json"]).is_ok());
        assert!(Cli::try_parse_from(["natrium", "stream", "--json", "info", "X"]).is_ok());
        assert!(Cli::try_parse_from(["natrium", "stream", "ls", "--bogus"]).is_err());
    }

    #[test]
    fn only_backups_and_restores_run_on_a_worker() {
        let bulk = |args: &[&str]| {
            let mut all = vec!["natrium"];
            all.extend_from_slice(args);
            Cli::try_parse_from(all)
                .expect("parses")
                .command
                .moves_bulk_data()
        };
        assert!(bulk(&["stream", "backup", "ORDERS", "/tmp/b"]));
        assert!(bulk(&["stream", "restore", "/tmp/b"]));
        assert!(bulk(&["account", "backup", "/tmp/b"]));
        assert!(bulk(&["account", "restore", "/tmp/b"]));
        assert!(!bulk(&["stream", "ls"]));
        assert!(!bulk(&["account", "info"]));
        assert!(!bulk(&["backup", "verify", "/tmp/b"]));
        assert!(!bulk(&["bench", "pub"]));
    }
}
