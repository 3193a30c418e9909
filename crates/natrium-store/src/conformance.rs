//! One test suite, every [`StreamStore`].
//!
//! Why a reusable suite: the memory and file stores must be indistinguishable to the
//! server except for durability. Each test here is a generic function taking a
//! [`Harness`] (how to open — and, for persistent stores, reopen — the store under test);
//! [`conformance_tests!`](crate::conformance_tests) expands to one `#[test]` per function,
//! so a new store (or a wrapper in another crate) gets the whole suite with one line.
//!
//! Tests that involve a restart only check persistence when `Harness::persistent()`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::consumer::{AckPolicy, ConsumerPolicy};
use crate::error::StoreError;
use crate::stream::StreamStore;
use crate::subject::SubjectFilter;
use crate::types::{Clock, DiscardPolicy, GroupMsg, ManualClock, StoreConfig, Ttl};

/// How the suite opens the store under test.
pub trait Harness {
    /// Opens the store (reopening the same one when persistent) with `cfg` and `clock`.
    /// The previous store returned by `open` has been dropped or stopped.
    fn open(&mut self, cfg: StoreConfig, clock: Arc<dyn Clock>) -> Box<dyn StreamStore>;
    /// True if a reopened store still has its data.
    fn persistent(&self) -> bool;
}

/// Start time of the manual clock used by the suite (2024-01-01T00:00:00Z).
pub const T0: i64 = 1_704_067_200_000_000_000;

fn clock() -> Arc<ManualClock> {
    ManualClock::new(T0)
}

fn f(s: &str) -> SubjectFilter {
    SubjectFilter::new(s).expect("valid filter")
}

fn open_default<H: Harness>(h: &mut H) -> (Box<dyn StreamStore>, Arc<ManualClock>) {
    let c = clock();
    (h.open(StoreConfig::default(), c.clone()), c)
}

/// Reopens a store: stop, drop, open again with the same config and clock.
fn reopen<H: Harness>(
    h: &mut H,
    s: Box<dyn StreamStore>,
    c: &Arc<ManualClock>,
) -> Box<dyn StreamStore> {
    let cfg = s.config();
    s.stop().expect("stop");
    drop(s);
    h.open(cfg, c.clone())
}

/// Store, load, sequence and timestamp basics.
pub fn store_and_load<H: Harness>(h: &mut H) {
    let (s, c) = open_default(h);
    let (seq, ts) = s.store_msg("foo", b"", b"hello", None).unwrap();
    assert_eq!((seq, ts), (1, T0));
    c.advance(Duration::from_millis(5));
    let hdr = b"NATS/1.0\r\nX: 1\r\n\r\n";
    let (seq2, ts2) = s.store_msg("bar.baz", hdr, b"world", None).unwrap();
    assert_eq!(seq2, 2);
    assert_eq!(ts2, T0 + 5_000_000);
    let m = s.load_msg(1).unwrap();
    assert_eq!(
        (m.seq, m.ts, m.subject.as_str(), &m.payload[..]),
        (1, T0, "foo", &b"hello"[..])
    );
    assert!(m.hdrs.is_empty());
    let m2 = s.load_msg(2).unwrap();
    assert_eq!(&m2.hdrs[..], &hdr[..]);
    assert_eq!(&m2.payload[..], b"world");
    assert!(matches!(s.load_msg(3), Err(StoreError::Eof)));
    assert!(matches!(s.load_msg(0), Err(StoreError::NotFound)));
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (2, 1, 2));
    assert_eq!((st.first_ts, st.last_ts), (T0, T0 + 5_000_000));
    assert_eq!(
        st.bytes,
        s.msg_size("foo", b"", b"hello") + s.msg_size("bar.baz", hdr, b"world")
    );
    assert_eq!(st.num_subjects, 2);
    assert_eq!(s.subject_for_seq(2).unwrap(), "bar.baz");
    assert!(s.has_msg(1) && s.has_msg(2));
    assert!(
        !s.has_msg(0) && !s.has_msg(3),
        "none before the first or past the end"
    );
    assert!(s.store_msg("", b"", b"x", None).is_err());
    assert!(s.store_msg("a..b", b"", b"x", None).is_err());
    // Empty payload is fine.
    let (seq3, _) = s.store_msg("e", b"", b"", None).unwrap();
    assert!(s.load_msg(seq3).unwrap().payload.is_empty());
}

/// Subjects with wildcard tokens are stored as they are (nats-server stores a publish
/// to `a.*`); as a filter, a wildcard matches them like any other token.
pub fn wildcard_subjects<H: Harness>(h: &mut H) {
    let (s, c) = open_default(h);
    let fill = |s: &dyn StreamStore| {
        for subject in ["a.*", "a.b", "a.>", "a.b.*"] {
            s.store_msg(subject, b"", subject.as_bytes(), None).unwrap();
        }
    };
    fill(&*s);
    let s = reopen(h, s, &c);
    if !h.persistent() {
        fill(&*s);
    }
    assert_eq!(s.subject_for_seq(1).unwrap(), "a.*");
    assert_eq!(
        s.load_last_msg(&f("a.*")).unwrap().seq,
        3,
        "a.> is one token under a.*"
    );
    let literal = s.subjects_totals(&f("a.b.*"));
    assert_eq!(literal.get("a.b.*"), Some(&1), "{literal:?}");
    let all = s.subjects_totals(&f(">"));
    assert_eq!(all.len(), 4, "{all:?}");
    assert_eq!(s.filtered_state(0, &f("a.*")).msgs, 3);
    // A purge by a stored wildcard subject purges what it matches, itself included.
    assert_eq!(s.purge_ex(&f("a.*"), 0, 0).unwrap(), 3);
    assert_eq!(s.subject_for_seq(4).unwrap(), "a.b.*");
    assert_eq!(s.fast_state().msgs, 1);
}

/// `append_msg` + `wait_durable` and `sync`.
pub fn append_and_wait<H: Harness>(h: &mut H) {
    let (s, _c) = open_default(h);
    let mut last = None;
    for i in 0..50u64 {
        let ack = s.append_msg("a", b"", &i.to_le_bytes(), None).unwrap();
        assert_eq!(ack.seq, i + 1);
        // The writer sees what it appended at once, durable or not (its checks of the
        // next publish depend on it).
        let written = s
            .load_last_written(&SubjectFilter::new("a").unwrap())
            .unwrap();
        assert_eq!(
            (written.seq, &written.payload[..]),
            (i + 1, &i.to_le_bytes()[..])
        );
        last = Some(ack.ticket);
    }
    s.wait_durable(last.unwrap()).unwrap();
    s.sync().unwrap();
    for i in 0..50u64 {
        assert_eq!(&s.load_msg(i + 1).unwrap().payload[..], &i.to_le_bytes());
    }
}

