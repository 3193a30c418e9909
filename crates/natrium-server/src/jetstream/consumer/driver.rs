//! The consumer's task: feeds the machine events and time, delivers what it decides,
//! and persists the state.
//!
//! One cycle: take every queued event (acks, pull requests, flow-control responses),
//! let time pass in the machine (ack deadlines, pull expiries, heartbeats), deliver up to
//! [`BATCH`] messages, then write the state changes in one go and answer acks that asked
//! for confirmation. Then sleep until an event, a new message in the stream, or the
//! machine's next deadline.
//!
//! Push consumers deliver only while their deliver subject has a subscriber, and, with
//! flow control, while the client has answered recent flow-control requests (nats-server's
//! window: it starts at 2 MiB, doubles with each answer up to 32 MiB, and a request is
//! sent when half of it is outstanding).

use super::machine::{AckKind, Delivery, Status, Target};
use super::source::{StoreSource, msg_size};
use super::subs::AckTokens;
use super::{Consumer, Event};
use crate::client::deliver::{DeliveryCtx, Publisher};
use crate::jetstream::advisory;
use crate::jetstream::api::stream::RetentionPolicy;
use crate::jetstream::stream::now_nanos;
use crate::protocol::PubMsg;
use crate::server::ServerShared;
use natrium_store::StoredMsg;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;

/// Most deliveries per cycle (then events are looked at again).
const BATCH: usize = 256;
/// Longest time state changes stay written but not fsynced.
pub const SYNC_EVERY: Duration = Duration::from_secs(1);
/// How often a push consumer without a subscriber looks for one. A client `SUB` in the
/// consumer's account or in an account importing its deliver subject, and a sourcing
/// link's subscription, wake it at once (`interest_watch.rs`); the poll only catches
/// interest that arrives by another path (a stream's own subscription on its subjects
/// when the deliver subject is a stream's, an import wired after the subscription, a
/// system service), so such a consumer may start up to a second late; it also bounds
/// what an idle, unbound consumer costs (one look a second, where it used to be
/// twenty).
const INTEREST_POLL: Duration = Duration::from_secs(1);
/// Flow-control window limit (nats-server `JsFlowControlMaxPending`).
const FC_LIMIT: i64 = 32 * 1024 * 1024;

/// Push flow-control accounting.
#[derive(Debug)]
struct FlowControl {
    /// Bytes delivered and not yet confirmed.
    pbytes: i64,
    /// Current window.
    maxpb: i64,
    /// The outstanding request's reply subject.
    fcid: Option<Box<[u8]>>,
    /// Bytes the outstanding request covers.
    fcsz: i64,
}

/// The parts of the config the hot path needs, refreshed on updates.
struct Hot {
    /// Deliver subject (push) or empty (pull).
    deliver: Box<[u8]>,
    /// Deliver headers only.
    headers_only: bool,
    /// Flow control on.
    flow_control: bool,
    /// `flow_control` ack policy: flow-control responses ack, and a flow-control request
    /// also goes out with an idle heartbeat while acks are pending, and when
    /// `max_ack_pending` is reached.
    ack_by_fc: bool,
    /// `max_ack_pending` (0 or less: none).
    max_ack_pending: i64,
    /// Push idle heartbeat (ns, 0 none).
    heartbeat: i64,
    /// Paused until (ns, 0 none).
    paused_until: i64,
    /// Delete after this long inactive (ns, 0 never).
    inactive: i64,
    /// Percentage of acks sampled into metrics (0 none).
    sample_pct: u32,
    /// Replay with the original timing.
    replay_original: bool,
    /// Push rate limit in bits per second (0 none).
    rate_bps: u64,
    /// `deliver_group`: which subscribers count as interest (see `push_interest`).
    deliver_group: Box<[u8]>,
    /// The rate limit's burst, as time at the limit (ns): nats-server's limiter lets the
    /// largest message size (the stream's `max_msg_size`, else the server's
    /// `max_payload`) through at once before pacing.
    rate_burst: i64,
}

impl Hot {
    fn of(c: &Consumer, max_payload: i64) -> Hot {
        let cfg = c.config.read();
        Hot {
            deliver: cfg.deliver_subject.as_bytes().into(),
            headers_only: cfg.headers_only,
            flow_control: cfg.flow_control,
            ack_by_fc: cfg.ack_policy == crate::jetstream::api::consumer::AckPolicy::FlowControl,
            max_ack_pending: cfg.max_ack_pending,
            heartbeat: cfg.idle_heartbeat,
            paused_until: cfg
                .pause_until
                .filter(|t| !t.is_zero())
                .map_or(0, |t| t.unix_nanos_saturating()),
            inactive: cfg.inactive_threshold,
            sample_pct: cfg
                .sample_freq
                .trim_end_matches('%')
                .trim()
                .parse::<u32>()
                .unwrap_or(0)
                .min(100),
            replay_original: cfg.replay_policy
                == crate::jetstream::api::consumer::ReplayPolicy::Original,
            rate_bps: cfg.rate_limit_bps,
            deliver_group: cfg.deliver_group.as_bytes().into(),
            rate_burst: rate_burst(cfg.rate_limit_bps, c, max_payload),
        }
    }
}

