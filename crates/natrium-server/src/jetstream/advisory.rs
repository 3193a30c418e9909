//! JetStream advisories and metrics: JSON events on `$JS.EVENT.ADVISORY.…` and
//! `$JS.EVENT.METRIC.…` in the account that owns the stream.
//!
//! Why: operators and tools (`nats events`, dead-letter handlers listening for
//! max-deliveries) subscribe to them. The shapes follow nats-server's `TypedEvent`
//! structs field for field. Like nats-server, nothing is encoded when nobody listens.

use super::api::time::Timestamp;
use crate::account::Account;
use crate::client::deliver::{DeliveryCtx, Publisher};
use crate::protocol::PubMsg;
use serde::Serialize;
use std::sync::Arc;

/// Consumer created/deleted.
pub const CONSUMER_ACTION: &str = "io.nats.jetstream.advisory.v1.consumer_action";
/// Stream created/updated/deleted.
pub const STREAM_ACTION: &str = "io.nats.jetstream.advisory.v1.stream_action";
/// A message reached max deliveries.
pub const MAX_DELIVER: &str = "io.nats.jetstream.advisory.v1.max_deliver";
/// A message was NAKed.
pub const NAK: &str = "io.nats.jetstream.advisory.v1.nak";
/// A message was terminated.
pub const TERMINATED: &str = "io.nats.jetstream.advisory.v1.terminated";
/// Consumer paused/resumed.
pub const PAUSE: &str = "io.nats.jetstream.advisory.v1.consumer_pause";
/// Sampled ack metric.
pub const ACK_METRIC: &str = "io.nats.jetstream.metric.v1.consumer_ack";

/// The header every event has (`TypedEvent`).
#[derive(Debug, Serialize)]
pub struct Typed {
    /// Schema type.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Unique id.
    pub id: String,
    /// When.
    pub timestamp: Timestamp,
}

impl Typed {
    /// A new header of `kind`, now.
    pub fn new(kind: &'static str) -> Typed {
        Typed {
            kind,
            id: crate::system::event_id(),
            timestamp: Timestamp::now(),
        }
    }
}

fn is_empty(s: &str) -> bool {
    s.is_empty()
}

/// `JSStreamActionAdvisory` / `JSConsumerActionAdvisory` (consumer empty for streams).
#[derive(Debug, Serialize)]
pub struct Action<'a> {
    /// Header.
    #[serde(flatten)]
    pub typed: Typed,
    /// Stream.
    pub stream: &'a str,
    /// Consumer (absent for stream actions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer: Option<&'a str>,
    /// `create`, `delete` or `modify`.
    pub action: &'static str,
    /// JetStream domain.
    #[serde(skip_serializing_if = "is_empty")]
    pub domain: &'a str,
}

/// `JSConsumerDeliveryExceededAdvisory`.
#[derive(Debug, Serialize)]
pub struct MaxDeliver<'a> {
    /// Header.
    #[serde(flatten)]
    pub typed: Typed,
    /// Stream.
    pub stream: &'a str,
    /// Consumer.
    pub consumer: &'a str,
    /// The message.
    pub stream_seq: u64,
    /// How often it was delivered.
    pub deliveries: u64,
    /// JetStream domain.
    #[serde(skip_serializing_if = "is_empty")]
    pub domain: &'a str,
}

/// `JSConsumerDeliveryNakAdvisory` and `JSConsumerDeliveryTerminatedAdvisory`.
#[derive(Debug, Serialize)]
pub struct Delivery<'a> {
    /// Header.
    #[serde(flatten)]
    pub typed: Typed,
    /// Stream.
    pub stream: &'a str,
    /// Consumer.
    pub consumer: &'a str,
    /// Consumer sequence of the delivery.
    pub consumer_seq: u64,
    /// The message.
    pub stream_seq: u64,
    /// How often it was delivered.
    pub deliveries: u64,
    /// `+TERM` reason.
    #[serde(skip_serializing_if = "is_empty")]
    pub reason: &'a str,
    /// JetStream domain.
    #[serde(skip_serializing_if = "is_empty")]
    pub domain: &'a str,
}

/// `JSConsumerPauseAdvisory`.
#[derive(Debug, Serialize)]
pub struct Pause<'a> {
    /// Header.
    #[serde(flatten)]
    pub typed: Typed,
    /// Stream.
    pub stream: &'a str,
    /// Consumer.
    pub consumer: &'a str,
    /// Paused now.
    pub paused: bool,
    /// Until when (zero time when resumed).
    pub pause_until: Timestamp,
    /// JetStream domain.
    #[serde(skip_serializing_if = "is_empty")]
    pub domain: &'a str,
}

