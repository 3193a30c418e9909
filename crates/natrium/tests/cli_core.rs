//! `natrium pub/sub/request/reply`, `server …` and bad-input handling, run
//! as a user would against natrium-server and (when installed) nats-server.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{Kind, NATRIUM, Server, assert_one_line_error, natrium};
use serde_json::Value;

/// Starts a long-running natrium command and waits for `ready` on stderr.
fn spawn_until(
    url: &str,
    args: &[&str],
    ready: &str,
) -> (std::process::Child, mpsc::Receiver<String>) {
    let mut child = Command::new(NATRIUM)
        .arg("-s")
        .arg(url)
        .args(args)
        .env_remove("NATS_URL")
        .env(
            "XDG_CONFIG_HOME",
            std::env::temp_dir().join("natrium-test-no-config"),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn natrium");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.contains(ready) => break,
            Ok(_) => continue,
            Err(_) => {
                let _ = child.kill();
                panic!("natrium {args:?} never printed {ready:?}");
            }
        }
    }
    (child, rx)
}

/// Waits for a child to exit (at most 15 s) and returns its stdout.
fn finish(mut child: std::process::Child) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            let mut out = String::new();
            use std::io::Read;
            child
                .stdout
                .take()
                .expect("stdout")
                .read_to_string(&mut out)
                .expect("read");
            assert!(st.success(), "child failed ({st}): {out}");
            return out;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn pub_sub_with_templates_and_headers() {
    for s in Server::both("pub_sub_with_templates_and_headers") {
        let (sub, _err) = spawn_until(
            &s.url,
            &["sub", "demo.>", "--count", "3", "--json"],
            "Subscribing on",
        );
        let out = s.ok(&[
            "pub",
            "demo.x",
            "n={{Count}}",
            "--count",
            "3",
            "-H",
            "k:v{{Count}}",
        ]);
        assert_eq!(out.matches(">>> Published").count(), 3, "{out}");
        let p: Value =
            serde_json::from_str(s.ok(&["pub", "other", "{{Random 5 5}}", "--json"]).trim())
                .expect("json");
        assert_eq!(p["bytes"], 5);
        assert_eq!(p["subject"], "other");
        let text = finish(sub);
        let msgs: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        assert_eq!(msgs.len(), 3, "{:?}: {text}", s.kind);
        for (i, m) in msgs.iter().enumerate() {
            assert_eq!(m["subject"], "demo.x");
            assert_eq!(m["data"], format!("n={}", i + 1));
            assert_eq!(m["headers"]["k"][0], format!("v{}", i + 1));
        }
    }
}

#[test]
fn sub_raw_with_queue_and_headers_only() {
    let s = Server::natrium();
    let (sub, _e) = spawn_until(
        &s.url,
        &["sub", "q.*", "--queue", "workers", "--raw", "--count", "2"],
        "in group workers",
    );
    s.ok(&["pub", "q.a", "first", "-q"]);
    s.ok(&["pub", "q.b", "second", "-q"]);
    assert_eq!(finish(sub), "first\nsecond\n");

    let (sub, _e) = spawn_until(
        &s.url,
        &["sub", "h", "--headers-only", "--count", "1"],
        "Subscribing",
    );
    s.ok(&["pub", "h", "body-not-shown", "-H", "X-Trace:abc"]);
    let out = finish(sub);
    assert!(out.contains("X-Trace: abc"), "{out}");
    assert!(!out.contains("body-not-shown"), "{out}");
}

#[test]
fn request_reply_templated() {
    for s in Server::both("request_reply_templated") {
        let (rep, _e) = spawn_until(
            &s.url,
            &[
                "reply",
                "svc.echo",
                "re[{{Count}}]: {{Request}}",
                "--count",
                "2",
            ],
            "Listening on",
        );
        assert_eq!(
            s.ok(&["request", "svc.echo", "hello", "--raw"]),
            "re[1]: hello\n"
        );
        let v: Value =
            serde_json::from_str(s.ok(&["request", "svc.echo", "again", "--json"]).trim())
                .expect("json");
        assert_eq!(v["data"], "re[2]: again");
        assert!(v["rtt_ns"].as_u64().expect("rtt") > 0);
        let served = finish(rep);
        assert!(served.contains("[#2] Received on \"svc.echo\""), "{served}");
        assert!(served.contains("again"), "{served}");

        let (code, err) = s.fails(&["request", "nobody.home", "x", "--timeout", "2s"]);
        assert_eq!(code, 1);
        assert_one_line_error(&err);
        assert!(err.contains("no responders"), "{err}");
    }
}

