//! Storage resource limits on three levels: the server's `jetstream { max_mem, max_file }`,
//! each account's `jetstream { max_mem, max_file, max_streams, … }`, and each stream's
//! `max_bytes`.
//!
//! The rules are nats-server's (standalone, untiered limits), so that the same configs pass
//! and fail:
//! - **Enabling accounts** (start, reload, an account added later): the sum of the
//!   accounts' positive `max_mem` (`max_file`) plus what streams already reserve must fit
//!   the server's limit, else 10028 (10047). The startup message is
//!   `Can't start JetStream: Error enabling jetstream on configured accounts: <err>`.
//! - **Stream create/update reservations**: a stream reserves its `max_bytes` (when > 0)
//!   against its account and the server. A stream without `max_bytes` is checked as if it
//!   asked for 1 byte (so a fully reserved account refuses even unlimited streams, as
//!   nats-server does); an update only asks for the growth of `max_bytes`.
//! - **Publishing**: a message is refused with 10023 when the server's usage of that
//!   storage type is already over its limit, and with 10002 when the account's usage plus
//!   the message would go over the account's limit.
//!
//! Unlike nats-server, the errors' descriptions name the limit, what is reserved or used
//! and what was asked for (the `code`/`err_code` are unchanged), and a server limit of `-1`
//! means unlimited.

use super::api::errors::ApiError;
use super::api::stream::{StorageType as ApiStorage, StreamConfig};
use super::engine::{JetStream, JsAccount};
use crate::options::AccountJsLimits;
use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};

/// Usage at or above this percentage of a limit is reported by `/healthz` as a warning.
pub const WARN_PERCENT: u64 = 90;

/// Which storage a limit is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Storage {
    /// Memory streams.
    Memory,
    /// File streams.
    File,
}

impl Storage {
    /// The storage of a stream config.
    pub fn of(cfg: &StreamConfig) -> Storage {
        match cfg.storage {
            ApiStorage::Memory => Storage::Memory,
            ApiStorage::File => Storage::File,
        }
    }

    /// `memory` / `file`, for messages and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Storage::Memory => "memory",
            Storage::File => "file",
        }
    }

    /// The account's limit for this storage.
    pub fn account_max(self, l: &AccountJsLimits) -> i64 {
        match self {
            Storage::Memory => l.max_memory,
            Storage::File => l.max_store,
        }
    }
}

/// Whose limit was hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The account's `jetstream` limits.
    Account,
    /// The server's `jetstream` block.
    Server,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scope::Account => "account",
            Scope::Server => "server",
        })
    }
}

/// A limit that a request or a message does not fit in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// A stream's `max_bytes` (or an account's limits) do not fit the remaining
    /// reservable space.
    #[error(
        "insufficient {} resources: {scope} {} limit {limit}, reserved {reserved}, requested {requested}",
        if *storage == Storage::Memory { "memory" } else { "storage" },
        storage.as_str()
    )]
    Reservation {
        /// Memory or file.
        storage: Storage,
        /// Account or server.
        scope: Scope,
        /// The limit in bytes.
        limit: i64,
        /// Already reserved.
        reserved: i64,
        /// Asked for.
        requested: i64,
    },
    /// A published message would take the account over its limit (10002).
    #[error("account {} limit {limit}, used {used}, message {size}", storage.as_str())]
    AccountUsage {
        /// Memory or file.
        storage: Storage,
        /// The limit in bytes.
        limit: i64,
        /// Bytes stored now.
        used: i64,
        /// The message's stored size.
        size: i64,
    },
    /// The server's usage is already over its limit (10023).
    #[error("server {} limit {limit}, used {used}", storage.as_str())]
    ServerUsage {
        /// Memory or file.
        storage: Storage,
        /// The limit in bytes.
        limit: i64,
        /// Bytes stored now.
        used: i64,
    },
}

impl LimitError {
    /// The nats-server error (exact `code`/`err_code`), with the numbers in the description.
    pub fn to_api(&self) -> ApiError {
        let base = match self {
            LimitError::Reservation {
                storage: Storage::Memory,
                ..
            } => ApiError::memory_resources_exceeded(),
            LimitError::Reservation { .. } => ApiError::storage_resources_exceeded(),
            LimitError::AccountUsage { .. } => ApiError::account_resources_exceeded(),
            LimitError::ServerUsage { .. } => ApiError::insufficient_resources(),
        };
        let detail = match self {
            LimitError::Reservation {
                storage,
                scope,
                limit,
                reserved,
                requested,
            } => format!(
                "{scope} {} limit {limit}, reserved {reserved}, requested {requested}",
                storage.as_str()
            ),
            other => other.to_string(),
        };
        base.with_detail(detail)
    }

