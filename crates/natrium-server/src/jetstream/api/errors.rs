//! JetStream API errors, exactly as nats-server reports them.
//!
//! Why a generated table: clients (nats.go, nats.rs, nats.py, the `nats` CLI) branch on
//! `err_code`, and some tools show `description` verbatim, so every error must carry
//! nats-server's `code`, `err_code` and text. `build.rs` turns `data/jetstream-errors.json`
//! (a copy of nats-server's `server/errors.json`) into [`ErrorId`] — one variant per Go
//! constant — and one constructor per entry on [`ApiError`], named like the Go helper minus
//! `NewJS`/`Error`: `NewJSStreamNotFoundError()` is [`ApiError::stream_not_found`].
//!
//! Descriptions with Go placeholders take them as parameters, in the Go helper's order
//! (alphabetical), and substitute them the way Go's `strings.Replacer` does (all at once,
//! so text inside a substituted value is never substituted again):
//!
//! ```
//! use natrium_server::jetstream::api::errors::{ApiError, ErrorId};
//! let e = ApiError::invalid_json("json: unknown field \"bogus\"");
//! assert_eq!((e.code, e.err_code), (400, 10025));
//! assert_eq!(e.description, "invalid JSON: json: unknown field \"bogus\"");
//! assert!(e.is(ErrorId::InvalidJson));
//! ```
//!
//! In a response the error serializes as nats-server's `ApiError`:
//! `"error":{"code":404,"err_code":10059,"description":"stream not found"}`.
//! [`ApiError::with_detail`] appends context (a limit, the current usage, the request) to
//! the description while `code` and `err_code` stay exact; use it only where matching
//! nats-server byte for byte is not the point.

use std::fmt;

use serde::{Deserialize, Serialize};

include!(concat!(env!("OUT_DIR"), "/jetstream_errors.rs"));

/// An error inside a JetStream API response (`"error": {...}`), or the error of a
/// PubAck. Field order and omitempty rules are nats-server's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ApiError {
    /// HTTP-like status class (400, 404, 500, 503, ...).
    pub code: u16,
    /// The JetStream error code clients match on (10059 = stream not found). Omitted
    /// when zero, as in Go.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub err_code: u16,
    /// Human readable text, placeholders already substituted. Omitted when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

fn is_zero(v: &u16) -> bool {
    *v == 0
}

impl ApiError {
    /// The error for `id` with its description template used verbatim (for entries
    /// without placeholders this is exactly what the generated constructor returns).
    pub fn from_id(id: ErrorId) -> ApiError {
        ApiError {
            code: id.code(),
            err_code: id.err_code(),
            description: id.template().to_string(),
        }
    }

    /// The error for `id` with `{tag}` placeholders replaced by the given values in one
    /// left-to-right pass (Go `strings.NewReplacer` semantics). Tags not listed stay as
    /// they are.
    pub fn from_template(id: ErrorId, args: &[(&str, &dyn fmt::Display)]) -> ApiError {
        ApiError {
            code: id.code(),
            err_code: id.err_code(),
            description: substitute(id.template(), args),
        }
    }

    /// Which table entry this is, if `err_code` is a known one.
    pub fn id(&self) -> Option<ErrorId> {
        ErrorId::from_err_code(self.err_code)
    }

    /// Whether this error is the table entry `id` (nats-server's `IsNatsErr`).
    pub fn is(&self, id: ErrorId) -> bool {
        self.err_code == id.err_code()
    }

    /// Appends `" (<detail>)"` to the description, keeping `code` and `err_code`. For
    /// naming the limit, the usage or the offending request in our own errors.
    #[must_use]
    pub fn with_detail(mut self, detail: impl fmt::Display) -> ApiError {
        use fmt::Write as _;
        let _ = write!(self.description, " ({detail})");
        self
    }

    /// Replaces the description, keeping `code` and `err_code`.
    #[must_use]
    pub fn with_description(mut self, description: impl Into<String>) -> ApiError {
        self.description = description.into();
        self
    }
}

impl From<ErrorId> for ApiError {
    fn from(id: ErrorId) -> ApiError {
        ApiError::from_id(id)
    }
}

/// Formats as Go's `ApiError.Error()`: `"<description> (<err_code>)"`.
impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.description, self.err_code)
    }
}

impl std::error::Error for ApiError {}

/// Replaces `{tag}` occurrences in one pass; substituted text is not rescanned.
fn substitute(template: &str, args: &[(&str, &dyn fmt::Display)]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let tail = &rest[open..];
        let hit = args.iter().find_map(|(tag, value)| {
            let inner = tail.strip_prefix('{')?.strip_prefix(*tag)?;
            inner.strip_prefix('}').map(|after| (value, after))
        });
        match hit {
            Some((value, after)) => {
                use fmt::Write as _;
                let _ = write!(out, "{value}");
                rest = after;
            }
            None => {
                out.push('{');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}
