//! `natrium server`: ping, info, and Nagios-style checks.
//!
//! `ping` and `info` ask every server through the system account
//! (`$SYS.REQ.SERVER.PING…`) when the user may; otherwise they report on
//! the server this connection reached, from its INFO and measured round
//! trips, and say so.

use std::time::{Duration, Instant};

use async_nats::Client;
use clap::{Args, Subcommand};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::cmd::JsonFlag;
use crate::connect::ConnectArgs;
use crate::error::{Error, Result};
use crate::jsapi;
use crate::output::{self, out};
use crate::units::parse_duration;

/// Arguments of `natrium server`.
#[derive(Args, Debug)]
pub struct ServerArgs {
    #[command(flatten)]
    json: JsonFlag,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Measure round trips to the servers (all of them with a system
    /// account user, else the one connected to).
    Ping {
        /// Round trips to the connected server when it is the only one seen.
        #[arg(long, default_value_t = 3)]
        count: u32,
    },
    /// Show what a server says about itself.
    Info,
    /// A table of every server that answers (needs a system account user).
    #[command(alias = "ls")]
    List {
        /// Sort by this column.
        #[arg(long, value_enum, default_value = "name")]
        sort: ListSort,
        /// Reverse the order.
        #[arg(short = 'R', long)]
        reverse: bool,
    },
    /// Ask every server for one of its monitoring reports and print the answers as JSON
    /// (needs a system account user).
    Request {
        /// Which report.
        #[arg(value_enum)]
        kind: RequestKind,
        /// The report's options as JSON, e.g. '{"subscriptions":true}' for connections.
        #[arg(long, value_name = "JSON")]
        options: Option<String>,
    },
    /// Hash a password with bcrypt for a configuration file's `password`.
    #[command(alias = "mkpasswd")]
    Passwd {
        /// The password (else read from stdin, or asked twice on a terminal).
        #[arg(short, long, env = "PASSWORD", hide_env_values = true)]
        pass: Option<String>,
        /// Generate a random password and print it with its hash.
        #[arg(short, long, conflicts_with = "pass")]
        generate: bool,
        /// bcrypt cost (work factor).
        #[arg(long, default_value_t = 11, value_parser = clap::value_parser!(u32).range(4..=31))]
        cost: u32,
    },
    /// Health checks with Nagios output and exit codes (0 OK, 1 WARNING,
    /// 2 CRITICAL).
    Check {
        #[command(subcommand)]
        check: Check,
    },
}

#[derive(Subcommand, Debug)]
enum Check {
    /// Connect, and time the connection and a round trip.
    Connection {
        /// Warn when connecting takes longer.
        #[arg(long, default_value = "500ms", value_parser = parse_duration)]
        connect_warn: Duration,
        /// Critical when connecting takes longer.
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        connect_critical: Duration,
        /// Warn when a round trip takes longer.
        #[arg(long, default_value = "500ms", value_parser = parse_duration)]
        rtt_warn: Duration,
        /// Critical when a round trip takes longer.
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        rtt_critical: Duration,
    },
    /// Check a stream's existence and message count.
    Stream {
        /// Stream to check.
        #[arg(long)]
        stream: String,
        /// Warn when the stream holds fewer messages.
        #[arg(long)]
        msgs_warn: Option<u64>,
        /// Critical when the stream holds fewer messages.
        #[arg(long)]
        msgs_critical: Option<u64>,
    },
    /// Check JetStream usage against the account's limits (percent).
    #[command(name = "jetstream")]
    JetStream {
        /// Warn when memory use passes this percentage of the limit.
        #[arg(long, default_value_t = 75)]
        mem_warn: u64,
        /// Critical when memory use passes this percentage of the limit.
        #[arg(long, default_value_t = 90)]
        mem_critical: u64,
        /// Warn when file storage use passes this percentage of the limit.
        #[arg(long, default_value_t = 75)]
        store_warn: u64,
        /// Critical when file storage use passes this percentage of the limit.
        #[arg(long, default_value_t = 90)]
        store_critical: u64,
        /// Warn when the stream count passes this percentage of the limit.
        #[arg(long, default_value_t = 75)]
        streams_warn: u64,
        /// Critical when the stream count passes this percentage of the limit.
        #[arg(long, default_value_t = 90)]
        streams_critical: u64,
        /// Warn when the consumer count passes this percentage of the limit.
        #[arg(long, default_value_t = 75)]
        consumers_warn: u64,
        /// Critical when the consumer count passes this percentage of the limit.
        #[arg(long, default_value_t = 90)]
        consumers_critical: u64,
    },
}

/// Columns `server list` sorts by.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum ListSort {
    Name,
    #[value(alias = "conn")]
    Conns,
    #[value(alias = "sub")]
    Subs,
    Mem,
    Cpu,
    Slow,
    Uptime,
    Rtt,
}

