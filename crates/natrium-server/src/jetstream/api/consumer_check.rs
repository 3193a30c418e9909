//! Consumer config defaults and validation, ported from nats-server's
//! `setConsumerConfigDefaults`, `checkConsumerCfg`, the create handler's subject checks
//! and the work-queue rules of `addConsumerWithAssignment`.
//!
//! Why a port: the config a client gets back (`max_deliver: -1`, `ack_wait: 30s`,
//! `max_waiting: 512`, `max_ack_pending: 1000`, `inactive_threshold: 5s` for ephemerals)
//! and the error for each bad config are what client libraries test against. The checks
//! run in nats-server's order so the first reported problem is the same.
//!
//! Left to the caller (needs state): the stream lookup (10059), "already exists with a
//! different config" (10148) and "does not exist" (10149), the consumer-count limit
//! (10026), and the ephemeral name generation.

use super::account::AccountLimits;
use super::consumer::{
    AckPolicy, ConsumerConfig, CreateConsumerRequest, DeliverPolicy, PriorityPolicy,
};
use super::errors::ApiError;
use super::stream::{RetentionPolicy, StreamConfig};
use super::{MAX_DESCRIPTION_LEN, MAX_METADATA_LEN, META_REQUIRED_LEVEL, ServerLimits};
use super::{delete_dynamic_metadata, is_valid_asset_name};
use crate::sublist::{is_valid_subject, subject_is_literal, subject_is_subset_match};

/// Default `ack_wait` for explicit/all ack policies: 30s.
pub const DEFAULT_ACK_WAIT: i64 = 30_000_000_000;
/// Default `max_waiting` of pull consumers.
pub const DEFAULT_MAX_WAITING: i64 = 512;
/// Default `max_ack_pending` with acks.
pub const DEFAULT_MAX_ACK_PENDING: i64 = 1000;
/// `inactive_threshold` stamped on ephemerals that set none: 5s.
pub const DEFAULT_INACTIVE_THRESHOLD: i64 = 5_000_000_000;
/// Default `priority_timeout` of `pinned_client`: 2 minutes.
pub const DEFAULT_PINNED_TTL: i64 = 120_000_000_000;
/// Heartbeat forced by `ack_policy: flow_control` (nats-server `sourceHealthHB`): 1s.
pub const FLOW_CONTROL_HEARTBEAT: i64 = 1_000_000_000;

fn pedantic(text: &str) -> ApiError {
    ApiError::pedantic(text)
}

/// Whether the consumer is durable (`isDurableConsumer`).
pub fn is_durable(cfg: &ConsumerConfig) -> bool {
    !cfg.durable_name.is_empty()
}

