//! The server: listeners, the connection registry, shared counters, and the life cycle
//! (start, reload, lame duck, shutdown).
//!
//! [`Server`] is the handle a binary or a test holds; [`ServerShared`] is what every
//! connection task holds (through an `Arc`). Options are swapped whole on reload
//! (`RwLock<Arc<Options>>`), so a task reads a consistent snapshot with one cheap clone.

use crate::account::{Account, GLOBAL_ACCOUNT, wire_imports};
use crate::auth::AuthRegistry;
use crate::client::{ClientConn, CloseReason, reader};
use crate::logging::Logger;
use crate::options::{API_LEVEL, NATRIUM_VERSION, NATS_COMPAT_VERSION, Options};
use crate::protocol::connect::ServerInfo;
use crate::protocol::write;
use crate::{debug, error, info, warn};
use parking_lot::{Mutex, RwLock};
use rustc_hash::FxHashMap;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// Server-wide message counters, as `/varz` reports them.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Messages received from clients.
    pub in_msgs: AtomicU64,
    /// Bytes received from clients.
    pub in_bytes: AtomicU64,
    /// Messages delivered.
    pub out_msgs: AtomicU64,
    /// Bytes delivered.
    pub out_bytes: AtomicU64,
    /// Connections closed as slow consumers.
    pub slow_consumers: AtomicU64,
    /// Connections closed as stale.
    pub stale_connections: AtomicU64,
    /// Connections accepted since start.
    pub total_connections: AtomicU64,
    /// JWT logins refused because `resolver_pinned_accounts` does not list the account
    /// (`/varz pinned_account_fails`).
    pub pinned_account_fails: AtomicU64,
}

impl ServerStats {
    /// Add a batch of inbound counts.
    pub fn add_in(&self, msgs: u64, bytes: u64) {
        self.in_msgs.fetch_add(msgs, Ordering::Relaxed);
        self.in_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Add a batch of outbound counts.
    pub fn add_out(&self, msgs: u64, bytes: u64) {
        self.out_msgs.fetch_add(msgs, Ordering::Relaxed);
        self.out_bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// What `/connz?state=closed` shows about a connection after it is gone.
#[derive(Debug, Clone)]
pub struct ClosedConn {
    /// Connection id.
    pub cid: u64,
    /// Remote address.
    pub addr: SocketAddr,
    /// Accepted at.
    pub start: SystemTime,
    /// Closed at.
    pub stop: SystemTime,
    /// Why.
    pub reason: CloseReason,
    /// CONNECT details.
    pub meta: crate::client::ClientMeta,
    /// Messages received from the client.
    pub in_msgs: u64,
    /// Bytes received from the client.
    pub in_bytes: u64,
    /// Messages delivered to the client.
    pub out_msgs: u64,
    /// Bytes delivered to the client.
    pub out_bytes: u64,
    /// Its last publish, (un)subscribe or delivery (`/connz` `last_activity`).
    pub last_activity: SystemTime,
    /// Its subscriptions when it closed.
    pub subs: Vec<crate::monitor::subsz::SubDetail>,
}

/// Errors that stop the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not bind.
    #[error("Error listening on port: {addr}, {source}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The options are inconsistent.
    #[error("{0}")]
    Options(String),
}

/// State shared by every task of one server.
pub struct ServerShared {
    /// Current options; replaced whole on reload.
    opts: RwLock<Arc<Options>>,
    /// The logger.
    pub log: Arc<Logger>,
    /// Server id (an nkey public key).
    pub server_id: String,
    /// The key behind `server_id`: the server signs auth callout requests with it.
    pub server_key: nkeys::KeyPair,
    /// The server's curve key (INFO `xkey`): auth callout requests are sealed with it and
    /// sealed answers opened.
    pub server_xkey: nkeys::XKey,
    /// Server name.
    pub server_name: String,
    /// Address the client listener is bound to.
    pub client_addr: SocketAddr,
    /// Address the WebSocket listener is bound to, when configured.
    pub websocket_addr: Option<SocketAddr>,
    /// `wss://` TLS settings for new WebSocket connections; replaced on reload.
    websocket_tls: RwLock<Option<Arc<crate::tls::ServerTls>>>,
    /// When the server started.
    pub start_time: SystemTime,
    /// Shared counters.
    pub stats: ServerStats,
    /// Resolved JetStream configuration, when JetStream is enabled.
    pub jetstream: Option<crate::jetstream::config::JsConfig>,
    /// The JetStream engine, once started.
    pub js: std::sync::OnceLock<Arc<crate::jetstream::engine::JetStream>>,
    /// Open client connections by cid.
    clients: Mutex<FxHashMap<u64, Arc<ClientConn>>>,
    /// Recently closed connections, newest last.
    closed: Mutex<VecDeque<ClosedConn>>,
    /// Next connection id.
    next_cid: AtomicU64,
    /// Accounts by name (`$G`, the system account, and configured ones).
    accounts: RwLock<FxHashMap<String, Arc<Account>>>,
    /// Users and credentials; replaced whole on reload.
    auth: RwLock<Arc<AuthRegistry>>,
    /// TLS for new client connections, built from `opts.tls`; replaced on reload.
    tls: RwLock<Option<Arc<crate::tls::ServerTls>>>,
    /// Name of the system account, if there is one.
    pub system_account: Option<String>,
    /// Sequence number of system messages (`server.seq`).
    pub sys_seq: AtomicU64,
    /// HTTP monitoring requests per endpoint path (`http_req_stats`): kept here, not in
    /// the HTTP listener's state, so `$SYS` VARZ reports them too.
    pub http_req_stats: Mutex<std::collections::BTreeMap<&'static str, u64>>,
    /// Set when shutting down; stops the accept loop.
    shutting_down: AtomicBool,
    /// Bumped by every reload ([`ServerShared::set_opts`]): connections compare it at
    /// each read and take the new protocol limits (`max_payload`, `max_control_line`),
    /// as nats-server applies them to existing clients.
    pub opts_gen: std::sync::atomic::AtomicU64,
    /// Set in lame-duck mode.
    lame_duck: AtomicBool,
    /// Wakes the accept loop on shutdown or lame duck.
    stop_accepting: Notify,
    /// Connection tasks still running.
    active_conns: AtomicUsize,
    /// Signalled whenever a connection task ends.
    conn_ended: Notify,
}

impl std::fmt::Debug for ServerShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerShared")
            .field("server_id", &self.server_id)
            .finish_non_exhaustive()
    }
}

