//! Fast batch publish on the stream task: each message of a fast batch is stored like a
//! publish (`store_one`), and the flow control of `fast_batch` decides what goes back on
//! its reply subject.
//!
//! Why the answers wait for durability: nats-server's standalone store acknowledges
//! what it has written; natrium's flow acknowledgements and PubAck go out with the
//! batch of publishes they belong to, once that is durable under the stream's
//! durability mode (the same rule as every PubAck), in the order nats-server sends them.

use std::sync::Arc;
use std::time::Instant;

use super::super::api::errors::{ApiError, ErrorId};
use super::super::api::pub_ack::PubAckResponse;
use super::super::api::stream::StreamConfig;
use super::super::fast_batch::{Begin, FastBatches, FastLimits, Reply};
use super::super::headers;
use super::{Answers, Inbound, Outcome, Stored, Stream, TaskState};
use crate::client::deliver::DeliveryCtx;
use crate::server::ServerShared;

/// Whether a publish is part of a *fast* batch: its reply subject ends `.$FI`
/// (nats-server's `getFastBatch`, which routes even a malformed one there).
pub(super) fn is_fast_batch_msg(m: &Inbound) -> bool {
    m.sourced.is_none()
        && !m.scheduled
        && m.reply()
            .is_some_and(|r| r.len() > 4 && r.ends_with(b".$FI"))
}

