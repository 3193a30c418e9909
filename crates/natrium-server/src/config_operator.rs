//! Operator (JWT) mode in the config: `operator`, `trusted_keys`, `resolver`,
//! `resolver_preload`.
//!
//! Why here and not at CONNECT: in operator mode the accounts come from account JWTs, not
//! from an `accounts {}` block. With the `MEMORY` resolver (and the JWTs a `full` or
//! `cache` resolver finds in its directory at start) every account is known when the
//! config is read, so each account JWT is verified once and turned into the same
//! [`AccountConfig`] an `accounts {}` block gives. Everything downstream (limits,
//! JetStream, imports, exports, mappings, monitoring) then works as for configured
//! accounts. What stays JWT-specific is who may log in: [`OperatorAuth`] keeps, per
//! account, the keys that may sign users, the revocations and the default permissions,
//! for `auth` to check user JWTs against.
//!
//! nats-server's rules are followed: an operator needs a resolver; operator mode refuses
//! configured accounts and users; `system_account` must agree with the operator's; an
//! account JWT counts only if a trusted key signed it. An account JWT pushed while
//! running ([`push_account`]) rebuilds the accounts the same way, with the pushed JWT
//! taken as if it were in the directory. Not supported (refused with a clear error, see
//! `docs/compat.md`): the `URL(...)` resolver.

use crate::conf::{self, ConfError, Entry, Pos, Spanned, Value};
use crate::jwt::{
    self, AccountNats, ActivationNats, ClaimKind, Claims, OperatorNats, UserPermissionLimits,
};
use crate::options::{
    AccountConfig, AccountJsLimits, AccountLimits, DEFAULT_ALLOW_RESPONSE_EXPIRATION, ExportConfig,
    ImportConfig, Options, Permissions, ResponsePermission, ResponseType, SubjectPermission,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// An account's name tag, as monitoring and events show it: the `name` of its JWT in
/// operator mode, else the account's own name.
pub fn name_tag(o: &Options, account: &str) -> String {
    o.operator
        .as_ref()
        .and_then(|op| op.accounts.get(account))
        .map(|a| a.name.as_str())
        .filter(|n| !n.is_empty())
        .unwrap_or(account)
        .to_string()
}

/// Where account JWTs come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolver {
    /// `MEMORY`: only `resolver_preload`.
    Memory,
    /// `{type: full|cache, dir: …}`: the `<account>.jwt` files in `dir`, and
    /// `resolver_preload` (natrium keeps a `cache` resolver's JWTs as a `full` one does,
    /// see `docs/compat.md`).
    Dir {
        /// The directory.
        dir: PathBuf,
        /// What `$SYS.REQ.CLAIMS.DELETE` may do there (`allow_delete`, `hard_delete`).
        deletes: Deletes,
    },
}

/// What a `full` resolver does with an account deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Deletes {
    /// Refused (no `allow_delete`).
    #[default]
    Refused,
    /// The JWT file is renamed to `<key>.jwt.deleted` (nats-server's default).
    Rename,
    /// The JWT file is removed (`hard_delete`).
    Remove,
}

/// The operator keys as the config gives them, before [`finish`] checks them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OperatorOptions {
    /// Decoded operator JWTs (`operator`).
    pub operators: Vec<Claims<OperatorNats>>,
    /// The raw operator JWTs, for monitoring.
    pub operator_jwts: Vec<String>,
    /// `trusted_keys`.
    pub trusted_keys: Vec<String>,
    /// `resolver`.
    pub resolver: Option<Resolver>,
    /// `resolver_preload`: account public key to JWT.
    pub preload: Vec<(String, String)>,
    /// `resolver_pinned_accounts`: only these accounts' users may log in (the system
    /// account always may). `None`: any account.
    pub pinned: Option<Vec<String>>,
    /// Where the first operator key was set, for errors about the whole setup.
    pub pos: Pos,
}

impl PartialEq for Claims<OperatorNats> {
    fn eq(&self, other: &Self) -> bool {
        self.jti == other.jti && self.sub == other.sub && self.iat == other.iat
    }
}

/// A user-signing key of an account, with its scope's template when it is scoped.
pub type SigningKeys = BTreeMap<String, Option<UserPermissionLimits>>;

/// What authenticating an account's users needs.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountAuth {
    /// The account's display name (`name` in its JWT; `{{account-name()}}`).
    pub name: String,
    /// Keys that may sign users (the account key itself is one, with no scope).
    pub signing_keys: SigningKeys,
    /// Revoked users (public key or `*`) with the time before which their JWTs are void.
    pub revocations: BTreeMap<String, i64>,
    /// Permissions of users whose JWT has none.
    pub default_permissions: Option<Permissions>,
    /// Bearer-token users refused.
    pub disallow_bearer: bool,
    /// The account JWT's expiry (unix seconds, 0: none).
    pub expires: i64,
    /// The account JWT's tags (`{{account-tag(x)}}`).
    pub tags: Vec<String>,
    /// The operator key that signed the account JWT (`/accountz issuer_key`).
    pub issuer: String,
    /// The account JWT's `subs` and `payload` limits (-1: none; 0: none allowed), folded
    /// into each login's own limits as nats-server's `minLimit` does.
    pub subs_payload: (i64, i64),
    /// The account JWT.
    pub jwt: String,
    /// The account's auth callout (its JWT's `authorization`), when it has one.
    pub callout: Option<crate::auth::callout::CalloutConfig>,
}

