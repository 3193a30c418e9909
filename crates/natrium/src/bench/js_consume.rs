//! `bench js-consume`: reading a stream back through a consumer.
//!
//! The run fills the stream with `--msgs` messages first (untimed; with
//! `--no-create` it reads an existing stream, which must hold at least that
//! many), then creates a consumer delivering from the start and counts
//! messages until it has `--msgs`. Modes:
//!
//! - `pull-ack`: pull consumer, batches of `--batch` fetched one after the
//!   other, every message acknowledged (explicit ack policy);
//! - `pull-noack`: the same with ack policy none;
//! - `push`: push consumer with ack policy none, delivering to an inbox
//!   this connection subscribed to before creating it, with flow control
//!   (answered here) so a fast server cannot overrun the client;
//! - `push-ack`: the same with explicit acks.
//!
//! The clock runs from the first message received to the last one handled;
//! with acks it stops only after a round trip confirms the server received
//! the last ack. The consumer is ephemeral unless `--durable` names it;
//! an ephemeral one is deleted at the end.

use std::time::Duration;

use async_nats::jetstream::consumer::{self, AckPolicy, DeliverPolicy, pull, push};
use async_nats::jetstream::stream::Stream;
use async_nats::{Client, StatusCode};
use bytes::Bytes;
use clap::{Args, ValueEnum};
use futures::StreamExt;
use tokio::time::{Instant, timeout_at};

use super::CommonArgs;
use super::common::{Bench, Flusher, GRACE, payload};
use super::jetstream::{StreamArgs, context, prepare_stream, publish_window};
use super::report::{ClientStats, Report, finish, rate};
use crate::connect::ConnectArgs;
use crate::error::{Error, Result};
use crate::units::parse_size;

/// Outstanding acks while filling the stream.
const FILL_WINDOW: usize = 256;

/// Idle heartbeat of push consumers (flow control needs one).
const PUSH_HEARTBEAT: Duration = Duration::from_secs(5);

/// How the stream is consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConsumeMode {
    /// Pull consumer, explicit ack of every message.
    PullAck,
    /// Pull consumer, no acks.
    PullNoack,
    /// Push consumer, no acks, flow control.
    Push,
    /// Push consumer, explicit ack of every message, flow control.
    PushAck,
}

impl ConsumeMode {
    /// Stable name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsumeMode::PullAck => "pull-ack",
            ConsumeMode::PullNoack => "pull-noack",
            ConsumeMode::Push => "push",
            ConsumeMode::PushAck => "push-ack",
        }
    }

    fn acks(self) -> bool {
        matches!(self, ConsumeMode::PullAck | ConsumeMode::PushAck)
    }

    fn ack_policy(self) -> AckPolicy {
        if self.acks() {
            AckPolicy::Explicit
        } else {
            AckPolicy::None
        }
    }
}

/// Flags of `bench js-consume`.
#[derive(Args, Debug)]
pub struct JsConsumeArgs {
    /// Messages to consume (and to fill the stream with first).
    #[arg(long, default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    msgs: u64,

    /// Payload size of the messages filled in (e.g. 16, 1K, 1KiB).
    #[arg(long, default_value = "128", value_parser = parse_size, value_name = "BYTES")]
    size: usize,

    /// How to consume.
    #[arg(long, value_enum, default_value_t = ConsumeMode::PullAck)]
    mode: ConsumeMode,

    /// Pull modes: messages asked for per fetch.
    #[arg(long, default_value_t = 500, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    batch: u32,

    /// Name a durable consumer (kept after the run) instead of using an
    /// ephemeral one.
    #[arg(long, value_name = "NAME")]
    durable: Option<String>,

    /// The stream.
    #[command(flatten)]
    stream: StreamArgs,

    /// Flags shared by every mode.
    #[command(flatten)]
    pub(super) common: CommonArgs,
}

/// Runs `bench js-consume`.
pub async fn run(conn: &ConnectArgs, args: JsConsumeArgs) -> Result<()> {
    let bench = Bench::new(conn, &args.common)?;
    let limit = bench.deadline + GRACE;
    let report = tokio::time::timeout_at(limit, measure(&bench, &args))
        .await
        .map_err(|_| Error::Incomplete("run did not wind down after --max-seconds".into()))??;
    finish(&report, args.common.json, args.common.max_seconds)
}

