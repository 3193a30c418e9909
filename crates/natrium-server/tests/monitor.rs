//! HTTP monitoring against an in-process server with real clients (async-nats), plus a
//! differential check of the JSON shapes against a real nats-server.
//!
//! The in-process tests check values: identities, counters, paging, sorting, filters,
//! error texts and request counting, as nats-server 2.15.1 produces them. The
//! differential test checks shape: with the same client workload on both servers, the
//! set of keys (recursively) and the JSON type of every value of `/varz`,
//! `/connz?subs=1`, `/connz?subs=detail&auth=1` and `/subsz?subs=1` must agree, and the
//! keys both print must come in the same order; the few known, documented differences
//! are in [`ALLOWED_DIFFERENCES`]. It needs the nats-server binary: `NATS_SERVER_BIN`,
//! or `nats-server` on `PATH`; without one it prints a notice and passes.

mod support;

use futures::StreamExt;
use natrium_server::logging::Logger;
use natrium_server::monitor::{self, MonitorHandle};
use natrium_server::options::Options;
use natrium_server::server::Server;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use support::roundtrip;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Upper bound for anything a test waits for.
const T: Duration = Duration::from_secs(5);

// ---- harness ---------------------------------------------------------------------------

/// A server with its monitoring listener.
struct Env {
    /// The server.
    server: Server,
    /// The monitoring listener.
    mon: MonitorHandle,
}

impl Env {
    /// A server without a system account, so counts are only what the test creates
    /// (the system account's internal subscriptions would show in `/subsz`).
    async fn start() -> Env {
        let mut o = Options {
            http_port: -1,
            ..Options::for_test()
        };
        o.accounts.no_system_account = true;
        Env::with(o).await
    }

    async fn with(opts: Options) -> Env {
        let server = Server::start(opts, Arc::new(Logger::null()))
            .await
            .expect("server starts");
        let mon = monitor::start(server.shared().clone())
            .await
            .expect("monitor starts")
            .expect("monitoring enabled");
        Env { server, mon }
    }

    fn url(&self) -> String {
        self.server.client_url()
    }

    async fn client(&self, name: &str) -> async_nats::Client {
        async_nats::ConnectOptions::new()
            .name(name)
            .connect(self.url())
            .await
            .expect("client connects")
    }

    async fn get(&self, path: &str) -> Resp {
        http_get(self.mon.addr, path).await
    }

    /// GET, expect 200 JSON, parse.
    async fn json(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert_eq!(r.header("content-type"), Some("application/json"), "{path}");
        serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{path}: {e}: {}", r.body))
    }

