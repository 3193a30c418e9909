//! Turning a parsed NATS config file into [`Options`].
//!
//! The generic parser (`conf`) knows the grammar; this module knows the keys. It mirrors
//! nats-server's rules: keys are matched case-insensitively, an unknown key is an error
//! (`file:line:col: unknown field "x"`), integer durations are accepted as seconds with a
//! warning, and the size/duration traps are nats-server's. Keys nats-server knows but that
//! natrium does not implement (clustering, operator mode, websocket, MQTT…) are
//! accepted with a warning, so an existing config still starts.

use crate::conf::{self, ConfError, Entry, Map, Spanned, Value};
use crate::options::{JetStreamOptions, Options};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Syntax or a bad value; carries file:line:column.
    #[error("{0}")]
    Conf(#[from] ConfError),
}

/// Top-level keys nats-server accepts that natrium ignores (with a warning).
const UNSUPPORTED_TOP: &[&str] = &[
    "client_advertise",
    "default_sentinel",
    "cluster",
    "gateway",
    "leaf",
    "leafnodes",
    "log_max_num",
    "logfile_max_num",
    "syslog",
    "remote_syslog",
    "prof_port",
    "prof_block_rate",
    "proxy_protocol",
    "ocsp",
    "write_timeout",
    "resolver_tls",
    "connect_error_reports",
    "reconnect_error_reports",
    "mqtt",
    "server_metadata",
    "feature_flags",
    "default_js_domain",
    "ocsp_cache",
    "no_fast_producer_stall",
    "proxies",
    "trace_headers",
];

/// Load and map a config file.
pub fn load(path: &Path) -> Result<Options, ConfigError> {
    std::fs::metadata(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let map = conf::parse_file(path)?;
    let mut opts = Options::default();
    apply(&mut opts, &map)?;
    if map.iter().next().is_none() {
        opts.warnings.push(format!(
            "{}: config has no values or is empty",
            path.display()
        ));
    }
    opts.config_file = Some(path.to_path_buf());
    opts.config_digest = Some(digest(&map));
    Ok(opts)
}

/// The config digest as nats-server computes it: sha256 of Go's JSON encoding of the parsed
/// config (keys sorted, last duplicate wins, a trailing newline), so `/varz config_digest`
/// and the startup line agree with nats-server for the same file.
pub fn digest(map: &Map) -> String {
    let mut out = String::new();
    go_json_map(map, &mut out);
    out.push('\n');
    format!("sha256:{}", hex(&Sha256::digest(out.as_bytes())))
}

fn go_json_map(map: &Map, out: &mut String) {
    let mut sorted: std::collections::BTreeMap<&str, &Spanned> = std::collections::BTreeMap::new();
    for e in map.iter() {
        sorted.insert(e.key.as_str(), &e.value);
    }
    out.push('{');
    for (i, (k, v)) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        go_json_str(k, out);
        out.push(':');
        go_json_value(&v.value, out);
    }
    out.push('}');
}

fn go_json_str(s: &str, out: &mut String) {
    let quoted = serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string());
    out.push_str(&crate::protocol::write::go_json_escape(quoted));
}