#[test]
fn server_ping_info_and_checks() {
    for s in Server::both("server_ping_info_and_checks") {
        let ping = s.json(&["server", "ping", "--count", "2"]);
        let arr = ping.as_array().expect("array");
        assert!(!arr.is_empty());
        assert!(arr.iter().all(|p| p["rtt_ns"].as_u64().is_some()));

        let info = s.json(&["server", "info"]);
        let id = info
            .get("server_id")
            .or_else(|| info.pointer("/data/server_id"))
            .and_then(Value::as_str)
            .expect("server_id");
        assert!(!id.is_empty());

        let out = s.ok(&[
            "server",
            "check",
            "connection",
            "--connect-warn",
            "5s",
            "--connect-critical",
            "10s",
        ]);
        assert!(out.starts_with("CONNECTION OK: "), "{out}");
        assert!(out.contains("|connect_time="), "{out}");

        // A zero warning threshold must warn (exit 1); a zero critical one
        // must be critical (exit 2).
        let o = s.run(&[
            "server",
            "check",
            "connection",
            "--rtt-warn",
            "0s",
            "--connect-warn",
            "5s",
            "--connect-critical",
            "10s",
            "--rtt-critical",
            "10s",
        ]);
        assert_eq!(o.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&o.stdout).starts_with("CONNECTION WARNING: "));
        let o = s.run(&[
            "server",
            "check",
            "connection",
            "--connect-warn",
            "0s",
            "--connect-critical",
            "0s",
        ]);
        assert_eq!(o.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&o.stdout).starts_with("CONNECTION CRITICAL: "));

        let out = s.ok(&["server", "check", "jetstream"]);
        assert!(out.starts_with("JETSTREAM OK: "), "{out}");

        s.ok(&["stream", "add", "CHK", "--subjects", "chk", "--defaults"]);
        s.ok(&["pub", "chk", "x", "--count", "2", "-q"]);
        let mut code = None;
        for _ in 0..50 {
            let o = s.run(&[
                "server",
                "check",
                "stream",
                "--stream",
                "CHK",
                "--msgs-warn",
                "5",
                "--msgs-critical",
                "1",
            ]);
            let text = String::from_utf8_lossy(&o.stdout).to_string();
            if text.contains("CHK has 2 messages") {
                assert!(text.starts_with("STREAM WARNING: "), "{text}");
                code = o.status.code();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(code, Some(1), "{:?}", s.kind);
        let o = s.run(&["server", "check", "stream", "--stream", "MISSING"]);
        assert_eq!(o.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&o.stdout).starts_with("STREAM CRITICAL: "));
    }
}

