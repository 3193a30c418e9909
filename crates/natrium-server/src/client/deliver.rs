//! Delivery: routing one message through an account's subject index to its subscribers.
//!
//! A [`DeliveryCtx`] is what a publisher carries while it delivers: the receivers whose
//! writers must be woken once the batch is done, the first receiver that wants the
//! publisher to slow down, and the counters to publish. Client readers keep one for their
//! whole life; server-internal publishers (JetStream, the system account, service imports)
//! make one, publish, and [`DeliveryCtx::flush`] it.
//!
//! Internal subscribers receive the context too, so a service import can route a request
//! into another account and have its deliveries batched with the publisher's.

use super::ClientConn;
use super::outbound::Delivery;
use super::subscription::{SubTarget, Subscription};
use crate::account::Account;
use crate::protocol::PubMsg;
use crate::protocol::write;
use crate::server::ServerShared;
use crate::sublist::SublistResult;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// How deep internal handlers may re-publish (imports into imports) before we stop a loop.
const MAX_DEPTH: u8 = 8;

/// Who is publishing, for echo suppression and no-responders.
#[derive(Clone, Copy)]
pub struct Publisher<'a> {
    /// The publishing connection, if a client.
    pub conn: Option<&'a Arc<ClientConn>>,
    /// Whether the publisher receives its own messages.
    pub echo: bool,
}

impl Publisher<'_> {
    /// The server itself.
    pub const SERVER: Publisher<'static> = Publisher {
        conn: None,
        echo: true,
    };
}

/// State carried through one batch of deliveries.
pub struct DeliveryCtx {
    /// The server.
    pub server: Arc<ServerShared>,
    /// Receivers whose writers must be woken after the batch.
    pcd: Vec<Arc<ClientConn>>,
    /// A receiver past 3/4 of its outbound limit: the publisher should pause.
    pub stalled: Option<Arc<ClientConn>>,
    /// Messages delivered in this batch.
    pub out_msgs: u64,
    /// Bytes delivered in this batch.
    pub out_bytes: u64,
    /// Outbound limit per receiver.
    pub max_pending: usize,
    /// Cheap random state for queue member selection.
    rng: u64,
    /// Internal re-publish depth.
    depth: u8,
    /// Whether to record [`DeliveryCtx::barriers`] (client readers only).
    pub track_barriers: bool,
    /// Writes this publisher queued into JetStream streams and not yet known to be done:
    /// (stream identity, the stream's "processed" counter, the number to wait for). A
    /// PING waits for them before its PONG, so "publish, flush, read" sees the message,
    /// as with nats-server, which stores inline.
    pub barriers: Vec<(usize, tokio::sync::watch::Receiver<u64>, u64)>,
}

impl DeliveryCtx {
    /// A context for one publisher.
    pub fn new(server: Arc<ServerShared>, seed: u64) -> Self {
        let max_pending = server.opts().max_pending.max(0) as usize;
        DeliveryCtx {
            server,
            pcd: Vec::new(),
            stalled: None,
            out_msgs: 0,
            out_bytes: 0,
            max_pending,
            rng: seed | 1,
            depth: 0,
            track_barriers: false,
            barriers: Vec::new(),
        }
    }

    /// The barriers not yet reached (dropping those that are).
    pub fn open_barriers(&mut self) -> Vec<(tokio::sync::watch::Receiver<u64>, u64)> {
        self.barriers.retain(|(_, rx, n)| *rx.borrow() < *n);
        self.barriers
            .iter()
            .map(|(_, rx, n)| (rx.clone(), *n))
            .collect()
    }

    /// A context for a client's reader: records stream write barriers for its PINGs.
    pub fn for_client(server: Arc<ServerShared>, seed: u64) -> Self {
        let mut ctx = Self::new(server, seed);
        ctx.track_barriers = true;
        ctx
    }

    /// Remember that this publisher's write number `n` into the queue identified by `id`
    /// must be processed before its next PONG.
    pub fn add_barrier(
        &mut self,
        id: usize,
        n: u64,
        subscribe: impl FnOnce() -> tokio::sync::watch::Receiver<u64>,
    ) {
        if !self.track_barriers {
            return;
        }
        match self.barriers.iter_mut().find(|b| b.0 == id) {
            Some(b) => b.2 = b.2.max(n),
            None => self.barriers.push((id, subscribe(), n)),
        }
    }

    /// Wake every receiver that got data and publish the counters.
    pub fn flush(&mut self) {
        for c in self.pcd.drain(..) {
            c.writer_wake.notify_one();
        }
        if self.out_msgs > 0 {
            self.server.stats.add_out(self.out_msgs, self.out_bytes);
            self.out_msgs = 0;
            self.out_bytes = 0;
        }
    }

