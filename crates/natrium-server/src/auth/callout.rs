//! Auth callout: logins decided by an external service.
//!
//! Why: many organisations keep their users in an identity provider (LDAP, OAuth/OIDC, a
//! database) and do not want to copy them into the server's config or into JWTs issued
//! ahead of time. nats-server 2.10 added a hook for that, and its clients and services
//! (the Go and Rust `auth callout` libraries, custom services) expect it to work the same
//! way here. The config names an account key (`issuer`) the service signs with, the
//! account the service runs in, and the service's own users, which log in as configured.
//! Every other login is sent to the service, which says who the user is and what it may
//! do, or refuses it.
//!
//! The exchange, as nats-server 2.15 does it:
//! 1. The server makes a throwaway user nkey for the login and publishes an
//!    `authorization_request` JWT, signed with its own server key, on
//!    `$SYS.REQ.USER.AUTH` in the callout account, with a reply subject of its own. The
//!    request carries the server's identity, the new user key, the client's details and
//!    its whole CONNECT (credentials included: the service checks them).
//! 2. The service answers with an `authorization_response` JWT whose subject is that user
//!    key and whose audience is the server's id. It holds either an error or a user JWT
//!    signed by the `issuer` account key, for that same user key; the user JWT's
//!    audience names the account the user is placed in, its claims give permissions,
//!    connection types, connect times and expiry.
//! 3. With `xkey` configured, the request is sealed (NaCl box) for the service's curve
//!    key and says the server's own curve key in a `Nats-Server-Xkey` header; the answer
//!    may come back sealed for it.
//!
//! The fresh user key per login is what stops a captured answer from being replayed for
//! another login. The checks of an answer ([`check_response`], [`identity`]) are pure and
//! unit-tested; [`call`] does the publish and the bounded wait.

use super::permissions::ClientPerms;
use super::{AuthUser, ConnKind, Identity};
use crate::account::Account;
use crate::client::ClientConn;
use crate::client::deliver::{DeliveryCtx, Publisher};
use crate::client::subscription::{InternalHandler, Subscription};
use crate::jwt::{self, Claims, JwtError, UserNats};
use crate::options::{Permissions, SubjectPermission};
use crate::protocol::PubMsg;
use crate::protocol::connect::ConnectOptions;
use crate::server::ServerShared;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Where authorization requests are published, in the callout account.
pub const CALLOUT_SUBJECT: &str = "$SYS.REQ.USER.AUTH";
/// The audience of every authorization request.
pub const REQUEST_AUDIENCE: &str = "nats-authorization-request";
/// The header that carries the server's curve key when the request is sealed.
pub const XKEY_HEADER: &str = "Nats-Server-Xkey";

/// `authorization { auth_callout { … } }`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CalloutConfig {
    /// The account public key the service signs users (and its answers) with; a user JWT
    /// signed by any other key is refused.
    pub issuer: String,
    /// The account the requests are published in: the service's (`$G` when unset).
    pub account: String,
    /// Users that log in as configured, bypassing the callout: the service's own.
    pub auth_users: Vec<String>,
    /// The service's curve key: requests are sealed for it and answers may be.
    pub xkey: Option<String>,
    /// Config mode: only logins into these accounts go to the service (empty: every
    /// account; a login that matched no configured user always goes). Operator mode:
    /// the accounts besides its own (public keys, or `*`) the service may place users in.
    pub allowed_accounts: Vec<String>,
    /// An account JWT's callout (operator mode): `issuer` and `account` are the
    /// account's key, its signing keys may sign answers and users, and users may be
    /// placed in `allowed_accounts` by a JWT those accounts issued.
    pub operator: bool,
}

impl CalloutConfig {
    /// The callout of account `key` from its JWT's `authorization`: on when it names
    /// `auth_users` (nats-server's `HasExternalAuthorization`).
    pub fn of_account(key: &str, a: &jwt::ExternalAuthJwt) -> Option<CalloutConfig> {
        (!a.auth_users.is_empty()).then(|| CalloutConfig {
            issuer: key.to_string(),
            account: key.to_string(),
            auth_users: a.auth_users.clone(),
            xkey: (!a.xkey.is_empty()).then(|| a.xkey.clone()),
            allowed_accounts: a.allowed_accounts.clone(),
            operator: true,
        })
    }

