//! `natrium stream`: create, change, inspect and empty streams, and read
//! or delete their messages, through the JetStream API.

use std::time::Duration;

use async_nats::Client;
use base64::Engine;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use crate::cmd::{Force, JsonFlag};
use crate::connect::ConnectArgs;
use crate::error::{Error, Result};
use crate::jsapi::{self, valid_name};
use crate::output::{self, out};
use crate::units::{parse_duration, parse_size};

/// Arguments of `natrium stream`.
#[derive(Args, Debug)]
pub struct StreamArgs {
    #[command(flatten)]
    json: JsonFlag,
    #[command(subcommand)]
    cmd: Cmd,
}

impl StreamArgs {
    /// Backup or restore: the whole data of a stream (or account) moves.
    pub fn moves_bulk_data(&self) -> bool {
        matches!(self.cmd, Cmd::Backup(_) | Cmd::Restore(_))
    }
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Back up a stream into a folder (`stream.tar.s2` + `backup.json`), online.
    #[command(alias = "snapshot")]
    Backup(crate::backup::StreamBackupArgs),
    /// Restore a stream from a backup folder (atomically on natrium-server).
    Restore(crate::backup::StreamRestoreArgs),
    /// Create a stream (asks for missing settings on a terminal).
    #[command(alias = "create", alias = "new")]
    Add {
        /// Stream name.
        name: Option<String>,
        #[command(flatten)]
        cfg: ConfigFlags,
        /// Read the stream configuration (JSON, as the API has it) from a
        /// file; flags given too override it.
        #[arg(long, value_name = "FILE")]
        config: Option<std::path::PathBuf>,
        /// Take the server's defaults for everything not given instead of
        /// asking.
        #[arg(long)]
        defaults: bool,
    },
    /// Change a stream's configuration.
    #[command(alias = "update")]
    Edit {
        /// Stream name.
        name: String,
        #[command(flatten)]
        cfg: ConfigFlags,
        /// Replace the configuration with the one in this file (JSON).
        #[arg(long, value_name = "FILE")]
        config: Option<std::path::PathBuf>,
        #[command(flatten)]
        force: Force,
    },
    /// Show a stream's configuration and state.
    #[command(alias = "show")]
    Info {
        /// Stream name.
        name: String,
    },
    /// List the streams.
    #[command(alias = "list")]
    Ls {
        /// Print only the names.
        #[arg(short, long)]
        names: bool,
        /// Only streams taking this subject.
        #[arg(long)]
        subject: Option<String>,
    },
    /// Delete a stream and all its messages.
    #[command(alias = "delete")]
    Rm {
        /// Stream name.
        name: String,
        #[command(flatten)]
        force: Force,
    },
    /// Delete messages from a stream.
    Purge {
        /// Stream name.
        name: String,
        /// Only messages on this subject (wildcards allowed).
        #[arg(long)]
        subject: Option<String>,
        /// Only messages below this sequence.
        #[arg(long, conflicts_with = "keep")]
        seq: Option<u64>,
        /// Keep this many of the newest messages.
        #[arg(long)]
        keep: Option<u64>,
        #[command(flatten)]
        force: Force,
    },
    /// Show one message, by sequence or as the last on a subject.
    Get {
        /// Stream name.
        name: String,
        /// Sequence number.
        seq: Option<u64>,
        /// The last message on this subject instead.
        #[arg(long, value_name = "SUBJECT", conflicts_with = "seq")]
        last_for: Option<String>,
        /// Print only the body.
        #[arg(long)]
        raw: bool,
    },
    /// Show the messages of a stream in order.
    View {
        /// Stream name.
        name: String,
        /// Only messages on this subject (wildcards allowed).
        #[arg(long)]
        subject: Option<String>,
        /// Start at this sequence.
        #[arg(long, default_value_t = 1)]
        since: u64,
        /// Show at most this many messages.
        #[arg(long, default_value_t = 10)]
        count: u64,
        /// Print only the bodies.
        #[arg(long)]
        raw: bool,
    },
    /// Delete one message by sequence.
    #[command(alias = "rm-msg")]
    Rmm {
        /// Stream name.
        name: String,
        /// Sequence number.
        seq: u64,
        /// Erase the data (overwrite), not just unlink it.
        #[arg(long)]
        erase: bool,
        #[command(flatten)]
        force: Force,
    },
    /// A table of every stream with its state.
    Report,
    /// The subjects a stream holds messages on, with their counts.
    #[command(alias = "subj")]
    Subjects {
        /// Stream name.
        name: String,
        /// Only subjects matching this filter.
        #[arg(default_value = ">")]
        filter: String,
        /// Sort by subject name instead of message count.
        #[arg(long, value_enum, default_value = "messages")]
        sort: SubjectSort,
        /// Reverse the order.
        #[arg(short = 'R', long)]
        reverse: bool,
        /// Print only the subject names.
        #[arg(long)]
        names: bool,
    },
    /// Seal a stream: no more messages, deletes or purges, for good.
    Seal {
        /// Stream name.
        name: String,
        #[command(flatten)]
        force: Force,
    },
    /// Create a stream with another stream's configuration (no data is copied); flags
    /// given change the copy.
    #[command(alias = "cp")]
    Copy {
        /// The stream whose configuration to copy.
        #[arg(value_name = "SOURCE")]
        original: String,
        /// The new stream's name.
        destination: String,
        #[command(flatten)]
        cfg: ConfigFlags,
    },
}

