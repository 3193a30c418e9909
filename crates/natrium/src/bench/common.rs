//! Machinery shared by the benchmark modes: connections, the publisher and
//! subscriber loops, and the logic that decides when a run is over.
//!
//! The hard part of a core-NATS benchmark is ending it honestly. Core NATS
//! has no acknowledgements: a subscriber that falls behind loses messages
//! (the server cuts off slow consumers, async-nats drops messages when a
//! subscription's buffer is full), and a naive "wait until all N arrived"
//! then hangs forever. So every run has three exits, checked by one
//! supervisor: all messages arrived; the publishers are done and nothing
//! has arrived for [`STALL`] (messages were lost — report how many); or the
//! `--max-seconds` deadline passed. Connection events (slow consumer,
//! disconnect, server error) are counted on every connection so a report
//! can say why messages went missing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::{Client, Event, Subject, Subscriber};
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::sync::{Barrier, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};

use super::CommonArgs;
use crate::connect::ConnectArgs;
use crate::error::{Error, Result};

/// How long subscribers may stay silent after the publishers finished
/// before the run is declared over with messages missing.
pub const STALL: Duration = Duration::from_secs(2);

/// Extra time past `--max-seconds` for a run to wind down (joining tasks,
/// closing connections) before it is abandoned outright.
pub const GRACE: Duration = Duration::from_secs(5);

/// How often the supervisor looks at subscriber progress.
const TICK: Duration = Duration::from_millis(20);

/// Connection-health counters, shared by all connections of one run.
#[derive(Debug, Default)]
pub struct Health {
    /// Slow-consumer events: async-nats dropped a message because a
    /// subscription buffer was full (a lower bound on such drops).
    pub slow_consumers: AtomicU64,
    /// Times a connection was lost (the server cuts off slow consumers).
    pub disconnects: AtomicU64,
    /// `-ERR` messages received from the server.
    pub server_errors: AtomicU64,
    /// The most recent server or client error, for the final message.
    pub last_error: Mutex<Option<String>>,
}

impl Health {
    /// Counts one connection event.
    fn record(&self, event: Event) {
        match event {
            Event::SlowConsumer(_) => {
                self.slow_consumers.fetch_add(1, Ordering::Relaxed);
            }
            Event::Disconnected => {
                self.disconnects.fetch_add(1, Ordering::Relaxed);
            }
            Event::ServerError(e) => {
                self.server_errors.fetch_add(1, Ordering::Relaxed);
                self.set_last_error(e.to_string());
            }
            Event::ClientError(e) => self.set_last_error(e.to_string()),
            Event::Connected | Event::LameDuckMode | Event::Draining | Event::Closed => {}
        }
    }

    fn set_last_error(&self, msg: String) {
        if let Ok(mut slot) = self.last_error.lock() {
            *slot = Some(msg);
        }
    }

    /// The most recent error, if any.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|s| s.clone())
    }
}

/// One benchmark run's shared context: where to connect, the common
/// flags, the health counters and the deadline.
pub struct Bench<'a> {
    /// Global connection flags.
    conn: &'a ConnectArgs,
    /// Flags shared by all modes.
    pub common: &'a CommonArgs,
    /// Event counters of all the run's connections.
    pub health: Arc<Health>,
    /// When the run must stop, whatever state it is in.
    pub deadline: Instant,
    /// The subject, validated once.
    pub subject: Subject,
}

impl<'a> Bench<'a> {
    /// Starts the clock on a run: the deadline counts from here, so
    /// connecting is inside the time bound too.
    pub fn new(conn: &'a ConnectArgs, common: &'a CommonArgs) -> Result<Self> {
        let subject = common.subject.trim();
        if subject.is_empty() || subject.contains(char::is_whitespace) {
            return Err(Error::Usage(format!(
                "invalid subject {:?}: must be non-empty and contain no whitespace",
                common.subject
            )));
        }
        Ok(Bench {
            conn,
            common,
            health: Arc::new(Health::default()),
            deadline: Instant::now() + Duration::from_secs_f64(common.max_seconds),
            subject: Subject::from(subject),
        })
    }

