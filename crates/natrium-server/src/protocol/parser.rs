//! The client protocol parser: a pure, incremental state machine over a byte buffer.
//!
//! Why it looks like this:
//! - It owns no socket, so it can be unit-tested and fuzzed byte by byte, and the connection
//!   code stays a thin loop of "read, parse, handle".
//! - It allocates nothing per message. Every [`ClientOp`] borrows from the caller's read
//!   buffer; the caller handles the op and only then advances the buffer by [`Parsed::len`].
//! - It is incremental: when a frame is incomplete it returns `Ok(None)` and remembers how far
//!   it got (where it stopped scanning for the line end, and a fully parsed `PUB` control line
//!   whose payload has not all arrived yet), so a large payload arriving in many reads is not
//!   re-scanned each time.
//!
//! Contract with the caller: every call passes the buffer starting at the first byte of the
//! current frame (the bytes after the last complete op). The buffer may have grown or moved
//! between calls; the parser only keeps offsets into it.
//!
//! Behaviour follows nats-server 2.15 (`server/parser.go`): op names are case-insensitive,
//! arguments are separated by spaces or tabs, a bare `\n` ends a line as well as `\r\n`, and
//! the control-line limit applies to the arguments (not the op name). Which errors are sent as
//! `-ERR` and which close silently is encoded in [`ParseError`].

use memchr::memchr;

/// Limits the parser enforces while reading a frame. They come from the server options and
/// can change on reload, so the caller passes them to [`Parser::new`] and [`Parser::set_limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParserLimits {
    /// Largest control line (the arguments after the op name), `max_control_line`.
    pub max_control_line: usize,
    /// Largest PUB/HPUB total size (headers included), `max_payload`; negative means no limit.
    pub max_payload: i64,
    /// Whether this connection negotiated headers; HPUB without it closes the connection.
    pub headers: bool,
}

impl Default for ParserLimits {
    fn default() -> Self {
        ParserLimits {
            max_control_line: 4096,
            max_payload: 1024 * 1024,
            headers: false,
        }
    }
}

/// A message published by the client (PUB or HPUB), borrowed from the read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PubMsg<'a> {
    /// The subject, not yet validated (pedantic validation is the server's choice).
    pub subject: &'a [u8],
    /// Reply subject, if the client gave one.
    pub reply: Option<&'a [u8]>,
    /// The header block (`NATS/1.0…\r\n\r\n`) for HPUB, `None` for PUB.
    pub headers: Option<&'a [u8]>,
    /// The payload without the trailing CRLF.
    pub payload: &'a [u8],
}

impl PubMsg<'_> {
    /// Total size as the client declared it: header bytes plus payload bytes.
    pub fn total_len(&self) -> usize {
        self.headers.map_or(0, <[u8]>::len) + self.payload.len()
    }
}

/// One operation sent by a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientOp<'a> {
    /// `CONNECT {json}`: the raw JSON, parsed by the server.
    Connect(&'a [u8]),
    /// `PUB` or `HPUB`.
    Pub(PubMsg<'a>),
    /// `SUB <subject> [queue] <sid>`.
    Sub {
        /// Subject, possibly with wildcards; validated by the server.
        subject: &'a [u8],
        /// Queue group name.
        queue: Option<&'a [u8]>,
        /// Client-chosen subscription id.
        sid: &'a [u8],
    },
    /// `UNSUB <sid> [max]`.
    Unsub {
        /// Subscription id.
        sid: &'a [u8],
        /// Auto-unsubscribe after this many messages in total. `Some(-1)` when the client
        /// sent a value that is not a number: nats-server then unsubscribes at once.
        max: Option<i64>,
    },
    /// `PING`.
    Ping,
    /// `PONG`.
    Pong,
    /// `INFO {json}` from a client; nats-server parses and ignores it for clients.
    Info(&'a [u8]),
    /// `+OK`, ignored.
    Ok,
    /// `-ERR <text>` from the client; nats-server logs it and closes the connection.
    Err(&'a [u8]),
}

/// A complete op and the number of bytes it used from the front of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// The operation.
    pub op: ClientOp<'a>,
    /// Bytes consumed, including the trailing line end and any payload.
    pub len: usize,
}

/// Why a frame could not be parsed. Each variant says what the server sends before it closes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Unknown op or a broken frame: `-ERR 'Unknown Protocol Operation'`, then close.
    #[error("unknown protocol operation")]
    UnknownOp,
    /// Control line longer than the limit: `-ERR 'maximum control line exceeded'`, then close.
    #[error("maximum control line exceeded: {len} > {max}")]
    ControlLineTooLong {
        /// Length seen so far.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Declared size over `max_payload`: `-ERR 'Maximum Payload Violation'`, then close.
    #[error("maximum payload violation: {size} > {max}")]
    MaxPayload {
        /// Size the client declared.
        size: usize,
        /// The limit.
        max: i64,
    },
    /// Malformed arguments: nats-server closes the connection without an `-ERR`.
    #[error("{op} parse error: {reason}")]
    BadArgs {
        /// The op whose arguments were bad.
        op: &'static str,
        /// What was wrong.
        reason: &'static str,
    },
    /// HPUB on a connection that did not negotiate headers: closed without an `-ERR`.
    #[error("message headers not supported")]
    HeadersNotSupported,
}

impl ParseError {
    /// The `-ERR` text to send before closing, if nats-server sends one.
    pub fn err_text(&self) -> Option<&'static str> {
        match self {
            ParseError::UnknownOp => Some("Unknown Protocol Operation"),
            ParseError::ControlLineTooLong { .. } => Some("maximum control line exceeded"),
            ParseError::MaxPayload { .. } => Some("Maximum Payload Violation"),
            ParseError::BadArgs { .. } | ParseError::HeadersNotSupported => None,
        }
    }
}

/// Which op a frame starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Connect,
    Pub,
    HPub,
    Sub,
    Unsub,
    Ping,
    Pong,
    Info,
    PlusOk,
    MinusErr,
}