    /// The same error without numbers, as nats-server prints it: `<description> (<err_code>)`.
    pub fn plain(&self) -> String {
        let e = match self {
            LimitError::Reservation {
                storage: Storage::Memory,
                ..
            } => ApiError::memory_resources_exceeded(),
            LimitError::Reservation { .. } => ApiError::storage_resources_exceeded(),
            LimitError::AccountUsage { .. } => ApiError::account_resources_exceeded(),
            LimitError::ServerUsage { .. } => ApiError::insufficient_resources(),
        };
        format!("{} ({})", e.description, e.err_code)
    }
}

/// The server's limits, changeable by a reload (`-1` = unlimited).
#[derive(Debug)]
pub struct ServerLimits {
    max_memory: AtomicI64,
    max_store: AtomicI64,
}

impl ServerLimits {
    /// Limits as resolved at start.
    pub fn new(max_memory: i64, max_store: i64) -> Self {
        ServerLimits {
            max_memory: AtomicI64::new(max_memory),
            max_store: AtomicI64::new(max_store),
        }
    }

    /// The limit for one storage type.
    pub fn max(&self, storage: Storage) -> i64 {
        match storage {
            Storage::Memory => self.max_memory.load(Ordering::Relaxed),
            Storage::File => self.max_store.load(Ordering::Relaxed),
        }
    }

    /// Replace both limits (reload).
    pub fn set(&self, max_memory: i64, max_store: i64) {
        self.max_memory.store(max_memory, Ordering::Relaxed);
        self.max_store.store(max_store, Ordering::Relaxed);
    }
}

/// Bytes a stream config reserves: its `max_bytes` when positive.
pub fn reservation_of(cfg: &StreamConfig) -> i64 {
    cfg.max_bytes.max(0)
}

/// What an account's streams of one storage reserve, skipping the stream `except`.
pub fn account_reserved(jsa: &JsAccount, storage: Storage, except: Option<&str>) -> i64 {
    jsa.streams
        .read()
        .iter()
        .filter(|(name, _)| Some(name.as_str()) != except)
        .map(|(_, s)| s.config())
        .filter(|c| Storage::of(c) == storage)
        .map(|c| reservation_of(&c))
        .fold(0i64, i64::saturating_add)
}

/// What every account's streams of one storage reserve on this server.
pub fn server_reserved(js: &JetStream, storage: Storage) -> i64 {
    js.accounts
        .read()
        .values()
        .map(|a| account_reserved(a, storage, None))
        .fold(0i64, i64::saturating_add)
}

/// Bytes stored by every account's streams of one storage.
pub fn server_used(js: &JetStream, storage: Storage) -> i64 {
    let total = &js.used[super::engine::totals_index(storage == Storage::Memory)];
    i64::try_from(total.load(std::sync::atomic::Ordering::Relaxed)).unwrap_or(i64::MAX)
}

/// nats-server's `checkBytesLimits` for one storage type (untiered, one replica):
/// `add` bytes on top of `account_res` reserved in the account and `server_res` on the
/// server. A negative `add` counts as 1 byte.
pub fn check_bytes(
    storage: Storage,
    add: i64,
    account_max: i64,
    account_res: i64,
    server_max: i64,
    server_res: i64,
) -> Result<(), LimitError> {
    let add = if add < 0 { 1 } else { add };
    if account_max >= 0 && (account_res > account_max || add > account_max - account_res) {
        return Err(LimitError::Reservation {
            storage,
            scope: Scope::Account,
            limit: account_max,
            reserved: account_res,
            requested: add,
        });
    }
    if server_max >= 0 && (server_res > server_max || add > server_max - server_res) {
        return Err(LimitError::Reservation {
            storage,
            scope: Scope::Server,
            limit: server_max,
            reserved: server_res,
            requested: add,
        });
    }
    Ok(())
}

