//! Tests of the whole [`Sublist`]: delivery order, queue groups, cache invalidation, a
//! randomized differential test against a brute-force oracle, leak checks, batches,
//! stats, listings and concurrent use.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::*;

/// Small deterministic PRNG (xorshift64*) so failures reproduce from the seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// Items are `Arc<usize>`; the value names the item in assertions.
fn ids(v: &[Arc<usize>]) -> Vec<usize> {
    v.iter().map(|x| **x).collect()
}

fn qids(r: &SublistResult<usize>) -> Vec<Vec<usize>> {
    r.qsubs.iter().map(|g| ids(g)).collect()
}

fn item(n: usize) -> Arc<usize> {
    Arc::new(n)
}

#[test]
fn order_matches_nats_server() {
    // Each case was run against nats-server 2.15.1: SUB <subject> <sid> in this order on
    // one connection, one PUB, and the MSG sids in arrival order.
    let cases: &[(&[&str], &str, &[usize])] = &[
        (&["a.*.c", "a.>", ">"], "a.b.c", &[3, 2, 1]),
        (&["a.*", "a.b"], "a.b", &[2, 1]),
        (&["a.b", "a.*"], "a.b", &[1, 2]),
        (
            &["*.b", "a.>", "a.b", ">", "*.*", "a.*"],
            "a.b",
            &[4, 1, 5, 2, 3, 6],
        ),
        (
            &["*.*.c", "a.*.*", "*.b.*", "a.b.c", "a.>", "*.>"],
            "a.b.c",
            &[6, 1, 3, 5, 2, 4],
        ),
    ];
    for cache in [false, true] {
        for (subs, publish, want) in cases {
            let sl = Sublist::with_cache(cache);
            for (i, s) in subs.iter().enumerate() {
                sl.insert(s.as_bytes(), None, item(i + 1)).unwrap();
            }
            // Twice: the second answer comes from the cache when enabled.
            for _ in 0..2 {
                assert_eq!(
                    ids(&sl.match_subject(publish.as_bytes()).psubs),
                    *want,
                    "{subs:?} <- {publish}"
                );
            }
        }
    }
}

#[test]
fn same_subject_keeps_insertion_order() {
    let sl = Sublist::new();
    let items: Vec<_> = (0..100).map(item).collect();
    for it in &items {
        sl.insert(b"foo", None, it.clone()).unwrap();
    }
    assert_eq!(
        ids(&sl.match_subject(b"foo").psubs),
        (0..100).collect::<Vec<_>>()
    );
    assert!(sl.remove(b"foo", None, &items[50]));
    assert!(sl.remove(b"foo", None, &items[0]));
    sl.insert(b"foo", None, items[0].clone()).unwrap();
    let mut want: Vec<usize> = (1..100).filter(|&x| x != 50).collect();
    want.push(0);
    assert_eq!(ids(&sl.match_subject(b"foo").psubs), want);
}

#[test]
fn queue_groups_group_by_name_and_merge_across_subjects() {
    let sl = Sublist::new();
    sl.insert(b"a.b", Some(b"q2"), item(1)).unwrap();
    sl.insert(b"a.b", Some(b"q1"), item(2)).unwrap();
    sl.insert(b"a.b", Some(b"q2"), item(3)).unwrap();
    sl.insert(b"a.b", None, item(4)).unwrap();
    sl.insert(b"a.*", Some(b"q1"), item(5)).unwrap();
    sl.insert(b"a.*", Some(b"q3"), item(6)).unwrap();
    sl.insert(b">", Some(b"q3"), item(7)).unwrap();
    let r = sl.match_subject(b"a.b");
    assert_eq!(ids(&r.psubs), vec![4]);
    // Walk order: `>` node (q3: 7), literal a.b (q2: 1,3 then q1: 2), a.* (q1: 5, q3: 6).
    assert_eq!(qids(&r), vec![vec![7, 6], vec![1, 3], vec![2, 5]]);
    // Queue subs alone don't show up as plain subs, and different names stay apart.
    let r = sl.match_subject(b"a.c");
    assert!(r.psubs.is_empty());
    assert_eq!(qids(&r), vec![vec![7, 6], vec![5]]);
    // Same subject, queue and item twice is refused; other queue is fine.
    let x = item(9);
    sl.insert(b"x", Some(b"q"), x.clone()).unwrap();
    assert_eq!(
        sl.insert(b"x", Some(b"q"), x.clone()),
        Err(SublistError::Duplicate)
    );
    sl.insert(b"x", Some(b"r"), x.clone()).unwrap();
    sl.insert(b"x", None, x.clone()).unwrap();
    assert!(!sl.remove(b"x", Some(b"zz"), &x));
    assert!(sl.remove(b"x", Some(b"q"), &x));
    assert!(!sl.remove(b"x", Some(b"q"), &x));
    // `>` (q3: 7) also matches `x`.
    assert_eq!(qids(&sl.match_subject(b"x")), vec![vec![7], vec![9]]);
}

