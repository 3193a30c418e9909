//! Writing legacy v1 archives (backup-spec §4.3): the tar of filestore files that
//! nats-server 2.10 to 2.14 restore, so that a natrium backup (v2, `NATSARC1`) can be
//! restored into a server that reads only v1.
//!
//! Why a converter and not a second snapshot format in the server: the server writes one
//! format (v2, what 2.15 writes and reads); a client restoring into an older server is
//! the one that knows it needs v1, and converts the archive as it uploads it
//! ([`convert_to_v1`]), streaming, with memory bounded by one message block.
//!
//! What is written, in order: `meta.inf` (`{"Created":…, <StreamConfig>}`) and its
//! `meta.sum`, the messages as plain filestore records in `msgs/<i>.blk` (blocks of about
//! [`BLOCK_SIZE`]; each record checksummed with the block's key), then per consumer
//! `obs/<name>/meta.inf`, `meta.sum` and `o.dat`. No `index.db`: a restoring server
//! rebuilds the state from the blocks, where a missing sequence between two records is a
//! deleted one. Sequences deleted after the last message (or a stream with none) are
//! kept by a skip record at the last sequence, as nats-server's own blocks keep them.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use super::error::ArchiveError;
use super::filestore_blk::{EBIT, HashKey, MSG_HDR_SIZE};
use super::reader::{ArchiveFormat, ArchiveReader, Entry, ReaderOptions};
use super::s2_frame::S2FrameWriter;
use super::state_json::{ConsumerStateJson, format_go_time};
use super::varint::{put_uvarint, put_varint};

/// Records go into a new block once the current one holds this much (nats-server's
/// default block size for streams without limits is 8 MiB).
pub const BLOCK_SIZE: usize = 8 * 1024 * 1024;

/// Largest record nats-server takes when it rebuilds a block (`rlBadThresh`): a longer
/// one is read as corruption and the block is cut there.
pub const MAX_RECORD: usize = 32 * 1024 * 1024;

/// `o.dat` magic and version.
const ODAT_MAGIC: u8 = 22;
const ODAT_VERSION: u8 = 2;

/// Writes a v1 archive (uncompressed tar) into `W`.
pub struct V1Writer<W: Write> {
    /// The tar being written.
    tar: tar::Builder<W>,
    /// Stream name: the block hash keys derive from it.
    stream: String,
    /// Modification time of every member, Unix seconds.
    mtime: u64,
    /// Records of the block being filled.
    block: Vec<u8>,
    /// Index of that block (from 1).
    index: u64,
    /// Its hash key.
    key: HashKey,
    /// Block size at which a new block starts.
    block_size: usize,
    /// Highest sequence written into a record.
    last_written: u64,
}

impl<W: Write> V1Writer<W> {
    /// Starts the archive of stream `stream`: writes `meta.inf` from `config` (a
    /// StreamConfig JSON object) and `created` (Unix ns), and `meta.sum`.
    pub fn new(
        w: W,
        stream: &str,
        config: &serde_json::Value,
        created: i64,
        mtime: u64,
    ) -> io::Result<Self> {
        let mut v = V1Writer {
            tar: tar::Builder::new(w),
            stream: stream.to_string(),
            mtime,
            block: Vec::new(),
            index: 1,
            key: HashKey::for_block(stream, 1),
            block_size: BLOCK_SIZE,
            last_written: 0,
        };
        let meta = with_created(config, created, None)?;
        v.member("meta.inf", &meta)?;
        let sum = HashKey::of_text(stream).sum_hex(&meta);
        v.member("meta.sum", sum.as_bytes())?;
        Ok(v)
    }

    /// Blocks of `size` bytes instead of [`BLOCK_SIZE`] (tests use small ones).
    pub fn with_block_size(mut self, size: usize) -> Self {
        self.block_size = size.max(1);
        self
    }

