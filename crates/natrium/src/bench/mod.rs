//! `natrium bench`: load generators for comparing NATS servers.
//!
//! Why our own and not `nats bench`: we need to drive nats-server and
//! natrium-server with exactly the same client, get machine-readable
//! results for scripts (`--json`, one object per run), and be sure a run
//! ends (every run is bounded by `--max-seconds`) and tells the truth
//! (messages lost to slow consumers are counted and reported, never waited
//! for). The client is async-nats, used the way a fast application would:
//! one connection per simulated client, `publish` in a tight loop reusing
//! one `Bytes` payload, a flush only at the end, subscribers counting in a
//! loop over the subscription stream.
//!
//! JetStream modes (`js-pub`, `js-consume`, `kv`) measure the persistence
//! path: acknowledged publishes into a stream, consumption through pull or
//! push consumers, and key/value puts and gets; `fsync` measures the disk's own durable-append rate as
//! the ceiling for a server that syncs before every ack.
//!
//! Each mode lives in its own file; the shared machinery (connections,
//! worker loops, the stop logic) is in [`common`], result printing in
//! [`report`].

mod common;
mod fanout;
mod fsync;
mod jetstream;
mod js_consume;
mod js_publish;
mod kv;
mod publish;
mod pubsub;
mod report;
mod request;
mod subscribe;

use clap::{Args, Subcommand};

use crate::connect::ConnectArgs;
use crate::error::Result;
use crate::units::parse_positive_seconds;

/// Arguments of `natrium bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Which load to generate.
    #[command(subcommand)]
    mode: Mode,
}

/// The benchmark modes.
#[derive(Subcommand, Debug)]
enum Mode {
    /// Publishers only: how fast can the server take messages in?
    Pub(publish::PubArgs),
    /// Subscribers only, fed by an external publisher.
    Sub(subscribe::SubArgs),
    /// Publishers and subscribers on one subject, in this process.
    Pubsub(pubsub::PubSubArgs),
    /// One publisher, many subscribers each receiving every message.
    Fanout(fanout::FanoutArgs),
    /// Request/reply round trips with latency percentiles.
    Request(request::RequestArgs),
    /// JetStream: publish to a stream, each message acknowledged (PubAck).
    JsPub(js_publish::JsPubArgs),
    /// JetStream: fill a stream, then read it back through a consumer.
    JsConsume(js_consume::JsConsumeArgs),
    /// The disk's raw write + fdatasync rate (no server involved).
    Fsync(fsync::FsyncArgs),
    /// Key/value: puts or gets on a bucket, each awaited, with latency percentiles.
    Kv(kv::KvArgs),
}

/// Flags shared by every benchmark mode.
#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// Subject to publish to / subscribe on.
    #[arg(long, default_value = "natrium.bench")]
    subject: String,

    /// Print one JSON object with the results instead of the text report.
    #[arg(long)]
    json: bool,

    /// Hard time bound for the whole run, in seconds; the run stops there
    /// and reports what it measured as incomplete.
    #[arg(long, default_value = "60", value_parser = parse_positive_seconds, value_name = "SECS")]
    max_seconds: f64,

    /// Client-side buffer of each subscription, in messages. Messages that
    /// arrive while it is full are dropped by the client and show up as
    /// missing messages and slow-consumer events.
    #[arg(long, default_value_t = 1 << 20, value_name = "MSGS",
          value_parser = clap::value_parser!(u64).range(1..))]
    sub_capacity: u64,

    /// Client worker threads (0 = one per CPU core). On a small machine
    /// shared with the server under test, 1 leaves the server more room.
    #[arg(long, default_value_t = 0, value_name = "N",
          value_parser = clap::value_parser!(u16).range(0..=1024))]
    threads: u16,
}

impl BenchArgs {
    /// The `--threads` choice of the selected mode; `None` for the default.
    pub fn threads(&self) -> Option<usize> {
        let common = match &self.mode {
            Mode::Pub(a) => &a.common,
            Mode::Sub(a) => &a.common,
            Mode::Pubsub(a) => &a.common,
            Mode::Fanout(a) => &a.common,
            Mode::Request(a) => &a.common,
            Mode::JsPub(a) => &a.common,
            Mode::JsConsume(a) => &a.common,
            Mode::Fsync(a) => &a.common,
            Mode::Kv(a) => &a.common,
        };
        (common.threads > 0).then_some(usize::from(common.threads))
    }
}

/// Runs the chosen benchmark against the server given by `conn`.
pub async fn run(conn: &ConnectArgs, args: BenchArgs) -> Result<()> {
    match args.mode {
        Mode::Pub(a) => publish::run(conn, a).await,
        Mode::Sub(a) => subscribe::run(conn, a).await,
        Mode::Pubsub(a) => pubsub::run(conn, a).await,
        Mode::Fanout(a) => fanout::run(conn, a).await,
        Mode::Request(a) => request::run(conn, a).await,
        Mode::JsPub(a) => js_publish::run(conn, a).await,
        Mode::JsConsume(a) => js_consume::run(conn, a).await,
        Mode::Fsync(a) => fsync::run(a).await,
        Mode::Kv(a) => kv::run(conn, a).await,
    }
}
