//! Mapping config text to options: every key spelling this issue covers, the size and
//! duration traps, and the errors and warnings nats-server gives.

use super::*;

fn opts(text: &str) -> Result<Options, ConfError> {
    let map = conf::parse_str_with_env(text, &|_| None)?;
    let mut o = Options::default();
    apply(&mut o, &map)?;
    Ok(o)
}

fn err(text: &str) -> String {
    opts(text).expect_err("must fail").to_string()
}

#[test]
fn listen_host_port_and_name() {
    let o = opts("listen: 127.0.0.1:4333\nserver_name: n1").unwrap();
    assert_eq!((o.host.as_str(), o.port), ("127.0.0.1", 4333));
    assert_eq!(o.server_name.as_deref(), Some("n1"));
    let o = opts("host = 10.0.0.1; port = -1").unwrap();
    assert_eq!((o.host.as_str(), o.port), ("10.0.0.1", -1));
    let o = opts("net: ::1\nport 5").unwrap();
    assert_eq!(o.host, "::1");
    assert!(err("server_name: 'a b'").contains("cannot contain spaces"));
}

#[test]
fn monitoring_spellings() {
    assert_eq!(opts("http_port: 8222").unwrap().http_port, 8222);
    assert_eq!(opts("monitor_port: 8333").unwrap().http_port, 8333);
    let o = opts("http: 127.0.0.1:8444\nhttp_base_path: /mon").unwrap();
    assert_eq!(
        (o.http_host.as_deref(), o.http_port),
        (Some("127.0.0.1"), 8444)
    );
    assert_eq!(o.http_base_path, "/mon");
}

#[test]
fn size_suffixes_decimal_and_binary() {
    assert_eq!(opts("max_payload: 1k").unwrap().max_payload, 1000);
    assert_eq!(opts("max_payload: 1KB").unwrap().max_payload, 1024);
    assert_eq!(
        opts("max_pending: 2MB").unwrap().max_pending,
        2 * 1024 * 1024
    );
    assert_eq!(
        opts("max_pending: 512MiB").unwrap().max_pending,
        512 * 1024 * 1024
    );
    assert_eq!(opts("max_control_line: 512").unwrap().max_control_line, 512);
    assert!(err("max_payload: 3GB").contains("max_payload"));
}

#[test]
fn durations_and_the_mega_trap() {
    assert_eq!(
        opts("ping_interval: \"1s\"").unwrap().ping_interval,
        Duration::from_secs(1)
    );
    assert_eq!(
        opts("ping_interval: 30s").unwrap().ping_interval,
        Duration::from_secs(30)
    );
    assert_eq!(
        opts("write_deadline: \"2s\"").unwrap().write_deadline,
        Duration::from_secs(2)
    );
    // A bare integer is seconds, with nats-server's warning.
    let o = opts("ping_interval: 2").unwrap();
    assert_eq!(o.ping_interval, Duration::from_secs(2));
    assert!(
        o.warnings
            .iter()
            .any(|w| w.contains("should be converted to a duration"))
    );
    // Unquoted `2m` is 2 million (mega), hence 2,000,000 seconds.
    assert_eq!(
        opts("ping_interval: 2m").unwrap().ping_interval,
        Duration::from_secs(2_000_000)
    );
    assert_eq!(
        opts("ping_interval: \"2m\"").unwrap().ping_interval,
        Duration::from_secs(120)
    );
}

#[test]
fn lame_duck_needs_a_string_of_at_least_30s() {
    assert_eq!(
        opts("lame_duck_duration: \"45s\"")
            .unwrap()
            .lame_duck_duration,
        Duration::from_secs(45)
    );
    assert!(err("lame_duck_duration: \"10s\"").contains("minimum is 30 seconds"));
    assert!(opts("lame_duck_duration: 60").is_err());
    assert_eq!(
        opts("lame_duck_grace_period: \"3s\"")
            .unwrap()
            .lame_duck_grace_period,
        Duration::from_secs(3)
    );
}

