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

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Show the connection, and JetStream usage against the account's limits.
    Info,
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
    let Cmd::Info = a.cmd;
    let client = conn.connect().await?;
    let js = jsapi::request(&client, "INFO", &Value::Null, "account info").await;
    if json {
        return output::json(&js?);
    }
    let si = client.server_info();
    out("Account Information\n")?;
    output::kv_block(&[
        ("Connected URL", conn.server_url().to_string()),
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