impl ServerShared {
    /// Current options.
    pub fn opts(&self) -> Arc<Options> {
        self.opts.read().clone()
    }

    /// Replace the options (reload). Only reloadable settings take effect on existing
    /// connections; listeners keep their addresses.
    pub fn set_opts(&self, opts: Options) {
        self.log.configure(
            opts.log.debug,
            opts.log.trace,
            opts.log.logtime,
            opts.log.logtime_utc,
        );
        // New connections get the new TLS settings (certificates re-read, e.g. renewed
        // ones); open ones keep their session. Validation built it already, so a failure
        // here means a file changed since: keep serving with the old settings.
        match opts
            .tls
            .as_ref()
            .map(crate::tls::ServerTls::build)
            .transpose()
        {
            Ok(tls) => *self.tls.write() = tls.map(Arc::new),
            Err(e) => error!(
                self.log,
                "Reloading TLS failed, keeping the old settings: {}", e
            ),
        }
        // The WebSocket listener runs only if it was configured at start (a reload
        // cannot add or remove it, see `signals::reload_blockers`).
        if self.websocket_addr.is_some() {
            let ws_tls = opts.websocket.as_ref().and_then(|w| w.tls.as_ref());
            match ws_tls.map(crate::tls::ServerTls::build).transpose() {
                Ok(tls) => *self.websocket_tls.write() = tls.map(Arc::new),
                Err(e) => error!(self.log, "Reloading websocket TLS failed: {}", e),
            }
        }
        *self.opts.write() = Arc::new(opts);
        self.opts_gen.fetch_add(1, Ordering::Release);
    }

    /// The global account.
    pub fn global_account(&self) -> Arc<Account> {
        self.account(GLOBAL_ACCOUNT)
            .unwrap_or_else(|| unreachable!("the global account always exists"))
    }

    /// An account by name.
    pub fn account(&self, name: &str) -> Option<Arc<Account>> {
        self.accounts.read().get(name).cloned()
    }

    /// The system account, if enabled.
    pub fn system_account(&self) -> Option<Arc<Account>> {
        self.system_account.as_deref().and_then(|n| self.account(n))
    }

