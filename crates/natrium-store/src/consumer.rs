//! Durable consumer state: what was delivered, what was acknowledged, what is pending.
//!
//! Why a separate store per consumer: a consumer's state changes on every delivery and
//! every ack, independently of the stream's messages. The state machine (how a delivery
//! or an ack changes delivered / ack floor / pending / redelivered) lives once in
//! [`ConsumerState::apply_delivered`] and [`ConsumerState::apply_ack`], following
//! nats-server's consumer store semantics; the memory flavour keeps the state, the file
//! flavour ([`crate::file::FileConsumerStore`]) also logs every operation so a restart —
//! or a SIGKILL — replays to the same state.
//!
//! Safety rule: recovery never moves the ack floor or delivered sequences backwards past
//! what was persisted. Replaying an operation is idempotent and the state only moves
//! forward, so a log that overlaps a snapshot cannot regress it.

use std::collections::BTreeMap;

use parking_lot::Mutex;

use crate::error::{CorruptLocation, Result, StoreError};
use crate::types::StorageType;

/// A (consumer sequence, stream sequence) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SequencePair {
    /// Consumer (delivery) sequence.
    pub consumer: u64,
    /// Stream sequence.
    pub stream: u64,
}

/// A delivered, not yet acknowledged message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pending {
    /// The consumer sequence of the original delivery.
    pub sequence: u64,
    /// Time of the last delivery, Unix nanos.
    pub timestamp: i64,
}

/// A consumer's durable state (JetStream `ConsumerState`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerState {
    /// Highest delivered sequences.
    pub delivered: SequencePair,
    /// Everything at or below this is acknowledged.
    pub ack_floor: SequencePair,
    /// Stream sequence → pending delivery.
    pub pending: BTreeMap<u64, Pending>,
    /// Stream sequence → number of redeliveries.
    pub redelivered: BTreeMap<u64, u64>,
}

/// JetStream ack policies, as far as the store needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AckPolicy {
    /// No acks: delivered is also acknowledged.
    None,
    /// Acking a message acks everything before it.
    All,
    /// Each message is acked individually.
    #[default]
    Explicit,
}

/// The parts of a consumer's config the state machine depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConsumerPolicy {
    /// Ack policy.
    pub ack: AckPolicy,
    /// `max_deliver`; a message delivered more often leaves the pending set.
    pub max_deliver: Option<u64>,
}

impl ConsumerState {
    /// True if anything was ever delivered or a start sequence was set.
    pub fn has_state(&self) -> bool {
        self.delivered.consumer != 0 || self.delivered.stream != 0
    }

    /// Sets the starting stream sequence (delivered and ack floor).
    pub fn set_starting(&mut self, sseq: u64) {
        self.delivered.stream = sseq;
        self.ack_floor.stream = sseq;
    }

    /// Moves the starting stream sequence forward.
    pub fn update_starting(&mut self, sseq: u64, policy: &ConsumerPolicy) {
        if sseq > self.delivered.stream {
            self.delivered.stream = sseq;
            if policy.ack == AckPolicy::None {
                self.ack_floor.stream = sseq;
            }
        }
    }

    /// Records a delivery of stream seq `sseq` as consumer seq `dseq`, delivery count
    /// `dc`, at `ts`.
    pub fn apply_delivered(
        &mut self,
        dseq: u64,
        sseq: u64,
        dc: u64,
        ts: i64,
        policy: &ConsumerPolicy,
    ) -> Result<()> {
        if dc != 1 && policy.ack == AckPolicy::None {
            return Err(StoreError::NoAckPolicy);
        }
        // A replay of something already below the ack floor changes nothing.
        if dseq <= self.ack_floor.consumer {
            return Ok(());
        }
        if policy.ack == AckPolicy::None {
            if dseq > self.delivered.consumer {
                self.delivered.consumer = dseq;
                self.ack_floor.consumer = dseq;
            }
            if sseq > self.delivered.stream {
                self.delivered.stream = sseq;
                self.ack_floor.stream = sseq;
            }
            return Ok(());
        }
        if sseq <= self.delivered.stream {
            if let Some(p) = self.pending.get_mut(&sseq) {
                // Keep the original delivery sequence; refresh the timestamp.
                p.timestamp = ts;
            }
        } else {
            self.pending.insert(
                sseq,
                Pending {
                    sequence: dseq,
                    timestamp: ts,
                },
            );
        }
        self.delivered.consumer = self.delivered.consumer.max(dseq);
        self.delivered.stream = self.delivered.stream.max(sseq);
        if dc > 1 {
            if let Some(maxdc) = policy.max_deliver
                && maxdc > 0
                && dc > maxdc
            {
                self.pending.remove(&sseq);
            }
            let r = self.redelivered.entry(sseq).or_insert(0);
            if *r < dc - 1 {
                *r = dc - 1;
            }
        }
        Ok(())
    }