#[test]
fn unreachable_server_is_critical_and_one_line() {
    let o = natrium(
        Some("nats://127.0.0.1:1"),
        &["server", "check", "connection", "--timeout", "2s"],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("CONNECTION CRITICAL: "));

    let o = natrium(
        Some("nats://127.0.0.1:1"),
        &["stream", "ls", "--timeout", "2s"],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_one_line_error(&err);
    assert!(
        err.contains("cannot connect to nats://127.0.0.1:1"),
        "{err}"
    );
}

#[test]
fn bad_input_gets_one_clear_line() {
    // Unknown flag: usage error, exit 2.
    let o = natrium(None, &["stream", "ls", "--bogus"], &[]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_one_line_error(&err);
    assert!(err.contains("--bogus"), "{err}");

    // A missing argument is named; a bad value lists the good ones.
    let o = natrium(None, &["stream", "info"], &[]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_one_line_error(&err);
    assert!(err.contains("<NAME>"), "{err}");
    let o = natrium(None, &["stream", "add", "X", "--storage", "disk"], &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_one_line_error(&err);
    assert!(err.contains("possible values: file, memory"), "{err}");

    // Bad server URL.
    let o = natrium(Some("nats://[bad"), &["stream", "ls"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert_one_line_error(&String::from_utf8_lossy(&o.stderr));

    // Bad template.
    let o = natrium(None, &["pub", "x", "{{Nope}}"], &[]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_one_line_error(&err);
    assert!(err.contains("Nope"), "{err}");

    // A bad JSON configuration file.
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{ not json").expect("write");
    let s = Server::natrium();
    let (code, err) = s.fails(&[
        "stream",
        "add",
        "X",
        "--config",
        bad.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 1);
    assert_one_line_error(&err);
    assert!(err.contains("is not valid JSON"), "{err}");

    // A missing credentials file.
    let (code, err) = s.fails(&["stream", "ls", "--creds", "/nonexistent/x.creds"]);
    assert_eq!(code, 1);
    assert_one_line_error(&err);
    assert!(err.contains("/nonexistent/x.creds"), "{err}");
}

#[test]
fn auth_failure_and_user_password() {
    let s = Server::natrium_with(&["--user", "alice", "--pass", "s3cret"]);
    assert_eq!(s.kind, Kind::Natrium);
    let (code, err) = s.fails(&["stream", "ls", "--timeout", "3s"]);
    assert_eq!(code, 1);
    assert_one_line_error(&err);
    assert!(err.to_lowercase().contains("authorization"), "{err}");
    let (_, err) = s.fails(&[
        "--user",
        "alice",
        "--password",
        "wrong",
        "stream",
        "ls",
        "--timeout",
        "3s",
    ]);
    assert_one_line_error(&err);
    let out = s.ok(&[
        "--user",
        "alice",
        "--password",
        "s3cret",
        "server",
        "check",
        "connection",
        "--connect-warn",
        "5s",
        "--connect-critical",
        "10s",
    ]);
    assert!(out.starts_with("CONNECTION OK"), "{out}");

    // A context carries the credentials.
    let cfg = tempfile::tempdir().expect("tempdir");
    let home = cfg.path().to_str().expect("utf8");
    let env = [("XDG_CONFIG_HOME", home)];
    let o = natrium(
        Some(&s.url),
        &[
            "context",
            "add",
            "alice",
            "--user",
            "alice",
            "--password",
            "s3cret",
            "--select",
        ],
        &env,
    );
    assert!(o.status.success());
    let saved =
        std::fs::read_to_string(cfg.path().join("natrium/context/alice.json")).expect("saved");
    assert!(saved.contains("\"user\": \"alice\""), "{saved}");
    let o = natrium(None, &["stream", "ls", "--json"], &env);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "[]");
    // The password is not shown back.
    let o = natrium(None, &["context", "info", "alice", "--json"], &env);
    let shown = String::from_utf8_lossy(&o.stdout);
    assert!(!shown.contains("s3cret"), "{shown}");
}

#[test]
fn token_auth() {
    let s = Server::natrium_with(&["--auth", "tok123"]);
    let (code, err) = s.fails(&["account", "info", "--timeout", "3s"]);
    assert_eq!(code, 1);
    assert_one_line_error(&err);
    let v = s.json(&["--token", "tok123", "account", "info"]);
    assert_eq!(v["streams"], 0);
    let (_, err) = s.fails(&["--token", "wrong", "account", "info", "--timeout", "3s"]);
    assert_one_line_error(&err);
}

/// `server list` and `server request` with a system account user, against both servers;
/// without one they fail and say why.
#[test]
fn server_list_and_request_need_the_system_account() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("sys.conf");
    std::fs::write(
        &conf,
        "accounts {\n  SYS { users [{user: sys, password: sys}] }\n  \
         A { users [{user: a, password: a}], jetstream: enabled }\n}\nsystem_account: SYS\n",
    )
    .expect("write config");
    let conf = conf.to_str().expect("utf8");
    let servers: Vec<Server> = std::iter::once(Server::natrium_with(&["-c", conf]))
        .chain(Server::nats_with("server_list_and_request", &["-c", conf]))
        .collect();
    for s in servers {
        let k = s.kind;
        let sys = format!("nats://sys:sys@127.0.0.1:{}", s.port);
        let user = format!("nats://a:a@127.0.0.1:{}", s.port);
        let run = |url: &str, args: &[&str]| natrium(Some(url), args, &[]);
        let json = |url: &str, args: &[&str]| -> Value {
            let mut a = args.to_vec();
            a.push("--json");
            let out = run(url, &a);
            assert!(
                out.status.success(),
                "{k:?} {a:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice(&out.stdout).expect("json")
        };

        let list = json(&sys, &["server", "list"]);
        let list = list.as_array().expect("array");
        assert_eq!(list.len(), 1, "{k:?}");
        let id = list[0]["server"]["id"].as_str().expect("id").to_string();
        assert!(
            list[0]["statsz"]["connections"].as_u64().expect("conns") >= 1,
            "{k:?}"
        );
        let table = run(&sys, &["server", "list", "--sort", "conns", "-R"]);
        let table = String::from_utf8_lossy(&table.stdout);
        assert!(
            table.contains("Server Overview: 1 servers"),
            "{k:?}: {table}"
        );

        let varz = json(&sys, &["server", "request", "variables"]);
        assert_eq!(varz[0]["data"]["server_id"], id.as_str(), "{k:?}");
        assert_eq!(varz[0]["server"]["id"], id.as_str());
        let connz = json(
            &sys,
            &[
                "server",
                "request",
                "connections",
                "--options",
                r#"{"subscriptions":true}"#,
            ],
        );
        let conns = connz[0]["data"]["connections"]
            .as_array()
            .expect("connections");
        assert!(
            conns.iter().all(|c| c.get("subscriptions_list").is_some()),
            "{k:?}: {connz}"
        );
        let health = json(&sys, &["server", "request", "health"]);
        assert_eq!(health[0]["data"]["status"], "ok", "{k:?}");

        let bad = run(&sys, &["server", "request", "jsz", "--options", "[1]"]);
        assert!(!bad.status.success());
        assert!(String::from_utf8_lossy(&bad.stderr).contains("must be a JSON object"));

        // Not the system account: nobody answers, and the CLI says why.
        let out = run(&user, &["server", "list"]);
        assert!(!out.status.success(), "{k:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_one_line_error(&err);
        assert!(
            err.contains("needs a user of the system account"),
            "{k:?}: {err}"
        );
    }
}

/// `server passwd` makes bcrypt hashes a config's `password` accepts.
#[test]
fn server_passwd_hashes_with_bcrypt() {
    let out = natrium(
        None,
        &["server", "passwd", "--pass", "correct horse", "--cost", "4"],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(hash.starts_with("$2"), "{hash}");
    assert!(bcrypt::verify("correct horse", &hash).expect("verify"));
    assert!(!bcrypt::verify("wrong horse!", &hash).expect("verify"));

    // From the environment, as `nats server passwd` reads PASSWORD.
    let out = natrium(
        None,
        &["server", "passwd", "--cost", "4", "--json"],
        &[("PASSWORD", "from the env")],
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(bcrypt::verify("from the env", v["hash"].as_str().expect("hash")).expect("verify"));

    let out = natrium(
        None,
        &["server", "passwd", "--generate", "--cost", "4"],
        &[],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines();
    let pass = lines
        .next()
        .and_then(|l| l.strip_prefix("Generated password: "))
        .expect("password line");
    assert_eq!(pass.len(), 22);
    let hash = lines
        .next()
        .and_then(|l| l.trim().strip_prefix("bcrypt hash: "))
        .expect("hash line");
    assert!(bcrypt::verify(pass, hash).expect("verify"));

    // Too short, or a cost bcrypt does not take: refused, nothing printed.
    let out = natrium(None, &["server", "passwd", "--pass", "short"], &[]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 10 characters"));
    let out = natrium(
        None,
        &["server", "passwd", "--pass", "long enough!", "--cost", "3"],
        &[],
    );
    assert!(!out.status.success());

    // From stdin off a terminal.
    let mut child = Command::new(NATRIUM)
        .args(["server", "passwd", "--cost", "4"])
        .env_remove("PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"piped password\n").expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(bcrypt::verify("piped password", &hash).expect("verify"));
}
