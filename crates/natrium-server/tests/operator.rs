//! Operator (JWT) mode: an operator JWT, account JWTs preloaded into a MEMORY resolver
//! (or found in a full resolver's directory), users logging in with `.creds` through
//! async-nats, and raw sockets for what a client library hides (bearer tokens, the
//! expiry message). Every JWT is signed here with fresh nkeys.

mod support;

use futures::StreamExt;
use natrium_server::config_file;
use natrium_server::jwt::encode;
use natrium_server::options::Options;
use nkeys::KeyPair;
use serde_json::{Value, json};
use std::time::Duration;
use support::{TestServer, roundtrip};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const T: Duration = Duration::from_secs(5);

/// An operator with a system account and two accounts, A (JetStream, exports a service
/// `svc.>` and a private stream `priv.>`) and B (imports both).
struct Setup {
    operator: KeyPair,
    a: KeyPair,
    b: KeyPair,
    sys: KeyPair,
    /// A scoped signing key of A whose users may only use `own.{{name()}}.>`.
    a_scoped: KeyPair,
    /// A revoked user of A.
    revoked: KeyPair,
}

fn account_jwt(s: &Setup, key: &KeyPair, nats: Value) -> String {
    account_jwt_at(s, key, nats, jwt_now())
}

/// An account JWT issued at `iat` (an update pushed later must be newer than the stored
/// one, which was issued when the test started).
fn account_jwt_at(s: &Setup, key: &KeyPair, nats: Value, iat: i64) -> String {
    let mut nats = nats;
    nats["type"] = "account".into();
    nats["version"] = 2.into();
    encode(
        json!({"sub": key.public_key(), "name": "acc", "iat": iat, "nats": nats}),
        &s.operator,
    )
}

fn user_jwt(
    signer: &KeyPair,
    user: &KeyPair,
    extra: Value,
    issuer_account: Option<&str>,
) -> String {
    let mut nats = json!({"subs": -1, "data": -1, "payload": -1, "type": "user", "version": 2});
    if let (Some(obj), Some(more)) = (nats.as_object_mut(), extra.as_object()) {
        for (k, v) in more {
            obj.insert(k.clone(), v.clone());
        }
    }
    if let Some(a) = issuer_account {
        nats["issuer_account"] = a.into();
    }
    encode(
        json!({"sub": user.public_key(), "name": "alice", "nats": nats}),
        signer,
    )
}

fn creds(jwt: &str, user: &KeyPair) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
        user.seed().expect("seed")
    )
}

fn setup() -> Setup {
    Setup {
        operator: KeyPair::new_operator(),
        a: KeyPair::new_account(),
        b: KeyPair::new_account(),
        sys: KeyPair::new_account(),
        a_scoped: KeyPair::new_account(),
        revoked: KeyPair::new_user(),
    }
}

fn config_text(s: &Setup, store: &std::path::Path) -> String {
    let op = encode(
        json!({"sub": s.operator.public_key(), "name": "op",
               "nats": {"system_account": s.sys.public_key(), "type": "operator", "version": 2}}),
        &s.operator,
    );
    let activation = encode(
        json!({"sub": s.b.public_key(), "nats": {"subject": "priv.>", "kind": "stream",
               "type": "activation", "version": 2}}),
        &s.a,
    );
    let a = account_jwt(
        s,
        &s.a,
        json!({
            "limits": {"subs": -1, "data": -1, "payload": -1, "conn": -1, "imports": -1,
                       "exports": -1, "mem_storage": -1, "disk_storage": -1, "streams": -1,
                       "consumer": -1},
            "exports": [{"subject": "svc.>", "type": "service"},
                        {"subject": "priv.>", "type": "stream", "token_req": true}],
            "signing_keys": [{"kind": "user_scope", "key": s.a_scoped.public_key(),
                              "template": {"pub": {"allow": ["own.{{name()}}.>"]},
                                           "sub": {"allow": ["own.{{name()}}.>"]},
                                           "subs": -1, "data": -1, "payload": -1}}],
            "revocations": {s.revoked.public_key(): jwt_now() + 10},
        }),
    );
    let b = account_jwt(
        s,
        &s.b,
        json!({
            "limits": {"subs": -1, "data": -1, "payload": 1024, "conn": 3, "imports": -1,
                       "exports": -1},
            "imports": [{"subject": "svc.>", "account": s.a.public_key(), "type": "service"},
                        {"subject": "priv.>", "account": s.a.public_key(), "type": "stream",
                         "token": activation}],
        }),
    );
    // (A limit the JWT leaves out is 0, none allowed: the system user pushes JWTs, so
    // its account needs `payload`.)
    let sys = account_jwt(
        s,
        &s.sys,
        json!({"limits": {"subs": -1, "conn": -1, "payload": -1}}),
    );
    format!(
        "listen: 127.0.0.1:-1\njetstream {{ store_dir: {:?} }}\noperator: {op}\nresolver: MEMORY\nresolver_preload {{\n  {}: {a}\n  {}: {b}\n  {}: {sys}\n}}\n",
        store.display(),
        s.a.public_key(),
        s.b.public_key(),
        s.sys.public_key(),
    )
}