/// Go `setConsumerConfigDefaults`: fills `max_deliver`, `max_waiting`, `ack_wait`,
/// `max_ack_pending` (clamped to the server and account limits, or taken from the
/// stream's `consumer_limits`), `inactive_threshold` from the stream's limits,
/// `max_batch` from the server limit, the pinned TTL, and the flow-control heartbeat;
/// resets negative values to their defaults. With `pedantic`, those adjustments are
/// errors instead.
pub fn set_consumer_config_defaults(
    cfg: &mut ConsumerConfig,
    stream: &StreamConfig,
    server: &ServerLimits,
    account: &AccountLimits,
    pedantic_mode: bool,
) -> Result<(), ApiError> {
    if cfg.max_deliver == 0 || cfg.max_deliver < -1 {
        if pedantic_mode && cfg.max_deliver < -1 {
            return Err(pedantic("max_deliver must be set to -1"));
        }
        cfg.max_deliver = -1;
    }
    if cfg.max_waiting < 0 {
        if pedantic_mode {
            return Err(pedantic("max_waiting must not be negative"));
        }
        cfg.max_waiting = 0;
    }
    if cfg.max_ack_pending < -1 {
        if pedantic_mode {
            return Err(pedantic("max_ack_pending must be set to -1"));
        }
        cfg.max_ack_pending = -1;
    }
    for (v, name) in [
        (&mut cfg.max_batch, "max_batch"),
        (&mut cfg.max_expires, "max_expires"),
        (&mut cfg.max_bytes, "max_bytes"),
        (&mut cfg.idle_heartbeat, "idle_heartbeat"),
        (&mut cfg.inactive_threshold, "inactive_threshold"),
        (&mut cfg.priority_timeout, "priority_timeout"),
    ] {
        if *v < 0 {
            if pedantic_mode {
                return Err(pedantic(&format!("{name} must not be negative")));
            }
            *v = 0;
        }
    }

    if cfg.deliver_subject.is_empty() && cfg.max_waiting == 0 {
        cfg.max_waiting = DEFAULT_MAX_WAITING;
    }
    if cfg.ack_wait == 0 && matches!(cfg.ack_policy, AckPolicy::Explicit | AckPolicy::All) {
        cfg.ack_wait = DEFAULT_ACK_WAIT;
    }
    if let Some(&first) = cfg.backoff.first() {
        if pedantic_mode && cfg.ack_wait != first {
            return Err(pedantic("first backoff value has to equal batch AckWait"));
        }
        cfg.ack_wait = first;
    }
    if cfg.max_ack_pending == 0 {
        if pedantic_mode && stream.consumer_limits.max_ack_pending > 0 {
            return Err(pedantic(
                "max_ack_pending must be set if it's configured in stream limits",
            ));
        }
        cfg.max_ack_pending = stream.consumer_limits.max_ack_pending;
    }
    if cfg.inactive_threshold == 0 {
        if pedantic_mode && stream.consumer_limits.inactive_threshold > 0 {
            return Err(pedantic(
                "inactive_threshold must be set if it's configured in stream limits",
            ));
        }
        cfg.inactive_threshold = stream.consumer_limits.inactive_threshold;
    }
    if cfg.max_ack_pending == 0 && cfg.ack_policy != AckPolicy::None {
        let mut pending = DEFAULT_MAX_ACK_PENDING;
        if server.max_ack_pending > 0 && server.max_ack_pending < pending {
            pending = server.max_ack_pending;
        }
        if account.max_ack_pending > 0 && account.max_ack_pending < pending {
            pending = account.max_ack_pending;
        }
        cfg.max_ack_pending = pending;
    }
    if cfg.deliver_subject.is_empty() && cfg.max_batch == 0 && server.max_request_batch > 0 {
        if pedantic_mode {
            return Err(pedantic(
                "max_request_batch must be set if it's JetStream limits are set",
            ));
        }
        cfg.max_batch = server.max_request_batch;
    }
    if cfg.priority_policy == PriorityPolicy::PinnedClient && cfg.priority_timeout == 0 {
        cfg.priority_timeout = DEFAULT_PINNED_TTL;
    }
    if cfg.ack_policy == AckPolicy::FlowControl && !pedantic_mode {
        cfg.flow_control = true;
        cfg.idle_heartbeat = FLOW_CONTROL_HEARTBEAT;
    }
    Ok(())
}

/// What nats-server stamps on a consumer when it is created, after the checks: an
/// ephemeral without `inactive_threshold` gets 5s (`updateInactiveThreshold`).
pub fn finalize_new_consumer_config(cfg: &mut ConsumerConfig) {
    if !is_durable(cfg) && cfg.inactive_threshold <= 0 {
        cfg.inactive_threshold = DEFAULT_INACTIVE_THRESHOLD;
    }
}

/// Go `validGroupName`: `^[a-zA-Z0-9/_=-]{1,16}$`.
pub fn is_valid_group_name(g: &str) -> bool {
    (1..=16).contains(&g.len())
        && g.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'=' | b'-'))
}

