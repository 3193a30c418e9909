//! Atomic batch publish (`allow_atomic`, nats-server 2.12+): the staging of a stream's
//! open batches.
//!
//! Why: a client that must write several messages all-or-nothing (an order and its
//! lines, a set of KV keys) publishes them with `Nats-Batch-Id`, `Nats-Batch-Sequence`
//! 1, 2, … and `Nats-Batch-Commit` on the last. The stream stores nothing until the
//! commit arrives, then checks every message against the stream as it will be and
//! stores the whole batch or none of it.
//!
//! Why a pure state machine: this part decides only *which* messages make up a batch
//! (sequence gaps, sizes, how many batches may be open, inactivity). It owns no store
//! and reads no clock, so every rule is unit-tested without I/O. The stream task owns
//! one [`Batches`] and is the only caller, so no lock is needed; the server-wide count
//! of open batches is the one shared number ([`Batches::new`]).
//!
//! Staged messages are kept in memory, counted against the stream's inbound-queue byte
//! bound (`stream.rs`), not on disk as nats-server stages them: a crash forgets an
//! uncommitted batch, which nobody was told is stored (`docs/compat.md`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::api::errors::ApiError;

/// nats-server's limits for atomic batches (`jetstream { limits { batch { … } } }`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Messages in one batch (the end-of-batch marker not counted).
    pub max_msgs: u64,
    /// Open batches per stream.
    pub max_inflight_per_stream: usize,
    /// Open batches in the whole server.
    pub max_inflight_total: usize,
    /// A batch with no message for this long is abandoned.
    pub timeout: Duration,
    /// Open fast batches (`allow_batched`) per stream (the same config key as
    /// `max_inflight_per_stream`; nats-server's defaults differ by kind).
    pub fast_inflight_per_stream: usize,
    /// Open fast batches in the whole server.
    pub fast_inflight_total: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_msgs: 1000,
            max_inflight_per_stream: 50,
            max_inflight_total: 1000,
            timeout: Duration::from_secs(10),
            fast_inflight_per_stream: 1000,
            fast_inflight_total: 50_000,
        }
    }
}

/// Longest `Nats-Batch-Id` nats-server accepts.
pub const MAX_ID_LEN: usize = 64;

/// Why a batch was given up, as nats-server's `BATCH_ABANDONED` advisory says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abandoned {
    /// No message for [`BatchLimits::timeout`].
    Timeout,
    /// Over [`BatchLimits::max_msgs`].
    Large,
    /// A sequence gap (or a batch that cannot complete).
    Incomplete,
    /// A message asked for a newer API level than the server's.
    Unsupported,
}

impl Abandoned {
    /// The advisory's `reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Abandoned::Timeout => "timeout",
            Abandoned::Large => "large",
            Abandoned::Incomplete => "incomplete",
            Abandoned::Unsupported => "unsupported",
        }
    }
}

/// `Nats-Batch-Commit`, as nats-server reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitMark {
    /// Absent: the batch goes on.
    None,
    /// `1`: this message is the last one.
    One,
    /// `eob`: end-of-batch marker; the batch ends with the message before it.
    Eob,
    /// Any other value: the batch is refused.
    Invalid,
}

impl CommitMark {
    /// The header's value, if the message has the header.
    pub fn parse(v: Option<&[u8]>) -> CommitMark {
        match v {
            None => CommitMark::None,
            Some(b"1") => CommitMark::One,
            Some(b"eob") => CommitMark::Eob,
            Some(_) => CommitMark::Invalid,
        }
    }
}

/// The batch headers of one message, read out of it (so the message itself can move
/// into the staging area).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchHeaders {
    /// `Nats-Batch-Id` (not empty).
    pub id: String,
    /// The id was not UTF-8 (refused as an invalid id: ids are map keys and go back in
    /// the PubAck as text).
    pub id_invalid: bool,
    /// `Nats-Batch-Sequence`: `None` when absent, empty or not a number.
    pub seq: Option<u64>,
    /// `Nats-Batch-Commit`.
    pub commit: CommitMark,
    /// The message asks for a newer API level than ours (`Nats-Required-Api-Level`).
    pub api_level_unmet: bool,
}