fn jwt_now() -> i64 {
    natrium_server::jwt::unix_now()
}

fn load(text: &str) -> Result<Options, String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("server.conf");
    std::fs::write(&path, text).expect("write");
    config_file::load(&path)
        .map(|mut o| {
            o.host = "127.0.0.1".into();
            o.port = 0;
            o
        })
        .map_err(|e| e.to_string())
}

async fn login(srv: &TestServer, jwt: &str, user: &KeyPair) -> Result<async_nats::Client, String> {
    async_nats::ConnectOptions::with_credentials(&creds(jwt, user))
        .map_err(|e| e.to_string())?
        .max_reconnects(Some(1))
        .connect(srv.url())
        .await
        .map_err(|e| e.to_string())
}

/// Connect by hand with `connect` (JSON) and return the first reply line after INFO.
async fn raw_connect(srv: &TestServer, connect: Value) -> (BufReader<TcpStream>, String, String) {
    let sock = TcpStream::connect(("127.0.0.1", srv.port()))
        .await
        .expect("tcp");
    let mut rd = BufReader::new(sock);
    let mut info = String::new();
    rd.read_line(&mut info).await.expect("info");
    let line = format!("CONNECT {connect}\r\nPING\r\n");
    rd.get_mut().write_all(line.as_bytes()).await.expect("send");
    let mut reply = String::new();
    let _ = tokio::time::timeout(T, rd.read_line(&mut reply)).await;
    (rd, info, reply)
}

/// Send `bytes` on a logged-in raw connection and read the next line.
async fn send_and_read(rd: &mut BufReader<TcpStream>, bytes: &[u8]) -> String {
    rd.get_mut().write_all(bytes).await.expect("send");
    let mut line = String::new();
    tokio::time::timeout(T, rd.read_line(&mut line))
        .await
        .expect("reply")
        .expect("line");
    line
}

