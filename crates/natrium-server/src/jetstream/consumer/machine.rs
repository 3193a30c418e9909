//! The consumer as a pure state machine: what to deliver next, what is pending, what to
//! redeliver, which pull requests are waiting and when they expire.
//!
//! Why pure: a consumer's rules (ack policies, ack wait and backoff, max deliver, max ack
//! pending, pull batches and byte limits, expiries, heartbeats) are where subtle bugs lose
//! or duplicate messages. Here they take plain inputs — an ack, a pull request, "the time
//! is now T" — and return plain outputs, so unit tests drive them with a fake clock and
//! an in-memory message source, without sockets, tasks or disks. The driver (`driver.rs`)
//! feeds events in and carries out what comes out.
//!
//! Priority groups (ADR-42) are decision logic too, so they live here: which waiting
//! request a message goes to (`pinned_client` serves only the holder of the current pin,
//! `overflow` holds requests back below their backlog thresholds, `prioritized` keeps the
//! queue ordered by priority), when a pin is assigned or lapses, and the 423 statuses. The
//! driver only adds the `Nats-Pin-Id` header and publishes the pin advisories.
//!
//! Cost: every operation is O(log pending) or O(pending), never O(stream length): new
//! messages are found by asking the source for the next match after a cursor, and
//! redeliveries are kept in ordered sets.

use natrium_store::{ConsumerState, Pending, SequencePair};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// How acks work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// Delivered means done.
    None,
    /// An ack covers everything up to it.
    All,
    /// Each message is acked on its own.
    Explicit,
}

/// The rules a consumer runs with (from its config).
#[derive(Debug, Clone)]
pub struct Params {
    /// Ack policy.
    pub ack: Ack,
    /// Ack wait in ns.
    pub ack_wait: i64,
    /// Redelivery delays in ns by delivery count (overrides `ack_wait`).
    pub backoff: Vec<i64>,
    /// Most deliveries of one message (`-1`/`0` unlimited).
    pub max_deliver: i64,
    /// Most unacknowledged messages (`-1`/`0` unlimited).
    pub max_ack_pending: i64,
    /// Pull: most waiting requests.
    pub max_waiting: i64,
    /// Pull: largest batch per request (0 unlimited).
    pub max_batch: i64,
    /// Pull: longest expiry per request in ns (0 unlimited).
    pub max_expires: i64,
    /// Pull: largest max_bytes per request (0 unlimited).
    pub max_bytes: i64,
    /// Length of `$JS.ACK.<stream>.<consumer>.`, for what a delivery counts against a
    /// request's `max_bytes` (nats-server counts the whole ack reply).
    pub ack_prefix_len: u64,
    /// Priority policy (ADR-42) and its groups.
    pub priority: Priority,
    /// Priority group names (nats-server uses the first for pinning).
    pub groups: Vec<String>,
    /// Makes a new pin id (random in the server, deterministic in tests).
    pub new_pin_id: fn() -> String,
}

/// A consumer's priority policy (`priority_policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Requests are served in turn.
    None,
    /// Requests with `min_pending`/`min_ack_pending` are served only above that backlog.
    Overflow,
    /// One client (the holder of the pin id) gets the messages; the pin lapses after
    /// `ttl` ns without a request carrying it.
    Pinned {
        /// `priority_timeout` in ns.
        ttl: i64,
    },
    /// Requests with a lower `priority` number are served first.
    Prioritized,
}

/// The priority-group part of a JSON pull request (nats-server `PriorityGroup`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullGroup {
    /// Group name.
    pub group: String,
    /// Overflow: serve only with at least this many messages pending (0 = no gate).
    pub min_pending: i64,
    /// Overflow: serve only with at least this many acks pending (0 = no gate).
    pub min_ack_pending: i64,
    /// Pinned: the pin id the client holds (empty = none).
    pub id: String,
    /// Prioritized: 0 (first) to 9.
    pub priority: i64,
}

/// A parsed pull request.
#[derive(Debug, Clone, Default)]
pub struct PullArgs {
    /// Messages wanted.
    pub batch: i64,
    /// Byte budget (0 none).
    pub max_bytes: i64,
    /// Expiry in ns (0 none).
    pub expires: i64,
    /// Answer at once when empty.
    pub no_wait: bool,
    /// Heartbeat interval in ns (0 none).
    pub heartbeat: i64,
    /// Priority group fields; `None` for a request that is not JSON (as nats-server, such
    /// a request skips the group checks).
    pub group: Option<PullGroup>,
}

/// The current pin of a `pinned_client` consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The pin id (sent as `Nats-Pin-Id`; shared with every delivery that names it).
    pub id: std::sync::Arc<str>,
    /// When it was assigned (ns).
    pub since: i64,
    /// When it lapses unless renewed (ns).
    pub expires_at: i64,
}

/// A pin change, for the pinned/unpinned advisories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinEvent {
    /// A new pin id was assigned in `group`.
    Pinned {
        /// Group.
        group: String,
        /// The new id.
        id: String,
    },
    /// The pin of `group` ended (`timeout` or `admin`).
    Unpinned {
        /// Group.
        group: String,
        /// Why.
        reason: &'static str,
    },
}

/// What a message source (the stream's store) can tell the machine.
pub trait Source {
    /// The first message at or after `seq` that matches the consumer's filter:
    /// (sequence, size in bytes for `max_bytes`).
    fn next_matching(&self, seq: u64) -> Option<(u64, u64)>;
    /// Whether a message still exists (it may have been deleted or expired).
    fn exists(&self, seq: u64) -> bool;
    /// Size of a stored message, for `max_bytes`.
    fn size(&self, seq: u64) -> Option<u64>;
    /// Matching messages at or after `seq`.
    fn num_pending(&self, seq: u64) -> u64;
    /// The stream's last sequence (read before a scan: a scan that then finds nothing
    /// has passed everything up to it).
    fn last_seq(&self) -> u64;
    /// Decimal digits of a stored message's timestamp (part of its ack reply).
    fn ts_digits(&self, seq: u64) -> u64;
}

