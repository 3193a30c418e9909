//! `natrium consumer`: create, change, inspect and pull from consumers.

use std::time::{Duration, Instant};

use clap::{Args, Subcommand, ValueEnum};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::cmd::{Force, JsonFlag};
use crate::connect::ConnectArgs;
use crate::error::{Error, Result};
use crate::jsapi::{self, valid_name};
use crate::output::{self, out};
use crate::units::parse_duration;

/// Arguments of `natrium consumer`.
#[derive(Args, Debug)]
pub struct ConsumerArgs {
    #[command(flatten)]
    json: JsonFlag,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create a durable consumer (pull unless --target is given; asks for
    /// the name and policies not given on a terminal).
    #[command(alias = "create", alias = "new")]
    Add {
        /// Stream name.
        stream: String,
        /// Consumer name (asked for on a terminal when missing).
        name: Option<String>,
        #[command(flatten)]
        cfg: ConfigFlags,
        /// Read the consumer configuration (JSON) from a file; flags
        /// given too override it.
        #[arg(long, value_name = "FILE")]
        config: Option<std::path::PathBuf>,
        /// Accept defaults for anything not given (no prompts): deliver
        /// all, explicit acks.
        #[arg(long)]
        defaults: bool,
    },
    /// Change a consumer's configuration.
    #[command(alias = "update")]
    Edit {
        /// Stream name.
        stream: String,
        /// Consumer name.
        name: String,
        #[command(flatten)]
        cfg: ConfigFlags,
    },
    /// Show a consumer's configuration and state.
    #[command(alias = "show")]
    Info {
        /// Stream name.
        stream: String,
        /// Consumer name.
        name: String,
    },
    /// List the consumers of a stream.
    #[command(alias = "list")]
    Ls {
        /// Stream name.
        stream: String,
        /// Print only the names.
        #[arg(short, long)]
        names: bool,
    },
    /// Delete a consumer.
    #[command(alias = "delete")]
    Rm {
        /// Stream name.
        stream: String,
        /// Consumer name.
        name: String,
        #[command(flatten)]
        force: Force,
    },
    /// Pull messages from a pull consumer.
    Next {
        /// Stream name.
        stream: String,
        /// Consumer name.
        name: String,
        /// How many messages to fetch.
        #[arg(long, default_value_t = 1)]
        count: u64,
        /// Acknowledge each message (the default).
        #[arg(long, overrides_with = "no_ack")]
        ack: bool,
        /// Do not acknowledge the messages.
        #[arg(long)]
        no_ack: bool,
        /// How long to wait for messages (default: --timeout).
        #[arg(long, value_parser = parse_duration)]
        wait: Option<Duration>,
        /// Print only the bodies.
        #[arg(long)]
        raw: bool,
    },
    /// A table of a stream's consumers and their state.
    Report {
        /// Stream name.
        stream: String,
    },
    /// Pause a consumer: no deliveries until the given time.
    Pause {
        /// Stream name.
        stream: String,
        /// Consumer name.
        name: String,
        /// Until when: a duration (1h30m) or a time, RFC 3339 or `YYYY-MM-DD HH:MM:SS` (UTC).
        until: String,
        #[command(flatten)]
        force: Force,
    },
    /// Resume a paused consumer now.
    Resume {
        /// Stream name.
        stream: String,
        /// Consumer name.
        name: String,
        #[command(flatten)]
        force: Force,
    },
    /// Unpin the pinned client of a priority group, so another may be pinned.
    Unpin {
        /// Stream name.
        stream: String,
        /// Consumer name.
        name: String,
        /// The priority group.
        group: String,
        #[command(flatten)]
        force: Force,
    },
    /// Create a consumer with another one's configuration; flags given change the copy.
    #[command(alias = "cp")]
    Copy {
        /// Stream name.
        stream: String,
        /// The consumer whose configuration to copy.
        source: String,
        /// The new consumer's name.
        destination: String,
        #[command(flatten)]
        cfg: ConfigFlags,
    },
}

/// Reads `consumer pause`'s time: a duration from now, an RFC 3339 time, or
/// `YYYY-MM-DD HH:MM:SS` taken as UTC.
fn parse_pause_until(s: &str, now: time::OffsetDateTime) -> Result<time::OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(d) = crate::units::parse_duration(s) {
        return Ok(now + d);
    }
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::PrimitiveDateTime::parse(s, &fmt)
        .map(time::PrimitiveDateTime::assume_utc)
        .map_err(|_| {
            Error::BadInput(format!(
                "pause until {s:?}: expected a duration (1h30m), an RFC 3339 time or YYYY-MM-DD HH:MM:SS"
            ))
        })
}

