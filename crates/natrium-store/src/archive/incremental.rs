//! natrium's incremental archives, and the merge of a backup chain into one ordinary v2
//! archive.
//!
//! Why: a nightly full backup copies the whole stream every night although almost all of
//! it is unchanged. Messages never change once stored — a sequence is only ever added
//! (above the last one) or removed — so everything after an earlier backup with watermark
//! `W` is (a) the messages above `W` and (b) which sequences `≤ W` are gone by now. An
//! incremental archive carries exactly that, plus the complete current stream state and
//! consumer states (small, and simpler to replace than to diff).
//!
//! Format (`NATRINC1`): S2 framing as every snapshot; decompressed, the magic
//! `NATRINC1`, one metadata entry `natrium.json` (v2 entry encoding, sequence 0) holding
//! [`IncrementalHeader`], then the body of a v2 archive unchanged — `state.json`,
//! `consumers/<name>` entries, the messages above `since` in ascending order, the
//! sentinel. A distinct magic, not a flag inside `state.json`, so that no server (ours or
//! nats-server, which reads any other magic as a legacy tar and fails) can restore one
//! link alone and silently produce a stream with holes.
//!
//! Restore never needs a new server API: [`merge_chain`] reads the full archive and the
//! incremental links in order, all streaming, and writes the stream as it stood at the
//! last link's watermark as one v2 archive (the last link's state and consumers; every
//! message that the last link does not list as absent), which goes to the ordinary
//! restore API of any 2.15+ server.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use super::error::ArchiveError;
use super::reader::{ArchiveReader, Entry, ReaderOptions};
use super::state_json::{ConsumerStateJson, StreamStateJson};
use super::v2::ArchiveWriter;

/// First 8 decompressed bytes of an incremental archive.
pub const INC_MAGIC: &[u8; 8] = b"NATRINC1";
/// Name of its header entry.
pub const INC_ENTRY: &str = "natrium.json";

/// The header of an incremental archive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncrementalHeader {
    /// The earlier backup's watermark: this archive holds only messages above it.
    pub since: u64,
    /// The sequences `1..=since` that were absent at this backup's point in time
    /// (deleted, purged, expired, or before the first sequence), as ascending, disjoint,
    /// inclusive `[first, last]` ranges: the tombstones.
    pub absent: Vec<(u64, u64)>,
}

impl IncrementalHeader {
    /// Checks the ranges are ascending, disjoint, non-empty and within `1..=since`.
    pub fn validate(&self) -> Result<(), ArchiveError> {
        let bad = |reason: String| ArchiveError::InvalidEntry {
            name: INC_ENTRY.into(),
            reason,
        };
        let mut prev = 0u64;
        for &(lo, hi) in &self.absent {
            if lo == 0 || lo > hi || hi > self.since {
                return Err(bad(format!(
                    "absent range [{lo}, {hi}] outside 1..={}",
                    self.since
                )));
            }
            if lo <= prev {
                return Err(bad(format!(
                    "absent range [{lo}, {hi}] not above the previous one"
                )));
            }
            prev = hi;
        }
        Ok(())
    }

    /// How many sequences the ranges cover.
    pub fn absent_count(&self) -> u64 {
        self.absent.iter().map(|(lo, hi)| hi - lo + 1).sum()
    }
}

/// What [`merge_chain`] produced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChainSummary {
    /// Links read (the full backup included).
    pub links: usize,
    /// Messages written.
    pub messages: u64,
    /// Messages of earlier links left out because a later link lists them as absent.
    pub dropped: u64,
    /// Last sequence of the merged stream (the last link's watermark).
    pub last_seq: u64,
    /// Messages left out because they are at or below the resume point
    /// ([`merge_chain_after`]).
    pub skipped: u64,
    /// Consumers written.
    pub consumers: u64,
}

/// One opened link: its reader, state and (for the last link) consumers.
struct Link<R: Read> {
    reader: ArchiveReader<R>,
    state: StreamStateJson,
}

fn chain(reason: String) -> ArchiveError {
    ArchiveError::Chain { reason }
}

/// A consumer entry: name, config, state.
type ConsumerEntry = (String, serde_json::Value, ConsumerStateJson);

