//! A minimal streaming reader of the POSIX tar archives inside v1 snapshots (Go's
//! `archive/tar` output: ustar headers, each preceded by a PAX `x` header), written here
//! rather than taken from a crate so that every size it reads from the input is bounded:
//! PAX/long-name records are capped at [`MAX_EXT_HEADER`], member data is never buffered
//! by this module.

use std::io::{self, Read, Write};

use super::error::ArchiveError;

/// Largest PAX or GNU long-name extension record accepted.
pub const MAX_EXT_HEADER: u64 = 1 << 20;

/// One member header (extensions already applied).
#[derive(Debug, Clone)]
pub struct TarHeader {
    /// Member path as stored (PAX `path` or prefix/name).
    pub path: String,
    /// Type flag (`b'0'` or 0 for regular files).
    pub typeflag: u8,
    /// Data size.
    pub size: u64,
    /// Offset of the header in the tar stream.
    pub offset: u64,
}

impl TarHeader {
    /// Whether this is a regular file.
    pub fn is_regular(&self) -> bool {
        matches!(self.typeflag, b'0' | 0 | b'7')
    }
}

/// Streaming tar reader.
pub struct TarReader<R: Read> {
    r: R,
    offset: u64,
    remaining: u64,
    pad: u64,
    ended: bool,
}

fn eof(context: &'static str) -> ArchiveError {
    ArchiveError::UnexpectedEof { context }
}

fn parse_octal(field: &[u8]) -> Option<u64> {
    let s: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&c| c == b' ' || c == 0)
        .take_while(|&c| c != b' ' && c != 0)
        .collect();
    if s.is_empty() {
        return Some(0);
    }
    let mut v: u64 = 0;
    for c in s {
        if !(b'0'..=b'7').contains(&c) {
            return None;
        }
        v = v.checked_mul(8)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(v)
}

fn parse_numeric(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        // GNU base-256: big-endian, the first byte's top bit is the marker.
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            if v >> 56 != 0 {
                return None;
            }
            v = (v << 8) | u64::from(b);
        }
        Some(v)
    } else {
        parse_octal(field)
    }
}

fn cstr(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&c| c == 0).unwrap_or(field.len());
    &field[..end]
}

impl<R: Read> TarReader<R> {
    /// Reads a tar stream from `r`.
    pub fn new(r: R) -> Self {
        TarReader {
            r,
            offset: 0,
            remaining: 0,
            pad: 0,
            ended: false,
        }
    }

