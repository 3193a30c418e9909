//! Backup archives: every real sample (nats-server 2.10.26 / 2.14.6 v1 tar, 2.15.1 v2),
//! round trips through `ArchiveWriter`, damage of every kind, and bounded random input.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use natrium_store::archive::{
    ArchiveError, ArchiveFormat, ArchiveReader, ArchiveWriter, ConsumerStateJson, Entry,
    IndexDbUse, PendingJson, ReaderOptions, S2FrameReader, S2FrameWriter, SequencePairJson,
    StreamStateJson, verify_backup_dir,
};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/backup")
        .join(name)
}

fn read_bytes(name: &str) -> Vec<u8> {
    std::fs::read(data(name)).expect("sample present")
}

fn opts() -> ReaderOptions {
    ReaderOptions::default()
}

fn read_entries_opts(
    bytes: &[u8],
    o: ReaderOptions,
) -> Result<(ArchiveFormat, Vec<Entry>), ArchiveError> {
    let mut r = ArchiveReader::new(bytes, o)?;
    let mut out = Vec::new();
    while let Some(e) = r.next_entry()? {
        out.push(e);
        assert!(out.len() < 1_000_000, "runaway reader");
    }
    Ok((r.format(), out))
}

fn read_entries(bytes: &[u8]) -> Result<(ArchiveFormat, Vec<Entry>), ArchiveError> {
    read_entries_opts(bytes, opts())
}

struct Msg {
    seq: u64,
    ts: i64,
    subject: String,
    header: Vec<u8>,
    payload: Vec<u8>,
}

fn messages(entries: &[Entry]) -> Vec<Msg> {
    entries
        .iter()
        .filter_map(|e| match e {
            Entry::Message {
                seq,
                ts,
                subject,
                header,
                payload,
            } => Some(Msg {
                seq: *seq,
                ts: *ts,
                subject: String::from_utf8(subject.clone()).unwrap(),
                header: header.clone(),
                payload: payload.clone(),
            }),
            _ => None,
        })
        .collect()
}

fn state(entries: &[Entry]) -> StreamStateJson {
    entries
        .iter()
        .find_map(|e| match e {
            Entry::State(s) => Some(s.clone()),
            _ => None,
        })
        .expect("state entry")
}

fn consumer(entries: &[Entry], name: &str) -> (serde_json::Value, ConsumerStateJson) {
    entries
        .iter()
        .find_map(|e| match e {
            Entry::Consumer {
                name: n,
                config,
                state,
            } if n == name => Some((config.clone(), state.clone())),
            _ => None,
        })
        .expect("consumer present")
}

/// (seq, ts, subject, header size, payload size, payload if printable) from decode-ORDERS.txt.
fn expected_orders() -> Vec<(u64, i64, String, usize, usize, Option<String>)> {
    let text = std::fs::read_to_string(data("decode-ORDERS.txt")).unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        let l = line.trim_start();
        if !l.starts_with('@') || !l.contains(" name='ORDERS.") {
            continue;
        }
        let field = |k: &str| -> String {
            let start = l.find(&format!(" {k}=")).unwrap() + k.len() + 2;
            l[start..].split(' ').next().unwrap().to_string()
        };
        let name = field("name").trim_matches('\'').to_string();
        let data = l
            .split(" data=b'")
            .nth(1)
            .map(|d| d.trim_end_matches('\'').to_string());
        let printable = data.filter(|d| d.starts_with("order-") || d == "ttl-msg");
        out.push((
            field("seq").parse().unwrap(),
            field("ts").parse().unwrap(),
            name,
            field("hsz").parse().unwrap(),
            field("psz").parse().unwrap(),
            printable,
        ));
    }
    out
}

fn assert_orders_messages(msgs: &[Msg]) {
    let exp = expected_orders();
    assert_eq!(exp.len(), 47);
    assert_eq!(msgs.len(), 47);
    let seqs: Vec<u64> = msgs.iter().map(|m| m.seq).collect();
    let want: Vec<u64> = (1..=49).filter(|s| *s != 4 && *s != 5).collect();
    assert_eq!(seqs, want);
    for (m, e) in msgs.iter().zip(&exp) {
        assert_eq!(m.seq, e.0);
        assert_eq!(m.ts, e.1, "ts of {}", m.seq);
        assert_eq!(m.subject, e.2);
        assert_eq!(m.header.len(), e.3, "header size of {}", m.seq);
        assert_eq!(m.payload.len(), e.4, "payload size of {}", m.seq);
        if let Some(p) = &e.5 {
            assert_eq!(m.payload, p.as_bytes());
        }
    }
    let hdr = |s: u64| &msgs.iter().find(|m| m.seq == s).unwrap().header;
    assert_eq!(hdr(3), b"NATS/1.0\r\nX-Probe: h3\r\n\r\n");
    assert_eq!(hdr(6), b"NATS/1.0\r\nX-Probe: h6\r\n\r\n");
    assert_eq!(hdr(9), b"NATS/1.0\r\nNats-TTL: 1h\r\n\r\n");
    assert!(
        msgs.iter()
            .filter(|m| ![3, 6, 9].contains(&m.seq))
            .all(|m| m.header.is_empty())
    );
}

fn assert_orders_consumers(entries: &[Entry]) {
    let (c1cfg, c1) = consumer(entries, "C1");
    assert_eq!(c1cfg["durable_name"], "C1");
    assert_eq!(c1cfg["ack_policy"], "explicit");
    assert_eq!(
        c1.delivered,
        SequencePairJson {
            consumer_seq: 3,
            stream_seq: 3
        }
    );
    assert_eq!(
        c1.ack_floor,
        SequencePairJson {
            consumer_seq: 2,
            stream_seq: 2
        }
    );
    assert_eq!(c1.pending.keys().copied().collect::<Vec<_>>(), vec![3]);
    assert_eq!(c1.pending[&3].sequence, 3);
    let (c2cfg, c2) = consumer(entries, "C2");
    assert_eq!(c2cfg["filter_subject"], "ORDERS.paid");
    assert_eq!(c2, ConsumerStateJson::default());
}

