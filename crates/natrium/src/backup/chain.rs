//! Incremental backups and their chains: `stream backup STREAM DIR --since PREV`,
//! `stream restore DIR` of an incremental folder, and `backup verify` of one.
//!
//! Why: a nightly full backup copies the whole stream although almost nothing changed.
//! With `--since PREV` the server (natrium's `natrium_since` snapshot extension) sends
//! only what changed after PREV's watermark — new messages, the sequences gone since
//! (tombstones, purges included) and the current stream and consumer state — as an
//! incremental archive (`natrium_store::archive::incremental`).
//!
//! Each folder's `backup.json` keeps the nats CLI's `config` and `state` keys (a full
//! natrium backup still restores with `nats stream restore`) and adds a `natrium`
//! section: the backup's random `id`, `kind` (`full` | `incremental`), `stream`,
//! `watermark`, `created`, and for an incremental one its `parent` (recorded relative
//! to this backup when both are local folders or both prefixes in one bucket, so a
//! chain moves as a whole; else the parent's `s3://` URL or absolute path: see
//! `StreamDir::record`), the parent's `parent_id` and `since` (= the parent's
//! watermark). Links may live on any target, mixed: each is read through its
//! `StreamDir`, and archives are streamed (from object storage through a bounded
//! pipe), never held whole.
//!
//! Restore walks the parents back to the full backup, checks every link (ids,
//! watermarks, stream names, then each archive end to end) *before* asking the server
//! for anything, and then streams the merged chain — one ordinary v2 archive of the
//! stream at the last link's watermark — through the normal restore API. So the restore
//! half works against nats-server 2.15+ too; only taking an incremental backup needs
//! natrium-server, and the CLI refuses rather than write a full archive labelled
//! incremental when the server does not echo the extension.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use async_nats::Client;
use bytes::Bytes;
use natrium_store::archive::{
    ArchiveFormat, ChainSummary, ReaderOptions, StreamSummary, merge_chain_after,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::BackupError;
use super::layout::{ARCHIVE, StreamDir};
use super::progress::Progress;
use super::stream_restore::{self, RestoreSummary};
use super::target::ChannelWrite;

/// The key of natrium's section in `backup.json`.
pub const NATRIUM_KEY: &str = "natrium";
/// Longest chain followed (a guard against cycles through copied folders).
pub const MAX_LINKS: usize = 10_000;

/// Full or incremental.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The whole stream.
    Full,
    /// The changes after the parent's watermark.
    Incremental,
}

/// natrium's section of `backup.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatriumMeta {
    /// This backup's identity (128 random bits, hex).
    pub id: String,
    /// Full or incremental.
    pub kind: Kind,
    /// The stream backed up.
    pub stream: String,
    /// The last stream sequence the backup covers (its point in time).
    pub watermark: u64,
    /// When the backup was taken (RFC 3339).
    pub created: String,
    /// Incremental: the parent backup, relative to this one, an absolute path or an
    /// `s3://` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Incremental: the parent's `id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// Incremental: the parent's watermark; the archive holds the messages above it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
}

/// The earlier backup an incremental one continues from.
#[derive(Debug, Clone)]
pub struct Parent {
    /// Its folder.
    pub dir: StreamDir,
    /// Its section.
    pub meta: NatriumMeta,
}

/// One link of a chain.
#[derive(Debug, Clone)]
pub struct Link {
    /// Its folder.
    pub dir: StreamDir,
    /// Its whole `backup.json`.
    pub backup: Value,
    /// Its natrium section.
    pub meta: NatriumMeta,
}

fn broken(dir: &StreamDir, reason: impl Into<String>) -> BackupError {
    BackupError::Chain {
        dir: dir.dir.clone(),
        reason: reason.into(),
    }
}

/// The natrium section of a parsed `backup.json`, if it has one.
pub fn natrium_meta(dir: &StreamDir, backup: &Value) -> Result<Option<NatriumMeta>, BackupError> {
    match backup.get(NATRIUM_KEY) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| BackupError::Json {
                path: dir.meta(),
                detail: format!("bad \"{NATRIUM_KEY}\" section: {e}"),
            }),
    }
}

