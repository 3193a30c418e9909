//! NATS over WebSocket: the HTTP upgrade and the frame codec, with no socket in them.
//!
//! Why: browsers (nats.ws) and clients behind HTTP proxies can only speak WebSocket, and
//! nats-server offers it on its `websocket {}` port. The NATS protocol inside is the same
//! byte stream; WebSocket only wraps it in frames. So this module turns an upgrade request
//! into a `101` (or nats-server's HTTP error), client frames into the NATS bytes they
//! carry (plus the control frames to answer), and outgoing bytes into frames. The socket
//! side is `client/transport.rs`; the listener is in `server.rs`.
//!
//! Rules follow RFC 6455 as nats-server applies them: client frames must be masked,
//! RSV bits must be clear (permessage-deflate is never negotiated here), control frames
//! are at most 125 bytes and never fragmented, a close frame is answered with the same
//! status, a ping with a pong carrying its payload.

use crate::client::CloseReason;

/// The GUID RFC 6455 appends to the client's key.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Most bytes an upgrade request's head may take.
pub const MAX_HEAD: usize = 8 * 1024;
/// Largest control frame payload.
const MAX_CONTROL: usize = 125;

/// Opcodes.
pub const OP_CONTINUATION: u8 = 0;
/// Text frame.
pub const OP_TEXT: u8 = 1;
/// Binary frame (what the server sends).
pub const OP_BINARY: u8 = 2;
/// Close.
pub const OP_CLOSE: u8 = 8;
/// Ping.
pub const OP_PING: u8 = 9;
/// Pong.
pub const OP_PONG: u8 = 10;

/// Close statuses (RFC 6455 §7.4.1).
pub const CLOSE_NORMAL: u16 = 1000;
/// Going away.
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Protocol error.
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// A close frame without a status.
const CLOSE_NO_STATUS: u16 = 1005;
/// A close body that is not UTF-8.
const CLOSE_INVALID_PAYLOAD: u16 = 1007;
/// Policy violation.
pub const CLOSE_POLICY: u16 = 1008;
/// Message too big.
pub const CLOSE_TOO_BIG: u16 = 1009;
/// Internal error.
pub const CLOSE_INTERNAL: u16 = 1011;
/// TLS handshake.
pub const CLOSE_TLS: u16 = 1015;

/// Which origins may open a connection (`same_origin`, `allowed_origins`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OriginPolicy {
    /// The `Origin` must name the host and port the request was sent to.
    pub same_origin: bool,
    /// `(scheme, host, port)` of each allowed origin; empty: any.
    pub allowed: Vec<(String, String, String)>,
}

/// Splits `http(s)://host[:port][/…]` into `(scheme, host, port)`, with the scheme's
/// default port; `None` if it is not such a URL.
pub fn parse_origin(url: &str) -> Option<(String, String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let hostport = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (host, port) = host_and_port(hostport, scheme == "https")?;
    Some((scheme, host, port))
}

/// `host[:port]` with the default port of the scheme (nats-server's `wsGetHostAndPort`).
fn host_and_port(hostport: &str, tls: bool) -> Option<(String, String)> {
    if hostport.is_empty() {
        return None;
    }
    let default = if tls { "443" } else { "80" };
    if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':').unwrap_or(default);
        return Some((host.to_ascii_lowercase(), port.to_string()));
    }
    Some(match hostport.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h.to_ascii_lowercase(), p.to_string()),
        _ => (hostport.to_ascii_lowercase(), default.to_string()),
    })
}

/// An upgrade request that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct Upgrade {
    /// `Sec-WebSocket-Key`.
    pub key: String,
    /// `Nats-No-Masking: true`: the client will not mask its frames (leaf nodes and
    /// other trusted peers ask for this to save work).
    pub no_masking: bool,
    /// The client offers permessage-deflate (`Sec-WebSocket-Extensions`).
    pub offers_deflate: bool,
    /// The client is likely a browser (`User-Agent: Mozilla/...`): browsers cope better
    /// with frames of at most 4 KiB (nats-server's experience).
    pub browser: bool,
    /// Bytes of the request head (anything after it was sent too early).
    pub head_len: usize,
}

