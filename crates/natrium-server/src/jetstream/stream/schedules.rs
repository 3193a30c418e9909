//! Message schedules on the stream task: the publish checks of a schedule, keeping the
//! stream's table of schedules as messages are stored, firing due schedules, and
//! rebuilding the table after a restart.
//!
//! Why on the stream task: a fired schedule is a message the stream publishes to itself
//! (its target is one of the stream's subjects), so it goes through the stream's own
//! queue and publish pipeline like any message, and the table changes only where
//! messages are stored — on this task. The rules are nats-server's: a schedule message
//! replaces the one before it on its subject (it is stored with `Nats-Rollup: sub`); a
//! plain message on that subject ends it; a fired message says when the schedule fires
//! next (`Nats-Schedule-Next: <time>`) or, for a one-off, `purge`, which removes the
//! schedule once the fired message is stored.
//!
//! Durability: the table is not written anywhere; it is rebuilt from the stored
//! messages when the stream starts (one pass over a stream that allows schedules).

use super::super::api::errors::ApiError;
use super::super::api::stream::StreamConfig;
use super::super::api::time::Timestamp;
use super::super::headers::{self, PublishHeaders};
use super::super::schedule::{self, Schedules};
use super::{Inbound, Stream, TaskState, now_nanos};
use crate::sublist::{is_valid_literal_subject, subjects_collide};
use natrium_store::SubjectFilter;

/// Shortest wait before schedules fire (nats-server's timer minimum), so a burst of
/// schedules due at once, or overdue after a restart, fire together.
const MIN_WAIT: i64 = 250_000_000;

/// What the schedule checks of one publish found.
#[derive(Debug, Default)]
pub(super) struct ScheduleCheck {
    /// The message is a schedule: it must be stored with `Nats-Rollup: sub` (it
    /// replaces the schedule before it on its subject) unless it says so itself.
    pub add_rollup: bool,
    /// `Nats-Schedule-Next: purge` with `Nats-Scheduler`: once stored, that subject's
    /// schedule is purged.
    pub purge: Option<String>,
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

impl Stream {
    /// The schedule checks of a client's publish on `subject`, in nats-server's order
    /// (`processJetStreamMsg`, after the expected-sequence checks): a valid pattern,
    /// time zone, target, source, TTL and rollup, and the `Nats-Schedule-Next: purge`
    /// a client may send to end a schedule. A stream without `allow_msg_schedules`
    /// refuses any of it.
    pub(super) fn check_schedule(
        &self,
        cfg: &StreamConfig,
        subject: &str,
        h: &PublishHeaders<'_>,
        now: i64,
    ) -> Result<ScheduleCheck, ApiError> {
        let set = PublishHeaders::set;
        let allow = cfg.allow_msg_schedules;
        let or_disabled = |e: ApiError| {
            if allow {
                e
            } else {
                ApiError::message_schedules_disabled()
            }
        };
        let mut out = ScheduleCheck::default();
        let tz = schedule::zone(h.schedule_time_zone)
            .map_err(|()| or_disabled(ApiError::message_schedules_time_zone_invalid()))?;
        let pattern = h.schedule.map(text).unwrap_or_default();
        let fire = schedule::next_fire(&pattern, tz, now, now)
            .ok_or_else(|| or_disabled(ApiError::message_schedules_pattern_invalid()))?;
        if fire != schedule::Fire::Never {
            if !allow {
                return Err(ApiError::message_schedules_disabled());
            }
            let ttl = set(h.schedule_ttl);
            if let Some(v) = ttl
                && std::str::from_utf8(v)
                    .map_err(|_| headers::InvalidTtl)
                    .and_then(headers::parse_ttl)
                    .is_err()
            {
                return Err(ApiError::message_schedules_ttl_invalid());
            }
            if set(h.schedule_rollup).is_some_and(|r| r != b"sub") {
                return Err(ApiError::message_schedules_rollup_invalid());
            }
            if ttl.is_some() && !cfg.allow_msg_ttl {
                return Err(ApiError::message_ttl_disabled());
            }
            let target = set(h.schedule_target).unwrap_or_default();
            if target.is_empty()
                || !is_valid_literal_subject(target)
                || target == subject.as_bytes()
            {
                return Err(ApiError::message_schedules_target_invalid());
            }
            let source = set(h.schedule_source);
            if let Some(src) = source
                && (src == target || src == subject.as_bytes() || !is_valid_literal_subject(src))
            {
                return Err(ApiError::message_schedules_source_invalid());
            }
            let in_stream = |s: &[u8]| {
                cfg.subjects
                    .iter()
                    .any(|sub| subjects_collide(sub.as_bytes(), s))
            };
            if !in_stream(target) {
                return Err(ApiError::message_schedules_target_invalid());
            }
            if source.is_some_and(|s| !in_stream(s)) {
                return Err(ApiError::message_schedules_source_invalid());
            }
            match set(h.rollup) {
                None => out.add_rollup = true,
                Some(r) if r.eq_ignore_ascii_case(b"sub") => {}
                Some(_) => return Err(ApiError::message_schedules_rollup_invalid()),
            }
        }
        if let Some(next) = set(h.schedule_next) {
            // Clients may only use it to end a schedule, naming the schedule's subject.
            if next != schedule::NEXT_PURGE.as_bytes() {
                return Err(ApiError::message_schedules_scheduler_invalid());
            }
            let scheduler = set(h.scheduler).unwrap_or_default();
            if scheduler.is_empty()
                || scheduler == subject.as_bytes()
                || !is_valid_literal_subject(scheduler)
            {
                return Err(ApiError::message_schedules_scheduler_invalid());
            }
            if !allow {
                return Err(ApiError::message_schedules_disabled());
            }
            let scheduler = text(scheduler);
            // Only a schedule may be purged this way (nothing there is fine too).
            if let Some(last) = self.last_written(&scheduler)
                && headers::get_set(&last.hdrs, schedule::SCHEDULE).is_none()
            {
                return Err(ApiError::message_schedules_scheduler_invalid());
            }
            out.purge = Some(scheduler);
        } else if set(h.scheduler).is_some() {
            return Err(ApiError::message_schedules_scheduler_invalid());
        }
        Ok(out)
    }

