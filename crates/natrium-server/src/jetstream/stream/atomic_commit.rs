//! Atomic batch publish on the stream task: staging a batch message, and committing a
//! complete batch all-or-nothing.
//!
//! Why on the stream task: it is the only appender, so the checks of a commit (expected
//! sequences, de-duplication, discard-new limits, counters) see exactly the stream the
//! batch will land in, and nothing can be stored between the checks and the append.
//! `atomic_batch` decides which messages make up a batch; this file checks the batch
//! against the stream (nats-server's `checkMsgHeadersPreClusteredProposal`, in its
//! order) and stores it with one `StreamStore::append_group`, so no reader or fsync
//! sees part of it and a failure part way takes the appended part back.
//!
//! Crash atomicity: the last message of a committed batch carries `Nats-Batch-Commit`
//! and the PubAck goes out only once the whole group is durable. A stream whose newest
//! message is a batch message *without* that header was cut off mid-commit, was never
//! acknowledged, and is trimmed back on recovery ([`Stream::drop_torn_batch`]).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use natrium_store::{GroupMsg, SubjectFilter, Ttl};

use super::super::api::errors::ApiError;
use super::super::api::stream::{DiscardPolicy, RetentionPolicy, StreamConfig};
use super::super::atomic_batch::{Abandoned, BatchHeaders, Batches, Step};
use super::super::counter;
use super::super::headers::{self, PublishHeaders};
use super::{
    Answers, Inbound, MAX_HEADER_SIZE, Outcome, Rollup, Stream, TaskState, store_error,
    stored_subject,
};
use crate::client::deliver::DeliveryCtx;
use crate::server::ServerShared;

/// `Nats-Batch-Commit`.
const BATCH_COMMIT: &str = "Nats-Batch-Commit";

/// Whether a message is part of an atomic batch (a non-empty `Nats-Batch-Id`). A quick
/// byte search first: most header blocks do not mention batches at all.
pub(super) fn is_batch_msg(m: &Inbound) -> bool {
    static KEY: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"Nats-Batch-Id"));
    m.sourced.is_none()
        && !m.scheduled
        && m.headers().is_some_and(|h| {
            KEY.find(h).is_some() && headers::get_set(h, "Nats-Batch-Id").is_some()
        })
}

/// One message of a batch, checked and in the form it is stored in.
struct Prepared<'a> {
    /// Stored subject (after `subject_transform`).
    subject: Cow<'a, str>,
    /// Header block as stored.
    hdrs: Cow<'a, [u8]>,
    /// Payload as stored (a counter's new total).
    payload: Cow<'a, [u8]>,
    /// Per-message TTL.
    ttl: Option<Ttl>,
    /// `Nats-Msg-Id` (its bytes), remembered for de-duplication once stored.
    msg_id: Option<Vec<u8>>,
    /// Rollup to apply once stored.
    rollup: Option<Rollup>,
    /// An interest stream with no interest in it: the sequence is used up, nothing kept.
    skip: bool,
    /// The message is a subject delete marker (`TaskState::marker_last`).
    marker: bool,
    /// `Nats-Schedule-Next: purge`: the schedule subject to purge once stored.
    purge_schedule: Option<String>,
}

/// What a batch has written per subject so far (nats-server's `inflight`): for the
/// "already written in this batch" rules and discard-new limits.
#[derive(Default, Clone, Copy)]
struct Written {
    /// Messages.
    msgs: u64,
    /// Accounted bytes.
    bytes: u64,
}

