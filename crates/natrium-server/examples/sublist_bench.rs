//! Sublist throughput with many subscriptions. Prints rates; asserts that removing
//! everything leaves no trie nodes behind.
//!
//! ```text
//! cargo run --release -p natrium-server --example sublist_bench [-- SUBS [THREADS]]
//! ```
//!
//! SUBS defaults to 1,000,000 (subjects `foo.<i>.bar.<j>`, one subscriber each), THREADS
//! to 4 (for the shared-read test).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use natrium_server::sublist::Sublist;

/// Resident set size in bytes (Linux), for a rough bytes-per-subscription figure.
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn subject(i: usize) -> String {
    format!("foo.{}.bar.{}", i / 1000, i % 1000)
}

/// CPU time consumed by the calling thread (Linux `schedstat`), if available. On a
/// shared machine wall-clock figures include time spent waiting for a CPU; this doesn't.
fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(Duration::from_nanos(
        s.split_whitespace().next()?.parse().ok()?,
    ))
}

/// Wall-clock and (single-thread) CPU time of a measured section.
struct Timer {
    wall: Instant,
    cpu: Option<Duration>,
}

impl Timer {
    fn start() -> Self {
        Timer {
            cpu: thread_cpu(),
            wall: Instant::now(),
        }
    }

    /// Prints the rate of `n` operations since `start`.
    fn report(&self, what: &str, n: usize) {
        let wall = self.wall.elapsed();
        let per = |d: Duration| d.as_nanos() as f64 / n as f64;
        let cpu = match (self.cpu, thread_cpu()) {
            (Some(a), Some(b)) => format!("{:>9.1} ns/op cpu", per(b.saturating_sub(a))),
            _ => String::new(),
        };
        println!(
            "{what:<46} {:>11.0} ops/s {:>9.1} ns/op wall {cpu}",
            n as f64 / wall.as_secs_f64(),
            per(wall)
        );
    }
}

/// Matches every subject in `subjects` round-robin, `n` times in total.
fn bench_match(sl: &Sublist<u64>, subjects: &[Vec<u8>], n: usize) {
    for k in 0..n {
        black_box(sl.match_subject(&subjects[k % subjects.len()]));
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let subs: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let threads: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(cores.min(4));
    println!("sublist_bench: {subs} subscriptions");

    let subjects: Vec<Vec<u8>> = (0..subs).map(|i| subject(i).into_bytes()).collect();
    let items: Vec<Arc<u64>> = (0..subs as u64).map(Arc::new).collect();

    for cache in [true, false] {
        println!("-- cache {}", if cache { "on" } else { "off" });
        let rss0 = rss_bytes();
        let sl: Sublist<u64> = Sublist::with_cache(cache);
        let t = Timer::start();
        for (s, it) in subjects.iter().zip(&items) {
            sl.insert(s, None, it.clone()).expect("valid subject");
        }
        t.report("insert foo.<i>.bar.<j>", subs);
        if let (Some(a), Some(b)) = (rss0, rss_bytes()) {
            println!(
                "{:<46} {:>11.0} bytes/sub (RSS growth)",
                "memory",
                b.saturating_sub(a) as f64 / subs as f64
            );
        }
        println!("{:<46} {:>11}", "trie nodes", sl.node_count());

        // A working set that fits the cache (1024 subjects): hits when the cache is on.
        let hot: Vec<Vec<u8>> = subjects
            .iter()
            .step_by((subs / 1000).max(1))
            .take(1000)
            .cloned()
            .collect();
        bench_match(&sl, &hot, hot.len());
        let t = Timer::start();
        bench_match(&sl, &hot, 5_000_000);
        t.report(
            if cache {
                "match, cache hit (1000 hot subjects)"
            } else {
                "match, 1000 hot subjects"
            },
            5_000_000,
        );

        // Every subject once: misses (and, with the cache on, insert + eviction).
        let t = Timer::start();
        bench_match(&sl, &subjects, subs);
        t.report("match, cache miss (each subject once)", subs);

        let nobody: Vec<Vec<u8>> = (0..100_000)
            .map(|i| format!("nobody.{i}.bar.x").into_bytes())
            .collect();
        let t = Timer::start();
        bench_match(&sl, &nobody, nobody.len());
        t.report("match, miss with no interest", nobody.len());

        let t = Timer::start();
        for s in subjects.iter().step_by(7) {
            black_box(sl.has_interest(s));
        }
        t.report("has_interest (mostly uncached)", subs.div_ceil(7));

        // A few wildcard subscriptions on top: every publish now also walks `*` branches.
        let wild: Vec<(&[u8], Arc<u64>)> = vec![
            (b"foo.*.bar.*", Arc::new(1)),
            (b"foo.>", Arc::new(2)),
            (b"*.*.bar.>", Arc::new(3)),
            (b">", Arc::new(4)),
        ];
        for (s, it) in &wild {
            sl.insert(s, Some(b"q"), it.clone()).expect("valid subject");
        }
        let t = Timer::start();
        bench_match(&sl, &hot, 2_000_000);
        t.report(
            if cache {
                "match + 4 wildcard qsubs, cache hit"
            } else {
                "match + 4 wildcard qsubs"
            },
            2_000_000,
        );
        let t = Timer::start();
        bench_match(&sl, &subjects, subs);
        t.report("match + 4 wildcard qsubs, cache miss", subs);
        for (s, it) in &wild {
            assert!(sl.remove(s, Some(b"q"), it));
        }

        if cache {
            // Shared reads from several threads on the hot set.
            let sl = Arc::new(sl);
            let per_thread = 2_000_000;
            let start = Instant::now();
            std::thread::scope(|scope| {
                for t in 0..threads {
                    let (sl, hot) = (sl.clone(), &hot);
                    scope.spawn(move || {
                        for k in 0..per_thread {
                            black_box(sl.match_subject(&hot[(k + t * 97) % hot.len()]));
                        }
                    });
                }
            });
            let took = start.elapsed();
            println!(
                "{:<46} {:>11.0} ops/s (aggregate, {cores} cores)",
                format!("match, cache hit, {threads} threads"),
                (per_thread * threads) as f64 / took.as_secs_f64()
            );
            let st = sl.stats();
            println!(
                "{:<46} {:>11.3}",
                "stats: cache_hit_rate", st.cache_hit_rate
            );
            let sl = Arc::into_inner(sl).expect("threads joined");
            remove_all(&sl, &subjects, &items);
        } else {
            remove_all(&sl, &subjects, &items);
        }
    }
}

fn remove_all(sl: &Sublist<u64>, subjects: &[Vec<u8>], items: &[Arc<u64>]) {
    let t = Timer::start();
    for (s, it) in subjects.iter().zip(items) {
        assert!(sl.remove(s, None, it));
    }
    t.report("remove", subjects.len());
    assert_eq!(sl.count(), 0);
    assert_eq!(
        sl.node_count(),
        0,
        "trie nodes left after removing everything"
    );
    println!(
        "{:<46} {:>11}",
        "trie nodes after removing all",
        sl.node_count()
    );
}
