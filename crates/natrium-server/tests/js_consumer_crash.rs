//! Durable JetStream consumer state across SIGKILL: the real `natrium-server` binary as a
//! child process on a store directory, real async-nats clients, the server killed with
//! SIGKILL (by its PID) at random moments while a client fetches and acknowledges, then
//! restarted on the same directory.
//!
//! What a client may rely on (see `jetstream/consumer/mod.rs`): an ack the server has
//! confirmed (AckSync, async-nats `double_ack` returning Ok) is never undone, and a
//! message is never lost. So, across every kill and restart:
//!
//! - a message whose ack was confirmed is never delivered again (not to any pull request
//!   made after the confirmation, in this server life or a later one). A plain ack sent on
//!   the same connection *before* a confirmed AckSync counts as confirmed too: the server
//!   handles a connection's acks in order and persists all of them before it answers;
//! - `ack_floor.stream_seq` never goes back: after a restart it is at least the floor seen
//!   before the kill at a point where every ack sent had been confirmed, the floor seen
//!   after the previous restart, and the longest confirmed prefix `1..=k`;
//! - nothing unacknowledged is lost: draining after the last restart ends with every
//!   sequence `1..=N` received and acked, `num_pending == 0`, `num_ack_pending == 0`, and
//!   another SIGKILL after that redelivers nothing;
//! - the stream itself: limits retention still holds all N messages with their payloads;
//!   work-queue and interest retention (one consumer) end empty, and after every restart
//!   hold nothing at or below the consumer's ack floor.
//!
//! - the consumer's configuration (as the server reported it at creation) is unchanged
//!   after every restart.
//!
//! Randomness is seeded: `NATRIUM_CONSUMER_CRASH_SEED=<u64>` repeats a run (the seed is
//! printed). `NATRIUM_CONSUMER_CRASH_CYCLES=<n>` sets the number of kill/restart cycles
//! of each scenario (default 4; each cycle costs about half a second to two seconds).
//! Every loop is bounded by count and time. The server process and RNG helpers are shared
//! with `js_crash.rs` (`js_crash_support`).

mod js_crash_support;

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures::StreamExt;
use js_crash_support::{Rng, ServerProc, connect as connect_client, env_usize, seed_from_env};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The consumer's ack wait.
const ACK_WAIT: Duration = Duration::from_secs(2);
/// Client-side timeout of JetStream requests (AckSync, info, fetch start).
const REQ_TIMEOUT: Duration = Duration::from_secs(3);
/// Kill/restart cycles per scenario unless `NATRIUM_CONSUMER_CRASH_CYCLES` says otherwise.
const DEFAULT_CYCLES: usize = 4;

/// Start a server on `store`, panicking with its log if it does not come up.
fn start(store: &Path, log: &Path) -> ServerProc {
    ServerProc::start(store, log).unwrap_or_else(|e| panic!("{e}"))
}

async fn connect(server: &ServerProc) -> (async_nats::Client, jetstream::Context) {
    let client = connect_client(&server.url())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let js = jetstream::ContextBuilder::new()
        .timeout(REQ_TIMEOUT)
        .build(client.clone());
    (client, js)
}

// ---------------------------------------------------------------------------------------
// What the client saw

/// How an ack came to be confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    /// `double_ack` returned Ok.
    AckSync,
    /// A plain ack sent before an AckSync that was confirmed (same connection).
    PlainBeforeSync,
}

#[derive(Debug, Clone, Copy)]
struct Confirmed {
    /// Fetches numbered from 1 over the whole test; the confirmation came during this one.
    fetch: u64,
    life: u32,
    how: How,
}

/// The last ack sent for a sequence.
#[derive(Debug, Clone, Copy)]
struct AckSent {
    life: u32,
    fetch: u64,
    sync: bool,
}

/// Everything the clients observed, shared with the (abortable) client task; the lock is
/// never held across an await.
#[derive(Debug, Default)]
struct Ledger {
    /// Current server life (0 = the first start).
    life: u32,
    /// Last fetch number handed out.
    fetch: u64,
    /// Receptions per stream sequence.
    received: BTreeMap<u64, u32>,
    /// Every sequence an ack (plain or AckSync) was sent for: the last one sent.
    ack_sent: BTreeMap<u64, AckSent>,
    /// Sequences whose ack is known to be processed and persisted.
    confirmed: BTreeMap<u64, Confirmed>,
    /// Plain acks sent in this life since the last confirmed AckSync: (sseq, fetch).
    plain_unconfirmed: Vec<u64>,
    /// Highest `ack_floor.stream_seq` read while every ack sent had been confirmed.
    floor_lb: u64,
    /// Deliveries with `delivered > 1`.
    redeliveries: u64,
    /// Receptions in total.
    deliveries: u64,
    /// Invariant violations, in the order found.
    violations: Vec<String>,
}