/// A refused upgrade: the HTTP status and, for the log, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// HTTP status code.
    pub status: u16,
    /// What was wrong (logged, not sent: the body is the status text, as nats-server).
    pub reason: String,
}

fn refuse(status: u16, reason: impl Into<String>) -> HttpError {
    HttpError {
        status,
        reason: reason.into(),
    }
}

/// Whether any comma-separated token of any `name` header equals `value`
/// (case-insensitively).
fn header_contains(headers: &[httparse::Header<'_>], name: &str, value: &str) -> bool {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .filter_map(|h| std::str::from_utf8(h.value).ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(value))
}

fn header<'a>(headers: &'a [httparse::Header<'_>], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .map(str::trim)
}

/// Reads an upgrade request's head from `buf`: `Ok(None)` while it is incomplete, the
/// checks of RFC 6455 §4.2.1 in nats-server's order, then the origin policy. `tls` says
/// whether the request came over TLS (for the default port of `Host`).
pub fn parse_upgrade(
    buf: &[u8],
    origins: &OriginPolicy,
    tls: bool,
) -> Result<Option<Upgrade>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Ok(None),
        Ok(httparse::Status::Partial) => return Err(refuse(431, "request header too large")),
        Err(e) => return Err(refuse(400, format!("malformed request: {e}"))),
    };
    let h = req.headers;
    if req.method != Some("GET") {
        return Err(refuse(405, "request method must be GET"));
    }
    let host = header(h, "Host").unwrap_or("");
    if host.is_empty() {
        return Err(refuse(400, "'Host' missing in request"));
    }
    if !header_contains(h, "Upgrade", "websocket") {
        return Err(refuse(400, "invalid value for header 'Upgrade'"));
    }
    if !header_contains(h, "Connection", "Upgrade") {
        return Err(refuse(400, "invalid value for header 'Connection'"));
    }
    let key = header(h, "Sec-WebSocket-Key").unwrap_or("");
    if key.is_empty() {
        return Err(refuse(400, "key missing"));
    }
    use base64::Engine;
    match base64::engine::general_purpose::STANDARD.decode(key) {
        Ok(k) if k.len() == 16 => {}
        _ => return Err(refuse(400, "invalid websocket key")),
    }
    if !header_contains(h, "Sec-WebSocket-Version", "13") {
        return Err(refuse(400, "invalid version"));
    }
    check_origin(h, host, origins, tls)
        .map_err(|e| refuse(403, format!("origin not allowed: {e}")))?;
    let no_masking = header(h, "Nats-No-Masking") == Some("true");
    // nats-server's `wsPMCExtensionSupport`: any parameter of any extension named
    // permessage-deflate.
    let offers_deflate = h
        .iter()
        .filter(|x| x.name.eq_ignore_ascii_case("Sec-WebSocket-Extensions"))
        .filter_map(|x| std::str::from_utf8(x.value).ok())
        .flat_map(|v| v.split([',', ';']))
        .any(|p| p.trim().eq_ignore_ascii_case("permessage-deflate"));
    let browser = header(h, "User-Agent").is_some_and(|ua| ua.starts_with("Mozilla/"));
    Ok(Some(Upgrade {
        key: key.to_string(),
        no_masking,
        offers_deflate,
        browser,
        head_len,
    }))
}

fn check_origin(
    h: &[httparse::Header<'_>],
    host: &str,
    p: &OriginPolicy,
    tls: bool,
) -> Result<(), &'static str> {
    if !p.same_origin && p.allowed.is_empty() {
        return Ok(());
    }
    let origin = header(h, "Origin")
        .filter(|o| !o.is_empty())
        .or_else(|| header(h, "Sec-WebSocket-Origin"));
    // No origin (not a browser): accepted, as nats-server.
    let Some(origin) = origin.filter(|o| !o.is_empty()) else {
        return Ok(());
    };
    let (scheme, oh, op) = parse_origin(origin).ok_or("invalid origin")?;
    if p.same_origin {
        let (rh, rp) = host_and_port(host, tls).ok_or("invalid host")?;
        let request_scheme = if tls { "https" } else { "http" };
        if oh != rh || op != rp || scheme != request_scheme {
            return Err("not same origin");
        }
    }
    if !p.allowed.is_empty()
        && !p
            .allowed
            .iter()
            .any(|(s, h, port)| *s == scheme && *h == oh && *port == op)
    {
        return Err("not in the allowed list");
    }
    Ok(())
}