/// Orders of `stream subjects`.
#[derive(ValueEnum, Clone, Copy, Debug)]
enum SubjectSort {
    /// By message count, largest first (as the nats CLI).
    #[value(alias = "count")]
    Messages,
    /// By subject.
    #[value(alias = "subjects")]
    Name,
}

/// Retention policies.
#[derive(ValueEnum, Clone, Copy, Debug)]
enum Retention {
    Limits,
    Interest,
    #[value(alias = "work", alias = "wq")]
    Workqueue,
}

/// Storage types.
#[derive(ValueEnum, Clone, Copy, Debug)]
enum Storage {
    File,
    #[value(alias = "mem")]
    Memory,
}

/// Discard policies.
#[derive(ValueEnum, Clone, Copy, Debug)]
enum Discard {
    Old,
    New,
}

/// Stream settings as flags; `None` means "not given".
#[derive(Args, Debug, Default, Clone)]
struct ConfigFlags {
    /// Subjects the stream takes, comma separated (wildcards allowed).
    #[arg(long, value_delimiter = ',')]
    subjects: Option<Vec<String>>,
    /// Storage backend.
    #[arg(long, value_enum)]
    storage: Option<Storage>,
    /// Number of replicas.
    #[arg(long)]
    replicas: Option<i64>,
    /// Retention policy.
    #[arg(long, value_enum)]
    retention: Option<Retention>,
    /// What to drop when a limit is reached.
    #[arg(long, value_enum)]
    discard: Option<Discard>,
    /// Maximum number of messages (-1 unlimited).
    #[arg(long, allow_negative_numbers = true)]
    max_msgs: Option<i64>,
    /// Maximum messages per subject (-1 unlimited).
    #[arg(long, allow_negative_numbers = true)]
    max_msgs_per_subject: Option<i64>,
    /// Maximum total size, e.g. 1G (-1 unlimited).
    #[arg(long, value_parser = parse_limit, allow_negative_numbers = true)]
    max_bytes: Option<i64>,
    /// Maximum message age, e.g. 1h, 7d (0 unlimited).
    #[arg(long, value_parser = parse_duration)]
    max_age: Option<Duration>,
    /// Maximum message size, e.g. 1M (-1 unlimited).
    #[arg(long, value_parser = parse_limit, allow_negative_numbers = true)]
    max_msg_size: Option<i64>,
    /// Maximum number of consumers (-1 unlimited).
    #[arg(long, allow_negative_numbers = true)]
    max_consumers: Option<i64>,
    /// Window for duplicate detection by Nats-Msg-Id, e.g. 2m.
    #[arg(long, value_parser = parse_duration)]
    dupe_window: Option<Duration>,
    /// Description.
    #[arg(long)]
    description: Option<String>,
    /// Allow rollup headers (Nats-Rollup).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    allow_rollup: Option<bool>,
    /// Refuse message deletion.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    deny_delete: Option<bool>,
    /// Refuse purges.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    deny_purge: Option<bool>,
    /// Allow direct get.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    allow_direct: Option<bool>,
    /// Do not acknowledge publishes.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    no_ack: Option<bool>,
    /// With discard new, apply it per subject (needs --max-msgs-per-subject).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    discard_per_subject: Option<bool>,
    /// Allow a per-message TTL (Nats-TTL header).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    allow_msg_ttl: Option<bool>,
    /// On-disk compression.
    #[arg(long, value_enum)]
    compression: Option<Compression>,
    /// First sequence number of a new stream.
    #[arg(long)]
    first_seq: Option<u64>,
    /// Mirror this stream (then no subjects are taken).
    #[arg(long, value_name = "STREAM")]
    mirror: Option<String>,
    /// Source messages from this stream (repeatable).
    #[arg(long, value_name = "STREAM")]
    source: Vec<String>,
    /// Metadata entry KEY=VALUE (repeatable).
    #[arg(long, value_parser = parse_kv, value_name = "KEY=VALUE")]
    metadata: Vec<(String, String)>,
}