#[test]
fn rejects_bad_input() {
    let sl: Sublist<usize> = Sublist::new();
    for bad in [
        &b""[..],
        b".",
        b"a..b",
        b".a",
        b"a.",
        b"a.>.b",
        b"a b",
        b"a\tb",
        b">.>",
    ] {
        assert_eq!(
            sl.insert(bad, None, item(0)),
            Err(SublistError::InvalidSubject),
            "{bad:?}"
        );
    }
    assert_eq!(
        sl.insert(b"a", Some(b""), item(0)),
        Err(SublistError::InvalidQueue)
    );
    assert_eq!(
        sl.insert(b"a", Some(b"q x"), item(0)),
        Err(SublistError::InvalidQueue)
    );
    assert_eq!(sl.count(), 0);
    assert_eq!(sl.genid(), 0, "failed inserts must not bump genid");
    // Accepted oddities from the protocol reference.
    sl.insert(b"a.b*", None, item(1)).unwrap();
    sl.insert(b"a.>", Some(b".b"), item(2)).unwrap();
    assert_eq!(sl.count(), 2);
    // Malformed publish subjects match nothing and are not cached.
    for bad in [&b""[..], b".", b"a..b", b"a.", b".a.b*"] {
        assert!(sl.match_subject(bad).is_empty(), "{bad:?}");
        assert!(!sl.has_interest(bad));
    }
    assert_eq!(sl.cache_len(), 0);
    assert!(!sl.remove(b"a..b", None, &item(1)));
}

#[test]
fn wildcard_tokens_in_publish_subjects_are_literal() {
    let sl = Sublist::new();
    sl.insert(b"foo.*", None, item(1)).unwrap();
    sl.insert(b"foo.bar", None, item(2)).unwrap();
    sl.insert(b"foo.>", None, item(3)).unwrap();
    assert_eq!(ids(&sl.match_subject(b"foo.*").psubs), vec![3, 1]);
    assert_eq!(ids(&sl.match_subject(b"foo.>").psubs), vec![3, 1]);
    assert_eq!(ids(&sl.match_subject(b"foo.bar").psubs), vec![3, 2, 1]);
}

#[test]
fn has_interest_agrees_with_match() {
    for cache in [false, true] {
        let sl = Sublist::with_cache(cache);
        sl.insert(b"a.*.c", None, item(1)).unwrap();
        sl.insert(b"x.>", Some(b"q"), item(2)).unwrap();
        // An interior node without subscriptions is not interest.
        sl.insert(b"m.n.o", None, item(3)).unwrap();
        for (s, want) in [
            ("a.b.c", true),
            ("a.b", false),
            ("x.y.z", true),
            ("x", false),
            ("m.n", false),
            ("m.n.o", true),
        ] {
            assert_eq!(sl.has_interest(s.as_bytes()), want, "{s}");
            assert_eq!(!sl.match_subject(s.as_bytes()).is_empty(), want, "{s}");
            // Now possibly from the cache.
            assert_eq!(sl.has_interest(s.as_bytes()), want, "{s}");
        }
    }
}

