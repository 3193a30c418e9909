//! Storage resource limits (issue 6): the server's `jetstream` block (spellings, sizes,
//! defaults, reload), account limits (startup refusal), stream reservations and publish
//! limits compared with nats-server 2.15.1's answers (`tests/data/api/limits_*.json`,
//! captured with `limits.conf`), and monitoring of usage against limits.

mod support;

use natrium_server::config_file;
use natrium_server::flags::Flags;
use natrium_server::jetstream::config::{LimitSource, resolve};
use natrium_server::options::Options;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::TestServer;

const BIN: &str = env!("CARGO_BIN_EXE_natrium-server");

fn sample(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/api")
        .join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&p).expect("sample")).expect("sample json")
}

/// The payloads nats-server answered in a sample.
fn sample_payloads(name: &str) -> Vec<Value> {
    sample(name)["responses"]
        .as_array()
        .expect("responses")
        .iter()
        .map(|r| r["payload_json"].clone())
        .collect()
}

fn write_conf(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("server.conf");
    std::fs::write(&p, text).unwrap();
    p
}

fn load(dir: &Path, text: &str) -> Result<Options, String> {
    config_file::load(&write_conf(dir, text)).map_err(|e| e.to_string())
}

/// `limits.conf` from the samples, with our store directory and random ports.
fn limits_conf(store: &Path) -> String {
    format!(
        r#"
listen: 127.0.0.1:-1
jetstream {{
  store_dir: "{}"
  max_mem: 10MB
  max_file: 20MB
}}
accounts {{
  A {{
    jetstream {{
      max_mem: 1MB
      max_file: 2MB
      max_streams: 3
      max_consumers: 2
      max_ack_pending: 100
    }}
    users [ {{ user: a, password: a }} ]
  }}
  C {{
    jetstream {{ max_file: 8MB, disk_max_stream_bytes: 1MB, mem_max_stream_bytes: 512KB }}
    users [ {{ user: c, password: c }} ]
  }}
  B {{
    jetstream {{ max_bytes_required: true }}
    users [ {{ user: b, password: b }} ]
  }}
  NOJS {{ users [ {{ user: n, password: n }} ] }}
  SYS {{ users [ {{ user: sys, password: sys }} ] }}
}}
system_account: SYS
"#,
        store.display()
    )
}

async fn start_conf(dir: &Path, text: &str) -> TestServer {
    let mut o = load(dir, text).expect("config loads");
    o.port = 0;
    TestServer::with(o).await
}

async fn connect(s: &TestServer, user: &str) -> async_nats::Client {
    async_nats::ConnectOptions::with_user_and_password(user.into(), user.into())
        .connect(s.url())
        .await
        .expect("connect")
}

async fn request(c: &async_nats::Client, subject: &str, body: &Value) -> Value {
    let body = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(body).unwrap()
    };
    let m = tokio::time::timeout(
        Duration::from_secs(5),
        c.request(subject.to_string(), body.into()),
    )
    .await
    .expect("answer in time")
    .expect("answer");
    serde_json::from_slice(&m.payload).expect("json answer")
}

/// An error answer must carry nats-server's `type`, `code` and `err_code`; the description
/// starts with nats-server's and may add the numbers in parentheses.
fn assert_same_error(ours: &Value, theirs: &Value) {
    assert_eq!(ours["type"], theirs["type"], "type: {ours}");
    let (e, t) = (&ours["error"], &theirs["error"]);
    assert_eq!(e["code"], t["code"], "code: {ours}");
    assert_eq!(e["err_code"], t["err_code"], "err_code: {ours}");
    let d = e["description"].as_str().expect("description");
    let td = t["description"].as_str().expect("sample description");
    assert!(
        d == td || d.starts_with(&format!("{td} (")),
        "description {d:?} vs nats-server {td:?}"
    );
}

/// Replay one captured request and compare the error with nats-server's.
async fn replay_error(c: &async_nats::Client, name: &str) -> Value {
    let s = sample(name);
    let subject = s["request_subject"].as_str().unwrap();
    let ours = request(c, subject, &s["request_body"]).await;
    assert_same_error(&ours, &sample_payloads(name)[0]);
    ours
}