    /// All accounts, sorted by name (for monitoring).
    pub fn accounts(&self) -> Vec<Arc<Account>> {
        let mut v: Vec<_> = self.accounts.read().values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// TLS settings for new client connections, when TLS is configured.
    pub fn tls(&self) -> Option<Arc<crate::tls::ServerTls>> {
        self.tls.read().clone()
    }

    /// `wss://` TLS settings for new WebSocket connections.
    pub fn websocket_tls(&self) -> Option<Arc<crate::tls::ServerTls>> {
        self.websocket_tls.read().clone()
    }

    /// The current users registry.
    pub fn auth(&self) -> Arc<AuthRegistry> {
        self.auth.read().clone()
    }

    /// Apply a reloaded configuration's accounts: accounts that are new are created and
    /// their imports wired; existing accounts keep their subscriptions, take changed
    /// limits, exports and mappings, and have their imports wired again when any import
    /// or export changed.
    pub fn reload_accounts(&self, opts: &Options) -> Result<Vec<String>, String> {
        // Validate the whole new account set first, so a bad reload changes nothing.
        build_accounts(opts)?;
        let cache = !opts.disable_sublist_cache;
        let mut added = Vec::new();
        let mut map = self.accounts.write();
        for a in &opts.accounts.accounts {
            if !map.contains_key(&a.name) {
                map.insert(
                    a.name.clone(),
                    Arc::new(Account::from_config(a, cache, false)),
                );
                added.push(a.name.clone());
            }
        }
        // Changed exports or imports of existing accounts: the new exports replace the
        // old, and every existing account's imports are wired again (an importer may
        // have lost or gained the right to an export). The new set was validated above.
        let mut rewire = false;
        // Mappings: readers pick the new ones up with the new options.
        if let Some(global) = map.get(GLOBAL_ACCOUNT) {
            global.set_mappings(&opts.mappings);
        }
        for a in &opts.accounts.accounts {
            if let Some(acc) = map.get(&a.name)
                && !added.contains(&a.name)
            {
                acc.set_mappings(&a.mappings);
                if acc.exports() != a.exports {
                    acc.set_exports(a.exports.clone());
                    rewire = true;
                }
                rewire |= acc.import_config() != a.imports;
            }
        }
        for a in &opts.accounts.accounts {
            let Some(acc) = map.get(&a.name) else {
                continue;
            };
            if added.contains(&a.name) {
                wire_imports(acc, a, &map).map_err(|e| e.to_string())?;
            } else if rewire {
                acc.clear_imports();
                wire_imports(acc, a, &map).map_err(|e| e.to_string())?;
            }
        }
        let changed: Vec<Arc<Account>> = opts
            .accounts
            .accounts
            .iter()
            .filter_map(|a| {
                let acc = map.get(&a.name)?;
                (!added.contains(&a.name) && acc.limits() != a.limits).then(|| {
                    acc.set_limits(a.limits);
                    acc.clone()
                })
            })
            .collect();
        drop(map);
        for acc in changed {
            self.enforce_account_limits(&acc);
        }
        Ok(added)
    }

    /// After a reload changed `account`'s limits, as nats-server: the oldest connections
    /// beyond a lower `max_connections`, and every connection holding more subscriptions
    /// than a lower `max_subscriptions`, are told why and closed (new connections and new
    /// subscriptions meet the new limits, as does `max_payload`).
    fn enforce_account_limits(&self, account: &Account) {
        let limits = account.limits();
        let mine: Vec<Arc<ClientConn>> = self
            .clients()
            .into_iter()
            .filter(|c| c.is_connected() && c.meta.lock().account == account.name)
            .collect();
        let mut over = 0;
        if limits.max_connections >= 0 {
            over = mine.len().saturating_sub(limits.max_connections as usize);
        }
        for (i, c) in mine.iter().enumerate() {
            if i < over {
                c.err_and_close(
                    "maximum account active connections exceeded",
                    CloseReason::MaxAccountConnectionsExceeded,
                );
            } else if limits.max_subscriptions > 0
                && c.subs.lock().len() as i64 > limits.max_subscriptions
            {
                c.err_and_close(
                    "maximum subscriptions exceeded",
                    CloseReason::MaxSubscriptionsExceeded,
                );
            }
        }
    }

    /// Replace the users registry (reload) and check every connection against it, as
    /// nats-server's reload of the authorization does. With `changed` (the authorization
    /// config changed), clients that have not logged in yet are refused too: they have
    /// no credentials to check yet (they reconnect).
    pub fn set_auth(&self, registry: AuthRegistry, changed: bool) {
        let registry = Arc::new(registry);
        *self.auth.write() = registry.clone();
        for c in self.clients() {
            let user = c.meta.lock().user.clone();
            let nkey = c.meta.lock().nkey.clone();
            let name = nkey.or(user);
            let gone = match (c.is_connected(), name) {
                // A configured user (not the single user or token, `simple_auth`) that the
                // new config no longer has, also when it has no users at all any more.
                // (JWT users are configured nowhere: their JWT is checked again below.)
                (true, Some(n)) => {
                    !registry.operator_mode()
                        && !registry.has_user(&n)
                        && !c.meta.lock().simple_auth
                }
                _ => false,
            };
            if gone {
                // nats-server closes such a connection without a word (no -ERR): the
                // client sees a plain disconnect and reconnects, then fails to log in.
                c.close(CloseReason::ClientClosed, true);
                continue;
            }
            if !c.is_connected() {
                if changed && registry.configured() && c.closing().is_none() {
                    c.err_and_close(
                        "Authorization Violation",
                        CloseReason::AuthenticationViolation,
                    );
                }
                continue;
            }
            // The credentials it logged in with, checked against the new users (a changed
            // password or token, auth added or removed, connection types): refused ones
            // get nats-server's -ERR and are closed; one whose user now belongs to another
            // account is closed (it reconnects into the new one).
            let Some(creds) = c.auth_connect.lock().clone() else {
                continue;
            };
            // Admitted without credentials as the `no_auth_user`: nats-server leaves such a
            // connection as it is, even when `no_auth_user` is gone or names another user.
            let anonymous = [&creds.user, &creds.auth_token, &creds.nkey, &creds.jwt]
                .iter()
                .all(|v| v.as_deref().is_none_or(str::is_empty));
            // (Under `verify_and_map` the certificate is the credential: checked again.)
            if anonymous && !c.meta.lock().simple_auth && !registry.tls_map() {
                continue;
            }
            let certs = c.peer_certs();
            let cert = certs.as_deref().and_then(|v| v.first());
            let checked = registry.authenticate_with(
                &creds,
                &c.nonce,
                cert,
                crate::auth::ConnKind::of(&c),
                Some(c.addr.ip()),
            );
            match checked {
                Err(Some(crate::auth::operator::JwtLoginError::Revoked)) => {
                    c.err_and_close("User Authentication Revoked", CloseReason::Revocation)
                }
                Err(_) => c.err_and_close(
                    "Authorization Violation",
                    CloseReason::AuthenticationViolation,
                ),
                Ok(id) if id.account != c.meta.lock().account => {
                    c.close(CloseReason::ClientClosed, true)
                }
                // A JWT user whose rights changed (the account's default permissions,
                // its signing key's scope) reconnects to get them: its connection keeps
                // the rights it logged in with.
                Ok(id) if jwt_rights_changed(&c, &id) => c.close(CloseReason::ClientClosed, true),
                Ok(_) => {}
            }
        }
    }

    /// Whether the server is shutting down.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Whether lame-duck mode is on.
    pub fn in_lame_duck(&self) -> bool {
        self.lame_duck.load(Ordering::Relaxed)
    }

    /// The base INFO for this server.
    pub fn base_info(&self) -> ServerInfo {
        let opts = self.opts();
        ServerInfo {
            server_id: self.server_id.clone(),
            server_name: self.server_name.clone(),
            version: NATS_COMPAT_VERSION.to_string(),
            proto: 1,
            git_commit: option_env!("NATRIUM_GIT_COMMIT").unwrap_or("").to_string(),
            go: format!("natrium-{NATRIUM_VERSION}"),
            host: opts.host.clone(),
            port: self.client_addr.port(),
            headers: !opts.no_header_support,
            auth_required: self.auth().required(),
            max_payload: opts.max_payload,
            jetstream: opts.jetstream.enabled,
            domain: opts.jetstream.domain.clone().unwrap_or_default(),
            ldm: self.in_lame_duck(),
            api_lvl: API_LEVEL,
            xkey: self.server_xkey.public_key(),
            tls_required: opts.tls.is_some() && !opts.allow_non_tls,
            tls_verify: opts.tls.as_ref().is_some_and(|t| t.verify),
            tls_available: opts.tls.is_some() && opts.allow_non_tls,
            ..ServerInfo::default()
        }
    }

    /// The INFO JSON for one client; `connect_info` for the one after the first PONG.
    pub fn client_info_json(&self, conn: &ClientConn, connect_info: bool) -> String {
        self.client_info(conn, connect_info).to_json()
    }

    /// The INFO for one client; `connect_info` for the one after the first PONG.
    pub fn client_info(&self, conn: &ClientConn, connect_info: bool) -> ServerInfo {
        let mut info = self.base_info();
        info.client_id = conn.cid;
        info.client_ip = conn.addr.ip().to_string();
        // The nonce is for signing CONNECT: the INFO after it leaves it out (nats-server).
        if !connect_info {
            info.nonce = conn.nonce.clone();
        }
        // A WebSocket client hears about the WebSocket listener: its port, and its TLS
        // (as nats-server; `tls_verify` stays the client port's).
        if conn.meta.lock().websocket
            && let Some(ws) = self.websocket_addr
        {
            let secure = self.websocket_tls().is_some();
            info.port = ws.port();
            info.tls_required = secure;
            info.tls_available = secure;
        }
        if connect_info {
            info.connect_info = true;
            // The first INFO leaves it out when a no_auth_user lets clients in without
            // credentials; the one after CONNECT says the server has auth (nats-server).
            info.auth_required = self.auth().configured();
            info.remote_account = conn.meta.lock().account.clone();
            info.acc_is_sys = self.system_account.as_deref() == Some(info.remote_account.as_str());
            // The limit this client publishes under (account and user limits included),
            // so clients size their messages by it (nats-server's `mpay`).
            let mpay = conn.max_payload.load(Ordering::Relaxed);
            if mpay >= 0 {
                info.max_payload = if info.max_payload < 0 {
                    mpay
                } else {
                    info.max_payload.min(mpay)
                };
            }
        }
        info
    }

    /// Number of open client connections.
    pub fn num_clients(&self) -> usize {
        self.clients.lock().len()
    }

    /// Snapshot of open connections, ordered by cid.
    pub fn clients(&self) -> Vec<Arc<ClientConn>> {
        let mut v: Vec<_> = self.clients.lock().values().cloned().collect();
        v.sort_by_key(|c| c.cid);
        v
    }

    /// Snapshot of recently closed connections, oldest first.
    pub fn closed_clients(&self) -> Vec<ClosedConn> {
        self.closed.lock().iter().cloned().collect()
    }

    /// Called by a connection task once it has fully closed.
    /// `subs` are the subscriptions it had, kept for the closed-connections list.
    pub fn client_closed(
        &self,
        conn: &Arc<ClientConn>,
        subs: Vec<Arc<crate::client::subscription::Subscription>>,
    ) {
        self.clients.lock().remove(&conn.cid);
        let account = conn.meta.lock().account.clone();
        if conn.is_connected()
            && let Some(acc) = self.account(&account)
        {
            acc.nconns.fetch_sub(1, Ordering::Relaxed);
            let (om, ob) = conn.out_stats();
            let mut t = acc.closed_traffic.lock();
            t[0] += conn.in_msgs.load(Ordering::Relaxed);
            t[1] += conn.in_bytes.load(Ordering::Relaxed);
            t[2] += om;
            t[3] += ob;
        }
        let reason = conn.closing().unwrap_or(CloseReason::ClientClosed);
        if reason == CloseReason::StaleConnection {
            self.stats.stale_connections.fetch_add(1, Ordering::Relaxed);
        }
        let (out_msgs, out_bytes) = conn.out_stats();
        let max = self.opts().max_closed_clients.max(0) as usize;
        let stop = SystemTime::now();
        let idle =
            crate::client::mono_nanos().saturating_sub(conn.last_activity.load(Ordering::Relaxed));
        let last_activity = stop
            .checked_sub(Duration::from_nanos(idle))
            .unwrap_or(stop)
            .max(conn.start);
        let record = ClosedConn {
            cid: conn.cid,
            addr: conn.addr,
            start: conn.start,
            stop,
            last_activity,
            subs: if max > 0 {
                crate::monitor::connz::closed_sub_details(subs, conn.cid, &account)
            } else {
                Vec::new()
            },
            reason,
            meta: conn.meta.lock().clone(),
            in_msgs: conn.in_msgs.load(Ordering::Relaxed),
            in_bytes: conn.in_bytes.load(Ordering::Relaxed),
            out_msgs,
            out_bytes,
        };
        {
            let mut closed = self.closed.lock();
            closed.push_back(record);
            while closed.len() > max {
                closed.pop_front();
            }
        }
        debug!(
            self.log,
            "{} - cid:{} - Client connection closed: {}",
            conn.addr,
            conn.cid,
            reason.as_str()
        );
        self.active_conns.fetch_sub(1, Ordering::AcqRel);
        self.conn_ended.notify_waiters();
    }

    /// Record and log a slow consumer (the connection has already been told to close).
    pub fn slow_consumer(&self, conn: &ClientConn) {
        self.stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
        let max = self.opts().max_pending;
        info!(
            self.log,
            "{} - cid:{} - Slow Consumer Detected: MaxPending of {} Exceeded",
            conn.addr,
            conn.cid,
            max
        );
    }

    /// Record and log a slow consumer found by the write deadline (a write of `bytes`
    /// did not finish within it), as nats-server records it: counted in `/varz`
    /// `slow_consumers`, logged with the deadline and the size.
    pub fn slow_consumer_write_deadline(
        &self,
        conn: &ClientConn,
        deadline: Duration,
        bytes: usize,
    ) {
        self.stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
        info!(
            self.log,
            "{} - cid:{} - Slow Consumer Detected: WriteDeadline of {} exceeded with 1 chunks of {} total bytes.",
            conn.addr,
            conn.cid,
            crate::jetstream::api::time::go_duration_string(
                i64::try_from(deadline.as_nanos()).unwrap_or(i64::MAX)
            ),
            bytes
        );
    }

    /// Log a client protocol error.
    pub fn log_client_error(&self, conn: &ClientConn, msg: &str) {
        error!(self.log, "{} - cid:{} - {}", conn.addr, conn.cid, msg);
    }

    /// Log an authentication failure.
    pub fn log_auth_failure(&self, conn: &ClientConn, user: Option<&str>, reason: Option<&str>) {
        let why = reason.map(|r| format!(" ({r})")).unwrap_or_default();
        match user {
            Some(u) => error!(
                self.log,
                "{} - cid:{} - authentication error - User {:?}{why}", conn.addr, conn.cid, u
            ),
            None => error!(
                self.log,
                "{} - cid:{} - authentication error{why}", conn.addr, conn.cid
            ),
        }
    }
}

/// A running server.
pub struct Server {
    /// Shared state.
    shared: Arc<ServerShared>,
    /// The accept loop.
    accept_task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.shared.client_addr)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Bind the listeners and start serving. Returns once the server is ready.
    pub async fn start(opts: Options, log: Arc<Logger>) -> Result<Server, StartError> {
        opts.validate().map_err(StartError::Options)?;
        log.configure(
            opts.log.debug,
            opts.log.trace,
            opts.log.logtime,
            opts.log.logtime_utc,
        );
        let server_key = nkeys::KeyPair::new_server();
        let server_id = server_key.public_key();
        let server_name = opts
            .server_name
            .clone()
            .unwrap_or_else(|| server_id.clone());
        info!(log, "Starting nats-server");
        info!(
            log,
            "  Version:  {} (natrium {})", NATS_COMPAT_VERSION, NATRIUM_VERSION
        );
        info!(log, "  Name:     {}", server_name);
        info!(log, "  ID:       {}", server_id);
        if let Some(cf) = &opts.config_file {
            info!(
                log,
                "Using configuration file: {} ({})",
                cf.display(),
                opts.config_digest.as_deref().unwrap_or("")
            );
        }
        for w in &opts.warnings {
            warn!(log, "{}", w);
        }
        let jetstream = if opts.jetstream.enabled {
            let c = crate::jetstream::config::resolve(&opts.jetstream).map_err(|e| {
                StartError::Options(format!("Can't start JetStream: store directory: {e}"))
            })?;
            crate::jetstream::config::log_banner(&log, &c);
            Some(c)
        } else {
            None
        };
        let (listener, client_addr) = bind_listener(&opts.host, opts.port).await?;
        let websocket = match &opts.websocket {
            Some(w) => Some(crate::websocket_listener::bind(w, &opts.host, &log).await?),
            None => None,
        };
        let (accounts, system_account) = build_accounts(&opts).map_err(StartError::Options)?;
        let auth = AuthRegistry::from_options(&opts);
        let tls = opts
            .tls
            .as_ref()
            .map(crate::tls::ServerTls::build)
            .transpose()
            .map_err(|e| StartError::Options(e.to_string()))?
            .map(Arc::new);
        let shared = Arc::new(ServerShared {
            tls: RwLock::new(tls),
            accounts: RwLock::new(accounts),
            auth: RwLock::new(Arc::new(auth)),
            system_account,
            sys_seq: AtomicU64::new(0),
            http_req_stats: Mutex::new(std::collections::BTreeMap::new()),
            opts: RwLock::new(Arc::new(opts)),
            log: log.clone(),
            server_id,
            server_key,
            server_xkey: nkeys::XKey::new(),
            server_name,
            client_addr,
            websocket_addr: websocket.as_ref().map(|w| w.addr),
            websocket_tls: RwLock::new(websocket.as_ref().and_then(|w| w.tls())),
            start_time: SystemTime::now(),
            stats: ServerStats::default(),
            jetstream,
            js: std::sync::OnceLock::new(),
            clients: Mutex::new(FxHashMap::default()),
            closed: Mutex::new(VecDeque::new()),
            next_cid: AtomicU64::new(1),
            shutting_down: AtomicBool::new(false),
            opts_gen: std::sync::atomic::AtomicU64::new(0),
            lame_duck: AtomicBool::new(false),
            stop_accepting: Notify::new(),
            active_conns: AtomicUsize::new(0),
            conn_ended: Notify::new(),
        });
        info!(
            log,
            "Listening for client connections on {}",
            display_host_port(&shared.opts().host, client_addr.port())
        );
        crate::system::start(&shared);
        if let Some(cfg) = shared.jetstream.clone() {
            let js = crate::jetstream::engine::JetStream::start(&shared, cfg).map_err(|e| {
                let msg = format!("Can't start JetStream: {e}");
                crate::error!(log, "{}", msg);
                StartError::Options(msg)
            })?;
            crate::jetstream::api_server::start(&js, &shared);
            let _ = shared.js.set(js);
        }
        let accept_task = tokio::spawn(accept_loop(shared.clone(), listener));
        if let Some(w) = websocket {
            crate::websocket_listener::spawn(shared.clone(), w);
        }
        info!(log, "Server is ready");
        Ok(Server {
            shared,
            accept_task: Some(accept_task),
        })
    }

