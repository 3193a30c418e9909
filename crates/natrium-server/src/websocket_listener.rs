//! The `websocket {}` listener: accepts TCP (and, for `wss://`, TLS), reads the HTTP
//! upgrade request, answers `101 Switching Protocols` or nats-server's HTTP error, and
//! hands the connection to the same reader and writer tasks as any client, with the
//! WebSocket framing in its transport (`client/transport.rs`, `client/websocket.rs`).
//!
//! Why a listener of its own: nats-server serves WebSocket on its own port, and a client
//! must know before connecting which protocol it speaks there.

use crate::client::transport::{self, ConnReader, ConnWriter, WsReader};
use crate::client::websocket::{self, Upgrade};
use crate::client::{CloseReason, reader};
use crate::options::{DEFAULT_WS_HANDSHAKE_TIMEOUT, WebsocketOptions};
use crate::protocol::write;
use crate::server::{Admission, ServerShared, StartError};
use crate::tls::{ServerTls, TlsInfo};
use crate::{error, info, warn};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// A bound WebSocket listener, not yet accepting.
pub struct Bound {
    listener: TcpListener,
    opts: WebsocketOptions,
    tls: Option<Arc<ServerTls>>,
    /// The bound address.
    pub addr: SocketAddr,
}

impl Bound {
    /// The `wss://` TLS settings the listener was started with.
    pub fn tls(&self) -> Option<Arc<ServerTls>> {
        self.tls.clone()
    }
}

/// Binds the listener `opts` describes (`host` defaults to the client listener's).
pub async fn bind(
    opts: &WebsocketOptions,
    default_host: &str,
    log: &crate::logging::Logger,
) -> Result<Bound, StartError> {
    let host = opts
        .host
        .clone()
        .unwrap_or_else(|| default_host.to_string());
    let tls = opts
        .tls
        .as_ref()
        .map(ServerTls::build)
        .transpose()
        .map_err(|e| StartError::Options(format!("websocket: {e}")))?
        .map(Arc::new);
    let (listener, addr) = crate::server::bind_listener(&host, opts.port).await?;
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    info!(
        log,
        "Listening for websocket clients on {}://{}:{}",
        scheme,
        host,
        addr.port()
    );
    if tls.is_none() {
        warn!(
            log,
            "Websocket not configured with TLS. DO NOT USE IN PRODUCTION!"
        );
    }
    Ok(Bound {
        listener,
        opts: opts.clone(),
        tls,
        addr,
    })
}

