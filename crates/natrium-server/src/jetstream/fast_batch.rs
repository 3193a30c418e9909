//! Fast batch publish (`allow_batched`, nats-server 2.14+, API level 4): the flow
//! control of a stream's fast batches.
//!
//! Why: a publisher that wants to stream many messages into a stream without waiting for
//! each PubAck, yet learn what was stored and be slowed down when the server falls
//! behind. Each message carries its batch in the reply subject
//! (`<prefix>.<id>.<flow>.<gap mode>.<batch seq>.<op>.$FI`); messages are stored as they
//! arrive, one by one (not atomically), and the server answers on the reply subject with
//! a flow acknowledgement every N stored messages (`{"type":"ack","seq":..,"msgs":N}`),
//! gap and error reports, and one PubAck when the batch is committed.
//!
//! Why a pure state machine: this part decides which answers each message gets
//! (nats-server's `processJetStreamFastBatchMsg`, `fastBatchRegisterSequences`,
//! `fastBatchCommit` and `checkFlowControl`, as it runs standalone, where a message is
//! stored before the next one is looked at). It owns no store and reads no clock; the
//! stream task (`stream/fast_commit.rs`) stores the messages and sends the answers once
//! they are durable.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::api::errors::ApiError;

/// The batch a fast-batch message belongs to, from its reply subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastMsg<'a> {
    /// Batch id (borrowed from the reply subject: no allocation per message).
    pub id: Cow<'a, str>,
    /// Batch sequence (1-based).
    pub seq: u64,
    /// The publisher's largest acknowledgement interval (initial flow).
    pub flow: u16,
    /// `ok`: gaps are reported and skipped; `fail`: a gap ends the batch.
    pub gap_ok: bool,
    /// Commit (`2`) or end-of-batch commit (`3`).
    pub commit: bool,
    /// End-of-batch commit: this message is not stored.
    pub eob: bool,
    /// Ping (`4`): resend the flow state.
    pub ping: bool,
}

/// Operations in the reply subject.
const OP_START: i64 = 0;
const OP_APPEND: i64 = 1;
const OP_COMMIT: i64 = 2;
const OP_COMMIT_EOB: i64 = 3;
const OP_PING: i64 = 4;

/// Go's `parseInt64` of nats-server: plain ASCII digits, else -1.
fn parse_int(s: &[u8]) -> i64 {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return -1;
    }
    std::str::from_utf8(s)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(-1)
}

/// Go's `parseUint64`: plain ASCII digits that fit.
fn parse_uint(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// A reply subject's fast batch (nats-server's `getFastBatch`): `None` if the reply
/// does not end `.$FI` (not a fast-batch message); `Some(None)` if it does but does not
/// parse (refused as an invalid pattern).
pub fn parse_reply(reply: &[u8]) -> Option<Option<FastMsg<'_>>> {
    let body = reply.strip_suffix(b".$FI")?;
    if body.is_empty() {
        return None;
    }
    let mut parts = body.rsplitn(6, |b| *b == b'.');
    let parsed = (|| {
        let op = parse_int(parts.next()?);
        if !(OP_START..=OP_PING).contains(&op) {
            return None;
        }
        let seq = parse_uint(parts.next()?)?;
        // 2^64 - 1 is refused so the next sequence cannot overflow (nats-server).
        if seq == 0 || seq == u64::MAX {
            return None;
        }
        let eob = op == OP_COMMIT_EOB;
        if (seq == 1 && eob) || (op == OP_START && seq != 1) || (op == OP_APPEND && seq <= 1) {
            return None;
        }
        let gap_ok = match parts.next()? {
            b"ok" => true,
            b"fail" => false,
            _ => return None,
        };
        let flow = match parse_int(parts.next()?) {
            a if a <= 0 => 10,
            a => a.min(i64::from(u16::MAX)) as u16,
        };
        let id = parts.next()?;
        // Something (a prefix) must come before the id.
        parts.next()?;
        Some(FastMsg {
            id: String::from_utf8_lossy(id),
            seq,
            flow,
            gap_ok,
            commit: eob || op == OP_COMMIT,
            eob,
            ping: op == OP_PING,
        })
    })();
    Some(parsed)
}

