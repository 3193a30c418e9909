//! Replay raw protocol transcripts recorded against nats-server and compare what a server
//! sends back, byte for byte where the bytes are deterministic.
//!
//! A transcript is a list of `[who, data, t_seconds]`: `C` = bytes the client sent at `t`,
//! `S` = bytes the server sent (received at `t`), and `S` `<connection closed by server>`
//! marks EOF. Replaying sends each `C` chunk at its relative time and records everything
//! the server sends, with arrival times, until EOF or a short grace period after the last
//! event. The two byte streams are then cut into protocol units and compared:
//!
//! * `INFO {...} \r\n` lines are compared on the fields that must match (see
//!   [`INFO_EXACT`], [`INFO_PRESENT`]); ids, ports, names, keys are per server.
//! * Server `PING`s are timer-driven (nats-server adds up to 20% jitter to the first one),
//!   so they are matched separately, by count and time.
//! * Everything else, including EOF, must match exactly and arrive within the tolerance
//!   of the recorded time.
#![allow(dead_code)]

use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until, timeout};

/// How a transcript marks EOF.
pub const EOF_MARK: &str = "<connection closed by server>";
/// INFO fields compared by value (absent must stay absent).
pub const INFO_EXACT: &[&str] = &[
    "proto",
    "version",
    "host",
    "headers",
    "auth_required",
    "tls_required",
    "max_payload",
    "client_ip",
    "connect_info",
    "remote_account",
    "ldm",
    "jetstream",
];
/// INFO fields whose presence (not value) is compared.
pub const INFO_PRESENT: &[&str] = &["server_id", "client_id"];
/// Cap on bytes recorded from one connection.
const MAX_RECORDED: usize = 16 * 1024 * 1024;

/// Who sent a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Client,
    Server,
}

/// A chunk of bytes, or EOF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    Bytes(Vec<u8>),
    Eof,
}

/// One transcript entry.
#[derive(Debug, Clone)]
pub struct Event {
    pub who: Who,
    pub data: Data,
    pub t: f64,
}

pub type Transcript = Vec<Event>;

/// Load `transcripts.json`: case name → events.
pub fn load_transcripts(path: &Path) -> BTreeMap<String, Transcript> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let v: Value = serde_json::from_str(&text).expect("transcripts are JSON");
    let mut out = BTreeMap::new();
    for (name, events) in v.as_object().expect("a JSON object of cases") {
        let mut list = Vec::new();
        for e in events.as_array().expect("a case is a list") {
            let e = e.as_array().expect("an event is [who, data, t]");
            let who = match e[0].as_str() {
                Some("C") => Who::Client,
                Some("S") => Who::Server,
                other => panic!("{name}: bad who {other:?}"),
            };
            let s = e[1].as_str().expect("data is a string");
            let data = if who == Who::Server && s == EOF_MARK {
                Data::Eof
            } else {
                Data::Bytes(s.as_bytes().to_vec())
            };
            let t = e[2].as_f64().expect("t is a number");
            list.push(Event { who, data, t });
        }
        out.insert(name.clone(), list);
    }
    out
}

/// Turn a `limits_transcripts.json` entry (server bytes ending in `<EOF>`) into server
/// events at `t`.
pub fn server_only_transcript(s: &str, t: f64) -> Transcript {
    let (bytes, eof) = match s.strip_suffix("<EOF>") {
        Some(b) => (b, true),
        None => (s, false),
    };
    let mut v = vec![Event {
        who: Who::Server,
        data: Data::Bytes(bytes.as_bytes().to_vec()),
        t,
    }];
    if eof {
        v.push(Event {
            who: Who::Server,
            data: Data::Eof,
            t,
        });
    }
    v
}

/// One protocol unit the server sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// An INFO line reduced to the compared fields (`canon`), plus the ids for the
    /// same-connection consistency check.
    Info {
        canon: String,
        client_id: Option<Value>,
        server_id: Option<Value>,
        raw: Vec<u8>,
    },
    /// A server PING.
    Ping,
    /// Any other complete unit (a line, or MSG/HMSG with its payload), byte for byte.
    Raw(Vec<u8>),
    /// Trailing bytes that do not form a complete unit.
    Partial(Vec<u8>),
}

impl Op {
    /// The form used for comparison.
    fn key(&self) -> String {
        match self {
            Op::Info { canon, .. } => canon.clone(),
            Op::Ping => "PING\r\n".to_string(),
            Op::Raw(b) => esc(b),
            Op::Partial(b) => format!("<partial unit> {}", esc(b)),
        }
    }

    fn show(&self) -> String {
        match self {
            Op::Info { raw, canon, .. } => format!("{canon}   [raw: {}]", esc(raw)),
            other => other.key(),
        }
    }
}

