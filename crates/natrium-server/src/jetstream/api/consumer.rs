//! Consumer API types: the consumer configuration and info, and the requests and
//! responses of `$JS.API.CONSUMER.*`, plus the pull request body.
//!
//! Why each struct mirrors a Go struct field for field: responses must match
//! nats-server byte for byte (see [`crate::jetstream::api`]); request bodies decode with
//! nats-server's rules through the [`GoStruct`] schemas at the end of this file.
//! Durations are `i64` nanoseconds, Go `int` is `i64`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::go_json::{self, DURATION, GoRequest, GoStruct, GoType, INT, Mode};
use super::omit::{is_false, is_zero_i64, is_zero_u64};
use super::stream::ClusterInfo;
use super::time::Timestamp;
use super::{ApiPaged, ResponseType, success_body};

/// `deliver_policy`: where a new consumer starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum DeliverPolicy {
    /// From the first message (`"all"`, the default; `"undefined"` also parses to it).
    #[default]
    #[serde(rename = "all")]
    All,
    /// From the last message (`"last"`).
    #[serde(rename = "last")]
    Last,
    /// Only messages stored after creation (`"new"`).
    #[serde(rename = "new")]
    New,
    /// From `opt_start_seq` (`"by_start_sequence"`).
    #[serde(rename = "by_start_sequence")]
    ByStartSequence,
    /// From `opt_start_time` (`"by_start_time"`).
    #[serde(rename = "by_start_time")]
    ByStartTime,
    /// The last message of every subject (`"last_per_subject"`).
    #[serde(rename = "last_per_subject")]
    LastPerSubject,
}

/// `ack_policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum AckPolicy {
    /// No acks (`"none"`; the request default when omitted).
    #[default]
    #[serde(rename = "none")]
    None,
    /// Acking a message acks all before it (`"all"`).
    #[serde(rename = "all")]
    All,
    /// Every message acked individually (`"explicit"`).
    #[serde(rename = "explicit")]
    Explicit,
    /// Acked by flow-control responses (`"flow_control"`, API level 4).
    #[serde(rename = "flow_control")]
    FlowControl,
}

/// `replay_policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplayPolicy {
    /// As fast as possible (`"instant"`, the default).
    #[default]
    Instant,
    /// With the original timing (`"original"`).
    Original,
}

/// `priority_policy` (ADR-42).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum PriorityPolicy {
    /// No priority groups (`"none"`; omitted from JSON).
    #[default]
    #[serde(rename = "none")]
    None,
    /// Pull requests may ask to be served only above some backlog (`"overflow"`).
    #[serde(rename = "overflow")]
    Overflow,
    /// One pinned client gets the messages (`"pinned_client"`).
    #[serde(rename = "pinned_client")]
    PinnedClient,
    /// Lower `priority` values are served first (`"prioritized"`).
    #[serde(rename = "prioritized")]
    Prioritized,
}

impl PriorityPolicy {
    /// Whether this is `None` (Go omits it then).
    pub fn is_none(&self) -> bool {
        *self == PriorityPolicy::None
    }
}

/// `action` of a create request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum ConsumerAction {
    /// Create or update (`""`, the default).
    #[default]
    #[serde(rename = "")]
    CreateOrUpdate,
    /// Fail if it exists with a different config (`"create"`).
    #[serde(rename = "create")]
    Create,
    /// Fail if it does not exist (`"update"`).
    #[serde(rename = "update")]
    Update,
}

