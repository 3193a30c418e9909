//! `natrium stream restore DIR`: upload a backup folder through the JetStream API.
//!
//! Protocol (backup-spec §2.3): a restore request with the backup's config and state
//! answers with an upload subject; the archive goes there as requests, one at a time,
//! each answered with an empty message (anything else is an error: a JSON error or an
//! `-ERR`); an empty request ends the upload and is answered with the new stream's info
//! or the error. The server checks limits and, on natrium, makes the stream visible only
//! once the whole archive was verified.
//!
//! Resumable restores (natrium-server, docs/api.md): every restore asks the server to
//! keep what it received should the upload break off (`natrium_resumable`, ignored by
//! nats-server), under an id derived from the backup itself ([`restore_id`]), so that
//! `stream restore DIR --resume` needs no state of its own: it asks the server to
//! continue (`natrium_resume`) with the same id, learns the last sequence the server
//! holds, and uploads only the rest, cut from the same archive (or merged chain) by
//! `natrium_store::archive::merge_chain_after`.
//!
//! Speed: jsm.go sends 64 KiB and waits for each answer, so a restore costs one round
//! trip per 64 KiB and the server idles between chunks. We send chunks of up to the
//! server's `max_payload` (at most 1 MiB) and keep [`UPLOAD_WINDOW`] of them in flight
//! ([`Uploader`]). Both servers take that: NATS keeps a connection's messages in order,
//! nats-server queues upload chunks without a bound, and natrium answers a chunk when it
//! takes it from its queue (64 chunks deep), so a client with at most that many
//! unanswered chunks can never overrun it.

use std::time::{Duration, Instant};

use async_nats::Client;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use serde_json::{Value, json};

use super::layout::{ARCHIVE, StreamDir};
use super::progress::Progress;
use super::{BackupError, api_request, stream_exists};

/// Bytes per upload request (jsm.go's size); the floor of [`upload_chunk`].
pub const UPLOAD_CHUNK: usize = 64 * 1024;
/// Largest upload request we send (the default `max_payload`).
pub const MAX_UPLOAD_CHUNK: usize = 1 << 20;
/// Upload requests in flight at once (below natrium's 64-chunk upload queue).
pub const UPLOAD_WINDOW: usize = 8;
/// How long the final answer may take (the server verifies and activates).
const FINAL_TIMEOUT: Duration = Duration::from_secs(3600);
/// How long `--resume` waits for the server to notice that the interrupted upload
/// went quiet (natrium-server parks it after 5 s without data).
const RESUME_WAIT: Duration = Duration::from_secs(30);

/// What a finished restore reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreSummary {
    /// Stream name restored.
    pub stream: String,
    /// Archive bytes sent.
    pub bytes: u64,
    /// Messages in the restored stream.
    pub messages: u64,
    /// Its last sequence.
    pub last_seq: u64,
    /// Consumers restored.
    pub consumers: u64,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// Restore the backup in `dir`, under `rename` if given. An incremental backup is
/// restored with its whole chain (`chain::restore`). With `resume`, continue the
/// interrupted restore of this backup that natrium-server kept.
pub async fn restore_stream(
    client: &Client,
    dir: &StreamDir,
    rename: Option<&str>,
    chunk_timeout: Duration,
    resume: bool,
    progress: &mut Progress,
) -> Result<RestoreSummary, BackupError> {
    let started = Instant::now();
    let meta = dir.read_meta().await?;
    if super::chain::is_incremental(&meta) {
        return super::chain::restore(client, dir, rename, chunk_timeout, resume, progress).await;
    }
    let mut file = dir.target.open(ARCHIVE).await?;
    let id = restore_id(&meta, rename, file.size);
    let b = begin(client, &meta, rename, dir, &id, resume).await?;
    progress.start(&b.name, file.size, 0);
    let sent = match b.after {
        None => {
            let mut up = Uploader::new(client, &b.upload, chunk_timeout);
            let size = upload_chunk(client);
            while let Some(chunk) = file.next_chunk(size).await? {
                up.send(chunk, progress).await?;
            }
            up.flush(progress).await?
        }
        Some(after) => {
            let source = file.into_blocking_read();
            let (sent, _) = super::chain::upload_merged(
                client,
                &b.upload,
                vec![source],
                Some(after),
                chunk_timeout,
                progress,
            )
            .await
            .map_err(|e| {
                e.into_backup_error(|m| {
                    BackupError::Protocol(format!(
                        "cutting the archive after sequence {after} for the resume: {m}"
                    ))
                })
            })?;
            sent
        }
    };
    finish(client, b.upload, &b.name, sent, started, progress).await
}