/// Reports `server request` asks for: `$SYS.REQ.SERVER.PING.<subject>`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum RequestKind {
    /// `/varz`.
    #[value(alias = "varz")]
    Variables,
    /// `/connz`.
    #[value(alias = "connz", alias = "conns")]
    Connections,
    /// `/subsz`.
    #[value(alias = "subsz", alias = "subs")]
    Subscriptions,
    /// `/accountz`.
    #[value(alias = "accountz")]
    Accounts,
    /// `/jsz`.
    #[value(alias = "jsz", alias = "js")]
    Jetstream,
    /// `/healthz`.
    #[value(alias = "healthz")]
    Health,
    /// The server's statistics (what `server list` shows).
    #[value(alias = "statsz")]
    Stats,
    /// The server's identity.
    #[value(alias = "idz")]
    Id,
}

impl RequestKind {
    fn subject(self) -> &'static str {
        match self {
            RequestKind::Variables => "VARZ",
            RequestKind::Connections => "CONNZ",
            RequestKind::Subscriptions => "SUBSZ",
            RequestKind::Accounts => "ACCOUNTZ",
            RequestKind::Jetstream => "JSZ",
            RequestKind::Health => "HEALTHZ",
            RequestKind::Stats => "STATSZ",
            RequestKind::Id => "IDZ",
        }
    }
}

/// Reads a password for `server passwd`: asked twice on a terminal, else stdin's first
/// line.
fn read_password() -> Result<String> {
    if output::interactive() {
        return output::prompt_secret_twice("Enter password", "Re-enter password");
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| Error::BadInput(format!("cannot read the password from stdin: {e}")))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// A random password of 22 characters from letters and digits.
fn random_password() -> String {
    use rand::RngExt;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..22)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Sends a request and gathers every answer until `wait` has passed (or
/// no-responders says nobody is there).
pub async fn gather(
    client: &Client,
    subject: &str,
    body: bytes::Bytes,
    wait: Duration,
) -> Result<Vec<(Value, Duration)>> {
    let inbox = client.new_inbox();
    let mut sub = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| Error::nats("subscribe", e))?;
    let start = Instant::now();
    client
        .publish_with_reply(subject.to_string(), inbox, body)
        .await
        .map_err(|e| Error::nats(format!("publish to {subject}"), e))?;
    client.flush().await.map_err(|e| Error::nats("flush", e))?;
    let mut got = Vec::new();
    let mut deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(m)) = tokio::time::timeout_at(deadline, sub.next()).await {
        if m.status.is_some() {
            break;
        }
        if let Ok(v) = serde_json::from_slice::<Value>(&m.payload) {
            got.push((v, start.elapsed()));
        }
        // Servers of one cluster answer together: once answers flow, a
        // short silence means everyone has spoken.
        deadline = deadline.min(tokio::time::Instant::now() + Duration::from_millis(300));
    }
    Ok(got)
}

/// One round trip to the connected server.
async fn rtt(client: &Client) -> Result<Duration> {
    let start = Instant::now();
    crate::cmd::core::sync(client).await?;
    Ok(start.elapsed())
}

