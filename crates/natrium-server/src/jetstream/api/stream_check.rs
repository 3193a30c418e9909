//! Stream config defaults and validation, ported from nats-server's
//! `checkStreamCfgLocked`, `configUpdateCheckLocked` and the create/update handlers.
//!
//! Why a port rather than our own rules: clients rely on the exact error (code,
//! err_code and text) for each invalid config, and on the exact defaults showing up in
//! the returned config (`max_msgs: -1`, `duplicate_window: 120000000000`, ...). The
//! checks run in nats-server's order, so a config with several problems reports the
//! same first one.
//!
//! What is left to the caller (it needs server state): overlap with other streams'
//! subjects (10065), the mirror/source lookups (max message size, inherited
//! `mirror_direct`, cycle detection), delivery-prefix overlap with upstream subjects,
//! account/server resource limits, and the "already exists with a different config"
//! comparison. Subject-mapping destinations are checked only for basic well-formedness,
//! not with nats-server's full mapping-function grammar.

use std::collections::BTreeSet;

use super::errors::ApiError;
use super::stream::{
    DiscardPolicy, PersistMode, RetentionPolicy, StorageType, StreamConfig, StreamConfigRequest,
    StreamSource,
};
use super::time::go_duration_string;
use super::{
    MAX_DESCRIPTION_LEN, MAX_METADATA_LEN, MAX_NAME_LEN, META_REQUIRED_LEVEL, ServerLimits,
};
use super::{delete_dynamic_metadata, go_json::go_quote, is_valid_asset_name};
use crate::subject_mapping::{check_transform_dest, transform_dest_error};
use crate::sublist::{
    is_valid_subject, subject_is_literal, subject_is_subset_match, subjects_collide,
};

/// Default duplicate window: 2 minutes.
pub const DEFAULT_DUPLICATE_WINDOW: i64 = 120_000_000_000;
/// Most replicas a stream may have.
pub const MAX_REPLICAS: i64 = 5;
/// Shortest `max_age` and `duplicate_window` (100ms).
const MIN_WINDOW: i64 = 100_000_000;
/// Shortest subject delete marker TTL (1s).
const MIN_MARKER_TTL: i64 = 1_000_000_000;
/// The JetStream API prefix external API prefixes must not overlap.
const JS_API_PREFIX: &str = "$JS.API";

/// What the checks need to know beyond the config itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamCheckContext {
    /// The request's `pedantic` flag: refuse instead of adjusting.
    pub pedantic: bool,
    /// Server limits (only `duplicates` is used here).
    pub server: ServerLimits,
    /// The account requires streams to set `max_bytes` (for this config's tier/storage).
    pub max_bytes_required: bool,
    /// The account's largest allowed `max_bytes` for this storage type (<= 0: none).
    pub max_stream_bytes: i64,
}

fn invalid(text: impl std::fmt::Display) -> ApiError {
    ApiError::stream_invalid_config(text)
}

fn pedantic(text: &str) -> ApiError {
    ApiError::pedantic(text)
}

/// Go `IsValidPublishSubject`: a valid subject without wildcards.
fn is_valid_publish_subject(s: &str) -> bool {
    is_valid_subject(s.as_bytes()) && subject_is_literal(s.as_bytes())
}

/// Basic well-formedness of a subject transform (`ValidateMapping` /
/// `NewSubjectTransform` approximation): the source, if set, is a valid subject and the
/// destination, if it uses no mapping functions, is a valid subject.
fn transform_ok(src: &str, dest: &str) -> bool {
    if !src.is_empty() && !is_valid_subject(src.as_bytes()) {
        return false;
    }
    if dest.is_empty() || dest.contains("{{") || dest.contains('$') {
        return true;
    }
    is_valid_subject(dest.as_bytes())
}

/// Fills the defaults nats-server stores for a new stream config, without validating
/// (the non-pedantic path of `checkStreamCfgLocked`): replicas 1, the `-1` limits, the
/// duplicate window (2 minutes, capped by `max_age`), `subjects = [name]` for plain
/// streams, the flags subject delete markers and schedules force on, `republish.src = >`
/// and dropping an empty placement. Storage/retention/discard/compression defaults are
/// the Rust enums' defaults already.
pub fn set_stream_config_defaults(cfg: &mut StreamConfig) {
    set_defaults_with(cfg, &ServerLimits::default());
}

