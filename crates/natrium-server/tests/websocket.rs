//! NATS over WebSocket: async-nats over `ws://` and `wss://`, and raw frames for what a
//! client library hides (the upgrade answers, pings, the close handshake, broken frames).

mod support;

use futures::StreamExt;
use natrium_server::client::CloseReason;
use natrium_server::options::{Options, WebsocketOptions};
use natrium_server::tls::TlsOptions;
use std::path::PathBuf;
use std::time::Duration;
use support::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/tls")
        .join(name)
}

async fn ws_server(ws: WebsocketOptions) -> TestServer {
    TestServer::with(Options {
        websocket: Some(WebsocketOptions {
            host: Some("127.0.0.1".into()),
            port: -1,
            ..ws
        }),
        ..Options::for_test()
    })
    .await
}

fn plain() -> WebsocketOptions {
    WebsocketOptions {
        no_tls: true,
        ..WebsocketOptions::default()
    }
}

fn ws_port(s: &TestServer) -> u16 {
    s.server
        .shared()
        .websocket_addr
        .expect("a websocket listener")
        .port()
}

const UPGRADE: &str = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

/// A masked client frame.
fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let key = [7u8, 1, 2, 9];
    let mut out = vec![b0];
    match payload.len() {
        n if n <= 125 => out.push(0x80 | n as u8),
        n => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

/// Reads one server frame: (first byte, payload).
async fn read_frame(sock: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 2];
    sock.read_exact(&mut h).await.unwrap();
    assert_eq!(h[1] & 0x80, 0, "server frames are not masked");
    let len = match h[1] & 0x7F {
        126 => {
            let mut b = [0u8; 2];
            sock.read_exact(&mut b).await.unwrap();
            usize::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            sock.read_exact(&mut b).await.unwrap();
            u64::from_be_bytes(b) as usize
        }
        n => usize::from(n),
    };
    let mut p = vec![0u8; len];
    sock.read_exact(&mut p).await.unwrap();
    (h[0], p)
}

/// A raw WebSocket client after a successful upgrade and the INFO frame.
async fn upgraded(port: u16) -> TcpStream {
    let mut sock = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    sock.write_all(UPGRADE.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        sock.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    assert!(
        head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "{head}"
    );
    let (b0, info) = tokio::time::timeout(Duration::from_secs(5), read_frame(&mut sock))
        .await
        .unwrap();
    assert_eq!(b0, 0x82, "a final binary frame");
    assert!(
        info.starts_with(b"INFO {"),
        "{:?}",
        String::from_utf8_lossy(&info)
    );
    sock
}

#[tokio::test]
async fn async_nats_over_ws_talks_with_a_tcp_client() {
    let s = ws_server(plain()).await;
    let ws = async_nats::connect(format!("ws://127.0.0.1:{}", ws_port(&s)))
        .await
        .expect("a ws:// client connects");
    let tcp = s.client().await;
    let mut sub = ws.subscribe("mix.>").await.unwrap();
    support::roundtrip(&ws).await;
    support::big_then_small(&tcp, &mut sub, "mix").await;
    // And the other way, as a request.
    let mut svc = tcp.subscribe("svc").await.unwrap();
    support::roundtrip(&tcp).await;
    let tcp2 = tcp.clone();
    tokio::spawn(async move {
        if let Some(m) = svc.next().await
            && let Some(reply) = m.reply
        {
            let _ = tcp2.publish(reply, "pong".into()).await;
        }
    });
    let r = tokio::time::timeout(Duration::from_secs(5), ws.request("svc", "ping".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.payload.as_ref(), b"pong");
    let kinds: Vec<bool> = s
        .server
        .shared()
        .clients()
        .iter()
        .map(|c| c.meta.lock().websocket)
        .collect();
    assert_eq!(kinds.iter().filter(|w| **w).count(), 1, "{kinds:?}");
    s.stop().await;
}

#[tokio::test]
async fn wss_uses_the_websocket_tls_certificate() {
    let s = ws_server(WebsocketOptions {
        tls: Some(TlsOptions {
            cert_file: Some(data("server-cert.pem")),
            key_file: Some(data("server-key.pem")),
            ..TlsOptions::default()
        }),
        ..WebsocketOptions::default()
    })
    .await;
    support::install_crypto_provider();
    let nc = async_nats::ConnectOptions::new()
        .add_root_certificates(data("ca.pem"))
        .connect(format!("wss://localhost:{}", ws_port(&s)))
        .await
        .expect("a wss:// client connects");
    support::roundtrip(&nc).await;
    let sessions: Vec<_> = support::tls_sessions(&s)
        .iter()
        .map(|t| t.version)
        .collect();
    assert_eq!(sessions, vec!["1.3"]);
    s.stop().await;
}

#[tokio::test]
async fn pings_are_answered_and_a_close_is_echoed() {
    let s = ws_server(plain()).await;
    let mut sock = upgraded(ws_port(&s)).await;
    // NATS inside frames, split across two frames of one message.
    sock.write_all(&frame(0x02, b"CONNECT {\"verbose\":false}\r\nPI"))
        .await
        .unwrap();
    sock.write_all(&frame(0x80, b"NG\r\n")).await.unwrap();
    let (_, p) = read_frame(&mut sock).await;
    assert_eq!(p, b"PONG\r\n");
    // A WebSocket ping gets a pong with its payload.
    sock.write_all(&frame(0x89, b"are you there"))
        .await
        .unwrap();
    let (b0, p) = read_frame(&mut sock).await;
    assert_eq!((b0, p.as_slice()), (0x8A, b"are you there".as_slice()));
    // A close frame is answered with the same status, and the connection ends as a
    // client close.
    let port = sock.local_addr().unwrap().port();
    let mut close = 1000u16.to_be_bytes().to_vec();
    close.extend_from_slice(b"bye");
    sock.write_all(&frame(0x88, &close)).await.unwrap();
    let (b0, p) = read_frame(&mut sock).await;
    assert_eq!((b0, p.as_slice()), (0x88, close.as_slice()));
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut rest)).await;
    assert!(rest.is_empty(), "nothing after the close: {rest:?}");
    let shared = s.server.shared().clone();
    assert!(
        support::eventually(Duration::from_secs(5), || {
            shared
                .closed_clients()
                .iter()
                .any(|c| c.addr.port() == port && c.reason == CloseReason::ClientClosed)
        })
        .await
    );
    s.stop().await;
}