/// `store_raw_msg` sequence checks and timestamps.
pub fn raw_store<H: Harness>(h: &mut H) {
    let (s, _c) = open_default(h);
    s.store_raw_msg("a", b"", b"1", 1, 42, None, false).unwrap();
    assert!(matches!(
        s.store_raw_msg("a", b"", b"2", 5, 43, None, false),
        Err(StoreError::SequenceMismatch {
            expected: 2,
            got: 5
        })
    ));
    s.store_raw_msg("a", b"", b"2", 0, 43, None, false).unwrap();
    let m = s.load_msg(2).unwrap();
    assert_eq!((m.seq, m.ts), (2, 43));
    assert_eq!(s.state().last_ts, 43);
}

/// Skipped sequences.
pub fn skip_msgs<H: Harness>(h: &mut H) {
    let (s, c) = open_default(h);
    assert_eq!(s.skip_msg(0).unwrap(), 1);
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (0, 2, 1));
    s.skip_msgs(2, 10).unwrap();
    assert_eq!(s.state().last_seq, 11);
    assert!(matches!(
        s.skip_msg(5),
        Err(StoreError::SequenceMismatch { .. })
    ));
    let (seq, _) = s.store_msg("a", b"", b"x", None).unwrap();
    assert_eq!(seq, 12);
    s.skip_msgs(0, 3).unwrap();
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (1, 12, 15));
    assert_eq!(st.num_deleted, 3);
    assert_eq!(st.deleted, vec![13, 14, 15]);
    let s = reopen(h, s, &c);
    if h.persistent() {
        let st = s.state();
        assert_eq!((st.msgs, st.first_seq, st.last_seq), (1, 12, 15));
    }
    if h.persistent() {
        assert_eq!(s.store_msg("a", b"", b"y", None).unwrap().0, 16);
    }
}

fn fill_subjects(s: &dyn StreamStore) {
    // seq: 1 a.1, 2 a.2, 3 b.1, 4 a.1, 5 c.x.y, 6 b.2, 7 a.1
    for subj in ["a.1", "a.2", "b.1", "a.1", "c.x.y", "b.2", "a.1"] {
        s.store_msg(subj, b"", subj.as_bytes(), None).unwrap();
    }
}

/// `load_next_msg` with literal, wildcard and multi filters.
pub fn load_next_filters<H: Harness>(h: &mut H) {
    let (s, _c) = open_default(h);
    fill_subjects(&*s);
    let next = |flt: &SubjectFilter, start| s.load_next_msg(flt, start).map(|m| m.seq);
    assert_eq!(next(&f("a.1"), 0).unwrap(), 1);
    assert_eq!(next(&f("a.1"), 2).unwrap(), 4);
    assert_eq!(next(&f("a.1"), 5).unwrap(), 7);
    assert!(matches!(next(&f("a.1"), 8), Err(StoreError::Eof)));
    assert_eq!(next(&f("b.*"), 4).unwrap(), 6);
    assert_eq!(next(&f("c.>"), 0).unwrap(), 5);
    assert!(matches!(next(&f("c.*"), 0), Err(StoreError::Eof)));
    assert_eq!(next(&f(">"), 3).unwrap(), 3);
    assert_eq!(next(&SubjectFilter::all(), 7).unwrap(), 7);
    let multi = SubjectFilter::multi(["b.2", "c.>"]).unwrap();
    assert_eq!(next(&multi, 0).unwrap(), 5);
    assert_eq!(next(&multi, 6).unwrap(), 6);
    assert!(matches!(next(&f("zzz"), 0), Err(StoreError::Eof)));
    // Deleted messages are skipped.
    assert!(s.remove_msg(4).unwrap());
    assert!(!s.has_msg(4) && s.has_msg(3) && s.has_msg(5));
    assert_eq!(next(&f("a.1"), 2).unwrap(), 7);
    assert_eq!(next(&f("*.1"), 4).unwrap(), 7);
}

/// Last-by-subject and previous loads.
pub fn load_last_and_prev<H: Harness>(h: &mut H) {
    let (s, _c) = open_default(h);
    fill_subjects(&*s);
    assert_eq!(s.load_last_msg(&f("a.1")).unwrap().seq, 7);
    assert_eq!(s.load_last_msg(&f("b.*")).unwrap().seq, 6);
    assert_eq!(s.load_last_msg(&f("a.2")).unwrap().seq, 2);
    assert_eq!(s.load_last_msg(&SubjectFilter::all()).unwrap().seq, 7);
    assert!(matches!(
        s.load_last_msg(&f("nope")),
        Err(StoreError::NotFound)
    ));
    assert_eq!(s.load_prev_msg(&f("a.1"), 6).unwrap().seq, 4);
    assert_eq!(s.load_prev_msg(&f("b.>"), 5).unwrap().seq, 3);
    assert_eq!(s.load_prev_msg(&SubjectFilter::all(), 100).unwrap().seq, 7);
    assert!(matches!(
        s.load_prev_msg(&f("b.1"), 2),
        Err(StoreError::NotFound)
    ));
    s.remove_msg(7).unwrap();
    assert_eq!(s.load_last_msg(&f("a.1")).unwrap().seq, 4);
    s.compact(3).unwrap();
    assert!(matches!(
        s.load_prev_msg(&SubjectFilter::all(), 2),
        Err(StoreError::Eof)
    ));
}

/// Interior deletes, deleted-sequence tracking, erase.
pub fn remove_and_deleted_tracking<H: Harness>(h: &mut H) {
    let (s, c) = open_default(h);
    for i in 0..10u32 {
        s.store_msg("x", b"", &i.to_be_bytes(), None).unwrap();
    }
    assert!(s.remove_msg(3).unwrap());
    assert!(s.remove_msg(5).unwrap());
    assert!(!s.remove_msg(5).unwrap());
    assert!(!s.remove_msg(99).unwrap());
    assert!(s.erase_msg(7).unwrap());
    assert!(matches!(s.load_msg(7), Err(StoreError::NotFound)));
    let st = s.state();
    assert_eq!(
        (st.msgs, st.first_seq, st.last_seq, st.num_deleted),
        (7, 1, 10, 3)
    );
    assert_eq!(st.deleted, vec![3, 5, 7]);
    assert_eq!(s.fast_state().num_deleted, 3);
    assert!(s.fast_state().deleted.is_empty());
    // Removing the first message advances first_seq; interior deletes below it vanish.
    s.remove_msg(1).unwrap();
    s.remove_msg(2).unwrap();
    let st = s.state();
    assert_eq!((st.first_seq, st.deleted.clone()), (4, vec![5, 7]));
    // Removing the last keeps last_seq.
    s.remove_msg(10).unwrap();
    let st = s.state();
    assert_eq!((st.last_seq, st.deleted.clone()), (10, vec![5, 7, 10]));
    let s = reopen(h, s, &c);
    if h.persistent() {
        let st = s.state();
        assert_eq!((st.msgs, st.first_seq, st.last_seq), (4, 4, 10));
        assert_eq!(st.deleted, vec![5, 7, 10]);
        assert!(matches!(s.load_msg(7), Err(StoreError::NotFound)));
        assert_eq!(&s.load_msg(8).unwrap().payload[..], &7u32.to_be_bytes());
    }
    if h.persistent() {
        assert_eq!(s.store_msg("x", b"", b"", None).unwrap().0, 11);
    }
}

