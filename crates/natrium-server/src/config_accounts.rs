//! Parsing the `authorization` users, `accounts`, permissions, imports and exports.
//!
//! Users expect the nats-server config they already have to work unchanged, so the keys,
//! their aliases and the validation errors follow nats-server (`parseAuthorization`,
//! `parseUsers`, `parseUserPermissions`, `parseAccounts`). The result is plain data in
//! [`AccountsConfig`]; building the runtime accounts and users from it is `auth`'s job.

use crate::conf::{self, ConfError, Map, Spanned, Value};
use crate::options::{
    AccountConfig, AccountJsLimits, AccountLimits, DEFAULT_ALLOW_RESPONSE_EXPIRATION,
    DEFAULT_ALLOW_RESPONSE_MAX_MSGS, ExportConfig, ImportConfig, Options, Permissions,
    ResponsePermission, ResponseType, SubjectPermission, UserConfig,
};
use crate::sublist::is_valid_subject;
use std::collections::HashSet;
use std::time::Duration;

/// Names nats-server reserves.
fn is_reserved_account(name: &str) -> bool {
    name == crate::account::GLOBAL_ACCOUNT
}

fn map_of<'a>(v: &'a Spanned, what: &str) -> Result<&'a Map, ConfError> {
    match &v.value {
        Value::Map(m) => Ok(m),
        other => Err(v.pos.error(format!(
            "Expected {what} to be a map/struct, got {}",
            other.type_name()
        ))),
    }
}

fn string_of<'a>(v: &'a Spanned, what: &str) -> Result<&'a str, ConfError> {
    match &v.value {
        Value::String(s) => Ok(s),
        other => Err(v.pos.error(format!(
            "Expected {what} to be a string, got {}",
            other.type_name()
        ))),
    }
}

fn unknown(e: &crate::conf::Entry) -> ConfError {
    e.key_pos.error(format!("unknown field {:?}", e.key))
}

/// A permission subject list: one string or an array of strings, validated.
fn perm_subjects(v: &Spanned, allow_queue: bool) -> Result<Vec<String>, ConfError> {
    let subjects: Vec<String> = match &v.value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for i in items {
                match &i.value {
                    Value::String(s) => out.push(s.clone()),
                    _ => {
                        return Err(i
                            .pos
                            .error("Subject in permissions array cannot be cast to string"));
                    }
                }
            }
            out
        }
        other => {
            return Err(v.pos.error(format!(
                "Expected subject permissions to be a subject, or array of subjects, got {}",
                other.type_name()
            )));
        }
    };
    for s in &subjects {
        if is_valid_subject(s.as_bytes()) {
            continue;
        }
        let parts: Vec<&str> = s.split_whitespace().collect();
        if !allow_queue || parts.len() != 2 {
            return Err(v.pos.error(format!("subject {s:?} is not a valid subject")));
        }
        if !is_valid_subject(parts[0].as_bytes()) {
            return Err(v
                .pos
                .error(format!("subject {:?} is not a valid subject", parts[0])));
        }
        if !is_valid_subject(parts[1].as_bytes()) {
            return Err(v
                .pos
                .error(format!("queue {:?} is not a valid queue", parts[1])));
        }
    }
    Ok(subjects)
}

/// `publish`/`subscribe`: a subject, a list (the allow list), or `{allow, deny}`.
fn subject_permission(
    v: &Spanned,
    allow_queue: bool,
) -> Result<Option<SubjectPermission>, ConfError> {
    match &v.value {
        Value::Map(m) => {
            if m.is_empty() {
                return Ok(None);
            }
            let mut p = SubjectPermission::default();
            for e in m.iter() {
                match e.key.to_ascii_lowercase().as_str() {
                    // An empty allow list restricts nothing (nats-server).
                    "allow" => {
                        p.allow =
                            Some(perm_subjects(&e.value, allow_queue)?).filter(|l| !l.is_empty())
                    }
                    "deny" => p.deny = perm_subjects(&e.value, allow_queue)?,
                    _ if e.used_as_variable => {}
                    _ => {
                        return Err(e.key_pos.error(format!(
                            "Unknown field name {:?} parsing subject permissions, only 'allow' or 'deny' are permitted",
                            e.key
                        )));
                    }
                }
            }
            Ok(Some(p))
        }
        _ => {
            let allow = perm_subjects(v, allow_queue)?;
            // `publish: []` restricts nothing (nats-server), unlike an allow list.
            Ok((!allow.is_empty()).then_some(SubjectPermission {
                allow: Some(allow),
                deny: Vec::new(),
            }))
        }
    }
}

