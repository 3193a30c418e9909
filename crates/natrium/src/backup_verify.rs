//! `natrium backup verify DIR [--json]`: offline check of a backup directory written by
//! `nats stream backup` (`DIR/stream.tar.s2` + `DIR/backup.json`) or `nats account
//! backup` (one such directory per stream), without a server.
//!
//! It reads every archive the way a restore would — S2 framing and CRCs, v2 entry order
//! and sentinel or v1 tar members with block checksums, consumer state sanity — prints a
//! summary, and exits non-zero when anything is damaged. The work is done by
//! `natrium_store::archive::verify`; this file is only the command-line face.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use natrium_store::archive::{BackupSummary, StreamSummary, verify_backup_dir};

use crate::error::{Error, Result};

/// `natrium backup ...`.
#[derive(Args, Debug)]
pub struct BackupArgs {
    /// What to do with backups.
    #[command(subcommand)]
    pub command: BackupCommand,
}

/// Backup subcommands.
#[derive(Subcommand, Debug)]
pub enum BackupCommand {
    /// Verify a stream or account backup directory offline (exit status 1 if damaged).
    Verify(VerifyArgs),
}

/// `natrium backup verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Backup directory: `stream.tar.s2` + `backup.json`, or one such directory per stream.
    pub dir: PathBuf,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs a backup subcommand.
pub fn run(args: BackupArgs) -> Result<()> {
    match args.command {
        BackupCommand::Verify(v) => verify(v),
    }
}

fn verify(args: VerifyArgs) -> Result<()> {
    let dir = args.dir.display().to_string();
    let mut out = std::io::stdout().lock();
    let sd = crate::backup::layout::StreamDir::new(&args.dir);
    if let Some(res) = crate::backup::chain::verify_folder(&sd) {
        return verify_chain(&mut out, &dir, args.json, res);
    }
    match verify_backup_dir(&args.dir).map(|s| check_account_chains(&args.dir, s)) {
        Ok(summary) => {
            if args.json {
                let mut v = serde_json::to_value(&summary)
                    .map_err(|e| Error::Internal(format!("cannot encode summary: {e}")))?;
                if let Some(o) = v.as_object_mut() {
                    o.insert("ok".into(), summary.is_ok().into());
                    o.insert("dir".into(), dir.clone().into());
                }
                writeln!(out, "{v}")?;
            } else {
                print_summary(&mut out, &dir, &summary)?;
            }
            if summary.is_ok() {
                Ok(())
            } else {
                Err(Error::Incomplete(format!(
                    "backup {dir} is damaged: {} of {} streams failed verification",
                    summary.damaged.len(),
                    summary.damaged.len() + summary.streams.len()
                )))
            }
        }
        Err(e) => {
            if args.json {
                let v = serde_json::json!({"ok": false, "dir": dir, "error": e.to_string(),
                    "detail": format!("{e:?}")});
                writeln!(out, "{v}")?;
            } else {
                writeln!(out, "Backup {dir}: DAMAGED")?;
                writeln!(out, "  {e}")?;
                writeln!(out, "  detail: {e:?}")?;
            }
            Err(Error::Incomplete(format!("backup {dir} is damaged: {e}")))
        }
    }
}

/// An account backup's incremental stream folders: their chains are checked too (a
/// broken one moves the stream to the damaged list).
fn check_account_chains(dir: &std::path::Path, mut s: BackupSummary) -> BackupSummary {
    if s.kind != "account" {
        return s;
    }
    let mut ok = Vec::with_capacity(s.streams.len());
    for st in std::mem::take(&mut s.streams) {
        let sd = crate::backup::layout::StreamDir::new(std::path::PathBuf::from(&st.path));
        match crate::backup::chain::verify_folder(&sd) {
            Some(Err(e)) => s.damaged.push(natrium_store::archive::DamagedStream {
                path: st.path.clone(),
                error: e.to_string(),
                source: natrium_store::archive::ArchiveError::Chain {
                    reason: format!("{} ({})", e, dir.display()),
                },
            }),
            _ => ok.push(st),
        }
    }
    s.streams = ok;
    s.total_messages = s.streams.iter().map(|t| t.messages).sum();
    s.total_message_bytes = s.streams.iter().map(|t| t.message_bytes).sum();
    s.total_consumers = s.streams.iter().map(|t| t.consumers.len() as u64).sum();
    s
}

