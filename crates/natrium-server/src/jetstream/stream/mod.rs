//! A JetStream stream: its store, its subscriptions, and the publish pipeline.
//!
//! Why a pipeline: a publish that matches a stream arrives on the *publisher's* reader
//! task, which must never wait for a disk. So the stream's subscription only copies the
//! message into the stream's queue. One task per stream drains the queue in batches:
//! it checks each message (sealed, size, expectation headers, de-duplication, TTL,
//! rollup), appends it, then makes the whole batch durable with **one** fsync
//! (group commit, off the async workers), and only then sends the PubAcks. So under
//! load many publishers share each fsync, and when idle a publish costs one fsync.
//!
//! The one exception to "off the async workers": a *quiet* stream (no batch waiting for
//! its acks, nothing queued behind the one just stored) fsyncs on its own task and
//! answers right away, because handing a lone publish to the fsync thread and its ack
//! back costs two thread wake-ups, about as long as the fsync itself (a lone sync
//! publisher went from ~2,500 to ~3,500 acks/s with this and segment preallocation). At
//! most one stream in the server does this at a time (`JetStream::inline_fsync`), and
//! only with two or more worker threads, so a slow disk can tie up one worker, never all.
//!
//! Invariants:
//! - A PubAck that says "stored" is sent only after the store reports the message
//!   durable under the stream's durability mode. If making it durable fails, every
//!   message of the batch is answered with an error instead.
//! - Only this task appends, so checks against "the last sequence" are exact.
//! - Lock order: `config` may be read while holding nothing else; no lock is held while
//!   publishing acks (publishing can re-enter internal subscriptions).

mod atomic_commit;
mod fast_commit;
mod schedules;

use super::api::direct::headers::LAST_SEQUENCE;
use super::api::errors::ApiError;
use super::api::pub_ack::{PubAck, PubAckResponse};
use super::api::stream::RetentionPolicy;
use super::api::stream::{DiscardPolicy, StorageType as ApiStorage, StreamConfig};
use super::api::time::Timestamp;
use super::consumer::Consumer;
use super::counter;
use super::headers;
use super::sourcing::{Links, SourcedBy};
use crate::account::Account;
use crate::client::deliver::{DeliveryCtx, Publisher};
use crate::client::subscription::{InternalHandler, Subscription};
use crate::protocol::PubMsg;
use crate::server::ServerShared;
use crate::subject_mapping::map_subject_with_functions;
use crate::sublist::subject_matches;
use natrium_store::{
    DiscardPolicy as StoreDiscard, Durability, StoreConfig, StoreError, StreamStore, SubjectFilter,
    Ticket, Ttl,
};
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::mpsc;

/// Messages taken from the queue per batch.
const BATCH: usize = 512;
/// Stored batches that may wait for the group-commit task before the stream task waits
/// for it (bounds the acks held back by a slow disk).
const COMMIT_DEPTH: usize = 16;
/// Bytes a stream may have queued before new publishes are refused (back-pressure for a
/// stream whose disk cannot keep up).
const MAX_QUEUED_BYTES: usize = 256 * 1024 * 1024;
/// Largest header block nats-server accepts into a stream (`math.MaxUint16`).
const MAX_HEADER_SIZE: usize = u16::MAX as usize;

/// A published message waiting to be stored: subject, reply, header block and payload
/// copied back to back into **one** allocation (the publisher's read buffer is reused, so
/// a copy is needed; one is enough).
pub struct Inbound {
    /// Subject (valid UTF-8), reply, header block and payload, in that order.
    buf: Box<[u8]>,
    /// Subject length.
    subject_len: u32,
    /// Reply length; `None` without a reply subject.
    reply_len: Option<u32>,
    /// Header block length; `None` without headers.
    hdr_len: Option<u32>,
    /// For a subject delete marker queued by expiry: the sequence of the expired message
    /// it stands for, republished as its `Nats-Last-Sequence` (0 for every other message).
    expired_seq: u64,
    /// For a copy made by a mirror or source link: where it came from (`None` for
    /// publishes).
    sourced: Option<Box<SourcedBy>>,
    /// Fired by one of the stream's schedules (stored without a client's checks).
    scheduled: bool,
}

impl Inbound {
    /// Copy a published message. `None` if a part is over 4 GiB (the protocol's limits
    /// are far below that).
    fn new(
        subject: &str,
        reply: Option<&[u8]>,
        headers: Option<&[u8]>,
        payload: &[u8],
    ) -> Option<Inbound> {
        let len32 = |b: &[u8]| u32::try_from(b.len()).ok();
        let subject_len = len32(subject.as_bytes())?;
        let reply_len = match reply {
            Some(r) => Some(len32(r)?),
            None => None,
        };
        let hdr_len = match headers {
            Some(h) => Some(len32(h)?),
            None => None,
        };
        let total = subject.len()
            + reply.map_or(0, <[u8]>::len)
            + headers.map_or(0, <[u8]>::len)
            + payload.len();
        let mut buf = Vec::with_capacity(total);
        buf.extend_from_slice(subject.as_bytes());
        buf.extend_from_slice(reply.unwrap_or(&[]));
        buf.extend_from_slice(headers.unwrap_or(&[]));
        buf.extend_from_slice(payload);
        Some(Inbound {
            buf: buf.into_boxed_slice(),
            subject_len,
            reply_len,
            hdr_len,
            expired_seq: 0,
            scheduled: false,
            sourced: None,
        })
    }

    /// Bytes held.
    fn size(&self) -> usize {
        self.buf.len()
    }

    /// The subject.
    fn subject(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.subject_len as usize]).unwrap_or_default()
    }

    /// Where the reply ends.
    fn reply_end(&self) -> usize {
        self.subject_len as usize + self.reply_len.unwrap_or(0) as usize
    }

    /// The reply subject, if any.
    fn reply(&self) -> Option<&[u8]> {
        self.reply_len
            .map(|_| &self.buf[self.subject_len as usize..self.reply_end()])
    }

    /// The header block, if any.
    fn headers(&self) -> Option<&[u8]> {
        let start = self.reply_end();
        self.hdr_len.map(|n| &self.buf[start..start + n as usize])
    }

    /// The payload.
    fn payload(&self) -> &[u8] {
        &self.buf[self.reply_end() + self.hdr_len.unwrap_or(0) as usize..]
    }
}

/// Map the API config's limits to what the store enforces.
pub fn store_config(cfg: &StreamConfig) -> StoreConfig {
    let pos = |v: i64| (v > 0).then_some(v as u64);
    StoreConfig {
        max_msgs: pos(cfg.max_msgs),
        max_bytes: pos(cfg.max_bytes),
        max_age: (cfg.max_age > 0).then(|| Duration::from_nanos(cfg.max_age as u64)),
        max_msgs_per_subject: pos(cfg.max_msgs_per_subject),
        max_msg_size: (cfg.max_msg_size > 0).then_some(cfg.max_msg_size as u64),
        discard: match cfg.discard {
            DiscardPolicy::Old => StoreDiscard::Old,
            DiscardPolicy::New => StoreDiscard::New,
        },
        discard_new_per_subject: cfg.discard_new_per_subject,
    }
}

/// The `Nats-Msg-Id` de-duplication window. Ids are the header's bytes as sent (not
/// necessarily UTF-8; nats-server compares them as they are).
#[derive(Default)]
struct Dedup {
    /// id → (sequence, timestamp ns).
    ids: HashMap<Box<[u8]>, (u64, i64)>,
    /// Insertion order, for expiry.
    order: VecDeque<(i64, Box<[u8]>)>,
}

impl Dedup {
    fn prune(&mut self, now: i64, window: i64) {
        while let Some((ts, _)) = self.order.front() {
            if now - *ts <= window {
                break;
            }
            if let Some((_, id)) = self.order.pop_front()
                && self.ids.get(&id).is_some_and(|(_, t)| now - *t > window)
            {
                self.ids.remove(&id);
            }
        }
    }

    fn insert(&mut self, id: &[u8], seq: u64, ts: i64) {
        self.order.push_back((ts, id.into()));
        self.ids.insert(id.into(), (seq, ts));
    }
}

