//! JetStream consumers: a stream's cursor that delivers its messages to clients and
//! tracks their acknowledgements.
//!
//! Why three layers: the rules (what to deliver, redelivery, pull requests) are a pure
//! state machine in [`machine`], tested without I/O; [`driver`] is the one task per
//! consumer that feeds it events and time and carries out its decisions (publishing,
//! persisting state); this module holds the consumer's identity, configuration, its
//! subscriptions (acks, flow control) and what the API reports about it.
//!
//! Invariants:
//! - Only the consumer's task changes the machine; API handlers only read it (info).
//!   Subscription handlers never lock it: they queue events, because they run on a
//!   publisher's reader task and the machine's lock is held while delivering.
//! - Lock order: `Stream::consumers` before `Consumer::machine`; no lock is held while
//!   waiting for a disk.
//! - State durability of durable consumers: every delivery and ack is written to the OS
//!   at the end of its cycle (so a killed process loses none), and fsynced before an
//!   ack-with-reply is answered and at least every [`driver::SYNC_EVERY`]. A power
//!   failure can therefore redeliver a message whose ack was not yet fsynced, never
//!   lose one. Ephemeral consumers of file streams keep their state in memory and write
//!   it as a whole at most every [`driver::SYNC_EVERY`] and when they stop
//!   (`natrium_store::consumer_snapshots`): a restart keeps it, a killed process loses
//!   at most that last interval (redeliveries again). `mem_storage` consumers and those
//!   of memory streams keep nothing.

pub mod driver;
pub mod machine;
pub mod source;
pub mod subs;

use super::api::consumer::{
    AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy, PriorityGroupState, PriorityPolicy,
    SequenceInfo,
};
use super::api::consumer_check::with_dynamic_consumer_metadata;
use super::api::stream::RetentionPolicy;
use super::api::time::Timestamp;
use super::stream::{Stream, now_nanos};
use crate::client::subscription::Subscription;
use machine::{Ack, Machine, Params, Priority};
use natrium_store::{
    AckPolicy as StoreAck, ConsumerPolicy, ConsumerStore, Durability, StoreError, StreamStore,
    SubjectFilter,
};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use tokio::sync::mpsc;

/// Most events queued for a consumer's task before new ones are dropped (an ack dropped
/// this way means a redelivery, never a loss).
const MAX_QUEUED_EVENTS: usize = 1 << 20;

/// What we persist about a consumer besides its state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsumerMeta {
    /// The configuration.
    pub config: ConsumerConfig,
    /// Creation time.
    pub created: Timestamp,
}

/// Something for the consumer's task to do.
#[derive(Debug)]
pub enum Event {
    /// An ack arrived.
    Ack {
        /// The numbers from the ack subject.
        tokens: subs::AckTokens,
        /// What kind.
        kind: machine::AckKind,
        /// Where to confirm it (AckSync), if anywhere.
        reply: Option<Box<[u8]>>,
        /// `+TERM` reason.
        reason: Option<String>,
    },
    /// A pull request arrived (MSG.NEXT or `+NXT`).
    Pull {
        /// Reply subject.
        reply: Box<[u8]>,
        /// The request.
        req: PullArgs,
    },
    /// A flow-control response arrived on this subject.
    FlowControl {
        /// The subject the response came on (the request's reply subject).
        subject: Box<[u8]>,
        /// `(stream, consumer)` sequences from its `Nats-Last-Stream` and
        /// `Nats-Last-Consumer` headers: what the receiver has taken, which acks
        /// everything up to there under the `flow_control` ack policy.
        last: Option<(u64, u64)>,
    },
    /// The configuration changed.
    Updated,
    /// Stop the task.
    Stop,
}

pub use machine::PullArgs;

