//! Decoding request bodies the way nats-server's Go decoder does, errors included.
//!
//! Why not plain serde: a bad request body is answered with error 10025
//! `invalid JSON: <Go error text>`, and that text is part of the observable API (tools
//! print it, tests compare it). nats-server 2.15.1 decodes requests with a
//! `json.Decoder` that rejects unknown fields and reads values until EOF, so:
//!
//! * several concatenated JSON values are all applied, later ones merged into earlier
//!   ones (`{"name":"X"} {"max_msgs":5}` creates X with `max_msgs` 5);
//! * duplicate keys merge too: objects field by field, maps key by key, slice elements
//!   by index; `null` resets pointers, slices and maps and leaves everything else alone;
//! * keys match field names case-insensitively (`"MAX_MSGS"` is `max_msgs`);
//! * a syntax error anywhere in a value wins over type errors in it and is reported as
//!   `invalid character 'x' looking for beginning of value at offset 13`; a value cut
//!   short is `unexpected EOF`;
//! * otherwise the first problem in document order wins: `json: unknown field "bogus"`,
//!   `json: cannot unmarshal string into Go struct field StreamConfigRequest.max_msgs of
//!   type int64` (the path starts at the request's Go type; the words "Go struct field"
//!   are dropped when the path ends in an array index), or the text of a custom
//!   unmarshaler (`can not unmarshal "\"x\""`, `unknown consumer action: "x"`, Go time
//!   parse errors).
//!
//! All of that was checked against the 2.15.1 binary. Some handlers use plain
//! `json.Unmarshal` instead (unknown fields ignored, one value only, errors without
//! offsets: `unexpected end of JSON input`, `invalid character 'x' after top-level
//! value`); that is [`Mode::Unmarshal`].
//!
//! How: pass 1 validates one value's syntax with an iterative scanner (no recursion, so
//! hostile nesting cannot overflow the stack; depth is capped at 10000 like Go). Pass 2
//! walks the value along a static description of the Go type ([`GoStruct`]), building a
//! `serde_json::Value` with canonical keys and Go's merge semantics, which serde then
//! turns into the Rust type. The schemas live next to the types they describe; a unit
//! test checks each one against its serde field names.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::errors::ApiError;
use super::time::Timestamp;

/// How a body is decoded, matching the Go call nats-server makes for that endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `unmarshalRequest` with JetStream `strict: true` (the default): streaming decoder,
    /// unknown fields rejected, syntax errors carry `at offset N`.
    Strict,
    /// `unmarshalRequest` with `strict: false`: strict first, and if that fails the body
    /// is decoded again with [`Mode::Unmarshal`] rules (nats-server only logs a warning).
    /// nats-server's second pass starts from whatever the failed first pass had already
    /// set; ours starts fresh, which only differs for bodies that are invalid anyway.
    Lenient,
    /// Plain `json.Unmarshal`: exactly one value, unknown fields ignored.
    Unmarshal,
}

/// The Go error text of a failed decode (what follows `invalid JSON: `).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoJsonError(pub String);

impl std::fmt::Display for GoJsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GoJsonError {}

/// A Go integer type: its name in error texts and its range.
#[derive(Debug)]
pub struct GoInt {
    /// `int`, `int64`, `int32`, `time.Duration`.
    pub name: &'static str,
    /// Smallest accepted value.
    pub min: i64,
    /// Largest accepted value.
    pub max: i64,
}

/// Go `int` (64-bit).
pub static INT: GoInt = GoInt {
    name: "int",
    min: i64::MIN,
    max: i64::MAX,
};
/// Go `int64`.
pub static INT64: GoInt = GoInt {
    name: "int64",
    min: i64::MIN,
    max: i64::MAX,
};
/// Go `int32`.
pub static INT32: GoInt = GoInt {
    name: "int32",
    min: i32::MIN as i64,
    max: i32::MAX as i64,
};
/// Go `time.Duration` (int64 nanoseconds).
pub static DURATION: GoInt = GoInt {
    name: "time.Duration",
    min: i64::MIN,
    max: i64::MAX,
};

/// A Go type with a custom `UnmarshalJSON` (the policy enums). It receives the raw JSON
/// value (even `null`) and returns the canonical string or Go's error text.
#[derive(Debug)]
pub struct GoEnum {
    /// Go type name (`server.RetentionPolicy`).
    pub name: &'static str,
    /// A raw JSON value it accepts whose canonical form is not the zero value (for the
    /// schema self-test: omitempty must not drop it).
    pub sample: &'static str,
    /// The unmarshaler.
    pub parse: fn(&[u8]) -> Result<&'static str, String>,
}

