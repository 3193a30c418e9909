//! The v2 (`NATSARC1`, nats-server 2.15+) archive: writer and entry decoder.
//!
//! Decompressed layout: magic `NATSARC1`, then entries `uvarint name_len | varint ts |
//! uvarint seq | uvarint header_size | uvarint payload_size | name | header | payload`:
//! `state.json` first, exactly `consumer_count` `consumers/<name>` entries, one entry per
//! message in strictly increasing sequence order, and a 5-zero-byte sentinel. Both sides
//! stream: memory use is one entry, whatever the archive size.

use std::io::{self, BufRead, Write};

use serde::Serialize;

use super::error::ArchiveError;
use super::incremental::{INC_ENTRY, INC_MAGIC, IncrementalHeader};
use super::reader::Entry;
use super::s2_frame::S2FrameWriter;
use super::state_json::{ConsumerStateJson, StreamStateJson};
use super::varint::{SliceCursor, VarintRead, put_uvarint, put_varint, read_uvarint};

/// First 8 decompressed bytes of a v2 archive.
pub const MAGIC: &[u8; 8] = b"NATSARC1";
/// Longest entry name accepted (nats-server's limit).
pub const MAX_NAME_LEN: u64 = 1 << 20;
/// Largest metadata entry (`state.json`, `consumers/<name>`) accepted by the reader.
pub const MAX_META_SIZE: u64 = 256 << 20;
/// Name of the first entry.
pub const STATE_ENTRY: &str = "state.json";
/// Prefix of consumer entry names.
pub const CONSUMER_PREFIX: &str = "consumers/";

fn misuse(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Start,
    Consumers,
    Messages,
}

/// Streaming writer of a v2 archive inside S2 framing (what `$JS.API.STREAM.SNAPSHOT`
/// sends and what `nats stream backup` stores as `stream.tar.s2`).
pub struct ArchiveWriter<W: Write> {
    out: S2FrameWriter<W>,
    phase: Phase,
    meta_ts: i64,
    consumers_expected: u64,
    consumers_written: u64,
    prev_seq: u64,
    last_seq: u64,
    scratch: Vec<u8>,
    /// The magic was written already (incremental archives write their own).
    magic_written: bool,
    /// Incremental: messages must lie above this sequence.
    since: u64,
}

#[derive(Serialize)]
struct ConsumerEntryRef<'a> {
    config: &'a serde_json::Value,
    state: &'a ConsumerStateJson,
}

