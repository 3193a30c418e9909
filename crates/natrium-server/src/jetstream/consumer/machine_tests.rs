//! The consumer state machine under a fake clock and an in-memory message source.

use super::*;
use std::collections::BTreeMap;

/// Messages by sequence: size, and whether they match the filter.
struct Fake {
    msgs: BTreeMap<u64, (u64, bool)>,
}

impl Fake {
    fn with(n: u64) -> Fake {
        Fake {
            msgs: (1..=n).map(|s| (s, (10, true))).collect(),
        }
    }
}

impl Source for Fake {
    fn next_matching(&self, seq: u64) -> Option<(u64, u64)> {
        self.msgs
            .range(seq..)
            .find(|(_, (_, m))| *m)
            .map(|(s, (size, _))| (*s, *size))
    }
    fn exists(&self, seq: u64) -> bool {
        self.msgs.contains_key(&seq)
    }
    fn size(&self, seq: u64) -> Option<u64> {
        self.msgs.get(&seq).map(|(s, _)| *s)
    }
    fn num_pending(&self, seq: u64) -> u64 {
        self.msgs.range(seq..).filter(|(_, (_, m))| *m).count() as u64
    }
    fn last_seq(&self) -> u64 {
        self.msgs.keys().next_back().copied().unwrap_or(0)
    }
    fn ts_digits(&self, _seq: u64) -> u64 {
        19
    }
}

const S: i64 = 1_000_000_000;

fn params(ack: Ack) -> Params {
    Params {
        ack,
        ack_wait: 30 * S,
        backoff: Vec::new(),
        max_deliver: -1,
        max_ack_pending: 1000,
        max_waiting: 512,
        max_batch: 0,
        max_expires: 0,
        max_bytes: 0,
        ack_prefix_len: 0,
        priority: Priority::None,
        groups: Vec::new(),
        new_pin_id: test_pin_id,
    }
}

/// Pin ids `pin1`, `pin2`, … (per process: tests compare against `m.pin()`).
fn test_pin_id() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "pin{}",
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
    )
}

fn drain_push(m: &mut Machine, src: &Fake, now: i64) -> Vec<Delivery> {
    let mut out = Vec::new();
    let mut st = Vec::new();
    while let Some(d) = m.next(src, true, now, &mut st) {
        out.push(d);
        if out.len() > 1000 {
            break;
        }
    }
    out
}

#[test]
fn push_delivers_in_order_with_pending_counts() {
    let src = Fake::with(3);
    let mut m = Machine::new(params(Ack::Explicit), 1);
    let ds = drain_push(&mut m, &src, 0);
    let seqs: Vec<(u64, u64, u64)> = ds.iter().map(|d| (d.sseq, d.dseq, d.pending)).collect();
    assert_eq!(seqs, vec![(1, 1, 2), (2, 2, 1), (3, 3, 0)]);
    assert_eq!(m.num_ack_pending(), 3);
    assert_eq!(m.ack_floor().stream, 0);
}

#[test]
fn explicit_acks_move_the_floor_only_over_contiguous_acks() {
    let src = Fake::with(3);
    let mut m = Machine::new(params(Ack::Explicit), 1);
    drain_push(&mut m, &src, 0);
    assert_eq!(m.ack(2, AckKind::Ack, 1), vec![(2, 2)]);
    assert_eq!(m.ack_floor().stream, 0, "1 is still pending");
    assert!(m.is_acked(2) && !m.is_acked(1));
    m.ack(1, AckKind::Ack, 1);
    assert_eq!(
        m.ack_floor(),
        SequencePair {
            consumer: 2,
            stream: 2
        }
    );
    m.ack(3, AckKind::Ack, 1);
    assert_eq!(
        m.ack_floor(),
        SequencePair {
            consumer: 3,
            stream: 3
        }
    );
    assert_eq!(m.num_ack_pending(), 0);
    // Acking twice or an unknown sequence changes nothing.
    assert!(m.ack(3, AckKind::Ack, 1).is_empty());
    assert!(m.ack(99, AckKind::Ack, 1).is_empty());
    assert_eq!(m.ack_floor().stream, 3);
}

#[test]
fn ack_all_covers_everything_below() {
    let src = Fake::with(4);
    let mut m = Machine::new(params(Ack::All), 1);
    drain_push(&mut m, &src, 0);
    assert_eq!(m.ack(3, AckKind::Ack, 1), vec![(1, 1), (2, 2), (3, 3)]);
    assert_eq!(m.ack_floor().stream, 3);
    assert_eq!(m.num_ack_pending(), 1);
}