    /// Records an ack of stream seq `sseq` delivered as consumer seq `dseq`.
    pub fn apply_ack(&mut self, dseq: u64, sseq: u64, policy: &ConsumerPolicy) -> Result<()> {
        if policy.ack == AckPolicy::None {
            return Err(StoreError::NoAckPolicy);
        }
        self.redelivered.remove(&sseq);
        if dseq <= self.ack_floor.consumer {
            return Ok(());
        }
        if !self.pending.contains_key(&sseq) {
            return Err(StoreError::NotFound);
        }
        if policy.ack == AckPolicy::All {
            self.ack_floor = SequencePair {
                consumer: dseq,
                stream: sseq,
            };
            self.pending = self.pending.split_off(&(sseq + 1));
            self.redelivered = self.redelivered.split_off(&(sseq + 1));
            return Ok(());
        }
        let mut dseq = dseq;
        if let Some(p) = self.pending.remove(&sseq)
            && dseq > p.sequence
            && p.sequence > 0
        {
            dseq = p.sequence;
        }
        if self.pending.is_empty() {
            self.ack_floor = self.delivered;
        } else if dseq == self.ack_floor.consumer + 1 {
            self.ack_floor = SequencePair {
                consumer: dseq,
                stream: sseq,
            };
            // The floor rises to just below the oldest still-pending delivery.
            if self.delivered.consumer > dseq
                && let Some((&ss, p)) = self.pending.range(sseq + 1..).next()
                && p.sequence > 0
            {
                self.ack_floor = SequencePair {
                    consumer: p.sequence - 1,
                    stream: ss - 1,
                };
            }
        }
        Ok(())
    }

    /// Drops redelivery counts below `seq`.
    pub fn remove_redelivered_below(&mut self, seq: u64) {
        if seq > 0 {
            self.redelivered = self.redelivered.split_off(&seq);
        }
    }

    /// Validates a full-state replacement.
    pub fn validate(&self) -> Result<()> {
        if self.ack_floor.consumer > self.delivered.consumer {
            return Err(StoreError::InvalidArgument(
                "bad ack floor for consumer".into(),
            ));
        }
        if self.ack_floor.stream > self.delivered.stream {
            return Err(StoreError::InvalidArgument(
                "bad ack floor for stream".into(),
            ));
        }
        for &seq in self.pending.keys() {
            if seq <= self.ack_floor.stream || seq > self.delivered.stream {
                return Err(StoreError::InvalidArgument(format!(
                    "bad pending entry, sequence [{seq}] out of range"
                )));
            }
        }
        Ok(())
    }

