//! The `natrium-server` binary as tools use `nats-server`: started as a child process with
//! Go-style flags, its log read for the port and readiness, signalled to reload, to enter
//! lame-duck mode and to stop, and refusing a bad config before any port opens.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_natrium-server");

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("natrium-bin-{}-{}", name, std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A child server that is killed (by PID) when dropped.
struct Proc {
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(args: &[&str]) -> Proc {
    let child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn natrium-server");
    Proc { child }
}

/// Wait until `file` contains `needle`, returning the whole text.
fn wait_for_log(file: &Path, needle: &str, limit: Duration) -> String {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            start.elapsed() < limit,
            "timed out waiting for {needle:?} in log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The port from `Listening for client connections on HOST:PORT`.
fn port_from_log(text: &str) -> u16 {
    let line = text
        .lines()
        .find(|l| l.contains("Listening for client connections on "))
        .expect("listening line");
    line.rsplit(':').next().unwrap().trim().parse().unwrap()
}

fn wait_exit(p: &mut Proc, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(st) = p.child.try_wait().unwrap() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// `natrium-server --signal WHAT=PID` for the server `p`; whether it succeeded.
fn signal(p: &Proc, what: &str) -> bool {
    Command::new(BIN)
        .args(["--signal", &format!("{what}={}", p.child.id())])
        .status()
        .unwrap()
        .success()
}

/// A raw client that sent `connect` and got the PONG of its PING (5 s read timeout).
fn connected(port: u16, connect: &str) -> TcpStream {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(format!("CONNECT {connect}\r\nPING\r\n").as_bytes())
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("PONG") {
        let n = c.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "closed before PONG: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    c
}

/// Everything `c` receives until the server closes it or its read timeout passes, and
/// whether it was closed (false: the timeout, still open).
fn read_until_closed(c: &mut TcpStream) -> (String, bool) {
    let mut rest = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match c.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => rest.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break false;
            }
            Err(_) => break true,
        }
    };
    (String::from_utf8_lossy(&rest).into_owned(), closed)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn random_port_log_and_pid_files() {
    let d = tmpdir("ports");
    let log = d.join("server.log");
    let pid = d.join("server.pid");
    let p = spawn(&[
        "-a",
        "127.0.0.1",
        "-p",
        "-1",
        "-l",
        log.to_str().unwrap(),
        "-P",
        pid.to_str().unwrap(),
    ]);
    let text = wait_for_log(&log, "Server is ready", Duration::from_secs(10));
    let port = port_from_log(&text);
    assert_ne!(port, 4222);
    // nats-server's line shape: "[PID] date time [INF] Listening for client connections on HOST:PORT"
    let line = text.lines().find(|l| l.contains("Listening")).unwrap();
    assert!(line.starts_with(&format!("[{}] ", p.child.id())), "{line}");
    assert!(line.contains("[INF] Listening for client connections on 127.0.0.1:"));
    let written: u32 = std::fs::read_to_string(&pid)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(written, p.child.id());
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 5];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"INFO ");
}

#[test]
fn store_dir_with_go_equals_syntax() {
    let d = tmpdir("sd");
    let log = d.join("server.log");
    let sd = format!("-sd={}", d.join("data").display());
    let _p = spawn(&["-p=-1", "-js", &sd, "-l", log.to_str().unwrap()]);
    let text = wait_for_log(&log, "Server is ready", Duration::from_secs(10));
    let want = format!(
        "Store Directory: \"{}\"",
        d.join("data/jetstream").display()
    );
    assert!(text.contains(&want), "{text}");
    assert!(d.join("data/jetstream").is_dir());
}

#[test]
fn flags_override_the_config_file() {
    let d = tmpdir("override");
    let conf = d.join("a.conf");
    let fixed = free_port();
    std::fs::write(&conf, format!("port: {fixed}\nserver_name: from_file\n")).unwrap();
    let log = d.join("server.log");
    let _p = spawn(&[
        "-c",
        conf.to_str().unwrap(),
        "-p",
        "-1",
        "-n",
        "from_flag",
        "-l",
        log.to_str().unwrap(),
    ]);
    let text = wait_for_log(&log, "Server is ready", Duration::from_secs(10));
    assert_ne!(port_from_log(&text), fixed);
    assert!(text.contains("Name:     from_flag"), "{text}");
    assert!(text.contains("Using configuration file"));
}

#[test]
fn bad_config_fails_before_any_port_opens() {
    let d = tmpdir("badconf");
    let conf = d.join("bad.conf");
    let port = free_port();
    std::fs::write(&conf, format!("port: {port}\nbogus_key: 1\n")).unwrap();
    let out = Command::new(BIN)
        .args(["-c", conf.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.conf:2:1: unknown field \"bogus_key\""),
        "{err}"
    );
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

/// `-sd` beside a config file's `store_dir` is refused, as nats-server refuses it.
#[test]
fn store_dir_flag_beside_the_files_store_dir_is_refused() {
    let d = tmpdir("sd-dup");
    let conf = d.join("c.conf");
    std::fs::write(
        &conf,
        format!("jetstream {{ store_dir: {:?} }}\n", d.join("a").display()),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["-c", conf.to_str().unwrap(), "-sd"])
        .arg(d.join("b"))
        .args(["-a", "127.0.0.1", "-p", "-1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Duplicate 'store_dir' configuration"), "{err}");
}

/// Words after the flags are a command, as nats-server reads them: `version`, `help`,
/// or an error (never a server started with them ignored).
#[test]
fn commands_after_the_flags() {
    let out = Command::new(BIN).arg("version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("nats-server: v2.15.1"));
    let out = Command::new(BIN).arg("help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage:"));
    for args in [&["foo"][..], &["-p", "-1", "--", "-p", "5"]] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("unrecognized command: \""), "{args:?}: {err}");
    }
}