/// Accepts WebSocket clients until the server stops accepting (the task ends by itself).
pub fn spawn(s: Arc<ServerShared>, bound: Bound) {
    tokio::spawn(async move {
        let Bound { listener, opts, .. } = bound;
        let opts = Arc::new(opts);
        loop {
            let stop = s.stop_accepting_signal().notified();
            tokio::pin!(stop);
            stop.as_mut().enable();
            if s.stop_accepting() {
                break;
            }
            let accepted = tokio::select! {
                r = listener.accept() => r,
                _ = &mut stop => break,
            };
            match accepted {
                Ok((stream, addr)) => {
                    let addr = crate::server::canonical_peer(addr);
                    tokio::spawn(connection(s.clone(), stream, addr, opts.clone()));
                }
                Err(e) => {
                    error!(s.log, "Error accepting websocket connection: {}", e);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    });
}

/// One WebSocket client: TLS if configured, the upgrade, then the NATS connection.
async fn connection(
    s: Arc<ServerShared>,
    stream: TcpStream,
    addr: SocketAddr,
    opts: Arc<WebsocketOptions>,
) {
    // The certificate in force now (a reload may have renewed it).
    let tls = s.websocket_tls();
    let _ = stream.set_nodelay(true);
    let deadline = Instant::now()
        + opts
            .handshake_timeout
            .unwrap_or(DEFAULT_WS_HANDSHAKE_TIMEOUT);
    let (rd, wr, session, up) = match tls {
        None => {
            let mut stream = stream;
            let Some(up) = upgrade(&mut stream, &opts, false, deadline, &s, addr).await else {
                return;
            };
            let (rd, wr) = transport::plain(stream);
            (rd, wr, None, up)
        }
        Some(tls) => {
            // Plain HTTP on the wss:// port gets the answer Go's HTTPS server gives.
            let mut first = [0u8; 1];
            if let Ok(Ok(1)) = tokio::time::timeout_at(deadline, stream.peek(&mut first)).await
                && first[0] != crate::tls::TLS_HANDSHAKE_BYTE
            {
                error!(
                    s.log,
                    "{} - websocket handshake error: client sent an HTTP request to an HTTPS server",
                    addr
                );
                let mut stream = stream;
                let _ = tokio::time::timeout_at(
                    deadline,
                    stream.write_all(
                        b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n",
                    ),
                )
                .await;
                // Take in the request first: closing with unread data would reset the
                // connection and the client might lose the answer.
                let mut sink = [0u8; 4096];
                for _ in 0..16 {
                    if !matches!(stream.try_read(&mut sink), Ok(n) if n > 0) {
                        break;
                    }
                }
                return;
            }
            let mut stream = match tls.accept(stream, deadline).await {
                Ok(st) => st,
                Err(e) => {
                    error!(s.log, "{} - websocket TLS handshake error: {}", addr, e);
                    return;
                }
            };
            let Some(up) = upgrade(&mut stream, &opts, true, deadline, &s, addr).await else {
                return;
            };
            let session = TlsInfo::of(stream.get_ref().1, false);
            let (rd, wr) = transport::tls(stream);
            (rd, wr, Some(session), up)
        }
    };
    let conn = s.new_client(addr);
    {
        let mut meta = conn.meta.lock();
        meta.websocket = true;
        meta.tls = session;
    }
    let deflate = negotiates_deflate(&opts, &up);
    let mut decoder = if up.no_masking {
        websocket::Decoder::unmasked()
    } else {
        websocket::Decoder::default()
    };
    if deflate {
        let max_payload = usize::try_from(s.opts().max_payload).unwrap_or(usize::MAX);
        decoder = decoder.with_inflate(max_payload);
    }
    let rd: ConnReader = WsReader::wrap(rd, conn.clone(), decoder);
    let mut wr: ConnWriter = wr.websocket(conn.clone(), deflate, up.browser);
    let mut info = Vec::new();
    write::append_info(&mut info, s.client_info_json(&conn, false).as_bytes());
    match s.admit(&conn) {
        Admission::Admitted => {}
        Admission::Full => {
            // As on the client port: INFO, the error, then the end (a close frame here).
            write::append_err(&mut info, "maximum connections exceeded");
            let _ = wr.write_all(&info, Duration::from_secs(2)).await;
            wr.shutdown(CloseReason::MaxConnectionsExceeded).await;
            s.record_refused(&conn);
            return;
        }
        Admission::Stopping => {
            wr.shutdown(CloseReason::ServerShutdown).await;
            return;
        }
    }
    conn.send_proto(&info);
    reader::serve(conn, rd, wr, s).await;
}

/// Reads the upgrade request from `st` and answers it. `None` when it was refused (the
/// HTTP error is sent and logged), timed out, or the client went away.
async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    st: &mut S,
    opts: &WebsocketOptions,
    tls: bool,
    deadline: Instant,
    s: &ServerShared,
    addr: SocketAddr,
) -> Option<Upgrade> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = match tokio::time::timeout_at(deadline, st.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return None,
        };
        buf.extend_from_slice(&chunk[..n]);
        let refused = match websocket::parse_upgrade(&buf, &opts.origins, tls) {
            Ok(None) => continue,
            Ok(Some(up)) if buf.len() > up.head_len => websocket::HttpError {
                status: 400,
                reason: "client sent data before handshake is complete".into(),
            },
            Ok(Some(up)) => {
                let deflate = negotiates_deflate(opts, &up);
                let answer = websocket::switching_protocols(&up, deflate, &opts.headers);
                let sent = tokio::time::timeout_at(deadline, st.write_all(&answer)).await;
                return matches!(sent, Ok(Ok(()))).then_some(up);
            }
            Err(e) => e,
        };
        error!(
            s.log,
            "{} - websocket handshake error: {}", addr, refused.reason
        );
        let answer = websocket::http_error(refused.status);
        let _ = tokio::time::timeout_at(deadline, st.write_all(&answer)).await;
        let _ = tokio::time::timeout_at(deadline, st.shutdown()).await;
        return None;
    }
}

/// Whether permessage-deflate is on for this connection: configured, and offered by the
/// client.
fn negotiates_deflate(opts: &WebsocketOptions, up: &Upgrade) -> bool {
    opts.compression && up.offers_deflate
}
