//! Stream API types: the stream configuration, info and state, and the requests and
//! responses of `$JS.API.STREAM.*`.
//!
//! Why each struct mirrors a Go struct field for field: the JSON must match nats-server
//! byte for byte (see the module docs of [`crate::jetstream::api`]), so fields are in Go
//! declaration order and `skip_serializing_if` is present exactly where Go says
//! `omitempty`. Durations are `i64` nanoseconds (Go `time.Duration`), Go `int` is `i64`.
//! Request structs also carry a [`GoStruct`] schema so bodies decode with nats-server's
//! rules and error texts ([`crate::jetstream::api::go_json`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::errors::ApiError;
use super::go_json::{self, DURATION, GoRequest, GoStruct, GoType, INT, INT32, INT64};
use super::omit::{is_false, is_zero_i32, is_zero_i64, is_zero_u64};
use super::time::{Timestamp, base64_bytes};
use super::{ApiPaged, ResponseType, success_body};

/// `retention`: when messages may be removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetentionPolicy {
    /// Keep messages until a limit removes them (`"limits"`, the default).
    #[default]
    Limits,
    /// Keep messages while some consumer has not acknowledged them (`"interest"`).
    Interest,
    /// Remove a message once one consumer acknowledged it (`"workqueue"`).
    WorkQueue,
}

/// `discard`: what a full stream does with a new message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiscardPolicy {
    /// Remove the oldest messages (`"old"`, the default).
    #[default]
    Old,
    /// Refuse the new message (`"new"`).
    New,
}

/// `storage`: where messages are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageType {
    /// On disk (`"file"`, the default).
    #[default]
    File,
    /// In memory (`"memory"`).
    Memory,
}

/// `compression`: on-disk compression of file stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// `"none"`, the default.
    #[default]
    None,
    /// `"s2"`.
    S2,
}

/// `persist_mode` (API level 2): when a PubAck is sent relative to the disk write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PersistMode {
    /// Acknowledge after the write (`"default"`; omitted from JSON).
    #[default]
    Default,
    /// Acknowledge before the write is flushed (`"async"`).
    Async,
}

impl PersistMode {
    /// Whether this is the default (Go omits it then).
    pub fn is_default(&self) -> bool {
        *self == PersistMode::Default
    }
}

/// `placement`: cluster and tags the stream's peers are picked from.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Placement {
    /// Cluster name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    /// Server tags that peers must have.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Preferred leader (only accepted on stepdown requests).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub preferred: String,
}

/// A subject transform (`{src, dest}`), used by streams and sources.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SubjectTransform {
    /// Subjects the transform applies to.
    pub src: String,
    /// Destination mapping.
    pub dest: String,
}

/// `republish`: re-publish stored messages to another subject.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RePublish {
    /// Which stored subjects to republish (empty means `>`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub src: String,
    /// Destination mapping.
    pub dest: String,
    /// Republish the headers only.
    #[serde(skip_serializing_if = "is_false")]
    pub headers_only: bool,
}

/// `external`: an upstream stream in another account or domain.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ExternalStream {
    /// API prefix to reach the other JetStream (`$JS.<domain>.API`).
    pub api: String,
    /// Delivery prefix.
    pub deliver: String,
}

/// `consumer`: a durable consumer to use for sourcing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamConsumerSource {
    /// Durable consumer name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Its delivery subject.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub deliver_subject: String,
}

/// A mirror or source definition (`StreamSource`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamSource {
    /// Upstream stream name.
    pub name: String,
    /// Start at this upstream sequence.
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub opt_start_seq: u64,
    /// Start at this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opt_start_time: Option<Timestamp>,
    /// Only subjects matching this filter.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub filter_subject: String,
    /// Filters with transforms (exclusive with `filter_subject`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subject_transforms: Vec<SubjectTransform>,
    /// Upstream in another account/domain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalStream>,
    /// Durable consumer to source through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer: Option<StreamConsumerSource>,
}

/// `consumer_limits`: defaults and caps for the stream's consumers. Always present in
/// the config JSON, as `{}` when empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerLimits {
    /// Default and maximum `inactive_threshold` (ns).
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub inactive_threshold: i64,
    /// Default and maximum `max_ack_pending`.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub max_ack_pending: i64,
}

