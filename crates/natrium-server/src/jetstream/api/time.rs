//! Go's JSON conventions for time values and byte payloads.
//!
//! Why not `std::time` or the `time` crate directly: nats-server marshals `time.Time`
//! with Go's RFC 3339 "nano" layout (trailing zeros of the fraction dropped, `Z` for UTC,
//! the zero time as `0001-01-01T00:00:00Z`), keeps the offset a client sent
//! (`2024-01-01T00:00:00+02:00` is echoed back as given), and parses requests with Go's
//! lenient `time.Parse(time.RFC3339, ...)`, whose error texts end up in API errors.
//! [`Timestamp`] reproduces all of that; it converts to and from Unix nanoseconds, which
//! is what the stores use.
//!
//! Durations (`max_age`, `ack_wait`, ...) are `time.Duration` in Go: plain integer
//! nanoseconds in JSON, possibly negative (`"active": -1`). They are `i64` fields here;
//! [`duration_to_nanos`] and [`nanos_to_duration`] convert.
//!
//! `[]byte` fields (`hdrs`, `data` of a stored message) are standard base64 with padding;
//! see [`base64_bytes`].

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Seconds from 0001-01-01T00:00:00Z (Go's zero time) to the Unix epoch.
const ZERO_UNIX_SECS: i64 = -62_135_596_800;

/// The RFC 3339 layout string Go puts into its parse errors.
const RFC3339_LAYOUT: &str = "2006-01-02T15:04:05Z07:00";

/// A Go `time.Time` as JetStream puts it on the wire: an instant plus the UTC offset it
/// is displayed in (0 for everything the server generates).
///
/// Equality compares instant and offset, like Go's `==` on times parsed from JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timestamp {
    /// Whole seconds since the Unix epoch (negative before 1970).
    secs: i64,
    /// Nanoseconds within the second, `0..1_000_000_000`.
    nanos: u32,
    /// Display offset east of UTC in seconds.
    offset: i32,
}

impl Default for Timestamp {
    fn default() -> Self {
        Timestamp::ZERO
    }
}

impl Timestamp {
    /// Go's zero time, `0001-01-01T00:00:00Z` (what `first_ts` shows for an empty stream).
    pub const ZERO: Timestamp = Timestamp {
        secs: ZERO_UNIX_SECS,
        nanos: 0,
        offset: 0,
    };

    /// The current wall-clock time, in UTC.
    pub fn now() -> Timestamp {
        Timestamp::from_system_time(SystemTime::now())
    }

    /// A UTC timestamp from Unix nanoseconds (`time.Unix(0, n).UTC()`).
    pub fn from_unix_nanos(nanos: i64) -> Timestamp {
        Timestamp {
            secs: nanos.div_euclid(1_000_000_000),
            nanos: nanos.rem_euclid(1_000_000_000) as u32,
            offset: 0,
        }
    }

    /// Like [`Timestamp::from_unix_nanos`], but `0` (the stores' "no message") maps to
    /// the Go zero time, as stream state's `first_ts`/`last_ts` do.
    pub fn from_store_nanos(nanos: i64) -> Timestamp {
        if nanos == 0 {
            Timestamp::ZERO
        } else {
            Timestamp::from_unix_nanos(nanos)
        }
    }