/// One consumer.
pub struct Consumer {
    /// Its name.
    pub name: String,
    /// Its stream (the stream holds its consumers; [`Consumer::stop`] breaks the cycle).
    pub stream: Arc<Stream>,
    /// Current configuration.
    config: RwLock<ConsumerConfig>,
    /// Creation time.
    pub created: Timestamp,
    /// Durable state.
    pub store: Arc<dyn ConsumerStore>,
    /// Whether state is fsynced (file stream under `Durability::Always`).
    sync_state: bool,
    /// Whether state is written lazily (an ephemeral's file state: at most once per
    /// second and when it stops, so it survives a restart, not necessarily a crash).
    pub(crate) lazy_state: bool,
    /// The rules and the state they act on.
    pub machine: Mutex<Machine>,
    /// The subject filter, compiled.
    filter: RwLock<SubjectFilter>,
    /// Events for the task.
    events: mpsc::UnboundedSender<Event>,
    /// The receiving end, until the task takes it.
    rx: Mutex<Option<mpsc::UnboundedReceiver<Event>>>,
    /// Events queued and not yet taken.
    queued: AtomicUsize,
    /// Ack and flow-control subscriptions.
    subs: Mutex<Vec<Arc<Subscription>>>,
    /// Set once deleted or stopped.
    closed: AtomicBool,
    /// Time of the last delivery (ns, 0 never).
    pub last_delivered: AtomicI64,
    /// Time of the last ack (ns, 0 never).
    pub last_ack: AtomicI64,
    /// Time of the last sign of life (pull request, ack, push interest), for
    /// `inactive_threshold`.
    pub last_activity: AtomicI64,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("stream", &self.stream.name)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The machine's rules from a config, for consumer `name` of `stream`.
pub fn params(cfg: &ConsumerConfig, stream: &str, name: &str) -> Params {
    Params {
        ack: match cfg.ack_policy {
            AckPolicy::None => Ack::None,
            AckPolicy::Explicit => Ack::Explicit,
            // Acked up to a sequence by flow-control responses (nats-server: "functions
            // like AckAll").
            AckPolicy::All | AckPolicy::FlowControl => Ack::All,
        },
        ack_wait: cfg.ack_wait,
        backoff: cfg.backoff.clone(),
        max_deliver: cfg.max_deliver,
        max_ack_pending: cfg.max_ack_pending,
        max_waiting: cfg.max_waiting,
        max_batch: cfg.max_batch,
        max_expires: cfg.max_expires,
        max_bytes: cfg.max_bytes,
        ack_prefix_len: ("$JS.ACK.".len() + stream.len() + 1 + name.len() + 1) as u64,
        priority: match cfg.priority_policy {
            PriorityPolicy::None => Priority::None,
            PriorityPolicy::Overflow => Priority::Overflow,
            PriorityPolicy::PinnedClient => Priority::Pinned {
                ttl: cfg.priority_timeout,
            },
            PriorityPolicy::Prioritized => Priority::Prioritized,
        },
        groups: cfg.priority_groups.clone(),
        // 22 random base-62 characters, the shape of nats-server's NUIDs.
        new_pin_id: crate::system::event_id,
    }
}

/// The store's view of the rules.
fn store_policy(cfg: &ConsumerConfig) -> ConsumerPolicy {
    ConsumerPolicy {
        ack: match cfg.ack_policy {
            AckPolicy::None => StoreAck::None,
            AckPolicy::All | AckPolicy::FlowControl => StoreAck::All,
            AckPolicy::Explicit => StoreAck::Explicit,
        },
        max_deliver: (cfg.max_deliver > 0).then_some(cfg.max_deliver as u64),
    }
}

/// The compiled filter of a config (all subjects when unfiltered).
pub fn compile_filter(cfg: &ConsumerConfig) -> Result<SubjectFilter, StoreError> {
    let filters = super::api::consumer_check::subject_filters(cfg);
    if filters.is_empty() {
        Ok(SubjectFilter::all())
    } else {
        SubjectFilter::multi(filters.iter().map(String::as_str))
    }
}

/// Work-queue retention, on recovery: a message this consumer's persisted state counts
/// as acknowledged but which is still stored (the process died between saving the ack
/// and removing the message) is removed now, as nats-server does when it recovers a
/// consumer. Only messages the consumer's filter takes are looked at (work-queue filters
/// never overlap), and only up to its last delivered sequence.
fn remove_acked_work(stream: &Stream, m: &Machine, filter: &SubjectFilter) {
    let last = m.delivered().stream;
    let mut seq = stream.store.fast_state().first_seq.max(1);
    while seq <= last {
        let Ok(msg) = stream.store.load_next_msg(filter, seq) else {
            break;
        };
        if msg.seq > last {
            break;
        }
        if m.is_acked(msg.seq) {
            stream.remove_retained(msg.seq);
        }
        seq = msg.seq + 1;
    }
}

/// Interest retention, on recovery of the last of the stream's durable consumers:
/// messages at or below every consumer's ack floor were acknowledged by all that wanted
/// them; any still stored (the process died between saving the acks and removing the
/// messages) go now, as nats-server does when it recovers an interest stream. Does
/// nothing while a consumer on disk is not loaded yet (or could not be).
fn remove_acked_by_all(stream: &Stream, name: &str, m: &Machine) {
    if stream.is_memory() {
        return;
    }
    let Ok(names) = stream.store.consumer_names() else {
        return;
    };
    let others: Vec<Arc<Consumer>> = {
        let loaded = stream.consumers.read();
        if names.iter().any(|n| n != name && !loaded.contains_key(n)) {
            return;
        }
        loaded.values().cloned().collect()
    };
    let mut floor = m.ack_floor().stream;
    for c in &others {
        floor = floor.min(c.machine.lock().ack_floor().stream);
    }
    let st = stream.store.fast_state();
    let floor = floor.min(st.last_seq);
    if st.msgs > 0
        && floor >= st.first_seq
        && let Ok(n) = stream.store.compact(floor + 1)
    {
        stream.count_retained(n);
    }
}

/// Whether a push consumer has interest on its deliver subject, as nats-server counts
/// it: without a `deliver_group`, a plain subscriber; with one, a queue subscriber of
/// that group. Others (a queue subscriber for an ungrouped consumer, a plain one for a
/// grouped consumer) do not make it deliver.
pub fn push_interest(
    sublist: &crate::sublist::Sublist<crate::client::subscription::Subscription>,
    deliver: &[u8],
    group: &[u8],
) -> bool {
    if group.is_empty() {
        // The common case: no queue groups to look at. A client's subscription is
        // interest; an import's only while its importer has a subscriber there.
        let r = sublist.match_subject(deliver);
        return r.psubs.iter().any(|s| match &s.target {
            crate::client::subscription::SubTarget::Client(_) => true,
            crate::client::subscription::SubTarget::Internal(h) => h.has_interest(deliver),
        });
    }
    let r = sublist.match_subject(deliver);
    r.qsubs
        .iter()
        .any(|members| members.first().and_then(|m| m.queue.as_deref()) == Some(group))
}

/// Where a new consumer starts (nats-server `selectStartingSeqNo`): the machine, and the
/// stream sequence to record as the store's starting point.
fn starting_machine(
    cfg: &ConsumerConfig,
    p: Params,
    store: &dyn StreamStore,
    filter: &SubjectFilter,
) -> Machine {
    let st = store.fast_state();
    let filtered = !filter.is_all();
    let mut sseq = if cfg.opt_start_seq > 0 {
        cfg.opt_start_seq
    } else {
        match cfg.deliver_policy {
            DeliverPolicy::All => st.first_seq,
            DeliverPolicy::Last => {
                if filtered {
                    store.load_last_msg(filter).map_or(0, |m| m.seq)
                } else {
                    st.last_seq
                }
            }
            DeliverPolicy::LastPerSubject => {
                let seqs = store.last_seqs(filter);
                if seqs.is_empty() {
                    return Machine::new(p, st.last_seq + 1);
                }
                let next = st.last_seq + 1;
                return Machine::with_initial(p, seqs, next);
            }
            DeliverPolicy::ByStartTime => {
                let ns = cfg.opt_start_time.map_or(0, |t| t.unix_nanos_saturating());
                store.seq_from_time(ns)
            }
            DeliverPolicy::New | DeliverPolicy::ByStartSequence => st.last_seq + 1,
        }
    };
    if st.first_seq == 0 && cfg.opt_start_seq == 0 {
        sseq = 1;
    } else if sseq > st.last_seq && cfg.opt_start_seq == 0 {
        sseq = st.last_seq + 1;
    } else if sseq < st.first_seq {
        sseq = st.first_seq;
    }
    Machine::new(p, sseq)
}

impl Consumer {
    /// A new consumer (state starts per its deliver policy), or one recovered with the
    /// state in `store`. Call [`Consumer::start`] to make it live.
    pub fn open(
        stream: Arc<Stream>,
        config: ConsumerConfig,
        created: Timestamp,
        store: Arc<dyn ConsumerStore>,
        recovered: bool,
        name: String,
    ) -> Result<Arc<Consumer>, StoreError> {
        let filter = compile_filter(&config)?;
        let machine = if recovered && store.has_state() {
            let mut m = Machine::recover(
                params(&config, &stream.name, &name),
                &store.state(),
                now_nanos(),
            );
            let first = stream.store.fast_state().first_seq;
            if first > m.next_sseq() {
                m.skip_to(first);
            }
            match stream.config().retention {
                RetentionPolicy::WorkQueue => remove_acked_work(&stream, &m, &filter),
                RetentionPolicy::Interest => remove_acked_by_all(&stream, &name, &m),
                RetentionPolicy::Limits => {}
            }
            m
        } else {
            let p = params(&config, &stream.name, &name);
            let m = starting_machine(&config, p, stream.store.as_ref(), &filter);
            store.set_starting(m.delivered().stream)?;
            m
        };
        // Durables fsync their state before an ack is confirmed (under `Always`).
        // Ephemerals' state is snapshotted into their files at most once a second and
        // when they stop, never fsynced per ack: a crash loses at most the last second
        // of it (redeliveries, not messages), and an ephemeral's acks are not worth an
        // fsync each.
        let in_file = store.storage_type() == natrium_store::StorageType::File;
        let sync_state = matches!(stream.store.durability(), Durability::Always)
            && in_file
            && !config.durable_name.is_empty();
        let lazy_state = in_file && config.durable_name.is_empty();
        store.set_deferred(true);
        let (tx, rx) = mpsc::unbounded_channel();
        let now = now_nanos();
        Ok(Arc::new(Consumer {
            name,
            stream,
            config: RwLock::new(config),
            created,
            store,
            sync_state,
            lazy_state,
            machine: Mutex::new(machine),
            filter: RwLock::new(filter),
            events: tx,
            rx: Mutex::new(Some(rx)),
            queued: AtomicUsize::new(0),
            subs: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            last_delivered: AtomicI64::new(0),
            last_ack: AtomicI64::new(0),
            last_activity: AtomicI64::new(now),
        }))
    }

