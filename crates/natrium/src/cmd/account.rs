//! `natrium account info`: who we are connected as, and the account's
//! JetStream usage against its limits.

use clap::{Args, Subcommand};
use serde_json::Value;

use crate::cmd::JsonFlag;
use crate::connect::ConnectArgs;
use crate::error::{Error, Result};
use crate::jsapi;
use crate::output::{self, out};

/// Arguments of `natrium account`.
#[derive(Args, Debug)]
pub struct AccountArgs {
    #[command(flatten)]
    json: JsonFlag,
    #[command(subcommand)]
    cmd: Cmd,
}

impl AccountArgs {
    /// Backup or restore: the whole data of a stream (or account) moves.
    pub fn moves_bulk_data(&self) -> bool {
        matches!(self.cmd, Cmd::Backup(_) | Cmd::Restore(_))
    }
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Show the connection, and JetStream usage against the account's limits.
    Info,
    /// Back up every stream of the account (one folder per stream).
    Backup(crate::backup::AccountBackupArgs),
    /// Restore every stream folder of an account backup.
    Restore(crate::backup::AccountRestoreArgs),
    /// Reports on the account, from every server that answers.
    Report {
        #[command(subcommand)]
        report: Report,
    },
}

#[derive(Subcommand, Debug)]
enum Report {
    /// The account's connections.
    #[command(alias = "conns")]
    Connections,
    /// The account's message and connection statistics.
    #[command(alias = "statz")]
    Statistics,
}

/// Gathers the per-account monitoring answers of every server.
async fn account_ping(conn: &ConnectArgs, what: &str) -> Result<Vec<Value>> {
    let client = conn.connect().await?;
    let wait = conn.timeout.min(std::time::Duration::from_secs(2));
    let subject = format!("$SYS.REQ.ACCOUNT.PING.{what}");
    let got = crate::cmd::server::gather(&client, &subject, bytes::Bytes::from_static(b"{}"), wait)
        .await?;
    if got.is_empty() {
        return Err(Error::NoResponders(format!(
            "account report: no server answered on {subject}"
        )));
    }
    Ok(got.into_iter().map(|(v, _)| v).collect())
}

async fn report(conn: &ConnectArgs, json: bool, r: Report) -> Result<()> {
    match r {
        Report::Connections => {
            let answers = account_ping(conn, "CONNZ").await?;
            if json {
                return output::json(&answers);
            }
            let mut rows: Vec<(String, Value)> = Vec::new();
            for a in &answers {
                let server = a
                    .pointer("/server/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                for c in a
                    .pointer("/data/connections")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    rows.push((server.clone(), c.clone()));
                }
            }
            rows.sort_by_key(|(s, c)| (s.clone(), output::u(c, "cid")));
            let mut t = output::table(
                Some(&format!("Connections: {}", rows.len())),
                &[
                    "CID",
                    "Name",
                    "Server",
                    "Address",
                    "Uptime",
                    "Idle",
                    "RTT",
                    "Subs",
                    "In Msgs",
                    "Out Msgs",
                    "In Bytes",
                    "Out Bytes",
                ],
            );
            for (server, c) in &rows {
                t.row([
                    output::u(c, "cid").to_string(),
                    output::s(c, "name").to_string(),
                    server.clone(),
                    format!("{}:{}", output::s(c, "ip"), output::u(c, "port")),
                    output::s(c, "uptime").to_string(),
                    output::s(c, "idle").to_string(),
                    output::s(c, "rtt").to_string(),
                    output::num(output::u(c, "subscriptions")),
                    output::num(output::u(c, "in_msgs")),
                    output::num(output::u(c, "out_msgs")),
                    output::bytes(output::u(c, "in_bytes")),
                    output::bytes(output::u(c, "out_bytes")),
                ]);
            }
            t.print()
        }
        Report::Statistics => {
            let answers = account_ping(conn, "STATZ").await?;
            if json {
                return output::json(&answers);
            }
            let mut t = output::table(
                Some("Account Statistics"),
                &[
                    "Server",
                    "Account",
                    "Connections",
                    "Total Conns",
                    "Subs",
                    "Sent Msgs",
                    "Sent Bytes",
                    "Received Msgs",
                    "Received Bytes",
                    "Slow Consumers",
                ],
            );
            for a in &answers {
                let server = a
                    .pointer("/server/name")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                for st in a
                    .pointer("/data/account_statz")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let sent = st.get("sent").cloned().unwrap_or(Value::Null);
                    let recv = st.get("received").cloned().unwrap_or(Value::Null);
                    t.row([
                        server.to_string(),
                        output::s(st, "acc").to_string(),
                        output::num(output::u(st, "conns")),
                        output::num(output::u(st, "total_conns")),
                        output::num(output::u(st, "num_subscriptions")),
                        output::num(output::u(&sent, "msgs")),
                        output::bytes(output::u(&sent, "bytes")),
                        output::num(output::u(&recv, "msgs")),
                        output::bytes(output::u(&recv, "bytes")),
                        output::num(output::u(st, "slow_consumers")),
                    ]);
                }
            }
            t.print()
        }
    }
}

