//! [`FileStore`]: the durable stream store.
//!
//! # Why it looks like this
//! Data safety is the product. Every design choice below serves one of three promises:
//! 1. **An acknowledged write survives** — under [`Durability::Always`] (the default)
//!    nothing is acknowledged before it is fsynced; concurrent publishers share one fsync
//!    (group commit), so safety does not cost throughput.
//! 2. **Damage is contained, never served, never fatal** — every record has a header
//!    checksum and a body checksum, verified on every read. A torn tail after a crash is
//!    cut back to the last good record; a damaged interior record is reported and
//!    skipped; the store still opens and still accepts publishes (unlike nats-server
//!    #7704, #6888).
//! 3. **Sequences are never reused** — the last sequence is recoverable from the records
//!    and from segment file names even after purges, so a consumer's delivered/acked
//!    sequence can never silently point at a different message.
//!
//! # On-disk layout
//! ```text
//! DIR/LOCK                       flock'd while open (one process at a time)
//! DIR/store.nmeta                format description (metadata envelope, see meta.rs)
//! DIR/stream.nmeta               the server's opaque stream config
//! DIR/msgs/{id:010}-{base:020}.seg   append-only segments (segment.rs, record.rs)
//! DIR/consumers/NAME/config.nmeta    consumer config blob
//! DIR/consumers/NAME/state.nmeta     consumer snapshot (generation + encoded state)
//! DIR/consumers/NAME/ops.log         consumer operation log since the snapshot
//! ```
//! Segments are replayed in id order. Record kinds: MSG, TOMBSTONE (a removal), SKIP,
//! FLOOR (everything below removed), TRUNCATE, ERASED (a message overwritten in place).
//! Every record also carries the stream's first sequence at write time ("floor"), so
//! removing the oldest messages because of limits costs no extra record.
//!
//! The active segment's file is extended with `fallocate` 1 MiB ahead of its records
//! (`segment::preallocate`), so that an append + `fdatasync` does not also have to write
//! the inode's new size; a finished segment is cut back to its records, and recovery
//! reads a tail of zeros as the clean end of a segment, not as damage.
//!
//! Segments are deleted whole once every message in them is dead, oldest first (so a
//! tombstone or floor in a newer segment is never lost while an older segment it refers
//! to still exists). A purge starts a new segment and deletes all older ones at once.
//!
//! # Durability and visibility
//! * `Always`: `append_msg` encodes the record into an in-memory buffer and updates the
//!   index; `wait_durable(ticket)` makes one caller the leader, which writes the buffer
//!   with one `pwrite` (under the index lock) and then fdatasyncs **outside** the lock,
//!   while others keep appending for the next batch. Loads only return messages that
//!   are durable, so consumers never see a message a crash could take back.
//! * `Interval(d)`: `wait_durable` only waits for the batch write to the OS (survives
//!   kill -9); a background thread fsyncs every `d`. Writeback is started every 8 MiB
//!   (`segment::start_writeback`). At a roll the writer does not wait for the disk: the
//!   finished segment's trim and fsync and the directory's fsync are put off to the
//!   flusher thread, woken at once (`Shared::roll`, `Shared::sync_put_off`), and the new
//!   segment's header becomes durable with that segment's first fsync; a group fsync
//!   does anything still queued first, and segments are marked durable oldest first:
//!   durable data stays a prefix of the log.
//! * Folders: a new store's folder, and any missing ancestor (a new account's), is
//!   created by `meta::create_dir_durable`, which fsyncs each new folder's parent, so a
//!   stream whose create was answered is still there after a power loss; its own
//!   entries (`msgs/`, `consumers/`, `store.nmeta`) are durable with `store.nmeta`'s
//!   directory fsync. A consumer's folder: see `consumer.rs` (`FileConsumerStore::open`).
//!
//! # Failure: poisoning
//! A failed write or fsync poisons the store: appends return `Poisoned` (the cause is
//! kept), messages appended but not yet durable are dropped from the index (their
//! publishers were never acknowledged; their sequences stay used). Reads keep working.
//! Removals, purges and expiry keep working by writing to a fresh segment and fsyncing
//! it directly, so an operator can free space on a full disk. Publishing resumes after
//! [`FileStore::try_recover`] (cuts the non-durable tail, re-reads the segments, clears
//! the poison) or a reopen. There is no silent retry of a failed fsync.
//!
//! A full filesystem (ENOSPC/EDQUOT on a write or when creating a segment) is the one
//! failure that is not final: the partial write is cut off at once, appends return
//! [`StoreError::NoSpace`], and the store deletes a small reserve file it keeps
//! (`DIR/space.reserve`, [`SPACE_RESERVE`] bytes) so that removals, purges and consumer
//! acks have room to be recorded. Later appends retry [`FileStore::try_recover`] by
//! themselves (at most every [`NOSPACE_RETRY`]), so publishing resumes once space is
//! freed. An fsync failure still poisons for good: after a failed fsync the kernel may
//! have dropped the dirty pages, so nothing written since the last good fsync can be
//! trusted.
//!
//! # Lock order
//! `flusher` (the flusher thread's handle; `move_dir` only) → `put_off_mu` (serializes
//! the put-off fsyncs with `try_recover` and `move_dir`) → `inner` (index + segments +
//! write buffer) → `commit` (group-commit state): `inner` may be held while briefly
//! taking `commit` (to publish a poisoning), never the reverse, and `put_off_mu` is
//! never taken under `inner` or `commit`. The group-commit leader holds neither across
//! I/O except the batch `pwrite` and, in `Interval` mode, whatever put-off directory or
//! segment fsync the flusher has not done yet (both under `inner`); its own fsync runs
//! with no lock held. `stop` (the flusher's wake-up mutex) is a leaf, taken under
//! `inner` by a roll. `consumers` is taken with nothing else held; a consumer store's
//! own mutex is innermost. Readers take `inner` shared.

pub mod consumer;
pub mod meta;
mod pin;
mod read_ahead;
pub use read_ahead::{ReadAheadCounts, read_ahead_counts};
pub mod record;
pub mod segment;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex, RwLock, RwLockWriteGuard};

pub use self::consumer::FileConsumerStore;
use self::meta::{DirLock, MetaKind, create_dir_durable, read_meta, sync_dir, write_meta};
use self::record::{Kind, RecordFields};
pub use self::segment::{CorruptRegion, TruncatedTail};
use self::segment::{SEG_HDR_LEN, Segment, parse_seg_name, seg_header, seg_name};
use crate::HARD_MAX_MSG_SIZE;
use crate::consumer::{ConsumerPolicy, ConsumerStore};
use crate::error::{CorruptLocation, Result, StoreError};
use crate::index::{Removed, StreamIndex};
use crate::stream::StreamStore;
use crate::subject::{SubjectFilter, validate_subject};
use crate::types::{
    Clock, Durability, ExpireReport, GroupAck, GroupMsg, MsgRef, SimpleState, StorageType,
    StoreAck, StoreConfig, StoredMsg, StreamState, SystemClock, Ticket, Ttl, file_msg_size,
};

/// Size of the reserve file a store deletes when the disk is full, so that removals can
/// still be written.
pub const SPACE_RESERVE: u64 = 64 * 1024;
/// Name of the reserve file in the store directory.
const RESERVE_NAME: &str = "space.reserve";
/// How often appends retry recovery after the disk was full.
pub const NOSPACE_RETRY: Duration = Duration::from_millis(100);

/// Whether an I/O error means the filesystem (or quota) is full.
fn is_no_space(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// Bytes available to unprivileged users on the filesystem of `dir` (0 if unknown).
fn free_space(dir: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return 0;
    };
    // SAFETY: statvfs only writes into the zeroed struct we pass; `c` is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return 0;
    }
    (st.f_bavail as u64).saturating_mul(st.f_frsize as u64)
}

/// Creates the reserve file (best effort: a full disk simply leaves no reserve).
fn make_reserve(dir: &Path) {
    let path = dir.join(RESERVE_NAME);
    if path.exists() {
        return;
    }
    let tmp = dir.join("space.reserve.tmp");
    let ok = (|| -> std::io::Result<()> {
        let f = fs::File::create(&tmp)?;
        f.write_all_at(&vec![0u8; SPACE_RESERVE as usize], 0)?;
        f.sync_all()?;
        fs::rename(&tmp, &path)
    })();
    if ok.is_err() {
        let _ = fs::remove_file(&tmp);
    }
}

/// Payload of `store.nmeta`.
const FORMAT_DESC: &[u8] = b"natrium-store segments v1";

/// Options for [`FileStore::open`].
#[derive(Debug, Clone)]
pub struct FileStoreOptions {
    /// Durability mode. Default `Always`.
    pub durability: Durability,
    /// Target segment size in bytes (a segment is rolled when the next record would
    /// exceed it). Default 16 MiB, at most 1 GiB.
    pub segment_size: u64,
    /// Buffered bytes that force a write to the OS even before `wait_durable`.
    /// Default 1 MiB.
    pub write_buffer: usize,
    /// Limits to enforce.
    pub config: StoreConfig,
    /// Timestamp source.
    pub clock: Arc<dyn Clock>,
    /// A counter shared by the stores on one disk (a server's streams): every group
    /// fsync adds one to it as well as to the store's own. A backup's read-ahead
    /// watches it to keep its reads short while writers of *any* of those stores wait
    /// for fsyncs (see `read_ahead.rs`); without it, only this store's writers count.
    pub disk_fsyncs: Option<Arc<std::sync::atomic::AtomicU64>>,
}

impl Default for FileStoreOptions {
    fn default() -> Self {
        FileStoreOptions {
            durability: Durability::Always,
            segment_size: 16 * 1024 * 1024,
            write_buffer: 1024 * 1024,
            config: StoreConfig::default(),
            clock: Arc::new(SystemClock),
            disk_fsyncs: None,
        }
    }
}

/// What recovery found and did when the store was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments read.
    pub segments: usize,
    /// Valid records replayed.
    pub records: u64,
    /// Messages live after recovery.
    pub msgs: u64,
    /// Last sequence after recovery.
    pub last_seq: u64,
    /// Torn tails that were cut off.
    pub truncated: Vec<TruncatedTail>,
    /// Damaged interior regions that were skipped.
    pub corrupt: Vec<CorruptRegion>,
    /// Files removed (leftover temp files).
    pub removed_files: Vec<PathBuf>,
    /// Other observations (rewritten metadata, unexpected files, ...).
    pub notes: Vec<String>,
}

impl RecoveryReport {
    /// True if nothing had to be cut, skipped or repaired.
    pub fn is_clean(&self) -> bool {
        self.truncated.is_empty() && self.corrupt.is_empty() && self.notes.is_empty()
    }
}

/// Where a message record lives.
#[derive(Debug, Clone, Copy)]
struct Loc {
    /// Segment id.
    seg: u32,
    /// Offset in the segment.
    off: u32,
    /// Record length.
    len: u32,
}

/// State behind the index lock.
#[derive(Debug)]
struct Inner {
    /// Logical state.
    ix: StreamIndex<Loc>,
    /// Segments by id.
    segs: BTreeMap<u32, Segment>,
    /// Active (appended) segment id.
    active: u32,
    /// Next segment id.
    next_id: u32,
    /// Encoded records not yet written to the active segment.
    buf: Vec<u8>,
    /// Total bytes ever appended (ticket space).
    appended: u64,
    /// Highest message sequence loads may return (durable under `Always`).
    visible: u64,
    /// Highest floor written to disk.
    floor_written: u64,
    /// Set when a write or fsync failed.
    poisoned: Option<String>,
    /// The poisoning was a full disk (recoverable by itself).
    nospace: bool,
    /// The active segment must not be written again (poisoned); roll first.
    abandon_active: bool,
    /// `Interval` mode only: finished segments, oldest first, whose trim and fsync
    /// `Shared::roll` put off to the flusher thread (see `Shared::sync_put_off`); a
    /// group fsync does any still here first, and a roll that finds
    /// [`MAX_PUT_OFF`] here does the oldest itself.
    unsynced: VecDeque<u32>,
    /// `Interval` mode only: segment files created (directory entries) and how many of
    /// those a directory fsync covered when it *finished*; a put-off or group fsync
    /// does it while `dirs_synced < dirs_created`. Counters, not a flag: a flag cleared
    /// when a sync starts would let another sync return while that one still runs.
    dirs_created: u64,
    dirs_synced: u64,
    /// Stopped or deleted.
    closed: bool,
    /// Reused removal buffer.
    scratch: Vec<Removed<Loc>>,
    /// Sequences whose records failed verification after open.
    lost: Vec<u64>,
    /// Point-in-time views that must keep removed messages readable (see `pin`).
    holds: Vec<std::sync::Weak<pin::Hold>>,
}

