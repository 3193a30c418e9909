//! Shared JetStream machinery of `bench js-pub` and `bench js-consume`: the
//! stream flags, preparing the stream, and a windowed publisher.
//!
//! Each run owns its stream unless told otherwise: it creates the stream,
//! or purges it when one with the same storage and subject already exists
//! (a stream with another shape is deleted and created anew), so that a run
//! never measures a store full of an earlier run's messages. `--no-create`
//! uses an existing stream as it is.
//!
//! Publishing with acks uses a window: up to `max_pending` publishes are
//! in flight, and the oldest ack is awaited before another is sent. The
//! window is ours (a queue of ack futures), not async-nats's in-flight
//! semaphore, so the number of outstanding acks is exactly the flag.

use std::collections::VecDeque;
use std::time::Duration;

use async_nats::jetstream::context::{Context, ContextBuilder, PublishAckFuture};
use async_nats::jetstream::stream::{self, StorageType, Stream};
use async_nats::{Client, Subject};
use bytes::Bytes;
use clap::{Args, ValueEnum};
use tokio::time::{Instant, timeout_at};

use super::common::Bench;
use crate::error::{Error, Result};

/// Longest a single JetStream API call or ack may take before it fails
/// (the run's own deadline usually ends things first).
const API_TIMEOUT: Duration = Duration::from_secs(30);

/// Attempts at creating the stream after the first fails, and the pause
/// between them (see [`prepare_stream`]).
const CREATE_RETRIES: u32 = 20;
const CREATE_RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Where the stream keeps its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Storage {
    /// On disk (the server's durability policy applies).
    File,
    /// In memory only.
    Memory,
}

impl Storage {
    /// Stable name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Storage::File => "file",
            Storage::Memory => "memory",
        }
    }

    fn storage_type(self) -> StorageType {
        match self {
            Storage::File => StorageType::File,
            Storage::Memory => StorageType::Memory,
        }
    }
}

/// Flags naming and shaping the stream a JetStream benchmark uses.
#[derive(Args, Debug, Clone)]
pub struct StreamArgs {
    /// Stream to publish to / consume from. It captures `--subject`.
    #[arg(long, default_value = "natrium-bench", value_name = "NAME")]
    pub stream: String,

    /// Storage of the stream the run creates.
    #[arg(long, value_enum, default_value_t = Storage::File)]
    pub storage: Storage,

    /// Use the existing stream as it is: don't create, purge or (for
    /// js-consume) fill it.
    #[arg(long)]
    pub no_create: bool,
}

/// A JetStream context on `client` whose API calls and acks are bounded.
pub fn context(client: Client, max_pending: usize) -> Context {
    ContextBuilder::new()
        .timeout(API_TIMEOUT)
        .max_ack_inflight(max_pending.max(1))
        .backpressure_on_inflight(true)
        .build(client)
}

/// Validates the stream name before anything is sent.
fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\'))
    {
        return Err(Error::Usage(format!(
            "invalid stream name {name:?}: must be non-empty, without whitespace, '.', '*', '>', '/' or '\\'"
        )));
    }
    Ok(())
}

/// Creates, purges or (with `--no-create`) looks up the run's stream.
pub async fn prepare_stream(bench: &Bench<'_>, js: &Context, args: &StreamArgs) -> Result<Stream> {
    check_name(&args.stream)?;
    let name = args.stream.as_str();
    let subject = bench.subject.to_string();
    if args.no_create {
        return bench
            .bounded(
                async {
                    js.get_stream(name)
                        .await
                        .map_err(|e| Error::nats(format!("look up stream {name:?}"), e))
                },
                "looking up the stream",
            )
            .await;
    }
    let want = args.storage.storage_type();
    bench
        .bounded(
            async {
                if let Ok(existing) = js.get_stream(name).await {
                    let cfg = &existing.cached_info().config;
                    if cfg.storage == want && cfg.subjects == [subject.clone()] {
                        existing
                            .purge()
                            .await
                            .map_err(|e| Error::nats(format!("purge stream {name:?}"), e))?;
                        return Ok(existing);
                    }
                    js.delete_stream(name)
                        .await
                        .map_err(|e| Error::nats(format!("delete stream {name:?}"), e))?;
                }
                let config = stream::Config {
                    name: name.to_string(),
                    subjects: vec![subject.clone()],
                    storage: want,
                    ..Default::default()
                };
                // nats-server 2.15.1 removes a deleted stream's files in the
                // background, and a create of the same name right after can
                // fail ("error creating store for stream"): retry briefly.
                let mut attempt = 0;
                loop {
                    match js.create_stream(config.clone()).await {
                        Ok(s) => return Ok(s),
                        Err(_) if attempt < CREATE_RETRIES => {
                            attempt += 1;
                            tokio::time::sleep(CREATE_RETRY_PAUSE).await;
                        }
                        Err(e) => {
                            return Err(Error::nats(format!("create stream {name:?}"), e));
                        }
                    }
                }
            },
            "preparing the stream",
        )
        .await
}

/// What one windowed publisher did.
#[derive(Debug, Clone, Copy)]
pub struct AckedOutcome {
    /// Publishes whose ack arrived.
    pub acked: u64,
    /// When publishing started.
    pub start: Instant,
    /// When the last ack arrived (or the deadline hit).
    pub end: Instant,
}

/// Publishes `count` messages through `js` with at most `window`
/// outstanding acks, then waits for the remaining acks. Stops at
/// `deadline`; a negative ack (or any publish error) fails the run.
pub async fn publish_window(
    js: &Context,
    subject: &Subject,
    payload: &Bytes,
    count: u64,
    window: usize,
    deadline: Instant,
) -> Result<AckedOutcome> {
    let window = window.max(1);
    let start = Instant::now();
    let mut acked = 0u64;
    let mut pending: VecDeque<PublishAckFuture> = VecDeque::with_capacity(window);
    let op = || format!("publish to stream subject {:?}", subject.as_str());
    let result = timeout_at(deadline, async {
        for _ in 0..count {
            if pending.len() >= window
                && let Some(ack) = pending.pop_front()
            {
                ack.await.map_err(|e| Error::nats(op(), e))?;
                acked += 1;
            }
            let fut = js
                .publish(subject.clone(), payload.clone())
                .await
                .map_err(|e| Error::nats(op(), e))?;
            pending.push_back(fut);
        }
        while let Some(ack) = pending.pop_front() {
            ack.await.map_err(|e| Error::nats(op(), e))?;
            acked += 1;
        }
        Ok::<(), Error>(())
    })
    .await;
    let end = Instant::now();
    if let Ok(Err(e)) = result {
        return Err(e);
    }
    Ok(AckedOutcome { acked, start, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_are_checked() {
        assert!(check_name("natrium-bench").is_ok());
        assert!(check_name("BENCH_1").is_ok());
        for bad in ["", "a.b", "a b", "a*", "a>", "a/b"] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
