//! NATS JWTs: the signed claims behind operator mode.
//!
//! Why: in operator mode the server is configured with no users at all. Trust flows from
//! an operator key the server is told to trust, to account JWTs that key signed, to user
//! JWTs an account (or one of its signing keys) signed. A client proves it holds the
//! user's private key by signing the server's nonce. So the server only has to verify
//! signatures and read claims, which is what this module does; it never holds a secret.
//!
//! A token is `header.payload.signature`, each part base64url without padding. The
//! header names the algorithm (`ed25519-nkey`); the signature is the issuer's ed25519
//! signature over the text `header.payload`; the issuer (`iss`) is an nkey, so its public
//! key is the verification key.
//!
//! Version 1 tokens (nsc before 2.0, 2019-2020; still in the wild, and in nats.py's own
//! test fixtures) are read as nats-server reads them, through the jwt library's
//! migration: the signature covers the payload part only, `type`, `tags` and
//! `issuer_account` sit beside `nats` instead of in it, an activation's import kind is
//! `nats.type`, and a user's `subs`/`data`/`payload` default to -1 (unlimited). Once
//! moved into the version 2 shape, the claims are the same as any other.
//!
//! [`encode`] writes tokens too: for tests and tools, and for the one token the server
//! signs itself, an auth callout request (with its own server key).

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;

/// Largest token accepted (nats-server's jwt library has the same bound): a token comes
/// from the network (CONNECT) or a file, so its size is checked before any decoding.
pub const MAX_TOKEN_SIZE: usize = 1024 * 1024;

/// What can be wrong with a token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    /// Over [`MAX_TOKEN_SIZE`].
    #[error("token size {size} exceeds maximum of {max} bytes")]
    TooLarge {
        /// The token's size.
        size: usize,
        /// The bound.
        max: usize,
    },
    /// Not three dot-separated parts.
    #[error("expected 3 chunks")]
    Chunks,
    /// A part is not base64url.
    #[error("the {part} is not valid base64url")]
    Base64 {
        /// `header`, `claims` or `signature`.
        part: &'static str,
    },
    /// The header is not a NATS JWT header.
    #[error("invalid header: {reason}")]
    Header {
        /// What is wrong with it.
        reason: String,
    },
    /// The claims are not the JSON expected.
    #[error("invalid claims: {reason}")]
    Claims {
        /// The JSON error.
        reason: String,
    },
    /// A claims version this library does not read (0, or above 2).
    #[error("library supports version 2 or less - received {0}")]
    Version(i64),
    /// The signature does not verify with the issuer's key.
    #[error("claim failed signature verification")]
    Signature,
    /// Another kind of claim than the one expected.
    #[error("expected a {expected} claim, found {found:?}")]
    Type {
        /// The kind wanted.
        expected: &'static str,
        /// The kind in the token.
        found: String,
    },
    /// The issuer is not the kind of key that may sign this claim.
    #[error("issuer {issuer:?} is not a valid {expected} key")]
    Issuer {
        /// The `iss` field.
        issuer: String,
        /// The kind of key required.
        expected: &'static str,
    },
    /// `exp` has passed.
    #[error("claim is expired")]
    Expired,
    /// `nbf` has not come yet.
    #[error("claim is not yet valid")]
    NotYetValid,
}

/// The fields every claim has, with the kind-specific `nats` part.
#[derive(Debug, Clone, Deserialize)]
pub struct Claims<N> {
    /// Token id (a hash of the claims; not checked, as nats-server does not).
    #[serde(default)]
    pub jti: String,
    /// Issued at, unix seconds (user revocations compare against it).
    #[serde(default)]
    pub iat: i64,
    /// The signer's public key.
    #[serde(default)]
    pub iss: String,
    /// Whom the claim is about: a public key.
    #[serde(default)]
    pub sub: String,
    /// A display name.
    #[serde(default)]
    pub name: String,
    /// Expiry, unix seconds (0: none).
    #[serde(default)]
    pub exp: i64,
    /// The audience: the server for an auth callout's answer, the account to place the
    /// user in for a user JWT an auth callout service issued.
    #[serde(default)]
    pub aud: String,
    /// Not valid before, unix seconds (0: no bound).
    #[serde(default)]
    pub nbf: i64,
    /// The kind-specific part.
    pub nats: N,
}

