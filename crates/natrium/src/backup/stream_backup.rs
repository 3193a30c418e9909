//! `natrium stream backup STREAM DIR`: receive a snapshot over the JetStream API.
//!
//! The protocol is the one every server speaks (backup-spec §1.4): ask for a snapshot
//! delivered to our inbox, acknowledge every chunk that carries a reply subject (that is
//! the server's flow control), append the bytes to `stream.tar.s2`, and stop at the
//! empty message; a status other than 204 (or none) on it is a failure. The folder is
//! marked unfinished until `backup.json` is written, so an interrupted backup is never
//! mistaken for a good one.
//!
//! Keep-alives: while a chunk is being written the next ones are not read, so not
//! acknowledged, and a server ends a transfer whose window stays full for 5 s. A slow
//! target (an `s3://` part over a thin link) can take longer than that while data
//! still moves. natrium-server takes keep-alives (docs/api.md, `natrium_keepalive`):
//! when its answer says so, a write that takes longer than [`KEEPALIVE_EVERY`] sends
//! one every [`KEEPALIVE_EVERY`] until it is done. nats-server does not (it would take
//! one for an ack), so none is sent to it.

use std::time::{Duration, Instant};

use async_nats::Client;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Value, json};

use super::layout::{ARCHIVE, StreamDir};
use super::progress::Progress;
use super::target::Writer;
use super::{BackupError, api_request};

/// Whether the server is natrium-server (its INFO's `go` field names the
/// implementation, `natrium-<version>`, where nats-server's names its Go release).
pub fn is_natrium(client: &Client) -> bool {
    client.server_info().go.starts_with("natrium-")
}

/// How often a receiver busy writing tells natrium-server it is still there.
pub const KEEPALIVE_EVERY: Duration = Duration::from_secs(1);

/// What a finished backup reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackupSummary {
    /// Stream name.
    pub stream: String,
    /// Folder written.
    pub dir: String,
    /// Archive bytes received (compressed).
    pub bytes: u64,
    /// Chunks received.
    pub chunks: u64,
    /// Messages in the stream at the snapshot's point in time.
    pub messages: u64,
    /// The watermark: the last stream sequence the archive covers.
    pub last_seq: u64,
    /// Wall time, seconds.
    pub seconds: f64,
    /// A resumed backup (`--resume`): the last sequence of the part kept from the
    /// interrupted run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_after: Option<u64>,
}

/// Options of one stream backup.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// Leave consumers out.
    pub no_consumers: bool,
    /// Chunk size asked for.
    pub chunk_size: u64,
    /// Flow-control window, if set.
    pub window_size: Option<u64>,
    /// Ask the server to check the stream first (`jsck`).
    pub check: bool,
    /// No chunk for this long fails the backup.
    pub idle_timeout: Duration,
    /// A consistent account freeze to take this stream's snapshot from (natrium).
    pub freeze: Option<String>,
    /// Incremental: the earlier backup to continue from (natrium).
    pub since: Option<super::chain::Parent>,
}

/// Back up `stream` into `dir`.
pub async fn backup_stream(
    client: &Client,
    stream: &str,
    dir: &StreamDir,
    opts: &BackupOptions,
    progress: &mut Progress,
) -> Result<BackupSummary, BackupError> {
    let started = Instant::now();
    dir.start(&format!("backup of stream {stream} in progress"))
        .await?;
    let inbox = client.new_inbox();
    let mut sub = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| BackupError::nats("subscribe", e))?;
    let mut req = json!({
        "deliver_subject": inbox,
        "chunk_size": opts.chunk_size,
    });
    // nats-server refuses unknown request fields: only natrium-server is asked.
    if is_natrium(client) {
        req["natrium_keepalive"] = json!(true);
    }
    if opts.no_consumers {
        req["no_consumers"] = json!(true);
    }
    if opts.check {
        req["jsck"] = json!(true);
    }
    if let Some(w) = opts.window_size {
        req["window_size"] = json!(w);
    }
    if let Some(token) = &opts.freeze {
        req["natrium_freeze"] = json!(token);
    }
    if let Some(p) = &opts.since {
        req["natrium_since"] = json!(p.meta.watermark);
    }
    let answer = api_request(
        client,
        &format!("$JS.API.STREAM.SNAPSHOT.{stream}"),
        req.to_string(),
    )
    .await;
    let answer = match (&opts.since, answer) {
        (None, a) => a?,
        (Some(p), a) => {
            match a.and_then(|a| super::chain::check_since_ack(&a, p.meta.watermark).map(|_| a)) {
                Ok(a) => a,
                Err(e) => {
                    // Nothing was received: leave no folder that looks like a backup.
                    drop(sub);
                    dir.discard().await?;
                    return Err(super::chain::explain_refusal(e));
                }
            }
        }
    };
    let keepalive = answer.get("natrium_keepalive") == Some(&Value::Bool(true));
    let state = answer.get("state").cloned().unwrap_or(Value::Null);
    let total = state.get("bytes").and_then(Value::as_u64).unwrap_or(0);
    let messages = state.get("messages").and_then(Value::as_u64).unwrap_or(0);
    let last_seq = state.get("last_seq").and_then(Value::as_u64).unwrap_or(0);
    progress.start(stream, total, messages);
    let mut file = dir.target.create(ARCHIVE, total).await?;
    let mut bytes = 0u64;
    let mut chunks = 0u64;
    let received = receive(
        client,
        &mut sub,
        &mut file,
        (opts, keepalive),
        progress,
        &mut bytes,
        &mut chunks,
    )
    .await;
    if let Err(e) = received {
        // Keep what arrived for `--resume` (the file; the journaled parts of an
        // upload); the marker stays.
        file.stop().await;
        return Err(e);
    }
    file.finish().await?;
    let meta = json!({
        "config": answer.get("config").cloned().unwrap_or(Value::Null),
        "state": state,
        super::chain::NATRIUM_KEY: super::chain::section(dir, stream, last_seq, opts.since.as_ref()),
    });
    dir.finish(&meta).await?;
    let summary = BackupSummary {
        stream: stream.to_string(),
        dir: dir.dir.display().to_string(),
        bytes,
        chunks,
        messages,
        last_seq,
        seconds: started.elapsed().as_secs_f64(),
        resumed_after: None,
    };
    progress.finish(&format!(
        "Received {} compressed bytes in {} chunks for stream {:?} in {:.2}s (up to sequence {})",
        bytes, chunks, stream, summary.seconds, last_seq
    ));
    Ok(summary)
}

