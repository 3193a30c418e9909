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
    /// `resolver_pinned_accounts` does not list the user's account.
    #[error("account {account} not listed as operator pinned account")]
    NotPinned {
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
    /// Outside the user's connect times.
    #[error("outside connect times")]
    OutsideTimes,
    /// A `times_location` other than the server's own zone or UTC.
    #[error(
        "connect times in {0:?} are not supported by natrium-server (only UTC or the server's local time)"
    )]
    TimesLocation(String),
    /// The user must come through a trusted proxy; natrium has none.
    #[error("user requires a trusted proxy, and natrium-server has none")]
    ProxyRequired,
    /// A `times` entry that is not `HH:MM:SS`.
    #[error("connect time {0:?} is not HH:MM:SS")]
    TimeFormat(String),
}

/// Seconds since midnight of an `HH:MM:SS` time.
fn seconds_of_day(t: &str) -> Result<i64, JwtLoginError> {
    let bad = || JwtLoginError::TimeFormat(t.to_string());
    let mut parts = t.split(':');
    let mut field = |max: i64| -> Result<i64, JwtLoginError> {
        let v: i64 = parts.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        if (0..=max).contains(&v) {
            Ok(v)
        } else {
            Err(bad())
        }
    };
    let (h, m, s) = (field(23)?, field(59)?, field(59)?);
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(h * 3600 + m * 60 + s)
}

/// nats-server's `validateTimes`: `Ok(None)` without ranges; `Ok(Some(left))` when `now`
/// (seconds since midnight in the ranges' zone) is inside one of them, with the most
/// seconds left of any; an error outside all of them. A range whose start is after its
/// end crosses midnight.
fn connect_window(ranges: &[jwt::TimeRange], now: i64) -> Result<Option<i64>, JwtLoginError> {
    if ranges.is_empty() {
        return Ok(None);
    }
    let mut best: Option<i64> = None;
    for r in ranges {
        let (start, mut end) = (seconds_of_day(&r.start)?, seconds_of_day(&r.end)?);
        let left = if start < now && end > now {
            Some(end - now)
        } else if start > end {
            if end > now {
                Some(end - now)
            } else {
                end += 86_400;
                (start < now && end > now).then(|| end - now)
            }
        } else {
            None
        };
        if let Some(l) = left
            && best.is_none_or(|b| l > b)
        {
            best = Some(l);
        }
    }
    best.map(Some).ok_or(JwtLoginError::OutsideTimes)
}

/// When a login ends (unix seconds; `None`: never): at the JWT's expiry `exp` (0: none)
/// or the end of the current window of the user's connect `times`, whichever comes
/// first (nats-server's `setExpiration`). Outside every window: `OutsideTimes`.
pub(crate) fn login_expiry(
    exp: i64,
    limits: &UserPermissionLimits,
    now: i64,
) -> Result<Option<i64>, JwtLoginError> {
    let window = if limits.times.is_empty() {
        None
    } else {
        connect_window(&limits.times, now_in(&limits.times_location)?)?
    };
    Ok(match (exp > 0, window) {
        (true, Some(left)) => Some(exp.min(now + left)),
        (true, None) => Some(exp),
        (false, Some(left)) => Some(now + left),
        (false, None) => None,
    })
}

/// Now as seconds since midnight in `location` (empty: the server's local time, as
/// nats-server's `time.Local`; or UTC).
fn now_in(location: &str) -> Result<i64, JwtLoginError> {
    let offset = match location {
        "" | "Local" => crate::logging::local_offset(),
        "UTC" | "Etc/UTC" | "GMT" | "Etc/GMT" | "Z" => time::UtcOffset::UTC,
        other => return Err(JwtLoginError::TimesLocation(other.to_string())),
    };
    let t = time::OffsetDateTime::now_utc().to_offset(offset);
    Ok(i64::from(t.hour()) * 3600 + i64::from(t.minute()) * 60 + i64::from(t.second()))
}