    /// A message was stored at `seq` on `subject` (at `ts`): keep the schedule table as
    /// nats-server's store does — a schedule message is (re)armed, any other message
    /// that was not fired by a schedule ends the subject's schedule, and a fired
    /// message moves its schedule to its `Nats-Schedule-Next`.
    pub(super) fn note_stored(
        state: &mut TaskState,
        subject: &str,
        hdrs: &[u8],
        (seq, ts): (u64, i64),
        now: i64,
    ) {
        let Some(table) = state.schedules.as_mut() else {
            return;
        };
        let due = headers::get_set_str(hdrs, schedule::SCHEDULE).and_then(|pattern| {
            let tz = schedule::zone(headers::get(hdrs, schedule::TIME_ZONE)).ok()?;
            match schedule::next_fire(pattern, tz, ts, now)? {
                schedule::Fire::At(due, _) => Some(due),
                schedule::Fire::Never => None,
            }
        });
        let scheduler = headers::get_set_str(hdrs, schedule::SCHEDULER);
        match due {
            Some(due) => table.add(subject, seq, due),
            None if scheduler.is_none() => table.remove_subject(subject),
            None => {}
        }
        if let (Some(scheduler), Some(next)) =
            (scheduler, headers::get_set_str(hdrs, schedule::NEXT))
            && next != schedule::NEXT_PURGE
            && let Ok(at) = Timestamp::parse_rfc3339(next)
        {
            table.update(scheduler, at.unix_nanos_saturating());
        }
    }

    /// After storing a message with `Nats-Schedule-Next: purge`: remove the schedule
    /// it names (a one-off that fired, or a client ending a schedule).
    pub(super) fn purge_schedule(&self, state: &mut TaskState, scheduler: &str) {
        if let Ok(f) = SubjectFilter::new(scheduler) {
            let _ = self.store.purge_ex(&f, 0, 0);
        }
        if let Some(table) = state.schedules.as_mut() {
            table.remove_subject(scheduler);
        }
    }

    /// When the stream task must wake next to fire schedules (Unix ns): the earliest
    /// due schedule, but at least [`MIN_WAIT`] from the time the wait was set, and an
    /// earlier wait already set is kept (so a stream busy with publishes still fires).
    pub(super) fn schedule_deadline(state: &mut TaskState, now: i64) -> Option<i64> {
        let due = state.schedules.as_ref()?.next_due()?;
        let wanted = due.max(now + MIN_WAIT);
        let deadline = match state.schedule_deadline {
            Some(d) if d <= wanted => d,
            _ => wanted,
        };
        state.schedule_deadline = Some(deadline);
        Some(deadline)
    }