#[test]
fn limits_and_logging() {
    let o = opts(
        "max_connections: 3\nmax_subs: 7\nmax_sub_tokens: 9\nping_max: 4\n\
         debug: true\ntrace: on\nlogtime: false\nlogtime_utc: yes\nlog_file: /tmp/x.log\n\
         max_closed_clients: 5\nno_header_support: true\npid_file: /tmp/p.pid",
    )
    .unwrap();
    assert_eq!(o.max_connections, 3);
    assert_eq!(o.max_subscriptions, 7);
    assert_eq!(o.max_sub_tokens, 9);
    assert_eq!(o.ping_max, 4);
    assert!(o.log.debug && o.log.trace && !o.log.logtime && o.log.logtime_utc);
    assert_eq!(o.log.log_file, Some(PathBuf::from("/tmp/x.log")));
    assert_eq!(o.max_closed_clients, 5);
    assert!(o.no_header_support);
    assert_eq!(o.pid_file, Some(PathBuf::from("/tmp/p.pid")));
    // 0 connections means unlimited in nats-server.
    assert_eq!(opts("max_conn: 0").unwrap().max_connections, -1);
    assert!(err("max_sub_tokens: 300").contains("255"));
    // A quoted "true"/"false" is a string, and jetstream's strings are enabled/disabled.
    assert!(
        err("jetstream: \"true\"")
            .contains("Expected 'enabled' or 'disabled' for string value, got 'true'")
    );
    assert!(err("accounts { A { jetstream: \"false\" } }").contains("got 'false'"));
    // As nats-server 2.15.1: no token limit below 1; a zero write deadline is the default.
    assert!(err("max_sub_tokens: 0").contains("max_sub_tokens value can not be negative"));
    assert!(err("max_sub_tokens: -3").contains("can not be negative"));
    assert_eq!(
        opts("write_deadline: 0").unwrap().write_deadline,
        Duration::from_secs(10)
    );
    assert_eq!(
        opts("write_deadline: \"0s\"").unwrap().write_deadline,
        Duration::from_secs(10)
    );
}

#[test]
fn unknown_keys_are_errors_with_position() {
    let e = err("port: 4222\nbogus_key: 1\n");
    assert!(e.starts_with("2:1:"), "{e}");
    assert!(e.contains("unknown field \"bogus_key\""), "{e}");
    let e = err("jetstream {\n  bogus: 1\n}\n");
    assert!(e.contains("unknown field \"bogus\""), "{e}");
    assert!(e.starts_with("2:3:"), "{e}");
}

#[test]
fn known_but_unsupported_keys_warn() {
    let o = opts("cluster { port: 6222 }\nmqtt { port: 1883 }\n").unwrap();
    assert_eq!(o.warnings.len(), 2);
    assert!(o.warnings[0].contains("not supported by natrium-server"));
}

#[test]
fn variables_are_not_unknown_fields() {
    let o = opts("PORTVAR: 14230\nport: $PORTVAR").unwrap();
    assert_eq!(o.port, 14230);
}

#[test]
fn authorization_block() {
    let o = opts("authorization { user: alice, password: secret, timeout: 0.5 }").unwrap();
    assert_eq!(o.auth.user.as_deref(), Some("alice"));
    assert_eq!(o.auth.password.as_deref(), Some("secret"));
    assert_eq!(o.auth.timeout, Some(Duration::from_millis(500)));
    assert_eq!(o.effective_auth_timeout(), Duration::from_millis(500));
    let o = opts("authorization { token: s3cr3t }").unwrap();
    assert_eq!(o.auth.token.as_deref(), Some("s3cr3t"));
    assert!(err("authorization { user: a, token: b }").contains("token"));
    assert!(err("authorization { nope: 1 }").contains("unknown field"));
}

#[test]
fn allowed_connection_types_as_nats_server() {
    // nats-server's whole list, the WebSocket variants of leaf and MQTT included.
    let o = opts(
        "authorization { users: [ {user: a, password: b, allowed_connection_types: [STANDARD, LEAFNODE_WS, mqtt_ws, IN_PROCESS]} ] }",
    )
    .unwrap();
    assert_eq!(o.accounts.users[0].allowed_connection_types.len(), 4);
    assert!(
        err(
            "authorization { users: [ {user: a, password: b, allowed_connection_types: [BOGUS]} ] }"
        )
        .contains("unknown connection type")
    );
}

#[test]
fn jetstream_forms_and_storage_sizes() {
    assert!(opts("jetstream: enabled").unwrap().jetstream.enabled);
    assert!(opts("jetstream: true").unwrap().jetstream.enabled);
    assert!(!opts("jetstream: disabled").unwrap().jetstream.enabled);
    let js = opts("jetstream { store_dir: /tmp/js, max_mem: \"1G\", max_file: 1G }")
        .unwrap()
        .jetstream;
    assert!(js.enabled);
    assert_eq!(js.store_dir, Some(PathBuf::from("/tmp/js")));
    // Quoted sizes are binary (getStorageSize); unquoted suffixes are decimal.
    assert_eq!(js.max_memory, Some(1 << 30));
    assert_eq!(js.max_store, Some(1_000_000_000));
    let js = opts("jetstream { max_memory_store: 1GB, max_file_store: -1 }")
        .unwrap()
        .jetstream;
    assert_eq!(js.max_memory, Some(1 << 30));
    assert_eq!(js.max_store, Some(-1));
    let e = err("jetstream { max_mem: \"1GB\" }");
    assert!(e.contains("max_mem_store"), "{e}");
    let js = opts("jetstream { sync_interval: always }")
        .unwrap()
        .jetstream;
    assert_eq!(js.sync_interval, Some(None));
    let js = opts("jetstream { sync: \"1s\" }").unwrap().jetstream;
    assert_eq!(js.sync_interval, Some(Some(Duration::from_secs(1))));
    assert!(err("store_dir: /a\njetstream { store_dir: /b }").contains("Duplicate"));
}

