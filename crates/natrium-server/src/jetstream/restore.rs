//! `$JS.API.STREAM.RESTORE.<stream>`: rebuild a stream from a snapshot archive uploaded
//! in chunks (reference/backup-spec.md §2).
//!
//! The wire is nats-server's: the answer names an upload subject; the client sends the
//! archive as requests to it, each answered with an empty message once taken, then an
//! empty request, answered with a `stream_create_response`. Both archive formats are
//! read (v2 `NATSARC1`, and the v1 tar of ≤2.14 servers) by `natrium_store::archive`.
//!
//! What we do better, and why: a restore is *atomic*. nats-server creates the stream
//! first and fills it as chunks arrive, so a truncated, corrupt or abandoned upload
//! leaves a half-made stream behind. Here the stream is built hidden — a file stream in
//! a staging directory `.restore-<name>-<id>` beside the account's streams, a memory
//! stream in memory — and becomes visible only after the whole archive was read and
//! verified: the staging store is synced, renamed into place while still open (then
//! the directories are fsynced) and switched to the server's durability
//! (`FileStore::move_dir`), and becomes the stream as recovery makes one, without a
//! second scan of what it just wrote (a restart would find the same files). Any
//! failure removes the staging data; a crash in the middle leaves only a staging
//! directory, which the next start deletes. Limits are checked before data is taken:
//! the request's config like a stream create, the archive's declared size against the
//! account as soon as `state.json` arrives, and each message as it is stored.
//!
//! Resumable restores (natrium extension, docs/api.md): a large upload that breaks
//! off should not start over. With `"natrium_resumable": {"id": ID}` in the request,
//! a restore whose client goes quiet (the idle timeout) is not discarded but *parked*:
//! its staging store — every complete, verified message up to the last one received —
//! stays hidden for a bounded time (`hold`, default [`DEFAULT_HOLD`]), then is removed
//! as a failed restore is (a restart removes it as any staging). A request with
//! `"natrium_resume": ID` for the same stream takes the parked staging back, answers
//! with its last sequence `L`, and expects an *incremental* archive continuing from
//! `L` (`natrium_store::archive::merge_chain_after` writes one): the messages above
//! `L`, the stream state and consumers in full. Everything else — the checks, the
//! final verification, the atomic activation — is that of a plain restore, so nothing
//! is visible before the whole stream is. A wrong id, a gap (an archive not continuing
//! from `L`), a different configuration, or nothing parked (never started, expired)
//! are errors that leave nothing visible; only a wrong id or configuration keeps the
//! parked part for the right client.

use super::api::ApiResponse;
use super::api::consumer::ConsumerConfig;
use super::api::errors::ApiError;
use super::api::go_json::{GoRequest, Mode};
use super::api::stream::{
    StorageType as ApiStorage, StreamConfig, StreamCreateBody, StreamRestoreBody,
    StreamRestoreRequest, without_natrium_fields,
};
use super::api::stream_check::check_stream_config;
use super::api::time::Timestamp;
use super::api_server::ApiAnswer;
use super::consumer::{Consumer, ConsumerMeta};
use super::engine::{JetStream, JsAccount, StreamMeta};
use super::stream::{Stream, store_config};
use crate::account::Account;
use crate::client::deliver::{DeliveryCtx, Publisher};
use crate::client::subscription::{InternalHandler, Subscription};
use crate::protocol::PubMsg;
use crate::server::ServerShared;
use crate::warn;
use natrium_store::archive::{ArchiveReader, Entry, ReaderOptions};
use natrium_store::consumer::{ConsumerState, ConsumerStore, MemConsumerStore};
use natrium_store::{Durability, FileStore, FileStoreOptions, MemStore, StreamStore};
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::Duration;

/// Bytes stored between two chances to yield to live publishers.
const YIELD_EVERY: u64 = 1 << 20;

/// Prefix of staging directories (hidden from recovery, removed at start).
pub const STAGING_PREFIX: &str = ".restore-";
/// An upload with no chunk for this long is abandoned (nats-server: 5 s).
const IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Chunks queued between the upload subscription and the importer.
const QUEUE_CHUNKS: usize = 64;
/// Most consumers an archive may carry.
const MAX_CONSUMERS: usize = 100_000;
/// Advisory: restore started.
const RESTORE_CREATE: &str = "io.nats.jetstream.advisory.v1.restore_create";
/// Advisory: restore finished.
const RESTORE_COMPLETE: &str = "io.nats.jetstream.advisory.v1.restore_complete";

/// How long a parked resumable restore waits for its resume unless the request says.
pub const DEFAULT_HOLD: Duration = Duration::from_secs(300);
/// The longest hold a request may ask for.
pub const MAX_HOLD: Duration = Duration::from_secs(3600);
/// Longest `natrium_resumable` id.
const MAX_ID_LEN: usize = 128;

/// A restore under a name: receiving, or parked for a resume.
enum Slot {
    /// An upload is running (its claim's generation).
    Running(u64),
    /// A resumable upload whose client went away.
    Parked(Box<Parked>),
}