fn set_defaults_with(cfg: &mut StreamConfig, server: &ServerLimits) {
    if cfg.num_replicas == 0 {
        cfg.num_replicas = 1;
    }
    for v in [
        &mut cfg.max_msgs,
        &mut cfg.max_msgs_per_subject,
        &mut cfg.max_bytes,
        &mut cfg.max_consumers,
    ] {
        if *v == 0 || *v < -1 {
            *v = -1;
        }
    }
    if cfg.max_msg_size == 0 || cfg.max_msg_size < -1 {
        cfg.max_msg_size = -1;
    }
    if cfg.duplicate_window == 0 && cfg.mirror.is_none() && cfg.sources.is_empty() {
        let mut window = DEFAULT_DUPLICATE_WINDOW;
        if server.duplicates > 0 && window > server.duplicates {
            window = server.duplicates;
        }
        cfg.duplicate_window = if cfg.max_age != 0 && cfg.max_age < window {
            cfg.max_age
        } else {
            window
        };
    }
    if cfg.subject_delete_marker_ttl > 0 {
        cfg.allow_msg_ttl = true;
        if !cfg.allow_rollup_hdrs {
            cfg.allow_rollup_hdrs = true;
            cfg.deny_purge = false;
        }
    }
    if cfg.allow_msg_schedules && !cfg.allow_rollup_hdrs {
        cfg.allow_rollup_hdrs = true;
        cfg.deny_purge = false;
    }
    if cfg.subjects.is_empty() && cfg.mirror.is_none() && cfg.sources.is_empty() {
        cfg.subjects.push(cfg.name.clone());
    }
    if let Some(rp) = cfg.republish.as_mut()
        && rp.src.is_empty()
    {
        rp.src = ">".to_string();
    }
    if cfg
        .placement
        .as_ref()
        .is_some_and(|p| *p == Default::default())
    {
        cfg.placement = None;
    }
}

/// The handler checks of `STREAM.CREATE` that precede the config check: the name in the
/// subject must equal the config's (10056), no path separators (10128), a new stream
/// cannot be sealed, and `mirror_direct` needs a mirror.
pub fn check_stream_create_request(
    subject_stream: &str,
    req: &StreamConfigRequest,
) -> Result<(), ApiError> {
    if subject_stream != req.config.name {
        return Err(ApiError::stream_mismatch());
    }
    if subject_stream.contains(['\\', '/']) {
        return Err(ApiError::stream_name_contains_path_separators());
    }
    if req.config.sealed {
        return Err(invalid("stream configuration for create can not be sealed"));
    }
    if req.config.mirror_direct && req.config.mirror.is_none() {
        return Err(invalid("stream has no mirror but does have mirror direct"));
    }
    Ok(())
}

/// 10074 when a standalone server is asked for more than one replica (checked after
/// the config check on create and update).
pub fn check_stream_standalone_replicas(cfg: &StreamConfig) -> Result<(), ApiError> {
    if cfg.num_replicas > 1 {
        return Err(ApiError::stream_replicas_not_supported());
    }
    Ok(())
}