/// Go `checkConsumerCfg` (after [`set_consumer_config_defaults`]).
pub fn check_consumer_config(
    cfg: &ConsumerConfig,
    server: &ServerLimits,
    stream: &StreamConfig,
    account: &AccountLimits,
    is_recovering: bool,
) -> Result<(), ApiError> {
    if !cfg.name.is_empty() && !is_valid_asset_name(&cfg.name) {
        return Err(ApiError::stream_invalid_config(
            "consumer name can not contain '.', '*', '>', '\\', '/'",
        ));
    }
    if !cfg.durable_name.is_empty() && !is_valid_asset_name(&cfg.durable_name) {
        return Err(ApiError::stream_invalid_config(
            "consumer durable name can not contain '.', '*', '>', '\\', '/'",
        ));
    }
    if cfg.num_replicas > 0 && cfg.num_replicas > stream.num_replicas {
        return Err(ApiError::consumer_replicas_exceeds_stream());
    }
    if cfg.num_replicas < 0 {
        return Err(ApiError::replicas_count_cannot_be_negative());
    }
    if matches!(
        stream.retention,
        RetentionPolicy::Interest | RetentionPolicy::WorkQueue
    ) && !is_recovering
        && cfg.num_replicas != 0
        && cfg.num_replicas != stream.num_replicas
    {
        return Err(ApiError::consumer_replicas_should_match_stream());
    }
    if cfg.backoff.iter().any(|b| *b < 0) {
        return Err(ApiError::consumer_back_off_negative());
    }
    if cfg.ack_wait < 0 {
        return Err(ApiError::consumer_ack_wait_negative());
    }
    if cfg.ack_policy == AckPolicy::FlowControl {
        if cfg.deliver_subject.is_empty() {
            return Err(ApiError::consumer_ack_fc_requires_push());
        }
        if !cfg.flow_control {
            return Err(ApiError::consumer_ack_fc_requires_fc());
        }
        if cfg.idle_heartbeat != FLOW_CONTROL_HEARTBEAT {
            return Err(ApiError::stream_invalid_config(
                "flow control ack policy heartbeat needs to be 1s",
            ));
        }
        if cfg.max_ack_pending <= 0 {
            return Err(ApiError::consumer_ack_fc_requires_max_ack_pending());
        }
        if cfg.ack_wait != 0 || !cfg.backoff.is_empty() {
            return Err(ApiError::consumer_ack_fc_requires_no_ack_wait());
        }
        if cfg.max_deliver > 0 {
            return Err(ApiError::consumer_ack_fc_requires_no_max_deliver());
        }
    }
    let backoffs = cfg.backoff.len() as i64;
    if backoffs > 0 && cfg.max_deliver != -1 && backoffs > cfg.max_deliver {
        return Err(ApiError::consumer_max_deliver_backoff());
    }
    if cfg.description.len() > MAX_DESCRIPTION_LEN {
        return Err(ApiError::consumer_description_too_long(MAX_DESCRIPTION_LEN));
    }

    if !cfg.deliver_subject.is_empty() {
        let ds = cfg.deliver_subject.as_bytes();
        if !subject_is_literal(ds) {
            return Err(ApiError::consumer_deliver_to_wildcards());
        }
        if !is_valid_subject(ds) {
            return Err(ApiError::consumer_invalid_deliver_subject());
        }
        if stream
            .subjects
            .iter()
            .any(|s| subject_is_subset_match(ds, s.as_bytes()))
        {
            return Err(ApiError::consumer_deliver_cycle());
        }
        if cfg.max_waiting != 0 {
            return Err(ApiError::consumer_push_max_waiting());
        }
        if cfg.max_ack_pending > 0 && cfg.ack_policy == AckPolicy::None {
            return Err(ApiError::consumer_max_pending_ack_policy_required());
        }
        if cfg.idle_heartbeat > 0 && cfg.idle_heartbeat < 100_000_000 {
            return Err(ApiError::consumer_small_heartbeat());
        }
    } else {
        if cfg.ack_policy == AckPolicy::None && stream.retention == RetentionPolicy::WorkQueue {
            return Err(ApiError::consumer_pull_requires_ack());
        }
        if cfg.rate_limit_bps > 0 {
            return Err(ApiError::consumer_pull_with_rate_limit());
        }
        if cfg.max_waiting < 0 {
            return Err(ApiError::consumer_max_waiting_negative());
        }
        if cfg.idle_heartbeat > 0 {
            return Err(ApiError::consumer_hb_requires_push());
        }
        if cfg.flow_control {
            return Err(ApiError::consumer_fc_requires_push());
        }
        if cfg.max_batch < 0 {
            return Err(ApiError::consumer_max_request_batch_negative());
        }
        if cfg.max_expires != 0 && cfg.max_expires < 1_000_000 {
            return Err(ApiError::consumer_max_request_expires_too_small());
        }
        if server.max_request_batch > 0 && cfg.max_batch > server.max_request_batch {
            return Err(ApiError::consumer_max_request_batch_exceeded(
                server.max_request_batch,
            ));
        }
    }
    if server.max_ack_pending > 0 && cfg.max_ack_pending > server.max_ack_pending {
        return Err(ApiError::consumer_max_pending_ack_excess(
            server.max_ack_pending,
        ));
    }
    if account.max_ack_pending > 0 && cfg.max_ack_pending > account.max_ack_pending {
        return Err(ApiError::consumer_max_pending_ack_excess(
            account.max_ack_pending,
        ));
    }
    let limits = &stream.consumer_limits;
    if limits.max_ack_pending > 0 && cfg.max_ack_pending > limits.max_ack_pending {
        return Err(ApiError::consumer_max_pending_ack_excess(
            limits.max_ack_pending,
        ));
    }
    if limits.inactive_threshold > 0 && cfg.inactive_threshold > limits.inactive_threshold {
        // Go formats the limit as a time.Duration: `%v` prints `1m0s`, not nanoseconds.
        return Err(ApiError::consumer_inactive_threshold_excess(
            super::time::go_duration_string(limits.inactive_threshold),
        ));
    }

    if cfg.direct {
        if cfg.deliver_subject.is_empty() {
            return Err(ApiError::consumer_direct_requires_push());
        }
        if is_durable(cfg) {
            return Err(ApiError::consumer_direct_requires_ephemeral());
        }
    }

    if !cfg.filter_subject.is_empty() && !cfg.filter_subjects.is_empty() {
        return Err(ApiError::consumer_duplicate_filter_subjects());
    }
    if !cfg.filter_subject.is_empty() && !is_valid_subject(cfg.filter_subject.as_bytes()) {
        return Err(ApiError::stream_invalid_config("invalid subject"));
    }
    if cfg.filter_subjects.iter().any(String::is_empty) {
        return Err(ApiError::consumer_empty_filter());
    }
    let filters = subject_filters(cfg);
    for (outer, subject) in filters.iter().enumerate() {
        if !is_valid_subject(subject.as_bytes()) {
            return Err(ApiError::stream_invalid_config("invalid subject"));
        }
        for (inner, other) in filters.iter().enumerate() {
            if inner != outer && subject_is_subset_match(subject.as_bytes(), other.as_bytes()) {
                return Err(ApiError::consumer_overlapping_subject_filters());
            }
        }
    }

    check_deliver_policy(cfg)?;

    if !cfg.sample_freq.is_empty() {
        let s = cfg
            .sample_freq
            .strip_suffix('%')
            .unwrap_or(&cfg.sample_freq);
        match parse_go_atoi(s) {
            Ok(v) if v >= 0 => {}
            // A negative number passes Atoi, so Go's `err` is nil here.
            Ok(_) => return Err(ApiError::consumer_invalid_sampling("<nil>")),
            Err(e) => return Err(ApiError::consumer_invalid_sampling(e)),
        }
    }

    if cfg.flow_control && cfg.idle_heartbeat == 0 {
        return Err(ApiError::consumer_with_flow_control_needs_heartbeats());
    }
    if !cfg.durable_name.is_empty() && !cfg.name.is_empty() && cfg.name != cfg.durable_name {
        return Err(ApiError::consumer_create_durable_and_name_mismatch());
    }
    let metadata_len: usize = cfg.metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
    if metadata_len > MAX_METADATA_LEN {
        return Err(ApiError::consumer_metadata_length(format!(
            "{}KB",
            MAX_METADATA_LEN / 1024
        )));
    }

    if cfg.priority_policy != PriorityPolicy::None {
        if !cfg.deliver_subject.is_empty() {
            return Err(ApiError::consumer_push_with_priority_group());
        }
        if cfg.priority_groups.is_empty() {
            return Err(ApiError::consumer_priority_policy_without_group());
        }
        for g in &cfg.priority_groups {
            if g.is_empty() {
                return Err(ApiError::consumer_empty_group_name());
            }
            if !is_valid_group_name(g) {
                return Err(ApiError::consumer_invalid_group_name());
            }
        }
    } else {
        if !cfg.priority_groups.is_empty() {
            return Err(ApiError::consumer_priority_group_with_policy_none());
        }
        if cfg.priority_timeout > 0 {
            return Err(ApiError::consumer_pinned_ttl_without_priority_policy_none());
        }
    }

    if stream
        .placement
        .as_ref()
        .is_some_and(|p| !p.preferred.is_empty())
    {
        return Err(ApiError::stream_invalid_config(
            "preferred server not permitted in placement",
        ));
    }
    Ok(())
}

