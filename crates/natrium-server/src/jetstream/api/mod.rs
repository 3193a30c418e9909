//! The JetStream JSON API data layer: request and response types whose JSON is
//! byte-for-byte what nats-server 2.15.1 sends, the API error table, and the pure
//! (state-free) config defaults and validation nats-server applies.
//!
//! Why so strict about bytes: JetStream clients are written against nats-server and some
//! compare or hash what they get (KV/object-store watchers, tests in client libraries,
//! the `nats` CLI's JSON output); field order, `omitempty` and Go's `\u003e` escaping are
//! all visible. So every struct here declares its fields in Go's marshal order, skips
//! exactly the fields Go's `omitempty` skips, and [`to_go_json`] applies Go's escaping.
//! The round-trip tests parse captured nats-server responses and compare the
//! re-serialized bytes with the originals.
//!
//! Layout:
//! * [`errors`]: [`errors::ApiError`] and the generated [`errors::ErrorId`] table;
//! * [`time`]: Go time/duration/byte conventions ([`time::Timestamp`]);
//! * [`go_json`]: decoding request bodies with nats-server's rules and error texts;
//! * [`stream`], [`consumer`], [`account`], [`cluster`]: types per API area;
//! * [`stream_check`], [`consumer_check`]: `set_*_config_defaults` and validation;
//! * [`pub_ack`]: the PubAck a stored message is answered with;
//! * [`direct`]: the direct-get / message-get request.
//!
//! Responses are [`ApiResponse<B>`]: `"type"` first, then `"error"` if any, then the
//! body's own fields, exactly like Go's embedded `ApiResponse` struct:
//!
//! ```
//! use natrium_server::jetstream::api::{ApiResponse, to_go_json};
//! use natrium_server::jetstream::api::errors::ApiError;
//! use natrium_server::jetstream::api::stream::StreamCreateBody;
//! let resp = ApiResponse::<StreamCreateBody>::error(ApiError::stream_not_found());
//! assert_eq!(
//!     to_go_json(&resp),
//!     r#"{"type":"io.nats.jetstream.api.v1.stream_create_response","error":{"code":404,"err_code":10059,"description":"stream not found"}}"#
//! );
//! ```

use std::collections::BTreeMap;
use std::marker::PhantomData;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use self::errors::ApiError;

pub mod account;
pub mod cluster;
pub mod consumer;
pub mod consumer_check;
pub mod direct;
pub mod errors;
pub mod go_json;
pub mod pub_ack;
pub mod stream;
pub mod stream_check;
pub mod time;

#[cfg(test)]
mod tests;

/// Prefix of every response `type`.
pub const RESPONSE_TYPE_PREFIX: &str = "io.nats.jetstream.api.v1.";

/// Longest stream or consumer name (`JSMaxNameLen`).
pub const MAX_NAME_LEN: usize = 255;
/// Longest stream or consumer description in bytes (`JSMaxDescriptionLen`).
pub const MAX_DESCRIPTION_LEN: usize = 4 * 1024;
/// Largest metadata (sum of key and value lengths) (`JSMaxMetadataLen`).
pub const MAX_METADATA_LEN: usize = 128 * 1024;
/// Names returned per NAMES page (`JSApiNamesLimit`).
pub const NAMES_LIMIT: usize = 1024;
/// Infos returned per LIST page (`JSApiListLimit`).
pub const LIST_LIMIT: usize = 256;
/// Subjects returned per stream info page with `subjects_filter` (`JSMaxSubjectDetails`).
pub const MAX_SUBJECT_DETAILS: usize = 100_000;

/// Metadata key: minimum API level the asset needs (stored with the asset).
pub const META_REQUIRED_LEVEL: &str = "_nats.req.level";
/// Metadata key: server version (added to responses only).
pub const META_SERVER_VERSION: &str = "_nats.ver";
/// Metadata key: server API level (added to responses only).
pub const META_SERVER_LEVEL: &str = "_nats.level";

/// Server-wide JetStream limits that the config checks consult (nats-server
/// `JSLimitOpts`, from `jetstream { limits { ... } }`). Zero means "not set".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServerLimits {
    /// `max_request_batch`: largest pull batch a consumer may allow.
    pub max_request_batch: i64,
    /// `max_ack_pending`: largest consumer `max_ack_pending`.
    pub max_ack_pending: i64,
    /// `duplicate_window` (ns): largest stream duplicate window.
    pub duplicates: i64,
    /// `default_max_consumers`: consumers a stream may have when neither its config nor
    /// its account sets a limit (nats-server 2.15: 1000 unless configured; 0 none).
    pub default_max_consumers: i64,
}