/// nats-server's `minLimit`: -1 is no limit; otherwise the smaller limit wins (0 means
/// none allowed).
fn min_limit(own: i64, other: i64) -> i64 {
    match (own < 0, other < 0) {
        (true, _) => other,
        (false, true) => own,
        (false, false) => own.min(other),
    }
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

/// Most subjects one permission list may expand to through tag templates (nats-server's
/// bound too: a user's tags must not blow up the server's memory).
const MAX_TEMPLATE_EXPANSIONS: usize = 4096;

/// The `{{...}}` templates in `s`, as (the template text, its operation).
fn templates_in(s: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = s;
    let mut base = 0;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else {
            break;
        };
        let text = &s[base + start..base + start + len + 2];
        out.push((text, text[2..text.len() - 2].trim()));
        base += start + len + 2;
        rest = &s[base..];
    }
    out
}

/// nats-server's `processUserPermissionsTemplate` for one permission list:
/// `{{name()}}`, `{{subject()}}`, `{{account-name()}}`, `{{account-subject()}}`, and
/// `{{tag(x)}}` / `{{account-tag(x)}}`, which expand to every value of the `x:` tags (all
/// combinations when several appear). An unknown operation is an error; a subject that
/// comes out invalid (or a tag with no value) is dropped from an allow list and an error
/// in a deny list (`strict`).
fn apply_templates(
    list: &[String],
    user: &Claims<UserNats>,
    account: &str,
    acc: &AccountAuth,
    strict: bool,
) -> Result<Vec<String>, JwtLoginError> {
    if !list.iter().any(|s| s.contains("{{")) {
        return Ok(list.to_vec());
    }
    let mut out = Vec::with_capacity(list.len());
    for s in list {
        let templates = templates_in(s);
        let mut values: Vec<Vec<String>> = Vec::with_capacity(templates.len());
        for (_, op) in &templates {
            let lower = op.to_ascii_lowercase();
            let tag_values = |prefix: &str, tags: &[String]| -> Option<Vec<String>> {
                let name = lower.strip_prefix(prefix)?.strip_suffix(')')?;
                let want = format!("{name}:");
                Some(
                    tags.iter()
                        .filter_map(|t| t.strip_prefix(&want).map(str::to_string))
                        .collect(),
                )
            };
            let v = match lower.as_str() {
                "name()" => vec![user.name.clone()],
                "subject()" => vec![user.sub.clone()],
                "account-name()" => vec![acc.name.clone()],
                "account-subject()" => vec![account.to_string()],
                _ => {
                    let found = tag_values("account-tag(", &acc.tags)
                        .or_else(|| tag_values("tag(", &user.nats.tags))
                        .ok_or_else(|| {
                            JwtLoginError::Template(format!(
                                "template operation in {s:?}: {op:?} is not defined"
                            ))
                        })?;
                    if found.is_empty() {
                        if strict {
                            return Err(JwtLoginError::Template(format!(
                                "generated invalid subject {s:?}: {op:?} is not defined"
                            )));
                        }
                        // An invalid subject, dropped below.
                        vec![" ".to_string()]
                    } else {
                        found
                    }
                }
            };
            values.push(v);
        }
        let combinations = values
            .iter()
            .try_fold(1usize, |n, v| n.checked_mul(v.len()));
        match combinations {
            Some(n) if out.len() + n <= MAX_TEMPLATE_EXPANSIONS => {}
            _ => {
                return Err(JwtLoginError::Template(format!(
                    "permission template expansion limit of {MAX_TEMPLATE_EXPANSIONS} exceeded"
                )));
            }
        }
        // Every combination of the templates' values, like an odometer.
        let mut pick = vec![0usize; values.len()];
        loop {
            let mut subject = s.clone();
            for (i, (text, _)) in templates.iter().enumerate() {
                subject = subject.replace(text, &values[i][pick[i]]);
            }
            if crate::sublist::is_valid_subject(subject.as_bytes()) {
                out.push(subject);
            } else if strict {
                return Err(JwtLoginError::Template("generated invalid subject".into()));
            }
            let mut i = values.len();
            loop {
                if i == 0 {
                    break;
                }
                i -= 1;
                pick[i] += 1;
                if pick[i] < values[i].len() {
                    break;
                }
                pick[i] = 0;
            }
            if pick.iter().all(|p| *p == 0) {
                break;
            }
        }
    }
    Ok(out)
}

