//! TLS for client connections, driven by async-nats (and raw sockets where a client
//! library would hide what the server does): INFO in the clear then the client's
//! handshake, `handshake_first`, client certificates (`verify`), `allow_non_tls`,
//! `min_version`, the handshake timeout, and what `/connz` and INFO say.
//!
//! The certificates are in `tests/data/tls` (`generate.py` makes them).

mod support;

use futures::StreamExt;
use natrium_server::client::CloseReason;
use natrium_server::options::Options;
use natrium_server::tls::{TlsOptions, TlsVersion};
use std::path::PathBuf;
use std::time::Duration;
use support::{TestServer, eventually};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/tls")
        .join(name)
}

fn tls_opts() -> TlsOptions {
    TlsOptions {
        cert_file: Some(data("server-cert.pem")),
        key_file: Some(data("server-key.pem")),
        ..TlsOptions::default()
    }
}

async fn server(tls: TlsOptions, allow_non_tls: bool) -> TestServer {
    TestServer::with(Options {
        tls: Some(tls),
        allow_non_tls,
        ..Options::for_test()
    })
    .await
}

fn url(s: &TestServer) -> String {
    format!("nats://localhost:{}", s.port())
}

fn trusting() -> async_nats::ConnectOptions {
    support::install_crypto_provider();
    async_nats::ConnectOptions::new().add_root_certificates(data("ca.pem"))
}

/// The first line the server sends on a fresh socket, and the socket.
async fn first_line(s: &TestServer) -> (String, BufReader<TcpStream>) {
    let sock = TcpStream::connect(("127.0.0.1", s.port())).await.unwrap();
    let mut rd = BufReader::new(sock);
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(5), rd.read_line(&mut line))
        .await
        .expect("INFO in time")
        .unwrap();
    (line, rd)
}

/// Everything the server sends until it closes the connection (within 5 s).
async fn read_until_closed(sock: &mut BufReader<TcpStream>) -> Vec<u8> {
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read_to_end(sock, &mut rest),
    )
    .await
    .expect("the server closes the connection");
    rest
}

fn info_json(line: &str) -> serde_json::Value {
    let body = line.strip_prefix("INFO ").expect("an INFO line").trim_end();
    serde_json::from_str(body).unwrap()
}

/// The reason the server recorded for the connection from `port` (the client's side).
async fn closed_reason(s: &TestServer, local_port: u16) -> Option<CloseReason> {
    let shared = s.server.shared().clone();
    let mut found = None;
    eventually(Duration::from_secs(5), || {
        found = shared
            .closed_clients()
            .iter()
            .find(|c| c.addr.port() == local_port)
            .map(|c| c.reason);
        found.is_some()
    })
    .await;
    found
}

#[tokio::test]
async fn a_tls_client_talks_through_the_upgrade_and_connz_shows_the_session() {
    let s = server(tls_opts(), false).await;
    // INFO comes in the clear and says TLS is required.
    let (line, _sock) = first_line(&s).await;
    let info = info_json(&line);
    assert_eq!(info["tls_required"], true);
    assert!(info.get("tls_verify").is_none());
    assert!(info.get("tls_available").is_none());

    let nc = trusting()
        .connect(url(&s))
        .await
        .expect("TLS client connects");
    let mut sub = nc.subscribe("t.>").await.unwrap();
    // A payload larger than one TLS record (16 KiB) crosses in pieces.
    support::big_then_small(&nc, &mut sub, "t").await;

    let tls = support::tls_sessions(&s);
    assert_eq!(tls.len(), 1, "{tls:?}");
    assert_eq!(tls[0].version, "1.3");
    assert!(tls[0].cipher_suite.starts_with("TLS_"), "{:?}", tls[0]);
    assert!(!tls[0].first);
    s.stop().await;
}

#[tokio::test]
async fn a_client_that_stays_in_the_clear_is_closed_as_a_handshake_error() {
    let s = server(tls_opts(), false).await;
    let (_, mut sock) = first_line(&s).await;
    let port = sock.get_ref().local_addr().unwrap().port();
    sock.get_mut()
        .write_all(b"CONNECT {\"verbose\":false}\r\nPING\r\n")
        .await
        .unwrap();
    // No PONG: the server reads our CONNECT as a broken handshake and hangs up.
    let rest = read_until_closed(&mut sock).await;
    assert!(!String::from_utf8_lossy(&rest).contains("PONG"));
    assert_eq!(
        closed_reason(&s, port).await,
        Some(CloseReason::TlsHandshakeError)
    );
    s.stop().await;
}