/// `checkStreamCfgLocked` minus the parts needing server state (see the module docs):
/// validates `config` and returns it with nats-server's defaults filled in.
pub fn check_stream_config(
    config: &StreamConfig,
    ctx: &StreamCheckContext,
) -> Result<StreamConfig, ApiError> {
    let pedantic_mode = ctx.pedantic;
    if !is_valid_asset_name(&config.name) {
        return Err(invalid(
            "stream name is required and can not contain '.', '*', '>', '\\', '/'",
        ));
    }
    if config.name.len() > MAX_NAME_LEN {
        return Err(invalid(format!(
            "stream name is too long, maximum allowed is {MAX_NAME_LEN}"
        )));
    }
    if config.description.len() > MAX_DESCRIPTION_LEN {
        return Err(invalid(format!(
            "stream description is too long, maximum allowed is {MAX_DESCRIPTION_LEN}"
        )));
    }
    let metadata_len: usize = config.metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
    if metadata_len > MAX_METADATA_LEN {
        return Err(invalid(format!(
            "stream metadata exceeds maximum size of {MAX_METADATA_LEN} bytes"
        )));
    }

    let mut cfg = config.clone();

    if cfg.num_replicas == 0 {
        cfg.num_replicas = 1;
    }
    if cfg.num_replicas > MAX_REPLICAS {
        return Err(invalid(format!("maximum replicas is {MAX_REPLICAS}")));
    }
    if cfg.num_replicas < 0 {
        return Err(ApiError::replicas_count_cannot_be_negative());
    }
    for (v, name) in [
        (&mut cfg.max_msgs, "max_msgs"),
        (&mut cfg.max_msgs_per_subject, "max_msgs_per_subject"),
        (&mut cfg.max_bytes, "max_bytes"),
    ] {
        if *v == 0 || *v < -1 {
            if pedantic_mode && *v < -1 {
                return Err(pedantic(&format!("{name} must be set to -1")));
            }
            *v = -1;
        }
    }
    if cfg.max_msg_size == 0 || cfg.max_msg_size < -1 {
        if pedantic_mode && cfg.max_msg_size < -1 {
            return Err(pedantic("max_msg_size must be set to -1"));
        }
        cfg.max_msg_size = -1;
    }
    if cfg.max_consumers == 0 || cfg.max_consumers < -1 {
        if pedantic_mode && cfg.max_consumers < -1 {
            return Err(pedantic("max_consumers must be set to -1"));
        }
        cfg.max_consumers = -1;
    }
    if cfg.max_age < 0 {
        return Err(invalid("max age can not be negative"));
    }
    if cfg.max_age != 0 && cfg.max_age < MIN_WINDOW {
        return Err(invalid("max age needs to be >= 100ms"));
    }

    let lim_dups = ctx.server.duplicates;
    if cfg.duplicate_window == 0 && cfg.mirror.is_none() && cfg.sources.is_empty() {
        let mut window = DEFAULT_DUPLICATE_WINDOW;
        if lim_dups > 0 && window > lim_dups {
            if pedantic_mode {
                return Err(pedantic(
                    "duplicate window limits are higher than current limits",
                ));
            }
            window = lim_dups;
        }
        if cfg.max_age != 0 && cfg.max_age < window {
            if pedantic_mode {
                return Err(pedantic("duplicate window cannot be bigger than max age"));
            }
            cfg.duplicate_window = cfg.max_age;
        } else {
            cfg.duplicate_window = window;
        }
    }
    if cfg.duplicate_window < 0 {
        return Err(invalid("duplicates window can not be negative"));
    }
    if cfg.max_age != 0 && cfg.duplicate_window > cfg.max_age {
        return Err(invalid("duplicates window can not be larger then max age"));
    }
    if lim_dups > 0 && cfg.duplicate_window > lim_dups {
        return Err(invalid(format!(
            "duplicates window can not be larger then server limit of {}",
            go_duration_string(lim_dups)
        )));
    }
    if cfg.duplicate_window > 0 && cfg.duplicate_window < MIN_WINDOW {
        return Err(invalid("duplicates window needs to be >= 100ms"));
    }

    if cfg.deny_purge && cfg.allow_rollup_hdrs {
        return Err(invalid("roll-ups require the purge permission"));
    }

    if cfg.allow_msg_counter {
        if cfg.discard == DiscardPolicy::New {
            return Err(invalid("counter stream cannot use discard new"));
        }
        if cfg.allow_msg_ttl {
            return Err(invalid("counter stream cannot use message TTLs"));
        }
        if cfg.allow_msg_schedules {
            return Err(invalid("counter stream cannot use message schedules"));
        }
        if cfg.retention != RetentionPolicy::Limits {
            return Err(invalid("counter stream can only use limits retention"));
        }
    }

    check_discard_new_per_subject(&cfg)?;

    if cfg.subject_delete_marker_ttl > 0 {
        if cfg.subject_delete_marker_ttl < MIN_MARKER_TTL {
            return Err(invalid(
                "subject delete marker TTL must be at least 1 second",
            ));
        }
        if !cfg.allow_msg_ttl {
            if pedantic_mode {
                return Err(invalid(
                    "subject delete marker cannot be set if message TTLs are disabled",
                ));
            }
            cfg.allow_msg_ttl = true;
        }
        if !cfg.allow_rollup_hdrs {
            if pedantic_mode {
                return Err(invalid(
                    "subject delete marker cannot be set if roll-ups are disabled",
                ));
            }
            cfg.allow_rollup_hdrs = true;
            cfg.deny_purge = false;
        }
    } else if cfg.subject_delete_marker_ttl < 0 {
        return Err(invalid("subject delete marker TTL must not be negative"));
    }

    if cfg.allow_msg_schedules {
        if cfg.discard == DiscardPolicy::New {
            return Err(invalid("message scheduling cannot use discard new"));
        }
        if !cfg.allow_rollup_hdrs {
            if pedantic_mode {
                return Err(invalid(
                    "message scheduling cannot be set if roll-ups are disabled",
                ));
            }
            cfg.allow_rollup_hdrs = true;
            cfg.deny_purge = false;
        }
    }

    if cfg.persist_mode == PersistMode::Async {
        if cfg.storage != StorageType::File {
            return Err(invalid(
                "async persist mode is only supported on file storage",
            ));
        }
        if cfg.num_replicas > 1 {
            return Err(invalid(
                "async persist mode is not supported on replicated streams",
            ));
        }
        if cfg.allow_atomic {
            return Err(invalid(
                "async persist mode is not supported with atomic batch publish",
            ));
        }
    }

    let mut delivery_prefixes: Vec<String> = Vec::new();
    let mut api_prefixes: Vec<String> = Vec::new();

    if let Some(mirror) = &cfg.mirror {
        check_mirror(&cfg, mirror, &mut delivery_prefixes, &mut api_prefixes)?;
    }

    if !cfg.sources.is_empty() && cfg.allow_msg_schedules {
        return Err(ApiError::source_with_msg_schedules());
    }
    check_sources(&cfg.sources, &mut delivery_prefixes, &mut api_prefixes)?;

    for pfx in &delivery_prefixes {
        if !is_valid_publish_subject(pfx) {
            return Err(ApiError::stream_invalid_external_delivery_subj(pfx));
        }
    }
    for pfx in &api_prefixes {
        if !is_valid_publish_subject(pfx) {
            return Err(invalid(format!(
                "stream external api prefix {} must be a valid subject without wildcards",
                go_quote(pfx)
            )));
        }
        if subjects_collide(pfx.as_bytes(), JS_API_PREFIX.as_bytes()) {
            return Err(ApiError::stream_external_api_overlap(pfx, JS_API_PREFIX));
        }
    }

    if cfg.subjects.is_empty() {
        if cfg.mirror.is_none() && cfg.sources.is_empty() {
            cfg.subjects.push(cfg.name.clone());
        }
    } else {
        if cfg.mirror.is_some() {
            return Err(ApiError::mirror_with_subjects());
        }
        check_subjects(&cfg)?;
    }

    if cfg.subjects.is_empty() && cfg.sources.is_empty() && cfg.mirror.is_none() {
        return Err(invalid(
            "stream needs at least one configured subject or be a source/mirror",
        ));
    }

    if ctx.max_bytes_required && cfg.max_bytes <= 0 {
        return Err(ApiError::stream_max_bytes_required());
    } else if ctx.max_stream_bytes > 0 && cfg.max_bytes > ctx.max_stream_bytes {
        return Err(ApiError::stream_max_stream_bytes_exceeded());
    }

    if let Some(tr) = &cfg.subject_transform {
        if !tr.src.is_empty() && !is_valid_subject(tr.src.as_bytes()) {
            return Err(ApiError::stream_transform_invalid_source(format!(
                "invalid subject {}",
                tr.src
            )));
        }
        if let Some(e) = transform_dest_error(&tr.src, &tr.dest) {
            return Err(ApiError::stream_transform_invalid_destination(e));
        }
        if !transform_ok(&tr.src, &tr.dest) {
            return Err(ApiError::stream_transform_invalid_destination(format!(
                "invalid subject {}",
                tr.dest
            )));
        }
    }

    if cfg.republish.is_some() {
        check_republish(&mut cfg, pedantic_mode)?;
    }

    if cfg
        .placement
        .as_ref()
        .is_some_and(|p| *p == Default::default())
    {
        cfg.placement = None;
    }
    if cfg
        .placement
        .as_ref()
        .is_some_and(|p| !p.preferred.is_empty())
    {
        return Err(invalid("preferred server not permitted in placement"));
    }

    Ok(cfg)
}