/// Fills the cache with every probe subject, then changes subscriptions and checks that
/// the next match of every probe reflects each change.
#[test]
fn cache_reflects_inserts_and_removes() {
    let probes = [
        "a", "b", "a.b", "a.c", "b.c", "a.b.c", "a.b.d", "x.y.z", "a.*", "q.r",
    ];
    let sl = Sublist::new();
    let base = item(0);
    sl.insert(b"a.b", None, base.clone()).unwrap();
    let changes: &[(&str, Option<&str>)] = &[
        ("a.*", None),
        (">", None),
        ("a.>", Some("g")),
        ("*.c", Some("g")),
        ("a.b.c", None),
        ("*.*.*", Some("h")),
        ("q.r", Some("g")),
        ("*", None),
    ];
    let mut live: Vec<(&str, Option<&str>, Arc<usize>)> = vec![("a.b", None, base)];
    let expected = |live: &[(&str, Option<&str>, Arc<usize>)], p: &str| -> (Vec<usize>, usize) {
        let mut plain: Vec<usize> = Vec::new();
        let mut queued = 0;
        for (s, q, it) in live {
            if subject_matches(s.as_bytes(), p.as_bytes()) {
                if q.is_none() {
                    plain.push(**it)
                } else {
                    queued += 1
                }
            }
        }
        plain.sort();
        (plain, queued)
    };
    let check = |sl: &Sublist<usize>, live: &[(&str, Option<&str>, Arc<usize>)]| {
        for p in probes {
            let r = sl.match_subject(p.as_bytes());
            let mut got = ids(&r.psubs);
            got.sort();
            let queued: usize = r.qsubs.iter().map(Vec::len).sum();
            assert_eq!((got, queued), expected(live, p), "probe {p}");
        }
        assert_eq!(sl.cache_len(), probes.len(), "every probe cached");
    };
    check(&sl, &live);
    for (i, (s, q)) in changes.iter().enumerate() {
        let it = item(i + 1);
        sl.insert(s.as_bytes(), q.map(str::as_bytes), it.clone())
            .unwrap();
        live.push((s, *q, it));
        check(&sl, &live);
    }
    while let Some((s, q, it)) = live.pop() {
        assert!(sl.remove(s.as_bytes(), q.map(str::as_bytes), &it));
        check(&sl, &live);
    }
    assert_eq!(sl.node_count(), 0);
}

#[test]
fn invalidation_is_selective() {
    let sl = Sublist::new();
    sl.insert(b"keep.me", None, item(1)).unwrap();
    for s in ["keep.me", "a.b", "a.c", "z"] {
        sl.match_subject(s.as_bytes());
    }
    assert_eq!(sl.cache_len(), 4);
    sl.insert(b"a.*", None, item(2)).unwrap();
    assert_eq!(sl.cache_len(), 2, "only a.b and a.c are matched by a.*");
    sl.insert(b"z", Some(b"q"), item(3)).unwrap();
    assert_eq!(sl.cache_len(), 1);
    let before = sl.stats().cache_hits;
    assert_eq!(ids(&sl.match_subject(b"keep.me").psubs), vec![1]);
    assert_eq!(
        sl.stats().cache_hits,
        before + 1,
        "untouched entry still served from cache"
    );
}

#[test]
fn match_once_uses_but_does_not_fill_the_cache() {
    let sl = Sublist::new();
    sl.insert(b"$JS.ACK.>", None, item(1)).unwrap();
    sl.insert(b"a.*", None, item(2)).unwrap();
    for i in 0..100 {
        let s = format!("$JS.ACK.S.C.1.{i}.{i}.0.0");
        assert_eq!(ids(&sl.match_subject_once(s.as_bytes()).psubs), vec![1]);
    }
    assert_eq!(sl.cache_len(), 0);
    assert!(sl.match_subject_once(b"b").psubs.is_empty());
    // A cached result is still used.
    assert_eq!(ids(&sl.match_subject(b"a.x").psubs), vec![2]);
    assert_eq!(sl.cache_len(), 1);
    assert_eq!(ids(&sl.match_subject_once(b"a.x").psubs), vec![2]);
    assert_eq!(sl.stats().num_matches, 103);
}

#[test]
fn cache_is_bounded() {
    let sl = Sublist::new();
    sl.insert(b">", None, item(1)).unwrap();
    for i in 0..5000 {
        let s = format!("s.{i}");
        assert_eq!(ids(&sl.match_subject(s.as_bytes()).psubs), vec![1]);
        assert!(sl.cache_len() <= cache::CACHE_MAX);
    }
    assert_eq!(sl.cache_len(), cache::CACHE_MAX);
    assert_eq!(sl.stats().num_cache, cache::CACHE_MAX as u64);
}

#[test]
fn genid_moves_on_every_change_and_only_then() {
    let sl = Sublist::new();
    let a = item(1);
    let mut g = sl.genid();
    sl.insert(b"foo", None, a.clone()).unwrap();
    assert!(sl.genid() > g);
    g = sl.genid();
    assert!(sl.insert(b"foo", None, a.clone()).is_err());
    assert!(!sl.remove(b"bar", None, &a));
    sl.match_subject(b"foo");
    assert_eq!(sl.genid(), g);
    assert!(sl.remove(b"foo", None, &a));
    assert!(sl.genid() > g);
}

/// (subject, queue, item) as handed to `remove_batch`.
type BatchItem<'a> = (String, Option<&'a [u8]>, Arc<usize>);