    /// Poll `path` until `pred` holds on its JSON; returns the last value.
    async fn json_until(&self, path: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + T;
        loop {
            let v = self.json(path).await;
            if pred(&v) {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{path} never satisfied the condition; last: {v:#}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// An HTTP response.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal HTTP/1.0 GET (the server closes after answering; bodies are not chunked).
async fn http_get(addr: SocketAddr, path: &str) -> Resp {
    let fut = async {
        let mut s = TcpStream::connect(addr).await.expect("connect to monitor");
        let req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        s.write_all(req.as_bytes()).await.expect("send request");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.expect("read response");
        raw
    };
    let raw = tokio::time::timeout(T, fut)
        .await
        .expect("HTTP answer in time");
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("header/body separator");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let resp = Resp {
        status,
        headers,
        body: body.to_string(),
    };
    assert!(
        resp.header("transfer-encoding").is_none(),
        "HTTP/1.0 answers must not be chunked"
    );
    resp
}

fn conns(v: &Value) -> &Vec<Value> {
    v["connections"].as_array().expect("connections array")
}

fn conn_named<'a>(v: &'a Value, name: &str) -> &'a Value {
    conns(v)
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no connection named {name} in {v:#}"))
}

/// Top-level keys of a pretty-printed object, in order.
fn top_keys(body: &str, indent: usize) -> Vec<String> {
    let prefix = format!("{}\"", " ".repeat(indent));
    let mut out: Vec<String> = Vec::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix(&prefix)
            && !rest.starts_with(' ')
            && let Some((key, _)) = rest.split_once("\": ")
            && !out.iter().any(|k| k == key)
        {
            out.push(key.to_string());
        }
    }
    out
}

// ---- /varz -----------------------------------------------------------------------------

/// nats-server 2.15.1's `/varz` keys for a standalone server without JetStream, in order
/// (`git_commit` and `system_account` left out: natrium has neither yet).
const VARZ_KEYS: &[&str] = &[
    "server_id",
    "server_name",
    "version",
    "proto",
    "go",
    "host",
    "port",
    "max_connections",
    "ping_interval",
    "ping_max",
    "http_host",
    "http_port",
    "http_base_path",
    "https_port",
    "auth_timeout",
    "max_control_line",
    "max_payload",
    "max_pending",
    "cluster",
    "gateway",
    "leaf",
    "mqtt",
    "websocket",
    "jetstream",
    "tls_timeout",
    "write_deadline",
    "start",
    "now",
    "uptime",
    "mem",
    "cores",
    "gomaxprocs",
    "cpu",
    "connections",
    "total_connections",
    "routes",
    "remotes",
    "leafnodes",
    "in_msgs",
    "in_bytes",
    "in_client_msgs",
    "in_client_bytes",
    "out_msgs",
    "out_bytes",
    "out_client_msgs",
    "out_client_bytes",
    "slow_consumers",
    "stale_connections",
    "stalled_clients",
    "subscriptions",
    "http_req_stats",
    "config_load_time",
    "config_digest",
    "feature_flags",
    "slow_consumer_stats",
    "stale_connection_stats",
    "disk_io_wait_stats",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn varz_reports_identity_config_and_counters() {
    let env = Env::start().await;
    let a = env.client("a").await;
    let mut sub = a.subscribe("v.>").await.unwrap();
    a.flush().await.unwrap();
    // Make sure the server has the SUB before another connection publishes.
    env.json_until("/subsz", |v| v["num_subscriptions"] == 1)
        .await;
    let b = env.client("b").await;
    for _ in 0..4 {
        b.publish("v.x", "12345".into()).await.unwrap();
    }
    b.flush().await.unwrap();
    for _ in 0..4 {
        tokio::time::timeout(T, sub.next()).await.unwrap().unwrap();
    }

    // Counters are published once per read batch: wait until they are.
    let before = env
        .json_until("/varz", |v| v["in_msgs"] == 4 && v["out_msgs"] == 4)
        .await;
    let polls = before["http_req_stats"]["/varz"].as_u64().unwrap();
    let r = env.get("/varz").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(top_keys(&r.body, 2), VARZ_KEYS);
    // Go's MarshalIndent layout and number formats.
    assert!(r.body.starts_with("{\n  \"server_id\": \""), "{}", r.body);
    assert!(r.body.contains("\n  \"auth_timeout\": 2,\n"), "{}", r.body);
    assert!(r.body.contains("\n  \"cluster\": {},\n"), "{}", r.body);
    assert!(r.body.contains("\n  \"jetstream\": {},\n"), "{}", r.body);

    let v: Value = serde_json::from_str(&r.body).unwrap();
    let shared = env.server.shared();
    assert_eq!(v["server_id"], shared.server_id.as_str());
    assert_eq!(v["server_name"], shared.server_id.as_str());
    assert_eq!(v["version"], "2.15.1");
    assert_eq!(v["proto"], 1);
    assert_eq!(v["host"], "127.0.0.1");
    assert_eq!(v["port"], env.server.client_addr().port());
    assert_eq!(v["http_host"], "127.0.0.1");
    assert_eq!(v["http_port"], -1);
    assert_eq!(v["ping_interval"], 120_000_000_000u64);
    assert_eq!(v["write_deadline"], 10_000_000_000u64);
    assert_eq!(v["max_payload"], 1_048_576);
    assert_eq!(v["max_pending"], 67_108_864);
    assert_eq!(v["max_connections"], 65_536);
    assert_eq!(v["connections"], 2);
    assert_eq!(v["total_connections"], 2);
    assert_eq!(v["in_msgs"], 4);
    assert_eq!(v["in_bytes"], 20);
    assert_eq!(v["in_client_msgs"], 4);
    assert_eq!(v["out_msgs"], 4);
    assert_eq!(v["out_client_bytes"], 20);
    assert_eq!(v["subscriptions"], 1);
    assert_eq!(v["http_req_stats"]["/varz"], polls + 1);
    assert_eq!(v["config_digest"], "");
    assert_eq!(v["feature_flags"]["js_raft_delete_range"], true);
    assert_eq!(v["slow_consumer_stats"]["clients"], 0);
    assert_eq!(v["disk_io_wait_stats"]["max_wait_time"], 0);
    assert!(v["mem"].as_i64().unwrap() > 0);
    assert!(v["cores"].as_u64().unwrap() >= 1);
    assert!(v["gomaxprocs"].as_u64().unwrap() >= 1);
    assert!(v["cpu"].as_f64().unwrap() >= 0.0);
    let uptime = v["uptime"].as_str().unwrap();
    assert!(
        uptime.ends_with('s')
            && uptime[..uptime.len() - 1]
                .chars()
                .all(|c| c.is_ascii_digit()),
        "{uptime}"
    );
    for t in ["start", "now", "config_load_time"] {
        let s = v[t].as_str().unwrap();
        assert!(
            s.ends_with('Z') && s.contains('T') && s.len() >= 20,
            "{t}: {s}"
        );
    }
    assert_eq!(v["start"], v["config_load_time"]);

    // Each request is counted.
    let v = env.json("/varz").await;
    assert_eq!(v["http_req_stats"]["/varz"], polls + 2);
    drop((a, b));
}

// ---- /connz ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connz_lists_pages_sorts_and_details() {
    let env = Env::start().await;
    let s = env.client("sub").await;
    let mut wild = s.subscribe("foo.>").await.unwrap();
    let _q1 = s.queue_subscribe("bar", "q1".into()).await.unwrap();
    let mut capped = s.subscribe("baz").await.unwrap();
    capped.unsubscribe_after(5).await.unwrap();
    s.flush().await.unwrap();
    env.json_until("/subsz", |v| v["num_subscriptions"] == 3)
        .await;
    let p = env.client("pub").await;
    for _ in 0..3 {
        p.publish("foo.x", "hi".into()).await.unwrap();
    }
    p.publish("bar", "q".into()).await.unwrap();
    p.flush().await.unwrap();
    for _ in 0..3 {
        tokio::time::timeout(T, wild.next()).await.unwrap().unwrap();
    }
    let sub_cid = s.server_info().client_id;
    let pub_cid = p.server_info().client_id;

    let v = env
        .json_until("/connz", |v| {
            conn_named(v, "sub")["out_msgs"] == 4 && conn_named(v, "pub")["in_msgs"] == 4
        })
        .await;
    assert_eq!(v["server_id"], env.server.shared().server_id.as_str());
    assert_eq!(v["num_connections"], 2);
    assert_eq!(v["total"], 2);
    assert_eq!(v["offset"], 0);
    assert_eq!(v["limit"], 1024);
    let cids: Vec<u64> = conns(&v)
        .iter()
        .map(|c| c["cid"].as_u64().unwrap())
        .collect();
    assert_eq!(cids, vec![sub_cid, pub_cid], "cid order by default");
    let c = conn_named(&v, "sub");
    assert_eq!(c["kind"], "Client");
    assert_eq!(c["type"], "nats");
    assert_eq!(c["ip"], "127.0.0.1");
    assert_eq!(c["lang"], "rust");
    assert_eq!(c["subscriptions"], 3);
    assert_eq!(c["out_bytes"], 7);
    assert_eq!(c["pending_bytes"], 0);
    assert!(c["rtt"].is_string() && c["uptime"].is_string() && c["idle"].is_string());
    assert!(c.get("subscriptions_list").is_none());
    assert!(c.get("stop").is_none() && c.get("reason").is_none());
    let pc = conn_named(&v, "pub");
    assert_eq!(pc["in_msgs"], 4);
    assert_eq!(pc["in_bytes"], 7);
    assert_eq!(pc["subscriptions"], 0);

    // subs=1: subjects.
    let v = env.json("/connz?subs=1").await;
    let mut list: Vec<&str> = conn_named(&v, "sub")["subscriptions_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    list.sort_unstable();
    assert_eq!(list, vec!["bar", "baz", "foo.>"]);
    assert!(conn_named(&v, "pub").get("subscriptions_list").is_none());

    // subs=detail: sid, queue group, delivered count, auto-unsubscribe max.
    let v = env.json("/connz?subs=detail").await;
    let details = conn_named(&v, "sub")["subscriptions_list_detail"]
        .as_array()
        .unwrap()
        .clone();
    let foo_d = details.iter().find(|d| d["subject"] == "foo.>").unwrap();
    assert_eq!(foo_d["msgs"], 3);
    assert_eq!(foo_d["cid"], sub_cid);
    assert!(foo_d.get("qgroup").is_none() && foo_d.get("account").is_none());
    let bar_d = details.iter().find(|d| d["subject"] == "bar").unwrap();
    assert_eq!(bar_d["qgroup"], "q1");
    assert_eq!(bar_d["msgs"], 1);
    let baz_d = details.iter().find(|d| d["subject"] == "baz").unwrap();
    assert_eq!(baz_d["max"], 5);

    // Sorting.
    let first = |v: &Value| conns(v)[0]["name"].as_str().unwrap().to_string();
    assert_eq!(first(&env.json("/connz?sort=msgs_to").await), "sub");
    assert_eq!(first(&env.json("/connz?sort=msgs_from").await), "pub");
    assert_eq!(first(&env.json("/connz?sort=bytes_from").await), "pub");
    assert_eq!(first(&env.json("/connz?sort=subs").await), "sub");
    assert_eq!(first(&env.json("/connz?sort=start").await), "sub");
    // Ascending uptime: the newest connection first.
    assert_eq!(first(&env.json("/connz?sort=uptime").await), "pub");

    // Paging.
    let v = env.json("/connz?offset=1&limit=1").await;
    assert_eq!(
        (v["num_connections"].clone(), v["total"].clone()),
        (1.into(), 2.into())
    );
    assert_eq!(
        (v["offset"].clone(), v["limit"].clone()),
        (1.into(), 1.into())
    );
    assert_eq!(conns(&v)[0]["cid"], pub_cid);
    let v = env.json("/connz?offset=5").await;
    assert_eq!(v["num_connections"], 0);
    assert_eq!(conns(&v).len(), 0);
    let v = env.json("/connz?offset=-3&limit=0").await;
    assert_eq!(
        (v["offset"].clone(), v["limit"].clone()),
        (0.into(), 1024.into())
    );

    // cid forces limit 1; total stays the open count.
    let v = env.json(&format!("/connz?cid={pub_cid}")).await;
    assert_eq!(v["limit"], 1);
    assert_eq!(v["total"], 2);
    assert_eq!(conns(&v).len(), 1);
    assert_eq!(conns(&v)[0]["name"], "pub");
    let v = env.json("/connz?cid=999").await;
    assert_eq!(v["num_connections"], 0);
    assert_eq!(conns(&v).len(), 0);

    // auth=1 in the global account: name_tag only.
    let v = env.json("/connz?auth=1").await;
    let c = conn_named(&v, "sub");
    assert_eq!(c["name_tag"], "$G");
    assert!(c.get("account").is_none() && c.get("authorized_user").is_none());
    let v = env.json("/connz?acc=$G").await;
    assert_eq!(v["num_connections"], 2);
    drop((s, p));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connz_closed_connections_and_filters() {
    let env = Env::start().await;
    let bob = async_nats::ConnectOptions::new()
        .name("bob-conn")
        .user_and_password("bob".into(), "secret".into())
        .connect(env.url())
        .await
        .unwrap();
    let other = env.client("other").await;
    bob.publish("x", "12".into()).await.unwrap();
    bob.flush().await.unwrap();
    let bob_cid = bob.server_info().client_id;

    // The user filter applies before paging but after `total`.
    let v = env.json("/connz?user=bob&auth=1").await;
    assert_eq!(v["total"], 2);
    assert_eq!(v["num_connections"], 1);
    assert_eq!(conns(&v)[0]["authorized_user"], "bob");
    let v = env.json("/connz?user=alice").await;
    assert_eq!(
        (v["total"].clone(), v["num_connections"].clone()),
        (2.into(), 0.into())
    );

    bob.drain().await.unwrap();
    drop(bob);
    let v = env
        .json_until("/connz?state=closed", |v| {
            conns(v).iter().any(|c| c["cid"] == bob_cid)
        })
        .await;
    let c = &conns(&v)[0];
    assert_eq!(c["cid"], bob_cid);
    assert_eq!(c["name"], "bob-conn");
    // A client that closes with unread bytes in its socket resets the connection, which
    // nats-server (and we) report as a read error rather than a clean close.
    assert!(
        c["reason"] == "Client Closed" || c["reason"] == "Read Error",
        "{}",
        c["reason"]
    );
    assert_eq!(c["in_msgs"], 1);
    assert_eq!(c["in_bytes"], 2);
    assert!(c["stop"].as_str().unwrap().ends_with('Z'));
    assert_eq!(v["total"], 1);

    let v = env.json("/connz?state=all").await;
    assert_eq!(v["total"], 2);
    let v = env.json("/connz?state=ANY&sort=cid").await;
    assert_eq!(conns(&v).len(), 2);
    let v = env.json("/connz").await;
    assert_eq!(v["total"], 1);
    assert_eq!(conns(&v)[0]["name"], "other");
    let v = env.json("/connz?state=closed&user=bob&auth=1").await;
    assert_eq!(conns(&v)[0]["authorized_user"], "bob");
    assert!(
        conns(&v)[0].get("name_tag").is_none(),
        "closed $G conns have no tag"
    );
    let v = env
        .json(&format!("/connz?state=closed&cid={bob_cid}"))
        .await;
    assert_eq!(conns(&v).len(), 1);
    let v = env.json("/connz?state=closed&sort=stop").await;
    assert_eq!(conns(&v)[0]["cid"], bob_cid);
    let v = env.json("/connz?state=closed&sort=reason").await;
    assert_eq!(conns(&v).len(), 1);

    // nats-server records no account for closed global-account connections, so an
    // account filter never matches them.
    let v = env.json("/connz?state=closed&acc=$G").await;
    assert_eq!(
        (v["total"].clone(), v["num_connections"].clone()),
        (0.into(), 0.into())
    );
    // An unknown account: empty id and a null list, as nats-server answers.
    let r = env.get("/connz?acc=nope").await;
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["server_id"], "");
    assert!(v["connections"].is_null());
    assert!(r.body.contains("\"connections\": null"));
    drop(other);
}

/// `last_activity` moves with publishes, subscriptions and deliveries, not with PINGs
/// (nats-server's `c.last`), and a closed connection keeps it and its subscriptions
/// (with their account, as nats-server lists them after a close).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connz_last_activity_ignores_pings_and_closed_connections_keep_subscriptions() {
    let env = Env::start().await;
    let port = env
        .server
        .client_url()
        .rsplit(':')
        .next()
        .unwrap()
        .parse::<u16>()
        .unwrap();
    // A raw client, so nothing but what the test sends reaches the server (a library
    // client would unsubscribe on its own before closing).
    let s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (rd, mut wr) = s.into_split();
    let mut rd = BufReader::new(rd);
    let mut line = String::new();
    rd.read_line(&mut line).await.unwrap(); // INFO
    let pong = async |rd: &mut BufReader<tokio::net::tcp::OwnedReadHalf>| loop {
        let mut l = String::new();
        tokio::time::timeout(T, rd.read_line(&mut l))
            .await
            .unwrap()
            .unwrap();
        if l.starts_with("PONG") {
            break;
        }
    };
    wr.write_all(
        b"CONNECT {\"verbose\":false,\"name\":\"pinger\"}\r\nSUB a.b 1\r\nPUB x 1\r\n1\r\nPING\r\n",
    )
    .await
    .unwrap();
    pong(&mut rd).await;
    let find = |v: &Value| {
        conns(v)
            .iter()
            .find(|x| x["name"] == "pinger")
            .cloned()
            .unwrap_or_else(|| panic!("no pinger in {v}"))
    };
    // Wall times are derived from a monotonic clock per request: equal within a
    // millisecond.
    let nanos = |t: &str| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .unwrap()
            .unix_timestamp_nanos()
    };
    let same = |a: &str, b: &str| (nanos(a) - nanos(b)).abs() < 1_000_000;
    let first = find(&env.json("/connz").await);
    let before = first["last_activity"].as_str().unwrap().to_string();
    let cid = first["cid"].clone();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // A PING/PONG round trip is no activity.
    wr.write_all(b"PING\r\n").await.unwrap();
    pong(&mut rd).await;
    let me = find(&env.json("/connz").await);
    let now = me["last_activity"].as_str().unwrap();
    assert!(
        same(now, &before),
        "a PING moved last_activity: {now} vs {before}"
    );
    assert_eq!(me["idle"], "1s");
    drop(wr);
    drop(rd);
    let v = env
        .json_until("/connz?state=closed&subs=detail", |v| {
            conns(v).iter().any(|x| x["cid"] == cid)
        })
        .await;
    let closed = conns(&v).iter().find(|x| x["cid"] == cid).unwrap();
    assert!(
        same(closed["last_activity"].as_str().unwrap(), &before),
        "{closed}"
    );
    assert_eq!(closed["subscriptions"], 1, "{closed}");
    let d = &closed["subscriptions_list_detail"][0];
    assert_eq!(
        (d["account"].clone(), d["subject"].clone(), d["sid"].clone()),
        ("$G".into(), "a.b".into(), "1".into())
    );
    let v = env.json("/connz?state=closed&subs=1").await;
    let closed = conns(&v).iter().find(|x| x["cid"] == cid).unwrap();
    assert_eq!(closed["subscriptions_list"], serde_json::json!(["a.b"]));
}

/// `http_req_stats` counts HTTP requests only, and `$SYS` VARZ (answered through
/// `Monitor::for_system`) reports the same counters (nats-server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_varz_reports_the_http_request_counters() {
    let env = Env::start().await;
    env.json("/varz").await;
    env.json("/connz").await;
    env.json("/connz").await;
    let sys = monitor::Monitor::for_system(env.server.shared().clone());
    for _ in 0..2 {
        let r = sys.handle("/varz", "");
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(
            v["http_req_stats"],
            serde_json::json!({"/varz": 1, "/connz": 2}),
            "{}",
            v["http_req_stats"]
        );
    }
    let v = env.json("/varz").await;
    assert_eq!(v["http_req_stats"]["/varz"], 2);
}

// ---- errors ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_query_values_answer_400_like_nats_server() {
    let env = Env::start().await;
    let cases = [
        (
            "/connz?cid=abc",
            "Error decoding uint64 for 'cid': strconv.ParseUint: parsing \"abc\": invalid syntax",
        ),
        (
            "/connz?cid=-1",
            "Error decoding uint64 for 'cid': strconv.ParseUint: parsing \"-1\": invalid syntax",
        ),
        (
            "/connz?auth=maybe",
            "Error decoding boolean for 'auth': strconv.ParseBool: parsing \"maybe\": invalid syntax",
        ),
        (
            "/connz?subs=x",
            "Error decoding boolean for 'subs': strconv.ParseBool: parsing \"x\": invalid syntax",
        ),
        (
            "/connz?limit=x",
            "Error decoding int for 'limit': strconv.Atoi: parsing \"x\": invalid syntax",
        ),
        (
            "/connz?offset=1.5",
            "Error decoding int for 'offset': strconv.Atoi: parsing \"1.5\": invalid syntax",
        ),
        ("/connz?state=x", "Error decoding state for x"),
        ("/connz?sort=bogus", "invalid sorting option: bogus"),
        (
            "/connz?sort=stop",
            "sort by stop only valid on closed connections",
        ),
        (
            "/connz?state=all&sort=reason",
            "sort by reason only valid on closed connections",
        ),
        (
            "/subsz?subs=x",
            "Error decoding boolean for 'subs': strconv.ParseBool: parsing \"x\": invalid syntax",
        ),
        (
            "/subsz?limit=1.5",
            "Error decoding int for 'limit': strconv.Atoi: parsing \"1.5\": invalid syntax",
        ),
        (
            "/subsz?subs=1&test=foo.*",
            "invalid test subject, must be valid publish subject: foo.*",
        ),
        (
            "/healthz?js-server-only=maybe",
            "Error decoding boolean for 'js-server-only': strconv.ParseBool: parsing \"maybe\": invalid syntax",
        ),
        (
            "/healthz?details=x",
            "Error decoding boolean for 'details': strconv.ParseBool: parsing \"x\": invalid syntax",
        ),
        ("/accountz?acc=nope", "Account nope does not exist"),
    ];
    for (path, body) in cases {
        let r = env.get(path).await;
        assert_eq!(r.status, 400, "{path}");
        assert_eq!(r.body, body, "{path}");
        assert_eq!(
            r.header("content-type"),
            Some("text/plain; charset=utf-8"),
            "{path}"
        );
        assert_eq!(r.header("access-control-allow-origin"), None, "{path}");
    }
    // /connz counts a request only once its parameters decoded; the others count all.
    let v = env.json("/varz").await;
    let stats = &v["http_req_stats"];
    assert_eq!(stats["/connz"], 3, "{stats}");
    assert_eq!(stats["/subsz"], 3, "{stats}");
    assert_eq!(stats["/healthz"], 2, "{stats}");
    assert_eq!(stats["/accountz"], 1, "{stats}");
}

