//! `subject_delete_marker_ttl`: when expiry takes the last message of a subject, a
//! delete marker is left in its place (as nats-server 2.11+ does), and the marker itself
//! expires without leaving another.

mod support;

use async_nats::jetstream::{self, stream};
use natrium_server::options::Options;
use std::time::Duration;
use support::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_subjects_get_a_marker_that_expires() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = Options::for_test();
    o.jetstream.enabled = true;
    o.jetstream.store_dir = Some(dir.path().to_path_buf());
    let s = TestServer::with(o).await;
    let client = s.client().await;
    let js = jetstream::new(client.clone());
    let info = client
        .request(
            "$JS.API.STREAM.CREATE.M",
            r#"{"name":"M","subjects":["m.>"],"max_age":1000000000,"subject_delete_marker_ttl":1000000000}"#.into(),
        )
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&info.payload).unwrap();
    assert!(v.get("error").is_none(), "{v}");
    // The config is completed as nats-server completes it.
    assert_eq!(v["config"]["allow_msg_ttl"], true);
    assert_eq!(v["config"]["allow_rollup_hdrs"], true);
    js.publish("m.a", "one".into())
        .await
        .unwrap()
        .await
        .unwrap();
    js.publish("m.b", "two".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let mut st: stream::Stream = js.get_stream("M").await.unwrap();
    // After max age both are gone and each subject holds a marker.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    loop {
        let state = st.info().await.unwrap().state.clone();
        if state.last_sequence >= 4 && state.messages == 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no markers: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for seq in [3u64, 4] {
        let m = st.get_raw_message(seq).await.unwrap();
        assert!(m.payload.is_empty());
        assert_eq!(
            m.headers
                .get("Nats-Marker-Reason")
                .map(|v| v.as_str().to_string()),
            Some("MaxAge".to_string())
        );
        assert_eq!(
            m.headers.get("Nats-TTL").map(|v| v.as_str().to_string()),
            Some("1s".to_string())
        );
        assert!(m.subject.as_str() == "m.a" || m.subject.as_str() == "m.b");
    }
    // The markers expire in turn and leave nothing behind: no new markers.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    loop {
        let state = st.info().await.unwrap().state.clone();
        if state.messages == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "markers stay: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let state = st.info().await.unwrap().state.clone();
    assert_eq!((state.messages, state.last_sequence), (0, 4));
}