impl<N> Claims<N> {
    /// nats-server's time check: expired once `now` is past `exp`; not yet valid while
    /// `nbf` is ahead of `now`.
    pub fn check_times(&self, now: i64) -> Result<(), JwtError> {
        if self.exp > 0 && now > self.exp {
            return Err(JwtError::Expired);
        }
        if self.nbf > 0 && self.nbf > now {
            return Err(JwtError::NotYetValid);
        }
        Ok(())
    }
}

/// A kind of claim: its `type` string and who may issue it.
pub trait ClaimKind: DeserializeOwned {
    /// The `nats.type` value.
    const TYPE: &'static str;
    /// The nkey kind of a valid issuer.
    const ISSUER: nkeys::KeyPairType;

    /// What the jwt library's `Validate` finds wrong with the claim's own fields beyond
    /// what deserializing checks (nats-server logs these as validation issues and uses
    /// the claim anyway). Default: nothing.
    fn validation_issue(&self) -> Option<String> {
        None
    }
}

/// Tags, a list of strings (nats-server lowercases them).
pub type Tags = Vec<String>;

/// `nats` of an operator claim.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct OperatorNats {
    /// Further keys that may sign account JWTs.
    pub signing_keys: Vec<String>,
    /// The operator's system account.
    pub system_account: String,
    /// When set, only the signing keys (not the operator key itself) sign accounts.
    pub strict_signing_key_usage: bool,
    /// Lowest server version the operator requires.
    pub assert_server_version: String,
}

impl ClaimKind for OperatorNats {
    const TYPE: &'static str = "operator";
    const ISSUER: nkeys::KeyPairType = nkeys::KeyPairType::Operator;
}

/// An allow and a deny list.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct PermissionJwt {
    /// Allowed subjects.
    #[serde(deserialize_with = "null_as_default")]
    pub allow: Vec<String>,
    /// Denied subjects.
    #[serde(deserialize_with = "null_as_default")]
    pub deny: Vec<String>,
}

/// Response permission (`resp`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct ResponseJwt {
    /// Responses per request.
    pub max: i64,
    /// How long the right lasts, nanoseconds (0: forever).
    pub ttl: i64,
}

/// A time of day range in which a user may connect.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct TimeRange {
    /// `HH:MM:SS`.
    pub start: String,
    /// `HH:MM:SS`.
    pub end: String,
}

/// A user's permissions and limits (also a scoped signing key's template).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct UserPermissionLimits {
    /// Publish permissions.
    #[serde(rename = "pub")]
    pub publish: PermissionJwt,
    /// Subscribe permissions.
    #[serde(rename = "sub")]
    pub subscribe: PermissionJwt,
    /// Response permissions.
    pub resp: Option<ResponseJwt>,
    /// Source networks the user may connect from (CIDRs).
    #[serde(deserialize_with = "cidr_list")]
    pub src: Vec<String>,
    /// Times of day the user may connect.
    #[serde(deserialize_with = "null_as_default")]
    pub times: Vec<TimeRange>,
    /// Time zone of `times`.
    pub times_location: String,
    /// Subscriptions (-1: unlimited).
    pub subs: i64,
    /// Data (-1: unlimited; not enforced, as in nats-server).
    pub data: i64,
    /// Largest message (-1: unlimited).
    pub payload: i64,
    /// No nonce signature needed.
    pub bearer_token: bool,
    /// Allowed connection types; empty means all.
    #[serde(deserialize_with = "null_as_default")]
    pub allowed_connection_types: Vec<String>,
}

/// `nats` of a user claim.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct UserNats {
    /// Permissions and limits.
    #[serde(flatten)]
    pub limits: UserPermissionLimits,
    /// The account, when a signing key (not the account key) issued the user.
    pub issuer_account: String,
    /// Tags (for templates).
    #[serde(deserialize_with = "null_as_default")]
    pub tags: Tags,
    /// The user must come through a trusted proxy (natrium has none: refused).
    pub proxy_required: bool,
}

impl ClaimKind for UserNats {
    const TYPE: &'static str = "user";
    const ISSUER: nkeys::KeyPairType = nkeys::KeyPairType::Account;
}