/// The `flow_control` ack policy's shape: acks cover everything below (Ack::All) and,
/// with no ack wait, nothing is ever redelivered by itself.
#[test]
fn without_an_ack_wait_nothing_is_redelivered() {
    let src = Fake::with(3);
    let mut p = params(Ack::All);
    p.ack_wait = 0;
    let mut m = Machine::new(p, 1);
    assert_eq!(drain_push(&mut m, &src, 0).len(), 3);
    assert_eq!(m.next_deadline(), None);
    m.tick(3600 * S);
    assert!(drain_push(&mut m, &src, 3600 * S).is_empty());
    assert_eq!(m.num_redelivered(), 0);
    assert_eq!(m.ack(2, AckKind::Ack, 3600 * S), vec![(1, 1), (2, 2)]);
    assert_eq!(m.num_ack_pending(), 1);
}

#[test]
fn ack_none_has_nothing_pending() {
    let src = Fake::with(3);
    let mut m = Machine::new(params(Ack::None), 1);
    drain_push(&mut m, &src, 0);
    assert_eq!(m.num_ack_pending(), 0);
    assert_eq!(m.ack_floor(), m.delivered());
}

#[test]
fn ack_wait_expiry_redelivers_with_counts() {
    let src = Fake::with(2);
    let mut m = Machine::new(params(Ack::Explicit), 1);
    drain_push(&mut m, &src, 0);
    // Nothing due before the ack wait.
    m.tick(29 * S);
    assert!(drain_push(&mut m, &src, 29 * S).is_empty());
    m.ack(2, AckKind::Ack, 29 * S);
    m.tick(30 * S);
    let ds = drain_push(&mut m, &src, 30 * S);
    assert_eq!(ds.len(), 1);
    assert_eq!((ds[0].sseq, ds[0].count, ds[0].dseq), (1, 2, 3));
    assert_eq!(m.num_redelivered(), 1);
    // Next deadline is another ack wait later.
    assert_eq!(m.next_deadline(), Some(60 * S));
}

#[test]
fn nak_redelivers_now_or_after_a_delay() {
    let src = Fake::with(2);
    let mut m = Machine::new(params(Ack::Explicit), 1);
    drain_push(&mut m, &src, 0);
    m.ack(1, AckKind::Nak(None), 1);
    let ds = drain_push(&mut m, &src, 1);
    assert_eq!((ds.len(), ds[0].sseq, ds[0].count), (1, 1, 2));
    m.ack(2, AckKind::Nak(Some(5 * S)), 2);
    assert!(drain_push(&mut m, &src, 2).is_empty());
    m.tick(5 * S + 2);
    let ds = drain_push(&mut m, &src, 5 * S + 2);
    assert_eq!((ds.len(), ds[0].sseq), (1, 2));
}

#[test]
fn a_plain_nak_redelivers_at_once_even_with_backoff() {
    let src = Fake::with(1);
    let mut p = params(Ack::Explicit);
    p.backoff = vec![S, 2 * S, 5 * S];
    let mut m = Machine::new(p, 1);
    drain_push(&mut m, &src, 0);
    m.ack(1, AckKind::Nak(None), 1);
    let ds = drain_push(&mut m, &src, 1);
    assert_eq!((ds.len(), ds[0].sseq, ds[0].count), (1, 1, 2));
    // The redelivery's own wait is the backoff's second step.
    assert_eq!(m.next_deadline(), Some(1 + 2 * S));
}

#[test]
fn progress_after_the_wait_ran_out_does_not_take_back_the_redelivery() {
    let src = Fake::with(1);
    let mut m = Machine::new(params(Ack::Explicit), 1);
    drain_push(&mut m, &src, 0);
    m.tick(31 * S);
    m.ack(1, AckKind::Progress, 32 * S);
    let ds = drain_push(&mut m, &src, 33 * S);
    assert_eq!((ds.len(), ds[0].sseq, ds[0].count), (1, 1, 2));
}

#[test]
fn progress_resets_the_ack_wait() {
    let src = Fake::with(1);
    let mut m = Machine::new(params(Ack::Explicit), 1);
    drain_push(&mut m, &src, 0);
    m.ack(1, AckKind::Progress, 20 * S);
    m.tick(30 * S);
    assert!(drain_push(&mut m, &src, 30 * S).is_empty());
    m.tick(50 * S);
    assert_eq!(drain_push(&mut m, &src, 50 * S).len(), 1);
}