/// Whether a parsed `backup.json` is an incremental backup's.
pub fn is_incremental(backup: &Value) -> bool {
    backup
        .get(NATRIUM_KEY)
        .and_then(|n| n.get("kind"))
        .and_then(Value::as_str)
        == Some("incremental")
}

/// Read `prev` (a folder or an object prefix) as the parent of a new incremental
/// backup of `stream`.
pub async fn parent(prev: &StreamDir, stream: &str) -> Result<Parent, BackupError> {
    let backup = prev.read_meta().await?;
    let meta = natrium_meta(prev, &backup)?.ok_or_else(|| {
        broken(
            prev,
            "not written by natrium (backup.json has no \"natrium\" section); take a full backup with natrium first",
        )
    })?;
    if meta.stream != stream {
        return Err(broken(
            prev,
            format!("is a backup of stream {:?}, not of {stream:?}", meta.stream),
        ));
    }
    Ok(Parent {
        dir: prev.clone(),
        meta,
    })
}

/// A new random backup id.
fn new_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The section to write into the new backup `dir`'s `backup.json`.
pub fn section(dir: &StreamDir, stream: &str, watermark: u64, parent: Option<&Parent>) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    let meta = NatriumMeta {
        id: new_id(),
        kind: if parent.is_some() {
            Kind::Incremental
        } else {
            Kind::Full
        },
        stream: stream.to_string(),
        watermark,
        created: natrium_store::archive::format_go_time(now),
        parent: parent.map(|p| dir.record(&p.dir)),
        parent_id: parent.map(|p| p.meta.id.clone()),
        since: parent.map(|p| p.meta.watermark),
    };
    serde_json::to_value(meta).unwrap_or(Value::Null)
}

/// Check the snapshot answer acknowledges `natrium_since` (natrium-server echoes it;
/// nats-server ignores the field and would send a full archive).
pub fn check_since_ack(answer: &Value, since: u64) -> Result<(), BackupError> {
    match answer.get("natrium_since").and_then(Value::as_u64) {
        Some(n) if n == since => Ok(()),
        Some(n) => Err(BackupError::Protocol(format!(
            "asked for the changes after sequence {since}, the server answered {n}"
        ))),
        None => Err(no_extension()),
    }
}

/// A snapshot request with `natrium_since` refused: nats-server rejects the unknown
/// field (10025 `json: unknown field "natrium_since"`), which says the same as a
/// missing acknowledgement.
pub fn explain_refusal(e: BackupError) -> BackupError {
    match e {
        BackupError::Api {
            err_code: 10025,
            description,
            ..
        } if description.contains("natrium_since") => no_extension(),
        e => e,
    }
}

fn no_extension() -> BackupError {
    BackupError::Unsupported(
        "the server does not support incremental backups (natrium_since snapshot extension; nats-server takes only full backups); nothing was written, take a full backup without --since".into(),
    )
}

