//! Core NATS messaging: `pub`, `sub`, `request`, `reply`.

use std::io::Read;
use std::time::{Duration, Instant};

use async_nats::{Client, HeaderMap, Message};
use clap::Args;
use futures::StreamExt;
use serde_json::json;

use crate::connect::ConnectArgs;
use crate::error::{Error, Result};
use crate::output::{self, out, out_bytes};
use crate::template::{Template, Vars, parse_header};
use crate::units::parse_duration;

/// Arguments of `natrium pub`.
#[derive(Args, Debug)]
pub struct PubArgs {
    /// Subject to publish to.
    subject: String,
    /// Message body (a template: {{Count}}, {{TimeStamp}}, {{Unix}},
    /// {{UnixNano}}, {{Time}}, {{ID}}, {{Random MIN MAX}}); read from stdin
    /// when absent and stdin is not a terminal.
    body: Option<String>,
    /// Header to add, KEY:VALUE (repeatable; values are templates too).
    #[arg(short = 'H', long = "header", value_parser = parse_header, value_name = "KEY:VALUE")]
    headers: Vec<(String, String)>,
    /// How many messages to publish.
    #[arg(long, default_value_t = 1)]
    count: u64,
    /// Pause between messages (e.g. 100ms).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    sleep: Option<Duration>,
    /// Reply subject to set on the messages.
    #[arg(long)]
    reply: Option<String>,
    /// Print nothing on success.
    #[arg(short, long)]
    quiet: bool,
    /// Print one JSON object per published message.
    #[arg(long)]
    json: bool,
}

/// Arguments of `natrium sub`.
#[derive(Args, Debug)]
pub struct SubArgs {
    /// Subject to subscribe to (wildcards * and > allowed).
    subject: String,
    /// Join this queue group.
    #[arg(long, short = 'q')]
    queue: Option<String>,
    /// Print only the message bodies, one per line.
    #[arg(long, conflicts_with = "headers_only")]
    raw: bool,
    /// Print only the headers of each message.
    #[arg(long)]
    headers_only: bool,
    /// Exit after this many messages.
    #[arg(long)]
    count: Option<u64>,
    /// Print one JSON object per message.
    #[arg(long)]
    json: bool,
}

/// Arguments of `natrium request`.
#[derive(Args, Debug)]
pub struct RequestArgs {
    /// Subject to send the request to.
    subject: String,
    /// Request body (a template as for `pub`); stdin when absent and not a terminal.
    body: Option<String>,
    /// Header to add, KEY:VALUE (repeatable).
    #[arg(short = 'H', long = "header", value_parser = parse_header, value_name = "KEY:VALUE")]
    headers: Vec<(String, String)>,
    /// How many requests to send, one after the other.
    #[arg(long, default_value_t = 1)]
    count: u64,
    /// Print only the response bodies.
    #[arg(long)]
    raw: bool,
    /// Print one JSON object per response.
    #[arg(long)]
    json: bool,
}

/// Arguments of `natrium reply`.
#[derive(Args, Debug)]
pub struct ReplyArgs {
    /// Subject to serve.
    subject: String,
    /// Response body, a template: as for `pub`, plus {{Request}} for the
    /// request body. Without it, requests are echoed back.
    body: Option<String>,
    /// Header to add to responses, KEY:VALUE (repeatable).
    #[arg(short = 'H', long = "header", value_parser = parse_header, value_name = "KEY:VALUE")]
    headers: Vec<(String, String)>,
    /// Queue group to join.
    #[arg(long, short = 'q', default_value = "NATS-RPLY-22")]
    queue: String,
    /// Exit after answering this many requests.
    #[arg(long)]
    count: Option<u64>,
    /// Print nothing per request.
    #[arg(long)]
    quiet: bool,
    /// Print one JSON object per request answered.
    #[arg(long)]
    json: bool,
}

fn body_or_stdin(body: Option<String>) -> Result<String> {
    if let Some(b) = body {
        return Ok(b);
    }
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Ok(String::new());
    }
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| Error::BadInput(format!("cannot read the body from stdin: {e}")))?;
    Ok(s)
}

type HeaderTemplates = Vec<(String, Template)>;

