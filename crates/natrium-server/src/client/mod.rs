//! Client connections.
//!
//! Each connection runs as two tasks sharing one [`ClientConn`]:
//! - the reader (`reader.rs`) owns the read half and the parser, handles every op, and
//!   delivers published messages into receivers' outbound buffers;
//! - the writer (`writer.rs`) owns the write half, drains the outbound buffer, and runs the
//!   connection's timers (server PINGs, the auth timeout).
//!
//! Closing is one-directional and idempotent: anyone calls [`ClientConn::close`], the
//! writer flushes (or not), shuts the socket down in both directions, which ends the
//! reader's read, and the reader's task then removes the subscriptions, waits for the
//! writer and deregisters the connection. So cleanup runs exactly once, in one place.

pub mod deliver;
pub mod outbound;
pub mod reader;
pub mod subscription;
pub mod transport;
pub mod websocket;
pub mod writer;

use crate::auth::permissions::{ClientPerms, ResponseGrant};
use outbound::Outbound;
use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Instant, SystemTime};
use subscription::Subscription;

/// Most outstanding response grants a connection keeps.
const MAX_RESPONSE_GRANTS: usize = 10_000;
use tokio::sync::Notify;

/// Why a connection closed, with the strings `/connz` reports as `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed the socket.
    ClientClosed,
    /// No CONNECT within the auth timeout.
    AuthenticationTimeout,
    /// Bad or missing credentials.
    AuthenticationViolation,
    /// Outbound buffer over `max_pending`.
    SlowConsumerPendingBytes,
    /// A flush blocked longer than `write_deadline`.
    SlowConsumerWriteDeadline,
    /// The socket write failed.
    WriteError,
    /// The socket read failed.
    ReadError,
    /// The client sent something the parser could not read.
    ParseError,
    /// Too many unanswered PINGs.
    StaleConnection,
    /// A protocol rule was broken (bad args, bad CONNECT JSON, HPUB without headers).
    ProtocolViolation,
    /// CONNECT asked for an unknown protocol version.
    BadClientProtocolVersion,
    /// A publish over `max_payload`.
    MaxPayloadExceeded,
    /// A control line over `max_control_line`.
    MaxControlLineExceeded,
    /// The server is at `max_connections`.
    MaxConnectionsExceeded,
    /// The account is at its `max_connections`.
    MaxAccountConnectionsExceeded,
    /// A reload lowered the account's `max_subscriptions` below what the client holds.
    MaxSubscriptionsExceeded,
    /// `no_responders` without `headers`.
    NoRespondersRequiresHeaders,
    /// The server is shutting down.
    ServerShutdown,
    /// The TLS handshake failed or timed out.
    TlsHandshakeError,
    /// The user JWT expired while connected.
    AuthenticationExpired,
    /// The user's JWT was revoked while connected.
    Revocation,
}

impl CloseReason {
    /// The text `/connz` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::ClientClosed => "Client Closed",
            CloseReason::AuthenticationTimeout => "Authentication Timeout",
            CloseReason::AuthenticationViolation => "Authentication Failure",
            CloseReason::SlowConsumerPendingBytes => "Slow Consumer (Pending Bytes)",
            CloseReason::SlowConsumerWriteDeadline => "Slow Consumer (Write Deadline)",
            CloseReason::WriteError => "Write Error",
            CloseReason::ReadError => "Read Error",
            CloseReason::ParseError => "Parse Error",
            CloseReason::StaleConnection => "Stale Connection",
            CloseReason::ProtocolViolation => "Protocol Violation",
            CloseReason::BadClientProtocolVersion => "Bad Client Protocol Version",
            CloseReason::MaxPayloadExceeded => "Maximum Message Payload Exceeded",
            CloseReason::MaxControlLineExceeded => "Maximum Control Line Exceeded",
            CloseReason::MaxConnectionsExceeded => "Maximum Connections Exceeded",
            CloseReason::MaxAccountConnectionsExceeded => "Maximum Account Connections Exceeded",
            CloseReason::MaxSubscriptionsExceeded => "Maximum Subscriptions Exceeded",
            CloseReason::NoRespondersRequiresHeaders => "No Responders Requires Headers",
            CloseReason::ServerShutdown => "Server Shutdown",
            CloseReason::TlsHandshakeError => "TLS Handshake Failure",
            CloseReason::AuthenticationExpired => "Authentication Expired",
            CloseReason::Revocation => "Credentials Revoked",
        }
    }

    /// Slow-consumer closes are counted in `/varz`.
    pub fn is_slow_consumer(self) -> bool {
        matches!(
            self,
            CloseReason::SlowConsumerPendingBytes | CloseReason::SlowConsumerWriteDeadline
        )
    }
}

