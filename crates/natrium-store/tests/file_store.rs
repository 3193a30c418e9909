//! File-store specific behaviour: recovery from torn tails and corruption, isolation of
//! damaged records, erase, space reclamation, locking, poisoning and recovery from it.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use natrium_store::conformance::Rng;
use natrium_store::{
    Durability, FileStore, FileStoreOptions, GroupMsg, InjectedFault, StoreConfig, StoreError,
    StreamStore, SubjectFilter,
};

fn opts(segment_size: u64) -> FileStoreOptions {
    FileStoreOptions {
        segment_size,
        ..Default::default()
    }
}

fn open(dir: &Path, segment_size: u64) -> FileStore {
    FileStore::open(dir, opts(segment_size)).expect("open")
}

/// A store with 4 KiB segments in `Interval(every)` durability.
fn open_interval(dir: &Path, every: Duration, config: StoreConfig) -> FileStore {
    FileStore::open(
        dir,
        FileStoreOptions {
            segment_size: 4096,
            durability: Durability::Interval(every),
            config,
            ..Default::default()
        },
    )
    .expect("open")
}

/// `Interval` with an hour's interval: nothing syncs but rolls and explicit syncs.
const HOUR: Duration = Duration::from_secs(3600);

/// A stopped store of `n` messages in 4 KiB segments, left as a crash would leave it
/// (`as_if_crashed`), and its segment files.
fn stopped_in_small_segments(n: u64) -> (tempfile::TempDir, Vec<PathBuf>) {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path(), 4096);
    fill(&s, n);
    drop(s);
    as_if_crashed(d.path());
    let segs = segments(d.path());
    assert!(segs.len() > 3, "small segments roll");
    (d, segs)
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir.join("msgs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

/// Make a cleanly stopped store look like one whose process died before stopping: remove
/// the empty segment a clean stop starts (its name records the last sequence).
fn as_if_crashed(dir: &Path) {
    for seg in segments(dir) {
        if fs::metadata(&seg).unwrap().len() <= 16 {
            fs::remove_file(seg).unwrap();
        }
    }
}

fn payload(seq: u64) -> Vec<u8> {
    format!("payload-{seq:08}-{}", "x".repeat((seq % 50) as usize)).into_bytes()
}

fn fill(s: &FileStore, n: u64) {
    for i in 1..=n {
        let (seq, _) = s.store_msg("f.x", b"", &payload(i), None).unwrap();
        assert_eq!(seq, i);
    }
}

#[test]
fn clean_reopen_reports_clean() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path(), 4096);
    assert!(s.recovery_report().is_clean());
    fill(&s, 200);
    assert!(s.segment_count() > 1, "small segments roll");
    drop(s);
    let s = open(d.path(), 4096);
    let r = s.recovery_report().clone();
    assert!(r.is_clean(), "{r:?}");
    assert_eq!((r.msgs, r.last_seq), (200, 200));
    for i in 1..=200 {
        assert_eq!(&s.load_msg(i).unwrap().payload[..], &payload(i)[..]);
    }
}

#[test]
fn second_open_is_locked() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path(), 4096);
    assert!(matches!(
        FileStore::open(d.path(), opts(4096)),
        Err(StoreError::Locked { .. })
    ));
    drop(s);
    let s = open(d.path(), 4096);
    // stop() releases the lock even while the stopped object is still referenced.
    s.stop().unwrap();
    let s2 = open(d.path(), 4096);
    assert!(matches!(s.load_msg(1), Err(StoreError::Closed)));
    drop(s2);
}

#[test]
fn torn_tail_truncated_at_random_points() {
    let mut rng = Rng::new(77);
    for round in 0..25u64 {
        let d = tempfile::tempdir().unwrap();
        let s = open(d.path(), 1 << 20);
        fill(&s, 40);
        drop(s);
        as_if_crashed(d.path());
        let seg = segments(d.path()).pop().unwrap();
        let len = fs::metadata(&seg).unwrap().len();
        // Cut somewhere inside the last ~5 records.
        let cut = len - 1 - rng.below(400.min(len - 17));
        let f = fs::OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(cut).unwrap();
        drop(f);
        let s = open(d.path(), 1 << 20);
        let r = s.recovery_report().clone();
        assert_eq!(r.truncated.len(), 1, "round {round}: {r:?}");
        assert!(r.corrupt.is_empty(), "round {round}: {r:?}");
        let st = s.state();
        assert!(st.last_seq < 40 && st.last_seq >= 30, "round {round}");
        for i in 1..=st.last_seq {
            assert_eq!(&s.load_msg(i).unwrap().payload[..], &payload(i)[..]);
        }
        // The store takes publishes again right away (nats-server #7704).
        let (seq, _) = s.store_msg("f.x", b"", b"after", None).unwrap();
        assert_eq!(seq, st.last_seq + 1);
        drop(s);
        let s = open(d.path(), 1 << 20);
        assert!(s.recovery_report().is_clean(), "round {round}");
        assert_eq!(&s.load_msg(seq).unwrap().payload[..], b"after");
    }
}

#[test]
fn clean_stop_keeps_last_seq_when_the_tail_is_lost() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path(), 1 << 20);
    fill(&s, 40);
    drop(s);
    // Lose the end of the data segment after a clean stop (a cut file, a bad block).
    let data = segments(d.path())
        .into_iter()
        .rfind(|p| fs::metadata(p).unwrap().len() > 16)
        .unwrap();
    let len = fs::metadata(&data).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&data)
        .unwrap()
        .set_len(len - 300)
        .unwrap();
    let s = open(d.path(), 1 << 20);
    assert!(s.state().msgs < 40);
    assert_eq!(
        s.state().last_seq,
        40,
        "sequences handed out are never reused"
    );
    assert_eq!(s.append_msg("a", b"", b"x", None).unwrap().seq, 41);
}

#[test]
fn garbage_appended_to_tail_is_cut() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path(), 1 << 20);
    fill(&s, 10);
    drop(s);
    let seg = segments(d.path()).pop().unwrap();
    let mut raw = fs::read(&seg).unwrap();
    let good = raw.len() as u64;
    raw.extend_from_slice(&[0xAB; 333]);
    fs::write(&seg, &raw).unwrap();
    let s = open(d.path(), 1 << 20);
    let r = s.recovery_report();
    assert_eq!(r.truncated[0].offset, good);
    assert_eq!(r.truncated[0].dropped, 333);
    assert_eq!(s.state().msgs, 10);
}

