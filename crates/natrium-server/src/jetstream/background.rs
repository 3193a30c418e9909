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

#[cfg(test)]
mod tests {
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
