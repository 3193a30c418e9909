//! Plain data types shared by the stream store implementations.
//!
//! Why a store-level config instead of the server's `StreamConfig`: the store only needs
//! the limits it enforces. The server owns the full JSON config and hands the store an
//! opaque blob to persist (`StreamStore::write_stream_meta`), so config schema changes
//! never require an on-disk format change here.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

/// Which store implementation backs a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageType {
    /// [`crate::MemStore`].
    Memory,
    /// [`crate::FileStore`].
    File,
}

/// What to do when a `max_msgs` / `max_bytes` / `max_msgs_per_subject` limit is hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DiscardPolicy {
    /// Remove the oldest messages to make room (JetStream default).
    #[default]
    Old,
    /// Refuse the new message with a limit error.
    New,
}

/// The limits a stream store enforces. `None` means unlimited (JetStream's `-1` / `0`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreConfig {
    /// Maximum number of messages kept.
    pub max_msgs: Option<u64>,
    /// Maximum accounted bytes kept (see [`crate::StreamStore::msg_size`]).
    pub max_bytes: Option<u64>,
    /// Messages older than this are removed by `expire()`.
    pub max_age: Option<Duration>,
    /// Maximum number of messages kept per subject.
    pub max_msgs_per_subject: Option<u64>,
    /// Maximum headers + payload size of one message.
    pub max_msg_size: Option<u64>,
    /// Discard policy for `max_msgs` / `max_bytes`.
    pub discard: DiscardPolicy,
    /// With `discard: New` and `max_msgs_per_subject`: refuse a message whose subject is
    /// full instead of removing that subject's oldest (JetStream `discard_new_per_subject`).
    /// A message carrying a `Nats-Rollup` header is let through (the rollup restores the
    /// limit right after).
    pub discard_new_per_subject: bool,
}

/// A per-message TTL (JetStream `Nats-TTL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// The message never expires, not even by `max_age` (`Nats-TTL: never`).
    Never,
    /// The message expires this long after its timestamp (independently of `max_age`,
    /// whichever comes first).
    After(Duration),
}

impl Ttl {
    /// Encodes as the i64 stored in records: `0` none, `-1` never, `>0` nanoseconds.
    pub(crate) fn encode(ttl: Option<Ttl>) -> i64 {
        match ttl {
            None => 0,
            Some(Ttl::Never) => -1,
            Some(Ttl::After(d)) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX).max(1),
        }
    }

    /// Inverse of [`Ttl::encode`].
    pub(crate) fn decode(v: i64) -> Option<Ttl> {
        match v {
            0 => None,
            v if v < 0 => Some(Ttl::Never),
            v => Some(Ttl::After(Duration::from_nanos(v as u64))),
        }
    }
}

/// How durable an acknowledged write is. Reported by `StreamStore::durability` (stream
/// info) and chosen when a [`crate::FileStore`] is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Memory store: nothing survives a restart.
    Memory,
    /// Every write is fsynced before `store_msg` / `wait_durable` returns (group commit:
    /// concurrent writers share one fsync). Survives power loss. The default.
    Always,
    /// Writes reach the OS (one `write` per batch) before `store_msg` / `wait_durable`
    /// returns, so they survive a crash of this process (kill -9); fsync happens every
    /// interval (nats-server's `sync_interval`, default 2 minutes there), so up to one
    /// interval of acknowledged writes can be lost on power failure or kernel crash.
    Interval(Duration),
}

/// A message read back from a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMsg {
    /// Stream sequence.
    pub seq: u64,
    /// Timestamp, Unix nanoseconds.
    pub ts: i64,
    /// The subject it was stored under.
    pub subject: String,
    /// Raw NATS header block (`NATS/1.0\r\n...`), empty if none.
    pub hdrs: Bytes,
    /// Payload.
    pub payload: Bytes,
    /// The per-message TTL it was stored with.
    pub ttl: Option<Ttl>,
}

impl StoredMsg {
    /// This message as the borrowed form batch readers hand out.
    pub fn as_msg_ref(&self) -> MsgRef<'_> {
        MsgRef {
            seq: self.seq,
            ts: self.ts,
            subject: &self.subject,
            hdrs: &self.hdrs,
            payload: &self.payload,
        }
    }
}

/// A message borrowed from a store's buffer (see [`crate::StreamStore::read_batch`]).
#[derive(Debug, Clone, Copy)]
pub struct MsgRef<'a> {
    /// Stream sequence.
    pub seq: u64,
    /// Timestamp, Unix nanoseconds.
    pub ts: i64,
    /// Subject.
    pub subject: &'a str,
    /// Raw NATS header block, empty if none.
    pub hdrs: &'a [u8],
    /// Payload.
    pub payload: &'a [u8],
}

/// Returned by a successful append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "under Durability::Always the message is not durable until wait_durable(ticket)"]
pub struct StoreAck {
    /// The assigned sequence.
    pub seq: u64,
    /// The assigned timestamp (Unix nanoseconds).
    pub ts: i64,
    /// Pass to `wait_durable` before acknowledging the publisher.
    pub ticket: Ticket,
}

/// One message of an atomic group (see `StreamStore::append_group`).
#[derive(Debug, Clone, Copy)]
pub struct GroupMsg<'a> {
    /// Subject to store under.
    pub subject: &'a str,
    /// Header block (empty for none).
    pub hdrs: &'a [u8],
    /// Payload.
    pub payload: &'a [u8],
    /// Per-message TTL.
    pub ttl: Option<Ttl>,
    /// Consume the sequence without storing the message (an interest stream with no
    /// interest in it, as `skip_msg`).
    pub skip: bool,
}

