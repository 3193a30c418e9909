//! Account-level API types: `$JS.API.INFO` (usage, limits, API statistics, tiers) and
//! `$JS.API.ACCOUNT.PURGE`.
//!
//! Why the odd nesting: Go's `JetStreamAccountStats` embeds `JetStreamTier`, so the
//! tier's usage fields and `limits` come first in the JSON, then `domain`, `api` and
//! `tiers`; [`AccountInfo`] keeps that order with a flattened [`AccountTier`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ResponseType;
use super::omit::is_zero_u64;

/// JetStream limits of an account or tier (`JetStreamAccountLimits`); -1 = unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountLimits {
    /// Memory storage bytes.
    pub max_memory: i64,
    /// File storage bytes.
    pub max_storage: i64,
    /// Streams.
    pub max_streams: i64,
    /// Consumers.
    pub max_consumers: i64,
    /// Per-consumer `max_ack_pending` cap.
    pub max_ack_pending: i64,
    /// Largest `max_bytes` of a memory stream.
    pub memory_max_stream_bytes: i64,
    /// Largest `max_bytes` of a file stream.
    pub storage_max_stream_bytes: i64,
    /// Streams must set `max_bytes`.
    pub max_bytes_required: bool,
}

impl Default for AccountLimits {
    /// Everything unlimited, as an account with `jetstream: enabled` reports.
    fn default() -> Self {
        AccountLimits {
            max_memory: -1,
            max_storage: -1,
            max_streams: -1,
            max_consumers: -1,
            max_ack_pending: -1,
            memory_max_stream_bytes: -1,
            storage_max_stream_bytes: -1,
            max_bytes_required: false,
        }
    }
}

/// Usage and limits of one tier, or the account totals (`JetStreamTier`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccountTier {
    /// Memory bytes used.
    pub memory: u64,
    /// File bytes used.
    pub storage: u64,
    /// Memory reserved by streams' `max_bytes`.
    pub reserved_memory: u64,
    /// File storage reserved by streams' `max_bytes`.
    pub reserved_storage: u64,
    /// Streams.
    pub streams: i64,
    /// Consumers.
    pub consumers: i64,
    /// Limits (zeroed at the top level when tiers are in use).
    pub limits: AccountLimits,
}

/// API usage statistics (`JetStreamAPIStats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ApiStats {
    /// API level the server implements (5).
    pub level: i64,
    /// Requests received.
    pub total: u64,
    /// Requests answered with an error.
    pub errors: u64,
    /// Requests being processed (omitted when 0).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub inflight: u64,
}

/// The account's JetStream statistics (`JetStreamAccountStats`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccountInfo {
    /// Totals (and limits when not tiered).
    #[serde(flatten)]
    pub tier: AccountTier,
    /// JetStream domain.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// API statistics.
    pub api: ApiStats,
    /// Per-tier usage (`R1`, `R3`, ...) with tiered limits.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tiers: BTreeMap<String, AccountTier>,
}

/// `account_info_response`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AccountInfoBody {
    /// The statistics (absent on errors).
    #[serde(flatten)]
    pub info: Option<AccountInfo>,
}

impl ResponseType for AccountInfoBody {
    const TYPE: &'static str = "io.nats.jetstream.api.v1.account_info_response";
}

/// `account_purge_response` (system account only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AccountPurgeBody {
    /// The purge was started.
    #[serde(skip_serializing_if = "super::omit::is_false")]
    pub initiated: bool,
}

impl ResponseType for AccountPurgeBody {
    const TYPE: &'static str = "io.nats.jetstream.api.v1.account_purge_response";
}