    /// The shared state (for monitoring, signals and tests).
    pub fn shared(&self) -> &Arc<ServerShared> {
        &self.shared
    }

    /// The bound client address.
    pub fn client_addr(&self) -> SocketAddr {
        self.shared.client_addr
    }

    /// A `nats://127.0.0.1:PORT` URL for clients on this machine.
    pub fn client_url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.shared.client_addr.port())
    }

    /// Enter lame-duck mode, as nats-server does: stop accepting; with no clients, shut
    /// down at once; otherwise tell protocol-1 clients (`ldm: true`), wait the grace
    /// period, then close the clients spread over what is left of `lame_duck_duration`
    /// (duration minus grace, at least 1 s), a random pause of half to all of each
    /// client's share (at most 1 s) between closes and none after the last, then shut
    /// down.
    pub async fn lame_duck(&mut self) {
        let s = self.shared.clone();
        if s.lame_duck.swap(true, Ordering::AcqRel) {
            return;
        }
        info!(s.log, "Entering lame duck mode, stop accepting new clients");
        s.stop_accepting.notify_waiters();
        if let Some(t) = self.accept_task.take() {
            let _ = t.await;
        }
        let clients = s.clients();
        if clients.is_empty() {
            self.shutdown().await;
            return;
        }
        for c in &clients {
            if c.proto_info.load(Ordering::Relaxed) {
                let mut line = Vec::new();
                write::append_info(&mut line, s.client_info_json(c, false).as_bytes());
                c.send_proto(&line);
            }
        }
        let opts = s.opts();
        let (duration, grace) = (opts.lame_duck_duration, opts.lame_duck_grace_period);
        drop(opts);
        tokio::time::sleep(grace).await;
        let clients = s.clients();
        let (gap, batch) = lame_duck_pacing(duration, grace, clients.len());
        info!(s.log, "Closing existing clients");
        let last = clients.len().saturating_sub(1);
        for (i, c) in clients.into_iter().enumerate() {
            c.close(CloseReason::ServerShutdown, true);
            if i == last {
                break;
            }
            if batch <= 1 || i % batch == 0 {
                // At least half the share, at random up to all of it (nats-server).
                let half = gap / 2;
                let extra = gap.saturating_sub(half).mul_f64(rand::random::<f64>());
                tokio::time::sleep(half + extra).await;
            }
        }
        self.shutdown().await;
    }

    /// Stop accepting, close every connection, and wait for their tasks to finish.
    pub async fn shutdown(&mut self) {
        let s = self.shared.clone();
        let first = !s.shutting_down.swap(true, Ordering::AcqRel);
        if first {
            // Pull requests learn first, while their connections are still open.
            if let Some(js) = s.js.get() {
                js.signal_pull_consumers(&s);
            }
            info!(s.log, "Initiating Shutdown...");
        }
        s.stop_accepting.notify_waiters();
        if let Some(t) = self.accept_task.take() {
            let _ = t.await;
        }
        for c in s.clients() {
            c.close(CloseReason::ServerShutdown, true);
        }
        if let Some(js) = s.js.get() {
            js.shutdown();
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while s.active_conns.load(Ordering::Acquire) > 0 {
            let ended = s.conn_ended.notified();
            if s.active_conns.load(Ordering::Acquire) == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                break;
            }
        }
        info!(s.log, "Server Exiting..");
    }
}

