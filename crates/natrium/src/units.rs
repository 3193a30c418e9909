//! Parsing and printing of human quantities: byte sizes, durations, rates.
//!
//! Benchmarks are driven from shell scripts and read by people, so sizes
//! must be typed the way people type them (`16`, `1K`, `1KiB`, `4MB`) and
//! rates printed with digit grouping. Every size unit is binary (1K = 1024
//! bytes), matching what `nats bench` does, so a `--size 1KB` run moves the
//! same payload on either tool.

use std::time::Duration;

/// Parses a byte size such as `16`, `1K`, `1KB`, `1KiB`, `2M`, `512b`.
///
/// Units are case-insensitive and binary: K/KB/KiB = 1024, M/MB/MiB = 1024²,
/// G/GB/GiB = 1024³.
pub fn parse_size(input: &str) -> Result<usize, String> {
    let s = input.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    if digits.is_empty() {
        return Err(format!(
            "invalid size {input:?}: expected a number of bytes such as 16, 1K or 1KiB"
        ));
    }
    let n: usize = digits
        .parse()
        .map_err(|_| format!("invalid size {input:?}: number too large"))?;
    let mult: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => {
            return Err(format!(
                "invalid size {input:?}: unknown unit {other:?} (use B, K, KiB, M, MiB, G or GiB)"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("invalid size {input:?}: too large"))
}

/// Parses a duration such as `5s`, `250ms`, `2m`, `1.5s` or a bare number of
/// seconds (`5`, `0.5`).
pub fn parse_duration(input: &str) -> Result<Duration, String> {
    let s = input.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num.parse().map_err(|_| {
        format!("invalid duration {input:?}: expected e.g. 5s, 250ms, 2m or a number of seconds")
    })?;
    let secs = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "ns" => value / 1e9,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86400.0,
        other => {
            return Err(format!(
                "invalid duration {input:?}: unknown unit {other:?} (use ms, s, m, h or d)"
            ));
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("invalid duration {input:?}"))
}

/// Parses a positive number of seconds (fractions allowed), for time bounds.
pub fn parse_positive_seconds(input: &str) -> Result<f64, String> {
    let v: f64 = input
        .trim()
        .parse()
        .map_err(|_| format!("invalid number of seconds {input:?}"))?;
    if v.is_finite() && v > 0.0 && v <= 86_400.0 {
        Ok(v)
    } else {
        Err(format!(
            "invalid number of seconds {input:?}: must be > 0 and at most 86400"
        ))
    }
}

/// Formats an integer with `,` thousands separators: `1234567` → `1,234,567`.
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Formats a rate rounded to whole units with thousands separators.
pub fn group_f(v: f64) -> String {
    if v.is_finite() && v >= 0.0 {
        group(v.round() as u64)
    } else {
        "-".to_string()
    }
}

/// Formats a byte count the way people read payload sizes: `16 B`, `1 KiB`,
/// `1.5 MiB`.
pub fn human_bytes(n: usize) -> String {
    const UNITS: [(&str, usize); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (name, unit) in UNITS {
        if n >= unit {
            return if n.is_multiple_of(unit) {
                format!("{} {name}", n / unit)
            } else {
                format!("{:.2} {name}", n as f64 / unit as f64)
            };
        }
    }
    format!("{n} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16"), Ok(16));
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1K"), Ok(1024));
        assert_eq!(parse_size("1k"), Ok(1024));
        assert_eq!(parse_size("1KiB"), Ok(1024));
        assert_eq!(parse_size("1KB"), Ok(1024));
        assert_eq!(parse_size("4 MiB"), Ok(4 << 20));
        assert_eq!(parse_size("512b"), Ok(512));
        assert!(parse_size("").is_err());
        assert!(parse_size("K").is_err());
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999999999999999").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5y").is_err());
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_positive_seconds("60"), Ok(60.0));
        assert_eq!(parse_positive_seconds("0.5"), Ok(0.5));
        assert!(parse_positive_seconds("0").is_err());
        assert!(parse_positive_seconds("-3").is_err());
        assert!(parse_positive_seconds("NaN").is_err());
    }

    #[test]
    fn grouping() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1234567), "1,234,567");
        assert_eq!(group_f(1234.6), "1,235");
        assert_eq!(human_bytes(16), "16 B");
        assert_eq!(human_bytes(1024), "1 KiB");
        assert_eq!(human_bytes(1536), "1.50 KiB");
    }
}
