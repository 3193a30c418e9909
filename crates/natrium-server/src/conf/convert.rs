//! Typed accessors used by the options mapper.
//!
//! nats-server interprets the same parsed value differently depending on the option: a
//! top-level size must already be an integer (the lexer applied `MB` and friends), while
//! JetStream's `max_mem`/`max_file` also accept a *string* with its own, different suffix
//! rules; durations are Go `time.ParseDuration` strings, but an integer is tolerated as
//! seconds with a warning. Keeping those rules here, next to the parser, means the mapper
//! cannot get them subtly wrong option by option, and every failure points at the value.

use std::fmt::Write as _;
use std::time::Duration;

use super::error::{ConfError, ConfWarning};
use super::value::{Spanned, Value};

/// Result of the typed accessors.
pub type ConfResult<T> = Result<T, ConfError>;

/// Describes the value found, for "expected X, got Y" messages.
fn found(v: &Spanned) -> String {
    match &v.value {
        Value::String(s) => format!("string \"{s}\""),
        Value::Int(i) => format!("integer {i}"),
        Value::Float(f) => format!("float {f}"),
        Value::Bool(b) => format!("boolean {b}"),
        other => other.type_name().to_string(),
    }
}

/// A type mismatch error at the value.
fn mismatch(v: &Spanned, expected: &str) -> ConfError {
    v.error(format!("expected {expected}, got {}", found(v)))
}

/// A size for top-level options (`max_payload`, `max_pending`, …): an integer, with any
/// unquoted size suffix already applied by the parser (`64MB` is 67108864).
///
/// # Errors
/// Any other type, at the value's position.
pub fn as_size(v: &Spanned) -> ConfResult<i64> {
    match v.value {
        Value::Int(i) => Ok(i),
        _ => Err(mismatch(
            v,
            "a size (an integer, optionally with an unquoted suffix such as 64MB)",
        )),
    }
}

/// A JetStream storage size (`max_mem`, `max_file`, …): an integer as is, or a string
/// `<integer><K|M|G|T>` (one uppercase letter, powers of 1024); an empty string is 0.
///
/// The error message is the reason only, worded like nats-server's `getStorageSize`; the
/// server puts the option name in front (`max_mem_store strconv.ParseInt: …`), which
/// callers can do with [`ConfError::prefixed`].
///
/// # Errors
/// A malformed string or a type other than integer/string, at the value's position.
pub fn storage_size(v: &Spanned) -> ConfResult<i64> {
    match &v.value {
        Value::Int(i) => Ok(*i),
        Value::String(s) => storage_size_str(s).map_err(|m| v.error(m)),
        _ => Err(v.error("must be int64 or string")),
    }
}

/// Parses a storage size string like nats-server's `getStorageSize` (see
/// [`storage_size`]), returning the reason text on failure.
///
/// # Errors
/// The reason, worded like nats-server's.
pub fn storage_size_str(s: &str) -> Result<i64, String> {
    let Some(last) = s.chars().last() else {
        return Ok(0);
    };
    let number_text = &s[..s.len() - last.len_utf8()];
    let number = go_parse_int(number_text)?;
    let shift = match last {
        'K' => 10,
        'M' => 20,
        'G' => 30,
        'T' => 40,
        _ => return Err("sizes defined as strings must end in K, M, G, T".to_string()),
    };
    number
        .checked_mul(1i64 << shift)
        .ok_or_else(|| format!("size \"{s}\" is out of range"))
}

/// Go's `strconv.ParseInt(s, 10, 64)` with its error wording.
fn go_parse_int(s: &str) -> Result<i64, String> {
    s.parse::<i64>().map_err(|e| {
        let reason = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "value out of range"
            }
            _ => "invalid syntax",
        };
        format!("strconv.ParseInt: parsing \"{s}\": {reason}")
    })
}

/// A duration option, in nanoseconds (Go's `time.Duration`, which may be negative).
///
/// A string is parsed with Go's `time.ParseDuration` syntax; an integer is taken as seconds
/// (nats-server's backward compatibility) and comes with the warning "`<key>` should be
/// converted to a duration". Beware: unquoted `2m` is the integer 2000000 (mega), so it is
/// 2000000 seconds, exactly as in nats-server.
///
/// # Errors
/// An unparsable string (Go's message after `error parsing <key>: `), an integer whose
/// nanoseconds overflow, or another type; at the value's position.
pub fn duration_nanos(v: &Spanned, key: &str) -> ConfResult<(i64, Option<ConfWarning>)> {
    match &v.value {
        Value::String(s) => parse_go_duration(s)
            .map(|ns| (ns, None))
            .map_err(|m| v.error(format!("error parsing {key}: {m}"))),
        Value::Int(secs) => {
            let ns = secs.checked_mul(1_000_000_000).ok_or_else(|| {
                v.error(format!(
                    "error parsing {key}: {secs} seconds is out of range"
                ))
            })?;
            let warning = v
                .pos
                .warning(format!("{key} should be converted to a duration"));
            Ok((ns, Some(warning)))
        }
        _ => Err(mismatch(
            v,
            &format!("a duration for {key} (such as \"2s\")"),
        )),
    }
}

/// Like [`duration_nanos`] but as a [`Duration`]; a negative duration is an error.
///
/// # Errors
/// As [`duration_nanos`], plus negative durations.
pub fn duration(v: &Spanned, key: &str) -> ConfResult<(Duration, Option<ConfWarning>)> {
    let (ns, warning) = duration_nanos(v, key)?;
    Ok((non_negative(v, key, ns)?, warning))
}

