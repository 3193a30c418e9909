//! `bench js-pub`: publishing to a stream, every message acknowledged.
//!
//! Unlike core `pub`, a message counts only when its PubAck came back, so
//! the rate includes storing it (and, for file storage, whatever the
//! server's durability policy demands before it acks). Two ways to wait:
//!
//! - `--sync`: each publisher awaits every ack before the next publish, so
//!   the rate is bound by the ack latency (for an fsync-per-ack server, by
//!   the disk's fsync rate); p50/p99 of that latency are reported.
//! - async (default): up to `--max-pending` acks outstanding per publisher,
//!   which lets the server batch its writes.
//!
//! With `--pub N`, N connections publish concurrently (a share of `--msgs`
//! each); concurrent sync publishers show whether the server shares fsyncs
//! between writers.

use std::sync::Arc;

use async_nats::Subject;
use async_nats::jetstream::context::Context;
use bytes::Bytes;
use clap::Args;
use hdrhistogram::Histogram;
use tokio::sync::Barrier;
use tokio::time::{Instant, timeout_at};

use super::CommonArgs;
use super::common::{
    Bench, GRACE, join_all, latency_histogram, merge_histograms, payload, span, split,
};
use super::jetstream::{StreamArgs, context, prepare_stream, publish_window};
use super::report::{ClientStats, Report, finish, rate};
use crate::connect::ConnectArgs;
use crate::error::{Error, Result};
use crate::units::parse_size;

/// Flags of `bench js-pub`.
#[derive(Args, Debug)]
pub struct JsPubArgs {
    /// Total messages to publish, split across publishers.
    #[arg(long, default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    msgs: u64,

    /// Payload size (e.g. 16, 1K, 1KiB).
    #[arg(long, default_value = "128", value_parser = parse_size, value_name = "BYTES")]
    size: usize,

    /// Number of publishing connections.
    #[arg(long = "pub", default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pubs: u32,

    /// Await each PubAck before publishing the next message (reports
    /// latency percentiles).
    #[arg(long)]
    sync: bool,

    /// Async mode: acks each publisher may have outstanding.
    #[arg(long, default_value_t = 256, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_pending: u32,

    /// The stream.
    #[command(flatten)]
    stream: StreamArgs,

    /// Flags shared by every mode.
    #[command(flatten)]
    pub(super) common: CommonArgs,
}

/// Runs `bench js-pub`.
pub async fn run(conn: &ConnectArgs, args: JsPubArgs) -> Result<()> {
    let bench = Bench::new(conn, &args.common)?;
    let limit = bench.deadline + GRACE;
    let report = tokio::time::timeout_at(limit, measure(&bench, &args))
        .await
        .map_err(|_| Error::Incomplete("run did not wind down after --max-seconds".into()))??;
    finish(&report, args.common.json, args.common.max_seconds)
}

/// What one publisher did.
struct Outcome {
    acked: u64,
    start: Instant,
    end: Instant,
    /// Ack latencies in nanoseconds (sync mode only).
    hist: Option<Histogram<u64>>,
}

async fn measure(bench: &Bench<'_>, args: &JsPubArgs) -> Result<Report> {
    let n = args.pubs as usize;
    let window = if args.sync {
        1
    } else {
        args.max_pending as usize
    };
    let clients = bench.connect_many("jspub", n).await?;
    bench.check_payload(&clients[0], args.size)?;
    let admin = context(clients[0].clone(), 1);
    prepare_stream(bench, &admin, &args.stream).await?;

    let body = payload(args.size);
    let gate = Arc::new(Barrier::new(n));
    let handles: Vec<_> = clients
        .into_iter()
        .zip(split(args.msgs, n))
        .map(|(client, count)| {
            let js = context(client, window);
            let subject = bench.subject.clone();
            let (body, gate, deadline, sync) =
                (body.clone(), gate.clone(), bench.deadline, args.sync);
            tokio::spawn(async move {
                gate.wait().await;
                if sync {
                    sync_loop(&js, &subject, &body, count, deadline).await
                } else {
                    let o = publish_window(&js, &subject, &body, count, window, deadline).await?;
                    Ok(Outcome {
                        acked: o.acked,
                        start: o.start,
                        end: o.end,
                        hist: None,
                    })
                }
            })
        })
        .collect();
    let outcomes = join_all(handles).await?;

    // Sync publishers time each ack; async ones report no latency.
    let hist = merge_histograms(outcomes.iter().filter_map(|o| o.hist.as_ref()))?;
    let seconds = span(outcomes.iter().map(|o| (o.start, o.end)));
    let acked: u64 = outcomes.iter().map(|o| o.acked).sum();
    let size = args.size as u64;
    let clients = outcomes
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let secs = o.end.duration_since(o.start).as_secs_f64();
            ClientStats::new("pub", i + 1, o.acked, o.acked * size, secs)
        })
        .collect();
    let complete = acked == args.msgs;
    let msgs_per_sec = rate(acked, seconds);
    Ok(Report {
        msgs: args.msgs,
        size: args.size,
        pubs: n,
        seconds,
        msgs_per_sec,
        bytes_per_sec: rate(acked * size, seconds),
        published: acked,
        pub_msgs_per_sec: Some(msgs_per_sec),
        stop_reason: if complete { "complete" } else { "deadline" },
        complete,
        clients,
        stream: Some(args.stream.stream.clone()),
        storage: Some(args.stream.storage.as_str()),
        variant: Some(if args.sync { "sync" } else { "async" }),
        max_pending: Some(window as u64),
        ..Report::new("js-pub", &bench.subject, &bench.health)
    }
    .with_latency(&hist))
}

/// Publishes `count` messages one at a time, timing each ack.
async fn sync_loop(
    js: &Context,
    subject: &Subject,
    body: &Bytes,
    count: u64,
    deadline: Instant,
) -> Result<Outcome> {
    let mut hist = latency_histogram()?;
    let op = || format!("publish to stream subject {:?}", subject.as_str());
    let start = Instant::now();
    let mut acked = 0u64;
    let result = timeout_at(deadline, async {
        for _ in 0..count {
            let t = std::time::Instant::now();
            js.publish(subject.clone(), body.clone())
                .await
                .map_err(|e| Error::nats(op(), e))?
                .await
                .map_err(|e| Error::nats(op(), e))?;
            hist.saturating_record(t.elapsed().as_nanos() as u64);
            acked += 1;
        }
        Ok::<(), Error>(())
    })
    .await;
    let end = Instant::now();
    if let Ok(Err(e)) = result {
        return Err(e);
    }
    Ok(Outcome {
        acked,
        start,
        end,
        hist: Some(hist),
    })
}