/// A waiting pull request.
#[derive(Debug, Clone)]
pub struct PullRequest {
    /// Where messages and statuses go.
    pub reply: Box<[u8]>,
    /// Messages still wanted.
    pub batch: i64,
    /// Bytes still allowed (0 = no limit).
    pub max_bytes: i64,
    /// Whether `max_bytes` was given.
    pub bytes_limited: bool,
    /// Expiry (ns since epoch); `None` waits forever.
    pub expires_at: Option<i64>,
    /// Answer at once when nothing is available.
    pub no_wait: bool,
    /// Heartbeat interval in ns.
    pub heartbeat: Option<i64>,
    /// When the next heartbeat is due.
    pub next_heartbeat: i64,
    /// Whether anything was delivered to this request.
    pub delivered_any: bool,
    /// Priority group fields (JSON requests).
    pub group: Option<PullGroup>,
}

impl PullRequest {
    /// Place in a `prioritized` queue (requests without a group go last, as nats-server).
    fn rank(&self) -> i64 {
        self.group
            .as_ref()
            .map_or(i64::from(i32::MAX), |g| g.priority)
    }

    /// The pin id the request carries.
    fn pin_id(&self) -> &str {
        self.group.as_ref().map_or("", |g| g.id.as_str())
    }
}

/// A status to send to a pull request's reply subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Reply subject.
    pub reply: Box<[u8]>,
    /// Status line after `NATS/1.0 `, e.g. `408 Request Timeout`.
    pub line: String,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
}

impl Status {
    fn new(reply: &[u8], line: impl Into<String>) -> Status {
        Status {
            reply: reply.into(),
            line: line.into(),
            headers: Vec::new(),
        }
    }

    fn pending(mut self, msgs: i64, bytes: i64) -> Status {
        self.headers
            .push(("Nats-Pending-Messages", msgs.max(0).to_string()));
        self.headers
            .push(("Nats-Pending-Bytes", bytes.max(0).to_string()));
        self
    }
}

/// Where a delivery goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A pull request's reply subject.
    Pull(Box<[u8]>),
    /// The push consumer's deliver subject.
    Push,
}

/// One message to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Stream sequence.
    pub sseq: u64,
    /// Consumer sequence of this delivery.
    pub dseq: u64,
    /// How many times it has been delivered, this one included.
    pub count: u64,
    /// Matching messages left after this one (the ack subject's last token).
    pub pending: u64,
    /// Where it goes.
    pub target: Target,
    /// A status to send right after the message (`409 Batch Completed`).
    pub after: Option<Status>,
    /// `pinned_client`: the `Nats-Pin-Id` header value to add.
    pub pin: Option<std::sync::Arc<str>>,
}

/// What an ack did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckKind {
    /// `+ACK` (or empty): done.
    Ack,
    /// `-NAK`, optionally after a delay (ns).
    Nak(Option<i64>),
    /// `+WPI`: still working, restart the ack wait.
    Progress,
    /// `+TERM`: never redeliver.
    Term,
}

/// The machine.
#[derive(Debug)]
pub struct Machine {
    /// Rules.
    pub params: Params,
    /// Next stream sequence to look at for new messages.
    next_sseq: u64,
    /// Last delivered (consumer seq, stream seq).
    delivered: SequencePair,
    /// Everything at or below is acknowledged.
    ack_floor: SequencePair,
    /// Unacknowledged deliveries: stream seq → (consumer seq, delivery time).
    pending: BTreeMap<u64, Pending>,
    /// Delivery counts above one, by stream seq.
    redelivered: BTreeMap<u64, u64>,
    /// Ack deadlines: (deadline ns, stream seq).
    deadlines: BTreeSet<(i64, u64)>,
    /// Deadline per pending stream seq (to find it in `deadlines`).
    deadline_of: BTreeMap<u64, i64>,
    /// Stream seqs due for redelivery, oldest first.
    redeliver: BTreeSet<u64>,
    /// Waiting pull requests, oldest first.
    waiting: VecDeque<PullRequest>,
    /// Sequences to deliver before `next_sseq` (deliver `last_per_subject`).
    initial: VecDeque<u64>,
    /// Messages that reached `max_deliver` since the last [`Machine::take_exceeded`]:
    /// (stream seq, deliveries, consumer seq of the first delivery), for the
    /// max-deliveries advisory and the state store.
    exceeded: Vec<(u64, u64, u64)>,
    /// The stream position a scan without a match has passed (for heartbeats'
    /// `Nats-Last-Stream`, which nats-server takes from its scan cursor).
    scanned: u64,
    /// The current pin (`pinned_client`).
    pin: Option<Pin>,
    /// Pin changes since the last [`Machine::take_pin_events`].
    pin_events: Vec<PinEvent>,
}

impl Machine {
    /// A new consumer that starts at stream sequence `start` (the first to deliver).
    pub fn new(params: Params, start: u64) -> Machine {
        let floor = start.saturating_sub(1);
        Machine {
            params,
            next_sseq: start.max(1),
            delivered: SequencePair {
                consumer: 0,
                stream: floor,
            },
            ack_floor: SequencePair {
                consumer: 0,
                stream: floor,
            },
            pending: BTreeMap::new(),
            redelivered: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            deadline_of: BTreeMap::new(),
            redeliver: BTreeSet::new(),
            waiting: VecDeque::new(),
            initial: VecDeque::new(),
            exceeded: Vec::new(),
            scanned: 0,
            pin: None,
            pin_events: Vec::new(),
        }
    }

