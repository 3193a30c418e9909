//! Shared helpers for the `natrium` CLI integration tests: servers as child
//! processes on a port they pick themselves, and running the CLI binary.
//!
//! natrium-server comes from `NATRIUM_SERVER_BIN`, else the workspace
//! target directory next to the test executable (built with `cargo build
//! -p natrium-server` on first use if missing). The reference nats-server
//! comes from `NATS_SERVER_BIN` or `nats-server` on PATH; tests against it
//! print a notice and skip when there is none.
#![allow(dead_code)]

pub mod moto;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::Duration;

use serde_json::Value;

/// The CLI under test.
pub const NATRIUM: &str = env!("CARGO_BIN_EXE_natrium");

/// Finds the natrium-server binary, building it once if needed.
pub fn natrium_server_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("NATRIUM_SERVER_BIN") {
            return PathBuf::from(p);
        }
        // CARGO_BIN_EXE_natrium is <target>/<profile>/natrium.
        let dir = Path::new(NATRIUM).parent().expect("bin dir").to_path_buf();
        let bin = dir.join("natrium-server");
        if !bin.is_file() {
            static BUILD: Mutex<()> = Mutex::new(());
            let _g = BUILD.lock().unwrap_or_else(|e| e.into_inner());
            if !bin.is_file() {
                let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
                let mut c = Command::new(cargo);
                c.args(["build", "-p", "natrium-server", "--bin", "natrium-server"]);
                if dir.file_name().is_some_and(|n| n == "release") {
                    c.arg("--release");
                }
                let st = c.status().expect("run cargo build -p natrium-server");
                assert!(st.success(), "cargo build -p natrium-server failed");
            }
        }
        bin
    })
    .clone()
}

/// The reference nats-server, if installed.
pub fn nats_server_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NATS_SERVER_BIN") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("nats-server"))
        .find(|p| p.is_file())
}

/// Which server a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Natrium,
    Nats,
}

/// A server child process with JetStream in a temporary directory,
/// killed (by its own handle) on drop.
pub struct Server {
    child: Child,
    pub url: String,
    pub port: u16,
    pub kind: Kind,
    _dir: tempfile::TempDir,
    /// The binary and extra flags it was started with (for a restart).
    bin: PathBuf,
    pub extra: Vec<String>,
}

impl Server {
    /// Starts natrium-server with JetStream.
    pub fn natrium() -> Server {
        Self::start(&natrium_server_bin(), Kind::Natrium, &[])
    }

    /// Starts natrium-server with extra flags.
    pub fn natrium_with(extra: &[&str]) -> Server {
        Self::start(&natrium_server_bin(), Kind::Natrium, extra)
    }

    /// Starts nats-server with JetStream, or prints why not.
    pub fn nats(test: &str) -> Option<Server> {
        match nats_server_bin() {
            Some(bin) => Some(Self::start(&bin, Kind::Nats, &[])),
            None => {
                eprintln!(
                    "SKIPPED {test} against nats-server: set NATS_SERVER_BIN or put nats-server on PATH"
                );
                None
            }
        }
    }

    /// Starts nats-server with extra flags, or prints why not.
    pub fn nats_with(test: &str, extra: &[&str]) -> Option<Server> {
        match nats_server_bin() {
            Some(bin) => Some(Self::start(&bin, Kind::Nats, extra)),
            None => {
                eprintln!(
                    "SKIPPED {test} against nats-server: set NATS_SERVER_BIN or put nats-server on PATH"
                );
                None
            }
        }
    }

    /// Starts nats-server 2.14 (`NATS_SERVER_214_BIN`, which `scripts/test.sh` installs:
    /// the last release that reads only v1 archives), or prints why not.
    pub fn nats_214(test: &str) -> Option<Server> {
        match std::env::var_os("NATS_SERVER_214_BIN").map(PathBuf::from) {
            Some(bin) if bin.is_file() => Some(Self::start(&bin, Kind::Nats, &[])),
            _ => {
                eprintln!(
                    "SKIPPED {test} against nats-server 2.14: set NATS_SERVER_214_BIN (scripts/test.sh installs it)"
                );
                None
            }
        }
    }

    /// natrium-server, plus nats-server when it is available.
    pub fn both(test: &str) -> Vec<Server> {
        let mut v = vec![Self::natrium()];
        v.extend(Self::nats(test));
        v
    }

    fn start(bin: &Path, kind: Kind, extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let (child, port) = spawn_server(bin, &dir.path().join("js"), &extra);
        Server {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            port,
            kind,
            _dir: dir,
            bin: bin.to_path_buf(),
            extra,
        }
    }