    fn member(&mut self, path: &str, data: &[u8]) -> io::Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o600);
        h.set_mtime(self.mtime);
        h.set_uid(0);
        h.set_gid(0);
        h.set_username("nats")?;
        h.set_groupname("nats")?;
        h.set_entry_type(tar::EntryType::Regular);
        self.tar.append_data(&mut h, path, data)
    }

    /// Appends one record to the current block.
    fn record(
        &mut self,
        seq: u64,
        ts: i64,
        subject: &[u8],
        hdrs: &[u8],
        payload: &[u8],
    ) -> io::Result<()> {
        let slen = u16::try_from(subject.len()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "subject longer than 65535 bytes",
            )
        })?;
        let hlen = u32::try_from(hdrs.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "header block too large"))?;
        let with_hdrs = !hdrs.is_empty();
        let rl = MSG_HDR_SIZE
            + subject.len()
            + if with_hdrs { 4 + hdrs.len() } else { 0 }
            + payload.len()
            + 8;
        if rl > MAX_RECORD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "message {seq} of {rl} bytes is over the 32 MiB nats-server 2.14 takes in a block"
                ),
            ));
        }
        let rl32 = rl as u32;
        let start = self.block.len();
        self.block
            .extend_from_slice(&(rl32 | if with_hdrs { 1 << 31 } else { 0 }).to_le_bytes());
        self.block.extend_from_slice(&seq.to_le_bytes());
        self.block.extend_from_slice(&ts.to_le_bytes());
        self.block.extend_from_slice(&slen.to_le_bytes());
        self.block.extend_from_slice(subject);
        if with_hdrs {
            self.block.extend_from_slice(&hlen.to_le_bytes());
            self.block.extend_from_slice(hdrs);
        }
        self.block.extend_from_slice(payload);
        // The checksum covers seq ‖ ts ‖ subject ‖ header ‖ body (not rl, slen, hlen).
        let mut h = self.key.hasher();
        highway::HighwayHash::append(&mut h, &self.block[start + 4..start + 20]);
        highway::HighwayHash::append(&mut h, subject);
        highway::HighwayHash::append(&mut h, hdrs);
        highway::HighwayHash::append(&mut h, payload);
        let sum = highway::HighwayHash::finalize64(h).to_le_bytes();
        self.block.extend_from_slice(&sum);
        Ok(())
    }

    /// Writes the current block as `msgs/<index>.blk` and starts the next one.
    fn flush_block(&mut self) -> io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let block = std::mem::take(&mut self.block);
        self.member(&format!("msgs/{}.blk", self.index), &block)?;
        self.block = block;
        self.block.clear();
        self.index += 1;
        self.key = HashKey::for_block(&self.stream, self.index);
        Ok(())
    }

    /// Appends a message; sequences must ascend.
    pub fn message(
        &mut self,
        seq: u64,
        ts: i64,
        subject: &[u8],
        hdrs: &[u8],
        payload: &[u8],
    ) -> io::Result<()> {
        if seq == 0 || seq <= self.last_written || seq & (EBIT | super::filestore_blk::TBIT) != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "message sequence {seq} out of order (after {})",
                    self.last_written
                ),
            ));
        }
        if self.block.len() >= self.block_size {
            self.flush_block()?;
        }
        self.record(seq, ts, subject, hdrs, payload)?;
        self.last_written = seq;
        Ok(())
    }

    /// Ends the messages at `last_seq` (a skip record, stamped `last_ts`, keeps the
    /// sequences deleted after the last message), writes the consumers (`created`: Unix
    /// ns for their `meta.inf`) and the end of the tar; returns the writer.
    pub fn finish(
        mut self,
        last_seq: u64,
        last_ts: i64,
        consumers: &[(String, serde_json::Value, ConsumerStateJson)],
        created: i64,
    ) -> io::Result<W> {
        for (name, _, _) in consumers {
            if !valid_consumer_name(name) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("consumer name {name:?} cannot be a filestore directory"),
                ));
            }
        }
        if last_seq > self.last_written {
            self.record(last_seq | EBIT, last_ts, b"", b"", b"")?;
        }
        self.flush_block()?;
        for (name, config, state) in consumers {
            let dir = format!("obs/{name}");
            let meta = with_created(config, created, Some(name))?;
            self.member(&format!("{dir}/meta.inf"), &meta)?;
            let sum = HashKey::of_text(&format!("{}/{name}", self.stream)).sum_hex(&meta);
            self.member(&format!("{dir}/meta.sum"), sum.as_bytes())?;
            self.member(&format!("{dir}/o.dat"), &encode_odat(state))?;
        }
        self.tar.into_inner()
    }
}