/// Group-commit coordination.
#[derive(Debug, Default)]
struct Commit {
    /// A leader is writing/fsyncing.
    leader: bool,
    /// Ticket space written to the OS.
    written: u64,
    /// Ticket space fsynced.
    durable: u64,
    /// Poison cause, mirrored from `Inner`.
    poisoned: Option<String>,
    /// The poisoning was a full disk.
    nospace: bool,
    /// Ticket ranges `(from, to]` lost to a poisoning; never reported durable.
    lost: Vec<(u64, u64)>,
}

/// Where a store lives.
#[derive(Debug, Clone)]
struct Paths {
    /// Store directory.
    dir: PathBuf,
    /// `DIR/msgs`.
    msgs_dir: PathBuf,
}

/// A [`Durability`] that [`FileStore::move_dir`] can change while readers check it
/// without a lock: `u64::MAX` is `Always`, any other value `Interval` in nanoseconds.
#[derive(Debug)]
struct DurabilityCell(std::sync::atomic::AtomicU64);

impl DurabilityCell {
    fn encode(d: Durability) -> u64 {
        match d {
            Durability::Interval(i) => u64::try_from(i.as_nanos())
                .unwrap_or(u64::MAX - 1)
                .min(u64::MAX - 1),
            // `open` refuses Memory for a file store.
            Durability::Always | Durability::Memory => u64::MAX,
        }
    }
    fn new(d: Durability) -> Self {
        DurabilityCell(std::sync::atomic::AtomicU64::new(Self::encode(d)))
    }
    fn get(&self) -> Durability {
        match self.0.load(std::sync::atomic::Ordering::Acquire) {
            u64::MAX => Durability::Always,
            n => Durability::Interval(Duration::from_nanos(n)),
        }
    }
    fn set(&self, d: Durability) {
        self.0
            .store(Self::encode(d), std::sync::atomic::Ordering::Release);
    }
}

/// Everything shared with the interval flusher thread.
#[derive(Debug)]
struct Shared {
    /// Store directory and `DIR/msgs`; changed only by [`FileStore::move_dir`]. A leaf
    /// lock: taken briefly (through [`Shared::dir`] and [`Shared::msgs_dir`]) and never
    /// held while taking another.
    paths: RwLock<Paths>,
    /// Durability mode; changed only by [`FileStore::move_dir`], under the `inner` write
    /// lock.
    durability: DurabilityCell,
    /// Segment roll size.
    segment_size: u64,
    /// Write-out threshold.
    write_buffer: usize,
    /// Clock.
    clock: Arc<dyn Clock>,
    /// Index, segments, buffer.
    inner: RwLock<Inner>,
    /// Group commit.
    commit: Mutex<Commit>,
    /// Wakes group-commit followers.
    commit_cv: Condvar,
    /// Flusher stop flag.
    stop: Mutex<bool>,
    /// Wakes the flusher.
    stop_cv: Condvar,
    /// Serializes [`Shared::sync_put_off`] with itself, `try_recover` and `move_dir`.
    /// Taken before `commit` and `inner`, never under them.
    put_off_mu: Mutex<()>,
    /// A roll queued put-off work for the flusher (`Shared::wake_flusher`).
    put_off_due: std::sync::atomic::AtomicBool,
    /// Open consumer stores.
    consumers: Mutex<HashMap<String, Arc<FileConsumerStore>>>,
    /// Serializes stream meta writes.
    meta_mu: Mutex<()>,
    /// Fault injection for tests: 0 none, 1 next segment write fails, 2 next fsync fails.
    fault: std::sync::atomic::AtomicU8,
    /// Writes that succeed before an injected write fault fires (testing).
    fault_skip: std::sync::atomic::AtomicU32,
    /// Group-commit fsyncs done (see [`FileStore::group_fsyncs`]).
    group_fsyncs: std::sync::atomic::AtomicU64,
    /// [`FileStoreOptions::disk_fsyncs`].
    disk_fsyncs: Option<Arc<std::sync::atomic::AtomicU64>>,
    /// When an append last retried recovery from a full disk.
    nospace_retry: Mutex<Option<std::time::Instant>>,
    /// Groups taken back (`append_group`): (last sequence before the group, write-log
    /// position just past the truncate record). A leaf lock. `try_recover` rebuilds the
    /// index from the disk, where part of a failed group may be (a segment roll fsyncs
    /// what came before it) while its truncate record is not; it truncates again then.
    taken_back: Mutex<Vec<(u64, u64)>>,
    /// The directory lock, held until `stop()` (so the stream can be reopened in this
    /// process even while stale references to the stopped store are still alive).
    lock: Mutex<Option<DirLock>>,
    /// The index's bytes gauge (kept across the index rebuilt by `try_recover`).
    bytes: Arc<crate::gauge::BytesGauge>,
}

/// The file-backed stream store. See the module docs.
#[derive(Debug)]
pub struct FileStore {
    /// Shared state.
    sh: Arc<Shared>,
    /// Interval flusher.
    flusher: Mutex<Option<JoinHandle<()>>>,
    /// What recovery did at open.
    report: RecoveryReport,
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |e| StoreError::io(op, path, e)
}

/// Renames `from` to `to`, failing if `to` exists (atomically where the kernel can).
fn rename_no_replace(from: &Path, to: &Path) -> Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::ffi::OsStrExt;
        let cs = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes());
        let (Ok(a), Ok(b)) = (cs(from), cs(to)) else {
            return Err(StoreError::InvalidArgument(format!(
                "path with a NUL byte: {}",
                to.display()
            )));
        };
        // SAFETY: two valid NUL-terminated paths; no memory of ours is kept.
        let rc = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                a.as_ptr(),
                libc::AT_FDCWD,
                b.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        // Filesystems without RENAME_NOREPLACE: check, then rename.
        if e.raw_os_error() != Some(libc::EINVAL) {
            return Err(StoreError::io("rename", to, e));
        }
    }
    if to.exists() {
        return Err(StoreError::io(
            "rename",
            to,
            std::io::Error::from(std::io::ErrorKind::AlreadyExists),
        ));
    }
    fs::rename(from, to).map_err(io_err("rename", to))
}

impl FileStore {
    /// Opens (creating if needed) the store in `dir`. Fails with `Locked` if another
    /// process has it open. The [`RecoveryReport`] says what recovery repaired.
    pub fn open(dir: impl AsRef<Path>, opts: FileStoreOptions) -> Result<FileStore> {
        let dir = dir.as_ref().to_path_buf();
        if !matches!(
            opts.durability,
            Durability::Always | Durability::Interval(_)
        ) {
            return Err(StoreError::InvalidArgument(
                "file store durability must be Always or Interval".into(),
            ));
        }
        let segment_size = opts.segment_size.clamp(4096, 1 << 30);
        // The folder's own entries (`msgs/`, `consumers/`) become durable with the
        // fsync of `store.nmeta`'s rename below, or were already.
        create_dir_durable(&dir)?;
        let lock = DirLock::acquire(&dir)?;
        let msgs_dir = dir.join("msgs");
        fs::create_dir_all(&msgs_dir).map_err(io_err("mkdir", &msgs_dir))?;
        let cons_dir = dir.join("consumers");
        fs::create_dir_all(&cons_dir).map_err(io_err("mkdir", &cons_dir))?;
        let mut report = RecoveryReport::default();
        let fmt = dir.join("store.nmeta");
        match read_meta(&fmt, MetaKind::StoreFormat) {
            Ok(Some(p)) if p == FORMAT_DESC => {}
            Ok(Some(p)) => {
                return Err(StoreError::Corrupt {
                    location: CorruptLocation::File(fmt),
                    detail: format!("unknown format {:?}", String::from_utf8_lossy(&p)),
                });
            }
            Ok(None) => write_meta(&fmt, MetaKind::StoreFormat, FORMAT_DESC)?,
            Err(e @ StoreError::UnsupportedVersion { .. }) => return Err(e),
            Err(e) => {
                report
                    .notes
                    .push(format!("rewrote damaged format file: {e}"));
                write_meta(&fmt, MetaKind::StoreFormat, FORMAT_DESC)?;
            }
        }
        let inner = recover(&msgs_dir, segment_size, &mut report)?;
        let bytes = inner.ix.bytes_gauge();
        let sh = Arc::new(Shared {
            paths: RwLock::new(Paths { dir, msgs_dir }),
            durability: DurabilityCell::new(opts.durability),
            segment_size,
            write_buffer: opts.write_buffer.max(4096),
            clock: opts.clock,
            commit: Mutex::new(Commit {
                written: inner.appended,
                durable: inner.appended,
                ..Default::default()
            }),
            inner: RwLock::new(inner),
            commit_cv: Condvar::new(),
            stop: Mutex::new(false),
            stop_cv: Condvar::new(),
            put_off_mu: Mutex::new(()),
            put_off_due: std::sync::atomic::AtomicBool::new(false),
            consumers: Mutex::new(HashMap::new()),
            meta_mu: Mutex::new(()),
            fault: std::sync::atomic::AtomicU8::new(0),
            fault_skip: std::sync::atomic::AtomicU32::new(0),
            group_fsyncs: std::sync::atomic::AtomicU64::new(0),
            disk_fsyncs: opts.disk_fsyncs,
            nospace_retry: Mutex::new(None),
            taken_back: Mutex::new(Vec::new()),
            lock: Mutex::new(Some(lock)),
            bytes,
        });
        // Apply the limits (a config tightened while closed, or a crash between a message
        // and the removal its limit caused) and persist what that removed.
        {
            let mut g = sh.inner.write();
            let Inner { ix, scratch, .. } = &mut *g;
            scratch.clear();
            ix.update_config(opts.config.clone(), scratch);
            let mut removed = std::mem::take(&mut g.scratch);
            sh.persist_removed(&mut g, &mut removed)?;
            g.scratch = removed;
            sh.write_out(&mut g)?;
            sh.sync_active_locked(&mut g)?;
        }
        let flusher = match sh.durability() {
            Durability::Interval(_) => Some(spawn_flusher(sh.clone())),
            _ => None,
        };
        make_reserve(&sh.dir());
        Ok(FileStore {
            sh,
            flusher: Mutex::new(flusher),
            report,
        })
    }

    /// What recovery found when this store was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// The store directory.
    pub fn dir(&self) -> PathBuf {
        self.sh.dir()
    }

