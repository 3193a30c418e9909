//! The subject index ("sublist"): which subscriptions does a published subject reach?
//!
//! Every message the server routes asks this question, so it has to be answered in well
//! under a microsecond with a million subscriptions present, by many connection tasks
//! at once, while others subscribe and unsubscribe. Three ideas get there:
//!
//! 1. **A token trie.** A subscription subject is split at `.`; each token is one level.
//!    A level keeps literal tokens in a hash map and has one slot each for `*` and `>`,
//!    so a match costs a few hash lookups per token, whatever the number of
//!    subscriptions. Nodes that lose their last subscription and child are pruned, so
//!    memory follows the live subscriptions.
//! 2. **A match cache** (`cache`): results are shared `Arc`s kept per publish subject
//!    (1024 subjects by default, random eviction), so repeated publishes to the same
//!    subject cost one hash lookup under a read lock. A subscription change drops exactly
//!    the cached subjects it matches. Subjects used once (JetStream ack subjects, reply
//!    inboxes) go through [`Sublist::match_subject_once`], which does not store a miss:
//!    one per message would evict a useful entry and allocate a key every time.
//! 3. **A generation number** ([`Sublist::genid`]) bumped by every change, so that each
//!    connection can keep its own lock-free L1 cache of results and throw it away when
//!    the number moves. Read `genid` *before* calling [`Sublist::match_subject`] and tag
//!    the result with it: a result tagged with the current `genid` is never stale.
//!
//! # Delivery order
//!
//! Transcripts must be deterministic and identical to nats-server's, so results keep
//! the order of nats-server's trie walk: level by level, the `>` node first, then
//! everything below the `*` node, then the literal token; at the last token the `>`
//! node, the literal node, then the `*` node. Subs `a.*.c` (1), `a.>` (2), `>` (3) and a
//! publish to `a.b.c` deliver 3, 2, 1; subs `a.*` (1), `a.b` (2) and a publish to `a.b`
//! deliver 2, 1 (both checked against nats-server 2.15.1). Within one subject,
//! subscribers come in insertion order (nats-server uses a hash set there, so any order
//! is faithful; insertion order is the deterministic choice). Queue groups: one
//! `Vec` per group name, groups in order of first appearance, members of the same name
//! from several subjects merged into one group.
//!
//! # Concurrency and lock order
//!
//! Two `parking_lot::RwLock`s: `trie` (subscriptions) and `cache`. **Lock order: `trie`
//! before `cache`**; nothing takes `trie` while holding `cache`.
//!
//! * Cache hit: `cache` read lock only.
//! * Cache miss: `trie` read lock, walk, then `cache` write lock to store the result
//!   *while still holding the trie read lock*, so no writer can slip in between the walk
//!   and the store and leave a stale entry behind.
//! * Insert/remove: `trie` write lock, change, `cache` write lock, invalidate, bump
//!   `genid`, release both.
//!
//! A reader that hits the cache while a writer is between its trie change and its cache
//! invalidation sees the old result: the change has not completed yet (`insert` has not
//! returned and `genid` has not moved).
//!
//! # Differences from nats-server's sublist
//!
//! * A subscription change *drops* the cached results it affects; nats-server appends
//!   an inserted subscription to them, which puts it last whatever its place in the
//!   walk. Dropping keeps a cached result identical to a fresh one.
//! * Inserting the very same `Arc` twice with the same subject and queue is refused
//!   ([`SublistError::Duplicate`]); nats-server keeps one copy but counts two.
//! * Subscription notifications, remote queue weights and the local/leaf filtering
//!   helpers are left to the layers that need them.
//!
//! # Input from the network
//!
//! Subjects are bytes off the wire. Nothing here panics on any input, and no code path
//! recurses (walks keep explicit stacks; dropping deep branches is iterative), so a
//! subject of thousands of tokens costs time proportional to its length, never stack.

mod cache;
mod subject;
mod trie;

#[cfg(test)]
mod tests;

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

pub use subject::{
    is_valid_literal_subject, is_valid_subject, subject_is_literal, subject_is_subset_match,
    subject_matches, subjects_collide,
};

use cache::{CACHE_MAX, MatchCache};
use trie::{Change, Node, Trie};

/// Why the sublist refused a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SublistError {
    /// The subject is empty, has an empty token or whitespace, or has `>` before its
    /// last token (the server answers `-ERR 'Invalid Subject'`).
    #[error("sublist: invalid subject")]
    InvalidSubject,
    /// The queue group name is empty or contains whitespace.
    #[error("sublist: invalid queue group name")]
    InvalidQueue,
    /// This very `Arc` is already subscribed with the same subject and queue group.
    #[error("sublist: subscription already present")]
    Duplicate,
}