/// A unit with the time its last byte arrived (seconds from connect).
#[derive(Debug, Clone)]
pub struct TimedOp {
    pub op: Op,
    pub t: f64,
}

/// Printable bytes: `\r`, `\n` and non-ASCII escaped.
pub fn esc(b: &[u8]) -> String {
    let mut s = String::new();
    for &c in b {
        match c {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(c as char),
            _ => {
                let _ = write!(s, "\\x{c:02x}");
            }
        }
    }
    s
}

/// Reduce an INFO line to the compared fields.
pub fn canon_info(line: &[u8]) -> Op {
    let raw = line.to_vec();
    let framed = line.starts_with(b"INFO ") && line.ends_with(b" \r\n") && line.len() >= 8;
    let json = if framed {
        &line[5..line.len() - 3]
    } else {
        &line[5.min(line.len())..]
    };
    let parsed: Option<serde_json::Map<String, Value>> = serde_json::from_slice(json).ok();
    let Some(obj) = parsed else {
        return Op::Info {
            canon: format!("INFO <unparsable JSON> {}", esc(line)),
            client_id: None,
            server_id: None,
            raw,
        };
    };
    let mut canon = String::from("INFO {");
    for k in INFO_EXACT {
        match obj.get(*k) {
            Some(v) => {
                let _ = write!(canon, "{k}={v} ");
            }
            None => {
                let _ = write!(canon, "{k}=<absent> ");
            }
        }
    }
    for k in INFO_PRESENT {
        let p = if obj.contains_key(*k) {
            "present"
        } else {
            "absent"
        };
        let _ = write!(canon, "{k}=<{p}> ");
    }
    canon.push('}');
    if !framed {
        canon.push_str(" <framing differs from `INFO {...} \\r\\n`>");
    }
    Op::Info {
        canon,
        client_id: obj.get("client_id").cloned(),
        server_id: obj.get("server_id").cloned(),
        raw,
    }
}

/// End of one complete unit starting at `pos`, or `None` if incomplete.
fn unit_end(buf: &[u8], pos: usize) -> Option<usize> {
    let rest = &buf[pos..];
    let nl = rest.windows(2).position(|w| w == b"\r\n")?;
    let line = &rest[..nl];
    let head = nl + 2;
    if line.starts_with(b"MSG ") || line.starts_with(b"HMSG ") {
        // The last field is the payload size (total size for HMSG).
        let size: usize = std::str::from_utf8(line)
            .ok()?
            .split_ascii_whitespace()
            .last()?
            .parse()
            .ok()?;
        let end = head + size + 2;
        if rest.len() < end {
            return None;
        }
        Some(pos + end)
    } else {
        Some(pos + head)
    }
}

/// Cut timed chunks into timed units.
pub fn parse_ops(chunks: &[(f64, Vec<u8>)]) -> Vec<TimedOp> {
    let mut buf = Vec::new();
    let mut ends = Vec::new(); // (cumulative end offset, time)
    for (t, c) in chunks {
        buf.extend_from_slice(c);
        ends.push((buf.len(), *t));
    }
    let time_at = |end: usize| -> f64 {
        ends.iter()
            .find(|(e, _)| *e >= end)
            .map(|(_, t)| *t)
            .unwrap_or(f64::NAN)
    };
    let mut ops = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        match unit_end(&buf, pos) {
            Some(end) => {
                let unit = &buf[pos..end];
                let op = if unit.starts_with(b"INFO ") {
                    canon_info(unit)
                } else if unit == b"PING\r\n" {
                    Op::Ping
                } else {
                    Op::Raw(unit.to_vec())
                };
                ops.push(TimedOp {
                    op,
                    t: time_at(end),
                });
                pos = end;
            }
            None => {
                ops.push(TimedOp {
                    op: Op::Partial(buf[pos..].to_vec()),
                    t: time_at(buf.len()),
                });
                break;
            }
        }
    }
    ops
}

/// How a recorded connection ended.
#[derive(Debug, Clone)]
pub enum End {
    /// The server closed the connection (read returned 0).
    Eof(f64),
    /// A read error, e.g. a reset.
    Error(f64, String),
    /// Still open when recording stopped.
    Open(f64),
}

/// What the server sent during a replay.
#[derive(Debug, Clone)]
pub struct Recording {
    pub chunks: Vec<(f64, Vec<u8>)>,
    pub end: End,
    /// Client writes that failed (the server had already closed).
    pub write_errors: Vec<String>,
}

/// Secs since `t0`.
fn since(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64()
}

/// Replay the client side of `events` on a new connection to `addr` and record the
/// server side until EOF or `grace` seconds after the last event.
pub async fn replay(addr: SocketAddr, events: &[Event], grace: f64) -> Recording {
    let stream = timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .expect("connect within 5s")
        .expect("connect");
    replay_on(stream, events, grace).await
}

