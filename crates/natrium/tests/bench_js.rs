//! End-to-end tests of the JetStream benchmark modes (`js-pub`,
//! `js-consume`) and `fsync`.
//!
//! Each mode is run as a script would run it (`--json`, exit status) with
//! tiny counts against a spawned natrium-server with JetStream in a fresh
//! store directory, and the reported counts must be exactly what was
//! asked. The server binary comes from `NATRIUM_SERVER_BIN`, else the
//! `natrium-server` next to the `natrium` binary under test (the
//! workspace's target directory; build it with
//! `cargo build -p natrium-server`). Without one the tests print a notice
//! and pass vacuously. When `NATS_SERVER_BIN` names a nats-server, the
//! same loads also run against it, which checks the client side against
//! the reference server.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;

use common::NATRIUM;

/// The natrium-server to test against, if there is one.
fn natrium_server_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NATRIUM_SERVER_BIN") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let p = Path::new(NATRIUM).parent()?.join("natrium-server");
    p.is_file().then_some(p)
}

/// A nats-server named explicitly by `NATS_SERVER_BIN`, if any.
fn nats_server_bin() -> Option<PathBuf> {
    let p = PathBuf::from(std::env::var_os("NATS_SERVER_BIN")?);
    p.is_file().then_some(p)
}

/// A fresh, empty directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "natrium-bench-js-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server child process with JetStream, killed (by its own handle) on
/// drop, before its store directory is removed.
struct Server {
    child: Child,
    url: String,
    _store: TempDir,
}

