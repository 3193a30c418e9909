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
//! one for an ack), so none is sent to it. The keep-alives come from a task of their
//! own ([`Watchdog`]), because a local file is written inline: that write blocks the
//! receiving task's thread, and on a slow disk for longer than the flow timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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
    // Sends `<ack prefix>.keepalive` (from the first ack subject, `<prefix>.<len>.<n>`)
    // while a write takes long; started at the first ack subject.
    let mut watchdog: Option<Watchdog> = None;
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
                && watchdog.is_none()
                && let Some(prefix) = reply.rsplitn(3, '.').nth(2)
            {
                let alive: async_nats::Subject = format!("{prefix}.keepalive").into();
                let client = client.clone();
                watchdog = Some(Watchdog::start(KEEPALIVE_EVERY, move || {
                    let (client, alive) = (client.clone(), alive.clone());
                    async move {
                        // A failure here shows up as the next ack's failure.
                        let _ = client.publish(alive, Bytes::new()).await;
                    }
                }));
            }
            client
                .publish(reply.clone(), Bytes::new())
                .await
                .map_err(|e| BackupError::nats("ack chunk", e))?;
        }
        let n = msg.payload.len() as u64;
        match &watchdog {
            Some(w) => w.watch(file.write(msg.payload)).await?,
            None => file.write(msg.payload).await?,
        }
        *bytes += n;
        *chunks += 1;
        progress.advance(n);
    }
    Ok(())
}

/// Sends keep-alives while a write takes long, from a task of its own. Why a task:
/// a local file is written inline (the chunk is copied into the file the moment it
/// arrived, still in this core's cache; handing it to a writer thread made backups
/// into RAM ~10% slower), so a write held by a slow disk blocks the receiving task's
/// thread and nothing in that task can run until it returns. The watchdog runs on
/// the other worker thread (stream and account commands run the CLI on two) and sends
/// one every `every` while a write marked by [`Watchdog::watch`] has lasted that long.
struct Watchdog {
    /// The running write's start (milliseconds since `base`, plus one), or 0.
    busy: Arc<AtomicU64>,
    /// The clock's origin.
    base: Instant,
    /// The sending task (stopped when the watchdog is dropped).
    task: tokio::task::JoinHandle<()>,
}

impl Watchdog {
    /// Start sending with `send` for writes that last `every` or longer.
    fn start<F, Fut>(every: Duration, send: F) -> Watchdog
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let busy = Arc::new(AtomicU64::new(0));
        let base = Instant::now();
        let seen = busy.clone();
        let task = tokio::spawn(async move {
            let mut last_sent = 0u64;
            let mut tick = tokio::time::interval(every / 4);
            loop {
                tick.tick().await;
                let now = millis_since(base) + 1;
                if keepalive_due(seen.load(Ordering::Acquire), now, last_sent, every) {
                    send().await;
                    last_sent = now;
                }
            }
        });
        Watchdog { busy, base, task }
    }

    /// Run `write` (which may block its thread) with the watchdog looking.
    async fn watch<T>(&self, write: impl std::future::Future<Output = T>) -> T {
        // First let the tasks this one just woke run (the connection task, woken by the
        // chunk's ack, waits in this worker's LIFO slot, which no other worker may
        // take): otherwise a write that blocks the thread would hold back every
        // keep-alive the watchdog hands to the client.
        tokio::task::yield_now().await;
        self.busy
            .store(millis_since(self.base) + 1, Ordering::Release);
        let done = write.await;
        self.busy.store(0, Ordering::Release);
        done
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Milliseconds since `base`.
fn millis_since(base: Instant) -> u64 {
    u64::try_from(base.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Whether a keep-alive is due at `now`: a write began at `busy` (0: none runs) at
/// least `every` ago, and none was sent within `every` (times in ms, plus one).
fn keepalive_due(busy: u64, now: u64, last_sent: u64, every: Duration) -> bool {
    let every = u64::try_from(every.as_millis()).unwrap_or(u64::MAX);
    busy != 0 && now.saturating_sub(busy) >= every && now.saturating_sub(last_sent) >= every
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keepalive_is_due_only_for_a_long_write_and_at_most_once_per_period() {
        let every = Duration::from_millis(1000);
        assert!(!keepalive_due(0, 5_000, 0, every), "no write under way");
        assert!(!keepalive_due(4_500, 5_000, 0, every), "a write of 0.5 s");
        assert!(keepalive_due(4_000, 5_000, 0, every), "a write of 1 s");
        assert!(
            !keepalive_due(1_000, 5_000, 4_500, every),
            "one sent 0.5 s ago"
        );
        assert!(
            keepalive_due(1_000, 5_000, 4_000, every),
            "one sent 1 s ago"
        );
    }

    /// A write that blocks its thread (as a local file on a slow disk does) still gets
    /// keep-alives, from the watchdog on another worker; a quick one gets none.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_blocked_write_gets_keepalives_from_the_watchdog() {
        let sent = Arc::new(AtomicU64::new(0));
        let count = sent.clone();
        let w = Watchdog::start(Duration::from_millis(100), move || {
            count.fetch_add(1, Ordering::Relaxed);
            async {}
        });
        w.watch(async {}).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(sent.load(Ordering::Relaxed), 0, "quick writes: none");
        // Blocks this worker thread for 0.55 s, as a write(2) held by the disk would.
        w.watch(async { std::thread::sleep(Duration::from_millis(550)) })
            .await;
        let during = sent.load(Ordering::Relaxed);
        assert!(
            (2..=6).contains(&during),
            "about one per 100 ms after the first: {during}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(sent.load(Ordering::Relaxed), during, "none after the write");
        drop(w);
    }

    /// The keep-alives must also get *out* while the write blocks: the client's
    /// connection task, woken by the chunk's ack just before the write, sits in this
    /// worker's LIFO slot, which tokio does not let another worker steal, so it could
    /// not run (and send anything) until the write returned. Here a stand-in for that
    /// task counts what it forwards: without the yield in `watch`, nothing during the
    /// write (checked).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keepalives_get_out_while_the_write_blocks_its_thread() {
        let forwarded = Arc::new(AtomicU64::new(0));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let count = forwarded.clone();
        let connection = tokio::spawn(async move {
            while rx.recv().await.is_some() {
                count.fetch_add(1, Ordering::Relaxed);
            }
        });
        let keepalive = tx.clone();
        let w = Watchdog::start(Duration::from_millis(100), move || {
            let _ = keepalive.send(());
            async {}
        });
        let during = tokio::spawn(async move {
            // The chunk's ack wakes the connection task (into this worker's LIFO slot).
            tx.send(()).unwrap();
            let before = forwarded.load(Ordering::Relaxed);
            w.watch(async { std::thread::sleep(Duration::from_millis(550)) })
                .await;
            forwarded.load(Ordering::Relaxed) - before
        })
        .await
        .unwrap();
        connection.abort();
        assert!(
            during >= 3,
            "the ack and keep-alives forwarded during the write: {during}"
        );
    }
}
