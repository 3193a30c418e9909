//! Segment record encoding.
//!
//! Why two checksums: the header checksum makes the record's length trustworthy on its
//! own, so a record whose body is damaged (bit rot in a payload) is skipped precisely and
//! reported with its sequence, while the records after it stay readable. A damaged header
//! means the length cannot be trusted; recovery then resynchronises by searching for the
//! next offset where a header checksums correctly.
//!
//! Layout (little endian), 48-byte header, body, 4-byte body checksum:
//!
//! ```text
//!  off size field
//!   0   4   len       total record length (header + body + 4), ≤ MAX_RECORD_LEN
//!   4   1   kind      1 MSG, 2 TOMBSTONE, 3 SKIP, 4 FLOOR, 5 TRUNCATE, 6 ERASED
//!   5   1   flags     reserved, 0
//!   6   2   subj_len  subject length
//!   8   4   hdr_len   NATS header block length
//!  12   8   seq       sequence (MSG/ERASED: the message; TOMBSTONE: the removed one;
//!                     SKIP: first skipped; FLOOR: the new first sequence; TRUNCATE: the
//!                     new last sequence)
//!  20   8   ts        timestamp, Unix nanos
//!  28   8   aux       MSG: per-message TTL (0 none, -1 never, >0 nanos); SKIP: count
//!  36   8   floor     every sequence below this is removed (the stream's first sequence
//!                     when the record was written)
//!  44   4   hcrc      CRC-32C of bytes 0..44
//!  48   …   body      subject ++ headers ++ payload
//! len-4 4   bcrc      CRC-32C of the body
//! ```

use crate::HARD_MAX_MSG_SIZE;

/// Header length.
pub const HDR_LEN: usize = 48;
/// Header + body checksum.
pub const OVERHEAD: usize = HDR_LEN + 4;
/// Largest valid record: overhead + max subject + max message. Every length read from
/// disk is checked against this before anything is allocated.
pub const MAX_RECORD_LEN: usize = OVERHEAD + u16::MAX as usize + HARD_MAX_MSG_SIZE as usize;

/// Record kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A stored message.
    Msg = 1,
    /// A removed message (`seq`).
    Tombstone = 2,
    /// Skipped sequences `seq .. seq + aux`.
    Skip = 3,
    /// Everything below `seq` removed; `last_seq ≥ seq - 1`.
    Floor = 4,
    /// Everything above `seq` removed; `last_seq = seq`.
    Truncate = 5,
    /// A message whose bytes were overwritten by `erase_msg`.
    Erased = 6,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Msg,
            2 => Kind::Tombstone,
            3 => Kind::Skip,
            4 => Kind::Floor,
            5 => Kind::Truncate,
            6 => Kind::Erased,
            _ => return None,
        })
    }
}

/// A decoded, checksum-verified header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Total record length.
    pub len: u32,
    /// Kind.
    pub kind: Kind,
    /// Subject length.
    pub subj_len: u16,
    /// Header block length.
    pub hdr_len: u32,
    /// Sequence.
    pub seq: u64,
    /// Timestamp.
    pub ts: i64,
    /// Kind-specific value.
    pub aux: i64,
    /// Floor.
    pub floor: u64,
}

