//! Atomic batch publish (`allow_atomic`) driven by async-nats against the real server:
//! what the side-by-side Python test (`tests/python/test_js_batch.py`) cannot show,
//! because it needs the store underneath — a batch torn by a crash mid-commit is
//! dropped on recovery, a committed one is kept across a restart, and nothing of a
//! batch is readable before its commit.

mod support;

use async_nats::HeaderMap;
use natrium_store::{FileStore, FileStoreOptions, StreamStore, SubjectFilter};
use serde_json::{Value, json};
use std::time::Duration;
use support::{TestServer, api, js_options as opts};

/// Publish one batch message and return the reply's payload.
async fn batch_msg(
    client: &async_nats::Client,
    subject: &str,
    id: &str,
    seq: u64,
    commit: Option<&str>,
) -> String {
    let mut h = HeaderMap::new();
    h.insert("Nats-Batch-Id", id);
    h.insert("Nats-Batch-Sequence", seq.to_string().as_str());
    if let Some(c) = commit {
        h.insert("Nats-Batch-Commit", c);
    }
    let r = client
        .request_with_headers(subject.to_string(), h, format!("m{seq}").into())
        .await
        .unwrap();
    String::from_utf8(r.payload.to_vec()).unwrap()
}

async fn state(client: &async_nats::Client, stream: &str) -> (u64, u64) {
    let info = api(client, &format!("$JS.API.STREAM.INFO.{stream}"), json!({})).await;
    let st = &info["state"];
    (
        st["messages"].as_u64().unwrap(),
        st["last_seq"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn a_batch_is_invisible_until_its_commit_then_whole() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(opts(dir.path())).await;
    let c = s.client().await;
    let created = api(
        &c,
        "$JS.API.STREAM.CREATE.B",
        json!({"name": "B", "subjects": ["b.>"], "allow_atomic": true}),
    )
    .await;
    assert_eq!(created["config"]["allow_atomic"], true, "{created}");
    // A consumer that would see anything stored.
    let js = async_nats::jetstream::new(c.clone());
    let stream = js.get_stream("B").await.unwrap();
    let consumer: async_nats::jetstream::consumer::PullConsumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config::default())
        .await
        .unwrap();
    for seq in 1..=3 {
        assert_eq!(batch_msg(&c, "b.x", "one", seq, None).await, "");
    }
    assert_eq!(state(&c, "B").await, (0, 0), "nothing before the commit");
    let none = consumer
        .fetch()
        .max_messages(1)
        .expires(Duration::from_millis(200))
        .messages()
        .await
        .unwrap();
    use futures::StreamExt;
    assert_eq!(none.count().await, 0);
    let ack: Value =
        serde_json::from_str(&batch_msg(&c, "b.y", "one", 4, Some("1")).await).unwrap();
    assert_eq!(
        ack,
        json!({"stream": "B", "seq": 4, "batch": "one", "count": 4})
    );
    let got: Vec<_> = consumer
        .fetch()
        .max_messages(10)
        .expires(Duration::from_millis(500))
        .messages()
        .await
        .unwrap()
        .map(|m| m.unwrap().payload.to_vec())
        .collect()
        .await;
    assert_eq!(
        got,
        vec![
            b"m1".to_vec(),
            b"m2".to_vec(),
            b"m3".to_vec(),
            b"m4".to_vec()
        ]
    );
    s.stop().await;
}

#[tokio::test]
async fn a_batch_torn_by_a_crash_is_dropped_on_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(opts(dir.path())).await;
    let c = s.client().await;
    api(
        &c,
        "$JS.API.STREAM.CREATE.T",
        json!({"name": "T", "subjects": ["t.>"], "allow_atomic": true}),
    )
    .await;
    assert_eq!(batch_msg(&c, "t.a", "ok", 1, None).await, "");
    let ack = batch_msg(&c, "t.a", "ok", 2, Some("1")).await;
    assert!(ack.contains("\"count\":2"), "{ack}");
    drop(c);
    s.stop().await;

    // What a crash between the appends of a commit leaves: the start of a batch, no
    // message with its commit header.
    let store_dir = dir.path().join("jetstream/$G/streams/T");
    {
        let store = FileStore::open(&store_dir, FileStoreOptions::default()).unwrap();
        for seq in 1..=2 {
            let hdrs =
                format!("NATS/1.0\r\nNats-Batch-Id: torn\r\nNats-Batch-Sequence: {seq}\r\n\r\n");
            store
                .store_msg("t.b", hdrs.as_bytes(), b"torn", None)
                .unwrap();
        }
        assert_eq!(store.state().last_seq, 4);
        store.stop().unwrap();
    }

    let s = TestServer::with(opts(dir.path())).await;
    let c = s.client().await;
    assert_eq!(
        state(&c, "T").await,
        (2, 2),
        "the torn batch is gone, the committed one kept"
    );
    let got = api(&c, "$JS.API.STREAM.MSG.GET.T", json!({"seq": 2})).await;
    assert_eq!(got["message"]["subject"], "t.a", "{got}");
    // Its sequences were never acknowledged and are used again.
    let ack = batch_msg(&c, "t.c", "next", 1, Some("1")).await;
    assert_eq!(
        serde_json::from_str::<Value>(&ack).unwrap(),
        json!({"stream": "T", "seq": 3, "batch": "next", "count": 1})
    );
    s.stop().await;

    // The store itself agrees after the server is gone.
    let store = FileStore::open(&store_dir, FileStoreOptions::default()).unwrap();
    let last = store.load_last_msg(&SubjectFilter::all()).unwrap();
    assert_eq!((last.seq, last.subject.as_str()), (3, "t.c"));
    store.stop().unwrap();
}

#[tokio::test]
async fn deleting_a_stream_releases_its_open_batches_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    // One open batch in the whole server.
    o.jetstream.batch_limits.max_inflight_total = 1;
    let s = TestServer::with(o).await;
    let c = s.client().await;
    for name in ["A", "B"] {
        let subject = format!("{}.>", name.to_lowercase());
        api(
            &c,
            &format!("$JS.API.STREAM.CREATE.{name}"),
            json!({"name": name, "subjects": [subject], "allow_atomic": true}),
        )
        .await;
    }
    assert_eq!(batch_msg(&c, "a.x", "open", 1, None).await, "");
    let refused = batch_msg(&c, "b.x", "other", 1, None).await;
    assert!(refused.contains("10210"), "{refused}");
    let deleted = api(&c, "$JS.API.STREAM.DELETE.A", json!({})).await;
    assert_eq!(deleted["success"], true, "{deleted}");
    // Well before the batch's 10 s timeout, the server's count has room again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let r = batch_msg(&c, "b.x", "other", 1, None).await;
        if r.is_empty() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still refused: {r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.stop().await;
}
