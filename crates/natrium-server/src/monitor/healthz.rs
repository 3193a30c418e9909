//! `/healthz`: the probe orchestrators poll.
//!
//! Unlike the other endpoints the body is compact JSON and the HTTP status carries the
//! verdict, so probes can look at the status alone. nats-server checks, in order: the
//! request itself (a stream needs an account, a consumer needs a stream → 400), that the
//! server accepts connections, then JetStream (enabled, meta group, streams, consumers).
//! natrium runs no cluster, so there is no meta group to check; with JetStream on, a
//! probe that names an `account`, `stream` or `consumer` gets 404 when that asset is
//! missing, with nats-server's texts ([`js_asset_status`]); the JetStream options
//! (`js-enabled-only`, `js-server-only`, `js-meta-only`, the deprecated `js-enabled`)
//! are decoded and validated like nats-server so probes configured for it keep getting
//! the same answers.

use super::query::{Query, QueryError};
use hyper::StatusCode;
use serde::Serialize;

/// `/healthz` request options.
#[derive(Debug, Clone, Default)]
pub struct HealthzOptions {
    /// Deprecated spelling of `js_enabled_only`.
    pub js_enabled: bool,
    /// Only check that JetStream is enabled.
    pub js_enabled_only: bool,
    /// Skip JetStream checks.
    pub js_server_only: bool,
    /// Only check the JetStream meta group.
    pub js_meta_only: bool,
    /// Account to check.
    pub account: String,
    /// Stream to check (needs `account`).
    pub stream: String,
    /// Consumer to check (needs `stream`).
    pub consumer: String,
    /// Answer with an `errors` list instead of one `error`.
    pub details: bool,
}

impl HealthzOptions {
    /// Decodes the query string as nats-server's `HandleHealthz` does, in its order.
    pub fn from_query(q: &Query) -> Result<Self, QueryError> {
        Ok(HealthzOptions {
            js_enabled: q.bool("js-enabled")?,
            js_enabled_only: q.bool("js-enabled-only")?,
            js_server_only: q.bool("js-server-only")?,
            js_meta_only: q.bool("js-meta-only")?,
            details: q.bool("details")?,
            account: q.get("account").to_string(),
            stream: q.get("stream").to_string(),
            consumer: q.get("consumer").to_string(),
        })
    }
}

/// Kinds of health problems (`errors[].type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HealthzErrorType {
    /// Not accepting connections.
    Connection,
    /// The request is inconsistent.
    BadRequest,
    /// JetStream problem.
    Jetstream,
    /// Account problem.
    Account,
    /// Stream problem.
    Stream,
    /// Consumer problem.
    Consumer,
}

/// One problem in a `details=true` answer.
#[derive(Debug, Clone, Serialize)]
pub struct HealthzError {
    /// Kind.
    #[serde(rename = "type")]
    pub kind: HealthzErrorType,
    /// Account concerned.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub account: String,
    /// Stream concerned.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub stream: String,
    /// Consumer concerned.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub consumer: String,
    /// What is wrong.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// The `/healthz` body.
#[derive(Debug, Clone, Serialize)]
pub struct HealthStatus {
    /// `ok`, `error` or `unavailable`.
    pub status: &'static str,
    /// The problem (without `details`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// The problems (with `details`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<HealthzError>,
    /// natrium only: usage at or above 90% of a server, account or stream limit. The
    /// status stays `ok` (HTTP 200); the list says what will soon be refused.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<HealthzError>,
    /// HTTP status to answer with (not part of the body).
    #[serde(skip)]
    pub code: StatusCode,
}

impl HealthStatus {
    /// A failed check: one `error`, or one entry in `errors` with `details`.
    fn failed(code: StatusCode, details: bool, kind: HealthzErrorType, error: String) -> Self {
        if details {
            HealthStatus {
                status: "error",
                error: String::new(),
                errors: vec![HealthzError {
                    kind,
                    account: String::new(),
                    stream: String::new(),
                    consumer: String::new(),
                    error,
                }],
                warnings: Vec::new(),
                code,
            }
        } else {
            HealthStatus {
                status: "error",
                error,
                errors: Vec::new(),
                warnings: Vec::new(),
                code,
            }
        }
    }
}

/// Evaluates the probe.
pub fn healthz(o: &HealthzOptions) -> HealthStatus {
    if o.account.is_empty() && !o.stream.is_empty() {
        return HealthStatus::failed(
            StatusCode::BAD_REQUEST,
            o.details,
            HealthzErrorType::BadRequest,
            "\"account\" must not be empty when checking stream health".to_string(),
        );
    }
    if o.stream.is_empty() && !o.consumer.is_empty() {
        return HealthStatus::failed(
            StatusCode::BAD_REQUEST,
            o.details,
            HealthzErrorType::BadRequest,
            "\"stream\" must not be empty when checking consumer health".to_string(),
        );
    }
    // The listener is up as soon as `Server::start` returns, and JetStream checks come
    // with JetStream.
    HealthStatus {
        status: "ok",
        error: String::new(),
        errors: Vec::new(),
        warnings: Vec::new(),
        code: StatusCode::OK,
    }
}

/// The answer while the client listener is closed (lame duck, shutdown): nats-server's
/// `readyForConnections` failure, HTTP 500.
pub fn not_ready(details: bool) -> HealthStatus {
    HealthStatus::failed(
        StatusCode::INTERNAL_SERVER_ERROR,
        details,
        HealthzErrorType::Connection,
        "failed to be ready for connections after 1ms: server".to_string(),
    )
}

/// Which JetStream asset a probe names is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// The account has no JetStream (or does not exist).
    Account,
    /// The stream is not in the account.
    Stream,
    /// The consumer is not on the stream.
    Consumer,
}