impl Ledger {
    fn violation(&mut self, v: String) {
        eprintln!("VIOLATION: {v}");
        if self.violations.len() < 200 {
            self.violations.push(v);
        }
    }

    /// Longest `k` with `1..=k` all confirmed.
    fn confirmed_prefix(&self) -> u64 {
        let mut k = 0;
        for &s in self.confirmed.keys() {
            if s != k + 1 {
                break;
            }
            k = s;
        }
        k
    }

    fn max_confirmed(&self) -> u64 {
        self.confirmed.keys().next_back().copied().unwrap_or(0)
    }
}

/// The payload of stream sequence `seq` (published in order to a fresh stream).
fn payload_for(seq: u64) -> String {
    format!("consumer-crash payload #{seq:06}")
}

/// How the client acknowledges.
#[derive(Debug, Clone, Copy)]
struct AckMix {
    /// Percent left unacknowledged (redelivered after the ack wait).
    skip_pct: u64,
    /// Percent acknowledged with AckSync; the rest get a plain ack.
    sync_pct: u64,
    /// Largest fetch batch.
    max_batch: u64,
    /// Pause after each batch, up to this many ms (paces the client so the kills fall
    /// all over the stream).
    pause_ms: u64,
}

/// Lets the test SIGKILL the server at a chosen point of the client's work.
#[derive(Debug, Default)]
struct KillHook {
    /// 0: not armed; [`KillHook::ON_CONFIRM`]; [`KillHook::ON_PLAIN`].
    armed: std::sync::atomic::AtomicU8,
    fired: tokio::sync::Notify,
}

impl KillHook {
    /// Right after an AckSync was answered.
    const ON_CONFIRM: u8 = 1;
    /// Right after a plain ack was handed to the connection (the server is likely
    /// processing acks).
    const ON_PLAIN: u8 = 2;

    fn reached(&self, point: u8) {
        if self.armed.load(std::sync::atomic::Ordering::Acquire) == point {
            self.fired.notify_one();
        }
    }
}

/// Why the client stopped.
#[derive(Debug)]
enum Stop {
    /// Drain mode: the consumer has nothing left to deliver or to wait for.
    Drained,
    /// A request failed (the server is gone, presumably).
    Failed(String),
}

