//! Natrium: a NATS server with JetStream persistence.
//!
//! The crate is a library first so that tests can run a server in-process on port 0; the
//! `natrium-server` binary is a thin wrapper over [`server::Server`].

pub mod account;
pub mod auth;
pub mod client;
pub mod conf;
pub mod config_accounts;
pub mod config_auth_callout;
pub mod config_file;
pub mod config_operator;
pub mod config_tls;
pub mod config_websocket;
pub mod flags;
pub mod interest_watch;
pub mod jetstream;
pub mod jwt;
pub mod logging;
pub mod monitor;
pub mod options;
pub mod protocol;
pub mod server;
pub mod signals;
pub mod subject_mapping;
pub mod sublist;
pub mod system;
pub mod tls;
pub mod tls_identity;
pub mod websocket_listener;