fn check_discard_new_per_subject(cfg: &StreamConfig) -> Result<(), ApiError> {
    if cfg.discard_new_per_subject {
        if cfg.discard != DiscardPolicy::New {
            return Err(invalid(
                "discard new per subject requires discard new policy to be set",
            ));
        }
        if cfg.max_msgs_per_subject <= 0 {
            return Err(invalid(
                "discard new per subject requires max msgs per subject > 0",
            ));
        }
    }
    Ok(())
}

fn check_mirror(
    cfg: &StreamConfig,
    mirror: &StreamSource,
    delivery_prefixes: &mut Vec<String>,
    api_prefixes: &mut Vec<String>,
) -> Result<(), ApiError> {
    if cfg.first_seq > 0 {
        return Err(ApiError::mirror_with_first_seq());
    }
    if !cfg.subjects.is_empty() {
        return Err(ApiError::mirror_with_subjects());
    }
    if !cfg.sources.is_empty() {
        return Err(ApiError::mirror_with_sources());
    }
    if cfg.allow_msg_counter {
        return Err(ApiError::mirror_with_counters());
    }
    if cfg.allow_atomic {
        return Err(ApiError::mirror_with_atomic_publish());
    }
    if cfg.allow_batched {
        return Err(ApiError::mirror_with_batch_publish());
    }
    if cfg.allow_msg_schedules {
        return Err(ApiError::mirror_with_msg_schedules());
    }
    if let Some(c) = &mirror.consumer
        && (!is_valid_asset_name(&c.name)
            || !is_valid_publish_subject(&c.deliver_subject)
            || mirror.opt_start_seq != 0
            || mirror.opt_start_time.is_some()
            || !mirror.filter_subject.is_empty())
    {
        return Err(ApiError::mirror_durable_consumer_cfg_invalid());
    }
    if !mirror.filter_subject.is_empty() && !mirror.subject_transforms.is_empty() {
        return Err(ApiError::mirror_multiple_filters_not_allowed());
    }
    if cfg.subject_delete_marker_ttl > 0 {
        return Err(invalid("subject delete markers forbidden on mirrors"));
    }
    for (outer, tr) in mirror.subject_transforms.iter().enumerate() {
        if !tr.src.is_empty() && !is_valid_subject(tr.src.as_bytes()) {
            return Err(ApiError::mirror_invalid_subject_filter(format!(
                "invalid subject {}",
                tr.src
            )));
        }
        if !transform_ok(&tr.src, &tr.dest) {
            return Err(ApiError::mirror_invalid_transform_destination(format!(
                "invalid subject {}",
                tr.dest
            )));
        }
        if let Some(why) = transform_dest_error(&tr.src, &tr.dest) {
            return Err(ApiError::mirror_invalid_transform_destination(why));
        }
        for (inner, other) in mirror.subject_transforms.iter().enumerate() {
            if inner != outer && subjects_collide(tr.src.as_bytes(), other.src.as_bytes()) {
                return Err(ApiError::mirror_overlapping_subject_filters());
            }
        }
    }
    match &mirror.external {
        None => {
            if !is_valid_asset_name(&mirror.name) {
                return Err(ApiError::mirror_invalid_stream_name());
            }
        }
        Some(ext) => {
            if !ext.deliver.is_empty() {
                delivery_prefixes.push(ext.deliver.clone());
            }
            if !ext.api.is_empty() {
                api_prefixes.push(ext.api.clone());
            }
        }
    }
    Ok(())
}