/// An answer to send on the message's reply subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The first message's `{"type":"ack","seq":0,"msgs":M}` (not sent on a `no_ack`
    /// stream, unlike later ones).
    Start {
        /// Acknowledgement interval.
        msgs: u16,
    },
    /// `{"type":"ack","seq":N,"msgs":M}`: stored up to batch sequence N; acknowledged
    /// every M messages from now on.
    Ack {
        /// Batch sequence.
        seq: u64,
        /// Acknowledgement interval.
        msgs: u16,
    },
    /// `{"type":"gap","last_seq":E,"seq":C}`: sequences from E up to C were lost.
    Gap {
        /// Expected sequence.
        last_seq: u64,
        /// The sequence that arrived.
        seq: u64,
    },
    /// `{"type":"err","seq":N,"error":{..}}`: message N was refused.
    Err {
        /// Batch sequence.
        seq: u64,
        /// Why.
        error: ApiError,
    },
    /// The batch's PubAck: `{"stream":..,"seq":<stream seq>,"batch":<id>,"count":N}`.
    PubAck {
        /// Stream sequence of the last stored message.
        stream_seq: u64,
        /// Batch id.
        id: String,
        /// Last batch sequence.
        count: u64,
    },
    /// A duplicate first message: the PubAck of the original, with the batch.
    Duplicate {
        /// The original's stream sequence.
        stream_seq: u64,
        /// Batch id.
        id: String,
        /// Batch sequence.
        count: u64,
    },
    /// An error PubAck, as for a plain publish (not sent on a `no_ack` stream).
    Error(ApiError),
    /// An error PubAck for the first message of a gap-fail batch, sent even on a
    /// `no_ack` stream (nats-server).
    FirstError(ApiError),
}

/// What to do with a message after [`FastBatches::begin`].
#[derive(Debug, PartialEq, Eq)]
pub enum Begin {
    /// Check and store it, then call [`FastBatches::stored`] or [`FastBatches::failed`].
    Store,
    /// Nothing more: it is not stored.
    Done,
}

/// Limits of fast batches (`jetstream { limits { batch { … } } }`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FastLimits {
    /// Open fast batches per stream.
    pub per_stream: usize,
    /// Open fast batches in the server.
    pub total: usize,
    /// A batch idle this long is dropped.
    pub timeout: Duration,
}

/// One open fast batch (nats-server's `fastBatch`).
#[derive(Debug)]
struct Open {
    /// Highest batch sequence seen.
    lseq: u64,
    /// Stream sequence of the last stored message.
    sseq: u64,
    /// Highest batch sequence stored.
    pseq: u64,
    /// Batch sequence of the last flow acknowledgement.
    fseq: u64,
    /// Current acknowledgement interval.
    ack_msgs: u16,
    /// The publisher's largest interval.
    max_ack_msgs: u16,
    /// Gaps are skipped.
    gap_ok: bool,
    /// A commit arrived (waiting for its last message to be stored).
    commit: bool,
    /// Messages that passed the checks and are not registered as stored: a message the
    /// store then refused stays counted here (nats-server's `pending`, which such a
    /// refusal leaves behind, with the effects that has on later acks and commits).
    pending: u64,
    /// When it is dropped unless a message comes first.
    deadline: Instant,
}

/// The open fast batches of one stream.
#[derive(Debug)]
pub struct FastBatches {
    /// By id.
    open: HashMap<String, Open>,
    /// Open fast batches in the server.
    total: Arc<AtomicUsize>,
}

impl Drop for FastBatches {
    fn drop(&mut self) {
        self.total.fetch_sub(self.open.len(), Ordering::AcqRel);
    }
}

