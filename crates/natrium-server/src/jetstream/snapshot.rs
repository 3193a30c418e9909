//! `$JS.API.STREAM.SNAPSHOT.<stream>`: an online backup of one stream, streamed to the
//! client in acknowledged chunks (reference/backup-spec.md §1).
//!
//! Why it looks like this: the `nats` CLI, jsm.go and every other client speak
//! nats-server 2.12.5+'s chunk protocol, so the wire is theirs exactly — fixed-size chunks
//! with an ack reply subject, a last short chunk without one, a window of unacknowledged
//! chunks, and an empty end message (status 204, none, 408 or 500). What we add is a
//! true point in time: the snapshot's *watermark* is the stream's last durable (acked)
//! sequence when the request is answered, the stream's state is the store's as of that
//! watermark, the consumers' states are read at that same moment (clamped to the
//! watermark), and the messages come from the store's pinned view — every message
//! up to the watermark as it stood then, even if it is deleted, purged or expired while
//! the backup runs; nothing published later enters the archive. nats-server reads the
//! live stream instead, so deletes during a backup show up in it. Publishing goes on
//! during the backup: the archive is produced by a reader thread that never blocks the
//! stream's writer.
//!
//! natrium extension (docs/api.md): `"natrium_since": N` in the request makes the archive
//! an incremental one — the same point in time, but only the messages above `N` plus the
//! sequences up to `N` that are gone (`PinnedView::split_at`); the answer echoes the
//! field so a client can tell that the server understood it.
//!
//! One thread per transfer, at lower CPU priority than publishers (see `background`),
//! does all of it: waits for the receiver's interest, reads messages through the store's
//! checksummed read path, writes the v2 (`NATSARC1`) archive in S2 framing, cuts that
//! into chunks and publishes each as soon as the window has a free slot (acks return
//! slots from the server's reader tasks), then sends the end message. Memory is a few
//! MiB whatever the stream's size (a read batch, the frame writer's buffers, one chunk);
//! the window's chunks wait in the receiver's outbound buffer. Why one thread and not a
//! producer thread feeding a sending task: a chunk that lies inside one S2 frame is
//! published straight from the frame writer's buffer, where a hand-off had to copy
//! every byte into a chunk of its own first (a tenth of the transfer's CPU), and no
//! channel sits between reading and sending (the thread is woken only by acks, when
//! the window is full). A panic while producing the archive still ends the transfer
//! with `500` and removes its ack subscription. At server shutdown the thread stops at
//! its next chunk (the receiver's interest is gone) or after the flow timeout.

use super::api::ApiResponse;
use super::api::errors::ApiError;
use super::api::go_json::{GoRequest, Mode};
use super::api::stream::{
    StreamSnapshotBody, StreamSnapshotRequest, StreamState, without_natrium_fields,
};
use super::api::time::Timestamp;
use super::api_server::ApiAnswer;
use super::engine::{JetStream, JsAccount};
use super::stream::Stream;
use crate::account::Account;
use crate::client::deliver::{DeliveryCtx, Publisher};
use crate::client::subscription::{InternalHandler, Subscription};
use crate::protocol::PubMsg;
use crate::server::ServerShared;
use natrium_store::PinnedView;
use natrium_store::archive::{
    ArchiveWriter, ConsumerStateJson, IncrementalHeader, StreamStateJson,
};
use serde::Serialize;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Default chunk size (jsm.go's and nats-server's).
pub const DEFAULT_CHUNK: i64 = 128 * 1024;
/// Smallest chunk.
pub const MIN_CHUNK: i64 = 1024;
/// Largest chunk.
pub const MAX_CHUNK: i64 = 1024 * 1024;
/// Default window of unacknowledged bytes.
pub const DEFAULT_WINDOW: i64 = 8 * 1024 * 1024;
/// Largest window.
pub const MAX_WINDOW: i64 = 32 * 1024 * 1024;
/// How long the transfer waits for someone to subscribe the deliver subject.
const INTEREST_WAIT: Duration = Duration::from_secs(2);
/// How long a full window may stay unacknowledged before the transfer is abandoned.
const FLOW_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a snapshot waiting for acks looks whether its receiver is still there.
const INTEREST_CHECK: Duration = Duration::from_millis(250);
/// Last token of the natrium keep-alive subject (`<ack prefix>.keepalive`): a receiver
/// still busy with what it got (writing it to a slow target) says so, and the flow
/// timeout counts from then; it returns no slot.
pub const KEEPALIVE_TOKEN: &str = "keepalive";
/// Longest a transfer waits for an ack however many keep-alives come (a receiver that
/// only ever says it is busy holds the stream's pinned view for this long at most).
const KEEPALIVE_MAX_WAIT: Duration = Duration::from_secs(600);
/// Bytes of messages the transfer reads from the store at a time.
const READ_BATCH: usize = 1 << 20;
/// Advisory: snapshot started.
const SNAPSHOT_CREATE: &str = "io.nats.jetstream.advisory.v1.snapshot_create";
/// Advisory: snapshot finished.
const SNAPSHOT_COMPLETE: &str = "io.nats.jetstream.advisory.v1.snapshot_complete";

