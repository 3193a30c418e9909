//! The on-disk layout of a backup, as the `nats` CLI writes it, plus our marker for an
//! unfinished one.
//!
//! A stream backup is a folder with `stream.tar.s2` (the raw snapshot bytes, exactly as
//! the server sent them) and `backup.json` (`{"config": …, "state": …}` from the
//! snapshot answer). An account backup is a folder with one such folder per stream.
//! Both are readable by `nats stream restore` / `nats account restore`.
//!
//! Why the marker: the nats CLI writes `backup.json` last, so an interrupted backup has
//! none and restore fails with a confusing "no such file". We write `INCOMPLETE` first
//! and remove it after `backup.json` is durable; restore and verify refuse a folder
//! that has it, and say why.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::BackupError;

/// The archive file.
pub const ARCHIVE: &str = "stream.tar.s2";
/// The config and state file.
pub const META: &str = "backup.json";
/// Present while a backup is being written.
pub const INCOMPLETE: &str = "INCOMPLETE";

/// Paths of one stream backup folder.
#[derive(Debug, Clone)]
pub struct StreamDir {
    /// The folder.
    pub dir: PathBuf,
}

impl StreamDir {
    /// The folder at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> StreamDir {
        StreamDir { dir: dir.into() }
    }

    /// `stream.tar.s2`.
    pub fn archive(&self) -> PathBuf {
        self.dir.join(ARCHIVE)
    }

    /// `backup.json`.
    pub fn meta(&self) -> PathBuf {
        self.dir.join(META)
    }

    /// The unfinished marker.
    pub fn marker(&self) -> PathBuf {
        self.dir.join(INCOMPLETE)
    }

    /// Create the folder (0700, like the nats CLI) and mark it unfinished. Refuses a
    /// folder that already holds a backup.
    pub fn start(&self, what: &str) -> Result<(), BackupError> {
        create_private_dir(&self.dir)?;
        if self.meta().exists() || self.archive().exists() {
            return Err(BackupError::Exists(self.dir.clone()));
        }
        write_synced(&self.marker(), format!("{what}\n").as_bytes())
    }

    /// Write `backup.json`, then drop the marker (each step synced).
    pub fn finish(&self, meta: &serde_json::Value) -> Result<(), BackupError> {
        let body = serde_json::to_vec_pretty(meta).map_err(|e| BackupError::Json {
            path: self.meta(),
            detail: e.to_string(),
        })?;
        write_synced(&self.meta(), &body)?;
        std::fs::remove_file(self.marker()).map_err(|e| io(&self.marker(), e))?;
        sync_dir(&self.dir)
    }

    /// Check the folder is a finished backup; returns the parsed `backup.json`.
    pub fn read_meta(&self) -> Result<serde_json::Value, BackupError> {
        if self.marker().exists() {
            return Err(BackupError::Incomplete(self.dir.clone()));
        }
        let bytes = std::fs::read(self.meta()).map_err(|e| io(&self.meta(), e))?;
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| BackupError::Json {
                path: self.meta(),
                detail: e.to_string(),
            })?;
        if !v.get("config").is_some_and(serde_json::Value::is_object) {
            return Err(BackupError::Json {
                path: self.meta(),
                detail: "no \"config\" object".into(),
            });
        }
        if !self.archive().is_file() {
            return Err(io(
                &self.archive(),
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        Ok(v)
    }
}

/// An I/O error on `path`.
pub fn io(path: &Path, source: std::io::Error) -> BackupError {
    BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `mkdir -p` with mode 0700 on the last component.
pub fn create_private_dir(dir: &Path) -> Result<(), BackupError> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).map_err(|e| io(dir, e))
}

/// Write a whole file and fsync it.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    let mut f = std::fs::File::create(path).map_err(|e| io(path, e))?;
    f.write_all(bytes).map_err(|e| io(path, e))?;
    f.sync_all().map_err(|e| io(path, e))
}

/// fsync a directory (so a rename or removal in it is durable).
pub fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))
}
