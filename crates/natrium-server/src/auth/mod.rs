//! Client authentication: who a connection is, and which account it belongs to.
//!
//! The [`AuthRegistry`] is built from the options at start and rebuilt on reload, then
//! swapped whole (connections read an `Arc` snapshot). It answers one question at CONNECT:
//! do these credentials name a user, and if so which one. The order of checks follows
//! nats-server: an nkey signature, then a named user's password, then `no_auth_user` for a
//! client that sent no credentials, then the single token or user/password.
//!
//! The server never says which part of the credentials was wrong: every failure is the
//! same `Authorization Violation`.

pub mod callout;
pub mod operator;
pub mod permissions;

use crate::account::GLOBAL_ACCOUNT;
use crate::options::{Options, SimpleAuth};
use crate::protocol::connect::ConnectOptions;
use crate::tls_identity::PeerCert;
use base64::Engine;
use permissions::ClientPerms;
use std::collections::HashMap;
use std::sync::Arc;

/// Raw random bytes in a nonce (nats-server uses 11, base64url without padding).
const NONCE_RAW_LEN: usize = 11;

/// Compare secrets in constant time, so timing does not reveal how much matched.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a configured secret is a bcrypt hash.
/// nats-server's rule (`^\$2[abxy]\$\d{2}\$`): a version, then a two-digit cost; any
/// other secret, `$2a$xx` included, is compared as plain text.
fn is_bcrypt(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 7
        && b.starts_with(b"$2")
        && matches!(b[2], b'a' | b'b' | b'x' | b'y')
        && b[3] == b'$'
        && b[4].is_ascii_digit()
        && b[5].is_ascii_digit()
        && b[6] == b'$'
}

/// Compare a configured secret (plain or bcrypt) with what the client sent.
fn secret_matches(configured: &str, given: &str) -> bool {
    if is_bcrypt(configured) {
        // bcrypt is deliberately slow; keep it off the async worker's hot loop.
        let check = || bcrypt::verify(given, configured).unwrap_or(false);
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(check)
            }
            _ => check(),
        }
    } else {
        ct_eq(configured.as_bytes(), given.as_bytes())
    }
}

/// A new random nonce for nkey authentication.
pub fn new_nonce() -> String {
    let raw: [u8; NONCE_RAW_LEN] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// Verify an nkey signature of `nonce`. Clients send it base64url without padding; standard
/// base64 is accepted too, as nats-server does.
fn verify_nkey(public_key: &str, nonce: &str, sig: &str) -> bool {
    let Ok(kp) = nkeys::KeyPair::from_public_key(public_key) else {
        return false;
    };
    let sig_bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sig.trim_end_matches('='))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(sig));
    match sig_bytes {
        Ok(bytes) => kp.verify(nonce.as_bytes(), &bytes).is_ok(),
        Err(_) => false,
    }
}

/// A configured user, ready to authenticate.
#[derive(Debug)]
pub struct AuthUser {
    /// User name, or the public nkey for nkey users.
    pub name: String,
    /// Password (plain or bcrypt); `None` for nkey users.
    pub password: Option<String>,
    /// Whether `name` is an nkey.
    pub nkey: bool,
    /// Account the user is bound to.
    pub account: String,
    /// Compiled permissions.
    pub perms: Option<Arc<ClientPerms>>,
    /// Allowed connection types (upper case); empty means all.
    pub conn_types: Vec<String>,
}

/// The connection types `allowed_connection_types` may name, in config files and user
/// JWTs alike (nats-server's list; natrium serves `STANDARD` and `WEBSOCKET`).
pub const CONNECTION_TYPES: &[&str] = &[
    "STANDARD",
    "WEBSOCKET",
    "LEAFNODE",
    "LEAFNODE_WS",
    "MQTT",
    "MQTT_WS",
    "IN_PROCESS",
];

/// How a client connection came in, for `allowed_connection_types` and for which
/// listener's `verify_and_map` applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnKind {
    /// The client port (`STANDARD`).
    Standard,
    /// The WebSocket port (`WEBSOCKET`).
    Websocket,
}

impl ConnKind {
    /// The kind of `conn`.
    pub fn of(conn: &crate::client::ClientConn) -> ConnKind {
        if conn.meta.lock().websocket {
            ConnKind::Websocket
        } else {
            ConnKind::Standard
        }
    }

    fn type_name(self) -> &'static str {
        match self {
            ConnKind::Standard => "STANDARD",
            ConnKind::Websocket => "WEBSOCKET",
        }
    }
}

impl AuthUser {
    /// Whether the user may connect this way (`allowed_connection_types`).
    fn allowed(&self, kind: ConnKind) -> bool {
        self.conn_types.is_empty() || self.conn_types.iter().any(|t| t == kind.type_name())
    }
}