/// Operator mode, checked: the keys trusted to sign accounts, and each account's login
/// rules.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OperatorAuth {
    /// Operator keys (and signing keys) trusted to sign account JWTs.
    pub trusted_keys: Vec<String>,
    /// Accounts by public key.
    pub accounts: BTreeMap<String, AccountAuth>,
    /// The operator JWTs (`/varz trusted_operators_jwt`).
    pub operator_jwts: Vec<String>,
    /// `resolver_pinned_accounts` with the system account added: only these accounts'
    /// users may log in. `None`: any account.
    pub pinned: Option<std::collections::BTreeSet<String>>,
}

fn strings(v: &Spanned, what: &str) -> Result<Vec<String>, ConfError> {
    match &v.value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| match &i.value {
                Value::String(s) => Ok(s.clone()),
                other => Err(i.pos.error(format!(
                    "error parsing {what}: unsupported type {} where string is expected",
                    other.type_name()
                ))),
            })
            .collect(),
        other => Err(v.pos.error(format!(
            "error parsing {what}: unsupported type {}",
            other.type_name()
        ))),
    }
}

/// A JWT file's text (plain or decorated, as nsc writes them), read only when it is no
/// larger than a token may be ([`jwt::MAX_TOKEN_SIZE`], plus room for the decoration).
fn read_jwt_file(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    const DECORATION: u64 = 4096;
    let mut text = String::new();
    let limit = jwt::MAX_TOKEN_SIZE as u64 + DECORATION;
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes"),
        ));
    }
    Ok(text)
}

/// Read an operator JWT from a file, or take it inline (a string starting `eyJ`).
fn read_operator(text: &str, at: &Pos) -> Result<(String, Claims<OperatorNats>), ConfError> {
    let contents = match read_jwt_file(std::path::Path::new(text)) {
        Ok(c) => c,
        Err(e) if !text.starts_with("eyJ") => {
            return Err(at.error(format!("error parsing operator JWT: {e}")));
        }
        Err(_) => text.to_string(),
    };
    let token = jwt::parse_decorated(&contents).to_string();
    let claims = jwt::decode::<OperatorNats>(&token)
        .map_err(|e| at.error(format!("error parsing operator JWT: {e}")))?;
    if claims.iss != claims.sub && !claims.nats.signing_keys.contains(&claims.iss) {
        return Err(at.error("error parsing operator JWT: not self-signed by the operator"));
    }
    Ok((token, claims))
}

