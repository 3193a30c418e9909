//! The subjects a consumer listens on: acks (`$JS.ACK.<stream>.<consumer>.>`),
//! flow-control responses (`$JS.FC.<stream>.<consumer>.*`), and pull requests
//! (`$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`, routed here by the API handler).
//!
//! These handlers run on the publisher's reader task. They parse, answer malformed
//! requests at once, and queue everything else for the consumer's task; they never lock
//! the consumer's machine.

use super::machine::{AckKind, PullGroup};
use super::{Consumer, Event, PullArgs};
use crate::account::Account;
use crate::client::deliver::{DeliveryCtx, Publisher};
use crate::client::subscription::{InternalHandler, Subscription};
use crate::jetstream::api::consumer::{NextRequest, NextRequestBody};
use crate::protocol::PubMsg;
use std::sync::{Arc, Weak};

/// Ack subject prefix.
pub const ACK_PREFIX: &str = "$JS.ACK.";
/// Flow-control reply prefix.
pub const FC_PREFIX: &str = "$JS.FC.";

/// The numbers of an ack subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckTokens {
    /// Delivery count of the delivery being acked.
    pub dc: u64,
    /// Stream sequence.
    pub sseq: u64,
    /// Consumer sequence.
    pub dseq: u64,
}

/// Parse the tokens after `$JS.ACK.<stream>.<consumer>.`:
/// `<delivered count>.<stream seq>.<consumer seq>.<timestamp>.<pending>`.
pub fn parse_ack_tail(tail: &[u8]) -> Option<AckTokens> {
    let num = |t: &[u8]| -> Option<u64> { std::str::from_utf8(t).ok()?.parse().ok() };
    let mut it = tail.split(|&b| b == b'.');
    let dc = num(it.next()?)?;
    let sseq = num(it.next()?)?;
    let dseq = num(it.next()?)?;
    let _ts = it.next()?;
    let _pending = it.next()?;
    if it.next().is_some() {
        return None;
    }
    Some(AckTokens { dc, sseq, dseq })
}

/// What an ack body asks for (and, for `+NXT`, the pull request after it). `None` for a
/// body that is not an ack.
pub fn parse_ack_body(body: &[u8]) -> Option<(AckKind, Option<&[u8]>)> {
    if body.is_empty() || body == b"+ACK" || body == b"+OK" {
        return Some((AckKind::Ack, None));
    }
    if let Some(rest) = body.strip_prefix(b"+NXT") {
        return Some((AckKind::Ack, Some(rest)));
    }
    if let Some(rest) = body.strip_prefix(b"-NAK") {
        return Some((AckKind::Nak(parse_nak_delay(rest)), None));
    }
    if body == b"+WPI" {
        return Some((AckKind::Progress, None));
    }
    if body.starts_with(b"+TERM") {
        return Some((AckKind::Term, None));
    }
    None
}

/// A NAK's delay: `{"delay": <ns>}` or a Go duration (`-NAK 1s`); none if absent or bad.
fn parse_nak_delay(rest: &[u8]) -> Option<i64> {
    let rest = rest.trim_ascii();
    if rest.is_empty() {
        return None;
    }
    if rest.starts_with(b"{") {
        #[derive(serde::Deserialize)]
        struct Delay {
            #[serde(default)]
            delay: i64,
        }
        return serde_json::from_slice::<Delay>(rest)
            .ok()
            .map(|d| d.delay)
            .filter(|d| *d > 0);
    }
    std::str::from_utf8(rest)
        .ok()
        .and_then(|s| crate::conf::convert::parse_go_duration(s).ok())
        .filter(|d| *d > 0)
}

/// Parse a pull request body into arguments, or the text of a `400 Bad Request`.
pub fn parse_pull(body: &[u8]) -> Result<PullArgs, String> {
    // nats-server decodes the request into an unnamed struct type, so its type errors
    // read "Go struct field .batch of type int".
    let parsed = NextRequest::parse_body(body).map_err(|e| {
        e.replace(
            "Go struct field JSApiConsumerGetNextRequest.",
            "Go struct field .",
        )
    })?;
    Ok(match parsed {
        NextRequestBody::Default => PullArgs {
            batch: 1,
            ..PullArgs::default()
        },
        NextRequestBody::Batch(n) => PullArgs {
            batch: n,
            ..PullArgs::default()
        },
        NextRequestBody::Json(r) => PullArgs {
            batch: r.batch,
            max_bytes: r.max_bytes,
            expires: r.expires,
            no_wait: r.no_wait,
            heartbeat: r.idle_heartbeat,
            group: Some(PullGroup {
                group: r.group,
                min_pending: r.min_pending,
                min_ack_pending: r.min_ack_pending,
                id: r.id,
                priority: r.priority,
            }),
        },
    })
}

/// Publish a header-only status message.
pub fn send_status(
    ctx: &mut DeliveryCtx,
    account: &Arc<Account>,
    reply: &[u8],
    line: &str,
    headers: &[(&str, String)],
) {
    let mut h = Vec::with_capacity(32 + line.len());
    h.extend_from_slice(b"NATS/1.0 ");
    h.extend_from_slice(line.as_bytes());
    h.extend_from_slice(b"\r\n");
    for (k, v) in headers {
        h.extend_from_slice(k.as_bytes());
        h.extend_from_slice(b": ");
        h.extend_from_slice(v.as_bytes());
        h.extend_from_slice(b"\r\n");
    }
    h.extend_from_slice(b"\r\n");
    ctx.publish(
        account,
        Publisher::SERVER,
        PubMsg {
            subject: reply,
            reply: None,
            headers: Some(&h),
            payload: b"",
        },
    );
}

