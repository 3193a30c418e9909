//! Small metadata files, the directory lock, and fsync helpers.
//!
//! Why the ceremony: a metadata file (stream config, consumer config, consumer snapshot,
//! store format) must be either the old version or the new one after a crash, never a
//! mix. So it is written to `NAME.tmp`, fsynced, renamed over `NAME`, and the directory is
//! fsynced so the rename itself is durable. Each file carries magic bytes, a format
//! version, a kind and a CRC-32C, so a torn or foreign file is detected instead of parsed.
//!
//! Envelope (little endian):
//! ```text
//!   0  4  magic  "NTRM"
//!   4  4  version (1)
//!   8  4  kind   (1 store format, 2 stream meta, 3 consumer config, 4 consumer state,
//!                 5 sources state)
//!  12  8  payload length
//!  20  …  payload
//!  end 4  CRC-32C of everything before it
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::{CorruptLocation, Result, StoreError};

/// Magic of metadata files.
pub const META_MAGIC: [u8; 4] = *b"NTRM";
/// Version of the envelope.
pub const META_VERSION: u32 = 1;
/// Largest metadata payload accepted when reading (bounds the allocation).
pub const MAX_META_LEN: u64 = 256 * 1024 * 1024;

/// Metadata file kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum MetaKind {
    /// `store.nmeta`: store format description.
    StoreFormat = 1,
    /// `stream.nmeta`: the server's opaque stream config.
    StreamMeta = 2,
    /// `consumers/NAME/config.nmeta`.
    ConsumerConfig = 3,
    /// `consumers/NAME/state.nmeta`.
    ConsumerState = 4,
    /// `sources.nmeta`: how far a stream's sources have copied (the server's record).
    SourcesState = 5,
}

/// fsyncs a directory so renames/creates/unlinks in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let d = File::open(dir).map_err(|e| StoreError::io("open dir", dir, e))?;
    d.sync_all()
        .map_err(|e| StoreError::io("fsync dir", dir, e))
}

/// Creates `dir` and whatever of its ancestors is missing, then fsyncs the parent of
/// every folder it created, so their names survive a power loss, not just a killed
/// process. (`create_dir_all` alone leaves a new stream's folder, and a new account's,
/// in the page cache of their parents.) What goes into `dir` itself is the caller's to
/// sync, as with any folder.
pub fn create_dir_durable(dir: &Path) -> Result<()> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(p) = at {
        if p.as_os_str().is_empty() || p.exists() {
            break;
        }
        missing.push(p);
        at = p.parent();
    }
    if missing.is_empty() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| StoreError::io("mkdir", dir, e))?;
    for created in missing {
        match created.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent)?,
            _ => sync_dir(Path::new("."))?,
        }
    }
    Ok(())
}

/// Writes a metadata file atomically (temp → fsync → rename → fsync dir).
pub fn write_meta(path: &Path, kind: MetaKind, payload: &[u8]) -> Result<()> {
    let mut buf = Vec::with_capacity(payload.len() + 24);
    buf.extend_from_slice(&META_MAGIC);
    buf.extend_from_slice(&META_VERSION.to_le_bytes());
    buf.extend_from_slice(&(kind as u32).to_le_bytes());
    buf.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    buf.extend_from_slice(payload);
    let crc = crc32c::crc32c(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    let tmp = tmp_path(path);
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| StoreError::io("create", &tmp, e))?;
        f.write_all(&buf)
            .map_err(|e| StoreError::io("write", &tmp, e))?;
        f.sync_all().map_err(|e| StoreError::io("fsync", &tmp, e))?;
    }
    fs::rename(&tmp, path).map_err(|e| StoreError::io("rename", path, e))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    sync_dir(dir)
}