    /// Start over at stream sequence `seq` (`CONSUMER.RESET`): a fresh state with the
    /// same rules; the pin (`pinned_client`) stays.
    pub fn restart_at(&mut self, seq: u64) {
        let pin = self.pin.take();
        *self = Machine::new(self.params.clone(), seq);
        self.pin = pin;
    }

    /// A consumer that first delivers `initial` (ascending stream sequences, e.g. the last
    /// message of each subject), then new messages from `next`.
    pub fn with_initial(params: Params, initial: Vec<u64>, next: u64) -> Machine {
        let first = initial.first().copied().unwrap_or(next);
        let mut m = Machine::new(params, first);
        m.initial = initial.into_iter().collect();
        m.next_sseq = next.max(1);
        m
    }

    /// A consumer recovered from stored state. Pending messages are due again now (their
    /// ack wait started before the restart).
    pub fn recover(params: Params, state: &ConsumerState, now: i64) -> Machine {
        let mut m = Machine::new(params, state.delivered.stream + 1);
        m.delivered = state.delivered;
        m.ack_floor = state.ack_floor;
        // Stored state counts redeliveries (nats-server's encoding); the machine counts
        // deliveries.
        m.redelivered = state
            .redelivered
            .iter()
            .filter(|(_, r)| **r > 0)
            .map(|(s, r)| (*s, r.saturating_add(1)))
            .collect();
        for (sseq, p) in &state.pending {
            m.pending.insert(*sseq, *p);
            // The ack wait of the last delivery still runs (as in nats-server): a
            // restart does not redeliver early. Without a delivery time, now.
            let count = m.redelivered.get(sseq).copied().unwrap_or(1);
            let due = if p.timestamp > 0 {
                p.timestamp.saturating_add(m.ack_delay(count))
            } else {
                now
            };
            if m.redelivers() {
                m.set_deadline(*sseq, due);
            }
        }
        m
    }

    /// The state to persist.
    pub fn state(&self) -> ConsumerState {
        ConsumerState {
            delivered: self.delivered,
            ack_floor: self.ack_floor,
            pending: self.pending.clone(),
            redelivered: self.redelivered.iter().map(|(s, c)| (*s, c - 1)).collect(),
        }
    }

    /// Last delivered pair.
    pub fn delivered(&self) -> SequencePair {
        self.delivered
    }

    /// Ack floor pair.
    pub fn ack_floor(&self) -> SequencePair {
        self.ack_floor
    }

    /// Unacknowledged messages.
    pub fn num_ack_pending(&self) -> usize {
        self.pending.len()
    }

    /// Messages delivered more than once and not acknowledged: pending ones, and those
    /// that ran out of deliveries (nats-server counts its redelivery map).
    pub fn num_redelivered(&self) -> usize {
        self.redelivered.len()
    }

    /// Waiting pull requests.
    pub fn num_waiting(&self) -> usize {
        self.waiting.len()
    }

    /// The next stream sequence new deliveries start from.
    pub fn next_sseq(&self) -> u64 {
        self.next_sseq
    }

    /// Whether `sseq` was delivered and awaits its ack.
    pub fn is_pending(&self, sseq: u64) -> bool {
        self.pending.contains_key(&sseq)
    }

    /// Whether `sseq` is acknowledged (for interest and work-queue retention).
    pub fn is_acked(&self, sseq: u64) -> bool {
        if self.params.ack == Ack::None {
            return sseq <= self.delivered.stream;
        }
        // A message that ran out of deliveries stays (nats-server keeps it for the
        // interest of this consumer): it is in `redelivered` but no longer pending.
        sseq <= self.ack_floor.stream
            || (sseq <= self.delivered.stream
                && !self.pending.contains_key(&sseq)
                && !self.redelivered.contains_key(&sseq))
    }

    /// Take new parameters (a config update). A changed `ack_wait` or `backoff` applies
    /// to what is already delivered too, as nats-server re-times its pending messages on
    /// an update: each deadline becomes its last delivery time plus the new delay (so a
    /// raised wait gives a slow worker the time, a lowered one redelivers sooner).
    pub fn set_params(&mut self, params: Params) {
        let retime =
            params.ack_wait != self.params.ack_wait || params.backoff != self.params.backoff;
        if !retime {
            self.params = params;
            return;
        }
        // Deadlines the old wait set (by sequence, with their delivery time); others (a
        // NAK's own delay) stay as they are.
        let timed: Vec<(u64, i64)> = self
            .deadline_of
            .iter()
            .filter_map(|(sseq, at)| {
                let p = self.pending.get(sseq)?;
                let count = self.redelivered.get(sseq).copied().unwrap_or(1);
                (p.timestamp > 0 && *at == p.timestamp.saturating_add(self.ack_delay(count)))
                    .then_some((*sseq, p.timestamp))
            })
            .collect();
        self.params = params;
        for (sseq, delivered) in timed {
            if !self.redelivers() {
                self.clear_deadline(sseq);
                continue;
            }
            let count = self.redelivered.get(&sseq).copied().unwrap_or(1);
            let due = delivered.saturating_add(self.ack_delay(count));
            self.set_deadline(sseq, due);
        }
    }

    /// Whether an unacknowledged delivery is ever sent again by itself: not without an
    /// ack wait (the `flow_control` ack policy has none; nats-server's `checkPending`
    /// does nothing then).
    fn redelivers(&self) -> bool {
        self.params.ack_wait > 0 || !self.params.backoff.is_empty()
    }

    fn ack_delay(&self, count: u64) -> i64 {
        if self.params.backoff.is_empty() {
            self.params.ack_wait
        } else {
            let i = (count.saturating_sub(1) as usize).min(self.params.backoff.len() - 1);
            self.params.backoff[i]
        }
    }

    fn set_deadline(&mut self, sseq: u64, at: i64) {
        if let Some(old) = self.deadline_of.insert(sseq, at) {
            self.deadlines.remove(&(old, sseq));
        }
        self.deadlines.insert((at, sseq));
    }

