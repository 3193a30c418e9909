//! `bench pubsub`: publishers and subscribers on one subject, in-process.
//!
//! This is the end-to-end number users care about: messages in, routed and
//! delivered. Every subscriber must receive every message; the run reports
//! the publish rate and the aggregate delivery rate, and counts messages
//! lost to slow consumers instead of waiting for them. `bench fanout` is
//! the same engine with one publisher and several subscribers, so the
//! engine ([`measure`]) is shared.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use clap::Args;
use tokio::sync::{Barrier, watch};

use super::CommonArgs;
use super::common::{Bench, GRACE, join, payload, publish_loop, receive_loop, split, supervise};
use super::report::{ClientStats, Report, finish, rate};
use crate::connect::ConnectArgs;
use crate::error::{Error, Result};
use crate::units::parse_size;

/// Flags of `bench pubsub`.
#[derive(Args, Debug)]
pub struct PubSubArgs {
    /// Total messages to publish (split across publishers); every
    /// subscriber receives all of them.
    #[arg(long, default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    msgs: u64,

    /// Payload size (e.g. 16, 1K, 1KiB).
    #[arg(long, default_value = "128", value_parser = parse_size, value_name = "BYTES")]
    size: usize,

    /// Number of publishing connections.
    #[arg(long = "pub", default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pubs: u32,

    /// Number of subscribing connections.
    #[arg(long = "sub", default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    subs: u32,

    /// Flags shared by every mode.
    #[command(flatten)]
    pub(super) common: CommonArgs,
}

/// Runs `bench pubsub`.
pub async fn run(conn: &ConnectArgs, args: PubSubArgs) -> Result<()> {
    let plan = Plan {
        mode: "pubsub",
        msgs: args.msgs,
        size: args.size,
        pubs: args.pubs as usize,
        subs: args.subs as usize,
    };
    run_plan(conn, &args.common, plan).await
}

/// What a publish-and-subscribe run should do.
pub struct Plan {
    /// Mode name for the report.
    pub mode: &'static str,
    /// Total messages published.
    pub msgs: u64,
    /// Payload size in bytes.
    pub size: usize,
    /// Publisher connections.
    pub pubs: usize,
    /// Subscriber connections, each receiving every message.
    pub subs: usize,
}

/// Runs a plan under the time bound and prints its report.
pub async fn run_plan(conn: &ConnectArgs, common: &CommonArgs, plan: Plan) -> Result<()> {
    let bench = Bench::new(conn, common)?;
    let limit = bench.deadline + GRACE;
    let report = tokio::time::timeout_at(limit, measure(&bench, &plan))
        .await
        .map_err(|_| Error::Incomplete("run did not wind down after --max-seconds".into()))??;
    finish(&report, common.json, common.max_seconds)
}

/// Subscribes first (confirmed by the server), then publishes, and
/// supervises delivery until complete, stalled or out of time.
async fn measure(bench: &Bench<'_>, plan: &Plan) -> Result<Report> {
    let sub_clients = bench.connect_many("sub", plan.subs).await?;
    let mut subs = Vec::with_capacity(plan.subs);
    for client in &sub_clients {
        subs.push(bench.subscribe(client, None).await?);
    }
    let pub_clients = bench.connect_many("pub", plan.pubs).await?;
    bench.check_payload(&pub_clients[0], plan.size)?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let progress: Vec<Arc<AtomicU64>> = (0..plan.subs)
        .map(|_| Arc::new(AtomicU64::new(0)))
        .collect();
    let sub_handles: Vec<_> = sub_clients
        .into_iter()
        .zip(subs)
        .zip(&progress)
        .map(|((client, sub), prog)| {
            let (prog, stop) = (prog.clone(), stop_rx.clone());
            let expected = plan.msgs;
            tokio::spawn(async move {
                let outcome = receive_loop(sub, expected, prog, stop).await;
                drop(client);
                outcome
            })
        })
        .collect();

    let body = payload(plan.size);
    let gate = Arc::new(Barrier::new(plan.pubs));
    let pub_handles: Vec<_> = pub_clients
        .into_iter()
        .zip(split(plan.msgs, plan.pubs))
        .map(|(client, count)| {
            tokio::spawn(publish_loop(
                client,
                bench.subject.clone(),
                body.clone(),
                count,
                gate.clone(),
                bench.deadline,
            ))
        })
        .collect();

    let reason = supervise(&progress, plan.msgs, &pub_handles, bench.deadline, &stop_tx).await;

    let mut pubs = Vec::with_capacity(plan.pubs);
    for h in pub_handles {
        pubs.push(join(h).await??);
    }
    let mut subs = Vec::with_capacity(plan.subs);
    for h in sub_handles {
        subs.push(join(h).await?);
    }

    let size = plan.size as u64;
    let pub_start = pubs.iter().map(|o| o.start).min();
    let pub_end = pubs.iter().map(|o| o.end).max();
    let pub_seconds = match (pub_start, pub_end) {
        (Some(s), Some(e)) => e.duration_since(s).as_secs_f64(),
        _ => 0.0,
    };
    let published: u64 = pubs.iter().map(|o| o.sent).sum();
    let received: u64 = subs.iter().map(|o| o.received).sum();
    let received_bytes: u64 = subs.iter().map(|o| o.bytes).sum();
    let since_start = |t: Option<tokio::time::Instant>| match (pub_start, t) {
        (Some(s), Some(t)) => t.duration_since(s).as_secs_f64(),
        _ => 0.0,
    };
    let seconds = since_start(subs.iter().filter_map(|o| o.last).max());

    let mut clients: Vec<ClientStats> = pubs
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let secs = o.end.duration_since(o.start).as_secs_f64();
            ClientStats::new("pub", i + 1, o.sent, o.sent * size, secs)
        })
        .collect();
    clients.extend(
        subs.iter()
            .enumerate()
            .map(|(i, o)| ClientStats::new("sub", i + 1, o.received, o.bytes, since_start(o.last))),
    );

    let expected = plan.msgs * plan.subs as u64;
    let complete = published == plan.msgs && received == expected;
    let sub_rate = rate(received, seconds);
    Ok(Report {
        msgs: plan.msgs,
        size: plan.size,
        pubs: plan.pubs,
        subs: plan.subs,
        seconds,
        msgs_per_sec: sub_rate,
        bytes_per_sec: rate(received_bytes, seconds),
        published,
        expected,
        received,
        missing: expected.saturating_sub(received),
        pub_msgs_per_sec: Some(rate(published, pub_seconds)),
        sub_msgs_per_sec: Some(sub_rate),
        stop_reason: reason.as_str(),
        complete,
        clients,
        ..Report::new(plan.mode, &bench.subject, &bench.health)
    })
}