/// An account's limits (`nats.limits`). A JWT that omits a limit sets it to 0 (Go's zero
/// value); nsc writes -1 for "unlimited" explicitly.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct AccountLimitsJwt {
    /// Subscriptions per connection.
    pub subs: i64,
    /// Data (not enforced).
    pub data: i64,
    /// Largest message.
    pub payload: i64,
    /// Imports.
    pub imports: i64,
    /// Exports.
    pub exports: i64,
    /// Client connections.
    pub conn: i64,
    /// Leaf node connections.
    pub leaf: i64,
    /// Bearer tokens refused.
    pub disallow_bearer: bool,
    /// JetStream memory storage (0 with `disk_storage` 0: JetStream off).
    pub mem_storage: i64,
    /// JetStream file storage.
    pub disk_storage: i64,
    /// Streams.
    pub streams: i64,
    /// Consumers.
    pub consumer: i64,
    /// Cap on `max_ack_pending`.
    pub max_ack_pending: i64,
    /// Cap on a memory stream's `max_bytes`.
    pub mem_max_stream_bytes: i64,
    /// Cap on a file stream's `max_bytes`.
    pub disk_max_stream_bytes: i64,
    /// Streams must set `max_bytes`.
    pub max_bytes_required: bool,
    /// Per replica-count limits (`R1`, `R3`, …).
    pub tiered_limits: BTreeMap<String, AccountLimitsJwt>,
}

/// One export of an account JWT.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ExportJwt {
    /// A label.
    pub name: String,
    /// Exported subject.
    pub subject: String,
    /// `stream` or `service`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Importers need an activation token.
    pub token_req: bool,
    /// `Singleton`, `Stream` or `Chunked`.
    pub response_type: String,
    /// Nanoseconds a response route stays open.
    pub response_threshold: i64,
    /// Which subject token must equal the importer's account (0: none).
    pub account_token_position: u32,
    /// Revoked activations: importing account (or `*`) to the time before which its
    /// activation tokens are void.
    #[serde(deserialize_with = "null_as_default")]
    pub revocations: BTreeMap<String, i64>,
}

/// One import of an account JWT.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ImportJwt {
    /// A label.
    pub name: String,
    /// Subject in the exporting account.
    pub subject: String,
    /// The exporting account.
    pub account: String,
    /// Activation token for a private export.
    pub token: String,
    /// Deprecated: a stream import's prefix, or a service import's remote subject.
    pub to: String,
    /// Local subject.
    pub local_subject: String,
    /// `stream` or `service`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Share the requestor's identity.
    pub share: bool,
}

/// A signing key of an account: a plain key, or one scoped to a user template.
#[derive(Debug, Clone)]
pub struct SigningKeyJwt {
    /// The key.
    pub key: String,
    /// The scope's template, for a scoped key.
    pub template: Option<UserPermissionLimits>,
}

impl<'de> Deserialize<'de> for SigningKeyJwt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Key(String),
            Scoped {
                key: String,
                #[serde(default)]
                template: Box<UserPermissionLimits>,
            },
        }
        Ok(match Raw::deserialize(d)? {
            Raw::Key(key) => SigningKeyJwt {
                key,
                template: None,
            },
            Raw::Scoped { key, template } => SigningKeyJwt {
                key,
                template: Some(*template),
            },
        })
    }
}

/// One destination of a JWT mapping.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MappingJwt {
    /// Destination subject.
    pub subject: String,
    /// Percentage (0: 100, as nats-server's `GetWeight`).
    pub weight: u8,
    /// Cluster scope.
    pub cluster: String,
}

/// `nats` of an account claim.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AccountNats {
    /// Limits.
    pub limits: AccountLimitsJwt,
    /// Exports.
    #[serde(deserialize_with = "null_as_default")]
    pub exports: Vec<ExportJwt>,
    /// Imports.
    #[serde(deserialize_with = "null_as_default")]
    pub imports: Vec<ImportJwt>,
    /// Signing keys for users.
    #[serde(deserialize_with = "null_as_default")]
    pub signing_keys: Vec<SigningKeyJwt>,
    /// Revoked users: public key (or `*`) to the time before which their JWTs are void.
    #[serde(deserialize_with = "null_as_default")]
    pub revocations: BTreeMap<String, i64>,
    /// Permissions of users whose JWT has none.
    pub default_permissions: UserPermissionLimits,
    /// Subject mappings.
    #[serde(deserialize_with = "null_as_default")]
    pub mappings: BTreeMap<String, Vec<MappingJwt>>,
    /// Tags.
    #[serde(deserialize_with = "null_as_default")]
    pub tags: Tags,
    /// Logins delegated to an auth callout service running in this account.
    pub authorization: ExternalAuthJwt,
}