/// The kept part of an interrupted resumable restore.
struct Parked {
    /// The client's id for the archive (`natrium_resumable`).
    id: String,
    /// How long it is kept (again after each interruption).
    hold: Duration,
    /// The configuration it was started with (a resume must bring the same).
    cfg: StreamConfig,
    /// The hidden staging store, holding every message up to its last sequence.
    store: Arc<dyn StreamStore>,
    /// Its directory (file streams).
    staging: PathBuf,
    /// Creation time read from the archive, if it had one.
    created: Option<Timestamp>,
    /// Matches the expiry timer to this parking.
    generation: u64,
}

/// The restores of one account in progress or parked, by stream name: a second restore
/// of the same name is refused as if the stream existed, a resume finds its parked part.
/// Held by [`JsAccount`] (so it ends with its server) and shared with the claims and
/// expiry timers that outlive a request.
#[derive(Clone, Default)]
pub struct RestoreSlots(Arc<Mutex<HashMap<String, Slot>>>);

impl std::fmt::Debug for RestoreSlots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestoreSlots").finish_non_exhaustive()
    }
}

impl RestoreSlots {
    fn lock(&self) -> parking_lot::MutexGuard<'_, HashMap<String, Slot>> {
        self.0.lock()
    }
}

/// A fresh generation number (claims and parkings).
fn next_generation() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Releases the in-progress mark when the restore ends, however it ends (a parked
/// restore has replaced the mark by then and keeps its slot).
struct Claim {
    /// The account's registry.
    slots: RestoreSlots,
    /// The stream name.
    key: String,
    /// This claim's generation.
    generation: u64,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut map = self.slots.lock();
        if matches!(map.get(&self.key), Some(Slot::Running(g)) if *g == self.generation) {
            map.remove(&self.key);
        }
    }
}

/// Remove a parked restore whose hold ran out (unless it was resumed or replaced).
fn expire(slots: &RestoreSlots, key: &str, generation: u64) {
    let gone = {
        let mut map = slots.lock();
        match map.get(key) {
            Some(Slot::Parked(p)) if p.generation == generation => map.remove(key),
            _ => None,
        }
    };
    if let Some(Slot::Parked(p)) = gone {
        discard(&p);
    }
}

/// Delete a parked restore's staging data.
fn discard(p: &Parked) {
    let _ = p.store.delete();
    if p.staging.exists() {
        let _ = std::fs::remove_dir_all(&p.staging);
    }
}

/// The natrium extensions of a restore request (ignored by nats-server).
#[derive(Debug, Default)]
struct Extensions {
    /// `natrium_resumable`: keep the received part if the client goes away.
    resumable: Option<(String, Duration)>,
    /// `natrium_resume`: continue the parked restore with this id.
    resume: Option<String>,
}

fn bad_extension(why: &str) -> ApiError {
    ApiError::stream_restore(why)
}

fn check_id(v: &serde_json::Value, field: &str) -> Result<String, ApiError> {
    match v.as_str() {
        Some(id) if !id.is_empty() && id.len() <= MAX_ID_LEN => Ok(id.to_string()),
        _ => Err(bad_extension(&format!(
            "{field} must be a non-empty string of at most {MAX_ID_LEN} bytes"
        ))),
    }
}

/// Read `natrium_resumable` (`{"id": ID, "hold": SECONDS}`, or just the id) and
/// `natrium_resume` (an id).
fn extensions(body: &[u8]) -> Result<Extensions, ApiError> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Ok(Extensions::default());
    };
    let mut ext = Extensions::default();
    match v.get("natrium_resumable") {
        None | Some(serde_json::Value::Null) => {}
        Some(r @ serde_json::Value::String(_)) => {
            ext.resumable = Some((check_id(r, "natrium_resumable")?, DEFAULT_HOLD));
        }
        Some(r) => {
            let id = check_id(
                r.get("id").unwrap_or(&serde_json::Value::Null),
                "natrium_resumable.id",
            )?;
            let hold = match r.get("hold") {
                None | Some(serde_json::Value::Null) => DEFAULT_HOLD,
                Some(h) => match h.as_u64() {
                    Some(s) if s >= 1 && s <= MAX_HOLD.as_secs() => Duration::from_secs(s),
                    _ => {
                        return Err(bad_extension(&format!(
                            "natrium_resumable.hold must be whole seconds from 1 to {}",
                            MAX_HOLD.as_secs()
                        )));
                    }
                },
            };
            ext.resumable = Some((id, hold));
        }
    }
    match v.get("natrium_resume") {
        None | Some(serde_json::Value::Null) => {}
        Some(r) => ext.resume = Some(check_id(r, "natrium_resume")?),
    }
    Ok(ext)
}