/// Apply one of the operator-mode keys. `false` when `key` is none of them.
pub fn apply_entry(o: &mut Options, key: &str, e: &Entry) -> Result<bool, ConfError> {
    let v = &e.value;
    match key {
        "operator" | "operators" | "roots" | "root" | "root_operators" | "root_operator" => {
            let op = o.operator_options.get_or_insert_with(Default::default);
            op.pos = e.key_pos.clone();
            op.operators.clear();
            op.operator_jwts.clear();
            for s in strings(v, "operators")? {
                let (token, claims) = read_operator(&s, &v.pos)?;
                op.operator_jwts.push(token);
                op.operators.push(claims);
            }
        }
        "trusted" | "trusted_keys" => {
            let keys = strings(v, "trusted")?;
            for k in &keys {
                if !jwt::is_public_key(k, nkeys::KeyPairType::Operator) {
                    return Err(v.pos.error(format!(
                        "trust key {k:?} required to be a valid public operator nkey"
                    )));
                }
            }
            let op = o.operator_options.get_or_insert_with(Default::default);
            if op.operators.is_empty() {
                op.pos = e.key_pos.clone();
            }
            op.trusted_keys = keys;
        }
        "resolver" | "account_resolver" | "accounts_resolver" => {
            let r = resolver(v)?;
            o.operator_options
                .get_or_insert_with(Default::default)
                .resolver = Some(r);
        }
        "resolver_preload" => {
            let Value::Map(m) = &v.value else {
                return Err(v
                    .pos
                    .error("preload should be a map of account_public_key:account_jwt"));
            };
            let mut preload = Vec::new();
            for pe in m.iter() {
                let Value::String(token) = &pe.value.value else {
                    return Err(pe
                        .value
                        .pos
                        .error("preload map value should be a string JWT"));
                };
                if jwt::decode::<AccountNats>(token).is_err() {
                    return Err(pe.value.pos.error("invalid account JWT"));
                }
                preload.push((pe.key.clone(), token.trim().to_string()));
            }
            o.operator_options
                .get_or_insert_with(Default::default)
                .preload = preload;
        }
        "resolver_pinned_accounts" => {
            let keys = match &e.value.value {
                Value::String(k) => vec![k.clone()],
                Value::Array(items) => items
                    .iter()
                    .map(|i| match &i.value {
                        Value::String(k) => Ok(k.clone()),
                        other => Err(i.pos.error(format!(
                            "error parsing resolver_pinned_accounts: unsupported type in array {}",
                            other.type_name()
                        ))),
                    })
                    .collect::<Result<_, _>>()?,
                other => {
                    return Err(e.value.pos.error(format!(
                        "error parsing resolver_pinned_accounts: unsupported type {}",
                        other.type_name()
                    )));
                }
            };
            o.operator_options
                .get_or_insert_with(Default::default)
                .pinned = Some(keys);
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn resolver(v: &Spanned) -> Result<Resolver, ConfError> {
    let bad = || {
        v.pos.error(
            "error parsing account resolver, should be MEM or  URL(\"url\") or a map containing dir and type state=[FULL|CACHE])",
        )
    };
    match &v.value {
        Value::String(s) => {
            let upper = s.trim().to_ascii_uppercase();
            if upper.starts_with("MEM") {
                Ok(Resolver::Memory)
            } else if upper.starts_with("URL") {
                Err(v.pos.error(
                    "the URL account resolver is not supported by natrium-server (use MEMORY or a full/cache resolver directory)",
                ))
            } else {
                Err(bad())
            }
        }
        Value::Map(m) => {
            let mut dir = None;
            let mut kind = String::new();
            let mut ttl = false;
            let mut del = false;
            let mut hard_delete = false;
            let mut hard_delete_set = false;
            let mut interval = false;
            for e in m.iter() {
                match e.key.to_ascii_lowercase().as_str() {
                    "dir" => dir = Some(PathBuf::from(conf::as_string(&e.value)?)),
                    "type" => kind = conf::as_string(&e.value)?.to_ascii_uppercase(),
                    "allow_delete" => del = conf::as_bool(&e.value)?,
                    "hard_delete" => {
                        hard_delete_set = true;
                        hard_delete = conf::as_bool(&e.value)?;
                    }
                    "ttl" => ttl = true,
                    "interval" => interval = true,
                    "limit" | "timeout" => {}
                    _ => {}
                }
            }
            let check_dir = || -> Result<Resolver, ConfError> {
                let Some(dir) = dir.clone().filter(|d| !d.as_os_str().is_empty()) else {
                    return Err(v
                        .pos
                        .error("dir has no value and needs to point to a directory"));
                };
                if let Ok(md) = std::fs::metadata(&dir)
                    && !md.is_dir()
                {
                    return Err(v.pos.error("dir needs to point to an accessible directory"));
                }
                let deletes = match (del, hard_delete) {
                    (false, _) => Deletes::Refused,
                    (true, false) => Deletes::Rename,
                    (true, true) => Deletes::Remove,
                };
                Ok(Resolver::Dir { dir, deletes })
            };
            match kind.as_str() {
                "CACHE" => {
                    if interval {
                        return Err(v.pos.error("CACHE does not accept sync"));
                    }
                    if del {
                        return Err(v.pos.error("CACHE does not accept allow_delete"));
                    }
                    if hard_delete_set {
                        return Err(v.pos.error("CACHE does not accept hard_delete"));
                    }
                    check_dir()
                }
                "FULL" => {
                    if ttl {
                        return Err(v.pos.error("FULL does not accept ttl"));
                    }
                    if hard_delete_set && !del {
                        return Err(v.pos.error("hard_delete has no effect without delete"));
                    }
                    check_dir()
                }
                "MEM" | "MEMORY" => Ok(Resolver::Memory),
                _ => Err(bad()),
            }
        }
        other => Err(v.pos.error(format!(
            "error parsing operator resolver, wrong type {}",
            other.type_name()
        ))),
    }
}

/// After the whole file is read: check operator mode as nats-server's
/// `validateTrustedOperators` does, and turn every account JWT into an account.
pub fn finish(o: &mut Options) -> Result<(), ConfError> {
    let Some(op) = o.operator_options.clone() else {
        return Ok(());
    };
    if op.operators.is_empty() && op.trusted_keys.is_empty() {
        // A resolver without an operator: nats-server ignores it.
        o.warnings.push(
            "resolver settings without an operator are ignored (operator mode is off)".into(),
        );
        return Ok(());
    }
    let at = &op.pos;
    let Some(resolver) = op.resolver.clone() else {
        return Err(at.error("operators require an account resolver to be configured"));
    };
    if !o.accounts.accounts.is_empty() {
        return Err(at.error("operators do not allow Accounts to be configured directly"));
    }
    if !o.accounts.users.is_empty() || o.auth.required() {
        return Err(at.error("operators do not allow users to be configured directly"));
    }
    if !op.operators.is_empty() && !op.trusted_keys.is_empty() {
        return Err(at.error("conflicting options for 'TrustedKeys' and 'TrustedOperators'"));
    }
    if o.accounts.system_account.is_none()
        && let Some(first) = op.operators.first()
        && !first.nats.system_account.is_empty()
    {
        o.accounts.system_account = Some(first.nats.system_account.clone());
    }
    if let Some(sys) = &o.accounts.system_account
        && op
            .operators
            .iter()
            .any(|c| !c.nats.system_account.is_empty())
        && !op.operators.iter().any(|c| c.nats.system_account == *sys)
    {
        return Err(at.error("system_account in config and operator JWT must be identical"));
    }
    if o.accounts.system_account.is_none() && matches!(resolver, Resolver::Dir { .. }) {
        return Err(at.error(
            "using nats based account resolver - the system account needs to be specified in configuration or the operator jwt",
        ));
    }
    for c in &op.operators {
        check_server_version(c, at)?;
    }
    let mut trusted = op.trusted_keys.clone();
    for c in &op.operators {
        if !c.nats.strict_signing_key_usage {
            trusted.push(c.sub.clone());
        }
        trusted.extend(c.nats.signing_keys.iter().cloned());
    }
    for k in &trusted {
        if !jwt::is_public_key(k, nkeys::KeyPairType::Operator) {
            return Err(at.error(format!(
                "trusted Keys {k:?} are required to be a valid public operator nkey"
            )));
        }
    }
    if let Some(keys) = &op.pinned {
        for k in keys {
            if !jwt::is_public_key(k, nkeys::KeyPairType::Account) {
                return Err(at.error(format!(
                    "pinned account key {k:?} is not a valid public account nkey"
                )));
            }
        }
    }
    resolve_accounts(o, &op, &resolver, trusted);
    Ok(())
}

/// Read the account JWTs again and rebuild the accounts from them, with `pushed`
/// (account key, JWT) taken as if it were in the resolver's directory already: the same
/// result a restart would give once the push is stored.
fn refresh_accounts(o: &mut Options, pushed: Option<(String, String)>) {
    let (Some(mut op), Some(auth)) = (o.operator_options.clone(), o.operator.clone()) else {
        return;
    };
    let Some(resolver) = op.resolver.clone() else {
        return;
    };
    // Warnings are for the start-up log; a rebuild's own are not kept piling up.
    o.warnings.clear();
    // The preloads come after the directory (the newest of each account wins).
    op.preload.extend(pushed);
    o.accounts.accounts.clear();
    resolve_accounts(o, &op, &resolver, auth.trusted_keys.clone());
}

/// Every account JWT (from the resolver's directory, then the preloads; the newest of
/// each account wins), verified against `trusted`, as accounts and login rules.
fn resolve_accounts(
    o: &mut Options,
    op: &OperatorOptions,
    resolver: &Resolver,
    trusted: Vec<String>,
) {
    let mut tokens: BTreeMap<String, String> = BTreeMap::new();
    if let Resolver::Dir { dir, .. } = resolver
        && let Ok(entries) = std::fs::read_dir(dir)
    {
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(key) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".jwt"))
            else {
                continue;
            };
            match read_jwt_file(&path) {
                Ok(text) => {
                    tokens.insert(key.to_string(), jwt::parse_decorated(&text).to_string());
                }
                Err(e) => o.warnings.push(format!(
                    "account JWT file {} is ignored: {e}",
                    path.display()
                )),
            }
        }
    }
    let now = jwt::unix_now();
    let mut decoded: BTreeMap<String, Claims<AccountNats>> = BTreeMap::new();
    let mut raw: BTreeMap<String, String> = BTreeMap::new();
    let sources = tokens.into_iter().chain(op.preload.iter().cloned());
    for (key, token) in sources {
        let claims = match jwt::decode::<AccountNats>(&token) {
            Ok(c) => c,
            Err(e) => {
                o.warnings.push(format!(
                    "account JWT for {key} is not valid and is ignored: {e}"
                ));
                continue;
            }
        };
        if claims.sub != key {
            o.warnings.push(format!(
                "account JWT for {key} is about another account ({}) and is ignored",
                claims.sub
            ));
            continue;
        }
        if let Some(issue) = claims.nats.validation_issue() {
            // nats-server logs these and uses the account; a callout with a bad `xkey`
            // then refuses its logins rather than send requests unsealed.
            o.warnings
                .push(format!("Account [{key}] has validation issues: {issue}"));
        }
        if !trusted.contains(&claims.iss) {
            o.warnings.push(format!(
                "account JWT for {key} is not signed by a trusted operator and is ignored"
            ));
            continue;
        }
        if claims.exp > 0 && now > claims.exp {
            o.warnings.push(format!(
                "account JWT for {key} has expired; its users cannot log in"
            ));
        }
        if decoded.get(&key).is_none_or(|old| old.iat <= claims.iat) {
            raw.insert(key.clone(), token);
            decoded.insert(key, claims);
        }
    }

    let mut accounts = Vec::new();
    let mut auth = OperatorAuth {
        trusted_keys: trusted,
        accounts: BTreeMap::new(),
        operator_jwts: op.operator_jwts.clone(),
        // The system account (the operator's own) can always log in.
        pinned: op.pinned.as_ref().map(|keys| {
            keys.iter()
                .cloned()
                .chain(o.accounts.system_account.clone())
                .collect()
        }),
    };
    for (key, c) in &decoded {
        accounts.push(account_config(key, c));
        let mut signing_keys: SigningKeys = c
            .nats
            .signing_keys
            .iter()
            .map(|k| (k.key.clone(), k.template.clone()))
            .collect();
        // Under an operator with strict signing-key usage that signed this account with
        // a signing key, only the account's signing keys sign users (nats-server).
        let strict = op
            .operators
            .iter()
            .any(|o| o.nats.strict_signing_key_usage && o.nats.signing_keys.contains(&c.iss));
        if !strict {
            signing_keys.insert(key.clone(), None);
        }
        auth.accounts.insert(
            key.clone(),
            AccountAuth {
                name: c.name.clone(),
                signing_keys,
                revocations: c.nats.revocations.clone(),
                default_permissions: permissions(&c.nats.default_permissions),
                disallow_bearer: c.nats.limits.disallow_bearer,
                expires: c.exp,
                tags: c.nats.tags.clone(),
                issuer: c.iss.clone(),
                subs_payload: (c.nats.limits.subs, c.nats.limits.payload),
                jwt: raw.get(key).cloned().unwrap_or_default(),
                callout: crate::auth::callout::CalloutConfig::of_account(
                    key,
                    &c.nats.authorization,
                ),
            },
        );
    }
    activate_private_exports(&decoded, &mut accounts, &mut o.warnings);
    check_account_token_positions(&decoded, &mut accounts, &mut o.warnings);
    // (A system account with no JWT is refused when the accounts are built, with
    // nats-server's "error resolving system account: account missing".)
    o.accounts.accounts = accounts;
    o.accounts.accounts_block = true;
    drop_unusable_imports(o);
    o.operator = Some(std::sync::Arc::new(auth));
}