/// The chain ending at `dir`, full backup first. Checks what the folders' metadata can
/// tell: every link present and finished, ids and watermarks continuing each other, one
/// stream throughout. Links may live on any target (`StreamDir::resolve`).
pub async fn resolve(dir: &StreamDir) -> Result<Vec<Link>, BackupError> {
    let mut links: Vec<Link> = Vec::new();
    let mut seen = HashSet::new();
    let mut cur = dir.clone();
    loop {
        let child = links.last();
        let backup = cur.read_meta().await.map_err(|e| match child {
            Some(c) => broken(
                &c.dir,
                format!("its parent {} is unusable: {e}", cur.dir.display()),
            ),
            None => e,
        })?;
        let meta = natrium_meta(&cur, &backup)?
            .ok_or_else(|| broken(&cur, "backup.json has no \"natrium\" section"))?;
        if let Some(c) = child {
            if c.meta.parent_id.as_deref() != Some(meta.id.as_str()) {
                return Err(broken(
                    &c.dir,
                    format!(
                        "expects parent id {:?} but {} has id {:?} (the parent was replaced)",
                        c.meta.parent_id.as_deref().unwrap_or(""),
                        cur.dir.display(),
                        meta.id
                    ),
                ));
            }
            if c.meta.since != Some(meta.watermark) {
                return Err(broken(
                    &c.dir,
                    format!(
                        "continues from sequence {:?} but its parent's watermark is {}",
                        c.meta.since, meta.watermark
                    ),
                ));
            }
            if c.meta.stream != meta.stream {
                return Err(broken(
                    &c.dir,
                    format!(
                        "is of stream {:?}, its parent of {:?}",
                        c.meta.stream, meta.stream
                    ),
                ));
            }
        }
        if !seen.insert(meta.id.clone()) || links.len() >= MAX_LINKS {
            return Err(broken(dir, "the chain loops or is too long"));
        }
        let next = match meta.kind {
            Kind::Full => None,
            Kind::Incremental => {
                let p = meta
                    .parent
                    .as_deref()
                    .ok_or_else(|| broken(&cur, "incremental backup without a parent"))?;
                Some(cur.resolve(p)?)
            }
        };
        links.push(Link {
            dir: cur.clone(),
            backup,
            meta,
        });
        match next {
            Some(n) => cur = n,
            None => break,
        }
    }
    links.reverse();
    Ok(links)
}

/// Verify every link's archive end to end and that it is what its `backup.json` says
/// (full or incremental, continuing from the parent's watermark, ending at its own).
/// Each archive is streamed (from object storage through a bounded pipe) and checked
/// in a blocking task.
pub async fn verify(links: &[Link]) -> Result<Vec<StreamSummary>, BackupError> {
    let mut out = Vec::with_capacity(links.len());
    for (i, l) in links.iter().enumerate() {
        let r = l
            .dir
            .read_archive()
            .await
            .map_err(|e| broken(&l.dir, format!("archive unreadable: {e}")))?;
        let (name, stream) = (l.dir.dir.display().to_string(), l.meta.stream.clone());
        let s = tokio::task::spawn_blocking(move || {
            natrium_store::archive::verify_archive(r, &name, Some(&stream))
        })
        .await
        .map_err(|e| BackupError::Protocol(format!("verification task: {e}")))?
        .map_err(|e| broken(&l.dir, format!("archive damaged: {e}")))?;
        let want_inc = i > 0;
        if (s.format == ArchiveFormat::Incremental) != want_inc {
            return Err(broken(
                &l.dir,
                if want_inc {
                    "an incremental link holds a full archive"
                } else {
                    "the first link holds an incremental archive"
                },
            ));
        }
        if want_inc && s.since != l.meta.since {
            return Err(broken(
                &l.dir,
                format!(
                    "archive continues from {:?}, backup.json says {:?}",
                    s.since, l.meta.since
                ),
            ));
        }
        if s.last_seq != l.meta.watermark {
            return Err(broken(
                &l.dir,
                format!(
                    "archive ends at sequence {}, backup.json's watermark is {}",
                    s.last_seq, l.meta.watermark
                ),
            ));
        }
        out.push(s);
    }
    Ok(out)
}

/// `backup verify` of a folder: `None` unless it is an incremental backup; else the
/// verified chain (full first) or why it is broken.
pub async fn verify_folder(dir: &StreamDir) -> Option<Result<Vec<StreamSummary>, BackupError>> {
    let backup = dir.read_meta().await.ok()?;
    if !is_incremental(&backup) {
        return None;
    }
    Some(match resolve(dir).await {
        Ok(links) => verify(&links).await,
        Err(e) => Err(e),
    })
}