/// Chunk and window sizes after nats-server's clamping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Bytes per chunk.
    pub chunk: usize,
    /// Chunks that may be unacknowledged.
    pub slots: usize,
}

impl Window {
    /// Clamp a request's sizes (0 = default; a negative chunk size is raised to the
    /// smallest, as nats-server does).
    pub fn of(req: &StreamSnapshotRequest) -> Window {
        let chunk = if req.chunk_size == 0 {
            DEFAULT_CHUNK
        } else {
            req.chunk_size.clamp(MIN_CHUNK, MAX_CHUNK)
        };
        let window = if req.window_size <= 0 {
            DEFAULT_WINDOW
        } else {
            req.window_size.clamp(MIN_CHUNK, MAX_WINDOW)
        }
        .max(chunk);
        Window {
            chunk: chunk as usize,
            slots: ((window / chunk) as usize).max(1),
        }
    }
}

/// The natrium extension fields of a snapshot request (nats-server ignores them, which
/// is why the answer echoes `natrium_since` and `natrium_keepalive`), read in one parse.
#[derive(Debug, Default, PartialEq)]
struct NatriumFields {
    /// `natrium_since`: an incremental archive after this earlier backup's watermark
    /// (see `natrium_store::archive::incremental`).
    since: Option<u64>,
    /// `natrium_freeze`: claim this stream's state from a consistent account freeze
    /// (see `account_snapshot`).
    freeze: Option<String>,
    /// `natrium_keepalive: true`: the receiver may send keep-alives (see
    /// [`KEEPALIVE_TOKEN`]); nats-server would count one as an ack.
    keepalive: bool,
}

impl NatriumFields {
    /// Read them from the request body; a body that is no JSON object has none, and
    /// only a `natrium_since` that is not a sequence is an error.
    fn of(body: &[u8]) -> Result<NatriumFields, ApiError> {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
            return Ok(NatriumFields::default());
        };
        let since = match v.get("natrium_since") {
            None | Some(serde_json::Value::Null) => None,
            Some(n) => Some(n.as_u64().ok_or_else(|| {
                ApiError::stream_snapshot(
                    "natrium_since must be a stream sequence (an unsigned integer)",
                )
            })?),
        };
        Ok(NatriumFields {
            since,
            freeze: v
                .get("natrium_freeze")
                .and_then(|f| f.as_str())
                .map(str::to_string),
            keepalive: v
                .get("natrium_keepalive")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false),
        })
    }
}