/// Sends CONSUMER.PAUSE (`until` None resumes) and reports the consumer's pause state.
async fn pause(
    client: &async_nats::Client,
    stream: &str,
    name: &str,
    until: Option<time::OffsetDateTime>,
    json: bool,
) -> Result<()> {
    use time::format_description::well_known::Rfc3339;
    let (body, op) = match until {
        Some(t) => {
            let t = t
                .format(&Rfc3339)
                .map_err(|e| Error::BadInput(e.to_string()))?;
            (
                json!({ "pause_until": t }),
                format!("consumer pause {stream} {name}"),
            )
        }
        None => (Value::Null, format!("consumer resume {stream} {name}")),
    };
    let resp = jsapi::request(
        client,
        &format!("CONSUMER.PAUSE.{stream}.{name}"),
        &body,
        &op,
    )
    .await?;
    let paused = resp.get("paused").and_then(Value::as_bool).unwrap_or(false);
    if until.is_some() && !paused {
        return Err(Error::BadInput(format!(
            "{op}: the consumer did not pause (a time in the past?)"
        )));
    }
    if json {
        return output::json(&resp);
    }
    if paused {
        let remaining = resp
            .get("pause_remaining")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        out(format!(
            "Paused {stream} > {name} until {} ({})",
            output::s(&resp, "pause_until"),
            output::duration_ns(remaining - remaining % 1_000_000_000)
        ))
    } else {
        out(format!("Consumer {stream} > {name} was resumed"))
    }
}

/// Where a new consumer starts.
#[derive(ValueEnum, Clone, Copy, Debug)]
enum Deliver {
    All,
    Last,
    New,
    LastPerSubject,
}

/// Acknowledgement policies.
#[derive(ValueEnum, Clone, Copy, Debug)]
enum Ack {
    Explicit,
    None,
    All,
}

/// Replay policies.
#[derive(ValueEnum, Clone, Copy, Debug)]
enum Replay {
    Instant,
    Original,
}

/// Consumer settings as flags; `None` means "not given".
#[derive(Args, Debug, Default, Clone)]
struct ConfigFlags {
    /// Deliver to this subject (a push consumer); pull when absent.
    #[arg(long, value_name = "SUBJECT")]
    target: Option<String>,
    /// Queue group for push delivery.
    #[arg(long)]
    deliver_group: Option<String>,
    /// Where to start.
    #[arg(long, value_enum)]
    deliver: Option<Deliver>,
    /// Start at this stream sequence instead.
    #[arg(long, conflicts_with = "deliver")]
    start_seq: Option<u64>,
    /// Acknowledgement policy.
    #[arg(long = "ack", value_enum)]
    ack: Option<Ack>,
    /// Replay policy.
    #[arg(long, value_enum)]
    replay: Option<Replay>,
    /// Only messages on these subjects (repeatable).
    #[arg(long)]
    filter: Vec<String>,
    /// Maximum deliveries of one message (-1 unlimited).
    #[arg(long, allow_negative_numbers = true)]
    max_deliver: Option<i64>,
    /// Maximum unacknowledged messages (-1 unlimited).
    #[arg(long, allow_negative_numbers = true)]
    max_pending: Option<i64>,
    /// Maximum waiting pull requests.
    #[arg(long)]
    max_waiting: Option<i64>,
    /// How long the server waits for an ack before redelivering.
    #[arg(long, value_parser = parse_duration)]
    ack_wait: Option<Duration>,
    /// Remove the consumer after this long without activity.
    #[arg(long, value_parser = parse_duration)]
    inactive_threshold: Option<Duration>,
    /// Push heartbeat interval.
    #[arg(long, value_parser = parse_duration)]
    heartbeat: Option<Duration>,
    /// Push flow control.
    #[arg(long)]
    flow_control: bool,
    /// Description.
    #[arg(long)]
    description: Option<String>,
}

