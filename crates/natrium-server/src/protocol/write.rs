//! Formatting what the server sends, straight into an outbound byte buffer.
//!
//! Delivery writes one `MSG`/`HMSG` per matching subscription, so these functions append
//! to a caller-owned `Vec<u8>` (the receiver's outbound buffer) and allocate nothing: the
//! only work is copying bytes and formatting integers with `itoa`.

/// `+OK\r\n`, sent after each accepted op to verbose clients.
pub const OK: &[u8] = b"+OK\r\n";
/// `PING\r\n`.
pub const PING: &[u8] = b"PING\r\n";
/// `PONG\r\n`.
pub const PONG: &[u8] = b"PONG\r\n";

/// Bytes [`append_msg`] will add, so callers can check limits before writing.
pub fn msg_len(
    subject: &[u8],
    sid: &[u8],
    reply: Option<&[u8]>,
    headers: Option<&[u8]>,
    payload: &[u8],
) -> usize {
    // "HMSG " + subject + " " + sid + [" " reply] + " " + hdr + " " + total + "\r\n" + body + "\r\n"
    let body = headers.map_or(0, <[u8]>::len) + payload.len();
    let digits = 10 + if headers.is_some() { 11 } else { 0 };
    5 + subject.len() + 1 + sid.len() + reply.map_or(0, |r| r.len() + 1) + 1 + digits + 2 + body + 2
}

/// Append a `MSG` (no headers) or `HMSG` (headers) frame for one subscription.
pub fn append_msg(
    out: &mut Vec<u8>,
    subject: &[u8],
    sid: &[u8],
    reply: Option<&[u8]>,
    headers: Option<&[u8]>,
    payload: &[u8],
) {
    let mut ibuf = itoa::Buffer::new();
    match headers {
        Some(h) => {
            out.extend_from_slice(b"HMSG ");
            push_args(out, subject, sid, reply);
            out.extend_from_slice(ibuf.format(h.len()).as_bytes());
            out.push(b' ');
            out.extend_from_slice(ibuf.format(h.len() + payload.len()).as_bytes());
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(h);
        }
        None => {
            out.extend_from_slice(b"MSG ");
            push_args(out, subject, sid, reply);
            out.extend_from_slice(ibuf.format(payload.len()).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
}

fn push_args(out: &mut Vec<u8>, subject: &[u8], sid: &[u8], reply: Option<&[u8]>) {
    out.extend_from_slice(subject);
    out.push(b' ');
    out.extend_from_slice(sid);
    out.push(b' ');
    if let Some(r) = reply {
        out.extend_from_slice(r);
        out.push(b' ');
    }
}

/// Append `-ERR '<text>'\r\n`.
pub fn append_err(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(b"-ERR '");
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"'\r\n");
}

/// Append `INFO <json> \r\n` (nats-server puts a space before the CRLF).
pub fn append_info(out: &mut Vec<u8>, json: &[u8]) {
    out.extend_from_slice(b"INFO ");
    out.extend_from_slice(json);
    out.extend_from_slice(b" \r\n");
}

/// The header block of a no-responders status, as nats-server 2.15 sends it.
pub fn no_responders_header(subject: &[u8]) -> Vec<u8> {
    let mut h = Vec::with_capacity(32 + subject.len());
    h.extend_from_slice(b"NATS/1.0 503\r\nNats-Subject: ");
    h.extend_from_slice(subject);
    h.extend_from_slice(b"\r\n\r\n");
    h
}

/// Make serde_json output byte-identical to Go's `encoding/json`, which escapes `<`, `>`
/// and `&` inside strings. Those bytes can only occur inside strings in JSON, so a plain
/// replacement over the whole document is exact.
pub fn go_json_escape(json: String) -> String {
    if !json.bytes().any(|b| matches!(b, b'<' | b'>' | b'&')) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msg_and_hmsg_frames() {
        let mut out = Vec::new();
        append_msg(&mut out, b"a.b", b"1", None, None, b"hi");
        append_msg(&mut out, b"a", b"22", Some(b"r"), None, b"");
        append_msg(&mut out, b"h", b"3", None, Some(b"NATS/1.0\r\n\r\n"), b"xy");
        append_msg(
            &mut out,
            b"h",
            b"3",
            Some(b"in"),
            Some(b"NATS/1.0\r\n\r\n"),
            b"",
        );
        assert_eq!(
            out,
            b"MSG a.b 1 2\r\nhi\r\nMSG a 22 r 0\r\n\r\n\
HMSG h 3 12 14\r\nNATS/1.0\r\n\r\nxy\r\nHMSG h 3 in 12 12\r\nNATS/1.0\r\n\r\n\r\n"
        );
    }

    #[test]
    fn msg_len_is_an_upper_bound() {
        for (hdr, payload) in [
            (None, &b""[..]),
            (Some(&b"NATS/1.0\r\n\r\n"[..]), &b"x"[..]),
        ] {
            let mut out = Vec::new();
            append_msg(&mut out, b"subj", b"99", Some(b"reply"), hdr, payload);
            assert!(out.len() <= msg_len(b"subj", b"99", Some(b"reply"), hdr, payload));
        }
    }

    #[test]
    fn no_responders_header_length_matches_nats_server() {
        // nats-server computes the header length as 32 + len(subject).
        assert_eq!(no_responders_header(b"foo").len(), 32 + 3);
    }

    #[test]
    fn go_escaping() {
        assert_eq!(
            go_json_escape(r#"{"s":"a.>&<"}"#.to_string()),
            r#"{"s":"a.\u003e\u0026\u003c"}"#
        );
        assert_eq!(go_json_escape("{}".into()), "{}");
    }
}
