//! Backups from the command line: `stream backup|restore` and `account backup|restore`.
//!
//! The CLI is just another client: it speaks the JetStream snapshot and restore API
//! (the same against nats-server and natrium-server), writes the `nats` CLI's folder
//! layout, and can run anywhere that reaches the server. See `layout` for the folder,
//! `stream_backup` / `stream_restore` for the two protocols, `account` for the loop
//! over an account's streams, `progress` for what the user sees, `target` for where the
//! files live (a folder or an `s3://` prefix), `catalog` for `backup ls` / `prune`.

pub mod account;
pub mod catalog;
pub mod chain;
pub mod layout;
pub mod progress;
pub mod resume;
pub mod stream_backup;
pub mod stream_restore;
pub mod target;
pub mod upload;

use std::path::PathBuf;
use std::time::Duration;

use async_nats::Client;
use bytes::Bytes;
use clap::Args;
use serde_json::Value;

use crate::connect::ConnectArgs;
use crate::units::parse_size;

/// Why a backup or restore failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The server answered with a JetStream API error.
    #[error("{description} (code {code}, err_code {err_code})")]
    Api {
        /// HTTP-like status.
        code: u64,
        /// JetStream error code.
        err_code: u64,
        /// The server's text.
        description: String,
    },
    /// The server ended the transfer with a failure status.
    #[error("server ended the transfer: {0}")]
    Server(String),
    /// Nothing arrived for too long.
    #[error("transfer stalled: no data for {0:?}")]
    Stalled(Duration),
    /// The server said something this client does not understand.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A NATS operation failed.
    #[error("{op}: {detail}")]
    Nats {
        /// What was being done.
        op: &'static str,
        /// The client library's error.
        detail: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// Which file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// An object-storage operation failed.
    #[error("{url}: {detail}")]
    Object {
        /// The object or prefix.
        url: String,
        /// What went wrong, on one line.
        detail: String,
    },
    /// A JSON file is malformed.
    #[error("{}: {detail}", path.display())]
    Json {
        /// Which file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The target folder already holds a backup.
    #[error("{} already holds a backup; choose an empty folder", .0.display())]
    Exists(PathBuf),
    /// The backup was interrupted and must not be restored.
    #[error("{} holds an incomplete backup (it was interrupted); take the backup again", .0.display())]
    Incomplete(PathBuf),
    /// The stream to restore exists already.
    #[error(
        "stream {0:?} already exists; delete it first, restore under another name (--name), or use --skip-existing"
    )]
    StreamExists(String),
    /// Arguments that make no sense.
    #[error("{0}")]
    Usage(String),
    /// Interrupted by the user.
    #[error("interrupted; the folder is marked incomplete")]
    Interrupted,
    /// A restore interrupted by the user.
    #[error(
        "interrupted; natrium-server keeps what it received for 5 minutes: run the same restore with --resume to send only the rest"
    )]
    RestoreInterrupted,
    /// An incremental backup chain is broken (a link missing, damaged, or not
    /// continuing its parent).
    #[error("backup chain broken at {}: {reason}", dir.display())]
    Chain {
        /// The folder where the chain breaks.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The server lacks a natrium extension the command needs.
    #[error("{0}")]
    Unsupported(String),
    /// `--resume` found no interrupted restore to continue.
    #[error("cannot resume the restore of stream {stream:?}: {detail}")]
    NothingToResume {
        /// The stream.
        stream: String,
        /// The server's explanation.
        detail: String,
    },
}

impl BackupError {
    fn nats(op: &'static str, e: impl std::fmt::Display) -> BackupError {
        BackupError::Nats {
            op,
            detail: e.to_string(),
        }
    }
}

/// A JSON API error in `v`, if any.
pub fn check_api_error(v: &Value) -> Result<(), BackupError> {
    if let Some(e) = v.get("error") {
        return Err(BackupError::Api {
            code: e.get("code").and_then(Value::as_u64).unwrap_or(0),
            err_code: e.get("err_code").and_then(Value::as_u64).unwrap_or(0),
            description: e
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("unknown error")
                .to_string(),
        });
    }
    Ok(())
}

/// A JetStream API request; the answer's JSON, or its error.
pub async fn api_request(
    client: &Client,
    subject: &str,
    body: String,
) -> Result<Value, BackupError> {
    let msg = client
        .request(subject.to_string(), Bytes::from(body))
        .await
        .map_err(|e| BackupError::nats("JetStream API request", e))?;
    let v: Value = serde_json::from_slice(&msg.payload)
        .map_err(|e| BackupError::Protocol(format!("{subject}: bad answer: {e}")))?;
    check_api_error(&v)?;
    Ok(v)
}

