//! Reading stored messages: `STREAM.MSG.GET` (a JSON answer) and `DIRECT.GET` (the message
//! itself, with `Nats-Stream`/`Nats-Subject`/`Nats-Sequence`/`Nats-Time-Stamp` headers).
//!
//! Direct gets are what KV `get` uses, so they are answered inline on the requester's
//! task, without a queue hop; they only read the store.

use super::api::direct::{
    DirectGetStatus, MsgGetRequest, headers as dh, parse_direct_get,
    parse_direct_get_last_by_subject,
};
use super::api::errors::ApiError;
use super::api::go_json::{GoRequest, Mode};
use super::api::stream::StoredMsg as ApiStoredMsg;
use super::api::time::Timestamp;
use super::engine::JetStream;
use super::stream::Stream;
use crate::account::Account;
use crate::client::deliver::{DeliveryCtx, Publisher};
use crate::protocol::PubMsg;
use natrium_store::{StoreError, StoredMsg, SubjectFilter};
use std::sync::Arc;

/// The first sequence a get starts from: the one `start_time` names (with Go's
/// wrapping `UnixNano`, so far-future times behave as in nats-server), else `seq`.
fn start_seq(stream: &Stream, req: &MsgGetRequest) -> u64 {
    match &req.start_time {
        Some(t) => stream.store.seq_from_time(t.unix_nanos_wrapping()),
        None => req.seq,
    }
}

/// A subject filter from a request field; an invalid one matches nothing (`None`).
fn filter_of(subject: &str) -> Option<SubjectFilter> {
    if subject.is_empty() {
        Some(SubjectFilter::all())
    } else {
        SubjectFilter::new(subject).ok()
    }
}

/// Load what a get request asks for (single-message forms), as nats-server picks it:
/// `next_by_subj` from the start sequence, else the message at the start sequence, else
/// the last one on `last_by_subj`.
fn load_one(stream: &Stream, req: &MsgGetRequest) -> Result<StoredMsg, StoreError> {
    let store = &stream.store;
    let seq = start_seq(stream, req);
    if !req.next_by_subj.is_empty() {
        let f = filter_of(&req.next_by_subj).ok_or(StoreError::NotFound)?;
        return store.load_next_msg(&f, seq);
    }
    if req.start_time.is_some() && seq > 0 {
        return store.load_next_msg(&SubjectFilter::all(), seq);
    }
    if seq > 0 {
        return store.load_msg(seq);
    }
    let f = filter_of(&req.last_by_subj).ok_or(StoreError::NotFound)?;
    store.load_last_msg(&f)
}

/// Decode and check a `STREAM.MSG.GET` body: no body (or `{}`) is 10003, then JSON
/// errors (10025), then conflicting options (10003).
pub fn decode_msg_get(body: &[u8]) -> Result<MsgGetRequest, ApiError> {
    if super::api::is_empty_request(body) {
        return Err(ApiError::bad_request());
    }
    let req = MsgGetRequest::decode_request(body, Mode::Strict)?;
    req.check_msg_get()?;
    Ok(req)
}

/// `STREAM.MSG.GET`: the message as JSON (without its headers when `no_hdr`).
pub fn msg_get(stream: &Stream, req: &MsgGetRequest) -> Result<ApiStoredMsg, ApiError> {
    let m = load_one(stream, req).map_err(|_| ApiError::no_message_found())?;
    Ok(ApiStoredMsg {
        subject: m.subject,
        seq: m.seq,
        hdrs: if req.no_hdr {
            Vec::new()
        } else {
            m.hdrs.to_vec()
        },
        data: m.payload.to_vec(),
        time: Timestamp::from_store_nanos(m.ts),
    })
}

/// The header block of a direct-get answer: the stored headers, then ours, then `extra`
/// lines.
fn answer_headers(stream: &Stream, m: &StoredMsg, extra: &[(&str, String)]) -> Vec<u8> {
    stored_msg_headers(&m.hdrs, &stream.name, &m.subject, (m.seq, m.ts), extra)
}

