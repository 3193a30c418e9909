//! JetStream consumers through async-nats: pull and push delivery, acks and their
//! effect on info, redelivery after ack wait and NAK, durable state across a restart,
//! ordered consumers, work-queue and interest retention, inactivity cleanup, and the KV
//! and object stores built on them.

mod support;

use async_nats::jetstream::{self, AckKind, consumer, kv, object_store, stream};
use futures::StreamExt;
use natrium_server::options::Options;
use std::time::Duration;
use support::TestServer;

/// Poll an async condition until it holds; fails the test after `limit`.
async fn until<F, Fut>(limit: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Upper bound for a single answer a test waits for.
const T_ACK: Duration = Duration::from_secs(5);

/// Poll a pull consumer's info until `pred` holds; fails the test after 5 s.
async fn until_info(c: &consumer::PullConsumer, pred: impl Fn(&consumer::Info) -> bool) {
    until(Duration::from_secs(5), || {
        let mut c = c.clone();
        let pred = &pred;
        async move { pred(c.info().await.unwrap()) }
    })
    .await;
}

/// A raw JetStream API request with a JSON body; the answer, parsed.
async fn api(
    client: &async_nats::Client,
    subject: impl Into<String>,
    body: serde_json::Value,
) -> serde_json::Value {
    let m = client
        .request(subject.into(), body.to_string().into())
        .await
        .unwrap();
    serde_json::from_slice(&m.payload).unwrap()
}

fn js_opts(dir: &std::path::Path) -> Options {
    let mut o = Options::for_test();
    o.jetstream.enabled = true;
    o.jetstream.store_dir = Some(dir.to_path_buf());
    o
}

async fn stream_with(
    js: &jetstream::Context,
    name: &str,
    subject: &str,
    n: usize,
) -> stream::Stream {
    let st = js
        .create_stream(stream::Config {
            name: name.into(),
            subjects: vec![subject.into()],
            ..Default::default()
        })
        .await
        .expect("create stream");
    let prefix = subject.trim_end_matches(".>").trim_end_matches(".*");
    for i in 0..n {
        js.publish(format!("{prefix}.{}", i % 3), format!("m{i}").into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    st
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_fetch_ack_and_info() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let js = jetstream::new(s.client().await);
    let st = stream_with(&js, "P", "p.>", 10).await;
    let c = st
        .create_consumer(consumer::pull::Config {
            durable_name: Some("d".into()),
            ..Default::default()
        })
        .await
        .expect("create consumer");
    let mut c = c;
    let info = c.info().await.unwrap().clone();
    assert_eq!(info.num_pending, 10);
    assert_eq!(info.delivered.stream_sequence, 0);
    let mut msgs = c.fetch().max_messages(4).messages().await.unwrap();
    let mut got = Vec::new();
    while let Some(m) = msgs.next().await {
        let m = m.unwrap();
        let i = m.info().unwrap();
        got.push((i.stream_sequence, i.consumer_sequence, i.pending));
        if i.stream_sequence <= 3 {
            m.double_ack().await.unwrap();
        }
    }
    assert_eq!(got, vec![(1, 1, 9), (2, 2, 8), (3, 3, 7), (4, 4, 6)]);
    let info = c.info().await.unwrap().clone();
    assert_eq!(info.delivered.stream_sequence, 4);
    assert_eq!(info.delivered.consumer_sequence, 4);
    assert_eq!(info.ack_floor.stream_sequence, 3);
    assert_eq!(info.num_ack_pending, 1);
    assert_eq!(info.num_pending, 6);
    // A no-wait fetch of more than is left gets what there is.
    let mut rest = c.fetch().max_messages(100).messages().await.unwrap();
    let mut n = 0;
    while let Some(m) = rest.next().await {
        m.unwrap().ack().await.unwrap();
        n += 1;
    }
    assert_eq!(n, 6);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_consumer_delivers_and_redelivers_after_nak() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    let st = stream_with(&js, "PU", "pu.>", 3).await;
    let c = st
        .create_consumer(consumer::push::Config {
            durable_name: Some("push".into()),
            deliver_subject: client.new_inbox(),
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut msgs = c.messages().await.unwrap();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.len() < 4 && tokio::time::Instant::now() < deadline {
        let m = tokio::time::timeout(Duration::from_secs(5), msgs.next())
            .await
            .expect("delivery")
            .unwrap()
            .unwrap();
        let i = m.info().unwrap();
        seen.push((i.stream_sequence, i.delivered));
        if i.stream_sequence == 2 && i.delivered == 1 {
            m.ack_with(AckKind::Nak(None)).await.unwrap();
        } else {
            m.ack().await.unwrap();
        }
    }
    assert_eq!(seen[..3], [(1, 1), (2, 1), (3, 1)]);
    assert_eq!(seen[3], (2, 2));
    s.stop().await;
}

/// A push consumer created before anyone subscribes to its deliver subject (as nats.py
/// does: create, then subscribe) waits on the account's interest watch, so the `SUB`
/// wakes it at once instead of at its next look for a subscriber (1 s after it
/// registered); once bound it leaves the watch. Both a literal and a wildcard
/// subscription count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_consumer_without_subscriber_is_woken_by_the_sub() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    let st = stream_with(&js, "IW", "iw.>", 3).await;
    let acc = s.server.shared().account("$G").expect("global account");
    let watch = acc.interest_watch.clone();
    assert_eq!(watch.waiting(), 0);
    for (deliver, sub_on) in [("dlv.lit", "dlv.lit"), ("dlv.wild", "dlv.*")] {
        st.create_consumer(consumer::push::Config {
            durable_name: Some(deliver.replace('.', "_")),
            deliver_subject: deliver.into(),
            ..Default::default()
        })
        .await
        .unwrap();
        assert!(
            support::eventually(T_ACK, || watch.waiting() == 1).await,
            "an unbound push consumer waits on its deliver subject"
        );
        let subscribed_at = tokio::time::Instant::now();
        let mut sub = client.subscribe(sub_on).await.unwrap();
        for want in 1..=3u64 {
            let m = support::next_msg(&mut sub).await;
            if want == 1 {
                let waited = subscribed_at.elapsed();
                assert!(
                    waited < Duration::from_millis(500),
                    "first delivery {waited:?} after subscribing to {sub_on}"
                );
            }
            let seq = m
                .reply
                .as_deref()
                .and_then(|r| r.split('.').nth(5))
                .and_then(|t| t.parse::<u64>().ok());
            assert_eq!(seq, Some(want), "delivery to {sub_on}");
        }
        assert!(
            support::eventually(T_ACK, || watch.waiting() == 0).await,
            "a bound push consumer leaves the watch"
        );
        sub.unsubscribe().await.unwrap();
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_wait_expiry_redelivers() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let js = jetstream::new(s.client().await);
    let st = stream_with(&js, "AW", "aw.>", 1).await;
    let c = st
        .create_consumer(consumer::pull::Config {
            durable_name: Some("aw".into()),
            ack_wait: Duration::from_millis(300),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut first = c.fetch().max_messages(1).messages().await.unwrap();
    let m = first.next().await.unwrap().unwrap();
    assert_eq!(m.info().unwrap().delivered, 1);
    drop(first);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut again = c
        .fetch()
        .max_messages(1)
        .expires(Duration::from_secs(3))
        .messages()
        .await
        .unwrap();
    let m = again.next().await.unwrap().unwrap();
    let i = m.info().unwrap();
    assert_eq!((i.stream_sequence, i.delivered), (1, 2));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_state_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = TestServer::with(js_opts(dir.path())).await;
        let js = jetstream::new(s.client().await);
        let st = stream_with(&js, "R", "r.>", 6).await;
        let c = st
            .create_consumer(consumer::pull::Config {
                durable_name: Some("keep".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        let mut msgs = c.fetch().max_messages(4).messages().await.unwrap();
        while let Some(m) = msgs.next().await {
            let m = m.unwrap();
            if m.info().unwrap().stream_sequence <= 3 {
                m.double_ack().await.unwrap();
            }
        }
        s.stop().await;
    }
    let s = TestServer::with(js_opts(dir.path())).await;
    let js = jetstream::new(s.client().await);
    let st = js.get_stream("R").await.unwrap();
    let mut c: consumer::PullConsumer = st.get_consumer("keep").await.expect("recovered");
    let info = c.info().await.unwrap().clone();
    assert_eq!(info.ack_floor.stream_sequence, 3);
    assert_eq!(info.delivered.stream_sequence, 4);
    assert_eq!(info.num_ack_pending, 1);
    // The rest comes; the unacked message waits for the rest of its ack wait (30 s),
    // as with nats-server, instead of being redelivered at once.
    let mut msgs = c
        .fetch()
        .max_messages(3)
        .expires(Duration::from_secs(3))
        .messages()
        .await
        .unwrap();
    let mut seqs = Vec::new();
    while let Some(m) = msgs.next().await {
        let m = m.unwrap();
        seqs.push(m.info().unwrap().stream_sequence);
        m.double_ack().await.unwrap();
    }
    assert_eq!(seqs, vec![5, 6]);
    let info = c.info().await.unwrap().clone();
    assert_eq!(info.num_ack_pending, 1);
    assert_eq!(info.ack_floor.stream_sequence, 3);
    s.stop().await;
}

/// Ephemeral consumers of a file stream survive a restart with their config (updates
/// included) and state, as in nats-server 2.15.1, and then end by their inactive
/// threshold; `mem_storage` ones (ordered consumers) do not come back, nor do the
/// consumers of a memory stream. An ephemeral's files go when it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemerals_survive_a_restart_and_then_end_by_inactivity() {
    let dir = tempfile::tempdir().unwrap();
    let (short, in_memory) = {
        let s = TestServer::with(js_opts(dir.path())).await;
        let client = s.client().await;
        let js = jetstream::new(client.clone());
        let st = stream_with(&js, "R", "r.>", 6).await;
        js.create_stream(stream::Config {
            name: "M".into(),
            subjects: vec!["m.>".into()],
            storage: stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .unwrap();
        let named = json_ephemeral("N", 60);
        let made = api(&client, "$JS.API.CONSUMER.CREATE.R.N", named.clone()).await;
        assert!(made.get("error").is_none(), "{made}");
        let c: consumer::PullConsumer = st.get_consumer("N").await.unwrap();
        let mut msgs = c.fetch().max_messages(4).messages().await.unwrap();
        while let Some(m) = msgs.next().await {
            let m = m.unwrap();
            if m.info().unwrap().stream_sequence <= 2 {
                m.double_ack().await.unwrap();
            }
        }
        // An update of the ephemeral is kept too.
        let mut updated = named;
        updated["config"]["description"] = "second".into();
        let made = api(&client, "$JS.API.CONSUMER.CREATE.R.N", updated).await;
        assert_eq!(made["config"]["description"], "second", "{made}");
        let short = api(&client, "$JS.API.CONSUMER.CREATE.R", json_ephemeral("", 2)).await;
        let short = short["name"].as_str().unwrap().to_string();
        let mut mem = json_ephemeral("", 60);
        mem["config"]["mem_storage"] = true.into();
        let in_memory = api(&client, "$JS.API.CONSUMER.CREATE.R", mem).await;
        let in_memory = in_memory["name"].as_str().unwrap().to_string();
        let on_mem_stream = api(
            &client,
            "$JS.API.CONSUMER.CREATE.M.K",
            json_ephemeral_of("M", "K", 60),
        )
        .await;
        assert!(on_mem_stream.get("error").is_none(), "{on_mem_stream}");
        s.stop().await;
        (short, in_memory)
    };
    let s = TestServer::with(js_opts(dir.path())).await;
    let client = s.client().await;
    let names = api(&client, "$JS.API.CONSUMER.NAMES.R", serde_json::json!({})).await;
    let mut got: Vec<&str> = names["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    got.sort_unstable();
    let mut want = vec!["N", short.as_str()];
    want.sort_unstable();
    assert_eq!(got, want, "{in_memory} (mem_storage) must be gone");
    let info = api(&client, "$JS.API.CONSUMER.INFO.R.N", serde_json::json!({})).await;
    assert_eq!(info["config"]["description"], "second", "{info}");
    assert_eq!(info["config"]["name"], "N");
    assert!(info["config"].get("durable_name").is_none(), "{info}");
    assert_eq!(info["delivered"]["stream_seq"], 4, "{info}");
    assert_eq!(info["ack_floor"]["stream_seq"], 2, "{info}");
    assert_eq!(info["num_ack_pending"], 2, "{info}");
    assert_eq!(info["num_pending"], 2, "{info}");
    // Recovered unnamed ephemerals report their name in the config, as nats-server's.
    let info = api(
        &client,
        format!("$JS.API.CONSUMER.INFO.R.{short}"),
        serde_json::json!({}),
    )
    .await;
    assert_eq!(info["config"]["name"], short.as_str(), "{info}");
    let m = api(&client, "$JS.API.CONSUMER.NAMES.M", serde_json::json!({})).await;
    assert_eq!(m["error"]["err_code"], 10059, "{m}");
    // The 2 s one ends without interest, and its files with it.
    assert!(
        dir_mentions(dir.path(), "N"),
        "an ephemeral's state is in files"
    );
    until(Duration::from_secs(10), || {
        let client = client.clone();
        async move {
            let n = api(&client, "$JS.API.CONSUMER.NAMES.R", serde_json::json!({})).await;
            n["consumers"].as_array().unwrap().len() == 1
        }
    })
    .await;
    assert!(
        !dir_mentions(dir.path(), &short),
        "the ended ephemeral's files are left"
    );
    s.stop().await;
}

/// A pull ephemeral's create body for stream `R` (`name` empty: the server picks one).
fn json_ephemeral(name: &str, inactive_secs: u64) -> serde_json::Value {
    json_ephemeral_of("R", name, inactive_secs)
}

/// A pull ephemeral's create body for `stream`.
fn json_ephemeral_of(stream: &str, name: &str, inactive_secs: u64) -> serde_json::Value {
    let mut cfg = serde_json::json!({
        "ack_policy": "explicit",
        "inactive_threshold": inactive_secs * 1_000_000_000,
    });
    if !name.is_empty() {
        cfg["name"] = name.into();
    }
    serde_json::json!({"stream_name": stream, "config": cfg})
}

/// Whether any file or directory under `root` has `name` as its file name.
fn dir_mentions(root: &std::path::Path, name: &str) -> bool {
    let Ok(rd) = std::fs::read_dir(root) else {
        return false;
    };
    rd.flatten().any(|e| {
        let p = e.path();
        e.file_name().to_string_lossy() == name || (p.is_dir() && dir_mentions(&p, name))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_consumer_reads_everything() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let js = jetstream::new(s.client().await);
    let st = stream_with(&js, "O", "o.>", 50).await;
    let c = st
        .create_consumer(consumer::push::OrderedConfig {
            deliver_subject: "ord.inbox".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut msgs = c.messages().await.unwrap();
    for want in 1..=50u64 {
        let m = tokio::time::timeout(Duration::from_secs(5), msgs.next())
            .await
            .expect("ordered delivery")
            .unwrap()
            .unwrap();
        assert_eq!(m.info().unwrap().stream_sequence, want);
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_queue_removes_acked_messages() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let js = jetstream::new(s.client().await);
    let mut st = js
        .create_stream(stream::Config {
            name: "WQ".into(),
            subjects: vec!["wq.>".into()],
            retention: stream::RetentionPolicy::WorkQueue,
            ..Default::default()
        })
        .await
        .unwrap();
    for i in 0..5 {
        js.publish(format!("wq.{i}"), "job".into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let c = st
        .create_consumer(consumer::pull::Config {
            durable_name: Some("w".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut msgs = c.fetch().max_messages(3).messages().await.unwrap();
    while let Some(m) = msgs.next().await {
        m.unwrap().double_ack().await.unwrap();
    }
    until(Duration::from_secs(5), || {
        let mut st = st.clone();
        async move { st.info().await.unwrap().state.messages == 2 }
    })
    .await;
    assert_eq!(st.info().await.unwrap().state.first_sequence, 4);
    // A second unfiltered consumer on a work queue is refused.
    let err = st
        .create_consumer(consumer::pull::Config {
            durable_name: Some("w2".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("multiple non-filtered"), "{err}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interest_retention_needs_every_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let js = jetstream::new(s.client().await);
    let mut st = js
        .create_stream(stream::Config {
            name: "IN".into(),
            subjects: vec!["in.>".into()],
            retention: stream::RetentionPolicy::Interest,
            ..Default::default()
        })
        .await
        .unwrap();
    // No consumers: nothing is kept, but sequences are used.
    let ack = js.publish("in.a", "x".into()).await.unwrap().await.unwrap();
    assert_eq!(ack.sequence, 1);
    assert_eq!(st.info().await.unwrap().state.messages, 0);
    let mut consumers = Vec::new();
    for name in ["a", "b"] {
        consumers.push(
            st.create_consumer(consumer::pull::Config {
                durable_name: Some(name.into()),
                ..Default::default()
            })
            .await
            .unwrap(),
        );
    }
    js.publish("in.a", "y".into()).await.unwrap().await.unwrap();
    assert_eq!(st.info().await.unwrap().state.messages, 1);
    for (i, c) in consumers.iter().enumerate() {
        let mut msgs = c.fetch().max_messages(1).messages().await.unwrap();
        let m = msgs.next().await.unwrap().unwrap();
        m.double_ack().await.unwrap();
        let left = st.info().await.unwrap().state.messages;
        if i == 0 {
            assert_eq!(left, 1, "one consumer still wants it");
        }
    }
    until(Duration::from_secs(5), || {
        let mut st = st.clone();
        async move { st.info().await.unwrap().state.messages == 0 }
    })
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_consumer_goes_after_inactivity() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let js = jetstream::new(s.client().await);
    let st = stream_with(&js, "E", "e.>", 1).await;
    let c = st
        .create_consumer(consumer::pull::Config {
            inactive_threshold: Duration::from_millis(300),
            ..Default::default()
        })
        .await
        .unwrap();
    let name = c.cached_info().name.clone();
    assert_eq!(name.len(), 8);
    until(Duration::from_secs(5), || {
        let st = st.clone();
        let name = name.clone();
        async move {
            st.get_consumer::<consumer::pull::Config>(&name)
                .await
                .is_err()
        }
    })
    .await;
    s.stop().await;
}

/// Creating an existing ephemeral again without `inactive_threshold` (a client
/// re-creating its named ephemeral on reconnect) keeps the 5s default, as nats-server
/// does; it used to clear it, and such a consumer was never cleaned up. With
/// `action: create`, the request as sent is compared: a differing one is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreating_an_ephemeral_keeps_its_inactive_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    stream_with(&js, "E", "e.>", 0).await;
    let create = |name: &'static str, extra: serde_json::Value| {
        let client = client.clone();
        async move {
            let mut config = serde_json::json!({"name": name});
            if let (Some(c), Some(x)) = (config.as_object_mut(), extra.as_object()) {
                c.extend(
                    x.iter()
                        .filter(|(k, _)| *k != "action")
                        .map(|(k, v)| (k.clone(), v.clone())),
                );
            }
            let mut req = serde_json::json!({"stream_name": "E", "config": config});
            if let Some(a) = extra.get("action") {
                req["action"] = a.clone();
            }
            api(&client, format!("$JS.API.CONSUMER.CREATE.E.{name}"), req).await
        }
    };
    let five = 5_000_000_000u64;
    assert_eq!(
        create("Z", serde_json::json!({})).await["config"]["inactive_threshold"],
        five
    );
    let again = create("Z", serde_json::json!({})).await;
    assert_eq!(again["config"]["inactive_threshold"], five, "{again}");
    let refused = create("Z", serde_json::json!({"action": "create"})).await;
    assert_eq!(refused["error"]["err_code"], 10148, "{refused}");
    let same = create(
        "Z",
        serde_json::json!({"action": "create", "inactive_threshold": five}),
    )
    .await;
    assert_eq!(same["config"]["inactive_threshold"], five, "{same}");
    let short = create(
        "Y",
        serde_json::json!({"inactive_threshold": 60_000_000_000u64}),
    )
    .await;
    assert_eq!(short["config"]["inactive_threshold"], 60_000_000_000u64);
    let back = create("Y", serde_json::json!({})).await;
    assert_eq!(back["config"]["inactive_threshold"], five, "{back}");
    let info = client
        .request("$JS.API.CONSUMER.INFO.E.Y", "".into())
        .await
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info.payload).unwrap();
    assert_eq!(info["config"]["inactive_threshold"], five, "{info}");
    s.stop().await;
}

/// A delivered, unacknowledged message that the stream removes (a limit, a delete)
/// leaves the consumer's pending set at once, as in nats-server: it holds no
/// `max_ack_pending` slot until its ack wait runs out, the ack floor moves past it, a
/// terminated advisory says why, and a restart does not bring it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_messages_leave_the_pending_set() {
    let dir = tempfile::tempdir().unwrap();
    let opts = js_opts(dir.path());
    let s = TestServer::with(opts.clone()).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    let st = js
        .create_stream(stream::Config {
            name: "L".into(),
            subjects: vec!["l.*".into()],
            max_messages_per_subject: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    for subject in ["l.a", "l.b", "l.c"] {
        js.publish(subject, "old".into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let c = st
        .create_consumer(consumer::pull::Config {
            durable_name: Some("C".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            max_ack_pending: 3,
            ack_wait: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut terminated = client
        .subscribe("$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.L.C")
        .await
        .unwrap();
    client.flush().await.unwrap();
    let first: Vec<_> = c
        .fetch()
        .max_messages(3)
        .messages()
        .await
        .unwrap()
        .map(|m| m.unwrap())
        .collect()
        .await;
    assert_eq!(first.len(), 3, "all three delivered, none acked");
    // Replacing a and b removes 1 and 2 (max_msgs_per_subject); deleting 3 removes it.
    for subject in ["l.a", "l.b"] {
        js.publish(subject, "new".into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let stream = js.get_stream("L").await.unwrap();
    stream.delete_message(3).await.unwrap();
    until_info(&c, |i| {
        i.num_ack_pending == 0 && i.ack_floor.stream_sequence == 3
    })
    .await;
    // The slots are free: the new messages come at once, not after 30 s.
    let t = std::time::Instant::now();
    let second: Vec<_> = c
        .fetch()
        .max_messages(2)
        .expires(Duration::from_secs(5))
        .messages()
        .await
        .unwrap()
        .map(|m| m.unwrap())
        .collect()
        .await;
    assert_eq!(second.len(), 2);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(second.iter().all(|m| &m.payload[..] == b"new"));
    for m in &second {
        m.ack().await.unwrap();
    }
    let mut reasons = Vec::new();
    for _ in 0..3 {
        let m = tokio::time::timeout(Duration::from_secs(5), terminated.next())
            .await
            .expect("a terminated advisory per removed delivery")
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        reasons.push((v["stream_seq"].as_u64().unwrap(), v["reason"].clone()));
    }
    reasons.sort_by_key(|r| r.0);
    assert_eq!(
        reasons,
        (1..=3)
            .map(|s| (s, serde_json::json!("Unacknowledged message was deleted")))
            .collect::<Vec<_>>()
    );
    client.flush().await.unwrap();
    until_info(&c, |i| i.num_ack_pending == 0).await;
    s.stop().await;
    // After a restart the removed deliveries are not pending again.
    let s = TestServer::with(opts).await;
    let js = jetstream::new(s.client().await);
    let mut c: consumer::PullConsumer = js
        .get_stream("L")
        .await
        .unwrap()
        .get_consumer("C")
        .await
        .unwrap();
    let info = c.info().await.unwrap();
    assert_eq!(info.num_ack_pending, 0, "{info:?}");
    assert_eq!(info.ack_floor.stream_sequence, 5, "{info:?}");
    s.stop().await;
}

/// Ack requests answered as nats-server answers them: an unknown ack body still gets its
/// empty answer (and changes nothing), an ack of a message never delivered gets none,
/// and a subject that is not an ack subject has no responders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_requests_are_answered_as_nats_server_answers_them() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    let st = stream_with(&js, "A", "a.>", 3).await;
    let c = st
        .create_consumer(consumer::pull::Config {
            durable_name: Some("C".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut batch = c.fetch().max_messages(1).messages().await.unwrap();
    let m = batch.next().await.unwrap().unwrap();
    let reply = m.reply.clone().unwrap();
    let short = Duration::from_millis(400);
    let answer = tokio::time::timeout(T_ACK, client.request(reply.clone(), "+FOO".into()))
        .await
        .expect("an answer")
        .expect("an empty answer");
    assert!(answer.payload.is_empty());
    let mut c = c;
    assert_eq!(
        c.info().await.unwrap().num_ack_pending,
        1,
        "+FOO acks nothing"
    );
    let never = reply.replace(".1.1.1.", ".1.3.3.");
    assert_ne!(never, reply.as_str());
    let got = tokio::time::timeout(short, client.request(never, "+ACK".into())).await;
    assert!(
        got.is_err(),
        "no answer for a message never delivered: {got:?}"
    );
    let err = client
        .request("$JS.ACK.A.C.x.y", "+ACK".into())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), async_nats::RequestErrorKind::NoResponders);
    // A real ack still gets its answer.
    m.double_ack().await.unwrap();
    assert_eq!(c.info().await.unwrap().num_ack_pending, 0);
    s.stop().await;
}

/// A removal inside the stream (not at its front) also leaves the pending set: the
/// consumer checks its deliveries against the store when the stream has gaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interior_delete_leaves_the_pending_set() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let js = jetstream::new(s.client().await);
    let st = stream_with(&js, "G", "g.>", 3).await;
    let c = st
        .create_consumer(consumer::pull::Config {
            durable_name: Some("C".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap();
    let got: Vec<_> = c
        .fetch()
        .max_messages(3)
        .messages()
        .await
        .unwrap()
        .map(|m| m.unwrap())
        .collect()
        .await;
    assert_eq!(got.len(), 3);
    st.delete_message(2).await.unwrap();
    until_info(&c, |i| {
        i.num_ack_pending == 2 && i.ack_floor.stream_sequence == 0
    })
    .await;
    s.stop().await;
}

/// The create answer of a push consumer shows it as created, even when a subscriber is
/// already there and deliveries start at once (nats-server's answer: nothing delivered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_consumer_create_answer_shows_nothing_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    stream_with(&js, "PC", "pc.>", 3).await;
    let mut sub = client.subscribe("pcd").await.unwrap();
    client.flush().await.unwrap();
    let v = api(
        &client,
        "$JS.API.CONSUMER.CREATE.PC.P",
        serde_json::json!({"stream_name": "PC", "config": {"durable_name": "P", "deliver_subject": "pcd"}}),
    )
    .await;
    assert_eq!(v["delivered"]["stream_seq"], 0, "{v}");
    assert_eq!(v["num_pending"], 3, "{v}");
    // And then it delivers.
    tokio::time::timeout(T_ACK, sub.next())
        .await
        .expect("delivered")
        .unwrap();
    s.stop().await;
}

/// A waiting pull request whose requester went away no longer counts in `num_waiting`
/// (nats-server drops such requests when it reports).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn num_waiting_leaves_out_requesters_that_went_away() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    let st = stream_with(&js, "W", "w.>", 0).await;
    let mut c = st
        .create_consumer(consumer::pull::Config {
            durable_name: Some("C".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(inbox.clone()).await.unwrap();
    client
        .publish_with_reply(
            "$JS.API.CONSUMER.MSG.NEXT.W.C",
            inbox,
            r#"{"batch":1,"expires":30000000000}"#.into(),
        )
        .await
        .unwrap();
    client.flush().await.unwrap();
    until_info(&c, |i| i.num_waiting == 1).await;
    sub.unsubscribe().await.unwrap();
    client.flush().await.unwrap();
    assert_eq!(c.info().await.unwrap().num_waiting, 0);
    s.stop().await;
}

/// A consumer created paused announces it with a pause advisory, as nats-server does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_created_paused_sends_the_pause_advisory() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    stream_with(&js, "PA", "pa.>", 0).await;
    let mut adv = client
        .subscribe("$JS.EVENT.ADVISORY.CONSUMER.PAUSE.PA.*")
        .await
        .unwrap();
    client.flush().await.unwrap();
    let v = api(
        &client,
        "$JS.API.CONSUMER.CREATE.PA.D",
        serde_json::json!({"stream_name": "PA", "config": {"durable_name": "D", "pause_until": "2099-01-01T00:00:00Z"}}),
    )
    .await;
    assert_eq!(v["paused"], true, "{v}");
    let m = tokio::time::timeout(T_ACK, adv.next())
        .await
        .expect("advisory")
        .unwrap();
    assert_eq!(m.subject.as_str(), "$JS.EVENT.ADVISORY.CONSUMER.PAUSE.PA.D");
    let a: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(
        (a["paused"].clone(), a["consumer"].clone()),
        (serde_json::json!(true), serde_json::json!("D"))
    );
    // Not paused: no pause advisory.
    client
        .request(
            "$JS.API.CONSUMER.CREATE.PA.E",
            r#"{"stream_name":"PA","config":{"durable_name":"E"}}"#.into(),
        )
        .await
        .unwrap();
    let none = tokio::time::timeout(Duration::from_millis(300), adv.next()).await;
    assert!(none.is_err(), "{none:?}");
    s.stop().await;
}

/// Push consumers count interest as nats-server does: without a `deliver_group` only a
/// plain subscriber makes them deliver, with one only a queue subscriber of that group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_interest_follows_the_deliver_group() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    let st = stream_with(&js, "P", "p.>", 2).await;
    for (name, group) in [("plain", None), ("grouped", Some("g"))] {
        let deliver = format!("deliver.{name}");
        let mut c = st
            .create_consumer(consumer::push::Config {
                durable_name: Some(name.into()),
                deliver_subject: deliver.clone(),
                deliver_group: group.map(Into::into),
                ..Default::default()
            })
            .await
            .unwrap();
        // The other kind of subscriber: no interest, nothing delivered.
        let mut wrong = match group {
            None => client
                .queue_subscribe(deliver.clone(), "q".into())
                .await
                .unwrap(),
            Some(_) => client.subscribe(deliver.clone()).await.unwrap(),
        };
        client.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!c.info().await.unwrap().push_bound, "{name}");
        let got = tokio::time::timeout(Duration::from_millis(300), wrong.next()).await;
        assert!(got.is_err(), "{name}: {got:?}");
        // The right kind: delivered.
        let mut right = match group {
            None => client.subscribe(deliver.clone()).await.unwrap(),
            Some(g) => client
                .queue_subscribe(deliver.clone(), g.into())
                .await
                .unwrap(),
        };
        let m = tokio::time::timeout(T_ACK, right.next())
            .await
            .expect(name)
            .unwrap();
        assert!(m.payload.starts_with(b"m"), "{name}");
        assert!(c.info().await.unwrap().push_bound, "{name}");
    }
    s.stop().await;
}

/// A push rate limit lets a burst of the largest message size through at once (nats-server's
/// limiter), then paces: 5 messages of 200 bytes at 16 kbit/s arrive together; with the
/// stream's `max_msg_size` at 250 bytes the burst is about one message, so the rest are
/// paced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_rate_limit_starts_with_a_burst() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    for (name, max_msg_size, fast) in [("B1", -1, true), ("B2", 250, false)] {
        let st = js
            .create_stream(stream::Config {
                name: name.into(),
                subjects: vec![name.to_lowercase()],
                max_message_size: max_msg_size,
                ..Default::default()
            })
            .await
            .unwrap();
        for _ in 0..5 {
            js.publish(name.to_lowercase(), vec![b'x'; 200].into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
        let deliver = format!("rate.{name}");
        let mut sub = client.subscribe(deliver.clone()).await.unwrap();
        st.create_consumer(consumer::push::Config {
            deliver_subject: deliver,
            rate_limit: 16_000,
            ..Default::default()
        })
        .await
        .unwrap();
        let t = std::time::Instant::now();
        for _ in 0..5 {
            tokio::time::timeout(T_ACK, sub.next())
                .await
                .expect(name)
                .unwrap();
        }
        let took = t.elapsed();
        if fast {
            assert!(took < Duration::from_millis(150), "{name}: {took:?}");
        } else {
            // ~200 bytes each at 2,000 bytes/s, less a 250-byte burst: about 0.28 s.
            assert!(took >= Duration::from_millis(200), "{name}: {took:?}");
        }
    }
    s.stop().await;
}

/// Lowering a stream's `consumer_limits` below what existing consumers have is refused
/// naming them (nats-server: 10069), and leaves the stream as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_limits_below_existing_consumers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let client = s.client().await;
    let base = serde_json::json!({"name": "S", "subjects": ["s.>"]});
    api(&client, "$JS.API.STREAM.CREATE.S", base.clone()).await;
    for (name, config) in [
        (
            "A",
            serde_json::json!({"durable_name": "A", "max_ack_pending": 100}),
        ),
        (
            "B",
            serde_json::json!({"durable_name": "B", "inactive_threshold": 10_000_000_000u64}),
        ),
        ("E", serde_json::json!({"name": "E"})),
    ] {
        let r = api(
            &client,
            format!("$JS.API.CONSUMER.CREATE.S.{name}"),
            serde_json::json!({"stream_name": "S", "config": config}),
        )
        .await;
        assert!(r.get("error").is_none(), "{r}");
    }
    let update = |limits: serde_json::Value| {
        let mut cfg = base.clone();
        cfg["consumer_limits"] = limits;
        api(&client, "$JS.API.STREAM.UPDATE.S", cfg)
    };
    let r = update(serde_json::json!({"max_ack_pending": 50})).await;
    assert_eq!(r["error"]["err_code"], 10069, "{r}");
    assert_eq!(
        r["error"]["description"],
        "change to limits violates consumers: A"
    );
    let r = update(serde_json::json!({"inactive_threshold": 3_000_000_000u64})).await;
    assert_eq!(
        r["error"]["description"],
        "change to limits violates consumers: B, E"
    );
    let r = update(
        serde_json::json!({"max_ack_pending": 5000, "inactive_threshold": 30_000_000_000u64}),
    )
    .await;
    assert!(r.get("error").is_none(), "{r}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_put_get_keys_history_watch() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let js = jetstream::new(s.client().await);
    let kv = js
        .create_key_value(kv::Config {
            bucket: "cfg".into(),
            history: 5,
            ..Default::default()
        })
        .await
        .expect("create bucket");
    kv.put("a", "1".into()).await.unwrap();
    kv.put("b", "2".into()).await.unwrap();
    kv.put("a", "3".into()).await.unwrap();
    assert_eq!(kv.get("a").await.unwrap().unwrap(), "3");
    let mut keys: Vec<String> = kv.keys().await.unwrap().map(|k| k.unwrap()).collect().await;
    keys.sort();
    assert_eq!(keys, vec!["a", "b"]);
    let hist: Vec<_> = kv
        .history("a")
        .await
        .unwrap()
        .map(|e| e.unwrap().value)
        .collect()
        .await;
    assert_eq!(hist, vec!["1", "3"]);
    let mut watch = kv.watch("a").await.unwrap();
    kv.put("a", "4".into()).await.unwrap();
    let e = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("watch update")
        .unwrap()
        .unwrap();
    assert_eq!(e.value, "4");
    kv.delete("b").await.unwrap();
    assert!(kv.get("b").await.unwrap().is_none());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_store_put_get() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let js = jetstream::new(s.client().await);
    let os = js
        .create_object_store(object_store::Config {
            bucket: "files".into(),
            ..Default::default()
        })
        .await
        .expect("create object store");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    os.put("blob", &mut data.as_slice()).await.unwrap();
    let mut obj = os.get("blob").await.expect("get");
    let mut back = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut obj, &mut back)
        .await
        .unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_advisories() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    let mut adv = client
        .subscribe("$JS.EVENT.ADVISORY.CONSUMER.>")
        .await
        .unwrap();
    client.flush().await.unwrap();
    let st = stream_with(&js, "AD", "ad.>", 3).await;
    let c = st
        .create_consumer(consumer::pull::Config {
            durable_name: Some("adv".into()),
            ack_wait: Duration::from_millis(200),
            max_deliver: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut next = async || {
        let m = tokio::time::timeout(Duration::from_secs(5), adv.next())
            .await
            .expect("advisory")
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        (m.subject.to_string(), v)
    };
    let (subj, v) = next().await;
    assert_eq!(subj, "$JS.EVENT.ADVISORY.CONSUMER.CREATED.AD.adv");
    assert_eq!(v["type"], "io.nats.jetstream.advisory.v1.consumer_action");
    assert_eq!(v["action"], "create");
    assert_eq!(v["id"].as_str().unwrap().len(), 22);
    // 1: never acked -> max deliveries; 2: NAK; 3: TERM with a reason.
    let mut batch = c.fetch().max_messages(3).messages().await.unwrap();
    while let Some(m) = batch.next().await {
        let m = m.unwrap();
        match m.info().unwrap().stream_sequence {
            2 => m.ack_with(AckKind::Nak(None)).await.unwrap(),
            3 => m.ack_with(AckKind::Term).await.unwrap(),
            _ => {}
        }
    }
    let mut seen = std::collections::BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    // Keep pulling so redeliveries happen until seq 1 hits max deliveries.
    while !seen.contains_key("MAX_DELIVERIES") && tokio::time::Instant::now() < deadline {
        let mut b = c
            .fetch()
            .max_messages(5)
            .expires(Duration::from_millis(300))
            .messages()
            .await
            .unwrap();
        while let Some(m) = b.next().await {
            if let Ok(m) = m
                && m.info().unwrap().stream_sequence == 2
            {
                m.ack().await.unwrap();
            }
        }
        while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(50), adv.next()).await {
            let kind = m.subject.split('.').nth(4).unwrap().to_string();
            let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
            seen.insert(kind, v);
        }
    }
    let nak = &seen["MSG_NAKED"];
    assert_eq!(nak["type"], "io.nats.jetstream.advisory.v1.nak");
    assert_eq!(
        (nak["stream_seq"].as_u64(), nak["deliveries"].as_u64()),
        (Some(2), Some(1))
    );
    let term = &seen["MSG_TERMINATED"];
    assert_eq!(term["type"], "io.nats.jetstream.advisory.v1.terminated");
    assert_eq!(term["stream_seq"], 3);
    let max = &seen["MAX_DELIVERIES"];
    assert_eq!(max["type"], "io.nats.jetstream.advisory.v1.max_deliver");
    assert_eq!(
        (max["stream_seq"].as_u64(), max["deliveries"].as_u64()),
        (Some(1), Some(2))
    );
    js.delete_consumer_from_stream("adv", "AD").await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let m = tokio::time::timeout_at(deadline, adv.next())
            .await
            .expect("deleted advisory")
            .unwrap();
        if m.subject.as_str() == "$JS.EVENT.ADVISORY.CONSUMER.DELETED.AD.adv" {
            break;
        }
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_original_keeps_the_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let js = jetstream::new(s.client().await);
    let st = stream_with(&js, "RP", "rp.>", 1).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    js.publish("rp.x", "late".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let c = st
        .create_consumer(consumer::pull::Config {
            durable_name: Some("rp".into()),
            replay_policy: consumer::ReplayPolicy::Original,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut msgs = c
        .fetch()
        .max_messages(2)
        .expires(Duration::from_secs(5))
        .messages()
        .await
        .unwrap();
    let first = msgs.next().await.unwrap().unwrap();
    let t0 = tokio::time::Instant::now();
    assert_eq!(first.info().unwrap().stream_sequence, 1);
    let second = msgs.next().await.unwrap().unwrap();
    assert_eq!(second.info().unwrap().stream_sequence, 2);
    // The original gap was at least 400ms; replay must not close it (lower bound only).
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t0.elapsed()
    );
    s.stop().await;
}

/// One message at a time from `c` in priority group `g1`.
async fn pinned_messages(c: &consumer::PullConsumer) -> consumer::pull::Stream {
    c.stream()
        .group("g1")
        .max_messages_per_batch(1)
        .expires(Duration::from_millis(500))
        .messages()
        .await
        .unwrap()
}

/// The `Nats-Pin-Id` a delivery carries.
fn pin_id(m: &jetstream::Message) -> String {
    m.headers
        .as_ref()
        .and_then(|h| h.get("Nats-Pin-Id"))
        .map(|v| v.to_string())
        .expect("Nats-Pin-Id header")
}

/// A `pinned_client` consumer under async-nats: the first `messages()` stream in the
/// group gets the pin (its messages carry `Nats-Pin-Id`, info names it), a second
/// client in the group gets nothing while the pin holds, and `unpin_consumer` ends it so
/// the second client takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_client_priority_group() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let js = jetstream::new(s.client().await);
    let st = stream_with(&js, "PG", "pg.>", 6).await;
    let c: consumer::PullConsumer = st
        .create_consumer(consumer::pull::Config {
            durable_name: Some("pin".into()),
            priority_policy: consumer::PriorityPolicy::PinnedClient,
            priority_groups: vec!["g1".into()],
            priority_timeout: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .expect("create pinned consumer");
    let mut first = pinned_messages(&c).await;
    let m = tokio::time::timeout(Duration::from_secs(5), first.next())
        .await
        .expect("pinned delivery")
        .unwrap()
        .unwrap();
    let pin = pin_id(&m);
    assert_eq!(pin.len(), 22);
    m.ack().await.unwrap();
    let mut c2: consumer::PullConsumer = st.get_consumer("pin").await.unwrap();
    let info = c2.info().await.unwrap().clone();
    assert_eq!(info.priority_groups.len(), 1);
    assert_eq!(info.priority_groups[0].group, "g1");
    assert_eq!(
        info.priority_groups[0].pinned_client_id.as_deref(),
        Some(pin.as_str())
    );
    assert!(info.priority_groups[0].pinned_ts.is_some());
    // Stop the pinned client; a second one waits while the pin holds.
    drop(first);
    let mut second = pinned_messages(&c2).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(1200), second.next())
            .await
            .is_err(),
        "delivered to an unpinned client while the pin holds"
    );
    st.unpin_consumer("pin", "g1").await.expect("unpin");
    let m = tokio::time::timeout(Duration::from_secs(5), second.next())
        .await
        .expect("delivery after unpin")
        .unwrap()
        .unwrap();
    let new_pin = pin_id(&m);
    assert_ne!(new_pin, pin);
    assert_eq!(m.info().unwrap().stream_sequence, 2);
    let err = st.unpin_consumer("pin", "nope").await;
    assert!(err.is_err(), "unknown group refused");
    s.stop().await;
}

/// An `overflow` consumer under async-nats: a fetch with `min_pending` above the backlog
/// gets nothing, one at or below it is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflow_priority_group_min_pending() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(js_opts(dir.path())).await;
    let js = jetstream::new(s.client().await);
    let st = stream_with(&js, "OV", "ov.>", 4).await;
    let c: consumer::PullConsumer = st
        .create_consumer(consumer::pull::Config {
            durable_name: Some("ov".into()),
            priority_policy: consumer::PriorityPolicy::Overflow,
            priority_groups: vec!["g1".into()],
            ..Default::default()
        })
        .await
        .expect("create overflow consumer");
    let count = |min_pending: usize| {
        let c = c.clone();
        async move {
            let mut msgs = c
                .fetch()
                .group("g1")
                .min_pending(min_pending)
                .max_messages(1)
                .expires(Duration::from_millis(300))
                .messages()
                .await
                .unwrap();
            let mut n = 0;
            while let Some(m) = msgs.next().await {
                m.unwrap().ack().await.unwrap();
                n += 1;
            }
            n
        }
    };
    assert_eq!(count(5).await, 0, "4 pending < min_pending 5");
    assert_eq!(count(4).await, 1, "4 pending >= min_pending 4");
    assert_eq!(count(4).await, 0, "3 pending < min_pending 4");
    s.stop().await;
}
