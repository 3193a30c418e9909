//! Client authentication.
//!
//! For now: the single user/password or token from the `authorization` block or the
//! `--user/--pass/--auth` flags. Users lists, nkeys, bcrypt and accounts come with the
//! accounts issue. The server never says which part of the credentials was wrong.

use crate::options::SimpleAuth;
use crate::protocol::connect::ConnectOptions;

/// Compare secrets in constant time, so timing does not reveal how much matched.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether CONNECT's credentials satisfy the configured simple auth.
pub fn check_simple(auth: &SimpleAuth, c: &ConnectOptions) -> bool {
    if let Some(token) = &auth.token {
        return c
            .auth_token
            .as_deref()
            .is_some_and(|t| ct_eq(t.as_bytes(), token.as_bytes()));
    }
    if let Some(user) = &auth.user {
        let user_ok = c
            .user
            .as_deref()
            .is_some_and(|u| ct_eq(u.as_bytes(), user.as_bytes()));
        let want = auth.password.as_deref().unwrap_or("");
        let pass_ok = ct_eq(c.pass.as_deref().unwrap_or("").as_bytes(), want.as_bytes());
        return user_ok && pass_ok;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(json: &str) -> ConnectOptions {
        ConnectOptions::parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn user_password_and_token() {
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
}
