//! The result of a benchmark run, printed for people or for scripts.
//!
//! Scripts (`scripts/bench-compare.sh`, CI) parse `--json`, so its shape is
//! a contract: one object per run on one line, every field always present
//! (fields that don't apply to a mode are `null` or 0, never missing), and
//! the headline number in the same place for every mode: `msgs_per_sec` is
//! what the run measures — publish rate for `pub`, delivered messages per
//! second for `sub`/`pubsub`/`fanout`, round trips per second for
//! `request`, acknowledged publishes per second for `js-pub`, consumed
//! messages per second for `js-consume`, fdatasyncs per second for
//! `fsync`. The text report shows the same numbers laid out like
//! `nats bench`, including the per-client spread.

use std::io::Write;
use std::sync::atomic::Ordering::Relaxed;

use serde::Serialize;

use super::common::Health;
use crate::error::{Error, Result};
use crate::units::{group, group_f, human_bytes};

/// One run's results. See the module docs for the meaning of
/// `msgs_per_sec` per mode.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Benchmark mode: `pub`, `sub`, `pubsub`, `fanout`, `request`,
    /// `js-pub`, `js-consume` or `fsync`.
    pub mode: &'static str,
    /// Subject used.
    pub subject: String,
    /// Messages asked for: published in total (`pub`, `pubsub`, `fanout`),
    /// expected by each subscriber (`sub`), round trips (`request`).
    pub msgs: u64,
    /// Payload size in bytes (`sub`: average observed size).
    pub size: usize,
    /// Publishing clients (`request`: requesters).
    pub pubs: usize,
    /// Subscribing clients (`request`: repliers).
    pub subs: usize,
    /// Duration the headline rate is computed over, in seconds.
    pub seconds: f64,
    /// Headline rate in messages per second.
    pub msgs_per_sec: f64,
    /// Headline rate in payload bytes per second.
    pub bytes_per_sec: f64,
    /// Messages published (`request`: requests answered).
    pub published: u64,
    /// Messages the subscribers should have received in total.
    pub expected: u64,
    /// Messages the subscribers received in total (`request`: replies).
    pub received: u64,
    /// `expected - received`: messages lost or not delivered in time.
    pub missing: u64,
    /// Aggregate publish rate, where there are publishers.
    pub pub_msgs_per_sec: Option<f64>,
    /// Aggregate receive rate, where there are subscribers.
    pub sub_msgs_per_sec: Option<f64>,
    /// Median round-trip latency in microseconds (`request`; `js-pub
    /// --sync`: publish to PubAck; `fsync`: one write + fdatasync).
    pub p50_us: Option<f64>,
    /// 90th percentile round-trip latency in microseconds.
    pub p90_us: Option<f64>,
    /// 99th percentile round-trip latency in microseconds.
    pub p99_us: Option<f64>,
    /// Worst round-trip latency in microseconds.
    pub max_us: Option<f64>,
    /// Mean round-trip latency in microseconds.
    pub mean_us: Option<f64>,
    /// Slow-consumer events: a subscription buffer was full and the client
    /// dropped a message. A lower bound on such drops (the client's event
    /// queue can itself overflow); `missing` is the exact loss.
    pub slow_consumer_events: u64,
    /// Connections lost during the run (e.g. cut off as slow consumers).
    pub disconnects: u64,
    /// `-ERR` lines received from the server.
    pub server_errors: u64,
    /// The most recent error the server or client reported, if any.
    pub last_error: Option<String>,
    /// How the run ended: `complete`, `stalled` (publishers done, messages
    /// stopped arriving) or `deadline` (`--max-seconds` reached).
    pub stop_reason: &'static str,
    /// True when every message was published and every expected message
    /// received.
    pub complete: bool,
    /// JetStream modes: the stream used.
    pub stream: Option<String>,
    /// JetStream modes: the stream's storage, `file` or `memory`.
    pub storage: Option<&'static str>,
    /// JetStream modes: `sync` / `async` (`js-pub`), `pull-ack`,
    /// `pull-noack`, `push` or `push-ack` (`js-consume`).
    pub variant: Option<&'static str>,
    /// `js-pub`: acks each publisher may have outstanding (1 with `--sync`).
    pub max_pending: Option<u64>,
    /// `js-consume`: messages asked for per pull.
    pub batch: Option<u64>,
    /// `fsync`: the directory written in.
    pub dir: Option<String>,
    /// Per-client results.
    pub clients: Vec<ClientStats>,
}

