use super::*;
use serde_json::json;

fn config(issuer: &nkeys::KeyPair) -> CalloutConfig {
    CalloutConfig {
        issuer: issuer.public_key(),
        account: "AUTH".into(),
        auth_users: vec!["auth".into()],
        xkey: None,
        allowed_accounts: vec![],
        operator: false,
    }
}

fn no_signing_key(_: &str) -> bool {
    false
}

/// A user JWT the service would issue for `user_nkey`, placed in `account`.
fn user_jwt(
    signer: &nkeys::KeyPair,
    user_nkey: &str,
    account: &str,
    nats: serde_json::Value,
) -> String {
    let mut n = json!({"type": "user", "version": 2});
    if let (Some(n), Some(extra)) = (n.as_object_mut(), nats.as_object()) {
        n.extend(extra.clone());
    }
    jwt::encode(
        json!({"sub": user_nkey, "aud": account, "name": "alice", "nats": n}),
        signer,
    )
}

/// The service's answer for `user_nkey` on `server`.
fn response(
    signer: &nkeys::KeyPair,
    user_nkey: &str,
    server: &str,
    nats: serde_json::Value,
) -> String {
    let mut n = json!({"type": "authorization_response", "version": 2});
    if let (Some(n), Some(extra)) = (n.as_object_mut(), nats.as_object()) {
        n.extend(extra.clone());
    }
    jwt::encode(json!({"sub": user_nkey, "aud": server, "nats": n}), signer)
}

#[test]
fn who_is_delegated() {
    let issuer = nkeys::KeyPair::new_account();
    let mut c = config(&issuer);
    // The service's own users keep the configured result.
    assert!(!c.delegates("auth", Some("AUTH")));
    assert!(!c.delegates("auth", None));
    // Everyone else goes, matched or not.
    assert!(c.delegates("bob", None));
    assert!(c.delegates("bob", Some("APP")));
    assert!(c.delegates("", Some("$G")));
    // With allowed accounts, a user matched into another account keeps its login; an
    // unmatched one (bound to $G) still goes.
    c.allowed_accounts = vec!["APP".into()];
    assert!(c.delegates("bob", Some("APP")));
    assert!(!c.delegates("bob", Some("OTHER")));
    assert!(c.delegates("bob", None));
    assert!(c.delegates("bob", Some("$G")));
}