/// Finds the offset of `needle` in a file.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn flipped_payload_byte_is_isolated_on_open() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path(), 1 << 20);
    fill(&s, 30);
    drop(s);
    as_if_crashed(d.path());
    let seg = segments(d.path()).pop().unwrap();
    let mut raw = fs::read(&seg).unwrap();
    let at = find(&raw, b"payload-00000012").unwrap();
    raw[at + 3] ^= 0x01;
    fs::write(&seg, &raw).unwrap();
    let s = open(d.path(), 1 << 20);
    let r = s.recovery_report().clone();
    assert_eq!(r.corrupt.len(), 1, "{r:?}");
    assert_eq!(r.corrupt[0].seq, Some(12));
    assert!(r.truncated.is_empty());
    assert!(matches!(s.load_msg(12), Err(StoreError::NotFound)));
    for i in (1..=30).filter(|&i| i != 12) {
        assert_eq!(&s.load_msg(i).unwrap().payload[..], &payload(i)[..]);
    }
    let st = s.state();
    assert_eq!(
        (st.msgs, st.last_seq, st.deleted.clone()),
        (29, 30, vec![12])
    );
    assert_eq!(s.store_msg("f.x", b"", b"new", None).unwrap().0, 31);
}

#[test]
fn flipped_header_byte_resyncs() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path(), 1 << 20);
    fill(&s, 30);
    drop(s);
    as_if_crashed(d.path());
    let seg = segments(d.path()).pop().unwrap();
    let mut raw = fs::read(&seg).unwrap();
    // The record header sits 48 + 3 ("f.x") bytes before the payload.
    let at = find(&raw, b"payload-00000020").unwrap() - 51;
    raw[at + 14] ^= 0x40; // inside the sequence field
    fs::write(&seg, &raw).unwrap();
    let s = open(d.path(), 1 << 20);
    let r = s.recovery_report().clone();
    assert_eq!(r.corrupt.len(), 1, "{r:?}");
    assert_eq!(r.corrupt[0].seq, None, "header damage: sequence unknown");
    assert!(matches!(s.load_msg(20), Err(StoreError::NotFound)));
    assert_eq!(&s.load_msg(21).unwrap().payload[..], &payload(21)[..]);
    assert_eq!(s.state().msgs, 29);
}

#[test]
fn random_corruption_never_serves_bad_data() {
    let mut rng = Rng::new(4242);
    for round in 0..20 {
        let d = tempfile::tempdir().unwrap();
        let s = open(d.path(), 8192);
        fill(&s, 120);
        drop(s);
        as_if_crashed(d.path());
        let segs = segments(d.path());
        // Damage a few random bytes in random segments, and sometimes truncate one.
        for _ in 0..1 + rng.below(4) {
            let seg = &segs[rng.below(segs.len() as u64) as usize];
            let mut raw = fs::read(seg).unwrap();
            if raw.len() <= 16 {
                continue;
            }
            let at = 16 + rng.below(raw.len() as u64 - 16) as usize;
            raw[at] ^= 1 + rng.below(255) as u8;
            if rng.below(4) == 0 {
                raw.truncate(16 + rng.below((raw.len() - 16) as u64) as usize);
            }
            fs::write(seg, &raw).unwrap();
        }
        let s = open(d.path(), 8192);
        let r = s.recovery_report().clone();
        assert!(!r.is_clean(), "round {round}: damage went unnoticed");
        // Every message served is byte-for-byte what was stored.
        let mut served = 0;
        for i in 1..=120 {
            match s.load_msg(i) {
                Ok(m) => {
                    assert_eq!(&m.payload[..], &payload(i)[..], "round {round} seq {i}");
                    assert_eq!(m.subject, "f.x");
                    served += 1;
                }
                Err(StoreError::NotFound) | Err(StoreError::Eof) => {}
                Err(e) => panic!("round {round} seq {i}: {e}"),
            }
        }
        assert!(served > 0);
        assert_eq!(served, s.state().msgs, "round {round}");
        // And the store keeps working.
        s.store_msg("f.x", b"", b"more", None).unwrap();
    }
}

#[test]
fn corruption_found_on_read_is_isolated() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path(), 1 << 20);
    fill(&s, 10);
    let seg = segments(d.path()).pop().unwrap();
    let mut raw = fs::read(&seg).unwrap();
    let at = find(&raw, b"payload-00000005").unwrap();
    raw[at] ^= 0x20;
    // Rewrite in place (same inode, the store keeps its handle).
    let f = fs::OpenOptions::new().write(true).open(&seg).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(&raw, 0).unwrap();
    drop(f);
    assert!(matches!(
        s.load_msg(5),
        Err(StoreError::Corrupt {
            location: natrium_store::CorruptLocation::Seq(5),
            ..
        })
    ));
    assert_eq!(s.lost_msgs(), vec![5]);
    assert!(matches!(s.load_msg(5), Err(StoreError::NotFound)));
    // Consumers step over it.
    assert_eq!(s.load_next_msg(&SubjectFilter::all(), 5).unwrap().seq, 6);
    assert_eq!(s.state().msgs, 9);
}

#[test]
fn erase_overwrites_bytes_on_disk() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path(), 1 << 20);
    s.store_msg("secret.a", b"", b"TOP-SECRET-PAYLOAD-1", None)
        .unwrap();
    s.store_msg("secret.b", b"", b"keep-me", None).unwrap();
    s.remove_msg(2).unwrap();
    let all = |d: &Path| -> Vec<u8> {
        segments(d)
            .iter()
            .flat_map(|p| fs::read(p).unwrap())
            .collect()
    };
    assert!(find(&all(d.path()), b"TOP-SECRET-PAYLOAD-1").is_some());
    assert!(s.erase_msg(1).unwrap());
    let bytes = all(d.path());
    assert!(find(&bytes, b"TOP-SECRET-PAYLOAD-1").is_none());
    assert!(find(&bytes, b"secret.a").is_none(), "subject erased too");
    assert!(
        find(&bytes, b"keep-me").is_some(),
        "remove without erase keeps bytes"
    );
    drop(s);
    let s = open(d.path(), 1 << 20);
    assert!(s.recovery_report().is_clean(), "{:?}", s.recovery_report());
    let st = s.state();
    assert_eq!((st.msgs, st.last_seq), (0, 2));
}