    /// Opens one connection for a simulated client, tuned for benchmarking
    /// and wired to the health counters.
    pub async fn connect(&self, role: &str, id: usize) -> Result<Client> {
        let health = self.health.clone();
        let opts = self
            .conn
            .options()
            .await?
            .name(format!("natrium-bench-{role}-{id}"))
            .subscription_capacity(usize::try_from(self.common.sub_capacity).unwrap_or(usize::MAX))
            .event_callback(move |event| {
                let health = health.clone();
                async move { health.record(event) }
            });
        let fut = self.conn.connect_with(opts);
        match timeout_at(self.deadline, fut).await {
            Ok(r) => r,
            Err(_) => Err(Error::Incomplete(format!(
                "time bound of {} s reached while connecting",
                self.common.max_seconds
            ))),
        }
    }

    /// Opens `n` connections (concurrently: connecting dozens of clients one
    /// by one would take long).
    pub async fn connect_many(&self, role: &str, n: usize) -> Result<Vec<Client>> {
        futures::future::try_join_all((1..=n).map(|id| self.connect(role, id))).await
    }

    /// Rejects a payload the server would refuse, before any load starts.
    pub fn check_payload(&self, client: &Client, size: usize) -> Result<()> {
        let max = client.server_info().max_payload;
        if size > max {
            return Err(Error::Usage(format!(
                "--size {size} exceeds the server's max_payload of {max} bytes"
            )));
        }
        Ok(())
    }

    /// Subscribes `client` to the bench subject (in `queue` group if given)
    /// and waits until the server has registered the subscription.
    pub async fn subscribe(&self, client: &Client, queue: Option<&str>) -> Result<Subscriber> {
        let sub = match queue {
            Some(q) => client
                .queue_subscribe(self.subject.clone(), q.to_string())
                .await
                .map_err(|e| Error::nats(format!("subscribe to {:?}", self.subject.as_str()), e))?,
            None => client
                .subscribe(self.subject.clone())
                .await
                .map_err(|e| Error::nats(format!("subscribe to {:?}", self.subject.as_str()), e))?,
        };
        let mut flusher = Flusher::new(client).await?;
        self.bounded(flusher.roundtrip(), "registering subscriptions")
            .await?;
        Ok(sub)
    }

    /// Runs `fut` under the run's deadline.
    pub async fn bounded<T>(&self, fut: impl Future<Output = Result<T>>, what: &str) -> Result<T> {
        match timeout_at(self.deadline, fut).await {
            Ok(r) => r,
            Err(_) => Err(Error::Incomplete(format!(
                "time bound of {} s reached while {what}",
                self.common.max_seconds
            ))),
        }
    }
}

/// A way to wait until the server has processed everything a connection
/// sent so far.
///
/// async-nats's `flush` only empties the client's write buffer; Go's
/// `nc.Flush()`, which `nats bench` times, is a full PING/PONG round trip.
/// We get the same guarantee by publishing to a private inbox that this
/// connection subscribes to: the server handles a connection's messages in
/// order, so when the echo comes back, every earlier message was processed.
pub struct Flusher {
    client: Client,
    inbox: Subject,
    sub: Subscriber,
}

impl Flusher {
    /// Subscribes to a fresh inbox on `client`.
    pub async fn new(client: &Client) -> Result<Self> {
        let inbox = Subject::from(client.new_inbox());
        let sub = client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| Error::nats("subscribe to flush inbox", e))?;
        Ok(Flusher {
            client: client.clone(),
            inbox,
            sub,
        })
    }

    /// Flushes and waits for the server to echo a marker message.
    pub async fn roundtrip(&mut self) -> Result<()> {
        self.client
            .flush()
            .await
            .map_err(|e| Error::nats("flush", e))?;
        self.client
            .publish(self.inbox.clone(), Bytes::new())
            .await
            .map_err(|e| Error::nats("publish flush marker", e))?;
        match self.sub.next().await {
            Some(_) => Ok(()),
            None => Err(Error::Internal("flush inbox subscription closed".into())),
        }
    }
}

/// Splits `total` messages over `n` clients, spreading the remainder over
/// the first ones: 10 over 3 → [4, 3, 3].
pub fn split(total: u64, n: usize) -> Vec<u64> {
    let n64 = n as u64;
    (0..n64)
        .map(|i| total / n64 + u64::from(i < total % n64))
        .collect()
}