/// nats-server 2.15's `default_max_consumers` when the config sets none.
pub const DEFAULT_MAX_CONSUMERS: i64 = 1000;

/// nats-server's `isJSONObjectOrArray`: whether a request body (after JSON whitespace)
/// starts with `{` or `[`. Handlers with an optional body (stream info, names, list,
/// purge) decode it only then; anything else is read as "no options".
pub fn is_json_object_or_array(body: &[u8]) -> bool {
    body.iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .is_some_and(|b| matches!(b, b'{' | b'['))
}

/// nats-server's `isEmptyRequest`: no body, or a JSON object without members. Handlers
/// that need options (message get and delete) refuse such a body with 10003; stream
/// delete refuses anything else with 10038.
pub fn is_empty_request(body: &[u8]) -> bool {
    if body.is_empty() || body == b"{}" {
        return true;
    }
    matches!(
        serde_json::from_slice::<serde_json::Value>(body),
        Ok(serde_json::Value::Object(m)) if m.is_empty()
    )
}

/// Marks a response body type with its `type` string.
pub trait ResponseType {
    /// The full type, e.g. `io.nats.jetstream.api.v1.stream_create_response`.
    const TYPE: &'static str;
}

/// A JetStream API response: `{"type": B::TYPE, "error"?: ..., <body fields>}`.
///
/// On errors nats-server still marshals the body's non-pointer fields (a stream info
/// error carries `"total":0,"offset":0,"limit":0`); build those with
/// [`ApiResponse::error`] from the body's `Default`, or [`ApiResponse::with_error`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "B: Serialize + ResponseType",
    deserialize = "B: Deserialize<'de> + ResponseType"
))]
pub struct ApiResponse<B> {
    /// Always `B::TYPE` on the wire; parsing checks it.
    #[serde(
        rename = "type",
        serialize_with = "ser_type",
        deserialize_with = "de_type"
    )]
    pub kind: PhantomData<B>,
    /// The error, if the request failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
    /// The response's own fields, inlined after `type`/`error`.
    #[serde(flatten)]
    pub body: B,
}

fn ser_type<B: ResponseType, S: Serializer>(_: &PhantomData<B>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(B::TYPE)
}

fn de_type<'de, B: ResponseType, D: Deserializer<'de>>(d: D) -> Result<PhantomData<B>, D::Error> {
    let t = String::deserialize(d)?;
    if t == B::TYPE {
        Ok(PhantomData)
    } else {
        Err(serde::de::Error::custom(format!(
            "response type {t:?}, expected {:?}",
            B::TYPE
        )))
    }
}

impl<B: ResponseType> ApiResponse<B> {
    /// A successful response.
    pub fn new(body: B) -> Self {
        ApiResponse {
            kind: PhantomData,
            error: None,
            body,
        }
    }

    /// An error response with the body's zero values (what nats-server sends).
    pub fn error(error: ApiError) -> Self
    where
        B: Default,
    {
        ApiResponse {
            kind: PhantomData,
            error: Some(error),
            body: B::default(),
        }
    }

    /// An error response with some body fields set (e.g. paging on a list error).
    pub fn with_error(body: B, error: ApiError) -> Self {
        ApiResponse {
            kind: PhantomData,
            error: Some(error),
            body,
        }
    }

    /// The response as nats-server's JSON.
    pub fn to_json(&self) -> String
    where
        B: Serialize,
    {
        to_go_json(self)
    }
}

/// Paging fields of NAMES/LIST (and, zeroed, stream info) responses (`ApiPaged`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiPaged {
    /// Number of items in total.
    pub total: i64,
    /// Offset of this page (clamped to `total`).
    pub offset: i64,
    /// Page size limit.
    pub limit: i64,
}