/// Bytes of records in the segments: each file up to its last non-zero byte (the
/// active segment is preallocated ahead of its records, a bounded amount of zeros that
/// holds no data; see `preallocated_tail_is_a_clean_end_after_a_crash`).
fn dir_bytes(dir: &Path) -> u64 {
    segments(dir)
        .iter()
        .map(|p| {
            let b = fs::read(p).unwrap();
            b.iter().rposition(|&x| x != 0).map_or(0, |i| i as u64 + 1)
        })
        .sum()
}

#[test]
fn purge_and_expiry_give_space_back() {
    let d = tempfile::tempdir().unwrap();
    let clock = natrium_store::ManualClock::new(1_000_000_000_000);
    let s = FileStore::open(
        d.path(),
        FileStoreOptions {
            segment_size: 4096,
            config: StoreConfig {
                max_age: Some(Duration::from_secs(60)),
                ..Default::default()
            },
            clock: clock.clone(),
            ..Default::default()
        },
    )
    .unwrap();
    for i in 0..300 {
        s.store_msg("e", b"", &[7u8; 100], None).unwrap();
        if i == 149 {
            clock.advance(Duration::from_secs(30));
        }
    }
    let before = dir_bytes(d.path());
    let segs_before = s.segment_count();
    assert!(segs_before > 8);
    // The first 150 messages are past max_age.
    let now = 1_000_000_000_000 + 61_000_000_000;
    assert_eq!(s.expire(now).unwrap().removed, 150);
    assert!(s.segment_count() < segs_before);
    assert!(dir_bytes(d.path()) < before * 2 / 3);
    assert_eq!(segments(d.path()).len(), s.segment_count());
    assert_eq!(s.purge().unwrap(), 150);
    assert_eq!(s.segment_count(), 1);
    assert!(dir_bytes(d.path()) < 200);
    drop(s);
    let s = open(d.path(), 4096);
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (0, 301, 300));
}

#[test]
fn work_queue_style_removal_reclaims_front_segments() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path(), 4096);
    fill(&s, 400);
    let n = s.segment_count();
    for i in 1..=390 {
        assert!(s.remove_msg(i).unwrap());
    }
    // Data segments are gone; what remains is the segment holding the 10 live
    // messages plus the (small) removal records written after it.
    assert!(s.segment_count() < n, "{} vs {n}", s.segment_count());
    drop(s);
    let s = open(d.path(), 4096);
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (10, 391, 400));
    for i in 391..=400 {
        s.remove_msg(i).unwrap();
    }
    assert_eq!(
        s.segment_count(),
        1,
        "everything dead: only the active segment stays"
    );
    assert!(dir_bytes(d.path()) < 4096);
}

#[test]
fn fsync_failure_poisons_then_recovers() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path(), 4096);
    fill(&s, 20);
    s.inject_fault(InjectedFault::Fsync);
    let e = s.store_msg("f.x", b"", b"lost?", None).unwrap_err();
    assert!(matches!(e, StoreError::Poisoned { .. }), "{e}");
    assert!(s.poisoned().unwrap().contains("fsync"));
    // Loud and sticky: no silent retry.
    assert!(matches!(
        s.store_msg("f.x", b"", b"x", None),
        Err(StoreError::Poisoned { .. })
    ));
    // Reads work; the unacknowledged message is not served.
    assert_eq!(&s.load_msg(20).unwrap().payload[..], &payload(20)[..]);
    assert!(s.load_msg(21).is_err());
    // Deletes and purges keep working (they go to a fresh segment).
    assert!(s.remove_msg(3).unwrap());
    assert_eq!(s.purge_ex(&SubjectFilter::all(), 6, 0).unwrap(), 4);
    // Recover: publishing resumes, sequence 21 is not reused.
    let rep = s.try_recover().unwrap();
    assert!(!rep.notes.is_empty());
    assert!(s.poisoned().is_none());
    // The rebuilt index reports through the same lock-free gauge.
    assert_eq!(s.stored_bytes(), s.fast_state().bytes);
    assert!(s.stored_bytes() > 0);
    let (seq, _) = s.store_msg("f.x", b"", b"after", None).unwrap();
    assert_eq!(seq, 22);
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq), (16, 6));
    drop(s);
    let s = open(d.path(), 4096);
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (16, 6, 22));
    for i in 6..=20 {
        assert_eq!(&s.load_msg(i).unwrap().payload[..], &payload(i)[..]);
    }
    assert_eq!(&s.load_msg(22).unwrap().payload[..], b"after");
}

#[test]
fn write_failure_enospc_then_space_freed() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path(), 1 << 20);
    fill(&s, 50);
    s.inject_fault(InjectedFault::Write);
    assert!(d.path().join("space.reserve").exists());
    let e = s.store_msg("f.x", b"", b"no space", None).unwrap_err();
    // A full disk is its own, recoverable error, not a poisoning for good.
    assert!(matches!(e, StoreError::NoSpace { .. }), "{e}");
    assert!(s.is_out_of_space());
    assert!(
        s.poisoned().unwrap().contains("os error 28"),
        "{:?}",
        s.poisoned()
    );
    // The reserve was released so removals have room.
    assert!(!d.path().join("space.reserve").exists());
    // Operator frees space by purging; appends then recover by themselves (no
    // try_recover, no reopen) once the retry interval has passed.
    assert_eq!(s.purge().unwrap(), 50);
    std::thread::sleep(natrium_store::file::NOSPACE_RETRY + std::time::Duration::from_millis(20));
    let (seq, _) = s.store_msg("f.x", b"", b"space again", None).unwrap();
    assert_eq!(seq, 52);
    assert!(!s.is_out_of_space());
    assert!(d.path().join("space.reserve").exists());
    drop(s);
    let s = open(d.path(), 1 << 20);
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (1, 52, 52));
}

/// A group whose append fails part way (here: a full disk after a segment roll has
/// fsynced the group's first records) is taken back, and stays taken back when the
/// store recovers from the full disk in place, although part of it is on disk and its
/// truncate record is not.
#[test]
fn a_failed_group_stays_taken_back_after_recovery_in_place() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path(), 4096);
    s.store_msg("before", b"", b"0", None).unwrap();
    let payload = vec![b'x'; 500];
    let group: Vec<GroupMsg<'_>> = (0..24)
        .map(|_| GroupMsg {
            subject: "g",
            hdrs: b"",
            payload: &payload,
            ttl: None,
            skip: false,
        })
        .collect();
    // The first roll's write succeeds (and is fsynced), the next write fails.
    s.inject_fault(InjectedFault::WriteAfter(1));
    let e = s.append_group(&group).unwrap_err();
    assert!(matches!(e, StoreError::NoSpace { .. }), "{e}");
    assert_eq!(s.state().last_seq, 1, "taken back at once");
    let report = s.try_recover().unwrap();
    let st = s.state();
    assert_eq!((st.msgs, st.last_seq), (1, 1), "{report:?}");
    assert!(
        report.notes.iter().any(|n| n.contains("took back")),
        "{report:?}"
    );
    // Publishing goes on after it, and a reopen agrees.
    let (seq, _) = s.store_msg("after", b"", b"1", None).unwrap();
    assert_eq!(seq, 2);
    drop(s);
    let s = open(d.path(), 4096);
    let st = s.state();
    assert_eq!((st.msgs, st.last_seq), (2, 2));
    assert_eq!(s.load_msg(2).unwrap().subject, "after");
}

