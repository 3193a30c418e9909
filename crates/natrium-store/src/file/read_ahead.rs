//! Read-ahead for a bulk reader (a backup's point-in-time view): the next batches are
//! read on helper threads while the reader works on the current one, bypassing the
//! page cache where the filesystem allows it.
//!
//! Why: a backup reads a whole stream once, in order. Through the page cache, a cold
//! read costs the reading thread the page allocations and the copy out of the cache,
//! and every new segment file starts the kernel's read-ahead from scratch, so the
//! reader waits for the disk at each one. Measured on a 1 GiB stream (1 KiB messages,
//! 2 cores): the same backup took 0.92-0.96 s from a cold cache and 0.67-0.75 s from a
//! warm one. Here the reader asks for its next batches as soon as it knows their
//! locations; helper threads read them with `O_DIRECT` (the disk writes straight into
//! our buffer: no page cache pages to allocate, no copy, nothing evicted from the cache
//! that the live stream's readers and writers use) while the reader verifies and sends
//! the batch before.
//!
//! What it does not change: every record is still verified (checksums, sequence) by the
//! reader, exactly as a plain batched read; a run that cannot be read is handed back
//! unread, and the reader falls back to the single-message path for it. A filesystem
//! that refuses `O_DIRECT` (or a read it rejects for alignment) gets ordinary reads on
//! the helper threads: still ahead of the reader, only through the cache.
//!
//! Why reading ahead of the lock is safe: the batch's locations are looked up under the
//! index lock as for any batched read; the files are the ones the index had then (open
//! handles, so a segment deleted meanwhile stays readable); a record erased or
//! compacted meanwhile fails verification and takes the single-message path; removals
//! the view must still return are held by the view whatever was read ahead.
//!
//! Erases: a batch read ahead may hold a record's bytes from before it was securely
//! erased. The view notes every erase (see `pin.rs`) and leaves such messages out when
//! their batch is handed over, so the erase still wins over every message not yet
//! handed out, as with reads made on the spot.
//!
//! Bounds: at most [`DEPTH`] batches are planned ahead, each of at most the reader's
//! batch size (plus alignment), so memory is about `DEPTH + 1` batches. Threads:
//! [`THREADS`] per view that reads in batches, ending when the view is dropped.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};

use super::{BatchPlan, Shared};

/// Batches planned ahead of the one being read.
pub(super) const DEPTH: usize = 3;
/// Helper threads: two reads in flight. One 1 MiB `O_DIRECT` read at a time leaves
/// this kind of disk idle between requests (1.1 GB of segments: 0.85 s with one in
/// flight, 0.42 s with two, 0.42 s through the page cache's own read-ahead), and when
/// the disk is slow that bounded a backup (1 GiB, 1 KiB messages, 2 cores: 1,130-1,220
/// MB/s with one helper, 1,280-1,490 with two). But two reads in flight also cost a
/// synchronous publisher into the same stream twice as much during a backup (its
/// fsyncs wait behind more reads: 510-580 acks/s with two, 910-1,070 with one): so
/// while writers wait for fsyncs, the helpers take turns (one read in flight).
const THREADS: usize = 2;
/// Largest direct read while writers of the stream are waiting for fsyncs: a smaller
/// read ahead of a publisher's fsync holds it up for less time. Measured with one
/// helper and a sync publisher into the backed-up stream: whole runs (~1 MiB) gave the
/// publisher 1,040-1,050 acks/s and the backup 1,060-1,090 MB/s; 512 KiB pieces
/// 1,590-1,620 and ~910; 256 KiB pieces 1,910-1,980 and ~770. Without writers, runs
/// are read whole (256 KiB pieces alone slowed a backup to 920-940 MB/s).
const YIELD_PIECE: usize = 256 * 1024;
/// Direct handles a helper keeps open at most. Why a bound: each is a file descriptor
/// (and keeps its segment's inode), and a large stream has thousands of segments.
const OPEN_DIRECT_MAX: usize = 8;
/// Longest wait for a batch read ahead. Why a bound: a helper that died (a bug) would
/// otherwise leave the reader waiting forever while the other one keeps the channel
/// open; after this the reader reads for itself.
const RESULT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
/// Alignment of `O_DIRECT` offsets, lengths and buffers (covers 512-byte and 4 KiB
/// logical blocks).
const ALIGN: usize = 4096;