impl BatchHeaders {
    /// From the raw header values.
    pub fn new(
        id: &[u8],
        seq: Option<&[u8]>,
        commit: Option<&[u8]>,
        api_level_unmet: bool,
    ) -> BatchHeaders {
        let text = std::str::from_utf8(id);
        BatchHeaders {
            id: text.unwrap_or_default().to_string(),
            id_invalid: text.is_err(),
            seq: seq.and_then(parse_seq),
            commit: CommitMark::parse(commit),
            api_level_unmet,
        }
    }
}

/// What to do with one batch message.
#[derive(Debug)]
pub enum Step<T> {
    /// Staged: answer with an empty message (nats-server's "stored, not committed").
    Staged,
    /// The commit: check and store `msgs` (in batch order; the end-of-batch marker is
    /// not among them) as one group. `eob`: the commit was an end-of-batch marker, so
    /// the last message must carry `Nats-Batch-Commit: 1`.
    Commit {
        /// The batch id.
        id: String,
        /// Every message of the batch.
        msgs: Vec<T>,
        /// Committed by an end-of-batch marker.
        eob: bool,
    },
    /// Refused with `error`. `abandoned` is set where the open batch was dropped and
    /// nats-server sends a `BATCH_ABANDONED` advisory; `dropped` holds what the batch
    /// had staged (so the caller can release it) when the batch was dropped at all.
    Refused {
        /// The error to answer with.
        error: ApiError,
        /// Advisory to send: the batch id and why.
        abandoned: Option<(String, Abandoned)>,
        /// Staged messages of a dropped batch.
        dropped: Vec<T>,
    },
}

/// One open batch.
#[derive(Debug)]
struct Open<T> {
    /// Staged messages; message `i` has batch sequence `i + 1`.
    msgs: Vec<T>,
    /// When the batch is abandoned unless another message arrives first.
    deadline: Instant,
}

/// The open batches of one stream.
#[derive(Debug)]
pub struct Batches<T> {
    /// By batch id.
    open: HashMap<String, Open<T>>,
    /// Open batches in the whole server (shared by every stream's [`Batches`]).
    total: Arc<AtomicUsize>,
}

impl<T> Drop for Batches<T> {
    fn drop(&mut self) {
        self.total.fetch_sub(self.open.len(), Ordering::AcqRel);
    }
}

