//! `/connz`: open and recently closed client connections.
//!
//! This follows nats-server's `Connz()` step by step, quirks included, because scripts
//! page through it and compare totals: `total` counts the connections of the selected
//! state (and account) *before* the `user` filter; `cid=` forces `limit` to 1; an unknown
//! `acc=` answers with an empty `server_id` and `"connections": null`; closed
//! connections of the global account carry no account name, so `acc=$G` never lists
//! closed ones; only the `cid` order is ascending, every other sort is descending except
//! `uptime` and `reason`.
//!
//! `last_activity` is, as nats-server's, the last publish, subscribe, unsubscribe or
//! write that delivered messages (PINGs and PONGs do not count). A closed connection
//! keeps it and its subscriptions (`closed_sub_details`), not its pending bytes.

use super::Monitor;
use super::format::{go_duration, my_uptime};
use super::json::GoTime;
use super::query::{ConnState, Query, QueryError};
use super::subsz::{DEFAULT_LIST_SIZE, SubDetail, page_bounds};
use crate::account::GLOBAL_ACCOUNT;
use crate::client::subscription::Subscription;
use crate::client::{ClientConn, ClientMeta, mono_to_instant};
use crate::options::Options;
use crate::server::ClosedConn;
use serde::Serialize;
use std::cmp::Reverse;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

/// What `authorized_user` shows for a token-authenticated client (nats-server's text).
const REDACTED: &str = "[REDACTED]";

/// `/connz` sort orders (`sort=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOpt {
    /// Connection id, ascending (the default).
    Cid,
    /// Start time: same as `Cid`.
    Start,
    /// Subscription count, descending.
    Subs,
    /// Pending outbound bytes, descending.
    Pending,
    /// Messages sent to the client, descending.
    MsgsTo,
    /// Messages received from the client, descending.
    MsgsFrom,
    /// Bytes sent to the client, descending.
    BytesTo,
    /// Bytes received from the client, descending.
    BytesFrom,
    /// Last activity, most recent first.
    Last,
    /// Idle time, longest first.
    Idle,
    /// Uptime, shortest first (nats-server does not reverse this one).
    Uptime,
    /// Close time, most recent first (closed connections only).
    Stop,
    /// Close reason, alphabetical (closed connections only).
    Reason,
    /// Round-trip time, longest first.
    Rtt,
}

impl SortOpt {
    /// The order for a `sort=` value (case-sensitive, as in nats-server).
    pub fn parse(s: &str) -> Option<SortOpt> {
        Some(match s {
            "" | "cid" => SortOpt::Cid,
            "start" => SortOpt::Start,
            "subs" => SortOpt::Subs,
            "pending" => SortOpt::Pending,
            "msgs_to" => SortOpt::MsgsTo,
            "msgs_from" => SortOpt::MsgsFrom,
            "bytes_to" => SortOpt::BytesTo,
            "bytes_from" => SortOpt::BytesFrom,
            "last" => SortOpt::Last,
            "idle" => SortOpt::Idle,
            "uptime" => SortOpt::Uptime,
            "stop" => SortOpt::Stop,
            "reason" => SortOpt::Reason,
            "rtt" => SortOpt::Rtt,
            _ => return None,
        })
    }
}

/// Why `/connz` refused a request (HTTP 400, `Display` is the body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnzError {
    /// Unknown `sort` value.
    #[error("invalid sorting option: {0}")]
    InvalidSort(String),
    /// `sort=stop` without `state=closed`.
    #[error("sort by stop only valid on closed connections")]
    StopNeedsClosed,
    /// `sort=reason` without `state=closed`.
    #[error("sort by reason only valid on closed connections")]
    ReasonNeedsClosed,
}