/// `major.minor.update` of a version string (`v` prefix allowed; empty is 0.0.0).
fn version_parts(v: &str) -> Option<(u64, u64, u64)> {
    let v = v.trim().trim_start_matches('v');
    if v.is_empty() {
        return Some((0, 0, 0));
    }
    let core = v.split(['-', '+']).next().unwrap_or(v);
    let mut it = core.split('.').map(|p| p.parse::<u64>().ok());
    let parts = (it.next()??, it.next()??, it.next()??);
    it.next().is_none().then_some(parts)
}

/// nats-server's check of an operator's `assert_server_version` against its own version
/// (natrium answers as nats-server [`crate::options::NATS_COMPAT_VERSION`]).
fn check_server_version(c: &Claims<OperatorNats>, at: &Pos) -> Result<(), ConfError> {
    let want = &c.nats.assert_server_version;
    let Some((major, minor, update)) = version_parts(want) else {
        return Err(at.error(format!(
            "operator {} expects version {want} got error instead: invalid version",
            c.sub
        )));
    };
    let (smajor, sminor, supdate) =
        version_parts(crate::options::NATS_COMPAT_VERSION).unwrap_or((0, 0, 0));
    let fail = |what: &str, w: u64, s: u64| {
        Err(at.error(format!(
            "operator {} expected {what} version {w} > server {what} version {s}",
            c.sub
        )))
    };
    if major != smajor {
        return if major > smajor {
            fail("major", major, smajor)
        } else {
            Ok(())
        };
    }
    if minor != sminor {
        return if minor > sminor {
            fail("minor", minor, sminor)
        } else {
            Ok(())
        };
    }
    if update > supdate {
        return fail("update", update, supdate);
    }
    Ok(())
}

