//! `natrium backup verify DIR [--json]`: offline check of a backup directory written by
//! `nats stream backup` (`DIR/stream.tar.s2` + `DIR/backup.json`) or `nats account
//! backup` (one such directory per stream), without a server. DIR may also be an
//! `s3://bucket/prefix` URL; the archive is then streamed from the object store.
//! `backup ls` and `backup prune` (see `backup::catalog`) manage a folder of backups.
//!
//! It reads every archive the way a restore would — S2 framing and CRCs, v2 entry order
//! and sentinel or v1 tar members with block checksums, consumer state sanity — prints a
//! summary, and exits non-zero when anything is damaged. The work is done by
//! `natrium_store::archive::verify`; this file is only the command-line face.

use std::io::Write;

use clap::{Args, Subcommand};
use natrium_store::archive::{
    ArchiveError, BackupSummary, DamagedStream, StreamSummary, verify_backup_dir,
    verify_stream_parts,
};

use crate::backup::catalog;
use crate::backup::layout::{ARCHIVE, INCOMPLETE, META};
use crate::backup::target::Target;
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
    /// List the backups in a folder or s3:// prefix: time, streams, watermark, size.
    Ls(LsArgs),
    /// Delete all but the newest N backup chains (a full backup and its incrementals).
    Prune(PruneArgs),
}

/// `natrium backup ls`.
#[derive(Args, Debug)]
pub struct LsArgs {
    /// Folder or s3://BUCKET/PREFIX holding backups (or one backup).
    pub target: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `natrium backup prune`.
#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Folder or s3://BUCKET/PREFIX holding backups.
    pub target: String,
    /// How many of the newest chains to keep.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub keep: u64,
    /// Only print what would be deleted.
    #[arg(long)]
    pub dry_run: bool,
}

/// `natrium backup verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Backup directory: `stream.tar.s2` + `backup.json`, or one such directory per
    /// stream; or s3://BUCKET/PREFIX.
    pub dir: String,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs a backup subcommand.
pub async fn run(args: BackupArgs) -> Result<()> {
    match args.command {
        BackupCommand::Verify(v) => verify(v).await,
        BackupCommand::Ls(a) => ls(a).await,
        BackupCommand::Prune(a) => prune(a).await,
    }
}

async fn ls(a: LsArgs) -> Result<()> {
    let target = Target::parse(&a.target)?;
    let entries = catalog::list(&target).await?;
    if a.json {
        return crate::output::json(&entries);
    }
    if entries.is_empty() {
        return crate::output::out(format!("No backups in {}", target.display()));
    }
    let mut t = crate::output::table(
        Some(&format!("Backups in {}", target.display())),
        &[
            "Name",
            "Kind",
            "Time",
            "Streams",
            "Watermark",
            "Size",
            "Chain",
            "Status",
        ],
    );
    for e in &entries {
        // Shown as STREAM@SEQ whatever its source: natrium's watermark (a number for a
        // stream backup, a map for an account) or the nats CLI's `state.last_seq`.
        let wm = match &e.watermark {
            Some(serde_json::Value::Number(n)) if e.last_seq.len() == 1 => e
                .last_seq
                .keys()
                .map(|s| format!("{s}@{n}"))
                .collect::<String>(),
            Some(serde_json::Value::Object(m)) => m
                .iter()
                .map(|(s, l)| format!("{s}@{l}"))
                .collect::<Vec<_>>()
                .join(" "),
            Some(w) => w.to_string(),
            None => e
                .last_seq
                .iter()
                .map(|(s, l)| format!("{s}@{l}"))
                .collect::<Vec<_>>()
                .join(" "),
        };
        let kind = match e.natrium.as_ref().and_then(|n| n.get("kind")) {
            Some(k) => format!("{} {}", e.kind, k.as_str().unwrap_or("")),
            None => e.kind.to_string(),
        };
        t.row([
            if e.name.is_empty() {
                ".".to_string()
            } else {
                e.name.clone()
            },
            kind,
            e.time.clone(),
            e.streams.join(" "),
            wm,
            crate::output::bytes(e.size),
            e.chain.clone(),
            if e.complete { "complete" } else { "INCOMPLETE" }.to_string(),
        ]);
    }
    t.print()
}

async fn prune(a: PruneArgs) -> Result<()> {
    let target = Target::parse(&a.target)?;
    let entries = catalog::list(&target).await?;
    if entries.iter().any(|e| e.name.is_empty()) {
        return Err(Error::Usage(format!(
            "{} is itself a backup, not a folder of backups; nothing to prune",
            target.display()
        )));
    }
    let doomed = catalog::to_prune(&entries, a.keep as usize);
    if doomed.is_empty() {
        return crate::output::out(format!(
            "Nothing to prune in {}: {} backups, keeping the newest {} chains",
            target.display(),
            entries.len(),
            a.keep
        ));
    }
    for e in doomed {
        let what = format!(
            "{} ({} backup of {}, {}, chain {}, {})",
            e.location,
            e.kind,
            e.streams.join(" "),
            e.time,
            e.chain,
            crate::output::bytes(e.size)
        );
        if a.dry_run {
            crate::output::out(format!("Would delete {what}"))?;
        } else {
            crate::output::out(format!("Deleting {what}"))?;
            catalog::delete(&target, e).await?;
        }
    }
    Ok(())
}

/// The reason in a backup error, without the location it names (the caller adds it).
fn reason(e: crate::backup::BackupError) -> String {
    match e {
        crate::backup::BackupError::Object { detail, .. } => detail,
        other => other.to_string(),
    }
}

