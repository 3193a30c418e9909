//! S2 / Snappy framing: the outer layer of every JetStream snapshot.
//!
//! A framed stream is a sequence of chunks `type:u8 | len:u24 LE | body`. The writer emits
//! one `S2sTwO` stream identifier, then one chunk per ≤ 1 MiB of input: a Snappy-compatible
//! compressed block (valid S2) when that is smaller, an uncompressed chunk otherwise, each
//! with the masked CRC-32C of its uncompressed bytes. The reader accepts what nats-server
//! accepts: `S2sTwO` and `sNaPpY` identifiers (repeatable), chunk types 0x00/0x01, skippable
//! 0x80..=0xfe, S2 blocks up to 4 MiB with repeat offsets; reserved types are errors and
//! every CRC is verified. Memory use is bounded by the largest chunk (16 MiB on the wire,
//! 4 MiB decoded) whatever the input claims.
//!
//! Incompressible input: a chunk that compression barely shrinks (encrypted or already
//! compressed payloads, random bytes) cost the writer a full compression pass for
//! nothing, a sixth of a backup's snapshot thread. After such a chunk the writer stores
//! the next ones uncompressed without trying, 1, 2, 4 … up to [`MAX_SKIP`] of them, and
//! tries again; one that compresses well resets the back-off. The output is the same
//! valid stream (uncompressed chunks are part of the format), only with fewer attempts.
//! The price: input that alternates between compressible and incompressible megabytes
//! can have compressible chunks stored as they are (those that fall in a skip), so its
//! archive is larger than it could be; never invalid.

use std::io::{self, Read, Write};

use super::error::ArchiveError;

/// Uncompressed bytes per chunk written (what nats-server 2.15 uses).
pub const WRITE_CHUNK_SIZE: usize = 1 << 20;
/// Largest decoded block accepted (S2's maximum block size).
pub const MAX_BLOCK_SIZE: usize = 4 << 20;
/// Largest compressed chunk body accepted: the worst-case encoding of a
/// [`MAX_BLOCK_SIZE`] block plus its checksum.
pub const MAX_COMPRESSED_CHUNK: usize = 4 + 32 + MAX_BLOCK_SIZE + MAX_BLOCK_SIZE / 6 + 16;

/// Most chunks stored without a compression attempt after incompressible ones (16 MiB
/// of input between attempts at most).
pub const MAX_SKIP: u32 = 16;

const CHUNK_COMPRESSED: u8 = 0x00;
const CHUNK_UNCOMPRESSED: u8 = 0x01;
const CHUNK_IDENTIFIER: u8 = 0xff;
const S2_MAGIC: &[u8; 6] = b"S2sTwO";
const SNAPPY_MAGIC: &[u8; 6] = b"sNaPpY";

/// The masked CRC-32C that S2/Snappy frames carry.
pub fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c::crc32c(data);
    (c.rotate_right(15)).wrapping_add(0xa282_ead8)
}

/// Streaming S2 frame writer. Data is buffered up to [`WRITE_CHUNK_SIZE`] and written as
/// one chunk; call [`S2FrameWriter::finish`] to write the tail and get the inner writer.
pub struct S2FrameWriter<W: Write> {
    inner: W,
    buf: Vec<u8>,
    out: Vec<u8>,
    encoder: snap::raw::Encoder,
    wrote_header: bool,
    /// Chunks still to store without trying to compress them (see the module docs).
    skip_left: u32,
    /// How many to skip after the next incompressible chunk (0 after a good one).
    backoff: u32,
    /// Compression attempts made (for the tests of the back-off).
    attempts: u64,
}

impl<W: Write> S2FrameWriter<W> {
    /// Wraps `inner`; nothing is written until the first chunk is full or `flush`/`finish`.
    pub fn new(inner: W) -> Self {
        S2FrameWriter {
            inner,
            buf: Vec::with_capacity(64 * 1024),
            out: Vec::new(),
            encoder: snap::raw::Encoder::new(),
            wrote_header: false,
            skip_left: 0,
            backoff: 0,
            attempts: 0,
        }
    }

