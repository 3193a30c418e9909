//! Mirrors and sources (`jetstream::sourcing`): copies of other streams in the same
//! account, driven by async-nats against the real server. What nats-server 2.15.1 does
//! in each case was measured with the same requests (see
//! `tests/python/test_js_sourcing.py` for the side-by-side run).

mod support;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, Context};
use serde_json::{Value, json};
use std::time::Duration;
use support::{TestServer, api, js_options as opts};

async fn ok(client: &async_nats::Client, subject: &str, body: Value) -> Value {
    let v = api(client, subject, body).await;
    assert!(v.get("error").is_none(), "{subject}: {v}");
    v
}

async fn publish(js: &Context, subject: &str, body: &str, headers: &[(&str, &str)]) -> u64 {
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.insert(*k, *v);
    }
    js.publish_with_headers(subject.to_string(), h, body.to_string().into())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence
}

/// Wait until the stream's info satisfies `f`; the last info otherwise (after failing).
async fn until_info(
    client: &async_nats::Client,
    stream: &str,
    f: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let v = api(
            client,
            &format!("$JS.API.STREAM.INFO.{stream}"),
            Value::Null,
        )
        .await;
        if f(&v) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "stream {stream} never got there: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `(subject, header block as text, payload, time)` of message `seq`, or `None`.
async fn get(
    client: &async_nats::Client,
    stream: &str,
    seq: u64,
) -> Option<(String, String, String, String)> {
    use base64::Engine;
    let v = api(
        client,
        &format!("$JS.API.STREAM.MSG.GET.{stream}"),
        json!({"seq": seq}),
    )
    .await;
    let m = v.get("message")?;
    let b64 = |k: &str| {
        let s = m.get(k).and_then(Value::as_str).unwrap_or("");
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(s).unwrap()).unwrap()
    };
    Some((
        m["subject"].as_str().unwrap().to_string(),
        b64("hdrs"),
        b64("data"),
        m["time"].as_str().unwrap().to_string(),
    ))
}

