//! The system account: server requests and account events over NATS.
//!
//! Operators and tools (the `nats` CLI's `server` commands among them) query servers over
//! NATS rather than HTTP: a request on `$SYS.REQ.SERVER.PING[.<X>]` is answered by every
//! server, and `$SYS.REQ.SERVER.<id>.<X>` by one. The answer wraps the monitoring JSON as
//! `{"server": {...}, "data": {...}}`. Users of the system account can also watch
//! `$SYS.ACCOUNT.<acc>.CONNECT` / `.DISCONNECT` events.
//!
//! The handlers are internal subscriptions in the system account, answered on the
//! requester's task from the same code as the HTTP endpoints (`monitor`).

use crate::account::Account;
use crate::client::deliver::{DeliveryCtx, Publisher};
use crate::client::subscription::{InternalHandler, Subscription};
use crate::client::{ClientConn, CloseReason};
use crate::monitor::Monitor;
use crate::options::NATS_COMPAT_VERSION;
use crate::protocol::PubMsg;
use crate::protocol::write::go_json_escape;
use crate::server::ServerShared;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Monitoring endpoints reachable over `$SYS.REQ.SERVER…`, with their HTTP paths.
const ENDPOINTS: &[(&str, &str)] = &[
    ("VARZ", "/varz"),
    ("CONNZ", "/connz"),
    ("SUBSZ", "/subsz"),
    ("ACCOUNTZ", "/accountz"),
    ("HEALTHZ", "/healthz"),
    ("JSZ", "/jsz"),
    ("ROUTEZ", "/routez"),
    ("GATEWAYZ", "/gatewayz"),
    ("LEAFZ", "/leafz"),
    ("STATSZ", ""),
    ("IDZ", ""),
];

/// RFC 3339 with nanoseconds, UTC.
fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| "0001-01-01T00:00:00Z".to_string())
}

/// A 22-character random id (nats-server uses NUIDs for event ids).
pub(crate) fn event_id() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    (0..22)
        .map(|_| ALPHABET[(rand::random::<u32>() as usize) % ALPHABET.len()] as char)
        .collect()
}

/// The `server` object of every system message, in nats-server's field order.
#[derive(serde::Serialize)]
struct EventServer {
    name: String,
    host: String,
    id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    domain: String,
    ver: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
    feature_flags: crate::monitor::varz::FeatureFlags,
    jetstream: bool,
    flags: u64,
    seq: u64,
    time: String,
}

