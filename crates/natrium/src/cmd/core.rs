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
    /// Publish to JetStream: wait for each message's acknowledgement (PubAck) and show
    /// the stream and sequence that stored it.
    #[arg(short = 'J', long, conflicts_with = "reply")]
    jetstream: bool,
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
    #[command(flatten)]
    js: SubJetStream,
}

/// `natrium sub`'s JetStream flags: any of them reads the subject's messages from the
/// stream that holds it, through an ordered consumer, instead of subscribing to live
/// traffic.
#[derive(Args, Debug, Default)]
struct SubJetStream {
    /// The stream to read (default: the one stream whose subjects take the subject).
    #[arg(long, value_name = "STREAM")]
    stream: Option<String>,
    /// Every message the stream holds on the subject, then new ones.
    #[arg(long, group = "start")]
    all: bool,
    /// Only messages stored from now on.
    #[arg(long, group = "start")]
    new: bool,
    /// The last message on the subject, then new ones.
    #[arg(long, group = "start")]
    last: bool,
    /// The last message of each matching subject, then new ones.
    #[arg(long, group = "start")]
    last_per_subject: bool,
    /// Messages stored within this long (e.g. 1h), then new ones.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION", group = "start")]
    since: Option<Duration>,
    /// Messages from this stream sequence on.
    #[arg(long, value_name = "SEQUENCE", group = "start")]
    start_sequence: Option<u64>,
    /// Stop once every message held when the consumer started has arrived.
    #[arg(short = 'T', long)]
    terminate_at_end: bool,
}

impl SubJetStream {
    fn wanted(&self) -> bool {
        self.stream.is_some()
            || self.all
            || self.new
            || self.last
            || self.last_per_subject
            || self.since.is_some()
            || self.start_sequence.is_some()
            || self.terminate_at_end
    }