#[test]
fn remove_batch_removes_present_items_with_one_bump() {
    for n in [3usize, 50] {
        let sl = Sublist::new();
        let items: Vec<_> = (0..n).map(item).collect();
        for (i, it) in items.iter().enumerate() {
            let subject = format!("s.{}.x", i % 7);
            let queue = (i % 3 == 0).then_some(&b"q"[..]);
            sl.insert(subject.as_bytes(), queue, it.clone()).unwrap();
        }
        sl.insert(b"s.*.x", None, item(999)).unwrap();
        for i in 0..7 {
            sl.match_subject(format!("s.{i}.x").as_bytes());
        }
        sl.match_subject(b"unrelated");
        let g = sl.genid();
        let mut batch: Vec<BatchItem<'_>> = items
            .iter()
            .enumerate()
            .map(|(i, it)| {
                (
                    format!("s.{}.x", i % 7),
                    (i % 3 == 0).then_some(&b"q"[..]),
                    it.clone(),
                )
            })
            .collect();
        // Absent entries are skipped.
        batch.push(("s.0.x".into(), None, item(5000)));
        batch.push(("nope".into(), None, items[0].clone()));
        assert_eq!(sl.remove_batch(batch), n);
        assert_eq!(sl.genid(), g + 1);
        // A small batch invalidates selectively; a large one clears the cache.
        let hits = sl.stats().cache_hits;
        assert!(sl.match_subject(b"unrelated").is_empty());
        assert_eq!(
            sl.stats().cache_hits - hits,
            u64::from(n <= 8),
            "batch of {n}"
        );
        assert_eq!(sl.count(), 1);
        for i in 0..7 {
            let r = sl.match_subject(format!("s.{i}.x").as_bytes());
            assert_eq!(ids(&r.psubs), vec![999]);
            assert!(r.qsubs.is_empty());
        }
        assert_eq!(
            sl.remove_batch(Vec::<(&[u8], Option<&[u8]>, Arc<usize>)>::new()),
            0
        );
        assert_eq!(sl.genid(), g + 1, "empty batch does not bump");
        sl.check().unwrap();
    }
}

#[test]
fn stats_follow_nats_server_definitions() {
    let sl = Sublist::new();
    sl.insert(b"a", None, item(1)).unwrap();
    sl.insert(b"a", None, item(2)).unwrap();
    sl.insert(b"a", Some(b"q"), item(3)).unwrap();
    sl.insert(b"a", Some(b"q"), item(4)).unwrap();
    sl.insert(b"b", None, item(5)).unwrap();
    let x = item(6);
    sl.insert(b"c", None, x.clone()).unwrap();
    assert!(sl.remove(b"c", None, &x));
    sl.match_subject(b"a"); // miss
    sl.match_subject(b"a"); // hit
    sl.match_subject(b"b"); // miss
    sl.match_subject(b"b"); // hit
    let st = sl.stats();
    assert_eq!(st.num_subs, 5);
    assert_eq!(st.num_inserts, 6);
    assert_eq!(st.num_removes, 1);
    assert_eq!(st.num_matches, 4);
    assert_eq!(st.cache_hits, 2);
    assert_eq!(st.num_cache, 2);
    assert!((st.cache_hit_rate - 0.5).abs() < 1e-9);
    // Fanout: "a" = 2 plain + 1 group = 3, "b" = 1.
    assert_eq!(st.max_fanout, 3);
    assert!((st.avg_fanout - 2.0).abs() < 1e-9);
    let mut sum = SublistStats::default();
    sum.add(&st);
    sum.add(&SublistStats {
        num_matches: 4,
        num_cache: 2,
        total_fanout: 2,
        max_fanout: 1,
        ..Default::default()
    });
    assert_eq!(sum.num_matches, 8);
    assert!((sum.cache_hit_rate - 0.25).abs() < 1e-9);
    assert!((sum.avg_fanout - 1.5).abs() < 1e-9);
    assert_eq!(sum.max_fanout, 3);
    let off: Sublist<usize> = Sublist::with_cache(false);
    off.match_subject(b"a");
    let st = off.stats();
    assert_eq!(
        (st.num_cache, st.num_matches, st.cache_hit_rate),
        (0, 1, 0.0)
    );
}