/// A heap buffer aligned to [`ALIGN`], as `O_DIRECT` needs.
pub(super) struct AlignedBuf {
    ptr: std::ptr::NonNull<u8>,
    cap: usize,
}

// SAFETY: the buffer is plain owned memory, used by one thread at a time.
unsafe impl Send for AlignedBuf {}

impl AlignedBuf {
    /// A zeroed buffer of at least `cap` bytes (rounded up to [`ALIGN`]).
    fn new(cap: usize) -> AlignedBuf {
        let cap = cap.max(ALIGN).next_multiple_of(ALIGN);
        let layout = std::alloc::Layout::from_size_align(cap, ALIGN)
            .unwrap_or_else(|_| std::alloc::handle_alloc_error(std::alloc::Layout::new::<u8>()));
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let Some(ptr) = std::ptr::NonNull::new(raw) else {
            std::alloc::handle_alloc_error(layout)
        };
        AlignedBuf { ptr, cap }
    }

    fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` owns `cap` initialized (zeroed at allocation) bytes.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.cap) }
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.cap) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this very layout.
        unsafe {
            std::alloc::dealloc(
                self.ptr.as_ptr(),
                std::alloc::Layout::from_size_align_unchecked(self.cap, ALIGN),
            )
        }
    }
}

/// A planned batch on its way to a helper thread.
struct Job {
    id: u64,
    plan: BatchPlan,
    /// A buffer to reuse, if one is free.
    buf: Option<AlignedBuf>,
}

/// A batch read ahead: its plan, and where each run's bytes are in `buf`.
pub(super) struct Filled {
    id: u64,
    /// The batch.
    pub(super) plan: BatchPlan,
    buf: AlignedBuf,
    /// Per run: its bytes in `buf` and whether they were read around the page cache
    /// (`None`: it could not be read).
    spans: Vec<Option<(std::ops::Range<usize>, bool)>>,
}

impl Filled {
    /// The bytes of run `i`, if they were read.
    pub(super) fn run_bytes(&self, i: usize) -> Option<&[u8]> {
        let (span, direct) = self.spans.get(i)?.clone()?;
        COUNTS.with(|c| {
            let mut n = c.get();
            n.runs += 1;
            n.direct += u64::from(direct);
            c.set(n);
        });
        self.buf.as_slice().get(span)
    }
}

/// What the read-ahead did for the batches one thread read (see [`read_ahead_counts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadAheadCounts {
    /// Runs (adjacent records of one segment) handed over read ahead.
    pub runs: u64,
    /// Of those, runs read around the page cache (`O_DIRECT`).
    pub direct: u64,
    /// Runs whose records did not verify as read ahead (damaged, erased or rewritten
    /// meanwhile, or unreadable) and went through the single-message path.
    pub fallbacks: u64,
}

thread_local! {
    /// Per reading thread: so that a test sees its own reads only.
    static COUNTS: std::cell::Cell<ReadAheadCounts> = const {
        std::cell::Cell::new(ReadAheadCounts { runs: 0, direct: 0, fallbacks: 0 })
    };
}

/// What the read-ahead did for this thread's views so far (for tests and diagnostics:
/// whether batches really came read ahead, and around the cache).
pub fn read_ahead_counts() -> ReadAheadCounts {
    COUNTS.with(std::cell::Cell::get)
}

/// Count a run that went through the single-message path.
pub(super) fn count_fallback() {
    COUNTS.with(|c| {
        let mut n = c.get();
        n.fallbacks += 1;
        c.set(n);
    });
}

/// A planned batch, by the sequence it starts at and what follows it.
struct Queued {
    id: u64,
    start: u64,
    next: u64,
}

/// Read-ahead of planned batches on helper threads (see the module docs).
pub(super) struct ReadAhead {
    jobs: Sender<Job>,
    results: Receiver<Filled>,
    /// Submitted batches, oldest first.
    queued: VecDeque<Queued>,
    /// Results that arrived before an older one.
    early: BTreeMap<u64, Filled>,
    next_id: u64,
    /// Buffers of consumed batches, for the next jobs.
    spare: Vec<AlignedBuf>,
}

impl ReadAhead {
    /// Start the helper threads for a view of the store `sh` (whose fsyncs tell them
    /// that writers are waiting); `None` if no thread could be started (the caller
    /// reads for itself).
    pub(super) fn start(sh: &Arc<Shared>) -> Option<ReadAhead> {
        let (jobs, job_rx) = std::sync::mpsc::channel::<Job>();
        let (done_tx, results) = std::sync::mpsc::channel::<Filled>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        // Held by a helper for a whole job while writers wait (one read in flight).
        let turns = Arc::new(Mutex::new(()));
        let mut started = 0;
        for _ in 0..THREADS {
            let job_rx = job_rx.clone();
            let done_tx = done_tx.clone();
            let turns = turns.clone();
            let mut pacer = Pacer::new(sh);
            let spawned = std::thread::Builder::new()
                .name("natrium-readahead".into())
                .spawn(move || helper(&job_rx, &done_tx, &turns, &mut pacer));
            if spawned.is_ok() {
                started += 1;
            }
        }
        (started > 0).then(|| ReadAhead {
            jobs,
            results,
            queued: VecDeque::new(),
            early: BTreeMap::new(),
            next_id: 0,
            spare: Vec::new(),
        })
    }

