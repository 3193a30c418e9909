//! The consumer machine's view of a stream's store.
//!
//! Why a cache: the machine asks "what is the next matching message after N?" and then
//! the driver needs that very message to deliver it. The store answers the first question
//! by loading the message, so we keep it and hand it to the driver instead of loading it
//! twice. The pending count (the last token of every ack subject) is kept the same way:
//! computed once per delivery cycle and counted down as messages are handed out, because
//! counting from scratch can cost O(stream) per message.
//!
//! A source lives for one delivery cycle; messages appended meanwhile make its pending
//! count an underestimate until the next cycle, never an overestimate of what was stored.
//!
//! Read-ahead: a consumer without a filter reads the stream message by message, so on a
//! miss the source asks the store for a run of messages at once
//! ([`StreamStore::load_next_run`]: one `pread` for the run in a file store, instead of
//! one per message) and answers the next calls from it. A run holds every message stored
//! in the sequence range it covers when it was read, so "next matching after N" within
//! that range is answered from memory; messages removed meanwhile are handed out as they
//! were read, as the single-message cache always did within a cycle.

use super::machine::{Source, dec_digits};
use natrium_store::{StoreError, StoredMsg, StreamStore, SubjectFilter};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

/// Most messages one read-ahead loads (about one delivery cycle's worth).
const READ_AHEAD_MSGS: usize = 128;
/// Most bytes one read-ahead loads (beyond the first message).
const READ_AHEAD_BYTES: usize = 256 * 1024;

/// One cycle's view of a stream for one consumer.
pub struct StoreSource<'a> {
    /// The stream's store.
    store: &'a dyn StreamStore,
    /// The consumer's filter.
    filter: &'a SubjectFilter,
    /// Messages loaded and not yet taken, in sequence order: every message matching the
    /// filter with a sequence in `covered` (as of loading), less those taken.
    cached: RefCell<VecDeque<StoredMsg>>,
    /// `(from, to)`: the sequence range `cached` answers for.
    covered: Cell<Option<(u64, u64)>>,
    /// `(from, found)` of the last `next_matching` call that found something.
    last_next: Cell<Option<(u64, u64)>>,
    /// `(start, count)` of the last pending count.
    pending: Cell<Option<(u64, u64)>>,
    /// Deliveries carry headers only (sizes count the converted header block).
    headers_only: bool,
    /// Whether a miss loads a run of messages (off for a one-look source).
    read_ahead: bool,
}

impl<'a> StoreSource<'a> {
    /// A view of `store` through `filter`.
    pub fn new(store: &'a dyn StreamStore, filter: &'a SubjectFilter) -> Self {
        StoreSource {
            store,
            filter,
            cached: RefCell::new(VecDeque::new()),
            covered: Cell::new(None),
            last_next: Cell::new(None),
            pending: Cell::new(None),
            headers_only: false,
            read_ahead: true,
        }
    }

    /// A source asked about one message at most (whether a `no_wait` pull request has
    /// anything to get): a run read ahead would be dropped unused.
    pub fn without_read_ahead(mut self) -> Self {
        self.read_ahead = false;
        self
    }

    /// Sizes as a `headers_only` consumer delivers the messages.
    pub fn with_headers_only(mut self, on: bool) -> Self {
        self.headers_only = on;
        self
    }

    /// What a message counts against a pull request's `max_bytes` besides its ack reply.
    fn size_of(&self, m: &StoredMsg) -> u64 {
        if self.headers_only {
            headers_only_size(m)
        } else {
            msg_size(m)
        }
    }

    /// The message at `seq`, from the cache when `next_matching` just found it.
    ///
    /// Taking a loaded message drops the ones before it too, and the range answered from
    /// memory then starts after it (deliveries go forward; anything earlier is loaded).
    pub fn take(&self, seq: u64) -> Result<StoredMsg, StoreError> {
        let mut cached = self.cached.borrow_mut();
        if let Ok(i) = cached.binary_search_by_key(&seq, |m| m.seq) {
            let m = cached.drain(..=i).last();
            if let Some((_, to)) = self.covered.get() {
                self.covered
                    .set((seq < to && !cached.is_empty()).then_some((seq + 1, to)));
            }
            if let Some(m) = m {
                return Ok(m);
            }
        }
        drop(cached);
        self.store.load_msg(seq)
    }

    /// Runs `f` on the loaded message `seq`, if it is loaded.
    fn with_cached<R>(&self, seq: u64, f: impl FnOnce(&StoredMsg) -> R) -> Option<R> {
        let cached = self.cached.borrow();
        let i = cached.binary_search_by_key(&seq, |m| m.seq).ok()?;
        cached.get(i).map(f)
    }