/// A stream's configuration (`StreamConfig`), as requested and as reported.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamConfig {
    /// Stream name; must equal the name in the request subject.
    pub name: String,
    /// Free text, at most 4 KiB.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Subjects stored; defaults to `[name]` for streams that neither mirror nor source.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    /// Retention policy.
    pub retention: RetentionPolicy,
    /// Maximum consumers (-1 unlimited).
    pub max_consumers: i64,
    /// Maximum messages (-1 unlimited).
    pub max_msgs: i64,
    /// Maximum bytes (-1 unlimited).
    pub max_bytes: i64,
    /// Maximum age in ns (0 unlimited).
    pub max_age: i64,
    /// Maximum messages per subject (-1 unlimited).
    pub max_msgs_per_subject: i64,
    /// Maximum message size (-1 unlimited; omitted when 0).
    #[serde(skip_serializing_if = "is_zero_i32")]
    pub max_msg_size: i32,
    /// Discard policy.
    pub discard: DiscardPolicy,
    /// Storage type.
    pub storage: StorageType,
    /// Replica count.
    pub num_replicas: i64,
    /// Do not send PubAcks.
    #[serde(skip_serializing_if = "is_false")]
    pub no_ack: bool,
    /// De-duplication window in ns (default 2 minutes).
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub duplicate_window: i64,
    /// Placement constraints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// Mirror of another stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<StreamSource>,
    /// Streams sourced from.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<StreamSource>,
    /// File store compression.
    pub compression: Compression,
    /// First sequence of a new stream.
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub first_seq: u64,
    /// Transform applied to incoming subjects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_transform: Option<SubjectTransform>,
    /// Republish stored messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub republish: Option<RePublish>,
    /// Allow direct get (`$JS.API.DIRECT.GET`).
    pub allow_direct: bool,
    /// A mirror answers direct gets for its origin.
    pub mirror_direct: bool,
    /// Discard-new applies per subject (`max_msgs_per_subject`).
    #[serde(skip_serializing_if = "is_false")]
    pub discard_new_per_subject: bool,
    /// No more writes, deletes or purges (update only).
    pub sealed: bool,
    /// Message deletes refused.
    pub deny_delete: bool,
    /// Purges refused.
    pub deny_purge: bool,
    /// `Nats-Rollup` headers honoured.
    pub allow_rollup_hdrs: bool,
    /// Consumer defaults/limits.
    pub consumer_limits: ConsumerLimits,
    /// Per-message TTL (`Nats-TTL`) honoured.
    pub allow_msg_ttl: bool,
    /// TTL of subject delete markers in ns (omitted when 0).
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub subject_delete_marker_ttl: i64,
    /// Counter CRDT stream (`Nats-Incr`).
    #[serde(skip_serializing_if = "is_false")]
    pub allow_msg_counter: bool,
    /// Atomic batch publishing.
    #[serde(skip_serializing_if = "is_false")]
    pub allow_atomic: bool,
    /// Message schedules.
    #[serde(skip_serializing_if = "is_false")]
    pub allow_msg_schedules: bool,
    /// Persistence mode (omitted when default).
    #[serde(skip_serializing_if = "PersistMode::is_default")]
    pub persist_mode: PersistMode,
    /// Fast batch publishing (API level 4).
    #[serde(skip_serializing_if = "is_false")]
    pub allow_batched: bool,
    /// User metadata plus the server's `_nats.*` keys; sorted like Go's map output.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// Body of `STREAM.CREATE` / `STREAM.UPDATE` (`StreamConfigRequest`): the config plus
/// the request-only `pedantic` flag.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamConfigRequest {
    /// The requested configuration.
    #[serde(flatten)]
    pub config: StreamConfig,
    /// Refuse instead of silently adjusting values (nats-server "pedantic mode").
    #[serde(skip_serializing_if = "is_false")]
    pub pedantic: bool,
}

/// Messages lost to corruption (`LostStreamData`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LostStreamData {
    /// Lost sequences.
    pub msgs: Vec<u64>,
    /// Lost bytes.
    pub bytes: u64,
}