/// The Go type of a field, as far as decoding needs to know it.
#[derive(Debug)]
pub enum GoType {
    /// `bool`.
    Bool,
    /// `string`.
    String,
    /// A signed integer type.
    Int(&'static GoInt),
    /// `uint64`.
    Uint64,
    /// `time.Time` (decoded by Go's RFC 3339 parser; `null` leaves it alone).
    Time,
    /// A type with its own unmarshaler.
    Enum(&'static GoEnum),
    /// `*T`: `null` resets it, anything else decodes into (or merges with) `T`.
    Ptr(&'static GoType),
    /// `[]T`.
    Slice(&'static GoType),
    /// `map[string]T`.
    Map(&'static GoType),
    /// A struct.
    Struct(&'static GoStruct),
}

/// A Go struct: its name and JSON fields (embedded structs' fields inlined).
#[derive(Debug)]
pub struct GoStruct {
    /// Type name without package (`StreamConfigRequest`); error paths start with it.
    pub name: &'static str,
    /// `(json name, type)` in declaration order.
    pub fields: &'static [(&'static str, GoType)],
}

/// A request type with the Go struct nats-server decodes it into.
pub trait GoRequest: DeserializeOwned {
    /// The Go struct (its name appears in type errors).
    const SCHEMA: &'static GoStruct;

    /// Decodes a request body like nats-server would; see [`decode`].
    fn decode(body: &[u8], mode: Mode) -> Result<Self, GoJsonError> {
        decode(body, Self::SCHEMA, mode)
    }

    /// [`GoRequest::decode`] with the failure already turned into the API error
    /// nats-server answers with (10025 `invalid JSON: <Go error>`).
    fn decode_request(body: &[u8], mode: Mode) -> Result<Self, ApiError> {
        Self::decode(body, mode).map_err(ApiError::invalid_json)
    }
}

/// Decodes `body` into `T` following `schema` with Go's rules for `mode`. An empty
/// (or all-whitespace) body is the zero value in the decoder modes and
/// `unexpected end of JSON input` in [`Mode::Unmarshal`].
pub fn decode<T: DeserializeOwned>(
    body: &[u8],
    schema: &'static GoStruct,
    mode: Mode,
) -> Result<T, GoJsonError> {
    let value = match mode {
        Mode::Strict => decode_stream(body, schema)?,
        Mode::Unmarshal => decode_unmarshal(body, schema)?,
        Mode::Lenient => match decode_stream(body, schema) {
            Ok(v) => v,
            Err(_) => decode_unmarshal(body, schema)?,
        },
    };
    serde_json::from_value(value).map_err(|e| GoJsonError(e.to_string()))
}

/// Decoder loop: every value in the body merged into one state.
fn decode_stream(body: &[u8], schema: &'static GoStruct) -> Result<Value, GoJsonError> {
    let root = GoType::Struct(schema);
    let mut state = Value::Object(Map::new());
    let mut pos = 0;
    loop {
        match scan_value(body, pos) {
            Ok(None) => break,
            Ok(Some((start, end))) => {
                let mut dec = Dec {
                    b: body,
                    root: schema.name,
                    strict: true,
                    path: Vec::new(),
                };
                dec.decode(&root, start, &mut state).map_err(GoJsonError)?;
                pos = end;
            }
            Err(Syntax::Eof) => return Err(GoJsonError("unexpected EOF".into())),
            Err(Syntax::Invalid { msg, offset }) => {
                return Err(GoJsonError(format!("{msg} at offset {offset}")));
            }
        }
    }
    if state.is_null() {
        state = Value::Object(Map::new());
    }
    Ok(state)
}

/// `json.Unmarshal`: exactly one value, unknown fields skipped.
fn decode_unmarshal(body: &[u8], schema: &'static GoStruct) -> Result<Value, GoJsonError> {
    let (start, end) = match scan_value(body, 0) {
        Ok(Some(span)) => span,
        Ok(None) | Err(Syntax::Eof) => {
            return Err(GoJsonError("unexpected end of JSON input".into()));
        }
        Err(Syntax::Invalid { msg, .. }) => return Err(GoJsonError(msg)),
    };
    let after = skip_ws(body, end);
    if after < body.len() {
        let (q, _) = quote_at(body, after);
        return Err(GoJsonError(format!(
            "invalid character {q} after top-level value"
        )));
    }
    let mut state = Value::Object(Map::new());
    let mut dec = Dec {
        b: body,
        root: schema.name,
        strict: false,
        path: Vec::new(),
    };
    dec.decode(&GoType::Struct(schema), start, &mut state)
        .map_err(GoJsonError)?;
    if state.is_null() {
        state = Value::Object(Map::new());
    }
    Ok(state)
}

// ---------------------------------------------------------------------------------------
// Pass 1: syntax.

/// Why a value is not valid JSON.
#[derive(Debug, PartialEq, Eq)]
enum Syntax {
    /// The input ended inside the value.
    Eof,
    /// Go's message and the offset just past the offending character.
    Invalid { msg: String, offset: usize },
}

/// Go's nesting limit.
const MAX_DEPTH: usize = 10_000;

fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_ws(b[i]) {
        i += 1;
    }
    i
}

/// One character at the start of `b` like Go's `utf8.DecodeRune`; `None` for an
/// invalid byte (length 1), which Go replaces with U+FFFD in strings.
fn decode_char(b: &[u8]) -> (Option<char>, usize) {
    let Some(&lead) = b.first() else {
        return (None, 0);
    };
    let width = match lead {
        0x00..=0x7f => 1,
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return (None, 1),
    };
    match b.get(..width).and_then(|s| std::str::from_utf8(s).ok()) {
        Some(s) => (s.chars().next(), width),
        None => (None, 1),
    }
}

/// The offending character at `b[i]` quoted for an error text: `'x'`, or `'\xff'` for
/// a byte that is not UTF-8.
fn quote_at(b: &[u8], i: usize) -> (String, usize) {
    match decode_char(&b[i..]) {
        (Some(c), n) => (quote_char(c), n),
        (None, n) => (format!("'\\x{:02x}'", b[i]), n.max(1)),
    }
}

fn invalid(b: &[u8], i: usize, context: &str) -> Syntax {
    let (q, n) = quote_at(b, i);
    Syntax::Invalid {
        msg: format!("invalid character {q} {context}"),
        offset: i + n,
    }
}

#[derive(Clone, Copy)]
enum Container {
    Object,
    Array,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    BeginValue,
    BeginValueOrEmpty,
    BeginKeyOrEmpty,
    BeginKey,
    AfterKey,
    EndValue,
}

/// Validates the next value at or after `start`. `Ok(None)` if only whitespace is left.
fn scan_value(b: &[u8], start: usize) -> Result<Option<(usize, usize)>, Syntax> {
    let first = skip_ws(b, start);
    if first >= b.len() {
        return Ok(None);
    }
    let mut stack: Vec<Container> = Vec::new();
    let mut state = State::BeginValue;
    let mut i = first;
    loop {
        match state {
            State::BeginValue | State::BeginValueOrEmpty => {
                i = skip_ws(b, i);
                let Some(&c) = b.get(i) else {
                    return Err(Syntax::Eof);
                };
                if state == State::BeginValueOrEmpty && c == b']' {
                    stack.pop();
                    i += 1;
                    state = State::EndValue;
                    continue;
                }
                match c {
                    b'{' | b'[' => {
                        if stack.len() >= MAX_DEPTH {
                            return Err(Syntax::Invalid {
                                msg: "exceeded max depth".into(),
                                offset: i + 1,
                            });
                        }
                        i += 1;
                        if c == b'{' {
                            stack.push(Container::Object);
                            state = State::BeginKeyOrEmpty;
                        } else {
                            stack.push(Container::Array);
                            state = State::BeginValueOrEmpty;
                        }
                    }
                    b'"' => {
                        i = scan_string(b, i)?;
                        state = State::EndValue;
                    }
                    b'-' | b'0'..=b'9' => {
                        i = scan_number(b, i)?;
                        state = State::EndValue;
                    }
                    b't' => {
                        i = scan_literal(b, i, b"true")?;
                        state = State::EndValue;
                    }
                    b'f' => {
                        i = scan_literal(b, i, b"false")?;
                        state = State::EndValue;
                    }
                    b'n' => {
                        i = scan_literal(b, i, b"null")?;
                        state = State::EndValue;
                    }
                    _ => return Err(invalid(b, i, "looking for beginning of value")),
                }
            }
            State::BeginKeyOrEmpty | State::BeginKey => {
                i = skip_ws(b, i);
                let Some(&c) = b.get(i) else {
                    return Err(Syntax::Eof);
                };
                if state == State::BeginKeyOrEmpty && c == b'}' {
                    stack.pop();
                    i += 1;
                    state = State::EndValue;
                } else if c == b'"' {
                    i = scan_string(b, i)?;
                    state = State::AfterKey;
                } else {
                    return Err(invalid(b, i, "looking for beginning of object key string"));
                }
            }
            State::AfterKey => {
                i = skip_ws(b, i);
                let Some(&c) = b.get(i) else {
                    return Err(Syntax::Eof);
                };
                if c != b':' {
                    return Err(invalid(b, i, "after object key"));
                }
                i += 1;
                state = State::BeginValue;
            }
            State::EndValue => {
                let Some(&top) = stack.last() else {
                    return Ok(Some((first, i)));
                };
                i = skip_ws(b, i);
                let Some(&c) = b.get(i) else {
                    return Err(Syntax::Eof);
                };
                match (top, c) {
                    (Container::Object, b',') => {
                        i += 1;
                        state = State::BeginKey;
                    }
                    (Container::Array, b',') => {
                        i += 1;
                        state = State::BeginValue;
                    }
                    (Container::Object, b'}') | (Container::Array, b']') => {
                        stack.pop();
                        i += 1;
                    }
                    (Container::Object, _) => {
                        return Err(invalid(b, i, "after object key:value pair"));
                    }
                    (Container::Array, _) => return Err(invalid(b, i, "after array element")),
                }
            }
        }
    }
}

/// `b[i]` is `"`; returns the index after the closing quote.
fn scan_string(b: &[u8], i: usize) -> Result<usize, Syntax> {
    let mut j = i + 1;
    loop {
        let Some(&c) = b.get(j) else {
            return Err(Syntax::Eof);
        };
        match c {
            b'"' => return Ok(j + 1),
            b'\\' => {
                let Some(&e) = b.get(j + 1) else {
                    return Err(Syntax::Eof);
                };
                match e {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => j += 2,
                    b'u' => {
                        for k in 0..4 {
                            let Some(&h) = b.get(j + 2 + k) else {
                                return Err(Syntax::Eof);
                            };
                            if !h.is_ascii_hexdigit() {
                                let end = (j + 6).min(b.len());
                                return Err(bad_escape(b, j, end));
                            }
                        }
                        j += 6;
                    }
                    _ => {
                        let (_, n) = decode_char(&b[j + 1..]);
                        return Err(bad_escape(b, j, j + 1 + n.max(1)));
                    }
                }
            }
            0x00..=0x1f => return Err(invalid(b, j, "in string")),
            _ => j += 1,
        }
    }
}

fn bad_escape(b: &[u8], start: usize, end: usize) -> Syntax {
    Syntax::Invalid {
        msg: format!(
            "invalid escape sequence `{}` in string",
            String::from_utf8_lossy(&b[start..end])
        ),
        offset: end,
    }
}

fn scan_digits(b: &[u8], mut j: usize) -> usize {
    while b.get(j).is_some_and(u8::is_ascii_digit) {
        j += 1;
    }
    j
}

/// Requires a digit at `j` (the number cannot end there).
fn need_digit(b: &[u8], j: usize) -> Result<(), Syntax> {
    match b.get(j) {
        None => Err(Syntax::Eof),
        Some(c) if c.is_ascii_digit() => Ok(()),
        Some(_) => Err(invalid(b, j, "in numeric literal")),
    }
}

/// Returns the index after the number starting at `i`.
fn scan_number(b: &[u8], i: usize) -> Result<usize, Syntax> {
    let mut j = i;
    if b[j] == b'-' {
        j += 1;
        need_digit(b, j)?;
    }
    if b[j] == b'0' {
        j += 1;
    } else {
        j = scan_digits(b, j);
    }
    if b.get(j) == Some(&b'.') {
        j += 1;
        need_digit(b, j)?;
        j = scan_digits(b, j);
    }
    if matches!(b.get(j), Some(b'e' | b'E')) {
        j += 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        need_digit(b, j)?;
        j = scan_digits(b, j);
    }
    Ok(j)
}

fn scan_literal(b: &[u8], i: usize, word: &[u8]) -> Result<usize, Syntax> {
    for (k, &want) in word.iter().enumerate().skip(1) {
        match b.get(i + k) {
            None => return Err(Syntax::Eof),
            Some(&c) if c == want => {}
            Some(_) => {
                return Err(invalid(
                    b,
                    i + k,
                    &format!(
                        "in literal {} (expecting {})",
                        String::from_utf8_lossy(word),
                        quote_char(char::from(want))
                    ),
                ));
            }
        }
    }
    Ok(i + word.len())
}

/// Skips a value already validated by [`scan_value`].
fn skip_value(b: &[u8], i: usize) -> usize {
    let i = skip_ws(b, i);
    match scan_value(b, i) {
        Ok(Some((_, end))) => end,
        _ => b.len(),
    }
}

// ---------------------------------------------------------------------------------------
// Go's quoting, used in error texts.

/// Go `unicode.IsPrint`, closely enough for error messages.
fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(
        c as u32,
        0xad | 0x600..=0x605
            | 0x61c
            | 0x6dd
            | 0x70f
            | 0x180e
            | 0x200b..=0x200f
            | 0x202a..=0x202e
            | 0x2060..=0x206f
            | 0xfeff
            | 0xfff9..=0xfffb
            | 0xe000..=0xf8ff
            | 0xf0000..
    )
}

fn push_quoted_char(out: &mut String, c: char) {
    use std::fmt::Write as _;
    match c {
        '\\' => out.push_str("\\\\"),
        '\u{7}' => out.push_str("\\a"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{b}' => out.push_str("\\v"),
        c if is_print(c) => out.push(c),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if (c as u32) < 0x10000 => {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\U{:08x}", c as u32);
        }
    }
}

/// Go `strconv.Quote` (`%q` of a string).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' {
            out.push_str("\\\"");
        } else {
            push_quoted_char(&mut out, c);
        }
    }
    out.push('"');
    out
}

