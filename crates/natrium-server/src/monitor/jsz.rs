//! `/jsz`: JetStream usage, reservations and limits, in nats-server's shape.
//!
//! Top level: usage and stream reservations of the whole server, its configuration and
//! counts. `account_details` (with `accounts=true` or `acc=<name>`) lists each account's
//! usage; as in nats-server its `reserved_memory`/`reserved_storage` are the account's
//! limits (what enabling it reserved on the server), or 2^64 - 1 when unlimited (the
//! limit -1 as Go prints it unsigned). With `streams=true` each account lists its
//! streams' state (and config with `config=true`), and with `consumers=true` each
//! stream its consumers' info; as in nats-server, `consumers` implies `streams`, and
//! `streams` implies `accounts` unless one account is asked for.
//! Clustering fields (`meta_cluster`, raft groups) are omitted: natrium is standalone.

use super::Monitor;
use super::json::GoTime;
use crate::jetstream::api::consumer::ConsumerInfo;
use crate::jetstream::api::stream::{StreamConfig, StreamState};
use crate::jetstream::api::time::Timestamp;
use crate::jetstream::limits::{Storage, server_reserved, server_used};
use serde::Serialize;
use std::time::SystemTime;

/// API counters.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JszApi {
    /// API level.
    pub level: i64,
    /// Requests.
    pub total: u64,
    /// Failed requests.
    pub errors: u64,
}

/// `config`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JszConfig {
    /// Memory limit in force.
    pub max_memory: i64,
    /// File limit in force.
    pub max_storage: i64,
    /// Store directory (omitted when empty, as Go's `omitempty`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub store_dir: String,
    /// fsync interval in nanoseconds (with `always`, the 2-minute default, as
    /// nats-server reports it beside `sync_always`).
    #[serde(skip_serializing_if = "is_zero")]
    pub sync_interval: i64,
    /// `sync_interval: always` (omitted when false).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub sync_always: bool,
    /// JetStream domain (omitted when none).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// Compression supported (omitted when false, as Go's `omitempty`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub compress_ok: bool,
    /// Strict API (omitted when false).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub strict: bool,
}

/// `limits`: the `jetstream { limits { … } }` in force (zero ones omitted, as Go's
/// `omitempty`).
#[derive(Debug, Clone, Serialize)]
pub struct JszLimits {
    /// Largest pull batch a consumer may allow.
    #[serde(skip_serializing_if = "is_zero")]
    pub max_request_batch: i64,
    /// Largest consumer `max_ack_pending`.
    #[serde(skip_serializing_if = "is_zero")]
    pub max_ack_pending: i64,
    /// Largest stream duplicate window (ns).
    #[serde(skip_serializing_if = "is_zero")]
    pub max_duplicate_window: i64,
    /// Implicit per-stream consumer cap.
    pub default_max_consumers: i64,
}

impl JszLimits {
    fn of(js: &crate::jetstream::engine::JetStream) -> JszLimits {
        let l = js.api_limits;
        JszLimits {
            max_request_batch: l.max_request_batch,
            max_ack_pending: l.max_ack_pending,
            max_duplicate_window: l.duplicates,
            default_max_consumers: l.default_max_consumers,
        }
    }
}

/// One stream in `stream_detail`.
#[derive(Debug, Serialize)]
pub struct JszStream {
    /// Name.
    pub name: String,
    /// Creation time.
    pub created: Timestamp,
    /// Where it runs: `{"leader": <server name>}` (nats-server reports it standalone too).
    pub cluster: JszCluster,
    /// Config (with `config=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<StreamConfig>,
    /// State.
    pub state: StreamState,
    /// Its consumers (with `consumers=true`), as CONSUMER.INFO reports them, their config
    /// only with `config=true`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub consumer_detail: Vec<ConsumerInfo>,
}

/// A stream's `cluster` in `stream_detail`.
#[derive(Debug, Serialize)]
pub struct JszCluster {
    /// The server that leads it (this one).
    pub leader: String,
}

/// One account in `account_details`.
#[derive(Debug, Serialize)]
pub struct JszAccount {
    /// Name.
    pub name: String,
    /// Id (the name in config mode).
    pub id: String,
    /// Usage as at the top level; here the reservations are the account's limits (0
    /// unlimited), and `accounts`/`ha_assets` are 0.
    #[serde(flatten)]
    pub usage: JsStats,
    /// Streams (with `streams=true`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stream_detail: Vec<JszStream>,
}

