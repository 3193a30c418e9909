//! Auth callout with async-nats: a service written as nats-server's documentation
//! describes it (subscribe to `$SYS.REQ.USER.AUTH` as a configured auth user, answer
//! with an authorization response JWT), here with xkey encryption in both directions,
//! which the Python differential tests cannot show (Python has no NaCl box in the
//! pinned packages). Also: a service that does not answer in time. Each test runs
//! against natrium-server and, when `NATS_SERVER_BIN` or `nats-server` on PATH names
//! one, against nats-server 2.15.1 with the same config (without one it prints a notice
//! and runs against natrium only).

mod support;

use futures::StreamExt;
use natrium_server::config_file;
use natrium_server::jwt::{claims_json, encode};
use natrium_server::options::Options;
use nkeys::{KeyPair, XKey};
use serde_json::{Value, json};
use std::time::Duration;
use support::{TestServer, roundtrip};

const T: Duration = Duration::from_secs(5);

/// A server under test: natrium in this process, or a nats-server child process.
enum Srv {
    Natrium(TestServer),
    Go {
        child: std::process::Child,
        url: String,
        _dir: tempfile::TempDir,
    },
}

impl Srv {
    fn url(&self) -> String {
        match self {
            Srv::Natrium(t) => t.url(),
            Srv::Go { url, .. } => url.clone(),
        }
    }

    fn is_natrium(&self) -> bool {
        matches!(self, Srv::Natrium(_))
    }

    async fn stop(self) {
        match self {
            Srv::Natrium(t) => t.stop().await,
            Srv::Go { mut child, .. } => {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn nats_server_bin() -> Option<String> {
    if let Some(p) = std::env::var_os("NATS_SERVER_BIN") {
        return Some(p.to_string_lossy().into_owned());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("nats-server"))
            .find(|p| p.is_file())
            .map(|p| p.to_string_lossy().into_owned())
    })
}

/// The servers to run a test against, each started with `text`.
async fn servers(text: &str) -> Vec<Srv> {
    let mut out = vec![Srv::Natrium(TestServer::with(load(text)).await)];
    let Some(bin) = nats_server_bin() else {
        eprintln!("NOTICE: no nats-server (NATS_SERVER_BIN or PATH): natrium only");
        return out;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("server.conf");
    std::fs::write(&conf, text).expect("write");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = std::process::Command::new(bin)
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-c"])
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nats-server starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "nats-server did not listen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    out.push(Srv::Go {
        child,
        url: format!("nats://127.0.0.1:{port}"),
        _dir: dir,
    });
    out
}

fn load(text: &str) -> Options {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("server.conf");
    std::fs::write(&path, text).expect("write");
    let mut o = config_file::load(&path).expect("config");
    o.host = "127.0.0.1".into();
    o.port = 0;
    o
}

fn config(issuer: &KeyPair, xkey: Option<&XKey>) -> String {
    let xkey = xkey
        .map(|x| format!("xkey: {}", x.public_key()))
        .unwrap_or_default();
    format!(
        "accounts {{\n  AUTH {{ users: [ {{ user: auth, password: pwd }} ] }}\n  APP {{}}\n}}\n\
         authorization {{\n  timeout: 1\n  auth_callout {{\n    issuer: {}\n    auth_users: [ auth ]\n    account: AUTH\n    {xkey}\n  }}\n}}\n",
        issuer.public_key()
    )
}

async fn connect_as(srv: &Srv, user: &str, pass: &str) -> Result<async_nats::Client, String> {
    async_nats::ConnectOptions::with_user_and_password(user.into(), pass.into())
        .connection_timeout(T)
        .max_reconnects(Some(0))
        .connect(srv.url())
        .await
        .map_err(|e| e.to_string())
}

/// The service's connection (as the configured `auth` user) and its subscription to
/// the authorization requests, in place.
async fn service(srv: &Srv) -> (async_nats::Client, async_nats::Subscriber) {
    let svc = connect_as(srv, "auth", "pwd")
        .await
        .expect("service logs in");
    let requests = svc
        .subscribe("$SYS.REQ.USER.AUTH")
        .await
        .expect("subscribe");
    roundtrip(&svc).await;
    (svc, requests)
}

/// The answer granting `request`'s user a JWT for account APP, signed by `issuer`.
fn grant(issuer: &KeyPair, request: &Value) -> String {
    let n = &request["nats"];
    let user_nkey = n["user_nkey"].as_str().expect("user_nkey");
    let server_id = n["server_id"]["id"].as_str().expect("server id");
    let user = encode(
        json!({"sub": user_nkey, "aud": "APP", "name": "granted",
               "nats": {"type": "user", "version": 2, "pub": {"allow": ["app.>", "_INBOX.>"]}}}),
        issuer,
    );
    encode(
        json!({"sub": user_nkey, "aud": server_id,
               "nats": {"type": "authorization_response", "version": 2, "jwt": user}}),
        issuer,
    )
}

#[tokio::test]
async fn sealed_requests_and_answers() {
    let issuer = KeyPair::new_account();
    let service_x = XKey::new();
    for srv in servers(&config(&issuer, Some(&service_x))).await {
        sealed_on(&srv, &issuer, &service_x).await;
        srv.stop().await;
    }
}

async fn sealed_on(srv: &Srv, issuer: &KeyPair, service_x: &XKey) {
    let service_x = XKey::from_seed(&service_x.seed().expect("seed")).expect("xkey");
    let (svc, mut requests) = service(srv).await;
    let seal_answers = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let seal = seal_answers.clone();
    let svc_task = svc.clone();
    let issuer_seed = issuer.seed().expect("seed");
    let seen = tokio::spawn(async move {
        let issuer = KeyPair::from_seed(&issuer_seed).expect("issuer");
        let mut seen = Vec::new();
        while let Some(msg) = requests.next().await {
            let server_x = msg
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Server-Xkey"))
                .map(|v| v.to_string())
                .expect("the server's xkey header");
            let sender = XKey::from_public_key(&server_x).expect("curve key");
            let opened = service_x
                .open(&msg.payload, &sender)
                .expect("request opens");
            let token = String::from_utf8(opened).expect("utf-8");
            let request = claims_json(&token).expect("request claims");
            assert_eq!(request["nats"]["server_id"]["xkey"], server_x.as_str());
            let answer = grant(&issuer, &request);
            let body = if seal.load(std::sync::atomic::Ordering::SeqCst) {
                service_x.seal(answer.as_bytes(), &sender).expect("seals")
            } else {
                answer.into_bytes()
            };
            let reply = msg.reply.clone().expect("reply subject");
            svc_task.publish(reply, body.into()).await.expect("answer");
            seen.push(request);
            if seen.len() == 2 {
                break;
            }
        }
        seen
    });
    // A sealed answer admits the client into APP with the granted permissions.
    let c = connect_as(srv, "anyone", "whatever")
        .await
        .expect("admitted");
    let mut sub = c.subscribe("app.x").await.expect("subscribe");
    roundtrip(&c).await;
    c.publish("app.x", "hi".into()).await.expect("publish");
    let m = tokio::time::timeout(T, sub.next())
        .await
        .expect("in time")
        .expect("msg");
    assert_eq!(&m.payload[..], b"hi");
    // A plain answer is taken too while requests are sealed.
    seal_answers.store(false, std::sync::atomic::Ordering::SeqCst);
    let c2 = connect_as(srv, "other", "x").await.expect("admitted");
    roundtrip(&c2).await;
    let seen = tokio::time::timeout(T, seen)
        .await
        .expect("in time")
        .expect("task");
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0]["nats"]["connect_opts"]["user"], "anyone");
    assert_eq!(seen[1]["nats"]["connect_opts"]["user"], "other");
}