/// The subscriptions a publish subject reaches, in delivery order (see the module docs).
#[derive(Debug)]
pub struct SublistResult<T> {
    /// Plain subscriptions: each gets a copy of the message.
    pub psubs: Vec<Arc<T>>,
    /// Queue groups, one `Vec` of members per group name: one member of each gets it.
    pub qsubs: Vec<Vec<Arc<T>>>,
}

impl<T> SublistResult<T> {
    /// A result with no subscriptions.
    pub fn empty() -> Self {
        SublistResult {
            psubs: Vec::new(),
            qsubs: Vec::new(),
        }
    }

    /// Whether nothing matched.
    pub fn is_empty(&self) -> bool {
        self.psubs.is_empty() && self.qsubs.is_empty()
    }
}

impl<T> Default for SublistResult<T> {
    fn default() -> Self {
        Self::empty()
    }
}

/// Counters reported by `/subsz` (and per account by `/accountz`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SublistStats {
    /// Subscriptions currently present (`num_subscriptions`).
    pub num_subs: u64,
    /// Subjects currently in the match cache (`num_cache`).
    pub num_cache: u64,
    /// Successful inserts since creation (`num_inserts`).
    pub num_inserts: u64,
    /// Successful removals since creation (`num_removes`).
    pub num_removes: u64,
    /// Calls to [`Sublist::match_subject`] (`num_matches`).
    pub num_matches: u64,
    /// Share of matches answered from the cache, 0.0 to 1.0 (`cache_hit_rate`).
    pub cache_hit_rate: f64,
    /// Largest fanout (plain subs + queue groups) among cached results (`max_fanout`).
    pub max_fanout: u64,
    /// Mean fanout among cached results (`avg_fanout`).
    pub avg_fanout: f64,
    /// Matches answered from the cache; kept so that [`SublistStats::add`] can recompute
    /// `cache_hit_rate` across accounts. Not a `/subsz` field.
    pub cache_hits: u64,
    /// Sum of the fanouts behind `avg_fanout`, for [`SublistStats::add`]. Not a `/subsz`
    /// field.
    pub total_fanout: u64,
}

impl SublistStats {
    /// Folds another sublist's stats into these, as `/subsz` does over all accounts.
    pub fn add(&mut self, other: &SublistStats) {
        self.num_subs += other.num_subs;
        self.num_cache += other.num_cache;
        self.num_inserts += other.num_inserts;
        self.num_removes += other.num_removes;
        self.num_matches += other.num_matches;
        self.cache_hits += other.cache_hits;
        self.total_fanout += other.total_fanout;
        self.max_fanout = self.max_fanout.max(other.max_fanout);
        self.cache_hit_rate = ratio(self.cache_hits, self.num_matches);
        self.avg_fanout = ratio(self.total_fanout, self.num_cache);
    }
}

/// `num / den`, or 0.0 when `den` is zero.
fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// A subscription index over items `Arc<T>`, identified by `Arc::ptr_eq`.
///
/// `Send + Sync` when `T` is; every method takes `&self`.
pub struct Sublist<T> {
    /// The subscriptions. Locked before `cache`.
    trie: RwLock<Trie<T>>,
    /// Match cache; `None` when disabled. Locked after `trie`.
    cache: Option<RwLock<MatchCache<T>>>,
    /// Generation number: bumped (after the change is fully visible) by every
    /// successful insert, remove and non-empty batch removal.
    genid: AtomicU64,
    /// Calls to `match_subject`.
    matches: AtomicU64,
    /// Calls to `match_subject` answered by the cache.
    cache_hits: AtomicU64,
    /// Successful inserts.
    inserts: AtomicU64,
    /// Successful removals.
    removes: AtomicU64,
    /// The shared result for "nothing matched", so misses with no interest don't
    /// allocate.
    empty: Arc<SublistResult<T>>,
}

impl<T> Default for Sublist<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for Sublist<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sublist")
            .field("count", &self.count())
            .field("cache", &self.cache.is_some())
            .field("genid", &self.genid())
            .finish_non_exhaustive()
    }
}

