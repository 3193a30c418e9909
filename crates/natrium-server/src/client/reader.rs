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

use super::deliver::{DeliveryCtx, Publisher};
use super::subscription::Subscription;
use super::transport::{self, ConnReader, ConnWriter};
use super::{ClientConn, CloseReason, mono_nanos, writer};
use crate::account::Account;
use crate::auth::permissions::ClientPerms;
use crate::auth::{ConnKind, Identity, callout};
use crate::protocol::connect::ConnectOptions;
use crate::protocol::write;
use crate::protocol::{ClientOp, ParseError, Parser, ParserLimits, PubMsg};
use crate::server::ServerShared;
use crate::sublist::{SublistResult, is_valid_literal_subject, is_valid_subject};
use crate::{debug, error, trace};
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
/// Entries kept in a reader's publish-permission cache.
const PUB_CACHE_MAX: usize = 1024;

/// Reply subjects clients may not use: service-import replies (`_R_.`), JetStream acks
/// and gateway replies, as nats-server's `isReservedReply`.
fn is_reserved_reply(r: &[u8]) -> bool {
    r.starts_with(b"_R_.")
        || (r.len() > 8 && r.starts_with(b"$JS.ACK."))
        || (r.len() > 4 && r.starts_with(b"$GR."))
}

/// Go's `%q` for subjects in error texts: double quotes, with `"` and `\` escaped and
/// non-printable bytes as `\xNN`.
pub fn go_quote(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for &b in s {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\r' => out.push_str("\\r"),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}

/// Start of a JetStream ack subject (`$JS.ACK.<stream>.<consumer>.<numbers>`).
const ACK_SUBJECT_PREFIX: &[u8] = b"$JS.ACK.";

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
        if subject.starts_with(ACK_SUBJECT_PREFIX) {
            // An ack subject names one delivery and is not published to again: caching
            // it here or in the index would cost a key allocation and an eviction per ack.
            return account.sublist.match_subject_once(subject);
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
    /// The server's options generation the parser limits were taken from (a reload
    /// bumps it: see `refresh_limits`).
    opts_gen: u64,
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
    /// The CONNECT object as received so far: a later CONNECT is merged onto it (fields
    /// it leaves out keep their earlier values), as nats-server decodes it onto the
    /// options it has.
    connect_json: Option<serde_json::Map<String, serde_json::Value>>,
    /// Whether auth is required for this connection (no anonymous access).
    auth_required: bool,
    /// Whether any credentials are configured (then a `no_auth_user` may apply).
    auth_configured: bool,
    /// The authenticated user's permissions.
    perms: Option<Arc<ClientPerms>>,
    /// Publish permission results by subject (static rules only).
    pub_cache: FxHashMap<Box<[u8]>, bool>,
    /// The account's subject mappings, refreshed when the options change (a reload or
    /// an account push) and on CONNECT.
    mappings: Option<Arc<crate::subject_mapping::Mappings>>,
    /// Effective subscription limit (server, account and user), -1 = none.
    max_subs: i64,
    /// The user's own payload limit (a user JWT's `payload`; -1: none).
    user_max_payload: i64,
    /// The connect-info INFO has been sent after the first PONG.
    first_pong_sent: bool,
    /// Private match cache.
    l1: L1Cache,
    /// Delivery state: receivers to wake, the stalled receiver, outbound counters.
    ctx: DeliveryCtx,
    /// Messages and bytes received in this batch, published to atomics once per batch.
    batch_in: (u64, u64),
    /// CONNECT's credentials were refused: the close gets a disconnect event anyway.
    login_failed: bool,
    /// PONGs waiting for this client's stream writes (see [`DeliveryCtx::barriers`]).
    pongs_held: u32,
    /// A CONNECT the auth callout service must decide: the read loop asks it before it
    /// handles anything else the client sent.
    /// (the CONNECT, the CONNECT as the service is told it, the callout).
    callout: Option<Box<(ConnectOptions, ConnectOptions, callout::CalloutConfig)>>,
    /// Time spent stalled since the last socket read (capped, as in nats-server).
    stall_total: Duration,
}

/// Longest a PONG waits for the client's stream writes to be stored.
const PONG_HOLD_MAX: Duration = Duration::from_secs(5);
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
    /// Not handled yet: handle this op again once the pending auth callout is done.
    Again,
}

/// Run a connection: send INFO (and run the TLS handshake), start the writer, read until
/// closed, then clean up.
pub async fn run(conn: Arc<ClientConn>, stream: TcpStream, server: Arc<ServerShared>) {
    let _ = stream.set_nodelay(true);
    // A close (server shutdown, lame duck) ends the waits of the TLS setup too: the
    // writer is not running yet, so its wake-up means nothing but that. (INFO queued at
    // the end of `open` wakes it in the same poll that `open` completes, which wins.)
    let opened = tokio::select! {
        biased;
        r = open(&conn, stream, &server) => r,
        _ = conn.writer_wake.notified() => {
            conn.close(CloseReason::ServerShutdown, false);
            None
        }
    };
    let Some((rd, wr)) = opened else {
        // The TLS setup failed or was cut short: nothing was read, nothing else to undo.
        server.client_closed(&conn, Vec::new());
        return;
    };
    serve(conn, rd, wr, server).await;
}

/// Serve a connection whose transport is set up and whose INFO is sent or queued: start
/// the writer, read until closed, then clean up. (WebSocket connections come here from
/// their own listener.)
pub async fn serve(
    conn: Arc<ClientConn>,
    mut rd: ConnReader,
    wr: ConnWriter,
    server: Arc<ServerShared>,
) {
    let opts = server.opts();
    let registry = server.auth();
    let auth_required = registry.required();
    // Whenever auth is configured, also with a `no_auth_user` (INFO then says no auth is
    // required): a socket that never sends CONNECT (nor anything else) is timed out, as
    // nats-server does. The clock starts after the TLS handshake, as there.
    let auth_deadline = registry
        .configured()
        .then(|| tokio::time::Instant::now() + opts.effective_auth_timeout());
    let limits = ParserLimits {
        max_control_line: opts.max_control_line.max(0) as usize,
        max_payload: opts.max_payload,
        headers: false,
    };
    drop(opts);

    let writer = tokio::spawn(writer::run(conn.clone(), wr, server.clone(), auth_deadline));
    debug!(
        server.log,
        "{} - cid:{} - Client connection created", conn.addr, conn.cid
    );

    let mut r = Reader {
        opts_gen: server.opts_gen.load(Ordering::Acquire),
        account: server.global_account(),
        conn: conn.clone(),
        parser: Parser::new(limits),
        copts: ConnectOptions::parse(b"{}").unwrap_or_else(|_| unreachable!("static JSON")),
        connect_json: None,
        auth_required,
        auth_configured: registry.configured(),
        perms: None,
        pub_cache: FxHashMap::default(),
        max_subs: -1,
        mappings: server.global_account().mappings(),
        user_max_payload: -1,
        first_pong_sent: false,
        l1: L1Cache {
            genid: u64::MAX,
            map: FxHashMap::default(),
        },
        ctx: DeliveryCtx::for_client(server.clone(), conn.cid ^ 0x9E37_79B9_7F4A_7C15),
        batch_in: (0, 0),
        login_failed: false,
        pongs_held: 0,
        callout: None,
        stall_total: Duration::ZERO,
        server: server.clone(),
    };
    let reason = r.read_loop(&mut rd).await;
    conn.close(reason, true);
    let subs = r.remove_all_subs();
    let _ = writer.await;
    let was_connected = conn.is_connected();
    server.client_closed(&conn, subs);
    // As nats-server: the account's new connection count, then the disconnect event; a
    // failed login gets a disconnect event too (in `$G`, naming the user it tried).
    if was_connected {
        let account = conn.meta.lock().account.clone();
        crate::system::account_changed(&server, &account);
    }
    if was_connected || r.login_failed {
        let reason = conn.closing().unwrap_or(reason);
        crate::system::client_disconnected(&server, &conn, reason);
    }
}

/// Sends the first INFO and, when TLS is configured, runs the handshake, in nats-server's
/// order: INFO in the clear and then the client's handshake; or, with `handshake_first`,
/// the handshake and then INFO inside TLS. With `allow_non_tls` the client's first byte
/// says whether it starts TLS (a handshake record) or stays in the clear. Returns `None`
/// (the connection marked closed) when the handshake fails.
async fn open(
    conn: &Arc<ClientConn>,
    mut stream: TcpStream,
    server: &Arc<ServerShared>,
) -> Option<(ConnReader, ConnWriter)> {
    let Some(tls) = server.tls() else {
        let mut line = Vec::new();
        write::append_info(&mut line, server.client_info_json(conn, false).as_bytes());
        conn.send_proto(&line);
        return Some(transport::plain(stream));
    };
    let allow_plain = server.opts().allow_non_tls;
    // TLS first: wait for the client's handshake, or (with a fallback delay) only that
    // long before treating it as a client that waits for INFO.
    let first = tls.opts.handshake_first
        && match tls.opts.first_fallback {
            None => true,
            Some(wait) => first_byte(&stream, wait).await != First::Timeout,
        };
    // The TLS timeout covers waiting for the client's first byte and the handshake.
    let deadline = tokio::time::Instant::now() + tls.opts.timeout;
    let mut use_tls = true;
    if !first {
        let mut info = server.client_info(conn, false);
        info.tls_required = !allow_plain;
        info.tls_available = allow_plain;
        let mut line = Vec::new();
        write::append_info(&mut line, info.to_json().as_bytes());
        let deadline = server.opts().write_deadline;
        if !matches!(
            tokio::time::timeout(
                deadline,
                tokio::io::AsyncWriteExt::write_all(&mut stream, &line)
            )
            .await,
            Ok(Ok(()))
        ) {
            conn.close(CloseReason::WriteError, false);
            return None;
        }
        // The client's first byte tells whether it starts TLS. With `allow_non_tls` a
        // client that does not stays in the clear; otherwise it is dropped without a TLS
        // alert (as nats-server: Go's TLS does not answer a first record that is not a
        // handshake).
        match first_byte(&stream, tls.opts.timeout).await {
            First::Byte(crate::tls::TLS_HANDSHAKE_BYTE) => {}
            _ if allow_plain => use_tls = false,
            first => {
                let why = match first {
                    First::Eof => "EOF",
                    First::Timeout => "timeout",
                    First::Byte(_) => "first record does not look like a TLS handshake",
                };
                // A peer that connects and leaves without a word is a probe (a load
                // balancer's health check): debug level, as nats-server.
                if first == First::Eof {
                    debug!(
                        server.log,
                        "{} - cid:{} - TLS handshake error: {}", conn.addr, conn.cid, why
                    );
                } else {
                    error!(
                        server.log,
                        "{} - cid:{} - TLS handshake error: {}", conn.addr, conn.cid, why
                    );
                }
                // Read what the client sent before closing: a socket closed with unread
                // data resets the connection instead of ending it.
                let mut sink = [0u8; 4096];
                for _ in 0..16 {
                    if !matches!(stream.try_read(&mut sink), Ok(n) if n > 0) {
                        break;
                    }
                }
                conn.close(CloseReason::TlsHandshakeError, false);
                return None;
            }
        }
    }
    if !use_tls {
        return Some(transport::plain(stream));
    }
    debug!(
        server.log,
        "{} - cid:{} - Starting TLS client connection handshake", conn.addr, conn.cid
    );
    // A shutdown (or a reload that drops the client) while the handshake runs ends it.
    let shaken = tokio::select! {
        r = tls.accept(stream, deadline) => r,
        _ = conn.writer_wake.notified() => {
            conn.close(CloseReason::ServerShutdown, false);
            return None;
        }
    };
    let stream = match shaken {
        Ok(s) => s,
        Err(e) => {
            // A peer that connects and leaves without a word is a probe (a load
            // balancer's health check): debug level, as nats-server.
            let probe = matches!(&e, crate::tls::HandshakeError::Io(io)
                if io.kind() == std::io::ErrorKind::UnexpectedEof);
            if probe {
                debug!(
                    server.log,
                    "{} - cid:{} - TLS handshake error: {}", conn.addr, conn.cid, e
                );
            } else {
                error!(
                    server.log,
                    "{} - cid:{} - TLS handshake error: {}", conn.addr, conn.cid, e
                );
            }
            conn.close(CloseReason::TlsHandshakeError, false);
            return None;
        }
    };
    let info = crate::tls::TlsInfo::of(stream.get_ref().1, first);
    debug!(
        server.log,
        "{} - cid:{} - TLS version {}, cipher suite {}",
        conn.addr,
        conn.cid,
        info.version,
        info.cipher_suite
    );
    conn.meta.lock().tls = Some(info);
    if first {
        let mut info = server.client_info(conn, false);
        info.tls_required = true;
        info.tls_available = false;
        let mut line = Vec::new();
        write::append_info(&mut line, info.to_json().as_bytes());
        conn.send_proto(&line);
    }
    Some(transport::tls(stream))
}

/// What a client sent first, peeked (left in the socket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum First {
    /// Its first byte.
    Byte(u8),
    /// It closed (or the socket failed) without sending anything.
    Eof,
    /// Nothing within the wait.
    Timeout,
}