/// The burst of a push rate limit of `bps`, as time at that rate (ns).
fn rate_burst(bps: u64, c: &Consumer, max_payload: i64) -> i64 {
    if bps == 0 {
        return 0;
    }
    let bytes = match c.stream.config().max_msg_size {
        n if n > 0 => n as u64,
        _ if max_payload > 0 => max_payload as u64,
        _ => crate::options::DEFAULT_MAX_PAYLOAD as u64,
    };
    let ns = (u128::from(bytes) * 8 * 1_000_000_000) / u128::from(bps);
    i64::try_from(ns).unwrap_or(i64::MAX)
}

/// The task's state.
struct Task {
    /// The consumer.
    c: Arc<Consumer>,
    /// Delivery context.
    ctx: DeliveryCtx,
    /// Hot config.
    hot: Hot,
    /// Ack confirmations waiting for the state to be written.
    ack_replies: Vec<Box<[u8]>>,
    /// Newly acknowledged stream sequences (for interest and work-queue retention).
    acked: Vec<u64>,
    /// Reused buffer for what one ack acknowledged: (stream seq, consumer seq).
    ack_buf: Vec<(u64, u64)>,
    /// State changed since the last commit.
    dirty: bool,
    /// Written but not fsynced.
    unsynced: bool,
    /// Last fsync.
    last_sync: tokio::time::Instant,
    /// Flow control.
    fc: FlowControl,
    /// Last time anything went to the deliver subject (ns).
    last_push: i64,
    /// Reused ack-subject buffer.
    reply_buf: Vec<u8>,
    /// Reused header buffer (headers-only deliveries).
    hdr_buf: Vec<u8>,
    /// More to deliver right away (the batch limit was hit, or a receiver stalled).
    again: bool,
    /// A receiver is over its pending limit; wait for it.
    stalled: Option<Arc<crate::client::ClientConn>>,
    /// The store failed; stop confirming acks.
    failed: bool,
    /// Replay original: (timestamp of the last new message, when it was delivered).
    replay: Option<(i64, i64)>,
    /// Rate limit: earliest time of the next push delivery.
    rate_next: i64,
    /// The stream's [`Stream::removals_beyond_retention`] at the last look: when it
    /// grows, unacknowledged deliveries are checked against the store
    /// (`i128::MIN` at the start: checked once, for removals while the server was
    /// down).
    removals_seen: i128,
    /// Pacing (replay or rate limit) holds deliveries until this time.
    pace_until: Option<i64>,
    /// The pause end (ns, as `Hot::paused_until`) whose end is settled: its "unpaused"
    /// advisory went out, or the pause had already ended when the task first saw it
    /// (nats-server's pause timer runs only for a pause still ahead).
    pause_told: i64,
    /// A pull consumer is not deleted as inactive before this time (ns): the last ack
    /// its pending deliveries may still get, plus the threshold (0 none).
    inactive_hold: i64,
    /// While a push consumer has no subscriber: its registration with the account's
    /// [`crate::interest_watch::InterestWatch`], so a `SUB` wakes it at once.
    watch: Option<crate::interest_watch::WatchGuard>,
    /// What the watch wakes.
    interest_arrived: Arc<tokio::sync::Notify>,
}

impl Consumer {
    /// Subscribe and start the task.
    pub fn start(self: &Arc<Self>, server: Arc<ServerShared>) {
        self.subscribe();
        let Some(rx) = self.rx.lock().take() else {
            return;
        };
        let max_payload = server.opts().max_payload;
        let mut task = Task {
            c: self.clone(),
            ctx: DeliveryCtx::new(server, rand::random()),
            hot: Hot::of(self, max_payload),
            ack_replies: Vec::new(),
            acked: Vec::new(),
            ack_buf: Vec::new(),
            dirty: false,
            unsynced: false,
            last_sync: tokio::time::Instant::now(),
            fc: FlowControl {
                pbytes: 0,
                maxpb: FC_LIMIT / 16,
                fcid: None,
                fcsz: 0,
            },
            last_push: now_nanos(),
            reply_buf: Vec::with_capacity(128),
            hdr_buf: Vec::new(),
            again: false,
            stalled: None,
            failed: false,
            replay: None,
            rate_next: 0,
            pace_until: None,
            inactive_hold: 0,
            pause_told: 0,
            removals_seen: i128::MIN,
            watch: None,
            interest_arrived: Arc::new(tokio::sync::Notify::new()),
        };
        task.settle_past_pause();
        tokio::spawn(task.run(rx));
    }
}