impl Stream {
    /// One fast-batch message: the stream-wide checks, the batch's flow control, and,
    /// where it says so, storing the message. Every answer goes into `out`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn fast_batch_msg(
        &self,
        cfg: &StreamConfig,
        state: &mut TaskState,
        m: &Inbound,
        now: i64,
        quota: &mut Option<super::super::limits::Quota>,
        server: &Arc<ServerShared>,
        republish: &mut Option<DeliveryCtx>,
        out: &mut Answers,
    ) {
        let mut replies: Vec<Reply> = Vec::new();
        let mut ticket = None;
        self.fast_batch_step(
            cfg,
            state,
            m,
            now,
            quota,
            (server, republish),
            (&mut ticket, &mut replies),
        );
        if ticket.is_some() {
            state.fast_ticket = state.fast_ticket.max(ticket);
        }
        // An answer that says messages are stored waits for (and, if it failed, reports)
        // the fsync of every fast-batch message stored so far, also when this message
        // itself stored nothing (a ping, an end-of-batch commit, a refused message).
        let claims = replies.iter().any(|r| {
            matches!(
                r,
                Reply::Ack { .. } | Reply::PubAck { .. } | Reply::Duplicate { .. }
            )
        });
        let ticket = if claims {
            ticket.max(state.fast_ticket)
        } else {
            ticket
        };
        out.ticket = out.ticket.max(ticket);
        let Some(reply) = m.reply() else {
            return;
        };
        let no_ack = cfg.no_ack;
        for r in replies {
            let wire = match r {
                // Sent only where the stream answers publishes at all.
                Reply::Start { .. } | Reply::Error(_) if no_ack => continue,
                Reply::Start { msgs } => {
                    format!("{{\"type\":\"ack\",\"seq\":0,\"msgs\":{msgs}}}").into_bytes()
                }
                Reply::FirstError(e) => PubAckResponse::error(self.name.clone(), e).to_wire(),
                Reply::Ack { seq, msgs } => {
                    format!("{{\"type\":\"ack\",\"seq\":{seq},\"msgs\":{msgs}}}").into_bytes()
                }
                Reply::Gap { last_seq, seq } => {
                    format!("{{\"type\":\"gap\",\"last_seq\":{last_seq},\"seq\":{seq}}}")
                        .into_bytes()
                }
                Reply::Err { seq, error } => {
                    let e = serde_json::to_string(&error).unwrap_or_default();
                    format!("{{\"type\":\"err\",\"seq\":{seq},\"error\":{e}}}").into_bytes()
                }
                Reply::PubAck {
                    stream_seq,
                    id,
                    count,
                } => self.batch_ack(stream_seq, false, id, count),
                Reply::Duplicate {
                    stream_seq,
                    id,
                    count,
                } => self.batch_ack(stream_seq, true, id, count),
                Reply::Error(e) => {
                    out.replies.extend_from_slice(reply);
                    out.outcomes.push((out.replies.len(), Outcome::Failed(e)));
                    continue;
                }
            };
            out.replies.extend_from_slice(reply);
            out.outcomes.push((out.replies.len(), Outcome::Raw(wire)));
        }
    }

    /// [`Stream::fast_batch_msg`] without the rendering: the answers, and the ticket
    /// of a stored message.
    #[allow(clippy::too_many_arguments)]
    fn fast_batch_step(
        &self,
        cfg: &StreamConfig,
        state: &mut TaskState,
        m: &Inbound,
        now: i64,
        quota: &mut Option<super::super::limits::Quota>,
        (server, republish): (&Arc<ServerShared>, &mut Option<DeliveryCtx>),
        (ticket, replies): (&mut Option<natrium_store::Ticket>, &mut Vec<Reply>),
    ) {
        let hdrs = m.headers().unwrap_or(&[]);
        if let Some(e) = self.batch_pre_check(
            cfg,
            m,
            quota,
            (cfg.allow_batched, ApiError::batch_publish_disabled),
        ) {
            replies.push(Reply::Error(e));
            return;
        }
        let Some(Some(fm)) = m.reply().and_then(super::super::fast_batch::parse_reply) else {
            replies.push(Reply::Error(ApiError::batch_publish_invalid_pattern()));
            return;
        };
        let Some(js) = server.js.get() else {
            replies.push(Reply::Error(ApiError::insufficient_resources()));
            return;
        };
        let limits = FastLimits {
            per_stream: js.batch_limits.fast_inflight_per_stream,
            total: js.batch_limits.fast_inflight_total,
            timeout: js.batch_limits.timeout,
        };
        let api_level = headers::get_set(hdrs, headers::REQUIRED_API_LEVEL);
        let api_level_unmet = api_level.is_some_and(|v| {
            super::super::api::required_api_level_unmet(&String::from_utf8_lossy(v))
        });
        let fast = state
            .fast
            .get_or_insert_with(|| FastBatches::new(js.fast_batches.clone()));
        if fast.begin(&fm, api_level_unmet, Instant::now(), &limits, replies) == Begin::Done {
            return;
        }
        // Stored like any publish (the API level header is not kept, as nats-server).
        let stripped;
        let m = if api_level.is_some() {
            let block = headers::without_header(hdrs, headers::REQUIRED_API_LEVEL);
            match Inbound::new(m.subject(), m.reply(), Some(&block), m.payload()) {
                Some(i) => {
                    stripped = i;
                    &stripped
                }
                None => m,
            }
        } else {
            m
        };
        let result = self.store_one(cfg, state, m, now, quota, (server, republish));
        let Some(fast) = state.fast.as_mut() else {
            return;
        };
        match result {
            Ok(Stored::New { seq, ticket: t, .. }) => {
                *ticket = Some(t);
                fast.stored(&fm, seq, replies);
            }
            Ok(Stored::Skipped { seq }) => fast.stored(&fm, seq, replies),
            Ok(Stored::Duplicate { seq }) => fast.failed(
                &fm,
                ApiError::atomic_publish_contains_duplicate_message(),
                Some(seq),
                replies,
            ),
            // Refused by the store itself (a check nats-server makes only when storing).
            Err(e) if e.is(ErrorId::StreamWrongLastMsgId) => fast.store_failed(&fm, e, replies),
            Err(e) => fast.failed(&fm, e, None, replies),
        }
    }

    /// Drop fast batches idle past the timeout.
    pub(super) fn expire_fast_batches(state: &mut TaskState) {
        if let Some(f) = state.fast.as_mut() {
            f.expire(Instant::now());
        }
    }
}
