//! Unit tests for the protocol parser: every op, the limits, the error classes, and that
//! feeding a stream in arbitrary pieces gives exactly the same ops as feeding it whole.

use super::*;

fn limits() -> ParserLimits {
    ParserLimits {
        max_control_line: 64,
        max_payload: 100,
        headers: true,
    }
}

/// Owned copy of an op so results from different buffers can be compared.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owned {
    Connect(Vec<u8>),
    Pub(Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>, Vec<u8>),
    Sub(Vec<u8>, Option<Vec<u8>>, Vec<u8>),
    Unsub(Vec<u8>, Option<i64>),
    Ping,
    Pong,
    Info(Vec<u8>),
    Ok,
    Err(Vec<u8>),
}

fn own(op: &ClientOp<'_>) -> Owned {
    let v = |s: &[u8]| s.to_vec();
    match *op {
        ClientOp::Connect(a) => Owned::Connect(v(a)),
        ClientOp::Pub(m) => {
            Owned::Pub(v(m.subject), m.reply.map(v), m.headers.map(v), v(m.payload))
        }
        ClientOp::Sub {
            subject,
            queue,
            sid,
        } => Owned::Sub(v(subject), queue.map(v), v(sid)),
        ClientOp::Unsub { sid, max } => Owned::Unsub(v(sid), max),
        ClientOp::Ping => Owned::Ping,
        ClientOp::Pong => Owned::Pong,
        ClientOp::Info(a) => Owned::Info(v(a)),
        ClientOp::Ok => Owned::Ok,
        ClientOp::Err(a) => Owned::Err(v(a)),
    }
}