impl Task {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Event>) {
        let mut new_msgs = self.c.stream.last_seq.subscribe();
        'outer: loop {
            while let Ok(ev) = rx.try_recv() {
                self.c.queued.fetch_sub(1, Ordering::AcqRel);
                if !self.event(ev) {
                    break 'outer;
                }
            }
            if self.c.is_closed() {
                break;
            }
            self.cycle();
            if self.dirty
                && let Some(js) = self.ctx.server.js.get()
            {
                // Deliveries or acks in this round: live traffic that bulk work yields to
                // (`JetStream::live_work`), as it does to publishes.
                js.live_work.fetch_add(1, Ordering::Relaxed);
            }
            self.persist().await;
            if self.check_inactive() {
                break;
            }
            if self.again {
                // More to deliver right away. A zero-length sleep in the select below
                // would wait for the timer's next tick (up to a millisecond, per batch);
                // letting other tasks run is enough, and queued events are taken at
                // the top of the loop.
                tokio::task::yield_now().await;
                continue;
            }
            let wait = self.next_wake();
            let stalled = self.stalled.take();
            let max_pending = self.ctx.max_pending;
            let drained = async {
                match &stalled {
                    Some(conn) => {
                        // Registered before asking the writer to signal, so the signal
                        // cannot be missed; nothing to wait for if it already drained.
                        let notified = conn.drained.notified();
                        tokio::pin!(notified);
                        notified.as_mut().enable();
                        if conn.prepare_stall(max_pending) {
                            notified.await;
                        }
                    }
                    None => std::future::pending().await,
                }
            };
            let arrived = self.interest_arrived.clone();
            tokio::select! {
                ev = rx.recv() => {
                    let Some(ev) = ev else { break };
                    self.c.queued.fetch_sub(1, Ordering::AcqRel);
                    if !self.event(ev) {
                        break;
                    }
                }
                _ = new_msgs.changed() => {}
                _ = drained => {}
                _ = arrived.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        // Final write of whatever changed.
        if self.dirty || self.unsynced {
            let store = self.c.store.clone();
            let durable = self.c.sync_state;
            let _ = tokio::task::spawn_blocking(move || store.commit(durable)).await;
        }
        let closing = self.c.machine.lock().close_waiting("409 Consumer Deleted");
        for s in &closing {
            self.status(s);
        }
        self.ctx.flush();
    }

    /// Apply one event. Returns false to stop.
    fn event(&mut self, ev: Event) -> bool {
        let now = now_nanos();
        match ev {
            Event::Stop => return false,
            Event::Updated => {
                self.hot = Hot::of(&self.c, self.ctx.server.opts().max_payload);
                self.settle_past_pause();
            }
            Event::Ack {
                tokens,
                kind,
                reply,
                reason,
            } => {
                let sseq = tokens.sseq;
                self.ack_events(&tokens, &kind, reason.as_deref(), now);
                self.ack_buf.clear();
                let progress = matches!(kind, AckKind::Progress);
                let (delivered, still_pending) = {
                    let mut m = self.c.machine.lock();
                    m.ack_into(sseq, kind, now, &mut self.ack_buf);
                    (m.delivered().stream, progress && m.is_pending(sseq))
                };
                // A progress ack moves the delivery time in the stored state too (as
                // nats-server's `updateDelivered`), so a restart keeps the extension.
                if still_pending {
                    let _ = self
                        .c
                        .store
                        .update_delivered(tokens.dseq, sseq, tokens.dc.max(1), now);
                    self.dirty = true;
                }
                self.store_acked(now);
                // An ack of a message never delivered gets no answer (nats-server).
                if let Some(r) = reply
                    && sseq <= delivered
                {
                    self.ack_replies.push(r);
                }
            }
            Event::Pull { reply, req } => {
                let filter = self.c.filter.read();
                let src =
                    StoreSource::new(self.c.stream.store.as_ref(), &filter).without_read_ahead();
                let st = self.c.machine.lock().add_pull_req(&reply, req, now, &src);
                drop(filter);
                if let Some(s) = st {
                    self.status(&s);
                }
            }
            Event::FlowControl { subject, last } => {
                // Only the latest request counts (nats-server ignores older ones, acks
                // included).
                if self.fc.fcid.as_deref() == Some(&*subject) {
                    self.fc.maxpb = (self.fc.maxpb * 2).min(FC_LIMIT);
                    self.fc.pbytes = (self.fc.pbytes - self.fc.fcsz).max(0);
                    self.fc.fcid = None;
                    self.fc.fcsz = 0;
                    if self.hot.ack_by_fc
                        && let Some((sseq, dseq)) = last
                    {
                        self.ack_up_to(sseq, dseq, now);
                    }
                }
            }
        }
        true
    }