fn server_info(s: &ServerShared) -> EventServer {
    let js = s.jetstream.is_some();
    EventServer {
        name: s.server_name.clone(),
        host: s.opts().host.clone(),
        id: s.server_id.clone(),
        domain: s.opts().jetstream.domain.clone().unwrap_or_default(),
        ver: NATS_COMPAT_VERSION,
        tags: s.opts().server_tags.clone(),
        feature_flags: crate::monitor::varz::FeatureFlags::CURRENT,
        jetstream: js,
        flags: u64::from(js),
        seq: s.sys_seq.fetch_add(1, Ordering::Relaxed) + 1,
        time: now_rfc3339(),
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    go_json_escape(serde_json::to_string(v).unwrap_or_else(|_| "{}".to_string()))
}

/// Remove whitespace outside strings, turning monitoring's indented JSON into the compact
/// form nats-server uses on the wire.
fn minify(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut in_str = false;
    let mut escaped = false;
    for c in json.chars() {
        if in_str {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
        } else if c == '"' {
            in_str = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

/// Turn a request's JSON options for endpoint `name` into the monitoring query string.
/// The JSON names are nats-server's option structs' (`ConnzOptions`, `JSzOptions`, ...),
/// which differ from the HTTP parameters in places; CONNZ's `state` is the number Go
/// clients send (`ConnState`: 0 open, 1 closed, 2 any).
///
/// # Errors
/// A `state` that is not a number, with nats-server's decoding error text (answered 400).
fn options_to_query(name: &str, payload: &[u8]) -> Result<String, String> {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(payload)
    else {
        return Ok(String::new());
    };
    let mut parts = Vec::new();
    for (k, v) in map {
        let key = match (name, k.as_str()) {
            (_, "subscriptions") => "subs",
            (_, "subscriptions_detail") => {
                if v == serde_json::Value::Bool(true) {
                    parts.push("subs=detail".to_string());
                }
                continue;
            }
            ("CONNZ", "state") => {
                let state = match &v {
                    serde_json::Value::Number(n) => match n.as_i64() {
                        Some(0) => "open",
                        Some(1) => "closed",
                        Some(2) => "any",
                        // nats-server lists nothing for other numbers; natrium lists
                        // the open ones (docs/compat.md).
                        _ => "open",
                    },
                    serde_json::Value::Null => continue,
                    other => {
                        return Err(format!(
                            "json: cannot unmarshal {} into Go struct field ConnzEventOptions.state of type server.ConnState",
                            go_json_kind(other)
                        ));
                    }
                };
                parts.push(format!("state={state}"));
                continue;
            }
            // HEALTHZ's HTTP parameter is `account` too.
            ("HEALTHZ", "account") => "account",
            (_, "account") => "acc",
            ("JSZ", "consumer") => "consumers",
            ("JSZ", "leader_only") => "leader-only",
            ("JSZ", "stream_leader_only") => "stream-leader-only",
            (_, other) => other,
        };
        match v {
            serde_json::Value::Bool(true) => parts.push(format!("{key}=1")),
            serde_json::Value::Number(n) => parts.push(format!("{key}={n}")),
            // Escaped: a value must not smuggle in parameters of its own.
            serde_json::Value::String(s) if !s.is_empty() => {
                parts.push(format!("{key}={}", query_escape(&s)))
            }
            _ => {}
        }
    }
    Ok(parts.join("&"))
}

/// A `$SYS` answer carrying `data` (JSON text), after the `server` block.
fn data_answer(server: &str, data: &str) -> String {
    format!("{{\"server\":{server},\"data\":{data}}}")
}

/// A `$SYS` error answer as nats-server gives it: a handler's error is 500 with a null
/// `data`; a body it cannot decode (400) has no `data`.
fn error_answer(server: &str, code: u16, text: &str) -> String {
    let text = serde_json::Value::String(text.to_string());
    if code == 400 {
        format!("{{\"server\":{server},\"error\":{{\"code\":400,\"description\":{text}}}}}")
    } else {
        format!(
            "{{\"server\":{server},\"data\":null,\"error\":{{\"code\":{code},\"description\":{text}}}}}"
        )
    }
}

/// `query` answering for account `acc` only (under parameter `key`, first, so it is the
/// one read): the body's own `acc`/`account` options are dropped, and so is every
/// parameter `drop` names. The account-scoped requests rely on it: a body must not reach
/// another account.
fn scope_to_account(query: &str, key: &str, acc: &str, drop: impl Fn(&str) -> bool) -> String {
    let mut out = format!("{key}={}", query_escape(acc));
    for kv in query.split('&').filter(|kv| {
        !kv.is_empty() && !kv.starts_with("acc=") && !kv.starts_with("account=") && !drop(kv)
    }) {
        out.push('&');
        out.push_str(kv);
    }
    out
}

/// `s` percent-encoded for a query string value (everything but unreserved bytes).
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'*' | b'>' | b'$')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether a request's event filter options (nats-server's `EventFilterOptions`:
/// `server_name`, `host` and `cluster` as substrings, or exactly with `exact_match`; every
/// one of `tags`; `domain` exactly) rule this server out.
fn filtered_out(s: &ServerShared, payload: &[u8]) -> bool {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(payload)
    else {
        return false;
    };
    let text = |k: &str| map.get(k).and_then(|v| v.as_str()).unwrap_or("");
    let exact = map.get("exact_match").and_then(|v| v.as_bool()) == Some(true);
    let differs = |want: &str, have: &str| {
        !want.is_empty()
            && if exact {
                want != have
            } else {
                !have.contains(want)
            }
    };
    let opts = s.opts();
    if differs(text("server_name"), &s.server_name) || differs(text("host"), &opts.host) {
        return true;
    }
    // Standalone: no cluster name, so any cluster filter misses.
    if !text("cluster").is_empty() {
        return true;
    }
    if let Some(tags) = map.get("tags").and_then(|v| v.as_array())
        && tags.iter().filter_map(|t| t.as_str()).any(|t| {
            !opts
                .server_tags
                .iter()
                .any(|have| have.eq_ignore_ascii_case(t))
        })
    {
        return true;
    }
    let domain = text("domain");
    !domain.is_empty() && opts.jetstream.domain.as_deref().unwrap_or("") != domain
}

/// How Go's JSON decoder names a value's kind in its type errors.
fn go_json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// `sent`/`received` counters.
#[derive(serde::Serialize, Default, Clone, Copy)]
struct Counts {
    msgs: u64,
    bytes: u64,
}

/// The `statsz` of a STATSZ answer, in nats-server's field order.
#[derive(serde::Serialize)]
struct Statsz {
    start: String,
    mem: i64,
    cores: usize,
    cpu: f64,
    connections: usize,
    total_connections: u64,
    active_accounts: usize,
    subscriptions: usize,
    sent: Counts,
    sent_to_clients: Counts,
    received: Counts,
    received_from_clients: Counts,
    slow_consumers: u64,
    active_servers: u32,
    /// JetStream's config, usage and limits (as in `/varz`, without the store
    /// directory), when JetStream runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    jetstream: Option<crate::monitor::jsz::JsVarz>,
    gomaxprocs: usize,
}

fn statsz(s: &ServerShared, mon: &Monitor) -> Statsz {
    let subs: usize = s.accounts().iter().map(|a| a.sublist.count()).sum();
    let sent = Counts {
        msgs: s.stats.out_msgs.load(Ordering::Relaxed),
        bytes: s.stats.out_bytes.load(Ordering::Relaxed),
    };
    let received = Counts {
        msgs: s.stats.in_msgs.load(Ordering::Relaxed),
        bytes: s.stats.in_bytes.load(Ordering::Relaxed),
    };
    Statsz {
        start: time::OffsetDateTime::from(s.start_time)
            .format(&Rfc3339)
            .unwrap_or_default(),
        mem: crate::monitor::process::rss_bytes(),
        cores: crate::monitor::process::cores(),
        cpu: mon.cpu_percent(),
        connections: s.num_clients(),
        total_connections: s.stats.total_connections.load(Ordering::Relaxed),
        active_accounts: s
            .accounts()
            .iter()
            .filter(|a| a.num_connections() > 0)
            .count(),
        subscriptions: subs,
        sent,
        sent_to_clients: sent,
        received,
        received_from_clients: received,
        slow_consumers: s.stats.slow_consumers.load(Ordering::Relaxed),
        active_servers: 1,
        jetstream: crate::monitor::jsz::js_varz(s).map(|mut j| {
            j.config.store_dir.clear();
            j
        }),
        gomaxprocs: crate::monitor::process::parallelism(),
    }
}

/// One account's statistics (`AccountStat` in nats-server): the account STATZ request
/// and `/accstatz`.
#[derive(serde::Serialize)]
pub struct AccountStat {
    acc: String,
    name: String,
    conns: usize,
    leafnodes: usize,
    total_conns: usize,
    num_subscriptions: usize,
    sent: DataStats,
    received: DataStats,
    slow_consumers: u64,
}

/// An account's traffic in one direction, as nats-server's `DataStats`: the totals, then
/// the parts over gateways, routes and leaf nodes (always zero on a standalone server).
#[derive(serde::Serialize)]
struct DataStats {
    msgs: u64,
    bytes: u64,
    gateways: Counts,
    routes: Counts,
    leafs: Counts,
}

impl From<Counts> for DataStats {
    fn from(c: Counts) -> DataStats {
        let zero = || Counts { msgs: 0, bytes: 0 };
        DataStats {
            msgs: c.msgs,
            bytes: c.bytes,
            gateways: zero(),
            routes: zero(),
            leafs: zero(),
        }
    }
}

/// One account's statistics.
pub fn account_stat(s: &ServerShared, account: &Account) -> AccountStat {
    // As nats-server counts it: `received` is what the server received from the
    // account's clients, `sent` what it delivered to them.
    let t = *account.closed_traffic.lock();
    let mut received = Counts {
        msgs: t[0],
        bytes: t[1],
    };
    let mut sent = Counts {
        msgs: t[2],
        bytes: t[3],
    };
    for c in s.clients() {
        if !c.is_connected() || c.meta.lock().account != account.name {
            continue;
        }
        let (om, ob) = c.out_stats();
        received.msgs += c.in_msgs.load(Ordering::Relaxed);
        received.bytes += c.in_bytes.load(Ordering::Relaxed);
        sent.msgs += om;
        sent.bytes += ob;
    }
    AccountStat {
        acc: account.name.clone(),
        name: crate::config_operator::name_tag(&s.opts(), &account.name),
        conns: account.num_connections(),
        leafnodes: 0,
        total_conns: account.num_connections(),
        num_subscriptions: account.sublist.count(),
        sent: sent.into(),
        received: received.into(),
        slow_consumers: 0,
    }
}

/// Build the answer for endpoint `name` with request body `payload`. `account` limits
/// account-scoped endpoints to one account.
fn answer(s: &Arc<ServerShared>, name: &str, payload: &[u8], account: Option<&str>) -> String {
    let mon = Monitor::for_system(s.clone());
    let server = to_json(&server_info(s));
    match name {
        // nats-server answers these two without the usual envelope.
        "STATSZ" => {
            return format!(
                "{{\"server\":{server},\"statsz\":{}}}",
                to_json(&statsz(s, &mon))
            );
        }
        "IDZ" => {
            /// nats-server's `ServerID`, in its field order.
            #[derive(serde::Serialize)]
            struct Idz<'a> {
                name: &'a str,
                host: &'a str,
                id: &'a str,
            }
            let opts = s.opts();
            return to_json(&Idz {
                name: &s.server_name,
                host: &opts.host,
                id: &s.server_id,
            });
        }
        _ => {}
    }
    let path = ENDPOINTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, p)| *p)
        .unwrap_or("");
    let mut query = match options_to_query(name, payload) {
        Ok(q) => q,
        Err(text) => return error_answer(&server, 400, &text),
    };
    if let Some(acc) = account {
        let key = if name == "HEALTHZ" { "account" } else { "acc" };
        query = scope_to_account(&query, key, acc, |_| false);
        // An account's SUBSZ lists its subscriptions (nats-server's account request).
        if name == "SUBSZ" && !query.split('&').any(|kv| kv.starts_with("subs=")) {
            query.push_str("&subs=1");
        }
    }
    let reply = mon.handle(path, &query);
    let data = if name == "HEALTHZ" {
        // The NATS form carries the HTTP status in the body too.
        let mut v: serde_json::Value =
            serde_json::from_str(&reply.body).unwrap_or(serde_json::Value::Null);
        if let Some(obj) = v.as_object_mut() {
            obj.insert("status_code".into(), reply.status.as_u16().into());
        }
        Ok(to_json(&v))
    } else if reply.status.is_success() {
        Ok(minify(&reply.body))
    } else {
        Err((reply.status.as_u16(), reply.body.trim().to_string()))
    };
    match data {
        Ok(d) => data_answer(&server, &d),
        Err((_, text)) => error_answer(&server, 500, &text),
    }
}

