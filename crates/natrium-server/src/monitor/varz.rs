//! `/varz`: server identity, configuration and counters.
//!
//! The field set and order are nats-server 2.15.1's `Varz` struct as a standalone server
//! without TLS, cluster, gateways, leaf nodes, MQTT or websockets prints it: those
//! sections are present but empty (`"cluster": {}`), fields Go tags `omitempty` are left
//! out when empty, and `jetstream` is `{}` when JetStream is not running (what
//! nats-server prints when it is disabled) and its config, stats and limits otherwise.

use super::Monitor;
use super::json::GoTime;
use super::process;
use crate::sublist::SublistStats;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

/// An empty JSON object, for the sections a standalone server has nothing to say about.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Empty {}

/// nats-server 2.15.1's feature flags and their defaults (all concern JetStream).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FeatureFlags {
    /// v2 format for `$JS.ACK.>` / `$JS.FC.>`.
    pub js_ack_fc_v2: bool,
    /// v2 JetStream API replies.
    pub js_api_reply_v2: bool,
    /// Delete ranges proposed as one Raft entry.
    pub js_raft_delete_range: bool,
    /// Sourcing state in stream snapshots.
    pub js_snapshot_sources: bool,
}

impl FeatureFlags {
    /// The flags this server reports (nats-server 2.15.1's defaults).
    pub const CURRENT: FeatureFlags = FeatureFlags {
        js_ack_fc_v2: false,
        js_api_reply_v2: false,
        js_raft_delete_range: true,
        js_snapshot_sources: false,
    };
}

/// Counts per connection kind (`slow_consumer_stats`, `stale_connection_stats`).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct KindCounts {
    /// Client connections.
    pub clients: u64,
    /// Route connections.
    pub routes: u64,
    /// Gateway connections.
    pub gateways: u64,
    /// Leaf-node connections.
    pub leafs: u64,
}

/// `disk_io_wait_stats`: contention on the disk I/O semaphore (JetStream storage).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct DiskIoWaitStats {
    /// Tasks waiting now.
    pub waiters: i64,
    /// Acquisitions that had to wait.
    pub waits: u64,
    /// Total time waited, nanoseconds.
    pub wait_time: u64,
    /// Longest wait, nanoseconds.
    pub max_wait_time: u64,
}

