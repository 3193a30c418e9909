//! [`ArchiveReader`]: one pull interface over both snapshot formats.
//!
//! The decompressed stream's first 8 bytes decide, as in nats-server 2.15: `NATSARC1` →
//! v2 (streamed entry by entry), anything else → legacy tar (spooled, see [`mod@super::v1`]).
//! natrium's incremental archives (`NATRINC1`, see [`super::incremental`]) are a header
//! followed by a v2 body; they are read the same way and flagged by
//! [`ArchiveReader::incremental`].
//! Both produce the same entry sequence — for v1 preceded by [`Entry::StreamMeta`] — so
//! the server's importer has one code path:
//!
//! `[StreamMeta]`, `State`, `Consumer` × consumer_count, `Message` × n (ascending
//! sequences, deleted ones absent), `End { last_seq }`, then `None`.

use std::io::Read;
use std::path::PathBuf;

use serde::Serialize;

use super::error::ArchiveError;
use super::incremental::{INC_MAGIC, IncrementalHeader};
use super::s2_frame::{FrameFlavor, S2FrameReader};
use super::state_json::{ConsumerStateJson, StreamStateJson};
use super::v1::{V1Reader, V1Report};
use super::v2::{MAGIC, V2Decoder};

/// One item of an archive.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// v1 only: the stream configuration from `meta.inf` (`Created` removed) and its
    /// creation time as stored (RFC 3339).
    StreamMeta {
        /// StreamConfig JSON.
        config: serde_json::Value,
        /// `Created` of meta.inf.
        created: Option<String>,
    },
    /// Stream state (`state.json` in v2; derived from the blocks in v1).
    State(StreamStateJson),
    /// A consumer.
    Consumer {
        /// Consumer name.
        name: String,
        /// ConsumerConfig JSON.
        config: serde_json::Value,
        /// Its state.
        state: ConsumerStateJson,
    },
    /// A message with its original sequence and timestamp.
    Message {
        /// Stream sequence.
        seq: u64,
        /// Timestamp, Unix ns.
        ts: i64,
        /// Subject.
        subject: Vec<u8>,
        /// Raw header block (`NATS/1.0\r\n...\r\n\r\n`) or empty.
        header: Vec<u8>,
        /// Body.
        payload: Vec<u8>,
    },
    /// End of archive; sequences after the last message up to `last_seq` are deleted.
    End {
        /// Last sequence of the stream.
        last_seq: u64,
    },
}

/// Which archive format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ArchiveFormat {
    /// `NATSARC1` (nats-server 2.15+).
    V2,
    /// Legacy tar of filestore files (nats-server ≤ 2.14).
    V1,
    /// natrium's incremental archive (`NATRINC1`): one link of a backup chain.
    Incremental,
}

/// Reader options.
#[derive(Debug, Clone)]
pub struct ReaderOptions {
    /// Largest header + payload accepted for one message (the server's `max_payload` /
    /// stream `max_msg_size`).
    pub max_msg_size: u64,
    /// Where a v1 archive is spooled (a private subdirectory is created and removed);
    /// `None` = the system temporary directory.
    pub staging_dir: Option<PathBuf>,
    /// Report damage that nats-server tolerates (bad block checksums, meta.sum
    /// mismatches, errors.txt) as errors instead of skipping it.
    pub strict: bool,
    /// v1: the stream name `meta.inf` must carry (`stream names do not match` otherwise).
    pub expected_stream: Option<String>,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions {
            max_msg_size: crate::HARD_MAX_MSG_SIZE,
            staging_dir: None,
            strict: false,
            expected_stream: None,
        }
    }
}

/// Framing statistics.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct FrameStats {
    /// Stream identifier seen.
    pub flavor: Option<FrameFlavor>,
    /// Compressed bytes consumed.
    pub compressed_bytes: u64,
    /// Decompressed bytes produced.
    pub decompressed_bytes: u64,
    /// Data chunks.
    pub chunks: u64,
}

