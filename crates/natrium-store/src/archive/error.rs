//! Errors of the backup archive readers, writers and verifier.
//!
//! The `Display` texts of the variants that nats-server also reports during a restore are
//! the server's own (`s2: corrupt input`, `EOF`, `message sequence 1 out of order`,
//! `invalid stream state: ...`, `unexpected content`, `stream names do not match`), so a
//! restore through Natrium fails with the same words as one through nats-server. The
//! fields say where (byte offset, block, sequence), for operators and for `backup verify`.

use std::io;

/// Anything that can go wrong while reading, writing or verifying a backup archive.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// An I/O error of the underlying reader/writer or of the staging directory.
    #[error("{0}")]
    Io(#[from] io::Error),

    /// The archive ended cleanly between two entries before its end sentinel
    /// (Go's `io.EOF`).
    #[error("EOF")]
    Eof,

    /// The archive ended in the middle of an entry or a file (Go's `io.ErrUnexpectedEOF`).
    #[error("unexpected EOF")]
    UnexpectedEof {
        /// What was being read.
        context: &'static str,
    },

    /// The S2/Snappy framing or a compressed block is malformed.
    #[error("s2: corrupt input")]
    CorruptInput {
        /// Offset of the offending chunk in the compressed stream.
        offset: u64,
        /// What exactly is wrong.
        reason: &'static str,
    },

    /// A frame's masked CRC-32C does not match its decompressed data.
    #[error("s2: corrupt input, crc mismatch")]
    CrcMismatch {
        /// Offset of the chunk in the compressed stream.
        offset: u64,
        /// CRC stored in the chunk.
        expected: u32,
        /// CRC of the data we decoded.
        actual: u32,
    },

    /// A reserved (unskippable) chunk type 0x02..=0x7f.
    #[error("s2: unsupported input")]
    UnsupportedChunk {
        /// Offset of the chunk in the compressed stream.
        offset: u64,
        /// The chunk type byte.
        chunk_type: u8,
    },

    /// A block claims to decode to more than the format allows.
    #[error("s2: decoded block is too large")]
    BlockTooLarge {
        /// Offset of the chunk in the compressed stream.
        offset: u64,
        /// Claimed decoded length.
        len: u64,
    },

    /// A v2 message entry whose sequence is zero or not above the previous one.
    #[error("message sequence {seq} out of order")]
    SequenceOutOfOrder {
        /// The offending sequence.
        seq: u64,
        /// The previous sequence (or `first_seq - 1` for the first message).
        previous: u64,
    },

    /// `state.json` fails nats-server's restore sanity checks.
    #[error("invalid stream state: {reason}")]
    InvalidStreamState {
        /// nats-server's wording, e.g. "negative consumer count".
        reason: &'static str,
    },

    /// An entry or field is larger than the limit applied to it.
    #[error("{what} too large: {size} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Which field.
        what: &'static str,
        /// Declared size.
        size: u64,
        /// Limit.
        max: u64,
    },

    /// An entry with the wrong name or shape at this point of a v2 archive.
    #[error("invalid archive entry {name:?}: {reason}")]
    InvalidEntry {
        /// Entry name (lossy UTF-8).
        name: String,
        /// What is wrong.
        reason: String,
    },

    /// JSON of a metadata entry or file does not parse.
    #[error("invalid JSON in {name}: {source}")]
    Json {
        /// Which entry or file.
        name: String,
        /// The parser's error.
        source: serde_json::Error,
    },

    /// A v1 tar member that is not a regular file (nats-server: `unexpected content`).
    #[error("unexpected content")]
    UnexpectedContent {
        /// Member path.
        path: String,
        /// Tar type flag.
        typeflag: u8,
    },

    /// A v1 tar member path that is absolute or escapes the archive root.
    #[error("unexpected content: unsafe path {path:?}")]
    UnsafePath {
        /// Member path.
        path: String,
    },

    /// A malformed tar header.
    #[error("archive/tar: invalid tar header")]
    InvalidTarHeader {
        /// Offset of the header in the decompressed stream.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },

    /// An archive the v1 converter does not take (not a full v2 archive, or one that
    /// ends early).
    #[error("cannot convert to a v1 archive: {reason}")]
    NotConvertible {
        /// Why.
        reason: &'static str,
    },

    /// A required file of a v1 archive is missing.
    #[error("missing {file} in archive")]
    MissingFile {
        /// Path inside the archive.
        file: String,
    },

    /// `meta.inf`'s stream name differs from the expected one.
    #[error("stream names do not match")]
    StreamNameMismatch {
        /// Name the caller expected.
        expected: String,
        /// Name in `meta.inf`.
        found: String,
    },

    /// A message block record whose checksum or framing is wrong (reported only in
    /// strict mode; lenient readers truncate the block there, like nats-server).
    #[error("corrupt record in msgs/{block}.blk at offset {offset}: {reason}")]
    CorruptRecord {
        /// Block index.
        block: u64,
        /// Byte offset of the record in the block.
        offset: u64,
        /// Sequence of the record if it could be read.
        seq: Option<u64>,
        /// What is wrong.
        reason: &'static str,
    },

    /// A binary metadata file (index.db, o.dat, sequence set) is malformed.
    #[error("corrupt {file}: {reason}")]
    CorruptFile {
        /// Which file.
        file: String,
        /// What is wrong.
        reason: String,
    },

    /// The generating server reported an error inside the archive (`errors.txt`).
    #[error("archive contains errors.txt: {text}")]
    ProducerError {
        /// Content of errors.txt (truncated).
        text: String,
    },

    /// Consumer state that cannot be right (ack floor above delivered, ...).
    #[error("consumer {consumer}: {reason}")]
    ConsumerState {
        /// Consumer name.
        consumer: String,
        /// What is wrong.
        reason: String,
    },

    /// An incremental archive offered where a complete one is needed (a restore of one
    /// link of a chain on its own).
    #[error(
        "incremental archive: it holds only the changes after sequence {since}; restore it through its backup chain (natrium stream restore)"
    )]
    Incremental {
        /// The sequence it continues from.
        since: u64,
    },

    /// The links of an incremental backup chain do not fit together.
    #[error("backup chain broken: {reason}")]
    Chain {
        /// What does not fit.
        reason: String,
    },

    /// A backup directory does not have the layout the nats CLI writes.
    #[error("{path}: {reason}")]
    Layout {
        /// The path concerned.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

impl ArchiveError {
    /// Maps an I/O error of a decompressing reader back to the archive error it carries
    /// (the S2 reader reports framing errors through `io::Error`).
    pub(crate) fn from_io(e: io::Error) -> Self {
        if e.get_ref().is_some_and(|inner| inner.is::<ArchiveError>()) {
            match e.into_inner() {
                Some(inner) => match inner.downcast::<ArchiveError>() {
                    Ok(ae) => *ae,
                    Err(other) => ArchiveError::Io(io::Error::other(other)),
                },
                None => ArchiveError::Io(io::Error::other("unknown I/O error")),
            }
        } else {
            ArchiveError::Io(e)
        }
    }

    /// Wraps this error in an `io::Error` so it can travel through `Read` impls.
    pub(crate) fn into_io(self) -> io::Error {
        match self {
            ArchiveError::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}