impl FastBatches {
    /// None open; `total` counts fast batches across the server.
    pub fn new(total: Arc<AtomicUsize>) -> FastBatches {
        FastBatches {
            open: HashMap::new(),
            total,
        }
    }

    /// Whether none is open.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Whether `id` is open.
    #[cfg(test)]
    pub fn contains(&self, id: &str) -> bool {
        self.open.contains_key(id)
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.open.values().map(|b| b.deadline).min()
    }

    /// Drop batches past their deadline (no advisory, as nats-server). A committing
    /// batch is dropped too: one is only still open when its commit can never be
    /// answered (a message the store refused stays pending), and nats-server, which
    /// stops its timer then, would keep it and its slot for good.
    pub fn expire(&mut self, now: Instant) {
        let before = self.open.len();
        self.open.retain(|_, b| b.deadline > now);
        self.total
            .fetch_sub(before - self.open.len(), Ordering::AcqRel);
    }

    /// Drop every batch.
    pub fn clear(&mut self) {
        self.total.fetch_sub(self.open.len(), Ordering::AcqRel);
        self.open.clear();
    }

    fn remove(&mut self, id: &str) {
        if self.open.remove(id).is_some() {
            self.total.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Largest acknowledgement interval with `n` batches open, for a publisher allowing
    /// `max`.
    fn interval_cap(n: usize, max: u16) -> u16 {
        let share = (500 / n.max(1)).max(1);
        (share.min(usize::from(u16::MAX)) as u16).min(max)
    }

    /// The answer for a commit: the PubAck now if everything is stored, else later.
    fn commit(&mut self, id: &str, out: &mut Vec<Reply>) {
        let Some(b) = self.open.get_mut(id) else {
            return;
        };
        b.commit = true;
        if b.lseq == b.pseq {
            let reply = Reply::PubAck {
                stream_seq: b.sseq,
                id: id.to_string(),
                count: b.lseq,
            };
            self.remove(id);
            out.push(reply);
        }
    }

    /// A flow acknowledgement if `pseq` moved past the interval (nats-server's
    /// `checkFlowControl`); whether one was sent.
    fn flow(&mut self, id: &str, out: &mut Vec<Reply>) -> bool {
        let n = self.open.len();
        let Some(b) = self.open.get_mut(id) else {
            return false;
        };
        let am = u64::from(b.ack_msgs.max(1));
        // `fseq <= pseq`; differences, not sums, so sequences near 2^64 cannot overflow.
        let ahead = b.pseq.saturating_sub(b.fseq);
        if ahead < am {
            return false;
        }
        b.fseq += ahead / am * am;
        let cap = Self::interval_cap(n, b.max_ack_msgs);
        if b.ack_msgs < cap {
            b.ack_msgs = b.ack_msgs.saturating_mul(2).min(cap);
        } else if b.ack_msgs > cap {
            b.ack_msgs = (b.ack_msgs / 2).max(cap);
        }
        out.push(Reply::Ack {
            seq: b.fseq,
            msgs: b.ack_msgs,
        });
        true
    }

    /// A message arrives (after the stream-wide checks): nats-server's checks of the
    /// batch, in its order. Answers go into `out`.
    pub fn begin(
        &mut self,
        m: &FastMsg<'_>,
        api_level_unmet: bool,
        now: Instant,
        limits: &FastLimits,
        out: &mut Vec<Reply>,
    ) -> Begin {
        if m.id.len() > 64 {
            out.push(Reply::Error(ApiError::batch_publish_invalid_batch_id()));
            return Begin::Done;
        }
        // A batch past its deadline is gone even if the sweep has not run yet.
        if self
            .open
            .get(m.id.as_ref())
            .is_some_and(|b| b.deadline <= now)
        {
            self.remove(&m.id);
        }
        if !self.open.contains_key(m.id.as_ref()) {
            // Only a message with sequence 1 starts a batch (a ping never does).
            if m.seq != 1 || m.ping {
                out.push(Reply::Error(ApiError::batch_publish_unknown_batch_id()));
                return Begin::Done;
            }
            if self.open.len() + 1 > limits.per_stream {
                out.push(Reply::Error(ApiError::batch_publish_too_many_inflight()));
                return Begin::Done;
            }
            if self.total.fetch_add(1, Ordering::AcqRel) + 1 > limits.total {
                self.total.fetch_sub(1, Ordering::AcqRel);
                out.push(Reply::Error(ApiError::batch_publish_too_many_inflight()));
                return Begin::Done;
            }
            let ack_msgs = if self.open.is_empty() {
                m.flow.min(500)
            } else {
                1
            };
            self.open.insert(
                m.id.to_string(),
                Open {
                    lseq: 0,
                    sseq: 0,
                    pseq: 0,
                    fseq: 0,
                    ack_msgs,
                    max_ack_msgs: m.flow,
                    gap_ok: m.gap_ok,
                    commit: false,
                    pending: 0,
                    deadline: now + limits.timeout,
                },
            );
        }
        if api_level_unmet {
            self.remove(&m.id);
            out.push(Reply::Error(ApiError::required_api_level()));
            return Begin::Done;
        }
        let id = m.id.as_ref();
        let Some(b) = self.open.get_mut(id) else {
            return Begin::Done;
        };
        // Every message restarts the inactivity timer (an expired batch was dropped
        // above, so nats-server's "timer already fired" case cannot arise here).
        b.deadline = now + limits.timeout;
        if m.ping {
            let mut send = true;
            if m.seq > b.lseq {
                out.push(Reply::Gap {
                    last_seq: b.lseq + 1,
                    seq: m.seq + 1,
                });
                if b.gap_ok {
                    b.lseq = m.seq;
                    if b.pending == 0 {
                        b.pseq = b.lseq;
                    }
                    send = !self.flow(id, out);
                } else {
                    self.commit(id, out);
                    send = false;
                }
            }
            if send && let Some(b) = self.open.get(id) {
                out.push(Reply::Ack {
                    seq: b.fseq,
                    msgs: b.ack_msgs,
                });
            }
            return Begin::Done;
        }
        // Committing already: the publisher waits for the PubAck; more is ignored.
        if b.commit {
            return Begin::Done;
        }
        b.lseq += 1;
        if b.lseq != m.seq {
            // Reported also for a sequence seen before (nats-server 2.15.1).
            out.push(Reply::Gap {
                last_seq: b.lseq,
                seq: m.seq,
            });
            if b.gap_ok && m.seq > b.lseq {
                b.lseq = m.seq;
            } else {
                b.lseq -= 1;
                self.commit(id, out);
                return Begin::Done;
            }
        }
        if m.commit {
            if m.eob {
                b.lseq -= 1;
                if b.pending == 0 {
                    b.pseq = b.lseq;
                }
            }
            self.commit(id, out);
            if m.eob {
                return Begin::Done;
            }
        }
        if m.seq == 1 && !m.commit {
            let b = &self.open[id];
            out.push(Reply::Start { msgs: b.ack_msgs });
        }
        Begin::Store
    }

    /// The message was refused by the stream's checks (`duplicate`: it was a duplicate
    /// of the message stored at that stream sequence).
    pub fn failed(
        &mut self,
        m: &FastMsg<'_>,
        error: ApiError,
        duplicate: Option<u64>,
        out: &mut Vec<Reply>,
    ) {
        let id = m.id.as_ref();
        let Some(b) = self.open.get_mut(id) else {
            return;
        };
        if duplicate.is_some() {
            if b.pending == 0 {
                b.pseq = m.seq;
                self.flow(id, out);
            }
            if !m.commit {
                return;
            }
        }
        let Some(b) = self.open.get_mut(id) else {
            return;
        };
        // The first message of a gap-fail batch is answered as a plain publish.
        if !b.gap_ok && b.lseq == 1 {
            out.push(match duplicate {
                Some(stream_seq) => Reply::Duplicate {
                    stream_seq,
                    id: id.to_string(),
                    count: m.seq,
                },
                None => Reply::FirstError(error),
            });
            self.remove(id);
            return;
        }
        if duplicate.is_none() {
            out.push(Reply::Err { seq: m.seq, error });
        }
        if b.gap_ok && !m.commit {
            return;
        }
        if duplicate.is_none() {
            b.lseq -= 1;
            if b.pending == 0 {
                b.pseq = b.lseq;
            }
        }
        self.commit(id, out);
    }

    /// The message passed the checks but the store refused it (nats-server answers
    /// that as a plain publish error and the batch goes on; the message stays counted
    /// as pending).
    pub fn store_failed(&mut self, m: &FastMsg<'_>, error: ApiError, out: &mut Vec<Reply>) {
        if let Some(b) = self.open.get_mut(m.id.as_ref()) {
            b.pending += 1;
        }
        out.push(Reply::Error(error));
    }

    /// The message was stored at `stream_seq` (nats-server's
    /// `fastBatchRegisterSequences`, standalone: nothing else is pending).
    pub fn stored(&mut self, m: &FastMsg<'_>, stream_seq: u64, out: &mut Vec<Reply>) {
        let id = m.id.as_ref();
        let Some(b) = self.open.get_mut(id) else {
            return;
        };
        b.sseq = stream_seq;
        // Nothing else pending: everything seen so far is stored (duplicates too).
        let caught_up = b.pending == 0;
        b.pseq = if caught_up { b.lseq } else { m.seq };
        if b.lseq == b.pseq && b.commit {
            let count = if caught_up { b.lseq } else { m.seq };
            let reply = Reply::PubAck {
                stream_seq,
                id: id.to_string(),
                count,
            };
            self.remove(id);
            out.push(reply);
            return;
        }
        self.flow(id, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fm(reply: &str) -> FastMsg<'_> {
        parse_reply(reply.as_bytes()).unwrap().unwrap()
    }

    #[test]
    fn reply_subjects() {
        assert_eq!(parse_reply(b"_INBOX.x"), None);
        assert_eq!(parse_reply(b"a.$FI.b"), None);
        assert_eq!(parse_reply(b"p.$FI"), Some(None));
        let m = fm("p.q.uuid.10.fail.1.0.$FI");
        assert_eq!(
            m,
            FastMsg {
                id: Cow::Borrowed("uuid"),
                seq: 1,
                flow: 10,
                gap_ok: false,
                commit: false,
                eob: false,
                ping: false
            }
        );
        assert!(fm("p.id.0.ok.3.3.$FI").eob);
        assert_eq!(fm("p.id.0.ok.3.1.$FI").flow, 10);
        assert_eq!(fm("p.id.99999.ok.3.1.$FI").flow, u16::MAX);
        for bad in [
            "p.id.10.fail.2.0.$FI",
            "p.id.10.fail.1.1.$FI",
            "p.id.10.fail.1.3.$FI",
            "p.id.10.maybe.1.0.$FI",
            "p.id.10.fail.0.2.$FI",
            "p.id.10.fail.2.5.$FI",
            "id.10.fail.1.0.$FI",
        ] {
            assert_eq!(parse_reply(bad.as_bytes()), Some(None), "{bad}");
        }
    }

    fn limits() -> FastLimits {
        FastLimits {
            per_stream: 1000,
            total: 50_000,
            timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn a_batch_is_acknowledged_every_n_and_committed() {
        let mut f = FastBatches::new(Arc::new(AtomicUsize::new(0)));
        let t = Instant::now();
        let mut out = Vec::new();
        let m1 = fm("p.b.2.fail.1.0.$FI");
        assert_eq!(f.begin(&m1, false, t, &limits(), &mut out), Begin::Store);
        assert_eq!(out, vec![Reply::Start { msgs: 2 }]);
        out.clear();
        f.stored(&m1, 1, &mut out);
        assert!(out.is_empty());
        let m2 = fm("p.b.2.fail.2.1.$FI");
        assert_eq!(f.begin(&m2, false, t, &limits(), &mut out), Begin::Store);
        f.stored(&m2, 2, &mut out);
        // Two stored: an ack at 2; the interval stays at the publisher's maximum.
        assert_eq!(out, vec![Reply::Ack { seq: 2, msgs: 2 }]);
        out.clear();
        let m3 = fm("p.b.2.fail.3.2.$FI");
        assert_eq!(f.begin(&m3, false, t, &limits(), &mut out), Begin::Store);
        f.stored(&m3, 3, &mut out);
        assert_eq!(
            out,
            vec![Reply::PubAck {
                stream_seq: 3,
                id: "b".into(),
                count: 3
            }]
        );
        assert!(f.is_empty());
    }

    #[test]
    fn a_commit_that_can_never_be_answered_expires_with_its_slot() {
        let total = Arc::new(AtomicUsize::new(0));
        let mut f = FastBatches::new(total.clone());
        let t = Instant::now();
        let mut out = Vec::new();
        let m1 = fm("p.b.10.fail.1.0.$FI");
        f.begin(&m1, false, t, &limits(), &mut out);
        f.stored(&m1, 1, &mut out);
        // Message 2 (the commit) passes the checks, then the store refuses it.
        let m2 = fm("p.b.10.fail.2.2.$FI");
        assert_eq!(f.begin(&m2, false, t, &limits(), &mut out), Begin::Store);
        f.store_failed(&m2, ApiError::stream_wrong_last_msg_id("x"), &mut out);
        assert!(f.contains("b"));
        f.expire(t + Duration::from_secs(11));
        assert!(f.is_empty());
        assert_eq!(total.load(Ordering::Acquire), 0);
        assert_eq!(f.next_deadline(), None);
    }

    #[test]
    fn sequences_near_the_top_do_not_overflow() {
        let mut f = FastBatches::new(Arc::new(AtomicUsize::new(0)));
        let t = Instant::now();
        let mut out = Vec::new();
        let m1 = fm("p.b.250.ok.1.0.$FI");
        f.begin(&m1, false, t, &limits(), &mut out);
        f.stored(&m1, 1, &mut out);
        for seq in [u64::MAX - 3, u64::MAX - 2, u64::MAX - 1] {
            let reply = format!("p.b.250.ok.{seq}.4.$FI");
            let ping = fm(&reply);
            f.begin(&ping, false, t, &limits(), &mut out);
        }
        assert!(f.contains("b"));
    }

    #[test]
    fn a_gap_ends_a_fail_batch_and_is_skipped_by_an_ok_one() {
        let t = Instant::now();
        let mut out = Vec::new();
        let mut f = FastBatches::new(Arc::new(AtomicUsize::new(0)));
        let m1 = fm("p.b.10.fail.1.0.$FI");
        f.begin(&m1, false, t, &limits(), &mut out);
        f.stored(&m1, 1, &mut out);
        out.clear();
        assert_eq!(
            f.begin(&fm("p.b.10.fail.3.1.$FI"), false, t, &limits(), &mut out),
            Begin::Done
        );
        assert_eq!(
            out,
            vec![
                Reply::Gap {
                    last_seq: 2,
                    seq: 3
                },
                Reply::PubAck {
                    stream_seq: 1,
                    id: "b".into(),
                    count: 1
                }
            ]
        );
        out.clear();
        let m1 = fm("p.c.10.ok.1.0.$FI");
        f.begin(&m1, false, t, &limits(), &mut out);
        f.stored(&m1, 2, &mut out);
        out.clear();
        let m3 = fm("p.c.10.ok.3.2.$FI");
        assert_eq!(f.begin(&m3, false, t, &limits(), &mut out), Begin::Store);
        f.stored(&m3, 3, &mut out);
        assert_eq!(
            out,
            vec![
                Reply::Gap {
                    last_seq: 2,
                    seq: 3
                },
                Reply::PubAck {
                    stream_seq: 3,
                    id: "c".into(),
                    count: 3
                }
            ]
        );
    }
}