/// Compression choices.
#[derive(ValueEnum, Clone, Copy, Debug)]
enum Compression {
    None,
    S2,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("invalid metadata {s:?}: expected KEY=VALUE")),
    }
}

/// Parses a byte limit: a size such as 1G, or -1 / unlimited.
fn parse_limit(s: &str) -> Result<i64, String> {
    let t = s.trim();
    if t == "-1" || t.eq_ignore_ascii_case("unlimited") {
        return Ok(-1);
    }
    let n = parse_size(t)?;
    i64::try_from(n).map_err(|_| format!("size {s:?} too large"))
}

fn ns(d: Duration) -> Value {
    json!(d.as_nanos() as u64)
}

impl ConfigFlags {
    /// Writes every given flag into `cfg`.
    fn apply(&self, cfg: &mut serde_json::Map<String, Value>) {
        let mut set = |k: &str, v: Value| {
            cfg.insert(k.to_string(), v);
        };
        if let Some(v) = &self.subjects {
            set("subjects", json!(v));
        }
        if let Some(v) = self.storage {
            set(
                "storage",
                json!(match v {
                    Storage::File => "file",
                    Storage::Memory => "memory",
                }),
            );
        }
        if let Some(v) = self.replicas {
            set("num_replicas", json!(v));
        }
        if let Some(v) = self.retention {
            set(
                "retention",
                json!(match v {
                    Retention::Limits => "limits",
                    Retention::Interest => "interest",
                    Retention::Workqueue => "workqueue",
                }),
            );
        }
        if let Some(v) = self.discard {
            set(
                "discard",
                json!(match v {
                    Discard::Old => "old",
                    Discard::New => "new",
                }),
            );
        }
        if let Some(v) = self.max_msgs {
            set("max_msgs", json!(v));
        }
        if let Some(v) = self.max_msgs_per_subject {
            set("max_msgs_per_subject", json!(v));
        }
        if let Some(v) = self.max_bytes {
            set("max_bytes", json!(v));
        }
        if let Some(v) = self.max_age {
            set("max_age", ns(v));
        }
        if let Some(v) = self.max_msg_size {
            set("max_msg_size", json!(v));
        }
        if let Some(v) = self.max_consumers {
            set("max_consumers", json!(v));
        }
        if let Some(v) = self.dupe_window {
            set("duplicate_window", ns(v));
        }
        if let Some(v) = &self.description {
            set("description", json!(v));
        }
        if let Some(v) = self.allow_rollup {
            set("allow_rollup_hdrs", json!(v));
        }
        if let Some(v) = self.deny_delete {
            set("deny_delete", json!(v));
        }
        if let Some(v) = self.deny_purge {
            set("deny_purge", json!(v));
        }
        if let Some(v) = self.allow_direct {
            set("allow_direct", json!(v));
        }
        if let Some(v) = self.no_ack {
            set("no_ack", json!(v));
        }
        if let Some(v) = self.discard_per_subject {
            set("discard_new_per_subject", json!(v));
        }
        if let Some(v) = self.allow_msg_ttl {
            set("allow_msg_ttl", json!(v));
        }
        if let Some(v) = self.compression {
            set(
                "compression",
                json!(match v {
                    Compression::None => "none",
                    Compression::S2 => "s2",
                }),
            );
        }
        if let Some(v) = self.first_seq {
            set("first_seq", json!(v));
        }
        if let Some(m) = &self.mirror {
            set("mirror", json!({ "name": m }));
        }
        if !self.source.is_empty() {
            let v: Vec<Value> = self.source.iter().map(|s| json!({ "name": s })).collect();
            set("sources", json!(v));
        }
        if !self.metadata.is_empty() {
            let m: serde_json::Map<String, Value> = self
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            set("metadata", Value::Object(m));
        }
    }
}