/// One stream.
pub struct Stream {
    /// Stream name.
    pub name: String,
    /// The account it lives in.
    pub account: Arc<Account>,
    /// Current configuration.
    config: RwLock<StreamConfig>,
    /// Creation time.
    pub created: Timestamp,
    /// The store.
    pub store: Arc<dyn StreamStore>,
    /// Directory of the stream's files; `None` for a memory stream, which keeps nothing
    /// on disk.
    pub dir: Option<PathBuf>,
    /// Set by a purge: from then on an empty stream reports `first_seq` as last + 1
    /// (nats-server's stores start at 0 and move on at the first purge or message).
    pub purged: AtomicBool,
    /// The publish queue, with the number of the last message put on it (one lock, so
    /// numbers follow queue order).
    tx: Mutex<(u64, mpsc::UnboundedSender<Inbound>)>,
    /// How many queued messages the task has finished (stored and acked, or refused).
    pub processed: tokio::sync::watch::Sender<u64>,
    /// The queue's receiving end, until the task takes it.
    rx: Mutex<Option<mpsc::UnboundedReceiver<Inbound>>>,
    /// Bytes queued and not yet processed.
    queued: AtomicUsize,
    /// Subscriptions on the stream's subjects.
    subs: Mutex<Vec<Arc<Subscription>>>,
    /// Set when the stream is deleted or the server stops.
    closed: AtomicBool,
    /// Last stored sequence, watched by consumers.
    pub last_seq: tokio::sync::watch::Sender<u64>,
    /// Wakes the stream's task after a config update: its expiry deadline was taken
    /// from the old `max_age`, and a new one (added, or lowered) must apply now, not
    /// at the next publish or the old deadline.
    limits_changed: tokio::sync::Notify,
    /// Set by an update that turns `allow_atomic` off: the task drops the open atomic
    /// batches before it takes another message (nats-server discards them on update).
    drop_batches: AtomicBool,
    /// Messages removed by retention (work-queue or interest acks) since start. A
    /// consumer tells removals that may have taken its unacknowledged deliveries
    /// (limits, expiry, deletes, purges, rollups) from these, which cannot: see
    /// [`Stream::removals_beyond_retention`].
    retention_removals: AtomicU64,
    /// JetStream domain for PubAcks.
    domain: String,
    /// The start of every successful PubAck ([`ack_prefix`]).
    ack_prefix: Vec<u8>,
    /// The stream's consumers, by name. Each holds the stream; [`Stream::close`] stops
    /// them, which breaks the cycle.
    pub consumers: RwLock<BTreeMap<String, Arc<Consumer>>>,
    /// The account's freeze gate: held shared while a batch is stored, taken exclusively
    /// for an instant by a consistent account snapshot (`account_snapshot`).
    gate: Arc<parking_lot::RwLock<()>>,
    /// The mirror or sources this stream copies from (`sourcing`).
    pub links: Links,
    /// Links of other streams that copy from this one: for interest retention they
    /// count as consumers (a message is kept until they copied it), and a work queue
    /// gives its messages away to them.
    pub readers: RwLock<Vec<Arc<super::sourcing::Link>>>,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The subscription handler on a stream's subjects.
struct StreamSub {
    /// The stream (weak: the account's index must not keep a deleted stream alive).
    stream: Weak<Stream>,
}

impl InternalHandler for StreamSub {
    fn handle(
        &self,
        ctx: &mut DeliveryCtx,
        account: &Arc<Account>,
        _sub: &Subscription,
        _publisher: Publisher<'_>,
        _routed_by: &[u8],
        msg: PubMsg<'_>,
    ) -> bool {
        let Some(stream) = self.stream.upgrade() else {
            return false;
        };
        match stream.enqueue(msg) {
            Ok(n) => {
                let id = Arc::as_ptr(&stream) as usize;
                ctx.add_barrier(id, n, || stream.processed.subscribe());
            }
            Err(e) => {
                // Refused before queueing (overload): answer right away.
                if let Some(reply) = msg.reply {
                    let ack = PubAckResponse::error(stream.name.clone(), e).to_wire();
                    ctx.publish(
                        account,
                        Publisher::SERVER,
                        PubMsg {
                            subject: reply,
                            reply: None,
                            headers: None,
                            payload: &ack,
                        },
                    );
                }
            }
        }
        true
    }
}

impl Stream {
    /// A stream over an opened store. Call [`Stream::subscribe`] and [`Stream::spawn`]
    /// to make it live.
    pub fn new(
        account: Arc<Account>,
        config: StreamConfig,
        created: Timestamp,
        store: Arc<dyn StreamStore>,
        dir: Option<PathBuf>,
        domain: String,
    ) -> Arc<Stream> {
        let (tx, rx) = mpsc::unbounded_channel();
        let last = store.fast_state().last_seq;
        let account_name = account.name.clone();
        let prefix = ack_prefix(&config.name, &domain);
        Arc::new(Stream {
            name: config.name.clone(),
            account,
            config: RwLock::new(config),
            created,
            store,
            dir,
            purged: AtomicBool::new(false),
            tx: Mutex::new((0, tx)),
            processed: tokio::sync::watch::channel(0).0,
            rx: Mutex::new(Some(rx)),
            queued: AtomicUsize::new(0),
            subs: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            last_seq: tokio::sync::watch::channel(last).0,
            limits_changed: tokio::sync::Notify::new(),
            drop_batches: AtomicBool::new(false),
            retention_removals: AtomicU64::new(0),
            ack_prefix: prefix,
            domain,
            consumers: RwLock::new(BTreeMap::new()),
            gate: super::account_snapshot::gate(&account_name),
            links: Links::default(),
            readers: RwLock::new(Vec::new()),
        })
    }

    /// The current configuration.
    pub fn config(&self) -> StreamConfig {
        self.config.read().clone()
    }

    /// The JetStream domain (for advisories and PubAcks).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The retention policy (without copying the whole configuration).
    pub fn retention(&self) -> RetentionPolicy {
        self.config.read().retention
    }

    /// Storage type.
    pub fn is_memory(&self) -> bool {
        self.config.read().storage == ApiStorage::Memory
    }

    /// Replace the configuration (after validation), re-subscribing if subjects changed.
    pub fn update_config(self: &Arc<Self>, cfg: StreamConfig) -> Result<(), StoreError> {
        self.store.update_config(store_config(&cfg))?;
        let resubscribe = self.config.read().subjects != cfg.subjects;
        let drop_batches = !cfg.allow_atomic || !cfg.allow_batched;
        *self.config.write() = cfg;
        if drop_batches {
            self.drop_batches.store(true, Ordering::Release);
        }
        // A permit is kept if the task is not waiting right now.
        self.limits_changed.notify_one();
        // Lower limits may have removed messages just now: consumers let go of them.
        self.wake_consumers();
        if resubscribe {
            self.unsubscribe();
            self.subscribe();
        }
        Ok(())
    }

    /// Subscribe the stream's subjects in its account.
    pub fn subscribe(self: &Arc<Self>) {
        let handler: Arc<dyn InternalHandler> = Arc::new(StreamSub {
            stream: Arc::downgrade(self),
        });
        let mut subs = self.subs.lock();
        for subject in &self.config.read().subjects {
            let sub = Arc::new(Subscription::internal(
                handler.clone(),
                subject.as_bytes(),
                None,
            ));
            if self
                .account
                .sublist
                .insert(subject.as_bytes(), None, sub.clone())
                .is_ok()
            {
                subs.push(sub);
            }
        }
    }

    /// Remove the stream's subscriptions.
    pub fn unsubscribe(&self) {
        for sub in self.subs.lock().drain(..) {
            crate::client::deliver::remove_sub(&self.account, &sub);
        }
    }

    /// The newest message on `subject` as the publish checks must see it: appended ones
    /// included, durable or not (`StreamStore::load_last_written`), so publishes in
    /// flight together see each other.
    fn last_written(&self, subject: &str) -> Option<natrium_store::StoredMsg> {
        let filter = SubjectFilter::new(subject).ok()?;
        self.store.load_last_written(&filter).ok()
    }

    /// Queue a published message; returns its number in the queue. Fails only when the
    /// queue is over its byte limit.
    fn enqueue(&self, msg: PubMsg<'_>) -> Result<u64, ApiError> {
        self.enqueue_with(msg, 0)
    }

    /// [`Stream::enqueue`], for a delete marker standing for the message at `expired_seq`.
    fn enqueue_with(&self, msg: PubMsg<'_>, expired_seq: u64) -> Result<u64, ApiError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(ApiError::stream_not_found());
        }
        let subject = String::from_utf8_lossy(msg.subject);
        let mut inbound = Inbound::new(&subject, msg.reply, msg.headers, msg.payload)
            .ok_or_else(ApiError::stream_message_exceeds_maximum)?;
        inbound.expired_seq = expired_seq;
        self.push(inbound)
    }