#[test]
fn for_each_lists_every_subscription() {
    let sl = Sublist::new();
    let want = [
        ("a", None, 1),
        ("a", None, 2),
        ("a.b.c", Some("q"), 3),
        ("a.*", None, 4),
        ("a.>", Some("w"), 5),
        (">", None, 6),
        ("*.b*", None, 7),
    ];
    for (s, q, i) in want {
        sl.insert(s.as_bytes(), q.map(str::as_bytes), item(i))
            .unwrap();
    }
    let mut got: Vec<(String, Option<String>, usize)> = Vec::new();
    sl.for_each(|s, q, it| {
        got.push((
            String::from_utf8_lossy(s).into_owned(),
            q.map(|q| String::from_utf8_lossy(q).into_owned()),
            **it,
        ))
    });
    got.sort_by_key(|x| x.2);
    let want: Vec<_> = want
        .iter()
        .map(|(s, q, i)| (s.to_string(), q.map(String::from), *i))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn matching_subs_for_pattern_examples() {
    let sl = Sublist::new();
    for (i, s) in [
        "foo.bar",
        "foo.bar.baz",
        "foo.baz",
        "foo.*",
        "foo.>",
        "*",
        ">",
        "bar",
    ]
    .iter()
    .enumerate()
    {
        sl.insert(s.as_bytes(), None, item(i)).unwrap();
    }
    let sorted = |p: &str| {
        let mut v = ids(&sl.matching_subs_for_pattern(p.as_bytes()));
        v.sort();
        v
    };
    assert_eq!(sorted("foo.*"), vec![0, 2, 3, 4, 6]);
    assert_eq!(sorted("foo.bar"), vec![0, 3, 4, 6]);
    assert_eq!(sorted("foo"), vec![5, 6]);
    assert_eq!(sorted(">"), (0..8).collect::<Vec<_>>());
    assert_eq!(sorted("*.bar.>"), vec![1, 4, 6]);
    assert!(sorted("a..b").is_empty());
}

#[test]
fn insert_remove_many_leaves_nothing_behind() {
    for cache in [false, true] {
        let sl = Sublist::with_cache(cache);
        let items: Vec<_> = (0..20_000).map(item).collect();
        let subject = |i: usize| format!("foo.{}.bar.{}", i % 97, i);
        for (i, it) in items.iter().enumerate() {
            sl.insert(
                subject(i).as_bytes(),
                (i % 5 == 0).then_some(&b"q"[..]),
                it.clone(),
            )
            .unwrap();
        }
        sl.insert(b"foo.*.bar.>", None, item(1_000_000)).unwrap();
        assert_eq!(sl.count(), 20_001);
        assert_eq!(
            ids(&sl.match_subject(subject(1234).as_bytes()).psubs),
            vec![1_000_000, 1234]
        );
        sl.check().unwrap();
        for (i, it) in items.iter().enumerate() {
            assert!(sl.remove(subject(i).as_bytes(), (i % 5 == 0).then_some(&b"q"[..]), it));
        }
        assert!(!sl.remove(b"foo.*.bar.>", None, &Arc::new(0)));
        assert_eq!(sl.count(), 1);
        sl.remove_batch([(
            &b"foo.*.bar.>"[..],
            None::<&[u8]>,
            sl.match_subject(b"foo.1.bar.2").psubs[0].clone(),
        )]);
        assert_eq!(sl.count(), 0);
        assert_eq!(sl.node_count(), 0);
        sl.check().unwrap();
        // Many subscribers on one subject: exercises the indexed set.
        for it in &items {
            sl.insert(b"hot", None, it.clone()).unwrap();
        }
        for it in items.iter().rev() {
            assert!(sl.remove(b"hot", None, it));
        }
        assert_eq!(sl.node_count(), 0);
    }
}

#[test]
fn deep_subjects_do_not_overflow_the_stack() {
    let run = || {
        let sl = Sublist::new();
        let deep_wild = vec!["*"; 50_000].join(".");
        let deep_lit = vec!["t"; 50_000].join(".");
        sl.insert(deep_wild.as_bytes(), Some(b"q"), item(1))
            .unwrap();
        sl.insert(format!("{deep_lit}.>").as_bytes(), None, item(2))
            .unwrap();
        let probe = format!("{deep_lit}.x");
        assert!(sl.match_subject(probe.as_bytes()).qsubs.is_empty());
        assert_eq!(ids(&sl.match_subject(probe.as_bytes()).psubs), vec![2]);
        assert_eq!(qids(&sl.match_subject(deep_lit.as_bytes())), vec![vec![1]]);
        assert_eq!(sl.matching_subs_for_pattern(b">").len(), 2);
        assert_eq!(sl.matching_subs_for_pattern(deep_lit.as_bytes()).len(), 1);
        let mut listed = 0;
        sl.for_each(|_, _, _| listed += 1);
        assert_eq!(listed, 2);
        sl.check().unwrap();
        drop(sl);
    };
    std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(run)
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn random_bytes_are_handled() {
    let run = || {
        let sl = Sublist::new();
        sl.insert(b"a.>", None, item(1)).unwrap();
        sl.insert(b"*", Some(b"q"), item(2)).unwrap();
        // Random bytes everywhere: no panic, and validity decides acceptance.
        let mut rng = Rng::new(7);
        let alphabet = b"ab.*> \t\r\n\x00\xff";
        for _ in 0..20_000 {
            let len = rng.below(12);
            let s: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.below(alphabet.len())])
                .collect();
            let valid = is_valid_subject(&s);
            assert_eq!(sl.insert(&s, None, item(3)).is_ok(), valid, "{s:?}");
            let _ = sl.match_subject(&s);
            let _ = sl.has_interest(&s);
            let _ = sl.matching_subs_for_pattern(&s);
            let _ = (
                subjects_collide(&s, b"a.>"),
                subject_is_subset_match(&s, b"*.b"),
                subject_matches(&s, b"a"),
            );
            if valid {
                let mut found = false;
                sl.for_each(|subj, _, _| found |= subj == s.as_slice());
                assert!(found);
                assert!(
                    sl.remove(
                        &s,
                        None,
                        &sl.matching_subs_for_pattern(&s)
                            .into_iter()
                            .find(|x| **x == 3)
                            .unwrap()
                    )
                );
            }
        }
        sl.check().unwrap();
        assert_eq!(sl.count(), 2);
        drop(sl);
    };
    std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(run)
        .unwrap()
        .join()
        .unwrap();
}