    /// Whether the service may place users in `account` (operator mode).
    fn allows(&self, account: &str) -> bool {
        account == self.account
            || (self.allowed_accounts.len() == 1 && self.allowed_accounts[0] == "*")
            || self.allowed_accounts.iter().any(|a| a == account)
    }

    /// nats-server's rule for which logins the service decides. `raw_user` is the name
    /// the client gave (its nkey, else its user name, else its token); `authenticated`
    /// the account a configured user matched, if one did. The service's own users keep
    /// the configured result, and so does a user of an account outside
    /// `allowed_accounts`; everyone else, whether or not a configured user matched, goes
    /// to the service.
    pub fn delegates(&self, raw_user: &str, authenticated: Option<&str>) -> bool {
        if self.auth_users.iter().any(|u| u == raw_user) {
            return false;
        }
        match authenticated {
            Some(acc) if acc != crate::account::GLOBAL_ACCOUNT => {
                self.allowed_accounts.is_empty() || self.allowed_accounts.iter().any(|a| a == acc)
            }
            _ => true,
        }
    }
}

/// The name nats-server matches `auth_users` against and reports as the client's user
/// (`getRawAuthUser`): the nkey, else the user name, else a user JWT's subject, else
/// `[REDACTED]` for a token.
pub fn raw_auth_user(c: &ConnectOptions) -> String {
    let given = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(str::to_string);
    given(&c.nkey)
        .or_else(|| given(&c.user))
        .or_else(|| {
            let token = given(&c.jwt)?;
            let claims = jwt::claims_json(&token)?;
            claims["sub"].as_str().map(str::to_string)
        })
        .or_else(|| given(&c.auth_token).map(|_| "[REDACTED]".to_string()))
        .unwrap_or_default()
}

/// A CONNECT as the auth callout sees it: with no credentials at all, the
/// `no_auth_user`'s name and password (or nkey) filled in, as nats-server fills them in
/// before it authenticates (`no_auth`: the registry's [`super::AuthRegistry::no_auth_login`]).
pub fn with_no_auth_user(
    c: &ConnectOptions,
    no_auth: Option<(String, Option<String>, bool)>,
) -> ConnectOptions {
    let empty = |v: &Option<String>| v.as_deref().is_none_or(str::is_empty);
    let mut c = c.clone();
    if let Some((name, password, nkey)) = no_auth
        && empty(&c.user)
        && empty(&c.pass)
        && empty(&c.auth_token)
        && empty(&c.nkey)
    {
        if nkey {
            c.nkey = Some(name);
        } else {
            c.user = Some(name);
            c.pass = password;
        }
    }
    c
}