#[test]
fn group_commit_many_writers() {
    let d = tempfile::tempdir().unwrap();
    let s = std::sync::Arc::new(open(d.path(), 1 << 20));
    std::thread::scope(|sc| {
        for t in 0..8u8 {
            let s = s.clone();
            sc.spawn(move || {
                for i in 0..100u32 {
                    let mut p = vec![t];
                    p.extend_from_slice(&i.to_le_bytes());
                    s.store_msg(&format!("g.{t}"), b"", &p, None).unwrap();
                }
            });
        }
    });
    assert_eq!(s.state().msgs, 800);
    // Writers waiting together share fsyncs.
    assert!(s.group_fsyncs() < 800, "{} fsyncs", s.group_fsyncs());
    for t in 0..8u8 {
        let f = SubjectFilter::new(&format!("g.{t}")).unwrap();
        assert_eq!(s.filtered_state(0, &f).msgs, 100);
        // Per-subject order is publish order.
        let mut seq = 0;
        for i in 0..100u32 {
            let m = s.load_next_msg(&f, seq + 1).unwrap();
            assert_eq!(&m.payload[1..], &i.to_le_bytes());
            seq = m.seq;
        }
    }
}

#[test]
fn one_fsync_covers_every_pending_append() {
    // A publisher with many acks in flight: everything appended before the wait is made
    // durable by one fsync, and waiting on any earlier ticket costs none.
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path(), 1 << 20);
    let tickets: Vec<_> = (0..500u64)
        .map(|i| s.append_msg("p.a", b"", &payload(i), None).unwrap().ticket)
        .collect();
    let before = s.group_fsyncs();
    s.wait_durable(tickets[499]).unwrap();
    assert_eq!(s.group_fsyncs(), before + 1);
    for t in &tickets {
        s.wait_durable(*t).unwrap();
    }
    assert_eq!(s.group_fsyncs(), before + 1);
    assert_eq!(s.load_msg(500).unwrap().payload, payload(499));
}

#[test]
fn interval_mode_reports_mode_and_flushes() {
    let d = tempfile::tempdir().unwrap();
    let s = FileStore::open(
        d.path(),
        FileStoreOptions {
            durability: Durability::Interval(Duration::from_millis(20)),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        s.durability(),
        Durability::Interval(Duration::from_millis(20))
    );
    let ack = s.append_msg("i", b"", b"v", None).unwrap();
    // Visible right away in interval mode.
    assert_eq!(s.load_msg(ack.seq).unwrap().seq, 1);
    s.wait_durable(ack.ticket).unwrap();
    std::thread::sleep(Duration::from_millis(60));
    drop(s);
    let s = open(d.path(), 1 << 20);
    assert_eq!(s.state().msgs, 1);
}

#[test]
fn interval_mode_keeps_its_interval_while_a_writer_rolls_fast() {
    let d = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        max_msgs: Some(100),
        ..Default::default()
    };
    let s = open_interval(d.path(), Duration::from_millis(20), config);
    // Every few appends roll a segment and wake the flusher for the put-off work; the
    // interval's full syncs (the active segment, the consumers) must still come while
    // the writer goes on. Measured: 0.3-0.5 s for three (with a CI run alongside); with
    // the put-off wake-up checked first, 0 in the first 400 ms and 7.5 s for three.
    let start = std::time::Instant::now();
    let mut i = 1u64;
    while s.group_fsyncs() < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{} interval syncs in 5 s at 20 ms while appending",
            s.group_fsyncs()
        );
        s.store_msg("f.x", b"", &payload(i), None).unwrap();
        i += 1;
    }
    assert_eq!(s.state().last_seq + 1, i, "every append stored");
}

#[test]
fn always_mode_hides_undurable_appends() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path(), 1 << 20);
    assert_eq!(s.durability(), Durability::Always);
    let ack = s.append_msg("a", b"", b"v", None).unwrap();
    assert!(matches!(s.load_msg(ack.seq), Err(StoreError::Eof)));
    assert!(matches!(
        s.load_next_msg(&SubjectFilter::all(), 0),
        Err(StoreError::Eof)
    ));
    s.wait_durable(ack.ticket).unwrap();
    assert_eq!(&s.load_msg(ack.seq).unwrap().payload[..], b"v");
}

#[test]
fn format_file_is_checked() {
    let d = tempfile::tempdir().unwrap();
    drop(open(d.path(), 4096));
    let p = d.path().join("store.nmeta");
    let mut raw = fs::read(&p).unwrap();
    raw[4] = 99; // version
    let crc_at = raw.len() - 4;
    let crc = crc32c_of(&raw[..crc_at]);
    raw[crc_at..].copy_from_slice(&crc.to_le_bytes());
    fs::write(&p, &raw).unwrap();
    assert!(matches!(
        FileStore::open(d.path(), opts(4096)),
        Err(StoreError::UnsupportedVersion { found: 99, .. })
    ));
}