/// [`get`] of a message that must be there. Stream info counts a message once it is
/// appended, reads return it once it is durable (one fsync later), so retry briefly.
async fn must_get(
    client: &async_nats::Client,
    stream: &str,
    seq: u64,
) -> (String, String, String, String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(m) = get(client, stream, seq).await {
            return m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{stream} has no message {seq}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn state(v: &Value, key: &str) -> u64 {
    v["state"][key].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_keeps_sequences_times_and_headers_and_follows_live() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(opts(dir.path())).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    ok(
        &client,
        "$JS.API.STREAM.CREATE.O",
        json!({"name": "O", "subjects": ["o.>"], "allow_direct": true}),
    )
    .await;
    for i in 0..5 {
        publish(
            &js,
            &format!("o.{}", i % 2),
            &format!("m{i}"),
            &[("Foo", "bar")],
        )
        .await;
    }
    ok(&client, "$JS.API.STREAM.MSG.DELETE.O", json!({"seq": 2})).await;
    let created = ok(
        &client,
        "$JS.API.STREAM.CREATE.M",
        json!({"name": "M", "mirror": {"name": "O"}}),
    )
    .await;
    // Inherited from the origin's allow_direct, as nats-server.
    assert_eq!(created["config"]["mirror_direct"], true);
    // `lag` counts from durable copies: wait for both.
    let info = until_info(&client, "M", |v| {
        state(v, "last_seq") == 5 && v["mirror"]["lag"] == 0
    })
    .await;
    assert_eq!(state(&info, "messages"), 4);
    assert_eq!(state(&info, "num_deleted"), 1);
    assert_eq!(info["mirror"]["name"], "O");
    assert_eq!(info["mirror"]["lag"], 0);
    assert!(info["mirror"]["active"].as_i64().unwrap() >= 0, "{info}");
    assert!(info["mirror"].get("seq").is_none(), "{info}");
    for seq in [1u64, 3, 4, 5] {
        let o = must_get(&client, "O", seq).await;
        let m = must_get(&client, "M", seq).await;
        assert_eq!(o, m, "seq {seq}: same subject, headers, payload and time");
    }
    assert!(get(&client, "M", 2).await.is_none());
    // Live: new origin messages follow.
    let seq = publish(&js, "o.9", "late", &[]).await;
    until_info(&client, "M", |v| state(v, "last_seq") == seq).await;
    assert_eq!(must_get(&client, "M", seq).await.2, "late");
    // No consumer shows up on the origin.
    let o = ok(&client, "$JS.API.STREAM.INFO.O", Value::Null).await;
    assert_eq!(o["state"]["consumer_count"], 0);
    // A mirror takes no publishes of its own and cannot change its mirror.
    let upd = api(
        &client,
        "$JS.API.STREAM.UPDATE.M",
        json!({"name": "M", "mirror": {"name": "O", "filter_subject": "o.1"}}),
    )
    .await;
    assert_eq!(upd["error"]["err_code"], 10055, "{upd}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_append_with_a_source_header_through_filters_and_transforms() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(opts(dir.path())).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    ok(
        &client,
        "$JS.API.STREAM.CREATE.A",
        json!({"name": "A", "subjects": ["a.>"]}),
    )
    .await;
    ok(
        &client,
        "$JS.API.STREAM.CREATE.B",
        json!({"name": "B", "subjects": ["b.>"]}),
    )
    .await;
    publish(
        &js,
        "a.1",
        "a1",
        &[("Nats-Expected-Last-Sequence", "0"), ("Foo", "x")],
    )
    .await;
    publish(&js, "a.2", "a2", &[]).await;
    publish(&js, "b.1", "b1", &[]).await;
    ok(
        &client,
        "$JS.API.STREAM.CREATE.S",
        json!({"name": "S", "subjects": ["s.>"], "sources": [
            {"name": "A", "filter_subject": "a.2"},
            {"name": "B", "subject_transforms": [{"src": "b.*", "dest": "t.$1"}]}
        ]}),
    )
    .await;
    let info = until_info(&client, "S", |v| {
        state(v, "messages") == 2
            && v["sources"]
                .as_array()
                .is_some_and(|a| a.iter().all(|s| s.get("seq").is_some()))
    })
    .await;
    let sources = info["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 2, "{info}");
    let a = sources.iter().find(|s| s["name"] == "A").unwrap();
    assert_eq!(a["filter_subject"], "a.2");
    assert_eq!(a["seq"], 2);
    let mut got = Vec::new();
    for seq in 1..=2 {
        let (subject, hdrs, payload, _) = must_get(&client, "S", seq).await;
        got.push((subject, hdrs, payload));
    }
    got.sort();
    assert_eq!(got[0].0, "a.2");
    assert!(
        got[0].1.contains("Nats-Stream-Source: A 2 a.2 > a.2 "),
        "{:?}",
        got[0]
    );
    assert_eq!(got[1].0, "t.1", "transformed subject");
    assert!(
        got[1].1.contains("Nats-Stream-Source: B 1 b.* t.$1 b.1 "),
        "{:?}",
        got[1]
    );
    // The stream's own subjects still take publishes, and a client may not forge the
    // source header (10227).
    publish(&js, "s.own", "own", &[]).await;
    let forged = client
        .request_with_headers(
            "s.x",
            {
                let mut h = HeaderMap::new();
                h.insert("Nats-Stream-Source", "A 1 > > a.1");
                h
            },
            "x".into(),
        )
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&forged.payload).unwrap();
    assert_eq!(v["error"]["err_code"], 10227, "{v}");
    // A source's own origin headers other than expectations are kept; expectations go.
    publish(
        &js,
        "a.2",
        "again",
        &[("Nats-Expected-Last-Sequence", "2"), ("Foo", "y")],
    )
    .await;
    until_info(&client, "S", |v| state(v, "messages") == 4).await;
    let (_, hdrs, payload, _) = must_get(&client, "S", 4).await;
    assert_eq!(payload, "again");
    assert!(hdrs.contains("Foo: y"), "{hdrs}");
    assert!(!hdrs.contains("Nats-Expected"), "{hdrs}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_resume_after_a_restart_without_copying_twice() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(opts(dir.path())).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    ok(
        &client,
        "$JS.API.STREAM.CREATE.O",
        json!({"name": "O", "subjects": ["o.>"]}),
    )
    .await;
    for i in 0..10 {
        publish(&js, "o.x", &format!("{i}"), &[]).await;
    }
    ok(
        &client,
        "$JS.API.STREAM.CREATE.M",
        json!({"name": "M", "mirror": {"name": "O"}}),
    )
    .await;
    ok(
        &client,
        "$JS.API.STREAM.CREATE.S",
        json!({"name": "S", "subjects": ["s"], "sources": [{"name": "O"}]}),
    )
    .await;
    // The source's own messages after its copies must not hide where it was.
    until_info(&client, "S", |v| state(v, "messages") == 10).await;
    for _ in 0..3 {
        publish(&js, "s", "own", &[]).await;
    }
    until_info(&client, "M", |v| state(v, "last_seq") == 10).await;
    drop(client);
    s.stop().await;

    let s = TestServer::with(opts(dir.path())).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    for i in 10..15 {
        publish(&js, "o.x", &format!("{i}"), &[]).await;
    }
    let m = until_info(&client, "M", |v| state(v, "last_seq") == 15).await;
    assert_eq!(state(&m, "messages"), 15);
    let src = until_info(&client, "S", |v| state(v, "messages") == 18).await;
    // Settled: nothing more arrives (a restart from the origin's start would copy the
    // first ten again).
    tokio::time::sleep(Duration::from_millis(600)).await;
    let src2 = ok(&client, "$JS.API.STREAM.INFO.S", Value::Null).await;
    assert_eq!(state(&src2, "messages"), 18, "{src} / {src2}");
    assert_eq!(src2["sources"][0]["seq"], 15);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_origin_is_reported_then_followed_once_it_exists() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(opts(dir.path())).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    ok(
        &client,
        "$JS.API.STREAM.CREATE.M",
        json!({"name": "M", "mirror": {"name": "LATER"}}),
    )
    .await;
    let info = until_info(&client, "M", |v| v["mirror"].get("error").is_some()).await;
    assert_eq!(info["mirror"]["error"]["err_code"], 10059, "{info}");
    assert_eq!(info["mirror"]["active"], -1);
    ok(
        &client,
        "$JS.API.STREAM.CREATE.LATER",
        json!({"name": "LATER", "subjects": ["later"]}),
    )
    .await;
    publish(&js, "later", "x", &[]).await;
    let info = until_info(&client, "M", |v| state(v, "messages") == 1).await;
    assert!(info["mirror"].get("error").is_none(), "{info}");
    // Deleting the mirror stops its link (the origin keeps taking publishes).
    ok(&client, "$JS.API.STREAM.DELETE.M", Value::Null).await;
    publish(&js, "later", "y", &[]).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_discard_new_stream_holds_the_source_back_until_there_is_room() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(opts(dir.path())).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    ok(
        &client,
        "$JS.API.STREAM.CREATE.O",
        json!({"name": "O", "subjects": ["o"]}),
    )
    .await;
    for i in 0..10 {
        publish(&js, "o", &format!("{i}"), &[]).await;
    }
    ok(
        &client,
        "$JS.API.STREAM.CREATE.W",
        json!({"name": "W", "sources": [{"name": "O"}], "max_msgs": 4, "discard": "new"}),
    )
    .await;
    // `seq` counts durable copies, `messages` appended ones: both get there.
    let info = until_info(&client, "W", |v| {
        state(v, "messages") == 4 && v["sources"][0]["seq"] == 4
    })
    .await;
    assert_eq!(state(&info, "last_seq"), 4);
    ok(&client, "$JS.API.STREAM.PURGE.W", Value::Null).await;
    // Room again: the source goes on where it stopped (5..8), nothing skipped.
    until_info(&client, "W", |v| {
        state(v, "messages") == 4 && state(v, "last_seq") == 8
    })
    .await;
    let (_, hdrs, payload, _) = must_get(&client, "W", 5).await;
    assert_eq!(payload, "4");
    assert!(hdrs.contains("Nats-Stream-Source: O 5 > > o "), "{hdrs}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_follow_updates_and_cycles_and_sizes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(opts(dir.path())).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    ok(
        &client,
        "$JS.API.STREAM.CREATE.A",
        json!({"name": "A", "subjects": ["a"], "max_msg_size": 100}),
    )
    .await;
    ok(
        &client,
        "$JS.API.STREAM.CREATE.B",
        json!({"name": "B", "subjects": ["b"]}),
    )
    .await;
    publish(&js, "a", "1", &[]).await;
    publish(&js, "b", "1", &[]).await;
    ok(
        &client,
        "$JS.API.STREAM.CREATE.S",
        json!({"name": "S", "subjects": ["s"], "sources": [{"name": "A"}]}),
    )
    .await;
    until_info(&client, "S", |v| state(v, "messages") == 1).await;
    // Add B, drop A.
    ok(
        &client,
        "$JS.API.STREAM.UPDATE.S",
        json!({"name": "S", "subjects": ["s"], "sources": [{"name": "B"}]}),
    )
    .await;
    until_info(&client, "S", |v| state(v, "messages") == 2).await;
    publish(&js, "a", "2", &[]).await;
    publish(&js, "b", "2", &[]).await;
    let info = until_info(&client, "S", |v| state(v, "messages") == 3).await;
    assert_eq!(info["sources"].as_array().unwrap().len(), 1);
    assert_eq!(info["sources"][0]["name"], "B");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let info = ok(&client, "$JS.API.STREAM.INFO.S", Value::Null).await;
    assert_eq!(
        state(&info, "messages"),
        3,
        "A's second message is not copied"
    );
    // A source back to itself through another stream is a cycle (10052).
    let cyc = api(
        &client,
        "$JS.API.STREAM.UPDATE.B",
        json!({"name": "B", "subjects": ["b"], "sources": [{"name": "S"}]}),
    )
    .await;
    assert_eq!(cyc["error"]["err_code"], 10052, "{cyc}");
    assert_eq!(cyc["error"]["description"], "detected cycle");
    // A copy may not take smaller messages than its origin allows.
    let small = api(
        &client,
        "$JS.API.STREAM.CREATE.T",
        json!({"name": "T", "sources": [{"name": "A"}], "max_msg_size": 10}),
    )
    .await;
    assert_eq!(small["error"]["err_code"], 10046, "{small}");
    let small = api(
        &client,
        "$JS.API.STREAM.CREATE.T",
        json!({"name": "T", "mirror": {"name": "A"}, "max_msg_size": 10}),
    )
    .await;
    assert_eq!(small["error"]["err_code"], 10030, "{small}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_whose_copies_were_purged_does_not_start_over_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(opts(dir.path())).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    ok(
        &client,
        "$JS.API.STREAM.CREATE.O",
        json!({"name": "O", "subjects": ["o"]}),
    )
    .await;
    for i in 0..10 {
        publish(&js, "o", &format!("{i}"), &[]).await;
    }
    ok(
        &client,
        "$JS.API.STREAM.CREATE.S",
        json!({"name": "S", "subjects": ["s"], "sources": [{"name": "O"}]}),
    )
    .await;
    until_info(&client, "S", |v| state(v, "messages") == 10).await;
    ok(&client, "$JS.API.STREAM.PURGE.S", Value::Null).await;
    // The record is written when the link goes idle (at most a second later).
    let record = dir.path().join("jetstream/$G/streams/S/sources.nmeta");
    assert!(
        support::eventually(Duration::from_secs(5), || record.exists()).await,
        "no progress record at {}",
        record.display()
    );
    drop(client);
    s.stop().await;

    let s = TestServer::with(opts(dir.path())).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    publish(&js, "o", "10", &[]).await;
    until_info(&client, "S", |v| state(v, "last_seq") == 11).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let info = ok(&client, "$JS.API.STREAM.INFO.S", Value::Null).await;
    assert_eq!(state(&info, "messages"), 1, "only the new message: {info}");
    assert_eq!(must_get(&client, "S", 11).await.2, "10");
    s.stop().await;
}

/// `external` links: through an import that covers only the consumer-create request of
/// one filter (nats-server's `TestJetStreamMirrorCrossAccountWithFilteredSubjectAndSubjectTransform`
/// setup) plus the deliveries' stream import, a mirror filtered on the imported subject
/// copies, one filtered on another subject finds no origin and copies nothing; so does a
/// link through this server's own `$JS.<domain>.API`, which nats-server does not answer
/// for a stream's own requests either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_links_through_the_domain_and_through_imports() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("server.conf");
    std::fs::write(
        &conf,
        format!(
            r#"
jetstream {{ store_dir: {:?}, domain: hub }}
accounts {{
  PUB {{
    jetstream: enabled
    users: [ {{ user: pub, password: pwd }} ]
    exports: [ {{ service: "$JS.API.CONSUMER.CREATE.S.*.public.a", accounts: [ INT ] }},
               {{ stream: "deliver.int.>", accounts: [ INT ] }} ]
  }}
  INT {{
    jetstream: enabled
    users: [ {{ user: int, password: pwd }} ]
    imports: [ {{ service: {{ account: PUB, subject: "$JS.API.CONSUMER.CREATE.S.*.public.a" }},
                  to: "JS.PUB.CONSUMER.CREATE.S.*.public.a" }},
               {{ stream: {{ account: PUB, subject: "deliver.int.>" }} }} ]
  }}
}}
"#,
            dir.path().join("store")
        ),
    )
    .unwrap();
    let mut o = natrium_server::config_file::load(&conf).expect("config");
    o.host = "127.0.0.1".into();
    o.port = 0;
    let s = TestServer::with(o).await;
    let login = |user: &'static str| {
        let url = s.url();
        async move {
            async_nats::ConnectOptions::with_user_and_password(user.into(), "pwd".into())
                .connect(url)
                .await
                .expect("login")
        }
    };
    let public = login("pub").await;
    let internal = login("int").await;
    let pjs = jetstream::new(public.clone());
    ok(
        &public,
        "$JS.API.STREAM.CREATE.S",
        json!({"name": "S", "subjects": ["public.>"]}),
    )
    .await;
    publish(&pjs, "public.a", "a1", &[]).await;
    publish(&pjs, "public.b", "b1", &[]).await;
    // The same account through its own domain: not answered.
    ok(
        &public,
        "$JS.API.STREAM.CREATE.D",
        json!({"name": "D", "mirror": {"name": "S",
               "external": {"api": "$JS.hub.API", "deliver": "dd"}}}),
    )
    .await;
    // Another account, through the one imported filter.
    let ext = json!({"api": "JS.PUB", "deliver": "deliver.int"});
    ok(
        &internal,
        "$JS.API.STREAM.CREATE.MA",
        json!({"name": "MA", "mirror": {"name": "S", "filter_subject": "public.a", "external": ext}}),
    )
    .await;
    ok(
        &internal,
        "$JS.API.STREAM.CREATE.MB",
        json!({"name": "MB", "mirror": {"name": "S", "filter_subject": "public.b", "external": ext}}),
    )
    .await;
    publish(&pjs, "public.a", "a2", &[]).await;
    until_info(&internal, "MA", |v| v["state"]["messages"] == 2).await;
    let (subject, _, data, _) = must_get(&internal, "MA", 3).await;
    assert_eq!((subject.as_str(), data.as_str()), ("public.a", "a2"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    for name in ["MB", "D"] {
        let client = if name == "D" { &public } else { &internal };
        let v = until_info(client, name, |_| true).await;
        assert_eq!(v["state"]["messages"], 0, "{v}");
        assert_eq!(v["mirror"]["error"]["err_code"], 10059, "{v}");
    }
    s.stop().await;
}
