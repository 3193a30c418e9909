//! Crash and corruption safety of JetStream file streams at the SERVER level: the real
//! `natrium-server` binary as a child process, real async-nats clients.
//!
//! 1. `sigkill_loop_keeps_every_acked_message`: publishers with many acks in flight, the
//!    server SIGKILLed at a random point, restarted on the same store directory; every
//!    acknowledged (or once served) message must come back at the same sequence with the
//!    same bytes, no sequence may be reused, `last_seq` only grows, and publishing works at
//!    once after the restart.
//! 2. `damaged_segments_are_isolated_and_reported`: bytes flipped in and the tail cut off a
//!    cleanly stopped stream's segment; the stream must come back, never serve damaged
//!    bytes, serve every undamaged message, log the recovery, and continue after the old
//!    last sequence. `flipped_interior_records_are_isolated_and_reported` is the same
//!    without the cut tail (interior damage only).
//! 3. `unreadable_stream_dir_does_not_block_startup`: streams whose metadata is damaged
//!    beyond reading must not stop the server or other streams, and must stay on disk
//!    untouched; `recreating_an_unrecovered_stream_keeps_its_data`: nor may a client's
//!    create request for the same name destroy that data.
//!
//! Randomness is seeded: `NATRIUM_CRASH_SEED=<u64>` repeats a run (the seed is printed).
//! `NATRIUM_CRASH_CYCLES` changes the number of kill cycles of test 1 (default 50).

mod js_crash_support;

use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use js_crash_support::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------
// Shared bits