/// Go `strconv.Atoi` with its error text (`strconv.Atoi: parsing "x": invalid syntax`).
fn parse_go_atoi(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "strconv.Atoi: parsing {}: invalid syntax",
            super::go_json::go_quote(s)
        ));
    }
    s.parse::<i64>().map_err(|_| {
        format!(
            "strconv.Atoi: parsing {}: value out of range",
            super::go_json::go_quote(s)
        )
    })
}

/// `filter_subject` and `filter_subjects` as one list (`gatherSubjectFilters`).
pub fn subject_filters(cfg: &ConsumerConfig) -> Vec<String> {
    let mut v = Vec::with_capacity(1 + cfg.filter_subjects.len());
    if !cfg.filter_subject.is_empty() {
        v.push(cfg.filter_subject.clone());
    }
    v.extend(cfg.filter_subjects.iter().cloned());
    v
}

fn check_deliver_policy(cfg: &ConsumerConfig) -> Result<(), ApiError> {
    let bad_start = |dp: &str, start: &str| {
        ApiError::consumer_invalid_policy(format!(
            "consumer delivery policy is deliver {dp}, but optional start {start} is also set"
        ))
    };
    let not_set = |dp: &str, what: &str| {
        ApiError::consumer_invalid_policy(format!(
            "consumer delivery policy is deliver {dp}, but optional {what} is not set"
        ))
    };
    let seq = cfg.opt_start_seq > 0;
    let time = cfg.opt_start_time.is_some();
    match cfg.deliver_policy {
        DeliverPolicy::All
        | DeliverPolicy::Last
        | DeliverPolicy::New
        | DeliverPolicy::LastPerSubject => {
            let dp = match cfg.deliver_policy {
                DeliverPolicy::All => "all",
                DeliverPolicy::Last => "last",
                DeliverPolicy::New => "new",
                _ => "last per subject",
            };
            if seq {
                return Err(bad_start(dp, "sequence"));
            }
            if time {
                return Err(bad_start(dp, "time"));
            }
            if cfg.deliver_policy == DeliverPolicy::LastPerSubject
                && cfg.filter_subject.is_empty()
                && cfg.filter_subjects.is_empty()
            {
                return Err(not_set(dp, "filter subject"));
            }
        }
        DeliverPolicy::ByStartSequence => {
            if !seq {
                return Err(not_set("by start sequence", "start sequence"));
            }
            if time {
                return Err(bad_start("by start sequence", "time"));
            }
        }
        DeliverPolicy::ByStartTime => {
            if !time {
                return Err(not_set("by start time", "start time"));
            }
            if cfg.opt_start_seq != 0 {
                return Err(bad_start("by start time", "start sequence"));
            }
        }
    }
    Ok(())
}