fn info_json(client: &Client) -> Value {
    let i = client.server_info();
    json!({
        "server_id": i.server_id,
        "server_name": i.server_name,
        "version": i.version,
        "go": i.go,
        "host": i.host,
        "port": i.port,
        "headers": i.headers,
        "max_payload": i.max_payload,
        "proto": i.proto,
        "client_id": i.client_id,
        "auth_required": i.auth_required,
        "tls_required": i.tls_required,
        "connect_urls": i.connect_urls,
        "client_ip": i.client_ip,
        "lame_duck_mode": i.lame_duck_mode,
    })
}

/// Runs `natrium server …`.
pub async fn run(conn: &ConnectArgs, a: ServerArgs) -> Result<()> {
    let json = a.json.json;
    match a.cmd {
        Cmd::Ping { count } => {
            let client = conn.connect().await?;
            let wait = conn.timeout.min(Duration::from_secs(2));
            let all = gather(&client, "$SYS.REQ.SERVER.PING", bytes::Bytes::new(), wait).await?;
            let mut rows: Vec<(String, Duration)> = all
                .iter()
                .map(|(v, d)| {
                    let name = v
                        .pointer("/server/name")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_string();
                    (name, *d)
                })
                .collect();
            if rows.is_empty() {
                let name = client.server_info().server_name;
                for _ in 0..count.max(1) {
                    rows.push((name.clone(), rtt(&client).await?));
                }
            }
            if json {
                let v: Vec<Value> = rows
                    .iter()
                    .map(|(n, d)| json!({"server": n, "rtt_ns": d.as_nanos() as u64}))
                    .collect();
                return output::json(&v);
            }
            for (n, d) in &rows {
                out(format!(
                    "{n:<30} rtt={}",
                    output::duration_ns(d.as_nanos() as u64)
                ))?;
            }
            let min = rows.iter().map(|r| r.1).min().unwrap_or_default();
            let max = rows.iter().map(|r| r.1).max().unwrap_or_default();
            let avg = rows.iter().map(|r| r.1).sum::<Duration>() / rows.len().max(1) as u32;
            out(format!(
                "\n---- ping statistics ----\n{} replies, round-trip min/avg/max = {}/{}/{}",
                rows.len(),
                output::duration_ns(min.as_nanos() as u64),
                output::duration_ns(avg.as_nanos() as u64),
                output::duration_ns(max.as_nanos() as u64)
            ))
        }
        Cmd::Info => {
            let client = conn.connect().await?;
            let wait = conn.timeout.min(Duration::from_secs(2));
            let varz = gather(
                &client,
                "$SYS.REQ.SERVER.PING.VARZ",
                bytes::Bytes::new(),
                wait,
            )
            .await?;
            if let Some((v, _)) = varz.into_iter().next() {
                if json {
                    return output::json(&v);
                }
                let d = v.get("data").cloned().unwrap_or(Value::Null);
                return output::kv_block(&[
                    ("Server ID", output::s(&d, "server_id").into()),
                    ("Name", output::s(&d, "server_name").into()),
                    ("Version", output::s(&d, "version").into()),
                    ("Go", output::s(&d, "go").into()),
                    (
                        "Host",
                        format!("{}:{}", output::s(&d, "host"), output::u(&d, "port")),
                    ),
                    ("Started", output::time_short(output::s(&d, "start"))),
                    ("Connections", output::num(output::u(&d, "connections"))),
                    ("Subscriptions", output::num(output::u(&d, "subscriptions"))),
                    ("Messages In", output::num(output::u(&d, "in_msgs"))),
                    ("Messages Out", output::num(output::u(&d, "out_msgs"))),
                    ("Bytes In", output::bytes(output::u(&d, "in_bytes"))),
                    ("Bytes Out", output::bytes(output::u(&d, "out_bytes"))),
                ]);
            }
            let v = info_json(&client);
            if json {
                return output::json(&v);
            }
            out("Connected server (no system account access; showing its INFO):")?;
            output::kv_block(&[
                ("Server ID", output::s(&v, "server_id").into()),
                ("Name", output::s(&v, "server_name").into()),
                ("Version", output::s(&v, "version").into()),
                ("Go", output::s(&v, "go").into()),
                (
                    "Host",
                    format!("{}:{}", output::s(&v, "host"), output::u(&v, "port")),
                ),
                ("Protocol", output::u(&v, "proto").to_string()),
                ("Headers", output::b(&v, "headers").to_string()),
                ("Max Payload", output::bytes(output::u(&v, "max_payload"))),
                ("Auth Required", output::b(&v, "auth_required").to_string()),
                ("TLS Required", output::b(&v, "tls_required").to_string()),
                ("Client ID", output::u(&v, "client_id").to_string()),
            ])
        }
        Cmd::Check { check } => run_check(conn, check).await,
        Cmd::List { sort, reverse } => {
            let client = conn.connect().await?;
            let wait = conn.timeout.min(Duration::from_secs(2));
            let mut all =
                gather(&client, "$SYS.REQ.SERVER.PING", bytes::Bytes::new(), wait).await?;
            if all.is_empty() {
                return Err(Error::BadInput(
                    "server list: no server answered $SYS.REQ.SERVER.PING (it needs a user of the system account)".into(),
                ));
            }
            let st = |v: &Value, k: &str| {
                v.pointer(&format!("/statsz/{k}"))
                    .cloned()
                    .unwrap_or(Value::Null)
            };
            let name = |v: &Value| {
                v.pointer("/server/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            let num = |v: &Value, k: &str| st(v, k).as_f64().unwrap_or(0.0);
            all.sort_by(|(a, ra), (b, rb)| {
                let f = |k| num(a, k).total_cmp(&num(b, k));
                match sort {
                    ListSort::Name => name(a).cmp(&name(b)),
                    ListSort::Conns => f("connections"),
                    ListSort::Subs => f("subscriptions"),
                    ListSort::Mem => f("mem"),
                    ListSort::Cpu => f("cpu"),
                    ListSort::Slow => f("slow_consumers"),
                    // Oldest start first: longest uptime first.
                    ListSort::Uptime => st(a, "start").as_str().cmp(&st(b, "start").as_str()),
                    ListSort::Rtt => ra.cmp(rb),
                }
            });
            if reverse {
                all.reverse();
            }
            if json {
                let v: Vec<Value> = all.iter().map(|(v, _)| v.clone()).collect();
                return output::json(&v);
            }
            let mut t = output::table(
                Some(&format!("Server Overview: {} servers", all.len())),
                &[
                    "Name", "Host", "Version", "JS", "Conns", "Subs", "Mem", "CPU %", "Cores",
                    "Slow", "Started", "RTT",
                ],
            );
            for (v, rtt) in &all {
                let server = v.get("server").cloned().unwrap_or(Value::Null);
                t.row([
                    name(v),
                    output::s(&server, "host").to_string(),
                    output::s(&server, "ver").to_string(),
                    if output::b(&server, "jetstream") {
                        "yes"
                    } else {
                        "no"
                    }
                    .to_string(),
                    output::num(st(v, "connections").as_u64().unwrap_or(0)),
                    output::num(st(v, "subscriptions").as_u64().unwrap_or(0)),
                    output::bytes(st(v, "mem").as_u64().unwrap_or(0)),
                    format!("{:.0}", num(v, "cpu")),
                    st(v, "cores").as_u64().unwrap_or(0).to_string(),
                    output::num(st(v, "slow_consumers").as_u64().unwrap_or(0)),
                    output::time_short(st(v, "start").as_str().unwrap_or("")),
                    output::duration_ns(rtt.as_nanos() as u64),
                ]);
            }
            t.print()
        }
        Cmd::Request { kind, options } => {
            let body = match options {
                Some(o) => {
                    let v: Value = serde_json::from_str(&o).map_err(|e| {
                        Error::BadInput(format!("--options is not valid JSON: {e}"))
                    })?;
                    if !v.is_object() {
                        return Err(Error::BadInput("--options must be a JSON object".into()));
                    }
                    bytes::Bytes::from(serde_json::to_vec(&v)?)
                }
                None => bytes::Bytes::new(),
            };
            let client = conn.connect().await?;
            let wait = conn.timeout.min(Duration::from_secs(2));
            let subject = format!("$SYS.REQ.SERVER.PING.{}", kind.subject());
            let all = gather(&client, &subject, body, wait).await?;
            if all.is_empty() {
                return Err(Error::BadInput(format!(
                    "server request: no server answered {subject} (it needs a user of the system account)"
                )));
            }
            let v: Vec<Value> = all.into_iter().map(|(v, _)| v).collect();
            if let Some(e) = v.iter().find_map(|v| v.get("error")) {
                return Err(Error::BadInput(format!(
                    "server request: the server answered {e}"
                )));
            }
            output::json(&v)
        }
        Cmd::Passwd {
            pass,
            generate,
            cost,
        } => {
            let password = match (pass, generate) {
                (Some(p), _) => p,
                (None, true) => random_password(),
                (None, false) => read_password()?,
            };
            // As `nats server passwd`: a short password is refused, not hashed.
            if password.chars().count() < 10 {
                return Err(Error::BadInput(
                    "the password must have at least 10 characters".into(),
                ));
            }
            // Longer than bcrypt takes (72 bytes) is refused, not cut (as Go's bcrypt).
            let hash = bcrypt::non_truncating_hash(&password, cost)
                .map_err(|e| Error::BadInput(format!("cannot hash the password: {e}")))?;
            if json {
                let mut v = json!({ "hash": hash });
                if generate {
                    v["password"] = json!(password);
                }
                return output::json(&v);
            }
            if generate {
                out(format!("Generated password: {password}"))?;
                out(format!("       bcrypt hash: {hash}"))
            } else {
                out(hash)
            }
        }
    }
}

/// A Nagios status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Status {
    Ok = 0,
    Warning = 1,
    Critical = 2,
}

impl Status {
    fn word(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
        }
    }
}

