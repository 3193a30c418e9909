//! Parsing the top-level `tls {}` block into [`TlsOptions`].
//!
//! Keys, aliases and error texts follow nats-server's `parseTLS`. Options that only shape
//! the cipher choice (`cipher_suites`, `curve_preferences`) are accepted with a warning:
//! rustls offers only suites nats-server also counts as secure. Options that would make
//! the server *refuse* connections it otherwise admits (`pinned_certs`, `ocsp_peer`,
//! OS certificate stores) are errors: a config that asks for a check
//! natrium does not make must not start as if it did.

use crate::conf::{self, ConfError, Spanned, Value};
use crate::options::Options;
use crate::tls::{DEFAULT_FIRST_FALLBACK, TlsOptions, TlsVersion};
use std::path::PathBuf;
use std::time::Duration;

fn file(v: &Spanned, key: &str) -> Result<PathBuf, ConfError> {
    match &v.value {
        Value::String(s) => Ok(PathBuf::from(s)),
        _ => Err(v.pos.error(format!(
            "error parsing tls config, expected '{key}' to be filename"
        ))),
    }
}

fn boolean(v: &Spanned, key: &str) -> Result<bool, ConfError> {
    match &v.value {
        Value::Bool(b) => Ok(*b),
        _ => Err(v.pos.error(format!(
            "error parsing tls config, expected '{key}' to be a boolean"
        ))),
    }
}

/// `timeout`: seconds as a number, or a Go duration string.
fn timeout(v: &Spanned) -> Result<Duration, ConfError> {
    let secs = match &v.value {
        Value::Int(n) => *n as f64,
        Value::Float(f) => *f,
        Value::String(s) => {
            let nanos = conf::parse_go_duration(s).map_err(|e| {
                v.pos
                    .error(format!("error parsing tls config, 'timeout' {e}"))
            })?;
            nanos as f64 / 1e9
        }
        _ => {
            return Err(v
                .pos
                .error("error parsing tls config, 'timeout' wrong type"));
        }
    };
    if !(0.0..=1e9).contains(&secs) {
        return Err(v
            .pos
            .error("error parsing tls config, 'timeout' out of range"));
    }
    // 0 means the default, as with nats-server.
    Ok(if secs > 0.0 {
        Duration::from_secs_f64(secs)
    } else {
        crate::tls::DEFAULT_TLS_TIMEOUT
    })
}

/// `handshake_first`: a boolean, `true/on/false/off`, `auto`, or a fallback duration.
fn handshake_first(v: &Spanned, key: &str, t: &mut TlsOptions) -> Result<(), ConfError> {
    match &v.value {
        Value::Bool(b) => {
            t.handshake_first = *b;
            t.first_fallback = None;
        }
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "on" => (t.handshake_first, t.first_fallback) = (true, None),
            "false" | "off" => (t.handshake_first, t.first_fallback) = (false, None),
            "auto" | "auto_fallback" => {
                (t.handshake_first, t.first_fallback) = (true, Some(DEFAULT_FIRST_FALLBACK))
            }
            _ => match conf::parse_go_duration(s) {
                Ok(n) if n > 0 => {
                    t.handshake_first = true;
                    t.first_fallback = Some(Duration::from_nanos(n as u64));
                }
                Ok(_) => t.handshake_first = true,
                Err(_) => {
                    return Err(v
                        .pos
                        .error(format!("field {key:?}'s value {s:?} is invalid")));
                }
            },
        },
        other => {
            return Err(v.pos.error(format!(
                "field {key:?} should be a boolean or a string, got {}",
                other.type_name()
            )));
        }
    }
    Ok(())
}

fn min_version(v: &Spanned) -> Result<TlsVersion, ConfError> {
    let Value::String(s) = &v.value else {
        return Err(v
            .pos
            .error("error parsing tls config: 'min_version' wrong type"));
    };
    match s.as_str() {
        "1.2" => Ok(TlsVersion::V1_2),
        "1.3" => Ok(TlsVersion::V1_3),
        "1.0" | "1.1" => Err(v.pos.error(format!(
            "error parsing tls config: unsupported TLS version: TLS {s}"
        ))),
        _ => Err(v
            .pos
            .error(format!("error parsing tls config: unknown version: {s}"))),
    }
}

/// Applies the top-level `tls` block to `o`.
pub fn apply_tls(o: &mut Options, v: &Spanned) -> Result<(), ConfError> {
    o.tls = Some(parse_tls(o, v)?);
    Ok(())
}

/// Reads a `tls` block (top level or `websocket`'s); warnings go to `o`.
pub fn parse_tls(o: &mut Options, v: &Spanned) -> Result<TlsOptions, ConfError> {
    let Value::Map(m) = &v.value else {
        return Err(v.pos.error("error parsing tls config, expected a map"));
    };
    let mut t = TlsOptions::default();
    for e in m.iter() {
        let key = e.key.to_ascii_lowercase();
        let v = &e.value;
        match key.as_str() {
            "cert_file" => t.cert_file = Some(file(v, "cert_file")?),
            "key_file" => t.key_file = Some(file(v, "key_file")?),
            "ca_file" => t.ca_file = Some(file(v, "ca_file")?),
            "verify" => t.verify = boolean(v, "verify")?,
            "verify_and_map" => {
                t.map = boolean(v, "verify_and_map")?;
                t.verify |= t.map;
            }
            // A client-side setting (skip verifying the server): nothing to do here.
            "insecure" => {
                boolean(v, "insecure")?;
            }
            "timeout" => t.timeout = timeout(v)?,
            "handshake_first" | "first" | "immediate" => handshake_first(v, &e.key, &mut t)?,
            "min_version" => t.min_version = Some(min_version(v)?),
            "verify_cert_and_check_known_urls" => {
                if boolean(v, "verify_cert_and_check_known_urls")? {
                    return Err(v
                        .pos
                        .error("verify_cert_and_check_known_urls not supported in this context"));
                }
            }
            "cipher_suites" | "curve_preferences" => {
                if matches!(&v.value, Value::Array(a) if a.is_empty()) {
                    return Err(v
                        .pos
                        .error(format!("error parsing tls config, '{key}' cannot be empty")));
                }
                o.warnings.push(format!(
                    "{}: tls {:?} is not supported by natrium-server and is ignored \
                     (rustls offers only secure suites and curves)",
                    e.key_pos, e.key
                ));
            }
            "allow_insecure_cipher_suites" | "connection_rate_limit" => {
                o.warnings.push(format!(
                    "{}: tls {:?} is not supported by natrium-server and is ignored",
                    e.key_pos, e.key
                ));
            }
            "pinned_certs"
            | "ocsp_peer"
            | "cert_store"
            | "cert_match_by"
            | "cert_match"
            | "ca_certs_match"
            | "cert_match_skip_invalid"
            | "certs"
            | "certificates" => {
                return Err(e.key_pos.error(format!(
                    "tls {:?} is not supported by natrium-server",
                    e.key
                )));
            }
            _ if e.used_as_variable => {}
            _ => {
                return Err(e.key_pos.error(format!(
                    "error parsing tls config, unknown field {:?}",
                    e.key
                )));
            }
        }
    }
    // nats-server checks the files while parsing, so a bad one is a config error with
    // its position.
    crate::tls::ServerTls::build(&t).map_err(|err| v.pos.error(err.to_string()))?;
    Ok(t)
}
