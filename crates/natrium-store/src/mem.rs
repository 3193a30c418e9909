//! [`MemStore`]: a stream store kept entirely in memory (JetStream `storage: memory`).
//!
//! Why it is thin: all semantics live in `crate::index::StreamIndex`; the memory store
//! only keeps each message's headers and payload in one reference-counted buffer, so loads
//! hand out zero-copy [`Bytes`] slices. Byte accounting uses nats-server's memory formula
//! ([`crate::mem_msg_size`]). Nothing survives a restart; `wait_durable` is a no-op.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use crate::HARD_MAX_MSG_SIZE;
use crate::consumer::{ConsumerPolicy, ConsumerStore, MemConsumerStore};
use crate::error::{Result, StoreError};
use crate::index::{Removed, StreamIndex};
use crate::stream::StreamStore;
use crate::subject::{SubjectFilter, validate_subject};
use crate::types::{
    Clock, Durability, ExpireReport, GroupAck, GroupMsg, SimpleState, StorageType, StoreAck,
    StoreConfig, StoredMsg, StreamState, SystemClock, Ticket, Ttl, mem_msg_size,
};

/// One message's bytes: headers followed by payload.
#[derive(Debug, Clone)]
struct MemData {
    /// Headers ++ payload.
    buf: Bytes,
    /// Length of the header part.
    hdr_len: u32,
}

/// Lock-protected state.
#[derive(Debug)]
struct Inner {
    /// The logical state.
    ix: StreamIndex<MemData>,
    /// Stopped or deleted.
    closed: bool,
    /// Reused buffer for removals.
    scratch: Vec<Removed<MemData>>,
    /// Erased sequences, per live pinned view.
    views: Vec<std::sync::Weak<Mutex<std::collections::HashSet<u64>>>>,
}

/// In-memory stream store.
#[derive(Debug)]
pub struct MemStore {
    /// State.
    inner: RwLock<Inner>,
    /// Time source.
    clock: Arc<dyn Clock>,
    /// Consumer stores by name.
    consumers: Mutex<HashMap<String, Arc<MemConsumerStore>>>,
    /// Opaque stream metadata.
    meta: Mutex<Option<Vec<u8>>>,
    /// The index's bytes gauge.
    bytes: Arc<crate::gauge::BytesGauge>,
}

impl MemStore {
    /// A new empty store using the wall clock.
    pub fn new(cfg: StoreConfig) -> Self {
        Self::with_clock(cfg, Arc::new(SystemClock))
    }

    /// A new empty store with a given clock.
    pub fn with_clock(cfg: StoreConfig, clock: Arc<dyn Clock>) -> Self {
        let ix = StreamIndex::new(cfg, mem_msg_size);
        let bytes = ix.bytes_gauge();
        MemStore {
            inner: RwLock::new(Inner {
                ix,
                closed: false,
                scratch: Vec::new(),
                views: Vec::new(),
            }),
            clock,
            consumers: Mutex::new(HashMap::new()),
            meta: Mutex::new(None),
            bytes,
        }
    }

    fn to_msg(ix: &StreamIndex<MemData>, seq: u64) -> Result<StoredMsg> {
        let e = ix.get(seq).ok_or(if seq > ix.last_seq() {
            StoreError::Eof
        } else {
            StoreError::NotFound
        })?;
        let h = e.data.hdr_len as usize;
        Ok(StoredMsg {
            seq,
            ts: e.ts,
            subject: ix.subject_name(e.subj).to_string(),
            hdrs: e.data.buf.slice(..h),
            payload: e.data.buf.slice(h..),
            ttl: Ttl::decode(e.ttl),
        })
    }

    fn read(&self) -> Result<parking_lot::RwLockReadGuard<'_, Inner>> {
        let g = self.inner.read();
        if g.closed {
            return Err(StoreError::Closed);
        }
        Ok(g)
    }

    fn write(&self) -> Result<parking_lot::RwLockWriteGuard<'_, Inner>> {
        let g = self.inner.write();
        if g.closed {
            return Err(StoreError::Closed);
        }
        Ok(g)
    }

    #[allow(clippy::too_many_arguments)]
    fn store_locked(
        inner: &mut Inner,
        subject: &str,
        hdrs: &[u8],
        payload: &[u8],
        seq: u64,
        ts: i64,
        ttl: Option<Ttl>,
        discard_new_check: bool,
    ) -> Result<()> {
        validate_subject(subject)?;
        let size = (hdrs.len() + payload.len()) as u64;
        if size > HARD_MAX_MSG_SIZE {
            return Err(StoreError::MsgTooLarge {
                size,
                limit: HARD_MAX_MSG_SIZE,
            });
        }
        inner
            .ix
            .check_store(subject, hdrs, payload.len(), discard_new_check)?;
        let mut buf = Vec::with_capacity(hdrs.len() + payload.len());
        buf.extend_from_slice(hdrs);
        buf.extend_from_slice(payload);
        let data = MemData {
            buf: Bytes::from(buf),
            hdr_len: hdrs.len() as u32,
        };
        let acc = inner.ix.msg_size(subject.len(), hdrs.len(), payload.len());
        let Inner { ix, scratch, .. } = inner;
        scratch.clear();
        ix.insert(seq, ts, subject, Ttl::encode(ttl), acc, data, scratch);
        scratch.clear();
        Ok(())
    }
}