/// Claim the name for a new upload, or take the parked part for a resume.
fn claim(
    jsa: &JsAccount,
    name: &str,
    cfg: &StreamConfig,
    ext: &Extensions,
) -> Result<(Claim, Option<Box<Parked>>), ApiError> {
    let key = name.to_string();
    let generation = next_generation();
    let mut map = jsa.restores.lock();
    if jsa.stream(name).is_some() {
        return Err(ApiError::stream_name_exist_restore_failed());
    }
    let (resumed, replaced) = match (map.get(&key), &ext.resume) {
        (Some(Slot::Running(_)), None) => {
            return Err(ApiError::stream_name_exist_restore_failed());
        }
        (Some(Slot::Running(_)), Some(_)) => {
            return Err(ApiError::stream_restore(format!(
                "the restore of stream {name} is still receiving; it can be resumed once it has had no data for {}s",
                IDLE_TIMEOUT.as_secs()
            )));
        }
        (None, Some(_)) => {
            return Err(ApiError::stream_restore(format!(
                "no interrupted restore of stream {name} to resume (none was started resumable, it finished, or it expired); restore it from the start"
            )));
        }
        (Some(Slot::Parked(p)), Some(id)) => {
            if &p.id != id {
                return Err(ApiError::stream_restore(format!(
                    "the interrupted restore of stream {name} is of another archive (id {:?}, not {id:?})",
                    p.id
                )));
            }
            if &p.cfg != cfg {
                return Err(ApiError::stream_restore(format!(
                    "the configuration differs from that of the interrupted restore of stream {name}"
                )));
            }
            match map.insert(key.clone(), Slot::Running(generation)) {
                Some(Slot::Parked(p)) => (Some(p), None),
                _ => (None, None),
            }
        }
        (Some(Slot::Parked(_)), None) => {
            // A plain restore starts over: the parked part is dropped.
            match map.insert(key.clone(), Slot::Running(generation)) {
                Some(Slot::Parked(p)) => (None, Some(p)),
                _ => (None, None),
            }
        }
        (None, None) => {
            map.insert(key.clone(), Slot::Running(generation));
            (None, None)
        }
    };
    drop(map);
    if let Some(p) = replaced {
        discard(&p);
    }
    let slots = jsa.restores.clone();
    Ok((
        Claim {
            slots,
            key,
            generation,
        },
        resumed,
    ))
}

/// Handle the request: validate it as nats-server does, then open the upload subject.
pub fn stream_restore(
    js: &Arc<JetStream>,
    jsa: &Arc<JsAccount>,
    name: &str,
    body: &[u8],
) -> Result<ApiAnswer, ApiError> {
    // No body, or an object without members (`{}`): 10003, as nats-server answers.
    if super::api::is_empty_request(body.trim_ascii()) {
        return Err(ApiError::bad_request());
    }
    let req = StreamRestoreRequest::decode_request(&without_natrium_fields(body), Mode::Strict)?;
    let mut cfg = req.config;
    if cfg.name.is_empty() {
        cfg.name = name.to_string();
    }
    if cfg.name != name {
        return Err(ApiError::stream_mismatch());
    }
    if name.contains(['/', '\\']) {
        return Err(ApiError::stream_name_contains_path_separators());
    }
    // The metadata stays as the request sent it (a restore recreates the stream as it
    // was; nats-server does not restamp `_nats.req.level` here).
    let cfg = check_stream_config(
        &cfg,
        &super::api_streams::check_ctx(js, jsa, false, cfg.storage),
    )?;
    // A restored stream must not come back silently ignoring a field we do not act on.
    super::api::stream_check::check_stream_supported(&cfg)?;
    super::limits::check_stream_create(js, jsa, &cfg)?;
    let ext = extensions(body)?;
    let (claim, resumed) = claim(jsa, name, &cfg, &ext)?;
    // Until the job owns it, an error here must not lose or leak the parked part.
    let give_back = |resumed: Option<Box<Parked>>| {
        if let Some(p) = resumed {
            discard(&p);
        }
    };
    let Some(server) = js.server.upgrade() else {
        give_back(resumed);
        return Err(ApiError::stream_restore("server stopping"));
    };
    let id = crate::system::event_id();
    let deliver = format!("$JS.SNAPSHOT.RESTORE.{name}.{id}");
    let (tx, rx) = std::sync::mpsc::sync_channel::<Chunk>(QUEUE_CHUNKS);
    let handler: Arc<dyn InternalHandler> = Arc::new(Upload { tx });
    let sub = Arc::new(Subscription::internal(handler, deliver.as_bytes(), None));
    if let Err(e) = jsa
        .account
        .sublist
        .insert(deliver.as_bytes(), None, sub.clone())
    {
        give_back(resumed);
        return Err(ApiError::restore_subscribe_failed(
            format!("{e:?}"),
            &deliver,
        ));
    }
    let point = resumed.as_ref().map(|p| {
        let st = p.store.fast_state();
        super::api::stream::RestoreResumePoint {
            id: p.id.clone(),
            last_seq: st.last_seq,
            messages: st.msgs,
            bytes: st.bytes,
        }
    });
    // A resumed upload stays resumable (same id; the request may set a new hold).
    let resumable = match (&resumed, ext.resumable) {
        (Some(p), r) => Some((p.id.clone(), r.map_or(p.hold, |(_, h)| h))),
        (None, r) => r,
    };
    let job = Job {
        js: js.clone(),
        jsa: jsa.clone(),
        server,
        cfg,
        staging: match &resumed {
            Some(p) => p.staging.clone(),
            None => jsa.dir.join(format!("{STAGING_PREFIX}{name}-{id}")),
        },
        sub,
        claim,
        resumable: resumable.clone(),
        resumed: Mutex::new(resumed),
    };
    let handle = tokio::runtime::Handle::current();
    let spawned = std::thread::Builder::new()
        .name(format!("natrium-restore-{name}"))
        .spawn(move || {
            // Streams and consumers made live here start tasks on the server's runtime.
            let _guard = handle.enter();
            job.run(rx)
        });
    if let Err(e) = spawned {
        return Err(ApiError::stream_restore(e));
    }
    Ok(ApiAnswer::ok(
        ApiResponse::new(StreamRestoreBody {
            deliver_subject: deliver,
            natrium_resumable: resumable.map(|(id, _)| id),
            natrium_resume: point,
        })
        .to_json(),
    ))
}

