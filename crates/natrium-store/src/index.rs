//! The logical stream state machine shared by [`crate::MemStore`] and
//! [`crate::FileStore`].
//!
//! Why shared: every JetStream semantic — sequence assignment, limits and discard
//! policies, per-subject limits, purge with filter/seq/keep, compact, truncate, filtered
//! state, num-pending, expiry — lives here exactly once, generic over `T`, the per-message
//! payload handle (the bytes themselves for the memory store, a file location for the file
//! store). The conformance suite then checks both stores against one implementation of the
//! rules, and the file store only adds persistence around it.
//!
//! Data structures (all in memory):
//! * `msgs: BTreeMap<seq, Entry<T>>` — O(log n) lookup and ordered range scans; sparse
//!   sequences (huge skips) cost nothing.
//! * `subjects` — an interner (subject → id) plus, per subject, the ascending list of its
//!   live sequences. Count, first and last per subject are O(1); "first ≥ seq" is a binary
//!   search. This backs `max_msgs_per_subject`, last-by-subject gets and literal filters
//!   without scanning the stream.
//! * `ttls: BTreeSet<(expires_at, seq)>` — messages with a per-message TTL.
//!
//! `first_seq` is derived (first live key, or `last_seq + 1` when empty), so it can never
//! drift from the data. `last_seq` only moves forward, except through `truncate`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::error::{Result, StoreError};
use crate::gauge::BytesGauge;
use crate::subject::SubjectFilter;
use crate::types::{
    DiscardPolicy, ExpireReport, SimpleState, StoreConfig, StreamState, header_value,
};

/// One live message in the index.
#[derive(Debug, Clone)]
pub(crate) struct Entry<T> {
    /// Timestamp, Unix nanos.
    pub ts: i64,
    /// Encoded TTL (`Ttl::encode`): 0 none, <0 never, >0 nanos.
    pub ttl: i64,
    /// Subject id in the interner.
    pub subj: u32,
    /// Accounted size (nats formula for the store type).
    pub size: u64,
    /// Store-specific payload handle.
    pub data: T,
}

/// Ascending live sequences of one subject. The single-element case is inline, because
/// KV-style streams have millions of subjects holding one message each.
#[derive(Debug, Clone)]
enum SeqList {
    /// Exactly one sequence.
    One(u64),
    /// Two or more sequences, ascending.
    Many(VecDeque<u64>),
}

impl SeqList {
    fn len(&self) -> usize {
        match self {
            SeqList::One(_) => 1,
            SeqList::Many(v) => v.len(),
        }
    }
    fn first(&self) -> u64 {
        match self {
            SeqList::One(s) => *s,
            SeqList::Many(v) => v.front().copied().unwrap_or(0),
        }
    }
    fn last(&self) -> u64 {
        match self {
            SeqList::One(s) => *s,
            SeqList::Many(v) => v.back().copied().unwrap_or(0),
        }
    }
    fn push(&mut self, seq: u64) {
        match self {
            SeqList::One(s) => {
                let mut v = VecDeque::with_capacity(2);
                v.push_back(*s);
                v.push_back(seq);
                *self = SeqList::Many(v);
            }
            SeqList::Many(v) => v.push_back(seq),
        }
    }
    /// Removes `seq`; returns true if the list is now empty.
    fn remove(&mut self, seq: u64) -> bool {
        match self {
            SeqList::One(s) => *s == seq,
            SeqList::Many(v) => {
                if v.front() == Some(&seq) {
                    v.pop_front();
                } else if v.back() == Some(&seq) {
                    v.pop_back();
                } else if let Ok(i) = v.binary_search(&seq) {
                    v.remove(i);
                }
                if v.len() == 1 {
                    let s = v[0];
                    *self = SeqList::One(s);
                }
                false
            }
        }
    }
    /// Number of sequences ≥ `seq`, and the first such.
    fn count_from(&self, seq: u64) -> (u64, u64) {
        match self {
            SeqList::One(s) => {
                if *s >= seq {
                    (1, *s)
                } else {
                    (0, 0)
                }
            }
            SeqList::Many(v) => {
                let i = v.partition_point(|&x| x < seq);
                if i < v.len() {
                    ((v.len() - i) as u64, v[i])
                } else {
                    (0, 0)
                }
            }
        }
    }
    /// First sequence ≥ `seq`.
    fn first_from(&self, seq: u64) -> Option<u64> {
        match self.count_from(seq) {
            (0, _) => None,
            (_, s) => Some(s),
        }
    }
    /// Last sequence ≤ `seq`.
    fn last_upto(&self, seq: u64) -> Option<u64> {
        match self {
            SeqList::One(s) => (*s <= seq).then_some(*s),
            SeqList::Many(v) => {
                let i = v.partition_point(|&x| x <= seq);
                (i > 0).then(|| v[i - 1])
            }
        }
    }
}