    /// A store-side policy for opening the state store of `cfg`.
    pub fn store_policy(cfg: &ConsumerConfig) -> ConsumerPolicy {
        store_policy(cfg)
    }

    /// The configuration.
    pub fn config(&self) -> ConsumerConfig {
        self.config.read().clone()
    }

    /// A `direct` consumer (nats-server's internal kind): not listed, counted or limited
    /// as the stream's public consumers are. Read without copying the config.
    pub fn is_direct(&self) -> bool {
        self.config.read().direct
    }

    /// Whether the consumer's filter takes messages on `subject`.
    pub fn matches(&self, subject: &str) -> bool {
        self.filter.read().matches(subject)
    }

    /// How many stored messages from stream sequence `start` on its filter takes (a
    /// mirror or source copying through this consumer reports that as its lag).
    pub fn stored_from(&self, start: u64) -> u64 {
        let filter = self.filter.read();
        self.stream.store.num_pending(start, &filter, false)
    }

    /// Whether deliveries go to a deliver subject.
    pub fn is_push(&self) -> bool {
        !self.config.read().deliver_subject.is_empty()
    }

    /// Replace the configuration (already validated as an allowed update).
    pub fn update_config(&self, cfg: ConsumerConfig) -> Result<(), StoreError> {
        let filter = compile_filter(&cfg)?;
        self.machine
            .lock()
            .set_params(params(&cfg, &self.stream.name, &self.name));
        *self.filter.write() = filter;
        *self.config.write() = cfg;
        self.send(Event::Updated);
        Ok(())
    }