/// Why the service's answer did not admit the client. The client only sees
/// `Authorization Violation`; this goes to the log, worded as nats-server words it.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CalloutError {
    /// The service's account does not exist.
    #[error("No valid account {account:?} for auth callout request")]
    NoAccount {
        /// The configured account.
        account: String,
    },
    /// No service listens on the callout subject.
    #[error("No auth callout service is listening on {CALLOUT_SUBJECT} in account {account:?}")]
    NoService {
        /// The callout account.
        account: String,
    },
    /// No answer within the auth timeout.
    #[error("Authorization callout response not received in time on account {account:?}")]
    Timeout {
        /// The callout account.
        account: String,
    },
    /// An empty answer: the service refused without a reason.
    #[error("Auth callout violation: \"no reason supplied\" on account {account:?}")]
    NoReason {
        /// The callout account.
        account: String,
    },
    /// The request could not be sealed for the service's `xkey` (not a curve key).
    #[error("Error encrypting auth request claim on account {account:?}: {reason}")]
    Encrypt {
        /// The callout account.
        account: String,
        /// What failed.
        reason: String,
    },
    /// A sealed answer that does not open with the server's key.
    #[error("Error decrypting auth callout response on account {account:?}: {reason}")]
    Decrypt {
        /// The callout account.
        account: String,
        /// What failed.
        reason: String,
    },
    /// The answer is not a valid authorization response JWT.
    #[error("Authorization response is not valid: {0}")]
    Response(JwtError),
    /// The answer's claims are inconsistent.
    #[error("Authorization response had validation errors: {0}")]
    ResponseClaims(&'static str),
    /// The answer is for another login.
    #[error("Auth callout violation: auth callout response is not for expected user")]
    WrongUser,
    /// The answer is for another server.
    #[error("Auth callout violation: auth callout response is not for server")]
    WrongServer,
    /// The service refused, with its reason.
    #[error("Auth callout service returned an error: {0}")]
    Refused(String),
    /// The user JWT in the answer does not decode or verify, or has expired.
    #[error("Error validating user JWT: {0}")]
    UserJwt(JwtError),
    /// The user JWT is for another user key.
    #[error("Expected authorized user of {expected:?} but got {got:?} on account {account:?}")]
    UserKey {
        /// The login's user key.
        expected: String,
        /// The user JWT's subject.
        got: String,
        /// The callout account.
        account: String,
    },
    /// Not signed by the configured issuer.
    #[error(
        "Wrong issuer for auth callout response on account {account:?}, expected {expected:?} got {got:?}"
    )]
    WrongIssuer {
        /// The callout account.
        account: String,
        /// The configured issuer.
        expected: String,
        /// The user JWT's issuer.
        got: String,
    },
    /// `issuer_account` outside operator mode.
    #[error("Error non operator mode account {account:?}: attempted to use issuer_account")]
    IssuerAccount {
        /// The callout account.
        account: String,
    },
    /// The user JWT's audience names no account of this server.
    #[error("No valid account {placement:?} for auth callout response on account {account:?}")]
    Placement {
        /// The user JWT's `aud`.
        placement: String,
        /// The callout account.
        account: String,
    },
    /// Outside the user JWT's connect times.
    #[error("Authorized user on account {account:?} outside of valid connect times")]
    OutsideTimes {
        /// The callout account.
        account: String,
    },
    /// The user JWT's connection types exclude this connection, or name none known.
    #[error("Authorized user on account {account:?} using invalid connection type")]
    ConnectionType {
        /// The callout account.
        account: String,
    },
    /// Operator mode: the answer is signed by a key the account does not know.
    #[error("Auth callout signing key is unknown")]
    UnknownSigner,
    /// Operator mode: the user JWT comes from an account the service may not use.
    #[error(
        "Account {issuer:?} not permitted as valid account option for auth callout for account {account:?}"
    )]
    NotAllowed {
        /// The user JWT's issuer account.
        issuer: String,
        /// The callout account.
        account: String,
    },
    /// Operator mode: the user JWT's signer is not a key of its account.
    #[error("User JWT issuer {0:?} is not known")]
    UnknownIssuer(String),
    /// Operator mode: a scoped signing key's template does not apply.
    #[error("User JWT is not valid: {0}")]
    Scope(String),
    /// The user must come through a trusted proxy; natrium has none.
    #[error("Proxy required")]
    ProxyRequired,
    /// Connect times in a zone natrium cannot read.
    #[error("{0}")]
    Times(String),
}

/// `nats` of an authorization response.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ResponseNats {
    /// The user JWT, when the service admits the client.
    pub jwt: String,
    /// The service's reason, when it refuses.
    pub error: String,
    /// The account a signing key issued the answer for (operator mode only).
    pub issuer_account: String,
}

impl jwt::ClaimKind for ResponseNats {
    const TYPE: &'static str = "authorization_response";
    const ISSUER: nkeys::KeyPairType = nkeys::KeyPairType::Account;
}

/// Opens a sealed answer (the server's curve key, from the service's): the plain JWT, or
/// why not.
pub type Opener<'a> = &'a dyn Fn(&[u8]) -> Result<Vec<u8>, String>;

/// What the server says of itself in a request (`server_id`).
#[derive(Debug, Clone)]
pub struct ServerIdent<'a> {
    /// Server name.
    pub name: &'a str,
    /// Listen host.
    pub host: &'a str,
    /// Server id (its public nkey): the audience the answer must have.
    pub id: &'a str,
    /// The version clients see.
    pub version: &'a str,
    /// The server's curve key, when requests are sealed.
    pub xkey: Option<String>,
    /// `server_tags`.
    pub tags: &'a [String],
}