/// Go `encoding/json`'s `quoteChar`: `'x'`, `'"'`, `'\''`, `'\n'`.
fn quote_char(c: char) -> String {
    match c {
        '\'' => "'\\''".to_string(),
        '"' => "'\"'".to_string(),
        c => {
            let mut s = String::from("'");
            push_quoted_char(&mut s, c);
            s.push('\'');
            s
        }
    }
}

// ---------------------------------------------------------------------------------------
// Pass 2: typed walk.

/// One step of the error path.
enum PathTok {
    Name(String),
    Index(usize),
}

struct Dec<'a> {
    b: &'a [u8],
    root: &'static str,
    strict: bool,
    path: Vec<PathTok>,
}

/// The Go spelling of a type in error texts.
fn type_name(t: &GoType) -> String {
    match t {
        GoType::Bool => "bool".into(),
        GoType::String => "string".into(),
        GoType::Int(i) => i.name.into(),
        GoType::Uint64 => "uint64".into(),
        GoType::Time => "time.Time".into(),
        GoType::Enum(e) => e.name.into(),
        GoType::Ptr(t) => format!("*{}", type_name(t)),
        GoType::Slice(t) => format!("[]{}", type_name(t)),
        GoType::Map(t) => format!("map[string]{}", type_name(t)),
        GoType::Struct(s) => format!("server.{}", s.name),
    }
}

