//! Helpers for `js_crash.rs`: the `natrium-server` binary as a child process (started on
//! a store directory, SIGKILLed or stopped with SIGTERM, by PID), raw JetStream API calls
//! through async-nats (STREAM.INFO / NAMES / MSG.GET, batched DIRECT.GET), a seeded RNG,
//! and reading segment files to aim damage at known records.
#![allow(dead_code)]

use bytes::Bytes;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_natrium-server");

/// How long a (debug build) server may take to recover and become ready.
pub const READY_LIMIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// Randomness

/// SplitMix64: small, seedable, deterministic.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi` (`hi > lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(hi > lo, "empty range {lo}..{hi}");
        lo + self.next_u64() % (hi - lo)
    }
}

/// The seed from `var` (decimal or 0x-hex), else one derived from the clock. Printed so a
/// failing run can be repeated.
pub fn seed_from_env(var: &str) -> u64 {
    let seed = match std::env::var(var) {
        Ok(v) => {
            let v = v.trim();
            let parsed = match v.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16),
                None => v.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("{var}={v:?} is not a u64"))
        }
        Err(_) => {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            (t.as_nanos() as u64) ^ (u64::from(std::process::id()) << 32)
        }
    };
    println!("{var}={seed} (set it to repeat this run)");
    eprintln!("{var}={seed} (set it to repeat this run)");
    seed
}