#[tokio::test]
async fn users_log_in_with_creds_into_their_accounts() {
    let s = setup();
    let store = tempfile::tempdir().expect("store");
    let srv = TestServer::with(load(&config_text(&s, store.path())).expect("config")).await;

    let alice = KeyPair::new_user();
    let a1 = login(&srv, &user_jwt(&s.a, &alice, json!({}), None), &alice)
        .await
        .expect("alice logs in");
    let bob = KeyPair::new_user();
    let b1 = login(&srv, &user_jwt(&s.b, &bob, json!({}), None), &bob)
        .await
        .expect("bob logs in");

    // INFO asks for a signed nonce.
    let (_, info, _) = raw_connect(&srv, json!({"verbose": false})).await;
    assert!(info.contains("\"nonce\""), "{info}");
    assert!(info.contains("\"auth_required\":true"), "{info}");

    // Accounts are isolated: B does not see A's subject.
    let mut in_a = a1.subscribe("x").await.expect("sub");
    let mut in_b = b1.subscribe("x").await.expect("sub");
    roundtrip(&a1).await;
    roundtrip(&b1).await;
    a1.publish("x", "from a".into()).await.expect("pub");
    roundtrip(&a1).await;
    let m = tokio::time::timeout(T, in_a.next())
        .await
        .expect("a gets it")
        .expect("msg");
    assert_eq!(&m.payload[..], b"from a");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), in_b.next())
            .await
            .is_err()
    );

    // B's service import of A's `svc.>`.
    let mut svc = a1.subscribe("svc.>").await.expect("sub");
    roundtrip(&a1).await;
    let responder = tokio::spawn({
        let a1 = a1.clone();
        async move {
            if let Some(req) = svc.next().await
                && let Some(reply) = req.reply
            {
                a1.publish(reply, "pong".into()).await.expect("reply");
                a1.flush().await.expect("flush");
            }
        }
    });
    let resp = tokio::time::timeout(T, b1.request("svc.ping", "ping".into()))
        .await
        .expect("in time")
        .expect("answered");
    assert_eq!(&resp.payload[..], b"pong");
    responder.await.expect("responder");

    // The private stream export reaches B through its activation token.
    let mut priv_b = b1.subscribe("priv.>").await.expect("sub");
    roundtrip(&b1).await;
    a1.publish("priv.one", "secret".into()).await.expect("pub");
    roundtrip(&a1).await;
    let m = tokio::time::timeout(T, priv_b.next())
        .await
        .expect("b gets it")
        .expect("msg");
    assert_eq!(m.subject.as_str(), "priv.one");

    // B's payload limit (1024) from its account JWT: a bigger message closes the
    // connection with nats-server's error.
    let bob3 = KeyPair::new_user();
    let (mut rd, _, _) = raw_login(&srv, &user_jwt(&s.b, &bob3, json!({}), None), &bob3).await;
    let line = send_and_read(&mut rd, b"PUB y 2000\r\n").await;
    assert_eq!(line.trim(), "-ERR 'Maximum Payload Violation'");
    drop(rd);

    // JetStream is on for A (its JWT allows storage), off for B.
    let js_a = async_nats::jetstream::new(a1.clone());
    js_a.create_stream(async_nats::jetstream::stream::Config {
        name: "ORDERS".into(),
        subjects: vec!["orders.>".into()],
        ..Default::default()
    })
    .await
    .expect("A creates a stream");
    let bob2 = KeyPair::new_user();
    let b2 = login(&srv, &user_jwt(&s.b, &bob2, json!({}), None), &bob2)
        .await
        .expect("bob2 logs in");
    let js_b = async_nats::jetstream::new(b2);
    let err = js_b
        .create_stream(async_nats::jetstream::stream::Config {
            name: "NOPE".into(),
            ..Default::default()
        })
        .await
        .expect_err("B has no JetStream");
    assert!(
        err.to_string().contains("10039") || err.to_string().to_lowercase().contains("not enabled"),
        "{err}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn bad_users_are_refused() {
    let s = setup();
    let store = tempfile::tempdir().expect("store");
    let srv = TestServer::with(load(&config_text(&s, store.path())).expect("config")).await;
    let u = KeyPair::new_user();

    // Signed by an account the operator never signed.
    let stranger = KeyPair::new_account();
    assert!(
        login(&srv, &user_jwt(&stranger, &u, json!({}), None), &u)
            .await
            .is_err()
    );
    // Expired.
    let expired = encode(
        json!({"sub": u.public_key(), "exp": jwt_now() - 5,
               "nats": {"subs": -1, "payload": -1, "type": "user", "version": 2}}),
        &s.a,
    );
    assert!(login(&srv, &expired, &u).await.is_err());
    // Revoked (issued before the revocation time).
    assert!(
        login(
            &srv,
            &user_jwt(&s.a, &s.revoked, json!({}), None),
            &s.revoked
        )
        .await
        .is_err()
    );
    // The nonce signed by another key than the user's.
    let other = KeyPair::new_user();
    assert!(
        login(&srv, &user_jwt(&s.a, &u, json!({}), None), &other)
            .await
            .is_err()
    );
    // A scoped user that brings its own permissions.
    let scoped = user_jwt(
        &s.a_scoped,
        &u,
        json!({"pub": {"allow": [">"]}}),
        Some(&s.a.public_key()),
    );
    assert!(login(&srv, &scoped, &u).await.is_err());
    // No JWT at all.
    let (_, _, reply) =
        raw_connect(&srv, json!({"verbose": false, "user": "x", "pass": "y"})).await;
    assert!(
        reply.starts_with("-ERR 'Authorization Violation'"),
        "{reply}"
    );
    // A bearer token needs no signature; a normal user does.
    let bearer = user_jwt(&s.a, &u, json!({"bearer_token": true}), None);
    let (_, _, reply) = raw_connect(&srv, json!({"verbose": false, "jwt": bearer})).await;
    assert_eq!(reply.trim(), "PONG");
    let plain = user_jwt(&s.a, &u, json!({}), None);
    let (_, _, reply) = raw_connect(&srv, json!({"verbose": false, "jwt": plain})).await;
    assert!(
        reply.starts_with("-ERR 'Authorization Violation'"),
        "{reply}"
    );
    // Not from an allowed network.
    let far = user_jwt(
        &s.a,
        &u,
        json!({"bearer_token": true, "src": ["10.0.0.0/8"]}),
        None,
    );
    let (_, _, reply) = raw_connect(&srv, json!({"verbose": false, "jwt": far})).await;
    assert!(
        reply.starts_with("-ERR 'Authorization Violation'"),
        "{reply}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn permissions_come_from_the_jwt_or_the_scope() {
    let s = setup();
    let store = tempfile::tempdir().expect("store");
    let srv = TestServer::with(load(&config_text(&s, store.path())).expect("config")).await;

    // The user's own permissions.
    let u = KeyPair::new_user();
    let jwt = user_jwt(&s.a, &u, json!({"pub": {"deny": ["secret.>"]}}), None);
    let (mut rd, _, _) = raw_login(&srv, &jwt, &u).await;
    let line = send_and_read(&mut rd, b"PUB secret.x 2\r\nno\r\nPING\r\n").await;
    assert!(
        line.starts_with("-ERR 'Permissions Violation for Publish to \"secret.x\"'"),
        "{line}"
    );
    // A signature of another connection's nonce is refused.
    let (_, _, reply) = raw_connect(
        &srv,
        json!({"verbose": false, "jwt": jwt, "sig": sign(&u, &nonce_of(&srv).await)}),
    )
    .await;
    assert!(
        reply.starts_with("-ERR 'Authorization Violation'"),
        "{reply}"
    );

    // A scoped user gets its template with `{{name()}}` filled in ("alice").
    let su = KeyPair::new_user();
    // Scoped users carry no permissions or limits of their own.
    let scoped = encode(
        json!({"sub": su.public_key(), "name": "alice",
               "nats": {"issuer_account": s.a.public_key(), "type": "user", "version": 2}}),
        &s.a_scoped,
    );
    let sc = login(&srv, &scoped, &su)
        .await
        .expect("scoped user logs in");
    let mut own = sc.subscribe("own.alice.x").await.expect("sub");
    sc.flush().await.expect("flush");
    sc.publish("own.alice.x", "mine".into()).await.expect("pub");
    sc.flush().await.expect("flush");
    let m = tokio::time::timeout(T, own.next())
        .await
        .expect("in time")
        .expect("msg");
    assert_eq!(&m.payload[..], b"mine");
    // Outside the template: a permissions violation, and nothing delivered.
    let (mut rd, _, _) = raw_login(&srv, &scoped, &su).await;
    let line = send_and_read(&mut rd, b"PUB other.x 2\r\nno\r\nPING\r\n").await;
    assert!(
        line.starts_with("-ERR 'Permissions Violation for Publish to \"other.x\"'"),
        "{line}"
    );
    srv.stop().await;
}

fn sign(user: &KeyPair, nonce: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(user.sign(nonce.as_bytes()).expect("sign"))
}

async fn nonce_of(srv: &TestServer) -> String {
    let sock = TcpStream::connect(("127.0.0.1", srv.port()))
        .await
        .expect("tcp");
    let mut rd = BufReader::new(sock);
    let mut info = String::new();
    rd.read_line(&mut info).await.expect("info");
    let v: Value = serde_json::from_str(info.trim_start_matches("INFO ").trim()).expect("json");
    v["nonce"].as_str().unwrap_or_default().to_string()
}

/// Log in by hand on one socket: read INFO's nonce, sign it, CONNECT, wait for PONG.
async fn raw_login(
    srv: &TestServer,
    jwt: &str,
    user: &KeyPair,
) -> (BufReader<TcpStream>, String, String) {
    let sock = TcpStream::connect(("127.0.0.1", srv.port()))
        .await
        .expect("tcp");
    let mut rd = BufReader::new(sock);
    let mut info = String::new();
    rd.read_line(&mut info).await.expect("info");
    let v: Value = serde_json::from_str(info.trim_start_matches("INFO ").trim()).expect("json");
    let nonce = v["nonce"].as_str().unwrap_or_default();
    let connect = json!({"verbose": false, "jwt": jwt, "sig": sign(user, nonce)});
    rd.get_mut()
        .write_all(format!("CONNECT {connect}\r\nPING\r\n").as_bytes())
        .await
        .expect("send");
    let mut reply = String::new();
    tokio::time::timeout(T, rd.read_line(&mut reply))
        .await
        .expect("reply")
        .expect("line");
    assert_eq!(reply.trim(), "PONG", "logged in");
    (rd, info, reply)
}

#[tokio::test]
async fn an_expiring_user_is_closed_when_its_jwt_expires() {
    let s = setup();
    let store = tempfile::tempdir().expect("store");
    let srv = TestServer::with(load(&config_text(&s, store.path())).expect("config")).await;
    let u = KeyPair::new_user();
    let jwt = encode(
        json!({"sub": u.public_key(), "exp": jwt_now() + 2,
               "nats": {"subs": -1, "payload": -1, "type": "user", "version": 2}}),
        &s.a,
    );
    let (mut rd, _, _) = raw_login(&srv, &jwt, &u).await;
    let mut line = String::new();
    let read = tokio::time::timeout(Duration::from_secs(6), async {
        loop {
            line.clear();
            if rd.read_line(&mut line).await.unwrap_or(0) == 0 {
                return String::new();
            }
            if line.starts_with("-ERR") {
                return line.clone();
            }
        }
    })
    .await
    .expect("closed in time");
    assert_eq!(read.trim(), "-ERR 'User Authentication Expired'");
    srv.stop().await;
}

#[tokio::test]
async fn operator_config_errors_as_nats_server() {
    let s = setup();
    let store = tempfile::tempdir().expect("store");
    let good = config_text(&s, store.path());
    let no_resolver: String = good
        .lines()
        .filter(|l| !l.starts_with("resolver: MEMORY"))
        .collect::<Vec<_>>()
        .join("\n");
    let e = load(&no_resolver).expect_err("needs a resolver");
    assert!(
        e.contains("operators require an account resolver to be configured"),
        "{e}"
    );
    let with_accounts =
        format!("{good}\naccounts {{ X {{ users [{{user: a, password: b}}] }} }}\n");
    let e = load(&with_accounts).expect_err("no accounts");
    assert!(
        e.contains("operators do not allow Accounts to be configured directly"),
        "{e}"
    );
    let other_sys = format!("{good}\nsystem_account: {}\n", s.a.public_key());
    let e = load(&other_sys).expect_err("sys mismatch");
    assert!(
        e.contains("system_account in config and operator JWT must be identical"),
        "{e}"
    );
    let url = good.replace(
        "resolver: MEMORY",
        "resolver: URL(http://127.0.0.1:9/jwt/v1/accounts/)",
    );
    let e = load(&url).expect_err("no URL resolver");
    assert!(e.contains("URL account resolver is not supported"), "{e}");
    let bad_op = good.replace("operator: eyJ", "operator: eyJx");
    let e = load(&bad_op).expect_err("bad operator");
    assert!(e.contains("error parsing operator JWT"), "{e}");
}

#[tokio::test]
async fn a_full_resolver_reads_its_directory() {
    let s = setup();
    let store = tempfile::tempdir().expect("store");
    let jwt_dir = tempfile::tempdir().expect("jwt dir");
    // Account A only in the directory, as `nsc push` or a previous run left it.
    let text = config_text(&s, store.path());
    let a_line = text
        .lines()
        .find(|l| l.trim_start().starts_with(&s.a.public_key()))
        .expect("A's preload");
    let a_jwt = a_line.split_once(':').map(|(_, j)| j.trim()).expect("jwt");
    std::fs::write(
        jwt_dir.path().join(format!("{}.jwt", s.a.public_key())),
        a_jwt,
    )
    .expect("write");
    let text = text.replace(a_line, "").replace(
        "resolver: MEMORY",
        &format!(
            "resolver {{ type: full, dir: {:?} }}",
            jwt_dir.path().display()
        ),
    );
    let srv = TestServer::with(load(&text).expect("config")).await;
    let u = KeyPair::new_user();
    let c = login(&srv, &user_jwt(&s.a, &u, json!({}), None), &u)
        .await
        .expect("A's user logs in");
    roundtrip(&c).await;
    srv.stop().await;
}

/// A server of `s` with a `full` resolver in a fresh directory, and a system user.
struct FullResolver {
    srv: TestServer,
    sys: async_nats::Client,
    jwt_dir: tempfile::TempDir,
    _store: tempfile::TempDir,
}

async fn full_resolver(s: &Setup) -> FullResolver {
    let store = tempfile::tempdir().expect("store");
    let jwt_dir = tempfile::tempdir().expect("jwt dir");
    let text = config_text(s, store.path()).replace(
        "resolver: MEMORY",
        &format!(
            "resolver {{ type: full, dir: {:?} }}",
            jwt_dir.path().display()
        ),
    );
    let srv = TestServer::with(load(&text).expect("config")).await;
    let admin = KeyPair::new_user();
    let sys = login(&srv, &user_jwt(&s.sys, &admin, json!({}), None), &admin)
        .await
        .expect("system user logs in");
    FullResolver {
        srv,
        sys,
        jwt_dir,
        _store: store,
    }
}

/// Push `token` on `subject` as the system user; the answer.
async fn push_on(sys: &async_nats::Client, subject: String, token: &str) -> Value {
    let r = sys
        .request(subject, token.to_string().into())
        .await
        .expect("answered");
    serde_json::from_slice(&r.payload).expect("json")
}

/// Push `token` as `nsc push` does; the answer.
async fn push(sys: &async_nats::Client, token: &str) -> Value {
    push_on(sys, "$SYS.REQ.CLAIMS.UPDATE".into(), token).await
}

/// `nsc push` into a full resolver: a new account's users can log in at once, the JWT is
/// stored in the directory (and served by LOOKUP and LIST), and an update that revokes a
/// connected user closes its connection.
#[tokio::test]
async fn pushed_account_jwts_apply_while_running() {
    let s = setup();
    let FullResolver {
        srv,
        sys,
        jwt_dir,
        _store,
    } = full_resolver(&s).await;

    // A new account C, pushed as nsc does.
    let c = KeyPair::new_account();
    let c_jwt = account_jwt(
        &s,
        &c,
        json!({"limits": {"subs": -1, "payload": -1, "conn": -1, "mem_storage": -1,
                          "disk_storage": -1, "streams": 1, "consumer": -1}}),
    );
    let carol = KeyPair::new_user();
    assert!(
        login(&srv, &user_jwt(&c, &carol, json!({}), None), &carol)
            .await
            .is_err()
    );
    let v = push(&sys, &c_jwt).await;
    assert_eq!(v["data"]["code"], 200, "{v}");
    assert_eq!(v["data"]["account"], c.public_key().as_str(), "{v}");
    assert_eq!(v["data"]["message"], "jwt updated", "{v}");
    let stored = std::fs::read_to_string(jwt_dir.path().join(format!("{}.jwt", c.public_key())))
        .expect("stored in the directory");
    assert_eq!(stored, c_jwt);
    let carol_c = login(&srv, &user_jwt(&c, &carol, json!({}), None), &carol)
        .await
        .expect("C's user logs in after the push");
    roundtrip(&carol_c).await;
    // JetStream as the pushed JWT allows: one stream.
    let js = async_nats::jetstream::new(carol_c.clone());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "C1".into(),
        subjects: vec!["c1.>".into()],
        ..Default::default()
    })
    .await
    .expect("C has JetStream");
    let err = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: "C2".into(),
            subjects: vec!["c2.>".into()],
            ..Default::default()
        })
        .await
        .expect_err("one stream only");
    assert!(err.to_string().contains("10027"), "{err}");
    let lookup = sys
        .request(
            format!("$SYS.REQ.ACCOUNT.{}.CLAIMS.LOOKUP", c.public_key()),
            "".into(),
        )
        .await
        .expect("lookup");
    assert_eq!(std::str::from_utf8(&lookup.payload).expect("utf8"), c_jwt);
    let list = sys
        .request("$SYS.REQ.CLAIMS.LIST", "".into())
        .await
        .expect("list");
    let v: Value = serde_json::from_slice(&list.payload).expect("json");
    assert!(
        v["data"]
            .as_array()
            .is_some_and(|a| a.iter().any(|k| k == c.public_key().as_str())),
        "{v}"
    );

    // Refused: not signed by the operator; a subject that names another account.
    let rogue = encode(
        json!({"sub": c.public_key(), "nats": {"type": "account", "version": 2}}),
        &KeyPair::new_operator(),
    );
    let v = push(&sys, &rogue).await;
    assert_eq!(v["error"]["code"], 500, "{v}");
    let v = push_on(
        &sys,
        format!("$SYS.REQ.ACCOUNT.{}.CLAIMS.UPDATE", s.b.public_key()),
        &c_jwt,
    )
    .await;
    assert!(
        v["error"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("subject does not match jwt content")),
        "{v}"
    );
    // A subject that is not an account key never names a file.
    let traversal = encode(
        json!({"sub": "../../evil", "nats": {"type": "account", "version": 2}}),
        &s.operator,
    );
    let v = push(&sys, &traversal).await;
    assert_eq!(v["error"]["code"], 500, "{v}");
    assert!(!jwt_dir.path().join("../../evil.jwt").exists());
    // C is still as pushed.
    roundtrip(&carol_c).await;
    let (mut carol_raw, _, _) =
        raw_login(&srv, &user_jwt(&c, &carol, json!({}), None), &carol).await;

    // An update of C that revokes carol closes her connection.
    let revoking = account_jwt_at(
        &s,
        &c,
        json!({"limits": {"subs": -1, "payload": -1, "conn": -1},
               "revocations": {carol.public_key(): jwt_now() + 1}}),
        jwt_now() + 1,
    );
    let v = push(&sys, &revoking).await;
    assert_eq!(v["data"]["code"], 200, "{v}");
    assert!(
        support::eventually(T, || carol_c.connection_state()
            != async_nats::connection::State::Connected)
        .await,
        "revoked user disconnected"
    );
    let mut line = String::new();
    tokio::time::timeout(T, carol_raw.read_line(&mut line))
        .await
        .expect("told in time")
        .expect("line");
    assert_eq!(line.trim(), "-ERR 'User Authentication Revoked'");
    srv.stop().await;
}