#[test]
fn orders_v2_sample() {
    let (fmt, entries) = read_entries(&read_bytes("ORDERS.stream.tar.s2")).unwrap();
    assert_eq!(fmt, ArchiveFormat::V2);
    assert!(matches!(entries[0], Entry::State(_)), "state first");
    let st = state(&entries);
    assert_eq!(
        (
            st.messages,
            st.bytes,
            st.first_seq,
            st.last_seq,
            st.num_deleted,
            st.consumer_count
        ),
        (47, 4620, 1, 49, 2, 2)
    );
    assert_eq!(st.first_ts, 1_795_875_321_029_178_501);
    assert_eq!(st.last_ts, 1_795_875_321_046_056_724);
    assert!(matches!(entries[1], Entry::Consumer { .. }));
    assert!(matches!(entries[2], Entry::Consumer { .. }));
    assert_orders_messages(&messages(&entries));
    assert_orders_consumers(&entries);
    let (_, c1) = consumer(&entries, "C1");
    assert_eq!(
        c1.pending[&3],
        PendingJson {
            sequence: 3,
            timestamp: 1_795_875_321_030_554_332
        }
    );
    assert_eq!(entries.last(), Some(&Entry::End { last_seq: 49 }));
}

#[test]
fn orders_noconsumers_and_mem_samples() {
    let (_, entries) = read_entries(&read_bytes("ORDERS.noconsumers.stream.tar.s2")).unwrap();
    assert_eq!(state(&entries).consumer_count, 0);
    assert!(!entries.iter().any(|e| matches!(e, Entry::Consumer { .. })));
    assert_orders_messages(&messages(&entries));

    let (fmt, entries) = read_entries(&read_bytes("MEM.stream.tar.s2")).unwrap();
    assert_eq!(fmt, ArchiveFormat::V2);
    let m = messages(&entries);
    assert_eq!(m.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(m.iter().all(|m| m.subject == "mem.a"));
    assert_eq!(entries.last(), Some(&Entry::End { last_seq: 3 }));
}

#[test]
fn v1_synthetic_equals_v2_capture() {
    let (fmt, v1) = read_entries(&read_bytes("ORDERS.v1-synthetic.stream.tar.s2")).unwrap();
    assert_eq!(fmt, ArchiveFormat::V1);
    match &v1[0] {
        Entry::StreamMeta { config, created } => {
            assert_eq!(config["name"], "ORDERS");
            assert!(config.get("Created").is_none());
            assert_eq!(created.as_deref(), Some("2026-11-28T14:15:21.025879562Z"));
        }
        other => panic!("expected StreamMeta first, got {other:?}"),
    }
    assert!(matches!(v1[1], Entry::State(_)));
    let st = state(&v1);
    assert_eq!(
        (
            st.messages,
            st.bytes,
            st.first_seq,
            st.last_seq,
            st.num_deleted,
            st.consumer_count
        ),
        (47, 4620, 1, 49, 2, 2)
    );
    assert_eq!(st.first_ts, 1_795_875_321_029_178_501);
    assert_eq!(st.last_ts, 1_795_875_321_046_056_724);
    assert_orders_messages(&messages(&v1));
    assert_orders_consumers(&v1);
    // Same messages, byte for byte, as the 2.15.1 v2 capture of the same stream.
    let (_, v2) = read_entries(&read_bytes("ORDERS.stream.tar.s2")).unwrap();
    let (a, b) = (messages(&v1), messages(&v2));
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            (x.seq, x.ts, &x.subject, &x.header, &x.payload),
            (y.seq, y.ts, &y.subject, &y.header, &y.payload)
        );
    }
    assert_eq!(v1.last(), Some(&Entry::End { last_seq: 49 }));
}

fn check_small_orders(name: &str, want_format: ArchiveFormat, idx_version: Option<u8>) {
    let (fmt, entries) = read_entries(&read_bytes(&format!("{name}.stream.tar.s2"))).unwrap();
    assert_eq!(fmt, want_format, "{name}");
    let bj: serde_json::Value =
        serde_json::from_slice(&read_bytes(&format!("{name}.backup.json"))).unwrap();
    let bstate: StreamStateJson = serde_json::from_value(bj["state"].clone()).unwrap();
    let st = state(&entries);
    assert_eq!(
        (st.messages, st.first_seq, st.last_seq),
        (6, 1, 8),
        "{name}"
    );
    assert_eq!(
        (st.bytes, st.first_ts, st.last_ts),
        (bstate.bytes, bstate.first_ts, bstate.last_ts),
        "{name}"
    );
    let m = messages(&entries);
    assert_eq!(
        m.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 6, 7, 8],
        "{name}"
    );
    assert_eq!(m[0].ts, bstate.first_ts);
    assert_eq!(m[5].ts, bstate.last_ts);
    let subjects: Vec<&str> = m.iter().map(|m| m.subject.as_str()).collect();
    assert_eq!(
        subjects,
        [
            "ORDERS.new",
            "ORDERS.paid",
            "ORDERS.new",
            "ORDERS.paid",
            "ORDERS.new",
            "ORDERS.paid"
        ]
    );
    for x in &m {
        assert_eq!(x.payload, format!("order-{}", x.seq).as_bytes());
        let want_hdr = if x.seq == 3 || x.seq == 6 {
            format!("NATS/1.0\r\nX-Probe: h{}\r\n\r\n", x.seq)
        } else {
            String::new()
        };
        assert_eq!(x.header, want_hdr.as_bytes(), "{name} header of {}", x.seq);
    }
    let (_, c1) = consumer(&entries, "C1");
    assert_eq!(
        c1.delivered,
        SequencePairJson {
            consumer_seq: 3,
            stream_seq: 3
        }
    );
    assert_eq!(
        c1.ack_floor,
        SequencePairJson {
            consumer_seq: 2,
            stream_seq: 2
        }
    );
    assert_eq!(c1.pending.keys().copied().collect::<Vec<_>>(), vec![3]);
    assert_eq!(entries.last(), Some(&Entry::End { last_seq: 8 }));
    if let Some(v) = idx_version {
        let raw = read_bytes(&format!("{name}.stream.tar.s2"));
        let r = ArchiveReader::new(&raw[..], opts()).unwrap();
        let rep = r.v1_report().unwrap();
        assert_eq!(rep.index_db, IndexDbUse::Used { version: v });
        assert_eq!((rep.tombstones, rep.erased, rep.lost_bytes), (2, 1, 0));
        assert_eq!(rep.meta_sum_ok, Some(true));
        assert!(matches!(
            &entries[0],
            Entry::StreamMeta {
                created: Some(_),
                ..
            }
        ));
    }
}