fn allow_responses(v: &Spanned) -> Result<Option<ResponsePermission>, ConfError> {
    let mut rp = ResponsePermission {
        max_msgs: DEFAULT_ALLOW_RESPONSE_MAX_MSGS,
        expires: Some(DEFAULT_ALLOW_RESPONSE_EXPIRATION),
    };
    match &v.value {
        Value::Bool(true) => Ok(Some(rp)),
        Value::Bool(false) => Ok(None),
        Value::Map(m) => {
            for e in m.iter() {
                match e.key.to_ascii_lowercase().as_str() {
                    "max" | "max_msgs" | "max_messages" | "max_responses" => {
                        let n = conf::as_i64(&e.value)?;
                        if n != 0 {
                            rp.max_msgs = n;
                        }
                    }
                    "expires" | "expiration" | "ttl" => {
                        let Value::String(s) = &e.value.value else {
                            return Err(e
                                .value
                                .pos
                                .error("error parsing expires, not a duration string"));
                        };
                        let nanos = conf::parse_go_duration(s).map_err(|err| {
                            e.value.pos.error(format!("error parsing expires: {err}"))
                        })?;
                        if nanos < 0 {
                            rp.expires = None;
                        } else if nanos > 0 {
                            rp.expires = Some(Duration::from_nanos(nanos as u64));
                        }
                    }
                    _ if e.used_as_variable => {}
                    _ => {
                        return Err(e
                            .key_pos
                            .error(format!("Unknown field {:?} parsing permissions", e.key)));
                    }
                }
            }
            Ok(Some(rp))
        }
        _ => Err(v
            .pos
            .error("error parsing response permissions, expected a boolean or a map")),
    }
}

/// A `permissions` block.
pub fn permissions(v: &Spanned) -> Result<Permissions, ConfError> {
    let m = match &v.value {
        Value::Map(m) => m,
        other => {
            return Err(v.pos.error(format!(
                "Expected permissions to be a map/struct, got {}",
                other.type_name()
            )));
        }
    };
    let mut p = Permissions::default();
    for e in m.iter() {
        match e.key.to_ascii_lowercase().as_str() {
            "pub" | "publish" | "import" => p.publish = subject_permission(&e.value, false)?,
            "sub" | "subscribe" | "export" => p.subscribe = subject_permission(&e.value, true)?,
            "publish_allow_responses" | "allow_responses" => {
                p.response = allow_responses(&e.value)?;
            }
            _ if e.used_as_variable => {}
            _ => {
                return Err(e
                    .key_pos
                    .error(format!("Unknown field {:?} parsing permissions", e.key)));
            }
        }
    }
    // With response rights, the blanket publish allow is turned off (nats-server).
    if p.response.is_some() {
        let publish = p.publish.get_or_insert_with(SubjectPermission::default);
        if publish.allow.is_none() {
            publish.allow = Some(Vec::new());
        }
    }
    Ok(p)
}