/// What the server says of the client in a request (`client_info`).
#[derive(Debug, Clone, Default)]
pub struct ClientIdent {
    /// The client's address.
    pub host: String,
    /// The connection id.
    pub id: u64,
    /// The name the client logged in with (nkey, user or token).
    pub user: String,
    /// `client` (nats-server's kind).
    pub kind: &'static str,
    /// `nats` or `websocket`.
    pub client_type: &'static str,
    /// The nonce, when the client signed it.
    pub nonce: String,
    /// The client's TLS session, when it has one.
    pub tls: Option<ClientTls>,
}

/// The client's TLS session as a request shows it (`client_tls`).
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// `1.2` or `1.3`.
    pub version: String,
    /// The cipher suite, in Go's spelling.
    pub cipher: String,
    /// The certificates the client presented, leaf first, in PEM.
    pub certs: Vec<String>,
    /// The server verified them (`verify`): they are sent as the one verified chain,
    /// else as the peer's certificates, as nats-server sends them.
    pub verified: bool,
}

/// The claims of an authorization request: signed by the server key, about `issuer`,
/// for the throwaway user key `user_nkey`, expiring at `expires` (unix seconds).
pub fn request_claims(
    issuer: &str,
    server: &ServerIdent<'_>,
    client: &ClientIdent,
    c: &ConnectOptions,
    user_nkey: &str,
    expires: i64,
) -> serde_json::Value {
    let mut server_id = json!({
        "name": server.name,
        "host": server.host,
        "id": server.id,
        "version": server.version,
    });
    if !server.tags.is_empty() {
        server_id["tags"] = json!(server.tags);
    }
    if let Some(x) = &server.xkey {
        server_id["xkey"] = json!(x);
    }
    let mut client_info = serde_json::Map::new();
    let mut put = |k: &str, v: serde_json::Value| {
        let empty = v.as_str() == Some("") || v.as_u64() == Some(0);
        if !empty {
            client_info.insert(k.to_string(), v);
        }
    };
    put("host", json!(client.host));
    put("id", json!(client.id));
    put("user", json!(client.user));
    put("name", json!(c.name));
    put("kind", json!(client.kind));
    put("type", json!(client.client_type));
    put("nonce", json!(client.nonce));
    let mut connect_opts = serde_json::Map::new();
    let fields = [
        ("jwt", &c.jwt),
        ("nkey", &c.nkey),
        ("sig", &c.sig),
        ("auth_token", &c.auth_token),
        ("user", &c.user),
        ("pass", &c.pass),
    ];
    for (k, v) in fields {
        if let Some(v) = v.as_deref().filter(|s| !s.is_empty()) {
            connect_opts.insert(k.to_string(), json!(v));
        }
    }
    for (k, v) in [
        ("name", &c.name),
        ("lang", &c.lang),
        ("version", &c.version),
    ] {
        if !v.is_empty() {
            connect_opts.insert(k.to_string(), json!(v));
        }
    }
    connect_opts.insert("protocol".to_string(), json!(c.protocol));
    let mut nats = json!({
        "server_id": server_id,
        "user_nkey": user_nkey,
        "client_info": client_info,
        "connect_opts": connect_opts,
        "type": "authorization_request",
        "version": 2,
    });
    if let Some(t) = &client.tls {
        let mut tls = json!({ "version": t.version, "cipher": t.cipher });
        if !t.certs.is_empty() {
            if t.verified {
                tls["verified_chains"] = json!([t.certs]);
            } else {
                tls["certs"] = json!(t.certs);
            }
        }
        nats["client_tls"] = tls;
    }
    json!({
        "aud": REQUEST_AUDIENCE,
        "exp": expires,
        "sub": issuer,
        "nats": nats,
    })
}