// ---------------------------------------------------------------------------------------
// Randomized differential test.

/// One subscription as the oracle sees it.
#[derive(Clone)]
struct OracleSub {
    subject: String,
    queue: Option<String>,
    item: usize,
    /// Global insertion sequence: order within one subject.
    seq: u64,
}

/// Brute force model: a list of subscriptions, matched with `subject_matches`, ordered
/// by a declarative statement of nats-server's walk order.
#[derive(Default)]
struct Oracle {
    subs: Vec<OracleSub>,
    /// (subject, queue) → sequence number of the group's creation on that subject.
    group_seq: HashMap<(String, String), u64>,
    seq: u64,
}

impl Oracle {
    fn insert(&mut self, subject: &str, queue: Option<&str>, item: usize) -> bool {
        if !is_valid_subject(subject.as_bytes()) {
            return false;
        }
        let same = |s: &OracleSub| s.subject == subject && s.queue.as_deref() == queue;
        if self.subs.iter().any(|s| same(s) && s.item == item) {
            return false;
        }
        self.seq += 1;
        if let Some(q) = queue
            && !self.subs.iter().any(same)
        {
            self.group_seq
                .insert((subject.to_string(), q.to_string()), self.seq);
        }
        self.subs.push(OracleSub {
            subject: subject.into(),
            queue: queue.map(Into::into),
            item,
            seq: self.seq,
        });
        true
    }

    fn remove(&mut self, subject: &str, queue: Option<&str>, item: usize) -> bool {
        let pos = self
            .subs
            .iter()
            .position(|s| s.subject == subject && s.queue.as_deref() == queue && s.item == item);
        pos.map(|p| self.subs.remove(p)).is_some()
    }

    /// nats-server's walk order as a sort key: per pattern token, `>` first, then at an
    /// inner position `*` before the literal, at the last position the literal before
    /// `*`. Patterns matching the same subject with the same key are the same pattern.
    fn rank(pattern: &str, subject_tokens: usize) -> Vec<u8> {
        let last = subject_tokens - 1;
        pattern
            .split('.')
            .enumerate()
            .map(|(i, t)| match t {
                ">" => 0,
                "*" if i == last => 2,
                "*" => 1,
                _ if i == last => 1,
                _ => 2,
            })
            .collect()
    }