/// Hands the tokens of a subject to `f` without allocating for subjects of up to 32
/// tokens. Returns `None` (without calling `f`) if a token is empty.
fn with_tokens<R>(subject: &[u8], f: impl FnOnce(&[&[u8]]) -> R) -> Option<R> {
    const INLINE: usize = 32;
    let mut inline: [&[u8]; INLINE] = [&[]; INLINE];
    let mut len = 0;
    let mut spill: Vec<&[u8]> = Vec::new();
    for t in subject::tokens(subject) {
        if t.is_empty() {
            return None;
        }
        if len < INLINE {
            if let Some(slot) = inline.get_mut(len) {
                *slot = t;
            }
        } else {
            if spill.is_empty() {
                spill.reserve(2 * INLINE);
                spill.extend_from_slice(&inline);
            }
            spill.push(t);
        }
        len += 1;
    }
    if len <= INLINE {
        Some(f(inline.get(..len).unwrap_or_default()))
    } else {
        Some(f(&spill))
    }
}

/// Whether a queue group name is acceptable: non-empty, no whitespace.
fn is_valid_queue(q: &[u8]) -> bool {
    !q.is_empty()
        && !q
            .iter()
            .any(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0x0c))
}

/// Collects match results; `qnames` runs parallel to `qsubs` so that groups of the same
/// name found on different subjects merge.
struct ResultBuilder<'a, T> {
    /// Plain subscriptions so far.
    psubs: Vec<Arc<T>>,
    /// Queue groups so far.
    qsubs: Vec<Vec<Arc<T>>>,
    /// Name of each group in `qsubs`.
    qnames: Vec<&'a [u8]>,
}

impl<'a, T> ResultBuilder<'a, T> {
    /// An empty builder.
    fn new() -> Self {
        ResultBuilder {
            psubs: Vec::new(),
            qsubs: Vec::new(),
            qnames: Vec::new(),
        }
    }

    /// Appends a node's subscriptions.
    fn add(&mut self, node: &'a Node<T>) {
        node.psubs.clone_into(&mut self.psubs);
        for group in node.groups() {
            // Linear, like nats-server: few groups per publish, and iterating the
            // result must stay cheap for callers.
            let slot = match self.qnames.iter().position(|n| **n == *group.name) {
                Some(i) => i,
                None => {
                    self.qnames.push(&group.name);
                    self.qsubs.push(Vec::with_capacity(group.members.len()));
                    self.qsubs.len() - 1
                }
            };
            if let Some(members) = self.qsubs.get_mut(slot) {
                group.members.clone_into(members);
            }
        }
    }

    /// The finished result.
    fn finish(self) -> SublistResult<T> {
        SublistResult {
            psubs: self.psubs,
            qsubs: self.qsubs,
        }
    }
}

impl<T> Sublist<T> {
    /// A sublist with the match cache enabled.
    pub fn new() -> Self {
        Self::with_cache(true)
    }

    /// A sublist with or without the match cache. Without it every match walks the trie;
    /// that only pays off when interest changes far more often than subjects repeat
    /// (nats-server's `no_sublist_cache`).
    pub fn with_cache(enabled: bool) -> Self {
        Self::with_cache_capacity(enabled.then_some(CACHE_MAX))
    }

    /// A sublist whose cache holds at most `capacity` subjects (`None`: no cache).
    fn with_cache_capacity(capacity: Option<usize>) -> Self {
        Sublist {
            trie: RwLock::new(Trie::new()),
            cache: capacity.map(|max| RwLock::new(MatchCache::new(max))),
            genid: AtomicU64::new(0),
            matches: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            inserts: AtomicU64::new(0),
            removes: AtomicU64::new(0),
            empty: Arc::new(SublistResult::empty()),
        }
    }

    /// Whether the match cache is enabled.
    pub fn cache_enabled(&self) -> bool {
        self.cache.is_some()
    }

    /// Adds a subscription of `item` to `subject` (may contain wildcards), optionally in
    /// queue group `queue`.
    ///
    /// # Errors
    ///
    /// [`SublistError::InvalidSubject`] unless [`is_valid_subject`] accepts `subject`;
    /// [`SublistError::InvalidQueue`] for an empty queue name or one with whitespace;
    /// [`SublistError::Duplicate`] if `item` already has exactly this subscription.
    pub fn insert(
        &self,
        subject: &[u8],
        queue: Option<&[u8]>,
        item: Arc<T>,
    ) -> Result<(), SublistError> {
        if !is_valid_subject(subject) {
            return Err(SublistError::InvalidSubject);
        }
        if queue.is_some_and(|q| !is_valid_queue(q)) {
            return Err(SublistError::InvalidQueue);
        }
        let mut trie = self.trie.write();
        if trie.insert(subject, queue, item) == Change::Unchanged {
            return Err(SublistError::Duplicate);
        }
        self.inserts.fetch_add(1, Ordering::Relaxed);
        self.changed(&[subject]);
        drop(trie);
        Ok(())
    }

