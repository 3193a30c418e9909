//! Fuzz the backup archive readers: any bytes, as a framed archive, as the decompressed
//! content behind valid framing (reaching the v2 and v1 tar decoders), or as one S2 block,
//! must never panic and never run away.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use natrium_store::archive::s2_frame::decode_block;
use natrium_store::archive::{ArchiveReader, ReaderOptions, S2FrameWriter};

fn drain(bytes: &[u8]) {
    let opts = ReaderOptions { max_msg_size: 1 << 16, ..ReaderOptions::default() };
    if let Ok(mut r) = ArchiveReader::new(bytes, opts) {
        for _ in 0..100_000 {
            match r.next_entry() {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    match mode % 3 {
        0 => drain(rest),
        1 => {
            let mut w = S2FrameWriter::new(Vec::new());
            if w.write_all(rest).is_ok() {
                if let Ok(framed) = w.finish() {
                    drain(&framed);
                }
            }
        }
        _ => {
            let mut dst = Vec::new();
            let _ = decode_block(rest, &mut dst, 1 << 20);
        }
    }
});