/// An account JWT's `authorization`: its auth callout, on when `auth_users` is not empty.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct ExternalAuthJwt {
    /// The service's own users (public keys): they log in with their JWTs.
    #[serde(deserialize_with = "null_as_default")]
    pub auth_users: Vec<String>,
    /// Accounts (public keys, or `*` for any) the service may place users in, besides
    /// its own.
    #[serde(deserialize_with = "null_as_default")]
    pub allowed_accounts: Vec<String>,
    /// The service's curve key: requests are sealed for it.
    pub xkey: String,
}

impl ClaimKind for AccountNats {
    const TYPE: &'static str = "account";
    const ISSUER: nkeys::KeyPairType = nkeys::KeyPairType::Operator;

    /// The jwt library's `ExternalAuthorization.Validate`.
    fn validation_issue(&self) -> Option<String> {
        let a = &self.authorization;
        if !a.allowed_accounts.is_empty() && a.auth_users.is_empty() {
            return Some(
                "External authorization cannot have accounts without users specified".into(),
            );
        }
        if let Some(u) = a
            .auth_users
            .iter()
            .find(|u| !is_public_key(u, nkeys::KeyPairType::User))
        {
            return Some(format!("AuthUser {u:?} is not a valid user public key"));
        }
        for acc in &a.allowed_accounts {
            if acc == "*" {
                if a.allowed_accounts.len() > 1 {
                    return Some("AllowedAccounts can only be a list of accounts or \"*\"".into());
                }
            } else if !is_public_key(acc, nkeys::KeyPairType::Account) {
                return Some(format!("Account {acc:?} is not a valid account public key"));
            }
        }
        if !a.xkey.is_empty() && nkeys::XKey::from_public_key(&a.xkey).is_err() {
            return Some(format!("XKey {:?} is not a valid public xkey", a.xkey));
        }
        None
    }
}

/// `nats` of an activation claim (permission to import a private export).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ActivationNats {
    /// The subject the importer may import.
    pub subject: String,
    /// `stream` or `service`.
    pub kind: String,
    /// The exporting account, when a signing key issued the activation.
    pub issuer_account: String,
}

impl ClaimKind for ActivationNats {
    const TYPE: &'static str = "activation";
    const ISSUER: nkeys::KeyPairType = nkeys::KeyPairType::Account;
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `src`: a list of CIDRs, or one string of comma-separated CIDRs (older tools).
fn cidr_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Option::<Raw>::deserialize(d)? {
        None => Vec::new(),
        Some(Raw::List(v)) => v,
        Some(Raw::Text(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    })
}

fn b64(part: &'static str, s: &str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD
        .decode(s)
        .or_else(|_| URL_SAFE.decode(s))
        .map_err(|_| JwtError::Base64 { part })
}

/// Whether `key` is a valid public nkey of `kind`.
pub fn is_public_key(key: &str, kind: nkeys::KeyPairType) -> bool {
    nkeys::KeyPair::from_public_key(key).is_ok_and(|k| k.key_pair_type() == kind)
}

/// The trimmed token and its three dot-separated parts (header, claims, signature),
/// after the size bound.
fn split(token: &str) -> Result<(&str, [&str; 3]), JwtError> {
    let token = token.trim();
    if token.len() > MAX_TOKEN_SIZE {
        return Err(JwtError::TooLarge {
            size: token.len(),
            max: MAX_TOKEN_SIZE,
        });
    }
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) => Ok((token, [h, p, s])),
        _ => Err(JwtError::Chunks),
    }
}

/// The algorithm a token's header names, once the header is checked to be a NATS JWT
/// header: type `jwt`, algorithm `ed25519-nkey` (or version 1's `ed25519`).
fn header_alg(h: &str) -> Result<String, JwtError> {
    #[derive(Deserialize)]
    struct Header {
        #[serde(default)]
        typ: String,
        #[serde(default)]
        alg: String,
    }
    let header: Header =
        serde_json::from_slice(&b64("header", h)?).map_err(|e| JwtError::Header {
            reason: e.to_string(),
        })?;
    if !header.typ.eq_ignore_ascii_case("jwt") {
        return Err(JwtError::Header {
            reason: format!("not supported type {:?}", header.typ),
        });
    }
    if header.alg != "ed25519-nkey" && header.alg != "ed25519" {
        return Err(JwtError::Header {
            reason: format!("unexpected {:?} algorithm", header.alg),
        });
    }
    Ok(header.alg)
}