fn ns(d: Duration) -> Value {
    json!(d.as_nanos() as u64)
}

impl ConfigFlags {
    fn apply(&self, c: &mut serde_json::Map<String, Value>) {
        let mut set = |k: &str, v: Value| {
            c.insert(k.into(), v);
        };
        if let Some(t) = &self.target {
            set("deliver_subject", json!(t));
        }
        if let Some(g) = &self.deliver_group {
            set("deliver_group", json!(g));
        }
        if let Some(d) = self.deliver {
            set(
                "deliver_policy",
                json!(match d {
                    Deliver::All => "all",
                    Deliver::Last => "last",
                    Deliver::New => "new",
                    Deliver::LastPerSubject => "last_per_subject",
                }),
            );
        }
        if let Some(s) = self.start_seq {
            set("deliver_policy", json!("by_start_sequence"));
            set("opt_start_seq", json!(s));
        }
        if let Some(a) = self.ack {
            set(
                "ack_policy",
                json!(match a {
                    Ack::Explicit => "explicit",
                    Ack::None => "none",
                    Ack::All => "all",
                }),
            );
        }
        if let Some(r) = self.replay {
            set(
                "replay_policy",
                json!(match r {
                    Replay::Instant => "instant",
                    Replay::Original => "original",
                }),
            );
        }
        match self.filter.len() {
            0 => {}
            1 => set("filter_subject", json!(self.filter[0])),
            _ => set("filter_subjects", json!(self.filter)),
        }
        if let Some(v) = self.max_deliver {
            set("max_deliver", json!(v));
        }
        if let Some(v) = self.max_pending {
            set("max_ack_pending", json!(v));
        }
        if let Some(v) = self.max_waiting {
            set("max_waiting", json!(v));
        }
        if let Some(v) = self.ack_wait {
            set("ack_wait", ns(v));
        }
        if let Some(v) = self.inactive_threshold {
            set("inactive_threshold", ns(v));
        }
        if let Some(v) = self.heartbeat {
            set("idle_heartbeat", ns(v));
        }
        if self.flow_control {
            set("flow_control", json!(true));
        }
        if let Some(v) = &self.description {
            set("description", json!(v));
        }
    }
}

fn read_config(path: &std::path::Path) -> Result<serde_json::Map<String, Value>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::BadInput(format!("cannot read {}: {e}", path.display())))?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| Error::BadInput(format!("{} is not valid JSON: {e}", path.display())))?;
    let v = match v.get("config") {
        Some(c) if c.is_object() => c.clone(),
        _ => v,
    };
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(Error::BadInput(format!(
            "{} must hold a JSON object (a consumer configuration)",
            path.display()
        ))),
    }
}

async fn create(
    client: &async_nats::Client,
    stream: &str,
    name: &str,
    cfg: serde_json::Map<String, Value>,
    action: &str,
) -> Result<Value> {
    jsapi::request(
        client,
        &format!("CONSUMER.CREATE.{stream}.{name}"),
        &json!({ "stream_name": stream, "config": cfg, "action": action }),
        &format!(
            "consumer {} {stream} {name}",
            if action == "update" { "edit" } else { "add" }
        ),
    )
    .await
}