impl Stream {
    /// Take one batch message (see `is_batch_msg`): stage it, refuse it, or, for a
    /// commit, store the batch. Its answer (if it has a reply) goes into `out`.
    /// `queued` is the byte count the caller releases from the inbound queue once the
    /// round is done: staged messages stay counted there (they hold memory) until
    /// their batch is committed or dropped.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn batch_msg(
        &self,
        cfg: &StreamConfig,
        state: &mut TaskState,
        m: Inbound,
        now: i64,
        quota: &mut Option<super::super::limits::Quota>,
        server: &Arc<ServerShared>,
        republish: &mut Option<DeliveryCtx>,
        queued: &mut usize,
        out: &mut Answers,
    ) {
        let reply_end = m.reply().map(|r| {
            out.replies.extend_from_slice(r);
            out.replies.len()
        });
        let answer = |out: &mut Answers, o: Outcome| {
            if let Some(end) = reply_end {
                out.outcomes.push((end, o));
            }
        };
        let hdrs = m.headers().unwrap_or(&[]);
        let h = PublishHeaders::parse(hdrs);
        let pre = self.batch_pre_check(
            cfg,
            &m,
            quota,
            (cfg.allow_atomic, ApiError::atomic_publish_disabled),
        );
        let Some(js) = server.js.get().filter(|_| pre.is_none()) else {
            answer(
                out,
                Outcome::Failed(pre.unwrap_or_else(ApiError::insufficient_resources)),
            );
            return;
        };
        let bh = BatchHeaders::new(
            PublishHeaders::set(h.batch_id).unwrap_or_default(),
            h.batch_seq,
            h.batch_commit,
            PublishHeaders::set(h.required_api_level).is_some_and(|v| {
                super::super::api::required_api_level_unmet(&String::from_utf8_lossy(v))
            }),
        );
        let msize = m.size();
        // A batch past its timeout is gone before this message is looked at (so its id
        // can start over), as nats-server's timer would have dropped it.
        self.expire_batches(state, server);
        let batches = state
            .batches
            .get_or_insert_with(|| Batches::new(js.atomic_batches.clone()));
        match batches.accept(bh, m, Instant::now(), &js.batch_limits) {
            Step::Staged => {
                // Stays counted in the inbound queue while staged.
                *queued -= msize;
                answer(out, Outcome::Staged);
            }
            Step::Refused {
                error,
                abandoned,
                dropped,
            } => {
                *queued += dropped.iter().map(Inbound::size).sum::<usize>();
                if let Some((id, why)) = abandoned {
                    self.batch_abandoned(server, &id, why);
                }
                answer(out, Outcome::Failed(error));
            }
            Step::Commit { id, msgs, eob } => {
                // Everything but this message itself was held as staged.
                let all: usize = msgs.iter().map(Inbound::size).sum();
                *queued += if eob { all } else { all - msize };
                match self.commit_batch(cfg, state, &msgs, eob, now, quota, server, republish) {
                    Ok((seq, ticket)) => {
                        out.ticket = out.ticket.max(Some(ticket));
                        let count = msgs.len() as u64;
                        answer(out, Outcome::Batch { seq, id, count });
                    }
                    Err(e) => answer(out, Outcome::Failed(e)),
                }
            }
        }
    }

    /// The stream-wide checks of a batch message (atomic or fast), in nats-server's order,
    /// before its batch is looked at: sealed, the server's and account's storage, the
    /// message size, then whether the stream allows this kind of batch (`allowed`,
    /// else `disabled()`). The error to answer, if any.
    pub(super) fn batch_pre_check(
        &self,
        cfg: &StreamConfig,
        m: &Inbound,
        quota: &Option<super::super::limits::Quota>,
        (allowed, disabled): (bool, fn() -> ApiError),
    ) -> Option<ApiError> {
        let hdrs = m.headers().unwrap_or(&[]);
        if cfg.sealed {
            return Some(ApiError::stream_sealed());
        }
        let size = self.store.msg_size(m.subject(), hdrs, m.payload());
        if let Some(Err(e)) = quota.as_ref().map(|q| q.admit(size)) {
            return Some(e.to_api());
        }
        if cfg.max_msg_size > 0 && hdrs.len() + m.payload().len() > cfg.max_msg_size as usize {
            return Some(ApiError::stream_message_exceeds_maximum());
        }
        (!allowed).then(disabled)
    }

    /// Drop batches idle past the timeout (their advisory says `timeout`); returns the
    /// bytes they held in the inbound queue.
    pub(super) fn expire_batches(&self, state: &mut TaskState, server: &Arc<ServerShared>) {
        let Some(batches) = state.batches.as_mut() else {
            return;
        };
        let mut freed = 0;
        for (id, msgs) in batches.expire(Instant::now()) {
            freed += msgs.iter().map(Inbound::size).sum::<usize>();
            self.batch_abandoned(server, &id, Abandoned::Timeout);
        }
        self.release_queued(freed);
    }

    /// Drop the open batches of each kind the stream does not allow (`all`: every one,
    /// the stream is going away).
    pub(super) fn clear_batches(&self, state: &mut TaskState, all: bool) {
        let cfg = self.config.read();
        let (atomic, fast) = (all || !cfg.allow_atomic, all || !cfg.allow_batched);
        drop(cfg);
        if atomic && let Some(b) = state.batches.as_mut() {
            let freed = b.clear().iter().map(Inbound::size).sum();
            self.release_queued(freed);
        }
        if fast && let Some(f) = state.fast.as_mut() {
            f.clear();
        }
    }

    /// How long until the next open batch (atomic or fast) times out.
    pub(super) fn next_batch_deadline(state: &TaskState) -> Option<Duration> {
        let atomic = state.batches.as_ref().and_then(|b| b.next_deadline());
        let fast = state.fast.as_ref().and_then(|f| f.next_deadline());
        let at = match (atomic, fast) {
            (Some(a), Some(f)) => a.min(f),
            (a, f) => a.or(f)?,
        };
        Some(at.saturating_duration_since(Instant::now()))
    }

    /// `$JS.EVENT.ADVISORY.STREAM.BATCH_ABANDONED.<stream>`, to the stream's account.
    fn batch_abandoned(&self, server: &Arc<ServerShared>, id: &str, why: Abandoned) {
        super::super::advisory::batch_abandoned(
            server,
            &self.account,
            (&self.name, &self.domain),
            id,
            why.as_str(),
        );
    }

    /// Check a complete batch against the stream as nats-server does before proposing it
    /// (every message in order, each seeing the ones before it), then store it as one
    /// group. Returns the last sequence and the group's durability ticket; on an error
    /// nothing is stored.
    #[allow(clippy::too_many_arguments)]
    fn commit_batch(
        &self,
        cfg: &StreamConfig,
        state: &mut TaskState,
        msgs: &[Inbound],
        eob: bool,
        now: i64,
        quota: &mut Option<super::super::limits::Quota>,
        server: &Arc<ServerShared>,
        republish: &mut Option<DeliveryCtx>,
    ) -> Result<(u64, natrium_store::Ticket), ApiError> {
        let set = PublishHeaders::set;
        let fast = self.store.fast_state();
        let mut prepared: Vec<Prepared<'_>> = Vec::with_capacity(msgs.len());
        let mut written: HashMap<String, Written> = HashMap::new();
        let mut ids: HashSet<Vec<u8>> = HashSet::new();
        let mut expected_seen: HashMap<String, u64> = HashMap::new();
        // Counter bodies and header blocks written by the batch so far, by subject.
        let mut totals: HashMap<String, (Vec<u8>, Vec<u8>)> = HashMap::new();
        let mut total_size = 0u64;
        for (i, m) in msgs.iter().enumerate() {
            let subject: Cow<'_, str> = match stored_subject(cfg, m.subject()) {
                Some(s) => Cow::Owned(s),
                None => Cow::Borrowed(m.subject()),
            };
            let mut hdrs: Cow<'_, [u8]> = Cow::Borrowed(m.headers().unwrap_or(&[]));
            // The API level was checked when staged; nats-server stores without it.
            if headers::get_set(&hdrs, headers::REQUIRED_API_LEVEL).is_some() {
                hdrs = Cow::Owned(headers::without_header(&hdrs, headers::REQUIRED_API_LEVEL));
            }
            // Committed by an end-of-batch marker: the last message says so itself.
            if eob && i + 1 == msgs.len() {
                hdrs = Cow::Owned(headers::with_header(&hdrs, BATCH_COMMIT, "1"));
            }
            let hdrs_ref: &[u8] = &hdrs;
            // Parsed from the (possibly rewritten) block; only the fields below are read
            // from it, and none of them is one of the rewritten headers.
            let h = PublishHeaders::parse(hdrs_ref);
            let marker = h.is_delete_marker();
            if set(h.expected_last_msg_id).is_some() {
                return Err(ApiError::atomic_publish_unsupported_header_batch(
                    headers::EXPECTED_LAST_MSG_ID,
                ));
            }
            if hdrs_ref.len() > MAX_HEADER_SIZE {
                return Err(ApiError::stream_header_exceeds_maximum());
            }
            let incr = counter::increment(hdrs_ref, m.payload(), cfg.allow_msg_counter)?;
            if let Some(expected) = set(h.expected_stream)
                && expected != self.name.as_bytes()
            {
                return Err(ApiError::stream_not_match());
            }
            let ttl = match set(h.ttl) {
                Some(v) => std::str::from_utf8(v)
                    .map_err(|_| headers::InvalidTtl)
                    .and_then(headers::parse_ttl),
                None => Ok(None),
            };
            if !matches!(ttl, Ok(None)) && !cfg.allow_msg_ttl {
                return Err(ApiError::message_ttl_disabled());
            }
            let msg_id = set(h.msg_id).map(<[u8]>::to_vec);
            if let Some(id) = &msg_id
                && (!ids.insert(id.clone()) || state.dedup.ids.contains_key(id.as_slice()))
            {
                return Err(ApiError::atomic_publish_contains_duplicate_message());
            }
            if set(h.stream_source).is_some() {
                return Err(ApiError::message_source_hdr_not_allowed());
            }
            if cfg.allow_msg_counter && incr.is_none() {
                return Err(ApiError::message_incr_missing());
            }
            // The sources a counter subject counts ride on (`Nats-Counter-Sources`); the
            // block is swapped in below, once `h` is done with it.
            let mut counter_hdrs: Option<Vec<u8>> = None;
            let payload: Cow<'_, [u8]> = match &incr {
                Some(incr) => {
                    let prev = match totals.get(subject.as_ref()) {
                        Some(written) => Some(written.clone()),
                        None => self
                            .last_written(&subject)
                            .map(|p| (p.payload.to_vec(), p.hdrs.to_vec())),
                    };
                    let prev_ref = prev.as_ref().map(|(body, hdrs)| counter::Previous {
                        payload: body,
                        hdrs,
                    });
                    let up = incr.update(prev_ref, hdrs_ref, m.payload(), &subject)?;
                    let stored_hdrs = up.hdrs.clone().unwrap_or_else(|| hdrs_ref.to_vec());
                    totals.insert(subject.to_string(), (up.body.clone(), stored_hdrs));
                    counter_hdrs = up.hdrs;
                    Cow::Owned(up.body)
                }
                None => Cow::Borrowed(m.payload()),
            };
            // The stream's last sequence as this message would see it.
            let at = fast.last_seq + i as u64;
            if let Some(v) = set(h.expected_last_seq) {
                if headers::go_parse_int64(v) as u64 != at {
                    return Err(ApiError::stream_wrong_last_sequence(at));
                }
                // Only the first message of a batch may expect a last sequence.
                if i > 0 {
                    return Err(ApiError::stream_wrong_last_sequence_constant());
                }
            }
            let subject_override = set(h.expected_last_subj_seq_subj);
            if let Some(v) = set(h.expected_last_subj_seq) {
                let expected = headers::go_parse_int64(v) as u64;
                let on = match subject_override {
                    Some(s) => String::from_utf8_lossy(s).into_owned(),
                    None => subject.to_string(),
                };
                // Written earlier in this batch: the check could not be right.
                if written.contains_key(&on) {
                    return Err(ApiError::stream_wrong_last_sequence_constant());
                }
                let last = match expected_seen.get(&on) {
                    Some(last) => *last,
                    None => {
                        let last = self.last_written(&on).map_or(0, |msg| msg.seq);
                        expected_seen.insert(on, last);
                        last
                    }
                };
                if expected != last {
                    return Err(ApiError::stream_wrong_last_sequence(last));
                }
            } else if subject_override.is_some() {
                return Err(ApiError::stream_expected_last_seq_per_subject_invalid());
            }
            let sched = self.check_schedule(cfg, &subject, &h, now)?;
            let mut rollup = None;
            if let Some(v) = set(h.rollup) {
                if !cfg.allow_rollup_hdrs || cfg.deny_purge {
                    return Err(ApiError::stream_rollup_failed("rollup not permitted"));
                }
                let r = Rollup::parse(v).map_err(|other| {
                    ApiError::stream_rollup_failed(format!(
                        "rollup value invalid: {}",
                        super::super::api::go_json::go_quote(&other)
                    ))
                })?;
                match r {
                    Rollup::Subject if written.contains_key(subject.as_ref()) => {
                        return Err(ApiError::stream_rollup_failed("batch rollup sub invalid"));
                    }
                    Rollup::All if i > 0 => {
                        return Err(ApiError::stream_rollup_failed("batch rollup all invalid"));
                    }
                    _ => {}
                }
                rollup = Some(r);
            }
            // A schedule replaces the one before it on its subject (its header is
            // added below, once `h` is done with the block).
            if sched.add_rollup {
                if written.contains_key(subject.as_ref()) {
                    return Err(ApiError::stream_rollup_failed("batch rollup sub invalid"));
                }
                rollup = Some(Rollup::Subject);
            }
            if sched.add_rollup {
                hdrs = Cow::Owned(headers::with_header(&hdrs, headers::ROLLUP, "sub"));
            }
            if let Some(h) = counter_hdrs {
                hdrs = Cow::Owned(h);
            }
            let size = self.store.msg_size(&subject, &hdrs, &payload);
            let w = written.entry(subject.to_string()).or_default();
            w.msgs += 1;
            w.bytes += size;
            let w = *w;
            if cfg.discard == DiscardPolicy::New {
                let (msgs_in, bytes_in) = written
                    .values()
                    .fold((0, 0), |(n, b), w| (n + w.msgs, b + w.bytes));
                if cfg.max_msgs > 0 && fast.msgs + msgs_in > cfg.max_msgs as u64 {
                    return Err(ApiError::stream_store_failed("maximum messages exceeded"));
                }
                if cfg.max_bytes > 0 && fast.bytes + bytes_in > cfg.max_bytes as u64 {
                    return Err(ApiError::stream_store_failed("maximum bytes exceeded"));
                }
                if cfg.discard_new_per_subject && cfg.max_msgs_per_subject > 0 && rollup.is_none() {
                    let filter = SubjectFilter::new(&subject).map_err(|e| store_error(&e))?;
                    let held = self.store.filtered_state(0, &filter).msgs;
                    if held + w.msgs > cfg.max_msgs_per_subject as u64 {
                        return Err(ApiError::stream_store_failed(
                            "maximum messages per subject exceeded",
                        ));
                    }
                }
            }
            let mut ttl = ttl.map_err(|_| ApiError::message_ttl_invalid())?;
            // Raised to the delete-marker TTL, as for a single publish (`store_one`).
            if let Some(min) = super::marker_ttl_floor(cfg, ttl) {
                ttl = Some(Ttl::After(Duration::from_secs(min)));
                hdrs = Cow::Owned(headers::replace_ttl(&hdrs, min));
            }
            let skip = cfg.retention == RetentionPolicy::Interest && !self.has_interest(&subject);
            if !skip {
                total_size += size;
            }
            prepared.push(Prepared {
                marker,
                purge_schedule: sched.purge,
                subject,
                hdrs,
                payload,
                ttl,
                msg_id,
                rollup,
                skip,
            });
        }
        if let Some(q) = quota.as_mut() {
            q.admit(total_size).map_err(|e| e.to_api())?;
        }
        // Looked up before the group goes in: a subject's previous message, for the
        // republished `Nats-Last-Sequence`; later messages of the batch on the same
        // subject take the batch's own previous one (below).
        let targets: Vec<_> = prepared
            .iter()
            .map(|p| self.republish_target(cfg, &p.subject, 0))
            .collect();
        let group: Vec<GroupMsg<'_>> = prepared
            .iter()
            .map(|p| GroupMsg {
                subject: &p.subject,
                hdrs: &p.hdrs,
                payload: &p.payload,
                ttl: p.ttl,
                skip: p.skip,
            })
            .collect();
        let ack = self
            .store
            .append_group(&group)
            .map_err(|e| store_error(&e))?;
        if let Some(q) = quota.as_mut() {
            q.stored(total_size);
        }
        let mut last_on: HashMap<&str, u64> = HashMap::new();
        for ((p, (seq, ts)), target) in prepared.iter().zip(&ack.stored).zip(targets) {
            if let Some(id) = &p.msg_id {
                state.dedup.insert(id, *seq, now);
            }
            state.set_last_msg_id(p.msg_id.as_deref());
            if p.skip {
                continue;
            }
            if cfg.subject_delete_marker_ttl > 0 && p.marker {
                state.marker_last.insert(p.subject.to_string());
            } else if !state.marker_last.is_empty() {
                state.marker_last.remove(p.subject.as_ref());
            }
            if let Some((rp, to, last)) = target {
                let last = last_on.get(p.subject.as_ref()).copied().unwrap_or(last);
                self.republish(
                    (rp, to, last),
                    (&p.subject, &p.hdrs, &p.payload),
                    (*seq, *ts),
                    server,
                    republish,
                );
            }
            last_on.insert(&p.subject, *seq);
        }
        for (p, (seq, ts)) in prepared.iter().zip(&ack.stored) {
            if p.skip {
                continue;
            }
            self.roll_up(p.rollup, &p.subject, *seq);
            if state.schedules.is_some() {
                Self::note_stored(state, &p.subject, &p.hdrs, (*seq, *ts), now);
            }
            if let Some(scheduler) = &p.purge_schedule {
                self.purge_schedule(state, scheduler);
            }
        }
        let last = ack.stored.last().map_or(fast.last_seq, |(seq, _)| *seq);
        Ok((last, ack.ticket))
    }

    /// Recovery: a stream whose newest message belongs to a batch but is not its commit
    /// was cut off while the batch went in (a crash between the group's appends, or a
    /// failed group whose truncate record never reached the disk). The batch was never
    /// acknowledged, so its messages are taken back. Only the very end of the stream
    /// counts (its last message at the last sequence), and only the batch's own run of
    /// messages: same id, batch sequences counting down by one to 1, none a commit,
    /// none made by the stream itself (a link's copy or a fired schedule).
    pub(super) fn drop_torn_batch(&self, server: &ServerShared) {
        if !self.config.read().allow_atomic {
            return;
        }
        let all = SubjectFilter::all();
        let Ok(last) = self.store.load_last_msg(&all) else {
            return;
        };
        if last.seq != self.store.fast_state().last_seq {
            return;
        }
        // (batch id, batch sequence) of a message that may be part of a torn batch.
        let torn_part = |hdrs: &[u8]| -> Option<(Vec<u8>, u64)> {
            if headers::get(hdrs, headers::STREAM_SOURCE).is_some()
                || headers::get(hdrs, super::super::schedule::SCHEDULER).is_some()
                || headers::get(hdrs, BATCH_COMMIT).is_some()
            {
                return None;
            }
            let id = headers::get_set(hdrs, "Nats-Batch-Id")?.to_vec();
            let seq = headers::get_str(hdrs, "Nats-Batch-Sequence")?
                .parse()
                .ok()?;
            Some((id, seq))
        };
        let Some((id, mut bseq)) = torn_part(&last.hdrs) else {
            return;
        };
        // Walk back over the batch's earlier messages.
        let mut first = last.seq;
        while bseq > 1 && first > 1 {
            match self
                .store
                .load_msg(first - 1)
                .ok()
                .and_then(|m| torn_part(&m.hdrs))
            {
                Some((prev_id, prev_seq)) if prev_id == id && prev_seq + 1 == bseq => {
                    first -= 1;
                    bseq = prev_seq;
                }
                _ => break,
            }
        }
        let dropped = last.seq - first + 1;
        match self.store.truncate(first - 1) {
            Ok(()) => crate::warn!(
                server.log,
                "Stream {} > {}: dropped {} message(s) of batch {:?} cut off before its commit (sequences {}..={})",
                self.account.name,
                self.name,
                dropped,
                String::from_utf8_lossy(&id),
                first,
                last.seq
            ),
            Err(e) => crate::error!(
                server.log,
                "Stream {} > {}: could not drop a batch cut off before its commit (sequences {}..={}): {}",
                self.account.name,
                self.name,
                first,
                last.seq,
                e
            ),
        }
    }
}