/// The settings `stream add` insists on (asking for them on a terminal),
/// as (config key, flag, question).
const REQUIRED: &[(&str, &str, &str)] = &[
    ("subjects", "--subjects", "Subjects"),
    ("storage", "--storage", "Storage"),
    ("retention", "--retention", "Retention Policy"),
    ("discard", "--discard", "Discard Policy"),
    ("max_msgs", "--max-msgs", "Stream Messages Limit"),
    (
        "max_msgs_per_subject",
        "--max-msgs-per-subject",
        "Per Subject Messages Limit",
    ),
    ("max_bytes", "--max-bytes", "Total Stream Size"),
    ("max_age", "--max-age", "Message TTL"),
    ("max_msg_size", "--max-msg-size", "Max Message Size"),
    (
        "duplicate_window",
        "--dupe-window",
        "Duplicate tracking time window",
    ),
];

/// Asks for one missing setting and returns its JSON value.
fn ask(key: &str, question: &str, name: &str) -> Result<Value> {
    Ok(match key {
        "subjects" => {
            let s = output::prompt(question, Some(name))?;
            json!(
                s.split(',')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .collect::<Vec<_>>()
            )
        }
        "storage" => json!(output::select(question, &["file", "memory"], 0)?),
        "retention" => json!(output::select(
            question,
            &["limits", "interest", "workqueue"],
            0
        )?),
        "discard" => json!(output::select(question, &["old", "new"], 0)?),
        "max_msgs" | "max_msgs_per_subject" => {
            let s = output::prompt(question, Some("-1"))?;
            json!(
                s.trim()
                    .parse::<i64>()
                    .map_err(|_| Error::Usage(format!("{question}: not a number: {s:?}")))?
            )
        }
        "max_bytes" | "max_msg_size" => {
            let s = output::prompt(question, Some("-1"))?;
            json!(parse_limit(&s).map_err(|e| Error::Usage(format!("{question}: {e}")))?)
        }
        "max_age" | "duplicate_window" => {
            let default = if key == "max_age" { "0" } else { "2m" };
            let s = output::prompt(question, Some(default))?;
            ns(parse_duration(&s).map_err(|e| Error::Usage(format!("{question}: {e}")))?)
        }
        _ => Value::Null,
    })
}

fn read_config(path: &std::path::Path) -> Result<serde_json::Map<String, Value>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::BadInput(format!("cannot read {}: {e}", path.display())))?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| Error::BadInput(format!("{} is not valid JSON: {e}", path.display())))?;
    // Accept a bare config or a stream info ({"config": {...}}).
    let v = match v.get("config") {
        Some(c) if c.is_object() => c.clone(),
        _ => v,
    };
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(Error::BadInput(format!(
            "{} must hold a JSON object (a stream configuration)",
            path.display()
        ))),
    }
}

/// Every subject of `stream` matching `filter` with its message count, read through
/// STREAM.INFO's `subjects_filter` page by page.
async fn subjects(client: &Client, stream: &str, filter: &str) -> Result<Vec<(String, u64)>> {
    let op = format!("stream subjects {stream}");
    let mut all: Vec<(String, u64)> = Vec::new();
    loop {
        let body = json!({ "subjects_filter": filter, "offset": all.len() });
        let v = jsapi::request(client, &format!("STREAM.INFO.{stream}"), &body, &op).await?;
        let page = v.pointer("/state/subjects").and_then(Value::as_object);
        let got = page.map_or(0, |p| p.len());
        if let Some(p) = page {
            all.extend(p.iter().map(|(s, n)| (s.clone(), n.as_u64().unwrap_or(0))));
        }
        let total = v.get("total").and_then(Value::as_u64).unwrap_or(0);
        if got == 0 || all.len() as u64 >= total {
            return Ok(all);
        }
    }
}