#[test]
fn an_ack_wait_update_retimes_what_is_already_delivered() {
    let src = Fake::with(3);
    let mut m = Machine::new(params(Ack::Explicit), 1);
    drain_push(&mut m, &src, S);
    // Message 2 asked for more time at 10 s: its wait runs from there.
    m.ack(2, AckKind::Progress, 10 * S);
    // Lowered to 5 s: due 5 s after each delivery (or progress), not after the old 30 s.
    let mut p = params(Ack::Explicit);
    p.ack_wait = 5 * S;
    m.set_params(p);
    assert_eq!(m.next_deadline(), Some(6 * S));
    m.tick(6 * S);
    let ds = drain_push(&mut m, &src, 6 * S);
    assert_eq!(ds.iter().map(|d| d.sseq).collect::<Vec<_>>(), vec![1, 3]);
    // Raised to 60 s: the redelivered ones (at 6 s) are not due before 66 s, message 2
    // (progress at 10 s) not before 70 s.
    let mut p = params(Ack::Explicit);
    p.ack_wait = 60 * S;
    m.set_params(p);
    m.tick(40 * S);
    assert!(drain_push(&mut m, &src, 40 * S).is_empty());
    assert_eq!(m.next_deadline(), Some(66 * S));
    m.tick(66 * S);
    let ds = drain_push(&mut m, &src, 66 * S);
    assert_eq!(ds.iter().map(|d| d.sseq).collect::<Vec<_>>(), vec![1, 3]);
    assert_eq!(m.next_deadline(), Some(70 * S));
    // Parameters that do not touch the wait leave deadlines alone.
    let mut p = params(Ack::Explicit);
    p.ack_wait = 60 * S;
    p.max_ack_pending = 7;
    m.set_params(p);
    assert_eq!(m.next_deadline(), Some(70 * S));
}

#[test]
fn an_ack_wait_update_keeps_a_naks_own_delay() {
    let src = Fake::with(1);
    let mut m = Machine::new(params(Ack::Explicit), 1);
    drain_push(&mut m, &src, S);
    m.ack(1, AckKind::Nak(Some(100 * S)), 2 * S);
    let mut p = params(Ack::Explicit);
    p.ack_wait = 2 * S;
    m.set_params(p);
    assert_eq!(m.next_deadline(), Some(102 * S));
    m.tick(50 * S);
    assert!(
        drain_push(&mut m, &src, 50 * S).is_empty(),
        "NAK delay cut short"
    );
}

#[test]
fn term_stops_redelivery() {
    let src = Fake::with(1);
    let mut m = Machine::new(params(Ack::Explicit), 1);
    drain_push(&mut m, &src, 0);
    assert_eq!(m.ack(1, AckKind::Term, 1), vec![(1, 1)]);
    m.tick(100 * S);
    assert!(drain_push(&mut m, &src, 100 * S).is_empty());
    assert_eq!(m.ack_floor().stream, 1);
}

#[test]
fn backoff_sets_each_redelivery_delay_and_max_deliver_stops() {
    let src = Fake::with(1);
    let mut p = params(Ack::Explicit);
    p.backoff = vec![S, 2 * S, 5 * S];
    p.max_deliver = 3;
    let mut m = Machine::new(p, 1);
    drain_push(&mut m, &src, 0);
    assert_eq!(m.next_deadline(), Some(S));
    m.tick(S);
    let d = drain_push(&mut m, &src, S);
    assert_eq!(d[0].count, 2);
    assert_eq!(m.next_deadline(), Some(3 * S), "second delay is 2s");
    m.tick(3 * S);
    let d = drain_push(&mut m, &src, 3 * S);
    assert_eq!(d[0].count, 3);
    assert!(
        m.take_exceeded().is_empty(),
        "not exceeded until a 4th is due"
    );
    m.tick(100 * S);
    assert!(
        drain_push(&mut m, &src, 100 * S).is_empty(),
        "no 4th delivery"
    );
    assert_eq!(m.num_ack_pending(), 0);
    assert_eq!(
        m.take_exceeded(),
        vec![(1, 3, 1)],
        "advisory: seq 1 after 3 deliveries"
    );
    assert!(m.take_exceeded().is_empty());
}

#[test]
fn max_ack_pending_blocks_new_messages_not_redeliveries() {
    let src = Fake::with(5);
    let mut p = params(Ack::Explicit);
    p.max_ack_pending = 2;
    let mut m = Machine::new(p, 1);
    assert_eq!(drain_push(&mut m, &src, 0).len(), 2);
    m.tick(31 * S);
    let d = drain_push(&mut m, &src, 31 * S);
    assert_eq!(d.iter().map(|d| d.sseq).collect::<Vec<_>>(), vec![1, 2]);
    m.ack(1, AckKind::Ack, 32 * S);
    let d = drain_push(&mut m, &src, 32 * S);
    assert_eq!(d.iter().map(|d| d.sseq).collect::<Vec<_>>(), vec![3]);
}

#[test]
fn filtered_messages_are_skipped() {
    let mut src = Fake::with(4);
    src.msgs.insert(2, (10, false));
    src.msgs.insert(4, (10, false));
    let mut m = Machine::new(params(Ack::None), 1);
    let d = drain_push(&mut m, &src, 0);
    assert_eq!(
        d.iter().map(|d| (d.sseq, d.pending)).collect::<Vec<_>>(),
        vec![(1, 1), (3, 0)]
    );
}