/// `$SYS.REQ.ACCOUNT.<acc>.JSZ`: the account's entry of `/jsz?acc=<acc>` (with the
/// request's `streams`, `consumer` and `config` options) as `data`, or nats-server's
/// error when the account does not exist or has no JetStream (`JszAccount`).
fn account_jsz(s: &Arc<ServerShared>, acc: &str, payload: &[u8]) -> String {
    let server = to_json(&server_info(s));
    let fail = |text: String| error_answer(&server, 500, &text);
    let quoted = serde_json::Value::String(acc.to_string());
    let Some(js) = s.js.get() else {
        return fail("jetstream not enabled".to_string());
    };
    if s.account(acc).is_none() {
        return fail(format!("account {quoted} not found"));
    }
    if js.account(acc).is_none() {
        return fail(format!("account {quoted} not jetstream enabled"));
    }
    let mut query = match options_to_query("JSZ", payload) {
        Ok(q) => q,
        Err(text) => return fail(text),
    };
    // Only this account, whatever the body asked for; consumers only beside streams
    // (nats-server's account detail does not turn `streams` on for `consumer`).
    let streams = query.split('&').any(|kv| kv == "streams=1");
    query = scope_to_account(&query, "acc", acc, |kv| {
        kv.starts_with("accounts=") || (!streams && kv.starts_with("consumers="))
    });
    let mon = Monitor::for_system(s.clone());
    let q = crate::monitor::query::Query::parse(&query);
    match crate::monitor::jsz::jsz(&mon, &q) {
        Ok(j) => match j.account_details.first() {
            Some(d) => data_answer(&server, &to_json(d)),
            None => fail(format!("account {quoted} not jetstream enabled")),
        },
        Err(text) => fail(text),
    }
}