impl StreamStore for MemStore {
    fn storage_type(&self) -> StorageType {
        StorageType::Memory
    }

    fn durability(&self) -> Durability {
        Durability::Memory
    }

    fn msg_size(&self, subject: &str, hdrs: &[u8], payload: &[u8]) -> u64 {
        mem_msg_size(subject.len(), hdrs.len(), payload.len())
    }

    fn append_msg(
        &self,
        subject: &str,
        hdrs: &[u8],
        payload: &[u8],
        ttl: Option<Ttl>,
    ) -> Result<StoreAck> {
        let mut g = self.write()?;
        let seq = g.ix.last_seq() + 1;
        let ts = self.clock.now().max(g.ix.last_ts());
        Self::store_locked(&mut g, subject, hdrs, payload, seq, ts, ttl, true)?;
        Ok(StoreAck {
            seq,
            ts,
            ticket: Ticket::DONE,
        })
    }

    fn store_raw_msg(
        &self,
        subject: &str,
        hdrs: &[u8],
        payload: &[u8],
        seq: u64,
        ts: i64,
        ttl: Option<Ttl>,
        discard_new_check: bool,
    ) -> Result<()> {
        let mut g = self.write()?;
        let expected = g.ix.last_seq() + 1;
        let seq = match seq {
            0 => expected,
            s if s == expected => s,
            s => return Err(StoreError::SequenceMismatch { expected, got: s }),
        };
        Self::store_locked(
            &mut g,
            subject,
            hdrs,
            payload,
            seq,
            ts,
            ttl,
            discard_new_check,
        )
    }