/// `StreamSource.composeIName`: what makes two sources duplicates.
pub(crate) fn source_index_name(src: &StreamSource) -> String {
    let mut iname = src.name.clone();
    if let Some(ext) = &src.external {
        // As nats-server: a hash of the API prefix (it shows in `Nats-Stream-Source`).
        iname.push(':');
        iname.push_str(&crate::jetstream::sourcing::short_hash(&ext.api));
    }
    if let Some(c) = &src.consumer {
        // A link through a durable consumer: `:C=` and a hash of its name.
        iname.push_str(":C=");
        iname.push_str(&crate::jetstream::sourcing::short_hash(&c.name));
    }
    let (source, destination) = if src.subject_transforms.is_empty() {
        let s = if src.filter_subject.is_empty() {
            ">".to_string()
        } else {
            src.filter_subject.clone()
        };
        (s, ">".to_string())
    } else {
        let or_all = |s: &str| {
            if s.is_empty() {
                ">".to_string()
            } else {
                s.to_string()
            }
        };
        let sources: Vec<String> = src
            .subject_transforms
            .iter()
            .map(|t| or_all(&t.src))
            .collect();
        let dests: Vec<String> = src
            .subject_transforms
            .iter()
            .map(|t| or_all(&t.dest))
            .collect();
        (sources.join("\u{c}"), dests.join("\u{c}"))
    };
    format!("{iname} {source} {destination}")
}