    /// The wrapped writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    fn write_header(&mut self) -> io::Result<()> {
        if !self.wrote_header {
            self.inner.write_all(&[
                CHUNK_IDENTIFIER,
                6,
                0,
                0,
                b'S',
                b'2',
                b's',
                b'T',
                b'w',
                b'O',
            ])?;
            self.wrote_header = true;
        }
        Ok(())
    }

    fn emit_chunk(&mut self) -> io::Result<()> {
        self.write_header()?;
        if self.buf.is_empty() {
            return Ok(());
        }
        let crc = masked_crc(&self.buf);
        let n = self.try_compress()?;
        let (kind, body): (u8, &[u8]) = match n {
            Some(n) => (CHUNK_COMPRESSED, &self.out[..n]),
            None => (CHUNK_UNCOMPRESSED, &self.buf[..]),
        };
        let len = (body.len() + 4) as u32;
        let hdr = [kind, len as u8, (len >> 8) as u8, (len >> 16) as u8];
        self.inner.write_all(&hdr)?;
        self.inner.write_all(&crc.to_le_bytes())?;
        self.inner.write_all(body)?;
        self.buf.clear();
        Ok(())
    }

    /// Compress the buffered chunk into `out` unless the back-off says to skip it; the
    /// compressed length when that is smaller than the input.
    fn try_compress(&mut self) -> io::Result<Option<usize>> {
        if self.skip_left > 0 {
            self.skip_left -= 1;
            return Ok(None);
        }
        let len = self.buf.len();
        self.out.resize(snap::raw::max_compress_len(len), 0);
        self.attempts += 1;
        let n = self
            .encoder
            .compress(&self.buf, &mut self.out)
            .map_err(io::Error::other)?;
        // Saving less than 1/32 of a chunk is not worth a pass over the next ones.
        if n + len / 32 >= len {
            self.backoff = (self.backoff * 2).clamp(1, MAX_SKIP);
            self.skip_left = self.backoff;
        } else {
            self.backoff = 0;
        }
        Ok((n < len).then_some(n))
    }

    /// Compression attempts made so far.
    pub fn attempts(&self) -> u64 {
        self.attempts
    }

    /// Writes any buffered data as a last chunk, flushes, and returns the inner writer.
    /// An empty stream still gets its stream identifier.
    pub fn finish(mut self) -> io::Result<W> {
        self.emit_chunk()?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for S2FrameWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = WRITE_CHUNK_SIZE - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= WRITE_CHUNK_SIZE {
            self.emit_chunk()?;
        }
        Ok(n)
    }

    /// Emits the buffered data as a (short) chunk and flushes the inner writer.
    fn flush(&mut self) -> io::Result<()> {
        self.emit_chunk()?;
        self.inner.flush()
    }
}

/// Which stream identifier a framed stream carried (the last one seen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FrameFlavor {
    /// `S2sTwO`.
    S2,
    /// `sNaPpY`.
    Snappy,
}

/// Streaming reader of an S2/Snappy framed stream; yields the decompressed bytes.
pub struct S2FrameReader<R: Read> {
    inner: R,
    /// Compressed-stream offset of the next chunk header.
    offset: u64,
    flavor: Option<FrameFlavor>,
    chunk: Vec<u8>,
    decoded: Vec<u8>,
    pos: usize,
    /// Totals for verification reports.
    compressed_bytes: u64,
    decompressed_bytes: u64,
    chunks: u64,
    done: bool,
}

impl<R: Read> S2FrameReader<R> {
    /// Wraps `inner`, which must start with a stream identifier chunk.
    pub fn new(inner: R) -> Self {
        S2FrameReader {
            inner,
            offset: 0,
            flavor: None,
            chunk: Vec::new(),
            decoded: Vec::new(),
            pos: 0,
            compressed_bytes: 0,
            decompressed_bytes: 0,
            chunks: 0,
            done: false,
        }
    }

    /// The stream identifier seen, once one was read.
    pub fn flavor(&self) -> Option<FrameFlavor> {
        self.flavor
    }

    /// Compressed bytes consumed so far.
    pub fn compressed_bytes(&self) -> u64 {
        self.compressed_bytes
    }

    /// Decompressed bytes produced so far.
    pub fn decompressed_bytes(&self) -> u64 {
        self.decompressed_bytes
    }

    /// Data chunks read so far.
    pub fn chunks(&self) -> u64 {
        self.chunks
    }

    fn corrupt(&self, reason: &'static str) -> ArchiveError {
        ArchiveError::CorruptInput {
            offset: self.offset,
            reason,
        }
    }