impl Header {
    /// Payload length implied by the header.
    pub fn payload_len(&self) -> usize {
        self.len as usize - OVERHEAD - self.subj_len as usize - self.hdr_len as usize
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Why a header was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer than `HDR_LEN` bytes.
    Short,
    /// Checksum mismatch.
    Checksum,
    /// Checksum fine but fields inconsistent (unknown kind, bad lengths).
    Invalid,
}

/// Decodes and verifies a header from the first `HDR_LEN` bytes of `b`.
pub fn decode_header(b: &[u8]) -> Result<Header, HeaderError> {
    if b.len() < HDR_LEN {
        return Err(HeaderError::Short);
    }
    if crc32c::crc32c(&b[..44]) != u32_at(b, 44) {
        return Err(HeaderError::Checksum);
    }
    let len = u32_at(b, 0);
    let kind = Kind::from_u8(b[4]).ok_or(HeaderError::Invalid)?;
    let subj_len = u16::from_le_bytes([b[6], b[7]]);
    let hdr_len = u32_at(b, 8);
    let min = OVERHEAD as u64 + u64::from(subj_len) + u64::from(hdr_len);
    if (len as u64) < min || len as usize > MAX_RECORD_LEN || b[5] != 0 {
        return Err(HeaderError::Invalid);
    }
    Ok(Header {
        len,
        kind,
        subj_len,
        hdr_len,
        seq: u64_at(b, 12),
        ts: u64_at(b, 20) as i64,
        aux: u64_at(b, 28) as i64,
        floor: u64_at(b, 36),
    })
}

/// Verifies the body checksum of a full record (`rec.len() == header.len`).
pub fn verify_body(rec: &[u8]) -> bool {
    if rec.len() < OVERHEAD {
        return false;
    }
    let end = rec.len() - 4;
    crc32c::crc32c(&rec[HDR_LEN..end]) == u32_at(rec, end)
}

/// Total length of a record with these parts.
pub fn record_len(subj_len: usize, hdr_len: usize, payload_len: usize) -> usize {
    OVERHEAD + subj_len + hdr_len + payload_len
}

/// Fields of a record to encode.
#[derive(Debug, Clone, Copy)]
pub struct RecordFields<'a> {
    /// Kind.
    pub kind: Kind,
    /// Sequence.
    pub seq: u64,
    /// Timestamp.
    pub ts: i64,
    /// Kind-specific value.
    pub aux: i64,
    /// Floor.
    pub floor: u64,
    /// Subject.
    pub subj: &'a [u8],
    /// Header block.
    pub hdrs: &'a [u8],
    /// Payload.
    pub payload: &'a [u8],
}

/// Appends an encoded record to `out` (no allocation beyond `out`'s growth).
pub fn encode(out: &mut Vec<u8>, r: &RecordFields<'_>) {
    let len = record_len(r.subj.len(), r.hdrs.len(), r.payload.len());
    let start = out.len();
    out.reserve(len);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.push(r.kind as u8);
    out.push(0);
    out.extend_from_slice(&(r.subj.len() as u16).to_le_bytes());
    out.extend_from_slice(&(r.hdrs.len() as u32).to_le_bytes());
    out.extend_from_slice(&r.seq.to_le_bytes());
    out.extend_from_slice(&r.ts.to_le_bytes());
    out.extend_from_slice(&r.aux.to_le_bytes());
    out.extend_from_slice(&r.floor.to_le_bytes());
    let hcrc = crc32c::crc32c(&out[start..start + 44]);
    out.extend_from_slice(&hcrc.to_le_bytes());
    out.extend_from_slice(r.subj);
    out.extend_from_slice(r.hdrs);
    out.extend_from_slice(r.payload);
    let mut bcrc = crc32c::crc32c(r.subj);
    bcrc = crc32c::crc32c_append(bcrc, r.hdrs);
    bcrc = crc32c::crc32c_append(bcrc, r.payload);
    out.extend_from_slice(&bcrc.to_le_bytes());
}

/// Encodes the replacement written over an erased message: same length, kind `Erased`,
/// same sequence, body zeroed.
pub fn encode_erased(len: usize, seq: u64) -> Vec<u8> {
    let zeros = vec![0u8; len - OVERHEAD];
    let mut out = Vec::with_capacity(len);
    encode(
        &mut out,
        &RecordFields {
            kind: Kind::Erased,
            seq,
            ts: 0,
            aux: 0,
            floor: 0,
            subj: &[],
            hdrs: &[],
            payload: &zeros,
        },
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_detection() {
        let mut b = Vec::new();
        encode(
            &mut b,
            &RecordFields {
                kind: Kind::Msg,
                seq: 7,
                ts: 99,
                aux: -1,
                floor: 3,
                subj: b"a.b",
                hdrs: b"NATS/1.0\r\n\r\n",
                payload: b"hello",
            },
        );
        assert_eq!(b.len(), record_len(3, 12, 5));
        let h = decode_header(&b).unwrap();
        assert_eq!(
            (h.kind, h.seq, h.ts, h.aux, h.floor, h.payload_len()),
            (Kind::Msg, 7, 99, -1, 3, 5)
        );
        assert!(verify_body(&b));
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x10;
            let ok = decode_header(&c).is_ok() && verify_body(&c);
            assert!(!ok, "flip at byte {i} not detected");
        }
        let e = encode_erased(b.len(), 7);
        assert_eq!(e.len(), b.len());
        let h = decode_header(&e).unwrap();
        assert_eq!((h.kind, h.seq), (Kind::Erased, 7));
        assert!(verify_body(&e));
    }
}