    /// Renames the store's directory to `new_dir` (on the same filesystem, which must
    /// not exist yet) and switches the store to `durability`, without closing it: its
    /// files, index and lock stay as they are.
    ///
    /// Why: a restore fills a hidden staging store (`Interval` durability, synced once
    /// at the end) and then makes it the stream. Stopping it and opening it again at the
    /// final place rescanned every record it had just written and verified — a quarter
    /// of a restore's CPU time. Moved instead, the same open store becomes the stream's.
    ///
    /// Everything written is made durable first (a sync, like `Always` would have done)
    /// and the rename and both parent directories are fsynced before the new path is
    /// used, so after a crash the store is complete at one of the two places. Refused
    /// while a consumer store of this store is open (its files would move under it):
    /// stop them first. On an error before the rename nothing changed; an error after
    /// it (a directory fsync) is returned with the store moved but its durability not
    /// switched.
    pub fn move_dir(&self, new_dir: &Path, durability: Durability) -> Result<()> {
        if !matches!(durability, Durability::Always | Durability::Interval(_)) {
            return Err(StoreError::InvalidArgument(
                "file store durability must be Always or Interval".into(),
            ));
        }
        // Held throughout: one move at a time, and the interval flusher's handle is
        // managed by the move that changed the mode (the flusher never takes it).
        let mut flusher = self.flusher.lock();
        self.sh.sync_all()?;
        // No put-off fsync of the old directory runs across the rename.
        let _put_off = self.sh.put_off_mu.lock();
        // Lock order here: put_off_mu, inner, consumers, meta_mu, paths (each method
        // that derives a path from `dir()` does so under consumers or meta_mu, or under
        // inner).
        let mut g = self.sh.inner.write();
        self.sh.check_open(&g)?;
        // Anything appended between that sync and the lock, too (cheap when nothing).
        self.sh.write_out(&mut g)?;
        self.sh.sync_active_locked(&mut g)?;
        let mut cons = self.sh.consumers.lock();
        if cons.values().any(|c| !c.is_closed()) {
            return Err(StoreError::InvalidArgument(
                "cannot move a store while one of its consumer stores is open".into(),
            ));
        }
        cons.clear();
        let _meta = self.sh.meta_mu.lock();
        let old = self.sh.dir();
        rename_no_replace(&old, new_dir)?;
        let msgs_dir = new_dir.join("msgs");
        // Segments keep their path for unlinking and messages.
        for seg in g.segs.values_mut() {
            if let Some(name) = seg.path.file_name() {
                seg.path = msgs_dir.join(name);
            }
        }
        *self.sh.paths.write() = Paths {
            dir: new_dir.to_path_buf(),
            msgs_dir,
        };
        // The rename is made durable before anything is acknowledged under the new
        // mode: until then an append could be acknowledged in a directory that a crash
        // would bring back under the old name.
        let parent = |p: &Path| {
            p.parent()
                .filter(|q| !q.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf()
        };
        let (new_parent, old_parent) = (parent(new_dir), parent(&old));
        sync_dir(&new_parent)?;
        if old_parent != new_parent {
            sync_dir(&old_parent)?;
        }
        let was = self.sh.durability();
        self.sh.durability.set(durability);
        drop(_meta);
        drop(cons);
        drop(g);
        // Before the flusher is woken and joined below: it may be waiting for this.
        drop(_put_off);
        // An interval flusher ends (or picks up a new interval) once woken; a store
        // that becomes `Interval` gets one. Woken under its lock, so the wake-up cannot
        // fall between its check of the mode and its wait.
        {
            let _stop = self.sh.stop.lock();
            self.sh.stop_cv.notify_all();
        }
        match (was, durability) {
            (Durability::Interval(_), Durability::Interval(_)) => {}
            (Durability::Interval(_), _) => {
                if let Some(h) = flusher.take() {
                    let _ = h.join();
                }
            }
            (_, Durability::Interval(_)) => *flusher = Some(spawn_flusher(self.sh.clone())),
            _ => {}
        }
        Ok(())
    }

    /// The poison cause, if the store is poisoned for writes.
    pub fn poisoned(&self) -> Option<String> {
        self.sh.inner.read().poisoned.clone()
    }

    /// Sequences whose records failed verification on read since open (isolated: they
    /// are no longer in the index).
    pub fn lost_msgs(&self) -> Vec<u64> {
        self.sh.inner.read().lost.clone()
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.sh.inner.read().segs.len()
    }

    /// Leaves the poisoned state once the cause is gone (e.g. space was freed): cuts
    /// every segment back to what was durable, re-reads all segments from disk, and
    /// clears the poison. Tickets that were not durable when the store was poisoned stay
    /// failed. Returns what the re-read found. If anything fails the store stays
    /// poisoned.
    pub fn try_recover(&self) -> Result<RecoveryReport> {
        let sh = &self.sh;
        // No put-off fsync runs outside the lock while the segments are cut and re-read.
        let _put_off = sh.put_off_mu.lock();
        let mut c = sh.commit.lock();
        while c.leader {
            sh.commit_cv.wait(&mut c);
        }
        c.leader = true;
        drop(c);
        let durable = sh.commit.lock().durable;
        let res = (|| {
            let mut g = sh.inner.write();
            if g.closed {
                return Err(StoreError::Closed);
            }
            let Some(cause) = g.poisoned.clone() else {
                return Ok((RecoveryReport::default(), None));
            };
            let keep_written = !matches!(sh.durability(), Durability::Always);
            // Groups taken back whose truncate record is not kept by the cut below.
            let on_disk = if keep_written {
                g.appended - g.buf.len() as u64
            } else {
                durable
            };
            let take_back = {
                let mut t = sh.taken_back.lock();
                let to = t
                    .iter()
                    .filter(|(_, end)| *end > on_disk)
                    .map(|(b, _)| *b)
                    .min();
                t.clear();
                to
            };
            for s in g.segs.values() {
                let cut = if keep_written { s.written } else { s.durable };
                let cur = s.file.metadata().map_err(io_err("stat", &s.path))?.len();
                if cur > cut {
                    s.file.set_len(cut).map_err(io_err("truncate", &s.path))?;
                }
                s.file.sync_all().map_err(io_err("fsync", &s.path))?;
            }
            let mut report = RecoveryReport::default();
            report.notes.push(format!("recovering from: {cause}"));
            let cfg = g.ix.config().clone();
            let mut fresh = recover(&sh.msgs_dir(), sh.segment_size, &mut report)?;
            let old_appended = g.appended;
            fresh.appended = old_appended + 1;
            if let Some(before) = take_back
                && fresh.ix.last_seq() > before
            {
                report.notes.push(format!(
                    "took back a failed group append again: sequences after {before}"
                ));
                sh.truncate_locked(&mut fresh, before)?;
            }
            let mut removed = Vec::new();
            fresh.ix.update_config(cfg, &mut removed);
            sh.persist_removed(&mut fresh, &mut removed)?;
            sh.write_out(&mut fresh)?;
            sh.sync_active_locked(&mut fresh)?;
            let new_lsn = fresh.appended;
            fresh.ix.adopt_gauge(sh.bytes.clone());
            *g = fresh;
            Ok((report, Some((old_appended, new_lsn))))
        })();
        let mut c = sh.commit.lock();
        c.leader = false;
        let out = match res {
            Ok((report, Some((old_appended, new_lsn)))) => {
                let from = c.durable;
                c.lost.push((from, old_appended));
                c.written = new_lsn;
                c.durable = new_lsn;
                c.poisoned = None;
                c.nospace = false;
                Ok(report)
            }
            Ok((report, None)) => Ok(report),
            Err(e) => Err(e),
        };
        sh.commit_cv.notify_all();
        out
    }

    fn sh(&self) -> &Shared {
        &self.sh
    }

    /// After a full disk: retry the recovery (at most every [`NOSPACE_RETRY`]) so that
    /// appends resume by themselves once space is free.
    fn retry_after_no_space(&self) {
        if !self.sh.inner.read().nospace {
            return;
        }
        {
            let mut last = self.sh.nospace_retry.lock();
            let now = std::time::Instant::now();
            if last.is_some_and(|t| now.duration_since(t) < NOSPACE_RETRY) {
                return;
            }
            *last = Some(now);
        }
        if self.try_recover().is_ok() && free_space(&self.sh.dir()) >= 4 * SPACE_RESERVE {
            make_reserve(&self.sh.dir());
        }
    }

    /// How many fsyncs group-commit leaders have done since open: one covers every
    /// append made before it started, however many writers wait on it (for tests and
    /// diagnostics).
    pub fn group_fsyncs(&self) -> u64 {
        self.sh
            .group_fsyncs
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether the store is refusing appends because the disk was full.
    pub fn is_out_of_space(&self) -> bool {
        self.sh.inner.read().nospace
    }

    /// Makes the next segment write or fsync fail (testing the poisoning path).
    #[cfg(feature = "testing")]
    pub fn inject_fault(&self, fault: InjectedFault) {
        let (v, skip) = match fault {
            InjectedFault::Write => (FAULT_WRITE, 0),
            InjectedFault::WriteAfter(n) => (FAULT_WRITE, n),
            InjectedFault::Fsync => (FAULT_FSYNC, 0),
        };
        self.sh
            .fault_skip
            .store(skip, std::sync::atomic::Ordering::SeqCst);
        self.sh.fault.store(v, std::sync::atomic::Ordering::SeqCst);
    }
}

fn spawn_flusher(sh: Arc<Shared>) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("natrium-store-flush".into())
        .spawn(move || {
            let mut last_full = std::time::Instant::now();
            loop {
                let full = {
                    // The interval is read each time, under the lock `move_dir` wakes
                    // this thread with after changing it: it may end `Interval` (then
                    // this thread ends) or change the interval. A roll wakes it for the
                    // put-off work alone (`Shared::wake_flusher`).
                    let mut stop = sh.stop.lock();
                    loop {
                        let Durability::Interval(every) = sh.durability() else {
                            return;
                        };
                        if *stop {
                            return;
                        }
                        // The interval first: a writer that rolls faster than the
                        // put-off work finishes must not starve the full sync (of the
                        // active segment and the consumers), which does that work too.
                        let due = last_full + every;
                        if std::time::Instant::now() >= due {
                            sh.put_off_due
                                .store(false, std::sync::atomic::Ordering::Release);
                            break true;
                        }
                        if sh
                            .put_off_due
                            .swap(false, std::sync::atomic::Ordering::AcqRel)
                        {
                            break false;
                        }
                        sh.stop_cv.wait_until(&mut stop, due);
                    }
                };
                if !full {
                    // Errors poison the store; the next append reports them.
                    let _ = sh.sync_put_off();
                    continue;
                }
                last_full = std::time::Instant::now();
                // Errors poison the store; the next append reports them.
                let _ = sh.sync_all();
                let cons: Vec<_> = sh.consumers.lock().values().cloned().collect();
                for c in cons {
                    let _ = c.sync();
                }
            }
        })
        .unwrap_or_else(|e| panic!("cannot spawn flusher thread: {e}"))
}

/// Rebuilds the in-memory state from the segment files.
fn recover(msgs_dir: &Path, segment_size: u64, report: &mut RecoveryReport) -> Result<Inner> {
    let mut names = Vec::new();
    for ent in fs::read_dir(msgs_dir).map_err(io_err("readdir", msgs_dir))? {
        let ent = ent.map_err(io_err("readdir", msgs_dir))?;
        let name = ent.file_name().to_string_lossy().into_owned();
        let path = ent.path();
        if let Some((id, base)) = parse_seg_name(&name) {
            names.push((id, base, path));
        } else if name.ends_with(".tmp") {
            fs::remove_file(&path).map_err(io_err("unlink", &path))?;
            report.removed_files.push(path);
        } else {
            report.notes.push(format!("ignored unexpected file {name}"));
        }
    }
    names.sort();
    let last_id = names.last().map(|n| n.0);
    let mut ix: StreamIndex<Loc> = StreamIndex::new(StoreConfig::default(), file_msg_size);
    let mut segs: BTreeMap<u32, Segment> = BTreeMap::new();
    let mut removed: Vec<Removed<Loc>> = Vec::new();
    let mut floor_written = 0u64;
    for (id, base, path) in names {
        let file = Arc::new(
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(io_err("open", &path))?,
        );
        ix.bump_last_seq(base.saturating_sub(1));
        segs.insert(
            id,
            Segment {
                id,
                base,
                path: path.clone(),
                file: file.clone(),
                len: 0,
                written: 0,
                durable: 0,
                allocated: 0,
                kicked: 0,
                no_prealloc: false,
                live: 0,
            },
        );
        let mut bad: Vec<CorruptRegion> = Vec::new();
        let outcome = segment::scan(&path, &file, |off, h, rec| {
            report.records += 1;
            let dec = |removed: &mut Vec<Removed<Loc>>, segs: &mut BTreeMap<u32, Segment>| {
                for (_, e) in removed.drain(..) {
                    if let Some(s) = segs.get_mut(&e.data.seg) {
                        s.live = s.live.saturating_sub(1);
                    }
                }
            };
            match h.kind {
                Kind::Msg => {
                    if h.seq <= ix.last_seq() {
                        bad.push(CorruptRegion {
                            path: path.clone(),
                            offset: off,
                            len: u64::from(h.len),
                            seq: Some(h.seq),
                            detail: format!(
                                "message sequence {} not after last sequence {}",
                                h.seq,
                                ix.last_seq()
                            ),
                        });
                        return;
                    }
                    let s_end = record::HDR_LEN + h.subj_len as usize;
                    let Ok(subj) = std::str::from_utf8(&rec[record::HDR_LEN..s_end]) else {
                        bad.push(CorruptRegion {
                            path: path.clone(),
                            offset: off,
                            len: u64::from(h.len),
                            seq: Some(h.seq),
                            detail: "subject is not UTF-8".into(),
                        });
                        return;
                    };
                    if h.seq > ix.last_seq() + 1 {
                        let from = ix.last_seq() + 1;
                        ix.skip(from, h.seq - from);
                    }
                    let size =
                        file_msg_size(h.subj_len as usize, h.hdr_len as usize, h.payload_len());
                    ix.insert(
                        h.seq,
                        h.ts,
                        subj,
                        h.aux,
                        size,
                        Loc {
                            seg: id,
                            off: off as u32,
                            len: h.len,
                        },
                        &mut removed,
                    );
                    if let Some(s) = segs.get_mut(&id) {
                        s.live += 1;
                    }
                    dec(&mut removed, &mut segs);
                }
                Kind::Erased => {
                    ix.bump_last_seq(h.seq);
                    if let Some(e) = ix.remove(h.seq) {
                        removed.push((h.seq, e));
                        dec(&mut removed, &mut segs);
                    }
                }
                Kind::Tombstone => {
                    if let Some(e) = ix.remove(h.seq) {
                        removed.push((h.seq, e));
                        dec(&mut removed, &mut segs);
                    }
                }
                Kind::Skip => {
                    let n = u64::try_from(h.aux).unwrap_or(0);
                    ix.skip(h.seq, n);
                    // A skip for lack of interest sets the time; one of a mirror's gaps is
                    // followed by its next copy, whose own time then wins.
                    ix.note_skip_time(h.ts, true);
                }
                Kind::Floor => {
                    ix.bump_last_seq(h.seq.saturating_sub(1));
                    ix.bump_last_ts(h.ts);
                }
                Kind::Truncate => {
                    ix.truncate(h.seq, &mut removed);
                    dec(&mut removed, &mut segs);
                }
            }
            if h.floor > ix.first_seq() {
                ix.compact(h.floor, &mut removed);
                dec(&mut removed, &mut segs);
            }
            floor_written = floor_written.max(h.floor);
        })?;
        report.segments += 1;
        report.corrupt.extend(bad);
        report.corrupt.extend(outcome.corrupt.iter().cloned());
        if let Some(p) = &outcome.header_problem {
            report.notes.push(format!("{}: {p}", path.display()));
        }
        if outcome.valid_end == 0 && outcome.zero_tail > 0 && Some(id) != last_id {
            // The last segment may be one just created; an older one had records.
            report.notes.push(format!(
                "{}: all zeros, header included (its writes never reached the disk)",
                path.display()
            ));
        }
        let mut end = outcome.valid_end;
        if let Some(t) = outcome.truncated {
            file.set_len(end).map_err(io_err("truncate", &path))?;
            report.truncated.push(t);
        } else if outcome.zero_tail > 0 {
            // Preallocated and never written: not damage, nothing dropped.
            file.set_len(end).map_err(io_err("truncate", &path))?;
        }
        if end < SEG_HDR_LEN {
            file.set_len(0).map_err(io_err("truncate", &path))?;
            file.write_all_at(&seg_header(base), 0)
                .map_err(io_err("write", &path))?;
            end = SEG_HDR_LEN;
        } else if outcome.header_lost {
            // The name holds the base: the header is known, only its write was lost.
            file.write_all_at(&seg_header(base), 0)
                .map_err(io_err("write", &path))?;
            report.notes.push(format!(
                "{}: header was zeros before intact records (its write was lost); written again from the file name",
                path.display()
            ));
        }
        // Whatever a crashed process left in the page cache becomes durable now, before
        // anything is served from it.
        file.sync_all().map_err(io_err("fsync", &path))?;
        if let Some(s) = segs.get_mut(&id) {
            s.len = end;
            s.written = end;
            s.durable = end;
            s.allocated = end;
            s.kicked = end;
        }
    }
    let next_id = segs.keys().next_back().map(|k| k + 1).unwrap_or(1);
    let active = segs.keys().next_back().copied().unwrap_or(0);
    let mut inner = Inner {
        visible: ix.last_seq(),
        ix,
        segs,
        active,
        next_id,
        buf: Vec::new(),
        appended: 0,
        floor_written,
        poisoned: None,
        nospace: false,
        abandon_active: false,
        unsynced: VecDeque::new(),
        dirs_created: 0,
        dirs_synced: 0,
        closed: false,
        scratch: Vec::new(),
        lost: Vec::new(),
        holds: Vec::new(),
    };
    // Start a fresh segment if there is none, or the last one is full or suspicious.
    let reuse = inner.segs.get(&active).is_some_and(|s| {
        s.len < segment_size
            && !report.corrupt.iter().any(|c| c.path == s.path)
            && !report
                .notes
                .iter()
                .any(|n| n.starts_with(&s.path.display().to_string()))
    });
    if !reuse {
        roll_new(msgs_dir, &mut inner, true)?;
    } else {
        // A reused segment's entry may never have been fsynced (an `Interval` roll puts
        // that off), nor the removal of `.tmp` files: appends acknowledged from here on
        // must not depend on either.
        sync_dir(msgs_dir)?;
    }
    report.msgs = inner.ix.msgs();
    report.last_seq = inner.ix.last_seq();
    drop_dead_front(&mut inner);
    Ok(inner)
}

/// Creates a new active segment (the caller has written/synced or abandoned the old).
///
/// With `sync_now` (`Always` mode, recovery, stop) the old segment is trimmed, and the
/// directory entry and the new segment's header are fsynced here. Without it
/// (`Interval` mode) all three are left for later, off the writer's path: the old
/// segment was queued for a put-off trim and fsync (`Inner::unsynced`), the directory
/// entry is fsynced by the next put-off or group fsync (`Inner::dirs_created`), and the
/// header by the first fsync of the new segment itself. Nothing in it is promised
/// before that fsync, and recovery rewrites a header that never reached the disk.
fn roll_new(msgs_dir: &Path, g: &mut Inner, sync_now: bool) -> Result<()> {
    // The finished segment keeps only what was written (an abandoned one is left to
    // recovery, which cuts its zeros too).
    if sync_now && !g.abandon_active {
        let active = g.active;
        if let Some(s) = g.segs.get_mut(&active) {
            segment::trim(s);
        }
    }
    let id = g.next_id;
    let base = g.ix.last_seq() + 1;
    let path = msgs_dir.join(seg_name(id, base));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io_err("create", &path))?;
    g.next_id += 1;
    // The name alone records `base`; make the entry durable before relying on it.
    if sync_now {
        sync_dir(msgs_dir)?;
    } else {
        g.dirs_created += 1;
    }
    if let Err(e) = file.write_all_at(&seg_header(base), 0) {
        // A full disk: leave no header-less segment behind.
        drop(file);
        let _ = fs::remove_file(&path);
        return Err(StoreError::io("write", &path, e));
    }
    if sync_now {
        file.sync_data().map_err(io_err("fsync", &path))?;
    }
    g.segs.insert(
        id,
        Segment {
            id,
            base,
            path,
            file: Arc::new(file),
            len: SEG_HDR_LEN,
            written: SEG_HDR_LEN,
            // Under `Interval` the header is not durable until the segment's first fsync.
            durable: if sync_now { SEG_HDR_LEN } else { 0 },
            allocated: SEG_HDR_LEN,
            kicked: SEG_HDR_LEN,
            no_prealloc: false,
            live: 0,
        },
    );
    g.active = id;
    g.abandon_active = false;
    Ok(())
}