/// A stored message's header block `stored` extended with `Nats-Stream`, `Nats-Subject`,
/// `Nats-Sequence`, `Nats-Time-Stamp` and then the `extra` lines, as nats-server adds
/// them to a direct get answer and to a republished message.
pub(super) fn stored_msg_headers(
    stored: &[u8],
    stream: &str,
    subject: &str,
    (seq, ts): (u64, i64),
    extra: &[(&str, String)],
) -> Vec<u8> {
    let mut h = Vec::with_capacity(stored.len() + 160);
    match stored.strip_suffix(b"\r\n") {
        Some(stored) if !stored.is_empty() => h.extend_from_slice(stored),
        _ => h.extend_from_slice(b"NATS/1.0\r\n"),
    }
    let mut line = |k: &str, v: &str| {
        h.extend_from_slice(k.as_bytes());
        h.extend_from_slice(b": ");
        h.extend_from_slice(v.as_bytes());
        h.extend_from_slice(b"\r\n");
    };
    line(dh::STREAM, stream);
    line(dh::SUBJECT, subject);
    line(dh::SEQUENCE, itoa::Buffer::new().format(seq));
    line(
        dh::TIME_STAMP,
        &Timestamp::from_store_nanos(ts).to_rfc3339_nano(),
    );
    for (k, v) in extra {
        line(k, v);
    }
    h.extend_from_slice(b"\r\n");
    h
}

fn send(
    ctx: &mut DeliveryCtx,
    account: &Arc<Account>,
    reply: &[u8],
    headers: &[u8],
    payload: &[u8],
) {
    send_opt(ctx, account, reply, Some(headers), payload);
}

/// [`send`], or a plain message without headers (`no_hdr`).
fn send_opt(
    ctx: &mut DeliveryCtx,
    account: &Arc<Account>,
    reply: &[u8],
    headers: Option<&[u8]>,
    payload: &[u8],
) {
    ctx.publish(
        account,
        Publisher::SERVER,
        PubMsg {
            subject: reply,
            reply: None,
            headers,
            payload,
        },
    );
}

/// The byte budget of a batch or multi-last answer: `max_bytes`, else the server's
/// `max_pending`, as nats-server.
fn byte_budget(ctx: &DeliveryCtx, req: &MsgGetRequest) -> i64 {
    if req.max_bytes != 0 {
        req.max_bytes
    } else {
        ctx.server.opts().max_pending
    }
}

/// Bytes of a sent message as nats-server counts them against the budget.
fn sent_size(m: &StoredMsg) -> i64 {
    (m.subject.len() + m.hdrs.len() + m.payload.len()) as i64
}

/// `$JS.API.DIRECT.GET.<stream>[.<subject>]`. Returns false when nobody would have
/// answered in nats-server (no such stream, or `allow_direct` off), so the requester gets
/// a no-responders status.
pub fn direct_get(
    js: &Arc<JetStream>,
    ctx: &mut DeliveryCtx,
    account: &Arc<Account>,
    msg: PubMsg<'_>,
) -> bool {
    let subject = String::from_utf8_lossy(msg.subject);
    let rest = subject.strip_prefix("$JS.API.DIRECT.GET.").unwrap_or("");
    let (name, in_subject) = match rest.split_once('.') {
        Some((n, s)) => (n, Some(s)),
        None => (rest, None),
    };
    let Some(jsa) = js.account(&account.name) else {
        return false;
    };
    // The stream itself when it allows direct gets; else a mirror of it that serves
    // them (`mirror_direct`), as nats-server's mirrors answer for their origin (in one
    // server the origin answers while it can, so a mirror matters once it is gone).
    let stream = match jsa.stream(name) {
        Some(s) if s.config().allow_direct => s,
        Some(_) => return false,
        None => {
            let mirror = jsa
                .streams
                .read()
                .values()
                .find(|s| {
                    let cfg = s.config();
                    cfg.mirror_direct
                        && cfg
                            .mirror
                            .as_ref()
                            .is_some_and(|m| m.name == name && m.external.is_none())
                })
                .cloned();
            match mirror {
                Some(m) => m,
                None => return false,
            }
        }
    };
    let Some(reply) = msg.reply else {
        return true;
    };
    if let Some(h) = msg.headers
        && let Some(level) = super::headers::get_str(h, super::headers::REQUIRED_API_LEVEL)
        && super::api::required_api_level_unmet(level)
    {
        send(
            ctx,
            account,
            reply,
            DirectGetStatus::RequiredApiLevel.header(),
            b"",
        );
        return true;
    }
    let req = match in_subject {
        Some(_) => parse_direct_get_last_by_subject(&subject, msg.payload),
        None => parse_direct_get(msg.payload),
    };
    let req = match req {
        Ok(r) => r,
        Err(status) => {
            send(ctx, account, reply, status.header(), b"");
            return true;
        }
    };
    if !req.multi_last.is_empty() {
        multi_last(&stream, ctx, account, reply, &req);
    } else if req.batch != 0 {
        // A negative batch sends no message, only the EOB status (nats-server).
        batch(&stream, ctx, account, reply, &req);
    } else {
        match load_one(&stream, &req) {
            Ok(m) if req.no_hdr => send_opt(ctx, account, reply, None, &m.payload),
            Ok(m) => {
                let h = answer_headers(&stream, &m, &[]);
                send(ctx, account, reply, &h, &m.payload);
            }
            Err(_) => send(ctx, account, reply, dh::NOT_FOUND, b""),
        }
    }
    true
}