/// Collects the findings of one check and prints the Nagios line.
struct Report {
    name: &'static str,
    status: Status,
    notes: Vec<String>,
    perf: Vec<String>,
}

impl Report {
    fn new(name: &'static str) -> Self {
        Report {
            name,
            status: Status::Ok,
            notes: Vec::new(),
            perf: Vec::new(),
        }
    }

    fn note(&mut self, status: Status, text: impl Into<String>) {
        self.status = self.status.max(status);
        self.notes
            .push(format!("{}:{}", status.word(), text.into()));
    }

    fn finish(self) -> Result<()> {
        let mut line = format!(
            "{} {}: {}",
            self.name,
            self.status.word(),
            self.notes.join(" ")
        );
        if !self.perf.is_empty() {
            line.push_str(" |");
            line.push_str(&self.perf.join(" "));
        }
        out(line)?;
        match self.status {
            Status::Ok => Ok(()),
            s => Err(Error::Check(s as u8)),
        }
    }
}

/// Status for a value that is bad when high.
fn high(v: f64, warn: f64, crit: f64) -> Status {
    if v >= crit {
        Status::Critical
    } else if v >= warn {
        Status::Warning
    } else {
        Status::Ok
    }
}

async fn run_check(conn: &ConnectArgs, check: Check) -> Result<()> {
    match check {
        Check::Connection {
            connect_warn,
            connect_critical,
            rtt_warn,
            rtt_critical,
        } => {
            let mut r = Report::new("CONNECTION");
            let start = Instant::now();
            let client = match conn.connect().await {
                Ok(c) => c,
                Err(e) => {
                    r.note(Status::Critical, e.to_string());
                    return r.finish();
                }
            };
            let ct = start.elapsed();
            r.note(
                high(
                    ct.as_secs_f64(),
                    connect_warn.as_secs_f64(),
                    connect_critical.as_secs_f64(),
                ),
                format!(
                    "connected to {} in {}",
                    crate::connect::redact_passwords(conn.server_url()),
                    output::duration_ns(ct.as_nanos() as u64)
                ),
            );
            match rtt(&client).await {
                Ok(rt) => {
                    r.note(
                        high(
                            rt.as_secs_f64(),
                            rtt_warn.as_secs_f64(),
                            rtt_critical.as_secs_f64(),
                        ),
                        format!("rtt time {}", output::duration_ns(rt.as_nanos() as u64)),
                    );
                    r.perf.push(format!(
                        "rtt={:.6}s;{:.4};{:.4}",
                        rt.as_secs_f64(),
                        rtt_warn.as_secs_f64(),
                        rtt_critical.as_secs_f64()
                    ));
                }
                Err(e) => r.note(Status::Critical, e.to_string()),
            }
            r.perf.insert(
                0,
                format!(
                    "connect_time={:.6}s;{:.4};{:.4}",
                    ct.as_secs_f64(),
                    connect_warn.as_secs_f64(),
                    connect_critical.as_secs_f64()
                ),
            );
            r.finish()
        }
        Check::Stream {
            stream,
            msgs_warn,
            msgs_critical,
        } => {
            let mut r = Report::new("STREAM");
            let client = match conn.connect().await {
                Ok(c) => c,
                Err(e) => {
                    r.note(Status::Critical, e.to_string());
                    return r.finish();
                }
            };
            let info = match jsapi::stream_info(&client, &stream).await {
                Ok(i) => i,
                Err(e) => {
                    r.note(Status::Critical, e.to_string());
                    return r.finish();
                }
            };
            let msgs = info
                .pointer("/state/messages")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let bytes = info
                .pointer("/state/bytes")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let st = if msgs_critical.is_some_and(|c| msgs < c) {
                Status::Critical
            } else if msgs_warn.is_some_and(|w| msgs < w) {
                Status::Warning
            } else {
                Status::Ok
            };
            r.note(st, format!("{stream} has {msgs} messages"));
            r.perf.push(format!(
                "messages={msgs};{};{}",
                msgs_warn.map(|v| v.to_string()).unwrap_or_default(),
                msgs_critical.map(|v| v.to_string()).unwrap_or_default()
            ));
            r.perf.push(format!("bytes={bytes}B"));
            r.finish()
        }
        Check::JetStream {
            mem_warn,
            mem_critical,
            store_warn,
            store_critical,
            streams_warn,
            streams_critical,
            consumers_warn,
            consumers_critical,
        } => {
            let mut r = Report::new("JETSTREAM");
            let client = match conn.connect().await {
                Ok(c) => c,
                Err(e) => {
                    r.note(Status::Critical, e.to_string());
                    return r.finish();
                }
            };
            let info = match jsapi::request(&client, "INFO", &Value::Null, "account info").await {
                Ok(i) => i,
                Err(e) => {
                    r.note(Status::Critical, e.to_string());
                    return r.finish();
                }
            };
            let limits = info.get("limits").cloned().unwrap_or(Value::Null);
            let checks = [
                ("memory", "memory", "max_memory", mem_warn, mem_critical),
                (
                    "storage",
                    "storage",
                    "max_storage",
                    store_warn,
                    store_critical,
                ),
                (
                    "streams",
                    "streams",
                    "max_streams",
                    streams_warn,
                    streams_critical,
                ),
                (
                    "consumers",
                    "consumers",
                    "max_consumers",
                    consumers_warn,
                    consumers_critical,
                ),
            ];
            for (label, used_key, limit_key, warn, crit) in checks {
                let used = output::u(&info, used_key);
                let limit = output::i(&limits, limit_key);
                if limit > 0 {
                    let pct = used as f64 * 100.0 / limit as f64;
                    r.note(
                        high(pct, warn as f64, crit as f64),
                        format!("{label} {used} of {limit} ({pct:.0}%)"),
                    );
                    r.perf.push(format!("{label}={pct:.2}%;{warn};{crit}"));
                } else {
                    r.notes.push(format!("{label} {used}"));
                    r.perf.push(format!("{label}={used}"));
                }
            }
            if r.notes.iter().all(|n| !n.contains(':')) {
                r.notes.insert(0, "OK:JetStream available".into());
            }
            r.finish()
        }
    }
}
