//! Offline verification of backups as the nats CLI writes them: a stream backup directory
//! (`DIR/stream.tar.s2` + `DIR/backup.json`) or an account backup directory (one such
//! subdirectory per stream). Everything is read the way a restore would read it, but
//! strictly: framing and CRCs, entry order, block checksums, consumer state sanity
//! (ack floor ≤ delivered ≤ last sequence).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use serde::Serialize;

use super::error::ArchiveError;
use super::reader::{ArchiveFormat, ArchiveReader, Entry, FrameStats, ReaderOptions};
use super::state_json::{ConsumerStateJson, StreamStateJson};
use super::v1::V1Report;

/// One consumer found in an archive.
#[derive(Debug, Clone, Serialize)]
pub struct ConsumerSummary {
    /// Name.
    pub name: String,
    /// Its state.
    pub state: ConsumerStateJson,
}

/// What one stream archive holds.
#[derive(Debug, Clone, Serialize)]
pub struct StreamSummary {
    /// Stream name (backup.json / meta.inf).
    pub stream: String,
    /// Directory or file verified.
    pub path: String,
    /// Archive format.
    pub format: ArchiveFormat,
    /// Framing.
    pub frames: FrameStats,
    /// Messages in the archive.
    pub messages: u64,
    /// Subject + header + payload bytes of those messages.
    pub message_bytes: u64,
    /// First message sequence, if any message.
    pub first_seq: Option<u64>,
    /// Last message sequence, if any message.
    pub last_message_seq: Option<u64>,
    /// Stream last sequence (End entry).
    pub last_seq: u64,
    /// State from the archive (`state.json` or derived for v1).
    pub state: StreamStateJson,
    /// Consumers.
    pub consumers: Vec<ConsumerSummary>,
    /// `backup.json`'s `state` (the snapshot-time watermark), if a backup.json was read.
    pub backup_state: Option<StreamStateJson>,
    /// `backup.json`'s `watermark` field, if a tool wrote one.
    pub watermark: Option<serde_json::Value>,
    /// Incremental archives: the earlier backup's watermark they continue from.
    pub since: Option<u64>,
    /// Incremental archives: how many sequences up to `since` they list as absent.
    pub tombstones: u64,
    /// v1 import report.
    pub v1: Option<V1Report>,
    /// Oddities that are not damage.
    pub warnings: Vec<String>,
}

/// A stream of an account backup that failed verification.
#[derive(Debug, Serialize)]
pub struct DamagedStream {
    /// Its directory.
    pub path: String,
    /// The error text.
    pub error: String,
    /// The structured error.
    #[serde(skip)]
    pub source: ArchiveError,
}

/// Result of verifying a backup directory.
#[derive(Debug, Serialize)]
pub struct BackupSummary {
    /// `"stream"`, `"account"` or `"file"`.
    pub kind: &'static str,
    /// Healthy streams.
    pub streams: Vec<StreamSummary>,
    /// Damaged streams (account backups; a stream backup returns its error directly).
    pub damaged: Vec<DamagedStream>,
    /// Total messages over healthy streams.
    pub total_messages: u64,
    /// Total message bytes over healthy streams.
    pub total_message_bytes: u64,
    /// Total consumers over healthy streams.
    pub total_consumers: u64,
}

impl BackupSummary {
    /// Whether nothing is damaged.
    pub fn is_ok(&self) -> bool {
        self.damaged.is_empty()
    }

    /// Sets the totals from `streams` (after they were filled or changed).
    pub fn sum_totals(&mut self) {
        self.total_messages = self.streams.iter().map(|s| s.messages).sum();
        self.total_message_bytes = self.streams.iter().map(|s| s.message_bytes).sum();
        self.total_consumers = self.streams.iter().map(|s| s.consumers.len() as u64).sum();
    }
}

fn check_consumer(name: &str, st: &ConsumerStateJson, last_seq: u64) -> Result<(), ArchiveError> {
    let err = |reason: String| ArchiveError::ConsumerState {
        consumer: name.to_string(),
        reason,
    };
    if st.ack_floor.stream_seq > st.delivered.stream_seq {
        return Err(err(format!(
            "ack floor stream sequence {} above delivered {}",
            st.ack_floor.stream_seq, st.delivered.stream_seq
        )));
    }
    if st.ack_floor.consumer_seq > st.delivered.consumer_seq {
        return Err(err(format!(
            "ack floor consumer sequence {} above delivered {}",
            st.ack_floor.consumer_seq, st.delivered.consumer_seq
        )));
    }
    if st.delivered.stream_seq > last_seq {
        return Err(err(format!(
            "delivered stream sequence {} beyond the stream's last sequence {last_seq}",
            st.delivered.stream_seq
        )));
    }
    for &seq in st.pending.keys() {
        if seq <= st.ack_floor.stream_seq || seq > st.delivered.stream_seq {
            return Err(err(format!(
                "pending sequence {seq} outside (ack floor {}, delivered {}]",
                st.ack_floor.stream_seq, st.delivered.stream_seq
            )));
        }
    }
    Ok(())
}

