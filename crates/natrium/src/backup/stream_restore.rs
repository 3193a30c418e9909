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
//! ([`Uploader`], which publishes them strictly in order and awaits only the answers
//! concurrently). Both servers take that: NATS keeps a connection's messages in order,
//! nats-server queues upload chunks without a bound, and natrium answers a chunk when it
//! takes it from its queue (64 chunks deep), so a client with at most that many
//! unanswered chunks can never overrun it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::Client;
use bytes::Bytes;
use futures::StreamExt;
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
    // nats-server before 2.15 reads only v1 (tar) archives: a v2 backup is converted as
    // it goes up.
    let convert = needs_v1(client) && is_v2(dir).await?;
    if convert && meta.pointer("/config/storage").and_then(Value::as_str) == Some("memory") {
        // nats-server 2.14 builds a memory stream empty and never reads the archive's
        // blocks: the restore would report success with nothing in it.
        return Err(BackupError::Unsupported(format!(
            "{} holds a memory-storage stream, which nats-server {} restores empty from a v1 archive; restore it into natrium-server or nats-server 2.15+",
            dir.target.display(),
            client.server_info().version
        )));
    }
    let b = begin(client, &meta, rename, dir, &id, resume).await?;
    progress.start(&b.name, file.size, 0);
    let sent = match b.after {
        None if convert => {
            let mut config = meta.get("config").cloned().unwrap_or(Value::Null);
            config["name"] = json!(b.name);
            upload_as_v1(
                client,
                &b,
                file.into_blocking_read(),
                config,
                chunk_timeout,
                progress,
            )
            .await?
        }
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

/// Whether the connected server is a nats-server older than 2.15, which restores only v1
/// (tar) archives (natrium-server reports 2.15.1).
pub fn needs_v1(client: &Client) -> bool {
    let version = client.server_info().version;
    let mut parts = version.split('.').map(|p| p.parse::<u64>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) < (2, 15),
        _ => false,
    }
}

/// Whether the backup's archive is a v2 one (`NATSARC1` after the S2 framing).
async fn is_v2(dir: &StreamDir) -> Result<bool, BackupError> {
    let source = dir.target.open(ARCHIVE).await?.into_blocking_read();
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut magic = [0u8; 8];
        let mut r = natrium_store::archive::S2FrameReader::new(source);
        Ok(r.read_exact(&mut magic).is_ok() && magic == *natrium_store::archive::v2::MAGIC)
    })
    .await
    .map_err(|e| BackupError::Protocol(format!("reading the archive's format: {e}")))?
}

/// Uploads the v2 archive `source` converted into a v1 one (see
/// `natrium_store::archive::convert_to_v1`), streaming; returns the bytes sent.
async fn upload_as_v1(
    client: &Client,
    b: &Begun,
    source: Box<dyn std::io::Read + Send>,
    config: Value,
    chunk_timeout: Duration,
    progress: &mut Progress,
) -> Result<u64, BackupError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    // Progress counts the v2 archive read, whose size the bar was started with (the v1
    // archive's size is known only at its end).
    let read = Arc::new(AtomicU64::new(0));
    let source = Box::new(CountingRead {
        inner: source,
        read: read.clone(),
    });
    let piece = upload_chunk(client);
    let name = b.name.clone();
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    let converter = tokio::task::spawn_blocking(move || {
        let pipe = super::target::ChannelWrite::new(tx, piece)
            .sending_after(super::target::PARTIAL_CHUNK_AFTER);
        let opts = natrium_store::archive::ReaderOptions::default();
        let (pipe, _) =
            natrium_store::archive::convert_to_v1(source, pipe, &name, &config, created, &opts)
                .map_err(|e| e.to_string())?;
        pipe.finish().map_err(|e| e.to_string())
    });
    let mut up = Uploader::new(client, &b.upload, chunk_timeout);
    let mut uploaded = Progress::new(super::progress::Mode::Quiet);
    let mut shown = 0;
    let mut show = |progress: &mut Progress| {
        let now = read.load(Ordering::Relaxed);
        progress.advance(now.saturating_sub(shown));
        shown = shown.max(now);
    };
    // The converter sends only `Ok` pieces; it reports its failures when joined.
    while let Some(Ok(piece)) = rx.recv().await {
        up.send(piece, &mut uploaded).await?;
        show(progress);
    }
    let sent = up.flush(&mut uploaded).await?;
    show(progress);
    converter
        .await
        .map_err(|e| BackupError::Protocol(format!("converting to a v1 archive: {e}")))?
        .map_err(|e| BackupError::Protocol(format!("converting to a v1 archive: {e}")))?;
    Ok(sent)
}

