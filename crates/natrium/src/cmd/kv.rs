//! `natrium kv`: key/value buckets (JetStream streams named `KV_<bucket>`).

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use clap::{Args, Subcommand};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::cmd::{Force, JsonFlag};
use crate::connect::ConnectArgs;
use crate::error::{Error, Result};
use crate::jsapi::{self, valid_name};
use crate::output::{self, out};
use crate::units::{parse_duration, parse_size};

/// Arguments of `natrium kv`.
#[derive(Args, Debug)]
pub struct KvArgs {
    #[command(flatten)]
    json: JsonFlag,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create a bucket.
    #[command(alias = "new")]
    Add {
        /// Bucket name.
        bucket: String,
        /// Values kept per key.
        #[arg(long, default_value_t = 1)]
        history: i64,
        /// How long values live (0: forever).
        #[arg(long, value_parser = parse_duration, default_value = "0s")]
        ttl: Duration,
        /// Largest value accepted, e.g. 1M (-1 unlimited).
        #[arg(long, value_parser = parse_i32_size, default_value = "-1", allow_negative_numbers = true)]
        max_value_size: i32,
        /// Largest total size, e.g. 1G (-1 unlimited).
        #[arg(long, value_parser = parse_i64_size, default_value = "-1", allow_negative_numbers = true)]
        max_bucket_size: i64,
        /// Keep the data in memory, not files.
        #[arg(long)]
        memory: bool,
        /// Replicas.
        #[arg(long, default_value_t = 1)]
        replicas: usize,
        /// Description.
        #[arg(long)]
        description: Option<String>,
    },
    /// Store a value (from the argument, else stdin).
    Put {
        /// Bucket name.
        bucket: String,
        /// Key.
        key: String,
        /// Value.
        value: Option<String>,
    },
    /// Show a value.
    Get {
        /// Bucket name.
        bucket: String,
        /// Key.
        key: String,
        /// This revision instead of the latest.
        #[arg(long)]
        revision: Option<u64>,
        /// Print only the value.
        #[arg(long)]
        raw: bool,
    },
    /// Change a bucket's settings (only the ones given).
    Edit {
        /// Bucket name.
        bucket: String,
        /// Values kept per key.
        #[arg(long)]
        history: Option<i64>,
        /// How long values live (0: forever).
        #[arg(long, value_parser = parse_duration)]
        ttl: Option<Duration>,
        /// Largest value accepted, e.g. 1M (-1 unlimited).
        #[arg(long, value_parser = parse_i32_size, allow_negative_numbers = true)]
        max_value_size: Option<i32>,
        /// Largest total size, e.g. 1G (-1 unlimited).
        #[arg(long, value_parser = parse_i64_size, allow_negative_numbers = true)]
        max_bucket_size: Option<i64>,
        /// Description.
        #[arg(long)]
        description: Option<String>,
    },
    /// Store a value only if the key is new or its last operation was a delete.
    Create {
        /// Bucket name.
        bucket: String,
        /// Key.
        key: String,
        /// Value (else stdin).
        value: Option<String>,
        /// Let this value expire after the duration (the bucket must allow per-key TTLs).
        #[arg(long, value_parser = parse_duration)]
        ttl: Option<Duration>,
    },
    /// Store a value only if the key's latest revision is REVISION.
    Update {
        /// Bucket name.
        bucket: String,
        /// Key.
        key: String,
        /// Value.
        value: String,
        /// The revision the key must be at.
        revision: u64,
    },
    /// Store an earlier revision's value again as the newest (an update, so it fails if the
    /// key changes meanwhile).
    Revert {
        /// Bucket name.
        bucket: String,
        /// Key.
        key: String,
        /// The revision whose value to restore.
        revision: u64,
        #[command(flatten)]
        force: Force,
    },
    /// Delete a key (keeps its history), or with no key the whole bucket.
    #[command(alias = "rm")]
    Del {
        /// Bucket name.
        bucket: String,
        /// Key (none: delete the bucket and everything in it).
        key: Option<String>,
        #[command(flatten)]
        force: Force,
    },
    /// Reclaim the space of deleted keys: their history goes, and delete markers older
    /// than 30 minutes too.
    Compact {
        /// Bucket name.
        bucket: String,
        #[command(flatten)]
        force: Force,
    },
    /// Delete a key and its history.
    Purge {
        /// Bucket name.
        bucket: String,
        /// Key.
        key: String,
        #[command(flatten)]
        force: Force,
    },
    /// Show every kept revision of a key.
    History {
        /// Bucket name.
        bucket: String,
        /// Key.
        key: String,
    },
    /// List the buckets, or the keys of one bucket.
    #[command(alias = "list")]
    Ls {
        /// Bucket whose keys to list.
        bucket: Option<String>,
    },
    /// Print the current values, then changes as they happen.
    Watch {
        /// Bucket name.
        bucket: String,
        /// Key or pattern (default: every key).
        key: Option<String>,
        /// Exit after this many updates.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Show a bucket's configuration and state.
    #[command(alias = "status")]
    Info {
        /// Bucket name.
        bucket: String,
    },
}

fn parse_i64_size(s: &str) -> Result<i64, String> {
    if s.trim() == "-1" {
        return Ok(-1);
    }
    i64::try_from(parse_size(s)?).map_err(|_| format!("size {s:?} too large"))
}

fn parse_i32_size(s: &str) -> Result<i32, String> {
    i32::try_from(parse_i64_size(s)?).map_err(|_| format!("size {s:?} too large"))
}

fn op_name(op: kv::Operation) -> &'static str {
    match op {
        kv::Operation::Put => "PUT",
        kv::Operation::Delete => "DEL",
        kv::Operation::Purge => "PURGE",
    }
}