    /// A UTC timestamp from a `SystemTime`.
    pub fn from_system_time(t: SystemTime) -> Timestamp {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp {
                secs: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                nanos: d.subsec_nanos(),
                offset: 0,
            },
            Err(e) => {
                let d = e.duration();
                let total =
                    -(i128::from(d.as_secs()) * 1_000_000_000 + i128::from(d.subsec_nanos()));
                Timestamp {
                    secs: i64::try_from(total.div_euclid(1_000_000_000)).unwrap_or(i64::MIN),
                    nanos: total.rem_euclid(1_000_000_000) as u32,
                    offset: 0,
                }
            }
        }
    }

    /// Whether this is the zero time (whatever offset it is displayed in), Go `IsZero`.
    pub fn is_zero(&self) -> bool {
        self.secs == ZERO_UNIX_SECS && self.nanos == 0
    }

    /// Nanoseconds since the Unix epoch (full range).
    pub fn unix_nanos_i128(&self) -> i128 {
        i128::from(self.secs) * 1_000_000_000 + i128::from(self.nanos)
    }

    /// Nanoseconds since the Unix epoch, `None` if outside the `i64` range (years before
    /// 1678 or after 2262, the zero time included).
    pub fn unix_nanos(&self) -> Option<i64> {
        i64::try_from(self.unix_nanos_i128()).ok()
    }

    /// Nanoseconds since the Unix epoch, saturating at the `i64` range. Go's
    /// `UnixNano()` on times outside that range is undefined; saturating is the
    /// useful reading for comparisons with store timestamps.
    pub fn unix_nanos_saturating(&self) -> i64 {
        let n = self.unix_nanos_i128();
        i64::try_from(n).unwrap_or(if n < 0 { i64::MIN } else { i64::MAX })
    }

    /// Nanoseconds since the Unix epoch computed as Go's `UnixNano()` does, wrapping
    /// around outside the `i64` range (so a time after 2262 can come out negative).
    /// For lookups that must pick the same message as nats-server for such times (a
    /// direct get `start_time` in the year 2999 finds the first message there).
    pub fn unix_nanos_wrapping(&self) -> i64 {
        self.secs
            .wrapping_mul(1_000_000_000)
            .wrapping_add(i64::from(self.nanos))
    }

    /// The offset east of UTC (seconds) this time is displayed with.
    pub fn offset_secs(&self) -> i32 {
        self.offset
    }

    /// The same instant displayed in UTC.
    #[must_use]
    pub fn to_utc(self) -> Timestamp {
        Timestamp { offset: 0, ..self }
    }

    /// Signed nanoseconds from `self` to `later` (Go `later.Sub(self)`), saturating.
    pub fn nanos_until(&self, later: &Timestamp) -> i64 {
        let d = later.unix_nanos_i128() - self.unix_nanos_i128();
        i64::try_from(d).unwrap_or(if d < 0 { i64::MIN } else { i64::MAX })
    }

    /// Go's `t.Format(time.RFC3339Nano)`: `2006-01-02T15:04:05.999999999Z07:00`.
    pub fn to_rfc3339_nano(&self) -> String {
        let mut s = String::with_capacity(35);
        self.write_rfc3339_nano(&mut s);
        s
    }

    fn write_rfc3339_nano(&self, s: &mut String) {
        use fmt::Write as _;
        let local = self.secs.saturating_add(i64::from(self.offset));
        let days = local.div_euclid(86_400);
        let sod = local.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        if (0..=9999).contains(&year) {
            let _ = write!(s, "{year:04}");
        } else {
            let _ = write!(s, "{year}");
        }
        let _ = write!(
            s,
            "-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            sod / 3600,
            (sod / 60) % 60,
            sod % 60
        );
        if self.nanos != 0 {
            let frac = format!("{:09}", self.nanos);
            s.push('.');
            s.push_str(frac.trim_end_matches('0'));
        }
        if self.offset == 0 {
            s.push('Z');
        } else {
            let sign = if self.offset < 0 { '-' } else { '+' };
            let minutes = self.offset.unsigned_abs() / 60;
            let _ = write!(s, "{sign}{:02}:{:02}", minutes / 60, minutes % 60);
        }
    }

    /// Parses like Go's `time.Parse(time.RFC3339, s)`, which is what nats-server's JSON
    /// decoding uses for time fields: a fraction (`.` or `,`) is accepted after the
    /// seconds, the hour may have one digit, the offset is `Z` or `±hh:mm`. The error is
    /// Go's `ParseError` text (`parsing time "x" as "2006-01-02T15:04:05Z07:00": cannot
    /// parse "x" as "2006"`).
    pub fn parse_rfc3339(value: &str) -> Result<Timestamp, String> {
        parse_rfc3339(value)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339_nano())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339_nano())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

/// `Duration` to Go `time.Duration` nanoseconds, saturating at `i64::MAX`.
pub fn duration_to_nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Go `time.Duration` nanoseconds to `Duration`; `None` when negative.
pub fn nanos_to_duration(nanos: i64) -> Option<Duration> {
    u64::try_from(nanos).ok().map(Duration::from_nanos)
}