/// The error answer of this endpoint (`deliver_subject` is always present).
pub fn error_body(e: ApiError) -> String {
    ApiResponse::with_error(StreamRestoreBody::default(), e).to_json()
}

/// One uploaded message.
struct Chunk {
    /// Where to answer.
    reply: Option<Box<[u8]>>,
    /// The bytes (empty: end of upload).
    data: Box<[u8]>,
}

/// The upload subscription: queues chunks for the importer, never blocking the sender's
/// connection. A client that runs more than the queue ahead (jsm.go sends one chunk at
/// a time) fails the restore rather than growing memory.
struct Upload {
    /// To the importer.
    tx: SyncSender<Chunk>,
}

impl InternalHandler for Upload {
    fn handle(
        &self,
        _ctx: &mut DeliveryCtx,
        _account: &Arc<Account>,
        _sub: &Subscription,
        _publisher: Publisher<'_>,
        _routed_by: &[u8],
        msg: PubMsg<'_>,
    ) -> bool {
        let chunk = Chunk {
            reply: msg.reply.map(Into::into),
            data: msg.payload.into(),
        };
        match self.tx.try_send(chunk) {
            Ok(()) => true,
            // The importer stopped, or the client ignored flow control: the importer
            // notices (disconnected channel or overrun flag below).
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => true,
        }
    }
}

/// `Read` over the queued chunks; answers each chunk as it is taken (that answer is the
/// client's flow control).
struct ChunkReader {
    /// From the subscription.
    rx: Receiver<Chunk>,
    /// Current chunk.
    cur: Box<[u8]>,
    /// Read position in it.
    pos: usize,
    /// Reply subject of the empty end-of-upload request, once seen.
    end_reply: Option<Option<Box<[u8]>>>,
    /// For answering chunks.
    server: Arc<ServerShared>,
    /// The account.
    account: Arc<Account>,
    /// Bytes received (for the advisory).
    received: u64,
    /// The client went quiet past the idle timeout (the upload is abandoned).
    timed_out: bool,
    /// How long to wait for the first chunk: a resuming client first skips what the
    /// server kept, which is not inactivity.
    first_wait: Duration,
}

impl ChunkReader {
    /// How long the next chunk may take.
    fn wait(&self) -> Duration {
        if self.received == 0 {
            self.first_wait.max(IDLE_TIMEOUT)
        } else {
            IDLE_TIMEOUT
        }
    }

    fn answer(&self, reply: &[u8], body: &[u8]) {
        let mut ctx = DeliveryCtx::new(self.server.clone(), rand::random());
        super::api_server::publish(&mut ctx, &self.account, reply, body);
        ctx.flush();
    }

    /// Reads the upload up to its end request; how many bytes came after the archive.
    fn rest_len(&mut self) -> std::io::Result<u64> {
        let mut buf = [0u8; 256];
        let mut extra = 0u64;
        loop {
            match std::io::Read::read(self, &mut buf)? {
                0 => return Ok(extra),
                n => extra += n as u64,
            }
        }
    }

    /// Take chunks until the end of the upload, discarding them (after a failure, so
    /// the client gets to send its end request and read the error).
    fn drain(&mut self) {
        while self.end_reply.is_none() && !self.timed_out {
            match self.rx.recv_timeout(self.wait()) {
                Ok(c) if c.data.is_empty() => self.end_reply = Some(c.reply),
                Ok(c) => {
                    if let Some(r) = &c.reply {
                        self.answer(r, b"");
                    }
                }
                Err(_) => {
                    self.timed_out = true;
                    return;
                }
            }
        }
    }
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.cur.len() {
            if self.end_reply.is_some() {
                return Ok(0);
            }
            let c = match self.rx.recv_timeout(self.wait()) {
                Ok(c) => c,
                Err(RecvTimeoutError::Timeout) => {
                    self.timed_out = true;
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no data for {}s, restore abandoned", self.wait().as_secs()),
                    ));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
                }
            };
            if c.data.is_empty() {
                self.end_reply = Some(c.reply);
                return Ok(0);
            }
            let Some(reply) = &c.reply else {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "chunk without a reply subject",
                ));
            };
            self.answer(reply, b"");
            self.received += c.data.len() as u64;
            self.cur = c.data;
            self.pos = 0;
        }
        let n = (self.cur.len() - self.pos).min(out.len());
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Why a restore failed: an API error to answer with.
type Failure = ApiError;