    /// The timestamp of the message `next_matching` just found, if it is `seq`.
    pub fn peek_ts(&self, seq: u64) -> Option<i64> {
        self.with_cached(seq, |m| m.ts)
    }

    /// Loads what comes at or after `seq` into `cached`; returns the first message's
    /// sequence and size.
    fn load_from(&self, seq: u64) -> Option<(u64, u64)> {
        if self.read_ahead && self.filter.is_all() {
            let run = self
                .store
                .load_next_run(seq, READ_AHEAD_MSGS, READ_AHEAD_BYTES)
                .ok()?;
            let (first, last) = (run.first()?.seq, run.last()?.seq);
            let size = run.first().map(|m| self.size_of(m))?;
            *self.cached.borrow_mut() = run.into();
            self.covered.set(Some((seq, last)));
            return Some((first, size));
        }
        let m = self.store.load_next_msg(self.filter, seq).ok()?;
        let r = (m.seq, self.size_of(&m));
        self.covered.set(Some((seq, m.seq)));
        *self.cached.borrow_mut() = VecDeque::from([m]);
        Some(r)
    }

    fn count_from(&self, start: u64) -> u64 {
        if self.filter.is_all() {
            let st = self.store.fast_state();
            if st.msgs == 0 || start > st.last_seq {
                return 0;
            }
            // Without interior deletes the count is plain arithmetic.
            if st.last_seq + 1 - st.first_seq == st.msgs {
                return st.last_seq + 1 - start.max(st.first_seq);
            }
        }
        self.store.num_pending(start, self.filter, false)
    }
}

impl Source for StoreSource<'_> {
    fn next_matching(&self, seq: u64) -> Option<(u64, u64)> {
        let hit = self
            .covered
            .get()
            .filter(|&(from, to)| from <= seq && seq <= to)
            .and_then(|_| {
                let cached = self.cached.borrow();
                cached
                    .get(cached.partition_point(|m| m.seq < seq))
                    .map(|m| (m.seq, self.size_of(m)))
            });
        let r = match hit {
            Some(r) => r,
            None => self.load_from(seq)?,
        };
        self.last_next.set(Some((seq, r.0)));
        Some(r)
    }

    fn exists(&self, seq: u64) -> bool {
        if self.with_cached(seq, |_| ()).is_some() {
            return true;
        }
        self.store.has_msg(seq)
    }

    fn size(&self, seq: u64) -> Option<u64> {
        if let Some(s) = self.with_cached(seq, |m| self.size_of(m)) {
            return Some(s);
        }
        self.store.load_msg(seq).ok().map(|m| self.size_of(&m))
    }

    fn last_seq(&self) -> u64 {
        self.store.fast_state().last_seq
    }

    fn ts_digits(&self, seq: u64) -> u64 {
        let digits = |ts: i64| dec_digits(ts.unsigned_abs()) + u64::from(ts < 0);
        if let Some(d) = self.with_cached(seq, |m| digits(m.ts)) {
            return d;
        }
        self.store.load_msg(seq).map_or(19, |m| digits(m.ts))
    }

    fn num_pending(&self, start: u64) -> u64 {
        if let Some((s, c)) = self.pending.get() {
            if s == start {
                return c;
            }
            // Just handed out the only match between the old start and the new one.
            if let Some((from, found)) = self.last_next.get()
                && from <= s
                && s <= found
                && start == found + 1
            {
                let c = c.saturating_sub(1);
                self.pending.set(Some((start, c)));
                return c;
            }
        }
        let c = self.count_from(start);
        self.pending.set(Some((start, c)));
        c
    }
}

/// What a message counts against a pull request's `max_bytes` (nats-server counts
/// subject, headers and payload, and the ack reply, which the machine adds).
pub fn msg_size(m: &StoredMsg) -> u64 {
    (m.subject.len() + m.hdrs.len() + m.payload.len()) as u64
}

/// [`msg_size`] of the headers-only form the driver delivers: the header block (or
/// `NATS/1.0`) plus `Nats-Msg-Size: <n>`, no payload.
pub fn headers_only_size(m: &StoredMsg) -> u64 {
    let base = if m.hdrs.is_empty() {
        b"NATS/1.0\r\n".len()
    } else {
        m.hdrs
            .strip_suffix(b"\r\n")
            .map_or(m.hdrs.len(), <[u8]>::len)
    };
    let n = m.payload.len() as u64;
    m.subject.len() as u64 + base as u64 + "Nats-Msg-Size: ".len() as u64 + dec_digits(n) + 4
}
