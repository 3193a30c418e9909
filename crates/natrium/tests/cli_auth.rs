//! Authentication flags: `--nkey` against both servers (an nkey user in a
//! config file) and `--tlsca` against nats-server with a self-signed
//! certificate (natrium-server has no TLS yet).

mod common;

use std::process::Command;

use common::{Kind, Server, assert_one_line_error, natrium};

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
fn tls_with_ca_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write ext");
    // A CA, and a server certificate it signs.
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=natrium test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "key.pem",
            "-out",
            "srv.csr",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
            "-out",
            "cert.pem",
        ],
    ];
    for args in steps {
        match Command::new("openssl").args(args).current_dir(d).output() {
            Ok(o) if o.status.success() => {}
            _ => {
                eprintln!("SKIPPED tls_with_ca_file: no working openssl to make certificates");
                return;
            }
        }
    }
    let (cert, key, ca) = (d.join("cert.pem"), d.join("key.pem"), d.join("ca.pem"));
    let ca = ca.to_str().expect("utf8");
    let (cert, key) = (cert.to_str().expect("utf8"), key.to_str().expect("utf8"));
    let Some(s) = Server::nats_with(
        "tls_with_ca_file",
        &["--tls", "--tlscert", cert, "--tlskey", key],
    ) else {
        return;
    };
    assert_eq!(s.kind, Kind::Nats);
    let out = s.ok(&[
        "--tlsca",
        ca,
        "server",
        "check",
        "connection",
        "--connect-warn",
        "5s",
        "--connect-critical",
        "10s",
    ]);
    assert!(out.starts_with("CONNECTION OK"), "{out}");
    // Without the CA the server's certificate is not trusted.
    let (code, err) = s.fails(&["stream", "ls", "--timeout", "3s"]);
    assert_eq!(code, 1);
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