/// A `users` array.
pub fn users(
    v: &Spanned,
    account: &str,
    defaults: Option<&Permissions>,
) -> Result<Vec<UserConfig>, ConfError> {
    let Value::Array(items) = &v.value else {
        return Err(v.pos.error(format!(
            "Expected users field to be an array, got {}",
            v.value.type_name()
        )));
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Map(m) = &item.value else {
            return Err(item.pos.error(format!(
                "Expected user entry to be a map/struct, got {}",
                item.value.type_name()
            )));
        };
        let mut name = None;
        let mut nkey = None;
        let mut password = None;
        let mut perms = None;
        let mut conn_types = Vec::new();
        for e in m.iter() {
            match e.key.to_ascii_lowercase().as_str() {
                "nkey" => nkey = Some(string_of(&e.value, "nkey")?.to_string()),
                "user" | "username" => name = Some(string_of(&e.value, "user")?.to_string()),
                "pass" | "password" => {
                    password = Some(string_of(&e.value, "password")?.to_string())
                }
                "permission" | "permissions" | "authorization" => {
                    perms = Some(permissions(&e.value)?)
                }
                "allowed_connection_types" | "connection_types" | "clients" => {
                    let list = match &e.value.value {
                        Value::String(s) => vec![s.clone()],
                        Value::Array(a) => a
                            .iter()
                            .map(|x| string_of(x, "connection type").map(str::to_string))
                            .collect::<Result<_, _>>()?,
                        _ => return Err(e.value.pos.error("expected connection types")),
                    };
                    for t in &list {
                        if !crate::auth::CONNECTION_TYPES.contains(&t.to_ascii_uppercase().as_str())
                        {
                            return Err(e
                                .value
                                .pos
                                .error(format!("unknown connection type {t:?}")));
                        }
                    }
                    conn_types = list;
                }
                "proxy_required" => {
                    conf::as_bool(&e.value)?;
                }
                _ if e.used_as_variable => {}
                _ => return Err(unknown(e)),
            }
        }
        let user = match (nkey, name) {
            (None, None) => return Err(item.pos.error("User entry requires a user")),
            (Some(k), name) => {
                if nkeys::KeyPair::from_public_key(&k).is_err() || !k.starts_with('U') {
                    return Err(item.pos.error("Not a valid public nkey for a user"));
                }
                if name.is_some() || password.is_some() {
                    return Err(item
                        .pos
                        .error("Nkey users do not take usernames or passwords"));
                }
                UserConfig {
                    name: k,
                    password: None,
                    nkey: true,
                    ..UserConfig::default()
                }
            }
            (None, Some(n)) => UserConfig {
                name: n,
                password,
                nkey: false,
                ..UserConfig::default()
            },
        };
        out.push(UserConfig {
            account: account.to_string(),
            permissions: perms.or_else(|| defaults.cloned()),
            allowed_connection_types: conn_types,
            ..user
        });
    }
    Ok(out)
}

fn export_item(v: &Spanned) -> Result<ExportConfig, ConfError> {
    let m = map_of(v, "Export Items")?;
    let mut subject = None;
    let mut service = false;
    let mut accounts = None;
    let mut response_type = ResponseType::Singleton;
    let mut response_threshold = Duration::from_secs(120);
    for e in m.iter() {
        match e.key.to_ascii_lowercase().as_str() {
            "stream" => {
                if service {
                    return Err(e
                        .value
                        .pos
                        .error("Detected stream but already saw a service"));
                }
                subject = Some(string_of(&e.value, "stream name")?.to_string());
            }
            "service" => {
                if subject.is_some() && !service {
                    return Err(e
                        .value
                        .pos
                        .error("Detected service but already saw a stream"));
                }
                service = true;
                subject = Some(string_of(&e.value, "service name")?.to_string());
            }
            "accounts" => {
                let Value::Array(a) = &e.value.value else {
                    return Err(e.value.pos.error("Expected accounts to be an array"));
                };
                accounts = Some(
                    a.iter()
                        .map(|x| string_of(x, "account name").map(str::to_string))
                        .collect::<Result<Vec<_>, _>>()?,
                );
            }
            "response" | "response_type" => {
                let s = string_of(&e.value, "response type")?;
                response_type = match s.to_ascii_lowercase().as_str() {
                    "single" | "singleton" => ResponseType::Singleton,
                    "stream" => ResponseType::Stream,
                    "chunk" | "chunked" => ResponseType::Chunked,
                    _ => {
                        return Err(e.value.pos.error(format!("Unknown response type: {s:?}")));
                    }
                };
            }
            "threshold" | "response_threshold" | "response_max_time" | "response_time" => {
                response_threshold = conf::duration_strict(&e.value, &e.key)?;
            }
            "latency" => check_latency(&e.value)?,
            "account_token_position" | "allow_trace" => {}
            _ if e.used_as_variable => {}
            _ => return Err(unknown(e)),
        }
    }
    let Some(subject) = subject else {
        return Err(v
            .pos
            .error("Export Items should have a stream or a service"));
    };
    if !is_valid_subject(subject.as_bytes()) {
        return Err(v.pos.error(format!("invalid export subject {subject:?}")));
    }
    Ok(ExportConfig {
        subject,
        service,
        accounts,
        response_type,
        response_threshold,
    })
}

