//! Import of legacy (v1, nats-server ≤ 2.14) snapshots: a tar of the filestore's own
//! files, turned into the same [`Entry`] stream as a v2 archive.
//!
//! Why it spools: a block's messages are deleted by tombstones that come later (in the
//! last block) and by `index.db`, which comes after all blocks. So the tar is first
//! extracted into a private directory under the caller's staging directory (blocks on
//! disk, small metadata in memory), then blocks are verified record by record (pass 1:
//! checksums, tombstones, erased records, ordering), counted (pass 2, for `state`) and
//! finally streamed out (pass 3). Memory use: one record, the consumer metadata, and the
//! deleted sequences as runs.
//!
//! Damage policy: like nats-server, a record with a bad checksum or impossible length
//! truncates its block there (the rest of the block is lost, the import continues; see
//! [`V1Report::lost_bytes`]). With `strict`, the same damage is an error instead, which is
//! what `backup verify` uses.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde_json::Value;

use super::consumer_odat::decode_odat;
use super::error::ArchiveError;
use super::filestore_blk::{
    HashKey, MSG_HDR_SIZE, ReadRecord, RecordKind, parse_record, read_record,
};
use super::index_db::decode_index_db;
use super::reader::{Entry, ReaderOptions};
use super::seqset::RangeSet;
use super::state_json::StreamStateJson;
use super::tar_reader::{TarReader, safe_components};
use super::v2::MAX_META_SIZE;

/// A place where a block was found damaged.
#[derive(Debug, Clone, Serialize)]
pub struct CorruptSpot {
    /// Block index.
    pub block: u64,
    /// Offset of the bad record in the block.
    pub offset: u64,
    /// Bytes lost from there to the end of the block.
    pub lost_bytes: u64,
    /// Why.
    pub reason: &'static str,
}

/// How `index.db` was used.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum IndexDbUse {
    /// Not in the archive.
    Absent,
    /// Valid and used for delete maps and first sequences.
    Used {
        /// Its version.
        version: u8,
    },
    /// Present but discarded (as nats-server would), with the reason.
    Ignored {
        /// Why.
        reason: String,
    },
}

/// What the v1 import found, for logs and `backup verify`.
#[derive(Debug, Clone, Serialize)]
pub struct V1Report {
    /// Stream name from meta.inf.
    pub stream: String,
    /// Blocks in the archive.
    pub blocks: u64,
    /// Records read (all kinds).
    pub records: u64,
    /// Tombstone records.
    pub tombstones: u64,
    /// Erased / skip records.
    pub erased: u64,
    /// Message records ignored because their sequence was not increasing.
    pub out_of_order: u64,
    /// Bytes of blocks lost to damage.
    pub lost_bytes: u64,
    /// Where damage was found.
    pub corrupt: Vec<CorruptSpot>,
    /// index.db use.
    pub index_db: IndexDbUse,
    /// Whether meta.sum matched meta.inf (`None` if absent).
    pub meta_sum_ok: Option<bool>,
    /// Other observations.
    pub warnings: Vec<String>,
}

#[derive(Default)]
struct ConsumerFiles {
    meta: Option<Vec<u8>>,
    sum: Option<Vec<u8>>,
    odat: Option<Vec<u8>>,
}

struct StagedBlock {
    index: u64,
    path: PathBuf,
    valid_len: u64,
    last_checksum: Option<[u8; 8]>,
}

/// A private directory removed on drop.
struct StagingDir(PathBuf);

