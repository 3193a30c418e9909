//! Parsing the `websocket {}` block (alias `ws`) into [`WebsocketOptions`].
//!
//! Keys and errors follow nats-server's `parseWebsocket`. What natrium does not do is
//! either a warning, when ignoring it can only refuse clients nats-server would admit
//! (cookies as credential sources, extra response headers, `no_auth_user`), or an error,
//! when ignoring it would admit clients nats-server refuses (`authorization` that
//! replaces the users for WebSocket clients).

use crate::client::websocket::parse_origin;
use crate::conf::{self, ConfError, Spanned, Value};
use crate::options::{Options, WebsocketOptions};
use std::time::Duration;

/// Applies a `websocket` block to `o`. A block without a port configures nothing, as in
/// nats-server.
pub fn apply_websocket(o: &mut Options, v: &Spanned) -> Result<(), ConfError> {
    let Value::Map(m) = &v.value else {
        return Err(v.pos.error("Expected websocket to be a map/struct"));
    };
    let mut w = WebsocketOptions::default();
    for e in m.iter() {
        let key = e.key.to_ascii_lowercase();
        let v = &e.value;
        match key.as_str() {
            "listen" => {
                let s = conf::as_string(v)?;
                let (h, p) = s
                    .rsplit_once(':')
                    .ok_or_else(|| v.pos.error(format!("could not parse address string {s:?}")))?;
                w.port = p
                    .parse()
                    .map_err(|_| v.pos.error(format!("could not parse port {p:?}")))?;
                let h = h.trim_start_matches('[').trim_end_matches(']');
                w.host = (!h.is_empty()).then(|| h.to_string());
            }
            "port" => w.port = conf::as_i64(v)? as i32,
            "host" | "net" => w.host = Some(conf::as_string(v)?.to_string()),
            "no_tls" => w.no_tls = conf::as_bool(v)?,
            "tls" => w.tls = Some(crate::config_tls::parse_tls(o, v)?),
            "same_origin" => w.origins.same_origin = conf::as_bool(v)?,
            "allowed_origins" | "allowed_origin" | "allow_origins" | "allow_origin" | "origins"
            | "origin" => {
                let list: Vec<String> = match &v.value {
                    Value::Array(items) => items
                        .iter()
                        .map(|i| conf::as_string(i).map(str::to_string))
                        .collect::<Result<_, _>>()?,
                    _ => vec![conf::as_string(v)?.to_string()],
                };
                for origin in &list {
                    let parsed = parse_origin(origin).ok_or_else(|| {
                        v.pos.error(format!(
                            "unable to parse allowed origin {origin:?}: allowed origins must be \
                             absolute URLs with http or https scheme"
                        ))
                    })?;
                    w.origins.allowed.push(parsed);
                }
                w.allowed_origins = list;
            }
            "handshake_timeout" => {
                let d = match &v.value {
                    Value::Int(n) if *n >= 0 => Duration::from_secs(*n as u64),
                    Value::String(s) => {
                        let n = conf::parse_go_duration(s).map_err(|e| v.pos.error(e))?;
                        Duration::from_nanos(n.max(0) as u64)
                    }
                    other => {
                        return Err(v.pos.error(format!(
                            "error parsing handshake timeout: unsupported type {}",
                            other.type_name()
                        )));
                    }
                };
                w.handshake_timeout = (!d.is_zero()).then_some(d);
            }
            "compress" | "compression" => w.compression = conf::as_bool(v)?,
            "authorization" | "authentication" => {
                return Err(e.key_pos.error(format!(
                    "websocket {:?} is not supported by natrium-server (WebSocket clients \
                     log in with the server's users)",
                    e.key
                )));
            }
            "headers" => {
                let Value::Map(hm) = &v.value else {
                    return Err(v.pos.error(format!(
                        "error parsing headers: unsupported type {}",
                        v.value.type_name()
                    )));
                };
                for h in hm.iter() {
                    let Value::String(val) = &h.value.value else {
                        return Err(h.value.pos.error(format!(
                            "error parsing header key {}: unsupported type {}",
                            h.key,
                            h.value.value.type_name()
                        )));
                    };
                    w.headers.push((h.key.clone(), val.clone()));
                }
            }
            "advertise" | "jwt_cookie" | "user_cookie" | "pass_cookie" | "token_cookie"
            | "no_auth_user" | "ping_interval" => {
                o.warnings.push(format!(
                    "{}: websocket {:?} is not supported by natrium-server and is ignored",
                    e.key_pos, e.key
                ));
            }
            _ if e.used_as_variable => {}
            _ => {
                return Err(e.key_pos.error(format!(
                    "error parsing websocket config, unknown field {:?}",
                    e.key
                )));
            }
        }
    }
    o.websocket = (w.port != 0).then_some(w);
    Ok(())
}
