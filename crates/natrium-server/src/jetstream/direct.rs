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

/// Load what a get request asks for (single-message forms).
fn load_one(stream: &Stream, req: &MsgGetRequest) -> Result<StoredMsg, StoreError> {
    let store = &stream.store;
    if !req.last_by_subj.is_empty() {
        let f = SubjectFilter::new(&req.last_by_subj)?;
        return store.load_last_msg(&f);
    }
    let start = match &req.start_time {
        Some(t) => store.seq_from_time(t.unix_nanos_saturating()),
        None => req.seq,
    };
    if !req.next_by_subj.is_empty() {
        let f = SubjectFilter::new(&req.next_by_subj)?;
        return store.load_next_msg(&f, start);
    }
    if req.start_time.is_some() {
        return store.load_next_msg(&SubjectFilter::all(), start);
    }
    store.load_msg(start)
}

/// `STREAM.MSG.GET`: the message as JSON.
pub fn msg_get(stream: &Stream, body: &[u8]) -> Result<ApiStoredMsg, ApiError> {
    let req = MsgGetRequest::decode_request(body, Mode::Strict)?;
    req.check_msg_get()?;
    let m = load_one(stream, &req).map_err(|e| match e {
        StoreError::InvalidSubject { .. } => ApiError::bad_request(),
        _ => ApiError::no_message_found(),
    })?;
    Ok(ApiStoredMsg {
        subject: m.subject,
        seq: m.seq,
        hdrs: m.hdrs.to_vec(),
        data: m.payload.to_vec(),
        time: Timestamp::from_store_nanos(m.ts),
    })
}

/// The header block of a direct-get answer: the stored headers (unless `no_hdr`), then
/// ours, then `extra` lines.
fn answer_headers(
    stream: &Stream,
    m: &StoredMsg,
    no_hdr: bool,
    extra: &[(&str, String)],
) -> Vec<u8> {
    let mut h = Vec::with_capacity(m.hdrs.len() + 160);
    match m.hdrs.strip_suffix(b"\r\n") {
        Some(stored) if !no_hdr && !stored.is_empty() => h.extend_from_slice(stored),
        _ => h.extend_from_slice(b"NATS/1.0\r\n"),
    }
    let mut line = |k: &str, v: &str| {
        h.extend_from_slice(k.as_bytes());
        h.extend_from_slice(b": ");
        h.extend_from_slice(v.as_bytes());
        h.extend_from_slice(b"\r\n");
    };
    line(dh::STREAM, &stream.name);
    line(dh::SUBJECT, &m.subject);
    line(dh::SEQUENCE, itoa::Buffer::new().format(m.seq));
    line(
        dh::TIME_STAMP,
        &Timestamp::from_store_nanos(m.ts).to_rfc3339_nano(),
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
    ctx.publish(
        account,
        Publisher::SERVER,
        PubMsg {
            subject: reply,
            reply: None,
            headers: Some(headers),
            payload,
        },
    );
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
    let Some(stream) = js.account(&account.name).and_then(|a| a.stream(name)) else {
        return false;
    };
    if !stream.config().allow_direct {
        return false;
    }
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
    } else if req.batch > 0 {
        batch(&stream, ctx, account, reply, &req);
    } else {
        match load_one(&stream, &req) {
            Ok(m) => {
                let h = answer_headers(&stream, &m, req.no_hdr, &[]);
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
/// an EOB status.
fn batch(
    stream: &Stream,
    ctx: &mut DeliveryCtx,
    account: &Arc<Account>,
    reply: &[u8],
    req: &MsgGetRequest,
) {
    let filter = if req.next_by_subj.is_empty() {
        SubjectFilter::all()
    } else {
        match SubjectFilter::new(&req.next_by_subj) {
            Ok(f) => f,
            Err(_) => {
                send(
                    ctx,
                    account,
                    reply,
                    DirectGetStatus::BadRequest.header(),
                    b"",
                );
                return;
            }
        }
    };
    let mut seq = match &req.start_time {
        Some(t) => stream.store.seq_from_time(t.unix_nanos_saturating()),
        None => req.seq.max(1),
    };
    let up_to = if req.up_to_seq > 0 {
        req.up_to_seq
    } else {
        u64::MAX
    };
    let mut sent = 0i64;
    let mut bytes = 0i64;
    let mut last = 0u64;
    while sent < req.batch {
        let Ok(m) = stream.store.load_next_msg(&filter, seq) else {
            break;
        };
        if m.seq > up_to {
            break;
        }
        let size = (m.hdrs.len() + m.payload.len()) as i64;
        if req.max_bytes > 0 && sent > 0 && bytes + size > req.max_bytes {
            break;
        }
        let pending = stream.store.num_pending(m.seq + 1, &filter, false);
        let extra = [
            (dh::NUM_PENDING, pending.to_string()),
            (dh::LAST_SEQUENCE, last.to_string()),
        ];
        let h = answer_headers(stream, &m, req.no_hdr, &extra);
        send(ctx, account, reply, &h, &m.payload);
        sent += 1;
        bytes += size;
        last = m.seq;
        seq = m.seq + 1;
    }
    if sent == 0 {
        send(ctx, account, reply, dh::NOT_FOUND, b"");
        return;
    }
    let pending = stream.store.num_pending(seq, &filter, false);
    send(ctx, account, reply, &eob(pending, last, None), b"");
}

/// `multi_last`: the last message of every subject matching the filters, in sequence
/// order, then an EOB status with the sequence the answer is consistent up to.
fn multi_last(
    stream: &Stream,
    ctx: &mut DeliveryCtx,
    account: &Arc<Account>,
    reply: &[u8],
    req: &MsgGetRequest,
) {
    let Ok(filter) = SubjectFilter::multi(req.multi_last.iter()) else {
        send(
            ctx,
            account,
            reply,
            DirectGetStatus::BadRequest.header(),
            b"",
        );
        return;
    };
    let up_to = if req.up_to_seq > 0 {
        req.up_to_seq
    } else {
        stream.store.fast_state().last_seq
    };
    let mut seqs: Vec<u64> = stream
        .store
        .last_seqs(&filter)
        .into_iter()
        .filter(|s| *s <= up_to)
        .collect();
    seqs.sort_unstable();
    if req.batch > 0 {
        seqs.truncate(req.batch as usize);
    }
    if seqs.is_empty() {
        send(ctx, account, reply, dh::NOT_FOUND, b"");
        return;
    }
    let total = seqs.len() as u64;
    let mut last = 0u64;
    for (i, seq) in seqs.iter().enumerate() {
        let Ok(m) = stream.store.load_msg(*seq) else {
            continue;
        };
        let extra = [
            (dh::NUM_PENDING, (total - 1 - i as u64).to_string()),
            (dh::LAST_SEQUENCE, last.to_string()),
        ];
        let h = answer_headers(stream, &m, req.no_hdr, &extra);
        send(ctx, account, reply, &h, &m.payload);
        last = m.seq;
    }
    send(ctx, account, reply, &eob(0, last, Some(up_to)), b"");
}