    /// Reads exactly `buf.len()` bytes; `Ok(false)` on a clean EOF before the first byte
    /// when `eof_ok`, a corrupt-input error on a short read otherwise.
    fn read_full(&mut self, which: usize, eof_ok: bool) -> Result<bool, ArchiveError> {
        let mut got = 0;
        let len = if which == 0 { 4 } else { self.chunk.len() };
        let mut hdr = [0u8; 4];
        while got < len {
            let r = if which == 0 {
                self.inner.read(&mut hdr[got..])
            } else {
                self.inner.read(&mut self.chunk[got..])
            };
            match r {
                Ok(0) => {
                    if got == 0 && eof_ok {
                        return Ok(false);
                    }
                    return Err(self.corrupt("truncated chunk"));
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ArchiveError::Io(e)),
            }
        }
        if which == 0 {
            self.chunk.clear();
            self.chunk.extend_from_slice(&hdr);
        }
        Ok(true)
    }

    /// Reads chunks until one yields data; `Ok(false)` at the end of the stream.
    fn fill(&mut self) -> Result<bool, ArchiveError> {
        loop {
            if !self.read_full(0, true)? {
                self.done = true;
                return Ok(false);
            }
            let kind = self.chunk[0];
            let len = u32::from_le_bytes([self.chunk[1], self.chunk[2], self.chunk[3], 0]) as usize;
            let start = self.offset;
            if self.flavor.is_none() && kind != CHUNK_IDENTIFIER {
                return Err(self.corrupt("missing stream identifier"));
            }
            match kind {
                CHUNK_IDENTIFIER => {
                    if len != 6 {
                        return Err(self.corrupt("bad stream identifier length"));
                    }
                    self.chunk.resize(6, 0);
                    self.read_full(1, false)?;
                    self.flavor = Some(if self.chunk[..] == S2_MAGIC[..] {
                        FrameFlavor::S2
                    } else if self.chunk[..] == SNAPPY_MAGIC[..] {
                        FrameFlavor::Snappy
                    } else {
                        return Err(self.corrupt("bad stream identifier"));
                    });
                }
                CHUNK_COMPRESSED | CHUNK_UNCOMPRESSED => {
                    if len < 4 {
                        return Err(self.corrupt("chunk too short for its checksum"));
                    }
                    if (kind == CHUNK_UNCOMPRESSED && len - 4 > MAX_BLOCK_SIZE)
                        || len > MAX_COMPRESSED_CHUNK
                    {
                        return Err(ArchiveError::BlockTooLarge {
                            offset: start,
                            len: (len - 4) as u64,
                        });
                    }
                    self.chunk.resize(len, 0);
                    self.read_full(1, false)?;
                    let expected = u32::from_le_bytes([
                        self.chunk[0],
                        self.chunk[1],
                        self.chunk[2],
                        self.chunk[3],
                    ]);
                    self.decoded.clear();
                    self.pos = 0;
                    if kind == CHUNK_COMPRESSED {
                        decode_block(&self.chunk[4..], &mut self.decoded, MAX_BLOCK_SIZE).map_err(
                            |e| match e {
                                BlockError::TooLarge(n) => ArchiveError::BlockTooLarge {
                                    offset: start,
                                    len: n,
                                },
                                BlockError::Corrupt(reason) => ArchiveError::CorruptInput {
                                    offset: start,
                                    reason,
                                },
                            },
                        )?;
                    } else {
                        self.decoded.extend_from_slice(&self.chunk[4..]);
                    }
                    let actual = masked_crc(&self.decoded);
                    if actual != expected {
                        return Err(ArchiveError::CrcMismatch {
                            offset: start,
                            expected,
                            actual,
                        });
                    }
                    self.chunks += 1;
                    self.decompressed_bytes += self.decoded.len() as u64;
                }
                0x02..=0x7f => {
                    return Err(ArchiveError::UnsupportedChunk {
                        offset: start,
                        chunk_type: kind,
                    });
                }
                _ => {
                    // Skippable (0x80..=0xfe): discard without buffering it all.
                    let mut left = len as u64;
                    let mut sink = [0u8; 4096];
                    while left > 0 {
                        let want = left.min(sink.len() as u64) as usize;
                        match self.inner.read(&mut sink[..want]) {
                            Ok(0) => return Err(self.corrupt("truncated skippable chunk")),
                            Ok(n) => left -= n as u64,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(ArchiveError::Io(e)),
                        }
                    }
                }
            }
            self.offset += 4 + len as u64;
            self.compressed_bytes = self.offset;
            if self.pos < self.decoded.len() {
                return Ok(true);
            }
        }
    }
}