    fn deliver_policy(&self) -> async_nats::jetstream::consumer::DeliverPolicy {
        use async_nats::jetstream::consumer::DeliverPolicy;
        if self.new {
            DeliverPolicy::New
        } else if self.last {
            DeliverPolicy::Last
        } else if self.last_per_subject {
            DeliverPolicy::LastPerSubject
        } else if let Some(d) = self.since {
            DeliverPolicy::ByStartTime {
                start_time: time::OffsetDateTime::now_utc() - d,
            }
        } else if let Some(seq) = self.start_sequence {
            DeliverPolicy::ByStartSequence {
                start_sequence: seq,
            }
        } else {
            DeliverPolicy::All
        }
    }
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

/// Publishes one message to JetStream and returns its PubAck as the server sent it.
async fn publish_acked(
    client: &Client,
    subject: &str,
    headers: Option<HeaderMap>,
    payload: bytes::Bytes,
    op: &str,
) -> Result<serde_json::Value> {
    let r = match headers {
        Some(h) => {
            client
                .request_with_headers(subject.to_string(), h, payload)
                .await
        }
        None => client.request(subject.to_string(), payload).await,
    };
    let m = r.map_err(|e| match e.kind() {
        async_nats::RequestErrorKind::NoResponders => {
            Error::NoResponders(format!("{op}: no stream takes the subject (no responders)"))
        }
        async_nats::RequestErrorKind::TimedOut => Error::Timeout(op.to_string()),
        _ => Error::nats(op, e),
    })?;
    let v: serde_json::Value = serde_json::from_slice(&m.payload)
        .map_err(|e| Error::BadInput(format!("{op}: the answer is not a PubAck ({e})")))?;
    crate::jsapi::check(v, op)
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
        if a.jetstream {
            let ack = publish_acked(&client, &a.subject, hdrs, payload, &op).await?;
            if a.json {
                output::json_line(&ack)?;
            } else if !a.quiet {
                let mut line = format!(
                    ">>> Stored in Stream: {} Sequence: {}",
                    output::s(&ack, "stream"),
                    output::u(&ack, "seq")
                );
                if let Some(d) = ack.get("domain").and_then(serde_json::Value::as_str) {
                    line.push_str(&format!(" Domain: {d:?}"));
                }
                if output::b(&ack, "duplicate") {
                    line.push_str(" Duplicate: true");
                }
                if let Some(v) = ack.get("val").and_then(serde_json::Value::as_str) {
                    line.push_str(&format!(" Counter Value: {v}"));
                }
                out(line)?;
            }
            if let Some(d) = a.sleep
                && n < a.count
            {
                tokio::time::sleep(d).await;
            }
            continue;
        }
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

/// The one stream whose subjects take `subject`, for `sub` without `--stream`.
async fn stream_for(client: &Client, subject: &str) -> Result<String> {
    let op = format!("find the stream holding {subject:?}");
    let names = crate::jsapi::list_all(
        client,
        "STREAM.NAMES",
        "streams",
        json!({ "subject": subject }),
        &op,
    )
    .await?;
    match names.as_slice() {
        [one] => Ok(one.as_str().unwrap_or_default().to_string()),
        [] => Err(Error::BadInput(format!(
            "{op}: no stream takes it; name one with --stream"
        ))),
        many => Err(Error::BadInput(format!(
            "{op}: {} streams take it; name one with --stream",
            many.len()
        ))),
    }
}

/// `natrium sub` with JetStream flags: an ordered consumer on the stream, filtered to the
/// subject.
async fn subscribe_stream(client: Client, a: SubArgs) -> Result<()> {
    use async_nats::jetstream::consumer::push::OrderedConfig;
    if a.queue.is_some() {
        return Err(Error::BadInput(
            "sub: --queue cannot be combined with JetStream flags".into(),
        ));
    }
    let stream = match &a.js.stream {
        Some(s) => s.clone(),
        None => stream_for(&client, &a.subject).await?,
    };
    crate::jsapi::valid_name("stream", &stream)?;
    let op = format!("sub {} from stream {stream}", a.subject);
    let js = async_nats::jetstream::new(client.clone());
    let s = js
        .get_stream(&stream)
        .await
        .map_err(|e| Error::nats(&op, e))?;
    let consumer = s
        .create_consumer(OrderedConfig {
            deliver_subject: client.new_inbox(),
            filter_subject: a.subject.clone(),
            deliver_policy: a.js.deliver_policy(),
            ..Default::default()
        })
        .await
        .map_err(|e| Error::nats(&op, e))?;
    let pending = consumer.cached_info().num_pending;
    eprintln!(
        "Subscribing to {} in stream {stream} ({pending} pending)",
        a.subject
    );
    if a.js.terminate_at_end && pending == 0 {
        return Ok(());
    }
    let mut msgs = consumer.messages().await.map_err(|e| Error::nats(&op, e))?;
    let mut n = 0u64;
    while let Some(m) = msgs.next().await {
        let m = m.map_err(|e| Error::nats(&op, e))?;
        let info = m
            .info()
            .map_err(|e| Error::BadInput(format!("{op}: {e}")))?;
        let (seq, left, ts) = (info.stream_sequence, info.pending, info.published);
        let ts = ts
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        n += 1;
        if a.json {
            let mut v = message_json(&m.message, n);
            v["stream"] = json!(stream);
            v["seq"] = json!(seq);
            v["pending"] = json!(left);
            v["time"] = json!(ts);
            output::json_line(&v)?;
        } else if a.raw {
            out_bytes(&m.payload, true)?;
        } else {
            out(format!(
                "[#{n}] Received JetStream message: stream: {stream} seq: {seq} / pending: {left} / subject: {} / time: {ts}",
                m.subject.as_str()
            ))?;
            print_headers(&m.message)?;
            if !a.headers_only {
                if m.headers.is_some() {
                    out("")?;
                }
                out_bytes(&m.payload, true)?;
            }
            out("")?;
        }
        if a.count.is_some_and(|c| n >= c) || (a.js.terminate_at_end && left == 0) {
            break;
        }
    }
    Ok(())
}

/// Runs `natrium sub`.
pub async fn subscribe(conn: &ConnectArgs, a: SubArgs) -> Result<()> {
    let client = conn.connect().await?;
    if a.js.wanted() {
        return subscribe_stream(client, a).await;
    }
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