    fn clear_deadline(&mut self, sseq: u64) {
        if let Some(old) = self.deadline_of.remove(&sseq) {
            self.deadlines.remove(&(old, sseq));
        }
    }

    /// Move the ack floor up over everything acknowledged.
    fn advance_floor(&mut self) {
        match self.pending.iter().next() {
            Some((sseq, p)) => {
                self.ack_floor.stream = sseq.saturating_sub(1);
                self.ack_floor.consumer = p.sequence.saturating_sub(1);
            }
            None => self.ack_floor = self.delivered,
        }
    }

    fn forget(&mut self, sseq: u64) {
        self.pending.remove(&sseq);
        self.redelivered.remove(&sseq);
        self.redeliver.remove(&sseq);
        self.clear_deadline(sseq);
    }

    /// The earliest time something is due (an ack deadline, a pull expiry, a heartbeat,
    /// the lapse of a pin).
    pub fn next_deadline(&self) -> Option<i64> {
        let mut t = self.deadlines.iter().next().map(|(d, _)| *d);
        if let Some(p) = &self.pin {
            t = Some(t.map_or(p.expires_at, |x| x.min(p.expires_at)));
        }
        for w in &self.waiting {
            for cand in [w.expires_at, w.heartbeat.map(|_| w.next_heartbeat)]
                .into_iter()
                .flatten()
            {
                t = Some(t.map_or(cand, |x: i64| x.min(cand)));
            }
        }
        t
    }

    /// Time passes: ack deadlines that passed make their messages due for redelivery;
    /// expired pull requests are answered; heartbeats are due. Returns the statuses to send.
    pub fn tick(&mut self, now: i64) -> Vec<Status> {
        while let Some(&(at, sseq)) = self.deadlines.iter().next() {
            if at > now {
                break;
            }
            self.deadlines.remove(&(at, sseq));
            self.deadline_of.remove(&sseq);
            if let Some(p) = self.pending.get_mut(&sseq) {
                // Its wait starts over from now, as nats-server moves the pending
                // timestamp of what it queues for redelivery: a pull consumer's
                // inactivity counts from the last ack still expected (`last_ack_due`).
                p.timestamp = p.timestamp.max(now);
                self.redeliver.insert(sseq);
            }
        }
        if self.pin.as_ref().is_some_and(|p| p.expires_at <= now) {
            self.unpin_with("timeout");
        }
        let mut out = Vec::new();
        let last_stream = self.last_stream();
        let mut keep = VecDeque::with_capacity(self.waiting.len());
        while let Some(mut w) = self.waiting.pop_front() {
            if w.expires_at.is_some_and(|e| e <= now) {
                out.push(
                    Status::new(&w.reply, "408 Request Timeout").pending(w.batch, w.max_bytes),
                );
                continue;
            }
            if let Some(hb) = w.heartbeat
                && w.next_heartbeat <= now
            {
                w.next_heartbeat = now + hb;
                let mut s = Status::new(&w.reply, "100 Idle Heartbeat");
                s.headers
                    .push(("Nats-Last-Consumer", self.delivered.consumer.to_string()));
                s.headers
                    .push(("Nats-Last-Stream", last_stream.to_string()));
                out.push(s);
            }
            keep.push_back(w);
        }
        self.waiting = keep;
        out
    }

    /// The stream position heartbeats report: the last delivered message, or further
    /// when a scan without a match has passed more of the stream.
    fn last_stream(&self) -> u64 {
        if self.initial.is_empty() {
            self.delivered.stream.max(self.scanned)
        } else {
            self.delivered.stream
        }
    }

    /// The current pin (`pinned_client`).
    pub fn pin(&self) -> Option<&Pin> {
        self.pin.as_ref()
    }

    /// Pin changes since the last call (for advisories).
    pub fn take_pin_events(&mut self) -> Vec<PinEvent> {
        std::mem::take(&mut self.pin_events)
    }

    fn group_name(&self) -> String {
        self.params.groups.first().cloned().unwrap_or_default()
    }

    /// End the pin (if any) and record why. nats-server reports an `admin` unpin even
    /// when nothing was pinned.
    fn unpin_with(&mut self, reason: &'static str) {
        self.pin = None;
        self.pin_events.push(PinEvent::Unpinned {
            group: self.group_name(),
            reason,
        });
    }

    /// `CONSUMER.UNPIN`: the next request without a pin id gets a new pin.
    pub fn unpin(&mut self) {
        self.unpin_with("admin");
    }

    fn assign_pin(&mut self, now: i64) -> String {
        let ttl = match self.params.priority {
            Priority::Pinned { ttl } => ttl,
            _ => 0,
        };
        let id = (self.params.new_pin_id)();
        self.pin = Some(Pin {
            id: id.as_str().into(),
            since: now,
            expires_at: now.saturating_add(ttl),
        });
        self.pin_events.push(PinEvent::Pinned {
            group: self.group_name(),
            id: id.clone(),
        });
        id
    }

    /// Whether anything could be delivered right now (ignoring targets).
    fn has_work(&self, src: &dyn Source) -> bool {
        !self.redeliver.is_empty()
            || !self.initial.is_empty()
            || src.next_matching(self.next_sseq).is_some()
    }

    /// Matching messages not yet delivered.
    pub fn num_pending(&self, src: &dyn Source) -> u64 {
        self.initial.len() as u64 + src.num_pending(self.next_sseq)
    }