/// A stream's state (`StreamState`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamState {
    /// Messages stored.
    pub messages: u64,
    /// Bytes stored.
    pub bytes: u64,
    /// First sequence (0 for a never-written stream).
    pub first_seq: u64,
    /// Time of the first message (zero time when empty).
    pub first_ts: Timestamp,
    /// Last sequence.
    pub last_seq: u64,
    /// Time of the last message (zero time when none).
    pub last_ts: Timestamp,
    /// Distinct subjects (omitted when 0).
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub num_subjects: i64,
    /// Per-subject counts, only with `subjects_filter`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub subjects: BTreeMap<String, u64>,
    /// Interior deletes (omitted when 0).
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub num_deleted: i64,
    /// Deleted sequences, only with `deleted_details`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<u64>,
    /// Lost data, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost: Option<LostStreamData>,
    /// Consumers on the stream (always present).
    pub consumer_count: i64,
}

/// A peer of a clustered asset (`PeerInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PeerInfo {
    /// Server name.
    pub name: String,
    /// Caught up and seen recently.
    pub current: bool,
    /// Not seen recently.
    #[serde(skip_serializing_if = "is_false")]
    pub offline: bool,
    /// Time since last activity (ns).
    pub active: i64,
    /// Operations behind.
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub lag: u64,
    /// Peer id.
    pub peer: String,
    /// Assigned but not yet in the Raft group.
    #[serde(skip_serializing_if = "is_false")]
    pub pending: bool,
}

/// `cluster` of stream/consumer info (`ClusterInfo`). Standalone servers report only
/// `{"leader": "<server name>"}` in stream info.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterInfo {
    /// Cluster name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Raft group name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub raft_group: String,
    /// Leader's server name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub leader: String,
    /// When the leader was elected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader_since: Option<Timestamp>,
    /// The group's traffic runs in the system account.
    #[serde(skip_serializing_if = "is_false")]
    pub system_account: bool,
    /// Account carrying the replication traffic.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub traffic_account: String,
    /// The other peers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<PeerInfo>,
}

/// Status of a mirror or source (`StreamSourceInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamSourceInfo {
    /// Upstream stream name.
    pub name: String,
    /// Upstream in another account/domain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalStream>,
    /// Messages behind.
    pub lag: u64,
    /// The last origin sequence a source copied (sources only; nats-server 2.15).
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub seq: u64,
    /// Time since last contact (ns); -1 if never.
    pub active: i64,
    /// Last setup error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
    /// Filter subject.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub filter_subject: String,
    /// Filters with transforms.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subject_transforms: Vec<SubjectTransform>,
}

/// A mirror of the stream elsewhere that can answer direct gets (`StreamAlternate`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamAlternate {
    /// Stream name.
    pub name: String,
    /// Its domain.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// Its cluster.
    pub cluster: String,
}

/// Config and state of a stream (`StreamInfo`).
///
/// `config`, `created`, `state` and `ts` are required when parsing, so that a response
/// without them (an error) parses as "no info" rather than an empty one.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StreamInfo {
    /// Configuration (with dynamic metadata in responses).
    pub config: StreamConfig,
    /// Creation time.
    pub created: Timestamp,
    /// Current state.
    pub state: StreamState,
    /// JetStream domain.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// Cluster information (stream info only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterInfo>,
    /// Mirror status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<StreamSourceInfo>,
    /// Source statuses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<StreamSourceInfo>,
    /// Mirrors that can serve direct gets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternates: Vec<StreamAlternate>,
    /// When this information was gathered.
    pub ts: Timestamp,
}

/// Body of `STREAM.INFO` (`JSApiStreamInfoRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamInfoRequest {
    /// Page offset into `state.subjects`.
    pub offset: i64,
    /// Include `state.deleted`.
    #[serde(skip_serializing_if = "is_false")]
    pub deleted_details: bool,
    /// Include `state.subjects` for subjects matching this filter.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subjects_filter: String,
}

/// Body of `STREAM.NAMES` (`JSApiStreamNamesRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamNamesRequest {
    /// Page offset.
    pub offset: i64,
    /// Only streams whose subjects overlap this subject.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subject: String,
}

