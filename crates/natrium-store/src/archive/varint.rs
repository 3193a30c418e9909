//! Go `encoding/binary` varints (LEB128 uvarint, zigzag varint) over slices and readers.

use std::io::{self, Read};

/// Appends `v` as a uvarint.
pub fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `v` as a zigzag varint.
pub fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// A cursor over a byte slice with Go-style varint reads; every read is bounds-checked.
pub struct SliceCursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> SliceCursor<'a> {
    /// Starts at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        SliceCursor { buf, pos: 0 }
    }

    /// Current position.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Reads a uvarint (at most 10 bytes, no overflow).
    pub fn uvarint(&mut self) -> Option<u64> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = *self.buf.get(self.pos + i)?;
            if i == 9 && b > 1 {
                return None;
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.pos += i + 1;
                return Some(v);
            }
        }
        None
    }

    /// Reads a zigzag varint.
    pub fn varint(&mut self) -> Option<i64> {
        let u = self.uvarint()?;
        Some(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// Reads `n` raw bytes.
    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Option<u8> {
        Some(self.bytes(1)?[0])
    }

    /// Reads a little-endian u16.
    pub fn u16_le(&mut self) -> Option<u16> {
        let b = self.bytes(2)?;
        Some(u16::from_le_bytes([b[0], b[1]]))
    }

    /// Reads a little-endian u32.
    pub fn u32_le(&mut self) -> Option<u32> {
        let b = self.bytes(4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a little-endian u64.
    pub fn u64_le(&mut self) -> Option<u64> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_le_bytes(a))
    }
}

/// Outcome of reading a uvarint from a stream.
pub enum VarintRead {
    /// A value.
    Value(u64),
    /// Clean end of stream before the first byte.
    Eof,
    /// The stream ended inside the varint.
    Truncated,
    /// More than 10 bytes or overflow.
    Overflow,
}

/// Reads one uvarint from `r`.
pub fn read_uvarint<R: Read>(r: &mut R) -> io::Result<VarintRead> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let mut b = [0u8; 1];
        loop {
            match r.read(&mut b) {
                Ok(0) => {
                    return Ok(if i == 0 {
                        VarintRead::Eof
                    } else {
                        VarintRead::Truncated
                    });
                }
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let b = b[0];
        if i == 9 && b > 1 {
            return Ok(VarintRead::Overflow);
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Ok(VarintRead::Value(v));
        }
    }
    Ok(VarintRead::Overflow)
}

/// Reads exactly `n` bytes from `r` into `out` (cleared first), growing the buffer only as
/// data actually arrives, so a hostile length cannot make us allocate more than the input
/// holds. Returns `false` if the stream ended early.
pub fn read_exact_growing<R: Read>(r: &mut R, n: u64, out: &mut Vec<u8>) -> io::Result<bool> {
    out.clear();
    if n <= 64 * 1024 {
        out.reserve(n as usize);
    }
    let got = r.take(n).read_to_end(out)?;
    Ok(got as u64 == n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        for v in [0i64, 1, -1, 63, -64, 1 << 40, i64::MIN, i64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(SliceCursor::new(&b).varint(), Some(v));
        }
        assert_eq!(SliceCursor::new(&[0xff; 11]).uvarint(), None);
        assert_eq!(SliceCursor::new(&[0x80]).uvarint(), None);
        // Sample: varint a2 c9 d7 a3 e1 c5 9d ec 31 is the state.json timestamp.
        let b = [0xa2, 0xc9, 0xd7, 0xa3, 0xe1, 0xc5, 0x9d, 0xec, 0x31];
        assert_eq!(
            SliceCursor::new(&b).varint(),
            Some(1_795_875_321_555_907_153)
        );
    }
}
