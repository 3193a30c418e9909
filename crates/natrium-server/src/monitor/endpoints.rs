//! The monitoring endpoints. Each takes the server and the query string and returns a
//! [`Reply`]; none of them blocks.

use super::Reply;
use crate::server::ServerShared;
use hyper::StatusCode;
use std::sync::Arc;

/// Route a path to its endpoint.
pub fn dispatch(server: &Arc<ServerShared>, path: &str, _query: &str) -> Reply {
    match path {
        "/healthz" => Reply::json(r#"{"status":"ok"}"#.to_string()),
        _ => {
            let _ = server;
            Reply::text(StatusCode::NOT_FOUND, "404 page not found\n".to_string())
        }
    }
}
