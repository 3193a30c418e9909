//! Fuzz the WebSocket side of a client connection: any bytes as an upgrade request must
//! give an answer without panicking, and any bytes as client frames, split into reads at
//! any points, must never panic and must decode exactly as the same bytes in one piece
//! (the same NATS bytes, the same replies, the same protocol error).
#![no_main]

use libfuzzer_sys::fuzz_target;
use natrium_server::client::websocket::{self, Decoder, OriginPolicy};

fn run(input: &[u8], chunks: &[usize], inflate: bool) -> (Vec<u8>, String, Option<String>) {
    let mut d = if inflate { Decoder::default().with_inflate(1 << 16) } else { Decoder::default() };
    let (mut out, mut replies) = (Vec::new(), Vec::new());
    let mut pos = 0;
    let mut i = 0;
    while pos < input.len() {
        let n = chunks.get(i % chunks.len().max(1)).copied().unwrap_or(usize::MAX).max(1);
        let n = n.min(input.len() - pos);
        i += 1;
        if let Err(e) = d.decode(&input[pos..pos + n], &mut out, &mut replies) {
            return (out, format!("{replies:?}"), Some(e.0));
        }
        pos += n;
    }
    (out, format!("{replies:?}"), None)
}

fuzz_target!(|data: &[u8]| {
    let policy = OriginPolicy {
        same_origin: data.first().is_some_and(|b| b & 1 == 1),
        allowed: vec![("https".into(), "app.example".into(), "443".into())],
    };
    let _ = websocket::parse_upgrade(data, &policy, data.len() % 2 == 0);
    // The first bytes choose the read sizes; the rest is the frame stream.
    let (sizes, frames) = data.split_at(data.len().min(4));
    let chunks: Vec<usize> = sizes.iter().map(|b| usize::from(*b % 17) + 1).collect();
    for inflate in [false, true] {
        let whole = run(frames, &[], inflate);
        let split = run(frames, &chunks, inflate);
        assert_eq!(whole, split);
    }
});