/// Decode a token of kind `N` and verify its signature by its own issuer. Whether that
/// issuer is *trusted* is the caller's question; so is the time check
/// ([`Claims::check_times`]).
pub fn decode<N: ClaimKind>(token: &str) -> Result<Claims<N>, JwtError> {
    let (token, [h, p, s]) = split(token)?;
    header_alg(h)?;
    let payload = b64("claims", p)?;
    #[derive(Deserialize)]
    struct Kind {
        #[serde(default, rename = "type")]
        kind: String,
        #[serde(default)]
        version: i64,
    }
    #[derive(Deserialize)]
    struct Ident {
        #[serde(default, rename = "type")]
        v1_kind: String,
        #[serde(default)]
        nats: Option<Kind>,
    }
    let ident: Ident = serde_json::from_slice(&payload).map_err(|e| JwtError::Claims {
        reason: e.to_string(),
    })?;
    let nats = ident.nats.unwrap_or(Kind {
        kind: String::new(),
        version: 0,
    });
    // The jwt library's rule: a top-level `type` makes it version 1, else `nats.version`.
    let (version, kind) = if ident.v1_kind.is_empty() {
        (nats.version, nats.kind)
    } else {
        (1, ident.v1_kind)
    };
    if version > 2 {
        return Err(JwtError::Claims {
            reason: "JWT was generated by a newer version ".into(),
        });
    }
    if version < 1 {
        return Err(JwtError::Version(version));
    }
    if kind != N::TYPE {
        return Err(JwtError::Type {
            expected: N::TYPE,
            found: kind,
        });
    }
    let bad = |e: serde_json::Error| JwtError::Claims {
        reason: e.to_string(),
    };
    let (claims, signed): (Claims<N>, &str) = if version == 1 {
        let v1: serde_json::Value = serde_json::from_slice(&payload).map_err(bad)?;
        // Version 1 signed the payload part alone.
        (
            serde_json::from_value(migrate_v1(v1, N::TYPE)).map_err(bad)?,
            p,
        )
    } else {
        // The signed text is the token up to the second dot.
        (
            serde_json::from_slice(&payload).map_err(bad)?,
            &token[..h.len() + 1 + p.len()],
        )
    };

    let sig = b64("signature", s)?;
    let signer = nkeys::KeyPair::from_public_key(&claims.iss).map_err(|_| JwtError::Issuer {
        issuer: claims.iss.clone(),
        expected: key_kind_name(N::ISSUER),
    })?;
    signer
        .verify(signed.as_bytes(), &sig)
        .map_err(|_| JwtError::Signature)?;
    if signer.key_pair_type() != N::ISSUER {
        return Err(JwtError::Issuer {
            issuer: claims.iss.clone(),
            expected: key_kind_name(N::ISSUER),
        });
    }
    Ok(claims)
}

/// Version 1 claims of kind `kind` in the version 2 shape, as the jwt library's
/// `migrateV1` builds them: `type`, `tags` and `issuer_account` move into `nats`; an
/// activation's import kind (`nats.type` in version 1) becomes `nats.kind`; a user's
/// `subs`, `data` and `payload` are -1 when not given (its version 1 defaults).
fn migrate_v1(mut v1: serde_json::Value, kind: &str) -> serde_json::Value {
    let Some(top) = v1.as_object_mut() else {
        return v1;
    };
    let moved: Vec<(&str, serde_json::Value)> = ["tags", "issuer_account"]
        .into_iter()
        .filter_map(|k| top.remove(k).map(|v| (k, v)))
        .collect();
    top.remove("type");
    let nats = top
        .entry("nats")
        .or_insert_with(|| serde_json::Value::Object(Default::default()));
    if !nats.is_object() {
        *nats = serde_json::Value::Object(Default::default());
    }
    if let Some(nats) = nats.as_object_mut() {
        if kind == "activation"
            && let Some(import_kind) = nats.remove("type")
        {
            nats.insert("kind".into(), import_kind);
        }
        nats.insert("type".into(), kind.into());
        nats.insert("version".into(), 1.into());
        for (k, v) in moved {
            nats.insert(k.into(), v);
        }
        if kind == "user" {
            for k in ["subs", "data", "payload"] {
                nats.entry(k).or_insert_with(|| (-1).into());
            }
        }
    }
    v1
}