impl<W: Write> ArchiveWriter<W> {
    /// Starts an archive on `w`. Metadata entries are stamped with the current time.
    pub fn new(w: W) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        ArchiveWriter {
            out: S2FrameWriter::new(w),
            phase: Phase::Start,
            meta_ts: now,
            consumers_expected: 0,
            consumers_written: 0,
            prev_seq: 0,
            last_seq: 0,
            scratch: Vec::with_capacity(256),
            magic_written: false,
            since: 0,
        }
    }

    /// Starts an incremental archive (natrium's `NATRINC1`, see [`super::incremental`]):
    /// the magic and the `natrium.json` header, after which the archive goes on exactly
    /// like a v2 one, with messages above `header.since` only.
    pub fn incremental(w: W, header: &IncrementalHeader) -> io::Result<Self> {
        let mut a = Self::new(w);
        let json = serde_json::to_vec(header).map_err(io::Error::other)?;
        a.out.write_all(INC_MAGIC)?;
        let ts = a.meta_ts;
        a.entry(INC_ENTRY.as_bytes(), ts, 0, &[], &json)?;
        a.magic_written = true;
        a.since = header.since;
        Ok(a)
    }

    /// Sets the timestamp written on `state.json` and consumer entries (the snapshot time).
    pub fn set_metadata_timestamp(&mut self, ts_ns: i64) {
        self.meta_ts = ts_ns;
    }

    fn entry(
        &mut self,
        name: &[u8],
        ts: i64,
        seq: u64,
        header: &[u8],
        payload: &[u8],
    ) -> io::Result<()> {
        self.scratch.clear();
        put_uvarint(&mut self.scratch, name.len() as u64);
        put_varint(&mut self.scratch, ts);
        put_uvarint(&mut self.scratch, seq);
        put_uvarint(&mut self.scratch, header.len() as u64);
        put_uvarint(&mut self.scratch, payload.len() as u64);
        self.out.write_all(&self.scratch)?;
        self.out.write_all(name)?;
        self.out.write_all(header)?;
        self.out.write_all(payload)
    }

    /// Writes the magic and `state.json`; must be the first call. `consumer_count` of
    /// `state` is the number of [`ArchiveWriter::consumer`] calls that must follow.
    pub fn state(&mut self, state: &StreamStateJson) -> io::Result<()> {
        if self.phase != Phase::Start {
            return Err(misuse("state.json already written".into()));
        }
        if state.consumer_count < 0 {
            return Err(misuse("negative consumer count".into()));
        }
        let json = serde_json::to_vec(state).map_err(io::Error::other)?;
        if !self.magic_written {
            self.out.write_all(MAGIC)?;
            self.magic_written = true;
        }
        let ts = self.meta_ts;
        self.entry(STATE_ENTRY.as_bytes(), ts, 0, &[], &json)?;
        self.consumers_expected = state.consumer_count as u64;
        self.prev_seq = state.first_seq.saturating_sub(1).max(self.since);
        self.last_seq = state.last_seq;
        self.phase = Phase::Consumers;
        Ok(())
    }

    /// Writes one `consumers/<name>` entry (after `state`, before any message). As
    /// nats-server does, stream sequences are clamped to the state's `last_seq`:
    /// delivered and ack floor are lowered to it, pending and redelivered entries above it
    /// are dropped (consumer sequences are left alone).
    pub fn consumer(
        &mut self,
        name: &str,
        config: &serde_json::Value,
        state: &ConsumerStateJson,
    ) -> io::Result<()> {
        if self.phase != Phase::Consumers {
            return Err(misuse("consumer entries go right after state.json".into()));
        }
        if self.consumers_written >= self.consumers_expected {
            return Err(misuse(format!(
                "state.json announced {} consumers",
                self.consumers_expected
            )));
        }
        if name.is_empty() || name.len() as u64 + CONSUMER_PREFIX.len() as u64 > MAX_NAME_LEN {
            return Err(misuse(format!("bad consumer name {name:?}")));
        }
        let clamped;
        let state = if needs_clamp(state, self.last_seq) {
            clamped = clamp_consumer(state, self.last_seq);
            &clamped
        } else {
            state
        };
        let json =
            serde_json::to_vec(&ConsumerEntryRef { config, state }).map_err(io::Error::other)?;
        let entry_name = format!("{CONSUMER_PREFIX}{name}");
        let ts = self.meta_ts;
        self.entry(entry_name.as_bytes(), ts, 0, &[], &json)?;
        self.consumers_written += 1;
        Ok(())
    }

    fn check_consumers_done(&self) -> io::Result<()> {
        if self.phase == Phase::Start {
            return Err(misuse("state.json not written".into()));
        }
        if self.consumers_written != self.consumers_expected {
            return Err(misuse(format!(
                "state.json announced {} consumers, {} written",
                self.consumers_expected, self.consumers_written
            )));
        }
        Ok(())
    }

    /// Writes one message; sequences must be non-zero and strictly increasing.
    pub fn message(
        &mut self,
        seq: u64,
        ts_ns: i64,
        subject: &[u8],
        header: &[u8],
        payload: &[u8],
    ) -> io::Result<()> {
        if self.phase != Phase::Messages {
            self.check_consumers_done()?;
            self.phase = Phase::Messages;
        }
        if seq == 0 || seq <= self.prev_seq {
            return Err(misuse(format!("message sequence {seq} out of order")));
        }
        if subject.is_empty() || subject.len() as u64 > MAX_NAME_LEN {
            return Err(misuse(format!("bad subject length {}", subject.len())));
        }
        self.entry(subject, ts_ns, seq, header, payload)?;
        self.prev_seq = seq;
        Ok(())
    }

    /// Writes the end sentinel, flushes everything and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.check_consumers_done()?;
        self.out.write_all(&[0, 0, 0, 0, 0])?;
        self.out.finish()
    }
}

