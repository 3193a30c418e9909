//! `bench fsync`: the disk's raw rate of durable appends, no server
//! involved.
//!
//! A server that fsyncs before every PubAck cannot ack one publisher's
//! messages faster than the disk completes `write` + `fdatasync` round
//! trips, so this is the ceiling to hold `js-pub --sync` against. The loop
//! appends `--size` bytes to a fresh file in `--dir` and calls
//! `fdatasync` (`File::sync_data`), `--msgs` times or until
//! `--max-seconds`, and reports syncs per second and their latency. The
//! file is removed afterwards.
//!
//! `--prealloc` first extends the file with `fallocate` to hold every
//! append, as natrium's file store does for its active segment, so each
//! `fdatasync` need not also write the file's new size. Without it the loop
//! is a plain append (what most programs do); with it, it is the same
//! durable write natrium-server makes per synchronous publish, minus the
//! server: the stricter ceiling for `js-pub --sync` against natrium.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;

use super::CommonArgs;
use super::common::Health;
use super::report::{Report, finish, rate};
use crate::error::{Error, Result};
use crate::units::parse_size;

/// Flags of `bench fsync`.
#[derive(Args, Debug)]
pub struct FsyncArgs {
    /// Directory to write in (the filesystem to measure), e.g. the
    /// server's store directory.
    #[arg(long, default_value = ".", value_name = "DIR")]
    dir: PathBuf,

    /// Appends (each followed by an fdatasync).
    #[arg(long, default_value_t = 1_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    msgs: u64,

    /// Bytes written per append.
    #[arg(long, default_value = "128", value_parser = parse_size, value_name = "BYTES")]
    size: usize,

    /// Preallocate the whole file first (`fallocate`), as natrium's store
    /// does for its active segment, so no append changes the file's size.
    #[arg(long)]
    prealloc: bool,

    /// Flags shared by every mode (`--subject` is unused).
    #[command(flatten)]
    pub(super) common: CommonArgs,
}

/// What the blocking loop measured.
struct Outcome {
    done: u64,
    seconds: f64,
    hist: Histogram<u64>,
}

/// Runs `bench fsync`.
pub async fn run(args: FsyncArgs) -> Result<()> {
    let budget = Duration::from_secs_f64(args.common.max_seconds);
    let (dir, msgs, size, prealloc) = (args.dir.clone(), args.msgs, args.size, args.prealloc);
    let outcome =
        tokio::task::spawn_blocking(move || sync_loop(&dir, msgs, size, prealloc, budget))
            .await
            .map_err(|e| Error::Internal(format!("fsync task failed: {e}")))??;
    let us = |q: f64| Some(outcome.hist.value_at_quantile(q) as f64 / 1000.0);
    let has = !outcome.hist.is_empty();
    let complete = outcome.done == args.msgs;
    let report = Report {
        msgs: args.msgs,
        size: args.size,
        pubs: 1,
        seconds: outcome.seconds,
        msgs_per_sec: rate(outcome.done, outcome.seconds),
        bytes_per_sec: rate(outcome.done * args.size as u64, outcome.seconds),
        published: outcome.done,
        pub_msgs_per_sec: Some(rate(outcome.done, outcome.seconds)),
        p50_us: us(0.50).filter(|_| has),
        p90_us: us(0.90).filter(|_| has),
        p99_us: us(0.99).filter(|_| has),
        max_us: Some(outcome.hist.max() as f64 / 1000.0).filter(|_| has),
        mean_us: Some(outcome.hist.mean() / 1000.0).filter(|_| has),
        stop_reason: if complete { "complete" } else { "deadline" },
        complete,
        dir: Some(args.dir.display().to_string()),
        variant: Some(if args.prealloc { "prealloc" } else { "append" }),
        ..Report::new("fsync", "", &Health::default())
    };
    finish(&report, args.common.json, args.common.max_seconds)
}

/// Appends and fdatasyncs up to `msgs` times within `budget` (into a file
/// preallocated for all of them first, with `prealloc`).
fn sync_loop(
    dir: &std::path::Path,
    msgs: u64,
    size: usize,
    prealloc: bool,
    budget: Duration,
) -> Result<Outcome> {
    let prealloc_len = if prealloc {
        let len = msgs
            .checked_mul(size as u64)
            .and_then(|n| libc::off_t::try_from(n).ok())
            .ok_or_else(|| Error::Usage("--msgs x --size is too large to preallocate".into()))?;
        Some(len)
    } else {
        None
    };
    let path = dir.join(format!("natrium-bench-fsync-{}.tmp", std::process::id()));
    let io = |what: &str, e: std::io::Error| {
        Error::Usage(format!("cannot {what} {}: {e}", path.display()))
    };
    let mut file = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&path)
        .map_err(|e| io("create", e))?;
    if let Some(len) = prealloc_len
        && let Err(e) = preallocate(&file, len)
    {
        let _ = std::fs::remove_file(&path);
        return Err(io("preallocate", e));
    }
    let mut hist = Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
        .map_err(|e| Error::Internal(format!("cannot create latency histogram: {e}")))?;
    let buf = vec![b'n'; size];
    let start = Instant::now();
    let mut done = 0u64;
    let mut result = Ok(());
    while done < msgs && start.elapsed() < budget {
        let t = Instant::now();
        if let Err(e) = file.write_all(&buf).and_then(|()| file.sync_data()) {
            result = Err(io("write and fdatasync", e));
            break;
        }
        hist.saturating_record(t.elapsed().as_nanos() as u64);
        done += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    drop(file);
    let _ = std::fs::remove_file(&path);
    result.map(|()| Outcome {
        done,
        seconds,
        hist,
    })
}

/// Extends `file` to `len` bytes of allocated (unwritten) space, as the store's
/// `segment::preallocate` does, and makes that allocation durable before the
/// loop starts, so the loop's syncs carry only the appends.
fn preallocate(file: &std::fs::File, len: libc::off_t) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    if len > 0 {
        // SAFETY: plain syscall on an open descriptor owned by `file`.
        if unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    file.sync_all()
}
