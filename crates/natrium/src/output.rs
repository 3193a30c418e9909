//! Everything commands print: JSON, tables, aligned key/value blocks, human
//! quantities, and the prompts that ask the user for what is missing.
//!
//! Commands print through [`out`] rather than `println!` so that a closed
//! pipe (`natrium sub x | head -1`) ends the command with an error value
//! instead of a panic.

use std::io::{IsTerminal, Write};

use comfy_table::{ContentArrangement, Table, presets};
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// Writes one line to stdout.
pub fn out(line: impl std::fmt::Display) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()?;
    Ok(())
}

/// Writes raw bytes to stdout (payloads), followed by a newline when asked.
pub fn out_bytes(data: &[u8], newline: bool) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(data)?;
    if newline {
        stdout.write_all(b"\n")?;
    }
    stdout.flush()?;
    Ok(())
}

/// Prints a value as indented JSON.
pub fn json(v: &impl Serialize) -> Result<()> {
    out(serde_json::to_string_pretty(v)?)
}

/// Prints a value as one line of JSON (for streams of messages).
pub fn json_line(v: &impl Serialize) -> Result<()> {
    out(serde_json::to_string(v)?)
}

/// A table with the house style and the given column headers.
pub fn table(title: Option<&str>, headers: &[&str]) -> Titled {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED)
        .apply_modifier(comfy_table::modifiers::UTF8_ROUND_CORNERS)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(headers.iter().copied());
    Titled {
        title: title.map(str::to_string),
        table: t,
    }
}

/// A table with an optional title line printed above it.
pub struct Titled {
    title: Option<String>,
    /// The table itself, for adding rows.
    pub table: Table,
}

impl Titled {
    /// Adds one row.
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<comfy_table::Cell>,
    {
        self.table.add_row(cells);
    }

    /// Prints the title and the table.
    pub fn print(self) -> Result<()> {
        if let Some(t) = self.title {
            out(t)?;
        }
        out(self.table)
    }
}

/// Prints `key: value` lines with the keys right-aligned, as `nats` does for
/// `info` commands.
pub fn kv_block(rows: &[(&str, String)]) -> Result<()> {
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    for (k, v) in rows {
        out(format!("{k:>width$}: {v}"))?;
    }
    Ok(())
}

/// True when both stdin and stdout are terminals: only then may a command
/// ask questions.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

/// Asks a yes/no question (default no); off a terminal, fails with `hint`.
pub fn confirm(question: &str, hint: &str) -> Result<bool> {
    if !interactive() {
        return Err(Error::NeedInput(format!(
            "{question}: cannot ask for confirmation without a terminal; {hint}"
        )));
    }
    dialoguer::Confirm::new()
        .with_prompt(question)
        .default(false)
        .interact()
        .map_err(|e| Error::NeedInput(format!("{question}: {e}")))
}

/// Asks for a text value with an optional default.
pub fn prompt(question: &str, default: Option<&str>) -> Result<String> {
    let mut input = dialoguer::Input::<String>::new().with_prompt(question);
    if let Some(d) = default {
        input = input.default(d.to_string());
    }
    input
        .interact_text()
        .map_err(|e| Error::NeedInput(format!("{question}: {e}")))
}

/// Asks for a secret twice, without echoing it; fails if the two differ.
pub fn prompt_secret_twice(question: &str, again: &str) -> Result<String> {
    dialoguer::Password::new()
        .with_prompt(question)
        .with_confirmation(again, "the two entries do not match")
        .interact()
        .map_err(|e| Error::NeedInput(format!("{question}: {e}")))
}

/// Asks the user to pick one of `choices`; returns the chosen one.
pub fn select(question: &str, choices: &[&str], default: usize) -> Result<String> {
    let i = dialoguer::Select::new()
        .with_prompt(question)
        .items(choices)
        .default(default)
        .interact()
        .map_err(|e| Error::NeedInput(format!("{question}: {e}")))?;
    Ok(choices[i].to_string())
}

/// A byte progress bar on stderr for a long transfer, or `None` when
/// stderr is not a terminal (scripts and logs get no bar noise).
pub fn progress(total: Option<u64>, what: &str) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = match total {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::no_length(),
    };
    let style = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    pb.set_style(style);
    pb.set_message(what.to_string());
    pb.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    Some(pb)
}

/// Formats a byte count: `0 B`, `1.5 KiB`, `12 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (name, unit) in UNITS {
        if n >= unit {
            let v = n as f64 / unit as f64;
            return if n.is_multiple_of(unit) {
                format!("{} {name}", n / unit)
            } else {
                format!("{v:.1} {name}")
            };
        }
    }
    format!("{n} B")
}

/// A limit that is unlimited when negative (or zero when `zero_unlimited`).
pub fn limit(v: i64, zero_unlimited: bool, f: impl Fn(u64) -> String) -> String {
    if v < 0 || (zero_unlimited && v == 0) {
        "unlimited".to_string()
    } else {
        f(v as u64)
    }
}

/// Formats nanoseconds as a compact duration: `500ms`, `2m`, `1h30m`, `2d`.
pub fn duration_ns(ns: u64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000_000_000 {
        return if ns.is_multiple_of(1_000_000) {
            format!("{}ms", ns / 1_000_000)
        } else {
            format!("{:.2}ms", ns as f64 / 1e6)
        };
    }
    let mut secs = ns / 1_000_000_000;
    let mut s = String::new();
    for (unit, len) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs >= len {
            s.push_str(&format!("{}{unit}", secs / len));
            secs %= len;
        }
    }
    if secs > 0 || s.is_empty() {
        s.push_str(&format!("{secs}s"));
    }
    s
}

/// A server timestamp (RFC 3339) shortened for tables: date and time to
/// the second, UTC.
pub fn time_short(ts: &str) -> String {
    if ts.is_empty() || ts.starts_with("0001-01-01") {
        return "never".into();
    }
    let t = ts.replace('T', " ");
    t.split('.')
        .next()
        .unwrap_or(&t)
        .trim_end_matches('Z')
        .to_string()
}

/// The current time in RFC 3339 (UTC).
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Reads a string field of a JSON object ("" when absent).
pub fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Reads an integer field of a JSON object (0 when absent).
pub fn i(v: &Value, key: &str) -> i64 {
    v.get(key).and_then(Value::as_i64).unwrap_or(0)
}

/// Reads an unsigned field of a JSON object (0 when absent or negative).
pub fn u(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// Reads a boolean field of a JSON object (false when absent).
pub fn b(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// Formats an integer with thousands separators.
pub fn num(n: u64) -> String {
    crate::units::group(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humans() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(2 << 20), "2 MiB");
        assert_eq!(duration_ns(120_000_000_000), "2m");
        assert_eq!(duration_ns(5_400_000_000_000), "1h30m");
        assert_eq!(duration_ns(500_000_000), "500ms");
        assert_eq!(limit(-1, false, num), "unlimited");
        assert_eq!(limit(0, true, num), "unlimited");
        assert_eq!(limit(1000, true, num), "1,000");
        assert_eq!(
            time_short("2026-11-28T19:20:01.123Z"),
            "2026-11-28 19:20:01"
        );
        assert_eq!(time_short("0001-01-01T00:00:00Z"), "never");
    }
}