/// `/connz` request options.
#[derive(Debug, Clone, Default)]
pub struct ConnzOptions {
    /// `sort` as given (validated when the answer is built, as nats-server does).
    pub sort: String,
    /// Include `authorized_user`, `account`, `name_tag` (`auth`).
    pub auth: bool,
    /// Include `subscriptions_list` (`subs=1`).
    pub subs: bool,
    /// Include `subscriptions_list_detail` (`subs=detail`).
    pub subs_detail: bool,
    /// Skip this many connections (`offset`).
    pub offset: i64,
    /// At most this many connections (`limit`; 0 or less means 1024).
    pub limit: i64,
    /// Only this connection (`cid`; 0 means all).
    pub cid: u64,
    /// Open, closed or both (`state`).
    pub state: ConnState,
    /// Only connections authenticated as this user (`user`).
    pub user: String,
    /// Only connections of this account (`acc`).
    pub account: String,
    /// Only this MQTT client id (`mqtt_client`; natrium has no MQTT, so nothing matches).
    pub mqtt_client: String,
}

impl ConnzOptions {
    /// Decodes the query string as nats-server's `HandleConnz` does, in its order, so the
    /// first bad parameter is the one reported.
    pub fn from_query(q: &Query) -> Result<Self, QueryError> {
        let sort = q.get("sort").to_string();
        let auth = q.bool("auth")?;
        let (subs, subs_detail) = q.subs()?;
        let offset = q.int("offset")?;
        let limit = q.int("limit")?;
        let cid = q.uint64("cid")?;
        let state = q.state()?;
        Ok(ConnzOptions {
            sort,
            auth,
            subs,
            subs_detail,
            offset,
            limit,
            cid,
            state,
            user: q.get("user").to_string(),
            account: q.get("acc").to_string(),
            mqtt_client: q.get("mqtt_client").to_string(),
        })
    }
}

/// The `/connz` body.
#[derive(Debug, Clone, Serialize)]
pub struct Connz {
    /// Server id (empty when `acc` names an unknown account, as in nats-server).
    pub server_id: String,
    /// Now.
    pub now: GoTime,
    /// Connections in this page.
    pub num_connections: usize,
    /// Connections of the selected state (and account), before paging.
    pub total: usize,
    /// Page offset.
    pub offset: i64,
    /// Page size.
    pub limit: i64,
    /// The page; `null` only for an unknown account.
    pub connections: Option<Vec<ConnInfo>>,
}

/// One connection.
#[derive(Debug, Clone, Serialize)]
pub struct ConnInfo {
    /// Connection id.
    pub cid: u64,
    /// Connection kind: always `Client` here.
    pub kind: &'static str,
    /// Client type: always `nats` (no websocket or MQTT yet).
    #[serde(rename = "type")]
    pub client_type: &'static str,
    /// Remote IP.
    pub ip: String,
    /// Remote port.
    pub port: u16,
    /// Accepted at.
    pub start: GoTime,
    /// Last activity.
    pub last_activity: GoTime,
    /// Closed at (closed connections).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<GoTime>,
    /// Close reason (closed connections).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Round-trip time, Go duration string.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub rtt: String,
    /// Time since start (until close for closed ones).
    pub uptime: String,
    /// Time since last activity.
    pub idle: String,
    /// Outbound bytes not yet written.
    pub pending_bytes: usize,
    /// Messages received from the client.
    pub in_msgs: u64,
    /// Messages sent to the client.
    pub out_msgs: u64,
    /// Bytes received from the client.
    pub in_bytes: u64,
    /// Bytes sent to the client.
    pub out_bytes: u64,
    /// Subscription count.
    pub subscriptions: usize,
    /// Client name from CONNECT.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Client library language.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub lang: String,
    /// Client library version.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// TLS version of a TLS connection (`1.2`, `1.3`).
    #[serde(skip_serializing_if = "str::is_empty")]
    pub tls_version: &'static str,
    /// Negotiated cipher suite, in Go's spelling.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub tls_cipher_suite: String,
    /// The client's certificates (`auth=1`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tls_peer_certs: Vec<TlsPeerCert>,
    /// The TLS handshake came before INFO (`handshake_first`).
    #[serde(skip_serializing_if = "is_false")]
    pub tls_first: bool,
    /// Authenticated user (`auth=1`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub authorized_user: String,
    /// Account, unless the global one (`auth=1`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub account: String,
    /// Subscribed subjects (`subs=1`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subscriptions_list: Vec<String>,
    /// Subscription details (`subs=detail`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subscriptions_list_detail: Vec<SubDetail>,
    /// A JWT user's JWT (`auth=1`; not for bearer tokens).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub jwt: String,
    /// For an nkey user, its account's name (`auth=1`), as nats-server reports it; for a
    /// JWT user the key that signed it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub issuer_key: String,
    /// Account name tag (`auth=1`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name_tag: String,
    /// A JWT user's tags (`auth=1`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// RTT in nanoseconds, for sorting.
    #[serde(skip)]
    rtt_nanos: u64,
}

