//! [`FileConsumerStore`]: consumer state that survives restarts and SIGKILL.
//!
//! Why a log plus snapshots: a consumer changes state on every delivery and every ack.
//! Rewriting the whole state (which includes the pending map) on each change would cost
//! O(pending) bytes and two fsyncs per ack. Instead each change is appended to `ops.log`
//! as a small checksummed record; when the log grows past a threshold the state is
//! written as a snapshot (`state.nmeta`, atomic temp → fsync → rename → fsync dir) under
//! a new generation and a fresh log for that generation replaces the old one.
//!
//! Recovery loads the snapshot, then replays the log if its generation matches (a log of
//! an older generation is already contained in the snapshot). Replay uses the same state
//! machine as live updates, which is monotonic, so the ack floor never moves back past an
//! acknowledged message. A torn last record (crash mid-append) is cut off; damage in the
//! middle of the log is an error rather than a silent rollback of acknowledgements.
//!
//! Log layout: header `"NTCL"`, version u32 (1), generation u64; then records
//! `len u32 | op u8 | varint fields | crc32c u32` where `len` counts op + fields and the
//! checksum covers them.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use super::meta::{MetaKind, create_dir_durable, read_meta, sync_dir, tmp_path, write_meta};
use crate::consumer::{
    ConsumerPolicy, ConsumerState, ConsumerStore, Reader, check_update, put_uvarint, put_varint,
};
use crate::error::{CorruptLocation, Result, StoreError};
use crate::types::{Durability, StorageType};

/// Log magic.
const LOG_MAGIC: [u8; 4] = *b"NTCL";
/// Log version.
const LOG_VERSION: u32 = 1;
/// Log header length.
const LOG_HDR: u64 = 16;
/// Compact the log into a snapshot beyond this size.
#[cfg(not(test))]
const LOG_COMPACT_AT: u64 = 4 * 1024 * 1024;
/// Small in unit tests so compaction is exercised.
#[cfg(test)]
const LOG_COMPACT_AT: u64 = 16 * 1024;
/// Largest log record accepted when reading.
const MAX_OP_LEN: u32 = 64 * 1024 * 1024;

/// Log operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Op {
    Delivered = 1,
    Ack = 2,
    SetStarting = 3,
    UpdateStarting = 4,
    Reset = 5,
    RemoveRedeliveredBelow = 6,
    Full = 7,
}

/// Checks a consumer name is usable as a directory name.
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.len() > 255
        || name.bytes().any(|b| b == b'/' || b == 0 || b == b'\\')
    {
        return Err(StoreError::InvalidArgument(format!(
            "invalid consumer name {name:?}"
        )));
    }
    Ok(())
}

/// Mutable part.
#[derive(Debug)]
struct Inner {
    /// Current state.
    state: ConsumerState,
    /// The log file.
    log: File,
    /// Log length.
    log_len: u64,
    /// Bytes written since the last fsync.
    dirty: bool,
    /// Generation of snapshot and log.
    gen_: u64,
    /// Encoding buffer.
    buf: Vec<u8>,
    /// First write/fsync failure.
    poisoned: Option<String>,
    /// Stopped or deleted.
    closed: bool,
    /// Deferred mode: ops not yet written to the log (see [`ConsumerStore::commit`]).
    pending: Vec<u8>,
    /// Whether ops are deferred until `commit` instead of written (and synced) one by one.
    deferred: bool,
}

/// Deferred mode writes its in-memory ops to the log once they reach this size.
const DEFERRED_FLUSH_AT: usize = 64 * 1024;

/// File-backed consumer store (one directory per consumer).
#[derive(Debug)]
pub struct FileConsumerStore {
    /// Name.
    name: String,
    /// Directory.
    dir: PathBuf,
    /// Policy.
    policy: ConsumerPolicy,
    /// Durability mode (from the stream).
    durability: Durability,
    /// State and files.
    inner: Mutex<Inner>,
}

fn log_header(gen_: u64) -> [u8; LOG_HDR as usize] {
    let mut h = [0u8; LOG_HDR as usize];
    h[..4].copy_from_slice(&LOG_MAGIC);
    h[4..8].copy_from_slice(&LOG_VERSION.to_le_bytes());
    h[8..16].copy_from_slice(&gen_.to_le_bytes());
    h
}