/// The limits checks of a stream create (after the config checks): stream count (10027),
/// `max_consumers` over the account's (10026), then the byte reservation (10047/10028).
pub fn check_stream_create(
    js: &JetStream,
    jsa: &JsAccount,
    cfg: &StreamConfig,
) -> Result<(), ApiError> {
    check_stream_create_early(js, jsa, cfg, true)
}

/// nats-server's early limits check of a stream create (`jsNonClusteredStreamLimitsCheck`),
/// on the request as sent, before its config is checked: the stream count, the consumer
/// cap and, only when the request names its storage (an unset storage type matches no
/// case of nats-server's byte check), the byte reservation. So an account at its stream
/// limit gets 10027 whatever else is wrong with the config, and an account limit is
/// reported before the per-stream one (10122).
pub fn check_stream_create_early(
    js: &JetStream,
    jsa: &JsAccount,
    cfg: &StreamConfig,
    storage_given: bool,
) -> Result<(), ApiError> {
    let limits = jsa.limits();
    let count = jsa
        .streams
        .read()
        .keys()
        .filter(|n| n.as_str() != cfg.name)
        .count() as i64;
    if limits.max_streams > 0 && count >= limits.max_streams {
        return Err(ApiError::maximum_streams_limit()
            .with_detail(format!("limit {}, in use {count}", limits.max_streams)));
    }
    check_consumers_cap(&limits, cfg)?;
    if !storage_given {
        return Ok(());
    }
    let storage = Storage::of(cfg);
    check_bytes(
        storage,
        cfg.max_bytes,
        storage.account_max(&limits),
        account_reserved(jsa, storage, Some(&cfg.name)),
        js.limits.max(storage),
        server_reserved(js, storage),
    )
    .map_err(|e| e.to_api())
}

/// The limits checks of a stream update: `max_consumers` (10026), then only the growth
/// of `max_bytes` is reserved, on top of what the stream already holds.
pub fn check_stream_update(
    js: &JetStream,
    jsa: &JsAccount,
    old: &StreamConfig,
    cfg: &StreamConfig,
) -> Result<(), ApiError> {
    let limits = jsa.limits();
    check_consumers_cap(&limits, cfg)?;
    let storage = Storage::of(cfg);
    let diff = (cfg.max_bytes.max(0) - old.max_bytes.max(0)).max(0);
    let kept = (cfg.max_bytes - diff).max(0);
    let account_res = account_reserved(jsa, storage, Some(&cfg.name)).saturating_add(kept);
    check_bytes(
        storage,
        diff,
        storage.account_max(&limits),
        account_res,
        js.limits.max(storage),
        server_reserved(js, storage),
    )
    .map_err(|e| e.to_api())
}

fn check_consumers_cap(limits: &AccountJsLimits, cfg: &StreamConfig) -> Result<(), ApiError> {
    if cfg.max_consumers > 0 && limits.max_consumers > 0 && cfg.max_consumers > limits.max_consumers
    {
        return Err(ApiError::maximum_consumers_limit().with_detail(format!(
            "account limit {}, requested {}",
            limits.max_consumers, cfg.max_consumers
        )));
    }
    Ok(())
}

/// nats-server's `sufficientResources`, applied to accounts one after another (in name
/// order): each account's positive limits, plus everything enabled before it (limits and
/// stream reservations), must fit the server. `accounts` yields each account's limits and
/// what its streams already reserve `(memory, file)`.
pub fn check_accounts_fit<'a>(
    server_mem: i64,
    server_store: i64,
    accounts: impl IntoIterator<Item = (&'a AccountJsLimits, (i64, i64))>,
) -> Result<(), LimitError> {
    let mut limits_mem = 0i64;
    let mut limits_store = 0i64;
    let mut res_mem = 0i64;
    let mut res_store = 0i64;
    for (l, (rm, rs)) in accounts {
        let add_mem = l.max_memory.max(0);
        let add_store = l.max_store.max(0);
        for (storage, max, reserved_streams, reserved_limits, add) in [
            (Storage::Memory, server_mem, res_mem, limits_mem, add_mem),
            (
                Storage::File,
                server_store,
                res_store,
                limits_store,
                add_store,
            ),
        ] {
            if max < 0 {
                continue;
            }
            for reserved in [reserved_streams, reserved_limits] {
                if reserved.saturating_add(add) > max {
                    return Err(LimitError::Reservation {
                        storage,
                        scope: Scope::Server,
                        limit: max,
                        reserved,
                        requested: add,
                    });
                }
            }
        }
        limits_mem = limits_mem.saturating_add(add_mem);
        limits_store = limits_store.saturating_add(add_store);
        res_mem = res_mem.saturating_add(rm);
        res_store = res_store.saturating_add(rs);
    }
    Ok(())
}

