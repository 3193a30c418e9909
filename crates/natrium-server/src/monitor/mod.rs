//! HTTP monitoring (`-m PORT`): `/varz`, `/connz`, `/subsz`, `/accountz`, `/healthz` and
//! the index page, with nats-server's field names, formats and error texts, so the
//! dashboards, exporters and scripts written for nats-server keep working unchanged.
//!
//! Why it is shaped this way:
//! - Every answer is built from a snapshot of [`ServerShared`] taken when the request
//!   arrives; nothing here holds a lock across an await or while formatting, so a slow
//!   HTTP client never slows message routing.
//! - State that exists only for monitoring (the per-path request counters and the CPU
//!   sampler) lives in [`Monitor`], one per listener, not in the server.
//! - nats-server's output is Go's `encoding/json`; [`json`] reproduces it byte for byte
//!   and [`format`](mod@format) reproduces Go's duration/time/float texts.
//!
//! Modules: [`endpoints`] routes, one module per endpoint builds its body ([`varz`],
//! [`connz`], [`subsz`], [`accountz`], [`healthz`], [`root`]), [`query`] decodes
//! parameters with Go's rules and error texts, [`process`] reads memory/CPU figures.

pub mod accountz;
pub mod connz;
pub mod endpoints;
pub mod format;
pub mod healthz;
pub mod json;
pub mod jsz;
pub mod process;
pub mod query;
pub mod root;
pub mod subsz;
pub mod varz;

use crate::info;
use crate::server::{ServerShared, StartError};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{ACCESS_CONTROL_ALLOW_ORIGIN, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

/// Monitoring state for one server: the server, plus what only monitoring keeps.
#[derive(Debug)]
pub struct Monitor {
    /// The monitored server (which keeps the request counters, `http_req_stats`).
    server: Arc<ServerShared>,
    /// Whether requests answered through this instance count in `http_req_stats`: the
    /// HTTP listener's do, `$SYS` requests do not (nats-server counts HTTP only).
    counting: bool,
    /// CPU usage over the last sampling window.
    cpu: process::CpuSampler,
}

impl Monitor {
    /// Monitoring state for `server`.
    pub fn new(server: Arc<ServerShared>) -> Self {
        Monitor {
            server,
            counting: true,
            cpu: process::CpuSampler::new(),
        }
    }

    /// Monitoring state for answering `$SYS` requests: reads the HTTP counters, adds
    /// nothing to them.
    pub fn for_system(server: Arc<ServerShared>) -> Self {
        Monitor {
            counting: false,
            ..Monitor::new(server)
        }
    }

    /// The monitored server.
    pub fn server(&self) -> &Arc<ServerShared> {
        &self.server
    }

    /// Answer one request: `path` decoded, `raw_query` as received.
    pub fn handle(&self, path: &str, raw_query: &str) -> Reply {
        endpoints::dispatch(self, path, raw_query)
    }

    /// Count a request to `path` in `http_req_stats`.
    pub fn count(&self, path: &'static str) {
        if self.counting {
            *self.server.http_req_stats.lock().entry(path).or_insert(0) += 1;
        }
    }

    /// The request counters, sorted by path (Go sorts map keys when encoding).
    pub fn http_req_stats(&self) -> BTreeMap<String, u64> {
        self.server
            .http_req_stats
            .lock()
            .iter()
            .map(|(k, v)| ((*k).to_string(), *v))
            .collect()
    }

    /// CPU use in percent over the last window.
    pub fn cpu_percent(&self) -> f64 {
        self.cpu.percent()
    }
}

/// A running monitoring listener.
#[derive(Debug)]
pub struct MonitorHandle {
    /// Bound address.
    pub addr: SocketAddr,
    /// The monitoring state the listener answers from.
    pub monitor: Arc<Monitor>,
    /// The accept loop.
    task: tokio::task::JoinHandle<()>,
}

impl MonitorHandle {
    /// Stop listening.
    pub fn stop(self) {
        self.task.abort();
    }
}

/// Start the monitoring listener if `http_port` (or, with TLS, `https_port`) is set. `-1`
/// picks a random port.
pub async fn start(server: Arc<ServerShared>) -> Result<Option<MonitorHandle>, StartError> {
    let opts = server.opts();
    // HTTPS only when no plain HTTP port is set (nats-server refuses both at once).
    let (wanted, secure) = match (opts.http_port, opts.https_port) {
        (0, 0) => return Ok(None),
        (0, p) => (p, true),
        (p, _) => (p, false),
    };
    let host = opts.http_host.clone().unwrap_or_else(|| opts.host.clone());
    let (listener, addr) = crate::server::bind_listener(&host, wanted).await?;
    info!(
        server.log,
        "Starting {} monitor on {}:{}",
        if secure { "https" } else { "http" },
        host,
        addr.port()
    );
    let monitor = Arc::new(Monitor::new(server));
    let mon = monitor.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Usually out of file descriptors: back off instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            };
            let mon = mon.clone();
            let tls = if secure { mon.server().tls() } else { None };
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let mon = mon.clone();
                    async move { Ok::<_, Infallible>(route(&mon, &req)) }
                });
                if !secure {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                    return;
                }
                // The certificate in force now (a reload may have replaced it).
                let Some(tls) = tls else {
                    return;
                };
                if let Ok(stream) = tls.accept_https(stream).await {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                }
            });
        }
    });
    Ok(Some(MonitorHandle {
        addr,
        monitor,
        task,
    }))
}