#[test]
fn real_v1_snapshots_of_2_10_and_2_14() {
    check_small_orders("ORDERS.v2.10.26", ArchiveFormat::V1, Some(1));
    check_small_orders("ORDERS.v2.14.6", ArchiveFormat::V1, Some(4));
    check_small_orders("ORDERS.v2.15.1", ArchiveFormat::V2, None);
}

// ---------------------------------------------------------------------------------------
// Round trips.

fn write_entries(entries: &[Entry]) -> Vec<u8> {
    write_entries_at(entries, 1_795_875_321_555_907_153)
}

fn write_entries_at(entries: &[Entry], meta_ts: i64) -> Vec<u8> {
    let mut w = ArchiveWriter::new(Vec::new());
    w.set_metadata_timestamp(meta_ts);
    for e in entries {
        match e {
            Entry::State(s) => w.state(s).unwrap(),
            Entry::Consumer {
                name,
                config,
                state,
            } => w.consumer(name, config, state).unwrap(),
            Entry::Message {
                seq,
                ts,
                subject,
                header,
                payload,
            } => w.message(*seq, *ts, subject, header, payload).unwrap(),
            Entry::StreamMeta { .. } | Entry::End { .. } => {}
        }
    }
    w.finish().unwrap()
}

#[test]
fn roundtrip_samples_through_writer() {
    for name in [
        "ORDERS.stream.tar.s2",
        "ORDERS.v1-synthetic.stream.tar.s2",
        "ORDERS.v2.14.6.stream.tar.s2",
    ] {
        let (_, entries) = read_entries(&read_bytes(name)).unwrap();
        let written = write_entries(&entries);
        let (fmt, back) = read_entries(&written).unwrap();
        assert_eq!(fmt, ArchiveFormat::V2);
        let without_meta: Vec<Entry> = entries
            .into_iter()
            .filter(|e| !matches!(e, Entry::StreamMeta { .. }))
            .collect();
        assert_eq!(back, without_meta, "{name}");
    }
    // The writer's decompressed output of the 2.15.1 capture equals the original bytes
    // (same entries and the same metadata timestamp). Consumer configs are excluded: they
    // are opaque JSON values whose key order is not preserved.
    let orig = read_bytes("ORDERS.noconsumers.stream.tar.s2");
    let (_, entries) = read_entries(&orig).unwrap();
    let mut a = Vec::new();
    S2FrameReader::new(&orig[..]).read_to_end(&mut a).unwrap();
    // state.json's timestamp: zigzag varint right after the magic and the name length.
    let (mut zz, mut shift) = (0u64, 0);
    for &byte in &a[9..] {
        zz |= u64::from(byte & 0x7f) << shift;
        shift += 7;
        if byte < 0x80 {
            break;
        }
    }
    let meta_ts = ((zz >> 1) as i64) ^ -((zz & 1) as i64);
    let mut b = Vec::new();
    S2FrameReader::new(&write_entries_at(&entries, meta_ts)[..])
        .read_to_end(&mut b)
        .unwrap();
    assert!(a == b, "decompressed bytes differ");
}

#[test]
fn roundtrip_large_multi_chunk_with_gaps() {
    let mut w = ArchiveWriter::new(Vec::new());
    let st = StreamStateJson {
        messages: 2500,
        bytes: 0,
        first_seq: 10,
        last_seq: 5020,
        consumer_count: 1,
        ..Default::default()
    };
    w.state(&st).unwrap();
    let mut cs = ConsumerStateJson {
        delivered: SequencePairJson {
            consumer_seq: 7,
            stream_seq: 20,
        },
        ack_floor: SequencePairJson {
            consumer_seq: 5,
            stream_seq: 14,
        },
        ..Default::default()
    };
    cs.pending.insert(
        16,
        PendingJson {
            sequence: 6,
            timestamp: 99,
        },
    );
    cs.redelivered.insert(16, 2);
    w.consumer("dur", &serde_json::json!({"durable_name": "dur"}), &cs)
        .unwrap();
    let mut seed = 12345u64;
    let mut want = Vec::new();
    for i in 0..2500u64 {
        let seq = 10 + i * 2;
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let len = (seed >> 40) as usize % 2048;
        let payload: Vec<u8> = (0..len)
            .map(|j| ((j as u64).wrapping_mul(seed) >> 7) as u8)
            .collect();
        let header = if i % 10 == 0 {
            b"NATS/1.0\r\nA: b\r\n\r\n".to_vec()
        } else {
            Vec::new()
        };
        let subject = format!("big.{}", i % 17);
        w.message(
            seq,
            seq as i64 * 1000,
            subject.as_bytes(),
            &header,
            &payload,
        )
        .unwrap();
        want.push((seq, subject, header, payload));
    }
    let bytes = w.finish().unwrap();
    let mut r = ArchiveReader::new(&bytes[..], opts()).unwrap();
    let mut got = Vec::new();
    let mut end = None;
    while let Some(e) = r.next_entry().unwrap() {
        match e {
            Entry::Message {
                seq,
                subject,
                header,
                payload,
                ts,
            } => {
                assert_eq!(ts, seq as i64 * 1000);
                got.push((seq, String::from_utf8(subject).unwrap(), header, payload));
            }
            Entry::Consumer { state, .. } => assert_eq!(state, cs),
            Entry::End { last_seq } => end = Some(last_seq),
            _ => {}
        }
    }
    assert_eq!(got, want);
    assert_eq!(end, Some(5020));
    assert!(r.frame_stats().chunks >= 2, "{:?}", r.frame_stats());
}