/// A verified message record as a message.
fn decode_msg(rec: Vec<u8>, seq: u64) -> Result<StoredMsg> {
    let len = rec.len();
    stored_msg(&Bytes::from(rec), 0..len, seq).map_err(|d| StoreError::Corrupt {
        location: CorruptLocation::Seq(seq),
        detail: d.to_string(),
    })
}

/// The message in a message record of `seq` that already passed
/// [`segment::verify_full`], borrowed from it, and its TTL; `Err` says why it is not
/// one. The one place record layout is read for every load path.
fn msg_parts(rec: &[u8], seq: u64) -> std::result::Result<(MsgRef<'_>, Option<Ttl>), &'static str> {
    let h = record::decode_header(rec).map_err(|_| "bad header")?;
    if h.kind != Kind::Msg || h.seq != seq {
        return Err("record does not hold this sequence");
    }
    let s_end = record::HDR_LEN + h.subj_len as usize;
    let h_end = s_end + h.hdr_len as usize;
    let p_end = rec.len().saturating_sub(4);
    if h_end > p_end {
        return Err("record lengths do not fit");
    }
    let subject =
        std::str::from_utf8(&rec[record::HDR_LEN..s_end]).map_err(|_| "subject is not UTF-8")?;
    let m = MsgRef {
        seq,
        ts: h.ts,
        subject,
        hdrs: &rec[s_end..h_end],
        payload: &rec[h_end..p_end],
    };
    Ok((m, Ttl::decode(h.aux)))
}

/// The verified message record of `seq` at `buf[range]` as a message whose header and
/// payload share `buf`.
fn stored_msg(
    buf: &Bytes,
    range: std::ops::Range<usize>,
    seq: u64,
) -> std::result::Result<StoredMsg, &'static str> {
    let rec = buf.get(range).ok_or("record lengths do not fit")?;
    let (m, ttl) = msg_parts(rec, seq)?;
    Ok(StoredMsg {
        seq,
        ts: m.ts,
        subject: m.subject.to_string(),
        hdrs: buf.slice_ref(m.hdrs),
        payload: buf.slice_ref(m.payload),
        ttl,
    })
}

/// Deletes fully dead segments from the front (oldest first), never the active one.
fn drop_dead_front(g: &mut Inner) {
    while let Some((&id, s)) = g.segs.iter().next() {
        if id == g.active || s.live > 0 {
            break;
        }
        // Unlink failures leave a dead segment behind; replay handles it.
        let _ = fs::remove_file(&s.path);
        g.segs.remove(&id);
    }
}

/// How many finished segments an `Interval` store lets wait for their put-off fsync
/// (`Shared::roll`) before the writer does the oldest itself: 64 MiB of segments at the
/// default size, a few tenths of a second of this machine's disk writes.
const MAX_PUT_OFF: usize = 4;

/// Injected fault: the next segment write fails.
const FAULT_WRITE: u8 = 1;
/// Injected fault: the next segment fsync fails.
const FAULT_FSYNC: u8 = 2;

/// A failure to inject into the next segment I/O (tests of the poisoning path).
#[cfg(feature = "testing")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectedFault {
    /// The next `pwrite` of buffered records fails with ENOSPC.
    Write,
    /// The `pwrite` after this many more succeed fails with ENOSPC.
    WriteAfter(u32),
    /// The next fsync of a segment fails with EIO.
    Fsync,
}

impl Shared {
    /// The store directory.
    fn dir(&self) -> PathBuf {
        self.paths.read().dir.clone()
    }

    /// `DIR/msgs`.
    fn msgs_dir(&self) -> PathBuf {
        self.paths.read().msgs_dir.clone()
    }

    /// The durability mode in force.
    fn durability(&self) -> Durability {
        self.durability.get()
    }

    /// Consumes an injected fault of `kind`, returning the error it simulates.
    fn take_fault(&self, kind: u8) -> std::io::Result<()> {
        use std::sync::atomic::Ordering;
        if self.fault.load(Ordering::Relaxed) == kind
            && self
                .fault_skip
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_err()
            && self
                .fault
                .compare_exchange(kind, 0, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            let code = if kind == FAULT_WRITE {
                libc::ENOSPC
            } else {
                libc::EIO
            };
            return Err(std::io::Error::from_raw_os_error(code));
        }
        Ok(())
    }

    /// Poisons the store (first cause wins) and drops non-durable messages from the index.
    fn poison(&self, g: &mut Inner, cause: String) -> StoreError {
        self.poison_as(g, cause, false)
    }

    /// Poisons the store; `nospace` marks a full disk, which appends recover from by
    /// themselves (see the module docs). The reserve file is released then.
    fn poison_as(&self, g: &mut Inner, cause: String, nospace: bool) -> StoreError {
        if g.poisoned.is_none() {
            g.nospace = nospace;
            if nospace {
                let _ = fs::remove_file(self.dir().join(RESERVE_NAME));
            }
            g.poisoned = Some(cause.clone());
            g.abandon_active = true;
            g.buf.clear();
            let keep_written = !matches!(self.durability(), Durability::Always);
            let active = g.active;
            let limit = g
                .segs
                .get(&active)
                .map(|s| if keep_written { s.written } else { s.durable })
                .unwrap_or(0);
            let victims: Vec<u64> =
                g.ix.range(..)
                    .rev()
                    .take_while(|(_, e)| e.data.seg == active)
                    .filter(|(_, e)| u64::from(e.data.off) + u64::from(e.data.len) > limit)
                    .map(|(k, _)| *k)
                    .collect();
            for seq in victims {
                if let Some(e) = g.ix.remove(seq)
                    && let Some(s) = g.segs.get_mut(&e.data.seg)
                {
                    s.live = s.live.saturating_sub(1);
                }
            }
            if let Some(s) = g.segs.get_mut(&active) {
                s.len = s.written;
            }
            let mut c = self.commit.lock();
            c.poisoned = Some(cause.clone());
            c.nospace = nospace;
            drop(c);
            self.commit_cv.notify_all();
        }
        if g.nospace {
            StoreError::NoSpace {
                cause: g.poisoned.clone().unwrap_or(cause),
            }
        } else {
            StoreError::Poisoned { cause }
        }
    }

    fn check_open(&self, g: &Inner) -> Result<()> {
        if g.closed {
            return Err(StoreError::Closed);
        }
        Ok(())
    }

