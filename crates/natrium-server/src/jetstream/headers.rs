//! Reading the JetStream publish headers (`Nats-Msg-Id`, `Nats-Expected-*`, `Nats-Rollup`,
//! `Nats-TTL`) out of a raw NATS header block.
//!
//! nats-server looks headers up by exact key at the start of a line, skips blanks after the
//! colon, and takes the first occurrence; we do the same, without building a map, since a
//! publish usually carries none of these.

/// `Nats-Msg-Id`.
pub const MSG_ID: &str = "Nats-Msg-Id";
/// `Nats-Expected-Stream`.
pub const EXPECTED_STREAM: &str = "Nats-Expected-Stream";
/// `Nats-Expected-Last-Sequence`.
pub const EXPECTED_LAST_SEQ: &str = "Nats-Expected-Last-Sequence";
/// `Nats-Expected-Last-Subject-Sequence`.
pub const EXPECTED_LAST_SUBJ_SEQ: &str = "Nats-Expected-Last-Subject-Sequence";
/// `Nats-Expected-Last-Subject-Sequence-Subject`.
pub const EXPECTED_LAST_SUBJ_SEQ_SUBJ: &str = "Nats-Expected-Last-Subject-Sequence-Subject";
/// `Nats-Expected-Last-Msg-Id`.
pub const EXPECTED_LAST_MSG_ID: &str = "Nats-Expected-Last-Msg-Id";
/// `Nats-Rollup`.
pub const ROLLUP: &str = "Nats-Rollup";
/// `Nats-TTL`.
pub const TTL: &str = "Nats-TTL";
/// `Nats-Required-Api-Level`.
pub const REQUIRED_API_LEVEL: &str = "Nats-Required-Api-Level";

/// The value of header `key` in `block`, if present.
pub fn get<'a>(block: &'a [u8], key: &str) -> Option<&'a [u8]> {
    let key = key.as_bytes();
    // Skip the status line.
    let mut rest = match memchr::memmem::find(block, b"\r\n") {
        Some(i) => &block[i + 2..],
        None => return None,
    };
    while !rest.is_empty() {
        let end = memchr::memmem::find(rest, b"\r\n").unwrap_or(rest.len());
        let line = &rest[..end];
        if line.len() > key.len() && line.starts_with(key) && line[key.len()] == b':' {
            let mut v = &line[key.len() + 1..];
            while let [b' ' | b'\t', tail @ ..] = v {
                v = tail;
            }
            return Some(v);
        }
        rest = rest.get(end + 2..).unwrap_or(&[]);
    }
    None
}

/// [`get`] as UTF-8 text.
pub fn get_str<'a>(block: &'a [u8], key: &str) -> Option<&'a str> {
    get(block, key).and_then(|v| std::str::from_utf8(v).ok())
}

/// A `Nats-TTL` value that is not a duration of at least one second or `never`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid per-message TTL")]
pub struct InvalidTtl;

/// Parse a `Nats-TTL` value: a Go duration (`5s`), whole seconds (`30`), or `never`.
/// `Ok(None)` is "never expires"; the duration is truncated to whole seconds, which must be
/// at least one.
pub fn parse_ttl(v: &str) -> Result<Option<std::time::Duration>, InvalidTtl> {
    let v = v.trim();
    if v.eq_ignore_ascii_case("never") {
        return Ok(None);
    }
    let nanos: i64 = match v.parse::<i64>() {
        Ok(secs) => secs.checked_mul(1_000_000_000).ok_or(InvalidTtl)?,
        Err(_) => crate::conf::parse_go_duration(v).map_err(|_| InvalidTtl)?,
    };
    let secs = nanos / 1_000_000_000;
    if secs < 1 {
        return Err(InvalidTtl);
    }
    Ok(Some(std::time::Duration::from_secs(secs as u64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_exact_first_and_trims() {
        let h =
            b"NATS/1.0\r\nnats-msg-id: lower\r\nNats-Msg-Id:  abc\r\nNats-Msg-Id: second\r\n\r\n";
        assert_eq!(get(h, MSG_ID), Some(&b"abc"[..]));
        assert_eq!(get(h, "Nats-Msg"), None);
        assert_eq!(get(b"NATS/1.0\r\n\r\n", MSG_ID), None);
        assert_eq!(get(b"garbage", MSG_ID), None);
    }

    #[test]
    fn ttl_forms() {
        assert_eq!(parse_ttl("5s"), Ok(Some(std::time::Duration::from_secs(5))));
        assert_eq!(
            parse_ttl("30"),
            Ok(Some(std::time::Duration::from_secs(30)))
        );
        assert_eq!(
            parse_ttl("1500ms"),
            Ok(Some(std::time::Duration::from_secs(1)))
        );
        assert_eq!(parse_ttl("never"), Ok(None));
        assert!(parse_ttl("500ms").is_err());
        assert!(parse_ttl("bogus").is_err());
        assert!(parse_ttl("0").is_err());
    }
}