/// A PUB/HPUB whose control line is parsed but whose payload is still arriving. Offsets are
/// relative to the start of the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PendingMsg {
    /// Offset of the first payload byte (just past the control line's `\n`).
    body_start: usize,
    /// Subject as (start, end).
    subject: (usize, usize),
    /// Reply as (start, end), if any.
    reply: Option<(usize, usize)>,
    /// Header bytes, for HPUB.
    hdr_len: Option<usize>,
    /// Header plus payload bytes.
    total_len: usize,
}

/// The incremental parser. One per connection.
#[derive(Debug, Clone)]
pub struct Parser {
    /// Current limits.
    limits: ParserLimits,
    /// How far the current frame has been scanned for a line end without finding one.
    scanned: usize,
    /// A PUB/HPUB waiting for its payload.
    pending: Option<PendingMsg>,
}

impl Parser {
    /// A parser with the given limits.
    pub fn new(limits: ParserLimits) -> Self {
        Parser {
            limits,
            scanned: 0,
            pending: None,
        }
    }

    /// Change the limits, e.g. after CONNECT negotiated headers or after a config reload.
    pub fn set_limits(&mut self, limits: ParserLimits) {
        self.limits = limits;
    }

    /// The current limits.
    pub fn limits(&self) -> ParserLimits {
        self.limits
    }

    /// Bytes the current frame needs in total before it can complete, when known. The
    /// caller uses it to grow its read buffer once instead of many times.
    pub fn bytes_needed(&self) -> Option<usize> {
        self.pending.map(|p| p.body_start + p.total_len + 2)
    }

