//! `bench fanout`: one publisher, many subscribers, each getting every
//! message.
//!
//! Fan-out stresses the server's delivery path rather than its ingest: one
//! inbound message becomes M outbound writes, so the interesting number is
//! the aggregate delivered rate. It runs on the `pubsub` engine with one
//! publisher and `--sub` subscribers (default 4).

use clap::Args;

use super::CommonArgs;
use super::pubsub::{Plan, run_plan};
use crate::connect::ConnectArgs;
use crate::error::Result;
use crate::units::parse_size;

/// Flags of `bench fanout`.
#[derive(Args, Debug)]
pub struct FanoutArgs {
    /// Messages to publish; every subscriber receives all of them.
    #[arg(long, default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    msgs: u64,

    /// Payload size (e.g. 16, 1K, 1KiB).
    #[arg(long, default_value = "128", value_parser = parse_size, value_name = "BYTES")]
    size: usize,

    /// Number of subscribing connections.
    #[arg(long = "sub", default_value_t = 4, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    subs: u32,

    /// Flags shared by every mode.
    #[command(flatten)]
    pub(super) common: CommonArgs,
}

/// Runs `bench fanout`.
pub async fn run(conn: &ConnectArgs, args: FanoutArgs) -> Result<()> {
    let plan = Plan {
        mode: "fanout",
        msgs: args.msgs,
        size: args.size,
        pubs: 1,
        subs: args.subs as usize,
    };
    run_plan(conn, &args.common, plan).await
}