/// Body of `STREAM.LIST` (`JSApiStreamListRequest`, same fields as names).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamListRequest {
    /// Page offset.
    pub offset: i64,
    /// Only streams whose subjects overlap this subject.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subject: String,
}

/// Body of `STREAM.PURGE` (`JSApiStreamPurgeRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamPurgeRequest {
    /// Purge up to, not including, this sequence.
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub seq: u64,
    /// Only subjects matching this filter.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub filter: String,
    /// Keep this many newest messages (exclusive with `seq`).
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub keep: u64,
}

/// Body of `STREAM.MSG.DELETE` (`JSApiMsgDeleteRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MsgDeleteRequest {
    /// Sequence to delete.
    pub seq: u64,
    /// Remove without overwriting the bytes.
    #[serde(skip_serializing_if = "is_false")]
    pub no_erase: bool,
}

/// Body of `STREAM.SNAPSHOT` (`JSApiStreamSnapshotRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamSnapshotRequest {
    /// Where the chunks go.
    pub deliver_subject: String,
    /// Leave consumers out.
    #[serde(skip_serializing_if = "is_false")]
    pub no_consumers: bool,
    /// Chunk size (default 128 KiB, clamped to 1 KiB..1 MiB).
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub chunk_size: i64,
    /// Flow control window (default 8 MiB, clamped to 1 KiB..32 MiB).
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub window_size: i64,
    /// Verify message checksums first.
    #[serde(skip_serializing_if = "is_false")]
    pub jsck: bool,
}

/// Body of `STREAM.RESTORE` (`JSApiStreamRestoreRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamRestoreRequest {
    /// Configuration of the restored stream.
    pub config: StreamConfig,
    /// Its state at snapshot time.
    pub state: StreamState,
}

/// The body of a SNAPSHOT or RESTORE request without its top-level `natrium_*` fields
/// (our extensions, docs/api.md), so that the rest is decoded as strictly as nats-server
/// decodes it (an unknown field is 10025). A body that is not one JSON object, or has no
/// such field, is returned as it is, so its decode error is nats-server's.
pub fn without_natrium_fields(body: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let Ok(serde_json::Value::Object(mut map)) = serde_json::from_slice(body) else {
        return body.into();
    };
    let before = map.len();
    map.retain(|k, _| !k.starts_with("natrium_"));
    if map.len() == before {
        return body.into();
    }
    serde_json::to_vec(&map).map_or(body.into(), Into::into)
}

/// A stored message in a `STREAM.MSG.GET` response (`StoredMsg`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StoredMsg {
    /// Subject it was stored under.
    pub subject: String,
    /// Sequence.
    pub seq: u64,
    /// Full header block (`NATS/1.0\r\n...`), base64; omitted when none.
    #[serde(with = "base64_bytes", skip_serializing_if = "Vec::is_empty")]
    pub hdrs: Vec<u8>,
    /// Payload, base64; omitted when empty.
    #[serde(with = "base64_bytes", skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<u8>,
    /// Store time.
    pub time: Timestamp,
}

/// `stream_create_response`: stream info plus `did_create`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamCreateBody {
    /// The stream (absent on errors).
    #[serde(flatten)]
    pub info: Option<StreamInfo>,
    /// Set by a create (standalone nats-server also sets it when the stream existed
    /// with an identical config).
    #[serde(skip_serializing_if = "is_false")]
    pub did_create: bool,
}

impl ResponseType for StreamCreateBody {
    const TYPE: &'static str = "io.nats.jetstream.api.v1.stream_create_response";
}

/// `stream_update_response`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamUpdateBody {
    /// The updated stream (absent on errors).
    #[serde(flatten)]
    pub info: Option<StreamInfo>,
}

impl ResponseType for StreamUpdateBody {
    const TYPE: &'static str = "io.nats.jetstream.api.v1.stream_update_response";
}

/// `stream_info_response`: paging (zeros unless `subjects_filter`) then stream info.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamInfoBody {
    /// Paging of `state.subjects`; present (zeroed) even on errors.
    #[serde(flatten)]
    pub paged: ApiPaged,
    /// The stream (absent on errors).
    #[serde(flatten)]
    pub info: Option<StreamInfo>,
}