    /// Whether the priority rules hold back a request of `group` right now (nats-server
    /// answers a `no_wait` one `404` at once instead of keeping it): an `overflow`
    /// request whose `min_pending` and `min_ack_pending` are both unmet, or a request
    /// without a pin id while the group is pinned to another client.
    fn holds_back(&self, group: Option<&PullGroup>, src: &dyn Source) -> bool {
        let Some(g) = group else {
            return false;
        };
        match self.params.priority {
            Priority::Overflow if g.min_pending > 0 || g.min_ack_pending > 0 => {
                let pending_ok = g.min_pending > 0 && g.min_pending as u64 <= self.num_pending(src);
                let acks_ok =
                    g.min_ack_pending > 0 && g.min_ack_pending <= self.pending.len() as i64;
                !(pending_ok || acks_ok)
            }
            Priority::Pinned { .. } => self.pin.is_some() && g.id.is_empty(),
            _ => false,
        }
    }

    /// Whether max ack pending blocks new deliveries.
    fn blocked(&self) -> bool {
        self.params.ack != Ack::None
            && self.params.max_ack_pending > 0
            && self.pending.len() as i64 >= self.params.max_ack_pending
    }

    /// Add a pull request. Returns a status to send right away, if any (a refusal, or
    /// `404 No Messages` for a `no_wait` request with nothing to deliver). The tests'
    /// shorthand for [`Machine::add_pull_req`] without group fields.
    #[cfg(test)]
    #[allow(clippy::too_many_arguments)]
    pub fn add_pull(
        &mut self,
        reply: &[u8],
        batch: i64,
        max_bytes: i64,
        expires: i64,
        no_wait: bool,
        heartbeat: i64,
        now: i64,
        src: &dyn Source,
    ) -> Option<Status> {
        let req = PullArgs {
            batch,
            max_bytes,
            expires,
            no_wait,
            heartbeat,
            group: None,
        };
        self.add_pull_req(reply, req, now, src)
    }

    /// Add a pull request, with its priority group fields (nats-server
    /// `processNextMsgRequest`'s checks, in its order). Returns a status to send right
    /// away, if any.
    pub fn add_pull_req(
        &mut self,
        reply: &[u8],
        req: PullArgs,
        now: i64,
        src: &dyn Source,
    ) -> Option<Status> {
        let PullArgs {
            batch,
            max_bytes,
            expires,
            no_wait,
            heartbeat,
            group,
        } = req;
        let p = &self.params;
        let batch = batch.max(1);
        if p.max_batch > 0 && batch > p.max_batch {
            return Some(Status::new(
                reply,
                format!("409 Exceeded MaxRequestBatch of {}", p.max_batch),
            ));
        }
        if p.max_expires > 0 && expires > p.max_expires {
            return Some(Status::new(
                reply,
                format!(
                    "409 Exceeded MaxRequestExpires of {}",
                    super::super::api::time::go_duration_string(p.max_expires)
                ),
            ));
        }
        if p.max_bytes > 0 && max_bytes > p.max_bytes {
            return Some(Status::new(
                reply,
                format!("409 Exceeded MaxRequestMaxBytes of {}", p.max_bytes),
            ));
        }
        if let Some(g) = &group {
            let bad = |why: &str| Some(Status::new(reply, format!("400 Bad Request - {why}")));
            if (g.min_pending != 0 || g.min_ack_pending != 0) && p.priority != Priority::Overflow {
                return bad("Not a Overflow Priority consumer");
            }
            if !g.id.is_empty() && !matches!(p.priority, Priority::Pinned { .. }) {
                return bad("Not a Pinned Client Priority consumer");
            }
            if !(0..=9).contains(&g.priority) {
                return bad("Priority must be between 0 and 9");
            }
            if p.priority != Priority::None {
                if g.group.is_empty() {
                    return bad("Priority Group missing");
                }
                if !p.groups.contains(&g.group) {
                    return bad("Invalid Priority Group");
                }
                if let (Priority::Pinned { ttl }, Some(pin)) = (p.priority, &mut self.pin) {
                    if *g.id == *pin.id {
                        // The pinned client is still there: the pin lives on.
                        pin.expires_at = now.saturating_add(ttl);
                    } else if !g.id.is_empty() {
                        return Some(Status::new(reply, "423 Nats-Pin-Id mismatch"));
                    }
                }
            }
        }
        let p = &self.params;
        if no_wait && expires == 0 && (!self.has_work(src) || self.holds_back(group.as_ref(), src))
        {
            return Some(Status::new(reply, "404 No Messages"));
        }
        if p.max_waiting > 0 && self.waiting.len() as i64 >= p.max_waiting {
            if heartbeat > 0 {
                return None;
            }
            return Some(Status::new(reply, "409 Exceeded MaxWaiting"));
        }
        let w = PullRequest {
            reply: reply.into(),
            batch,
            max_bytes: max_bytes.max(0),
            bytes_limited: max_bytes > 0,
            // A negative expiry is already past: the next tick answers 408, as nats-server.
            expires_at: (expires != 0).then(|| now.saturating_add(expires)),
            no_wait,
            heartbeat: (heartbeat > 0).then_some(heartbeat),
            next_heartbeat: now.saturating_add(heartbeat.max(0)),
            delivered_any: false,
            group,
        };
        if self.params.priority == Priority::Prioritized {
            self.insert_ranked(w);
        } else {
            self.waiting.push_back(w);
        }
        None
    }

    /// Queue `w` after every request ranked at or before it (nats-server
    /// `insertAtPosition`).
    fn insert_ranked(&mut self, w: PullRequest) {
        let rank = w.rank();
        let at = self
            .waiting
            .iter()
            .position(|x| x.rank() > rank)
            .unwrap_or(self.waiting.len());
        self.waiting.insert(at, w);
    }

    /// Move the front request to the back (nats-server `waitQueue.cycle`), counting the
    /// move in `cycled`; false once as many moves as waiting requests were made (every
    /// one is held back).
    fn cycle_front(&mut self, cycled: &mut usize) -> bool {
        if let Some(w) = self.waiting.pop_front() {
            self.waiting.push_back(w);
        }
        *cycled += 1;
        *cycled < self.waiting.len()
    }

