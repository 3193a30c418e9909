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
//!
//! The same layout holds at an object-storage prefix (see `target`): a backup there is
//! complete exactly when `backup.json` exists and no `INCOMPLETE` object does.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::BackupError;
use super::target::Target;

/// The archive file.
pub const ARCHIVE: &str = "stream.tar.s2";
/// The config and state file.
pub const META: &str = "backup.json";
/// Present while a backup is being written.
pub const INCOMPLETE: &str = "INCOMPLETE";

/// One stream backup folder (or object prefix).
#[derive(Debug, Clone)]
pub struct StreamDir {
    /// The folder; for an object-storage target its `s3://` URL (for messages only).
    pub dir: PathBuf,
    /// Where its files are read and written.
    pub target: Target,
}

impl StreamDir {
    /// The local folder at `dir`.
    #[allow(dead_code)] // the local-only constructor, kept for callers that have a path
    pub fn new(dir: impl Into<PathBuf>) -> StreamDir {
        let dir = dir.into();
        StreamDir {
            target: Target::Local(dir.clone()),
            dir,
        }
    }

    /// The backup at `target` (a folder or an object prefix).
    pub fn at(target: Target) -> StreamDir {
        StreamDir {
            dir: target.local().map_or_else(
                || PathBuf::from(target.display()),
                std::path::Path::to_path_buf,
            ),
            target,
        }
    }

    /// `stream.tar.s2`.
    pub fn archive(&self) -> PathBuf {
        self.target.location(ARCHIVE)
    }

    /// `backup.json`.
    pub fn meta(&self) -> PathBuf {
        self.target.location(META)
    }

    /// The unfinished marker.
    #[allow(dead_code)] // for messages, like `meta` and `archive`
    pub fn marker(&self) -> PathBuf {
        self.target.location(INCOMPLETE)
    }

    /// Create the folder (0700, like the nats CLI) and mark it unfinished. Refuses a
    /// folder that already holds a backup. On object storage this first checks the
    /// bucket is reachable.
    pub async fn start(&self, what: &str) -> Result<(), BackupError> {
        self.target.prepare().await?;
        if self.target.exists(META).await? || self.target.exists(ARCHIVE).await? {
            return Err(BackupError::Exists(self.dir.clone()));
        }
        self.target
            .write_small(INCOMPLETE, format!("{what}\n").as_bytes())
            .await
    }

    /// Write `backup.json`, then drop the marker (each step synced).
    pub async fn finish(&self, meta: &serde_json::Value) -> Result<(), BackupError> {
        let body = serde_json::to_vec_pretty(meta).map_err(|e| BackupError::Json {
            path: self.meta(),
            detail: e.to_string(),
        })?;
        self.target.write_small(META, &body).await?;
        self.target.remove(INCOMPLETE).await
    }

    /// Check the folder is a finished backup; returns the parsed `backup.json`.
    pub async fn read_meta(&self) -> Result<serde_json::Value, BackupError> {
        if self.target.exists(INCOMPLETE).await? {
            return Err(BackupError::Incomplete(self.dir.clone()));
        }
        let bytes = self.target.read_small(META).await?;
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
        if !self.target.exists(ARCHIVE).await? {
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