/// Take chunks until the end message, acknowledging and writing each (with
/// keep-alives while a write takes long, if the server takes them).
async fn receive(
    client: &Client,
    sub: &mut async_nats::Subscriber,
    file: &mut Writer,
    (opts, keepalive): (&BackupOptions, bool),
    progress: &mut Progress,
    bytes: &mut u64,
    chunks: &mut u64,
) -> Result<(), BackupError> {
    // `<ack prefix>.keepalive`, from the first ack subject (`<prefix>.<len>.<n>`).
    let mut alive_subject: Option<async_nats::Subject> = None;
    loop {
        let msg = match tokio::time::timeout(opts.idle_timeout, sub.next()).await {
            Ok(Some(m)) => m,
            Ok(None) => return Err(BackupError::Protocol("subscription closed".into())),
            Err(_) => return Err(BackupError::Stalled(opts.idle_timeout)),
        };
        if msg.payload.is_empty() {
            if let Some(status) = msg.status {
                let code = u16::from(status);
                if code != 204 {
                    let text = msg
                        .description
                        .clone()
                        .unwrap_or_else(|| status.to_string());
                    let mut why = format!("{code} {text}");
                    if code == 408 && text.contains("Flow") && !keepalive {
                        // The server waited 5 s for an ack with its window full: this
                        // side was held (a slow target) and this server takes no
                        // keep-alives.
                        why.push_str(
                            " (no chunk was acknowledged for 5 s, as when writing to the \
                             target is slow; a larger --window-size gives it more time)",
                        );
                    }
                    return Err(BackupError::Server(why));
                }
            }
            break;
        }
        if let Some(reply) = &msg.reply {
            if keepalive
                && alive_subject.is_none()
                && let Some(prefix) = reply.rsplitn(3, '.').nth(2)
            {
                alive_subject = Some(format!("{prefix}.keepalive").into());
            }
            client
                .publish(reply.clone(), Bytes::new())
                .await
                .map_err(|e| BackupError::nats("ack chunk", e))?;
        }
        let n = msg.payload.len() as u64;
        write_keeping_alive(client, file, msg.payload, alive_subject.as_ref()).await?;
        *bytes += n;
        *chunks += 1;
        progress.advance(n);
    }
    Ok(())
}

/// Write `data`; while that takes longer than [`KEEPALIVE_EVERY`], send a keep-alive
/// to `alive` (if any) every [`KEEPALIVE_EVERY`].
async fn write_keeping_alive(
    client: &Client,
    file: &mut Writer,
    data: Bytes,
    alive: Option<&async_nats::Subject>,
) -> Result<(), BackupError> {
    let Some(alive) = alive else {
        return file.write(data).await;
    };
    let write = file.write(data);
    tokio::pin!(write);
    // Most writes finish at once (a local file; a part still filling): no timer then.
    if let Some(done) = futures::FutureExt::now_or_never(&mut write) {
        return done;
    }
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + KEEPALIVE_EVERY,
        KEEPALIVE_EVERY,
    );
    loop {
        tokio::select! {
            done = &mut write => return done,
            _ = tick.tick() => {
                client
                    .publish(alive.clone(), Bytes::new())
                    .await
                    .map_err(|e| BackupError::nats("keep-alive", e))?;
            }
        }
    }
}