/// Returned by a successful `StreamStore::append_group`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "under Durability::Always the group is not durable until wait_durable(ticket)"]
pub struct GroupAck {
    /// Sequence and timestamp of each message, in order.
    pub stored: Vec<(u64, i64)>,
    /// Pass to `wait_durable` before acknowledging the publisher.
    pub ticket: Ticket,
}

/// A position in the store's write log. `wait_durable(t)` returns once everything appended
/// up to and including `t` is durable per the store's [`Durability`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Ticket(pub(crate) u64);

impl Ticket {
    /// A ticket that is always already durable (memory store, no-op writes).
    pub const DONE: Ticket = Ticket(0);
}

/// Message count and sequence range for a subset of a stream (JetStream `SimpleState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SimpleState {
    /// Number of messages.
    pub msgs: u64,
    /// First matching sequence (0 if none).
    pub first: u64,
    /// Last matching sequence (0 if none).
    pub last: u64,
}

/// The full state of a stream store (JetStream `StreamState`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamState {
    /// Messages stored.
    pub msgs: u64,
    /// Accounted bytes (nats-server's formula for this store type).
    pub bytes: u64,
    /// First sequence (`last_seq + 1` when empty).
    pub first_seq: u64,
    /// Timestamp of the first message, Unix nanos (0 when empty).
    pub first_ts: i64,
    /// Last sequence ever assigned (never goes down except by `truncate`).
    pub last_seq: u64,
    /// Timestamp of the last stored message, Unix nanos (0 if none yet).
    pub last_ts: i64,
    /// Number of distinct subjects with at least one message.
    pub num_subjects: u64,
    /// Number of interior deleted sequences between first and last.
    pub num_deleted: u64,
    /// The interior deleted sequences (only filled by `state()`, not `fast_state()`).
    pub deleted: Vec<u64>,
}

/// What `expire(now)` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpireReport {
    /// Messages removed.
    pub removed: u64,
    /// Accounted bytes removed.
    pub bytes: u64,
    /// Subjects that lost their last message (for subject delete markers), each with
    /// the sequence of that message (a marker's `Nats-Last-Sequence` when republished).
    pub emptied_subjects: Vec<(String, u64)>,
}

/// Source of timestamps for stored messages. Tests inject a manual clock.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Current time in Unix nanoseconds.
    fn now(&self) -> i64;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to (tests, deterministic simulations).
#[derive(Debug, Default)]
pub struct ManualClock {
    /// Current time in Unix nanos.
    now: std::sync::atomic::AtomicI64,
}

impl ManualClock {
    /// A clock starting at `start` Unix nanos.
    pub fn new(start: i64) -> Arc<Self> {
        Arc::new(ManualClock {
            now: std::sync::atomic::AtomicI64::new(start),
        })
    }

    /// Moves the clock forward.
    pub fn advance(&self, d: Duration) {
        self.now.fetch_add(
            i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
            std::sync::atomic::Ordering::SeqCst,
        );
    }

    /// Sets the clock.
    pub fn set(&self, now: i64) {
        self.now.store(now, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.now.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// nats-server's memory store size formula (`memStoreMsgSize`): subject + headers +
/// payload + 16 (seq and timestamp).
pub fn mem_msg_size(subject_len: usize, hdr_len: usize, payload_len: usize) -> u64 {
    (subject_len + hdr_len + payload_len + 16) as u64
}

/// nats-server's file store size formula (`fileStoreMsgSize`): a 22-byte record header
/// (length, seq, ts, subject length) + subject + payload + 8-byte hash, plus 4 bytes of
/// header length and the headers when there are headers.
pub fn file_msg_size(subject_len: usize, hdr_len: usize, payload_len: usize) -> u64 {
    if hdr_len == 0 {
        (22 + subject_len + payload_len + 8) as u64
    } else {
        (22 + subject_len + 4 + hdr_len + payload_len + 8) as u64
    }
}

/// Finds a header value in a raw `NATS/1.0` header block (case-sensitive name, as the
/// server does for `Nats-*` headers).
pub(crate) fn header_value<'a>(hdrs: &'a [u8], name: &str) -> Option<&'a [u8]> {
    if hdrs.is_empty() {
        return None;
    }
    let name = name.as_bytes();
    for line in hdrs.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > name.len() && line.starts_with(name) && line[name.len()] == b':' {
            let v = &line[name.len() + 1..];
            let start = v
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .unwrap_or(v.len());
            return Some(&v[start..]);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_formulas_match_nats() {
        // memStoreMsgSize("foo", nil, "hello") = 3 + 0 + 5 + 16
        assert_eq!(mem_msg_size(3, 0, 5), 24);
        // fileStoreMsgSize("foo", nil, "hello") = 22 + 3 + 5 + 8
        assert_eq!(file_msg_size(3, 0, 5), 38);
        // with headers: 22 + 3 + 4 + 10 + 5 + 8
        assert_eq!(file_msg_size(3, 10, 5), 52);
    }

    #[test]
    fn header_lookup() {
        let h = b"NATS/1.0\r\nNats-Rollup: sub\r\nX: y\r\n\r\n";
        assert_eq!(header_value(h, "Nats-Rollup"), Some(&b"sub"[..]));
        assert_eq!(header_value(h, "X"), Some(&b"y"[..]));
        assert_eq!(header_value(h, "Nats-Roll"), None);
        assert_eq!(header_value(b"", "X"), None);
    }

    #[test]
    fn ttl_roundtrip() {
        for t in [
            None,
            Some(Ttl::Never),
            Some(Ttl::After(Duration::from_secs(5))),
        ] {
            assert_eq!(Ttl::decode(Ttl::encode(t)), t);
        }
    }
}
