//! Authentication decisions for every credential form.

use super::*;
use crate::options::{AccountsConfig, UserConfig};

fn connect(json: &str) -> ConnectOptions {
    ConnectOptions::parse(json.as_bytes()).unwrap()
}

fn registry(users: Vec<UserConfig>, no_auth_user: Option<&str>) -> AuthRegistry {
    let o = Options {
        accounts: AccountsConfig {
            users,
            no_auth_user: no_auth_user.map(str::to_string),
            ..AccountsConfig::default()
        },
        ..Options::default()
    };
    AuthRegistry::from_options(&o)
}

fn user(name: &str, pass: &str, account: &str) -> UserConfig {
    UserConfig {
        name: name.into(),
        password: Some(pass.into()),
        account: account.into(),
        ..UserConfig::default()
    }
}

#[test]
fn single_user_password_and_token() {
    let up = SimpleAuth {
        user: Some("alice".into()),
        password: Some("secret".into()),
        ..SimpleAuth::default()
    };
    assert!(check_simple(
        &up,
        &connect(r#"{"user":"alice","pass":"secret"}"#)
    ));
    assert!(!check_simple(
        &up,
        &connect(r#"{"user":"alice","pass":"nope"}"#)
    ));
    assert!(!check_simple(
        &up,
        &connect(r#"{"user":"bob","pass":"secret"}"#)
    ));
    assert!(!check_simple(&up, &connect("{}")));
    let tok = SimpleAuth {
        token: Some("t0k".into()),
        ..SimpleAuth::default()
    };
    assert!(check_simple(&tok, &connect(r#"{"auth_token":"t0k"}"#)));
    assert!(!check_simple(&tok, &connect(r#"{"auth_token":"t0"}"#)));
    assert!(check_simple(&SimpleAuth::default(), &connect("{}")));
}

#[test]
fn users_bind_to_their_accounts() {
    let r = registry(vec![user("a", "pa", "A"), user("b", "pb", "B")], None);
    assert!(r.required());
    let id = r
        .authenticate(&connect(r#"{"user":"a","pass":"pa"}"#), "")
        .unwrap();
    assert_eq!(id.account, "A");
    assert_eq!(id.label.as_deref(), Some("a"));
    assert_eq!(
        r.authenticate(&connect(r#"{"user":"b","pass":"pb"}"#), "")
            .unwrap()
            .account,
        "B"
    );
    assert!(
        r.authenticate(&connect(r#"{"user":"a","pass":"pb"}"#), "")
            .is_none()
    );
    assert!(
        r.authenticate(&connect(r#"{"user":"zed","pass":"x"}"#), "")
            .is_none()
    );
    assert!(r.authenticate(&connect("{}"), "").is_none());
}

#[test]
fn bcrypt_passwords() {
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    assert!(hash.starts_with("$2"));
    let r = registry(vec![user("h", &hash, "$G")], None);
    assert!(
        r.authenticate(&connect(r#"{"user":"h","pass":"s3cret"}"#), "")
            .is_some()
    );
    assert!(
        r.authenticate(&connect(r#"{"user":"h","pass":"wrong"}"#), "")
            .is_none()
    );
}

/// bcrypt is recognised as nats-server recognises it: `$2a$`, `$2b$`, `$2x$`, `$2y$` with
/// a two-digit cost; anything else (`$2a$xx`, `$2c$06$..`) is a plain password.
#[test]
fn bcrypt_versions_and_lookalikes() {
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    for version in ["$2a$", "$2b$", "$2x$", "$2y$"] {
        let h = format!("{version}{}", &hash[4..]);
        let r = registry(vec![user("h", &h, "$G")], None);
        let login = |pass: &str| {
            r.authenticate(&connect(&format!(r#"{{"user":"h","pass":"{pass}"}}"#)), "")
                .is_some()
        };
        assert!(login("s3cret"), "{version}");
        assert!(!login(&h), "{version}: the hash itself must not log in");
    }
    for plain in ["$2a$xx", "$2c$06$abc", "$2a$6$abc"] {
        let r = registry(vec![user("p", plain, "$G")], None);
        let ok = r
            .authenticate(&connect(&format!(r#"{{"user":"p","pass":"{plain}"}}"#)), "")
            .is_some();
        assert!(ok, "{plain} is a plain password");
    }
}

#[test]
fn no_auth_user_for_clients_without_credentials() {
    let r = registry(
        vec![user("a", "pa", "A"), user("anon", "x", "B")],
        Some("anon"),
    );
    assert!(!r.required(), "INFO must not say auth_required");
    let id = r.authenticate(&connect("{}"), "").unwrap();
    assert_eq!(
        (id.account.as_str(), id.label.as_deref()),
        ("B", Some("anon"))
    );
    // Credentials that are given must still be right.
    assert!(
        r.authenticate(&connect(r#"{"user":"a","pass":"no"}"#), "")
            .is_none()
    );
}

#[test]
fn nkey_signature_over_the_nonce() {
    let kp = nkeys::KeyPair::new_user();
    let pk = kp.public_key();
    let r = registry(
        vec![UserConfig {
            name: pk.clone(),
            nkey: true,
            account: "A".into(),
            ..UserConfig::default()
        }],
        None,
    );
    assert!(r.needs_nonce());
    let nonce = new_nonce();
    assert_eq!(nonce.len(), 15);
    let sig =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(kp.sign(nonce.as_bytes()).unwrap());
    let good = connect(&format!(r#"{{"nkey":"{pk}","sig":"{sig}"}}"#));
    assert_eq!(r.authenticate(&good, &nonce).unwrap().account, "A");
    // Standard base64 is accepted too.
    let std_sig =
        base64::engine::general_purpose::STANDARD.encode(kp.sign(nonce.as_bytes()).unwrap());
    let good_std = connect(&format!(r#"{{"nkey":"{pk}","sig":"{std_sig}"}}"#));
    assert!(r.authenticate(&good_std, &nonce).is_some());
    // Wrong nonce, missing signature, unknown key.
    assert!(r.authenticate(&good, &new_nonce()).is_none());
    assert!(
        r.authenticate(&connect(&format!(r#"{{"nkey":"{pk}"}}"#)), &nonce)
            .is_none()
    );
    let other = nkeys::KeyPair::new_user().public_key();
    assert!(
        r.authenticate(
            &connect(&format!(r#"{{"nkey":"{other}","sig":"{sig}"}}"#)),
            &nonce
        )
        .is_none()
    );
}

#[test]
fn connection_types_restrict_users() {
    let mut u = user("ws", "p", "$G");
    u.allowed_connection_types = vec!["WEBSOCKET".into()];
    let r = registry(vec![u], None);
    assert!(
        r.authenticate(&connect(r#"{"user":"ws","pass":"p"}"#), "")
            .is_none()
    );
}

/// A registry whose `verify_and_map` is on for the client port (`standard`) and/or the
/// WebSocket port (`ws`).
fn mapping_registry(users: Vec<UserConfig>, standard: bool, ws: bool) -> AuthRegistry {
    let tls = |map: bool| crate::tls::TlsOptions {
        map,
        verify: map,
        ..Default::default()
    };
    let o = Options {
        accounts: AccountsConfig {
            users,
            ..AccountsConfig::default()
        },
        tls: standard.then(|| tls(true)),
        websocket: ws.then(|| crate::options::WebsocketOptions {
            port: 1,
            tls: Some(tls(true)),
            ..Default::default()
        }),
        ..Options::default()
    };
    AuthRegistry::from_options(&o)
}

fn cert_only(name: &str) -> UserConfig {
    UserConfig {
        name: name.into(),
        password: None,
        account: "$G".into(),
        ..UserConfig::default()
    }
}

#[test]
fn a_certificate_identity_cannot_log_in_by_name() {
    // verify_and_map only on the WebSocket port: alice (no password) is a certificate
    // identity there, so naming her on the client port without a certificate fails
    // (nats-server's canTLSMap), while a password user still logs in.
    let mut bob = user("bob", "pw", "$G");
    bob.allowed_connection_types = vec![];
    let r = mapping_registry(vec![cert_only("alice@example.com"), bob], false, true);
    let c = connect(r#"{"user":"alice@example.com"}"#);
    assert!(
        r.authenticate_with(&c, "", None, ConnKind::Standard, None)
            .is_err()
    );
    let c = connect(r#"{"user":"bob","pass":"pw"}"#);
    assert!(
        r.authenticate_with(&c, "", None, ConnKind::Standard, None)
            .is_ok()
    );
    // Without mapping anywhere, a password-less user is just that (nats-server too).
    let r = mapping_registry(vec![cert_only("carol")], false, false);
    let c = connect(r#"{"user":"carol"}"#);
    assert!(
        r.authenticate_with(&c, "", None, ConnKind::Standard, None)
            .is_ok()
    );
    // Mapping on the client port does not map WebSocket clients: there bob's password
    // still counts.
    let r = mapping_registry(vec![user("bob", "pw", "$G")], true, false);
    let c = connect(r#"{"user":"bob","pass":"pw"}"#);
    assert!(
        r.authenticate_with(&c, "", None, ConnKind::Websocket, None)
            .is_ok()
    );
    assert!(
        r.authenticate_with(&c, "", None, ConnKind::Standard, None)
            .is_err(),
        "no certificate"
    );
}

#[test]
fn allowed_connection_types_follow_the_transport() {
    let mut std_only = user("s", "pw", "$G");
    std_only.allowed_connection_types = vec!["STANDARD".into()];
    let mut ws_only = user("w", "pw", "$G");
    ws_only.allowed_connection_types = vec!["WEBSOCKET".into()];
    let r = registry(vec![std_only, ws_only], None);
    let s = connect(r#"{"user":"s","pass":"pw"}"#);
    let w = connect(r#"{"user":"w","pass":"pw"}"#);
    assert!(
        r.authenticate_with(&s, "", None, ConnKind::Standard, None)
            .is_ok()
    );
    assert!(
        r.authenticate_with(&s, "", None, ConnKind::Websocket, None)
            .is_err()
    );
    assert!(
        r.authenticate_with(&w, "", None, ConnKind::Websocket, None)
            .is_ok()
    );
    assert!(
        r.authenticate_with(&w, "", None, ConnKind::Standard, None)
            .is_err()
    );
}