fn go_json_value(v: &Value, out: &mut String) {
    match v {
        Value::Map(m) => go_json_map(m, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json_value(&item.value, out);
            }
            out.push(']');
        }
        Value::String(s) => go_json_str(s, out),
        Value::Int(n) => out.push_str(&n.to_string()),
        Value::Float(f) => {
            // Go prints floats in the shortest form, without a trailing ".0".
            if f.fract() == 0.0 && f.abs() < 1e21 {
                out.push_str(&format!("{}", *f as i64));
            } else {
                out.push_str(&format!("{f}"));
            }
        }
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Date(d) => {
            let text = d
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            go_json_str(&text, out);
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn err(pos: &conf::Pos, message: impl Into<String>) -> ConfError {
    pos.error(message)
}

/// nats-server's rule for these limits: a 0 in the config means the default, not zero
/// (a config template that writes 0 for "unset" must not close every connection).
fn zero_is_default(n: i64, default: i64) -> i64 {
    if n == 0 { default } else { n }
}

fn int(v: &Spanned, key: &str) -> Result<i64, ConfError> {
    conf::as_i64(v).map_err(|_| {
        err(
            &v.pos,
            format!("invalid value for {key:?}: expected an integer"),
        )
    })
}

/// `listen` / `http` style "host:port", a bare port, or ":port".
fn host_port(v: &Spanned) -> Result<(Option<String>, i32), ConfError> {
    match &v.value {
        Value::Int(p) => Ok((None, *p as i32)),
        Value::String(s) => {
            let (h, p) = s
                .rsplit_once(':')
                .ok_or_else(|| err(&v.pos, format!("could not parse address string {s:?}")))?;
            let port = p
                .parse::<i32>()
                .map_err(|_| err(&v.pos, format!("could not parse port {p:?}")))?;
            let h = h.trim_start_matches('[').trim_end_matches(']');
            Ok(((!h.is_empty()).then(|| h.to_string()), port))
        }
        _ => Err(err(&v.pos, "expected a host:port string or a port")),
    }
}

fn duration(v: &Spanned, key: &str, o: &mut Options) -> Result<Duration, ConfError> {
    let (d, warning) = conf::duration(v, key)?;
    if let Some(w) = warning {
        o.warnings.push(w.to_string());
    }
    Ok(d)
}

/// Apply every top-level entry of `map` to `o`.
pub fn apply(o: &mut Options, map: &Map) -> Result<(), ConfError> {
    for e in map.iter() {
        apply_entry(o, e)?;
    }
    crate::config_operator::finish(o)
}

fn apply_entry(o: &mut Options, e: &Entry) -> Result<(), ConfError> {
    let key = e.key.to_ascii_lowercase();
    let v = &e.value;
    match key.as_str() {
        "listen" => {
            let (h, p) = host_port(v)?;
            if let Some(h) = h {
                o.host = h;
            }
            o.port = p;
        }
        "port" => o.port = int(v, "port")? as i32,
        "host" | "net" => o.host = conf::as_string(v)?.to_string(),
        "server_tags" => {
            // A list of strings, or one string of comma-separated tags (nats-server).
            // Lower-cased, as nats-server keeps them.
            o.server_tags = match &v.value {
                Value::Array(items) => items
                    .iter()
                    .map(|i| conf::as_string(i).map(str::to_lowercase))
                    .collect::<Result<_, _>>()?,
                _ => conf::as_string(v)?
                    .split(',')
                    .map(|t| t.trim().to_lowercase())
                    .filter(|t| !t.is_empty())
                    .collect(),
            };
        }
        "server_name" => {
            let name = conf::as_string(v)?;
            if name.contains(' ') {
                return Err(err(&v.pos, "server name cannot contain spaces"));
            }
            o.server_name = Some(name.to_string());
        }
        "http" => {
            let (h, p) = host_port(v)?;
            o.http_host = h;
            o.http_port = p;
        }
        "http_port" | "monitor_port" => o.http_port = int(v, &key)? as i32,
        "https" => {
            let (h, p) = host_port(v)?;
            o.http_host = h;
            o.https_port = p;
        }
        "https_port" => o.https_port = int(v, &key)? as i32,
        "http_base_path" => o.http_base_path = conf::as_string(v)?.to_string(),
        "max_payload" => {
            let n = conf::as_size(v)?;
            if n > i32::MAX as i64 {
                return Err(err(
                    &v.pos,
                    format!(
                        "error parsing max_payload: value {n} exceeds the maximum of {}",
                        i32::MAX
                    ),
                ));
            }
            o.max_payload = zero_is_default(n, crate::options::DEFAULT_MAX_PAYLOAD);
        }
        "max_control_line" => {
            let n = conf::as_size(v)?;
            o.max_control_line = zero_is_default(n, crate::options::DEFAULT_MAX_CONTROL_LINE);
        }
        "max_pending" => {
            let n = conf::as_size(v)?;
            o.max_pending = zero_is_default(n, crate::options::DEFAULT_MAX_PENDING);
        }
        "max_connections" | "max_conn" => {
            let n = int(v, &key)?;
            o.max_connections = if n == 0 { -1 } else { n };
        }
        "max_subscriptions" | "max_subs" => o.max_subscriptions = int(v, &key)?,
        "max_sub_tokens" | "max_subscription_tokens" => {
            let n = int(v, &key)?;
            if n > 255 {
                return Err(err(&v.pos, "max_sub_tokens can not exceed 255"));
            }
            if n <= 0 {
                return Err(err(&v.pos, format!("{key} value can not be negative")));
            }
            o.max_sub_tokens = n;
        }
        "ping_interval" => {
            o.ping_interval = match duration(v, "ping_interval", o)? {
                d if d.is_zero() => Options::default().ping_interval,
                d => d,
            }
        }
        "ping_max" => {
            o.ping_max = zero_is_default(int(v, "ping_max")?, Options::default().ping_max)
        }
        "write_deadline" => {
            // 0 is the default (10 s), as nats-server's baseline options make it, not
            // "every blocked write is a slow consumer".
            o.write_deadline = match duration(v, "write_deadline", o)? {
                d if d.is_zero() => Options::default().write_deadline,
                d => d,
            }
        }
        "no_header_support" => o.no_header_support = conf::as_bool(v)?,
        "max_closed_clients" => o.max_closed_clients = int(v, &key)?,
        "lame_duck_duration" => {
            let d = conf::duration_strict(v, "lame_duck_duration")?;
            if d < Duration::from_secs(30) {
                return Err(err(
                    &v.pos,
                    format!("invalid lame_duck_duration of {d:?}, minimum is 30 seconds"),
                ));
            }
            o.lame_duck_duration = d;
        }
        "lame_duck_grace_period" => {
            o.lame_duck_grace_period = conf::duration_strict(v, "lame_duck_grace_period")?;
        }
        "debug" => o.log.debug = conf::as_bool(v)?,
        "trace" => o.log.trace = conf::as_bool(v)?,
        "trace_verbose" => {
            o.log.trace_verbose = conf::as_bool(v)?;
            if o.log.trace_verbose {
                o.log.trace = true;
            }
        }
        "logtime" => o.log.logtime = conf::as_bool(v)?,
        "logtime_utc" => o.log.logtime_utc = conf::as_bool(v)?,
        "log_file" | "logfile" => o.log.log_file = Some(PathBuf::from(conf::as_string(v)?)),
        "log_size_limit" | "logfile_size_limit" => o.log.log_size_limit = conf::as_size(v)?,
        "max_traced_msg_len" => o.log.max_traced_msg_len = int(v, &key)?,
        "pid_file" | "pidfile" => o.pid_file = Some(PathBuf::from(conf::as_string(v)?)),
        "ports_file_dir" => o.ports_file_dir = Some(PathBuf::from(conf::as_string(v)?)),
        "disable_sublist_cache" | "no_sublist_cache" => o.disable_sublist_cache = conf::as_bool(v)?,
        "authorization" => apply_authorization(o, v)?,
        "tls" => crate::config_tls::apply_tls(o, v)?,
        "mappings" | "maps" => o.mappings = crate::config_accounts::mappings(v)?,
        "websocket" | "ws" => crate::config_websocket::apply_websocket(o, v)?,
        "allow_non_tls" => o.allow_non_tls = conf::as_bool(v)?,
        "store_dir" | "storedir" => {
            if o.jetstream.store_dir.is_some() {
                return Err(err(&e.key_pos, "Duplicate 'store_dir' configuration"));
            }
            o.jetstream.store_dir = Some(PathBuf::from(conf::as_string(v)?));
        }
        "jetstream" => apply_jetstream(&mut o.jetstream, v)?,
        "accounts" => crate::config_accounts::accounts(o, v)?,
        "no_auth_user" => o.accounts.no_auth_user = Some(conf::as_string(v)?.to_string()),
        "system_account" | "system" => {
            o.accounts.system_account = Some(conf::as_string(v)?.to_string())
        }
        "no_system_account" | "no_system" | "no_sys_acc" => {
            o.accounts.no_system_account = conf::as_bool(v)?
        }
        k if crate::config_operator::apply_entry(o, k, e)? => {}
        k if UNSUPPORTED_TOP.contains(&k) => {
            o.warnings.push(format!(
                "{}: {:?} is not supported by natrium-server and is ignored",
                e.key_pos, e.key
            ));
        }
        _ if e.used_as_variable => {}
        _ => return Err(err(&e.key_pos, format!("unknown field {:?}", e.key))),
    }
    Ok(())
}

fn apply_authorization(o: &mut Options, v: &Spanned) -> Result<(), ConfError> {
    let Value::Map(m) = &v.value else {
        return Err(err(&v.pos, "authorization should be a map"));
    };
    let mut users_value = None;
    let mut defaults = None;
    for e in m.iter() {
        let key = e.key.to_ascii_lowercase();
        let v = &e.value;
        match key.as_str() {
            "user" | "username" => o.auth.user = Some(conf::as_string(v)?.to_string()),
            "pass" | "password" => o.auth.password = Some(conf::as_string(v)?.to_string()),
            "token" => o.auth.token = Some(conf::as_string(v)?.to_string()),
            "timeout" => {
                let secs = match &v.value {
                    Value::String(s) => {
                        let n = conf::parse_go_duration(s).map_err(|e| {
                            err(
                                &v.pos,
                                format!("error parsing authorization config, 'timeout' {e}"),
                            )
                        })?;
                        n as f64 / 1e9
                    }
                    _ => conf::as_f64(v).map_err(|_| {
                        err(
                            &v.pos,
                            "error parsing authorization config, 'timeout' wrong type",
                        )
                    })?,
                };
                if !(0.0..=1e9).contains(&secs) {
                    return Err(err(&v.pos, "invalid authorization timeout"));
                }
                // 0 means the default, as with nats-server.
                o.auth.timeout = (secs > 0.0).then(|| Duration::from_secs_f64(secs));
            }
            "users" => users_value = Some(v),
            "default_permission" | "default_permissions" | "permissions" => {
                defaults = Some(crate::config_accounts::permissions(v)?)
            }
            "auth_callout" | "auth_hook" => {
                o.auth_callout = Some(crate::config_auth_callout::parse(v)?);
            }
            "proxy_required" => {
                o.warnings.push(format!(
                    "{}: authorization {:?} is not supported by natrium-server",
                    e.key_pos, e.key
                ));
            }
            _ if e.used_as_variable => {}
            _ => return Err(err(&e.key_pos, format!("unknown field {:?}", e.key))),
        }
    }
    if o.auth.token.is_some() && o.auth.user.is_some() {
        return Err(err(
            &v.pos,
            "Cannot have a user/pass and token at the same time",
        ));
    }
    if let Some(uv) = users_value {
        let users =
            crate::config_accounts::users(uv, crate::account::GLOBAL_ACCOUNT, defaults.as_ref())?;
        if !users.is_empty() && (o.auth.user.is_some() || o.auth.token.is_some()) {
            return Err(err(
                &uv.pos,
                "Can not have a single user/pass and a users array",
            ));
        }
        for u in users {
            crate::config_accounts::add_user(o, u, uv)?;
        }
    }
    o.accounts.default_permissions = defaults;
    Ok(())
}

fn apply_jetstream(js: &mut JetStreamOptions, v: &Spanned) -> Result<(), ConfError> {
    match &v.value {
        Value::Bool(b) => {
            js.enabled = *b;
            return Ok(());
        }
        Value::String(s) => {
            match s.to_ascii_lowercase().as_str() {
                "enabled" | "enable" => js.enabled = true,
                "disabled" | "disable" => js.enabled = false,
                _ => {
                    return Err(err(
                        &v.pos,
                        format!("Expected 'enabled' or 'disabled' for string value, got '{s}'"),
                    ));
                }
            }
            return Ok(());
        }
        Value::Map(_) => {}
        _ => {
            return Err(err(
                &v.pos,
                "jetstream should be a boolean, a string or a map",
            ));
        }
    }
    let Value::Map(m) = &v.value else {
        return Ok(());
    };
    js.enabled = true;
    for e in m.iter() {
        let key = e.key.to_ascii_lowercase();
        let v = &e.value;
        match key.as_str() {
            "store" | "store_dir" | "storedir" => {
                if js.store_dir.is_some() {
                    return Err(err(&e.key_pos, "Duplicate 'store_dir' configuration"));
                }
                js.store_dir = Some(PathBuf::from(conf::as_string(v)?));
            }
            "max_memory_store" | "max_mem_store" | "max_mem" => {
                js.max_memory =
                    Some(conf::storage_size(v).map_err(|e| e.prefixed("max_mem_store"))?)
            }
            "max_file_store" | "max_file" | "max_store" => {
                js.max_store =
                    Some(conf::storage_size(v).map_err(|e| e.prefixed("max_file_store"))?)
            }
            "domain" => js.domain = Some(conf::as_string(v)?.to_string()),
            "enabled" | "enable" => js.enabled = conf::as_bool(v)?,
            "strict" => js.strict = conf::as_bool(v)?,
            "backup_share" => js.backup_share = Some(share(e, "backup_share")?),
            "restore_share" => js.restore_share = Some(share(e, "restore_share")?),
            "sync_interval" | "sync" => {
                if let Value::String(s) = &v.value
                    && s.eq_ignore_ascii_case("always")
                {
                    js.sync_interval = Some(None);
                } else {
                    js.sync_interval = Some(Some(conf::duration_strict(v, "sync_interval")?));
                }
            }
            "unique_tag"
            | "key"
            | "ek"
            | "encryption_key"
            | "prev_key"
            | "prev_ek"
            | "prev_encryption_key"
            | "cipher"
            | "max_outstanding_catchup"
            | "max_buffered_size"
            | "max_buffered_msgs"
            | "request_queue_limit"
            | "info_queue_limit"
            | "meta_compact"
            | "meta_compact_size"
            | "meta_compact_sync"
            | "max_concurrent_io"
            | "extension_hint"
            | "tpm"
            | "max_catchup" => {}
            "limits" => apply_jetstream_limits(js, v)?,
            _ if e.used_as_variable => {}
            _ => return Err(err(&e.key_pos, format!("unknown field {:?}", e.key))),
        }
    }
    Ok(())
}

/// `jetstream { limits { … } }`: the atomic batch limits in `batch { … }`, and the
/// limits consumer and stream configs are checked against (`max_ack_pending`,
/// `max_request_batch`, `duplicate_window`, `default_max_consumers`); `max_ha_assets`
/// is accepted (no replicated assets here).
fn apply_jetstream_limits(js: &mut JetStreamOptions, v: &Spanned) -> Result<(), ConfError> {
    let Value::Map(m) = &v.value else {
        return Err(err(&v.pos, "Expected a map to define JetStreamLimits"));
    };
    for e in m.iter() {
        match e.key.to_ascii_lowercase().as_str() {
            "batch" => {
                let Value::Map(b) = &e.value.value else {
                    return Err(err(&e.value.pos, "Expected a map to define batch limits"));
                };
                let l = &mut js.batch_limits;
                // Zero or negative keeps nats-server's default, as there.
                let positive = |e: &Entry, key: &str| -> Result<Option<u64>, ConfError> {
                    let n = conf::as_i64(&e.value).map_err(|err| err.prefixed(key))?;
                    Ok(u64::try_from(n).ok().filter(|n| *n > 0))
                };
                for be in b.iter() {
                    let key = be.key.to_ascii_lowercase();
                    match key.as_str() {
                        // One setting for atomic and fast batches, as in nats-server.
                        "max_inflight_per_stream" => {
                            if let Some(n) = positive(be, &key)? {
                                l.max_inflight_per_stream = n as usize;
                                l.fast_inflight_per_stream = n as usize;
                            }
                        }
                        "max_inflight_total" => {
                            if let Some(n) = positive(be, &key)? {
                                l.max_inflight_total = n as usize;
                                l.fast_inflight_total = n as usize;
                            }
                        }
                        "max_msgs" => {
                            if let Some(n) = positive(be, &key)? {
                                l.max_msgs = n;
                            }
                        }
                        "timeout" => {
                            let d = conf::duration_strict(&be.value, "timeout")?;
                            if !d.is_zero() {
                                l.timeout = d;
                            }
                        }
                        _ if be.used_as_variable => {}
                        _ => return Err(err(&be.key_pos, format!("unknown field {:?}", be.key))),
                    }
                }
            }
            "max_ack_pending" => {
                js.api_limits.max_ack_pending =
                    conf::as_i64(&e.value).map_err(|err| err.prefixed("max_ack_pending"))?;
            }
            "max_request_batch" => {
                js.api_limits.max_request_batch =
                    conf::as_i64(&e.value).map_err(|err| err.prefixed("max_request_batch"))?;
            }
            "default_max_consumers" => {
                js.api_limits.default_max_consumers =
                    conf::as_i64(&e.value).map_err(|err| err.prefixed("default_max_consumers"))?;
            }
            "duplicate_window" => {
                // A string only, as nats-server's `time.ParseDuration(mv.(string))`.
                if !matches!(e.value.value, Value::String(_)) {
                    return Err(err(
                        &e.value.pos,
                        "duplicate_window: expected a duration string",
                    ));
                }
                let d = conf::duration_strict(&e.value, "duplicate_window")?;
                js.api_limits.duplicates = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
            }
            // Replicated assets: nothing here is replicated.
            "max_ha_assets" => {}
            _ if e.used_as_variable => {}
            _ => return Err(err(&e.key_pos, format!("unknown field {:?}", e.key))),
        }
    }
    Ok(())
}

/// A natrium `*_share` key: a whole percentage from 1 to 100.
fn share(e: &Entry, key: &str) -> Result<u8, ConfError> {
    let n = conf::as_i64(&e.value).map_err(|err| err.prefixed(key))?;
    u8::try_from(n)
        .ok()
        .filter(|s| (1..=100).contains(s))
        .ok_or_else(|| {
            err(
                &e.key_pos,
                format!("{key} must be a percentage from 1 to 100, got {n}"),
            )
        })
}

#[cfg(test)]
#[path = "config_file_tests.rs"]
mod tests;
