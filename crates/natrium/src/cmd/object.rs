//! `natrium object`: object store buckets (streams named `OBJ_<bucket>`).

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::{self, object_store};
use clap::{Args, Subcommand};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::cmd::{Force, JsonFlag};
use crate::connect::ConnectArgs;
use crate::error::{Error, Result};
use crate::jsapi::{self, valid_name};
use crate::output::{self, out};
use crate::units::{parse_duration, parse_size};

/// Arguments of `natrium object`.
#[derive(Args, Debug)]
pub struct ObjectArgs {
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
        /// How long objects live (0: forever).
        #[arg(long, value_parser = parse_duration, default_value = "0s")]
        ttl: Duration,
        /// Largest total size, e.g. 1G (-1 unlimited).
        #[arg(long, value_parser = parse_bucket_size, default_value = "-1", allow_negative_numbers = true)]
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
    /// Store a file (or stdin with `-`).
    Put {
        /// Bucket name.
        bucket: String,
        /// File to store; `-` for stdin (then --name is needed).
        file: PathBuf,
        /// Object name (default: the file name).
        #[arg(long)]
        name: Option<String>,
        /// Description.
        #[arg(long)]
        description: Option<String>,
    },
    /// Fetch an object into a file (or stdout).
    Get {
        /// Bucket name.
        bucket: String,
        /// Object name.
        name: String,
        /// File to write (default: stdout).
        #[arg(short = 'O', long)]
        output: Option<PathBuf>,
    },
    /// List the buckets, or the objects of one bucket.
    #[command(alias = "list")]
    Ls {
        /// Bucket whose objects to list.
        bucket: Option<String>,
    },
    /// Show a bucket's, or one object's, information.
    #[command(alias = "status")]
    Info {
        /// Bucket name.
        bucket: String,
        /// Object name.
        name: Option<String>,
    },
    /// Delete an object, or with no object name the whole bucket.
    #[command(alias = "del")]
    Rm {
        /// Bucket name.
        bucket: String,
        /// Object name.
        name: Option<String>,
        #[command(flatten)]
        force: Force,
    },
    /// Seal a bucket: no more changes, for good.
    Seal {
        /// Bucket name.
        bucket: String,
        #[command(flatten)]
        force: Force,
    },
    /// Change a bucket's settings (only the ones given).
    Edit {
        /// Bucket name.
        bucket: String,
        /// Description.
        #[arg(long)]
        description: Option<String>,
        /// Largest total size, e.g. 1G (-1 unlimited).
        #[arg(long, value_parser = parse_bucket_size, allow_negative_numbers = true)]
        max_bucket_size: Option<i64>,
        /// How long objects live (0: forever).
        #[arg(long, value_parser = parse_duration)]
        ttl: Option<Duration>,
    },
    /// Print the bucket's objects, then changes as they happen.
    Watch {
        /// Bucket name.
        bucket: String,
        /// Exit after this many updates.
        #[arg(long)]
        count: Option<u64>,
    },
}

/// Counts bytes read through it onto a progress bar.
struct Progress<R> {
    inner: R,
    bar: Option<indicatif::ProgressBar>,
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Progress<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if let Some(b) = &self.bar {
            b.inc(n as u64);
        }
        r
    }
}

impl<R> Progress<R> {
    fn new(inner: R, total: Option<u64>, what: &str, quiet: bool) -> Self {
        Progress {
            inner,
            bar: if quiet {
                None
            } else {
                output::progress(total, what)
            },
        }
    }