impl Server {
    /// Starts `bin` on 127.0.0.1 with JetStream in a fresh store directory
    /// and waits for its listening line.
    fn start(bin: &Path) -> Server {
        let store = TempDir::new();
        let args = [OsStr::new("-js"), OsStr::new("-sd"), store.0.as_os_str()];
        let (child, port) = common::spawn_listening(bin, &args);
        Server {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            _store: store,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The servers to run a test against: natrium-server (if built) and
/// nats-server (if named), each fresh.
fn servers(test: &str) -> Vec<(String, Server)> {
    let mut out = Vec::new();
    match natrium_server_bin() {
        Some(bin) => out.push(("natrium-server".to_string(), Server::start(&bin))),
        None => eprintln!(
            "SKIPPED {test} on natrium-server: no binary (set NATRIUM_SERVER_BIN or run \
             cargo build -p natrium-server)"
        ),
    }
    if let Some(bin) = nats_server_bin() {
        out.push(("nats-server".to_string(), Server::start(&bin)));
    }
    out
}

/// Runs a bench expected to succeed and returns its JSON report.
fn bench_json(url: &str, args: &[&str]) -> Value {
    let out = Command::new(NATRIUM)
        .arg("-s")
        .arg(url)
        .arg("bench")
        .args(args)
        .args(["--json", "--max-seconds", "30"])
        .env_remove("NATS_URL")
        .stdin(Stdio::null())
        .output()
        .expect("run natrium");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "natrium bench {args:?} failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
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
fn js_pub_sync_and_async_ack_every_message() {
    for (name, srv) in servers("js_pub_sync_and_async_ack_every_message") {
        let v = bench_json(
            &srv.url,
            &["js-pub", "--sync", "--msgs", "50", "--size", "16"],
        );
        assert_eq!(v["mode"], "js-pub", "{name}");
        assert_eq!(v["variant"], "sync", "{name}");
        assert_eq!(v["storage"], "file", "{name}");
        assert_eq!(u(&v, "published"), 50, "{name}: {v}");
        assert_eq!(v["complete"], true, "{name}");
        let (p50, p99) = (f(&v, "p50_us"), f(&v, "p99_us"));
        assert!(p50 > 0.0 && p50 <= p99, "{name}: {v}");

        // Async, memory, two publishers; the stream is recreated (other
        // storage) and must end up holding exactly this run's messages.
        let v = bench_json(
            &srv.url,
            &[
                "js-pub",
                "--msgs",
                "300",
                "--size",
                "1KiB",
                "--storage",
                "memory",
                "--max-pending",
                "16",
                "--pub",
                "2",
            ],
        );
        assert_eq!(v["variant"], "async", "{name}");
        assert_eq!(v["storage"], "memory", "{name}");
        assert_eq!(u(&v, "max_pending"), 16, "{name}");
        assert_eq!(u(&v, "published"), 300, "{name}: {v}");
        assert!(v["p50_us"].is_null(), "{name}: {v}");
        assert!(f(&v, "msgs_per_sec") > 0.0, "{name}");

        // The stream now holds 300 messages: consuming 300 from it as it
        // is works, 301 is refused.
        let v = bench_json(
            &srv.url,
            &[
                "js-consume",
                "--no-create",
                "--msgs",
                "300",
                "--mode",
                "pull-noack",
            ],
        );
        assert_eq!(u(&v, "received"), 300, "{name}: {v}");
        assert_eq!(u(&v, "size"), 1024, "{name}: {v}");
    }
}

#[test]
fn js_consume_every_mode_gets_every_message() {
    for (name, srv) in servers("js_consume_every_mode_gets_every_message") {
        for (mode, storage) in [
            ("pull-ack", "file"),
            ("pull-noack", "memory"),
            ("push", "file"),
            ("push-ack", "memory"),
        ] {
            let v = bench_json(
                &srv.url,
                &[
                    "js-consume",
                    "--mode",
                    mode,
                    "--storage",
                    storage,
                    "--msgs",
                    "250",
                    "--batch",
                    "40",
                    "--size",
                    "32",
                ],
            );
            let what = format!("{name} {mode} {storage}: {v}");
            assert_eq!(v["mode"], "js-consume", "{what}");
            assert_eq!(v["variant"], mode, "{what}");
            assert_eq!(u(&v, "expected"), 250, "{what}");
            assert_eq!(u(&v, "received"), 250, "{what}");
            assert_eq!(u(&v, "missing"), 0, "{what}");
            assert_eq!(v["complete"], true, "{what}");
            assert!(f(&v, "msgs_per_sec") > 0.0, "{what}");
        }
    }
}

#[test]
fn js_consume_durable_consumer_is_kept() {
    for (name, srv) in servers("js_consume_durable_consumer_is_kept") {
        let v = bench_json(
            &srv.url,
            &[
                "js-consume",
                "--mode",
                "pull-ack",
                "--durable",
                "BENCH",
                "--msgs",
                "100",
            ],
        );
        assert_eq!(u(&v, "received"), 100, "{name}: {v}");
    }
}

#[test]
fn js_consume_no_create_refuses_a_short_stream() {
    for (name, srv) in servers("js_consume_no_create_refuses_a_short_stream") {
        bench_json(&srv.url, &["js-pub", "--msgs", "10"]);
        let out = Command::new(NATRIUM)
            .args(["-s", &srv.url, "bench", "js-consume", "--no-create"])
            .args(["--msgs", "11", "--json", "--max-seconds", "10"])
            .stdin(Stdio::null())
            .output()
            .expect("run natrium");
        assert_eq!(out.status.code(), Some(2), "{name}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("holds 10 messages"), "{name}: {stderr}");
    }
}

#[test]
fn fsync_counts_its_syncs() {
    let dir = TempDir::new();
    let dir_arg = dir.0.to_string_lossy().into_owned();
    // No server needed; the URL is never dialled.
    let v = bench_json(
        "nats://127.0.0.1:1",
        &["fsync", "--dir", &dir_arg, "--msgs", "5", "--size", "64"],
    );
    assert_eq!(v["mode"], "fsync");
    assert_eq!(v["variant"], "append");
    assert_eq!(u(&v, "published"), 5);
    assert_eq!(v["complete"], true);
    assert!(f(&v, "p50_us") > 0.0);
    assert_eq!(
        std::fs::read_dir(&dir.0).expect("read dir").count(),
        0,
        "the fsync file is removed"
    );
}

#[test]
fn fsync_prealloc_overwrites_a_preallocated_file() {
    let dir = TempDir::new();
    let dir_arg = dir.0.to_string_lossy().into_owned();
    let v = bench_json(
        "nats://127.0.0.1:1",
        &[
            "fsync",
            "--dir",
            &dir_arg,
            "--msgs",
            "5",
            "--size",
            "64",
            "--prealloc",
        ],
    );
    assert_eq!(v["variant"], "prealloc");
    assert_eq!(u(&v, "published"), 5);
    assert_eq!(v["complete"], true);
    assert_eq!(
        std::fs::read_dir(&dir.0).expect("read dir").count(),
        0,
        "the fsync file is removed"
    );
    // A size that cannot be preallocated is refused up front, and leaves no file.
    let out = Command::new(NATRIUM)
        .args(["bench", "fsync", "--dir", &dir_arg, "--prealloc"])
        .args(["--msgs", "18446744073709551615", "--size", "1KiB"])
        .stdin(Stdio::null())
        .output()
        .expect("run natrium");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("too large to preallocate"), "{stderr}");
    assert_eq!(std::fs::read_dir(&dir.0).expect("read dir").count(), 0);
}

#[test]
fn kv_puts_and_gets_are_each_awaited() {
    for (name, srv) in servers("kv_puts_and_gets_are_each_awaited") {
        let v = bench_json(
            &srv.url,
            &[
                "kv",
                "--op",
                "put",
                "--msgs",
                "200",
                "--keys",
                "50",
                "--clients",
                "2",
            ],
        );
        assert_eq!(v["mode"], "kv", "{name}");
        assert_eq!(v["variant"], "put", "{name}");
        assert_eq!(v["stream"], "KV_natrium-bench", "{name}");
        assert_eq!(u(&v, "published"), 200, "{name}: {v}");
        assert_eq!(v["complete"], true, "{name}");
        let (p50, p99) = (f(&v, "p50_us"), f(&v, "p99_us"));
        assert!(p50 > 0.0 && p50 <= p99, "{name}: {v}");
        // history 1: one value per key is left of the 200 puts.
        let info = Command::new(NATRIUM)
            .args(["-s", &srv.url, "kv", "info", "natrium-bench", "--json"])
            .env_remove("NATS_URL")
            .output()
            .expect("run natrium");
        let info: Value = serde_json::from_slice(&info.stdout).expect("kv info json");
        assert_eq!(info["state"]["messages"], 50, "{name}: {info}");

        // Gets on a fresh memory bucket (filled first, untimed).
        let v = bench_json(
            &srv.url,
            &[
                "kv",
                "--op",
                "get",
                "--msgs",
                "300",
                "--keys",
                "20",
                "--storage",
                "memory",
            ],
        );
        assert_eq!(v["variant"], "get", "{name}");
        assert_eq!(v["storage"], "memory", "{name}");
        assert_eq!(u(&v, "published"), 300, "{name}: {v}");
        assert!(f(&v, "p50_us") > 0.0, "{name}: {v}");

        // A bucket of another name is made once and never deleted by a later run.
        bench_json(
            &srv.url,
            &["kv", "--msgs", "5", "--keys", "5", "--bucket", "mine"],
        );
        let out = Command::new(NATRIUM)
            .args([
                "-s", &srv.url, "bench", "kv", "--msgs", "5", "--bucket", "mine",
            ])
            .env_remove("NATS_URL")
            .output()
            .expect("run natrium");
        assert!(!out.status.success(), "{name}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("exists"),
            "{name}"
        );
    }
}