/// Check the service's answer (`payload`, a JWT or, with xkeys, possibly sealed, which
/// `open` opens) for the login with user key `user_nkey` on server `server_id`, and
/// return the user JWT it grants, decoded and verified, with its token.
pub fn check_response(
    cfg: &CalloutConfig,
    payload: &[u8],
    user_nkey: &str,
    server_id: &str,
    open: Option<Opener<'_>>,
    signing_key: &dyn Fn(&str) -> bool,
) -> Result<(Claims<UserNats>, String), CalloutError> {
    let account = || cfg.account.clone();
    if payload.is_empty() {
        return Err(CalloutError::NoReason { account: account() });
    }
    let opened;
    let sealed = open.is_some() && !payload.starts_with(b"eyJ");
    let token = match open {
        Some(open) if sealed => {
            opened = open(payload).map_err(|reason| CalloutError::Decrypt {
                account: account(),
                reason,
            })?;
            &opened[..]
        }
        _ => payload,
    };
    let token = std::str::from_utf8(token)
        .map_err(|_| CalloutError::Response(JwtError::Chunks))?
        .trim();
    let response = jwt::decode::<ResponseNats>(token).map_err(CalloutError::Response)?;
    if !jwt::is_public_key(&response.sub, nkeys::KeyPairType::User) {
        return Err(CalloutError::ResponseClaims(
            "Subject must be a user public key",
        ));
    }
    if !jwt::is_public_key(&response.aud, nkeys::KeyPairType::Server) {
        return Err(CalloutError::ResponseClaims(
            "Audience must be a server public key",
        ));
    }
    let r = &response.nats;
    match (r.error.is_empty(), r.jwt.is_empty()) {
        (true, true) => return Err(CalloutError::ResponseClaims("Error or Jwt is required")),
        (false, false) => return Err(CalloutError::ResponseClaims("Only Error or Jwt can be set")),
        _ => {}
    }
    if !r.issuer_account.is_empty()
        && !jwt::is_public_key(&r.issuer_account, nkeys::KeyPairType::Account)
    {
        return Err(CalloutError::ResponseClaims(
            "issuer_account is not an account public key",
        ));
    }
    response
        .check_times(jwt::unix_now())
        .map_err(CalloutError::Response)?;
    if response.sub != user_nkey {
        return Err(CalloutError::WrongUser);
    }
    if response.aud != server_id {
        return Err(CalloutError::WrongServer);
    }
    if !r.error.is_empty() {
        return Err(CalloutError::Refused(r.error.clone()));
    }
    // Operator mode: a plain answer must come from the account or one of its signing
    // keys (a sealed one proved itself by opening with the service's key).
    if cfg.operator && !sealed {
        let signer = if r.issuer_account.is_empty() {
            &response.iss
        } else {
            &r.issuer_account
        };
        if signer != &cfg.account && !signing_key(signer) {
            return Err(CalloutError::UnknownSigner);
        }
    }
    let user = jwt::decode::<UserNats>(&r.jwt).map_err(CalloutError::UserJwt)?;
    user.check_times(jwt::unix_now())
        .map_err(CalloutError::UserJwt)?;
    Ok((user, r.jwt.clone()))
}

/// Where granted users may go, and with which defaults.
pub enum Placement<'a> {
    /// Config mode: the user JWT's audience names a configured account, which
    /// `exists` knows; `defaults` gives an account's default permissions.
    Config {
        /// Whether an account of that name exists.
        exists: &'a dyn Fn(&str) -> bool,
        /// An account's default permissions.
        defaults: &'a dyn Fn(&str) -> Option<Permissions>,
    },
    /// Operator mode: the user JWT's issuer account, with its signing keys, scopes and
    /// default permissions.
    Operator(&'a crate::config_operator::OperatorAuth),
}