    /// Choose the waiting request a message goes to (nats-server `nextWaiting`): the
    /// chosen one ends up at the front. Requests a priority rule holds back are cycled to
    /// the back; requests with a stale pin id get `423`, requests the message is too large
    /// for get `409`; both end. `size` is what the message counts against `max_bytes`;
    /// `npc` the matching messages pending, this one included (for `overflow`). False
    /// when no request may take the message now.
    fn choose_request(&mut self, size: i64, npc: u64, now: i64, out: &mut Vec<Status>) -> bool {
        let pinned = matches!(self.params.priority, Priority::Pinned { .. });
        let mut cycled = 0;
        while let Some(w) = self.waiting.front() {
            let mut assigned = false;
            if pinned {
                let id = w.pin_id();
                let current = self.pin.as_ref().map(|p| &*p.id);
                let stale = match current {
                    None if id.is_empty() => {
                        // The first request without an id gets a new pin (a request that
                        // is not JSON has no group to pin, as in nats-server).
                        if self.waiting[0]
                            .group
                            .as_ref()
                            .is_some_and(|g| !g.group.is_empty())
                        {
                            let id = self.assign_pin(now);
                            if let Some(g) = self.waiting[0].group.as_mut() {
                                g.id = id;
                            }
                            assigned = true;
                        }
                        false
                    }
                    None => true,
                    Some(cur) if cur == id => false,
                    Some(_) if id.is_empty() => {
                        if !self.cycle_front(&mut cycled) {
                            return false;
                        }
                        continue;
                    }
                    Some(_) => true,
                };
                if stale {
                    if let Some(w) = self.waiting.pop_front() {
                        out.push(
                            Status::new(&w.reply, "423 Nats-Wrong-Pin-Id")
                                .pending(w.batch, w.max_bytes),
                        );
                    }
                    continue;
                }
            }
            let w = &self.waiting[0];
            if self.params.priority == Priority::Overflow
                && let Some(g) = &w.group
                && (g.min_pending > 0 || g.min_ack_pending > 0)
                && !((g.min_pending > 0 && g.min_pending as u64 <= npc)
                    || (g.min_ack_pending > 0 && g.min_ack_pending <= self.pending.len() as i64))
            {
                if !self.cycle_front(&mut cycled) {
                    return false;
                }
                continue;
            }
            if w.bytes_limited && w.max_bytes > 0 && size > w.max_bytes {
                // Too large for this request: it ends, the message goes to the next one.
                if assigned {
                    self.pin = None;
                }
                if let Some(w) = self.waiting.pop_front() {
                    out.push(
                        Status::new(&w.reply, "409 Message Size Exceeds MaxBytes")
                            .pending(w.batch, w.max_bytes),
                    );
                }
                continue;
            }
            return true;
        }
        false
    }

    /// Drop waiting requests whose requester went away.
    pub fn drop_waiting(&mut self, keep: impl Fn(&[u8]) -> bool) {
        self.waiting.retain(|w| keep(&w.reply));
    }

    /// What each waiting request is told when the server stops (nats-server's
    /// `signalPullConsumers`): `409 Server Shutdown` with what it still wanted, so a
    /// client asks again once it has reconnected instead of waiting out its expiry.
    /// The requests stay; the consumer stops with the server.
    pub fn shutdown_statuses(&self) -> Vec<Status> {
        self.waiting
            .iter()
            .map(|w| Status::new(&w.reply, "409 Server Shutdown").pending(w.batch, w.max_bytes))
            .collect()
    }

    /// Answer every waiting request (consumer deleted, server stopping).
    pub fn close_waiting(&mut self, line: &str) -> Vec<Status> {
        // A bare status line, as nats-server sends it (no pending counts).
        self.waiting
            .drain(..)
            .map(|w| Status::new(&w.reply, line))
            .collect()
    }

