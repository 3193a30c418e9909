//! `natrium account backup DIR` / `account restore DIR`: every stream of the account,
//! one folder per stream (`DIR/<stream>/`), the layout the `nats` CLI uses.
//!
//! Backup lists all stream names (paged, so large accounts are complete — the nats CLI
//! once stopped at 256), then backs them up one after another. Restore takes every
//! sub-folder holding a `backup.json`; a stream that already exists is refused (the
//! whole restore stops before uploading anything) or, with `--skip-existing`, skipped
//! and named.

use std::path::Path;

use async_nats::Client;
use serde_json::{Value, json};

use super::layout::{StreamDir, create_private_dir, io};
use super::progress::Progress;
use super::stream_backup::{BackupOptions, BackupSummary, backup_stream};
use super::stream_restore::{RestoreSummary, restore_stream};
use super::{BackupError, api_request, stream_exists};

/// All stream names of the account, every page.
pub async fn stream_names(client: &Client) -> Result<Vec<String>, BackupError> {
    let mut names = Vec::new();
    loop {
        let page = api_request(
            client,
            "$JS.API.STREAM.NAMES",
            json!({"offset": names.len()}).to_string(),
        )
        .await?;
        let got: Vec<String> = page
            .get("streams")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let total = page.get("total").and_then(Value::as_u64).unwrap_or(0) as usize;
        if got.is_empty() {
            break;
        }
        names.extend(got);
        if names.len() >= total {
            break;
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// Back up every stream into `dir/<stream>`.
pub async fn backup_account(
    client: &Client,
    dir: &Path,
    opts: &BackupOptions,
    progress: &mut Progress,
) -> Result<Vec<BackupSummary>, BackupError> {
    let names = stream_names(client).await?;
    create_private_dir(dir)?;
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let sd = StreamDir::new(dir.join(&name));
        out.push(backup_stream(client, &name, &sd, opts, progress).await?);
    }
    Ok(out)
}

/// What an account restore did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AccountRestore {
    /// Streams restored.
    pub restored: Vec<RestoreSummary>,
    /// Streams skipped because they exist.
    pub skipped: Vec<String>,
}

/// Restore every stream folder in `dir`.
pub async fn restore_account(
    client: &Client,
    dir: &Path,
    skip_existing: bool,
    chunk_timeout: std::time::Duration,
    progress: &mut Progress,
) -> Result<AccountRestore, BackupError> {
    let mut folders = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let e = e.map_err(|e| io(dir, e))?;
        if e.path().is_dir() {
            folders.push(StreamDir::new(e.path()));
        }
    }
    folders.sort_by(|a, b| a.dir.cmp(&b.dir));
    if folders.is_empty() {
        return Err(BackupError::Usage(format!(
            "{} holds no stream backups",
            dir.display()
        )));
    }
    // Check everything before uploading anything.
    let mut todo = Vec::new();
    let mut skipped = Vec::new();
    for sd in folders {
        let meta = sd.read_meta()?;
        let name = meta["config"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if stream_exists(client, &name).await? {
            if skip_existing {
                skipped.push(name);
                continue;
            }
            return Err(BackupError::StreamExists(name));
        }
        todo.push(sd);
    }
    let mut restored = Vec::new();
    for sd in todo {
        restored.push(restore_stream(client, &sd, None, chunk_timeout, progress).await?);
    }
    Ok(AccountRestore { restored, skipped })
}