/// Take a stream's point in time: its state, a pinned view of its messages up to the
/// watermark, and its consumers' states (clamped to the watermark). Returns the state
/// for the API answer (live consumer count) and the capture for the archive.
pub(crate) fn take_capture(stream: &Stream) -> Result<(StreamState, Capture), ApiError> {
    // Everything durable now; messages still being made durable are above the
    // watermark and count as published after the snapshot (their publishers have no
    // ack yet). The state comes with the view, as of its watermark, so that it
    // describes exactly the messages the archive holds.
    let view = stream
        .store
        .pinned_view(u64::MAX)
        .map_err(|e| ApiError::stream_snapshot(e.to_string()))?;
    let mut state = super::api_streams::api_state_of(stream, view.state(), false);
    let mut consumers = Vec::new();
    for c in stream.consumers.read().values() {
        let cfg = serde_json::to_value(c.config())
            .map_err(|e| ApiError::stream_snapshot(e.to_string()))?;
        // The machine's state, not the store's: purges move the ack floor and drop
        // pending entries in the machine only (`Stream::consumers_skip_to`).
        let live = c.machine.lock().state();
        let st = super::archive_state::to_json(&live, state.last_seq);
        consumers.push((c.name.clone(), cfg, st));
    }
    state.consumer_count = consumers.len() as i64;
    let capture = Capture {
        store: stream.store.clone(),
        view,
        state: state.clone(),
        consumers,
        incremental: None,
        in_use: None,
    };
    Ok((state, capture))
}

impl Capture {
    /// The same capture with its consumers left out of the archive.
    fn without_consumers(mut self) -> Capture {
        self.consumers.clear();
        self.state.consumer_count = 0;
        self
    }

    /// The archive's watermark (last sequence it covers).
    pub(crate) fn watermark(&self) -> u64 {
        self.state.last_seq
    }

    /// Make the archive an incremental one after `since` (an earlier backup's
    /// watermark): only messages above it, plus the tombstones up to it. Refused when
    /// `since` lies beyond this watermark — the earlier backup cannot be of this stream
    /// as it is now (deleted and recreated, or another stream of that name).
    fn since(mut self, since: u64) -> Result<Capture, ApiError> {
        let w = self.watermark();
        if since > w {
            return Err(ApiError::stream_snapshot(format!(
                "incremental base sequence {since} is beyond the stream's last sequence {w}; take a full backup"
            )));
        }
        let absent = self
            .view
            .split_at(since)
            .map_err(|e| ApiError::stream_snapshot(e.to_string()))?;
        self.incremental = Some(IncrementalHeader { since, absent });
        Ok(self)
    }
}

/// What the transfer archives: the stream as it was when the snapshot was taken.
pub(crate) struct Capture {
    /// The stream's store (bulk reads of live messages).
    store: Arc<dyn natrium_store::StreamStore>,
    /// The stream's messages up to the watermark, as they were at that moment.
    view: Box<dyn PinnedView>,
    /// `state.json`.
    state: StreamState,
    /// `(name, config JSON, state JSON)` per consumer.
    consumers: Vec<(String, serde_json::Value, serde_json::Value)>,
    /// An incremental archive: its header (the view then starts after `since`).
    incremental: Option<IncrementalHeader>,
    /// A capture claimed from an account freeze keeps that freeze alive while its
    /// transfer runs (dropped with the capture, at the transfer's end).
    pub(crate) in_use: Option<super::account_snapshot::FreezeUse>,
}

