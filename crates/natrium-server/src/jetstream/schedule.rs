//! Message schedules (`allow_msg_schedules`, nats-server 2.12+): when a stored schedule
//! fires, and which schedules a stream holds.
//!
//! Why: a client stores a *schedule* — a message on its own subject with
//! `Nats-Schedule: <pattern>` and `Nats-Schedule-Target: <subject>` — and the stream
//! itself publishes a copy to the target when it is due: once (`@at <time>`), or again
//! and again (`@every <duration>`, a cron pattern, optionally in
//! `Nats-Schedule-Time-Zone`). Delayed delivery and periodic jobs need no client running.
//!
//! This module is pure: [`next_fire`] computes a pattern's next time the way
//! nats-server does (`parseMsgSchedule`, its robfig-style cron: six fields with seconds,
//! day-of-month and day-of-week OR-ed unless one is `*`), and [`Schedules`] is the
//! stream's table of live schedules (one per subject, the newest message there). Both
//! take the time as an argument, so everything is unit-tested without a clock. The
//! stream task (`stream/schedules.rs`) stores, fires and recovers them.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{Datelike, NaiveDate, NaiveDateTime, TimeZone, Timelike};
use chrono_tz::Tz;

/// `Nats-Schedule`: the pattern.
pub const SCHEDULE: &str = "Nats-Schedule";
/// `Nats-Schedule-Target`: where a fired schedule publishes.
pub const TARGET: &str = "Nats-Schedule-Target";
/// `Nats-Schedule-Source`: whose newest message a fired schedule publishes instead.
pub const SOURCE: &str = "Nats-Schedule-Source";
/// `Nats-Schedule-TTL`: the fired message's `Nats-TTL`.
pub const TTL: &str = "Nats-Schedule-TTL";
/// `Nats-Schedule-Rollup`: the fired message's `Nats-Rollup` (only `sub`).
pub const ROLLUP: &str = "Nats-Schedule-Rollup";
/// `Nats-Schedule-Time-Zone`: the zone a cron pattern is read in.
pub const TIME_ZONE: &str = "Nats-Schedule-Time-Zone";
/// `Nats-Scheduler`: on a fired message, the schedule's subject.
pub const SCHEDULER: &str = "Nats-Scheduler";
/// `Nats-Schedule-Next`: on a fired message, when the schedule fires next, or `purge`.
pub const NEXT: &str = "Nats-Schedule-Next";
/// The `Nats-Schedule-Next` of a schedule that will not fire again.
pub const NEXT_PURGE: &str = "purge";

/// Nanoseconds per second.
const SEC: i64 = 1_000_000_000;

/// A time zone named by `Nats-Schedule-Time-Zone` (`None`: UTC, the header absent).
/// `Err(())` for an empty or unknown name (nats-server's `time.LoadLocation` fails).
#[allow(clippy::result_unit_err)]
pub fn zone(header: Option<&[u8]>) -> Result<Option<Tz>, ()> {
    let Some(v) = header else {
        return Ok(None);
    };
    let name = std::str::from_utf8(v).map_err(|_| ())?;
    if name.is_empty() {
        return Err(());
    }
    // Go's LoadLocation("UTC") and ("Local") are special; "Local" is the server's zone,
    // which for a server is taken as UTC here.
    if name == "UTC" || name == "Local" {
        return Ok(Some(Tz::UTC));
    }
    name.parse::<Tz>().map(Some).map_err(|_| ())
}

/// Go's `time.Round(time.Second)` of a Unix-nanosecond instant (halves away from zero).
fn round_sec(ns: i64) -> i64 {
    let r = ns.rem_euclid(SEC);
    let floor = ns - r;
    if r * 2 >= SEC { floor + SEC } else { floor }
}

/// What a valid pattern says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fire {
    /// Not a schedule: an empty pattern, or `@at` Go's zero time
    /// (`0001-01-01T00:00:00Z`), which nats-server reads as "no schedule".
    Never,
    /// Due at this time (Unix ns); whether it repeats.
    At(i64, bool),
}