/// Verifies one framed archive (`stream.tar.s2` bytes). `expected_stream` is checked
/// against a v1 archive's meta.inf.
pub fn verify_archive<R: Read>(
    r: R,
    path: &str,
    expected_stream: Option<&str>,
) -> Result<StreamSummary, ArchiveError> {
    let opts = ReaderOptions {
        strict: true,
        expected_stream: expected_stream.map(str::to_string),
        ..ReaderOptions::default()
    };
    let mut rd = ArchiveReader::new(r, opts)?;
    let mut stream = expected_stream.unwrap_or_default().to_string();
    let mut state = None;
    let mut consumers = Vec::new();
    let mut messages = 0u64;
    let mut message_bytes = 0u64;
    let mut first_seq = None;
    let mut last_message_seq = None;
    let mut last_seq = None;
    let mut warnings = Vec::new();
    while let Some(e) = rd.next_entry()? {
        match e {
            Entry::StreamMeta { config, .. } => {
                if let Some(n) = config.get("name").and_then(|v| v.as_str()) {
                    stream = n.to_string();
                }
            }
            Entry::State(s) => state = Some(s),
            Entry::Consumer { name, state, .. } => consumers.push(ConsumerSummary { name, state }),
            Entry::Message {
                seq,
                subject,
                header,
                payload,
                ..
            } => {
                messages += 1;
                message_bytes += (subject.len() + header.len() + payload.len()) as u64;
                first_seq.get_or_insert(seq);
                last_message_seq = Some(seq);
            }
            Entry::End { last_seq: l } => last_seq = Some(l),
        }
    }
    let state = state.ok_or(ArchiveError::Eof)?;
    let last_seq = last_seq.ok_or(ArchiveError::Eof)?;
    let trailing = rd.drain_trailing()?;
    if trailing > 0 {
        warnings.push(format!(
            "{trailing} bytes after the end sentinel (ignored by restore)"
        ));
    }
    for c in &consumers {
        check_consumer(&c.name, &c.state, last_seq)?;
    }
    if let Some(l) = last_message_seq
        && l > last_seq
    {
        warnings.push(format!(
            "message sequence {l} beyond state.json last_seq {last_seq}"
        ));
    }
    let incremental = rd.incremental().map(|h| (h.since, h.absent_count()));
    if state.messages != messages && incremental.is_none() {
        warnings.push(format!(
            "state says {} messages, archive holds {messages} (the state is taken at snapshot start)",
            state.messages
        ));
    }
    let v1 = rd.v1_report().cloned();
    if let Some(r) = &v1 {
        warnings.extend(r.warnings.iter().cloned());
    }
    Ok(StreamSummary {
        stream,
        path: path.to_string(),
        format: rd.format(),
        frames: rd.frame_stats(),
        messages,
        message_bytes,
        first_seq,
        last_message_seq,
        last_seq,
        state,
        consumers,
        backup_state: None,
        watermark: None,
        since: incremental.map(|(s, _)| s),
        tombstones: incremental.map_or(0, |(_, t)| t),
        v1,
        warnings,
    })
}