/// A reader that counts the bytes read through it (for progress while the reads happen
/// on another thread).
struct CountingRead<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: std::io::Read> std::io::Read for CountingRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
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

/// Sends upload chunks with up to [`UPLOAD_WINDOW`] of them unanswered; answers are
/// checked as they come (the first bad one fails the upload).
///
/// Order is everything here: the server reads the chunks as one byte stream in the
/// order they arrive. So each chunk is published by this task itself, in turn
/// (`publish_with_reply` completes once the chunk is queued on the connection, whose
/// writes keep that order), and only the answers are awaited concurrently, on one
/// subscription (`<inbox>.<n>` answers chunk `n`). An earlier version kept one
/// `request` future per chunk in a `FuturesOrdered`: a future first polled when the
/// task's cooperative budget was spent is woken only after the task yields, by which
/// time a newer chunk's future may have been queued ahead of it, so chunks could go
/// out of order (seen: chunk 1012 sent before 1010 of a 1 GiB restore, which the
/// server refused on the frame checksum).
pub struct Uploader<'a> {
    /// The connection.
    client: &'a Client,
    /// The server's upload subject (made once; a clone shares its bytes).
    subject: async_nats::Subject,
    /// How long the oldest unanswered chunk may wait for its answer.
    chunk_timeout: Duration,
    /// Prefix of the answers' subjects.
    inbox: String,
    /// The answers (`<inbox>.*`), subscribed on first use.
    answers: Option<async_nats::Subscriber>,
    /// Chunks sent and not yet answered, oldest first: (number, bytes).
    inflight: VecDeque<(u64, u64)>,
    /// Number of the next chunk.
    next: u64,
    /// Bytes whose chunks were answered.
    sent: u64,
}

impl<'a> Uploader<'a> {
    /// An uploader to `subject`.
    pub fn new(client: &'a Client, subject: &'a str, chunk_timeout: Duration) -> Self {
        Uploader {
            client,
            subject: async_nats::Subject::from(subject),
            chunk_timeout,
            inbox: client.new_inbox(),
            answers: None,
            inflight: VecDeque::with_capacity(UPLOAD_WINDOW),
            next: 0,
            sent: 0,
        }
    }

    /// Send `data`, first waiting for an answer when the window is full.
    pub async fn send(&mut self, data: Bytes, progress: &mut Progress) -> Result<(), BackupError> {
        while self.inflight.len() >= UPLOAD_WINDOW {
            self.settle_one(progress).await?;
        }
        if self.answers.is_none() {
            let sub = self
                .client
                .subscribe(format!("{}.*", self.inbox))
                .await
                .map_err(|e| BackupError::nats("subscribe for upload answers", e))?;
            self.answers = Some(sub);
        }
        let n = self.next;
        self.next += 1;
        let len = data.len() as u64;
        self.client
            .publish_with_reply(self.subject.clone(), format!("{}.{n}", self.inbox), data)
            .await
            .map_err(|e| BackupError::nats("upload chunk", e))?;
        self.inflight.push_back((n, len));
        Ok(())
    }

    /// Wait for one answer and check it.
    async fn settle_one(&mut self, progress: &mut Progress) -> Result<(), BackupError> {
        let Some(answers) = self.answers.as_mut() else {
            return Ok(());
        };
        let msg = tokio::time::timeout(self.chunk_timeout, answers.next())
            .await
            .map_err(|_| BackupError::Stalled(self.chunk_timeout))?
            .ok_or_else(|| BackupError::Protocol("upload answers: subscription closed".into()))?;
        if msg.status == Some(async_nats::StatusCode::NO_RESPONDERS) {
            return Err(BackupError::Server(
                "no one takes the upload any more (no responders): the restore stopped on the server"
                    .into(),
            ));
        }
        if !msg.payload.is_empty() {
            return Err(chunk_error(&msg.payload));
        }
        let n = msg
            .subject
            .rsplit_once('.')
            .and_then(|(_, n)| n.parse::<u64>().ok());
        let at = n.and_then(|n| self.inflight.iter().position(|&(m, _)| m == n));
        let Some(at) = at else {
            return Err(BackupError::Protocol(format!(
                "an answer to no chunk in flight: {}",
                msg.subject
            )));
        };
        if let Some((_, len)) = self.inflight.remove(at) {
            self.sent += len;
            progress.advance(len);
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
    } else if !needs_v1(client) {
        // (nats-server before 2.15 takes the request but logs the unknown field.)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::progress::Mode;
    use std::process::{Command, Stdio};

    /// The v1 conversion's progress counts what the converter read of the v2 archive.
    #[test]
    fn counting_read_counts_what_passes() {
        use std::io::Read;
        let read = Arc::new(AtomicU64::new(0));
        let mut r = CountingRead {
            inner: &b"0123456789"[..],
            read: read.clone(),
        };
        let mut buf = [0u8; 4];
        r.read_exact(&mut buf).unwrap();
        assert_eq!(read.load(Ordering::Relaxed), 4);
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        assert_eq!((read.load(Ordering::Relaxed), rest.len()), (10, 6));
    }

    /// natrium-server: `NATRIUM_SERVER_BIN`, else beside this test's executable.
    fn server_bin() -> std::path::PathBuf {
        if let Some(p) = std::env::var_os("NATRIUM_SERVER_BIN") {
            return p.into();
        }
        let exe = std::env::current_exe().expect("test executable");
        let bin = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("target dir")
            .join("natrium-server");
        assert!(
            bin.is_file(),
            "{} missing: run `cargo build -p natrium-server` or set NATRIUM_SERVER_BIN",
            bin.display()
        );
        bin
    }

    /// A server child, killed and its log removed when the test ends, failed or not.
    struct Reaped(std::process::Child, std::path::PathBuf);

    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
            let _ = std::fs::remove_file(&self.1);
        }
    }