fn restore_failed(e: impl std::fmt::Display) -> Failure {
    ApiError::stream_restore(e)
}

/// One restore, run on its own thread.
struct Job {
    js: Arc<JetStream>,
    jsa: Arc<JsAccount>,
    server: Arc<ServerShared>,
    /// The request's (checked) configuration: authoritative for configuration.
    cfg: StreamConfig,
    /// Staging directory for a file stream.
    staging: PathBuf,
    /// The upload subscription (removed when done).
    sub: Arc<Subscription>,
    /// In-progress mark.
    claim: Claim,
    /// `natrium_resumable`: id and hold, when the received part is kept for a resume
    /// should the client go away.
    resumable: Option<(String, Duration)>,
    /// The parked part this upload continues (taken by the import).
    resumed: Mutex<Option<Box<Parked>>>,
}

/// The staging store of a running import, owned outside it so that an interrupted
/// resumable upload can be parked rather than deleted.
#[derive(Default)]
struct Staged {
    /// The store, until activation takes it.
    store: Option<Arc<dyn StreamStore>>,
    /// The archive's creation time, once read.
    created: Option<Timestamp>,
}

/// A consumer read from the archive.
struct ArchivedConsumer {
    name: String,
    config: ConsumerConfig,
    state: ConsumerState,
}

/// `JSRestoreCreateAdvisory` / `JSRestoreCompleteAdvisory`.
#[derive(Serialize)]
struct Advisory<'a> {
    #[serde(flatten)]
    typed: super::advisory::Typed,
    stream: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    start: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
    #[serde(skip_serializing_if = "str::is_empty")]
    domain: &'a str,
}

impl Job {
    /// Where a v1 (tar) archive is unpacked while it is read; hidden like the staging
    /// directory, and removed with it.
    fn spool(&self) -> PathBuf {
        let mut name = self.staging.as_os_str().to_owned();
        name.push(".spool");
        PathBuf::from(name)
    }