/// The `/varz` body.
#[derive(Debug, Clone, Serialize)]
pub struct Varz {
    /// Server id (nkey public key).
    pub server_id: String,
    /// Server name (the id unless configured).
    pub server_name: String,
    /// Version reported to clients (the nats-server release we implement).
    pub version: String,
    /// Protocol version.
    pub proto: i64,
    /// Git commit of the build, if known.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub git_commit: String,
    /// Runtime description (nats-server: the Go version).
    pub go: String,
    /// Client listen host.
    pub host: String,
    /// Client port.
    pub port: u16,
    /// Clients must authenticate.
    #[serde(skip_serializing_if = "is_false")]
    pub auth_required: bool,
    /// Clients must use TLS (INFO's `tls_required`).
    #[serde(skip_serializing_if = "is_false")]
    pub tls_required: bool,
    /// Client certificates are required and verified.
    #[serde(skip_serializing_if = "is_false")]
    pub tls_verify: bool,
    /// Maximum client connections.
    pub max_connections: i64,
    /// Maximum subscriptions per connection, when limited.
    #[serde(skip_serializing_if = "is_zero")]
    pub max_subscriptions: i64,
    /// Server PING interval, nanoseconds.
    pub ping_interval: u64,
    /// Unanswered PINGs before a connection is stale.
    pub ping_max: i64,
    /// Monitoring host.
    pub http_host: String,
    /// Monitoring port as configured (`-1`: random).
    pub http_port: i32,
    /// Monitoring path prefix.
    pub http_base_path: String,
    /// HTTPS monitoring port (not supported: 0).
    pub https_port: i32,
    /// Authentication timeout, seconds.
    pub auth_timeout: f64,
    /// Longest control line.
    pub max_control_line: i64,
    /// Largest message.
    pub max_payload: i64,
    /// Per-connection outbound limit.
    pub max_pending: i64,
    /// Cluster settings (none).
    pub cluster: Empty,
    /// Gateway settings (none).
    pub gateway: Empty,
    /// Leaf-node settings (none).
    pub leaf: Empty,
    /// MQTT settings (none).
    pub mqtt: Empty,
    /// Websocket settings (none).
    pub websocket: WebsocketVarz,
    /// JetStream configuration and usage (`{}` when it is not running).
    pub jetstream: JetStreamSection,
    /// TLS handshake timeout, seconds.
    pub tls_timeout: f64,
    /// Write deadline, nanoseconds.
    pub write_deadline: u64,
    /// When the server started.
    pub start: GoTime,
    /// Now.
    pub now: GoTime,
    /// Time since start, `myUptime` format.
    pub uptime: String,
    /// Resident memory, bytes.
    pub mem: i64,
    /// CPUs available to the process.
    pub cores: usize,
    /// Worker parallelism (nats-server: `GOMAXPROCS`).
    pub gomaxprocs: usize,
    /// CPU use, percent.
    pub cpu: f64,
    /// Open client connections.
    pub connections: usize,
    /// Client connections accepted since start.
    pub total_connections: u64,
    /// Route connections.
    pub routes: u64,
    /// Configured route remotes.
    pub remotes: u64,
    /// Leaf-node connections.
    pub leafnodes: u64,
    /// Messages received (all connection kinds).
    pub in_msgs: u64,
    /// Bytes received (all connection kinds).
    pub in_bytes: u64,
    /// Messages received from clients.
    pub in_client_msgs: u64,
    /// Bytes received from clients.
    pub in_client_bytes: u64,
    /// Messages sent (all connection kinds).
    pub out_msgs: u64,
    /// Bytes sent (all connection kinds).
    pub out_bytes: u64,
    /// Messages sent to clients.
    pub out_client_msgs: u64,
    /// Bytes sent to clients.
    pub out_client_bytes: u64,
    /// Slow consumers detected.
    pub slow_consumers: u64,
    /// Stale connections detected.
    pub stale_connections: u64,
    /// Times a client was stalled by a full peer (not tracked: 0).
    pub stalled_clients: u64,
    /// Subscriptions across all accounts.
    pub subscriptions: u64,
    /// Requests per monitoring path.
    pub http_req_stats: BTreeMap<String, u64>,
    /// When the configuration was loaded.
    pub config_load_time: GoTime,
    /// `sha256:<hex>` of the configuration file, or empty.
    pub config_digest: String,
    /// `server_tags` (omitted when none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Feature flags in effect.
    pub feature_flags: FeatureFlags,
    /// Operator mode: the trusted operators' JWTs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trusted_operators_jwt: Vec<String>,
    /// Operator mode: the trusted operators' claims.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trusted_operators_claim: Vec<serde_json::Value>,
    /// The system account's name, when there is one.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub system_account: String,
    /// Logins refused by `resolver_pinned_accounts`.
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub pinned_account_fails: u64,
    /// Slow consumers by connection kind.
    pub slow_consumer_stats: KindCounts,
    /// Stale connections by connection kind.
    pub stale_connection_stats: KindCounts,
    /// Disk I/O contention.
    pub disk_io_wait_stats: DiskIoWaitStats,
    /// When the client TLS certificate expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert_not_after: Option<GoTime>,
}

/// `jetstream`: the section as in `/jsz`, or `{}` without JetStream.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum JetStreamSection {
    /// JetStream runs.
    Running(Box<super::jsz::JsVarz>),
    /// JetStream is off.
    Off(Empty),
}

/// `websocket`: the listener's settings (`{}` when there is none).
#[derive(Debug, Clone, Default, Serialize)]
pub struct WebsocketVarz {
    /// Listen host.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// Bound port.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub port: i64,
    /// Configured upgrade timeout, nanoseconds.
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub handshake_timeout: u64,
    /// Plain `ws://`.
    #[serde(skip_serializing_if = "is_false")]
    pub no_tls: bool,
    /// Same-origin check.
    #[serde(skip_serializing_if = "is_false")]
    pub same_origin: bool,
    /// Allowed origins.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_origins: Vec<String>,
    /// Compression configured.
    #[serde(skip_serializing_if = "is_false")]
    pub compression: bool,
    /// Expiry of the `wss://` certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert_not_after: Option<GoTime>,
}