/// The login the granted user JWT `user` makes for a client that connected as
/// `client_user` over `kind`: its account, permissions (its own, its signing key's
/// scope, else the account's defaults), connection types and expiry. nats-server's
/// `processReply`, in its order.
pub fn identity(
    cfg: &CalloutConfig,
    user: &Claims<UserNats>,
    user_nkey: &str,
    client_user: Option<String>,
    kind: ConnKind,
    place: &Placement<'_>,
) -> Result<Identity, CalloutError> {
    let account = || cfg.account.clone();
    if user.nats.proxy_required {
        return Err(CalloutError::ProxyRequired);
    }
    if user.sub != user_nkey {
        return Err(CalloutError::UserKey {
            expected: user_nkey.to_string(),
            got: user.sub.clone(),
            account: account(),
        });
    }
    let own = &user.nats.limits;
    let expires =
        super::operator::login_expiry(user.exp, own, jwt::unix_now()).map_err(|e| match e {
            super::operator::JwtLoginError::OutsideTimes => {
                CalloutError::OutsideTimes { account: account() }
            }
            other => CalloutError::Times(other.to_string()),
        })?;
    let conn_types: Vec<String> = own
        .allowed_connection_types
        .iter()
        .map(|t| t.to_ascii_uppercase())
        .filter(|t| super::CONNECTION_TYPES.contains(&t.as_str()))
        .collect();
    if conn_types.is_empty() && !own.allowed_connection_types.is_empty() {
        return Err(CalloutError::ConnectionType { account: account() });
    }
    // The account the user goes to, and its permissions.
    let (target, granted) = match place {
        Placement::Config { exists, defaults } => {
            if !user.nats.issuer_account.is_empty() {
                return Err(CalloutError::IssuerAccount { account: account() });
            }
            if user.iss != cfg.issuer {
                return Err(CalloutError::WrongIssuer {
                    account: account(),
                    expected: cfg.issuer.clone(),
                    got: user.iss.clone(),
                });
            }
            if !exists(&user.aud) {
                return Err(CalloutError::Placement {
                    placement: user.aud.clone(),
                    account: account(),
                });
            }
            let granted = crate::config_operator::permissions(own).or_else(|| defaults(&user.aud));
            (user.aud.clone(), granted)
        }
        Placement::Operator(op) => {
            let issuer = if user.nats.issuer_account.is_empty() {
                &user.iss
            } else {
                &user.nats.issuer_account
            };
            if !cfg.allows(issuer) {
                return Err(CalloutError::NotAllowed {
                    issuer: user.iss.clone(),
                    account: account(),
                });
            }
            let acc = op
                .accounts
                .get(issuer)
                .ok_or_else(|| CalloutError::Placement {
                    placement: issuer.clone(),
                    account: account(),
                })?;
            let scope = acc
                .signing_keys
                .get(&user.iss)
                .ok_or_else(|| CalloutError::UnknownIssuer(user.iss.clone()))?;
            let limits = match scope {
                Some(template) => {
                    if *own != jwt::UserPermissionLimits::default() {
                        return Err(CalloutError::Scope(
                            "scoped users require no permissions or limits set".into(),
                        ));
                    }
                    super::operator::templated(template, user, issuer, acc)
                        .map_err(|e| CalloutError::Scope(e.to_string()))?
                }
                None => own.clone(),
            };
            let granted = crate::config_operator::permissions(&limits)
                .or_else(|| acc.default_permissions.clone());
            (issuer.clone(), granted)
        }
    };
    let auth_user = AuthUser {
        name: user.sub.clone(),
        password: None,
        nkey: false,
        account: target.clone(),
        perms: granted.as_ref().map(|p| Arc::new(ClientPerms::compile(p))),
        conn_types,
    };
    if !auth_user.allowed(kind) {
        return Err(CalloutError::ConnectionType { account: account() });
    }
    // The JWT's name, when it has one, is who monitoring says logged in; else the name
    // the client gave (nats-server overrides the CONNECT user name with it).
    let label = Some(user.name.clone())
        .filter(|n| !n.is_empty())
        .or(client_user);
    Ok(Identity {
        user: Some(Arc::new(auth_user)),
        label,
        account: target,
        expires,
        account_expires_first: false,
        max_subs: -1,
        max_payload: -1,
        jwt_user: None,
    })
}

/// A user of the callout account may not publish authorization requests itself: its
/// permissions with `$SYS.REQ.USER.AUTH` added to the publish deny list.
pub fn deny_callout_subject(id: &mut Identity) {
    let source = id
        .user
        .as_ref()
        .and_then(|u| u.perms.as_ref())
        .map(|p| p.source.clone());
    let mut p = source.unwrap_or_default();
    let publish = p.publish.get_or_insert_with(SubjectPermission::default);
    if !publish.deny.iter().any(|d| d == CALLOUT_SUBJECT) {
        publish.deny.push(CALLOUT_SUBJECT.to_string());
    }
    let perms = Some(Arc::new(ClientPerms::compile(&p)));
    let user = match id.user.as_deref() {
        Some(u) => AuthUser {
            name: u.name.clone(),
            password: u.password.clone(),
            nkey: u.nkey,
            account: u.account.clone(),
            perms,
            conn_types: u.conn_types.clone(),
        },
        None => AuthUser {
            name: id.label.clone().unwrap_or_default(),
            password: None,
            nkey: false,
            account: id.account.clone(),
            perms,
            conn_types: Vec::new(),
        },
    };
    id.user = Some(Arc::new(user));
}