    fn check_appendable(&self, g: &Inner) -> Result<()> {
        self.check_open(g)?;
        if let Some(cause) = &g.poisoned {
            if g.nospace {
                return Err(StoreError::NoSpace {
                    cause: cause.clone(),
                });
            }
            return Err(StoreError::Poisoned {
                cause: cause.clone(),
            });
        }
        Ok(())
    }

    /// Writes the buffer to the active segment (one pwrite).
    fn write_out(&self, g: &mut Inner) -> Result<()> {
        if g.buf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut g.buf);
        let active = g.active;
        if let Some(s) = g.segs.get_mut(&active) {
            segment::preallocate(s, buf.len() as u64, self.segment_size);
        }
        let res = match g.segs.get(&active) {
            Some(s) => self
                .take_fault(FAULT_WRITE)
                .and_then(|()| s.file.write_all_at(&buf, s.written))
                .map_err(|e| {
                    let full = is_no_space(&e);
                    if full {
                        // Roll the partial write back now: it frees the space it took,
                        // and nothing past `written` was ever acknowledged.
                        let _ = s.file.set_len(s.written);
                    }
                    (format!("write {}: {e}", s.path.display()), full)
                }),
            None => Err(("no active segment".to_string(), false)),
        };
        let res = match res {
            Ok(()) => Ok(()),
            Err((cause, true)) => {
                // The rollback above cut the file (and any preallocation) to `written`.
                if let Some(s) = g.segs.get_mut(&active) {
                    s.allocated = s.written;
                }
                return Err(self.poison_as(g, cause, true));
            }
            Err((cause, false)) => Err(cause),
        };
        match res {
            Ok(()) => {
                let interval = matches!(self.durability(), Durability::Interval(_));
                if let Some(s) = g.segs.get_mut(&active) {
                    s.written += buf.len() as u64;
                    s.allocated = s.allocated.max(s.written);
                    if interval {
                        segment::start_writeback(s, false);
                    }
                }
                let mut buf = buf;
                buf.clear();
                g.buf = buf;
                Ok(())
            }
            Err(cause) => Err(self.poison(g, cause)),
        }
    }

    /// Does what `roll` put off and the flusher has not done yet (under the lock):
    /// the directory entries, then each queued segment's trim and fsync, oldest first.
    fn sync_unsynced_locked(&self, g: &mut Inner) -> Result<()> {
        if g.dirs_synced < g.dirs_created {
            if let Err(e) = sync_dir(&self.msgs_dir()) {
                return Err(self.poison(g, e.to_string()));
            }
            g.dirs_synced = g.dirs_created;
        }
        while let Some(&id) = g.unsynced.front() {
            self.sync_put_off_locked(g, id)?;
        }
        Ok(())
    }

    /// Trims and fsyncs the oldest put-off segment `id` inline (under the lock).
    fn sync_put_off_locked(&self, g: &mut Inner, id: u32) -> Result<()> {
        if let Some(s) = g.segs.get_mut(&id) {
            segment::trim(s);
        }
        self.sync_segment_locked(g, id)?;
        if g.unsynced.front() == Some(&id) {
            g.unsynced.pop_front();
        }
        Ok(())
    }

    /// The flusher's half of `roll`'s put-off work, done outside the lock so that the
    /// writer (a restore's importer, an `Interval` publisher) never waits for it: the
    /// directory entries, then each queued segment's trim and fsync, oldest first, and
    /// only then is each marked durable and dequeued (so durable stays a prefix). A
    /// failure poisons the store, as every failed fsync does.
    ///
    /// Serialized by `put_off_mu` with itself, with [`FileStore::try_recover`] (which
    /// cuts and rebuilds what this works on) and with [`FileStore::move_dir`] (which
    /// renames the directory this fsyncs).
    fn sync_put_off(&self) -> Result<()> {
        let _serial = self.put_off_mu.lock();
        let (todo, dirs) = {
            let mut g = self.inner.write();
            if g.poisoned.is_some() || g.closed {
                return Ok(());
            }
            // A segment that died meanwhile (unlinked) needs no fsync.
            let Inner { unsynced, segs, .. } = &mut *g;
            unsynced.retain(|id| segs.contains_key(id));
            let todo: Vec<(u32, Arc<fs::File>, u64, u64, PathBuf)> = g
                .unsynced
                .iter()
                .filter_map(|id| {
                    let s = g.segs.get(id)?;
                    Some((*id, s.file.clone(), s.written, s.allocated, s.path.clone()))
                })
                .collect();
            let dirs = (g.dirs_synced < g.dirs_created).then_some(g.dirs_created);
            (todo, dirs)
        };
        if let Some(created) = dirs {
            let res = sync_dir(&self.msgs_dir());
            let mut g = self.inner.write();
            if let Err(e) = res {
                return Err(self.poison(&mut g, e.to_string()));
            }
            // Only what existed when this sync started is covered.
            g.dirs_synced = g.dirs_synced.max(created);
        }
        for (id, file, written, allocated, path) in todo {
            // A finished segment is never written again: its length can be cut and
            // its bytes fsynced without the lock. (Best effort, as `segment::trim`:
            // recovery reads preallocated zeros as the clean end.)
            let trimmed = allocated > written && file.set_len(written).is_ok();
            let res = self.take_fault(FAULT_FSYNC).and_then(|()| file.sync_data());
            let mut g = self.inner.write();
            if let Err(e) = res {
                // Even if the store was poisoned meanwhile: this failure is its own.
                return Err(self.poison(&mut g, format!("fsync {}: {e}", path.display())));
            }
            if g.poisoned.is_some() {
                return Ok(());
            }
            if let Some(s) = g.segs.get_mut(&id) {
                s.durable = s.durable.max(written);
                if trimmed {
                    s.allocated = s.allocated.min(written);
                }
            }
            if g.unsynced.front() == Some(&id) {
                g.unsynced.pop_front();
            }
        }
        Ok(())
    }

    /// fsyncs segment `id` (under the lock; one that is gone needs none); a failure
    /// poisons.
    fn sync_segment_locked(&self, g: &mut Inner, id: u32) -> Result<()> {
        let res = match g.segs.get(&id) {
            Some(s) => self
                .take_fault(FAULT_FSYNC)
                .and_then(|()| s.file.sync_data())
                .map_err(|e| format!("fsync {}: {e}", s.path.display())),
            None => Ok(()),
        };
        match res {
            Ok(()) => {
                if let Some(s) = g.segs.get_mut(&id) {
                    s.durable = s.written;
                }
                Ok(())
            }
            Err(cause) => Err(self.poison(g, cause)),
        }
    }

    /// fsyncs the active segment inline (under the lock); used by rare paths.
    fn sync_active_locked(&self, g: &mut Inner) -> Result<()> {
        // Older segments first, so what is durable stays a prefix.
        self.sync_unsynced_locked(g)?;
        let active = g.active;
        self.sync_segment_locked(g, active)?;
        if g.buf.is_empty() {
            g.visible = g.visible.max(g.ix.last_seq());
        }
        Ok(())
    }

    /// Finishes the active segment and starts a new one.
    ///
    /// `Always` fsyncs the finished segment here. `Interval` promises nothing until its
    /// next sync, so the writer does not wait for the disk at a roll: the finished
    /// segment's writeback is started and its trim and fsync are queued for the flusher
    /// thread (`sync_put_off`), as is the directory's; the new segment's header becomes
    /// durable with that segment's own first fsync (`roll_new`). A bulk writer (a
    /// restore's staging store) no longer stops for three fsyncs and a truncate at every
    /// roll (~30 ms per 16 MiB, measured). Segments still become durable in order, a
    /// group fsync (`lead`) first does whatever is still queued, and a roll that finds
    /// [`MAX_PUT_OFF`] segments queued (a flusher behind a slow disk) does the oldest
    /// itself, which bounds how far the writer runs ahead of the disk.
    fn roll(&self, g: &mut Inner) -> Result<()> {
        let interval = matches!(self.durability(), Durability::Interval(_));
        if !g.abandon_active && interval {
            self.write_out(g)?;
            let active = g.active;
            if let Some(s) = g.segs.get_mut(&active) {
                segment::start_writeback(s, true);
            }
            g.unsynced.push_back(active);
            while g.unsynced.len() > MAX_PUT_OFF
                && let Some(&oldest) = g.unsynced.front()
            {
                self.sync_put_off_locked(g, oldest)?;
            }
            self.wake_flusher();
        } else if !g.abandon_active {
            self.write_out(g)?;
            self.sync_active_locked(g)?;
        } else {
            g.buf.clear();
        }
        let r = roll_new(&self.msgs_dir(), g, !interval);
        if let Err(e) = r {
            if g.poisoned.is_none() {
                // Only a failed create/write is a full disk; a failed fsync poisons.
                let full = matches!(&e, StoreError::Io { op, source, .. }
                    if matches!(*op, "create" | "write") && is_no_space(source));
                return Err(self.poison_as(g, e.to_string(), full));
            }
            return Err(e);
        }
        Ok(())
    }

    /// Asks the flusher thread for the put-off work (`sync_put_off`) now. Set under the
    /// flusher's lock, so the request cannot fall between its check and its wait.
    fn wake_flusher(&self) {
        let _stop = self.stop.lock();
        self.put_off_due
            .store(true, std::sync::atomic::Ordering::Release);
        self.stop_cv.notify_all();
    }

    /// Reserves room for a record of `len` bytes; returns (segment, offset).
    fn reserve(&self, g: &mut Inner, len: usize) -> Result<(u32, u64)> {
        let need_roll = g.abandon_active
            || g.segs
                .get(&g.active)
                .is_none_or(|s| s.len > SEG_HDR_LEN && s.len + len as u64 > self.segment_size);
        if need_roll {
            self.roll(g)?;
        }
        let off = g.segs.get(&g.active).map(|s| s.len).unwrap_or(SEG_HDR_LEN);
        Ok((g.active, off))
    }

    /// Encodes a record at the tail of the active segment (after `reserve`).
    fn put(&self, g: &mut Inner, f: &RecordFields<'_>) -> Result<()> {
        let before = g.buf.len();
        record::encode(&mut g.buf, f);
        let n = (g.buf.len() - before) as u64;
        g.appended += n;
        g.floor_written = g.floor_written.max(f.floor);
        let active = g.active;
        if let Some(s) = g.segs.get_mut(&active) {
            s.len += n;
        }
        if g.buf.len() >= self.write_buffer {
            self.write_out(g)?;
        }
        Ok(())
    }

    /// Appends a control record (no message body).
    fn put_control(&self, g: &mut Inner, kind: Kind, seq: u64, aux: i64) -> Result<()> {
        self.reserve(g, record::OVERHEAD)?;
        let floor = g.ix.first_seq();
        // A FLOOR record carries the last message's time: once a purge has removed the
        // messages, it is the only record left to say when the stream last stored one
        // (nats-server keeps `last_ts` across a restart of a purged stream).
        let ts = match kind {
            Kind::Floor if g.ix.last_ts() > 0 => g.ix.last_ts(),
            _ => self.clock.now(),
        };
        self.put(
            g,
            &RecordFields {
                kind,
                seq,
                ts,
                aux,
                floor,
                subj: &[],
                hdrs: &[],
                payload: &[],
            },
        )
    }

    /// Persists removals: segment live counts, tombstones for removals above the new
    /// floor, a FLOOR record if the floor moved and no record carried it yet, and deletes
    /// dead segments.
    fn persist_removed(&self, g: &mut Inner, removed: &mut Vec<Removed<Loc>>) -> Result<()> {
        pin::note_removed(g, removed);
        for (_, e) in removed.iter() {
            if let Some(s) = g.segs.get_mut(&e.data.seg) {
                s.live = s.live.saturating_sub(1);
            }
        }
        let floor = g.ix.first_seq();
        let mut res = Ok(());
        for (seq, _) in removed.iter() {
            if *seq >= floor
                && let Err(e) = self.put_control(g, Kind::Tombstone, *seq, 0)
            {
                res = Err(e);
                break;
            }
        }
        removed.clear();
        res?;
        if floor > g.floor_written {
            self.put_control(g, Kind::Floor, floor, 0)?;
        }
        drop_dead_front(g);
        Ok(())
    }

    /// Removes every message above `seq` from the index and records that (lock held).
    fn truncate_locked(&self, g: &mut Inner, seq: u64) -> Result<()> {
        let mut removed = Vec::new();
        g.ix.truncate(seq, &mut removed);
        for (_, e) in removed.drain(..) {
            if let Some(s) = g.segs.get_mut(&e.data.seg) {
                s.live = s.live.saturating_sub(1);
            }
        }
        g.floor_written = g.floor_written.min(g.ix.first_seq());
        self.put_control(g, Kind::Truncate, seq, 0)?;
        g.visible = g.visible.min(seq);
        drop_dead_front(g);
        Ok(())
    }

    /// Takes back a group whose append failed part way (`append_group`): the index
    /// forgets it at once, so nothing of it is read; the truncate record follows it to
    /// the disk where the disk still takes writes. Where it does not (the store is
    /// poisoned by then), the group never became durable as a whole and recovery drops
    /// a torn group (`StreamStore::append_group`'s callers mark their last message).
    fn take_back_locked(&self, g: &mut Inner, before: u64) {
        if g.ix.last_seq() <= before {
            return;
        }
        // A failed record write poisons the store, which then reports the cause on
        // every later call; the index has forgotten the group either way, and
        // `try_recover` takes it back again if the record did not reach the disk.
        let end = match self.truncate_locked(g, before) {
            Ok(()) => g.appended,
            Err(_) => u64::MAX,
        };
        self.taken_back.lock().push((before, end));
    }

    /// Appends a message record and updates the index (lock held, checks done).
    #[allow(clippy::too_many_arguments)]
    fn append_locked(
        &self,
        g: &mut Inner,
        seq: u64,
        ts: i64,
        subject: &str,
        hdrs: &[u8],
        payload: &[u8],
        ttl: i64,
    ) -> Result<()> {
        let len = record::record_len(subject.len(), hdrs.len(), payload.len());
        let (seg, off) = self.reserve(g, len)?;
        let size = file_msg_size(subject.len(), hdrs.len(), payload.len());
        let mut removed = std::mem::take(&mut g.scratch);
        removed.clear();
        g.ix.insert(
            seq,
            ts,
            subject,
            ttl,
            size,
            Loc {
                seg,
                off: off as u32,
                len: len as u32,
            },
            &mut removed,
        );
        if let Some(s) = g.segs.get_mut(&seg) {
            s.live += 1;
        }
        let floor = g.ix.first_seq();
        let r = self.put(
            g,
            &RecordFields {
                kind: Kind::Msg,
                seq,
                ts,
                aux: ttl,
                floor,
                subj: subject.as_bytes(),
                hdrs,
                payload,
            },
        );
        let r2 = self.persist_removed(g, &mut removed);
        g.scratch = removed;
        if matches!(self.durability(), Durability::Interval(_)) {
            g.visible = g.ix.last_seq();
        }
        r.and(r2)
    }

    fn validate_msg(subject: &str, hdrs: &[u8], payload: &[u8]) -> Result<()> {
        validate_subject(subject)?;
        let size = (hdrs.len() + payload.len()) as u64;
        if size > HARD_MAX_MSG_SIZE {
            return Err(StoreError::MsgTooLarge {
                size,
                limit: HARD_MAX_MSG_SIZE,
            });
        }
        Ok(())
    }

    /// Group commit: returns once everything up to `t` is written (and fsynced if
    /// `fsync`).
    fn wait(&self, t: u64, fsync: bool) -> Result<()> {
        let mut c = self.commit.lock();
        loop {
            if c.lost.iter().any(|&(a, b)| t > a && t <= b) {
                return Err(StoreError::Poisoned {
                    cause: "write was not durable when the store was poisoned".into(),
                });
            }
            let done = if fsync {
                c.durable >= t
            } else {
                c.written >= t
            };
            if done {
                return Ok(());
            }
            if let Some(cause) = &c.poisoned {
                if c.nospace {
                    return Err(StoreError::NoSpace {
                        cause: cause.clone(),
                    });
                }
                return Err(StoreError::Poisoned {
                    cause: cause.clone(),
                });
            }
            if c.leader {
                self.commit_cv.wait(&mut c);
                continue;
            }
            c.leader = true;
            drop(c);
            let res = self.lead(fsync);
            c = self.commit.lock();
            c.leader = false;
            if let Ok((w, d)) = &res {
                c.written = c.written.max(*w);
                if let Some(d) = d {
                    c.durable = c.durable.max(*d);
                }
            }
            self.commit_cv.notify_all();
            res?;
        }
    }

    /// The leader's work: write the batch under the lock, fsync outside it.
    fn lead(&self, fsync: bool) -> Result<(u64, Option<u64>)> {
        let (lsn, seq, file, seg, written) = {
            let mut g = self.inner.write();
            if g.poisoned.is_some() {
                return Err(self
                    .check_appendable(&g)
                    .err()
                    .unwrap_or(StoreError::Closed));
            }
            self.write_out(&mut g)?;
            if fsync {
                // Usually nothing left: the flusher did the put-off work (see `roll`).
                self.sync_unsynced_locked(&mut g)?;
            }
            let active = g.active;
            let (file, written) = match g.segs.get(&active) {
                Some(s) => (s.file.clone(), s.written),
                None => return Err(StoreError::Closed),
            };
            (g.appended, g.ix.last_seq(), file, active, written)
        };
        if !fsync {
            return Ok((lsn, None));
        }
        let res = self.take_fault(FAULT_FSYNC).and_then(|()| file.sync_data());
        self.group_fsyncs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(disk) = &self.disk_fsyncs {
            disk.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let mut g = self.inner.write();
        if let Err(e) = res {
            let path = g
                .segs
                .get(&seg)
                .map(|s| s.path.display().to_string())
                .unwrap_or_default();
            return Err(self.poison(&mut g, format!("fsync {path}: {e}")));
        }
        if let Some(s) = g.segs.get_mut(&seg) {
            s.durable = s.durable.max(written);
        }
        g.visible = g.visible.max(seq);
        Ok((lsn, Some(lsn)))
    }

    /// Writes and fsyncs everything appended so far (the put-off segments first, outside
    /// the lock, so the group fsync holds it only for the active one).
    fn sync_all(&self) -> Result<()> {
        self.sync_put_off()?;
        let t = self.inner.read().appended;
        self.wait(t, true)
    }

    /// Makes a removal-type change durable per the mode. While poisoned the change went to
    /// a fresh segment, which is written and fsynced inline.
    fn finish_change(&self, mut g: RwLockWriteGuard<'_, Inner>) -> Result<()> {
        if g.poisoned.is_some() {
            self.write_out(&mut g)?;
            return self.sync_active_locked(&mut g);
        }
        let t = g.appended;
        drop(g);
        self.wait(t, matches!(self.durability(), Durability::Always))
    }

    /// Takes the write lock for a removal-type change, rolling away from a poisoned
    /// segment first so the change can still be recorded.
    fn change_guard(&self) -> Result<RwLockWriteGuard<'_, Inner>> {
        let mut g = self.inner.write();
        self.check_open(&g)?;
        if g.abandon_active {
            self.roll(&mut g)?;
        }
        Ok(g)
    }

    /// Reads and verifies the record of `seq`, if loads may see it (durable under
    /// `Always`).
    fn read_msg(&self, g: &Inner, seq: u64) -> Result<StoredMsg> {
        self.read_msg_upto(g, seq, g.visible)
    }

    /// Reads and verifies the record of `seq` if it is at most `visible` (`u64::MAX`:
    /// whatever was appended, from the file or the write buffer).
    fn read_msg_upto(&self, g: &Inner, seq: u64, visible: u64) -> Result<StoredMsg> {
        let Some(e) = g.ix.get(seq) else {
            return Err(if seq > g.ix.last_seq() {
                StoreError::Eof
            } else {
                StoreError::NotFound
            });
        };
        if seq > visible {
            return Err(StoreError::Eof);
        }
        let loc = e.data;
        let seg = g.segs.get(&loc.seg).ok_or(StoreError::NotFound)?;
        let off = u64::from(loc.off);
        let rec = if off + u64::from(loc.len) <= seg.written {
            segment::read_record(&seg.file, off, loc.len).map_err(io_err("pread", &seg.path))?
        } else {
            let s = (off - seg.written) as usize;
            g.buf
                .get(s..s + loc.len as usize)
                .filter(|r| segment::verify_full(r))
                .map(|r| r.to_vec())
        };
        let corrupt = |d: &str| StoreError::Corrupt {
            location: CorruptLocation::Seq(seq),
            detail: d.to_string(),
        };
        let rec = rec.ok_or_else(|| corrupt("record checksum mismatch"))?;
        decode_msg(rec, seq)
    }

    /// Removes a message whose record failed verification from the index.
    fn isolate(&self, seq: u64) {
        let mut g = self.inner.write();
        if let Some(e) = g.ix.remove(seq) {
            if let Some(s) = g.segs.get_mut(&e.data.seg) {
                s.live = s.live.saturating_sub(1);
            }
            g.lost.push(seq);
        }
    }

    /// Loads with corruption isolation: `find` picks a sequence under the read lock; if
    /// its record is damaged it is isolated and `find` runs again.
    fn load_with(&self, find: impl FnMut(&Inner) -> Result<u64>) -> Result<StoredMsg> {
        self.load_with_upto(find, false)
    }

    /// [`Shared::load_with`]; with `written`, also messages appended and not yet durable.
    fn load_with_upto(
        &self,
        mut find: impl FnMut(&Inner) -> Result<u64>,
        written: bool,
    ) -> Result<StoredMsg> {
        loop {
            let g = self.inner.read();
            self.check_open(&g)?;
            let seq = find(&g)?;
            let visible = if written { u64::MAX } else { g.visible };
            match self.read_msg_upto(&g, seq, visible) {
                Err(StoreError::Corrupt { .. }) => {
                    drop(g);
                    self.isolate(seq);
                }
                r => return r,
            }
        }
    }
}