/// Serializes like Go's `encoding/json`: serde_json output with `<`, `>`, `&`, U+2028
/// and U+2029 escaped as `\u003c` etc. (Go escapes them inside strings, where alone
/// they can occur in JSON text). Our API types cannot fail to serialize; if a foreign
/// `Serialize` impl does, the result is `{}`.
pub fn to_go_json<T: Serialize + ?Sized>(value: &T) -> String {
    let json = match serde_json::to_string(value) {
        Ok(s) => s,
        Err(_) => {
            debug_assert!(false, "API type failed to serialize");
            return "{}".to_string();
        }
    };
    go_escape(json)
}

/// [`to_go_json`] as bytes, ready to publish.
pub fn to_go_json_vec<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    to_go_json(value).into_bytes()
}

/// Go's extra string escapes applied to finished JSON text.
pub(crate) fn go_escape(json: String) -> String {
    if !json
        .chars()
        .any(|c| matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}'))
    {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// Whether `name` is a valid stream/consumer name (`isValidAssetName`): non-empty, no
/// whitespace and none of `.`, `*`, `>`, `\`, `/`. Length is checked separately.
pub fn is_valid_asset_name(name: &str) -> bool {
    !name.is_empty()
        && !name.bytes().any(|b| {
            matches!(
                b,
                b' ' | b'\t' | b'\r' | b'\n' | 0x0c | b'.' | b'*' | b'>' | b'\\' | b'/'
            )
        })
}

/// Whether a `Nats-Required-Api-Level` header value makes nats-server refuse the request
/// (error 10185, or status `412 Required Api Level`): unparsable or above our level.
pub fn required_api_level_unmet(header_value: &str) -> bool {
    // An empty value asks for nothing (nats-server checks the length first).
    if header_value.is_empty() {
        return false;
    }
    match header_value.parse::<i64>() {
        Ok(level) => level > crate::options::API_LEVEL,
        Err(_) => true,
    }
}

/// Removes the response-only metadata keys (`deleteDynamicMetadata`).
pub fn delete_dynamic_metadata(metadata: &mut BTreeMap<String, String>) {
    metadata.remove(META_SERVER_VERSION);
    metadata.remove(META_SERVER_LEVEL);
}

/// Adds `_nats.ver` and `_nats.level` to a copy of stored metadata, for a response
/// (`setDynamicStreamMetadata` / `setDynamicConsumerMetadata`).
pub fn with_dynamic_metadata(metadata: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut m = metadata.clone();
    m.insert(
        META_SERVER_VERSION.to_string(),
        crate::options::NATS_COMPAT_VERSION.to_string(),
    );
    m.insert(
        META_SERVER_LEVEL.to_string(),
        crate::options::API_LEVEL.to_string(),
    );
    m
}

/// `copyStreamMetadata` / `copyConsumerMetadata`: before comparing a new config with the
/// stored one, drop dynamic keys and take `_nats.req.level` from the previous config
/// (or remove it if that has none), so versioning never counts as a difference.
pub fn copy_versioning_metadata(
    new: &mut BTreeMap<String, String>,
    prev: Option<&BTreeMap<String, String>>,
) {
    delete_dynamic_metadata(new);
    match prev.and_then(|p| p.get(META_REQUIRED_LEVEL)) {
        Some(level) => {
            new.insert(META_REQUIRED_LEVEL.to_string(), level.clone());
        }
        None => {
            new.remove(META_REQUIRED_LEVEL);
        }
    }
}

/// `omitempty` predicates for serde's `skip_serializing_if`.
pub(crate) mod omit {
    /// `false`.
    pub fn is_false(v: &bool) -> bool {
        !*v
    }
    /// `0`.
    pub fn is_zero_i64(v: &i64) -> bool {
        *v == 0
    }
    /// `0`.
    pub fn is_zero_i32(v: &i32) -> bool {
        *v == 0
    }
    /// `0`.
    pub fn is_zero_u64(v: &u64) -> bool {
        *v == 0
    }
}

/// Declares a response body that is only `{"success": bool}` (omitempty), with its type.
macro_rules! success_body {
    ($(#[$meta:meta])* $name:ident, $ty:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
        #[serde(default)]
        pub struct $name {
            /// Whether the operation succeeded (omitted when false).
            #[serde(skip_serializing_if = "crate::jetstream::api::omit::is_false")]
            pub success: bool,
        }

        impl crate::jetstream::api::ResponseType for $name {
            const TYPE: &'static str = concat!("io.nats.jetstream.api.v1.", $ty);
        }
    };
}
pub(crate) use success_body;