    /// Parse one op from the front of `buf`. `Ok(None)` means more bytes are needed.
    pub fn parse<'a>(&mut self, buf: &'a [u8]) -> Result<Option<Parsed<'a>>, ParseError> {
        if let Some(p) = self.pending {
            return self.finish_msg(buf, p);
        }
        if buf.is_empty() {
            return Ok(None);
        }
        let Some((kind, name_len)) = match_op(buf)? else {
            return Ok(None);
        };
        // What must follow the op name.
        let mut arg_start = name_len;
        match kind {
            OpKind::Pub | OpKind::HPub | OpKind::Sub | OpKind::Unsub | OpKind::MinusErr => {
                match buf.get(name_len) {
                    None => return Ok(None),
                    Some(b' ' | b'\t') => {}
                    Some(_) => return Err(ParseError::UnknownOp),
                }
            }
            OpKind::Connect | OpKind::Info | OpKind::Ping | OpKind::Pong | OpKind::PlusOk => {}
        }
        while let Some(b' ' | b'\t') = buf.get(arg_start) {
            arg_start += 1;
        }
        // Find the end of the control line.
        let from = self.scanned.max(arg_start);
        let Some(nl) = buf
            .get(from..)
            .and_then(|rest| memchr(b'\n', rest))
            .map(|i| from + i)
        else {
            self.scanned = buf.len();
            // A trailing `\r` may be the start of the line end; like nats-server, it does
            // not count toward the limit.
            let cr = usize::from(buf.last() == Some(&b'\r'));
            let seen = buf.len().saturating_sub(arg_start).saturating_sub(cr);
            if seen > self.limits.max_control_line {
                return Err(ParseError::ControlLineTooLong {
                    len: seen,
                    max: self.limits.max_control_line,
                });
            }
            return Ok(None);
        };
        self.scanned = 0;
        let line_end = if nl > arg_start && buf[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        let arg = &buf[arg_start.min(line_end)..line_end];
        if arg.len() > self.limits.max_control_line {
            return Err(ParseError::ControlLineTooLong {
                len: arg.len(),
                max: self.limits.max_control_line,
            });
        }
        let len = nl + 1;
        let op = match kind {
            OpKind::Connect => ClientOp::Connect(arg),
            OpKind::Info => ClientOp::Info(arg),
            OpKind::Ping => ClientOp::Ping,
            OpKind::Pong => ClientOp::Pong,
            OpKind::PlusOk => ClientOp::Ok,
            OpKind::MinusErr => ClientOp::Err(arg),
            OpKind::Sub => parse_sub(arg)?,
            OpKind::Unsub => parse_unsub(arg)?,
            OpKind::Pub | OpKind::HPub => {
                let pending = self.parse_pub_args(kind, arg_start, arg, len)?;
                self.pending = Some(pending);
                return self.finish_msg(buf, pending);
            }
        };
        Ok(Some(Parsed { op, len }))
    }

    /// Parse PUB/HPUB arguments into a [`PendingMsg`].
    fn parse_pub_args(
        &self,
        kind: OpKind,
        arg_start: usize,
        arg: &[u8],
        body_start: usize,
    ) -> Result<PendingMsg, ParseError> {
        let is_hpub = kind == OpKind::HPub;
        let op = if is_hpub { "HPUB" } else { "PUB" };
        if is_hpub && !self.limits.headers {
            return Err(ParseError::HeadersNotSupported);
        }
        let mut fields = [(0usize, 0usize); 4];
        let n = split_fields(arg, |b| b == b' ' || b == b'\t', &mut fields).ok_or(
            ParseError::BadArgs {
                op,
                reason: "too many arguments",
            },
        )?;
        let at = |i: usize| (arg_start + fields[i].0, arg_start + fields[i].1);
        let slice = |i: usize| &arg[fields[i].0..fields[i].1];
        let (subject, reply, hdr, size) = match (is_hpub, n) {
            (false, 2) => (at(0), None, None, parse_size(slice(1))),
            (false, 3) => (at(0), Some(at(1)), None, parse_size(slice(2))),
            (true, 3) => (
                at(0),
                None,
                Some(parse_size(slice(1))),
                parse_size(slice(2)),
            ),
            (true, 4) => (
                at(0),
                Some(at(1)),
                Some(parse_size(slice(2))),
                parse_size(slice(3)),
            ),
            _ => {
                return Err(ParseError::BadArgs {
                    op,
                    reason: "wrong number of arguments",
                });
            }
        };
        let hdr_len = match hdr {
            None => None,
            Some(None) => {
                return Err(ParseError::BadArgs {
                    op,
                    reason: "bad or missing header size",
                });
            }
            Some(Some(h)) => Some(h),
        };
        let Some(total_len) = size else {
            return Err(ParseError::BadArgs {
                op,
                reason: "bad or missing size",
            });
        };
        if let Some(h) = hdr_len
            && h > total_len
        {
            return Err(ParseError::BadArgs {
                op,
                reason: "header size larger than total size",
            });
        }
        if self.limits.max_payload >= 0 && total_len as i64 > self.limits.max_payload {
            return Err(ParseError::MaxPayload {
                size: total_len,
                max: self.limits.max_payload,
            });
        }
        Ok(PendingMsg {
            body_start,
            subject,
            reply,
            hdr_len,
            total_len,
        })
    }

    /// Complete a PUB/HPUB once its payload and trailing CRLF are in the buffer.
    fn finish_msg<'a>(
        &mut self,
        buf: &'a [u8],
        p: PendingMsg,
    ) -> Result<Option<Parsed<'a>>, ParseError> {
        let end = p.body_start + p.total_len;
        if buf.len() < end + 2 {
            return Ok(None);
        }
        self.pending = None;
        if &buf[end..end + 2] != b"\r\n" {
            return Err(ParseError::UnknownOp);
        }
        let body = &buf[p.body_start..end];
        let (headers, payload) = match p.hdr_len {
            // An HPUB with an empty header block is a plain message (nats-server then
            // delivers MSG, not HMSG).
            Some(h) if h > 0 => (Some(&body[..h]), &body[h..]),
            _ => (None, body),
        };
        Ok(Some(Parsed {
            op: ClientOp::Pub(PubMsg {
                subject: &buf[p.subject.0..p.subject.1],
                reply: p.reply.map(|(s, e)| &buf[s..e]),
                headers,
                payload,
            }),
            len: end + 2,
        }))
    }
}