/// Handle the request: check it, take the point-in-time capture, answer, and start the
/// transfer once the answer is out.
pub fn stream_snapshot(
    js: &Arc<JetStream>,
    jsa: &Arc<JsAccount>,
    name: &str,
    body: &[u8],
) -> Result<ApiAnswer, ApiError> {
    if super::api::is_empty_request(body) {
        return Err(ApiError::bad_request());
    }
    let stream = jsa.stream(name).ok_or_else(ApiError::stream_not_found)?;
    let req = StreamSnapshotRequest::decode_request(&without_natrium_fields(body), Mode::Strict)?;
    if !crate::sublist::is_valid_literal_subject(req.deliver_subject.as_bytes()) {
        return Err(ApiError::snapshot_deliver_subject_invalid());
    }
    let server = js
        .server
        .upgrade()
        .ok_or_else(|| ApiError::stream_snapshot("server stopping"))?;
    let natrium = NatriumFields::of(body)?;
    let since = natrium.since;
    let (state, capture) = match natrium.freeze {
        Some(token) => {
            super::account_snapshot::claim(&token, &jsa.account.name, name).ok_or_else(|| {
                ApiError::stream_snapshot(format!(
                    "no frozen state of stream {name} under token {token:?} (expired or used)"
                ))
            })?
        }
        None => take_capture(&stream)?,
    };
    let capture = if req.no_consumers {
        capture.without_consumers()
    } else {
        capture
    };
    let capture = match since {
        Some(n) => capture.since(n)?,
        None => capture,
    };
    let response = ApiResponse::new(StreamSnapshotBody {
        config: Some(stream.config()),
        state: Some(state),
        natrium_since: since,
        natrium_keepalive: natrium.keepalive.then_some(true),
    })
    .to_json();
    let window = Window::of(&req);
    let account = jsa.account.clone();
    let name = stream.name.clone();
    let capture = capture;
    let deliver = req.deliver_subject;
    let domain = js.domain.clone();
    Ok(ApiAnswer::ok(response).then(move || {
        start(server, account, &name, capture, deliver, window, domain);
    }))
}

/// Why a transfer stopped before its end: the end message's status line, and the
/// completion advisory's error text.
struct Abort {
    /// E.g. `408 No Flow Response`.
    status: String,
    /// E.g. `no flow response`.
    why: String,
}

/// `Write` that cuts the compressed stream into chunks and publishes each to the
/// receiver once the window has room (the transfer's thread blocks meanwhile).
struct ChunkSender<'a> {
    /// Publishes into `account`.
    server: &'a Arc<ServerShared>,
    /// The account of the stream and of the receiver.
    account: &'a Arc<Account>,
    /// The receiver's deliver subject.
    deliver: &'a [u8],
    /// Ack subjects are `<prefix>.<chunk length>.<chunk number>`.
    prefix: &'a str,
    /// Free and taken slots of the window.
    slots: &'a AckSlots,
    /// Chunk size and slot count.
    window: Window,
    /// The start of a chunk whose bytes came in more than one write (at a frame's
    /// edges); a chunk inside one write is published from that write's bytes.
    buf: Vec<u8>,
    /// Chunks published.
    index: u64,
    /// Reused for each chunk's ack subject.
    reply: String,
    /// Why sending stopped, once it has.
    abort: Option<Abort>,
}

impl ChunkSender<'_> {
    /// Stop the transfer: remembered for the end message, an error for the writer.
    fn fail(&mut self, status: &str, why: &str) -> std::io::Error {
        self.abort = Some(Abort {
            status: status.to_string(),
            why: why.to_string(),
        });
        std::io::Error::from(std::io::ErrorKind::BrokenPipe)
    }

    /// Wait for a free slot (at most [`FLOW_TIMEOUT`] without an ack), then publish
    /// `data` as the next full chunk, with its ack subject.
    fn send_chunk(&mut self, data: &[u8]) -> std::io::Result<()> {
        {
            let since = std::time::Instant::now();
            let mut deadline = since + FLOW_TIMEOUT;
            let mut taken = self.slots.taken.lock();
            let mut gone = false;
            while *taken >= self.window.slots {
                // Waiting for acks, look now and then whether the receiver is still
                // there: one that left ends the snapshot at once (as nats-server, which
                // watches the interest), not after the flow timeout, so the pinned view
                // of the stream is not held for nothing.
                let step = (std::time::Instant::now() + INTEREST_CHECK).min(deadline);
                if self.slots.returned.wait_until(&mut taken, step).timed_out() {
                    if std::time::Instant::now() < deadline {
                        if !self.account.sublist.has_interest(self.deliver) {
                            gone = true;
                            break;
                        }
                        continue;
                    }
                    // A keep-alive since moves the deadline (up to the longest wait).
                    let alive = self.slots.alive.lock().map(|t| t + FLOW_TIMEOUT);
                    match alive {
                        Some(until) if until > deadline && until <= since + KEEPALIVE_MAX_WAIT => {
                            deadline = until;
                        }
                        _ => break,
                    }
                }
            }
            if gone {
                drop(taken);
                return Err(self.fail("408 No Interest", "no interest"));
            }
            if *taken >= self.window.slots {
                drop(taken);
                return Err(self.fail("408 No Flow Response", "no flow response"));
            }
            *taken += 1;
        }
        if !self.account.sublist.has_interest(self.deliver) {
            return Err(self.fail("408 No Interest", "no interest"));
        }
        self.index += 1;
        self.reply.clear();
        {
            use std::fmt::Write as _;
            let _ = write!(self.reply, "{}.{}.{}", self.prefix, data.len(), self.index);
        }
        publish(
            self.server,
            self.account,
            self.deliver,
            Some(self.reply.as_bytes()),
            None,
            data,
        );
        Ok(())
    }
}