#[test]
fn pull_requests_are_served_in_turn() {
    let src = Fake::with(5);
    let mut m = Machine::new(params(Ack::Explicit), 1);
    let mut out = Vec::new();
    assert!(m.add_pull(b"r1", 2, 0, 0, false, 0, 0, &src).is_none());
    assert!(m.add_pull(b"r2", 2, 0, 0, false, 0, 0, &src).is_none());
    let mut got = Vec::new();
    while let Some(d) = m.next(&src, false, 0, &mut out) {
        got.push((d.sseq, d.target));
    }
    assert_eq!(
        got,
        vec![
            (1, Target::Pull(b"r1"[..].into())),
            (2, Target::Pull(b"r2"[..].into())),
            (3, Target::Pull(b"r1"[..].into())),
            (4, Target::Pull(b"r2"[..].into())),
        ]
    );
    assert!(out.is_empty());
    assert_eq!(m.num_waiting(), 0);
    // Without a request nothing is delivered.
    assert!(m.next(&src, false, 0, &mut out).is_none());
}

#[test]
fn no_wait_requests() {
    let empty = Fake::with(0);
    let mut m = Machine::new(params(Ack::Explicit), 1);
    let st = m.add_pull(b"r", 5, 0, 0, true, 0, 0, &empty).unwrap();
    assert_eq!(st.line, "404 No Messages");
    // Partial: two available, five asked.
    let src = Fake::with(2);
    let mut m = Machine::new(params(Ack::Explicit), 1);
    assert!(m.add_pull(b"r", 5, 0, 0, true, 0, 0, &src).is_none());
    let mut out = Vec::new();
    let mut n = 0;
    while m.next(&src, false, 0, &mut out).is_some() {
        n += 1;
    }
    assert_eq!(n, 2);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].line, "404 No Messages");
    assert_eq!(m.num_waiting(), 0);
}

#[test]
fn expiry_heartbeats_and_timeouts() {
    let src = Fake::with(0);
    let mut m = Machine::new(params(Ack::Explicit), 1);
    assert!(
        m.add_pull(b"r", 10, 0, 10 * S, false, 3 * S, 0, &src)
            .is_none()
    );
    assert_eq!(m.next_deadline(), Some(3 * S));
    let st = m.tick(3 * S);
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].line, "100 Idle Heartbeat");
    assert!(
        st[0]
            .headers
            .iter()
            .any(|(k, _)| *k == "Nats-Last-Consumer")
    );
    let st = m.tick(10 * S);
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].line, "408 Request Timeout");
    assert_eq!(
        st[0].headers,
        vec![
            ("Nats-Pending-Messages", "10".to_string()),
            ("Nats-Pending-Bytes", "0".to_string())
        ]
    );
    assert_eq!(m.num_waiting(), 0);
}

#[test]
fn request_limits_and_max_waiting() {
    let src = Fake::with(0);
    let mut p = params(Ack::Explicit);
    p.max_batch = 10;
    p.max_expires = 5 * S;
    p.max_bytes = 100;
    p.max_waiting = 1;
    let mut m = Machine::new(p, 1);
    assert_eq!(
        m.add_pull(b"r", 11, 0, S, false, 0, 0, &src).unwrap().line,
        "409 Exceeded MaxRequestBatch of 10"
    );
    assert_eq!(
        m.add_pull(b"r", 1, 0, 6 * S, false, 0, 0, &src)
            .unwrap()
            .line,
        "409 Exceeded MaxRequestExpires of 5s"
    );
    assert_eq!(
        m.add_pull(b"r", 1, 101, S, false, 0, 0, &src).unwrap().line,
        "409 Exceeded MaxRequestMaxBytes of 100"
    );
    assert!(m.add_pull(b"r1", 1, 0, S, false, 0, 0, &src).is_none());
    assert_eq!(
        m.add_pull(b"r2", 1, 0, S, false, 0, 0, &src).unwrap().line,
        "409 Exceeded MaxWaiting"
    );
}

#[test]
fn max_bytes_per_request() {
    let mut src = Fake::with(3);
    src.msgs.insert(2, (50, true));
    let mut m = Machine::new(params(Ack::None), 1);
    // A delivery counts its message plus its ack reply (27 bytes here: "1.1.1.<19-digit
    // ts>.2" with an empty prefix). 60 bytes allowed: message 1 (10 + 27) fits, message 2
    // (50 + 27) does not.
    assert!(m.add_pull(b"r", 5, 60, S, false, 0, 0, &src).is_none());
    let mut out = Vec::new();
    let d = m.next(&src, false, 0, &mut out).unwrap();
    assert_eq!(d.sseq, 1);
    assert!(m.next(&src, false, 0, &mut out).is_none());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].line, "409 Message Size Exceeds MaxBytes");
    // The message stays for the next request.
    assert!(m.add_pull(b"r2", 1, 0, S, false, 0, 0, &src).is_none());
    assert_eq!(m.next(&src, false, 0, &mut out).unwrap().sseq, 2);
}

#[test]
fn batch_completed_with_bytes_left() {
    let src = Fake::with(3);
    let mut m = Machine::new(params(Ack::None), 1);
    assert!(m.add_pull(b"r", 1, 1000, S, false, 0, 0, &src).is_none());
    let mut out = Vec::new();
    let d = m.next(&src, false, 0, &mut out).unwrap();
    let after = d.after.expect("batch completed status");
    assert_eq!(after.line, "409 Batch Completed");
    assert_eq!(after.headers[1], ("Nats-Pending-Bytes", "963".to_string()));
}

