//! HTTP monitoring (`-m PORT`): `/varz`, `/connz`, `/subsz`, `/healthz` and friends, with
//! nats-server's field names, so dashboards and scripts written for it keep working.
//!
//! The listener is plain hyper over tokio: each request is answered from a snapshot of the
//! server's shared state; nothing here holds a lock across an await.

pub mod endpoints;

use crate::info;
use crate::server::{ServerShared, StartError};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// A running monitoring listener.
#[derive(Debug)]
pub struct MonitorHandle {
    /// Bound address.
    pub addr: SocketAddr,
    /// The accept loop.
    task: tokio::task::JoinHandle<()>,
}

impl MonitorHandle {
    /// Stop listening.
    pub fn stop(self) {
        self.task.abort();
    }
}

/// Start the monitoring listener if `http_port` is set. `-1` picks a random port.
pub async fn start(server: Arc<ServerShared>) -> Result<Option<MonitorHandle>, StartError> {
    let opts = server.opts();
    if opts.http_port == 0 {
        return Ok(None);
    }
    let host = opts.http_host.clone().unwrap_or_else(|| opts.host.clone());
    let port = if opts.http_port < 0 {
        0
    } else {
        opts.http_port
    };
    let bind = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let listener = TcpListener::bind(&bind)
        .await
        .map_err(|source| StartError::Listen {
            addr: bind.clone(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: bind.clone(),
        source,
    })?;
    info!(
        server.log,
        "Starting http monitor on {}:{}",
        host,
        addr.port()
    );
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let server = server.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let server = server.clone();
                    async move { Ok::<_, Infallible>(route(&server, &req)) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(Some(MonitorHandle { addr, task }))
}

/// A response body and status, before headers are added.
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// `application/json` or `text/plain` or `text/html`.
    pub content_type: &'static str,
    /// Body.
    pub body: String,
}

impl Reply {
    /// 200 with JSON.
    pub fn json(body: String) -> Self {
        Reply {
            status: StatusCode::OK,
            content_type: "application/json",
            body,
        }
    }

    /// An error status with plain text, as nats-server answers bad query parameters.
    pub fn text(status: StatusCode, body: String) -> Self {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            body,
        }
    }
}

fn route(
    server: &Arc<ServerShared>,
    req: &Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let base = server
        .opts()
        .http_base_path
        .trim_end_matches('/')
        .to_string();
    let path = req.uri().path();
    let path = path.strip_prefix(base.as_str()).unwrap_or(path);
    let query = req.uri().query().unwrap_or("");
    let reply = endpoints::dispatch(server, path, query);
    let mut resp = Response::new(Full::new(Bytes::from(reply.body)));
    *resp.status_mut() = reply.status;
    let h = resp.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(reply.content_type),
    );
    h.insert(
        hyper::header::ACCESS_CONTROL_ALLOW_ORIGIN,
        hyper::header::HeaderValue::from_static("*"),
    );
    resp
}
