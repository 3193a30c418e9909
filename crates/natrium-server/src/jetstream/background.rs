//! Lower priority for the threads that do bulk work beside live traffic.
//!
//! Why: a backup streams the whole store, a restore writes a whole archive, and both
//! run while publishers keep publishing. Each publish waits for a small write and an
//! fsync. With the default Linux I/O scheduler (mq-deadline), reads are preferred
//! over writes, so a snapshot's stream of large (readahead) reads made every publish's
//! fsync queue behind it: a lone sync publisher lost ~94% of its rate during a backup.
//! Putting the bulk thread's I/O in the *idle* class lets the scheduler serve the
//! publishers' writes first and the backup in the gaps (mq-deadline still serves idle
//! requests after `prio_aging_expire`, so a busy disk slows a backup but never stops
//! it). A higher nice value does the same for CPU on a machine where the server and
//! its clients share few cores.
//!
//! Why not `SCHED_IDLE` for the CPU: tried (2026-11-29). On an otherwise quiet machine
//! it halved a sync publisher's loss during a backup (9-32% instead of 39-51%), but
//! with the cores saturated (two spinning processes beside the backup and the
//! publisher) the backup crawled at 6-10 MB/s (nice 10: 60-86) and the publisher's
//! longest ack wait grew to 1.2-1.4 s (nice 10: 60-100 ms): the idle-class thread was
//! preempted while holding the store's read lock, and the publisher's append waited
//! until the scheduler gave that thread its tiny share again. A nice value keeps a
//! weight large enough that such a wait stays short.
//!
//! Both are best effort: where the kernel refuses (another scheduler, a container that
//! forbids it), the work simply runs at normal priority.
//!
//! Priorities alone left a lone synchronous publisher at about 40% of its rate during a
//! backup on a 2-core machine (2026-11-30), with the backup's data in the page cache and
//! the disk idle: what the publisher waits for is CPU, and the backup's bytes are also
//! handled by the server's normal-priority I/O workers and by the receiving client.
//! So a transfer also *yields* ([`Yielder`]): while live traffic goes on anywhere in
//! the server (publishes being stored, consumers delivering or taking acks:
//! `JetStream::live_work`), it works at most a configured share of the time (`jetstream {
//! backup_share }`, default [`DEFAULT_BACKUP_SHARE`] percent) and sleeps the rest. With
//! no live traffic it runs at full speed. A restore's import can yield the same way
//! (`restore_share`), but by default does not: a restore is usually wanted done (2 GB
//! beside a sync publisher, 2026-11-30: at share 100 2.2-6.6 s and the publisher lost
//! 28-60%; at 10, 27-35 s and 3-9%).

use std::time::{Duration, Instant};

/// `ioprio_set` "which" for a single thread.
const IOPRIO_WHO_PROCESS: libc::c_int = 1;
/// The idle I/O class: served when no other I/O is waiting.
const IOPRIO_CLASS_IDLE: libc::c_int = 3;
/// Bit position of the class in an I/O priority value.
const IOPRIO_CLASS_SHIFT: libc::c_int = 13;
/// Nice value of bulk threads (0 is normal, 19 the lowest).
const BULK_NICE: libc::c_int = 10;

/// Puts the calling thread's disk I/O in the idle class and raises its nice value.
/// Call it first thing in a thread that does bulk work beside live traffic (the
/// snapshot thread; a restore's importer runs at normal priority: how it competes
/// with live publishers is not measured yet). Returns whether the I/O class was taken.
pub fn lower_current_thread() -> bool {
    // SAFETY: plain syscalls on the calling thread's own id; no memory is passed.
    unsafe {
        let tid = libc::gettid();
        let id = libc::id_t::try_from(tid).unwrap_or(0);
        // Only ever lower: a server already started with a higher nice value keeps it
        // (as root, setting 10 would otherwise raise this thread above the others). A -1
        // from a failed call only leads to setting `BULK_NICE`, as intended anyway.
        if libc::getpriority(libc::PRIO_PROCESS, id) < BULK_NICE {
            libc::setpriority(libc::PRIO_PROCESS, id, BULK_NICE);
        }
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            tid,
            IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT,
        ) == 0
    }
}

/// Default share (percent) of the time a snapshot transfer may work while publishes are
/// arriving: measured 2026-11-30 on a 2-core VM, 1 GiB stream, one synchronous publisher
/// of 1 KiB messages: share 100 cost it 51-62% of its rate, 25: 24-53%, 15: 18-33%,
/// 10: 10-14% (the backup then took ~7.5 s instead of ~1.7 s).
pub const DEFAULT_BACKUP_SHARE: u8 = 10;

/// How long after the last round of live traffic the clients still count as there.
const LIVE_LINGER: Duration = Duration::from_millis(100);

