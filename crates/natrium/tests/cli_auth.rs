//! Authentication flags against both servers: `--nkey` (an nkey user in a
//! config file), `--tlsca` for a TLS server, and `--tlscert`/`--tlskey` for
//! one that verifies client certificates (`tests/data/tls` certificates), and
//! `--creds` (a user JWT and seed, as nsc writes them) for a server in operator mode.

mod common;

use common::{Server, assert_one_line_error, natrium};

#[test]
fn nkey_seed_file_authenticates() {
    let kp = nkeys::KeyPair::new_user();
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("nkey.conf");
    std::fs::write(
        &conf,
        format!(
            "authorization {{ users: [ {{nkey: {}}} ] }}\n",
            kp.public_key()
        ),
    )
    .expect("write conf");
    let seed = dir.path().join("user.nk");
    std::fs::write(&seed, kp.seed().expect("seed")).expect("write seed");
    let conf = conf.to_str().expect("utf8");
    let seed = seed.to_str().expect("utf8");

    let mut servers = vec![Server::natrium_with(&["-c", conf])];
    servers.extend(Server::nats_with(
        "nkey_seed_file_authenticates",
        &["-c", conf],
    ));
    for s in servers {
        let (code, err) = s.fails(&["account", "info", "--timeout", "3s"]);
        assert_eq!(code, 1, "{:?}", s.kind);
        assert_one_line_error(&err);
        let v = s.json(&["--nkey", seed, "account", "info"]);
        assert_eq!(v["streams"], 0, "{:?}", s.kind);
        // A seed for another user is refused.
        let other = dir.path().join("other.nk");
        std::fs::write(&other, nkeys::KeyPair::new_user().seed().expect("seed")).expect("write");
        let (_, err) = s.fails(&[
            "--nkey",
            other.to_str().expect("utf8"),
            "account",
            "info",
            "--timeout",
            "3s",
        ]);
        assert_one_line_error(&err);
    }
}

