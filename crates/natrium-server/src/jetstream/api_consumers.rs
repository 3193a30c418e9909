//! Handlers for `$JS.API.CONSUMER.*`: create (all three subject forms), info, names,
//! list, delete, pause, reset, and the leader stepdown refusal.
//!
//! The create handler runs nats-server's checks in its order (subject, replicas, stream
//! lookup, defaults, config checks, existing consumer and action, consumer limit, work
//! queue rules), so a bad request gets the error a client expects from the real server.

use super::advisory;
use super::api::account::AccountLimits as ApiAccountLimits;
use super::api::consumer::{
    ConsumerAction, ConsumerConfig, ConsumerCreateBody, ConsumerDeleteBody, ConsumerInfo,
    ConsumerInfoBody, ConsumerLeaderStepdownBody, ConsumerListBody, ConsumerNamesBody,
    ConsumerPauseBody, ConsumerPauseRequest, ConsumerResetBody, ConsumerResetRequest,
    ConsumerUnpinBody, ConsumerUnpinRequest, ConsumersRequest, CreateConsumerRequest,
};
use super::api::consumer_check::{
    ConsumerCreateSubject, check_consumer_config, check_consumer_standalone_replicas,
    check_workqueue_consumer, finalize_new_consumer_config, is_durable, is_valid_group_name,
    partition_unique, set_consumer_config_defaults, set_static_consumer_metadata, subject_filters,
};
use super::api::errors::ApiError;
use super::api::go_json::{GoRequest, Mode};
use super::api::stream::RetentionPolicy;
use super::api::time::Timestamp;
use super::api::{ApiPaged, ApiResponse, LIST_LIMIT, NAMES_LIMIT};
use super::api_server::{ApiAnswer, ApiRequest};
use super::consumer::Consumer;
use super::engine::{JetStream, JsAccount};
use super::stream::Stream;
use natrium_store::{ConsumerStore, StorageType, StoreError};
use std::sync::Arc;

/// Consumer subjects this server answers.
pub fn is_known(t: &[&str]) -> bool {
    matches!(
        t,
        ["CONSUMER", "CREATE", _, ..]
            // nats-server listens on `DURABLE.CREATE.*.*` only: a dotted durable name
            // (more tokens) gets no answer at all.
            | ["CONSUMER", "DURABLE", "CREATE", _, _]
            | [
                "CONSUMER",
                "DELETE" | "INFO" | "PAUSE" | "RESET" | "UNPIN",
                _,
                _
            ]
            | ["CONSUMER", "NAMES" | "LIST", _]
            | ["CONSUMER", "LEADER", "STEPDOWN", _, _]
    )
}

/// A typed error answer for a consumer subject.
pub fn error_for(t: &[&str], e: ApiError) -> ApiAnswer {
    let body = match t {
        ["CONSUMER", "CREATE", ..] | ["CONSUMER", "DURABLE", "CREATE", ..] => {
            ApiResponse::<ConsumerCreateBody>::error(e).to_json()
        }
        ["CONSUMER", "DELETE", ..] => ApiResponse::<ConsumerDeleteBody>::error(e).to_json(),
        ["CONSUMER", "INFO", ..] => ApiResponse::<ConsumerInfoBody>::error(e).to_json(),
        ["CONSUMER", "PAUSE", ..] => ApiResponse::<ConsumerPauseBody>::error(e).to_json(),
        ["CONSUMER", "RESET", ..] => ApiResponse::<ConsumerResetBody>::error(e).to_json(),
        ["CONSUMER", "UNPIN", ..] => ApiResponse::<ConsumerUnpinBody>::error(e).to_json(),
        ["CONSUMER", "NAMES", ..] => ApiResponse::with_error(
            ConsumerNamesBody {
                consumers: Some(Vec::new()),
                ..ConsumerNamesBody::default()
            },
            e,
        )
        .to_json(),
        ["CONSUMER", "LIST", ..] => ApiResponse::with_error(
            ConsumerListBody {
                consumers: Some(Vec::new()),
                ..ConsumerListBody::default()
            },
            e,
        )
        .to_json(),
        ["CONSUMER", "LEADER", ..] => ApiResponse::<ConsumerLeaderStepdownBody>::error(e).to_json(),
        _ => format!("{{\"error\":{}}}", super::api::to_go_json(&e)),
    };
    ApiAnswer::err(body)
}