/// The `/jsz` body.
#[derive(Debug, Serialize)]
pub struct Jsz {
    /// Usage, reservations, accounts and API counters (the same as `/varz`'s `stats`).
    #[serde(flatten)]
    pub stats: JsStats,
    /// Server id.
    pub server_id: String,
    /// Now.
    pub now: GoTime,
    /// JetStream is off (then everything else is zero).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    /// Configuration.
    pub config: JszConfig,
    /// Server-wide limits (none while disabled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<JszLimits>,
    /// Streams.
    pub streams: u64,
    /// Consumers.
    pub consumers: u64,
    /// Messages.
    pub messages: u64,
    /// Bytes.
    pub bytes: u64,
    /// Per account (with `accounts=true` or `acc=`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub account_details: Vec<JszAccount>,
    /// Accounts with JetStream.
    pub total: u64,
}

/// `/varz`'s `jetstream` section while JetStream runs (nats-server's `JetStreamVarz`
/// of a standalone server: no `meta`).
#[derive(Debug, Clone, Serialize)]
pub struct JsVarz {
    /// Configuration, as in `/jsz`.
    pub config: JszConfig,
    /// Usage and API counters.
    pub stats: JsStats,
    /// Server-wide limits.
    pub limits: JszLimits,
}

/// `stats` of [`JsVarz`]: the server-wide usage part of `/jsz`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JsStats {
    /// Memory used.
    pub memory: u64,
    /// File storage used.
    pub storage: u64,
    /// Memory reserved by streams' `max_bytes`.
    pub reserved_memory: u64,
    /// File storage reserved by streams' `max_bytes`.
    pub reserved_storage: u64,
    /// Accounts with JetStream.
    pub accounts: u64,
    /// Raft groups (0).
    pub ha_assets: u64,
    /// API counters.
    pub api: JszApi,
}

/// The `jetstream` section of `/varz`; `None` (printed `{}`) without JetStream.
pub fn js_varz(server: &crate::server::ServerShared) -> Option<JsVarz> {
    let js = server.js.get()?;
    Some(JsVarz {
        config: config_of(js, &server.opts()),
        stats: stats_of(js),
        limits: JszLimits::of(js),
    })
}

/// The `config` part of `/jsz` and `/varz`.
fn config_of(
    js: &crate::jetstream::engine::JetStream,
    opts: &crate::options::Options,
) -> JszConfig {
    let sync_interval = match opts.jetstream.sync_interval {
        Some(Some(d)) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Some(None) | None => 120_000_000_000,
    };
    let sync_always = matches!(opts.jetstream.sync_interval, Some(None));
    JszConfig {
        max_memory: js.limits.max(Storage::Memory),
        max_storage: js.limits.max(Storage::File),
        store_dir: js.config.store_dir.display().to_string(),
        sync_interval,
        sync_always,
        domain: opts.jetstream.domain.clone().unwrap_or_default(),
        // nats-server sets it only when both limits are configured (the path that
        // builds its config from them); with computed defaults it stays false.
        compress_ok: js.config.max_memory_source
            == crate::jetstream::config::LimitSource::Configured
            && js.config.max_store_source == crate::jetstream::config::LimitSource::Configured,
        strict: js.config.strict,
    }
}

/// The server-wide usage part of `/jsz` and `/varz`.
fn stats_of(js: &crate::jetstream::engine::JetStream) -> JsStats {
    JsStats {
        memory: server_used(js, Storage::Memory).max(0) as u64,
        storage: server_used(js, Storage::File).max(0) as u64,
        reserved_memory: server_reserved(js, Storage::Memory).max(0) as u64,
        reserved_storage: server_reserved(js, Storage::File).max(0) as u64,
        accounts: js.accounts.read().len() as u64,
        ha_assets: 0,
        api: JszApi {
            level: crate::options::API_LEVEL,
            total: js.api_total.load(std::sync::atomic::Ordering::Relaxed),
            errors: js.api_errors.load(std::sync::atomic::Ordering::Relaxed),
        },
    }
}