    fn expected(&self, subject: &str) -> (Vec<usize>, Vec<Vec<usize>>) {
        if subject.split('.').any(str::is_empty) {
            return (Vec::new(), Vec::new());
        }
        let n = subject.split('.').count();
        let mut hits: Vec<&OracleSub> = self
            .subs
            .iter()
            .filter(|s| subject_matches(s.subject.as_bytes(), subject.as_bytes()))
            .collect();
        let group = |s: &OracleSub| {
            s.queue.as_ref().map_or(0, |q| {
                self.group_seq
                    .get(&(s.subject.clone(), q.clone()))
                    .copied()
                    .unwrap_or(0)
            })
        };
        hits.sort_by_key(|s| (Self::rank(&s.subject, n), group(s), s.seq));
        let psubs = hits
            .iter()
            .filter(|s| s.queue.is_none())
            .map(|s| s.item)
            .collect();
        let mut names: Vec<&str> = Vec::new();
        let mut qsubs: Vec<Vec<usize>> = Vec::new();
        for s in hits.iter().filter(|s| s.queue.is_some()) {
            let q = s.queue.as_deref().unwrap_or_default();
            match names.iter().position(|n| *n == q) {
                Some(i) => qsubs[i].push(s.item),
                None => {
                    names.push(q);
                    qsubs.push(vec![s.item]);
                }
            }
        }
        (psubs, qsubs)
    }

    fn colliding(&self, pattern: &str) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .subs
            .iter()
            .filter(|s| subjects_collide(s.subject.as_bytes(), pattern.as_bytes()))
            .map(|s| s.item)
            .collect();
        v.sort();
        v
    }
}

fn random_subject(rng: &mut Rng, wildcards: bool) -> String {
    let toks = ["a", "b", "c"];
    let n = 1 + rng.below(4);
    let mut out: Vec<&str> = Vec::new();
    for i in 0..n {
        let t = if wildcards && rng.chance(30) {
            if i == n - 1 && rng.chance(50) {
                ">"
            } else {
                "*"
            }
        } else {
            toks[rng.below(toks.len())]
        };
        out.push(t);
    }
    out.join(".")
}

fn publish_probes() -> Vec<String> {
    let mut probes = Vec::new();
    let mut frontier = vec![String::new()];
    for _ in 0..3 {
        let mut next = Vec::new();
        for p in &frontier {
            for t in ["a", "b", "c"] {
                let s = if p.is_empty() {
                    t.to_string()
                } else {
                    format!("{p}.{t}")
                };
                probes.push(s.clone());
                next.push(s);
            }
        }
        frontier = next;
    }
    probes.extend(["a.b.c.a", "c.c.c.c", "a.*", "*", "a.>", "b..c", "a.b.c.a.b"].map(String::from));
    probes
}

fn differential(seed: u64, cache: Option<usize>, ops: usize) {
    let mut rng = Rng::new(seed);
    let sl: Sublist<usize> = Sublist::with_cache_capacity(cache);
    let pool: Vec<Arc<usize>> = (0..12).map(Arc::new).collect();
    let mut oracle = Oracle::default();
    let probes = publish_probes();
    let queues = [None, None, None, Some("q1"), Some("q2")];
    for op in 0..ops {
        let genid = sl.genid();
        let changed = match rng.below(100) {
            0..=49 => {
                let s = random_subject(&mut rng, true);
                let q = queues[rng.below(queues.len())];
                let it = rng.below(pool.len());
                let want = oracle.insert(&s, q, it);
                let got = sl.insert(s.as_bytes(), q.map(str::as_bytes), pool[it].clone());
                assert_eq!(
                    got.is_ok(),
                    want,
                    "seed {seed} op {op}: insert {s} {q:?} {it}: {got:?}"
                );
                want
            }
            50..=84 if !oracle.subs.is_empty() => {
                let victim = oracle.subs[rng.below(oracle.subs.len())].clone();
                assert!(oracle.remove(&victim.subject, victim.queue.as_deref(), victim.item));
                let ok = sl.remove(
                    victim.subject.as_bytes(),
                    victim.queue.as_deref().map(str::as_bytes),
                    &pool[victim.item],
                );
                assert!(ok, "seed {seed} op {op}: remove {} failed", victim.subject);
                true
            }
            85..=89 => {
                // Probably absent.
                let s = random_subject(&mut rng, true);
                let it = rng.below(pool.len());
                let want = oracle.remove(&s, None, it);
                assert_eq!(
                    sl.remove(s.as_bytes(), None, &pool[it]),
                    want,
                    "seed {seed} op {op}"
                );
                want
            }
            _ => {
                let mut batch: Vec<(String, Option<String>, Arc<usize>)> = Vec::new();
                for _ in 0..rng.below(12) {
                    if oracle.subs.is_empty() {
                        break;
                    }
                    let v = oracle.subs[rng.below(oracle.subs.len())].clone();
                    if oracle.remove(&v.subject, v.queue.as_deref(), v.item) {
                        batch.push((v.subject, v.queue, pool[v.item].clone()));
                    }
                }
                let n = batch.len();
                batch.push(("zz.top".into(), None, pool[0].clone()));
                assert_eq!(sl.remove_batch(batch), n, "seed {seed} op {op}");
                n > 0
            }
        };
        if changed {
            assert_ne!(
                sl.genid(),
                genid,
                "seed {seed} op {op}: change without genid bump"
            );
        } else {
            assert_eq!(
                sl.genid(),
                genid,
                "seed {seed} op {op}: genid bumped without change"
            );
        }
        assert_eq!(sl.count(), oracle.subs.len());
        // A random sample of probes after every op, all of them now and then.
        let sample: Vec<&String> = if op % 64 == 0 {
            probes.iter().collect()
        } else {
            (0..6).map(|_| &probes[rng.below(probes.len())]).collect()
        };
        for p in sample {
            let r = sl.match_subject(p.as_bytes());
            let want = oracle.expected(p);
            assert_eq!(
                (ids(&r.psubs), qids(&r)),
                want,
                "seed {seed} op {op}: match {p}"
            );
            assert_eq!(
                sl.has_interest(p.as_bytes()),
                !r.is_empty(),
                "seed {seed} op {op}: interest {p}"
            );
        }
        let pattern = random_subject(&mut rng, true);
        let mut got = ids(&sl.matching_subs_for_pattern(pattern.as_bytes()));
        got.sort();
        assert_eq!(
            got,
            oracle.colliding(&pattern),
            "seed {seed} op {op}: pattern {pattern}"
        );
        if op % 256 == 0 {
            sl.check().unwrap();
        }
    }
    let all: Vec<_> = oracle
        .subs
        .iter()
        .map(|s| (s.subject.clone(), s.queue.clone(), pool[s.item].clone()))
        .collect();
    assert_eq!(sl.remove_batch(all), oracle.subs.len());
    assert_eq!(sl.count(), 0);
    assert_eq!(sl.node_count(), 0);
    sl.check().unwrap();
    for p in &probes {
        assert!(sl.match_subject(p.as_bytes()).is_empty());
    }
}