/// Purge all: sequences are not reused, also across a restart.
pub fn purge_all<H: Harness>(h: &mut H) {
    let (s, c) = open_default(h);
    for _ in 0..20 {
        s.store_msg("p", b"", b"data", None).unwrap();
    }
    assert_eq!(s.purge().unwrap(), 20);
    let st = s.state();
    assert_eq!(
        (st.msgs, st.bytes, st.first_seq, st.last_seq),
        (0, 0, 21, 20)
    );
    assert!(matches!(s.load_msg(5), Err(StoreError::NotFound)));
    let s = reopen(h, s, &c);
    if h.persistent() {
        let st = s.state();
        assert_eq!((st.msgs, st.first_seq, st.last_seq), (0, 21, 20));
    }
    let (seq, _) = s.store_msg("p", b"", b"again", None).unwrap();
    if h.persistent() {
        assert_eq!(seq, 21);
    }
    assert_eq!(s.purge().unwrap(), 1);
    assert_eq!(s.purge().unwrap(), 0);
}

/// Purge with filter / sequence / keep.
pub fn purge_ex_variants<H: Harness>(h: &mut H) {
    let (s, c) = open_default(h);
    // orders.p.0 x3, orders.p.1 x2, other x2 interleaved
    for subj in [
        "orders.p.0",
        "orders.p.1",
        "other",
        "orders.p.0",
        "orders.p.1",
        "orders.p.0",
        "other",
    ] {
        s.store_msg(subj, b"", b"v", None).unwrap();
    }
    // Verified against nats-server: {"filter":"orders.p.0","keep":1} purges 2.
    assert_eq!(s.purge_ex(&f("orders.p.0"), 0, 1).unwrap(), 2);
    assert_eq!(s.filtered_state(0, &f("orders.p.0")).msgs, 1);
    assert_eq!(s.load_last_msg(&f("orders.p.0")).unwrap().seq, 6);
    // keep >= count purges nothing.
    assert_eq!(s.purge_ex(&f("orders.p.1"), 0, 5).unwrap(), 0);
    // seq bound is exclusive.
    assert_eq!(s.purge_ex(&f("orders.*.1"), 5, 0).unwrap(), 1);
    assert_eq!(s.load_next_msg(&f("orders.p.1"), 0).unwrap().seq, 5);
    // seq == 1 is a no-op.
    assert_eq!(s.purge_ex(&f("other"), 1, 0).unwrap(), 0);
    // Wildcard filter without bounds.
    assert_eq!(s.purge_ex(&f("orders.>"), 0, 0).unwrap(), 2);
    assert_eq!(s.state().msgs, 2);
    // Whole-stream keep.
    assert_eq!(s.purge_ex(&SubjectFilter::all(), 0, 1).unwrap(), 1);
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (1, 7, 7));
    let s = reopen(h, s, &c);
    if h.persistent() {
        let st = s.state();
        assert_eq!((st.msgs, st.first_seq, st.last_seq), (1, 7, 7));
    }
    // Whole-stream with seq = compact.
    for _ in 0..3 {
        s.store_msg("z", b"", b"", None).unwrap();
    }
    if h.persistent() {
        assert_eq!(s.purge_ex(&SubjectFilter::all(), 9, 0).unwrap(), 2);
        assert_eq!(s.state().first_seq, 9);
    }
}

/// Compact (remove below a sequence), also past the end.
pub fn compact_variants<H: Harness>(h: &mut H) {
    let (s, c) = open_default(h);
    for _ in 0..10 {
        s.store_msg("c", b"", b"0123456789", None).unwrap();
    }
    s.remove_msg(6).unwrap();
    assert_eq!(s.compact(5).unwrap(), 4);
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (5, 5, 10));
    assert_eq!(st.bytes, 5 * s.msg_size("c", b"", b"0123456789"));
    // Compacting to a deleted sequence starts at the next live one.
    assert_eq!(s.compact(6).unwrap(), 1);
    assert_eq!(s.state().first_seq, 7);
    // Compacting below first is a no-op.
    assert_eq!(s.compact(3).unwrap(), 0);
    // Past the end: everything goes and the next message gets that sequence.
    assert_eq!(s.compact(100).unwrap(), 4);
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (0, 100, 99));
    let s = reopen(h, s, &c);
    if h.persistent() {
        let st = s.state();
        assert_eq!((st.first_seq, st.last_seq), (100, 99));
    }
    if h.persistent() {
        assert_eq!(s.store_msg("c", b"", b"", None).unwrap().0, 100);
    }
}

/// Truncate (remove above a sequence; rewinds last_seq).
pub fn truncate_variants<H: Harness>(h: &mut H) {
    let (s, c) = open_default(h);
    for i in 0..10u8 {
        s.store_msg(if i % 2 == 0 { "even" } else { "odd" }, b"", &[i], None)
            .unwrap();
        c.advance(Duration::from_secs(1));
    }
    s.remove_msg(4).unwrap();
    s.truncate(6).unwrap();
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (5, 1, 6));
    assert_eq!(st.last_ts, T0 + 5_000_000_000);
    assert_eq!(st.deleted, vec![4]);
    assert_eq!(s.load_last_msg(&f("even")).unwrap().seq, 5);
    let s = reopen(h, s, &c);
    if h.persistent() {
        let st = s.state();
        assert_eq!((st.msgs, st.first_seq, st.last_seq), (5, 1, 6));
        assert_eq!(st.deleted, vec![4]);
        assert!(matches!(s.load_msg(7), Err(StoreError::Eof)));
    }
    if !h.persistent() {
        return;
    }
    let (seq, _) = s.store_msg("new", b"", b"n", None).unwrap();
    assert_eq!(seq, 7);
    assert_eq!(s.load_msg(7).unwrap().subject, "new");
    let s = reopen(h, s, &c);
    if h.persistent() {
        assert_eq!(s.load_msg(7).unwrap().subject, "new");
        assert_eq!(s.state().msgs, 6);
    }
}