/// Build `/jsz`.
///
/// # Errors
/// A malformed query parameter (the text of nats-server's 400 answer).
pub fn jsz(mon: &Monitor, q: &super::query::Query) -> Result<Jsz, String> {
    let server = mon.server();
    let accounts_flag = q.bool("accounts").map_err(|e| e.to_string())?;
    let streams_flag = q.bool("streams").map_err(|e| e.to_string())?;
    let consumers_flag = q.bool("consumers").map_err(|e| e.to_string())?;
    let config_flag = q.bool("config").map_err(|e| e.to_string())?;
    let filter = q.get("acc").to_string();
    // nats-server's implications (`Jsz`): consumers need their streams, and streams an
    // account list.
    let streams_flag = streams_flag || consumers_flag;
    let accounts_flag = accounts_flag || (streams_flag && filter.is_empty());
    // Paging of `account_details` (nats-server validates both as integers first).
    let offset = q.int("offset").map_err(|e| e.to_string())?.max(0) as usize;
    let limit = q.int("limit").map_err(|e| e.to_string())?;
    let Some(js) = server.js.get() else {
        // nats-server answers 200 with zeros and `disabled` (metrics exporters poll it).
        return Ok(Jsz {
            stats: JsStats::default(),
            server_id: server.server_id.clone(),
            now: GoTime(SystemTime::now()),
            disabled: true,
            config: JszConfig::default(),
            limits: None,
            streams: 0,
            consumers: 0,
            messages: 0,
            bytes: 0,
            account_details: Vec::new(),
            total: 0,
        });
    };
    let opts = server.opts();
    let mut jsas: Vec<_> = js.accounts.read().values().cloned().collect();
    jsas.sort_by(|a, b| a.account.name.cmp(&b.account.name));
    let (mut streams, mut consumers, mut messages, mut bytes) = (0u64, 0u64, 0u64, 0u64);
    let mut details = Vec::new();
    for jsa in &jsas {
        let mut stream_detail = Vec::new();
        for s in jsa.streams.read().values() {
            let st = s.store.fast_state();
            streams += 1;
            consumers += s.consumers.read().len() as u64;
            messages += st.msgs;
            bytes += st.bytes;
            if streams_flag {
                let consumer_detail = if consumers_flag {
                    // Not `direct` ones, as nats-server lists only public consumers.
                    let list: Vec<_> = s.consumers.read().values().cloned().collect();
                    list.iter()
                        .filter(|c| !c.is_direct())
                        .map(|c| {
                            let mut info = c.info();
                            info.config = config_flag.then(|| c.config());
                            info.cluster = None;
                            info
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                stream_detail.push(JszStream {
                    name: s.name.clone(),
                    created: s.created,
                    cluster: JszCluster {
                        leader: server.server_name.clone(),
                    },
                    config: config_flag.then(|| s.config()),
                    state: crate::jetstream::api_streams::api_state(s, false),
                    consumer_detail,
                });
            }
        }
        let wanted = if filter.is_empty() {
            accounts_flag
        } else {
            jsa.account.name == filter
        };
        if wanted {
            let l = jsa.limits();
            details.push(JszAccount {
                name: jsa.account.name.clone(),
                id: jsa.account.name.clone(),
                usage: JsStats {
                    memory: jsa.usage(true),
                    storage: jsa.usage(false),
                    // -1 (unlimited) as Go prints it unsigned.
                    reserved_memory: l.max_memory as u64,
                    reserved_storage: l.max_store as u64,
                    accounts: 0,
                    ha_assets: 0,
                    api: JszApi {
                        level: 0,
                        total: jsa.api_total.load(std::sync::atomic::Ordering::Relaxed),
                        errors: jsa.api_errors.load(std::sync::atomic::Ordering::Relaxed),
                    },
                },
                stream_detail,
            });
        }
    }
    let mut details: Vec<JszAccount> = details.into_iter().skip(offset).collect();
    if limit > 0 {
        details.truncate(limit as usize);
    }
    let n = jsas.len() as u64;
    Ok(Jsz {
        stats: stats_of(js),
        server_id: server.server_id.clone(),
        now: GoTime(SystemTime::now()),
        disabled: false,
        config: config_of(js, &opts),
        limits: Some(JszLimits::of(js)),
        streams,
        consumers,
        messages,
        bytes,
        account_details: details,
        total: n,
    })
}

/// For `skip_serializing_if`.
fn is_zero(n: &i64) -> bool {
    *n == 0
}