impl ResponseType for StreamInfoBody {
    const TYPE: &'static str = "io.nats.jetstream.api.v1.stream_info_response";
}

/// `stream_names_response`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamNamesBody {
    /// Paging.
    #[serde(flatten)]
    pub paged: ApiPaged,
    /// Names; `None` is JSON `null`, which nats-server sends on errors and for an
    /// offset past the end.
    pub streams: Option<Vec<String>>,
}

impl ResponseType for StreamNamesBody {
    const TYPE: &'static str = "io.nats.jetstream.api.v1.stream_names_response";
}

/// `stream_list_response`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamListBody {
    /// Paging.
    #[serde(flatten)]
    pub paged: ApiPaged,
    /// Infos; nats-server sends `[]` (not `null`) even on errors.
    pub streams: Option<Vec<StreamInfo>>,
    /// Streams that did not answer in time (clustered).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    /// Offline streams and why.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub offline: BTreeMap<String, String>,
}

impl ResponseType for StreamListBody {
    const TYPE: &'static str = "io.nats.jetstream.api.v1.stream_list_response";
}

success_body!(
    /// `stream_delete_response`.
    StreamDeleteBody,
    "stream_delete_response"
);

/// `stream_purge_response` (`purged` is present even on errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamPurgeBody {
    /// Success (omitted when false).
    #[serde(skip_serializing_if = "is_false")]
    pub success: bool,
    /// Messages purged.
    pub purged: u64,
}

impl ResponseType for StreamPurgeBody {
    const TYPE: &'static str = "io.nats.jetstream.api.v1.stream_purge_response";
}

/// `stream_msg_get_response`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MsgGetBody {
    /// The message (absent on errors).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<StoredMsg>,
}

impl ResponseType for MsgGetBody {
    const TYPE: &'static str = "io.nats.jetstream.api.v1.stream_msg_get_response";
}

success_body!(
    /// `stream_msg_delete_response`.
    MsgDeleteBody,
    "stream_msg_delete_response"
);

/// `stream_snapshot_response`: sent before the chunks.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamSnapshotBody {
    /// Stored config (no dynamic metadata).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<StreamConfig>,
    /// State at snapshot time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<StreamState>,
    /// natrium extension: the request's `natrium_since`, echoed when the archive is an
    /// incremental one (clients check it to tell natrium from servers that ignore the
    /// field and send a full archive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub natrium_since: Option<u64>,
    /// natrium extension: `true` when the request asked for `natrium_keepalive`, so the
    /// receiver knows keep-alives on `<ack prefix>.keepalive` are understood.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub natrium_keepalive: Option<bool>,
}

impl ResponseType for StreamSnapshotBody {
    const TYPE: &'static str = "io.nats.jetstream.api.v1.stream_snapshot_response";
}

/// `stream_restore_response` (`deliver_subject` present even on errors).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamRestoreBody {
    /// Where to send the chunks.
    pub deliver_subject: String,
    /// natrium extension: the request's `natrium_resumable` id, echoed when the server
    /// keeps the received part of this upload for a resume should the client go away
    /// (clients check it to tell natrium from servers that ignore the field).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub natrium_resumable: Option<String>,
    /// natrium extension: the answer to `natrium_resume`, where the resumed upload
    /// continues.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub natrium_resume: Option<RestoreResumePoint>,
}

/// What the server kept of an interrupted resumable restore (`natrium_resume`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RestoreResumePoint {
    /// The restore's id (the `natrium_resumable` it was started with).
    pub id: String,
    /// The last sequence received: the upload continues with an incremental archive
    /// whose `since` is this.
    pub last_seq: u64,
    /// Messages kept.
    pub messages: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl ResponseType for StreamRestoreBody {
    const TYPE: &'static str = "io.nats.jetstream.api.v1.stream_restore_response";
}

// ---------------------------------------------------------------------------------------
// Go schemas (see `go_json`).

/// `server.Placement`.
pub(crate) static PLACEMENT_GO: GoStruct = GoStruct {
    name: "Placement",
    fields: &[
        ("cluster", GoType::String),
        ("tags", GoType::Slice(&GoType::String)),
        ("preferred", GoType::String),
    ],
};