/// What the consuming loop saw.
#[derive(Debug, Default)]
struct Seen {
    received: u64,
    bytes: u64,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Seen {
    fn count(&mut self, len: usize) {
        if self.first.is_none() {
            self.first = Some(Instant::now());
        }
        self.received += 1;
        self.bytes += len as u64;
    }
}

async fn measure(bench: &Bench<'_>, args: &JsConsumeArgs) -> Result<Report> {
    let admin = bench.connect("jsfill", 1).await?;
    bench.check_payload(&admin, args.size)?;
    let js = context(admin.clone(), FILL_WINDOW);
    let mut stream = prepare_stream(bench, &js, &args.stream).await?;
    if args.stream.no_create {
        let have = bench
            .bounded(
                async {
                    stream
                        .info()
                        .await
                        .map(|i| i.state.messages)
                        .map_err(|e| Error::nats("stream info", e))
                },
                "reading stream info",
            )
            .await?;
        if have < args.msgs {
            return Err(Error::Usage(format!(
                "stream {:?} holds {have} messages, fewer than --msgs {}",
                args.stream.stream, args.msgs
            )));
        }
    } else {
        let body = payload(args.size);
        let fill = publish_window(
            &js,
            &bench.subject,
            &body,
            args.msgs,
            FILL_WINDOW,
            bench.deadline,
        )
        .await?;
        if fill.acked < args.msgs {
            return Err(Error::Incomplete(format!(
                "time bound of {} s reached while filling the stream ({} of {} messages stored)",
                args.common.max_seconds, fill.acked, args.msgs
            )));
        }
    }

    let client = bench.connect("jsconsume", 1).await?;
    let cjs = context(client.clone(), 1);
    let cstream = bench
        .bounded(
            async {
                cjs.get_stream(&args.stream.stream)
                    .await
                    .map_err(|e| Error::nats("look up stream", e))
            },
            "looking up the stream",
        )
        .await?;
    let mut seen = Seen::default();
    let (consumer_name, result) = match args.mode {
        ConsumeMode::PullAck | ConsumeMode::PullNoack => {
            let consumer = create_pull(bench, &cstream, args).await?;
            let name = consumer.cached_info().name.clone();
            (name, pull_loop(bench, &consumer, args, &mut seen).await)
        }
        ConsumeMode::Push | ConsumeMode::PushAck => {
            push_run(bench, &client, &cstream, args, &mut seen).await?
        }
    };
    if result.is_ok() && args.mode.acks() && seen.received > 0 {
        let mut flusher = Flusher::new(&client).await?;
        if timeout_at(bench.deadline, flusher.roundtrip())
            .await
            .is_ok()
        {
            seen.last = Some(Instant::now());
        }
    }
    if args.durable.is_none() {
        // Best effort, untimed: the server drops inactive ephemerals anyway.
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            cstream.delete_consumer(&consumer_name),
        )
        .await;
    }
    result?;

    let seconds = match (seen.first, seen.last) {
        (Some(f), Some(l)) => l.duration_since(f).as_secs_f64(),
        _ => 0.0,
    };
    let complete = seen.received == args.msgs;
    let msgs_per_sec = rate(seen.received, seconds);
    Ok(Report {
        msgs: args.msgs,
        size: seen
            .bytes
            .checked_div(seen.received)
            .map_or(args.size, |s| s as usize),
        subs: 1,
        seconds,
        msgs_per_sec,
        bytes_per_sec: rate(seen.bytes, seconds),
        expected: args.msgs,
        received: seen.received,
        missing: args.msgs.saturating_sub(seen.received),
        sub_msgs_per_sec: Some(msgs_per_sec),
        stop_reason: if complete { "complete" } else { "deadline" },
        complete,
        clients: vec![ClientStats::new(
            "sub",
            1,
            seen.received,
            seen.bytes,
            seconds,
        )],
        stream: Some(args.stream.stream.clone()),
        storage: Some(args.stream.storage.as_str()),
        variant: Some(args.mode.as_str()),
        batch: Some(u64::from(args.batch)),
        ..Report::new("js-consume", &bench.subject, &bench.health)
    })
}