/// Fetch and acknowledge until something fails (or, with `drain`, until the consumer has
/// nothing pending and nothing awaiting an ack). All observations go to `ledger`.
async fn consume(
    js: jetstream::Context,
    stream_name: String,
    ledger: Arc<Mutex<Ledger>>,
    mut rng: Rng,
    mix: AckMix,
    drain: bool,
    hook: Arc<KillHook>,
) -> Stop {
    let c: consumer::PullConsumer = match js
        .get_consumer_from_stream("dur", stream_name.as_str())
        .await
    {
        Ok(c) => c,
        Err(e) => return Stop::Failed(format!("get consumer: {e}")),
    };
    let life = ledger.lock().unwrap().life;
    loop {
        let fetch = {
            let mut l = ledger.lock().unwrap();
            l.fetch += 1;
            l.fetch
        };
        let n = rng.range(1, mix.max_batch + 1) as usize;
        let mut batch =
            match tokio::time::timeout(REQ_TIMEOUT, c.fetch().max_messages(n).messages()).await {
                Ok(Ok(b)) => b,
                Ok(Err(e)) => return Stop::Failed(format!("fetch: {e}")),
                Err(_) => return Stop::Failed("fetch timed out".into()),
            };
        let mut got = 0;
        loop {
            let m = match tokio::time::timeout(REQ_TIMEOUT, batch.next()).await {
                Ok(Some(Ok(m))) => m,
                Ok(None) => break,
                Ok(Some(Err(e))) => return Stop::Failed(format!("batch: {e}")),
                Err(_) => return Stop::Failed("batch timed out".into()),
            };
            got += 1;
            let info = match m.info() {
                Ok(i) => i,
                Err(e) => {
                    ledger
                        .lock()
                        .unwrap()
                        .violation(format!("life {life}: message without ack info: {e}"));
                    continue;
                }
            };
            let (sseq, dseq, dc) = (info.stream_sequence, info.consumer_sequence, info.delivered);
            {
                let mut l = ledger.lock().unwrap();
                l.deliveries += 1;
                *l.received.entry(sseq).or_default() += 1;
                if dc > 1 {
                    l.redeliveries += 1;
                }
                if m.payload != payload_for(sseq).as_bytes() {
                    let got = String::from_utf8_lossy(&m.payload).into_owned();
                    l.violation(format!(
                        "life {life} fetch {fetch}: stream seq {sseq} delivered with payload \
                         {got:?}, want {:?}",
                        payload_for(sseq)
                    ));
                }
                if let Some(cf) = l.confirmed.get(&sseq).copied()
                    && cf.fetch < fetch
                {
                    l.violation(format!(
                        "stream seq {sseq}: ack confirmed ({:?}) in life {} fetch {}, but \
                         delivered again in life {life} fetch {fetch} (consumer seq {dseq}, \
                         delivery count {dc})",
                        cf.how, cf.life, cf.fetch
                    ));
                }
            }
            let r = rng.range(0, 100);
            if !drain && r < mix.skip_pct {
                continue;
            }
            let sent = |sync| AckSent { life, fetch, sync };
            if drain || r < mix.skip_pct + mix.sync_pct {
                ledger.lock().unwrap().ack_sent.insert(sseq, sent(true));
                match m.double_ack().await {
                    Ok(()) => {
                        let mut l = ledger.lock().unwrap();
                        for s in std::mem::take(&mut l.plain_unconfirmed) {
                            l.confirmed.entry(s).or_insert(Confirmed {
                                fetch,
                                life,
                                how: How::PlainBeforeSync,
                            });
                        }
                        l.confirmed.entry(sseq).or_insert(Confirmed {
                            fetch,
                            life,
                            how: How::AckSync,
                        });
                        drop(l);
                        hook.reached(KillHook::ON_CONFIRM);
                    }
                    Err(e) => return Stop::Failed(format!("double_ack {sseq}: {e}")),
                }
            } else {
                {
                    let mut l = ledger.lock().unwrap();
                    l.ack_sent.insert(sseq, sent(false));
                    l.plain_unconfirmed.push(sseq);
                }
                if let Err(e) = m.ack().await {
                    return Stop::Failed(format!("ack {sseq}: {e}"));
                }
                hook.reached(KillHook::ON_PLAIN);
            }
        }
        // Every ack sent so far is confirmed: the floor read now is durable.
        let settled = ledger.lock().unwrap().plain_unconfirmed.is_empty();
        if drain || (settled && rng.range(0, 4) == 0) || got == 0 {
            let info = match c.get_info().await {
                Ok(i) => i,
                Err(e) => return Stop::Failed(format!("consumer info: {e}")),
            };
            let floor = info.ack_floor.stream_sequence;
            let mut l = ledger.lock().unwrap();
            if floor < l.floor_lb {
                let lb = l.floor_lb;
                l.violation(format!(
                    "life {life} fetch {fetch}: ack floor went back from {lb} to {floor} \
                     while the server ran"
                ));
            }
            if l.plain_unconfirmed.is_empty() {
                l.floor_lb = l.floor_lb.max(floor);
            }
            if drain && info.num_pending == 0 && info.num_ack_pending == 0 {
                return Stop::Drained;
            }
        }
        if got == 0 {
            // Nothing deliverable now (the rest awaits its ack wait).
            tokio::time::sleep(Duration::from_millis(50)).await;
        } else if !drain && mix.pause_ms > 0 {
            tokio::time::sleep(Duration::from_millis(rng.range(0, mix.pause_ms))).await;
        }
    }
}

// ---------------------------------------------------------------------------------------
// The scenario

struct Scenario {
    test: &'static str,
    stream: &'static str,
    retention: stream::RetentionPolicy,
    n: u64,
    /// Mixed into the seed so the scenarios differ under one `NATRIUM_CONSUMER_CRASH_SEED`.
    salt: u64,
    /// Client run time before each kill, in ms (`lo..hi`).
    run_ms: (u64, u64),
    mix: AckMix,
}