/// An export's `latency` (tracking is not implemented, see docs/compat.md), checked as
/// nats-server checks it: a `sampling` of 1-100 (a number or `NN%`), or `headers`.
fn check_latency(v: &Spanned) -> Result<(), ConfError> {
    let sampling = match &v.value {
        Value::Map(m) => m.get_value("sampling"),
        _ => None,
    };
    let Some(sampling) = sampling else {
        return Ok(());
    };
    let pct = match &sampling.value {
        Value::Int(n) => Some(*n),
        Value::String(t) if t.eq_ignore_ascii_case("headers") => return Ok(()),
        Value::String(t) => t.trim_end_matches('%').trim().parse::<i64>().ok(),
        _ => None,
    };
    match pct {
        Some(1..=100) => Ok(()),
        _ => Err(sampling
            .pos
            .error("bad sampling percentage, should be 1-100")),
    }
}

fn import_item(v: &Spanned) -> Result<ImportConfig, ConfError> {
    let m = map_of(v, "Import Items")?;
    let mut source: Option<(String, String, bool)> = None;
    let mut to = None;
    let mut prefix = None;
    let mut share = false;
    for e in m.iter() {
        match e.key.to_ascii_lowercase().as_str() {
            kind @ ("stream" | "service") => {
                let service = kind == "service";
                if let Some((_, _, was_service)) = &source
                    && *was_service != service
                {
                    return Err(e.value.pos.error(if service {
                        "Detected service but already saw a stream"
                    } else {
                        "Detected stream but already saw a service"
                    }));
                }
                let Value::Map(am) = &e.value.value else {
                    return Err(e.value.pos.error(format!(
                        "{} entry should be an account map, got {}",
                        if service { "Service" } else { "Stream" },
                        e.value.value.type_name()
                    )));
                };
                let account = am.get_value("account").and_then(|x| x.value.as_str());
                let subject = am.get_value("subject").and_then(|x| x.value.as_str());
                let (Some(a), Some(s)) = (account, subject) else {
                    return Err(e.value.pos.error("Expect an account name and a subject"));
                };
                source = Some((a.to_string(), s.to_string(), service));
            }
            "prefix" => prefix = Some(string_of(&e.value, "prefix")?.to_string()),
            "to" => to = Some(string_of(&e.value, "to")?.to_string()),
            "share" => share = conf::as_bool(&e.value)?,
            "allow_trace" => {}
            _ if e.used_as_variable => {}
            _ => return Err(unknown(e)),
        }
    }
    let Some((account, subject, service)) = source else {
        return Err(v
            .pos
            .error("Import Items should have a stream or a service"));
    };
    if !service && prefix.is_some() && to.is_some() {
        return Err(v
            .pos
            .error("Stream import can not have a 'prefix' and a 'to' property"));
    }
    if !service
        && let Some(p) = &prefix
        && !crate::sublist::subject_is_literal(p.as_bytes())
    {
        return Err(v.pos.error(format!(
            "Error adding stream import {subject:?}: stream import prefix can not contain wildcard tokens"
        )));
    }
    Ok(ImportConfig {
        account,
        subject,
        service,
        to,
        prefix,
        share,
    })
}