    /// Batches submitted and not yet taken.
    pub(super) fn queued(&self) -> usize {
        self.queued.len()
    }

    /// The sequence after the newest submitted batch.
    pub(super) fn planned_to(&self) -> Option<u64> {
        self.queued.back().map(|q| q.next)
    }

    /// The sequence the oldest submitted batch starts at.
    pub(super) fn front_start(&self) -> Option<u64> {
        self.queued.front().map(|q| q.start)
    }

    /// Submit `plan` (which starts at `start`) to be read ahead. False if the helpers
    /// are gone (the caller stops reading ahead).
    pub(super) fn submit(&mut self, start: u64, plan: BatchPlan) -> bool {
        let Some(next) = plan.next_seq() else {
            return false;
        };
        let id = self.next_id;
        self.next_id += 1;
        let job = Job {
            id,
            plan,
            buf: self.spare.pop(),
        };
        if self.jobs.send(job).is_err() {
            return false;
        }
        self.queued.push_back(Queued { id, start, next });
        true
    }

    /// Wait for the oldest submitted batch. `None` if the helpers are gone, or the
    /// batch did not come within [`RESULT_WAIT`] (the caller then reads for itself).
    pub(super) fn take_front(&mut self) -> Option<Filled> {
        let q = self.queued.pop_front()?;
        if let Some(f) = self.early.remove(&q.id) {
            return Some(f);
        }
        let until = std::time::Instant::now() + RESULT_WAIT;
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            let f = self.results.recv_timeout(left).ok()?;
            match f.id.cmp(&q.id) {
                std::cmp::Ordering::Equal => return Some(f),
                // Submitted before a `reset`: nobody wants it any more.
                std::cmp::Ordering::Less => self.recycle(f),
                std::cmp::Ordering::Greater => {
                    self.early.insert(f.id, f);
                }
            }
        }
    }

