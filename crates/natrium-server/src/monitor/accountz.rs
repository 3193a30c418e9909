//! `/accountz`: the accounts this server knows, and one account's details with `acc=`.
//!
//! The detail view carries the fields nats-server always prints, the connection and
//! subscription counts, the account's subject mappings, exports and imports, and in
//! operator mode what its JWT says.

use super::Monitor;
use super::json::GoTime;
use super::subsz::SublistStatsJson;
use super::varz::system_account_name;
use crate::account::GLOBAL_ACCOUNT;
use serde::Serialize;
use std::time::SystemTime;

/// Why `/accountz?acc=` failed (HTTP 400, `Display` is the body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountzError {
    /// No such account.
    #[error("Account {0} does not exist")]
    NoAccount(String),
}

/// The `/accountz` body.
#[derive(Debug, Clone, Serialize)]
pub struct Accountz {
    /// Server id.
    pub server_id: String,
    /// Now.
    pub now: GoTime,
    /// The system account, when there is one.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub system_account: String,
    /// Account names (without `acc=`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accounts: Option<Vec<String>>,
    /// One account (with `acc=`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_detail: Option<AccountInfo>,
}

/// One account's details.
#[derive(Debug, Clone, Serialize)]
pub struct AccountInfo {
    /// Name.
    pub account_name: String,
    /// Last change (creation: server start).
    pub update_time: GoTime,
    /// Whether this is the system account.
    #[serde(skip_serializing_if = "is_false")]
    pub is_system: bool,
    /// JWT expired (no JWTs yet).
    pub expired: bool,
    /// Fully loaded.
    pub complete: bool,
    /// JetStream enabled for the account.
    pub jetstream_enabled: bool,
    /// Leaf-node connections.
    pub leafnode_connections: usize,
    /// Client connections.
    pub client_connections: usize,
    /// Subscriptions.
    pub subscriptions: u64,
    /// Subject mappings by source, each with its destinations (omitted when none).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub mappings: std::collections::BTreeMap<String, Vec<MapDest>>,
    /// Exports (omitted when none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exports: Vec<ExportInfo>,
    /// Imports (omitted when none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub imports: Vec<ImportJson>,
    /// The account JWT (operator mode).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub jwt: String,
    /// The operator key that signed the account JWT.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub issuer_key: String,
    /// Name tag (the name unless tagged).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name_tag: String,
    /// The account JWT's tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The account JWT's claims.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decoded_jwt: Option<serde_json::Value>,
    /// The account JWT's user revocations: user key (or `*`) to the time before which
    /// its JWTs are void.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub revoked_user: std::collections::BTreeMap<String, GoTime>,
    /// The account's subject-index counters.
    pub sublist_stats: SublistStatsJson,
    /// natrium only: JetStream usage, reservations and limits of the account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jetstream: Option<AccountJetStream>,
}

/// An account's JetStream usage against its limits (natrium only).
#[derive(Debug, Clone, Serialize)]
pub struct AccountJetStream {
    /// Memory stored.
    pub memory: u64,
    /// File storage stored.
    pub storage: u64,
    /// Memory reserved by streams' `max_bytes`.
    pub reserved_memory: i64,
    /// File storage reserved by streams' `max_bytes`.
    pub reserved_storage: i64,
    /// Streams.
    pub streams: usize,
    /// Limits, as `$JS.API.INFO` shows them.
    pub limits: crate::jetstream::api::account::AccountLimits,
}

/// One destination of a subject mapping, as nats-server's `MapDest`.
#[derive(Debug, Clone, Serialize)]
pub struct MapDest {
    /// The destination subject.
    pub subject: String,
    /// Its weight in percent.
    pub weight: u8,
}

/// One export, as nats-server's `ExtExport`.
#[derive(Debug, Clone, Serialize)]
pub struct ExportInfo {
    /// Exported subject.
    pub subject: String,
    /// `stream` or `service`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Token required (never, without JWTs; omitted when false, as Go's `omitempty`).
    #[serde(skip_serializing_if = "is_false")]
    pub token_req: bool,
    /// Accounts allowed to import (omitted when public).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub approved_accounts: Vec<String>,
    /// Service response type.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub response_type: String,
}

/// One import, as nats-server's `ExtImport`.
#[derive(Debug, Clone, Serialize)]
pub struct ImportJson {
    /// Subject in the exporting account.
    pub subject: String,
    /// Exporting account.
    pub account: String,
    /// Mapped subject (omitted when none, as nats-server).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub to: String,
    /// Local subject.
    pub local_subject: String,
    /// `stream` or `service`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Whether it failed to resolve.
    pub invalid: bool,
    /// Shares the requestor identity.
    pub share: bool,
    /// Latency tracking.
    pub tracking: bool,
}

/// A mapping's destinations as nats-server keeps and shows them: with the source itself
/// added for the weight the destinations leave (unless it is one of them), in rising
/// order of weight, each weight the running total (the upper bound of its share of a
/// random draw from 1 to 100).
fn routing_table(from: &str, dests: &[(String, u8)]) -> Vec<MapDest> {
    let mut all: Vec<(String, u8)> = dests.to_vec();
    let total: u32 = dests.iter().map(|(_, w)| u32::from(*w)).sum();
    if total != 100 && !dests.iter().any(|(d, _)| d == from) {
        // The source as a destination: its `*` tokens become `$1`, `$2`, ...
        let mut n = 0;
        let own: Vec<String> = from
            .split('.')
            .map(|t| {
                if t == "*" {
                    n += 1;
                    format!("${n}")
                } else {
                    t.to_string()
                }
            })
            .collect();
        let left = if dests.is_empty() {
            100
        } else {
            100u32.saturating_sub(total) as u8
        };
        all.push((own.join("."), left));
    }
    all.sort_by_key(|(_, w)| *w);
    let mut running = 0u8;
    all.into_iter()
        .map(|(subject, weight)| {
            running = running.saturating_add(weight);
            MapDest {
                subject,
                weight: running,
            }
        })
        .collect()
}

