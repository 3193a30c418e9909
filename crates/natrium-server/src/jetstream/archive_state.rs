//! Consumer state in the JSON shape snapshot archives carry (`consumers/<name>` entries).
//!
//! Why a module of its own: the shape is nats-server's Go `ConsumerState` marshalled with
//! `encoding/json`, which is not how we store state. `pending` is keyed by the stream
//! sequence as a string and its values use Go's field names (`Sequence`, `Timestamp`);
//! `redelivered` maps stream sequences to counts; both are left out when empty. Both
//! directions live here, as pure functions, so snapshot and restore agree and the rules
//! (clamping to the snapshot's last sequence) are unit-tested.

use natrium_store::consumer::{ConsumerState, Pending, SequencePair};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Most pending or redelivered entries accepted from an archive (bounds memory on input
/// we did not write).
pub const MAX_ENTRIES: usize = 10_000_000;

/// `state` as archive JSON, as of a snapshot whose last stream sequence is `last_seq`:
/// stream sequences above it are clamped (delivered, ack floor) or dropped (pending,
/// redelivered), so the state never refers to messages the archive does not hold.
pub fn to_json(state: &ConsumerState, last_seq: u64) -> Value {
    let pair = |p: SequencePair| {
        json!({
            "consumer_seq": p.consumer,
            "stream_seq": p.stream.min(last_seq),
        })
    };
    let mut out = Map::new();
    out.insert("delivered".into(), pair(state.delivered));
    out.insert("ack_floor".into(), pair(state.ack_floor));
    let pending: Map<String, Value> = state
        .pending
        .range(..=last_seq)
        .map(|(seq, p)| {
            (
                seq.to_string(),
                json!({"Sequence": p.sequence, "Timestamp": p.timestamp}),
            )
        })
        .collect();
    if !pending.is_empty() {
        out.insert("pending".into(), Value::Object(pending));
    }
    let redelivered: Map<String, Value> = state
        .redelivered
        .range(..=last_seq)
        .map(|(seq, n)| (seq.to_string(), json!(n)))
        .collect();
    if !redelivered.is_empty() {
        out.insert("redelivered".into(), Value::Object(redelivered));
    }
    Value::Object(out)
}

/// Why an archive's consumer state was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid consumer state: {0}")]
pub struct StateError(String);

fn bad(what: impl Into<String>) -> StateError {
    StateError(what.into())
}

/// Parse archive JSON back into a state, checking it is coherent (the ack floor is not
/// past what was delivered; pending entries lie between the two).
pub fn from_json(v: &Value) -> Result<ConsumerState, StateError> {
    let obj = v.as_object().ok_or_else(|| bad("not an object"))?;
    let num = |v: &Value, what: &str| {
        v.as_u64()
            .ok_or_else(|| bad(format!("{what} is not a number")))
    };
    let pair = |key: &str| -> Result<SequencePair, StateError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(SequencePair::default()),
            Some(Value::Object(p)) => Ok(SequencePair {
                consumer: p
                    .get("consumer_seq")
                    .map(|v| num(v, key))
                    .transpose()?
                    .unwrap_or(0),
                stream: p
                    .get("stream_seq")
                    .map(|v| num(v, key))
                    .transpose()?
                    .unwrap_or(0),
            }),
            Some(_) => Err(bad(format!("{key} is not an object"))),
        }
    };
    let delivered = pair("delivered")?;
    let ack_floor = pair("ack_floor")?;
    let map = |key: &str| -> Result<Vec<(u64, Value)>, StateError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Object(m)) => {
                if m.len() > MAX_ENTRIES {
                    return Err(bad(format!("too many {key} entries")));
                }
                m.iter()
                    .map(|(k, v)| {
                        k.parse::<u64>()
                            .map(|seq| (seq, v.clone()))
                            .map_err(|_| bad(format!("{key} key {k:?} is not a sequence")))
                    })
                    .collect()
            }
            Some(_) => Err(bad(format!("{key} is not an object"))),
        }
    };
    let mut pending = BTreeMap::new();
    for (seq, v) in map("pending")? {
        let p = v
            .as_object()
            .ok_or_else(|| bad("pending entry is not an object"))?;
        let sequence = p
            .get("Sequence")
            .map(|v| num(v, "pending"))
            .transpose()?
            .unwrap_or(0);
        let timestamp = p.get("Timestamp").and_then(Value::as_i64).unwrap_or(0);
        pending.insert(
            seq,
            Pending {
                sequence,
                timestamp,
            },
        );
    }
    let mut redelivered = BTreeMap::new();
    for (seq, v) in map("redelivered")? {
        redelivered.insert(seq, num(&v, "redelivered")?);
    }
    if ack_floor.stream > delivered.stream || ack_floor.consumer > delivered.consumer {
        return Err(bad(format!(
            "ack floor {}/{} is past delivered {}/{}",
            ack_floor.consumer, ack_floor.stream, delivered.consumer, delivered.stream
        )));
    }
    if let Some((&seq, _)) = pending
        .iter()
        .find(|(s, _)| **s <= ack_floor.stream || **s > delivered.stream)
    {
        return Err(bad(format!(
            "pending sequence {seq} outside ack floor {} .. delivered {}",
            ack_floor.stream, delivered.stream
        )));
    }
    Ok(ConsumerState {
        delivered,
        ack_floor,
        pending,
        redelivered,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ConsumerState {
        let mut s = ConsumerState {
            delivered: SequencePair {
                consumer: 3,
                stream: 3,
            },
            ack_floor: SequencePair {
                consumer: 2,
                stream: 2,
            },
            ..ConsumerState::default()
        };
        s.pending.insert(
            3,
            Pending {
                sequence: 3,
                timestamp: 1_795_875_321_030_554_332,
            },
        );
        s
    }

    #[test]
    fn matches_the_nats_server_shape() {
        // The C1 consumer of samples/backup/ORDERS.stream.tar.s2.
        let want: Value = serde_json::from_str(
            r#"{"delivered":{"consumer_seq":3,"stream_seq":3},"ack_floor":{"consumer_seq":2,"stream_seq":2},"pending":{"3":{"Sequence":3,"Timestamp":1795875321030554332}}}"#,
        )
        .unwrap();
        assert_eq!(to_json(&sample(), 49), want);
        assert_eq!(from_json(&want).unwrap(), sample());
    }

    #[test]
    fn empty_maps_are_left_out() {
        let v = to_json(&ConsumerState::default(), 10);
        assert!(v.get("pending").is_none());
        assert!(v.get("redelivered").is_none());
        assert_eq!(from_json(&v).unwrap(), ConsumerState::default());
    }

    #[test]
    fn clamps_to_the_snapshot() {
        let mut s = sample();
        s.delivered = SequencePair {
            consumer: 9,
            stream: 9,
        };
        s.pending.insert(
            8,
            Pending {
                sequence: 8,
                timestamp: 1,
            },
        );
        s.redelivered.insert(8, 2);
        s.redelivered.insert(3, 1);
        let v = to_json(&s, 5);
        assert_eq!(v["delivered"]["stream_seq"], 5);
        assert_eq!(v["delivered"]["consumer_seq"], 9);
        assert!(v["pending"].get("8").is_none());
        assert!(v["pending"].get("3").is_some());
        assert_eq!(v["redelivered"], json!({"3": 1}));
    }

    #[test]
    fn refuses_incoherent_state() {
        for bad in [
            r#"{"delivered":{"consumer_seq":1,"stream_seq":1},"ack_floor":{"consumer_seq":2,"stream_seq":2}}"#,
            r#"{"delivered":{"consumer_seq":3,"stream_seq":3},"ack_floor":{"consumer_seq":1,"stream_seq":1},"pending":{"9":{"Sequence":1,"Timestamp":0}}}"#,
            r#"{"pending":{"x":{}}}"#,
            r#"{"delivered":"no"}"#,
            r#"[]"#,
        ] {
            let v: Value = serde_json::from_str(bad).unwrap();
            assert!(from_json(&v).is_err(), "{bad}");
        }
    }
}