impl FileConsumerStore {
    /// Opens (creating if needed) the consumer store in `dir`.
    pub fn open(
        dir: &Path,
        name: &str,
        policy: ConsumerPolicy,
        durability: Durability,
    ) -> Result<Self> {
        let io = |op: &'static str, p: &Path| {
            let p = p.to_path_buf();
            move |e| StoreError::io(op, p, e)
        };
        create_dir_durable(dir)?;
        let snap_path = dir.join("state.nmeta");
        let (gen_, mut state) = match read_meta(&snap_path, MetaKind::ConsumerState)? {
            Some(p) if p.len() >= 8 => {
                let mut g = [0u8; 8];
                g.copy_from_slice(&p[..8]);
                (u64::from_le_bytes(g), ConsumerState::decode(&p[8..])?)
            }
            Some(_) => {
                return Err(StoreError::Corrupt {
                    location: CorruptLocation::File(snap_path),
                    detail: "snapshot too short".into(),
                });
            }
            None => (0, ConsumerState::default()),
        };
        let log_path = dir.join("ops.log");
        let mut raw = Vec::new();
        let exists = match File::open(&log_path) {
            Ok(mut f) => {
                f.read_to_end(&mut raw).map_err(io("read", &log_path))?;
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(StoreError::io("open", &log_path, e)),
        };
        let corrupt = |d: String| StoreError::Corrupt {
            location: CorruptLocation::File(log_path.clone()),
            detail: d,
        };
        let mut valid_end = LOG_HDR;
        let mut fresh_log = !exists || raw.len() < LOG_HDR as usize;
        if !fresh_log && raw[..LOG_HDR as usize].iter().all(|&b| b == 0) {
            // A new log's header is written without an fsync of its own (see below): a
            // crash before the first synced op may leave it as zeros. Zeros with a valid
            // record after them are damage, not a new log.
            if has_valid_op_after(&raw, LOG_HDR as usize) {
                return Err(corrupt(
                    "zeroed log header followed by valid records".into(),
                ));
            }
            fresh_log = true;
        }
        if !fresh_log {
            if raw[..4] != LOG_MAGIC {
                return Err(corrupt("bad log magic".into()));
            }
            let v = u32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]]);
            if v != LOG_VERSION {
                return Err(StoreError::UnsupportedVersion {
                    path: log_path.clone(),
                    found: v,
                    supported: LOG_VERSION,
                });
            }
            let mut g = [0u8; 8];
            g.copy_from_slice(&raw[8..16]);
            let log_gen = u64::from_le_bytes(g);
            if log_gen > gen_ {
                return Err(corrupt(format!(
                    "log generation {log_gen} newer than snapshot {gen_}"
                )));
            }
            if log_gen < gen_ {
                // Already folded into the snapshot.
                fresh_log = true;
            } else {
                let mut at = LOG_HDR as usize;
                while at < raw.len() {
                    match parse_op(&raw[at..]) {
                        Some((op, body, n)) => {
                            // Replays follow the live rules; errors were not logged live
                            // and cannot occur for logged ops, so they are ignored.
                            let _ = apply(&mut state, op, body, &policy);
                            at += n;
                            valid_end = at as u64;
                        }
                        None => {
                            // Torn tail only if nothing valid follows the damage.
                            if raw.len() - at >= 9 && has_valid_op_after(&raw, at + 1) {
                                return Err(corrupt(format!(
                                    "damaged record at offset {at} followed by valid records"
                                )));
                            }
                            break;
                        }
                    }
                }
            }
        }
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&log_path)
            .map_err(io("open", &log_path))?;
        // No fsync for a new log: its header reaches the disk with the first op's sync
        // (an fdatasync writes all of the file's data), and until then an empty or
        // zeroed log reads as new (above). Nor for its directory entry: the entry only
        // matters once `config.nmeta` exists (a consumer folder without a config is not
        // recovered), and `write_config` fsyncs the directory after its rename, which
        // makes this earlier entry durable too. Creating a durable consumer so takes 4
        // fsyncs (parent folder, first op, config, folder) instead of 7, and a restart
        // none per intact consumer.
        if fresh_log {
            log.set_len(0).map_err(io("truncate", &log_path))?;
            log.write_all_at(&log_header(gen_), 0)
                .map_err(io("write", &log_path))?;
            valid_end = LOG_HDR;
        } else if (raw.len() as u64) > valid_end {
            // A torn tail is cut durably before anything is appended after it.
            log.set_len(valid_end).map_err(io("truncate", &log_path))?;
            log.sync_all().map_err(io("fsync", &log_path))?;
        }
        Ok(FileConsumerStore {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            policy,
            durability,
            inner: Mutex::new(Inner {
                state,
                log,
                log_len: valid_end,
                dirty: false,
                gen_,
                buf: Vec::with_capacity(64),
                poisoned: None,
                closed: false,
                pending: Vec::new(),
                deferred: false,
            }),
        })
    }

    /// True once stopped or deleted.
    pub fn is_closed(&self) -> bool {
        self.inner.lock().closed
    }

    /// Applies `op` to the state, and if that succeeds logs it durably per the mode.
    fn change(
        &self,
        op: Op,
        fields: &[u64],
        signed: Option<i64>,
        full: Option<&[u8]>,
    ) -> Result<()> {
        let mut g = self.inner.lock();
        if g.closed {
            return Err(StoreError::Closed);
        }
        if let Some(cause) = &g.poisoned {
            return Err(StoreError::Poisoned {
                cause: cause.clone(),
            });
        }
        let mut buf = std::mem::take(&mut g.buf);
        buf.clear();
        buf.extend_from_slice(&[0, 0, 0, 0]);
        buf.push(op as u8);
        for &f in fields {
            put_uvarint(&mut buf, f);
        }
        if let Some(s) = signed {
            put_varint(&mut buf, s);
        }
        if let Some(b) = full {
            buf.extend_from_slice(b);
        }
        let len = (buf.len() - 4) as u32;
        buf[..4].copy_from_slice(&len.to_le_bytes());
        let crc = crc32c::crc32c(&buf[4..]);
        buf.extend_from_slice(&crc.to_le_bytes());
        let res = apply(&mut g.state, op, &buf[5..buf.len() - 4], &self.policy);
        if let Err(e) = res {
            g.buf = buf;
            return Err(e);
        }
        if g.deferred {
            // Group commit by the owner: keep the op in memory until `commit`.
            g.pending.extend_from_slice(&buf);
            g.buf = buf;
            g.dirty = true;
            if g.pending.len() >= DEFERRED_FLUSH_AT {
                self.write_pending(&mut g)?;
            }
            return Ok(());
        }
        let at = g.log_len;
        let w = g.log.write_all_at(&buf, at);
        let w = w.and_then(|()| {
            if matches!(self.durability, Durability::Always) {
                g.log.sync_data()
            } else {
                Ok(())
            }
        });
        let n = buf.len() as u64;
        g.buf = buf;
        if let Err(e) = w {
            let cause = format!("consumer {} log write: {e}", self.name);
            g.poisoned = Some(cause.clone());
            return Err(StoreError::Poisoned { cause });
        }
        g.log_len += n;
        g.dirty = !matches!(self.durability, Durability::Always);
        if g.log_len > LOG_COMPACT_AT {
            self.compact_locked(&mut g)?;
        }
        Ok(())
    }

    /// Deferred mode: write the ops kept in memory to the log (no fsync).
    fn write_pending(&self, g: &mut Inner) -> Result<()> {
        if g.pending.is_empty() {
            return Ok(());
        }
        let at = g.log_len;
        if let Err(e) = g.log.write_all_at(&g.pending, at) {
            let cause = format!("consumer {} log write: {e}", self.name);
            g.poisoned = Some(cause.clone());
            return Err(StoreError::Poisoned { cause });
        }
        g.log_len += g.pending.len() as u64;
        g.pending.clear();
        if g.log_len > LOG_COMPACT_AT {
            self.compact_locked(g)?;
        }
        Ok(())
    }

    /// Writes a snapshot of the next generation, then replaces the log.
    fn compact_locked(&self, g: &mut Inner) -> Result<()> {
        // The snapshot covers every deferred op too.
        g.pending.clear();
        let gen_ = g.gen_ + 1;
        let mut payload = gen_.to_le_bytes().to_vec();
        payload.extend_from_slice(&g.state.encode());
        write_meta(
            &self.dir.join("state.nmeta"),
            MetaKind::ConsumerState,
            &payload,
        )?;
        let log_path = self.dir.join("ops.log");
        let tmp = tmp_path(&log_path);
        let io = |op: &'static str, p: &Path| {
            let p = p.to_path_buf();
            move |e| StoreError::io(op, p, e)
        };
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io("create", &tmp))?;
        f.write_all_at(&log_header(gen_), 0)
            .map_err(io("write", &tmp))?;
        f.sync_all().map_err(io("fsync", &tmp))?;
        fs::rename(&tmp, &log_path).map_err(io("rename", &log_path))?;
        sync_dir(&self.dir)?;
        g.log = f;
        g.log_len = LOG_HDR;
        g.gen_ = gen_;
        g.dirty = false;
        Ok(())
    }
}