/// Per-subject state.
#[derive(Debug, Clone)]
struct SubjInfo {
    /// The subject.
    name: Arc<str>,
    /// Its live sequences.
    seqs: SeqList,
}

/// Subject interner with per-subject sequence lists. Ids of emptied subjects are reused.
#[derive(Debug, Default, Clone)]
struct Subjects {
    /// Subject → id.
    ids: FxHashMap<Arc<str>, u32>,
    /// id → state; `None` for free ids.
    infos: Vec<Option<SubjInfo>>,
    /// Free ids.
    free: Vec<u32>,
}

impl Subjects {
    fn get(&self, name: &str) -> Option<(u32, &SubjInfo)> {
        let id = *self.ids.get(name)?;
        self.infos[id as usize].as_ref().map(|i| (id, i))
    }
    fn info(&self, id: u32) -> Option<&SubjInfo> {
        self.infos.get(id as usize).and_then(|i| i.as_ref())
    }
    fn name(&self, id: u32) -> &str {
        self.info(id).map(|i| &*i.name).unwrap_or("")
    }
    fn len(&self) -> usize {
        self.ids.len()
    }
    /// Adds `seq` under `name`, returning the subject id.
    fn add(&mut self, name: &str, seq: u64) -> u32 {
        if let Some(&id) = self.ids.get(name)
            && let Some(info) = self.infos[id as usize].as_mut()
        {
            info.seqs.push(seq);
            return id;
        }
        let name: Arc<str> = Arc::from(name);
        let info = SubjInfo {
            name: name.clone(),
            seqs: SeqList::One(seq),
        };
        let id = if let Some(id) = self.free.pop() {
            self.infos[id as usize] = Some(info);
            id
        } else {
            self.infos.push(Some(info));
            (self.infos.len() - 1) as u32
        };
        self.ids.insert(name, id);
        id
    }
    /// Removes `seq` from subject `id`. Returns the subject name if it became empty.
    fn remove(&mut self, id: u32, seq: u64) -> Option<Arc<str>> {
        let slot = self.infos.get_mut(id as usize)?;
        let info = slot.as_mut()?;
        if info.seqs.remove(seq) {
            let name = info.name.clone();
            *slot = None;
            self.ids.remove(&*name);
            self.free.push(id);
            return Some(name);
        }
        None
    }
    fn clear(&mut self) {
        self.ids.clear();
        self.infos.clear();
        self.free.clear();
    }
    /// Iterates live subjects matching `filter`.
    fn matching<'a>(
        &'a self,
        filter: &'a SubjectFilter,
    ) -> impl Iterator<Item = (u32, &'a SubjInfo)> + 'a {
        let lits: Option<Vec<(u32, &SubjInfo)>> = filter
            .all_literal()
            .then(|| filter.literals().filter_map(|l| self.get(l)).collect());
        let use_lits = lits.is_some();
        let scan = self
            .infos
            .iter()
            .enumerate()
            .filter(move |_| !use_lits)
            .filter_map(|(i, s)| s.as_ref().map(|s| (i as u32, s)))
            .filter(move |(_, s)| filter.matches(&s.name));
        lits.into_iter().flatten().chain(scan)
    }
}

/// Why a message was removed; the file store persists front removals as a floor and
/// interior removals as tombstones.
pub(crate) type Removed<T> = (u64, Entry<T>);

/// The logical stream state. See the module docs.
#[derive(Debug)]
pub(crate) struct StreamIndex<T> {
    /// Live messages by sequence.
    msgs: BTreeMap<u64, Entry<T>>,
    /// Per-subject state.
    subjects: Subjects,
    /// Messages with a positive per-message TTL: (expires_at, seq).
    ttls: BTreeSet<(i64, u64)>,
    /// Last sequence ever assigned.
    last_seq: u64,
    /// Timestamp of the last stored message.
    last_ts: i64,
    /// Accounted bytes.
    bytes: u64,
    /// `bytes`, readable without the store's lock (see [`StreamIndex::bytes_gauge`]).
    gauge: Arc<BytesGauge>,
    /// The enforced limits.
    cfg: StoreConfig,
    /// Size formula for the store type.
    size_fn: fn(usize, usize, usize) -> u64,
}

