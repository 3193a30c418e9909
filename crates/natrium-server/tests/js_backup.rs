//! Stream snapshot and restore through the JetStream API, driven with async-nats: the
//! chunk protocol (acks, last chunk, end status), the archive's contents, a round trip
//! with consumers, the archives real nats-server versions wrote, the point in time
//! under a concurrent publisher, atomic restore (truncated, corrupt and abandoned
//! uploads leave nothing), and the request errors.

mod support;

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures::StreamExt;
use natrium_server::options::Options;
use natrium_store::archive::{ArchiveReader, Entry, ReaderOptions};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::TestServer;

fn js_opts(dir: &Path) -> Options {
    let mut o = Options::for_test();
    o.jetstream.enabled = true;
    o.jetstream.store_dir = Some(dir.to_path_buf());
    o
}

/// Creates stream `name` on one subject, everything else default.
async fn create(js: &jetstream::Context, name: &str, subject: &str) {
    js.create_stream(stream::Config {
        name: name.into(),
        subjects: vec![subject.into()],
        ..Default::default()
    })
    .await
    .unwrap();
}

/// Publishes `n` incompressible 2000-byte messages (acked), so that an archive of them
/// spans many small chunks.
async fn publish_incompressible(js: &jetstream::Context, subject: &str, n: u32) {
    for i in 0..n {
        let body: Vec<u8> = (0..2000u32)
            .map(|k| (k.wrapping_mul(2654435761).wrapping_add(i * 7919) >> 13) as u8)
            .collect();
        js.publish(subject.to_string(), body.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

/// A synchronous publisher running in the background until `stop` is set, bounded in
/// count and time; its task returns how many it published. `body(n)` is message n.
fn background_publisher(
    client: async_nats::Client,
    subject: &'static str,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
    (max, secs): (u32, u64),
    body: impl Fn(u32) -> Bytes + Send + 'static,
) -> tokio::task::JoinHandle<u32> {
    let stop = stop.clone();
    tokio::spawn(async move {
        let js = jetstream::new(client);
        let t = std::time::Instant::now();
        let mut n = 0u32;
        while !stop.load(std::sync::atomic::Ordering::Relaxed)
            && n < max
            && t.elapsed() < Duration::from_secs(secs)
        {
            js.publish(subject, body(n)).await.unwrap().await.unwrap();
            n += 1;
        }
        n
    })
}

/// Stream `BIG` on `big` with 16 MiB (4,096 messages of 4 KiB, published with async
/// acks): enough for a snapshot to take many read batches, so pacing shows in its time.
async fn fill_big(js: &jetstream::Context) {
    create(js, "BIG", "big").await;
    let body = Bytes::from(vec![b'b'; 4096]);
    let mut acks = Vec::new();
    for _ in 0..4096 {
        acks.push(js.publish("big", body.clone()).await.unwrap());
    }
    for a in acks {
        a.await.unwrap();
    }
}

/// Sample archives written by real nats-server versions.
fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../natrium-store/tests/data/backup")
        .join(name)
}

async fn api(client: &async_nats::Client, subject: &str, body: impl Into<Bytes>) -> Value {
    let m = client
        .request(subject.to_string(), body.into())
        .await
        .expect("api request");
    serde_json::from_slice(&m.payload).expect("json answer")
}

/// What a snapshot transfer delivered.
struct Snap {
    answer: Value,
    archive: Vec<u8>,
    /// (length, had a reply subject) per chunk.
    chunks: Vec<(usize, bool)>,
    /// Status code on the end message (None: no header).
    end: Option<u16>,
}

async fn snapshot(client: &async_nats::Client, stream: &str, req: Value) -> Snap {
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(inbox.clone()).await.unwrap();
    let mut req = req;
    req["deliver_subject"] = json!(inbox);
    let answer = api(
        client,
        &format!("$JS.API.STREAM.SNAPSHOT.{stream}"),
        req.to_string(),
    )
    .await;
    assert!(answer.get("error").is_none(), "{answer}");
    let mut archive = Vec::new();
    let mut chunks = Vec::new();
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("chunk in time")
            .expect("subscription open");
        if m.payload.is_empty() {
            return Snap {
                answer,
                archive,
                chunks,
                end: m.status.map(|s| s.as_u16()),
            };
        }
        chunks.push((m.payload.len(), m.reply.is_some()));
        archive.extend_from_slice(&m.payload);
        if let Some(r) = m.reply {
            client.publish(r, Bytes::new()).await.unwrap();
        }
    }
}

/// Upload `archive` as a restore of `config`; returns the final answer.
async fn restore(
    client: &async_nats::Client,
    config: Value,
    archive: &[u8],
    chunk: usize,
) -> Value {
    let name = config["name"].as_str().unwrap().to_string();
    let answer = api(
        client,
        &format!("$JS.API.STREAM.RESTORE.{name}"),
        json!({"config": config, "state": {}}).to_string(),
    )
    .await;
    let upload = answer["deliver_subject"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| panic!("restore refused: {answer}"))
        .to_string();
    for part in archive.chunks(chunk) {
        let r = client
            .request(upload.clone(), Bytes::copy_from_slice(part))
            .await
            .expect("chunk answered");
        assert!(r.payload.is_empty(), "chunk reply {:?}", r.payload);
    }
    let done = client.request(upload, Bytes::new()).await.expect("final");
    serde_json::from_slice(&done.payload).unwrap()
}

/// A decoded archive: state, consumers (name, config, state), messages.
type Decoded = (
    Value,
    Vec<(String, Value, Value)>,
    Vec<(u64, String, Vec<u8>, Vec<u8>)>,
);

/// Decode an archive into (state, consumers, messages as (seq, subject, header, payload)).
fn decode(archive: &[u8]) -> Decoded {
    let staging = tempfile::tempdir().unwrap();
    let mut r = ArchiveReader::new(
        archive,
        ReaderOptions {
            staging_dir: Some(staging.path().to_path_buf()),
            ..ReaderOptions::default()
        },
    )
    .expect("archive opens");
    let mut state = Value::Null;
    let mut consumers = Vec::new();
    let mut msgs = Vec::new();
    while let Some(e) = r.next_entry().expect("archive entry") {
        match e {
            Entry::State(s) => state = serde_json::to_value(s).unwrap(),
            Entry::Consumer {
                name,
                config,
                state,
            } => consumers.push((name, config, serde_json::to_value(state).unwrap())),
            Entry::Message {
                seq,
                subject,
                header,
                payload,
                ..
            } => msgs.push((
                seq,
                String::from_utf8(subject.to_vec()).unwrap(),
                header.to_vec(),
                payload.to_vec(),
            )),
            _ => {}
        }
    }
    (state, consumers, msgs)
}

/// A stream with 30 messages (every 5th with a header), seqs 4 and 5 deleted, and a
/// durable consumer that has acked 2 and holds 1 pending.
async fn fixture(js: &jetstream::Context, name: &str) {
    js.create_stream(stream::Config {
        name: name.into(),
        subjects: vec![format!("{name}.>")],
        ..Default::default()
    })
    .await
    .unwrap();
    for i in 1..=30u32 {
        let mut h = async_nats::HeaderMap::new();
        if i % 5 == 0 {
            h.insert("X-N", i.to_string().as_str());
        }
        js.publish_with_headers(format!("{name}.{}", i % 3), h, format!("m{i}").into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let st = js.get_stream(name).await.unwrap();
    st.delete_message(4).await.unwrap();
    st.delete_message(5).await.unwrap();
    let c = st
        .create_consumer(consumer::pull::Config {
            durable_name: Some("C1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut batch = c.fetch().max_messages(3).messages().await.unwrap();
    let mut n = 0;
    while let Some(m) = batch.next().await {
        let m = m.unwrap();
        n += 1;
        if n <= 2 {
            m.double_ack().await.unwrap();
        }
    }
    assert_eq!(n, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_speaks_the_chunk_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    fixture(&js, "S").await;
    // Ten incompressible messages so the archive spans several 1 KiB chunks.
    for i in 0..10u32 {
        let body: Vec<u8> = (0..400u32)
            .map(|k| (k.wrapping_mul(2654435761).wrapping_add(i * 7919) >> 11) as u8)
            .collect();
        js.publish("S.big", body.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    // Small chunks: all full chunks carry an ack subject, the last short one doesn't,
    // and the end message says 204.
    let snap = snapshot(&client, "S", json!({"chunk_size": 1024})).await;
    assert_eq!(
        snap.answer["type"],
        "io.nats.jetstream.api.v1.stream_snapshot_response"
    );
    assert_eq!(snap.answer["state"]["messages"], 38);
    assert_eq!(snap.answer["state"]["last_seq"], 40);
    assert_eq!(snap.answer["config"]["name"], "S");
    assert!(snap.chunks.len() >= 2, "{:?}", snap.chunks);
    let (last, full) = snap.chunks.split_last().unwrap();
    assert!(full.iter().all(|&(len, reply)| len == 1024 && reply));
    assert!(last.0 <= 1024);
    assert_eq!(last.1, last.0 == 1024);
    assert_eq!(snap.end, Some(204));

    // The archive holds exactly the stream.
    let (state, consumers, msgs) = decode(&snap.archive);
    assert_eq!(state["messages"], 38);
    assert_eq!(state["consumer_count"], 1);
    let seqs: Vec<u64> = msgs.iter().map(|m| m.0).collect();
    let want: Vec<u64> = (1..=40).filter(|s| *s != 4 && *s != 5).collect();
    assert_eq!(seqs, want);
    let m10 = msgs.iter().find(|m| m.0 == 10).unwrap();
    assert_eq!(m10.1, "S.1");
    assert!(String::from_utf8_lossy(&m10.2).contains("X-N: 10"));
    assert_eq!(m10.3, b"m10");
    assert_eq!(consumers.len(), 1);
    assert_eq!(consumers[0].0, "C1");
    assert_eq!(consumers[0].2["ack_floor"]["stream_seq"], 2);
    assert_eq!(consumers[0].2["delivered"]["stream_seq"], 3);
    assert!(consumers[0].2["pending"].get("3").is_some());

    // A snapshot that fits in one chunk ends with a bare empty message; no_consumers
    // leaves them out of the archive.
    let snap = snapshot(&client, "S", json!({"no_consumers": true})).await;
    assert_eq!(snap.chunks.len(), 1);
    assert!(!snap.chunks[0].1);
    assert_eq!(snap.end, None);
    let (state, consumers, _) = decode(&snap.archive);
    assert!(consumers.is_empty());
    assert_eq!(state["consumer_count"], 0);
    assert_eq!(snap.answer["state"]["consumer_count"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_stops_without_acks() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    create(&js, "B", "b").await;
    // Incompressible payloads so the archive spans many chunks.
    publish_incompressible(&js, "b", 40).await;
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(inbox.clone()).await.unwrap();
    let answer = api(
        &client,
        "$JS.API.STREAM.SNAPSHOT.B",
        json!({"deliver_subject": inbox, "chunk_size": 1024, "window_size": 1024}).to_string(),
    )
    .await;
    assert!(answer.get("error").is_none());
    // Never ack: one chunk comes, then after the flow timeout the 408 end.
    let first = sub.next().await.unwrap();
    assert_eq!(first.payload.len(), 1024);
    let end = tokio::time::timeout(Duration::from_secs(9), sub.next())
        .await
        .expect("end marker within the flow timeout")
        .unwrap();
    assert!(end.payload.is_empty());
    assert_eq!(end.status.map(|s| s.as_u16()), Some(408));
    assert_eq!(end.description.as_deref(), Some("No Flow Response"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_keeps_messages_and_consumers() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    fixture(&js, "R").await;
    let snap = snapshot(&client, "R", json!({"chunk_size": 4096})).await;
    let config = snap.answer["config"].clone();

    let dir2 = tempfile::tempdir().unwrap();
    let s2 = TestServer::with(js_opts(dir2.path())).await;
    let client2 = s2.client().await;
    let done = restore(&client2, config.clone(), &snap.archive, 1000).await;
    assert_eq!(
        done["type"], "io.nats.jetstream.api.v1.stream_create_response",
        "{done}"
    );
    assert_eq!(done["state"]["messages"], 28);
    assert_eq!(done["state"]["last_seq"], 30);
    assert_eq!(done["state"]["num_deleted"], 2);
    assert_eq!(done["state"]["consumer_count"], 1);

    let js2 = jetstream::new(client2.clone());
    let mut st = js2.get_stream("R").await.unwrap();
    let info = st.info().await.unwrap();
    assert_eq!(info.state.first_sequence, 1);
    assert_eq!(
        info.state.first_timestamp,
        js.get_stream("R")
            .await
            .unwrap()
            .info()
            .await
            .unwrap()
            .state
            .first_timestamp
    );
    let m = st.get_raw_message(10).await.unwrap();
    assert_eq!(m.subject.as_str(), "R.1");
    assert_eq!(&m.payload[..], b"m10");
    assert_eq!(
        m.headers.get("X-N").map(|v| v.as_str().to_string()),
        Some("10".to_string())
    );
    assert!(st.get_raw_message(4).await.is_err());

    // The consumer resumes where it was: seq 3 pending, next new is 6.
    let mut c: consumer::PullConsumer = st.get_consumer("C1").await.unwrap();
    let ci = c.info().await.unwrap().clone();
    assert_eq!(ci.ack_floor.stream_sequence, 2);
    assert_eq!(ci.delivered.stream_sequence, 3);
    assert_eq!(ci.num_ack_pending, 1);
    assert_eq!(ci.num_pending, 25);

    // Publishing continues after the restored sequence.
    let ack = js2
        .publish("R.x", "new".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(ack.sequence, 31);

    // A memory-storage target works too.
    let mut mem = config.clone();
    mem["name"] = json!("RM");
    mem["subjects"] = json!(["rm.>"]);
    mem["storage"] = json!("memory");
    let done = restore(&client2, mem, &snap.archive, 64 * 1024).await;
    assert_eq!(done["state"]["messages"], 28, "{done}");
    assert_eq!(done["config"]["storage"], "memory");

    // Restored file streams survive a restart.
    s2.stop().await;
    let s2 = TestServer::with(js_opts(dir2.path())).await;
    let js2 = jetstream::new(s2.client().await);
    let mut st = js2.get_stream("R").await.unwrap();
    assert_eq!(st.info().await.unwrap().state.messages, 29);
    let mut c: consumer::PullConsumer = st.get_consumer("C1").await.unwrap();
    assert_eq!(c.info().await.unwrap().ack_floor.stream_sequence, 2);
}

/// Details checked side by side with nats-server 2.15.1 (probe of 2026-12-02): S2
/// frames after the archive's end marker (padding, as tools append) are not part of it;
/// the restored config keeps the metadata as sent (no `_nats.req.level` stamped); a
/// restore request `{}` is a bad request; a negative snapshot chunk size is the smallest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_and_snapshot_details_as_nats_server() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    fixture(&js, "P").await;
    let snap = snapshot(&client, "P", json!({})).await;
    let mut config = snap.answer["config"].clone();
    config["name"] = json!("P2");
    config["subjects"] = json!(["p2.>"]);
    config["metadata"] = json!({"a": "b"});
    let mut padded = snap.archive.clone();
    padded.extend_from_slice(&[0xfe, 4, 0, 0, 0, 0, 0, 0]);
    let done = restore(&client, config, &padded, 4096).await;
    assert!(done.get("error").is_none(), "{done}");
    assert_eq!(done["state"]["messages"], 28, "{done}");
    let meta = done["config"]["metadata"].as_object().unwrap();
    assert_eq!(meta.get("a"), Some(&json!("b")), "{done}");
    assert!(meta.get("_nats.req.level").is_none(), "{done}");

    let bad = api(&client, "$JS.API.STREAM.RESTORE.P3", "{}").await;
    assert_eq!(bad["error"]["err_code"], 10003, "{bad}");

    // An archive of several KiB (incompressible), so the first chunk is a full one.
    create(&js, "Q", "q").await;
    publish_incompressible(&js, "q", 4).await;
    let small = snapshot(&client, "Q", json!({"chunk_size": -5})).await;
    assert_eq!(small.chunks[0], (1024, true), "{:?}", small.chunks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_archives_from_nats_server_releases() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let client = s.client().await;
    for (i, version) in ["v2.15.1", "v2.14.6", "v2.10.26"].iter().enumerate() {
        let archive = std::fs::read(sample(&format!("ORDERS.{version}.stream.tar.s2"))).unwrap();
        let meta: Value = serde_json::from_slice(
            &std::fs::read(sample(&format!("ORDERS.{version}.backup.json"))).unwrap(),
        )
        .unwrap();
        let want = meta["state"].clone();
        let done = restore(&client, meta["config"].clone(), &archive, 64 * 1024).await;
        assert!(done.get("error").is_none(), "{version}: {done}");
        for k in [
            "messages",
            "first_seq",
            "last_seq",
            "num_deleted",
            "consumer_count",
        ] {
            assert_eq!(done["state"][k], want[k], "{version} {k}: {done}");
        }
        let info = api(
            &client,
            "$JS.API.STREAM.INFO.ORDERS",
            json!({"deleted_details": true}).to_string(),
        )
        .await;
        assert_eq!(info["state"]["first_ts"], want["first_ts"], "{version}");
        let del = api(&client, "$JS.API.STREAM.DELETE.ORDERS", "").await;
        assert_eq!(del["success"], true, "{i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_restores_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    fixture(&js, "F").await;
    let snap = snapshot(&client, "F", json!({})).await;
    let mut config = snap.answer["config"].clone();
    config["name"] = json!("G");
    config["subjects"] = json!(["g.>"]);
    let account_dir = dir.path().join("jetstream").join("$G").join("streams");
    let leftovers = || {
        std::fs::read_dir(&account_dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n != "F")
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };

    // Truncated: the error comes in the final answer, and no stream G exists.
    let cut = &snap.archive[..snap.archive.len() / 2];
    let done = restore(&client, config.clone(), cut, 100).await;
    assert_eq!(done["error"]["err_code"], 10062, "{done}");
    let info = api(&client, "$JS.API.STREAM.INFO.G", "").await;
    assert_eq!(info["error"]["err_code"], 10059);
    assert!(leftovers().is_empty(), "{:?}", leftovers());

    // Bit-flipped: refused the same way.
    let mut flipped = snap.archive.clone();
    let at = flipped.len() - 20;
    flipped[at] ^= 0x40;
    let done = restore(&client, config.clone(), &flipped, 64 * 1024).await;
    assert_eq!(done["error"]["err_code"], 10062, "{done}");
    assert_eq!(
        api(&client, "$JS.API.STREAM.INFO.G", "").await["error"]["err_code"],
        10059
    );

    // Not an archive at all.
    let done = restore(
        &client,
        config.clone(),
        b"definitely not an archive",
        64 * 1024,
    )
    .await;
    assert_eq!(done["error"]["err_code"], 10062, "{done}");

    // Abandoned mid-upload: after the idle timeout the upload subject is gone and so is
    // the staging data.
    let answer = api(
        &client,
        "$JS.API.STREAM.RESTORE.G",
        json!({"config": config, "state": {}}).to_string(),
    )
    .await;
    let upload = answer["deliver_subject"].as_str().unwrap().to_string();
    client
        .request(upload.clone(), Bytes::copy_from_slice(&snap.archive[..100]))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert!(
        client
            .request(upload, Bytes::from_static(b"x"))
            .await
            .is_err()
    );
    assert_eq!(
        api(&client, "$JS.API.STREAM.INFO.G", "").await["error"]["err_code"],
        10059
    );
    assert!(leftovers().is_empty(), "{:?}", leftovers());

    // A failure after the stream went live (a consumer the server cannot
    // open: its filter is not a subject) takes the stream back out.
    let bad = {
        use natrium_store::archive::{ArchiveWriter, ConsumerStateJson, StreamStateJson};
        let mut w = ArchiveWriter::new(Vec::new());
        w.state(&StreamStateJson {
            messages: 1,
            first_seq: 1,
            last_seq: 1,
            consumer_count: 1,
            ..Default::default()
        })
        .unwrap();
        w.consumer(
            "E",
            &json!({"name": "E", "filter_subject": "g..bad", "ack_policy": "explicit",
                    "deliver_policy": "all", "replay_policy": "instant"}),
            &ConsumerStateJson::default(),
        )
        .unwrap();
        w.message(1, 1, b"g.x", b"", b"m").unwrap();
        w.finish().unwrap()
    };
    let done = restore(&client, config.clone(), &bad, 64 * 1024).await;
    assert!(done.get("error").is_some(), "{done}");
    assert_eq!(
        api(&client, "$JS.API.STREAM.INFO.G", "").await["error"]["err_code"],
        10059
    );
    assert!(leftovers().is_empty(), "{:?}", leftovers());

    // And the good archive still restores under that name afterwards.
    let done = restore(&client, config, &snap.archive, 64 * 1024).await;
    assert_eq!(done["state"]["messages"], 28, "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_is_a_point_in_time_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    create(&js, "P", "p").await;
    for i in 0..2000u32 {
        js.publish("p", format!("before-{i}").into()).await.unwrap();
    }
    js.publish("p", "sync".into()).await.unwrap().await.unwrap();
    // A publisher runs during the whole backup (bounded in count and time).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = background_publisher(s.client().await, "p", &stop, (50_000, 20), |n| {
        format!("during-{n}").into()
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let snap = snapshot(&client, "P", json!({"chunk_size": 1024})).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let published = publisher.await.unwrap();
    assert!(published > 0);
    let watermark = snap.answer["state"]["last_seq"].as_u64().unwrap();
    let (_, _, msgs) = decode(&snap.archive);
    // Exactly the prefix 1..=watermark, nothing missing, nothing after.
    let seqs: Vec<u64> = msgs.iter().map(|m| m.0).collect();
    assert_eq!(seqs, (1..=watermark).collect::<Vec<_>>());
    let total = js
        .get_stream("P")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .last_sequence;
    assert!(total >= watermark);
}

/// The state a snapshot answers with, and writes into its archive, describes exactly
/// the messages the archive holds, also while publishers wait for their fsyncs (their
/// messages are stored but not yet durable, so not in the snapshot): every message here
/// has the same accounted size, so bytes must be messages x that size. (Bytes once
/// counted a message still in flight: a third of backups under load were off by one.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_state_counts_exactly_what_the_archive_holds_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    create(&js, "Q", "q").await;
    let body = Bytes::from(vec![b'x'; 100]);
    for _ in 0..50 {
        js.publish("q", body.clone()).await.unwrap().await.unwrap();
    }
    let mut q = js.get_stream("Q").await.unwrap();
    let info = q.info().await.unwrap().state.clone();
    let per = info.bytes / info.messages;
    assert_eq!(per * info.messages, info.bytes);
    // Sync publishers run during all the snapshots (bounded in count and time).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut publishers = Vec::new();
    for _ in 0..3 {
        let body = body.clone();
        publishers.push(background_publisher(
            s.client().await,
            "q",
            &stop,
            (20_000, 30),
            move |_| body.clone(),
        ));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    for round in 0..25 {
        let snap = snapshot(&client, "Q", json!({"chunk_size": 1 << 20})).await;
        let (state, _, msgs) = decode(&snap.archive);
        for (what, st) in [("answer", &snap.answer["state"]), ("archive", &state)] {
            let m = st["messages"].as_u64().unwrap();
            assert_eq!(m, msgs.len() as u64, "round {round}, {what}: {st}");
            assert_eq!(
                st["bytes"].as_u64().unwrap(),
                m * per,
                "round {round}, {what}: {st}"
            );
            assert_eq!(
                st["last_seq"].as_u64().unwrap(),
                msgs.last().unwrap().0,
                "round {round}, {what}"
            );
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for p in publishers {
        assert!(p.await.unwrap() > 0);
    }
}

/// A client may retry a failed restore at once: the name is free again by the time the
/// final (error) answer arrives. It was freed only after the answer and the completion
/// advisory, so an immediate retry was now and then refused as a restore in progress
/// (seen once in CI, in `failed_restores_leave_nothing_behind`); the window was that
/// short, and this loop does not hit it reliably against the old order. The fix is
/// structural (the claim is dropped before the answer is sent); this keeps the retry
/// path exercised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_restore_can_be_retried_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let client = s.client().await;
    let config = json!({"name": "R", "subjects": ["r"], "storage": "file"});
    for round in 0..30 {
        // `restore` panics if the request is refused.
        let done = restore(&client, config.clone(), b"not an archive", 1024).await;
        assert_eq!(done["error"]["err_code"], 10062, "round {round}: {done}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_errors_match_nats_server() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    fixture(&js, "E").await;
    let err = |v: &Value| v["error"]["err_code"].as_u64();
    // Snapshot.
    assert_eq!(
        err(&api(&client, "$JS.API.STREAM.SNAPSHOT.E", "").await),
        Some(10003)
    );
    assert_eq!(
        err(&api(&client, "$JS.API.STREAM.SNAPSHOT.E", "{}").await),
        Some(10003)
    );
    assert_eq!(
        err(&api(
            &client,
            "$JS.API.STREAM.SNAPSHOT.NOPE",
            r#"{"deliver_subject":"x"}"#
        )
        .await),
        Some(10059)
    );
    assert_eq!(
        err(&api(
            &client,
            "$JS.API.STREAM.SNAPSHOT.E",
            r#"{"deliver_subject":"x.*"}"#
        )
        .await),
        Some(10015)
    );
    let v = api(
        &client,
        "$JS.API.STREAM.SNAPSHOT.E",
        r#"{"deliver_subject":5}"#,
    )
    .await;
    assert_eq!(err(&v), Some(10025));
    assert_eq!(
        v["type"],
        "io.nats.jetstream.api.v1.stream_snapshot_response"
    );
    // Restore.
    let v = api(&client, "$JS.API.STREAM.RESTORE.E", "").await;
    assert_eq!(err(&v), Some(10003));
    assert_eq!(v["deliver_subject"], "");
    let cfg = json!({"config": {"name": "E", "subjects": ["e2"]}, "state": {}});
    assert_eq!(
        err(&api(&client, "$JS.API.STREAM.RESTORE.E", cfg.to_string()).await),
        Some(10130)
    );
    let cfg = json!({"config": {"name": "OTHER"}, "state": {}});
    let v = api(&client, "$JS.API.STREAM.RESTORE.E", cfg.to_string()).await;
    assert_eq!(err(&v), Some(10056));
    assert_eq!(
        v["type"],
        "io.nats.jetstream.api.v1.stream_restore_response"
    );
    // A config with a field natrium does not act on yet is refused, as on create.
    let cfg = json!({"config": {"name": "M", "subjects": ["m"],
            "republish": {"src": ">", "dest": "rp.{{partition(2,1)}}"}}, "state": {}});
    // (`partition(2,1)` names a wildcard `>` does not have: natrium cannot apply it.)
    let v = api(&client, "$JS.API.STREAM.RESTORE.M", cfg.to_string()).await;
    assert_eq!(err(&v), Some(10052), "{v}");
    assert!(
        v["error"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("republish")),
        "{v}"
    );
    // A second restore of a name that is being restored is refused.
    let cfg = json!({"config": {"name": "Q", "subjects": ["q"]}, "state": {}});
    let first = api(&client, "$JS.API.STREAM.RESTORE.Q", cfg.to_string()).await;
    assert!(
        first["deliver_subject"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    assert_eq!(
        err(&api(&client, "$JS.API.STREAM.RESTORE.Q", cfg.to_string()).await),
        Some(10130)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_checks_account_limits_before_taking_data() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    fixture(&js, "L").await;
    let snap = snapshot(&client, "L", json!({})).await;
    let declared = snap.answer["state"]["bytes"].as_u64().unwrap();
    assert!(declared > 0);

    let dir2 = tempfile::tempdir().unwrap();
    let mut o = js_opts(dir2.path());
    o.jetstream.max_store = Some((declared / 2) as i64);
    let s2 = TestServer::with(o).await;
    let client2 = s2.client().await;
    let done = restore(
        &client2,
        snap.answer["config"].clone(),
        &snap.archive,
        64 * 1024,
    )
    .await;
    assert_eq!(done["error"]["err_code"], 10047, "{done}");
    let info = api(&client2, "$JS.API.STREAM.INFO.L", "").await;
    assert_eq!(info["error"]["err_code"], 10059);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_during_a_snapshot_do_not_reach_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    create(&js, "D", "d.>").await;
    for i in 1..=3000u32 {
        js.publish(format!("d.{}", i % 5), format!("payload-{i}").into())
            .await
            .unwrap();
    }
    js.publish("d.x", "last".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(inbox.clone()).await.unwrap();
    let answer = api(
        &client,
        "$JS.API.STREAM.SNAPSHOT.D",
        json!({"deliver_subject": inbox, "chunk_size": 1024, "window_size": 1024}).to_string(),
    )
    .await;
    assert_eq!(answer["state"]["last_seq"], 3001);
    // First chunk in hand (the producer is held back by the window): now delete,
    // purge a subject, then purge everything and publish more.
    let first = sub.next().await.unwrap();
    let mut archive = first.payload.to_vec();
    let st = js.get_stream("D").await.unwrap();
    st.delete_message(2000).await.unwrap();
    let purged = api(&client, "$JS.API.STREAM.PURGE.D", r#"{"filter":"d.1"}"#).await;
    assert!(purged["purged"].as_u64().unwrap() > 0, "{purged}");
    let purged = api(&client, "$JS.API.STREAM.PURGE.D", "").await;
    assert_eq!(purged["success"], true);
    js.publish("d.after", "after".into())
        .await
        .unwrap()
        .await
        .unwrap();
    client
        .publish(first.reply.unwrap(), Bytes::new())
        .await
        .unwrap();
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .unwrap()
            .unwrap();
        if m.payload.is_empty() {
            assert_eq!(m.status.map(|s| s.as_u16()), Some(204));
            break;
        }
        archive.extend_from_slice(&m.payload);
        if let Some(r) = m.reply {
            client.publish(r, Bytes::new()).await.unwrap();
        }
    }
    let (_, _, msgs) = decode(&archive);
    let seqs: Vec<u64> = msgs.iter().map(|m| m.0).collect();
    assert_eq!(seqs, (1..=3001).collect::<Vec<_>>());
    let m = msgs.iter().find(|m| m.0 == 2000).unwrap();
    assert_eq!(m.3, b"payload-2000");
    assert_eq!(m.1, "d.0");
    // The stream itself is purged.
    let info = api(&client, "$JS.API.STREAM.INFO.D", "").await;
    assert_eq!(info["state"]["messages"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_mid_backup_ends_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let watcher = s.client().await;
    let js = jetstream::new(watcher.clone());
    create(&js, "G", "g").await;
    publish_incompressible(&js, "g", 40).await;
    let mut done = watcher
        .subscribe("$JS.EVENT.ADVISORY.STREAM.SNAPSHOT_COMPLETE.G")
        .await
        .unwrap();
    watcher.flush().await.unwrap();
    // The backup client takes one chunk and disconnects.
    let gone = s.client().await;
    let inbox = gone.new_inbox();
    let mut sub = gone.subscribe(inbox.clone()).await.unwrap();
    let answer = api(
        &gone,
        "$JS.API.STREAM.SNAPSHOT.G",
        json!({"deliver_subject": inbox, "chunk_size": 1024, "window_size": 2048}).to_string(),
    )
    .await;
    assert!(answer.get("error").is_none());
    let first = sub.next().await.unwrap();
    assert_eq!(first.payload.len(), 1024);
    drop(sub);
    drop(gone);
    // The server notices at once, though its window is full and it waits for acks (as
    // nats-server, which watches the interest; not after the 5 s flow timeout), ends
    // the transfer and says so.
    let left = std::time::Instant::now();
    let adv = tokio::time::timeout(Duration::from_secs(10), done.next())
        .await
        .expect("completion advisory")
        .unwrap();
    let v: Value = serde_json::from_slice(&adv.payload).unwrap();
    assert_eq!(v["type"], "io.nats.jetstream.advisory.v1.snapshot_complete");
    assert_eq!(v["error"], "no interest", "{v}");
    assert!(
        left.elapsed() < Duration::from_secs(3),
        "{:?}",
        left.elapsed()
    );
    // The stream is untouched and a new backup works.
    let snap = snapshot(&watcher, "G", json!({})).await;
    assert_eq!(snap.answer["state"]["messages"], 40);
}

/// The `natrium_since` extension: the answer echoes it, the archive is an incremental
/// one (messages above the base, tombstones up to it, full state), a restore of it
/// alone is refused, and a base beyond the stream's last sequence is an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_snapshot_extension() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    create(&js, "INC", "inc.>").await;
    for i in 1..=20u32 {
        js.publish(format!("inc.{}", i % 2), format!("m{i}").into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let st = js.get_stream("INC").await.unwrap();
    st.delete_message(3).await.unwrap();
    st.delete_message(15).await.unwrap();
    st.purge().sequence(2).await.unwrap();

    let snap = snapshot(&client, "INC", json!({"natrium_since": 10})).await;
    assert_eq!(snap.answer["natrium_since"], 10);
    assert_eq!(snap.answer["state"]["last_seq"], 20);
    let r = ArchiveReader::new(&snap.archive[..], ReaderOptions::default()).unwrap();
    let h = r.incremental().expect("incremental header").clone();
    assert_eq!(h.since, 10);
    assert_eq!(h.absent, vec![(1, 1), (3, 3)]);
    let seqs: Vec<u64> = {
        let mut r = r;
        let mut v = Vec::new();
        while let Some(e) = r.next_entry().unwrap() {
            if let Entry::Message { seq, .. } = e {
                v.push(seq);
            }
        }
        v
    };
    assert_eq!(seqs, (11..=20).filter(|s| *s != 15).collect::<Vec<_>>());

    // One link alone is not a stream: refused.
    let mut cfg = snap.answer["config"].clone();
    cfg["name"] = json!("INC2");
    cfg["subjects"] = json!(["inc2.>"]);
    let done = restore(&client, cfg, &snap.archive, 4096).await;
    let err = done["error"]["description"].as_str().unwrap_or_default();
    assert!(err.contains("incremental archive"), "{done}");
    assert!(js.get_stream("INC2").await.is_err());

    // A base beyond the stream: an error, no transfer.
    let inbox = client.new_inbox();
    let a = api(
        &client,
        "$JS.API.STREAM.SNAPSHOT.INC",
        json!({"deliver_subject": inbox, "natrium_since": 99}).to_string(),
    )
    .await;
    assert_eq!(a["error"]["err_code"], 10064, "{a}");
    // Without the field the answer carries no echo.
    let full = snapshot(&client, "INC", json!({})).await;
    assert!(full.answer.get("natrium_since").is_none());
}

/// Start a restore of `config` with `ext` merged into the request; returns the answer.
async fn restore_request(client: &async_nats::Client, config: &Value, ext: Value) -> Value {
    let name = config["name"].as_str().unwrap();
    let mut req = json!({"config": config, "state": {}});
    if let (Some(r), Some(e)) = (req.as_object_mut(), ext.as_object()) {
        r.extend(e.clone());
    }
    api(
        client,
        &format!("$JS.API.STREAM.RESTORE.{name}"),
        req.to_string(),
    )
    .await
}

/// Upload `data` to `upload` in `chunk`-sized requests, each acked empty.
async fn upload_part(client: &async_nats::Client, upload: &str, data: &[u8], chunk: usize) {
    for part in data.chunks(chunk) {
        let r = client
            .request(upload.to_string(), Bytes::copy_from_slice(part))
            .await
            .expect("chunk answered");
        assert!(r.payload.is_empty(), "chunk reply {:?}", r.payload);
    }
}

/// The tail of `archive` after `after`, as a resumed upload takes it.
fn tail(archive: &[u8], after: u64) -> Vec<u8> {
    natrium_store::archive::merge_chain_after(
        vec![archive],
        Vec::new(),
        &ReaderOptions::default(),
        Some(after),
    )
    .expect("tail")
    .0
}

/// natrium extension: a resumable restore whose client goes away keeps its verified
/// part hidden; a resume with the same id continues from its last sequence and ends in
/// the same stream as an uninterrupted restore. A gap, a wrong id or configuration, an
/// expired hold, and a resume with nothing parked are clear errors, and no stream is
/// visible before the whole archive is in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_resumable_restore_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    fixture(&js, "F").await;
    // About 5 MB of incompressible payloads: several 1 MiB archive frames, so that half
    // an upload holds complete messages.
    let mut acks = Vec::new();
    for i in 0..2500u32 {
        let body: Vec<u8> = (0..2000u32)
            .map(|k| (k.wrapping_mul(2654435761).wrapping_add(i * 7919) >> 13) as u8)
            .collect();
        acks.push(js.publish("F.big", body.into()).await.unwrap());
        if acks.len() >= 256 {
            for a in acks.drain(..) {
                a.await.unwrap();
            }
        }
    }
    for a in acks {
        a.await.unwrap();
    }
    let snap = snapshot(&client, "F", json!({})).await;
    let (_, want_consumers, want_msgs) = decode(&snap.archive);
    let account_dir = dir.path().join("jetstream").join("$G").join("streams");
    let staging_of = |name: &str| {
        std::fs::read_dir(&account_dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&format!(".restore-{name}-")))
                    .count()
            })
            .unwrap_or(0)
    };
    let config_of = |name: &str| {
        let mut c = snap.answer["config"].clone();
        c["name"] = json!(name);
        c["subjects"] = json!([format!("{}.>", name.to_lowercase())]);
        c
    };
    let missing = |v: &Value| v["error"]["err_code"] == 10059;
    // R1 is resumed, R2 resumed with a gap, R3 expires: all interrupted at once.
    let half = snap.archive.len() / 2;
    for (name, hold) in [("R1", 60), ("R2", 60), ("R3", 1)] {
        let a = restore_request(
            &client,
            &config_of(name),
            json!({"natrium_resumable": {"id": format!("id-{name}"), "hold": hold}}),
        )
        .await;
        assert_eq!(a["natrium_resumable"], format!("id-{name}"), "{a}");
        let upload = a["deliver_subject"].as_str().unwrap().to_string();
        upload_part(&client, &upload, &snap.archive[..half], 4096).await;
    }
    // Still receiving: a resume is refused (and does not disturb it).
    let busy = restore_request(
        &client,
        &config_of("R1"),
        json!({"natrium_resume": "id-R1"}),
    )
    .await;
    assert!(
        busy["error"]["description"]
            .as_str()
            .unwrap()
            .contains("still receiving"),
        "{busy}"
    );
    // The idle timeout (5 s) parks them; R3's hold of 1 s then runs out.
    tokio::time::sleep(Duration::from_millis(7500)).await;
    for name in ["R1", "R2", "R3"] {
        let info = api(&client, &format!("$JS.API.STREAM.INFO.{name}"), "").await;
        assert!(missing(&info), "{name} visible: {info}");
    }
    assert_eq!(
        (staging_of("R1"), staging_of("R2")),
        (1, 1),
        "{:?}",
        std::fs::read_dir(&account_dir).map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
    );
    assert_eq!(staging_of("R3"), 0, "expired staging left behind");

    // Errors that keep the parked part: another archive's id, another configuration.
    let e = restore_request(
        &client,
        &config_of("R1"),
        json!({"natrium_resume": "other"}),
    )
    .await;
    let d = e["error"]["description"].as_str().unwrap_or("").to_string();
    assert!(d.contains("another archive"), "{e}");
    let mut changed = config_of("R1");
    changed["max_msgs"] = json!(5);
    let e = restore_request(&client, &changed, json!({"natrium_resume": "id-R1"})).await;
    let d = e["error"]["description"].as_str().unwrap_or("").to_string();
    assert!(d.contains("configuration differs"), "{e}");

    // The resume: the server says how far it got; the rest completes the stream.
    let a = restore_request(
        &client,
        &config_of("R1"),
        json!({"natrium_resume": "id-R1"}),
    )
    .await;
    let point = &a["natrium_resume"];
    let last = point["last_seq"].as_u64().expect("resume point");
    let total_last = want_msgs.last().unwrap().0;
    assert!(last > 30 && last < total_last, "{a}");
    assert_eq!(a["natrium_resumable"], "id-R1", "{a}");
    let upload = a["deliver_subject"].as_str().unwrap().to_string();
    upload_part(&client, &upload, &tail(&snap.archive, last), 4096).await;
    assert!(missing(&api(&client, "$JS.API.STREAM.INFO.R1", "").await));
    let done = client.request(upload, Bytes::new()).await.unwrap();
    let done: Value = serde_json::from_slice(&done.payload).unwrap();
    assert_eq!(done["state"]["messages"], want_msgs.len(), "{done}");
    assert_eq!(done["state"]["last_seq"], total_last, "{done}");
    let again = snapshot(&client, "R1", json!({})).await;
    let (_, got_consumers, got_msgs) = decode(&again.archive);
    assert!(got_msgs == want_msgs, "resumed stream differs");
    let states = |c: &[(String, Value, Value)]| {
        c.iter()
            .map(|(n, _, s)| (n.clone(), s["delivered"].clone(), s["ack_floor"].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(states(&got_consumers), states(&want_consumers));
    assert_eq!(staging_of("R1"), 0);

    // A gap: the upload continues from another sequence. Refused, nothing visible,
    // and the parked part is gone (the archive is wrong, not the connection).
    let a = restore_request(
        &client,
        &config_of("R2"),
        json!({"natrium_resume": "id-R2"}),
    )
    .await;
    let last = a["natrium_resume"]["last_seq"]
        .as_u64()
        .expect("resume point");
    let upload = a["deliver_subject"].as_str().unwrap().to_string();
    upload_part(&client, &upload, &tail(&snap.archive, last - 1), 4096).await;
    let done = client.request(upload, Bytes::new()).await.unwrap();
    let done: Value = serde_json::from_slice(&done.payload).unwrap();
    let d = done["error"]["description"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(d.contains("gap"), "{done}");
    assert!(missing(&api(&client, "$JS.API.STREAM.INFO.R2", "").await));
    assert_eq!(staging_of("R2"), 0);

    // Nothing parked (R2 failed, R3 expired, R4 never started): a clear error.
    for name in ["R2", "R3", "R4"] {
        let e = restore_request(&client, &config_of(name), json!({"natrium_resume": "x"})).await;
        let d = e["error"]["description"].as_str().unwrap_or("").to_string();
        assert!(d.contains("no interrupted restore"), "{name}: {e}");
        assert!(missing(
            &api(&client, &format!("$JS.API.STREAM.INFO.{name}"), "").await
        ));
    }
    // Malformed extensions are refused before anything starts.
    for bad in [
        json!({"natrium_resumable": {"id": "x", "hold": 0}}),
        json!({"natrium_resumable": {"id": "x", "hold": 3601}}),
        json!({"natrium_resumable": {"hold": 10}}),
        json!({"natrium_resumable": ""}),
        json!({"natrium_resume": 5}),
    ] {
        let e = restore_request(&client, &config_of("R4"), bad.clone()).await;
        assert_eq!(e["error"]["err_code"], 10062, "{bad}: {e}");
        assert!(missing(&api(&client, "$JS.API.STREAM.INFO.R4", "").await));
    }
    // A plain restore of the whole archive still works for those names.
    let done = restore(&client, config_of("R3"), &snap.archive, 64 * 1024).await;
    assert_eq!(done["state"]["messages"], want_msgs.len(), "{done}");
}

/// A stream deleted while its backup is under way: the delete succeeds at once, the
/// transfer still ends cleanly (the view keeps the segment files it pinned open, so
/// the archive is the whole point in time), nothing of the stream is left on disk
/// afterwards, and a new stream of the same name starts empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_deleted_mid_backup_still_ends_cleanly() {
    deleted_mid_backup(stream::StorageType::File).await;
}

/// The same for a memory stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_stream_deleted_mid_backup_still_ends_cleanly() {
    deleted_mid_backup(stream::StorageType::Memory).await;
}

async fn deleted_mid_backup(storage: stream::StorageType) {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    let config = stream::Config {
        name: "DX".into(),
        subjects: vec!["dx".into()],
        storage,
        ..Default::default()
    };
    js.create_stream(config.clone()).await.unwrap();
    publish_incompressible(&js, "dx", 60).await;
    let stream_dirs = || -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut todo = vec![dir.path().to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    if p.file_name().is_some_and(|n| n == "DX") {
                        found.push(p.clone());
                    }
                    todo.push(p);
                }
            }
        }
        found
    };
    let on_disk = usize::from(storage == stream::StorageType::File);
    assert_eq!(stream_dirs().len(), on_disk, "the stream's folder");

    let inbox = client.new_inbox();
    let mut sub = client.subscribe(inbox.clone()).await.unwrap();
    let answer = api(
        &client,
        "$JS.API.STREAM.SNAPSHOT.DX",
        json!({"deliver_subject": inbox, "chunk_size": 1024, "window_size": 1024}).to_string(),
    )
    .await;
    assert!(answer.get("error").is_none(), "{answer}");
    // One chunk in, the stream goes (its only chunk in flight is not acked yet).
    let first = next_in_time(&mut sub).await;
    assert_eq!(first.payload.len(), 1024);
    let deleted = api(&client, "$JS.API.STREAM.DELETE.DX", "").await;
    assert_eq!(deleted["success"], true, "{deleted}");
    let (archive, end) = finish_transfer(&client, &mut sub, first).await;
    assert!(end.is_none() || end == Some(204), "end status {end:?}");
    let (state, _, msgs) = decode(&archive);
    assert_eq!(state["messages"], 60, "{state}");
    assert_eq!(msgs.len(), 60);
    assert_eq!(msgs.last().map(|m| m.0), Some(60));

    let info = api(&client, "$JS.API.STREAM.INFO.DX", "").await;
    assert_eq!(info["error"]["err_code"], 10059, "{info}");
    // The files are released with the view: nothing of DX stays on disk.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !stream_dirs().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "left on disk: {:?}",
            stream_dirs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    js.create_stream(config).await.unwrap();
    let info = api(&client, "$JS.API.STREAM.INFO.DX", "").await;
    assert_eq!(info["state"]["messages"], 0, "{info}");
}

/// The next message of `sub`, within 10 s.
async fn next_in_time(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("a chunk or the end in time")
        .expect("subscription open")
}

/// natrium's keep-alive (`natrium_keepalive`): a receiver busy with what it got (a
/// slow upload, say) sends `<ack prefix>.keepalive` instead of acks, and the flow
/// timeout (5 s) counts from the last one: a window left full for 7 s with a keep-alive
/// every second does not end the transfer, which then goes on to the end. The answer
/// echoes the field; a keep-alive returns no slot (no chunk comes for one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalives_hold_off_the_flow_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    create(&js, "KA", "ka").await;
    publish_incompressible(&js, "ka", 10).await;
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(inbox.clone()).await.unwrap();
    let answer = api(
        &client,
        "$JS.API.STREAM.SNAPSHOT.KA",
        json!({"deliver_subject": inbox, "chunk_size": 1024, "window_size": 1024,
               "natrium_keepalive": true})
        .to_string(),
    )
    .await;
    assert_eq!(answer["natrium_keepalive"], true, "{answer}");
    let first = next_in_time(&mut sub).await;
    let reply = first
        .reply
        .clone()
        .expect("a full chunk has an ack subject");
    // `<prefix>.<length>.<number>`: the keep-alive goes to `<prefix>.keepalive`.
    let prefix = reply
        .rsplitn(3, '.')
        .nth(2)
        .expect("ack prefix")
        .to_string();
    let keepalive = format!("{prefix}.keepalive");
    let held = std::time::Instant::now();
    while held.elapsed() < Duration::from_secs(7) {
        client
            .publish(keepalive.clone(), Bytes::new())
            .await
            .unwrap();
        client.flush().await.unwrap();
        // Nothing comes meanwhile: the window is full and keep-alives free no slot.
        assert!(
            tokio::time::timeout(Duration::from_secs(1), sub.next())
                .await
                .is_err(),
            "a message came while the window was full"
        );
    }
    let (archive, end) = finish_transfer(&client, &mut sub, first).await;
    assert!(end.is_none() || end == Some(204), "end status {end:?}");
    let (_, _, msgs) = decode(&archive);
    assert_eq!(msgs.len(), 10);
}

/// Take a transfer from its chunk `first` (not yet acked) to the end: ack each chunk
/// that asks for it, collect the archive; returns it and the end message's status.
async fn finish_transfer(
    client: &async_nats::Client,
    sub: &mut async_nats::Subscriber,
    first: async_nats::Message,
) -> (Vec<u8>, Option<u16>) {
    let mut archive = first.payload.to_vec();
    let mut reply = first.reply;
    loop {
        if let Some(r) = reply.take() {
            client.publish(r, Bytes::new()).await.unwrap();
        }
        let m = next_in_time(sub).await;
        if m.payload.is_empty() {
            return (archive, m.status.map(|c| c.as_u16()));
        }
        archive.extend_from_slice(&m.payload);
        reply = m.reply;
    }
}

/// A snapshot yields to publishers anywhere in the server (`jetstream { backup_share }`),
/// and so does a restore if asked (`restore_share`): with a share of 1% and a publisher
/// on another stream, each MiB read (or stored) is followed by a pause of 99 times its
/// work (at most 100 ms), so 16 MiB take well over a second; without the publisher, or
/// with a share of 100, they take a fraction of that (checked: ~0.1 s for the snapshot
/// and ~0.07 s for the restore in a debug build).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_and_restores_yield_to_live_publishers() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = js_opts(dir.path());
    o.jetstream.backup_share = Some(1);
    o.jetstream.restore_share = Some(1);
    let s = TestServer::with(o).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    fill_big(&js).await;
    create(&js, "LIVE", "live").await;
    let quiet = std::time::Instant::now();
    let snap = snapshot(&client, "BIG", json!({"chunk_size": 1 << 20})).await;
    let quiet = quiet.elapsed();
    // A sync publisher on the other stream for the whole backup and restore (bounded).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = background_publisher(s.client().await, "live", &stop, (200_000, 60), |_| {
        Bytes::from_static(b"x")
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let busy = std::time::Instant::now();
    let snap2 = snapshot(&client, "BIG", json!({"chunk_size": 1 << 20})).await;
    let busy = busy.elapsed();
    let mut config = snap.answer["config"].clone();
    config["name"] = json!("BIG2");
    config["subjects"] = json!(["big2"]);
    let restoring = std::time::Instant::now();
    let answer = restore(&client, config, &snap.archive, 1 << 20).await;
    let restoring = restoring.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(publisher.await.unwrap() > 0);
    assert!(answer.get("error").is_none(), "{answer}");
    assert_eq!(answer["state"]["messages"], 4096, "{answer}");
    assert_eq!(snap2.end, snap.end);
    assert_eq!(decode(&snap.archive).2.len(), 4096);
    assert_eq!(decode(&snap2.archive).2.len(), 4096);
    // 16 MiB, each paused 99x its work or 100 ms: at least ~1 s unless a MiB took
    // under 0.6 ms (it does not: records to check, frame or store).
    assert!(
        busy >= Duration::from_millis(900),
        "snapshot yielded: {busy:?} with a publisher, {quiet:?} without"
    );
    assert!(
        restoring >= Duration::from_millis(900),
        "restore yielded: {restoring:?} with a publisher"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_yield_to_live_consumers_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = js_opts(dir.path());
    o.jetstream.backup_share = Some(1);
    let s = TestServer::with(o).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    fill_big(&js).await;
    create(&js, "WORK", "work").await;
    js.publish("work", "job".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let quiet = std::time::Instant::now();
    snapshot(&client, "BIG", json!({"chunk_size": 1 << 20})).await;
    let quiet = quiet.elapsed();
    // A worker that takes the one job and naks it, over and over (bounded): no publish
    // at all during the backup, only a consumer delivering and taking acks.
    let stream = js.get_stream("WORK").await.unwrap();
    let worker = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("W".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    let rounds = tokio::spawn(async move {
        let t = std::time::Instant::now();
        let mut n = 0u32;
        while !stopped.load(std::sync::atomic::Ordering::Relaxed)
            && n < 200_000
            && t.elapsed() < Duration::from_secs(60)
        {
            let mut batch = worker.fetch().max_messages(1).messages().await.unwrap();
            if let Some(m) = batch.next().await {
                let m = m.unwrap();
                m.ack_with(jetstream::AckKind::Nak(None)).await.unwrap();
                n += 1;
            }
        }
        n
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let busy = std::time::Instant::now();
    let snap = snapshot(&client, "BIG", json!({"chunk_size": 1 << 20})).await;
    let busy = busy.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(rounds.await.unwrap() > 0, "the worker got its job");
    assert_eq!(decode(&snap.archive).2.len(), 4096);
    // As with a publisher: 16 MiB, each MiB's work followed by 99x its time or 100 ms.
    assert!(
        busy >= Duration::from_millis(900),
        "snapshot yielded: {busy:?} beside a consumer, {quiet:?} without"
    );
}