/// `$SYS.REQ.ACCOUNT.<acc>.INFO`: the account's `/accountz` detail as `data`, as
/// nats-server answers it.
fn account_info(s: &Arc<ServerShared>, acc: &str) -> String {
    let mon = Monitor::for_system(s.clone());
    let server = to_json(&server_info(s));
    match crate::monitor::accountz::accountz(&mon, acc) {
        Ok(a) => match a.account_detail {
            Some(detail) => data_answer(&server, &to_json(&detail)),
            None => data_answer(&server, "null"),
        },
        Err(e) => error_answer(&server, 400, &e.to_string()),
    }
}

/// The account-scoped STATZ answer.
fn account_statz(s: &Arc<ServerShared>, account: &Account) -> String {
    #[derive(serde::Serialize)]
    struct Data {
        server_id: String,
        now: String,
        account_statz: Vec<AccountStat>,
    }
    let server = to_json(&server_info(s));
    let data = Data {
        server_id: s.server_id.clone(),
        now: now_rfc3339(),
        account_statz: vec![account_stat(s, account)],
    };
    format!("{{\"server\":{server},\"data\":{}}}", to_json(&data))
}

/// `$SYS.REQ.ACCOUNT.PING.STATZ` from the system account: `/accstatz` (the accounts with
/// connections; `{"accounts":[..]}` names some, `{"include_unused":true}` takes all).
fn accounts_statz(s: &Arc<ServerShared>, payload: &[u8]) -> String {
    let mut query = Vec::new();
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(payload)
    {
        if let Some(serde_json::Value::Array(names)) = map.get("accounts") {
            let names: Vec<&str> = names.iter().filter_map(|v| v.as_str()).collect();
            if !names.is_empty() {
                query.push(format!("accounts={}", names.join(",")));
            }
        }
        if map.get("include_unused") == Some(&serde_json::Value::Bool(true)) {
            query.push("unused=1".to_string());
        }
    }
    let reply = Monitor::for_system(s.clone())
        .handle(crate::monitor::endpoints::ACCSTATZ_PATH, &query.join("&"));
    format!(
        "{{\"server\":{},\"data\":{}}}",
        to_json(&server_info(s)),
        minify(&reply.body)
    )
}

/// Reply to `reply` in `account`.
fn respond(ctx: &mut DeliveryCtx, account: &Arc<Account>, reply: &[u8], body: &str) {
    ctx.publish(
        account,
        Publisher::SERVER,
        PubMsg {
            subject: reply,
            reply: None,
            headers: None,
            payload: body.as_bytes(),
        },
    );
}

/// Answers `$SYS.REQ.SERVER.PING[.<X>]` and `$SYS.REQ.SERVER.<id>.<X>`.
struct ServerRequests {
    /// The server (weak: the server owns the subscription).
    server: Weak<ServerShared>,
}

impl InternalHandler for ServerRequests {
    fn handle(
        &self,
        ctx: &mut DeliveryCtx,
        account: &Arc<Account>,
        _sub: &Subscription,
        _publisher: Publisher<'_>,
        _routed_by: &[u8],
        msg: PubMsg<'_>,
    ) -> bool {
        let (Some(s), Some(reply)) = (self.server.upgrade(), msg.reply) else {
            return true;
        };
        // A request meant for other servers (by name, host, cluster, tags or domain)
        // gets no answer from this one, as nats-server filters them (IDZ excepted).
        if !msg.subject.ends_with(b".IDZ") && filtered_out(&s, msg.payload) {
            return true;
        }
        let subject = String::from_utf8_lossy(msg.subject);
        let tokens: Vec<&str> = subject.split('.').collect();
        // $SYS.REQ.SERVER.PING → STATSZ; $SYS.REQ.SERVER.<PING|id>.<X> → X.
        let body = if tokens.get(2) == Some(&"ACCOUNT") {
            // $SYS.REQ.ACCOUNT.<acc>.<X>, from the system account.
            let (Some(acc), Some(x)) = (tokens.get(3), tokens.get(4)) else {
                return true;
            };
            match (s.account(acc), *x) {
                // From the system account, `PING` means every account (nats-server).
                (None, "STATZ") if *acc == "PING" => accounts_statz(&s, msg.payload),
                (Some(a), "STATZ") => account_statz(&s, &a),
                (Some(a), "CONNS") => to_json(&account_conns(&s, &a)),
                (Some(_), "INFO") => account_info(&s, acc),
                (_, "JSZ") => account_jsz(&s, acc, msg.payload),
                (Some(_), x) => answer(&s, x, msg.payload, Some(acc)),
                (None, "INFO") => error_answer(
                    &to_json(&server_info(&s)),
                    500,
                    &format!("Account {acc} does not exist"),
                ),
                (None, "CONNZ") if *acc != "PING" => answer(&s, "CONNZ", msg.payload, Some(acc)),
                (None, _) => return true,
            }
        } else {
            let name = tokens.get(4).copied().unwrap_or("STATSZ");
            answer(&s, name, msg.payload, None)
        };
        respond(ctx, account, reply, &body);
        true
    }
}

