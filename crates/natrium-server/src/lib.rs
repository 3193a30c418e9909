//! Natrium: a NATS server with JetStream persistence.
//!
//! The crate is a library first so that tests can run a server in-process on port 0; the
//! `natrium-server` binary is a thin wrapper over [`server::Server`].

pub mod conf;
pub mod sublist;