#[tokio::test]
async fn a_silent_service_refuses_within_the_auth_timeout() {
    let issuer = KeyPair::new_account();
    for srv in servers(&config(&issuer, None)).await {
        silent_on(&srv, &issuer).await;
        srv.stop().await;
    }
}

async fn silent_on(srv: &Srv, issuer: &KeyPair) {
    let (svc, mut requests) = service(srv).await;
    // The login's reply subscription in AUTH must not stay behind.
    let reply_subs = || match srv {
        Srv::Natrium(t) => t.server.shared().account("AUTH").map_or(0, |a| {
            a.sublist.matching_subs_for_pattern(b"$SYS._INBOX.>").len()
        }),
        Srv::Go { .. } => 0,
    };
    let started = std::time::Instant::now();
    let refused = connect_as(srv, "bob", "pw").await;
    assert!(refused.is_err(), "admitted without an answer");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(
        support::eventually(Duration::from_secs(3), || reply_subs() == 0).await,
        "a reply subscription stayed behind"
    );
    // The request did arrive; a late answer to it changes nothing.
    let msg = tokio::time::timeout(T, requests.next())
        .await
        .expect("in time")
        .expect("request");
    let request = claims_json(std::str::from_utf8(&msg.payload).expect("utf-8")).expect("claims");
    let late = grant(issuer, &request);
    svc.publish(msg.reply.clone().expect("reply"), late.into())
        .await
        .expect("late answer");
    roundtrip(&svc).await;
    // With no service at all, a login fails: at once with natrium (nats-server waits
    // out the auth timeout; docs/compat.md).
    drop(requests);
    roundtrip(&svc).await;
    let started = std::time::Instant::now();
    assert!(connect_as(srv, "bob", "pw").await.is_err());
    if srv.is_natrium() {
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "{:?}",
            started.elapsed()
        );
    }
}