/// Runs `natrium consumer …`.
pub async fn run(conn: &ConnectArgs, a: ConsumerArgs) -> Result<()> {
    let json = a.json.json;
    match a.cmd {
        Cmd::Add {
            stream,
            name,
            cfg,
            config,
            defaults,
        } => {
            valid_name("stream", &stream)?;
            let mut c = match &config {
                Some(p) => read_config(p)?,
                None => serde_json::Map::new(),
            };
            let from_file = c
                .get("durable_name")
                .or(c.get("name"))
                .and_then(Value::as_str)
                .map(str::to_string);
            let name = match name.or(from_file) {
                Some(n) => n,
                None if !defaults && output::interactive() => {
                    output::prompt("Consumer name", None)?
                }
                None => {
                    return Err(Error::NeedInput(format!(
                        "consumer add {stream}: no consumer name given (and no terminal to ask on)"
                    )));
                }
            };
            valid_name("consumer", &name)?;
            c.insert("durable_name".into(), json!(name));
            c.insert("name".into(), json!(name));
            cfg.apply(&mut c);
            // On a terminal, ask for the policies not given (as `nats
            // consumer add` does); elsewhere take the usual defaults.
            let ask = !defaults && config.is_none() && output::interactive();
            if !c.contains_key("deliver_policy") {
                let v = if ask {
                    output::select(
                        "Start policy",
                        &["all", "new", "last", "last_per_subject"],
                        0,
                    )?
                } else {
                    "all".into()
                };
                c.insert("deliver_policy".into(), json!(v));
            }
            if !c.contains_key("ack_policy") {
                let v = if ask {
                    output::select("Acknowledgment policy", &["explicit", "none", "all"], 0)?
                } else {
                    "explicit".into()
                };
                c.insert("ack_policy".into(), json!(v));
            }
            let client = conn.connect().await?;
            let resp = create(&client, &stream, &name, c, "create").await?;
            if json {
                output::json(&resp)
            } else {
                print_info(&resp)
            }
        }
        Cmd::Edit { stream, name, cfg } => {
            valid_name("stream", &stream)?;
            valid_name("consumer", &name)?;
            let client = conn.connect().await?;
            let info = jsapi::consumer_info(&client, &stream, &name).await?;
            let mut c = jsapi::config_of(&info).unwrap_or_default();
            cfg.apply(&mut c);
            let resp = create(&client, &stream, &name, c, "update").await?;
            if json {
                output::json(&resp)
            } else {
                print_info(&resp)
            }
        }
        Cmd::Pause {
            stream,
            name,
            until,
            force,
        } => {
            valid_name("stream", &stream)?;
            valid_name("consumer", &name)?;
            let t = parse_pause_until(&until, time::OffsetDateTime::now_utc())?;
            force.confirm(&format!(
                "Really pause consumer {stream} > {name} until {t}?"
            ))?;
            let client = conn.connect().await?;
            pause(&client, &stream, &name, Some(t), json).await
        }
        Cmd::Resume {
            stream,
            name,
            force,
        } => {
            valid_name("stream", &stream)?;
            valid_name("consumer", &name)?;
            force.confirm(&format!("Really resume consumer {stream} > {name}?"))?;
            let client = conn.connect().await?;
            pause(&client, &stream, &name, None, json).await
        }
        Cmd::Unpin {
            stream,
            name,
            group,
            force,
        } => {
            valid_name("stream", &stream)?;
            valid_name("consumer", &name)?;
            force.confirm(&format!(
                "Really unpin the client of group {group} on consumer {stream} > {name}?"
            ))?;
            let client = conn.connect().await?;
            let resp = jsapi::request(
                &client,
                &format!("CONSUMER.UNPIN.{stream}.{name}"),
                &json!({ "group": group }),
                &format!("consumer unpin {stream} {name}"),
            )
            .await?;
            if json {
                output::json(&resp)
            } else {
                out(format!(
                    "Unpinned the client of group {group} on {stream} > {name}"
                ))
            }
        }
        Cmd::Copy {
            stream,
            source,
            destination,
            cfg,
        } => {
            valid_name("stream", &stream)?;
            valid_name("consumer", &source)?;
            valid_name("consumer", &destination)?;
            let client = conn.connect().await?;
            let info = jsapi::consumer_info(&client, &stream, &source).await?;
            let mut c = jsapi::config_of(&info).unwrap_or_default();
            c.insert("name".into(), json!(destination));
            // A durable source makes a durable copy; an ephemeral's copy is named, and
            // a named consumer is durable unless it sets an inactive threshold.
            if c.contains_key("durable_name") {
                c.insert("durable_name".into(), json!(destination));
            }
            cfg.apply(&mut c);
            let resp = create(&client, &stream, &destination, c, "create").await?;
            if json {
                output::json(&resp)
            } else {
                out(format!(
                    "Consumer {stream} > {source} was copied to {destination}\n"
                ))?;
                print_info(&resp)
            }
        }
        Cmd::Info { stream, name } => {
            valid_name("stream", &stream)?;
            valid_name("consumer", &name)?;
            let client = conn.connect().await?;
            let info = jsapi::consumer_info(&client, &stream, &name).await?;
            if json {
                output::json(&info)
            } else {
                print_info(&info)
            }
        }
        Cmd::Ls { stream, names } => {
            valid_name("stream", &stream)?;
            let client = conn.connect().await?;
            let mut list = jsapi::list_all(
                &client,
                &format!("CONSUMER.LIST.{stream}"),
                "consumers",
                json!({}),
                &format!("consumer ls {stream}"),
            )
            .await?;
            list.sort_by(|a, b| output::s(a, "name").cmp(output::s(b, "name")));
            if names {
                let n: Vec<&str> = list.iter().map(|c| output::s(c, "name")).collect();
                if json {
                    return output::json(&n);
                }
                for x in n {
                    out(x)?;
                }
                return Ok(());
            }
            if json {
                return output::json(&list);
            }
            if list.is_empty() {
                return out(format!("No Consumers defined on stream {stream}"));
            }
            let mut t = output::table(
                Some(&format!("Consumers for Stream {stream}")),
                &[
                    "Name",
                    "Description",
                    "Created",
                    "Ack Pending",
                    "Unprocessed",
                    "Last Delivery",
                ],
            );
            for c in &list {
                t.row([
                    output::s(c, "name").to_string(),
                    c.pointer("/config/description")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    output::time_short(output::s(c, "created")),
                    output::num(output::u(c, "num_ack_pending")),
                    output::num(output::u(c, "num_pending")),
                    output::time_short(
                        c.pointer("/delivered/last_active")
                            .and_then(Value::as_str)
                            .unwrap_or(""),
                    ),
                ]);
            }
            t.print()
        }
        Cmd::Rm {
            stream,
            name,
            force,
        } => {
            valid_name("stream", &stream)?;
            valid_name("consumer", &name)?;
            force.confirm(&format!("Really delete consumer {stream} > {name}?"))?;
            let client = conn.connect().await?;
            let resp = jsapi::request(
                &client,
                &format!("CONSUMER.DELETE.{stream}.{name}"),
                &Value::Null,
                &format!("consumer rm {stream} {name}"),
            )
            .await?;
            if json {
                output::json(&resp)
            } else {
                out(format!("Deleted consumer {stream} > {name}"))
            }
        }
        Cmd::Next {
            stream,
            name,
            count,
            ack: _,
            no_ack,
            wait,
            raw,
        } => {
            valid_name("stream", &stream)?;
            valid_name("consumer", &name)?;
            next(conn, json, &stream, &name, count, !no_ack, wait, raw).await
        }
        Cmd::Report { stream } => {
            valid_name("stream", &stream)?;
            let client = conn.connect().await?;
            let mut list = jsapi::list_all(
                &client,
                &format!("CONSUMER.LIST.{stream}"),
                "consumers",
                json!({}),
                &format!("consumer report {stream}"),
            )
            .await?;
            list.sort_by(|a, b| output::s(a, "name").cmp(output::s(b, "name")));
            if json {
                let v: Vec<Value> = list
                    .iter()
                    .map(|c| {
                        json!({
                            "name": output::s(c, "name"),
                            "mode": mode(c),
                            "ack_policy": c.pointer("/config/ack_policy").cloned().unwrap_or(Value::Null),
                            "num_ack_pending": output::u(c, "num_ack_pending"),
                            "num_redelivered": output::u(c, "num_redelivered"),
                            "num_pending": output::u(c, "num_pending"),
                            "num_waiting": output::u(c, "num_waiting"),
                        })
                    })
                    .collect();
                return output::json(&v);
            }
            let mut t = output::table(
                Some(&format!(
                    "Consumer report for {stream} with {} consumers",
                    list.len()
                )),
                &[
                    "Consumer",
                    "Mode",
                    "Ack Policy",
                    "Ack Wait",
                    "Ack Pending",
                    "Redelivered",
                    "Unprocessed",
                    "Waiting",
                ],
            );
            for c in &list {
                let cfg = c.get("config").cloned().unwrap_or(Value::Null);
                t.row([
                    output::s(c, "name").to_string(),
                    mode(c).to_string(),
                    output::s(&cfg, "ack_policy").to_string(),
                    output::duration_ns(output::u(&cfg, "ack_wait")),
                    output::num(output::u(c, "num_ack_pending")),
                    output::num(output::u(c, "num_redelivered")),
                    output::num(output::u(c, "num_pending")),
                    output::num(output::u(c, "num_waiting")),
                ]);
            }
            t.print()
        }
    }
}

