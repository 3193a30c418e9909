//! Fuzz the client protocol parser: any bytes, split into reads at any points, must never
//! panic, and must give the same ops as the same bytes parsed in one piece.
#![no_main]

use libfuzzer_sys::fuzz_target;
use natrium_server::protocol::{ClientOp, ParseError, Parser, ParserLimits};

fn kind(e: &ParseError) -> String {
    match e {
        ParseError::ControlLineTooLong { max, .. } => format!("control line too long (max {max})"),
        other => other.to_string(),
    }
}

/// Parse `input` delivered in pieces of the given sizes, collecting a debug rendering of
/// each op and the final error, if any.
fn run(input: &[u8], chunks: &[usize]) -> (Vec<String>, Option<String>) {
    let limits = ParserLimits { max_control_line: 256, max_payload: 4096, headers: true };
    let mut p = Parser::new(limits);
    let mut buf: Vec<u8> = Vec::new();
    let mut ops = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < input.len() {
        let n = chunks.get(i % chunks.len().max(1)).copied().unwrap_or(usize::MAX).max(1);
        let n = n.min(input.len() - pos);
        i += 1;
        buf.extend_from_slice(&input[pos..pos + n]);
        pos += n;
        loop {
            match p.parse(&buf) {
                Ok(Some(parsed)) => {
                    assert!(parsed.len > 0 && parsed.len <= buf.len());
                    if let ClientOp::Pub(m) = parsed.op {
                        assert!(m.total_len() <= 4096);
                    }
                    ops.push(format!("{:?}", parsed.op));
                    let len = parsed.len;
                    buf.drain(..len);
                }
                Ok(None) => break,
                // Compare the kind of error: how much of an over-long line had been seen
                // when the limit tripped depends on the read sizes, legitimately.
                Err(e) => return (ops, Some(kind(&e).to_string())),
            }
        }
    }
    (ops, None)
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks chunk sizes so splits are explored too.
    let (seed, input) = match data.split_first() {
        Some((s, rest)) => (*s, rest),
        None => return,
    };
    let chunks = [1 + (seed % 7) as usize, 1 + (seed / 7 % 13) as usize, 3];
    let whole = run(input, &[usize::MAX]);
    let split = run(input, &chunks);
    assert_eq!(whole, split);
});