/// Filtered state, subject state/totals, num pending, last seqs.
pub fn state_queries<H: Harness>(h: &mut H) {
    let (s, _c) = open_default(h);
    fill_subjects(&*s);
    let fs = s.filtered_state(0, &f("a.*"));
    assert_eq!((fs.msgs, fs.first, fs.last), (4, 1, 7));
    let fs = s.filtered_state(3, &f("a.*"));
    assert_eq!((fs.msgs, fs.first, fs.last), (2, 4, 7));
    let fs = s.filtered_state(0, &f("nope"));
    assert_eq!((fs.msgs, fs.first, fs.last), (0, 0, 0));
    let fs = s.filtered_state(2, &SubjectFilter::all());
    assert_eq!((fs.msgs, fs.first, fs.last), (6, 2, 7));
    let ss = s.subjects_state(&f("a.>"));
    assert_eq!(ss.len(), 2);
    let a1 = ss["a.1"];
    assert_eq!((a1.msgs, a1.first, a1.last), (3, 1, 7));
    let tot = s.subjects_totals(&SubjectFilter::all());
    assert_eq!(tot.len(), 5);
    assert_eq!(tot["b.2"], 1);
    assert_eq!(s.num_pending(0, &SubjectFilter::all(), false), 7);
    assert_eq!(s.num_pending(5, &f("a.1"), false), 1);
    assert_eq!(s.num_pending(0, &f("*.1"), false), 4);
    // last per subject: subjects whose last message is >= start.
    assert_eq!(s.num_pending(0, &SubjectFilter::all(), true), 5);
    assert_eq!(s.num_pending(6, &SubjectFilter::all(), true), 2);
    assert_eq!(s.last_seqs(&SubjectFilter::all()), vec![2, 3, 5, 6, 7]);
    assert_eq!(s.last_seqs(&f("b.*")), vec![3, 6]);
    let multi = SubjectFilter::multi(["a.2", "b.1"]).unwrap();
    assert_eq!(s.filtered_state(0, &multi).msgs, 2);
}

/// max_msgs / max_bytes with discard old.
pub fn limits_discard_old<H: Harness>(h: &mut H) {
    let c = clock();
    let s = h.open(
        StoreConfig {
            max_msgs: Some(5),
            ..Default::default()
        },
        c.clone(),
    );
    for i in 0..12u8 {
        s.store_msg("l", b"", &[i], None).unwrap();
    }
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (5, 8, 12));
    let sz = s.msg_size("l", b"", &[0]);
    s.update_config(StoreConfig {
        max_bytes: Some(sz * 3),
        ..Default::default()
    })
    .unwrap();
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.bytes), (3, 10, sz * 3));
    s.store_msg("l", b"", &[1], None).unwrap();
    assert_eq!(s.state().first_seq, 11);
    // Tighter max_msgs applies immediately.
    s.update_config(StoreConfig {
        max_msgs: Some(1),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(s.state().msgs, 1);
    let s = reopen(h, s, &c);
    if h.persistent() {
        let st = s.state();
        assert_eq!((st.msgs, st.first_seq, st.last_seq), (1, 13, 13));
    }
}

/// max_msgs / max_bytes / max_msg_size with discard new.
pub fn limits_discard_new<H: Harness>(h: &mut H) {
    let c = clock();
    let s = h.open(
        StoreConfig {
            max_msgs: Some(3),
            discard: DiscardPolicy::New,
            max_msg_size: Some(8),
            ..Default::default()
        },
        c,
    );
    for _ in 0..3 {
        s.store_msg("n", b"", b"x", None).unwrap();
    }
    let e = s.store_msg("n", b"", b"x", None).unwrap_err();
    assert!(matches!(e, StoreError::MaxMsgs { limit: 3 }), "{e:?}");
    assert!(e.is_limit());
    assert!(matches!(
        s.store_msg("n", b"", b"123456789", None),
        Err(StoreError::MsgTooLarge { size: 9, limit: 8 })
    ));
    assert_eq!(s.state().last_seq, 3, "failed stores use no sequence");
    // Raw stores without the check go through (replicated decisions).
    s.store_raw_msg("n", b"", b"x", 4, T0, None, false).unwrap();
    let sz = s.msg_size("n", b"", b"x");
    s.update_config(StoreConfig {
        max_bytes: Some(sz * 5),
        discard: DiscardPolicy::New,
        ..Default::default()
    })
    .unwrap();
    s.store_msg("n", b"", b"x", None).unwrap();
    assert!(matches!(
        s.store_msg("n", b"", b"x", None),
        Err(StoreError::MaxBytes { .. })
    ));
    assert_eq!(s.state().msgs, 5);
}

/// `append_group`: consecutive sequences with skips, one ticket; a group that breaks a
/// limit part way is taken back whole (sequences reused, nothing readable), also after a
/// reopen; with room, it goes in.
pub fn append_group<H: Harness>(h: &mut H) {
    let c = clock();
    let s = h.open(
        StoreConfig {
            max_msgs: Some(4),
            discard: DiscardPolicy::New,
            ..Default::default()
        },
        c.clone(),
    );
    s.store_msg("before", b"", b"0", None).unwrap();
    let m = |subject: &'static str, payload: &'static [u8], skip: bool| GroupMsg {
        subject,
        hdrs: b"NATS/1.0\r\nK: v\r\n\r\n",
        payload,
        ttl: None,
        skip,
    };
    let ack = s
        .append_group(&[
            m("g.a", b"1", false),
            m("g.skip", b"", true),
            m("g.b", b"2", false),
        ])
        .unwrap();
    s.wait_durable(ack.ticket).unwrap();
    assert_eq!(
        ack.stored.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
        vec![2, 3, 4]
    );
    assert!(ack.stored.iter().all(|(_, ts)| *ts >= T0));
    assert_eq!(s.load_msg(2).unwrap().payload.as_ref(), b"1");
    assert_eq!(s.load_msg(4).unwrap().subject, "g.b");
    assert!(!s.has_msg(3), "a skipped entry stores nothing");
    let st = s.state();
    assert_eq!((st.msgs, st.last_seq), (3, 4));
    // Two more would break max_msgs (4) at the second: neither stays.
    let e = s
        .append_group(&[m("h.a", b"3", false), m("h.b", b"4", false)])
        .unwrap_err();
    assert!(matches!(e, StoreError::MaxMsgs { limit: 4 }), "{e:?}");
    let st = s.state();
    assert_eq!(
        (st.msgs, st.last_seq),
        (3, 4),
        "the failed group is taken back"
    );
    assert!(s.load_last_msg(&f("h.a")).is_err());
    let s = reopen(h, s, &c);
    if h.persistent() {
        let st = s.state();
        assert_eq!((st.msgs, st.last_seq), (3, 4), "taken back across a reopen");
        assert!(s.load_last_msg(&f("h.a")).is_err());
    }
    // With room, the next group takes the sequence after the last kept one.
    let next = s.state().last_seq + 1;
    let ack = s.append_group(&[m("h.a", b"3", false)]).unwrap();
    s.wait_durable(ack.ticket).unwrap();
    assert_eq!(ack.stored[0].0, next);
    assert_eq!(s.load_msg(next).unwrap().payload.as_ref(), b"3");
}

/// max_msgs_per_subject, discard-new-per-subject and the rollup exception.
pub fn per_subject_limits<H: Harness>(h: &mut H) {
    let c = clock();
    let s = h.open(
        StoreConfig {
            max_msgs_per_subject: Some(2),
            ..Default::default()
        },
        c.clone(),
    );
    for i in 0..5u8 {
        s.store_msg("kv.a", b"", &[i], None).unwrap();
        s.store_msg("kv.b", b"", &[i], None).unwrap();
    }
    let tot = s.subjects_totals(&SubjectFilter::all());
    assert_eq!((tot["kv.a"], tot["kv.b"]), (2, 2));
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (4, 7, 10));
    assert!(st.deleted.is_empty());
    assert_eq!(s.load_next_msg(&f("kv.a"), 0).unwrap().seq, 7);
    assert_eq!(&s.load_last_msg(&f("kv.a")).unwrap().payload[..], &[4]);
    // Tightening enforces immediately.
    s.update_config(StoreConfig {
        max_msgs_per_subject: Some(1),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(s.state().msgs, 2);
    let s = reopen(h, s, &c);
    if h.persistent() {
        assert_eq!(s.state().msgs, 2);
        assert_eq!(&s.load_last_msg(&f("kv.b")).unwrap().payload[..], &[4]);
    } else {
        s.store_msg("kv.a", b"", &[4], None).unwrap();
        s.store_msg("kv.b", b"", &[4], None).unwrap();
    }
    // Discard new per subject.
    s.update_config(StoreConfig {
        max_msgs_per_subject: Some(1),
        discard: DiscardPolicy::New,
        discard_new_per_subject: true,
        ..Default::default()
    })
    .unwrap();
    assert!(matches!(
        s.store_msg("kv.a", b"", b"z", None),
        Err(StoreError::MaxMsgsPerSubject { .. })
    ));
    s.store_msg("kv.c", b"", b"new subject ok", None).unwrap();
    let rollup = b"NATS/1.0\r\nNats-Rollup: sub\r\n\r\n";
    let (seq, _) = s.store_msg("kv.a", rollup, b"r", None).unwrap();
    assert_eq!(s.load_last_msg(&f("kv.a")).unwrap().seq, seq);
    assert_eq!(s.subjects_totals(&f("kv.a"))["kv.a"], 1);
    // Plain discard new with max_msgs: a full subject is replaced, not refused.
    s.update_config(StoreConfig {
        max_msgs: Some(3),
        max_msgs_per_subject: Some(1),
        discard: DiscardPolicy::New,
        ..Default::default()
    })
    .unwrap();
    s.store_msg("kv.b", b"", b"replace", None).unwrap();
    assert!(matches!(
        s.store_msg("kv.d", b"", b"", None),
        Err(StoreError::MaxMsgs { .. })
    ));
}

/// max_age expiry driven by `expire(now)` with a manual clock.
pub fn max_age_expiry<H: Harness>(h: &mut H) {
    let c = clock();
    let s = h.open(
        StoreConfig {
            max_age: Some(Duration::from_secs(10)),
            ..Default::default()
        },
        c.clone(),
    );
    assert_eq!(s.next_expiry(), None);
    for i in 0..5u64 {
        s.store_msg("age", b"", b"", None).unwrap();
        if i == 2 {
            s.store_msg("age.never", b"", b"", Some(Ttl::Never))
                .unwrap();
        }
        c.advance(Duration::from_secs(1));
    }
    // Messages at T0..T0+4s (seq 1,2,3,5,6) and a never-expiring seq 4 at T0+2s.
    assert_eq!(s.next_expiry(), Some(T0 + 10_000_000_000));
    let rep = s.expire(T0 + 9_000_000_000).unwrap();
    assert_eq!(rep.removed, 0);
    let rep = s.expire(T0 + 12_000_000_000).unwrap();
    assert_eq!(rep.removed, 3);
    assert_eq!(rep.bytes, 3 * s.msg_size("age", b"", b""));
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq), (3, 4));
    assert_eq!(s.next_expiry(), Some(T0 + 13_000_000_000));
    let rep = s.expire(T0 + 100_000_000_000).unwrap();
    assert_eq!(rep.removed, 2);
    assert_eq!(rep.emptied_subjects, vec![("age".to_string(), 6)]);
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (1, 4, 6));
    assert_eq!(s.next_expiry(), None);
    let s = reopen(h, s, &c);
    if h.persistent() {
        let st = s.state();
        assert_eq!((st.msgs, st.first_seq, st.last_seq), (1, 4, 6));
        assert_eq!(s.load_msg(4).unwrap().ttl, Some(Ttl::Never));
    }
}