// ---- /subsz ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subsz_counts_lists_and_filters() {
    let env = Env::start().await;
    let c = env.client("subs").await;
    let mut wild = c.subscribe("foo.>").await.unwrap();
    let _bar = c.queue_subscribe("bar", "q1".into()).await.unwrap();
    let _plain = c.subscribe("baz").await.unwrap();
    c.publish("foo.bar", "x".into()).await.unwrap();
    c.flush().await.unwrap();
    tokio::time::timeout(T, wild.next()).await.unwrap().unwrap();
    let cid = c.server_info().client_id;

    let r = env.get("/subsz").await;
    assert!(!r.body.contains("subscriptions_list"), "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["num_subscriptions"], 3);
    assert_eq!(v["num_inserts"], 3);
    assert_eq!(v["num_removes"], 0);
    assert!(v["num_matches"].as_u64().unwrap() >= 1);
    assert!(v["cache_hit_rate"].is_number() && v["avg_fanout"].is_number());
    assert_eq!(v["max_fanout"], 1);
    assert_eq!(
        (v["total"].clone(), v["offset"].clone(), v["limit"].clone()),
        (0.into(), 0.into(), 1024.into())
    );
    assert_eq!(
        top_keys(&r.body, 2),
        [
            "server_id",
            "now",
            "num_subscriptions",
            "num_cache",
            "num_inserts",
            "num_removes",
            "num_matches",
            "cache_hit_rate",
            "max_fanout",
            "avg_fanout",
            "total",
            "offset",
            "limit"
        ]
    );

    let v = env.json("/subsz?subs=1").await;
    assert_eq!(v["total"], 3);
    let list = v["subscriptions_list"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    let foo_d = list.iter().find(|d| d["subject"] == "foo.>").unwrap();
    assert_eq!(foo_d["account"], "$G");
    assert_eq!(foo_d["account_tag"], "$G");
    assert_eq!(foo_d["msgs"], 1);
    assert_eq!(foo_d["cid"], cid);
    assert_eq!(
        list.iter().find(|d| d["subject"] == "bar").unwrap()["qgroup"],
        "q1"
    );

    let v = env.json("/subsz?subs=1&test=foo.bar").await;
    assert_eq!(v["total"], 1);
    assert_eq!(v["subscriptions_list"][0]["subject"], "foo.>");
    let v = env.json("/subscriptionsz?subs=true&offset=1&limit=1").await;
    assert_eq!(
        (v["total"].clone(), v["offset"].clone(), v["limit"].clone()),
        (3.into(), 1.into(), 1.into())
    );
    assert_eq!(v["subscriptions_list"].as_array().unwrap().len(), 1);
    let r = env.get("/subsz?subs=1&test=nothing.here").await;
    assert!(
        !r.body.contains("subscriptions_list"),
        "empty list omitted: {}",
        r.body
    );
    let v = env.json("/subsz?acc=nope&subs=1").await;
    assert_eq!(
        (v["num_subscriptions"].clone(), v["total"].clone()),
        (0.into(), 0.into())
    );
    let v = env.json("/subsz?acc=$G").await;
    assert_eq!(v["num_subscriptions"], 3);

    let v = env.json("/varz").await;
    assert_eq!(
        v["http_req_stats"]["/subsz"], 7,
        "alias counted under /subsz"
    );
    assert!(v["http_req_stats"].get("/subscriptionsz").is_none());
    drop(c);
}

// ---- /healthz, /accountz, /, 404 ------------------------------------------------------

/// Closed connections as nats-server records them: an unknown operation is a
/// `Protocol Violation`, and a connection whose CONNECT was refused keeps its name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_connections_record_refused_connects_and_unknown_ops() {
    let env = Env::start().await;
    let port = env
        .server
        .client_url()
        .rsplit(':')
        .next()
        .unwrap()
        .parse::<u16>()
        .unwrap();
    for line in [
        &b"CONNECT {\"verbose\":false,\"name\":\"unknown-op\"}\r\nFOO\r\n"[..],
        b"CONNECT {\"verbose\":false,\"name\":\"bad-proto\",\"protocol\":5}\r\n",
    ] {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(line).await.unwrap();
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(T, s.read_to_end(&mut rest)).await;
    }
    let v = env
        .json_until("/connz?state=closed", |v| conns(v).len() >= 2)
        .await;
    let reason = |name: &str| {
        conns(&v)
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["reason"].clone())
    };
    assert_eq!(
        reason("unknown-op"),
        Some("Protocol Violation".into()),
        "{v}"
    );
    assert_eq!(
        reason("bad-proto"),
        Some("Bad Client Protocol Version".into()),
        "{v}"
    );
}