/// What the client told us in CONNECT, kept for `/connz` and for delivery decisions.
#[derive(Debug, Clone, Default)]
pub struct ClientMeta {
    /// `name` from CONNECT.
    pub name: String,
    /// `lang` from CONNECT.
    pub lang: String,
    /// `version` from CONNECT.
    pub version: String,
    /// Authenticated user (or the token label), if any.
    pub user: Option<String>,
    /// The nkey the client authenticated with, if any.
    pub nkey: Option<String>,
    /// Authenticated with the single user or token (not a users list entry).
    pub simple_auth: bool,
    /// Account the client is bound to.
    pub account: String,
    /// Round-trip time measured with the server's PING, in nanoseconds (0: unknown).
    pub rtt_nanos: u64,
    /// The TLS session, for a connection that came in over TLS (`/connz`).
    pub tls: Option<crate::tls::TlsInfo>,
    /// The client came in over WebSocket (`/connz` type `websocket`).
    pub websocket: bool,
    /// A JWT user's details for `/connz?auth=1` (operator mode).
    pub jwt_user: Option<std::sync::Arc<crate::auth::operator::JwtUser>>,
}

/// WebSocket control frames waiting for the writer.
#[derive(Debug, Default)]
pub struct WsControl {
    /// The payload of the pong to send next.
    pub pong: Option<Vec<u8>>,
    /// The payload of the close frame to end with, when the reader chose it.
    pub close: Option<Vec<u8>>,
}

