//! The [`StreamStore`] trait: everything a JetStream stream needs from its storage.
//!
//! Why `&self` everywhere with internal locking: the server runs the appender (publishes),
//! many readers (consumers, MSG.GET, direct get, stream info) and the expiry timer
//! concurrently. Each store guards its state with a reader/writer lock so reads run in
//! parallel with each other and only briefly exclude the appender.
//!
//! Why append and durability are split (`append_msg` + `wait_durable`): with
//! [`Durability::Always`] a file store must fsync before a publish is acknowledged. An
//! fsync costs the same for one message as for a thousand, so the server appends what it
//! has, then waits once; concurrent waiters share one fsync (group commit).
//! [`StreamStore::store_msg`] does both steps for callers that do not batch.
//!
//! Time: the store stamps messages with its [`crate::Clock`] but never runs timers. The
//! server asks [`StreamStore::next_expiry`] and calls [`StreamStore::expire`] when due, so
//! tests drive expiry with a manual clock.
//!
//! Visibility: under `Durability::Always` a [`crate::FileStore`] does not return a message
//! from `load_*` until it is durable, so a consumer can never see (and acknowledge) a
//! message that a crash could take back and whose sequence could then be reused. Counts
//! (`state`, `num_pending`) include appended-but-not-yet-durable messages; the server
//! should signal consumers after `wait_durable` returns.

use std::collections::HashMap;
use std::sync::Arc;

use crate::consumer::{ConsumerPolicy, ConsumerStore};
use crate::error::Result;
use crate::subject::SubjectFilter;
use crate::types::{
    Durability, ExpireReport, GroupAck, GroupMsg, MsgRef, SimpleState, StorageType, StoreAck,
    StoreConfig, StoredMsg, StreamState, Ticket, Ttl,
};

/// Storage for one stream. See the module docs for the concurrency and durability model.
pub trait StreamStore: Send + Sync {
    /// Memory or file.
    fn storage_type(&self) -> StorageType;

    /// The durability mode (reported in stream info).
    fn durability(&self) -> Durability;

    /// The accounted size of a message (nats-server's formula for this store type), the
    /// unit of `max_bytes` and `StreamState::bytes`.
    fn msg_size(&self, subject: &str, hdrs: &[u8], payload: &[u8]) -> u64;

    /// Appends a message with the next sequence and the current time (clamped so
    /// timestamps never decrease in sequence order), enforcing limits.
    /// The message is not necessarily durable yet: call [`Self::wait_durable`] with the
    /// returned ticket before acknowledging the publisher.
    fn append_msg(
        &self,
        subject: &str,
        hdrs: &[u8],
        payload: &[u8],
        ttl: Option<Ttl>,
    ) -> Result<StoreAck>;

    /// Appends and waits until durable per the store's mode. Returns (seq, timestamp).
    fn store_msg(
        &self,
        subject: &str,
        hdrs: &[u8],
        payload: &[u8],
        ttl: Option<Ttl>,
    ) -> Result<(u64, i64)> {
        let ack = self.append_msg(subject, hdrs, payload, ttl)?;
        self.wait_durable(ack.ticket)?;
        Ok((ack.seq, ack.ts))
    }

    /// Stores a message at a given sequence and timestamp (mirrors, restores, replicas).
    /// `seq` must be `last_seq + 1` (0 means "next"). `discard_new_check` applies the
    /// discard-new limits (false when a leader already decided). Waits for durability.
    #[allow(clippy::too_many_arguments)]
    fn store_raw_msg(
        &self,
        subject: &str,
        hdrs: &[u8],
        payload: &[u8],
        seq: u64,
        ts: i64,
        ttl: Option<Ttl>,
        discard_new_check: bool,
    ) -> Result<()>;

    /// [`StreamStore::store_raw_msg`] without waiting for durability: the message is
    /// stored (and readable) when this returns, but may still sit in a write buffer
    /// until [`StreamStore::sync`] or [`StreamStore::wait_durable`] with the returned
    /// ticket. For bulk loads (restores) that sync once at the end, and for mirrors,
    /// whose batches share one fsync as publishes do.
    #[allow(clippy::too_many_arguments)]
    fn append_raw_msg(
        &self,
        subject: &str,
        hdrs: &[u8],
        payload: &[u8],
        seq: u64,
        ts: i64,
        ttl: Option<Ttl>,
        discard_new_check: bool,
    ) -> Result<Ticket> {
        self.store_raw_msg(subject, hdrs, payload, seq, ts, ttl, discard_new_check)?;
        Ok(Ticket::DONE)
    }