/// `/accstatz`: per-account traffic in nats-server's shape, for the accounts with
/// connections (all with `unused=1`, the named ones with `accounts=`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accstatz_reports_per_account_traffic() {
    let env = Env::start().await;
    let empty = env.json("/accstatz").await;
    assert_eq!(empty["account_statz"], serde_json::json!([]));
    let c = env.client("acc").await;
    let mut sub = c.subscribe("x").await.unwrap();
    c.publish("x", "hi".into()).await.unwrap();
    futures::StreamExt::next(&mut sub).await.unwrap();
    roundtrip(&c).await;
    let v = env.json("/accstatz").await;
    let a = &v["account_statz"][0];
    assert_eq!(
        (a["acc"].as_str(), a["conns"].as_u64()),
        (Some("$G"), Some(1))
    );
    assert!(a["received"]["msgs"].as_u64().unwrap() >= 1, "{v}");
    assert!(a["sent"]["msgs"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(
        a["sent"]["routes"],
        serde_json::json!({"msgs": 0, "bytes": 0})
    );
    assert_eq!(
        env.json("/accstatz?unused=1").await["account_statz"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        env.json("/accstatz?accounts=NOPE").await["account_statz"],
        serde_json::json!([])
    );
    assert_eq!(
        env.json("/accstatz?accounts=$G").await["account_statz"][0]["acc"],
        "$G"
    );
}

/// With JetStream on, `/healthz` checks the account, stream and consumer a probe names
/// (404 with nats-server 2.15.1's texts when missing), and `/varz` carries JetStream's
/// config, stats and limits; without it, `/jsz` answers 200 with `disabled`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_in_healthz_varz_and_jsz() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = Options {
        http_port: -1,
        ..Options::for_test()
    };
    o.accounts.no_system_account = true;
    o.jetstream.enabled = true;
    o.jetstream.store_dir = Some(dir.path().to_path_buf());
    let env = Env::with(o).await;
    let c = env.client("js").await;
    let js = async_nats::jetstream::new(c.clone());
    let st = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: "S".into(),
            subjects: vec!["s".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    st.create_consumer(async_nats::jetstream::consumer::pull::Config {
        durable_name: Some("C".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    for path in [
        "/healthz?account=$G",
        "/healthz?account=$G&stream=S",
        "/healthz?account=$G&stream=S&consumer=C",
        "/healthz?account=$G&stream=NOPE&js-server-only=true",
    ] {
        let r = env.get(path).await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, r#"{"status":"ok"}"#),
            "{path}"
        );
    }
    for (path, body) in [
        (
            "/healthz?account=$G&stream=NOPE",
            r#"{"status":"unavailable","error":"JetStream stream \"NOPE\" not found on account \"$G\""}"#,
        ),
        (
            "/healthz?account=$G&stream=S&consumer=X&details=true",
            r#"{"status":"error","errors":[{"type":"CONSUMER","account":"$G","stream":"S","consumer":"X","error":"JetStream consumer \"X\" not found for stream \"S\" on account \"$G\""}]}"#,
        ),
        (
            "/healthz?account=NOPE",
            r#"{"status":"unavailable","error":"JetStream account \"NOPE\" not found"}"#,
        ),
    ] {
        let r = env.get(path).await;
        assert_eq!((r.status, r.body.as_str()), (404, body), "{path}");
    }
    let v = env.json("/varz").await;
    let j = &v["jetstream"];
    assert_eq!(
        j["config"]["store_dir"],
        dir.path().join("jetstream").display().to_string()
    );
    assert_eq!(j["stats"]["accounts"], 1);
    assert_eq!(j["stats"]["api"]["level"], 5);
    assert!(j["stats"]["api"]["total"].as_u64().unwrap() >= 2);
    assert_eq!(j["limits"]["default_max_consumers"], 1000);
    // /jsz paging parameters are integers (nats-server's 400 text otherwise), and page
    // `account_details`.
    let r = env.get("/jsz?limit=abc").await;
    assert_eq!(r.status, 400);
    assert!(
        r.body.contains("Error decoding int for 'limit'"),
        "{}",
        r.body
    );
    let v = env.json("/jsz?accounts=true&offset=1").await;
    assert!(v.get("account_details").is_none(), "{v}");
    let v = env.json("/jsz?accounts=true&limit=1").await;
    assert_eq!(
        v["account_details"].as_array().map(Vec::len),
        Some(1),
        "{v}"
    );
    drop(c);

    let plain = Env::start().await;
    assert_eq!(
        plain.json("/varz").await["jetstream"],
        serde_json::json!({})
    );
    let jsz = plain.json("/jsz").await;
    assert_eq!(jsz["disabled"], true);
    assert_eq!(
        jsz["config"],
        serde_json::json!({"max_memory": 0, "max_storage": 0})
    );
    assert!(jsz.get("limits").is_none(), "{jsz}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_accountz_index_and_unknown_paths() {
    let env = Env::start().await;
    let c = env.client("one").await;

    for path in [
        "/healthz",
        "/healthz?js-enabled-only=true",
        "/healthz?js-server-only=1",
        "/healthz?js-enabled=true&details=true",
    ] {
        let r = env.get(path).await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, r#"{"status":"ok"}"#),
            "{path}"
        );
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    }
    let r = env.get("/healthz?stream=ORDERS").await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        r#"{"status":"error","error":"\"account\" must not be empty when checking stream health"}"#
    );
    let r = env.get("/healthz?account=A&consumer=C&details=true").await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        r#"{"status":"error","errors":[{"type":"BAD_REQUEST","error":"\"stream\" must not be empty when checking consumer health"}]}"#
    );

    let r = env.get("/accountz").await;
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["accounts"], serde_json::json!(["$G"]));
    assert_eq!(v["server_id"], env.server.shared().server_id.as_str());
    assert!(v.get("account_detail").is_none());
    let v = env.json("/accountz?acc=$G").await;
    let d = &v["account_detail"];
    assert_eq!(d["account_name"], "$G");
    assert_eq!(d["client_connections"], 1);
    assert_eq!(d["complete"], true);
    assert_eq!(d["jetstream_enabled"], false);
    assert_eq!(d["name_tag"], "$G");
    assert!(d["sublist_stats"]["num_subscriptions"].is_number());
    assert!(v.get("accounts").is_none());

    let r = env.get("/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(r.body.starts_with("<html lang=\"en\">"));
    assert!(
        r.body
            .contains("<a href=./connz>Connections<span class=\"endpoint\"> /connz</span></a>")
    );
    assert!(r.body.contains("class='version'>v2.15.1</a>"));

    for path in ["/nope", "/varz/", "/connz/x", "/subsz2"] {
        let r = env.get(path).await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (404, "404 page not found\n"),
            "{path}"
        );
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    }
    // Any method works, as with Go's mux.
    let mut s = TcpStream::connect(env.mon.addr).await.unwrap();
    s.write_all(b"POST /healthz HTTP/1.0\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    let mut first = String::new();
    BufReader::new(s).read_line(&mut first).await.unwrap();
    assert!(first.contains(" 200 "), "{first}");

    let v = env.json("/varz").await;
    assert_eq!(v["http_req_stats"]["/"], 1);
    assert_eq!(v["http_req_stats"]["/healthz"], 7);
    assert_eq!(v["http_req_stats"]["/accountz"], 2);
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_path_prefixes_every_endpoint() {
    let env = Env::with(Options {
        http_port: -1,
        http_base_path: "mon/".to_string(),
        ..Options::for_test()
    })
    .await;
    let v = env.json("/mon/varz").await;
    assert_eq!(v["http_base_path"], "mon/");
    assert_eq!(
        v["http_req_stats"]["/varz"], 1,
        "counted without the base path"
    );
    env.json("/mon/connz").await;
    env.json("/mon/subsz").await;
    let r = env.get("/mon").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("<a href=./mon/varz>General"), "{}", r.body);
    for path in ["/varz", "/", "/mon/", "/monvarz"] {
        assert_eq!(env.get(path).await.status, 404, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_is_escaped_and_indented_like_go() {
    let env = Env::start().await;
    let c = env.client("a<b>&c").await;
    c.flush().await.unwrap();
    let r = env.get("/connz").await;
    assert!(
        r.body.contains("\"name\": \"a\\u003cb\\u003e\\u0026c\""),
        "{}",
        r.body
    );
    assert!(
        r.body
            .contains("\n  \"connections\": [\n    {\n      \"cid\": "),
        "{}",
        r.body
    );
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(conns(&v)[0]["name"], "a<b>&c");
    drop(c);
}

// ---- differential against nats-server --------------------------------------------------

/// Known differences between natrium and nats-server 2.15.1 in the compared outputs:
/// `(endpoint, key path, why)`. A path matches itself and everything below it.
const ALLOWED_DIFFERENCES: &[(&str, &str, &str)] = &[
    (
        "/varz",
        "git_commit",
        "omitted when empty; natrium has a commit only when built with NATRIUM_GIT_COMMIT",
    ),
    (
        "/varz",
        "system_account",
        "omitted when empty; natrium has no system account yet",
    ),
];

/// Paths whose object keys are data (e.g. URL paths), not schema: only the value types
/// of their entries are compared.
const MAP_PATHS: &[&str] = &["http_req_stats"];

/// JSON type name.
fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Flattens a value into `path → type`; array elements merge under `path[]`.
fn shape(v: &Value, path: &str, out: &mut BTreeMap<String, &'static str>) {
    if !path.is_empty() {
        out.insert(path.to_string(), type_of(v));
    }
    let child = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match v {
        Value::Object(m) if MAP_PATHS.contains(&path) => {
            for e in m.values() {
                shape(e, &child("*"), out);
            }
        }
        Value::Object(m) => {
            for (k, e) in m {
                shape(e, &child(k), out);
            }
        }
        Value::Array(a) => {
            for e in a {
                shape(e, &format!("{path}[]"), out);
            }
        }
        _ => {}
    }
}

/// Differences in shape between two answers of `endpoint`, minus the allowed ones.
fn shape_diff(endpoint: &str, ours: &Value, theirs: &Value) -> Vec<String> {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    shape(ours, "", &mut a);
    shape(theirs, "", &mut b);
    let allowed = |p: &str| {
        ALLOWED_DIFFERENCES.iter().any(|(e, ap, _)| {
            *e == endpoint
                && (p == *ap
                    || p.starts_with(&format!("{ap}."))
                    || p.starts_with(&format!("{ap}[")))
        })
    };
    let mut diffs = Vec::new();
    for (p, t) in &a {
        match b.get(p) {
            None if !allowed(p) => diffs.push(format!("{endpoint}: {p} only in natrium")),
            Some(u) if u != t && !allowed(p) => diffs.push(format!(
                "{endpoint}: {p} is {t} in natrium, {u} in nats-server"
            )),
            _ => {}
        }
    }
    for p in b.keys() {
        if !a.contains_key(p) && !allowed(p) {
            diffs.push(format!("{endpoint}: {p} missing in natrium"));
        }
    }
    diffs
}

/// The nats-server binary to compare with, if any.
fn nats_server_bin() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("NATS_SERVER_BIN") {
        return Some(p.into());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
}

/// A nats-server child process (killed on drop) and its ports.
struct Reference {
    /// The process.
    _child: tokio::process::Child,
    /// Client URL.
    url: String,
    /// Monitoring address.
    http: SocketAddr,
}

/// Starts nats-server on random ports and reads them from its log.
async fn start_reference(bin: &std::path::Path) -> Reference {
    let mut child = tokio::process::Command::new(bin)
        .args(["-a", "127.0.0.1", "-p", "-1", "-m", "-1"])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("nats-server starts");
    let stderr = child.stderr.take().expect("stderr piped");
    let mut lines = BufReader::new(stderr).lines();
    let (mut client, mut http) = (None, None);
    let port_of = |line: &str| -> Option<u16> { line.rsplit(':').next()?.trim().parse().ok() };
    tokio::time::timeout(T, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("Starting http monitor on") {
                http = port_of(&line);
            } else if line.contains("Listening for client connections on") {
                client = port_of(&line);
            } else if line.contains("Server is ready") {
                break;
            }
        }
    })
    .await
    .expect("nats-server ready in time");
    let (client, http) = (
        client.expect("client port logged"),
        http.expect("http port logged"),
    );
    // Keep draining the log so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Reference {
        _child: child,
        url: format!("nats://127.0.0.1:{client}"),
        http: SocketAddr::from(([127, 0, 0, 1], http)),
    }
}