    /// Every chunk reaches the server in the order it was given to `send`, also when
    /// answers pile up while the sender is busy (here: a blocking pause between
    /// chunks, as a slow disk read is), so that the sending task runs long stretches
    /// without waiting and spends its cooperative budget.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn chunks_go_out_in_order_while_answers_pile_up() {
        let log = std::env::temp_dir().join(format!("natrium-upl-{}.log", std::process::id()));
        let _server = Reaped(
            Command::new(server_bin())
                .args(["-a", "127.0.0.1", "-p", "-1", "-l"])
                .arg(&log)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start natrium-server"),
            log.clone(),
        );
        let mut port = None;
        for _ in 0..200 {
            if let Ok(text) = std::fs::read_to_string(&log)
                && let Some(rest) = text.split("Listening for client connections on ").nth(1)
                && let Some(p) = rest
                    .lines()
                    .next()
                    .and_then(|l| l.trim().rsplit(':').next())
            {
                port = p.parse::<u16>().ok();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let port = port.expect("server port");
        let url = format!("nats://127.0.0.1:{port}");
        let responder = async_nats::connect(&url).await.expect("connect");
        let client = async_nats::connect(&url).await.expect("connect");
        let mut sub = responder.subscribe("upload.here").await.expect("subscribe");
        // `flush` only writes the SUB out; a round trip on the same connection proves
        // the server has it before the other connection publishes (the answer, "no
        // responders", comes after the server handled everything sent before it).
        let probe = responder.request("probe.nobody", Bytes::new()).await;
        assert!(probe.is_err(), "someone answered the probe");
        const CHUNKS: u64 = 3_000;
        // Answers each chunk at once, and reports the first one out of order.
        let checker = tokio::spawn(async move {
            let mut first_bad = None;
            for want in 0..CHUNKS {
                let Some(m) = sub.next().await else {
                    return Err("subscription ended".to_string());
                };
                let got = u64::from_le_bytes(m.payload[..8].try_into().expect("8 bytes"));
                if got != want && first_bad.is_none() {
                    first_bad = Some(format!("chunk {got} arrived where {want} was due"));
                }
                if let Some(r) = m.reply {
                    responder.publish(r, Bytes::new()).await.expect("answer");
                }
            }
            // The last answers must leave before this client is dropped.
            responder.flush().await.map_err(|e| e.to_string())?;
            first_bad.map_or(Ok(()), Err)
        });
        let mut progress = Progress::new(Mode::Quiet);
        let mut up = Uploader::new(&client, "upload.here", Duration::from_secs(20));
        for i in 0..CHUNKS {
            let mut data = i.to_le_bytes().to_vec();
            data.resize(512, b'x');
            if let Err(e) = up.send(Bytes::from(data), &mut progress).await {
                panic!("send {i}: {e}");
            }
            if i % 4 == 0 {
                // Blocking on purpose: answers arrive meanwhile.
                std::thread::sleep(Duration::from_micros(300));
            }
        }
        let sent = up.flush(&mut progress).await;
        let order = tokio::time::timeout(Duration::from_secs(5), checker).await;
        order
            .expect("the checker ends")
            .expect("checker")
            .expect("chunks in order");
        assert_eq!(sent.expect("flush"), CHUNKS * 512);
    }
}
