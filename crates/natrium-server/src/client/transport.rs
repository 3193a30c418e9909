//! A client connection's socket, plain TCP or TLS, possibly carrying WebSocket frames, as
//! one reader and one writer half.
//!
//! Why an enum and not a boxed trait object: the plain path is the hot one and keeps its
//! non-blocking `try_write` (a write that fits the socket buffer arms no timer and no
//! waker); TLS goes through rustls' `AsyncWrite`. One `match` per read or write is all the
//! plain path pays.

use super::websocket::{self, Decoder, ProtocolError, Reply};
use super::{ClientConn, CloseReason};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;

/// Why a write failed.
pub enum WriteFail {
    /// The socket errored or closed.
    Io,
    /// The socket stayed full past the write deadline.
    Deadline,
}

/// The reading half.
pub enum ConnReader {
    /// Plain TCP.
    Plain(OwnedReadHalf),
    /// TLS (the halves share the session through tokio's split lock).
    Tls(ReadHalf<TlsStream<TcpStream>>),
    /// WebSocket frames over either of the above.
    Ws(Box<WsReader>),
}

/// The writing half: the socket, and the WebSocket framing when the client came in
/// over WebSocket.
pub struct ConnWriter {
    /// The socket.
    base: BaseWriter,
    /// WebSocket framing state, for WebSocket clients.
    ws: Option<Box<WsWriter>>,
}

/// The socket of a writing half.
enum BaseWriter {
    /// Plain TCP.
    Plain(OwnedWriteHalf),
    /// TLS, with the socket's descriptor for the final `shutdown`.
    Tls(WriteHalf<TlsStream<TcpStream>>, RawFd),
}

/// Splits a plain connection.
pub fn plain(stream: TcpStream) -> (ConnReader, ConnWriter) {
    let (rd, wr) = stream.into_split();
    let wr = ConnWriter {
        base: BaseWriter::Plain(wr),
        ws: None,
    };
    (ConnReader::Plain(rd), wr)
}

/// Splits a connection after its TLS handshake.
pub fn tls(stream: TlsStream<TcpStream>) -> (ConnReader, ConnWriter) {
    let fd = stream.get_ref().0.as_raw_fd();
    let (rd, wr) = tokio::io::split(stream);
    let wr = ConnWriter {
        base: BaseWriter::Tls(wr, fd),
        ws: None,
    };
    (ConnReader::Tls(rd), wr)
}

impl AsyncRead for ConnReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ConnReader::Plain(r) => Pin::new(r).poll_read(cx, buf),
            ConnReader::Tls(r) => Pin::new(r).poll_read(cx, buf),
            ConnReader::Ws(r) => r.poll_read(cx, buf),
        }
    }
}

/// The reading half of a WebSocket connection: hands out the NATS bytes the client's
/// frames carry; pings and the close are answered through the connection's control
/// queue (the writer sends them).
pub struct WsReader {
    /// The socket underneath.
    inner: ConnReader,
    /// Frame state across reads.
    decoder: Decoder,
    /// Raw bytes read from the socket.
    raw: Box<[u8]>,
    /// Decoded bytes not yet handed out, from `pos` on.
    ready: Vec<u8>,
    pos: usize,
    /// Control frames found by the last decode.
    replies: Vec<Reply>,
    /// Where control answers go.
    conn: Arc<ClientConn>,
}

