//! SIGKILL crash safety.
//!
//! The test re-executes this test binary as a child (selected by an environment
//! variable) that publishes with `Durability::Always` from several threads and prints
//! every acknowledged sequence, and acknowledges consumer deliveries, printing each
//! consumer ack once `update_acks` returned. The parent kills the child with SIGKILL at a
//! random point, reopens the store and checks:
//! * every acknowledged message is present, byte for byte;
//! * no acknowledged sequence was reused for another message, across all cycles;
//! * the consumer's ack floor did not go back past an acknowledged delivery.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use natrium_store::conformance::Rng;
use natrium_store::{
    AckPolicy, ConsumerPolicy, FileStore, FileStoreOptions, StreamStore, SubjectFilter,
};

const CHILD_ENV: &str = "NATRIUM_STORE_CRASH_CHILD";
const CYCLE_ENV: &str = "NATRIUM_STORE_CRASH_CYCLE";

fn policy() -> ConsumerPolicy {
    ConsumerPolicy {
        ack: AckPolicy::Explicit,
        max_deliver: None,
    }
}

fn store_opts() -> FileStoreOptions {
    FileStoreOptions {
        segment_size: 64 * 1024,
        ..Default::default()
    }
}

/// The child: ignored in normal runs; the parent runs it with `--ignored` and `CHILD_ENV`.
#[test]
#[ignore = "child process of sigkill_never_loses_acknowledged_writes"]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let cycle: u64 = std::env::var(CYCLE_ENV)
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let store = Arc::new(FileStore::open(&dir, store_opts()).expect("child open"));
    let deadline = Instant::now() + Duration::from_secs(5);
    std::thread::scope(|sc| {
        for t in 0..3u64 {
            let store = store.clone();
            sc.spawn(move || {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    n += 1;
                    let payload = format!("c{cycle}-t{t}-n{n}-{}", "p".repeat((n % 40) as usize));
                    let (seq, _) = store
                        .store_msg(&format!("crash.{t}"), b"", payload.as_bytes(), None)
                        .expect("store");
                    println!("ACK {seq} {payload}");
                }
            });
        }
        // A consumer that delivers and acks in order.
        let store = store.clone();
        sc.spawn(move || {
            let cs = store.consumer_store("dur", policy()).expect("consumer");
            let st = cs.state();
            // Redeliver what a previous incarnation delivered but did not get to ack.
            for (&sseq, p) in &st.pending {
                cs.update_acks(p.sequence, sseq).expect("ack pending");
                println!("CACK {sseq}");
            }
            let mut next = st.delivered.stream + 1;
            let mut dseq = st.delivered.consumer;
            while Instant::now() < deadline {
                match store.load_next_msg(&SubjectFilter::all(), next) {
                    Ok(m) => {
                        dseq += 1;
                        cs.update_delivered(dseq, m.seq, 1, m.ts)
                            .expect("delivered");
                        cs.update_acks(dseq, m.seq).expect("ack");
                        println!("CACK {}", m.seq);
                        next = m.seq + 1;
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        });
    });
}

#[test]
fn sigkill_never_loses_acknowledged_writes() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let exe = std::env::current_exe().expect("current exe");
    let d = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng::new(0xC0FFEE);
    // seq -> payload of every acknowledged message, across all cycles.
    let mut acked: BTreeMap<u64, String> = BTreeMap::new();
    let mut max_consumer_ack = 0u64;
    let mut total_kills = 0;
    for cycle in 0..50u64 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, d.path())
            .env(CYCLE_ENV, cycle.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let out = child.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(out).lines() {
                match line {
                    Ok(l) => lines.push(l),
                    Err(_) => break,
                }
            }
            lines
        });
        std::thread::sleep(Duration::from_millis(30 + rng.below(400)));
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("wait");
        assert!(!status.success(), "child must have been killed");
        total_kills += 1;
        let lines = reader.join().expect("reader");
        let mut cycle_acks = 0;
        for l in lines {
            // A line cut off by the kill has no newline and fails to parse fully; only
            // complete lines count as acknowledged.
            if let Some(rest) = l.strip_prefix("ACK ") {
                let Some((seq, payload)) = rest.split_once(' ') else {
                    continue;
                };
                let Ok(seq) = seq.parse::<u64>() else {
                    continue;
                };
                if let Some(prev) = acked.insert(seq, payload.to_string()) {
                    panic!("cycle {cycle}: seq {seq} acknowledged twice: {prev} and {payload}");
                }
                cycle_acks += 1;
            } else if let Some(seq) = l.strip_prefix("CACK ")
                && let Ok(seq) = seq.parse::<u64>()
            {
                max_consumer_ack = max_consumer_ack.max(seq);
            }
        }
        // Reopen and verify.
        let s = FileStore::open(d.path(), store_opts()).expect("reopen after kill");
        let rep = s.recovery_report().clone();
        assert!(rep.corrupt.is_empty(), "cycle {cycle}: {rep:?}");
        let st = s.state();
        for (seq, payload) in &acked {
            let m = s
                .load_msg(*seq)
                .unwrap_or_else(|e| panic!("cycle {cycle}: acked seq {seq} missing: {e}"));
            assert_eq!(
                std::str::from_utf8(&m.payload).unwrap(),
                payload,
                "cycle {cycle}: seq {seq} changed"
            );
        }
        if let Some((&max, _)) = acked.last_key_value() {
            assert!(st.last_seq >= max, "cycle {cycle}: last_seq went back");
        }
        let cs = s.consumer_store("dur", policy()).expect("consumer");
        let cst = cs.state();
        assert!(
            cst.ack_floor.stream >= max_consumer_ack,
            "cycle {cycle}: consumer ack floor {} < acknowledged {max_consumer_ack}",
            cst.ack_floor.stream
        );
        drop(cs);
        s.stop().expect("stop");
        drop(s);
        let _ = cycle_acks;
    }
    assert_eq!(total_kills, 50);
    assert!(
        acked.len() > 100,
        "the child acknowledged too little: {}",
        acked.len()
    );
}