/// The work-queue rules of consumer creation (after the limit checks): explicit (or
/// flow-control) acks, deliver-all, and filters that do not overlap any other
/// consumer's (`partitionUnique`). `others` are the other consumers' filter lists (an
/// empty list = unfiltered). Direct and sourcing consumers are exempt.
pub fn check_workqueue_consumer(
    cfg: &ConsumerConfig,
    others: &[Vec<String>],
) -> Result<(), ApiError> {
    if cfg.direct || cfg.sourcing {
        return Ok(());
    }
    if !matches!(cfg.ack_policy, AckPolicy::Explicit | AckPolicy::FlowControl) {
        return Err(ApiError::consumer_wq_requires_explicit_ack());
    }
    if cfg.deliver_policy != DeliverPolicy::All {
        return Err(ApiError::consumer_wq_consumer_not_deliver_all());
    }
    if !others.is_empty() {
        let filters = subject_filters(cfg);
        if filters.is_empty() {
            return Err(ApiError::consumer_wq_multiple_unfiltered());
        }
        if !partition_unique(&filters, others) {
            return Err(ApiError::consumer_wq_consumer_not_unique());
        }
    }
    Ok(())
}

/// Whether none of `filters` overlaps (either way) a filter of the other consumers; an
/// unfiltered other consumer overlaps everything.
pub fn partition_unique(filters: &[String], others: &[Vec<String>]) -> bool {
    for f in filters {
        for other in others {
            if other.is_empty() {
                return false;
            }
            for o in other {
                if subject_is_subset_match(f.as_bytes(), o.as_bytes())
                    || subject_is_subset_match(o.as_bytes(), f.as_bytes())
                {
                    return false;
                }
            }
        }
    }
    true
}