/// For `skip_serializing_if`.
fn is_false(b: &bool) -> bool {
    !*b
}

/// Builds `/accountz`; `acc` empty lists the accounts.
pub fn accountz(mon: &Monitor, acc: &str) -> Result<Accountz, AccountzError> {
    let s = mon.server();
    let mut out = Accountz {
        server_id: s.server_id.clone(),
        now: GoTime(SystemTime::now()),
        system_account: system_account_name(mon),
        accounts: None,
        account_detail: None,
    };
    let accounts = s.accounts();
    if acc.is_empty() {
        out.accounts = Some(accounts.iter().map(|a| a.name.clone()).collect());
        return Ok(out);
    }
    let a = accounts
        .iter()
        .find(|a| a.name == acc)
        .ok_or_else(|| AccountzError::NoAccount(acc.to_string()))?;
    // Operator mode: what the account JWT says.
    let opts = s.opts();
    let jwt_of = |name: &str| {
        opts.operator
            .as_ref()
            .and_then(|o| o.accounts.get(name))
            .filter(|j| !j.jwt.is_empty())
            .cloned()
    };
    let clients = s
        .clients()
        .iter()
        .filter(|c| {
            let meta = c.meta.lock();
            let name = if meta.account.is_empty() {
                GLOBAL_ACCOUNT
            } else {
                meta.account.as_str()
            };
            name == a.name
        })
        .count();
    let stats = a.sublist.stats();
    out.account_detail = Some(AccountInfo {
        account_name: a.name.clone(),
        update_time: GoTime(s.start_time),
        is_system: out.system_account == a.name,
        expired: false,
        complete: true,
        jetstream_enabled: a.jetstream.is_some()
            || s.js.get().is_some_and(|js| js.account(&a.name).is_some()),
        leafnode_connections: 0,
        client_connections: clients,
        subscriptions: stats.num_subs,
        mappings: {
            let configured = if a.name == GLOBAL_ACCOUNT {
                Some(&opts.mappings)
            } else {
                opts.accounts
                    .accounts
                    .iter()
                    .find(|c| c.name == a.name)
                    .map(|c| &c.mappings)
            };
            configured
                .into_iter()
                .flatten()
                .map(|m| (m.from.clone(), routing_table(&m.from, &m.dests)))
                .collect()
        },
        exports: a
            .exports()
            .iter()
            .map(|e| ExportInfo {
                subject: e.subject.clone(),
                kind: if e.service { "service" } else { "stream" },
                token_req: false,
                approved_accounts: e.accounts.clone().unwrap_or_default(),
                response_type: if e.service {
                    match e.response_type {
                        crate::options::ResponseType::Singleton => "Singleton",
                        crate::options::ResponseType::Stream => "Streamed",
                        crate::options::ResponseType::Chunked => "Chunked",
                    }
                    .to_string()
                } else {
                    String::new()
                },
            })
            .collect(),
        imports: a
            .imports
            .lock()
            .iter()
            .map(|i| ImportJson {
                subject: i.subject.clone(),
                account: i.account.clone(),
                // A service import's local subject; a stream import shows its mapping
                // as `local_subject` only (nats-server leaves `to` out there).
                to: if i.service {
                    i.local_subject.clone()
                } else {
                    String::new()
                },
                local_subject: i.local_subject.clone(),
                kind: if i.service { "service" } else { "stream" },
                invalid: false,
                share: i.share,
                tracking: false,
            })
            .collect(),
        jwt: jwt_of(&a.name).map(|j| j.jwt).unwrap_or_default(),
        issuer_key: jwt_of(&a.name).map(|j| j.issuer).unwrap_or_default(),
        name_tag: crate::config_operator::name_tag(&opts, &a.name),
        tags: jwt_of(&a.name).map(|j| j.tags).unwrap_or_default(),
        decoded_jwt: jwt_of(&a.name).and_then(|j| crate::jwt::claims_json(&j.jwt)),
        revoked_user: jwt_of(&a.name)
            .map(|j| {
                j.revocations
                    .iter()
                    .map(|(k, t)| {
                        let at = std::time::UNIX_EPOCH
                            + std::time::Duration::from_secs((*t).max(0) as u64);
                        (k.clone(), GoTime(at))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        sublist_stats: SublistStatsJson::from(&stats),
        jetstream: s.js.get().and_then(|js| js.account(&a.name)).map(|jsa| {
            use crate::jetstream::limits::{Storage, account_reserved};
            let l = jsa.limits();
            AccountJetStream {
                memory: jsa.usage(true),
                storage: jsa.usage(false),
                reserved_memory: account_reserved(&jsa, Storage::Memory, None),
                reserved_storage: account_reserved(&jsa, Storage::File, None),
                streams: jsa.streams.read().len(),
                limits: crate::jetstream::api::account::AccountLimits {
                    max_memory: l.max_memory,
                    max_storage: l.max_store,
                    max_streams: l.max_streams,
                    max_consumers: l.max_consumers,
                    max_ack_pending: l.max_ack_pending,
                    memory_max_stream_bytes: l.memory_max_stream_bytes,
                    storage_max_stream_bytes: l.store_max_stream_bytes,
                    max_bytes_required: l.max_bytes_required,
                },
            }
        }),
    });
    Ok(out)
}
