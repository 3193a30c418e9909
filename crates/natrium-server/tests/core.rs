//! Core NATS behaviour through a real client (async-nats) against an in-process server:
//! pub/sub, wildcards, queue groups, request/reply, headers, no-responders,
//! auto-unsubscribe, echo, auth, and the limits (max_payload, slow consumer, ping timeout).

mod support;

use futures::StreamExt;
use natrium_server::options::{Options, SimpleAuth};
use std::sync::atomic::Ordering;
use std::time::Duration;
use support::{TestServer, eventually, roundtrip};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const T: Duration = Duration::from_secs(5);

async fn next_msg(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    tokio::time::timeout(T, sub.next())
        .await
        .expect("message in time")
        .expect("subscription open")
}

/// Read from a raw socket until `pred` holds on everything read, or EOF, or timeout.
async fn read_until(
    s: &mut TcpStream,
    limit: Duration,
    pred: impl Fn(&[u8]) -> bool,
) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = [0u8; 65536];
    loop {
        if pred(&out) {
            return (out, false);
        }
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Ok(Err(_)) => return (out, true),
            Err(_) => return (out, false),
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pub_sub_round_trip() {
    let s = TestServer::start().await;
    let c = s.client().await;
    let mut sub = c.subscribe("greet.joe").await.unwrap();
    c.flush().await.unwrap();
    for i in 0..100 {
        c.publish("greet.joe", format!("hello {i}").into())
            .await
            .unwrap();
    }
    c.flush().await.unwrap();
    for i in 0..100 {
        let m = next_msg(&mut sub).await;
        assert_eq!(m.subject.as_str(), "greet.joe");
        assert_eq!(m.payload, format!("hello {i}").as_bytes());
    }
    let stats = &s.server.shared().stats;
    assert!(stats.in_msgs.load(Ordering::Relaxed) >= 100);
    assert!(stats.out_msgs.load(Ordering::Relaxed) >= 100);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcards_match_as_nats_does() {
    let s = TestServer::start().await;
    let c = s.client().await;
    let mut star = c.subscribe("a.*.c").await.unwrap();
    let mut gt = c.subscribe("a.>").await.unwrap();
    let mut all = c.subscribe(">").await.unwrap();
    c.flush().await.unwrap();
    for subj in ["a.b.c", "a.b", "a.b.c.d", "x"] {
        c.publish(subj, "x".into()).await.unwrap();
    }
    c.flush().await.unwrap();
    assert_eq!(next_msg(&mut star).await.subject.as_str(), "a.b.c");
    for want in ["a.b.c", "a.b", "a.b.c.d"] {
        assert_eq!(next_msg(&mut gt).await.subject.as_str(), want);
    }
    for want in ["a.b.c", "a.b", "a.b.c.d", "x"] {
        assert_eq!(next_msg(&mut all).await.subject.as_str(), want);
    }
    // Nothing else arrives on `a.*.c`.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), star.next())
            .await
            .is_err()
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_group_delivers_each_message_once() {
    let s = TestServer::start().await;
    let c = s.client().await;
    let mut members = Vec::new();
    for _ in 0..3 {
        members.push(c.queue_subscribe("work", "q".into()).await.unwrap());
    }
    let mut plain = c.subscribe("work").await.unwrap();
    c.flush().await.unwrap();
    const N: usize = 300;
    for i in 0..N {
        c.publish("work", i.to_string().into()).await.unwrap();
    }
    c.flush().await.unwrap();
    for _ in 0..N {
        next_msg(&mut plain).await;
    }
    let mut seen = vec![0usize; N];
    let mut per_member = Vec::new();
    for m in members.iter_mut() {
        let mut n = 0;
        while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(300), m.next()).await {
            let i: usize = std::str::from_utf8(&msg.payload).unwrap().parse().unwrap();
            seen[i] += 1;
            n += 1;
        }
        per_member.push(n);
    }
    assert!(
        seen.iter().all(|&n| n == 1),
        "every message exactly once: {per_member:?}"
    );
    assert!(
        per_member.iter().all(|&n| n > 0),
        "spread over members: {per_member:?}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_reply() {
    let s = TestServer::start().await;
    let responder = s.client().await;
    let mut svc = responder.subscribe("svc.echo").await.unwrap();
    roundtrip(&responder).await;
    tokio::spawn(async move {
        while let Some(m) = svc.next().await {
            if let Some(reply) = m.reply {
                let mut body = b"re: ".to_vec();
                body.extend_from_slice(&m.payload);
                responder.publish(reply, body.into()).await.unwrap();
            }
        }
    });
    let c = s.client().await;
    for i in 0..20 {
        let r = tokio::time::timeout(T, c.request("svc.echo", format!("{i}").into()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.payload, format!("re: {i}").as_bytes());
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_round_trip() {
    let s = TestServer::start().await;
    let c = s.client().await;
    let mut sub = c.subscribe("h").await.unwrap();
    c.flush().await.unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("X-One", "1");
    headers.append("X-Multi", "a");
    headers.append("X-Multi", "b");
    c.publish_with_headers("h", headers, "body".into())
        .await
        .unwrap();
    c.flush().await.unwrap();
    let m = next_msg(&mut sub).await;
    let h = m.headers.expect("headers delivered");
    assert_eq!(h.get("X-One").map(|v| v.as_str()), Some("1"));
    let multi: Vec<&str> = h.get_all("X-Multi").map(|v| v.as_str()).collect();
    assert_eq!(multi, vec!["a", "b"]);
    assert_eq!(m.payload, "body".as_bytes());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_responders_status() {
    let s = TestServer::start().await;
    let c = s.client().await;
    let err = tokio::time::timeout(T, c.request("nobody.home", "x".into()))
        .await
        .unwrap()
        .expect_err("no responders");
    assert_eq!(err.kind(), async_nats::RequestErrorKind::NoResponders);
    // The 503 counts in no message statistics (as nats-server): the requester's
    // connection delivered nothing.
    let cid = c.server_info().client_id;
    let conn = s
        .server
        .shared()
        .clients()
        .into_iter()
        .find(|x| x.cid == cid)
        .expect("the requester");
    assert_eq!(conn.out_stats().0, 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_unsubscribe_after_max() {
    let s = TestServer::start().await;
    let c = s.client().await;
    let mut sub = c.subscribe("auto").await.unwrap();
    sub.unsubscribe_after(2).await.unwrap();
    c.flush().await.unwrap();
    for i in 0..5 {
        c.publish("auto", format!("{i}").into()).await.unwrap();
    }
    c.flush().await.unwrap();
    assert_eq!(next_msg(&mut sub).await.payload, "0".as_bytes());
    assert_eq!(next_msg(&mut sub).await.payload, "1".as_bytes());
    let end = tokio::time::timeout(Duration::from_secs(2), sub.next()).await;
    assert!(matches!(end, Ok(None)), "subscription ends after max");
    // The server forgot it too.
    let acc = s.server.shared().global_account();
    assert!(eventually(T, || !acc.sublist.has_interest(b"auto")).await);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_off_skips_own_messages() {
    let s = TestServer::start().await;
    let quiet = async_nats::ConnectOptions::new()
        .no_echo()
        .connect(s.url())
        .await
        .unwrap();
    let other = s.client().await;
    let mut own = quiet.subscribe("e").await.unwrap();
    // An echo-off client cannot round-trip through itself; wait for the server to see the SUB.
    quiet.flush().await.unwrap();
    let acc = s.server.shared().global_account();
    assert!(eventually(T, || acc.sublist.has_interest(b"e")).await);
    quiet.publish("e", "mine".into()).await.unwrap();
    quiet.flush().await.unwrap();
    other.publish("e", "theirs".into()).await.unwrap();
    other.flush().await.unwrap();
    assert_eq!(next_msg(&mut own).await.payload, "theirs".as_bytes());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_payload_is_enforced() {
    let s = TestServer::with(Options {
        max_payload: 1024,
        ..Options::for_test()
    })
    .await;
    // async-nats reads max_payload from INFO and refuses locally.
    let c = s.client().await;
    assert_eq!(c.server_info().max_payload, 1024);
    assert!(c.publish("big", vec![0u8; 2000].into()).await.is_err());
    // A raw client that ignores it is cut off with nats-server's error.
    let mut raw = TcpStream::connect(("127.0.0.1", s.port())).await.unwrap();
    raw.write_all(b"CONNECT {\"verbose\":false}\r\nPUB big 2000\r\n")
        .await
        .unwrap();
    let (got, eof) = read_until(&mut raw, T, |b| contains(b, b"Violation")).await;
    assert!(contains(&got, b"-ERR 'Maximum Payload Violation'\r\n"));
    let (_, eof2) = read_until(&mut raw, T, |_| false).await;
    assert!(eof || eof2, "connection closed after the violation");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_is_cut_and_others_keep_working() {
    let s = TestServer::with(Options {
        max_pending: 64 * 1024,
        max_payload: 32 * 1024,
        ..Options::for_test()
    })
    .await;
    // A subscriber that never reads its socket, with a tiny receive buffer so the kernel
    // cannot absorb the flood on its behalf.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut slow = sock
        .connect(([127, 0, 0, 1], s.port()).into())
        .await
        .unwrap();
    slow.write_all(b"CONNECT {\"verbose\":false}\r\nSUB flood 1\r\nPING\r\n")
        .await
        .unwrap();
    let (got, _) = read_until(&mut slow, T, |b| contains(b, b"PONG")).await;
    assert!(contains(&got, b"PONG"));
    let healthy = s.client().await;
    let mut hsub = healthy.subscribe("flood").await.unwrap();
    roundtrip(&healthy).await;
    let publisher = s.client().await;
    let payload = bytes::Bytes::from(vec![b'x'; 1024]);
    // ~12 MB: more than loopback socket buffers can hold, far over 64 KiB pending.
    const N: usize = 12_000;
    let reader = tokio::spawn(async move {
        let mut n = 0;
        while n < N {
            match tokio::time::timeout(T, hsub.next()).await {
                Ok(Some(_)) => n += 1,
                _ => break,
            }
        }
        n
    });
    for _ in 0..N {
        publisher.publish("flood", payload.clone()).await.unwrap();
    }
    publisher.flush().await.unwrap();
    assert_eq!(
        reader.await.unwrap(),
        N,
        "healthy subscriber gets everything"
    );
    let stats = &s.server.shared().stats;
    assert!(eventually(T, || stats.slow_consumers.load(Ordering::Relaxed) == 1).await);
    // The slow connection sees EOF (after whatever was already in its socket buffers).
    let (_, eof) = read_until(&mut slow, Duration::from_secs(10), |_| false).await;
    assert!(eof, "slow consumer was disconnected");
    let closed = s.server.shared().closed_clients();
    assert!(
        closed
            .iter()
            .any(|c| c.reason.as_str() == "Slow Consumer (Pending Bytes)")
    );
    // The publisher is unaffected.
    let mut again = publisher.subscribe("after").await.unwrap();
    publisher.publish("after", "ok".into()).await.unwrap();
    assert_eq!(next_msg(&mut again).await.payload, "ok".as_bytes());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_pings_close_a_stale_connection() {
    let s = TestServer::with(Options {
        ping_interval: Duration::from_millis(200),
        ping_max: 2,
        ..Options::for_test()
    })
    .await;
    let mut raw = TcpStream::connect(("127.0.0.1", s.port())).await.unwrap();
    raw.write_all(b"CONNECT {\"verbose\":false}\r\n")
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let (got, eof) = read_until(&mut raw, T, |_| false).await;
    let text = String::from_utf8_lossy(&got);
    assert!(eof, "closed: {text}");
    assert_eq!(text.matches("PING\r\n").count(), 2, "{text}");
    assert!(text.ends_with("-ERR 'Stale Connection'\r\n"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(3));
    // The client sees EOF just before the server finishes its cleanup.
    let stats = &s.server.shared().stats;
    assert!(eventually(T, || stats.stale_connections.load(Ordering::Relaxed) == 1).await);
    s.stop().await;
}

/// A second CONNECT keeps the options it does not name (nats-server merges it onto the
/// first): header support and `echo: false` stay as the first CONNECT set them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connect_keeps_what_it_does_not_name() {
    let s = TestServer::start().await;
    let mut raw = TcpStream::connect(("127.0.0.1", s.port())).await.unwrap();
    raw.write_all(
        b"CONNECT {\"verbose\":false,\"headers\":true,\"echo\":false}\r\n\
          CONNECT {\"verbose\":false}\r\nSUB x 1\r\n\
          HPUB x 12 13\r\nNATS/1.0\r\n\r\na\r\nPING\r\n",
    )
    .await
    .unwrap();
    let (got, _) = read_until(&mut raw, T, |b| contains(b, b"PONG")).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("PONG"), "{text}");
    assert!(!text.contains("-ERR"), "headers still on: {text}");
    assert!(!text.contains("MSG x"), "echo still off: {text}");
    s.stop().await;
}

/// No server PING goes to a connection that has not sent CONNECT yet (nats-server waits
/// for it too); the auth timeout, not the ping timer, deals with such clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_ping_before_connect() {
    let s = TestServer::with(Options {
        ping_interval: Duration::from_millis(100),
        ping_max: 2,
        ..Options::for_test()
    })
    .await;
    let mut raw = TcpStream::connect(("127.0.0.1", s.port())).await.unwrap();
    let (got, eof) = read_until(&mut raw, Duration::from_millis(700), |_| false).await;
    let text = String::from_utf8_lossy(&got);
    assert!(!eof, "still open: {text}");
    assert!(text.starts_with("INFO "), "{text}");
    assert!(!text.contains("PING"), "{text}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_pings_keep_a_connection_alive() {
    let s = TestServer::with(Options {
        ping_interval: Duration::from_millis(100),
        ping_max: 1,
        ..Options::for_test()
    })
    .await;
    let c = s.client().await; // async-nats answers server PINGs
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut sub = c.subscribe("alive").await.unwrap();
    c.publish("alive", "yes".into()).await.unwrap();
    assert_eq!(next_msg(&mut sub).await.payload, "yes".as_bytes());
    s.stop().await;
}

fn user_auth() -> Options {
    Options {
        auth: SimpleAuth {
            user: Some("alice".into()),
            password: Some("secret".into()),
            timeout: Some(Duration::from_millis(300)),
            ..SimpleAuth::default()
        },
        ..Options::for_test()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_password_auth() {
    let s = TestServer::with(user_auth()).await;
    let good = async_nats::ConnectOptions::with_user_and_password("alice".into(), "secret".into())
        .connect(s.url())
        .await;
    assert!(good.is_ok());
    let bad = async_nats::ConnectOptions::with_user_and_password("alice".into(), "nope".into())
        .retry_on_initial_connect()
        .max_reconnects(1)
        .connect(s.url())
        .await;
    // async-nats reports the failure on first use or at connect depending on version.
    if let Ok(client) = bad {
        assert!(
            tokio::time::timeout(Duration::from_secs(2), client.flush())
                .await
                .map(|r| r.is_err())
                .unwrap_or(true)
        );
    }
    let mut raw = TcpStream::connect(("127.0.0.1", s.port())).await.unwrap();
    raw.write_all(b"CONNECT {\"user\":\"alice\",\"pass\":\"nope\"}\r\n")
        .await
        .unwrap();
    let (got, eof) = read_until(&mut raw, T, |_| false).await;
    assert!(eof);
    assert!(String::from_utf8_lossy(&got).ends_with("-ERR 'Authorization Violation'\r\n"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth() {
    let s = TestServer::with(Options {
        auth: SimpleAuth {
            token: Some("s3cr3t".into()),
            ..SimpleAuth::default()
        },
        ..Options::for_test()
    })
    .await;
    let c = async_nats::ConnectOptions::with_token("s3cr3t".into())
        .connect(s.url())
        .await
        .unwrap();
    c.flush().await.unwrap();
    let mut raw = TcpStream::connect(("127.0.0.1", s.port())).await.unwrap();
    raw.write_all(b"CONNECT {\"auth_token\":\"wrong\"}\r\n")
        .await
        .unwrap();
    let (got, eof) = read_until(&mut raw, T, |_| false).await;
    assert!(eof);
    assert!(contains(&got, b"-ERR 'Authorization Violation'"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_timeout_closes_silent_clients() {
    let s = TestServer::with(user_auth()).await;
    let mut raw = TcpStream::connect(("127.0.0.1", s.port())).await.unwrap();
    let started = tokio::time::Instant::now();
    let (got, eof) = read_until(&mut raw, T, |_| false).await;
    let text = String::from_utf8_lossy(&got);
    assert!(eof);
    assert!(text.starts_with("INFO {"), "{text}");
    assert!(text.contains("\"auth_required\":true"));
    assert!(
        text.ends_with("-ERR 'Authentication Timeout'\r\n"),
        "{text}"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_info_after_first_pong() {
    let s = TestServer::start().await;
    let mut raw = TcpStream::connect(("127.0.0.1", s.port())).await.unwrap();
    raw.write_all(b"CONNECT {\"verbose\":false,\"protocol\":1}\r\nPING\r\nPING\r\n")
        .await
        .unwrap();
    let (got, _) = read_until(&mut raw, T, |b| {
        String::from_utf8_lossy(b).matches("PONG").count() == 2
    })
    .await;
    let text = String::from_utf8_lossy(&got);
    let infos: Vec<&str> = text
        .split("\r\n")
        .filter(|l| l.starts_with("INFO "))
        .collect();
    assert_eq!(infos.len(), 2, "{text}");
    assert!(infos[1].contains("\"connect_info\":true"));
    assert!(infos[1].contains("\"remote_account\":\"$G\""));
    assert!(!infos[0].contains("connect_info"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_refuses_extra_clients() {
    let s = TestServer::with(Options {
        max_connections: 2,
        ..Options::for_test()
    })
    .await;
    let _a = s.client().await;
    let _b = s.client().await;
    let mut raw = TcpStream::connect(("127.0.0.1", s.port())).await.unwrap();
    let (got, eof) = read_until(&mut raw, T, |_| false).await;
    let text = String::from_utf8_lossy(&got);
    assert!(eof);
    assert!(text.starts_with("INFO {"));
    assert!(
        text.ends_with("-ERR 'maximum connections exceeded'\r\n"),
        "{text}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_client_does_not_stall_others() {
    let s = TestServer::start().await;
    let flooder = s.client().await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let flood = tokio::spawn(async move {
        let payload = bytes::Bytes::from(vec![b'z'; 512]);
        let mut n = 0u64;
        // Nobody subscribes to this; the server must still keep up with everyone else.
        while !stop2.load(Ordering::Relaxed) && n < 2_000_000 {
            flooder.publish("void", payload.clone()).await.unwrap();
            n += 1;
        }
        n
    });
    let responder = s.client().await;
    let mut svc = responder.subscribe("rtt").await.unwrap();
    roundtrip(&responder).await;
    tokio::spawn(async move {
        while let Some(m) = svc.next().await {
            if let Some(r) = m.reply {
                let _ = responder.publish(r, "pong".into()).await;
            }
        }
    });
    let c = s.client().await;
    for _ in 0..50 {
        let r = tokio::time::timeout(Duration::from_secs(2), c.request("rtt", "ping".into()))
            .await
            .expect("request answered within 2s under flood")
            .unwrap();
        assert_eq!(r.payload, "pong".as_bytes());
    }
    stop.store(true, Ordering::Relaxed);
    assert!(flood.await.unwrap() > 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_closes_only_that_client() {
    let s = TestServer::start().await;
    let good = s.client().await;
    let mut sub = good.subscribe("still").await.unwrap();
    roundtrip(&good).await;
    let cases: &[&[u8]] = &[
        b"CONNECT {bad json\r\n",
        b"CONNECT {}\r\nFOO\r\n",
        b"CONNECT {}\r\nPUB x abc\r\n",
        b"CONNECT {}\r\nPUB x 3\r\nabcdef\r\n",
        b"\x00\x01\x02\x03",
    ];
    for case in cases {
        let mut raw = TcpStream::connect(("127.0.0.1", s.port())).await.unwrap();
        raw.write_all(case).await.unwrap();
        let (_, eof) = read_until(&mut raw, T, |_| false).await;
        assert!(eof, "closed for {:?}", String::from_utf8_lossy(case));
    }
    // A half-closed socket is just a client that went away.
    let mut half = TcpStream::connect(("127.0.0.1", s.port())).await.unwrap();
    half.write_all(b"CONNECT {}\r\nSUB x 1\r\n").await.unwrap();
    half.shutdown().await.unwrap();
    good.publish("still", "here".into()).await.unwrap();
    assert_eq!(next_msg(&mut sub).await.payload, "here".as_bytes());
    let shared = s.server.shared().clone();
    assert!(
        eventually(T, || shared.num_clients() == 1).await,
        "only the good client remains"
    );
    // Only the good client's subscription is left of the client subscriptions.
    let mut client_subs = 0;
    shared.global_account().sublist.for_each(|_, _, sub| {
        if sub.client_conn().is_some() {
            client_subs += 1;
        }
    });
    assert_eq!(client_subs, 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_deadline_cuts_a_client_whose_socket_stays_full() {
    let s = TestServer::with(Options {
        write_deadline: Duration::from_millis(300),
        ..Options::for_test()
    })
    .await;
    // Never reads, tiny receive buffer: the server's writes block, and max_pending (64 MiB)
    // is not what trips first.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut stuck = sock
        .connect(([127, 0, 0, 1], s.port()).into())
        .await
        .unwrap();
    stuck
        .write_all(b"CONNECT {\"verbose\":false}\r\nSUB big 1\r\nPING\r\n")
        .await
        .unwrap();
    let (got, _) = read_until(&mut stuck, T, |b| contains(b, b"PONG")).await;
    assert!(contains(&got, b"PONG"));
    let publisher = s.client().await;
    let payload = bytes::Bytes::from(vec![b'w'; 32 * 1024]);
    // ~16 MiB: far beyond the socket buffers, far below max_pending.
    for _ in 0..512 {
        publisher.publish("big", payload.clone()).await.unwrap();
    }
    roundtrip(&publisher).await;
    let shared = s.server.shared().clone();
    assert!(
        eventually(Duration::from_secs(10), || shared
            .closed_clients()
            .iter()
            .any(|c| c.reason.as_str() == "Slow Consumer (Write Deadline)"))
        .await
    );
    // Counted as a slow consumer, as nats-server counts it (/varz slow_consumers).
    assert!(
        shared
            .stats
            .slow_consumers
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_churn_leaves_nothing_behind() {
    let s = TestServer::with(Options {
        max_closed_clients: 50,
        ..Options::for_test()
    })
    .await;
    let shared = s.server.shared().clone();
    let acc = shared.global_account();
    let baseline = acc.sublist.count();
    for i in 0..200 {
        let mut raw = TcpStream::connect(("127.0.0.1", s.port())).await.unwrap();
        raw.write_all(format!("CONNECT {{}}\r\nSUB a.{i} 1\r\nSUB b.* q 2\r\nPING\r\n").as_bytes())
            .await
            .unwrap();
        let _ = read_until(&mut raw, T, |b| contains(b, b"PONG")).await;
    }
    assert!(eventually(T, || shared.num_clients() == 0).await);
    assert!(eventually(T, || acc.sublist.count() == baseline).await);
    assert_eq!(shared.closed_clients().len(), 50, "closed ring is bounded");
    s.stop().await;
}
