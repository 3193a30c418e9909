//! `msgs/index.db`: the filestore's full stream state (versions 1–4), used by the v1
//! importer for the delete maps and first sequences that blocks alone cannot reproduce.

use super::filestore_blk::HashKey;
use super::seqset::{RangeSet, decode_seqset};
use super::varint::SliceCursor;

const INDEX_MAGIC: u8 = 11;

/// One block's summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexBlock {
    /// Block index (`<i>.blk`).
    pub index: u64,
    /// Bytes of live messages.
    pub bytes: u64,
    /// First live sequence.
    pub first_seq: u64,
    /// Last sequence.
    pub last_seq: u64,
    /// Deleted sequences recorded for the block.
    pub num_deleted: u64,
}

/// Decoded `index.db`.
#[derive(Debug, Clone)]
pub struct IndexDb {
    /// Format version (1..=4).
    pub version: u8,
    /// Messages.
    pub msgs: u64,
    /// Bytes.
    pub bytes: u64,
    /// First sequence.
    pub first_seq: u64,
    /// First timestamp (ns).
    pub first_ts: i64,
    /// Last sequence.
    pub last_seq: u64,
    /// Last timestamp (ns).
    pub last_ts: i64,
    /// Number of subjects.
    pub num_subjects: u64,
    /// Blocks.
    pub blocks: Vec<IndexBlock>,
    /// Union of all blocks' delete maps.
    pub deleted: RangeSet,
    /// Index of the last block.
    pub last_block: u64,
    /// Checksum of the last record of the last block.
    pub last_checksum: [u8; 8],
}

/// Decodes and checks `index.db` (magic, version, trailing HighwayHash keyed by
/// SHA-256(stream name)). `Err` carries the reason nats-server would discard it for.
pub fn decode_index_db(buf: &[u8], stream: &str) -> Result<IndexDb, String> {
    if buf.len() < 2 + 8 {
        return Err("too short".into());
    }
    let (body, hash) = buf.split_at(buf.len() - 8);
    if HashKey::of_text(stream).sum(body) != hash {
        return Err("checksum mismatch".into());
    }
    let mut c = SliceCursor::new(body);
    let bad = |what: &str| format!("malformed {what}");
    if c.u8() != Some(INDEX_MAGIC) {
        return Err("bad magic".into());
    }
    let version = c.u8().ok_or_else(|| bad("header"))?;
    if !(1..=4).contains(&version) {
        return Err(format!("unknown version {version}"));
    }
    let u = |c: &mut SliceCursor<'_>, what: &str| c.uvarint().ok_or_else(|| bad(what));
    let msgs = u(&mut c, "state")?;
    let bytes = u(&mut c, "state")?;
    let first_seq = u(&mut c, "state")?;
    let first_ts = c.varint().ok_or_else(|| bad("state"))?;
    let last_seq = u(&mut c, "state")?;
    let last_ts = c.varint().ok_or_else(|| bad("state"))?;
    let num_subjects = u(&mut c, "subjects")?;
    for _ in 0..num_subjects {
        let len = u(&mut c, "subject")?;
        let len = usize::try_from(len).map_err(|_| bad("subject"))?;
        c.bytes(len).ok_or_else(|| bad("subject"))?;
        let total = u(&mut c, "subject")?;
        let _fblk = u(&mut c, "subject")?;
        if version >= 4 || total > 1 {
            let _lblk = u(&mut c, "subject")?;
        }
    }
    let num_blocks = u(&mut c, "blocks")?;
    let mut blocks = Vec::new();
    let mut deleted = RangeSet::new();
    for _ in 0..num_blocks {
        let index = u(&mut c, "block")?;
        let bbytes = u(&mut c, "block")?;
        let bfirst = u(&mut c, "block")?;
        let _fts = c.varint().ok_or_else(|| bad("block"))?;
        let blast = u(&mut c, "block")?;
        let _lts = c.varint().ok_or_else(|| bad("block"))?;
        let ndel = u(&mut c, "block")?;
        if version >= 2 {
            let _ttls = u(&mut c, "block")?;
        }
        if version >= 3 {
            let _schedules = u(&mut c, "block")?;
        }
        if ndel > 0 {
            decode_seqset(&mut c, |s| {
                deleted.insert(s);
            })
            .ok_or_else(|| bad("delete map"))?;
        }
        // Each block consumes at least 7 bytes, so this vector is bounded by the input.
        blocks.push(IndexBlock {
            index,
            bytes: bbytes,
            first_seq: bfirst,
            last_seq: blast,
            num_deleted: ndel,
        });
    }
    let last_block = u(&mut c, "last block")?;
    let cs = c.bytes(8).ok_or_else(|| bad("last checksum"))?;
    let mut last_checksum = [0u8; 8];
    last_checksum.copy_from_slice(cs);
    Ok(IndexDb {
        version,
        msgs,
        bytes,
        first_seq,
        first_ts,
        last_seq,
        last_ts,
        num_subjects,
        blocks,
        deleted,
        last_block,
        last_checksum,
    })
}