    fn next_rand(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// Publish into `account`, matching through its index. Returns whether anyone got it.
    pub fn publish(
        &mut self,
        account: &Arc<Account>,
        publisher: Publisher<'_>,
        m: PubMsg<'_>,
    ) -> bool {
        if self.depth >= MAX_DEPTH {
            return false;
        }
        let result = account.sublist.match_subject(m.subject);
        self.route(account, &result, publisher, m.subject, m)
    }

    /// [`DeliveryCtx::publish`] to a subject published to once (a reply inbox): the match
    /// is not kept in the index's cache ([`crate::sublist::Sublist::match_subject_once`]).
    pub fn publish_once(
        &mut self,
        account: &Arc<Account>,
        publisher: Publisher<'_>,
        m: PubMsg<'_>,
    ) -> bool {
        if self.depth >= MAX_DEPTH {
            return false;
        }
        let result = account.sublist.match_subject_once(m.subject);
        self.route(account, &result, publisher, m.subject, m)
    }

    /// Publish into `account`, matching `route` but delivering `m.subject` as the message's
    /// subject: how JetStream sends a stored message to a pull request's inbox or a push
    /// consumer's deliver subject while clients see the original subject.
    pub fn publish_routed(
        &mut self,
        account: &Arc<Account>,
        route: &[u8],
        publisher: Publisher<'_>,
        m: PubMsg<'_>,
    ) -> bool {
        if self.depth >= MAX_DEPTH {
            return false;
        }
        let result = account.sublist.match_subject(route);
        self.route(account, &result, publisher, route, m)
    }

    /// Deliver `m` to the subscriptions in `result` (one member per queue group), which
    /// matched `routed_by` (`m.subject` but for routed JetStream deliveries).
    pub fn route(
        &mut self,
        account: &Arc<Account>,
        result: &SublistResult<Subscription>,
        publisher: Publisher<'_>,
        routed_by: &[u8],
        m: PubMsg<'_>,
    ) -> bool {
        let mut delivered = false;
        for sub in &result.psubs {
            delivered |= self.deliver_to(account, sub, publisher, routed_by, m);
        }
        for group in &result.qsubs {
            if group.is_empty() {
                continue;
            }
            // Start at a random member and skip members that cannot take it, as nats-server.
            let start = (self.next_rand() % group.len() as u64) as usize;
            for i in 0..group.len() {
                let sub = &group[(start + i) % group.len()];
                if self.deliver_to(account, sub, publisher, routed_by, m) {
                    delivered = true;
                    break;
                }
            }
        }
        delivered
    }

    /// Deliver to one subscription, honouring echo, permissions and auto-unsubscribe.
    fn deliver_to(
        &mut self,
        account: &Arc<Account>,
        sub: &Arc<Subscription>,
        publisher: Publisher<'_>,
        routed_by: &[u8],
        m: PubMsg<'_>,
    ) -> bool {
        if sub.is_closed() {
            return false;
        }
        let target = match &sub.target {
            SubTarget::Client(c) => c,
            SubTarget::Internal(h) => {
                if !count_and_check_max(account, sub) {
                    return false;
                }
                self.depth += 1;
                let handled = h
                    .clone()
                    .handle(self, account, sub, publisher, routed_by, m);
                self.depth -= 1;
                return handled;
            }
        };
        if !publisher.echo && publisher.conn.is_some_and(|p| Arc::ptr_eq(p, target)) {
            return false;
        }
        if target.has_delivery_checks()
            && !target.delivery_allowed(&sub.subject, sub.queue.as_deref(), m)
        {
            return false;
        }
        if !count_and_check_max(account, sub) {
            return false;
        }
        let d = target.deliver(
            m.subject,
            &sub.sid,
            m.reply,
            m.headers,
            m.payload,
            self.max_pending,
        );
        match d {
            Delivery::Queued { wake, stall } => {
                if wake {
                    self.pcd.push(target.clone());
                }
                if stall
                    && self.stalled.is_none()
                    && !publisher.conn.is_some_and(|p| Arc::ptr_eq(p, target))
                {
                    self.stalled = Some(target.clone());
                }
            }
            Delivery::SlowConsumer => {
                self.server.slow_consumer(target);
                return false;
            }
            Delivery::Dropped => return false,
        }
        self.out_msgs += 1;
        self.out_bytes += m.total_len() as u64;
        let max = sub.max.load(Ordering::Relaxed);
        if max > 0 && sub.delivered.load(Ordering::Relaxed) >= max {
            remove_sub(account, sub);
        }
        true
    }

    /// Answer a request nobody received with a 503 status on the requester's own reply
    /// subscription, as nats-server does for `no_responders` clients.
    pub fn no_responders(
        &mut self,
        account: &Account,
        conn: &Arc<ClientConn>,
        subject: &[u8],
        reply: &[u8],
    ) {
        let r = account.sublist.match_subject(reply);
        let Some(sub) = r
            .psubs
            .iter()
            .find(|s| s.client_conn().is_some_and(|c| Arc::ptr_eq(c, conn)))
        else {
            return;
        };
        let hdr = write::no_responders_header(subject);
        // Written as protocol, not as a delivery: nats-server counts this status in no
        // message statistics (neither the connection's `/connz` out_msgs nor `/varz`).
        let mut line = Vec::with_capacity(64 + reply.len() + hdr.len());
        write::append_msg(&mut line, reply, &sub.sid, None, Some(&hdr), b"");
        conn.send_proto(&line);
    }

    /// Queue a writer wake-up for `conn` (after writing to it directly).
    pub fn wake_later(&mut self, conn: Arc<ClientConn>) {
        self.pcd.push(conn);
    }
}

/// Count a delivery against the subscription; false if it is past its auto-unsubscribe
/// limit (the subscription is then removed).
fn count_and_check_max(account: &Account, sub: &Arc<Subscription>) -> bool {
    let n = sub.delivered.fetch_add(1, Ordering::Relaxed) + 1;
    let max = sub.max.load(Ordering::Relaxed);
    if max > 0 && n > max {
        remove_sub(account, sub);
        return false;
    }
    true
}

/// Remove one subscription from its account index and its client's table.
pub fn remove_sub(account: &Account, sub: &Arc<Subscription>) {
    if sub.closed.swap(true, Ordering::AcqRel) {
        return;
    }
    account
        .sublist
        .remove(&sub.subject, sub.queue.as_deref(), sub);
    if let Some(c) = sub.client_conn() {
        let mut subs = c.subs.lock();
        if subs.get(&sub.sid).is_some_and(|s| Arc::ptr_eq(s, sub)) {
            subs.remove(&sub.sid);
        }
    }
}
