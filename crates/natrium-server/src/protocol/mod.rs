//! The NATS client wire protocol: parsing what clients send and writing what they receive.
//!
//! The parser is pure (no I/O) so it can be tested and fuzzed in isolation; see
//! [`parser`]. The server-to-client side lives in [`write`], which formats `MSG`/`HMSG`
//! lines straight into a connection's outbound buffer.

pub mod connect;
pub mod parser;
pub mod write;

pub use parser::{ClientOp, ParseError, Parsed, Parser, ParserLimits, PubMsg};