impl WsReader {
    /// Reads WebSocket frames from `inner` for `conn`.
    /// `decoder` carries what the upgrade negotiated (masking, compression).
    pub fn wrap(inner: ConnReader, conn: Arc<ClientConn>, decoder: Decoder) -> ConnReader {
        ConnReader::Ws(Box::new(WsReader {
            inner,
            decoder,
            raw: vec![0u8; 32 * 1024].into_boxed_slice(),
            ready: Vec::new(),
            pos: 0,
            replies: Vec::new(),
            conn,
        }))
    }

    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.pos < self.ready.len() {
                let n = buf.remaining().min(self.ready.len() - self.pos);
                buf.put_slice(&self.ready[self.pos..self.pos + n]);
                self.pos += n;
                if self.pos == self.ready.len() {
                    self.ready.clear();
                    self.pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if self.decoder.closed() {
                // The client sent a close frame: end of stream.
                return Poll::Ready(Ok(()));
            }
            let mut rb = ReadBuf::new(&mut self.raw);
            match Pin::new(&mut self.inner).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
            let n = rb.filled().len();
            if n == 0 {
                return Poll::Ready(Ok(()));
            }
            let res = self
                .decoder
                .decode(&self.raw[..n], &mut self.ready, &mut self.replies);
            for r in self.replies.drain(..) {
                match r {
                    Reply::Pong(p) => self.conn.ws_pong(&p),
                    Reply::Close(p) => self.conn.ws_close(&p),
                }
            }
            if let Err(ProtocolError(why)) = res {
                let payload = websocket::close_payload(websocket::CLOSE_PROTOCOL_ERROR, &why);
                self.conn.ws_close(&payload);
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, why)));
            }
        }
    }
}

/// WebSocket framing of a writing half: every write goes out as one binary frame.
pub struct WsWriter {
    /// A frame header being built (reused).
    frame: Vec<u8>,
    /// permessage-deflate was negotiated: messages of at least [`WS_COMPRESS_MIN`] bytes
    /// go out compressed.
    deflate: bool,
    /// A browser: uncompressed data goes out in messages of at most
    /// [`WS_BROWSER_FRAME`] bytes.
    browser: bool,
    /// The connection (its control queue and close state).
    conn: Arc<ClientConn>,
}

/// Largest message sent to a browser (nats-server's `wsFrameSizeForBrowsers`).
const WS_BROWSER_FRAME: usize = 4096;

/// Smaller writes go out uncompressed even with permessage-deflate (nats-server's
/// threshold).
const WS_COMPRESS_MIN: usize = 64;

/// Up to this size a payload is copied behind its frame header (one write); above it the
/// header and the payload are written one after the other.
const WS_COPY_MAX: usize = 64 * 1024;

impl ConnWriter {
    /// Wraps `self` so that everything written goes out in WebSocket frames for `conn`,
    /// compressed when `deflate` was negotiated, in small frames for a `browser`.
    pub fn websocket(self, conn: Arc<ClientConn>, deflate: bool, browser: bool) -> ConnWriter {
        ConnWriter {
            base: self.base,
            ws: Some(Box::new(WsWriter {
                frame: Vec::new(),
                deflate,
                browser,
                conn,
            })),
        }
    }

    /// Writes all of `data` (in one WebSocket frame for a WebSocket client), waiting at
    /// most `deadline` in total for the peer to take it.
    pub async fn write_all(&mut self, data: &[u8], deadline: Duration) -> Result<(), WriteFail> {
        let Some(ws) = self.ws.as_mut() else {
            return self.base.write_all(data, deadline).await;
        };
        // A pong the reader queued goes first: it must not wait behind a backlog.
        let pong = ws.conn.ws.lock().pong.take();
        if let Some(p) = pong {
            ws.frame.clear();
            websocket::control_frame(websocket::OP_PONG, &p, &mut ws.frame);
            self.base.write_all(&ws.frame, deadline).await?;
        }
        if data.is_empty() {
            return Ok(());
        }
        ws.frame.clear();
        if ws.deflate && data.len() >= WS_COMPRESS_MIN {
            // One compressed message, no context carried over (as negotiated): raw
            // deflate, sync-flushed, without the final empty block's 00 00 ff ff.
            use std::io::Write;
            let mut enc =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
            if enc.write_all(data).is_ok() && enc.flush().is_ok() {
                let mut body = enc.get_ref().as_slice();
                if body.ends_with(&[0x00, 0x00, 0xff, 0xff]) {
                    body = &body[..body.len() - 4];
                }
                websocket::frame_header(websocket::OP_BINARY | 0x40, body.len(), &mut ws.frame);
                ws.frame.extend_from_slice(body);
                return self.base.write_all(&ws.frame, deadline).await;
            }
            ws.frame.clear();
        }
        if ws.browser && data.len() > WS_BROWSER_FRAME {
            // The NATS byte stream does not care where messages end: several small ones.
            for chunk in data.chunks(WS_BROWSER_FRAME) {
                websocket::frame_header(websocket::OP_BINARY, chunk.len(), &mut ws.frame);
                ws.frame.extend_from_slice(chunk);
            }
            return self.base.write_all(&ws.frame, deadline).await;
        }
        websocket::frame_header(websocket::OP_BINARY, data.len(), &mut ws.frame);
        if data.len() <= WS_COPY_MAX {
            ws.frame.extend_from_slice(data);
            return self.base.write_all(&ws.frame, deadline).await;
        }
        self.base.write_all(&ws.frame, deadline).await?;
        self.base.write_all(data, deadline).await
    }