    /// A flow-control response's ack (`flow_control` ack policy): everything delivered up
    /// to stream sequence `sseq` is acknowledged, as an ack under `AckAll`.
    /// Nothing is acked unless both sequences are above the ack floor (nats-server's
    /// `processAckMsg` under `AckAll`), so an answer without a consumer sequence acks
    /// nothing.
    fn ack_up_to(&mut self, sseq: u64, dseq: u64, now: i64) {
        self.ack_buf.clear();
        {
            let mut m = self.c.machine.lock();
            let floor = m.ack_floor();
            if dseq <= floor.consumer || sseq <= floor.stream {
                return;
            }
            m.ack_into(sseq, AckKind::Ack, now, &mut self.ack_buf);
        }
        self.store_acked(now);
    }

    /// Records what the machine just acknowledged (`ack_buf`) in the consumer's store,
    /// for retention, and as the last ack time.
    fn store_acked(&mut self, now: i64) {
        if self.ack_buf.is_empty() {
            return;
        }
        self.c.last_ack.store(now, Ordering::Relaxed);
        for &(s, d) in &self.ack_buf {
            let _ = self.c.store.update_acks(d, s);
            self.acked.push(s);
        }
        self.dirty = true;
    }

    /// Advisories and metrics about an ack, sent before it is applied (they describe
    /// the delivery being acked).
    fn ack_events(&mut self, t: &AckTokens, kind: &AckKind, reason: Option<&str>, now: i64) {
        let c = self.c.clone();
        let account = &c.stream.account;
        let (stream, consumer, domain) =
            (c.stream.name.as_str(), c.name.as_str(), c.stream.domain());
        match kind {
            AckKind::Nak(_) => advisory::send(
                &mut self.ctx,
                account,
                &format!("$JS.EVENT.ADVISORY.CONSUMER.MSG_NAKED.{stream}.{consumer}"),
                &advisory::Delivery {
                    typed: advisory::Typed::new(advisory::NAK),
                    stream,
                    consumer,
                    consumer_seq: t.dseq,
                    stream_seq: t.sseq,
                    deliveries: t.dc,
                    reason: "",
                    domain,
                },
            ),
            AckKind::Term => advisory::send(
                &mut self.ctx,
                account,
                &format!("$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.{stream}.{consumer}"),
                &advisory::Delivery {
                    typed: advisory::Typed::new(advisory::TERMINATED),
                    stream,
                    consumer,
                    consumer_seq: t.dseq,
                    stream_seq: t.sseq,
                    deliveries: t.dc,
                    reason: reason.unwrap_or(""),
                    domain,
                },
            ),
            AckKind::Ack if self.hot.sample_pct > 0 => {
                let Some(p) = c.machine.lock().pending_of(t.sseq) else {
                    return;
                };
                if rand::random::<u32>() % 100 >= self.hot.sample_pct {
                    return;
                }
                advisory::send(
                    &mut self.ctx,
                    account,
                    &format!("$JS.EVENT.METRIC.CONSUMER.ACK.{stream}.{consumer}"),
                    &advisory::AckMetric {
                        typed: advisory::Typed::new(advisory::ACK_METRIC),
                        stream,
                        consumer,
                        // The delivery acknowledged (a redelivery's own sequence),
                        // as nats-server reports it.
                        consumer_seq: t.dseq,
                        stream_seq: t.sseq,
                        ack_time: now - p.timestamp,
                        deliveries: t.dc,
                        domain,
                    },
                );
            }
            _ => {}
        }
    }

    /// Unacknowledged deliveries whose messages the stream no longer holds, dropped from
    /// the machine (nats-server: as if terminated), when the stream removed anything
    /// since the last look beyond what retention removed (which never takes a message
    /// still pending here). Returns `(stream seq, consumer seq, deliveries)` of each.
    fn drop_removed(&mut self, m: &mut super::machine::Machine) -> Vec<(u64, u64, u64)> {
        if m.num_ack_pending() == 0 {
            // Nothing that could be dropped; look again once there is.
            self.removals_seen = i128::MIN;
            return Vec::new();
        }
        let (now, st) = self.c.stream.removals_beyond_retention();
        // Any change, not only growth: a retention removal racing with the two reads
        // can make one look too high for an instant, and a later real removal would
        // then bring it back to the saved value. A needless check is the only cost.
        if now == self.removals_seen {
            return Vec::new();
        }
        self.removals_seen = now;
        let store = &self.c.stream.store;
        // Without interior gaps every sequence from the first on is there: only what
        // fell off the front can be gone (the common case of a stream at its limits),
        // and no lookup is needed.
        let exists = |seq: u64| store.has_msg(seq);
        m.drop_removed(
            st.first_seq,
            (st.num_deleted > 0).then_some(&exists as &dyn Fn(u64) -> bool),
        )
    }