/// `JSConsumerAckMetric`.
#[derive(Debug, Serialize)]
pub struct AckMetric<'a> {
    /// Header.
    #[serde(flatten)]
    pub typed: Typed,
    /// Stream.
    pub stream: &'a str,
    /// Consumer.
    pub consumer: &'a str,
    /// Consumer sequence.
    pub consumer_seq: u64,
    /// Stream sequence.
    pub stream_seq: u64,
    /// Delivery to ack, ns.
    pub ack_time: i64,
    /// Deliveries.
    pub deliveries: u64,
    /// JetStream domain.
    #[serde(skip_serializing_if = "is_empty")]
    pub domain: &'a str,
}

/// Every answered JetStream API request.
pub const API_AUDIT: &str = "io.nats.jetstream.advisory.v1.api_audit";
/// Where [`API_AUDIT`] advisories go.
pub const API_AUDIT_SUBJECT: &str = "$JS.EVENT.ADVISORY.API";

/// Who made an API request, as nats-server's `ClientInfo` in advisories (field order
/// and omissions as its JSON). Taken when the request arrives, so the advisory names the
/// connection as it was then.
#[derive(Debug, Clone, Serialize)]
pub struct RequestClient {
    /// When the connection was accepted.
    pub start: Timestamp,
    /// Remote IP.
    pub host: String,
    /// Connection id.
    pub id: u64,
    /// Account.
    pub acc: String,
    /// Authenticated user.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// Client name from CONNECT.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Client library language.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub lang: String,
    /// Client library version.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ver: String,
    /// Round-trip time in nanoseconds (absent until measured).
    #[serde(skip_serializing_if = "is_zero")]
    pub rtt: u64,
    /// Name of the server the client is connected to.
    pub server: String,
    /// Always `Client`.
    pub kind: &'static str,
    /// Always `nats`.
    pub client_type: &'static str,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl RequestClient {
    /// The client behind `conn`, connected to the server called `server`.
    pub fn of(conn: &crate::client::ClientConn, server: &str) -> RequestClient {
        let meta = conn.meta.lock();
        RequestClient {
            start: Timestamp::from_system_time(conn.start),
            host: conn.addr.ip().to_string(),
            id: conn.cid,
            acc: meta.account.clone(),
            user: meta.user.clone().unwrap_or_default(),
            name: meta.name.clone(),
            lang: meta.lang.clone(),
            ver: meta.version.clone(),
            rtt: meta.rtt_nanos,
            server: server.to_string(),
            kind: "Client",
            client_type: "nats",
        }
    }
}

/// `JSAPIAudit`: one answered API request, its body and the answer.
#[derive(Debug, Serialize)]
pub struct ApiAudit<'a> {
    /// Header.
    #[serde(flatten)]
    pub typed: Typed,
    /// Server name.
    pub server: &'a str,
    /// Who asked.
    pub client: &'a RequestClient,
    /// Request subject.
    pub subject: &'a str,
    /// Request body (absent when empty).
    #[serde(skip_serializing_if = "is_empty")]
    pub request: &'a str,
    /// The answer's JSON.
    pub response: &'a str,
    /// JetStream domain.
    #[serde(skip_serializing_if = "is_empty")]
    pub domain: &'a str,
}

/// Publish `event` on `subject` in `account` through `ctx`, if anyone listens.
pub fn send<T: Serialize>(ctx: &mut DeliveryCtx, account: &Arc<Account>, subject: &str, event: &T) {
    if !account.sublist.has_interest(subject.as_bytes()) {
        return;
    }
    let Ok(body) = serde_json::to_vec(event) else {
        return;
    };
    ctx.publish(
        account,
        Publisher::SERVER,
        PubMsg {
            subject: subject.as_bytes(),
            reply: None,
            headers: None,
            payload: &body,
        },
    );
}

/// Publish with a context of its own (API handlers).
pub fn send_now<T: Serialize>(
    server: &Arc<crate::server::ServerShared>,
    account: &Arc<Account>,
    subject: &str,
    event: &T,
) {
    if !account.sublist.has_interest(subject.as_bytes()) {
        return;
    }
    let mut ctx = DeliveryCtx::new(server.clone(), rand::random());
    send(&mut ctx, account, subject, event);
    ctx.flush();
}

/// Consumer created/deleted advisory.
pub fn consumer_action(
    server: &Arc<crate::server::ServerShared>,
    account: &Arc<Account>,
    stream: &str,
    consumer: &str,
    action: &'static str,
    domain: &str,
) {
    let what = if action == "delete" {
        "DELETED"
    } else {
        "CREATED"
    };
    let subject = format!("$JS.EVENT.ADVISORY.CONSUMER.{what}.{stream}.{consumer}");
    send_now(
        server,
        account,
        &subject,
        &Action {
            typed: Typed::new(CONSUMER_ACTION),
            stream,
            consumer: Some(consumer),
            action,
            domain,
        },
    );
}

