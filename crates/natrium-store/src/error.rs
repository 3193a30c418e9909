//! Errors returned by every store in this crate.
//!
//! Why one enum with structured fields: the server maps these onto JetStream API error
//! codes (10077 "maximum messages exceeded", 10054 "message size exceeds maximum", 10037
//! "no message found", ...) and onto operator-facing log lines. Matching on variants is
//! reliable where matching on strings is not, and the fields (which sequence, which
//! segment, which file, which syscall) are what an operator needs when a disk goes bad.
//!
//! Poisoning: a failed `write`/`fsync` on the append path never gets retried silently
//! (after a failed fsync the kernel may already have dropped the dirty pages, so a retry
//! that "succeeds" proves nothing). The store records the first failure and every later
//! append returns [`StoreError::Poisoned`] carrying that cause, until the store is
//! reopened or `try_recover()` re-validates the files (see `FileStore::try_recover`).

use std::io;
use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What went wrong in a store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The sequence exists in the stream's range but holds no message (deleted, expired,
    /// purged, or never stored because it was skipped), or no message matches a filter
    /// inside the range.
    #[error("no message found")]
    NotFound,

    /// The requested sequence is past the last sequence, or nothing matches at or after
    /// the start sequence. Consumers use this to decide to wait for new messages.
    #[error("stream store EOF")]
    Eof,

    /// Discard-new policy: storing would exceed `max_msgs`.
    #[error("maximum messages exceeded (limit {limit})")]
    MaxMsgs {
        /// The configured `max_msgs`.
        limit: u64,
    },

    /// Discard-new policy: storing would exceed `max_bytes`.
    #[error("maximum bytes exceeded (limit {limit}, stored {current}, message {needed})")]
    MaxBytes {
        /// The configured `max_bytes`.
        limit: u64,
        /// Bytes currently accounted.
        current: u64,
        /// Accounted size of the rejected message.
        needed: u64,
    },

    /// Discard-new-per-subject policy: the subject already holds `max_msgs_per_subject`.
    #[error("maximum messages per subject exceeded (subject {subject:?}, limit {limit})")]
    MaxMsgsPerSubject {
        /// The subject that is full.
        subject: String,
        /// The configured `max_msgs_per_subject`.
        limit: u64,
    },

    /// Headers plus payload exceed `max_msg_size`, or the record could not be represented
    /// on disk (see `file::record::MAX_RECORD_LEN`).
    #[error("message too large ({size} bytes, limit {limit})")]
    MsgTooLarge {
        /// Size of the message (headers + payload).
        size: u64,
        /// The applicable limit.
        limit: u64,
    },

    /// A raw store (`store_raw_msg`, `skip_msg`) named a sequence that does not follow the
    /// store's last sequence.
    #[error("expected sequence {expected} does not match requested {got}")]
    SequenceMismatch {
        /// What the store expected (`last_seq + 1`).
        expected: u64,
        /// What the caller asked for.
        got: u64,
    },

    /// The subject is empty or not a valid literal subject.
    #[error("invalid subject {subject:?}")]
    InvalidSubject {
        /// The offending subject.
        subject: String,
    },

    /// Bad argument (mutually exclusive options, malformed filter, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A previous write or fsync failed; appends are refused until the store is reopened
    /// or `try_recover()` succeeds. Reads keep working.
    #[error("store is poisoned for writes: {cause}")]
    Poisoned {
        /// Human-readable description of the first failure (operation, path, OS error).
        cause: String,
    },

    /// The filesystem is full (ENOSPC/EDQUOT on a write). The partial write was rolled
    /// back and nothing acknowledged was lost; appends fail with this error until a
    /// recovery succeeds, which the store retries by itself on later appends once space
    /// is free. Reads, removals and purges keep working.
    #[error("no space left for the store: {cause}")]
    NoSpace {
        /// The failed operation, path and OS error.
        cause: String,
    },

    /// Data on disk failed validation. The damaged part is isolated and never served.
    #[error("corrupt data at {location}: {detail}")]
    Corrupt {
        /// Where: a message sequence, a segment file, or a metadata file.
        location: CorruptLocation,
        /// What failed (checksum mismatch, bad magic, bad length, ...).
        detail: String,
    },

    /// An I/O operation failed.
    #[error("{op} failed on {}: {source}", path.display())]
    Io {
        /// The operation, e.g. "fsync", "open", "pread".
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// Another process (or another store object in this process) holds the directory lock.
    #[error("store directory {} is locked by another process", path.display())]
    Locked {
        /// The locked directory.
        path: PathBuf,
    },

    /// The on-disk format is newer (or older) than this build understands.
    #[error("unsupported format version {found} in {} (supported: {supported})", path.display())]
    UnsupportedVersion {
        /// The file carrying the version.
        path: PathBuf,
        /// Version found.
        found: u32,
        /// Version this build writes and reads.
        supported: u32,
    },

    /// The store was stopped or deleted.
    #[error("store is closed")]
    Closed,

    /// A consumer update was older than the current state (replayed or out of order).
    #[error("old update ignored")]
    OldUpdate,

    /// A consumer ack/redelivery operation that needs an ack policy on an `AckPolicy::None`
    /// consumer.
    #[error("ack policy is none")]
    NoAckPolicy,
}

/// Where corruption was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorruptLocation {
    /// The record of this message sequence.
    Seq(u64),
    /// A segment file, at a byte offset.
    Segment {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the damaged region.
        offset: u64,
    },
    /// A metadata / state file.
    File(PathBuf),
}

impl std::fmt::Display for CorruptLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CorruptLocation::Seq(s) => write!(f, "seq {s}"),
            CorruptLocation::Segment { path, offset } => {
                write!(f, "{} offset {offset}", path.display())
            }
            CorruptLocation::File(p) => write!(f, "{}", p.display()),
        }
    }
}

impl StoreError {
    /// Builds an [`StoreError::Io`].
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StoreError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// True for the errors a discard-new limit produces (the server answers 10077).
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            StoreError::MaxMsgs { .. }
                | StoreError::MaxBytes { .. }
                | StoreError::MaxMsgsPerSubject { .. }
        )
    }
}