/// A generic claim (the jwt library's `GenericClaims`): its issuer, subject and `nats`
/// data, of any type and either version. nsc sends account deletions so.
#[derive(Debug, Clone)]
pub struct GenericClaims {
    /// The signer.
    pub iss: String,
    /// The subject.
    pub sub: String,
    /// The `nats` object (empty when absent).
    pub data: serde_json::Map<String, serde_json::Value>,
}

/// Decode a generic claim and verify its signature by its own issuer (any kind of
/// key), as `jwt.DecodeGeneric` does. Whether the issuer is trusted is the caller's
/// question.
pub fn decode_generic(token: &str) -> Result<GenericClaims, JwtError> {
    let (token, [h, p, sig]) = split(token)?;
    let alg = header_alg(h)?;
    let payload: serde_json::Value =
        serde_json::from_slice(&b64("claims", p)?).map_err(|e| JwtError::Claims {
            reason: e.to_string(),
        })?;
    let text = |k: &str| payload[k].as_str().unwrap_or_default().to_string();
    let (iss, sub) = (text("iss"), text("sub"));
    let signer = nkeys::KeyPair::from_public_key(&iss).map_err(|_| JwtError::Issuer {
        issuer: iss.clone(),
        expected: "nkey",
    })?;
    // Version 1 tokens signed the claims part only; version 2 the header too.
    let signed = if alg == "ed25519" {
        p
    } else {
        &token[..h.len() + 1 + p.len()]
    };
    signer
        .verify(signed.as_bytes(), &b64("signature", sig)?)
        .map_err(|_| JwtError::Signature)?;
    let data = payload["nats"].as_object().cloned().unwrap_or_default();
    Ok(GenericClaims { iss, sub, data })
}

fn key_kind_name(kind: nkeys::KeyPairType) -> &'static str {
    match kind {
        nkeys::KeyPairType::Operator => "operator",
        nkeys::KeyPairType::Account => "account",
        nkeys::KeyPairType::User => "user",
        _ => "nkey",
    }
}

/// The claims of a token as JSON, unverified (for monitoring a token already verified).
pub fn claims_json(token: &str) -> Option<serde_json::Value> {
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&b64("claims", payload).ok()?).ok()
}

/// The JWT inside a decorated file (`-----BEGIN NATS ... JWT-----` … `------END …`, as
/// nsc writes `.jwt` and `.creds` files), or the trimmed text when it is a bare token.
pub fn parse_decorated(text: &str) -> &str {
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let l = line.trim();
        if l.starts_with("---") && l.contains("JWT") && !l.contains("END") {
            for inner in lines.by_ref() {
                let inner = inner.trim();
                if !inner.is_empty() {
                    return inner;
                }
            }
            break;
        }
    }
    text.trim()
}