/// The id a restore of this backup is resumable under: a hash of its `backup.json`,
/// the archive's size and the target name, so that `--resume` with the same backup
/// finds it again and a different backup never continues it.
pub fn restore_id(meta: &Value, rename: Option<&str>, archive_bytes: u64) -> String {
    // FNV-1a, 64 bits: stable across builds, and collisions only matter between
    // restores of the same stream name.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let text = meta.to_string();
    let size = archive_bytes.to_le_bytes();
    for part in [text.as_bytes(), rename.unwrap_or("").as_bytes(), &size[..]] {
        for &b in part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("natrium-restore-{h:016x}")
}

/// A started restore.
#[derive(Debug, Clone)]
pub struct Begun {
    /// The stream's name.
    pub name: String,
    /// Where the archive goes.
    pub upload: String,
    /// A resume: the server holds everything up to this sequence, and takes the rest
    /// as an incremental archive continuing from it.
    pub after: Option<u64>,
}

/// Bytes per upload request for this connection: the server's `max_payload`, at most
/// [`MAX_UPLOAD_CHUNK`] and at least [`UPLOAD_CHUNK`] (unless the server allows less).
pub fn upload_chunk(client: &Client) -> usize {
    let max = client.server_info().max_payload;
    if max == 0 {
        return UPLOAD_CHUNK;
    }
    max.min(MAX_UPLOAD_CHUNK).max(UPLOAD_CHUNK.min(max))
}

/// One upload request's outcome (an empty answer, or why not).
type ChunkAnswer = Result<(), BackupError>;

/// Sends upload chunks with up to [`UPLOAD_WINDOW`] requests unanswered; answers are
/// checked in order (the first bad one fails the upload).
pub struct Uploader<'a> {
    /// The connection.
    client: &'a Client,
    /// The server's upload subject.
    subject: &'a str,
    /// How long one chunk's answer may take.
    chunk_timeout: Duration,
    /// Requests sent and not yet answered, oldest first, with their sizes.
    inflight: FuturesOrdered<futures::future::BoxFuture<'a, (u64, ChunkAnswer)>>,
    /// Bytes whose chunks were answered.
    sent: u64,
}

impl<'a> Uploader<'a> {
    /// An uploader to `subject`.
    pub fn new(client: &'a Client, subject: &'a str, chunk_timeout: Duration) -> Self {
        Uploader {
            client,
            subject,
            chunk_timeout,
            inflight: FuturesOrdered::new(),
            sent: 0,
        }
    }

    /// Send `data`, first waiting for the oldest answer when the window is full.
    pub async fn send(&mut self, data: Bytes, progress: &mut Progress) -> Result<(), BackupError> {
        while self.inflight.len() >= UPLOAD_WINDOW {
            self.settle_one(progress).await?;
        }
        let client = self.client.clone();
        let subject = self.subject.to_string();
        let timeout = self.chunk_timeout;
        let n = data.len() as u64;
        self.inflight.push_back(Box::pin(async move {
            (n, send_chunk(&client, &subject, data, timeout).await)
        }));
        Ok(())
    }

    /// Wait for the oldest outstanding answer and check it.
    async fn settle_one(&mut self, progress: &mut Progress) -> Result<(), BackupError> {
        if let Some((n, answer)) = self.inflight.next().await {
            answer?;
            self.sent += n;
            progress.advance(n);
        }
        Ok(())
    }

    /// Wait for every outstanding answer; returns the bytes uploaded.
    pub async fn flush(&mut self, progress: &mut Progress) -> Result<u64, BackupError> {
        while !self.inflight.is_empty() {
            self.settle_one(progress).await?;
        }
        Ok(self.sent)
    }
}