/// The value Go leaves in a fresh slice element or map entry decoded from `null`.
fn zero_value(t: &GoType) -> Value {
    match t {
        GoType::Bool => Value::Bool(false),
        GoType::String => Value::String(String::new()),
        GoType::Int(_) | GoType::Uint64 => Value::from(0),
        GoType::Time => Value::String(Timestamp::ZERO.to_rfc3339_nano()),
        // Our Rust types have no nil element; an empty struct behaves the same in every
        // check nats-server makes on these (e.g. a nil source fails the name check).
        GoType::Ptr(inner) => zero_value(inner),
        GoType::Struct(_) => Value::Object(Map::new()),
        GoType::Enum(_) | GoType::Slice(_) | GoType::Map(_) => Value::Null,
    }
}

/// Field lookup: exact name first, then Go's case-insensitive match.
fn find_field(s: &'static GoStruct, key: &str) -> Option<&'static (&'static str, GoType)> {
    s.fields
        .iter()
        .find(|(name, _)| *name == key)
        .or_else(|| s.fields.iter().find(|(name, _)| fold_eq(key, name)))
}

/// Case-insensitive comparison of a JSON key with an ASCII field name, folding the two
/// non-ASCII letters Unicode folds to ASCII (long s, Kelvin sign).
fn fold_eq(key: &str, name: &str) -> bool {
    let mut k = key.chars().map(|c| match c {
        '\u{17f}' => 's',
        '\u{212a}' => 'k',
        c => c.to_ascii_lowercase(),
    });
    let mut n = name.chars().map(|c| c.to_ascii_lowercase());
    loop {
        match (k.next(), n.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

/// Decodes a validated JSON string starting at `b[i] == '"'`; returns it and the index
/// after it. Invalid UTF-8 and lone surrogates become U+FFFD, as in Go.
fn unquote(b: &[u8], i: usize) -> (String, usize) {
    let mut out = String::new();
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'"' => return (out, j + 1),
            b'\\' => {
                let e = b.get(j + 1).copied().unwrap_or(b'\\');
                j += 2;
                match e {
                    b'b' => out.push('\u{8}'),
                    b'f' => out.push('\u{c}'),
                    b'n' => out.push('\n'),
                    b'r' => out.push('\r'),
                    b't' => out.push('\t'),
                    b'u' => {
                        let hi = hex4(b, j);
                        j += 4;
                        if (0xd800..0xdc00).contains(&hi)
                            && b.get(j) == Some(&b'\\')
                            && b.get(j + 1) == Some(&b'u')
                        {
                            let lo = hex4(b, j + 2);
                            if (0xdc00..0xe000).contains(&lo) {
                                let c = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
                                out.push(char::from_u32(c).unwrap_or('\u{fffd}'));
                                j += 6;
                                continue;
                            }
                        }
                        out.push(char::from_u32(hi).unwrap_or('\u{fffd}'));
                    }
                    other => out.push(char::from(other)),
                }
            }
            _ => {
                let (c, n) = decode_char(&b[j..]);
                out.push(c.unwrap_or('\u{fffd}'));
                j += n.max(1);
            }
        }
    }
    (out, j)
}

fn hex4(b: &[u8], j: usize) -> u32 {
    b.get(j..j + 4)
        .and_then(|h| std::str::from_utf8(h).ok())
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .unwrap_or(0xfffd)
}

impl Dec<'_> {
    /// The kind word Go uses for the JSON value at `i` in type errors.
    fn kind(&self, i: usize) -> &'static str {
        match self.b[i] {
            b'{' => "object",
            b'[' => "array",
            b'"' => "string",
            b't' | b'f' => "bool",
            _ => "number",
        }
    }

    fn type_error(&self, kind: &str, t: &GoType) -> String {
        let t = match t {
            GoType::Ptr(inner) => inner,
            t => t,
        };
        let tname = type_name(t);
        if self.path.is_empty() {
            return format!("json: cannot unmarshal {kind} into Go value of type {tname}");
        }
        let mut path = String::new();
        for (n, tok) in self.path.iter().enumerate() {
            if n > 0 {
                path.push('.');
            }
            match tok {
                PathTok::Name(s) => path.push_str(&s.replace('~', "~0").replace('/', "~1")),
                PathTok::Index(i) => path.push_str(&i.to_string()),
            }
        }
        let ends_in_index = match self.path.last() {
            Some(PathTok::Index(_)) => true,
            Some(PathTok::Name(s)) => !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()),
            None => false,
        };
        let field = if ends_in_index {
            ""
        } else {
            "Go struct field "
        };
        format!(
            "json: cannot unmarshal {kind} into {field}{}.{path} of type {tname}",
            self.root
        )
    }

    /// Decodes the value at `i` (already validated) as `t` into `slot`, merging with what
    /// `slot` holds. `Value::Null` in `slot` means "absent / nil".
    fn decode(&mut self, t: &GoType, i: usize, slot: &mut Value) -> Result<usize, String> {
        let i = skip_ws(self.b, i);
        let c = self.b[i];
        let end = skip_value(self.b, i);
        if c == b'n' {
            return match t {
                GoType::Ptr(_) | GoType::Slice(_) | GoType::Map(_) => {
                    *slot = Value::Null;
                    Ok(end)
                }
                GoType::Enum(e) => (e.parse)(b"null").map(|v| {
                    *slot = Value::String(v.to_string());
                    end
                }),
                _ => Ok(end),
            };
        }
        match t {
            GoType::Bool => match c {
                b't' => *slot = Value::Bool(true),
                b'f' => *slot = Value::Bool(false),
                _ => return Err(self.type_error(self.kind(i), t)),
            },
            GoType::String => {
                if c != b'"' {
                    return Err(self.type_error(self.kind(i), t));
                }
                *slot = Value::String(unquote(self.b, i).0);
            }
            GoType::Int(int) => {
                if !matches!(c, b'-' | b'0'..=b'9') {
                    return Err(self.type_error(self.kind(i), t));
                }
                let text = String::from_utf8_lossy(&self.b[i..end]);
                match text.parse::<i64>() {
                    Ok(v) if v >= int.min && v <= int.max => *slot = Value::from(v),
                    _ => return Err(self.type_error(&format!("number {text}"), t)),
                }
            }
            GoType::Uint64 => {
                if !matches!(c, b'-' | b'0'..=b'9') {
                    return Err(self.type_error(self.kind(i), t));
                }
                let text = String::from_utf8_lossy(&self.b[i..end]);
                match text.parse::<u64>() {
                    Ok(v) => *slot = Value::from(v),
                    Err(_) => return Err(self.type_error(&format!("number {text}"), t)),
                }
            }
            GoType::Time => {
                if c != b'"' {
                    return Err(self.type_error(self.kind(i), t));
                }
                let s = unquote(self.b, i).0;
                Timestamp::parse_rfc3339(&s)?;
                *slot = Value::String(s);
            }
            GoType::Enum(e) => {
                let v = (e.parse)(&self.b[i..end])?;
                *slot = Value::String(v.to_string());
            }
            GoType::Ptr(inner) => return self.decode(inner, i, slot),
            GoType::Slice(elem) => {
                if c != b'[' {
                    return Err(self.type_error(self.kind(i), t));
                }
                let old = match std::mem::take(slot) {
                    Value::Array(a) => a,
                    _ => Vec::new(),
                };
                let mut new = Vec::new();
                let mut j = skip_ws(self.b, i + 1);
                let mut idx = 0;
                while self.b[j] != b']' {
                    let mut e = old.get(idx).cloned().unwrap_or(Value::Null);
                    self.path.push(PathTok::Index(idx));
                    j = self.decode(elem, j, &mut e)?;
                    self.path.pop();
                    if e.is_null() {
                        e = zero_value(elem);
                    }
                    new.push(e);
                    idx += 1;
                    j = skip_ws(self.b, j);
                    if self.b[j] == b',' {
                        j = skip_ws(self.b, j + 1);
                    }
                }
                *slot = Value::Array(new);
            }
            GoType::Map(val) => {
                if c != b'{' {
                    return Err(self.type_error(self.kind(i), t));
                }
                let mut map = match std::mem::take(slot) {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                let mut j = skip_ws(self.b, i + 1);
                while self.b[j] != b'}' {
                    let (key, after) = unquote(self.b, j);
                    j = skip_ws(self.b, after) + 1; // ':'
                    let mut e = map.remove(&key).unwrap_or(Value::Null);
                    self.path.push(PathTok::Name(key.clone()));
                    j = self.decode(val, j, &mut e)?;
                    self.path.pop();
                    if e.is_null() {
                        e = zero_value(val);
                    }
                    if !e.is_null() {
                        map.insert(key, e);
                    }
                    j = skip_ws(self.b, j);
                    if self.b[j] == b',' {
                        j = skip_ws(self.b, j + 1);
                    }
                }
                *slot = Value::Object(map);
            }
            GoType::Struct(s) => {
                if c != b'{' {
                    return Err(self.type_error(self.kind(i), t));
                }
                let mut obj = match std::mem::take(slot) {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                let mut j = skip_ws(self.b, i + 1);
                while self.b[j] != b'}' {
                    let (key, after) = unquote(self.b, j);
                    j = skip_ws(self.b, after) + 1; // ':'
                    match find_field(s, &key) {
                        None if self.strict => {
                            return Err(format!("json: unknown field {}", go_quote(&key)));
                        }
                        None => j = skip_value(self.b, j),
                        Some((name, ft)) => {
                            let mut e = obj.remove(*name).unwrap_or(Value::Null);
                            // Go reports the key as written (`MAX_MSGS`), not the field name.
                            self.path.push(PathTok::Name(key.clone()));
                            j = self.decode(ft, j, &mut e)?;
                            self.path.pop();
                            if !e.is_null() {
                                obj.insert((*name).to_string(), e);
                            }
                        }
                    }
                    j = skip_ws(self.b, j);
                    if self.b[j] == b',' {
                        j = skip_ws(self.b, j + 1);
                    }
                }
                *slot = Value::Object(obj);
            }
        }
        Ok(end)
    }
}

// ---------------------------------------------------------------------------------------
// The policy enums' unmarshalers (nats-server `store.go`, `stream.go`, `consumer.go`,
// `filestore.go`).

/// `fmt.Errorf("can not unmarshal %q", data)`.
fn cannot_unmarshal(raw: &[u8]) -> String {
    format!(
        "can not unmarshal {}",
        go_quote(&String::from_utf8_lossy(raw))
    )
}

fn raw_match(raw: &[u8], table: &[(&str, &'static str)]) -> Option<&'static str> {
    table
        .iter()
        .find(|(r, _)| r.as_bytes() == raw)
        .map(|(_, c)| *c)
}

fn parse_retention(raw: &[u8]) -> Result<&'static str, String> {
    raw_match(
        raw,
        &[
            ("\"limits\"", "limits"),
            ("\"interest\"", "interest"),
            ("\"workqueue\"", "workqueue"),
        ],
    )
    .ok_or_else(|| cannot_unmarshal(raw))
}

fn parse_discard(raw: &[u8]) -> Result<&'static str, String> {
    // `strings.ToLower(string(data))`: the only case-insensitive one.
    let lower = raw.to_ascii_lowercase();
    raw_match(&lower, &[("\"old\"", "old"), ("\"new\"", "new")])
        .ok_or_else(|| cannot_unmarshal(raw))
}

fn parse_storage(raw: &[u8]) -> Result<&'static str, String> {
    raw_match(raw, &[("\"file\"", "file"), ("\"memory\"", "memory")])
        .ok_or_else(|| cannot_unmarshal(raw))
}

fn parse_compression(raw: &[u8]) -> Result<&'static str, String> {
    // Go: `json.Unmarshal(b, &str)` then a switch, so escapes work and `null` is "".
    let s = match raw.first() {
        Some(b'"') => unquote(raw, 0).0,
        Some(b'n') => String::new(),
        Some(b'{') => {
            return Err("json: cannot unmarshal object into Go value of type string".into());
        }
        Some(b'[') => {
            return Err("json: cannot unmarshal array into Go value of type string".into());
        }
        Some(b't' | b'f') => {
            return Err("json: cannot unmarshal bool into Go value of type string".into());
        }
        _ => return Err("json: cannot unmarshal number into Go value of type string".into()),
    };
    match s.as_str() {
        "s2" => Ok("s2"),
        "none" => Ok("none"),
        _ => Err("unknown compression algorithm".into()),
    }
}