/// The account a client is bound to; before CONNECT every client is in the global one.
fn account_of(meta: &ClientMeta) -> &str {
    if meta.account.is_empty() {
        GLOBAL_ACCOUNT
    } else {
        &meta.account
    }
}

/// The account nats-server records for a closed connection: empty for the global one.
fn closed_account(cc: &ClosedConn) -> &str {
    match account_of(&cc.meta) {
        GLOBAL_ACCOUNT => "",
        a => a,
    }
}

/// nats-server's `getRawAuthUser`: the user name, or `[REDACTED]` for a token.
/// natrium does not keep which credential was used, so a client that completed CONNECT
/// (its account is set) without a user on a token-protected server is shown as a token.
fn raw_auth_user(meta: &ClientMeta, token_auth: bool) -> String {
    match &meta.user {
        Some(u) => u.clone(),
        None if token_auth && !meta.account.is_empty() => REDACTED.to_string(),
        None => String::new(),
    }
}

/// nats-server's `getRTT` rounding: microseconds between 1µs and 1ms.
fn rtt_string(nanos: u64) -> String {
    let rtt = if nanos > 1_000 && nanos < 1_000_000 {
        nanos / 1_000 * 1_000
    } else {
        nanos
    };
    go_duration(i64::try_from(rtt).unwrap_or(i64::MAX))
}

/// The subscriptions of an open connection, in sid order (nats-server's order is its
/// map's, i.e. arbitrary; sid order makes ours stable).
fn subs_of(c: &ClientConn) -> Vec<Arc<Subscription>> {
    let mut subs: Vec<_> = c.subs.lock().values().cloned().collect();
    sort_by_sid(&mut subs);
    subs
}

/// Subscriptions in sid order (shorter sids first, so `2` before `10`).
fn sort_by_sid(subs: &mut [Arc<Subscription>]) {
    subs.sort_by(|a, b| {
        a.sid
            .len()
            .cmp(&b.sid.len())
            .then_with(|| a.sid.cmp(&b.sid))
    });
}

/// What the closed-connections list keeps of a connection's subscriptions, in sid
/// order. Unlike an open connection's, these name the account (nats-server's
/// `newSubDetail` at close).
pub fn closed_sub_details(
    mut subs: Vec<Arc<Subscription>>,
    cid: u64,
    account: &str,
) -> Vec<SubDetail> {
    sort_by_sid(&mut subs);
    subs.iter()
        .map(|s| {
            let mut d = SubDetail::new(s, cid);
            d.account = account.to_string();
            d.account_tag = account.to_string();
            d
        })
        .collect()
}

/// Clock pair for converting monotonic instants to wall-clock times.
#[derive(Clone, Copy)]
struct Clock {
    /// Wall-clock now.
    sys: SystemTime,
    /// Monotonic now, taken together with `sys`.
    mono: Instant,
}

impl Clock {
    /// The wall-clock time of `t`.
    fn wall(&self, t: Instant) -> SystemTime {
        self.sys
            .checked_sub(self.mono.saturating_duration_since(t))
            .unwrap_or(self.sys)
    }
}