impl Write for ChunkSender<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let chunk = self.window.chunk;
        let mut rest = data;
        while !rest.is_empty() {
            if self.buf.is_empty() && rest.len() >= chunk {
                let (now, later) = rest.split_at(chunk);
                self.send_chunk(now)?;
                rest = later;
                continue;
            }
            let take = (chunk - self.buf.len()).min(rest.len());
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buf.len() == chunk {
                let full = std::mem::take(&mut self.buf);
                let sent = self.send_chunk(&full);
                self.buf = full;
                self.buf.clear();
                sent?;
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Write the archive of `cap` into `w`. Messages come from the store's point-in-time
/// view: every message up to the watermark as it was when the snapshot was taken, even
/// if deleted, purged or expired since; sequences already deleted then are absent
/// (restore recreates the gaps). Between read batches it yields to live publishers
/// (`js`'s publish counter and `backup_share`, see [`super::background::Yielder`]).
fn produce<W: Write>(cap: &mut Capture, w: W, js: Option<&JetStream>) -> Result<W, String> {
    let json = |e: serde_json::Error| e.to_string();
    let mut a = match &cap.incremental {
        Some(h) => ArchiveWriter::incremental(w, h).map_err(|e| e.to_string())?,
        None => ArchiveWriter::new(w),
    };
    let state: StreamStateJson =
        serde_json::from_value(serde_json::to_value(&cap.state).map_err(json)?).map_err(json)?;
    a.state(&state).map_err(|e| e.to_string())?;
    for (name, cfg, st) in &cap.consumers {
        let st: ConsumerStateJson = serde_json::from_value(st.clone()).map_err(json)?;
        a.consumer(name, cfg, &st).map_err(|e| e.to_string())?;
    }
    let mut batch = natrium_store::stream::MsgBatch::default();
    let live = || js.map_or(0, |js| js.live_work.load(Ordering::Relaxed));
    let share = || js.map_or(100, |js| js.backup_share.load(Ordering::Relaxed));
    let mut yielder = super::background::Yielder::new(live(), Instant::now());
    while cap
        .view
        .next_batch(cap.store.as_ref(), READ_BATCH, &mut batch)
        .map_err(|e| e.to_string())?
    {
        for m in batch.iter() {
            a.message(m.seq, m.ts, m.subject.as_bytes(), m.hdrs, m.payload)
                .map_err(|e| e.to_string())?;
        }
        // Live publishers come first (see `background`).
        yielder.step(live(), share());
    }
    a.finish().map_err(|e| e.to_string())
}

/// The ack subscription: every message on `<prefix>.>` returns one window slot.
struct AckSlots {
    /// Chunks sent and not acknowledged.
    taken: parking_lot::Mutex<usize>,
    /// Signalled when an ack returns a slot (the transfer's thread waits on it).
    returned: parking_lot::Condvar,
    /// When the receiver last sent a keep-alive (natrium extension; see
    /// [`KEEPALIVE_TOKEN`]).
    alive: parking_lot::Mutex<Option<std::time::Instant>>,
}

impl InternalHandler for AckSlots {
    fn handle(
        &self,
        _ctx: &mut DeliveryCtx,
        _account: &Arc<Account>,
        _sub: &Subscription,
        _publisher: Publisher<'_>,
        _routed_by: &[u8],
        msg: PubMsg<'_>,
    ) -> bool {
        if msg
            .subject
            .rsplit(|&b| b == b'.')
            .next()
            .is_some_and(|t| t == KEEPALIVE_TOKEN.as_bytes())
        {
            *self.alive.lock() = Some(std::time::Instant::now());
            return true;
        }
        // An ack never returns more slots than are out.
        let mut taken = self.taken.lock();
        if *taken > 0 {
            *taken -= 1;
            self.returned.notify_one();
        }
        true
    }
}

/// `JSSnapshotCreateAdvisory`.
#[derive(Serialize)]
struct CreateAdvisory<'a> {
    #[serde(flatten)]
    typed: super::advisory::Typed,
    stream: &'a str,
    state: &'a StreamState,
    #[serde(skip_serializing_if = "str::is_empty")]
    domain: &'a str,
}

/// `JSSnapshotCompleteAdvisory`.
#[derive(Serialize)]
struct CompleteAdvisory<'a> {
    #[serde(flatten)]
    typed: super::advisory::Typed,
    stream: &'a str,
    start: Timestamp,
    end: Timestamp,
    #[serde(skip_serializing_if = "str::is_empty")]
    domain: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    error: &'a str,
}