fn check_sources(
    sources: &[StreamSource],
    delivery_prefixes: &mut Vec<String>,
    api_prefixes: &mut Vec<String>,
) -> Result<(), ApiError> {
    let mut inames = BTreeSet::new();
    let mut cnames = BTreeSet::new();
    for src in sources {
        if !is_valid_asset_name(&src.name) {
            return Err(ApiError::source_invalid_stream_name());
        }
        if !inames.insert(source_index_name(src)) {
            return Err(ApiError::source_duplicate_detected());
        }
        if !src.filter_subject.is_empty() && !src.subject_transforms.is_empty() {
            return Err(ApiError::source_multiple_filters_not_allowed());
        }
        for tr in &src.subject_transforms {
            if !tr.src.is_empty() && !is_valid_subject(tr.src.as_bytes()) {
                return Err(ApiError::source_invalid_subject_filter(format!(
                    "invalid subject {}",
                    tr.src
                )));
            }
            if !transform_ok(&tr.src, &tr.dest) {
                return Err(ApiError::source_invalid_transform_destination(format!(
                    "invalid subject {}",
                    tr.dest
                )));
            }
            if let Some(why) = transform_dest_error(&tr.src, &tr.dest) {
                return Err(ApiError::source_invalid_transform_destination(why));
            }
        }
        for (outer, tr) in src.subject_transforms.iter().enumerate() {
            for (inner, other) in src.subject_transforms.iter().enumerate() {
                if inner != outer
                    && subject_is_subset_match(tr.src.as_bytes(), other.src.as_bytes())
                {
                    return Err(ApiError::source_overlapping_subject_filters());
                }
            }
        }
        if let Some(c) = &src.consumer {
            if !is_valid_asset_name(&c.name)
                || !is_valid_publish_subject(&c.deliver_subject)
                || src.opt_start_seq != 0
                || src.opt_start_time.is_some()
                || !src.filter_subject.is_empty()
            {
                return Err(ApiError::source_durable_consumer_cfg_invalid());
            }
            let mut cname = src.name.clone();
            if let Some(ext) = &src.external {
                cname.push(':');
                cname.push_str(&ext.api);
            }
            if !cnames.insert(format!("{cname} {}", c.name)) {
                return Err(ApiError::source_durable_consumer_duplicate_detected());
            }
        }
        if let Some(ext) = &src.external {
            if !ext.deliver.is_empty() {
                delivery_prefixes.push(ext.deliver.clone());
            }
            if !ext.api.is_empty() {
                api_prefixes.push(ext.api.clone());
            }
        }
    }
    Ok(())
}