/// Merge `sources` (a full archive, then incremental links) and upload the result to
/// `upload` as it is produced; with `after`, only the part after that sequence, as a
/// resumed restore takes it. Returns the bytes sent and what the merge wrote. A merge
/// failure is returned without ending the upload (the server then drops, or for a
/// resumable restore keeps, what it received).
pub async fn upload_merged(
    client: &Client,
    upload: &str,
    sources: Vec<Box<dyn std::io::Read + Send>>,
    after: Option<u64>,
    chunk_timeout: Duration,
    progress: &mut Progress,
) -> Result<(u64, ChainSummary), MergeFailed> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    let piece = stream_restore::upload_chunk(client);
    let merger = tokio::task::spawn_blocking(move || {
        // A slow download must not leave the server without a chunk for its idle
        // timeout: pieces go at least about every `PARTIAL_CHUNK_AFTER`.
        let pipe = ChannelWrite::new(tx, piece).sending_after(super::target::PARTIAL_CHUNK_AFTER);
        let (pipe, summary) = merge_chain_after(sources, pipe, &ReaderOptions::default(), after)
            .map_err(|e| e.to_string())?;
        pipe.finish().map_err(|e| e.to_string())?;
        Ok::<_, String>(summary)
    });
    let mut up = stream_restore::Uploader::new(client, upload, chunk_timeout);
    // The merger sends only `Ok` pieces; it reports its failures when joined.
    while let Some(Ok(piece)) = rx.recv().await {
        up.send(piece, progress)
            .await
            .map_err(MergeFailed::Upload)?;
    }
    let sent = up.flush(progress).await.map_err(MergeFailed::Upload)?;
    let merged = merger
        .await
        .map_err(|e| MergeFailed::Merge(format!("merge task: {e}")))?
        .map_err(MergeFailed::Merge)?;
    Ok((sent, merged))
}

/// Why [`upload_merged`] failed.
#[derive(Debug, thiserror::Error)]
pub enum MergeFailed {
    /// Uploading failed.
    #[error(transparent)]
    Upload(BackupError),
    /// Reading or merging the archives failed.
    #[error("{0}")]
    Merge(String),
}

impl MergeFailed {
    /// As a [`BackupError`], merge failures described by `what`.
    pub fn into_backup_error(self, what: impl FnOnce(String) -> BackupError) -> BackupError {
        match self {
            MergeFailed::Upload(e) => e,
            MergeFailed::Merge(m) => what(m),
        }
    }
}

/// Restore the stream at the point in time of the incremental backup `dir` (with
/// `resume`, continue the interrupted restore of it).
pub async fn restore(
    client: &Client,
    dir: &StreamDir,
    rename: Option<&str>,
    chunk_timeout: Duration,
    resume: bool,
    progress: &mut Progress,
) -> Result<RestoreSummary, BackupError> {
    if stream_restore::needs_v1(client) {
        return Err(BackupError::Unsupported(format!(
            "{} is an incremental backup, which nats-server {} cannot take (it reads only v1 archives); restore it into natrium-server or nats-server 2.15+",
            dir.target.display(),
            client.server_info().version
        )));
    }
    let started = Instant::now();
    let links = resolve(dir).await?;
    verify(&links).await?;
    let last = links.last().ok_or_else(|| broken(dir, "empty chain"))?;
    let mut total = 0u64;
    for l in &links {
        total += l.dir.target.size(ARCHIVE).await?;
    }
    let id = stream_restore::restore_id(&last.backup, rename, total);
    let b = stream_restore::begin(client, &last.backup, rename, dir, &id, resume).await?;
    progress.start(&b.name, total, 0);
    let mut sources: Vec<Box<dyn std::io::Read + Send>> = Vec::with_capacity(links.len());
    for l in &links {
        sources.push(l.dir.read_archive().await?);
    }
    let (sent, merged) =
        upload_merged(client, &b.upload, sources, b.after, chunk_timeout, progress)
            .await
            .map_err(|e| {
                e.into_backup_error(|m| broken(dir, format!("merging the chain failed: {m}")))
            })?;
    let summary =
        stream_restore::finish(client, b.upload, &b.name, sent, started, progress).await?;
    if summary.last_seq != merged.last_seq {
        return Err(BackupError::Protocol(format!(
            "restored stream ends at {}, the chain at {}",
            summary.last_seq, merged.last_seq
        )));
    }
    Ok(summary)
}
