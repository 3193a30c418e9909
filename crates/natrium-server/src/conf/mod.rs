//! NATS config file parser (in progress).