fn check_subjects(cfg: &StreamConfig) -> Result<(), ApiError> {
    let mut seen = BTreeSet::new();
    for (i, subj) in cfg.subjects.iter().enumerate() {
        let sb = subj.as_bytes();
        if !is_valid_subject(sb) {
            return Err(invalid("invalid subject"));
        }
        if seen.contains(subj.as_str()) {
            return Err(invalid("duplicate subjects detected"));
        }
        if subj == ">" {
            if !cfg.no_ack {
                return Err(invalid("capturing all subjects requires no-ack to be true"));
            }
            if cfg.num_replicas != 1 {
                return Err(invalid("capturing all subjects requires replicas of 1"));
            }
        }
        if !cfg.no_ack {
            for ns in ["$JS.>", "$JSC.>", "$NRG.>"] {
                if subjects_collide(sb, ns.as_bytes())
                    && !subject_is_subset_match(sb, b"$JS.EVENT.>")
                {
                    return Err(invalid(
                        "subjects that overlap with jetstream api require no-ack to be true",
                    ));
                }
            }
            if subjects_collide(sb, b"$SYS.>") && !subject_is_subset_match(sb, b"$SYS.ACCOUNT.>") {
                return Err(invalid(
                    "subjects that overlap with system api require no-ack to be true",
                ));
            }
        }
        for other in &cfg.subjects[i + 1..] {
            if subjects_collide(other.as_bytes(), sb) {
                return Err(invalid(format!(
                    "subject {} overlaps with {}",
                    go_quote(subj),
                    go_quote(other)
                )));
            }
        }
        seen.insert(subj.as_str());
    }
    Ok(())
}

fn check_republish(cfg: &mut StreamConfig, pedantic_mode: bool) -> Result<(), ApiError> {
    let Some(mut rp) = cfg.republish.take() else {
        return Ok(());
    };
    if rp.src.is_empty() {
        if pedantic_mode {
            return Err(pedantic("republish source can not be empty"));
        }
        rp.src = ">".to_string();
    }
    if rp.dest == ">"
        && rp.src == ">"
        && cfg.subjects.len() == 1
        && let Some(tr) = &cfg.subject_transform
        && tr.src == cfg.subjects[0]
    {
        if pedantic_mode {
            return Err(pedantic("implicit republish based on subject transform"));
        }
        rp.src = tr.dest.clone();
        rp.dest = tr.dest.clone();
    }
    if cfg
        .subjects
        .iter()
        .any(|s| subjects_collide(rp.dest.as_bytes(), s.as_bytes()))
    {
        return Err(invalid(
            "stream configuration for republish destination forms a cycle",
        ));
    }
    // An empty destination is accepted and republishes nothing, as in nats-server.
    if !is_valid_subject(rp.src.as_bytes())
        || (!rp.dest.is_empty()
            && (!transform_ok(&rp.src, &rp.dest)
                || transform_dest_error(&rp.src, &rp.dest).is_some()))
    {
        return Err(invalid(format!(
            "stream configuration for republish with transform from '{}' to '{}' not valid",
            rp.src, rp.dest
        )));
    }
    cfg.republish = Some(rp);
    Ok(())
}

/// The first config field natrium accepts in nats-server's schema but does not act on
/// yet, when it is set to something other than its default (`None`: nothing unsupported
/// is in use). Absent, null, empty and `false` values are the defaults clients send.
pub fn unsupported_stream_field(cfg: &StreamConfig) -> Option<&'static str> {
    if cfg
        .republish
        .as_ref()
        .is_some_and(|rp| check_transform_dest(&rp.src, &rp.dest).is_err())
    {
        Some("republish (this mapping function)")
    } else if cfg
        .subject_transform
        .as_ref()
        .is_some_and(|tr| check_transform_dest(&tr.src, &tr.dest).is_err())
    {
        Some("subject_transform (this mapping function)")
    } else {
        None
    }
}

/// Refuses a create or update that sets a field natrium does not implement yet (see
/// [`unsupported_stream_field`]), so nothing is stored that would silently behave like a
/// plain stream. Runs after [`check_stream_config`], so bad values still get nats-server's
/// own errors first.
pub fn check_stream_supported(cfg: &StreamConfig) -> Result<(), ApiError> {
    match unsupported_stream_field(cfg) {
        Some(field) => Err(invalid(format!(
            "stream configuration field {field} is not supported by natrium yet"
        ))),
        None => Ok(()),
    }
}