/// As [`replay`], on an already connected stream (time 0 is now).
pub async fn replay_on(stream: TcpStream, events: &[Event], grace: f64) -> Recording {
    let _ = stream.set_nodelay(true);
    let t0 = Instant::now();
    let last = events.iter().map(|e| e.t).fold(0.0, f64::max);
    let capture_end = t0 + Duration::from_secs_f64(last + grace);
    let (mut rd, mut wr) = stream.into_split();

    let reader = async move {
        let mut chunks = Vec::new();
        let mut total = 0usize;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            tokio::select! {
                r = rd.read(&mut buf) => match r {
                    Ok(0) => return (chunks, End::Eof(since(t0))),
                    Ok(n) => {
                        total += n;
                        chunks.push((since(t0), buf[..n].to_vec()));
                        if total > MAX_RECORDED {
                            return (chunks, End::Open(since(t0)));
                        }
                    }
                    Err(e) => return (chunks, End::Error(since(t0), e.to_string())),
                },
                _ = sleep_until(capture_end) => return (chunks, End::Open(since(t0))),
            }
        }
    };
    let writer = async move {
        let mut errors = Vec::new();
        for e in events.iter().filter(|e| e.who == Who::Client) {
            let Data::Bytes(b) = &e.data else { continue };
            sleep_until(t0 + Duration::from_secs_f64(e.t)).await;
            let w = timeout(Duration::from_secs(2), wr.write_all(b)).await;
            match w {
                Ok(Ok(())) => {}
                Ok(Err(err)) => {
                    errors.push(format!("write at t={:.2}: {err}", e.t));
                    break;
                }
                Err(_) => {
                    errors.push(format!("write at t={:.2} blocked for 2s", e.t));
                    break;
                }
            }
        }
        // Keep the write half (dropping it sends FIN) until the reader is done.
        (wr, errors)
    };
    let ((chunks, end), (wr, write_errors)) = tokio::join!(reader, writer);
    drop(wr);
    Recording {
        chunks,
        end,
        write_errors,
    }
}

/// Rewrite an actual unit before comparing (for choices the server makes at random).
pub struct Rewrite {
    pub from: &'static [u8],
    pub to: &'static [u8],
    pub why: &'static str,
}

/// Per-case comparison rules.
#[derive(Clone, Copy)]
pub struct Rules {
    /// Rewrites applied to the actual units.
    pub rewrites: &'static [Rewrite],
    /// Server PINGs inside `(from, to)` are ignored (timers that race by design), with why.
    pub optional_pings: Option<(f64, f64, &'static str)>,
    /// The server's ping interval: nats-server (re)starts the ping timer when it processes
    /// CONNECT, so no PING may come sooner than this after the client sent CONNECT.
    pub ping_interval: f64,
}

/// Slack for "not before" timer checks (timer granularity), in seconds.
const TIMER_SLACK: f64 = 0.02;

/// How far an observed arrival may be from the recorded one, in seconds.
#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    /// Earlier than recorded: timers only (nats-server jitters its first PING by up to
    /// 20% of the interval), so this stays small.
    pub early: f64,
    /// Later than recorded: scheduling delays on a loaded machine.
    pub late: f64,
}

impl Tolerance {
    fn ok(&self, actual: f64, expected: f64) -> bool {
        actual >= expected - self.early && actual <= expected + self.late
    }
}

impl std::fmt::Display for Tolerance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "-{}/+{}s", self.early, self.late)
    }
}

