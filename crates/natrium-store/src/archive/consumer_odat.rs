//! Decoder of a filestore consumer's binary state file `obs/<name>/o.dat` (versions 1
//! and 2) into the JSON consumer state of v2 archives.

use super::state_json::{ConsumerStateJson, PendingJson};
use super::varint::SliceCursor;

const ODAT_MAGIC: u8 = 22;

/// Decodes `o.dat`; `Err` carries a reason.
pub fn decode_odat(buf: &[u8]) -> Result<ConsumerStateJson, String> {
    let mut c = SliceCursor::new(buf);
    let bad = |what: &str| format!("truncated or malformed {what}");
    if c.u8() != Some(ODAT_MAGIC) {
        return Err("bad magic".into());
    }
    let version = c.u8().ok_or_else(|| bad("header"))?;
    if version != 1 && version != 2 {
        return Err(format!("unknown version {version}"));
    }
    let mut st = ConsumerStateJson::default();
    st.ack_floor.consumer_seq = c.uvarint().ok_or_else(|| bad("ack floor"))?;
    st.ack_floor.stream_seq = c.uvarint().ok_or_else(|| bad("ack floor"))?;
    st.delivered.consumer_seq = c.uvarint().ok_or_else(|| bad("delivered"))?;
    st.delivered.stream_seq = c.uvarint().ok_or_else(|| bad("delivered"))?;
    if version == 1 {
        // Version 1 stored "next to deliver" relative to the ack floor.
        st.delivered.consumer_seq = st
            .delivered
            .consumer_seq
            .wrapping_add(st.ack_floor.consumer_seq)
            .wrapping_sub(1);
        st.delivered.stream_seq = st
            .delivered
            .stream_seq
            .wrapping_add(st.ack_floor.stream_seq)
            .wrapping_sub(1);
    }
    let npending = c.uvarint().ok_or_else(|| bad("pending count"))?;
    if npending > 0 {
        let base = c.varint().ok_or_else(|| bad("pending base time"))?;
        for _ in 0..npending {
            let sseq = c.uvarint().ok_or_else(|| bad("pending entry"))?;
            let dseq = if version == 2 {
                c.uvarint().ok_or_else(|| bad("pending entry"))?
            } else {
                0
            };
            let ts = c.varint().ok_or_else(|| bad("pending entry"))?;
            if sseq == 0 {
                return Err("pending entry with zero sequence".into());
            }
            let secs = if version == 1 {
                ts.wrapping_add(base)
            } else {
                base.wrapping_sub(ts)
            };
            let dseq = if version == 2 {
                dseq.wrapping_add(st.ack_floor.consumer_seq)
            } else {
                dseq
            };
            st.pending.insert(
                sseq.wrapping_add(st.ack_floor.stream_seq),
                PendingJson {
                    sequence: dseq,
                    timestamp: secs.saturating_mul(1_000_000_000),
                },
            );
        }
    }
    let nredel = c.uvarint().ok_or_else(|| bad("redelivered count"))?;
    for _ in 0..nredel {
        let seq = c.uvarint().ok_or_else(|| bad("redelivered entry"))?;
        let n = c.uvarint().ok_or_else(|| bad("redelivered entry"))?;
        if seq == 0 || n == 0 {
            return Err("redelivered entry with zero sequence or count".into());
        }
        let seq = if version == 2 {
            seq.wrapping_add(st.ack_floor.stream_seq)
        } else {
            seq
        };
        st.redelivered.insert(seq, n);
    }
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples() {
        let c1 = [
            0x16, 0x02, 0x02, 0x02, 0x03, 0x03, 0x01, 0xf2, 0x87, 0xd7, 0xb0, 0x0d, 0x01, 0x01,
            0x00, 0x00,
        ];
        let st = decode_odat(&c1).unwrap();
        assert_eq!((st.delivered.consumer_seq, st.delivered.stream_seq), (3, 3));
        assert_eq!((st.ack_floor.consumer_seq, st.ack_floor.stream_seq), (2, 2));
        assert_eq!(st.pending.len(), 1);
        assert_eq!(st.pending[&3].sequence, 3);
        assert!(st.redelivered.is_empty());
        let c2 = [0x16, 0x02, 0, 0, 0, 0, 0, 0];
        assert_eq!(decode_odat(&c2).unwrap(), ConsumerStateJson::default());
        assert!(decode_odat(&c1[..9]).is_err());
        // Version 1: delivered stored as "next" relative to the ack floor, pending without
        // consumer sequence and with positive time offsets, redelivered absolute.
        let v1 = [22, 1, 2, 2, 2, 2, 1, 0xc8, 0x01, 1, 10, 1, 3, 2];
        let st = decode_odat(&v1).unwrap();
        assert_eq!((st.delivered.consumer_seq, st.delivered.stream_seq), (3, 3));
        assert_eq!((st.ack_floor.consumer_seq, st.ack_floor.stream_seq), (2, 2));
        assert_eq!(
            st.pending[&3],
            PendingJson {
                sequence: 0,
                timestamp: 105_000_000_000
            }
        );
        assert_eq!(st.redelivered[&3], 2);
        // Zero redelivery count is corrupt.
        assert!(decode_odat(&[22, 2, 0, 0, 0, 0, 0, 1, 1, 0]).is_err());
        assert!(decode_odat(&[0x17, 2]).is_err());
    }
}