pub(crate) fn templated(
    t: &UserPermissionLimits,
    user: &Claims<UserNats>,
    account: &str,
    acc: &AccountAuth,
) -> Result<UserPermissionLimits, JwtLoginError> {
    let mut l = t.clone();
    let had_sub_allow = !l.subscribe.allow.is_empty();
    let had_pub_allow = !l.publish.allow.is_empty();
    l.subscribe.allow = apply_templates(&t.subscribe.allow, user, account, acc, false)?;
    l.subscribe.deny = apply_templates(&t.subscribe.deny, user, account, acc, true)?;
    l.publish.allow = apply_templates(&t.publish.allow, user, account, acc, false)?;
    l.publish.deny = apply_templates(&t.publish.deny, user, account, acc, true)?;
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
    if user.nats.proxy_required {
        return Err(JwtLoginError::ProxyRequired);
    }
    let now = jwt::unix_now();
    user.check_times(now)?;
    let account = if user.nats.issuer_account.is_empty() {
        user.iss.clone()
    } else {
        user.nats.issuer_account.clone()
    };
    if op.pinned.as_ref().is_some_and(|p| !p.contains(&account)) {
        return Err(JwtLoginError::NotPinned { account });
    }
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
    if !conn_types.is_empty()
        && !conn_types
            .iter()
            .any(|t| super::CONNECTION_TYPES.contains(&t.as_str()))
    {
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
    let user_expires = login_expiry(user.exp, &limits, now)?;
    // An account JWT that expires first ends the login too, with its own message.
    let account_first = acc.expires > 0 && user_expires.is_none_or(|u| acc.expires < u);
    let expires = if account_first {
        Some(acc.expires)
    } else {
        user_expires
    };
    let granted = permissions(&limits).or_else(|| acc.default_permissions.clone());
    let perms = granted.as_ref().map(|p| Arc::new(ClientPerms::compile(p)));
    let max_subs = min_limit(limits.subs, acc.subs_payload.0);
    let max_payload = min_limit(limits.payload, acc.subs_payload.1);
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
        expires,
        account_expires_first: account_first,
        max_subs,
        max_payload,
        jwt_user: Some(Arc::new(JwtUser {
            issuer: user.iss.clone(),
            jwt: if limits.bearer_token {
                String::new()
            } else {
                token.to_string()
            },
            user_name: user.name.clone(),
            tags: user.nats.tags.clone(),
            rights: (granted, max_subs, max_payload),
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
    /// The user JWT's name (`$SYS.REQ.USER.INFO user_name`).
    pub user_name: String,
    /// The user's tags (`tags`).
    pub tags: Vec<String>,
    /// The permissions (its own, or the account's defaults), subscription limit and
    /// payload limit the login got: a connection whose account changed them logs in
    /// again.
    pub rights: (Option<crate::options::Permissions>, i64, i64),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(name: &str, tags: &[&str]) -> Claims<UserNats> {
        Claims {
            jti: String::new(),
            iat: 0,
            iss: String::new(),
            sub: "UKEY".into(),
            name: name.into(),
            exp: 0,
            nbf: 0,
            aud: String::new(),
            nats: UserNats {
                tags: tags.iter().map(|t| t.to_string()).collect(),
                ..UserNats::default()
            },
        }
    }

    fn account_auth(tags: &[&str]) -> AccountAuth {
        AccountAuth {
            name: "acme".into(),
            signing_keys: Default::default(),
            revocations: Default::default(),
            default_permissions: None,
            disallow_bearer: false,
            expires: 0,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            issuer: String::new(),
            subs_payload: (-1, -1),
            jwt: String::new(),
            callout: None,
        }
    }

    #[test]
    fn permission_templates() {
        let u = claims("bob", &["dept:a", "dept:b", "site:x"]);
        let acc = account_auth(&["region:eu"]);
        let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let got = apply_templates(
            &list(&[
                "own.{{name()}}.>",
                "k.{{ subject() }}",
                "a.{{account-name()}}.{{account-subject()}}",
                "plain",
            ]),
            &u,
            "AKEY",
            &acc,
            false,
        )
        .expect("expands");
        assert_eq!(got, list(&["own.bob.>", "k.UKEY", "a.acme.AKEY", "plain"]));
        // Tags: every value, every combination.
        let got = apply_templates(
            &list(&["d.{{tag(dept)}}.{{tag(site)}}.{{account-tag(region)}}"]),
            &u,
            "AKEY",
            &acc,
            false,
        )
        .expect("expands");
        assert_eq!(got, list(&["d.a.x.eu", "d.b.x.eu"]));
        // A tag without values: dropped from an allow list, an error in a deny list.
        let none = list(&["n.{{tag(missing)}}"]);
        assert_eq!(apply_templates(&none, &u, "AKEY", &acc, false), Ok(vec![]));
        assert!(apply_templates(&none, &u, "AKEY", &acc, true).is_err());
        // Unknown operations are errors.
        assert!(apply_templates(&list(&["x.{{nope()}}"]), &u, "AKEY", &acc, false).is_err());
        // The expansion is bounded.
        let many: Vec<String> = (0..70).map(|i| format!("t:{i}")).collect();
        let mut big = claims("bob", &[]);
        big.nats.tags = many;
        assert!(matches!(
            apply_templates(
                &list(&["x.{{tag(t)}}.{{tag(t)}}"]),
                &big,
                "AKEY",
                &acc,
                false
            ),
            Err(JwtLoginError::Template(_))
        ));
    }

    #[test]
    fn connect_times() {
        let r = |a: &str, b: &str| jwt::TimeRange {
            start: a.into(),
            end: b.into(),
        };
        let at = |h: i64, m: i64| h * 3600 + m * 60;
        assert_eq!(connect_window(&[], at(3, 0)), Ok(None));
        let day = [r("11:00:00", "22:00:00")];
        assert_eq!(connect_window(&day, at(13, 0)), Ok(Some(9 * 3600)));
        assert_eq!(
            connect_window(&day, at(23, 0)),
            Err(JwtLoginError::OutsideTimes)
        );
        // Crossing midnight, before and after it.
        let night = [r("22:00:00", "06:00:00")];
        assert_eq!(connect_window(&night, at(5, 0)), Ok(Some(3600)));
        assert_eq!(connect_window(&night, at(23, 30)), Ok(Some(at(6, 30))));
        assert_eq!(
            connect_window(&night, at(12, 0)),
            Err(JwtLoginError::OutsideTimes)
        );
        // The range with the most time left wins.
        let both = [r("12:00:00", "14:00:00"), r("10:00:00", "20:00:00")];
        assert_eq!(connect_window(&both, at(13, 0)), Ok(Some(7 * 3600)));
        assert!(matches!(
            connect_window(&[r("25:00:00", "26:00:00")], 0),
            Err(JwtLoginError::TimeFormat(_))
        ));
        assert!(matches!(
            now_in("Mars/Olympus"),
            Err(JwtLoginError::TimesLocation(_))
        ));
        assert!(now_in("UTC").is_ok_and(|s| (0..86_400).contains(&s)));
    }

    #[test]
    fn limits_fold_as_nats_server() {
        assert_eq!(min_limit(-1, -1), -1);
        assert_eq!(min_limit(-1, 0), 0);
        assert_eq!(min_limit(5, -1), 5);
        assert_eq!(min_limit(5, 3), 3);
        assert_eq!(min_limit(0, 3), 0);
    }

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