    /// The state store and advisories for deliveries whose messages were removed: each
    /// is recorded as acknowledged (so a restart does not bring it back) and announced
    /// as terminated, with nats-server's reason.
    fn removed_events(&mut self, removed: &[(u64, u64, u64)]) {
        let now = now_nanos();
        for &(sseq, dseq, dc) in removed {
            let _ = self.c.store.update_acks(dseq, sseq);
            let tokens = AckTokens { dc, sseq, dseq };
            self.ack_events(
                &tokens,
                &AckKind::Term,
                Some("Unacknowledged message was deleted"),
                now,
            );
        }
        self.c.last_ack.store(now, Ordering::Relaxed);
        self.dirty = true;
    }

    /// Max-deliveries advisories for messages the machine gave up on, and the state
    /// store told (a delivery past `max_deliver` leaves its pending set, so a restart
    /// does not bring the message back).
    fn exceeded_events(&mut self, exceeded: Vec<(u64, u64, u64)>) {
        let c = self.c.clone();
        let (stream, consumer, domain) =
            (c.stream.name.as_str(), c.name.as_str(), c.stream.domain());
        let subject = format!("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.{consumer}");
        let now = now_nanos();
        for (sseq, deliveries, dseq) in exceeded {
            if dseq > 0 {
                let _ = c.store.update_delivered(dseq, sseq, deliveries + 1, now);
                self.dirty = true;
            }
            advisory::send(
                &mut self.ctx,
                &c.stream.account,
                &subject,
                &advisory::MaxDeliver {
                    typed: advisory::Typed::new(advisory::MAX_DELIVER),
                    stream,
                    consumer,
                    stream_seq: sseq,
                    deliveries,
                    domain,
                },
            );
        }
    }

    /// Pinned/unpinned advisories for the machine's pin changes.
    fn pin_events(&mut self, events: &[super::machine::PinEvent]) {
        let c = self.c.clone();
        for ev in events {
            let (subject, body) = advisory::GroupPin::of(
                &c.stream.account.name,
                &c.stream.name,
                &c.name,
                c.stream.domain(),
                ev,
            );
            advisory::send(&mut self.ctx, &c.stream.account, &subject, &body);
        }
    }

    fn status(&mut self, s: &Status) {
        super::subs::send_status(
            &mut self.ctx,
            &self.c.stream.account,
            &s.reply,
            &s.line,
            &s.headers,
        );
    }

    /// A pause that has already ended when the task learns of it gets no "unpaused"
    /// advisory of its own (the pause request's advisory said so).
    fn settle_past_pause(&mut self) {
        if self.hot.paused_until <= now_nanos() {
            self.pause_told = self.hot.paused_until;
        }
    }

    /// A pause ran out by itself: the "unpaused" advisory, once (nats-server's pause
    /// timer sends it with the config's `pause_until`).
    fn pause_ended(&mut self, now: i64) {
        if self.hot.paused_until == 0
            || self.hot.paused_until > now
            || self.pause_told == self.hot.paused_until
        {
            return;
        }
        self.pause_told = self.hot.paused_until;
        let c = self.c.clone();
        let until = c.config().pause_until.unwrap_or_default();
        let (subject, body) =
            advisory::pause(&c.stream.name, &c.name, false, until, c.stream.domain());
        advisory::send(&mut self.ctx, &c.stream.account, &subject, &body);
    }