    fn read_block(&mut self, buf: &mut [u8; 512]) -> Result<bool, ArchiveError> {
        let mut got = 0;
        while got < 512 {
            match self.r.read(&mut buf[got..]) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => return Err(eof("tar header")),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ArchiveError::from_io(e)),
            }
        }
        self.offset += 512;
        Ok(true)
    }

    fn skip(&mut self, mut n: u64) -> Result<(), ArchiveError> {
        let mut sink = [0u8; 8192];
        while n > 0 {
            let want = n.min(sink.len() as u64) as usize;
            match self.r.read(&mut sink[..want]) {
                Ok(0) => return Err(eof("tar member data")),
                Ok(k) => {
                    n -= k as u64;
                    self.offset += k as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ArchiveError::from_io(e)),
            }
        }
        Ok(())
    }

    fn finish_member(&mut self) -> Result<(), ArchiveError> {
        let n = self.remaining + self.pad;
        self.remaining = 0;
        self.pad = 0;
        self.skip(n)
    }

    fn read_ext(&mut self, size: u64) -> Result<Vec<u8>, ArchiveError> {
        if size > MAX_EXT_HEADER {
            return Err(ArchiveError::TooLarge {
                what: "tar extension header",
                size,
                max: MAX_EXT_HEADER,
            });
        }
        let mut v = vec![0u8; size as usize];
        let mut got = 0;
        while got < v.len() {
            match self.r.read(&mut v[got..]) {
                Ok(0) => return Err(eof("tar extension header")),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ArchiveError::from_io(e)),
            }
        }
        self.offset += size;
        self.skip((512 - size % 512) % 512)?;
        Ok(v)
    }

    /// Advances to the next member (skipping unread data of the current one); `None` at
    /// the end-of-archive marker or a clean end of stream.
    pub fn next_header(&mut self) -> Result<Option<TarHeader>, ArchiveError> {
        if self.ended {
            return Ok(None);
        }
        self.finish_member()?;
        let mut pax_path: Option<String> = None;
        let mut pax_size: Option<u64> = None;
        let mut long_name: Option<String> = None;
        loop {
            let start = self.offset;
            let mut h = [0u8; 512];
            if !self.read_block(&mut h)? || h.iter().all(|&b| b == 0) {
                self.ended = true;
                return Ok(None);
            }
            let bad = |reason| ArchiveError::InvalidTarHeader {
                offset: start,
                reason,
            };
            let stored = parse_octal(&h[148..156]).ok_or(bad("bad checksum field"))?;
            let unsigned: u64 = h
                .iter()
                .enumerate()
                .map(|(i, &b)| {
                    if (148..156).contains(&i) {
                        32
                    } else {
                        u64::from(b)
                    }
                })
                .sum();
            let signed: i64 = h
                .iter()
                .enumerate()
                .map(|(i, &b)| {
                    if (148..156).contains(&i) {
                        32
                    } else {
                        i64::from(b as i8)
                    }
                })
                .sum();
            if stored != unsigned && stored as i64 != signed {
                return Err(bad("header checksum mismatch"));
            }
            let size = parse_numeric(&h[124..136]).ok_or(bad("bad size field"))?;
            let typeflag = h[156];
            match typeflag {
                b'x' => {
                    let data = self.read_ext(size)?;
                    for (k, v) in parse_pax(&data).ok_or(bad("bad PAX record"))? {
                        match k.as_str() {
                            "path" => pax_path = Some(v),
                            "size" => pax_size = Some(v.parse().map_err(|_| bad("bad PAX size"))?),
                            _ => {}
                        }
                    }
                    continue;
                }
                b'g' => {
                    self.read_ext(size)?;
                    continue;
                }
                b'L' => {
                    let data = self.read_ext(size)?;
                    long_name = Some(String::from_utf8_lossy(cstr(&data)).into_owned());
                    continue;
                }
                b'K' => {
                    self.read_ext(size)?;
                    continue;
                }
                _ => {}
            }
            let name = cstr(&h[0..100]);
            let magic = &h[257..263];
            let mut path = String::from_utf8_lossy(name).into_owned();
            if magic == b"ustar\0" {
                let prefix = cstr(&h[345..500]);
                if !prefix.is_empty() {
                    path = format!("{}/{}", String::from_utf8_lossy(prefix), path);
                }
            }
            if let Some(p) = long_name.take() {
                path = p;
            }
            if let Some(p) = pax_path.take() {
                path = p;
            }
            let size = pax_size.take().unwrap_or(size);
            // Only regular files carry data that we must skip; Go also skips data of
            // other types by their size, except links/dirs whose size is ignored.
            let data_size = if matches!(typeflag, b'1' | b'2' | b'3' | b'4' | b'5' | b'6') {
                0
            } else {
                size
            };
            self.remaining = data_size;
            self.pad = (512 - data_size % 512) % 512;
            return Ok(Some(TarHeader {
                path,
                typeflag,
                size: data_size,
                offset: start,
            }));
        }
    }

    /// Copies the current member's data to `w`.
    pub fn copy_data<W: Write>(&mut self, w: &mut W) -> Result<u64, ArchiveError> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0;
        while self.remaining > 0 {
            let want = self.remaining.min(buf.len() as u64) as usize;
            let n = match self.r.read(&mut buf[..want]) {
                Ok(0) => return Err(eof("tar member data")),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ArchiveError::from_io(e)),
            };
            w.write_all(&buf[..n])?;
            self.remaining -= n as u64;
            self.offset += n as u64;
            total += n as u64;
        }
        Ok(total)
    }

    /// Reads the current member's data into memory if it is at most `max` bytes.
    pub fn read_data(&mut self, max: u64, what: &'static str) -> Result<Vec<u8>, ArchiveError> {
        if self.remaining > max {
            return Err(ArchiveError::TooLarge {
                what,
                size: self.remaining,
                max,
            });
        }
        let mut v = Vec::new();
        self.copy_data(&mut v)?;
        Ok(v)
    }
}

/// Parses PAX records `"<len> <key>=<value>\n"`.
fn parse_pax(mut data: &[u8]) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        if data.iter().all(|&b| b == 0) {
            break;
        }
        let sp = data.iter().position(|&c| c == b' ')?;
        let len: usize = std::str::from_utf8(&data[..sp]).ok()?.parse().ok()?;
        if len <= sp + 1 || len > data.len() || data[len - 1] != b'\n' {
            return None;
        }
        let rec = &data[sp + 1..len - 1];
        let eq = rec.iter().position(|&c| c == b'=')?;
        out.push((
            String::from_utf8_lossy(&rec[..eq]).into_owned(),
            String::from_utf8_lossy(&rec[eq + 1..]).into_owned(),
        ));
        data = &data[len..];
    }
    Some(out)
}

/// Normalises a member path to its components, rejecting absolute paths, `..` and empty
/// names.
pub fn safe_components(path: &str) -> Result<Vec<&str>, ArchiveError> {
    let unsafe_path = || ArchiveError::UnsafePath {
        path: path.to_string(),
    };
    if path.starts_with('/') || path.starts_with('\\') || path.contains('\0') {
        return Err(unsafe_path());
    }
    let mut parts = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(unsafe_path()),
            c if c.contains('\\') => return Err(unsafe_path()),
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(unsafe_path());
    }
    Ok(parts)
}
