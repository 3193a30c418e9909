//! The message-get request shared by `$JS.API.STREAM.MSG.GET.<stream>` (JSON answer) and
//! `$JS.API.DIRECT.GET.<stream>[.<subject>]` (raw message answer), with the validation
//! each endpoint applies before touching the store.
//!
//! Why both in one place: nats-server decodes both into `JSApiMsgGetRequest` but checks
//! them differently and fails differently — MSG.GET with API errors (10025, 10003),
//! direct get with header-only statuses (`408 Empty Request`, `408 Malformed Request`,
//! `408 Bad Request`) and with a lenient decoder (unknown fields ignored). Keeping the
//! rules next to each other makes the differences visible.

use serde::{Deserialize, Serialize};

use super::errors::ApiError;
use super::go_json::{self, GoRequest, GoStruct, GoType, INT, Mode};
use super::omit::{is_false, is_zero_i64, is_zero_u64};
use super::time::Timestamp;

/// `JSApiMsgGetRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MsgGetRequest {
    /// Sequence to get (with `next_by_subj`: the first sequence to consider).
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub seq: u64,
    /// Last message on this subject.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub last_by_subj: String,
    /// First message at or after `seq` matching this filter.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub next_by_subj: String,
    /// Direct get: number of messages.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub batch: i64,
    /// Direct get: byte budget of a batch.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub max_bytes: i64,
    /// Start at the first message at or after this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Timestamp>,
    /// Direct get: last message of each subject matching these filters.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub multi_last: Vec<String>,
    /// Direct get: stop at this sequence.
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub up_to_seq: u64,
    /// Direct get: stop at this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub up_to_time: Option<Timestamp>,
    /// Leave the headers out.
    #[serde(skip_serializing_if = "is_false")]
    pub no_hdr: bool,
}

impl GoRequest for MsgGetRequest {
    const SCHEMA: &'static GoStruct = &GoStruct {
        name: "JSApiMsgGetRequest",
        fields: &[
            ("seq", GoType::Uint64),
            ("last_by_subj", GoType::String),
            ("next_by_subj", GoType::String),
            ("batch", GoType::Int(&INT)),
            ("max_bytes", GoType::Int(&INT)),
            ("start_time", GoType::Ptr(&GoType::Time)),
            ("multi_last", GoType::Slice(&GoType::String)),
            ("up_to_seq", GoType::Uint64),
            ("up_to_time", GoType::Ptr(&GoType::Time)),
            ("no_hdr", GoType::Bool),
        ],
    };
}

impl MsgGetRequest {
    /// `STREAM.MSG.GET` checks after decoding: batching is not supported there, and
    /// exactly one of `seq` / `last_by_subj` / `start_time` (optionally with
    /// `next_by_subj`) must select the message. Violations are 10003 `bad request`.
    pub fn check_msg_get(&self) -> Result<(), ApiError> {
        if self.batch > 0 || self.max_bytes > 0 {
            return Err(ApiError::bad_request());
        }
        let has_last = !self.last_by_subj.is_empty();
        let has_next = !self.next_by_subj.is_empty();
        let has_time = self.start_time.is_some();
        let has_seq = self.seq > 0;
        // nats-server's list of conflicts, one entry per clause.
        let conflicts = [
            has_seq && has_last,
            !has_seq && !has_last && !has_next && !has_time,
            has_seq && has_time,
            has_time && has_last,
            has_last && has_next,
        ];
        if conflicts.contains(&true) {
            return Err(ApiError::bad_request());
        }
        Ok(())
    }
}

/// Why a direct get is refused before any lookup; each is answered with a header-only
/// message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectGetStatus {
    /// `NATS/1.0 408 Empty Request`: no body, or nothing selects a message.
    EmptyRequest,
    /// `NATS/1.0 408 Malformed Request`: the body is not valid for `json.Unmarshal`.
    MalformedRequest,
    /// `NATS/1.0 408 Bad Request`: conflicting options.
    BadRequest,
    /// `NATS/1.0 412 Required Api Level`.
    RequiredApiLevel,
}

impl DirectGetStatus {
    /// The complete header block to send (`NATS/1.0 408 Empty Request\r\n\r\n`).
    pub fn header(&self) -> &'static [u8] {
        match self {
            DirectGetStatus::EmptyRequest => b"NATS/1.0 408 Empty Request\r\n\r\n",
            DirectGetStatus::MalformedRequest => b"NATS/1.0 408 Malformed Request\r\n\r\n",
            DirectGetStatus::BadRequest => b"NATS/1.0 408 Bad Request\r\n\r\n",
            DirectGetStatus::RequiredApiLevel => b"NATS/1.0 412 Required Api Level\r\n\r\n",
        }
    }
}