impl FrameStats {
    fn of<R: Read>(r: &S2FrameReader<R>) -> Self {
        FrameStats {
            flavor: r.flavor(),
            compressed_bytes: r.compressed_bytes(),
            decompressed_bytes: r.decompressed_bytes(),
            chunks: r.chunks(),
        }
    }
}

enum Inner<R: Read> {
    V2(V2Decoder<S2FrameReader<R>>),
    V1(Box<V1Reader>, FrameStats),
}

/// Reads a snapshot (`stream.tar.s2` bytes) of either format.
pub struct ArchiveReader<R: Read> {
    inner: Inner<R>,
    /// The header of an incremental archive.
    incremental: Option<IncrementalHeader>,
}

impl<R: Read> ArchiveReader<R> {
    /// Opens the framed stream `r`. For v1 this extracts and scans the whole archive
    /// before returning; for v2 it reads only the magic.
    pub fn new(r: R, opts: ReaderOptions) -> Result<Self, ArchiveError> {
        let mut s2 = S2FrameReader::new(r);
        let mut head = [0u8; 8];
        let mut got = 0;
        while got < head.len() {
            match s2.read(&mut head[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ArchiveError::from_io(e)),
            }
        }
        if got == 0 {
            return Err(ArchiveError::Eof);
        }
        if got == head.len() && &head == MAGIC {
            return Ok(ArchiveReader {
                inner: Inner::V2(V2Decoder::new(s2, opts.max_msg_size)),
                incremental: None,
            });
        }
        if got == head.len() && &head == INC_MAGIC {
            let mut d = V2Decoder::new(s2, opts.max_msg_size);
            let h = d.read_incremental_header()?;
            return Ok(ArchiveReader {
                inner: Inner::V2(d),
                incremental: Some(h),
            });
        }
        let v1 = {
            let chained = (&head[..got]).chain(&mut s2);
            V1Reader::open(chained, &opts)?
        };
        // Drain anything after the tar end marker so framing damage there is noticed.
        std::io::copy(&mut s2, &mut std::io::sink()).map_err(ArchiveError::from_io)?;
        let stats = FrameStats::of(&s2);
        Ok(ArchiveReader {
            inner: Inner::V1(Box::new(v1), stats),
            incremental: None,
        })
    }

    /// The archive format.
    pub fn format(&self) -> ArchiveFormat {
        match self.inner {
            Inner::V2(_) if self.incremental.is_some() => ArchiveFormat::Incremental,
            Inner::V2(_) => ArchiveFormat::V2,
            Inner::V1(..) => ArchiveFormat::V1,
        }
    }

    /// The header of an incremental archive (`None` for complete ones). Importers
    /// must refuse an incremental archive ([`ArchiveError::Incremental`]): alone it is
    /// not the stream.
    pub fn incremental(&self) -> Option<&IncrementalHeader> {
        self.incremental.as_ref()
    }

    /// Framing statistics so far (complete once [`Entry::End`] was returned).
    pub fn frame_stats(&self) -> FrameStats {
        match &self.inner {
            Inner::V2(d) => FrameStats::of(d.get_ref()),
            Inner::V1(_, s) => *s,
        }
    }

    /// What the v1 import found (`None` for v2).
    pub fn v1_report(&self) -> Option<&V1Report> {
        match &self.inner {
            Inner::V2(_) => None,
            Inner::V1(r, _) => Some(r.report()),
        }
    }

    /// After [`Entry::End`]: reads the rest of the stream (so framing damage there is
    /// found) and returns how many decompressed bytes followed the end of the archive
    /// (v2: after the sentinel; v1: always 0, the tail was read at open).
    pub fn drain_trailing(&mut self) -> Result<u64, ArchiveError> {
        match &mut self.inner {
            Inner::V2(d) => d.drain_trailing(),
            Inner::V1(..) => Ok(0),
        }
    }

    /// The next entry; `Ok(None)` after [`Entry::End`].
    pub fn next_entry(&mut self) -> Result<Option<Entry>, ArchiveError> {
        match &mut self.inner {
            Inner::V2(d) => d.next_entry(),
            Inner::V1(r, _) => r.next_entry(),
        }
    }
}