/// A JWT permission list as config permissions: an empty allow list means "no allow
/// list" (nats-server's `buildPermissionsFromJwt`).
fn subject_permission(p: &jwt::PermissionJwt) -> Option<SubjectPermission> {
    (!p.allow.is_empty() || !p.deny.is_empty()).then(|| SubjectPermission {
        allow: (!p.allow.is_empty()).then(|| p.allow.clone()),
        deny: p.deny.clone(),
    })
}

/// A JWT's permissions, `None` when it sets none.
pub fn permissions(l: &UserPermissionLimits) -> Option<Permissions> {
    let publish = subject_permission(&l.publish);
    let subscribe = subject_permission(&l.subscribe);
    let response = l.resp.as_ref().map(|r| ResponsePermission {
        max_msgs: if r.max == 0 { 1 } else { r.max },
        expires: Some(if r.ttl > 0 {
            Duration::from_nanos(r.ttl as u64)
        } else {
            DEFAULT_ALLOW_RESPONSE_EXPIRATION
        }),
    });
    // With response rights, the blanket publish allow is turned off (nats-server's
    // `validateResponsePermissions`): such a user publishes replies only, unless it has
    // a publish allow list of its own.
    let publish = match (publish, &response) {
        (None, Some(_)) => Some(SubjectPermission {
            allow: Some(Vec::new()),
            deny: Vec::new(),
        }),
        (Some(mut p), Some(_)) => {
            if p.allow.is_none() {
                p.allow = Some(Vec::new());
            }
            Some(p)
        }
        (p, None) => p,
    };
    (publish.is_some() || subscribe.is_some() || response.is_some()).then_some(Permissions {
        publish,
        subscribe,
        response,
    })
}

/// nats-server's `toUnlimited`: a positive value is a limit, anything else none.
fn to_unlimited(v: i64) -> i64 {
    if v > 0 { v } else { -1 }
}

fn js_limits(l: &jwt::AccountLimitsJwt) -> AccountJsLimits {
    AccountJsLimits {
        max_memory: l.mem_storage,
        max_store: l.disk_storage,
        max_streams: l.streams,
        max_consumers: l.consumer,
        max_bytes_required: l.max_bytes_required,
        memory_max_stream_bytes: to_unlimited(l.mem_max_stream_bytes),
        store_max_stream_bytes: to_unlimited(l.disk_max_stream_bytes),
        max_ack_pending: to_unlimited(l.max_ack_pending),
    }
}