/// The update-specific checks (`configUpdateCheckLocked` after `checkStreamCfg`):
/// `new` must already have passed [`check_stream_config`]. Returns the config to store,
/// with the adjustments a seal implies.
pub fn check_stream_update(
    old: &StreamConfig,
    new: StreamConfig,
    standalone: bool,
) -> Result<StreamConfig, ApiError> {
    let mut cfg = new;
    if cfg.name != old.name {
        return Err(invalid("stream configuration name must match original"));
    }
    if standalone && cfg.num_replicas > 1 {
        return Err(ApiError::stream_replicas_not_supported());
    }
    if cfg.storage != old.storage {
        return Err(invalid(
            "stream configuration update can not change storage type",
        ));
    }
    if cfg.retention != old.retention
        && (old.retention == RetentionPolicy::WorkQueue
            || cfg.retention == RetentionPolicy::WorkQueue)
    {
        return Err(invalid(
            "stream configuration update can not change retention policy to/from workqueue",
        ));
    }
    if !cfg.sealed && old.sealed {
        return Err(invalid(
            "stream configuration update can not unseal a sealed stream",
        ));
    }
    if !cfg.deny_delete && old.deny_delete {
        return Err(invalid(
            "stream configuration update can not cancel deny message deletes",
        ));
    }
    if !cfg.deny_purge && old.deny_purge {
        return Err(invalid(
            "stream configuration update can not cancel deny purge",
        ));
    }
    if cfg.mirror.is_some() && cfg.mirror != old.mirror {
        return Err(ApiError::stream_mirror_not_updatable());
    }
    check_discard_new_per_subject(&cfg)?;
    if old.allow_msg_ttl && !cfg.allow_msg_ttl {
        return Err(invalid("message TTL status can not be disabled"));
    }
    if cfg.allow_msg_counter != old.allow_msg_counter {
        return Err(invalid(
            "stream configuration update can not change message counter setting",
        ));
    }
    if old.allow_msg_schedules && !cfg.allow_msg_schedules {
        return Err(invalid("message schedules can not be disabled"));
    }
    if old.persist_mode != cfg.persist_mode {
        return Err(invalid(
            "stream configuration update can not change persist mode",
        ));
    }
    if cfg.sealed {
        cfg.max_age = 0;
        cfg.discard = DiscardPolicy::New;
        cfg.deny_delete = true;
        cfg.deny_purge = true;
        cfg.allow_rollup_hdrs = false;
    }
    Ok(cfg)
}

/// The API level a stream config needs (`setStaticStreamMetadata`): 1 for TTLs and
/// delete markers, 2 for counters, atomic batches, schedules and async persistence, 4
/// for fast batches.
pub fn required_api_level(cfg: &StreamConfig) -> i64 {
    let mut level = 0;
    if cfg.allow_msg_ttl || cfg.subject_delete_marker_ttl > 0 {
        level = level.max(1);
    }
    if cfg.allow_msg_counter
        || cfg.allow_atomic
        || cfg.allow_msg_schedules
        || cfg.persist_mode == PersistMode::Async
    {
        level = level.max(2);
    }
    if cfg.allow_batched {
        level = level.max(4);
    }
    level
}

/// `setStaticStreamMetadata`: drops dynamic keys and stores `_nats.req.level`. nats-server
/// applies it to the request right after decoding (before the config check).
pub fn set_static_stream_metadata(cfg: &mut StreamConfig) {
    delete_dynamic_metadata(&mut cfg.metadata);
    cfg.metadata.insert(
        META_REQUIRED_LEVEL.to_string(),
        required_api_level(cfg).to_string(),
    );
}

/// A copy of a stored config with `_nats.ver` / `_nats.level` added, for create,
/// update and info responses (`setDynamicStreamMetadata`). LIST responses use the
/// stored config as is.
pub fn with_dynamic_stream_metadata(cfg: &StreamConfig) -> StreamConfig {
    let mut c = cfg.clone();
    c.metadata = super::with_dynamic_metadata(&cfg.metadata);
    c
}