/// Pushed changes of existing accounts' exports and imports apply at once: a new export
/// and a new import connect, a dropped import disconnects.
#[tokio::test]
async fn pushed_imports_and_exports_apply_while_running() {
    let s = setup();
    let FullResolver {
        srv,
        sys,
        jwt_dir: _jwt_dir,
        _store,
    } = full_resolver(&s).await;
    let pushed = |token: String| {
        let sys = sys.clone();
        async move {
            let v = push(&sys, &token).await;
            assert_eq!(v["data"]["code"], 200, "{v}");
        }
    };
    let later = |nats: Value, key: &KeyPair| account_jwt_at(&s, key, nats, jwt_now() + 1);
    let unlimited = json!({"subs": -1, "data": -1, "payload": -1, "conn": -1, "imports": -1,
                           "exports": -1});
    // A now also exports news.>; B imports it and no longer imports svc.>.
    pushed(later(
        json!({"limits": unlimited, "exports": [{"subject": "svc.>", "type": "service"},
                                                {"subject": "news.>", "type": "stream"}]}),
        &s.a,
    ))
    .await;
    pushed(later(
        json!({"limits": unlimited,
               "imports": [{"subject": "news.>", "account": s.a.public_key(), "type": "stream"}]}),
        &s.b,
    ))
    .await;
    let (ua, ub) = (KeyPair::new_user(), KeyPair::new_user());
    let a = login(&srv, &user_jwt(&s.a, &ua, json!({}), None), &ua)
        .await
        .expect("a");
    let b = login(&srv, &user_jwt(&s.b, &ub, json!({}), None), &ub)
        .await
        .expect("b");
    let mut news = b.subscribe("news.>").await.expect("sub");
    let _svc = a.subscribe("svc.>").await.expect("sub");
    roundtrip(&b).await;
    roundtrip(&a).await;
    a.publish("news.today", "hello".into()).await.expect("pub");
    roundtrip(&a).await;
    let m = tokio::time::timeout(T, news.next())
        .await
        .expect("in time")
        .expect("msg");
    assert_eq!(&m.payload[..], b"hello");
    let err = b
        .request("svc.ping", "".into())
        .await
        .expect_err("import dropped");
    assert_eq!(err.kind(), async_nats::RequestErrorKind::NoResponders);
    srv.stop().await;
}