#[test]
fn max_bytes_used_up_exactly_ends_the_request_without_a_status() {
    let src = Fake::with(3);
    let mut m = Machine::new(params(Ack::None), 1);
    assert!(m.add_pull(b"r", 5, 37, S, false, 0, 0, &src).is_none());
    let mut out = Vec::new();
    let d = m.next(&src, false, 0, &mut out).unwrap();
    assert_eq!(d.sseq, 1);
    assert!(d.after.is_none());
    assert_eq!(m.num_waiting(), 0);
    assert!(out.is_empty());
}

#[test]
fn max_deliver_exhausted_keeps_the_floor_and_the_message() {
    let src = Fake::with(2);
    let mut p = params(Ack::Explicit);
    p.ack_wait = S;
    p.max_deliver = 2;
    let mut m = Machine::new(p, 1);
    assert_eq!(drain_push(&mut m, &src, 0).len(), 2);
    m.ack(2, AckKind::Ack, 0);
    m.tick(S);
    assert_eq!(drain_push(&mut m, &src, S)[0].count, 2);
    m.tick(3 * S);
    assert!(drain_push(&mut m, &src, 3 * S).is_empty());
    assert_eq!(m.take_exceeded(), vec![(1, 2, 1)]);
    // Not pending any more, but not acknowledged: the floor stays, it still counts as
    // redelivered, and retention keeps it.
    assert_eq!(m.num_ack_pending(), 0);
    assert_eq!(m.num_redelivered(), 1);
    assert_eq!(m.ack_floor().stream, 0);
    assert!(!m.is_acked(1));
    assert!(m.is_acked(2));
}

#[test]
fn heartbeats_report_the_scanned_stream_position() {
    let mut src = Fake::with(4);
    for v in src.msgs.values_mut() {
        v.1 = false;
    }
    let mut m = Machine::new(params(Ack::Explicit), 1);
    assert!(m.add_pull(b"r", 1, 0, 10 * S, false, S, 0, &src).is_none());
    let mut out = Vec::new();
    assert!(m.next(&src, false, 0, &mut out).is_none());
    let st = m.tick(S);
    assert_eq!(st[0].line, "100 Idle Heartbeat");
    assert_eq!(st[0].headers[1], ("Nats-Last-Stream", "4".to_string()));
    assert_eq!(m.delivered().stream, 0);
}

fn grouped(group: &str, id: &str) -> PullArgs {
    PullArgs {
        batch: 1,
        expires: 10 * S,
        group: Some(PullGroup {
            group: group.into(),
            id: id.into(),
            ..PullGroup::default()
        }),
        ..PullArgs::default()
    }
}

fn with_priority(priority: Priority) -> Params {
    let mut p = params(Ack::Explicit);
    p.priority = priority;
    p.groups = vec!["g1".into()];
    p
}

#[test]
fn pinned_client_pins_the_first_request_and_serves_only_its_holder() {
    let src = Fake::with(5);
    let mut m = Machine::new(with_priority(Priority::Pinned { ttl: 5 * S }), 1);
    let mut out = Vec::new();
    // Group checks.
    let st = m.add_pull_req(b"x", grouped("", ""), 0, &src).unwrap();
    assert_eq!(st.line, "400 Bad Request - Priority Group missing");
    let st = m.add_pull_req(b"x", grouped("zz", ""), 0, &src).unwrap();
    assert_eq!(st.line, "400 Bad Request - Invalid Priority Group");
    // The first request gets a new pin, and so does its delivery.
    assert!(m.add_pull_req(b"a", grouped("g1", ""), 0, &src).is_none());
    let d = m.next(&src, false, 0, &mut out).unwrap();
    let pin = m.pin().unwrap().clone();
    assert_eq!(d.pin.as_deref(), Some(&*pin.id));
    assert_eq!((pin.since, pin.expires_at), (0, 5 * S));
    assert_eq!(
        m.take_pin_events(),
        vec![PinEvent::Pinned {
            group: "g1".into(),
            id: pin.id.to_string()
        }]
    );
    // A wrong id: 423 at once. No id: waits while the pin holds.
    let st = m
        .add_pull_req(b"w", grouped("g1", "bogus"), S, &src)
        .unwrap();
    assert_eq!(st.line, "423 Nats-Pin-Id mismatch");
    assert!(m.add_pull_req(b"n", grouped("g1", ""), S, &src).is_none());
    assert!(m.next(&src, false, S, &mut out).is_none());
    assert_eq!(m.num_waiting(), 1);
    // The holder is served (past the waiting one) and its request renews the pin.
    assert!(
        m.add_pull_req(b"h", grouped("g1", &pin.id), 2 * S, &src)
            .is_none()
    );
    let d = m.next(&src, false, 2 * S, &mut out).unwrap();
    assert_eq!(d.target, Target::Pull(b"h"[..].into()));
    assert_eq!(m.pin().unwrap().expires_at, 7 * S);
    assert!(out.is_empty());
    // Unpinned: the waiting request without an id gets the next pin; a request with
    // the old id gets 423 Nats-Wrong-Pin-Id when a message would go to it.
    m.unpin();
    assert!(m.pin().is_none());
    let mut order = VecDeque::new();
    std::mem::swap(&mut order, &mut m.waiting);
    assert!(
        m.add_pull_req(b"old", grouped("g1", &pin.id), 3 * S, &src)
            .is_none()
    );
    m.waiting.extend(order);
    let d = m.next(&src, false, 3 * S, &mut out).unwrap();
    assert_eq!(d.target, Target::Pull(b"n"[..].into()));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].line, "423 Nats-Wrong-Pin-Id");
    let new_pin = m.pin().unwrap().id.clone();
    assert_ne!(new_pin, pin.id);
    assert_eq!(d.pin, Some(new_pin.clone()));
    let ev = m.take_pin_events();
    assert_eq!(
        ev[0],
        PinEvent::Unpinned {
            group: "g1".into(),
            reason: "admin"
        }
    );
    assert!(matches!(&ev[1], PinEvent::Pinned { id, .. } if **id == *new_pin));
}