#[tokio::test]
async fn a_broken_frame_gets_a_protocol_error_close() {
    let s = ws_server(plain()).await;
    let mut sock = upgraded(ws_port(&s)).await;
    // Not masked.
    sock.write_all(&[0x82, 0x06, b'P', b'I', b'N', b'G', b'\r', b'\n'])
        .await
        .unwrap();
    let (b0, p) = read_frame(&mut sock).await;
    assert_eq!(b0, 0x88);
    assert_eq!(&p[..2], &1002u16.to_be_bytes());
    assert_eq!(&p[2..], b"mask bit missing");
    s.stop().await;
}

#[tokio::test]
async fn a_server_side_close_sends_its_reason() {
    // Authentication required and a wrong password: close frame 1008 with the reason.
    let s = TestServer::with(Options {
        websocket: Some(WebsocketOptions {
            host: Some("127.0.0.1".into()),
            port: -1,
            ..plain()
        }),
        auth: natrium_server::options::SimpleAuth {
            user: Some("u".into()),
            password: Some("p".into()),
            ..Default::default()
        },
        ..Options::for_test()
    })
    .await;
    let mut sock = upgraded(ws_port(&s)).await;
    sock.write_all(&frame(0x82, b"CONNECT {\"user\":\"u\",\"pass\":\"x\"}\r\n"))
        .await
        .unwrap();
    let (_, p) = read_frame(&mut sock).await;
    assert_eq!(p, b"-ERR 'Authorization Violation'\r\n");
    let (b0, p) = read_frame(&mut sock).await;
    assert_eq!(b0, 0x88);
    assert_eq!(&p[..2], &1008u16.to_be_bytes());
    assert_eq!(&p[2..], b"Authentication Failure");
    s.stop().await;
}

#[tokio::test]
async fn bad_upgrades_get_nats_server_s_http_errors() {
    let s = ws_server(WebsocketOptions {
        origins: natrium_server::client::websocket::OriginPolicy {
            same_origin: true,
            allowed: Vec::new(),
        },
        ..plain()
    })
    .await;
    let port = ws_port(&s);
    for (req, status) in [
        (UPGRADE.replace("GET", "POST"), "405 Method Not Allowed"),
        (
            UPGRADE.replace("Version: 13", "Version: 7"),
            "400 Bad Request",
        ),
        (
            UPGRADE.replace("\r\n\r\n", "\r\nOrigin: http://evil.example\r\n\r\n"),
            "403 Forbidden",
        ),
        (format!("{UPGRADE}PING\r\n"), "400 Bad Request"),
    ] {
        let mut sock = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        sock.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut out))
            .await
            .unwrap()
            .unwrap();
        let out = String::from_utf8_lossy(&out);
        assert!(out.starts_with(&format!("HTTP/1.1 {status}\r\n")), "{out}");
    }
    // Refused upgrades never became clients.
    assert!(s.server.shared().closed_clients().is_empty());
    s.stop().await;
}

