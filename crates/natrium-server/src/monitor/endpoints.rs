//! Routing: from a request path and query string to an endpoint and its [`Reply`].
//!
//! nats-server registers each endpoint at `path.Join(base, "/varz")` etc. on Go's
//! `ServeMux`, with the index page at the base path itself, and counts each request in
//! `http_req_stats` under the endpoint's path without the base. Where in a handler the
//! count happens matters to anyone reconciling the counters, so it follows nats-server:
//! `/connz` counts only requests whose parameters decoded, every other endpoint counts
//! every request, and unknown paths count nowhere. Handlers never block: each builds its
//! answer from a snapshot of the server's state.

use super::accountz::accountz;
use super::connz::{ConnzOptions, connz};
use super::format::go_quote;
use super::healthz::{HealthzOptions, healthz};
use super::json::{to_compact, to_pretty};
use super::query::Query;
use super::subsz::{SubszOptions, subsz};
use super::varz::varz;
use super::{Monitor, Reply, root};
use crate::warn;
use serde::Serialize;

/// `http_req_stats` key of the index page.
pub const ROOT_PATH: &str = "/";
/// `http_req_stats` key and path of `/varz`.
pub const VARZ_PATH: &str = "/varz";
/// `http_req_stats` key and path of `/connz`.
pub const CONNZ_PATH: &str = "/connz";
/// `http_req_stats` key and path of `/subsz` (also counts the alias).
pub const SUBSZ_PATH: &str = "/subsz";
/// Backwards-compatible alias of `/subsz`.
pub const SUBSCRIPTIONSZ_PATH: &str = "/subscriptionsz";
/// `http_req_stats` key and path of `/accountz`.
pub const ACCOUNTZ_PATH: &str = "/accountz";
/// `http_req_stats` key and path of `/healthz`.
pub const HEALTHZ_PATH: &str = "/healthz";
/// Prometheus text exposition of JetStream usage against limits (natrium only).
pub const METRICS_PATH: &str = "/metrics";
/// `http_req_stats` key and path of `/jsz`.
pub const JSZ_PATH: &str = "/jsz";
/// `http_req_stats` key and path of `/accstatz`.
pub const ACCSTATZ_PATH: &str = "/accstatz";
/// `http_req_stats` key and path of `/routez` (no routes: natrium is standalone).
pub const ROUTEZ_PATH: &str = "/routez";
/// `http_req_stats` key and path of `/gatewayz` (no gateways).
pub const GATEWAYZ_PATH: &str = "/gatewayz";
/// `http_req_stats` key and path of `/leafz` (no leaf nodes).
pub const LEAFZ_PATH: &str = "/leafz";

/// `/routez` of a server without routes, as nats-server answers it standalone (metrics
/// scrapers configured for it get an empty answer instead of an error).
#[derive(Serialize)]
struct Routez {
    server_id: String,
    server_name: String,
    now: super::json::GoTime,
    num_routes: u64,
    routes: [(); 0],
}

/// `/gatewayz` of a server without gateways.
#[derive(Serialize)]
struct Gatewayz {
    server_id: String,
    now: super::json::GoTime,
    outbound_gateways: std::collections::BTreeMap<String, ()>,
    inbound_gateways: std::collections::BTreeMap<String, ()>,
}

/// `/leafz` of a server without leaf nodes.
#[derive(Serialize)]
struct Leafz {
    server_id: String,
    now: super::json::GoTime,
    leafnodes: u64,
    leafs: [(); 0],
}

/// nats-server's `normalizeBasePath`: `/` when empty, otherwise with a leading `/` and
/// cleaned like Go's `path.Clean` (no trailing `/`, no `.`/`..`/empty segments).
pub fn normalize_base_path(p: &str) -> String {
    if p.is_empty() {
        return "/".to_string();
    }
    let mut segs: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segs.pop();
            }
            s => segs.push(s),
        }
    }
    format!("/{}", segs.join("/"))
}

/// Go's `path.Join(base, p)` for a normalised `base` and an absolute endpoint path.
pub fn join_base(base: &str, p: &str) -> String {
    if base == "/" {
        p.to_string()
    } else {
        format!("{base}{p}")
    }
}