#[tokio::test]
async fn a_silent_client_is_closed_after_the_tls_timeout() {
    let s = server(
        TlsOptions {
            timeout: Duration::from_millis(300),
            ..tls_opts()
        },
        false,
    )
    .await;
    let (_, mut sock) = first_line(&s).await;
    let port = sock.get_ref().local_addr().unwrap().port();
    let started = std::time::Instant::now();
    read_until_closed(&mut sock).await;
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!(
        closed_reason(&s, port).await,
        Some(CloseReason::TlsHandshakeError)
    );
    s.stop().await;
}

#[tokio::test]
async fn verify_admits_only_clients_with_a_certificate_from_the_ca() {
    let s = server(
        TlsOptions {
            verify: true,
            ca_file: Some(data("ca.pem")),
            ..tls_opts()
        },
        false,
    )
    .await;
    let (line, _) = first_line(&s).await;
    assert_eq!(info_json(&line)["tls_verify"], true);

    // No client certificate.
    let e = trusting()
        .connect(url(&s))
        .await
        .expect_err("no certificate, no entry");
    let _ = e;
    // A certificate from another CA.
    let e = trusting()
        .add_client_certificate(data("stranger-cert.pem"), data("stranger-key.pem"))
        .connect(url(&s))
        .await
        .expect_err("an unknown CA's certificate is refused");
    let _ = e;
    // The right one.
    let nc = trusting()
        .add_client_certificate(data("client-cert.pem"), data("client-key.pem"))
        .connect(url(&s))
        .await
        .expect("a certificate from the CA is admitted");
    support::roundtrip(&nc).await;
    let refused = s
        .server
        .shared()
        .closed_clients()
        .iter()
        .filter(|c| c.reason == CloseReason::TlsHandshakeError)
        .count();
    assert!(refused >= 2, "both refusals recorded, got {refused}");
    s.stop().await;
}

#[tokio::test]
async fn handshake_first_takes_tls_before_info() {
    let s = server(
        TlsOptions {
            handshake_first: true,
            ..tls_opts()
        },
        false,
    )
    .await;
    let nc = trusting()
        .tls_first()
        .connect(url(&s))
        .await
        .expect("a TLS-first client connects");
    support::roundtrip(&nc).await;
    let firsts: Vec<bool> = support::tls_sessions(&s).iter().map(|t| t.first).collect();
    assert_eq!(firsts, vec![true]);
    // A client that waits for INFO gets nothing in the clear.
    let sock = TcpStream::connect(("127.0.0.1", s.port())).await.unwrap();
    let mut rd = BufReader::new(sock);
    let mut line = String::new();
    let r = tokio::time::timeout(Duration::from_millis(300), rd.read_line(&mut line)).await;
    assert!(
        r.is_err() || line.is_empty(),
        "no INFO before TLS: {line:?}"
    );
    // And an ordinary async-nats client cannot connect.
    assert!(trusting().connect(url(&s)).await.is_err());
    s.stop().await;
}

#[tokio::test]
async fn handshake_first_with_a_fallback_admits_both_kinds_of_client() {
    let s = server(
        TlsOptions {
            handshake_first: true,
            first_fallback: Some(Duration::from_millis(50)),
            ..tls_opts()
        },
        false,
    )
    .await;
    let first = trusting().tls_first().connect(url(&s)).await.unwrap();
    let later = trusting().connect(url(&s)).await.unwrap();
    support::roundtrip(&first).await;
    support::roundtrip(&later).await;
    let mut firsts: Vec<bool> = support::tls_sessions(&s).iter().map(|t| t.first).collect();
    firsts.sort();
    assert_eq!(firsts, vec![false, true]);
    s.stop().await;
}

#[tokio::test]
async fn allow_non_tls_serves_plain_and_tls_clients() {
    let s = server(tls_opts(), true).await;
    let (line, _) = first_line(&s).await;
    let info = info_json(&line);
    assert!(info.get("tls_required").is_none(), "{info}");
    assert_eq!(info["tls_available"], true);
    let plain = async_nats::connect(url(&s)).await.expect("plain client");
    let tls = trusting()
        .require_tls(true)
        .connect(url(&s))
        .await
        .expect("TLS client");
    let mut sub = plain.subscribe("mixed").await.unwrap();
    support::roundtrip(&plain).await;
    tls.publish("mixed", "across".into()).await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.payload.as_ref(), b"across");
    let sessions = support::tls_sessions(&s).len();
    assert_eq!(sessions, 1);
    s.stop().await;
}

