//! Reading the JetStream publish headers (`Nats-Msg-Id`, `Nats-Expected-*`, `Nats-Rollup`,
//! `Nats-TTL`) out of a raw NATS header block.
//!
//! nats-server looks headers up by exact key at the start of a line, skips spaces after the
//! colon, and takes the first occurrence; we do the same, without building a map, since a
//! publish usually carries none of these. An empty value counts as absent for every
//! header nats-server checks ([`get_set`]).

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
/// `Nats-Marker-Reason` (subject delete markers).
pub const MARKER_REASON: &str = "Nats-Marker-Reason";
/// `KV-Operation` (a KV client's `DEL`/`PURGE`).
pub const KV_OPERATION: &str = "KV-Operation";
/// `Nats-Stream-Source`: where a sourced message came from.
pub const STREAM_SOURCE: &str = "Nats-Stream-Source";
/// `Nats-Required-Api-Level`.
pub const REQUIRED_API_LEVEL: &str = "Nats-Required-Api-Level";

/// The value of header `key` in `block`, if present.
pub fn get<'a>(block: &'a [u8], key: &str) -> Option<&'a [u8]> {
    let (_, body) = split_status(block)?;
    lines(body).find_map(|line| value_of(line, key))
}

/// `block` split after its status line (which keeps its CRLF); `None` without one.
fn split_status(block: &[u8]) -> Option<(&[u8], &[u8])> {
    memchr::memmem::find(block, b"\r\n").map(|i| block.split_at(i + 2))
}

/// The CRLF-separated lines of a header block's body (after the status line).
fn lines(mut rest: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = memchr::memmem::find(rest, b"\r\n").unwrap_or(rest.len());
        let line = &rest[..end];
        rest = rest.get(end + 2..).unwrap_or(&[]);
        Some(line)
    })
}

/// The value of `line` if it is header `key` (exact key at the line start, then a colon;
/// spaces after the colon skipped).
fn value_of<'a>(line: &'a [u8], key: &str) -> Option<&'a [u8]> {
    let key = key.as_bytes();
    if line.len() > key.len() && line.starts_with(key) && line[key.len()] == b':' {
        return Some(after_colon(line, key.len()));
    }
    None
}

/// The value of a header line whose colon is at `colon` (spaces after it skipped).
fn after_colon(line: &[u8], colon: usize) -> &[u8] {
    let mut v = line.get(colon + 1..).unwrap_or(&[]);
    while let [b' ', tail @ ..] = v {
        v = tail;
    }
    v
}

/// The value of header `key`, if present and not empty.
pub fn get_set<'a>(block: &'a [u8], key: &str) -> Option<&'a [u8]> {
    get(block, key).filter(|v| !v.is_empty())
}

/// [`get_set`] as UTF-8 text.
pub fn get_set_str<'a>(block: &'a [u8], key: &str) -> Option<&'a str> {
    get_set(block, key).and_then(|v| std::str::from_utf8(v).ok())
}

/// [`get`] as UTF-8 text.
pub fn get_str<'a>(block: &'a [u8], key: &str) -> Option<&'a str> {
    get(block, key).and_then(|v| std::str::from_utf8(v).ok())
}