/// Reads and verifies a metadata file. `Ok(None)` if it does not exist.
pub fn read_meta(path: &Path, kind: MetaKind) -> Result<Option<Vec<u8>>> {
    let corrupt = |d: String| StoreError::Corrupt {
        location: CorruptLocation::File(path.to_path_buf()),
        detail: d,
    };
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io("open", path, e)),
    };
    let size = f
        .metadata()
        .map_err(|e| StoreError::io("stat", path, e))?
        .len();
    if size > MAX_META_LEN + 24 {
        return Err(corrupt(format!("file too large ({size} bytes)")));
    }
    let mut buf = Vec::with_capacity(size as usize);
    f.read_to_end(&mut buf)
        .map_err(|e| StoreError::io("read", path, e))?;
    if buf.len() < 24 {
        return Err(corrupt("truncated".into()));
    }
    let (body, crc) = buf.split_at(buf.len() - 4);
    if crc32c::crc32c(body) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
        return Err(corrupt("checksum mismatch".into()));
    }
    if body[..4] != META_MAGIC {
        return Err(corrupt("bad magic".into()));
    }
    let version = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
    if version != META_VERSION {
        return Err(StoreError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
            supported: META_VERSION,
        });
    }
    let k = u32::from_le_bytes([body[8], body[9], body[10], body[11]]);
    if k != kind as u32 {
        return Err(corrupt(format!("kind {k}, expected {}", kind as u32)));
    }
    let mut l = [0u8; 8];
    l.copy_from_slice(&body[12..20]);
    let len = u64::from_le_bytes(l);
    if len != (body.len() - 20) as u64 {
        return Err(corrupt("length mismatch".into()));
    }
    Ok(Some(body[20..].to_vec()))
}

/// `path` with `.tmp` appended.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".tmp");
    PathBuf::from(s)
}

/// An exclusive advisory lock (flock) on `DIR/LOCK`, held for the store's lifetime.
/// flock locks belong to the open file description, so a second open of the same store
/// — from another process or this one — fails with `Locked`.
#[derive(Debug)]
pub struct DirLock {
    /// The lock file (closing it releases the lock).
    _file: File,
}

impl DirLock {
    /// Takes the lock or fails with `Locked`.
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        let path = dir.join("LOCK");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StoreError::io("open", &path, e))?;
        // SAFETY: flock on a valid, owned file descriptor; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(StoreError::Locked {
                    path: dir.to_path_buf(),
                });
            }
            return Err(StoreError::io("flock", &path, err));
        }
        Ok(DirLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_dir_durable_makes_missing_ancestors_and_refuses_a_file_in_the_way() {
        let d = tempfile::tempdir().unwrap();
        let deep = d.path().join("acc").join("streams").join("S");
        create_dir_durable(&deep).unwrap();
        assert!(deep.is_dir());
        create_dir_durable(&deep).unwrap();
        let file = d.path().join("f");
        fs::write(&file, b"x").unwrap();
        assert!(matches!(
            create_dir_durable(&file.join("sub")),
            Err(StoreError::Io { .. })
        ));
    }

    #[test]
    fn meta_roundtrip_and_corruption() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.nmeta");
        assert_eq!(read_meta(&p, MetaKind::StreamMeta).unwrap(), None);
        write_meta(&p, MetaKind::StreamMeta, b"{\"a\":1}").unwrap();
        assert_eq!(
            read_meta(&p, MetaKind::StreamMeta).unwrap().as_deref(),
            Some(&b"{\"a\":1}"[..])
        );
        assert!(read_meta(&p, MetaKind::ConsumerState).is_err());
        let mut raw = fs::read(&p).unwrap();
        raw[21] ^= 1;
        fs::write(&p, &raw).unwrap();
        assert!(matches!(
            read_meta(&p, MetaKind::StreamMeta),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(!tmp_path(&p).exists());
    }

    #[test]
    fn lock_is_exclusive() {
        let d = tempfile::tempdir().unwrap();
        let l = DirLock::acquire(d.path()).unwrap();
        assert!(matches!(
            DirLock::acquire(d.path()),
            Err(StoreError::Locked { .. })
        ));
        drop(l);
        DirLock::acquire(d.path()).unwrap();
    }
}