/// An account's `jetstream` entry: `true`/`enabled`, or a map of limits.
pub fn account_jetstream(v: &Spanned) -> Result<Option<AccountJsLimits>, ConfError> {
    match &v.value {
        Value::Bool(b) => return Ok(b.then(AccountJsLimits::default)),
        Value::String(s) => {
            return match s.to_ascii_lowercase().as_str() {
                "enabled" | "enable" => Ok(Some(AccountJsLimits::default())),
                "disabled" | "disable" => Ok(None),
                _ => Err(v.pos.error(format!(
                    "Expected 'enabled' or 'disabled' for string value, got '{s}'"
                ))),
            };
        }
        Value::Map(_) => {}
        other => {
            return Err(v.pos.error(format!(
                "Expected map, bool or string to define JetStream, got {}",
                other.type_name()
            )));
        }
    }
    let Value::Map(m) = &v.value else {
        return Ok(None);
    };
    let mut l = AccountJsLimits::default();
    let num = |e: &crate::conf::Entry| -> Result<i64, ConfError> {
        match &e.value.value {
            Value::Int(n) => Ok(*n),
            other => Err(e.value.pos.error(format!(
                "Expected a parseable size for {:?}, got {}",
                e.key,
                other.type_name()
            ))),
        }
    };
    for e in m.iter() {
        match e.key.to_ascii_lowercase().as_str() {
            "max_memory" | "max_mem" | "mem" | "memory" => l.max_memory = num(e)?,
            "max_store" | "max_file" | "max_disk" | "store" | "disk" => l.max_store = num(e)?,
            "max_streams" | "streams" => l.max_streams = num(e)?,
            "max_consumers" | "consumers" => l.max_consumers = num(e)?,
            "max_bytes_required" | "max_stream_bytes" | "max_bytes" => {
                l.max_bytes_required = conf::as_bool(&e.value)?
            }
            "mem_max_stream_bytes" | "memory_max_stream_bytes" => {
                l.memory_max_stream_bytes = num(e)?
            }
            "disk_max_stream_bytes" | "store_max_stream_bytes" => {
                l.store_max_stream_bytes = num(e)?
            }
            "max_ack_pending" => l.max_ack_pending = num(e)?,
            "cluster_traffic" => {}
            _ if e.used_as_variable => {}
            _ => return Err(unknown(e)),
        }
    }
    Ok(Some(l))
}

fn account_limits(v: &Spanned) -> Result<AccountLimits, ConfError> {
    let m = map_of(v, "limits")?;
    let mut l = AccountLimits::default();
    for e in m.iter() {
        match e.key.to_ascii_lowercase().as_str() {
            "max_connections" | "max_conn" => l.max_connections = conf::as_i64(&e.value)?,
            "max_subscriptions" | "max_subs" => l.max_subscriptions = conf::as_i64(&e.value)?,
            "max_payload" | "max_pay" => l.max_payload = conf::as_size(&e.value)?,
            "max_leafnodes" | "max_leafs" => {}
            _ if e.used_as_variable => {}
            _ => return Err(unknown(e)),
        }
    }
    Ok(l)
}