/// Go's `time.Duration.String()` (`1m30s`, `100ms`, `0s`), used in some error texts
/// (e.g. the server duplicate-window limit).
pub fn go_duration_string(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    let neg = nanos < 0;
    let u = nanos.unsigned_abs();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if u < 1_000_000_000 {
        // Sub-second: one unit with a fraction.
        let (unit, scale) = if u < 1_000 {
            ("ns", 1)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        out.push_str(&fraction(u, scale));
        out.push_str(unit);
        return out;
    }
    let hours = u / 3_600_000_000_000;
    let rem = u % 3_600_000_000_000;
    let minutes = rem / 60_000_000_000;
    let sec_nanos = rem % 60_000_000_000;
    if hours > 0 {
        out.push_str(&format!("{hours}h{minutes}m"));
    } else if minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&fraction(sec_nanos, 1_000_000_000));
    out.push('s');
    out
}

/// `v / scale` with the fraction's trailing zeros removed (`1500, 1000` -> `1.5`).
fn fraction(v: u64, scale: u64) -> String {
    let whole = v / scale;
    let frac = v % scale;
    if frac == 0 {
        return whole.to_string();
    }
    let width = scale.ilog10() as usize;
    let f = format!("{frac:0width$}");
    format!("{whole}.{}", f.trim_end_matches('0'))
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) to days since 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) {
                29
            } else {
                28
            }
        }
    }
}

/// Go's `quote` helper of package time (a `strconv.Quote` without unicode escaping of
/// printable runes).
fn go_time_quote(s: &str) -> String {
    crate::jetstream::api::go_json::go_quote(s)
}

/// A Go `*time.ParseError` rendered with `Error()`.
fn parse_error(value: &str, value_elem: &str, layout_elem: &str, message: &str) -> String {
    if message.is_empty() {
        format!(
            "parsing time {} as {}: cannot parse {} as {}",
            go_time_quote(value),
            go_time_quote(RFC3339_LAYOUT),
            go_time_quote(value_elem),
            go_time_quote(layout_elem)
        )
    } else {
        format!("parsing time {}{}", go_time_quote(value), message)
    }
}

fn digit(b: &[u8], i: usize) -> bool {
    b.get(i).is_some_and(u8::is_ascii_digit)
}

/// Go `getnum` on bytes: one or two leading digits (exactly two when `fixed`), and how
/// many bytes they took.
fn getnum_bytes(b: &[u8], fixed: bool) -> Option<(u32, usize)> {
    if !digit(b, 0) {
        return None;
    }
    if !digit(b, 1) {
        if fixed {
            return None;
        }
        return Some((u32::from(b[0] - b'0'), 1));
    }
    Some((u32::from(b[0] - b'0') * 10 + u32::from(b[1] - b'0'), 2))
}

/// Go `getnum` on a string; the digits are ASCII, so the rest starts on a char boundary.
fn getnum(s: &str, fixed: bool) -> Option<(u32, &str)> {
    getnum_bytes(s.as_bytes(), fixed).map(|(v, n)| (v, &s[n..]))
}

/// The layout of RFC 3339 as Go's parser walks it: (literal prefix, element).
const CHUNKS: [(&str, &str); 7] = [
    ("", "2006"),
    ("-", "01"),
    ("-", "02"),
    ("T", "15"),
    (":", "04"),
    (":", "05"),
    ("", "Z07:00"),
];