fn mode(c: &Value) -> &'static str {
    if c.pointer("/config/deliver_subject")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty())
    {
        "Push"
    } else {
        "Pull"
    }
}

#[allow(clippy::too_many_arguments)]
async fn next(
    conn: &ConnectArgs,
    json: bool,
    stream: &str,
    name: &str,
    count: u64,
    ack: bool,
    wait: Option<Duration>,
    raw: bool,
) -> Result<()> {
    let client = conn.connect().await?;
    let op = format!("consumer next {stream} {name}");
    // Fail with the server's words when the consumer is missing.
    jsapi::consumer_info(&client, stream, name).await?;
    let wait = wait.unwrap_or(conn.timeout);
    let inbox = client.new_inbox();
    let mut sub = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| Error::nats(&op, e))?;
    let body = json!({ "batch": count, "expires": wait.as_nanos() as u64 });
    client
        .publish_with_reply(
            format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{name}"),
            inbox,
            serde_json::to_vec(&body)?.into(),
        )
        .await
        .map_err(|e| Error::nats(&op, e))?;
    client.flush().await.map_err(|e| Error::nats(&op, e))?;
    let deadline = Instant::now() + wait + Duration::from_millis(500);
    let mut got = 0u64;
    while got < count {
        let left = deadline.saturating_duration_since(Instant::now());
        let m = match tokio::time::timeout(left, sub.next()).await {
            Ok(Some(m)) => m,
            _ => break,
        };
        if let Some(status) = m.status {
            let code = status.as_u16();
            if code == 100 {
                continue;
            }
            if code == 503 {
                return Err(Error::NoResponders(format!(
                    "{op}: JetStream is not enabled for this account"
                )));
            }
            if code == 404 || code == 408 || code == 409 {
                if got == 0 && code == 409 {
                    return Err(Error::BadInput(format!(
                        "{op}: {}",
                        m.description.unwrap_or_else(|| "request refused".into())
                    )));
                }
                break;
            }
            continue;
        }
        got += 1;
        let reply = m.reply.as_ref().map(|r| r.to_string()).unwrap_or_default();
        let meta = parse_ack_subject(&reply);
        if json {
            let headers: serde_json::Map<String, Value> = m
                .headers
                .iter()
                .flat_map(|h| h.iter())
                .map(|(k, vs)| {
                    (
                        k.to_string(),
                        json!(
                            vs.iter()
                                .map(|v| v.as_str().to_string())
                                .collect::<Vec<_>>()
                        ),
                    )
                })
                .collect();
            output::json_line(&json!({
                "subject": m.subject.as_str(),
                "headers": headers,
                "data": String::from_utf8_lossy(&m.payload),
                "stream_seq": meta.map(|x| x.0),
                "consumer_seq": meta.map(|x| x.1),
                "delivered": meta.map(|x| x.2),
                "pending": meta.map(|x| x.3),
                "acked": ack,
            }))?;
        } else if raw {
            output::out_bytes(&m.payload, true)?;
        } else {
            out(format!(
                "[{}] subj: {} / tries: {} / cons seq: {} / str seq: {} / pending: {}\n",
                time_now(),
                m.subject.as_str(),
                meta.map(|x| x.2).unwrap_or(0),
                meta.map(|x| x.1).unwrap_or(0),
                meta.map(|x| x.0).unwrap_or(0),
                meta.map(|x| x.3).unwrap_or(0),
            ))?;
            if let Some(h) = &m.headers {
                out("Headers:")?;
                for (k, vs) in h.iter() {
                    for v in vs {
                        out(format!("  {k}: {}", v.as_str()))?;
                    }
                }
                out("")?;
            }
            output::out_bytes(&m.payload, true)?;
            out("")?;
        }
        if ack && !reply.is_empty() {
            client
                .publish(reply, bytes::Bytes::from_static(b"+ACK"))
                .await
                .map_err(|e| Error::nats(&op, e))?;
            if !json && !raw {
                out("Acknowledged message\n")?;
            }
        }
    }
    crate::cmd::core::sync(&client).await?;
    if got == 0 {
        return Err(Error::Timeout(format!("{op}: no message")));
    }
    Ok(())
}