/// System services nats-server imports into every account: who am I, and this account's
/// connections and statistics.
struct AccountRequests {
    /// The server.
    server: Weak<ServerShared>,
}

impl InternalHandler for AccountRequests {
    fn handle(
        &self,
        ctx: &mut DeliveryCtx,
        account: &Arc<Account>,
        _sub: &Subscription,
        publisher: Publisher<'_>,
        _routed_by: &[u8],
        msg: PubMsg<'_>,
    ) -> bool {
        let (Some(s), Some(reply)) = (self.server.upgrade(), msg.reply) else {
            return true;
        };
        let body = match msg.subject {
            b"$SYS.REQ.USER.INFO" => {
                #[derive(serde::Serialize)]
                struct UserInfo {
                    user: String,
                    account: String,
                    account_name: String,
                    /// A JWT user's name.
                    #[serde(skip_serializing_if = "String::is_empty")]
                    user_name: String,
                    /// The user's permissions, if any (nats-server: `omitempty`).
                    #[serde(skip_serializing_if = "Option::is_none")]
                    permissions: Option<serde_json::Value>,
                    /// Nanoseconds until a JWT login expires (whole seconds; omitted
                    /// when it does not).
                    #[serde(skip_serializing_if = "is_zero")]
                    expires: u64,
                }
                let jwt_user = publisher.conn.and_then(|c| c.meta.lock().jwt_user.clone());
                let expires = publisher
                    .conn
                    .map(|c| c.expires_mono.load(Ordering::Relaxed))
                    .filter(|e| *e > 0)
                    .map_or(0, |e| {
                        // Whole seconds left, as nats-server truncates them.
                        let left = e.saturating_sub(crate::client::mono_nanos());
                        left / 1_000_000_000 * 1_000_000_000
                    });
                let user = publisher
                    .conn
                    .and_then(|c| c.meta.lock().user.clone())
                    .unwrap_or_default();
                let permissions = publisher
                    .conn
                    .and_then(|c| c.perms.read().clone())
                    .map(|p| p.to_json());
                let info = UserInfo {
                    user,
                    account: account.name.clone(),
                    account_name: crate::config_operator::name_tag(&s.opts(), &account.name),
                    user_name: jwt_user.map(|u| u.user_name.clone()).unwrap_or_default(),
                    permissions,
                    expires,
                };
                format!(
                    "{{\"server\":{},\"data\":{}}}",
                    to_json(&server_info(&s)),
                    to_json(&info)
                )
            }
            b"$SYS.REQ.ACCOUNT.PING.STATZ" => account_statz(&s, account),
            _ => answer(&s, "CONNZ", msg.payload, Some(&account.name)),
        };
        respond(ctx, account, reply, &body);
        true
    }
}

/// Subjects of the per-account system services.
const ACCOUNT_SERVICES: &[&str] = &[
    "$SYS.REQ.USER.INFO",
    "$SYS.REQ.ACCOUNT.PING.CONNZ",
    "$SYS.REQ.ACCOUNT.PING.STATZ",
    "$SYS.REQ.SERVER.PING.CONNZ",
];

/// Subscribe the per-account system services in `account` (not the system account).
pub fn account_services(server: &Arc<ServerShared>, account: &Arc<Account>) {
    if account.is_system {
        return;
    }
    let handler: Arc<dyn InternalHandler> = Arc::new(AccountRequests {
        server: Arc::downgrade(server),
    });
    for subject in ACCOUNT_SERVICES {
        let sub = Arc::new(Subscription::internal(
            handler.clone(),
            subject.as_bytes(),
            None,
        ));
        let _ = account.sublist.insert(subject.as_bytes(), None, sub);
    }
}

/// The account-JWT requests of a `full` or `cache` resolver: `nsc push`'s
/// `$SYS.REQ.CLAIMS.UPDATE` (and the per-account and older update subjects), lookups of a
/// stored JWT and the list of stored accounts.
struct ClaimsRequests {
    /// The server.
    server: Weak<ServerShared>,
}

/// Publish `body` on `subject` from the system account (an answer sent after the request
/// was handled).
fn publish_answer(s: &Arc<ServerShared>, subject: &str, body: &str) {
    let Some(sys) = s.system_account() else {
        return;
    };
    let mut ctx = DeliveryCtx::new(s.clone(), rand::random());
    respond(&mut ctx, &sys, subject.as_bytes(), body);
    ctx.flush();
}

/// Store and apply a pushed account JWT, then answer as nats-server's
/// `respondToUpdate` does.
fn push_claims(
    s: &Arc<ServerShared>,
    for_account: Option<&str>,
    token: &[u8],
    reply: Option<&str>,
) {
    let result = {
        // One change of the options at a time: pushes and reloads.
        let _one_at_a_time = crate::signals::RELOAD_LOCK.lock();
        let old = s.opts();
        crate::config_operator::push_account(&old, for_account, token).and_then(|pushed| {
            let acc = pushed.account.clone();
            let new = pushed.options.clone();
            // Clients still logging in are not affected by an account push (a reload of
            // the authorization refuses them).
            crate::signals::apply(s, &old, new, false).map_err(|reason| {
                crate::config_operator::PushError {
                    account: acc.clone(),
                    reason,
                }
            })?;
            pushed.commit()?;
            Ok(acc)
        })
    };
    let outcome = match &result {
        Ok(acc) => {
            crate::debug!(s.log, "jwt updated - {acc}");
            Ok(serde_json::json!({"account": acc, "code": 200, "message": "jwt updated"}))
        }
        Err(e) => {
            crate::error!(s.log, "{} (account {})", e, e.account);
            Err(serde_json::json!({"account": e.account, "code": 500,
                                   "description": e.to_string()}))
        }
    };
    claims_answer(s, reply, outcome);
}

