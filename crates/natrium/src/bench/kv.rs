//! `bench kv`: key/value puts or gets, each one awaited, as an application
//! uses a bucket (read a setting, write a state).
//!
//! A put is a JetStream publish to `$KV.<bucket>.<key>` with its PubAck (so,
//! on file storage, it includes whatever the server's durability policy
//! demands before the ack); a get is a direct get of the key's last message
//! (`$JS.API.DIRECT.GET`, what the clients use when the bucket allows it, as
//! every bucket they create does). Keys are `k0` … `k<keys-1>`, taken in
//! turn by each client; `--op get` first stores a value under every key
//! (untimed) and fails the run if a get finds none.

use std::sync::Arc;

use async_nats::jetstream::kv;
use bytes::Bytes;
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use tokio::sync::Barrier;
use tokio::time::{Instant, timeout_at};

use super::CommonArgs;
use super::common::{
    Bench, GRACE, join_all, latency_histogram, merge_histograms, payload, span, split,
};
use super::jetstream::{Storage, context};
use super::report::{ClientStats, Report, finish, rate};
use crate::connect::ConnectArgs;
use crate::error::{Error, Result};
use crate::units::parse_size;

/// The bucket a run uses unless told otherwise; the only one it deletes and recreates.
const DEFAULT_BUCKET: &str = "natrium-bench";

/// Most keys a run may use (they are preformatted in memory).
const MAX_KEYS: u64 = 10_000_000;

/// The operation timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KvOp {
    /// Store a value, await its acknowledgement.
    Put,
    /// Read a key's latest value.
    Get,
}

/// Flags of `bench kv`.
#[derive(Args, Debug)]
pub struct KvArgs {
    /// Operation to time.
    #[arg(long, value_enum, default_value_t = KvOp::Put)]
    op: KvOp,

    /// Total operations, split across clients.
    #[arg(long, default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    msgs: u64,

    /// Value size (e.g. 128, 1K).
    #[arg(long, default_value = "128", value_parser = parse_size, value_name = "BYTES")]
    size: usize,

    /// Distinct keys the operations cycle through.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=MAX_KEYS))]
    keys: u64,

    /// Concurrent clients, one connection each.
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=1_000))]
    clients: u32,

    /// The bucket: created for the run; one that exists is refused, except the default
    /// one, which is made afresh.
    #[arg(long, default_value = DEFAULT_BUCKET, value_name = "NAME")]
    bucket: String,

    /// Values kept per key.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i64).range(1..=64))]
    history: i64,

    /// Storage of the bucket.
    #[arg(long, value_enum, default_value_t = Storage::File)]
    storage: Storage,

    /// Flags shared by every mode.
    #[command(flatten)]
    pub(super) common: CommonArgs,
}

/// Runs `bench kv`.
pub async fn run(conn: &ConnectArgs, args: KvArgs) -> Result<()> {
    let bench = Bench::new(conn, &args.common)?;
    let limit = bench.deadline + GRACE;
    let report = tokio::time::timeout_at(limit, measure(&bench, &args))
        .await
        .map_err(|_| Error::Incomplete("run did not wind down after --max-seconds".into()))??;
    finish(&report, args.common.json, args.common.max_seconds)
}

/// What one client did.
struct Outcome {
    done: u64,
    start: Instant,
    end: Instant,
    hist: Histogram<u64>,
}

/// Deletes the bucket if it exists and creates it with the run's settings.
async fn prepare_bucket(
    bench: &Bench<'_>,
    client: &async_nats::Client,
    args: &KvArgs,
) -> Result<kv::Store> {
    let js = context(client.clone(), 1);
    let name = args.bucket.as_str();
    crate::jsapi::valid_name("bucket", name)?;
    bench
        .bounded(
            async {
                // The run's own bucket is made afresh; someone else's is not touched.
                if js.get_key_value(name).await.is_ok() {
                    if name != DEFAULT_BUCKET {
                        return Err(Error::Usage(format!(
                            "bucket {name:?} exists: bench kv makes a bucket of its own (delete it first or name another)"
                        )));
                    }
                    js.delete_key_value(name)
                        .await
                        .map_err(|e| Error::nats(format!("delete bucket {name:?}"), e))?;
                }
                js.create_key_value(kv::Config {
                    bucket: name.to_string(),
                    history: args.history,
                    storage: match args.storage {
                        Storage::File => async_nats::jetstream::stream::StorageType::File,
                        Storage::Memory => async_nats::jetstream::stream::StorageType::Memory,
                    },
                    ..Default::default()
                })
                .await
                .map_err(|e| Error::nats(format!("create bucket {name:?}"), e))
            },
            "creating the bucket",
        )
        .await
}