/// Identify the op at the front of `buf`, case-insensitively. `Ok(None)` when the buffer is
/// a strict prefix of some op name; `UnknownOp` as soon as no op can match, as nats-server
/// fails on the first unexpected byte.
fn match_op(buf: &[u8]) -> Result<Option<(OpKind, usize)>, ParseError> {
    // Dispatch on the first byte (PUB dominates, so it is tried first), then check the
    // rest of the name case-insensitively.
    let lower = |b: u8| b.to_ascii_lowercase();
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let (name, kind): (&[u8], OpKind) = match lower(first) {
        b'p' => match buf.get(1).map(|&b| lower(b)) {
            None => return Ok(None),
            Some(b'u') => (b"PUB", OpKind::Pub),
            Some(b'i') => (b"PING", OpKind::Ping),
            Some(b'o') => (b"PONG", OpKind::Pong),
            Some(_) => return Err(ParseError::UnknownOp),
        },
        b'h' => (b"HPUB", OpKind::HPub),
        b's' => (b"SUB", OpKind::Sub),
        b'u' => (b"UNSUB", OpKind::Unsub),
        b'c' => (b"CONNECT", OpKind::Connect),
        b'i' => (b"INFO", OpKind::Info),
        b'+' => (b"+OK", OpKind::PlusOk),
        b'-' => (b"-ERR", OpKind::MinusErr),
        _ => return Err(ParseError::UnknownOp),
    };
    let n = name.len().min(buf.len());
    if !buf[..n].eq_ignore_ascii_case(&name[..n]) {
        return Err(ParseError::UnknownOp);
    }
    if n < name.len() {
        return Ok(None);
    }
    Ok(Some((kind, n)))
}

/// Split `arg` on bytes where `is_sep` holds, writing (start, end) pairs into `out`. Returns the number
/// of fields, or `None` if there are more than `out` can hold.
fn split_fields(
    arg: &[u8],
    is_sep: impl Fn(u8) -> bool,
    out: &mut [(usize, usize)],
) -> Option<usize> {
    let mut n = 0;
    let mut start: Option<usize> = None;
    for (i, &b) in arg.iter().enumerate() {
        if is_sep(b) {
            if let Some(s) = start.take() {
                *out.get_mut(n)? = (s, i);
                n += 1;
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        *out.get_mut(n)? = (s, arg.len());
        n += 1;
    }
    Some(n)
}

/// Parse a decimal size as nats-server does: digits only, at most 9 of them.
pub fn parse_size(d: &[u8]) -> Option<usize> {
    if d.is_empty() || d.len() > 9 {
        return None;
    }
    let mut n = 0usize;
    for &b in d {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + (b - b'0') as usize;
    }
    Some(n)
}

/// Blanks that separate SUB/UNSUB arguments (nats-server's `splitArg`).
fn sub_sep(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn parse_sub(arg: &[u8]) -> Result<ClientOp<'_>, ParseError> {
    let mut f = [(0usize, 0usize); 3];
    let bad = ParseError::BadArgs {
        op: "SUB",
        reason: "wrong number of arguments",
    };
    let n = split_fields(arg, sub_sep, &mut f).ok_or(bad.clone())?;
    let s = |i: usize| &arg[f[i].0..f[i].1];
    match n {
        2 => Ok(ClientOp::Sub {
            subject: s(0),
            queue: None,
            sid: s(1),
        }),
        3 => Ok(ClientOp::Sub {
            subject: s(0),
            queue: Some(s(1)),
            sid: s(2),
        }),
        _ => Err(bad),
    }
}

fn parse_unsub(arg: &[u8]) -> Result<ClientOp<'_>, ParseError> {
    let mut f = [(0usize, 0usize); 2];
    let bad = ParseError::BadArgs {
        op: "UNSUB",
        reason: "wrong number of arguments",
    };
    let n = split_fields(arg, sub_sep, &mut f).ok_or(bad.clone())?;
    let s = |i: usize| &arg[f[i].0..f[i].1];
    match n {
        1 => Ok(ClientOp::Unsub {
            sid: s(0),
            max: None,
        }),
        2 => Ok(ClientOp::Unsub {
            sid: s(0),
            max: Some(parse_size(s(1)).map_or(-1, |v| v as i64)),
        }),
        _ => Err(bad),
    }
}

#[cfg(test)]
#[path = "parser_tests.rs"]
mod tests;