#[test]
fn server_block_spellings_and_size_syntaxes() {
    let d = tempfile::tempdir().unwrap();
    let cases: &[(&str, Option<i64>, Option<i64>)] = &[
        // Unquoted suffixes are the lexer's (k/m/g decimal, kb/mb/mib binary).
        ("max_mem: 1G, max_file: 1k", Some(1_000_000_000), Some(1000)),
        (
            "max_memory_store: 2MB, max_file_store: 10MiB",
            Some(2 << 20),
            Some(10 << 20),
        ),
        // Quoted: one uppercase K/M/G/T, always binary (getStorageSize).
        (
            r#"max_mem_store: "1G", max_store: "3K""#,
            Some(1 << 30),
            Some(3 * 1024),
        ),
        (
            r#"max_mem: "512M", max_file: "2T""#,
            Some(512 << 20),
            Some(2 << 40),
        ),
        ("max_mem: 0, max_file: -1", Some(0), Some(-1)),
        ("max_file: 123456", None, Some(123456)),
        (r#"max_mem: """#, Some(0), None),
    ];
    for (body, mem, file) in cases {
        let o = load(
            d.path(),
            &format!(
                "jetstream {{ store_dir: \"{}\", {body} }}",
                d.path().display()
            ),
        )
        .unwrap_or_else(|e| panic!("{body}: {e}"));
        assert!(o.jetstream.enabled, "{body}");
        assert_eq!(o.jetstream.max_memory, *mem, "{body}");
        assert_eq!(o.jetstream.max_store, *file, "{body}");
    }
    // Bad quoted sizes are config errors worded like nats-server's.
    let e = load(d.path(), r#"jetstream { max_mem: "1GB" }"#).unwrap_err();
    assert!(
        e.contains(r#"max_mem_store strconv.ParseInt: parsing "1G": invalid syntax"#),
        "{e}"
    );
    let e = load(d.path(), r#"jetstream { max_file: "10g" }"#).unwrap_err();
    assert!(
        e.contains("max_file_store sizes defined as strings must end in K, M, G, T"),
        "{e}"
    );
    // -1 asks for the computed default (as nats-server), an explicit 0 stays 0, the store
    // dir gets `/jetstream`.
    let o = load(
        d.path(),
        &format!(
            "jetstream {{ store_dir: \"{}\", max_mem: 0, max_file: -1 }}",
            d.path().display()
        ),
    )
    .unwrap();
    let c = resolve(&o.jetstream).unwrap();
    assert_eq!(c.max_memory, 0);
    assert!(c.max_store > 0, "{}", c.max_store);
    assert_eq!(c.store_dir, d.path().join("jetstream"));
    assert_eq!(c.max_store_source, LimitSource::Computed);
}

#[test]
fn default_max_file_counts_the_stores_own_usage() {
    // A private tmpfs so that nothing else changes the free space meanwhile.
    let parent = tempfile::tempdir().unwrap();
    let fs = parent.path().join("fs");
    std::fs::create_dir_all(&fs).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
        .arg(&fs)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !mounted {
        eprintln!("NOTICE: skipping, cannot mount a tmpfs (needs root)");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _unmount = Unmount(fs.clone());
    let o = load(
        parent.path(),
        &format!("jetstream {{ store_dir: \"{}\" }}", fs.display()),
    )
    .unwrap();
    let before = resolve(&o.jetstream).unwrap();
    assert_eq!(before.max_store_source, LimitSource::Computed);
    let (free, own) = before.disk_at_start.expect("disk measured");
    assert_eq!(before.max_store, (free + own) / 4 * 3);
    assert!(free > 60 << 20 && own < 1 << 20, "{free} {own}");
    // 16 MiB of stream data: nats-server's default would now be 75% of 48 MiB; ours
    // still counts the data as available, so a restart does not lock it out.
    std::fs::write(before.store_dir.join("blob"), vec![7u8; 16 << 20]).unwrap();
    let after = resolve(&o.jetstream).unwrap();
    let (free2, own2) = after.disk_at_start.unwrap();
    assert!(
        own2 >= own + (16 << 20),
        "own usage counted: {own} -> {own2}"
    );
    assert!(free2 <= free - (16 << 20));
    assert!(
        (after.max_store - before.max_store).abs() < 64 * 1024,
        "limit {} -> {}",
        before.max_store,
        after.max_store
    );
    assert!(after.max_store > free2 / 4 * 3 + (11 << 20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_errors_match_nats_server() {
    let d = tempfile::tempdir().unwrap();
    let s = start_conf(d.path(), &limits_conf(d.path())).await;
    let a = connect(&s, "a").await;
    let b = connect(&s, "b").await;
    let c = connect(&s, "c").await;
    let n = connect(&s, "n").await;

    // Account info before anything: limits exactly as nats-server shows them.
    let info = request(&a, "$JS.API.INFO", &Value::Null).await;
    let theirs = &sample_payloads("limits_account_info")[0];
    assert_eq!(info["limits"], theirs["limits"]);
    assert_eq!(info["reserved_storage"], 0);

    replay_error(&n, "limits_js_not_enabled_for_account").await;
    replay_error(&n, "limits_js_not_enabled_for_account_stream_create").await;
    replay_error(&b, "limits_max_bytes_required").await;
    replay_error(&c, "limits_stream_max_stream_bytes_exceeded").await;
    let e = replay_error(&a, "limits_stream_file_too_big_for_account").await;
    // Our description names the limit, what is reserved and what was asked for.
    assert_eq!(
        e["error"]["description"],
        "insufficient storage resources available (account file limit 2097152, reserved 0, requested 3145728)"
    );
    replay_error(&a, "limits_stream_mem_too_big_for_account").await;
    let e = replay_error(&b, "limits_server_storage_exceeded").await;
    assert!(
        e["error"]["description"]
            .as_str()
            .unwrap()
            .contains("server file limit 20971520"),
        "{e}"
    );
    replay_error(&b, "limits_server_memory_exceeded").await;

    // Streams that fit are created (C2: no max_bytes although the account caps it).
    for name in [
        "limits_stream_ok_1",
        "limits_stream_ok_2",
        "limits_stream_ok_3",
    ] {
        let smp = sample(name);
        let ours = request(
            &a,
            smp["request_subject"].as_str().unwrap(),
            &smp["request_body"],
        )
        .await;
        assert!(ours.get("error").is_none(), "{name}: {ours}");
        assert_eq!(ours["did_create"], true);
    }
    let smp = sample("limits_stream_max_bytes_unset_with_max_stream_bytes");
    let ours = request(
        &c,
        smp["request_subject"].as_str().unwrap(),
        &smp["request_body"],
    )
    .await;
    assert_eq!(ours["config"]["max_bytes"], -1, "{ours}");

    replay_error(&a, "limits_max_streams_reached").await;
    replay_error(&a, "limits_stream_max_consumers_over_account").await;

    // Publishing over the account's max_file: two 900 KiB messages fit, the third and
    // fourth get 10002, as nats-server answers.
    let expected = sample_payloads("limits_publish_account_storage_exceeded");
    let payload = vec![b'x'; 900 * 1024];
    for (i, theirs) in expected.iter().enumerate() {
        let m = tokio::time::timeout(
            Duration::from_secs(5),
            a.request("s2", payload.clone().into()),
        )
        .await
        .expect("ack in time")
        .expect("ack");
        let ours: Value = serde_json::from_slice(&m.payload).unwrap();
        if theirs.get("error").is_some() {
            assert_eq!(
                ours["error"]["code"], theirs["error"]["code"],
                "#{i}: {ours}"
            );
            assert_eq!(ours["error"]["err_code"], 10002, "#{i}: {ours}");
            assert!(
                ours["error"]["description"]
                    .as_str()
                    .unwrap()
                    .starts_with("resource limits exceeded for account ("),
                "{ours}"
            );
        } else {
            assert_eq!(ours, *theirs, "#{i}");
        }
    }
    let info = request(&a, "$JS.API.INFO", &Value::Null).await;
    let after = &sample_payloads("limits_account_info_after")[0];
    assert_eq!(info["storage"], after["storage"], "{info}");
    assert_eq!(info["streams"], 3);

    // Reservations: a stream's max_bytes is reserved against the account.
    let r = request(
        &c,
        "$JS.API.STREAM.CREATE.R1",
        &serde_json::json!({"name": "R1", "max_bytes": 1048576}),
    )
    .await;
    assert!(r.get("error").is_none(), "{r}");
    let info = request(&c, "$JS.API.INFO", &Value::Null).await;
    assert_eq!(info["reserved_storage"], 1048576, "{info}");
    // Update: only growth is reserved; shrinking always passes; growing past the cap of
    // the account (8 MB total, 1 MB per stream) is refused.
    let r = request(
        &c,
        "$JS.API.STREAM.UPDATE.R1",
        &serde_json::json!({"name": "R1", "subjects": ["R1"], "max_bytes": 524288}),
    )
    .await;
    assert!(r.get("error").is_none(), "{r}");
    let info = request(&c, "$JS.API.INFO", &Value::Null).await;
    assert_eq!(info["reserved_storage"], 524288, "{info}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_fill_the_account_then_refuse_even_unlimited_streams() {
    let d = tempfile::tempdir().unwrap();
    let conf = format!(
        r#"listen: 127.0.0.1:-1
jetstream {{ store_dir: "{}", max_file: 10MB }}
accounts {{ A {{ jetstream {{ max_file: 3MB }}, users [ {{user: a, password: a}} ] }} }}
"#,
        d.path().display()
    );
    let s = start_conf(d.path(), &conf).await;
    let a = connect(&s, "a").await;
    let create =
        |name: &str, max_bytes: i64| serde_json::json!({"name": name, "max_bytes": max_bytes});
    let r = request(&a, "$JS.API.STREAM.CREATE.X1", &create("X1", 2 << 20)).await;
    assert!(r.get("error").is_none(), "{r}");
    let r = request(&a, "$JS.API.STREAM.CREATE.X2", &create("X2", (1 << 20) + 1)).await;
    assert_eq!(r["error"]["err_code"], 10047, "{r}");
    let r = request(&a, "$JS.API.STREAM.CREATE.X2", &create("X2", 1 << 20)).await;
    assert!(r.get("error").is_none(), "{r}");
    // Fully reserved: a stream without max_bytes asks for 1 byte and is refused, as in
    // nats-server.
    let r = request(&a, "$JS.API.STREAM.CREATE.X3", &create("X3", -1)).await;
    assert_eq!(r["error"]["err_code"], 10047, "{r}");
    // Deleting a stream releases its reservation.
    let r = request(&a, "$JS.API.STREAM.DELETE.X2", &Value::Null).await;
    assert_eq!(r["success"], true, "{r}");
    let r = request(&a, "$JS.API.STREAM.CREATE.X3", &create("X3", -1)).await;
    assert!(r.get("error").is_none(), "{r}");
    s.stop().await;
}

#[test]
fn startup_refused_when_accounts_exceed_the_server() {
    let d = tempfile::tempdir().unwrap();
    for (server, acc_a, acc_b, code) in [
        (
            "max_file: 10MB",
            "max_file: 8MB",
            "max_file: 3MB",
            "insufficient storage resources available (10047)",
        ),
        (
            "max_mem: 1MB, max_file: 1GB",
            "max_mem: 1MB",
            "max_mem: 1KB",
            "insufficient memory resources available (10028)",
        ),
    ] {
        let conf = write_conf(
            d.path(),
            &format!(
                r#"listen: 127.0.0.1:-1
jetstream {{ store_dir: "{}", {server} }}
accounts {{
  A {{ jetstream {{ {acc_a} }}, users [ {{user: a, password: a}} ] }}
  B {{ jetstream {{ {acc_b} }}, users [ {{user: b, password: b}} ] }}
}}
"#,
                d.path().display()
            ),
        );
        let out = std::process::Command::new(BIN)
            .arg("-c")
            .arg(&conf)
            .output()
            .expect("run natrium-server");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "must not start:\n{stderr}");
        assert_eq!(out.status.code(), Some(1));
        let msg = format!(
            "Can't start JetStream: Error enabling jetstream on configured accounts: {code}"
        );
        assert!(stderr.contains(&msg), "expected {msg:?} in:\n{stderr}");
    }
}

/// `backup_share` and `restore_share` (natrium keys) take their defaults, and a reload
/// changes them (transfers read them at every step); a bad value is refused and the
/// old ones stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_changes_the_backup_and_restore_shares() {
    use std::sync::atomic::Ordering::Relaxed;
    let d = tempfile::tempdir().unwrap();
    let conf = |extra: &str| {
        format!(
            "listen: 127.0.0.1:-1\njetstream {{ store_dir: \"{}\" {extra} }}\n",
            d.path().display()
        )
    };
    let path = write_conf(d.path(), &conf(""));
    let s = TestServer::with(config_file::load(&path).unwrap()).await;
    let shares = || {
        let js = s.server.shared().js.get().expect("jetstream on");
        (
            js.backup_share.load(Relaxed),
            js.restore_share.load(Relaxed),
        )
    };
    assert_eq!(shares(), (10, 100), "defaults");
    std::fs::write(&path, conf(", backup_share: 40, restore_share: 7")).unwrap();
    natrium_server::signals::reload(&s.server, &Flags::default()).expect("reload");
    assert_eq!(shares(), (40, 7));
    std::fs::write(&path, conf(", backup_share: 0")).unwrap();
    let e = natrium_server::signals::reload(&s.server, &Flags::default()).unwrap_err();
    assert!(e.contains("backup_share must be a percentage"), "{e}");
    assert_eq!(shares(), (40, 7), "a refused reload changes nothing");
    std::fs::write(&path, conf("")).unwrap();
    natrium_server::signals::reload(&s.server, &Flags::default()).expect("reload");
    assert_eq!(shares(), (10, 100), "back to the defaults");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_changes_limits_and_refuses_overcommit() {
    let d = tempfile::tempdir().unwrap();
    let conf3 = |server: &str, acc: &str, extra: &str| {
        format!(
            r#"listen: 127.0.0.1:-1
jetstream {{ store_dir: "{}", {server} }}
accounts {{
  A {{ jetstream {{ {acc} }}, users [ {{user: a, password: a}} ] }}
  SYS {{ users [ {{user: sys, password: sys}} ] }}
  {extra}
}}
system_account: SYS
"#,
            d.path().display()
        )
    };
    let conf = |server: &str, acc: &str| conf3(server, acc, "");
    let path = write_conf(d.path(), &conf("max_file: 4MB", "max_file: 2MB"));
    // `listen: 127.0.0.1:-1` picks a random port; keep it as loaded so reloads compare equal.
    let s = TestServer::with(config_file::load(&path).unwrap()).await;
    let a = connect(&s, "a").await;
    let big = serde_json::json!({"name": "BIG", "max_bytes": 3 << 20});
    let r = request(&a, "$JS.API.STREAM.CREATE.BIG", &big).await;
    assert_eq!(r["error"]["err_code"], 10047, "{r}");

    // Raise both limits: the same request now passes.
    std::fs::write(&path, conf("max_file: 8MB", "max_file: 6MB")).unwrap();
    natrium_server::signals::reload(&s.server, &Flags::default()).expect("reload");
    let info = request(&a, "$JS.API.INFO", &Value::Null).await;
    assert_eq!(info["limits"]["max_storage"], 6 << 20, "{info}");
    let r = request(&a, "$JS.API.STREAM.CREATE.BIG", &big).await;
    assert!(r.get("error").is_none(), "{r}");

    // An account limit over the server's is refused with nats-server's message, and the
    // old limits stay.
    std::fs::write(&path, conf("max_file: 8MB", "max_file: 9MB")).unwrap();
    let e = natrium_server::signals::reload(&s.server, &Flags::default()).unwrap_err();
    assert_eq!(
        e,
        "Error enabling jetstream on configured accounts: insufficient storage resources available (10047)"
    );
    let info = request(&a, "$JS.API.INFO", &Value::Null).await;
    assert_eq!(info["limits"]["max_storage"], 6 << 20, "{info}");

    // -1 lifts the account's limit (the server's is then its own, here 4 TiB).
    std::fs::write(&path, conf("max_file: 4T", "max_file: -1")).unwrap();
    natrium_server::signals::reload(&s.server, &Flags::default()).expect("reload");
    let huge = serde_json::json!({"name": "HUGE", "max_bytes": 1i64 << 41});
    let r = request(&a, "$JS.API.STREAM.CREATE.HUGE", &huge).await;
    assert!(r.get("error").is_none(), "{r}");

    // An account added by a reload gets JetStream, checked the same way.
    let with_b = conf3(
        "max_file: 4T",
        "max_file: -1",
        "B { jetstream { max_file: 1MB }, users [ {user: b, password: b} ] }",
    );
    std::fs::write(&path, with_b).unwrap();
    natrium_server::signals::reload(&s.server, &Flags::default()).expect("reload");
    let b = connect(&s, "b").await;
    let info = request(&b, "$JS.API.INFO", &Value::Null).await;
    assert_eq!(info["limits"]["max_storage"], 1 << 20, "{info}");
    s.stop().await;
}

/// A minimal HTTP/1.0 GET: (status, content type, body).
async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .expect("send");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut raw))
        .await
        .expect("answer in time")
        .expect("read");
    let text = String::from_utf8(raw).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("head/body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let ctype = head
        .split("\r\n")
        .filter_map(|l| l.split_once(": "))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.to_string())
        .unwrap_or_default();
    (status, ctype, body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_healthz_and_jsz_show_usage_against_limits() {
    let d = tempfile::tempdir().unwrap();
    let conf = format!(
        r#"listen: 127.0.0.1:-1
http: 127.0.0.1:-1
jetstream {{ store_dir: "{}", max_file: 100MB, max_mem: 10MB }}
accounts {{ A {{ jetstream {{ max_file: 1MB }}, users [ {{user: a, password: a}} ] }} }}
"#,
        d.path().display()
    );
    let s = TestServer::with(load(d.path(), &conf).unwrap()).await;
    let mon = natrium_server::monitor::start(s.server.shared().clone())
        .await
        .expect("monitor starts")
        .expect("monitoring enabled");
    let a = connect(&s, "a").await;
    let r = request(
        &a,
        "$JS.API.STREAM.CREATE.S",
        &serde_json::json!({"name": "S", "max_bytes": 1000000}),
    )
    .await;
    assert!(r.get("error").is_none(), "{r}");

    // Below 90%: healthy, no warnings.
    let (code, _, body) = http_get(mon.addr, "/healthz").await;
    assert_eq!((code, body.as_str()), (200, r#"{"status":"ok"}"#));

    // 950 KiB stored: 97% of the stream's max_bytes and 92% of the account's max_file.
    let m = a.request("S", vec![1u8; 950 * 1024].into()).await.unwrap();
    let ack: Value = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(ack["seq"], 1, "{ack}");
    let used = 950 * 1024 + 22 + 1 + 8;

    let (code, ctype, body) = http_get(mon.addr, "/healthz").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(ctype, "application/json");
    let h: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h["status"], "ok");
    let w = h["warnings"].as_array().expect("warnings");
    assert_eq!(w.len(), 2, "{h}");
    assert_eq!(w[0]["type"], "JETSTREAM");
    assert_eq!(w[0]["account"], "A");
    assert_eq!(
        w[0]["error"],
        format!("account \"A\" file storage at 92% of its limit ({used} of 1048576 bytes)")
    );
    assert_eq!(w[1]["stream"], "S");
    assert!(
        w[1]["error"]
            .as_str()
            .unwrap()
            .contains("at 97% of its limit"),
        "{h}"
    );
    // Probes that skip JetStream see no warnings.
    let (_, _, body) = http_get(mon.addr, "/healthz?js-server-only=true").await;
    assert_eq!(body, r#"{"status":"ok"}"#);

    // Prometheus text exposition.
    let (code, ctype, body) = http_get(mon.addr, "/metrics").await;
    assert_eq!(code, 200);
    assert_eq!(ctype, "text/plain; version=0.0.4; charset=utf-8");
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').expect("name value");
        assert!(value.parse::<f64>().is_ok(), "{line}");
        assert!(series.starts_with("natrium_jetstream_"), "{line}");
    }
    for want in [
        format!("natrium_jetstream_server_used_bytes{{storage=\"file\"}} {used}"),
        "natrium_jetstream_server_limit_bytes{storage=\"file\"} 104857600".to_string(),
        "natrium_jetstream_server_reserved_bytes{storage=\"file\"} 1000000".to_string(),
        "natrium_jetstream_server_limit_bytes{storage=\"memory\"} 10485760".to_string(),
        format!("natrium_jetstream_account_used_bytes{{account=\"A\",storage=\"file\"}} {used}"),
        "natrium_jetstream_account_limit_bytes{account=\"A\",storage=\"file\"} 1048576".to_string(),
        "natrium_jetstream_account_limit_bytes{account=\"A\",storage=\"memory\"} -1".to_string(),
        format!(
            "natrium_jetstream_stream_used_bytes{{account=\"A\",stream=\"S\",storage=\"file\"}} {used}"
        ),
        "natrium_jetstream_stream_limit_bytes{account=\"A\",stream=\"S\",storage=\"file\"} 1000000"
            .to_string(),
        "natrium_jetstream_account_streams{account=\"A\"} 1".to_string(),
    ] {
        assert!(
            body.contains(&format!("{want}\n")),
            "missing {want:?} in:\n{body}"
        );
    }
    assert!(body.contains("# TYPE natrium_jetstream_limit_used_ratio gauge\n"));

    // /jsz: server reservations at the top, account limits as the account's reservation.
    let (code, _, body) = http_get(mon.addr, "/jsz?acc=A").await;
    assert_eq!(code, 200, "{body}");
    let j: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(j["storage"], used);
    assert_eq!(j["reserved_storage"], 1000000);
    assert_eq!(j["config"]["max_storage"], 104857600);
    assert_eq!(j["account_details"][0]["name"], "A");
    assert_eq!(j["account_details"][0]["storage"], used);
    assert_eq!(j["account_details"][0]["reserved_storage"], 1048576);
    let (_, _, body) = http_get(mon.addr, "/jsz").await;
    let j: Value = serde_json::from_str(&body).unwrap();
    assert!(j.get("account_details").is_none(), "{j}");
    assert_eq!(j["streams"], 1);

    // /accountz: the account's JetStream usage, reservations and limits.
    let (code, _, body) = http_get(mon.addr, "/accountz?acc=A").await;
    assert_eq!(code, 200, "{body}");
    let z: Value = serde_json::from_str(&body).unwrap();
    let j = &z["account_detail"]["jetstream"];
    assert_eq!(z["account_detail"]["jetstream_enabled"], true);
    assert_eq!(j["storage"], used, "{z}");
    assert_eq!(j["reserved_storage"], 1000000);
    assert_eq!(j["streams"], 1);
    assert_eq!(j["limits"]["max_storage"], 1048576);
    drop(mon);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_limit_refuses_publishes_once_usage_is_over_it() {
    let d = tempfile::tempdir().unwrap();
    let conf = format!(
        "listen: 127.0.0.1:-1\njetstream {{ store_dir: \"{}\", max_file: 1MB }}\n",
        d.path().display()
    );
    let s = start_conf(d.path(), &conf).await;
    let c = s.client().await;
    let r = request(
        &c,
        "$JS.API.STREAM.CREATE.S",
        &serde_json::json!({"name": "S"}),
    )
    .await;
    assert!(r.get("error").is_none(), "{r}");
    // As in nats-server the check is "usage already over the limit": the message that
    // crosses it is stored, the next one is refused with 10023.
    let mut answers = Vec::new();
    for _ in 0..3 {
        let m = c.request("S", vec![0u8; 600 * 1024].into()).await.unwrap();
        answers.push(serde_json::from_slice::<Value>(&m.payload).unwrap());
    }
    assert_eq!(answers[0]["seq"], 1, "{answers:?}");
    assert_eq!(answers[1]["seq"], 2, "{answers:?}");
    let e = &answers[2]["error"];
    assert_eq!(
        (e["code"].as_u64(), e["err_code"].as_u64()),
        (Some(503), Some(10023)),
        "{e}"
    );
    let used = 2 * (600 * 1024 + 22 + 1 + 8);
    assert_eq!(
        e["description"],
        format!("insufficient resources (server file limit 1048576, used {used})")
    );
    // Freeing space lets publishing continue.
    let r = request(&c, "$JS.API.STREAM.PURGE.S", &Value::Null).await;
    assert_eq!(r["success"], true, "{r}");
    let m = c.request("S", vec![0u8; 600 * 1024].into()).await.unwrap();
    let v: Value = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(v["seq"], 3, "{v}");
    // A deleted stream's bytes stop counting (usage is kept as running totals that
    // each store updates, so a stream leaving must take its share out).
    let r = request(&c, "$JS.API.STREAM.DELETE.S", &Value::Null).await;
    assert_eq!(r["success"], true, "{r}");
    let r = request(
        &c,
        "$JS.API.STREAM.CREATE.T",
        &serde_json::json!({"name": "T"}),
    )
    .await;
    assert!(r.get("error").is_none(), "{r}");
    for seq in 1..=2 {
        let m = c.request("T", vec![0u8; 600 * 1024].into()).await.unwrap();
        let v: Value = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(v["seq"], seq, "{v}");
    }
    let m = c.request("T", vec![0u8; 600 * 1024].into()).await.unwrap();
    let v: Value = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(v["error"]["err_code"], 10023, "{v}");
    s.stop().await;
    // After a restart the recovered stream's bytes count again.
    let s = start_conf(d.path(), &conf).await;
    let c = s.client().await;
    let m = c.request("T", vec![0u8; 600 * 1024].into()).await.unwrap();
    let v: Value = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(
        v["error"]["description"],
        format!("insufficient resources (server file limit 1048576, used {used})"),
        "{v}"
    );
    s.stop().await;
}

#[test]
fn startup_log_says_how_each_limit_was_chosen() {
    let d = tempfile::tempdir().unwrap();
    let run = |conf: &str| -> String {
        let path = d.path().join("log.conf");
        std::fs::write(&path, conf).unwrap();
        let log = d.path().join("server.log");
        let _ = std::fs::remove_file(&log);
        let mut child = std::process::Command::new(BIN)
            .arg("-c")
            .arg(&path)
            .arg("-l")
            .arg(&log)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        let start = std::time::Instant::now();
        let text = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("Server is ready") || start.elapsed() > Duration::from_secs(10) {
                break text;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let _ = child.kill();
        let _ = child.wait();
        text
    };
    let text = run(&format!(
        "listen: 127.0.0.1:-1\njetstream {{ store_dir: \"{}\" }}\n",
        d.path().display()
    ));
    assert!(
        text.contains("JetStream limits: max memory computed as 75% of physical memory, max storage computed as 75% of the disk space available at start ("),
        "{text}"
    );
    assert!(text.contains("already used by the store)"), "{text}");
    let text = run(&format!(
        "listen: 127.0.0.1:-1\njetstream {{ store_dir: \"{}\", max_mem: -1, max_file: 5MB }}\n",
        d.path().display()
    ));
    // -1 is the computed default, as in nats-server (not "unlimited").
    assert!(!text.contains("  Max Memory:      unlimited"), "{text}");
    assert!(text.contains("  Max Storage:     5.00 MB"), "{text}");
    assert!(
        text.contains("JetStream limits: max memory computed as 75% of physical memory, max storage as configured"),
        "{text}"
    );
}