    /// Time passes, then deliver what can be delivered.
    fn cycle(&mut self) {
        let now = now_nanos();
        self.pause_ended(now);
        let c = self.c.clone();
        let account = &c.stream.account;
        let push = !self.hot.deliver.is_empty();
        let mut m = c.machine.lock();
        let removed = self.drop_removed(&mut m);
        let mut out = m.tick(now);
        if !push && m.num_waiting() > 0 {
            m.drop_waiting(|r| account.sublist.has_interest(r));
            if m.num_waiting() > 0 {
                c.touch();
            }
        }
        let mut interest = push
            && super::push_interest(&account.sublist, &self.hot.deliver, &self.hot.deliver_group);
        if push && !interest {
            if self
                .watch
                .as_ref()
                .is_none_or(|g| g.subject() != &*self.hot.deliver)
            {
                self.watch = Some(
                    account
                        .interest_watch
                        .watch(&self.hot.deliver, self.interest_arrived.clone()),
                );
                // A subscriber that came in before the registration wakes nobody.
                interest = super::push_interest(
                    &account.sublist,
                    &self.hot.deliver,
                    &self.hot.deliver_group,
                );
                if interest {
                    self.watch = None;
                }
            }
        } else {
            self.watch = None;
        }
        if interest {
            c.touch();
        }
        // Push idle heartbeat.
        // Sent only while someone listens (nats-server's `isActive`); without a listener
        // the beat is skipped, and the next one is a whole interval away (so the task
        // does not wake again at once for it).
        let beat = push && self.hot.heartbeat > 0 && now - self.last_push >= self.hot.heartbeat;
        if beat && !interest {
            self.last_push = now;
        }
        if beat && interest {
            let d = m.delivered();
            let mut headers = vec![
                ("Nats-Last-Consumer", d.consumer.to_string()),
                ("Nats-Last-Stream", d.stream.to_string()),
            ];
            // An unanswered flow-control request rides on every heartbeat (nats-server),
            // so a receiver that missed it can answer: under the `flow_control` ack
            // policy nothing else would ever ack again.
            if let Some(id) = &self.fc.fcid {
                headers.push((
                    "Nats-Consumer-Stalled",
                    String::from_utf8_lossy(id).into_owned(),
                ));
            }
            out.push(Status {
                reply: self.hot.deliver.clone(),
                line: "100 Idle Heartbeat".to_string(),
                headers,
            });
            self.last_push = now;
            // Acks ride on flow-control responses: ask for one while any are due.
            if self.hot.ack_by_fc && m.num_ack_pending() > 0 && self.fc.fcid.is_none() {
                self.send_flow_control();
            }
        }
        self.again = false;
        let paused = self.hot.paused_until > now;
        if paused {
            // Nothing is delivered while paused: no-wait requests end now (nats-server).
            m.end_no_wait(&mut out);
        } else {
            let filter = c.filter.read();
            let src = StoreSource::new(c.stream.store.as_ref(), &filter)
                .with_headers_only(self.hot.headers_only);
            let mut sent = 0;
            self.pace_until = None;
            while sent < BATCH {
                if let Some(at) = self.pace(&m, &src, now) {
                    self.pace_until = Some(at);
                    break;
                }
                let push_ok = interest && !self.fc_stalled();
                let Some(d) = m.next(&src, push_ok, now, &mut out) else {
                    break;
                };
                let _ = c.store.update_delivered(d.dseq, d.sseq, d.count, now);
                self.dirty = true;
                sent += 1;
                match src.take(d.sseq) {
                    Ok(msg) => {
                        if self.hot.replay_original && d.count == 1 {
                            self.replay = Some((msg.ts, now));
                        }
                        if self.hot.rate_bps > 0 && d.target == Target::Push {
                            let bits = (msg_size(&msg) as u128) * 8 * 1_000_000_000;
                            let cost = (bits / self.hot.rate_bps as u128).min(i64::MAX as u128);
                            self.rate_next = self.rate_next.max(now).saturating_add(cost as i64);
                        }
                        self.deliver(&d, &msg, now);
                        // `flow_control` ack policy: at `max_ack_pending` nothing more
                        // goes out until a flow-control response acks, so ask for one
                        // (nats-server's `needFlowControl`).
                        if self.hot.ack_by_fc
                            && d.target == Target::Push
                            && self.fc.fcid.is_none()
                            && self.hot.max_ack_pending > 0
                            && m.num_ack_pending() as i64 >= self.hot.max_ack_pending
                        {
                            self.send_flow_control();
                        }
                    }
                    Err(_) => {
                        // Removed between finding and loading: nothing to send; the
                        // machine forgets it when it finds it gone.
                    }
                }
                if let Some(after) = &d.after {
                    self.status(after);
                }
                if self.ctx.stalled.is_some() {
                    break;
                }
            }
            let exceeded = m.take_exceeded();
            if !exceeded.is_empty() {
                self.exceeded_events(exceeded);
            }
            // A full batch means there may be more: go again after looking at events.
            self.again = sent == BATCH && self.ctx.stalled.is_none();
        }
        let pins = m.take_pin_events();
        if !pins.is_empty() {
            self.pin_events(&pins);
        }
        drop(m);
        if !removed.is_empty() {
            self.removed_events(&removed);
        }
        for s in &out {
            self.status(s);
        }
        self.stalled = self.ctx.stalled.take();
        self.ctx.flush();
    }

    /// Whether pacing holds the next delivery: replay-original timing of the next new
    /// message, or the push rate limit. Returns when it may go.
    fn pace(&self, m: &super::machine::Machine, src: &StoreSource<'_>, now: i64) -> Option<i64> {
        // Paced once the deliveries' time at the limit runs more than the burst ahead.
        if self.hot.rate_bps > 0 && self.rate_next.saturating_sub(self.hot.rate_burst) > now {
            return Some(self.rate_next.saturating_sub(self.hot.rate_burst));
        }
        if self.hot.replay_original
            && m.next_is_new()
            && let Some((last_ts, at)) = self.replay
            && let Some((seq, _)) = super::machine::Source::next_matching(src, m.next_sseq())
            && let Some(ts) = src.peek_ts(seq)
        {
            let due = at.saturating_add(ts - last_ts);
            if due > now {
                return Some(due);
            }
        }
        None
    }