/// Unix seconds of Go's zero time, 0001-01-01T00:00:00Z.
const GO_ZERO_SECS: i128 = -62_135_596_800;

/// When `pattern` fires next, as nats-server's `parseMsgSchedule`, or `None` for an
/// invalid pattern. `base` is the time the schedule counts from (the schedule
/// message's time, or the firing it follows); a repeating schedule that would be due
/// before `now` (after a restart) fires once, from `now`.
pub fn next_fire(pattern: &str, tz: Option<Tz>, base: i64, now: i64) -> Option<Fire> {
    if pattern.is_empty() {
        return Some(Fire::Never);
    }
    if let Some(at) = pattern.strip_prefix("@at ") {
        if tz.is_some() {
            return None;
        }
        let t = super::api::time::Timestamp::parse_rfc3339(at).ok()?;
        if t.unix_nanos_i128() == GO_ZERO_SECS * i128::from(SEC) {
            return Some(Fire::Never);
        }
        return Some(Fire::At(t.unix_nanos_saturating(), false));
    }
    if let Some(every) = pattern.strip_prefix("@every ") {
        if tz.is_some() {
            return None;
        }
        let d = crate::conf::parse_go_duration(every).ok()?;
        if d < SEC {
            return None;
        }
        let mut next = round_sec(base).checked_add(d)?;
        if next < now {
            next = round_sec(now).checked_add(d)?;
        }
        return Some(Fire::At(next, true));
    }
    let pattern = match pattern {
        "@yearly" | "@annually" => "0 0 0 1 1 *",
        "@monthly" => "0 0 0 1 * *",
        "@weekly" => "0 0 0 * * 0",
        "@daily" | "@midnight" => "0 0 0 * * *",
        "@hourly" => "0 0 * * * *",
        p => p,
    };
    let cron = Cron::parse(pattern)?;
    let tz = tz.unwrap_or(Tz::UTC);
    let mut next = cron.next_after(base, tz)?;
    if next < now {
        next = cron.next_after(round_sec(now), tz)?;
    }
    Some(Fire::At(next, true))
}

/// Bit 63 of a field: it was `*` (or `?`) without a step, which changes how days match.
const STAR: u64 = 1 << 63;

/// A parsed six-field cron pattern: seconds, minutes, hours, day of month, month, day of
/// week, each a bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cron {
    /// Bit n: second n.
    second: u64,
    /// Bit n: minute n.
    minute: u64,
    /// Bit n: hour n.
    hour: u64,
    /// Bit n: day n of the month (1-31).
    dom: u64,
    /// Bit n: month n (1-12).
    month: u64,
    /// Bit n: weekday n (0 = Sunday).
    dow: u64,
}

/// A field's range and names.
struct Bounds {
    min: u64,
    max: u64,
    names: &'static [(&'static str, u64)],
}

const MONTHS: &[(&str, u64)] = &[
    ("jan", 1),
    ("feb", 2),
    ("mar", 3),
    ("apr", 4),
    ("may", 5),
    ("jun", 6),
    ("jul", 7),
    ("aug", 8),
    ("sep", 9),
    ("oct", 10),
    ("nov", 11),
    ("dec", 12),
];
const DAYS: &[(&str, u64)] = &[
    ("sun", 0),
    ("mon", 1),
    ("tue", 2),
    ("wed", 3),
    ("thu", 4),
    ("fri", 5),
    ("sat", 6),
];