/// The forms of the consumer create subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerCreateSubject {
    /// `$JS.API.CONSUMER.CREATE.<stream>`: ephemeral unless the body names it.
    Legacy {
        /// Stream token.
        stream: String,
    },
    /// `$JS.API.CONSUMER.CREATE.<stream>.<consumer>[.<filter...>]`.
    Named {
        /// Stream token.
        stream: String,
        /// Consumer token.
        consumer: String,
        /// The filter tokens joined, if any.
        filter: Option<String>,
    },
    /// `$JS.API.CONSUMER.DURABLE.CREATE.<stream>.<durable>`.
    Durable {
        /// Stream token.
        stream: String,
        /// Durable token (`None` if the subject has the wrong token count).
        durable: Option<String>,
    },
}

impl ConsumerCreateSubject {
    /// Parses a create subject; `None` for fewer than five tokens (nats-server ignores
    /// such requests without a response).
    pub fn parse(subject: &str) -> Option<ConsumerCreateSubject> {
        let tokens: Vec<&str> = subject.split('.').collect();
        if tokens.len() < 5 {
            return None;
        }
        if tokens.len() == 5 {
            return Some(ConsumerCreateSubject::Legacy {
                stream: tokens[4].to_string(),
            });
        }
        if tokens[3] == "DURABLE" {
            return Some(ConsumerCreateSubject::Durable {
                stream: tokens.get(5).map(|s| s.to_string()).unwrap_or_default(),
                durable: (tokens.len() == 7).then(|| tokens[6].to_string()),
            });
        }
        Some(ConsumerCreateSubject::Named {
            stream: tokens[4].to_string(),
            consumer: tokens[5].to_string(),
            filter: (tokens.len() > 6).then(|| tokens[6..].join(".")),
        })
    }