/// The message that stops the server (or a reload) when accounts do not fit, exactly as
/// nats-server words it (after `Can't start JetStream: ` at start).
pub fn accounts_fit_message(e: &LimitError) -> String {
    format!(
        "Error enabling jetstream on configured accounts: {}",
        e.plain()
    )
}

/// Usage counters a stream's publish path checks once per batch.
#[derive(Debug, Clone, Copy)]
pub struct Quota {
    storage: Storage,
    account_max: i64,
    account_used: i64,
    server_max: i64,
    server_used: i64,
}

impl Quota {
    /// A snapshot for a stream of `storage` in account `account`, or `None` when
    /// JetStream or the account is gone.
    pub fn snapshot(js: &JetStream, account: &str, storage: Storage) -> Option<Quota> {
        let jsa = js.account(account)?;
        let account_max = storage.account_max(&jsa.limits());
        let server_max = js.limits.max(storage);
        let account_used = if account_max >= 0 {
            jsa.usage(storage == Storage::Memory) as i64
        } else {
            0
        };
        let server_used = if server_max >= 0 {
            server_used(js, storage)
        } else {
            0
        };
        Some(Quota {
            storage,
            account_max,
            account_used,
            server_max,
            server_used,
        })
    }

    /// Whether a message of stored size `size` may be stored: the server check (10023)
    /// first, then the account (10002), in nats-server's order.
    pub fn admit(&self, size: u64) -> Result<(), LimitError> {
        let size = i64::try_from(size).unwrap_or(i64::MAX);
        if self.server_max >= 0 && self.server_used > self.server_max {
            return Err(LimitError::ServerUsage {
                storage: self.storage,
                limit: self.server_max,
                used: self.server_used,
            });
        }
        if self.account_max >= 0 && self.account_used.saturating_add(size) > self.account_max {
            return Err(LimitError::AccountUsage {
                storage: self.storage,
                limit: self.account_max,
                used: self.account_used,
                size,
            });
        }
        Ok(())
    }

    /// Count a stored message (until the next snapshot).
    pub fn stored(&mut self, size: u64) {
        let size = i64::try_from(size).unwrap_or(i64::MAX);
        self.account_used = self.account_used.saturating_add(size);
        self.server_used = self.server_used.saturating_add(size);
    }
}

/// One "used against a limit" figure, for `/metrics` and `/healthz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    /// Account (empty for the server's rows).
    pub account: String,
    /// Stream (empty for server and account rows).
    pub stream: String,
    /// Memory or file.
    pub storage: Storage,
    /// Bytes stored.
    pub used: i64,
    /// Bytes reserved by streams' `max_bytes` (server and account rows).
    pub reserved: i64,
    /// The limit in bytes (`-1` unlimited).
    pub limit: i64,
}

impl UsageRow {
    /// Percentage of the limit in use, when there is a positive limit.
    pub fn percent(&self) -> Option<u64> {
        (self.limit > 0).then(|| (self.used.max(0) as u128 * 100 / self.limit as u128) as u64)
    }

    /// What the row is about, for messages.
    pub fn subject(&self) -> String {
        match (self.account.is_empty(), self.stream.is_empty()) {
            (true, _) => format!("server {} storage", self.storage.as_str()),
            (false, true) => format!(
                "account {:?} {} storage",
                self.account,
                self.storage.as_str()
            ),
            (false, false) => format!("stream {:?} > {:?}", self.account, self.stream),
        }
    }
}