/// CRC-32C (Castagnoli), bitwise; only used to forge a valid-but-newer metadata file.
fn crc32c_of(b: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &x in b {
        crc ^= u32::from(x);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A store of small (4 KiB) segments whose appends stay in the write buffer until
/// `sync` (an hour's interval durability), so reads see buffered and written records.
fn open_unsynced(dir: &Path) -> FileStore {
    open_interval(dir, HOUR, StoreConfig::default())
}

/// Damage the record in the middle of a segment file.
fn flip_middle_byte(seg: &Path) {
    let mut bytes = fs::read(seg).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(seg, &bytes).unwrap();
}

/// All messages of `s` in `[start, end]` through `read_batch` with a small batch size.
fn batched(
    s: &FileStore,
    start: u64,
    end: u64,
    max_bytes: usize,
) -> Vec<(u64, i64, String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut seq = start;
    let mut calls = 0;
    while seq <= end {
        calls += 1;
        assert!(calls < 100_000, "read_batch made no progress");
        seq = s
            .read_batch(seq, end, max_bytes, &mut |m| {
                out.push((m.seq, m.ts, m.subject.to_string(), m.payload.to_vec()));
                true
            })
            .unwrap();
    }
    out
}

/// The same through `load_next_msg`.
fn one_by_one(s: &FileStore, start: u64, end: u64) -> Vec<(u64, i64, String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut seq = start;
    while let Ok(m) = s.load_next_msg(&SubjectFilter::all(), seq) {
        if m.seq > end {
            break;
        }
        out.push((m.seq, m.ts, m.subject.clone(), m.payload.to_vec()));
        seq = m.seq + 1;
    }
    out
}

/// Append messages 1..=n with payloads of random length below `max_len` (seeded), on
/// `{prefix}.{seq % subjects}`, and timestamps of ten times their sequence.
fn append_varied(s: &FileStore, n: u64, seed: u64, max_len: u64, prefix: &str, subjects: u64) {
    let mut rng = Rng::new(seed);
    for i in 1..=n {
        let len = (rng.next_u64() % max_len) as usize;
        let payload = vec![(i % 251) as u8; len];
        let subject = format!("{prefix}.{}", i % subjects);
        s.append_raw_msg(&subject, b"", &payload, i, i as i64 * 10, None, false)
            .unwrap();
    }
}

#[test]
fn read_batch_matches_single_loads() {
    let d = tempfile::tempdir().unwrap();
    let s = open_unsynced(d.path());
    append_varied(&s, 400, 7, 300, "a", 7);
    for seq in [1u64, 2, 50, 51, 52, 199, 300, 400] {
        s.remove_msg(seq).unwrap();
    }
    // Part of the tail is still in the write buffer (interval durability, no sync).
    for (start, end) in [(1u64, 400u64), (3, 398), (50, 52), (401, 500), (1, 1000)] {
        let want = one_by_one(&s, start, end);
        for max in [1usize, 100, 1000, 1 << 20] {
            assert_eq!(
                batched(&s, start, end, max),
                want,
                "[{start}, {end}] by {max}"
            );
        }
    }
    // Stopping early returns the sequence after the last message handed out.
    let mut seen = 0;
    let next = s
        .read_batch(3, 400, 1 << 20, &mut |_| {
            seen += 1;
            seen < 5
        })
        .unwrap();
    assert_eq!(next, 8);
    s.sync().unwrap();
    assert_eq!(batched(&s, 1, 400, 4096), one_by_one(&s, 1, 400));
    // A damaged record is isolated and skipped, as by single loads.
    let before = one_by_one(&s, 1, 400);
    flip_middle_byte(&segments(d.path())[2]);
    let got = batched(&s, 1, 400, 1 << 20);
    assert!(got.len() < before.len(), "the damaged message is left out");
    assert_eq!(got, one_by_one(&s, 1, 400));
}

/// All messages of a pinned view up to `watermark`, through `next_batch` (which reads
/// ahead on helper threads, see `read_ahead.rs`).
fn view_batched(
    s: &FileStore,
    watermark: u64,
    max_bytes: usize,
) -> Vec<(u64, i64, String, Vec<u8>)> {
    let mut v = s.pinned_view(watermark).unwrap();
    let mut batch = natrium_store::stream::MsgBatch::default();
    let mut out = Vec::new();
    let mut calls = 0;
    while v.next_batch(s, max_bytes, &mut batch).unwrap() {
        calls += 1;
        assert!(calls < 100_000, "next_batch made no progress");
        for m in batch.iter() {
            out.push((m.seq, m.ts, m.subject.to_string(), m.payload.to_vec()));
        }
    }
    out
}

/// A view's batches, read ahead of the reader across many segments (written, and still
/// in the page cache or not), give exactly what single loads give, and a damaged record
/// read ahead is still caught: left out, as by single loads.
#[test]
fn view_batches_read_ahead_match_single_loads() {
    let d = tempfile::tempdir().unwrap();
    let s = open_unsynced(d.path());
    append_varied(&s, 600, 11, 700, "v", 5);
    for seq in [1u64, 77, 78, 300, 599] {
        s.remove_msg(seq).unwrap();
    }
    s.sync().unwrap();
    assert!(
        segments(d.path()).len() > 20,
        "many segments to read across"
    );
    let want = one_by_one(&s, 1, 600);
    let counts = natrium_store::file::read_ahead_counts;
    let before = counts();
    for max in [1usize, 700, 5000, 1 << 20] {
        assert_eq!(view_batched(&s, 600, max), want, "by {max}");
    }
    let cached = counts();
    assert!(cached.runs - before.runs > 100, "batches came read ahead");
    assert_eq!(
        cached.fallbacks, before.fallbacks,
        "every run verified as read ahead"
    );
    // Out of the page cache too (the helpers then read around it, where the
    // filesystem allows).
    for seg in segments(d.path()) {
        drop_from_cache(&seg);
    }
    assert_eq!(view_batched(&s, 600, 5000), want);
    assert_eq!(view_batched(&s, 450, 3000), one_by_one(&s, 1, 450));
    let cold = counts();
    assert_eq!(cold.fallbacks, before.fallbacks);
    if direct_io_works(d.path()) {
        assert!(cold.direct > cached.direct, "read around the page cache");
    }
    let mut damaged = segments(d.path());
    damaged.sort();
    flip_middle_byte(&damaged[7]);
    drop_from_cache(&damaged[7]);
    let got = view_batched(&s, 600, 5000);
    assert!(got.len() < want.len(), "the damaged message is left out");
    assert_eq!(got, one_by_one(&s, 1, 600));
    assert_eq!(
        counts().fallbacks,
        before.fallbacks + 1,
        "caught as read ahead"
    );
}

/// Whether files in `dir` can be opened for `O_DIRECT` reads.
fn direct_io_works(dir: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    let p = dir.join("direct.probe");
    fs::write(&p, [0u8; 4096]).unwrap();
    let ok = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(&p)
        .is_ok();
    fs::remove_file(&p).unwrap();
    ok
}

/// Ask the kernel to drop a (clean, synced) file's pages from the page cache.
fn drop_from_cache(path: &Path) {
    use std::os::fd::AsRawFd;
    let f = fs::File::open(path).unwrap();
    f.sync_all().unwrap();
    // SAFETY: plain integers; the descriptor is open for the call.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0);
}

/// All messages of `s` from `start` on through `load_next_run` runs of at most `max_msgs`.
fn by_runs(
    s: &FileStore,
    start: u64,
    max_msgs: usize,
    max_bytes: usize,
) -> Vec<(u64, i64, String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut seq = start;
    for _ in 0..100_000 {
        let run = s.load_next_run(seq, max_msgs, max_bytes).unwrap();
        let Some(last) = run.last() else {
            return out;
        };
        assert!(run.len() <= max_msgs.max(1), "at most max_msgs");
        seq = last.seq + 1;
        for m in run {
            out.push((m.seq, m.ts, m.subject.clone(), m.payload.to_vec()));
        }
    }
    panic!("load_next_run made no progress");
}

#[test]
fn load_next_run_matches_single_loads() {
    let d = tempfile::tempdir().unwrap();
    let s = open_unsynced(d.path());
    let mut rng = Rng::new(11);
    for i in 1..=300u64 {
        let len = (rng.next_u64() % 200) as usize;
        let hdrs: &[u8] = if i % 5 == 0 {
            b"NATS/1.0\r\nA: b\r\n\r\n"
        } else {
            b""
        };
        s.append_raw_msg(
            &format!("r.{}", i % 3),
            hdrs,
            &vec![(i % 251) as u8; len],
            i,
            i as i64,
            None,
            false,
        )
        .unwrap();
    }
    for seq in [1u64, 40, 41, 150, 299] {
        s.remove_msg(seq).unwrap();
    }
    // Part of the tail is still in the write buffer (interval durability, no sync).
    let want = one_by_one(&s, 0, u64::MAX - 1);
    for (max_msgs, max_bytes) in [(1usize, 1usize), (7, 1 << 20), (128, 300), (128, 1 << 20)] {
        assert_eq!(
            by_runs(&s, 0, max_msgs, max_bytes),
            want,
            "{max_msgs} / {max_bytes}"
        );
        assert_eq!(
            by_runs(&s, 41, max_msgs, max_bytes),
            one_by_one(&s, 41, u64::MAX - 1)
        );
    }
    // Headers come back too, and a run holds every stored message it spans.
    s.sync().unwrap();
    let run = s.load_next_run(42, 10, 1 << 20).unwrap();
    let seqs: Vec<u64> = run.iter().map(|m| m.seq).collect();
    let last = *seqs.last().unwrap();
    assert!(seqs.len() > 1, "adjacent records come in one run: {seqs:?}");
    let stored: Vec<u64> = one_by_one(&s, 42, last).iter().map(|m| m.0).collect();
    assert_eq!(seqs, stored);
    let run = s.load_next_run(40, 10, 1 << 20).unwrap();
    assert_eq!(
        run.first().map(|m| m.seq),
        Some(42),
        "deleted ones are skipped"
    );
    for m in &run {
        assert_eq!(
            m.hdrs,
            s.load_msg(m.seq).unwrap().hdrs,
            "headers of {}",
            m.seq
        );
    }
    assert!(
        s.load_next_run(301, 10, 1 << 20).unwrap().is_empty(),
        "nothing past the end"
    );
    // A damaged record ends the run before it, and is isolated when it comes first.
    let before = one_by_one(&s, 0, u64::MAX - 1);
    flip_middle_byte(&segments(d.path())[2]);
    let got = by_runs(&s, 0, 128, 1 << 20);
    assert!(got.len() < before.len(), "the damaged message is left out");
    assert_eq!(got, one_by_one(&s, 0, u64::MAX - 1));
}

/// Copies a live store's directory (what a crash leaves on disk: the store fsyncs before
/// every `store_msg` returns) into `to`.
fn copy_live(from: &Path, to: &Path) {
    fs::create_dir_all(to.join("msgs")).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
    for seg in segments(from) {
        fs::copy(&seg, to.join("msgs").join(seg.file_name().unwrap())).unwrap();
    }
}

/// A store holding `n` messages as a crash leaves it (see [`copy_live`]).
fn crashed_with(n: u64) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path(), 8 << 20);
    fill(&s, n);
    let crashed = tempfile::tempdir().unwrap();
    copy_live(d.path(), crashed.path());
    crashed
}

