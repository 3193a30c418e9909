//! Named contexts, NATS_URL, shell completions and man pages.

mod common;

use common::{Server, assert_one_line_error, natrium};
use serde_json::Value;

#[test]
fn contexts_select_and_override() {
    let s = Server::natrium();
    let cfg = tempfile::tempdir().expect("tempdir");
    let home = cfg.path().to_str().expect("utf8");
    let env = [("XDG_CONFIG_HOME", home)];
    let ok = |args: &[&str], env: &[(&str, &str)]| {
        let o = natrium(None, args, env);
        common::assert_success(&o, args, s.kind);
        String::from_utf8_lossy(&o.stdout).into_owned()
    };

    ok(
        &[
            "context",
            "add",
            "local",
            "-s",
            &s.url,
            "--description",
            "test server",
            "--select",
        ],
        &env,
    );
    ok(
        &["context", "add", "dead", "-s", "nats://127.0.0.1:1"],
        &env,
    );
    assert!(cfg.path().join("natrium/context/local.json").is_file());

    let ls: Value = serde_json::from_str(&ok(&["context", "ls", "--json"], &env)).expect("json");
    let arr = ls.as_array().expect("array");
    assert_eq!(arr.len(), 2);
    let local = arr.iter().find(|c| c["name"] == "local").expect("local");
    assert_eq!(local["selected"], true);
    assert_eq!(local["url"], s.url.as_str());
    let table = ok(&["context", "ls"], &env);
    assert!(
        table
            .lines()
            .any(|l| l.contains("local*") && l.contains("test server")),
        "{table}"
    );

    // The selected context is used without -s.
    let out = ok(
        &[
            "server",
            "check",
            "connection",
            "--connect-warn",
            "5s",
            "--connect-critical",
            "10s",
        ],
        &env,
    );
    assert!(out.contains(&s.url), "{out}");

    // --context picks another; it is unreachable.
    let o = natrium(
        None,
        &["--context", "dead", "stream", "ls", "--timeout", "2s"],
        &env,
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_one_line_error(&err);
    assert!(err.contains("127.0.0.1:1"), "{err}");

    // NATS_URL beats the selected context.
    ok(&["context", "select", "dead"], &env);
    let with_url = [("XDG_CONFIG_HOME", home), ("NATS_URL", s.url.as_str())];
    let out = ok(
        &[
            "server",
            "check",
            "connection",
            "--connect-warn",
            "5s",
            "--connect-critical",
            "10s",
        ],
        &with_url,
    );
    assert!(out.starts_with("CONNECTION OK"), "{out}");

    // Unknown contexts are one clear line.
    let o = natrium(None, &["context", "select", "nope"], &env);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_one_line_error(&err);
    assert!(err.contains("unknown context \"nope\""), "{err}");

    ok(&["context", "rm", "dead", "-f"], &env);
    let ls: Value = serde_json::from_str(&ok(&["context", "ls", "--json"], &env)).expect("json");
    assert_eq!(ls.as_array().expect("array").len(), 1);
    // The removed context was selected; nothing is selected now.
    assert_eq!(ls[0]["selected"], false);
}

#[test]
fn completions_and_man_pages() {
    let bash = natrium(None, &["completions", "bash"], &[]);
    assert!(bash.status.success());
    let text = String::from_utf8_lossy(&bash.stdout);
    assert!(text.contains("_natrium()"), "bash completion");
    assert!(text.contains("stream"), "bash completion lists subcommands");
    let zsh = natrium(None, &["completions", "zsh"], &[]);
    assert!(String::from_utf8_lossy(&zsh.stdout).starts_with("#compdef natrium"));
    let fish = natrium(None, &["completions", "fish"], &[]);
    assert!(String::from_utf8_lossy(&fish.stdout).contains("complete -c natrium"));
    let o = natrium(None, &["completions", "tcsh"], &[]);
    assert_eq!(o.status.code(), Some(2));

    let dir = tempfile::tempdir().expect("tempdir");
    let mandir = dir.path().join("man1");
    let o = natrium(None, &["man", mandir.to_str().expect("utf8")], &[]);
    assert!(o.status.success());
    let root = std::fs::read_to_string(mandir.join("natrium.1")).expect("natrium.1");
    assert!(
        root.contains(".TH natrium 1"),
        "{}",
        &root[..200.min(root.len())]
    );
    let add =
        std::fs::read_to_string(mandir.join("natrium-stream-add.1")).expect("stream add page");
    assert!(
        add.contains("max\\-bytes"),
        "stream add page documents --max-bytes"
    );
}
