//! nats-server filestore message-block records (`msgs/<i>.blk`) and the HighwayHash-64
//! checksums used by blocks, `index.db` and `meta.sum`.
//!
//! Record: `rl:u32 (bit 31 = has headers) | seq:u64 (bit 63 erased/skip, bit 62
//! tombstone) | ts:i64 | slen:u16 | subject | [hlen:u32 | header] | body | hash:8`, all
//! little-endian; the hash covers `seq ‖ ts ‖ subject ‖ header ‖ body`.

use std::io::{self, Read};

use highway::{HighwayHash, HighwayHasher, Key};
use sha2::{Digest, Sha256};

/// Record header size before the subject.
pub const MSG_HDR_SIZE: usize = 22;
/// Smallest possible record (empty subject and body).
pub const MIN_RECORD: usize = MSG_HDR_SIZE + 8;
/// Erased / skip flag in the stored sequence.
pub const EBIT: u64 = 1 << 63;
/// Tombstone flag in the stored sequence.
pub const TBIT: u64 = 1 << 62;
const HBIT: u32 = 1 << 31;

/// A HighwayHash-64 key derived as nats-server does: SHA-256 of a string.
#[derive(Clone, Copy)]
pub struct HashKey(Key);

impl HashKey {
    /// Key = SHA-256(`text`).
    pub fn of_text(text: &str) -> Self {
        let d = Sha256::digest(text.as_bytes());
        let mut k = [0u64; 4];
        for (i, w) in k.iter_mut().enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(&d[i * 8..i * 8 + 8]);
            *w = u64::from_le_bytes(b);
        }
        HashKey(Key(k))
    }

    /// Key of block `index` of `stream`.
    pub fn for_block(stream: &str, index: u64) -> Self {
        Self::of_text(&format!("{stream}-{index}"))
    }

    /// A fresh hasher.
    pub fn hasher(&self) -> HighwayHasher {
        HighwayHasher::new(self.0)
    }

    /// Hash of `data`, as the 8 bytes nats-server stores.
    pub fn sum(&self, data: &[u8]) -> [u8; 8] {
        let mut h = self.hasher();
        h.append(data);
        h.finalize64().to_le_bytes()
    }

    /// Hash of `data` as the 16 lowercase hex chars of a `meta.sum` file.
    pub fn sum_hex(&self, data: &[u8]) -> String {
        self.sum(data).iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// What kind of record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// A stored message.
    Message,
    /// A delete tombstone (bit 62): the sequence is deleted.
    Tombstone,
    /// Erased message or skip placeholder (bit 63 or sequence 0).
    Erased,
}

/// One parsed record, borrowing the record bytes.
#[derive(Debug)]
pub struct Record<'a> {
    /// Sequence without flags.
    pub seq: u64,
    /// Timestamp, Unix ns.
    pub ts: i64,
    /// Kind.
    pub kind: RecordKind,
    /// Subject.
    pub subject: &'a [u8],
    /// Header block (empty if none).
    pub header: &'a [u8],
    /// Body.
    pub body: &'a [u8],
    /// Stored checksum bytes.
    pub checksum: [u8; 8],
    /// Total record length.
    pub len: usize,
}

/// Why a record is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordError {
    /// Fewer bytes than the record header says (end of block mid-record).
    Truncated,
    /// Impossible lengths.
    BadLength,
    /// Checksum mismatch.
    Checksum,
}

impl RecordError {
    /// Short reason text.
    pub fn reason(self) -> &'static str {
        match self {
            RecordError::Truncated => "truncated record",
            RecordError::BadLength => "invalid record length",
            RecordError::Checksum => "checksum mismatch",
        }
    }
}