/// Header names on direct-get answers.
pub mod headers {
    /// Stream name.
    pub const STREAM: &str = "Nats-Stream";
    /// Original subject.
    pub const SUBJECT: &str = "Nats-Subject";
    /// Stream sequence.
    pub const SEQUENCE: &str = "Nats-Sequence";
    /// Store time, RFC 3339 with nanoseconds.
    pub const TIME_STAMP: &str = "Nats-Time-Stamp";
    /// Messages left after this one (batch / multi-last).
    pub const NUM_PENDING: &str = "Nats-Num-Pending";
    /// Sequence of the previous message in the batch (0 for the first).
    pub const LAST_SEQUENCE: &str = "Nats-Last-Sequence";
    /// `multi_last`: the sequence the answer is consistent up to (on the EOB status).
    pub const UP_TO_SEQUENCE: &str = "Nats-UpTo-Sequence";
    /// End-of-batch status line.
    pub const EOB_STATUS: &str = "NATS/1.0 204 EOB";
    /// Not-found status block.
    pub const NOT_FOUND: &[u8] = b"NATS/1.0 404 Message Not Found\r\n\r\n";
    /// Batch/multi-last with nothing to return.
    pub const NO_RESULTS: &[u8] = b"NATS/1.0 404 No Results\r\n\r\n";
    /// Multi-last matching more subjects than one answer may carry.
    pub const TOO_MANY_RESULTS: &[u8] = b"NATS/1.0 413 Too Many Results\r\n\r\n";
}

/// Parses and checks a `DIRECT.GET.<stream>` body (`processDirectGetRequest`).
pub fn parse_direct_get(body: &[u8]) -> Result<MsgGetRequest, DirectGetStatus> {
    if body.is_empty() {
        return Err(DirectGetStatus::EmptyRequest);
    }
    let req: MsgGetRequest = go_json::decode(body, MsgGetRequest::SCHEMA, Mode::Unmarshal)
        .map_err(|_| DirectGetStatus::MalformedRequest)?;
    let has_last = !req.last_by_subj.is_empty();
    let has_next = !req.next_by_subj.is_empty();
    let has_multi = !req.multi_last.is_empty();
    let has_time = req.start_time.is_some();
    if req.seq == 0 && !has_last && !has_next && !has_multi && !has_time {
        return Err(DirectGetStatus::EmptyRequest);
    }
    let has_seq = req.seq > 0;
    // nats-server's list of conflicting options, one entry per clause.
    let conflicts = [
        has_seq && has_last,
        has_seq && has_time,
        has_time && has_last,
        has_last && has_next,
        has_last && req.batch > 0,
        has_last && has_multi,
        has_next && has_multi,
        req.up_to_seq > 0 && req.up_to_time.is_some(),
    ];
    if conflicts.contains(&true) {
        return Err(DirectGetStatus::BadRequest);
    }
    Ok(req)
}

/// Parses and checks a `DIRECT.GET.<stream>.<subject...>` request
/// (`processDirectGetLastBySubjectRequest`): the subject tokens after the stream are the
/// key; a body may only carry options that do not select messages. Returns the request
/// with `last_by_subj` set to the key.
pub fn parse_direct_get_last_by_subject(
    subject: &str,
    body: &[u8],
) -> Result<MsgGetRequest, DirectGetStatus> {
    let mut req = if body.is_empty() {
        MsgGetRequest::default()
    } else {
        go_json::decode(body, MsgGetRequest::SCHEMA, Mode::Unmarshal)
            .map_err(|_| DirectGetStatus::MalformedRequest)?
    };
    // `$JS.API.DIRECT.GET.<stream>.<key...>`: the key starts after the fifth dot.
    let key = subject
        .match_indices('.')
        .nth(4)
        .map(|(i, _)| &subject[i + 1..])
        .unwrap_or("");
    if key.is_empty() {
        return Err(DirectGetStatus::BadRequest);
    }
    if !req.last_by_subj.is_empty()
        || !req.next_by_subj.is_empty()
        || !req.multi_last.is_empty()
        || req.seq != 0
        || req.batch != 0
        || req.start_time.is_some()
        || req.up_to_seq != 0
        || req.up_to_time.is_some()
    {
        return Err(DirectGetStatus::BadRequest);
    }
    req.last_by_subj = key.to_string();
    Ok(req)
}
