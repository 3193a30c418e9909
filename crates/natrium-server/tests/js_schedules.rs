//! Message schedules (`allow_msg_schedules`) against the real server with async-nats:
//! what needs a restart, which the side-by-side Python test
//! (`tests/python/test_js_schedules.py`) does not do — the schedule table is rebuilt
//! from the stored messages, so a repeating schedule keeps firing, and one ended before
//! the restart stays ended.

mod support;

use async_nats::HeaderMap;
use serde_json::{Value, json};
use std::time::Duration;
use support::{TestServer, api, js_options as opts};

async fn publish(client: &async_nats::Client, subject: &str, headers: &[(&str, &str)]) -> Value {
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.insert(*k, *v);
    }
    let r = client
        .request_with_headers(subject.to_string(), h, "body".into())
        .await
        .unwrap();
    serde_json::from_slice(&r.payload).unwrap()
}

/// How many messages the stream holds on `subject`.
async fn count(client: &async_nats::Client, subject: &str) -> u64 {
    let info = api(
        client,
        "$JS.API.STREAM.INFO.S",
        json!({"subjects_filter": subject}),
    )
    .await;
    info["state"]["subjects"][subject].as_u64().unwrap_or(0)
}

/// Wait until `subject` holds at least `n` messages (at most `secs`).
async fn until_count(client: &async_nats::Client, subject: &str, n: u64, secs: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let c = count(client, subject).await;
        if c >= n || tokio::time::Instant::now() > deadline {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_repeating_schedule_fires_again_after_a_restart_and_an_ended_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with(opts(dir.path())).await;
    let c = s.client().await;
    let created = api(
        &c,
        "$JS.API.STREAM.CREATE.S",
        json!({"name": "S", "subjects": ["s.>"], "allow_msg_schedules": true}),
    )
    .await;
    assert!(created.get("error").is_none(), "{created}");
    let every = [
        ("Nats-Schedule", "@every 1s"),
        ("Nats-Schedule-Target", "s.tick"),
    ];
    assert_eq!(publish(&c, "s.every", &every).await["seq"], 1);
    let ended = [
        ("Nats-Schedule", "@every 1s"),
        ("Nats-Schedule-Target", "s.ended"),
    ];
    publish(&c, "s.stop", &ended).await;
    assert!(until_count(&c, "s.tick", 1, 5).await >= 1);
    assert!(until_count(&c, "s.ended", 1, 5).await >= 1);
    // End the second one the way a client does.
    let purge = [
        ("Nats-Schedule-Next", "purge"),
        ("Nats-Scheduler", "s.stop"),
    ];
    let ack = publish(&c, "s.kill", &purge).await;
    assert!(ack.get("error").is_none(), "{ack}");
    drop(c);
    s.stop().await;

    let s = TestServer::with(opts(dir.path())).await;
    let c = s.client().await;
    let ended_before = count(&c, "s.ended").await;
    let ticks = count(&c, "s.tick").await;
    assert!(
        until_count(&c, "s.tick", ticks + 2, 6).await >= ticks + 2,
        "the schedule keeps firing after the restart"
    );
    assert_eq!(
        count(&c, "s.ended").await,
        ended_before,
        "an ended schedule stays ended"
    );
    // The schedule message itself is still the one stored.
    let got = api(
        &c,
        "$JS.API.STREAM.MSG.GET.S",
        json!({"last_by_subj": "s.every"}),
    )
    .await;
    assert_eq!(got["message"]["seq"], 1, "{got}");
    s.stop().await;
}