/// How lame duck mode spaces the closing of `clients` clients (nats-server's rule): the
/// time left after the grace period (at least 1 s) split evenly, at most 1 s each; when
/// that is under a nanosecond per client, clients are closed in batches with 1 ns pauses.
/// Returns the pause per step and the clients per step.
pub fn lame_duck_pacing(duration: Duration, grace: Duration, clients: usize) -> (Duration, usize) {
    let left = duration.saturating_sub(grace);
    let left = if left.is_zero() {
        Duration::from_secs(1)
    } else {
        left
    };
    let n = clients.max(1) as u128;
    let per = left.as_nanos() / n;
    if per < 1 {
        let batch = usize::try_from(n / left.as_nanos().max(1)).unwrap_or(usize::MAX);
        return (Duration::from_nanos(1), batch.max(1));
    }
    let per = Duration::from_nanos(u64::try_from(per).unwrap_or(u64::MAX));
    (per.min(Duration::from_secs(1)), 1)
}

/// Resolve a host string for binding; `0.0.0.0`/`::` and names are allowed.
/// Binds a listener on `host` and `port` (`-1` or `0`: a random port), with the address
/// in the error (the client, monitoring and WebSocket listeners all bind this way).
///
/// The IPv4 wildcard `0.0.0.0` (the default) is bound as a dual-stack IPv6 socket, as Go
/// binds it for nats-server, so clients reach the server over IPv6 (`[::1]`) too; where
/// the host has no IPv6 it is bound as plain IPv4. The address returned is the one asked
/// for (`0.0.0.0:<port>`), and accepted peers are shown as IPv4 ([`canonical_peer`]).
pub(crate) async fn bind_listener(
    host: &str,
    port: i32,
) -> Result<(TcpListener, SocketAddr), StartError> {
    // An empty host is every interface, as nats-server's default host.
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    let bind = bind_addr(host, port.max(0));
    let listen_error = |source| StartError::Listen {
        addr: bind.clone(),
        source,
    };
    // Below -1 is no port (nats-server: `listen tcp: address -5: invalid port`), not a
    // random one.
    if port < -1 {
        return Err(StartError::Listen {
            addr: bind_addr(host, port),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "invalid port"),
        });
    }
    // A port out of u16's range skips the dual-stack attempt, so the plain bind below
    // reports it instead of silently listening on a random port.
    if host == "0.0.0.0"
        && let Ok(port) = u16::try_from(port.max(0))
        && let Ok(listener) = bind_dual_stack(port)
    {
        let port = listener.local_addr().map_err(listen_error)?.port();
        return Ok((
            listener,
            SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, port)),
        ));
    }
    let listener = TcpListener::bind(&bind).await.map_err(listen_error)?;
    let addr = listener.local_addr().map_err(listen_error)?;
    Ok((listener, addr))
}