    /// Removes the subscription of `item` to `subject`/`queue`. Returns `false` if there
    /// was none.
    pub fn remove(&self, subject: &[u8], queue: Option<&[u8]>, item: &Arc<T>) -> bool {
        let mut trie = self.trie.write();
        if trie.remove(subject, queue, item) == Change::Unchanged {
            return false;
        }
        self.removes.fetch_add(1, Ordering::Relaxed);
        self.changed(&[subject]);
        drop(trie);
        true
    }

    /// Removes many subscriptions under one lock with one `genid` bump: what a closing
    /// connection needs. Items that are not present are skipped. Returns how many were
    /// removed.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use natrium_server::sublist::Sublist;
    /// let sl = Sublist::new();
    /// let (a, b) = (Arc::new("a"), Arc::new("b"));
    /// sl.insert(b"foo", None, a.clone()).unwrap();
    /// sl.insert(b"bar", Some(b"q"), b.clone()).unwrap();
    /// let subs: Vec<(&[u8], Option<&[u8]>, &Arc<&str>)> =
    ///     vec![(b"foo", None, &a), (b"bar", Some(b"q"), &b)];
    /// assert_eq!(sl.remove_batch(subs), 2);
    /// assert_eq!(sl.count(), 0);
    /// ```
    pub fn remove_batch<I, S, Q, A>(&self, items: I) -> usize
    where
        I: IntoIterator<Item = (S, Option<Q>, A)>,
        S: AsRef<[u8]>,
        Q: AsRef<[u8]>,
        A: Borrow<Arc<T>>,
    {
        /// Up to this many removed subjects are invalidated one by one; past it the
        /// whole cache is cleared (cheaper than matching every cached subject against
        /// hundreds of patterns).
        const SELECTIVE: usize = 8;
        let mut trie = self.trie.write();
        let mut removed = 0usize;
        let mut subjects: Vec<S> = Vec::new();
        for (subject, queue, item) in items {
            let queue = queue.as_ref().map(AsRef::as_ref);
            if trie.remove(subject.as_ref(), queue, item.borrow()) == Change::Done {
                removed += 1;
                if removed <= SELECTIVE {
                    subjects.push(subject);
                }
            }
        }
        if removed == 0 {
            return 0;
        }
        self.removes.fetch_add(removed as u64, Ordering::Relaxed);
        if removed <= SELECTIVE {
            let subjects: Vec<&[u8]> = subjects.iter().map(AsRef::as_ref).collect();
            self.changed(&subjects);
        } else {
            if let Some(cache) = &self.cache {
                cache.write().clear();
            }
            self.genid.fetch_add(1, Ordering::Release);
        }
        drop(trie);
        removed
    }

    /// After a trie change (trie write lock held): invalidate the cache for `subjects`
    /// and bump the generation.
    fn changed(&self, subjects: &[&[u8]]) {
        if let Some(cache) = &self.cache {
            let mut cache = cache.write();
            for s in subjects {
                cache.invalidate(s);
            }
        }
        self.genid.fetch_add(1, Ordering::Release);
    }

    /// The subscriptions that a message published to the literal `subject` reaches, in
    /// delivery order. A malformed subject (empty, or with an empty token) matches
    /// nothing. Wildcard tokens in `subject` are compared literally (module docs).
    pub fn match_subject(&self, subject: &[u8]) -> Arc<SublistResult<T>> {
        self.match_with(subject, true)
    }

    /// [`Sublist::match_subject`] for a subject that will not be published to again (a
    /// JetStream ack subject, which names one delivery; a request's unique reply inbox):
    /// a cached result is used, but a miss is not stored. Storing it would only evict an
    /// entry that is used again, at the cost of allocating and dropping a key per message.
    pub fn match_subject_once(&self, subject: &[u8]) -> Arc<SublistResult<T>> {
        self.match_with(subject, false)
    }

    fn match_with(&self, subject: &[u8], store: bool) -> Arc<SublistResult<T>> {
        self.matches.fetch_add(1, Ordering::Relaxed);
        if let Some(cache) = &self.cache
            && let Some(hit) = cache.read().get(subject)
        {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
            return hit;
        }
        let trie = self.trie.read();
        let built = with_tokens(subject, |toks| {
            let mut out = ResultBuilder::new();
            trie.walk_matches(toks, |n| {
                out.add(n);
                false
            });
            out.finish()
        });
        let Some(result) = built else {
            // Not cached: malformed subjects must not evict useful entries.
            return self.empty.clone();
        };
        let result = if result.is_empty() {
            self.empty.clone()
        } else {
            Arc::new(result)
        };
        if let Some(cache) = self.cache.as_ref().filter(|_| store) {
            // Still under the trie read lock: no change can come between walk and store.
            cache.write().insert(subject, result.clone());
        }
        drop(trie);
        result
    }