async fn measure(bench: &Bench<'_>, args: &KvArgs) -> Result<Report> {
    let n = args.clients as usize;
    let clients = bench.connect_many("kv", n).await?;
    bench.check_payload(&clients[0], args.size)?;
    let admin = prepare_bucket(bench, &clients[0], args).await?;
    let keys: Arc<Vec<String>> = Arc::new((0..args.keys).map(|i| format!("k{i}")).collect());
    let body = payload(args.size);
    if args.op == KvOp::Get {
        bench
            .bounded(
                async {
                    for k in keys.iter() {
                        admin
                            .put(k, body.clone())
                            .await
                            .map_err(|e| Error::nats(format!("fill key {k}"), e))?;
                    }
                    Ok(())
                },
                "filling the bucket",
            )
            .await?;
    }

    let gate = Arc::new(Barrier::new(n));
    let mut handles = Vec::with_capacity(n);
    let mut first_key = 0u64;
    for (client, count) in clients.into_iter().zip(split(args.msgs, n)) {
        let store = context(client, 1)
            .get_key_value(args.bucket.as_str())
            .await
            .map_err(|e| Error::nats(format!("open bucket {:?}", args.bucket), e))?;
        let (keys, body, gate, deadline, op) = (
            keys.clone(),
            body.clone(),
            gate.clone(),
            bench.deadline,
            args.op,
        );
        let offset = first_key;
        first_key += count;
        handles.push(tokio::spawn(async move {
            gate.wait().await;
            op_loop(&store, op, &keys, offset, &body, count, deadline).await
        }));
    }
    let outcomes = join_all(handles).await?;

    let hist = merge_histograms(outcomes.iter().map(|o| &o.hist))?;
    let seconds = span(outcomes.iter().map(|o| (o.start, o.end)));
    let done: u64 = outcomes.iter().map(|o| o.done).sum();
    let size = args.size as u64;
    let clients = outcomes
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let secs = o.end.duration_since(o.start).as_secs_f64();
            ClientStats::new("kv", i + 1, o.done, o.done * size, secs)
        })
        .collect();
    let complete = done == args.msgs;
    let msgs_per_sec = rate(done, seconds);
    Ok(Report {
        msgs: args.msgs,
        size: args.size,
        pubs: n,
        seconds,
        msgs_per_sec,
        bytes_per_sec: rate(done * size, seconds),
        published: done,
        stop_reason: if complete { "complete" } else { "deadline" },
        complete,
        clients,
        stream: Some(format!("KV_{}", args.bucket)),
        storage: Some(args.storage.as_str()),
        variant: Some(match args.op {
            KvOp::Put => "put",
            KvOp::Get => "get",
        }),
        ..Report::new("kv", &format!("$KV.{}.>", args.bucket), &bench.health)
    }
    .with_latency(&hist))
}

/// Runs `count` operations one after another on keys `offset`, `offset + 1`, …
/// (modulo the key count), timing each.
async fn op_loop(
    store: &kv::Store,
    op: KvOp,
    keys: &[String],
    offset: u64,
    body: &Bytes,
    count: u64,
    deadline: Instant,
) -> Result<Outcome> {
    let mut hist = latency_histogram()?;
    let start = Instant::now();
    let mut done = 0u64;
    let n = keys.len() as u64;
    let result = timeout_at(deadline, async {
        for i in 0..count {
            let key = &keys[((offset + i) % n) as usize];
            let t = std::time::Instant::now();
            match op {
                KvOp::Put => {
                    store
                        .put(key, body.clone())
                        .await
                        .map_err(|e| Error::nats(format!("kv put {key}"), e))?;
                }
                KvOp::Get => {
                    let got = store
                        .get(key.as_str())
                        .await
                        .map_err(|e| Error::nats(format!("kv get {key}"), e))?;
                    if got.is_none() {
                        return Err(Error::Incomplete(format!("kv get {key}: no value")));
                    }
                }
            }
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
    Ok(Outcome {
        done,
        start,
        end,
        hist,
    })
}
