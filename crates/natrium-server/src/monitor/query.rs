//! Query-string decoding with nats-server's rules and error texts.
//!
//! nats-server reads parameters with `r.URL.Query().Get(name)` and converts them with
//! `strconv`; a bad value is answered with HTTP 400 and a `text/plain` body such as
//! `Error decoding uint64 for 'cid': strconv.ParseUint: parsing "abc": invalid syntax`.
//! Scripts match on those texts, so [`QueryError`] renders them verbatim, and the
//! parsers accept exactly what Go's accept (e.g. `t`/`TRUE`/`1` for booleans, a sign for
//! `int` but not for `uint64`).

use super::format::go_quote;

/// Why a query parameter could not be decoded. `Display` is the HTTP 400 body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// Not a Go `strconv.ParseBool` value.
    #[error("Error decoding boolean for '{param}': strconv.ParseBool: parsing {}: invalid syntax", go_quote(.value))]
    Bool {
        /// Parameter name.
        param: &'static str,
        /// The value given.
        value: String,
    },
    /// Not an unsigned 64-bit decimal.
    #[error("Error decoding uint64 for '{param}': strconv.ParseUint: parsing {}: {}", go_quote(.value), .kind)]
    Uint64 {
        /// Parameter name.
        param: &'static str,
        /// The value given.
        value: String,
        /// Syntax or range.
        kind: NumErrorKind,
    },
    /// Not a signed decimal that fits an `int`.
    #[error("Error decoding int for '{param}': strconv.Atoi: parsing {}: {}", go_quote(.value), .kind)]
    Int {
        /// Parameter name.
        param: &'static str,
        /// The value given.
        value: String,
        /// Syntax or range.
        kind: NumErrorKind,
    },
    /// `state` is not `open`, `closed`, `any` or `all`.
    #[error("Error decoding state for {0}")]
    State(String),
}

/// The two failure kinds of Go's `strconv` number parsers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NumErrorKind {
    /// Not a number at all.
    #[error("invalid syntax")]
    Syntax,
    /// A number, but too large.
    #[error("value out of range")]
    Range,
}

/// Which connections `/connz` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConnState {
    /// Open connections (the default).
    #[default]
    Open,
    /// Recently closed connections.
    Closed,
    /// Both (`any` or `all`).
    All,
}

/// A parsed query string: decoded `(key, value)` pairs in order.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// The pairs, in the order given.
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses a raw query string like Go's `url.ParseQuery`: pairs split on `&`, key and
    /// value on the first `=`, `+` is a space, `%XX` is decoded. Pairs Go rejects (with a
    /// `;`, or a bad `%` escape) are dropped, as `r.URL.Query()` drops them.
    pub fn parse(raw: &str) -> Query {
        let mut pairs = Vec::new();
        for part in raw.split('&') {
            if part.is_empty() || part.contains(';') {
                continue;
            }
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            if let (Some(k), Some(v)) = (unescape(k, true), unescape(v, true)) {
                pairs.push((k, v));
            }
        }
        Query { pairs }
    }

    /// The first value of `key`, or `""` (Go's `Values.Get`).
    pub fn get(&self, key: &str) -> &str {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    }

    /// A boolean parameter (`decodeBool`): empty is `false`.
    pub fn bool(&self, param: &'static str) -> Result<bool, QueryError> {
        let v = self.get(param);
        if v.is_empty() {
            return Ok(false);
        }
        parse_bool(v).ok_or_else(|| QueryError::Bool {
            param,
            value: v.to_string(),
        })
    }

    /// A `uint64` parameter (`decodeUint64`): empty is 0.
    pub fn uint64(&self, param: &'static str) -> Result<u64, QueryError> {
        let v = self.get(param);
        if v.is_empty() {
            return Ok(0);
        }
        parse_uint(v).map_err(|kind| QueryError::Uint64 {
            param,
            value: v.to_string(),
            kind,
        })
    }

    /// An `int` parameter (`decodeInt`): empty is 0.
    pub fn int(&self, param: &'static str) -> Result<i64, QueryError> {
        let v = self.get(param);
        if v.is_empty() {
            return Ok(0);
        }
        parse_int(v).map_err(|kind| QueryError::Int {
            param,
            value: v.to_string(),
            kind,
        })
    }

    /// `state` for `/connz` (`decodeState`), case-insensitive.
    pub fn state(&self) -> Result<ConnState, QueryError> {
        let v = self.get("state");
        match v.to_ascii_lowercase().as_str() {
            "" | "open" => Ok(ConnState::Open),
            "closed" => Ok(ConnState::Closed),
            "any" | "all" => Ok(ConnState::All),
            _ => Err(QueryError::State(v.to_string())),
        }
    }

    /// `subs` for `/connz` (`decodeSubs`): `detail` (any case) selects details, otherwise
    /// a boolean. Returns `(subs, detail)`.
    pub fn subs(&self) -> Result<(bool, bool), QueryError> {
        if self.get("subs").eq_ignore_ascii_case("detail") {
            return Ok((false, true));
        }
        Ok((self.bool("subs")?, false))
    }
}