/// An account JWT as an account.
fn account_config(key: &str, c: &Claims<AccountNats>) -> AccountConfig {
    let n = &c.nats;
    let l = &n.limits;
    // JetStream is on when storage is allowed (nats-server's `IsJSEnabled`); with tiered
    // limits only, the R1 tier applies (a single server has no other).
    let jetstream = if l.mem_storage != 0 || l.disk_storage != 0 {
        Some(js_limits(l))
    } else {
        l.tiered_limits
            .get("R1")
            .filter(|t| t.mem_storage != 0 || t.disk_storage != 0)
            .map(js_limits)
    };
    let exports = n
        .exports
        .iter()
        .filter(|e| !e.subject.is_empty())
        .map(|e| ExportConfig {
            subject: e.subject.clone(),
            service: e.kind == "service",
            accounts: e.token_req.then(Vec::new),
            response_type: match e.response_type.as_str() {
                "Stream" => ResponseType::Stream,
                "Chunked" => ResponseType::Chunked,
                _ => ResponseType::Singleton,
            },
            response_threshold: if e.response_threshold > 0 {
                Duration::from_nanos(e.response_threshold as u64)
            } else {
                Duration::from_secs(120)
            },
        })
        .collect();
    let imports = n
        .imports
        .iter()
        .filter(|i| !i.subject.is_empty() && !i.account.is_empty())
        .map(|i| {
            let service = i.kind == "service";
            if service {
                let (local, remote) = if !i.local_subject.is_empty() {
                    (i.local_subject.clone(), i.subject.clone())
                } else if !i.to.is_empty() {
                    (i.subject.clone(), i.to.clone())
                } else {
                    (i.subject.clone(), i.subject.clone())
                };
                ImportConfig {
                    account: i.account.clone(),
                    subject: remote.clone(),
                    service: true,
                    to: (local != remote).then_some(local),
                    prefix: None,
                    share: i.share,
                }
            } else {
                ImportConfig {
                    account: i.account.clone(),
                    subject: i.subject.clone(),
                    service: false,
                    to: (!i.local_subject.is_empty()).then(|| i.local_subject.clone()),
                    prefix: (i.local_subject.is_empty() && !i.to.is_empty()).then(|| i.to.clone()),
                    share: false,
                }
            }
        })
        .collect();
    let mappings = n
        .mappings
        .iter()
        .filter(|(_, dests)| !dests.is_empty())
        .map(|(from, dests)| crate::subject_mapping::MappingConfig {
            from: from.clone(),
            dests: dests
                .iter()
                .map(|d| {
                    (
                        d.subject.clone(),
                        if d.weight == 0 { 100 } else { d.weight },
                    )
                })
                .collect(),
        })
        .collect();
    AccountConfig {
        name: key.to_string(),
        exports,
        imports,
        jetstream,
        limits: AccountLimits {
            max_connections: l.conn,
            max_subscriptions: l.subs,
            max_payload: l.payload,
        },
        mappings,
        // A JWT account's defaults are applied at login (`AccountAuth`).
        default_permissions: None,
    }
}

/// An import of a private (`token_req`) export carries an activation token the exporter
/// signed for the importer; a valid one admits the importer to that export.
fn activate_private_exports(
    decoded: &BTreeMap<String, Claims<AccountNats>>,
    accounts: &mut [AccountConfig],
    warnings: &mut Vec<String>,
) {
    let now = jwt::unix_now();
    let mut grants: Vec<(String, String, bool, String)> = Vec::new();
    for (importer, c) in decoded {
        for i in &c.nats.imports {
            if i.token.is_empty() {
                continue;
            }
            let Some(exporter) = decoded.get(&i.account) else {
                continue;
            };
            let act = match jwt::decode::<ActivationNats>(jwt::parse_decorated(&i.token)) {
                Ok(a) => a,
                Err(e) => {
                    warnings.push(format!(
                        "activation token of {importer}'s import of {:?} is not valid: {e}",
                        i.subject
                    ));
                    continue;
                }
            };
            let service = i.kind == "service";
            // The subject in the exporter (a legacy service import's `to`).
            let remote = if service && i.local_subject.is_empty() && !i.to.is_empty() {
                &i.to
            } else {
                &i.subject
            };
            let signer_ok = act.iss == i.account
                || (act.nats.issuer_account == i.account
                    && exporter.nats.signing_keys.iter().any(|k| k.key == act.iss));
            let subject_ok = crate::sublist::subject_is_subset_match(
                remote.as_bytes(),
                act.nats.subject.as_bytes(),
            );
            let kind_ok = act.nats.kind.is_empty() || act.nats.kind == i.kind;
            // The exporter revoked activations issued before a time.
            let revoked = exporter.nats.exports.iter().any(|x| {
                (x.kind == "service") == service
                    && crate::sublist::subject_is_subset_match(
                        remote.as_bytes(),
                        x.subject.as_bytes(),
                    )
                    && [importer.as_str(), "*"]
                        .iter()
                        .any(|k| x.revocations.get(*k).is_some_and(|t| *t >= act.iat))
            });
            if !signer_ok
                || act.sub != *importer
                || !subject_ok
                || !kind_ok
                || revoked
                || act.check_times(now).is_err()
            {
                warnings.push(format!(
                    "activation token of {importer}'s import of {:?} does not authorize it",
                    i.subject
                ));
                continue;
            }
            grants.push((i.account.clone(), remote.clone(), service, importer.clone()));
        }
    }
    for (exporter, subject, service, importer) in grants {
        let Some(acc) = accounts.iter_mut().find(|a| a.name == exporter) else {
            continue;
        };
        for x in &mut acc.exports {
            if x.service == service
                && crate::sublist::subject_is_subset_match(subject.as_bytes(), x.subject.as_bytes())
                && let Some(list) = &mut x.accounts
                && !list.contains(&importer)
            {
                list.push(importer.clone());
            }
        }
    }
}