fn header_templates(h: &[(String, String)]) -> Result<HeaderTemplates> {
    h.iter()
        .map(|(k, v)| Ok((k.clone(), Template::parse(v, true)?)))
        .collect()
}

fn render_headers(h: &HeaderTemplates, vars: &Vars<'_>) -> Option<HeaderMap> {
    if h.is_empty() {
        return None;
    }
    let mut map = HeaderMap::new();
    for (k, t) in h {
        map.append(
            k.as_str(),
            String::from_utf8_lossy(&t.render(vars)).as_ref(),
        );
    }
    Some(map)
}

/// Makes sure the server has processed everything sent so far on `client`
/// (a round trip through a private inbox).
pub async fn sync(client: &Client) -> Result<()> {
    let inbox = client.new_inbox();
    let mut sub = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| Error::nats("subscribe", e))?;
    client
        .publish(inbox, bytes::Bytes::new())
        .await
        .map_err(|e| Error::nats("publish", e))?;
    client.flush().await.map_err(|e| Error::nats("flush", e))?;
    tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .map_err(|_| Error::Timeout("round trip to the server".into()))?;
    Ok(())
}

/// Runs `natrium pub`.
pub async fn publish(conn: &ConnectArgs, a: PubArgs) -> Result<()> {
    let body = Template::parse(&body_or_stdin(a.body)?, false)?;
    let headers = header_templates(&a.headers)?;
    let client = conn.connect().await?;
    let op = format!("publish to {:?}", a.subject);
    for n in 1..=a.count {
        let vars = Vars {
            count: n,
            request: b"",
        };
        let payload = bytes::Bytes::from(body.render(&vars));
        let len = payload.len();
        let hdrs = render_headers(&headers, &vars);
        let subject = a.subject.clone();
        let r = match (&a.reply, hdrs) {
            (Some(r), Some(h)) => {
                client
                    .publish_with_reply_and_headers(subject, r.clone(), h, payload)
                    .await
            }
            (Some(r), None) => client.publish_with_reply(subject, r.clone(), payload).await,
            (None, Some(h)) => client.publish_with_headers(subject, h, payload).await,
            (None, None) => client.publish(subject, payload).await,
        };
        r.map_err(|e| Error::nats(&op, e))?;
        if a.json {
            output::json_line(&json!({"n": n, "subject": a.subject, "bytes": len}))?;
        } else if !a.quiet {
            out(format!(">>> Published {len} bytes to {:?}", a.subject))?;
        }
        if let Some(d) = a.sleep
            && n < a.count
        {
            tokio::time::sleep(d).await;
        }
    }
    client.flush().await.map_err(|e| Error::nats(&op, e))?;
    Ok(())
}

fn message_json(m: &Message, n: u64) -> serde_json::Value {
    let headers: serde_json::Map<String, serde_json::Value> = m
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
    json!({
        "n": n,
        "subject": m.subject.as_str(),
        "reply": m.reply.as_ref().map(|r| r.as_str()),
        "headers": headers,
        "data": String::from_utf8_lossy(&m.payload),
    })
}

fn print_headers(m: &Message) -> Result<()> {
    if let Some(h) = &m.headers {
        for (k, vs) in h.iter() {
            for v in vs {
                out(format!("{k}: {}", v.as_str()))?;
            }
        }
    }
    Ok(())
}

/// Runs `natrium sub`.
pub async fn subscribe(conn: &ConnectArgs, a: SubArgs) -> Result<()> {
    let client = conn.connect().await?;
    let op = format!("subscribe to {:?}", a.subject);
    let mut sub = match &a.queue {
        Some(q) => client.queue_subscribe(a.subject.clone(), q.clone()).await,
        None => client.subscribe(a.subject.clone()).await,
    }
    .map_err(|e| Error::nats(&op, e))?;
    sync(&client).await?;
    match &a.queue {
        Some(q) => eprintln!("Subscribing on {} in group {q}", a.subject),
        None => eprintln!("Subscribing on {}", a.subject),
    }
    let mut n = 0u64;
    while let Some(m) = sub.next().await {
        n += 1;
        if a.json {
            output::json_line(&message_json(&m, n))?;
        } else if a.raw {
            out_bytes(&m.payload, true)?;
        } else if a.headers_only {
            out(format!("[#{n}] Received on {:?}", m.subject.as_str()))?;
            print_headers(&m)?;
            out("")?;
        } else {
            match &m.reply {
                Some(r) => out(format!(
                    "[#{n}] Received on {:?} with reply {:?}",
                    m.subject.as_str(),
                    r.as_str()
                ))?,
                None => out(format!("[#{n}] Received on {:?}", m.subject.as_str()))?,
            }
            print_headers(&m)?;
            if m.headers.is_some() {
                out("")?;
            }
            out_bytes(&m.payload, true)?;
            out("")?;
        }
        if a.count.is_some_and(|c| n >= c) {
            break;
        }
    }
    Ok(())
}