/// Monotonic clock origin shared by the activity timestamps below.
fn clock_origin() -> Instant {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// Nanoseconds since [`clock_origin`], cheap enough to store in an atomic.
pub fn mono_nanos() -> u64 {
    clock_origin().elapsed().as_nanos() as u64
}

/// Convert a [`mono_nanos`] value back to an `Instant`.
pub fn mono_to_instant(n: u64) -> Instant {
    clock_origin() + std::time::Duration::from_nanos(n)
}

/// The shared state of one client connection.
pub struct ClientConn {
    /// Connection id (`cid`), unique for the server's life.
    pub cid: u64,
    /// Remote address.
    pub addr: SocketAddr,
    /// When the connection was accepted (wall clock, for `/connz start`).
    pub start: SystemTime,
    /// When the connection was accepted (mono nanos), for the RTT estimate at CONNECT.
    pub start_mono: u64,
    /// Outbound buffer and delivery counters.
    pub out: Mutex<Outbound>,
    /// Wakes the writer task.
    pub writer_wake: Notify,
    /// When the login expires ([`mono_nanos`]; 0: never), from a JWT's `exp`, set once at
    /// CONNECT. The writer task closes the connection then, with
    /// `User Authentication Expired`.
    pub expires_mono: AtomicU64,
    /// `expires_mono` is the account JWT's expiry (`Account Authentication Expired`).
    pub expires_account: AtomicBool,
    /// A CONNECT is with the auth callout service: the auth timer stops (nats-server
    /// clears it on CONNECT); the callout's own wait is bounded by the auth timeout.
    pub callout_pending: AtomicBool,
    /// The largest message this client may publish once logged in (server, account and
    /// user limits; -1 until known), for the INFO after CONNECT (nats-server's `mpay`).
    pub max_payload: std::sync::atomic::AtomicI64,
    /// Signalled by the writer after a write when a stalled producer is waiting.
    pub drained: Notify,
    /// The client negotiated headers (HPUB/HMSG).
    headers: AtomicBool,
    /// CONNECT has been received and accepted.
    connected: AtomicBool,
    /// The client speaks protocol 1 (accepts async INFO).
    pub proto_info: AtomicBool,
    /// Last time anything arrived from the client (mono nanos), to skip needless PINGs.
    pub last_in: AtomicU64,
    /// Last time the client published, (un)subscribed or was delivered messages (mono
    /// nanos): `/connz`'s `last_activity` and `idle`, which PINGs and PONGs do not move
    /// (nats-server's `c.last`).
    pub last_activity: AtomicU64,
    /// When CONNECT was processed (mono nanos, 0 before): the writer restarts its first-PING
    /// timer from there, as nats-server does.
    pub connected_at: AtomicU64,
    /// Server PINGs sent and not yet answered.
    pub pings_out: AtomicU32,
    /// When the outstanding RTT-measuring PING was sent (mono nanos), 0 if none.
    pub ping_sent_at: AtomicU64,
    /// Messages received from the client (flushed from the reader in batches).
    pub in_msgs: AtomicU64,
    /// Payload bytes received from the client.
    pub in_bytes: AtomicU64,
    /// The client's subscriptions by sid.
    pub subs: Mutex<FxHashMap<Box<[u8]>, Arc<Subscription>>>,
    /// CONNECT details for monitoring.
    pub meta: Mutex<ClientMeta>,
    /// Nonce sent in INFO for nkey authentication (empty when not needed).
    pub nonce: String,
    /// The authenticated user's permissions; read at delivery when checks are needed.
    pub perms: parking_lot::RwLock<Option<Arc<ClientPerms>>>,
    /// Delivery needs a permission step: a deny filter or response tracking.
    delivery_checks: AtomicBool,
    /// Some subscription overlaps a subscribe-deny entry: filter at delivery.
    deny_filter: AtomicBool,
    /// Response rights granted by received requests (`allow_responses`).
    pub responses: Mutex<FxHashMap<Box<[u8]>, ResponseGrant>>,
    /// WebSocket control frames the reader found to send (see [`WsControl`]).
    pub ws: Mutex<WsControl>,
    /// The CONNECT options the client authenticated with (none for one admitted as the
    /// `no_auth_user` without CONNECT, which a reload leaves alone): a config reload
    /// checks them again against the new users, as nats-server does.
    pub auth_connect: Mutex<Option<Box<crate::protocol::connect::ConnectOptions>>>,
}

impl std::fmt::Debug for ClientConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConn")
            .field("cid", &self.cid)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl ClientConn {
    /// A new connection record.
    pub fn new(cid: u64, addr: SocketAddr) -> Self {
        ClientConn {
            cid,
            addr,
            start: SystemTime::now(),
            start_mono: mono_nanos(),
            out: Mutex::new(Outbound::default()),
            writer_wake: Notify::new(),
            expires_mono: AtomicU64::new(0),
            callout_pending: AtomicBool::new(false),
            expires_account: AtomicBool::new(false),
            max_payload: std::sync::atomic::AtomicI64::new(-1),
            drained: Notify::new(),
            headers: AtomicBool::new(false),
            connected: AtomicBool::new(false),
            proto_info: AtomicBool::new(false),
            last_in: AtomicU64::new(mono_nanos()),
            last_activity: AtomicU64::new(mono_nanos()),
            connected_at: AtomicU64::new(0),
            pings_out: AtomicU32::new(0),
            ping_sent_at: AtomicU64::new(0),
            in_msgs: AtomicU64::new(0),
            in_bytes: AtomicU64::new(0),
            subs: Mutex::new(FxHashMap::default()),
            meta: Mutex::new(ClientMeta::default()),
            nonce: String::new(),
            perms: parking_lot::RwLock::new(None),
            delivery_checks: AtomicBool::new(false),
            deny_filter: AtomicBool::new(false),
            responses: Mutex::new(FxHashMap::default()),
            auth_connect: Mutex::new(None),
            ws: Mutex::new(WsControl::default()),
        }
    }

    /// Queues the answer to a WebSocket ping and wakes the writer. Only the newest
    /// unsent answer is kept (RFC 6455 §5.5.3 allows it), so a ping flood against a
    /// blocked writer costs no memory.
    pub fn ws_pong(&self, payload: &[u8]) {
        self.ws.lock().pong = Some(payload.to_vec());
        self.writer_wake.notify_one();
    }

    /// Sets the close frame the connection ends with (the answer to the client's close,
    /// or a protocol error). It goes out after the last data, when the writer shuts down.
    pub fn ws_close(&self, payload: &[u8]) {
        let mut ws = self.ws.lock();
        if ws.close.is_none() {
            ws.close = Some(payload.to_vec());
        }
    }

    /// The certificates the client presented over TLS, leaf first (cheap to clone).
    pub fn peer_certs(&self) -> Option<Arc<Vec<crate::tls_identity::PeerCert>>> {
        self.meta.lock().tls.as_ref().map(|t| t.peer_certs.clone())
    }

    /// Set the nonce (before the connection is shared).
    pub fn with_nonce(mut self, nonce: String) -> Self {
        self.nonce = nonce;
        self
    }

    /// Install permissions after authentication.
    pub fn set_perms(&self, perms: Option<Arc<ClientPerms>>) {
        let tracks = perms.as_ref().is_some_and(|p| p.tracks_responses());
        *self.perms.write() = perms;
        self.deny_filter.store(false, Ordering::Relaxed);
        self.delivery_checks.store(tracks, Ordering::Release);
    }

    /// A subscription overlaps a deny entry: filter deliveries from now on.
    pub fn enable_deny_filter(&self) {
        self.deny_filter.store(true, Ordering::Relaxed);
        self.delivery_checks.store(true, Ordering::Release);
    }

    /// Whether delivery must consult [`ClientConn::delivery_allowed`].
    pub fn has_delivery_checks(&self) -> bool {
        self.delivery_checks.load(Ordering::Acquire)
    }

    /// Delivery-time permission step: drop messages on denied subjects that reached us
    /// through a wildcard or queue subscription, and grant response rights for requests.
    pub fn delivery_allowed(
        &self,
        _sub_subject: &[u8],
        queue: Option<&[u8]>,
        m: crate::protocol::PubMsg<'_>,
    ) -> bool {
        let Some(perms) = self.perms.read().clone() else {
            return true;
        };
        if self.deny_filter.load(Ordering::Relaxed) && perms.delivery_denied(m.subject, queue) {
            return false;
        }
        if let (Some(rp), Some(reply)) = (perms.response.as_ref(), m.reply) {
            let now = mono_nanos();
            let mut grants = self.responses.lock();
            if grants.len() >= MAX_RESPONSE_GRANTS {
                grants.retain(|_, g| g.expires_at.is_none_or(|t| t > now));
                if grants.len() >= MAX_RESPONSE_GRANTS {
                    grants.clear();
                }
            }
            grants.insert(reply.into(), ResponseGrant::new(rp, now));
        }
        true
    }

    /// Use up one response right for `subject`, if there is one.
    pub fn take_response_right(&self, subject: &[u8]) -> bool {
        let now = mono_nanos();
        let mut grants = self.responses.lock();
        let Some(g) = grants.get_mut(subject) else {
            return false;
        };
        if g.expires_at.is_some_and(|t| t <= now) {
            grants.remove(subject);
            return false;
        }
        if g.remaining > 0 {
            g.remaining -= 1;
            if g.remaining == 0 {
                grants.remove(subject);
            }
        }
        true
    }

    /// Whether the client accepts HMSG.
    pub fn supports_headers(&self) -> bool {
        self.headers.load(Ordering::Relaxed)
    }

    /// Record header support from CONNECT.
    pub fn set_headers(&self, on: bool) {
        self.headers.store(on, Ordering::Relaxed);
    }

    /// Whether a valid CONNECT has been processed.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Mark CONNECT as processed.
    pub fn set_connected(&self) {
        self.connected_at
            .store(mono_nanos().max(1), Ordering::Release);
        self.connected.store(true, Ordering::Release);
    }

    /// The close reason, if the connection is closing.
    pub fn closing(&self) -> Option<CloseReason> {
        self.out.lock().closing
    }

    /// Number of subscriptions.
    pub fn num_subs(&self) -> usize {
        self.subs.lock().len()
    }
}
