//! The bounded match cache: publish subject → shared match result.
//!
//! Publishers tend to reuse a small set of subjects, so remembering the last results
//! turns most matches into one hash lookup under a read lock. The cache is bounded
//! (evicting a random entry when full, which needs no bookkeeping on the hit path) and
//! is invalidated precisely: a change to subscription `P` drops exactly the entries whose
//! subject `P` matches; the next match recomputes them from the trie. Entries are
//! dropped rather than patched so that a cached result always has the same order as a
//! fresh walk.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::SublistResult;
use super::subject::{subject_is_literal, subject_matches};

/// Default number of cached subjects (nats-server uses the same bound).
pub(crate) const CACHE_MAX: usize = 1024;

/// A cached result and where its key sits in [`MatchCache::keys`].
struct Entry<T> {
    /// The shared result handed to callers.
    result: Arc<SublistResult<T>>,
    /// Position of the key in `keys`, for O(1) removal.
    slot: usize,
}

/// Subject → result map with random eviction.
pub(crate) struct MatchCache<T> {
    /// Cached results by publish subject.
    map: FxHashMap<Box<[u8]>, Entry<T>>,
    /// The same keys in a dense vector, so that a random victim can be picked in O(1).
    keys: Vec<Box<[u8]>>,
    /// Maximum number of entries.
    max: usize,
    /// xorshift64 state for picking victims; never zero.
    rng: u64,
}

impl<T> MatchCache<T> {
    /// An empty cache holding at most `max` entries (at least one).
    pub(crate) fn new(max: usize) -> Self {
        // Seed from this value's address; eviction only needs to avoid a fixed pattern.
        let seed = (&max as *const usize as u64) | 1;
        MatchCache {
            map: FxHashMap::default(),
            keys: Vec::new(),
            max: max.max(1),
            rng: seed,
        }
    }

    /// Number of cached subjects.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// The cached result for `subject`, if any.
    pub(crate) fn get(&self, subject: &[u8]) -> Option<Arc<SublistResult<T>>> {
        self.map.get(subject).map(|e| e.result.clone())
    }

    /// The cached result for `subject` without cloning the `Arc`.
    pub(crate) fn peek(&self, subject: &[u8]) -> Option<&SublistResult<T>> {
        self.map.get(subject).map(|e| &*e.result)
    }

    /// Caches `result` for `subject`, evicting a random entry if full.
    pub(crate) fn insert(&mut self, subject: &[u8], result: Arc<SublistResult<T>>) {
        if let Some(e) = self.map.get_mut(subject) {
            e.result = result;
            return;
        }
        if self.keys.len() >= self.max {
            let victim = (self.next_random() % self.keys.len() as u64) as usize;
            self.remove_slot(victim);
        }
        let key: Box<[u8]> = Box::from(subject);
        self.map.insert(
            key.clone(),
            Entry {
                result,
                slot: self.keys.len(),
            },
        );
        self.keys.push(key);
    }

    /// Drops every entry whose subject is matched by the subscription subject `pattern`.
    pub(crate) fn invalidate(&mut self, pattern: &[u8]) {
        if subject_is_literal(pattern) {
            // A literal subscription matches one publish subject: itself.
            if let Some(e) = self.map.get(pattern) {
                let slot = e.slot;
                self.remove_slot(slot);
            }
            return;
        }
        let mut i = 0;
        while i < self.keys.len() {
            if self
                .keys
                .get(i)
                .is_some_and(|k| subject_matches(pattern, k))
            {
                // The last key moves into slot `i`: look at `i` again.
                self.remove_slot(i);
            } else {
                i += 1;
            }
        }
    }

    /// Drops everything.
    pub(crate) fn clear(&mut self) {
        self.map.clear();
        self.keys.clear();
    }

    /// Calls `f` on every cached result.
    pub(crate) fn for_each_result(&self, mut f: impl FnMut(&SublistResult<T>)) {
        self.map.values().for_each(|e| f(&e.result));
    }

    /// Removes the entry whose key is at `slot` in `keys`.
    fn remove_slot(&mut self, slot: usize) {
        if slot >= self.keys.len() {
            return;
        }
        let key = self.keys.swap_remove(slot);
        self.map.remove(&key);
        if let Some(moved) = self.keys.get(slot)
            && let Some(e) = self.map.get_mut(moved)
        {
            e.slot = slot;
        }
    }

    /// Next xorshift64 value.
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(n: usize) -> Arc<SublistResult<usize>> {
        Arc::new(SublistResult {
            psubs: vec![Arc::new(n)],
            qsubs: Vec::new(),
        })
    }

    #[test]
    fn bounded_and_consistent() {
        let mut c = MatchCache::new(8);
        for i in 0..100 {
            c.insert(format!("s.{i}").as_bytes(), result(i));
            assert!(c.len() <= 8);
            // The newest entry is never the victim.
            assert_eq!(
                c.get(format!("s.{i}").as_bytes()).map(|r| *r.psubs[0]),
                Some(i)
            );
        }
        assert_eq!(c.len(), 8);
        // map and keys agree.
        for (slot, k) in c.keys.iter().enumerate() {
            assert_eq!(c.map.get(k).map(|e| e.slot), Some(slot));
        }
        assert_eq!(c.map.len(), 8);
    }

    #[test]
    fn invalidate_drops_only_matching_subjects() {
        let mut c = MatchCache::new(64);
        for s in ["a.b", "a.c", "a.b.c", "b.b", "a.*"] {
            c.insert(s.as_bytes(), result(0));
        }
        c.invalidate(b"a.*");
        let mut left: Vec<&[u8]> = c.keys.iter().map(|k| &**k).collect();
        left.sort();
        assert_eq!(left, vec![&b"a.b.c"[..], b"b.b"]);
        c.invalidate(b"b.b");
        assert!(c.get(b"b.b").is_none());
        assert!(c.get(b"a.b.c").is_some());
        c.invalidate(b">");
        assert_eq!(c.len(), 0);
        assert!(c.map.is_empty());
    }
}