    /// Whether a message published to `subject` would reach anyone. Cheaper than
    /// [`Sublist::match_subject`] on a cache miss: it stops at the first subscription
    /// and caches nothing. Not counted in [`SublistStats::num_matches`].
    pub fn has_interest(&self, subject: &[u8]) -> bool {
        if let Some(cache) = &self.cache
            && let Some(hit) = cache.read().peek(subject).map(|r| !r.is_empty())
        {
            return hit;
        }
        let trie = self.trie.read();
        with_tokens(subject, |toks| trie.walk_matches(toks, Node::has_subs)).unwrap_or(false)
    }

    /// The generation number; it changes whenever the set of subscriptions does.
    pub fn genid(&self) -> u64 {
        self.genid.load(Ordering::Acquire)
    }

    /// Number of subscriptions.
    pub fn count(&self) -> usize {
        self.trie.read().len()
    }

    /// Number of trie nodes: 0 when empty, whatever came and went before. For leak
    /// checks in tests and benchmarks.
    pub fn node_count(&self) -> usize {
        self.trie.read().node_count()
    }

    /// Counters for `/subsz`. Fanout figures are computed over the cached results, as
    /// nats-server does (fanout = plain subs + queue groups).
    pub fn stats(&self) -> SublistStats {
        let num_subs = self.count() as u64;
        let matches = self.matches.load(Ordering::Relaxed);
        let hits = self.cache_hits.load(Ordering::Relaxed);
        let (mut num_cache, mut total, mut max) = (0u64, 0u64, 0u64);
        if let Some(cache) = &self.cache {
            let cache = cache.read();
            num_cache = cache.len() as u64;
            cache.for_each_result(|r| {
                let fanout = (r.psubs.len() + r.qsubs.len()) as u64;
                total += fanout;
                max = max.max(fanout);
            });
        }
        SublistStats {
            num_subs,
            num_cache,
            num_inserts: self.inserts.load(Ordering::Relaxed),
            num_removes: self.removes.load(Ordering::Relaxed),
            num_matches: matches,
            cache_hit_rate: ratio(hits, matches),
            max_fanout: max,
            avg_fanout: ratio(total, num_cache),
            cache_hits: hits,
            total_fanout: total,
        }
    }

    /// Calls `f(subject, queue, item)` for every subscription (for `/subsz` and `/connz`
    /// listings). Order: unspecified across subjects, insertion order within one.
    ///
    /// Runs under the trie read lock: `f` must not call back into this sublist.
    pub fn for_each(&self, mut f: impl FnMut(&[u8], Option<&[u8]>, &Arc<T>)) {
        let trie = self.trie.read();
        trie.for_each_node(|subject, node| {
            for item in node.psubs.iter() {
                f(subject, None, item);
            }
            for group in node.groups() {
                for item in group.members.iter() {
                    f(subject, Some(&group.name), item);
                }
            }
        });
    }

    /// The subscriptions whose subject could match some literal subject that `pattern`
    /// (which may contain wildcards) also matches, i.e. [`subjects_collide`] with it.
    /// For a literal `pattern` that is exactly the subscriptions a publish would reach.
    /// Order unspecified; an item subscribed on several matching subjects appears once
    /// per subscription. An invalid pattern yields nothing.
    pub fn matching_subs_for_pattern(&self, pattern: &[u8]) -> Vec<Arc<T>> {
        if !is_valid_subject(pattern) {
            return Vec::new();
        }
        let trie = self.trie.read();
        let mut out = Vec::new();
        with_tokens(pattern, |toks| {
            trie.walk_colliding(toks, |n| {
                n.psubs.clone_into(&mut out);
                for g in n.groups() {
                    g.members.clone_into(&mut out);
                }
            })
        });
        out
    }

    /// Checks the trie's counters and shape. Test support.
    #[cfg(test)]
    fn check(&self) -> Result<(), String> {
        self.trie.read().check()
    }

    /// Number of cached subjects. Test support.
    #[cfg(test)]
    fn cache_len(&self) -> usize {
        self.cache.as_ref().map_or(0, |c| c.read().len())
    }
}
