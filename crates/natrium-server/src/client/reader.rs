//! The reader task: reads the socket, parses ops, and runs one handler per op.
//!
//! Why publishing happens here: the reader that parsed a `PUB` matches it against the
//! account's subject index and appends the `MSG` straight into each receiver's outbound
//! buffer. No queue sits between publisher and receivers, so a message costs one match (a
//! hash lookup in this reader's own cache, see [`L1Cache`]) and one copy per receiver.
//!
//! Batching: everything parsed from one read is handled before the receivers' writers are
//! woken (the pending-flush list, `pcd`), and counters are published to shared atomics once
//! per read, so a burst of small messages costs one wake-up per receiver, not one per
//! message.

use super::outbound::Delivery;
use super::subscription::{InMsg, SubTarget, Subscription};
use super::{ClientConn, CloseReason, mono_nanos, writer};
use crate::account::Account;
use crate::protocol::connect::ConnectOptions;
use crate::protocol::write;
use crate::protocol::{ClientOp, ParseError, Parser, ParserLimits, PubMsg};
use crate::server::ServerShared;
use crate::sublist::{SublistResult, is_valid_literal_subject, is_valid_subject};
use crate::{debug, trace};
use rustc_hash::FxHashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Initial and minimum read buffer size.
const MIN_READ: usize = 4 * 1024;
/// Largest read buffer we grow to for ordinary traffic (large payloads reserve exactly).
const MAX_READ: usize = 64 * 1024;
/// Entries kept in a reader's private match cache.
const L1_MAX: usize = 512;

/// A reader's private cache of subject → match result, valid for one sublist generation.
/// It saves taking the shared index's lock for every message on a hot subject.
struct L1Cache {
    /// Sublist generation the entries belong to.
    genid: u64,
    /// Cached results.
    map: FxHashMap<Box<[u8]>, Arc<SublistResult<Subscription>>>,
}

impl L1Cache {
    fn lookup(&mut self, account: &Account, subject: &[u8]) -> Arc<SublistResult<Subscription>> {
        let genid = account.sublist.genid();
        if genid != self.genid {
            self.map.clear();
            self.genid = genid;
        } else if let Some(r) = self.map.get(subject) {
            return r.clone();
        }
        let r = account.sublist.match_subject(subject);
        if self.map.len() >= L1_MAX {
            self.map.clear();
        }
        self.map.insert(subject.into(), r.clone());
        r
    }
}

/// Per-connection state only the reader touches.
struct Reader {
    /// The connection.
    conn: Arc<ClientConn>,
    /// The server.
    server: Arc<ServerShared>,
    /// The parser.
    parser: Parser,
    /// Account the client is bound to.
    account: Arc<Account>,
    /// CONNECT options (defaults until CONNECT arrives: verbose and pedantic, as nats-server).
    copts: ConnectOptions,
    /// Whether auth is required for this connection.
    auth_required: bool,
    /// The connect-info INFO has been sent after the first PONG.
    first_pong_sent: bool,
    /// Private match cache.
    l1: L1Cache,
    /// Receivers whose writers must be woken after this batch.
    pcd: Vec<Arc<ClientConn>>,
    /// Messages and bytes received in this batch, published to atomics once per batch.
    batch_in: (u64, u64),
    /// Messages and bytes delivered in this batch (for the server totals).
    batch_out: (u64, u64),
    /// Cheap random state for queue member selection.
    rng: u64,
    /// Outbound limit for receivers, in bytes.
    max_pending: usize,
    /// A receiver past 3/4 of its outbound limit; we pause before parsing more.
    stalled: Option<Arc<ClientConn>>,
    /// Time spent stalled since the last socket read (capped, as in nats-server).
    stall_total: Duration,
}

/// Shortest pause for a stalled receiver.
const STALL_MIN: Duration = Duration::from_millis(2);
/// Pause when the receiver is already at its limit.
const STALL_MAX: Duration = Duration::from_millis(5);
/// Most a producer is paused per socket read.
const STALL_TOTAL: Duration = Duration::from_millis(10);