async fn create_file_stream(client: &async_nats::Client, name: &str, subjects: &[&str]) {
    let js = jetstream::new(client.clone());
    js.create_stream(stream::Config {
        name: name.into(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        storage: stream::StorageType::File,
        allow_direct: true,
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("create stream {name}: {e}"));
}

/// Publish `msgs` (subject, payload) with up to `window` acks in flight; returns the acked
/// sequence of each message, in order. Panics on any failure (used while nothing is being
/// crashed).
async fn publish_all(
    client: &async_nats::Client,
    stream_name: &str,
    msgs: &[(String, Bytes)],
    window: usize,
) -> Vec<u64> {
    let js = jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(10))
        .build(client.clone());
    let mut seqs = vec![0u64; msgs.len()];
    let mut inflight = FuturesUnordered::new();
    for (i, (subject, payload)) in msgs.iter().enumerate() {
        while inflight.len() >= window {
            let (j, r): (usize, Result<jetstream::publish::PublishAck, _>) =
                inflight.next().await.unwrap();
            let ack = r.unwrap_or_else(|e| panic!("ack of message {j}: {e}"));
            assert_eq!(ack.stream, stream_name);
            seqs[j] = ack.sequence;
        }
        let fut = js
            .publish(subject.clone(), payload.clone())
            .await
            .unwrap_or_else(|e| panic!("publish {i}: {e}"));
        inflight.push(async move { (i, fut.await) });
    }
    while let Some((j, r)) = inflight.next().await {
        let ack = r.unwrap_or_else(|e| panic!("ack of message {j}: {e}"));
        assert_eq!(ack.stream, stream_name);
        seqs[j] = ack.sequence;
    }
    seqs
}

fn show(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    if s.len() > 80 {
        format!("{:?}...({} bytes)", &s[..80], b.len())
    } else {
        format!("{s:?}")
    }
}

// ---------------------------------------------------------------------------------------
// 1. SIGKILL loop

const CRASH_STREAM: &str = "CRASH";
const PUBLISHERS: usize = 3;
/// Acks in flight per publisher.
const WINDOW: usize = 8;
/// Bound on messages per publisher per cycle.
const MAX_PER_PUBLISHER: usize = 20_000;
/// Whole test, including startup and verification; exceeding it fails the test.
const CRASH_TEST_LIMIT: Duration = Duration::from_secs(300);
/// Read back the whole stream every this many cycles (and after the last kill).
const FULL_CHECK_EVERY: usize = 10;
/// ... and always while the stream is this small.
const FULL_CHECK_BELOW: u64 = 4000;
/// Older messages read back on a partial check.
const OLD_WINDOW: u64 = 1000;

#[derive(Debug, Clone, Copy)]
#[allow(dead_code)] // read through Debug in failure messages
enum Origin {
    /// Acknowledged to a publisher in `cycle`.
    Acked { cycle: usize, publisher: usize },
    /// The probe publish right after the restart that began `cycle`.
    Probe { cycle: usize },
    /// Not acknowledged (in flight at the kill), but served after the restart that began
    /// `cycle`: from then on it is part of the stream like any other message.
    Served { cycle: usize },
}

#[derive(Debug, Clone)]
struct Expect {
    subject: String,
    payload: Bytes,
    origin: Origin,
}

#[derive(Debug, Default, Clone)]
struct CycleStats {
    cycle: usize,
    startup_ms: u128,
    last_seq_at_start: u64,
    probe_ms: u128,
    verify_ms: u128,
    recovered_unacked: usize,
    full_check: bool,
    checked: u64,
    kill_after_ms: u64,
    attempted: usize,
    acked: usize,
    publish_errors: usize,
    max_acked_seq: u64,
}

fn stats_table(stats: &[CycleStats]) -> String {
    let mut s = String::from(
        "cycle startup_ms last_seq@start probe_ms verify_ms checked recovered_unacked kill_after_ms attempted acked pub_errors max_acked_seq\n",
    );
    for c in stats {
        let _ = writeln!(
            s,
            "{:>5} {:>10} {:>14} {:>8} {:>9} {:>7}{} {:>17} {:>13} {:>9} {:>5} {:>10} {:>13}",
            c.cycle,
            c.startup_ms,
            c.last_seq_at_start,
            c.probe_ms,
            c.verify_ms,
            c.checked,
            if c.full_check { "*" } else { " " },
            c.recovered_unacked,
            c.kill_after_ms,
            c.attempted,
            c.acked,
            c.publish_errors,
            c.max_acked_seq
        );
    }
    s
}

struct PubResult {
    publisher: usize,
    /// Everything handed to the client (may or may not have reached the stream).
    attempted: Vec<(String, Bytes)>,
    /// (seq, subject, payload) for each positive PubAck.
    acked: Vec<(u64, String, Bytes)>,
    /// Client-side failures (expected once the server is gone).
    errors: Vec<String>,
    /// Error answers from the server (never expected).
    server_errors: Vec<String>,
}

type AckResult = Result<jetstream::publish::PublishAck, jetstream::context::PublishError>;

fn crash_payload(cycle: usize, publisher: usize, i: usize) -> Bytes {
    // Unique id, then a deterministic filler of varying length (0..200 bytes) so records
    // have different sizes and some batches cross page boundaries.
    let id = format!("c{cycle:03}-p{publisher}-{i:06}|");
    let h = (cycle as u64 * 1_000_003 + publisher as u64 * 7919 + i as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let n = (h >> 56) as usize % 200;
    let mut v = id.into_bytes();
    v.extend((0..n).map(|k| b'a' + ((h >> (k % 48)) as u8 % 26)));
    v.into()
}

async fn publisher(
    url: String,
    cycle: usize,
    publisher: usize,
    stop: Arc<AtomicBool>,
    ready: Arc<tokio::sync::Barrier>,
) -> PubResult {
    let mut res = PubResult {
        publisher,
        attempted: Vec::new(),
        acked: Vec::new(),
        errors: Vec::new(),
        server_errors: Vec::new(),
    };
    let client = connect(&url).await;
    ready.wait().await;
    let client = match client {
        Ok(c) => c,
        Err(e) => {
            res.errors.push(e);
            return res;
        }
    };
    let js = jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(5))
        .ack_timeout(Duration::from_secs(2))
        .max_ack_inflight(WINDOW * 4)
        .backpressure_on_inflight(true)
        .build(client.clone());
    let subject = format!("crash.p{publisher}");
    let mut inflight = FuturesUnordered::new();
    let handle = |res: &mut PubResult, (idx, r): (usize, AckResult)| {
        use jetstream::context::PublishErrorKind as K;
        match r {
            Ok(ack) => {
                if ack.stream != CRASH_STREAM || ack.duplicate {
                    res.server_errors.push(format!("odd ack {ack:?}"));
                    return;
                }
                let (s, p) = res.attempted[idx].clone();
                res.acked.push((ack.sequence, s, p));
            }
            // No answer: expected for what was in flight at the kill.
            Err(e) if matches!(e.kind(), K::TimedOut | K::BrokenPipe) => {
                res.errors.push(e.to_string());
            }
            // An answer, so sent before the kill: the server refused a publish.
            Err(e) => {
                res.server_errors.push(format!("{:?}: {e}", e.kind()));
            }
        }
    };
    let mut i = 0usize;
    while !stop.load(Ordering::Acquire) && i < MAX_PER_PUBLISHER {
        if inflight.len() >= WINDOW {
            if let Ok(Some(r)) =
                tokio::time::timeout(Duration::from_millis(10), inflight.next()).await
            {
                handle(&mut res, r);
            }
            continue;
        }
        let payload = crash_payload(cycle, publisher, i);
        res.attempted.push((subject.clone(), payload.clone()));
        let idx = res.attempted.len() - 1;
        match tokio::time::timeout(
            Duration::from_millis(500),
            js.publish(subject.clone(), payload),
        )
        .await
        {
            Ok(Ok(fut)) => inflight.push(async move { (idx, fut.await) }),
            Ok(Err(e)) => {
                res.errors.push(format!("publish: {e}"));
                break;
            }
            Err(_) => {
                res.errors.push("publish blocked".into());
                break;
            }
        }
        i += 1;
    }
    // Collect acks that had already arrived when the server died.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
    while !inflight.is_empty() {
        match tokio::time::timeout_at(deadline, inflight.next()).await {
            Ok(Some(r)) => handle(&mut res, r),
            _ => break,
        }
    }
    drop(inflight);
    drop(js);
    drop(client);
    res
}

struct CrashRun {
    seed: u64,
    truth: BTreeMap<u64, Expect>,
    /// Highest `last_seq` reported so far.
    last_seq_seen: u64,
    /// Not-acked attempts of the last publishing phase: payload → subject.
    unacked: HashMap<Bytes, String>,
    /// The probe's sequence at the last verification: what was written since starts there.
    recent_from: u64,
    stats: Vec<CycleStats>,
    logs: Vec<std::path::PathBuf>,
}

impl CrashRun {
    fn fail(&self, cycle: usize, what: &str) -> ! {
        let mut s = format!(
            "SIGKILL loop failed in cycle {cycle} (NATRIUM_CRASH_SEED={}):\n{what}\n\n{}",
            self.seed,
            stats_table(&self.stats)
        );
        // The log of the server that was killed and of the current one.
        for log in self.logs.iter().rev().take(2).rev() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let _ = write!(
                s,
                "\n--- {} (warnings/errors/recovery) ---\n{}\n--- tail ---\n{}\n",
                log.display(),
                interesting_lines(&text),
                tail(&text, 15)
            );
            let err = std::fs::read_to_string(log.with_extension("stderr")).unwrap_or_default();
            if !err.trim().is_empty() {
                let _ = write!(s, "--- stderr ---\n{}\n", tail(&err, 30));
            }
        }
        panic!("{s}");
    }

    /// Right after a (re)start: the stream is there, publishing works at once, and every
    /// message the stream ever acknowledged or served is back unchanged.
    async fn verify(
        &mut self,
        url: &str,
        cycle: usize,
        final_check: bool,
        rng: &mut Rng,
        st: &mut CycleStats,
    ) -> Result<(), String> {
        let t0 = Instant::now();
        let client = connect(url).await?;
        let state = stream_state(&client, CRASH_STREAM)
            .await
            .map_err(|e| format!("stream {CRASH_STREAM} missing after restart: {e}"))?;
        st.last_seq_at_start = state.last_seq;
        let max_known = self.truth.keys().next_back().copied().unwrap_or(0);
        if state.last_seq < max_known {
            let e = &self.truth[&max_known];
            return Err(format!(
                "last_seq went back: {} after restart, but seq {max_known} was {:?} ({})",
                state.last_seq,
                e.origin,
                show(&e.payload)
            ));
        }
        if state.last_seq < self.last_seq_seen {
            return Err(format!(
                "last_seq went back: {} after restart, {} before",
                state.last_seq, self.last_seq_seen
            ));
        }
        if state.last_seq > 0
            && (state.first_seq != 1 || state.messages != state.last_seq || state.num_deleted != 0)
        {
            return Err(format!(
                "nothing was ever deleted, but the state after restart is {state:?}"
            ));
        }
        // Publishing works right away, at the next sequence.
        let js = jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(5))
            .build(client.clone());
        let probe: Bytes = format!("probe-c{cycle:03}").into();
        let tp = Instant::now();
        let ack = match js.publish("crash.probe", probe.clone()).await {
            Ok(f) => f.await,
            Err(e) => Err(e),
        }
        .map_err(|e| format!("first publish after restart failed: {e}"))?;
        st.probe_ms = tp.elapsed().as_millis();
        if ack.sequence != state.last_seq + 1 {
            return Err(format!(
                "first publish after restart got seq {}, expected {} (last_seq {})",
                ack.sequence,
                state.last_seq + 1,
                state.last_seq
            ));
        }
        if let Some(old) = self.truth.get(&ack.sequence) {
            return Err(format!(
                "sequence {} reused by the probe; it was {:?} {}",
                ack.sequence,
                old.origin,
                show(&old.payload)
            ));
        }
        self.truth.insert(
            ack.sequence,
            Expect {
                subject: "crash.probe".into(),
                payload: probe,
                origin: Origin::Probe { cycle },
            },
        );
        let last = ack.sequence;
        self.last_seq_seen = last;

        // Read back, via batched direct gets: everything on a full check, else the tail
        // the last cycle wrote (from a little before the previous probe) plus one random
        // window of older messages. Every message is so checked right after the first
        // restart that follows its publication, and again on every full check.
        //
        // The filter `crash.>` (all of the stream's subjects) is deliberate: an unfiltered
        // batch costs O(messages after it) per message for its Nats-Num-Pending header
        // (`filtered_state` counts a BTreeMap range), which makes reading a whole stream
        // quadratic; the subject path counts per subject.
        let full =
            cycle.is_multiple_of(FULL_CHECK_EVERY) || final_check || last <= FULL_CHECK_BELOW;
        st.full_check = full;
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        if full {
            ranges.push((1, last));
        } else {
            let recent = self.recent_from.saturating_sub(256).max(1);
            if recent > 1 {
                let lo = rng.range(1, recent);
                ranges.push((lo, (lo + OLD_WINDOW - 1).min(recent - 1)));
            }
            ranges.push((recent, last));
        }
        self.recent_from = last;
        let mut got_by_seq: BTreeMap<u64, Got> = BTreeMap::new();
        for &(lo, hi) in &ranges {
            let got = direct_scan(&client, CRASH_STREAM, lo, hi, 2000, Some("crash.>")).await?;
            let n = got.len() as u64;
            for g in got {
                got_by_seq.insert(g.seq, g);
            }
            if n != hi - lo + 1 {
                let missing = (lo..=hi).find(|s| !got_by_seq.contains_key(s));
                let detail = missing
                    .and_then(|m| self.truth.get(&m))
                    .map(|e| format!(" (it was {:?} {})", e.origin, show(&e.payload)));
                return Err(format!(
                    "{n} messages served for sequences {lo}..={hi}; first missing \
                     {missing:?}{}",
                    detail.unwrap_or_default()
                ));
            }
            st.checked += n;
        }
        for &(lo, hi) in &ranges {
            for (seq, e) in self.truth.range(lo..=hi) {
                match got_by_seq.get(seq) {
                    None => {
                        return Err(format!(
                            "seq {seq} ({:?}, {}) is missing after restart",
                            e.origin,
                            show(&e.payload),
                        ));
                    }
                    Some(g) if g.subject != e.subject || g.payload != e.payload => {
                        return Err(format!(
                            "seq {seq} ({:?}) changed: expected {} {}, got {} {}",
                            e.origin,
                            e.subject,
                            show(&e.payload),
                            g.subject,
                            show(&g.payload)
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        let mut seen_unacked: BTreeSet<Bytes> = BTreeSet::new();
        let mut recovered = 0;
        for (seq, g) in &got_by_seq {
            if self.truth.contains_key(seq) {
                continue;
            }
            // A message that was in flight at the kill: fine to keep, but it must be one
            // that was really published (in the last cycle: everything older was read back
            // before), stored once, under its own subject.
            match self.unacked.get(&g.payload) {
                Some(subj) if *subj == g.subject && seen_unacked.insert(g.payload.clone()) => {
                    recovered += 1;
                }
                Some(_) => {
                    return Err(format!(
                        "seq {seq}: unacknowledged message {} {} stored twice or under the \
                         wrong subject",
                        g.subject,
                        show(&g.payload)
                    ));
                }
                None => {
                    return Err(format!(
                        "seq {seq}: {} {} was never published in the last cycle (or was \
                         acknowledged at another sequence)",
                        g.subject,
                        show(&g.payload)
                    ));
                }
            }
        }
        for (seq, g) in got_by_seq {
            self.truth.entry(seq).or_insert(Expect {
                subject: g.subject,
                payload: g.payload,
                origin: Origin::Served { cycle },
            });
        }
        st.recovered_unacked = recovered;
        // A few reads through the other path, STREAM.MSG.GET.
        for _ in 0..3 {
            let seq = rng.range(1, last + 1);
            let e = &self.truth[&seq];
            match msg_get(&client, CRASH_STREAM, seq).await? {
                MsgGet::Found(g) if g.seq == seq && g.payload == e.payload => {}
                other => {
                    return Err(format!(
                        "MSG.GET {seq}: expected {}, got {other:?}",
                        show(&e.payload)
                    ));
                }
            }
        }
        st.verify_ms = t0.elapsed().as_millis();
        Ok(())
    }

    /// Publish from several clients until the server is SIGKILLed.
    async fn publish_and_kill(
        &mut self,
        srv: &mut ServerProc,
        cycle: usize,
        rng: &mut Rng,
        st: &mut CycleStats,
    ) -> Result<(), String> {
        let stop = Arc::new(AtomicBool::new(false));
        let ready = Arc::new(tokio::sync::Barrier::new(PUBLISHERS + 1));
        let tasks: Vec<_> = (0..PUBLISHERS)
            .map(|p| tokio::spawn(publisher(srv.url(), cycle, p, stop.clone(), ready.clone())))
            .collect();
        let delay = rng.range(20, 301);
        st.kill_after_ms = delay;
        ready.wait().await;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        srv.sigkill();
        stop.store(true, Ordering::Release);
        let mut results = Vec::new();
        for t in tasks {
            let r = tokio::time::timeout(Duration::from_secs(20), t)
                .await
                .map_err(|_| "a publisher did not stop within 20 s".to_string())?
                .map_err(|e| format!("publisher task: {e}"))?;
            results.push(r);
        }
        self.unacked.clear();
        let floor = self.last_seq_seen;
        let mut cycle_seqs: BTreeSet<u64> = BTreeSet::new();
        for r in results {
            if r.errors.iter().any(|e| e.starts_with("connect")) {
                return Err(format!("publisher {}: {:?}", r.publisher, r.errors));
            }
            if !r.server_errors.is_empty() {
                return Err(format!(
                    "publisher {} got error answers from the server before the kill: {:?}",
                    r.publisher,
                    &r.server_errors[..r.server_errors.len().min(5)]
                ));
            }
            st.attempted += r.attempted.len();
            st.acked += r.acked.len();
            st.publish_errors += r.errors.len();
            let acked: BTreeSet<&Bytes> = r.acked.iter().map(|(_, _, p)| p).collect();
            for (s, p) in &r.attempted {
                if !acked.contains(p) {
                    self.unacked.insert(p.clone(), s.clone());
                }
            }
            for (seq, subject, payload) in r.acked {
                st.max_acked_seq = st.max_acked_seq.max(seq);
                if seq <= floor || !cycle_seqs.insert(seq) {
                    let before = self
                        .truth
                        .get(&seq)
                        .map(|e| format!("{:?} {}", e.origin, show(&e.payload)));
                    return Err(format!(
                        "sequence {seq} acknowledged again (for {}), last_seq before this \
                         cycle was {floor}; earlier: {before:?}",
                        show(&payload)
                    ));
                }
                self.truth.insert(
                    seq,
                    Expect {
                        subject,
                        payload,
                        origin: Origin::Acked {
                            cycle,
                            publisher: r.publisher,
                        },
                    },
                );
            }
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loop_keeps_every_acked_message() {
    let seed = seed_from_env("NATRIUM_CRASH_SEED");
    let cycles = env_usize("NATRIUM_CRASH_CYCLES", 50);
    // Kill points come from their own stream, so they depend on the seed only (the
    // read-back sampling draws a data-dependent number of values).
    let mut kill_rng = Rng::new(seed);
    let mut check_rng = Rng::new(seed ^ 0xC4EC_C4EC);
    let tmp = tempfile::tempdir().unwrap();
    let sd = tmp.path().join("sd");
    let started = Instant::now();
    let mut run = CrashRun {
        seed,
        truth: BTreeMap::new(),
        last_seq_seen: 0,
        unacked: HashMap::new(),
        recent_from: 1,
        stats: Vec::new(),
        logs: Vec::new(),
    };
    let log0 = tmp.path().join("server-000.log");
    run.logs.push(log0.clone());
    let mut srv = ServerProc::start(&sd, &log0).unwrap_or_else(|e| run.fail(0, &e));
    {
        let c = connect(&srv.url()).await.unwrap();
        create_file_stream(&c, CRASH_STREAM, &["crash.>"]).await;
    }
    let mut startup = srv.startup;
    for cycle in 0..=cycles {
        if started.elapsed() > CRASH_TEST_LIMIT {
            run.fail(
                cycle,
                &format!("time limit {CRASH_TEST_LIMIT:?} exceeded after {cycle} cycles"),
            );
        }
        let mut st = CycleStats {
            cycle,
            startup_ms: startup.as_millis(),
            ..Default::default()
        };
        let url = srv.url();
        let r = run
            .verify(&url, cycle, cycle == cycles, &mut check_rng, &mut st)
            .await;
        run.stats.push(st.clone());
        if let Err(e) = r {
            run.fail(cycle, &e);
        }
        if cycle == cycles {
            break;
        }
        let r = run
            .publish_and_kill(&mut srv, cycle, &mut kill_rng, &mut st)
            .await;
        *run.stats.last_mut().unwrap() = st;
        if let Err(e) = r {
            run.fail(cycle, &e);
        }
        let log = tmp.path().join(format!("server-{:03}.log", cycle + 1));
        run.logs.push(log.clone());
        srv = ServerProc::start(&sd, &log)
            .unwrap_or_else(|e| run.fail(cycle + 1, &format!("restart failed: {e}")));
        startup = srv.startup;
    }
    srv.stop().unwrap_or_else(|e| run.fail(cycles, &e));
    let acked: usize = run.stats.iter().map(|s| s.acked).sum();
    let with_acks = run.stats.iter().filter(|s| s.acked > 0).count();
    println!(
        "{}\n{cycles} kills in {:?}: {acked} publisher acks, {} messages checked after the \
         last restart",
        stats_table(&run.stats),
        started.elapsed(),
        run.truth.len()
    );
    assert!(
        with_acks * 2 >= cycles,
        "only {with_acks} of {cycles} cycles got any publisher ack before the kill; the \
         test is not exercising acknowledged writes (seed {seed})\n{}",
        stats_table(&run.stats)
    );
}

// ---------------------------------------------------------------------------------------
// 2. Damaged segments

fn dmg_payload(i: usize) -> Bytes {
    let n = 20 + (i * 7919) % 500;
    let mut v = format!("dmg-{i:05}|").into_bytes();
    v.extend((0..n).map(|k| b'A' + ((i + k) % 26) as u8));
    v.into()
}

/// Test 2 as asked: bytes flipped anywhere in the records and the tail of the last
/// segment cut off (1 byte to ~4 records).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_segments_are_isolated_and_reported() {
    damage_scenario(true, 0xD0D0_D0D0).await;
}

/// The same with interior damage only (the last record of the last segment is left
/// intact), so isolation and reporting are checked apart from what a cut tail does to
/// the last sequence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_interior_records_are_isolated_and_reported() {
    damage_scenario(false, 0xF11F_F11F).await;
}

async fn damage_scenario(cut_tail: bool, salt: u64) {
    const N: usize = 3000;
    let seed = seed_from_env("NATRIUM_CRASH_SEED");
    let mut rng = Rng::new(seed ^ salt);
    let tmp = tempfile::tempdir().unwrap();
    let sd = tmp.path().join("sd");
    let mut srv = ServerProc::start(&sd, &tmp.path().join("s1.log")).unwrap();
    let c = connect(&srv.url()).await.unwrap();
    create_file_stream(&c, "DMG", &["dmg.>"]).await;
    create_file_stream(&c, "GOOD", &["good.>"]).await;
    let msgs: Vec<(String, Bytes)> = (0..N)
        .map(|i| (format!("dmg.s{}", i % 7), dmg_payload(i)))
        .collect();
    let seqs = publish_all(&c, "DMG", &msgs, 64).await;
    assert_eq!(seqs, (1..=N as u64).collect::<Vec<_>>(), "acked sequences");
    let acked: BTreeMap<u64, (String, Bytes)> = seqs.iter().copied().zip(msgs.clone()).collect();
    let good_msgs: Vec<(String, Bytes)> = (0..100)
        .map(|i| ("good.x".to_string(), Bytes::from(format!("good-{i}"))))
        .collect();
    publish_all(&c, "GOOD", &good_msgs, 16).await;
    let old_last = stream_state(&c, "DMG").await.unwrap().last_seq;
    assert_eq!(old_last, N as u64);
    drop(c);
    srv.stop().expect("clean stop");

    // Damage: flip bytes in the records and cut the tail of the last segment.
    let dir = stream_dir(&sd, "DMG");
    let segs = segment_files(&dir);
    assert!(!segs.is_empty(), "no segment files in {}", dir.display());
    let mut damaged: BTreeSet<u64> = BTreeSet::new();
    let mut plan = Vec::new();
    let mut all_spans = Vec::new();
    for (i, path) in segs.iter().enumerate() {
        let mut bytes = std::fs::read(path).unwrap();
        let spans = parse_segment(&bytes);
        let msg_spans: Vec<RecordSpan> = spans.iter().copied().filter(|s| s.kind == 1).collect();
        if msg_spans.is_empty() {
            continue;
        }
        let mut len = bytes.len() as u64;
        let last_segment = i + 1 == segs.len();
        if last_segment && cut_tail {
            // Cut 1 byte .. ~4 records off the end.
            let cut = rng.range(1, 2000.min(len - SEG_HDR));
            len -= cut;
            bytes.truncate(len as usize);
            plan.push(format!(
                "{}: truncated {cut} bytes to {len}",
                path.display()
            ));
        }
        // Without a cut, keep the segment's last record intact: damage there is a torn
        // tail, which the cut-tail scenario covers.
        let flip_end = if last_segment && !cut_tail {
            msg_spans.last().unwrap().off
        } else {
            len
        };
        for _ in 0..6 {
            let off = rng.range(SEG_HDR, flip_end);
            let mask = rng.range(1, 256) as u8;
            bytes[off as usize] ^= mask;
            plan.push(format!(
                "{}: flipped byte {off} with {mask:#04x}",
                path.display()
            ));
            if let Some(s) = spans.iter().find(|s| s.off <= off && off < s.off + s.len) {
                damaged.insert(s.seq);
            }
        }
        for s in &msg_spans {
            if s.off + s.len > len {
                damaged.insert(s.seq);
            }
        }
        std::fs::write(path, &bytes).unwrap();
        all_spans.extend(msg_spans);
    }
    let undamaged: BTreeSet<u64> = (1..=N as u64).filter(|s| !damaged.contains(s)).collect();
    let plan = plan.join("\n");
    println!("damage plan (seed {seed}):\n{plan}\ndamaged seqs: {damaged:?}");
    assert_eq!(all_spans.len(), N, "records found in the segments");

    let log2 = tmp.path().join("s2.log");
    let mut srv = ServerProc::start(&sd, &log2).unwrap_or_else(|e| {
        panic!("server did not start over damaged segments (seed {seed}):\n{plan}\n{e}")
    });
    let c = connect(&srv.url()).await.unwrap();
    let mut failures: Vec<String> = Vec::new();
    let names = stream_names(&c).await.unwrap();
    if !names.iter().any(|n| n == "DMG") || !names.iter().any(|n| n == "GOOD") {
        failures.push(format!("stream list after restart: {names:?}"));
    }
    let state = stream_state(&c, "DMG").await;
    match &state {
        Ok(s) if s.messages == undamaged.len() as u64 => {}
        other => failures.push(format!(
            "DMG state {other:?}, expected {} messages (the undamaged ones)",
            undamaged.len()
        )),
    }
    if let Ok(s) = &state
        && s.last_seq < old_last
    {
        failures.push(format!(
            "DMG last_seq went back from {old_last} to {} after the tail was cut",
            s.last_seq
        ));
    }
    // Every sequence through MSG.GET: the acked bytes or an error, never other bytes.
    let mut served_damaged = Vec::new();
    let mut missing_undamaged = Vec::new();
    for seq in 1..=N as u64 {
        let (subj, payload) = &acked[&seq];
        match msg_get(&c, "DMG", seq).await.unwrap() {
            MsgGet::Found(g) => {
                if g.seq != seq || g.subject != *subj || g.payload != *payload {
                    failures.push(format!(
                        "MSG.GET {seq} served wrong data: {} {} (acked {subj} {})",
                        g.subject,
                        show(&g.payload),
                        show(payload)
                    ));
                } else if damaged.contains(&seq) {
                    served_damaged.push(seq);
                }
            }
            MsgGet::Error(e) => {
                if !damaged.contains(&seq) {
                    missing_undamaged.push((seq, e));
                }
            }
        }
    }
    if !served_damaged.is_empty() {
        failures.push(format!(
            "damaged records served with their original bytes (the flip did not register?): \
             {served_damaged:?}"
        ));
    }
    if !missing_undamaged.is_empty() {
        failures.push(format!(
            "{} undamaged messages not served, first: {:?}",
            missing_undamaged.len(),
            &missing_undamaged[..missing_undamaged.len().min(5)]
        ));
    }
    // The same through batched direct gets.
    match direct_scan(&c, "DMG", 1, N as u64, 500, None).await {
        Ok(got) => {
            for g in &got {
                let (subj, payload) = &acked[&g.seq];
                if g.subject != *subj || g.payload != *payload {
                    failures.push(format!(
                        "DIRECT.GET served wrong data at {}: {}",
                        g.seq,
                        show(&g.payload)
                    ));
                }
            }
            let got_seqs: BTreeSet<u64> = got.iter().map(|g| g.seq).collect();
            if got_seqs != undamaged {
                failures.push(format!(
                    "DIRECT.GET batch served {} messages, {} undamaged; served-but-damaged \
                     {:?}, undamaged-not-served {:?}",
                    got_seqs.len(),
                    undamaged.len(),
                    got_seqs.difference(&undamaged).take(10).collect::<Vec<_>>(),
                    undamaged.difference(&got_seqs).take(10).collect::<Vec<_>>()
                ));
            }
        }
        Err(e) => failures.push(format!("DIRECT.GET scan failed: {e}")),
    }
    // The other stream is untouched.
    match direct_scan(&c, "GOOD", 1, 100, 100, None).await {
        Ok(got)
            if got.len() == 100
                && got
                    .iter()
                    .zip(&good_msgs)
                    .all(|(g, (s, p))| g.subject == *s && g.payload == *p) => {}
        other => failures.push(format!("GOOD stream after restart: {other:?}")),
    }
    // The log says what recovery did.
    let text = srv.log_text();
    let dir_s = dir.display().to_string();
    if !text
        .lines()
        .any(|l| l.contains("[WRN]") && l.contains("recovery") && l.contains(&dir_s))
    {
        failures.push(format!(
            "no recovery warning for {dir_s} in the log:\n{}",
            interesting_lines(&text)
        ));
    }
    // Publishing continues after the old last sequence.
    let new_msgs: Vec<(String, Bytes)> = (0..10)
        .map(|i| ("dmg.new".to_string(), Bytes::from(format!("new-{i}"))))
        .collect();
    let new_seqs = publish_all(&c, "DMG", &new_msgs, 1).await;
    if new_seqs[0] <= old_last {
        let reused: Vec<String> = new_seqs
            .iter()
            .filter(|s| **s <= old_last)
            .map(|s| format!("{s} (acked before as {})", show(&acked[s].1)))
            .collect();
        failures.push(format!(
            "publishing after recovery reuses acknowledged sequences: new messages got \
             {new_seqs:?}, but sequences up to {old_last} were acknowledged before; reused: \
             {reused:?}"
        ));
    }
    for (seq, (_, p)) in new_seqs.iter().zip(&new_msgs) {
        match msg_get(&c, "DMG", *seq).await.unwrap() {
            MsgGet::Found(g) if g.payload == *p => {}
            other => failures.push(format!("new message at {seq}: {other:?}")),
        }
    }
    drop(c);
    srv.stop().expect("clean stop");

    // Once more: what was recovered and published since survives another restart.
    let log3 = tmp.path().join("s3.log");
    let srv = ServerProc::start(&sd, &log3).unwrap();
    let c = connect(&srv.url()).await.unwrap();
    match stream_state(&c, "DMG").await {
        Ok(s)
            if s.messages == (undamaged.len() + new_msgs.len()) as u64
                && s.last_seq == *new_seqs.last().unwrap() => {}
        other => failures.push(format!(
            "after a second restart DMG is {other:?}; expected {} messages, last_seq {}",
            undamaged.len() + new_msgs.len(),
            new_seqs.last().unwrap()
        )),
    }
    drop(c);
    drop(srv);
    assert!(
        failures.is_empty(),
        "damaged segments, cut_tail={cut_tail} (seed {seed}):\ndamage:\n{plan}\ndamaged seqs: {damaged:?}\n\nfailures:\n- {}\n\nlog after damage:\n{}",
        failures.join("\n- "),
        interesting_lines(&std::fs::read_to_string(&log2).unwrap_or_default())
    );
}

// ---------------------------------------------------------------------------------------
// 3. Unreadable stream directories

/// Rewrite the metadata envelope at `path` with another version field and a valid CRC.
fn set_meta_version(path: &Path, version: u32) {
    let mut b = std::fs::read(path).unwrap();
    assert!(
        b.len() >= 24 && &b[..4] == b"NTRM",
        "{} is not NTRM",
        path.display()
    );
    b[4..8].copy_from_slice(&version.to_le_bytes());
    let n = b.len() - 4;
    let crc = crc32c(&b[..n]);
    b[n..].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(path, b).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_stream_dir_does_not_block_startup() {
    let seed = seed_from_env("NATRIUM_CRASH_SEED");
    let mut rng = Rng::new(seed ^ 0x5EED_0003);
    let tmp = tempfile::tempdir().unwrap();
    let sd = tmp.path().join("sd");
    let mut srv = ServerProc::start(&sd, &tmp.path().join("s1.log")).unwrap();
    let c = connect(&srv.url()).await.unwrap();
    // Names sort around the damaged ones, so recovery meets good and bad in turn.
    let all = [
        ("A_OK", "a"),
        ("BAD_META", "bm"),
        ("BAD_EMPTY", "be"),
        ("BAD_VERSION", "bv"),
        ("FMT_FLIP", "ff"),
        ("Z_OK", "z"),
    ];
    let mut contents: HashMap<&str, Vec<(String, Bytes)>> = HashMap::new();
    for (name, prefix) in all {
        create_file_stream(&c, name, &[&format!("{prefix}.>")]).await;
        let msgs: Vec<(String, Bytes)> = (0..20)
            .map(|i| {
                (
                    format!("{prefix}.{}", i % 3),
                    Bytes::from(format!("{name}-{i}")),
                )
            })
            .collect();
        let seqs = publish_all(&c, name, &msgs, 8).await;
        assert_eq!(seqs, (1..=20).collect::<Vec<u64>>());
        contents.insert(name, msgs);
    }
    drop(c);
    srv.stop().expect("clean stop");

    // BAD_META: a byte of the stream config flipped (checksum mismatch).
    let p = stream_dir(&sd, "BAD_META").join("stream.nmeta");
    let mut b = std::fs::read(&p).unwrap();
    let off = rng.range(20, b.len() as u64 - 4) as usize;
    b[off] ^= rng.range(1, 256) as u8;
    std::fs::write(&p, b).unwrap();
    // BAD_EMPTY: the stream config file is empty.
    std::fs::write(stream_dir(&sd, "BAD_EMPTY").join("stream.nmeta"), b"").unwrap();
    // BAD_VERSION: the store format file claims a version from the future.
    set_meta_version(&stream_dir(&sd, "BAD_VERSION").join("store.nmeta"), 99);
    // FMT_FLIP: the store format file is damaged (checksum mismatch) - the store can
    // rewrite it, the stream itself is readable.
    let p = stream_dir(&sd, "FMT_FLIP").join("store.nmeta");
    let mut b = std::fs::read(&p).unwrap();
    let n = b.len();
    b[n - 1] ^= 0x55;
    std::fs::write(&p, b).unwrap();

    let bad = ["BAD_META", "BAD_EMPTY", "BAD_VERSION"];
    let before: HashMap<&str, _> = bad
        .iter()
        .map(|n| (*n, snapshot(&stream_dir(&sd, n))))
        .collect();

    let mut failures: Vec<String> = Vec::new();
    for round in 0..2 {
        let log = tmp.path().join(format!("r{round}.log"));
        let mut srv = ServerProc::start(&sd, &log)
            .unwrap_or_else(|e| panic!("server did not start (round {round}): {e}"));
        let c = connect(&srv.url()).await.unwrap();
        let text = srv.log_text();
        let names = stream_names(&c).await.unwrap();
        // The good streams (and the one whose format file could be rewritten) work.
        for name in ["A_OK", "Z_OK", "FMT_FLIP"] {
            if !names.iter().any(|n| n == name) {
                failures.push(format!("round {round}: {name} not listed: {names:?}"));
                continue;
            }
            let msgs = &contents[name];
            match direct_scan(&c, name, 1, 1000, 100, None).await {
                Ok(got)
                    if got.len() == msgs.len()
                        && got
                            .iter()
                            .zip(msgs.iter())
                            .all(|(g, (s, p))| g.subject == *s && g.payload == *p) => {}
                other => failures.push(format!("round {round}: {name} contents: {other:?}")),
            }
            let prefix = all.iter().find(|(n, _)| *n == name).unwrap().1;
            let m = vec![(format!("{prefix}.new"), Bytes::from(format!("r{round}")))];
            let seq = publish_all(&c, name, &m, 1).await[0];
            if seq != msgs.len() as u64 + 1 {
                failures.push(format!(
                    "round {round}: {name} new message got seq {seq}, expected {}",
                    msgs.len() + 1
                ));
            }
            contents.get_mut(name).unwrap().extend(m);
        }
        // A new stream can be created and used.
        let fresh = format!("NEW{round}");
        create_file_stream(&c, &fresh, &[&format!("new{round}.>")]).await;
        let seq = publish_all(&c, &fresh, &[(format!("new{round}.x"), "x".into())], 1).await;
        if seq != [1] {
            failures.push(format!("round {round}: {fresh} first publish got {seq:?}"));
        }
        // The damaged ones: reported, never served as fresh empty streams, left on disk.
        for name in bad {
            let dir = stream_dir(&sd, name);
            let dir_s = dir.display().to_string();
            if !text
                .lines()
                .any(|l| l.contains("[ERR]") && l.contains(&dir_s))
            {
                failures.push(format!(
                    "round {round}: no error logged for {dir_s}:\n{}",
                    interesting_lines(&text)
                ));
            }
            if let Ok(st) = stream_state(&c, name).await
                && st.messages != 20
            {
                failures.push(format!(
                    "round {round}: damaged {name} is served with state {st:?} (reset?)"
                ));
            }
            let diff = snapshot_diff(&before[name], &snapshot(&dir));
            if !diff.is_empty() {
                failures.push(format!(
                    "round {round}: {name}'s directory was changed:\n{diff}"
                ));
            }
        }
        drop(c);
        srv.stop()
            .unwrap_or_else(|e| failures.push(format!("round {round}: stop: {e}")));
    }
    assert!(
        failures.is_empty(),
        "unreadable stream directories (seed {seed}):\n- {}",
        failures.join("\n- ")
    );
}

/// Every file under `root`, by content.
fn all_file_contents(root: &Path) -> BTreeSet<Vec<u8>> {
    snapshot(root).into_values().collect()
}

/// A client re-creating, by name, a stream that failed to recover (common: "create the
/// stream if it does not exist" at application start) must not destroy the unrecovered
/// stream's data. The server may refuse the create, move the old directory aside, or adopt
/// the old messages; it must not silently apply the new config's limits to them or
/// overwrite the evidence. Checked: afterwards either every original file of the damaged
/// directory still exists byte for byte somewhere under the store directory, or all of its
/// acknowledged messages are still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreating_an_unrecovered_stream_keeps_its_data() {
    let seed = seed_from_env("NATRIUM_CRASH_SEED");
    let mut rng = Rng::new(seed ^ 0x0EC0_0EC0);
    let tmp = tempfile::tempdir().unwrap();
    let sd = tmp.path().join("sd");
    let mut srv = ServerProc::start(&sd, &tmp.path().join("s1.log")).unwrap();
    let c = connect(&srv.url()).await.unwrap();
    create_file_stream(&c, "B", &["b.>"]).await;
    let msgs: Vec<(String, Bytes)> = (0..20)
        .map(|i| ("b.x".to_string(), Bytes::from(format!("old-{i}"))))
        .collect();
    assert_eq!(
        publish_all(&c, "B", &msgs, 4).await,
        (1..=20).collect::<Vec<u64>>()
    );
    drop(c);
    srv.stop().expect("clean stop");
    let dir = stream_dir(&sd, "B");
    let p = dir.join("stream.nmeta");
    let mut b = std::fs::read(&p).unwrap();
    let off = rng.range(20, b.len() as u64 - 4) as usize;
    b[off] ^= rng.range(1, 256) as u8;
    std::fs::write(&p, b).unwrap();
    let before = snapshot(&dir);

    let log = tmp.path().join("s2.log");
    let srv = ServerProc::start(&sd, &log).unwrap();
    let c = connect(&srv.url()).await.unwrap();
    assert!(
        stream_state(&c, "B").await.is_err(),
        "B should not have been recovered with damaged metadata"
    );
    let js = jetstream::new(c.clone());
    let created = js
        .create_stream(stream::Config {
            name: "B".into(),
            subjects: vec!["b.>".into()],
            max_messages: 5,
            allow_direct: true,
            ..Default::default()
        })
        .await;
    let created_desc = match &created {
        Ok(s) => format!("created: {:?}", s.cached_info().state),
        Err(e) => format!("refused: {e}"),
    };
    let on_disk = all_file_contents(&sd.join("jetstream"));
    let lost_files: Vec<String> = before
        .iter()
        .filter(|(_, bytes)| !on_disk.contains(*bytes))
        .map(|(p, _)| p.display().to_string())
        .collect();
    let served = if created.is_ok() {
        direct_scan(&c, "B", 1, 20, 20, None)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|g| {
                g.seq >= 1
                    && g.seq <= 20
                    && (g.subject.as_str(), &g.payload)
                        == (
                            msgs[g.seq as usize - 1].0.as_str(),
                            &msgs[g.seq as usize - 1].1,
                        )
            })
            .count()
    } else {
        0
    };
    let diff = snapshot_diff(&before, &snapshot(&dir));
    drop(c);
    drop(srv);
    assert!(
        lost_files.is_empty() || served == 20,
        "re-creating unrecovered stream B (seed {seed}) destroyed its data: {created_desc}; \
         {served} of its 20 acknowledged messages are served, and these original files are \
         gone: {lost_files:?}\nchanges in {}:\n{diff}\nlog:\n{}",
        dir.display(),
        interesting_lines(&std::fs::read_to_string(&log).unwrap_or_default())
    );
}