fn parse_rfc3339(value: &str) -> Result<Timestamp, String> {
    let mut rest = value;
    let (mut year, mut month, mut day, mut hour, mut min, mut sec) =
        (0i64, 0u32, 0u32, 0u32, 0u32, 0u32);
    let mut nanos = 0u32;
    let mut offset: i32 = 0;
    for (prefix, elem) in CHUNKS {
        if !prefix.is_empty() {
            match rest.strip_prefix(prefix) {
                Some(r) => rest = r,
                None => return Err(parse_error(value, rest, prefix, "")),
            }
        }
        let hold = rest;
        let mut range_err = "";
        let ok: Option<&str> = match elem {
            "2006" => {
                let b = rest.as_bytes();
                if b.len() < 4 || !digit(b, 0) {
                    None
                } else {
                    match rest.get(..4).and_then(|p| p.parse::<i64>().ok()) {
                        // Go's atoi takes a sign, but `+`/`-` cannot start here.
                        Some(y) if b[..4].iter().all(u8::is_ascii_digit) => {
                            year = y;
                            Some(&rest[4..])
                        }
                        _ => None,
                    }
                }
            }
            "01" => getnum(rest, true).map(|(v, r)| {
                month = v;
                if !(1..=12).contains(&v) {
                    range_err = "month";
                }
                r
            }),
            "02" => getnum(rest, true).map(|(v, r)| {
                day = v;
                r
            }),
            "15" => getnum(rest, false).map(|(v, r)| {
                hour = v;
                if v >= 24 {
                    range_err = "hour";
                }
                r
            }),
            "04" => getnum(rest, true).map(|(v, r)| {
                min = v;
                if v >= 60 {
                    range_err = "minute";
                }
                r
            }),
            "05" => match getnum(rest, true) {
                None => None,
                Some((v, r)) => {
                    sec = v;
                    if v >= 60 {
                        range_err = "second";
                        Some(r)
                    } else {
                        let rb = r.as_bytes();
                        if rb.len() >= 2 && (rb[0] == b'.' || rb[0] == b',') && digit(rb, 1) {
                            let mut n = 2;
                            while digit(rb, n) {
                                n += 1;
                            }
                            // Go keeps at most 9 fractional digits (nbytes capped at 10).
                            let take = n.min(10);
                            let digits = &r[1..take];
                            let mut ns: u32 = digits.parse().unwrap_or(0);
                            for _ in 0..(10 - take) {
                                ns *= 10;
                            }
                            nanos = ns;
                            Some(&r[n..])
                        } else {
                            Some(r)
                        }
                    }
                }
            },
            _ => {
                // "Z07:00"
                let b = rest.as_bytes();
                if b.first() == Some(&b'Z') {
                    offset = 0;
                    Some(&rest[1..])
                } else if b.len() < 6 || b[3] != b':' {
                    None
                } else {
                    let hh = getnum_bytes(&b[1..3], true);
                    let mm = getnum_bytes(&b[4..6], true);
                    match (hh, mm, b[0]) {
                        (Some((h, _)), Some((m, _)), sign @ (b'+' | b'-')) => {
                            if h > 24 {
                                range_err = "time zone offset hour";
                            }
                            if m > 60 {
                                range_err = "time zone offset minute";
                            }
                            let off = ((h * 60 + m) * 60) as i32;
                            offset = if sign == b'-' { -off } else { off };
                            Some(&rest[6..])
                        }
                        _ => None,
                    }
                }
            }
        };
        if !range_err.is_empty() {
            let after = ok.unwrap_or(hold);
            return Err(parse_error(
                value,
                after,
                elem,
                &format!(": {range_err} out of range"),
            ));
        }
        match ok {
            Some(r) => rest = r,
            None => return Err(parse_error(value, hold, elem, "")),
        }
    }
    if !rest.is_empty() {
        return Err(parse_error(
            value,
            "",
            "",
            &format!(": extra text: {}", go_time_quote(rest)),
        ));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(parse_error(value, "", "", ": day out of range"));
    }
    let days = days_from_civil(year, month, day);
    let local = days * 86_400 + i64::from(hour) * 3600 + i64::from(min) * 60 + i64::from(sec);
    Ok(Timestamp {
        secs: local - i64::from(offset),
        nanos,
        offset,
    })
}

/// Serde helpers for Go `[]byte` fields: standard base64 with padding, the field
/// omitted when empty (`omitempty`). Use with
/// `#[serde(default, with = "base64_bytes", skip_serializing_if = "<[u8]>::is_empty")]`
/// on a `Vec<u8>`.
pub mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes bytes as a base64 string.
    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    /// Parses a base64 string (Go's decoder skips CR and LF, so do we); `null` is empty.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let s = Option::<String>::deserialize(deserializer)?.unwrap_or_default();
        let clean: String = s.chars().filter(|c| *c != '\r' && *c != '\n').collect();
        STANDARD
            .decode(clean.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}