impl Drop for FileStore {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

impl FileStore {
    /// The append of `store_raw_msg`, without the wait; returns the ticket to wait on.
    #[allow(clippy::too_many_arguments)]
    fn raw_append(
        &self,
        subject: &str,
        hdrs: &[u8],
        payload: &[u8],
        seq: u64,
        ts: i64,
        ttl: Option<Ttl>,
        discard_new_check: bool,
    ) -> Result<Ticket> {
        Shared::validate_msg(subject, hdrs, payload)?;
        self.retry_after_no_space();
        let sh = self.sh();
        let mut g = sh.inner.write();
        sh.check_appendable(&g)?;
        let expected = g.ix.last_seq() + 1;
        if seq != 0 && seq != expected {
            return Err(StoreError::SequenceMismatch { expected, got: seq });
        }
        g.ix.check_store(subject, hdrs, payload.len(), discard_new_check)?;
        sh.append_locked(
            &mut g,
            expected,
            ts,
            subject,
            hdrs,
            payload,
            Ttl::encode(ttl),
        )?;
        Ok(Ticket(g.appended))
    }

    /// `read_batch`'s second half, outside the lock: read each run of adjacent records
    /// of one segment with one `pread` into `buf` and hand its verified messages to `f`.
    /// `buf` only grows (its bytes are overwritten by the read before they are looked
    /// at), so a caller that passes the same one each time neither allocates nor
    /// zero-fills it again.
    fn read_runs(
        &self,
        plan: &BatchPlan,
        start: u64,
        end: u64,
        buf: &mut Vec<u8>,
        f: &mut dyn FnMut(MsgRef<'_>) -> bool,
    ) -> Result<u64> {
        let mut next = start;
        for run in &plan.runs {
            let locs = &plan.locs[run.locs.clone()];
            if buf.len() < run.len {
                buf.resize(run.len, 0);
            }
            let bytes = &mut buf[..run.len];
            if run.file.read_exact_at(bytes, run.off).is_err() {
                // Leave it to the single-message path (and its error reporting).
                return crate::stream::read_batch_one_by_one(self, locs[0].0, end, 1, f);
            }
            if let Some(stop) = deliver_run(self, locs, bytes, end, &mut next, f)? {
                return Ok(stop);
            }
        }
        // Everything up to `next - 1` was delivered (at least one message); anything
        // between it and `end` is found by the next call.
        Ok(next)
    }
}

/// A run of adjacent records of one segment: read with one read.
#[derive(Debug)]
struct Run {
    /// The segment's file (as the index had it when the batch was planned).
    file: Arc<fs::File>,
    /// Offset of the first record.
    off: u64,
    /// Bytes of all its records.
    len: usize,
    /// Its records: a range of [`BatchPlan::locs`].
    locs: std::ops::Range<usize>,
}

/// What a batched read will read: the locations of up to `max_bytes` of messages, looked
/// up under the index lock, grouped into runs. Reading them happens outside the lock
/// (now, or ahead of time on a read-ahead thread, see `read_ahead.rs`).
#[derive(Debug, Default)]
struct BatchPlan {
    /// Sequence and location of each message, ascending by sequence.
    locs: Vec<(u64, Loc)>,
    /// The runs, in order.
    runs: Vec<Run>,
}

impl BatchPlan {
    /// The sequence after the last planned message.
    fn next_seq(&self) -> Option<u64> {
        self.locs.last().map(|(seq, _)| seq + 1)
    }
}

/// What [`plan_batch`] found.
#[derive(Debug)]
enum Planned {
    /// No message is left in `start..=end`.
    Done,
    /// Batching does not apply at `start` (the next message is still in the write
    /// buffer, or lies beyond what readers may see): read one by one from there.
    OneByOne,
    /// Read this.
    Batch(BatchPlan),
}

/// `read_batch`'s first half, under the index (read) lock: the locations of up to
/// `max_bytes` of messages from `start` (at most `end`), as runs.
fn plan_batch(sh: &Shared, start: u64, end: u64, max_bytes: usize) -> Result<Planned> {
    let g = sh.inner.read();
    sh.check_open(&g)?;
    let max = end.min(g.ix.last_seq()).min(g.visible);
    if start > max {
        return Ok(Planned::OneByOne);
    }
    let mut plan = BatchPlan::default();
    let mut total = 0usize;
    for (&seq, e) in g.ix.range(start..=max) {
        let loc = e.data;
        let Some(seg) = g.segs.get(&loc.seg) else {
            break;
        };
        if u64::from(loc.off) + u64::from(loc.len) > seg.written {
            break;
        }
        let i = plan.locs.len();
        match plan.runs.last_mut() {
            Some(run)
                if Arc::ptr_eq(&run.file, &seg.file)
                    && run.off + run.len as u64 == u64::from(loc.off) =>
            {
                run.len += loc.len as usize;
                run.locs.end = i + 1;
            }
            _ => plan.runs.push(Run {
                file: seg.file.clone(),
                off: u64::from(loc.off),
                len: loc.len as usize,
                locs: i..i + 1,
            }),
        }
        plan.locs.push((seq, loc));
        total += loc.len as usize;
        if total >= max_bytes {
            break;
        }
    }
    if plan.locs.is_empty() {
        let nothing_left = g.ix.range(start..=max).next().is_none() && max == end;
        return Ok(if nothing_left {
            Planned::Done
        } else {
            Planned::OneByOne
        });
    }
    Ok(Planned::Batch(plan))
}

/// Hand the messages of one run, read from disk as `bytes`, to `f`, each verified as in
/// `read_msg`. `next` follows the last message delivered. `Some(n)`: the batch ends here
/// with `n` as its next sequence (`f` said stop, or a record was not a good record of
/// its sequence — damaged, erased or compacted meanwhile — and that message went through
/// `load_next_msg`, which isolates damage exactly as single loads do).
fn deliver_run<S: StreamStore + ?Sized>(
    store: &S,
    locs: &[(u64, Loc)],
    bytes: &[u8],
    end: u64,
    next: &mut u64,
    f: &mut dyn FnMut(MsgRef<'_>) -> bool,
) -> Result<Option<u64>> {
    let mut pos = 0usize;
    for &(seq, loc) in locs {
        let rec = bytes.get(pos..pos + loc.len as usize);
        pos += loc.len as usize;
        let m = rec.and_then(|rec| segment::verify_full(rec).then(|| msg_parts(rec, seq)));
        let Some(Ok((m, _ttl))) = m else {
            return crate::stream::read_batch_one_by_one(store, seq, end, 1, f).map(Some);
        };
        *next = seq + 1;
        if !f(m) {
            return Ok(Some(*next));
        }
    }
    Ok(None)
}

/// Largest `read_batch` scratch buffer (capacity) kept for the next call on the same
/// thread (a bigger one, from a caller asking for more, is freed after its call).
const READ_SCRATCH_KEEP: usize = 4 << 20;

thread_local! {
    /// `read_batch`'s buffer, kept between calls. Why: a bulk reader (a backup's
    /// snapshot thread reads its whole stream in ~1 MiB batches) otherwise allocated
    /// and zero-filled a fresh buffer per batch, a tenth of the snapshot thread's CPU.
    /// Per thread, so concurrent readers share nothing and take no lock for it.
    static READ_SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl StreamStore for FileStore {
    fn storage_type(&self) -> StorageType {
        StorageType::File
    }

    fn durability(&self) -> Durability {
        self.sh.durability()
    }

    fn msg_size(&self, subject: &str, hdrs: &[u8], payload: &[u8]) -> u64 {
        file_msg_size(subject.len(), hdrs.len(), payload.len())
    }

    fn append_msg(
        &self,
        subject: &str,
        hdrs: &[u8],
        payload: &[u8],
        ttl: Option<Ttl>,
    ) -> Result<StoreAck> {
        Shared::validate_msg(subject, hdrs, payload)?;
        self.retry_after_no_space();
        let sh = self.sh();
        let mut g = sh.inner.write();
        sh.check_appendable(&g)?;
        g.ix.check_store(subject, hdrs, payload.len(), true)?;
        let seq = g.ix.last_seq() + 1;
        let ts = sh.clock.now().max(g.ix.last_ts());
        sh.append_locked(&mut g, seq, ts, subject, hdrs, payload, Ttl::encode(ttl))?;
        Ok(StoreAck {
            seq,
            ts,
            ticket: Ticket(g.appended),
        })
    }

    fn store_raw_msg(
        &self,
        subject: &str,
        hdrs: &[u8],
        payload: &[u8],
        seq: u64,
        ts: i64,
        ttl: Option<Ttl>,
        discard_new_check: bool,
    ) -> Result<()> {
        let t = self.raw_append(subject, hdrs, payload, seq, ts, ttl, discard_new_check)?;
        self.wait_durable(t)
    }

    fn append_raw_msg(
        &self,
        subject: &str,
        hdrs: &[u8],
        payload: &[u8],
        seq: u64,
        ts: i64,
        ttl: Option<Ttl>,
        discard_new_check: bool,
    ) -> Result<Ticket> {
        self.raw_append(subject, hdrs, payload, seq, ts, ttl, discard_new_check)
    }

    fn append_group(&self, msgs: &[GroupMsg<'_>]) -> Result<GroupAck> {
        for m in msgs.iter().filter(|m| !m.skip) {
            Shared::validate_msg(m.subject, m.hdrs, m.payload)?;
        }
        self.retry_after_no_space();
        let sh = self.sh();
        let mut g = sh.inner.write();
        sh.check_appendable(&g)?;
        let before = g.ix.last_seq();
        let mut stored = Vec::with_capacity(msgs.len());
        for m in msgs {
            let seq = g.ix.last_seq() + 1;
            let now = sh.clock.now();
            let ts = now.max(g.ix.last_ts());
            let r = if m.skip {
                g.ix.skip(seq, 1);
                g.ix.note_skip_time(now, true);
                sh.put_control(&mut g, Kind::Skip, seq, 1)
            } else {
                g.ix.check_store(m.subject, m.hdrs, m.payload.len(), true)
                    .and_then(|()| {
                        let ttl = Ttl::encode(m.ttl);
                        sh.append_locked(&mut g, seq, ts, m.subject, m.hdrs, m.payload, ttl)
                    })
            };
            if let Err(e) = r {
                sh.take_back_locked(&mut g, before);
                return Err(e);
            }
            stored.push((seq, ts));
        }
        Ok(GroupAck {
            stored,
            ticket: Ticket(g.appended),
        })
    }

    fn skip_msg(&self, seq: u64) -> Result<u64> {
        self.retry_after_no_space();
        let sh = self.sh();
        let (s, t) = {
            let mut g = sh.inner.write();
            sh.check_appendable(&g)?;
            let expected = g.ix.last_seq() + 1;
            if seq != 0 && seq != expected {
                return Err(StoreError::SequenceMismatch { expected, got: seq });
            }
            g.ix.skip(expected, 1);
            let now = sh.clock.now();
            g.ix.note_skip_time(now, true);
            sh.put_control(&mut g, Kind::Skip, expected, 1)?;
            (expected, g.appended)
        };
        self.wait_durable(Ticket(t))?;
        Ok(s)
    }

    fn skip_msgs(&self, seq: u64, num: u64) -> Result<()> {
        let t = self.append_skip_msgs(seq, num)?;
        self.wait_durable(t)
    }

    fn append_skip_msgs(&self, seq: u64, num: u64) -> Result<Ticket> {
        self.retry_after_no_space();
        let sh = self.sh();
        let t = {
            let mut g = sh.inner.write();
            sh.check_appendable(&g)?;
            let expected = g.ix.last_seq() + 1;
            if seq != 0 && seq != expected {
                return Err(StoreError::SequenceMismatch { expected, got: seq });
            }
            if num == 0 {
                return Ok(Ticket::DONE);
            }
            let n = i64::try_from(num)
                .map_err(|_| StoreError::InvalidArgument("skip count too large".into()))?;
            g.ix.skip(expected, num);
            let now = sh.clock.now();
            g.ix.note_skip_time(now, false);
            sh.put_control(&mut g, Kind::Skip, expected, n)?;
            g.appended
        };
        Ok(Ticket(t))
    }

    fn wait_durable(&self, ticket: Ticket) -> Result<()> {
        self.sh
            .wait(ticket.0, matches!(self.sh.durability(), Durability::Always))
    }

    fn durable_ticket(&self) -> Ticket {
        Ticket(self.sh.commit.lock().durable)
    }

    fn sync(&self) -> Result<()> {
        self.sh.sync_all()?;
        let cons: Vec<_> = self.sh.consumers.lock().values().cloned().collect();
        for c in cons {
            c.sync()?;
        }
        Ok(())
    }

    fn load_msg(&self, seq: u64) -> Result<StoredMsg> {
        let g = self.sh.inner.read();
        self.sh.check_open(&g)?;
        match self.sh.read_msg(&g, seq) {
            Err(e @ StoreError::Corrupt { .. }) => {
                drop(g);
                self.sh.isolate(seq);
                Err(e)
            }
            r => r,
        }
    }

    fn pinned_view(&self, watermark: u64) -> Result<Box<dyn crate::stream::PinnedView>> {
        Ok(Box::new(self.pin(watermark)?))
    }

    fn load_next_msg(&self, filter: &SubjectFilter, start: u64) -> Result<StoredMsg> {
        self.sh.load_with(|g| {
            let max = g.ix.last_seq().min(g.visible);
            g.ix.next_match(filter, start, max).ok_or(StoreError::Eof)
        })
    }

    /// One `pread` for a run of adjacent records of one segment, outside the index lock
    /// (held only to look up locations); the messages share that one buffer. The run ends
    /// at a segment change, a gap in the file, a record still in the write buffer, or a
    /// record that does not verify; when not even the first one can be read this way, it
    /// goes through `load_next_msg` (which isolates damage).
    fn load_next_run(
        &self,
        start: u64,
        max_msgs: usize,
        max_bytes: usize,
    ) -> Result<Vec<StoredMsg>> {
        let mut locs: Vec<(u64, Loc)> = Vec::new();
        let mut file: Option<Arc<fs::File>> = None;
        {
            let g = self.sh.inner.read();
            self.sh.check_open(&g)?;
            let max = g.ix.last_seq().min(g.visible);
            let mut total = 0usize;
            // (`range` panics on a reversed range.)
            let range = (start <= max).then(|| g.ix.range(start..=max));
            for (&seq, e) in range.into_iter().flatten() {
                let loc = e.data;
                let Some(seg) = g.segs.get(&loc.seg) else {
                    break;
                };
                if u64::from(loc.off) + u64::from(loc.len) > seg.written {
                    break;
                }
                match locs.last() {
                    None => file = Some(seg.file.clone()),
                    Some(&(_, prev)) => {
                        if prev.seg != loc.seg || prev.off.checked_add(prev.len) != Some(loc.off) {
                            break;
                        }
                    }
                }
                locs.push((seq, loc));
                total += loc.len as usize;
                if locs.len() >= max_msgs.max(1) || total >= max_bytes {
                    break;
                }
            }
        }
        let single = |seq: u64| crate::stream::load_next_one(self, seq);
        let (Some(file), Some(&(first_seq, first))) = (file, locs.first()) else {
            return single(start);
        };
        let Some(&(_, last)) = locs.last() else {
            return single(start);
        };
        let len = (u64::from(last.off) + u64::from(last.len) - u64::from(first.off)) as usize;
        let mut buf = vec![0u8; len];
        if file.read_exact_at(&mut buf, u64::from(first.off)).is_err() {
            // Leave it to the single-message path (and its error reporting).
            return single(first_seq);
        }
        let buf = Bytes::from(buf);
        let mut out = Vec::with_capacity(locs.len());
        let mut pos = 0usize;
        for &(seq, loc) in &locs {
            let end = pos + loc.len as usize;
            let verified = buf.get(pos..end).is_some_and(segment::verify_full);
            let m = verified.then(|| stored_msg(&buf, pos..end, seq));
            let Some(Ok(m)) = m else {
                if out.is_empty() {
                    return single(seq);
                }
                break;
            };
            out.push(m);
            pos = end;
        }
        Ok(out)
    }

    /// Reads runs of adjacent records with one `pread` each, outside the index lock (the
    /// lock is held only to look up locations, so writers are not held up by the disk).
    /// Each record is verified as in `read_msg`; at the first one that is not a good
    /// record of its sequence (damaged, erased or compacted meanwhile), or one still in
    /// the write buffer, the batch ends and that message goes through `load_next_msg`,
    /// which isolates damage exactly as single loads do.
    fn read_batch(
        &self,
        start: u64,
        end: u64,
        max_bytes: usize,
        f: &mut dyn FnMut(MsgRef<'_>) -> bool,
    ) -> Result<u64> {
        let plan = match plan_batch(&self.sh, start, end, max_bytes)? {
            Planned::Batch(plan) => plan,
            Planned::Done => return Ok(end.saturating_add(1)),
            Planned::OneByOne => {
                return crate::stream::read_batch_one_by_one(self, start, end, 1, f);
            }
        };
        READ_SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => {
                let got = self.read_runs(&plan, start, end, &mut scratch, f);
                if scratch.capacity() > READ_SCRATCH_KEEP {
                    *scratch = Vec::new();
                }
                got
            }
            // Re-entered from `f` (no caller does): a buffer of its own.
            Err(_) => self.read_runs(&plan, start, end, &mut Vec::new(), f),
        })
    }

    fn load_prev_msg(&self, filter: &SubjectFilter, start: u64) -> Result<StoredMsg> {
        self.sh.load_with(|g| {
            if start < g.ix.first_seq() {
                return Err(StoreError::Eof);
            }
            g.ix.prev_match(filter, start.min(g.visible))
                .ok_or(StoreError::NotFound)
        })
    }

    fn load_last_msg(&self, filter: &SubjectFilter) -> Result<StoredMsg> {
        self.sh.load_with(|g| {
            let max = g.ix.last_seq().min(g.visible);
            g.ix.last_match(filter, max).ok_or(StoreError::NotFound)
        })
    }

    fn load_last_written(&self, filter: &SubjectFilter) -> Result<StoredMsg> {
        self.sh.load_with_upto(
            |g| {
                g.ix.last_match(filter, g.ix.last_seq())
                    .ok_or(StoreError::NotFound)
            },
            true,
        )
    }

    fn subject_for_seq(&self, seq: u64) -> Result<String> {
        let g = self.sh.inner.read();
        self.sh.check_open(&g)?;
        g.ix.get(seq)
            .map(|e| g.ix.subject_name(e.subj).to_string())
            .ok_or(StoreError::NotFound)
    }

    fn has_msg(&self, seq: u64) -> bool {
        let g = self.sh.inner.read();
        self.sh.check_open(&g).is_ok() && g.ix.get(seq).is_some()
    }

    fn remove_msg(&self, seq: u64) -> Result<bool> {
        let sh = self.sh();
        let mut g = sh.change_guard()?;
        let Some(e) = g.ix.remove(seq) else {
            return Ok(false);
        };
        let mut removed = vec![(seq, e)];
        sh.persist_removed(&mut g, &mut removed)?;
        sh.finish_change(g)?;
        Ok(true)
    }

    fn erase_msg(&self, seq: u64) -> Result<bool> {
        let sh = self.sh();
        let mut g = sh.change_guard()?;
        let Some(e) = g.ix.remove(seq) else {
            return Ok(false);
        };
        let loc = e.data;
        let mut removed = vec![(seq, e)];
        sh.persist_removed(&mut g, &mut removed)?;
        pin::note_erased(&mut g, seq);
        // The tombstone must be durable before the bytes are destroyed.
        sh.write_out(&mut g)?;
        sh.sync_active_locked(&mut g)?;
        if let Some(s) = g.segs.get(&loc.seg) {
            let erased = record::encode_erased(loc.len as usize, seq);
            let res = s
                .file
                .write_all_at(&erased, u64::from(loc.off))
                .and_then(|()| s.file.sync_data());
            if let Err(e) = res {
                let cause = format!("erase in {}: {e}", s.path.display());
                return Err(sh.poison(&mut g, cause));
            }
        }
        Ok(true)
    }

    fn purge(&self) -> Result<u64> {
        let sh = self.sh();
        let mut g = sh.change_guard()?;
        let mut removed = std::mem::take(&mut g.scratch);
        removed.clear();
        let n = g.ix.purge_all(&mut removed);
        pin::note_removed(&mut g, &removed);
        for (_, e) in removed.drain(..) {
            if let Some(s) = g.segs.get_mut(&e.data.seg) {
                s.live = s.live.saturating_sub(1);
            }
        }
        g.scratch = removed;
        // Free space first: every segment but the active one is dead now.
        drop_dead_front(&mut g);
        // Start a new segment (its name records the last sequence) with a FLOOR record,
        // then drop the old active segment.
        sh.roll(&mut g)?;
        let floor = g.ix.first_seq();
        sh.put_control(&mut g, Kind::Floor, floor, 0)?;
        sh.write_out(&mut g)?;
        sh.sync_active_locked(&mut g)?;
        drop_dead_front(&mut g);
        Ok(n)
    }

    fn purge_ex(&self, filter: &SubjectFilter, seq: u64, keep: u64) -> Result<u64> {
        if filter.is_all() && seq == 0 && keep == 0 {
            return self.purge();
        }
        let sh = self.sh();
        let mut g = sh.change_guard()?;
        let mut removed = Vec::new();
        let n = g.ix.purge_ex(filter, seq, keep, &mut removed);
        sh.persist_removed(&mut g, &mut removed)?;
        sh.finish_change(g)?;
        Ok(n)
    }

    fn compact(&self, seq: u64) -> Result<u64> {
        if seq == 0 {
            return self.purge();
        }
        let sh = self.sh();
        let mut g = sh.change_guard()?;
        let mut removed = Vec::new();
        let n = g.ix.compact(seq, &mut removed);
        sh.persist_removed(&mut g, &mut removed)?;
        if seq > g.floor_written {
            // Past the end: record the jump of last_seq.
            sh.put_control(&mut g, Kind::Floor, seq, 0)?;
        }
        sh.finish_change(g)?;
        Ok(n)
    }

    fn truncate(&self, seq: u64) -> Result<()> {
        let sh = self.sh();
        let mut g = sh.change_guard()?;
        sh.truncate_locked(&mut g, seq)?;
        sh.finish_change(g)
    }

    fn seq_from_time(&self, ts: i64) -> u64 {
        self.sh.inner.read().ix.seq_from_time(ts)
    }

    fn filtered_state(&self, start: u64, filter: &SubjectFilter) -> SimpleState {
        self.sh.inner.read().ix.filtered_state(start, filter)
    }

    fn subjects_state(&self, filter: &SubjectFilter) -> HashMap<String, SimpleState> {
        self.sh
            .inner
            .read()
            .ix
            .subjects_state(filter)
            .into_iter()
            .collect()
    }

    fn num_pending(&self, start: u64, filter: &SubjectFilter, last_per_subject: bool) -> u64 {
        self.sh
            .inner
            .read()
            .ix
            .num_pending(start, filter, last_per_subject)
    }

    fn last_seqs(&self, filter: &SubjectFilter) -> Vec<u64> {
        self.sh.inner.read().ix.last_seqs(filter)
    }

    fn state(&self) -> StreamState {
        self.sh.inner.read().ix.state(true)
    }

    fn fast_state(&self) -> StreamState {
        self.sh.inner.read().ix.state(false)
    }

    fn bytes_gauge(&self) -> Arc<crate::gauge::BytesGauge> {
        self.sh.bytes.clone()
    }

    fn config(&self) -> StoreConfig {
        self.sh.inner.read().ix.config().clone()
    }

    fn update_config(&self, cfg: StoreConfig) -> Result<()> {
        let sh = self.sh();
        let mut g = sh.change_guard()?;
        let mut removed = Vec::new();
        g.ix.update_config(cfg, &mut removed);
        sh.persist_removed(&mut g, &mut removed)?;
        sh.finish_change(g)
    }

    fn expire(&self, now: i64) -> Result<ExpireReport> {
        let sh = self.sh();
        let mut g = sh.change_guard()?;
        let mut removed = Vec::new();
        let rep = g.ix.expire(now, &mut removed);
        if rep.removed == 0 {
            return Ok(rep);
        }
        sh.persist_removed(&mut g, &mut removed)?;
        sh.finish_change(g)?;
        Ok(rep)
    }

    fn next_expiry(&self) -> Option<i64> {
        self.sh.inner.read().ix.next_expiry()
    }

    fn write_stream_meta(&self, meta: &[u8]) -> Result<()> {
        self.sh.check_open(&self.sh.inner.read())?;
        let _g = self.sh.meta_mu.lock();
        write_meta(
            &self.sh.dir().join("stream.nmeta"),
            MetaKind::StreamMeta,
            meta,
        )
    }

    fn stream_meta(&self) -> Result<Option<Vec<u8>>> {
        self.sh.check_open(&self.sh.inner.read())?;
        let _g = self.sh.meta_mu.lock();
        read_meta(&self.sh.dir().join("stream.nmeta"), MetaKind::StreamMeta)
    }

    fn move_to(&self, new_dir: &Path, durability: Durability) -> Result<()> {
        self.move_dir(new_dir, durability)
    }

    fn consumer_store(&self, name: &str, policy: ConsumerPolicy) -> Result<Arc<dyn ConsumerStore>> {
        self.sh.check_open(&self.sh.inner.read())?;
        consumer::validate_name(name)?;
        let mut cons = self.sh.consumers.lock();
        if let Some(c) = cons.get(name)
            && !c.is_closed()
        {
            return Ok(c.clone());
        }
        let c = Arc::new(FileConsumerStore::open(
            &self.sh.dir().join("consumers").join(name),
            name,
            policy,
            self.sh.durability(),
        )?);
        cons.insert(name.to_string(), c.clone());
        Ok(c)
    }

    fn consumer_names(&self) -> Result<Vec<String>> {
        self.sh.check_open(&self.sh.inner.read())?;
        let d = self.sh.dir().join("consumers");
        let mut v = Vec::new();
        for ent in fs::read_dir(&d).map_err(io_err("readdir", &d))? {
            let ent = ent.map_err(io_err("readdir", &d))?;
            if ent.path().is_dir() {
                v.push(ent.file_name().to_string_lossy().into_owned());
            }
        }
        v.sort();
        Ok(v)
    }

    fn remove_consumer(&self, name: &str) -> Result<()> {
        consumer::validate_name(name)?;
        let mut cons = self.sh.consumers.lock();
        if let Some(c) = cons.remove(name) {
            drop(cons);
            return c.delete();
        }
        // Still under the consumers lock: the path cannot move meanwhile (`move_dir`).
        let d = self.sh.dir().join("consumers").join(name);
        if d.exists() {
            fs::remove_dir_all(&d).map_err(io_err("rmdir", &d))?;
            sync_dir(&self.sh.dir().join("consumers"))?;
        }
        Ok(())
    }

    fn stop(&self) -> Result<()> {
        {
            let mut s = self.sh.stop.lock();
            *s = true;
            self.sh.stop_cv.notify_all();
        }
        if let Some(h) = self.flusher.lock().take() {
            let _ = h.join();
        }
        if self.sh.inner.read().closed {
            return Ok(());
        }
        let mut res = Ok(());
        if self.sh.inner.read().poisoned.is_none() {
            res = self.sh.sync_all();
            if res.is_ok() {
                // Record the last sequence in a fresh segment's name, so that even if the
                // end of the last segment is later lost (a cut file, a bad disk block),
                // recovery still knows every sequence handed out and never reuses one.
                let mut g = self.sh.inner.write();
                let active = g.active;
                if g.segs.get(&active).is_some_and(|s| s.len > SEG_HDR_LEN) {
                    res = roll_new(&self.sh.dir().join("msgs"), &mut g, true);
                }
            }
        }
        let cons: Vec<_> = self.sh.consumers.lock().drain().map(|(_, c)| c).collect();
        for c in cons {
            let r = c.stop();
            if res.is_ok() {
                res = r;
            }
        }
        self.sh.inner.write().closed = true;
        self.sh.lock.lock().take();
        res
    }

    fn delete(&self) -> Result<()> {
        let _ = self.stop();
        fs::remove_dir_all(self.sh.dir()).map_err(io_err("rmdir", &self.sh.dir()))
    }
}