/// A push that changes the rights a connected user got (here the account's default
/// permissions) closes that user's connection, so it logs in again with the new ones;
/// a user of another account stays connected.
#[tokio::test]
async fn pushed_default_permissions_reach_connected_users() {
    let s = setup();
    let FullResolver {
        srv,
        sys,
        jwt_dir: _jwt_dir,
        _store,
    } = full_resolver(&s).await;
    let (ua, ub) = (KeyPair::new_user(), KeyPair::new_user());
    let (mut a, _, _) = raw_login(&srv, &user_jwt(&s.a, &ua, json!({}), None), &ua).await;
    let (mut b, _, _) = raw_login(&srv, &user_jwt(&s.b, &ub, json!({}), None), &ub).await;
    let a_jwt = account_jwt_at(
        &s,
        &s.a,
        json!({"limits": {"subs": -1, "data": -1, "payload": -1, "conn": -1},
               "default_permissions": {"pub": {"deny": ["x.>"]}}}),
        jwt_now() + 1,
    );
    let v = push(&sys, &a_jwt).await;
    assert_eq!(v["data"]["code"], 200, "{v}");
    // A's user is closed (no -ERR: it reconnects), B's answers a PING.
    let mut line = String::new();
    let n = tokio::time::timeout(T, a.read_line(&mut line))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0, "A's connection closed, got {line:?}");
    assert_eq!(send_and_read(&mut b, b"PING\r\n").await.trim(), "PONG");
    // Logging in again gets the new default: x.1 is denied.
    let ua2 = KeyPair::new_user();
    let (mut a2, _, _) = raw_login(&srv, &user_jwt(&s.a, &ua2, json!({}), None), &ua2).await;
    let line = send_and_read(&mut a2, b"PUB x.1 1\r\nx\r\nPING\r\n").await;
    assert!(
        line.starts_with("-ERR 'Permissions Violation for Publish to \"x.1\"'"),
        "{line}"
    );
    srv.stop().await;
}
