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

use super::machine::Source;
use natrium_store::{StoreError, StoredMsg, StreamStore, SubjectFilter};
use std::cell::{Cell, RefCell};

/// One cycle's view of a stream for one consumer.
pub struct StoreSource<'a> {
    /// The stream's store.
    store: &'a dyn StreamStore,
    /// The consumer's filter.
    filter: &'a SubjectFilter,
    /// The last message `next_matching` found.
    cached: RefCell<Option<StoredMsg>>,
    /// `(from, found)` of the last `next_matching` call that found something.
    last_next: Cell<Option<(u64, u64)>>,
    /// `(start, count)` of the last pending count.
    pending: Cell<Option<(u64, u64)>>,
    /// Deliveries carry headers only (sizes count the converted header block).
    headers_only: bool,
}

impl<'a> StoreSource<'a> {
    /// A view of `store` through `filter`.
    pub fn new(store: &'a dyn StreamStore, filter: &'a SubjectFilter) -> Self {
        StoreSource {
            store,
            filter,
            cached: RefCell::new(None),
            last_next: Cell::new(None),
            pending: Cell::new(None),
            headers_only: false,
        }
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
    pub fn take(&self, seq: u64) -> Result<StoredMsg, StoreError> {
        if let Some(m) = self.cached.borrow_mut().take_if(|m| m.seq == seq) {
            return Ok(m);
        }
        self.store.load_msg(seq)
    }

    /// The timestamp of the message `next_matching` just found, if it is `seq`.
    pub fn peek_ts(&self, seq: u64) -> Option<i64> {
        self.cached
            .borrow()
            .as_ref()
            .filter(|m| m.seq == seq)
            .map(|m| m.ts)
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
        if let Some(m) = self.cached.borrow().as_ref()
            && self
                .last_next
                .get()
                .is_some_and(|(from, found)| from <= seq && seq <= found)
        {
            return Some((m.seq, self.size_of(m)));
        }
        match self.store.load_next_msg(self.filter, seq) {
            Ok(m) => {
                let r = (m.seq, self.size_of(&m));
                self.last_next.set(Some((seq, m.seq)));
                *self.cached.borrow_mut() = Some(m);
                Some(r)
            }
            Err(_) => None,
        }
    }

    fn exists(&self, seq: u64) -> bool {
        if self.cached.borrow().as_ref().is_some_and(|m| m.seq == seq) {
            return true;
        }
        self.store.load_msg(seq).is_ok()
    }

    fn size(&self, seq: u64) -> Option<u64> {
        if let Some(m) = self.cached.borrow().as_ref()
            && m.seq == seq
        {
            return Some(self.size_of(m));
        }
        self.store.load_msg(seq).ok().map(|m| self.size_of(&m))
    }

    fn last_seq(&self) -> u64 {
        self.store.fast_state().last_seq
    }

    fn ts_digits(&self, seq: u64) -> u64 {
        let digits = |ts: i64| {
            ts.unsigned_abs()
                .checked_ilog10()
                .map_or(1, |d| u64::from(d) + 1)
                + u64::from(ts < 0)
        };
        if let Some(m) = self.cached.borrow().as_ref()
            && m.seq == seq
        {
            return digits(m.ts);
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
    let digits = n.checked_ilog10().map_or(1, |d| u64::from(d) + 1);
    m.subject.len() as u64 + base as u64 + "Nats-Msg-Size: ".len() as u64 + digits + 4
}