/// Route a consumer subject. `None`: no answer.
pub fn handle(
    js: &Arc<JetStream>,
    jsa: &Arc<JsAccount>,
    req: &ApiRequest,
    t: &[&str],
) -> Option<ApiAnswer> {
    let r = match t {
        ["CONSUMER", "CREATE", ..] | ["CONSUMER", "DURABLE", "CREATE", ..] => {
            consumer_create(js, jsa, req)?
        }
        ["CONSUMER", "INFO", stream, name] => consumer_info(jsa, stream, name, &req.payload),
        ["CONSUMER", "DELETE", stream, name] => {
            consumer_delete(js, jsa, stream, name, &req.payload)
        }
        ["CONSUMER", "NAMES", stream] => consumer_names(jsa, stream, &req.payload),
        ["CONSUMER", "LIST", stream] => consumer_list(jsa, stream, &req.payload),
        ["CONSUMER", "PAUSE", stream, name] => consumer_pause(js, jsa, stream, name, &req.payload),
        ["CONSUMER", "RESET", stream, name] => {
            // nats-server listens for resets on each consumer: a missing stream or
            // consumer gets no answer at all.
            lookup(jsa, stream, name).ok()?;
            consumer_reset(jsa, stream, name, &req.payload)
        }
        ["CONSUMER", "UNPIN", stream, name] => consumer_unpin(js, jsa, stream, name, &req.payload),
        // Standalone nats-server refuses every stepdown the same way, before any lookup.
        ["CONSUMER", "LEADER", "STEPDOWN", _, _] => Err(ApiError::cluster_required()),
        _ => return None,
    };
    Some(r.unwrap_or_else(|e| error_for(t, e)))
}