fn fmt_time(t: &time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn entry_json(e: &kv::Entry) -> Value {
    json!({
        "bucket": e.bucket,
        "key": e.key,
        "revision": e.revision,
        "created": fmt_time(&e.created),
        "operation": op_name(e.operation),
        "value": String::from_utf8_lossy(&e.value),
    })
}

async fn store(js: &jetstream::Context, bucket: &str) -> Result<kv::Store> {
    valid_name("bucket", bucket)?;
    js.get_key_value(bucket)
        .await
        .map_err(|e| Error::nats(format!("kv bucket {bucket}"), e))
}

/// Runs `natrium kv …`.
pub async fn run(conn: &ConnectArgs, a: KvArgs) -> Result<()> {
    let json = a.json.json;
    let client = conn.connect().await?;
    let js = jetstream::new(client.clone());
    match a.cmd {
        Cmd::Add {
            bucket,
            history,
            ttl,
            max_value_size,
            max_bucket_size,
            memory,
            replicas,
            description,
        } => {
            valid_name("bucket", &bucket)?;
            js.create_key_value(kv::Config {
                bucket: bucket.clone(),
                description: description.unwrap_or_default(),
                history,
                max_age: ttl,
                max_value_size,
                max_bytes: max_bucket_size,
                storage: if memory {
                    jetstream::stream::StorageType::Memory
                } else {
                    jetstream::stream::StorageType::File
                },
                num_replicas: replicas,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::nats(format!("kv add {bucket}"), e))?;
            info(&client, &bucket, json).await
        }
        Cmd::Put { bucket, key, value } => {
            let s = store(&js, &bucket).await?;
            let value = value_or_stdin(value)?;
            let rev = s
                .put(&key, value.clone().into())
                .await
                .map_err(|e| Error::nats(format!("kv put {bucket} {key}"), e))?;
            stored(json, &bucket, &key, rev, &value)
        }
        Cmd::Create {
            bucket,
            key,
            value,
            ttl,
        } => {
            let s = store(&js, &bucket).await?;
            let value = value_or_stdin(value)?;
            let op = format!("kv create {bucket} {key}");
            let rev = match ttl {
                Some(ttl) => s.create_with_ttl(&key, value.clone().into(), ttl).await,
                None => s.create(&key, value.clone().into()).await,
            }
            .map_err(|e| match e.kind() {
                kv::CreateErrorKind::AlreadyExists => {
                    Error::BadInput(format!("{op}: the key exists"))
                }
                _ => Error::nats(&op, e),
            })?;
            stored(json, &bucket, &key, rev, &value)
        }
        Cmd::Update {
            bucket,
            key,
            value,
            revision,
        } => {
            let s = store(&js, &bucket).await?;
            let op = format!("kv update {bucket} {key}");
            let rev = s
                .update(&key, value.clone().into(), revision)
                .await
                .map_err(|e| update_error(&op, revision, e))?;
            stored(json, &bucket, &key, rev, value.as_bytes())
        }
        Cmd::Revert {
            bucket,
            key,
            revision,
            force,
        } => {
            let s = store(&js, &bucket).await?;
            let op = format!("kv revert {bucket} {key}");
            let entries = history(&s, &op, &key).await?;
            if entries.len() <= 1 {
                return Err(Error::BadInput(format!(
                    "{op}: the key has no earlier revision to revert to (bucket history 1?)"
                )));
            }
            let old = s
                .entry_for_revision(&key, revision)
                .await
                .map_err(|e| Error::nats(&op, e))?
                .ok_or_else(|| Error::BadInput(format!("{op}: revision {revision} not found")))?;
            if !json && !force.force {
                out(format!(
                    "Revision: {}\n\n{}\n",
                    old.revision,
                    short_value(&old.value)
                ))?;
            }
            force.confirm(&format!("Really revert to revision {revision}?"))?;
            // The newest revision read above: an update, not a put, so a change made
            // meanwhile is not overwritten.
            let latest = entries.last().map_or(0, |e| e.revision);
            let rev = s
                .update(&key, old.value.clone(), latest)
                .await
                .map_err(|e| update_error(&op, latest, e))?;
            if json {
                return output::json(&json!({"bucket": bucket, "key": key, "revision": rev}));
            }
            print_history(&bucket, &key, &history(&s, &op, &key).await?)
        }
        Cmd::Get {
            bucket,
            key,
            revision,
            raw,
        } => {
            let s = store(&js, &bucket).await?;
            let op = format!("kv get {bucket} {key}");
            let e = match revision {
                Some(r) => s.entry_for_revision(&key, r).await,
                None => s.entry(&key).await,
            }
            .map_err(|e| Error::nats(&op, e))?;
            let e = match e {
                Some(e) if e.operation == kv::Operation::Put => e,
                _ => return Err(Error::BadInput(format!("{op}: key not found"))),
            };
            if json {
                output::json(&entry_json(&e))
            } else if raw {
                output::out_bytes(&e.value, true)
            } else {
                out(format!(
                    "{bucket} > {key} revision: {} created @ {}\n",
                    e.revision,
                    output::time_short(&fmt_time(&e.created))
                ))?;
                output::out_bytes(&e.value, true)
            }
        }
        Cmd::Del {
            bucket,
            key: None,
            force,
        } => {
            valid_name("bucket", &bucket)?;
            force.confirm(&format!("Delete bucket {bucket} and all its values?"))?;
            js.delete_key_value(&bucket)
                .await
                .map_err(|e| Error::nats(format!("kv del {bucket}"), e))?;
            if !json {
                out(format!("Deleted bucket {bucket}"))?;
            }
            Ok(())
        }
        Cmd::Del {
            bucket,
            key: Some(key),
            force,
        } => {
            let s = store(&js, &bucket).await?;
            force.confirm(&format!("Delete key {bucket} > {key}?"))?;
            s.delete(&key)
                .await
                .map_err(|e| Error::nats(format!("kv del {bucket} {key}"), e))?;
            if !json {
                out(format!("Deleted {bucket} > {key}"))?;
            }
            Ok(())
        }
        Cmd::Purge { bucket, key, force } => {
            let s = store(&js, &bucket).await?;
            force.confirm(&format!("Purge key {bucket} > {key} and its history?"))?;
            s.purge(&key)
                .await
                .map_err(|e| Error::nats(format!("kv purge {bucket} {key}"), e))?;
            if !json {
                out(format!("Purged {bucket} > {key}"))?;
            }
            Ok(())
        }
        Cmd::History { bucket, key } => {
            let s = store(&js, &bucket).await?;
            let op = format!("kv history {bucket} {key}");
            let entries = history(&s, &op, &key).await?;
            if json {
                let v: Vec<Value> = entries.iter().map(entry_json).collect();
                return output::json(&v);
            }
            print_history(&bucket, &key, &entries)
        }
        Cmd::Ls {
            bucket: Some(bucket),
        } => {
            let s = store(&js, &bucket).await?;
            let op = format!("kv ls {bucket}");
            let mut keys: Vec<String> = Vec::new();
            let mut k = s.keys().await.map_err(|e| Error::nats(&op, e))?;
            while let Some(key) = k.next().await {
                keys.push(key.map_err(|e| Error::nats(&op, e))?);
            }
            keys.sort();
            if json {
                return output::json(&keys);
            }
            for k in keys {
                out(k)?;
            }
            Ok(())
        }
        Cmd::Ls { bucket: None } => {
            let streams =
                jsapi::list_all(&client, "STREAM.LIST", "streams", json!({}), "kv ls").await?;
            let mut buckets: Vec<&Value> = streams
                .iter()
                .filter(|s| {
                    s.pointer("/config/name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| n.starts_with("KV_"))
                })
                .collect();
            buckets.sort_by_key(|s| s.pointer("/config/name").and_then(Value::as_str));
            if json {
                let v: Vec<Value> = buckets
                    .iter()
                    .map(|s| {
                        json!({
                            "bucket": s.pointer("/config/name").and_then(Value::as_str).unwrap_or("").trim_start_matches("KV_"),
                            "values": s.pointer("/state/messages").cloned().unwrap_or(json!(0)),
                            "bytes": s.pointer("/state/bytes").cloned().unwrap_or(json!(0)),
                            "history": s.pointer("/config/max_msgs_per_subject").cloned().unwrap_or(json!(1)),
                        })
                    })
                    .collect();
                return output::json(&v);
            }
            if buckets.is_empty() {
                return out("No Key-Value buckets found");
            }
            let mut t = output::table(
                Some("Key-Value Buckets"),
                &[
                    "Bucket",
                    "Description",
                    "Created",
                    "Size",
                    "Values",
                    "Last Update",
                ],
            );
            for s in buckets {
                let st = s.get("state").cloned().unwrap_or(Value::Null);
                let c = s.get("config").cloned().unwrap_or(Value::Null);
                t.row([
                    output::s(&c, "name").trim_start_matches("KV_").to_string(),
                    output::s(&c, "description").to_string(),
                    output::time_short(output::s(s, "created")),
                    output::bytes(output::u(&st, "bytes")),
                    output::num(output::u(&st, "messages")),
                    output::time_short(output::s(&st, "last_ts")),
                ]);
            }
            t.print()
        }
        Cmd::Watch { bucket, key, count } => {
            let s = store(&js, &bucket).await?;
            let op = format!("kv watch {bucket}");
            // Current values first, then changes, as `nats kv watch` does.
            let mut w = s
                .watch_with_history(key.as_deref().unwrap_or(">"))
                .await
                .map_err(|e| Error::nats(&op, e))?;
            eprintln!("Watching {bucket} > {}", key.as_deref().unwrap_or(">"));
            let mut n = 0;
            while let Some(e) = w.next().await {
                let e = e.map_err(|e| Error::nats(&op, e))?;
                n += 1;
                if json {
                    output::json_line(&entry_json(&e))?;
                } else {
                    out(format!(
                        "[{}] {} {bucket} > {}: {}",
                        output::time_short(&fmt_time(&e.created)),
                        op_name(e.operation),
                        e.key,
                        String::from_utf8_lossy(&e.value)
                    ))?;
                }
                if count.is_some_and(|c| n >= c) {
                    break;
                }
            }
            Ok(())
        }
        Cmd::Compact { bucket, force } => {
            let s = store(&js, &bucket).await?;
            force.confirm(&format!(
                "Purge all historic values and audit trails for deleted keys in bucket {bucket}?"
            ))?;
            let (purged, kept) = compact(&client, &s, &bucket).await?;
            if json {
                output::json(
                    &json!({"bucket": bucket, "purged_keys": purged, "markers_kept": kept}),
                )
            } else {
                out(format!(
                    "Compacted {bucket}: {purged} deleted keys purged ({kept} of them keep a recent delete marker)"
                ))
            }
        }
        Cmd::Edit {
            bucket,
            history,
            ttl,
            max_value_size,
            max_bucket_size,
            description,
        } => {
            valid_name("bucket", &bucket)?;
            let op = format!("kv edit {bucket}");
            if let Some(h) = history
                && !(1..=64).contains(&h)
            {
                return Err(Error::BadInput(format!(
                    "{op}: history must be between 1 and 64"
                )));
            }
            jsapi::update_stream_config(&client, &format!("KV_{bucket}"), &op, |c| {
                if let Some(h) = history {
                    c.insert("max_msgs_per_subject".into(), json!(h));
                }
                if let Some(ttl) = ttl {
                    let ns = i64::try_from(ttl.as_nanos()).unwrap_or(i64::MAX);
                    c.insert("max_age".into(), json!(ns));
                    // As the clients set it: the duplicate window is 2 minutes, or the
                    // TTL if that is shorter (a window longer than max_age is refused).
                    let two_min = 120_000_000_000i64;
                    let window = if ns > 0 && ns < two_min { ns } else { two_min };
                    c.insert("duplicate_window".into(), json!(window));
                }
                if let Some(v) = max_value_size {
                    c.insert("max_msg_size".into(), json!(v));
                }
                if let Some(v) = max_bucket_size {
                    c.insert("max_bytes".into(), json!(v));
                }
                if let Some(d) = description {
                    c.insert("description".into(), json!(d));
                }
                Ok(())
            })
            .await?;
            info(&client, &bucket, json).await
        }
        Cmd::Info { bucket } => {
            valid_name("bucket", &bucket)?;
            info(&client, &bucket, json).await
        }
    }
}

/// The value from the command line, else all of stdin (as `nats kv put` reads it).
fn value_or_stdin(value: Option<String>) -> Result<Vec<u8>> {
    match value {
        Some(v) => Ok(v.into_bytes()),
        None => {
            use std::io::Read;
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| Error::BadInput(format!("cannot read the value from stdin: {e}")))?;
            Ok(buf)
        }
    }
}

/// Reports a stored value: its revision with `--json`, else the value (as `nats kv put`).
fn stored(json: bool, bucket: &str, key: &str, rev: u64, value: &[u8]) -> Result<()> {
    if json {
        output::json(&json!({"bucket": bucket, "key": key, "revision": rev}))
    } else {
        output::out_bytes(value, true)
    }
}

/// Says which revision an update expected when the key has moved on.
fn update_error(op: &str, expected: u64, e: kv::UpdateError) -> Error {
    match e.kind() {
        kv::UpdateErrorKind::WrongLastRevision => Error::BadInput(format!(
            "{op}: the key is no longer at revision {expected} (wrong last sequence)"
        )),
        _ => Error::nats(op, e),
    }
}

/// A value cut for one line: at most 40 characters, middle elided.
fn short_value(value: &[u8]) -> String {
    let v = String::from_utf8_lossy(value);
    let n = v.chars().count();
    if n <= 40 {
        return v.into_owned();
    }
    let head: String = v.chars().take(15).collect();
    let tail: String = v.chars().skip(n - 15).collect();
    format!("{head}...{tail}")
}

/// Every kept revision of `key`, oldest first.
async fn history(s: &kv::Store, op: &str, key: &str) -> Result<Vec<kv::Entry>> {
    let mut h = s.history(key).await.map_err(|e| Error::nats(op, e))?;
    let mut entries = Vec::new();
    while let Some(e) = h.next().await {
        entries.push(e.map_err(|e| Error::nats(op, e))?);
    }
    Ok(entries)
}

fn print_history(bucket: &str, key: &str, entries: &[kv::Entry]) -> Result<()> {
    let mut t = output::table(
        Some(&format!("History for {bucket} > {key}")),
        &["Key", "Revision", "Op", "Created", "Length", "Value"],
    );
    for e in entries {
        t.row([
            e.key.clone(),
            e.revision.to_string(),
            op_name(e.operation).to_string(),
            output::time_short(&fmt_time(&e.created)),
            e.value.len().to_string(),
            short_value(&e.value),
        ]);
    }
    t.print()
}

/// Delete markers younger than this keep the marker itself when compacting (so that
/// watchers and mirrors that are behind still see the delete), as the Go client's
/// `PurgeDeletes` does by default.
const KEEP_MARKERS_YOUNGER_THAN: Duration = Duration::from_secs(30 * 60);

/// Purges the history of every key whose latest operation is a delete or purge; returns
/// how many keys were purged and how many of them kept their (recent) marker.
async fn compact(client: &async_nats::Client, s: &kv::Store, bucket: &str) -> Result<(u64, u64)> {
    let op = format!("kv compact {bucket}");
    // The latest entry of every key, headers only: what `keys()` reads, but keeping the
    // deleted ones.
    let consumer = s
        .stream
        .create_consumer(jetstream::consumer::push::OrderedConfig {
            deliver_subject: client.new_inbox(),
            filter_subject: format!("{}>", s.prefix),
            headers_only: true,
            deliver_policy: jetstream::consumer::DeliverPolicy::LastPerSubject,
            ..Default::default()
        })
        .await
        .map_err(|e| Error::nats(&op, e))?;
    let mut markers: Vec<(String, time::OffsetDateTime)> = Vec::new();
    if consumer.cached_info().num_pending > 0 {
        let mut msgs = consumer.messages().await.map_err(|e| Error::nats(&op, e))?;
        while let Some(m) = msgs.next().await {
            let m = m.map_err(|e| Error::nats(&op, e))?;
            let info = m
                .info()
                .map_err(|e| Error::BadInput(format!("{op}: {e}")))?;
            let (pending, published) = (info.pending, info.published);
            let deleted = m
                .headers
                .as_ref()
                .and_then(|h| h.get("KV-Operation"))
                .is_some_and(|v| matches!(v.as_str(), "DEL" | "PURGE"));
            if deleted {
                markers.push((m.subject.to_string(), published));
            }
            if pending == 0 {
                break;
            }
        }
    }
    let limit = time::OffsetDateTime::now_utc() - KEEP_MARKERS_YOUNGER_THAN;
    let (mut purged, mut kept) = (0, 0);
    for (subject, created) in markers {
        let mut body = json!({ "filter": subject });
        if created > limit {
            body["keep"] = json!(1);
            kept += 1;
        }
        jsapi::request(
            client,
            &format!("STREAM.PURGE.{}", s.stream_name),
            &body,
            &op,
        )
        .await?;
        purged += 1;
    }
    Ok((purged, kept))
}

async fn info(client: &async_nats::Client, bucket: &str, json: bool) -> Result<()> {
    let si = jsapi::stream_info(client, &format!("KV_{bucket}")).await?;
    if json {
        return output::json(&si);
    }
    let c = si.get("config").cloned().unwrap_or(Value::Null);
    let st = si.get("state").cloned().unwrap_or(Value::Null);
    out(format!("Information for Key-Value Store Bucket {bucket}\n"))?;
    output::kv_block(&[
        ("Bucket Name", bucket.to_string()),
        (
            "History Kept",
            output::i(&c, "max_msgs_per_subject").to_string(),
        ),
        ("Values Stored", output::num(output::u(&st, "messages"))),
        ("Backing Store", format!("JetStream stream KV_{bucket}")),
        ("Storage", output::s(&c, "storage").to_string()),
        (
            "Maximum Bucket Size",
            output::limit(output::i(&c, "max_bytes"), false, output::bytes),
        ),
        (
            "Maximum Value Size",
            output::limit(output::i(&c, "max_msg_size"), false, output::bytes),
        ),
        (
            "Maximum Age",
            output::limit(output::i(&c, "max_age"), true, output::duration_ns),
        ),
        ("Size", output::bytes(output::u(&st, "bytes"))),
    ])
}