/// Go's `strconv.Atoi` of a non-negative number (a `+` sign is allowed).
fn atoi(s: &str) -> Option<u64> {
    let digits = s.strip_prefix('+').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl Cron {
    /// Parse `s w h dom mon dow` (fields separated by white space; each a list of
    /// `*`/`?`, `n`, `a-b`, with an optional `/step`; months and weekdays also by
    /// three-letter name, any case).
    pub fn parse(pattern: &str) -> Option<Cron> {
        let fields: Vec<&str> = pattern.split_whitespace().collect();
        let [s, m, h, dom, mon, dow] = fields[..] else {
            return None;
        };
        let b = |min, max, names| Bounds { min, max, names };
        Some(Cron {
            second: field(s, &b(0, 59, &[]))?,
            minute: field(m, &b(0, 59, &[]))?,
            hour: field(h, &b(0, 23, &[]))?,
            dom: field(dom, &b(1, 31, &[]))?,
            month: field(mon, &b(1, 12, MONTHS))?,
            dow: field(dow, &b(0, 6, DAYS))?,
        })
    }

    fn day_matches(&self, d: NaiveDate) -> bool {
        let dom = self.dom & (1 << d.day()) != 0;
        let dow = self.dow & (1 << d.weekday().num_days_from_sunday()) != 0;
        if self.dom & STAR != 0 || self.dow & STAR != 0 {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first matching second strictly after `base` (Unix ns), read in `tz`; `None`
    /// if nothing matches within five years. Walks months, days, hours, minutes and
    /// seconds in the zone's wall-clock time as nats-server's cron does (its `Add`s
    /// of hours are absolute, so around a DST change the two may pick different
    /// instants).
    pub fn next_after(&self, base: i64, tz: Tz) -> Option<i64> {
        let start = tz.timestamp_nanos(base).naive_local();
        let mut t = start.with_nanosecond(0)? + chrono::Duration::seconds(1);
        let limit = t.year() + 5;
        let mut truncated = false;
        'wrap: loop {
            if t.year() > limit {
                return None;
            }
            while self.month & (1 << t.month()) == 0 {
                if !truncated {
                    truncated = true;
                    t = NaiveDate::from_ymd_opt(t.year(), t.month(), 1)?.and_hms_opt(0, 0, 0)?;
                }
                t = add_month(t)?;
                if t.month() == 1 {
                    continue 'wrap;
                }
            }
            while !self.day_matches(t.date()) {
                if !truncated {
                    truncated = true;
                    t = t.date().and_hms_opt(0, 0, 0)?;
                }
                t += chrono::Duration::days(1);
                if t.day() == 1 {
                    continue 'wrap;
                }
            }
            while self.hour & (1 << t.hour()) == 0 {
                if !truncated {
                    truncated = true;
                    t = t.date().and_hms_opt(t.hour(), 0, 0)?;
                }
                t += chrono::Duration::hours(1);
                if t.hour() == 0 {
                    continue 'wrap;
                }
            }
            while self.minute & (1 << t.minute()) == 0 {
                if !truncated {
                    truncated = true;
                    t = t.with_second(0)?;
                }
                t += chrono::Duration::minutes(1);
                if t.minute() == 0 {
                    continue 'wrap;
                }
            }
            while self.second & (1 << t.second()) == 0 {
                t += chrono::Duration::seconds(1);
                if t.second() == 0 {
                    continue 'wrap;
                }
            }
            // A wall-clock time the zone repeats (DST ending) may be the earlier,
            // already past instant: then walk on from the next second.
            match local_nanos(tz, t, base) {
                Some(at) if at > base => return Some(at),
                _ => {
                    t += chrono::Duration::seconds(1);
                    continue 'wrap;
                }
            }
        }
    }
}

/// `t` plus one month, on day 1 (the walk only adds months to the first of a month).
fn add_month(t: NaiveDateTime) -> Option<NaiveDateTime> {
    let (y, m) = if t.month() == 12 {
        (t.year() + 1, 1)
    } else {
        (t.year(), t.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1)?.and_hms_opt(0, 0, 0)
}

/// A wall-clock time in `tz` as Unix ns: of two (a repeated hour), the earlier one
/// after `base`; for one a DST gap skipped, the time one hour on.
fn local_nanos(tz: Tz, t: NaiveDateTime, base: i64) -> Option<i64> {
    use chrono::LocalResult;
    let ns = |dt: chrono::DateTime<Tz>| dt.timestamp_nanos_opt();
    match tz.from_local_datetime(&t) {
        LocalResult::Single(dt) => ns(dt),
        LocalResult::Ambiguous(a, b) => match ns(a) {
            Some(a) if a > base => Some(a),
            _ => ns(b),
        },
        LocalResult::None => ns(tz
            .from_local_datetime(&(t + chrono::Duration::hours(1)))
            .earliest()?),
    }
}

/// One comma-separated cron field as a bit set (nats-server's `getField`).
fn field(f: &str, b: &Bounds) -> Option<u64> {
    let mut bits = 0u64;
    for expr in f.split(',').filter(|e| !e.is_empty()) {
        bits |= range(expr, b)?;
    }
    Some(bits)
}

/// One `*`, `n`, `a-b`, with an optional `/step` (nats-server's `getRange`).
fn range(expr: &str, b: &Bounds) -> Option<u64> {
    let parts: Vec<&str> = expr.split('/').collect();
    let low_high: Vec<&str> = parts[0].split('-').collect();
    let single = low_high.len() == 1;
    let name_or_int = |s: &str| {
        let lower = s.to_ascii_lowercase();
        b.names
            .iter()
            .find(|(n, _)| *n == lower)
            .map(|(_, v)| *v)
            .or_else(|| atoi(s))
    };
    let (start, mut end, mut extra) = if low_high[0] == "*" || low_high[0] == "?" {
        (b.min, b.max, STAR)
    } else {
        let start = name_or_int(low_high[0])?;
        let end = match low_high.len() {
            1 => start,
            2 => name_or_int(low_high[1])?,
            _ => return None,
        };
        (start, end, 0)
    };
    let step = match parts.len() {
        1 => 1,
        2 => {
            let step = atoi(parts[1])?;
            if single {
                end = b.max;
            }
            if step > 1 {
                extra = 0;
            }
            step
        }
        _ => return None,
    };
    if start < b.min || end > b.max || start > end || step == 0 {
        return None;
    }
    let mut bits = 0u64;
    let mut i = start;
    // `end` is at most 59, so the shift stays in range; a huge step ends the loop.
    while i <= end {
        bits |= 1 << i;
        i = i.saturating_add(step);
    }
    Some(bits | extra)
}

/// A live schedule: the newest message on its subject, and when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    /// The schedule message's sequence.
    seq: u64,
    /// When it fires (Unix ns).
    due: i64,
}

/// A stream's live schedules, by subject (nats-server's `MsgScheduling`).
#[derive(Debug, Default)]
pub struct Schedules {
    /// By schedule subject.
    by_subject: HashMap<String, Entry>,
    /// (due, subject), earliest first.
    queue: BTreeSet<(i64, String)>,
    /// Fired, and the fired message not yet stored: not fired again meanwhile.
    inflight: HashSet<String>,
}

impl Schedules {
    /// No schedules.
    pub fn new() -> Schedules {
        Schedules::default()
    }

    /// Number of live schedules.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_subject.len()
    }

    /// Whether there are none.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.by_subject.is_empty()
    }

    /// A schedule message stored at `seq` on `subject`, due at `due`: it replaces the
    /// subject's previous one.
    pub fn add(&mut self, subject: &str, seq: u64, due: i64) {
        self.remove_subject(subject);
        self.by_subject
            .insert(subject.to_string(), Entry { seq, due });
        self.queue.insert((due, subject.to_string()));
    }

    /// The schedule on `subject` fires next at `due` (a repeating schedule fired).
    pub fn update(&mut self, subject: &str, due: i64) {
        if let Some(e) = self.by_subject.get_mut(subject) {
            self.queue.remove(&(e.due, subject.to_string()));
            e.due = due;
            self.queue.insert((due, subject.to_string()));
            self.inflight.remove(subject);
        }
    }

    /// `subject` holds no schedule any more.
    pub fn remove_subject(&mut self, subject: &str) {
        if let Some(e) = self.by_subject.remove(subject) {
            self.queue.remove(&(e.due, subject.to_string()));
        }
        self.inflight.remove(subject);
    }

    /// The fired message of `subject`'s schedule did not make it into the stream: it may
    /// fire again.
    pub fn not_inflight(&mut self, subject: &str) {
        self.inflight.remove(subject);
    }

    /// The earliest due time of a schedule that is not in flight.
    pub fn next_due(&self) -> Option<i64> {
        self.queue
            .iter()
            .find(|(_, s)| !self.inflight.contains(s))
            .map(|(due, _)| *due)
    }

    /// Schedules due at `now` and not in flight, as (subject, sequence, due), in
    /// sequence order; each is marked in flight until its fired message is stored
    /// ([`Schedules::update`] or [`Schedules::remove_subject`]) or fails
    /// ([`Schedules::not_inflight`]).
    pub fn take_due(&mut self, now: i64) -> Vec<(String, u64, i64)> {
        let mut due: Vec<(String, u64, i64)> = self
            .queue
            .iter()
            .take_while(|(d, _)| *d <= now)
            .filter(|(_, s)| !self.inflight.contains(s))
            .filter_map(|(d, s)| self.by_subject.get(s).map(|e| (s.clone(), e.seq, *d)))
            .collect();
        due.sort_by_key(|(_, seq, _)| *seq);
        for (s, _, _) in &due {
            self.inflight.insert(s.clone());
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-05T10:20:30Z (a Monday).
    const T: i64 = 1_767_608_430 * SEC;

    fn utc(s: &str) -> i64 {
        super::super::api::time::Timestamp::parse_rfc3339(s)
            .unwrap()
            .unix_nanos_saturating()
    }

    #[test]
    fn at_and_every() {
        assert_eq!(next_fire("", None, T, T), Some(Fire::Never));
        assert_eq!(
            next_fire("@at 0001-01-01T00:00:00Z", None, T, T),
            Some(Fire::Never)
        );
        assert_eq!(
            next_fire("@at 2026-01-05T10:21:00Z", None, T, T),
            Some(Fire::At(utc("2026-01-05T10:21:00Z"), false))
        );
        // In the past it is still the time (it fires at once).
        assert_eq!(
            next_fire("@at 2020-01-01T00:00:00Z", None, T, T),
            Some(Fire::At(utc("2020-01-01T00:00:00Z"), false))
        );
        assert_eq!(next_fire("@at tomorrow", None, T, T), None);
        let ams = zone(Some(b"Europe/Amsterdam")).unwrap();
        assert_eq!(next_fire("@at 2026-01-05T10:21:00Z", ams, T, T), None);
        // @every counts from the base rounded to the second.
        assert_eq!(
            next_fire("@every 5s", None, T + 600_000_000, T),
            Some(Fire::At(T + 6 * SEC, true))
        );
        assert_eq!(
            next_fire("@every 5s", None, T + 400_000_000, T),
            Some(Fire::At(T + 5 * SEC, true))
        );
        // Overdue (after a restart): once, from now.
        assert_eq!(
            next_fire("@every 1m", None, T - 3600 * SEC, T),
            Some(Fire::At(T + 60 * SEC, true))
        );
        assert_eq!(next_fire("@every 500ms", None, T, T), None);
        assert_eq!(next_fire("@every 1x", None, T, T), None);
        assert_eq!(next_fire("@every 1s", ams, T, T), None);
    }

    #[test]
    fn cron_patterns() {
        let next = |p: &str| match next_fire(p, None, T, T) {
            Some(Fire::At(t, _)) => Some(t),
            _ => None,
        };
        assert_eq!(next("* * * * * *"), Some(T + SEC));
        assert_eq!(next("0 * * * * *"), Some(utc("2026-01-05T10:21:00Z")));
        assert_eq!(next("*/15 * * * * *"), Some(utc("2026-01-05T10:20:45Z")));
        assert_eq!(next("0 0 12 * * *"), Some(utc("2026-01-05T12:00:00Z")));
        assert_eq!(next("@hourly"), Some(utc("2026-01-05T11:00:00Z")));
        assert_eq!(next("@daily"), Some(utc("2026-01-06T00:00:00Z")));
        assert_eq!(next("@weekly"), Some(utc("2026-01-11T00:00:00Z")));
        assert_eq!(next("@monthly"), Some(utc("2026-02-01T00:00:00Z")));
        assert_eq!(next("@yearly"), Some(utc("2027-01-01T00:00:00Z")));
        // Names, ranges, lists.
        assert_eq!(next("0 0 9 * * SAT"), Some(utc("2026-01-10T09:00:00Z")));
        assert_eq!(next("0 0 9 * feb-mar *"), Some(utc("2026-02-01T09:00:00Z")));
        assert_eq!(next("30 20,40 10 * * *"), Some(utc("2026-01-05T10:40:30Z")));
        // Day of month OR day of week when both are restricted.
        assert_eq!(next("0 0 0 15 * MON"), Some(utc("2026-01-12T00:00:00Z")));
        assert_eq!(next("0 0 0 31 2 *"), None, "never matches");
        assert_eq!(
            next("*/4294967296 * * * * *"),
            Some(utc("2026-01-05T10:21:00Z"))
        );
        for bad in [
            "* * * * *",
            "60 * * * * *",
            "* * * 0 * *",
            "* * * * * 7",
            "a * * * * *",
            "1-2-3 * * * * *",
            "*/0 * * * * *",
            "5-1 * * * * *",
            "-1 * * * * *",
        ] {
            assert_eq!(next(bad), None, "{bad}");
        }
    }

    #[test]
    fn cron_in_a_time_zone() {
        let ams = zone(Some(b"Europe/Amsterdam")).unwrap();
        // 12:00 in Amsterdam in January is 11:00 UTC.
        assert_eq!(
            next_fire("0 0 12 * * *", ams, T, T),
            Some(Fire::At(utc("2026-01-05T11:00:00Z"), true))
        );
        // Inside the hour DST repeats (2026-10-25, 02:10 CET, the second 02:10): the
        // next minute is 02:11 CET, not the 02:11 CEST an hour ago.
        let second_pass = utc("2026-10-25T01:10:00Z");
        assert_eq!(
            next_fire("0 * * * * *", ams, second_pass, second_pass),
            Some(Fire::At(utc("2026-10-25T01:11:00Z"), true))
        );
        assert_eq!(zone(Some(b"Mars/Olympus")), Err(()));
        assert_eq!(zone(Some(b"")), Err(()));
        assert_eq!(zone(None), Ok(None));
    }

    #[test]
    fn schedules_fire_once_until_stored() {
        let mut s = Schedules::new();
        s.add("sched.a", 1, 100);
        s.add("sched.b", 2, 50);
        assert_eq!(s.next_due(), Some(50));
        assert!(s.take_due(40).is_empty());
        assert_eq!(
            s.take_due(100),
            vec![
                ("sched.a".to_string(), 1, 100),
                ("sched.b".to_string(), 2, 50)
            ]
        );
        assert!(s.take_due(200).is_empty(), "in flight");
        assert_eq!(s.next_due(), None);
        // a repeats: its fired message moved it on; b was a one-off and is purged.
        s.update("sched.a", 300);
        s.remove_subject("sched.b");
        assert_eq!(s.next_due(), Some(300));
        assert_eq!(s.len(), 1);
        // A new message on a's subject replaces the schedule.
        s.add("sched.a", 5, 400);
        assert_eq!(s.take_due(350), vec![]);
        assert_eq!(s.take_due(400), vec![("sched.a".to_string(), 5, 400)]);
        s.not_inflight("sched.a");
        assert_eq!(s.next_due(), Some(400), "a failed fire may go again");
    }
}
