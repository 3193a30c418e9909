//! JetStream backup archives: reading, writing and verifying what `$JS.API.STREAM.SNAPSHOT`
//! produces and `$JS.API.STREAM.RESTORE` consumes, byte-compatible with nats-server and
//! the nats CLI (`stream.tar.s2` + `backup.json`).
//!
//! * [`s2_frame`] — the S2/Snappy framing around every snapshot.
//! * [`v2`] — the `NATSARC1` record stream of nats-server 2.15+ ([`ArchiveWriter`]).
//! * [`v1`] with [`tar_reader`], [`filestore_blk`], [`index_db`], [`seqset`],
//!   [`consumer_odat`] — import of legacy tar snapshots of nats-server ≤ 2.14.
//! * [`reader`] — [`ArchiveReader`], one entry stream over both formats.
//! * [`v1_writer`] — conversion of a v2 archive into a v1 one, for restores into
//!   nats-server 2.10 to 2.14.
//! * [`verify`] — offline verification of a backup directory.
//! * [`incremental`] — natrium's incremental archives and the merge of a backup chain
//!   into one v2 archive.
//!
//! Everything here is synchronous over `std::io::Read`/`Write`, free of networking, and
//! bounds every allocation whose size comes from the input.

pub mod consumer_odat;
pub mod error;
pub mod filestore_blk;
pub mod incremental;
pub mod index_db;
pub mod reader;
pub mod s2_frame;
pub mod seqset;
pub mod state_json;
pub mod tar_reader;
pub mod v1;
pub mod v1_writer;
pub mod v2;
pub mod varint;
pub mod verify;

pub use error::ArchiveError;
pub use incremental::{
    ChainSummary, IncrementalHeader, Prefix, copy_prefix, merge_chain, merge_chain_after,
    merge_increments, scan_prefix,
};
pub use reader::{ArchiveFormat, ArchiveReader, Entry, FrameStats, ReaderOptions};
pub use s2_frame::{S2FrameReader, S2FrameWriter};
pub use state_json::{
    ConsumerStateJson, PendingJson, SequencePairJson, StreamStateJson, format_go_time,
    parse_go_time,
};
pub use v1::{IndexDbUse, V1Report};
pub use v1_writer::{Converted, V1Writer, convert_to_v1};
pub use v2::ArchiveWriter;
pub use verify::{
    BackupSummary, ConsumerSummary, DamagedStream, StreamSummary, verify_archive,
    verify_backup_dir, verify_stream_dir, verify_stream_parts,
};