fn needs_clamp(st: &ConsumerStateJson, last: u64) -> bool {
    st.delivered.stream_seq > last
        || st.ack_floor.stream_seq > last
        || st.pending.keys().next_back().is_some_and(|&k| k > last)
        || st.redelivered.keys().next_back().is_some_and(|&k| k > last)
}

fn clamp_consumer(st: &ConsumerStateJson, last: u64) -> ConsumerStateJson {
    let mut c = st.clone();
    c.delivered.stream_seq = c.delivered.stream_seq.min(last);
    c.ack_floor.stream_seq = c.ack_floor.stream_seq.min(last);
    c.pending.retain(|&k, _| k <= last);
    c.redelivered.retain(|&k, _| k <= last);
    c
}

/// Header fields of one decoded entry.
struct RawEntry {
    ts: i64,
    seq: u64,
    hsz: u64,
    psz: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DPhase {
    State,
    Consumers,
    Messages,
    Done,
}

/// Pull decoder of v2 entries from the decompressed stream (after the magic). It reads
/// through `BufRead` so that varints and bodies come straight from the decoded chunk;
/// only a field that straddles two chunks takes the byte-by-byte path.
pub(crate) struct V2Decoder<R: BufRead> {
    r: R,
    max_msg_size: u64,
    phase: DPhase,
    consumers_left: u64,
    prev_seq: u64,
    last_seq: u64,
    name: Vec<u8>,
    /// Incremental archives: messages must lie above this sequence.
    since: u64,
}

fn truncated(context: &'static str) -> ArchiveError {
    ArchiveError::UnexpectedEof { context }
}

impl<R: BufRead> V2Decoder<R> {
    pub(crate) fn new(r: R, max_msg_size: u64) -> Self {
        V2Decoder {
            r,
            max_msg_size,
            phase: DPhase::State,
            consumers_left: 0,
            prev_seq: 0,
            last_seq: 0,
            name: Vec::new(),
            since: 0,
        }
    }

    /// Incremental archives: reads the `natrium.json` header that follows the magic
    /// (before [`V2Decoder::next_entry`]).
    pub(crate) fn read_incremental_header(&mut self) -> Result<IncrementalHeader, ArchiveError> {
        let h: IncrementalHeader = self.read_named_meta(
            INC_ENTRY,
            "first entry of an incremental archive must be natrium.json",
        )?;
        h.validate()?;
        self.since = h.since;
        Ok(h)
    }

    pub(crate) fn get_ref(&self) -> &R {
        &self.r
    }

    /// Reads whatever follows the end sentinel; returns its length.
    pub(crate) fn drain_trailing(&mut self) -> Result<u64, ArchiveError> {
        std::io::copy(&mut self.r, &mut std::io::sink()).map_err(ArchiveError::from_io)
    }

    fn uvarint(&mut self, first: bool) -> Result<Option<u64>, ArchiveError> {
        let buf = self.r.fill_buf().map_err(ArchiveError::from_io)?;
        let mut c = SliceCursor::new(buf);
        if let Some(v) = c.uvarint() {
            let n = c.pos();
            self.r.consume(n);
            return Ok(Some(v));
        }
        // Split across chunks, at the end of the stream, or malformed: byte by byte.
        match read_uvarint(&mut self.r).map_err(ArchiveError::from_io)? {
            VarintRead::Value(v) => Ok(Some(v)),
            VarintRead::Eof if first => Ok(None),
            VarintRead::Eof | VarintRead::Truncated => Err(truncated("entry header")),
            VarintRead::Overflow => Err(ArchiveError::InvalidEntry {
                name: String::new(),
                reason: "varint overflows a 64-bit integer".into(),
            }),
        }
    }