    /// Forget every submitted batch (the reader went another way); what the helpers
    /// are still reading is dropped when it arrives.
    pub(super) fn reset(&mut self) {
        self.queued.clear();
        self.early.clear();
    }

    /// Give a consumed batch's buffer back for reuse.
    pub(super) fn recycle(&mut self, f: Filled) {
        if self.spare.len() < DEPTH {
            self.spare.push(f.buf);
        }
    }
}

/// How long after the store's last fsync seen its writers still count as active: a
/// synchronous publisher fsyncs every millisecond or so, a piece takes a fraction of
/// that, so "an fsync since the last piece" alone would flip back to whole runs
/// between two of its fsyncs.
const WRITERS_LINGER: std::time::Duration = std::time::Duration::from_millis(100);

/// How much a helper reads at once: whole runs, or [`YIELD_PIECE`]s while writers are
/// waiting for fsyncs: the fsync count moved within [`WRITERS_LINGER`], the one the
/// store shares with the other stores on its disk if it has one
/// (`FileStoreOptions::disk_fsyncs`: a sync publisher into another stream waits behind
/// our reads too), else its own.
struct Pacer {
    sh: Arc<Shared>,
    /// The fsync count at the last look.
    seen: u64,
    /// When it last moved.
    moved: Option<std::time::Instant>,
}

impl Pacer {
    fn new(sh: &Arc<Shared>) -> Pacer {
        Pacer {
            seen: watched(sh).load(std::sync::atomic::Ordering::Relaxed),
            sh: sh.clone(),
            moved: None,
        }
    }

