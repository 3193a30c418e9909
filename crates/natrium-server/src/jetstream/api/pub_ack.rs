//! The PubAck a publish into a stream is answered with.
//!
//! Why hand-built bytes: nats-server does not marshal successful PubAcks. It keeps a
//! per-stream prefix made with Go's `%q` (`{"stream":"ORDERS","seq":` or, with a domain,
//! `{"stream":"ORDERS","domain":"hub","seq":` — domain *before* seq) and appends the
//! sequence and a suffix by hand. One suffix has a space nobody else would write:
//!
//! ```text
//! {"stream":"ORDERS","seq":2,"duplicate": true}
//! ```
//!
//! Clients parse that fine, but byte-exact tests and message digests see it, so
//! [`PubAck::to_wire`] reproduces it. Errors, in contrast, are marshalled from Go's
//! `JSPubAckResponse` (`{"error":{...},"stream":"ORDERS","seq":0}`), which is what the
//! serde form of [`PubAckResponse`] produces through [`to_go_json`].

use serde::{Deserialize, Serialize};

use super::errors::ApiError;
use super::go_json::go_quote;
use super::omit::{is_false, is_zero_u64};
use super::to_go_json;

/// A successful publish acknowledgement (`PubAck`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PubAck {
    /// Stream that stored the message.
    pub stream: String,
    /// Its sequence (the original one for duplicates; 0 in error acks).
    pub seq: u64,
    /// JetStream domain, if configured.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// The `Nats-Msg-Id` was seen within the duplicate window.
    #[serde(skip_serializing_if = "is_false")]
    pub duplicate: bool,
    /// Counter streams: the counter's new value.
    #[serde(rename = "val", skip_serializing_if = "String::is_empty")]
    pub value: String,
    /// Batch publishing: the batch id.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub batch: String,
    /// Batch publishing: messages in the committed batch.
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub count: u64,
}

impl PubAck {
    /// A plain success ack.
    pub fn new(stream: impl Into<String>, seq: u64) -> PubAck {
        PubAck {
            stream: stream.into(),
            seq,
            ..PubAck::default()
        }
    }

    /// The bytes nats-server sends for a successful (or duplicate) publish:
    /// `{"stream":<q>[,"domain":<q>],"seq":N` followed by `,"duplicate": true` (with the
    /// space; plus `,"batch":<q>,"count":N` for a duplicate inside a batch), or
    /// `,"batch":<q>,"count":N`, or `,"val":<q>`, then `}`. `<q>` is Go's `%q` quoting,
    /// not JSON escaping (`>` stays `>`).
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = String::with_capacity(48 + self.stream.len());
        out.push_str("{\"stream\":");
        out.push_str(&go_quote(&self.stream));
        if !self.domain.is_empty() {
            out.push_str(",\"domain\":");
            out.push_str(&go_quote(&self.domain));
        }
        out.push_str(",\"seq\":");
        out.push_str(itoa::Buffer::new().format(self.seq));
        if self.duplicate {
            out.push_str(",\"duplicate\": true");
            if !self.batch.is_empty() {
                out.push_str(",\"batch\":");
                out.push_str(&go_quote(&self.batch));
                out.push_str(",\"count\":");
                out.push_str(itoa::Buffer::new().format(self.count));
            }
        } else if !self.batch.is_empty() {
            out.push_str(",\"batch\":");
            out.push_str(&go_quote(&self.batch));
            out.push_str(",\"count\":");
            out.push_str(itoa::Buffer::new().format(self.count));
        } else if !self.value.is_empty() {
            out.push_str(",\"val\":");
            out.push_str(&go_quote(&self.value));
        }
        out.push('}');
        out.into_bytes()
    }
}

/// A PubAck as JSON (`JSPubAckResponse`): `error` first, then the ack fields. Used for
/// error acks and for parsing acks.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PubAckResponse {
    /// Why the message was not stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
    /// The ack (`stream` set, `seq` 0 for errors).
    #[serde(flatten)]
    pub ack: PubAck,
}

impl PubAckResponse {
    /// The error ack nats-server sends: `{"error":{...},"stream":"<stream>","seq":0}`.
    pub fn error(stream: impl Into<String>, error: ApiError) -> PubAckResponse {
        PubAckResponse {
            error: Some(error),
            ack: PubAck::new(stream, 0),
        }
    }

    /// The bytes to send: hand-built for successes ([`PubAck::to_wire`]), marshalled
    /// JSON for errors.
    pub fn to_wire(&self) -> Vec<u8> {
        match self.error {
            None => self.ack.to_wire(),
            Some(_) => to_go_json(self).into_bytes(),
        }
    }
}