/// A `ConnInfo` for an open connection.
fn open_info(
    c: &ClientConn,
    clock: Clock,
    o: &ConnzOptions,
    token_auth: bool,
    opts: &Options,
) -> ConnInfo {
    let meta = c.meta.lock().clone();
    let (out_msgs, out_bytes, pending) = {
        let out = c.out.lock();
        (out.out_msgs, out.out_bytes, out.buf.len() + out.inflight)
    };
    let last_mono = mono_to_instant(c.last_activity.load(Ordering::Relaxed));
    let last = clock.wall(last_mono).max(c.start);
    let subs = subs_of(c);
    let mut info = ConnInfo {
        cid: c.cid,
        kind: "Client",
        client_type: if meta.websocket { "websocket" } else { "nats" },
        ip: c.addr.ip().to_string(),
        port: c.addr.port(),
        start: GoTime(c.start),
        last_activity: GoTime(last),
        stop: None,
        reason: String::new(),
        rtt: rtt_string(meta.rtt_nanos),
        uptime: my_uptime(clock.sys.duration_since(c.start).unwrap_or_default()),
        idle: my_uptime(clock.sys.duration_since(last).unwrap_or_default()),
        pending_bytes: pending,
        in_msgs: c.in_msgs.load(Ordering::Relaxed),
        out_msgs,
        in_bytes: c.in_bytes.load(Ordering::Relaxed),
        out_bytes,
        subscriptions: subs.len(),
        name: meta.name.clone(),
        lang: meta.lang.clone(),
        version: meta.version.clone(),
        tls_version: meta.tls.as_ref().map_or("", |t| t.version),
        tls_cipher_suite: meta
            .tls
            .as_ref()
            .map_or_else(String::new, |t| t.cipher_suite.clone()),
        tls_peer_certs: Vec::new(),
        tls_first: meta.tls.as_ref().is_some_and(|t| t.first),
        authorized_user: String::new(),
        account: String::new(),
        subscriptions_list: Vec::new(),
        subscriptions_list_detail: Vec::new(),
        jwt: String::new(),
        issuer_key: String::new(),
        name_tag: String::new(),
        tags: Vec::new(),
        rtt_nanos: meta.rtt_nanos,
    };
    if o.subs_detail {
        info.subscriptions_list_detail = subs.iter().map(|s| SubDetail::new(s, c.cid)).collect();
    } else if o.subs {
        info.subscriptions_list = subs
            .iter()
            .map(|s| String::from_utf8_lossy(&s.subject).into_owned())
            .collect();
    }
    if o.auth {
        info.tls_peer_certs = peer_certs(&meta);
        info.authorized_user = raw_auth_user(&meta, token_auth);
        let acc = account_of(&meta);
        if acc != GLOBAL_ACCOUNT {
            info.account = acc.to_string();
        }
        if meta.nkey.is_some() {
            info.issuer_key = acc.to_string();
        }
        info.name_tag = crate::config_operator::name_tag(opts, acc);
        jwt_fields(&mut info, meta.jwt_user.as_deref());
    }
    info
}

/// A JWT user's `jwt`, `issuer_key` and `tags`.
fn jwt_fields(info: &mut ConnInfo, user: Option<&crate::auth::operator::JwtUser>) {
    if let Some(u) = user {
        info.jwt = u.jwt.clone();
        info.issuer_key = u.issuer.clone();
        info.tags = u.tags.clone();
    }
}