/// `backup verify` of an incremental backup: every link of its chain, full first.
fn verify_chain(
    out: &mut impl Write,
    dir: &str,
    json: bool,
    res: std::result::Result<Vec<StreamSummary>, crate::backup::BackupError>,
) -> Result<()> {
    match res {
        Ok(links) => {
            if json {
                let v = serde_json::json!({"ok": true, "dir": dir, "kind": "chain",
                    "links": links});
                writeln!(out, "{v}")?;
            } else {
                writeln!(
                    out,
                    "Backup {dir} (incremental backup, chain of {} links): OK",
                    links.len()
                )?;
                for s in &links {
                    print_stream(out, s)?;
                }
            }
            Ok(())
        }
        Err(e) => {
            if json {
                let v = serde_json::json!({"ok": false, "dir": dir, "kind": "chain",
                    "error": e.to_string()});
                writeln!(out, "{v}")?;
            } else {
                writeln!(out, "Backup {dir} (incremental backup): DAMAGED")?;
                writeln!(out, "  {e}")?;
            }
            Err(Error::Incomplete(format!("backup {dir} is damaged: {e}")))
        }
    }
}

fn print_stream(out: &mut impl Write, s: &StreamSummary) -> std::io::Result<()> {
    let flavor = match s.frames.flavor {
        Some(natrium_store::archive::s2_frame::FrameFlavor::Snappy) => "Snappy",
        _ => "S2",
    };
    writeln!(
        out,
        "  Stream {}: {} archive, {} framing, {} chunks, {} compressed / {} uncompressed bytes",
        s.stream,
        match s.format {
            natrium_store::archive::ArchiveFormat::V2 => "v2 (NATSARC1)",
            natrium_store::archive::ArchiveFormat::V1 => "v1 (tar)",
            natrium_store::archive::ArchiveFormat::Incremental => "incremental (NATRINC1)",
        },
        flavor,
        s.frames.chunks,
        s.frames.compressed_bytes,
        s.frames.decompressed_bytes
    )?;
    match (s.first_seq, s.last_message_seq) {
        (Some(f), Some(l)) => writeln!(
            out,
            "    messages {} ({} bytes), sequences {f}..{l}, stream last sequence {}",
            s.messages, s.message_bytes, s.last_seq
        )?,
        _ => writeln!(out, "    no messages, stream last sequence {}", s.last_seq)?,
    }
    if let Some(since) = s.since {
        writeln!(
            out,
            "    incremental after sequence {since}: {} tombstones (sequences up to {since} gone)",
            s.tombstones
        )?;
    }
    if let Some(bs) = &s.backup_state {
        writeln!(
            out,
            "    backup.json state: {} messages, sequences {}..{}",
            bs.messages, bs.first_seq, bs.last_seq
        )?;
    }
    if let Some(w) = &s.watermark {
        writeln!(out, "    watermark: {w}")?;
    }
    writeln!(out, "    consumers {}", s.consumers.len())?;
    for c in &s.consumers {
        writeln!(
            out,
            "      {}: delivered {}/{}, ack floor {}/{}, pending {}, redelivered {}",
            c.name,
            c.state.delivered.consumer_seq,
            c.state.delivered.stream_seq,
            c.state.ack_floor.consumer_seq,
            c.state.ack_floor.stream_seq,
            c.state.pending.len(),
            c.state.redelivered.len()
        )?;
    }
    if let Some(r) = &s.v1 {
        writeln!(
            out,
            "    v1: {} blocks, {} records ({} tombstones, {} erased), index.db {:?}",
            r.blocks, r.records, r.tombstones, r.erased, r.index_db
        )?;
    }
    for w in &s.warnings {
        writeln!(out, "    warning: {w}")?;
    }
    Ok(())
}

fn print_summary(out: &mut impl Write, dir: &str, s: &BackupSummary) -> std::io::Result<()> {
    writeln!(
        out,
        "Backup {dir} ({} backup): {}",
        s.kind,
        if s.is_ok() { "OK" } else { "DAMAGED" }
    )?;
    for st in &s.streams {
        print_stream(out, st)?;
    }
    for d in &s.damaged {
        writeln!(out, "  DAMAGED {}: {}", d.path, d.error)?;
    }
    writeln!(
        out,
        "Total: {} streams verified, {} damaged, {} messages, {} bytes, {} consumers",
        s.streams.len(),
        s.damaged.len(),
        s.total_messages,
        s.total_message_bytes,
        s.total_consumers
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_sample_dir_and_reports_damage() {
        let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../natrium-store/tests/data/backup");
        let tmp = std::env::temp_dir().join(format!("natrium-bv-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::copy(data.join("ORDERS.stream.tar.s2"), tmp.join("stream.tar.s2")).unwrap();
        std::fs::copy(data.join("ORDERS.backup.json"), tmp.join("backup.json")).unwrap();
        let ok = verify(VerifyArgs {
            dir: tmp.clone(),
            json: true,
        });
        assert!(ok.is_ok(), "{ok:?}");
        let mut bytes = std::fs::read(tmp.join("stream.tar.s2")).unwrap();
        bytes[200] ^= 0x40;
        std::fs::write(tmp.join("stream.tar.s2"), bytes).unwrap();
        let bad = verify(VerifyArgs {
            dir: tmp.clone(),
            json: false,
        });
        assert!(bad.is_err());
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