static SUBJECT_TRANSFORM_GO: GoStruct = GoStruct {
    name: "SubjectTransformConfig",
    fields: &[("src", GoType::String), ("dest", GoType::String)],
};

static EXTERNAL_GO: GoStruct = GoStruct {
    name: "ExternalStream",
    fields: &[("api", GoType::String), ("deliver", GoType::String)],
};

static CONSUMER_SOURCE_GO: GoStruct = GoStruct {
    name: "StreamConsumerSource",
    fields: &[
        ("name", GoType::String),
        ("deliver_subject", GoType::String),
    ],
};

static STREAM_SOURCE_GO: GoStruct = GoStruct {
    name: "StreamSource",
    fields: &[
        ("name", GoType::String),
        ("opt_start_seq", GoType::Uint64),
        ("opt_start_time", GoType::Ptr(&GoType::Time)),
        ("filter_subject", GoType::String),
        (
            "subject_transforms",
            GoType::Slice(&GoType::Struct(&SUBJECT_TRANSFORM_GO)),
        ),
        ("external", GoType::Ptr(&GoType::Struct(&EXTERNAL_GO))),
        (
            "consumer",
            GoType::Ptr(&GoType::Struct(&CONSUMER_SOURCE_GO)),
        ),
    ],
};

static REPUBLISH_GO: GoStruct = GoStruct {
    name: "RePublish",
    fields: &[
        ("src", GoType::String),
        ("dest", GoType::String),
        ("headers_only", GoType::Bool),
    ],
};

static CONSUMER_LIMITS_GO: GoStruct = GoStruct {
    name: "StreamConsumerLimits",
    fields: &[
        ("inactive_threshold", GoType::Int(&DURATION)),
        ("max_ack_pending", GoType::Int(&INT)),
    ],
};

/// The `StreamConfig` field list, with optional extra fields appended.
macro_rules! stream_config_fields {
    ($($extra:expr),* $(,)?) => {
        &[
            ("name", GoType::String),
            ("description", GoType::String),
            ("subjects", GoType::Slice(&GoType::String)),
            ("retention", GoType::Enum(&go_json::RETENTION)),
            ("max_consumers", GoType::Int(&INT)),
            ("max_msgs", GoType::Int(&INT64)),
            ("max_bytes", GoType::Int(&INT64)),
            ("max_age", GoType::Int(&DURATION)),
            ("max_msgs_per_subject", GoType::Int(&INT64)),
            ("max_msg_size", GoType::Int(&INT32)),
            ("discard", GoType::Enum(&go_json::DISCARD)),
            ("storage", GoType::Enum(&go_json::STORAGE)),
            ("num_replicas", GoType::Int(&INT)),
            ("no_ack", GoType::Bool),
            ("duplicate_window", GoType::Int(&DURATION)),
            ("placement", GoType::Ptr(&GoType::Struct(&PLACEMENT_GO))),
            ("mirror", GoType::Ptr(&GoType::Struct(&STREAM_SOURCE_GO))),
            ("sources", GoType::Slice(&GoType::Ptr(&GoType::Struct(&STREAM_SOURCE_GO)))),
            ("compression", GoType::Enum(&go_json::COMPRESSION)),
            ("first_seq", GoType::Uint64),
            ("subject_transform", GoType::Ptr(&GoType::Struct(&SUBJECT_TRANSFORM_GO))),
            ("republish", GoType::Ptr(&GoType::Struct(&REPUBLISH_GO))),
            ("allow_direct", GoType::Bool),
            ("mirror_direct", GoType::Bool),
            ("discard_new_per_subject", GoType::Bool),
            ("sealed", GoType::Bool),
            ("deny_delete", GoType::Bool),
            ("deny_purge", GoType::Bool),
            ("allow_rollup_hdrs", GoType::Bool),
            ("consumer_limits", GoType::Struct(&CONSUMER_LIMITS_GO)),
            ("allow_msg_ttl", GoType::Bool),
            ("subject_delete_marker_ttl", GoType::Int(&DURATION)),
            ("allow_msg_counter", GoType::Bool),
            ("allow_atomic", GoType::Bool),
            ("allow_msg_schedules", GoType::Bool),
            ("persist_mode", GoType::Enum(&go_json::PERSIST_MODE)),
            ("allow_batched", GoType::Bool),
            ("metadata", GoType::Map(&GoType::String)),
            $($extra),*
        ]
    };
}

