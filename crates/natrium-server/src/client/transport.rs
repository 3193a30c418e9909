//! A client connection's socket, plain TCP or TLS, as one reader and one writer half.
//!
//! Why an enum and not a boxed trait object: the plain path is the hot one and keeps its
//! non-blocking `try_write` (a write that fits the socket buffer arms no timer and no
//! waker); TLS goes through rustls' `AsyncWrite`. One `match` per read or write is all the
//! plain path pays.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
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
}

/// The writing half.
pub enum ConnWriter {
    /// Plain TCP.
    Plain(OwnedWriteHalf),
    /// TLS, with the socket's descriptor for the final `shutdown`.
    Tls(WriteHalf<TlsStream<TcpStream>>, RawFd),
}

/// Splits a plain connection.
pub fn plain(stream: TcpStream) -> (ConnReader, ConnWriter) {
    let (rd, wr) = stream.into_split();
    (ConnReader::Plain(rd), ConnWriter::Plain(wr))
}

/// Splits a connection after its TLS handshake.
pub fn tls(stream: TlsStream<TcpStream>) -> (ConnReader, ConnWriter) {
    let fd = stream.get_ref().0.as_raw_fd();
    let (rd, wr) = tokio::io::split(stream);
    (ConnReader::Tls(rd), ConnWriter::Tls(wr, fd))
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
        }
    }
}

impl ConnWriter {
    /// Writes all of `data`, waiting at most `deadline` in total for the peer to take it.
    pub async fn write_all(
        &mut self,
        mut data: &[u8],
        deadline: Duration,
    ) -> Result<(), WriteFail> {
        match self {
            ConnWriter::Plain(wr) => {
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
            ConnWriter::Tls(wr, _) => {
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

    /// Ends the connection: a TLS session says goodbye first (best effort, briefly), then
    /// the socket is shut down both ways, which also ends the reader's pending read.
    pub async fn shutdown(&mut self) {
        let fd = match self {
            ConnWriter::Plain(wr) => wr.as_ref().as_raw_fd(),
            ConnWriter::Tls(wr, fd) => {
                let _ = tokio::time::timeout(Duration::from_millis(100), wr.shutdown()).await;
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