/// The first byte the client sends, if one arrives within `wait`.
async fn first_byte(stream: &TcpStream, wait: Duration) -> First {
    let mut b = [0u8; 1];
    match tokio::time::timeout(wait, stream.peek(&mut b)).await {
        Ok(Ok(1)) => First::Byte(b[0]),
        Ok(_) => First::Eof,
        Err(_) => First::Timeout,
    }
}

impl Reader {
    async fn read_loop(&mut self, rd: &mut ConnReader) -> CloseReason {
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
                // A TLS peer that closes the socket without a close_notify alert: as
                // good as a plain close (most clients do this).
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return self.conn.closing().unwrap_or(CloseReason::ClientClosed);
                }
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
            if self.server.opts_gen.load(Ordering::Acquire) != self.opts_gen {
                self.refresh_limits();
            }

            // Handle everything buffered. A stalled receiver pauses us mid-buffer.
            loop {
                let mut pos = 0;
                let mut flow = Flow::Continue;
                // Whether this buffer held activity `/connz` shows (not PING/PONG).
                let mut active = false;
                while pos < buf.len() {
                    match self.parser.parse(&buf[pos..]) {
                        Ok(Some(parsed)) => {
                            let len = parsed.len;
                            active |= matches!(
                                parsed.op,
                                ClientOp::Pub(_) | ClientOp::Sub { .. } | ClientOp::Unsub { .. }
                            );
                            flow = self.handle(parsed.op);
                            if !matches!(flow, Flow::Again) {
                                pos += len;
                            }
                            if matches!(flow, Flow::Close)
                                || self.ctx.stalled.is_some()
                                || self.pongs_held > 0
                                || self.callout.is_some()
                            {
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
                if active {
                    self.conn
                        .last_activity
                        .store(mono_nanos(), Ordering::Relaxed);
                }
                self.end_batch();
                if matches!(flow, Flow::Close) {
                    return self
                        .conn
                        .closing()
                        .unwrap_or(CloseReason::ProtocolViolation);
                }
                if let Some(pending) = self.callout.take() {
                    let (copts, asked, cfg) = *pending;
                    if matches!(self.run_callout(copts, asked, cfg).await, Flow::Close) {
                        return self
                            .conn
                            .closing()
                            .unwrap_or(CloseReason::AuthenticationViolation);
                    }
                    continue;
                }
                if self.pongs_held > 0 {
                    self.release_pongs().await;
                    continue;
                }
                match self.ctx.stalled.take() {
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
        if !receiver.prepare_stall(self.ctx.max_pending) {
            return;
        }
        let full = receiver.pending_bytes() >= self.ctx.max_pending;
        let ttl = if full { STALL_MAX } else { STALL_MIN }.min(STALL_TOTAL - self.stall_total);
        let started = tokio::time::Instant::now();
        let _ = tokio::time::timeout(ttl, notified).await;
        self.stall_total += started.elapsed();
    }

    /// Wake the writers of everyone who got data, and publish the batch's counters.
    fn end_batch(&mut self) {
        self.ctx.flush();
        let (m, b) = std::mem::take(&mut self.batch_in);
        if m > 0 {
            self.conn.in_msgs.fetch_add(m, Ordering::Relaxed);
            self.conn.in_bytes.fetch_add(b, Ordering::Relaxed);
            self.server.stats.add_in(m, b);
        }
    }

    fn parse_error(&mut self, e: &ParseError) {
        let reason = match e {
            // nats-server records an unknown operation as a protocol violation.
            ParseError::UnknownOp => CloseReason::ProtocolViolation,
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
        if self.auth_configured && !self.conn.is_connected() && !matches!(op, ClientOp::Connect(_))
        {
            // Anything but CONNECT first: allowed only as the `no_auth_user`.
            let anonymous = ConnectOptions::parse(b"{}").ok();
            let id = match (self.auth_required, anonymous) {
                (false, Some(c)) => {
                    let certs = self.conn.peer_certs();
                    let cert = certs.as_deref().and_then(|v| v.first());
                    self.server
                        .auth()
                        .authenticate_with(
                            &c,
                            &self.conn.nonce,
                            cert,
                            ConnKind::of(&self.conn),
                            Some(self.conn.addr.ip()),
                        )
                        .ok()
                }
                _ => None,
            };
            match id {
                Some(id) => {
                    // The anonymous login may be the auth callout's to decide, before
                    // this op is handled (nats-server runs the callout here too).
                    let mut id = id;
                    if let Ok(copts) = ConnectOptions::parse(b"{}")
                        && let Some((asked, cfg)) = self.delegated_to(&copts, Some(&id))
                    {
                        self.callout = Some(Box::new((copts, asked, cfg)));
                        return Flow::Again;
                    }
                    self.deny_callout_requests(&mut id);
                    if !self.bind(id) {
                        return Flow::Close;
                    }
                    self.conn.set_connected();
                }
                None => {
                    self.conn.err_and_close(
                        "Authorization Violation",
                        CloseReason::AuthenticationViolation,
                    );
                    return Flow::Close;
                }
            }
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
        // A repeated CONNECT keeps what it does not name (nats-server).
        let merged;
        let json = match (&mut self.connect_json, serde_json::from_slice(json)) {
            (Some(prev), Ok(serde_json::Value::Object(now))) => {
                prev.extend(now);
                merged = serde_json::to_vec(prev).unwrap_or_default();
                &merged[..]
            }
            (slot @ None, Ok(serde_json::Value::Object(mut now))) => {
                // Kept for a later CONNECT to merge onto, without the large signed
                // credentials (JWTs are not supported; their kilobytes are not kept).
                now.remove("jwt");
                now.remove("sig");
                *slot = Some(now);
                json
            }
            _ => json,
        };
        let copts = match ConnectOptions::parse(json) {
            Ok(c) => c,
            Err(e) => {
                self.server
                    .log_client_error(&self.conn, &format!("Bad CONNECT JSON: {e}"));
                self.conn.close(CloseReason::ProtocolViolation, true);
                return Flow::Close;
            }
        };
        // The client's name, lang and version are kept even if the CONNECT is refused
        // below, so `/connz?state=closed` names the failed connection (nats-server).
        {
            let mut meta = self.conn.meta.lock();
            meta.name = copts.name.clone();
            meta.lang = copts.lang.clone();
            meta.version = copts.version.clone();
        }
        let certs = self.conn.peer_certs();
        let cert = certs.as_deref().and_then(|v| v.first());
        let identity = self
            .server
            .auth()
            .authenticate_with(
                &copts,
                &self.conn.nonce,
                cert,
                ConnKind::of(&self.conn),
                Some(self.conn.addr.ip()),
            )
            .map_err(|reason| {
                if let Some(crate::auth::operator::JwtLoginError::NotPinned { .. }) = &reason {
                    self.server
                        .stats
                        .pinned_account_fails
                        .fetch_add(1, Ordering::Relaxed);
                }
                reason.map(|r| r.to_string())
            });
        if let Some((asked, cfg)) = self.delegated_to(&copts, identity.as_ref().ok()) {
            // The auth callout service decides; the read loop asks it next, before
            // anything else the client sent.
            self.callout = Some(Box::new((copts, asked, cfg)));
            return Flow::Continue;
        }
        self.complete_connect(copts, identity)
    }

    /// The auth callout that decides this login (`identity`: whom the credentials named,
    /// if anyone), if one does, and the CONNECT as the service is to see it (the `no_auth_user` filled in when it carries no
    /// credentials): the config's callout, for the users it delegates; or in operator
    /// mode the callout of the account whose user JWT (a "sentinel", usually) the client
    /// logged in with, unless it is one of that callout's own users.
    fn delegated_to(
        &self,
        copts: &ConnectOptions,
        identity: Option<&Identity>,
    ) -> Option<(ConnectOptions, callout::CalloutConfig)> {
        let opts = self.server.opts();
        if let Some(cfg) = &opts.auth_callout {
            let asked = callout::with_no_auth_user(copts, self.server.auth().no_auth_login());
            let into = identity.map(|id| id.account.as_str());
            return cfg
                .delegates(&callout::raw_auth_user(&asked), into)
                .then(|| (asked, cfg.clone()));
        }
        let id = identity?;
        let cfg = opts
            .operator
            .as_ref()?
            .accounts
            .get(&id.account)?
            .callout
            .as_ref()?;
        let user = id.user.as_ref()?;
        (!cfg.auth_users.iter().any(|u| u == &user.name)).then(|| (copts.clone(), cfg.clone()))
    }

    /// Users of a callout account may not publish authorization requests
    /// (`$SYS.REQ.USER.AUTH` joins their publish deny list).
    fn deny_callout_requests(&self, identity: &mut Identity) {
        let opts = self.server.opts();
        let callout_account = match &opts.auth_callout {
            Some(c) => c.account == identity.account,
            None => opts
                .operator
                .as_ref()
                .and_then(|o| o.accounts.get(&identity.account))
                .is_some_and(|a| a.callout.is_some()),
        };
        if callout_account {
            callout::deny_callout_subject(identity);
        }
    }

    /// Ask the auth callout service about a delegated CONNECT (`asked`: as the service
    /// is told it), then finish it.
    async fn run_callout(
        &mut self,
        copts: ConnectOptions,
        asked: ConnectOptions,
        cfg: callout::CalloutConfig,
    ) -> Flow {
        let wait = self.server.opts().effective_auth_timeout();
        let kind = ConnKind::of(&self.conn);
        self.conn.callout_pending.store(true, Ordering::Release);
        let result = callout::call(&self.server, &self.conn, &cfg, &asked, kind, wait)
            .await
            .map_err(|e| Some(e.to_string()));
        self.conn.callout_pending.store(false, Ordering::Release);
        self.complete_connect(copts, result)
    }

    /// The rest of CONNECT, once it is known who the client is (`Err`: nobody, with the
    /// reason for the log when there is one).
    fn complete_connect(
        &mut self,
        copts: ConnectOptions,
        identity: Result<Identity, Option<String>>,
    ) -> Flow {
        let mut identity = match identity {
            Ok(id) => id,
            Err(reason) => {
                self.refuse_login(&copts, reason.as_deref());
                return Flow::Close;
            }
        };
        self.deny_callout_requests(&mut identity);
        let opts = self.server.opts();
        if copts.new_account || copts.account.as_deref().is_some_and(|a| !a.is_empty()) {
            self.conn.err_and_close(
                "Authorization Violation",
                CloseReason::AuthenticationViolation,
            );
            return Flow::Close;
        }
        drop(opts);
        // A second CONNECT re-authenticates and drops existing subscriptions.
        if self.conn.is_connected() {
            let _ = self.remove_all_subs();
        }
        if !self.bind(identity) {
            return Flow::Close;
        }
        *self.conn.auth_connect.lock() = Some(Box::new(copts.clone()));
        let opts = self.server.opts();
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
        self.conn.set_headers(headers);
        self.conn
            .proto_info
            .store(copts.protocol >= 1, Ordering::Relaxed);
        {
            let mut meta = self.conn.meta.lock();
            // nats-server's first RTT estimate: accept to CONNECT; PONGs refine it.
            if meta.rtt_nanos == 0 {
                meta.rtt_nanos = mono_nanos().saturating_sub(self.conn.start_mono).max(1);
            }
        }
        let mut limits = self.parser.limits();
        limits.headers = headers;
        self.parser.set_limits(limits);
        self.copts = copts;
        let first = !self.conn.is_connected();
        self.conn.set_connected();
        self.ok();
        if first {
            crate::system::client_connected(&self.server, &self.conn);
        }
        Flow::Continue
    }

    /// A refused login: recorded for `/connz?state=closed` and the disconnect event,
    /// logged (with the reason, when there is one), answered with nats-server's violation.
    fn refuse_login(&mut self, copts: &ConnectOptions, reason: Option<&str>) {
        self.login_failed = true;
        {
            // What the closed-connection record and the disconnect event show.
            let mut meta = self.conn.meta.lock();
            meta.user = copts.user.clone().filter(|u| !u.is_empty());
            meta.account = crate::account::GLOBAL_ACCOUNT.to_string();
            if meta.rtt_nanos == 0 {
                meta.rtt_nanos = mono_nanos().saturating_sub(self.conn.start_mono).max(1);
            }
        }
        self.server
            .log_auth_failure(&self.conn, copts.user.as_deref(), reason);
        self.conn.err_and_close(
            "Authorization Violation",
            CloseReason::AuthenticationViolation,
        );
    }

    /// After a reload: the protocol limits from the new options (the account's
    /// `max_payload` still caps the server's), for the next line and payload parsed.
    fn refresh_limits(&mut self) {
        self.opts_gen = self.server.opts_gen.load(Ordering::Acquire);
        let opts = self.server.opts();
        let mut limits = self.parser.limits();
        limits.max_control_line = opts.max_control_line.max(0) as usize;
        limits.max_payload = opts.max_payload;
        self.parser.set_limits(limits);
        drop(opts);
        self.cap_payload_by_account();
        self.mappings = self.account.mappings();
    }

    /// The account's `max_payload`, when set, caps the parser's.
    fn cap_payload_by_account(&mut self) {
        let account_max = self.account.limits().max_payload;
        let mut limits = self.parser.limits();
        // A negative limit is none: a cap replaces it rather than losing to it.
        let cap = |current: i64, cap: i64| if current < 0 { cap } else { current.min(cap) };
        if account_max > 0 {
            limits.max_payload = cap(limits.max_payload, account_max);
        }
        // A user JWT's `payload` (0 included) caps it too.
        if self.user_max_payload >= 0 {
            limits.max_payload = cap(limits.max_payload, self.user_max_payload);
        }
        self.conn
            .max_payload
            .store(limits.max_payload, Ordering::Relaxed);
        self.parser.set_limits(limits);
    }

    /// Bind the connection to the identity's account and permissions. False if the account
    /// is full (the connection is then closing).
    fn bind(&mut self, id: Identity) -> bool {
        let Some(account) = self.server.account(&id.account) else {
            self.conn.err_and_close(
                "Authorization Violation",
                CloseReason::AuthenticationViolation,
            );
            return false;
        };
        let was_connected = self.conn.is_connected();
        let same = Arc::ptr_eq(&account, &self.account);
        if !(was_connected && same) {
            let max = account.limits().max_connections;
            if max >= 0 && account.num_connections() as i64 >= max {
                self.conn.err_and_close(
                    "maximum account active connections exceeded",
                    CloseReason::MaxAccountConnectionsExceeded,
                );
                return false;
            }
            if was_connected {
                self.account.nconns.fetch_sub(1, Ordering::Relaxed);
            }
            account.nconns.fetch_add(1, Ordering::Relaxed);
        }
        let perms = id.user.as_ref().and_then(|u| u.perms.clone());
        self.conn.set_perms(perms.clone());
        self.perms = perms;
        self.pub_cache.clear();
        self.l1.genid = u64::MAX;
        let opts = self.server.opts();
        let server_max = opts.max_subscriptions;
        let acc_max = account.limits().max_subscriptions;
        // -1: no limit. The server's and the account's 0 mean none, a user JWT's 0 means
        // no subscriptions at all (as in nats-server).
        self.user_max_payload = id.max_payload;
        self.max_subs = [
            (server_max > 0).then_some(server_max),
            (acc_max > 0).then_some(acc_max),
            (id.max_subs >= 0).then_some(id.max_subs),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(-1);
        self.conn
            .expires_account
            .store(id.account_expires_first, Ordering::Relaxed);
        // The wall-clock expiry as a deadline on the monotonic clock, converted once.
        let deadline = id.expires.map_or(0, |exp| {
            let left = exp.saturating_sub(crate::jwt::unix_now()).max(0) as u64;
            mono_nanos()
                .saturating_add(left.saturating_mul(1_000_000_000))
                .max(1)
        });
        self.conn.expires_mono.store(deadline, Ordering::Relaxed);
        if id.expires.is_some() {
            self.conn.writer_wake.notify_one();
        }
        {
            let mut meta = self.conn.meta.lock();
            meta.account = account.name.clone();
            meta.user = id.label.clone();
            meta.nkey = id.user.as_ref().filter(|u| u.nkey).map(|u| u.name.clone());
            meta.jwt_user = id.jwt_user.clone();
            meta.simple_auth = id.user.is_none();
        }
        self.account = account;
        self.cap_payload_by_account();
        self.mappings = self.account.mappings();
        true
    }

    /// Publish permission for `subject`: static rules (cached), then response rights.
    fn pub_allowed(&mut self, subject: &[u8]) -> bool {
        let Some(p) = &self.perms else {
            return true;
        };
        let allowed = match self.pub_cache.get(subject) {
            Some(a) => *a,
            None => {
                let a = p.can_publish(subject);
                if self.pub_cache.len() >= PUB_CACHE_MAX {
                    self.pub_cache.clear();
                }
                self.pub_cache.insert(subject.into(), a);
                a
            }
        };
        allowed || (p.tracks_responses() && self.conn.take_response_right(subject))
    }

    // ---- PING / PONG --------------------------------------------------------------------

    /// Wait (bounded) until the streams this client published into have stored those
    /// messages, then send the PONGs held for that.
    async fn release_pongs(&mut self) {
        let deadline = tokio::time::Instant::now() + PONG_HOLD_MAX;
        for (_, mut rx, n) in self.ctx.barriers.drain(..) {
            let _ = tokio::time::timeout_at(deadline, rx.wait_for(|p| *p >= n)).await;
        }
        for _ in 0..std::mem::take(&mut self.pongs_held) {
            self.conn.send_proto(write::PONG);
        }
    }

    fn on_ping(&mut self) -> Flow {
        if !self.ctx.barriers.is_empty() {
            self.pongs_held += 1;
        } else {
            self.conn.send_proto(write::PONG);
        }
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
        // Permissions first, as nats-server (so an invalid subject a user may not use is a
        // permission error); the `_sys_` queue name is reserved.
        let sys_queue = queue == Some(b"_sys_".as_slice());
        if sys_queue
            || self
                .perms
                .as_ref()
                .is_some_and(|p| !p.can_subscribe(subject, queue))
        {
            let text = match queue {
                Some(q) => format!(
                    "Permissions Violation for Subscription to {} using queue {}",
                    go_quote(subject),
                    go_quote(q)
                ),
                None => format!(
                    "Permissions Violation for Subscription to {}",
                    go_quote(subject)
                ),
            };
            self.conn.send_err(&text);
            self.server.log_client_error(
                &self.conn,
                &format!(
                    "Subscription Violation - Subject {}, SID {}",
                    go_quote(subject),
                    String::from_utf8_lossy(sid)
                ),
            );
            return Flow::Continue;
        }
        let max_tokens = self.server.opts().max_sub_tokens;
        if max_tokens > 0 && subject.split(|&b| b == b'.').count() as i64 > max_tokens {
            self.conn.send_err(&format!(
                "Permissions Violation for Subscription to {}, too many tokens",
                go_quote(subject)
            ));
            return Flow::Continue;
        }
        let mut subs = self.conn.subs.lock();
        if self.max_subs >= 0 && subs.len() as i64 >= self.max_subs {
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
        if let Some(p) = &self.perms
            && p.sub_needs_delivery_filter(subject, queue)
        {
            self.conn.enable_deny_filter();
        }
        // A push consumer may be waiting for exactly this subscriber; woken only once
        // the deny filter is in place, so its first delivery is filtered too.
        self.account.subscribed(subject);
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

    /// Remove every subscription of the connection; returns them.
    fn remove_all_subs(&mut self) -> Vec<Arc<Subscription>> {
        let subs: Vec<Arc<Subscription>> = self.conn.subs.lock().drain().map(|(_, s)| s).collect();
        for s in &subs {
            s.closed.store(true, Ordering::Release);
        }
        self.account.sublist.remove_batch(
            subs.iter()
                .map(|s| (s.subject.clone(), s.queue.clone(), s.clone())),
        );
        subs
    }

    // ---- PUB ----------------------------------------------------------------------------

    fn on_pub(&mut self, m: PubMsg<'_>) -> Flow {
        self.batch_in.0 += 1;
        self.batch_in.1 += m.total_len() as u64;
        if self.copts.pedantic && !is_valid_literal_subject(m.subject) {
            // nats-server reports it but still routes the message (verified on 2.15.1).
            self.conn.send_err("Invalid Publish Subject");
        }
        // The account's subject mappings come next: as in nats-server, permissions and
        // routing see the mapped subject.
        let mapped;
        let m = match self.mappings.as_ref().and_then(|mp| mp.select(m.subject)) {
            Some(s) => {
                mapped = s;
                PubMsg {
                    subject: &mapped,
                    ..m
                }
            }
            None => m,
        };
        if m.subject.starts_with(b"$GNR.") || !self.pub_allowed(m.subject) {
            self.conn.send_err(&format!(
                "Permissions Violation for Publish to {}",
                go_quote(m.subject)
            ));
            self.server.log_client_error(
                &self.conn,
                &format!("Publish Violation - Subject {}", go_quote(m.subject)),
            );
            return Flow::Continue;
        }
        if m.subject.starts_with(b"$NRG.") && !self.account.is_system {
            self.conn.send_err(&format!(
                "Permissions Violation for Publish to {}",
                go_quote(m.subject)
            ));
            return Flow::Continue;
        }
        if let Some(reply) = m.reply
            && is_reserved_reply(reply)
        {
            self.conn.send_err(&format!(
                "Permissions Violation for Publish with Reply of {}",
                go_quote(reply)
            ));
            return Flow::Continue;
        }
        self.ok();
        let result = self.l1.lookup(&self.account, m.subject);
        let publisher = Publisher {
            conn: Some(&self.conn),
            echo: self.copts.echo,
        };
        let delivered = self
            .ctx
            .route(&self.account, &result, publisher, m.subject, m);
        if !delivered
            && let Some(reply) = m.reply
            && self.copts.no_responders
        {
            self.ctx
                .no_responders(&self.account, &self.conn, m.subject, reply);
        }
        Flow::Continue
    }
}

pub use super::deliver::remove_sub;
