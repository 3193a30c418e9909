//! Go's textual formats for times, durations, floats and quoted strings.
//!
//! Monitoring consumers (the `nats` CLI, Prometheus exporters, dashboards) parse what
//! nats-server prints, and nats-server prints through Go's standard library: durations via
//! `time.Duration.String()` (`"729µs"`, `"1h2m3.5s"`), uptimes via its own `myUptime`
//! (`"4m37s"`, `"2d3h0m1s"`), times via RFC 3339 with trimmed nanoseconds, floats via
//! `encoding/json`'s rules and error texts via `%q`. Reproducing these exactly is what
//! lets those consumers keep working, so each function here is a port of the Go
//! behaviour, with the Go function named in its doc.

use std::time::{Duration, SystemTime};

/// `time.Duration(nanos).String()`: `"0s"`, `"100ns"`, `"729µs"`, `"3.855209ms"`,
/// `"1.5s"`, `"4m37s"`, `"1h0m0s"`; negative values get a leading `-`.
pub fn go_duration(nanos: i64) -> String {
    let neg = nanos < 0;
    let u = nanos.unsigned_abs();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if u == 0 {
        return "0s".to_string();
    }
    if u < 1_000_000_000 {
        // Below a second Go switches to the largest unit that keeps an integer part.
        let (prec, unit) = if u < 1_000 {
            (0, "ns")
        } else if u < 1_000_000 {
            (3, "µs")
        } else {
            (6, "ms")
        };
        let (int, frac) = split_frac(u, prec);
        out.push_str(&int.to_string());
        out.push_str(&frac);
        out.push_str(unit);
        return out;
    }
    let (secs, frac) = split_frac(u, 9);
    let mins = secs / 60;
    if mins > 0 {
        let hours = mins / 60;
        if hours > 0 {
            out.push_str(&format!("{hours}h"));
        }
        out.push_str(&format!("{}m", mins % 60));
    }
    out.push_str(&format!("{}{}s", secs % 60, frac));
    out
}

/// Splits `v` into `v / 10^prec` and the fraction as `".123"` without trailing zeros
/// (empty when the fraction is zero), like Go's `fmtFrac`.
fn split_frac(v: u64, prec: u32) -> (u64, String) {
    let scale = 10u64.pow(prec);
    let int = v / scale;
    let frac = v % scale;
    if prec == 0 || frac == 0 {
        return (int, String::new());
    }
    let digits = format!("{:0width$}", frac, width = prec as usize);
    (int, format!(".{}", digits.trim_end_matches('0')))
}

/// nats-server's `myUptime`: whole seconds only, with days and years
/// (`"0s"`, `"4m37s"`, `"3h0m5s"`, `"2d0h0m0s"`, `"1y2d3h4m5s"`).
pub fn my_uptime(d: Duration) -> String {
    let tsecs = d.as_secs();
    let tmins = tsecs / 60;
    let thrs = tmins / 60;
    let tdays = thrs / 24;
    let tyrs = tdays / 365;
    if tyrs > 0 {
        format!(
            "{}y{}d{}h{}m{}s",
            tyrs,
            tdays % 365,
            thrs % 24,
            tmins % 60,
            tsecs % 60
        )
    } else if tdays > 0 {
        format!("{}d{}h{}m{}s", tdays, thrs % 24, tmins % 60, tsecs % 60)
    } else if thrs > 0 {
        format!("{}h{}m{}s", thrs, tmins % 60, tsecs % 60)
    } else if tmins > 0 {
        format!("{}m{}s", tmins, tsecs % 60)
    } else {
        format!("{tsecs}s")
    }
}

/// `t.UTC().Format(time.RFC3339Nano)`: `"2026-11-28T14:16:33.94119Z"`; the fraction
/// loses its trailing zeros and disappears when zero.
pub fn rfc3339_nano(t: SystemTime) -> String {
    let dt = time::OffsetDateTime::from(t);
    let nanos = dt.nanosecond();
    let frac = if nanos == 0 {
        String::new()
    } else {
        format!(".{}", format!("{nanos:09}").trim_end_matches('0'))
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}Z",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        frac
    )
}

/// A float as Go's `encoding/json` writes it: shortest round-trip digits, no exponent
/// between 1e-6 and 1e21 (so `2.0` is `2`), otherwise `1e-7` / `1e+21` style.
/// Non-finite values (which Go refuses to encode) come out as `0`.
pub fn go_float(f: f64) -> String {
    if !f.is_finite() {
        return "0".to_string();
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{f:e}");
        // Rust writes `1e21`; Go writes `1e+21` (and `1e-7` alike).
        match s.split_once('e') {
            Some((mant, exp)) if !exp.starts_with('-') => format!("{mant}e+{exp}"),
            _ => s,
        }
    } else {
        format!("{f}")
    }
}

/// Go's `strconv.Quote` (what `%q` prints) for the strings that appear in error
/// messages: `"` and `\` escaped, control characters as `\n`, `\t`, `\x01`, `\u2028`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' || c == '\u{feff}' => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_match_go() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(100), "100ns");
        assert_eq!(go_duration(729_000), "729µs");
        assert_eq!(go_duration(729_500), "729.5µs");
        assert_eq!(go_duration(3_855_209), "3.855209ms");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(277_000_000_000), "4m37s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(120_000_000_000), "2m0s");
        assert_eq!(go_duration(3_723_000_000_001), "1h2m3.000000001s");
        assert_eq!(go_duration(-1_500), "-1.5µs");
    }

    #[test]
    fn uptimes_match_my_uptime() {
        assert_eq!(my_uptime(Duration::from_millis(999)), "0s");
        assert_eq!(my_uptime(Duration::from_secs(277)), "4m37s");
        assert_eq!(my_uptime(Duration::from_secs(3 * 3600 + 5)), "3h0m5s");
        assert_eq!(my_uptime(Duration::from_secs(2 * 86400)), "2d0h0m0s");
        assert_eq!(
            my_uptime(Duration::from_secs(367 * 86400 + 3 * 3600 + 4 * 60 + 5)),
            "1y2d3h4m5s"
        );
    }

    #[test]
    fn rfc3339_trims_fraction() {
        let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_875_393);
        assert_eq!(rfc3339_nano(base), "2026-11-28T14:16:33Z");
        assert_eq!(
            rfc3339_nano(base + Duration::from_nanos(941_201_404)),
            "2026-11-28T14:16:33.941201404Z"
        );
        assert_eq!(
            rfc3339_nano(base + Duration::from_nanos(941_190_000)),
            "2026-11-28T14:16:33.94119Z"
        );
    }

    #[test]
    fn floats_match_encoding_json() {
        assert_eq!(go_float(2.0), "2");
        assert_eq!(go_float(0.0), "0");
        assert_eq!(go_float(0.4428822495606327), "0.4428822495606327");
        assert_eq!(go_float(0.5), "0.5");
        assert_eq!(go_float(0.0000015), "0.0000015");
        assert_eq!(go_float(1e-7), "1e-7");
        assert_eq!(go_float(1.5e-7), "1.5e-7");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(18957382656.0), "18957382656");
        assert_eq!(go_float(f64::NAN), "0");
    }

    #[test]
    fn quote_matches_strconv_quote() {
        assert_eq!(go_quote("abc"), "\"abc\"");
        assert_eq!(go_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(go_quote("a\nb\u{1}"), "\"a\\nb\\x01\"");
        assert_eq!(go_quote("µs"), "\"µs\"");
    }
}