/// The payload every message of a run carries (one allocation, shared).
pub fn payload(size: usize) -> Bytes {
    Bytes::from(vec![b'n'; size])
}

/// What one publisher did.
#[derive(Debug, Clone, Copy)]
pub struct PubOutcome {
    /// Messages handed to the client library.
    pub sent: u64,
    /// When this publisher started (after the start barrier).
    pub start: Instant,
    /// When its final flush round trip completed (or the deadline hit).
    pub end: Instant,
}

/// Publishes `count` copies of `payload` as fast as the client allows, then
/// waits for a flush round trip. Stops early at `deadline`.
pub async fn publish_loop(
    client: Client,
    subject: Subject,
    payload: Bytes,
    count: u64,
    gate: Arc<Barrier>,
    deadline: Instant,
) -> Result<PubOutcome> {
    // Meet the others at the gate even on failure, so that one failing
    // publisher doesn't leave the rest waiting there.
    let flusher = Flusher::new(&client).await;
    gate.wait().await;
    let mut flusher = flusher?;
    let start = Instant::now();
    let mut sent = 0u64;
    let result = timeout_at(deadline, async {
        for _ in 0..count {
            client
                .publish(subject.clone(), payload.clone())
                .await
                .map_err(|e| Error::nats(format!("publish to {:?}", subject.as_str()), e))?;
            sent += 1;
        }
        flusher.roundtrip().await
    })
    .await;
    let end = Instant::now();
    match result {
        Ok(Err(e)) => Err(e),
        Ok(Ok(())) | Err(_) => Ok(PubOutcome { sent, start, end }),
    }
}

/// What one subscriber saw.
#[derive(Debug, Clone, Copy)]
pub struct SubOutcome {
    /// Messages received.
    pub received: u64,
    /// Payload bytes received.
    pub bytes: u64,
    /// When the first message arrived.
    pub first: Option<Instant>,
    /// When the last message arrived.
    pub last: Option<Instant>,
}

/// Counts messages from `sub` until `expected` arrived, the subscription
/// closed, or `stop` is signalled. `progress` mirrors the count for the
/// supervisor.
///
/// Messages already buffered are drained without re-arming the stop
/// future, so the per-message cost is one channel receive.
pub async fn receive_loop(
    mut sub: Subscriber,
    expected: u64,
    progress: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) -> SubOutcome {
    let mut out = SubOutcome {
        received: 0,
        bytes: 0,
        first: None,
        last: None,
    };
    'run: while out.received < expected {
        let msg = tokio::select! {
            m = sub.next() => m,
            _ = stop.changed() => break 'run,
        };
        let Some(msg) = msg else { break };
        if out.first.is_none() {
            out.first = Some(Instant::now());
        }
        out.received += 1;
        out.bytes += msg.payload.len() as u64;
        while out.received < expected {
            match sub.next().now_or_never() {
                Some(Some(msg)) => {
                    out.received += 1;
                    out.bytes += msg.payload.len() as u64;
                }
                Some(None) => {
                    out.last = Some(Instant::now());
                    progress.store(out.received, Ordering::Relaxed);
                    break 'run;
                }
                None => break,
            }
        }
        out.last = Some(Instant::now());
        progress.store(out.received, Ordering::Relaxed);
    }
    out
}

/// Why a run's receive phase ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Every subscriber got every message it expected.
    Complete,
    /// Publishers finished but subscribers stayed silent for [`STALL`].
    Stalled,
    /// `--max-seconds` passed.
    Deadline,
}

impl StopReason {
    /// Stable name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Complete => "complete",
            StopReason::Stalled => "stalled",
            StopReason::Deadline => "deadline",
        }
    }
}

