//! Process figures for `/varz`: resident memory, CPU share, core counts.
//!
//! nats-server reads `/proc/self/stat` (its `pse` package) and reports CPU as a
//! percentage over the last sampling window, in tenths of a percent. We read the same
//! files on request instead of running a sampling timer: a window closes when at least a
//! second has passed since the previous one, so frequent polling sees a steady value and
//! an idle server costs nothing. Off Linux (no `/proc`) the figures are 0.

use parking_lot::Mutex;
use std::time::{Duration, Instant};

/// Shortest window over which a CPU percentage is computed.
const MIN_WINDOW: Duration = Duration::from_secs(1);

/// CPU usage sampler: remembers the previous reading to compute usage over a window.
#[derive(Debug)]
pub struct CpuSampler {
    /// The previous sample and the last computed percentage.
    state: Mutex<CpuState>,
}

/// One CPU reading plus the percentage computed at that reading.
#[derive(Debug, Clone, Copy)]
struct CpuState {
    /// When the reading was taken.
    at: Instant,
    /// User plus system CPU time in clock ticks at `at`.
    ticks: u64,
    /// Percentage over the window that ended at `at`.
    pcpu: f64,
}

impl Default for CpuSampler {
    fn default() -> Self {
        CpuSampler::new()
    }
}

impl CpuSampler {
    /// A sampler whose first window starts now.
    pub fn new() -> Self {
        CpuSampler {
            state: Mutex::new(CpuState {
                at: Instant::now(),
                ticks: cpu_ticks().unwrap_or(0),
                pcpu: 0.0,
            }),
        }
    }

    /// CPU use in percent (100 = one core busy), over the last completed window, in
    /// tenths of a percent like nats-server.
    pub fn percent(&self) -> f64 {
        let mut st = self.state.lock();
        let now = Instant::now();
        let elapsed = now.duration_since(st.at);
        if elapsed < MIN_WINDOW {
            return st.pcpu;
        }
        let Some(ticks) = cpu_ticks() else {
            return st.pcpu;
        };
        let hz = clock_ticks_per_sec();
        let used = ticks.saturating_sub(st.ticks) as f64 / hz;
        // Tenths of a percent, truncated, as nats-server's integer arithmetic does.
        let permille = (used * 1000.0 / elapsed.as_secs_f64()).floor();
        *st = CpuState {
            at: now,
            ticks,
            pcpu: permille / 10.0,
        };
        st.pcpu
    }
}

/// Clock ticks per second for `/proc/self/stat` times.
fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions; it only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 { hz as f64 } else { 100.0 }
}

/// User plus system CPU time of this process, in clock ticks.
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may contain spaces; fields after
    // the last `)` start at field 3, so utime (14) and stime (15) are at 11 and 12.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Resident set size in bytes (`/proc/self/statm`), 0 if unknown.
pub fn rss_bytes() -> i64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: i64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions; it only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * if page > 0 { page as i64 } else { 4096 }
}

/// CPUs this process may run on (Go's `runtime.NumCPU`: the affinity mask), from
/// `Cpus_allowed_list` in `/proc/self/status`; falls back to the available parallelism.
pub fn cores() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let list = s
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
            count_cpu_list(list.trim())
        })
        .filter(|n| *n > 0)
        .unwrap_or_else(parallelism)
}

/// What Go's `GOMAXPROCS` defaults to: CPUs usable after affinity and cgroup quota.
pub fn parallelism() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Counts the CPUs in a list like `0-3,8,10-11`.
fn count_cpu_list(list: &str) -> Option<usize> {
    let mut n = 0;
    for part in list.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
                n += b.checked_sub(a)? + 1;
            }
            None => {
                part.parse::<usize>().ok()?;
                n += 1;
            }
        }
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(count_cpu_list("0-3,8,10-11"), Some(7));
        assert_eq!(count_cpu_list("0"), Some(1));
        assert_eq!(count_cpu_list("x"), None);
    }

    #[test]
    fn reads_proc_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(rss_bytes() > 0);
            assert!(cpu_ticks().is_some());
        }
        assert!(cores() >= 1);
    }
}