    /// Reads an entry header and its name; `None` on a clean end of stream.
    fn read_raw(&mut self, payload_limit: u64) -> Result<Option<RawEntry>, ArchiveError> {
        let Some(name_len) = self.uvarint(true)? else {
            return Ok(None);
        };
        let zts = self.uvarint(false)?.unwrap_or(0);
        let ts = ((zts >> 1) as i64) ^ -((zts & 1) as i64);
        let seq = self.uvarint(false)?.unwrap_or(0);
        let hsz = self.uvarint(false)?.unwrap_or(0);
        let psz = self.uvarint(false)?.unwrap_or(0);
        if name_len > MAX_NAME_LEN {
            return Err(ArchiveError::TooLarge {
                what: "entry name",
                size: name_len,
                max: MAX_NAME_LEN,
            });
        }
        let total = hsz.saturating_add(psz);
        if total > payload_limit {
            return Err(ArchiveError::TooLarge {
                what: if seq == 0 {
                    "metadata entry"
                } else {
                    "message"
                },
                size: total,
                max: payload_limit,
            });
        }
        let mut name = std::mem::take(&mut self.name);
        let ok = read_exact_buf(&mut self.r, name_len, &mut name).map_err(ArchiveError::from_io)?;
        self.name = name;
        if !ok {
            return Err(truncated("entry name"));
        }
        Ok(Some(RawEntry { ts, seq, hsz, psz }))
    }

    fn read_body(&mut self, n: u64, out: &mut Vec<u8>) -> Result<(), ArchiveError> {
        if !read_exact_buf(&mut self.r, n, out).map_err(ArchiveError::from_io)? {
            return Err(truncated("entry payload"));
        }
        Ok(())
    }

    fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }

    /// Reads the metadata entry that must come next, named `entry` (sequence 0), as
    /// JSON; `misplaced` is the error reason when another entry comes instead.
    fn read_named_meta<T: serde::de::DeserializeOwned>(
        &mut self,
        entry: &str,
        misplaced: &str,
    ) -> Result<T, ArchiveError> {
        let raw = self.read_raw(MAX_META_SIZE)?.ok_or(ArchiveError::Eof)?;
        if self.name != entry.as_bytes() || raw.seq != 0 {
            return Err(ArchiveError::InvalidEntry {
                name: self.name_lossy(),
                reason: misplaced.into(),
            });
        }
        let body = self.read_meta_json(&raw)?;
        serde_json::from_slice(&body).map_err(|source| ArchiveError::Json {
            name: entry.into(),
            source,
        })
    }

    fn read_meta_json(&mut self, raw: &RawEntry) -> Result<Vec<u8>, ArchiveError> {
        let mut body = Vec::new();
        self.read_body(raw.hsz + raw.psz, &mut body)?;
        Ok(body)
    }