/// Runs `natrium stream …`.
pub async fn run(conn: &ConnectArgs, a: StreamArgs) -> Result<()> {
    let json = a.json.json;
    match a.cmd {
        Cmd::Backup(b) => crate::backup::run_stream_backup(conn, b, json).await,
        Cmd::Restore(r) => crate::backup::run_stream_restore(conn, r, json).await,
        Cmd::Add {
            name,
            cfg,
            config,
            defaults,
        } => add(conn, json, name, cfg, config, defaults).await,
        Cmd::Edit {
            name,
            cfg,
            config,
            force,
        } => {
            valid_name("stream", &name)?;
            let client = conn.connect().await?;
            let info = jsapi::stream_info(&client, &name).await?;
            let mut c = match &config {
                Some(p) => read_config(p)?,
                None => jsapi::config_of(&info).unwrap_or_default(),
            };
            cfg.apply(&mut c);
            c.insert("name".into(), json!(name));
            if !json && !force.force && output::interactive() {
                force.confirm(&format!("Really change stream {name}?"))?;
            }
            let resp = jsapi::request(
                &client,
                &format!("STREAM.UPDATE.{name}"),
                &Value::Object(c),
                &format!("stream edit {name}"),
            )
            .await?;
            if json {
                output::json(&resp)
            } else {
                out(format!("Stream {name} was updated\n"))?;
                print_info(&resp)
            }
        }
        Cmd::Info { name } => {
            valid_name("stream", &name)?;
            let client = conn.connect().await?;
            let info = jsapi::stream_info(&client, &name).await?;
            if json {
                output::json(&info)
            } else {
                print_info(&info)
            }
        }
        Cmd::Ls { names, subject } => {
            let client = conn.connect().await?;
            let extra = match &subject {
                Some(s) => json!({ "subject": s }),
                None => json!({}),
            };
            if names {
                let mut n: Vec<Value> =
                    jsapi::list_all(&client, "STREAM.NAMES", "streams", extra, "stream ls").await?;
                n.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
                if json {
                    return output::json(&n);
                }
                for x in n {
                    out(x.as_str().unwrap_or_default())?;
                }
                return Ok(());
            }
            let mut streams = list(&client, extra).await?;
            streams.sort_by(|a, b| cfg_s(a, "name").cmp(cfg_s(b, "name")));
            if json {
                return output::json(&streams);
            }
            if streams.is_empty() {
                return out("No Streams defined");
            }
            let mut t = output::table(
                Some("Streams"),
                &[
                    "Name",
                    "Description",
                    "Created",
                    "Messages",
                    "Size",
                    "Last Message",
                ],
            );
            for s in &streams {
                let st = s.get("state").cloned().unwrap_or(Value::Null);
                t.row([
                    cfg_s(s, "name").to_string(),
                    cfg_s(s, "description").to_string(),
                    output::time_short(output::s(s, "created")),
                    output::num(output::u(&st, "messages")),
                    output::bytes(output::u(&st, "bytes")),
                    output::time_short(output::s(&st, "last_ts")),
                ]);
            }
            t.print()
        }
        Cmd::Rm { name, force } => {
            valid_name("stream", &name)?;
            force.confirm(&format!("Really delete stream {name}?"))?;
            let client = conn.connect().await?;
            let resp = jsapi::request(
                &client,
                &format!("STREAM.DELETE.{name}"),
                &Value::Null,
                &format!("stream rm {name}"),
            )
            .await?;
            if json {
                output::json(&resp)
            } else {
                out(format!("Deleted stream {name}"))
            }
        }
        Cmd::Purge {
            name,
            subject,
            seq,
            keep,
            force,
        } => {
            valid_name("stream", &name)?;
            force.confirm(&format!("Really purge stream {name}?"))?;
            let client = conn.connect().await?;
            let mut body = serde_json::Map::new();
            if let Some(s) = subject {
                body.insert("filter".into(), json!(s));
            }
            if let Some(s) = seq {
                body.insert("seq".into(), json!(s));
            }
            if let Some(k) = keep {
                body.insert("keep".into(), json!(k));
            }
            let body = if body.is_empty() {
                Value::Null
            } else {
                Value::Object(body)
            };
            let resp = jsapi::request(
                &client,
                &format!("STREAM.PURGE.{name}"),
                &body,
                &format!("stream purge {name}"),
            )
            .await?;
            if json {
                output::json(&resp)
            } else {
                out(format!(
                    "Purged {} messages from {name}",
                    output::num(output::u(&resp, "purged"))
                ))
            }
        }
        Cmd::Get {
            name,
            seq,
            last_for,
            raw,
        } => {
            valid_name("stream", &name)?;
            let body = match (seq, last_for) {
                (Some(s), _) => json!({ "seq": s }),
                (None, Some(subj)) => json!({ "last_by_subj": subj }),
                (None, None) => {
                    return Err(Error::Usage(
                        "stream get: give a sequence or --last-for SUBJECT".into(),
                    ));
                }
            };
            let client = conn.connect().await?;
            let resp = jsapi::request(
                &client,
                &format!("STREAM.MSG.GET.{name}"),
                &body,
                &format!("stream get {name}"),
            )
            .await?;
            if json {
                return output::json(&resp);
            }
            let m = resp.get("message").cloned().unwrap_or(Value::Null);
            print_stored(&name, &m, raw)
        }
        Cmd::View {
            name,
            subject,
            since,
            count,
            raw,
        } => {
            valid_name("stream", &name)?;
            let client = conn.connect().await?;
            let filter = subject.unwrap_or_else(|| ">".into());
            let mut seq = since.max(1);
            let mut shown = 0;
            while shown < count {
                let r = jsapi::request(
                    &client,
                    &format!("STREAM.MSG.GET.{name}"),
                    &json!({ "seq": seq, "next_by_subj": filter }),
                    &format!("stream view {name}"),
                )
                .await;
                let m = match r {
                    Ok(v) => v.get("message").cloned().unwrap_or(Value::Null),
                    Err(Error::Api { code: 404, .. }) => break,
                    Err(e) => return Err(e),
                };
                let got = output::u(&m, "seq");
                if got == 0 {
                    break;
                }
                if json {
                    output::json_line(&m)?;
                } else {
                    print_stored(&name, &m, raw)?;
                    if !raw {
                        out("")?;
                    }
                }
                shown += 1;
                seq = got + 1;
            }
            if shown == 0 && !json && !raw {
                out(format!("No messages in {name} from sequence {since}"))?;
            }
            Ok(())
        }
        Cmd::Rmm {
            name,
            seq,
            erase,
            force,
        } => {
            valid_name("stream", &name)?;
            force.confirm(&format!("Really delete message {seq} from stream {name}?"))?;
            let client = conn.connect().await?;
            let resp = jsapi::request(
                &client,
                &format!("STREAM.MSG.DELETE.{name}"),
                &json!({ "seq": seq, "no_erase": !erase }),
                &format!("stream rmm {name} {seq}"),
            )
            .await?;
            if json {
                output::json(&resp)
            } else {
                out(format!("Deleted message {seq} from stream {name}"))
            }
        }
        Cmd::Subjects {
            name,
            filter,
            sort,
            reverse,
            names,
        } => {
            valid_name("stream", &name)?;
            let client = conn.connect().await?;
            let mut subjects = subjects(&client, &name, &filter).await?;
            match sort {
                SubjectSort::Messages => {
                    subjects.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)))
                }
                SubjectSort::Name => subjects.sort(),
            }
            if reverse {
                subjects.reverse();
            }
            if json {
                let m: serde_json::Map<String, Value> =
                    subjects.into_iter().map(|(s, n)| (s, json!(n))).collect();
                return output::json(&Value::Object(m));
            }
            if subjects.is_empty() {
                return out(format!("No subjects found matching {filter}"));
            }
            if names {
                for (s, _) in subjects {
                    out(s)?;
                }
                return Ok(());
            }
            let mut t = output::table(
                Some(&format!("{} Subjects in stream {name}", subjects.len())),
                &["Subject", "Count"],
            );
            for (s, n) in subjects {
                t.row([s, output::num(n)]);
            }
            t.print()
        }
        Cmd::Seal { name, force } => {
            valid_name("stream", &name)?;
            let client = conn.connect().await?;
            force.confirm(&format!(
                "Really seal stream {name}? A sealed stream cannot be unsealed"
            ))?;
            let op = format!("stream seal {name}");
            let resp = jsapi::update_stream_config(&client, &name, &op, |c| {
                c.insert("sealed".into(), json!(true));
                Ok(())
            })
            .await?;
            if json {
                output::json(&resp)
            } else {
                out(format!("Stream {name} was sealed\n"))?;
                print_info(&resp)
            }
        }
        Cmd::Copy {
            original: source,
            destination,
            cfg,
        } => {
            valid_name("stream", &source)?;
            valid_name("stream", &destination)?;
            let client = conn.connect().await?;
            let info = jsapi::stream_info(&client, &source).await?;
            let mut c = jsapi::config_of(&info).unwrap_or_default();
            c.insert("name".into(), json!(destination));
            cfg.apply(&mut c);
            let resp = jsapi::request(
                &client,
                &format!("STREAM.CREATE.{destination}"),
                &Value::Object(c),
                &format!("stream copy {source} {destination}"),
            )
            .await?;
            if json {
                output::json(&resp)
            } else {
                out(format!("Stream {source} was copied to {destination}\n"))?;
                print_info(&resp)
            }
        }
        Cmd::Report => {
            let client = conn.connect().await?;
            let mut streams = list(&client, json!({})).await?;
            streams.sort_by(|a, b| cfg_s(a, "name").cmp(cfg_s(b, "name")));
            if json {
                let v: Vec<Value> = streams
                    .iter()
                    .map(|s| {
                        let st = s.get("state").cloned().unwrap_or(Value::Null);
                        json!({
                            "stream": cfg_s(s, "name"),
                            "storage": cfg_s(s, "storage"),
                            "replicas": s.pointer("/config/num_replicas").cloned().unwrap_or(json!(1)),
                            "consumers": output::u(&st, "consumer_count"),
                            "messages": output::u(&st, "messages"),
                            "bytes": output::u(&st, "bytes"),
                            "deleted": output::u(&st, "num_deleted"),
                            "first_seq": output::u(&st, "first_seq"),
                            "last_seq": output::u(&st, "last_seq"),
                        })
                    })
                    .collect();
                return output::json(&v);
            }
            if streams.is_empty() {
                return out("No Streams defined");
            }
            let mut t = output::table(
                Some("Stream Report"),
                &[
                    "Stream",
                    "Storage",
                    "Replicas",
                    "Consumers",
                    "Messages",
                    "Bytes",
                    "Deleted",
                ],
            );
            for s in &streams {
                let st = s.get("state").cloned().unwrap_or(Value::Null);
                t.row([
                    cfg_s(s, "name").to_string(),
                    title(cfg_s(s, "storage")),
                    s.pointer("/config/num_replicas")
                        .and_then(Value::as_u64)
                        .unwrap_or(1)
                        .to_string(),
                    output::num(output::u(&st, "consumer_count")),
                    output::num(output::u(&st, "messages")),
                    output::bytes(output::u(&st, "bytes")),
                    output::num(output::u(&st, "num_deleted")),
                ]);
            }
            t.print()
        }
    }
}