/// The same client activity on either server: a subscriber with a plain, a queue and an
/// auto-unsubscribe subscription, and a publisher.
struct Workload {
    /// Clients and subscriptions, kept open while the servers are compared.
    _keep: (
        async_nats::Client,
        async_nats::Client,
        Vec<async_nats::Subscriber>,
    ),
}

async fn workload(url: &str) -> Workload {
    let s = async_nats::ConnectOptions::new()
        .name("diff-sub")
        .connect(url)
        .await
        .unwrap();
    let mut wild = s.subscribe("foo.>").await.unwrap();
    let q = s.queue_subscribe("bar", "q1".into()).await.unwrap();
    let mut capped = s.subscribe("baz").await.unwrap();
    capped.unsubscribe_after(5).await.unwrap();
    roundtrip(&s).await;
    let p = async_nats::ConnectOptions::new()
        .name("diff-pub")
        .connect(url)
        .await
        .unwrap();
    for _ in 0..3 {
        p.publish("foo.bar", "hi".into()).await.unwrap();
    }
    p.publish("bar", "q".into()).await.unwrap();
    p.flush().await.unwrap();
    for _ in 0..3 {
        tokio::time::timeout(T, wild.next()).await.unwrap().unwrap();
    }
    Workload {
        _keep: (s, p, vec![wild, q, capped]),
    }
}