/// Whether the account has a stream of this name.
pub async fn stream_exists(client: &Client, name: &str) -> Result<bool, BackupError> {
    match api_request(
        client,
        &format!("$JS.API.STREAM.INFO.{name}"),
        String::new(),
    )
    .await
    {
        Ok(_) => Ok(true),
        Err(BackupError::Api {
            err_code: 10059, ..
        }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Flags shared by the backup commands.
#[derive(Args, Debug, Clone)]
pub struct BackupFlags {
    /// Leave consumers out of the backup.
    #[arg(long)]
    pub no_consumers: bool,
    /// Bytes per chunk (e.g. 128KB, 1MB).
    #[arg(long, default_value = "128KiB", value_parser = parse_size)]
    pub chunk_size: usize,
    /// Flow-control window (bytes in flight), server default if unset.
    #[arg(long, value_parser = parse_size)]
    pub window_size: Option<usize>,
    /// Ask the server to check the stream's data first.
    #[arg(long)]
    pub check: bool,
    /// No progress output.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

impl BackupFlags {
    fn options(&self, conn: &ConnectArgs) -> stream_backup::BackupOptions {
        stream_backup::BackupOptions {
            no_consumers: self.no_consumers,
            chunk_size: self.chunk_size as u64,
            window_size: self.window_size.map(|w| w as u64),
            check: self.check,
            idle_timeout: conn.timeout.max(Duration::from_secs(5)),
            freeze: None,
            since: None,
        }
    }
}

/// `stream backup STREAM DIR`.
#[derive(Args, Debug, Clone)]
pub struct StreamBackupArgs {
    /// The stream.
    pub stream: String,
    /// Folder to write (`stream.tar.s2`, `backup.json`): a path, file://PATH or
    /// s3://BUCKET/PREFIX.
    pub dir: String,
    /// Incremental: store only what changed after the earlier natrium backup at PREV
    /// (new messages, deletes, consumer state): a path, file://PATH or
    /// s3://BUCKET/PREFIX; needs natrium-server.
    #[arg(long, value_name = "PREV")]
    pub since: Option<String>,
    /// Finish the interrupted backup in DIR (a folder or s3:// prefix): keep what it
    /// received, fetch only the rest (needs natrium-server). An incremental one is
    /// resumed with the same --since.
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub flags: BackupFlags,
}

/// `stream restore DIR`.
#[derive(Args, Debug, Clone)]
pub struct StreamRestoreArgs {
    /// Backup folder: a path, file://PATH or s3://BUCKET/PREFIX.
    pub dir: String,
    /// Restore under this name instead.
    #[arg(long)]
    pub name: Option<String>,
    /// Continue the interrupted restore of this backup: natrium-server kept what it
    /// received (for 5 minutes by default), so only the rest is sent.
    #[arg(long)]
    pub resume: bool,
    /// No progress output.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// `account backup DIR`.
#[derive(Args, Debug, Clone)]
pub struct AccountBackupArgs {
    /// Folder to write (one sub-folder per stream): a path, file://PATH or
    /// s3://BUCKET/PREFIX.
    pub dir: String,
    /// Incremental: per stream, only what changed after its folder in this earlier
    /// natrium account backup (streams new since then are backed up in full): a path,
    /// file://PATH or s3://BUCKET/PREFIX.
    #[arg(long, value_name = "PREV")]
    pub since: Option<String>,
    #[command(flatten)]
    pub flags: BackupFlags,
}

/// `account restore DIR`.
#[derive(Args, Debug, Clone)]
pub struct AccountRestoreArgs {
    /// Backup folder (one sub-folder per stream): a path, file://PATH or
    /// s3://BUCKET/PREFIX.
    pub dir: String,
    /// Skip streams that exist instead of refusing.
    #[arg(long)]
    pub skip_existing: bool,
    /// Continue an interrupted account restore: streams that exist are skipped, the
    /// one that was cut off is resumed (natrium-server), the rest restored.
    #[arg(long)]
    pub resume: bool,
    /// No progress output.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

async fn connect(conn: &ConnectArgs) -> crate::error::Result<Client> {
    conn.connect().await
}

/// Run `fut`, turning Ctrl-C into [`BackupError::Interrupted`] (the folder keeps its
/// INCOMPLETE marker).
async fn interruptible<T>(
    fut: impl std::future::Future<Output = Result<T, BackupError>>,
) -> Result<T, BackupError> {
    tokio::select! {
        r = fut => r,
        _ = tokio::signal::ctrl_c() => Err(BackupError::Interrupted),
    }
}

fn print_json<T: serde::Serialize>(v: &T) -> crate::error::Result<()> {
    let s = serde_json::to_string_pretty(v)
        .map_err(|e| crate::error::Error::Internal(e.to_string()))?;
    println!("{s}");
    Ok(())
}

/// `natrium stream backup`.
pub async fn run_stream_backup(
    conn: &ConnectArgs,
    a: StreamBackupArgs,
    json: bool,
) -> crate::error::Result<()> {
    let sd = layout::StreamDir::at(target::Target::parse(&a.dir)?);
    let client = connect(conn).await?;
    let mut p = progress::Progress::new(progress::Mode::detect(a.flags.quiet || json));
    let mut opts = a.flags.options(conn);
    if let Some(prev) = &a.since {
        let prev = layout::StreamDir::at(target::Target::parse(prev)?);
        opts.since = Some(chain::parent(&prev, &a.stream).await?);
    }
    let s = if a.resume {
        interruptible(resume::resume_backup(
            &client, &a.stream, &sd, &opts, &mut p,
        ))
        .await?
    } else {
        interruptible(stream_backup::backup_stream(
            &client, &a.stream, &sd, &opts, &mut p,
        ))
        .await?
    };
    if json {
        print_json(&s)?;
    }
    Ok(())
}

/// Ctrl-C during a restore: say how to continue it.
fn restore_interrupted(e: BackupError) -> BackupError {
    match e {
        BackupError::Interrupted => BackupError::RestoreInterrupted,
        e => e,
    }
}

/// `natrium stream restore`.
pub async fn run_stream_restore(
    conn: &ConnectArgs,
    a: StreamRestoreArgs,
    json: bool,
) -> crate::error::Result<()> {
    let sd = layout::StreamDir::at(target::Target::parse(&a.dir)?);
    let client = connect(conn).await?;
    let mut p = progress::Progress::new(progress::Mode::detect(a.quiet || json));
    let s = interruptible(stream_restore::restore_stream(
        &client,
        &sd,
        a.name.as_deref(),
        conn.timeout.max(Duration::from_secs(5)),
        a.resume,
        &mut p,
    ))
    .await
    .map_err(restore_interrupted)?;
    if json {
        print_json(&s)?;
    }
    Ok(())
}

/// `natrium account backup`.
pub async fn run_account_backup(
    conn: &ConnectArgs,
    a: AccountBackupArgs,
    json: bool,
) -> crate::error::Result<()> {
    let dir = target::Target::parse(&a.dir)?;
    let since = a.since.as_deref().map(target::Target::parse).transpose()?;
    let client = connect(conn).await?;
    let mut p = progress::Progress::new(progress::Mode::detect(a.flags.quiet || json));
    let s = interruptible(account::backup_account(
        &client,
        &dir,
        since.as_ref(),
        &a.flags.options(conn),
        &mut p,
    ))
    .await?;
    if json {
        print_json(&s)?;
    } else if !a.flags.quiet {
        eprintln!(
            "Backed up {} streams into {} ({})",
            s.streams.len(),
            dir.display(),
            if s.consistent {
                "one consistent point in time"
            } else {
                "stream by stream"
            }
        );
    }
    Ok(())
}

/// `natrium account restore`.
pub async fn run_account_restore(
    conn: &ConnectArgs,
    a: AccountRestoreArgs,
    json: bool,
) -> crate::error::Result<()> {
    let dir = target::Target::parse(&a.dir)?;
    let client = connect(conn).await?;
    let mut p = progress::Progress::new(progress::Mode::detect(a.quiet || json));
    let s = interruptible(account::restore_account(
        &client,
        &dir,
        a.skip_existing || a.resume,
        conn.timeout.max(Duration::from_secs(5)),
        a.resume,
        &mut p,
    ))
    .await
    .map_err(restore_interrupted)?;
    if json {
        print_json(&s)?;
    } else if !a.quiet {
        for name in &s.skipped {
            eprintln!("Skipped stream {name:?}: it exists");
        }
        eprintln!("Restored {} streams", s.restored.len());
    }
    Ok(())
}