/// Parses one log record at the start of `b`: (op, fields, total length).
fn parse_op(b: &[u8]) -> Option<(Op, &[u8], usize)> {
    if b.len() < 9 {
        return None;
    }
    let len = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    if len == 0 || len > MAX_OP_LEN || b.len() < 4 + len as usize + 4 {
        return None;
    }
    let body = &b[4..4 + len as usize];
    let c = &b[4 + len as usize..8 + len as usize];
    if crc32c::crc32c(body) != u32::from_le_bytes([c[0], c[1], c[2], c[3]]) {
        return None;
    }
    let op = match body[0] {
        1 => Op::Delivered,
        2 => Op::Ack,
        3 => Op::SetStarting,
        4 => Op::UpdateStarting,
        5 => Op::Reset,
        6 => Op::RemoveRedeliveredBelow,
        7 => Op::Full,
        _ => return None,
    };
    Some((op, &body[1..], 8 + len as usize))
}

/// True if a valid record starts anywhere at or after `from`.
fn has_valid_op_after(raw: &[u8], from: usize) -> bool {
    (from..raw.len()).any(|i| parse_op(&raw[i..]).is_some())
}

/// Applies a logged operation.
fn apply(st: &mut ConsumerState, op: Op, body: &[u8], policy: &ConsumerPolicy) -> Result<()> {
    let bad = || StoreError::Corrupt {
        location: CorruptLocation::File("consumer log".into()),
        detail: "malformed operation".into(),
    };
    let mut r = Reader { b: body, at: 0 };
    match op {
        Op::Delivered => {
            let d = r.uvarint().ok_or_else(bad)?;
            let s = r.uvarint().ok_or_else(bad)?;
            let dc = r.uvarint().ok_or_else(bad)?;
            let ts = r.varint().ok_or_else(bad)?;
            st.apply_delivered(d, s, dc, ts, policy)
        }
        Op::Ack => {
            let d = r.uvarint().ok_or_else(bad)?;
            let s = r.uvarint().ok_or_else(bad)?;
            st.apply_ack(d, s, policy)
        }
        Op::SetStarting => {
            st.set_starting(r.uvarint().ok_or_else(bad)?);
            Ok(())
        }
        Op::UpdateStarting => {
            st.update_starting(r.uvarint().ok_or_else(bad)?, policy);
            Ok(())
        }
        Op::Reset => {
            let s = r.uvarint().ok_or_else(bad)?;
            *st = ConsumerState::default();
            st.set_starting(s);
            Ok(())
        }
        Op::RemoveRedeliveredBelow => {
            st.remove_redelivered_below(r.uvarint().ok_or_else(bad)?);
            Ok(())
        }
        Op::Full => {
            *st = ConsumerState::decode(body)?;
            Ok(())
        }
    }
}