    fn run(self, rx: Receiver<Chunk>) {
        let name = self.cfg.name.clone();
        let start = Timestamp::now();
        super::advisory::send_now(
            &self.server,
            &self.jsa.account,
            &format!("$JS.EVENT.ADVISORY.STREAM.RESTORE_CREATE.{name}"),
            &Advisory {
                typed: super::advisory::Typed::new(RESTORE_CREATE),
                stream: &name,
                start: None,
                end: None,
                bytes: None,
                domain: &self.js.domain,
            },
        );
        let mut reader = ChunkReader {
            rx,
            cur: Box::new([]),
            pos: 0,
            end_reply: None,
            server: self.server.clone(),
            account: self.jsa.account.clone(),
            received: 0,
            timed_out: false,
            first_wait: match (&*self.resumed.lock(), &self.resumable) {
                (Some(_), Some((_, hold))) => *hold,
                _ => IDLE_TIMEOUT,
            },
        };
        let mut staged = Staged::default();
        let result = self.import(&mut reader, &mut staged);
        // The client went away (rather than sent something wrong): keep what arrived.
        let gone = reader.timed_out;
        if result.is_err() {
            reader.drain();
        }
        crate::client::deliver::remove_sub(&self.jsa.account, &self.sub);
        let parked = match (&result, staged.store.take(), &self.resumable) {
            (Err(_), Some(store), Some((id, hold))) if gone => {
                self.park(store, staged.created, id, *hold);
                true
            }
            (_, Some(store), _) => {
                let _ = store.delete();
                false
            }
            (_, None, _) => false,
        };
        let dirs: &[&PathBuf] = if parked { &[] } else { &[&self.staging] };
        for dir in dirs.iter().copied().chain([&self.spool()]) {
            if dir.exists() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        let body = match &result {
            Ok(stream) => ApiResponse::new(StreamCreateBody {
                info: Some(super::api_streams::info_of(&self.js, stream, false)),
                did_create: false,
            })
            .to_json(),
            Err(e) => ApiResponse::<StreamCreateBody>::error(e.clone()).to_json(),
        };
        // Free the name before the client hears the outcome: a client that retries at
        // once after a failed restore must not be refused as if this one still ran.
        // (A parked restore holds its own slot; a restored stream holds the name.)
        drop(self.claim);
        if let Some(Some(reply)) = &reader.end_reply {
            reader.answer(reply, body.as_bytes());
        }
        if result.is_ok() {
            super::advisory::stream_action(
                &self.server,
                &self.jsa.account,
                &name,
                "create",
                &self.js.domain,
            );
        }
        super::advisory::send_now(
            &self.server,
            &self.jsa.account,
            &format!("$JS.EVENT.ADVISORY.STREAM.RESTORE_COMPLETE.{name}"),
            &Advisory {
                typed: super::advisory::Typed::new(RESTORE_COMPLETE),
                stream: &name,
                start: Some(start),
                end: Some(Timestamp::now()),
                bytes: Some(reader.received),
                domain: &self.js.domain,
            },
        );
    }

    /// Keep the staging store of an interrupted resumable upload for a resume, for
    /// `hold`; afterwards it is removed like a failed restore's.
    fn park(
        &self,
        store: Arc<dyn StreamStore>,
        created: Option<Timestamp>,
        id: &str,
        hold: Duration,
    ) {
        let generation = next_generation();
        let parked = Box::new(Parked {
            id: id.to_string(),
            hold,
            cfg: self.cfg.clone(),
            store,
            staging: self.staging.clone(),
            created,
            generation,
        });
        {
            let mut map = self.claim.slots.lock();
            if !matches!(map.get(&self.claim.key), Some(Slot::Running(g)) if *g == self.claim.generation)
            {
                drop(map);
                discard(&parked);
                return;
            }
            map.insert(self.claim.key.clone(), Slot::Parked(parked));
        }
        let key = self.claim.key.clone();
        let slots = self.claim.slots.clone();
        tokio::spawn(async move {
            tokio::time::sleep(hold).await;
            let _ = tokio::task::spawn_blocking(move || expire(&slots, &key, generation)).await;
        });
    }

    /// Read the whole archive into a hidden store (`staged`, a fresh one or the parked
    /// one of a resume), then make it live.
    fn import(
        &self,
        reader: &mut ChunkReader,
        staged: &mut Staged,
    ) -> Result<Arc<Stream>, Failure> {
        // A resume continues the parked store; from here on `run` owns its fate.
        let resume_after = match self.resumed.lock().take() {
            Some(p) => {
                let p = *p;
                let last = p.store.fast_state().last_seq;
                staged.store = Some(p.store);
                staged.created = p.created;
                Some(last)
            }
            None => None,
        };
        let memory = self.cfg.storage == ApiStorage::Memory;
        let opts = self.server.opts();
        let max_msg = if self.cfg.max_msg_size > 0 {
            (self.cfg.max_msg_size as u64).min(opts.max_payload.max(0) as u64)
        } else {
            opts.max_payload.max(0) as u64
        };
        let mut archive = ArchiveReader::new(
            &mut *reader,
            ReaderOptions {
                max_msg_size: max_msg,
                staging_dir: Some(self.spool()),
                strict: false,
                expected_stream: Some(self.cfg.name.clone()),
            },
        )
        .map_err(restore_failed)?;
        match (archive.incremental(), resume_after) {
            (Some(h), None) => {
                // One link of a natrium backup chain is not the stream: the CLI merges
                // the chain into one complete archive first.
                return Err(restore_failed(
                    natrium_store::archive::ArchiveError::Incremental { since: h.since },
                ));
            }
            (None, Some(l)) => {
                return Err(restore_failed(format!(
                    "a resumed restore takes an incremental archive continuing from sequence {l}, not a complete one"
                )));
            }
            (Some(h), Some(l)) if h.since != l => {
                return Err(restore_failed(format!(
                    "the upload continues from sequence {} but the server holds up to {l}: a gap or an overlap",
                    h.since
                )));
            }
            (Some(h), Some(_)) if !h.absent.is_empty() => {
                return Err(restore_failed(
                    "a resumed upload may not delete what the server holds (tombstones)",
                ));
            }
            _ => {}
        }
        let store: Arc<dyn StreamStore> = match &staged.store {
            Some(s) => s.clone(),
            None => {
                let s: Arc<dyn StreamStore> = if memory {
                    Arc::new(MemStore::new(store_config(&self.cfg)))
                } else {
                    let o = FileStoreOptions {
                        // Synced once at the end, before the rename makes it visible.
                        durability: Durability::Interval(Duration::from_secs(3600)),
                        config: store_config(&self.cfg),
                        // It becomes the live stream's store (renamed while open).
                        ..self.js.file_store_options()
                    };
                    Arc::new(FileStore::open(&self.staging, o).map_err(restore_failed)?)
                };
                staged.store = Some(s.clone());
                s
            }
        };
        let mut consumers: Vec<ArchivedConsumer> = Vec::new();
        // Next sequence the store expects (above what a resumed one holds).
        let mut next = store.fast_state().last_seq + 1;
        let mut declared_last = 0u64;
        let mut saw_state = false;
        // Bytes stored so far, and the point at which usage is checked next: the
        // declared size was reserved up front, and an archive that holds more than it
        // declared is checked again every MiB beyond that.
        let mut stored = 0u64;
        let mut next_check = u64::MAX;
        // Every MiB stored, yield to live publishers as a snapshot does, if configured
        // (`background::Yielder`, `jetstream { restore_share }`, default 100: never).
        let live = || self.js.live_work.load(Ordering::Relaxed);
        let mut yielder = super::background::Yielder::new(live(), std::time::Instant::now());
        let mut next_yield = YIELD_EVERY;
        // The staging store is removed (or parked) by `run`.
        let fail = |e: Failure| -> Failure { e };
        loop {
            let entry = match archive.next_entry() {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(e) => return Err(fail(restore_failed(e))),
            };
            match entry {
                Entry::StreamMeta { config, created: c } => {
                    let name = config.get("name").and_then(|v| v.as_str()).unwrap_or("");
                    if name != self.cfg.name {
                        return Err(fail(restore_failed("stream names do not match")));
                    }
                    staged.created =
                        c.and_then(|s| serde_json::from_value(serde_json::Value::String(s)).ok());
                }
                Entry::State(st) => {
                    saw_state = true;
                    super::api_streams::check_usage(&self.js, &self.jsa, memory, st.bytes)
                        .map_err(fail)?;
                    declared_last = st.last_seq;
                    next_check = st.bytes.saturating_add(1 << 20);
                    if st.first_seq > next {
                        store
                            .skip_msgs(next, st.first_seq - next)
                            .map_err(|e| fail(restore_failed(e)))?;
                        next = st.first_seq;
                    }
                }
                Entry::Consumer {
                    name,
                    config,
                    state,
                } => {
                    if consumers.len() >= MAX_CONSUMERS {
                        return Err(fail(restore_failed("too many consumers")));
                    }
                    let config: ConsumerConfig = serde_json::from_value(config)
                        .map_err(|e| fail(restore_failed(format!("consumer {name}: {e}"))))?;
                    let state_json =
                        serde_json::to_value(&state).map_err(|e| fail(restore_failed(e)))?;
                    let state = super::archive_state::from_json(&state_json)
                        .map_err(|e| fail(restore_failed(format!("consumer {name}: {e}"))))?;
                    consumers.push(ArchivedConsumer {
                        name,
                        config,
                        state,
                    });
                }
                Entry::Message {
                    seq,
                    ts,
                    subject,
                    header,
                    payload,
                } => {
                    if seq < next {
                        return Err(fail(restore_failed(format!(
                            "message sequence {seq} out of order"
                        ))));
                    }
                    if seq > next {
                        store
                            .skip_msgs(next, seq - next)
                            .map_err(|e| fail(restore_failed(e)))?;
                    }
                    let subject = std::str::from_utf8(&subject)
                        .map_err(|_| fail(restore_failed("message subject is not UTF-8")))?;
                    let ttl = ttl_of(&header);
                    if ttl_elapsed(ttl, ts) {
                        // Expired while in the archive: keep the sequence, not the data.
                        store.skip_msg(seq).map_err(|e| fail(restore_failed(e)))?;
                    } else {
                        // No per-message wait: the staging store is synced once,
                        // before it becomes visible.
                        store
                            .append_raw_msg(subject, &header, &payload, seq, ts, ttl, false)
                            .map_err(|e| fail(super::stream::store_error(&e)))?;
                        stored += store.msg_size(subject, &header, &payload);
                        if stored >= next_check {
                            super::api_streams::check_usage(&self.js, &self.jsa, memory, stored)
                                .map_err(fail)?;
                            next_check = stored.saturating_add(1 << 20);
                        }
                        if stored >= next_yield {
                            yielder.step(live(), self.js.restore_share.load(Ordering::Relaxed));
                            next_yield = stored.saturating_add(YIELD_EVERY);
                        }
                    }
                    next = seq + 1;
                }
                Entry::End { last_seq } => {
                    let last = last_seq.max(declared_last);
                    if last >= next {
                        store
                            .skip_msgs(next, last - next + 1)
                            .map_err(|e| fail(restore_failed(e)))?;
                        next = last + 1;
                    }
                }
            }
        }
        if !saw_state {
            return Err(fail(restore_failed("archive has no stream state")));
        }
        drop(archive);
        // Everything up to the archive's end marker was read and checked. What follows
        // it is not part of the archive: S2 padding or index frames that tools append,
        // or a second archive. nats-server stops reading at the marker; so does this,
        // and says so in the log.
        match reader.rest_len() {
            Ok(0) => {}
            Ok(n) => warn!(
                self.server.log,
                "Restore of stream '{}': ignored {} bytes after the archive's end marker",
                self.cfg.name,
                n
            ),
            Err(e) => return Err(fail(restore_failed(e))),
        }
        let created = staged.created.unwrap_or_else(Timestamp::now);
        // Activation owns the store from here (and removes it if it fails).
        staged.store = None;
        if memory {
            self.activate_memory(store, created, consumers)
        } else {
            self.activate_file(store, created, consumers)
        }
    }

    /// Make a file stream live: write its metadata and durable consumers into the
    /// staging store, move it into place while open (synced, renamed, durability
    /// switched), and make it the stream as recovery does.
    fn activate_file(
        &self,
        store: Arc<dyn StreamStore>,
        created: Timestamp,
        consumers: Vec<ArchivedConsumer>,
    ) -> Result<Arc<Stream>, Failure> {
        let fail = |e: &dyn std::fmt::Display| {
            let _ = store.delete();
            restore_failed(e)
        };
        let meta = serde_json::to_vec(&StreamMeta {
            config: self.cfg.clone(),
            created,
        })
        .map_err(|e| fail(&e))?;
        store.write_stream_meta(&meta).map_err(|e| fail(&e))?;
        let mut ephemeral = Vec::new();
        let mut persisted = Vec::new();
        for c in consumers {
            if c.config.mem_storage {
                ephemeral.push(c);
                continue;
            }
            persisted.push(c.name.clone());
            let cs = store
                .consumer_store(&c.name, Consumer::store_policy(&c.config))
                .map_err(|e| fail(&e))?;
            let meta = serde_json::to_vec(&ConsumerMeta {
                config: c.config,
                created: Timestamp::now(),
            })
            .map_err(|e| fail(&e))?;
            cs.write_config(&meta).map_err(|e| fail(&e))?;
            cs.force_update(&c.state).map_err(|e| fail(&e))?;
            cs.sync().map_err(|e| fail(&e))?;
            cs.stop().map_err(|e| fail(&e))?;
        }
        let dir = self.jsa.dir.join(&self.cfg.name);
        if dir.exists() || self.jsa.stream(&self.cfg.name).is_some() {
            let _ = store.delete();
            return Err(ApiError::stream_name_exist_restore_failed());
        }
        // Synced, renamed into place and switched to the server's durability while
        // open: no second scan of what was just written and verified.
        store
            .move_to(&dir, self.js.durability)
            .map_err(|e| fail(&e))?;
        let stream = self
            .js
            .adopt_stream_store(&self.server, &self.jsa, &dir, store.clone())
            .map_err(|e| {
                let _ = store.delete();
                restore_failed(e)
            })?;
        // Going live opens the consumers written above as recovery does, which logs
        // and skips one it cannot open; a restore must have all of them.
        if let Some(name) = persisted.iter().find(|n| stream.consumer(n).is_none()) {
            self.withdraw(&stream);
            return Err(restore_failed(format!(
                "consumer {name:?} of the archive could not be opened"
            )));
        }
        self.add_ephemerals(&stream, ephemeral)
            .inspect_err(|_| self.withdraw(&stream))?;
        Ok(stream)
    }

    /// Takes a stream made live by this restore back out (a later step failed), so
    /// that a failed restore leaves nothing behind.
    fn withdraw(&self, stream: &Arc<Stream>) {
        let _ = self.jsa.delete_stream(&stream.name);
    }

    /// Make a memory stream live.
    fn activate_memory(
        &self,
        store: Arc<dyn StreamStore>,
        created: Timestamp,
        consumers: Vec<ArchivedConsumer>,
    ) -> Result<Arc<Stream>, Failure> {
        if self.jsa.stream(&self.cfg.name).is_some() {
            return Err(ApiError::stream_name_exist_restore_failed());
        }
        let stream = Stream::new(
            self.jsa.account.clone(),
            self.cfg.clone(),
            created,
            store,
            None,
            self.js.domain.clone(),
        );
        stream.subscribe();
        stream.spawn(self.server.clone());
        self.jsa.insert_stream(stream.clone());
        self.add_ephemerals(&stream, consumers)
            .inspect_err(|_| self.withdraw(&stream))?;
        Ok(stream)
    }

    /// Open consumers whose state lives in memory, with their archived state.
    fn add_ephemerals(
        &self,
        stream: &Arc<Stream>,
        consumers: Vec<ArchivedConsumer>,
    ) -> Result<(), Failure> {
        for c in consumers {
            let cs: Arc<dyn ConsumerStore> = Arc::new(MemConsumerStore::new(
                &c.name,
                Consumer::store_policy(&c.config),
            ));
            cs.force_update(&c.state).map_err(restore_failed)?;
            let consumer = Consumer::open(
                stream.clone(),
                c.config,
                Timestamp::now(),
                cs,
                true,
                c.name.clone(),
            )
            .map_err(restore_failed)?;
            stream.consumers.write().insert(c.name, consumer.clone());
            consumer.start(self.server.clone());
        }
        Ok(())
    }
}

/// The `Nats-TTL` a message was stored with (none when absent or unreadable).
fn ttl_of(header: &[u8]) -> Option<natrium_store::Ttl> {
    let v = super::headers::get_str(header, super::headers::TTL)?;
    super::headers::parse_ttl(v).ok().flatten()
}

/// Whether a message's TTL ran out before now (relative to its timestamp).
fn ttl_elapsed(ttl: Option<natrium_store::Ttl>, ts: i64) -> bool {
    match ttl {
        Some(natrium_store::Ttl::After(d)) => {
            let end = ts.saturating_add(d.as_nanos().min(i64::MAX as u128) as i64);
            end <= super::stream::now_nanos()
        }
        _ => false,
    }
}

/// Remove staging directories a crash left behind (called at start, before recovery).
pub fn remove_leftovers(account_dir: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(account_dir) else {
        return removed;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        if name.to_string_lossy().starts_with(STAGING_PREFIX) {
            let path = e.path();
            let gone = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            if gone.is_ok() {
                removed.push(path);
            }
        }
    }
    removed
}