/// A `ConnInfo` for a closed connection.
fn closed_info(cc: &ClosedConn, o: &ConnzOptions, token_auth: bool, opts: &Options) -> ConnInfo {
    let last = cc.last_activity;
    let mut info = ConnInfo {
        cid: cc.cid,
        kind: "Client",
        client_type: if cc.meta.websocket {
            "websocket"
        } else {
            "nats"
        },
        ip: cc.addr.ip().to_string(),
        port: cc.addr.port(),
        start: GoTime(cc.start),
        last_activity: GoTime(last),
        stop: Some(GoTime(cc.stop)),
        reason: cc.reason.as_str().to_string(),
        rtt: rtt_string(cc.meta.rtt_nanos),
        uptime: my_uptime(cc.stop.duration_since(cc.start).unwrap_or_default()),
        idle: my_uptime(cc.stop.duration_since(last).unwrap_or_default()),
        pending_bytes: 0,
        in_msgs: cc.in_msgs,
        out_msgs: cc.out_msgs,
        in_bytes: cc.in_bytes,
        out_bytes: cc.out_bytes,
        subscriptions: cc.subs.len(),
        name: cc.meta.name.clone(),
        lang: cc.meta.lang.clone(),
        version: cc.meta.version.clone(),
        tls_version: cc.meta.tls.as_ref().map_or("", |t| t.version),
        tls_cipher_suite: cc
            .meta
            .tls
            .as_ref()
            .map_or_else(String::new, |t| t.cipher_suite.clone()),
        tls_peer_certs: Vec::new(),
        tls_first: cc.meta.tls.as_ref().is_some_and(|t| t.first),
        authorized_user: String::new(),
        account: String::new(),
        subscriptions_list: Vec::new(),
        subscriptions_list_detail: Vec::new(),
        jwt: String::new(),
        issuer_key: String::new(),
        name_tag: String::new(),
        tags: Vec::new(),
        rtt_nanos: cc.meta.rtt_nanos,
    };
    if o.subs_detail {
        info.subscriptions_list_detail = cc.subs.clone();
    } else if o.subs {
        info.subscriptions_list = cc.subs.iter().map(|s| s.subject.clone()).collect();
    }
    if o.auth {
        info.tls_peer_certs = peer_certs(&cc.meta);
        info.authorized_user = raw_auth_user(&cc.meta, token_auth);
        let acc = closed_account(cc);
        if !acc.is_empty() {
            info.account = acc.to_string();
            if cc.meta.nkey.is_some() {
                info.issuer_key = acc.to_string();
            }
            info.name_tag = crate::config_operator::name_tag(opts, acc);
            jwt_fields(&mut info, cc.meta.jwt_user.as_deref());
        }
    }
    info
}

/// Sorts `infos` (already in cid order; ties keep it) as nats-server's `sort=` does.
fn sort_infos(infos: &mut [ConnInfo], sort: SortOpt, now: SystemTime) {
    match sort {
        SortOpt::Cid | SortOpt::Start => {}
        SortOpt::Subs => infos.sort_by_key(|i| Reverse(i.subscriptions)),
        SortOpt::Pending => infos.sort_by_key(|i| Reverse(i.pending_bytes)),
        SortOpt::MsgsTo => infos.sort_by_key(|i| Reverse(i.out_msgs)),
        SortOpt::MsgsFrom => infos.sort_by_key(|i| Reverse(i.in_msgs)),
        SortOpt::BytesTo => infos.sort_by_key(|i| Reverse(i.out_bytes)),
        SortOpt::BytesFrom => infos.sort_by_key(|i| Reverse(i.in_bytes)),
        SortOpt::Last => infos.sort_by_key(|i| Reverse(i.last_activity)),
        // Longest idle first is oldest activity first.
        SortOpt::Idle => infos.sort_by_key(|i| i.last_activity),
        SortOpt::Uptime => infos.sort_by_key(|i| {
            let end = i.stop.map_or(now, |s| s.0);
            end.duration_since(i.start.0).unwrap_or_default()
        }),
        SortOpt::Stop => infos.sort_by_key(|i| Reverse(i.stop)),
        SortOpt::Reason => infos.sort_by(|a, b| a.reason.cmp(&b.reason)),
        SortOpt::Rtt => infos.sort_by_key(|i| Reverse(i.rtt_nanos)),
    }
}

