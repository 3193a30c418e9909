//! `bench pub`: publishers only.
//!
//! Measures how fast the server ingests messages that nobody subscribes to:
//! parsing and routing cost without delivery. The clock stops only when a
//! flush round trip confirms the server processed the last message, so
//! messages still sitting in client or socket buffers are not counted as
//! done.

use std::sync::Arc;

use clap::Args;
use tokio::sync::Barrier;

use super::CommonArgs;
use super::common::{Bench, GRACE, join, payload, publish_loop, split};
use super::report::{ClientStats, Report, finish, rate};
use crate::connect::ConnectArgs;
use crate::error::{Error, Result};
use crate::units::parse_size;

/// Flags of `bench pub`.
#[derive(Args, Debug)]
pub struct PubArgs {
    /// Total messages to publish, split across publishers.
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

    /// Flags shared by every mode.
    #[command(flatten)]
    pub(super) common: CommonArgs,
}

/// Runs `bench pub`.
pub async fn run(conn: &ConnectArgs, args: PubArgs) -> Result<()> {
    let bench = Bench::new(conn, &args.common)?;
    let limit = bench.deadline + GRACE;
    let report = tokio::time::timeout_at(limit, measure(&bench, &args))
        .await
        .map_err(|_| Error::Incomplete("run did not wind down after --max-seconds".into()))??;
    finish(&report, args.common.json, args.common.max_seconds)
}

async fn measure(bench: &Bench<'_>, args: &PubArgs) -> Result<Report> {
    let n = args.pubs as usize;
    let clients = bench.connect_many("pub", n).await?;
    bench.check_payload(&clients[0], args.size)?;
    let body = payload(args.size);
    let gate = Arc::new(Barrier::new(n));
    let handles: Vec<_> = clients
        .into_iter()
        .zip(split(args.msgs, n))
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
    let mut outcomes = Vec::with_capacity(n);
    for h in handles {
        outcomes.push(join(h).await??);
    }

    let start = outcomes.iter().map(|o| o.start).min();
    let end = outcomes.iter().map(|o| o.end).max();
    let seconds = match (start, end) {
        (Some(s), Some(e)) => e.duration_since(s).as_secs_f64(),
        _ => 0.0,
    };
    let published: u64 = outcomes.iter().map(|o| o.sent).sum();
    let size = args.size as u64;
    let clients = outcomes
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let secs = o.end.duration_since(o.start).as_secs_f64();
            ClientStats::new("pub", i + 1, o.sent, o.sent * size, secs)
        })
        .collect();
    let complete = published == args.msgs;
    let msgs_per_sec = rate(published, seconds);
    Ok(Report {
        msgs: args.msgs,
        size: args.size,
        pubs: n,
        seconds,
        msgs_per_sec,
        bytes_per_sec: rate(published * size, seconds),
        published,
        pub_msgs_per_sec: Some(msgs_per_sec),
        stop_reason: if complete { "complete" } else { "deadline" },
        complete,
        clients,
        ..Report::new("pub", &bench.subject, &bench.health)
    })
}