    /// Appends `msgs` as one atomic group (JetStream atomic batch publish): consecutive
    /// sequences, appended under one hold of the store's lock, so no reader and no
    /// fsync sees part of the group; if one append fails (a limit, the disk), the ones
    /// before it are taken back (`truncate`) and nothing of the group stays readable.
    /// Limits apply per message as in [`StreamStore::append_msg`] (so a discard-old
    /// limit may drop older messages as the group goes in). Not durable until
    /// [`StreamStore::wait_durable`] with the returned ticket.
    fn append_group(&self, msgs: &[GroupMsg<'_>]) -> Result<GroupAck>;

    /// Consumes sequence `seq` (0 = next) without storing a message. Returns it.
    fn skip_msg(&self, seq: u64) -> Result<u64>;

    /// Consumes `num` sequences starting at `seq` (0 = next) without storing messages.
    fn skip_msgs(&self, seq: u64, num: u64) -> Result<()>;

    /// [`StreamStore::skip_msgs`] without waiting for durability: the sequences are
    /// consumed when this returns; [`StreamStore::wait_durable`] with the returned ticket
    /// makes that durable (a mirror's gaps share its batch's fsync).
    fn append_skip_msgs(&self, seq: u64, num: u64) -> Result<Ticket> {
        self.skip_msgs(seq, num)?;
        Ok(Ticket::DONE)
    }

    /// Blocks until everything appended up to `ticket` is durable per the mode. Concurrent
    /// callers share one flush/fsync.
    fn wait_durable(&self, ticket: Ticket) -> Result<()>;

    /// The newest ticket an fsync has covered: everything appended up to it is on disk.
    /// Lets a caller that waited for one ticket learn what else that fsync took with it
    /// (appends that arrived while it was being written). A store that never fsyncs
    /// answers [`Ticket::DONE`].
    fn durable_ticket(&self) -> Ticket {
        Ticket::DONE
    }

    /// Makes everything appended so far durable, including an fsync in every file mode.
    fn sync(&self) -> Result<()>;

    /// A view of the messages up to `watermark` as they are now, unaffected by later
    /// removals (deletes, purges, limits, expiry): what a point-in-time backup reads.
    /// Messages appended later are never in it. A message securely erased meanwhile
    /// (`erase_msg`) is left out: the erase request wins over the backup.
    fn pinned_view(&self, watermark: u64) -> Result<Box<dyn PinnedView>>;

    /// Loads the message at `seq`. `Eof` past the last sequence, `NotFound` for a gap.
    fn load_msg(&self, seq: u64) -> Result<StoredMsg>;

    /// Loads the first message with sequence ≥ `start` matching `filter`; `Eof` if none.
    fn load_next_msg(&self, filter: &SubjectFilter, start: u64) -> Result<StoredMsg>;

    /// Bulk read in sequence order (snapshots): calls `f` on the messages with sequences
    /// in `[start, end]` until about `max_bytes` of them were read or `f` returns false,
    /// and returns the sequence to continue from (greater than `end` when the range is
    /// done; `end` must be below `u64::MAX`). Deleted sequences are absent. Every message goes through the same checks
    /// as [`StreamStore::load_next_msg`] (a damaged one is handled exactly as there);
    /// stores may read many messages at once. The default reads them one by one.
    fn read_batch(
        &self,
        start: u64,
        end: u64,
        max_bytes: usize,
        f: &mut dyn FnMut(MsgRef<'_>) -> bool,
    ) -> Result<u64> {
        read_batch_one_by_one(self, start, end, max_bytes, f)
    }

    /// Loads a run of stored messages from `start` on, in sequence order, for a reader
    /// that goes through the stream message by message (consumers without a filter):
    /// the first message with sequence ≥ `start` and up to `max_msgs` (at least one)
    /// and about `max_bytes` of the ones after it. Every stored message between `start`
    /// and the last one returned is returned (deleted sequences are absent); empty when
    /// there is nothing from `start` on. Each message goes through the same checks as
    /// [`StreamStore::load_next_msg`]. Stores that can read a run at once (one `pread`)
    /// do; the default returns just the next message, which costs nothing extra for
    /// stores that hold messages in memory.
    fn load_next_run(
        &self,
        start: u64,
        _max_msgs: usize,
        _max_bytes: usize,
    ) -> Result<Vec<StoredMsg>> {
        load_next_one(self, start)
    }

    /// Loads the last message with sequence ≤ `start` matching `filter`; `Eof` if `start`
    /// is before the first sequence, `NotFound` if nothing matches.
    fn load_prev_msg(&self, filter: &SubjectFilter, start: u64) -> Result<StoredMsg>;

    /// Loads the last message matching `filter` (last-by-subject).
    fn load_last_msg(&self, filter: &SubjectFilter) -> Result<StoredMsg>;

    /// [`StreamStore::load_last_msg`], but also seeing messages appended and not yet
    /// durable (a file store under `Always` makes loads wait for the fsync). For the
    /// writer's own checks, which must see every earlier publish: the expected last
    /// sequence per subject, a counter's previous total, republish's previous sequence.
    /// Without concurrent publishes in flight both give the same.
    fn load_last_written(&self, filter: &SubjectFilter) -> Result<StoredMsg> {
        self.load_last_msg(filter)
    }

    /// The subject of the message at `seq`.
    fn subject_for_seq(&self, seq: u64) -> Result<String>;

    /// Whether the message `seq` is stored (not removed, not past the end). Cheap: an
    /// index lookup, nothing read or allocated (a consumer checks its unacknowledged
    /// deliveries with it after removals). False on a closed store.
    fn has_msg(&self, seq: u64) -> bool;

    /// Removes a message. Ok(false) if it was not there.
    fn remove_msg(&self, seq: u64) -> Result<bool>;

    /// Removes a message and overwrites its bytes (subject, headers, payload) in storage.
    fn erase_msg(&self, seq: u64) -> Result<bool>;

    /// Removes all messages; returns how many. Sequences are not reused.
    fn purge(&self) -> Result<u64>;

    /// Removes messages matching `filter` with sequence < `seq` (0 = no bound), keeping the
    /// newest `keep` matching messages (0 = keep none). JetStream purge request semantics.
    fn purge_ex(&self, filter: &SubjectFilter, seq: u64, keep: u64) -> Result<u64>;

    /// Removes all messages below `seq`. If `seq` is past the end, the next message gets
    /// `seq`.
    fn compact(&self, seq: u64) -> Result<u64>;

    /// Removes all messages above `seq` and makes `seq` the last sequence (replication
    /// rollback — the only operation that lets a sequence be assigned again).
    fn truncate(&self, seq: u64) -> Result<()>;

    /// First sequence whose timestamp is ≥ `ts` (Unix nanos), `last_seq + 1` if none.
    fn seq_from_time(&self, ts: i64) -> u64;

    /// Count and first/last sequence of messages matching `filter` from `start`.
    fn filtered_state(&self, start: u64, filter: &SubjectFilter) -> SimpleState;

    /// Per-subject state of subjects matching `filter`.
    fn subjects_state(&self, filter: &SubjectFilter) -> HashMap<String, SimpleState>;

    /// Per-subject message counts of subjects matching `filter`.
    fn subjects_totals(&self, filter: &SubjectFilter) -> HashMap<String, u64> {
        self.subjects_state(filter)
            .into_iter()
            .map(|(k, v)| (k, v.msgs))
            .collect()
    }

    /// Messages pending for a consumer starting at `start` with `filter`; with
    /// `last_per_subject`, the number of matching subjects whose last message is ≥ start.
    fn num_pending(&self, start: u64, filter: &SubjectFilter, last_per_subject: bool) -> u64;

    /// Last sequence of every subject matching `filter`, ascending.
    fn last_seqs(&self, filter: &SubjectFilter) -> Vec<u64>;

    /// Full state including the list of interior deleted sequences.
    fn state(&self) -> StreamState;

    /// State without the deleted list (cheap).
    fn fast_state(&self) -> StreamState;

    /// The gauge of the accounted bytes (`fast_state().bytes`): readable without the
    /// store's lock, and attachable to an account's and the server's totals, which the
    /// limit checks of every publish batch read (see [`crate::gauge`]).
    fn bytes_gauge(&self) -> Arc<crate::gauge::BytesGauge>;

    /// The accounted bytes (`fast_state().bytes`) without taking the store's lock.
    fn stored_bytes(&self) -> u64 {
        self.bytes_gauge().get()
    }

    /// The limits in force.
    fn config(&self) -> StoreConfig;

    /// Replaces the limits. Tighter limits are enforced immediately (max_msgs/max_bytes
    /// under discard-old, max_msgs_per_subject always), as nats-server does.
    fn update_config(&self, cfg: StoreConfig) -> Result<()>;

    /// Removes messages whose `max_age` or per-message TTL has passed at `now` (Unix
    /// nanos). Messages stored with `Ttl::Never` are exempt from `max_age`.
    fn expire(&self, now: i64) -> Result<ExpireReport>;

    /// When `expire` next has something to do (Unix nanos). Re-check after every store.
    fn next_expiry(&self) -> Option<i64>;

    /// Persists the server's opaque stream metadata (its config JSON).
    fn write_stream_meta(&self, meta: &[u8]) -> Result<()>;

    /// The stream metadata last written, if any.
    fn stream_meta(&self) -> Result<Option<Vec<u8>>>;

    /// Opens (creating if needed) the store of a durable consumer of this stream.
    fn consumer_store(&self, name: &str, policy: ConsumerPolicy) -> Result<Arc<dyn ConsumerStore>>;

    /// Names of consumers with stored state.
    fn consumer_names(&self) -> Result<Vec<String>>;

    /// Deletes a consumer's stored state.
    fn remove_consumer(&self, name: &str) -> Result<()>;

    /// Flushes and closes. Later calls return `Closed`.
    fn stop(&self) -> Result<()>;

    /// Stops and removes all stored data.
    fn delete(&self) -> Result<()>;

    /// Moves an open store's directory to `new_dir` and switches its durability,
    /// without closing it (see `FileStore::move_dir`). A store without a directory
    /// refuses.
    fn move_to(&self, new_dir: &std::path::Path, durability: Durability) -> Result<()> {
        let _ = (new_dir, durability);
        Err(crate::error::StoreError::InvalidArgument(
            "this store has no directory to move".into(),
        ))
    }
}

/// Messages of a store as of one moment, in sequence order (see
/// [`StreamStore::pinned_view`]).
pub trait PinnedView: Send {
    /// The last sequence the view covers.
    fn watermark(&self) -> u64;

    /// The stream's state (as [`StreamStore::fast_state`]) when the view was taken, as
    /// of the watermark: messages above it (stored but not yet durable then) are left
    /// out, so it describes exactly what the view holds.
    fn state(&self) -> StreamState;

    /// The next message, ascending; `None` after the watermark.
    fn next_msg(&mut self) -> Result<Option<StoredMsg>>;

    /// For an incremental backup, before the first read: leave out every message with a
    /// sequence ≤ `since` (an earlier backup holds them) and return the sequences in
    /// `1..=min(since, watermark)` the view does *not* hold — removed before the view was
    /// taken — as ascending, disjoint, inclusive ranges (the backup's tombstones).
    fn split_at(&mut self, since: u64) -> Result<Vec<(u64, u64)>>;

    /// The next messages, ascending, about `max_bytes` of them, into `out` (cleared
    /// first); false when the view is exhausted. `store` is the store the view was taken
    /// of (stores read their live messages in bulk through it). The default calls
    /// [`PinnedView::next_msg`].
    fn next_batch(
        &mut self,
        store: &dyn StreamStore,
        max_bytes: usize,
        out: &mut MsgBatch,
    ) -> Result<bool> {
        let _ = store;
        out.clear();
        while out.bytes() < max_bytes {
            match self.next_msg()? {
                Some(m) => out.push(m.as_msg_ref()),
                None => return Ok(!out.is_empty()),
            }
        }
        Ok(true)
    }
}

/// Messages owned in one buffer (a batch of a [`PinnedView`]): no allocation per
/// message, reused from batch to batch.
#[derive(Debug, Default)]
pub struct MsgBatch {
    buf: Vec<u8>,
    items: Vec<BatchItem>,
}

/// Where one message of a [`MsgBatch`] lies in its buffer.
#[derive(Debug, Clone, Copy)]
struct BatchItem {
    seq: u64,
    ts: i64,
    off: usize,
    subj: usize,
    hdrs: usize,
    payload: usize,
}

impl MsgBatch {
    /// Empty it (keeping its memory).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.items.clear();
    }

    /// Copy a message in.
    pub fn push(&mut self, m: MsgRef<'_>) {
        let off = self.buf.len();
        self.buf.extend_from_slice(m.subject.as_bytes());
        self.buf.extend_from_slice(m.hdrs);
        self.buf.extend_from_slice(m.payload);
        self.items.push(BatchItem {
            seq: m.seq,
            ts: m.ts,
            off,
            subj: m.subject.len(),
            hdrs: m.hdrs.len(),
            payload: m.payload.len(),
        });
    }

    /// Messages held.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// No messages.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// Whether a sequence is in the batch.
    pub fn contains(&self, seq: u64) -> bool {
        self.items.iter().any(|i| i.seq == seq)
    }

    /// Put the messages in sequence order (after merging two sources).
    pub fn sort(&mut self) {
        self.items.sort_by_key(|i| i.seq);
    }

    /// The messages, in the batch's order.
    pub fn iter(&self) -> impl Iterator<Item = MsgRef<'_>> {
        self.items.iter().map(|i| {
            let s = i.off;
            let h = s + i.subj;
            let p = h + i.hdrs;
            MsgRef {
                seq: i.seq,
                ts: i.ts,
                // Pushed from a `&str`.
                subject: std::str::from_utf8(&self.buf[s..h]).unwrap_or(""),
                hdrs: &self.buf[h..p],
                payload: &self.buf[p..p + i.payload],
            }
        })
    }
}

/// [`StreamStore::load_next_run`] of just the next message (through
/// [`StreamStore::load_next_msg`]): empty when there is none.
pub fn load_next_one<S: StreamStore + ?Sized>(store: &S, start: u64) -> Result<Vec<StoredMsg>> {
    match store.load_next_msg(&SubjectFilter::all(), start) {
        Ok(m) => Ok(vec![m]),
        Err(crate::StoreError::Eof) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// [`StreamStore::read_batch`] through [`StreamStore::load_next_msg`]; reads at least one
/// message when there is one.
pub fn read_batch_one_by_one<S: StreamStore + ?Sized>(
    store: &S,
    start: u64,
    end: u64,
    max_bytes: usize,
    f: &mut dyn FnMut(MsgRef<'_>) -> bool,
) -> Result<u64> {
    let all = SubjectFilter::all();
    let done = end.saturating_add(1);
    let mut seq = start;
    let mut read = 0usize;
    loop {
        if seq > end {
            return Ok(done);
        }
        match store.load_next_msg(&all, seq) {
            Ok(m) if m.seq <= end => {
                read += m.subject.len() + m.hdrs.len() + m.payload.len();
                seq = m.seq + 1;
                let go_on = f(m.as_msg_ref());
                if !go_on || read >= max_bytes {
                    return Ok(seq);
                }
            }
            Ok(_) | Err(crate::StoreError::Eof) | Err(crate::StoreError::NotFound) => {
                return Ok(done);
            }
            Err(e) => return Err(e),
        }
    }
}

/// The sequences of `1..=upto` missing from `present` (ascending, may hold values
/// outside the range) as ascending inclusive ranges: what [`PinnedView::split_at`]
/// returns.
pub fn absent_ranges(present: impl Iterator<Item = u64>, upto: u64) -> Vec<(u64, u64)> {
    absent_ranges_of_runs(present.map(|s| (s, s)), upto)
}

/// [`absent_ranges`] of present sequences given as inclusive runs `(first, last)`,
/// ascending by `first` (runs may overlap): a contiguous stretch costs one step, not
/// one per sequence.
pub fn absent_ranges_of_runs(
    present: impl Iterator<Item = (u64, u64)>,
    upto: u64,
) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut next = 1u64;
    for (a, b) in present {
        if a > upto {
            break;
        }
        if b < next {
            continue;
        }
        if a > next {
            out.push((next, a - 1));
        }
        next = b.saturating_add(1);
    }
    if upto >= next {
        out.push((next, upto));
    }
    out
}

#[cfg(test)]
mod absent_tests {
    use super::absent_ranges;

    #[test]
    fn absent_ranges_cover_the_gaps() {
        assert_eq!(absent_ranges([].into_iter(), 0), vec![]);
        assert_eq!(absent_ranges([].into_iter(), 3), vec![(1, 3)]);
        assert_eq!(
            absent_ranges([3, 4, 6, 9, 12].into_iter(), 10),
            vec![(1, 2), (5, 5), (7, 8), (10, 10)]
        );
        assert_eq!(absent_ranges([1, 2, 3].into_iter(), 3), vec![]);
        // Duplicates (live and held at once) count once.
        assert_eq!(
            absent_ranges([2, 2, 3].into_iter(), 4),
            vec![(1, 1), (4, 4)]
        );
    }

    #[test]
    fn runs_give_the_same_as_their_sequences() {
        use super::absent_ranges_of_runs;
        let cases: &[&[(u64, u64)]] = &[
            &[],
            &[(1, 10)],
            &[(3, 5), (4, 8), (8, 8), (12, 20)],
            &[(2, 2), (2, 6), (3, 4), (9, 1_000)],
            &[(5, u64::MAX)],
        ];
        for runs in cases {
            for upto in [0u64, 1, 4, 7, 10, 15, 30] {
                let seqs = runs.iter().flat_map(|&(a, b)| a..=b.min(40));
                assert_eq!(
                    absent_ranges_of_runs(runs.iter().copied(), upto),
                    absent_ranges(seqs, upto),
                    "{runs:?} up to {upto}"
                );
            }
        }
    }
}