#[test]
fn preallocated_tail_is_a_clean_end_after_a_crash() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path(), 8 << 20);
    fill(&s, 40);
    let written: u64 = 16
        + (1..=40u64)
            .map(|i| s.load_msg(i).unwrap().payload.len() as u64)
            .sum::<u64>();
    let active = segments(d.path()).pop().unwrap();
    let on_disk = fs::metadata(&active).unwrap().len();
    assert!(
        on_disk > written && on_disk <= written + natrium_store::file::segment::PREALLOC_STEP,
        "the active segment is preallocated a bounded step ahead of its records: \
         {on_disk} bytes for {written}"
    );
    // The process dies here: the file ends in zeros that were never written.
    let crashed = tempfile::tempdir().unwrap();
    copy_live(d.path(), crashed.path());
    drop(s);
    let s = open(crashed.path(), 8 << 20);
    let r = s.recovery_report().clone();
    assert!(
        r.is_clean(),
        "zeros past the last record are no damage: {r:?}"
    );
    assert_eq!((r.msgs, r.last_seq), (40, 40));
    for i in 1..=40 {
        assert_eq!(&s.load_msg(i).unwrap().payload[..], &payload(i)[..]);
    }
    let seg = segments(crashed.path()).pop().unwrap();
    assert!(
        fs::metadata(&seg).unwrap().len() < on_disk,
        "recovery cut the zeros off"
    );
    let (seq, _) = s.store_msg("f.x", b"", b"after", None).unwrap();
    assert_eq!(seq, 41);
    // A clean stop leaves no preallocated space behind in the finished segment.
    drop(s);
    let lens: Vec<u64> = segments(crashed.path())
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .collect();
    assert!(lens.iter().all(|&l| l < 1 << 20), "{lens:?}");
    let s = open(crashed.path(), 8 << 20);
    assert!(s.recovery_report().is_clean());
    assert_eq!(&s.load_msg(41).unwrap().payload[..], b"after");
}