/// A rustls client limited to TLS 1.2, trusting the test CA.
fn tls12_only() -> rustls::ClientConfig {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(data("ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth()
}

#[tokio::test]
async fn min_version_refuses_older_clients() {
    let s = server(tls_opts(), false).await;
    let nc = async_nats::ConnectOptions::new()
        .tls_client_config(tls12_only())
        .connect(url(&s))
        .await
        .expect("TLS 1.2 is accepted by default");
    support::roundtrip(&nc).await;
    let v: Vec<_> = support::tls_sessions(&s)
        .iter()
        .map(|t| t.version)
        .collect();
    assert_eq!(v, vec!["1.2"]);
    s.stop().await;

    let s = server(
        TlsOptions {
            min_version: Some(TlsVersion::V1_3),
            ..tls_opts()
        },
        false,
    )
    .await;
    assert!(
        async_nats::ConnectOptions::new()
            .tls_client_config(tls12_only())
            .connect(url(&s))
            .await
            .is_err(),
        "a TLS 1.2 client is refused with min_version 1.3"
    );
    trusting()
        .connect(url(&s))
        .await
        .expect("TLS 1.3 still works");
    s.stop().await;
}

#[tokio::test]
async fn auth_timeout_defaults_to_the_tls_timeout_plus_one_second() {
    let opts = Options {
        tls: Some(TlsOptions {
            timeout: Duration::from_millis(1500),
            ..tls_opts()
        }),
        ..Options::for_test()
    };
    assert_eq!(opts.effective_auth_timeout(), Duration::from_millis(2500));
    let plain = Options::for_test();
    assert_eq!(plain.effective_auth_timeout(), Duration::from_secs(2));
}

/// Load a config text as the server would (a temporary file), on loopback port 0.
fn config(text: &str) -> Options {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.conf");
    std::fs::write(&path, text).unwrap();
    let mut o = natrium_server::config_file::load(&path).unwrap_or_else(|e| panic!("config: {e}"));
    o.host = "127.0.0.1".into();
    o.port = 0;
    o
}

fn map_config(users: &str) -> Options {
    config(&format!(
        "tls {{ cert_file: {:?}, key_file: {:?}, ca_file: {:?}, verify_and_map: true }}\n\
         accounts {{ A {{ users: [ {users} ] }} }}\n",
        data("server-cert.pem"),
        data("server-key.pem"),
        data("ca.pem"),
    ))
}

fn alice() -> async_nats::ConnectOptions {
    trusting().add_client_certificate(data("client-cert.pem"), data("client-key.pem"))
}

#[tokio::test]
async fn verify_and_map_logs_the_certificate_in_as_its_user() {
    // The certificate's e-mail address names the user; its account applies.
    let s = TestServer::with(map_config(
        r#"{user: "alice@example.com"}, {user: bob, password: pw}"#,
    ))
    .await;
    let nc = alice().connect(url(&s)).await.expect("mapped by e-mail");
    support::roundtrip(&nc).await;
    let metas: Vec<_> = s
        .server
        .shared()
        .clients()
        .iter()
        .map(|c| c.meta.lock().clone())
        .collect();
    assert_eq!(metas.len(), 1);
    assert_eq!(metas[0].user.as_deref(), Some("alice@example.com"));
    assert_eq!(metas[0].account, "A");
    let peer = &metas[0].tls.as_ref().unwrap().peer_certs;
    assert_eq!(peer[0].subject, "CN=alice,OU=Clients,O=Natrium Test");
    // A user name and password in CONNECT do not replace the certificate: bob's
    // credentials without a certificate of bob's are refused.
    assert!(
        trusting()
            .user_and_password("bob".into(), "pw".into())
            .connect(url(&s))
            .await
            .is_err(),
        "no certificate: refused before any password is looked at"
    );
    // With alice's certificate, bob's name in CONNECT is ignored: she is alice. A
    // password is still compared with the mapped user's (none), as in nats-server.
    assert!(
        alice()
            .user_and_password("bob".into(), "pw".into())
            .connect(url(&s))
            .await
            .is_err(),
        "bob's password is not alice's (empty) one"
    );
    let nc2 = alice()
        .user_and_password("bob".into(), String::new())
        .connect(url(&s))
        .await
        .expect("the certificate decides");
    support::roundtrip(&nc2).await;
    let users: Vec<_> = s
        .server
        .shared()
        .clients()
        .iter()
        .filter_map(|c| c.meta.lock().user.clone())
        .collect();
    assert_eq!(users, vec!["alice@example.com", "alice@example.com"]);
    s.stop().await;

    // By subject, written as a DN in another order with other spacing.
    let s = TestServer::with(map_config(
        r#"{user: "O=Natrium Test, OU=Clients, CN=alice"}"#,
    ))
    .await;
    let nc = alice()
        .connect(url(&s))
        .await
        .expect("mapped by subject DN");
    support::roundtrip(&nc).await;
    s.stop().await;

    // No user matches the certificate: refused.
    let s = TestServer::with(map_config(r#"{user: "CN=bob,OU=Clients,O=Natrium Test"}"#)).await;
    assert!(alice().connect(url(&s)).await.is_err());
    let reasons: Vec<_> = s
        .server
        .shared()
        .closed_clients()
        .iter()
        .map(|c| c.reason)
        .collect();
    assert!(
        reasons.contains(&CloseReason::AuthenticationViolation),
        "{reasons:?}"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_reload_turns_tls_on_for_new_connections_and_keeps_open_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.conf");
    std::fs::write(&path, "host: 127.0.0.1\nport: -1\n").unwrap();
    let mut o = natrium_server::config_file::load(&path).unwrap();
    o.host = "127.0.0.1".into();
    let s = TestServer::with(o).await;
    let before = async_nats::connect(url(&s)).await.unwrap();
    let (line, _) = first_line(&s).await;
    assert!(info_json(&line).get("tls_required").is_none());

    std::fs::write(
        &path,
        format!(
            "host: 127.0.0.1\nport: -1\ntls {{ cert_file: {:?}, key_file: {:?} }}\n",
            data("server-cert.pem"),
            data("server-key.pem")
        ),
    )
    .unwrap();
    natrium_server::signals::reload(&s.server, &natrium_server::flags::Flags::default())
        .expect("reload");
    let (line, _) = first_line(&s).await;
    assert_eq!(info_json(&line)["tls_required"], true);
    let after = trusting()
        .connect(url(&s))
        .await
        .expect("TLS after the reload");
    support::roundtrip(&after).await;
    // The connection from before stays as it was.
    support::roundtrip(&before).await;

    // A reload naming a missing key file fails and leaves TLS as it was.
    std::fs::write(
        &path,
        format!(
            "host: 127.0.0.1\nport: -1\ntls {{ cert_file: {:?}, key_file: \"/nonexistent/key.pem\" }}\n",
            data("server-cert.pem")
        ),
    )
    .unwrap();
    let e = natrium_server::signals::reload(&s.server, &natrium_server::flags::Flags::default())
        .unwrap_err();
    assert!(e.contains("/nonexistent/key.pem"), "{e}");
    trusting().connect(url(&s)).await.expect("TLS still on");
    s.stop().await;
}

/// `GET path` over HTTPS to 127.0.0.1:`port`, trusting the test CA: the whole response.
async fn https_get(port: u16, path: &str) -> std::io::Result<String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use tokio::io::AsyncReadExt;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(data("ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let sock = TcpStream::connect(("127.0.0.1", port)).await?;
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, sock).await?;
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test]
async fn https_monitoring_serves_with_the_server_certificate() {
    let s = server(
        TlsOptions {
            // Client certificates are required of NATS clients, not of HTTPS monitoring.
            verify: true,
            ca_file: Some(data("ca.pem")),
            ..tls_opts()
        },
        false,
    )
    .await;
    let mut opts = (*s.server.shared().opts()).clone();
    opts.https_port = -1;
    s.server.shared().set_opts(opts);
    let mon = natrium_server::monitor::start(s.server.shared().clone())
        .await
        .unwrap()
        .expect("an HTTPS monitor");
    let port = mon.addr.port();
    let body = https_get(port, "/varz").await.expect("HTTPS works");
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("\"tls_required\": true"), "{body}");
    // Plain HTTP on the HTTPS port gets no answer.
    let mut sock = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    sock.write_all(b"GET /varz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read_to_end(&mut sock, &mut out),
    )
    .await;
    assert!(!String::from_utf8_lossy(&out).contains("200 OK"));
    mon.stop();
    s.stop().await;
}

#[test]
fn https_monitoring_needs_tls_and_excludes_http() {
    let o = Options {
        https_port: 8443,
        ..Options::for_test()
    };
    assert_eq!(
        o.validate().unwrap_err(),
        "TLS cert and key required for HTTPS"
    );
    let o = Options {
        https_port: 8443,
        http_port: 8222,
        tls: Some(tls_opts()),
        ..Options::for_test()
    };
    assert!(
        o.validate()
            .unwrap_err()
            .contains("can't specify both HTTP")
    );
}

#[tokio::test]
async fn a_silent_tls_client_does_not_hold_up_shutdown() {
    let s = server(
        TlsOptions {
            timeout: Duration::from_secs(8),
            ..tls_opts()
        },
        false,
    )
    .await;
    // Connected, INFO read, then nothing: the server waits for the handshake.
    let (_line, _sock) = first_line(&s).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(5), s.stop())
        .await
        .expect("shutdown does not wait for the TLS timeout");
    assert!(started.elapsed() < Duration::from_secs(5));
}