/// Takes the service's answer off the reply subject, once.
struct ReplySlot {
    /// Where the answer goes; taken by the first message.
    tx: parking_lot::Mutex<Option<tokio::sync::oneshot::Sender<Vec<u8>>>>,
    /// Answers larger than this are cut to nothing (refused): a bound on what one
    /// login may make the server hold.
    max: usize,
}

impl InternalHandler for ReplySlot {
    fn handle(
        &self,
        _ctx: &mut DeliveryCtx,
        _account: &Arc<Account>,
        _sub: &Subscription,
        _publisher: Publisher<'_>,
        _routed_by: &[u8],
        msg: PubMsg<'_>,
    ) -> bool {
        if let Some(tx) = self.tx.lock().take() {
            let body = if msg.payload.len() <= self.max {
                msg.payload.to_vec()
            } else {
                Vec::new()
            };
            let _ = tx.send(body);
        }
        true
    }
}

/// Removes the reply subscription when dropped.
struct Unsubscribe<'a> {
    /// The callout account, whose index holds it.
    account: &'a Arc<Account>,
    /// The reply subject.
    subject: &'a [u8],
    /// The subscription.
    sub: &'a Arc<Subscription>,
}

impl Drop for Unsubscribe<'_> {
    fn drop(&mut self) {
        self.account.sublist.remove(self.subject, None, self.sub);
    }
}

/// A random `$SYS._INBOX.<server>.<8 chars>` reply subject, as nats-server's.
fn reply_inbox(server_id: &str) -> String {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut n: u64 = rand::random();
    let tail: String = (0..8)
        .map(|_| {
            let d = DIGITS[(n % 62) as usize] as char;
            n /= 62;
            d
        })
        .collect();
    let hash: String = server_id.chars().rev().take(8).collect();
    format!("$SYS._INBOX.{hash}.{tail}")
}