/// An export with `account_token_position` n may only be imported with the importer's
/// own account key as the n-th token of the subject (per-account subjects under one
/// export); other imports of it are dropped, as nats-server refuses them.
fn check_account_token_positions(
    decoded: &BTreeMap<String, Claims<AccountNats>>,
    accounts: &mut [AccountConfig],
    warnings: &mut Vec<String>,
) {
    for a in accounts.iter_mut() {
        a.imports.retain(|imp| {
            let Some(exporter) = decoded.get(&imp.account) else {
                return true;
            };
            let positioned = exporter.nats.exports.iter().find(|x| {
                x.account_token_position > 0
                    && (x.kind == "service") == imp.service
                    && crate::sublist::subject_is_subset_match(
                        imp.subject.as_bytes(),
                        x.subject.as_bytes(),
                    )
            });
            let Some(x) = positioned else {
                return true;
            };
            let pos = x.account_token_position as usize;
            let ok = imp.subject.split('.').nth(pos - 1) == Some(a.name.as_str());
            if !ok {
                warnings.push(format!(
                    "account {}: import of {:?} from {} skipped: token {pos} must be the importing account",
                    a.name, imp.subject, imp.account
                ));
            }
            ok
        });
    }
}

/// nats-server skips (and logs) an account JWT's imports it cannot wire, rather than
/// refusing to start: try each one on throwaway accounts and keep those that work.
fn drop_unusable_imports(o: &mut Options) {
    use crate::account::{Account, wire_import};
    let map: rustc_hash::FxHashMap<String, std::sync::Arc<Account>> = o
        .accounts
        .accounts
        .iter()
        .map(|a| {
            (
                a.name.clone(),
                std::sync::Arc::new(Account::from_config(a, false, false)),
            )
        })
        .collect();
    for a in &mut o.accounts.accounts {
        let Some(importer) = map.get(&a.name) else {
            continue;
        };
        let mut kept = Vec::with_capacity(a.imports.len());
        for imp in a.imports.drain(..) {
            match wire_import(importer, &imp, &map) {
                Ok(()) => kept.push(imp),
                Err(e) => o.warnings.push(format!(
                    "account {}: import of {:?} from {} skipped: {e}",
                    a.name, imp.subject, imp.account
                )),
            }
        }
        a.imports = kept;
        importer.clear_imports();
    }
}

/// Why a pushed account JWT was not taken (the `$SYS` answer's error, with nats-server's
/// wording).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("jwt update resulted in error - {reason}")]
pub struct PushError {
    /// The account, or `n/a` when the JWT did not decode.
    pub account: String,
    /// Why.
    pub reason: String,
}

/// A pushed account JWT, checked and staged: [`Pushed::commit`] stores it once the new
/// options are in force; dropping it uncommitted leaves the directory as it was.
pub struct Pushed {
    /// The account.
    pub account: String,
    /// The options with the pushed JWT.
    pub options: Options,
    /// The staged file and where it goes (`None`: older than the stored JWT, nothing to
    /// store).
    staged: Option<(PathBuf, PathBuf)>,
}

impl Pushed {
    /// Move the staged JWT into place: rename, then fsync of the directory, so a crash
    /// keeps the old or the new JWT.
    pub fn commit(mut self) -> Result<(), PushError> {
        let Some((tmp, path)) = self.staged.take() else {
            return Ok(());
        };
        let fail = |e: std::io::Error| PushError {
            account: self.account.clone(),
            reason: e.to_string(),
        };
        std::fs::rename(&tmp, &path).map_err(fail)?;
        let dir = path.parent().unwrap_or(std::path::Path::new("."));
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(fail)
    }
}