fn of(used: u64, limit: i64, f: fn(u64) -> String) -> String {
    if limit < 0 {
        format!("{} of Unlimited", f(used))
    } else if limit == 0 {
        format!("{} of 0 (none allowed)", f(used))
    } else {
        format!(
            "{} of {} ({:.0}%)",
            f(used),
            f(limit as u64),
            used as f64 * 100.0 / limit as f64
        )
    }
}

/// Runs `natrium account …`.
pub async fn run(conn: &ConnectArgs, a: AccountArgs) -> Result<()> {
    let json = a.json.json;
    match a.cmd {
        Cmd::Report { report: r } => return report(conn, json, r).await,
        Cmd::Backup(b) => return crate::backup::run_account_backup(conn, b, json).await,
        Cmd::Restore(r) => return crate::backup::run_account_restore(conn, r, json).await,
        Cmd::Info => {}
    }
    let client = conn.connect().await?;
    let js = jsapi::request(&client, "INFO", &Value::Null, "account info").await;
    if json {
        return output::json(&js?);
    }
    let si = client.server_info();
    out("Account Information\n")?;
    output::kv_block(&[
        (
            "Connected URL",
            crate::connect::redact_passwords(conn.server_url()),
        ),
        ("Connected Address", format!("{}:{}", si.host, si.port)),
        ("Connected Server ID", si.server_id.clone()),
        ("Connected Server Name", si.server_name.clone()),
        ("Connected Server Version", si.version.clone()),
        ("Client ID", si.client_id.to_string()),
        ("Max Message Payload", output::bytes(si.max_payload as u64)),
    ])?;
    let info = match js {
        Ok(v) => v,
        Err(Error::NoResponders(_)) => {
            return out(
                "\nJetStream Account Information:\n\n   JetStream is not supported in this account",
            );
        }
        Err(e) => return Err(e),
    };
    let limits = info.get("limits").cloned().unwrap_or(Value::Null);
    out("\nJetStream Account Information:\n")?;
    if !output::s(&info, "domain").is_empty() {
        output::kv_block(&[("Domain", output::s(&info, "domain").to_string())])?;
    }
    out("Account Usage:\n")?;
    output::kv_block(&[
        ("Storage", output::bytes(output::u(&info, "storage"))),
        ("Memory", output::bytes(output::u(&info, "memory"))),
        ("Streams", output::num(output::u(&info, "streams"))),
        ("Consumers", output::num(output::u(&info, "consumers"))),
    ])?;
    out("\nAccount Limits:\n")?;
    let per_stream = |k: &str| {
        let v = output::i(&limits, k);
        if v <= 0 {
            "Unlimited".to_string()
        } else {
            output::bytes(v as u64)
        }
    };
    let ack_pending = output::i(&limits, "max_ack_pending");
    output::kv_block(&[
        (
            "Memory",
            of(
                output::u(&info, "memory"),
                output::i(&limits, "max_memory"),
                output::bytes,
            ),
        ),
        ("Memory Per Stream", per_stream("memory_max_stream_bytes")),
        (
            "Storage",
            of(
                output::u(&info, "storage"),
                output::i(&limits, "max_storage"),
                output::bytes,
            ),
        ),
        ("Storage Per Stream", per_stream("storage_max_stream_bytes")),
        (
            "Streams",
            of(
                output::u(&info, "streams"),
                output::i(&limits, "max_streams"),
                output::num,
            ),
        ),
        (
            "Consumers",
            of(
                output::u(&info, "consumers"),
                output::i(&limits, "max_consumers"),
                output::num,
            ),
        ),
        (
            "Stream Requires Max Bytes Set",
            output::b(&limits, "max_bytes_required").to_string(),
        ),
        (
            "Consumer Maximum Ack Pending",
            if ack_pending <= 0 {
                "Unlimited".into()
            } else {
                output::num(ack_pending as u64)
            },
        ),
    ])?;
    let api = info.get("api").cloned().unwrap_or(Value::Null);
    out("\nAPI:\n")?;
    output::kv_block(&[
        ("Requests", output::num(output::u(&api, "total"))),
        ("Errors", output::num(output::u(&api, "errors"))),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_against_limits() {
        assert_eq!(of(5, -1, output::num), "5 of Unlimited");
        assert_eq!(of(5, 10, output::num), "5 of 10 (50%)");
    }
}