    /// Encodes the state (format: see README "Consumer state encoding").
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(32 + self.pending.len() * 12 + self.redelivered.len() * 6);
        b.extend_from_slice(&STATE_MAGIC);
        b.push(STATE_VERSION);
        put_uvarint(&mut b, self.ack_floor.consumer);
        put_uvarint(&mut b, self.ack_floor.stream);
        put_uvarint(&mut b, self.delivered.consumer);
        put_uvarint(&mut b, self.delivered.stream);
        put_uvarint(&mut b, self.pending.len() as u64);
        for (&s, p) in &self.pending {
            put_uvarint(&mut b, s.wrapping_sub(self.ack_floor.stream));
            put_uvarint(&mut b, p.sequence.wrapping_sub(self.ack_floor.consumer));
            put_varint(&mut b, p.timestamp);
        }
        put_uvarint(&mut b, self.redelivered.len() as u64);
        for (&s, &n) in &self.redelivered {
            put_uvarint(&mut b, s);
            put_uvarint(&mut b, n);
        }
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes [`ConsumerState::encode`] output, verifying magic, version and checksum.
    pub fn decode(buf: &[u8]) -> Result<ConsumerState> {
        let bad = |d: &str| StoreError::Corrupt {
            location: CorruptLocation::File("consumer state".into()),
            detail: d.to_string(),
        };
        if buf.len() < STATE_MAGIC.len() + 1 + 4 {
            return Err(bad("too short"));
        }
        let (body, crc) = buf.split_at(buf.len() - 4);
        let want = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if crc32c::crc32c(body) != want {
            return Err(bad("checksum mismatch"));
        }
        if body[..4] != STATE_MAGIC {
            return Err(bad("bad magic"));
        }
        if body[4] != STATE_VERSION {
            return Err(bad(&format!("unsupported version {}", body[4])));
        }
        let mut r = Reader { b: body, at: 5 };
        let mut st = ConsumerState::default();
        st.ack_floor.consumer = r.uvarint().ok_or_else(|| bad("truncated"))?;
        st.ack_floor.stream = r.uvarint().ok_or_else(|| bad("truncated"))?;
        st.delivered.consumer = r.uvarint().ok_or_else(|| bad("truncated"))?;
        st.delivered.stream = r.uvarint().ok_or_else(|| bad("truncated"))?;
        let np = r.uvarint().ok_or_else(|| bad("truncated"))?;
        // Each pending entry takes at least 3 bytes: bound the count by what is left.
        if np > (r.remaining() / 3) as u64 {
            return Err(bad("pending count exceeds data"));
        }
        for _ in 0..np {
            let s = r.uvarint().ok_or_else(|| bad("truncated"))?;
            let d = r.uvarint().ok_or_else(|| bad("truncated"))?;
            let ts = r.varint().ok_or_else(|| bad("truncated"))?;
            st.pending.insert(
                s.wrapping_add(st.ack_floor.stream),
                Pending {
                    sequence: d.wrapping_add(st.ack_floor.consumer),
                    timestamp: ts,
                },
            );
        }
        let nr = r.uvarint().ok_or_else(|| bad("truncated"))?;
        if nr > (r.remaining() / 2) as u64 {
            return Err(bad("redelivered count exceeds data"));
        }
        for _ in 0..nr {
            let s = r.uvarint().ok_or_else(|| bad("truncated"))?;
            let n = r.uvarint().ok_or_else(|| bad("truncated"))?;
            st.redelivered.insert(s, n);
        }
        if r.remaining() != 0 {
            return Err(bad("trailing bytes"));
        }
        Ok(st)
    }
}

/// Magic of an encoded consumer state.
const STATE_MAGIC: [u8; 4] = *b"NCST";
/// Version of the consumer state encoding.
const STATE_VERSION: u8 = 1;

pub(crate) fn put_uvarint(b: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        b.push((v as u8) | 0x80);
        v >>= 7;
    }
    b.push(v as u8);
}

pub(crate) fn put_varint(b: &mut Vec<u8>, v: i64) {
    put_uvarint(b, ((v << 1) ^ (v >> 63)) as u64);
}

/// Bounds-checked varint reader.
pub(crate) struct Reader<'a> {
    /// The buffer.
    pub b: &'a [u8],
    /// Read position.
    pub at: usize,
}

impl Reader<'_> {
    pub fn remaining(&self) -> usize {
        self.b.len().saturating_sub(self.at)
    }
    pub fn uvarint(&mut self) -> Option<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = *self.b.get(self.at)?;
            self.at += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    pub fn varint(&mut self) -> Option<i64> {
        let u = self.uvarint()?;
        Some(((u >> 1) as i64) ^ -((u & 1) as i64))
    }
}