/// Watches subscriber progress until the run is over (see the module docs
/// for the three exits) and then tells the subscribers to stop.
///
/// `publishers` are polled only for being finished; with none (external
/// publisher) a run ends only when complete or at the deadline.
pub async fn supervise(
    progress: &[Arc<AtomicU64>],
    expected_each: u64,
    publishers: &[JoinHandle<Result<PubOutcome>>],
    deadline: Instant,
    stop: &watch::Sender<bool>,
) -> StopReason {
    let mut last_total = u64::MAX;
    let mut last_change = Instant::now();
    let mut pubs_done_at: Option<Instant> = None;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let reason = loop {
        tick.tick().await;
        let now = Instant::now();
        if progress
            .iter()
            .all(|p| p.load(Ordering::Relaxed) >= expected_each)
        {
            break StopReason::Complete;
        }
        if now >= deadline {
            break StopReason::Deadline;
        }
        let total: u64 = progress.iter().map(|p| p.load(Ordering::Relaxed)).sum();
        if total != last_total {
            last_total = total;
            last_change = now;
        }
        if !publishers.is_empty() && publishers.iter().all(JoinHandle::is_finished) {
            let done = *pubs_done_at.get_or_insert(now);
            if now.duration_since(done.max(last_change)) >= STALL {
                break StopReason::Stalled;
            }
        }
    };
    let _ = stop.send(true);
    reason
}

/// Awaits a spawned task, turning a panic or cancellation into an error.
pub async fn join<T>(handle: JoinHandle<T>) -> Result<T> {
    handle
        .await
        .map_err(|e| Error::Internal(format!("benchmark task failed: {e}")))
}

/// Awaits every task (so none is left running), then returns their results in order,
/// or the first task's error.
pub async fn join_all<T>(handles: Vec<JoinHandle<Result<T>>>) -> Result<Vec<T>> {
    let mut results = Vec::with_capacity(handles.len());
    for h in handles {
        results.push(join(h).await?);
    }
    results.into_iter().collect()
}

/// Largest latency a histogram tracks (larger values are clamped): one hour in
/// nanoseconds.
pub const MAX_LATENCY_NS: u64 = 3_600_000_000_000;

/// An empty latency histogram (nanoseconds, 3 significant digits).
pub fn latency_histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)
        .map_err(|e| Error::Internal(format!("cannot create latency histogram: {e}")))
}

/// The clients' latency histograms added up.
pub fn merge_histograms<'a>(
    parts: impl IntoIterator<Item = &'a Histogram<u64>>,
) -> Result<Histogram<u64>> {
    let mut all = latency_histogram()?;
    for h in parts {
        all.add(h)
            .map_err(|e| Error::Internal(format!("cannot merge latency histograms: {e}")))?;
    }
    Ok(all)
}

/// Seconds from the earliest start to the latest end of the clients' `(start, end)`
/// spans; 0 without any.
pub fn span(spans: impl IntoIterator<Item = (Instant, Instant)>) -> f64 {
    let (mut first, mut last): (Option<Instant>, Option<Instant>) = (None, None);
    for (s, e) in spans {
        first = Some(first.map_or(s, |f| f.min(s)));
        last = Some(last.map_or(e, |l| l.max(e)));
    }
    match (first, last) {
        (Some(s), Some(e)) => e.duration_since(s).as_secs_f64(),
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_runs_from_the_first_start_to_the_last_end() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(span([(at(10), at(500)), (at(0), at(300))]), 0.5);
        assert_eq!(span([]), 0.0);
    }

    #[test]
    fn merged_latency_reports_percentiles_only_when_something_was_timed() {
        let mut a = latency_histogram().expect("histogram");
        a.record(2_000).expect("record");
        let mut b = latency_histogram().expect("histogram");
        b.record(4_000).expect("record");
        let all = merge_histograms([&a, &b]).expect("merge");
        assert_eq!(all.len(), 2);
        let health = Health::default();
        let r = super::super::report::Report::new("t", "s", &health).with_latency(&all);
        assert_eq!(r.max_us.map(|v| v.round()), Some(4.0));
        assert!(
            r.p50_us.is_some_and(|v| (1.9..=2.1).contains(&v)),
            "{:?}",
            r.p50_us
        );
        let none = merge_histograms([]).expect("merge");
        let r = super::super::report::Report::new("t", "s", &health).with_latency(&none);
        assert!(r.p50_us.is_none() && r.mean_us.is_none());
    }

    #[test]
    fn split_spreads_remainder() {
        assert_eq!(split(10, 3), vec![4, 3, 3]);
        assert_eq!(split(9, 3), vec![3, 3, 3]);
        assert_eq!(split(2, 4), vec![1, 1, 0, 0]);
        assert_eq!(split(10, 3).iter().sum::<u64>(), 10);
    }
}