    fn append_group(&self, msgs: &[GroupMsg<'_>]) -> Result<GroupAck> {
        let mut g = self.write()?;
        let before = g.ix.last_seq();
        let mut stored = Vec::with_capacity(msgs.len());
        for m in msgs {
            let seq = g.ix.last_seq() + 1;
            let now = self.clock.now();
            let ts = now.max(g.ix.last_ts());
            let r = if m.skip {
                g.ix.skip(seq, 1);
                g.ix.note_skip_time(now, true);
                Ok(())
            } else {
                Self::store_locked(&mut g, m.subject, m.hdrs, m.payload, seq, ts, m.ttl, true)
            };
            if let Err(e) = r {
                // Take the group back: nothing of it may stay.
                let Inner { ix, scratch, .. } = &mut *g;
                scratch.clear();
                ix.truncate(before, scratch);
                scratch.clear();
                return Err(e);
            }
            stored.push((seq, ts));
        }
        Ok(GroupAck {
            stored,
            ticket: Ticket::DONE,
        })
    }

    fn skip_msg(&self, seq: u64) -> Result<u64> {
        let mut g = self.write()?;
        let expected = g.ix.last_seq() + 1;
        if seq != 0 && seq != expected {
            return Err(StoreError::SequenceMismatch { expected, got: seq });
        }
        g.ix.skip(expected, 1);
        let now = self.clock.now();
        g.ix.note_skip_time(now, true);
        Ok(expected)
    }

    fn skip_msgs(&self, seq: u64, num: u64) -> Result<()> {
        let mut g = self.write()?;
        let expected = g.ix.last_seq() + 1;
        if seq != 0 && seq != expected {
            return Err(StoreError::SequenceMismatch { expected, got: seq });
        }
        g.ix.skip(expected, num);
        let now = self.clock.now();
        g.ix.note_skip_time(now, false);
        Ok(())
    }

    fn wait_durable(&self, _ticket: Ticket) -> Result<()> {
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        self.read().map(|_| ())
    }

    fn load_msg(&self, seq: u64) -> Result<StoredMsg> {
        let g = self.read()?;
        Self::to_msg(&g.ix, seq)
    }

    /// A memory store's view is a copy of its index up to the watermark: payloads are
    /// shared (reference-counted), only the per-message metadata is copied.
    fn pinned_view(&self, watermark: u64) -> Result<Box<dyn crate::stream::PinnedView>> {
        let mut g = self.write()?;
        let erased = Arc::new(Mutex::new(std::collections::HashSet::new()));
        g.views.retain(|w| w.strong_count() > 0);
        g.views.push(Arc::downgrade(&erased));
        let watermark = watermark.min(g.ix.last_seq());
        let state = g.ix.state_at(watermark);
        let all = SubjectFilter::all();
        let mut msgs = Vec::new();
        let mut seq = g.ix.first_seq().max(1);
        while seq <= watermark {
            let Some(s) = g.ix.next_match(&all, seq, watermark) else {
                break;
            };
            msgs.push(Self::to_msg(&g.ix, s)?);
            seq = s + 1;
        }
        Ok(Box::new(MemPinnedView {
            watermark,
            state,
            msgs: msgs.into_iter(),
            erased,
        }))
    }

    fn load_next_msg(&self, filter: &SubjectFilter, start: u64) -> Result<StoredMsg> {
        let g = self.read()?;
        let last = g.ix.last_seq();
        match g.ix.next_match(filter, start, last) {
            Some(s) => Self::to_msg(&g.ix, s),
            None => Err(StoreError::Eof),
        }
    }

    fn load_prev_msg(&self, filter: &SubjectFilter, start: u64) -> Result<StoredMsg> {
        let g = self.read()?;
        if start < g.ix.first_seq() {
            return Err(StoreError::Eof);
        }
        match g.ix.prev_match(filter, start) {
            Some(s) => Self::to_msg(&g.ix, s),
            None => Err(StoreError::NotFound),
        }
    }

    fn load_last_msg(&self, filter: &SubjectFilter) -> Result<StoredMsg> {
        let g = self.read()?;
        match g.ix.last_match(filter, g.ix.last_seq()) {
            Some(s) => Self::to_msg(&g.ix, s),
            None => Err(StoreError::NotFound),
        }
    }

    fn subject_for_seq(&self, seq: u64) -> Result<String> {
        let g = self.read()?;
        g.ix.get(seq)
            .map(|e| g.ix.subject_name(e.subj).to_string())
            .ok_or(StoreError::NotFound)
    }

    fn has_msg(&self, seq: u64) -> bool {
        self.read().is_ok_and(|g| g.ix.get(seq).is_some())
    }

    fn remove_msg(&self, seq: u64) -> Result<bool> {
        Ok(self.write()?.ix.remove(seq).is_some())
    }

    fn erase_msg(&self, seq: u64) -> Result<bool> {
        let mut g = self.write()?;
        let Some(e) = g.ix.remove(seq) else {
            return Ok(false);
        };
        // Views hold their own copy; tell them the erase wins.
        g.views.retain(|w| w.strong_count() > 0);
        for v in &g.views {
            if let Some(v) = v.upgrade() {
                v.lock().insert(seq);
            }
        }
        drop(g);
        // Overwrite the bytes unless a reader still holds a reference (it keeps its copy,
        // as with any read that completed before the erase).
        if let Ok(mut b) = e.data.buf.try_into_mut() {
            b.fill(0);
        }
        Ok(true)
    }

    fn purge(&self) -> Result<u64> {
        let mut g = self.write()?;
        let Inner { ix, scratch, .. } = &mut *g;
        scratch.clear();
        let n = ix.purge_all(scratch);
        scratch.clear();
        Ok(n)
    }

    fn purge_ex(&self, filter: &SubjectFilter, seq: u64, keep: u64) -> Result<u64> {
        let mut g = self.write()?;
        let Inner { ix, scratch, .. } = &mut *g;
        scratch.clear();
        let n = ix.purge_ex(filter, seq, keep, scratch);
        scratch.clear();
        Ok(n)
    }

    fn compact(&self, seq: u64) -> Result<u64> {
        let mut g = self.write()?;
        let Inner { ix, scratch, .. } = &mut *g;
        scratch.clear();
        let n = ix.compact(seq, scratch);
        scratch.clear();
        Ok(n)
    }

    fn truncate(&self, seq: u64) -> Result<()> {
        let mut g = self.write()?;
        let Inner { ix, scratch, .. } = &mut *g;
        scratch.clear();
        ix.truncate(seq, scratch);
        scratch.clear();
        Ok(())
    }

    fn seq_from_time(&self, ts: i64) -> u64 {
        self.inner.read().ix.seq_from_time(ts)
    }

    fn filtered_state(&self, start: u64, filter: &SubjectFilter) -> SimpleState {
        self.inner.read().ix.filtered_state(start, filter)
    }

    fn subjects_state(&self, filter: &SubjectFilter) -> HashMap<String, SimpleState> {
        self.inner
            .read()
            .ix
            .subjects_state(filter)
            .into_iter()
            .collect()
    }

    fn num_pending(&self, start: u64, filter: &SubjectFilter, last_per_subject: bool) -> u64 {
        self.inner
            .read()
            .ix
            .num_pending(start, filter, last_per_subject)
    }

    fn last_seqs(&self, filter: &SubjectFilter) -> Vec<u64> {
        self.inner.read().ix.last_seqs(filter)
    }

    fn state(&self) -> StreamState {
        self.inner.read().ix.state(true)
    }

    fn fast_state(&self) -> StreamState {
        self.inner.read().ix.state(false)
    }

    fn bytes_gauge(&self) -> Arc<crate::gauge::BytesGauge> {
        self.bytes.clone()
    }

    fn config(&self) -> StoreConfig {
        self.inner.read().ix.config().clone()
    }

    fn update_config(&self, cfg: StoreConfig) -> Result<()> {
        let mut g = self.write()?;
        let Inner { ix, scratch, .. } = &mut *g;
        scratch.clear();
        ix.update_config(cfg, scratch);
        scratch.clear();
        Ok(())
    }

    fn expire(&self, now: i64) -> Result<ExpireReport> {
        let mut g = self.write()?;
        let Inner { ix, scratch, .. } = &mut *g;
        scratch.clear();
        let rep = ix.expire(now, scratch);
        scratch.clear();
        Ok(rep)
    }

    fn next_expiry(&self) -> Option<i64> {
        self.inner.read().ix.next_expiry()
    }

    fn write_stream_meta(&self, meta: &[u8]) -> Result<()> {
        let _g = self.read()?;
        *self.meta.lock() = Some(meta.to_vec());
        Ok(())
    }

    fn stream_meta(&self) -> Result<Option<Vec<u8>>> {
        let _g = self.read()?;
        Ok(self.meta.lock().clone())
    }

    fn consumer_store(&self, name: &str, policy: ConsumerPolicy) -> Result<Arc<dyn ConsumerStore>> {
        let _g = self.read()?;
        let mut c = self.consumers.lock();
        let cs = c
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(MemConsumerStore::new(name, policy)))
            .clone();
        Ok(cs)
    }