/// A consumer's pause advisory: its subject and body (`paused` and the config's
/// `pause_until`), for the pause request, a consumer created paused, and a pause that ran
/// out.
pub fn pause<'a>(
    stream: &'a str,
    consumer: &'a str,
    paused: bool,
    pause_until: crate::jetstream::api::time::Timestamp,
    domain: &'a str,
) -> (String, Pause<'a>) {
    (
        format!("$JS.EVENT.ADVISORY.CONSUMER.PAUSE.{stream}.{consumer}"),
        Pause {
            typed: Typed::new(PAUSE),
            stream,
            consumer,
            paused,
            pause_until,
            domain,
        },
    )
}

/// Stream created/updated/deleted advisory.
pub fn stream_action(
    server: &Arc<crate::server::ServerShared>,
    account: &Arc<Account>,
    stream: &str,
    action: &'static str,
    domain: &str,
) {
    let what = match action {
        "delete" => "DELETED",
        "modify" => "UPDATED",
        _ => "CREATED",
    };
    let subject = format!("$JS.EVENT.ADVISORY.STREAM.{what}.{stream}");
    send_now(
        server,
        account,
        &subject,
        &Action {
            typed: Typed::new(STREAM_ACTION),
            stream,
            consumer: None,
            action,
            domain,
        },
    );
}

/// A priority group got a pinned client.
pub const GROUP_PINNED: &str = "io.nats.jetstream.advisory.v1.consumer_group_pinned";
/// A priority group's pin ended.
pub const GROUP_UNPINNED: &str = "io.nats.jetstream.advisory.v1.consumer_group_unpinned";

/// `JSConsumerGroupPinnedAdvisory` (`pinned_id` set) and
/// `JSConsumerGroupUnpinnedAdvisory` (`reason` set): same fields up to the last.
#[derive(Debug, Serialize)]
pub struct GroupPin<'a> {
    /// Header.
    #[serde(flatten)]
    pub typed: Typed,
    /// Account name.
    #[serde(skip_serializing_if = "is_empty")]
    pub account: &'a str,
    /// Stream.
    pub stream: &'a str,
    /// Consumer.
    pub consumer: &'a str,
    /// JetStream domain.
    #[serde(skip_serializing_if = "is_empty")]
    pub domain: &'a str,
    /// Priority group.
    pub group: &'a str,
    /// The new pin id (pinned advisory only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned_id: Option<&'a str>,
    /// `admin` or `timeout` (unpinned advisory only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
}

impl<'a> GroupPin<'a> {
    /// The advisory's subject and body for a pin change of consumer `consumer`.
    pub fn of(
        account: &'a str,
        stream: &'a str,
        consumer: &'a str,
        domain: &'a str,
        ev: &'a super::consumer::machine::PinEvent,
    ) -> (String, GroupPin<'a>) {
        use super::consumer::machine::PinEvent;
        let (kind, pre, group, pinned_id, reason) = match ev {
            PinEvent::Pinned { group, id } => {
                (GROUP_PINNED, "PINNED", group, Some(id.as_str()), None)
            }
            PinEvent::Unpinned { group, reason } => {
                (GROUP_UNPINNED, "UNPINNED", group, None, Some(*reason))
            }
        };
        (
            format!("$JS.EVENT.ADVISORY.CONSUMER.{pre}.{stream}.{consumer}"),
            GroupPin {
                typed: Typed::new(kind),
                account,
                stream,
                consumer,
                domain,
                group,
                pinned_id,
                reason,
            },
        )
    }
}

/// An atomic batch was given up.
pub const BATCH_ABANDONED: &str = "io.nats.jetstream.advisory.v1.stream_batch_abandoned";

/// `JSStreamBatchAbandonedAdvisory` (without `account`: it goes to the stream's own
/// account, not the system account's copy nats-server also sends).
#[derive(Debug, Serialize)]
pub struct BatchAbandoned<'a> {
    /// Header.
    #[serde(flatten)]
    pub typed: Typed,
    /// The stream.
    pub stream: &'a str,
    /// JetStream domain.
    #[serde(skip_serializing_if = "is_empty")]
    pub domain: &'a str,
    /// The batch id.
    pub batch: &'a str,
    /// `timeout`, `large`, `incomplete` or `unsupported`.
    pub reason: &'static str,
}

/// `$JS.EVENT.ADVISORY.STREAM.BATCH_ABANDONED.<stream>`.
pub fn batch_abandoned(
    server: &Arc<crate::server::ServerShared>,
    account: &Arc<Account>,
    (stream, domain): (&str, &str),
    batch: &str,
    reason: &'static str,
) {
    let subject = format!("$JS.EVENT.ADVISORY.STREAM.BATCH_ABANDONED.{stream}");
    send_now(
        server,
        account,
        &subject,
        &BatchAbandoned {
            typed: Typed::new(BATCH_ABANDONED),
            stream,
            domain,
            batch,
            reason,
        },
    );
}