/// Check the consumer right after a (re)start against what was confirmed before.
async fn check_after_restart(
    js: &jetstream::Context,
    sc: &Scenario,
    want_cfg: &consumer::Config,
    ledger: &Mutex<Ledger>,
    prev_floor: &mut u64,
) -> consumer::Info {
    let c: consumer::PullConsumer = js
        .get_consumer_from_stream("dur", sc.stream)
        .await
        .unwrap_or_else(|e| panic!("[{}] durable consumer after restart: {e}", sc.test));
    let info = c.get_info().await.expect("consumer info");
    let stream_state = js
        .get_stream(sc.stream)
        .await
        .expect("stream after restart")
        .get_info()
        .await
        .expect("stream info")
        .state;
    let mut l = ledger.lock().unwrap();
    let life = l.life;
    // Work queue and interest (one consumer): everything at or below the ack floor is
    // gone from the stream, even if the process died between saving an ack and removing
    // the message.
    if sc.retention != stream::RetentionPolicy::Limits
        && stream_state.messages > 0
        && stream_state.first_sequence <= info.ack_floor.stream_sequence
    {
        l.violation(format!(
            "life {life}: the stream still starts at {} ({} messages) although the only \
             consumer's ack floor is {}",
            stream_state.first_sequence, stream_state.messages, info.ack_floor.stream_sequence
        ));
    }
    if info.config != *want_cfg {
        l.violation(format!(
            "life {life}: consumer config changed across the restart:\n  was {want_cfg:?}\n  now \
             {:?}",
            info.config
        ));
    }
    let floor = info.ack_floor.stream_sequence;
    let delivered = info.delivered.stream_sequence;
    let prefix = l.confirmed_prefix();
    let max_conf = l.max_confirmed();
    eprintln!(
        "[{}] life {life}: ack_floor {floor} (consumer {}), delivered {delivered} (consumer \
         {}), ack pending {}, num_pending {}; confirmed {} (prefix 1..={prefix}, max \
         {max_conf}), floor seen settled {}, received {} distinct / {} deliveries",
        sc.test,
        info.ack_floor.consumer_sequence,
        info.delivered.consumer_sequence,
        info.num_ack_pending,
        info.num_pending,
        l.confirmed.len(),
        l.floor_lb,
        l.received.len(),
        l.deliveries
    );
    if floor < *prev_floor {
        let p = *prev_floor;
        l.violation(format!(
            "life {life}: ack floor {floor} is below {p}, the floor after the previous restart"
        ));
    }
    if floor < l.floor_lb {
        let lb = l.floor_lb;
        l.violation(format!(
            "life {life}: ack floor {floor} is below {lb}, read before the kill when every ack \
             sent had been confirmed"
        ));
    }
    if floor < prefix {
        l.violation(format!(
            "life {life}: ack floor {floor} is below the confirmed prefix 1..={prefix}"
        ));
    }
    if delivered < max_conf {
        l.violation(format!(
            "life {life}: delivered.stream_seq {delivered} is below {max_conf}, whose ack was \
             confirmed"
        ));
    }
    if floor > delivered {
        l.violation(format!(
            "life {life}: ack floor {floor} above delivered {delivered}"
        ));
    }
    *prev_floor = (*prev_floor).max(floor);
    l.floor_lb = l.floor_lb.max(floor);
    info
}