/// A consumer's configuration (`ConsumerConfig`), as requested and as reported.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerConfig {
    /// Durable name; durables are not deleted for inactivity.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub durable_name: String,
    /// Consumer name (absent for legacy ephemerals).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Free text, at most 4 KiB.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Where to start.
    pub deliver_policy: DeliverPolicy,
    /// Start sequence for `by_start_sequence`.
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub opt_start_seq: u64,
    /// Start time for `by_start_time`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opt_start_time: Option<Timestamp>,
    /// Ack policy.
    pub ack_policy: AckPolicy,
    /// Redelivery timeout in ns (default 30s with acks).
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub ack_wait: i64,
    /// Maximum deliveries (-1 unlimited).
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub max_deliver: i64,
    /// Redelivery backoff in ns; the first value replaces `ack_wait`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backoff: Vec<i64>,
    /// Single subject filter.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub filter_subject: String,
    /// Several filters (exclusive with `filter_subject`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filter_subjects: Vec<String>,
    /// Replay policy.
    pub replay_policy: ReplayPolicy,
    /// Push delivery rate limit in bits per second.
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub rate_limit_bps: u64,
    /// Ack sampling (`"30%"`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sample_freq: String,
    /// Maximum waiting pull requests (default 512 for pull consumers).
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub max_waiting: i64,
    /// Maximum unacknowledged messages (default 1000 with acks).
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub max_ack_pending: i64,
    /// Push flow control.
    #[serde(skip_serializing_if = "is_false")]
    pub flow_control: bool,
    /// Deliver headers only.
    #[serde(skip_serializing_if = "is_false")]
    pub headers_only: bool,
    /// Largest pull batch.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub max_batch: i64,
    /// Longest pull expiry (ns).
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub max_expires: i64,
    /// Largest pull `max_bytes`.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub max_bytes: i64,
    /// Push delivery subject (empty for pull consumers).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub deliver_subject: String,
    /// Push queue group.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub deliver_group: String,
    /// Push idle heartbeat (ns).
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub idle_heartbeat: i64,
    /// Delete after this long without interest (ns; ephemerals default to 5s).
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub inactive_threshold: i64,
    /// Replicas, 0 = as the stream (always present).
    pub num_replicas: i64,
    /// Keep state in memory.
    #[serde(skip_serializing_if = "is_false")]
    pub mem_storage: bool,
    /// Internal direct consumer (mirrors/sources).
    #[serde(skip_serializing_if = "is_false")]
    pub direct: bool,
    /// Internal sourcing consumer.
    #[serde(skip_serializing_if = "is_false")]
    pub sourcing: bool,
    /// User metadata plus the server's `_nats.*` keys.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Paused until this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause_until: Option<Timestamp>,
    /// Priority group names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub priority_groups: Vec<String>,
    /// Priority policy (omitted when none).
    #[serde(skip_serializing_if = "PriorityPolicy::is_none")]
    pub priority_policy: PriorityPolicy,
    /// Pin TTL for `pinned_client` (ns; default 2 minutes).
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub priority_timeout: i64,
}

/// Body of `CONSUMER.CREATE` / `CONSUMER.DURABLE.CREATE` (`CreateConsumerRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CreateConsumerRequest {
    /// Must equal the stream in the subject.
    pub stream_name: String,
    /// The requested configuration.
    pub config: ConsumerConfig,
    /// Create, update or either.
    pub action: ConsumerAction,
    /// Refuse instead of silently adjusting values.
    #[serde(skip_serializing_if = "is_false")]
    pub pedantic: bool,
}

/// A consumer/stream sequence pair with last activity (`SequenceInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SequenceInfo {
    /// Consumer sequence.
    pub consumer_seq: u64,
    /// Stream sequence.
    pub stream_seq: u64,
    /// Last activity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_active: Option<Timestamp>,
}

/// State of one priority group (`PriorityGroupState`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PriorityGroupState {
    /// Group name.
    pub group: String,
    /// Current pin id.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pinned_client_id: String,
    /// When it was pinned; always present (Go's omitempty does not apply to structs),
    /// the zero time when unpinned.
    pub pinned_ts: Timestamp,
}