/// The answer for a probe whose named asset is missing (nats-server's texts, 404:
/// `unavailable` with one `error`, or `error` with an `errors` list with `details`).
pub fn js_asset_status(o: &HealthzOptions, missing: Missing) -> HealthStatus {
    use super::format::go_quote;
    let (kind, stream, consumer, error) = match missing {
        Missing::Account => (
            HealthzErrorType::Account,
            String::new(),
            String::new(),
            format!("JetStream account {} not found", go_quote(&o.account)),
        ),
        Missing::Stream => (
            HealthzErrorType::Stream,
            o.stream.clone(),
            String::new(),
            format!(
                "JetStream stream {} not found on account {}",
                go_quote(&o.stream),
                go_quote(&o.account)
            ),
        ),
        Missing::Consumer => (
            HealthzErrorType::Consumer,
            o.stream.clone(),
            o.consumer.clone(),
            format!(
                "JetStream consumer {} not found for stream {} on account {}",
                go_quote(&o.consumer),
                go_quote(&o.stream),
                go_quote(&o.account)
            ),
        ),
    };
    if o.details {
        HealthStatus {
            status: "error",
            error: String::new(),
            errors: vec![HealthzError {
                kind,
                account: o.account.clone(),
                stream,
                consumer,
                error,
            }],
            warnings: Vec::new(),
            code: StatusCode::NOT_FOUND,
        }
    } else {
        HealthStatus {
            status: "unavailable",
            error,
            errors: Vec::new(),
            warnings: Vec::new(),
            code: StatusCode::NOT_FOUND,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::json::to_compact;

    #[test]
    fn missing_assets_match_nats_server() {
        let mut o = HealthzOptions {
            account: "$G".into(),
            stream: "S".into(),
            consumer: "X".into(),
            ..HealthzOptions::default()
        };
        let h = js_asset_status(&o, Missing::Consumer);
        assert_eq!(h.code, StatusCode::NOT_FOUND);
        assert_eq!(
            to_compact(&h).expect("serialises"),
            r#"{"status":"unavailable","error":"JetStream consumer \"X\" not found for stream \"S\" on account \"$G\""}"#
        );
        o.details = true;
        assert_eq!(
            to_compact(&js_asset_status(&o, Missing::Stream)).expect("serialises"),
            r#"{"status":"error","errors":[{"type":"STREAM","account":"$G","stream":"S","error":"JetStream stream \"S\" not found on account \"$G\""}]}"#
        );
        assert_eq!(
            to_compact(&js_asset_status(&o, Missing::Account)).expect("serialises"),
            r#"{"status":"error","errors":[{"type":"ACCOUNT","account":"$G","error":"JetStream account \"$G\" not found"}]}"#
        );
    }

    #[test]
    fn bad_requests_match_nats_server() {
        let o = HealthzOptions {
            stream: "ORDERS".into(),
            ..HealthzOptions::default()
        };
        let h = healthz(&o);
        assert_eq!(h.code, StatusCode::BAD_REQUEST);
        assert_eq!(
            to_compact(&h).expect("serialises"),
            r#"{"status":"error","error":"\"account\" must not be empty when checking stream health"}"#
        );
        let o = HealthzOptions {
            consumer: "C".into(),
            details: true,
            ..HealthzOptions::default()
        };
        let h = healthz(&o);
        assert_eq!(
            to_compact(&h).expect("serialises"),
            r#"{"status":"error","errors":[{"type":"BAD_REQUEST","error":"\"stream\" must not be empty when checking consumer health"}]}"#
        );
        assert_eq!(
            to_compact(&healthz(&HealthzOptions::default())).expect("serialises"),
            r#"{"status":"ok"}"#
        );
    }
}