/// Ask the service about the client `conn` that sent `c`, wait for the answer (at most
/// `wait`) and turn it into the login it grants.
pub async fn call(
    server: &Arc<ServerShared>,
    conn: &ClientConn,
    cfg: &CalloutConfig,
    c: &ConnectOptions,
    kind: ConnKind,
    wait: Duration,
) -> Result<Identity, CalloutError> {
    let account = server
        .account(&cfg.account)
        .ok_or_else(|| CalloutError::NoAccount {
            account: cfg.account.clone(),
        })?;
    let user_key = nkeys::KeyPair::new_user();
    let user_nkey = user_key.public_key();
    // A key that does not parse (an account JWT's is not checked when loaded) refuses
    // the login: the request carries the client's credentials and must not go out in
    // the clear instead.
    let service_xkey = match cfg.xkey.as_deref() {
        Some(k) => Some(
            nkeys::XKey::from_public_key(k).map_err(|e| CalloutError::Encrypt {
                account: cfg.account.clone(),
                reason: e.to_string(),
            })?,
        ),
        None => None,
    };
    let opts = server.opts();
    let version = crate::options::NATS_COMPAT_VERSION;
    let ident = ServerIdent {
        name: &server.server_name,
        host: &opts.host,
        id: &server.server_id,
        version,
        xkey: service_xkey
            .as_ref()
            .map(|_| server.server_xkey.public_key()),
        tags: &opts.server_tags,
    };
    let client = {
        let meta = conn.meta.lock();
        ClientIdent {
            host: conn.addr.ip().to_string(),
            id: conn.cid,
            user: raw_auth_user(c),
            kind: "Client",
            client_type: if meta.websocket { "websocket" } else { "nats" },
            nonce: if c.sig.as_deref().is_some_and(|s| !s.is_empty()) {
                conn.nonce.clone()
            } else {
                String::new()
            },
            tls: meta.tls.as_ref().map(|t| ClientTls {
                version: t.version.to_string(),
                cipher: t.cipher_suite.clone(),
                certs: t.peer_certs.iter().map(|c| c.pem.clone()).collect(),
                verified: if meta.websocket {
                    opts.websocket
                        .as_ref()
                        .and_then(|w| w.tls.as_ref())
                        .is_some_and(|o| o.verify)
                } else {
                    opts.tls.as_ref().is_some_and(|o| o.verify)
                },
            }),
        }
    };
    let expires = jwt::unix_now() + wait.as_secs().max(1) as i64;
    let claims = request_claims(&cfg.issuer, &ident, &client, c, &user_nkey, expires);
    let token = jwt::encode(claims, &server.server_key);
    let max_answer = opts.max_payload.max(0) as usize;
    drop(opts);
    let (payload, header) = match &service_xkey {
        Some(recipient) => {
            let sealed = server
                .server_xkey
                .seal(token.as_bytes(), recipient)
                .map_err(|e| CalloutError::Encrypt {
                    account: cfg.account.clone(),
                    reason: e.to_string(),
                })?;
            let header = format!(
                "NATS/1.0\r\n{XKEY_HEADER}: {}\r\n\r\n",
                server.server_xkey.public_key()
            );
            (sealed, Some(header.into_bytes()))
        }
        None => (token.into_bytes(), None),
    };
    let inbox = reply_inbox(&server.server_id);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let slot: Arc<dyn InternalHandler> = Arc::new(ReplySlot {
        tx: parking_lot::Mutex::new(Some(tx)),
        max: max_answer,
    });
    let sub = Arc::new(Subscription::internal(slot, inbox.as_bytes(), None));
    let _ = account.sublist.insert(inbox.as_bytes(), None, sub.clone());
    // Removed however this ends: answered, timed out, or the connection's task dropped
    // mid-wait (server shutdown).
    let _unsubscribe = Unsubscribe {
        account: &account,
        subject: inbox.as_bytes(),
        sub: &sub,
    };
    let delivered = {
        let mut ctx = DeliveryCtx::new(server.clone(), conn.cid);
        let d = ctx.publish(
            &account,
            Publisher::SERVER,
            PubMsg {
                subject: CALLOUT_SUBJECT.as_bytes(),
                reply: Some(inbox.as_bytes()),
                headers: header.as_deref(),
                payload: &payload,
            },
        );
        ctx.flush();
        d
    };
    if !delivered {
        return Err(CalloutError::NoService {
            account: cfg.account.clone(),
        });
    }
    let payload = match tokio::time::timeout(wait, rx).await {
        Ok(Ok(p)) => p,
        _ => {
            return Err(CalloutError::Timeout {
                account: cfg.account.clone(),
            });
        }
    };
    let open_with = service_xkey.as_ref().map(|sender| {
        let xkey = &server.server_xkey;
        move |sealed: &[u8]| xkey.open(sealed, sender).map_err(|e| e.to_string())
    });
    let opts = server.opts();
    let op = opts.operator.clone();
    let callout_account = op.as_ref().and_then(|o| o.accounts.get(&cfg.account));
    let signing_key = |key: &str| callout_account.is_some_and(|a| a.signing_keys.contains_key(key));
    let (user, _token) = check_response(
        cfg,
        &payload,
        &user_nkey,
        &server.server_id,
        open_with.as_ref().map(|f| f as Opener<'_>),
        &signing_key,
    )?;
    let client_user = Some(raw_auth_user(c)).filter(|u| !u.is_empty());
    let exists = |name: &str| !name.is_empty() && server.account(name).is_some();
    // A user without permissions of its own gets its account's defaults.
    let defaults = |name: &str| {
        opts.accounts
            .accounts
            .iter()
            .find(|a| a.name == name)
            .and_then(|a| a.default_permissions.clone())
    };
    let place = match (cfg.operator, op.as_deref()) {
        (true, Some(op)) => Placement::Operator(op),
        _ => Placement::Config {
            exists: &exists,
            defaults: &defaults,
        },
    };
    identity(cfg, &user, &user_nkey, client_user, kind, &place)
}

#[cfg(test)]
#[path = "callout_tests.rs"]
mod tests;