/// `Nats-Batch-Sequence` as nats-server reads it: a plain unsigned decimal.
fn parse_seq(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

impl<T> Batches<T> {
    /// No open batches; `total` counts open batches across the server.
    pub fn new(total: Arc<AtomicUsize>) -> Batches<T> {
        Batches {
            open: HashMap::new(),
            total,
        }
    }

    /// Number of open batches.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether no batch is open.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// The earliest deadline of an open batch.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.open.values().map(|b| b.deadline).min()
    }

    /// Drop every batch past its deadline; returns their ids and staged messages.
    pub fn expire(&mut self, now: Instant) -> Vec<(String, Vec<T>)> {
        let ids: Vec<String> = self
            .open
            .iter()
            .filter(|(_, b)| b.deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        ids.into_iter()
            .filter_map(|id| self.remove(&id).map(|msgs| (id, msgs)))
            .collect()
    }

    /// Drop every open batch (the stream stopped allowing them, or is going away).
    pub fn clear(&mut self) -> Vec<T> {
        let n = self.open.len();
        self.total.fetch_sub(n, Ordering::AcqRel);
        self.open.drain().flat_map(|(_, b)| b.msgs).collect()
    }

    fn remove(&mut self, id: &str) -> Option<Vec<T>> {
        let b = self.open.remove(id)?;
        self.total.fetch_sub(1, Ordering::AcqRel);
        Some(b.msgs)
    }

    /// Take one batch message, in nats-server's order of checks
    /// (`processJetStreamAtomicBatchMsg`, after the stream-wide ones: sealed, limits,
    /// message size, `allow_atomic`).
    pub fn accept(
        &mut self,
        h: BatchHeaders,
        msg: T,
        now: Instant,
        limits: &BatchLimits,
    ) -> Step<T> {
        let refuse = |error: ApiError| Step::Refused {
            error,
            abandoned: None,
            dropped: Vec::new(),
        };
        if h.id_invalid || h.id.len() > MAX_ID_LEN {
            return refuse(ApiError::atomic_publish_invalid_batch_id());
        }
        let Some(seq) = h.seq else {
            return refuse(ApiError::atomic_publish_missing_seq());
        };
        let eob = h.commit == CommitMark::Eob;
        let commit = h.commit != CommitMark::None;
        let id = h.id;
        // The end-of-batch marker does not count toward the size.
        let size = if eob { seq.saturating_sub(1) } else { seq };
        if !self.open.contains_key(&id) {
            if seq != 1 {
                if size > limits.max_msgs {
                    return refuse(ApiError::atomic_publish_too_large_batch(limits.max_msgs));
                }
                return refuse(ApiError::atomic_publish_incomplete_batch());
            }
            if self.open.len() + 1 > limits.max_inflight_per_stream {
                return refuse(ApiError::atomic_publish_too_many_inflight());
            }
            if self.total.fetch_add(1, Ordering::AcqRel) + 1 > limits.max_inflight_total {
                self.total.fetch_sub(1, Ordering::AcqRel);
                return refuse(ApiError::atomic_publish_too_many_inflight());
            }
            self.open.insert(
                id.clone(),
                Open {
                    msgs: Vec::new(),
                    deadline: now + limits.timeout,
                },
            );
        }
        let drop_batch = |this: &mut Self, error: ApiError, why: Option<Abandoned>| {
            let dropped = this.remove(&id).unwrap_or_default();
            Step::Refused {
                error,
                abandoned: why.map(|w| (id.clone(), w)),
                dropped,
            }
        };
        if h.commit == CommitMark::Invalid {
            // nats-server drops the batch without an advisory here.
            return drop_batch(self, ApiError::atomic_publish_invalid_batch_commit(), None);
        }
        if h.api_level_unmet {
            return drop_batch(
                self,
                ApiError::required_api_level(),
                Some(Abandoned::Unsupported),
            );
        }
        let Some(open) = self.open.get_mut(&id) else {
            return refuse(ApiError::atomic_publish_incomplete_batch());
        };
        // A batch past its deadline is gone even if the sweep has not run yet.
        let expired = open.deadline <= now;
        open.deadline = now + limits.timeout;
        let next = open.msgs.len() as u64 + 1;
        if seq != next || expired || (seq == 1 && eob) {
            return drop_batch(
                self,
                ApiError::atomic_publish_incomplete_batch(),
                Some(Abandoned::Incomplete),
            );
        }
        if size > limits.max_msgs {
            return drop_batch(
                self,
                ApiError::atomic_publish_too_large_batch(limits.max_msgs),
                Some(Abandoned::Large),
            );
        }
        if !eob {
            open.msgs.push(msg);
        }
        if !commit {
            return Step::Staged;
        }
        let msgs = self.remove(&id).unwrap_or_default();
        Step::Commit { id, msgs, eob }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(id: &str, seq: &str, commit: Option<&str>) -> BatchHeaders {
        BatchHeaders::new(
            id.as_bytes(),
            Some(seq.as_bytes()),
            commit.map(str::as_bytes),
            false,
        )
    }

    fn batches() -> (Batches<u32>, Arc<AtomicUsize>) {
        let total = Arc::new(AtomicUsize::new(0));
        (Batches::new(total.clone()), total)
    }

    fn err_code<T>(s: &Step<T>) -> u16 {
        match s {
            Step::Refused { error, .. } => error.err_code,
            _ => 0,
        }
    }

    #[test]
    fn a_batch_stages_then_commits_in_order() {
        let (mut b, total) = batches();
        let t = Instant::now();
        let l = BatchLimits::default();
        assert!(matches!(
            b.accept(h("a", "1", None), 1, t, &l),
            Step::Staged
        ));
        assert!(matches!(
            b.accept(h("a", "2", None), 2, t, &l),
            Step::Staged
        ));
        assert_eq!(total.load(Ordering::Acquire), 1);
        match b.accept(h("a", "3", Some("1")), 3, t, &l) {
            Step::Commit { id, msgs, eob } => {
                assert_eq!((id.as_str(), msgs, eob), ("a", vec![1, 2, 3], false));
            }
            other => panic!("{other:?}"),
        }
        assert!(b.is_empty());
        assert_eq!(total.load(Ordering::Acquire), 0);
    }

    #[test]
    fn an_end_of_batch_marker_commits_without_being_staged() {
        let (mut b, _) = batches();
        let t = Instant::now();
        let l = BatchLimits::default();
        assert!(matches!(
            b.accept(h("a", "1", None), 1, t, &l),
            Step::Staged
        ));
        match b.accept(h("a", "2", Some("eob")), 2, t, &l) {
            Step::Commit { msgs, eob, .. } => assert_eq!((msgs, eob), (vec![1], true)),
            other => panic!("{other:?}"),
        }
        // An end-of-batch marker cannot be the whole batch.
        let s = b.accept(h("b", "1", Some("eob")), 1, t, &l);
        assert!(matches!(
            s,
            Step::Refused {
                abandoned: Some((_, Abandoned::Incomplete)),
                ..
            }
        ));
        assert_eq!(err_code(&s), 10176);
        assert!(b.is_empty());
    }

    #[test]
    fn header_errors_leave_the_batch_alone() {
        let (mut b, _) = batches();
        let t = Instant::now();
        let l = BatchLimits::default();
        let long = "x".repeat(65);
        assert_eq!(err_code(&b.accept(h(&long, "1", None), 0, t, &l)), 10179);
        let not_utf8 = BatchHeaders::new(&[0xff, 0xfe], Some(b"1"), None, false);
        assert_eq!(err_code(&b.accept(not_utf8, 0, t, &l)), 10179);
        assert!(matches!(
            b.accept(h("a", "1", None), 1, t, &l),
            Step::Staged
        ));
        assert_eq!(err_code(&b.accept(h("a", "", None), 0, t, &l)), 10175);
        assert_eq!(err_code(&b.accept(h("a", "x2", None), 0, t, &l)), 10175);
        assert_eq!(b.len(), 1, "the open batch is untouched");
        assert!(matches!(
            b.accept(h("a", "2", Some("1")), 2, t, &l),
            Step::Commit { .. }
        ));
    }

    #[test]
    fn gaps_and_bad_commits_drop_the_batch() {
        let (mut b, total) = batches();
        let t = Instant::now();
        let l = BatchLimits::default();
        // No open batch and not its first message: incomplete, nothing dropped.
        let s = b.accept(h("a", "2", None), 2, t, &l);
        assert_eq!(err_code(&s), 10176);
        assert!(matches!(
            s,
            Step::Refused {
                abandoned: None,
                ..
            }
        ));
        assert!(matches!(
            b.accept(h("a", "1", None), 1, t, &l),
            Step::Staged
        ));
        match b.accept(h("a", "3", None), 3, t, &l) {
            Step::Refused {
                error,
                abandoned,
                dropped,
            } => {
                assert_eq!(error.err_code, 10176);
                assert_eq!(abandoned, Some(("a".to_string(), Abandoned::Incomplete)));
                assert_eq!(dropped, vec![1]);
            }
            other => panic!("{other:?}"),
        }
        assert!(b.is_empty());
        assert!(matches!(
            b.accept(h("c", "1", None), 1, t, &l),
            Step::Staged
        ));
        let s = b.accept(h("c", "2", Some("yes")), 2, t, &l);
        assert_eq!(err_code(&s), 10200);
        assert!(matches!(s, Step::Refused { abandoned: None, ref dropped, .. } if dropped == &[1]));
        assert_eq!(total.load(Ordering::Acquire), 0);
    }

    #[test]
    fn size_and_inflight_limits() {
        let (mut b, total) = batches();
        let t = Instant::now();
        let l = BatchLimits {
            max_msgs: 2,
            max_inflight_per_stream: 2,
            max_inflight_total: 3,
            ..BatchLimits::default()
        };
        assert!(matches!(
            b.accept(h("a", "1", None), 1, t, &l),
            Step::Staged
        ));
        assert!(matches!(
            b.accept(h("a", "2", None), 2, t, &l),
            Step::Staged
        ));
        let s = b.accept(h("a", "3", None), 3, t, &l);
        assert_eq!(err_code(&s), 10199);
        assert!(matches!(
            s,
            Step::Refused {
                abandoned: Some((_, Abandoned::Large)),
                ..
            }
        ));
        // An end-of-batch marker after max_msgs messages is within the size.
        assert!(matches!(
            b.accept(h("a", "1", None), 1, t, &l),
            Step::Staged
        ));
        assert!(matches!(
            b.accept(h("a", "2", None), 2, t, &l),
            Step::Staged
        ));
        assert!(matches!(
            b.accept(h("a", "3", Some("eob")), 3, t, &l),
            Step::Commit { .. }
        ));
        // A late message of an unknown batch past the size says "too large".
        assert_eq!(err_code(&b.accept(h("z", "5", None), 5, t, &l)), 10199);
        assert!(matches!(
            b.accept(h("a", "1", None), 1, t, &l),
            Step::Staged
        ));
        assert!(matches!(
            b.accept(h("b", "1", None), 1, t, &l),
            Step::Staged
        ));
        assert_eq!(err_code(&b.accept(h("c", "1", None), 1, t, &l)), 10210);
        // The server-wide count is shared between streams.
        let mut other: Batches<u32> = Batches::new(total.clone());
        assert!(matches!(
            other.accept(h("d", "1", None), 1, t, &l),
            Step::Staged
        ));
        assert_eq!(err_code(&other.accept(h("e", "1", None), 1, t, &l)), 10210);
        assert_eq!(total.load(Ordering::Acquire), 3);
        drop(other);
        assert_eq!(total.load(Ordering::Acquire), 2);
        assert_eq!(b.clear(), vec![1, 1]);
        assert_eq!(total.load(Ordering::Acquire), 0);
    }

    #[test]
    fn an_idle_batch_expires() {
        let (mut b, _) = batches();
        let t = Instant::now();
        let l = BatchLimits::default();
        assert!(matches!(
            b.accept(h("a", "1", None), 1, t, &l),
            Step::Staged
        ));
        let later = t + Duration::from_secs(6);
        assert!(matches!(
            b.accept(h("a", "2", None), 2, later, &l),
            Step::Staged
        ));
        assert_eq!(b.next_deadline(), Some(later + l.timeout));
        assert!(
            b.expire(t + Duration::from_secs(11)).is_empty(),
            "the timer was reset"
        );
        let gone = b.expire(later + l.timeout);
        assert_eq!(gone, vec![("a".to_string(), vec![1, 2])]);
        // The next message finds no batch.
        assert_eq!(
            err_code(&b.accept(h("a", "3", Some("1")), 3, later + l.timeout, &l)),
            10176
        );
        // A message arriving after the deadline but before the sweep is refused too.
        assert!(matches!(
            b.accept(h("b", "1", None), 1, t, &l),
            Step::Staged
        ));
        let s = b.accept(h("b", "2", None), 2, t + l.timeout, &l);
        assert!(matches!(
            s,
            Step::Refused {
                abandoned: Some((_, Abandoned::Incomplete)),
                ..
            }
        ));
    }
}
