//! Where a backup lives: a local folder or a prefix in an S3-compatible object store.
//!
//! Why one type: operators want `natrium stream backup ORDERS s3://bucket/nightly/`
//! without staging the archive on local disk first (a 25 GiB stream would need 25 GiB
//! free twice over). Every backup command works on a [`Target`], so the folder layout
//! (`backup.json`, `stream.tar.s2`, `INCOMPLETE`, one sub-folder per stream of an
//! account) is the same on both: an object key `PREFIX/NAME` plays the file
//! `DIR/NAME`, a key prefix `PREFIX/SUB/` plays a sub-folder.
//!
//! Streaming both ways: writes go to a multipart upload in parts of a bounded size
//! (memory is `part size × parts in flight`, never the archive), reads come from one
//! streaming GET. Object storage has no fsync and no rename; what makes a backup
//! trustworthy is the order of the writes (marker first, `backup.json` last, marker
//! removed after) and that an unfinished multipart upload is invisible. The upload
//! keeps a journal of its completed parts beside the object (`upload`), so that a
//! killed backup can still be resumed from what reached the store.
//!
//! Two kinds of write: [`Target::create`] writes a new file that an interrupted run
//! leaves partly written (locally the file itself; remotely the journaled parts), for
//! `--resume`; [`Target::create_replacement`] rewrites an existing file all at once on
//! [`Writer::finish`] (locally a temporary file renamed over it; remotely an upload is
//! invisible until it completes), so that until then the old content stays readable.
//!
//! Credentials and endpoint come from the usual AWS variables (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` / `AWS_DEFAULT_REGION`,
//! `AWS_ENDPOINT_URL`); plain `http://` is allowed for a loopback endpoint or with
//! `AWS_ALLOW_HTTP=true`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::multipart::MultipartStore;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, RetryConfig};

use super::BackupError;
use super::layout::{create_private_dir, io, sync_dir, write_synced};
use super::upload::{JOURNAL_SUFFIX, PartWriter, Recovered};

/// Largest small file (`backup.json`, `account.json`) read whole.
pub const SMALL_FILE_MAX: u64 = 64 * 1024 * 1024;
/// Smallest multipart part (S3 requires ≥ 5 MiB for all but the last).
const MIN_PART: u64 = 8 * 1024 * 1024;
/// Largest multipart part we choose.
const MAX_PART: u64 = 512 * 1024 * 1024;
/// S3 allows 10,000 parts; leave headroom for an archive that outgrows its estimate.
const PARTS_BUDGET: u64 = 8_000;
/// Parts uploading at once (memory is this × the part size).
const PARTS_IN_FLIGHT: usize = 4;
/// Environment variable: smallest part in MiB (tuning for fast or far object stores).
pub const ENV_PART_MIB: &str = "NATRIUM_S3_PART_MIB";
/// Environment variable: parts uploading at once.
pub const ENV_PARTS_IN_FLIGHT: &str = "NATRIUM_S3_PARTS_IN_FLIGHT";
/// Most parts in flight the environment may ask for (and never more than fit in
/// [`MAX_OVERRIDE_BUFFERED`]).
const MAX_PARTS_IN_FLIGHT: u64 = 32;
/// Most bytes an overridden shape may hold in part buffers (in flight + the one being
/// filled): large parts get fewer in flight.
const MAX_OVERRIDE_BUFFERED: u64 = 1024 * 1024 * 1024;

/// The upload shape for one multipart object: part size and parts in flight.
///
/// Defaults (8 MiB, 4 in flight: 32 MiB of buffers) suit most stores; the two
/// environment variables override them for tuning, clamped to S3's 5 MiB minimum,
/// [`MAX_PART`] and [`MAX_PARTS_IN_FLIGHT`], so memory stays bounded whatever is set.
/// A value that is not a number is ignored (the default applies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadShape {
    /// Bytes per part (the last one may be shorter).
    pub part: usize,
    /// Parts uploading at once.
    pub in_flight: usize,
}

impl UploadShape {
    /// The shape for an object of about `size_hint` bytes, given the overrides
    /// `part_mib` and `in_flight` (raw environment values, if set).
    pub fn new(size_hint: u64, part_mib: Option<&str>, in_flight: Option<&str>) -> Self {
        let min_part = part_mib
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|m| {
                m.saturating_mul(1024 * 1024)
                    .clamp(5 * 1024 * 1024, MAX_PART)
            })
            .unwrap_or(MIN_PART);
        let in_flight_set = in_flight.is_some();
        let in_flight = in_flight
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|n| n.clamp(1, MAX_PARTS_IN_FLIGHT) as usize)
            .unwrap_or(PARTS_IN_FLIGHT);
        let part = (size_hint / PARTS_BUDGET).clamp(min_part, MAX_PART) as usize;
        // A tuned shape may not buffer more than MAX_OVERRIDE_BUFFERED; the default
        // shape is left alone (its part only grows for archives too big for 8,000 parts).
        let tuned = part_mib.is_some() || in_flight_set;
        let cap = ((MAX_OVERRIDE_BUFFERED / part as u64).saturating_sub(1) as usize).max(1);
        let in_flight = if tuned { in_flight.min(cap) } else { in_flight };
        UploadShape { part, in_flight }
    }

    /// The shape from the process environment.
    pub fn from_env(size_hint: u64) -> Self {
        let part = std::env::var(ENV_PART_MIB).ok();
        let in_flight = std::env::var(ENV_PARTS_IN_FLIGHT).ok();
        Self::new(size_hint, part.as_deref(), in_flight.as_deref())
    }
}
/// Folder depth a local listing descends (target / backup / stream / file).
const LOCAL_DEPTH: usize = 4;