/// The longest single pause: a step that took long (a slow disk) must not make the
/// transfer look dead to its receiver, nor delay its end by much.
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// Paces bulk work against live traffic (publishers, consumers): call [`Yielder::step`] after each unit of
/// work (a read batch). Pure bookkeeping plus a sleep; the decision is
/// [`Yielder::pause_after`], which takes the clock as an argument so it can be tested.
#[derive(Debug)]
pub struct Yielder {
    /// The server's live traffic counter (`JetStream::live_work`) at the last look.
    seen: u64,
    /// When that counter was last seen moving.
    moved: Option<Instant>,
    /// When the current unit of work began.
    began: Instant,
}

impl Yielder {
    /// A yielder starting now, given the live traffic counter's current value.
    pub fn new(count: u64, now: Instant) -> Yielder {
        Yielder {
            seen: count,
            moved: None,
            began: now,
        }
    }

    /// How long to pause after a unit of work that ends at `now`, given the live
    /// traffic counter's value and the share (percent of the time the work may take while
    /// live clients are there; 100 never pauses, 0 counts as 1): the work's time scaled
    /// so that it makes up `share` percent,
    /// bounded by [`MAX_PAUSE`]; nothing if the counter did not move within
    /// [`LIVE_LINGER`]. Starts the next unit's clock at `now` plus the pause.
    pub fn pause_after(&mut self, count: u64, share: u8, now: Instant) -> Duration {
        let share = share.clamp(1, 100);
        if count != self.seen {
            self.seen = count;
            self.moved = Some(now);
        }
        let worked = now.saturating_duration_since(self.began);
        let writers = self
            .moved
            .is_some_and(|t| now.saturating_duration_since(t) < LIVE_LINGER);
        let pause = if writers && share < 100 {
            let rest = f64::from(100 - share) / f64::from(share);
            // Bounded before scaling too: no overflow, whatever a step took.
            worked.min(MAX_PAUSE).mul_f64(rest).min(MAX_PAUSE)
        } else {
            Duration::ZERO
        };
        self.began = now + pause;
        pause
    }

    /// After a unit of work: sleep as [`Yielder::pause_after`] says.
    pub fn step(&mut self, count: u64, share: u8) {
        let pause = self.pause_after(count, share, Instant::now());
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Duration, Instant, Yielder};

    #[test]
    fn yields_only_while_publishes_arrive() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut y = Yielder::new(5, t0);
        // No publish since the start: full speed.
        assert_eq!(y.pause_after(5, 10, t0 + ms(2)), Duration::ZERO);
        // Publishes arrived: 2 ms of work, at a 10% share, earns 18 ms of pause.
        assert_eq!(y.pause_after(6, 10, t0 + ms(4)), ms(18));
        // The next unit's clock starts after the pause: 3 ms of work -> 27 ms.
        assert_eq!(y.pause_after(6, 10, t0 + ms(25)), ms(27));
        // The counter has not moved for longer than the linger: full speed again.
        assert_eq!(y.pause_after(6, 10, t0 + ms(200)), Duration::ZERO);
        // A long unit (a slow disk) pauses at most MAX_PAUSE.
        assert_eq!(y.pause_after(7, 10, t0 + ms(1200)), super::MAX_PAUSE);
    }

    #[test]
    fn full_share_never_pauses() {
        let t0 = Instant::now();
        let mut y = Yielder::new(0, t0);
        for i in 1..10u64 {
            let at = t0 + Duration::from_millis(i * 5);
            assert_eq!(y.pause_after(i, 100, at), Duration::ZERO);
        }
        // Out-of-range shares are clamped, not divided by.
        let mut z = Yielder::new(0, t0);
        assert_eq!(
            z.pause_after(1, 0, t0 + Duration::from_millis(1)),
            super::MAX_PAUSE.min(Duration::from_millis(99))
        );
    }

    #[test]
    fn takes_effect_on_this_thread_only() {
        // SAFETY: reads this thread's own priority.
        let before = unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
        let ours = std::thread::spawn(|| {
            let ok = super::lower_current_thread();
            // SAFETY: reads this thread's own priorities.
            let (io, nice) = unsafe {
                (
                    libc::syscall(libc::SYS_ioprio_get, 1, libc::gettid()),
                    libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t),
                )
            };
            (ok, io, nice)
        })
        .join()
        .unwrap();
        let (ok, io, nice) = ours;
        if ok {
            assert_eq!(io >> 13, 3, "idle I/O class");
        }
        // A test run started at a lower priority than BULK_NICE keeps it (never raised).
        assert_eq!(nice, super::BULK_NICE.max(before));
        // SAFETY: reads this thread's own priority.
        let mine = unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
        assert_eq!(mine, before, "other threads keep theirs");
    }

    #[test]
    fn never_raises_a_thread_above_its_nice_value() {
        let nice = std::thread::spawn(|| {
            // SAFETY: changes and reads this thread's own priority.
            unsafe {
                let id = libc::gettid() as libc::id_t;
                assert_eq!(libc::setpriority(libc::PRIO_PROCESS, id, 15), 0);
                super::lower_current_thread();
                libc::getpriority(libc::PRIO_PROCESS, id)
            }
        })
        .join()
        .unwrap();
        assert_eq!(nice, 15, "already lower than BULK_NICE: left as it was");
    }
}