/// The publish headers the stream's checks read, found in **one** pass over the header
/// block (a lookup per header would scan the block once for each of them, several times
/// per stored message). Each field is the first occurrence's value, as [`get`] gives it
/// (possibly empty: the `get_set`-style accessors treat empty as absent).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PublishHeaders<'a> {
    /// `Nats-Msg-Id`.
    pub msg_id: Option<&'a [u8]>,
    /// `Nats-Expected-Stream`.
    pub expected_stream: Option<&'a [u8]>,
    /// `Nats-Expected-Last-Sequence`.
    pub expected_last_seq: Option<&'a [u8]>,
    /// `Nats-Expected-Last-Subject-Sequence`.
    pub expected_last_subj_seq: Option<&'a [u8]>,
    /// `Nats-Expected-Last-Subject-Sequence-Subject`.
    pub expected_last_subj_seq_subj: Option<&'a [u8]>,
    /// `Nats-Expected-Last-Msg-Id`.
    pub expected_last_msg_id: Option<&'a [u8]>,
    /// `Nats-Rollup`.
    pub rollup: Option<&'a [u8]>,
    /// `Nats-TTL`.
    pub ttl: Option<&'a [u8]>,
    /// `Nats-Incr`.
    pub incr: Option<&'a [u8]>,
    /// `Nats-Marker-Reason`.
    pub marker_reason: Option<&'a [u8]>,
    /// `KV-Operation`.
    pub kv_operation: Option<&'a [u8]>,
    /// `Nats-Batch-Id` (atomic batch publish, see `atomic_batch`).
    pub batch_id: Option<&'a [u8]>,
    /// `Nats-Batch-Sequence`.
    pub batch_seq: Option<&'a [u8]>,
    /// `Nats-Batch-Commit`.
    pub batch_commit: Option<&'a [u8]>,
    /// `Nats-Required-Api-Level`.
    pub required_api_level: Option<&'a [u8]>,
    /// `Nats-Schedule` (message schedules, see `schedule`).
    pub schedule: Option<&'a [u8]>,
    /// `Nats-Schedule-Target`.
    pub schedule_target: Option<&'a [u8]>,
    /// `Nats-Schedule-Source`.
    pub schedule_source: Option<&'a [u8]>,
    /// `Nats-Schedule-TTL`.
    pub schedule_ttl: Option<&'a [u8]>,
    /// `Nats-Schedule-Rollup`.
    pub schedule_rollup: Option<&'a [u8]>,
    /// `Nats-Schedule-Time-Zone`.
    pub schedule_time_zone: Option<&'a [u8]>,
    /// `Nats-Schedule-Next` (set by the stream on a fired message, or `purge`).
    pub schedule_next: Option<&'a [u8]>,
    /// `Nats-Scheduler` (on a fired message: the schedule's subject).
    pub scheduler: Option<&'a [u8]>,
    /// `Nats-Stream-Source` (only a sourcing stream's own copies may carry it).
    pub stream_source: Option<&'a [u8]>,
}

