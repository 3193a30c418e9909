//! Prints the entries of snapshot archives (`stream.tar.s2`): a debugging aid.
//! `archive_dump FILE...` lists entries; `archive_dump --raw FILE` writes the
//! decompressed content of FILE to stdout.
use std::io::{Read, Write};

use natrium_store::archive::{ArchiveReader, Entry, ReaderOptions, S2FrameReader};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--raw") {
        for path in &args[1..] {
            let mut plain = Vec::new();
            S2FrameReader::new(std::fs::File::open(path)?).read_to_end(&mut plain)?;
            std::io::stdout().write_all(&plain)?;
        }
        return Ok(());
    }
    for path in args {
        println!("== {path}");
        let f = std::io::BufReader::new(std::fs::File::open(&path)?);
        let mut r = ArchiveReader::new(f, ReaderOptions::default())?;
        println!("format {:?}", r.format());
        if let Some(rep) = r.v1_report() {
            println!("v1 report {rep:?}");
        }
        while let Some(e) = r.next_entry()? {
            match e {
                Entry::Message {
                    seq,
                    ts,
                    subject,
                    header,
                    payload,
                } => println!(
                    "msg {seq} ts={ts} {} hdr={:?} len={}",
                    String::from_utf8_lossy(&subject),
                    String::from_utf8_lossy(&header),
                    payload.len()
                ),
                other => println!("{other:?}"),
            }
        }
        println!("frames {:?}", r.frame_stats());
    }
    Ok(())
}