#[test]
fn backup_share_is_a_percentage() {
    assert_eq!(opts("jetstream {}").unwrap().jetstream.backup_share, None);
    let js = opts("jetstream { backup_share: 100 }").unwrap().jetstream;
    assert_eq!(js.backup_share, Some(100));
    let js = opts("jetstream { backup_share: 1 }").unwrap().jetstream;
    assert_eq!(js.backup_share, Some(1));
    for bad in ["0", "101", "-5", "300"] {
        let e = err(&format!("jetstream {{ backup_share: {bad} }}"));
        assert!(
            e.contains("backup_share must be a percentage"),
            "{bad}: {e}"
        );
    }
    assert!(err("jetstream { backup_share: lots }").contains("backup_share"));
    let js = opts("jetstream { restore_share: 10 }").unwrap().jetstream;
    assert_eq!((js.backup_share, js.restore_share), (None, Some(10)));
    let e = err("jetstream { restore_share: 0 }");
    assert!(e.contains("restore_share must be a percentage"), "{e}");
}

#[test]
fn load_reads_a_file_and_computes_its_digest() {
    let dir = std::env::temp_dir().join(format!("natrium-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let inc = dir.join("limits.conf");
    std::fs::write(&inc, "max_payload: 2KB\n").unwrap();
    let main = dir.join("main.conf");
    std::fs::write(&main, "port: 4999\ninclude ./limits.conf\n").unwrap();
    let o = load(&main).unwrap();
    assert_eq!(o.port, 4999);
    assert_eq!(o.max_payload, 2048);
    let digest = o.config_digest.unwrap();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 7 + 64,
        "{digest}"
    );
    std::fs::write(&main, "port: 4999\nnope: 1\n").unwrap();
    let e = load(&main).unwrap_err().to_string();
    assert!(e.contains("main.conf:2:1: unknown field \"nope\""), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn digest_matches_nats_server() {
    // `nats-server -t -c` on this exact file printed this digest (2.15.1).
    let map = conf::parse_str_with_env(
        "port: 4333\nserver_name: \"a<b\"\nmax_payload: 1KB\nping_max: 3\nwrite_deadline: \"2.5s\"\n\
         jetstream { store_dir: /tmp/x, max_mem: 1G }\n\
         authorization { timeout: 0.5, users: [ {user: a, password: b} ] }\n",
        &|_| None,
    )
    .unwrap();
    assert_eq!(
        digest(&map),
        "sha256:ea88600902db0d3f4ffe03be5b0c5cf84714690f60927f9b8142f71d67158146"
    );
}

#[test]
fn zero_limits_mean_the_defaults() {
    // nats-server 2.15.1 reads 0 as "use the default" for these (a template writing 0
    // for unset must not make every connection fail).
    let d = Options::default();
    let o = opts(
        "max_payload: 0\nmax_control_line: 0\nmax_pending: 0\nping_interval: \"0s\"\nping_max: 0\nauthorization { user: a, password: b, timeout: 0 }",
    )
    .unwrap();
    assert_eq!(
        (o.max_payload, o.max_control_line, o.max_pending),
        (d.max_payload, d.max_control_line, d.max_pending)
    );
    assert_eq!((o.ping_interval, o.ping_max), (d.ping_interval, d.ping_max));
    assert_eq!(o.effective_auth_timeout(), d.auth_timeout);
    // Other values are taken as given.
    let o = opts("max_payload: 512\nping_max: 5\nping_interval: \"3s\"").unwrap();
    assert_eq!((o.max_payload, o.ping_max), (512, 5));
    assert_eq!(o.ping_interval, std::time::Duration::from_secs(3));
}

#[test]
fn jetstream_batch_limits() {
    let o = opts(
        "jetstream { limits { max_request_batch: 10, batch { max_msgs: 3, \
         max_inflight_per_stream: 2, max_inflight_total: 7, timeout: \"600ms\" } } }",
    )
    .unwrap();
    let l = o.jetstream.batch_limits;
    assert_eq!(
        (
            l.max_msgs,
            l.max_inflight_per_stream,
            l.max_inflight_total,
            l.timeout
        ),
        (3, 2, 7, std::time::Duration::from_millis(600))
    );
    // Zero keeps nats-server's default.
    let o = opts("jetstream { limits { batch { max_msgs: 0 } } }").unwrap();
    assert_eq!(o.jetstream.batch_limits.max_msgs, 1000);
    assert!(err("jetstream { limits { batch { bogus: 1 } } }").contains("bogus"));
    assert!(err("jetstream { limits { bogus: 1 } }").contains("bogus"));
    assert!(err("jetstream { limits { batch: 5 } }").contains("batch limits"));
}

/// A `tls {}` block naming the test certificates (`tests/data/tls`), plus `extra` keys.
fn tls_block(extra: &str) -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/tls");
    format!(
        "tls {{\n cert_file: \"{dir}/server-cert.pem\"\n key_file: \"{dir}/server-key.pem\"\n \
         ca_file: \"{dir}/ca.pem\"\n {extra}\n}}"
    )
}

#[test]
fn tls_block_keys() {
    let o = opts(&tls_block(
        "verify: true\ntimeout: 0.5\nmin_version: \"1.3\"",
    ))
    .unwrap();
    let t = o.tls.clone().expect("TLS configured");
    assert!(t.verify);
    assert_eq!(t.timeout, Duration::from_millis(500));
    assert_eq!(t.min_version, Some(crate::tls::TlsVersion::V1_3));
    assert!(!t.handshake_first);
    assert_eq!(o.effective_auth_timeout(), Duration::from_millis(1500));
    // `timeout` as a duration string; 0 is the default.
    let t = opts(&tls_block("timeout: \"3s\"")).unwrap().tls.unwrap();
    assert_eq!(t.timeout, Duration::from_secs(3));
    let t = opts(&tls_block("timeout: 0")).unwrap().tls.unwrap();
    assert_eq!(t.timeout, crate::tls::DEFAULT_TLS_TIMEOUT);
    // handshake_first: booleans, on/off, auto (50 ms fallback), a duration.
    for (v, first, fallback) in [
        ("true", true, None),
        ("\"on\"", true, None),
        ("\"off\"", false, None),
        ("\"auto\"", true, Some(Duration::from_millis(50))),
        ("\"300ms\"", true, Some(Duration::from_millis(300))),
    ] {
        let t = opts(&tls_block(&format!("handshake_first: {v}")))
            .unwrap()
            .tls
            .unwrap();
        assert_eq!(
            (t.handshake_first, t.first_fallback),
            (first, fallback),
            "{v}"
        );
    }
    let t = opts(&tls_block("verify_and_map: true"))
        .unwrap()
        .tls
        .unwrap();
    assert!(t.map && t.verify, "verify_and_map implies verify");
    let t = opts(&tls_block("first: true")).unwrap().tls.unwrap();
    assert!(t.handshake_first, "the `first` alias");
    let o = opts(&format!("{}\nallow_non_tls: true", tls_block(""))).unwrap();
    assert!(o.allow_non_tls);
}

#[test]
fn tls_block_errors() {
    assert!(
        err(&tls_block("bogus: 1")).contains("error parsing tls config, unknown field \"bogus\""),
        "{}",
        err(&tls_block("bogus: 1"))
    );
    assert!(err(&tls_block("verify: 1")).contains("expected 'verify' to be a boolean"));
    assert!(err(&tls_block("handshake_first: \"soon\"")).contains("is invalid"));
    assert!(err(&tls_block("min_version: \"1.1\"")).contains("unsupported TLS version"));
    assert!(err(&tls_block("cipher_suites: []")).contains("cannot be empty"));
    // Checks natrium does not make are refused, not ignored.
    for key in [
        "cert_store: \"WindowsCurrentUser\"",
        "pinned_certs: []",
        "ocsp_peer: true",
    ] {
        assert!(
            err(&tls_block(key)).contains("is not supported by natrium-server"),
            "{key}"
        );
    }
    // Files are read while parsing: a missing one is an error with its position.
    let e = err("tls {\n cert_file: \"/nonexistent/c.pem\"\n key_file: \"/nonexistent/k.pem\"\n}");
    assert!(
        e.contains("/nonexistent/c.pem") && e.starts_with("1:"),
        "{e}"
    );
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/tls");
    let e = err(&format!("tls {{ cert_file: \"{dir}/server-cert.pem\" }}"));
    assert!(e.contains("missing 'key_file'"), "{e}");
    // Suites and curves only warn: rustls' are all secure.
    let o = opts(&tls_block("cipher_suites: [\"TLS_AES_128_GCM_SHA256\"]")).unwrap();
    assert!(o.warnings.iter().any(|w| w.contains("cipher_suites")));
}

#[test]
fn websocket_block() {
    let o = opts(
        "websocket {\n listen: \"127.0.0.1:8080\"\n no_tls: true\n same_origin: true\n \
         allowed_origins: [\"https://app.example.com\", \"http://localhost:3000\"]\n \
         handshake_timeout: \"3s\"\n compression: true\n}",
    )
    .unwrap();
    let w = o.websocket.clone().expect("configured");
    assert_eq!((w.host.as_deref(), w.port), (Some("127.0.0.1"), 8080));
    assert!(w.no_tls && w.compression && w.origins.same_origin);
    assert_eq!(w.handshake_timeout, Some(Duration::from_secs(3)));
    assert_eq!(
        w.origins.allowed,
        vec![
            ("https".into(), "app.example.com".into(), "443".into()),
            ("http".into(), "localhost".into(), "3000".into()),
        ]
    );
    o.validate().unwrap();
    // The `ws` alias, and a block without a port configures nothing (as nats-server).
    assert!(
        opts("ws { port: 8081, no_tls: true }")
            .unwrap()
            .websocket
            .is_some()
    );
    assert!(
        opts("websocket { no_tls: true }")
            .unwrap()
            .websocket
            .is_none()
    );
    // TLS is required unless no_tls says otherwise.
    let o = opts("websocket { port: 8080 }").unwrap();
    assert_eq!(
        o.validate().unwrap_err(),
        "websocket requires TLS configuration"
    );
    let o = opts(&format!("websocket {{ port: 8080\n {} }}", tls_block(""))).unwrap();
    assert!(o.websocket.as_ref().unwrap().tls.is_some());
    o.validate().unwrap();
}

#[test]
fn websocket_block_errors_and_warnings() {
    assert!(err("websocket { port: 1, bogus: 2 }").contains("unknown field \"bogus\""));
    assert!(
        err("websocket { port: 1, allowed_origins: [\"ftp://x\"] }")
            .contains("unable to parse allowed origin")
    );
    // Replacing the users for WebSocket clients is refused, not ignored.
    assert!(
        err("websocket { port: 1, no_tls: true, authorization { user: a, password: b } }")
            .contains("not supported by natrium-server")
    );
    let o = opts("websocket { port: 1, no_tls: true, jwt_cookie: my_jwt }").unwrap();
    assert!(o.warnings.iter().any(|w| w.contains("jwt_cookie")));
    // Extra response headers, but none the handshake itself owns (nats-server's rule).
    let o = opts("websocket { port: 1, no_tls: true, headers { X-Frame-Options: DENY } }").unwrap();
    assert_eq!(
        o.websocket.as_ref().unwrap().headers,
        vec![("X-Frame-Options".to_string(), "DENY".to_string())]
    );
    o.validate().unwrap();
    for bad in ["Upgrade", "Sec-WebSocket-Protocol", "nats-no-masking"] {
        let o = opts(&format!(
            "websocket {{ port: 1, no_tls: true, headers {{ {bad}: x }} }}"
        ))
        .unwrap();
        assert!(
            o.validate().unwrap_err().contains("invalid header"),
            "{bad}"
        );
    }
}

#[test]
fn mappings_blocks() {
    let o = opts(
        "mappings { \"a.*\": \"b.$1\", w: [ {destination: x, weight: 40%}, {dest: y, weight: 10} ] }\n\
         accounts { A { users: [ {user: u, password: p} ], maps: { in: out } } }",
    )
    .unwrap();
    assert_eq!(o.mappings.len(), 2);
    assert_eq!(o.mappings[0].dests, vec![("b.$1".to_string(), 100)]);
    assert_eq!(
        o.mappings[1].dests,
        vec![("x".to_string(), 40), ("y".to_string(), 10)]
    );
    assert_eq!(o.accounts.accounts[0].mappings[0].from, "in");
    assert!(err("mappings { \"a b\": c }").contains("is not a valid subject"));
    assert!(
        err("mappings { x: [ {destination: a, weight: 70}, {destination: b, weight: 40} ] }")
            .contains("total weight needs to be <= 100")
    );
    assert!(opts("mappings { \"x.*\": \"y.{{partition(2,1)}}\" }").is_ok());
    assert!(err("mappings { \"x.*\": \"y.{{partition(2,3)}}\" }").contains("out of range"));
}
