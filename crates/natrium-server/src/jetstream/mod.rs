//! JetStream: persistent streams and consumers on top of core NATS.
//!
//! This module grows with the JetStream issues. Today it resolves the server-level
//! JetStream configuration (store directory, memory and storage limits with nats-server's
//! defaults) and prints the startup banner tools look for.

pub mod api;
pub mod config;