/// The key sequences of the objects printed at `indent` spaces, one per object.
fn key_sequences(body: &str, indent: usize) -> Vec<Vec<String>> {
    let mut seqs = vec![Vec::new()];
    for line in body.lines() {
        let depth = line.len() - line.trim_start().len();
        if depth == indent
            && let Some(rest) = line.trim_start().strip_prefix('"')
            && let Some((key, _)) = rest.split_once("\": ")
        {
            if let Some(cur) = seqs.last_mut() {
                cur.push(key.to_string());
            }
        } else if depth < indent && seqs.last().is_some_and(|s| !s.is_empty()) {
            seqs.push(Vec::new());
        }
    }
    seqs.retain(|s| !s.is_empty());
    seqs
}

/// Pairs of keys that natrium prints in the opposite order from nats-server, for the
/// objects at `indent`.
fn order_conflicts(ours: &str, theirs: &str, indent: usize) -> Vec<(String, String)> {
    let mut before = std::collections::BTreeSet::new();
    for seq in key_sequences(theirs, indent) {
        for (i, a) in seq.iter().enumerate() {
            for b in &seq[i + 1..] {
                before.insert((a.clone(), b.clone()));
            }
        }
    }
    let mut conflicts = Vec::new();
    for seq in key_sequences(ours, indent) {
        for (i, a) in seq.iter().enumerate() {
            for b in &seq[i + 1..] {
                if before.contains(&(b.clone(), a.clone())) {
                    conflicts.push((a.clone(), b.clone()));
                }
            }
        }
    }
    conflicts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_shapes_match_nats_server() {
    let Some(bin) = nats_server_bin() else {
        println!(
            "SKIPPED differential_shapes_match_nats_server: set NATS_SERVER_BIN or put nats-server on PATH"
        );
        return;
    };
    let reference = start_reference(&bin).await;
    let env = Env::start().await;
    let _ours = workload(&env.url()).await;
    let _theirs = workload(&reference.url).await;
    // Let deliveries settle on both sides.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut diffs = Vec::new();
    for path in [
        "/varz",
        "/connz?subs=1",
        "/connz?subs=detail&auth=1",
        "/subsz?subs=1",
    ] {
        let ours = env.get(path).await;
        let theirs = http_get(reference.http, path).await;
        assert_eq!(ours.status, theirs.status, "{path}");
        assert_eq!(
            ours.header("content-type"),
            theirs.header("content-type"),
            "{path}"
        );
        let (a, b): (Value, Value) = (
            serde_json::from_str(&ours.body).unwrap(),
            serde_json::from_str(&theirs.body).unwrap(),
        );
        let endpoint = path.split('?').next().unwrap_or(path);
        diffs.extend(shape_diff(endpoint, &a, &b));
        // Keys both print come in the same order: top level, connections and list
        // entries, subscription details.
        for indent in [2, 4, 6, 10] {
            let conflicts = order_conflicts(&ours.body, &theirs.body, indent);
            assert!(
                conflicts.is_empty(),
                "{path}: key order differs at indent {indent}: {conflicts:?}"
            );
        }
    }
    // The index page is byte-identical.
    let (ours, theirs) = (env.get("/").await, http_get(reference.http, "/").await);
    assert_eq!(ours.body, theirs.body, "index page");
    // So are the texts of bad requests.
    for path in [
        "/connz?cid=abc",
        "/connz?sort=x",
        "/connz?state=x",
        "/subsz?test=a.*",
        "/healthz?stream=S",
    ] {
        let (ours, theirs) = (env.get(path).await, http_get(reference.http, path).await);
        assert_eq!(
            (ours.status, &ours.body),
            (theirs.status, &theirs.body),
            "{path}"
        );
    }
    assert!(diffs.is_empty(), "shape differences:\n{}", diffs.join("\n"));
    for (endpoint, path, why) in ALLOWED_DIFFERENCES {
        println!("allowed difference {endpoint} {path}: {why}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_account_shows_in_varz_accountz_and_subsz() {
    let env = Env::with(Options {
        http_port: -1,
        ..Options::for_test()
    })
    .await;
    let v = env.json("/varz").await;
    assert_eq!(v["system_account"], "$SYS");
    let v = env.json("/accountz").await;
    assert_eq!(v["accounts"], serde_json::json!(["$G", "$SYS"]));
    assert_eq!(v["system_account"], "$SYS");
    // The system account's request handlers are subscriptions, as in nats-server.
    let v = env.json("/subsz?acc=$SYS&subs=1").await;
    let subjects: Vec<&str> = v["subscriptions_list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["subject"].as_str())
        .collect();
    assert!(subjects.contains(&"$SYS.REQ.SERVER.PING"), "{subjects:?}");
}