/// Compare a recording with the transcript's server side; returns the differences.
pub fn compare(expected: &[Event], rec: &Recording, rules: &Rules, tol: Tolerance) -> Vec<String> {
    let mut diffs = Vec::new();
    let rewrites = rules.rewrites;

    // Expected: server chunks and EOF.
    let mut exp_chunks = Vec::new();
    let mut exp_eof = None;
    for e in expected.iter().filter(|e| e.who == Who::Server) {
        match &e.data {
            Data::Bytes(b) => exp_chunks.push((e.t, b.clone())),
            Data::Eof => exp_eof = Some(e.t),
        }
    }
    let exp_all = parse_ops(&exp_chunks);
    let mut act_all = parse_ops(&rec.chunks);
    for op in &mut act_all {
        if let Op::Raw(b) = &op.op
            && let Some(rw) = rewrites.iter().find(|rw| rw.from == b.as_slice())
        {
            op.op = Op::Raw(rw.to.to_vec());
        }
    }
    let split = |ops: &[TimedOp]| -> (Vec<TimedOp>, Vec<f64>) {
        let mut rest = Vec::new();
        let mut pings = Vec::new();
        for o in ops {
            if o.op == Op::Ping {
                pings.push(o.t);
            } else {
                rest.push(o.clone());
            }
        }
        (rest, pings)
    };
    let (exp_ops, exp_pings) = split(&exp_all);
    let (act_ops, mut act_pings) = split(&act_all);
    if let Some((from, to, _)) = rules.optional_pings
        && !exp_pings.iter().any(|t| (from..=to).contains(t))
    {
        act_pings.retain(|t| !(from..=to).contains(t));
    }

    // Units, in order, exactly.
    let same_units = exp_ops.len() == act_ops.len()
        && exp_ops
            .iter()
            .zip(&act_ops)
            .all(|(e, a)| e.op.key() == a.op.key());
    if !same_units {
        let mut d = String::from("server bytes differ (PINGs excluded):\n");
        let n = exp_ops.len().max(act_ops.len());
        for i in 0..n {
            let e = exp_ops.get(i);
            let a = act_ops.get(i);
            let same = matches!((e, a), (Some(e), Some(a)) if e.op.key() == a.op.key());
            let _ = writeln!(
                d,
                "  {} #{i}\n      expected {}\n      actual   {}",
                if same { "  " } else { "!!" },
                e.map(|o| format!("t={:.2} {}", o.t, o.op.key()))
                    .unwrap_or_else(|| "<nothing>".into()),
                a.map(|o| format!("t={:.2} {}", o.t, o.op.show()))
                    .unwrap_or_else(|| "<nothing>".into()),
            );
        }
        diffs.push(d);
    } else {
        for (i, (e, a)) in exp_ops.iter().zip(&act_ops).enumerate() {
            if !tol.ok(a.t, e.t) {
                diffs.push(format!(
                    "unit #{i} {} arrived at t={:.3}, expected t={:.2} ({tol})",
                    e.op.key(),
                    a.t,
                    e.t
                ));
            }
        }
    }

    // INFO ids stay the same on one connection.
    let ids: Vec<(&Option<Value>, &Option<Value>)> = act_ops
        .iter()
        .filter_map(|o| match &o.op {
            Op::Info {
                client_id,
                server_id,
                ..
            } => Some((client_id, server_id)),
            _ => None,
        })
        .collect();
    if ids.windows(2).any(|w| w[0] != w[1]) {
        diffs.push(format!(
            "client_id/server_id change between INFOs on one connection: {ids:?}"
        ));
    }

    // Timer PINGs: same count, each near its recorded time.
    if exp_pings.len() != act_pings.len()
        || exp_pings
            .iter()
            .zip(&act_pings)
            .any(|(e, a)| !tol.ok(*a, *e))
    {
        diffs.push(format!(
            "server PINGs at {} s, expected at {} s ({tol})",
            fmt_times(&act_pings),
            fmt_times(&exp_pings)
        ));
    }

    // The first PING after CONNECT comes a full ping interval after it.
    let connect_at = expected.iter().find_map(|e| match (&e.who, &e.data) {
        (Who::Client, Data::Bytes(b)) if b.starts_with(b"CONNECT ") => Some(e.t),
        _ => None,
    });
    if let Some(c) = connect_at
        && let Some(p) = act_pings.iter().find(|p| **p > c)
        && *p < c + rules.ping_interval - TIMER_SLACK
    {
        diffs.push(format!(
            "first server PING after CONNECT (sent at t={c:.2}) came at t={p:.3}, only {:.3}s \
             later; nats-server restarts the ping timer on CONNECT, so it comes >= {}s after",
            p - c,
            rules.ping_interval
        ));
    }

    // EOF.
    match (&rec.end, exp_eof) {
        (End::Eof(a), Some(e)) => {
            if !tol.ok(*a, e) {
                diffs.push(format!("EOF at t={a:.3}, expected t={e:.2} ({tol})"));
            }
        }
        (End::Eof(a), None) => diffs.push(format!(
            "server closed the connection at t={a:.3}; the transcript has no EOF"
        )),
        (End::Open(a), Some(e)) => diffs.push(format!(
            "expected EOF at t={e:.2}; connection still open at t={a:.3}"
        )),
        (End::Error(a, err), Some(e)) => diffs.push(format!(
            "expected a clean EOF at t={e:.2}; read failed at t={a:.3}: {err}"
        )),
        (End::Error(a, err), None) => diffs.push(format!("read failed at t={a:.3}: {err}")),
        (End::Open(_), None) => {}
    }
    if exp_eof.is_none() && !rec.write_errors.is_empty() {
        diffs.push(format!("client writes failed: {:?}", rec.write_errors));
    }
    diffs
}

fn fmt_times(v: &[f64]) -> String {
    let parts: Vec<String> = v.iter().map(|t| format!("{t:.3}")).collect();
    format!("[{}]", parts.join(", "))
}