/// A name nats-server takes for a consumer directory: not empty, no `.`, `*`, `>`,
/// path separators, whitespace or control characters.
fn valid_consumer_name(name: &str) -> bool {
    !name.is_empty()
        && !name.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '.' | '*' | '>' | '/' | '\\')
        })
}

/// `{"Created": <time>, ["Name": <name>,] <config fields>}`: a filestore `meta.inf`
/// (Go's `FileStreamInfo` / `FileConsumerInfo`, the config embedded).
fn with_created(
    config: &serde_json::Value,
    created: i64,
    name: Option<&str>,
) -> io::Result<Vec<u8>> {
    let serde_json::Value::Object(fields) = config else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "configuration is not a JSON object",
        ));
    };
    let mut out = serde_json::Map::new();
    out.insert(
        "Created".into(),
        serde_json::Value::String(format_go_time(created)),
    );
    if let Some(n) = name {
        out.insert("Name".into(), serde_json::Value::String(n.to_string()));
    }
    for (k, v) in fields {
        out.insert(k.clone(), v.clone());
    }
    serde_json::to_vec(&serde_json::Value::Object(out)).map_err(io::Error::other)
}

/// A consumer's state as filestore's `o.dat`, version 2 (backup-spec §4.7).
pub fn encode_odat(st: &ConsumerStateJson) -> Vec<u8> {
    let mut out = vec![ODAT_MAGIC, ODAT_VERSION];
    put_uvarint(&mut out, st.ack_floor.consumer_seq);
    put_uvarint(&mut out, st.ack_floor.stream_seq);
    put_uvarint(&mut out, st.delivered.consumer_seq);
    put_uvarint(&mut out, st.delivered.stream_seq);
    put_uvarint(&mut out, st.pending.len() as u64);
    if !st.pending.is_empty() {
        // Times in whole seconds, each stored as (base - ts).
        let secs = |ns: i64| ns.div_euclid(1_000_000_000);
        let base = st
            .pending
            .values()
            .map(|p| secs(p.timestamp))
            .max()
            .unwrap_or(0);
        put_varint(&mut out, base);
        for (sseq, p) in &st.pending {
            put_uvarint(&mut out, sseq.wrapping_sub(st.ack_floor.stream_seq));
            put_uvarint(&mut out, p.sequence.wrapping_sub(st.ack_floor.consumer_seq));
            put_varint(&mut out, base - secs(p.timestamp));
        }
    }
    put_uvarint(&mut out, st.redelivered.len() as u64);
    for (sseq, n) in &st.redelivered {
        put_uvarint(&mut out, sseq.wrapping_sub(st.ack_floor.stream_seq));
        put_uvarint(&mut out, *n);
    }
    out
}

/// What [`convert_to_v1`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Converted {
    /// Messages.
    pub messages: u64,
    /// Consumers.
    pub consumers: u64,
    /// Last sequence.
    pub last_seq: u64,
}