/// One simulated client's own numbers.
#[derive(Debug, Clone, Serialize)]
pub struct ClientStats {
    /// `pub`, `sub` or `req`.
    pub role: &'static str,
    /// 1-based index within its role.
    pub id: usize,
    /// Messages this client sent or received.
    pub msgs: u64,
    /// This client's active time in seconds.
    pub seconds: f64,
    /// `msgs / seconds`.
    pub msgs_per_sec: f64,
    /// Payload bytes per second.
    pub bytes_per_sec: f64,
}

impl Report {
    /// This report with the latency percentiles, maximum and mean of `hist` in
    /// microseconds (left out when it holds nothing).
    pub fn with_latency(mut self, hist: &hdrhistogram::Histogram<u64>) -> Self {
        if hist.is_empty() {
            return self;
        }
        let us = |ns: u64| Some(ns as f64 / 1000.0);
        self.p50_us = us(hist.value_at_quantile(0.50));
        self.p90_us = us(hist.value_at_quantile(0.90));
        self.p99_us = us(hist.value_at_quantile(0.99));
        self.max_us = us(hist.max());
        self.mean_us = Some(hist.mean() / 1000.0);
        self
    }

    /// An empty report for `mode`, carrying the run's connection-health
    /// counters; each mode fills in what it measured.
    pub fn new(mode: &'static str, subject: &str, health: &Health) -> Self {
        Report {
            mode,
            subject: subject.to_string(),
            msgs: 0,
            size: 0,
            pubs: 0,
            subs: 0,
            seconds: 0.0,
            msgs_per_sec: 0.0,
            bytes_per_sec: 0.0,
            published: 0,
            expected: 0,
            received: 0,
            missing: 0,
            pub_msgs_per_sec: None,
            sub_msgs_per_sec: None,
            p50_us: None,
            p90_us: None,
            p99_us: None,
            max_us: None,
            mean_us: None,
            slow_consumer_events: health.slow_consumers.load(Relaxed),
            disconnects: health.disconnects.load(Relaxed),
            server_errors: health.server_errors.load(Relaxed),
            last_error: health.last_error(),
            stop_reason: "complete",
            complete: false,
            stream: None,
            storage: None,
            variant: None,
            max_pending: None,
            batch: None,
            dir: None,
            clients: Vec::new(),
        }
    }
}

impl ClientStats {
    /// Builds a client's stats, guarding against a zero duration.
    pub fn new(role: &'static str, id: usize, msgs: u64, bytes: u64, seconds: f64) -> Self {
        ClientStats {
            role,
            id,
            msgs,
            seconds,
            msgs_per_sec: rate(msgs, seconds),
            bytes_per_sec: rate(bytes, seconds),
        }
    }
}

/// `n / seconds`, or 0 when no time passed.
pub fn rate(n: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        n as f64 / seconds
    } else {
        0.0
    }
}

/// Prints the report (JSON or text) and turns an incomplete run into an
/// error, so scripts see a non-zero exit status and a reason on stderr.
pub fn finish(report: &Report, json: bool, max_seconds: f64) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        let line = serde_json::to_string(report)
            .map_err(|e| Error::Internal(format!("cannot encode report: {e}")))?;
        writeln!(out, "{line}")?;
    } else {
        out.write_all(render_text(report).as_bytes())?;
    }
    out.flush()?;
    if report.complete {
        Ok(())
    } else {
        Err(Error::Incomplete(incomplete_reason(report, max_seconds)))
    }
}