/// A duration that must be written as a string (`lame_duck_duration`,
/// `lame_duck_grace_period`, JetStream `duplicate_window`): integers are refused.
///
/// # Errors
/// Anything but a valid, non-negative duration string, at the value's position.
pub fn duration_strict(v: &Spanned, key: &str) -> ConfResult<Duration> {
    match &v.value {
        Value::String(s) => {
            let ns =
                parse_go_duration(s).map_err(|m| v.error(format!("error parsing {key}: {m}")))?;
            non_negative(v, key, ns)
        }
        _ => Err(mismatch(
            v,
            &format!("a duration string for {key} (such as \"30s\")"),
        )),
    }
}

/// Converts nanoseconds to a [`Duration`], refusing negative values.
fn non_negative(v: &Spanned, key: &str, ns: i64) -> ConfResult<Duration> {
    u64::try_from(ns)
        .map(Duration::from_nanos)
        .map_err(|_| v.error(format!("invalid {key}: duration must not be negative")))
}

/// A boolean (`true/false/yes/no/on/off`, unquoted).
///
/// # Errors
/// Anything but a boolean, at the value's position.
pub fn as_bool(v: &Spanned) -> ConfResult<bool> {
    match v.value {
        Value::Bool(b) => Ok(b),
        _ => Err(mismatch(v, "a boolean")),
    }
}

/// A string (quoted, unquoted or block).
///
/// # Errors
/// Anything but a string, at the value's position.
pub fn as_string(v: &Spanned) -> ConfResult<&str> {
    match &v.value {
        Value::String(s) => Ok(s),
        _ => Err(mismatch(v, "a string")),
    }
}

/// An integer (size suffixes already applied).
///
/// # Errors
/// Anything but an integer, at the value's position.
pub fn as_i64(v: &Spanned) -> ConfResult<i64> {
    match v.value {
        Value::Int(i) => Ok(i),
        _ => Err(mismatch(v, "an integer")),
    }
}

/// A number; integers are accepted and converted.
///
/// # Errors
/// Anything but an integer or float, at the value's position.
pub fn as_f64(v: &Spanned) -> ConfResult<f64> {
    match v.value {
        Value::Float(f) => Ok(f),
        // Config integers are far below 2^53 in practice; rounding beyond is acceptable.
        Value::Int(i) => Ok(i as f64),
        _ => Err(mismatch(v, "a number")),
    }
}

/// Nanoseconds per unit of Go's `time.ParseDuration`.
fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        // "us", micro sign U+00B5 + s, Greek mu U+03BC + s.
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Quotes text for a duration error message the way Go's time package does: `"` and `\`
/// escaped, control and non-ASCII bytes as `\xHH`.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if c.is_ascii() && !c.is_ascii_control() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        } else {
            let mut tmp = [0u8; 4];
            for b in c.encode_utf8(&mut tmp).bytes() {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push('"');
    out
}

/// Parses a duration with Go's `time.ParseDuration` rules (`[-+]?([0-9]*(\.[0-9]*)?unit)+`,
/// units ns us µs ms s m h; a bare `0` is allowed), returning nanoseconds or Go's error text
/// (`time: unknown unit "x" in duration "2x"`).
///
/// # Errors
/// Go's error text for malformed or overflowing input.
pub fn parse_go_duration(s: &str) -> Result<i64, String> {
    const LIMIT: u64 = 1 << 63;
    let invalid = || format!("time: invalid duration {}", go_quote(s));

    let mut rest = s;
    let mut negative = false;
    if let Some(stripped) = rest.strip_prefix('-') {
        negative = true;
        rest = stripped;
    } else if let Some(stripped) = rest.strip_prefix('+') {
        rest = stripped;
    }
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }

    let mut total: u64 = 0;
    while !rest.is_empty() {
        if !rest.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return Err(invalid());
        }
        // Whole part: overflow is an error.
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let mut whole: u64 = 0;
        for d in rest[..int_len].bytes() {
            if whole > LIMIT / 10 {
                return Err(invalid());
            }
            whole = whole * 10 + u64::from(d - b'0');
            if whole > LIMIT {
                return Err(invalid());
            }
        }
        rest = &rest[int_len..];

        // Fraction: digits beyond what fits are ignored.
        let mut fraction: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut frac_len = 0;
        if let Some(after_dot) = rest.strip_prefix('.') {
            frac_len = after_dot
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after_dot.len());
            let mut overflow = false;
            for d in after_dot[..frac_len].bytes() {
                if overflow || fraction > (LIMIT - 1) / 10 {
                    overflow = true;
                    continue;
                }
                let next = fraction * 10 + u64::from(d - b'0');
                if next > LIMIT {
                    overflow = true;
                    continue;
                }
                fraction = next;
                scale *= 10.0;
            }
            rest = &after_dot[frac_len..];
        }
        if int_len == 0 && frac_len == 0 {
            return Err(invalid());
        }

        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration {}", go_quote(s)));
        }
        let unit_text = &rest[..unit_len];
        rest = &rest[unit_len..];
        let Some(unit) = unit_nanos(unit_text) else {
            return Err(format!(
                "time: unknown unit {} in duration {}",
                go_quote(unit_text),
                go_quote(s)
            ));
        };
        if whole > LIMIT / unit {
            return Err(invalid());
        }
        let mut part = whole * unit;
        if fraction > 0 {
            // Truncation toward zero is what Go does here.
            part += (fraction as f64 * (unit as f64 / scale)) as u64;
            if part > LIMIT {
                return Err(invalid());
            }
        }
        total = match total.checked_add(part) {
            Some(sum) if sum <= LIMIT => sum,
            _ => return Err(invalid()),
        };
    }
    if negative {
        // total <= 2^63, so the negation fits in i64 (2^63 becomes i64::MIN).
        return Ok(0i64.wrapping_sub_unsigned(total));
    }
    i64::try_from(total).map_err(|_| invalid())
}