    /// Fire the schedules that are due: each publishes its message (or its source
    /// subject's newest) to its target through this stream's own queue.
    pub(super) fn fire_schedules(&self, state: &mut TaskState) {
        state.schedule_deadline = None;
        let now = now_nanos();
        let Some(table) = state.schedules.as_mut() else {
            return;
        };
        for (subject, seq, due) in table.take_due(now) {
            match self.fired_message(&subject, seq, due, now) {
                Fired::Message(inbound) => {
                    // A full queue: it fires at the next wake-up instead.
                    if self.push(*inbound).is_err() {
                        table.not_inflight(&subject);
                    }
                }
                // The schedule is not durable yet (its fsync is still under way).
                Fired::NotYet => table.not_inflight(&subject),
                Fired::Gone => table.remove_subject(&subject),
            }
        }
    }

    /// The message the schedule stored at `seq` on `subject` fires, due at `due`.
    fn fired_message(&self, subject: &str, seq: u64, due: i64, now: i64) -> Fired {
        match self.store.load_msg(seq) {
            Ok(sm) if sm.subject == subject => match self.fire(sm, due, now) {
                Some(inbound) => Fired::Message(Box::new(inbound)),
                None => Fired::Gone,
            },
            Err(natrium_store::StoreError::Eof) => Fired::NotYet,
            _ => Fired::Gone,
        }
    }

    /// The message schedule `sm` fires, due at `due`; `None` if it is no longer a valid
    /// schedule.
    fn fire(&self, sm: natrium_store::StoredMsg, due: i64, now: i64) -> Option<Inbound> {
        let subject = sm.subject.as_str();
        let pattern = headers::get_set_str(&sm.hdrs, schedule::SCHEDULE)?;
        let tz = schedule::zone(headers::get(&sm.hdrs, schedule::TIME_ZONE)).ok()?;
        let schedule::Fire::At(next, repeat) = schedule::next_fire(pattern, tz, due, now)? else {
            return None;
        };
        let ttl = headers::get_set_str(&sm.hdrs, schedule::TTL);
        if let Some(t) = ttl
            && headers::parse_ttl(t).is_err()
        {
            return None;
        }
        let target = headers::get_set_str(&sm.hdrs, schedule::TARGET)?.to_string();
        let rollup = headers::get_set_str(&sm.hdrs, schedule::ROLLUP).map(str::to_string);
        let ttl = ttl.map(str::to_string);
        let next = if repeat {
            format_next(next, tz)
        } else {
            schedule::NEXT_PURGE.to_string()
        };
        // With a source, the fired message is the source subject's newest.
        let source =
            headers::get_set_str(&sm.hdrs, schedule::SOURCE).and_then(|s| self.last_written(s));
        let (hdrs, payload) = match &source {
            Some(src) => (&src.hdrs[..], &src.payload[..]),
            None => (&sm.hdrs[..], &sm.payload[..]),
        };
        let block = headers::fired_block(hdrs, subject, &next, ttl.as_deref(), rollup.as_deref());
        let mut inbound = Inbound::new(&target, None, Some(&block), payload)?;
        inbound.scheduled = true;
        Some(inbound)
    }

    /// Rebuild the schedule table from the stored messages (stream start, or schedules
    /// turned on): what matters is each subject's newest message — a schedule arms its
    /// subject, a fired message moves its schedule on — so only those are read, in
    /// sequence order (a schedule before the messages it fired).
    pub(super) fn recover_schedules(&self, state: &mut TaskState) {
        if !self.config.read().allow_msg_schedules {
            state.schedules = None;
            return;
        }
        state.schedules = Some(Schedules::new());
        let now = now_nanos();
        let mut seqs = self.store.last_seqs(&SubjectFilter::all());
        seqs.sort_unstable();
        for seq in seqs {
            if let Ok(m) = self.store.load_msg(seq)
                && !m.hdrs.is_empty()
            {
                Self::note_stored(state, &m.subject, &m.hdrs, (m.seq, m.ts), now);
            }
        }
    }
}

/// What firing one schedule gives.
enum Fired {
    /// Its message, to store.
    Message(Box<Inbound>),
    /// The schedule message is stored but not readable yet (not durable): try again.
    NotYet,
    /// It is gone, or no longer a valid schedule.
    Gone,
}

/// `Nats-Schedule-Next` of a repeating schedule: Go's RFC 3339 with nanoseconds, in the
/// schedule's zone (UTC as `Z`).
fn format_next(next: i64, tz: Option<chrono_tz::Tz>) -> String {
    match tz {
        Some(tz) if tz != chrono_tz::Tz::UTC => {
            use chrono::TimeZone;
            tz.timestamp_nanos(next)
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        }
        _ => Timestamp::from_unix_nanos(next).to_rfc3339_nano(),
    }
}