/// Explains in one line why a run is incomplete.
fn incomplete_reason(r: &Report, max_seconds: f64) -> String {
    let what = if r.mode == "request" {
        format!(
            "completed {} of {} round trips",
            group(r.published),
            group(r.msgs)
        )
    } else if r.expected > 0 {
        format!(
            "received {} of {} messages",
            group(r.received),
            group(r.expected)
        )
    } else {
        format!(
            "published {} of {} messages",
            group(r.published),
            group(r.msgs)
        )
    };
    let why = match r.stop_reason {
        "deadline" => format!("time bound --max-seconds {max_seconds} reached"),
        "stalled" => "publishers finished but messages stopped arriving".to_string(),
        other => other.to_string(),
    };
    let mut msg = format!(
        "incomplete run: {what} ({why}; slow-consumer events: {}, disconnects: {}, server errors: {})",
        group(r.slow_consumer_events),
        group(r.disconnects),
        group(r.server_errors)
    );
    if let Some(e) = &r.last_error {
        msg += &format!("; last error: {e}");
    }
    msg
}

/// Lays the report out for a terminal.
pub fn render_text(r: &Report) -> String {
    let mut s = String::new();
    let clients = match r.mode {
        "request" => format!("{} requester(s), {} replier(s)", r.pubs, r.subs),
        "js-pub" => format!("{} publisher(s)", r.pubs),
        "js-consume" => "1 consumer".to_string(),
        "fsync" => "1 writer".to_string(),
        _ => format!("{} publisher(s), {} subscriber(s)", r.pubs, r.subs),
    };
    let on = match (&r.stream, &r.dir) {
        (Some(stream), _) => format!("stream {stream:?} ({:?})", r.subject),
        (None, Some(dir)) => format!("{dir:?}"),
        (None, None) => format!("{:?}", r.subject),
    };
    s += &format!(
        "natrium bench {}: {} msgs of {} on {on}, {clients}\n",
        r.mode,
        group(r.msgs),
        human_bytes(r.size),
    );
    let mut details = Vec::new();
    if let Some(v) = r.storage {
        details.push(format!("storage {v}"));
    }
    if let Some(v) = r.variant {
        details.push(v.to_string());
    }
    if let Some(v) = r.max_pending {
        details.push(format!("max pending {v}"));
    }
    if let Some(v) = r
        .batch
        .filter(|_| r.variant.is_some_and(|v| v.starts_with("pull")))
    {
        details.push(format!("batch {v}"));
    }
    if !details.is_empty() {
        s += &format!("  {}\n", details.join(", "));
    }
    let size = r.size as f64;
    if let Some(rate) = r.pub_msgs_per_sec {
        s += &section(r, "pub", "Pub", rate, size);
    }
    if let Some(rate) = r.sub_msgs_per_sec {
        s += &section(r, "sub", "Sub", rate, size);
    }
    if r.mode == "request" {
        s += &section(r, "req", "Req", r.msgs_per_sec, size * 2.0);
    }
    if r.p50_us.is_some() {
        let us = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        s += &format!(
            "  Latency (µs): p50 {} | p90 {} | p99 {} | max {} | mean {}\n",
            us(r.p50_us),
            us(r.p90_us),
            us(r.p99_us),
            us(r.max_us),
            us(r.mean_us)
        );
    }
    if r.mode == "pubsub" || r.mode == "fanout" {
        s += &format!(
            "  Delivered: {} msgs/s ~ {} (aggregate over all subscribers)\n",
            group_f(r.msgs_per_sec),
            mib(r.bytes_per_sec)
        );
    }
    if r.expected > 0 {
        s += &format!(
            "  Received {} of {} messages",
            group(r.received),
            group(r.expected)
        );
        if r.missing > 0 {
            s += &format!(" ({} MISSING)", group(r.missing));
        }
        s += "\n";
    }
    if r.slow_consumer_events + r.disconnects + r.server_errors > 0 {
        s += &format!(
            "  WARNING: slow-consumer events {}, disconnects {}, server errors {}\n",
            group(r.slow_consumer_events),
            group(r.disconnects),
            group(r.server_errors)
        );
    }
    if let Some(e) = &r.last_error {
        s += &format!("  Last error: {e}\n");
    }
    s += &format!("  Elapsed {:.3} s, ended: {}\n", r.seconds, r.stop_reason);
    s
}