#[test]
fn a_partial_record_before_preallocated_zeros_is_a_torn_tail() {
    let crashed = crashed_with(10);
    // A record's first bytes reached the disk, the rest of the file is still zeros.
    let seg = segments(crashed.path()).pop().unwrap();
    let bytes = fs::read(&seg).unwrap();
    let end = bytes.iter().rposition(|&b| b != 0).unwrap() as u64 + 1;
    assert!(bytes.len() as u64 > end + 100, "zeros follow the records");
    let f = fs::OpenOptions::new().write(true).open(&seg).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(&[0xC1, 0, 0, 0, 1, 0, 7], end).unwrap();
    drop(f);
    let s = open(crashed.path(), 8 << 20);
    let r = s.recovery_report().clone();
    assert_eq!(r.truncated.len(), 1, "{r:?}");
    assert_eq!(r.truncated[0].offset, end);
    assert_eq!(r.msgs, 10);
    assert!(r.corrupt.is_empty(), "{r:?}");
}

#[test]
fn interval_mode_puts_off_a_finished_segments_fsync_but_never_loses_it() {
    let d = tempfile::tempdir().unwrap();
    let s = open_unsynced(d.path());
    fill(&s, 300);
    assert!(s.segment_count() > 5, "small segments roll");
    // A roll leaves the finished segment's fsync to the flusher thread (or, with too
    // many queued, to a later roll). A failing fsync there poisons, as any failed
    // fsync, and the writer hears of it.
    s.inject_fault(InjectedFault::Fsync);
    let mut poisoned = None;
    // Enough rolls that, should the flusher be slow to run, a roll does the oldest
    // queued fsync itself (at most 4 wait).
    for i in 301..=3000u64 {
        if let Err(e) = s.store_msg("f.x", b"", &payload(i), None) {
            poisoned = Some((i, e));
            break;
        }
    }
    let (at, e) = poisoned.expect("the put-off fsync ran and failed");
    assert!(matches!(e, StoreError::Poisoned { .. }), "{e}");
    assert!(
        s.poisoned().unwrap().contains("fsync"),
        "{:?}",
        s.poisoned()
    );
    s.try_recover().unwrap();
    let st = s.state();
    assert!(st.last_seq >= 300 && st.last_seq < at, "{st:?}");
    // After a sync every segment is durable: a crash copy holds every message.
    s.sync().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    copy_live(d.path(), crashed.path());
    drop(s);
    let s = open_unsynced(crashed.path());
    assert!(s.recovery_report().is_clean(), "{:?}", s.recovery_report());
    assert_eq!(s.state().last_seq, st.last_seq);
    for i in 1..=300 {
        assert_eq!(&s.load_msg(i).unwrap().payload[..], &payload(i)[..]);
    }
}

#[test]
fn interval_mode_fsyncs_a_finished_segment_off_the_writers_thread() {
    let d = tempfile::tempdir().unwrap();
    let s = open_unsynced(d.path());
    fill(&s, 10);
    let segs = s.segment_count();
    // The next fsync fails. Append until exactly one roll, then stop writing: no
    // writer fsyncs anything (the interval is an hour away), so only the flusher,
    // woken by the roll, can run into the fault.
    s.inject_fault(InjectedFault::Fsync);
    let mut i = 11u64;
    while s.segment_count() == segs {
        s.store_msg("f.x", b"", &payload(i), None).unwrap();
        i += 1;
        assert!(i < 1000, "no roll");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while s.poisoned().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the finished segment's fsync never ran"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        s.poisoned().unwrap().contains("fsync"),
        "{:?}",
        s.poisoned()
    );
    let e = s.store_msg("f.x", b"", b"late", None).unwrap_err();
    assert!(matches!(e, StoreError::Poisoned { .. }), "{e}");
}

#[test]
fn a_preallocated_segment_without_its_header_is_empty_not_damaged() {
    let crashed = crashed_with(10);
    // A roll created the next segment and preallocated it, then the power went: the
    // file's length reached the disk, its header did not.
    let last = segments(crashed.path()).pop().unwrap();
    let name = last.file_name().unwrap().to_str().unwrap().to_string();
    let id: u32 = name[..10].parse().unwrap();
    let seg = crashed
        .path()
        .join("msgs")
        .join(format!("{:010}-{:020}.seg", id + 1, 11));
    fs::write(&seg, vec![0u8; 16 + (64 << 10)]).unwrap();
    let s = open(crashed.path(), 8 << 20);
    let r = s.recovery_report().clone();
    assert!(r.is_clean(), "no damage: {r:?}");
    assert_eq!((r.msgs, r.last_seq), (10, 10));
    assert_eq!(s.store_msg("f.x", b"", b"after", None).unwrap().0, 11);
    drop(s);
    let s = open(crashed.path(), 8 << 20);
    let r = s.recovery_report().clone();
    assert!(r.is_clean(), "the header was written again: {r:?}");
    assert_eq!(&s.load_msg(11).unwrap().payload[..], b"after");
}

#[test]
fn interval_mode_drops_a_put_off_segment_at_its_limits_and_syncs_the_rest() {
    let d = tempfile::tempdir().unwrap();
    let open_limited = |dir: &Path| {
        let config = StoreConfig {
            max_msgs: Some(5),
            ..Default::default()
        };
        open_interval(dir, HOUR, config)
    };
    let s = open_limited(d.path());
    // Each roll puts the finished segment's fsync off; with 5 messages kept, that
    // segment is dead and deleted a few appends later, while still put off.
    fill(&s, 300);
    assert!(s.segment_count() <= 3, "dead segments deleted");
    s.sync().unwrap();
    assert!(s.poisoned().is_none());
    let crashed = tempfile::tempdir().unwrap();
    copy_live(d.path(), crashed.path());
    drop(s);
    let s = open_limited(crashed.path());
    assert!(s.recovery_report().is_clean(), "{:?}", s.recovery_report());
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (5, 296, 300));
    for i in 296..=300 {
        assert_eq!(&s.load_msg(i).unwrap().payload[..], &payload(i)[..]);
    }
}

#[test]
fn a_lost_header_before_records_is_written_again() {
    use std::os::unix::fs::FileExt;
    let (d, segs) = stopped_in_small_segments(200);
    // An `Interval` store fsyncs a new segment's header with its first records: after
    // a crash the records may be on the disk and the header not.
    let f = fs::OpenOptions::new().write(true).open(&segs[1]).unwrap();
    f.write_all_at(&[0u8; 16], 0).unwrap();
    drop(f);
    let s = open(d.path(), 4096);
    let r = s.recovery_report().clone();
    assert!(r.corrupt.is_empty() && r.truncated.is_empty(), "{r:?}");
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("header was zeros before intact records")),
        "{r:?}"
    );
    assert_eq!((r.msgs, r.last_seq), (200, 200));
    for i in 1..=200 {
        assert_eq!(&s.load_msg(i).unwrap().payload[..], &payload(i)[..]);
    }
    drop(s);
    let s = open(d.path(), 4096);
    assert!(
        s.recovery_report().is_clean(),
        "the header was written again: {:?}",
        s.recovery_report()
    );
}