/// Answer a claims change on `reply` as nats-server's `respondToUpdate` does: the
/// server's identity with `data` on success, `error` otherwise.
fn claims_answer(
    s: &Arc<ServerShared>,
    reply: Option<&str>,
    outcome: Result<serde_json::Value, serde_json::Value>,
) {
    let Some(reply) = reply else {
        return;
    };
    let server = to_json(&server_info(s));
    let body = match outcome {
        Ok(data) => format!("{{\"server\":{server},\"data\":{data}}}"),
        Err(err) => format!("{{\"server\":{server},\"error\":{err}}}"),
    };
    publish_answer(s, reply, &body);
}

/// Delete accounts (`$SYS.REQ.CLAIMS.DELETE`, see
/// [`crate::config_operator::delete_accounts`]) and answer as nats-server does. The
/// deleted accounts' connections are closed with `Account Authentication Expired`, as
/// nats-server closes them, before the options without those accounts are applied.
fn delete_claims(s: &Arc<ServerShared>, token: &[u8], reply: Option<&str>) {
    let result = {
        let _one_at_a_time = crate::signals::RELOAD_LOCK.lock();
        let old = s.opts();
        crate::config_operator::delete_accounts(&old, token).map(|deleted| {
            for c in s.clients() {
                let account = c.meta.lock().account.clone();
                if deleted.keys.contains(&account) {
                    c.err_and_close(
                        "Account Authentication Expired",
                        crate::client::CloseReason::AuthenticationExpired,
                    );
                }
            }
            let applied = crate::signals::apply(s, &old, deleted.options.clone(), false);
            (deleted, applied)
        })
    };
    let outcome = match &result {
        Ok((deleted, Ok(()))) if deleted.failures.is_empty() => {
            let message = format!("deleted {} accounts", deleted.keys.len());
            crate::info!(s.log, "{message}");
            Ok(serde_json::json!({"code": 200, "message": message}))
        }
        Ok((deleted, applied)) => {
            let mut reasons = deleted.failures.clone();
            if let Err(e) = applied {
                reasons.push(e.clone());
            }
            let description = format!(
                "deleted {} accounts, failed for {} - {}",
                deleted.keys.len(),
                deleted.failures.len(),
                reasons.join("\n")
            );
            crate::error!(s.log, "{description}");
            Err(serde_json::json!({"code": 500, "description": description}))
        }
        Err(e) => {
            crate::error!(s.log, "{e}");
            Err(serde_json::json!({"code": 500, "description": e.to_string()}))
        }
    };
    claims_answer(s, reply, outcome);
}