/// Opens `r` and reads up to the first message: the state, and the consumers.
fn open_link<R: Read>(
    r: R,
    opts: &ReaderOptions,
) -> Result<(Link<R>, Vec<ConsumerEntry>), ArchiveError> {
    let mut reader = ArchiveReader::new(r, opts.clone())?;
    let state = loop {
        match reader.next_entry()? {
            Some(Entry::StreamMeta { .. }) => {}
            Some(Entry::State(s)) => break s,
            _ => return Err(ArchiveError::Eof),
        }
    };
    let mut consumers = Vec::new();
    for _ in 0..state.consumer_count.max(0) {
        match reader.next_entry()? {
            Some(Entry::Consumer {
                name,
                config,
                state,
            }) => consumers.push((name, config, state)),
            _ => return Err(ArchiveError::Eof),
        }
    }
    Ok((Link { reader, state }, consumers))
}

/// A v2 archive on `out` up to its first message: `state` (its consumer count set to
/// that of `consumers`) and the consumers. With `inc`, an incremental archive with that
/// header instead.
fn start_v2<W: Write>(
    out: W,
    state: StreamStateJson,
    consumers: &[ConsumerEntry],
    inc: Option<&IncrementalHeader>,
) -> Result<ArchiveWriter<W>, ArchiveError> {
    let state = StreamStateJson {
        consumer_count: consumers.len() as i64,
        ..state
    };
    let mut w = match inc {
        Some(h) => ArchiveWriter::incremental(out, h)?,
        None => ArchiveWriter::new(out),
    };
    w.state(&state)?;
    for (name, config, st) in consumers {
        w.consumer(name, config, st)?;
    }
    Ok(w)
}

/// Merges a backup chain — `links[0]` a complete archive (v2 or v1), then incremental
/// archives, each continuing from the previous one's watermark — into one v2 archive on
/// `out`: the stream as it stood at the last link's point in time. Everything streams;
/// memory is one message plus the last link's tombstone ranges. Any damage, or links
/// that do not continue one another, is an error (and `out` then holds a partial
/// archive, which no restore accepts: it has no end sentinel).
pub fn merge_chain<R: Read, W: Write>(
    links: Vec<R>,
    out: W,
    opts: &ReaderOptions,
) -> Result<(W, ChainSummary), ArchiveError> {
    merge_chain_after(links, out, opts, None)
}

/// [`merge_chain`], for resuming an interrupted restore: with `after = Some(L)` the
/// output is an incremental archive continuing from `L` — the merged stream's state
/// and consumers in full, but only the messages above `L`, and no tombstones (the
/// receiver holds the merged stream's messages up to `L` already). A resumed restore
/// (natrium-server's `natrium_resume`, docs/api.md) takes exactly that. An `L` beyond
/// the merged stream's last sequence is an error: the receiver holds another stream.
pub fn merge_chain_after<R: Read, W: Write>(
    links: Vec<R>,
    out: W,
    opts: &ReaderOptions,
    after: Option<u64>,
) -> Result<(W, ChainSummary), ArchiveError> {
    merge_links(links, out, opts, Merge::Full { after })
}

/// Merges incremental links — `links[0]` an incremental archive since some watermark
/// `W`, each later one continuing from the previous one's last sequence — into one
/// incremental archive since `W`: the last link's state and consumers, every message
/// above `W` that the last link does not list as absent, and the last link's tombstones
/// at or below `W`. Why: resuming an interrupted incremental backup fetches the changes
/// after the part that arrived (a second incremental archive); merged, the two are the
/// incremental backup that was asked for, still continuing the same parent.
pub fn merge_increments<R: Read, W: Write>(
    links: Vec<R>,
    out: W,
    opts: &ReaderOptions,
) -> Result<(W, ChainSummary), ArchiveError> {
    merge_links(links, out, opts, Merge::Increments)
}

/// What [`merge_links`] writes.
#[derive(Debug, Clone, Copy)]
enum Merge {
    /// The chain starts with a full archive; the output is complete, or with
    /// `after = Some(L)` an incremental one continuing from `L` without tombstones.
    Full {
        /// See [`merge_chain_after`].
        after: Option<u64>,
    },
    /// The chain starts with an incremental archive; so does the output.
    Increments,
}