/// Verify a backup in an object store, streaming each archive.
async fn verify_remote(t: &Target) -> std::result::Result<BackupSummary, ArchiveError> {
    let layout = |path: String, reason: String| ArchiveError::Layout { path, reason };
    let berr = |e: crate::backup::BackupError| layout(t.display(), reason(e));
    let mut summary = BackupSummary {
        kind: "stream",
        streams: Vec::new(),
        damaged: Vec::new(),
        total_messages: 0,
        total_message_bytes: 0,
        total_consumers: 0,
    };
    t.prepare().await.map_err(berr)?;
    let is_stream = t.exists(META).await.map_err(berr)? || t.exists(ARCHIVE).await.map_err(berr)?;
    if is_stream {
        summary.streams.push(verify_remote_stream(t).await?);
    } else {
        summary.kind = "account";
        refuse_incomplete(t).await?;
        let subs = t.children().await.map_err(berr)?;
        if subs.is_empty() {
            return Err(layout(
                t.display(),
                "no stream.tar.s2 and no stream directories".into(),
            ));
        }
        for s in subs {
            let st = t.join(&s);
            match verify_remote_stream(&st).await {
                Ok(s) => summary.streams.push(s),
                Err(source) => summary.damaged.push(DamagedStream {
                    path: st.display(),
                    error: source.to_string(),
                    source,
                }),
            }
        }
    }
    summary.sum_totals();
    Ok(summary)
}

/// Set the summary's totals from its verified streams.
/// Refuse a backup (stream or account root) that still holds the unfinished marker.
async fn refuse_incomplete(t: &Target) -> std::result::Result<(), ArchiveError> {
    let layout = |reason: String| ArchiveError::Layout {
        path: t.display(),
        reason,
    };
    if t.exists(INCOMPLETE).await.map_err(|e| layout(reason(e)))? {
        return Err(layout(
            "incomplete backup (interrupted while it was written; take it again)".into(),
        ));
    }
    Ok(())
}

async fn verify_remote_stream(t: &Target) -> std::result::Result<StreamSummary, ArchiveError> {
    let layout = |path: String, reason: String| ArchiveError::Layout { path, reason };
    let berr = |e: crate::backup::BackupError| layout(t.display(), reason(e));
    refuse_incomplete(t).await?;
    let bj = t.read_small(META).await.map_err(berr)?;
    let reader = t.open(ARCHIVE).await.map_err(berr)?.into_blocking_read();
    let bj_name = t.location(META).display().to_string();
    let path = t.display();
    tokio::task::spawn_blocking(move || verify_stream_parts(&bj, &bj_name, reader, &path))
        .await
        .map_err(|e| layout(t.display(), format!("verification task failed: {e}")))?
}

async fn verify(args: VerifyArgs) -> Result<()> {
    let target = Target::parse(&args.dir)?;
    let dir = target.display();
    // An incremental backup is verified with its whole chain (its links on any target).
    let sd = crate::backup::layout::StreamDir::at(target.clone());
    if let Some(res) = crate::backup::chain::verify_folder(&sd).await {
        return verify_chain(&mut std::io::stdout().lock(), &dir, args.json, res);
    }
    let result = match &target {
        Target::Local(p) => match verify_backup_dir(p) {
            Ok(s) => Ok(check_account_chains(&target, s).await),
            Err(e) => Err(e),
        },
        Target::Object(_) => match verify_remote(&target).await {
            Ok(s) => Ok(check_account_chains(&target, s).await),
            Err(e) => Err(e),
        },
    };
    let mut out = std::io::stdout().lock();
    match result {
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
async fn check_account_chains(dir: &Target, mut s: BackupSummary) -> BackupSummary {
    if s.kind != "account" {
        return s;
    }
    let mut ok = Vec::with_capacity(s.streams.len());
    for st in std::mem::take(&mut s.streams) {
        let sd = match dir {
            Target::Local(_) => {
                crate::backup::layout::StreamDir::new(std::path::PathBuf::from(&st.path))
            }
            // The stream's folder is the last component of its URL.
            Target::Object(_) => crate::backup::layout::StreamDir::at(
                dir.join(
                    st.path
                        .trim_end_matches('/')
                        .rsplit('/')
                        .next()
                        .unwrap_or(""),
                ),
            ),
        };
        match crate::backup::chain::verify_folder(&sd).await {
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
    s.sum_totals();
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

    #[tokio::test]
    async fn verifies_sample_dir_and_reports_damage() {
        let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../natrium-store/tests/data/backup");
        let tmp = std::env::temp_dir().join(format!("natrium-bv-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::copy(data.join("ORDERS.stream.tar.s2"), tmp.join("stream.tar.s2")).unwrap();
        std::fs::copy(data.join("ORDERS.backup.json"), tmp.join("backup.json")).unwrap();
        let ok = verify(VerifyArgs {
            dir: tmp.display().to_string(),
            json: true,
        })
        .await;
        assert!(ok.is_ok(), "{ok:?}");
        let mut bytes = std::fs::read(tmp.join("stream.tar.s2")).unwrap();
        bytes[200] ^= 0x40;
        std::fs::write(tmp.join("stream.tar.s2"), bytes).unwrap();
        let bad = verify(VerifyArgs {
            dir: tmp.display().to_string(),
            json: false,
        })
        .await;
        assert!(bad.is_err());
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
