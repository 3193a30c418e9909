//! Append-rate micro benchmark for the stream stores, per durability mode.
//!
//! Why: the server's publish benchmarks (async publish ≥ 1.5× nats-server, sync publish ≥
//! 80% of the disk's raw fsync rate) are bounded by these numbers, and the raw fsync rate
//! of the disk is printed alongside so the ratio can be read off directly.
//!
//! Usage: `cargo run --release -p natrium-store --example store_bench -- [DIR] [SECS]`
//! (DIR defaults to a temporary directory, SECS to 2 per case; payload 128 bytes).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use natrium_store::{Durability, FileStore, FileStoreOptions, MemStore, StoreConfig, StreamStore};

const PAYLOAD: [u8; 128] = [b'x'; 128];

fn rate(n: u64, d: Duration) -> String {
    format!("{:>12.0} msgs/s", n as f64 / d.as_secs_f64())
}

fn raw_fsync_rate(dir: &Path, secs: Duration) -> f64 {
    let p = dir.join("raw-fsync.bin");
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&p)
        .expect("open raw file");
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < secs {
        f.write_all(&PAYLOAD).expect("write");
        f.sync_data().expect("fdatasync");
        n += 1;
    }
    let _ = std::fs::remove_file(&p);
    n as f64 / start.elapsed().as_secs_f64()
}

fn open_file(dir: &Path, name: &str, durability: Durability) -> FileStore {
    let d = dir.join(name);
    let _ = std::fs::remove_dir_all(&d);
    FileStore::open(
        &d,
        FileStoreOptions {
            durability,
            ..Default::default()
        },
    )
    .expect("open file store")
}

/// One thread, `store_msg` per message (sync publish).
fn sequential(s: &dyn StreamStore, secs: Duration) -> (u64, Duration) {
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < secs {
        s.store_msg("bench.seq", b"", &PAYLOAD, None)
            .expect("store");
        n += 1;
    }
    (n, start.elapsed())
}

/// One thread, append `batch` messages then one `wait_durable` (async publish).
fn batched(s: &dyn StreamStore, secs: Duration, batch: usize) -> (u64, Duration) {
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < secs {
        let mut last = None;
        for _ in 0..batch {
            last = Some(
                s.append_msg("bench.batch", b"", &PAYLOAD, None)
                    .expect("append")
                    .ticket,
            );
            n += 1;
        }
        if let Some(t) = last {
            s.wait_durable(t).expect("wait");
        }
    }
    (n, start.elapsed())
}

/// `threads` publishers each doing `store_msg` (group commit shares fsyncs).
fn concurrent(s: Arc<dyn StreamStore>, secs: Duration, threads: usize) -> (u64, Duration) {
    let start = Instant::now();
    let total: u64 = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let s = s.clone();
                sc.spawn(move || {
                    let subj = format!("bench.c.{t}");
                    let mut n = 0u64;
                    while start.elapsed() < secs {
                        s.store_msg(&subj, b"", &PAYLOAD, None).expect("store");
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("join")).sum()
    });
    (total, start.elapsed())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let tmp;
    let dir: PathBuf = match args.next() {
        Some(d) => PathBuf::from(d),
        None => {
            tmp = std::env::temp_dir().join(format!("natrium-store-bench-{}", std::process::id()));
            tmp.clone()
        }
    };
    let secs = Duration::from_secs(args.next().and_then(|s| s.parse().ok()).unwrap_or(2));
    std::fs::create_dir_all(&dir).expect("mkdir");
    println!(
        "dir {}  payload {} B  {}s per case",
        dir.display(),
        PAYLOAD.len(),
        secs.as_secs()
    );

    let raw = raw_fsync_rate(&dir, secs);
    println!(
        "{:<44}{:>12.0} fsyncs/s",
        "raw write+fdatasync (disk baseline)", raw
    );

    let mem = MemStore::new(StoreConfig::default());
    let (n, d) = sequential(&mem, secs);
    println!("{:<44}{}", "memory  store_msg", rate(n, d));

    let s = open_file(&dir, "always-seq", Durability::Always);
    let (n, d) = sequential(&s, secs);
    println!(
        "{:<44}{}  ({:.0}% of raw fsync)",
        "always  store_msg, 1 publisher (sync)",
        rate(n, d),
        100.0 * (n as f64 / d.as_secs_f64()) / raw
    );
    drop(s);

    let s: Arc<dyn StreamStore> = Arc::new(open_file(&dir, "always-conc", Durability::Always));
    let (n, d) = concurrent(s, secs, 16);
    println!("{:<44}{}", "always  store_msg, 16 publishers", rate(n, d));

    for batch in [64, 1024] {
        let s = open_file(&dir, &format!("always-batch-{batch}"), Durability::Always);
        let (n, d) = batched(&s, secs, batch);
        println!(
            "{:<44}{}",
            format!("always  append x{batch} + wait_durable (async)"),
            rate(n, d)
        );
    }

    let s = open_file(
        &dir,
        "interval-seq",
        Durability::Interval(Duration::from_secs(1)),
    );
    let (n, d) = sequential(&s, secs);
    println!(
        "{:<44}{}",
        "interval(1s) store_msg, 1 publisher",
        rate(n, d)
    );
    drop(s);

    let s = open_file(
        &dir,
        "interval-batch",
        Durability::Interval(Duration::from_secs(1)),
    );
    let (n, d) = batched(&s, secs, 1024);
    println!(
        "{:<44}{}",
        "interval(1s) append x1024 + wait (async)",
        rate(n, d)
    );
    drop(s);

    let _ = std::fs::remove_dir_all(&dir);
}
