//! Handlers for the account and stream API: `$JS.API.INFO` and `$JS.API.STREAM.*`.
//!
//! Each handler decodes its request the way nats-server does (strict JSON), checks it,
//! acts, and answers with the typed response from `api`. Errors keep nats-server's codes;
//! where it helps an operator, the description says more (which limit, how much is used).

use super::api::account::{AccountInfo, AccountInfoBody, AccountLimits, AccountTier, ApiStats};
use super::api::errors::ApiError;
use super::api::go_json::{GoRequest, Mode};
use super::api::stream::{
    MsgDeleteBody, MsgDeleteRequest, MsgGetBody, StorageType as ApiStorage, StreamConfig,
    StreamConfigRequest, StreamCreateBody, StreamDeleteBody, StreamInfo, StreamInfoBody,
    StreamInfoRequest, StreamListBody, StreamListRequest, StreamNamesBody, StreamNamesRequest,
    StreamPurgeBody, StreamPurgeRequest, StreamSnapshotBody, StreamState, StreamUpdateBody,
};
use super::api::stream_check::{
    StreamCheckContext, check_stream_config, check_stream_create_request,
    check_stream_standalone_replicas, check_stream_supported, check_stream_update,
    set_static_stream_metadata, with_dynamic_stream_metadata,
};
use super::api::time::Timestamp;
use super::api::{ApiPaged, ApiResponse, LIST_LIMIT, NAMES_LIMIT};
use super::api::{is_empty_request, is_json_object_or_array};
use super::api_server::{ApiAnswer, ApiRequest, Tally};
use super::engine::{JetStream, JsAccount, StreamMeta};
use super::stream::Stream;
use crate::sublist::subjects_collide;
use natrium_store::SubjectFilter;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Subjects this server answers (others get no answer, as nats-server's catch-all).
pub fn is_known(t: &[&str]) -> bool {
    matches!(
        t,
        ["INFO"]
            | [
                "STREAM",
                "CREATE" | "UPDATE" | "DELETE" | "INFO" | "PURGE",
                _
            ]
            | ["STREAM", "NAMES" | "LIST"]
            | ["STREAM", "MSG", "GET" | "DELETE", _]
            | ["STREAM", "SNAPSHOT" | "RESTORE", _]
            | ["STREAM", "LEADER", "STEPDOWN", _]
            | ["STREAM", "PEER", "REMOVE", _]
            | ["NATRIUM", "ACCOUNT", "FREEZE"]
    )
}

/// A typed error answer for the request's subject.
pub fn error_for(t: &[&str], e: ApiError) -> ApiAnswer {
    let body = match t {
        ["INFO"] => ApiResponse::<AccountInfoBody>::error(e).to_json(),
        ["STREAM", "CREATE", _] => ApiResponse::<StreamCreateBody>::error(e).to_json(),
        ["STREAM", "UPDATE", _] => ApiResponse::<StreamUpdateBody>::error(e).to_json(),
        ["STREAM", "DELETE", _] => ApiResponse::<StreamDeleteBody>::error(e).to_json(),
        ["STREAM", "INFO", _] => ApiResponse::<StreamInfoBody>::error(e).to_json(),
        ["STREAM", "PURGE", _] => ApiResponse::<StreamPurgeBody>::error(e).to_json(),
        ["STREAM", "NAMES"] => ApiResponse::<StreamNamesBody>::error(e).to_json(),
        ["STREAM", "LIST"] => ApiResponse::with_error(
            StreamListBody {
                streams: Some(Vec::new()),
                ..StreamListBody::default()
            },
            e,
        )
        .to_json(),
        ["STREAM", "MSG", "GET", _] => ApiResponse::<MsgGetBody>::error(e).to_json(),
        ["STREAM", "MSG", "DELETE", _] => ApiResponse::<MsgDeleteBody>::error(e).to_json(),
        ["STREAM", "SNAPSHOT", _] => ApiResponse::<StreamSnapshotBody>::error(e).to_json(),
        ["STREAM", "RESTORE", _] => super::restore::error_body(e),
        ["STREAM", "LEADER", "STEPDOWN", _] => {
            ApiResponse::<super::api::cluster::StreamLeaderStepdownBody>::error(e).to_json()
        }
        ["STREAM", "PEER", "REMOVE", _] => {
            ApiResponse::<super::api::cluster::StreamRemovePeerBody>::error(e).to_json()
        }
        _ => format!("{{\"error\":{}}}", super::api::to_go_json(&e)),
    };
    ApiAnswer::err(body)
}

/// 10039 for an account without JetStream.
pub fn not_enabled(t: &[&str]) -> ApiAnswer {
    error_for(t, ApiError::not_enabled_for_account())
}

/// The answer to a too-high `Nats-Required-Api-Level`.
pub fn api_level_error(t: &[&str]) -> ApiAnswer {
    error_for(t, ApiError::required_api_level())
}

/// Route a known subject.
pub fn handle(
    js: &Arc<JetStream>,
    jsa: &Arc<JsAccount>,
    req: &ApiRequest,
    t: &[&str],
) -> Option<ApiAnswer> {
    let r = match t {
        ["INFO"] => Ok(account_info(js, jsa)),
        ["STREAM", "CREATE", name] => stream_create(js, jsa, name, &req.payload),
        ["STREAM", "UPDATE", name] => stream_update(js, jsa, name, &req.payload),
        ["STREAM", "DELETE", name] => stream_delete(js, jsa, name, &req.payload),
        ["STREAM", "INFO", name] => stream_info(js, jsa, name, &req.payload),
        ["STREAM", "NAMES"] => stream_names(jsa, &req.payload),
        ["STREAM", "LIST"] => stream_list(js, jsa, &req.payload),
        ["STREAM", "PURGE", name] => stream_purge(jsa, name, &req.payload),
        ["STREAM", "MSG", "GET", name] => msg_get(jsa, name, &req.payload),
        ["STREAM", "MSG", "DELETE", name] => msg_delete(jsa, name, &req.payload),
        ["STREAM", "SNAPSHOT", name] => {
            super::snapshot::stream_snapshot(js, jsa, name, &req.payload)
        }
        ["STREAM", "RESTORE", name] => super::restore::stream_restore(js, jsa, name, &req.payload),
        ["NATRIUM", "ACCOUNT", "FREEZE"] => super::account_snapshot::account_freeze(jsa),
        // Standalone nats-server refuses these before any lookup (natrium runs no
        // cluster): 10010, in the subject's response type.
        ["STREAM", "LEADER", "STEPDOWN", _] | ["STREAM", "PEER", "REMOVE", _] => {
            Err(ApiError::cluster_required())
        }
        _ => return None,
    };
    Some(r.unwrap_or_else(|e| error_for(t, e)))
}

fn limits_json(l: &crate::options::AccountJsLimits) -> AccountLimits {
    AccountLimits {
        max_memory: l.max_memory,
        max_storage: l.max_store,
        max_streams: l.max_streams,
        max_consumers: l.max_consumers,
        max_ack_pending: l.max_ack_pending,
        memory_max_stream_bytes: l.memory_max_stream_bytes,
        storage_max_stream_bytes: l.store_max_stream_bytes,
        max_bytes_required: l.max_bytes_required,
    }
}

/// Bytes an account's streams reserve (their `max_bytes`, when set).
fn reserved(jsa: &JsAccount, memory: bool) -> u64 {
    use super::limits::{Storage, account_reserved};
    let storage = if memory {
        Storage::Memory
    } else {
        Storage::File
    };
    account_reserved(jsa, storage, None).max(0) as u64
}

fn account_info(js: &JetStream, jsa: &JsAccount) -> ApiAnswer {
    let streams = jsa.streams.read().len() as i64;
    let info = AccountInfo {
        tier: AccountTier {
            memory: jsa.usage(true),
            storage: jsa.usage(false),
            reserved_memory: reserved(jsa, true),
            reserved_storage: reserved(jsa, false),
            streams,
            consumers: jsa
                .streams
                .read()
                .values()
                .map(|s| s.consumers.read().len() as i64)
                .sum(),
            limits: limits_json(&jsa.limits()),
        },
        domain: js.domain.clone(),
        api: ApiStats {
            level: crate::options::API_LEVEL,
            total: jsa.api_total.load(Ordering::Relaxed),
            errors: jsa.api_errors.load(Ordering::Relaxed),
            inflight: 0,
        },
        tiers: Default::default(),
    };
    ApiAnswer::ok(ApiResponse::new(AccountInfoBody { info: Some(info) }).to_json())
}

/// The state nats-server reports, from the store's.
pub fn api_state(stream: &Stream, deleted_details: bool) -> StreamState {
    let st = if deleted_details {
        stream.store.state()
    } else {
        stream.store.fast_state()
    };
    api_state_of(stream, st, deleted_details)
}

/// [`api_state`] of a store state taken elsewhere (a pinned view's, for a snapshot).
pub fn api_state_of(
    stream: &Stream,
    st: natrium_store::StreamState,
    deleted_details: bool,
) -> StreamState {
    let ts = |n: i64| {
        if n == 0 {
            Timestamp::default()
        } else {
            Timestamp::from_store_nanos(n)
        }
    };
    // A stream that never had a sequence assigned and was never purged reports
    // first_seq 0 (nats-server's stores start at 0 and move to last + 1 at the first
    // purge). Its file store then also lists sequence 0 as deleted when the details are
    // asked for; nats-server's memory store does not.
    let never_written = st.last_seq == 0 && st.msgs == 0 && !stream.purged.load(Ordering::Relaxed);
    let (num_deleted, deleted) = if deleted_details && never_written && !stream.is_memory() {
        (1, vec![0])
    } else if deleted_details {
        (st.num_deleted as i64, st.deleted)
    } else {
        (st.num_deleted as i64, Vec::new())
    };
    StreamState {
        messages: st.msgs,
        bytes: st.bytes,
        first_seq: if never_written { 0 } else { st.first_seq },
        first_ts: if st.msgs == 0 {
            Timestamp::default()
        } else {
            ts(st.first_ts)
        },
        last_seq: st.last_seq,
        last_ts: ts(st.last_ts),
        num_subjects: st.num_subjects as i64,
        subjects: Default::default(),
        num_deleted,
        deleted,
        lost: None,
        // `direct` consumers are not counted (nats-server's `numPublicConsumers`).
        consumer_count: stream
            .consumers
            .read()
            .values()
            .filter(|c| !c.is_direct())
            .count() as i64,
    }
}

/// Stream info as create/update/info report it.
pub(crate) fn info_of(js: &JetStream, stream: &Stream, with_cluster: bool) -> StreamInfo {
    let cluster = with_cluster.then(|| {
        let name = js
            .server
            .upgrade()
            .map(|s| s.server_name.clone())
            .unwrap_or_default();
        super::api::stream::ClusterInfo {
            leader: name,
            ..Default::default()
        }
    });
    // The state first, the links' statuses after: a link clears its error before it
    // copies, so a copy counted in `state` is never shown beside the error it cleared
    // (read the other way round, a copy landing between the two reads was).
    let state = api_state(stream, false);
    let (mirror, sources) = match js.server.upgrade() {
        Some(server) => (
            stream.links.mirror_info(&server, &stream.account.name),
            stream.links.sources_info(&server, &stream.account.name),
        ),
        None => (None, Vec::new()),
    };
    StreamInfo {
        config: with_dynamic_stream_metadata(&stream.config()),
        created: stream.created,
        state,
        domain: js.domain.clone(),
        cluster,
        mirror,
        sources,
        ts: Timestamp::now(),
        ..StreamInfo::default()
    }
}

/// The checks of a mirror or sources that need the account's other streams, as
/// nats-server runs them inside its config check: an origin that exists must not allow
/// bigger messages than the copy (10030 / 10046), a mirror inherits its origin's
/// `allow_direct` as `mirror_direct` (pedantic mode refuses a difference), and no chain of
/// sources and mirrors may lead back to the stream (`detected cycle`).
fn check_links(jsa: &JsAccount, cfg: &mut StreamConfig, pedantic: bool) -> Result<(), ApiError> {
    let origin = |name: &str| jsa.stream(name).map(|s| s.config());
    if let Some(m) = &cfg.mirror
        && m.external.is_none()
        && let Some(ocfg) = origin(&m.name)
    {
        if cfg.max_msg_size > 0 && ocfg.max_msg_size > 0 && cfg.max_msg_size < ocfg.max_msg_size {
            return Err(ApiError::mirror_max_message_size_too_big());
        }
        if pedantic && cfg.mirror_direct != ocfg.allow_direct {
            return Err(ApiError::pedantic(
                "origin stream has direct get set, mirror has it disabled",
            ));
        }
        cfg.mirror_direct = ocfg.allow_direct;
    }
    // The subjects of the local origins, which an external source's delivery prefix
    // must not overlap (nats-server's check; 10022).
    let mut origin_subjects: Vec<String> = Vec::new();
    for src in cfg.sources.iter().filter(|s| s.external.is_none()) {
        if let Some(ocfg) = origin(&src.name) {
            if cfg.max_msg_size > 0 && ocfg.max_msg_size > 0 && cfg.max_msg_size < ocfg.max_msg_size
            {
                return Err(ApiError::source_max_message_size_too_big());
            }
            origin_subjects.extend(ocfg.subjects.iter().cloned());
        }
    }
    let prefixes = cfg
        .sources
        .iter()
        .filter_map(|s| s.external.as_ref())
        .map(|e| e.deliver.as_str())
        .filter(|p| !p.is_empty());
    for pfx in prefixes {
        for sub in &origin_subjects {
            if subjects_collide(sub.as_bytes(), format!("{pfx}.{sub}").as_bytes()) {
                return Err(ApiError::stream_external_del_prefix_overlaps(pfx, sub));
            }
        }
    }
    // Walk the graph of sources and mirrors from this stream (its new config).
    let overlaps = |subjects: &[String], filter: &str| {
        filter.is_empty()
            || subjects
                .iter()
                .any(|s| subjects_collide(s.as_bytes(), filter.as_bytes()))
    };
    let cycle = || ApiError::stream_invalid_config("detected cycle");
    let mut to_visit: Vec<StreamConfig> = vec![cfg.clone()];
    let mut visited: Vec<String> = Vec::new();
    // Each stream is expanded once at most, so the walk ends.
    while let Some(c) = to_visit.pop() {
        if visited.contains(&c.name) {
            continue;
        }
        visited.push(c.name.clone());
        for src in c.sources.iter().filter(|s| s.external.is_none()) {
            if visited.contains(&src.name) {
                if overlaps(&c.subjects, &src.filter_subject) {
                    return Err(cycle());
                }
            } else if let Some(ocfg) = origin(&src.name) {
                to_visit.push(ocfg);
            }
        }
        if let Some(m) = c.mirror.as_ref().filter(|m| m.external.is_none()) {
            if visited.contains(&m.name) {
                return Err(cycle());
            }
            if let Some(ocfg) = origin(&m.name) {
                to_visit.push(ocfg);
            }
        }
    }
    Ok(())
}

pub(crate) fn check_ctx(
    js: &JetStream,
    jsa: &JsAccount,
    pedantic: bool,
    storage: ApiStorage,
) -> StreamCheckContext {
    let limits = jsa.limits();
    let cap = match storage {
        ApiStorage::Memory => limits.memory_max_stream_bytes,
        ApiStorage::File => limits.store_max_stream_bytes,
    };
    StreamCheckContext {
        pedantic,
        server: js.api_limits,
        max_bytes_required: limits.max_bytes_required,
        max_stream_bytes: cap,
    }
}

/// Whether `bytes` more of real usage fit the account's and the server's limits (a
/// restore reserves the archive's declared size before taking its data).
pub(crate) fn check_usage(
    js: &JetStream,
    jsa: &JsAccount,
    memory: bool,
    bytes: u64,
) -> Result<(), ApiError> {
    use super::limits::{Storage, account_reserved, check_bytes, server_reserved};
    let storage = if memory {
        Storage::Memory
    } else {
        Storage::File
    };
    let limits = jsa.limits();
    let account_in_use = (jsa.usage(memory) as i64).max(account_reserved(jsa, storage, None));
    let server_in_use = super::limits::server_used(js, storage).max(server_reserved(js, storage));
    check_bytes(
        storage,
        i64::try_from(bytes).unwrap_or(i64::MAX),
        storage.account_max(&limits),
        account_in_use,
        js.limits.max(storage),
        server_in_use,
    )
    .map_err(|e| e.to_api())
}

/// Refuse subjects that overlap another stream's in the account.
fn check_overlap(jsa: &JsAccount, name: &str, cfg: &StreamConfig) -> Result<(), ApiError> {
    for (other_name, other) in jsa.streams.read().iter() {
        if other_name == name {
            continue;
        }
        let other_cfg = other.config();
        for a in &cfg.subjects {
            for b in &other_cfg.subjects {
                if subjects_collide(a.as_bytes(), b.as_bytes()) {
                    return Err(ApiError::stream_subject_overlap());
                }
            }
        }
    }
    Ok(())
}

fn stream_create(
    js: &Arc<JetStream>,
    jsa: &Arc<JsAccount>,
    name: &str,
    body: &[u8],
) -> Result<ApiAnswer, ApiError> {
    let req = StreamConfigRequest::decode_request(body, Mode::Strict)?;
    check_stream_create_request(name, &req)?;
    // The account's limits first, on the request as sent (nats-server's order).
    let storage_given = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .is_some_and(|v| v.get("storage").is_some());
    super::limits::check_stream_create_early(js, jsa, &req.config, storage_given)?;
    let mut requested = req.config.clone();
    set_static_stream_metadata(&mut requested);
    let mut cfg = check_stream_config(
        &requested,
        &check_ctx(js, jsa, req.pedantic, requested.storage),
    )?;
    check_links(jsa, &mut cfg, req.pedantic)?;
    // A filter that is no subject fails the link's setup, which nats-server reports
    // as the create's error (an update takes a source's, as it sets sources up later).
    if let Some(f) = cfg
        .mirror
        .as_ref()
        .map(|m| &m.filter_subject)
        .filter(|f| !f.is_empty() && !crate::sublist::is_valid_subject(f.as_bytes()))
    {
        return Err(ApiError::stream_create(format!(
            "subject filter '{f}' for the mirror invalid subject"
        )));
    }
    if let Some(f) = cfg
        .sources
        .iter()
        .map(|s| &s.filter_subject)
        .find(|f| !f.is_empty() && !crate::sublist::is_valid_subject(f.as_bytes()))
    {
        return Err(ApiError::stream_create(format!(
            "subject filter '{f}' for the source: invalid subject"
        )));
    }
    check_stream_standalone_replicas(&cfg)?;
    check_stream_supported(&cfg)?;
    if let Some(existing) = jsa.stream(name) {
        if existing.config() != cfg {
            return Err(ApiError::stream_name_exist());
        }
        let info = info_of(js, &existing, false);
        return Ok(ApiAnswer::ok(
            ApiResponse::new(StreamCreateBody {
                info: Some(info),
                did_create: true,
            })
            .to_json(),
        ));
    }
    check_overlap(jsa, name, &cfg)?;
    super::limits::check_stream_create(js, jsa, &cfg)?;
    let server = js
        .server
        .upgrade()
        .ok_or_else(|| ApiError::stream_create("server stopping"))?;
    let dir = jsa.dir.join(name);
    if dir.exists() {
        // Left on disk by a failed recovery: never open it with a new config (that would
        // apply new limits to, or overwrite, data nobody could read back yet).
        return Err(ApiError::stream_create(format!(
            "stream directory {} exists but could not be recovered; move it aside to reuse the name",
            dir.display()
        )));
    }
    let store = js.open_store(&dir, &cfg).map_err(ApiError::stream_create)?;
    if cfg.first_seq > 1 {
        // The first message gets `first_seq` (nats-server: the empty stream then
        // reports first_seq N, last_seq N - 1). Before anything is published, the
        // store's own compaction past its end does exactly that, durably.
        if let Err(e) = store.compact(cfg.first_seq) {
            let _ = store.delete();
            if cfg.storage != ApiStorage::Memory {
                let _ = std::fs::remove_dir_all(&dir);
            }
            return Err(ApiError::stream_create(e));
        }
    }
    let created = Timestamp::now();
    // A memory stream has no directory: nothing of it is kept across a restart.
    let memory = cfg.storage == ApiStorage::Memory;
    let stream = Stream::new(
        jsa.account.clone(),
        cfg.clone(),
        created,
        store,
        (!memory).then(|| dir.clone()),
        js.domain.clone(),
    );
    if let Err(e) = js.persist_meta(
        &stream,
        &StreamMeta {
            config: cfg,
            created,
        },
    ) {
        let _ = stream.store.delete();
        if !memory {
            let _ = std::fs::remove_dir_all(&dir);
        }
        return Err(ApiError::stream_create(e));
    }
    stream.subscribe();
    stream.spawn(server.clone());
    jsa.insert_stream(stream.clone());
    super::advisory::stream_action(&server, &jsa.account, name, "create", &js.domain);
    let mut info = info_of(js, &stream, false);
    // nats-server's create answer leaves the domain out (its info and update answers
    // carry it).
    info.domain.clear();
    Ok(ApiAnswer::ok(
        ApiResponse::new(StreamCreateBody {
            info: Some(info),
            did_create: true,
        })
        .to_json(),
    ))
}

fn stream_update(
    js: &Arc<JetStream>,
    jsa: &Arc<JsAccount>,
    name: &str,
    body: &[u8],
) -> Result<ApiAnswer, ApiError> {
    // nats-server's order: decode, check the config (an empty body fails the name
    // rule), compare the name, then look the stream up.
    let req = StreamConfigRequest::decode_request(body, Mode::Strict)?;
    let mut requested = req.config.clone();
    set_static_stream_metadata(&mut requested);
    let mut cfg = check_stream_config(
        &requested,
        &check_ctx(js, jsa, req.pedantic, requested.storage),
    )?;
    check_links(jsa, &mut cfg, req.pedantic)?;
    if cfg.name != name {
        return Err(ApiError::stream_mismatch());
    }
    let stream = jsa.stream(name).ok_or_else(ApiError::stream_not_found)?;
    let old = stream.config();
    let cfg = check_stream_update(&old, cfg, true)?;
    check_stream_supported(&cfg)?;
    check_overlap(jsa, name, &cfg)?;
    if cfg.consumer_limits != old.consumer_limits {
        check_consumer_limits(&stream, &cfg.consumer_limits)?;
    }
    super::limits::check_stream_update(js, jsa, &old, &cfg)?;
    let to_interest = old.retention != cfg.retention
        && cfg.retention == super::api::stream::RetentionPolicy::Interest;
    stream
        .update_config(cfg.clone())
        .map_err(ApiError::stream_update)?;
    if to_interest {
        // What the consumers have acknowledged goes now, as in nats-server.
        stream.sweep_after_turning_to_interest();
    }
    js.persist_meta(
        &stream,
        &StreamMeta {
            config: cfg,
            created: stream.created,
        },
    )
    .map_err(ApiError::stream_update)?;
    if let Some(server) = js.server.upgrade() {
        stream.start_links(&server);
        super::advisory::stream_action(&server, &jsa.account, name, "modify", &js.domain);
    }
    let info = info_of(js, &stream, false);
    Ok(ApiAnswer::ok(
        ApiResponse::new(StreamUpdateBody { info: Some(info) }).to_json(),
    ))
}

/// New `consumer_limits` must not be below what an existing consumer already has (its
/// `max_ack_pending` or `inactive_threshold` above a new, non-zero limit): nats-server
/// refuses the update naming them (10069), instead of leaving consumers over the limit.
fn check_consumer_limits(
    stream: &Stream,
    limits: &super::api::stream::ConsumerLimits,
) -> Result<(), ApiError> {
    let over: Vec<String> = stream
        .consumers
        .read()
        .values()
        .filter(|c| {
            let cfg = c.config();
            (limits.max_ack_pending > 0 && cfg.max_ack_pending > limits.max_ack_pending)
                || (limits.inactive_threshold > 0
                    && cfg.inactive_threshold > limits.inactive_threshold)
        })
        .map(|c| c.name.clone())
        .collect();
    if over.is_empty() {
        Ok(())
    } else {
        Err(ApiError::stream_update(format!(
            "change to limits violates consumers: {}",
            over.join(", ")
        )))
    }
}

fn stream_delete(
    js: &Arc<JetStream>,
    jsa: &Arc<JsAccount>,
    name: &str,
    body: &[u8],
) -> Result<ApiAnswer, ApiError> {
    if !is_empty_request(body) {
        return Err(ApiError::not_empty_request());
    }
    jsa.delete_stream(name)
        .ok_or_else(ApiError::stream_not_found)?
        .map_err(ApiError::stream_delete)?;
    if let Some(server) = js.server.upgrade() {
        super::advisory::stream_action(&server, &jsa.account, name, "delete", &js.domain);
    }
    Ok(ApiAnswer::ok(
        ApiResponse::new(StreamDeleteBody { success: true }).to_json(),
    ))
}

fn stream_info(
    js: &Arc<JetStream>,
    jsa: &Arc<JsAccount>,
    name: &str,
    body: &[u8],
) -> Result<ApiAnswer, ApiError> {
    // Options only from a JSON object (or array), decoded before the stream lookup, as
    // nats-server does; any other body means "no options".
    let req = if is_json_object_or_array(body) {
        StreamInfoRequest::decode_request(body, Mode::Strict)?
    } else {
        StreamInfoRequest::default()
    };
    let stream = jsa.stream(name).ok_or_else(ApiError::stream_not_found)?;
    let mut info = info_of(js, &stream, true);
    info.state = api_state(&stream, req.deleted_details);
    let mut paged = ApiPaged::default();
    if !req.subjects_filter.is_empty() {
        // An invalid filter matches nothing. With no match the paging stays all zero;
        // otherwise the requested offset is echoed even past the end.
        let mut all: Vec<(String, u64)> = SubjectFilter::new(&req.subjects_filter)
            .map(|f| stream.store.subjects_totals(&f).into_iter().collect())
            .unwrap_or_default();
        if !all.is_empty() {
            all.sort();
            let total = all.len();
            let offset = req.offset.max(0);
            let limit = super::api::MAX_SUBJECT_DETAILS;
            let skip = usize::try_from(offset).unwrap_or(usize::MAX).min(total);
            info.state.subjects = all.into_iter().skip(skip).take(limit).collect();
            paged = ApiPaged {
                total: total as i64,
                offset,
                limit: limit as i64,
            };
        }
    }
    Ok(ApiAnswer::ok(
        ApiResponse::new(StreamInfoBody {
            paged,
            info: Some(info),
        })
        .to_json(),
    ))
}

/// Names of the account's streams matching an optional subject filter, sorted.
fn matching_streams(jsa: &JsAccount, subject: &str) -> Vec<Arc<Stream>> {
    jsa.streams
        .read()
        .values()
        .filter(|s| {
            subject.is_empty()
                || s.config()
                    .subjects
                    .iter()
                    .any(|x| subjects_collide(x.as_bytes(), subject.as_bytes()))
        })
        .cloned()
        .collect()
}

fn stream_names(jsa: &Arc<JsAccount>, body: &[u8]) -> Result<ApiAnswer, ApiError> {
    let req = if is_json_object_or_array(body) {
        StreamNamesRequest::decode_request(body, Mode::Strict)?
    } else {
        StreamNamesRequest::default()
    };
    let all = matching_streams(jsa, &req.subject);
    let total = all.len();
    let offset = (req.offset.max(0) as usize).min(total);
    let page: Vec<String> = all
        .iter()
        .skip(offset)
        .take(NAMES_LIMIT)
        .map(|s| s.name.clone())
        .collect();
    Ok(ApiAnswer::ok(
        ApiResponse::new(StreamNamesBody {
            paged: ApiPaged {
                total: total as i64,
                offset: offset as i64,
                limit: NAMES_LIMIT as i64,
            },
            streams: (!page.is_empty()).then_some(page),
        })
        .to_json(),
    ))
}

fn stream_list(
    js: &Arc<JetStream>,
    jsa: &Arc<JsAccount>,
    body: &[u8],
) -> Result<ApiAnswer, ApiError> {
    let req = if is_json_object_or_array(body) {
        StreamListRequest::decode_request(body, Mode::Strict)?
    } else {
        StreamListRequest::default()
    };
    let all = matching_streams(jsa, &req.subject);
    let total = all.len();
    let offset = (req.offset.max(0) as usize).min(total);
    let page: Vec<StreamInfo> = all
        .iter()
        .skip(offset)
        .take(LIST_LIMIT)
        .map(|s| {
            // LIST shows the stored config (no dynamic metadata), as nats-server.
            let mut info = info_of(js, s, false);
            info.config = s.config();
            info
        })
        .collect();
    Ok(ApiAnswer::ok(
        ApiResponse::new(StreamListBody {
            paged: ApiPaged {
                total: total as i64,
                offset: offset as i64,
                limit: LIST_LIMIT as i64,
            },
            streams: Some(page),
            ..StreamListBody::default()
        })
        .to_json(),
    ))
}

fn stream_purge(jsa: &Arc<JsAccount>, name: &str, body: &[u8]) -> Result<ApiAnswer, ApiError> {
    // The request is decoded and checked before the stream is looked up, as in
    // nats-server.
    let req = if is_json_object_or_array(body) {
        let req = StreamPurgeRequest::decode_request(body, Mode::Strict)?;
        if req.seq > 0 && req.keep > 0 {
            return Err(ApiError::bad_request());
        }
        req
    } else {
        StreamPurgeRequest::default()
    };
    let stream = jsa.stream(name).ok_or_else(ApiError::stream_not_found)?;
    let cfg = stream.config();
    if cfg.sealed {
        return Err(ApiError::stream_sealed());
    }
    if cfg.deny_purge {
        return Err(ApiError::stream_purge_failed("stream purge not permitted"));
    }
    let purged = if req.filter.is_empty() && req.seq == 0 && req.keep == 0 {
        stream.store.purge()
    } else if req.filter.is_empty() {
        stream
            .store
            .purge_ex(&SubjectFilter::all(), req.seq, req.keep)
    } else {
        match SubjectFilter::new(&req.filter) {
            Ok(filter) => stream.store.purge_ex(&filter, req.seq, req.keep),
            // Matches nothing (nats-server: purged 0).
            Err(_) => Ok(0),
        }
    };
    let purged = match purged {
        Ok(n) => {
            if (req.filter.is_empty() || req.filter == ">") && req.keep == 0 {
                stream.purged.store(true, Ordering::Relaxed);
            }
            n
        }
        // nats-server answers this one through its success path: counted in
        // `api.total` only.
        Err(e) => {
            return Ok(error_for(
                &["STREAM", "PURGE", name],
                ApiError::stream_general(e.to_string()),
            )
            .counted_as(Tally::Success));
        }
    };
    if req.filter.is_empty() && req.keep == 0 {
        stream.consumers_skip_to(stream.store.fast_state().first_seq);
    }
    if purged > 0 {
        stream.wake_consumers();
    }
    Ok(ApiAnswer::ok(
        ApiResponse::new(StreamPurgeBody {
            success: true,
            purged,
        })
        .to_json(),
    ))
}

fn msg_get(jsa: &Arc<JsAccount>, name: &str, body: &[u8]) -> Result<ApiAnswer, ApiError> {
    // Request errors come before the stream lookup, as in nats-server.
    let req = super::direct::decode_msg_get(body)?;
    let stream = jsa.stream(name).ok_or_else(ApiError::stream_not_found)?;
    let msg = super::direct::msg_get(&stream, &req)?;
    // nats-server sends a found message past its API accounting.
    Ok(
        ApiAnswer::ok(ApiResponse::new(MsgGetBody { message: Some(msg) }).to_json())
            .counted_as(Tally::Uncounted),
    )
}

fn msg_delete(jsa: &Arc<JsAccount>, name: &str, body: &[u8]) -> Result<ApiAnswer, ApiError> {
    if is_empty_request(body) {
        return Err(ApiError::bad_request());
    }
    let req = MsgDeleteRequest::decode_request(body, Mode::Strict)?;
    let stream = jsa.stream(name).ok_or_else(ApiError::stream_not_found)?;
    let cfg = stream.config();
    if cfg.sealed {
        return Err(ApiError::stream_sealed());
    }
    if cfg.deny_delete {
        return Err(ApiError::stream_msg_delete_failed(
            "message delete not permitted",
        ));
    }
    let removed = match msg_delete_precheck(&stream, req.seq) {
        Some(e) => Err(e),
        None if req.no_erase => stream.store.remove_msg(req.seq),
        None => stream.store.erase_msg(req.seq),
    };
    // nats-server answers the outcome of the removal through its success path, so these
    // errors count in `api.total` only.
    let e = match removed {
        Ok(true) => {
            stream.wake_consumers();
            return Ok(ApiAnswer::ok(
                ApiResponse::new(MsgDeleteBody { success: true }).to_json(),
            ));
        }
        Ok(false) => ApiError::sequence_not_found(req.seq),
        Err(e) => ApiError::stream_msg_delete_failed(e.to_string()),
    };
    Ok(error_for(&["STREAM", "MSG", "DELETE", name], e).counted_as(Tally::Success))
}

/// The errors nats-server's stores give for a sequence they cannot remove before looking
/// at it: the file store refuses sequence 0 and anything outside first..last ("no
/// message found" up to the last sequence, "stream store EOF" past it); the memory store
/// refuses nothing here (it answers "not removed", 10043). `None`: go ahead.
fn msg_delete_precheck(stream: &Stream, seq: u64) -> Option<natrium_store::StoreError> {
    use natrium_store::StoreError;
    if stream.is_memory() {
        return None;
    }
    if seq == 0 {
        return Some(StoreError::NotFound);
    }
    let st = stream.store.fast_state();
    if seq < st.first_seq || seq > st.last_seq || st.msgs == 0 {
        return Some(if seq <= st.last_seq {
            StoreError::NotFound
        } else {
            StoreError::Eof
        });
    }
    None
}
