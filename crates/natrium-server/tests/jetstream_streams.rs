//! JetStream streams through async-nats: create, publish with acks, info, purge, get,
//! delete, expectations, de-duplication, restart, and KV basics.

mod support;

use async_nats::jetstream::{self, stream};
use natrium_server::options::Options;
use std::time::Duration;
use support::TestServer;

fn js_opts(dir: &std::path::Path) -> Options {
    let mut o = Options::for_test();
    o.jetstream.enabled = true;
    o.jetstream.store_dir = Some(dir.to_path_buf());
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_publish_info_get_purge_delete() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let c = s.client().await;
    let js = jetstream::new(c.clone());
    let mut st = js
        .create_stream(stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.>".into()],
            ..Default::default()
        })
        .await
        .expect("create");
    for i in 0..10 {
        let ack = js
            .publish(format!("orders.{}", i % 3), format!("o{i}").into())
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!(ack.sequence, i + 1);
        assert_eq!(ack.stream, "ORDERS");
    }
    let info = st.info().await.unwrap();
    assert_eq!(info.state.messages, 10);
    assert_eq!(info.state.last_sequence, 10);
    let m = st.get_raw_message(4).await.unwrap();
    assert_eq!(m.subject.as_str(), "orders.0");
    assert_eq!(&m.payload[..], b"o3");
    let last = st
        .get_last_raw_message_by_subject("orders.1")
        .await
        .unwrap();
    assert_eq!(last.sequence, 8);
    st.purge().filter("orders.2").await.unwrap();
    assert_eq!(st.info().await.unwrap().state.messages, 7);
    js.delete_stream("ORDERS").await.unwrap();
    assert!(js.get_stream("ORDERS").await.is_err());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_survives_restart_with_dedup_window() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = TestServer::with(js_opts(dir.path())).await;
        let js = jetstream::new(s.client().await);
        js.create_stream(stream::Config {
            name: "D".into(),
            subjects: vec!["d.*".into()],
            ..Default::default()
        })
        .await
        .unwrap();
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", "once");
        let a = js
            .publish_with_headers("d.x", headers.clone(), "1".into())
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(!a.duplicate);
        let b = js
            .publish_with_headers("d.x", headers, "2".into())
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(b.duplicate);
        assert_eq!(b.sequence, a.sequence);
        s.stop().await;
    }
    let s = TestServer::with(js_opts(dir.path())).await;
    let js = jetstream::new(s.client().await);
    let mut st = js.get_stream("D").await.expect("stream recovered");
    assert_eq!(st.info().await.unwrap().state.messages, 1);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", "once");
    let again = js
        .publish_with_headers("d.x", headers, "3".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(again.duplicate, "dedup window survives a restart");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_put_get_delete() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let js = jetstream::new(s.client().await);
    let kv = js
        .create_key_value(jetstream::kv::Config {
            bucket: "cfg".into(),
            history: 5,
            ..Default::default()
        })
        .await
        .expect("kv create");
    kv.put("a", "1".into()).await.unwrap();
    kv.put("a", "2".into()).await.unwrap();
    assert_eq!(kv.get("a").await.unwrap().unwrap(), "2".as_bytes());
    kv.delete("a").await.unwrap();
    assert!(kv.get("a").await.unwrap().is_none());
    assert!(kv.get("missing").await.unwrap().is_none());
    let _ = Duration::ZERO;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_publish_then_flush_is_visible() {
    // nats-server stores inline, so after "publish; flush" (PING/PONG) the message is
    // in the stream. Natrium stores on the stream's task; the PONG waits for it.
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let c = s.client().await;
    let js = jetstream::new(c.clone());
    let mut st = js
        .create_stream(stream::Config {
            name: "F".into(),
            subjects: vec!["f.>".into()],
            allow_direct: true,
            ..Default::default()
        })
        .await
        .unwrap();
    for round in 1..=5u64 {
        for i in 0..100 {
            c.publish(format!("f.{i}"), "x".into()).await.unwrap();
        }
        c.flush().await.unwrap();
        assert_eq!(st.info().await.unwrap().state.messages, round * 100);
        let last = st.direct_get_last_for_subject("f.99").await.unwrap();
        assert_eq!(last.sequence, round * 100);
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pong_waits_for_stream_writes() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let js = jetstream::new(s.client().await);
    let mut st = js
        .create_stream(stream::Config {
            name: "PW".into(),
            subjects: vec!["pw.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let sock = tokio::net::TcpStream::connect(("127.0.0.1", s.port()))
        .await
        .unwrap();
    let (rd, mut wr) = sock.into_split();
    let mut rd = BufReader::new(rd);
    let mut line = String::new();
    rd.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("INFO "));
    let mut out = b"CONNECT {\"verbose\":false}\r\n".to_vec();
    for i in 0..500 {
        out.extend_from_slice(format!("PUB pw.{i} 1\r\nx\r\n").as_bytes());
    }
    out.extend_from_slice(b"PING\r\n");
    wr.write_all(&out).await.unwrap();
    line.clear();
    rd.read_line(&mut line).await.unwrap();
    assert_eq!(line, "PONG\r\n");
    // Answered on another connection: the PONG promised the writes were stored.
    assert_eq!(st.info().await.unwrap().state.messages, 500);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stream_is_gone_after_restart() {
    // A standalone nats-server keeps nothing of a memory stream (or its consumers) across
    // a restart; neither do we. A file stream next to it comes back.
    let dir = tempfile::tempdir().unwrap();
    let streams_dir = dir.path().join("jetstream").join("$G").join("streams");
    {
        let s = TestServer::with(js_opts(dir.path())).await;
        let js = jetstream::new(s.client().await);
        let mem = js
            .create_stream(stream::Config {
                name: "MEM".into(),
                subjects: vec!["mem.>".into()],
                storage: stream::StorageType::Memory,
                ..Default::default()
            })
            .await
            .unwrap();
        mem.create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("D".into()),
            ..Default::default()
        })
        .await
        .unwrap();
        js.create_stream(stream::Config {
            name: "FILE".into(),
            subjects: vec!["file.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
        for subject in ["mem.a", "file.a"] {
            js.publish(subject, "x".into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
        assert!(
            !streams_dir.join("MEM").exists(),
            "a memory stream writes nothing to disk"
        );
        s.stop().await;
    }
    // What an earlier natrium build left for a memory stream is cleaned up at start.
    let legacy = streams_dir.join("OLDMEM");
    std::fs::create_dir_all(legacy.join("consumers")).unwrap();
    std::fs::write(legacy.join("memory-stream.json"), b"{}").unwrap();
    std::fs::write(legacy.join("consumers").join("D.json"), b"{}").unwrap();

    let s = TestServer::with(js_opts(dir.path())).await;
    let js = jetstream::new(s.client().await);
    assert!(js.get_stream("MEM").await.is_err(), "memory stream is gone");
    assert!(js.get_stream("OLDMEM").await.is_err());
    assert!(!legacy.exists(), "legacy memory stream config removed");
    let mut file = js.get_stream("FILE").await.expect("file stream recovered");
    assert_eq!(file.info().await.unwrap().state.messages, 1);
    // The name is free again, and the new stream starts empty.
    let mut again = js
        .create_stream(stream::Config {
            name: "MEM".into(),
            subjects: vec!["mem.>".into()],
            storage: stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .unwrap();
    let info = again.info().await.unwrap();
    assert_eq!(info.state.messages, 0);
    assert_eq!(info.state.consumer_count, 0);
    s.stop().await;
}

/// `first_seq` on create: the empty stream reports first N / last N - 1 and the first
/// message gets N, in both stores (as nats-server 2.15.1 answers), and a file stream
/// keeps counting from there after a restart even with nothing published yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_seq_on_create_numbers_the_first_message() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = TestServer::with(js_opts(dir.path())).await;
        let js = jetstream::new(s.client().await);
        for (name, storage) in [
            ("F", stream::StorageType::File),
            ("M", stream::StorageType::Memory),
            ("E", stream::StorageType::File),
        ] {
            let info = js
                .create_stream(stream::Config {
                    name: name.into(),
                    subjects: vec![name.to_lowercase()],
                    storage,
                    first_sequence: Some(100),
                    ..Default::default()
                })
                .await
                .unwrap()
                .cached_info()
                .clone();
            assert_eq!(info.state.first_sequence, 100, "{name}");
            assert_eq!(info.state.last_sequence, 99, "{name}");
            assert_eq!(info.state.messages, 0, "{name}");
            if name == "E" {
                continue; // left empty for the restart below
            }
            let ack = js
                .publish(name.to_lowercase(), "x".into())
                .await
                .unwrap()
                .await
                .unwrap();
            assert_eq!(ack.sequence, 100, "{name}");
        }
        s.stop().await;
    }
    let s = TestServer::with(js_opts(dir.path())).await;
    let js = jetstream::new(s.client().await);
    for (subject, next) in [("f", 101), ("e", 100)] {
        let ack = js
            .publish(subject, "y".into())
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!(ack.sequence, next, "{subject} after a restart");
    }
    s.stop().await;
}

/// A `max_age` added or lowered by a stream update applies at once, with no publish
/// after it (it used to wait for the next publish, or for the old deadline).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_age_from_an_update_applies_without_a_publish() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let js = jetstream::new(s.client().await);
    for (name, storage, before) in [
        ("ADD", stream::StorageType::File, Duration::ZERO),
        (
            "LOWER",
            stream::StorageType::Memory,
            Duration::from_secs(3600),
        ),
    ] {
        let mut config = stream::Config {
            name: name.into(),
            subjects: vec![name.to_lowercase()],
            storage,
            max_age: before,
            ..Default::default()
        };
        js.create_stream(config.clone()).await.unwrap();
        for _ in 0..5 {
            js.publish(name.to_lowercase(), "x".into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
        config.max_age = Duration::from_millis(300);
        js.update_stream(config).await.unwrap();
        let mut st = js.get_stream(name).await.unwrap();
        let t = std::time::Instant::now();
        loop {
            let n = st.info().await.unwrap().state.messages;
            if n == 0 {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "{name}: {n} messages still there {:?} after the update",
                t.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    s.stop().await;
}

/// A publish asking for an atomic batch (`Nats-Batch-Id`) or a schedule
/// (`Nats-Schedule`), which natrium streams do not offer, is refused with nats-server's
/// codes for a stream without them, and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_and_schedule_headers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    let mut st = js
        .create_stream(stream::Config {
            name: "B".into(),
            subjects: vec!["b".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    for (key, value, code) in [
        ("Nats-Batch-Id", "b1", 10174),
        ("Nats-Schedule", "@every 1s", 10188),
    ] {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(key, value);
        headers.insert("Nats-Batch-Sequence", "1");
        let m = client
            .request_with_headers("b", headers, "x".into())
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(v["error"]["err_code"], code, "{key}: {v}");
    }
    assert_eq!(st.info().await.unwrap().state.messages, 0);
    s.stop().await;
}

/// With `jetstream { domain: hub }`, clients that name the domain (async-nats
/// `with_domain`: `$JS.hub.API.…`) manage streams and consume as with nats-server,
/// which maps those subjects onto `$JS.API.…`; they got no responders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_under_the_jetstream_domain() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = js_opts(dir.path());
    o.jetstream.domain = Some("hub".into());
    let s = TestServer::with(o).await;
    let client = s.client().await;
    let js = jetstream::with_domain(client.clone(), "hub");
    let st = js
        .create_stream(stream::Config {
            name: "D".into(),
            subjects: vec!["d.>".into()],
            ..Default::default()
        })
        .await
        .expect("create through the domain");
    let ack = js.publish("d.x", "1".into()).await.unwrap().await.unwrap();
    assert_eq!((ack.sequence, ack.domain.as_str()), (1, "hub"));
    let c = st
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("C".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut got = c.fetch().max_messages(1).messages().await.unwrap();
    let m = futures::StreamExt::next(&mut got).await.unwrap().unwrap();
    assert_eq!(&m.payload[..], b"1");
    // Another domain is not ours: nobody answers there.
    let other = client
        .request("$JS.elsewhere.API.INFO", "".into())
        .await
        .unwrap_err();
    assert_eq!(other.kind(), async_nats::RequestErrorKind::NoResponders);
    s.stop().await;
}

/// A direct get with a negative `batch` answers only the end-of-batch status with the
/// pending count, as nats-server does (it sent the first message).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_get_with_a_negative_batch_sends_only_the_eob() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    js.create_stream(stream::Config {
        name: "DG".into(),
        subjects: vec!["dg".into()],
        allow_direct: true,
        ..Default::default()
    })
    .await
    .unwrap();
    for _ in 0..3 {
        js.publish("dg", "x".into()).await.unwrap().await.unwrap();
    }
    let m = client
        .request("$JS.API.DIRECT.GET.DG", r#"{"seq":1,"batch":-1}"#.into())
        .await
        .unwrap();
    assert!(m.payload.is_empty());
    let h = m.headers.expect("a status");
    assert_eq!(
        m.status,
        Some(async_nats::StatusCode::from_u16(204).unwrap())
    );
    assert_eq!(h.get("Nats-Num-Pending").map(|v| v.as_str()), Some("3"));
    assert!(h.get("Nats-Sequence").is_none());
    s.stop().await;
}

/// Publishes in flight together still see each other in the stream's checks: of 10
/// concurrent KV creates of one key exactly one wins (the others get a wrong last
/// sequence), and 20 concurrent counter increments total 20. On file storage these
/// used to read the per-subject state as of the last fsync, so all 10 creates won and
/// the counter ended at 1 (found by a differential probe; nats-server answers as here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishes_see_each_other_in_subject_checks() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    let kv = js
        .create_key_value(async_nats::jetstream::kv::Config {
            bucket: "race".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let creates = (0..10).map(|i| {
        let kv = kv.clone();
        async move { kv.create("key", format!("{i}").into()).await.is_ok() }
    });
    let won = futures::future::join_all(creates).await;
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    assert_eq!(kv.entry("key").await.unwrap().unwrap().revision, 1);

    js.create_stream(stream::Config {
        name: "CNT".into(),
        subjects: vec!["cnt".into()],
        allow_message_counter: true,
        allow_direct: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut acks = Vec::new();
    for _ in 0..20 {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Incr", "+1");
        acks.push(
            js.publish_with_headers("cnt", headers, "".into())
                .await
                .unwrap(),
        );
    }
    for a in acks {
        a.await.unwrap();
    }
    let last = js
        .get_stream("CNT")
        .await
        .unwrap()
        .get_last_raw_message_by_subject("cnt")
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&last.payload).unwrap();
    assert_eq!(v["val"], "20", "{v}");
    s.stop().await;
}

/// Cluster-only stream subjects answer 10010 at once, as a standalone nats-server does
/// (they went unanswered), and a direct get without a stream name has no responders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_only_stream_subjects_answer_clustering_required() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let client = s.client().await;
    for (subject, kind) in [
        (
            "$JS.API.STREAM.LEADER.STEPDOWN.X",
            "io.nats.jetstream.api.v1.stream_leader_stepdown_response",
        ),
        (
            "$JS.API.STREAM.PEER.REMOVE.X",
            "io.nats.jetstream.api.v1.stream_remove_peer_response",
        ),
    ] {
        let m = client.request(subject, "{}".into()).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(v["type"], kind, "{v}");
        assert_eq!(v["error"]["err_code"], 10010, "{v}");
    }
    let err = client
        .request("$JS.API.DIRECT.GET", r#"{"seq":1}"#.into())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), async_nats::RequestErrorKind::NoResponders);
    s.stop().await;
}