/// Config and state of a consumer (`ConsumerInfo`).
///
/// `stream_name`, `name`, `created`, the sequence infos, counters and `ts` are required
/// when parsing, so a response without them (an error) parses as "no info".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConsumerInfo {
    /// Stream name.
    pub stream_name: String,
    /// Consumer name (also for ephemerals whose config has none).
    pub name: String,
    /// Creation time.
    pub created: Timestamp,
    /// Configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ConsumerConfig>,
    /// Last delivered (`stream_seq` starts at the stream's first sequence − 1).
    pub delivered: SequenceInfo,
    /// Ack floor.
    pub ack_floor: SequenceInfo,
    /// Messages awaiting ack.
    pub num_ack_pending: i64,
    /// Messages redelivered at least once.
    pub num_redelivered: i64,
    /// Waiting pull requests.
    pub num_waiting: i64,
    /// Messages not yet delivered.
    pub num_pending: u64,
    /// Cluster information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterInfo>,
    /// A push consumer has an active subscriber.
    #[serde(default, skip_serializing_if = "is_false")]
    pub push_bound: bool,
    /// Paused.
    #[serde(default, skip_serializing_if = "is_false")]
    pub paused: bool,
    /// Time left in the pause (ns).
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub pause_remaining: i64,
    /// When this information was gathered.
    pub ts: Timestamp,
    /// Priority group states.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub priority_groups: Vec<PriorityGroupState>,
}

/// Body of `CONSUMER.NAMES` and `CONSUMER.LIST` (`JSApiConsumersRequest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumersRequest {
    /// Page offset.
    pub offset: i64,
}

/// Body of `CONSUMER.PAUSE` (`JSApiConsumerPauseRequest`); an empty body resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerPauseRequest {
    /// Pause until this time (zero time = resume).
    pub pause_until: Timestamp,
}

/// Body of `CONSUMER.UNPIN` (`JSApiConsumerUnpinRequest`; decoded with
/// [`Mode::Unmarshal`], unknown fields ignored).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerUnpinRequest {
    /// The priority group to unpin.
    pub group: String,
}

/// Body of `CONSUMER.RESET` (`JSApiConsumerResetRequest`; decoded with
/// [`Mode::Unmarshal`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerResetRequest {
    /// Sequence to reset to (0 = the ack floor).
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub seq: u64,
}

/// A JSON pull request (`JSApiConsumerGetNextRequest`, with `PriorityGroup` inlined).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NextRequest {
    /// Expiry (ns); 0 = none.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub expires: i64,
    /// Messages wanted (0 in JSON means whatever the handler defaults to).
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub batch: i64,
    /// Byte budget.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub max_bytes: i64,
    /// Return immediately when nothing is pending.
    #[serde(skip_serializing_if = "is_false")]
    pub no_wait: bool,
    /// Idle heartbeat (ns).
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub idle_heartbeat: i64,
    /// Priority group.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Overflow: only serve when this many messages are pending.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub min_pending: i64,
    /// Overflow: only serve when this many acks are pending.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub min_ack_pending: i64,
    /// Pin id.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Priority (0-9) for `prioritized`.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub priority: i64,
}

/// How a pull request body reads (nats-server `nextReqFromMsg`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextRequestBody {
    /// Empty body, or a body that is neither JSON nor an integer: batch 1, no expiry.
    Default,
    /// A bare integer: that batch size.
    Batch(i64),
    /// A JSON object.
    Json(NextRequest),
}

impl NextRequest {
    /// Interprets a pull request body like nats-server: whitespace-trimmed empty body →
    /// [`NextRequestBody::Default`]; starting with `{` → JSON decoded with
    /// `json.Unmarshal` rules; an integer (`strconv.Atoi`) → batch. The error is the
    /// text nats-server puts after `400 Bad Request - ` (a JSON error, or `heartbeat
    /// value too large` when `idle_heartbeat * 2 > expires`).
    pub fn parse_body(body: &[u8]) -> Result<NextRequestBody, String> {
        let trimmed = trim_go_space(body);
        if trimmed.is_empty() {
            return Ok(NextRequestBody::Default);
        }
        if trimmed[0] == b'{' {
            let req: NextRequest =
                go_json::decode(trimmed, Self::SCHEMA, Mode::Unmarshal).map_err(|e| e.0)?;
            if req.idle_heartbeat > 0 && req.idle_heartbeat.saturating_mul(2) > req.expires {
                return Err("heartbeat value too large".to_string());
            }
            return Ok(NextRequestBody::Json(req));
        }
        match std::str::from_utf8(trimmed).ok().and_then(parse_atoi) {
            Some(n) => Ok(NextRequestBody::Batch(n)),
            None => Ok(NextRequestBody::Default),
        }
    }
}

