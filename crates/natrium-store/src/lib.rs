//! Natrium's JetStream storage engine.
//!
//! Why this crate exists on its own: storage is where a streaming server earns or loses
//! its users' trust. nats-server has lost acknowledged writes under its default 2-minute
//! fsync interval (nats-server#7564), lost whole streams after a few `kill -9`s (#6888),
//! and stopped accepting publishes over one truncated block (#7704). This crate is built
//! so those cannot happen here, and it is kept free of networking and async runtimes so
//! that both the server and an offline CLI (inspection, repair, backup) link the same code.
//!
//! What it provides:
//! * [`StreamStore`] — the storage interface of one JetStream stream, with two
//!   implementations: [`MemStore`] (memory) and [`FileStore`] (append-only segment files,
//!   checksummed records, group-committed fsync, crash recovery).
//! * [`ConsumerStore`] — durable consumer state (delivered, ack floor, pending,
//!   redelivered), memory and file flavours, and [`consumer_snapshots`] (memory state
//!   snapshotted into a file store on commit, for ephemeral consumers).
//! * With the `testing` feature, `conformance` — one test suite that every
//!   `StreamStore` must pass, reusable by other crates.
//!
//! The on-disk format, the durability guarantees and the lock order are documented in
//! the crate README and in [`mod@file`].

pub mod archive;
pub mod consumer;
pub mod consumer_snapshots;
pub mod error;
pub mod file;
pub mod gauge;
pub(crate) mod index;
pub mod mem;
pub mod stream;
pub mod subject;
pub mod types;

#[cfg(feature = "testing")]
pub mod conformance;

pub use consumer::{
    AckPolicy, ConsumerPolicy, ConsumerState, ConsumerStore, MemConsumerStore, Pending,
    SequencePair,
};
pub use error::{CorruptLocation, Result, StoreError};
#[cfg(feature = "testing")]
pub use file::InjectedFault;
pub use file::{FileConsumerStore, FileStore, FileStoreOptions, RecoveryReport};
pub use gauge::BytesGauge;
pub use mem::MemStore;
pub use stream::{PinnedView, StreamStore};
pub use subject::{SubjectFilter, subject_matches, validate_subject};
pub use types::{
    Clock, DiscardPolicy, Durability, ExpireReport, GroupAck, GroupMsg, ManualClock, MsgRef,
    SimpleState, StorageType, StoreAck, StoreConfig, StoredMsg, StreamState, SystemClock, Ticket,
    Ttl, file_msg_size, mem_msg_size,
};

/// Largest headers + payload a store accepts (64 MiB), whatever `max_msg_size` says. It
/// bounds every allocation whose size comes from a record length on disk.
pub const HARD_MAX_MSG_SIZE: u64 = 64 * 1024 * 1024;