impl Drop for Pushed {
    fn drop(&mut self) {
        if let Some((tmp, _)) = self.staged.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// Why an account deletion (`$SYS.REQ.CLAIMS.DELETE`) was refused, worded as
/// nats-server's answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("delete accounts request by {by} failed - {reason}")]
pub struct DeleteError {
    /// The request's subject (empty when it did not decode).
    pub by: String,
    /// Why it was refused.
    pub reason: String,
}

/// The result of an account deletion: the accounts deleted, the file operations that
/// failed, and the options without the deleted accounts, to apply.
pub struct Deleted {
    /// Accounts deleted (a key with no JWT file counts, as in nats-server).
    pub keys: Vec<String>,
    /// The file operations that failed (their accounts stay).
    pub failures: Vec<String>,
    /// The options rebuilt without the deleted accounts.
    pub options: Options,
}

/// Delete accounts from a `full` resolver with `allow_delete`, as `nsc push --prune`
/// and `nsc delete account` ask (`$SYS.REQ.CLAIMS.DELETE`): a generic claim signed by
/// an operator key (or signing key) about itself, whose `nats.accounts` lists the
/// account keys. Each JWT file is renamed to `<key>.jwt.deleted` (or removed with
/// `hard_delete`), then the directory is fsynced and the accounts are rebuilt without
/// them (their preloads go too). The system account cannot be deleted.
pub fn delete_accounts(o: &Options, token: &[u8]) -> Result<Deleted, DeleteError> {
    let failed = |by: &str, reason: &str| DeleteError {
        by: by.to_string(),
        reason: reason.to_string(),
    };
    let text = std::str::from_utf8(token).map_err(|_| failed("", "the JWT is not UTF-8"))?;
    let claims = jwt::decode_generic(text).map_err(|e| failed("", &e.to_string()))?;
    let by = claims.sub.clone();
    let (dir, deletes) = match o
        .operator_options
        .as_ref()
        .and_then(|op| op.resolver.clone())
    {
        Some(Resolver::Dir { dir, deletes }) => (dir, deletes),
        _ => return Err(failed(&by, "delete must be enabled in server config")),
    };
    if deletes == Deletes::Refused {
        return Err(failed(&by, "delete must be enabled in server config"));
    }
    if claims.sub != claims.iss {
        return Err(failed(&by, "not self signed"));
    }
    let trusted = o
        .operator
        .as_ref()
        .is_some_and(|a| a.trusted_keys.contains(&claims.iss));
    if !trusted {
        return Err(failed(&by, "not trusted"));
    }
    let Some(list) = claims.data.get("accounts").and_then(|v| v.as_array()) else {
        return Err(failed(&by, "malformed request"));
    };
    let system = o.accounts.system_account.clone().unwrap_or_default();
    let mut asked = Vec::new();
    for entry in list {
        match entry.as_str() {
            Some(k) if jwt::is_public_key(k, nkeys::KeyPairType::Account) => {
                if k == system {
                    return Err(failed(&by, "not allowed to delete system account"));
                }
                asked.push(k.to_string());
            }
            _ => return Err(failed(&by, "malformed request")),
        }
    }
    let (mut keys, mut failures) = (Vec::new(), Vec::new());
    for key in asked {
        let path = dir.join(format!("{key}.jwt"));
        let done = match deletes {
            Deletes::Remove => std::fs::remove_file(&path),
            _ => std::fs::rename(&path, dir.join(format!("{key}.jwt.deleted"))),
        };
        match done {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => failures.push(e.to_string()),
            _ => keys.push(key),
        }
    }
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| failed(&by, &e.to_string()))?;
    let mut options = o.clone();
    if let Some(op) = options.operator_options.as_mut() {
        op.preload.retain(|(k, _)| !keys.contains(k));
    }
    refresh_accounts(&mut options, None);
    Ok(Deleted {
        keys,
        failures,
        options,
    })
}

/// An account JWT pushed while running (`$SYS.REQ.CLAIMS.UPDATE`, as `nsc push` sends
/// it; `for_account` when the subject named the account): checked, written to a
/// temporary file (fsynced) in the resolver's directory, and the options rebuilt with
/// it. The caller applies the options, then [`Pushed::commit`]s the file, so a push that
/// cannot be applied leaves nothing behind. A JWT older than the stored one is ignored,
/// as by nats-server.
pub fn push_account(
    o: &Options,
    for_account: Option<&str>,
    token: &[u8],
) -> Result<Pushed, PushError> {
    let fail = |account: &str, reason: String| PushError {
        account: account.to_string(),
        reason,
    };
    let Some(Resolver::Dir { dir, .. }) = o
        .operator_options
        .as_ref()
        .and_then(|op| op.resolver.clone())
    else {
        return Err(fail("n/a", "store is read-only".into()));
    };
    let trusted = o
        .operator
        .as_ref()
        .map(|a| a.trusted_keys.clone())
        .unwrap_or_default();
    let text =
        std::str::from_utf8(token).map_err(|_| fail("n/a", "the JWT is not UTF-8".into()))?;
    let text = text.trim();
    let claims = jwt::decode::<AccountNats>(text).map_err(|e| fail("n/a", e.to_string()))?;
    let account = claims.sub.clone();
    // The key names the file: only a valid account key may (no path of any kind).
    if !jwt::is_public_key(&account, nkeys::KeyPairType::Account) {
        return Err(fail("n/a", "invalid public key".into()));
    }
    if let Some(key) = for_account
        && key != account
    {
        return Err(fail(key, "subject does not match jwt content".into()));
    }
    if !trusted.contains(&claims.iss) {
        return Err(fail(
            &account,
            "the JWT is not signed by a trusted operator key".into(),
        ));
    }
    let path = dir.join(format!("{account}.jwt"));
    let existing = read_jwt_file(&path)
        .ok()
        .and_then(|t| jwt::decode::<AccountNats>(jwt::parse_decorated(&t)).ok());
    let mut pushed = Pushed {
        account: account.clone(),
        options: o.clone(),
        staged: None,
    };
    if existing.is_none_or(|e| e.iat <= claims.iat) {
        use std::io::Write;
        let io = |e: std::io::Error| fail(&account, e.to_string());
        std::fs::create_dir_all(&dir).map_err(io)?;
        let tmp = dir.join(format!(".{account}.jwt.tmp"));
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        pushed.staged = Some((tmp, path));
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        refresh_accounts(&mut pushed.options, Some((account, text.to_string())));
    }
    Ok(pushed)
}