#[test]
fn a_pin_lapses_after_its_ttl() {
    let src = Fake::with(3);
    let mut m = Machine::new(with_priority(Priority::Pinned { ttl: S }), 1);
    let mut out = Vec::new();
    assert!(m.add_pull_req(b"a", grouped("g1", ""), 0, &src).is_none());
    m.next(&src, false, 0, &mut out).unwrap();
    m.take_pin_events();
    assert_eq!(m.next_deadline(), Some(S));
    m.tick(S);
    assert!(m.pin().is_none());
    assert_eq!(
        m.take_pin_events(),
        vec![PinEvent::Unpinned {
            group: "g1".into(),
            reason: "timeout"
        }]
    );
}

#[test]
fn overflow_serves_only_above_the_backlog() {
    let src = Fake::with(4);
    let mut m = Machine::new(with_priority(Priority::Overflow), 1);
    let mut out = Vec::new();
    let req = |min_pending: i64, min_ack_pending: i64| {
        let mut r = grouped("g1", "");
        if let Some(g) = r.group.as_mut() {
            g.min_pending = min_pending;
            g.min_ack_pending = min_ack_pending;
        }
        r
    };
    // 4 pending: min_pending 5 waits, 4 is served.
    assert!(m.add_pull_req(b"a", req(5, 0), 0, &src).is_none());
    assert!(m.next(&src, false, 0, &mut out).is_none());
    assert!(m.add_pull_req(b"b", req(4, 0), 0, &src).is_none());
    let d = m.next(&src, false, 0, &mut out).unwrap();
    assert_eq!((d.sseq, d.target), (1, Target::Pull(b"b"[..].into())));
    // 1 ack pending now: min_ack_pending 1 passes the gate.
    assert!(m.add_pull_req(b"c", req(9, 1), 0, &src).is_none());
    let d = m.next(&src, false, 0, &mut out).unwrap();
    assert_eq!(d.target, Target::Pull(b"c"[..].into()));
    assert!(m.next(&src, false, 0, &mut out).is_none());
    assert_eq!(m.num_waiting(), 1);
    // Gates on other policies are refused.
    let mut p = Machine::new(with_priority(Priority::Prioritized), 1);
    let st = p.add_pull_req(b"x", req(1, 0), 0, &src).unwrap();
    assert_eq!(
        st.line,
        "400 Bad Request - Not a Overflow Priority consumer"
    );
}

#[test]
fn no_wait_requests_held_back_by_priority_end_at_once() {
    let src = Fake::with(4);
    let mut m = Machine::new(with_priority(Priority::Overflow), 1);
    let no_wait = |min_pending: i64| {
        let mut r = grouped("g1", "");
        r.expires = 0;
        r.no_wait = true;
        if let Some(g) = r.group.as_mut() {
            g.min_pending = min_pending;
        }
        r
    };
    // 4 pending: min_pending 5 would wait, so a no_wait request ends (nats-server: 404).
    let st = m.add_pull_req(b"a", no_wait(5), 0, &src).unwrap();
    assert_eq!(st.line, "404 No Messages");
    assert_eq!(m.num_waiting(), 0);
    assert!(m.add_pull_req(b"b", no_wait(4), 0, &src).is_none());
    // Pinned to another client: a no_wait request without the pin id ends too.
    let mut p = Machine::new(with_priority(Priority::Pinned { ttl: 60 * S }), 1);
    let mut out = Vec::new();
    assert!(
        p.add_pull_req(b"first", grouped("g1", ""), 0, &src)
            .is_none()
    );
    assert!(p.next(&src, false, 0, &mut out).is_some());
    assert!(p.pin().is_some());
    let mut other = grouped("g1", "");
    other.expires = 0;
    other.no_wait = true;
    let st = p.add_pull_req(b"other", other, 0, &src).unwrap();
    assert_eq!(st.line, "404 No Messages");
}

