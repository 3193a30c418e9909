//! Accounts, users and permissions from real nats-server config files, driven by async-nats
//! and raw sockets: isolation, every credential form, permission violations with
//! nats-server's exact texts, allow_responses, and service and stream imports.

mod support;

use futures::StreamExt;
use natrium_server::config_file;
use natrium_server::options::Options;
use std::time::Duration;
use support::{TestServer, roundtrip};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const T: Duration = Duration::from_secs(5);

/// Load a config text as the server would, then point it at loopback port 0.
fn config(text: &str) -> Options {
    let dir = std::env::temp_dir().join(format!(
        "natrium-acc-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("server.conf");
    std::fs::write(&path, text).unwrap();
    let mut o = config_file::load(&path).unwrap_or_else(|e| panic!("config: {e}"));
    o.host = "127.0.0.1".into();
    o.port = 0;
    let _ = std::fs::remove_dir_all(&dir);
    o
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

async fn user(s: &TestServer, name: &str, pass: &str) -> async_nats::Client {
    async_nats::ConnectOptions::with_user_and_password(name.into(), pass.into())
        .connect(s.url())
        .await
        .unwrap_or_else(|e| panic!("{name} connects: {e}"))
}

async fn next(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    tokio::time::timeout(T, sub.next())
        .await
        .expect("message in time")
        .expect("subscription open")
}

async fn nothing(sub: &mut async_nats::Subscriber) {
    let got = tokio::time::timeout(Duration::from_millis(300), sub.next()).await;
    assert!(got.is_err(), "expected nothing, got {got:?}");
}

/// A raw connection: send `lines`, then read until `PONG` (the client ends with PING).
async fn raw_exchange(port: u16, lines: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(lines.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + T;
    while !String::from_utf8_lossy(&out).contains("PONG\r\n") {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    // Drop the greeting INFO line; callers check what follows.
    match text.strip_prefix("INFO ") {
        Some(rest) => rest
            .split_once("\r\n")
            .map_or(String::new(), |(_, r)| r.to_string()),
        None => text,
    }
}

/// Wait until `account` has interest in `subject` (for clients that cannot round-trip).
async fn wait_interest(s: &TestServer, account: &str, subject: &str) {
    let acc = s.server.shared().account(account).expect("account exists");
    assert!(
        support::eventually(T, || acc.sublist.has_interest(subject.as_bytes())).await,
        "{account} interest in {subject}"
    );
}

const ACCOUNTS: &str = r#"
accounts {
  A {
    users: [ {user: a, password: pa} ]
    exports: [
      {stream: "pub.>"}
      {service: "svc.>", accounts: [B]}
    ]
  }
  B {
    users: [ {user: b, password: pb} ]
    imports: [
      {stream: {account: A, subject: "pub.>"}, prefix: "from_a"}
      {service: {account: A, subject: "svc.echo"}, to: "echo"}
    ]
  }
  C { users: [ {user: c, password: pc} ] }
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_are_isolated() {
    let s = TestServer::with(config(ACCOUNTS)).await;
    let a = user(&s, "a", "pa").await;
    let c = user(&s, "c", "pc").await;
    let mut a_sub = a.subscribe("iso").await.unwrap();
    roundtrip(&a).await;
    c.publish("iso", "from c".into()).await.unwrap();
    roundtrip(&c).await;
    nothing(&mut a_sub).await;
    a.publish("iso", "from a".into()).await.unwrap();
    assert_eq!(next(&mut a_sub).await.payload, "from a".as_bytes());
    // The connect-info INFO names the account.
    let info = raw_exchange(
        s.port(),
        "CONNECT {\"user\":\"c\",\"pass\":\"pc\",\"protocol\":1,\"verbose\":false}\r\nPING\r\n",
    )
    .await;
    assert!(info.contains("\"remote_account\":\"C\""), "{info}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_import_with_prefix() {
    let s = TestServer::with(config(ACCOUNTS)).await;
    let a = user(&s, "a", "pa").await;
    let b = user(&s, "b", "pb").await;
    let mut imported = b.subscribe("from_a.pub.>").await.unwrap();
    roundtrip(&b).await;
    a.publish("pub.orders", "o1".into()).await.unwrap();
    let m = next(&mut imported).await;
    assert_eq!(m.subject.as_str(), "from_a.pub.orders");
    assert_eq!(m.payload, "o1".as_bytes());
    // Not exported: stays in A.
    a.publish("private.x", "p".into()).await.unwrap();
    let mut all = b.subscribe(">").await.unwrap();
    roundtrip(&b).await;
    a.publish("private.y", "p".into()).await.unwrap();
    roundtrip(&a).await;
    let got = tokio::time::timeout(Duration::from_millis(300), all.next()).await;
    assert!(
        got.is_err()
            || got
                .as_ref()
                .unwrap()
                .as_ref()
                .unwrap()
                .subject
                .starts_with("_INBOX"),
        "{got:?}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_import_request_reply_across_accounts() {
    let s = TestServer::with(config(ACCOUNTS)).await;
    let a = user(&s, "a", "pa").await;
    let mut svc = a.subscribe("svc.echo").await.unwrap();
    roundtrip(&a).await;
    let responder = a.clone();
    tokio::spawn(async move {
        while let Some(m) = svc.next().await {
            if let Some(r) = m.reply {
                // The responder sees the exporter's subject and a routed reply.
                assert_eq!(m.subject.as_str(), "svc.echo");
                assert!(r.starts_with("_R_."), "{r}");
                let mut body = b"echo: ".to_vec();
                body.extend_from_slice(&m.payload);
                responder.publish(r, body.into()).await.unwrap();
            }
        }
    });
    let b = user(&s, "b", "pb").await;
    for i in 0..5 {
        let r = tokio::time::timeout(T, b.request("echo", format!("{i}").into()))
            .await
            .expect("reply in time")
            .expect("reply");
        assert_eq!(r.payload, format!("echo: {i}").as_bytes());
    }
    // Singleton routes close after their response.
    let acc_a = s.server.shared().account("A").unwrap();
    assert_eq!(acc_a.open_responses(), 0);
    // C has no import: no responders.
    let c = user(&s, "c", "pc").await;
    let err = c.request("echo", "x".into()).await.unwrap_err();
    assert_eq!(err.kind(), async_nats::RequestErrorKind::NoResponders);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_import_without_responder_is_no_responders() {
    let s = TestServer::with(config(ACCOUNTS)).await;
    let b = user(&s, "b", "pb").await;
    let err = tokio::time::timeout(T, b.request("echo", "x".into()))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), async_nats::RequestErrorKind::NoResponders);
    s.stop().await;
}

#[test]
fn unauthorized_import_fails_the_start() {
    let o = config(
        r#"
accounts {
  A { exports: [ {service: "svc.>", accounts: [C]} ] }
  B { imports: [ {service: {account: A, subject: "svc.x"}} ] }
  C {}
}
"#,
    );
    let err = natrium_server::server::build_accounts(&o).unwrap_err();
    assert!(err.contains("service import not authorized"), "{err}");
}

/// Import `to` mappings that name the exporter's wildcards (`$n`, `{{wildcard(n)}}`,
/// a trailing `>`), as nats-server 2.15.1 maps them: a stream import re-publishes
/// `ev.k.z.w` as `mine.k.z.w` (not `mine.k.k`), and a service import takes requests on
/// `local.<token>.x` to the exporter's `svc.<token>` (it used to answer no responders).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_mappings_name_the_exporters_wildcards() {
    let s = TestServer::with(config(
        r#"
accounts {
  A {
    users: [{user: a, password: pa}]
    exports: [{stream: "ev.*.>"}, {service: "svc.*"}, {service: "two.*.*"}]
  }
  B {
    users: [{user: b, password: pb}]
    imports: [
      {stream: {account: A, subject: "ev.*.>"}, to: "mine.$1.>"}
      {service: {account: A, subject: "svc.*"}, to: "local.$1.x"}
      {service: {account: A, subject: "two.*.*"}, to: "swap.{{wildcard(2)}}.{{wildcard(1)}}"}
    ]
  }
}
"#,
    ))
    .await;
    let a = user(&s, "a", "pa").await;
    let b = user(&s, "b", "pb").await;
    let mut mine = b.subscribe("mine.>").await.unwrap();
    roundtrip(&b).await;
    a.publish("ev.k.z.w", "e".into()).await.unwrap();
    assert_eq!(next(&mut mine).await.subject.as_str(), "mine.k.z.w");
    let mut svc = a.subscribe("svc.*").await.unwrap();
    let mut two = a.subscribe("two.*.*").await.unwrap();
    roundtrip(&a).await;
    let responder = a.clone();
    tokio::spawn(async move {
        loop {
            let m = tokio::select! {
                m = svc.next() => m,
                m = two.next() => m,
            };
            let Some(m) = m else { break };
            if let Some(r) = m.reply {
                responder
                    .publish(r, m.subject.as_str().to_string().into())
                    .await
                    .unwrap();
            }
        }
    });
    let r = tokio::time::timeout(T, b.request("local.k.x", "q".into()))
        .await
        .expect("reply in time")
        .expect("routed to the exporter");
    assert_eq!(&r.payload[..], b"svc.k");
    let r = tokio::time::timeout(T, b.request("swap.z.k", "q".into()))
        .await
        .expect("reply in time")
        .expect("routed to the exporter");
    assert_eq!(&r.payload[..], b"two.k.z");
    s.stop().await;
}

#[test]
fn an_import_mapping_that_drops_a_wildcard_fails_the_start() {
    let o = config(
        r#"
accounts {
  A { exports: [ {stream: "ev.*.>"} ] }
  B { imports: [ {stream: {account: A, subject: "ev.*.>"}, to: "mine.>"} ] }
}
"#,
    );
    let err = natrium_server::server::build_accounts(&o).unwrap_err();
    assert!(
        err.contains("not using all of the token wildcard(s)"),
        "{err}"
    );
    // A literal exported subject is not mapped strictly: a wildcard `to` still starts.
    let o = config(
        r#"
accounts {
  A { exports: [ {service: "svc.a"} ] }
  B { imports: [ {service: {account: A, subject: "svc.a"}, to: "local.*"} ] }
}
"#,
    );
    assert!(natrium_server::server::build_accounts(&o).is_ok());
}

const PERMS: &str = r#"
authorization {
  users: [
    {user: alice, password: secret}
    {user: bob, password: pw, permissions: {
        publish: {allow: ["ok.>", "_INBOX.>"]}
        subscribe: {deny: ["secret.>"]}
    }}
    {user: svc, password: pw, permissions: {
        subscribe: "requests"
        allow_responses: true
    }}
    {user: q, password: pw, permissions: { subscribe: ["work.* workers"] }}
  ]
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permission_violations_have_nats_server_texts_and_keep_the_connection() {
    let s = TestServer::with(config(PERMS)).await;
    let out = raw_exchange(
        s.port(),
        "CONNECT {\"user\":\"bob\",\"pass\":\"pw\",\"verbose\":false}\r\n\
         PUB notok 1\r\nx\r\nSUB secret.x 1\r\nSUB secret.x q 2\r\nPUB ok.x 1\r\nx\r\nPING\r\n",
    )
    .await;
    assert_eq!(
        out,
        "-ERR 'Permissions Violation for Publish to \"notok\"'\r\n\
         -ERR 'Permissions Violation for Subscription to \"secret.x\"'\r\n\
         -ERR 'Permissions Violation for Subscription to \"secret.x\" using queue \"q\"'\r\n\
         PONG\r\n"
    );
    s.stop().await;
}

/// Empty permission lists restrict nothing, as in nats-server 2.15.1 (they used to deny
/// everything); a deny list beside an empty allow list still applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_permission_lists_restrict_nothing() {
    let s = TestServer::with(config(
        r#"
authorization {
  users: [
    {user: e1, password: pw, permissions: { publish: [], subscribe: [] }}
    {user: e2, password: pw, permissions: { publish: { allow: [], deny: ["y"] } }}
  ]
}
"#,
    ))
    .await;
    let out = raw_exchange(
        s.port(),
        "CONNECT {\"user\":\"e1\",\"pass\":\"pw\",\"verbose\":false}\r\n\
         SUB x 1\r\nPUB x 1\r\nz\r\nPING\r\n",
    )
    .await;
    assert_eq!(out, "MSG x 1 1\r\nz\r\nPONG\r\n");
    let out = raw_exchange(
        s.port(),
        "CONNECT {\"user\":\"e2\",\"pass\":\"pw\",\"verbose\":false}\r\n\
         SUB x 1\r\nPUB x 1\r\nz\r\nPUB y 1\r\nz\r\nPING\r\n",
    )
    .await;
    assert_eq!(
        out,
        "MSG x 1 1\r\nz\r\n-ERR 'Permissions Violation for Publish to \"y\"'\r\nPONG\r\n"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_subscription_does_not_leak_denied_subjects() {
    let s = TestServer::with(config(PERMS)).await;
    let bob = user(&s, "bob", "pw").await;
    let alice = user(&s, "alice", "secret").await;
    let mut all = bob.subscribe(">").await.unwrap();
    bob.flush().await.unwrap();
    wait_interest(&s, "$G", "public.news").await;
    alice.publish("secret.plans", "no".into()).await.unwrap();
    alice.publish("public.news", "yes".into()).await.unwrap();
    let m = next(&mut all).await;
    assert_eq!(m.subject.as_str(), "public.news");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_responses_grants_one_reply() {
    let s = TestServer::with(config(PERMS)).await;
    let svc = user(&s, "svc", "pw").await;
    let mut reqs = svc.subscribe("requests").await.unwrap();
    svc.flush().await.unwrap();
    wait_interest(&s, "$G", "requests").await;
    let alice = user(&s, "alice", "secret").await;
    let mut inbox = alice.subscribe("my.reply").await.unwrap();
    roundtrip(&alice).await;
    alice
        .publish_with_reply("requests", "my.reply", "q".into())
        .await
        .unwrap();
    let req = next(&mut reqs).await;
    // The first reply is allowed; a second one is not (max 1 by default).
    svc.publish(req.reply.clone().unwrap(), "a1".into())
        .await
        .unwrap();
    svc.publish(req.reply.unwrap(), "a2".into()).await.unwrap();
    assert_eq!(next(&mut inbox).await.payload, "a1".as_bytes());
    nothing(&mut inbox).await;
    // Publishing anywhere else is denied.
    let out = raw_exchange(
        s.port(),
        "CONNECT {\"user\":\"svc\",\"pass\":\"pw\",\"verbose\":false}\r\nPUB elsewhere 1\r\nx\r\nPING\r\n",
    )
    .await;
    assert!(
        out.starts_with("-ERR 'Permissions Violation for Publish to \"elsewhere\"'"),
        "{out}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_restricted_subscribe_permissions() {
    let s = TestServer::with(config(PERMS)).await;
    let out = raw_exchange(
        s.port(),
        "CONNECT {\"user\":\"q\",\"pass\":\"pw\",\"verbose\":false}\r\n\
         SUB work.a workers 1\r\nSUB work.a 2\r\nSUB work.a other 3\r\nSUB x 4\r\nSUB y _sys_ 5\r\nPING\r\n",
    )
    .await;
    assert_eq!(
        out,
        "-ERR 'Permissions Violation for Subscription to \"work.a\"'\r\n\
         -ERR 'Permissions Violation for Subscription to \"work.a\" using queue \"other\"'\r\n\
         -ERR 'Permissions Violation for Subscription to \"x\"'\r\n\
         -ERR 'Permissions Violation for Subscription to \"y\" using queue \"_sys_\"'\r\n\
         PONG\r\n"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_reply_prefix_is_refused() {
    let s = TestServer::start().await;
    let out = raw_exchange(
        s.port(),
        "CONNECT {\"verbose\":false}\r\nPUB a _R_.x 1\r\nx\r\nPING\r\n",
    )
    .await;
    assert_eq!(
        out,
        "-ERR 'Permissions Violation for Publish with Reply of \"_R_.x\"'\r\nPONG\r\n"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_auth_user_and_default_permissions() {
    let s = TestServer::with(config(
        r#"
accounts {
  A {
    default_permissions: { publish: "allowed.>" }
    users: [ {user: anon, password: x}, {user: full, password: y, permissions: {publish: ">"}} ]
  }
}
no_auth_user: anon
"#,
    ))
    .await;
    // No credentials: bound to `anon` in A, with A's default permissions.
    let _anon = async_nats::connect(s.url()).await.unwrap();
    // The first INFO does not ask for credentials (the one after CONNECT says the server
    // has auth, as nats-server's does).
    let mut raw = TcpStream::connect(("127.0.0.1", s.port())).await.unwrap();
    let mut first = vec![0u8; 4096];
    let n = tokio::time::timeout(T, raw.read(&mut first))
        .await
        .unwrap()
        .unwrap();
    let first = String::from_utf8_lossy(&first[..n]).to_string();
    assert!(
        first.starts_with("INFO ") && !first.contains("auth_required"),
        "{first}"
    );
    raw.write_all(b"CONNECT {\"verbose\":false,\"protocol\":1}\r\nPING\r\n")
        .await
        .unwrap();
    let mut later = Vec::new();
    let deadline = tokio::time::Instant::now() + T;
    while !String::from_utf8_lossy(&later).contains("\"connect_info\":true") {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, raw.read(&mut buf))
            .await
            .expect("the INFO after CONNECT")
            .unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&later));
        later.extend_from_slice(&buf[..n]);
    }
    assert!(
        String::from_utf8_lossy(&later).contains("\"auth_required\":true"),
        "{}",
        String::from_utf8_lossy(&later)
    );
    drop(raw);
    let out = raw_exchange(
        s.port(),
        "CONNECT {\"verbose\":false,\"protocol\":1}\r\nPUB denied 1\r\nx\r\nPUB allowed.x 1\r\nx\r\nPING\r\n",
    )
    .await;
    assert!(
        out.starts_with("-ERR 'Permissions Violation for Publish to \"denied\"'\r\nPONG\r\n"),
        "{out}"
    );
    assert!(out.contains("\"remote_account\":\"A\""), "{out}");
    // Explicit credentials still work, and bad ones still fail.
    user(&s, "full", "y").await;
    let out = raw_exchange(
        s.port(),
        "CONNECT {\"user\":\"full\",\"pass\":\"bad\"}\r\nPING\r\n",
    )
    .await;
    assert!(out.contains("-ERR 'Authorization Violation'"), "{out}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nkey_users_sign_the_nonce() {
    let kp = nkeys::KeyPair::new_user();
    let s = TestServer::with(config(&format!(
        "authorization {{ users: [ {{nkey: {}}} ] }}",
        kp.public_key()
    )))
    .await;
    let c = async_nats::ConnectOptions::with_nkey(kp.seed().unwrap())
        .connect(s.url())
        .await
        .expect("nkey user connects");
    let mut sub = c.subscribe("nk").await.unwrap();
    c.publish("nk", "hi".into()).await.unwrap();
    assert_eq!(next(&mut sub).await.payload, "hi".as_bytes());
    // `/connz?auth=1` names an nkey user's account as its `issuer_key` (nats-server).
    let mon = natrium_server::monitor::Monitor::new(s.server.shared().clone());
    let v: serde_json::Value = serde_json::from_str(&mon.handle("/connz", "auth=1").body).unwrap();
    let me = &v["connections"][0];
    assert_eq!(me["authorized_user"], kp.public_key().as_str(), "{v}");
    assert_eq!(me["issuer_key"], "$G", "{v}");
    // The first INFO carries the nonce to sign; the one sent after CONNECT does not
    // (nats-server leaves it out there).
    let mut raw = TcpStream::connect(("127.0.0.1", s.port())).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(T, raw.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let first = String::from_utf8_lossy(&buf[..n]).to_string();
    let info: serde_json::Value =
        serde_json::from_str(first.trim_start_matches("INFO ").trim_end()).unwrap();
    assert!(info["nonce"].as_str().unwrap_or("").len() >= 11, "{first}");
    let signed = {
        let nonce = info["nonce"].as_str().unwrap();
        let sig = kp.sign(nonce.as_bytes()).unwrap();
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig)
    };
    raw.write_all(
        format!(
            "CONNECT {{\"nkey\":\"{}\",\"sig\":\"{signed}\",\"verbose\":false,\"protocol\":1}}\r\nPING\r\n",
            kp.public_key()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut got = String::new();
    while !got.contains("connect_info") {
        let n = tokio::time::timeout(T, raw.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let line = got.lines().find(|l| l.contains("connect_info")).unwrap();
    assert!(!line.contains("nonce"), "{line}");
    // Another key is refused.
    let other = nkeys::KeyPair::new_user();
    let bad = async_nats::ConnectOptions::with_nkey(other.seed().unwrap())
        .connect(s.url())
        .await;
    assert!(bad.is_err());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bcrypt_password_in_config() {
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let s = TestServer::with(config(&format!(
        "authorization {{ users: [ {{user: h, password: \"{hash}\"}} ] }}"
    )))
    .await;
    user(&s, "h", "s3cret").await;
    let bad = async_nats::ConnectOptions::with_user_and_password("h".into(), "nope".into())
        .connect(s.url())
        .await;
    assert!(bad.is_err());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_connection_limit() {
    let s = TestServer::with(config(
        "accounts { L { users: [ {user: l, password: p} ], limits: { max_connections: 1 } } }",
    ))
    .await;
    let _first = user(&s, "l", "p").await;
    let out = raw_exchange(
        s.port(),
        "CONNECT {\"user\":\"l\",\"pass\":\"p\",\"verbose\":false}\r\nPING\r\n",
    )
    .await;
    assert!(
        out.contains("-ERR 'maximum account active connections exceeded'"),
        "{out}"
    );
    s.stop().await;
}

#[test]
fn config_errors_match_nats_server() {
    let bad = |text: &str| {
        let dir = std::env::temp_dir().join(format!(
            "natrium-accerr-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.conf");
        std::fs::write(&path, text).unwrap();
        let e = config_file::load(&path).unwrap_err().to_string();
        let _ = std::fs::remove_dir_all(&dir);
        e
    };
    assert!(bad("accounts { A { users: [ {user: x, password: y} ] }, B { users: [ {user: x, password: z} ] } }").contains("Duplicate user \"x\" detected"));
    assert!(bad("accounts { $G { } }").contains("Reserved Account"));
    assert!(
        bad("authorization { users: [ {password: x} ] }").contains("User entry requires a user")
    );
    assert!(
        bad("authorization { users: [ {nkey: NOTAKEY} ] }")
            .contains("Not a valid public nkey for a user")
    );
    assert!(
        bad("authorization { users: [ {user: a, permissions: {publish: \"a..b\"}} ] }")
            .contains("is not a valid subject")
    );
    assert!(
        bad("authorization { users: [ {user: a, permissions: {bogus: 1}} ] }")
            .contains("Unknown field \"bogus\" parsing permissions")
    );
    assert!(
        bad("accounts { B { imports: [ {stream: {account: Z, subject: x}} ] } }")
            .contains("account not defined for stream import")
    );
    assert!(
        bad("accounts { A { exports: [{stream: \">\"}] }\n B { imports: [{stream: {account: A, subject: \">\"}, prefix: \"p.>\"}] } }")
            .contains("stream import prefix can not contain wildcard tokens")
    );
    let dup = bad(
        "accounts { A { exports: [{service: s1}, {service: s2}] }\n B { imports: [{service: {account: A, subject: s1}, to: t}, {service: {account: A, subject: s2}, to: t}] } }",
    );
    assert!(
        dup.contains("Duplicate service import subject \"t\", previously used in import for account \"A\", subject \"s1\""),
        "{dup}"
    );
    for sampling in ["150", "0", "\"101%\""] {
        let e = bad(&format!(
            "accounts {{ A {{ exports: [{{service: s, latency: {{sampling: {sampling}, subject: lat}}}}] }} }}"
        ));
        assert!(
            e.contains("bad sampling percentage, should be 1-100"),
            "{sampling}: {e}"
        );
    }
    // Accepted: a percentage in range, and one subject imported from two accounts.
    config("accounts { A { exports: [{service: s, latency: {sampling: 50%, subject: lat}}] } }");
    config(
        "accounts { A { exports: [{service: s}] }\n C { exports: [{service: s}] }\n B { imports: [{service: {account: A, subject: s}}, {service: {account: C, subject: s}}] } }",
    );
}

#[test]
fn a_system_account_that_is_not_defined_fails_the_start() {
    let o = config("system_account: NOPE\n");
    let err = natrium_server::server::build_accounts(&o).unwrap_err();
    assert_eq!(err, "error resolving system account: account missing");
    // The default one is made up when no accounts block defines it.
    let o = config("system_account: \"$SYS\"\n");
    assert!(natrium_server::server::build_accounts(&o).is_ok());
}

const SYS: &str = r#"
accounts {
  A { users: [ {user: a, password: pa} ] }
  SYS { users: [ {user: sys, password: sys} ] }
}
system_account: SYS
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_account_sees_connect_and_disconnect_events() {
    let s = TestServer::with(config(SYS)).await;
    let sys = user(&s, "sys", "sys").await;
    assert!(sys.server_info().auth_required);
    let mut connects = sys.subscribe("$SYS.ACCOUNT.*.CONNECT").await.unwrap();
    let mut disconnects = sys.subscribe("$SYS.ACCOUNT.A.DISCONNECT").await.unwrap();
    roundtrip(&sys).await;
    let a = async_nats::ConnectOptions::with_user_and_password("a".into(), "pa".into())
        .name("app")
        .connect(s.url())
        .await
        .unwrap();
    let ev = next(&mut connects).await;
    assert_eq!(ev.subject.as_str(), "$SYS.ACCOUNT.A.CONNECT");
    let v: serde_json::Value = serde_json::from_slice(&ev.payload).unwrap();
    assert_eq!(v["type"], "io.nats.server.advisory.v1.client_connect");
    assert_eq!(v["client"]["acc"], "A");
    assert_eq!(v["client"]["user"], "a");
    assert_eq!(v["client"]["name"], "app");
    assert_eq!(v["server"]["id"], s.server.shared().server_id.as_str());
    a.publish("x", "12345".into()).await.unwrap();
    roundtrip(&a).await;
    drop(a);
    let ev = next(&mut disconnects).await;
    let v: serde_json::Value = serde_json::from_slice(&ev.payload).unwrap();
    assert_eq!(v["type"], "io.nats.server.advisory.v1.client_disconnect");
    assert_eq!(v["reason"], "Client Closed");
    assert!(v["received"]["msgs"].as_u64().unwrap() >= 1);
    // As nats-server: the account's connection counts come before the connect and
    // disconnect events; a refused login gets a disconnect event in `$G` naming the user
    // it tried.
    let mut all = sys.subscribe("$SYS.>").await.unwrap();
    roundtrip(&sys).await;
    let b = async_nats::ConnectOptions::with_user_and_password("a".into(), "pa".into())
        .connect(s.url())
        .await
        .unwrap();
    drop(b);
    let mut order = Vec::new();
    let mut raw = None;
    while order.last().map(String::as_str) != Some("$SYS.ACCOUNT.$G.DISCONNECT") {
        let ev = next(&mut all).await;
        if !(ev.subject.contains(".CONNS") || ev.subject.contains("CONNECT")) {
            continue;
        }
        order.push(ev.subject.to_string());
        match ev.subject.as_str() {
            // b is gone: now a refused login (after, so the order is fixed).
            "$SYS.ACCOUNT.A.DISCONNECT" => {
                let mut r = TcpStream::connect(("127.0.0.1", s.port())).await.unwrap();
                r.write_all(
                    b"CONNECT {\"user\":\"a\",\"pass\":\"bad\",\"verbose\":false}\r\nPING\r\n",
                )
                .await
                .unwrap();
                raw = Some(r);
            }
            "$SYS.ACCOUNT.$G.DISCONNECT" => {
                let v: serde_json::Value = serde_json::from_slice(&ev.payload).unwrap();
                assert_eq!(v["reason"], "Authentication Failure", "{v}");
                assert_eq!(
                    (v["client"]["acc"].as_str(), v["client"]["user"].as_str()),
                    (Some("$G"), Some("a")),
                    "{v}"
                );
            }
            _ => {}
        }
    }
    drop(raw);
    assert_eq!(
        order,
        [
            "$SYS.SERVER.ACCOUNT.A.CONNS",
            "$SYS.ACCOUNT.A.SERVER.CONNS",
            "$SYS.ACCOUNT.A.CONNECT",
            "$SYS.SERVER.ACCOUNT.A.CONNS",
            "$SYS.ACCOUNT.A.SERVER.CONNS",
            "$SYS.ACCOUNT.A.DISCONNECT",
            "$SYS.ACCOUNT.$G.DISCONNECT",
        ]
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_requests_over_the_system_account() {
    let s = TestServer::with(config(SYS)).await;
    let sys = user(&s, "sys", "sys").await;
    let _a = user(&s, "a", "pa").await;
    let id = s.server.shared().server_id.clone();
    let r = tokio::time::timeout(T, sys.request("$SYS.REQ.SERVER.PING", "".into()))
        .await
        .unwrap()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
    assert_eq!(v["server"]["id"], id.as_str());
    assert_eq!(v["server"]["ver"], "2.15.1");
    // nats-server answers a bare PING with `statsz`, not `data`.
    assert!(v["statsz"]["connections"].as_u64().unwrap() >= 2);
    assert!(v.get("data").is_none());
    let r = sys
        .request(format!("$SYS.REQ.SERVER.{id}.VARZ"), "".into())
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
    assert_eq!(v["data"]["server_id"], id.as_str());
    assert_eq!(v["data"]["system_account"], "SYS");
    let r = sys
        .request(
            "$SYS.REQ.SERVER.PING.CONNZ",
            r#"{"subscriptions":true,"auth":true}"#.into(),
        )
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
    let conns = v["data"]["connections"].as_array().unwrap();
    assert!(
        conns
            .iter()
            .any(|c| c["account"] == "A" && c["authorized_user"] == "a"),
        "{v}"
    );
    // From the system account: who am I, every account's STATZ, one account's CONNS,
    // and an unknown account's INFO (nats-server's error) and CONNZ (empty).
    let ask = |subject: &'static str, body: &'static str| {
        let sys = sys.clone();
        async move {
            let r = tokio::time::timeout(T, sys.request(subject, body.into()))
                .await
                .expect("answered in time")
                .unwrap_or_else(|e| panic!("{subject}: {e}"));
            serde_json::from_slice::<serde_json::Value>(&r.payload).unwrap()
        }
    };
    let v = ask("$SYS.REQ.USER.INFO", "").await;
    assert_eq!(
        (v["data"]["user"].as_str(), v["data"]["account"].as_str()),
        (Some("sys"), Some("SYS")),
        "{v}"
    );
    let v = ask("$SYS.REQ.ACCOUNT.PING.STATZ", "").await;
    let accs: Vec<&str> = v["data"]["account_statz"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["acc"].as_str())
        .collect();
    assert!(accs.contains(&"A"), "{v}");
    let v = ask("$SYS.REQ.ACCOUNT.PING.STATZ", r#"{"include_unused":true}"#).await;
    assert!(
        v["data"]["account_statz"].as_array().unwrap().len() > accs.len(),
        "{v}"
    );
    let v = ask("$SYS.REQ.ACCOUNT.A.CONNS", "").await;
    assert_eq!(
        v["type"], "io.nats.server.advisory.v1.account_connections",
        "{v}"
    );
    assert_eq!(
        (v["acc"].as_str(), v["conns"].as_u64()),
        (Some("A"), Some(1)),
        "{v}"
    );
    let v = ask("$SYS.REQ.ACCOUNT.ZZ.INFO", "").await;
    assert_eq!(v["error"]["code"], 500, "{v}");
    assert_eq!(
        v["error"]["description"], "Account ZZ does not exist",
        "{v}"
    );
    let v = ask("$SYS.REQ.ACCOUNT.ZZ.CONNZ", "").await;
    assert_eq!(v["data"]["num_connections"], 0, "{v}");
    // Other accounts cannot reach the system account's services.
    let a = user(&s, "a", "pa").await;
    let err = a
        .request("$SYS.REQ.SERVER.PING", "".into())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), async_nats::RequestErrorKind::NoResponders);
    s.stop().await;
}

/// Account-scoped system requests answer as nats-server's: `USER.INFO` reports the
/// user's permissions, an account's `SUBSZ` lists its subscriptions, and its `INFO`
/// answers with the account's detail (it had no responders).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_requests_report_permissions_subscriptions_and_info() {
    let s = TestServer::with(config(
        r#"
accounts {
  A { users: [ {user: a, password: pa, permissions: {publish: {allow: ["x.>", "$SYS.REQ.>", "_INBOX.>"], deny: ["x.no"]}, subscribe: ">"}},
                {user: p, password: pp, permissions: {publish: {deny: ["y"]}}} ] }
  SYS { users: [ {user: sys, password: sys} ] }
}
system_account: SYS
"#,
    ))
    .await;
    // A side without rules shows as `{}` (nats-server), not null.
    let p = user(&s, "p", "pp").await;
    let r = p.request("$SYS.REQ.USER.INFO", "".into()).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
    assert_eq!(
        v["data"]["permissions"],
        serde_json::json!({"publish": {"deny": ["y"]}, "subscribe": {}}),
        "{v}"
    );
    let a = user(&s, "a", "pa").await;
    let _sub = a.subscribe("x.>").await.unwrap();
    roundtrip(&a).await;
    let r = a.request("$SYS.REQ.USER.INFO", "".into()).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
    assert_eq!(
        v["data"]["permissions"],
        serde_json::json!({
            "publish": {"allow": ["x.>", "$SYS.REQ.>", "_INBOX.>"], "deny": ["x.no"]},
            "subscribe": {"allow": [">"]}
        }),
        "{v}"
    );
    let sys = user(&s, "sys", "sys").await;
    let r = sys
        .request("$SYS.REQ.ACCOUNT.A.SUBSZ", "".into())
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
    let list = v["data"]["subscriptions_list"].as_array().expect("a list");
    assert!(list.iter().any(|x| x["subject"] == "x.>"), "{v}");
    let r = sys
        .request("$SYS.REQ.ACCOUNT.A.INFO", "".into())
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
    assert_eq!(v["data"]["account_name"], "A", "{v}");
    assert!(v["data"]["sublist_stats"].is_object(), "{v}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accountz_shows_imports_exports_and_connz_shows_auth() {
    let s = TestServer::with(config(ACCOUNTS)).await;
    let _b = async_nats::ConnectOptions::with_user_and_password("b".into(), "pb".into())
        .name("b-conn")
        .connect(s.url())
        .await
        .unwrap();
    let mon = natrium_server::monitor::Monitor::new(s.server.shared().clone());
    let r = mon.handle("/accountz", "acc=B");
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let d = &v["account_detail"];
    assert_eq!(d["client_connections"], 1);
    let imports = d["imports"].as_array().unwrap();
    // As nats-server: a stream import shows its mapping as `local_subject` only, a
    // service import also as `to`.
    assert!(imports.iter().any(|i| i["type"] == "stream"
        && i["account"] == "A"
        && i["local_subject"] == "from_a.pub.>"
        && i.get("to").is_none()));
    assert!(imports.iter().any(|i| i["type"] == "service"
        && i["subject"] == "svc.echo"
        && i["local_subject"] == "echo"
        && i["to"] == "echo"));
    let r = mon.handle("/accountz", "acc=A");
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let exports = v["account_detail"]["exports"].as_array().unwrap();
    assert_eq!(exports.len(), 2);
    assert!(exports.iter().all(|e| e.get("token_req").is_none()), "{v}");
    let r = mon.handle("/connz", "auth=1");
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let c = &v["connections"][0];
    assert_eq!(c["authorized_user"], "b");
    assert_eq!(c["account"], "B");
    s.stop().await;
}

/// With a `no_auth_user` INFO says no auth is required, yet a socket that never sends
/// CONNECT (nor anything else) is timed out like any other, as nats-server does; a
/// stream-response service export shows as `Streamed` in `/accountz`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_auth_user_still_times_out_silent_sockets() {
    let s = TestServer::with(config(
        "authorization { timeout: 0.3 }\naccounts { A { users: [{user: a, password: a}],\n\
         exports: [{service: s2, response_type: stream}] } }\nno_auth_user: a\n",
    ))
    .await;
    let mut raw = TcpStream::connect(("127.0.0.1", s.port())).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(T, raw.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!("not closed: {}", String::from_utf8_lossy(&got)),
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.contains("\"auth_required\":false") || !text.contains("auth_required"),
        "{text}"
    );
    assert!(
        text.ends_with("-ERR 'Authentication Timeout'\r\n"),
        "{text}"
    );
    let mon = natrium_server::monitor::Monitor::new(s.server.shared().clone());
    let v: serde_json::Value =
        serde_json::from_str(&mon.handle("/accountz", "acc=A").body).unwrap();
    assert_eq!(
        v["account_detail"]["exports"][0]["response_type"], "Streamed",
        "{v}"
    );
    s.stop().await;
}

/// JetStream deliveries cross accounts through imports, as in nats-server: a push
/// consumer whose deliver subject is exported as a stream reaches the importer's
/// subscriber (showing the stream subject, with an ack reply that works through an
/// imported `$JS.ACK.>` service), and waits for that subscriber when it comes later; a
/// pull request sent through an imported `CONSUMER.MSG.NEXT` service gets its messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_deliveries_reach_importing_accounts() {
    let store = tempfile::tempdir().unwrap();
    let mut o = config(&format!(
        "jetstream {{ store_dir: {:?} }}\naccounts {{\n\
         A {{ jetstream: enabled, users: [{{user: a, password: a}}],\n\
              exports: [ {{service: \"$JS.API.CONSUMER.MSG.NEXT.>\", response_type: stream}},\n\
                         {{stream: \"deliver.b.>\"}}, {{service: \"$JS.ACK.>\"}} ] }}\n\
         B {{ users: [{{user: b, password: b}}],\n\
              imports: [ {{service: {{account: A, subject: \"$JS.API.CONSUMER.MSG.NEXT.>\"}}}},\n\
                         {{stream: {{account: A, subject: \"deliver.b.>\"}}}},\n\
                         {{service: {{account: A, subject: \"$JS.ACK.>\"}}}} ] }}\n}}\n",
        store.path()
    ));
    o.jetstream.enabled = true;
    let s = TestServer::with(o).await;
    let a = user(&s, "a", "a").await;
    let b = user(&s, "b", "b").await;
    let js = async_nats::jetstream::new(a.clone());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "S".into(),
        subjects: vec!["s.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    for i in 0..3 {
        js.publish("s.x", format!("m{i}").into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let api = |subject: String, body: serde_json::Value| {
        let a = a.clone();
        async move {
            let r = a.request(subject, body.to_string().into()).await.unwrap();
            serde_json::from_slice::<serde_json::Value>(&r.payload).unwrap()
        }
    };
    let floor = |name: &'static str| async move {
        let i = api(
            format!("$JS.API.CONSUMER.INFO.S.{name}"),
            serde_json::json!({}),
        )
        .await;
        i["ack_floor"]["stream_seq"].as_u64().unwrap_or(0)
    };
    // The push consumer exists before B subscribes: nothing may go out until then.
    let made = api(
        "$JS.API.CONSUMER.CREATE.S.P".into(),
        serde_json::json!({"stream_name": "S", "config": {"durable_name": "P",
            "deliver_subject": "deliver.b.p", "ack_policy": "explicit"}}),
    )
    .await;
    assert!(made.get("error").is_none(), "{made}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // B's `SUB` wakes the waiting consumer in A through the import: the first delivery
    // follows at once, not at the consumer's next look for a subscriber (1 s apart,
    // the last one before the sleep above).
    let subscribed_at = tokio::time::Instant::now();
    let mut sub = b.subscribe("deliver.b.p").await.unwrap();
    for i in 0..3 {
        let m = next(&mut sub).await;
        if i == 0 {
            let waited = subscribed_at.elapsed();
            assert!(
                waited < Duration::from_millis(500),
                "first delivery {waited:?} after B subscribed"
            );
        }
        assert_eq!(m.subject.as_str(), "s.x");
        assert_eq!(m.payload, format!("m{i}").as_bytes());
        let reply = m.reply.expect("ack reply");
        assert!(reply.as_str().starts_with("$JS.ACK.S.P."), "{reply}");
        b.publish(reply, "+ACK".into()).await.unwrap();
    }
    b.flush().await.unwrap();
    let deadline = tokio::time::Instant::now() + T;
    while floor("P").await != 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "B's acks reach the consumer"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A pull request through the imported service.
    let made = api(
        "$JS.API.CONSUMER.CREATE.S.Q".into(),
        serde_json::json!({"stream_name": "S", "config": {"durable_name": "Q",
            "ack_policy": "explicit"}}),
    )
    .await;
    assert!(made.get("error").is_none(), "{made}");
    let inbox = b.new_inbox();
    let mut replies = b.subscribe(inbox.clone()).await.unwrap();
    b.publish_with_reply(
        "$JS.API.CONSUMER.MSG.NEXT.S.Q",
        inbox,
        r#"{"batch":3,"expires":2000000000}"#.into(),
    )
    .await
    .unwrap();
    for i in 0..3 {
        let m = next(&mut replies).await;
        assert_eq!(m.subject.as_str(), "s.x");
        assert_eq!(m.payload, format!("m{i}").as_bytes());
    }
}