/// Usage against limits: the server's rows, then each account's, then each stream's
/// (`max_bytes`), in name order.
pub fn usage_rows(js: &JetStream) -> Vec<UsageRow> {
    let mut rows = Vec::new();
    let mut accounts: Vec<_> = js.accounts.read().values().cloned().collect();
    accounts.sort_by(|a, b| a.account.name.cmp(&b.account.name));
    for storage in [Storage::Memory, Storage::File] {
        rows.push(UsageRow {
            account: String::new(),
            stream: String::new(),
            storage,
            used: server_used(js, storage),
            reserved: server_reserved(js, storage),
            limit: js.limits.max(storage),
        });
    }
    for jsa in &accounts {
        let limits = jsa.limits();
        for storage in [Storage::Memory, Storage::File] {
            rows.push(UsageRow {
                account: jsa.account.name.clone(),
                stream: String::new(),
                storage,
                used: jsa.usage(storage == Storage::Memory) as i64,
                reserved: account_reserved(jsa, storage, None),
                limit: storage.account_max(&limits),
            });
        }
    }
    for jsa in &accounts {
        for (name, s) in jsa.streams.read().iter() {
            let cfg = s.config();
            rows.push(UsageRow {
                account: jsa.account.name.clone(),
                stream: name.clone(),
                storage: Storage::of(&cfg),
                used: i64::try_from(s.store.fast_state().bytes).unwrap_or(i64::MAX),
                reserved: reservation_of(&cfg),
                limit: if cfg.max_bytes > 0 { cfg.max_bytes } else { -1 },
            });
        }
    }
    rows
}

/// Rows at or above [`WARN_PERCENT`] of their limit, with a message each.
pub fn warnings(rows: &[UsageRow]) -> Vec<(UsageRow, String)> {
    rows.iter()
        .filter_map(|r| {
            let pct = r.percent()?;
            (pct >= WARN_PERCENT).then(|| {
                (
                    r.clone(),
                    format!(
                        "{} at {pct}% of its limit ({} of {} bytes)",
                        r.subject(),
                        r.used,
                        r.limit
                    ),
                )
            })
        })
        .collect()
}