/// Go `strconv.Atoi`: optional sign, decimal digits.
fn parse_atoi(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i64>().ok()
}

/// Go `bytes.TrimSpace` (ASCII and Unicode white space).
fn trim_go_space(b: &[u8]) -> &[u8] {
    match std::str::from_utf8(b) {
        Ok(s) => s.trim().as_bytes(),
        Err(_) => b.trim_ascii(),
    }
}

/// `consumer_create_response`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerCreateBody {
    /// The consumer (absent on errors).
    #[serde(flatten)]
    pub info: Option<ConsumerInfo>,
}

impl ResponseType for ConsumerCreateBody {
    const TYPE: &'static str = "io.nats.jetstream.api.v1.consumer_create_response";
}

/// `consumer_info_response`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerInfoBody {
    /// The consumer (absent on errors).
    #[serde(flatten)]
    pub info: Option<ConsumerInfo>,
}

impl ResponseType for ConsumerInfoBody {
    const TYPE: &'static str = "io.nats.jetstream.api.v1.consumer_info_response";
}

success_body!(
    /// `consumer_delete_response`.
    ConsumerDeleteBody,
    "consumer_delete_response"
);

success_body!(
    /// `consumer_leader_stepdown_response`.
    ConsumerLeaderStepdownBody,
    "consumer_leader_stepdown_response"
);

/// `consumer_names_response`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerNamesBody {
    /// Paging.
    #[serde(flatten)]
    pub paged: ApiPaged,
    /// Names; nats-server sends `[]` on errors.
    pub consumers: Option<Vec<String>>,
}

impl ResponseType for ConsumerNamesBody {
    const TYPE: &'static str = "io.nats.jetstream.api.v1.consumer_names_response";
}

/// `consumer_list_response`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerListBody {
    /// Paging.
    #[serde(flatten)]
    pub paged: ApiPaged,
    /// Infos (config metadata without the dynamic keys); `[]` on errors.
    pub consumers: Option<Vec<ConsumerInfo>>,
    /// Consumers that did not answer in time (clustered).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    /// Offline consumers and why.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub offline: BTreeMap<String, String>,
}

impl ResponseType for ConsumerListBody {
    const TYPE: &'static str = "io.nats.jetstream.api.v1.consumer_list_response";
}

/// `consumer_pause_response` (`paused` and `pause_until` present even on errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerPauseBody {
    /// Whether the consumer is paused now.
    pub paused: bool,
    /// Pause deadline (zero time when resumed).
    pub pause_until: Timestamp,
    /// Time left (ns).
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub pause_remaining: i64,
}

impl ResponseType for ConsumerPauseBody {
    const TYPE: &'static str = "io.nats.jetstream.api.v1.consumer_pause_response";
}

/// `consumer_unpin_response` (no fields of its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConsumerUnpinBody {}

impl ResponseType for ConsumerUnpinBody {
    const TYPE: &'static str = "io.nats.jetstream.api.v1.consumer_unpin_response";
}

/// `consumer_reset_response`: consumer info plus `reset_seq`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerResetBody {
    /// The consumer after the reset.
    #[serde(flatten)]
    pub info: Option<ConsumerInfo>,
    /// The sequence it was reset to (present even on errors).
    pub reset_seq: u64,
}

impl ResponseType for ConsumerResetBody {
    const TYPE: &'static str = "io.nats.jetstream.api.v1.consumer_reset_response";
}

// ---------------------------------------------------------------------------------------
// Go schemas.