/// A listener on `[::]:port` that takes IPv4 connections too (`IPV6_V6ONLY` off).
fn bind_dual_stack(port: u16) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_only_v6(false)?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)).into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// A peer's address as nats-server shows it: an IPv4 client of a dual-stack listener
/// arrives as an IPv4-mapped IPv6 address (`::ffff:127.0.0.1`), shown as plain IPv4.
pub(crate) fn canonical_peer(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::from((v4, v6.port())),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

fn bind_addr(host: &str, port: i32) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `HOST:PORT` as nats-server logs it.
fn display_host_port(host: &str, port: u16) -> String {
    bind_addr(host, i32::from(port))
}

async fn accept_loop(s: Arc<ServerShared>, listener: TcpListener) {
    loop {
        // Register for the stop signal before checking the flags, so a stop that lands
        // between the check and the await is not missed.
        let stop = s.stop_accepting.notified();
        tokio::pin!(stop);
        stop.as_mut().enable();
        if s.shutting_down.load(Ordering::Acquire) || s.in_lame_duck() {
            break;
        }
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = &mut stop => break,
        };
        let (stream, addr) = match accepted {
            Ok((stream, addr)) => (stream, canonical_peer(addr)),
            Err(e) => {
                error!(s.log, "Error accepting client connection: {}", e);
                // Usually out of file descriptors: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let conn = s.new_client(addr);
        match s.admit(&conn) {
            Admission::Admitted => {}
            Admission::Full => {
                tokio::spawn(refuse_max_connections(s.clone(), conn, stream));
                continue;
            }
            Admission::Stopping => break,
        }
        tokio::spawn(reader::run(conn, stream, s.clone()));
    }
    drop(listener);
}

/// What [`ServerShared::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Registered.
    Admitted,
    /// At `max_connections`.
    Full,
    /// The server no longer takes clients.
    Stopping,
}

/// Over `max_connections`: send INFO, then the error, then close (as nats-server does).
async fn refuse_max_connections(s: Arc<ServerShared>, conn: Arc<ClientConn>, stream: TcpStream) {
    use tokio::io::AsyncWriteExt;
    let mut stream = stream;
    let mut bytes = Vec::new();
    write::append_info(&mut bytes, s.client_info_json(&conn, false).as_bytes());
    write::append_err(&mut bytes, "maximum connections exceeded");
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(&bytes)).await;
    let _ = stream.shutdown().await;
    s.record_refused(&conn);
}

