//! `natrium stream backup STREAM TARGET --resume`: finish an interrupted backup without
//! fetching again what it already received, in a local folder or at an `s3://` prefix.
//!
//! Why: a large backup over a slow or unreliable link that dies at 80% should not start
//! over. An interrupted backup keeps its `INCOMPLETE` marker and the archive bytes that
//! reached the target: locally the file as far as it was written; on object storage
//! the parts of the multipart upload that completed, listed in its journal (see
//! `upload`: an unfinished upload is otherwise invisible, and nothing else would name
//! it after a SIGKILL).
//!
//! Resuming, the same steps on both kinds of target:
//! 0. object storage only: the journaled parts are completed into `stream.tar.s2`
//!    (an upload completes only under its own key), which then holds a prefix of the
//!    archive cut at a part boundary, like the local file; stale uploads are aborted;
//! 1. that archive is read as far as it is intact — every frame checksummed, up to
//!    the last complete message `L` (one streaming pass);
//! 2. the changes after `L` are fetched with the incremental-backup extension
//!    (`natrium_since`) into the scratch sub-folder `resume-rest`;
//! 3. a second streaming pass rewrites the intact part as a complete archive up to
//!    `L` and pipes it, in memory, straight into the merge with the rest; the merged
//!    archive replaces `stream.tar.s2` only when whole (a local temporary file renamed
//!    over it; an upload, invisible until completed) — the stream as it stands at the
//!    *new* snapshot's point in time, a normal full backup (restorable by
//!    `nats stream restore` too) — and `backup.json` is finished as for any backup.
//!
//! An interrupted *incremental* backup (`--since PREV`) is resumed the same way, given
//! the same `--since`: the kept part stays an incremental archive since PREV's
//! watermark `W`, the rest's tombstones (everything at or below `L` absent at the new
//! point in time) decide which kept messages survive and which sequences at or below
//! `W` are tombstones, and the result is the incremental backup since `W` that was
//! asked for, still continuing PREV (`merge_increments`).
//!
//! The kept part is read twice from the target and written once, never fetched from
//! the server again, never held in memory or staged on local disk. Until step 3
//! completes, the kept prefix stays as it was, so a resume that is itself interrupted
//! can be resumed again. Needs natrium-server (step 2); against nats-server it stops
//! with a clear error and leaves the target as step 0 made it (a local folder as it
//! was).

use std::time::Instant;

use async_nats::Client;
use bytes::Bytes;
use natrium_store::archive::{
    ReaderOptions, copy_prefix, merge_chain, merge_increments, scan_prefix,
};
use serde_json::{Value, json};

use super::chain::{Kind, NATRIUM_KEY, NatriumMeta, Parent};
use super::layout::{ARCHIVE, StreamDir};
use super::progress::Progress;
use super::stream_backup::{BackupOptions, BackupSummary, backup_stream};
use super::target::{ChannelRead, ChannelWrite};
use super::upload::Recovered;
use super::{BackupError, chain};

