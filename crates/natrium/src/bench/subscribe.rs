//! `bench sub`: subscribers only, fed by a publisher elsewhere.
//!
//! Running the publisher in another process (or on another tool, e.g.
//! `nats bench pub`) separates the cost of receiving from the cost of
//! sending. As the publisher is unknown here, the clock runs from the first
//! message received to the last, and the run ends when every subscriber
//! has `--msgs` messages or at `--max-seconds`, whichever comes first.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use clap::Args;
use tokio::sync::watch;

use super::CommonArgs;
use super::common::{Bench, GRACE, join, receive_loop, supervise};
use super::report::{ClientStats, Report, finish, rate};
use crate::connect::ConnectArgs;
use crate::error::{Error, Result};

/// Flags of `bench sub`.
#[derive(Args, Debug)]
pub struct SubArgs {
    /// Messages each subscriber expects to receive.
    #[arg(long, default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    msgs: u64,

    /// Number of subscribing connections.
    #[arg(long = "sub", default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    subs: u32,

    /// Flags shared by every mode.
    #[command(flatten)]
    pub(super) common: CommonArgs,
}

/// Runs `bench sub`.
pub async fn run(conn: &ConnectArgs, args: SubArgs) -> Result<()> {
    let bench = Bench::new(conn, &args.common)?;
    let limit = bench.deadline + GRACE;
    let report = tokio::time::timeout_at(limit, measure(&bench, &args))
        .await
        .map_err(|_| Error::Incomplete("run did not wind down after --max-seconds".into()))??;
    finish(&report, args.common.json, args.common.max_seconds)
}

async fn measure(bench: &Bench<'_>, args: &SubArgs) -> Result<Report> {
    let n = args.subs as usize;
    let clients = bench.connect_many("sub", n).await?;
    let mut subs = Vec::with_capacity(n);
    for client in &clients {
        subs.push(bench.subscribe(client, None).await?);
    }
    if !args.common.json {
        eprintln!(
            "natrium: {n} subscriber(s) waiting for {} messages each on {:?} (up to {} s)",
            args.msgs,
            bench.subject.as_str(),
            args.common.max_seconds
        );
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let progress: Vec<Arc<AtomicU64>> = (0..n).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let handles: Vec<_> = clients
        .into_iter()
        .zip(subs)
        .zip(&progress)
        .map(|((client, sub), prog)| {
            let (prog, stop, expected) = (prog.clone(), stop_rx.clone(), args.msgs);
            tokio::spawn(async move {
                let outcome = receive_loop(sub, expected, prog, stop).await;
                drop(client);
                outcome
            })
        })
        .collect();
    let reason = supervise(&progress, args.msgs, &[], bench.deadline, &stop_tx).await;
    let mut outcomes = Vec::with_capacity(n);
    for h in handles {
        outcomes.push(join(h).await?);
    }

    let first = outcomes.iter().filter_map(|o| o.first).min();
    let last = outcomes.iter().filter_map(|o| o.last).max();
    let seconds = match (first, last) {
        (Some(f), Some(l)) => l.duration_since(f).as_secs_f64(),
        _ => 0.0,
    };
    let received: u64 = outcomes.iter().map(|o| o.received).sum();
    let bytes: u64 = outcomes.iter().map(|o| o.bytes).sum();
    let clients = outcomes
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let secs = match (o.first, o.last) {
                (Some(f), Some(l)) => l.duration_since(f).as_secs_f64(),
                _ => 0.0,
            };
            ClientStats::new("sub", i + 1, o.received, o.bytes, secs)
        })
        .collect();
    let expected = args.msgs * n as u64;
    let msgs_per_sec = rate(received, seconds);
    Ok(Report {
        msgs: args.msgs,
        size: bytes.checked_div(received).unwrap_or(0) as usize,
        subs: n,
        seconds,
        msgs_per_sec,
        bytes_per_sec: rate(bytes, seconds),
        expected,
        received,
        missing: expected.saturating_sub(received),
        sub_msgs_per_sec: Some(msgs_per_sec),
        stop_reason: reason.as_str(),
        complete: received == expected,
        clients,
        ..Report::new("sub", &bench.subject, &bench.health)
    })
}