    fn consumer_names(&self) -> Result<Vec<String>> {
        let _g = self.read()?;
        let mut v: Vec<String> = self.consumers.lock().keys().cloned().collect();
        v.sort();
        Ok(v)
    }

    fn remove_consumer(&self, name: &str) -> Result<()> {
        if let Some(c) = self.consumers.lock().remove(name) {
            c.delete()?;
        }
        Ok(())
    }

    fn stop(&self) -> Result<()> {
        self.inner.write().closed = true;
        for c in self.consumers.lock().values() {
            c.stop()?;
        }
        Ok(())
    }

    fn delete(&self) -> Result<()> {
        let mut g = self.inner.write();
        g.closed = true;
        let Inner { ix, scratch, .. } = &mut *g;
        ix.purge_all(scratch);
        scratch.clear();
        for (_, c) in self.consumers.lock().drain() {
            c.delete()?;
        }
        Ok(())
    }
}

/// A point-in-time copy of a memory store (see [`StreamStore::pinned_view`]).
#[derive(Debug)]
struct MemPinnedView {
    watermark: u64,
    /// The state as of the watermark, taken with the view.
    state: StreamState,
    msgs: std::vec::IntoIter<StoredMsg>,
    /// Sequences erased since the view was taken (left out).
    erased: Arc<Mutex<std::collections::HashSet<u64>>>,
}

impl crate::stream::PinnedView for MemPinnedView {
    fn watermark(&self) -> u64 {
        self.watermark
    }

    fn state(&self) -> StreamState {
        self.state.clone()
    }

    fn split_at(&mut self, since: u64) -> Result<Vec<(u64, u64)>> {
        let upto = since.min(self.watermark);
        let slice = self.msgs.as_slice();
        let absent = crate::stream::absent_ranges(slice.iter().map(|m| m.seq), upto);
        let skip = slice.partition_point(|m| m.seq <= since);
        if skip > 0 {
            self.msgs.nth(skip - 1);
        }
        Ok(absent)
    }

    fn next_msg(&mut self) -> Result<Option<StoredMsg>> {
        for m in self.msgs.by_ref() {
            if !self.erased.lock().contains(&m.seq) {
                return Ok(Some(m));
            }
        }
        Ok(None)
    }
}