    /// Pick the next delivery. `push`: whether deliveries may go to the push target
    /// (a push consumer with interest and no flow-control stall). Statuses produced on the
    /// way (a finished no-wait request, a message too large for a request) go to `out`.
    /// `None` when nothing can be delivered now.
    pub fn next(
        &mut self,
        src: &dyn Source,
        push: bool,
        now: i64,
        out: &mut Vec<Status>,
    ) -> Option<Delivery> {
        if !push && self.waiting.is_empty() {
            return None;
        }
        // Redeliveries first, oldest first.
        let mut candidate: Option<(u64, u64, bool)> = None;
        while let Some(&sseq) = self.redeliver.iter().next() {
            self.redeliver.remove(&sseq);
            if !self.pending.contains_key(&sseq) {
                continue;
            }
            if !src.exists(sseq) {
                self.forget(sseq);
                self.advance_floor();
                continue;
            }
            let count = self.redelivered.get(&sseq).copied().unwrap_or(1) + 1;
            if self.params.max_deliver > 0 && count as i64 > self.params.max_deliver {
                // Delivered as often as allowed: stop, and say so. As in nats-server
                // the message is no longer pending but not acknowledged either: the
                // ack floor stays and it still counts as redelivered.
                let dseq = self.pending.remove(&sseq).map_or(0, |p| p.sequence);
                self.exceeded.push((sseq, count - 1, dseq));
                self.clear_deadline(sseq);
                continue;
            }
            candidate = Some((sseq, src.size(sseq).unwrap_or(0), true));
            break;
        }
        if candidate.is_none() {
            if self.blocked() {
                return self.finish_no_wait(out);
            }
            while let Some(&sseq) = self.initial.front() {
                if src.exists(sseq) {
                    candidate = Some((sseq, src.size(sseq).unwrap_or(0), false));
                    break;
                }
                self.initial.pop_front();
            }
            if candidate.is_none() {
                // Read before the scan: a scan that finds nothing has passed it.
                let last = src.last_seq();
                match src.next_matching(self.next_sseq) {
                    Some((sseq, size)) => candidate = Some((sseq, size, false)),
                    None => {
                        self.scanned = self.scanned.max(last);
                        return self.finish_no_wait(out);
                    }
                }
            }
        }
        let (sseq, size, redelivery) = candidate?;
        let mut after = None;
        let mut pin = None;
        // Where does it go?
        let target = if !self.waiting.is_empty() {
            // Matching messages pending, this one included (nats-server's `npc + 1`).
            let npc = || {
                self.initial.len() as u64 + src.num_pending(self.next_sseq) + u64::from(redelivery)
            };
            let sz = if self.waiting.iter().any(|w| w.bytes_limited) {
                self.pull_size(sseq, size, redelivery, npc(), src)
            } else {
                0
            };
            let npc = if self.params.priority == Priority::Overflow {
                npc()
            } else {
                0
            };
            if !self.choose_request(sz, npc, now, out) {
                if redelivery {
                    self.redeliver.insert(sseq);
                }
                return None;
            }
            if matches!(self.params.priority, Priority::Pinned { .. }) {
                pin = Some(self.pin.as_ref().map(|p| p.id.clone()).unwrap_or_default());
            }
            let prioritized = self.params.priority == Priority::Prioritized;
            let more = self.waiting.len() > 1;
            let w = &mut self.waiting[0];
            if w.bytes_limited && w.max_bytes > 0 {
                w.max_bytes -= sz;
                if w.max_bytes <= 0 {
                    // Exactly used up: this is the request's last message.
                    w.batch = 1;
                }
            }
            w.batch -= 1;
            w.delivered_any = true;
            let reply = w.reply.clone();
            let (left, bytes_left) = (w.batch, w.max_bytes);
            if left <= 0 {
                self.waiting.pop_front();
                if bytes_left > 0 {
                    after = Some(Status::new(&reply, "409 Batch Completed").pending(0, bytes_left));
                }
            } else if more && let Some(w) = self.waiting.pop_front() {
                // Served in turn: to the back (of its rank, when prioritized).
                if prioritized {
                    self.insert_ranked(w);
                } else {
                    self.waiting.push_back(w);
                }
            }
            Target::Pull(reply)
        } else if push {
            Target::Push
        } else {
            if redelivery {
                self.redeliver.insert(sseq);
            }
            return None;
        };
        let mut d = self.record(sseq, redelivery, target, now, src);
        d.after = after;
        d.pin = pin;
        Some(d)
    }

    /// What a delivery counts against a request's `max_bytes`, as nats-server counts it:
    /// subject, headers and payload (`size`) plus the whole ack reply
    /// `$JS.ACK.<stream>.<consumer>.<dc>.<sseq>.<dseq>.<ts>.<pending>`.
    fn pull_size(&self, sseq: u64, size: u64, redelivery: bool, npc: u64, src: &dyn Source) -> i64 {
        let dc = if redelivery {
            self.redelivered.get(&sseq).copied().unwrap_or(1) + 1
        } else {
            1
        };
        let reply = self.params.ack_prefix_len
            + dec_digits(dc)
            + dec_digits(sseq)
            + dec_digits(self.delivered.consumer + 1)
            + src.ts_digits(sseq)
            + dec_digits(npc.saturating_sub(1))
            + 4;
        i64::try_from(size.saturating_add(reply)).unwrap_or(i64::MAX)
    }

    /// The consumer is paused: no-wait requests end as at the end of the stream.
    pub fn end_no_wait(&mut self, out: &mut Vec<Status>) {
        self.finish_no_wait(out);
    }

    /// At the end of the stream, no-wait requests are finished with `404 No Messages`,
    /// unless they have an expiry and got nothing yet (those wait, as in nats-server).
    fn finish_no_wait(&mut self, out: &mut Vec<Status>) -> Option<Delivery> {
        self.waiting.retain(|w| {
            if w.no_wait && (w.expires_at.is_none() || w.delivered_any) {
                out.push(Status::new(&w.reply, "404 No Messages"));
                false
            } else {
                true
            }
        });
        None
    }

    /// Bookkeeping for a delivery.
    fn record(
        &mut self,
        sseq: u64,
        redelivery: bool,
        target: Target,
        now: i64,
        src: &dyn Source,
    ) -> Delivery {
        self.delivered.consumer += 1;
        let dseq = self.delivered.consumer;
        let count = if redelivery {
            let c = self.redelivered.entry(sseq).or_insert(1);
            *c += 1;
            *c
        } else {
            if self.initial.front() == Some(&sseq) {
                self.initial.pop_front();
            } else {
                self.next_sseq = sseq + 1;
            }
            1
        };
        if sseq > self.delivered.stream {
            self.delivered.stream = sseq;
        }
        match self.params.ack {
            Ack::None => {
                self.ack_floor = self.delivered;
            }
            Ack::All | Ack::Explicit => {
                // A redelivery keeps the consumer sequence of the first delivery (as the
                // state store and nats-server do): the ack floor is measured in it.
                let sequence = match self.pending.get(&sseq) {
                    Some(p) if redelivery && p.sequence > 0 => p.sequence,
                    _ => dseq,
                };
                self.pending.insert(
                    sseq,
                    Pending {
                        sequence,
                        timestamp: now,
                    },
                );
                if self.redelivers() {
                    let delay = self.ack_delay(count);
                    self.set_deadline(sseq, now.saturating_add(delay));
                }
            }
        }
        Delivery {
            sseq,
            dseq,
            count,
            pending: self.initial.len() as u64 + src.num_pending(self.next_sseq),
            target,
            after: None,
            pin: None,
        }
    }

    /// Messages that reached `max_deliver` and were dropped since the last call:
    /// (stream seq, deliveries, consumer seq of the first delivery).
    pub fn take_exceeded(&mut self) -> Vec<(u64, u64, u64)> {
        std::mem::take(&mut self.exceeded)
    }