/// Per-message TTL expiry.
pub fn ttl_expiry<H: Harness>(h: &mut H) {
    let (s, c) = open_default(h);
    let fill = |s: &dyn StreamStore| {
        s.store_msg("t", b"", b"1", Some(Ttl::After(Duration::from_secs(5))))
            .unwrap();
        s.store_msg("t", b"", b"2", None).unwrap();
        s.store_msg("t", b"", b"3", Some(Ttl::After(Duration::from_secs(2))))
            .unwrap();
    };
    fill(&*s);
    assert_eq!(s.next_expiry(), Some(T0 + 2_000_000_000));
    let s = reopen(h, s, &c);
    if !h.persistent() {
        fill(&*s);
    }
    assert_eq!(s.next_expiry(), Some(T0 + 2_000_000_000));
    assert_eq!(s.expire(T0 + 1_000_000_000).unwrap().removed, 0);
    assert_eq!(s.expire(T0 + 2_000_000_000).unwrap().removed, 1);
    assert!(matches!(s.load_msg(3), Err(StoreError::NotFound)));
    assert_eq!(s.next_expiry(), Some(T0 + 5_000_000_000));
    assert_eq!(s.expire(T0 + 60_000_000_000).unwrap().removed, 1);
    assert_eq!(s.state().msgs, 1);
    assert_eq!(s.next_expiry(), None);
    assert_eq!(
        s.load_msg(1).err().map(|e| e.to_string()),
        Some("no message found".into())
    );
    let s = reopen(h, s, &c);
    if h.persistent() {
        assert_eq!(s.state().msgs, 1);
        assert_eq!(&s.load_msg(2).unwrap().payload[..], b"2");
    }
}

/// `seq_from_time`.
pub fn seq_from_time<H: Harness>(h: &mut H) {
    let (s, c) = open_default(h);
    assert_eq!(s.seq_from_time(T0), 1);
    for _ in 0..10 {
        s.store_msg("t", b"", b"", None).unwrap();
        c.advance(Duration::from_secs(1));
    }
    s.remove_msg(4).unwrap();
    assert_eq!(s.seq_from_time(0), 1);
    assert_eq!(s.seq_from_time(T0 + 3_000_000_000), 5);
    assert_eq!(s.seq_from_time(T0 + 2_500_000_000), 4 + 1);
    assert_eq!(s.seq_from_time(T0 + 2_000_000_000), 3);
    assert_eq!(s.seq_from_time(T0 + 9_000_000_000), 10);
    assert_eq!(s.seq_from_time(T0 + 9_000_000_001), 11);
}

