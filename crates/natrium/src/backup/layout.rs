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
use object_store::path::Path as ObjPath;

use super::target::{ObjectTarget, Target};

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
        let v = self.parse_meta(&bytes)?;
        if !self.target.exists(ARCHIVE).await? {
            return Err(io(
                &self.archive(),
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        Ok(v)
    }

    /// Parse `backup.json` and check it has the `config` object restore needs.
    fn parse_meta(&self, bytes: &[u8]) -> Result<serde_json::Value, BackupError> {
        let v: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| BackupError::Json {
                path: self.meta(),
                detail: e.to_string(),
            })?;
        if !v.get("config").is_some_and(serde_json::Value::is_object) {
            return Err(BackupError::Json {
                path: self.meta(),
                detail: "no \"config\" object".into(),
            });
        }
        Ok(v)
    }
}

impl StreamDir {
    /// `stream.tar.s2` as a blocking reader on any target (a local file, or an
    /// object's streaming GET pumped through a bounded channel); run the reading in
    /// `spawn_blocking`.
    pub async fn read_archive(&self) -> Result<Box<dyn std::io::Read + Send>, BackupError> {
        Ok(self.target.open(ARCHIVE).await?.into_blocking_read())
    }

    /// Undo [`StreamDir::start`] of a backup that never received data: remove the
    /// archive and the marker, and a local folder if that leaves it empty.
    pub async fn discard(&self) -> Result<(), BackupError> {
        self.target.remove_if_present(ARCHIVE).await?;
        self.target.remove_if_present(INCOMPLETE).await?;
        if let Some(dir) = self.target.local() {
            // Only removes an empty folder: one the user had filled stays.
            let _ = std::fs::remove_dir(dir);
        }
        Ok(())
    }

    /// Another backup named the way `backup.json` records a parent: an `s3://` or
    /// `file://` URL; an absolute path (a local folder); or a path relative to this
    /// backup, on this backup's kind of target (locally a folder; on object storage a
    /// key prefix in the same bucket, `..` going up one prefix component).
    pub fn resolve(&self, recorded: &str) -> Result<StreamDir, BackupError> {
        if recorded.contains("://") || Path::new(recorded).is_absolute() {
            return Target::parse(recorded).map(StreamDir::at);
        }
        match &self.target {
            Target::Local(_) => Ok(StreamDir::new(self.dir.join(recorded))),
            Target::Object(o) => {
                let mut parts: Vec<String> =
                    o.prefix.parts().map(|p| p.as_ref().to_string()).collect();
                for c in recorded.split('/') {
                    match c {
                        "" | "." => {}
                        ".." => {
                            if parts.pop().is_none() {
                                return Err(BackupError::Usage(format!(
                                    "{}: recorded parent {recorded:?} goes above the bucket",
                                    self.dir.display()
                                )));
                            }
                        }
                        c => parts.push(c.to_string()),
                    }
                }
                let prefix = ObjPath::parse(parts.join("/")).map_err(|e| {
                    BackupError::Usage(format!(
                        "{}: recorded parent {recorded:?} is no valid object prefix: {e}",
                        self.dir.display()
                    ))
                })?;
                Ok(StreamDir::at(Target::Object(ObjectTarget {
                    prefix,
                    ..o.clone()
                })))
            }
        }
    }