fn parse_persist_mode(raw: &[u8]) -> Result<&'static str, String> {
    raw_match(
        raw,
        &[
            ("\"default\"", "default"),
            ("\"\"", "default"),
            ("\"async\"", "async"),
        ],
    )
    .ok_or_else(|| cannot_unmarshal(raw))
}

fn parse_deliver(raw: &[u8]) -> Result<&'static str, String> {
    raw_match(
        raw,
        &[
            ("\"all\"", "all"),
            ("\"undefined\"", "all"),
            ("\"last\"", "last"),
            ("\"last_per_subject\"", "last_per_subject"),
            ("\"new\"", "new"),
            ("\"by_start_sequence\"", "by_start_sequence"),
            ("\"by_start_time\"", "by_start_time"),
        ],
    )
    .ok_or_else(|| cannot_unmarshal(raw))
}

fn parse_ack(raw: &[u8]) -> Result<&'static str, String> {
    raw_match(
        raw,
        &[
            ("\"none\"", "none"),
            ("\"all\"", "all"),
            ("\"explicit\"", "explicit"),
            ("\"flow_control\"", "flow_control"),
        ],
    )
    .ok_or_else(|| cannot_unmarshal(raw))
}

fn parse_replay(raw: &[u8]) -> Result<&'static str, String> {
    raw_match(
        raw,
        &[("\"instant\"", "instant"), ("\"original\"", "original")],
    )
    .ok_or_else(|| cannot_unmarshal(raw))
}

