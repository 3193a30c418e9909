//! Replays the raw protocol transcripts recorded against nats-server 2.15.1
//! (`transcripts.json`, `limits_transcripts.json`; see their README) and compares the bytes
//! natrium-server sends back. INFO lines are compared on the fields that must match, server
//! PINGs by count and time, everything else (EOF included) exactly and in time.
//!
//! Where the transcripts are read from: `$NATRIUM_TRANSCRIPTS_DIR`, else the first of
//! `<repo>/tests/data/protocol` and
//! `/work/shared/reference/samples/protocol` that has them.
//!
//! `transcripts_replay_against_reference_nats_server` runs the same harness against the
//! real nats-server (`$NATS_SERVER_BIN`, else `nats-server` on PATH; skipped with a notice
//! when missing) with the configuration the transcripts were recorded with, which keeps
//! the harness honest: every case, pending ones included, must pass there.
//!
//! `NATRIUM_TRANSCRIPT_CASES=a,b` replays only the named cases (for debugging).

mod common {
    pub mod transcript_util;
}

use common::transcript_util::{
    Data, Event, Rewrite, Rules, Tolerance, Who, compare, load_transcripts, replay, replay_on,
    server_only_transcript,
};
use natrium_server::logging::Logger;
use natrium_server::options::Options;
use natrium_server::server::Server;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

/// Cases natrium cannot pass yet, with the reason. They are still replayed and their
/// result printed, but they do not fail the test.
const PENDING: &[(&str, &str)] = &[];

/// Allowed difference between a recorded and an observed arrival time.
const TOLERANCE: Tolerance = Tolerance {
    early: 0.25,
    late: 0.5,
};
/// How long to keep recording after a transcript's last event, in seconds: at least the
/// late tolerance, and short enough that the cases ending at 0.4s without EOF stop
/// before the first server PING (1s after accept or CONNECT).
const GRACE: f64 = 0.55;
/// A failing case is replayed again, alone, up to this many times before it counts as a
/// failure (timing on a loaded machine); every attempt's differences are printed.
const ATTEMPTS: usize = 2;

/// Queue member choice is random: either member of `q` may get the message.
const QUEUE_REWRITES: &[Rewrite] = &[Rewrite {
    from: b"MSG foo 2 1\r\na\r\n",
    to: b"MSG foo 1 1\r\na\r\n",
    why: "nats-server picks a queue member at random",
}];

/// Where a case's bytes are not fully deterministic, and how that is allowed for.
fn rules_for(case: &str) -> Rules {
    let mut rules = Rules {
        rewrites: &[],
        optional_pings: None,
        ping_interval: 1.0,
    };
    match case {
        "queue_group_single_delivery" => rules.rewrites = QUEUE_REWRITES,
        // The auth timeout (1s) and the first PING (1s after accept, +0..20% jitter) fire
        // together; nats-server sometimes gets a PING out before the -ERR.
        "auth_no_connect_timeout" => {
            rules.optional_pings = Some((
                0.9,
                1.3,
                "auth timeout and first PING race (both 1s after accept)",
            ))
        }
        _ => {}
    }
    rules
}

fn transcripts_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("NATRIUM_TRANSCRIPTS_DIR") {
        return PathBuf::from(d);
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let candidates = [
        repo.join("tests/data/protocol"),
        PathBuf::from("/work/shared/reference/samples/protocol"),
    ];
    for c in &candidates {
        if c.join("transcripts.json").is_file() {
            return c.clone();
        }
    }
    panic!("transcripts.json not found in $NATRIUM_TRANSCRIPTS_DIR or {candidates:?}");
}