impl InternalHandler for ClaimsRequests {
    fn handle(
        &self,
        ctx: &mut DeliveryCtx,
        account: &Arc<Account>,
        _sub: &Subscription,
        _publisher: Publisher<'_>,
        _routed_by: &[u8],
        msg: PubMsg<'_>,
    ) -> bool {
        let Some(s) = self.server.upgrade() else {
            return true;
        };
        let subject = String::from_utf8_lossy(msg.subject).into_owned();
        let tokens: Vec<&str> = subject.split('.').collect();
        let reply = msg.reply.map(|r| String::from_utf8_lossy(r).into_owned());
        match tokens.as_slice() {
            ["$SYS", "REQ", "CLAIMS", "UPDATE"]
            | ["$SYS", "REQ", "ACCOUNT", _, "CLAIMS", "UPDATE"]
            | ["$SYS", "ACCOUNT", _, "CLAIMS", "UPDATE"] => {
                let for_account = match tokens.as_slice() {
                    ["$SYS", "REQ", "ACCOUNT", a, ..] | ["$SYS", "ACCOUNT", a, ..] => {
                        Some(a.to_string())
                    }
                    _ => None,
                };
                // Bounded by max_payload; stored and applied off the publisher's task
                // (a file write with fsyncs, then the accounts rebuilt).
                let token = msg.payload.to_vec();
                tokio::task::spawn_blocking(move || {
                    push_claims(&s, for_account.as_deref(), &token, reply.as_deref());
                });
            }
            ["$SYS", "REQ", "CLAIMS", "DELETE"] => {
                let token = msg.payload.to_vec();
                tokio::task::spawn_blocking(move || {
                    delete_claims(&s, &token, reply.as_deref());
                });
            }
            ["$SYS", "REQ", "ACCOUNT", acc, "CLAIMS", "LOOKUP"] => {
                let Some(reply) = msg.reply else {
                    return true;
                };
                let jwt = s
                    .opts()
                    .operator
                    .as_ref()
                    .and_then(|o| o.accounts.get(*acc).map(|a| a.jwt.clone()))
                    .unwrap_or_default();
                respond(ctx, account, reply, &jwt);
            }
            ["$SYS", "REQ", "CLAIMS", "LIST"] => {
                let Some(reply) = msg.reply else {
                    return true;
                };
                let ids: Vec<String> = s
                    .opts()
                    .operator
                    .as_ref()
                    .map(|o| {
                        o.accounts
                            .iter()
                            .filter(|(_, a)| !a.jwt.is_empty())
                            .map(|(k, _)| k.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                let body = data_answer(
                    &to_json(&server_info(&s)),
                    &serde_json::Value::from(ids).to_string(),
                );
                respond(ctx, account, reply, &body);
            }
            _ => {}
        }
        true
    }
}

/// Subscribe the system account's request handlers.
pub fn start(server: &Arc<ServerShared>) {
    let Some(sys) = server.system_account() else {
        return;
    };
    let handler: Arc<dyn InternalHandler> = Arc::new(ServerRequests {
        server: Arc::downgrade(server),
    });
    let mut subjects = vec!["$SYS.REQ.SERVER.PING".to_string()];
    for (name, _) in ENDPOINTS {
        subjects.push(format!("$SYS.REQ.SERVER.PING.{name}"));
        subjects.push(format!("$SYS.REQ.SERVER.{}.{name}", server.server_id));
    }
    for name in ["CONNZ", "SUBSZ", "STATZ", "INFO", "CONNS", "JSZ", "LEAFZ"] {
        subjects.push(format!("$SYS.REQ.ACCOUNT.*.{name}"));
    }
    for acc in server.accounts() {
        account_services(server, &acc);
    }
    // Who am I, for the system account's own users too.
    let whoami: Arc<dyn InternalHandler> = Arc::new(AccountRequests {
        server: Arc::downgrade(server),
    });
    let sub = Arc::new(Subscription::internal(whoami, b"$SYS.REQ.USER.INFO", None));
    let _ = sys.sublist.insert(b"$SYS.REQ.USER.INFO", None, sub);
    // A `full` or `cache` resolver takes account JWTs pushed while running.
    let dir_resolver = server.opts().operator_options.as_ref().is_some_and(|o| {
        matches!(
            o.resolver,
            Some(crate::config_operator::Resolver::Dir { .. })
        )
    }) && server.opts().operator.is_some();
    if dir_resolver {
        let claims: Arc<dyn InternalHandler> = Arc::new(ClaimsRequests {
            server: Arc::downgrade(server),
        });
        for subject in [
            "$SYS.REQ.CLAIMS.UPDATE",
            "$SYS.REQ.ACCOUNT.*.CLAIMS.UPDATE",
            "$SYS.ACCOUNT.*.CLAIMS.UPDATE",
            "$SYS.REQ.ACCOUNT.*.CLAIMS.LOOKUP",
            "$SYS.REQ.CLAIMS.LIST",
            "$SYS.REQ.CLAIMS.DELETE",
        ] {
            let sub = Arc::new(Subscription::internal(
                claims.clone(),
                subject.as_bytes(),
                None,
            ));
            let _ = sys.sublist.insert(subject.as_bytes(), None, sub);
        }
    }
    for subject in subjects {
        let sub = Arc::new(Subscription::internal(
            handler.clone(),
            subject.as_bytes(),
            None,
        ));
        let _ = sys.sublist.insert(subject.as_bytes(), None, sub);
    }
}

/// The `client` object of connect/disconnect events, in nats-server's field order.
#[derive(serde::Serialize)]
struct EventClient {
    start: String,
    host: String,
    id: u64,
    acc: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    user: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    lang: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    ver: String,
    #[serde(skip_serializing_if = "is_zero")]
    rtt: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop: Option<String>,
    /// A JWT user's JWT.
    #[serde(skip_serializing_if = "String::is_empty")]
    jwt: String,
    /// An nkey user's account name (nats-server's `issuer_key` without JWTs); the key
    /// that signed a JWT user.
    #[serde(skip_serializing_if = "String::is_empty")]
    issuer_key: String,
    name_tag: String,
    /// A JWT user's tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
    kind: &'static str,
    client_type: &'static str,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn client_info(s: &ServerShared, c: &ClientConn, stop: bool) -> EventClient {
    let meta = c.meta.lock().clone();
    let jwt_user = meta.jwt_user.clone();
    let mut info = EventClient {
        start: time::OffsetDateTime::from(c.start)
            .format(&Rfc3339)
            .unwrap_or_default(),
        host: c.addr.ip().to_string(),
        id: c.cid,
        issuer_key: if meta.nkey.is_some() {
            meta.account.clone()
        } else {
            String::new()
        },
        name_tag: crate::config_operator::name_tag(&s.opts(), &meta.account),
        acc: meta.account,
        user: meta.user.unwrap_or_default(),
        name: meta.name,
        lang: meta.lang,
        ver: meta.version,
        // nats-server reports the RTT only once it has been measured, on disconnect.
        rtt: if stop { meta.rtt_nanos } else { 0 },
        stop: stop.then(now_rfc3339),
        jwt: String::new(),
        tags: Vec::new(),
        kind: "Client",
        client_type: "nats",
    };
    if let Some(u) = jwt_user {
        info.jwt = u.jwt.clone();
        info.issuer_key = u.issuer.clone();
        info.tags = u.tags.clone();
    }
    info
}

/// Counts in a disconnect event.
#[derive(serde::Serialize)]
struct MsgBytes {
    msgs: u64,
    bytes: u64,
}

/// `$SYS.ACCOUNT.<acc>.CONNECT` / `.DISCONNECT` payload.
#[derive(serde::Serialize)]
struct ConnEvent {
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
    timestamp: String,
    server: EventServer,
    client: EventClient,
    #[serde(skip_serializing_if = "Option::is_none")]
    sent: Option<MsgBytes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    received: Option<MsgBytes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

/// Publish an event into the system account, if anyone listens.
fn publish_event<T: serde::Serialize>(s: &Arc<ServerShared>, subject: &str, body: &T) {
    let Some(sys) = s.system_account() else {
        return;
    };
    if !sys.sublist.has_interest(subject.as_bytes()) {
        return;
    }
    let payload = to_json(body);
    let mut ctx = DeliveryCtx::new(s.clone(), rand::random());
    ctx.publish(
        &sys,
        Publisher::SERVER,
        PubMsg {
            subject: subject.as_bytes(),
            reply: None,
            headers: None,
            payload: payload.as_bytes(),
        },
    );
    ctx.flush();
}

/// `account_connections` event on both subjects nats-server uses.
/// The `account_connections` event (also the answer to `$SYS.REQ.ACCOUNT.<acc>.CONNS`).
#[derive(serde::Serialize)]
struct AccountNumConns {
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
    timestamp: String,
    server: EventServer,
    #[serde(flatten)]
    stat: AccountStat,
}

/// `account`'s connection counts now.
fn account_conns(s: &Arc<ServerShared>, account: &Account) -> AccountNumConns {
    AccountNumConns {
        kind: "io.nats.server.advisory.v1.account_connections",
        id: event_id(),
        timestamp: now_rfc3339(),
        server: server_info(s),
        stat: account_stat(s, account),
    }
}

fn account_conns_event(s: &Arc<ServerShared>, account_name: &str) {
    let Some(account) = s.account(account_name) else {
        return;
    };
    for subject in [
        format!("$SYS.SERVER.ACCOUNT.{account_name}.CONNS"),
        format!("$SYS.ACCOUNT.{account_name}.SERVER.CONNS"),
    ] {
        let body = account_conns(s, &account);
        publish_event(s, &subject, &body);
    }
}

/// `$SYS.ACCOUNT.<acc>.CONNECT` for a client that just authenticated.
pub fn client_connected(s: &Arc<ServerShared>, c: &ClientConn) {
    let account = c.meta.lock().account.clone();
    let body = ConnEvent {
        kind: "io.nats.server.advisory.v1.client_connect",
        id: event_id(),
        timestamp: now_rfc3339(),
        server: server_info(s),
        client: client_info(s, c, false),
        sent: None,
        received: None,
        reason: None,
    };
    // As nats-server: the account's new connection count first, then the connect event.
    account_conns_event(s, &account);
    publish_event(s, &format!("$SYS.ACCOUNT.{account}.CONNECT"), &body);
}

/// `$SYS.ACCOUNT.<acc>.DISCONNECT` for a client that was connected.
pub fn client_disconnected(s: &Arc<ServerShared>, c: &ClientConn, reason: CloseReason) {
    let account = c.meta.lock().account.clone();
    let (out_msgs, out_bytes) = c.out_stats();
    let body = ConnEvent {
        kind: "io.nats.server.advisory.v1.client_disconnect",
        id: event_id(),
        timestamp: now_rfc3339(),
        server: server_info(s),
        client: client_info(s, c, true),
        // From the client's side: what it sent is what the server received.
        sent: Some(MsgBytes {
            msgs: c.in_msgs.load(Ordering::Relaxed),
            bytes: c.in_bytes.load(Ordering::Relaxed),
        }),
        received: Some(MsgBytes {
            msgs: out_msgs,
            bytes: out_bytes,
        }),
        reason: Some(reason.as_str()),
    };
    publish_event(s, &format!("$SYS.ACCOUNT.{account}.DISCONNECT"), &body);
}

/// After a disconnect is fully processed: the account's new connection count.
pub fn account_changed(s: &Arc<ServerShared>, account: &str) {
    account_conns_event(s, account);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minify_keeps_strings() {
        assert_eq!(
            minify("{\n  \"a b\": \"x y\\\" z\",\n  \"n\": 1\n}"),
            "{\"a b\":\"x y\\\" z\",\"n\":1}"
        );
    }

    #[test]
    fn account_scope_drops_the_bodys_accounts_and_comes_first() {
        assert_eq!(
            scope_to_account("acc=B&sort=cid&account=C", "acc", "A", |_| false),
            "acc=A&sort=cid"
        );
        assert_eq!(
            scope_to_account("consumers=1&accounts=1", "acc", "A b", |kv| {
                kv.starts_with("accounts=")
            }),
            "acc=A%20b&consumers=1"
        );
    }

    #[test]
    fn request_options_become_query_parameters() {
        let q = |name: &str, body: &[u8]| options_to_query(name, body).unwrap();
        assert_eq!(
            q("CONNZ", br#"{"subscriptions":true,"limit":5,"sort":"cid"}"#),
            "limit=5&sort=cid&subs=1"
        );
        assert_eq!(q("CONNZ", b""), "");
        assert_eq!(
            q("CONNZ", br#"{"subscriptions_detail":true}"#),
            "subs=detail"
        );
        // What Go clients (natscli) send: the state as a number.
        assert_eq!(q("CONNZ", br#"{"state":0,"acc":""}"#), "state=open");
        assert_eq!(q("CONNZ", br#"{"state":1}"#), "state=closed");
        assert_eq!(q("CONNZ", br#"{"state":2}"#), "state=any");
        assert!(
            options_to_query("CONNZ", br#"{"state":"closed"}"#)
                .unwrap_err()
                .contains("cannot unmarshal string")
        );
        // HEALTHZ keeps `account`; elsewhere it is `acc`.
        assert_eq!(
            q("HEALTHZ", br#"{"account":"A","stream":"S"}"#),
            "account=A&stream=S"
        );
        assert_eq!(q("SUBSZ", br#"{"account":"A"}"#), "acc=A");
        assert_eq!(
            q(
                "JSZ",
                br#"{"accounts":true,"consumer":true,"leader_only":true}"#
            ),
            "accounts=1&consumers=1&leader-only=1"
        );
    }
}