/// Route a request. `path` is the decoded URL path, `raw_query` the undecoded query.
pub fn dispatch(mon: &Monitor, path: &str, raw_query: &str) -> Reply {
    let base = normalize_base_path(&mon.server().opts().http_base_path);
    if path == base {
        mon.count(ROOT_PATH);
        return Reply::html(root::page(&base));
    }
    let rel = if base == "/" {
        Some(path)
    } else {
        path.strip_prefix(base.as_str())
    };
    let q = Query::parse(raw_query);
    match rel {
        Some(VARZ_PATH) => {
            mon.count(VARZ_PATH);
            pretty(&varz(mon))
        }
        Some(CONNZ_PATH) => handle_connz(mon, &q),
        Some(SUBSZ_PATH | SUBSCRIPTIONSZ_PATH) => handle_subsz(mon, &q),
        Some(ACCOUNTZ_PATH) => {
            mon.count(ACCOUNTZ_PATH);
            match accountz(mon, q.get("acc")) {
                Ok(a) => pretty(&a),
                Err(e) => Reply::bad_request(e.to_string()),
            }
        }
        Some(HEALTHZ_PATH) => handle_healthz(mon, &q),
        Some(METRICS_PATH) => {
            mon.count(METRICS_PATH);
            let body = match mon.server().js.get() {
                Some(js) => crate::jetstream::limits::prometheus(js),
                None => "# JetStream is not enabled\n".to_string(),
            };
            Reply {
                status: hyper::StatusCode::OK,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                cors: false,
                nosniff: false,
                body,
            }
        }
        Some(ACCSTATZ_PATH) => {
            mon.count(ACCSTATZ_PATH);
            match accstatz(mon, &q) {
                Ok(a) => pretty(&a),
                Err(e) => Reply::bad_request(e),
            }
        }
        Some(p @ (ROUTEZ_PATH | GATEWAYZ_PATH | LEAFZ_PATH)) => {
            let s = mon.server();
            let now = super::json::GoTime(std::time::SystemTime::now());
            match p {
                ROUTEZ_PATH => {
                    mon.count(ROUTEZ_PATH);
                    pretty(&Routez {
                        server_id: s.server_id.clone(),
                        server_name: s.server_name.clone(),
                        now,
                        num_routes: 0,
                        routes: [],
                    })
                }
                GATEWAYZ_PATH => {
                    mon.count(GATEWAYZ_PATH);
                    pretty(&Gatewayz {
                        server_id: s.server_id.clone(),
                        now,
                        outbound_gateways: Default::default(),
                        inbound_gateways: Default::default(),
                    })
                }
                _ => {
                    mon.count(LEAFZ_PATH);
                    pretty(&Leafz {
                        server_id: s.server_id.clone(),
                        now,
                        leafnodes: 0,
                        leafs: [],
                    })
                }
            }
        }
        Some(JSZ_PATH) => {
            mon.count(JSZ_PATH);
            match super::jsz::jsz(mon, &q) {
                Ok(j) => pretty(&j),
                Err(e) => Reply::bad_request(e),
            }
        }
        _ => Reply::not_found(),
    }
}

/// The `/accstatz` body.
#[derive(Serialize)]
struct Accstatz {
    server_id: String,
    now: super::json::GoTime,
    account_statz: Vec<crate::system::AccountStat>,
}

/// `/accstatz`: per-account traffic, as nats-server's: the accounts with connections,
/// all of them with `unused=1`, or those named by `accounts=A,B` (or `acc=A`).
fn accstatz(mon: &Monitor, q: &Query) -> Result<Accstatz, String> {
    let server = mon.server();
    let named: Vec<&str> = [q.get("accounts"), q.get("acc")]
        .into_iter()
        .flat_map(|v| v.split(','))
        .filter(|n| !n.is_empty())
        .collect();
    let unused = q.bool("unused").map_err(|e| e.to_string())?;
    let mut accounts = server.accounts();
    accounts.sort_by(|a, b| a.name.cmp(&b.name));
    let account_statz = accounts
        .iter()
        .filter(|a| {
            if named.is_empty() {
                unused || a.num_connections() > 0
            } else {
                // Named accounts are listed only with connections too, unless unused
                // ones are asked for (nats-server's `AccountStatz`).
                named.contains(&a.name.as_str()) && (unused || a.num_connections() > 0)
            }
        })
        .map(|a| crate::system::account_stat(server, a))
        .collect();
    Ok(Accstatz {
        server_id: server.server_id.clone(),
        now: super::json::GoTime(std::time::SystemTime::now()),
        account_statz,
    })
}