fn layout(path: &Path, reason: impl Into<String>) -> ArchiveError {
    ArchiveError::Layout {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Verifies one stream backup directory (`stream.tar.s2` + `backup.json`).
pub fn verify_stream_dir(dir: &Path) -> Result<StreamSummary, ArchiveError> {
    if dir.join("INCOMPLETE").exists() {
        return Err(layout(
            dir,
            "incomplete backup (interrupted while it was written; take it again)",
        ));
    }
    let bj_path = dir.join("backup.json");
    let bj_text = std::fs::read(&bj_path).map_err(|e| layout(&bj_path, e.to_string()))?;
    let arc_path = dir.join("stream.tar.s2");
    let file = File::open(&arc_path).map_err(|e| layout(&arc_path, e.to_string()))?;
    verify_stream_parts(
        &bj_text,
        &bj_path.display().to_string(),
        BufReader::with_capacity(256 * 1024, file),
        &dir.display().to_string(),
    )
}

/// Verifies one stream backup given as its parts: the `backup.json` bytes (named
/// `bj_name` in errors) and a reader of its `stream.tar.s2`. This is how a backup that
/// is not a local folder (an object-storage prefix) is checked, streaming the archive.
pub fn verify_stream_parts<R: Read>(
    bj_text: &[u8],
    bj_name: &str,
    archive: R,
    path: &str,
) -> Result<StreamSummary, ArchiveError> {
    let bj_layout = |reason: &str| ArchiveError::Layout {
        path: bj_name.to_string(),
        reason: reason.to_string(),
    };
    let bj: serde_json::Value =
        serde_json::from_slice(bj_text).map_err(|source| ArchiveError::Json {
            name: bj_name.to_string(),
            source,
        })?;
    let config = bj
        .get("config")
        .filter(|c| c.is_object())
        .ok_or_else(|| bj_layout("no config object"))?;
    let name = config
        .get("name")
        .and_then(|n| n.as_str())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bj_layout("config has no stream name"))?
        .to_string();
    let backup_state: Option<StreamStateJson> = match bj.get("state") {
        Some(s) => {
            Some(
                serde_json::from_value(s.clone()).map_err(|source| ArchiveError::Json {
                    name: format!("{bj_name} state"),
                    source,
                })?,
            )
        }
        None => None,
    };
    let mut s = verify_archive(archive, path, Some(&name))?;
    if s.stream != name {
        return Err(ArchiveError::StreamNameMismatch {
            expected: name,
            found: s.stream,
        });
    }
    s.watermark = bj.get("watermark").cloned();
    if let Some(bs) = &backup_state
        && bs.last_seq != s.last_seq
        && s.format != ArchiveFormat::V1
    {
        s.warnings.push(format!(
            "backup.json last_seq {} differs from the archive's {}",
            bs.last_seq, s.last_seq
        ));
    }
    s.backup_state = backup_state;
    Ok(s)
}

/// Verifies a stream backup directory, an account backup directory (every entry a
/// stream backup directory), or a single archive file. A stream directory's damage is returned as `Err`; an
/// account directory lists damaged streams in [`BackupSummary::damaged`].
pub fn verify_backup_dir(dir: &Path) -> Result<BackupSummary, ArchiveError> {
    let meta = std::fs::metadata(dir).map_err(|e| layout(dir, e.to_string()))?;
    let mut summary = BackupSummary {
        kind: "stream",
        streams: Vec::new(),
        damaged: Vec::new(),
        total_messages: 0,
        total_message_bytes: 0,
        total_consumers: 0,
    };
    if meta.is_file() {
        // A bare `stream.tar.s2` (or any framed archive file).
        summary.kind = "file";
        let file = File::open(dir)?;
        summary.streams.push(verify_archive(
            BufReader::with_capacity(256 * 1024, file),
            &dir.display().to_string(),
            None,
        )?);
    } else if dir.join("stream.tar.s2").exists() || dir.join("backup.json").exists() {
        summary.streams.push(verify_stream_dir(dir)?);
    } else {
        summary.kind = "account";
        let mut subdirs = Vec::new();
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let p = e.path();
            if !e.file_type()?.is_dir() {
                // natrium's account metadata (consistency, watermarks) sits beside them.
                if e.file_name() == "account.json" {
                    continue;
                }
                // natrium marks an account backup unfinished until account.json is written.
                if e.file_name() == "INCOMPLETE" {
                    return Err(layout(
                        dir,
                        "incomplete account backup (interrupted while it was written; take it again)",
                    ));
                }
                return Err(layout(&p, "account backups hold only stream directories"));
            }
            if !p.join("backup.json").exists() {
                return Err(layout(&p, "no backup.json"));
            }
            subdirs.push(p);
        }
        if subdirs.is_empty() {
            return Err(layout(dir, "no stream.tar.s2 and no stream directories"));
        }
        subdirs.sort();
        for p in subdirs {
            match verify_stream_dir(&p) {
                Ok(s) => summary.streams.push(s),
                Err(source) => summary.damaged.push(DamagedStream {
                    path: p.display().to_string(),
                    error: source.to_string(),
                    source,
                }),
            }
        }
    }
    summary.sum_totals();
    Ok(summary)
}