/// `server.StreamConfig`.
pub(crate) static STREAM_CONFIG_GO: GoStruct = GoStruct {
    name: "StreamConfig",
    fields: stream_config_fields!(),
};

/// `server.StreamConfigRequest` (StreamConfig embedded, plus `pedantic`).
pub(crate) static STREAM_CONFIG_REQUEST_GO: GoStruct = GoStruct {
    name: "StreamConfigRequest",
    fields: stream_config_fields!(("pedantic", GoType::Bool)),
};

static LOST_GO: GoStruct = GoStruct {
    name: "LostStreamData",
    fields: &[
        ("msgs", GoType::Slice(&GoType::Uint64)),
        ("bytes", GoType::Uint64),
    ],
};

static STREAM_STATE_GO: GoStruct = GoStruct {
    name: "StreamState",
    fields: &[
        ("messages", GoType::Uint64),
        ("bytes", GoType::Uint64),
        ("first_seq", GoType::Uint64),
        ("first_ts", GoType::Time),
        ("last_seq", GoType::Uint64),
        ("last_ts", GoType::Time),
        ("num_subjects", GoType::Int(&INT)),
        ("subjects", GoType::Map(&GoType::Uint64)),
        ("num_deleted", GoType::Int(&INT)),
        ("deleted", GoType::Slice(&GoType::Uint64)),
        ("lost", GoType::Ptr(&GoType::Struct(&LOST_GO))),
        ("consumer_count", GoType::Int(&INT)),
    ],
};

impl GoRequest for StreamConfigRequest {
    const SCHEMA: &'static GoStruct = &STREAM_CONFIG_REQUEST_GO;
}

impl GoRequest for StreamInfoRequest {
    const SCHEMA: &'static GoStruct = &GoStruct {
        name: "JSApiStreamInfoRequest",
        fields: &[
            ("offset", GoType::Int(&INT)),
            ("deleted_details", GoType::Bool),
            ("subjects_filter", GoType::String),
        ],
    };
}

impl GoRequest for StreamNamesRequest {
    const SCHEMA: &'static GoStruct = &GoStruct {
        name: "JSApiStreamNamesRequest",
        fields: &[("offset", GoType::Int(&INT)), ("subject", GoType::String)],
    };
}

impl GoRequest for StreamListRequest {
    const SCHEMA: &'static GoStruct = &GoStruct {
        name: "JSApiStreamListRequest",
        fields: &[("offset", GoType::Int(&INT)), ("subject", GoType::String)],
    };
}

impl GoRequest for StreamPurgeRequest {
    const SCHEMA: &'static GoStruct = &GoStruct {
        name: "JSApiStreamPurgeRequest",
        fields: &[
            ("seq", GoType::Uint64),
            ("filter", GoType::String),
            ("keep", GoType::Uint64),
        ],
    };
}

impl GoRequest for MsgDeleteRequest {
    const SCHEMA: &'static GoStruct = &GoStruct {
        name: "JSApiMsgDeleteRequest",
        fields: &[("seq", GoType::Uint64), ("no_erase", GoType::Bool)],
    };
}

impl GoRequest for StreamSnapshotRequest {
    const SCHEMA: &'static GoStruct = &GoStruct {
        name: "JSApiStreamSnapshotRequest",
        fields: &[
            ("deliver_subject", GoType::String),
            ("no_consumers", GoType::Bool),
            ("chunk_size", GoType::Int(&INT)),
            ("window_size", GoType::Int(&INT)),
            ("jsck", GoType::Bool),
        ],
    };
}

impl GoRequest for StreamRestoreRequest {
    const SCHEMA: &'static GoStruct = &GoStruct {
        name: "JSApiStreamRestoreRequest",
        fields: &[
            ("config", GoType::Struct(&STREAM_CONFIG_GO)),
            ("state", GoType::Struct(&STREAM_STATE_GO)),
        ],
    };
}
