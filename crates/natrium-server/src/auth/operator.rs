//! Logging in with a user JWT (operator mode).
//!
//! Why a separate path: in operator mode no user is configured. A client presents a user
//! JWT and signs the server's nonce with the user's key; the server checks the chain
//! (a trusted operator signed the account, the account or one of its signing keys signed
//! the user), the user's own rules (expiry, revocation, connection types, source
//! networks, bearer tokens) and derives the user's permissions and limits from the JWT,
//! or from the account's defaults, or from the scoped signing key's template. The order
//! of checks follows nats-server's `processClientOrLeafAuthentication`, and every failure
//! is the same `Authorization Violation` to the client (the reason goes to the log).

use super::permissions::ClientPerms;
use super::{AuthUser, ConnKind, Identity, verify_nkey};
use crate::config_operator::{AccountAuth, OperatorAuth, permissions};
use crate::jwt::{self, Claims, UserNats, UserPermissionLimits};
use crate::protocol::connect::ConnectOptions;
use std::net::IpAddr;
use std::sync::Arc;

/// Why a JWT login was refused (logged; the client only sees the violation).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum JwtLoginError {
    /// CONNECT carried no user JWT.
    #[error("authentication requires a user JWT")]
    Missing,
    /// The JWT does not decode or verify.
    #[error("user JWT not valid: {0}")]
    Invalid(#[from] jwt::JwtError),
    /// The account is not one the server knows.
    #[error("account {account} of the user is not known")]
    UnknownAccount {
        /// The account's key.
        account: String,
    },
    /// The user's issuer is not one of the account's signing keys.
    #[error("user JWT issuer {issuer} is not a signing key of account {account}")]
    UnknownIssuer {
        /// The signer.
        issuer: String,
        /// The account.
        account: String,
    },
    /// A user signed by a scoped key sets its own permissions.
    #[error("scoped users require no permissions or limits set")]
    ScopedWithPermissions,
    /// A template names something that is not defined.
    #[error("user JWT generated invalid permissions: {0}")]
    Template(String),
    /// The account JWT has expired.
    #[error("account JWT has expired")]
    AccountExpired,
    /// The account refuses bearer tokens.
    #[error("account does not allow bearer tokens")]
    BearerRefused,
    /// The connection type is not allowed.
    #[error("connection type not allowed")]
    ConnectionType,
    /// No or a wrong nonce signature.
    #[error("signature not verified")]
    Signature,
    /// The user was revoked.
    #[error("user authentication revoked")]
    Revoked,
    /// The client's address is not in `src`.
    #[error("bad src IP {0}")]
    Source(String),
    /// `times` restrictions are not supported yet.
    #[error("user JWT connect times (times) are not supported by natrium-server")]
    Times,
}

/// Whether `ip` is in one of the CIDRs (nats-server's `validateSrc`).
fn source_allowed(src: &[String], ip: Option<IpAddr>) -> bool {
    if src.is_empty() {
        return true;
    }
    let Some(ip) = ip else {
        return false;
    };
    src.iter().any(|cidr| cidr_contains(cidr, ip))
}