fn is_zero_i64(n: &i64) -> bool {
    *n == 0
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

/// For `skip_serializing_if`.
fn is_false(b: &bool) -> bool {
    !*b
}

/// For `skip_serializing_if`.
fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// The system account's name, if the server has one (empty otherwise, and then omitted).
pub fn system_account_name(mon: &Monitor) -> String {
    mon.server().system_account.clone().unwrap_or_default()
}

/// Builds `/varz` (the request has already been counted).
pub fn varz(mon: &Monitor) -> Varz {
    let s = mon.server();
    let opts = s.opts();
    let info = s.base_info();
    let now = SystemTime::now();
    let st = &s.stats;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let mut subs = SublistStats::default();
    for acc in s.accounts() {
        subs.add(&acc.sublist.stats());
    }
    let (in_msgs, in_bytes) = (load(&st.in_msgs), load(&st.in_bytes));
    let (out_msgs, out_bytes) = (load(&st.out_msgs), load(&st.out_bytes));
    let slow = load(&st.slow_consumers);
    let stale = load(&st.stale_connections);
    Varz {
        server_id: info.server_id,
        server_name: info.server_name,
        version: info.version,
        proto: info.proto,
        git_commit: info.git_commit,
        go: info.go,
        host: info.host,
        port: info.port,
        // Users configured, even with a no_auth_user (as nats-server's varz).
        auth_required: s.auth().configured(),
        tls_required: opts.tls.is_some() && !opts.allow_non_tls,
        tls_verify: opts.tls.as_ref().is_some_and(|t| t.verify),
        max_connections: opts.max_connections,
        max_subscriptions: opts.max_subscriptions,
        ping_interval: opts.ping_interval.as_nanos() as u64,
        ping_max: opts.ping_max,
        http_host: opts.http_host.clone().unwrap_or_else(|| opts.host.clone()),
        http_port: opts.http_port,
        http_base_path: opts.http_base_path.clone(),
        https_port: opts.https_port,
        auth_timeout: opts.effective_auth_timeout().as_secs_f64(),
        max_control_line: opts.max_control_line,
        max_payload: opts.max_payload,
        max_pending: opts.max_pending,
        cluster: Empty {},
        gateway: Empty {},
        leaf: Empty {},
        mqtt: Empty {},
        websocket: opts
            .websocket
            .as_ref()
            .map_or_else(WebsocketVarz::default, |w| WebsocketVarz {
                host: w.host.clone().unwrap_or_else(|| opts.host.clone()),
                port: s.websocket_addr.map_or(0, |a| i64::from(a.port())),
                handshake_timeout: w.handshake_timeout.map_or(0, |d| d.as_nanos() as u64),
                no_tls: w.no_tls,
                same_origin: w.origins.same_origin,
                allowed_origins: w.allowed_origins.clone(),
                compression: w.compression,
                tls_cert_not_after: s.websocket_tls().and_then(|t| t.not_after).map(GoTime),
            }),
        jetstream: match super::jsz::js_varz(s) {
            Some(v) => JetStreamSection::Running(Box::new(v)),
            None => JetStreamSection::Off(Empty {}),
        },
        tls_timeout: opts
            .tls
            .as_ref()
            .map_or(crate::tls::DEFAULT_TLS_TIMEOUT, |t| t.timeout)
            .as_secs_f64(),
        write_deadline: opts.write_deadline.as_nanos() as u64,
        start: GoTime(s.start_time),
        now: GoTime(now),
        uptime: super::format::my_uptime(now.duration_since(s.start_time).unwrap_or_default()),
        mem: process::rss_bytes(),
        cores: process::cores(),
        gomaxprocs: process::parallelism(),
        cpu: mon.cpu_percent(),
        connections: s.num_clients(),
        total_connections: load(&st.total_connections),
        routes: 0,
        remotes: 0,
        leafnodes: 0,
        in_msgs,
        in_bytes,
        in_client_msgs: in_msgs,
        in_client_bytes: in_bytes,
        out_msgs,
        out_bytes,
        out_client_msgs: out_msgs,
        out_client_bytes: out_bytes,
        slow_consumers: slow,
        stale_connections: stale,
        stalled_clients: 0,
        subscriptions: subs.num_subs,
        http_req_stats: mon.http_req_stats(),
        config_load_time: GoTime(s.start_time),
        config_digest: opts.config_digest.clone().unwrap_or_default(),
        tags: opts.server_tags.clone(),
        feature_flags: FeatureFlags::CURRENT,
        trusted_operators_jwt: opts
            .operator
            .as_ref()
            .map(|o| o.operator_jwts.clone())
            .unwrap_or_default(),
        trusted_operators_claim: opts
            .operator
            .as_ref()
            .map(|o| {
                o.operator_jwts
                    .iter()
                    .filter_map(|t| crate::jwt::claims_json(t))
                    .collect()
            })
            .unwrap_or_default(),
        system_account: system_account_name(mon),
        pinned_account_fails: s
            .stats
            .pinned_account_fails
            .load(std::sync::atomic::Ordering::Relaxed),
        slow_consumer_stats: KindCounts {
            clients: slow,
            ..KindCounts::default()
        },
        stale_connection_stats: KindCounts {
            clients: stale,
            ..KindCounts::default()
        },
        disk_io_wait_stats: DiskIoWaitStats::default(),
        tls_cert_not_after: s.tls().and_then(|t| t.not_after).map(GoTime),
    }
}
