//! Load helper for `scripts/bench-backup.sh` (not part of the CLI).
//!
//! `js_fill fill URL STREAM COUNT SIZE [INFLIGHT]`: create a file stream `STREAM` on
//! subjects `STREAM.>` (if missing) and publish COUNT messages of SIZE bytes to
//! `STREAM.fill`, keeping up to INFLIGHT (default 512) publish acks outstanding.
//!
//! `js_fill sync URL STREAM SIZE START_FILE STOP_FILE MAX_SECONDS`: publish one message at
//! a time to `STREAM.sync`, each waiting for its ack, and count the acks between the
//! moment START_FILE exists and the moment STOP_FILE exists (or MAX_SECONDS after
//! start). Prints `{"published":N,"seconds":S,"rate":R,"max_ack_ms":M}` (M: the longest
//! wait for one ack in that window).
//!
//! Payloads are pseudo-random printable bytes, fresh for every message.

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Fresh pseudo-random printable bytes per message (xorshift seeded by its index):
/// neither Snappy nor S2 finds much to compress, so both servers' archives are about
/// the stream's size and the numbers measure moving bytes, not compression ratios.
fn payload(i: u64, size: usize) -> Bytes {
    let mut x: u64 = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(size);
    while out.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        for b in x.to_le_bytes() {
            if out.len() < size {
                out.push(b'!' + b % 90);
            }
        }
    }
    Bytes::from(out)
}

async fn fill(
    url: &str,
    stream: &str,
    count: u64,
    size: usize,
    inflight: usize,
) -> Result<(), Error> {
    let client = async_nats::connect(url).await?;
    let js = async_nats::jetstream::new(client);
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: stream.to_string(),
        subjects: vec![format!("{stream}.>")],
        storage: async_nats::jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await?;
    let subject = format!("{stream}.fill");
    let started = Instant::now();
    let mut pending = VecDeque::with_capacity(inflight);
    for i in 0..count {
        if pending.len() >= inflight {
            let ack: async_nats::jetstream::context::PublishAckFuture =
                pending.pop_front().expect("pending");
            ack.await?;
        }
        pending.push_back(js.publish(subject.clone(), payload(i, size)).await?);
    }
    for ack in pending {
        ack.await?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{{\"published\":{count},\"seconds\":{secs:.3},\"rate\":{:.0}}}",
        count as f64 / secs
    );
    Ok(())
}

async fn sync_pub(
    url: &str,
    stream: &str,
    size: usize,
    start_file: &Path,
    stop_file: &Path,
    max: Duration,
) -> Result<(), Error> {
    let client = async_nats::connect(url).await?;
    let js = async_nats::jetstream::new(client);
    let subject = format!("{stream}.sync");
    let begun = Instant::now();
    let mut window: Option<Instant> = None;
    let mut n = 0u64;
    let mut i = 0u64;
    let mut checked = Instant::now();
    // The longest wait for one ack inside the window: a stall shows here even when the
    // rate looks fine.
    let mut max_wait = Duration::ZERO;
    loop {
        let t = Instant::now();
        js.publish(subject.clone(), payload(i, size)).await?.await?;
        i += 1;
        if window.is_some() {
            n += 1;
            max_wait = max_wait.max(t.elapsed());
        }
        if checked.elapsed() >= Duration::from_millis(5) {
            checked = Instant::now();
            if window.is_none() && start_file.exists() {
                window = Some(Instant::now());
            }
            if (window.is_some() && stop_file.exists()) || begun.elapsed() >= max {
                break;
            }
        }
    }
    let secs = window.map(|w| w.elapsed().as_secs_f64()).unwrap_or(0.0);
    let rate = if secs > 0.0 { n as f64 / secs } else { 0.0 };
    let max_ms = max_wait.as_secs_f64() * 1000.0;
    println!(
        "{{\"published\":{n},\"seconds\":{secs:.3},\"rate\":{rate:.1},\"max_ack_ms\":{max_ms:.2}}}"
    );
    Ok(())
}

fn usage() -> ! {
    eprintln!(
        "usage: js_fill fill URL STREAM COUNT SIZE [INFLIGHT]\n       js_fill sync URL STREAM SIZE START_FILE STOP_FILE MAX_SECONDS"
    );
    std::process::exit(2)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let a: Vec<String> = std::env::args().collect();
    match a.get(1).map(String::as_str) {
        Some("fill") if a.len() >= 6 => {
            let inflight = a.get(6).map(|s| s.parse()).transpose()?.unwrap_or(512);
            fill(&a[2], &a[3], a[4].parse()?, a[5].parse()?, inflight).await
        }
        Some("sync") if a.len() == 8 => {
            sync_pub(
                &a[2],
                &a[3],
                a[4].parse()?,
                Path::new(&a[5]),
                Path::new(&a[6]),
                Duration::from_secs(a[7].parse()?),
            )
            .await
        }
        _ => usage(),
    }
}
