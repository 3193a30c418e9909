//! Sequence sets: nats-server's encoded AVL `SequenceSet` (the delete maps inside
//! `index.db`) and [`RangeSet`], the compact set of deleted sequences we build while
//! reading a v1 archive (memory proportional to the number of runs, not sequences).

use std::collections::BTreeMap;

use super::varint::SliceCursor;

/// Magic byte of an encoded sequence set.
pub const SEQSET_MAGIC: u8 = 22;
/// Decodes an encoded AVL sequence set at the cursor, calling `each` for every sequence
/// in it. Version 2 nodes hold 32 bitmap words (2048 sequences), version 1 nodes 64; the
/// layout is otherwise the same (`u64 base`, words, `u16 height`). Returns `None` on
/// malformed input (cursor position then unspecified).
pub fn decode_seqset(cur: &mut SliceCursor<'_>, mut each: impl FnMut(u64)) -> Option<()> {
    if cur.u8()? != SEQSET_MAGIC {
        return None;
    }
    let words: usize = match cur.u8()? {
        1 => 64,
        2 => 32,
        _ => return None,
    };
    let node_size = 8 + words * 8 + 2;
    let nodes = cur.u32_le()? as usize;
    let size = cur.u32_le()?;
    if nodes.checked_mul(node_size)? > cur.remaining() {
        return None;
    }
    let mut count: u64 = 0;
    for _ in 0..nodes {
        let base = cur.u64_le()?;
        for w in 0..words {
            let mut word = cur.u64_le()?;
            while word != 0 {
                let b = u64::from(word.trailing_zeros());
                each(base.checked_add(64 * w as u64 + b)?);
                count += 1;
                word &= word - 1;
            }
        }
        let _height = cur.u16_le()?;
    }
    // Version 1 decoders check the recorded size; version 2 ones do not.
    if words == 64 && count != u64::from(size) {
        return None;
    }
    Some(())
}

/// A set of u64 stored as disjoint inclusive runs.
#[derive(Debug, Clone, Default)]
pub struct RangeSet {
    runs: BTreeMap<u64, u64>,
    len: u64,
}

impl RangeSet {
    /// Empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of members.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of runs (memory use).
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    /// Membership test.
    pub fn contains(&self, v: u64) -> bool {
        self.runs
            .range(..=v)
            .next_back()
            .is_some_and(|(_, &end)| v <= end)
    }

    /// Adds `v`; returns whether it was new.
    pub fn insert(&mut self, v: u64) -> bool {
        if self.contains(v) {
            return false;
        }
        let prev = self
            .runs
            .range(..v)
            .next_back()
            .map(|(&s, &e)| (s, e))
            .filter(|&(_, e)| e.checked_add(1) == Some(v));
        let next = v
            .checked_add(1)
            .and_then(|n| self.runs.get(&n).copied().map(|e| (n, e)));
        match (prev, next) {
            (Some((ps, _)), Some((ns, ne))) => {
                self.runs.remove(&ns);
                self.runs.insert(ps, ne);
            }
            (Some((ps, _)), None) => {
                self.runs.insert(ps, v);
            }
            (None, Some((ns, ne))) => {
                self.runs.remove(&ns);
                self.runs.insert(v, ne);
            }
            (None, None) => {
                self.runs.insert(v, v);
            }
        }
        self.len += 1;
        true
    }

    /// Adds every member of `lo..=hi`.
    pub fn insert_range(&mut self, lo: u64, hi: u64) {
        if lo > hi {
            return;
        }
        let mut new_lo = lo;
        let mut new_hi = hi;
        // Runs that overlap or touch [lo, hi].
        let start = self
            .runs
            .range(..=lo)
            .next_back()
            .map(|(&s, _)| s)
            .unwrap_or(lo);
        let touching: Vec<(u64, u64)> = self
            .runs
            .range(start..=hi.saturating_add(1))
            .map(|(&s, &e)| (s, e))
            .filter(|&(s, e)| e.saturating_add(1) >= lo && s <= hi.saturating_add(1))
            .collect();
        for (s, e) in touching {
            self.runs.remove(&s);
            self.len -= e - s + 1;
            new_lo = new_lo.min(s);
            new_hi = new_hi.max(e);
        }
        self.runs.insert(new_lo, new_hi);
        self.len += new_hi - new_lo + 1;
    }

    /// The runs, ascending.
    pub fn iter_runs(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.runs.iter().map(|(&s, &e)| (s, e))
    }

    /// Members in `lo..=hi`.
    pub fn count_in(&self, lo: u64, hi: u64) -> u64 {
        if lo > hi {
            return 0;
        }
        let mut n = 0;
        let start = self
            .runs
            .range(..=lo)
            .next_back()
            .map(|(&s, _)| s)
            .unwrap_or(lo);
        for (&s, &e) in self.runs.range(start..=hi) {
            let a = s.max(lo);
            let b = e.min(hi);
            if a <= b {
                n += b - a + 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_set() {
        let mut s = RangeSet::new();
        for v in [5, 7, 6, 1, 3, 2, 100] {
            assert!(s.insert(v));
        }
        assert!(!s.insert(6));
        assert_eq!(s.len(), 7);
        assert_eq!(s.runs(), 3);
        assert!(s.contains(2) && s.contains(7) && !s.contains(4) && !s.contains(8));
        assert_eq!(s.count_in(2, 6), 4);
        assert_eq!(s.count_in(0, 1000), 7);
        assert!(s.insert(u64::MAX) && s.contains(u64::MAX));
        s.insert_range(4, 10);
        assert_eq!(s.count_in(0, 100), 11);
        assert_eq!(s.runs(), 3);
        s.insert_range(11, 99);
        assert_eq!(s.runs(), 2);
        assert_eq!(s.len(), 101);
    }

    #[test]
    fn seqset_sample() {
        // One node, base 0, sequences 4 and 5 (the ORDERS sample's delete map).
        let mut b = vec![22u8, 2, 1, 0, 0, 0, 2, 0, 0, 0];
        b.extend_from_slice(&0u64.to_le_bytes());
        b.extend_from_slice(&0b11_0000u64.to_le_bytes());
        b.extend(std::iter::repeat_n(0u8, 31 * 8));
        b.extend_from_slice(&1u16.to_le_bytes());
        let mut got = Vec::new();
        decode_seqset(&mut SliceCursor::new(&b), |s| got.push(s)).unwrap();
        assert_eq!(got, vec![4, 5]);
        assert!(decode_seqset(&mut SliceCursor::new(&b[..100]), |_| {}).is_none());
        // Version 1: 64 words per node; sequence 4096 + 64 + 1 in word 1.
        let mut b = vec![22u8, 1, 1, 0, 0, 0, 1, 0, 0, 0];
        b.extend_from_slice(&4096u64.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        b.extend_from_slice(&2u64.to_le_bytes());
        b.extend(std::iter::repeat_n(0u8, 62 * 8));
        b.extend_from_slice(&1u16.to_le_bytes());
        let mut got = Vec::new();
        decode_seqset(&mut SliceCursor::new(&b), |s| got.push(s)).unwrap();
        assert_eq!(got, vec![4096 + 64 + 1]);
        b[6] = 2; // wrong recorded size
        assert!(decode_seqset(&mut SliceCursor::new(&b), |_| {}).is_none());
    }
}