impl ConsumerStore for FileConsumerStore {
    fn name(&self) -> &str {
        &self.name
    }
    fn storage_type(&self) -> StorageType {
        StorageType::File
    }
    fn set_starting(&self, sseq: u64) -> Result<()> {
        self.change(Op::SetStarting, &[sseq], None, None)
    }
    fn update_starting(&self, sseq: u64) -> Result<()> {
        self.change(Op::UpdateStarting, &[sseq], None, None)
    }
    fn reset(&self, sseq: u64) -> Result<()> {
        self.change(Op::Reset, &[sseq], None, None)
    }
    fn has_state(&self) -> bool {
        self.inner.lock().state.has_state()
    }
    fn update_delivered(&self, dseq: u64, sseq: u64, dc: u64, ts: i64) -> Result<()> {
        self.change(Op::Delivered, &[dseq, sseq, dc], Some(ts), None)
    }
    fn update_acks(&self, dseq: u64, sseq: u64) -> Result<()> {
        self.change(Op::Ack, &[dseq, sseq], None, None)
    }
    fn remove_redelivered_below(&self, seq: u64) -> Result<()> {
        self.change(Op::RemoveRedeliveredBelow, &[seq], None, None)
    }
    fn update(&self, state: &ConsumerState) -> Result<()> {
        {
            let g = self.inner.lock();
            check_update(&g.state, state)?;
        }
        self.change(Op::Full, &[], None, Some(&state.encode()))
    }
    fn force_update(&self, state: &ConsumerState) -> Result<()> {
        state.validate()?;
        self.change(Op::Full, &[], None, Some(&state.encode()))
    }
    fn state(&self) -> ConsumerState {
        self.inner.lock().state.clone()
    }
    fn write_config(&self, cfg: &[u8]) -> Result<()> {
        // Held while writing: a `delete` waits, so it cannot remove the directory while
        // the config's temp file is being created in it (and leave it half there).
        let g = self.inner.lock();
        if g.closed {
            return Err(StoreError::Closed);
        }
        write_meta(
            &self.dir.join("config.nmeta"),
            MetaKind::ConsumerConfig,
            cfg,
        )
    }
    fn config(&self) -> Result<Option<Vec<u8>>> {
        read_meta(&self.dir.join("config.nmeta"), MetaKind::ConsumerConfig)
    }
    fn sync(&self) -> Result<()> {
        let mut g = self.inner.lock();
        if g.closed || !g.dirty {
            return Ok(());
        }
        self.write_pending(&mut g)?;
        if let Err(e) = g.log.sync_data() {
            let cause = format!("consumer {} log fsync: {e}", self.name);
            g.poisoned = Some(cause.clone());
            return Err(StoreError::Poisoned { cause });
        }
        g.dirty = false;
        Ok(())
    }
    fn set_deferred(&self, on: bool) {
        self.inner.lock().deferred = on;
    }
    fn commit(&self, durable: bool) -> Result<()> {
        let mut g = self.inner.lock();
        if g.closed {
            return Ok(());
        }
        if let Some(cause) = &g.poisoned {
            return Err(StoreError::Poisoned {
                cause: cause.clone(),
            });
        }
        self.write_pending(&mut g)?;
        if durable && g.dirty {
            if let Err(e) = g.log.sync_data() {
                let cause = format!("consumer {} log fsync: {e}", self.name);
                g.poisoned = Some(cause.clone());
                return Err(StoreError::Poisoned { cause });
            }
            g.dirty = false;
        }
        Ok(())
    }
    fn stop(&self) -> Result<()> {
        let _ = self.commit(false);
        let r = self.sync();
        self.inner.lock().closed = true;
        r
    }
    fn delete(&self) -> Result<()> {
        self.inner.lock().closed = true;
        if self.dir.exists() {
            fs::remove_dir_all(&self.dir).map_err(|e| StoreError::io("rmdir", &self.dir, e))?;
            if let Some(p) = self.dir.parent() {
                sync_dir(p)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::AckPolicy;

    fn open_with(d: &Path, durability: Durability) -> FileConsumerStore {
        FileConsumerStore::open(
            d,
            "c",
            ConsumerPolicy {
                ack: AckPolicy::Explicit,
                max_deliver: None,
            },
            durability,
        )
        .unwrap()
    }

    fn open(d: &Path) -> FileConsumerStore {
        open_with(d, Durability::Always)
    }

    /// Why the store in `d` does not open.
    fn open_fails(d: &Path) -> StoreError {
        match FileConsumerStore::open(d, "c", ConsumerPolicy::default(), Durability::Always) {
            Ok(_) => panic!("the store must not open"),
            Err(e) => e,
        }
    }

    #[test]
    fn survives_reopen_and_compaction() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("c");
        let c = open_with(&d, Durability::Interval(std::time::Duration::from_secs(60)));
        // Enough operations to force several log compactions.
        let mut dseq = 0;
        for s in 1..=6_000u64 {
            dseq += 1;
            c.update_delivered(dseq, s, 1, s as i64).unwrap();
            if s % 3 != 0 {
                c.update_acks(dseq, s).unwrap();
            }
        }
        let want = c.state();
        assert!(want.ack_floor.stream >= 2);
        assert_eq!(want.pending.len(), 2_000);
        assert!(c.inner.lock().gen_ > 1, "log was compacted");
        c.stop().unwrap();
        drop(c);
        let c = open(&d);
        assert_eq!(c.state(), want);
    }

    #[test]
    fn torn_tail_is_cut_and_interior_damage_refused() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("c");
        let c = open(&d);
        for s in 1..=10u64 {
            c.update_delivered(s, s, 1, 0).unwrap();
        }
        c.update_acks(1, 1).unwrap();
        let want = c.state();
        drop(c);
        let log = d.join("ops.log");
        let mut raw = fs::read(&log).unwrap();
        let full = raw.len();
        // A torn partial record at the end is cut off.
        raw.extend_from_slice(&[9, 0, 0, 0, 2, 1]);
        fs::write(&log, &raw).unwrap();
        let c = open(&d);
        assert_eq!(c.state(), want);
        drop(c);
        assert_eq!(fs::metadata(&log).unwrap().len() as usize, full);
        // Damage in the middle is an error, not a silent rollback.
        let mut raw = fs::read(&log).unwrap();
        raw[LOG_HDR as usize + 6] ^= 0xff;
        fs::write(&log, &raw).unwrap();
        assert!(matches!(open_fails(&d), StoreError::Corrupt { .. }));
    }

    /// A new log's header is not fsynced on its own, so a crash can leave it empty or
    /// zeroed: either opens as a new log, and ops after it survive a reopen. Zeros
    /// followed by a valid record are damage.
    #[test]
    fn a_new_log_left_empty_or_zeroed_opens_as_new() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("c");
        drop(open(&d));
        let log = d.join("ops.log");
        for left in [vec![], vec![0u8; LOG_HDR as usize], vec![0u8; 4096]] {
            fs::write(&log, &left).unwrap();
            let c = open(&d);
            assert_eq!(c.state(), ConsumerState::default());
            c.update_delivered(1, 5, 1, 0).unwrap();
            drop(c);
            let c = open(&d);
            assert_eq!(c.state().delivered.stream, 5, "left {} bytes", left.len());
            drop(c);
        }
        let mut raw = fs::read(&log).unwrap();
        raw[..LOG_HDR as usize].fill(0);
        fs::write(&log, &raw).unwrap();
        assert!(matches!(open_fails(&d), StoreError::Corrupt { .. }));
    }

    #[test]
    fn deferred_ops_are_durable_after_commit_only() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("c");
        {
            let c = open_with(&dir, Durability::Always);
            c.set_deferred(true);
            c.update_delivered(1, 1, 1, 10).unwrap();
            c.update_delivered(2, 2, 1, 11).unwrap();
            c.update_acks(1, 1).unwrap();
            c.commit(true).unwrap();
            // Not committed: lost on a crash (dropped without stop).
            c.update_acks(2, 2).unwrap();
            std::mem::forget(c);
        }
        let c = open_with(&dir, Durability::Always);
        let st = c.state();
        assert_eq!(st.delivered.consumer, 2);
        assert_eq!(st.ack_floor.consumer, 1, "only committed acks survive");
        assert!(st.pending.contains_key(&2));
    }
}