    /// Kills the server with SIGKILL (no chance to clean up) and starts it again on
    /// the same store directory; it picks a new port (`url` and `port` follow).
    pub fn crash_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (child, port) = spawn_server(&self.bin, &self.store_dir(), &self.extra);
        self.child = child;
        self.port = port;
        self.url = format!("nats://127.0.0.1:{port}");
    }

    /// The server's JetStream store directory (`-sd`).
    pub fn store_dir(&self) -> PathBuf {
        self._dir.path().join("js")
    }

    /// A JetStream context on a new client connection to this server.
    pub async fn js(&self) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(async_nats::connect(&self.url).await.expect("connect"))
    }

    /// Runs `natrium -s URL args…`.
    pub fn run(&self, args: &[&str]) -> Output {
        natrium(Some(&self.url), args, &[])
    }

    /// Runs a command that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_success(&out, args, self.kind);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a `--json` command that must succeed; returns the parsed JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let text = self.ok(&a);
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{:?} {a:?}: not JSON ({e}):\n{text}", self.kind))
    }

    /// Runs a command that must fail; returns (exit code, stderr).
    pub fn fails(&self, args: &[&str]) -> (i32, String) {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "{:?} {args:?} should fail but succeeded:\n{}",
            self.kind,
            String::from_utf8_lossy(&out.stdout)
        );
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// Starts a server binary with JetStream in `sd` on a port it picks; returns the child
/// and the port it reported.
fn spawn_server(bin: &Path, sd: &Path, extra: &[String]) -> (Child, u16) {
    let mut args: Vec<&OsStr> = vec![OsStr::new("-js"), OsStr::new("-sd"), sd.as_os_str()];
    args.extend(extra.iter().map(OsStr::new));
    spawn_listening(bin, &args)
}

/// Starts a server binary on 127.0.0.1 with a port it picks (`-p -1`) and `args`;
/// returns the child and the port its log reported. The log is drained for the
/// child's whole life, so the server never blocks on a full pipe.
pub fn spawn_listening(bin: &Path, args: &[&OsStr]) -> (Child, u16) {
    let mut child = Command::new(bin)
        .args(["-a", "127.0.0.1", "-p", "-1"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("Listening for client connections on ").nth(1)
                && let Some(port) = rest.trim().rsplit(':').next()
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(port.to_string());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(port) => (child, port.parse().expect("port number")),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} did not report its listening port", bin.display());
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the CLI with a clean environment: no NATS_* variables and an empty
/// private configuration directory (unless `env` sets XDG_CONFIG_HOME).
pub fn natrium(url: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> Output {
    static EMPTY: OnceLock<tempfile::TempDir> = OnceLock::new();
    let empty = EMPTY.get_or_init(|| tempfile::tempdir().expect("tempdir"));
    let mut c = Command::new(NATRIUM);
    if let Some(u) = url {
        c.arg("-s").arg(u);
    }
    c.args(args)
        .env("XDG_CONFIG_HOME", empty.path())
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null());
    for v in [
        "NATS_URL",
        "NATS_USER",
        "NATS_PASSWORD",
        "NATS_TOKEN",
        "NATS_CREDS",
        "NATS_NKEY",
        "NATS_CONTEXT",
        "NATS_CERT",
        "NATS_KEY",
        "NATS_CA",
        "NATS_TIMEOUT",
        "PASSWORD",
    ] {
        c.env_remove(v);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run natrium")
}

/// Ctrl-C for a CLI run: sends SIGINT to `child` (started by the test, not yet
/// reaped), waits for it and asserts the CLI handled the signal: it exited with a
/// non-zero code rather than dying of the signal. Returns its stderr.
pub fn ctrl_c(child: Child) -> String {
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    // SAFETY: signals a child this test started and has not reaped yet.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0, "SIGINT");
    let out = child.wait_with_output().expect("wait for natrium");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.code().is_some_and(|c| c != 0),
        "Ctrl-C not handled ({:?}): {err}",
        out.status
    );
    err
}

/// Asserts a run succeeded and returns its stdout parsed as JSON.
pub fn ok_json(out: Output) -> Value {
    assert!(
        out.status.success(),
        "natrium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bad json {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// Asserts a run succeeded, showing its output otherwise.
pub fn assert_success(out: &Output, args: &[&str], kind: Kind) {
    assert!(
        out.status.success(),
        "{kind:?} natrium {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Asserts stderr is one error line, with no panic or backtrace.
pub fn assert_one_line_error(stderr: &str) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got:\n{stderr}");
    assert!(lines[0].starts_with("natrium: error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("RUST_BACKTRACE"), "{stderr}");
}

/// Publish `count` poorly compressible payloads of `size` bytes (xorshift noise from
/// `seed`) on `<name>.s0`..`<name>.s2`, with up to `window` acks pending; every ack is
/// checked. Large archives in few messages, for the backup tests.
pub async fn publish_noise(
    js: &async_nats::jetstream::Context,
    name: &str,
    count: u64,
    size: usize,
    seed: u64,
    window: usize,
) {
    let mut x = seed | 1;
    let mut acks = Vec::with_capacity(window);
    for i in 0..count {
        let mut body = Vec::with_capacity(size + 8);
        while body.len() < size {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            body.extend_from_slice(&x.to_le_bytes());
        }
        body.truncate(size);
        acks.push(
            js.publish(format!("{name}.s{}", i % 3), body.into())
                .await
                .expect("publish"),
        );
        if acks.len() >= window {
            for a in acks.drain(..) {
                a.await.expect("ack");
            }
        }
    }
    for a in acks {
        a.await.expect("ack");
    }
}