    fn fc_stalled(&self) -> bool {
        self.hot.flow_control && self.fc.pbytes > self.fc.maxpb
    }

    /// Publish one message to its target.
    fn deliver(&mut self, d: &Delivery, msg: &StoredMsg, now: i64) {
        let c = &self.c;
        self.reply_buf.clear();
        let _ = write!(
            self.reply_buf,
            "$JS.ACK.{}.{}.{}.{}.{}.{}.{}",
            c.stream.name, c.name, d.count, d.sseq, d.dseq, msg.ts, d.pending
        );
        // A header block of our own when it gets headers: headers-only deliveries carry
        // `Nats-Msg-Size` and no payload; `pinned_client` deliveries name the pin
        // (nats-server adds that header after counting the message against max_bytes).
        // Built in a buffer kept across deliveries.
        let headers_only = self.hot.headers_only;
        let headers = if headers_only || d.pin.is_some() {
            self.hdr_buf.clear();
            if msg.hdrs.is_empty() {
                self.hdr_buf.extend_from_slice(b"NATS/1.0\r\n");
            } else {
                let h = msg.hdrs.strip_suffix(b"\r\n").unwrap_or(&msg.hdrs);
                self.hdr_buf.extend_from_slice(h);
            }
            if headers_only {
                let _ = write!(self.hdr_buf, "Nats-Msg-Size: {}\r\n", msg.payload.len());
            }
            if let Some(pin) = &d.pin {
                let _ = write!(self.hdr_buf, "Nats-Pin-Id: {pin}\r\n");
            }
            self.hdr_buf.extend_from_slice(b"\r\n");
            Some(&self.hdr_buf[..])
        } else {
            (!msg.hdrs.is_empty()).then_some(&msg.hdrs[..])
        };
        let payload: &[u8] = if headers_only { b"" } else { &msg.payload };
        let route: &[u8] = match &d.target {
            Target::Push => &self.hot.deliver,
            Target::Pull(r) => r,
        };
        self.ctx.publish_routed(
            &c.stream.account,
            route,
            Publisher::SERVER,
            PubMsg {
                subject: msg.subject.as_bytes(),
                reply: Some(&self.reply_buf),
                headers,
                payload,
            },
        );
        c.last_delivered.store(now, Ordering::Relaxed);
        if d.target == Target::Push {
            self.last_push = now;
            if self.hot.flow_control {
                let size = (msg_size(msg) + self.reply_buf.len() as u64) as i64;
                self.fc.pbytes += size;
                if self.fc.fcid.is_none() && self.fc.pbytes > self.fc.maxpb / 2 {
                    self.send_flow_control();
                } else if self.fc.fcid.is_some() && self.fc.pbytes - self.fc.fcsz >= self.fc.maxpb {
                    self.fc.fcsz += size;
                }
            }
        }
    }

    fn send_flow_control(&mut self) {
        let c = &self.c;
        let id = format!(
            "$JS.FC.{}.{}.{}",
            c.stream.name,
            c.name,
            rand::random::<u32>() % 10_000
        );
        self.fc.fcsz = self.fc.pbytes;
        self.ctx.publish_routed(
            &c.stream.account,
            &self.hot.deliver,
            Publisher::SERVER,
            PubMsg {
                subject: &self.hot.deliver,
                reply: Some(id.as_bytes()),
                headers: Some(b"NATS/1.0 100 FlowControl Request\r\n\r\n"),
                payload: b"",
            },
        );
        self.fc.fcid = Some(id.into_bytes().into());
    }

