//! `natrium account backup DIR` / `account restore DIR`: every stream of the account,
//! one folder per stream (`DIR/<stream>/`), the layout the `nats` CLI uses.
//!
//! Backup lists all stream names (paged, so large accounts are complete — the nats CLI
//! once stopped at 256), then backs them up one after another. Restore takes every
//! sub-folder holding a `backup.json`; a stream that already exists is refused (the
//! whole restore stops before uploading anything) or, with `--skip-existing`, skipped
//! and named. `account backup DIR --since PREV` makes every stream folder an
//! incremental backup after its folder in PREV (`chain`); restore replays each chain.

use async_nats::Client;
use serde_json::{Value, json};

use super::catalog::ACCOUNT_META;
use super::layout::{INCOMPLETE, META, StreamDir};
use super::progress::Progress;
use super::stream_backup::{BackupOptions, BackupSummary, backup_stream};
use super::stream_restore::{RestoreSummary, restore_stream};
use super::target::Target;
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

/// What an account backup did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AccountBackup {
    /// All streams were captured at one instant (natrium-server's freeze).
    pub consistent: bool,
    /// When the account was frozen (consistent backups).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// One entry per stream.
    pub streams: Vec<BackupSummary>,
}

/// `$JS.API.NATRIUM.ACCOUNT.FREEZE`, if the server has it: the token, the freeze time
/// and the streams frozen. `None` from a server without it (nats-server does not answer).
async fn freeze(client: &Client) -> Option<(String, String, Vec<String>)> {
    let msg = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        client.request("$JS.API.NATRIUM.ACCOUNT.FREEZE", bytes::Bytes::new()),
    )
    .await
    .ok()?
    .ok()?;
    let v: Value = serde_json::from_slice(&msg.payload).ok()?;
    if v.get("type").and_then(Value::as_str) != Some("io.natrium.api.v1.account_freeze_response") {
        return None;
    }
    let token = v.get("token")?.as_str()?.to_string();
    let time = v
        .get("time")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let names = v.get("streams")?.as_object()?.keys().cloned().collect();
    Some((token, time, names))
}

/// Back up every stream into `dir/<stream>`. On natrium-server all streams come from
/// one instant (a freeze); elsewhere each is snapshotted at its own moment, and the
/// user is told. `dir/account.json` records which.
///
/// With `since` (an earlier natrium account backup), each stream that has a folder there
/// is backed up incrementally after it (`chain`); a stream new since then gets a full
/// backup.
pub async fn backup_account(
    client: &Client,
    dir: &Target,
    since: Option<&Target>,
    opts: &BackupOptions,
    progress: &mut Progress,
) -> Result<AccountBackup, BackupError> {
    let frozen = freeze(client).await;
    let (names, time, token) = match frozen {
        Some((token, time, names)) => (names, Some(time), Some(token)),
        None => {
            eprintln!(
                "note: the server offers no consistent account snapshot (not natrium-server); \
                 backing up stream by stream, each at its own moment"
            );
            (stream_names(client).await?, None, None)
        }
    };
    dir.prepare().await?;
    if dir.exists(META).await? || dir.exists(ACCOUNT_META).await? {
        return Err(BackupError::Exists(dir.location("")));
    }
    // Marked unfinished until account.json is written: a backup cut short between
    // two streams must not pass for a whole account.
    dir.write_small(INCOMPLETE, b"account backup in progress\n")
        .await?;
    let mut streams = Vec::with_capacity(names.len());
    let mut o = opts.clone();
    o.freeze = token.clone();
    for name in &names {
        let sd = StreamDir::at(dir.join(name));
        o.since = match since.map(|p| StreamDir::at(p.join(name))) {
            Some(prev) if prev.target.exists(META).await? => {
                Some(super::chain::parent(&prev, name).await?)
            }
            _ => None,
        };
        streams.push(backup_stream(client, name, &sd, &o, progress).await?);
    }
    let out = AccountBackup {
        consistent: token.is_some(),
        time,
        streams,
    };
    let meta = json!({
        "consistent": out.consistent,
        "time": out.time,
        "streams": out.streams.iter().map(|s| (s.stream.clone(), json!({"last_seq": s.last_seq}))).collect::<serde_json::Map<_, _>>(),
    });
    dir.write_small(
        ACCOUNT_META,
        &serde_json::to_vec_pretty(&meta).unwrap_or_default(),
    )
    .await?;
    dir.remove(INCOMPLETE).await?;
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
    dir: &Target,
    skip_existing: bool,
    chunk_timeout: std::time::Duration,
    resume: bool,
    progress: &mut Progress,
) -> Result<AccountRestore, BackupError> {
    if dir.exists(INCOMPLETE).await? {
        return Err(BackupError::Incomplete(dir.location("")));
    }
    let folders: Vec<StreamDir> = dir
        .children()
        .await?
        .iter()
        .map(|name| StreamDir::at(dir.join(name)))
        .collect();
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
        let meta = sd.read_meta().await?;
        if super::chain::is_incremental(&meta) {
            // A broken chain is refused before any stream is created.
            super::chain::verify(&super::chain::resolve(&sd).await?).await?;
        }
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
        // Resuming an account restore: the stream that was cut off continues, those
        // not reached yet start from the beginning.
        let r = match restore_stream(client, &sd, None, chunk_timeout, resume, progress).await {
            Err(BackupError::NothingToResume { .. }) if resume => {
                restore_stream(client, &sd, None, chunk_timeout, false, progress).await
            }
            r => r,
        };
        restored.push(r?);
    }
    Ok(AccountRestore { restored, skipped })
}
