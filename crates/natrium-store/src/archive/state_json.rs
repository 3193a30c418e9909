//! The JSON documents inside a v2 archive: `state.json` (nats-server's `StreamState`) and
//! the `state` half of a `consumers/<name>` entry (`ConsumerState`), with Go's field names
//! and Go's time encoding (RFC 3339 with nanoseconds, zero time `0001-01-01T00:00:00Z`).
//! Timestamps are carried as Unix nanoseconds, 0 meaning Go's zero time.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `state.json`: the stream state at snapshot start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamStateJson {
    /// Number of messages.
    pub messages: u64,
    /// Stored bytes (store-specific accounting; used for the restore reservation).
    pub bytes: u64,
    /// First sequence.
    pub first_seq: u64,
    /// Timestamp of the first message, Unix ns (0 = zero time).
    #[serde(with = "go_time")]
    pub first_ts: i64,
    /// Last sequence.
    pub last_seq: u64,
    /// Timestamp of the last message, Unix ns (0 = zero time).
    #[serde(with = "go_time")]
    pub last_ts: i64,
    /// Number of distinct subjects (omitted when 0).
    #[serde(skip_serializing_if = "is_zero")]
    pub num_subjects: u64,
    /// Number of deleted sequences in range (omitted when 0).
    #[serde(skip_serializing_if = "is_zero")]
    pub num_deleted: u64,
    /// Number of `consumers/<name>` entries that follow (Go `int`, may be negative in
    /// hostile input, which restore rejects).
    pub consumer_count: i64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// A delivered / ack-floor pair.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SequencePairJson {
    /// Consumer sequence.
    pub consumer_seq: u64,
    /// Stream sequence.
    pub stream_seq: u64,
}

/// One pending (unacknowledged) delivery; Go's field names (no JSON tags).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PendingJson {
    /// Consumer sequence of the delivery.
    #[serde(rename = "Sequence")]
    pub sequence: u64,
    /// Delivery time, Unix ns.
    #[serde(rename = "Timestamp")]
    pub timestamp: i64,
}

/// Consumer state as carried in v2 archives.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerStateJson {
    /// Highest delivered.
    pub delivered: SequencePairJson,
    /// Ack floor.
    pub ack_floor: SequencePairJson,
    /// Pending acks keyed by stream sequence.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub pending: BTreeMap<u64, PendingJson>,
    /// Redelivery counts keyed by stream sequence.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub redelivered: BTreeMap<u64, u64>,
}

/// Formats Unix nanoseconds like Go's `time.Time` JSON (RFC 3339, trailing zeros of the
/// fraction trimmed, UTC `Z`); 0 is Go's zero time.
pub fn format_go_time(ns: i64) -> String {
    if ns == 0 {
        return "0001-01-01T00:00:00Z".to_string();
    }
    let secs = ns.div_euclid(1_000_000_000);
    let frac = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut s = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    );
    if frac != 0 {
        let f = format!("{frac:09}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Parses an RFC 3339 timestamp (`Z` or `±hh:mm`) into Unix nanoseconds. Go's zero time
/// (year 1) maps to 0; times outside the i64 nanosecond range are rejected.
pub fn parse_go_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac: i64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &s[start..i];
        if digits.is_empty() {
            return None;
        }
        let mut scale = 100_000_000i64;
        for c in digits.bytes().take(9) {
            frac += i64::from(c - b'0') * scale;
            scale /= 10;
        }
    }
    let offset_secs: i64 = match b.get(i) {
        Some(b'Z') | Some(b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            let o = oh * 3600 + om * 60;
            if sign == b'-' { -o } else { o }
        }
        _ => return None,
    };
    if y == 1 && mo == 1 && d == 1 && h == 0 && mi == 0 && se == 0 && frac == 0 && offset_secs == 0
    {
        return Some(0);
    }
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset_secs;
    secs.checked_mul(1_000_000_000)?.checked_add(frac)
}

// Proleptic Gregorian calendar conversions (days relative to 1970-01-01).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

mod go_time {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ns: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_go_time(*ns))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_go_time(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid time {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_time_roundtrip() {
        let ns = 1_795_875_321_029_178_501;
        let s = format_go_time(ns);
        assert_eq!(s, "2026-11-28T14:15:21.029178501Z");
        assert_eq!(parse_go_time(&s), Some(ns));
        assert_eq!(format_go_time(0), "0001-01-01T00:00:00Z");
        assert_eq!(parse_go_time("0001-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            format_go_time(1_700_000_000_000_000_000),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            parse_go_time("2023-11-14T23:13:20.5+01:00"),
            Some(1_700_000_000_500_000_000)
        );
        assert_eq!(parse_go_time("garbage"), None);
        assert_eq!(parse_go_time("2023-13-14T23:13:20Z"), None);
    }

    #[test]
    fn state_json_matches_go() {
        let text = r#"{"messages":47,"bytes":4620,"first_seq":1,"first_ts":"2026-11-28T14:15:21.029178501Z","last_seq":49,"last_ts":"2026-11-28T14:15:21.046056724Z","num_subjects":4,"num_deleted":2,"consumer_count":2}"#;
        let st: StreamStateJson = serde_json::from_str(text).unwrap();
        assert_eq!(st.messages, 47);
        assert_eq!(st.last_ts, 1_795_875_321_046_056_724);
        assert_eq!(serde_json::to_string(&st).unwrap(), text);
        let c = r#"{"delivered":{"consumer_seq":3,"stream_seq":3},"ack_floor":{"consumer_seq":2,"stream_seq":2},"pending":{"3":{"Sequence":3,"Timestamp":1795875321030554332}}}"#;
        let cs: ConsumerStateJson = serde_json::from_str(c).unwrap();
        assert_eq!(cs.pending[&3].timestamp, 1_795_875_321_030_554_332);
        assert_eq!(serde_json::to_string(&cs).unwrap(), c);
    }
}