/// A response body, status and the headers nats-server sends with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Whether to send `Access-Control-Allow-Origin: *` (JSON answers only, as
    /// nats-server).
    pub cors: bool,
    /// Whether to send `X-Content-Type-Options: nosniff` (Go's 404 page does).
    pub nosniff: bool,
    /// Body.
    pub body: String,
}

impl Reply {
    /// 200 with JSON.
    pub fn json(body: String) -> Self {
        Reply::json_status(StatusCode::OK, body)
    }

    /// JSON with a chosen status (`/healthz`).
    pub fn json_status(status: StatusCode, body: String) -> Self {
        Reply {
            status,
            content_type: "application/json",
            cors: true,
            nosniff: false,
            body,
        }
    }

    /// 400 with plain text, as nats-server answers bad query parameters.
    pub fn bad_request(body: String) -> Self {
        Reply::text(StatusCode::BAD_REQUEST, body)
    }

    /// An error status with plain text.
    pub fn text(status: StatusCode, body: String) -> Self {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            cors: false,
            nosniff: false,
            body,
        }
    }

    /// 500 for an answer that could not be encoded (not expected to happen).
    pub fn internal(err: impl std::fmt::Display) -> Self {
        Reply::text(StatusCode::INTERNAL_SERVER_ERROR, err.to_string())
    }

    /// Go's `http.NotFound`.
    pub fn not_found() -> Self {
        Reply {
            nosniff: true,
            ..Reply::text(StatusCode::NOT_FOUND, "404 page not found\n".to_string())
        }
    }

    /// 200 with the HTML index page.
    pub fn html(body: String) -> Self {
        Reply {
            status: StatusCode::OK,
            content_type: "text/html; charset=utf-8",
            cors: false,
            nosniff: false,
            body,
        }
    }
}

/// Turn a request into a response.
fn route(mon: &Monitor, req: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let raw_path = req.uri().path();
    // Go routes on the decoded path; an undecodable one cannot match any endpoint.
    let path = query::unescape(raw_path, false).unwrap_or_else(|| raw_path.to_string());
    let reply = mon.handle(&path, req.uri().query().unwrap_or(""));
    let mut resp = Response::new(Full::new(Bytes::from(reply.body)));
    *resp.status_mut() = reply.status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    if reply.cors {
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    }
    if reply.nosniff {
        h.insert(
            hyper::header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
    }
    resp
}