/// Start a restore from a parsed `backup.json` (of `dir`): refuse an existing stream,
/// send the restore request (resumable under `id`, or resuming it).
pub async fn begin(
    client: &Client,
    meta: &Value,
    rename: Option<&str>,
    dir: &StreamDir,
    id: &str,
    resume: bool,
) -> Result<Begun, BackupError> {
    let mut config = meta.get("config").cloned().unwrap_or(Value::Null);
    if let Some(new) = rename {
        config["name"] = json!(new);
    }
    let name = config
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| BackupError::Json {
            path: dir.meta(),
            detail: "config has no stream name".into(),
        })?
        .to_string();
    if stream_exists(client, &name).await? {
        return Err(BackupError::StreamExists(name));
    }
    let state = meta.get("state").cloned().unwrap_or_else(|| json!({}));
    let mut req = json!({"config": config, "state": state});
    if resume {
        req["natrium_resume"] = json!(id);
    } else {
        req["natrium_resumable"] = json!({ "id": id });
    }
    let subject = format!("$JS.API.STREAM.RESTORE.{name}");
    let waited = Instant::now();
    let answer = loop {
        match api_request(client, &subject, req.to_string()).await {
            // nats-server refuses fields it does not know (10025): a plain restore
            // goes on without the extension, a resume cannot.
            Err(BackupError::Api {
                err_code: 10025,
                description,
                ..
            }) if description.contains("natrium_resum") => {
                if resume {
                    return Err(cannot_resume());
                }
                if let Some(o) = req.as_object_mut() {
                    o.remove("natrium_resumable");
                }
            }
            // The interrupted upload has not timed out on the server yet.
            Err(BackupError::Api { description, .. })
                if resume
                    && description.contains("still receiving")
                    && waited.elapsed() < RESUME_WAIT =>
            {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(BackupError::Api { description, .. })
                if resume && description.contains("no interrupted restore") =>
            {
                return Err(BackupError::NothingToResume {
                    stream: name,
                    detail: description,
                });
            }
            r => break r?,
        }
    };
    let upload = answer
        .get("deliver_subject")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| BackupError::Protocol("restore answer without deliver_subject".into()))?
        .to_string();
    let after = if resume {
        match answer
            .get("natrium_resume")
            .and_then(|r| r.get("last_seq"))
            .and_then(Value::as_u64)
        {
            Some(l) => Some(l),
            None => {
                // nats-server ignored the field and started a new restore: end it
                // empty (it fails and creates nothing).
                let _ = tokio::time::timeout(
                    Duration::from_secs(5),
                    client.request(upload, Bytes::new()),
                )
                .await;
                return Err(cannot_resume());
            }
        }
    } else {
        None
    };
    Ok(Begun {
        name,
        upload,
        after,
    })
}

fn cannot_resume() -> BackupError {
    BackupError::Unsupported(
        "the server cannot resume restores (natrium-server's natrium_resume extension; nats-server restores only from the start); nothing was restored, run the restore without --resume".into(),
    )
}

/// Upload one piece of the archive and check the server's answer to it.
pub async fn send_chunk(
    client: &Client,
    upload: &str,
    data: Bytes,
    chunk_timeout: Duration,
) -> Result<(), BackupError> {
    let reply = tokio::time::timeout(chunk_timeout, client.request(upload.to_string(), data))
        .await
        .map_err(|_| BackupError::Stalled(chunk_timeout))?
        .map_err(|e| BackupError::nats("upload chunk", e))?;
    if !reply.payload.is_empty() {
        return Err(chunk_error(&reply.payload));
    }
    Ok(())
}

/// End the upload and read the new stream's info (or the error).
pub async fn finish(
    client: &Client,
    upload: String,
    name: &str,
    sent: u64,
    started: Instant,
    progress: &mut Progress,
) -> Result<RestoreSummary, BackupError> {
    let done = tokio::time::timeout(FINAL_TIMEOUT, client.request(upload, Bytes::new()))
        .await
        .map_err(|_| BackupError::Stalled(FINAL_TIMEOUT))?
        .map_err(|e| BackupError::nats("finish upload", e))?;
    let info: Value = serde_json::from_slice(&done.payload)
        .map_err(|e| BackupError::Protocol(format!("bad final answer: {e}")))?;
    super::check_api_error(&info)?;
    if info.get("type").and_then(Value::as_str)
        != Some("io.nats.jetstream.api.v1.stream_create_response")
    {
        return Err(BackupError::Protocol(format!(
            "unexpected final answer type {:?}",
            info.get("type")
        )));
    }
    let st = &info["state"];
    let summary = RestoreSummary {
        stream: name.to_string(),
        bytes: sent,
        messages: st.get("messages").and_then(Value::as_u64).unwrap_or(0),
        last_seq: st.get("last_seq").and_then(Value::as_u64).unwrap_or(0),
        consumers: st
            .get("consumer_count")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        seconds: started.elapsed().as_secs_f64(),
    };
    progress.finish(&format!(
        "Restored stream {:?}: {} messages, last sequence {}, {} consumers, {} bytes in {:.2}s",
        name, summary.messages, summary.last_seq, summary.consumers, sent, summary.seconds
    ));
    Ok(summary)
}

/// A non-empty chunk answer: a JSON API error or a protocol `-ERR`.
fn chunk_error(payload: &[u8]) -> BackupError {
    if let Ok(v) = serde_json::from_slice::<Value>(payload)
        && let Err(e) = super::check_api_error(&v)
    {
        return e;
    }
    BackupError::Server(String::from_utf8_lossy(payload).trim().to_string())
}