/// Percent-decoding as Go's `url.QueryUnescape` (`plus` turns `+` into a space).
/// `None` for a malformed escape.
pub fn unescape(s: &str, plus: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'%' => {
                let hi = b.get(i + 1).and_then(|h| (*h as char).to_digit(16))?;
                let lo = b.get(i + 2).and_then(|h| (*h as char).to_digit(16))?;
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Go's `strconv.ParseBool`.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.ParseUint(s, 10, 64)`: digits only.
fn parse_uint(s: &str) -> Result<u64, NumErrorKind> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NumErrorKind::Syntax);
    }
    s.parse::<u64>().map_err(|_| NumErrorKind::Range)
}

/// Go's `strconv.Atoi` on a 64-bit platform: optional sign, then digits.
fn parse_int(s: &str) -> Result<i64, NumErrorKind> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NumErrorKind::Syntax);
    }
    s.parse::<i64>().map_err(|_| NumErrorKind::Range)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_url_parse_query() {
        let q = Query::parse("a=1&b=x+y&c=%24G&a=2&bad=%zz&semi=1;x=2&flag");
        assert_eq!(q.get("a"), "1");
        assert_eq!(q.get("b"), "x y");
        assert_eq!(q.get("c"), "$G");
        assert_eq!(q.get("bad"), "");
        assert_eq!(q.get("semi"), "");
        assert_eq!(q.get("flag"), "");
        assert_eq!(q.get("missing"), "");
    }

    #[test]
    fn errors_render_like_nats_server() {
        let q = Query::parse(
            "cid=abc&auth=maybe&limit=1.5&offset=99999999999999999999&state=x&big=18446744073709551616",
        );
        assert_eq!(
            q.uint64("cid").unwrap_err().to_string(),
            "Error decoding uint64 for 'cid': strconv.ParseUint: parsing \"abc\": invalid syntax"
        );
        assert_eq!(
            q.uint64("big").unwrap_err().to_string(),
            "Error decoding uint64 for 'big': strconv.ParseUint: parsing \"18446744073709551616\": value out of range"
        );
        assert_eq!(
            q.bool("auth").unwrap_err().to_string(),
            "Error decoding boolean for 'auth': strconv.ParseBool: parsing \"maybe\": invalid syntax"
        );
        assert_eq!(
            q.int("limit").unwrap_err().to_string(),
            "Error decoding int for 'limit': strconv.Atoi: parsing \"1.5\": invalid syntax"
        );
        assert_eq!(
            q.int("offset").unwrap_err().to_string(),
            "Error decoding int for 'offset': strconv.Atoi: parsing \"99999999999999999999\": value out of range"
        );
        assert_eq!(
            q.state().unwrap_err().to_string(),
            "Error decoding state for x"
        );
    }

    #[test]
    fn accepts_go_forms() {
        let q = Query::parse("a=T&b=0&c=-3&d=%2B4&e=-1&subs=DETAIL&state=ALL");
        assert_eq!(q.bool("a"), Ok(true));
        assert_eq!(q.bool("b"), Ok(false));
        assert_eq!(q.bool("none"), Ok(false));
        assert_eq!(q.int("c"), Ok(-3));
        assert_eq!(q.int("d"), Ok(4));
        assert!(q.uint64("e").is_err());
        assert_eq!(q.subs(), Ok((false, true)));
        assert_eq!(q.state(), Ok(ConnState::All));
    }
}