/// The `accounts` block.
pub fn accounts(o: &mut Options, v: &Spanned) -> Result<(), ConfError> {
    o.accounts.accounts_block = true;
    let mut seen: HashSet<String> = o.accounts.accounts.iter().map(|a| a.name.clone()).collect();
    match &v.value {
        Value::Array(names) => {
            for n in names {
                let name = string_of(n, "account name")?;
                if is_reserved_account(name) {
                    return Err(n.pos.error(format!("{name:?} is a Reserved Account")));
                }
                if !seen.insert(name.to_string()) {
                    return Err(n.pos.error(format!("Duplicate Account Entry: {name}")));
                }
                o.accounts.accounts.push(AccountConfig {
                    name: name.to_string(),
                    ..AccountConfig::default()
                });
            }
            Ok(())
        }
        Value::Map(m) => {
            for e in m.iter() {
                if e.used_as_variable {
                    continue;
                }
                let Value::Map(am) = &e.value.value else {
                    return Err(e.value.pos.error("Expected map entries for accounts"));
                };
                if is_reserved_account(&e.key) {
                    return Err(e
                        .key_pos
                        .error(format!("{:?} is a Reserved Account", e.key)));
                }
                if !seen.insert(e.key.clone()) {
                    return Err(e
                        .key_pos
                        .error(format!("Duplicate Account Entry: {}", e.key)));
                }
                let mut acc = AccountConfig {
                    name: e.key.clone(),
                    ..AccountConfig::default()
                };
                let defaults = match am.get_value("default_permissions") {
                    Some(d) => Some(permissions(d)?),
                    None => None,
                };
                acc.default_permissions = defaults.clone();
                let mut account_users = Vec::new();
                for ae in am.iter() {
                    match ae.key.to_ascii_lowercase().as_str() {
                        "users" => {
                            account_users = users(&ae.value, &acc.name, defaults.as_ref())?;
                            if !account_users.is_empty() {
                                if o.auth.user.is_some() {
                                    return Err(ae
                                        .value
                                        .pos
                                        .error("Can not have a single user/pass and accounts"));
                                }
                                if o.auth.token.is_some() {
                                    return Err(ae
                                        .value
                                        .pos
                                        .error("Can not have a token and accounts"));
                                }
                            }
                        }
                        "default_permissions" => {}
                        "exports" => {
                            let Value::Array(items) = &ae.value.value else {
                                return Err(ae.value.pos.error("Exports should be an array"));
                            };
                            for i in items {
                                acc.exports.push(export_item(i)?);
                            }
                        }
                        "imports" => {
                            let Value::Array(items) = &ae.value.value else {
                                return Err(ae.value.pos.error("Imports should be an array"));
                            };
                            for i in items {
                                let imp = import_item(i)?;
                                // Two service imports may not be mapped (`to`) onto one
                                // local subject (nats-server; the same subject imported
                                // from two accounts without `to` is accepted).
                                if imp.service
                                    && let Some(local) = imp.to.as_deref()
                                    && let Some(prev) = acc
                                        .imports
                                        .iter()
                                        .find(|p| p.service && p.to.as_deref() == Some(local))
                                {
                                    return Err(i.pos.error(format!(
                                        "Duplicate service import subject {local:?}, previously used in import for account {:?}, subject {:?}",
                                        prev.account, prev.subject
                                    )));
                                }
                                acc.imports.push(imp);
                            }
                        }
                        "jetstream" => acc.jetstream = account_jetstream(&ae.value)?,
                        "limits" => acc.limits = account_limits(&ae.value)?,
                        "nkey" => {
                            let k = string_of(&ae.value, "nkey")?;
                            if nkeys::KeyPair::from_public_key(k).is_err() || !k.starts_with('A') {
                                return Err(ae.value.pos.error(format!(
                                    "Not a valid public nkey for an account: {k:?}"
                                )));
                            }
                        }
                        "mappings" | "maps" => acc.mappings = mappings(&ae.value)?,
                        "msg_trace" | "trace_dest" => {
                            o.warnings.push(format!(
                                "{}: account {:?} is not yet supported by natrium-server",
                                ae.key_pos, ae.key
                            ));
                        }
                        _ if ae.used_as_variable => {}
                        _ => return Err(unknown(ae)),
                    }
                }
                for u in account_users {
                    add_user(o, u, &e.value)?;
                }
                o.accounts.accounts.push(acc);
            }
            check_imports(o, v)
        }
        other => Err(v.pos.error(format!(
            "Expected accounts to be a map or an array, got {}",
            other.type_name()
        ))),
    }
}

/// Add a user, rejecting duplicates across the whole config as nats-server does.
pub fn add_user(o: &mut Options, u: UserConfig, at: &Spanned) -> Result<(), ConfError> {
    if o.accounts.users.iter().any(|x| x.name == u.name) {
        let what = if u.nkey { "nkey" } else { "user" };
        return Err(at
            .pos
            .error(format!("Duplicate {what} {:?} detected", u.name)));
    }
    o.accounts.users.push(u);
    Ok(())
}

/// Every import must name a defined account.
fn check_imports(o: &Options, v: &Spanned) -> Result<(), ConfError> {
    let names: HashSet<&str> = o
        .accounts
        .accounts
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    for a in &o.accounts.accounts {
        for i in &a.imports {
            if !names.contains(i.account.as_str()) {
                let kind = if i.service { "service" } else { "stream" };
                return Err(v.pos.error(format!(
                    "{:?} account not defined for {kind} import",
                    i.account
                )));
            }
        }
        for x in &a.exports {
            for acc in x.accounts.iter().flatten() {
                if !names.contains(acc.as_str()) {
                    let kind = if x.service { "service" } else { "stream" };
                    return Err(v
                        .pos
                        .error(format!("{acc:?} account not defined for {kind} export")));
                }
            }
        }
    }
    Ok(())
}