    fn done(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

fn parse_bucket_size(s: &str) -> Result<i64, String> {
    if s.trim() == "-1" {
        return Ok(-1);
    }
    i64::try_from(parse_size(s)?).map_err(|_| format!("size {s:?} too large"))
}

async fn store(js: &jetstream::Context, bucket: &str) -> Result<object_store::ObjectStore> {
    valid_name("bucket", bucket)?;
    js.get_object_store(bucket)
        .await
        .map_err(|e| Error::nats(format!("object bucket {bucket}"), e))
}

fn info_json(i: &object_store::ObjectInfo) -> Value {
    serde_json::to_value(i).unwrap_or(Value::Null)
}

fn print_object(i: &object_store::ObjectInfo) -> Result<()> {
    out(format!(
        "Object information for {} > {}\n",
        i.bucket, i.name
    ))?;
    let modified = i
        .modified
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    output::kv_block(&[
        ("Size", output::bytes(i.size as u64)),
        ("Modification Time", output::time_short(&modified)),
        ("Chunks", output::num(i.chunks as u64)),
        ("Digest", i.digest.clone().unwrap_or_default()),
        ("Description", i.description.clone().unwrap_or_default()),
    ])
}

/// Runs `natrium object …`.
pub async fn run(conn: &ConnectArgs, a: ObjectArgs) -> Result<()> {
    let json = a.json.json;
    let client = conn.connect().await?;
    let js = jetstream::new(client.clone());
    match a.cmd {
        Cmd::Add {
            bucket,
            ttl,
            max_bucket_size,
            memory,
            replicas,
            description,
        } => {
            valid_name("bucket", &bucket)?;
            js.create_object_store(object_store::Config {
                bucket: bucket.clone(),
                description,
                max_age: ttl,
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
            .map_err(|e| Error::nats(format!("object add {bucket}"), e))?;
            bucket_info(&client, &bucket, json).await
        }
        Cmd::Put {
            bucket,
            file,
            name,
            description,
        } => {
            let s = store(&js, &bucket).await?;
            let stdin = file.as_os_str() == "-";
            let name = match name {
                Some(n) => n,
                None if stdin => {
                    return Err(Error::Usage("object put from stdin needs --name".into()));
                }
                None => file
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .ok_or_else(|| Error::Usage(format!("{}: no file name", file.display())))?,
            };
            let op = format!("object put {bucket} {name}");
            let meta = object_store::ObjectMetadata {
                name: name.clone(),
                description,
                ..Default::default()
            };
            let info = if stdin {
                let mut r = tokio::io::stdin();
                s.put(meta, &mut r).await
            } else {
                let mut f = tokio::fs::File::open(&file)
                    .await
                    .map_err(|e| Error::BadInput(format!("cannot open {}: {e}", file.display())))?;
                s.put(meta, &mut f).await
            }
            .map_err(|e| Error::nats(&op, e))?;
            if json {
                output::json(&info_json(&info))
            } else {
                print_object(&info)
            }
        }
        Cmd::Get {
            bucket,
            name,
            output: path,
        } => {
            let s = store(&js, &bucket).await?;
            let op = format!("object get {bucket} {name}");
            let obj = s.get(&name).await.map_err(|e| Error::nats(&op, e))?;
            let size = obj.info().size as u64;
            match &path {
                Some(p) => {
                    let mut obj = Progress::new(obj, Some(size), &format!("Getting {name}"), json);
                    let mut f = tokio::fs::File::create(p).await.map_err(|e| {
                        Error::BadInput(format!("cannot create {}: {e}", p.display()))
                    })?;
                    let n = tokio::io::copy(&mut obj, &mut f)
                        .await
                        .map_err(|e| Error::BadInput(format!("{op}: {e}")))?;
                    f.flush()
                        .await
                        .map_err(|e| Error::BadInput(format!("{op}: {e}")))?;
                    obj.done();
                    if json {
                        output::json(
                            &json!({"bucket": bucket, "name": name, "file": p, "bytes": n}),
                        )
                    } else {
                        out(format!("Wrote {} to {}", output::bytes(n), p.display()))
                    }
                }
                None => {
                    let mut obj = obj;
                    let mut stdout = tokio::io::stdout();
                    tokio::io::copy(&mut obj, &mut stdout)
                        .await
                        .map_err(|e| Error::BadInput(format!("{op}: {e}")))?;
                    stdout.flush().await?;
                    Ok(())
                }
            }
        }
        Cmd::Ls {
            bucket: Some(bucket),
        } => {
            let s = store(&js, &bucket).await?;
            let op = format!("object ls {bucket}");
            let mut l = s.list().await.map_err(|e| Error::nats(&op, e))?;
            let mut items = Vec::new();
            while let Some(i) = l.next().await {
                items.push(i.map_err(|e| Error::nats(&op, e))?);
            }
            items.sort_by(|a, b| a.name.cmp(&b.name));
            if json {
                let v: Vec<Value> = items.iter().map(info_json).collect();
                return output::json(&v);
            }
            if items.is_empty() {
                return out(format!("No objects in bucket {bucket}"));
            }
            let mut t = output::table(
                Some(&format!("Bucket Contents ({bucket})")),
                &["Name", "Size", "Time"],
            );
            for i in &items {
                let m = i
                    .modified
                    .and_then(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .unwrap_or_default();
                t.row([
                    i.name.clone(),
                    output::bytes(i.size as u64),
                    output::time_short(&m),
                ]);
            }
            t.print()
        }
        Cmd::Ls { bucket: None } => {
            let streams =
                jsapi::list_all(&client, "STREAM.LIST", "streams", json!({}), "object ls").await?;
            let mut buckets: Vec<&Value> = streams
                .iter()
                .filter(|s| {
                    s.pointer("/config/name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| n.starts_with("OBJ_"))
                })
                .collect();
            buckets.sort_by_key(|s| s.pointer("/config/name").and_then(Value::as_str));
            if json {
                let v: Vec<Value> = buckets
                    .iter()
                    .map(|s| {
                        json!({
                            "bucket": s.pointer("/config/name").and_then(Value::as_str).unwrap_or("").trim_start_matches("OBJ_"),
                            "bytes": s.pointer("/state/bytes").cloned().unwrap_or(json!(0)),
                        })
                    })
                    .collect();
                return output::json(&v);
            }
            if buckets.is_empty() {
                return out("No Object Store buckets found");
            }
            let mut t = output::table(
                Some("Object Store Buckets"),
                &["Bucket", "Description", "Created", "Size", "Last Update"],
            );
            for s in buckets {
                let st = s.get("state").cloned().unwrap_or(Value::Null);
                let c = s.get("config").cloned().unwrap_or(Value::Null);
                t.row([
                    output::s(&c, "name").trim_start_matches("OBJ_").to_string(),
                    output::s(&c, "description").to_string(),
                    output::time_short(output::s(s, "created")),
                    output::bytes(output::u(&st, "bytes")),
                    output::time_short(output::s(&st, "last_ts")),
                ]);
            }
            t.print()
        }
        Cmd::Seal { bucket, force } => {
            valid_name("bucket", &bucket)?;
            force.confirm(&format!(
                "Really seal bucket {bucket}? A sealed bucket cannot be unsealed or changed"
            ))?;
            let op = format!("object seal {bucket}");
            jsapi::update_stream_config(&client, &format!("OBJ_{bucket}"), &op, |c| {
                c.insert("sealed".into(), json!(true));
                Ok(())
            })
            .await?;
            if !json {
                out(format!("{bucket} has been sealed\n"))?;
            }
            bucket_info(&client, &bucket, json).await
        }
        Cmd::Edit {
            bucket,
            description,
            max_bucket_size,
            ttl,
        } => {
            valid_name("bucket", &bucket)?;
            let op = format!("object edit {bucket}");
            jsapi::update_stream_config(&client, &format!("OBJ_{bucket}"), &op, |c| {
                if let Some(d) = description {
                    c.insert("description".into(), json!(d));
                }
                if let Some(v) = max_bucket_size {
                    c.insert("max_bytes".into(), json!(v));
                }
                if let Some(t) = ttl {
                    c.insert(
                        "max_age".into(),
                        json!(i64::try_from(t.as_nanos()).unwrap_or(i64::MAX)),
                    );
                }
                Ok(())
            })
            .await?;
            bucket_info(&client, &bucket, json).await
        }
        Cmd::Info { bucket, name: None } => {
            valid_name("bucket", &bucket)?;
            bucket_info(&client, &bucket, json).await
        }
        Cmd::Info {
            bucket,
            name: Some(name),
        } => {
            let s = store(&js, &bucket).await?;
            let i = s
                .info(&name)
                .await
                .map_err(|e| Error::nats(format!("object info {bucket} {name}"), e))?;
            if json {
                output::json(&info_json(&i))
            } else {
                print_object(&i)
            }
        }
        Cmd::Rm {
            bucket,
            name: Some(name),
            force,
        } => {
            let s = store(&js, &bucket).await?;
            force.confirm(&format!("Delete object {bucket} > {name}?"))?;
            s.delete(&name)
                .await
                .map_err(|e| Error::nats(format!("object rm {bucket} {name}"), e))?;
            if !json {
                out(format!("Deleted object {bucket} > {name}"))?;
            }
            Ok(())
        }
        Cmd::Rm {
            bucket,
            name: None,
            force,
        } => {
            valid_name("bucket", &bucket)?;
            force.confirm(&format!("Delete bucket {bucket} and all its objects?"))?;
            js.delete_object_store(&bucket)
                .await
                .map_err(|e| Error::nats(format!("object rm {bucket}"), e))?;
            if !json {
                out(format!("Deleted bucket {bucket}"))?;
            }
            Ok(())
        }
        Cmd::Watch { bucket, count } => {
            let s = store(&js, &bucket).await?;
            let op = format!("object watch {bucket}");
            let mut w = s
                .watch_with_history()
                .await
                .map_err(|e| Error::nats(&op, e))?;
            eprintln!("Watching bucket {bucket}");
            let mut n = 0;
            while let Some(i) = w.next().await {
                let i = i.map_err(|e| Error::nats(&op, e))?;
                n += 1;
                if json {
                    output::json_line(&info_json(&i))?;
                } else {
                    out(format!(
                        "[{}] {} {bucket} > {} {}",
                        output::time_short(&output::now_rfc3339()),
                        if i.deleted { "DEL" } else { "PUT" },
                        i.name,
                        output::bytes(i.size as u64)
                    ))?;
                }
                if count.is_some_and(|c| n >= c) {
                    break;
                }
            }
            Ok(())
        }
    }
}

async fn bucket_info(client: &async_nats::Client, bucket: &str, json: bool) -> Result<()> {
    let si = jsapi::stream_info(client, &format!("OBJ_{bucket}")).await?;
    if json {
        return output::json(&si);
    }
    let c = si.get("config").cloned().unwrap_or(Value::Null);
    let st = si.get("state").cloned().unwrap_or(Value::Null);
    out(format!("Information for Object Store Bucket {bucket}\n"))?;
    output::kv_block(&[
        ("Bucket Name", bucket.to_string()),
        ("Description", output::s(&c, "description").to_string()),
        ("Backing Store", format!("JetStream stream OBJ_{bucket}")),
        ("Storage", output::s(&c, "storage").to_string()),
        (
            "Maximum Bucket Size",
            output::limit(output::i(&c, "max_bytes"), false, output::bytes),
        ),
        (
            "Maximum Age",
            output::limit(output::i(&c, "max_age"), true, output::duration_ns),
        ),
        ("Size", output::bytes(output::u(&st, "bytes"))),
    ])
}