#[test]
fn writer_rejects_misuse() {
    let mut w = ArchiveWriter::new(Vec::new());
    assert!(
        w.message(1, 0, b"a", b"", b"").is_err(),
        "message before state"
    );
    let mut w = ArchiveWriter::new(Vec::new());
    w.state(&StreamStateJson {
        consumer_count: 1,
        ..Default::default()
    })
    .unwrap();
    assert!(w.message(1, 0, b"a", b"", b"").is_err(), "missing consumer");
    let mut w = ArchiveWriter::new(Vec::new());
    w.state(&StreamStateJson::default()).unwrap();
    w.message(2, 0, b"a", b"", b"").unwrap();
    assert!(w.message(2, 0, b"a", b"", b"").is_err());
    assert!(w.message(1, 0, b"a", b"", b"").is_err());
    assert!(
        w.consumer(
            "late",
            &serde_json::json!({}),
            &ConsumerStateJson::default()
        )
        .is_err()
    );
}
/// The same decompressed bytes framed as uncompressed chunks of `size` bytes each.
fn reframe(decompressed: &[u8], size: usize) -> Vec<u8> {
    let mut out = vec![0xff, 6, 0, 0, b'S', b'2', b's', b'T', b'w', b'O'];
    for piece in decompressed.chunks(size) {
        let len = (piece.len() + 4) as u32;
        out.extend_from_slice(&[0x01, len as u8, (len >> 8) as u8, (len >> 16) as u8]);
        out.extend_from_slice(&natrium_store::archive::s2_frame::masked_crc(piece).to_le_bytes());
        out.extend_from_slice(piece);
    }
    out
}