/// Feed `input` in chunks of the given sizes (cycled), the way a socket would deliver it.
fn feed(input: &[u8], chunks: &[usize]) -> (Vec<Owned>, Option<ParseError>) {
    let mut p = Parser::new(limits());
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut ci = 0;
    while pos < input.len() {
        let n = chunks[ci % chunks.len()].max(1).min(input.len() - pos);
        ci += 1;
        buf.extend_from_slice(&input[pos..pos + n]);
        pos += n;
        loop {
            match p.parse(&buf) {
                Ok(Some(parsed)) => {
                    out.push(own(&parsed.op));
                    let len = parsed.len;
                    buf.drain(..len);
                }
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
    }
    (out, None)
}

fn whole(input: &[u8]) -> (Vec<Owned>, Option<ParseError>) {
    feed(input, &[usize::MAX])
}

#[test]
fn parses_every_op() {
    let input = b"CONNECT {\"verbose\":false}\r\nPUB foo 5\r\nhello\r\nPUB foo bar 0\r\n\r\n\
HPUB h 12 14\r\nNATS/1.0\r\n\r\nhi\r\nHPUB h r 12 12\r\nNATS/1.0\r\n\r\n\r\n\
SUB a.* 1\r\nSUB a q 2\r\nUNSUB 1\r\nUNSUB 2 10\r\nPING\r\nPONG\r\nINFO {}\r\n+OK\r\n-ERR 'x'\r\n";
    let (ops, err) = whole(input);
    assert_eq!(err, None);
    assert_eq!(
        ops,
        vec![
            Owned::Connect(b"{\"verbose\":false}".to_vec()),
            Owned::Pub(b"foo".to_vec(), None, None, b"hello".to_vec()),
            Owned::Pub(b"foo".to_vec(), Some(b"bar".to_vec()), None, vec![]),
            Owned::Pub(
                b"h".to_vec(),
                None,
                Some(b"NATS/1.0\r\n\r\n".to_vec()),
                b"hi".to_vec()
            ),
            Owned::Pub(
                b"h".to_vec(),
                Some(b"r".to_vec()),
                Some(b"NATS/1.0\r\n\r\n".to_vec()),
                vec![]
            ),
            Owned::Sub(b"a.*".to_vec(), None, b"1".to_vec()),
            Owned::Sub(b"a".to_vec(), Some(b"q".to_vec()), b"2".to_vec()),
            Owned::Unsub(b"1".to_vec(), None),
            Owned::Unsub(b"2".to_vec(), Some(10)),
            Owned::Ping,
            Owned::Pong,
            Owned::Info(b"{}".to_vec()),
            Owned::Ok,
            Owned::Err(b"'x'".to_vec()),
        ]
    );
}

#[test]
fn every_split_point_gives_the_same_ops() {
    let input = b"CONNECT {}\r\nSUB foo 1\r\nPUB foo reply 11\r\nhello world\r\n\
HPUB foo 24 29\r\nNATS/1.0\r\nA: b\r\nC: d\r\n\r\nhello\r\nping\r\nUNSUB 1 3\r\n";
    let (expect, err) = whole(input);
    assert_eq!(err, None);
    assert_eq!(expect.len(), 6);
    for chunk in 1..input.len() {
        assert_eq!(
            feed(input, &[chunk]),
            (expect.clone(), None),
            "chunk {chunk}"
        );
    }
    for seed in 0..200u64 {
        let sizes: Vec<usize> = (0..7)
            .map(|i| ((seed * 7919 + i * 104729) % 13 + 1) as usize)
            .collect();
        assert_eq!(
            feed(input, &sizes),
            (expect.clone(), None),
            "sizes {sizes:?}"
        );
    }
}

#[test]
fn op_names_are_case_insensitive_and_blanks_are_flexible() {
    let (ops, err) = whole(b"pub  a \t 1\r\nx\r\nsUb a\tq   9\r\nPiNg\r\nconnect{}\r\n");
    assert_eq!(err, None);
    assert_eq!(
        ops,
        vec![
            Owned::Pub(b"a".to_vec(), None, None, b"x".to_vec()),
            Owned::Sub(b"a".to_vec(), Some(b"q".to_vec()), b"9".to_vec()),
            Owned::Ping,
            Owned::Connect(b"{}".to_vec()),
        ]
    );
}

#[test]
fn bare_newline_ends_a_line() {
    let (ops, err) = whole(b"PING\nSUB a 1\nPUB a 1\nx\r\n");
    assert_eq!(err, None);
    assert_eq!(ops.len(), 3);
}

#[test]
fn unknown_op_fails_on_first_bad_byte() {
    // No line end needed: nats-server rejects as soon as the op cannot match.
    assert_eq!(whole(b"FOO").1, Some(ParseError::UnknownOp));
    assert_eq!(whole(b"PX").1, Some(ParseError::UnknownOp));
    assert_eq!(whole(b"MSG a 1 1\r\n").1, Some(ParseError::UnknownOp));
    assert_eq!(whole(b"PUBfoo 1\r\n").1, Some(ParseError::UnknownOp));
    // UNSUB must be followed by a blank, as in nats-server's state machine.
    assert_eq!(whole(b"UNSUB\r\n").1, Some(ParseError::UnknownOp));
    // A strict prefix is just incomplete.
    assert_eq!(whole(b"CONNE"), (vec![], None));
}

#[test]
fn wrong_payload_terminator_is_unknown_op() {
    assert_eq!(whole(b"PUB a 1\r\nxy\r\n").1, Some(ParseError::UnknownOp));
    let (ops, err) = whole(b"PING\r\nPUB a 3\r\nx\r\nyy");
    assert_eq!(ops, vec![Owned::Ping]);
    assert_eq!(err, Some(ParseError::UnknownOp));
}

#[test]
fn bad_pub_args_close_without_err_text() {
    for input in [
        &b"PUB foo\r\n"[..],
        b"PUB foo abc\r\n",
        b"PUB a b c 1\r\n",
        b"PUB foo -1\r\n",
        b"PUB foo 1234567890\r\n",
        b"HPUB foo 1\r\n",
        b"HPUB foo 5 4\r\n",
        b"HPUB foo x 4\r\n",
        b"SUB foo\r\n",
        b"SUB a b c d\r\n",
        b"UNSUB 1 2 3\r\n",
    ] {
        let err = whole(input).1.expect("must fail");
        assert!(
            matches!(err, ParseError::BadArgs { .. }),
            "{:?} gave {err:?}",
            String::from_utf8_lossy(input)
        );
        assert_eq!(err.err_text(), None);
    }
}

#[test]
fn max_payload_checked_on_the_control_line() {
    let err = whole(b"PUB foo 101\r\n").1;
    assert_eq!(
        err,
        Some(ParseError::MaxPayload {
            size: 101,
            max: 100
        })
    );
    assert_eq!(err.unwrap().err_text(), Some("Maximum Payload Violation"));
    // Headers count toward the limit.
    assert!(matches!(
        whole(b"HPUB foo 50 101\r\n").1,
        Some(ParseError::MaxPayload { .. })
    ));
    // At the limit is fine.
    let mut ok = b"PUB foo 100\r\n".to_vec();
    ok.extend_from_slice(&[b'x'; 100]);
    ok.extend_from_slice(b"\r\n");
    assert_eq!(whole(&ok).1, None);
}

#[test]
fn control_line_limit_applies_to_arguments_even_without_line_end() {
    let arg = "a".repeat(64);
    let ok = format!("SUB {arg}\r\n");
    // 64 + " 1" is over; 64 exactly as a whole arg line is at the limit.
    assert!(whole(ok.as_bytes()).1.is_some()); // "SUB" needs a sid: bad args, not too long
    let line = format!("SUB {} 1\r\n", "a".repeat(62));
    assert_eq!(whole(line.as_bytes()).1, None);
    let long = format!("SUB {} 1\r\n", "a".repeat(63));
    assert!(matches!(
        whole(long.as_bytes()).1,
        Some(ParseError::ControlLineTooLong { .. })
    ));
    // Without a line end, the limit still stops an endless line.
    let endless = format!("SUB {}", "a".repeat(100));
    assert!(matches!(
        feed(endless.as_bytes(), &[7]).1,
        Some(ParseError::ControlLineTooLong { .. })
    ));
    assert_eq!(
        ParseError::ControlLineTooLong { len: 1, max: 0 }.err_text(),
        Some("maximum control line exceeded")
    );
}

#[test]
fn hpub_needs_negotiated_headers() {
    let mut p = Parser::new(ParserLimits {
        headers: false,
        ..limits()
    });
    assert_eq!(
        p.parse(b"HPUB a 12 12\r\nNATS/1.0\r\n\r\n\r\n"),
        Err(ParseError::HeadersNotSupported)
    );
}

#[test]
fn unsub_with_bad_max_means_now() {
    let (ops, err) = whole(b"UNSUB 1 x\r\nUNSUB 2 0\r\n");
    assert_eq!(err, None);
    assert_eq!(
        ops,
        vec![
            Owned::Unsub(b"1".to_vec(), Some(-1)),
            Owned::Unsub(b"2".to_vec(), Some(0))
        ]
    );
}

#[test]
fn queue_group_that_looks_like_a_subject_is_a_queue() {
    // Verified on nats-server: `SUB a.> .b 3` is subject `a.>` with queue `.b`.
    let (ops, _) = whole(b"SUB a.> .b 3\r\n");
    assert_eq!(
        ops,
        vec![Owned::Sub(
            b"a.>".to_vec(),
            Some(b".b".to_vec()),
            b"3".to_vec()
        )]
    );
}

#[test]
fn incomplete_payload_reports_bytes_needed() {
    let mut p = Parser::new(limits());
    assert_eq!(p.parse(b"PUB a 10\r\nabc"), Ok(None));
    assert_eq!(p.bytes_needed(), Some(10 + 10 + 2));
    let full = b"PUB a 10\r\n0123456789\r\n";
    let parsed = p.parse(full).unwrap().unwrap();
    assert_eq!(parsed.len, full.len());
    assert_eq!(p.bytes_needed(), None);
}

#[test]
fn garbage_never_panics() {
    // A bounded deterministic pseudo-random run; the cargo-fuzz target does the long runs.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let alphabet = b"PUBSHINGCOTERXK+-\r\n \t0123456789.*>{}";
    for _ in 0..3000 {
        let mut input = Vec::new();
        let n = (x % 80) as usize;
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            input.push(alphabet[(x % alphabet.len() as u64) as usize]);
        }
        let a = whole(&input);
        let b = feed(&input, &[1, 3, 2]);
        assert_eq!(a, b, "{:?}", String::from_utf8_lossy(&input));
    }
}

#[test]
fn an_hpub_with_an_empty_header_block_is_a_plain_publish() {
    // nats-server delivers it as MSG, not as an HMSG with a 0-byte header.
    let (ops, err) = whole(b"HPUB x 0 1\r\na\r\nHPUB y r 0 0\r\n\r\n");
    assert_eq!(err, None);
    assert_eq!(
        ops,
        vec![
            Owned::Pub(b"x".to_vec(), None, None, b"a".to_vec()),
            Owned::Pub(b"y".to_vec(), Some(b"r".to_vec()), None, vec![]),
        ]
    );
}