    /// Write the cycle's state changes; fsync when an ack waits for confirmation or the
    /// last fsync is [`SYNC_EVERY`] old; then confirm acks and apply retention. A lazy
    /// consumer (an ephemeral's file state) is written at most once per [`SYNC_EVERY`]
    /// (and when it stops), never fsynced here.
    async fn persist(&mut self) {
        let due = self.last_sync.elapsed() >= SYNC_EVERY;
        let lazy = self.c.lazy_state;
        if self.dirty || (self.unsynced && due) || !self.ack_replies.is_empty() {
            let changed = self.dirty || self.unsynced;
            let fsync = self.c.sync_state && (!self.ack_replies.is_empty() || due) && changed;
            let write = !fsync && if lazy { changed && due } else { self.dirty };
            // An fsync, or a lazy consumer's whole-state snapshot (now and then with the
            // log's compaction and its fsyncs): off the runtime's threads.
            let result = if fsync || (write && lazy) {
                let store = self.c.store.clone();
                match tokio::task::spawn_blocking(move || store.commit(fsync)).await {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            } else if write {
                self.c.store.commit(false).map_err(|e| e.to_string())
            } else {
                Ok(())
            };
            match result {
                Ok(()) => {
                    if fsync || (lazy && write) {
                        self.unsynced = false;
                        self.last_sync = tokio::time::Instant::now();
                    } else if self.dirty {
                        self.unsynced = self.c.sync_state || lazy;
                    }
                }
                Err(e) => {
                    if !self.failed {
                        crate::error!(
                            self.ctx.server.log,
                            "JetStream consumer '{} > {} > {}' state could not be saved: {}",
                            self.c.stream.account.name,
                            self.c.stream.name,
                            self.c.name,
                            e
                        );
                    }
                    self.failed = true;
                }
            }
            self.dirty = false;
            // An ephemeral's acks never waited for its state to be written: a failed
            // snapshot (logged above) does not hold their confirmations back.
            if !self.failed || lazy {
                let account = self.c.stream.account.clone();
                for r in self.ack_replies.drain(..) {
                    self.ctx.publish(
                        &account,
                        Publisher::SERVER,
                        PubMsg {
                            subject: &r,
                            reply: None,
                            headers: None,
                            payload: b"",
                        },
                    );
                }
                self.ctx.flush();
            } else {
                self.ack_replies.clear();
            }
        }
        if !self.acked.is_empty() {
            let acked = std::mem::take(&mut self.acked);
            if self.c.stream.retention() != RetentionPolicy::Limits {
                self.c.stream.apply_retention(&acked);
            }
            self.acked = acked;
            self.acked.clear();
        }
    }

    /// How long to sleep before the next cycle.
    fn next_wake(&self) -> Duration {
        if self.again {
            return Duration::ZERO;
        }
        let now = now_nanos();
        let mut at: Option<i64> = self.c.machine.lock().next_deadline();
        let mut consider = |t: i64| at = Some(at.map_or(t, |a| a.min(t)));
        let push = !self.hot.deliver.is_empty();
        if push && self.hot.heartbeat > 0 {
            consider(self.last_push + self.hot.heartbeat);
        }
        if push
            && !super::push_interest(
                &self.c.stream.account.sublist,
                &self.hot.deliver,
                &self.hot.deliver_group,
            )
        {
            consider(now + INTEREST_POLL.as_nanos() as i64);
        }
        if self.hot.inactive > 0 {
            let idle = self.c.last_activity.load(Ordering::Relaxed) + self.hot.inactive;
            consider(idle.max(self.inactive_hold));
        }
        if self.hot.paused_until > now {
            consider(self.hot.paused_until);
        }
        if self.unsynced {
            // Due [`SYNC_EVERY`] after the last sync or write, not after this cycle.
            let since = self.last_sync.elapsed().as_nanos();
            let left = SYNC_EVERY.as_nanos().saturating_sub(since);
            consider(now + i64::try_from(left).unwrap_or(0));
        }
        if let Some(t) = self.pace_until {
            consider(t);
        }
        match at {
            Some(t) => Duration::from_nanos(u64::try_from(t - now).unwrap_or(0)),
            None => Duration::from_secs(3600),
        }
    }

    /// Delete the consumer after `inactive_threshold` without interest or requests.
    /// A pull consumer's worker may still be processing what it took without pulling
    /// again, so, as nats-server's `deleteNotActive`, the threshold counts from the last
    /// moment an ack of a pending delivery is still expected (its delivery plus its ack
    /// wait) when that is later. Returns true when it was deleted.
    fn check_inactive(&mut self) -> bool {
        if self.hot.inactive <= 0 {
            return false;
        }
        let now = now_nanos();
        let last = self.c.last_activity.load(Ordering::Relaxed);
        if now - last < self.hot.inactive || now < self.inactive_hold {
            return false;
        }
        {
            let m = self.c.machine.lock();
            if m.num_waiting() > 0 || self.c.push_bound() {
                drop(m);
                self.c.touch();
                return false;
            }
            if self.hot.deliver.is_empty()
                && let Some(due) = m.last_ack_due()
            {
                let hold = due.saturating_add(self.hot.inactive);
                if hold > now {
                    self.inactive_hold = hold;
                    return false;
                }
            }
        }
        // Files first, then the listing: whoever sees the consumer gone (CONSUMER.NAMES)
        // must find its files gone too, as after a CONSUMER.DELETE's answer.
        self.c.stop();
        self.c.delete_state();
        self.c.stream.remove_consumer(&self.c.name);
        let c = &self.c;
        advisory::send(
            &mut self.ctx,
            &c.stream.account,
            &format!(
                "$JS.EVENT.ADVISORY.CONSUMER.DELETED.{}.{}",
                c.stream.name, c.name
            ),
            &advisory::Action {
                typed: advisory::Typed::new(advisory::CONSUMER_ACTION),
                stream: &c.stream.name,
                consumer: Some(&c.name),
                action: "delete",
                domain: c.stream.domain(),
            },
        );
        self.ctx.flush();
        true
    }
}