fn merge_links<R: Read, W: Write>(
    links: Vec<R>,
    out: W,
    opts: &ReaderOptions,
    mode: Merge,
) -> Result<(W, ChainSummary), ArchiveError> {
    if links.is_empty() {
        return Err(chain("no links".into()));
    }
    let after = match mode {
        Merge::Full { after } => after,
        Merge::Increments => None,
    };
    let n = links.len();
    let mut opened: Vec<Link<R>> = Vec::with_capacity(n);
    let mut consumers = Vec::new();
    // The first link's watermark when it is an incremental one.
    let mut base: Option<u64> = None;
    for (i, r) in links.into_iter().enumerate() {
        let (link, cons) = open_link(r, opts)?;
        match (i, link.reader.incremental(), mode) {
            (0, Some(h), Merge::Increments) => base = Some(h.since),
            (0, None, Merge::Increments) => {
                return Err(chain(
                    "the first link must be an incremental backup, found a full one".into(),
                ));
            }
            (0, Some(h), Merge::Full { .. }) => {
                return Err(chain(format!(
                    "the first link must be a full backup, found an incremental one (since {})",
                    h.since
                )));
            }
            (0, None, Merge::Full { .. }) => {}
            (_, None, _) => {
                return Err(chain(format!(
                    "link {i} is a full backup; only the first link may be"
                )));
            }
            (_, Some(h), _) => {
                let prev = opened[i - 1].state.last_seq;
                if h.since != prev {
                    return Err(chain(format!(
                        "link {i} continues from sequence {} but link {} ends at {prev}",
                        h.since,
                        i - 1
                    )));
                }
            }
        }
        if i == n - 1 {
            consumers = cons;
        }
        opened.push(link);
    }
    let last = &opened[n - 1];
    let (first_seq, last_seq) = (last.state.first_seq, last.state.last_seq);
    let (cut, absent) = match last.reader.incremental() {
        Some(h) => (h.since, h.absent.clone()),
        None => (0, Vec::new()),
    };
    if let Some(a) = after
        && a > last_seq
    {
        return Err(chain(format!(
            "cannot continue after sequence {a}: the archive ends at {last_seq}"
        )));
    }
    let header = match (after, base) {
        (Some(since), _) => Some(IncrementalHeader {
            since,
            absent: Vec::new(),
        }),
        // The last link's tombstones hold every sequence up to its `since` that was
        // absent at its point in time; those at or below the base are the output's.
        (None, Some(since)) => Some(IncrementalHeader {
            since,
            absent: clip_ranges(&absent, since),
        }),
        (None, None) => None,
    };
    let mut w = start_v2(out, last.state.clone(), &consumers, header.as_ref())?;
    let mut summary = ChainSummary {
        links: n,
        last_seq,
        consumers: consumers.len() as u64,
        ..ChainSummary::default()
    };
    let mut gone = absent.iter().peekable();
    for (i, link) in opened.iter_mut().enumerate() {
        let end = link.state.last_seq;
        let floor = link.reader.incremental().map_or(0, |h| h.since);
        while let Some(e) = link.reader.next_entry()? {
            match e {
                Entry::Message {
                    seq,
                    ts,
                    subject,
                    header,
                    payload,
                } => {
                    if seq > end {
                        return Err(chain(format!(
                            "link {i} holds message {seq} beyond its last sequence {end}"
                        )));
                    }
                    if seq <= floor {
                        return Err(chain(format!(
                            "link {i} continues from sequence {floor} but holds message {seq}"
                        )));
                    }
                    if after.is_some_and(|a| seq <= a) {
                        summary.skipped += 1;
                        continue;
                    }
                    if seq <= cut {
                        while gone.peek().is_some_and(|(_, hi)| *hi < seq) {
                            gone.next();
                        }
                        let is_gone = gone.peek().is_some_and(|(lo, _)| *lo <= seq);
                        if is_gone || seq < first_seq {
                            summary.dropped += 1;
                            continue;
                        }
                    }
                    w.message(seq, ts, &subject, &header, &payload)?;
                    summary.messages += 1;
                }
                Entry::End { .. } => {}
                Entry::StreamMeta { .. } | Entry::State(_) | Entry::Consumer { .. } => {
                    return Err(chain(format!("link {i}: metadata entry among messages")));
                }
            }
        }
        link.reader.drain_trailing()?;
    }
    let out = w.finish()?;
    Ok((out, summary))
}