impl ServerShared {
    /// A new connection from `addr`: its id, and the nonce INFO carries when nkey users
    /// exist. Counted in `/varz total_connections`.
    pub(crate) fn new_client(&self, addr: SocketAddr) -> Arc<ClientConn> {
        let cid = self.next_cid.fetch_add(1, Ordering::Relaxed);
        self.stats.total_connections.fetch_add(1, Ordering::Relaxed);
        let nonce = if self.auth().needs_nonce() {
            crate::auth::new_nonce()
        } else {
            String::new()
        };
        Arc::new(ClientConn::new(cid, addr).with_nonce(nonce))
    }

    /// Registers `conn` unless the server is at `max_connections` or no longer takes
    /// clients (shutdown, lame duck: a WebSocket upgrade can finish after that began). A
    /// registered connection's task must end in [`ServerShared::client_closed`].
    pub(crate) fn admit(&self, conn: &Arc<ClientConn>) -> Admission {
        let max = self.opts().max_connections;
        {
            let mut clients = self.clients.lock();
            if self.stop_accepting() {
                return Admission::Stopping;
            }
            if max >= 0 && clients.len() as i64 >= max {
                return Admission::Full;
            }
            clients.insert(conn.cid, conn.clone());
        }
        self.active_conns.fetch_add(1, Ordering::AcqRel);
        Admission::Admitted
    }

    /// Whether listeners should stop accepting (shutdown or lame duck).
    pub(crate) fn stop_accepting(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire) || self.in_lame_duck()
    }

    /// Signalled when listeners should stop accepting.
    pub(crate) fn stop_accepting_signal(&self) -> &Notify {
        &self.stop_accepting
    }

    /// Records a connection refused at `max_connections` in the closed list.
    pub(crate) fn record_refused(&self, conn: &ClientConn) {
        let s = self;
        error!(
            s.log,
            "{} - cid:{} - maximum connections exceeded", conn.addr, conn.cid
        );
        let record = ClosedConn {
            cid: conn.cid,
            addr: conn.addr,
            start: conn.start,
            stop: SystemTime::now(),
            reason: CloseReason::MaxConnectionsExceeded,
            meta: Default::default(),
            in_msgs: 0,
            in_bytes: 0,
            out_msgs: 0,
            out_bytes: 0,
            last_activity: conn.start,
            subs: Vec::new(),
        };
        let max = s.opts().max_closed_clients.max(0) as usize;
        let mut closed = s.closed.lock();
        closed.push_back(record);
        while closed.len() > max {
            closed.pop_front();
        }
    }
}

/// Whether a JWT user's permissions or limits differ from those it logged in with.
fn jwt_rights_changed(c: &ClientConn, now: &crate::auth::Identity) -> bool {
    let meta = c.meta.lock();
    match (&meta.jwt_user, &now.jwt_user) {
        (Some(before), Some(after)) => before.rights != after.rights,
        _ => false,
    }
}

/// Accounts by name.
pub type AccountMap = FxHashMap<String, Arc<Account>>;

