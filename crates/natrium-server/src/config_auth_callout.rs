//! Parsing `authorization { auth_callout { … } }` (alias `auth_hook`) into a
//! [`CalloutConfig`].
//!
//! Keys, aliases and errors follow nats-server's `parseAuthCallout`: `issuer` must be an
//! account public key, `xkey` a curve public key, and `auth_users` may not be empty (the
//! service itself must be able to log in without asking itself). The checks that need the
//! whole config (the account exists, the `auth_users` are configured users,
//! `allowed_accounts` are configured accounts) run in [`finish`].

use crate::auth::callout::CalloutConfig;
use crate::conf::{self, ConfError, Spanned, Value};
use crate::options::Options;

/// Parse the block.
pub fn parse(v: &Spanned) -> Result<CalloutConfig, ConfError> {
    let Value::Map(m) = &v.value else {
        return Err(v.pos.error(format!(
            "Expected authorization callout to be a map/struct, got {}",
            v.value.type_name()
        )));
    };
    let mut c = CalloutConfig::default();
    let list = |v: &Spanned, what: &str| -> Result<Vec<String>, ConfError> {
        let Value::Array(items) = &v.value else {
            return Err(v.pos.error(format!("Expected {what} field to be an array")));
        };
        items
            .iter()
            .map(|i| conf::as_string(i).map(str::to_string))
            .collect()
    };
    for e in m.iter() {
        let v = &e.value;
        match e.key.to_ascii_lowercase().as_str() {
            "issuer" => {
                let issuer = conf::as_string(v)?;
                if !crate::jwt::is_public_key(issuer, nkeys::KeyPairType::Account) {
                    return Err(v.pos.error(format!(
                        "Expected callout user to be a valid public account nkey, got {issuer:?}"
                    )));
                }
                c.issuer = issuer.to_string();
            }
            "account" | "acc" => c.account = conf::as_string(v)?.to_string(),
            "auth_users" | "users" => c.auth_users = list(v, "auth_users")?,
            "xkey" | "key" => {
                let key = conf::as_string(v)?;
                if nkeys::XKey::from_public_key(key).is_err() {
                    return Err(v.pos.error(format!(
                        "Expected callout xkey to be a valid public xkey, got {key:?}"
                    )));
                }
                c.xkey = Some(key.to_string());
            }
            "allowed_accounts" => c.allowed_accounts = list(v, "allowed accounts")?,
            _ if e.used_as_variable => {}
            _ => {
                return Err(e.error(format!(
                    "Unknown field {:?} parsing authorization callout",
                    e.key
                )));
            }
        }
    }
    if c.account.is_empty() {
        c.account = crate::account::GLOBAL_ACCOUNT.to_string();
    }
    if c.issuer.is_empty() {
        return Err(v
            .pos
            .error("Authorization callouts require an issuer to be specified"));
    }
    if c.auth_users.is_empty() {
        return Err(v
            .pos
            .error("Authorization callouts require authorized users to be specified"));
    }
    Ok(c)
}

/// The checks that need the whole config. nats-server refuses `allowed_accounts` that
/// are not configured accounts, and only logs an unknown callout account or unknown
/// `auth_users`; natrium refuses those too, since no login could then ever succeed
/// (every user would wait for a service that cannot log in), and says why at start.
/// Operator mode has its callouts in account JWTs (`authorization`, read by
/// `config_operator`); the block is refused there, with nats-server's error.
pub fn finish(o: &Options) -> Result<(), String> {
    let Some(c) = &o.auth_callout else {
        return Ok(());
    };
    if o.operator_options.is_some() {
        return Err(
            "operators do not allow authorization callouts to be configured directly".to_string(),
        );
    }
    let known = |name: &str| {
        name == crate::account::GLOBAL_ACCOUNT || o.accounts.accounts.iter().any(|a| a.name == name)
    };
    for acc in &c.allowed_accounts {
        if !known(acc) {
            return Err(format!(
                "auth_callout allowed account {acc:?} not found in configured accounts"
            ));
        }
    }
    if !known(&c.account) {
        return Err(format!(
            "Authorization callout account {:?} not valid",
            c.account
        ));
    }
    for u in &c.auth_users {
        let configured = o.accounts.users.iter().any(|cu| &cu.name == u)
            || o.auth.user.as_deref() == Some(u.as_str());
        if !configured {
            return Err(format!("Authorization callout user {u:?} not valid"));
        }
    }
    Ok(())
}
