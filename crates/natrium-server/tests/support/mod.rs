//! Shared helpers for integration tests: an in-process server on port 0 and clients.
#![allow(dead_code)]

use natrium_server::logging::Logger;
use natrium_server::options::Options;
use natrium_server::server::Server;
use std::sync::Arc;
use std::time::Duration;

/// A server running in this test process.
pub struct TestServer {
    pub server: Server,
}

impl TestServer {
    /// Start with test defaults (loopback, random port).
    pub async fn start() -> Self {
        Self::with(Options::for_test()).await
    }

    /// Start with the given options.
    pub async fn with(opts: Options) -> Self {
        let log = if std::env::var_os("NATRIUM_TEST_LOG").is_some() {
            Logger::stderr(time::UtcOffset::UTC)
        } else {
            Logger::null()
        };
        let server = Server::start(opts, Arc::new(log))
            .await
            .expect("server starts");
        TestServer { server }
    }

    pub fn url(&self) -> String {
        self.server.client_url()
    }

    pub fn port(&self) -> u16 {
        self.server.client_addr().port()
    }

    /// A connected async-nats client.
    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(self.url())
            .await
            .expect("client connects")
    }

    pub async fn stop(mut self) {
        self.server.shutdown().await;
    }
}

/// Wait for `f` to become true, polling, up to `limit`.
pub async fn eventually<F: FnMut() -> bool>(limit: Duration, mut f: F) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A real round trip through the server on `client`'s connection: everything the client
/// sent before (SUBs, PUBs) has been processed when this returns. async-nats's `flush()`
/// only empties the client's write buffer, which is not enough to order two connections.
pub async fn roundtrip(client: &async_nats::Client) {
    use futures::StreamExt;
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(inbox.clone()).await.expect("subscribe");
    client.publish(inbox, "sync".into()).await.expect("publish");
    tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("round trip in time")
        .expect("subscription open");
}

/// Options for a JetStream server with its store under `dir`.
pub fn js_options(dir: &std::path::Path) -> Options {
    let mut o = Options::for_test();
    o.jetstream.enabled = true;
    o.jetstream.store_dir = Some(dir.to_path_buf());
    o
}

/// A JetStream API request (`null`: an empty body) and its JSON answer.
pub async fn api(
    client: &async_nats::Client,
    subject: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let body = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&body).expect("JSON")
    };
    let r = client
        .request(subject.to_string(), body.into())
        .await
        .expect("API answer");
    serde_json::from_slice(&r.payload).expect("JSON answer")
}

/// Chooses ring as rustls' process-wide crypto provider. async-nats builds its TLS
/// config with rustls' default provider, which rustls cannot pick by itself when a build
/// enables several (the whole workspace's test build does: the CLI's object_store brings
/// aws-lc-rs). Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The next message on `sub`, within 5 s.
pub async fn next_msg(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    use futures::StreamExt;
    tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("a message in time")
        .expect("subscription open")
}

/// Publishes a payload larger than a TLS record or a WebSocket read (300 KB), then a
/// small one, on `prefix.big` and `prefix.small`, and checks both arrive on `sub`, intact
/// and in order.
pub async fn big_then_small(
    publisher: &async_nats::Client,
    sub: &mut async_nats::Subscriber,
    prefix: &str,
) {
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    publisher
        .publish(format!("{prefix}.big"), big.clone().into())
        .await
        .expect("publish");
    publisher
        .publish(format!("{prefix}.small"), "hi".into())
        .await
        .expect("publish");
    assert_eq!(next_msg(sub).await.payload.as_ref(), big.as_slice());
    assert_eq!(next_msg(sub).await.payload.as_ref(), b"hi");
}

/// The TLS sessions of the server's open client connections, in connection order.
pub fn tls_sessions(s: &TestServer) -> Vec<natrium_server::tls::TlsInfo> {
    s.server
        .shared()
        .clients()
        .iter()
        .filter_map(|c| c.meta.lock().tls.clone())
        .collect()
}