/// Builds `/connz`.
pub fn connz(mon: &Monitor, o: &ConnzOptions) -> Result<Connz, ConnzError> {
    let sort = SortOpt::parse(&o.sort).ok_or_else(|| ConnzError::InvalidSort(o.sort.clone()))?;
    if sort == SortOpt::Stop && o.state != ConnState::Closed {
        return Err(ConnzError::StopNeedsClosed);
    }
    if sort == SortOpt::Reason && o.state != ConnState::Closed {
        return Err(ConnzError::ReasonNeedsClosed);
    }
    let offset = o.offset.max(0);
    let limit = match (o.cid, o.limit) {
        (1.., _) => 1,
        (_, l) if l <= 0 => DEFAULT_LIST_SIZE,
        (_, l) => l,
    };
    let clock = Clock {
        sys: SystemTime::now(),
        mono: Instant::now(),
    };
    let mut out = Connz {
        server_id: String::new(),
        now: GoTime(clock.sys),
        num_connections: 0,
        total: 0,
        offset,
        limit,
        connections: None,
    };
    let s = mon.server();
    let acc = o.account.as_str();
    if !acc.is_empty() && !s.accounts().iter().any(|a| a.name == acc) {
        return Ok(out);
    }
    out.server_id = s.server_id.clone();
    let opts = s.opts();
    let token_auth = opts.auth.token.is_some();

    let all_open = s.clients();
    let mut clist = all_open.clone();
    if !acc.is_empty() {
        clist.retain(|c| account_of(&c.meta.lock()) == acc);
    }
    let mut closed = if o.state == ConnState::Open {
        Vec::new()
    } else {
        s.closed_clients()
    };
    out.total = match o.state {
        ConnState::Open => clist.len(),
        ConnState::Closed => closed.len(),
        ConnState::All => clist.len() + closed.len(),
    };
    if !acc.is_empty() && !closed.is_empty() {
        let before = closed.len();
        closed.retain(|cc| closed_account(cc) == acc);
        out.total -= before - closed.len();
    }

    let mut open = Vec::new();
    if o.cid > 0 {
        if o.state != ConnState::Closed
            && let Some(c) = all_open.iter().find(|c| c.cid == o.cid)
        {
            open.push(c.clone());
            closed.clear();
        }
        if open.is_empty() && o.state != ConnState::Open {
            closed.retain(|cc| cc.cid == o.cid);
            closed.truncate(1);
        }
    } else if o.state != ConnState::Closed {
        open = clist
            .into_iter()
            .filter(|c| {
                let meta = c.meta.lock();
                (acc.is_empty() || account_of(&meta) == acc)
                    && (o.user.is_empty() || raw_auth_user(&meta, token_auth) == o.user)
                    && o.mqtt_client.is_empty()
            })
            .collect();
    }
    if open.is_empty() && closed.is_empty() {
        out.connections = Some(Vec::new());
        return Ok(out);
    }

    let mut infos: Vec<ConnInfo> = open
        .iter()
        .map(|c| open_info(c, clock, o, token_auth, &opts))
        .collect();
    infos.extend(
        closed
            .iter()
            .filter(|cc| {
                (acc.is_empty() || closed_account(cc) == acc)
                    && (o.user.is_empty() || raw_auth_user(&cc.meta, token_auth) == o.user)
                    && o.mqtt_client.is_empty()
            })
            .map(|cc| closed_info(cc, o, token_auth, &opts)),
    );
    infos.sort_by_key(|i| i.cid);
    sort_infos(&mut infos, sort, clock.sys);
    let (lo, hi) = page_bounds(offset, limit, infos.len());
    let page: Vec<ConnInfo> = infos.drain(lo..hi).collect();
    out.num_connections = page.len();
    out.connections = Some(page);
    Ok(out)
}

/// One client certificate in `tls_peer_certs`.
#[derive(Debug, Clone, Serialize)]
pub struct TlsPeerCert {
    /// Subject, in Go's form.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subject: String,
    /// SHA-256 of the SubjectPublicKeyInfo, hex.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub spki_sha256: String,
    /// SHA-256 of the certificate, hex.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cert_sha256: String,
}

/// `tls_peer_certs` of a connection's session.
fn peer_certs(meta: &crate::client::ClientMeta) -> Vec<TlsPeerCert> {
    meta.tls.as_ref().map_or_else(Vec::new, |t| {
        t.peer_certs
            .iter()
            .map(|c| TlsPeerCert {
                subject: c.subject.clone(),
                spki_sha256: c.spki_sha256.clone(),
                cert_sha256: c.cert_sha256.clone(),
            })
            .collect()
    })
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_names() {
        assert_eq!(SortOpt::parse(""), Some(SortOpt::Cid));
        assert_eq!(SortOpt::parse("msgs_to"), Some(SortOpt::MsgsTo));
        assert_eq!(SortOpt::parse("MSGS_TO"), None);
        assert_eq!(SortOpt::parse("bogus"), None);
    }

    #[test]
    fn rtt_rounding() {
        assert_eq!(rtt_string(0), "0s");
        assert_eq!(rtt_string(729_123), "729µs");
        assert_eq!(rtt_string(3_855_209), "3.855209ms");
        assert_eq!(rtt_string(500), "500ns");
    }
}