/// Runs `natrium request`.
pub async fn request(conn: &ConnectArgs, a: RequestArgs) -> Result<()> {
    let body = Template::parse(&body_or_stdin(a.body)?, false)?;
    let headers = header_templates(&a.headers)?;
    let client = conn.connect().await?;
    let op = format!("request on {:?}", a.subject);
    for n in 1..=a.count {
        let vars = Vars {
            count: n,
            request: b"",
        };
        let payload = bytes::Bytes::from(body.render(&vars));
        let start = Instant::now();
        let r = match render_headers(&headers, &vars) {
            Some(h) => {
                client
                    .request_with_headers(a.subject.clone(), h, payload)
                    .await
            }
            None => client.request(a.subject.clone(), payload).await,
        };
        let m = r.map_err(|e| match e.kind() {
            async_nats::RequestErrorKind::NoResponders => {
                Error::NoResponders(format!("{op}: no responders on the subject"))
            }
            async_nats::RequestErrorKind::TimedOut => Error::Timeout(op.clone()),
            _ => Error::nats(&op, e),
        })?;
        let rtt = start.elapsed();
        if a.json {
            let mut v = message_json(&m, n);
            v["rtt_ns"] = json!(rtt.as_nanos() as u64);
            output::json_line(&v)?;
        } else if a.raw {
            out_bytes(&m.payload, true)?;
        } else {
            out(format!(
                "Received with rtt {}",
                output::duration_ns(rtt.as_nanos() as u64)
            ))?;
            print_headers(&m)?;
            if m.headers.is_some() {
                out("")?;
            }
            out_bytes(&m.payload, true)?;
        }
    }
    Ok(())
}

/// Runs `natrium reply`.
pub async fn reply(conn: &ConnectArgs, a: ReplyArgs) -> Result<()> {
    let body = match &a.body {
        Some(b) => Some(Template::parse(b, true)?),
        None => None,
    };
    let headers = header_templates(&a.headers)?;
    let client = conn.connect().await?;
    let op = format!("reply on {:?}", a.subject);
    let mut sub = client
        .queue_subscribe(a.subject.clone(), a.queue.clone())
        .await
        .map_err(|e| Error::nats(&op, e))?;
    sync(&client).await?;
    eprintln!("Listening on {:?} in group {:?}", a.subject, a.queue);
    let mut n = 0u64;
    while let Some(m) = sub.next().await {
        let Some(reply_to) = m.reply.clone() else {
            continue;
        };
        n += 1;
        let vars = Vars {
            count: n,
            request: &m.payload,
        };
        let payload = match &body {
            Some(t) => bytes::Bytes::from(t.render(&vars)),
            None => m.payload.clone(),
        };
        let r = match render_headers(&headers, &vars) {
            Some(h) => client.publish_with_headers(reply_to, h, payload).await,
            None => client.publish(reply_to, payload).await,
        };
        r.map_err(|e| Error::nats(&op, e))?;
        if a.json {
            output::json_line(&message_json(&m, n))?;
        } else if !a.quiet {
            out(format!("[#{n}] Received on {:?}", m.subject.as_str()))?;
            out_bytes(&m.payload, true)?;
            out("")?;
        }
        if a.count.is_some_and(|c| n >= c) {
            break;
        }
    }
    client.flush().await.map_err(|e| Error::nats(&op, e))?;
    Ok(())
}