#[test]
fn differential_without_cache() {
    for seed in 1..=3 {
        differential(seed, None, 3000);
    }
}

#[test]
fn differential_with_cache() {
    for seed in 11..=13 {
        differential(seed, Some(cache::CACHE_MAX), 3000);
    }
}

#[test]
fn differential_with_tiny_cache() {
    // Constant eviction on top of invalidation.
    for seed in 21..=23 {
        differential(seed, Some(4), 3000);
    }
}

// ---------------------------------------------------------------------------------------
// Concurrency.

#[test]
fn concurrent_readers_and_writers() {
    let sl: Arc<Sublist<usize>> = Arc::new(Sublist::new());
    let stable = item(0);
    sl.insert(b"s.>", None, stable.clone()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for r in 0..4 {
        let (sl, stop) = (sl.clone(), stop.clone());
        readers.push(std::thread::spawn(move || {
            let mut rounds = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for i in 0..32 {
                    let s = format!("s.{}.{}", (i + r) % 8, i);
                    let res = sl.match_subject(s.as_bytes());
                    // The stable subscription is always there, and always first (`>`
                    // at level two precedes the literal subjects).
                    assert_eq!(res.psubs.first().map(|x| **x), Some(0));
                    assert!(sl.has_interest(s.as_bytes()));
                }
                rounds += 1;
            }
            rounds
        }));
    }
    // The writer checks read-your-writes through the cache after every change.
    let items: Vec<_> = (1..=2000).map(item).collect();
    for (i, it) in items.iter().enumerate() {
        let s = format!("s.{}.{}", i % 8, i % 32);
        let g = sl.genid();
        sl.insert(s.as_bytes(), None, it.clone()).unwrap();
        assert!(sl.genid() > g);
        assert!(
            sl.match_subject(s.as_bytes())
                .psubs
                .iter()
                .any(|x| Arc::ptr_eq(x, it))
        );
    }
    for (i, it) in items.iter().enumerate() {
        let s = format!("s.{}.{}", i % 8, i % 32);
        assert!(sl.remove(s.as_bytes(), None, it));
        assert!(
            !sl.match_subject(s.as_bytes())
                .psubs
                .iter()
                .any(|x| Arc::ptr_eq(x, it))
        );
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    assert_eq!(sl.count(), 1);
    sl.check().unwrap();
}

#[test]
fn sublist_is_send_and_sync() {
    fn assert_send_sync<X: Send + Sync>() {}
    assert_send_sync::<Sublist<usize>>();
    assert_send_sync::<Arc<SublistResult<String>>>();
}