/// One role's aggregate line, per-client lines and min/avg/max.
fn section(r: &Report, role: &str, title: &str, rate: f64, msg_bytes: f64) -> String {
    let mut s = format!(
        "  {title} stats: {} msgs/s ~ {}\n",
        group_f(rate),
        mib(rate * msg_bytes)
    );
    let clients: Vec<&ClientStats> = r.clients.iter().filter(|c| c.role == role).collect();
    if clients.len() > 1 {
        for c in &clients {
            s += &format!(
                "   [{}] {} msgs/s ~ {} ({} msgs)\n",
                c.id,
                group_f(c.msgs_per_sec),
                mib(c.bytes_per_sec),
                group(c.msgs)
            );
        }
        let rates: Vec<f64> = clients.iter().map(|c| c.msgs_per_sec).collect();
        let min = rates.iter().copied().fold(f64::INFINITY, f64::min);
        let max = rates.iter().copied().fold(0.0, f64::max);
        let avg = rates.iter().sum::<f64>() / rates.len() as f64;
        let var = rates.iter().map(|x| (x - avg).powi(2)).sum::<f64>() / rates.len() as f64;
        s += &format!(
            "   min {} | avg {} | max {} | stddev {} msgs/s\n",
            group_f(min),
            group_f(avg),
            group_f(max),
            group_f(var.sqrt())
        );
    }
    s
}

/// Bytes per second as MiB/s.
fn mib(bytes_per_sec: f64) -> String {
    format!("{:.2} MiB/s", bytes_per_sec / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        Report {
            msgs: 1000,
            size: 16,
            pubs: 2,
            subs: 1,
            seconds: 0.5,
            msgs_per_sec: 2000.0,
            bytes_per_sec: 32000.0,
            published: 1000,
            expected: 1000,
            received: 1000,
            pub_msgs_per_sec: Some(2500.0),
            sub_msgs_per_sec: Some(2000.0),
            complete: true,
            clients: vec![
                ClientStats::new("pub", 1, 500, 8000, 0.4),
                ClientStats::new("pub", 2, 500, 8000, 0.5),
                ClientStats::new("sub", 1, 1000, 16000, 0.5),
            ],
            ..Report::new("pubsub", "natrium.bench", &Health::default())
        }
    }

    #[test]
    fn json_has_every_field_even_when_null() {
        let v: serde_json::Value = serde_json::to_value(sample()).unwrap();
        for key in [
            "mode",
            "msgs",
            "size",
            "pubs",
            "subs",
            "seconds",
            "msgs_per_sec",
            "bytes_per_sec",
            "p50_us",
            "p90_us",
            "p99_us",
            "complete",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert!(v["p50_us"].is_null());
    }

    #[test]
    fn text_shows_spread_and_counts() {
        let t = render_text(&sample());
        assert!(t.contains("Pub stats: 2,500 msgs/s"), "{t}");
        assert!(t.contains("min 1,000 | avg 1,125 | max 1,250"), "{t}");
        assert!(t.contains("Received 1,000 of 1,000"), "{t}");
    }

    #[test]
    fn incomplete_reason_names_the_cause() {
        let mut r = sample();
        r.received = 900;
        r.missing = 100;
        r.stop_reason = "stalled";
        r.slow_consumer_events = 3;
        let m = incomplete_reason(&r, 60.0);
        assert!(m.contains("received 900 of 1,000"), "{m}");
        assert!(m.contains("slow-consumer events: 3"), "{m}");
    }
}