/// Storage for one durable consumer's state.
pub trait ConsumerStore: Send + Sync {
    /// The consumer's name.
    fn name(&self) -> &str;
    /// Memory or file.
    fn storage_type(&self) -> StorageType;
    /// Sets the starting stream sequence.
    fn set_starting(&self, sseq: u64) -> Result<()>;
    /// Moves the starting stream sequence forward.
    fn update_starting(&self, sseq: u64) -> Result<()>;
    /// Clears all state and sets the starting sequence.
    fn reset(&self, sseq: u64) -> Result<()>;
    /// True if there is recorded state.
    fn has_state(&self) -> bool;
    /// Records a delivery.
    fn update_delivered(&self, dseq: u64, sseq: u64, dc: u64, ts: i64) -> Result<()>;
    /// Records an acknowledgement.
    fn update_acks(&self, dseq: u64, sseq: u64) -> Result<()>;
    /// Drops redelivery counts below `seq`.
    fn remove_redelivered_below(&self, seq: u64) -> Result<()>;
    /// Replaces the state, refusing one older than the current (`OldUpdate`).
    fn update(&self, state: &ConsumerState) -> Result<()>;
    /// Replaces the state unconditionally (after validation).
    fn force_update(&self, state: &ConsumerState) -> Result<()>;
    /// A copy of the state.
    fn state(&self) -> ConsumerState;
    /// The encoded state ([`ConsumerState::encode`]).
    fn encoded_state(&self) -> Vec<u8> {
        self.state().encode()
    }
    /// Persists the server's opaque consumer config blob.
    fn write_config(&self, cfg: &[u8]) -> Result<()>;
    /// Switch to owner-driven group commit: ops are kept in memory and written only by
    /// [`ConsumerStore::commit`] (or when a batch grows large). Memory stores ignore it.
    fn set_deferred(&self, _on: bool) {}
    /// Write deferred ops to the OS, and fsync them if `durable`. The owner calls it once
    /// per batch of deliveries and acks, so many ops share one fsync.
    fn commit(&self, _durable: bool) -> Result<()> {
        Ok(())
    }
    /// The stored config blob.
    fn config(&self) -> Result<Option<Vec<u8>>>;
    /// Makes all updates durable now.
    fn sync(&self) -> Result<()>;
    /// Flushes and closes.
    fn stop(&self) -> Result<()>;
    /// Removes the stored state.
    fn delete(&self) -> Result<()>;
}

/// Shared implementation of the state-replacement rules.
pub(crate) fn check_update(cur: &ConsumerState, new: &ConsumerState) -> Result<()> {
    new.validate()?;
    if new.delivered.consumer < cur.delivered.consumer
        || new.ack_floor.stream < cur.ack_floor.stream
    {
        return Err(StoreError::OldUpdate);
    }
    Ok(())
}

/// In-memory consumer store.
#[derive(Debug)]
pub struct MemConsumerStore {
    /// Consumer name.
    name: String,
    /// Policy.
    policy: ConsumerPolicy,
    /// State and config blob; `None` state after stop.
    inner: Mutex<MemConsumerInner>,
}

#[derive(Debug, Default)]
struct MemConsumerInner {
    /// The state.
    state: ConsumerState,
    /// Opaque config.
    cfg: Option<Vec<u8>>,
    /// Stopped.
    closed: bool,
}

impl MemConsumerStore {
    /// A new, empty consumer store.
    pub fn new(name: &str, policy: ConsumerPolicy) -> Self {
        MemConsumerStore {
            name: name.to_string(),
            policy,
            inner: Mutex::new(MemConsumerInner::default()),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut MemConsumerInner) -> Result<R>) -> Result<R> {
        let mut g = self.inner.lock();
        if g.closed {
            return Err(StoreError::Closed);
        }
        f(&mut g)
    }
}