impl<'a> PublishHeaders<'a> {
    /// Scan `block` once. A block without a status line has no headers (as [`get`]).
    pub fn parse(block: &'a [u8]) -> PublishHeaders<'a> {
        let mut out = PublishHeaders::default();
        let Some((_, body)) = split_status(block) else {
            return out;
        };
        for line in lines(body) {
            // Every key we look for starts `Nats-` or `KV-`: other lines cost one compare.
            let slot = if line.starts_with(b"Nats-") {
                let Some(colon) = memchr::memchr(b':', line) else {
                    continue;
                };
                match &line[..colon] {
                    b"Nats-Msg-Id" => &mut out.msg_id,
                    b"Nats-Expected-Stream" => &mut out.expected_stream,
                    b"Nats-Expected-Last-Sequence" => &mut out.expected_last_seq,
                    b"Nats-Expected-Last-Subject-Sequence" => &mut out.expected_last_subj_seq,
                    b"Nats-Expected-Last-Subject-Sequence-Subject" => {
                        &mut out.expected_last_subj_seq_subj
                    }
                    b"Nats-Expected-Last-Msg-Id" => &mut out.expected_last_msg_id,
                    b"Nats-Rollup" => &mut out.rollup,
                    b"Nats-TTL" => &mut out.ttl,
                    b"Nats-Incr" => &mut out.incr,
                    b"Nats-Marker-Reason" => &mut out.marker_reason,
                    b"Nats-Batch-Id" => &mut out.batch_id,
                    b"Nats-Batch-Sequence" => &mut out.batch_seq,
                    b"Nats-Batch-Commit" => &mut out.batch_commit,
                    b"Nats-Required-Api-Level" => &mut out.required_api_level,
                    b"Nats-Schedule" => &mut out.schedule,
                    b"Nats-Schedule-Target" => &mut out.schedule_target,
                    b"Nats-Schedule-Source" => &mut out.schedule_source,
                    b"Nats-Schedule-TTL" => &mut out.schedule_ttl,
                    b"Nats-Schedule-Rollup" => &mut out.schedule_rollup,
                    b"Nats-Schedule-Time-Zone" => &mut out.schedule_time_zone,
                    b"Nats-Schedule-Next" => &mut out.schedule_next,
                    b"Nats-Scheduler" => &mut out.scheduler,
                    b"Nats-Stream-Source" => &mut out.stream_source,
                    _ => continue,
                }
            } else if line.starts_with(b"KV-Operation:") {
                &mut out.kv_operation
            } else {
                continue;
            };
            if slot.is_none() {
                let colon = memchr::memchr(b':', line).unwrap_or(line.len());
                *slot = Some(after_colon(line, colon));
            }
        }
        out
    }

    /// A header's value if present and not empty (as [`get_set`]). Any block's value,
    /// not only this struct's (callers rewrite blocks as they go).
    pub fn set(v: Option<&[u8]>) -> Option<&[u8]> {
        v.filter(|v| !v.is_empty())
    }

    /// Whether any header refused beside `Nats-Incr` is set (expectations, rollup).
    pub fn has_incr_conflicts(&self) -> bool {
        [
            self.expected_stream,
            self.expected_last_seq,
            self.expected_last_subj_seq,
            self.expected_last_subj_seq_subj,
            self.expected_last_msg_id,
            self.rollup,
        ]
        .into_iter()
        .any(|v| Self::set(v).is_some())
    }

    /// Whether the block marks a subject delete marker, as nats-server's
    /// `isSubjectDeleteMarker`: a `Nats-Marker-Reason`, or a KV purge (`KV-Operation: PURGE`).
    pub fn is_delete_marker(&self) -> bool {
        Self::set(self.marker_reason).is_some() || self.kv_operation == Some(&b"PURGE"[..])
    }
}

/// `block` with every `Nats-TTL` line removed and `Nats-TTL: <secs>` appended as the
/// last header, the way nats-server rewrites a raised TTL (`removeHeaderIfPresent` then
/// `genHeader`: exact-case key at a line start, followed by a colon).
pub fn replace_ttl(block: &[u8], secs: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(block.len() + 24);
    rewrite(
        &mut out,
        block,
        |l| value_of(l, TTL).is_none(),
        TTL,
        format_args!("{secs}"),
    );
    out
}

/// `block` into `out` (replacing what it held) with only the lines `keep` takes, then
/// `key: value` as the last header (nats-server's `removeHeaderIfPresent` then
/// `genHeader`). A block without a status line gets `NATS/1.0`.
fn rewrite(
    out: &mut Vec<u8>,
    block: &[u8],
    keep: impl Fn(&[u8]) -> bool,
    key: &str,
    value: std::fmt::Arguments<'_>,
) {
    use std::io::Write;
    const STATUS: &[u8] = b"NATS/1.0\r\n";
    out.clear();
    let (status, body) = split_status(block).unwrap_or((STATUS, &[]));
    out.extend_from_slice(status);
    for line in lines(body).filter(|l| !l.is_empty() && keep(l)) {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{key}: {value}\r\n\r\n");
}

/// A published header block without a status on its first line, as nats-server stores
/// it (`removeHeaderStatusIfPresent`): `NATS/1.0 503\r\nFoo: 1\r\n\r\n` becomes
/// `NATS/1.0\r\nFoo: 1\r\n\r\n`, and a block left with no header at all is no block.
/// A client must not be able to store what a consumer would read as a status frame.
/// Borrows unless there is a status to take out.
pub fn without_status(block: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    const VERSION: &[u8] = b"NATS/1.0";
    const EMPTY: &[u8] = b"NATS/1.0\r\n\r\n";
    let Some(cr) = memchr::memchr(b'\r', block) else {
        return std::borrow::Cow::Borrowed(block);
    };
    if !block.starts_with(VERSION) || cr <= VERSION.len() {
        return std::borrow::Cow::Borrowed(block);
    }
    let mut out = Vec::with_capacity(block.len() - (cr - VERSION.len()));
    out.extend_from_slice(VERSION);
    out.extend_from_slice(&block[cr..]);
    if out == EMPTY {
        out.clear();
    }
    std::borrow::Cow::Owned(out)
}

/// `block` with `key: value` appended as its last header (nats-server's `genHeader`),
/// every other line kept. A block without a status line gets `NATS/1.0`.
pub fn with_header(block: &[u8], key: &str, value: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(block.len() + key.len() + value.len() + 8);
    rewrite(&mut out, block, |_| true, key, format_args!("{value}"));
    out
}

/// `block` with header `key` set to `value` the way nats-server's `setHeader` does it:
/// the first `key` line (exact key at a line start, then a colon) keeps its place and
/// gets the new value (after one space if it had one); without such a line, `key: value`
/// is appended as the last header. A block without a status line gets `NATS/1.0`.
pub fn set_header(block: &[u8], key: &str, value: &str) -> Vec<u8> {
    let Some((status, body)) = split_status(block) else {
        return with_header(block, key, value);
    };
    if !lines(body).any(|l| value_of(l, key).is_some()) {
        return with_header(block, key, value);
    }
    let mut out = Vec::with_capacity(block.len() + value.len());
    out.extend_from_slice(status);
    let mut done = false;
    for line in lines(body).filter(|l| !l.is_empty()) {
        if !done && value_of(line, key).is_some() {
            done = true;
            out.extend_from_slice(key.as_bytes());
            out.push(b':');
            if line.get(key.len() + 1) == Some(&b' ') {
                out.push(b' ');
            }
            out.extend_from_slice(value.as_bytes());
        } else {
            out.extend_from_slice(line);
        }
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// `block` without its `key` lines (exact-case key at a line start, followed by a
/// colon: nats-server's `removeHeaderIfPresent`).
pub fn without_header(block: &[u8], key: &str) -> Vec<u8> {
    let Some((status, body)) = split_status(block) else {
        return block.to_vec();
    };
    let mut out = Vec::with_capacity(block.len());
    out.extend_from_slice(status);
    for line in lines(body).filter(|l| !l.is_empty() && value_of(l, key).is_none()) {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The header block of a message a schedule fires (nats-server's
/// `getScheduledMessages`): the schedule's (or its source's) block without the lines
/// whose key starts `Nats-Schedule` (which takes `Nats-Scheduler` too) or
/// `Nats-Expected-`, nor `Nats-Msg-Id`, `Nats-TTL` and `Nats-Rollup`; then
/// `Nats-Scheduler`, `Nats-Schedule-Next` and, where given, `Nats-TTL` and `Nats-Rollup`.
pub fn fired_block(
    block: &[u8],
    scheduler: &str,
    next: &str,
    ttl: Option<&str>,
    rollup: Option<&str>,
) -> Vec<u8> {
    const STATUS: &[u8] = b"NATS/1.0\r\n";
    let (status, body) = split_status(block).unwrap_or((STATUS, &[]));
    let mut out = Vec::with_capacity(block.len() + scheduler.len() + 96);
    out.extend_from_slice(status);
    let dropped = |l: &[u8]| {
        l.is_empty()
            || l.starts_with(b"Nats-Schedule")
            || l.starts_with(b"Nats-Expected-")
            || [MSG_ID, TTL, ROLLUP]
                .iter()
                .any(|k| value_of(l, k).is_some())
    };
    for line in lines(body).filter(|l| !dropped(l)) {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    let mut add = |k: &str, v: &str| {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    };
    add("Nats-Scheduler", scheduler);
    add("Nats-Schedule-Next", next);
    if let Some(ttl) = ttl {
        add(TTL, ttl);
    }
    if let Some(r) = rollup {
        add(ROLLUP, r);
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The header block a sourced copy is stored with (into `out`), as nats-server builds it
/// (`processInboundSourceMsg`): the origin's block without its `Nats-Stream-Source` (a
/// chain of sources keeps only the newest), `Nats-Expected-*` (checked by the origin
/// already) and `Nats-Batch-*` lines, then `Nats-Stream-Source: <value>` as the last
/// header. Keys match exactly, at a line start, as nats-server's header edits do.
pub fn sourced_block(out: &mut Vec<u8>, block: &[u8], value: std::fmt::Arguments<'_>) {
    rewrite(
        out,
        block,
        |l| {
            value_of(l, STREAM_SOURCE).is_none()
                && !l.starts_with(b"Nats-Expected-")
                && !l.starts_with(b"Nats-Batch-")
        },
        STREAM_SOURCE,
        value,
    );
}

/// A `Nats-TTL` value that is not a duration of at least one second, a count of
/// seconds, or `never`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid per-message TTL")]
pub struct InvalidTtl;

/// Parse a `Nats-TTL` value as nats-server does (`parseMessageTTL`): `never` (any case),
/// a Go duration (`5s`; under one second is invalid), or whole seconds in plain ASCII
/// digits (`30`). `Ok(None)` is "no TTL": nats-server reads a digit string of zeros other
/// than the duration `0` (`00`) that way. The duration is truncated to whole seconds.
pub fn parse_ttl(v: &str) -> Result<Option<natrium_store::Ttl>, InvalidTtl> {
    use natrium_store::Ttl;
    if v.eq_ignore_ascii_case("never") {
        return Ok(Some(Ttl::Never));
    }
    if let Ok(nanos) = crate::conf::parse_go_duration(v) {
        if nanos < 1_000_000_000 {
            return Err(InvalidTtl);
        }
        let secs = nanos / 1_000_000_000;
        return Ok(Some(Ttl::After(std::time::Duration::from_secs(
            secs as u64,
        ))));
    }
    match go_parse_int64(v.as_bytes()) {
        n if n < 0 => Err(InvalidTtl),
        0 => Ok(None),
        n => Ok(Some(Ttl::After(std::time::Duration::from_secs(n as u64)))),
    }
}

/// nats-server's `parseInt64` for header values: ASCII digits only, `-1` for anything
/// else (empty, a sign, a blank). Overflow wraps, as in Go.
pub fn go_parse_int64(v: &[u8]) -> i64 {
    if v.is_empty() {
        return -1;
    }
    let mut n: i64 = 0;
    for &d in v {
        if !d.is_ascii_digit() {
            return -1;
        }
        n = n.wrapping_mul(10).wrapping_add(i64::from(d - b'0'));
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_line_is_taken_out_as_nats_server_does() {
        assert_eq!(&*without_status(b"NATS/1.0 503\r\n\r\n"), b"");
        assert_eq!(
            &*without_status(b"NATS/1.0 100 Idle Heartbeat\r\nFoo: 1\r\n\r\n"),
            b"NATS/1.0\r\nFoo: 1\r\n\r\n"
        );
        let plain: &[u8] = b"NATS/1.0\r\nFoo: 1\r\n\r\n";
        assert!(matches!(
            without_status(plain),
            std::borrow::Cow::Borrowed(b) if b == plain
        ));
        assert_eq!(&*without_status(b""), b"");
    }

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
    fn set_header_replaces_in_place_or_appends() {
        let h = b"NATS/1.0\r\nA: 1\r\nNats-Incr: 5\r\nB:2\r\nNats-Incr: 7\r\n\r\n";
        assert_eq!(
            set_header(h, "Nats-Incr", "-12"),
            b"NATS/1.0\r\nA: 1\r\nNats-Incr: -12\r\nB:2\r\nNats-Incr: 7\r\n\r\n"
        );
        assert_eq!(
            set_header(h, "B", "3"),
            b"NATS/1.0\r\nA: 1\r\nNats-Incr: 5\r\nB:3\r\nNats-Incr: 7\r\n\r\n"
        );
        assert_eq!(
            set_header(h, "C", "x"),
            b"NATS/1.0\r\nA: 1\r\nNats-Incr: 5\r\nB:2\r\nNats-Incr: 7\r\nC: x\r\n\r\n"
        );
        assert_eq!(set_header(b"", "C", "x"), b"NATS/1.0\r\nC: x\r\n\r\n");
    }

    #[test]
    fn ttl_forms() {
        use natrium_store::Ttl;
        let secs = |n| Ok(Some(Ttl::After(std::time::Duration::from_secs(n))));
        assert_eq!(parse_ttl("5s"), secs(5));
        assert_eq!(parse_ttl("30"), secs(30));
        assert_eq!(parse_ttl("1500ms"), secs(1));
        assert_eq!(parse_ttl("never"), Ok(Some(Ttl::Never)));
        assert_eq!(parse_ttl("NEVER"), Ok(Some(Ttl::Never)));
        assert_eq!(parse_ttl("00"), Ok(None));
        assert!(parse_ttl("500ms").is_err());
        assert!(parse_ttl("bogus").is_err());
        assert!(parse_ttl("0").is_err());
        assert!(parse_ttl("-1").is_err());
        assert!(parse_ttl(" 5s").is_err());
        assert!(parse_ttl("").is_err());
    }

    #[test]
    fn ttl_rewrite_moves_the_header_last() {
        let h = b"NATS/1.0\r\nNats-TTL: 1s\r\nA: b\r\nNats-TTL: 2\r\n\r\n";
        assert_eq!(
            replace_ttl(h, 5),
            b"NATS/1.0\r\nA: b\r\nNats-TTL: 5\r\n\r\n".to_vec()
        );
        assert_eq!(
            replace_ttl(b"NATS/1.0\r\nNats-TTL: 1\r\n\r\n", 3),
            b"NATS/1.0\r\nNats-TTL: 3\r\n\r\n".to_vec()
        );
    }

    #[test]
    fn one_pass_agrees_with_lookups() {
        let keys = [
            MSG_ID,
            EXPECTED_STREAM,
            EXPECTED_LAST_SEQ,
            EXPECTED_LAST_SUBJ_SEQ,
            EXPECTED_LAST_SUBJ_SEQ_SUBJ,
            EXPECTED_LAST_MSG_ID,
            ROLLUP,
            TTL,
            "Nats-Incr",
            MARKER_REASON,
            KV_OPERATION,
        ];
        let blocks: [&[u8]; 6] = [
            b"NATS/1.0\r\nNats-Msg-Id:  abc\r\nNats-Msg-Id: second\r\nnats-ttl: 5\r\n\r\n",
            b"NATS/1.0\r\nNats-Expected-Last-Subject-Sequence: 4\r\nNats-Expected-Last-Subject-Sequence-Subject: a.b\r\nNats-TTL:\r\nNats-TTL: 9\r\n\r\n",
            b"NATS/1.0\r\nX: y\r\nNats-Rollup: sub\r\nKV-Operation: PURGE\r\nNats-Incr: +1\r\nNats-Marker-Reason: MaxAge\r\n\r\n",
            b"NATS/1.0 100 Idle\r\nNats-Expected-Stream: S\r\nNats-Expected-Last-Sequence: 7\r\nNats-Expected-Last-Msg-Id: m\r\nNats-Msg-Id\r\nKV-Operation\r\n\r\n",
            b"garbage",
            b"NATS/1.0\r\nNats-Msg-Idx: no\r\nKV-Operation: DEL\r\n\r\n",
        ];
        for b in blocks {
            let p = PublishHeaders::parse(b);
            let got = [
                p.msg_id,
                p.expected_stream,
                p.expected_last_seq,
                p.expected_last_subj_seq,
                p.expected_last_subj_seq_subj,
                p.expected_last_msg_id,
                p.rollup,
                p.ttl,
                p.incr,
                p.marker_reason,
                p.kv_operation,
            ];
            for (k, v) in keys.iter().zip(got) {
                assert_eq!(v, get(b, k), "{k} in {:?}", String::from_utf8_lossy(b));
            }
        }
        let p = PublishHeaders::parse(blocks[2]);
        assert!(p.is_delete_marker());
        assert!(p.has_incr_conflicts());
        assert!(!PublishHeaders::parse(blocks[5]).is_delete_marker());
        assert_eq!(PublishHeaders::parse(blocks[1]).ttl, Some(&b""[..]));
    }

    #[test]
    fn go_int_parsing() {
        assert_eq!(go_parse_int64(b"42"), 42);
        assert_eq!(go_parse_int64(b""), -1);
        assert_eq!(go_parse_int64(b"+4"), -1);
        assert_eq!(go_parse_int64(b"4 "), -1);
    }
}