#[test]
fn raw_user_prefers_nkey_then_user_then_jwt_then_token() {
    let mut c = ConnectOptions::parse(br#"{"user":"u","auth_token":"t"}"#).expect("parses");
    assert_eq!(raw_auth_user(&c), "u");
    c.nkey = Some("UKEY".into());
    assert_eq!(raw_auth_user(&c), "UKEY");
    // A token is never shown.
    let t = ConnectOptions::parse(br#"{"auth_token":"t"}"#).expect("parses");
    assert_eq!(raw_auth_user(&t), "[REDACTED]");
    // A user JWT: its subject.
    let account = nkeys::KeyPair::new_account();
    let user = nkeys::KeyPair::new_user();
    let mut j = t.clone();
    j.jwt = Some(user_jwt(&account, &user.public_key(), "", json!({})));
    assert_eq!(raw_auth_user(&j), user.public_key());
    let none = ConnectOptions::parse(b"{}").expect("parses");
    assert_eq!(raw_auth_user(&none), "");
}

#[test]
fn the_no_auth_user_fills_an_empty_connect() {
    let empty = ConnectOptions::parse(b"{}").expect("parses");
    let filled = with_no_auth_user(&empty, Some(("local".into(), Some("pw".into()), false)));
    assert_eq!(
        (filled.user.as_deref(), filled.pass.as_deref()),
        (Some("local"), Some("pw"))
    );
    let nkey = with_no_auth_user(&empty, Some(("UKEY".into(), None, true)));
    assert_eq!(nkey.nkey.as_deref(), Some("UKEY"));
    // Credentials of its own, or no no_auth_user: unchanged.
    let token = ConnectOptions::parse(br#"{"auth_token":"t"}"#).expect("parses");
    let kept = with_no_auth_user(&token, Some(("local".into(), None, false)));
    assert_eq!(kept.user, None);
    assert_eq!(with_no_auth_user(&empty, None).user, None);
}

#[test]
fn request_carries_the_login() {
    let c = ConnectOptions::parse(
        br#"{"user":"bob","pass":"pw","name":"app","lang":"rust","version":"1.0","protocol":1}"#,
    )
    .expect("parses");
    let server = ServerIdent {
        name: "n1",
        host: "0.0.0.0",
        id: "NSERVER",
        version: "2.15.1",
        xkey: Some("XKEY".into()),
        tags: &["region:eu".to_string()],
    };
    let client = ClientIdent {
        host: "127.0.0.1".into(),
        id: 7,
        user: "bob".into(),
        kind: "Client",
        client_type: "nats",
        nonce: String::new(),
        tls: Some(ClientTls {
            version: "1.3".into(),
            cipher: "TLS_AES_128_GCM_SHA256".into(),
            certs: vec!["PEM".into()],
            verified: true,
        }),
    };
    let v = request_claims("AISSUER", &server, &client, &c, "UNEW", 99);
    assert_eq!(v["aud"], REQUEST_AUDIENCE);
    assert_eq!(v["sub"], "AISSUER");
    assert_eq!(v["exp"], 99);
    let n = &v["nats"];
    assert_eq!(n["type"], "authorization_request");
    assert_eq!(n["version"], 2);
    assert_eq!(n["user_nkey"], "UNEW");
    assert_eq!(
        n["server_id"],
        json!({"name": "n1", "host": "0.0.0.0", "id": "NSERVER", "version": "2.15.1",
               "tags": ["region:eu"], "xkey": "XKEY"})
    );
    assert_eq!(
        n["client_info"],
        json!({"host": "127.0.0.1", "id": 7, "user": "bob", "name": "app", "kind": "Client", "type": "nats"})
    );
    assert_eq!(
        n["connect_opts"],
        json!({"user": "bob", "pass": "pw", "name": "app", "lang": "rust", "version": "1.0", "protocol": 1})
    );
    assert_eq!(
        n["client_tls"],
        json!({"version": "1.3", "cipher": "TLS_AES_128_GCM_SHA256", "verified_chains": [["PEM"]]})
    );
    // Signed by the server key, it decodes as a claim of the server's.
    let key = nkeys::KeyPair::new_server();
    let token = jwt::encode(v, &key);
    let payload = jwt::claims_json(&token).expect("claims");
    assert_eq!(payload["iss"], key.public_key());
}

#[test]
fn responses_are_checked() {
    let issuer = nkeys::KeyPair::new_account();
    let cfg = config(&issuer);
    let server = nkeys::KeyPair::new_server().public_key();
    let user = nkeys::KeyPair::new_user().public_key();
    let granted = user_jwt(&issuer, &user, "APP", json!({}));
    let ok = response(&issuer, &user, &server, json!({"jwt": granted}));
    let (claims, token) =
        check_response(&cfg, ok.as_bytes(), &user, &server, None, &no_signing_key).expect("admits");
    assert_eq!(
        (claims.sub.as_str(), claims.aud.as_str()),
        (user.as_str(), "APP")
    );
    assert_eq!(token, granted);

    let check = |payload: &str| {
        check_response(
            &cfg,
            payload.as_bytes(),
            &user,
            &server,
            None,
            &no_signing_key,
        )
        .err()
    };
    assert_eq!(
        check(""),
        Some(CalloutError::NoReason {
            account: "AUTH".into()
        })
    );
    assert!(matches!(check("garbage"), Some(CalloutError::Response(_))));
    // For another login, or another server.
    let other = nkeys::KeyPair::new_user().public_key();
    let wrong_user = response(&issuer, &other, &server, json!({"jwt": granted}));
    assert_eq!(check(&wrong_user), Some(CalloutError::WrongUser));
    let other_server = nkeys::KeyPair::new_server().public_key();
    let wrong_server = response(&issuer, &user, &other_server, json!({"jwt": granted}));
    assert_eq!(check(&wrong_server), Some(CalloutError::WrongServer));
    // An audience that is no server key at all.
    let no_server = response(&issuer, &user, "APP", json!({"jwt": granted}));
    assert!(matches!(
        check(&no_server),
        Some(CalloutError::ResponseClaims(_))
    ));
    // The service's refusal, with its reason.
    let refused = response(&issuer, &user, &server, json!({"error": "bad password"}));
    assert_eq!(
        check(&refused),
        Some(CalloutError::Refused("bad password".into()))
    );
    // Neither, or both.
    let empty = response(&issuer, &user, &server, json!({}));
    assert!(matches!(
        check(&empty),
        Some(CalloutError::ResponseClaims(_))
    ));
    let both = response(
        &issuer,
        &user,
        &server,
        json!({"jwt": granted, "error": "x"}),
    );
    assert!(matches!(
        check(&both),
        Some(CalloutError::ResponseClaims(_))
    ));
    // An expired user JWT.
    let old = jwt::encode(
        json!({"sub": user, "aud": "APP", "exp": 1, "nats": {"type": "user", "version": 2}}),
        &issuer,
    );
    let expired = response(&issuer, &user, &server, json!({"jwt": old}));
    assert!(matches!(
        check(&expired),
        Some(CalloutError::UserJwt(JwtError::Expired))
    ));
    // A tampered answer does not verify.
    let mut tampered = ok.clone().into_bytes();
    let n = tampered.len();
    tampered[n - 3] ^= 1;
    assert!(check_response(&cfg, &tampered, &user, &server, None, &no_signing_key).is_err());
}

#[test]
fn sealed_responses_open_with_the_server_key() {
    let issuer = nkeys::KeyPair::new_account();
    let mut cfg = config(&issuer);
    let service = nkeys::XKey::new();
    let server_x = nkeys::XKey::new();
    cfg.xkey = Some(service.public_key());
    let server = nkeys::KeyPair::new_server().public_key();
    let user = nkeys::KeyPair::new_user().public_key();
    let granted = user_jwt(&issuer, &user, "APP", json!({}));
    let answer = response(&issuer, &user, &server, json!({"jwt": granted}));
    let sealed = service
        .seal(
            answer.as_bytes(),
            &nkeys::XKey::from_public_key(&server_x.public_key()).expect("key"),
        )
        .expect("seals");
    let sender = nkeys::XKey::from_public_key(&service.public_key()).expect("key");
    let open = |b: &[u8]| server_x.open(b, &sender).map_err(|e| e.to_string());
    let (claims, _) =
        check_response(&cfg, &sealed, &user, &server, Some(&open), &no_signing_key).expect("opens");
    assert_eq!(claims.aud, "APP");
    // A plain JWT is taken as is, even with xkeys on.
    assert!(
        check_response(
            &cfg,
            answer.as_bytes(),
            &user,
            &server,
            Some(&open),
            &no_signing_key
        )
        .is_ok()
    );
    // Sealed for someone else: it does not open.
    let stranger = nkeys::XKey::new();
    let wrong = service
        .seal(
            answer.as_bytes(),
            &nkeys::XKey::from_public_key(&stranger.public_key()).expect("key"),
        )
        .expect("seals");
    assert!(matches!(
        check_response(&cfg, &wrong, &user, &server, Some(&open), &no_signing_key),
        Err(CalloutError::Decrypt { .. })
    ));
}

#[test]
fn granted_logins() {
    let issuer = nkeys::KeyPair::new_account();
    let cfg = config(&issuer);
    let user = nkeys::KeyPair::new_user().public_key();
    let exists = |a: &str| a == "APP";
    let none = |_: &str| None;
    let place = Placement::Config {
        exists: &exists,
        defaults: &none,
    };
    let decode = |t: &str| jwt::decode::<UserNats>(t).expect("decodes");
    let login = |t: &str, kind: ConnKind| {
        identity(&cfg, &decode(t), &user, Some("bob".into()), kind, &place)
    };
    // Placed in the audience, named by the JWT, with its permissions.
    let t = user_jwt(
        &issuer,
        &user,
        "APP",
        json!({"pub": {"allow": ["app.>"]}, "sub": {"deny": ["secret.>"]}}),
    );
    let id = login(&t, ConnKind::Standard).expect("admits");
    assert_eq!(id.account, "APP");
    assert_eq!(id.label.as_deref(), Some("alice"));
    let perms = id
        .user
        .as_ref()
        .and_then(|u| u.perms.clone())
        .expect("perms");
    assert!(perms.can_publish(b"app.x"));
    assert!(!perms.can_publish(b"other"));
    assert!(!perms.can_subscribe(b"secret.x", None));
    // An unknown account.
    let t = user_jwt(&issuer, &user, "NOPE", json!({}));
    assert!(matches!(
        login(&t, ConnKind::Standard),
        Err(CalloutError::Placement { .. })
    ));
    // Signed by another key.
    let stranger = nkeys::KeyPair::new_account();
    let t = user_jwt(&stranger, &user, "APP", json!({}));
    assert!(matches!(
        login(&t, ConnKind::Standard),
        Err(CalloutError::WrongIssuer { .. })
    ));
    // issuer_account is for operator mode only.
    let t = user_jwt(
        &issuer,
        &user,
        "APP",
        json!({"issuer_account": stranger.public_key()}),
    );
    assert!(matches!(
        login(&t, ConnKind::Standard),
        Err(CalloutError::IssuerAccount { .. })
    ));
    // For another user key.
    let other = nkeys::KeyPair::new_user().public_key();
    let t = user_jwt(&issuer, &other, "APP", json!({}));
    assert!(matches!(
        login(&t, ConnKind::Standard),
        Err(CalloutError::UserKey { .. })
    ));
    // Connection types.
    let t = user_jwt(
        &issuer,
        &user,
        "APP",
        json!({"allowed_connection_types": ["WEBSOCKET"]}),
    );
    assert!(login(&t, ConnKind::Websocket).is_ok());
    assert!(matches!(
        login(&t, ConnKind::Standard),
        Err(CalloutError::ConnectionType { .. })
    ));
    let t = user_jwt(
        &issuer,
        &user,
        "APP",
        json!({"allowed_connection_types": ["CARRIER_PIGEON"]}),
    );
    assert!(login(&t, ConnKind::Websocket).is_err());
    // Expiry carries over; no name falls back to the client's.
    let exp = jwt::unix_now() + 3600;
    let t = jwt::encode(
        json!({"sub": user, "aud": "APP", "exp": exp, "nats": {"type": "user", "version": 2}}),
        &issuer,
    );
    let id = login(&t, ConnKind::Standard).expect("admits");
    assert_eq!(id.expires, Some(exp));
    assert_eq!(id.label.as_deref(), Some("bob"));
    // No permissions of its own: the account's defaults.
    let defaults = Permissions {
        publish: Some(SubjectPermission {
            allow: Some(vec!["d.>".into()]),
            deny: vec![],
        }),
        ..Permissions::default()
    };
    let with_defaults = |_: &str| Some(defaults.clone());
    let place = Placement::Config {
        exists: &exists,
        defaults: &with_defaults,
    };
    let id = identity(&cfg, &decode(&t), &user, None, ConnKind::Standard, &place).expect("admits");
    let perms = id
        .user
        .as_ref()
        .and_then(|u| u.perms.clone())
        .expect("perms");
    assert!(perms.can_publish(b"d.x"));
    assert!(!perms.can_publish(b"e.x"));
}

#[test]
fn callout_account_users_may_not_publish_requests() {
    let mut id = Identity::plain(None, Some("auth".into()), "AUTH".into());
    deny_callout_subject(&mut id);
    let perms = id
        .user
        .as_ref()
        .and_then(|u| u.perms.clone())
        .expect("perms");
    assert!(!perms.can_publish(CALLOUT_SUBJECT.as_bytes()));
    assert!(perms.can_publish(b"anything.else"));
    assert!(perms.can_subscribe(CALLOUT_SUBJECT.as_bytes(), None));
}

/// Operator mode: answers from the account or its signing keys, users issued by the
/// account, a signing key (its scope applies) or an allowed account.
#[test]
fn operator_mode_answers_and_placements() {
    use crate::config_operator::{AccountAuth, OperatorAuth};
    let auth_acc = nkeys::KeyPair::new_account();
    let auth_sk = nkeys::KeyPair::new_account();
    let app = nkeys::KeyPair::new_account();
    let app_scoped = nkeys::KeyPair::new_account();
    let other = nkeys::KeyPair::new_account();
    let account_auth = |keys: Vec<(String, Option<jwt::UserPermissionLimits>)>| AccountAuth {
        name: "acc".into(),
        signing_keys: keys.into_iter().collect(),
        revocations: Default::default(),
        default_permissions: None,
        disallow_bearer: false,
        expires: 0,
        tags: vec![],
        issuer: String::new(),
        subs_payload: (-1, -1),
        jwt: String::new(),
        callout: None,
    };
    let scope: jwt::UserPermissionLimits =
        serde_json::from_value(json!({"pub": {"allow": ["own.{{name()}}.>"]}})).expect("scope");
    let mut op = OperatorAuth::default();
    op.accounts.insert(
        auth_acc.public_key(),
        account_auth(vec![
            (auth_acc.public_key(), None),
            (auth_sk.public_key(), None),
        ]),
    );
    op.accounts.insert(
        app.public_key(),
        account_auth(vec![
            (app.public_key(), None),
            (app_scoped.public_key(), Some(scope)),
        ]),
    );
    op.accounts.insert(
        other.public_key(),
        account_auth(vec![(other.public_key(), None)]),
    );
    let ext = jwt::ExternalAuthJwt {
        auth_users: vec!["USERVICE".into()],
        allowed_accounts: vec![app.public_key()],
        xkey: String::new(),
    };
    let cfg = CalloutConfig::of_account(&auth_acc.public_key(), &ext).expect("callout on");
    assert!(cfg.operator && cfg.issuer == auth_acc.public_key());
    assert!(CalloutConfig::of_account("A", &jwt::ExternalAuthJwt::default()).is_none());

    let server = nkeys::KeyPair::new_server().public_key();
    let user = nkeys::KeyPair::new_user().public_key();
    let sk = auth_sk.public_key();
    let is_sk = |k: &str| k == sk;
    // An answer signed by the account's signing key (with issuer_account) is taken; one
    // by an unrelated account key is not.
    let granted = user_jwt(&auth_acc, &user, "", json!({}));
    let by_sk = response(
        &auth_sk,
        &user,
        &server,
        json!({"jwt": granted, "issuer_account": auth_acc.public_key()}),
    );
    assert!(check_response(&cfg, by_sk.as_bytes(), &user, &server, None, &is_sk).is_ok());
    let by_other = response(&other, &user, &server, json!({"jwt": granted}));
    assert_eq!(
        check_response(&cfg, by_other.as_bytes(), &user, &server, None, &is_sk).err(),
        Some(CalloutError::UnknownSigner)
    );

    let place = Placement::Operator(&op);
    let login = |t: &str| {
        let claims = jwt::decode::<UserNats>(t).expect("decodes");
        identity(&cfg, &claims, &user, None, ConnKind::Standard, &place)
    };
    // Issued by the callout account itself: placed there.
    let id = login(&granted).expect("admits");
    assert_eq!(id.account, auth_acc.public_key());
    // Issued by an allowed account: placed there.
    let t = user_jwt(&app, &user, "", json!({}));
    assert_eq!(login(&t).expect("admits").account, app.public_key());
    // By that account's scoped key: the scope's template gives the permissions.
    let t = user_jwt(
        &app_scoped,
        &user,
        "",
        json!({"issuer_account": app.public_key()}),
    );
    let id = login(&t).expect("admits");
    let perms = id
        .user
        .as_ref()
        .and_then(|u| u.perms.clone())
        .expect("perms");
    assert!(perms.can_publish(b"own.alice.x"));
    assert!(!perms.can_publish(b"own.bob.x"));
    // A scoped key's user may not bring limits of its own.
    let t = user_jwt(
        &app_scoped,
        &user,
        "",
        json!({"issuer_account": app.public_key(), "pub": {"allow": [">"]}}),
    );
    assert!(matches!(login(&t), Err(CalloutError::Scope(_))));
    // An account the callout may not use.
    let t = user_jwt(&other, &user, "", json!({}));
    assert!(matches!(login(&t), Err(CalloutError::NotAllowed { .. })));
    // A key the allowed account does not know.
    let t = user_jwt(
        &other,
        &user,
        "",
        json!({"issuer_account": app.public_key()}),
    );
    assert!(matches!(login(&t), Err(CalloutError::UnknownIssuer(_))));
}
