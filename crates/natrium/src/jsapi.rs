//! The JetStream API spoken directly: JSON requests to `$JS.API.…`, JSON
//! answers kept as [`serde_json::Value`].
//!
//! Why not async-nats's typed JetStream structs: `--json` must print what
//! the server said, field for field, and the CLI must keep working when a
//! server adds fields the client library does not know (or a config file
//! carries them). Typed KV and object-store helpers are still used where
//! they save real work (chunking, watchers).

use async_nats::{Client, RequestErrorKind};
use serde_json::{Value, json};

use crate::error::{Error, Result};

/// Sends one JetStream API request and returns the decoded answer, turning
/// an `error` object into [`Error::Api`].
///
/// `subject` is the part after `$JS.API.`; `op` names the operation for
/// error messages (e.g. `stream info ORDERS`).
pub async fn request(client: &Client, subject: &str, body: &Value, op: &str) -> Result<Value> {
    let payload = if body.is_null() {
        bytes::Bytes::new()
    } else {
        serde_json::to_vec(body)?.into()
    };
    let full = format!("$JS.API.{subject}");
    let msg = client
        .request(full, payload)
        .await
        .map_err(|e| match e.kind() {
            RequestErrorKind::NoResponders => Error::NoResponders(format!(
                "{op}: JetStream is not enabled for this account (no responders on $JS.API)"
            )),
            RequestErrorKind::TimedOut => Error::Timeout(op.to_string()),
            _ => Error::nats(op, e),
        })?;
    let v: Value = serde_json::from_slice(&msg.payload).map_err(|e| {
        Error::BadInput(format!(
            "{op}: the server sent an answer that is not JSON: {e}"
        ))
    })?;
    check(v, op)
}

/// Returns `v` unless it carries a JetStream API `error` object.
pub fn check(v: Value, op: &str) -> Result<Value> {
    if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
        return Err(Error::Api {
            op: op.to_string(),
            description: err
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("unknown error")
                .to_string(),
            code: err.get("code").and_then(Value::as_u64).unwrap_or(0),
            err_code: err.get("err_code").and_then(Value::as_u64).unwrap_or(0),
        });
    }
    Ok(v)
}

/// Collects every item of a paged list API (`STREAM.LIST`,
/// `CONSUMER.LIST.<stream>`, `STREAM.NAMES`), whose items live under `key`.
pub async fn list_all(
    client: &Client,
    subject: &str,
    key: &str,
    extra: Value,
    op: &str,
) -> Result<Vec<Value>> {
    let mut items = Vec::new();
    loop {
        let mut body = json!({ "offset": items.len() });
        if let (Some(b), Value::Object(extra)) = (body.as_object_mut(), &extra) {
            b.extend(extra.clone());
        }
        let page = request(client, subject, &body, op).await?;
        let batch = page
            .get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let total = page.get("total").and_then(Value::as_u64).unwrap_or(0) as usize;
        let got = batch.len();
        items.extend(batch);
        if got == 0 || items.len() >= total {
            break;
        }
    }
    Ok(items)
}

/// Fetches `$JS.API.STREAM.INFO.<name>`.
pub async fn stream_info(client: &Client, name: &str) -> Result<Value> {
    request(
        client,
        &format!("STREAM.INFO.{name}"),
        &Value::Null,
        &format!("stream info {name}"),
    )
    .await
}

/// The `config` object of a stream or consumer info, if it has one.
pub fn config_of(info: &Value) -> Option<serde_json::Map<String, Value>> {
    info.get("config").and_then(Value::as_object).cloned()
}

/// Reads stream `name`'s configuration, lets `change` edit it, and sends it back with
/// `STREAM.UPDATE`; returns the server's answer (the updated stream info). `op` names
/// the operation in errors.
pub async fn update_stream_config(
    client: &Client,
    name: &str,
    op: &str,
    change: impl FnOnce(&mut serde_json::Map<String, Value>) -> Result<()>,
) -> Result<Value> {
    let info = stream_info(client, name).await?;
    let mut cfg = config_of(&info).ok_or_else(|| {
        crate::error::Error::BadInput(format!("{op}: the stream info has no config"))
    })?;
    change(&mut cfg)?;
    request(
        client,
        &format!("STREAM.UPDATE.{name}"),
        &Value::Object(cfg),
        op,
    )
    .await
}

/// Fetches `$JS.API.CONSUMER.INFO.<stream>.<name>`.
pub async fn consumer_info(client: &Client, stream: &str, name: &str) -> Result<Value> {
    request(
        client,
        &format!("CONSUMER.INFO.{stream}.{name}"),
        &Value::Null,
        &format!("consumer info {stream} {name}"),
    )
    .await
}

/// Checks a stream, consumer or bucket name before it goes into a subject.
pub fn valid_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty()
        || name
            .chars()
            .any(|c| c == '.' || c == '*' || c == '>' || c.is_whitespace() || c.is_control())
    {
        return Err(Error::Usage(format!(
            "invalid {what} name {name:?}: it must be non-empty without '.', '*', '>' or spaces"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_become_one_line() {
        let v = json!({"type":"x","error":{"code":404,"err_code":10059,"description":"stream not found"}});
        let e = check(v, "stream info X").expect_err("error");
        assert_eq!(
            e.to_string(),
            "stream info X: stream not found (code 404, err_code 10059)"
        );
        assert!(check(json!({"total":0}), "x").is_ok());
    }

    #[test]
    fn names() {
        assert!(valid_name("stream", "ORDERS").is_ok());
        assert!(valid_name("stream", "A.B").is_err());
        assert!(valid_name("stream", "").is_err());
        assert!(valid_name("stream", "a b").is_err());
    }
}
