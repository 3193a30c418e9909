//! `natrium stream backup STREAM DIR --resume`: finish an interrupted backup without
//! fetching again what it already received.
//!
//! Why: a large backup over a slow or unreliable link that dies at 80% should not start
//! over. An interrupted folder keeps its `INCOMPLETE` marker and the archive bytes
//! received so far. Resuming (1) reads that archive as far as it is intact — every
//! frame checksummed, up to the last complete message `L` — and writes it as a complete
//! archive of the stream up to `L` (a scratch file); (2) asks the server for the
//! changes after `L` with the incremental-backup extension (`natrium_since`), into a
//! scratch sub-folder; (3) merges the two into the folder's `stream.tar.s2` — the
//! stream as it stands at the *new* snapshot's point in time, a normal full backup
//! (restorable by `nats stream restore` too) — and finishes `backup.json` as any
//! backup. The kept part is rewritten locally (disk speed), never fetched again.
//! Needs natrium-server (step 2); against nats-server it stops with a clear error and
//! leaves the folder as it was.

use std::time::Instant;

use async_nats::Client;
use natrium_store::archive::{ReaderOptions, copy_prefix, merge_chain, scan_prefix};
use serde_json::{Value, json};

use super::chain::{Kind, NATRIUM_KEY, NatriumMeta, Parent};
use super::layout::StreamDir;
use super::progress::Progress;
use super::stream_backup::{BackupOptions, BackupSummary, backup_stream};
use super::{BackupError, chain};

/// The kept part, as a complete archive.
const PART: &str = "resume-part.tar.s2";
/// The merged result before it replaces the archive.
const MERGED: &str = "resume-merged.tar.s2";
/// Where the rest is fetched.
const REST: &str = "resume-rest";

fn blocking_err(e: tokio::task::JoinError) -> BackupError {
    BackupError::Protocol(format!("background task: {e}"))
}

/// Resume the interrupted backup of `stream` in `dir`.
pub async fn resume_backup(
    client: &Client,
    stream: &str,
    dir: &StreamDir,
    opts: &BackupOptions,
    progress: &mut Progress,
) -> Result<BackupSummary, BackupError> {
    let started = Instant::now();
    if !dir.is_interrupted() {
        return Err(BackupError::Usage(format!(
            "{} holds no interrupted backup to resume (no INCOMPLETE marker, or already finished)",
            dir.dir.display()
        )));
    }
    // The marker names the stream whose backup was interrupted.
    let marker = dir.marker_text()?;
    if !marker.contains(&format!("stream {stream} ")) {
        return Err(BackupError::Usage(format!(
            "{} holds an interrupted backup of another stream ({})",
            dir.dir.display(),
            marker.trim()
        )));
    }
    // 1. What survived, rewritten as a complete archive up to its last message.
    let d = dir.clone();
    let prefix = tokio::task::spawn_blocking(move || {
        let p = match scan_prefix(d.open_archive()?) {
            Ok(p) => p,
            Err(e @ natrium_store::archive::ArchiveError::Chain { .. }) => {
                return Err(BackupError::Usage(format!(
                    "{}: {e}; remove the folder first",
                    d.dir.display()
                )));
            }
            Err(_) => return Ok(None),
        };
        let out = d.create_aux(PART)?;
        let out = copy_prefix(d.open_archive()?, &p, out).map_err(|e| BackupError::Chain {
            dir: d.dir.clone(),
            reason: format!("rewriting the received part failed: {e}"),
        })?;
        d.sync_aux(PART, out)?;
        Ok::<_, BackupError>(Some(p))
    })
    .await
    .map_err(blocking_err)??;
    let Some(prefix) = prefix else {
        // Not even the stream state arrived: nothing to keep, start over.
        dir.discard()?;
        return backup_stream(client, stream, dir, opts, progress).await;
    };
    // 2. The rest, as an incremental backup after the kept part.
    let rest = dir.fresh_sub(REST)?;
    let mut o = opts.clone();
    o.since = Some(Parent {
        dir: dir.clone(),
        meta: NatriumMeta {
            id: "resume".into(),
            kind: Kind::Full,
            stream: stream.to_string(),
            watermark: prefix.last_seq,
            created: String::new(),
            parent: None,
            parent_id: None,
            since: None,
        },
    });
    let fetched = backup_stream(client, stream, &rest, &o, progress).await;
    let fetched = match fetched {
        Ok(f) => f,
        Err(e) => {
            let _ = dir.remove_aux(PART);
            let _ = dir.remove_sub(&rest);
            return Err(match e {
                BackupError::Unsupported(_) => BackupError::Unsupported(
                    "resuming needs natrium-server (the changes after the received part are fetched with its natrium_since extension); the interrupted folder is unchanged".into(),
                ),
                e => e,
            });
        }
    };
    let rest_meta = rest.read_meta().await?;
    // 3. Merge: the folder's archive becomes a complete one at the new point in time.
    let (d, r) = (dir.clone(), rest.clone());
    let merged = tokio::task::spawn_blocking(move || {
        let out = d.create_aux(MERGED)?;
        let (out, s) = merge_chain(
            vec![d.open_aux(PART)?, r.open_archive()?],
            out,
            &ReaderOptions::default(),
        )
        .map_err(|e| BackupError::Chain {
            dir: d.dir.clone(),
            reason: format!("merging the kept part with the rest failed: {e}"),
        })?;
        d.sync_aux(MERGED, out)?;
        d.replace_archive(MERGED)?;
        Ok::<_, BackupError>(s)
    })
    .await
    .map_err(blocking_err)??;
    let meta = json!({
        "config": rest_meta.get("config").cloned().unwrap_or(Value::Null),
        "state": rest_meta.get("state").cloned().unwrap_or(Value::Null),
        NATRIUM_KEY: chain::section(dir, stream, fetched.last_seq, None),
    });
    dir.finish(&meta).await?;
    dir.remove_aux(PART)?;
    dir.remove_sub(&rest)?;
    let summary = BackupSummary {
        stream: stream.to_string(),
        dir: dir.dir.display().to_string(),
        bytes: dir.archive_len()?,
        chunks: fetched.chunks,
        messages: merged.messages,
        last_seq: merged.last_seq,
        seconds: started.elapsed().as_secs_f64(),
        resumed_after: Some(prefix.last_seq),
    };
    progress.finish(&format!(
        "Resumed the backup of stream {:?}: kept {} messages up to sequence {}, fetched {} bytes for the rest, up to sequence {}",
        stream, prefix.messages, prefix.last_seq, fetched.bytes, merged.last_seq
    ));
    Ok(summary)
}