    /// Whether this connection speaks WebSocket.
    pub fn is_websocket(&self) -> bool {
        self.ws.is_some()
    }

    /// Sends the WebSocket control frames the reader queued (nothing to do otherwise).
    pub async fn flush_control(&mut self, deadline: Duration) -> Result<(), WriteFail> {
        match self.ws.is_some() {
            true => self.write_all(&[], deadline).await,
            false => Ok(()),
        }
    }

    /// Ends the connection, closed for `reason`: a WebSocket client gets its close frame
    /// and a TLS session says goodbye first (best effort, briefly), then the socket is
    /// shut down both ways, which also ends the reader's pending read.
    pub async fn shutdown(&mut self, reason: CloseReason) {
        let brief = Duration::from_millis(100);
        if let Some(ws) = self.ws.as_mut() {
            // One close frame, after all data: the reader's choice (the answer to the
            // client's close, or a protocol error), else the status for `reason`.
            let chosen = ws.conn.ws.lock().close.take();
            let payload = chosen.unwrap_or_else(|| {
                websocket::close_payload(websocket::close_status(reason), reason.as_str())
            });
            ws.frame.clear();
            websocket::control_frame(websocket::OP_CLOSE, &payload, &mut ws.frame);
            let frame = std::mem::take(&mut ws.frame);
            let _ = self.base.write_all(&frame, brief).await;
        }
        let fd = match &mut self.base {
            BaseWriter::Plain(wr) => wr.as_ref().as_raw_fd(),
            BaseWriter::Tls(wr, fd) => {
                let _ = tokio::time::timeout(brief, wr.shutdown()).await;
                *fd
            }
        };
        // SAFETY: the descriptor belongs to the socket this writer keeps open (the fd
        // stays valid until both halves drop); no memory of ours is passed.
        unsafe {
            libc::shutdown(fd, libc::SHUT_RDWR);
        }
    }
}

impl BaseWriter {
    /// Writes all of `data`, waiting at most `deadline` in total for the peer to take it.
    pub async fn write_all(
        &mut self,
        mut data: &[u8],
        deadline: Duration,
    ) -> Result<(), WriteFail> {
        match self {
            BaseWriter::Plain(wr) => {
                let mut until: Option<Instant> = None;
                while !data.is_empty() {
                    match wr.try_write(data) {
                        Ok(0) => return Err(WriteFail::Io),
                        Ok(n) => data = &data[n..],
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            let at = *until.get_or_insert_with(|| Instant::now() + deadline);
                            match tokio::time::timeout_at(at, wr.writable()).await {
                                Ok(Ok(())) => {}
                                Ok(Err(_)) => return Err(WriteFail::Io),
                                Err(_) => return Err(WriteFail::Deadline),
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => return Err(WriteFail::Io),
                    }
                }
                Ok(())
            }
            BaseWriter::Tls(wr, _) => {
                let write = async {
                    wr.write_all(data).await?;
                    wr.flush().await
                };
                match tokio::time::timeout(deadline, write).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(_)) => Err(WriteFail::Io),
                    Err(_) => Err(WriteFail::Deadline),
                }
            }
        }
    }
}