/// Prometheus text exposition (version 0.0.4) of usage against limits.
pub fn prometheus(js: &JetStream) -> String {
    use std::fmt::Write as _;
    let rows = usage_rows(js);
    let mut out = String::new();
    let esc = |v: &str| {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    let labels = |r: &UsageRow| {
        let mut l = Vec::new();
        if !r.account.is_empty() {
            l.push(format!("account=\"{}\"", esc(&r.account)));
        }
        if !r.stream.is_empty() {
            l.push(format!("stream=\"{}\"", esc(&r.stream)));
        }
        l.push(format!("storage=\"{}\"", r.storage.as_str()));
        l.join(",")
    };
    type Pick = fn(&UsageRow) -> i64;
    let families: [(&str, &str, u8, Pick); 9] = [
        (
            "natrium_jetstream_server_used_bytes",
            "Bytes stored by JetStream on this server.",
            0,
            |r| r.used,
        ),
        (
            "natrium_jetstream_server_reserved_bytes",
            "Bytes reserved by streams' max_bytes on this server.",
            0,
            |r| r.reserved,
        ),
        (
            "natrium_jetstream_server_limit_bytes",
            "The server's JetStream storage limit (-1 unlimited).",
            0,
            |r| r.limit,
        ),
        (
            "natrium_jetstream_account_used_bytes",
            "Bytes stored by the account's streams.",
            1,
            |r| r.used,
        ),
        (
            "natrium_jetstream_account_reserved_bytes",
            "Bytes reserved by the account's streams' max_bytes.",
            1,
            |r| r.reserved,
        ),
        (
            "natrium_jetstream_account_limit_bytes",
            "The account's JetStream storage limit (-1 unlimited).",
            1,
            |r| r.limit,
        ),
        (
            "natrium_jetstream_stream_used_bytes",
            "Bytes stored by the stream.",
            2,
            |r| r.used,
        ),
        (
            "natrium_jetstream_stream_limit_bytes",
            "The stream's max_bytes (-1 unlimited).",
            2,
            |r| r.limit,
        ),
        (
            "natrium_jetstream_limit_used_ratio",
            "Used bytes divided by the limit, for every limited server, account and stream figure.",
            3,
            |_| 0,
        ),
    ];
    for (name, help, level, pick) in families {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for r in &rows {
            let row_level = match (r.account.is_empty(), r.stream.is_empty()) {
                (true, _) => 0,
                (false, true) => 1,
                (false, false) => 2,
            };
            if level == 3 {
                if r.limit > 0 {
                    let _ = writeln!(
                        out,
                        "{name}{{{}}} {}",
                        labels(r),
                        r.used.max(0) as f64 / r.limit as f64
                    );
                }
                continue;
            }
            if row_level != level {
                continue;
            }
            let _ = writeln!(out, "{name}{{{}}} {}", labels(r), pick(r));
        }
    }
    let _ = writeln!(
        out,
        "# HELP natrium_jetstream_account_streams Streams in the account.\n# TYPE natrium_jetstream_account_streams gauge"
    );
    let mut accounts: Vec<_> = js.accounts.read().values().cloned().collect();
    accounts.sort_by(|a, b| a.account.name.cmp(&b.account.name));
    for jsa in &accounts {
        let _ = writeln!(
            out,
            "natrium_jetstream_account_streams{{account=\"{}\"}} {}",
            esc(&jsa.account.name),
            jsa.streams.read().len()
        );
    }
    let _ = writeln!(
        out,
        "# HELP natrium_jetstream_account_max_streams The account's max_streams (-1 unlimited).\n# TYPE natrium_jetstream_account_max_streams gauge"
    );
    for jsa in &accounts {
        let _ = writeln!(
            out,
            "natrium_jetstream_account_max_streams{{account=\"{}\"}} {}",
            esc(&jsa.account.name),
            jsa.limits().max_streams
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_check_follows_nats_server() {
        // Fits exactly.
        assert!(check_bytes(Storage::File, 2, 10, 8, -1, 0).is_ok());
        // One over the account.
        let e = check_bytes(Storage::File, 3, 10, 8, -1, 0).unwrap_err();
        assert!(matches!(
            e,
            LimitError::Reservation {
                scope: Scope::Account,
                ..
            }
        ));
        assert_eq!(e.to_api().err_code, 10047);
        // No max_bytes asks for one byte: a fully reserved account refuses it.
        assert!(check_bytes(Storage::File, -1, 10, 10, -1, 0).is_err());
        assert!(check_bytes(Storage::File, 0, 10, 10, -1, 0).is_ok());
        // Server limit.
        let e = check_bytes(Storage::Memory, 11, -1, 0, 20, 10).unwrap_err();
        assert_eq!(e.to_api().err_code, 10028);
        assert!(
            e.to_api()
                .description
                .starts_with("insufficient memory resources available (server memory limit 20")
        );
        // Unlimited everywhere.
        assert!(check_bytes(Storage::File, i64::MAX, -1, 0, -1, 0).is_ok());
    }

    #[test]
    fn accounts_must_fit_the_server() {
        let a = AccountJsLimits {
            max_store: 8,
            ..AccountJsLimits::default()
        };
        let b = AccountJsLimits {
            max_store: 3,
            ..AccountJsLimits::default()
        };
        assert!(check_accounts_fit(-1, 11, [(&a, (0, 0)), (&b, (0, 0))]).is_ok());
        let e = check_accounts_fit(-1, 10, [(&a, (0, 0)), (&b, (0, 0))]).unwrap_err();
        assert_eq!(
            accounts_fit_message(&e),
            "Error enabling jetstream on configured accounts: insufficient storage resources available (10047)"
        );
        // Unlimited accounts add nothing; an unlimited server takes anything.
        let u = AccountJsLimits::default();
        assert!(check_accounts_fit(0, 0, [(&u, (0, 0))]).is_ok());
        assert!(check_accounts_fit(-1, -1, [(&a, (0, 0))]).is_ok());
        let m = AccountJsLimits {
            max_memory: 5,
            ..AccountJsLimits::default()
        };
        let e = check_accounts_fit(4, -1, [(&m, (0, 0))]).unwrap_err();
        assert!(e.plain().ends_with("(10028)"));
    }

    #[test]
    fn quota_checks_server_then_account() {
        let q = Quota {
            storage: Storage::File,
            account_max: 100,
            account_used: 90,
            server_max: 1000,
            server_used: 500,
        };
        assert!(q.admit(10).is_ok());
        assert_eq!(q.admit(11).unwrap_err().to_api().err_code, 10002);
        let q = Quota {
            server_used: 1001,
            ..q
        };
        assert_eq!(q.admit(1).unwrap_err().to_api().err_code, 10023);
        let mut q = Quota {
            account_max: -1,
            server_max: -1,
            ..q
        };
        q.stored(u64::MAX);
        assert!(q.admit(u64::MAX).is_ok());
    }
}