fn account_limits(jsa: &JsAccount) -> ApiAccountLimits {
    let l = &jsa.limits();
    ApiAccountLimits {
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

fn info_answer(info: ConsumerInfo) -> ApiAnswer {
    ApiAnswer::ok(ApiResponse::new(ConsumerCreateBody { info: Some(info) }).to_json())
}

/// Go `checkNewConsumerConfig`: what an update may not change.
fn check_update(
    stream: &Stream,
    old: &ConsumerConfig,
    new: &ConsumerConfig,
) -> Result<(), ApiError> {
    if old == new {
        return Ok(());
    }
    let fail = |m: &str| Err(ApiError::consumer_create(m));
    if old.deliver_policy != new.deliver_policy {
        return fail("deliver policy can not be updated");
    }
    if old.mem_storage != new.mem_storage {
        return fail("storage type can not be updated");
    }
    if old.direct != new.direct {
        return fail("direct can not be updated");
    }
    if old.sourcing != new.sourcing {
        return fail("sourcing can not be updated");
    }
    if old.opt_start_seq != new.opt_start_seq {
        return fail("start sequence can not be updated");
    }
    // Compared as instants (Go's `time.Equal`): the same time with another UTC offset
    // is no change.
    let instant = |t: &Option<Timestamp>| t.as_ref().map(Timestamp::unix_nanos_i128);
    if instant(&old.opt_start_time) != instant(&new.opt_start_time) {
        return fail("start time can not be updated");
    }
    if old.ack_policy != new.ack_policy {
        return fail("ack policy can not be updated");
    }
    if old.replay_policy != new.replay_policy {
        return fail("replay policy can not be updated");
    }
    if old.idle_heartbeat != new.idle_heartbeat {
        return fail("heart beats can not be updated");
    }
    if old.flow_control != new.flow_control {
        return fail("flow control can not be updated");
    }
    if old.deliver_subject != new.deliver_subject {
        if old.deliver_subject.is_empty() {
            return fail("can not update pull consumer to push based");
        }
        if new.deliver_subject.is_empty() {
            return fail("can not update push consumer to pull based");
        }
        if stream
            .account
            .sublist
            .has_interest(old.deliver_subject.as_bytes())
        {
            return Err(ApiError::consumer_name_exist());
        }
    }
    if old.max_waiting != new.max_waiting {
        return fail("max waiting can not be updated");
    }
    if !new.backoff.is_empty()
        && new.max_deliver != -1
        && new.backoff.len() as i64 > new.max_deliver
    {
        return Err(ApiError::consumer_max_deliver_backoff());
    }
    if subject_filters(old) != subject_filters(new) {
        // Allowed by nats-server; the new filter applies from the current position.
    }
    Ok(())
}

/// A random 8-character name for an ephemeral consumer.
fn ephemeral_name() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    (0..8)
        .map(|_| ALPHABET[rand::random::<u32>() as usize % ALPHABET.len()] as char)
        .collect()
}

fn consumer_create(
    js: &Arc<JetStream>,
    jsa: &Arc<JsAccount>,
    req: &ApiRequest,
) -> Option<Result<ApiAnswer, ApiError>> {
    let form = ConsumerCreateSubject::parse(req.subject.as_str())?;
    Some(create(js, jsa, req, &form))
}

fn create(
    js: &Arc<JetStream>,
    jsa: &Arc<JsAccount>,
    req: &ApiRequest,
    form: &ConsumerCreateSubject,
) -> Result<ApiAnswer, ApiError> {
    let mut r = CreateConsumerRequest::decode_request(&req.payload, Mode::Strict)?;
    form.check(&mut r)?;
    check_consumer_standalone_replicas(&r.config)?;
    let stream = jsa
        .stream(&r.stream_name)
        .ok_or_else(ApiError::stream_not_found)?;
    let wanted_name = if !r.config.durable_name.is_empty() {
        r.config.durable_name.clone()
    } else {
        r.config.name.clone()
    };
    let existing = (!wanted_name.is_empty())
        .then(|| stream.consumer(&wanted_name))
        .flatten();
    if let Some(e) = &existing {
        r.config.pause_until = e.config().pause_until;
    }
    let mut cfg = r.config.clone();
    set_static_consumer_metadata(&mut cfg);
    let scfg = stream.config();
    let acct = account_limits(jsa);
    let server = js.api_limits;
    set_consumer_config_defaults(&mut cfg, &scfg, &server, &acct, r.pedantic)?;
    check_consumer_config(&cfg, &server, &scfg, &acct, false)?;
    if let Some(e) = existing {
        let old = e.config();
        if r.action == ConsumerAction::Create && old != cfg {
            return Err(ApiError::consumer_already_exists());
        }
        // Stamped on an update too (after the create check, which compares the request
        // as sent, as nats-server does): an ephemeral updated without a threshold keeps
        // the 5s, instead of getting none and never being cleaned up. A durable stays
        // durable (no threshold stamped) when the update names it by `name` only.
        if !is_durable(&old) {
            finalize_new_consumer_config(&mut cfg);
        }
        if scfg.retention == RetentionPolicy::WorkQueue {
            let others = other_filters(&stream, &e.name);
            if !partition_unique(&subject_filters(&cfg), &others) && !others.is_empty() {
                return Err(ApiError::consumer_wq_consumer_not_unique());
            }
        }
        check_update(&stream, &old, &cfg)?;
        if old != cfg {
            let filters_changed = subject_filters(&old) != subject_filters(&cfg);
            let mut new = cfg;
            new.name = old.name.clone();
            e.update_config(new).map_err(ApiError::consumer_create)?;
            e.persist_meta().map_err(ApiError::consumer_create)?;
            if filters_changed {
                // Messages only this consumer's old filter wanted are wanted no more.
                stream.sweep_interest();
            }
        }
        return Ok(info_answer(e.info()));
    }
    if r.action == ConsumerAction::Update {
        return Err(ApiError::consumer_does_not_exist());
    }
    let mut maxc = scfg.max_consumers;
    if maxc <= 0 || (acct.max_consumers > 0 && acct.max_consumers < maxc) {
        maxc = acct.max_consumers;
    }
    if maxc <= 0 {
        // Neither the stream nor the account sets one: the server's default (1000
        // unless `jetstream { limits { default_max_consumers } }` says otherwise).
        maxc = server.default_max_consumers;
    }
    // `direct` consumers (nats-server's internal ones) do not count.
    let count = stream
        .consumers
        .read()
        .values()
        .filter(|c| !c.is_direct())
        .count() as i64;
    if maxc > 0 && count >= maxc {
        return Err(ApiError::maximum_consumers_limit());
    }
    if scfg.retention == RetentionPolicy::WorkQueue {
        check_workqueue_consumer(&cfg, &other_filters(&stream, ""))?;
    }
    finalize_new_consumer_config(&mut cfg);
    let durable = !cfg.durable_name.is_empty();
    // nats-server `JSMaxNameLen`, checked (in bytes) for durable names only.
    if durable && cfg.durable_name.len() > 255 {
        return Err(ApiError::consumer_name_too_long(255));
    }
    let name = if wanted_name.is_empty() {
        loop {
            let n = ephemeral_name();
            if stream.consumer(&n).is_none() {
                break n;
            }
        }
    } else {
        wanted_name
    };
    let server = js
        .server
        .upgrade()
        .ok_or_else(|| ApiError::consumer_create("server stopping"))?;
    // A name a file store cannot take (over 255 bytes, a file name): nats-server's file
    // store refuses it and answers with this text; memory streams take it.
    if name.len() > 255 && !stream.is_memory() {
        return Err(ApiError::consumer_create(
            "error creating store for consumer",
        ));
    }
    let c = open_consumer(&stream, cfg, name, Timestamp::now(), durable, false)
        .map_err(|e| ApiError::consumer_store_failed(e.to_string()))?;
    if let Err(e) = c.persist_meta() {
        c.delete_state();
        return Err(ApiError::consumer_store_failed(e.to_string()));
    }
    stream.consumers.write().insert(c.name.clone(), c.clone());
    // The answer shows the consumer as created, before its task delivers anything (a
    // push consumer with a subscriber already there starts at once), as nats-server's.
    let created = c.info();
    c.start(server.clone());
    advisory::consumer_action(
        &server,
        &stream.account,
        &stream.name,
        &c.name,
        "create",
        stream.domain(),
    );
    // Created paused: the pause advisory too, as nats-server sends it.
    let cfg = c.config();
    if let Some(until) = cfg.pause_until
        && Timestamp::now().nanos_until(&until) > 0
    {
        let (subject, body) = advisory::pause(&stream.name, &c.name, true, until, stream.domain());
        advisory::send_now(&server, &stream.account, &subject, &body);
    }
    Ok(info_answer(created))
}

/// Open the state store and the consumer. Consumers of file streams keep their config
/// and state in files unless `mem_storage` (what ordered consumers ask for), so
/// ephemerals survive a restart as in nats-server and end by their inactive threshold
/// after it (their state is snapshotted into the files at most once a second, see
/// `natrium_store::consumer_snapshots`); memory streams and `mem_storage` consumers keep
/// it in memory.
/// `name_in_config`: write the consumer's name into its config (durables, and every
/// consumer recovered at start, as nats-server reports them).
pub fn open_consumer(
    stream: &Arc<Stream>,
    mut cfg: ConsumerConfig,
    name: String,
    created: Timestamp,
    name_in_config: bool,
    recovered: bool,
) -> Result<Arc<Consumer>, StoreError> {
    let policy = Consumer::store_policy(&cfg);
    let store: Arc<dyn ConsumerStore> = if !cfg.mem_storage {
        let store = stream.store.consumer_store(&name, policy)?;
        if cfg.durable_name.is_empty() && store.storage_type() == StorageType::File {
            // Ephemeral: changes in memory, whole-state snapshots into the files.
            Arc::new(natrium_store::consumer_snapshots::SnapshotConsumerStore::new(store, policy)?)
        } else {
            store
        }
    } else {
        Arc::new(natrium_store::consumer::MemConsumerStore::new(
            &name, policy,
        ))
    };
    if cfg.name.is_empty() && name_in_config {
        cfg.name = name.clone();
    }
    let stored = !cfg.mem_storage;
    let opened = Consumer::open(stream.clone(), cfg, created, store, recovered, name.clone());
    if opened.is_err() && stored && !recovered {
        // A new consumer that could not open leaves no folder behind (recovered ones
        // stay on disk, as recovery reports).
        let _ = stream.store.remove_consumer(&name);
    }
    opened
}

/// The filters of the stream's other consumers (for work-queue uniqueness).
fn other_filters(stream: &Stream, except: &str) -> Vec<Vec<String>> {
    stream
        .consumers
        .read()
        .values()
        .filter(|c| c.name != except)
        .map(|c| subject_filters(&c.config()))
        .collect()
}

fn lookup(
    jsa: &JsAccount,
    stream: &str,
    name: &str,
) -> Result<(Arc<Stream>, Arc<Consumer>), ApiError> {
    let s = jsa.stream(stream).ok_or_else(ApiError::stream_not_found)?;
    let c = s.consumer(name).ok_or_else(ApiError::consumer_not_found)?;
    Ok((s, c))
}

fn consumer_info(
    jsa: &JsAccount,
    stream: &str,
    name: &str,
    body: &[u8],
) -> Result<ApiAnswer, ApiError> {
    if !super::api::is_empty_request(body) {
        return Err(ApiError::not_empty_request());
    }
    let (_, c) = lookup(jsa, stream, name)?;
    Ok(ApiAnswer::ok(
        ApiResponse::new(ConsumerInfoBody {
            info: Some(c.info()),
        })
        .to_json(),
    ))
}

fn consumer_delete(
    js: &JetStream,
    jsa: &JsAccount,
    stream: &str,
    name: &str,
    body: &[u8],
) -> Result<ApiAnswer, ApiError> {
    // As nats-server: a body is refused before anything is looked up (and nothing is
    // deleted), as STREAM.DELETE and CONSUMER.INFO do.
    if !super::api::is_empty_request(body) {
        return Err(ApiError::not_empty_request());
    }
    let s = jsa.stream(stream).ok_or_else(ApiError::stream_not_found)?;
    let c = s
        .remove_consumer(name)
        .ok_or_else(ApiError::consumer_not_found)?;
    c.stop();
    c.delete_state();
    if let Some(server) = js.server.upgrade() {
        advisory::consumer_action(&server, &s.account, &s.name, name, "delete", s.domain());
    }
    Ok(ApiAnswer::ok(
        ApiResponse::new(ConsumerDeleteBody { success: true }).to_json(),
    ))
}

/// The consumers NAMES and LIST show: all but `direct` ones (nats-server's
/// `getPublicConsumers`), in name order.
fn sorted(stream: &Stream) -> Vec<Arc<Consumer>> {
    stream
        .consumers
        .read()
        .values()
        .filter(|c| !c.is_direct())
        .cloned()
        .collect()
}

fn consumer_names(jsa: &JsAccount, stream: &str, body: &[u8]) -> Result<ApiAnswer, ApiError> {
    // nats-server decodes the options only from a JSON object or array; any other body
    // means none.
    let req = if !super::api::is_json_object_or_array(body) {
        ConsumersRequest::default()
    } else {
        ConsumersRequest::decode_request(body, Mode::Strict)?
    };
    let s = jsa.stream(stream).ok_or_else(ApiError::stream_not_found)?;
    let all = sorted(&s);
    let total = all.len();
    let offset = (req.offset.max(0) as usize).min(total);
    let page: Vec<String> = all
        .iter()
        .skip(offset)
        .take(NAMES_LIMIT)
        .map(|c| c.name.clone())
        .collect();
    Ok(ApiAnswer::ok(
        ApiResponse::new(ConsumerNamesBody {
            paged: ApiPaged {
                total: total as i64,
                offset: offset as i64,
                limit: NAMES_LIMIT as i64,
            },
            consumers: Some(page),
        })
        .to_json(),
    ))
}

fn consumer_list(jsa: &JsAccount, stream: &str, body: &[u8]) -> Result<ApiAnswer, ApiError> {
    let req = if !super::api::is_json_object_or_array(body) {
        ConsumersRequest::default()
    } else {
        ConsumersRequest::decode_request(body, Mode::Strict)?
    };
    let s = jsa.stream(stream).ok_or_else(ApiError::stream_not_found)?;
    let all = sorted(&s);
    let total = all.len();
    let offset = (req.offset.max(0) as usize).min(total);
    let page: Vec<ConsumerInfo> = all
        .iter()
        .skip(offset)
        .take(LIST_LIMIT)
        .map(|c| {
            // LIST shows the stored config (no dynamic metadata), as nats-server.
            let mut info = c.info();
            info.config = Some(c.config());
            info
        })
        .collect();
    Ok(ApiAnswer::ok(
        ApiResponse::new(ConsumerListBody {
            paged: ApiPaged {
                total: total as i64,
                offset: offset as i64,
                limit: LIST_LIMIT as i64,
            },
            consumers: Some(page),
            ..ConsumerListBody::default()
        })
        .to_json(),
    ))
}

fn consumer_pause(
    js: &JetStream,
    jsa: &JsAccount,
    stream: &str,
    name: &str,
    body: &[u8],
) -> Result<ApiAnswer, ApiError> {
    let req = if body.is_empty() {
        ConsumerPauseRequest::default()
    } else {
        ConsumerPauseRequest::decode_request(body, Mode::Strict)?
    };
    let (_, c) = lookup(jsa, stream, name)?;
    let mut cfg = c.config();
    let before = cfg.pause_until;
    let now = Timestamp::now();
    // In UTC, as nats-server keeps and reports it (`req.PauseUntil.UTC()`).
    let until = req.pause_until.to_utc();
    // As nats-server: any non-zero time is kept in the config (one in the past pauses
    // nothing), and the API level the config needs is recorded again.
    cfg.pause_until = (!until.is_zero()).then_some(until);
    super::api::consumer_check::set_static_consumer_metadata(&mut cfg);
    c.update_config(cfg.clone())
        .map_err(ApiError::consumer_create)?;
    c.persist_meta().map_err(ApiError::consumer_create)?;
    let remaining = cfg.pause_until.map_or(0, |u| now.nanos_until(&u).max(0));
    // The advisory tells of a change: resuming a consumer that was not paused, or
    // pausing again to the same time, sends none (as nats-server).
    let changed = before.unwrap_or_default() != cfg.pause_until.unwrap_or_default();
    if changed && let Some(server) = js.server.upgrade() {
        let (s, _) = lookup(jsa, stream, name)?;
        let until = cfg.pause_until.unwrap_or_default();
        let (subject, body) = advisory::pause(stream, name, remaining > 0, until, s.domain());
        advisory::send_now(&server, &s.account, &subject, &body);
    }
    Ok(ApiAnswer::ok(
        ApiResponse::new(ConsumerPauseBody {
            paused: remaining > 0,
            pause_until: cfg.pause_until.unwrap_or_default(),
            pause_remaining: remaining,
        })
        .to_json(),
    ))
}

/// `CONSUMER.UNPIN`: end the pin of a `pinned_client` group (nats-server
/// `jsConsumerUnpinRequest`, its checks in its order); the next request without a pin id
/// gets a new one.
fn consumer_unpin(
    js: &JetStream,
    jsa: &JsAccount,
    stream: &str,
    name: &str,
    body: &[u8],
) -> Result<ApiAnswer, ApiError> {
    let req = ConsumerUnpinRequest::decode_request(body, Mode::Unmarshal)?;
    if req.group.is_empty() {
        return Err(ApiError::invalid_json("consumer group not specified"));
    }
    if !is_valid_group_name(&req.group) {
        return Err(ApiError::consumer_invalid_group_name());
    }
    let (s, c) = lookup(jsa, stream, name)?;
    if !c.config().priority_groups.contains(&req.group) {
        return Err(ApiError::consumer_invalid_priority_group());
    }
    let events = {
        let mut m = c.machine.lock();
        m.unpin();
        m.take_pin_events()
    };
    if let Some(server) = js.server.upgrade() {
        for ev in &events {
            let (subject, body) =
                advisory::GroupPin::of(&s.account.name, &s.name, name, s.domain(), ev);
            advisory::send_now(&server, &s.account, &subject, &body);
        }
    }
    c.wake();
    Ok(ApiAnswer::ok(
        ApiResponse::new(ConsumerUnpinBody {}).to_json(),
    ))
}

fn consumer_reset(
    jsa: &JsAccount,
    stream: &str,
    name: &str,
    body: &[u8],
) -> Result<ApiAnswer, ApiError> {
    let req = if body.is_empty() {
        ConsumerResetRequest::default()
    } else {
        ConsumerResetRequest::decode_request(body, Mode::Unmarshal)?
    };
    let (_, c) = lookup(jsa, stream, name)?;
    let seq = c
        .reset_to((req.seq != 0).then_some(req.seq))
        .map_err(ApiError::consumer_invalid_reset)?;
    let info = c.info();
    Ok(ApiAnswer::ok(
        ApiResponse::new(ConsumerResetBody {
            info: Some(info),
            reset_seq: seq,
        })
        .to_json(),
    ))
}