    /// The latest time an ack of a pending delivery is still expected: its last
    /// delivery (or progress) plus the ack wait that applies to it (`None`: nothing
    /// pending).
    pub fn last_ack_due(&self) -> Option<i64> {
        self.pending
            .iter()
            .map(|(sseq, p)| {
                let count = self.redelivered.get(sseq).copied().unwrap_or(1);
                p.timestamp.saturating_add(self.ack_delay(count))
            })
            .max()
    }

    /// The pending entry of `sseq` (its consumer seq and last delivery time).
    pub fn pending_of(&self, sseq: u64) -> Option<Pending> {
        self.pending.get(&sseq).copied()
    }

    /// How many times `sseq` has been delivered (0 if not pending).
    pub fn deliveries(&self, sseq: u64) -> u64 {
        if !self.pending.contains_key(&sseq) {
            return 0;
        }
        self.redelivered.get(&sseq).copied().unwrap_or(1)
    }

    /// Whether the next delivery would be a new message (no redelivery or initial
    /// message is due first): for replay pacing.
    pub fn next_is_new(&self) -> bool {
        self.redeliver.is_empty() && self.initial.is_empty()
    }

    /// Apply an ack for stream seq `sseq`. Returns the (stream seq, consumer seq) pairs
    /// newly acknowledged (for the state store and for work-queue and interest retention).
    pub fn ack(&mut self, sseq: u64, kind: AckKind, now: i64) -> Vec<(u64, u64)> {
        let mut acked = Vec::new();
        self.ack_into(sseq, kind, now, &mut acked);
        acked
    }

    /// [`Machine::ack`] appending the acknowledged `(stream seq, consumer seq)` pairs to
    /// `acked` (a buffer the caller reuses, so an ack allocates nothing).
    pub fn ack_into(&mut self, sseq: u64, kind: AckKind, now: i64, acked: &mut Vec<(u64, u64)>) {
        match kind {
            AckKind::Ack | AckKind::Term => {}
            AckKind::Nak(delay) => {
                if self.pending.contains_key(&sseq) {
                    match delay {
                        Some(d) if d > 0 => self.set_deadline(sseq, now.saturating_add(d)),
                        _ => {
                            // Redelivered at once, backoff or not: a plain NAK asks
                            // for it (nats-server's `processNak` queues it; the
                            // backoff times only redeliveries after an ack wait).
                            self.clear_deadline(sseq);
                            self.redeliver.insert(sseq);
                        }
                    }
                }
                return;
            }
            AckKind::Progress => {
                if let Some(p) = self.pending.get_mut(&sseq) {
                    // The wait starts again from now, as if just delivered (nats-server
                    // moves the pending timestamp too, so an ack_wait update and a
                    // restart keep the extension; the driver stores it).
                    p.timestamp = now;
                    let count = self.redelivered.get(&sseq).copied().unwrap_or(1);
                    // Already due for redelivery (its wait ran out before the
                    // progress came): it stays queued, as in nats-server, whose
                    // progress update moves only the timestamp.
                    if !self.redeliver.contains(&sseq) {
                        let at = now.saturating_add(self.ack_delay(count));
                        self.set_deadline(sseq, at);
                    }
                }
                return;
            }
        }
        match self.params.ack {
            Ack::None => {}
            Ack::Explicit => {
                if let Some(p) = self.pending.get(&sseq).copied() {
                    self.forget(sseq);
                    acked.push((sseq, p.sequence));
                }
            }
            Ack::All => {
                let from = acked.len();
                acked.extend(self.pending.range(..=sseq).map(|(s, p)| (*s, p.sequence)));
                for &(s, _) in &acked[from..] {
                    self.forget(s);
                }
            }
        }
        self.advance_floor();
    }

    /// Unacknowledged deliveries of messages the stream no longer holds are dropped as
    /// if terminated, as nats-server does: they no longer hold a `max_ack_pending` slot
    /// nor wait out their ack wait, and the ack floor moves past them. Everything below
    /// `first` (the stream's first sequence) is gone; from `first` on, `exists` decides,
    /// and `None` means the stream has no gaps there (nothing to look up). Returns
    /// `(stream seq, consumer seq, deliveries)` of each, in stream order.
    pub fn drop_removed(
        &mut self,
        first: u64,
        exists: Option<&dyn Fn(u64) -> bool>,
    ) -> Vec<(u64, u64, u64)> {
        let tuple = |(s, p): (&u64, &Pending)| {
            (
                *s,
                p.sequence,
                self.redelivered.get(s).copied().unwrap_or(1),
            )
        };
        let mut gone: Vec<(u64, u64, u64)> = self.pending.range(..first).map(tuple).collect();
        if let Some(exists) = exists {
            gone.extend(
                self.pending
                    .range(first..)
                    .filter(|(s, _)| !exists(**s))
                    .map(tuple),
            );
        }
        for &(s, _, _) in &gone {
            self.forget(s);
        }
        if !gone.is_empty() {
            self.advance_floor();
        }
        gone
    }

    /// Skip ahead (stream purged or compacted below `seq`): nothing below it is pending.
    pub fn skip_to(&mut self, seq: u64) {
        if seq > self.next_sseq {
            self.next_sseq = seq;
        }
        let below: Vec<u64> = self.pending.range(..seq).map(|(s, _)| *s).collect();
        for s in below {
            self.forget(s);
        }
        if seq.saturating_sub(1) > self.delivered.stream {
            self.delivered.stream = seq - 1;
        }
        self.advance_floor();
    }
}

/// Decimal digits of `n` (what it takes in an ack reply or a header).
pub fn dec_digits(n: u64) -> u64 {
    n.checked_ilog10().map_or(1, |d| u64::from(d) + 1)
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