    /// Queue an event for the task. Returns false if dropped.
    pub fn send(&self, ev: Event) -> bool {
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        if self.queued.fetch_add(1, Ordering::AcqRel) >= MAX_QUEUED_EVENTS {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        if self.events.send(ev).is_err() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Make the task look at the state again (after an API change).
    pub fn wake(&self) {
        self.send(Event::Updated);
    }

    /// `CONSUMER.RESET`: start over at stream sequence `seq` (`None`: right after the
    /// ack floor, so every delivery not acknowledged goes out again). Returns the
    /// sequence it starts at.
    ///
    /// As nats-server: a chosen sequence may not go below where the consumer was
    /// configured to start (`by_start_sequence`, `by_start_time`), and only those
    /// policies and `all` take one; a sequence below the stream's first is kept as
    /// given (the ack floor lands below the first message, and delivery skips ahead).
    pub fn reset_to(&self, seq: Option<u64>) -> Result<u64, ResetRefused> {
        if let Some(seq) = seq {
            // Read under the config lock; the store is asked after it is let go.
            let (policy, start_seq, start_time) = {
                let cfg = self.config.read();
                (cfg.deliver_policy, cfg.opt_start_seq, cfg.opt_start_time)
            };
            match policy {
                DeliverPolicy::All => {}
                DeliverPolicy::ByStartSequence if seq < start_seq => {
                    return Err(ResetRefused::BelowStartSeq);
                }
                DeliverPolicy::ByStartSequence => {}
                DeliverPolicy::ByStartTime => {
                    let ns = start_time.map_or(0, |t| t.unix_nanos_saturating());
                    if seq < self.stream.store.seq_from_time(ns) {
                        return Err(ResetRefused::BelowStartTime);
                    }
                }
                _ => return Err(ResetRefused::NotAllowed),
            }
        }
        let seq = {
            let mut m = self.machine.lock();
            let seq = seq.unwrap_or_else(|| m.ack_floor().stream + 1).max(1);
            m.restart_at(seq);
            seq
        };
        self.store
            .reset(seq - 1)
            .map_err(|e| ResetRefused::Store(e.to_string()))?;
        self.stream.sweep_interest_below(seq);
        self.wake();
        Ok(seq)
    }

    /// Whether the consumer was deleted or stopped.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Stop delivering: drop subscriptions, end the task, flush the state store.
    pub fn stop(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        for sub in self.subs.lock().drain(..) {
            crate::client::deliver::remove_sub(&self.stream.account, &sub);
        }
        let _ = self.events.send(Event::Stop);
    }

    /// Whether a push consumer's deliver subject has a subscriber that counts
    /// ([`push_interest`]).
    pub fn push_bound(&self) -> bool {
        let cfg = self.config.read();
        !cfg.deliver_subject.is_empty()
            && push_interest(
                &self.stream.account.sublist,
                cfg.deliver_subject.as_bytes(),
                cfg.deliver_group.as_bytes(),
            )
    }

    /// The consumer's info, as `CONSUMER.INFO` reports it.
    pub fn info(&self) -> ConsumerInfo {
        let cfg = self.config();
        let ts = |ns: i64| (ns > 0).then(|| Timestamp::from_store_nanos(ns));
        let mut m = self.machine.lock();
        // Requests whose requester went away (unsubscribed, disconnected) do not count,
        // as nats-server drops them when it reports.
        if m.num_waiting() > 0 {
            m.drop_waiting(|r| self.stream.account.sublist.has_interest(r));
        }
        let filter = self.filter.read();
        let src = source::StoreSource::new(self.stream.store.as_ref(), &filter);
        let delivered = m.delivered();
        let floor = m.ack_floor();
        let paused_until = cfg
            .pause_until
            .filter(|t| !t.is_zero())
            .map(|t| t.unix_nanos_saturating())
            .unwrap_or(0);
        let now = now_nanos();
        ConsumerInfo {
            stream_name: self.stream.name.clone(),
            name: self.name.clone(),
            created: self.created,
            config: Some(with_dynamic_consumer_metadata(&cfg)),
            delivered: SequenceInfo {
                consumer_seq: delivered.consumer,
                stream_seq: delivered.stream,
                last_active: ts(self.last_delivered.load(Ordering::Relaxed)),
            },
            ack_floor: SequenceInfo {
                consumer_seq: floor.consumer,
                stream_seq: floor.stream,
                last_active: ts(self.last_ack.load(Ordering::Relaxed)),
            },
            num_ack_pending: m.num_ack_pending() as i64,
            num_redelivered: m.num_redelivered() as i64,
            num_waiting: m.num_waiting() as i64,
            num_pending: m.num_pending(&src),
            cluster: None,
            push_bound: {
                drop(m);
                self.push_bound()
            },
            paused: paused_until > now,
            pause_remaining: (paused_until - now).max(0),
            ts: Timestamp::now(),
            // nats-server reports the first group only (it pins one group).
            priority_groups: cfg
                .priority_groups
                .first()
                .map(|g| {
                    let pin = self.machine.lock().pin().cloned();
                    vec![PriorityGroupState {
                        group: g.clone(),
                        pinned_client_id: pin
                            .as_ref()
                            .map(|p| p.id.to_string())
                            .unwrap_or_default(),
                        pinned_ts: pin.map_or_else(Timestamp::default, |p| {
                            Timestamp::from_store_nanos(p.since)
                        }),
                    }]
                })
                .unwrap_or_default(),
        }
    }

    /// Persist the config in the file stream's consumer store (a `mem_storage`
    /// consumer's store keeps it in memory).
    /// A memory stream's consumers are not persisted: like the stream, they are gone
    /// after a restart.
    pub fn persist_meta(&self) -> Result<(), super::engine::EngineError> {
        if self.stream.is_memory() {
            return Ok(());
        }
        let meta = ConsumerMeta {
            config: self.config(),
            created: self.created,
        };
        let bytes = serde_json::to_vec(&meta).map_err(|e| super::engine::EngineError::Meta {
            path: Default::default(),
            detail: e.to_string(),
        })?;
        self.store.write_config(&bytes)?;
        Ok(())
    }

    /// Remove the consumer's persisted state and config.
    pub fn delete_state(&self) {
        let _ = self.store.delete();
        let _ = self.stream.store.remove_consumer(&self.name);
    }
}

/// Why a `CONSUMER.RESET` was refused; the texts are nats-server's (after its
/// "invalid reset: ", error 10204).
#[derive(Debug, thiserror::Error)]
pub enum ResetRefused {
    /// The sequence is below the configured `opt_start_seq`.
    #[error("below start seq")]
    BelowStartSeq,
    /// The sequence is below the first message at or after `opt_start_time`.
    #[error("below start time")]
    BelowStartTime,
    /// The deliver policy (`last`, `new`, `last_per_subject`) takes no sequence.
    #[error("not allowed")]
    NotAllowed,
    /// The consumer's state could not be written.
    #[error("{0}")]
    Store(String),
}