    /// Give back inbound-queue bytes held by messages that left it another way (staged
    /// batch messages, see `atomic_commit`).
    fn release_queued(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::AcqRel);
    }

    /// Put a message on the queue, within its byte limit; returns its number.
    fn push(&self, inbound: Inbound) -> Result<u64, ApiError> {
        let size = inbound.size();
        if self.queued.fetch_add(size, Ordering::AcqRel) > MAX_QUEUED_BYTES {
            self.queued.fetch_sub(size, Ordering::AcqRel);
            return Err(ApiError::insufficient_resources());
        }
        let mut tx = self.tx.lock();
        if tx.1.send(inbound).is_err() {
            drop(tx);
            self.queued.fetch_sub(size, Ordering::AcqRel);
            return Err(ApiError::stream_not_found());
        }
        tx.0 += 1;
        Ok(tx.0)
    }

    /// Queue a copy read by a mirror or source link (see `sourcing`): stored by this
    /// stream's task like a publish, without a reply. Fails as [`Stream::enqueue`].
    pub fn enqueue_sourced(
        &self,
        subject: &str,
        headers: Option<&[u8]>,
        payload: &[u8],
        by: SourcedBy,
    ) -> Result<u64, ApiError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(ApiError::stream_not_found());
        }
        let mut inbound = Inbound::new(subject, None, headers, payload)
            .ok_or_else(ApiError::stream_message_exceeds_maximum)?;
        inbound.sourced = Some(Box::new(by));
        self.push(inbound)
    }

    /// Start, keep or stop the stream's mirror and source links to match its config.
    pub fn start_links(self: &Arc<Self>, server: &Arc<ServerShared>) {
        let cfg = self.config();
        self.links.reconcile(self, server, &cfg);
    }

    /// Stop accepting publishes, drop the subscriptions and stop the consumers (delete
    /// or shutdown).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        // The task ends once it has answered what is queued (see `run`).
        self.limits_changed.notify_one();
        self.links.stop_all();
        self.unsubscribe();
        let consumers = std::mem::take(&mut *self.consumers.write());
        for c in consumers.values() {
            c.stop();
            // The task may not get to its final write before the process exits.
            let _ = c.store.commit(true);
        }
    }

    /// A consumer by name.
    pub fn consumer(&self, name: &str) -> Option<Arc<Consumer>> {
        self.consumers.read().get(name).cloned()
    }

    /// Take a consumer out of the stream (it is deleted or expired). Under interest
    /// retention, messages only it still wanted go.
    pub fn remove_consumer(&self, name: &str) -> Option<Arc<Consumer>> {
        let c = self.consumers.write().remove(name)?;
        if self.config.read().retention == RetentionPolicy::Interest {
            let st = self.store.fast_state();
            let floor = c.machine.lock().ack_floor().stream;
            let from = floor.saturating_add(1).max(st.first_seq);
            if st.msgs > 0 && from <= st.last_seq {
                let seqs: Vec<u64> = (from..=st.last_seq).take(1_000_000).collect();
                self.apply_retention(&seqs);
            }
        }
        Some(c)
    }

    /// After acknowledgements: remove messages no consumer needs any more. Work queue:
    /// acked means done. Interest: every consumer whose filter matches the message's
    /// subject has acknowledged it.
    pub fn apply_retention(&self, seqs: &[u64]) {
        let retention = self.config.read().retention;
        match retention {
            RetentionPolicy::Limits => {}
            RetentionPolicy::WorkQueue => {
                let readers = self.readers.read().clone();
                if readers.is_empty() {
                    for &s in seqs {
                        self.remove_retained(s);
                    }
                    return;
                }
                // With mirrors or sources reading it, a message goes once each of them
                // that wants it has copied it, and a consumer that wants it (if any)
                // has acknowledged it: nats-server's links are consumers of the queue.
                let consumers: Vec<Arc<Consumer>> =
                    self.consumers.read().values().cloned().collect();
                for &s in seqs {
                    let Ok(subject) = self.store.subject_for_seq(s) else {
                        continue;
                    };
                    let copied = readers_done(&readers, &subject, s);
                    let mut wanting = consumers.iter().filter(|c| c.matches(&subject)).peekable();
                    let acked =
                        wanting.peek().is_none() || wanting.any(|c| c.machine.lock().is_acked(s));
                    if copied && acked {
                        self.remove_retained(s);
                    }
                }
            }
            RetentionPolicy::Interest => {
                let consumers: Vec<Arc<Consumer>> =
                    self.consumers.read().values().cloned().collect();
                // Mirrors and sources reading this stream count as consumers that have
                // acknowledged what they copied (nats-server's links are consumers).
                let readers = self.readers.read().clone();
                for &s in seqs {
                    let Ok(subject) = self.store.subject_for_seq(s) else {
                        continue;
                    };
                    let done = consumers
                        .iter()
                        .filter(|c| c.matches(&subject))
                        .all(|c| c.machine.lock().is_acked(s))
                        && readers_done(&readers, &subject, s);
                    if done {
                        self.remove_retained(s);
                    }
                }
            }
        }
    }

    /// Interest retention, checked again over every stored message (up to a million):
    /// drop those no consumer wants any more. nats-server does this when a stream turns
    /// to interest retention (`checkStateForInterestStream`) and when a consumer's filter
    /// changes (`cleanupNoInterestMessages`); without it such messages stayed for good and
    /// a later consumer got messages already consumed.
    pub fn sweep_interest(&self) {
        self.sweep_interest_below(u64::MAX);
    }

    /// Interest retention, after a consumer was reset to start at `seq`: what lies below
    /// it counts as acknowledged by that consumer now, so messages every other consumer
    /// is done with too go, as nats-server's reset does (`checkStateForInterestStream`).
    /// At most a million sequences are looked at.
    pub fn sweep_interest_below(&self, seq: u64) {
        if self.config.read().retention != RetentionPolicy::Interest {
            return;
        }
        let st = self.store.fast_state();
        if st.msgs == 0 || st.first_seq >= seq {
            return;
        }
        let seqs: Vec<u64> = (st.first_seq..seq.min(st.last_seq.saturating_add(1)))
            .take(1_000_000)
            .collect();
        self.apply_retention(&seqs);
        self.wake_consumers();
    }

    /// A stream just turned to interest retention: drop what its consumers have already
    /// acknowledged, as nats-server does then (each consumer acks again what lies below
    /// its ack floor, `checkStateForInterestStream`). A message no consumer has taken
    /// stays; without any consumer (or link) nothing is wanted and everything goes.
    pub fn sweep_after_turning_to_interest(&self) {
        let st = self.store.fast_state();
        if st.msgs == 0 || st.first_seq > st.last_seq {
            return;
        }
        let consumers: Vec<Arc<Consumer>> = self.consumers.read().values().cloned().collect();
        if consumers.is_empty() {
            self.sweep_interest();
            return;
        }
        let floor = consumers
            .iter()
            .map(|c| c.machine.lock().ack_floor().stream)
            .max()
            .unwrap_or(0)
            .min(st.last_seq);
        let seqs: Vec<u64> = (st.first_seq..=floor)
            .take(1_000_000)
            .filter(|s| {
                self.store
                    .subject_for_seq(*s)
                    .is_ok_and(|subj| consumers.iter().any(|c| c.matches(&subj)))
            })
            .collect();
        self.apply_retention(&seqs);
        self.wake_consumers();
    }

    /// Remove a message retention no longer needs, counted as such.
    pub fn remove_retained(&self, seq: u64) {
        if let Ok(true) = self.store.remove_msg(seq) {
            self.retention_removals.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Retention removed `n` messages in one go (a compaction on recovery).
    pub fn count_retained(&self, n: u64) {
        self.retention_removals.fetch_add(n, Ordering::AcqRel);
    }

    /// Sequences gone from the stream for any reason but retention, since start (plus
    /// skipped ones, which count alike): it grows when a limit, an expiry, a delete, a
    /// purge or a rollup removed something, so a consumer compares it with the value at
    /// its last look to know whether its unacknowledged deliveries may have lost their
    /// messages (then it checks them: [`super::consumer::machine::Machine::drop_removed`]).
    /// A retention removal racing with the two reads can make it off by one for an
    /// instant either way, so consumers look for any change, not only growth (a
    /// needless check at worst). Returns the stream state read with it.
    pub fn removals_beyond_retention(&self) -> (i128, natrium_store::StreamState) {
        let retained = self.retention_removals.load(Ordering::Acquire);
        let st = self.store.fast_state();
        let gone = i128::from(st.last_seq) - i128::from(st.msgs) - i128::from(retained);
        (gone, st)
    }

    /// Wake the consumers after a removal that publishes nothing (an expiry, a delete, a
    /// purge), so they let go of deliveries whose messages are gone.
    pub fn wake_consumers(&self) {
        self.last_seq.send_modify(|_| {});
    }

    /// Under interest retention: whether any consumer wants messages on `subject`.
    fn has_interest(&self, subject: &str) -> bool {
        self.consumers.read().values().any(|c| c.matches(subject))
            || self.readers.read().iter().any(|l| l.matches(subject))
    }

    /// Tell the consumers everything below `first` is gone (after a purge).
    pub fn consumers_skip_to(&self, first: u64) {
        for c in self.consumers.read().values() {
            c.machine.lock().skip_to(first);
        }
    }

    /// Whether the stream has been closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Start the stream's task.
    pub fn spawn(self: &Arc<Self>, server: Arc<ServerShared>) {
        let Some(rx) = self.rx.lock().take() else {
            return;
        };
        let stream = self.clone();
        self.start_links(&server);
        tokio::spawn(async move { stream.run(rx, server).await });
    }

    /// The stream's task: drain the queue in batches, store, sync once, ack.
    async fn run(
        self: Arc<Self>,
        mut rx: mpsc::UnboundedReceiver<Inbound>,
        server: Arc<ServerShared>,
    ) {
        self.drop_torn_batch(&server);
        let mut state = TaskState::recover(&self);
        self.recover_schedules(&mut state);
        let mut batch: Vec<Inbound> = Vec::with_capacity(BATCH);
        // Fsync before ack: stored batches go to the group-commit task, so storing the next
        // batch overlaps the fsync of the previous ones. Otherwise nothing waits for the
        // disk and the acks go out inline.
        let commit = matches!(self.store.durability(), Durability::Always).then(|| {
            let (tx, rx) = mpsc::channel(COMMIT_DEPTH);
            let (synced_tx, synced_rx) = mpsc::unbounded_channel();
            let waiting = Arc::new(AtomicUsize::new(0));
            tokio::spawn(
                self.clone()
                    .commit(rx, synced_rx, waiting.clone(), server.clone()),
            );
            (tx, Syncer::new(self.store.clone(), synced_tx), waiting)
        });
        // An fsync may run on this task (see below) only where another worker thread goes
        // on serving meanwhile.
        let rt = tokio::runtime::Handle::current();
        let may_block = rt.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
            && rt.metrics().num_workers() >= 2;
        let mut inline: Vec<Answers> = Vec::with_capacity(1);
        loop {
            // Closed (deleted, or the server is stopping) and nothing left to answer:
            // the task ends, dropping its open batches and schedule table with it.
            if self.closed.load(Ordering::Acquire) && rx.is_empty() {
                self.clear_batches(&mut state, true);
                break;
            }
            let expiry = self.store.next_expiry();
            let batch_due = Self::next_batch_deadline(&state);
            let fire_at = match state.schedules {
                Some(_) => Self::schedule_deadline(&mut state, now_nanos()),
                None => None,
            };
            let fire = async {
                match fire_at {
                    Some(at) => {
                        let wait = u64::try_from(at.saturating_sub(now_nanos())).unwrap_or(0);
                        tokio::time::sleep(Duration::from_nanos(wait)).await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let batch_timeout = async {
                match batch_due {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending::<()>().await,
                }
            };
            let sleep = async {
                match expiry {
                    Some(at) => {
                        let now = now_nanos();
                        let wait = u64::try_from(at.saturating_sub(now)).unwrap_or(0);
                        tokio::time::sleep(Duration::from_nanos(wait)).await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                n = rx.recv_many(&mut batch, BATCH) => {
                    if n == 0 {
                        break;
                    }
                }
                _ = sleep => {
                    let now = now_nanos();
                    if let Ok(rep) = self.store.expire(now) {
                        self.subject_delete_markers(&rep.emptied_subjects, &mut state.marker_last);
                        if rep.removed > 0 {
                            self.wake_consumers();
                        }
                    }
                    continue;
                }
                _ = fire => {
                    self.fire_schedules(&mut state);
                    continue;
                }
                _ = batch_timeout => {
                    Self::expire_fast_batches(&mut state);
                    self.expire_batches(&mut state, &server);
                    continue;
                }
                // Look at the (new) deadline again; a stream that stopped allowing
                // atomic batches drops the open ones (nats-server).
                _ = self.limits_changed.notified() => {
                    if self.drop_batches.swap(false, Ordering::AcqRel) {
                        self.clear_batches(&mut state, false);
                    }
                    // Schedules turned on or off: (re)build or drop the table.
                    if self.config.read().allow_msg_schedules != state.schedules.is_some() {
                        self.recover_schedules(&mut state);
                    }
                    continue;
                }
            }
            if self.drop_batches.swap(false, Ordering::AcqRel) {
                self.clear_batches(&mut state, false);
            }
            let mut answers = self.store_batch(&mut state, &mut batch, &server);
            match &commit {
                Some((tx, syncer, waiting)) => {
                    if let Some(t) = answers.ticket {
                        // Quiet stream: no earlier batch awaits its acks and no publish is
                        // queued behind this one, so there is nothing to overlap the fsync
                        // with. Fsync right here and answer: that saves the hand-offs to
                        // the syncer thread and back (two thread wake-ups, which cost a
                        // lone synchronous publisher about as much as the fsync itself).
                        // It ties up this worker thread for one fsync, so only one stream
                        // in the server may do it at a time.
                        if may_block
                            && waiting.load(Ordering::Acquire) == 0
                            && rx.is_empty()
                            // Looked up here, not once at the start: a stream recovered
                            // at startup runs before the server has set `js`.
                            && let Some(js) = server.js.get()
                            && !js.inline_fsync.swap(true, Ordering::AcqRel)
                        {
                            let synced = self.store.wait_durable(t);
                            js.inline_fsync.store(false, Ordering::Release);
                            js.inline_fsyncs.fetch_add(1, Ordering::Relaxed);
                            answers.durable_error = synced.err().map(|e| store_error(&e));
                            inline.push(answers);
                            self.answer(&mut inline, &server);
                            continue;
                        }
                        syncer.request(t);
                    }
                    waiting.fetch_add(1, Ordering::AcqRel);
                    if tx.send(answers).await.is_err() {
                        break;
                    }
                }
                None => {
                    inline.push(answers);
                    self.answer(&mut inline, &server);
                }
            }
        }
    }

    /// `subject_delete_marker_ttl`: when expiry (max age or per-message TTL) takes the
    /// last message of a subject, leave a marker there, as nats-server does: an empty
    /// message with `Nats-Marker-Reason: MaxAge`, `Nats-TTL: <ttl>` and `Nats-Rollup: sub`,
    /// stored through the normal publish path (so consumers and KV watchers see the
    /// delete). A subject whose expiring last message was itself a marker (ours, or a KV
    /// purge marker, `KV-Operation: PURGE`) gets none, as in nats-server
    /// (`isSubjectDeleteMarker`); `marker_last` holds the subjects whose newest message is
    /// such a marker (see [`TaskState::marker_last`]). Each marker carries the expired
    /// message's sequence, its `Nats-Last-Sequence` when republished.
    fn subject_delete_markers(&self, emptied: &[(String, u64)], marker_last: &mut HashSet<String>) {
        let ttl = self.config.read().subject_delete_marker_ttl;
        if ttl <= 0 || emptied.is_empty() {
            for (subject, _) in emptied {
                marker_last.remove(subject);
            }
            return;
        }
        let secs = ttl / 1_000_000_000;
        let hdr = format!(
            "NATS/1.0\r\nNats-Marker-Reason: MaxAge\r\nNats-TTL: {}\r\nNats-Rollup: sub\r\n\r\n",
            super::api::time::go_duration_string(secs.max(1) * 1_000_000_000)
        );
        for (subject, seq) in emptied {
            if marker_last.remove(subject) {
                continue;
            }
            let _ = self.enqueue_with(
                PubMsg {
                    subject: subject.as_bytes(),
                    reply: None,
                    headers: Some(hdr.as_bytes()),
                    payload: b"",
                },
                *seq,
            );
        }
    }

    /// Check and append one batch (no fsync), holding the account's freeze gate, and
    /// collect what to answer once it is durable.
    fn store_batch(
        &self,
        state: &mut TaskState,
        batch: &mut Vec<Inbound>,
        server: &Arc<ServerShared>,
    ) -> Answers {
        let cfg = self.config.read().clone();
        let mut out = Answers {
            ticket: None,
            replies: Vec::new(),
            outcomes: Vec::with_capacity(batch.len()),
            count: batch.len() as u64,
            durable_error: None,
            sourced: Vec::new(),
        };
        let now = now_nanos();
        state.dedup.prune(now, cfg.duplicate_window);
        let mut queued = 0usize;
        // Account and server usage, checked per message against a once-per-batch snapshot.
        let js = server.js.get();
        if let Some(js) = js {
            js.live_work.fetch_add(1, Ordering::Relaxed);
        }
        let mut quota = js.and_then(|js| {
            super::limits::Quota::snapshot(js, &self.account.name, super::limits::Storage::of(&cfg))
        });
        // No account snapshot can freeze the account in the middle of a batch.
        let gate = self.gate.read();
        // Created at the first republished message only.
        let mut republish: Option<DeliveryCtx> = None;
        for m in batch.drain(..) {
            queued += m.size();
            if fast_commit::is_fast_batch_msg(&m) {
                self.fast_batch_msg(
                    &cfg,
                    state,
                    &m,
                    now,
                    &mut quota,
                    server,
                    &mut republish,
                    &mut out,
                );
                continue;
            }
            if atomic_commit::is_batch_msg(&m) {
                self.batch_msg(
                    &cfg,
                    state,
                    m,
                    now,
                    &mut quota,
                    server,
                    &mut republish,
                    &mut queued,
                    &mut out,
                );
                continue;
            }
            let result = match &m.sourced {
                // The link will read this one again (an earlier copy was refused).
                Some(by) if by.link.failed() => continue,
                Some(by) if by.mirror_ts.is_some() => {
                    self.store_mirrored(&cfg, &m, by, &mut quota, (server, &mut republish))
                }
                _ => self.store_one(&cfg, state, &m, now, &mut quota, (server, &mut republish)),
            };
            if let Some(by) = &m.sourced {
                match &result {
                    // Counted once durable (`answer`).
                    Ok(_) => out.sourced.push((by.link.clone(), by.origin_seq)),
                    Err(_) => by.link.record(by.origin_seq, false),
                }
            }
            if let Ok(Stored::New { ticket, .. }) = result {
                out.ticket = Some(ticket);
            }
            let Some(reply) = m.reply() else {
                continue;
            };
            out.replies.extend_from_slice(reply);
            let outcome = match result {
                Ok(Stored::New {
                    seq,
                    total: Some(total),
                    ..
                }) => Outcome::Counter(seq, total),
                Ok(Stored::New { seq, .. }) => Outcome::Stored(seq),
                Ok(Stored::Duplicate { seq }) => Outcome::Duplicate(seq),
                Ok(Stored::Skipped { seq }) => Outcome::Skipped(seq),
                Err(e) => Outcome::Failed(e),
            };
            out.outcomes.push((out.replies.len(), outcome));
        }
        drop(gate);
        if let Some(mut ctx) = republish {
            ctx.flush();
        }
        self.queued.fetch_sub(queued, Ordering::AcqRel);
        out
    }

    /// The answering task of a stream whose store fsyncs before acking: answers stored
    /// batches in order, each once the [`Syncer`] reports an fsync that covers it.
    async fn commit(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<Answers>,
        mut synced: mpsc::UnboundedReceiver<Ticket>,
        waiting: Arc<AtomicUsize>,
        server: Arc<ServerShared>,
    ) {
        let mut queue: VecDeque<Answers> = VecDeque::with_capacity(COMMIT_DEPTH);
        // Everything up to here has been through an fsync attempt.
        let mut covered = Ticket::default();
        let mut ready: Vec<Answers> = Vec::with_capacity(COMMIT_DEPTH);
        let mut open = true;
        loop {
            // Answer, in order, every batch the last fsync covered.
            while queue
                .front()
                .is_some_and(|b| b.ticket.is_none_or(|t| t <= covered))
            {
                let Some(mut b) = queue.pop_front() else {
                    break;
                };
                if let Some(t) = b.ticket {
                    // Returns at once: an fsync covering `t` has finished (it reports
                    // the failure if that fsync, or an earlier one, lost the write).
                    b.durable_error = self.store.wait_durable(t).err().map(|e| store_error(&e));
                }
                ready.push(b);
            }
            if !ready.is_empty() {
                let n = ready.len();
                self.answer(&mut ready, &server);
                waiting.fetch_sub(n, Ordering::AcqRel);
            }
            if !open && queue.is_empty() {
                break;
            }
            tokio::select! {
                b = rx.recv(), if open && queue.len() < COMMIT_DEPTH => match b {
                    Some(b) => queue.push_back(b),
                    None => open = false,
                },
                t = synced.recv() => match t {
                    Some(t) => covered = covered.max(t),
                    // The syncer is gone (cannot happen while the stream task lives).
                    None => break,
                },
            }
        }
    }

    /// Publish the PubAcks of stored (and, as the durability mode requires, durable)
    /// batches, in order, and let consumers and waiting PINGs know. A batch whose
    /// `durable_error` is set answers every message it stored with that error instead.
    fn answer(&self, batches: &mut Vec<Answers>, server: &Arc<ServerShared>) {
        // Links learn what they copied before `processed` tells them the batch is done.
        for b in batches.iter_mut() {
            let ok = b.durable_error.is_none();
            for (link, seq) in b.sourced.drain(..) {
                link.record(seq, ok);
            }
        }
        let _ = self.last_seq.send(self.store.fast_state().last_seq);
        let count: u64 = batches.iter().map(|b| b.count).sum();
        self.processed.send_modify(|p| *p += count);
        let no_ack = self.config.read().no_ack;
        // A `no_ack` stream sends only a fast batch's flow messages (`Outcome::Raw`).
        let sent = |o: &Outcome| !no_ack || matches!(o, Outcome::Raw(_));
        if batches
            .iter()
            .all(|b| b.outcomes.iter().all(|(_, o)| !sent(o)))
        {
            batches.clear();
            return;
        }
        let mut ctx = DeliveryCtx::new(server.clone(), rand::random());
        let mut wire: Vec<u8> = Vec::with_capacity(self.ack_prefix.len() + 24);
        for b in batches.drain(..) {
            let mut start = 0;
            for (end, outcome) in &b.outcomes {
                let reply = &b.replies[start..*end];
                start = *end;
                if !sent(outcome) {
                    continue;
                }
                wire.clear();
                match (outcome, &b.durable_error) {
                    (
                        Outcome::Stored(_) | Outcome::Counter(..) | Outcome::Batch { .. },
                        Some(e),
                    ) => wire.extend_from_slice(
                        &PubAckResponse::error(self.name.clone(), e.clone()).to_wire(),
                    ),
                    (Outcome::Staged, _) => {}
                    (Outcome::Raw(bytes), None) => wire.extend_from_slice(bytes),
                    (Outcome::Raw(_), Some(e)) => wire.extend_from_slice(
                        &PubAckResponse::error(self.name.clone(), e.clone()).to_wire(),
                    ),
                    (Outcome::Batch { seq, id, count }, _) => {
                        wire.extend_from_slice(&self.batch_ack(*seq, false, id.clone(), *count))
                    }
                    (Outcome::Stored(seq) | Outcome::Skipped(seq), _) => {
                        wire.extend_from_slice(&self.ack_prefix);
                        wire.extend_from_slice(itoa::Buffer::new().format(*seq).as_bytes());
                        wire.push(b'}');
                    }
                    (Outcome::Counter(seq, total), _) => {
                        let mut ack = self.ack(*seq, false);
                        ack.ack.value = total.clone();
                        wire.extend_from_slice(&ack.to_wire())
                    }
                    (Outcome::Duplicate(seq), _) => {
                        wire.extend_from_slice(&self.ack(*seq, true).to_wire())
                    }
                    (Outcome::Failed(e), _) => wire.extend_from_slice(
                        &PubAckResponse::error(self.name.clone(), e.clone()).to_wire(),
                    ),
                }
                super::api_server::publish(&mut ctx, &self.account, reply, &wire);
            }
        }
        ctx.flush();
    }

    /// The PubAck of a batch (atomic or fast): `"batch"` and `"count"` added.
    fn batch_ack(&self, seq: u64, duplicate: bool, id: String, count: u64) -> Vec<u8> {
        let mut ack = self.ack(seq, duplicate);
        ack.ack.batch = id;
        ack.ack.count = count;
        ack.to_wire()
    }

    fn ack(&self, seq: u64, duplicate: bool) -> PubAckResponse {
        let mut ack = PubAck::new(self.name.clone(), seq);
        ack.duplicate = duplicate;
        ack.domain = self.domain.clone();
        PubAckResponse { error: None, ack }
    }

    /// Where a message stored on `subject` is republished, if the stream republishes it:
    /// (config, destination subject, the subject's previous sequence). Looked up before
    /// storing. `expired_seq` stands in for the previous sequence of a delete marker (the
    /// subject holds nothing else by then), as nats-server republishes it.
    fn republish_target<'c>(
        &self,
        cfg: &'c StreamConfig,
        subject: &str,
        expired_seq: u64,
    ) -> Option<(&'c super::api::stream::RePublish, String, u64)> {
        let rp = cfg.republish.as_ref()?;
        // No destination: nothing is republished (nats-server accepts such a config).
        if rp.dest.is_empty() {
            return None;
        }
        let to = transform_subject(&rp.src, &rp.dest, subject)?;
        let last = self.last_written(subject).map_or(0, |msg| msg.seq);
        let last = if last == 0 { expired_seq } else { last };
        Some((rp, to, last))
    }

    /// Republish a stored message (`republish_target`), with its headers.
    fn republish(
        &self,
        (rp, to, last): (&super::api::stream::RePublish, String, u64),
        (subject, hdrs, payload): (&str, &[u8], &[u8]),
        (seq, ts): (u64, i64),
        server: &Arc<ServerShared>,
        ctx: &mut Option<DeliveryCtx>,
    ) {
        let ctx = ctx.get_or_insert_with(|| DeliveryCtx::new(server.clone(), rand::random()));
        let rp_hdrs = republish_headers(
            &self.name,
            subject,
            hdrs,
            (seq, ts, last),
            rp.headers_only.then_some(payload.len()),
        );
        ctx.publish(
            &self.account,
            Publisher::SERVER,
            PubMsg {
                subject: to.as_bytes(),
                reply: None,
                headers: Some(&rp_hdrs),
                payload: if rp.headers_only { b"" } else { payload },
            },
        );
    }

    /// Apply a stored message's rollup: everything before it on its subject (or in the
    /// stream) goes.
    fn roll_up(&self, rollup: Option<Rollup>, subject: &str, seq: u64) {
        match rollup {
            Some(Rollup::Subject) => {
                if let Ok(f) = SubjectFilter::new(subject) {
                    let _ = self.store.purge_ex(&f, seq, 0);
                }
            }
            Some(Rollup::All) => {
                let _ = self.store.purge_ex(&SubjectFilter::all(), seq, 0);
            }
            None => {}
        }
    }

    /// Store a mirror's copy at its origin sequence and timestamp, skipping the origin
    /// sequences before it that the mirror does not hold, as nats-server's mirrors do
    /// (so sequences line up). A copy at or below the mirror's last sequence is already
    /// there (the link re-read it) and is not stored again. Limits apply as for any
    /// message; nothing else is checked (the origin did).
    fn store_mirrored(
        &self,
        cfg: &StreamConfig,
        m: &Inbound,
        by: &SourcedBy,
        quota: &mut Option<super::limits::Quota>,
        (server, republish_ctx): (&Arc<ServerShared>, &mut Option<DeliveryCtx>),
    ) -> Result<Stored, ApiError> {
        if cfg.sealed {
            return Err(ApiError::stream_sealed());
        }
        let seq = by.origin_seq;
        let last = self.store.fast_state().last_seq;
        if seq <= last {
            return Ok(Stored::Duplicate { seq });
        }
        // The mirror's own subject transform applies, as to a publish (nats-server).
        let transformed = stored_subject(cfg, m.subject());
        let subject: &str = transformed.as_deref().unwrap_or(m.subject());
        let hdrs = m.headers().unwrap_or(&[]);
        let h = if hdrs.is_empty() {
            headers::PublishHeaders::default()
        } else {
            headers::PublishHeaders::parse(hdrs)
        };
        let ttl = if cfg.allow_msg_ttl {
            headers::PublishHeaders::set(h.ttl)
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| headers::parse_ttl(v).ok())
                .flatten()
        } else {
            None
        };
        // A rollup applies where the mirror allows rollups, so a KV mirror drops what
        // its origin's purges dropped.
        let rollup = headers::PublishHeaders::set(h.rollup)
            .filter(|_| cfg.allow_rollup_hdrs && !cfg.deny_purge)
            .and_then(|v| Rollup::parse(v).ok());
        let size = self.store.msg_size(subject, hdrs, m.payload());
        if let Some(q) = quota.as_mut() {
            q.admit(size).map_err(|e| e.to_api())?;
        }
        if seq > last + 1 {
            // Made durable with the batch's fsync, not one of its own.
            self.store
                .append_skip_msgs(last + 1, seq - last - 1)
                .map_err(|e| store_error(&e))?;
        }
        let republish = self.republish_target(cfg, subject, 0);
        let ts = by.mirror_ts.unwrap_or_else(now_nanos);
        let ticket = self
            .store
            .append_raw_msg(subject, hdrs, m.payload(), seq, ts, ttl, true)
            .map_err(|e| store_error(&e))?;
        if let Some(q) = quota.as_mut() {
            q.stored(size);
        }
        if let Some(target) = republish {
            self.republish(
                target,
                (subject, hdrs, m.payload()),
                (seq, ts),
                server,
                republish_ctx,
            );
        }
        self.roll_up(rollup, subject, seq);
        Ok(Stored::New {
            seq,
            ticket,
            total: None,
        })
    }

    /// Check and append one message. The checks run in nats-server 2.15.1's order, since
    /// a message failing several of them must get the same error: the seal, sizes, the
    /// counter increment, expectations (stream, TTL allowed, last subject sequence, last
    /// sequence) before de-duplication, then the expected last msg id, rollup, and the
    /// TTL value last. An empty header value counts as absent.
    fn store_one(
        &self,
        cfg: &StreamConfig,
        state: &mut TaskState,
        m: &Inbound,
        now: i64,
        quota: &mut Option<super::limits::Quota>,
        (server, republish_ctx): (&Arc<ServerShared>, &mut Option<DeliveryCtx>),
    ) -> Result<Stored, ApiError> {
        if cfg.sealed {
            return Err(ApiError::stream_sealed());
        }
        // `subject_transform` picks the stored subject before any check, as nats-server
        // (`processJetStreamMsg`).
        let transformed = stored_subject(cfg, m.subject());
        let subject: &str = transformed.as_deref().unwrap_or(m.subject());
        // A status on the first header line is not stored (nats-server strips it from
        // every inbound message first).
        let unstatused = headers::without_status(m.headers().unwrap_or(&[]));
        let hdrs: &[u8] = &unstatused;
        // Sizes right after the seal, before any header is looked at: nats-server 2.15.1
        // refuses an oversized message so even when it is also a duplicate or breaks an
        // expectation (a client must not be told "duplicate" for it).
        if cfg.max_msg_size > 0 && hdrs.len() + m.payload().len() > cfg.max_msg_size as usize {
            return Err(ApiError::stream_message_exceeds_maximum());
        }
        if hdrs.len() > MAX_HEADER_SIZE {
            return Err(ApiError::stream_header_exceeds_maximum());
        }
        // Every header the checks below read, in one pass over the block.
        let h = if hdrs.is_empty() {
            headers::PublishHeaders::default()
        } else {
            headers::PublishHeaders::parse(hdrs)
        };
        let set = headers::PublishHeaders::set;
        // Made by the stream or a link, not published by a client: stored as it is,
        // without the checks a client's publish gets (nats-server's `sourced`). (Batch
        // messages went to `atomic_commit` before getting here.)
        let copy = m.sourced.is_some() || m.scheduled;
        // `Nats-Incr`: checked before everything else, as nats-server (a missing one on
        // a counter stream only after the expectations, below). A copy of a counter's
        // message is stored as it is.
        let incr = if !cfg.allow_msg_counter && copy {
            None
        } else if copy {
            // A source's copy of another counter: only the header's form is checked.
            counter::copied_increment(hdrs)?
        } else {
            counter::increment(hdrs, m.payload(), cfg.allow_msg_counter)?
        };
        let mut msg_id: Option<&[u8]> = None;
        let mut rollup: Option<Rollup> = None;
        // `Ok(None)`: no TTL. A value that does not parse passes the "TTLs allowed"
        // check (nats-server reads it as no TTL there) and is refused after the others.
        let mut ttl: Result<Option<Ttl>, headers::InvalidTtl> = Ok(None);
        let mut sched = schedules::ScheduleCheck::default();
        if !hdrs.is_empty() {
            if let Some(expected) = set(h.expected_stream)
                && expected != self.name.as_bytes()
            {
                return Err(ApiError::stream_not_match());
            }
            if let Some(v) = set(h.ttl) {
                ttl = std::str::from_utf8(v)
                    .map_err(|_| headers::InvalidTtl)
                    .and_then(headers::parse_ttl);
            }
            if matches!(ttl, Ok(Some(_))) && !cfg.allow_msg_ttl {
                // A copy is stored verbatim, header included, but expires only where
                // TTLs are allowed (nats-server).
                if !copy {
                    return Err(ApiError::message_ttl_disabled());
                }
                ttl = Ok(None);
            }
            let subject_override = set(h.expected_last_subj_seq_subj);
            if let Some(v) = set(h.expected_last_subj_seq) {
                let expected = headers::go_parse_int64(v) as u64;
                let last = subject_override
                    .map_or(Some(subject), |s| std::str::from_utf8(s).ok())
                    .and_then(|s| self.last_written(s))
                    .map_or(0, |msg| msg.seq);
                if expected != last {
                    return Err(ApiError::stream_wrong_last_sequence(last));
                }
            } else if subject_override.is_some() {
                return Err(ApiError::stream_expected_last_seq_per_subject_invalid());
            }
            if let Some(v) = set(h.expected_last_seq) {
                let last = self.store.fast_state().last_seq;
                if headers::go_parse_int64(v) as u64 != last {
                    return Err(ApiError::stream_wrong_last_sequence(last));
                }
            }
            if !copy {
                sched = self.check_schedule(cfg, subject, &h, now)?;
            } else if set(h.schedule_next) == Some(super::schedule::NEXT_PURGE.as_bytes())
                && let Some(s) = set(h.scheduler)
            {
                // A one-off schedule fired (or a copy of such a message): purge it.
                sched.purge = Some(String::from_utf8_lossy(s).into_owned());
            }
            // Only a source's own copies may say where they came from.
            if !copy && set(h.stream_source).is_some() {
                return Err(ApiError::message_source_hdr_not_allowed());
            }
            msg_id = set(h.msg_id);
            if let Some(id) = msg_id
                && let Some((seq, _)) = state.dedup.ids.get(id)
            {
                return Ok(Stored::Duplicate { seq: *seq });
            }
            if let Some(v) = set(h.expected_last_msg_id)
                && v != state.last_msg_id.as_slice()
            {
                return Err(ApiError::stream_wrong_last_msg_id(String::from_utf8_lossy(
                    &state.last_msg_id,
                )));
            }
            if let Some(v) = set(h.rollup)
                // A copy's rollup applies only where rollups are allowed; elsewhere it is
                // stored as a plain message (nats-server does not refuse copies for it).
                && (!copy || (cfg.allow_rollup_hdrs && !cfg.deny_purge))
            {
                if !cfg.allow_rollup_hdrs || cfg.deny_purge {
                    return Err(ApiError::stream_rollup_failed("rollup not permitted"));
                }
                rollup = Some(Rollup::parse(v).map_err(|other| {
                    ApiError::stream_rollup_failed(format!(
                        "rollup value invalid: {}",
                        super::api::go_json::go_quote(&other)
                    ))
                })?);
            }
            // A schedule replaces the one before it on its subject.
            if sched.add_rollup {
                rollup = Some(Rollup::Subject);
            }
        }
        // Copies too: a counter stream sources only counters (nats-server).
        if cfg.allow_msg_counter && incr.is_none() {
            return Err(ApiError::message_incr_missing());
        }
        if cfg.retention == RetentionPolicy::Interest && !self.has_interest(subject) {
            // Nobody wants it: use up the sequence without storing, as nats-server.
            let seq = self.store.skip_msg(0).map_err(|e| store_error(&e))?;
            if let Some(id) = msg_id {
                state.dedup.insert(id, seq, now);
            }
            state.set_last_msg_id(msg_id);
            return Ok(Stored::Skipped { seq });
        }
        let mut ttl = ttl.map_err(|_| ApiError::message_ttl_invalid())?;
        // With subject delete markers, a message TTL shorter than the marker TTL is raised
        // to it (whole seconds) and the header rewritten, as nats-server does, so a marker
        // already on the subject cannot outlive the message; not with one message per
        // subject, where there is never an older marker beside it.
        let raised: Option<Vec<u8>>;
        let rolled: Vec<u8>;
        let mut hdrs = hdrs;
        if sched.add_rollup {
            rolled = headers::with_header(hdrs, headers::ROLLUP, "sub");
            hdrs = &rolled;
        }
        if let Some(min) = marker_ttl_floor(cfg, ttl) {
            ttl = Some(Ttl::After(Duration::from_secs(min)));
            raised = Some(headers::replace_ttl(hdrs, min));
            hdrs = raised.as_deref().unwrap_or(hdrs);
        }
        // `republish`: the subject's previous sequence goes into `Nats-Last-Sequence`, so
        // look it up before storing (only for streams that republish this subject).
        let republish = self.republish_target(cfg, subject, m.expired_seq);
        // A counter stores the subject's new total instead of the (empty) payload, and
        // the sources it counts in its headers.
        let counted = match &incr {
            Some(incr) => {
                let prev = self.last_written(subject);
                let prev = prev.as_ref().map(|p| counter::Previous {
                    payload: &p.payload,
                    hdrs: &p.hdrs,
                });
                Some(incr.update(prev, hdrs, m.payload(), subject)?)
            }
            None => None,
        };
        if let Some(h) = counted.as_ref().and_then(|u| u.hdrs.as_deref()) {
            hdrs = h;
        }
        let total = counted.as_ref().map(|u| u.total.clone());
        let payload: &[u8] = counted.as_ref().map_or(m.payload(), |u| &u.body[..]);
        let size = self.store.msg_size(subject, hdrs, payload);
        if let Some(q) = quota.as_mut() {
            q.admit(size).map_err(|e| e.to_api())?;
        }
        let ack = self
            .store
            .append_msg(subject, hdrs, payload, ttl)
            .map_err(|e| store_error(&e))?;
        if let Some(q) = quota.as_mut() {
            q.stored(size);
        }
        if let Some(id) = msg_id {
            state.dedup.insert(id, ack.seq, now);
        }
        state.set_last_msg_id(msg_id);
        if cfg.subject_delete_marker_ttl > 0 && h.is_delete_marker() {
            state.marker_last.insert(subject.to_string());
        } else if !state.marker_last.is_empty() {
            state.marker_last.remove(subject);
        }
        if let Some(target) = republish {
            self.republish(
                target,
                (subject, hdrs, payload),
                (ack.seq, ack.ts),
                server,
                republish_ctx,
            );
        }
        self.roll_up(rollup, subject, ack.seq);
        if state.schedules.is_some() {
            Self::note_stored(state, subject, hdrs, (ack.seq, ack.ts), now);
        }
        if let Some(scheduler) = sched.purge {
            self.purge_schedule(state, &scheduler);
        }
        Ok(Stored::New {
            seq: ack.seq,
            ticket: ack.ticket,
            total,
        })
    }
}

/// With `subject_delete_marker_ttl`, the whole seconds a shorter message TTL is raised to
/// (the header rewritten), as nats-server does, so a marker already on the subject
/// cannot outlive the message; never with one message per subject, where there is no
/// older marker beside it. `None`: the TTL stays.
fn marker_ttl_floor(cfg: &StreamConfig, ttl: Option<Ttl>) -> Option<u64> {
    let Some(Ttl::After(d)) = ttl else {
        return None;
    };
    if cfg.subject_delete_marker_ttl <= 0 || cfg.max_msgs_per_subject == 1 {
        return None;
    }
    let min = (cfg.subject_delete_marker_ttl / 1_000_000_000) as u64;
    (d.as_secs() < min).then_some(min)
}

/// Whether every mirror or source reading a stream that takes `subject` has copied
/// message `seq` (for its retention; see `Stream::readers`).
fn readers_done(readers: &[Arc<super::sourcing::Link>], subject: &str, seq: u64) -> bool {
    readers
        .iter()
        .filter(|l| l.matches(subject))
        .all(|l| l.copied(seq))
}

/// The subject a message on `subject` is stored under when the stream has a
/// `subject_transform` that maps it (`None`: stored as is; an empty destination maps
/// nothing, as in nats-server). No allocation for streams without one.
fn stored_subject(cfg: &StreamConfig, subject: &str) -> Option<String> {
    cfg.subject_transform
        .as_ref()
        .filter(|tr| !tr.dest.is_empty())
        .and_then(|tr| transform_subject(&tr.src, &tr.dest, subject))
}

/// A subject mapped by a `src` -> `dest` transform (an empty `src` matches every
/// subject); `None` when `subject` does not match `src`, which keeps its subject.
pub fn transform_subject(src: &str, dest: &str, subject: &str) -> Option<String> {
    let src = if src.is_empty() { ">" } else { src };
    if !subject_matches(src.as_bytes(), subject.as_bytes()) {
        return None;
    }
    String::from_utf8(map_subject_with_functions(src, dest, subject.as_bytes())?).ok()
}

/// The header block of a republished message, as nats-server writes it: the stored
/// headers, then `Nats-Stream`, `Nats-Subject`, `Nats-Sequence`, `Nats-Time-Stamp`,
/// `Nats-Last-Sequence` (the subject's previous sequence, 0 for none) and, headers only,
/// `Nats-Msg-Size` (the payload length).
fn republish_headers(
    stream: &str,
    subject: &str,
    stored: &[u8],
    (seq, ts, last): (u64, i64, u64),
    size: Option<usize>,
) -> Vec<u8> {
    let extra = [
        (LAST_SEQUENCE, last.to_string()),
        (
            "Nats-Msg-Size",
            size.map(|n| n.to_string()).unwrap_or_default(),
        ),
    ];
    let extra = &extra[..if size.is_some() { 2 } else { 1 }];
    super::direct::stored_msg_headers(stored, stream, subject, (seq, ts), extra)
}

/// How one publish is answered once its batch is durable.
enum Outcome {
    /// Stored at this sequence (durable only once the batch is).
    Stored(u64),
    /// A counter message stored at this sequence, with the subject's new total.
    Counter(u64, String),
    /// A duplicate of the message at this sequence.
    Duplicate(u64),
    /// Not stored (interest retention without interest); this sequence was used up.
    Skipped(u64),
    /// A batch message staged until its batch commits (answered with an empty message).
    Staged,
    /// A fast batch's flow message or PubAck, ready to send.
    Raw(Vec<u8>),
    /// An atomic batch committed: its last sequence, id and message count.
    Batch {
        /// Sequence of the batch's last message.
        seq: u64,
        /// The batch id.
        id: String,
        /// Messages stored.
        count: u64,
    },
    /// Refused.
    Failed(ApiError),
}

/// A stored batch on its way to its PubAcks. Reply subjects are kept back to back in
/// one buffer, so answering costs no allocation per message.
struct Answers {
    /// Ticket covering every append of the batch, if it appended anything.
    ticket: Option<Ticket>,
    /// The reply subjects, back to back.
    replies: Vec<u8>,
    /// (end of the reply in `replies`, outcome), in publish order.
    outcomes: Vec<(usize, Outcome)>,
    /// Messages in the batch, answered or not (for `processed`).
    count: u64,
    /// Making the batch durable failed: its stored messages are answered with this.
    durable_error: Option<ApiError>,
    /// Copies made for mirror or source links (link, origin sequence): reported to
    /// their links once the batch is durable, or as refused if that failed.
    sourced: Vec<(Arc<super::sourcing::Link>, u64)>,
}

/// Runs the fsyncs of a stream whose store fsyncs before acking, on the blocking pool
/// while there is work (no idle thread per stream). One run loops: fsync everything
/// stored so far (the store writes every pending append, then one `fdatasync`), report
/// the ticket it covered, and go again at once if more was stored meanwhile. So under
/// load the disk goes from one fsync straight to the next, with no task hand-off in
/// between, and each fsync takes in everything that arrived during the previous one.
///
/// The ticket reported is what the fsync really covered (the store's durable ticket),
/// not just the one asked for: appends that arrived while the fsync was being written
/// went with it, and their PubAcks need not wait for another round.
struct Syncer {
    /// The store.
    store: Arc<dyn StreamStore>,
    /// (newest ticket stored and not yet handed to a run, whether a run is active).
    state: Mutex<(Option<Ticket>, bool)>,
    /// Where each run reports the tickets it made durable (or tried to).
    synced: mpsc::UnboundedSender<Ticket>,
}

impl Syncer {
    fn new(store: Arc<dyn StreamStore>, synced: mpsc::UnboundedSender<Ticket>) -> Arc<Syncer> {
        Arc::new(Syncer {
            store,
            state: Mutex::new((None, false)),
            synced,
        })
    }

    /// Ask for everything up to `t` to be made durable (once per stored batch).
    fn request(self: &Arc<Self>, t: Ticket) {
        let mut st = self.state.lock();
        st.0 = Some(st.0.map_or(t, |w| w.max(t)));
        if !st.1 {
            st.1 = true;
            drop(st);
            let me = self.clone();
            tokio::task::spawn_blocking(move || me.run());
        }
    }

    /// One run: fsync until nothing more is asked for.
    fn run(&self) {
        // Everything up to here is known durable (and reported).
        let mut covered = Ticket::default();
        loop {
            let t = {
                let mut st = self.state.lock();
                match st.0.take() {
                    Some(t) if t > covered => t,
                    _ => {
                        st.1 = false;
                        return;
                    }
                }
            };
            // A failure poisons the store; the answering task reads it per batch.
            let _ = self.store.wait_durable(t);
            // The fsync also took whatever was appended before it started.
            covered = t.max(self.store.durable_ticket());
            if self.synced.send(covered).is_err() {
                // Nobody answers any more (the stream is gone).
                let mut st = self.state.lock();
                st.0 = None;
                st.1 = false;
                return;
            }
        }
    }
}

/// The start of a successful PubAck as nats-server writes it (`{"stream":<q>` then
/// `,"domain":<q>` with a domain, then `,"seq":`); the sequence and `}` follow.
fn ack_prefix(stream: &str, domain: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(40 + stream.len() + domain.len());
    out.extend_from_slice(b"{\"stream\":");
    out.extend_from_slice(super::api::go_json::go_quote(stream).as_bytes());
    if !domain.is_empty() {
        out.extend_from_slice(b",\"domain\":");
        out.extend_from_slice(super::api::go_json::go_quote(domain).as_bytes());
    }
    out.extend_from_slice(b",\"seq\":");
    out
}

/// What a `Nats-Rollup` header asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rollup {
    /// `sub`: the new message replaces every earlier one on its subject.
    Subject,
    /// `all`: the new message replaces the whole stream.
    All,
}

impl Rollup {
    /// A `Nats-Rollup` value (any case); the lower-cased value when it is neither.
    fn parse(v: &[u8]) -> Result<Rollup, String> {
        match String::from_utf8_lossy(v).to_lowercase().as_str() {
            "sub" => Ok(Rollup::Subject),
            "all" => Ok(Rollup::All),
            other => Err(other.to_string()),
        }
    }
}

/// The outcome of storing one message.
enum Stored {
    /// Appended at `seq`; durable once `ticket` is.
    New {
        /// Sequence.
        seq: u64,
        /// Durability ticket.
        ticket: Ticket,
        /// A counter stream's new total for the subject (the PubAck's `val`).
        total: Option<String>,
    },
    /// Not stored (interest retention without interest); `seq` was used up.
    Skipped {
        /// The sequence.
        seq: u64,
    },
    /// A duplicate of the message at `seq`.
    Duplicate {
        /// The original's sequence.
        seq: u64,
    },
}

/// State only the stream's task touches.
struct TaskState {
    /// De-duplication window.
    dedup: Dedup,
    /// `Nats-Msg-Id` of the last stored message (for `Nats-Expected-Last-Msg-Id`).
    last_msg_id: Vec<u8>,
    /// Under `subject_delete_marker_ttl`: subjects whose newest stored message is a delete
    /// marker. When expiry empties a subject it took that newest message, so membership
    /// says whether the expired message was a marker (which leaves no new marker).
    marker_last: HashSet<String>,
    /// Open atomic batches (`allow_atomic`), made at the first batch message.
    batches: Option<super::atomic_batch::Batches<Inbound>>,
    /// Open fast batches (`allow_batched`), made at the first fast-batch message.
    fast: Option<super::fast_batch::FastBatches>,
    /// Durability ticket of the newest fast-batch message stored (see `fast_commit`).
    fast_ticket: Option<Ticket>,
    /// Live message schedules (`allow_msg_schedules`; `None` when not allowed).
    schedules: Option<super::schedule::Schedules>,
    /// When the task wakes to fire schedules (Unix ns; see `schedule_deadline`).
    schedule_deadline: Option<i64>,
}

impl TaskState {
    /// Remember the last stored message's `Nats-Msg-Id` (reusing the buffer).
    fn set_last_msg_id(&mut self, id: Option<&[u8]>) {
        self.last_msg_id.clear();
        self.last_msg_id.extend_from_slice(id.unwrap_or(b""));
    }

    /// Rebuild the de-duplication window and last message id from the store, so they
    /// survive a restart.
    fn recover(stream: &Stream) -> TaskState {
        let cfg = stream.config.read().clone();
        let mut dedup = Dedup::default();
        let now = now_nanos();
        let state = stream.store.fast_state();
        let mut last_msg_id = Vec::new();
        if state.msgs > 0 {
            if cfg.duplicate_window > 0 {
                let from = stream.store.seq_from_time(now - cfg.duplicate_window);
                let all = SubjectFilter::all();
                let mut seq = from.max(state.first_seq);
                while let Ok(m) = stream.store.load_next_msg(&all, seq) {
                    if let Some(id) = headers::get(&m.hdrs, headers::MSG_ID)
                        && !id.is_empty()
                        && now - m.ts <= cfg.duplicate_window
                    {
                        dedup.insert(id, m.seq, m.ts);
                    }
                    seq = m.seq + 1;
                }
            }
            if let Ok(m) = stream.store.load_msg(state.last_seq) {
                last_msg_id = headers::get(&m.hdrs, headers::MSG_ID)
                    .unwrap_or(b"")
                    .to_vec();
            }
        }
        let marker_last = if cfg.subject_delete_marker_ttl > 0 {
            recover_marker_subjects(stream)
        } else {
            HashSet::new()
        };
        TaskState {
            dedup,
            last_msg_id,
            marker_last,
            batches: None,
            fast: None,
            fast_ticket: None,
            schedules: None,
            schedule_deadline: None,
        }
    }
}

/// Subjects (up to a bound) whose last stored message is a delete marker, read back after
/// a restart.
fn recover_marker_subjects(stream: &Stream) -> HashSet<String> {
    /// Subjects examined at most; beyond it an expiring old marker may leave a new one.
    const MAX_SUBJECTS: usize = 100_000;
    let mut out = HashSet::new();
    for seq in stream
        .store
        .last_seqs(&SubjectFilter::all())
        .into_iter()
        .take(MAX_SUBJECTS)
    {
        if let Ok(m) = stream.store.load_msg(seq)
            && is_delete_marker(&m.hdrs)
        {
            out.insert(m.subject);
        }
    }
    out
}

/// Whether a header block marks a subject delete marker, as nats-server's
/// `isSubjectDeleteMarker`: a `Nats-Marker-Reason`, or a KV purge (`KV-Operation: PURGE`).
fn is_delete_marker(hdrs: &[u8]) -> bool {
    !hdrs.is_empty() && headers::PublishHeaders::parse(hdrs).is_delete_marker()
}

/// Map a store failure to the PubAck error nats-server gives.
pub fn store_error(e: &StoreError) -> ApiError {
    match e {
        StoreError::MaxMsgs { .. } => ApiError::stream_store_failed("maximum messages exceeded"),
        StoreError::MaxBytes { .. } => ApiError::stream_store_failed("maximum bytes exceeded"),
        StoreError::MaxMsgsPerSubject { .. } => {
            ApiError::stream_store_failed("maximum messages per subject exceeded")
        }
        StoreError::MsgTooLarge { .. } => ApiError::stream_message_exceeds_maximum(),
        // The disk is full: nats-server's 10047, with the cause; the store resumes by itself.
        StoreError::NoSpace { cause } => ApiError::storage_resources_exceeded().with_detail(
            format!("disk full: {cause}; publishing resumes once space is freed"),
        ),
        other => ApiError::stream_store_failed(other),
    }
}

/// Wall clock in Unix nanoseconds.
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_prefix_matches_the_pub_ack_bytes() {
        for (stream, domain) in [("ORDERS", ""), ("O\"R>", "hub"), ("S", "a\u{e9}")] {
            for seq in [0u64, 7, u64::MAX] {
                let mut fast = ack_prefix(stream, domain);
                fast.extend_from_slice(itoa::Buffer::new().format(seq).as_bytes());
                fast.push(b'}');
                let mut ack = PubAck::new(stream, seq);
                ack.domain = domain.to_string();
                assert_eq!(fast, ack.to_wire(), "{stream} {domain} {seq}");
            }
        }
    }

    /// A quiet stream fsyncs on its own task, also when it was recovered at startup
    /// (its task then starts before the server knows its `JetStream`).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn quiet_stream_fsyncs_inline_also_after_a_restart() {
        use crate::logging::Logger;
        use crate::server::Server;
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = || {
            let mut o = crate::options::Options::for_test();
            o.jetstream.enabled = true;
            o.jetstream.store_dir = Some(dir.path().to_path_buf());
            o
        };
        let inline = |s: &Server| {
            s.shared()
                .js
                .get()
                .expect("jetstream")
                .inline_fsyncs
                .load(Ordering::Relaxed)
        };
        let mut server = Server::start(opts(), Arc::new(Logger::null()))
            .await
            .expect("start");
        let c = async_nats::connect(server.client_url())
            .await
            .expect("connect");
        let js = async_nats::jetstream::new(c);
        // Several streams: each recovered one's task may or may not start before `js` is
        // set, so more of them make a miss likelier to show.
        const STREAMS: usize = 6;
        for i in 0..STREAMS {
            js.create_stream(async_nats::jetstream::stream::Config {
                name: format!("Q{i}"),
                subjects: vec![format!("q{i}")],
                ..Default::default()
            })
            .await
            .expect("create");
        }
        for restart in [false, true] {
            if restart {
                server.shutdown().await;
                server = Server::start(opts(), Arc::new(Logger::null()))
                    .await
                    .expect("restart");
            }
            let c = async_nats::connect(server.client_url())
                .await
                .expect("connect");
            let js = async_nats::jetstream::new(c);
            for i in 0..STREAMS {
                let before = inline(&server);
                for _ in 0..3 {
                    js.publish(format!("q{i}"), "x".into())
                        .await
                        .expect("publish")
                        .await
                        .expect("ack");
                }
                assert!(
                    inline(&server) > before,
                    "lone sync publishes to Q{i} fsync inline (restarted: {restart})"
                );
            }
        }
        server.shutdown().await;
    }
}