/// How handling an op ended.
enum Flow {
    /// Keep reading.
    Continue,
    /// Stop: the connection is closing.
    Close,
}

/// Run a connection: send INFO, start the writer, read until closed, then clean up.
pub async fn run(conn: Arc<ClientConn>, stream: TcpStream, server: Arc<ServerShared>) {
    let _ = stream.set_nodelay(true);
    let (mut rd, wr) = stream.into_split();
    let opts = server.opts();
    let auth_required = opts.auth.required();
    let auth_deadline =
        auth_required.then(|| tokio::time::Instant::now() + opts.effective_auth_timeout());
    let limits = ParserLimits {
        max_control_line: opts.max_control_line.max(0) as usize,
        max_payload: opts.max_payload,
        headers: false,
    };
    let max_pending = opts.max_pending.max(0) as usize;
    drop(opts);

    let info = server.client_info_json(&conn, false);
    let mut line = Vec::with_capacity(info.len() + 8);
    write::append_info(&mut line, info.as_bytes());
    conn.send_proto(&line);

    let writer = tokio::spawn(writer::run(conn.clone(), wr, server.clone(), auth_deadline));
    debug!(
        server.log,
        "{} - cid:{} - Client connection created", conn.addr, conn.cid
    );

    let mut r = Reader {
        account: server.global_account(),
        conn: conn.clone(),
        parser: Parser::new(limits),
        copts: ConnectOptions::parse(b"{}").unwrap_or_else(|_| unreachable!("static JSON")),
        auth_required,
        first_pong_sent: false,
        l1: L1Cache {
            genid: u64::MAX,
            map: FxHashMap::default(),
        },
        pcd: Vec::new(),
        batch_in: (0, 0),
        batch_out: (0, 0),
        rng: (conn.cid ^ 0x9E37_79B9_7F4A_7C15) | 1,
        max_pending,
        stalled: None,
        stall_total: Duration::ZERO,
        server: server.clone(),
    };
    let reason = r.read_loop(&mut rd).await;
    conn.close(reason, true);
    r.remove_all_subs();
    let _ = writer.await;
    server.client_closed(&conn);
}