static CONSUMER_CONFIG_GO: GoStruct = GoStruct {
    name: "ConsumerConfig",
    fields: &[
        ("durable_name", GoType::String),
        ("name", GoType::String),
        ("description", GoType::String),
        ("deliver_policy", GoType::Enum(&go_json::DELIVER_POLICY)),
        ("opt_start_seq", GoType::Uint64),
        ("opt_start_time", GoType::Ptr(&GoType::Time)),
        ("ack_policy", GoType::Enum(&go_json::ACK_POLICY)),
        ("ack_wait", GoType::Int(&DURATION)),
        ("max_deliver", GoType::Int(&INT)),
        ("backoff", GoType::Slice(&GoType::Int(&DURATION))),
        ("filter_subject", GoType::String),
        ("filter_subjects", GoType::Slice(&GoType::String)),
        ("replay_policy", GoType::Enum(&go_json::REPLAY_POLICY)),
        ("rate_limit_bps", GoType::Uint64),
        ("sample_freq", GoType::String),
        ("max_waiting", GoType::Int(&INT)),
        ("max_ack_pending", GoType::Int(&INT)),
        ("flow_control", GoType::Bool),
        ("headers_only", GoType::Bool),
        ("max_batch", GoType::Int(&INT)),
        ("max_expires", GoType::Int(&DURATION)),
        ("max_bytes", GoType::Int(&INT)),
        ("deliver_subject", GoType::String),
        ("deliver_group", GoType::String),
        ("idle_heartbeat", GoType::Int(&DURATION)),
        ("inactive_threshold", GoType::Int(&DURATION)),
        ("num_replicas", GoType::Int(&INT)),
        ("mem_storage", GoType::Bool),
        ("direct", GoType::Bool),
        ("sourcing", GoType::Bool),
        ("metadata", GoType::Map(&GoType::String)),
        ("pause_until", GoType::Ptr(&GoType::Time)),
        ("priority_groups", GoType::Slice(&GoType::String)),
        ("priority_policy", GoType::Enum(&go_json::PRIORITY_POLICY)),
        ("priority_timeout", GoType::Int(&DURATION)),
    ],
};

impl GoRequest for CreateConsumerRequest {
    const SCHEMA: &'static GoStruct = &GoStruct {
        name: "CreateConsumerRequest",
        fields: &[
            ("stream_name", GoType::String),
            ("config", GoType::Struct(&CONSUMER_CONFIG_GO)),
            ("action", GoType::Enum(&go_json::CONSUMER_ACTION)),
            ("pedantic", GoType::Bool),
        ],
    };
}

impl GoRequest for ConsumersRequest {
    const SCHEMA: &'static GoStruct = &GoStruct {
        name: "JSApiConsumersRequest",
        fields: &[("offset", GoType::Int(&INT))],
    };
}

impl GoRequest for ConsumerPauseRequest {
    const SCHEMA: &'static GoStruct = &GoStruct {
        name: "JSApiConsumerPauseRequest",
        fields: &[("pause_until", GoType::Time)],
    };
}

impl GoRequest for ConsumerUnpinRequest {
    const SCHEMA: &'static GoStruct = &GoStruct {
        name: "JSApiConsumerUnpinRequest",
        fields: &[("group", GoType::String)],
    };
}

impl GoRequest for ConsumerResetRequest {
    const SCHEMA: &'static GoStruct = &GoStruct {
        name: "JSApiConsumerResetRequest",
        fields: &[("seq", GoType::Uint64)],
    };
}

impl GoRequest for NextRequest {
    const SCHEMA: &'static GoStruct = &GoStruct {
        name: "JSApiConsumerGetNextRequest",
        fields: &[
            ("expires", GoType::Int(&DURATION)),
            ("batch", GoType::Int(&INT)),
            ("max_bytes", GoType::Int(&INT)),
            ("no_wait", GoType::Bool),
            ("idle_heartbeat", GoType::Int(&DURATION)),
            ("group", GoType::String),
            ("min_pending", GoType::Int(&go_json::INT64)),
            ("min_ack_pending", GoType::Int(&go_json::INT64)),
            ("id", GoType::String),
            ("priority", GoType::Int(&INT)),
        ],
    };
}