async fn add(
    conn: &ConnectArgs,
    json: bool,
    name: Option<String>,
    flags: ConfigFlags,
    config: Option<std::path::PathBuf>,
    defaults: bool,
) -> Result<()> {
    let tty = output::interactive();
    let mut cfg = match &config {
        Some(p) => read_config(p)?,
        None => serde_json::Map::new(),
    };
    let name = match name.or_else(|| cfg_s_map(&cfg, "name")) {
        Some(n) => n,
        None if tty => output::prompt("Stream Name", None)?,
        None => {
            return Err(Error::NeedInput(
                "stream add: no stream name given (and no terminal to ask on)".into(),
            ));
        }
    };
    valid_name("stream", &name)?;
    cfg.insert("name".into(), json!(name));
    flags.apply(&mut cfg);
    if config.is_none() && !defaults {
        // A mirror takes no subjects of its own.
        let mirror = cfg.contains_key("mirror");
        let missing: Vec<&(&str, &str, &str)> = REQUIRED
            .iter()
            .filter(|(k, _, _)| !(cfg.contains_key(*k) || (mirror && *k == "subjects")))
            .collect();
        if !missing.is_empty() {
            if !tty {
                let flags: Vec<&str> = missing.iter().map(|(_, f, _)| *f).collect();
                return Err(Error::NeedInput(format!(
                    "stream add {name}: missing {} (give them, or --defaults for the server's defaults; there is no terminal to ask on)",
                    flags.join(", ")
                )));
            }
            for (k, _, q) in missing {
                let v = ask(k, q, &name)?;
                cfg.insert((*k).to_string(), v);
            }
        }
    }
    let client = conn.connect().await?;
    let resp = jsapi::request(
        &client,
        &format!("STREAM.CREATE.{name}"),
        &Value::Object(cfg),
        &format!("stream add {name}"),
    )
    .await?;
    if json {
        output::json(&resp)
    } else {
        out(format!("Stream {name} was created\n"))?;
        print_info(&resp)
    }
}