    /// The create handler's checks between decoding and the config checks, in
    /// nats-server's order; sets `config.name` as nats-server does for durable and
    /// named forms.
    pub fn check(&self, req: &mut CreateConsumerRequest) -> Result<(), ApiError> {
        let (stream, consumer) = match self {
            ConsumerCreateSubject::Legacy { stream } => (stream.as_str(), req.config.name.clone()),
            ConsumerCreateSubject::Named {
                stream, consumer, ..
            } => (stream.as_str(), consumer.clone()),
            ConsumerCreateSubject::Durable { durable: None, .. } => {
                return Err(ApiError::consumer_durable_name_not_in_subject());
            }
            ConsumerCreateSubject::Durable {
                stream,
                durable: Some(d),
            } => (stream.as_str(), d.clone()),
        };
        if stream != req.stream_name {
            return Err(ApiError::stream_mismatch());
        }
        if consumer.contains(['\\', '/']) {
            return Err(ApiError::consumer_name_contains_path_separators());
        }
        match self {
            ConsumerCreateSubject::Durable { .. } => {
                if req.config.durable_name.is_empty() {
                    return Err(ApiError::consumer_durable_name_not_set());
                }
                if consumer != req.config.durable_name {
                    return Err(ApiError::consumer_durable_name_not_match_subject());
                }
                req.config.name = consumer;
            }
            ConsumerCreateSubject::Named { filter, .. } => {
                if !req.config.durable_name.is_empty() && consumer != req.config.durable_name {
                    return Err(ApiError::consumer_durable_name_not_match_subject());
                }
                req.config.name = consumer;
                if let Some(f) = filter {
                    if !req.config.filter_subjects.is_empty() {
                        return Err(ApiError::consumer_multiple_filters_not_allowed());
                    }
                    if req.config.filter_subject != *f {
                        return Err(ApiError::consumer_create_filter_subject_mismatch());
                    }
                }
            }
            ConsumerCreateSubject::Legacy { .. } => {
                if !req.config.durable_name.is_empty() {
                    return Err(ApiError::consumer_ephemeral_with_durable_name());
                }
            }
        }
        Ok(())
    }
}

/// 10074 for `num_replicas > 1` on a standalone server (checked by the create handler
/// after the subject checks).
pub fn check_consumer_standalone_replicas(cfg: &ConsumerConfig) -> Result<(), ApiError> {
    if cfg.num_replicas > 1 {
        return Err(ApiError::stream_replicas_not_supported());
    }
    Ok(())
}

/// The API level a consumer config needs (`setStaticConsumerMetadata`): 1 for pause
/// and priority groups, 4 for flow-control acks.
pub fn required_api_level(cfg: &ConsumerConfig) -> i64 {
    let mut level = 0;
    if cfg.pause_until.is_some_and(|t| !t.is_zero()) {
        level = level.max(1);
    }
    if cfg.priority_policy != PriorityPolicy::None
        || cfg.priority_timeout != 0
        || !cfg.priority_groups.is_empty()
    {
        level = level.max(1);
    }
    if cfg.ack_policy == AckPolicy::FlowControl {
        level = level.max(4);
    }
    level
}

/// `setStaticConsumerMetadata`: drops dynamic keys and stores `_nats.req.level`.
pub fn set_static_consumer_metadata(cfg: &mut ConsumerConfig) {
    delete_dynamic_metadata(&mut cfg.metadata);
    cfg.metadata.insert(
        META_REQUIRED_LEVEL.to_string(),
        required_api_level(cfg).to_string(),
    );
}

/// A copy with `_nats.ver` / `_nats.level` added, for create/info responses.
pub fn with_dynamic_consumer_metadata(cfg: &ConsumerConfig) -> ConsumerConfig {
    let mut c = cfg.clone();
    c.metadata = super::with_dynamic_metadata(&cfg.metadata);
    c
}