/// `Sec-WebSocket-Accept` for a client's key.
pub fn accept_key(key: &str) -> String {
    use base64::Engine;
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.digest().bytes())
}

/// The `101 Switching Protocols` answer: nats-server's headers, permessage-deflate
/// (without context takeover either way) when `deflate` was negotiated,
/// `Nats-No-Masking` when the client asked for it, then the configured `extra` headers.
pub fn switching_protocols(up: &Upgrade, deflate: bool, extra: &[(String, String)]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n",
        accept_key(&up.key)
    );
    if deflate {
        out.push_str(
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; \
             client_no_context_takeover\r\n",
        );
    }
    if up.no_masking {
        out.push_str("Nats-No-Masking: true\r\n");
    }
    for (k, v) in extra {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// The answer to a refused upgrade, shaped as Go's `http.Error` (body: the status text).
pub fn http_error(status: u16) -> Vec<u8> {
    let text = match status {
        400 => "Bad Request",
        403 => "Forbidden",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Internal Server Error",
    };
    format!(
        "HTTP/1.1 {status} {text}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Sec-Websocket-Version: 13\r\nX-Content-Type-Options: nosniff\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{text}\n",
        text.len() + 1
    )
    .into_bytes()
}

/// Appends the header of an unmasked final frame of `len` payload bytes.
pub fn frame_header(opcode: u8, len: usize, out: &mut Vec<u8>) {
    out.push(0x80 | opcode);
    if len <= 125 {
        out.push(len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// Appends a whole control frame.
pub fn control_frame(opcode: u8, payload: &[u8], out: &mut Vec<u8>) {
    let payload = &payload[..payload.len().min(MAX_CONTROL)];
    frame_header(opcode, payload.len(), out);
    out.extend_from_slice(payload);
}

/// A close frame's payload: the status, then `body` cut to fit with `...` (nats-server's
/// `wsCreateCloseMessage`).
pub fn close_payload(status: u16, body: &str) -> Vec<u8> {
    let mut out = status.to_be_bytes().to_vec();
    if body.len() > MAX_CONTROL - 2 {
        let mut cut = MAX_CONTROL - 5;
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        out.extend_from_slice(&body.as_bytes()[..cut]);
        out.extend_from_slice(b"...");
    } else {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// The close status nats-server sends when it closes a connection for `reason`.
pub fn close_status(reason: CloseReason) -> u16 {
    use CloseReason::*;
    match reason {
        ClientClosed => CLOSE_NORMAL,
        AuthenticationTimeout
        | AuthenticationExpired
        | Revocation
        | AuthenticationViolation
        | SlowConsumerPendingBytes
        | SlowConsumerWriteDeadline
        | MaxAccountConnectionsExceeded
        | MaxConnectionsExceeded
        | MaxControlLineExceeded
        | MaxSubscriptionsExceeded => CLOSE_POLICY,
        TlsHandshakeError => CLOSE_TLS,
        ParseError | ProtocolViolation | BadClientProtocolVersion => CLOSE_PROTOCOL_ERROR,
        MaxPayloadExceeded => CLOSE_TOO_BIG,
        WriteError | ReadError | StaleConnection | ServerShutdown => CLOSE_GOING_AWAY,
        NoRespondersRequiresHeaders => CLOSE_INTERNAL,
    }
}

/// A frame to send back, found while decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Answer a ping with this payload.
    Pong(Vec<u8>),
    /// The client closed: answer with this close payload (empty when it sent no status)
    /// and stop reading.
    Close(Vec<u8>),
}

/// A broken frame: the close payload to send (status 1002 and why), then close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

/// Where the decoder is within the client's frame stream.
#[derive(Debug)]
enum State {
    /// Collecting a header (up to 14 bytes).
    Header,
    /// Inside a payload: bytes left, and whether it belongs to a control frame.
    Payload { left: u64, control: Option<u8> },
    /// The client closed; nothing more is read.
    Closed,
}

/// Turns the client's frames into the NATS bytes they carry. Incremental: any split of
/// the input gives the same output, and no payload is buffered (only headers and
/// control payloads, both bounded).
#[derive(Debug)]
pub struct Decoder {
    /// Client frames carry a mask (always, unless the client asked for
    /// `Nats-No-Masking`).
    masked: bool,
    /// permessage-deflate, when negotiated.
    inflate: Option<Inflate>,
    /// The frame being read is its message's last.
    frame_final: bool,
    state: State,
    header: Vec<u8>,
    mask: [u8; 4],
    mask_pos: usize,
    /// A data message is open (its final frame not yet seen).
    in_message: bool,
    control: Vec<u8>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            masked: true,
            inflate: None,
            frame_final: true,
            state: State::Header,
            header: Vec::with_capacity(14),
            mask: [0; 4],
            mask_pos: 0,
            in_message: false,
            control: Vec::new(),
        }
    }
}

/// The inflate side of permessage-deflate.
#[derive(Debug)]
struct Inflate {
    /// Largest inflated message (`max_payload`).
    max_out: usize,
    /// Largest compressed message.
    max_in: usize,
    /// The compressed bytes of the message being read.
    buf: Vec<u8>,
    /// The message being read is compressed.
    active: bool,
    /// Its last frame was empty and came at the end of a read: inflate first thing next.
    pending: bool,
}

/// Bytes a frame header needs, once its first two bytes are known.
fn header_len(b1: u8, masked: bool) -> usize {
    2 + match b1 & 0x7F {
        126 => 2,
        127 => 8,
        _ => 0,
    } + if masked { 4 } else { 0 }
}

impl Decoder {
    /// A decoder for a client that does not mask its frames (`Nats-No-Masking`).
    pub fn unmasked() -> Decoder {
        Decoder {
            masked: false,
            ..Decoder::default()
        }
    }

    /// Accepts compressed messages (permessage-deflate, no context takeover), each
    /// inflating to at most `max_payload` bytes (as nats-server, from at most 8 times
    /// that, and never more than 64 MiB, compressed).
    pub fn with_inflate(mut self, max_payload: usize) -> Decoder {
        self.inflate = Some(Inflate {
            max_out: max_payload,
            max_in: max_payload.saturating_mul(8).min(64 * 1024 * 1024),
            buf: Vec::new(),
            active: false,
            pending: false,
        });
        self
    }

    /// Whether the client has closed.
    pub fn closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Decodes `input`: data payloads (unmasked) go to `out`, frames to send back to
    /// `replies`. After a close frame the rest of the input is ignored.
    pub fn decode(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        replies: &mut Vec<Reply>,
    ) -> Result<(), ProtocolError> {
        if self.inflate.as_ref().is_some_and(|i| i.pending) {
            self.finish_data(out)?;
        }
        while !input.is_empty() {
            if self.inflate.as_ref().is_some_and(|i| i.pending) {
                self.finish_data(out)?;
            }
            match self.state {
                State::Closed => return Ok(()),
                State::Header => {
                    let need = if self.header.len() < 2 {
                        2
                    } else {
                        header_len(self.header[1], self.masked)
                    };
                    let take = (need - self.header.len()).min(input.len());
                    self.header.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    if self.header.len() == 2 {
                        self.check_first_bytes()?;
                    }
                    if self.header.len() >= 2
                        && self.header.len() == header_len(self.header[1], self.masked)
                    {
                        self.start_payload(replies)?;
                    }
                }
                State::Payload { left, control } => {
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(input.len());
                    let (chunk, rest) = input.split_at(n);
                    input = rest;
                    let dst = match (control, &mut self.inflate) {
                        (Some(_), _) => &mut self.control,
                        (None, Some(i)) if i.active => {
                            if i.buf.len() + n > i.max_in {
                                return Err(ProtocolError("maximum payload exceeded".into()));
                            }
                            &mut i.buf
                        }
                        (None, _) => &mut *out,
                    };
                    let start = dst.len();
                    dst.extend_from_slice(chunk);
                    for b in &mut dst[start..] {
                        *b ^= self.mask[self.mask_pos & 3];
                        self.mask_pos += 1;
                    }
                    let left = left - n as u64;
                    if left > 0 {
                        self.state = State::Payload { left, control };
                    } else if let Some(op) = control {
                        self.finish_control(op, replies)?;
                    } else {
                        self.state = State::Header;
                        self.finish_data(out)?;
                    }
                }
            }
        }
        if self.inflate.as_ref().is_some_and(|i| i.pending) {
            self.finish_data(out)?;
        }
        Ok(())
    }

    fn check_first_bytes(&mut self) -> Result<(), ProtocolError> {
        let (b0, b1) = (self.header[0], self.header[1]);
        let err = |m: &str| Err(ProtocolError(m.to_string()));
        if b0 & 0x30 != 0 {
            return err("RSV2 and RSV3 must be clear");
        }
        let compressed = b0 & 0x40 != 0;
        if compressed && self.inflate.is_none() {
            return err("compressed frame received without negotiated permessage-deflate");
        }
        if self.masked && b1 & 0x80 == 0 {
            return err("mask bit missing");
        }
        let final_frame = b0 & 0x80 != 0;
        let len = b1 & 0x7F;
        match b0 & 0x0F {
            OP_PING | OP_PONG | OP_CLOSE => {
                if usize::from(len) > MAX_CONTROL {
                    return Err(ProtocolError(format!(
                        "control frame length bigger than maximum allowed of {MAX_CONTROL} bytes"
                    )));
                }
                if !final_frame {
                    return err("control frame does not have final bit set");
                }
                if compressed {
                    return err("control frame must not be compressed");
                }
            }
            OP_TEXT | OP_BINARY => {
                if self.in_message {
                    return err(
                        "new message started before final frame for previous message was received",
                    );
                }
                self.in_message = !final_frame;
                if let Some(i) = &mut self.inflate {
                    i.active = compressed;
                }
            }
            OP_CONTINUATION => {
                // The compressed bit belongs on a message's first frame only.
                if !self.in_message || compressed {
                    return err("invalid continuation frame");
                }
                self.in_message = !final_frame;
            }
            op => return Err(ProtocolError(format!("unknown opcode {op}"))),
        }
        Ok(())
    }

    fn start_payload(&mut self, replies: &mut Vec<Reply>) -> Result<(), ProtocolError> {
        let h = &self.header;
        let op = h[0] & 0x0F;
        let (len, mask_at) = match h[1] & 0x7F {
            126 => (u64::from(u16::from_be_bytes([h[2], h[3]])), 4),
            127 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&h[2..10]);
                let len = u64::from_be_bytes(b);
                if len & (1 << 63) != 0 {
                    return Err(ProtocolError("invalid 64-bit payload length".into()));
                }
                (len, 10)
            }
            n => (u64::from(n), 2),
        };
        if self.masked {
            self.mask.copy_from_slice(&h[mask_at..mask_at + 4]);
        } else {
            self.mask = [0; 4];
        }
        self.mask_pos = 0;
        self.frame_final = h[0] & 0x80 != 0;
        self.header.clear();
        let control = matches!(op, OP_PING | OP_PONG | OP_CLOSE).then_some(op);
        self.control.clear();
        if len == 0 {
            match control {
                Some(op) => self.finish_control(op, replies)?,
                None => {
                    self.state = State::Header;
                    // `out` is not at hand here: an empty final frame of a compressed
                    // message is inflated by the next `decode` step (see `pending`).
                    if let Some(i) = &mut self.inflate
                        && self.frame_final
                        && i.active
                    {
                        i.pending = true;
                    }
                }
            }
        } else {
            self.state = State::Payload { left: len, control };
        }
        Ok(())
    }

    /// At the end of a data frame: a compressed message's last frame is inflated into
    /// `out` (bounded by `max_payload`).
    fn finish_data(&mut self, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
        let Some(i) = &mut self.inflate else {
            return Ok(());
        };
        if !(i.active && (self.frame_final || i.pending)) {
            return Ok(());
        }
        i.pending = false;
        i.active = false;
        // The sync-flush marker the peer stripped, then an empty final block so the
        // stream ends cleanly (nats-server appends the same).
        i.buf
            .extend_from_slice(&[0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff]);
        use std::io::Read;
        let start = out.len();
        let limit = i.max_out as u64 + 1;
        let r = flate2::read::DeflateDecoder::new(&i.buf[..])
            .take(limit)
            .read_to_end(out);
        i.buf.clear();
        match r {
            Ok(n) if n as u64 >= limit => {
                out.truncate(start);
                Err(ProtocolError("maximum payload exceeded".into()))
            }
            Ok(_) => Ok(()),
            Err(e) => {
                out.truncate(start);
                Err(ProtocolError(format!("unable to decompress: {e}")))
            }
        }
    }

    fn finish_control(&mut self, op: u8, replies: &mut Vec<Reply>) -> Result<(), ProtocolError> {
        self.state = State::Header;
        let payload = std::mem::take(&mut self.control);
        match op {
            OP_PING => replies.push(Reply::Pong(payload)),
            OP_CLOSE => {
                if payload.len() == 1 {
                    return Err(ProtocolError("close frame payload cannot be 1 byte".into()));
                }
                let mut answer = Vec::new();
                if payload.len() >= 2 {
                    let mut status = u16::from_be_bytes([payload[0], payload[1]]);
                    if !valid_close_status(status) {
                        return Err(ProtocolError(format!("invalid close status code {status}")));
                    }
                    let mut body = String::from_utf8(payload[2..].to_vec()).unwrap_or_else(|_| {
                        status = CLOSE_INVALID_PAYLOAD;
                        "invalid utf8 body in close frame".to_string()
                    });
                    if status == CLOSE_INVALID_PAYLOAD && body.is_empty() {
                        body = "invalid utf8 body in close frame".into();
                    }
                    if status != CLOSE_NO_STATUS {
                        answer = close_payload(status, &body);
                    }
                }
                replies.push(Reply::Close(answer));
                self.state = State::Closed;
            }
            _ => {}
        }
        Ok(())
    }
}

fn valid_close_status(code: u16) -> bool {
    !matches!(code, CLOSE_NO_STATUS | 1004 | 1006 | CLOSE_TLS)
        && (1000..5000).contains(&code)
        && !(1016..=2999).contains(&code)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
        let key = [0x11, 0x22, 0x33, 0x44];
        let mut out = vec![b0];
        let len = payload.len();
        if len <= 125 {
            out.push(0x80 | len as u8);
        } else if len <= 65535 {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        out
    }

    fn decode_all(input: &[u8]) -> (Vec<u8>, Vec<Reply>, Result<(), ProtocolError>) {
        let mut d = Decoder::default();
        let (mut out, mut replies) = (Vec::new(), Vec::new());
        let r = d.decode(input, &mut out, &mut replies);
        (out, replies, r)
    }

    #[test]
    fn accept_key_is_rfc_6455_s_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn any_split_of_the_input_decodes_the_same() {
        let big: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        let mut input = frame(0x82, b"PUB a 2\r\nhi\r\n");
        input.extend(frame(0x89, b"ping!"));
        input.extend(frame(0x02, &big[..1000])); // binary, not final
        input.extend(frame(0x80, &big[1000..])); // continuation, final
        input.extend(frame(0x81, b"PING\r\n")); // text frames are accepted too
        let mut want = b"PUB a 2\r\nhi\r\n".to_vec();
        want.extend_from_slice(&big);
        want.extend_from_slice(b"PING\r\n");
        for step in [1, 2, 3, 7, 13, 4096, input.len()] {
            let mut d = Decoder::default();
            let (mut out, mut replies) = (Vec::new(), Vec::new());
            for chunk in input.chunks(step) {
                d.decode(chunk, &mut out, &mut replies).unwrap();
            }
            assert_eq!(out, want, "step {step}");
            assert_eq!(replies, vec![Reply::Pong(b"ping!".to_vec())], "step {step}");
        }
    }

    #[test]
    fn close_is_answered_with_its_status_and_ends_reading() {
        let mut input = frame(0x88, &close_payload(1001, "bye"));
        input.extend(frame(0x82, b"PING\r\n"));
        let (out, replies, r) = decode_all(&input);
        r.unwrap();
        assert!(out.is_empty(), "nothing after the close is read");
        assert_eq!(replies, vec![Reply::Close(close_payload(1001, "bye"))]);
        // Without a status: an empty answer.
        let (_, replies, _) = decode_all(&frame(0x88, b""));
        assert_eq!(replies, vec![Reply::Close(Vec::new())]);
        // A body that is not UTF-8.
        let mut p = 1000u16.to_be_bytes().to_vec();
        p.push(0xff);
        let (_, replies, _) = decode_all(&frame(0x88, &p));
        assert_eq!(
            replies,
            vec![Reply::Close(close_payload(
                1007,
                "invalid utf8 body in close frame"
            ))]
        );
    }

    #[test]
    fn broken_frames_are_protocol_errors() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![0x82, 0x02, b'h', b'i'], "mask bit missing"),
            (
                frame(0xC2, b"x"),
                "compressed frame received without negotiated permessage-deflate",
            ),
            (frame(0xA2, b"x"), "RSV2 and RSV3 must be clear"),
            (
                frame(0x09, b"x"),
                "control frame does not have final bit set",
            ),
            (
                frame(0x89, &[0u8; 126]),
                "control frame length bigger than maximum allowed of 125 bytes",
            ),
            (frame(0x80, b"x"), "invalid continuation frame"),
            (frame(0x83, b"x"), "unknown opcode 3"),
            (frame(0x88, b"x"), "close frame payload cannot be 1 byte"),
            (
                frame(0x88, &1005u16.to_be_bytes()),
                "invalid close status code 1005",
            ),
            (
                [frame(0x02, b"a"), frame(0x82, b"b")].concat(),
                "new message started before final frame for previous message was received",
            ),
        ];
        for (input, want) in cases {
            let (_, _, r) = decode_all(&input);
            assert_eq!(r, Err(ProtocolError(want.to_string())), "{want}");
        }
    }

    /// Raw deflate of `data`, sync-flushed, without the trailing 00 00 ff ff (what a
    /// permessage-deflate peer sends).
    fn deflated(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut enc =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.flush().unwrap();
        let mut v = enc.get_ref().clone();
        assert!(v.ends_with(&[0, 0, 0xff, 0xff]));
        v.truncate(v.len() - 4);
        v
    }

    #[test]
    fn compressed_messages_inflate_once_complete() {
        let msg = b"PUB a 11\r\nhello world\r\nPING\r\n".repeat(20);
        let z = deflated(&msg);
        let (a, b) = z.split_at(z.len() / 2);
        // One frame; two frames; two frames and an empty final one; then a plain one.
        let mut input = frame(0xC2, &z);
        input.extend(frame(0x42, a));
        input.extend(frame(0x80, b));
        input.extend(frame(0x42, &z));
        input.extend(frame(0x80, b""));
        input.extend(frame(0x82, b"PING\r\n"));
        let mut want = msg.repeat(3);
        want.extend_from_slice(b"PING\r\n");
        for step in [1, 5, 64, input.len()] {
            let mut d = Decoder::default().with_inflate(1 << 20);
            let (mut out, mut replies) = (Vec::new(), Vec::new());
            for chunk in input.chunks(step) {
                d.decode(chunk, &mut out, &mut replies).unwrap();
            }
            assert_eq!(out, want, "step {step}");
        }
        // Without negotiation a compressed frame is a protocol error; with it, a
        // compressed continuation or control frame still is.
        let (_, _, r) = decode_all(&frame(0xC2, &z));
        assert!(
            r.unwrap_err()
                .0
                .contains("without negotiated permessage-deflate")
        );
        let mut d = Decoder::default().with_inflate(1 << 20);
        let mut input = frame(0x42, a);
        input.extend(frame(0xC0, b));
        let e = d
            .decode(&input, &mut Vec::new(), &mut Vec::new())
            .unwrap_err();
        assert_eq!(e.0, "invalid continuation frame");
        // A message that inflates past max_payload is refused.
        let bomb = deflated(&vec![b'x'; 100_000]);
        let mut d = Decoder::default().with_inflate(1000);
        let e = d
            .decode(&frame(0xC2, &bomb), &mut Vec::new(), &mut Vec::new())
            .unwrap_err();
        assert_eq!(e.0, "maximum payload exceeded");
    }

    #[test]
    fn a_no_masking_client_sends_plain_frames() {
        let mut d = Decoder::unmasked();
        let (mut out, mut replies) = (Vec::new(), Vec::new());
        let mut input = vec![0x82, 6];
        input.extend_from_slice(b"PING\r\n");
        for chunk in input.chunks(3) {
            d.decode(chunk, &mut out, &mut replies).unwrap();
        }
        assert_eq!(out, b"PING\r\n");
        let r = req("Nats-No-Masking: true\r\n");
        let up = parse_upgrade(r.as_bytes(), &OriginPolicy::default(), false)
            .unwrap()
            .unwrap();
        assert!(up.no_masking);
        let answer = String::from_utf8(switching_protocols(
            &up,
            false,
            &[("X-A".into(), "1".into())],
        ))
        .unwrap();
        assert!(
            answer.contains("\r\nNats-No-Masking: true\r\nX-A: 1\r\n\r\n"),
            "{answer}"
        );
    }

    #[test]
    fn frames_and_close_payloads_we_send() {
        let mut out = Vec::new();
        frame_header(OP_BINARY, 5, &mut out);
        assert_eq!(out, [0x82, 5]);
        out.clear();
        frame_header(OP_BINARY, 300, &mut out);
        assert_eq!(out, [0x82, 126, 1, 44]);
        out.clear();
        frame_header(OP_BINARY, 70_000, &mut out);
        assert_eq!(out[..2], [0x82, 127]);
        assert_eq!(out.len(), 10);
        let long = "x".repeat(200);
        let p = close_payload(1008, &long);
        assert_eq!(p.len(), 125);
        assert!(p.ends_with(b"..."));
        assert_eq!(close_status(CloseReason::AuthenticationViolation), 1008);
        assert_eq!(close_status(CloseReason::ClientClosed), 1000);
    }

    fn req(extra: &str) -> String {
        format!(
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        )
    }

    #[test]
    fn upgrade_checks_in_nats_server_order() {
        let open = OriginPolicy::default();
        let r = req("");
        let up = parse_upgrade(r.as_bytes(), &open, false).unwrap().unwrap();
        assert_eq!(up.head_len, r.len());
        assert_eq!(parse_upgrade(&r.as_bytes()[..20], &open, false), Ok(None));
        let status = |text: &str| parse_upgrade(text.as_bytes(), &open, false).unwrap_err();
        assert_eq!(status(&r.replace("GET", "POST")).status, 405);
        assert_eq!(
            status(&r.replace("Upgrade: websocket", "Upgrade: h2c")).reason,
            "invalid value for header 'Upgrade'"
        );
        assert_eq!(
            status(&r.replace("keep-alive, Upgrade", "keep-alive")).reason,
            "invalid value for header 'Connection'"
        );
        assert_eq!(
            status(&r.replace("dGhlIHNhbXBsZSBub25jZQ==", "short")).reason,
            "invalid websocket key"
        );
        assert_eq!(
            status(&r.replace("Version: 13", "Version: 8")).reason,
            "invalid version"
        );
        assert_eq!(status("garbage\r\n\r\n").status, 400);
    }

    #[test]
    fn origin_policies() {
        let same = OriginPolicy {
            same_origin: true,
            allowed: Vec::new(),
        };
        let ok = req("Origin: http://127.0.0.1:8080\r\n");
        assert!(parse_upgrade(ok.as_bytes(), &same, false).is_ok());
        // The scheme counts too: an https page is not the same origin as a ws:// server.
        let https = req("Origin: https://127.0.0.1:8080\r\n");
        assert!(parse_upgrade(https.as_bytes(), &same, false).is_err());
        let other = req("Origin: http://example.com\r\n");
        let e = parse_upgrade(other.as_bytes(), &same, false).unwrap_err();
        assert_eq!(
            (e.status, e.reason.as_str()),
            (403, "origin not allowed: not same origin")
        );
        // No Origin at all (not a browser): accepted.
        assert!(parse_upgrade(req("").as_bytes(), &same, false).is_ok());
        let listed = OriginPolicy {
            same_origin: false,
            allowed: vec![parse_origin("https://app.example.com").unwrap()],
        };
        let good = req("Origin: https://app.example.com:443\r\n");
        assert!(parse_upgrade(good.as_bytes(), &listed, false).is_ok());
        let bad = req("Origin: http://app.example.com\r\n");
        let e = parse_upgrade(bad.as_bytes(), &listed, false).unwrap_err();
        assert_eq!(e.reason, "origin not allowed: not in the allowed list");
    }
}