async fn list(client: &Client, extra: Value) -> Result<Vec<Value>> {
    jsapi::list_all(client, "STREAM.LIST", "streams", extra, "stream ls").await
}

fn cfg_s<'a>(info: &'a Value, key: &str) -> &'a str {
    info.get("config")
        .and_then(|c| c.get(key))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn cfg_s_map(cfg: &serde_json::Map<String, Value>, key: &str) -> Option<String> {
    cfg.get(key).and_then(Value::as_str).map(str::to_string)
}

fn title(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// Prints a stream info answer the way `nats stream info` lays it out.
pub fn print_info(info: &Value) -> Result<()> {
    let c = info.get("config").cloned().unwrap_or(Value::Null);
    let st = info.get("state").cloned().unwrap_or(Value::Null);
    out(format!(
        "Information for Stream {} created {}\n",
        output::s(&c, "name"),
        output::time_short(output::s(info, "created"))
    ))?;
    out("Configuration:\n")?;
    let subjects = c
        .get("subjects")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let mut rows = vec![
        ("Subjects", subjects),
        ("Description", output::s(&c, "description").to_string()),
        ("Acknowledgements", (!output::b(&c, "no_ack")).to_string()),
        (
            "Retention",
            format!(
                "{} - {}",
                title(output::s(&c, "storage")),
                title(output::s(&c, "retention"))
            ),
        ),
        ("Replicas", output::u(&c, "num_replicas").max(1).to_string()),
        ("Discard Policy", title(output::s(&c, "discard"))),
        (
            "Duplicate Window",
            output::duration_ns(output::u(&c, "duplicate_window")),
        ),
        (
            "Allows Rollups",
            output::b(&c, "allow_rollup_hdrs").to_string(),
        ),
        (
            "Allows Deletes",
            (!output::b(&c, "deny_delete")).to_string(),
        ),
        ("Allows Purges", (!output::b(&c, "deny_purge")).to_string()),
        ("Direct Get", output::b(&c, "allow_direct").to_string()),
        (
            "Maximum Messages",
            output::limit(output::i(&c, "max_msgs"), false, output::num),
        ),
        (
            "Maximum Per Subject",
            output::limit(output::i(&c, "max_msgs_per_subject"), false, output::num),
        ),
        (
            "Maximum Bytes",
            output::limit(output::i(&c, "max_bytes"), false, output::bytes),
        ),
        (
            "Maximum Age",
            output::limit(output::i(&c, "max_age"), true, output::duration_ns),
        ),
        (
            "Maximum Message Size",
            output::limit(output::i(&c, "max_msg_size"), false, output::bytes),
        ),
        (
            "Maximum Consumers",
            output::limit(output::i(&c, "max_consumers"), false, output::num),
        ),
    ];
    if rows[1].1.is_empty() {
        rows.remove(1);
    }
    output::kv_block(&rows)?;
    out("\nState:\n")?;
    output::kv_block(&[
        ("Messages", output::num(output::u(&st, "messages"))),
        ("Bytes", output::bytes(output::u(&st, "bytes"))),
        (
            "First Sequence",
            format!(
                "{} @ {}",
                output::num(output::u(&st, "first_seq")),
                output::time_short(output::s(&st, "first_ts"))
            ),
        ),
        (
            "Last Sequence",
            format!(
                "{} @ {}",
                output::num(output::u(&st, "last_seq")),
                output::time_short(output::s(&st, "last_ts"))
            ),
        ),
        (
            "Deleted Messages",
            output::num(output::u(&st, "num_deleted")),
        ),
        (
            "Active Consumers",
            output::num(output::u(&st, "consumer_count")),
        ),
        (
            "Number of Subjects",
            output::num(output::u(&st, "num_subjects")),
        ),
    ])
}

/// Decodes a stored message's headers block (`NATS/1.0\r\nK: V\r\n…`).
fn decode_headers(m: &Value) -> Vec<(String, String)> {
    let Some(h) = m.get("hdrs").and_then(Value::as_str) else {
        return Vec::new();
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(h) else {
        return Vec::new();
    };
    String::from_utf8_lossy(&raw)
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Prints a message as kept in a stream (from `STREAM.MSG.GET`).
fn print_stored(stream: &str, m: &Value, raw: bool) -> Result<()> {
    let data = m
        .get("data")
        .and_then(Value::as_str)
        .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
        .unwrap_or_default();
    if raw {
        return output::out_bytes(&data, true);
    }
    out(format!(
        "Item: {stream}#{} received {} on Subject {}",
        output::u(m, "seq"),
        output::time_short(output::s(m, "time")),
        output::s(m, "subject")
    ))?;
    let headers = decode_headers(m);
    if !headers.is_empty() {
        out("\nHeaders:")?;
        for (k, v) in headers {
            out(format!("  {k}: {v}"))?;
        }
    }
    out("")?;
    output::out_bytes(&data, true)
}