#[test]
fn prioritized_serves_lower_numbers_first_and_in_turn_within_one() {
    let src = Fake::with(6);
    let mut m = Machine::new(with_priority(Priority::Prioritized), 1);
    let mut out = Vec::new();
    for (reply, prio) in [("low5", 5), ("high1", 1), ("mid3", 3), ("high1b", 1)] {
        let mut r = grouped("g1", "");
        r.batch = 2;
        if let Some(g) = r.group.as_mut() {
            g.priority = prio;
        }
        assert!(m.add_pull_req(reply.as_bytes(), r, 0, &src).is_none());
    }
    let mut got = Vec::new();
    while let Some(d) = m.next(&src, false, 0, &mut out) {
        let Target::Pull(r) = d.target else {
            panic!("pull")
        };
        got.push(String::from_utf8_lossy(&r).into_owned());
    }
    assert_eq!(got, ["high1", "high1b", "high1", "high1b", "mid3", "mid3"]);
    let mut bad = grouped("g1", "");
    if let Some(g) = bad.group.as_mut() {
        g.priority = 10;
    }
    let st = m.add_pull_req(b"x", bad, 0, &src).unwrap();
    assert_eq!(
        st.line,
        "400 Bad Request - Priority must be between 0 and 9"
    );
}

#[test]
fn deleted_pending_messages_are_dropped() {
    let mut src = Fake::with(2);
    let mut m = Machine::new(params(Ack::Explicit), 1);
    drain_push(&mut m, &src, 0);
    src.msgs.remove(&1);
    m.tick(30 * S);
    let d = drain_push(&mut m, &src, 30 * S);
    assert_eq!(d.iter().map(|d| d.sseq).collect::<Vec<_>>(), vec![2]);
    m.ack(2, AckKind::Ack, 31 * S);
    assert_eq!(m.ack_floor().stream, 2);
}

#[test]
fn recovered_state_redelivers_what_was_pending() {
    let src = Fake::with(5);
    let mut m = Machine::new(params(Ack::Explicit), 1);
    let ds = drain_push(&mut m, &src, 0);
    assert_eq!(ds.len(), 5);
    m.ack(1, AckKind::Ack, 1);
    m.ack(2, AckKind::Ack, 1);
    m.ack(4, AckKind::Ack, 1);
    let state = m.state();
    let mut r = Machine::recover(params(Ack::Explicit), &state, 100 * S);
    assert_eq!(r.ack_floor().stream, 2);
    assert_eq!(
        r.delivered(),
        SequencePair {
            consumer: 5,
            stream: 5
        }
    );
    r.tick(100 * S);
    let again = drain_push(&mut r, &src, 100 * S);
    // Only the unacknowledged ones come again; never an acked one, never a new dseq reuse.
    assert_eq!(again.iter().map(|d| d.sseq).collect::<Vec<_>>(), vec![3, 5]);
    assert!(again.iter().all(|d| d.dseq > 5));
    assert!(again.iter().all(|d| d.count == 2));
    // The stored state counts redeliveries (1 each now); recovered again, the next
    // delivery is the third.
    let state = r.state();
    assert_eq!(state.redelivered.get(&3), Some(&1));
    let mut r = Machine::recover(params(Ack::Explicit), &state, 1000 * S);
    assert_eq!(r.deliveries(3), 2);
    assert_eq!(r.num_redelivered(), 2);
    r.tick(1000 * S);
    let third = drain_push(&mut r, &src, 1000 * S);
    assert_eq!(
        third.iter().map(|d| d.count).collect::<Vec<_>>(),
        vec![3, 3]
    );
}

#[test]
fn ack_floor_after_a_redelivery_counts_first_delivery_sequences() {
    let src = Fake::with(4);
    let mut m = Machine::new(params(Ack::Explicit), 1);
    drain_push(&mut m, &src, 0);
    m.ack(1, AckKind::Ack, 1);
    m.ack(2, AckKind::Nak(None), 1);
    let again = drain_push(&mut m, &src, 2);
    assert_eq!((again[0].sseq, again[0].dseq), (2, 5));
    // 3 and 4 acked: the floor stays below 2, whose first delivery was consumer seq 2.
    m.ack(3, AckKind::Ack, 3);
    m.ack(4, AckKind::Ack, 3);
    assert_eq!(
        m.ack_floor(),
        SequencePair {
            consumer: 1,
            stream: 1
        }
    );
    assert_eq!(m.pending_of(2).map(|p| p.sequence), Some(2));
    m.ack(2, AckKind::Ack, 4);
    assert_eq!(
        m.ack_floor(),
        SequencePair {
            consumer: 5,
            stream: 4
        }
    );
}