impl<R: Read> Read for S2FrameReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        while self.pos >= self.decoded.len() {
            if self.done {
                return Ok(0);
            }
            if !self.fill().map_err(ArchiveError::into_io)? {
                return Ok(0);
            }
        }
        let n = out.len().min(self.decoded.len() - self.pos);
        out[..n].copy_from_slice(&self.decoded[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Buffered access to the decoded bytes: the archive decoder parses entry headers and
/// copies bodies straight out of the decoded chunk instead of a `read` call per varint
/// byte (a 1 KiB message costs ~15 such calls otherwise).
impl<R: Read> io::BufRead for S2FrameReader<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos >= self.decoded.len() {
            if self.done || !self.fill().map_err(ArchiveError::into_io)? {
                return Ok(&[]);
            }
        }
        Ok(&self.decoded[self.pos..])
    }

    fn consume(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n).min(self.decoded.len());
    }
}

/// Why a block failed to decode.
#[derive(Debug, PartialEq, Eq)]
pub enum BlockError {
    /// Malformed block.
    Corrupt(&'static str),
    /// Declared decoded length above the limit.
    TooLarge(u64),
}

fn read_uvarint(src: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for (i, &b) in src.iter().enumerate().take(10) {
        if i == 9 && b > 1 {
            return None;
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Some((v, i + 1));
        }
    }
    None
}

/// Decodes one S2 block (Snappy block format plus S2 repeat offsets) into `dst`
/// (cleared first). `max` bounds the decoded length.
pub fn decode_block(src: &[u8], dst: &mut Vec<u8>, max: usize) -> Result<(), BlockError> {
    use BlockError::Corrupt;
    dst.clear();
    let (dlen, mut s) = read_uvarint(src).ok_or(Corrupt("bad block length"))?;
    if dlen > max as u64 {
        return Err(BlockError::TooLarge(dlen));
    }
    let dlen = dlen as usize;
    dst.reserve(dlen);
    let mut prev_offset: usize = 0;
    let byte = |i: usize| -> Result<u64, BlockError> {
        src.get(i)
            .map(|&b| u64::from(b))
            .ok_or(Corrupt("truncated element"))
    };
    while s < src.len() {
        let tag = src[s];
        let (length, offset) = match tag & 3 {
            0 => {
                let x = usize::from(tag >> 2);
                let (len, hdr) = match x {
                    0..=59 => (x as u64 + 1, 1),
                    60 => (byte(s + 1)? + 1, 2),
                    61 => (byte(s + 1)? | byte(s + 2)? << 8, 3),
                    62 => (byte(s + 1)? | byte(s + 2)? << 8 | byte(s + 3)? << 16, 4),
                    _ => (
                        byte(s + 1)? | byte(s + 2)? << 8 | byte(s + 3)? << 16 | byte(s + 4)? << 24,
                        5,
                    ),
                };
                let len = if x >= 61 { len + 1 } else { len };
                s += hdr;
                if len > (dlen - dst.len()) as u64 || len > (src.len() - s) as u64 {
                    return Err(Corrupt("literal out of bounds"));
                }
                let len = len as usize;
                dst.extend_from_slice(&src[s..s + len]);
                s += len;
                continue;
            }
            1 => {
                let code = u64::from((tag >> 2) & 7);
                let off = (usize::from(tag & 0xe0) << 3) | byte(s + 1)? as usize;
                s += 2;
                if off == 0 {
                    // S2 repeat: reuse the previous offset.
                    let len = match code {
                        0..=4 => code + 4,
                        5 => {
                            s += 1;
                            byte(s - 1)? + 8
                        }
                        6 => {
                            s += 2;
                            (byte(s - 2)? | byte(s - 1)? << 8) + 260
                        }
                        _ => {
                            s += 3;
                            (byte(s - 3)? | byte(s - 2)? << 8 | byte(s - 1)? << 16) + 65540
                        }
                    };
                    (len, prev_offset)
                } else {
                    (code + 4, off)
                }
            }
            2 => {
                let len = u64::from(tag >> 2) + 1;
                let off = (byte(s + 1)? | byte(s + 2)? << 8) as usize;
                s += 3;
                (len, off)
            }
            _ => {
                let len = u64::from(tag >> 2) + 1;
                let off =
                    (byte(s + 1)? | byte(s + 2)? << 8 | byte(s + 3)? << 16 | byte(s + 4)? << 24)
                        as usize;
                s += 5;
                (len, off)
            }
        };
        if offset == 0 || offset > dst.len() {
            return Err(Corrupt("copy offset out of bounds"));
        }
        if length > (dlen - dst.len()) as u64 {
            return Err(Corrupt("copy length out of bounds"));
        }
        prev_offset = offset;
        let length = length as usize;
        let start = dst.len() - offset;
        if offset >= length {
            dst.extend_from_within(start..start + length);
        } else {
            for i in 0..length {
                let b = dst[start + i];
                dst.push(b);
            }
        }
    }
    if dst.len() != dlen {
        return Err(Corrupt("decoded length mismatch"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(data: &[u8]) {
        let mut w = S2FrameWriter::new(Vec::new());
        w.write_all(data).unwrap();
        let framed = w.finish().unwrap();
        let mut r = S2FrameReader::new(&framed[..]);
        let mut back = Vec::new();
        r.read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
    }

    /// Bytes snappy cannot shrink (xorshift noise).
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn incompressible_chunks_back_off_and_compressible_ones_come_back() {
        const MIB: usize = WRITE_CHUNK_SIZE;
        let mut data = noise(40 * MIB, 7);
        let text: Vec<u8> = b"{\"order\":12345,\"state\":\"paid\"} "
            .iter()
            .copied()
            .cycle()
            .take(40 * MIB)
            .collect();
        data.extend_from_slice(&text);
        let mut w = S2FrameWriter::new(Vec::new());
        w.write_all(&data[..40 * MIB]).unwrap();
        // 40 noise chunks: tried at 1, 3, 6, 11, 20, 37 (skipping 1, 2, 4, 8, 16, 16).
        assert_eq!(w.attempts(), 6, "noise is not compressed chunk by chunk");
        let noise_out = w.get_ref().len();
        assert!(noise_out > 40 * MIB, "noise stays uncompressed");
        w.write_all(&data[40 * MIB..]).unwrap();
        let framed = w.finish().unwrap();
        // The text after the noise is compressed again once the back-off has run out:
        // at most MAX_SKIP of its chunks are stored as they are.
        let text_out = framed.len() - noise_out;
        assert!(
            text_out < (MAX_SKIP as usize + 2) * MIB,
            "compressible data after noise: {text_out} bytes"
        );
        let mut back = Vec::new();
        S2FrameReader::new(&framed[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == data, "the stream reads back unchanged");
    }

    #[test]
    fn compressible_chunks_are_all_compressed() {
        let text: Vec<u8> = b"abcdefgh".iter().copied().cycle().take(5 << 20).collect();
        let mut w = S2FrameWriter::new(Vec::new());
        w.write_all(&text).unwrap();
        assert_eq!(w.attempts(), 5);
        let framed = w.finish().unwrap();
        assert!(framed.len() < 1 << 20);
    }

    #[test]
    fn roundtrips() {
        roundtrip(b"");
        roundtrip(b"hello");
        let big: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i % 251) as u8 ^ (i / 7919) as u8)
            .collect();
        roundtrip(&big);
    }

    #[test]
    fn masked_crc_known_value() {
        // The S2 writer of nats-server 2.15.1 framed "NATSARC1..." with this CRC in the
        // sample; here only the masking arithmetic is checked on a simple vector.
        let c = crc32c::crc32c(b"abc");
        assert_eq!(
            masked_crc(b"abc"),
            c.rotate_right(15).wrapping_add(0xa282_ead8)
        );
    }

    #[test]
    fn repeat_offsets() {
        // literal "abcd", copy1 offset 4 len 4, repeat len 4 (code 0), repeat with
        // one-byte extension (code 5: len = 2 + 8 = 10).
        let mut src = vec![22u8]; // decoded length 22
        src.push(3 << 2); // literal len 4
        src.extend_from_slice(b"abcd");
        src.extend_from_slice(&[0b0000_0001, 4]); // copy1 len 4 off 4
        src.extend_from_slice(&[0b0000_0001, 0]); // repeat len 4
        src.extend_from_slice(&[(5 << 2) | 1, 0, 2]); // repeat len 10
        let mut dst = Vec::new();
        decode_block(&src, &mut dst, 1 << 20).unwrap();
        assert_eq!(dst, b"abcdabcdabcdabcdabcdab");
    }

    /// A block using every element form: literals with 1..4-byte lengths, copy1, copy2,
    /// copy4, overlapping copies and S2 repeats with 0-, 1-, 2- and 3-byte extensions.
    #[test]
    fn all_element_forms() {
        fn uv(out: &mut Vec<u8>, mut v: u64) {
            while v >= 0x80 {
                out.push(v as u8 | 0x80);
                v >>= 7;
            }
            out.push(v as u8);
        }
        let mut body = Vec::new();
        let mut want: Vec<u8> = Vec::new();
        let lit = |body: &mut Vec<u8>, want: &mut Vec<u8>, data: &[u8]| {
            let n = data.len() - 1;
            match n {
                0..=59 => body.push((n as u8) << 2),
                60..=0xff => body.extend_from_slice(&[60 << 2, n as u8]),
                0x100..=0xffff => body.extend_from_slice(&[61 << 2, n as u8, (n >> 8) as u8]),
                _ => body.extend_from_slice(&[62 << 2, n as u8, (n >> 8) as u8, (n >> 16) as u8]),
            }
            body.extend_from_slice(data);
            want.extend_from_slice(data);
        };
        let copy = |want: &mut Vec<u8>, off: usize, len: usize| {
            for _ in 0..len {
                let b = want[want.len() - off];
                want.push(b);
            }
        };
        let pattern: Vec<u8> = (0..70_000u32).map(|i| (i * 31 % 251) as u8).collect();
        lit(&mut body, &mut want, &pattern[..10]);
        lit(&mut body, &mut want, &pattern[..100]);
        lit(&mut body, &mut want, &pattern[..1000]);
        lit(&mut body, &mut want, &pattern[..70_000]);
        // copy1: len 7, offset 300 (high bits in the tag).
        body.extend_from_slice(&[(3 << 2) | 1 | ((300 >> 8) << 5) as u8, (300 & 0xff) as u8]);
        copy(&mut want, 300, 7);
        // copy2: len 64, offset 3 (overlapping).
        body.extend_from_slice(&[(63 << 2) | 2, 3, 0]);
        copy(&mut want, 3, 64);
        // copy4: len 5, offset 70_000.
        let o = 70_000u32.to_le_bytes();
        body.extend_from_slice(&[(4 << 2) | 3, o[0], o[1], o[2], o[3]]);
        copy(&mut want, 70_000, 5);
        // repeats of offset 70_000: len 8 (code 4), 8+9 (code 5), 260+300 (code 6),
        // 65540+10 (code 7).
        body.extend_from_slice(&[(4 << 2) | 1, 0]);
        copy(&mut want, 70_000, 8);
        body.extend_from_slice(&[(5 << 2) | 1, 0, 9]);
        copy(&mut want, 70_000, 17);
        body.extend_from_slice(&[(6 << 2) | 1, 0, 44, 1]);
        copy(&mut want, 70_000, 560);
        body.extend_from_slice(&[(7 << 2) | 1, 0, 10, 0, 0]);
        copy(&mut want, 70_000, 65_550);
        let mut src = Vec::new();
        uv(&mut src, want.len() as u64);
        src.extend_from_slice(&body);
        let mut dst = Vec::new();
        decode_block(&src, &mut dst, MAX_BLOCK_SIZE).unwrap();
        assert!(dst == want);
        // Declared length too small for the content, or too large for the limit.
        let mut short = Vec::new();
        uv(&mut short, want.len() as u64 - 1);
        short.extend_from_slice(&body);
        assert!(decode_block(&short, &mut dst, MAX_BLOCK_SIZE).is_err());
        assert_eq!(
            decode_block(&src, &mut dst, 1000),
            Err(BlockError::TooLarge(want.len() as u64))
        );
        // Repeat before any offset was set.
        assert!(decode_block(&[4, 1, 0], &mut dst, 100).is_err());
    }

    #[test]
    fn rejects_bad_input() {
        let mut dst = Vec::new();
        assert!(decode_block(&[5, 0b0000_0001, 0], &mut dst, 100).is_err());
        assert!(decode_block(&[0xff, 0xff, 0xff, 0xff, 0x0f], &mut dst, 100).is_err());
        assert!(decode_block(&[3, 8, b'a'], &mut dst, 100).is_err());
        let mut r = S2FrameReader::new(&b"\xff\x06\x00\x00S2sTwO\x02\x00\x00\x00"[..]);
        assert!(r.read(&mut [0u8; 4]).is_err());
        let mut r = S2FrameReader::new(&b"garbage!garbage"[..]);
        let e = r.read(&mut [0u8; 4]).unwrap_err();
        assert_eq!(ArchiveError::from_io(e).to_string(), "s2: corrupt input");
    }
}