fn cidr_contains(cidr: &str, ip: IpAddr) -> bool {
    let Some((net, bits)) = cidr.trim().split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    let ip = match (net, ip) {
        (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        _ => ip,
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// nats-server's `processUserPermissionsTemplate`, for the templates that name no tags:
/// `{{name()}}`, `{{subject()}}`, `{{account-name()}}`, `{{account-subject()}}`, and
/// `{{tag(x)}}` / `{{account-tag(x)}}` with one value each.
fn apply_templates(
    list: &[String],
    user: &Claims<UserNats>,
    account: &str,
    acc: &AccountAuth,
    account_tags: &[String],
    strict: bool,
) -> Result<Vec<String>, JwtLoginError> {
    let mut out = Vec::with_capacity(list.len());
    'subjects: for s in list {
        if !s.contains("{{") {
            out.push(s.clone());
            continue;
        }
        let mut subject = String::new();
        let mut rest = s.as_str();
        while let Some(start) = rest.find("{{") {
            subject.push_str(&rest[..start]);
            let Some(end) = rest[start..].find("}}") else {
                return Err(JwtLoginError::Template(format!(
                    "unclosed template in {s:?}"
                )));
            };
            let op = rest[start + 2..start + end].trim();
            let lower = op.to_ascii_lowercase();
            let tag_of = |prefix: &str, tags: &[String]| -> Option<Vec<String>> {
                let name = lower.strip_prefix(prefix)?.strip_suffix(')')?;
                let want = format!("{name}:");
                Some(
                    tags.iter()
                        .filter_map(|t| t.strip_prefix(&want).map(str::to_string))
                        .collect(),
                )
            };
            let value = match lower.as_str() {
                "name()" => user.name.clone(),
                "subject()" => user.sub.clone(),
                "account-name()" => acc.name.clone(),
                "account-subject()" => account.to_string(),
                _ => {
                    let values = tag_of("account-tag(", account_tags)
                        .or_else(|| tag_of("tag(", &user.nats.tags))
                        .ok_or_else(|| {
                            JwtLoginError::Template(format!(
                                "template operation in {s:?}: {op:?} is not defined"
                            ))
                        })?;
                    match values.as_slice() {
                        [one] => one.clone(),
                        [] if strict => {
                            return Err(JwtLoginError::Template(format!(
                                "generated invalid subject {s:?}: {op:?} is not defined"
                            )));
                        }
                        [] => continue 'subjects,
                        _ => {
                            return Err(JwtLoginError::Template(format!(
                                "{op:?} has several values; natrium-server expands one"
                            )));
                        }
                    }
                }
            };
            subject.push_str(&value);
            rest = &rest[start + end + 2..];
        }
        subject.push_str(rest);
        if crate::sublist::is_valid_subject(subject.as_bytes()) {
            out.push(subject);
        } else if strict {
            return Err(JwtLoginError::Template("generated invalid subject".into()));
        }
    }
    Ok(out)
}

fn templated(
    t: &UserPermissionLimits,
    user: &Claims<UserNats>,
    account: &str,
    acc: &AccountAuth,
) -> Result<UserPermissionLimits, JwtLoginError> {
    let mut l = t.clone();
    let tags = &acc.tags;
    let had_sub_allow = !l.subscribe.allow.is_empty();
    let had_pub_allow = !l.publish.allow.is_empty();
    l.subscribe.allow = apply_templates(&t.subscribe.allow, user, account, acc, tags, false)?;
    l.subscribe.deny = apply_templates(&t.subscribe.deny, user, account, acc, tags, true)?;
    l.publish.allow = apply_templates(&t.publish.allow, user, account, acc, tags, false)?;
    l.publish.deny = apply_templates(&t.publish.deny, user, account, acc, tags, true)?;
    // An allow list emptied by the templates allows nothing (nats-server adds `deny >`).
    if had_sub_allow && l.subscribe.allow.is_empty() {
        l.subscribe.deny.push(">".into());
    }
    if had_pub_allow && l.publish.allow.is_empty() {
        l.publish.deny.push(">".into());
    }
    Ok(l)
}

/// Check a CONNECT's user JWT and nonce signature. `peer` is the client's address (for
/// `src`).
pub fn authenticate(
    op: &OperatorAuth,
    c: &ConnectOptions,
    nonce: &str,
    kind: ConnKind,
    peer: Option<IpAddr>,
) -> Result<Identity, JwtLoginError> {
    let token = c
        .jwt
        .as_deref()
        .filter(|t| !t.is_empty())
        .ok_or(JwtLoginError::Missing)?;
    let user = jwt::decode::<UserNats>(token)?;
    let now = jwt::unix_now();
    user.check_times(now)?;
    let account = if user.nats.issuer_account.is_empty() {
        user.iss.clone()
    } else {
        user.nats.issuer_account.clone()
    };
    let acc = op
        .accounts
        .get(&account)
        .ok_or_else(|| JwtLoginError::UnknownAccount {
            account: account.clone(),
        })?;
    let scope = acc
        .signing_keys
        .get(&user.iss)
        .ok_or_else(|| JwtLoginError::UnknownIssuer {
            issuer: user.iss.clone(),
            account: account.clone(),
        })?;
    let limits = match scope {
        Some(template) => {
            if user.nats.limits != UserPermissionLimits::default() {
                return Err(JwtLoginError::ScopedWithPermissions);
            }
            templated(template, &user, &account, acc)?
        }
        None => user.nats.limits.clone(),
    };
    if acc.expires > 0 && now > acc.expires {
        return Err(JwtLoginError::AccountExpired);
    }
    if limits.bearer_token && acc.disallow_bearer {
        return Err(JwtLoginError::BearerRefused);
    }
    let conn_types: Vec<String> = limits
        .allowed_connection_types
        .iter()
        .map(|t| t.to_ascii_uppercase())
        .collect();
    let known = [
        "STANDARD",
        "WEBSOCKET",
        "LEAFNODE",
        "LEAFNODE_WS",
        "MQTT",
        "MQTT_WS",
        "IN_PROCESS",
    ];
    if !conn_types.is_empty() && !conn_types.iter().any(|t| known.contains(&t.as_str())) {
        return Err(JwtLoginError::ConnectionType);
    }
    if !limits.bearer_token {
        let sig = c.sig.as_deref().filter(|s| !s.is_empty());
        match sig {
            Some(sig) if !nonce.is_empty() && verify_nkey(&user.sub, nonce, sig) => {}
            _ => return Err(JwtLoginError::Signature),
        }
    }
    let revoked = |key: &str| acc.revocations.get(key).is_some_and(|t| *t >= user.iat);
    if revoked(&user.sub) || revoked("*") {
        return Err(JwtLoginError::Revoked);
    }
    if !source_allowed(&limits.src, peer) {
        return Err(JwtLoginError::Source(
            peer.map(|p| p.to_string()).unwrap_or_default(),
        ));
    }
    if !limits.times.is_empty() {
        return Err(JwtLoginError::Times);
    }
    let perms = permissions(&limits)
        .or_else(|| acc.default_permissions.clone())
        .map(|p| Arc::new(ClientPerms::compile(&p)));
    let auth_user = AuthUser {
        name: user.sub.clone(),
        password: None,
        nkey: true,
        account: account.clone(),
        perms,
        conn_types,
    };
    if !auth_user.allowed(kind) {
        return Err(JwtLoginError::ConnectionType);
    }
    Ok(Identity {
        label: Some(user.sub.clone()),
        user: Some(Arc::new(auth_user)),
        account,
        expires: (user.exp > 0).then_some(user.exp),
        max_subs: limits.subs,
        max_payload: limits.payload,
        jwt_user: Some(Arc::new(JwtUser {
            issuer: user.iss.clone(),
            jwt: if limits.bearer_token {
                String::new()
            } else {
                token.to_string()
            },
            account_name: acc.name.clone(),
            tags: user.nats.tags.clone(),
        })),
    })
}

/// What monitoring shows of a JWT user (`/connz?auth=1`).
#[derive(Debug, Clone, PartialEq)]
pub struct JwtUser {
    /// The key that signed the user (`issuer_key`): the account or its signing key.
    pub issuer: String,
    /// The user JWT (`jwt`), empty for a bearer token (nats-server redacts those).
    pub jwt: String,
    /// The account JWT's name (`name_tag`).
    pub account_name: String,
    /// The user's tags (`tags`).
    pub tags: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        let ip = |s: &str| s.parse::<IpAddr>().ok();
        assert!(source_allowed(&[], None));
        assert!(!source_allowed(&["127.0.0.1/32".into()], None));
        assert!(source_allowed(&["127.0.0.0/8".into()], ip("127.1.2.3")));
        assert!(!source_allowed(&["10.0.0.0/8".into()], ip("127.1.2.3")));
        assert!(source_allowed(&["0.0.0.0/0".into()], ip("192.168.1.1")));
        assert!(source_allowed(&["::1/128".into()], ip("::1")));
        assert!(source_allowed(
            &["127.0.0.1/32".into()],
            ip("::ffff:127.0.0.1")
        ));
        assert!(!source_allowed(&["bogus".into()], ip("127.0.0.1")));
    }
}
