//! JetStream: persistent streams and consumers on top of core NATS.
//!
//! - `config`: the server-level configuration (store directory, limits, banner);
//! - `limits`: server, account and stream storage limits (reservations, publish checks);
//! - `engine`: which accounts have JetStream, their streams, recovery from disk;
//! - `stream`: one stream and its publish pipeline (checks, append, group commit, PubAck);
//!   `counter`: message counters (`Nats-Incr`) it applies; `sourcing`: mirrors and
//!   sources, which copy other streams' messages into it;
//! - `consumer`: consumers (state machine, delivery task, ack and pull subjects);
//! - `api_server`: the `$JS.API.>` subscription and its worker; `api_streams`,
//!   `api_consumers` and `direct` answer the account, stream and consumer requests;
//! - `snapshot`, `restore` (with `archive_state`): online backup and atomic restore of
//!   a stream over nats-server's chunk protocol;
//! - `api`: the wire types, with nats-server's exact JSON.

pub mod account_snapshot;
pub mod advisory;
pub mod api;
pub mod api_consumers;
pub mod api_server;
pub mod api_streams;
pub mod archive_state;
pub mod atomic_batch;
pub mod background;
pub mod config;
pub mod consumer;
pub mod counter;
pub mod direct;
pub mod engine;
pub mod fast_batch;
pub mod headers;
pub mod limits;
pub mod restore;
pub mod schedule;
pub mod snapshot;
pub mod sourcing;
pub mod stream;
