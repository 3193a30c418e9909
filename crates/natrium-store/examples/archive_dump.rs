//! Prints the entries of a snapshot archive (`stream.tar.s2`): a debugging aid.
use natrium_store::archive::{ArchiveReader, Entry, ReaderOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for path in std::env::args().skip(1) {
        println!("== {path}");
        let f = std::fs::File::open(&path)?;
        let mut r = ArchiveReader::new(f, ReaderOptions::default())?;
        println!("format {:?} {:?}", r.format(), r.v1_report());
        while let Some(e) = r.next_entry()? {
            match e {
                Entry::Message {
                    seq,
                    ts,
                    subject,
                    header,
                    payload,
                } => println!(
                    "msg {seq} {ts} {} hdr={:?} len={}",
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