/// Sign `claims` (a JSON object with `iss`, `sub`, `nats`, …) with `signer` into a token.
/// `iss` and `iat` are set from the signer and the clock when missing, and `jti` to a
/// hash of the claims, as nsc does.
pub fn encode(mut claims: serde_json::Value, signer: &nkeys::KeyPair) -> String {
    use sha2::Digest;
    if let Some(obj) = claims.as_object_mut() {
        obj.entry("iss")
            .or_insert_with(|| serde_json::Value::String(signer.public_key()));
        obj.entry("iat")
            .or_insert_with(|| serde_json::Value::from(unix_now()));
        obj.remove("jti");
        let digest = sha2::Sha256::digest(claims.to_string().as_bytes());
        let jti = data_id(&digest);
        if let Some(obj) = claims.as_object_mut() {
            obj.insert("jti".to_string(), serde_json::Value::String(jti));
        }
    }
    let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string().as_bytes());
    let signed = format!("{header}.{payload}");
    // An nkey pair made in memory always has its seed, so signing cannot fail here.
    let sig = signer.sign(signed.as_bytes()).unwrap_or_default();
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// An upper-case base32 id from a digest (the shape of nsc's `jti`).
fn data_id(digest: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for &b in digest {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    out
}

/// Seconds since the epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user_claims(account: &nkeys::KeyPair, user: &nkeys::KeyPair) -> String {
        encode(
            json!({"sub": user.public_key(), "name": "u",
                   "nats": {"pub": {"allow": ["a.>"]}, "subs": -1, "data": -1, "payload": -1,
                            "type": "user", "version": 2}}),
            account,
        )
    }

    #[test]
    fn generic_claims() {
        let op = nkeys::KeyPair::new_operator();
        let t = encode(
            json!({"sub": op.public_key(), "nats": {"accounts": ["A1"]}}),
            &op,
        );
        let g = decode_generic(&t).expect("decodes");
        assert_eq!(
            (g.iss.as_str(), g.sub.as_str()),
            (op.public_key().as_str(), op.public_key().as_str())
        );
        assert_eq!(g.data["accounts"], json!(["A1"]));
        // A tampered payload does not verify.
        let mut parts: Vec<String> = t.split('.').map(str::to_string).collect();
        let other = encode(
            json!({"sub": op.public_key(), "nats": {"accounts": ["A2"]}}),
            &op,
        );
        parts[1] = other.split('.').nth(1).expect("payload").to_string();
        assert_eq!(
            decode_generic(&parts.join(".")).err(),
            Some(JwtError::Signature)
        );
    }

    #[test]
    fn round_trip_and_signature() {
        let acc = nkeys::KeyPair::new_account();
        let user = nkeys::KeyPair::new_user();
        let token = user_claims(&acc, &user);
        let c = decode::<UserNats>(&token).expect("decodes");
        assert_eq!(c.iss, acc.public_key());
        assert_eq!(c.sub, user.public_key());
        assert_eq!(c.nats.limits.publish.allow, vec!["a.>".to_string()]);
        assert_eq!(c.nats.limits.subs, -1);
        assert!(!c.jti.is_empty());

        // Any change to the signed text breaks the signature.
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        let forged = encode(
            json!({"sub": user.public_key(), "iss": acc.public_key(),
                   "nats": {"pub": {"allow": [">"]}, "type": "user", "version": 2}}),
            &nkeys::KeyPair::new_account(),
        );
        parts[1] = forged.split('.').nth(1).unwrap_or_default().to_string();
        assert_eq!(
            decode::<UserNats>(&parts.join(".")).unwrap_err(),
            JwtError::Signature
        );
    }

    #[test]
    fn wrong_kind_issuer_and_shape() {
        let acc = nkeys::KeyPair::new_account();
        let user = nkeys::KeyPair::new_user();
        let token = user_claims(&acc, &user);
        assert!(matches!(
            decode::<AccountNats>(&token),
            Err(JwtError::Type { .. })
        ));
        // A user key signing a user claim is not a valid issuer.
        let self_signed = user_claims(&user, &user);
        assert!(matches!(
            decode::<UserNats>(&self_signed),
            Err(JwtError::Issuer { .. })
        ));
        assert_eq!(decode::<UserNats>("a.b").unwrap_err(), JwtError::Chunks);
        assert!(matches!(
            decode::<UserNats>("!!.b.c"),
            Err(JwtError::Base64 { part: "header" })
        ));
        let big = "a".repeat(MAX_TOKEN_SIZE + 1);
        assert!(matches!(
            decode::<UserNats>(&big),
            Err(JwtError::TooLarge { .. })
        ));
        let v0 = encode(
            json!({"sub": user.public_key(), "nats": {"type": "user"}}),
            &acc,
        );
        assert_eq!(decode::<UserNats>(&v0).unwrap_err(), JwtError::Version(0));
        let v3 = encode(
            json!({"sub": user.public_key(), "nats": {"type": "user", "version": 3}}),
            &acc,
        );
        assert!(matches!(
            decode::<UserNats>(&v3),
            Err(JwtError::Claims { .. })
        ));
    }

    /// A version 1 token: `jwt`/`ed25519` header, the signature over the payload only.
    fn encode_v1(claims: serde_json::Value, signer: &nkeys::KeyPair) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"jwt","alg":"ed25519"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let sig = signer.sign(payload.as_bytes()).expect("signs");
        format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    #[test]
    fn version_1_tokens_migrate_as_the_jwt_library_does() {
        let acc = nkeys::KeyPair::new_account();
        let user = nkeys::KeyPair::new_user();
        let token = encode_v1(
            json!({"iss": acc.public_key(), "sub": user.public_key(), "type": "user",
                   "issuer_account": "AX", "tags": ["t"],
                   "nats": {"pub": {"allow": ["a.>"]}, "payload": 10, "src": "10.0.0.0/8"}}),
            &acc,
        );
        let c = decode::<UserNats>(&token).expect("a version 1 user decodes");
        let l = &c.nats.limits;
        assert_eq!((l.subs, l.data, l.payload), (-1, -1, 10), "v1 defaults");
        assert_eq!(l.publish.allow, vec!["a.>".to_string()]);
        assert_eq!(l.src, vec!["10.0.0.0/8".to_string()]);
        assert_eq!(
            (c.nats.issuer_account.as_str(), c.nats.tags.clone()),
            ("AX", vec!["t".to_string()])
        );
        // The kind is checked against the top-level type.
        assert!(matches!(
            decode::<AccountNats>(&token),
            Err(JwtError::Type { .. })
        ));
        // An activation's import kind is `nats.type` in version 1.
        let act = encode_v1(
            json!({"iss": acc.public_key(), "sub": "AB", "type": "activation",
                   "nats": {"subject": "s.>", "type": "service"}}),
            &acc,
        );
        let a = decode::<ActivationNats>(&act).expect("a version 1 activation decodes");
        assert_eq!(
            (a.nats.subject.as_str(), a.nats.kind.as_str()),
            ("s.>", "service")
        );
        // Signed over header and payload, as version 2 signs: refused.
        let parts: Vec<&str> = token.split('.').collect();
        let both = format!("{}.{}", parts[0], parts[1]);
        let sig = URL_SAFE_NO_PAD.encode(acc.sign(both.as_bytes()).expect("signs"));
        assert_eq!(
            decode::<UserNats>(&format!("{both}.{sig}")).unwrap_err(),
            JwtError::Signature
        );
    }

    #[test]
    fn times() {
        let acc = nkeys::KeyPair::new_account();
        let op = nkeys::KeyPair::new_operator();
        let token = encode(
            json!({"sub": acc.public_key(), "exp": 100, "nbf": 50,
                   "nats": {"type": "account", "version": 2}}),
            &op,
        );
        let c = decode::<AccountNats>(&token).expect("decodes");
        assert_eq!(c.check_times(40), Err(JwtError::NotYetValid));
        assert_eq!(c.check_times(100), Ok(()));
        assert_eq!(c.check_times(101), Err(JwtError::Expired));
    }

    #[test]
    fn account_details_and_scoped_keys() {
        let op = nkeys::KeyPair::new_operator();
        let acc = nkeys::KeyPair::new_account();
        let sk = nkeys::KeyPair::new_account();
        let token = encode(
            json!({"sub": acc.public_key(), "nats": {
                "limits": {"conn": 3, "subs": -1, "payload": 100, "mem_storage": -1,
                           "disk_storage": 1024, "streams": 2, "consumer": -1},
                "exports": [{"subject": "svc.>", "type": "service", "response_type": "Stream"}],
                "imports": null,
                "signing_keys": ["AAA", {"kind": "user_scope", "key": sk.public_key(),
                                  "template": {"pub": {"allow": ["x"]}, "subs": 5}}],
                "revocations": {"*": 10},
                "type": "account", "version": 2}}),
            &op,
        );
        let c = decode::<AccountNats>(&token).expect("decodes");
        assert_eq!(c.nats.limits.conn, 3);
        assert_eq!(c.nats.limits.disk_storage, 1024);
        assert_eq!(c.nats.exports[0].response_type, "Stream");
        assert!(c.nats.imports.is_empty());
        assert_eq!(c.nats.signing_keys.len(), 2);
        assert!(c.nats.signing_keys[0].template.is_none());
        let t = c.nats.signing_keys[1].template.as_ref().expect("scoped");
        assert_eq!(t.publish.allow, vec!["x".to_string()]);
        assert_eq!(t.subs, 5);
        assert_eq!(c.nats.revocations.get("*"), Some(&10));
    }

    #[test]
    fn decorated_files() {
        let text = "-----BEGIN NATS USER JWT-----\neyJabc.def.ghi\n------END NATS USER JWT------\n\n************************* IMPORTANT *************************\n-----BEGIN USER NKEY SEED-----\nSUAXX\n------END USER NKEY SEED------\n";
        assert_eq!(parse_decorated(text), "eyJabc.def.ghi");
        assert_eq!(parse_decorated("  eyJa.b.c\n"), "eyJa.b.c");
    }

    #[test]
    fn src_as_text_or_list() {
        let a: UserPermissionLimits =
            serde_json::from_str(r#"{"src": "10.0.0.0/8, 127.0.0.1/32"}"#).expect("parses");
        assert_eq!(a.src, vec!["10.0.0.0/8", "127.0.0.1/32"]);
        let b: UserPermissionLimits =
            serde_json::from_str(r#"{"src": ["127.0.0.1/32"]}"#).expect("parses");
        assert_eq!(b.src, vec!["127.0.0.1/32"]);
    }
}
