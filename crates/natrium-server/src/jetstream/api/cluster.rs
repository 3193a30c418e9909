//! Cluster-management API types: leader stepdown, peer and server removal.
//!
//! Why they exist in a standalone server: clients call these subjects anyway, and
//! nats-server answers a standalone server's stream/consumer stepdown and peer removal
//! with error 10010 (`JetStream clustering support required`) in these response shapes.

use serde::{Deserialize, Serialize};

use super::go_json::{GoRequest, GoStruct, GoType};
use super::stream::{PLACEMENT_GO, Placement};
use super::success_body;

/// Body of `STREAM.LEADER.STEPDOWN`, `CONSUMER.LEADER.STEPDOWN` and
/// `META.LEADER.STEPDOWN` (`JSApiLeaderStepdownRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LeaderStepdownRequest {
    /// Where the new leader should be.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
}

/// Body of `STREAM.PEER.REMOVE` (`JSApiStreamRemovePeerRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamRemovePeerRequest {
    /// Server name or peer id to remove.
    pub peer: String,
}

/// Body of `SERVER.REMOVE` (`JSApiMetaServerRemoveRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MetaServerRemoveRequest {
    /// Server name to remove.
    pub peer: String,
    /// Peer id; used instead of the name when set.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub peer_id: String,
}

/// Body of `ACCOUNT.STREAM.MOVE.<account>.<stream>` (`JSApiMetaServerStreamMoveRequest`,
/// system account, clustered).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MetaServerStreamMoveRequest {
    /// Server to move away from.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub server: String,
    /// Its cluster.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    /// Its domain.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// Placement tags for the move.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

success_body!(
    /// `stream_leader_stepdown_response`.
    StreamLeaderStepdownBody,
    "stream_leader_stepdown_response"
);

success_body!(
    /// `stream_remove_peer_response`.
    StreamRemovePeerBody,
    "stream_remove_peer_response"
);

success_body!(
    /// `meta_leader_stepdown_response`.
    MetaLeaderStepdownBody,
    "meta_leader_stepdown_response"
);

success_body!(
    /// `meta_server_remove_response`.
    MetaServerRemoveBody,
    "meta_server_remove_response"
);

impl GoRequest for LeaderStepdownRequest {
    const SCHEMA: &'static GoStruct = &GoStruct {
        name: "JSApiLeaderStepdownRequest",
        fields: &[("placement", GoType::Ptr(&GoType::Struct(&PLACEMENT_GO)))],
    };
}

impl GoRequest for StreamRemovePeerRequest {
    const SCHEMA: &'static GoStruct = &GoStruct {
        name: "JSApiStreamRemovePeerRequest",
        fields: &[("peer", GoType::String)],
    };
}

impl GoRequest for MetaServerRemoveRequest {
    const SCHEMA: &'static GoStruct = &GoStruct {
        name: "JSApiMetaServerRemoveRequest",
        fields: &[("peer", GoType::String), ("peer_id", GoType::String)],
    };
}

impl GoRequest for MetaServerStreamMoveRequest {
    const SCHEMA: &'static GoStruct = &GoStruct {
        name: "JSApiMetaServerStreamMoveRequest",
        fields: &[
            ("server", GoType::String),
            ("cluster", GoType::String),
            ("domain", GoType::String),
            ("tags", GoType::Slice(&GoType::String)),
        ],
    };
}
