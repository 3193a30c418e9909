//! `bench request`: sequential request/reply round trips with latency
//! percentiles.
//!
//! Throughput modes hide latency behind batching; request/reply exposes
//! it, because each requester waits for its answer before sending the next
//! request. The run reports round trips per second and the latency
//! distribution (p50/p90/p99/max, in microseconds, from an HDR histogram
//! with 3 significant digits). Repliers echo the payload back, so a round
//! trip moves `--size` bytes each way. With `--repliers N > 1` they share
//! the load as a queue group, as services do. Each requester makes one
//! untimed warm-up request so the first timed one doesn't include setting
//! up its reply subscription.

use std::sync::Arc;

use async_nats::Client;
use bytes::Bytes;
use clap::Args;
use futures::StreamExt;
use hdrhistogram::Histogram;
use tokio::sync::Barrier;
use tokio::time::{Instant, timeout_at};

use super::CommonArgs;
use super::common::{
    Bench, GRACE, join_all, latency_histogram, merge_histograms, payload, span, split,
};
use super::report::{ClientStats, Report, finish, rate};
use crate::connect::ConnectArgs;
use crate::error::{Error, Result};
use crate::units::parse_size;

/// Queue group the repliers join when there is more than one.
const QUEUE_GROUP: &str = "natrium-bench-repliers";

/// Flags of `bench request`.
#[derive(Args, Debug)]
pub struct RequestArgs {
    /// Total round trips, split across requesters.
    #[arg(long, default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    msgs: u64,

    /// Payload size of requests and replies (e.g. 16, 1K, 1KiB).
    #[arg(long, default_value = "128", value_parser = parse_size, value_name = "BYTES")]
    size: usize,

    /// Number of requesting connections, each doing sequential round trips.
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    clients: u32,

    /// Number of replier connections (a queue group when more than one).
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    repliers: u32,

    /// Flags shared by every mode.
    #[command(flatten)]
    pub(super) common: CommonArgs,
}

/// Runs `bench request`.
pub async fn run(conn: &ConnectArgs, args: RequestArgs) -> Result<()> {
    let bench = Bench::new(conn, &args.common)?;
    let limit = bench.deadline + GRACE;
    let report = tokio::time::timeout_at(limit, measure(&bench, &args))
        .await
        .map_err(|_| Error::Incomplete("run did not wind down after --max-seconds".into()))??;
    finish(&report, args.common.json, args.common.max_seconds)
}

/// One requester's results.
struct ReqOutcome {
    /// Round trips completed.
    done: u64,
    /// Latencies in nanoseconds.
    hist: Histogram<u64>,
    /// When timed requests began.
    start: Instant,
    /// When the last one completed (or the deadline hit).
    end: Instant,
}

/// Answers every request on `client`'s subscription with its own payload.
async fn reply_loop(client: Client, mut sub: async_nats::Subscriber) {
    while let Some(msg) = sub.next().await {
        if let Some(reply) = msg.reply
            && client.publish(reply, msg.payload).await.is_err()
        {
            break;
        }
    }
}

async fn measure(bench: &Bench<'_>, args: &RequestArgs) -> Result<Report> {
    let nrep = args.repliers as usize;
    let nreq = args.clients as usize;
    let queue = (nrep > 1).then_some(QUEUE_GROUP);
    let rep_clients = bench.connect_many("reply", nrep).await?;
    let mut repliers = Vec::with_capacity(nrep);
    for client in rep_clients {
        let sub = bench.subscribe(&client, queue).await?;
        repliers.push(tokio::spawn(reply_loop(client, sub)));
    }
    let req_clients = bench.connect_many("req", nreq).await?;
    bench.check_payload(&req_clients[0], args.size)?;

    let body = payload(args.size);
    let gate = Arc::new(Barrier::new(nreq));
    let handles: Vec<_> = req_clients
        .into_iter()
        .zip(split(args.msgs, nreq))
        .map(|(client, count)| {
            let subject = bench.subject.clone();
            let (body, gate, deadline) = (body.clone(), gate.clone(), bench.deadline);
            tokio::spawn(request_loop(client, subject, body, count, gate, deadline))
        })
        .collect();
    let outcomes = join_all(handles).await;
    for r in &repliers {
        r.abort();
    }
    let outcomes = outcomes?;

    let hist = merge_histograms(outcomes.iter().map(|o| &o.hist))?;
    let seconds = span(outcomes.iter().map(|o| (o.start, o.end)));
    let done: u64 = outcomes.iter().map(|o| o.done).sum();
    let size = args.size as u64;
    let clients = outcomes
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let secs = o.end.duration_since(o.start).as_secs_f64();
            ClientStats::new("req", i + 1, o.done, o.done * size * 2, secs)
        })
        .collect();
    let complete = done == args.msgs;
    Ok(Report {
        msgs: args.msgs,
        size: args.size,
        pubs: nreq,
        subs: nrep,
        seconds,
        msgs_per_sec: rate(done, seconds),
        bytes_per_sec: rate(done * size * 2, seconds),
        published: done,
        expected: args.msgs,
        received: done,
        missing: args.msgs - done,
        stop_reason: if complete { "complete" } else { "deadline" },
        complete,
        clients,
        ..Report::new("request", &bench.subject, &bench.health)
    }
    .with_latency(&hist))
}

/// Makes `count` sequential requests, recording each round trip's latency.
async fn request_loop(
    client: Client,
    subject: async_nats::Subject,
    body: Bytes,
    count: u64,
    gate: Arc<Barrier>,
    deadline: Instant,
) -> Result<ReqOutcome> {
    let mut hist = latency_histogram()?;
    let op = || format!("request on {:?}", subject.as_str());
    // Warm up, then meet the others at the gate even on failure, so that
    // one failing requester doesn't leave the rest waiting there.
    let warm_up = if count == 0 {
        Ok(())
    } else {
        match timeout_at(deadline, client.request(subject.clone(), body.clone())).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(Error::nats(op(), e)),
            Err(_) => Err(Error::Incomplete(
                "time bound reached during the warm-up request".into(),
            )),
        }
    };
    gate.wait().await;
    warm_up?;
    let start = Instant::now();
    let mut done = 0u64;
    let result = timeout_at(deadline, async {
        for _ in 0..count {
            let t = std::time::Instant::now();
            client
                .request(subject.clone(), body.clone())
                .await
                .map_err(|e| Error::nats(op(), e))?;
            hist.saturating_record(t.elapsed().as_nanos() as u64);
            done += 1;
        }
        Ok::<(), Error>(())
    })
    .await;
    let end = Instant::now();
    if let Ok(Err(e)) = result {
        return Err(e);
    }
    Ok(ReqOutcome {
        done,
        hist,
        start,
        end,
    })
}