impl Reader {
    async fn read_loop(&mut self, rd: &mut tokio::net::tcp::OwnedReadHalf) -> CloseReason {
        let mut buf: Vec<u8> = Vec::with_capacity(MIN_READ);
        let mut read_size = MIN_READ;
        loop {
            if let Some(need) = self.parser.bytes_needed()
                && need > buf.capacity()
            {
                buf.reserve(need - buf.len());
            }
            if buf.capacity() - buf.len() < read_size / 2 {
                buf.reserve(read_size);
            }
            let n = match rd.read_buf(&mut buf).await {
                Ok(0) => return self.conn.closing().unwrap_or(CloseReason::ClientClosed),
                Ok(n) => n,
                Err(_) => return self.conn.closing().unwrap_or(CloseReason::ReadError),
            };
            // Grow the read size for busy connections, shrink it for quiet ones.
            if n >= read_size && read_size < MAX_READ {
                read_size *= 2;
            } else if n < read_size / 4 && read_size > MIN_READ {
                read_size /= 2;
            }
            self.conn.last_in.store(mono_nanos(), Ordering::Relaxed);
            self.stall_total = Duration::ZERO;

            // Handle everything buffered. A stalled receiver pauses us mid-buffer.
            loop {
                let mut pos = 0;
                let mut flow = Flow::Continue;
                while pos < buf.len() {
                    match self.parser.parse(&buf[pos..]) {
                        Ok(Some(parsed)) => {
                            pos += parsed.len;
                            flow = self.handle(parsed.op);
                            if matches!(flow, Flow::Close) || self.stalled.is_some() {
                                break;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            self.parse_error(&e);
                            flow = Flow::Close;
                            break;
                        }
                    }
                }
                buf.drain(..pos);
                self.end_batch();
                if matches!(flow, Flow::Close) {
                    return self
                        .conn
                        .closing()
                        .unwrap_or(CloseReason::ProtocolViolation);
                }
                match self.stalled.take() {
                    Some(receiver) => self.stall_wait(&receiver).await,
                    None => break,
                }
            }
            if buf.capacity() > MAX_READ * 4
                && buf.len() < MIN_READ
                && self.parser.bytes_needed().is_none()
            {
                buf.shrink_to(MIN_READ);
            }
        }
    }

    /// Pause briefly so a receiver past 3/4 of its outbound limit can drain, as
    /// nats-server stalls fast producers. Bounded per read by [`STALL_TOTAL`].
    async fn stall_wait(&mut self, receiver: &Arc<ClientConn>) {
        if self.stall_total >= STALL_TOTAL {
            return;
        }
        let notified = receiver.drained.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if !receiver.prepare_stall(self.max_pending) {
            return;
        }
        let full = receiver.pending_bytes() >= self.max_pending;
        let ttl = if full { STALL_MAX } else { STALL_MIN }.min(STALL_TOTAL - self.stall_total);
        let started = tokio::time::Instant::now();
        let _ = tokio::time::timeout(ttl, notified).await;
        self.stall_total += started.elapsed();
    }

    /// Wake the writers of everyone who got data, and publish the batch's counters.
    fn end_batch(&mut self) {
        for c in self.pcd.drain(..) {
            c.writer_wake.notify_one();
        }
        let (m, b) = std::mem::take(&mut self.batch_in);
        if m > 0 {
            self.conn.in_msgs.fetch_add(m, Ordering::Relaxed);
            self.conn.in_bytes.fetch_add(b, Ordering::Relaxed);
            self.server.stats.add_in(m, b);
        }
        let (m, b) = std::mem::take(&mut self.batch_out);
        if m > 0 {
            self.server.stats.add_out(m, b);
        }
    }

    fn parse_error(&mut self, e: &ParseError) {
        let reason = match e {
            ParseError::UnknownOp => CloseReason::ParseError,
            ParseError::ControlLineTooLong { .. } => CloseReason::MaxControlLineExceeded,
            ParseError::MaxPayload { .. } => CloseReason::MaxPayloadExceeded,
            ParseError::BadArgs { .. } | ParseError::HeadersNotSupported => {
                CloseReason::ProtocolViolation
            }
        };
        if !self.conn.is_connected()
            && self.auth_required
            && !matches!(e, ParseError::ControlLineTooLong { .. })
        {
            // Before CONNECT with auth on, anything else is an authorization violation.
            self.conn.err_and_close(
                "Authorization Violation",
                CloseReason::AuthenticationViolation,
            );
            return;
        }
        self.server.log_client_error(&self.conn, &e.to_string());
        match e.err_text() {
            Some(text) => self.conn.err_and_close(text, reason),
            None => self.conn.close(reason, true),
        }
    }

    fn handle(&mut self, op: ClientOp<'_>) -> Flow {
        if self.auth_required && !self.conn.is_connected() && !matches!(op, ClientOp::Connect(_)) {
            self.conn.err_and_close(
                "Authorization Violation",
                CloseReason::AuthenticationViolation,
            );
            return Flow::Close;
        }
        if self.server.log.trace_enabled() {
            self.trace_op(&op);
        }
        match op {
            ClientOp::Connect(json) => self.on_connect(json),
            ClientOp::Pub(m) => self.on_pub(m),
            ClientOp::Sub {
                subject,
                queue,
                sid,
            } => self.on_sub(subject, queue, sid),
            ClientOp::Unsub { sid, max } => self.on_unsub(sid, max),
            ClientOp::Ping => self.on_ping(),
            ClientOp::Pong => self.on_pong(),
            ClientOp::Info(json) => {
                // nats-server decodes and ignores a client's INFO; bad JSON closes.
                if serde_json::from_slice::<serde_json::Value>(json).is_err() {
                    self.conn.close(CloseReason::ProtocolViolation, true);
                    return Flow::Close;
                }
                Flow::Continue
            }
            ClientOp::Ok => Flow::Continue,
            ClientOp::Err(text) => {
                self.server.log_client_error(
                    &self.conn,
                    &format!("Client Error {}", String::from_utf8_lossy(text)),
                );
                self.conn.close(CloseReason::ParseError, true);
                Flow::Close
            }
        }
    }

    fn trace_op(&self, op: &ClientOp<'_>) {
        let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let text = match op {
            ClientOp::Connect(j) => format!("CONNECT {}", s(j)),
            ClientOp::Pub(m) => format!(
                "{} {} {} {}",
                if m.headers.is_some() { "HPUB" } else { "PUB" },
                s(m.subject),
                m.reply.map(s).unwrap_or_default(),
                m.total_len()
            ),
            ClientOp::Sub {
                subject,
                queue,
                sid,
            } => {
                format!(
                    "SUB {} {} {}",
                    s(subject),
                    queue.map(s).unwrap_or_default(),
                    s(sid)
                )
            }
            ClientOp::Unsub { sid, max } => format!("UNSUB {} {}", s(sid), max.unwrap_or(0)),
            ClientOp::Ping => "PING".into(),
            ClientOp::Pong => "PONG".into(),
            ClientOp::Info(j) => format!("INFO {}", s(j)),
            ClientOp::Ok => "+OK".into(),
            ClientOp::Err(t) => format!("-ERR {}", s(t)),
        };
        trace!(
            self.server.log,
            "{} - cid:{} - \"<<- [{}]\"", self.conn.addr, self.conn.cid, text
        );
    }

    fn ok(&self) {
        if self.copts.verbose {
            self.conn.send_proto(write::OK);
        }
    }

    // ---- CONNECT ----------------------------------------------------------------------

    fn on_connect(&mut self, json: &[u8]) -> Flow {
        let copts = match ConnectOptions::parse(json) {
            Ok(c) => c,
            Err(e) => {
                self.server
                    .log_client_error(&self.conn, &format!("Bad CONNECT JSON: {e}"));
                self.conn.close(CloseReason::ProtocolViolation, true);
                return Flow::Close;
            }
        };
        let opts = self.server.opts();
        if self.auth_required && !crate::auth::check_simple(&opts.auth, &copts) {
            self.server
                .log_auth_failure(&self.conn, copts.user.as_deref());
            self.conn.err_and_close(
                "Authorization Violation",
                CloseReason::AuthenticationViolation,
            );
            return Flow::Close;
        }
        if copts.new_account || copts.account.as_deref().is_some_and(|a| !a.is_empty()) {
            self.conn.err_and_close(
                "Authorization Violation",
                CloseReason::AuthenticationViolation,
            );
            return Flow::Close;
        }
        if !(0..=1).contains(&copts.protocol) {
            self.conn.err_and_close(
                "invalid client protocol",
                CloseReason::BadClientProtocolVersion,
            );
            return Flow::Close;
        }
        let headers = copts.headers && !opts.no_header_support;
        if copts.no_responders && !headers {
            self.conn.err_and_close(
                "no responders requires headers support",
                CloseReason::NoRespondersRequiresHeaders,
            );
            return Flow::Close;
        }
        drop(opts);
        // A second CONNECT re-authenticates and drops existing subscriptions.
        if self.conn.is_connected() {
            self.remove_all_subs();
        }
        self.conn.set_headers(headers);
        self.conn
            .proto_info
            .store(copts.protocol >= 1, Ordering::Relaxed);
        {
            let mut meta = self.conn.meta.lock();
            meta.name = copts.name.clone();
            meta.lang = copts.lang.clone();
            meta.version = copts.version.clone();
            meta.user = copts.user.clone().filter(|u| !u.is_empty());
            meta.account = self.account.name.clone();
            // nats-server's first RTT estimate: accept to CONNECT; PONGs refine it.
            if meta.rtt_nanos == 0 {
                meta.rtt_nanos = mono_nanos().saturating_sub(self.conn.start_mono).max(1);
            }
        }
        let mut limits = self.parser.limits();
        limits.headers = headers;
        self.parser.set_limits(limits);
        self.copts = copts;
        self.conn.set_connected();
        self.ok();
        Flow::Continue
    }

    // ---- PING / PONG --------------------------------------------------------------------

    fn on_ping(&mut self) -> Flow {
        self.conn.send_proto(write::PONG);
        if self.conn.is_connected() && !self.first_pong_sent {
            self.first_pong_sent = true;
            if self.copts.protocol >= 1 {
                let info = self.server.client_info_json(&self.conn, true);
                let mut line = Vec::with_capacity(info.len() + 8);
                write::append_info(&mut line, info.as_bytes());
                self.conn.send_proto(&line);
            }
        }
        Flow::Continue
    }

    fn on_pong(&mut self) -> Flow {
        self.conn.pings_out.store(0, Ordering::Relaxed);
        let sent = self.conn.ping_sent_at.swap(0, Ordering::Relaxed);
        if sent != 0 {
            let rtt = mono_nanos().saturating_sub(sent).max(1);
            self.conn.meta.lock().rtt_nanos = rtt;
        }
        Flow::Continue
    }

    // ---- SUB / UNSUB --------------------------------------------------------------------

    fn on_sub(&mut self, subject: &[u8], queue: Option<&[u8]>, sid: &[u8]) -> Flow {
        let opts = self.server.opts();
        if opts.max_sub_tokens > 0
            && subject.split(|&b| b == b'.').count() as i64 > opts.max_sub_tokens
        {
            self.conn.send_err(&format!(
                "Permissions Violation for Subscription to {:?}, too many tokens",
                String::from_utf8_lossy(subject)
            ));
            return Flow::Continue;
        }
        let max_subs = opts.max_subscriptions;
        drop(opts);
        let mut subs = self.conn.subs.lock();
        if max_subs > 0 && subs.len() as i64 >= max_subs {
            drop(subs);
            self.server
                .log_client_error(&self.conn, "maximum subscriptions exceeded");
            self.conn.send_err("maximum subscriptions exceeded");
            return Flow::Continue;
        }
        if subs.contains_key(sid) {
            drop(subs);
            self.ok();
            return Flow::Continue;
        }
        if !is_valid_subject(subject) || queue.is_some_and(|q| q.is_empty()) {
            drop(subs);
            self.conn.send_err("Invalid Subject");
            return Flow::Continue;
        }
        let sub = Arc::new(Subscription::client(self.conn.clone(), subject, queue, sid));
        if self
            .account
            .sublist
            .insert(subject, queue, sub.clone())
            .is_err()
        {
            drop(subs);
            self.conn.send_err("Invalid Subject");
            return Flow::Continue;
        }
        subs.insert(sid.into(), sub);
        drop(subs);
        self.ok();
        Flow::Continue
    }

    fn on_unsub(&mut self, sid: &[u8], max: Option<i64>) -> Flow {
        let sub = self.conn.subs.lock().get(sid).cloned();
        if let Some(sub) = sub {
            let delivered = sub.delivered.load(Ordering::Relaxed);
            match max {
                Some(m) if m > 0 && m as u64 > delivered => {
                    sub.max.store(m as u64, Ordering::Relaxed);
                }
                _ => remove_sub(&self.account, &sub),
            }
        }
        self.ok();
        Flow::Continue
    }

    fn remove_all_subs(&mut self) {
        let subs: Vec<Arc<Subscription>> = self.conn.subs.lock().drain().map(|(_, s)| s).collect();
        for s in &subs {
            s.closed.store(true, Ordering::Release);
        }
        self.account.sublist.remove_batch(
            subs.into_iter()
                .map(|s| (s.subject.clone(), s.queue.clone(), s)),
        );
    }

    // ---- PUB ----------------------------------------------------------------------------

    fn on_pub(&mut self, m: PubMsg<'_>) -> Flow {
        self.batch_in.0 += 1;
        self.batch_in.1 += m.total_len() as u64;
        if self.copts.pedantic && !is_valid_literal_subject(m.subject) {
            // nats-server reports it but still routes the message (verified on 2.15.1).
            self.conn.send_err("Invalid Publish Subject");
        }
        self.ok();
        let delivered = self.route(m);
        if !delivered
            && let Some(reply) = m.reply
            && self.copts.no_responders
        {
            self.no_responders(m.subject, reply);
        }
        Flow::Continue
    }

    /// Deliver a published message to every matching subscription (one member per queue
    /// group). Returns whether anyone received it.
    fn route(&mut self, m: PubMsg<'_>) -> bool {
        let result = self.l1.lookup(&self.account, m.subject);
        let mut delivered = false;
        for sub in &result.psubs {
            delivered |= self.deliver_to(sub, m);
        }
        for group in &result.qsubs {
            if group.is_empty() {
                continue;
            }
            // Start at a random member; skip members that cannot take it (closed, or our own
            // when echo is off), as nats-server does.
            let start = (self.next_rand() % group.len() as u64) as usize;
            for i in 0..group.len() {
                let sub = &group[(start + i) % group.len()];
                if self.deliver_to(sub, m) {
                    delivered = true;
                    break;
                }
            }
        }
        delivered
    }

    fn next_rand(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// Deliver to one subscription, honouring echo and auto-unsubscribe.
    fn deliver_to(&mut self, sub: &Arc<Subscription>, m: PubMsg<'_>) -> bool {
        if sub.is_closed() {
            return false;
        }
        let target = match &sub.target {
            SubTarget::Client(c) => c,
            SubTarget::Internal(h) => {
                if !self.count_and_check_max(sub) {
                    return false;
                }
                h.handle(InMsg {
                    subject: m.subject,
                    reply: m.reply,
                    headers: m.headers,
                    payload: m.payload,
                });
                return true;
            }
        };
        if !self.copts.echo && Arc::ptr_eq(target, &self.conn) {
            return false;
        }
        if !self.count_and_check_max(sub) {
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
                if stall && self.stalled.is_none() && !Arc::ptr_eq(target, &self.conn) {
                    self.stalled = Some(target.clone());
                }
            }
            Delivery::SlowConsumer => {
                self.server.slow_consumer(target);
                return false;
            }
            Delivery::Dropped => return false,
        }
        self.batch_out.0 += 1;
        self.batch_out.1 += m.total_len() as u64;
        let max = sub.max.load(Ordering::Relaxed);
        if max > 0 && sub.delivered.load(Ordering::Relaxed) >= max {
            remove_sub(&self.account, sub);
        }
        true
    }

    /// Count a delivery against the subscription; false if it is past its auto-unsubscribe
    /// limit (the subscription is then removed).
    fn count_and_check_max(&self, sub: &Arc<Subscription>) -> bool {
        let n = sub.delivered.fetch_add(1, Ordering::Relaxed) + 1;
        let max = sub.max.load(Ordering::Relaxed);
        if max > 0 && n > max {
            remove_sub(&self.account, sub);
            return false;
        }
        true
    }

    /// Answer a request nobody received with a 503 status on the requester's own reply
    /// subscription.
    fn no_responders(&mut self, subject: &[u8], reply: &[u8]) {
        let r = self.account.sublist.match_subject(reply);
        let Some(sub) = r
            .psubs
            .iter()
            .find(|s| s.client_conn().is_some_and(|c| Arc::ptr_eq(c, &self.conn)))
        else {
            return;
        };
        let hdr = write::no_responders_header(subject);
        if let Delivery::Queued { wake: true, .. } =
            self.conn
                .deliver(reply, &sub.sid, None, Some(&hdr), b"", usize::MAX)
        {
            self.pcd.push(self.conn.clone());
        }
    }
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