    pub(crate) fn next_entry(&mut self) -> Result<Option<Entry>, ArchiveError> {
        match self.phase {
            DPhase::Done => Ok(None),
            DPhase::State => {
                let state: StreamStateJson =
                    self.read_named_meta(STATE_ENTRY, "first entry must be state.json")?;
                validate_state(&state)?;
                if state.last_seq < self.since {
                    return Err(ArchiveError::InvalidEntry {
                        name: STATE_ENTRY.into(),
                        reason: format!(
                            "last sequence {} below the incremental base {}",
                            state.last_seq, self.since
                        ),
                    });
                }
                self.consumers_left = state.consumer_count as u64;
                self.prev_seq = state.first_seq.saturating_sub(1).max(self.since);
                self.last_seq = state.last_seq;
                self.phase = if self.consumers_left > 0 {
                    DPhase::Consumers
                } else {
                    DPhase::Messages
                };
                Ok(Some(Entry::State(state)))
            }
            DPhase::Consumers => {
                let raw = self.read_raw(MAX_META_SIZE)?.ok_or(ArchiveError::Eof)?;
                let name = self.name_lossy();
                let cname = match name.strip_prefix(CONSUMER_PREFIX) {
                    Some(c) if !c.is_empty() && raw.seq == 0 => c.to_string(),
                    _ => {
                        return Err(ArchiveError::InvalidEntry {
                            name,
                            reason: "expected a consumers/<name> entry".into(),
                        });
                    }
                };
                let body = self.read_meta_json(&raw)?;
                let mut doc: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_slice(&body).map_err(|source| ArchiveError::Json {
                        name: name.clone(),
                        source,
                    })?;
                let (Some(config), Some(state)) = (doc.remove("config"), doc.remove("state"))
                else {
                    return Err(ArchiveError::InvalidEntry {
                        name,
                        reason: "consumer entry needs config and state".into(),
                    });
                };
                if config.is_null() || state.is_null() {
                    return Err(ArchiveError::InvalidEntry {
                        name,
                        reason: "consumer entry needs config and state".into(),
                    });
                }
                let state: ConsumerStateJson =
                    serde_json::from_value(state).map_err(|source| ArchiveError::Json {
                        name: name.clone(),
                        source,
                    })?;
                self.consumers_left -= 1;
                if self.consumers_left == 0 {
                    self.phase = DPhase::Messages;
                }
                Ok(Some(Entry::Consumer {
                    name: cname,
                    config,
                    state,
                }))
            }
            DPhase::Messages => {
                let raw = self.read_raw(self.max_msg_size)?.ok_or(ArchiveError::Eof)?;
                if self.name.is_empty()
                    && raw.ts == 0
                    && raw.seq == 0
                    && raw.hsz == 0
                    && raw.psz == 0
                {
                    self.phase = DPhase::Done;
                    return Ok(Some(Entry::End {
                        last_seq: self.last_seq,
                    }));
                }
                if raw.seq == 0 || raw.seq <= self.prev_seq {
                    return Err(ArchiveError::SequenceOutOfOrder {
                        seq: raw.seq,
                        previous: self.prev_seq,
                    });
                }
                let mut header = Vec::new();
                self.read_body(raw.hsz, &mut header)?;
                let mut payload = Vec::new();
                self.read_body(raw.psz, &mut payload)?;
                self.prev_seq = raw.seq;
                Ok(Some(Entry::Message {
                    seq: raw.seq,
                    ts: raw.ts,
                    subject: std::mem::take(&mut self.name),
                    header,
                    payload,
                }))
            }
        }
    }
}

/// Reads exactly `n` bytes of `r` into `out` (cleared first); `false` when the stream
/// ends first. The buffer grows with the bytes actually read (beyond 64 KiB), so a
/// lying size costs no more memory than the data that is really there.
fn read_exact_buf<R: BufRead>(r: &mut R, n: u64, out: &mut Vec<u8>) -> io::Result<bool> {
    out.clear();
    if n <= 64 * 1024 {
        out.reserve(n as usize);
    }
    let mut left = n;
    while left > 0 {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(false);
        }
        let take = left.min(buf.len() as u64) as usize;
        out.extend_from_slice(&buf[..take]);
        r.consume(take);
        left -= take as u64;
    }
    Ok(true)
}

/// nats-server's sanity checks of `state.json` on restore (section 2.4 of the spec).
pub fn validate_state(st: &StreamStateJson) -> Result<(), ArchiveError> {
    if st.consumer_count < 0 {
        return Err(ArchiveError::InvalidStreamState {
            reason: "negative consumer count",
        });
    }
    let inconsistent = ArchiveError::InvalidStreamState {
        reason: "inconsistent message count or sequence range",
    };
    if st.first_seq > st.last_seq.saturating_add(1) {
        return Err(inconsistent);
    }
    if st.messages > 0 {
        if st.first_seq == 0 || st.first_seq > st.last_seq {
            return Err(inconsistent);
        }
        if st.messages > st.last_seq - st.first_seq + 1 {
            return Err(ArchiveError::InvalidStreamState {
                reason: "message count exceeds sequence range",
            });
        }
    }
    Ok(())
}