fn eob(pending: u64, last: u64, up_to: Option<u64>) -> Vec<u8> {
    let mut h = format!(
        "{}\r\n{}: {pending}\r\n{}: {last}\r\n",
        dh::EOB_STATUS,
        dh::NUM_PENDING,
        dh::LAST_SEQUENCE
    );
    if let Some(u) = up_to {
        h.push_str(&format!("{}: {u}\r\n", dh::UP_TO_SEQUENCE));
    }
    h.push_str("\r\n");
    h.into_bytes()
}

/// `batch`: up to N messages from a start, each with pending and previous sequence, then
/// an EOB status. As in nats-server: `up_to_seq` does not apply here; the budget is
/// checked after each message (so the message crossing it is still sent); the pending
/// count is taken once at the start and counted down per message sent with headers (so
/// with `no_hdr` the EOB repeats the starting count), and only recounted when the stream
/// grew meanwhile.
fn batch(
    stream: &Stream,
    ctx: &mut DeliveryCtx,
    account: &Arc<Account>,
    reply: &[u8],
    req: &MsgGetRequest,
) {
    let Some(filter) = filter_of(&req.next_by_subj) else {
        send(ctx, account, reply, dh::NOT_FOUND, b"");
        return;
    };
    let store = &stream.store;
    let mut seq = start_seq(stream, req);
    let mut pending = store.num_pending(seq, &filter, false);
    let valid_through = store.fast_state().last_seq;
    let budget = byte_budget(ctx, req);
    let mut sent_bytes = 0i64;
    let mut last = 0u64;
    for i in 0..req.batch {
        let loaded = if !req.next_by_subj.is_empty() || seq > 0 {
            store.load_next_msg(&filter, seq)
        } else {
            store.load_last_msg(&filter)
        };
        let m = match loaded {
            Ok(m) => m,
            Err(_) if i > 0 => break,
            Err(_) => {
                send(ctx, account, reply, dh::NOT_FOUND, b"");
                return;
            }
        };
        seq = m.seq + 1;
        if req.no_hdr {
            send_opt(ctx, account, reply, None, &m.payload);
        } else {
            pending = pending.saturating_sub(1);
            let extra = [
                (dh::NUM_PENDING, pending.to_string()),
                (dh::LAST_SEQUENCE, last.to_string()),
            ];
            let h = answer_headers(stream, &m, &extra);
            send(ctx, account, reply, &h, &m.payload);
        }
        last = m.seq;
        sent_bytes += sent_size(&m);
        if sent_bytes >= budget {
            break;
        }
    }
    if store.fast_state().last_seq > valid_through {
        pending = store.num_pending(seq, &filter, false);
    }
    send(ctx, account, reply, &eob(pending, last, None), b"");
}