/// `var` parsed as a number, else `default`.
pub fn env_usize(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------
// The server process

/// A `natrium-server` child. Dropping it SIGKILLs it (by its PID) if it still runs.
pub struct ServerProc {
    child: Child,
    pub pid: i32,
    pub port: u16,
    pub log: PathBuf,
    pub stderr: PathBuf,
    /// Time from spawn to "Server is ready".
    pub startup: Duration,
}

impl ServerProc {
    /// Start `natrium-server -a 127.0.0.1 -p -1 -js -sd STORE -l LOG` and wait until it
    /// logs "Server is ready". Err (with the log) if it exits or is not ready in time.
    pub fn start(store: &Path, log: &Path) -> Result<ServerProc, String> {
        let _ = std::fs::remove_file(log);
        let stderr = log.with_extension("stderr");
        let err_file = std::fs::File::create(&stderr).map_err(|e| format!("stderr file: {e}"))?;
        let t0 = Instant::now();
        let child = Command::new(BIN)
            .args(["-a", "127.0.0.1", "-p", "-1", "-js", "-sd"])
            .arg(store)
            .arg("-l")
            .arg(log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(err_file))
            .spawn()
            .map_err(|e| format!("spawn {BIN}: {e}"))?;
        let pid = child.id() as i32;
        let mut p = ServerProc {
            child,
            pid,
            port: 0,
            log: log.to_path_buf(),
            stderr,
            startup: Duration::ZERO,
        };
        loop {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if text.contains("Server is ready") {
                p.port = port_from_log(&text)
                    .ok_or_else(|| format!("no listening line in log:\n{text}"))?;
                p.startup = t0.elapsed();
                return Ok(p);
            }
            if let Ok(Some(st)) = p.child.try_wait() {
                return Err(format!(
                    "server exited during startup ({st}); log:\n{text}\nstderr:\n{}",
                    std::fs::read_to_string(&p.stderr).unwrap_or_default()
                ));
            }
            if t0.elapsed() > READY_LIMIT {
                return Err(format!(
                    "server not ready after {READY_LIMIT:?}; log:\n{text}\nstderr:\n{}",
                    std::fs::read_to_string(&p.stderr).unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// SIGKILL this child (by PID) and reap it.
    pub fn sigkill(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // SAFETY: plain kill(2) on the PID of a child we spawned and have not reaped.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
            }
        }
        let _ = self.child.wait();
    }

    /// SIGTERM (graceful shutdown) and wait for a clean exit. On timeout: SIGKILL, Err.
    pub fn stop(&mut self) -> Result<(), String> {
        if let Ok(Some(st)) = self.child.try_wait() {
            return Err(format!("server had already exited: {st}"));
        }
        // SAFETY: kill(2) on our own, unreaped child.
        unsafe {
            libc::kill(self.pid, libc::SIGTERM);
        }
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(st)) = self.child.try_wait() {
                return if st.success() {
                    Ok(())
                } else {
                    Err(format!("server exited with {st} after SIGTERM"))
                };
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.sigkill();
        Err("server did not exit within 30 s of SIGTERM".into())
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        self.sigkill();
    }
}

/// The port from `Listening for client connections on HOST:PORT`.
pub fn port_from_log(text: &str) -> Option<u16> {
    let line = text
        .lines()
        .find(|l| l.contains("Listening for client connections on "))?;
    line.rsplit(':').next()?.trim().parse().ok()
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Lines of `text` that mention JetStream recovery or problems (warnings, errors).
pub fn interesting_lines(text: &str) -> String {
    text.lines()
        .filter(|l| {
            l.contains("[WRN]")
                || l.contains("[ERR]")
                || l.contains("[FTL]")
                || l.contains("Restored")
                || l.contains("recover")
                || l.contains("panic")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------------------
// Clients and the JetStream API

/// A client that gives up soon after its server dies (so no stale client lingers and
/// resends buffered publishes to a later server).
pub async fn connect(url: &str) -> Result<async_nats::Client, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = async_nats::ConnectOptions::new()
            .max_reconnects(1)
            .connection_timeout(Duration::from_secs(2))
            .request_timeout(Some(Duration::from_secs(10)))
            .connect(url)
            .await;
        match r {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() >= deadline => return Err(format!("connect {url}: {e}")),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A JSON API request; the answer parsed (it may be an `{"error":...}` answer).
pub async fn api(
    client: &async_nats::Client,
    subject: String,
    body: String,
) -> Result<serde_json::Value, String> {
    let r = tokio::time::timeout(
        Duration::from_secs(15),
        client.request(subject.clone(), body.into()),
    )
    .await
    .map_err(|_| format!("{subject}: no answer in 15 s"))?
    .map_err(|e| format!("{subject}: {e}"))?;
    serde_json::from_slice(&r.payload).map_err(|e| {
        format!(
            "{subject}: bad JSON ({e}): {}",
            String::from_utf8_lossy(&r.payload)
        )
    })
}

/// The state part of STREAM.INFO.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamState {
    pub messages: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    pub num_deleted: u64,
}

/// STREAM.INFO: Ok(state), or Err with the error answer / transport error.
pub async fn stream_state(client: &async_nats::Client, name: &str) -> Result<StreamState, String> {
    let v = api(client, format!("$JS.API.STREAM.INFO.{name}"), String::new()).await?;
    if v.get("error").is_some() {
        return Err(format!("STREAM.INFO {name}: {v}"));
    }
    let st = &v["state"];
    let n = |k: &str| st[k].as_u64().unwrap_or(0);
    Ok(StreamState {
        messages: n("messages"),
        first_seq: n("first_seq"),
        last_seq: n("last_seq"),
        num_deleted: n("num_deleted"),
    })
}

/// STREAM.NAMES (first page; our tests have few streams).
pub async fn stream_names(client: &async_nats::Client) -> Result<Vec<String>, String> {
    let v = api(client, "$JS.API.STREAM.NAMES".into(), String::new()).await?;
    if v.get("error").is_some() {
        return Err(format!("STREAM.NAMES: {v}"));
    }
    Ok(v["streams"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

/// A stored message as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Got {
    pub seq: u64,
    pub subject: String,
    pub payload: Bytes,
}

/// The answer of STREAM.MSG.GET for one sequence.
#[derive(Debug, Clone)]
pub enum MsgGet {
    Found(Got),
    /// An error answer (e.g. 10037 no message found).
    Error(serde_json::Value),
}

pub async fn msg_get(
    client: &async_nats::Client,
    stream: &str,
    seq: u64,
) -> Result<MsgGet, String> {
    use base64::Engine;
    let v = api(
        client,
        format!("$JS.API.STREAM.MSG.GET.{stream}"),
        format!("{{\"seq\":{seq}}}"),
    )
    .await?;
    if let Some(e) = v.get("error") {
        return Ok(MsgGet::Error(e.clone()));
    }
    let m = &v["message"];
    let data = m["data"].as_str().unwrap_or("");
    let payload = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| format!("MSG.GET {stream} {seq}: bad base64 ({e}): {v}"))?;
    Ok(MsgGet::Found(Got {
        seq: m["seq"].as_u64().unwrap_or(0),
        subject: m["subject"].as_str().unwrap_or("").to_string(),
        payload: payload.into(),
    }))
}

/// Every message with `from <= seq <= to` (matching `filter`, if given), read with batched
/// DIRECT.GET requests (the stream needs `allow_direct`). Stops at the first "404 no
/// message" answer.
pub async fn direct_scan(
    client: &async_nats::Client,
    stream: &str,
    from: u64,
    to: u64,
    batch: u64,
    filter: Option<&str>,
) -> Result<Vec<Got>, String> {
    use futures::StreamExt;
    let mut out = Vec::new();
    let mut start = from.max(1);
    let mut rounds = 0u64;
    let max_rounds = (to.saturating_sub(from) / batch.max(1)) * 2 + 16;
    while start <= to {
        rounds += 1;
        if rounds > max_rounds {
            return Err(format!(
                "DIRECT.GET {stream}: no progress after {rounds} batches (at seq {start})"
            ));
        }
        let inbox = client.new_inbox();
        let mut sub = client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| format!("subscribe: {e}"))?;
        let n = batch.min(to - start + 1);
        client
            .publish_with_reply(
                format!("$JS.API.DIRECT.GET.{stream}"),
                inbox,
                match filter {
                    Some(f) => {
                        format!("{{\"seq\":{start},\"batch\":{n},\"next_by_subj\":\"{f}\"}}")
                    }
                    None => format!("{{\"seq\":{start},\"batch\":{n}}}"),
                }
                .into(),
            )
            .await
            .map_err(|e| format!("publish: {e}"))?;
        client.flush().await.map_err(|e| format!("flush: {e}"))?;
        let mut last_in_batch = None;
        loop {
            let m = tokio::time::timeout(Duration::from_secs(15), sub.next())
                .await
                .map_err(|_| format!("DIRECT.GET {stream} from {start}: no answer in 15 s"))?
                .ok_or_else(|| format!("DIRECT.GET {stream}: subscription closed"))?;
            if let Some(status) = m.status {
                match status.as_u16() {
                    204 => break,
                    404 => return Ok(out),
                    other => {
                        return Err(format!(
                            "DIRECT.GET {stream} from {start}: status {other} {:?}",
                            m.description
                        ));
                    }
                }
            }
            let h = m
                .headers
                .as_ref()
                .ok_or_else(|| format!("DIRECT.GET {stream}: answer without headers"))?;
            let seq: u64 = h
                .get("Nats-Sequence")
                .and_then(|v| v.as_str().parse().ok())
                .ok_or_else(|| format!("DIRECT.GET {stream}: no Nats-Sequence in {h:?}"))?;
            let subject = h
                .get("Nats-Subject")
                .map(|v| v.as_str().to_string())
                .unwrap_or_default();
            if seq < start || seq > to || last_in_batch.is_some_and(|l| seq <= l) {
                return Err(format!(
                    "DIRECT.GET {stream} from {start}: sequence {seq} out of order \
                     (previous {last_in_batch:?}, range {start}..={to})"
                ));
            }
            last_in_batch = Some(seq);
            out.push(Got {
                seq,
                subject,
                payload: m.payload.clone(),
            });
        }
        match last_in_batch {
            Some(l) => start = l + 1,
            None => return Err(format!("DIRECT.GET {stream}: EOB without messages")),
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// On disk

/// `<sd>/jetstream/$G/streams/<name>`.
pub fn stream_dir(store: &Path, name: &str) -> PathBuf {
    store
        .join("jetstream")
        .join("$G")
        .join("streams")
        .join(name)
}

/// The segment files of a stream directory, in name (= replay) order.
pub fn segment_files(stream_dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(stream_dir.join("msgs"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "seg"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Segment header length.
pub const SEG_HDR: u64 = 16;
/// Record header length (before subject/headers/payload).
pub const REC_HDR: u64 = 48;

/// One record of a segment, as laid out by natrium-store format v1.
#[derive(Debug, Clone, Copy)]
pub struct RecordSpan {
    pub off: u64,
    pub len: u64,
    pub kind: u8,
    pub seq: u64,
}

/// The records of an undamaged segment file (stops at the first implausible length).
pub fn parse_segment(bytes: &[u8]) -> Vec<RecordSpan> {
    let mut out = Vec::new();
    let mut off = SEG_HDR as usize;
    while off + REC_HDR as usize + 4 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap()) as usize;
        if len < REC_HDR as usize + 4 || off + len > bytes.len() {
            break;
        }
        let kind = bytes[off + 4];
        let seq = u64::from_le_bytes(bytes[off + 12..off + 20].try_into().unwrap());
        out.push(RecordSpan {
            off: off as u64,
            len: len as u64,
            kind,
            seq,
        });
        off += len;
    }
    out
}

/// Every file under `dir` (relative path → bytes), except the `LOCK` file.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, d: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let Ok(rd) = std::fs::read_dir(d) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if p.file_name().is_some_and(|n| n != "LOCK") {
                let rel = p.strip_prefix(root).unwrap().to_path_buf();
                out.insert(rel, std::fs::read(&p).unwrap_or_default());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// What differs between two snapshots, as lines ("" when equal).
pub fn snapshot_diff(
    before: &BTreeMap<PathBuf, Vec<u8>>,
    after: &BTreeMap<PathBuf, Vec<u8>>,
) -> String {
    let mut d = Vec::new();
    for (p, b) in before {
        match after.get(p) {
            None => d.push(format!("removed: {}", p.display())),
            Some(a) if a != b => d.push(format!(
                "changed: {} ({} -> {} bytes)",
                p.display(),
                b.len(),
                a.len()
            )),
            _ => {}
        }
    }
    for (p, a) in after {
        if !before.contains_key(p) {
            d.push(format!("added: {} ({} bytes)", p.display(), a.len()));
        }
    }
    d.join("\n")
}

/// CRC-32C (Castagnoli), as natrium-store's metadata envelope uses.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0x82F6_3B78 & mask);
        }
    }
    !crc
}