fn time_now() -> String {
    let n = time::OffsetDateTime::now_utc();
    format!("{:02}:{:02}:{:02}", n.hour(), n.minute(), n.second())
}

/// Reads (stream seq, consumer seq, delivery count, pending) from a
/// `$JS.ACK.…` reply subject (v1 and v2 layouts).
fn parse_ack_subject(reply: &str) -> Option<(u64, u64, u64, u64)> {
    let t: Vec<&str> = reply.split('.').collect();
    if t.len() < 9 || t[0] != "$JS" || t[1] != "ACK" {
        return None;
    }
    // v1: $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
    // v2: $JS.ACK.<domain>.<hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>.<token>
    let base = if t.len() == 9 { 4 } else { 6 };
    let p = |i: usize| t.get(i).and_then(|x| x.parse::<u64>().ok());
    Some((p(base + 1)?, p(base + 2)?, p(base)?, p(base + 4)?))
}

/// Prints a consumer info answer.
pub fn print_info(info: &Value) -> Result<()> {
    let c = info.get("config").cloned().unwrap_or(Value::Null);
    out(format!(
        "Information for Consumer {} > {} created {}\n",
        output::s(info, "stream_name"),
        output::s(info, "name"),
        output::time_short(output::s(info, "created"))
    ))?;
    out("Configuration:\n")?;
    let filter = match c.get("filter_subjects").and_then(Value::as_array) {
        Some(a) if !a.is_empty() => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        _ => output::s(&c, "filter_subject").to_string(),
    };
    let mut rows = vec![
        ("Name", output::s(info, "name").to_string()),
        ("Pull Mode", (mode(info) == "Pull").to_string()),
    ];
    if mode(info) == "Push" {
        rows.push(("Delivery Subject", output::s(&c, "deliver_subject").into()));
    }
    if !filter.is_empty() {
        rows.push(("Filter Subject", filter));
    }
    rows.extend([
        (
            "Deliver Policy",
            output::s(&c, "deliver_policy").to_string(),
        ),
        ("Ack Policy", output::s(&c, "ack_policy").to_string()),
        ("Ack Wait", output::duration_ns(output::u(&c, "ack_wait"))),
        ("Replay Policy", output::s(&c, "replay_policy").to_string()),
        (
            "Maximum Deliveries",
            output::limit(output::i(&c, "max_deliver"), true, output::num),
        ),
        (
            "Max Ack Pending",
            output::limit(output::i(&c, "max_ack_pending"), true, output::num),
        ),
    ]);
    output::kv_block(&rows)?;
    out("\nState:\n")?;
    let d = info.get("delivered").cloned().unwrap_or(Value::Null);
    let f = info.get("ack_floor").cloned().unwrap_or(Value::Null);
    output::kv_block(&[
        (
            "Last Delivered Message",
            format!(
                "Consumer sequence: {} Stream sequence: {}",
                output::u(&d, "consumer_seq"),
                output::u(&d, "stream_seq")
            ),
        ),
        (
            "Acknowledgment Floor",
            format!(
                "Consumer sequence: {} Stream sequence: {}",
                output::u(&f, "consumer_seq"),
                output::u(&f, "stream_seq")
            ),
        ),
        (
            "Outstanding Acks",
            output::num(output::u(info, "num_ack_pending")),
        ),
        (
            "Redelivered Messages",
            output::num(output::u(info, "num_redelivered")),
        ),
        (
            "Unprocessed Messages",
            output::num(output::u(info, "num_pending")),
        ),
        ("Waiting Pulls", output::num(output::u(info, "num_waiting"))),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_subjects() {
        assert_eq!(
            parse_ack_subject("$JS.ACK.S.C.1.5.3.1700000000.7"),
            Some((5, 3, 1, 7))
        );
        assert_eq!(
            parse_ack_subject("$JS.ACK.dom.hash.S.C.2.5.3.1700000000.7.tok"),
            Some((5, 3, 2, 7))
        );
        assert_eq!(parse_ack_subject("_INBOX.x"), None);
    }
}