/// Pre-fill, then `NATRIUM_CONSUMER_CRASH_CYCLES` × (consume for a random time, SIGKILL, restart, check), then
/// drain, SIGKILL once more and check nothing comes back. Returns the ledger, the last
/// server and its client for the retention-specific checks.
async fn run(sc: &Scenario) -> Outcome {
    let t0 = Instant::now();
    eprintln!("[{}] scenario", sc.test);
    let mut rng = Rng::new(seed_from_env("NATRIUM_CONSUMER_CRASH_SEED") ^ sc.salt);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let log_of = |life: u32| dir.path().join(format!("server-{life}.log"));
    let ledger = Arc::new(Mutex::new(Ledger::default()));

    let mut server = start(&store, &log_of(0));
    let (mut client, mut js) = connect(&server).await;
    let st = js
        .create_stream(stream::Config {
            name: sc.stream.into(),
            subjects: vec![format!("{}.>", sc.stream.to_lowercase())],
            storage: stream::StorageType::File,
            retention: sc.retention,
            ..Default::default()
        })
        .await
        .expect("create stream");
    let mut created: consumer::PullConsumer = st
        .create_consumer(consumer::pull::Config {
            durable_name: Some("dur".into()),
            description: Some("consumer crash test".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: ACK_WAIT,
            max_deliver: 1000,
            filter_subject: format!("{}.data", sc.stream.to_lowercase()),
            max_ack_pending: 10_000,
            max_waiting: 64,
            metadata: [("app".to_string(), "crash".to_string())].into(),
            ..Default::default()
        })
        .await
        .expect("create durable consumer");
    // What the server made of it (defaults filled in); it must survive every restart.
    let want_cfg = created.info().await.expect("consumer info").config.clone();
    assert_eq!(want_cfg.max_deliver, 1000);
    assert_eq!(want_cfg.description.as_deref(), Some("consumer crash test"));
    // Pre-fill, 200 acks in flight at a time.
    let subject = format!("{}.data", sc.stream.to_lowercase());
    let mut seq = 0u64;
    while seq < sc.n {
        let chunk = (sc.n - seq).min(200);
        let mut acks = Vec::with_capacity(chunk as usize);
        for i in 1..=chunk {
            let p = Bytes::from(payload_for(seq + i));
            acks.push(js.publish(subject.clone(), p).await.expect("publish"));
        }
        for (i, a) in acks.into_iter().enumerate() {
            let ack = a.await.expect("publish ack");
            assert_eq!(ack.sequence, seq + 1 + i as u64, "publish ack sequence");
        }
        seq += chunk;
    }
    eprintln!(
        "[{}] {} messages stored in {:?}",
        sc.test,
        sc.n,
        t0.elapsed()
    );

    let mut prev_floor = 0u64;
    let cycles = env_usize("NATRIUM_CONSUMER_CRASH_CYCLES", DEFAULT_CYCLES);
    for round in 0..cycles {
        let run_for = Duration::from_millis(rng.range(sc.run_ms.0, sc.run_ms.1));
        // A third of the rounds kill right after an AckSync is answered (the tightest
        // window for anything done after the answer), a third right after a plain ack (in
        // the middle of the server's ack handling), the rest at a random moment.
        let point = rng.range(0, 3) as u8;
        let hook = Arc::new(KillHook::default());
        let task = tokio::spawn(consume(
            js.clone(),
            sc.stream.to_string(),
            ledger.clone(),
            Rng::new(rng.next_u64()),
            sc.mix,
            false,
            hook.clone(),
        ));
        let t_run = Instant::now();
        tokio::time::sleep(run_for).await;
        let mut how = "at a random moment";
        if point != 0 {
            hook.armed
                .store(point, std::sync::atomic::Ordering::Release);
            if tokio::time::timeout(Duration::from_secs(1), hook.fired.notified())
                .await
                .is_ok()
            {
                how = if point == KillHook::ON_CONFIRM {
                    "right after an AckSync was confirmed"
                } else {
                    "right after a plain ack was sent"
                };
            }
        }
        server.sigkill();
        let run_for = t_run.elapsed();
        let stopped = if task.is_finished() {
            Some(task.await.expect("client task"))
        } else {
            task.abort();
            let _ = task.await;
            None
        };
        drop(js);
        drop(client);
        {
            let mut l = ledger.lock().unwrap();
            eprintln!(
                "[{}] round {round}: SIGKILL {how} after {run_for:?} (client: {stopped:?}); {} \
                 plain acks unconfirmed",
                sc.test,
                l.plain_unconfirmed.len()
            );
            l.plain_unconfirmed.clear();
            l.life += 1;
        }
        let life = ledger.lock().unwrap().life;
        server = start(&store, &log_of(life));
        (client, js) = connect(&server).await;
        check_after_restart(&js, sc, &want_cfg, &ledger, &mut prev_floor).await;
    }

    // Drain: AckSync everything until nothing is pending or awaiting an ack.
    let drain = consume(
        js.clone(),
        sc.stream.to_string(),
        ledger.clone(),
        Rng::new(rng.next_u64()),
        sc.mix,
        true,
        Arc::new(KillHook::default()),
    );
    match tokio::time::timeout(Duration::from_secs(25), drain).await {
        Ok(Stop::Drained) => {}
        Ok(Stop::Failed(e)) => panic!("[{}] drain failed: {e}", sc.test),
        Err(_) => {
            let l = ledger.lock().unwrap();
            let missing: Vec<u64> = (1..=sc.n).filter(|s| !l.ack_sent.contains_key(s)).collect();
            panic!(
                "[{}] drain did not finish in 25 s; never acked: {} sequences {:?}",
                sc.test,
                missing.len(),
                &missing[..missing.len().min(50)]
            );
        }
    }
    let c: consumer::PullConsumer = js.get_consumer_from_stream("dur", sc.stream).await.unwrap();
    let info = c.get_info().await.unwrap();
    eprintln!(
        "[{}] drained: ack_floor {} delivered {} (total {:?})",
        sc.test,
        info.ack_floor.stream_sequence,
        info.delivered.stream_sequence,
        t0.elapsed()
    );
    {
        let mut l = ledger.lock().unwrap();
        let never_received: Vec<u64> = (1..=sc.n).filter(|s| !l.received.contains_key(s)).collect();
        let never_acked: Vec<u64> = (1..=sc.n).filter(|s| !l.ack_sent.contains_key(s)).collect();
        if !never_received.is_empty() || !never_acked.is_empty() {
            l.violation(format!(
                "lost messages: the consumer reports nothing pending, but {} sequences were \
                 never received ({:?}…) and {} never acked ({:?}…)",
                never_received.len(),
                &never_received[..never_received.len().min(20)],
                never_acked.len(),
                &never_acked[..never_acked.len().min(20)]
            ));
        }
        if info.ack_floor.stream_sequence != sc.n || info.delivered.stream_sequence != sc.n {
            l.violation(format!(
                "after the drain: ack floor {} delivered {}, want both {}",
                info.ack_floor.stream_sequence, info.delivered.stream_sequence, sc.n
            ));
        }
    }

    // One more SIGKILL: everything was confirmed, so nothing may come back.
    server.sigkill();
    drop(c);
    drop(js);
    drop(client);
    let life = {
        let mut l = ledger.lock().unwrap();
        l.life += 1;
        l.life
    };
    server = start(&store, &log_of(life));
    let (_client, js) = connect(&server).await;
    let info = check_after_restart(&js, sc, &want_cfg, &ledger, &mut prev_floor).await;
    if info.num_ack_pending != 0 || info.num_pending != 0 || info.ack_floor.stream_sequence != sc.n
    {
        ledger.lock().unwrap().violation(format!(
            "after the final restart: ack floor {} ack pending {} num_pending {} (want {}, 0, \
             0)",
            info.ack_floor.stream_sequence, info.num_ack_pending, info.num_pending, sc.n
        ));
    }
    let c: consumer::PullConsumer = js.get_consumer_from_stream("dur", sc.stream).await.unwrap();
    let mut extra = Vec::new();
    let mut b = c.fetch().max_messages(100).messages().await.unwrap();
    while let Ok(Some(m)) = tokio::time::timeout(REQ_TIMEOUT, b.next()).await {
        if let Ok(m) = m {
            extra.push(m.info().map(|i| i.stream_sequence).unwrap_or(0));
        }
    }
    let mut l = ledger.lock().unwrap();
    if !extra.is_empty() {
        l.violation(format!(
            "after the final restart the drained consumer delivered again: {extra:?}"
        ));
    }
    let redelivered_seqs = l.received.values().filter(|&&n| n > 1).count();
    eprintln!(
        "[{}] done in {:?}: {} deliveries ({} with delivered > 1), {} sequences received more \
         than once, {} confirmed ({} by a following AckSync), {} lives",
        sc.test,
        t0.elapsed(),
        l.deliveries,
        l.redeliveries,
        redelivered_seqs,
        l.confirmed.len(),
        l.confirmed
            .values()
            .filter(|c| c.how == How::PlainBeforeSync)
            .count(),
        l.life + 1
    );
    drop(l);
    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    Outcome {
        ledger,
        server,
        js,
        dir,
    }
}

/// What [`run`] leaves for the retention-specific checks.
struct Outcome {
    ledger: Ledger,
    /// The last server, still running.
    server: ServerProc,
    js: jetstream::Context,
    /// Store directory and the logs of every life.
    dir: tempfile::TempDir,
}

/// Fail with every violation; a failing run's directory (store, one log per life) is kept.
fn assert_clean(sc: &Scenario, mut out: Outcome) {
    if out.ledger.violations.is_empty() {
        return;
    }
    out.server.sigkill();
    let log = out.server.log_text();
    let kept = out.dir.keep();
    panic!(
        "[{}] {} invariant violations:\n{}\n(store and server logs kept in {}; last server \
         log:\n{log})",
        sc.test,
        out.ledger.violations.len(),
        out.ledger.violations.join("\n"),
        kept.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_pull_consumer_survives_sigkill() {
    let sc = Scenario {
        test: "limits",
        salt: 0x11,
        stream: "CCRASH",
        retention: stream::RetentionPolicy::Limits,
        n: 2000,
        run_ms: (150, 900),
        mix: AckMix {
            skip_pct: 4,
            sync_pct: 30,
            max_batch: 40,
            pause_ms: 50,
        },
    };
    let mut out = run(&sc).await;
    let (l, js) = (&mut out.ledger, out.js.clone());
    // The stream keeps every message, intact.
    let st = js.get_stream(sc.stream).await.unwrap();
    let info = st.get_info().await.unwrap();
    if info.state.messages != sc.n
        || info.state.first_sequence != 1
        || info.state.last_sequence != sc.n
    {
        l.violation(format!(
            "stream state after the crashes: {} messages, seqs {}..={} (want {n}, 1..={n})",
            info.state.messages,
            info.state.first_sequence,
            info.state.last_sequence,
            n = sc.n
        ));
    }
    for seq in 1..=sc.n {
        match st.get_raw_message(seq).await {
            Ok(m) if m.payload == payload_for(seq).as_bytes() => {}
            Ok(m) => l.violation(format!(
                "stream seq {seq}: payload {:?}, want {:?}",
                String::from_utf8_lossy(&m.payload),
                payload_for(seq)
            )),
            Err(e) => l.violation(format!("stream seq {seq}: get failed: {e}")),
        }
    }
    assert_clean(&sc, out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_queue_consumer_survives_sigkill() {
    let sc = Scenario {
        test: "workqueue",
        salt: 0x22,
        stream: "WQCRASH",
        retention: stream::RetentionPolicy::WorkQueue,
        n: 600,
        run_ms: (100, 700),
        mix: AckMix {
            skip_pct: 3,
            sync_pct: 40,
            max_batch: 20,
            pause_ms: 30,
        },
    };
    let mut out = run(&sc).await;
    let (l, js) = (&mut out.ledger, out.js.clone());
    // Every message was acknowledged, so the work queue is empty.
    let st = js.get_stream(sc.stream).await.unwrap();
    let info = st.get_info().await.unwrap();
    if info.state.messages != 0 {
        let mut left = Vec::new();
        for seq in 1..=sc.n {
            if st.get_raw_message(seq).await.is_ok() {
                left.push(seq);
            }
        }
        let describe = |s: &u64| {
            let ack = l.ack_sent.get(s);
            format!(
                "{s} (received {}x, last ack {} in life {} fetch {}, confirmed: {:?})",
                l.received.get(s).copied().unwrap_or(0),
                match ack {
                    Some(a) if a.sync => "AckSync",
                    Some(_) => "plain",
                    None => "none",
                },
                ack.map_or(0, |a| a.life),
                ack.map_or(0, |a| a.fetch),
                l.confirmed.get(s).map(|c| (c.how, c.life, c.fetch))
            )
        };
        let detail: Vec<String> = left.iter().take(30).map(describe).collect();
        // What it means for the application: a fresh consumer gets that work again.
        st.delete_consumer("dur").await.expect("delete consumer");
        let fresh: consumer::PullConsumer = st
            .create_consumer(consumer::pull::Config {
                durable_name: Some("again".into()),
                ack_policy: consumer::AckPolicy::Explicit,
                ..Default::default()
            })
            .await
            .expect("create second consumer");
        let mut again = Vec::new();
        let mut b = fresh.fetch().max_messages(1000).messages().await.unwrap();
        while let Ok(Some(Ok(m))) = tokio::time::timeout(REQ_TIMEOUT, b.next()).await {
            again.push(m.info().map(|i| i.stream_sequence).unwrap_or(0));
        }
        l.violation(format!(
            "work queue not empty after every message was acked and the consumer reports \
             ack floor {n}, nothing pending: {} messages left (first_seq {}, last_seq {}):\n  \
             {}\n  a new consumer on the queue is handed these acked messages again: {:?}",
            info.state.messages,
            info.state.first_sequence,
            info.state.last_sequence,
            detail.join("\n  "),
            again,
            n = sc.n
        ));
    }
    assert_eq!(info.state.last_sequence, sc.n, "work queue last_seq");
    assert_clean(&sc, out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interest_consumer_survives_sigkill() {
    let sc = Scenario {
        test: "interest",
        salt: 0x33,
        stream: "ICRASH",
        retention: stream::RetentionPolicy::Interest,
        n: 400,
        run_ms: (100, 700),
        mix: AckMix {
            skip_pct: 3,
            sync_pct: 40,
            max_batch: 20,
            pause_ms: 30,
        },
    };
    let mut out = run(&sc).await;
    let (l, js) = (&mut out.ledger, out.js.clone());
    let st = js.get_stream(sc.stream).await.unwrap();
    let info = st.get_info().await.unwrap();
    // Its only consumer acknowledged everything, so nothing is left.
    if info.state.messages != 0 {
        l.violation(format!(
            "interest stream not empty after every message was acked: {} left (first {}, \
             last {})",
            info.state.messages, info.state.first_sequence, info.state.last_sequence
        ));
    }
    assert_eq!(info.state.last_sequence, sc.n, "interest stream last_seq");
    assert_clean(&sc, out);
}

/// An ephemeral consumer of a file stream across SIGKILL: its state is snapshotted into
/// its files at most a second after a change (not fsynced per ack), so once a second has
/// passed after the last ack a killed server comes back with the consumer, its config
/// and that state; nothing acked is delivered again, nothing unacked is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_consumer_state_survives_sigkill_after_its_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (store, log) = (dir.path().join("store"), dir.path().join("server.log"));
    let mut server = start(&store, &log);
    let (client, js) = connect(&server).await;
    js.create_stream(stream::Config {
        name: "EPH".into(),
        subjects: vec!["eph.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    for i in 1..=10u64 {
        js.publish(format!("eph.{i}"), payload_for(i).into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let made = js_crash_support::api(
        &client,
        "$JS.API.CONSUMER.CREATE.EPH.W".into(),
        serde_json::json!({"stream_name": "EPH", "config": {
            "name": "W", "ack_policy": "explicit", "inactive_threshold": 60_000_000_000u64,
            "ack_wait": 30_000_000_000u64}})
        .to_string(),
    )
    .await
    .unwrap();
    assert!(made.get("error").is_none(), "{made}");
    let st = js.get_stream("EPH").await.unwrap();
    let c: consumer::PullConsumer = st.get_consumer("W").await.unwrap();
    let mut msgs = c.fetch().max_messages(6).messages().await.unwrap();
    while let Some(m) = msgs.next().await {
        let m = m.unwrap();
        let seq = m.info().unwrap().stream_sequence;
        if seq <= 4 {
            m.ack().await.unwrap();
        }
    }
    // The acks are handled (plain acks are not answered: poll), then a snapshot is due
    // within a second.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut c2 = c.clone();
    while c2.info().await.unwrap().ack_floor.stream_sequence != 4 {
        assert!(Instant::now() < deadline, "the acks were not handled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    drop((c, c2, st, js, client));
    server.sigkill();

    let server = start(&store, &log);
    let (client, _js) = connect(&server).await;
    let info = js_crash_support::api(&client, "$JS.API.CONSUMER.INFO.EPH.W".into(), String::new())
        .await
        .unwrap();
    assert!(info.get("error").is_none(), "the ephemeral is gone: {info}");
    assert_eq!(info["config"]["name"], "W", "{info}");
    assert_eq!(
        info["config"]["inactive_threshold"], 60_000_000_000u64,
        "{info}"
    );
    assert_eq!(info["delivered"]["stream_seq"], 6, "{info}");
    assert_eq!(info["ack_floor"]["stream_seq"], 4, "{info}");
    assert_eq!(info["num_ack_pending"], 2, "{info}");
    assert_eq!(info["num_pending"], 4, "{info}");
    drop(server);
}