/// Create every account from the options and wire their imports. Returns the accounts by
/// name and the system account's name (if enabled).
pub fn build_accounts(opts: &Options) -> Result<(AccountMap, Option<String>), String> {
    let cache = !opts.disable_sublist_cache;
    let mut map: FxHashMap<String, Arc<Account>> = FxHashMap::default();
    // Without an accounts block, the global account gets JetStream with no limits.
    let global_js = (!opts.accounts.accounts_block && opts.jetstream.enabled)
        .then(crate::options::AccountJsLimits::default);
    let global = crate::options::AccountConfig {
        name: GLOBAL_ACCOUNT.to_string(),
        jetstream: global_js,
        mappings: opts.mappings.clone(),
        ..Default::default()
    };
    map.insert(
        GLOBAL_ACCOUNT.to_string(),
        Arc::new(Account::from_config(&global, cache, false)),
    );
    let system =
        (!opts.accounts.no_system_account).then(|| opts.accounts.system_account_name().to_string());
    for a in &opts.accounts.accounts {
        let is_sys = system.as_deref() == Some(a.name.as_str());
        let mut cfg = a.clone();
        if is_sys {
            // JetStream cannot be enabled for the system account.
            cfg.jetstream = None;
        }
        map.insert(
            a.name.clone(),
            Arc::new(Account::from_config(&cfg, cache, is_sys)),
        );
    }
    // A system account named in the config must be one of its accounts (nats-server
    // refuses to start otherwise); only the default `$SYS` is made up on the spot.
    if let Some(sys) = &system
        && opts.accounts.system_account.as_deref() == Some(sys.as_str())
        && sys != "$SYS"
        && !map.contains_key(sys)
    {
        return Err("error resolving system account: account missing".to_string());
    }
    if let Some(sys) = &system
        && !map.contains_key(sys)
    {
        let cfg = crate::options::AccountConfig {
            name: sys.clone(),
            ..Default::default()
        };
        map.insert(
            sys.clone(),
            Arc::new(Account::from_config(&cfg, cache, true)),
        );
    }
    for a in &opts.accounts.accounts {
        if let Some(acc) = map.get(&a.name) {
            wire_imports(acc, a, &map).map_err(|e| e.to_string())?;
        }
    }
    for u in &opts.accounts.users {
        if !map.contains_key(&u.account) {
            return Err(format!(
                "user {:?} references unknown account {:?}",
                u.name, u.account
            ));
        }
    }
    if let Some(n) = &opts.accounts.no_auth_user
        && !opts.accounts.users.iter().any(|u| &u.name == n)
    {
        return Err(format!(
            "no_auth_user: {n:?} not present as user or nkey in authorization block or account configuration"
        ));
    }
    Ok((map, system))
}

#[cfg(test)]
mod tests {
    use super::lame_duck_pacing;
    use std::time::Duration;

    /// The default `0.0.0.0` listener is one dual-stack socket (nats-server's, by Go,
    /// takes IPv6 clients too), and its IPv4 clients are shown as IPv4. Only
    /// 127.0.0.1 is connected to.
    #[tokio::test]
    async fn the_ipv4_wildcard_is_bound_dual_stack_and_shows_ipv4_peers() {
        let (listener, addr) = super::bind_listener("0.0.0.0", 0).await.unwrap();
        assert_eq!(addr.ip(), std::net::Ipv4Addr::UNSPECIFIED, "{addr}");
        assert_ne!(addr.port(), 0);
        let local = listener.local_addr().unwrap();
        if local.is_ipv6() {
            let only_v6 = socket2::SockRef::from(&listener).only_v6().unwrap();
            assert!(!only_v6, "IPv4 clients must be taken too");
        }
        let client = tokio::net::TcpStream::connect(("127.0.0.1", addr.port()));
        let (accepted, client) = tokio::join!(listener.accept(), client);
        let (_conn, peer) = accepted.unwrap();
        let client = client.unwrap();
        let shown = super::canonical_peer(peer);
        assert_eq!(shown, client.local_addr().unwrap(), "raw peer {peer}");
    }

    /// A port beyond u16 is an error on the wildcard too, never a random port.
    #[tokio::test]
    async fn an_out_of_range_port_on_the_wildcard_is_an_error() {
        let err = super::bind_listener("0.0.0.0", 70000).await.unwrap_err();
        assert!(err.to_string().contains("70000"), "{err}");
    }

    /// `-a ""` binds every interface, as nats-server does.
    #[tokio::test]
    async fn an_empty_host_is_the_wildcard() {
        let (_listener, addr) = super::bind_listener("", 0).await.unwrap();
        assert_eq!(addr.ip(), std::net::Ipv4Addr::UNSPECIFIED, "{addr}");
        assert_ne!(addr.port(), 0);
    }

    #[test]
    fn canonical_peer_unmaps_ipv4_and_keeps_real_ipv6() {
        use std::net::SocketAddr;
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:4222".parse().unwrap();
        assert_eq!(
            super::canonical_peer(mapped),
            "127.0.0.1:4222".parse::<SocketAddr>().unwrap()
        );
        let v6: SocketAddr = "[::1]:4222".parse().unwrap();
        assert_eq!(super::canonical_peer(v6), v6);
        let v4: SocketAddr = "10.0.0.1:1".parse().unwrap();
        assert_eq!(super::canonical_peer(v4), v4);
    }

    #[test]
    fn lame_duck_spreads_closes_over_the_duration_left_after_the_grace_period() {
        let s = Duration::from_secs;
        // 30 clients, 30 s duration, 20 s grace: 10 s left, a third of a second each.
        assert_eq!(
            lame_duck_pacing(s(30), s(20), 30),
            (Duration::from_nanos(333_333_333), 1)
        );
        // Few clients over a long duration: at most 1 s between closes.
        assert_eq!(lame_duck_pacing(s(120), s(10), 10), (s(1), 1));
        // A grace period as long as the duration leaves 1 s.
        assert_eq!(
            lame_duck_pacing(s(30), s(40), 5),
            (Duration::from_millis(200), 1)
        );
        // More clients than nanoseconds: batches with 1 ns pauses.
        assert_eq!(
            lame_duck_pacing(Duration::from_nanos(10), Duration::ZERO, 35),
            (Duration::from_nanos(1), 3)
        );
    }
}