#[test]
fn config_check_mode() {
    let d = tmpdir("check");
    let good = d.join("good.conf");
    std::fs::write(&good, "port: 4222\nmax_payload: 1MB\n").unwrap();
    let out = Command::new(BIN)
        .args(["-t", "-c", good.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    // On stderr, as nats-server prints it.
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("is valid (sha256:"), "{text}");
    // A warning fails the check, as in nats-server: an integer duration, an empty file.
    for (name, text, says) in [
        (
            "warn.conf",
            "ping_interval: 30\n",
            "ping_interval should be converted to a duration",
        ),
        (
            "empty.conf",
            "# nothing\n",
            "config has no values or is empty",
        ),
    ] {
        let f = d.join(name);
        std::fs::write(&f, text).unwrap();
        let out = Command::new(BIN)
            .args(["-t", "-c", f.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{name}: {err}");
    }
    let bad = d.join("bad.conf");
    std::fs::write(&bad, "port: [1, 2\n").unwrap();
    let out = Command::new(BIN)
        .args(["-t", "-c", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.conf:"));
}

#[test]
fn help_version_and_unknown_flags() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--store_dir"));
    let out = Command::new(BIN).arg("-v").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("nats-server: v2.15.1"));
    let out = Command::new(BIN).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("flag provided but not defined: -bogus"));
}

#[test]
fn signal_term_by_pid_file_stops_cleanly() {
    let d = tmpdir("term");
    let log = d.join("server.log");
    let pid = d.join("server.pid");
    let mut p = spawn(&[
        "-p",
        "-1",
        "-l",
        log.to_str().unwrap(),
        "-P",
        pid.to_str().unwrap(),
    ]);
    wait_for_log(&log, "Server is ready", Duration::from_secs(10));
    let st = Command::new(BIN)
        .arg(format!("--signal=term={}", pid.display()))
        .status()
        .unwrap();
    assert!(st.success());
    let status = wait_exit(&mut p, Duration::from_secs(10)).expect("server exits");
    assert!(status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("Trapped \"terminated\" signal"));
    assert!(text.contains("Server Exiting.."));
}

#[test]
fn sighup_reloads_logging_and_keeps_old_config_on_error() {
    let d = tmpdir("reload");
    let conf = d.join("r.conf");
    let log = d.join("server.log");
    std::fs::write(&conf, "port: -1\ndebug: false\n").unwrap();
    let p = spawn(&["-c", conf.to_str().unwrap(), "-l", log.to_str().unwrap()]);
    let text = wait_for_log(&log, "Server is ready", Duration::from_secs(10));
    let port = port_from_log(&text);
    std::fs::write(&conf, "port: -1\ndebug: true\n").unwrap();
    assert!(signal(&p, "reload"));
    wait_for_log(
        &log,
        "Reloaded server configuration",
        Duration::from_secs(10),
    );
    let _c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    wait_for_log(&log, "[DBG]", Duration::from_secs(10));
    // A change that cannot be applied live is refused, and the server keeps running.
    std::fs::write(&conf, "port: 1\ndebug: true\n").unwrap();
    signal(&p, "reload");
    wait_for_log(
        &log,
        "Failed to reload server configuration",
        Duration::from_secs(10),
    );
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
}

#[test]
fn lame_duck_mode_informs_clients_stops_accepting_and_exits() {
    let d = tmpdir("ldm");
    let conf = d.join("l.conf");
    let log = d.join("server.log");
    std::fs::write(&conf, "port: -1\nlame_duck_grace_period: \"500ms\"\n").unwrap();
    let mut p = spawn(&["-c", conf.to_str().unwrap(), "-l", log.to_str().unwrap()]);
    let text = wait_for_log(&log, "Server is ready", Duration::from_secs(10));
    let port = port_from_log(&text);
    let mut c = connected(port, r#"{"verbose":false,"protocol":1}"#);
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert!(signal(&p, "ldm"));
    // The client is told with an async INFO carrying "ldm":true, then closed.
    let (rest, _) = read_until_closed(&mut c);
    assert!(rest.contains("\"ldm\":true"), "{rest}");
    let status = wait_exit(&mut p, Duration::from_secs(15)).expect("server exits after lame duck");
    assert!(status.success());
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("Entering lame duck mode"));
}

/// Lame duck as nats-server runs it: while clients are still being let go, `/healthz`
/// says the server is not ready (HTTP 500); with no clients at all the server exits at
/// once instead of waiting out the grace period.
#[test]
fn lame_duck_reports_not_ready_and_exits_at_once_without_clients() {
    let d = tmpdir("ldm-health");
    let conf = d.join("l.conf");
    let log = d.join("server.log");
    let http = free_port();
    std::fs::write(
        &conf,
        format!("port: -1\nhttp_port: {http}\nlame_duck_grace_period: \"3s\"\n"),
    )
    .unwrap();
    let mut p = spawn(&["-c", conf.to_str().unwrap(), "-l", log.to_str().unwrap()]);
    let text = wait_for_log(&log, "Server is ready", Duration::from_secs(10));
    let port = port_from_log(&text);
    let c = connected(port, r#"{"verbose":false}"#);
    let health = |http: u16| -> String {
        let mut h = TcpStream::connect(("127.0.0.1", http)).unwrap();
        h.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        h.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").unwrap();
        let mut out = String::new();
        let _ = h.read_to_string(&mut out);
        out
    };
    assert!(health(http).starts_with("HTTP/1.0 200"), "{}", health(http));
    assert!(signal(&p, "ldm"));
    wait_for_log(&log, "Entering lame duck mode", Duration::from_secs(5));
    let during = health(http);
    assert!(during.starts_with("HTTP/1.0 500"), "{during}");
    assert!(
        during.contains("failed to be ready for connections"),
        "{during}"
    );
    drop(c);
    let status = wait_exit(&mut p, Duration::from_secs(15)).expect("exits");
    assert!(status.success());

    // No clients: out at once, well within the 3 s grace period.
    let log2 = d.join("server2.log");
    std::fs::write(&conf, "port: -1\nlame_duck_grace_period: \"3s\"\n").unwrap();
    let mut p = spawn(&["-c", conf.to_str().unwrap(), "-l", log2.to_str().unwrap()]);
    wait_for_log(&log2, "Server is ready", Duration::from_secs(10));
    let t = Instant::now();
    assert!(signal(&p, "ldm"));
    let status = wait_exit(&mut p, Duration::from_secs(15)).expect("exits");
    assert!(status.success());
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "{:?}",
        t.elapsed()
    );
}

/// A reload's new `max_payload` applies to connections already open, as nats-server
/// applies it (they kept the limit they connected with).
#[test]
fn reload_applies_max_payload_to_open_connections() {
    let d = tmpdir("reload-payload");
    let conf = d.join("p.conf");
    let log = d.join("server.log");
    std::fs::write(&conf, "port: -1\nmax_payload: 1000\n").unwrap();
    let p = spawn(&["-c", conf.to_str().unwrap(), "-l", log.to_str().unwrap()]);
    let text = wait_for_log(&log, "Server is ready", Duration::from_secs(10));
    let port = port_from_log(&text);
    let mut c = connected(port, r#"{"verbose":false}"#);
    std::fs::write(&conf, "port: -1\nmax_payload: 100\n").unwrap();
    assert!(signal(&p, "reload"));
    wait_for_log(
        &log,
        "Reloaded server configuration",
        Duration::from_secs(10),
    );
    let mut msg = b"PUB x 500\r\n".to_vec();
    msg.extend_from_slice(&[b'p'; 500]);
    msg.extend_from_slice(b"\r\n");
    c.write_all(&msg).unwrap();
    let (rest, _) = read_until_closed(&mut c);
    assert!(rest.contains("Maximum Payload Violation"), "{rest}");
    drop(p);
}

#[test]
fn reload_applies_users_and_closes_removed_ones() {
    let d = tmpdir("reload-users");
    let conf = d.join("u.conf");
    let log = d.join("server.log");
    std::fs::write(
        &conf,
        "port: -1\naccounts { A { users: [ {user: a, password: pa} ] } }\n",
    )
    .unwrap();
    let p = spawn(&["-c", conf.to_str().unwrap(), "-l", log.to_str().unwrap()]);
    let text = wait_for_log(&log, "Server is ready", Duration::from_secs(10));
    let port = port_from_log(&text);
    let connect = |user: &str, pass: &str| -> (TcpStream, String) {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(
            format!(
                "CONNECT {{\"user\":\"{user}\",\"pass\":\"{pass}\",\"verbose\":false}}\r\nPING\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&got).to_string();
            if text.contains("PONG") || text.contains("-ERR") {
                return (c, text);
            }
            match c.read(&mut buf) {
                Ok(0) | Err(_) => return (c, text),
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    let (mut a_conn, out) = connect("a", "pa");
    assert!(out.contains("PONG"), "{out}");
    assert!(connect("b", "pb").1.contains("Authorization Violation"));
    // Replace user a with b, in a new account B.
    std::fs::write(
        &conf,
        "port: -1\naccounts {\n A { users: [] }\n B { users: [ {user: b, password: pb} ] }\n}\n",
    )
    .unwrap();
    signal(&p, "reload");
    wait_for_log(
        &log,
        "Reloaded server configuration",
        Duration::from_secs(10),
    );
    // a's existing connection is closed, without a word, as nats-server closes it.
    let (rest, closed) = read_until_closed(&mut a_conn);
    assert!(closed, "the removed user's connection is closed");
    assert!(!rest.contains("-ERR"), "{rest:?}");
    assert!(connect("b", "pb").1.contains("PONG"));
    assert!(connect("a", "pa").1.contains("Authorization Violation"));
}

/// A reload checks every open connection's credentials again, as nats-server does: a
/// changed password or token gets `-ERR 'Authorization Violation'` and the close; a user
/// moved to another account is closed without a word (it reconnects into the new one);
/// a user whose password did not change, and a client admitted as the `no_auth_user`,
/// stay connected.
#[test]
fn reload_checks_open_connections_credentials_again() {
    let d = tmpdir("reload-creds");
    let conf = d.join("c.conf");
    let log = d.join("server.log");
    let before = "port: -1\naccounts {\n A { users: [ {user: a, password: pa}, {user: k, password: pk} ] }\n \
                  B { users: [ {user: m, password: pm} ] }\n}\nno_auth_user: k\n";
    std::fs::write(&conf, before).unwrap();
    let p = spawn(&["-c", conf.to_str().unwrap(), "-l", log.to_str().unwrap()]);
    let text = wait_for_log(&log, "Server is ready", Duration::from_secs(10));
    let port = port_from_log(&text);
    let login = |creds: &str| -> TcpStream {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(format!("CONNECT {{{creds}\"verbose\":false}}\r\nPING\r\n").as_bytes())
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains("PONG") {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => panic!("login {creds}: {}", String::from_utf8_lossy(&got)),
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        c
    };
    let mut changed = login(r#""user":"a","pass":"pa","#);
    let mut same = login(r#""user":"k","pass":"pk","#);
    let mut moved = login(r#""user":"m","pass":"pm","#);
    let mut anonymous = login("");
    // A client still between INFO and CONNECT when the authorization changes.
    let mut pending = TcpStream::connect(("127.0.0.1", port)).unwrap();
    pending
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut info = [0u8; 4096];
    assert!(pending.read(&mut info).unwrap() > 0);
    // a's password changes, m moves from B to A, the no_auth_user goes.
    let after = "port: -1\naccounts {\n A { users: [ {user: a, password: new}, {user: k, password: pk}, \
                 {user: m, password: pm} ] }\n B { users: [] }\n}\n";
    std::fs::write(&conf, after).unwrap();
    assert!(signal(&p, "reload"));
    wait_for_log(
        &log,
        "Reloaded server configuration",
        Duration::from_secs(10),
    );
    let (rest, closed) = read_until_closed(&mut changed);
    assert!(
        closed && rest.contains("Authorization Violation"),
        "{rest:?}"
    );
    let (rest, closed) = read_until_closed(&mut moved);
    assert!(closed && !rest.contains("-ERR"), "{rest:?}");
    // nats-server's reload refuses a client with no credentials to check yet.
    let (rest, closed) = read_until_closed(&mut pending);
    assert!(
        closed && rest.contains("Authorization Violation"),
        "{rest:?}"
    );
    for (name, c) in [("same", &mut same), ("anonymous", &mut anonymous)] {
        c.write_all(b"PING\r\n").unwrap();
        let mut buf = [0u8; 256];
        let n = c.read(&mut buf).unwrap_or(0);
        assert!(
            String::from_utf8_lossy(&buf[..n]).contains("PONG"),
            "{name} must stay connected"
        );
    }
    drop(p);
}

/// A reload that lowers an account's limits applies them as nats-server does: the
/// oldest connections beyond `max_connections` and any holding more subscriptions than
/// `max_subscriptions` are told why and closed; new connections meet the new
/// `max_payload`.
#[test]
fn reload_applies_account_limits() {
    let d = tmpdir("reload-acct-limits");
    let conf = d.join("l.conf");
    let log = d.join("server.log");
    let with = |conns: i64, subs: i64, payload: i64| {
        format!(
            "port: -1\naccounts {{ A {{ users: [{{user: a, password: a}}], \
             limits: {{max_connections: {conns}, max_subscriptions: {subs}, max_payload: {payload}}} }} }}\n"
        )
    };
    std::fs::write(&conf, with(5, 5, 100)).unwrap();
    let p = spawn(&["-c", conf.to_str().unwrap(), "-l", log.to_str().unwrap()]);
    let text = wait_for_log(&log, "Server is ready", Duration::from_secs(10));
    let port = port_from_log(&text);
    let login = |subs: &str| -> TcpStream {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(
            format!(
                "CONNECT {{\"user\":\"a\",\"pass\":\"a\",\"verbose\":false}}\r\n{subs}PING\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains("PONG") {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => panic!("login: {}", String::from_utf8_lossy(&got)),
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        c
    };
    let mut oldest = login("SUB x 1\r\n");
    let mut many_subs = login("SUB x 1\r\nSUB y 2\r\n");
    let mut fine = login("SUB x 1\r\n");
    std::fs::write(&conf, with(2, 1, 5)).unwrap();
    assert!(signal(&p, "reload"));
    wait_for_log(
        &log,
        "Reloaded server configuration",
        Duration::from_secs(10),
    );
    let (rest, closed) = read_until_closed(&mut oldest);
    assert!(
        closed && rest.contains("maximum account active connections exceeded"),
        "{rest:?}"
    );
    let (rest, closed) = read_until_closed(&mut many_subs);
    assert!(
        closed && rest.contains("maximum subscriptions exceeded"),
        "{rest:?}"
    );
    fine.write_all(b"PING\r\n").unwrap();
    let mut buf = [0u8; 256];
    let n = fine.read(&mut buf).unwrap_or(0);
    assert!(
        String::from_utf8_lossy(&buf[..n]).contains("PONG"),
        "the third stays"
    );
    // The closed ones leave the account's count just after their sockets close.
    std::thread::sleep(Duration::from_millis(300));
    let mut new = login("");
    new.write_all(b"PUB x 6\r\nabcdef\r\n").unwrap();
    let (rest, closed) = read_until_closed(&mut new);
    assert!(
        closed && rest.contains("Maximum Payload Violation"),
        "{rest:?}"
    );
    drop(p);
}