fn load_limits() -> BTreeMap<String, String> {
    let path = transcripts_dir().join("limits_transcripts.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).expect("limits transcripts: a map of strings")
}

/// The options the transcripts were recorded with: the same config file nats-server
/// gets, loaded through natrium's own config parser.
fn transcript_opts() -> Options {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("transcripts.conf");
    std::fs::write(&path, REFERENCE_CONF).expect("write config");
    let mut o = natrium_server::config_file::load(&path).expect("config loads");
    o.host = "127.0.0.1".into();
    o.port = 0;
    o
}

async fn start_natrium() -> Server {
    Server::start(transcript_opts(), Arc::new(Logger::null()))
        .await
        .expect("natrium server starts")
}

/// The same settings as a nats-server config file, with the `bob` user.
const REFERENCE_CONF: &str = r#"
max_payload: 1KB
max_connections: 3
max_subscriptions: 3
max_control_line: 512
ping_interval: "1s"
ping_max: 2
max_pending: 64KB
write_deadline: "2s"
authorization {
  timeout: 1
  users: [
    { user: alice, password: secret }
    { user: bob, password: pw, permissions: {
        publish: { allow: ["ok.>", "_INBOX.>"] }
        subscribe: { deny: ["secret.>"] }
    } }
  ]
}
"#;

/// A nats-server process, killed (by its own handle) when dropped.
struct RefServer {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for RefServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn reference_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NATS_SERVER_BIN") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
}

async fn start_reference(bin: &Path) -> RefServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("transcripts.conf");
    std::fs::write(&conf, REFERENCE_CONF).expect("write config");
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let child = Command::new(bin)
        .args(["-a", "127.0.0.1", "-p", "-1", "-c"])
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup log"))
        .stderr(log)
        .spawn()
        .expect("spawn nats-server");
    let mut srv = RefServer {
        child,
        addr: "127.0.0.1:0".parse().unwrap(),
        _dir: dir,
    };
    let marker = "Listening for client connections on ";
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if let Some(i) = text.find(marker) {
            let rest = &text[i + marker.len()..];
            let hp = rest.split_whitespace().next().unwrap_or("");
            srv.addr = hp.parse().expect("listen address");
            return srv;
        }
        if let Ok(Some(st)) = srv.child.try_wait() {
            panic!("nats-server exited ({st}) before listening:\n{text}");
        }
        assert!(
            Instant::now() < deadline,
            "nats-server did not start within 10s:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Print past libtest's output capture (which only intercepts `print!`/`eprint!`), so
/// notices show up even when the test passes.
fn notice(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{msg}");
}

/// Where to replay a case: a fresh natrium in this process, or a fresh nats-server.
#[derive(Clone)]
enum Target {
    Natrium,
    Reference(PathBuf),
}

/// A started server of either kind.
enum Running {
    Natrium(Server),
    Reference(RefServer),
}

impl Running {
    async fn start(target: &Target) -> Running {
        match target {
            Target::Natrium => Running::Natrium(start_natrium().await),
            Target::Reference(bin) => Running::Reference(start_reference(bin).await),
        }
    }

    fn addr(&self) -> SocketAddr {
        match self {
            Running::Natrium(s) => s.client_addr(),
            Running::Reference(r) => r.addr,
        }
    }

    async fn stop(self) {
        match self {
            Running::Natrium(mut s) => s.shutdown().await,
            // Kill and reap off the runtime threads.
            Running::Reference(r) => {
                let _ = tokio::task::spawn_blocking(move || drop(r)).await;
            }
        }
    }
}

/// Replay every case concurrently, each on its own server, then retry failures alone.
/// Servers are all started before the first replay and stopped after the last, so their
/// start-up and shut-down do not disturb the timing of other cases.
async fn replay_all(target: Target, label: &str, honour_pending: bool) {
    let mut cases = load_transcripts(&transcripts_dir().join("transcripts.json"));
    assert!(cases.len() >= 20, "expected the full transcript set");
    for (p, _) in PENDING {
        assert!(cases.contains_key(*p), "PENDING names unknown case {p}");
    }
    if let Ok(only) = std::env::var("NATRIUM_TRANSCRIPT_CASES") {
        let only: Vec<&str> = only.split(',').map(str::trim).collect();
        cases.retain(|k, _| only.contains(&k.as_str()));
        println!(
            "NATRIUM_TRANSCRIPT_CASES: replaying only {:?}",
            cases.keys()
        );
    }

    let mut servers = Vec::new();
    for _ in 0..cases.len() {
        servers.push(Running::start(&target).await);
    }
    let mut set = tokio::task::JoinSet::new();
    for ((name, events), server) in cases.clone().into_iter().zip(&servers) {
        let addr = server.addr();
        set.spawn(async move {
            let rec = replay(addr, &events, GRACE).await;
            let diffs = compare(&events, &rec, &rules_for(&name), TOLERANCE);
            (name, diffs)
        });
    }
    let mut attempts: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    while let Some(r) = timeout(Duration::from_secs(60), set.join_next())
        .await
        .expect("all cases finish within 60s")
    {
        let (name, diffs) = r.expect("case task");
        attempts.entry(name).or_default().push(diffs);
    }
    for s in servers {
        s.stop().await;
    }

    // Retry failures (pending ones excepted) one at a time on a fresh server.
    for (name, tries) in attempts.iter_mut() {
        if honour_pending && PENDING.iter().any(|(p, _)| p == name) {
            continue;
        }
        while tries.last().is_some_and(|d| !d.is_empty()) && tries.len() < ATTEMPTS {
            let server = Running::start(&target).await;
            let events = &cases[name];
            let rec = replay(server.addr(), events, GRACE).await;
            server.stop().await;
            tries.push(compare(events, &rec, &rules_for(name), TOLERANCE));
        }
    }

    if honour_pending {
        for (name, why) in PENDING {
            notice(&format!("transcripts ({label}): PENDING {name}: {why}"));
        }
    }
    let mut failed = Vec::new();
    println!("== transcript replay against {label} ==");
    for (name, tries) in &attempts {
        let pending = PENDING.iter().find(|(p, _)| p == name).map(|(_, why)| *why);
        let passed = tries.last().is_some_and(|d| d.is_empty());
        let status = match (passed, pending, honour_pending) {
            (true, Some(_), true) => "PASS (listed PENDING: remove it from PENDING)",
            (true, _, _) if tries.len() > 1 => "PASS (on retry)",
            (true, _, _) => "PASS",
            (false, Some(_), true) => "PENDING",
            (false, _, _) => "FAIL",
        };
        println!("{status:>8}  {name}");
        if let (Some(why), true) = (pending, honour_pending) {
            println!("          pending: {why}");
        }
        for (i, diffs) in tries.iter().enumerate() {
            if diffs.is_empty() {
                continue;
            }
            println!("          attempt {}:", i + 1);
            for line in diffs.iter().flat_map(|d| d.lines()) {
                println!("            {line}");
            }
        }
        if status == "FAIL" {
            failed.push(name.clone());
        }
    }
    assert!(
        failed.is_empty(),
        "{label}: {} transcript case(s) differ: {failed:?} (details above)",
        failed.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcripts_replay_against_natrium() {
    replay_all(Target::Natrium, "natrium-server (in process)", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcripts_replay_against_reference_nats_server() {
    let Some(bin) = reference_bin() else {
        notice("NOTICE: nats-server not found (set NATS_SERVER_BIN); reference replay skipped");
        return;
    };
    replay_all(Target::Reference(bin), "reference nats-server", false).await;
}

/// Open a connection, log in as alice and wait for the PONG (+ the INFO after it).
async fn logged_in(addr: SocketAddr) -> TcpStream {
    let mut s = timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    s.write_all(
        b"CONNECT {\"verbose\":false,\"pedantic\":false,\"user\":\"alice\",\"pass\":\"secret\"}\r\nPING\r\n",
    )
    .await
    .expect("write CONNECT");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    while !got.windows(6).any(|w| w == b"PONG\r\n") {
        let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
            .await
            .expect("PONG within 5s")
            .expect("read");
        assert!(
            n > 0,
            "EOF before PONG: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    s
}

async fn max_connections_case(addr: SocketAddr) -> Vec<String> {
    let limits = load_limits();
    let expected: Vec<Event> = server_only_transcript(&limits["max_connections_4th"], 0.0);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(logged_in(addr).await);
    }
    let rec = replay(addr, &expected, GRACE).await;
    let mut diffs = compare(
        &expected,
        &rec,
        &rules_for("max_connections_4th"),
        TOLERANCE,
    );
    // Once one of the three leaves, a new client gets in (bounded retries: the server
    // notices the close asynchronously).
    drop(held.pop());
    let mut admitted = false;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let s = timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        let login: &[Event] = &[Event {
            who: Who::Client,
            data: Data::Bytes(
                b"CONNECT {\"verbose\":false,\"user\":\"alice\",\"pass\":\"secret\"}\r\nPING\r\n"
                    .to_vec(),
            ),
            t: 0.0,
        }];
        let rec = replay_on(s, login, 0.3).await;
        let bytes: Vec<u8> = rec.chunks.iter().flat_map(|(_, c)| c.clone()).collect();
        if bytes.windows(6).any(|w| w == b"PONG\r\n") {
            admitted = true;
            break;
        }
    }
    if !admitted {
        diffs.push("after closing one of 3 connections, a new one was still refused".into());
    }
    drop(held);
    diffs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcript_max_connections_4th_natrium() {
    let mut server = start_natrium().await;
    let diffs = max_connections_case(server.client_addr()).await;
    server.shutdown().await;
    for d in &diffs {
        println!("{d}");
    }
    assert!(diffs.is_empty(), "max_connections_4th differs: {diffs:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcript_max_connections_4th_reference_nats_server() {
    let Some(bin) = reference_bin() else {
        notice("NOTICE: nats-server not found (set NATS_SERVER_BIN); reference run skipped");
        return;
    };
    let srv = start_reference(&bin).await;
    let diffs = max_connections_case(srv.addr).await;
    drop(srv);
    assert!(
        diffs.is_empty(),
        "max_connections_4th differs on nats-server: {diffs:#?}"
    );
}