/// Announce the snapshot and start its transfer thread.
fn start(
    server: Arc<ServerShared>,
    account: Arc<Account>,
    stream_name: &str,
    cap: Capture,
    deliver: String,
    window: Window,
    domain: String,
) {
    let stream_name = stream_name.to_string();
    super::advisory::send_now(
        &server,
        &account,
        &format!("$JS.EVENT.ADVISORY.STREAM.SNAPSHOT_CREATE.{stream_name}"),
        &CreateAdvisory {
            typed: super::advisory::Typed::new(SNAPSHOT_CREATE),
            stream: &stream_name,
            state: &cap.state,
            domain: &domain,
        },
    );
    let runtime = tokio::runtime::Handle::try_current().ok();
    let _ = std::thread::Builder::new()
        .name(format!("natrium-snapshot-{stream_name}"))
        .spawn(move || {
            // Publishers come first: see `background`.
            super::background::lower_current_thread();
            // Delivery may wake tasks and spawn (as on any publishing thread).
            let _rt = runtime.as_ref().map(tokio::runtime::Handle::enter);
            let start = Timestamp::now();
            let error = transfer(&server, &account, &stream_name, &deliver, window, cap);
            super::advisory::send_now(
                &server,
                &account,
                &format!("$JS.EVENT.ADVISORY.STREAM.SNAPSHOT_COMPLETE.{stream_name}"),
                &CompleteAdvisory {
                    typed: super::advisory::Typed::new(SNAPSHOT_COMPLETE),
                    stream: &stream_name,
                    start,
                    end: Timestamp::now(),
                    domain: &domain,
                    error: error.as_deref().unwrap_or(""),
                },
            );
        });
}

/// Publish one message into the account.
fn publish(
    server: &Arc<ServerShared>,
    account: &Arc<Account>,
    subject: &[u8],
    reply: Option<&[u8]>,
    headers: Option<&[u8]>,
    payload: &[u8],
) {
    let mut ctx = DeliveryCtx::new(server.clone(), rand::random());
    ctx.publish(
        account,
        Publisher::SERVER,
        PubMsg {
            subject,
            reply,
            headers,
            payload,
        },
    );
    ctx.flush();
}