    /// How to record `other` in this backup's `backup.json` (read back by
    /// [`StreamDir::resolve`]): a relative path when both are local folders that
    /// resolve, or both prefixes in one bucket — so a chain can be moved or copied as
    /// a whole; else where `other` is: its `s3://` URL, or its absolute local path
    /// (a local folder as given when it does not resolve, as before).
    pub fn record(&self, other: &StreamDir) -> String {
        match (&self.target, &other.target) {
            (Target::Local(_), Target::Local(_)) => match (
                std::fs::canonicalize(&self.dir),
                std::fs::canonicalize(&other.dir),
            ) {
                (Ok(from), Ok(to)) => relative(&from, &to).display().to_string(),
                _ => other.dir.display().to_string(),
            },
            (Target::Object(a), Target::Object(b)) if a.bucket == b.bucket => {
                let root = |p: &ObjPath| Path::new("/").join(p.as_ref());
                relative(&root(&a.prefix), &root(&b.prefix))
                    .display()
                    .to_string()
            }
            (_, Target::Object(b)) => b.url(None),
            (Target::Object(_), Target::Local(p)) => std::fs::canonicalize(p)
                .or_else(|_| std::path::absolute(p))
                .unwrap_or_else(|_| p.clone())
                .display()
                .to_string(),
        }
    }
}

/// What a resumed backup (`resume`) needs: the marker, and a scratch sub-folder for
/// the fetched rest — on any target.
impl StreamDir {
    /// Whether the folder holds an interrupted backup (marker, no `backup.json`).
    pub async fn is_interrupted(&self) -> Result<bool, BackupError> {
        Ok(self.target.exists(INCOMPLETE).await? && !self.target.exists(META).await?)
    }

    /// What the unfinished marker says (which backup was interrupted).
    pub async fn marker_text(&self) -> Result<String, BackupError> {
        let b = self.target.read_small(INCOMPLETE).await?;
        Ok(String::from_utf8_lossy(&b).into_owned())
    }

    /// A scratch sub-folder, emptied (whatever an earlier attempt left is removed).
    pub async fn fresh_sub(&self, name: &str) -> Result<StreamDir, BackupError> {
        let t = self.target.join(name);
        t.remove_all().await?;
        Ok(StreamDir::at(t))
    }

    /// Remove a scratch sub-folder.
    pub async fn remove_sub(&self, sub: &StreamDir) -> Result<(), BackupError> {
        sub.target.remove_all().await
    }
}

/// `to` as seen from the folder `from` (both absolute and canonical).
fn relative(from: &Path, to: &Path) -> PathBuf {
    let f: Vec<_> = from.components().collect();
    let t: Vec<_> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..f.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c);
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        let r = |a: &str, b: &str| relative(Path::new(a), Path::new(b)).display().to_string();
        assert_eq!(r("/b/inc1", "/b/full"), "../full");
        assert_eq!(r("/b/x/inc1", "/b/full"), "../../full");
        assert_eq!(r("/b", "/b/full"), "full");
        assert_eq!(r("/b", "/b"), ".");
    }

    #[test]
    fn parents_recorded_and_found_on_object_storage() {
        let at = |s: &str| StreamDir::at(Target::parse(s).unwrap());
        let inc = at("s3://bkt/nightly/d2/ORDERS");
        // Same bucket: relative, and found again by key prefix.
        let rec = inc.record(&at("s3://bkt/nightly/d1/ORDERS"));
        assert_eq!(rec, "../../d1/ORDERS");
        let back = inc.resolve(&rec).unwrap();
        assert_eq!(back.target.display(), "s3://bkt/nightly/d1/ORDERS");
        // Another bucket: the URL.
        let rec = inc.record(&at("s3://other/full"));
        assert_eq!(rec, "s3://other/full");
        assert_eq!(
            inc.resolve(&rec).unwrap().target.display(),
            "s3://other/full"
        );
        // A local parent of an s3 backup: its absolute path, read as a local folder.
        let tmp = std::env::temp_dir();
        let rec = inc.record(&StreamDir::new(&tmp));
        assert!(Path::new(&rec).is_absolute(), "{rec}");
        assert!(inc.resolve(&rec).unwrap().target.local().is_some());
        // An s3 parent of a local backup: its URL.
        let rec = StreamDir::new(&tmp).record(&inc);
        assert_eq!(rec, "s3://bkt/nightly/d2/ORDERS");
        // Above the bucket's root is refused.
        assert!(inc.resolve("../../../../x").is_err());
    }
}