async fn create_pull(
    bench: &Bench<'_>,
    stream: &Stream,
    args: &JsConsumeArgs,
) -> Result<consumer::Consumer<pull::Config>> {
    let config = pull::Config {
        durable_name: args.durable.clone(),
        deliver_policy: DeliverPolicy::All,
        ack_policy: args.mode.ack_policy(),
        ..Default::default()
    };
    bench
        .bounded(
            async {
                stream
                    .create_consumer(config)
                    .await
                    .map_err(|e| Error::nats("create pull consumer", e))
            },
            "creating the consumer",
        )
        .await
}

/// Fetches batches until `--msgs` messages were handled or the deadline.
async fn pull_loop(
    bench: &Bench<'_>,
    consumer: &consumer::Consumer<pull::Config>,
    args: &JsConsumeArgs,
    seen: &mut Seen,
) -> Result<()> {
    let acks = args.mode.acks();
    let r = timeout_at(bench.deadline, async {
        while seen.received < args.msgs {
            let want = (args.msgs - seen.received).min(u64::from(args.batch)) as usize;
            let mut batch = consumer
                .fetch()
                .max_messages(want)
                .messages()
                .await
                .map_err(|e| Error::nats("fetch", e))?;
            let before = seen.received;
            while let Some(msg) = batch.next().await {
                let msg = msg.map_err(|e| Error::nats("fetch", e))?;
                seen.count(msg.payload.len());
                if acks {
                    msg.ack().await.map_err(|e| Error::nats("ack", e))?;
                }
            }
            seen.last = Some(Instant::now());
            if seen.received == before {
                // Nothing available right now; don't spin.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        Ok::<(), Error>(())
    })
    .await;
    match r {
        Ok(r) => r,
        Err(_) => Ok(()), // deadline: the report says incomplete
    }
}

/// Creates a push consumer delivering to a fresh inbox (subscribed first,
/// so nothing is delivered before anyone listens) and counts what comes.
/// Returns the consumer's name and how the loop ended.
async fn push_run(
    bench: &Bench<'_>,
    client: &Client,
    stream: &Stream,
    args: &JsConsumeArgs,
    seen: &mut Seen,
) -> Result<(String, Result<()>)> {
    let inbox = client.new_inbox();
    let mut sub = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| Error::nats("subscribe to deliver subject", e))?;
    let mut flusher = Flusher::new(client).await?;
    bench
        .bounded(flusher.roundtrip(), "registering the subscription")
        .await?;
    let config = push::Config {
        deliver_subject: inbox,
        durable_name: args.durable.clone(),
        deliver_policy: DeliverPolicy::All,
        ack_policy: args.mode.ack_policy(),
        flow_control: true,
        idle_heartbeat: PUSH_HEARTBEAT,
        ..Default::default()
    };
    let consumer: consumer::Consumer<push::Config> = bench
        .bounded(
            async {
                stream
                    .create_consumer(config)
                    .await
                    .map_err(|e| Error::nats("create push consumer", e))
            },
            "creating the consumer",
        )
        .await?;
    let name = consumer.cached_info().name.clone();
    let acks = args.mode.acks();
    let r = timeout_at(bench.deadline, async {
        while seen.received < args.msgs {
            let Some(msg) = sub.next().await else {
                return Err(Error::Internal("deliver subscription closed".into()));
            };
            match msg.status {
                None => {
                    seen.count(msg.payload.len());
                    seen.last = Some(Instant::now());
                    if acks && let Some(reply) = msg.reply {
                        client
                            .publish(reply, Bytes::new())
                            .await
                            .map_err(|e| Error::nats("ack", e))?;
                    }
                }
                // Flow-control requests (and stalled-consumer heartbeats)
                // carry a reply subject that must be answered.
                Some(StatusCode::IDLE_HEARTBEAT) => {
                    if let Some(reply) = msg.reply {
                        client
                            .publish(reply, Bytes::new())
                            .await
                            .map_err(|e| Error::nats("answer flow control", e))?;
                    }
                }
                Some(_) => {}
            }
        }
        Ok::<(), Error>(())
    })
    .await;
    let r = r.unwrap_or(Ok(()));
    Ok((name, r))
}