/// Who a connection authenticated as.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The user, when a configured user matched (not for token / no-auth servers).
    pub user: Option<Arc<AuthUser>>,
    /// A label for monitoring (`authorized_user`): the user name, or `[REDACTED]` for a
    /// token.
    pub label: Option<String>,
    /// Account to bind to.
    pub account: String,
    /// When the login stops being valid (unix seconds): a user JWT's `exp`, the end of
    /// its connect window, or its account JWT's `exp`.
    pub expires: Option<i64>,
    /// `expires` is the account JWT's (the client is told `Account Authentication
    /// Expired` rather than `User Authentication Expired`).
    pub account_expires_first: bool,
    /// The user's own subscription limit (-1: none; a user JWT's `subs`).
    pub max_subs: i64,
    /// The user's own payload limit (-1: none; a user JWT's `payload`).
    pub max_payload: i64,
    /// What monitoring shows of a JWT user.
    pub jwt_user: Option<Arc<operator::JwtUser>>,
}

impl Identity {
    /// An identity with no limits of its own.
    fn plain(user: Option<Arc<AuthUser>>, label: Option<String>, account: String) -> Identity {
        Identity {
            user,
            label,
            account,
            expires: None,
            account_expires_first: false,
            max_subs: -1,
            max_payload: -1,
            jwt_user: None,
        }
    }
}

/// Users and how to check them.
#[derive(Debug, Default)]
pub struct AuthRegistry {
    /// The single user/password or token.
    simple: SimpleAuth,
    /// Users and nkey users by name/key.
    users: HashMap<String, Arc<AuthUser>>,
    /// The `no_auth_user`, if any.
    no_auth_user: Option<Arc<AuthUser>>,
    /// Whether nkey users exist (then INFO carries a nonce).
    has_nkeys: bool,
    /// `verify_and_map` on the client port: its users are named by the client's
    /// certificate, not by CONNECT.
    tls_map: bool,
    /// `verify_and_map` in the `websocket { tls {} }` block, for WebSocket clients.
    ws_tls_map: bool,
    /// The `no_auth_user`'s name (it needs no credentials on any listener).
    no_auth_name: Option<String>,
    /// Operator (JWT) mode: users log in with user JWTs checked against these.
    operator: Option<Arc<crate::config_operator::OperatorAuth>>,
}

impl AuthRegistry {
    /// Build from options.
    pub fn from_options(o: &Options) -> AuthRegistry {
        let mut users = HashMap::new();
        for u in &o.accounts.users {
            let perms = u
                .permissions
                .as_ref()
                .map(|p| Arc::new(ClientPerms::compile(p)));
            users.insert(
                u.name.clone(),
                Arc::new(AuthUser {
                    name: u.name.clone(),
                    password: u.password.clone(),
                    nkey: u.nkey,
                    account: u.account.clone(),
                    perms,
                    conn_types: u
                        .allowed_connection_types
                        .iter()
                        .map(|t| t.to_ascii_uppercase())
                        .collect(),
                }),
            );
        }
        let no_auth_user = o
            .accounts
            .no_auth_user
            .as_ref()
            .and_then(|n| users.get(n).cloned());
        AuthRegistry {
            has_nkeys: users.values().any(|u| u.nkey),
            tls_map: o.tls.as_ref().is_some_and(|t| t.map),
            ws_tls_map: o
                .websocket
                .as_ref()
                .and_then(|w| w.tls.as_ref())
                .is_some_and(|t| t.map),
            no_auth_name: o.accounts.no_auth_user.clone(),
            operator: o.operator.clone(),
            simple: o.auth.clone(),
            users,
            no_auth_user,
        }
    }

    /// Whether any credentials are configured.
    pub fn configured(&self) -> bool {
        self.simple.required() || !self.users.is_empty() || self.operator.is_some()
    }

    /// `auth_required` as INFO reports it: false when a `no_auth_user` lets anonymous
    /// clients in.
    pub fn required(&self) -> bool {
        self.configured() && self.no_auth_user.is_none()
    }

    /// Whether INFO must carry a nonce.
    pub fn needs_nonce(&self) -> bool {
        self.has_nkeys || self.operator.is_some()
    }

    /// Whether users log in with JWTs (operator mode).
    pub fn operator_mode(&self) -> bool {
        self.operator.is_some()
    }

    /// The `no_auth_user`'s name, password and whether it is an nkey: nats-server puts
    /// them in a CONNECT that carries no credentials before anything checks it (the
    /// auth callout sees them so).
    pub fn no_auth_login(&self) -> Option<(String, Option<String>, bool)> {
        self.no_auth_user
            .as_ref()
            .map(|u| (u.name.clone(), u.password.clone(), u.nkey))
    }

    /// Whether a user with this name (or nkey) exists.
    pub fn has_user(&self, name: &str) -> bool {
        self.users.contains_key(name)
    }

    /// Whether users are named by client certificates (`verify_and_map`) on some
    /// listener.
    pub fn tls_map(&self) -> bool {
        self.tls_map || self.ws_tls_map
    }

    /// Whether `verify_and_map` applies to connections of `kind`.
    fn maps(&self, kind: ConnKind) -> bool {
        match kind {
            ConnKind::Standard => self.tls_map,
            ConnKind::Websocket => self.ws_tls_map,
        }
    }