/// The reader parses entry headers and copies bodies straight out of each decoded
/// chunk, and falls back to byte-wise reads when a field straddles two chunks: tiny
/// chunks put every varint, name, header and payload across a boundary somewhere.
#[test]
fn entries_split_across_any_chunk_boundary() {
    let orig = read_bytes("ORDERS.stream.tar.s2");
    let (_, want) = read_entries(&orig).unwrap();
    let plain = decompress(&orig);
    for size in [1, 2, 3, 5, 7, 13, 64, 1000] {
        let (fmt, got) = read_entries(&reframe(&plain, size)).unwrap();
        assert_eq!(fmt, ArchiveFormat::V2);
        assert_eq!(got, want, "chunks of {size} bytes");
    }
    // Cut inside the last entries: a clean truncation error, whatever the chunking.
    for size in [1, 3, 1000] {
        let cut = &plain[..plain.len() - 20];
        assert!(
            read_entries(&reframe(cut, size)).is_err(),
            "chunks of {size}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Damage.

fn frame(content: &[u8]) -> Vec<u8> {
    let mut w = S2FrameWriter::new(Vec::new());
    w.write_all(content).unwrap();
    w.finish().unwrap()
}

fn decompress(bytes: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    S2FrameReader::new(bytes).read_to_end(&mut v).unwrap();
    v
}

fn read_err(bytes: &[u8]) -> ArchiveError {
    read_err_opts(bytes, opts())
}

fn read_err_opts(bytes: &[u8], o: ReaderOptions) -> ArchiveError {
    match read_entries_opts(bytes, o) {
        Ok((_, e)) => panic!("expected an error, got {} entries", e.len()),
        Err(e) => e,
    }
}

fn v2_entry(out: &mut Vec<u8>, name: &[u8], ts: i64, seq: u64, hdr: &[u8], payload: &[u8]) {
    fn uv(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    uv(out, name.len() as u64);
    uv(out, ((ts << 1) ^ (ts >> 63)) as u64);
    uv(out, seq);
    uv(out, hdr.len() as u64);
    uv(out, payload.len() as u64);
    out.extend_from_slice(name);
    out.extend_from_slice(hdr);
    out.extend_from_slice(payload);
}

fn v2_with_state(state_json: &str) -> Vec<u8> {
    let mut c = b"NATSARC1".to_vec();
    v2_entry(&mut c, b"state.json", 1, 0, b"", state_json.as_bytes());
    c
}

#[test]
fn truncation_is_a_clean_error() {
    let orig = read_bytes("ORDERS.stream.tar.s2");
    for cut in [0usize, 5, 10, 11, 14, 100, 1000, orig.len() - 1] {
        let e = read_err(&orig[..cut]);
        let s = e.to_string();
        assert!(s == "EOF" || s == "s2: corrupt input", "cut {cut}: {s}");
    }
    // Missing sentinel (cleanly framed): nats-server's "EOF".
    let content = decompress(&orig);
    let e = read_err(&frame(&content[..content.len() - 5]));
    assert_eq!(e.to_string(), "EOF");
    // Cut inside an entry.
    let e = read_err(&frame(&content[..content.len() - 9]));
    assert!(matches!(e, ArchiveError::UnexpectedEof { .. }), "{e:?}");
}

#[test]
fn bit_flips_and_garbage_are_clean_errors() {
    let orig = read_bytes("ORDERS.stream.tar.s2");
    for pos in [14usize, 15, 20, 200, 1000, 3000, orig.len() - 1] {
        let mut b = orig.clone();
        b[pos] ^= 0x10;
        let e = read_err(&b);
        assert!(e.to_string().starts_with("s2: "), "flip at {pos}: {e}");
    }
    let mut b = orig.clone();
    b[2000] ^= 0x01;
    assert!(matches!(
        read_err(&b),
        ArchiveError::CrcMismatch { .. } | ArchiveError::CorruptInput { .. }
    ));
    assert_eq!(
        read_err(b"this is not a snapshot at all").to_string(),
        "s2: corrupt input"
    );
    assert_eq!(read_err(b"").to_string(), "EOF");
    // Valid framing, neither NATSARC1 nor a tar.
    let e = read_err(&frame(&[7u8; 1024]));
    assert!(matches!(e, ArchiveError::InvalidTarHeader { .. }), "{e:?}");
    // Wrong magic, otherwise a v2 archive: read as tar, rejected.
    let mut content = decompress(&orig);
    content[0] = b'X';
    assert!(read_entries(&frame(&content)).is_err());
    // Reserved chunk type.
    let mut b = orig[..10].to_vec();
    b.extend_from_slice(&[0x05, 1, 0, 0, 0]);
    assert_eq!(read_err(&b).to_string(), "s2: unsupported input");
    // Skippable chunks and a Snappy identifier are fine.
    let mut b = b"\xff\x06\x00\x00sNaPpY\x99\x02\x00\x00ab".to_vec();
    b.extend_from_slice(&orig[10..]);
    assert!(read_entries(&b).is_ok());
}

#[test]
fn v2_validation_errors_match_nats_server() {
    let msgs_then_end = |mut c: Vec<u8>, seqs: &[u64]| {
        for &s in seqs {
            v2_entry(&mut c, b"x", 5, s, b"", b"p");
        }
        c.extend_from_slice(&[0; 5]);
        frame(&c)
    };
    let st = r#"{"messages":2,"bytes":0,"first_seq":1,"first_ts":"0001-01-01T00:00:00Z","last_seq":5,"last_ts":"0001-01-01T00:00:00Z","consumer_count":0}"#;
    assert_eq!(
        read_err(&msgs_then_end(v2_with_state(st), &[2, 1])).to_string(),
        "message sequence 1 out of order"
    );
    assert_eq!(
        read_err(&msgs_then_end(v2_with_state(st), &[2, 2])).to_string(),
        "message sequence 2 out of order"
    );
    assert_eq!(
        read_err(&msgs_then_end(v2_with_state(st), &[0])).to_string(),
        "message sequence 0 out of order"
    );
    let st5 = st
        .replace(r#""first_seq":1"#, r#""first_seq":5"#)
        .replace(r#""messages":2"#, r#""messages":1"#);
    assert_eq!(
        read_err(&msgs_then_end(v2_with_state(&st5), &[3])).to_string(),
        "message sequence 3 out of order"
    );
    // Trailing deletes: End carries last_seq.
    let (_, e) = read_entries(&msgs_then_end(v2_with_state(st), &[1, 3])).unwrap();
    assert_eq!(e.last(), Some(&Entry::End { last_seq: 5 }));

    let bad = |s: &str| read_err(&msgs_then_end(v2_with_state(s), &[])).to_string();
    assert_eq!(
        bad(r#"{"messages":0,"first_seq":10,"last_seq":5,"consumer_count":0}"#),
        "invalid stream state: inconsistent message count or sequence range"
    );
    assert_eq!(
        bad(r#"{"messages":0,"consumer_count":-1}"#),
        "invalid stream state: negative consumer count"
    );
    assert_eq!(
        bad(r#"{"messages":10,"first_seq":1,"last_seq":5,"consumer_count":0}"#),
        "invalid stream state: message count exceeds sequence range"
    );
    for ok in [
        r#"{"messages":0,"first_seq":6,"last_seq":5,"consumer_count":0}"#,
        r#"{"messages":0,"first_seq":0,"last_seq":0,"consumer_count":0}"#,
    ] {
        assert!(
            read_entries(&msgs_then_end(v2_with_state(ok), &[])).is_ok(),
            "{ok}"
        );
    }
    // First entry not state.json; state not JSON.
    let mut c = b"NATSARC1".to_vec();
    v2_entry(&mut c, b"x", 1, 1, b"", b"p");
    assert!(matches!(
        read_err(&frame(&c)),
        ArchiveError::InvalidEntry { .. }
    ));
    assert!(matches!(
        read_err(&frame(&v2_with_state("{nope"))),
        ArchiveError::Json { .. }
    ));
    // Fewer consumers than announced.
    let stc = r#"{"messages":0,"first_seq":0,"last_seq":0,"consumer_count":2}"#;
    let mut c = v2_with_state(stc);
    v2_entry(
        &mut c,
        b"consumers/A",
        1,
        0,
        b"",
        br#"{"config":{"name":"A"},"state":{}}"#,
    );
    v2_entry(&mut c, b"subj", 1, 1, b"", b"x");
    assert!(matches!(
        read_err(&frame(&c)),
        ArchiveError::InvalidEntry { .. }
    ));
    // Consumer without state.
    let mut c = v2_with_state(stc);
    v2_entry(
        &mut c,
        b"consumers/A",
        1,
        0,
        b"",
        br#"{"config":{"name":"A"}}"#,
    );
    assert!(matches!(
        read_err(&frame(&c)),
        ArchiveError::InvalidEntry { .. }
    ));
    // Size limits.
    let mut c = v2_with_state(st);
    v2_entry(&mut c, b"s", 1, 1, b"hh", &[1u8; 100]);
    let o = ReaderOptions {
        max_msg_size: 101,
        ..opts()
    };
    assert!(matches!(
        read_err_opts(&frame(&c), o),
        ArchiveError::TooLarge {
            what: "message",
            ..
        }
    ));
    let mut c = v2_with_state(st);
    c.extend_from_slice(&[0x81, 0x80, 0x80, 0x01, 0, 2, 0, 0]); // name length 2 MiB + 1
    assert!(matches!(
        read_err(&frame(&c)),
        ArchiveError::TooLarge {
            what: "entry name",
            ..
        }
    ));
    // A huge declared payload with no data behind it: clean error, no huge allocation.
    let mut c = v2_with_state(st);
    c.extend_from_slice(&[1, 0, 1, 0, 0xff, 0xff, 0xff, 0x1f, b's']);
    assert!(matches!(
        read_err(&frame(&c)),
        ArchiveError::UnexpectedEof { .. }
    ));
}

// ---------------------------------------------------------------------------------------
// v1 tar variants built from the 2.15.1 on-disk stream directory.

fn tar_header(path: &str, size: usize, typeflag: u8) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..path.len()].copy_from_slice(path.as_bytes());
    h[100..108].copy_from_slice(b"0000600\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = typeflag;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

fn tar(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (path, data) in members {
        let typeflag = if path.ends_with('/') { b'5' } else { b'0' };
        out.extend_from_slice(&tar_header(path, data.len(), typeflag));
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn ondisk(rel: &str) -> Vec<u8> {
    read_bytes(&format!("ORDERS.ondisk/{rel}"))
}

fn ondisk_members(with_index: bool) -> Vec<(&'static str, Vec<u8>)> {
    let mut m = vec![
        ("meta.inf", ondisk("meta.inf")),
        ("meta.sum", ondisk("meta.sum")),
        ("msgs/1.blk", ondisk("msgs/1.blk")),
    ];
    if with_index {
        m.push(("msgs/index.db", ondisk("msgs/index.db")));
    }
    for c in ["C1", "C2"] {
        for f in ["meta.inf", "meta.sum", "o.dat"] {
            let p: &'static str = Box::leak(format!("obs/{c}/{f}").into_boxed_str());
            m.push((p, ondisk(&format!("obs/{c}/{f}"))));
        }
    }
    m
}

#[test]
fn v1_without_index_db_uses_tombstones() {
    let bytes = frame(&tar(&ondisk_members(false)));
    let (fmt, entries) = read_entries(&bytes).unwrap();
    assert_eq!(fmt, ArchiveFormat::V1);
    assert_orders_messages(&messages(&entries));
    assert_orders_consumers(&entries);
    let st = state(&entries);
    assert_eq!(
        (st.messages, st.bytes, st.first_seq, st.last_seq),
        (47, 4620, 1, 49)
    );
    let r = ArchiveReader::new(&bytes[..], opts()).unwrap();
    assert_eq!(r.v1_report().unwrap().index_db, IndexDbUse::Absent);
    // With index.db (ustar headers without PAX records this time).
    let (_, entries) = read_entries(&frame(&tar(&ondisk_members(true)))).unwrap();
    assert_orders_messages(&messages(&entries));
}

#[test]
fn v1_corrupt_record_truncates_block_or_fails_strict() {
    let mut members = ondisk_members(true);
    // Flip a payload byte of the record of seq 10 (offset 575 in 1.blk).
    members[2].1[575 + 40] ^= 0xff;
    let bytes = frame(&tar(&members));
    let (_, entries) = read_entries(&bytes).unwrap();
    let seqs: Vec<u64> = messages(&entries).iter().map(|m| m.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 6, 7, 8, 9]);
    let r = ArchiveReader::new(&bytes[..], opts()).unwrap();
    let rep = r.v1_report().unwrap();
    assert_eq!(rep.lost_bytes, 4775 - 575);
    assert_eq!(rep.corrupt[0].offset, 575);
    assert!(matches!(rep.index_db, IndexDbUse::Ignored { .. }));
    let strict = ReaderOptions {
        strict: true,
        ..opts()
    };
    match read_err_opts(&bytes, strict) {
        ArchiveError::CorruptRecord {
            block: 1,
            offset: 575,
            seq: Some(10),
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    // First record bad: nothing survives (nats-server: 0 messages, lost 4775 bytes).
    let mut members = ondisk_members(false);
    members[2].1[30] ^= 1;
    let (_, entries) = read_entries(&frame(&tar(&members))).unwrap();
    assert!(messages(&entries).is_empty());
    let st = state(&entries);
    assert_eq!((st.messages, st.first_seq, st.last_seq), (0, 0, 0));
}

#[test]
fn v1_rejections() {
    // Directory entry: nats-server's "unexpected content".
    let mut m = ondisk_members(false);
    m.insert(0, ("obs/", Vec::new()));
    assert_eq!(read_err(&frame(&tar(&m))).to_string(), "unexpected content");
    // Escaping paths.
    for p in ["../meta.inf", "/etc/passwd", "msgs/../../x"] {
        let mut m = ondisk_members(false);
        m.push((p, b"x".to_vec()));
        assert!(
            matches!(read_err(&frame(&tar(&m))), ArchiveError::UnsafePath { .. }),
            "{p}"
        );
    }
    // Stream name mismatch.
    let o = ReaderOptions {
        expected_stream: Some("OTHER".into()),
        ..opts()
    };
    assert_eq!(
        read_err_opts(&frame(&tar(&ondisk_members(false))), o).to_string(),
        "stream names do not match"
    );
    // Missing meta.inf.
    let m: Vec<_> = ondisk_members(false)
        .into_iter()
        .filter(|(p, _)| *p != "meta.inf")
        .collect();
    assert!(matches!(
        read_err(&frame(&tar(&m))),
        ArchiveError::MissingFile { .. }
    ));
    // Bogus meta.sum: accepted (as nats-server does), rejected in strict mode.
    let mut m = ondisk_members(false);
    m[1].1 = b"0000000000000000".to_vec();
    assert!(read_entries(&frame(&tar(&m))).is_ok());
    let strict = ReaderOptions {
        strict: true,
        ..opts()
    };
    assert!(matches!(
        read_err_opts(&frame(&tar(&m)), strict.clone()),
        ArchiveError::CorruptFile { .. }
    ));
    // errors.txt from a failed snapshot.
    let mut m = ondisk_members(false);
    m.push(("errors.txt", b"checksum failed".to_vec()));
    assert!(read_entries(&frame(&tar(&m))).is_ok());
    assert!(matches!(
        read_err_opts(&frame(&tar(&m)), strict),
        ArchiveError::ProducerError { .. }
    ));
    // Broken tar header checksum.
    let mut t = tar(&ondisk_members(false));
    t[0] ^= 1;
    assert!(matches!(
        read_err(&frame(&t)),
        ArchiveError::InvalidTarHeader { .. }
    ));
    // Truncated tar.
    let t = tar(&ondisk_members(false));
    assert!(matches!(
        read_err(&frame(&t[..3000])),
        ArchiveError::UnexpectedEof { .. }
    ));
}

#[test]
fn v1_spools_into_the_given_staging_dir_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let o = ReaderOptions {
        staging_dir: Some(dir.path().to_path_buf()),
        ..opts()
    };
    let bytes = read_bytes("ORDERS.v2.14.6.stream.tar.s2");
    let mut r = ArchiveReader::new(&bytes[..], o).unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    while r.next_entry().unwrap().is_some() {}
    drop(r);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

// ---------------------------------------------------------------------------------------
// Verification of backup directories.

fn stream_dir(root: &Path, name: &str, sample: &str) -> PathBuf {
    let d = root.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(
        data(&format!("{sample}.stream.tar.s2")),
        d.join("stream.tar.s2"),
    )
    .unwrap();
    std::fs::copy(
        data(&format!("{sample}.backup.json")),
        d.join("backup.json"),
    )
    .unwrap();
    d
}

#[test]
fn verify_stream_and_account_dirs() {
    let tmp = tempfile::tempdir().unwrap();
    let d = stream_dir(tmp.path(), "one", "ORDERS");
    let s = verify_backup_dir(&d).unwrap();
    assert_eq!(s.kind, "stream");
    assert!(s.is_ok());
    let st = &s.streams[0];
    assert_eq!(
        (
            st.stream.as_str(),
            st.messages,
            st.first_seq,
            st.last_message_seq,
            st.last_seq
        ),
        ("ORDERS", 47, Some(1), Some(49), 49)
    );
    assert_eq!(st.consumers.len(), 2);
    assert_eq!(st.format, ArchiveFormat::V2);
    assert_eq!(st.backup_state.as_ref().unwrap().last_seq, 49);

    let acct = tmp.path().join("acct");
    stream_dir(&acct, "ORDERS", "ORDERS.v2.14.6");
    stream_dir(&acct, "ORDERS2", "ORDERS.v2.10.26");
    let s = verify_backup_dir(&acct).unwrap();
    assert_eq!(s.kind, "account");
    assert_eq!(s.streams.len(), 2);
    assert_eq!(s.total_messages, 12);
    assert!(s.streams.iter().all(|x| x.format == ArchiveFormat::V1));

    // Damage in one stream of an account backup.
    let bad = stream_dir(&acct, "ORDERS3", "ORDERS");
    let mut b = std::fs::read(bad.join("stream.tar.s2")).unwrap();
    b[3000] ^= 0x20;
    std::fs::write(bad.join("stream.tar.s2"), &b).unwrap();
    let s = verify_backup_dir(&acct).unwrap();
    assert!(!s.is_ok());
    assert_eq!(s.damaged.len(), 1);
    assert!(verify_backup_dir(&bad).is_err());

    // Consumer state that cannot be right.
    let c = tmp.path().join("cons");
    std::fs::create_dir_all(&c).unwrap();
    let mut w = ArchiveWriter::new(Vec::new());
    w.state(&StreamStateJson {
        messages: 1,
        first_seq: 1,
        last_seq: 10,
        consumer_count: 1,
        ..Default::default()
    })
    .unwrap();
    let cs = ConsumerStateJson {
        ack_floor: SequencePairJson {
            consumer_seq: 0,
            stream_seq: 5,
        },
        delivered: SequencePairJson {
            consumer_seq: 0,
            stream_seq: 3,
        },
        ..Default::default()
    };
    w.consumer("X", &serde_json::json!({"name": "X"}), &cs)
        .unwrap();
    w.message(1, 1, b"a", b"", b"b").unwrap();
    std::fs::write(c.join("stream.tar.s2"), w.finish().unwrap()).unwrap();
    std::fs::write(
        c.join("backup.json"),
        r#"{"config":{"name":"S"},"state":{}}"#,
    )
    .unwrap();
    assert!(matches!(
        verify_backup_dir(&c),
        Err(ArchiveError::ConsumerState { .. })
    ));

    // Not a backup at all.
    let e = tmp.path().join("empty");
    std::fs::create_dir_all(&e).unwrap();
    assert!(matches!(
        verify_backup_dir(&e),
        Err(ArchiveError::Layout { .. })
    ));
}

// ---------------------------------------------------------------------------------------
// Bounded random input never panics.

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut b = base.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(5) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            1 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] = rng.next() as u8;
            }
            2 => {
                let n = rng.below(b.len() + 1);
                b.truncate(n);
            }
            3 => {
                let i = rng.below(b.len() + 1);
                let junk: Vec<u8> = (0..rng.below(16)).map(|_| rng.next() as u8).collect();
                b.splice(i..i, junk);
            }
            _ if !b.is_empty() => {
                // Large varint-ish bytes somewhere.
                let i = rng.below(b.len());
                b[i] = 0xff;
            }
            _ => {}
        }
    }
    b
}

fn drain(bytes: &[u8], o: ReaderOptions) {
    if let Ok(mut r) = ArchiveReader::new(bytes, o) {
        for _ in 0..100_000 {
            match r.next_entry() {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
}

#[test]
fn random_damage_never_panics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let staging = tempfile::tempdir().unwrap();
    let o = || ReaderOptions {
        max_msg_size: 1 << 16,
        staging_dir: Some(staging.path().to_path_buf()),
        ..ReaderOptions::default()
    };
    let v2 = read_bytes("ORDERS.stream.tar.s2");
    let v2_plain = decompress(&v2);
    let v1 = read_bytes("ORDERS.v2.14.6.stream.tar.s2");
    let v1_plain = decompress(&v1);
    for i in 0..400 {
        // Damaged framing.
        drain(&mutate(&mut rng, &v2), o());
        // Damaged content behind valid framing (CRCs match, so the decoders see it).
        drain(&frame(&mutate(&mut rng, &v2_plain)), o());
        if i % 4 == 0 {
            drain(&mutate(&mut rng, &v1), o());
            drain(&frame(&mutate(&mut rng, &v1_plain)), o());
        }
        // Pure noise, with and without a valid identifier.
        let n = rng.below(300);
        let noise: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        drain(&noise, o());
        let mut framed = b"\xff\x06\x00\x00S2sTwO".to_vec();
        framed.extend_from_slice(&noise);
        drain(&framed, o());
    }
    // Random S2 blocks.
    let mut dst = Vec::new();
    for _ in 0..5000 {
        let n = rng.below(64);
        let src: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        let _ = natrium_store::archive::s2_frame::decode_block(&src, &mut dst, 1 << 16);
    }
    // The staging directory is left empty.
    assert_eq!(std::fs::read_dir(staging.path()).unwrap().count(), 0);
}

#[test]
fn random_archives_round_trip() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for case in 0..60 {
        let n = rng.below(300);
        let first = 1 + rng.below(1000) as u64;
        let mut seq = first - 1;
        let mut msgs = Vec::new();
        for _ in 0..n {
            seq += 1 + (rng.below(4) == 0) as u64 * rng.below(50) as u64;
            let subject: Vec<u8> = format!("s.{}", rng.below(9)).into_bytes();
            let header = if rng.below(3) == 0 {
                format!("NATS/1.0\r\nK: {}\r\n\r\n", rng.next()).into_bytes()
            } else {
                Vec::new()
            };
            let len = if rng.below(20) == 0 {
                rng.below(200_000)
            } else {
                rng.below(300)
            };
            let payload: Vec<u8> = (0..len).map(|i| (i as u64 ^ seq) as u8).collect();
            msgs.push((seq, rng.next() as i64, subject, header, payload));
        }
        let last = seq + rng.below(5) as u64;
        let st = StreamStateJson {
            messages: n as u64,
            first_seq: if n == 0 { last + 1 } else { first },
            last_seq: last,
            consumer_count: rng.below(3) as i64,
            ..Default::default()
        };
        let mut w = ArchiveWriter::new(Vec::new());
        w.state(&st).unwrap();
        for c in 0..st.consumer_count {
            w.consumer(
                &format!("c{c}"),
                &serde_json::json!({"durable_name": format!("c{c}")}),
                &ConsumerStateJson::default(),
            )
            .unwrap();
        }
        for (seq, ts, s, h, p) in &msgs {
            w.message(*seq, *ts, s, h, p).unwrap();
        }
        let bytes = w.finish().unwrap();
        let (_, entries) = read_entries(&bytes).unwrap_or_else(|e| panic!("case {case}: {e}"));
        let got: Vec<_> = messages(&entries)
            .into_iter()
            .map(|m| (m.seq, m.ts, m.subject.into_bytes(), m.header, m.payload))
            .collect();
        assert!(got == msgs, "case {case}");
        assert_eq!(state(&entries), st);
        assert_eq!(entries.last(), Some(&Entry::End { last_seq: last }));
    }
}

#[test]
fn writer_clamps_consumer_state_to_last_seq() {
    let mut w = ArchiveWriter::new(Vec::new());
    w.state(&StreamStateJson {
        messages: 1,
        first_seq: 1,
        last_seq: 5,
        consumer_count: 1,
        ..Default::default()
    })
    .unwrap();
    let mut cs = ConsumerStateJson {
        delivered: SequencePairJson {
            consumer_seq: 9,
            stream_seq: 9,
        },
        ack_floor: SequencePairJson {
            consumer_seq: 7,
            stream_seq: 7,
        },
        ..Default::default()
    };
    cs.pending.insert(
        8,
        PendingJson {
            sequence: 8,
            timestamp: 1,
        },
    );
    cs.redelivered.insert(9, 1);
    w.consumer("c", &serde_json::json!({}), &cs).unwrap();
    w.message(5, 1, b"a", b"", b"b").unwrap();
    let (_, e) = read_entries(&w.finish().unwrap()).unwrap();
    let (_, got) = consumer(&e, "c");
    assert_eq!(
        got.delivered,
        SequencePairJson {
            consumer_seq: 9,
            stream_seq: 5
        }
    );
    assert_eq!(
        got.ack_floor,
        SequencePairJson {
            consumer_seq: 7,
            stream_seq: 5
        }
    );
    assert!(got.pending.is_empty() && got.redelivered.is_empty());
}

#[test]
fn verify_reports_trailing_bytes_and_accepts_a_bare_file() {
    let tmp = tempfile::tempdir().unwrap();
    let mut content = decompress(&read_bytes("ORDERS.stream.tar.s2"));
    content.extend_from_slice(b"junk after sentinel");
    let f = tmp.path().join("x.s2");
    std::fs::write(&f, frame(&content)).unwrap();
    let s = verify_backup_dir(&f).unwrap();
    assert_eq!(s.kind, "file");
    assert_eq!(s.streams[0].messages, 47);
    assert!(
        s.streams[0]
            .warnings
            .iter()
            .any(|w| w.contains("19 bytes after the end sentinel")),
        "{:?}",
        s.streams[0].warnings
    );
}