impl StagingDir {
    fn create(base: Option<&Path>) -> std::io::Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let base = base
            .map(Path::to_path_buf)
            .unwrap_or_else(std::env::temp_dir);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = base.join(format!(
            "natrium-v1-import-{}-{}-{}",
            std::process::id(),
            nanos,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(StagingDir(dir))
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Decides which records are in sequence order; the same rule in every pass.
#[derive(Default, Clone, Copy)]
struct SeqOrder {
    prev: u64,
}

impl SeqOrder {
    /// `true` if a message record with `seq` is in order (and advances).
    fn accept(&mut self, kind: RecordKind, seq: u64) -> bool {
        match kind {
            RecordKind::Tombstone => false,
            RecordKind::Erased => {
                self.prev = self.prev.max(seq);
                false
            }
            RecordKind::Message => {
                if seq <= self.prev {
                    false
                } else {
                    self.prev = seq;
                    true
                }
            }
        }
    }
}

/// Which message records are live.
struct LiveFilter {
    deleted: RangeSet,
    min_seq: u64,
    block_first: HashMap<u64, u64>,
}

struct LiveMsg {
    seq: u64,
    ts: i64,
    len: u64,
}

/// Iterates live messages across the staged blocks.
struct MsgIter {
    blocks: Vec<(u64, PathBuf, u64)>,
    next_block: usize,
    cur: Option<(u64, BufReader<std::io::Take<File>>)>,
    order: SeqOrder,
    buf: Vec<u8>,
    max_record: u64,
}

impl MsgIter {
    fn new(blocks: &[StagedBlock], max_record: u64) -> Self {
        MsgIter {
            blocks: blocks
                .iter()
                .map(|b| (b.index, b.path.clone(), b.valid_len))
                .collect(),
            next_block: 0,
            cur: None,
            order: SeqOrder::default(),
            buf: Vec::new(),
            max_record,
        }
    }

    /// Advances to the next live message; its bytes are in `self.buf`.
    fn next_live(&mut self, f: &LiveFilter) -> Result<Option<LiveMsg>, ArchiveError> {
        loop {
            if self.cur.is_none() {
                let Some((index, path, len)) = self.blocks.get(self.next_block).cloned() else {
                    return Ok(None);
                };
                self.next_block += 1;
                let file = File::open(&path)?;
                self.cur = Some((index, BufReader::new(file.take(len))));
            }
            let Some((index, reader)) = self.cur.as_mut() else {
                continue;
            };
            let index = *index;
            match read_record(reader, &mut self.buf, self.max_record)? {
                ReadRecord::Record => {}
                ReadRecord::End | ReadRecord::Bad(_) => {
                    self.cur = None;
                    continue;
                }
            }
            let Ok(rec) = parse_record(&self.buf, None) else {
                self.cur = None;
                continue;
            };
            if !self.order.accept(rec.kind, rec.seq) {
                continue;
            }
            if f.deleted.contains(rec.seq)
                || rec.seq < f.min_seq
                || f.block_first.get(&index).is_some_and(|&fs| rec.seq < fs)
            {
                continue;
            }
            return Ok(Some(LiveMsg {
                seq: rec.seq,
                ts: rec.ts,
                len: rec.len as u64,
            }));
        }
    }
}

/// Reader of a v1 archive; see the module docs.
pub(crate) struct V1Reader {
    _staging: StagingDir,
    queue: VecDeque<Entry>,
    iter: MsgIter,
    filter: LiveFilter,
    last_seq: u64,
    report: V1Report,
    done: bool,
}

fn json_object(bytes: &[u8], name: &str) -> Result<serde_json::Map<String, Value>, ArchiveError> {
    serde_json::from_slice(bytes).map_err(|source| ArchiveError::Json {
        name: name.to_string(),
        source,
    })
}

fn sum_matches(sum_file: &[u8], expected_hex: &str) -> bool {
    String::from_utf8_lossy(sum_file).trim() == expected_hex
}

impl V1Reader {
    /// Extracts and pre-scans the tar stream `r`.
    pub(crate) fn open<R: Read>(r: R, opts: &ReaderOptions) -> Result<Self, ArchiveError> {
        let staging = StagingDir::create(opts.staging_dir.as_deref())?;
        let mut tar = TarReader::new(r);
        let mut meta_inf: Option<Vec<u8>> = None;
        let mut meta_sum: Option<Vec<u8>> = None;
        let mut index_db: Option<Vec<u8>> = None;
        let mut errors_txt: Option<Vec<u8>> = None;
        let mut block_files: BTreeMap<u64, PathBuf> = BTreeMap::new();
        let mut consumers: BTreeMap<String, ConsumerFiles> = BTreeMap::new();
        let mut warnings = Vec::new();

        while let Some(h) = tar.next_header()? {
            if !h.is_regular() {
                return Err(ArchiveError::UnexpectedContent {
                    path: h.path.clone(),
                    typeflag: h.typeflag,
                });
            }
            let parts = safe_components(&h.path)?;
            match parts.as_slice() {
                ["meta.inf"] => meta_inf = Some(tar.read_data(MAX_META_SIZE, "meta.inf")?),
                ["meta.sum"] => meta_sum = Some(tar.read_data(4096, "meta.sum")?),
                ["errors.txt"] => errors_txt = Some(tar.read_data(1 << 20, "errors.txt")?),
                ["msgs", "index.db"] => index_db = Some(tar.read_data(MAX_META_SIZE, "index.db")?),
                ["msgs", f] if f.ends_with(".blk") => {
                    let Ok(index) = f.trim_end_matches(".blk").parse::<u64>() else {
                        warnings.push(format!("ignored unexpected file {}", h.path));
                        continue;
                    };
                    let path = staging.0.join(format!("{index}.blk"));
                    let mut out = std::io::BufWriter::new(File::create(&path)?);
                    tar.copy_data(&mut out)?;
                    out.into_inner().map_err(|e| e.into_error())?;
                    if block_files.insert(index, path).is_some() {
                        warnings.push(format!("duplicate block msgs/{index}.blk, last one kept"));
                    }
                }
                ["obs", c, file] => {
                    let entry = consumers.entry((*c).to_string()).or_default();
                    match *file {
                        "meta.inf" => {
                            entry.meta = Some(tar.read_data(MAX_META_SIZE, "consumer meta.inf")?)
                        }
                        "meta.sum" => entry.sum = Some(tar.read_data(4096, "consumer meta.sum")?),
                        "o.dat" => entry.odat = Some(tar.read_data(MAX_META_SIZE, "o.dat")?),
                        _ => {}
                    }
                }
                // Legacy per-block .idx/.fss, thw.db, scheduling state: not needed.
                _ => {}
            }
        }

        if let Some(text) = errors_txt {
            let text = String::from_utf8_lossy(&text[..text.len().min(4096)]).into_owned();
            if opts.strict {
                return Err(ArchiveError::ProducerError { text });
            }
            warnings.push(format!("archive contains errors.txt: {text}"));
        }

        // Stream metadata.
        let meta_bytes = meta_inf.ok_or_else(|| ArchiveError::MissingFile {
            file: "meta.inf".into(),
        })?;
        let mut config = json_object(&meta_bytes, "meta.inf")?;
        let created = match config.remove("Created") {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        let stream = match config.get("name") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => {
                return Err(ArchiveError::CorruptFile {
                    file: "meta.inf".into(),
                    reason: "missing stream name".into(),
                });
            }
        };
        if let Some(expected) = &opts.expected_stream
            && *expected != stream
        {
            return Err(ArchiveError::StreamNameMismatch {
                expected: expected.clone(),
                found: stream,
            });
        }
        let meta_sum_ok = meta_sum
            .as_ref()
            .map(|s| sum_matches(s, &HashKey::of_text(&stream).sum_hex(&meta_bytes)));
        if meta_sum_ok == Some(false) {
            if opts.strict {
                return Err(ArchiveError::CorruptFile {
                    file: "meta.sum".into(),
                    reason: "does not match meta.inf".into(),
                });
            }
            warnings.push("meta.sum does not match meta.inf (ignored, as nats-server does)".into());
        }

        let mut report = V1Report {
            stream: stream.clone(),
            blocks: block_files.len() as u64,
            records: 0,
            tombstones: 0,
            erased: 0,
            out_of_order: 0,
            lost_bytes: 0,
            corrupt: Vec::new(),
            index_db: IndexDbUse::Absent,
            meta_sum_ok,
            warnings,
        };

        // Pass 1: verify every record, collect deletes.
        let max_record = opts
            .max_msg_size
            .saturating_add((MSG_HDR_SIZE + 65_535 + 4 + 8) as u64);
        let mut deleted = RangeSet::new();
        let mut order = SeqOrder::default();
        let mut last_seq = 0u64;
        let mut blocks = Vec::new();
        let mut buf = Vec::new();
        for (&index, path) in &block_files {
            let key = HashKey::for_block(&stream, index);
            let mut file = File::open(path)?;
            let file_len = file.seek(SeekFrom::End(0))?;
            file.seek(SeekFrom::Start(0))?;
            let mut rd = BufReader::new(file);
            let mut offset = 0u64;
            let mut last_checksum = None;
            let mut damage: Option<(&'static str, Option<u64>)> = None;
            loop {
                match read_record(&mut rd, &mut buf, max_record)? {
                    ReadRecord::End => break,
                    ReadRecord::Bad(e) => {
                        damage = Some((e.reason(), None));
                        break;
                    }
                    ReadRecord::Record => {}
                }
                let rec = match parse_record(&buf, Some(&key)) {
                    Ok(rec) => rec,
                    Err(e) => {
                        let seq = (buf.len() >= 12).then(|| {
                            let mut b = [0u8; 8];
                            b.copy_from_slice(&buf[4..12]);
                            u64::from_le_bytes(b)
                                & !(super::filestore_blk::EBIT | super::filestore_blk::TBIT)
                        });
                        damage = Some((e.reason(), seq));
                        break;
                    }
                };
                report.records += 1;
                match rec.kind {
                    RecordKind::Tombstone => {
                        report.tombstones += 1;
                        deleted.insert(rec.seq);
                    }
                    RecordKind::Erased => {
                        report.erased += 1;
                        if rec.seq > 0 {
                            deleted.insert(rec.seq);
                            last_seq = last_seq.max(rec.seq);
                        }
                    }
                    RecordKind::Message => last_seq = last_seq.max(rec.seq),
                }
                if rec.kind == RecordKind::Message && !order.clone().accept(rec.kind, rec.seq) {
                    report.out_of_order += 1;
                    if opts.strict {
                        return Err(ArchiveError::CorruptRecord {
                            block: index,
                            offset,
                            seq: Some(rec.seq),
                            reason: "sequence not increasing",
                        });
                    }
                }
                order.accept(rec.kind, rec.seq);
                last_checksum = Some(rec.checksum);
                offset += rec.len as u64;
            }
            if let Some((reason, seq)) = damage {
                if opts.strict {
                    return Err(ArchiveError::CorruptRecord {
                        block: index,
                        offset,
                        seq,
                        reason,
                    });
                }
                let lost = file_len - offset;
                report.lost_bytes += lost;
                report.corrupt.push(CorruptSpot {
                    block: index,
                    offset,
                    lost_bytes: lost,
                    reason,
                });
            }
            blocks.push(StagedBlock {
                index,
                path: path.clone(),
                valid_len: offset,
                last_checksum,
            });
        }

        // index.db: used only if valid and consistent with the blocks we have.
        let mut filter = LiveFilter {
            deleted,
            min_seq: 0,
            block_first: HashMap::new(),
        };
        let mut idx_last_ts = None;
        if let Some(bytes) = index_db {
            match decode_index_db(&bytes, &stream) {
                Err(reason) => report.index_db = IndexDbUse::Ignored { reason },
                Ok(idx) => {
                    let lb = blocks.iter().find(|b| b.index == idx.last_block);
                    let consistent = match lb {
                        None => Err("last block missing".to_string()),
                        Some(b) if b.last_checksum != Some(idx.last_checksum) => {
                            Err("last block checksum differs".to_string())
                        }
                        Some(_) => Ok(()),
                    };
                    match consistent {
                        Err(reason) => report.index_db = IndexDbUse::Ignored { reason },
                        Ok(()) => {
                            report.index_db = IndexDbUse::Used {
                                version: idx.version,
                            };
                            for b in &idx.blocks {
                                filter.block_first.insert(b.index, b.first_seq);
                            }
                            filter.min_seq = idx.first_seq;
                            for (lo, hi) in idx.deleted.iter_runs() {
                                filter.deleted.insert_range(lo, hi);
                            }
                            if idx.last_seq >= last_seq {
                                last_seq = idx.last_seq;
                                idx_last_ts = Some(idx.last_ts);
                            }
                        }
                    }
                }
            }
        }

        // Consumers.
        let mut consumer_entries = Vec::new();
        for (dir, files) in consumers {
            let Some(meta) = files.meta else {
                return Err(ArchiveError::MissingFile {
                    file: format!("obs/{dir}/meta.inf"),
                });
            };
            match &files.sum {
                None => {
                    if opts.strict {
                        return Err(ArchiveError::MissingFile {
                            file: format!("obs/{dir}/meta.sum"),
                        });
                    }
                    report.warnings.push(format!("obs/{dir}/meta.sum missing"));
                }
                Some(s) => {
                    let expected = HashKey::of_text(&format!("{stream}/{dir}")).sum_hex(&meta);
                    if !sum_matches(s, &expected) {
                        if opts.strict {
                            return Err(ArchiveError::CorruptFile {
                                file: format!("obs/{dir}/meta.sum"),
                                reason: "does not match meta.inf".into(),
                            });
                        }
                        report
                            .warnings
                            .push(format!("obs/{dir}/meta.sum does not match (ignored)"));
                    }
                }
            }
            let mut cfg = json_object(&meta, &format!("obs/{dir}/meta.inf"))?;
            cfg.remove("Created");
            let name = match cfg.remove("Name") {
                Some(Value::String(s)) if !s.is_empty() => s,
                _ => dir.clone(),
            };
            if !cfg.contains_key("name") {
                cfg.insert("name".into(), Value::String(name.clone()));
            }
            let state = match files.odat {
                Some(b) => decode_odat(&b).map_err(|reason| ArchiveError::CorruptFile {
                    file: format!("obs/{dir}/o.dat"),
                    reason,
                })?,
                None => {
                    report
                        .warnings
                        .push(format!("obs/{dir}/o.dat missing, empty state"));
                    Default::default()
                }
            };
            consumer_entries.push(Entry::Consumer {
                name,
                config: Value::Object(cfg),
                state,
            });
        }

        // Pass 2: count what pass 3 will yield.
        let mut it = MsgIter::new(&blocks, max_record);
        let mut messages = 0u64;
        let mut bytes = 0u64;
        let mut first: Option<(u64, i64)> = None;
        let mut last_live: Option<(u64, i64)> = None;
        while let Some(m) = it.next_live(&filter)? {
            messages += 1;
            bytes += m.len;
            if first.is_none() {
                first = Some((m.seq, m.ts));
            }
            last_live = Some((m.seq, m.ts));
        }
        let (first_seq, first_ts) = match first {
            Some(f) => f,
            None if last_seq == 0 => (0, 0),
            None => (last_seq + 1, 0),
        };
        let last_ts = match (last_live, idx_last_ts) {
            (_, Some(ts)) => ts,
            (Some((_, ts)), None) => ts,
            (None, None) => 0,
        };
        let num_deleted = if messages > 0 {
            (last_seq - first_seq + 1).saturating_sub(messages)
        } else {
            0
        };
        let state = StreamStateJson {
            messages,
            bytes,
            first_seq,
            first_ts,
            last_seq,
            last_ts,
            num_subjects: 0,
            num_deleted,
            consumer_count: consumer_entries.len() as i64,
        };

        let mut queue = VecDeque::new();
        queue.push_back(Entry::StreamMeta {
            config: Value::Object(config),
            created,
        });
        queue.push_back(Entry::State(state));
        queue.extend(consumer_entries);

        Ok(V1Reader {
            _staging: staging,
            queue,
            iter: MsgIter::new(&blocks, max_record),
            filter,
            last_seq,
            report,
            done: false,
        })
    }

    pub(crate) fn report(&self) -> &V1Report {
        &self.report
    }

    pub(crate) fn next_entry(&mut self) -> Result<Option<Entry>, ArchiveError> {
        if let Some(e) = self.queue.pop_front() {
            return Ok(Some(e));
        }
        if self.done {
            return Ok(None);
        }
        match self.iter.next_live(&self.filter)? {
            Some(m) => {
                let rec =
                    parse_record(&self.iter.buf, None).map_err(|e| ArchiveError::CorruptFile {
                        file: "staged block".into(),
                        reason: e.reason().into(),
                    })?;
                Ok(Some(Entry::Message {
                    seq: m.seq,
                    ts: m.ts,
                    subject: rec.subject.to_vec(),
                    header: rec.header.to_vec(),
                    payload: rec.body.to_vec(),
                }))
            }
            None => {
                self.done = true;
                Ok(Some(Entry::End {
                    last_seq: self.last_seq,
                }))
            }
        }
    }
}