    /// nats-server's `canTLSMap`: a user without a password that some listener's
    /// `verify_and_map` could select is a certificate identity, never a password login.
    fn certificate_only(&self, u: &AuthUser) -> bool {
        u.password.as_deref().unwrap_or("").is_empty()
            && self.no_auth_name.as_deref() != Some(u.name.as_str())
            && ((self.tls_map && u.allowed(ConnKind::Standard))
                || (self.ws_tls_map && u.allowed(ConnKind::Websocket)))
    }

    /// Authenticate CONNECT's credentials. `None` is an authorization violation.
    pub fn authenticate(&self, c: &ConnectOptions, nonce: &str) -> Option<Identity> {
        self.authenticate_with(c, nonce, None, ConnKind::Standard, None)
            .ok()
    }

    /// Authenticate CONNECT's credentials and, with `verify_and_map`, the client's
    /// (verified) certificate `cert`; `peer` is the client's address. An error is an
    /// authorization violation, with the reason when there is one (JWT logins).
    pub fn authenticate_with(
        &self,
        c: &ConnectOptions,
        nonce: &str,
        cert: Option<&PeerCert>,
        kind: ConnKind,
        peer: Option<std::net::IpAddr>,
    ) -> Result<Identity, Option<operator::JwtLoginError>> {
        if let Some(op) = &self.operator {
            return operator::authenticate(op, c, nonce, kind, peer).map_err(Some);
        }
        self.authenticate_configured(c, nonce, cert, kind)
            .ok_or(None)
    }

    fn authenticate_configured(
        &self,
        c: &ConnectOptions,
        nonce: &str,
        cert: Option<&PeerCert>,
        kind: ConnKind,
    ) -> Option<Identity> {
        if !self.configured() {
            // nats-server still reports the user name the client sent (`/connz?auth=1`).
            return Some(Identity::plain(
                None,
                c.user.clone().filter(|u| !u.is_empty()),
                GLOBAL_ACCOUNT.to_string(),
            ));
        }
        let user_given = c.user.as_deref().filter(|u| !u.is_empty());
        let nkey_given = c.nkey.as_deref().filter(|k| !k.is_empty());
        let token_given = c.auth_token.as_deref().filter(|t| !t.is_empty());
        let pass_given = c.pass.as_deref().filter(|p| !p.is_empty());
        if !self.users.is_empty() {
            if let Some(key) = nkey_given {
                let u = self.users.get(key).filter(|u| u.nkey)?;
                let sig = c.sig.as_deref()?;
                if nonce.is_empty() || !verify_nkey(key, nonce, sig) {
                    return None;
                }
                return self.identity(u, kind);
            }
            if self.maps(kind) {
                // As nats-server: the certificate names the user (a user name in CONNECT
                // is ignored); a password, if the user has one, must still match.
                let name = cert?.map_user(
                    self.users
                        .values()
                        .filter(|u| !u.nkey && u.allowed(kind))
                        .map(|u| u.name.as_str()),
                )?;
                let u = self.users.get(name)?;
                let configured = u.password.as_deref().unwrap_or("");
                if !secret_matches(configured, pass_given.unwrap_or("")) {
                    return None;
                }
                return self.identity(u, kind);
            }
            if let Some(name) = user_given {
                if let Some(u) = self.users.get(name).filter(|u| !u.nkey) {
                    if self.certificate_only(u) {
                        return None;
                    }
                    let configured = u.password.as_deref().unwrap_or("");
                    if !secret_matches(configured, pass_given.unwrap_or("")) {
                        return None;
                    }
                    return self.identity(u, kind);
                }
                // Fall through: it may be the single user.
            } else if token_given.is_none()
                && pass_given.is_none()
                && let Some(u) = &self.no_auth_user
            {
                return self.identity(u, kind);
            }
        }
        if let Some(token) = &self.simple.token {
            return token_given.filter(|t| secret_matches(token, t)).map(|_| {
                Identity::plain(
                    None,
                    Some("[REDACTED]".to_string()),
                    GLOBAL_ACCOUNT.to_string(),
                )
            });
        }
        if let Some(user) = &self.simple.user {
            let ok = user_given.is_some_and(|u| ct_eq(u.as_bytes(), user.as_bytes()))
                && secret_matches(
                    self.simple.password.as_deref().unwrap_or(""),
                    pass_given.unwrap_or(""),
                );
            return ok
                .then(|| Identity::plain(None, Some(user.clone()), GLOBAL_ACCOUNT.to_string()));
        }
        None
    }

    fn identity(&self, u: &Arc<AuthUser>, kind: ConnKind) -> Option<Identity> {
        if !u.allowed(kind) {
            return None;
        }
        Some(Identity::plain(
            Some(u.clone()),
            Some(u.name.clone()),
            u.account.clone(),
        ))
    }
}

/// Single user/token check, kept for callers that only have [`SimpleAuth`].
pub fn check_simple(auth: &SimpleAuth, c: &ConnectOptions) -> bool {
    let o = Options {
        auth: auth.clone(),
        ..Options::default()
    };
    AuthRegistry::from_options(&o).authenticate(c, "").is_some()
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