/// The parts of ascending, disjoint, inclusive ranges at or below `max`.
fn clip_ranges(ranges: &[(u64, u64)], max: u64) -> Vec<(u64, u64)> {
    ranges
        .iter()
        .filter(|(lo, _)| *lo <= max)
        .map(|&(lo, hi)| (lo, hi.min(max)))
        .collect()
}

/// What survived of an interrupted archive ([`scan_prefix`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Prefix {
    /// Complete messages.
    pub messages: u64,
    /// The last sequence the kept part covers: its last complete message, or the
    /// sequence before the first one if none survived.
    pub last_seq: u64,
    /// For an incremental archive, the watermark it continues from.
    pub since: Option<u64>,
}

/// Resumable backups, first pass: how much of an interrupted archive (cut anywhere,
/// even inside a frame or an entry) survived intact — every byte counted passed the
/// frame checksums. Fails only when not even `state.json` and the consumers survived
/// (for an incremental archive: and its header). For an incremental archive since `W`
/// the kept part covers at least up to `W`.
pub fn scan_prefix<R: Read>(r: R) -> Result<Prefix, ArchiveError> {
    let (mut link, _) = open_link(r, &ReaderOptions::default())?;
    let before_first = link.state.first_seq.saturating_sub(1);
    let mut p = Prefix {
        messages: 0,
        last_seq: match link.reader.incremental() {
            Some(h) => h.since.max(before_first),
            None => before_first,
        },
        since: link.reader.incremental().map(|h| h.since),
    };
    while let Ok(Some(Entry::Message { seq, .. })) = link.reader.next_entry() {
        p.messages += 1;
        p.last_seq = seq;
    }
    Ok(p)
}