/// Parses the record in `rec` (exactly `rl` bytes, as returned by [`read_record`]) and,
/// with a key, verifies its checksum.
pub fn parse_record<'a>(rec: &'a [u8], key: Option<&HashKey>) -> Result<Record<'a>, RecordError> {
    if rec.len() < MIN_RECORD {
        return Err(RecordError::BadLength);
    }
    let rl = u32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]);
    let len = (rl & !HBIT) as usize;
    if len != rec.len() {
        return Err(RecordError::BadLength);
    }
    let mut sb = [0u8; 8];
    sb.copy_from_slice(&rec[4..12]);
    let raw_seq = u64::from_le_bytes(sb);
    sb.copy_from_slice(&rec[12..20]);
    let ts = i64::from_le_bytes(sb);
    let slen = usize::from(u16::from_le_bytes([rec[20], rec[21]]));
    let data_end = len - 8;
    let subj_end = MSG_HDR_SIZE + slen;
    if subj_end > data_end {
        return Err(RecordError::BadLength);
    }
    let (header, body_start) = if rl & HBIT != 0 {
        if subj_end + 4 > data_end {
            return Err(RecordError::BadLength);
        }
        let hlen = u32::from_le_bytes([
            rec[subj_end],
            rec[subj_end + 1],
            rec[subj_end + 2],
            rec[subj_end + 3],
        ]) as usize;
        let hs = subj_end + 4;
        if hlen > data_end - hs {
            return Err(RecordError::BadLength);
        }
        (&rec[hs..hs + hlen], hs + hlen)
    } else {
        (&rec[subj_end..subj_end], subj_end)
    };
    let mut checksum = [0u8; 8];
    checksum.copy_from_slice(&rec[data_end..]);
    if let Some(key) = key {
        let mut h = key.hasher();
        h.append(&rec[4..20]);
        h.append(&rec[MSG_HDR_SIZE..subj_end]);
        h.append(header);
        h.append(&rec[body_start..data_end]);
        if h.finalize64().to_le_bytes() != checksum {
            return Err(RecordError::Checksum);
        }
    }
    let kind = if raw_seq & TBIT != 0 {
        RecordKind::Tombstone
    } else if raw_seq & EBIT != 0 || raw_seq == 0 {
        RecordKind::Erased
    } else {
        RecordKind::Message
    };
    Ok(Record {
        seq: raw_seq & !(EBIT | TBIT),
        ts,
        kind,
        subject: &rec[MSG_HDR_SIZE..subj_end],
        header,
        body: &rec[body_start..data_end],
        checksum,
        len,
    })
}

/// Outcome of [`read_record`].
pub enum ReadRecord {
    /// A record's bytes are in the buffer.
    Record,
    /// Clean end of the block.
    End,
    /// Unusable bytes at the current offset.
    Bad(RecordError),
}

/// Reads the next record of a block into `buf` (bounded by `max_record`).
pub fn read_record<R: Read>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max_record: u64,
) -> io::Result<ReadRecord> {
    let mut hdr = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut hdr[got..]) {
            Ok(0) if got == 0 => return Ok(ReadRecord::End),
            Ok(0) => return Ok(ReadRecord::Bad(RecordError::Truncated)),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u64::from(u32::from_le_bytes(hdr) & !HBIT);
    if len < MIN_RECORD as u64 || len > max_record {
        return Ok(ReadRecord::Bad(RecordError::BadLength));
    }
    buf.clear();
    buf.extend_from_slice(&hdr);
    let want = len - 4;
    let n = r.take(want).read_to_end(buf)?;
    if n as u64 != want {
        return Ok(ReadRecord::Bad(RecordError::Truncated));
    }
    Ok(ReadRecord::Record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_record_checksum() {
        // Record seq 1 of the ORDERS sample block (decode-ORDERS.txt).
        let rec: Vec<u8> = [
            &[
                0x2f, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x85, 0xb4, 0xd5, 0xea, 0x16, 0x3b, 0xec,
                0x18, 0x0a, 0,
            ][..],
            b"ORDERS.new",
            b"order-1",
            &[0x31, 0xed, 0x51, 0x40, 0x82, 0x17, 0x64, 0x07],
        ]
        .concat();
        let key = HashKey::for_block("ORDERS", 1);
        let r = parse_record(&rec, Some(&key)).unwrap();
        assert_eq!(r.seq, 1);
        assert_eq!(r.kind, RecordKind::Message);
        assert_eq!(r.subject, b"ORDERS.new");
        assert_eq!(r.body, b"order-1");
        let mut bad = rec.clone();
        bad[30] ^= 1;
        assert_eq!(
            parse_record(&bad, Some(&key)).unwrap_err(),
            RecordError::Checksum
        );
    }
}