/// A backup location.
#[derive(Debug, Clone)]
pub enum Target {
    /// A folder on this machine.
    Local(PathBuf),
    /// A key prefix in an object store.
    Object(ObjectTarget),
}

/// A key prefix in an object store.
#[derive(Clone)]
pub struct ObjectTarget {
    /// The store (one bucket).
    pub store: Arc<dyn ObjectStore>,
    /// The same store's multipart API (journaled uploads, see `upload`).
    pub multipart: Arc<dyn MultipartStore>,
    /// Bucket name, for messages.
    pub bucket: String,
    /// The prefix inside the bucket (empty for the bucket's root).
    pub prefix: ObjPath,
}

impl std::fmt::Debug for ObjectTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectTarget")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// One file found by [`Target::list_recursive`].
#[derive(Debug, Clone)]
pub struct Listed {
    /// Path relative to the target, `/`-separated.
    pub rel: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, Unix seconds.
    pub modified: i64,
}

impl Target {
    /// Parse a command-line target: `s3://bucket/prefix`, `file://path` or a plain path.
    pub fn parse(s: &str) -> Result<Target, BackupError> {
        if let Some(rest) = s.strip_prefix("file://") {
            if rest.is_empty() {
                return Err(BackupError::Usage(format!(
                    "{s:?}: file:// URL without a path"
                )));
            }
            return Ok(Target::Local(PathBuf::from(rest)));
        }
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(BackupError::Usage(format!(
                    "{s:?}: no bucket; use s3://BUCKET/PREFIX"
                )));
            }
            let prefix = ObjPath::parse(prefix.trim_matches('/'))
                .map_err(|e| BackupError::Usage(format!("{s:?}: invalid object prefix: {e}")))?;
            let s3 = Arc::new(s3_store(bucket)?);
            return Ok(Target::Object(ObjectTarget {
                store: s3.clone(),
                multipart: s3,
                bucket: bucket.to_string(),
                prefix,
            }));
        }
        if let Some((scheme, _)) = s.split_once("://")
            && !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+')
        {
            return Err(BackupError::Usage(format!(
                "{s:?}: unsupported URL scheme {scheme:?}; use a folder, file://PATH or s3://BUCKET/PREFIX"
            )));
        }
        Ok(Target::Local(PathBuf::from(s)))
    }

    /// The sub-folder (sub-prefix) `name`.
    pub fn join(&self, name: &str) -> Target {
        match self {
            Target::Local(p) => Target::Local(p.join(name)),
            Target::Object(o) => Target::Object(ObjectTarget {
                store: o.store.clone(),
                multipart: o.multipart.clone(),
                bucket: o.bucket.clone(),
                prefix: o.key(name),
            }),
        }
    }

    /// How to show it to a person (a path or an `s3://` URL).
    pub fn display(&self) -> String {
        match self {
            Target::Local(p) => p.display().to_string(),
            Target::Object(o) => o.url(None),
        }
    }

    /// The location of `name` inside, for messages.
    pub fn location(&self, name: &str) -> PathBuf {
        match self {
            Target::Local(p) => p.join(name),
            Target::Object(o) => PathBuf::from(o.url(Some(name))),
        }
    }

    /// The local folder, if it is one.
    pub fn local(&self) -> Option<&Path> {
        match self {
            Target::Local(p) => Some(p),
            Target::Object(_) => None,
        }
    }

    /// Make the folder exist (0700), or check the bucket is reachable with these
    /// credentials (one listing), so a bad URL fails before any transfer begins.
    pub async fn prepare(&self) -> Result<(), BackupError> {
        match self {
            Target::Local(p) => create_private_dir(p),
            Target::Object(o) => o
                .store
                .list_with_delimiter(Some(&o.prefix))
                .await
                .map(|_| ())
                .map_err(|e| o.err(None, e)),
        }
    }

    /// Whether the file `name` exists.
    pub async fn exists(&self, name: &str) -> Result<bool, BackupError> {
        match self {
            Target::Local(p) => Ok(p.join(name).exists()),
            Target::Object(o) => match o.store.head(&o.key(name)).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(o.err(Some(name), e)),
            },
        }
    }

    /// Read the small file `name` whole (refused above [`SMALL_FILE_MAX`]).
    pub async fn read_small(&self, name: &str) -> Result<Vec<u8>, BackupError> {
        let mut r = self.open(name).await?;
        if r.size > SMALL_FILE_MAX {
            return Err(BackupError::Usage(format!(
                "{}: {} bytes, more than the {} a metadata file may have",
                self.location(name).display(),
                r.size,
                SMALL_FILE_MAX
            )));
        }
        let mut out = Vec::with_capacity(r.size as usize);
        while let Some(b) = r.next_chunk(256 * 1024).await? {
            out.extend_from_slice(&b);
            if out.len() as u64 > SMALL_FILE_MAX {
                return Err(BackupError::Usage(format!(
                    "{}: grew past {SMALL_FILE_MAX} bytes while read",
                    self.location(name).display()
                )));
            }
        }
        Ok(out)
    }

    /// Write the small file `name` whole, durably (fsync locally; one PUT remotely).
    pub async fn write_small(&self, name: &str, bytes: &[u8]) -> Result<(), BackupError> {
        match self {
            Target::Local(p) => write_synced(&p.join(name), bytes),
            Target::Object(o) => o
                .store
                .put(&o.key(name), Bytes::copy_from_slice(bytes).into())
                .await
                .map(|_| ())
                .map_err(|e| o.err(Some(name), e)),
        }
    }

    /// Remove the file `name` (and make that durable).
    pub async fn remove(&self, name: &str) -> Result<(), BackupError> {
        match self {
            Target::Local(p) => {
                let path = p.join(name);
                std::fs::remove_file(&path).map_err(|e| io(&path, e))?;
                sync_dir(p)
            }
            Target::Object(o) => o
                .store
                .delete(&o.key(name))
                .await
                .map_err(|e| o.err(Some(name), e)),
        }
    }

    /// Start writing the new file `name`; `size_hint` (bytes expected) picks the part
    /// size of a multipart upload. What an interrupted run wrote stays for `--resume`
    /// (see [`Target::recover_upload`]).
    pub async fn create(&self, name: &str, size_hint: u64) -> Result<Writer, BackupError> {
        match self {
            Target::Local(p) => {
                let path = p.join(name);
                let file = std::fs::File::create(&path).map_err(|e| io(&path, e))?;
                Ok(Writer::File {
                    file,
                    path,
                    replaces: None,
                })
            }
            Target::Object(o) => Ok(Writer::Multipart(Box::new(
                PartWriter::start(o, name, UploadShape::from_env(size_hint), true).await?,
            ))),
        }
    }

    /// Start rewriting the file `name`: it keeps its old content, readable, until
    /// [`Writer::finish`] puts the new one in its place at once (a local temporary
    /// file `NAME.new` renamed over it; an upload, invisible until it completes).
    pub async fn create_replacement(
        &self,
        name: &str,
        size_hint: u64,
    ) -> Result<Writer, BackupError> {
        match self {
            Target::Local(p) => {
                let path = p.join(format!("{name}.new"));
                let file = std::fs::File::create(&path).map_err(|e| io(&path, e))?;
                Ok(Writer::File {
                    file,
                    path,
                    replaces: Some(p.join(name)),
                })
            }
            Target::Object(o) => Ok(Writer::Multipart(Box::new(
                PartWriter::start(o, name, UploadShape::from_env(size_hint), false).await?,
            ))),
        }
    }

    /// After an interrupted run of [`Target::create`]: make what reached the store the
    /// file `name`. Locally the file already is what was written; on object storage
    /// the journaled parts are completed into the object (a prefix of what was being
    /// written) and stale uploads are aborted (see `upload`).
    pub async fn recover_upload(&self, name: &str) -> Result<Recovered, BackupError> {
        match self {
            Target::Local(_) => Ok(Recovered::Nothing),
            Target::Object(o) => o.recover_upload(name).await,
        }
    }

    /// Size of the file `name` in bytes.
    pub async fn size(&self, name: &str) -> Result<u64, BackupError> {
        match self {
            Target::Local(p) => {
                let path = p.join(name);
                Ok(std::fs::metadata(&path).map_err(|e| io(&path, e))?.len())
            }
            Target::Object(o) => o
                .store
                .head(&o.key(name))
                .await
                .map(|m| m.size)
                .map_err(|e| o.err(Some(name), e)),
        }
    }

    /// Remove the file `name` if it exists.
    pub async fn remove_if_present(&self, name: &str) -> Result<(), BackupError> {
        match self {
            Target::Local(p) => match std::fs::remove_file(p.join(name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&p.join(name), e)),
                _ => Ok(()),
            },
            Target::Object(o) => o.remove_if_present(name).await,
        }
    }

    /// Open the file `name` for streaming reads.
    pub async fn open(&self, name: &str) -> Result<Reader, BackupError> {
        match self {
            Target::Local(p) => {
                let path = p.join(name);
                let file = std::fs::File::open(&path).map_err(|e| io(&path, e))?;
                let size = file.metadata().map_err(|e| io(&path, e))?.len();
                Ok(Reader {
                    size,
                    location: path.clone(),
                    inner: ReaderInner::File(file),
                    pending: Bytes::new(),
                })
            }
            Target::Object(o) => {
                let got = o
                    .store
                    .get(&o.key(name))
                    .await
                    .map_err(|e| o.err(Some(name), e))?;
                Ok(Reader {
                    size: got.meta.size,
                    location: PathBuf::from(o.url(Some(name))),
                    inner: ReaderInner::Stream(got.into_stream()),
                    pending: Bytes::new(),
                })
            }
        }
    }

    /// Names of the sub-folders (sub-prefixes), sorted.
    pub async fn children(&self) -> Result<Vec<String>, BackupError> {
        let mut out = Vec::new();
        match self {
            Target::Local(p) => {
                for e in std::fs::read_dir(p).map_err(|e| io(p, e))? {
                    let e = e.map_err(|e| io(p, e))?;
                    if e.path().is_dir() {
                        out.push(e.file_name().to_string_lossy().into_owned());
                    }
                }
            }
            Target::Object(o) => {
                let l = o
                    .store
                    .list_with_delimiter(Some(&o.prefix))
                    .await
                    .map_err(|e| o.err(None, e))?;
                for cp in l.common_prefixes {
                    if let Some(last) = cp.filename() {
                        out.push(last.to_string());
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Every file below, with sizes and times (a local listing stops a few folders
    /// down: backups are never deeper).
    pub async fn list_recursive(&self) -> Result<Vec<Listed>, BackupError> {
        let mut out = Vec::new();
        match self {
            Target::Local(p) => walk(p, "", LOCAL_DEPTH, &mut out)?,
            Target::Object(o) => {
                let mut s = o.store.list(Some(&o.prefix));
                while let Some(m) = s.next().await {
                    let m = m.map_err(|e| o.err(None, e))?;
                    let Some(rel) = m.location.prefix_match(&o.prefix) else {
                        continue;
                    };
                    let rel: Vec<String> = rel.map(|p| p.as_ref().to_string()).collect();
                    out.push(Listed {
                        rel: rel.join("/"),
                        size: m.size,
                        modified: m.last_modified.timestamp(),
                    });
                }
            }
        }
        out.sort_by(|a, b| a.rel.cmp(&b.rel));
        Ok(out)
    }

    /// Delete everything below (the folder itself too, locally; nothing there is not
    /// an error). On object storage the uploads that journals below name are aborted
    /// first, so no invisible parts are left behind.
    pub async fn remove_all(&self) -> Result<(), BackupError> {
        match self {
            Target::Local(p) => match std::fs::remove_dir_all(p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(p, e)),
                _ => Ok(()),
            },
            Target::Object(o) => {
                for f in self.list_recursive().await? {
                    if let Some(name) = f.rel.strip_suffix(JOURNAL_SUFFIX) {
                        o.abandon_upload(name).await?;
                    }
                }
                let locations = o.store.list(Some(&o.prefix)).map(|m| m.map(|m| m.location));
                let mut deleted = o.store.delete_stream(locations.boxed());
                while let Some(r) = deleted.next().await {
                    r.map_err(|e| o.err(None, e))?;
                }
                Ok(())
            }
        }
    }
}

fn walk(dir: &Path, rel: &str, depth: usize, out: &mut Vec<Listed>) -> Result<(), BackupError> {
    if depth == 0 {
        return Ok(());
    }
    for e in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let e = e.map_err(|e| io(dir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let r = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let md = e.metadata().map_err(|err| io(&e.path(), err))?;
        if md.is_dir() {
            walk(&e.path(), &r, depth - 1, out)?;
        } else {
            let modified = md
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs() as i64);
            out.push(Listed {
                rel: r,
                size: md.len(),
                modified,
            });
        }
    }
    Ok(())
}

impl ObjectTarget {
    /// The key of the file `name` below the prefix.
    pub(super) fn key(&self, name: &str) -> ObjPath {
        let mut k = self.prefix.clone();
        for part in name.split('/').filter(|p| !p.is_empty()) {
            k = k.join(part);
        }
        k
    }

    /// The `s3://` URL of `name` (or of the prefix).
    pub(super) fn url(&self, name: Option<&str>) -> String {
        let k = match name {
            Some(n) => self.key(n),
            None => self.prefix.clone(),
        };
        format!("s3://{}/{}", self.bucket, k)
    }

    /// A one-line error for an object-store failure on `name` (or the prefix).
    pub(super) fn err(&self, name: Option<&str>, e: object_store::Error) -> BackupError {
        BackupError::Object {
            url: self.url(name),
            detail: describe(&e),
        }
    }
}

impl ObjectTarget {
    /// Write the small object `name` whole (one PUT).
    pub(super) async fn put_small(&self, name: &str, body: Bytes) -> Result<(), BackupError> {
        self.store
            .put(&self.key(name), body.into())
            .await
            .map(|_| ())
            .map_err(|e| self.err(Some(name), e))
    }

    /// Delete the object `name`; one that is not there is fine.
    pub(super) async fn remove_if_present(&self, name: &str) -> Result<(), BackupError> {
        match self.store.delete(&self.key(name)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(Some(name), e)),
        }
    }
}

/// A short, single-line reason for an object-store error, naming the usual causes.
fn describe(e: &object_store::Error) -> String {
    let text = e.to_string();
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let hint = if one_line.contains("NoSuchBucket") {
        Some("the bucket does not exist")
    } else if one_line.contains("InvalidAccessKeyId")
        || one_line.contains("SignatureDoesNotMatch")
        || matches!(
            e,
            object_store::Error::Unauthenticated { .. }
                | object_store::Error::PermissionDenied { .. }
        )
    {
        Some("access denied: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    } else if matches!(e, object_store::Error::NotFound { .. }) {
        Some("not found")
    } else if one_line.contains("error sending request")
        || one_line.contains("onnection refused")
        || one_line.contains("dns error")
    {
        Some("cannot reach the object store (check AWS_ENDPOINT_URL)")
    } else {
        None
    };
    // With a known cause, the HTTP status is all the rest a person needs.
    let status = one_line
        .split_once("status code: ")
        .map(|(_, rest)| rest.split(':').next().unwrap_or(rest).trim().to_string());
    match (hint, status) {
        (Some(h), Some(st)) => format!("{h} (HTTP {st})"),
        (Some(h), None) => h.to_string(),
        (None, _) => {
            let mut detail: String = one_line.chars().take(240).collect();
            if detail.len() < one_line.len() {
                detail.push('…');
            }
            detail
        }
    }
}

/// An S3 client for `bucket` from the AWS environment variables.
fn s3_store(bucket: &str) -> Result<object_store::aws::AmazonS3, BackupError> {
    let mut b = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_retry(RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(30),
            ..RetryConfig::default()
        });
    let endpoint = std::env::var("AWS_ENDPOINT_URL_S3")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .or_else(|_| std::env::var("AWS_ENDPOINT"))
        .unwrap_or_default();
    if is_loopback_http(&endpoint) {
        b = b.with_allow_http(true);
    }
    if let Some(unsigned) = unsigned_payload(
        &endpoint,
        std::env::var("AWS_UNSIGNED_PAYLOAD").ok().as_deref(),
    ) {
        b = b.with_unsigned_payload(unsigned);
    }
    if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none()
    {
        b = b.with_region("us-east-1");
    }
    b.build().map_err(|e| BackupError::Object {
        url: format!("s3://{bucket}"),
        detail: describe(&e),
    })
}

/// Whether to sign request bodies (SigV4 over a SHA-256 of every part), given the
/// endpoint and `AWS_UNSIGNED_PAYLOAD` if set (`None`: leave the builder's choice).
///
/// Why not by default: hashing every part costs the CLI CPU on the critical path of a
/// backup, and over TLS (the default AWS endpoint, any `https://` one) the transport
/// already protects the body, as it does on loopback; S3 accepts `UNSIGNED-PAYLOAD`
/// there. Over plain HTTP to another host the signature is the body's only integrity
/// check, so it stays. The variable, when set, decides (object_store reads it too).
fn unsigned_payload(endpoint: &str, env: Option<&str>) -> Option<bool> {
    if env.is_some() {
        return None;
    }
    Some(endpoint.is_empty() || endpoint.starts_with("https://") || is_loopback_http(endpoint))
}

/// `http://` to 127.0.0.0/8, `localhost` or `[::1]`: no TLS needed on loopback.
fn is_loopback_http(endpoint: &str) -> bool {
    let Some(rest) = endpoint.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split('/').next().unwrap_or("");
    let host = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A file being written.
#[derive(Debug)]
pub enum Writer {
    /// A local file.
    File {
        /// The open file (written in the pieces given: chunks of 128 KiB or more).
        file: std::fs::File,
        /// Its path.
        path: PathBuf,
        /// A replacement (`Target::create_replacement`): the file it is renamed over.
        replaces: Option<PathBuf>,
    },
    /// A journaled multipart upload.
    Multipart(Box<PartWriter>),
}

impl Writer {
    /// Append `b`. Waits while too many parts are uploading (back-pressure).
    pub async fn write(&mut self, b: Bytes) -> Result<(), BackupError> {
        match self {
            Writer::File { file, path, .. } => write_local(file, path, &b),
            Writer::Multipart(up) => up.write(b).await,
        }
    }

    /// Make it whole and durable (fsync, and for a replacement the rename; or complete
    /// the multipart upload).
    pub async fn finish(self) -> Result<(), BackupError> {
        match self {
            Writer::File {
                file,
                path,
                replaces,
            } => {
                file.sync_all().map_err(|e| io(&path, e))?;
                if let Some(to) = replaces {
                    std::fs::rename(&path, &to).map_err(|e| io(&path, e))?;
                    if let Some(dir) = to.parent() {
                        sync_dir(dir)?;
                    }
                }
                Ok(())
            }
            Writer::Multipart(up) => up.finish().await,
        }
    }

    /// Stop after a failure (best effort). A new file keeps what was written for
    /// `--resume` (flushed; the journal of an upload brought up to date); a
    /// replacement is dropped and the old content stays.
    pub async fn stop(self) {
        match self {
            Writer::File {
                file,
                path,
                replaces,
            } => {
                if replaces.is_some() {
                    drop(file);
                    let _ = std::fs::remove_file(&path);
                } else {
                    let _ = file.sync_all();
                }
            }
            Writer::Multipart(up) => up.stop().await,
        }
    }
}

/// Bytes of a local archive after which their writeback is started (and the step
/// before them waited for): see [`write_local`].
const WRITEBACK_STEP: u64 = 8 << 20;

/// Append `b` to a local archive, keeping its dirty page cache to about two
/// [`WRITEBACK_STEP`]s. Why: a backup writes the stream's whole size, usually on the
/// server's disk; left to the kernel, gigabytes of dirty pages pile up and are flushed
/// in bursts that stall every fsync on that file system (ext4 commits them together),
/// which is what a JetStream publisher waits for. Writing back in bounded steps keeps
/// those fsyncs short; the pages written are dropped from the cache (the backup is not
/// read again soon). Best effort: a failing hint changes nothing but the pacing.
fn write_local(file: &mut std::fs::File, path: &Path, b: &[u8]) -> Result<(), BackupError> {
    use std::io::Seek;
    let start = file.stream_position().map_err(|e| io(path, e))?;
    file.write_all(b).map_err(|e| io(path, e))?;
    let end = start + b.len() as u64;
    let (from, to) = (start / WRITEBACK_STEP, end / WRITEBACK_STEP);
    if from != to {
        writeback_step(file, (to - 1) * WRITEBACK_STEP);
    }
    Ok(())
}

/// Start writeback of the step at `off`; wait for the one before it and drop it from
/// the page cache.
#[cfg(target_os = "linux")]
fn writeback_step(file: &std::fs::File, off: u64) {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    let len = WRITEBACK_STEP as libc::off64_t;
    // SAFETY: `fd` is an open descriptor owned by `file` for the whole call; these
    // calls take plain integers and touch no memory of ours.
    unsafe {
        libc::sync_file_range(fd, off as libc::off64_t, len, libc::SYNC_FILE_RANGE_WRITE);
        if let Some(prev) = off.checked_sub(WRITEBACK_STEP) {
            libc::sync_file_range(
                fd,
                prev as libc::off64_t,
                len,
                libc::SYNC_FILE_RANGE_WAIT_BEFORE
                    | libc::SYNC_FILE_RANGE_WRITE
                    | libc::SYNC_FILE_RANGE_WAIT_AFTER,
            );
            libc::posix_fadvise(
                fd,
                prev as libc::off_t,
                WRITEBACK_STEP as libc::off_t,
                libc::POSIX_FADV_DONTNEED,
            );
        }
    }
}

/// Elsewhere the kernel's own writeback applies.
#[cfg(not(target_os = "linux"))]
fn writeback_step(_file: &std::fs::File, _off: u64) {}

enum ReaderInner {
    File(std::fs::File),
    Stream(BoxStream<'static, object_store::Result<Bytes>>),
}

/// How long [`Reader::next_chunk`] fills a chunk from an object store before it
/// returns what has arrived. Why: a restore's receiver (the server) gives up after 5 s
/// without a chunk, and over a thin link a whole chunk (up to the server's max
/// payload, 1 MiB by default) can take longer than that to download while bytes are
/// still coming.
pub const PARTIAL_CHUNK_AFTER: Duration = Duration::from_secs(1);

/// A file being read, in chunks.
pub struct Reader {
    /// Its size in bytes.
    pub size: u64,
    /// Where, for messages.
    pub location: PathBuf,
    inner: ReaderInner,
    pending: Bytes,
}

impl Reader {
    /// The next up-to-`max` bytes (exactly `max` unless at the end); `None` at the end.
    pub async fn next_chunk(&mut self, max: usize) -> Result<Option<Bytes>, BackupError> {
        match &mut self.inner {
            ReaderInner::File(f) => {
                let mut buf = vec![0u8; max];
                let mut n = 0;
                while n < max {
                    match f.read(&mut buf[n..]) {
                        Ok(0) => break,
                        Ok(k) => n += k,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(io(&self.location, e)),
                    }
                }
                buf.truncate(n);
                Ok((n > 0).then(|| Bytes::from(buf)))
            }
            ReaderInner::Stream(s) => {
                if self.pending.len() >= max {
                    return Ok(Some(self.pending.split_to(max)));
                }
                let mut acc = BytesMut::with_capacity(max);
                acc.extend_from_slice(&self.pending);
                self.pending = Bytes::new();
                let partial_at = tokio::time::Instant::now() + PARTIAL_CHUNK_AFTER;
                while acc.len() < max {
                    let next = if acc.is_empty() {
                        s.next().await
                    } else {
                        // A slow download: go with what came rather than leave the
                        // receiver without data (`Stream::next` may be cancelled).
                        match tokio::time::timeout_at(partial_at, s.next()).await {
                            Ok(next) => next,
                            Err(_) => break,
                        }
                    };
                    match next {
                        None => break,
                        Some(Ok(mut b)) => {
                            let take = (max - acc.len()).min(b.len());
                            acc.extend_from_slice(&b.split_to(take));
                            self.pending = b;
                        }
                        Some(Err(e)) => {
                            return Err(BackupError::Object {
                                url: self.location.display().to_string(),
                                detail: describe(&e),
                            });
                        }
                    }
                }
                Ok((!acc.is_empty()).then(|| acc.freeze()))
            }
        }
    }

    /// A blocking [`Read`] over the rest of the file, for checks that parse the
    /// archive synchronously (run it in `spawn_blocking`). An object's body is pumped
    /// by a task through a small bounded channel, so it is never held whole.
    pub fn into_blocking_read(self) -> Box<dyn Read + Send> {
        match self.inner {
            ReaderInner::File(f) => Box::new(std::io::BufReader::with_capacity(256 * 1024, f)),
            ReaderInner::Stream(mut s) => {
                let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(16);
                let first = self.pending;
                tokio::spawn(async move {
                    if !first.is_empty() && tx.send(Ok(first)).await.is_err() {
                        return;
                    }
                    while let Some(r) = s.next().await {
                        let r = r.map_err(|e| std::io::Error::other(describe(&e)));
                        let stop = r.is_err();
                        if tx.send(r).await.is_err() || stop {
                            return;
                        }
                    }
                });
                Box::new(ChannelRead::new(rx))
            }
        }
    }
}

/// Blocking reads fed through a bounded channel (by an async task, or by a
/// [`ChannelWrite`] in another thread); the sender gone is the end of the data.
pub struct ChannelRead {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    cur: Bytes,
}

impl ChannelRead {
    /// Read what arrives on `rx`; an `Err` piece is returned as a read error.
    pub fn new(rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>) -> ChannelRead {
        ChannelRead {
            rx,
            cur: Bytes::new(),
        }
    }
}

/// Blocking writes handed on through a bounded channel in pieces of a set size (the
/// last one shorter; call [`ChannelWrite::finish`]): how a synchronous archive writer
/// in `spawn_blocking` feeds an async uploader, or a [`ChannelRead`] in another thread.
pub struct ChannelWrite {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
    piece: usize,
    /// Send a shorter piece once its first byte has waited this long (see
    /// [`ChannelWrite::sending_after`]); `None`: only whole pieces.
    max_wait: Option<Duration>,
    /// When the first byte of the buffered piece came.
    since: Option<std::time::Instant>,
}

impl ChannelWrite {
    /// Pieces of `piece` bytes (at least 1) onto `tx`.
    pub fn new(tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>, piece: usize) -> Self {
        let piece = piece.max(1);
        ChannelWrite {
            tx,
            buf: Vec::with_capacity(piece),
            piece,
            max_wait: None,
            since: None,
        }
    }

    /// Also send a shorter piece when its first byte has waited `wait` and more data
    /// comes: a slowly produced stream (an archive merged from a slow download) then
    /// still reaches the receiver at least about every `wait`.
    pub fn sending_after(mut self, wait: Duration) -> Self {
        self.max_wait = Some(wait);
        self
    }

    fn send(&mut self) -> std::io::Result<()> {
        self.since = None;
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(self.piece));
        self.tx
            .blocking_send(Ok(Bytes::from(full)))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }

    /// Send what is buffered; dropping the writer then ends the data.
    pub fn finish(mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.send()
    }
}

impl Write for ChannelWrite {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let take = (self.piece - self.buf.len()).min(data.len());
        if self.buf.is_empty() && take > 0 && self.max_wait.is_some() {
            self.since = Some(std::time::Instant::now());
        }
        self.buf.extend_from_slice(&data[..take]);
        let waited = match (self.max_wait, self.since) {
            (Some(wait), Some(since)) => since.elapsed() >= wait,
            _ => false,
        };
        if self.buf.len() == self.piece || waited {
            self.send()?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Read for ChannelRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(r) => self.cur = r?,
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur.split_to(n));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        assert!(
            matches!(Target::parse("/tmp/x").unwrap(), Target::Local(p) if p == Path::new("/tmp/x"))
        );
        assert!(
            matches!(Target::parse("file:///tmp/y").unwrap(), Target::Local(p) if p == Path::new("/tmp/y"))
        );
        assert!(matches!(
            Target::parse("rel/dir").unwrap(),
            Target::Local(_)
        ));
        let e = Target::parse("gs://b/p").unwrap_err().to_string();
        assert!(e.contains("unsupported URL scheme"), "{e}");
        let e = Target::parse("s3:///p").unwrap_err().to_string();
        assert!(e.contains("no bucket"), "{e}");
        match Target::parse("s3://bkt/a/b/").unwrap() {
            Target::Object(o) => {
                assert_eq!(o.bucket, "bkt");
                assert_eq!(o.prefix.as_ref(), "a/b");
                assert_eq!(o.url(Some("s/backup.json")), "s3://bkt/a/b/s/backup.json");
            }
            t => panic!("{t:?}"),
        }
    }

    #[test]
    fn loopback_http_only() {
        assert!(is_loopback_http("http://127.0.0.1:9000"));
        assert!(is_loopback_http("http://localhost:9000/"));
        assert!(is_loopback_http("http://[::1]:9000"));
        assert!(!is_loopback_http("http://10.0.0.1:9000"));
        assert!(!is_loopback_http("https://127.0.0.1:9000"));
    }

    #[test]
    fn a_channel_pipe_carries_every_byte_in_order() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let src = data.clone();
        let writer = std::thread::spawn(move || {
            let mut w = ChannelWrite::new(tx, 4096);
            // Odd-sized writes: pieces are cut at 4096 whatever the writes.
            for c in src.chunks(1000) {
                w.write_all(c).unwrap();
            }
            w.finish().unwrap();
        });
        let mut got = Vec::new();
        ChannelRead::new(rx).read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        assert_eq!(got, data);
        // A reader gone is a broken pipe for the writer, not a hang.
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        drop(rx);
        let mut w = ChannelWrite::new(tx, 8);
        assert!(w.write_all(&[0; 64]).is_err());
    }

    /// With `sending_after`, data that trickles in goes on in short pieces once the
    /// first byte of a piece has waited; without it, only whole pieces (or `finish`).
    #[test]
    fn a_slow_producer_sends_short_pieces_only_when_asked() {
        for (timed, want) in [(true, Some(20usize)), (false, None)] {
            let (tx, mut rx) = tokio::sync::mpsc::channel(4);
            let mut w = ChannelWrite::new(tx, 1 << 20);
            if timed {
                w = w.sending_after(Duration::from_millis(50));
            }
            w.write_all(&[1; 10]).unwrap();
            std::thread::sleep(Duration::from_millis(80));
            w.write_all(&[2; 10]).unwrap();
            let got = rx.try_recv().ok().map(|b| b.unwrap().len());
            assert_eq!(got, want, "timed: {timed}");
            w.finish().unwrap();
            let rest: usize = std::iter::from_fn(|| rx.try_recv().ok())
                .map(|b| b.unwrap().len())
                .sum();
            assert_eq!(got.unwrap_or(0) + rest, 20, "every byte, once");
        }
    }

    #[test]
    fn payloads_are_signed_only_where_nothing_else_protects_them() {
        assert_eq!(unsigned_payload("", None), Some(true));
        assert_eq!(unsigned_payload("https://s3.example.com", None), Some(true));
        assert_eq!(unsigned_payload("http://127.0.0.1:9000", None), Some(true));
        assert_eq!(unsigned_payload("http://10.0.0.1:9000", None), Some(false));
        // The variable decides when set (object_store's builder reads it).
        assert_eq!(
            unsigned_payload("http://127.0.0.1:9000", Some("false")),
            None
        );
    }

    #[test]
    fn upload_shape_defaults_and_bounded_overrides() {
        const MIB: usize = 1024 * 1024;
        let d = UploadShape::new(1 << 30, None, None);
        assert_eq!(
            d,
            UploadShape {
                part: 8 * MIB,
                in_flight: 4
            }
        );
        // A 1 TiB archive grows the part to stay within the part budget.
        assert!(UploadShape::new(1 << 40, None, None).part > 128 * MIB);
        let t = UploadShape::new(1 << 30, Some("32"), Some("8"));
        assert_eq!(
            t,
            UploadShape {
                part: 32 * MIB,
                in_flight: 8
            }
        );
        // Out of range is clamped (S3 minimum, memory bound); junk keeps the default.
        let c = UploadShape::new(1 << 30, Some("1"), Some("100000"));
        assert_eq!(
            c,
            UploadShape {
                part: 5 * MIB,
                in_flight: 32
            }
        );
        let c = UploadShape::new(1 << 30, Some("999999999999"), Some("0"));
        assert_eq!(
            c,
            UploadShape {
                part: MAX_PART as usize,
                in_flight: 1
            }
        );
        assert_eq!(UploadShape::new(1 << 30, Some("x"), Some("-1")), d);
        // Big parts with many in flight are held to the buffer budget (1 GiB): 256 MiB
        // parts get 3 in flight, plus the one being filled.
        let b = UploadShape::new(1 << 30, Some("256"), Some("32"));
        assert_eq!((b.part, b.in_flight), (256 * MIB, 3));
        let b = UploadShape::new(1 << 30, Some("64"), Some("32"));
        assert_eq!((b.part, b.in_flight), (64 * MIB, 15));
    }
}