    /// The fsync count watched, now.
    fn count(&self) -> u64 {
        watched(&self.sh).load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether writers are waiting for fsyncs now.
    fn writers(&mut self) -> bool {
        let count = self.count();
        if count != self.seen {
            self.seen = count;
            self.moved = Some(std::time::Instant::now());
        }
        self.moved.is_some_and(|t| t.elapsed() < WRITERS_LINGER)
    }

    /// The most one direct read may take now.
    fn piece(&mut self) -> usize {
        if self.writers() {
            YIELD_PIECE
        } else {
            usize::MAX
        }
    }
}

/// The fsync counter a [`Pacer`] watches: the one the store shares with the other
/// stores on its disk, if any, else its own.
fn watched(sh: &Shared) -> &std::sync::atomic::AtomicU64 {
    sh.disk_fsyncs.as_deref().unwrap_or(&sh.group_fsyncs)
}

/// A helper thread: read each job's runs into its buffer until the queue closes.
fn helper(
    jobs: &Mutex<Receiver<Job>>,
    done: &Sender<Filled>,
    turns: &Mutex<()>,
    pacer: &mut Pacer,
) {
    let mut direct: HashMap<usize, (Arc<File>, Option<File>)> = HashMap::new();
    loop {
        let job = {
            let Ok(rx) = jobs.lock() else { return };
            match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        let filled = {
            let _turn = pacer.writers().then(|| turns.lock());
            read_job(job, &mut direct, &mut |_| pacer.piece())
        };
        if done.send(filled).is_err() {
            return;
        }
    }
}

/// Room a run takes in a job's buffer: its bytes widened to aligned edges, itself a
/// multiple of [`ALIGN`] so that the next run's area starts aligned too.
fn room(len: usize) -> usize {
    len.next_multiple_of(ALIGN) + 2 * ALIGN
}

/// Read a job's runs; `piece` says how much one direct read may take (given the
/// default, whole).
fn read_job(
    job: Job,
    direct: &mut HashMap<usize, (Arc<File>, Option<File>)>,
    piece: &mut dyn FnMut(usize) -> usize,
) -> Filled {
    let need: usize = job.plan.runs.iter().map(|r| room(r.len)).sum();
    let mut buf = match job.buf {
        Some(b) if b.cap >= need => b,
        _ => AlignedBuf::new(need),
    };
    let mut spans = Vec::with_capacity(job.plan.runs.len());
    let mut at = 0usize;
    for run in &job.plan.runs {
        let area = &mut buf.as_mut_slice()[at..at + room(run.len)];
        let key = Arc::as_ptr(&run.file) as usize;
        if direct.len() >= OPEN_DIRECT_MAX && !direct.contains_key(&key) {
            // A view reads its segments in order: the ones left behind are done with.
            direct.clear();
        }
        let entry = direct
            .entry(key)
            .or_insert_with(|| (run.file.clone(), open_direct(&run.file)));
        let plain = |area: &mut [u8]| read_plain(&run.file, run.off, run.len, area);
        let got = match &entry.1 {
            // Already in the page cache (read or written recently): copy it from there.
            Some(_) if all_cached(&run.file, run.off, run.len) => plain(area).map(|r| (r, false)),
            Some(d) => match read_direct(d, run.off, run.len, area, piece) {
                Ok(r) => Some((r, true)),
                Err(_) => {
                    // Refused (alignment, or the filesystem after all): plain reads for
                    // this file from now on.
                    entry.1 = None;
                    plain(area).map(|r| (r, false))
                }
            },
            None => plain(area).map(|r| (r, false)),
        };
        spans.push(got.map(|(r, direct)| (at + r.start..at + r.end, direct)));
        at += room(run.len);
    }
    Filled {
        id: job.id,
        plan: job.plan,
        buf,
        spans,
    }
}

/// A second handle on `file`'s inode that reads around the page cache; `None` where
/// the filesystem refuses (then reads go through the cache).
fn open_direct(file: &File) -> Option<File> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    // Through /proc: the segment may have been unlinked since (the handle keeps it).
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT | libc::O_CLOEXEC)
        .open(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .ok()
}

/// Read `off..off + len` with aligned direct reads into `area` (at least
/// `room(len)` bytes, aligned), each at most `piece(..)` bytes (rounded up to
/// [`ALIGN`]); the range of `area` that holds the run.
fn read_direct(
    d: &File,
    off: u64,
    len: usize,
    area: &mut [u8],
    piece: &mut dyn FnMut(usize) -> usize,
) -> std::io::Result<std::ops::Range<usize>> {
    let a_off = off - off % ALIGN as u64;
    let lead = (off - a_off) as usize;
    let want = (lead + len).next_multiple_of(ALIGN);
    let mut got = 0usize;
    while got < lead + len {
        let left = want - got;
        let step = match piece(left) {
            p if p >= left => left,
            p => p.max(1).next_multiple_of(ALIGN),
        };
        let upto = got + step;
        match d.read_at(&mut area[got..upto], a_off + got as u64) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        if !got.is_multiple_of(ALIGN) && got < lead + len {
            // A short read off an aligned edge: the next one could not be aligned.
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(lead..lead + len)
}

/// Whether the page cache holds every page of `off..off + len` of `file` (read or
/// written recently); asked with `cachestat(2)` (Linux 6.5), which starts no I/O. False
/// where the call is missing: then the run is read directly.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
fn all_cached(file: &File, off: u64, len: usize) -> bool {
    use std::os::fd::AsRawFd;
    /// The syscall's number on these architectures (libc does not name it for them).
    const SYS_CACHESTAT: libc::c_long = 451;
    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct Stat {
        nr_cache: u64,
        nr_dirty: u64,
        nr_writeback: u64,
        nr_evicted: u64,
        nr_recently_evicted: u64,
    }
    const PAGE: u64 = 4096;
    let first = off / PAGE;
    let end = (off + len as u64).div_ceil(PAGE);
    let range = Range {
        off: first * PAGE,
        len: (end - first) * PAGE,
    };
    let mut stat = Stat::default();
    // SAFETY: both pointers are to live, properly laid out structs for the duration of
    // the call; the descriptor is owned by `file`.
    let rc = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            &range as *const Range,
            &mut stat as *mut Stat,
            0u32,
        )
    };
    rc == 0 && stat.nr_cache >= end - first
}

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
fn all_cached(_file: &File, _off: u64, _len: usize) -> bool {
    false
}

/// Read `off..off + len` through the page cache into the start of `area`.
fn read_plain(
    file: &File,
    off: u64,
    len: usize,
    area: &mut [u8],
) -> Option<std::ops::Range<usize>> {
    file.read_exact_at(&mut area[..len], off).ok()?;
    Some(0..len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::{Loc, Run};

    /// A file of `len` patterned bytes.
    fn patterned(dir: &std::path::Path, len: usize) -> (Arc<File>, Vec<u8>) {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let p = dir.join("data");
        std::fs::write(&p, &bytes).unwrap();
        (Arc::new(File::open(&p).unwrap()), bytes)
    }

    fn plan(file: &Arc<File>, off: u64, len: usize) -> BatchPlan {
        BatchPlan {
            locs: vec![(
                off + 1,
                Loc {
                    seg: 1,
                    off: off as u32,
                    len: len as u32,
                },
            )],
            runs: vec![Run {
                file: file.clone(),
                off,
                len,
                locs: 0..1,
            }],
        }
    }

    #[test]
    fn direct_reads_of_unaligned_ranges_give_the_files_bytes() {
        let d = tempfile::tempdir().unwrap();
        let (file, bytes) = patterned(d.path(), 3 * ALIGN + 100);
        let Some(direct) = open_direct(&file) else {
            return; // This filesystem refuses O_DIRECT: nothing to check here.
        };
        let total = bytes.len();
        for (off, len) in [
            (0, 1),
            (1, ALIGN - 1),
            (ALIGN - 1, 2),
            (ALIGN, ALIGN),
            (100, 3 * ALIGN),
            (3 * ALIGN + 50, 50),
            (0, total),
        ] {
            let mut buf = AlignedBuf::new(room(len));
            assert_eq!(buf.as_slice().as_ptr() as usize % ALIGN, 0);
            let r = read_direct(&direct, off as u64, len, buf.as_mut_slice(), &mut |n| n).unwrap();
            assert_eq!(&buf.as_slice()[r], &bytes[off..off + len], "{off}+{len}");
            // The same in small pieces (as while writers wait), one page at a time.
            let mut reads = 0;
            let mut pieces = |_| {
                reads += 1;
                1
            };
            let mut buf = AlignedBuf::new(room(len));
            let r = read_direct(&direct, off as u64, len, buf.as_mut_slice(), &mut pieces).unwrap();
            assert_eq!(
                &buf.as_slice()[r],
                &bytes[off..off + len],
                "{off}+{len} in pieces"
            );
            assert_eq!(
                reads,
                (off % ALIGN + len).div_ceil(ALIGN),
                "{off}+{len}: one page a read"
            );
        }
        // Past the end is an error, not short data.
        let mut buf = AlignedBuf::new(room(200));
        let past = read_direct(
            &direct,
            (total - 100) as u64,
            200,
            buf.as_mut_slice(),
            &mut |n| n,
        );
        assert!(past.is_err());
    }

    #[test]
    fn reads_come_in_small_pieces_only_while_writers_wait_for_fsyncs() {
        use crate::stream::StreamStore;
        let d = tempfile::tempdir().unwrap();
        let store = crate::file::FileStore::open(d.path(), Default::default()).unwrap();
        let mut pacer = Pacer::new(&store.sh);
        assert_eq!(pacer.piece(), usize::MAX, "no writers: whole runs");
        store.store_msg("a", b"", b"durable", None).unwrap();
        assert!(
            store.group_fsyncs() > 0,
            "an `always` store fsyncs per write"
        );
        assert_eq!(pacer.piece(), YIELD_PIECE, "a writer waited for an fsync");
        assert_eq!(pacer.piece(), YIELD_PIECE, "and may come again soon");
        std::thread::sleep(WRITERS_LINGER);
        assert_eq!(
            pacer.piece(),
            usize::MAX,
            "gone for a while: whole runs again"
        );
    }

    /// Stores sharing a disk counter: a writer of one makes the other's reads short.
    #[test]
    fn writers_of_another_store_on_the_disk_count_too() {
        use crate::stream::StreamStore;
        let disk = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let opts = || crate::file::FileStoreOptions {
            disk_fsyncs: Some(disk.clone()),
            ..Default::default()
        };
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let read = crate::file::FileStore::open(dirs[0].path(), opts()).unwrap();
        let written = crate::file::FileStore::open(dirs[1].path(), opts()).unwrap();
        let alone = crate::file::FileStore::open(dirs[2].path(), Default::default()).unwrap();
        let mut pacer = Pacer::new(&read.sh);
        let mut apart = Pacer::new(&alone.sh);
        assert_eq!(pacer.piece(), usize::MAX, "no writers: whole runs");
        written.store_msg("a", b"", b"durable", None).unwrap();
        assert!(disk.load(std::sync::atomic::Ordering::Relaxed) > 0);
        assert_eq!(
            pacer.piece(),
            YIELD_PIECE,
            "the other store's writer counts"
        );
        assert_eq!(
            apart.piece(),
            usize::MAX,
            "a store without the counter: its own only"
        );
    }

    #[test]
    fn a_helper_keeps_few_files_open_however_many_it_reads() {
        let d = tempfile::tempdir().unwrap();
        let mut direct = HashMap::new();
        for i in 0..3 * OPEN_DIRECT_MAX {
            let sub = d.path().join(format!("f{i}"));
            std::fs::create_dir(&sub).unwrap();
            let (file, bytes) = patterned(&sub, 2 * ALIGN + i);
            let job = Job {
                id: i as u64,
                plan: plan(&file, 10, ALIGN + i),
                buf: None,
            };
            let f = read_job(job, &mut direct, &mut |n| n);
            assert_eq!(f.run_bytes(0).unwrap(), &bytes[10..10 + ALIGN + i]);
            assert!(direct.len() <= OPEN_DIRECT_MAX, "{} open", direct.len());
        }
    }

    #[test]
    fn batches_come_back_in_order_and_a_reset_drops_the_old_ones() {
        let d = tempfile::tempdir().unwrap();
        let (file, bytes) = patterned(d.path(), 64 * 1024);
        let store =
            crate::file::FileStore::open(d.path().join("store"), Default::default()).unwrap();
        let mut ra = ReadAhead::start(&store.sh).unwrap();
        let piece = |i: usize| (i * 5000 + 3, 4000 + i);
        for i in 0..4 {
            let (off, len) = piece(i);
            assert!(ra.submit(i as u64 * 10, plan(&file, off as u64, len)));
        }
        assert_eq!((ra.queued(), ra.front_start()), (4, Some(0)));
        let first = ra.take_front().unwrap();
        let (off, len) = piece(0);
        assert_eq!(first.run_bytes(0).unwrap(), &bytes[off..off + len]);
        ra.recycle(first);
        // The reader went elsewhere: the three still queued are never handed out.
        ra.reset();
        assert_eq!((ra.queued(), ra.front_start()), (0, None));
        for i in 4..7 {
            let (off, len) = piece(i);
            assert!(ra.submit(i as u64 * 10, plan(&file, off as u64, len)));
        }
        for i in 4..7 {
            let f = ra.take_front().unwrap();
            let (off, len) = piece(i);
            assert_eq!(f.plan.runs[0].off, off as u64);
            assert_eq!(f.run_bytes(0).unwrap(), &bytes[off..off + len]);
            ra.recycle(f);
        }
        assert!(ra.take_front().is_none(), "nothing left queued");
    }
}