/// Resumable backups, second pass: write the surviving part `prefix` (from
/// [`scan_prefix`] of the same bytes) as a complete archive — the state with
/// `last_seq` lowered to `prefix.last_seq`, the consumers, the messages, the sentinel
/// (an incremental archive stays one, with its header). An incremental backup after
/// `prefix.last_seq`, merged with it ([`merge_chain`], or [`merge_increments`] for an
/// incremental one), completes the backup.
pub fn copy_prefix<R: Read, W: Write>(r: R, prefix: &Prefix, out: W) -> Result<W, ArchiveError> {
    let (mut link, consumers) = open_link(r, &ReaderOptions::default())?;
    let header = link.reader.incremental().cloned();
    if header.as_ref().map(|h| h.since) != prefix.since {
        return Err(chain(
            "the archive changed between the two passes over its kept part".into(),
        ));
    }
    let state = StreamStateJson {
        // An incremental archive's state counts the whole stream, not its own content;
        // cut at `last_seq`, that count is not known (and only the last link's state
        // reaches a merged archive), so it is only bounded to fit the range.
        messages: if header.is_some() {
            let range = prefix
                .last_seq
                .saturating_add(1)
                .saturating_sub(link.state.first_seq.max(1));
            link.state.messages.min(range)
        } else {
            prefix.messages
        },
        last_seq: prefix.last_seq,
        ..link.state.clone()
    };
    let mut w = start_v2(out, state, &consumers, header.as_ref())?;
    let mut left = prefix.messages;
    while left > 0 {
        match link.reader.next_entry()? {
            Some(Entry::Message {
                seq,
                ts,
                subject,
                header,
                payload,
            }) => {
                w.message(seq, ts, &subject, &header, &payload)?;
                left -= 1;
            }
            _ => return Err(ArchiveError::Eof),
        }
    }
    Ok(w.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(msgs: &[u64], last: u64) -> Vec<u8> {
        let st = StreamStateJson {
            messages: msgs.len() as u64,
            first_seq: msgs.first().copied().unwrap_or(last + 1),
            last_seq: last,
            ..Default::default()
        };
        let mut w = ArchiveWriter::new(Vec::new());
        w.state(&st).unwrap();
        for &s in msgs {
            w.message(s, s as i64, b"a", b"", format!("m{s}").as_bytes())
                .unwrap();
        }
        w.finish().unwrap()
    }

    fn inc(since: u64, absent: Vec<(u64, u64)>, first: u64, msgs: &[u64], last: u64) -> Vec<u8> {
        let st = StreamStateJson {
            first_seq: first,
            last_seq: last,
            ..Default::default()
        };
        let mut w =
            ArchiveWriter::incremental(Vec::new(), &IncrementalHeader { since, absent }).unwrap();
        w.state(&st).unwrap();
        for &s in msgs {
            w.message(s, s as i64, b"a", b"", format!("m{s}").as_bytes())
                .unwrap();
        }
        w.finish().unwrap()
    }

    /// Writes message `s` with a ~1 KB payload starting `m{s}x` (several make frames).
    fn padded<W: Write>(w: &mut ArchiveWriter<W>, s: u64) {
        let mut pad = format!("m{s}").into_bytes();
        pad.resize(1000, b'x');
        w.message(s, s as i64, b"a", b"", &pad).unwrap();
    }

    fn seqs(archive: &[u8]) -> (StreamStateJson, Vec<u64>) {
        let mut r = ArchiveReader::new(archive, ReaderOptions::default()).unwrap();
        assert!(r.incremental().is_none());
        let mut st = None;
        let mut out = Vec::new();
        while let Some(e) = r.next_entry().unwrap() {
            match e {
                Entry::State(s) => st = Some(s),
                Entry::Message { seq, payload, .. } => {
                    assert_eq!(payload, format!("m{seq}").as_bytes());
                    out.push(seq);
                }
                _ => {}
            }
        }
        (st.unwrap(), out)
    }

    #[test]
    fn merges_a_chain_with_deletes_and_purges() {
        let a = full(&[1, 2, 3, 4, 5, 6], 6);
        // inc1: 2 deleted, purge up to 3 (first 4), new 7..9 with 8 deleted.
        let b = inc(6, vec![(1, 3)], 4, &[7, 9], 9);
        // inc2: 5 and 9 deleted, new 10.
        let c = inc(9, vec![(1, 3), (5, 5), (8, 9)], 4, &[10], 10);
        let (out, s) = merge_chain(
            vec![&a[..], &b[..], &c[..]],
            Vec::new(),
            &ReaderOptions::default(),
        )
        .unwrap();
        assert_eq!(s.links, 3);
        let (st, got) = seqs(&out);
        assert_eq!(got, vec![4, 6, 7, 10]);
        assert_eq!((st.first_seq, st.last_seq), (4, 10));
        assert_eq!(s.messages, 4);
        assert_eq!(s.dropped, 5);
        // A single full link is copied.
        let (out, _) = merge_chain(vec![&a[..]], Vec::new(), &ReaderOptions::default()).unwrap();
        assert_eq!(seqs(&out).1, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn an_interrupted_archive_is_salvaged_and_completed() {
        // Big enough for several frames: cut it in the middle of the last ones.
        let msgs: Vec<u64> = (1..=3000).collect();
        let st = StreamStateJson {
            messages: msgs.len() as u64,
            first_seq: 1,
            last_seq: 3000,
            ..Default::default()
        };
        let mut w = ArchiveWriter::new(Vec::new());
        w.state(&st).unwrap();
        for &s in &msgs {
            padded(&mut w, s);
        }
        let whole = w.finish().unwrap();
        let cut = &whole[..whole.len() * 2 / 3];
        let p = scan_prefix(cut).unwrap();
        assert!(p.messages > 0 && p.messages < 3000, "{p:?}");
        assert_eq!(p.last_seq, p.messages);
        let kept = copy_prefix(cut, &p, Vec::new()).unwrap();
        // The rest, as an incremental backup after the kept part.
        let mut w = ArchiveWriter::incremental(
            Vec::new(),
            &IncrementalHeader {
                since: p.last_seq,
                absent: vec![],
            },
        )
        .unwrap();
        w.state(&st).unwrap();
        for s in p.last_seq + 1..=3000 {
            padded(&mut w, s);
        }
        let rest = w.finish().unwrap();
        let (merged, s) = merge_chain(
            vec![&kept[..], &rest[..]],
            Vec::new(),
            &ReaderOptions::default(),
        )
        .unwrap();
        assert_eq!(s.messages, 3000);
        let mut r = ArchiveReader::new(&merged[..], ReaderOptions::default()).unwrap();
        let mut n = 0;
        while let Some(e) = r.next_entry().unwrap() {
            if let Entry::Message { seq, payload, .. } = e {
                n += 1;
                assert_eq!(seq, n);
                assert!(payload.starts_with(format!("m{seq}x").as_bytes()));
            }
        }
        assert_eq!(n, 3000);
        // Nothing usable: an error, not an empty backup.
        assert!(scan_prefix(&whole[..5]).is_err());
    }

    #[test]
    fn an_interrupted_incremental_is_completed_as_the_same_increment() {
        // Full backup at 100; the incremental since 100 was cut off in its messages.
        let base = full(&(1..=100).collect::<Vec<_>>(), 100);
        let msgs: Vec<u64> = (101..=3000).collect();
        let st = StreamStateJson {
            first_seq: 1,
            last_seq: 3000,
            ..Default::default()
        };
        let header = IncrementalHeader {
            since: 100,
            absent: vec![(5, 5)],
        };
        let mut w = ArchiveWriter::incremental(Vec::new(), &header).unwrap();
        w.state(&st).unwrap();
        for &s in &msgs {
            padded(&mut w, s);
        }
        let whole = w.finish().unwrap();
        let cut = &whole[..whole.len() / 2];
        let p = scan_prefix(cut).unwrap();
        assert_eq!(p.since, Some(100));
        assert!(p.last_seq > 100 && p.last_seq < 3000, "{p:?}");
        assert_eq!(p.last_seq, 100 + p.messages);
        let kept = copy_prefix(cut, &p, Vec::new()).unwrap();
        assert_eq!(
            ArchiveReader::new(&kept[..], ReaderOptions::default())
                .unwrap()
                .incremental(),
            Some(&header)
        );
        // Meanwhile 7 and 150 were deleted and 3001..=3010 published: the rest is the
        // changes after the kept part, its tombstones complete up to there.
        let l = p.last_seq;
        let rest_msgs: Vec<u64> = (l + 1..=3010).collect();
        let mut w = ArchiveWriter::incremental(
            Vec::new(),
            &IncrementalHeader {
                since: l,
                absent: vec![(5, 5), (7, 7), (150, 150)],
            },
        )
        .unwrap();
        w.state(&StreamStateJson {
            first_seq: 1,
            last_seq: 3010,
            ..Default::default()
        })
        .unwrap();
        for &s in &rest_msgs {
            padded(&mut w, s);
        }
        let rest = w.finish().unwrap();
        let (merged, s) = merge_increments(
            vec![&kept[..], &rest[..]],
            Vec::new(),
            &ReaderOptions::default(),
        )
        .unwrap();
        assert_eq!((s.messages, s.dropped), (2909, 1), "{s:?}");
        // The result is the increment since 100 that was asked for ...
        let mut r = ArchiveReader::new(&merged[..], ReaderOptions::default()).unwrap();
        assert_eq!(
            r.incremental(),
            Some(&IncrementalHeader {
                since: 100,
                absent: vec![(5, 5), (7, 7)],
            })
        );
        let mut got = Vec::new();
        while let Some(e) = r.next_entry().unwrap() {
            if let Entry::Message { seq, payload, .. } = e {
                assert!(payload.starts_with(format!("m{seq}x").as_bytes()));
                got.push(seq);
            }
        }
        let want: Vec<u64> = (101..=3010).filter(|&s| s != 150).collect();
        assert_eq!(got, want);
        // ... so it continues the full backup: the chain gives the stream.
        let (out, _) = merge_chain(
            vec![&base[..], &merged[..]],
            Vec::new(),
            &ReaderOptions::default(),
        )
        .unwrap();
        let mut r = ArchiveReader::new(&out[..], ReaderOptions::default()).unwrap();
        assert!(r.incremental().is_none());
        let mut got = Vec::new();
        while let Some(e) = r.next_entry().unwrap() {
            match e {
                Entry::State(st) => assert_eq!(st.last_seq, 3010),
                Entry::Message { seq, payload, .. } => {
                    assert!(payload.starts_with(format!("m{seq}").as_bytes()));
                    got.push(seq);
                }
                _ => {}
            }
        }
        let want: Vec<u64> = (1..=3010).filter(|s| ![5, 7, 150].contains(s)).collect();
        assert_eq!(got, want);
        // Only a chain that starts with an increment merges that way.
        let e =
            merge_increments(vec![&base[..]], Vec::new(), &ReaderOptions::default()).unwrap_err();
        assert!(e.to_string().contains("incremental"), "{e}");
    }

    #[test]
    fn a_resume_tail_holds_what_is_after_the_point() {
        let a = full(&[1, 2, 3, 4, 5, 6], 6);
        let b = inc(6, vec![(2, 2)], 1, &[7, 8], 8);
        let (out, s) = merge_chain_after(
            vec![&a[..], &b[..]],
            Vec::new(),
            &ReaderOptions::default(),
            Some(4),
        )
        .unwrap();
        assert_eq!((s.messages, s.skipped), (4, 4), "{s:?}");
        let mut r = ArchiveReader::new(&out[..], ReaderOptions::default()).unwrap();
        assert_eq!(
            r.incremental(),
            Some(&IncrementalHeader {
                since: 4,
                absent: vec![]
            })
        );
        let mut got = Vec::new();
        while let Some(e) = r.next_entry().unwrap() {
            match e {
                Entry::State(st) => assert_eq!((st.first_seq, st.last_seq), (1, 8)),
                Entry::Message { seq, .. } => got.push(seq),
                _ => {}
            }
        }
        assert_eq!(got, vec![5, 6, 7, 8]);
        // At the end: an empty tail; beyond it: another stream.
        let (out, s) =
            merge_chain_after(vec![&a[..]], Vec::new(), &ReaderOptions::default(), Some(6))
                .unwrap();
        assert_eq!(s.messages, 0);
        assert!(ArchiveReader::new(&out[..], ReaderOptions::default()).is_ok());
        let e = merge_chain_after(vec![&a[..]], Vec::new(), &ReaderOptions::default(), Some(7))
            .unwrap_err();
        assert!(e.to_string().contains("ends at 6"), "{e}");
    }

    #[test]
    fn refuses_links_that_do_not_fit() {
        let a = full(&[1, 2], 2);
        let b = inc(3, vec![], 1, &[4], 4);
        let e =
            merge_chain(vec![&a[..], &b[..]], Vec::new(), &ReaderOptions::default()).unwrap_err();
        assert!(matches!(e, ArchiveError::Chain { .. }), "{e}");
        let e = merge_chain(vec![&b[..]], Vec::new(), &ReaderOptions::default()).unwrap_err();
        assert!(e.to_string().contains("full backup"), "{e}");
        // A restore of one link alone sees the incremental header.
        let r = ArchiveReader::new(&b[..], ReaderOptions::default()).unwrap();
        assert_eq!(r.incremental().map(|h| h.since), Some(3));
        // Messages at or below `since` cannot be written into an incremental archive.
        let mut w = ArchiveWriter::incremental(Vec::new(), &IncrementalHeader::default()).unwrap();
        w.state(&StreamStateJson {
            first_seq: 1,
            last_seq: 5,
            ..Default::default()
        })
        .unwrap();
        let mut w2 = ArchiveWriter::incremental(
            Vec::new(),
            &IncrementalHeader {
                since: 3,
                absent: vec![],
            },
        )
        .unwrap();
        w2.state(&StreamStateJson {
            first_seq: 1,
            last_seq: 5,
            ..Default::default()
        })
        .unwrap();
        assert!(w2.message(3, 0, b"a", b"", b"").is_err());
        assert!(w.message(1, 0, b"a", b"", b"").is_ok());
        // Bad ranges are rejected by the reader.
        let bad = IncrementalHeader {
            since: 5,
            absent: vec![(2, 3), (3, 4)],
        };
        assert!(bad.validate().is_err());
        assert_eq!(
            IncrementalHeader {
                since: 9,
                absent: vec![(1, 3), (5, 5)]
            }
            .absent_count(),
            4
        );
    }
}