impl<T> StreamIndex<T> {
    /// An empty index using `size_fn` for byte accounting.
    pub fn new(cfg: StoreConfig, size_fn: fn(usize, usize, usize) -> u64) -> Self {
        StreamIndex {
            msgs: BTreeMap::new(),
            subjects: Subjects::default(),
            ttls: BTreeSet::new(),
            last_seq: 0,
            last_ts: 0,
            bytes: 0,
            gauge: Arc::new(BytesGauge::new()),
            cfg,
            size_fn,
        }
    }

    /// A gauge that always holds this index's accounted bytes, readable without the
    /// store's lock, and that carries them into the totals its owner attaches (see
    /// [`crate::gauge`]).
    pub fn bytes_gauge(&self) -> Arc<BytesGauge> {
        self.gauge.clone()
    }

    /// Makes `gauge` this index's gauge (an index rebuilt by recovery keeps reporting
    /// through the one its store handed out, and into that one's totals).
    pub fn adopt_gauge(&mut self, gauge: Arc<BytesGauge>) {
        gauge.set(self.bytes);
        self.gauge = gauge;
    }

    /// Mirrors `bytes` into the gauge (after every change of `bytes`).
    fn sync_gauge(&self) {
        self.gauge.set(self.bytes);
    }

    /// The accounted size of a message.
    pub fn msg_size(&self, subj_len: usize, hdr_len: usize, payload_len: usize) -> u64 {
        (self.size_fn)(subj_len, hdr_len, payload_len)
    }

    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }
    pub fn first_seq(&self) -> u64 {
        self.msgs
            .first_key_value()
            .map(|(k, _)| *k)
            .unwrap_or(self.last_seq + 1)
    }
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }
    pub fn last_ts(&self) -> i64 {
        self.last_ts
    }
    pub fn msgs(&self) -> u64 {
        self.msgs.len() as u64
    }
    pub fn get(&self, seq: u64) -> Option<&Entry<T>> {
        self.msgs.get(&seq)
    }
    pub fn subject_name(&self, id: u32) -> &str {
        self.subjects.name(id)
    }
    /// Iterates live entries in sequence order.
    #[cfg(test)]
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&u64, &Entry<T>)> {
        self.msgs.iter()
    }
    /// Iterates live entries in a sequence range.
    pub fn range(
        &self,
        r: impl std::ops::RangeBounds<u64>,
    ) -> impl DoubleEndedIterator<Item = (&u64, &Entry<T>)> {
        self.msgs.range(r)
    }

    /// Sets `last_seq` directly (recovery, first_seq config). Never lowers it.
    pub fn bump_last_seq(&mut self, seq: u64) {
        if seq > self.last_seq {
            self.last_seq = seq;
        }
    }

    /// Raises `last_ts` to `ts` (recovery of a FLOOR record, which carries the time of
    /// the last message when its messages are all gone).
    pub fn bump_last_ts(&mut self, ts: i64) {
        if ts > self.last_ts {
            self.last_ts = ts;
        }
    }

    /// Checks whether a message may be stored (size and discard-new limits).
    /// `discard_new_check` is false for replicated/raw stores where the leader already
    /// decided.
    pub fn check_store(
        &self,
        subj: &str,
        hdrs: &[u8],
        payload_len: usize,
        discard_new_check: bool,
    ) -> Result<()> {
        let msg_len = (hdrs.len() + payload_len) as u64;
        if let Some(limit) = self.cfg.max_msg_size
            && msg_len > limit
        {
            return Err(StoreError::MsgTooLarge {
                size: msg_len,
                limit,
            });
        }
        if !discard_new_check || self.cfg.discard != DiscardPolicy::New {
            return Ok(());
        }
        let size = self.msg_size(subj.len(), hdrs.len(), payload_len);
        let subj_info = self.subjects.get(subj).map(|(_, i)| i);
        let at_subj_limit = match (self.cfg.max_msgs_per_subject, subj_info) {
            (Some(maxp), Some(info)) if maxp > 0 => info.seqs.len() as u64 >= maxp,
            _ => false,
        };
        if at_subj_limit
            && self.cfg.discard_new_per_subject
            && header_value(hdrs, "Nats-Rollup").is_none()
        {
            return Err(StoreError::MaxMsgsPerSubject {
                subject: subj.to_string(),
                limit: self.cfg.max_msgs_per_subject.unwrap_or(0),
            });
        }
        if let Some(limit) = self.cfg.max_msgs
            && self.msgs() >= limit
            && !at_subj_limit
        {
            return Err(StoreError::MaxMsgs { limit });
        }
        if let Some(limit) = self.cfg.max_bytes
            && self.bytes + size > limit
        {
            let err = StoreError::MaxBytes {
                limit,
                current: self.bytes,
                needed: size,
            };
            if !at_subj_limit {
                return Err(err);
            }
            // Replacing the subject's oldest message: only fine if that frees enough.
            let first = subj_info.map(|i| i.seqs.first()).unwrap_or(0);
            match self.msgs.get(&first) {
                Some(e) if e.size >= size => {}
                _ => return Err(err),
            }
        }
        Ok(())
    }

    /// Inserts a message at `seq` (must be `last_seq + 1`; checked by the caller) and
    /// enforces per-subject, message and byte limits, pushing what they removed.
    #[allow(clippy::too_many_arguments)]
    pub fn insert(
        &mut self,
        seq: u64,
        ts: i64,
        subj: &str,
        ttl: i64,
        size: u64,
        data: T,
        removed: &mut Vec<Removed<T>>,
    ) {
        let id = self.subjects.add(subj, seq);
        self.msgs.insert(
            seq,
            Entry {
                ts,
                ttl,
                subj: id,
                size,
                data,
            },
        );
        self.bytes += size;
        self.sync_gauge();
        self.last_seq = seq;
        self.last_ts = ts;
        if ttl > 0 {
            self.ttls.insert((ts.saturating_add(ttl), seq));
        }
        if let Some(maxp) = self.cfg.max_msgs_per_subject
            && maxp > 0
        {
            self.enforce_subject_limit(id, maxp, removed);
        }
        self.enforce_limits(removed);
    }

    /// Records a skipped sequence range `[seq, seq + num)` (no message stored).
    pub fn skip(&mut self, seq: u64, num: u64) {
        if num > 0 {
            self.last_seq = self.last_seq.max(seq + num - 1);
        }
    }

    /// The time of a skip, as nats-server's stores keep it: always for a skip for lack
    /// of interest (`no_interest`: interest retention reads it), else only while no time
    /// is known yet.
    pub fn note_skip_time(&mut self, ts: i64, no_interest: bool) {
        if no_interest || self.last_ts == 0 {
            self.last_ts = self.last_ts.max(ts);
        }
    }

    fn enforce_subject_limit(&mut self, id: u32, maxp: u64, removed: &mut Vec<Removed<T>>) {
        while let Some(info) = self.subjects.info(id) {
            if info.seqs.len() as u64 <= maxp {
                break;
            }
            let first = info.seqs.first();
            match self.remove(first) {
                Some(e) => removed.push((first, e)),
                None => break,
            }
        }
    }

    /// Enforces `max_msgs` / `max_bytes` under discard-old (nats-server does not trim
    /// existing messages under discard-new).
    pub fn enforce_limits(&mut self, removed: &mut Vec<Removed<T>>) {
        if self.cfg.discard != DiscardPolicy::Old {
            return;
        }
        while let Some(limit) = self.cfg.max_msgs {
            if self.msgs() <= limit {
                break;
            }
            if !self.remove_first(removed) {
                break;
            }
        }
        while let Some(limit) = self.cfg.max_bytes {
            if self.bytes <= limit {
                break;
            }
            if !self.remove_first(removed) {
                break;
            }
        }
    }

    fn remove_first(&mut self, removed: &mut Vec<Removed<T>>) -> bool {
        let Some(first) = self.msgs.first_key_value().map(|(k, _)| *k) else {
            return false;
        };
        match self.remove(first) {
            Some(e) => {
                removed.push((first, e));
                true
            }
            None => false,
        }
    }

    /// Applies a new config; a tighter limit is enforced immediately.
    pub fn update_config(&mut self, cfg: StoreConfig, removed: &mut Vec<Removed<T>>) {
        let old_maxp = self.cfg.max_msgs_per_subject;
        self.cfg = cfg;
        self.enforce_limits(removed);
        if let Some(maxp) = self.cfg.max_msgs_per_subject
            && maxp > 0
            && old_maxp.is_none_or(|o| o == 0 || maxp < o)
        {
            let over: Vec<u32> = self
                .subjects
                .infos
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    s.as_ref()
                        .filter(|s| s.seqs.len() as u64 > maxp)
                        .map(|_| i as u32)
                })
                .collect();
            for id in over {
                self.enforce_subject_limit(id, maxp, removed);
            }
        }
    }

    /// Removes one message. Returns its entry if it existed.
    pub fn remove(&mut self, seq: u64) -> Option<Entry<T>> {
        let e = self.msgs.remove(&seq)?;
        self.subjects.remove(e.subj, seq);
        self.bytes = self.bytes.saturating_sub(e.size);
        self.sync_gauge();
        if e.ttl > 0 {
            self.ttls.remove(&(e.ts.saturating_add(e.ttl), seq));
        }
        Some(e)
    }

    /// Removes one message, also reporting whether its subject became empty.
    fn remove_tracking(&mut self, seq: u64) -> Option<(Entry<T>, Option<Arc<str>>)> {
        let e = self.msgs.remove(&seq)?;
        let emptied = self.subjects.remove(e.subj, seq);
        self.bytes = self.bytes.saturating_sub(e.size);
        self.sync_gauge();
        if e.ttl > 0 {
            self.ttls.remove(&(e.ts.saturating_add(e.ttl), seq));
        }
        Some((e, emptied))
    }

    /// Removes everything. `last_seq` is kept (sequences are never reused).
    pub fn purge_all(&mut self, removed: &mut Vec<Removed<T>>) -> u64 {
        let n = self.msgs.len() as u64;
        removed.extend(std::mem::take(&mut self.msgs));
        self.subjects.clear();
        self.ttls.clear();
        self.bytes = 0;
        self.sync_gauge();
        n
    }

    /// Removes all messages below `seq`. If `seq` is past the end, `last_seq` moves to
    /// `seq - 1` so the next message gets `seq`. `seq == 0` purges everything.
    pub fn compact(&mut self, seq: u64, removed: &mut Vec<Removed<T>>) -> u64 {
        if seq == 0 {
            return self.purge_all(removed);
        }
        if seq > self.last_seq + 1 {
            self.last_seq = seq - 1;
        }
        if seq > self.last_seq {
            return self.purge_all(removed);
        }
        let mut n = 0;
        while let Some((&first, _)) = self.msgs.first_key_value() {
            if first >= seq {
                break;
            }
            if let Some(e) = self.remove(first) {
                removed.push((first, e));
                n += 1;
            }
        }
        n
    }

    /// Removes all messages above `seq` and rewinds `last_seq` to `seq` (replication
    /// rollback; the only operation that lowers `last_seq`). `seq == 0` resets.
    pub fn truncate(&mut self, seq: u64, removed: &mut Vec<Removed<T>>) {
        let tail: Vec<u64> = self.msgs.range(seq + 1..).map(|(k, _)| *k).collect();
        for s in tail {
            if let Some(e) = self.remove(s) {
                removed.push((s, e));
            }
        }
        if let Some(e) = self.msgs.get(&seq) {
            self.last_ts = e.ts;
        } else if seq == 0 {
            self.last_ts = 0;
        }
        self.last_seq = seq;
    }

    /// JetStream PurgeEx: remove messages matching `filter` below `seq` (exclusive, 0 = no
    /// bound), keeping the newest `keep` matching messages.
    pub fn purge_ex(
        &mut self,
        filter: &SubjectFilter,
        seq: u64,
        keep: u64,
        removed: &mut Vec<Removed<T>>,
    ) -> u64 {
        if seq == 1 {
            return 0;
        }
        if filter.is_all() {
            if keep == 0 && seq == 0 {
                return self.purge_all(removed);
            }
            if seq > 1 && keep == 0 {
                return self.compact(seq, removed);
            }
        }
        let ss = self.filtered_state(0, filter);
        if ss.msgs == 0 {
            return 0;
        }
        let max_purge = if keep > 0 {
            if keep >= ss.msgs {
                return 0;
            }
            ss.msgs - keep
        } else {
            u64::MAX
        };
        let last = if seq >= 1 { seq - 1 } else { ss.last };
        let victims: Vec<u64> = self
            .match_iter(filter, ss.first, last)
            .take(usize::try_from(max_purge).unwrap_or(usize::MAX))
            .collect();
        let mut n = 0;
        for s in victims {
            if let Some(e) = self.remove(s) {
                removed.push((s, e));
                n += 1;
            }
        }
        n
    }

    /// Expires messages by `max_age` and per-message TTL at time `now`.
    pub fn expire(&mut self, now: i64, removed: &mut Vec<Removed<T>>) -> ExpireReport {
        let mut rep = ExpireReport::default();
        let mut victims = Vec::new();
        if let Some(max_age) = self.cfg.max_age {
            let max_age = i64::try_from(max_age.as_nanos()).unwrap_or(i64::MAX);
            let cutoff = now.saturating_sub(max_age);
            for (&seq, e) in self.msgs.iter() {
                if e.ts > cutoff {
                    break;
                }
                if e.ttl < 0 {
                    continue;
                }
                victims.push(seq);
            }
        }
        for &(at, seq) in self.ttls.iter() {
            if at > now {
                break;
            }
            victims.push(seq);
        }
        victims.sort_unstable();
        victims.dedup();
        for seq in victims {
            if let Some((e, emptied)) = self.remove_tracking(seq) {
                rep.removed += 1;
                rep.bytes += e.size;
                if let Some(name) = emptied {
                    rep.emptied_subjects.push((name.to_string(), seq));
                }
                removed.push((seq, e));
            }
        }
        rep
    }

    /// When the next message will expire (Unix nanos), if any.
    pub fn next_expiry(&self) -> Option<i64> {
        let ttl = self.ttls.first().map(|(at, _)| *at);
        let age = self.cfg.max_age.and_then(|max_age| {
            let max_age = i64::try_from(max_age.as_nanos()).unwrap_or(i64::MAX);
            self.msgs
                .values()
                .find(|e| e.ttl >= 0)
                .map(|e| e.ts.saturating_add(max_age))
        });
        match (ttl, age) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether scanning the sequence range is cheaper than walking matching subjects.
    fn prefer_scan(&self, filter: &SubjectFilter, from: u64, to: u64) -> bool {
        if filter.is_all() {
            return true;
        }
        if filter.all_literal() {
            return false;
        }
        let span = to.saturating_sub(from).saturating_add(1).min(self.msgs());
        span <= (self.subjects.len() as u64).saturating_mul(4)
    }

    /// Iterates matching sequences in `[from, to]`, ascending.
    fn match_iter<'a>(
        &'a self,
        filter: &'a SubjectFilter,
        from: u64,
        to: u64,
    ) -> Box<dyn Iterator<Item = u64> + 'a> {
        if from > to {
            return Box::new(std::iter::empty());
        }
        if self.prefer_scan(filter, from, to) {
            Box::new(
                self.msgs
                    .range(from..=to)
                    .filter(move |(_, e)| {
                        filter.is_all() || filter.matches(self.subjects.name(e.subj))
                    })
                    .map(|(k, _)| *k),
            )
        } else {
            let mut seqs: Vec<u64> = Vec::new();
            for (_, info) in self.subjects.matching(filter) {
                match &info.seqs {
                    SeqList::One(s) => {
                        if (from..=to).contains(s) {
                            seqs.push(*s)
                        }
                    }
                    SeqList::Many(v) => {
                        let i = v.partition_point(|&x| x < from);
                        seqs.extend(v.range(i..).take_while(|&&x| x <= to));
                    }
                }
            }
            seqs.sort_unstable();
            Box::new(seqs.into_iter())
        }
    }

    /// First matching sequence in `[start, max]`.
    pub fn next_match(&self, filter: &SubjectFilter, start: u64, max: u64) -> Option<u64> {
        let start = start.max(self.first_seq());
        if start > max {
            return None;
        }
        if self.prefer_scan(filter, start, max) {
            return self
                .msgs
                .range(start..=max)
                .find(|(_, e)| filter.is_all() || filter.matches(self.subjects.name(e.subj)))
                .map(|(k, _)| *k);
        }
        self.subjects
            .matching(filter)
            .filter_map(|(_, i)| i.seqs.first_from(start))
            .filter(|&s| s <= max)
            .min()
    }

    /// Last matching sequence in `[.., start]`.
    pub fn prev_match(&self, filter: &SubjectFilter, start: u64) -> Option<u64> {
        let first = self.first_seq();
        if start < first {
            return None;
        }
        if self.prefer_scan(filter, first, start) {
            return self
                .msgs
                .range(..=start)
                .rev()
                .find(|(_, e)| filter.is_all() || filter.matches(self.subjects.name(e.subj)))
                .map(|(k, _)| *k);
        }
        self.subjects
            .matching(filter)
            .filter_map(|(_, i)| i.seqs.last_upto(start))
            .max()
    }

    /// Filtered state for sequences ≥ `start`.
    pub fn filtered_state(&self, start: u64, filter: &SubjectFilter) -> SimpleState {
        let start = start.max(self.first_seq());
        let mut ss = SimpleState::default();
        if start > self.last_seq || self.msgs.is_empty() {
            return ss;
        }
        if filter.is_all() {
            let mut it = self.msgs.range(start..);
            ss.first = it.next().map(|(k, _)| *k).unwrap_or(0);
            if ss.first == 0 {
                return ss;
            }
            ss.last = self.msgs.last_key_value().map(|(k, _)| *k).unwrap_or(0);
            ss.msgs = if start <= self.first_seq() {
                self.msgs()
            } else {
                self.msgs.range(start..).count() as u64
            };
            return ss;
        }
        if self.prefer_scan(filter, start, self.last_seq) {
            for (&k, e) in self.msgs.range(start..) {
                if filter.matches(self.subjects.name(e.subj)) {
                    if ss.first == 0 {
                        ss.first = k;
                    }
                    ss.last = k;
                    ss.msgs += 1;
                }
            }
            return ss;
        }
        for (_, info) in self.subjects.matching(filter) {
            let (n, f) = info.seqs.count_from(start);
            if n == 0 {
                continue;
            }
            ss.msgs += n;
            if ss.first == 0 || f < ss.first {
                ss.first = f;
            }
            ss.last = ss.last.max(info.seqs.last());
        }
        ss
    }

    /// Per-subject state for subjects matching `filter`.
    pub fn subjects_state(&self, filter: &SubjectFilter) -> Vec<(String, SimpleState)> {
        self.subjects
            .matching(filter)
            .map(|(_, i)| {
                (
                    i.name.to_string(),
                    SimpleState {
                        msgs: i.seqs.len() as u64,
                        first: i.seqs.first(),
                        last: i.seqs.last(),
                    },
                )
            })
            .collect()
    }

    /// Pending count from `start` (JetStream NumPending). With `last_per_subject`, counts
    /// matching subjects whose last message is ≥ `start`.
    pub fn num_pending(&self, start: u64, filter: &SubjectFilter, last_per_subject: bool) -> u64 {
        if !last_per_subject {
            return self.filtered_state(start, filter).msgs;
        }
        self.subjects
            .matching(filter)
            .filter(|(_, i)| i.seqs.last() >= start)
            .count() as u64
    }

    /// Last sequence of each subject matching `filter`, ascending.
    pub fn last_seqs(&self, filter: &SubjectFilter) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .subjects
            .matching(filter)
            .map(|(_, i)| i.seqs.last())
            .collect();
        v.sort_unstable();
        v
    }

    /// The last matching sequence ≤ `max`.
    pub fn last_match(&self, filter: &SubjectFilter, max: u64) -> Option<u64> {
        if let Some(lit) = filter.as_literal() {
            return self.subjects.get(lit)?.1.seqs.last_upto(max);
        }
        self.prev_match(filter, max.min(self.last_seq))
    }

    /// First sequence whose timestamp is ≥ `ts` (`last_seq + 1` if none). Timestamps are
    /// non-decreasing in sequence order for messages stored through `store_msg`; a binary
    /// search over the sequence range finds it in O(log² n).
    pub fn seq_from_time(&self, ts: i64) -> u64 {
        let Some((&first, fe)) = self.msgs.first_key_value() else {
            return self.last_seq + 1;
        };
        if ts <= fe.ts {
            return first;
        }
        let Some((&last, le)) = self.msgs.last_key_value() else {
            return self.last_seq + 1;
        };
        if ts > le.ts {
            return self.last_seq + 1;
        }
        // P(s) = "the first live entry at or after s has ts >= target" is monotone in s
        // (timestamps are non-decreasing in sequence order) and true at `last`.
        let next = |s: u64| self.msgs.range(s..).next().map(|(k, e)| (*k, e.ts));
        let (mut lo, mut hi) = (first, last);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match next(mid) {
                Some((_, t)) if t >= ts => hi = mid,
                _ => lo = mid + 1,
            }
        }
        next(lo).map(|(k, _)| k).unwrap_or(self.last_seq + 1)
    }

    /// State. With `deleted`, lists interior deleted sequences.
    pub fn state(&self, deleted: bool) -> StreamState {
        let first_seq = self.first_seq();
        let msgs = self.msgs();
        let mut st = StreamState {
            msgs,
            bytes: self.bytes,
            first_seq,
            first_ts: self.msgs.first_key_value().map(|(_, e)| e.ts).unwrap_or(0),
            last_seq: self.last_seq,
            last_ts: self.last_ts,
            num_subjects: self.subjects.len() as u64,
            num_deleted: 0,
            deleted: Vec::new(),
        };
        if msgs > 0 {
            st.num_deleted = (self.last_seq - first_seq + 1) - msgs;
        }
        if deleted && st.num_deleted > 0 {
            let mut expect = first_seq;
            for &k in self.msgs.keys() {
                st.deleted.extend(expect..k);
                expect = k + 1;
            }
            st.deleted.extend(expect..=self.last_seq);
        }
        st
    }

    /// [`StreamIndex::state`] (without the deleted list) as of `watermark`: the live
    /// messages above it are left out, as if they had not been stored yet. A pinned
    /// view reports this, so that the state written into a backup describes exactly the
    /// messages the backup holds (messages still being made durable when the view was
    /// taken are above its watermark). Costs one step per message above the watermark.
    pub fn state_at(&self, watermark: u64) -> StreamState {
        let mut st = self.state(false);
        if watermark >= self.last_seq {
            return st;
        }
        let mut gone_subjects = 0u64;
        for (&seq, e) in self.msgs.range(watermark.saturating_add(1)..) {
            st.msgs -= 1;
            st.bytes = st.bytes.saturating_sub(e.size);
            // A subject leaves the count when even its first live message is above the
            // watermark; counted once, at that first message.
            if self
                .subjects
                .info(e.subj)
                .is_some_and(|info| info.seqs.first() == seq)
            {
                gone_subjects += 1;
            }
        }
        st.num_subjects = st.num_subjects.saturating_sub(gone_subjects);
        st.last_seq = watermark;
        st.last_ts = self
            .msgs
            .range(..=watermark)
            .next_back()
            .map(|(_, e)| e.ts)
            .unwrap_or(0);
        if st.msgs == 0 {
            st.first_seq = watermark + 1;
            st.first_ts = 0;
            st.num_deleted = 0;
        } else {
            st.num_deleted = (watermark - st.first_seq + 1) - st.msgs;
        }
        st
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::mem_msg_size;

    fn idx() -> StreamIndex<()> {
        StreamIndex::new(StoreConfig::default(), mem_msg_size)
    }

    #[test]
    fn seq_from_time_with_gaps() {
        let mut ix = idx();
        let mut rm = Vec::new();
        for s in 1..=100u64 {
            ix.insert(s, s as i64 * 10, "a", 0, 1, (), &mut rm);
        }
        for s in (2..100).step_by(3) {
            ix.remove(s);
        }
        for t in 0..=1010i64 {
            let want = ix
                .iter()
                .find(|(_, e)| e.ts >= t)
                .map(|(k, _)| *k)
                .unwrap_or(101);
            assert_eq!(ix.seq_from_time(t), want, "t={t}");
        }
    }

    #[test]
    fn seqlist_ops() {
        let mut l = SeqList::One(5);
        l.push(7);
        l.push(9);
        assert_eq!((l.len(), l.first(), l.last()), (3, 5, 9));
        assert_eq!(l.count_from(6), (2, 7));
        assert_eq!(l.last_upto(8), Some(7));
        assert!(!l.remove(7));
        assert!(!l.remove(5));
        assert!(matches!(l, SeqList::One(9)));
        assert!(l.remove(9));
    }
}
