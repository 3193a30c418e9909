//! The CONNECT options a client sends, and the INFO the server sends.
//!
//! Field names and defaults follow nats-server's `ClientOpts` and `Info` (see
//! `reference/protocol.md` §2): `verbose`, `pedantic` and `echo` default to **true** when
//! absent, and unknown fields are ignored. A field of the wrong type is a parse error, which
//! closes the connection without an `-ERR`, as nats-server does.

use serde::{Deserialize, Serialize};

fn yes() -> bool {
    true
}

/// CONNECT options.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Reply `+OK` to every accepted op.
    #[serde(default = "yes")]
    pub verbose: bool,
    /// Strict checks, e.g. publish subjects must be valid literals.
    #[serde(default = "yes")]
    pub pedantic: bool,
    /// Deliver the connection's own publishes to its own subscriptions.
    #[serde(default = "yes")]
    pub echo: bool,
    /// Client wants TLS.
    #[serde(default)]
    pub tls_required: bool,
    /// Client name, for monitoring.
    #[serde(default)]
    pub name: String,
    /// Client language, for monitoring.
    #[serde(default)]
    pub lang: String,
    /// Client library version, for monitoring.
    #[serde(default)]
    pub version: String,
    /// 0 = original protocol, 1 = accepts async INFO.
    #[serde(default)]
    pub protocol: i64,
    /// Client understands HPUB/HMSG.
    #[serde(default)]
    pub headers: bool,
    /// Client wants a 503 status when a request has no responders.
    #[serde(default)]
    pub no_responders: bool,
    /// User name.
    #[serde(default)]
    pub user: Option<String>,
    /// Password.
    #[serde(default)]
    pub pass: Option<String>,
    /// Token.
    #[serde(default)]
    pub auth_token: Option<String>,
    /// NKey public key.
    #[serde(default)]
    pub nkey: Option<String>,
    /// Signature of the nonce.
    #[serde(default)]
    pub sig: Option<String>,
    /// User JWT (operator mode only).
    #[serde(default)]
    pub jwt: Option<String>,
    /// Legacy account selection; any value is an auth violation.
    #[serde(default)]
    pub account: Option<String>,
    /// Legacy new-account request; true is an auth violation.
    #[serde(default)]
    pub new_account: bool,
}

impl ConnectOptions {
    /// Parse CONNECT JSON. `null` values count as absent, like Go's decoder.
    pub fn parse(json: &[u8]) -> Result<Self, serde_json::Error> {
        let mut v: serde_json::Value = serde_json::from_slice(json)?;
        if let Some(obj) = v.as_object_mut() {
            obj.retain(|_, val| !val.is_null());
        }
        serde_json::from_value(v)
    }
}

/// The INFO a server sends. Field order and omission rules match nats-server, so the JSON
/// is byte-comparable with its output.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ServerInfo {
    /// Server id (an nkey public key starting with `N`).
    pub server_id: String,
    /// Server name (the id when not configured).
    pub server_name: String,
    /// Version string clients gate features on.
    pub version: String,
    /// Protocol version, always 1.
    pub proto: i64,
    /// Build commit.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub git_commit: String,
    /// nats-server reports its Go version here; we report the implementation.
    pub go: String,
    /// Listen host.
    pub host: String,
    /// Listen port.
    pub port: u16,
    /// Header support.
    pub headers: bool,
    /// Clients must authenticate.
    #[serde(skip_serializing_if = "is_false")]
    pub auth_required: bool,
    /// TLS required.
    #[serde(skip_serializing_if = "is_false")]
    pub tls_required: bool,
    /// Client certificates are required and verified.
    #[serde(skip_serializing_if = "is_false")]
    pub tls_verify: bool,
    /// TLS is offered but not required (`allow_non_tls`).
    #[serde(skip_serializing_if = "is_false")]
    pub tls_available: bool,
    /// Largest publish.
    pub max_payload: i64,
    /// JetStream enabled.
    #[serde(skip_serializing_if = "is_false")]
    pub jetstream: bool,
    /// The connection id.
    #[serde(skip_serializing_if = "is_zero")]
    pub client_id: u64,
    /// The client's IP as the server sees it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client_ip: String,
    /// Nonce to sign for nkey auth.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub nonce: String,
    /// JetStream domain.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// Lame-duck mode.
    #[serde(skip_serializing_if = "is_false")]
    pub ldm: bool,
    /// Set on the INFO answering the first PING after CONNECT.
    #[serde(skip_serializing_if = "is_false")]
    pub connect_info: bool,
    /// The account the client was bound to (in the `connect_info` INFO).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub remote_account: String,
    /// The client is in the system account.
    #[serde(skip_serializing_if = "is_false")]
    pub acc_is_sys: bool,
    /// JetStream API level.
    #[serde(skip_serializing_if = "is_zero_i")]
    pub api_lvl: i64,
    /// The server's curve key, for auth callout services that seal their answers.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub xkey: String,
}

fn is_false(b: &bool) -> bool {
    !*b
}
fn is_zero(n: &u64) -> bool {
    *n == 0
}
fn is_zero_i(n: &i64) -> bool {
    *n == 0
}

impl ServerInfo {
    /// JSON in Go's encoding (with `<`, `>`, `&` escaped).
    pub fn to_json(&self) -> String {
        // Serializing a plain struct of strings and numbers cannot fail.
        let s = serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string());
        super::write::go_json_escape(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_verbose_pedantic_echo() {
        let c = ConnectOptions::parse(b"{}").unwrap();
        assert!(c.verbose && c.pedantic && c.echo);
        assert!(!c.headers && c.protocol == 0);
        let c = ConnectOptions::parse(br#"{"verbose":false,"echo":null,"x":1}"#).unwrap();
        assert!(!c.verbose && c.echo);
    }

    #[test]
    fn wrong_types_fail() {
        assert!(ConnectOptions::parse(br#"{"verbose":"x"}"#).is_err());
        assert!(ConnectOptions::parse(b"{bad").is_err());
        assert!(ConnectOptions::parse(b"").is_err());
    }

    #[test]
    fn info_field_order_matches_nats_server() {
        let info = ServerInfo {
            server_id: "NID".into(),
            server_name: "proto1".into(),
            version: "2.15.1".into(),
            proto: 1,
            git_commit: "b2fd3ef".into(),
            go: "go1.27.2".into(),
            host: "127.0.0.1".into(),
            port: 14224,
            headers: true,
            auth_required: true,
            max_payload: 1024,
            client_id: 5,
            client_ip: "127.0.0.1".into(),
            connect_info: true,
            remote_account: "$G".into(),
            api_lvl: 5,
            ..ServerInfo::default()
        };
        assert_eq!(
            info.to_json(),
            r#"{"server_id":"NID","server_name":"proto1","version":"2.15.1","proto":1,"git_commit":"b2fd3ef","go":"go1.27.2","host":"127.0.0.1","port":14224,"headers":true,"auth_required":true,"max_payload":1024,"client_id":5,"client_ip":"127.0.0.1","connect_info":true,"remote_account":"$G","api_lvl":5}"#
        );
    }
}