/// Where the rest is fetched.
const REST: &str = "resume-rest";
/// Pieces handed between the copying, merging and writing stages.
const PIECE: usize = 256 * 1024;
/// Pieces in flight between two stages (memory is this × [`PIECE`] per pipe).
const PIECES: usize = 8;

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
    if !dir.is_interrupted().await? {
        return Err(BackupError::Usage(format!(
            "{} holds no interrupted backup to resume (no INCOMPLETE marker, or already finished)",
            dir.dir.display()
        )));
    }
    // The marker names the stream whose backup was interrupted.
    let marker = dir.marker_text().await?;
    if !marker.contains(&format!("stream {stream} ")) {
        return Err(BackupError::Usage(format!(
            "{} holds an interrupted backup of another stream ({})",
            dir.dir.display(),
            marker.trim()
        )));
    }
    // 0. What reached object storage becomes the archive object.
    let recovered = dir.target.recover_upload(ARCHIVE).await?;
    let kept = if dir.target.exists(ARCHIVE).await? {
        // 1. How much of it is intact.
        let r = dir.read_archive().await?;
        let d = dir.dir.clone();
        tokio::task::spawn_blocking(move || match scan_prefix(r) {
            Ok(p) => Ok(Some(p)),
            Err(e @ natrium_store::archive::ArchiveError::Chain { .. }) => Err(BackupError::Usage(
                format!("{}: {e}; remove the folder first", d.display()),
            )),
            Err(_) => Ok(None),
        })
        .await
        .map_err(blocking_err)??
    } else {
        None
    };
    let Some(prefix) = kept else {
        // Not even the stream state arrived: nothing to keep, start over.
        dir.discard().await?;
        return backup_stream(client, stream, dir, opts, progress).await;
    };
    // An interrupted incremental backup is completed as the same increment: it needs
    // the backup it continues (`--since`, as given the first time), and keeps it.
    match (prefix.since, &opts.since) {
        (Some(w), None) => {
            return Err(BackupError::Usage(format!(
                "{} holds an interrupted incremental backup (changes after sequence {w}): resume it with --since and the backup it continues",
                dir.dir.display()
            )));
        }
        (Some(w), Some(p)) if p.meta.watermark != w => {
            return Err(BackupError::Usage(format!(
                "{} continues the backup up to sequence {w}, but --since names one up to {}",
                dir.dir.display(),
                p.meta.watermark
            )));
        }
        (None, Some(_)) => {
            return Err(BackupError::Usage(format!(
                "{} holds an interrupted full backup: resume it without --since",
                dir.dir.display()
            )));
        }
        _ => {}
    }
    // 2. The rest, as an incremental backup after the kept part.
    let rest = dir.fresh_sub(REST).await?;
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
    let fetched = match backup_stream(client, stream, &rest, &o, progress).await {
        Ok(f) => f,
        Err(e) => {
            let _ = dir.remove_sub(&rest).await;
            return Err(match e {
                BackupError::Unsupported(_) => BackupError::Unsupported(
                    "resuming needs natrium-server (the changes after the received part are fetched with its natrium_since extension); the interrupted backup is kept as it is".into(),
                ),
                e => e,
            });
        }
    };
    let rest_meta = rest.read_meta().await?;
    // 3. Kept part (rewritten complete) + rest, merged over the archive.
    let hint = dir.target.size(ARCHIVE).await? + rest.target.size(ARCHIVE).await?;
    let mut out = dir.target.create_replacement(ARCHIVE, hint).await?;
    let merged = merge_into(dir, &rest, &prefix, &mut out).await;
    let merged = match merged {
        Ok(m) => {
            out.finish().await?;
            m
        }
        Err(e) => {
            out.stop().await;
            return Err(e);
        }
    };
    let meta = json!({
        "config": rest_meta.get("config").cloned().unwrap_or(Value::Null),
        "state": rest_meta.get("state").cloned().unwrap_or(Value::Null),
        NATRIUM_KEY: chain::section(dir, stream, fetched.last_seq, opts.since.as_ref()),
    });
    dir.finish(&meta).await?;
    dir.remove_sub(&rest).await?;
    let summary = BackupSummary {
        stream: stream.to_string(),
        dir: dir.dir.display().to_string(),
        bytes: dir.target.size(ARCHIVE).await?,
        chunks: fetched.chunks,
        messages: merged.messages,
        last_seq: merged.last_seq,
        seconds: started.elapsed().as_secs_f64(),
        resumed_after: Some(prefix.last_seq),
    };
    let uploaded = match recovered {
        Recovered::Completed(b) => format!(" (the {b} bytes of the interrupted upload's parts)"),
        _ => String::new(),
    };
    progress.finish(&format!(
        "Resumed the backup of stream {:?}: kept {} messages up to sequence {}{}, fetched {} bytes for the rest, up to sequence {}",
        stream, prefix.messages, prefix.last_seq, uploaded, fetched.bytes, merged.last_seq
    ));
    Ok(summary)
}

/// Stream the merged archive into `out`: one thread rewrites the kept part of `dir`'s
/// archive as a complete archive into a pipe, a second merges that with `rest`'s
/// archive into another pipe, and this task writes what comes out.
async fn merge_into(
    dir: &StreamDir,
    rest: &StreamDir,
    prefix: &natrium_store::archive::Prefix,
    out: &mut super::target::Writer,
) -> Result<natrium_store::archive::ChainSummary, BackupError> {
    let kept = dir.read_archive().await?;
    let rest_archive = rest.read_archive().await?;
    let (ktx, krx) = tokio::sync::mpsc::channel(PIECES);
    let p = prefix.clone();
    let incremental = prefix.since.is_some();
    let copier = tokio::task::spawn_blocking(move || {
        let w = copy_prefix(kept, &p, ChannelWrite::new(ktx, PIECE)).map_err(|e| e.to_string())?;
        w.finish().map_err(|e| e.to_string())
    });
    let (mtx, mut mrx) = tokio::sync::mpsc::channel(PIECES);
    let merger = tokio::task::spawn_blocking(move || {
        let links: Vec<Box<dyn std::io::Read + Send>> =
            vec![Box::new(ChannelRead::new(krx)), rest_archive];
        let merge = if incremental {
            merge_increments
        } else {
            merge_chain
        };
        let (w, s) = merge(
            links,
            ChannelWrite::new(mtx, PIECE),
            &ReaderOptions::default(),
        )
        .map_err(|e| e.to_string())?;
        w.finish().map_err(|e| e.to_string())?;
        Ok::<_, String>(s)
    });
    let mut wrote: Result<(), BackupError> = Ok(());
    // The merger sends only `Ok` pieces; it reports its failures when joined.
    while let Some(Ok(piece)) = mrx.recv().await {
        let piece: Bytes = piece;
        if let Err(e) = out.write(piece).await {
            wrote = Err(e);
            break;
        }
    }
    // Stop the stages if writing failed (their pipes close), then collect them.
    drop(mrx);
    let copied = copier.await.map_err(blocking_err)?;
    let merged = merger.await.map_err(blocking_err)?;
    wrote?;
    let broken = |what: &str, e: String| BackupError::Chain {
        dir: dir.dir.clone(),
        reason: format!("{what} failed: {e}"),
    };
    copied.map_err(|e| broken("rewriting the received part", e))?;
    merged.map_err(|e| broken("merging the kept part with the rest", e))
}