#[test]
fn skip_to_after_purge() {
    let src = Fake::with(10);
    let mut m = Machine::new(params(Ack::Explicit), 1);
    let mut out = Vec::new();
    m.add_pull(b"r", 2, 0, 0, false, 0, 0, &src);
    while m.next(&src, false, 0, &mut out).is_some() {}
    m.skip_to(8);
    assert_eq!(m.num_ack_pending(), 0);
    assert_eq!(m.ack_floor().stream, 7);
    m.add_pull(b"r", 1, 0, 0, false, 0, 0, &src);
    assert_eq!(m.next(&src, false, 0, &mut out).unwrap().sseq, 8);
}

#[test]
fn removed_messages_leave_the_pending_set() {
    let mut src = Fake::with(6);
    let mut p = params(Ack::Explicit);
    p.max_ack_pending = 4;
    let mut m = Machine::new(p, 1);
    let d = drain_push(&mut m, &src, 0);
    assert_eq!(d.len(), 4, "max_ack_pending holds the rest back");
    // A limit or a delete removes 2 and 3 (delivered, not acked).
    src.msgs.remove(&2);
    src.msgs.remove(&3);
    let gone = m.drop_removed(0, Some(&|s| src.exists(s)));
    assert_eq!(gone, vec![(2, 2, 1), (3, 3, 1)]);
    assert_eq!(m.num_ack_pending(), 2);
    assert_eq!(m.ack_floor().stream, 0, "1 is still pending");
    // Their slots are free at once: 5 and 6 go out without waiting for an ack wait.
    let d = drain_push(&mut m, &src, 0);
    assert_eq!(d.iter().map(|d| d.sseq).collect::<Vec<_>>(), vec![5, 6]);
    // The front goes too (max_msgs, max_age): the floor moves past it.
    src.msgs.remove(&1);
    assert_eq!(m.drop_removed(0, Some(&|s| src.exists(s))), vec![(1, 1, 1)]);
    assert_eq!(
        m.ack_floor(),
        SequencePair {
            consumer: 3,
            stream: 3
        }
    );
    // Nothing removed: nothing dropped; nothing redelivered after the ack wait either.
    assert!(m.drop_removed(0, Some(&|s| src.exists(s))).is_empty());
    m.tick(60 * S);
    let again = drain_push(&mut m, &src, 60 * S);
    assert_eq!(
        again.iter().map(|d| d.sseq).collect::<Vec<_>>(),
        vec![4, 5, 6]
    );
}

#[test]
fn removals_off_the_front_need_no_lookups() {
    let src = Fake::with(5);
    let mut m = Machine::new(params(Ack::Explicit), 1);
    assert_eq!(drain_push(&mut m, &src, 0).len(), 5);
    // The stream now starts at 3 with no gaps: 1 and 2 are gone, nothing is looked up.
    assert_eq!(m.drop_removed(3, None), vec![(1, 1, 1), (2, 2, 1)]);
    assert_eq!(m.num_ack_pending(), 3);
    assert_eq!(m.ack_floor().stream, 2);
    assert!(m.drop_removed(3, None).is_empty());
}

#[test]
fn last_per_subject_delivers_the_initial_list_then_new_messages() {
    let src = Fake::with(6);
    // Last per subject were 2 and 4; the stream ends at 6, so new ones start at 7.
    let mut m = Machine::with_initial(params(Ack::None), vec![2, 4], 7);
    assert_eq!(m.num_pending(&src), 2);
    let d = drain_push(&mut m, &src, 0);
    assert_eq!(
        d.iter().map(|d| (d.sseq, d.pending)).collect::<Vec<_>>(),
        vec![(2, 1), (4, 0)]
    );
    let mut src = src;
    src.msgs.insert(7, (10, true));
    let d = drain_push(&mut m, &src, 0);
    assert_eq!(d.iter().map(|d| d.sseq).collect::<Vec<_>>(), vec![7]);
}

#[test]
fn recovery_keeps_the_ack_wait_of_the_last_delivery() {
    use natrium_store::consumer::{ConsumerState, Pending, SequencePair};
    let mut st = ConsumerState {
        delivered: SequencePair {
            consumer: 2,
            stream: 2,
        },
        ack_floor: SequencePair {
            consumer: 0,
            stream: 0,
        },
        ..ConsumerState::default()
    };
    // Delivered at 1_000 (ns); the other one's time is unknown.
    st.pending.insert(
        1,
        Pending {
            sequence: 1,
            timestamp: 1_000,
        },
    );
    st.pending.insert(
        2,
        Pending {
            sequence: 2,
            timestamp: 0,
        },
    );
    let p = Params {
        ack_wait: 30_000,
        ..params(Ack::Explicit)
    };
    let m = Machine::recover(p, &st, 5_000);
    assert_eq!(m.deadline_of.get(&1), Some(&31_000));
    assert_eq!(m.deadline_of.get(&2), Some(&5_000));
}