/// Reads a v2 archive (`stream.tar.s2` bytes) from `input` and writes the same stream as
/// an S2-framed v1 archive into `out`, named `stream` with `config` (the backup's
/// StreamConfig) and created at `created` (Unix ns). Streaming: memory is bounded by one
/// block and the consumers. A v1 or incremental input is refused.
pub fn convert_to_v1<R: Read, W: Write>(
    input: R,
    out: W,
    stream: &str,
    config: &serde_json::Value,
    created: i64,
    opts: &ReaderOptions,
) -> Result<(W, Converted), ArchiveError> {
    let mut r = ArchiveReader::new(input, opts.clone())?;
    if r.format() != ArchiveFormat::V2 || r.incremental().is_some() {
        return Err(ArchiveError::NotConvertible {
            reason: "only a full v2 archive (NATSARC1) is converted",
        });
    }
    let mtime = u64::try_from(created.div_euclid(1_000_000_000)).unwrap_or(0);
    let framed = S2FrameWriter::new(out);
    let mut w = V1Writer::new(framed, stream, config, created, mtime)?;
    let mut consumers: BTreeMap<String, (serde_json::Value, ConsumerStateJson)> = BTreeMap::new();
    let mut done = Converted::default();
    let mut last_ts = 0;
    while let Some(e) = r.next_entry()? {
        match e {
            Entry::StreamMeta { .. } => {}
            Entry::State(st) => last_ts = st.last_ts,
            Entry::Consumer {
                name,
                config,
                state,
            } => {
                consumers.insert(name, (config, state));
            }
            Entry::Message {
                seq,
                ts,
                subject,
                header,
                payload,
            } => {
                w.message(seq, ts, &subject, &header, &payload)?;
                done.messages += 1;
            }
            Entry::End { last_seq } => {
                done.last_seq = last_seq;
                done.consumers = consumers.len() as u64;
                let list: Vec<(String, serde_json::Value, ConsumerStateJson)> =
                    consumers.into_iter().map(|(n, (c, s))| (n, c, s)).collect();
                let framed = w.finish(last_seq, last_ts, &list, created)?;
                return Ok((framed.finish()?, done));
            }
        }
    }
    Err(ArchiveError::NotConvertible {
        reason: "the archive ended without its end marker",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::consumer_odat::decode_odat;
    use crate::archive::state_json::{PendingJson, SequencePairJson, StreamStateJson};
    use crate::archive::v2::ArchiveWriter;
    use serde_json::json;

    const NS: i64 = 1_795_875_321_000_000_000;

    fn consumer_state() -> ConsumerStateJson {
        let mut st = ConsumerStateJson {
            delivered: SequencePairJson {
                consumer_seq: 5,
                stream_seq: 9,
            },
            ack_floor: SequencePairJson {
                consumer_seq: 2,
                stream_seq: 4,
            },
            ..Default::default()
        };
        st.pending.insert(
            7,
            PendingJson {
                sequence: 4,
                timestamp: NS + 3_000_000_000,
            },
        );
        st.pending.insert(
            9,
            PendingJson {
                sequence: 5,
                timestamp: NS,
            },
        );
        st.redelivered.insert(7, 2);
        st
    }

    /// (seq, ts, subject, header, body) of the messages the tests write.
    fn messages() -> Vec<(u64, i64, &'static str, &'static str, String)> {
        vec![
            (3, NS + 1, "o.a", "NATS/1.0\r\nX: 1\r\n\r\n", "first".into()),
            (4, NS + 2, "o.b", "", "x".repeat(100)),
            (7, NS + 3, "o.a", "", "after a gap".into()),
            (9, NS + 4, "o.c", "", "y".repeat(300)),
        ]
    }

    fn read_all(archive: &[u8]) -> Vec<Entry> {
        let mut r = ArchiveReader::new(
            archive,
            ReaderOptions {
                strict: true,
                ..Default::default()
            },
        )
        .expect("reader");
        assert_eq!(r.format(), ArchiveFormat::V1);
        let mut out = Vec::new();
        while let Some(e) = r.next_entry().expect("entry") {
            out.push(e);
        }
        out
    }

    /// (seq, ts, subject, header, body) as read back.
    type Msg = (u64, i64, Vec<u8>, Vec<u8>, Vec<u8>);

    fn message_entries(entries: &[Entry]) -> Vec<Msg> {
        entries
            .iter()
            .filter_map(|e| match e {
                Entry::Message {
                    seq,
                    ts,
                    subject,
                    header,
                    payload,
                } => Some((*seq, *ts, subject.clone(), header.clone(), payload.clone())),
                _ => None,
            })
            .collect()
    }

    fn expected_messages() -> Vec<Msg> {
        messages()
            .into_iter()
            .map(|(s, t, subj, h, b)| (s, t, subj.into(), h.into(), b.into_bytes()))
            .collect()
    }

    #[test]
    fn a_converted_archive_reads_back_as_the_same_stream() {
        let mut w = ArchiveWriter::new(Vec::new());
        w.state(&StreamStateJson {
            messages: 4,
            bytes: 500,
            first_seq: 3,
            first_ts: NS + 1,
            last_seq: 12,
            last_ts: NS + 4,
            num_subjects: 3,
            num_deleted: 5,
            consumer_count: 1,
        })
        .expect("state");
        let ccfg = json!({"durable_name": "C1", "ack_policy": "explicit", "deliver_policy": "all"});
        w.consumer("C1", &ccfg, &consumer_state())
            .expect("consumer");
        for (seq, ts, subj, h, b) in messages() {
            w.message(seq, ts, subj.as_bytes(), h.as_bytes(), b.as_bytes())
                .expect("message");
        }
        let v2 = w.finish().expect("finish");
        let cfg = json!({"name": "ORDERS", "subjects": ["o.>"], "storage": "file", "retention": "limits"});
        let (v1, done) = convert_to_v1(
            &v2[..],
            Vec::new(),
            "ORDERS",
            &cfg,
            NS,
            &ReaderOptions::default(),
        )
        .expect("convert");
        assert_eq!(
            done,
            Converted {
                messages: 4,
                consumers: 1,
                last_seq: 12
            }
        );

        let entries = read_all(&v1);
        let Some(Entry::StreamMeta { config, created }) = entries.first() else {
            panic!("no meta.inf first: {entries:?}");
        };
        assert_eq!(config["name"], "ORDERS");
        assert_eq!(config["subjects"], json!(["o.>"]));
        assert_eq!(created.as_deref(), Some(format_go_time(NS).as_str()));
        let state = entries.iter().find_map(|e| match e {
            Entry::State(s) => Some(s.clone()),
            _ => None,
        });
        let state = state.expect("state");
        assert_eq!(
            (state.messages, state.first_seq, state.last_seq),
            (4, 3, 12)
        );
        assert_eq!(message_entries(&entries), expected_messages());
        let consumer = entries.iter().find_map(|e| match e {
            Entry::Consumer {
                name,
                config,
                state,
            } => Some((name.clone(), config.clone(), state.clone())),
            _ => None,
        });
        let (name, config, state) = consumer.expect("consumer");
        assert_eq!(name, "C1");
        assert_eq!(config["ack_policy"], "explicit");
        assert_eq!(state, consumer_state());
        assert!(
            matches!(entries.last(), Some(Entry::End { last_seq: 12 })),
            "{entries:?}"
        );

        // A v1 archive is not converted again.
        let err = convert_to_v1(
            &v1[..],
            Vec::new(),
            "ORDERS",
            &cfg,
            NS,
            &ReaderOptions::default(),
        );
        assert!(matches!(err, Err(ArchiveError::NotConvertible { .. })));
    }

    #[test]
    fn blocks_roll_and_sequences_keep_their_gaps() {
        let cfg = json!({"name": "S"});
        let framed = S2FrameWriter::new(Vec::new());
        let mut w = V1Writer::new(framed, "S", &cfg, NS, 1)
            .expect("new")
            .with_block_size(120);
        for (seq, ts, subj, h, b) in messages() {
            w.message(seq, ts, subj.as_bytes(), h.as_bytes(), b.as_bytes())
                .expect("message");
        }
        assert!(
            w.message(9, NS, b"o.x", b"", b"").is_err(),
            "a repeated sequence is refused"
        );
        let v1 = w
            .finish(20, NS + 9, &[], NS)
            .expect("finish")
            .finish()
            .expect("frame");
        let entries = read_all(&v1);
        assert_eq!(message_entries(&entries), expected_messages());
        assert!(
            matches!(entries.last(), Some(Entry::End { last_seq: 20 })),
            "{entries:?}"
        );
    }

    #[test]
    fn what_nats_server_2_14_cannot_take_is_refused() {
        let cfg = json!({"name": "S"});
        let mut w = V1Writer::new(Vec::new(), "S", &cfg, NS, 1).expect("new");
        let big = vec![b'x'; MAX_RECORD];
        assert!(
            w.message(1, NS, b"s", b"", &big).is_err(),
            "a record over 32 MiB"
        );
        w.message(1, NS, b"s", b"", b"ok").expect("small");
        for bad in ["", "a/b", "..", "a.b", "a b"] {
            let w = V1Writer::new(Vec::new(), "S", &cfg, NS, 1).expect("new");
            let c = vec![(bad.to_string(), json!({}), ConsumerStateJson::default())];
            assert!(w.finish(0, 0, &c, NS).is_err(), "consumer {bad:?}");
        }
    }

    #[test]
    fn odat_decodes_to_the_state_it_encodes() {
        let st = consumer_state();
        assert_eq!(decode_odat(&encode_odat(&st)).expect("decode"), st);
        let fresh = ConsumerStateJson::default();
        assert_eq!(encode_odat(&fresh), [22, 2, 0, 0, 0, 0, 0, 0]);
    }
}