#[tokio::test]
async fn a_silent_socket_is_dropped_after_the_handshake_timeout() {
    let s = ws_server(WebsocketOptions {
        handshake_timeout: Some(Duration::from_millis(300)),
        ..plain()
    })
    .await;
    let mut sock = TcpStream::connect(("127.0.0.1", ws_port(&s)))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut out))
        .await
        .expect("closed by the server")
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!(out.is_empty());
    s.stop().await;
}

/// Reads frames until a close frame; returns the data bytes before it and the close
/// payload.
async fn until_close(sock: &mut TcpStream) -> (Vec<u8>, Vec<u8>) {
    let mut data = Vec::new();
    loop {
        let (b0, p) = tokio::time::timeout(Duration::from_secs(5), read_frame(sock))
            .await
            .expect("a frame in time");
        if b0 == 0x88 {
            return (data, p);
        }
        data.extend_from_slice(&p);
    }
}

#[tokio::test]
async fn the_close_answer_comes_after_the_data_it_follows() {
    let s = ws_server(plain()).await;
    let mut sock = upgraded(ws_port(&s)).await;
    // Everything in one write: the close must not overtake the answers to what
    // preceded it.
    let mut burst = frame(
        0x82,
        b"CONNECT {\"verbose\":false}\r\nSUB x 1\r\nPUB x 5\r\nhello\r\nPING\r\n",
    );
    burst.extend(frame(0x88, &1000u16.to_be_bytes()));
    sock.write_all(&burst).await.unwrap();
    let (data, close) = until_close(&mut sock).await;
    let data = String::from_utf8_lossy(&data);
    assert!(data.contains("MSG x 1 5\r\nhello\r\n"), "{data}");
    assert!(data.ends_with("PONG\r\n"), "{data}");
    assert_eq!(close, 1000u16.to_be_bytes());
    s.stop().await;
}

#[tokio::test]
async fn a_ping_flood_keeps_one_pong_waiting() {
    let conn = natrium_server::client::ClientConn::new(1, "127.0.0.1:1".parse().unwrap());
    for i in 0..10_000u32 {
        conn.ws_pong(&i.to_be_bytes());
    }
    assert_eq!(conn.ws.lock().pong, Some(9_999u32.to_be_bytes().to_vec()));
}

#[tokio::test]
async fn info_over_websocket_names_the_websocket_listener() {
    let s = ws_server(plain()).await;
    let port = ws_port(&s);
    let mut sock = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    // A forwarded-for header does not change the address the server reports.
    let req = UPGRADE.replace("\r\n\r\n", "\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n");
    sock.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        sock.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    let (_, info) = read_frame(&mut sock).await;
    let info: serde_json::Value =
        serde_json::from_slice(info.strip_prefix(b"INFO ").unwrap().trim_ascii_end()).unwrap();
    assert_eq!(info["port"], port);
    assert_eq!(info["client_ip"], "127.0.0.1");
    // The INFO after CONNECT says the same.
    sock.write_all(&frame(0x82, b"CONNECT {\"protocol\":1}\r\nPING\r\n"))
        .await
        .unwrap();
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("connect_info") {
        let (_, p) = tokio::time::timeout(Duration::from_secs(5), read_frame(&mut sock))
            .await
            .unwrap();
        got.extend_from_slice(&p);
    }
    let text = String::from_utf8_lossy(&got);
    let line = text.lines().find(|l| l.contains("connect_info")).unwrap();
    let v: serde_json::Value = serde_json::from_str(line.strip_prefix("INFO ").unwrap()).unwrap();
    assert_eq!(v["port"], port);
    s.stop().await;
}

#[tokio::test]
async fn a_reload_cannot_change_websocket_settings_but_renews_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.conf");
    let conf = |extra: &str| {
        format!(
            "host: 127.0.0.1\nport: -1\nwebsocket {{ host: 127.0.0.1, port: -1\n tls {{ cert_file: {:?}, key_file: {:?} }}\n {extra} }}\n",
            data("server-cert.pem"),
            data("server-key.pem")
        )
    };
    std::fs::write(&path, conf("")).unwrap();
    let o = natrium_server::config_file::load(&path).unwrap();
    let s = TestServer::with(o).await;
    std::fs::write(&path, conf("same_origin: true")).unwrap();
    let e = natrium_server::signals::reload(&s.server, &natrium_server::flags::Flags::default())
        .unwrap_err();
    assert!(e.contains("Websocket"), "{e}");
    // Only the certificate changed: accepted.
    std::fs::write(&path, conf("")).unwrap();
    natrium_server::signals::reload(&s.server, &natrium_server::flags::Flags::default())
        .expect("a certificate reload");
    assert!(s.server.shared().websocket_tls().is_some());
    s.stop().await;
}