#[test]
fn creds_file_logs_in_to_an_operator_mode_server() {
    use natrium_server::jwt::encode;
    use serde_json::json;
    let op = nkeys::KeyPair::new_operator();
    let sys = nkeys::KeyPair::new_account();
    let acc = nkeys::KeyPair::new_account();
    let user = nkeys::KeyPair::new_user();
    let account = |key: &nkeys::KeyPair, limits: serde_json::Value| {
        encode(
            json!({"sub": key.public_key(), "name": "a",
                   "nats": {"limits": limits, "type": "account", "version": 2}}),
            &op,
        )
    };
    let unlimited = json!({"subs": -1, "data": -1, "payload": -1, "conn": -1,
                           "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1});
    let operator = encode(
        json!({"sub": op.public_key(), "nats": {"system_account": sys.public_key(),
               "type": "operator", "version": 2}}),
        &op,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("op.conf");
    std::fs::write(
        &conf,
        format!(
            "operator: {operator}\nresolver: MEMORY\nresolver_preload {{\n {}: {}\n {}: {}\n}}\n",
            acc.public_key(),
            account(&acc, unlimited),
            sys.public_key(),
            account(&sys, json!({"subs": -1, "conn": -1, "payload": -1})),
        ),
    )
    .expect("write conf");
    let jwt = encode(
        json!({"sub": user.public_key(), "nats": {"subs": -1, "data": -1, "payload": -1,
               "type": "user", "version": 2}}),
        &acc,
    );
    let creds = dir.path().join("user.creds");
    std::fs::write(
        &creds,
        format!(
            "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
            user.seed().expect("seed")
        ),
    )
    .expect("write creds");
    let store = dir.path().join("store");
    let args = [
        "-c",
        conf.to_str().expect("utf8"),
        "-js",
        "-sd",
        store.to_str().expect("utf8"),
    ];
    let mut servers = vec![Server::natrium_with(&args)];
    servers.extend(Server::nats_with(
        "creds_file_logs_in_to_an_operator_mode_server",
        &args,
    ));
    let creds = creds.to_str().expect("utf8");
    for s in servers {
        // Without credentials: refused, in one line.
        let (code, err) = s.fails(&["account", "info", "--timeout", "3s"]);
        assert_eq!(code, 1, "{:?}", s.kind);
        assert_one_line_error(&err);
        // With them: the account's JetStream, as its JWT allows.
        let v = s.json(&["--creds", creds, "account", "info"]);
        assert_eq!(v["streams"], 0, "{:?}: {v}", s.kind);
    }
}

/// A file of the shared TLS test certificates (`tests/data/tls`).
fn tls_data(name: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/tls")
        .join(name)
        .to_str()
        .expect("utf8")
        .to_string()
}

#[test]
fn tls_with_ca_file() {
    let (cert, key, ca) = (
        tls_data("server-cert.pem"),
        tls_data("server-key.pem"),
        tls_data("ca.pem"),
    );
    let flags = ["--tls", "--tlscert", &cert, "--tlskey", &key];
    let mut servers = vec![Server::natrium_with(&flags)];
    servers.extend(Server::nats_with("tls_with_ca_file", &flags));
    for s in servers {
        let out = s.ok(&[
            "--tlsca",
            &ca,
            "server",
            "check",
            "connection",
            "--connect-warn",
            "5s",
            "--connect-critical",
            "10s",
        ]);
        assert!(out.starts_with("CONNECTION OK"), "{:?}: {out}", s.kind);
        let v = s.json(&["--tlsca", &ca, "account", "info"]);
        assert_eq!(v["streams"], 0, "{:?}", s.kind);
        // Without the CA the server's certificate is not trusted.
        let (code, err) = s.fails(&["stream", "ls", "--timeout", "3s"]);
        assert_eq!(code, 1, "{:?}", s.kind);
        assert_one_line_error(&err);
        // A missing CA file is named.
        let o = natrium(
            Some(&s.url),
            &["--tlsca", "/nonexistent/ca.pem", "stream", "ls"],
            &[],
        );
        assert_eq!(o.status.code(), Some(1));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_one_line_error(&err);
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }
}

#[test]
fn tls_client_certificate_for_a_verifying_server() {
    let (cert, key, ca) = (
        tls_data("server-cert.pem"),
        tls_data("server-key.pem"),
        tls_data("ca.pem"),
    );
    let flags = [
        "--tlsverify",
        "--tlscert",
        &cert,
        "--tlskey",
        &key,
        "--tlscacert",
        &ca,
    ];
    let mut servers = vec![Server::natrium_with(&flags)];
    servers.extend(Server::nats_with(
        "tls_client_certificate_for_a_verifying_server",
        &flags,
    ));
    let (ccert, ckey) = (tls_data("client-cert.pem"), tls_data("client-key.pem"));
    for s in servers {
        let v = s.json(&[
            "--tlsca",
            &ca,
            "--tlscert",
            &ccert,
            "--tlskey",
            &ckey,
            "account",
            "info",
        ]);
        assert_eq!(v["streams"], 0, "{:?}", s.kind);
        // Without a client certificate the handshake fails.
        let (code, err) = s.fails(&["--tlsca", &ca, "stream", "ls", "--timeout", "3s"]);
        assert_eq!(code, 1, "{:?}", s.kind);
        assert_one_line_error(&err);
        // A certificate from a CA the server does not trust fails too.
        let (code, err) = s.fails(&[
            "--tlsca",
            &ca,
            "--tlscert",
            &tls_data("stranger-cert.pem"),
            "--tlskey",
            &tls_data("stranger-key.pem"),
            "stream",
            "ls",
            "--timeout",
            "3s",
        ]);
        assert_eq!(code, 1, "{:?}", s.kind);
        assert_one_line_error(&err);
    }
}

#[test]
fn tls_first_for_a_handshake_first_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("tls-first.conf");
    std::fs::write(
        &conf,
        format!(
            "tls {{ cert_file: {:?}, key_file: {:?}, handshake_first: true }}\n",
            tls_data("server-cert.pem"),
            tls_data("server-key.pem")
        ),
    )
    .expect("write conf");
    let conf = conf.to_str().expect("utf8");
    let ca = tls_data("ca.pem");
    let mut servers = vec![Server::natrium_with(&["-c", conf])];
    servers.extend(Server::nats_with(
        "tls_first_for_a_handshake_first_server",
        &["-c", conf],
    ));
    for s in servers {
        let v = s.json(&["--tlsca", &ca, "--tlsfirst", "account", "info"]);
        assert_eq!(v["streams"], 0, "{:?}", s.kind);
        // Waiting for the greeting first gets nowhere: the server waits for TLS.
        let (code, err) = s.fails(&["--tlsca", &ca, "stream", "ls", "--timeout", "2s"]);
        assert_eq!(code, 1, "{:?}", s.kind);
        assert_one_line_error(&err);
    }
}

/// Credentials in the server URL (`nats://user:pass@host`, `nats://token@host`) log in as
/// with the nats CLI, percent-encoding decoded; a refused password is not echoed.
#[test]
fn credentials_in_the_server_url() {
    let mut servers = vec![
        Server::natrium_with(&["--user", "al@ice", "--pass", "p:ss w"]),
        Server::natrium_with(&["--auth", "t0ken"]),
    ];
    servers.extend(Server::nats_with(
        "credentials_in_the_server_url",
        &["--user", "al@ice", "--pass", "p:ss w"],
    ));
    servers.extend(Server::nats_with(
        "credentials_in_the_server_url",
        &["--auth", "t0ken"],
    ));
    for s in servers {
        let k = s.kind;
        let user = s.extra.iter().any(|a| a == "--user");
        let good = if user {
            format!("nats://al%40ice:p%3Ass%20w@127.0.0.1:{}", s.port)
        } else {
            format!("nats://t0ken@127.0.0.1:{}", s.port)
        };
        let out = natrium(Some(&good), &["pub", "x", "y"], &[]);
        assert!(
            out.status.success(),
            "{k:?} {good}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bad = if user {
            format!("nats://al%40ice:wrong-secret@127.0.0.1:{}", s.port)
        } else {
            format!("nats://n0pe@127.0.0.1:{}", s.port)
        };
        let out = natrium(Some(&bad), &["pub", "x", "y", "--timeout", "3s"], &[]);
        assert!(!out.status.success(), "{k:?} {bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_one_line_error(&err);
        assert!(err.contains("authorization violation"), "{k:?}: {err}");
        assert!(!err.contains("wrong-secret"), "{k:?}: {err}");
    }
}
