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
    /// Delete a key (keeps its history).
    Del {
        /// Bucket name.
        bucket: String,
        /// Key.
        key: String,
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
    /// Delete a bucket and everything in it.
    Rm {
        /// Bucket name.
        bucket: String,
        #[command(flatten)]
        force: Force,
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
            let value = match value {
                Some(v) => v.into_bytes(),
                None => {
                    use std::io::Read;
                    let mut buf = Vec::new();
                    std::io::stdin().read_to_end(&mut buf).map_err(|e| {
                        Error::BadInput(format!("cannot read the value from stdin: {e}"))
                    })?;
                    buf
                }
            };
            let rev = s
                .put(&key, value.clone().into())
                .await
                .map_err(|e| Error::nats(format!("kv put {bucket} {key}"), e))?;
            if json {
                output::json(&json!({"bucket": bucket, "key": key, "revision": rev}))
            } else {
                output::out_bytes(&value, true)
            }
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
        Cmd::Del { bucket, key, force } => {
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
            let mut h = s.history(&key).await.map_err(|e| Error::nats(&op, e))?;
            let mut entries = Vec::new();
            while let Some(e) = h.next().await {
                let e = e.map_err(|e| Error::nats(&op, e))?;
                entries.push(e);
            }
            if json {
                let v: Vec<Value> = entries.iter().map(entry_json).collect();
                return output::json(&v);
            }
            let mut t = output::table(
                Some(&format!("History for {bucket} > {key}")),
                &["Key", "Revision", "Op", "Created", "Length", "Value"],
            );
            for e in &entries {
                let mut v = String::from_utf8_lossy(&e.value).into_owned();
                if v.chars().count() > 40 {
                    v = v.chars().take(37).collect::<String>() + "...";
                }
                t.row([
                    e.key.clone(),
                    e.revision.to_string(),
                    op_name(e.operation).to_string(),
                    output::time_short(&fmt_time(&e.created)),
                    e.value.len().to_string(),
                    v,
                ]);
            }
            t.print()
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
        Cmd::Rm { bucket, force } => {
            valid_name("bucket", &bucket)?;
            force.confirm(&format!("Delete bucket {bucket} and all its values?"))?;
            js.delete_key_value(&bucket)
                .await
                .map_err(|e| Error::nats(format!("kv rm {bucket}"), e))?;
            if !json {
                out(format!("Deleted bucket {bucket}"))?;
            }
            Ok(())
        }
        Cmd::Info { bucket } => {
            valid_name("bucket", &bucket)?;
            info(&client, &bucket, json).await
        }
    }
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