/// Most subjects a `multi_last` answer may cover (nats-server's limit).
const MULTI_LAST_MAX: usize = 1024;

/// `multi_last`: the last message (at or before `up_to_seq` / `up_to_time`) of every
/// subject matching the filters, in sequence order from `seq` on, then an EOB status
/// with the sequence the answer is consistent up to. `Nats-Num-Pending` counts down over
/// all matches, also those skipped below `seq`; `batch` and the byte budget cut the
/// answer short. `no_hdr` does not apply here, as in nats-server.
fn multi_last(
    stream: &Stream,
    ctx: &mut DeliveryCtx,
    account: &Arc<Account>,
    reply: &[u8],
    req: &MsgGetRequest,
) {
    // An empty filter matches nothing here (nats-server skips it), not everything as
    // elsewhere; with no other filter the answer is "no results".
    let filters = req.multi_last.iter().filter(|f| !f.is_empty());
    if filters.clone().next().is_none() {
        send(ctx, account, reply, dh::NO_RESULTS, b"");
        return;
    }
    let Ok(filter) = SubjectFilter::multi(filters) else {
        send(ctx, account, reply, dh::NO_RESULTS, b"");
        return;
    };
    let store = &stream.store;
    let state = store.fast_state();
    let mut up_to = req.up_to_seq;
    if let Some(t) = &req.up_to_time {
        let seq = store.seq_from_time(t.unix_nanos_wrapping());
        if seq <= state.first_seq {
            send(ctx, account, reply, dh::NO_RESULTS, b"");
            return;
        }
        // The first sequence at or after the time; the answer stops before it.
        up_to = seq - 1;
    }
    if up_to == 0 {
        up_to = state.last_seq;
    }
    let seqs = last_seqs_up_to(stream, &filter, up_to, state.last_seq);
    if seqs.len() > MULTI_LAST_MAX {
        send(ctx, account, reply, dh::TOO_MANY_RESULTS, b"");
        return;
    }
    if seqs.is_empty() {
        send(ctx, account, reply, dh::NO_RESULTS, b"");
        return;
    }
    let budget = byte_budget(ctx, req);
    let mut pending = seqs.len() as u64;
    let mut sent = 0i64;
    let mut sent_bytes = 0i64;
    let mut last = 0u64;
    for seq in seqs {
        pending = pending.saturating_sub(1);
        if seq < req.seq {
            continue;
        }
        let Ok(m) = store.load_msg(seq) else {
            send(ctx, account, reply, dh::NOT_FOUND, b"");
            return;
        };
        let extra = [
            (dh::NUM_PENDING, pending.to_string()),
            (dh::LAST_SEQUENCE, last.to_string()),
        ];
        let h = answer_headers(stream, &m, &extra);
        send(ctx, account, reply, &h, &m.payload);
        last = m.seq;
        sent_bytes += sent_size(&m);
        if sent_bytes >= budget {
            break;
        }
        sent += 1;
        if req.batch > 0 && sent >= req.batch {
            break;
        }
    }
    send(ctx, account, reply, &eob(pending, last, Some(up_to)), b"");
}

/// The last sequence of every subject matching `filter` among messages at or before
/// `up_to`, ascending, each once (a filter given twice names its subjects once).
fn last_seqs_up_to(stream: &Stream, filter: &SubjectFilter, up_to: u64, last_seq: u64) -> Vec<u64> {
    let store = &stream.store;
    if up_to >= last_seq {
        let mut seqs = store.last_seqs(filter);
        seqs.sort_unstable();
        seqs.dedup();
        return seqs;
    }
    let mut seqs: Vec<u64> = store
        .subjects_totals(filter)
        .into_keys()
        .filter_map(|subject| {
            let f = SubjectFilter::new(&subject).ok()?;
            store.load_prev_msg(&f, up_to).ok().map(|m| m.seq)
        })
        .collect();
    seqs.sort_unstable();
    seqs
}