/// The transfer, on its own thread: returns the failure text (for the completion
/// advisory), if any.
fn transfer(
    server: &Arc<ServerShared>,
    account: &Arc<Account>,
    stream: &str,
    deliver: &str,
    window: Window,
    mut cap: Capture,
) -> Option<String> {
    let deliver_b = deliver.as_bytes();
    let waited = std::time::Instant::now();
    while !account.sublist.has_interest(deliver_b) && waited.elapsed() < INTEREST_WAIT {
        std::thread::sleep(Duration::from_millis(10));
    }
    let prefix = format!("$JS.SNAPSHOT.ACK.{stream}.{}", crate::system::event_id());
    let slots = Arc::new(AckSlots {
        taken: parking_lot::Mutex::new(0),
        returned: parking_lot::Condvar::new(),
        alive: parking_lot::Mutex::new(None),
    });
    let ack_subject = format!("{prefix}.>");
    let handler: Arc<dyn InternalHandler> = slots.clone();
    let sub = Arc::new(Subscription::internal(
        handler,
        ack_subject.as_bytes(),
        None,
    ));
    let _ = account
        .sublist
        .insert(ack_subject.as_bytes(), None, sub.clone());
    let mut sender = ChunkSender {
        server,
        account,
        deliver: deliver_b,
        prefix: &prefix,
        slots: &slots,
        window,
        buf: Vec::with_capacity(window.chunk),
        index: 0,
        reply: String::new(),
        abort: None,
    };
    // A panic in the store or the archive writer must still end the transfer (500)
    // and remove the ack subscription below, as a producer that stops would.
    let produced = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        produce(&mut cap, &mut sender, server.js.get().map(|js| &**js)).map(drop)
    }))
    .unwrap_or_else(|_| {
        sender.abort = Some(Abort {
            status: "500 snapshot producer stopped".to_string(),
            why: "producer stopped".to_string(),
        });
        Err("producer stopped".to_string())
    });
    let outcome = match produced {
        Ok(_) => {
            // The rest, shorter than a chunk (possibly empty), goes without an ack.
            if !sender.buf.is_empty() {
                publish(server, account, deliver_b, None, None, &sender.buf);
            }
            Ok(())
        }
        Err(e) => Err(sender.abort.take().unwrap_or(Abort {
            status: format!("500 {e}"),
            why: e,
        })),
    };
    let sent = sender.index;
    crate::client::deliver::remove_sub(account, &sub);
    let end = |status: Option<&str>| {
        let h = status.map(|s| format!("NATS/1.0 {s}\r\n\r\n"));
        publish(
            server,
            account,
            deliver_b,
            None,
            h.as_deref().map(str::as_bytes),
            b"",
        );
    };
    match outcome {
        Ok(()) => {
            end(if sent > 0 { Some("204") } else { None });
            None
        }
        Err(Abort { status, why }) => {
            end(Some(&status));
            Some(why)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_clamps_like_nats_server() {
        let w = |chunk, window| {
            Window::of(&StreamSnapshotRequest {
                chunk_size: chunk,
                window_size: window,
                ..Default::default()
            })
        };
        assert_eq!(
            w(0, 0),
            Window {
                chunk: 131072,
                slots: 64
            }
        );
        assert_eq!(w(10, 0).chunk, 1024);
        assert_eq!(w(1 << 30, 0).chunk, 1 << 20);
        assert_eq!(w(65536, 262144).slots, 4);
        // The window is raised to at least one chunk.
        assert_eq!(w(65536, 1024).slots, 1);
        assert_eq!(w(1024, 1 << 40).slots, 32768);
    }

    /// A view that panics on its first read: a bug in the store or the archive writer.
    struct PanickingView;

    impl PinnedView for PanickingView {
        fn watermark(&self) -> u64 {
            1
        }

        fn state(&self) -> natrium_store::StreamState {
            natrium_store::StreamState::default()
        }

        fn next_msg(&mut self) -> natrium_store::Result<Option<natrium_store::StoredMsg>> {
            panic!("injected: the store failed mid-snapshot");
        }

        fn split_at(&mut self, _since: u64) -> natrium_store::Result<Vec<(u64, u64)>> {
            Ok(Vec::new())
        }
    }

    /// A producer that panics still ends the transfer the way a failing one does: the
    /// receiver gets `500 snapshot producer stopped` as the end message, and the ack
    /// subscription is gone from the account afterwards.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_producer_ends_with_500_and_removes_its_ack_subscription() {
        use crate::logging::Logger;
        use crate::server::Server;
        use futures::StreamExt;
        let mut server = Server::start(
            crate::options::Options::for_test(),
            Arc::new(Logger::null()),
        )
        .await
        .expect("start");
        let client = async_nats::connect(server.client_url())
            .await
            .expect("connect");
        let mut sub = client.subscribe("snap.deliver").await.expect("subscribe");
        client.flush().await.expect("flush");
        let account = server.shared().global_account();
        let acks = |account: &Account| {
            let mut n = 0;
            account.sublist.for_each(|subject, _, _| {
                n += usize::from(subject.starts_with(b"$JS.SNAPSHOT.ACK.PANIC."));
            });
            n
        };
        assert_eq!(acks(&account), 0);
        let cap = Capture {
            store: Arc::new(natrium_store::MemStore::new(Default::default())),
            view: Box::new(PanickingView),
            state: StreamState::default(),
            consumers: Vec::new(),
            incremental: None,
            in_use: None,
        };
        let window = Window {
            chunk: MIN_CHUNK as usize,
            slots: 4,
        };
        start(
            server.shared().clone(),
            account.clone(),
            "PANIC",
            cap,
            "snap.deliver".to_string(),
            window,
            String::new(),
        );
        // Chunks of what was written before the panic may come first (each acked);
        // then the end message, empty, with the status.
        let end = loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), sub.next())
                .await
                .expect("an end message within 10s")
                .expect("subscription open");
            if msg.payload.is_empty() {
                break msg;
            }
            if let Some(reply) = msg.reply {
                client.publish(reply, "".into()).await.expect("ack");
            }
        };
        assert_eq!(end.status.map(u16::from), Some(500));
        assert_eq!(
            end.description.as_deref(),
            Some("snapshot producer stopped")
        );
        // The thread removes the subscription before it sends the end message.
        assert_eq!(acks(&account), 0, "the ack subscription is removed");
        server.shutdown().await;
    }

    #[test]
    fn natrium_fields_are_read_in_one_parse() {
        let f = NatriumFields::of(
            br#"{"deliver_subject":"x","natrium_since":7,"natrium_freeze":"t","natrium_keepalive":true}"#,
        )
        .unwrap();
        let want = NatriumFields {
            since: Some(7),
            freeze: Some("t".into()),
            keepalive: true,
        };
        assert_eq!(f, want);
        // Absent, null or of another type: not asked for; not JSON: none at all.
        let none = NatriumFields::default();
        assert_eq!(
            NatriumFields::of(br#"{"deliver_subject":"x"}"#).unwrap(),
            none
        );
        let odd = br#"{"natrium_since":null,"natrium_freeze":3,"natrium_keepalive":"yes"}"#;
        assert_eq!(NatriumFields::of(odd).unwrap(), none);
        assert_eq!(NatriumFields::of(b"{bad").unwrap(), none);
        // Only a since that is no sequence is refused.
        assert!(NatriumFields::of(br#"{"natrium_since":-1}"#).is_err());
        assert!(NatriumFields::of(br#"{"natrium_since":"5"}"#).is_err());
    }

    #[test]
    fn empty_requests() {
        use super::super::api::is_empty_request;
        assert!(is_empty_request(b""));
        // Go's isEmptyRequest: whitespace alone is not JSON, so it is not "empty" (the
        // decode that follows answers 10025).
        assert!(!is_empty_request(b"  \n"));
        assert!(is_empty_request(b"{}"));
        assert!(is_empty_request(b" { } "));
        assert!(!is_empty_request(br#"{"deliver_subject":"x"}"#));
        assert!(!is_empty_request(b"{bad"));
    }
}