impl ConsumerStore for MemConsumerStore {
    fn name(&self) -> &str {
        &self.name
    }
    fn storage_type(&self) -> StorageType {
        StorageType::Memory
    }
    fn set_starting(&self, sseq: u64) -> Result<()> {
        self.with(|i| {
            i.state.set_starting(sseq);
            Ok(())
        })
    }
    fn update_starting(&self, sseq: u64) -> Result<()> {
        self.with(|i| {
            i.state.update_starting(sseq, &self.policy);
            Ok(())
        })
    }
    fn reset(&self, sseq: u64) -> Result<()> {
        self.with(|i| {
            i.state = ConsumerState::default();
            i.state.set_starting(sseq);
            Ok(())
        })
    }
    fn has_state(&self) -> bool {
        self.inner.lock().state.has_state()
    }
    fn update_delivered(&self, dseq: u64, sseq: u64, dc: u64, ts: i64) -> Result<()> {
        self.with(|i| i.state.apply_delivered(dseq, sseq, dc, ts, &self.policy))
    }
    fn update_acks(&self, dseq: u64, sseq: u64) -> Result<()> {
        self.with(|i| i.state.apply_ack(dseq, sseq, &self.policy))
    }
    fn remove_redelivered_below(&self, seq: u64) -> Result<()> {
        self.with(|i| {
            i.state.remove_redelivered_below(seq);
            Ok(())
        })
    }
    fn update(&self, state: &ConsumerState) -> Result<()> {
        self.with(|i| {
            check_update(&i.state, state)?;
            i.state = state.clone();
            Ok(())
        })
    }
    fn force_update(&self, state: &ConsumerState) -> Result<()> {
        self.with(|i| {
            state.validate()?;
            i.state = state.clone();
            Ok(())
        })
    }
    fn state(&self) -> ConsumerState {
        self.inner.lock().state.clone()
    }
    fn write_config(&self, cfg: &[u8]) -> Result<()> {
        self.with(|i| {
            i.cfg = Some(cfg.to_vec());
            Ok(())
        })
    }
    fn config(&self) -> Result<Option<Vec<u8>>> {
        self.with(|i| Ok(i.cfg.clone()))
    }
    fn sync(&self) -> Result<()> {
        Ok(())
    }
    fn stop(&self) -> Result<()> {
        self.inner.lock().closed = true;
        Ok(())
    }
    fn delete(&self) -> Result<()> {
        let mut g = self.inner.lock();
        g.closed = true;
        g.state = ConsumerState::default();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_roundtrip_and_corruption() {
        let mut st = ConsumerState::default();
        let p = ConsumerPolicy::default();
        for i in 1..=10u64 {
            st.apply_delivered(i, i * 2, 1, 1_000 + i as i64, &p)
                .unwrap();
        }
        st.apply_delivered(3, 6, 2, 5_000, &p).unwrap();
        st.apply_ack(1, 2, &p).unwrap();
        let enc = st.encode();
        assert_eq!(ConsumerState::decode(&enc).unwrap(), st);
        for i in 0..enc.len() {
            let mut bad = enc.clone();
            bad[i] ^= 0x41;
            assert!(
                ConsumerState::decode(&bad).is_err(),
                "flip at {i} undetected"
            );
        }
        assert!(ConsumerState::decode(&enc[..enc.len() - 1]).is_err());
    }

    #[test]
    fn explicit_ack_floor_moves() {
        let mut st = ConsumerState::default();
        let p = ConsumerPolicy::default();
        for i in 1..=3u64 {
            st.apply_delivered(i, i, 1, 0, &p).unwrap();
        }
        st.apply_ack(2, 2, &p).unwrap();
        assert_eq!(st.ack_floor, SequencePair::default());
        st.apply_ack(1, 1, &p).unwrap();
        assert_eq!(
            st.ack_floor,
            SequencePair {
                consumer: 2,
                stream: 2
            }
        );
        st.apply_ack(3, 3, &p).unwrap();
        assert_eq!(st.ack_floor, st.delivered);
        assert!(st.pending.is_empty());
        assert!(matches!(st.apply_ack(9, 9, &p), Err(StoreError::NotFound)));
        // Replays below the floor are accepted and change nothing.
        let before = st.clone();
        st.apply_ack(1, 1, &p).unwrap();
        assert_eq!(st, before);
    }

    #[test]
    fn ack_all_and_redelivery() {
        let mut st = ConsumerState::default();
        let p = ConsumerPolicy {
            ack: AckPolicy::All,
            max_deliver: Some(2),
        };
        for i in 1..=5u64 {
            st.apply_delivered(i, i + 10, 1, 0, &p).unwrap();
        }
        st.apply_delivered(6, 12, 2, 0, &p).unwrap();
        assert_eq!(st.redelivered.get(&12), Some(&1));
        st.apply_delivered(7, 13, 3, 0, &p).unwrap();
        assert!(!st.pending.contains_key(&13), "max_deliver drops pending");
        st.apply_ack(4, 14, &p).unwrap();
        assert_eq!(st.ack_floor.stream, 14);
        assert_eq!(st.pending.keys().copied().collect::<Vec<_>>(), vec![15]);
        assert!(st.redelivered.is_empty());
    }
}