#[test]
fn an_older_segment_of_only_zeros_is_reported() {
    let (d, segs) = stopped_in_small_segments(200);
    // None of a middle segment's writes reached the disk, only its length did.
    let len = fs::metadata(&segs[1]).unwrap().len();
    fs::write(&segs[1], vec![0u8; len as usize]).unwrap();
    let s = open(d.path(), 4096);
    let r = s.recovery_report().clone();
    assert!(
        r.notes.iter().any(|n| n.contains("all zeros")),
        "a lost segment is no clean end: {r:?}"
    );
    assert_eq!(r.last_seq, 200);
    assert!(r.msgs < 200);
    assert_eq!(&s.load_msg(1).unwrap().payload[..], &payload(1)[..]);
    assert_eq!(&s.load_msg(200).unwrap().payload[..], &payload(200)[..]);
}

#[test]
fn a_small_stream_keeps_little_space_preallocated() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path(), 16 << 20);
    s.store_msg("kv.a", b"", b"v1", None).unwrap();
    let active = segments(d.path()).pop().unwrap();
    let len = fs::metadata(&active).unwrap().len();
    assert!(
        len > 16 && len <= 16 + 200 + natrium_store::file::segment::PREALLOC_MIN,
        "one small record preallocates the minimum step, not a full one: {len}"
    );
    // The step grows with what the segment holds.
    for i in 2..=8_000u64 {
        s.store_msg("kv.b", b"", &payload(i), None).unwrap();
    }
    let len = fs::metadata(&active).unwrap().len();
    let held: u64 = (2..=8_000u64).map(|i| payload(i).len() as u64).sum();
    assert!(
        len > held + natrium_store::file::segment::PREALLOC_MIN,
        "a segment holding {held} bytes preallocates more than the minimum: {len}"
    );
    assert!(len <= 16 << 20, "never past the segment size");
}

/// A store moved while open (a restore's staged store becoming the stream) keeps its
/// data and index, lives at the new place only, and takes the new durability: what is
/// appended afterwards is fsynced before it is acknowledged, and everything survives a
/// reopen there.
#[test]
fn an_open_store_moves_and_changes_durability() {
    let d = tempfile::tempdir().unwrap();
    let staging = d.path().join(".staging");
    let fin = d.path().join("FINAL");
    let s = open_unsynced(&staging);
    // Bulk-loaded without waiting, over several segments.
    for i in 1..=300u64 {
        s.append_raw_msg("f.x", b"", &payload(i), i, i as i64, None, false)
            .unwrap();
    }
    s.write_stream_meta(b"meta").unwrap();
    // An open consumer store would move under its owner: refused, nothing moved.
    let c = s
        .consumer_store("C", natrium_store::ConsumerPolicy::default())
        .unwrap();
    let e = s.move_dir(&fin, Durability::Always).unwrap_err();
    assert!(e.to_string().contains("consumer"), "{e}");
    assert!(staging.exists() && !fin.exists());
    c.stop().unwrap();
    // A target that exists is refused.
    fs::create_dir(&fin).unwrap();
    assert!(s.move_dir(&fin, Durability::Always).is_err());
    fs::remove_dir(&fin).unwrap();
    s.move_dir(&fin, Durability::Always).unwrap();
    assert!(!staging.exists());
    assert_eq!(s.dir(), fin);
    assert_eq!(s.durability(), Durability::Always);
    assert_eq!(s.fast_state().msgs, 300);
    assert_eq!(s.load_msg(150).unwrap().payload, payload(150));
    // Appends go on at the new place (new segments there), fsynced per `Always`.
    let before = s.group_fsyncs();
    for i in 301..=400u64 {
        let (seq, _) = s.store_msg("f.y", b"", &payload(i), None).unwrap();
        assert_eq!(seq, i);
    }
    assert!(
        s.group_fsyncs() > before,
        "no fsync after the switch to Always"
    );
    assert!(segments(&fin).len() > 1);
    assert_eq!(s.stream_meta().unwrap().as_deref(), Some(&b"meta"[..]));
    s.consumer_store("C", natrium_store::ConsumerPolicy::default())
        .unwrap()
        .stop()
        .unwrap();
    assert!(fin.join("consumers").join("C").exists());
    // Segments written before the move are given back at the new place when they die.
    let (segs, bytes) = (segments(&fin).len(), dir_bytes(&fin));
    assert_eq!(s.compact(351).unwrap(), 350);
    assert!(
        segments(&fin).len() < segs / 2,
        "{segs} -> {:?}",
        segments(&fin)
    );
    assert!(dir_bytes(&fin) < bytes / 2);
    s.stop().unwrap();
    drop(s);
    let r = open(&fin, 4096);
    assert!(r.recovery_report().is_clean(), "{:?}", r.recovery_report());
    assert_eq!(r.fast_state().msgs, 50);
    assert_eq!(r.fast_state().first_seq, 351);
    for i in [351u64, 399, 400] {
        assert_eq!(r.load_msg(i).unwrap().payload, payload(i));
    }
    // A memory store has no directory to move.
    let m = natrium_store::MemStore::new(StoreConfig::default());
    assert!(m.move_to(&d.path().join("M"), Durability::Always).is_err());
}

/// A purged stream reopens with the time of its last message (nats-server keeps
/// `last_ts` across a restart; a new source of a purged stream starts from it).
#[test]
fn a_purged_store_keeps_its_last_timestamp_across_a_reopen() {
    let d = tempfile::tempdir().unwrap();
    let clock = natrium_store::ManualClock::new(1_000_000_000_000);
    let opts = || FileStoreOptions {
        segment_size: 4096,
        clock: clock.clone(),
        ..Default::default()
    };
    let s = FileStore::open(d.path(), opts()).unwrap();
    for _ in 0..3 {
        s.store_msg("p", b"", b"x", None).unwrap();
    }
    let last_ts = s.fast_state().last_ts;
    assert!(last_ts > 0);
    clock.advance(Duration::from_secs(5));
    s.purge().unwrap();
    assert_eq!(s.fast_state().last_ts, last_ts);
    s.stop().unwrap();
    drop(s);
    let s = FileStore::open(d.path(), opts()).unwrap();
    let st = s.fast_state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (0, 4, 3));
    assert_eq!(
        st.last_ts, last_ts,
        "the last message's time, not the purge's"
    );
}