fn parse_priority(raw: &[u8]) -> Result<&'static str, String> {
    raw_match(
        raw,
        &[
            ("\"none\"", "none"),
            ("\"overflow\"", "overflow"),
            ("\"pinned_client\"", "pinned_client"),
            ("\"prioritized\"", "prioritized"),
        ],
    )
    .ok_or_else(|| format!("unknown priority policy: {}", String::from_utf8_lossy(raw)))
}

fn parse_action(raw: &[u8]) -> Result<&'static str, String> {
    raw_match(
        raw,
        &[
            ("\"create\"", "create"),
            ("\"update\"", "update"),
            ("\"\"", ""),
        ],
    )
    .ok_or_else(|| format!("unknown consumer action: {}", String::from_utf8_lossy(raw)))
}

/// `server.RetentionPolicy`.
pub static RETENTION: GoEnum = GoEnum {
    name: "server.RetentionPolicy",
    sample: "\"interest\"",
    parse: parse_retention,
};
/// `server.DiscardPolicy`.
pub static DISCARD: GoEnum = GoEnum {
    name: "server.DiscardPolicy",
    sample: "\"new\"",
    parse: parse_discard,
};
/// `server.StorageType`.
pub static STORAGE: GoEnum = GoEnum {
    name: "server.StorageType",
    sample: "\"memory\"",
    parse: parse_storage,
};
/// `server.StoreCompression`.
pub static COMPRESSION: GoEnum = GoEnum {
    name: "server.StoreCompression",
    sample: "\"s2\"",
    parse: parse_compression,
};
/// `server.PersistModeType`.
pub static PERSIST_MODE: GoEnum = GoEnum {
    name: "server.PersistModeType",
    sample: "\"async\"",
    parse: parse_persist_mode,
};
/// `server.DeliverPolicy`.
pub static DELIVER_POLICY: GoEnum = GoEnum {
    name: "server.DeliverPolicy",
    sample: "\"last\"",
    parse: parse_deliver,
};
/// `server.AckPolicy`.
pub static ACK_POLICY: GoEnum = GoEnum {
    name: "server.AckPolicy",
    sample: "\"explicit\"",
    parse: parse_ack,
};
/// `server.ReplayPolicy`.
pub static REPLAY_POLICY: GoEnum = GoEnum {
    name: "server.ReplayPolicy",
    sample: "\"original\"",
    parse: parse_replay,
};
/// `server.PriorityPolicy`.
pub static PRIORITY_POLICY: GoEnum = GoEnum {
    name: "server.PriorityPolicy",
    sample: "\"pinned_client\"",
    parse: parse_priority,
};
/// `server.ConsumerAction`.
pub static CONSUMER_ACTION: GoEnum = GoEnum {
    name: "server.ConsumerAction",
    sample: "\"update\"",
    parse: parse_action,
};

/// A JSON value with every field of `schema` set to a non-zero sample, so that nothing
/// is dropped by omitempty. Used to check schemas against the serde types.
pub fn sample_value(schema: &'static GoStruct) -> Value {
    sample_of(&GoType::Struct(schema))
}

fn sample_of(t: &GoType) -> Value {
    match t {
        GoType::Bool => Value::Bool(true),
        GoType::String => Value::String("x".into()),
        GoType::Int(_) | GoType::Uint64 => Value::from(7),
        GoType::Time => Value::String("2024-02-03T04:05:06.000000007Z".into()),
        GoType::Enum(e) => serde_json::from_str(e.sample).unwrap_or(Value::Null),
        GoType::Ptr(inner) => sample_of(inner),
        GoType::Slice(elem) => Value::Array(vec![sample_of(elem)]),
        GoType::Map(val) => {
            let mut m = Map::new();
            m.insert("k".into(), sample_of(val));
            Value::Object(m)
        }
        GoType::Struct(s) => {
            let mut m = Map::new();
            for (name, ft) in s.fields {
                m.insert((*name).to_string(), sample_of(ft));
            }
            Value::Object(m)
        }
    }
}