/// Stream metadata and consumer state through the stream store.
pub fn meta_and_consumers<H: Harness>(h: &mut H) {
    let (s, c) = open_default(h);
    assert_eq!(s.stream_meta().unwrap(), None);
    s.write_stream_meta(br#"{"name":"S"}"#).unwrap();
    s.write_stream_meta(br#"{"name":"S","max_msgs":5}"#)
        .unwrap();
    let policy = ConsumerPolicy {
        ack: AckPolicy::Explicit,
        max_deliver: None,
    };
    let cs = s.consumer_store("dur", policy).unwrap();
    cs.write_config(b"cfg").unwrap();
    for i in 1..=5u64 {
        cs.update_delivered(i, i * 10, 1, T0).unwrap();
    }
    cs.update_acks(1, 10).unwrap();
    cs.update_acks(3, 30).unwrap();
    let want = cs.state();
    // The floor rises to just below the oldest pending delivery (seq 20).
    assert_eq!(want.ack_floor.stream, 19);
    assert_eq!(want.pending.len(), 3);
    assert_eq!(s.consumer_names().unwrap(), vec!["dur".to_string()]);
    drop(cs);
    let s = reopen(h, s, &c);
    if h.persistent() {
        assert_eq!(
            s.stream_meta().unwrap().as_deref(),
            Some(&br#"{"name":"S","max_msgs":5}"#[..])
        );
        assert_eq!(s.consumer_names().unwrap(), vec!["dur".to_string()]);
        let cs = s.consumer_store("dur", policy).unwrap();
        assert_eq!(cs.state(), want);
        assert_eq!(cs.config().unwrap().as_deref(), Some(&b"cfg"[..]));
        drop(cs);
    }
    s.remove_consumer("dur").unwrap();
    assert!(s.consumer_names().unwrap().is_empty());
    s.stop().unwrap();
    assert!(matches!(
        s.store_msg("a", b"", b"", None),
        Err(StoreError::Closed)
    ));
    assert!(matches!(s.load_msg(1), Err(StoreError::Closed)));
}

/// Readers run concurrently with an appender and always see consistent messages.
pub fn concurrent_readers<H: Harness>(h: &mut H) {
    let (s, _c) = open_default(h);
    let s: Arc<dyn StreamStore> = Arc::from(s);
    let n = 2000u64;
    std::thread::scope(|scope| {
        let w = s.clone();
        scope.spawn(move || {
            for i in 1..=n {
                let (seq, _) = w
                    .store_msg(&format!("c.{}", i % 7), b"", &i.to_le_bytes(), None)
                    .unwrap();
                assert_eq!(seq, i);
            }
        });
        for _ in 0..2 {
            let r = s.clone();
            scope.spawn(move || {
                let mut seen = 0u64;
                while seen < n {
                    match r.load_next_msg(&SubjectFilter::all(), seen + 1) {
                        Ok(m) => {
                            assert_eq!(m.seq, seen + 1);
                            assert_eq!(&m.payload[..], &m.seq.to_le_bytes());
                            assert_eq!(m.subject, format!("c.{}", m.seq % 7));
                            seen = m.seq;
                        }
                        Err(StoreError::Eof) => std::thread::yield_now(),
                        Err(e) => panic!("reader error {e}"),
                    }
                }
            });
        }
    });
    assert_eq!(s.state().msgs, n);
}

/// A pinned view keeps the messages up to its watermark as they were, whatever is
/// removed or appended afterwards (deletes, subject purges, full purges, limits); an
/// erased message is left out.
pub fn pinned_view_is_a_point_in_time<H: Harness>(h: &mut H) {
    let (s, c) = open_default(h);
    for i in 1..=20u64 {
        let subj = format!("s.{}", i % 3);
        s.store_msg(&subj, b"", format!("m{i}").as_bytes(), None)
            .unwrap();
        c.advance(Duration::from_millis(1));
    }
    s.remove_msg(2).unwrap();
    let mut v = s.pinned_view(15).unwrap();
    assert_eq!(v.watermark(), 15);
    // Read a few, then change everything.
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(v.next_msg().unwrap().unwrap());
    }
    s.remove_msg(10).unwrap();
    s.erase_msg(12).unwrap();
    s.purge_ex(&f("s.1"), 0, 0).unwrap();
    for i in 21..=30u64 {
        s.store_msg("late", b"", format!("m{i}").as_bytes(), None)
            .unwrap();
    }
    s.compact(25).unwrap();
    while let Some(m) = v.next_msg().unwrap() {
        got.push(m);
    }
    let seqs: Vec<u64> = got.iter().map(|m| m.seq).collect();
    let want: Vec<u64> = (1..=15).filter(|q| *q != 2 && *q != 12).collect();
    assert_eq!(seqs, want);
    for m in &got {
        assert_eq!(&m.payload[..], format!("m{}", m.seq).as_bytes());
        assert_eq!(m.subject, format!("s.{}", m.seq % 3));
    }
    // The store itself moved on.
    assert!(s.load_msg(10).is_err());
    assert_eq!(s.state().first_seq, 25);
    // A view past the end stops at the last sequence; of an empty store, nothing.
    let mut v = s.pinned_view(1_000).unwrap();
    assert_eq!(v.watermark(), 30);
    assert_eq!(v.next_msg().unwrap().map(|m| m.seq), Some(25));
    s.purge().unwrap();
    let mut v = s.pinned_view(0).unwrap();
    assert!(v.next_msg().unwrap().is_none());
}

/// A pinned view's state describes exactly what the view holds: messages above the
/// watermark (a backup leaves out those not yet durable) are left out of every count,
/// bytes and subjects included, and later changes to the store do not move it.
pub fn pinned_view_state_is_as_of_its_watermark<H: Harness>(h: &mut H) {
    let (s, c) = open_default(h);
    for i in 1..=10u64 {
        s.store_msg(
            &format!("s.{}", i % 3),
            b"",
            format!("m{i}").as_bytes(),
            None,
        )
        .unwrap();
        c.advance(Duration::from_millis(1));
    }
    s.remove_msg(4).unwrap();
    let want = s.fast_state();
    assert_eq!((want.msgs, want.last_seq, want.num_deleted), (9, 10, 1));
    // Above the watermark: a subject of its own, and more of an old one.
    for subj in ["only.late", "only.late", "s.1"] {
        s.store_msg(subj, b"", b"a late message, longer than the others", None)
            .unwrap();
        c.advance(Duration::from_millis(1));
    }
    assert_eq!(s.fast_state().num_subjects, 4);
    let v = s.pinned_view(10).unwrap();
    let got = v.state();
    assert_eq!(got.msgs, want.msgs);
    assert_eq!(got.bytes, want.bytes);
    assert_eq!(
        (got.first_seq, got.first_ts),
        (want.first_seq, want.first_ts)
    );
    assert_eq!((got.last_seq, got.last_ts), (want.last_seq, want.last_ts));
    assert_eq!(got.num_subjects, 3);
    assert_eq!(got.num_deleted, want.num_deleted);
    // The store moving on does not move the view's state.
    s.remove_msg(1).unwrap();
    s.store_msg("s.0", b"", b"later still", None).unwrap();
    assert_eq!(v.state(), got);
    // A watermark in a run of removed messages: the last live one before it gives
    // last_ts; a view of nothing is an empty state after the watermark.
    s.remove_msg(10).unwrap();
    s.remove_msg(9).unwrap();
    let v = s.pinned_view(10).unwrap();
    let got = v.state();
    assert_eq!((got.msgs, got.last_seq), (6, 10));
    assert_eq!(got.last_ts, s.load_msg(8).unwrap().ts);
    assert_eq!(got.num_deleted, 10 - 2 + 1 - 6);
    let v = s.pinned_view(1).unwrap();
    let got = v.state();
    assert_eq!((got.msgs, got.bytes, got.num_subjects), (0, 0, 0));
    assert_eq!((got.first_seq, got.last_seq, got.num_deleted), (2, 1, 0));
    // At or past the end, the view's state is the store's.
    let v = s.pinned_view(1_000).unwrap();
    let mut full = s.fast_state();
    full.deleted.clear();
    assert_eq!(v.state(), full);
}

/// Bulk reads of a pinned view (`next_batch`, what snapshots use) see the same point in
/// time while the store changes between batches; a message erased meanwhile is left out.
pub fn pinned_view_batches<H: Harness>(h: &mut H) {
    let (s, _c) = open_default(h);
    for i in 1..=50u64 {
        s.store_msg(
            &format!("b.{}", i % 4),
            b"",
            format!("p{i}").as_bytes(),
            None,
        )
        .unwrap();
    }
    s.remove_msg(3).unwrap();
    let mut v = s.pinned_view(40).unwrap();
    let mut batch = crate::stream::MsgBatch::default();
    let mut seqs = Vec::new();
    let mut first = true;
    let mut erased = 0;
    while v.next_batch(s.as_ref(), 40, &mut batch).unwrap() {
        for m in batch.iter() {
            assert_eq!(m.payload, format!("p{}", m.seq).as_bytes());
            assert_eq!(m.subject, format!("b.{}", m.seq % 4));
            seqs.push(m.seq);
        }
        if first {
            first = false;
            s.remove_msg(20).unwrap();
            // Batches may be read ahead of the reader (this one is among the next
            // few): the erase still wins.
            erased = seqs.last().copied().unwrap_or(0) + 2;
            if erased == 3 {
                erased = 4;
            }
            assert!(erased < 20);
            s.erase_msg(erased).unwrap();
            s.purge_ex(&f("b.1"), 0, 0).unwrap();
            s.compact(35).unwrap();
            s.store_msg("late", b"", b"x", None).unwrap();
        }
    }
    let want: Vec<u64> = (1..=40).filter(|q| *q != 3 && *q != erased).collect();
    assert_eq!(seqs, want);
}

/// An incremental backup's view (`split_at`): the sequences up to `since` that were gone
/// when the view was taken come back as ranges (removals after the pin do not count),
/// and reading starts after `since`, with bulk and single reads alike.
pub fn pinned_view_split_at<H: Harness>(h: &mut H) {
    let (s, _c) = open_default(h);
    for i in 1..=30u64 {
        s.store_msg(
            &format!("t.{}", i % 3),
            b"",
            format!("q{i}").as_bytes(),
            None,
        )
        .unwrap();
    }
    s.compact(3).unwrap();
    s.remove_msg(7).unwrap();
    s.remove_msg(8).unwrap();
    s.remove_msg(20).unwrap();
    for bulk in [false, true] {
        let mut v = s.pinned_view(25).unwrap();
        // Removed after the pin: still in the view, so not a tombstone.
        if !bulk {
            s.remove_msg(11).unwrap();
        }
        let absent = v.split_at(15).unwrap();
        if bulk {
            // Removed before this second view.
            assert_eq!(absent, vec![(1, 2), (7, 8), (11, 11)]);
        } else {
            assert_eq!(absent, vec![(1, 2), (7, 8)]);
        }
        let mut seqs = Vec::new();
        if bulk {
            let mut batch = crate::stream::MsgBatch::default();
            while v.next_batch(s.as_ref(), 64, &mut batch).unwrap() {
                seqs.extend(batch.iter().map(|m| m.seq));
            }
        } else {
            while let Some(m) = v.next_msg().unwrap() {
                seqs.push(m.seq);
            }
        }
        let want: Vec<u64> = (16..=25).filter(|q| *q != 20).collect();
        assert_eq!(seqs, want, "bulk {bulk}");
    }
    // Since beyond the watermark: everything up to the watermark, nothing to read.
    let mut v = s.pinned_view(25).unwrap();
    assert_eq!(
        v.split_at(40).unwrap(),
        vec![(1, 2), (7, 8), (11, 11), (20, 20)]
    );
    assert!(v.next_msg().unwrap().is_none());
    // Since 0: no tombstones, everything to read.
    let mut v = s.pinned_view(5).unwrap();
    assert_eq!(v.split_at(0).unwrap(), vec![]);
    assert_eq!(v.next_msg().unwrap().map(|m| m.seq), Some(3));
    // A stream without gaps (removals from the front only), before and after the pin:
    // 31..=60 after a purge.
    s.purge().unwrap();
    for i in 31..=60u64 {
        s.store_msg("u", b"", format!("r{i}").as_bytes(), None)
            .unwrap();
    }
    s.compact(34).unwrap();
    let mut v = s.pinned_view(55).unwrap();
    s.compact(42).unwrap();
    s.store_msg("u", b"", b"late", None).unwrap();
    assert_eq!(v.split_at(45).unwrap(), vec![(1, 33)]);
    let mut seqs = Vec::new();
    while let Some(m) = v.next_msg().unwrap() {
        seqs.push(m.seq);
    }
    assert_eq!(seqs, (46..=55).collect::<Vec<u64>>());
    let mut v = s.pinned_view(55).unwrap();
    assert_eq!(v.split_at(50).unwrap(), vec![(1, 41)]);
    let mut v = s.pinned_view(55).unwrap();
    assert_eq!(v.split_at(38).unwrap(), vec![(1, 38)]);
}

/// Tiny deterministic PRNG (xorshift64*), so the suite needs no dependencies.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator (seed 0 is remapped).
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    /// Next value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Random operations checked against a `BTreeMap` oracle (bounded count), with
/// restarts for persistent stores.
pub fn randomized_model<H: Harness>(h: &mut H) {
    let c = clock();
    let cfg = StoreConfig {
        max_msgs_per_subject: Some(4),
        ..Default::default()
    };
    let mut s = h.open(cfg.clone(), c.clone());
    // seq -> (subject, payload)
    let mut model: BTreeMap<u64, (String, Vec<u8>)> = BTreeMap::new();
    let mut last_seq = 0u64;
    let mut rng = Rng::new(0x5eed_1234);
    let subjects = ["m.a", "m.b", "m.c.x", "m.c.y", "n.z"];
    // A total the store's gauge is attached to, as an account's usage is; it also holds
    // other stores' bytes.
    const OTHERS: u64 = 5;
    let total = Arc::new(std::sync::atomic::AtomicU64::new(OTHERS));
    s.bytes_gauge().attach(total.clone());
    for step in 0..1500u32 {
        match rng.below(100) {
            0..=54 => {
                let subj = subjects[rng.below(subjects.len() as u64) as usize];
                let len = rng.below(64) as usize;
                let payload: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
                let (seq, _) = s.store_msg(subj, b"", &payload, None).unwrap();
                assert_eq!(seq, last_seq + 1, "step {step}");
                last_seq = seq;
                model.insert(seq, (subj.to_string(), payload));
                // Model the per-subject limit.
                let of_subj: Vec<u64> = model
                    .iter()
                    .filter(|(_, (sb, _))| sb == subj)
                    .map(|(k, _)| *k)
                    .collect();
                if of_subj.len() > 4 {
                    model.remove(&of_subj[0]);
                }
            }
            55..=69 => {
                let seq = rng.below(last_seq + 2);
                let want = model.remove(&seq).is_some();
                let got = if rng.below(2) == 0 {
                    s.remove_msg(seq).unwrap()
                } else {
                    s.erase_msg(seq).unwrap()
                };
                assert_eq!(got, want, "remove {seq} step {step}");
            }
            70..=74 => {
                let subj = subjects[rng.below(subjects.len() as u64) as usize];
                let keep = rng.below(3);
                let flt = f(subj);
                let matching: Vec<u64> = model
                    .iter()
                    .filter(|(_, (sb, _))| sb == subj)
                    .map(|(k, _)| *k)
                    .collect();
                let n = matching.len().saturating_sub(keep as usize);
                for k in &matching[..n] {
                    model.remove(k);
                }
                assert_eq!(s.purge_ex(&flt, 0, keep).unwrap(), n as u64);
            }
            75..=76 => {
                let upto = 1 + rng.below(last_seq + 2);
                let victims: Vec<u64> = model.range(..upto).map(|(k, _)| *k).collect();
                for k in &victims {
                    model.remove(k);
                }
                assert_eq!(s.compact(upto).unwrap(), victims.len() as u64);
                if upto > last_seq + 1 {
                    last_seq = upto - 1;
                }
            }
            77 => {
                model.clear();
                s.purge().unwrap();
            }
            78..=79 => {
                s.skip_msg(0).unwrap();
                last_seq += 1;
            }
            80..=82 => {
                let cfg = s.config();
                s.bytes_gauge().detach_all();
                s = reopen(h, s, &c);
                s.bytes_gauge().attach(total.clone());
                if !h.persistent() {
                    // A memory store starts empty again.
                    model.clear();
                    last_seq = 0;
                    s.update_config(cfg).unwrap();
                }
            }
            _ => {
                // Random reads.
                let start = rng.below(last_seq + 2);
                let subj = subjects[rng.below(subjects.len() as u64) as usize];
                let want = model
                    .range(start..)
                    .find(|(_, (sb, _))| sb == subj)
                    .map(|(k, _)| *k);
                let got = s.load_next_msg(&f(subj), start).ok().map(|m| m.seq);
                assert_eq!(got, want, "next {subj} from {start} step {step}");
                let want_wc = model
                    .range(start..)
                    .find(|(_, (sb, _))| sb.starts_with("m.c."))
                    .map(|(k, _)| *k);
                let got_wc = s.load_next_msg(&f("m.c.*"), start).ok().map(|m| m.seq);
                assert_eq!(got_wc, want_wc, "next m.c.* from {start} step {step}");
            }
        }
        // Invariants after every step.
        let st = s.fast_state();
        assert_eq!(st.msgs, model.len() as u64, "msgs at step {step}");
        assert_eq!(
            s.stored_bytes(),
            st.bytes,
            "the lock-free byte gauge at step {step}"
        );
        assert_eq!(
            total.load(std::sync::atomic::Ordering::Relaxed),
            OTHERS + st.bytes,
            "an attached total at step {step}"
        );
        assert_eq!(st.last_seq, last_seq, "last_seq at step {step}");
        let first = model.keys().next().copied().unwrap_or(last_seq + 1);
        assert_eq!(st.first_seq, first, "first_seq at step {step}");
        let bytes: u64 = model.values().map(|(sb, p)| s.msg_size(sb, b"", p)).sum();
        assert_eq!(st.bytes, bytes, "bytes at step {step}");
    }
    // Full content check at the end.
    for (seq, (subj, payload)) in &model {
        let m = s.load_msg(*seq).unwrap();
        assert_eq!((&m.subject, &m.payload[..]), (subj, &payload[..]));
    }
    let st = s.state();
    let want_deleted: Vec<u64> = (st.first_seq..=st.last_seq)
        .filter(|k| !model.contains_key(k))
        .collect();
    if !model.is_empty() {
        assert_eq!(st.deleted, want_deleted);
    }
}

/// Expands to one `#[test]` per conformance test, each calling `$harness` to build a
/// fresh [`Harness`].
#[macro_export]
macro_rules! conformance_tests {
    ($modname:ident, $harness:expr) => {
        mod $modname {
            #[allow(unused_imports)]
            use super::*;
            $crate::conformance_tests!(@tests $harness;
                store_and_load, wildcard_subjects, append_and_wait, raw_store, skip_msgs, load_next_filters,
                load_last_and_prev, remove_and_deleted_tracking, purge_all, purge_ex_variants,
                compact_variants, truncate_variants, append_group, state_queries, limits_discard_old,
                limits_discard_new, per_subject_limits, max_age_expiry, ttl_expiry,
                seq_from_time, meta_and_consumers, concurrent_readers, randomized_model,
                pinned_view_is_a_point_in_time, pinned_view_batches, pinned_view_split_at,
                pinned_view_state_is_as_of_its_watermark);
        }
    };
    (@tests $harness:expr; $($t:ident),* $(,)?) => {
        $(
            #[test]
            fn $t() {
                let mut h = $harness;
                $crate::conformance::$t(&mut h);
            }
        )*
    };
}