/// `/connz`: decode, count, build.
fn handle_connz(mon: &Monitor, q: &Query) -> Reply {
    let opts = match ConnzOptions::from_query(q) {
        Ok(o) => o,
        Err(e) => return Reply::bad_request(e.to_string()),
    };
    mon.count(CONNZ_PATH);
    match connz(mon, &opts) {
        Ok(c) => pretty(&c),
        Err(e) => Reply::bad_request(e.to_string()),
    }
}

/// `/subsz`: count, decode, build.
fn handle_subsz(mon: &Monitor, q: &Query) -> Reply {
    mon.count(SUBSZ_PATH);
    let opts = match SubszOptions::from_query(q) {
        Ok(o) => o,
        Err(e) => return Reply::bad_request(e.to_string()),
    };
    match subsz(mon, &opts) {
        Ok(s) => pretty(&s),
        Err(e) => Reply::bad_request(e.to_string()),
    }
}

/// `/healthz`: count, decode, evaluate; failures are logged as nats-server logs them.
fn handle_healthz(mon: &Monitor, q: &Query) -> Reply {
    mon.count(HEALTHZ_PATH);
    let opts = match HealthzOptions::from_query(q) {
        Ok(o) => o,
        Err(e) => return Reply::bad_request(e.to_string()),
    };
    let log = &mon.server().log;
    if opts.js_enabled {
        warn!(
            log,
            "Healthcheck: js-enabled deprecated, use js-enabled-only instead"
        );
    }
    let mut status = healthz(&opts);
    // Lame duck (or shutting down): the client listener is closed, so the server is not
    // ready for connections, as nats-server's probe reports (HTTP 500).
    if status.code == hyper::StatusCode::OK
        && (mon.server().in_lame_duck() || mon.server().is_shutting_down())
    {
        status = super::healthz::not_ready(opts.details);
    }
    // The assets a probe names (nats-server checks them unless told to check less).
    if status.code == hyper::StatusCode::OK
        && !opts.account.is_empty()
        && !(opts.js_server_only || opts.js_enabled_only || opts.js_enabled || opts.js_meta_only)
        && let Some(js) = mon.server().js.get()
    {
        use super::healthz::Missing;
        let missing = match js.account(&opts.account) {
            None => Some(Missing::Account),
            Some(jsa) if !opts.stream.is_empty() => match jsa.stream(&opts.stream) {
                None => Some(Missing::Stream),
                Some(st) if !opts.consumer.is_empty() && st.consumer(&opts.consumer).is_none() => {
                    Some(Missing::Consumer)
                }
                Some(_) => None,
            },
            Some(_) => None,
        };
        if let Some(m) = missing {
            status = super::healthz::js_asset_status(&opts, m);
        }
    }
    if status.code == hyper::StatusCode::OK
        && !opts.js_server_only
        && let Some(js) = mon.server().js.get()
    {
        // Usage at or above 90% of a limit: still healthy, but say so before it bites.
        let rows = crate::jetstream::limits::usage_rows(js);
        for (row, text) in crate::jetstream::limits::warnings(&rows) {
            warn!(log, "Healthcheck warning: {}", text);
            status.warnings.push(super::healthz::HealthzError {
                kind: super::healthz::HealthzErrorType::Jetstream,
                account: row.account,
                stream: row.stream,
                consumer: String::new(),
                error: text,
            });
        }
    }
    if !status.error.is_empty() {
        warn!(log, "Healthcheck failed: {}", go_quote(&status.error));
    } else if !status.errors.is_empty() {
        warn!(log, "Healthcheck failed: {} errors", status.errors.len());
    }
    match to_compact(&status) {
        Ok(body) => Reply::json_status(status.code, body),
        Err(e) => Reply::internal(e),
    }
}

/// A 200 answer with `value` as indented JSON.
fn pretty<T: Serialize>(value: &T) -> Reply {
    match to_pretty(value) {
        Ok(body) => Reply::json(body),
        Err(e) => Reply::internal(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_paths_normalise_like_go() {
        assert_eq!(normalize_base_path(""), "/");
        assert_eq!(normalize_base_path("/"), "/");
        assert_eq!(normalize_base_path("mon"), "/mon");
        assert_eq!(normalize_base_path("/mon/"), "/mon");
        assert_eq!(normalize_base_path("//a/./b/../c/"), "/a/c");
        assert_eq!(join_base("/", "/varz"), "/varz");
        assert_eq!(join_base("/a/c", "/varz"), "/a/c/varz");
    }
}