/// A `mappings {}` block (top level or an account's), as nats-server's
/// `parseAccountMappings`: each source subject maps to a destination string, or to one or
/// a list of `{destination, weight}` entries (`weight` a percentage, `40%` or `40`).
pub fn mappings(v: &Spanned) -> Result<Vec<crate::subject_mapping::MappingConfig>, ConfError> {
    use crate::subject_mapping::{MappingConfig, check_mapping_dest};
    let m = map_of(v, "mappings")?;
    let mut out: Vec<MappingConfig> = Vec::new();
    for e in m.iter() {
        if e.used_as_variable {
            continue;
        }
        let src = e.key.as_str();
        if !is_valid_subject(src.as_bytes()) {
            return Err(e
                .key_pos
                .error(format!("Subject {src:?} is not a valid subject")));
        }
        let dests: Vec<(String, u8)> = match &e.value.value {
            Value::String(d) => {
                check_mapping_dest(src, d).map_err(|err| {
                    e.value
                        .pos
                        .error(format!("Error adding mapping for {src:?} to {d:?} : {err}"))
                })?;
                vec![(d.clone(), 100)]
            }
            Value::Array(items) => items.iter().map(map_dest).collect::<Result<_, _>>()?,
            Value::Map(_) => vec![map_dest(&e.value)?],
            other => {
                return Err(e.value.pos.error(format!(
                    "Unknown type {} for mapping destination",
                    other.type_name()
                )));
            }
        };
        let fail = |err: String| {
            e.value
                .pos
                .error(format!("Error adding mapping for {src:?} : {err}"))
        };
        let mut seen = HashSet::new();
        let mut total = 0u32;
        for (d, w) in &dests {
            if !seen.insert(d.as_str()) {
                return Err(fail(format!("duplicate entry for {d:?}")));
            }
            total += u32::from(*w);
            if total > 100 {
                return Err(fail("total weight needs to be <= 100".into()));
            }
            check_mapping_dest(src, d).map_err(fail)?;
        }
        let cfg = MappingConfig {
            from: src.to_string(),
            dests,
        };
        // A source given twice: the later one replaces the earlier (nats-server).
        match out.iter_mut().find(|c| c.from == cfg.from) {
            Some(existing) => *existing = cfg,
            None => out.push(cfg),
        }
    }
    Ok(out)
}

/// One `{destination, weight}` entry of a weighted mapping.
fn map_dest(v: &Spanned) -> Result<(String, u8), ConfError> {
    let Value::Map(m) = &v.value else {
        return Err(v.pos.error("Expected an entry for the mapping destination"));
    };
    let mut dest = String::new();
    let mut weight: Option<u8> = None;
    for e in m.iter() {
        match e.key.to_ascii_lowercase().as_str() {
            "dest" | "destination" => dest = conf::as_string(&e.value)?.to_string(),
            "weight" => {
                let n: i64 = match &e.value.value {
                    Value::String(s) => s.trim_end_matches('%').parse().map_err(|_| {
                        e.value.pos.error(format!(
                            "Invalid weight {:?} for mapping destination",
                            s.trim_end_matches('%')
                        ))
                    })?,
                    Value::Int(n) => *n,
                    other => {
                        return Err(e.value.pos.error(format!(
                            "Unknown entry type for weight of {}",
                            other.type_name()
                        )));
                    }
                };
                if !(0..=100).contains(&n) {
                    return Err(e
                        .value
                        .pos
                        .error(format!("Invalid weight {n} for mapping destination")));
                }
                weight = Some(n as u8);
            }
            // Cluster-scoped destinations: natrium is not clustered, so they never apply.
            "cluster" => {
                conf::as_string(&e.value)?;
            }
            _ if e.used_as_variable => {}
            _ => {
                return Err(e
                    .key_pos
                    .error(format!("Unknown field {:?} for mapping destination", e.key)));
            }
        }
    }
    let weight = weight.ok_or_else(|| {
        v.pos
            .error(format!("Missing weight for mapping destination {dest:?}"))
    })?;
    Ok((dest, weight))
}