/// Handle a pull request for `consumer` (MSG.NEXT with its headers, or `+NXT`).
pub fn pull_request(
    consumer: &Consumer,
    ctx: &mut DeliveryCtx,
    account: &Arc<Account>,
    reply: &[u8],
    headers: Option<&[u8]>,
    body: &[u8],
) {
    if consumer.is_push() {
        send_status(ctx, account, reply, "409 Consumer is push based", &[]);
        return;
    }
    if let Some(h) = headers
        && let Some(level) =
            crate::jetstream::headers::get_str(h, crate::jetstream::headers::REQUIRED_API_LEVEL)
        && crate::jetstream::api::required_api_level_unmet(level)
    {
        send_status(ctx, account, reply, "412 Required Api Level", &[]);
        return;
    }
    match parse_pull(body) {
        Ok(req) => {
            consumer.touch();
            consumer.send(Event::Pull {
                reply: reply.into(),
                req,
            });
        }
        Err(e) => send_status(ctx, account, reply, &format!("400 Bad Request - {e}"), &[]),
    }
}

/// The ack subscription's handler.
pub struct AckSub {
    /// The consumer.
    pub consumer: Weak<Consumer>,
    /// `$JS.ACK.<stream>.<consumer>.` (to strip).
    pub prefix: Box<[u8]>,
}

impl InternalHandler for AckSub {
    fn handle(
        &self,
        ctx: &mut DeliveryCtx,
        account: &Arc<Account>,
        _sub: &Subscription,
        _publisher: Publisher<'_>,
        _routed_by: &[u8],
        msg: PubMsg<'_>,
    ) -> bool {
        let Some(c) = self.consumer.upgrade() else {
            return false;
        };
        let Some(tokens) = msg
            .subject
            .strip_prefix(&*self.prefix)
            .and_then(parse_ack_tail)
        else {
            // Not an ack subject nats-server would take: nobody answers (a requester
            // gets no responders, as from nats-server).
            return false;
        };
        let Some((kind, next)) = parse_ack_body(msg.payload) else {
            // An ack body nats-server does not know does nothing, but a requester still
            // gets its empty answer (an ack_sync-style client would otherwise time out).
            if let Some(reply) = msg.reply {
                super::super::api_server::publish(ctx, account, reply, b"");
            }
            return true;
        };
        c.touch();
        let reason = match kind {
            AckKind::Term => msg
                .payload
                .strip_prefix(b"+TERM")
                .map(|r| String::from_utf8_lossy(r.trim_ascii()).into_owned()),
            _ => None,
        };
        match next {
            Some(body) => {
                c.send(Event::Ack {
                    tokens,
                    kind,
                    reply: None,
                    reason,
                });
                if let Some(reply) = msg.reply {
                    pull_request(&c, ctx, account, reply, None, body);
                }
            }
            None => {
                c.send(Event::Ack {
                    tokens,
                    kind,
                    reply: msg.reply.map(Into::into),
                    reason,
                });
            }
        }
        true
    }
}

/// The flow-control subscription's handler.
pub struct FcSub {
    /// The consumer.
    pub consumer: Weak<Consumer>,
}

impl InternalHandler for FcSub {
    fn handle(
        &self,
        _ctx: &mut DeliveryCtx,
        _account: &Arc<Account>,
        _sub: &Subscription,
        _publisher: Publisher<'_>,
        _routed_by: &[u8],
        msg: PubMsg<'_>,
    ) -> bool {
        if let Some(c) = self.consumer.upgrade() {
            let seq = |key| {
                msg.headers
                    .and_then(|h| crate::jetstream::headers::get(h, key))
                    .map(crate::jetstream::headers::go_parse_int64)
            };
            // nats-server acks only with a positive stream sequence; a consumer
            // sequence below 1 counts as 0.
            let last = match (seq("Nats-Last-Stream"), seq("Nats-Last-Consumer")) {
                (Some(s), d) if s > 0 => Some((s as u64, d.unwrap_or(0).max(0) as u64)),
                _ => None,
            };
            c.send(Event::FlowControl {
                subject: msg.subject.into(),
                last,
            });
        }
        true
    }
}

impl Consumer {
    /// Record a sign of life (for `inactive_threshold`).
    pub fn touch(&self) {
        self.last_activity
            .store(super::now_nanos(), std::sync::atomic::Ordering::Relaxed);
    }

    /// Subscribe the ack and flow-control subjects.
    pub fn subscribe(self: &Arc<Self>) {
        let account = &self.stream.account;
        let ack_prefix = format!("{ACK_PREFIX}{}.{}.", self.stream.name, self.name);
        let ack_subject = format!("{ack_prefix}>");
        let ack: Arc<dyn InternalHandler> = Arc::new(AckSub {
            consumer: Arc::downgrade(self),
            prefix: ack_prefix.into_bytes().into(),
        });
        let fc_subject = format!("{FC_PREFIX}{}.{}.*", self.stream.name, self.name);
        let fc: Arc<dyn InternalHandler> = Arc::new(FcSub {
            consumer: Arc::downgrade(self),
        });
        // Under the `flow_control` ack policy only flow-control responses ack, and under
        // `none` nothing does: nats-server does not listen for acks at all then (an ack,
        // `+NXT` included, finds no responders).
        use crate::jetstream::api::consumer::AckPolicy;
        let listens = !matches!(
            self.config.read().ack_policy,
            AckPolicy::FlowControl | AckPolicy::None
        );
        let mut subs = self.subs.lock();
        let mut wanted = vec![(fc_subject, fc)];
        if listens {
            wanted.push((ack_subject, ack));
        }
        for (subject, handler) in wanted {
            let sub = Arc::new(Subscription::internal(handler, subject.as_bytes(), None));
            if account
                .sublist
                .insert(subject.as_bytes(), None, sub.clone())
                .is_ok()
            {
                subs.push(sub);
            }
        }
    }
}
