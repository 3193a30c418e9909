//! `stream add` on a terminal asks for what is missing (driven through a
//! pseudo-terminal).

mod common;

use std::process::Command;

use common::{NATRIUM, Server};

#[test]
fn stream_add_prompts_for_missing_max_bytes() {
    let s = Server::natrium();
    let cfg = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(NATRIUM);
    cmd.args([
        "-s",
        &s.url,
        "stream",
        "add",
        "ASKED",
        "--subjects",
        "asked.>",
        "--storage",
        "file",
        "--retention",
        "limits",
        "--discard",
        "old",
        "--max-msgs",
        "-1",
        "--max-msgs-per-subject",
        "-1",
        "--max-age",
        "0",
        "--max-msg-size",
        "-1",
        "--dupe-window",
        "2m",
    ])
    .env("XDG_CONFIG_HOME", cfg.path())
    .env("TERM", "dumb")
    .env_remove("NATS_URL");
    let mut p = rexpect::session::spawn_command(cmd, Some(20_000)).expect("spawn in a pty");
    p.exp_string("Total Stream Size")
        .expect("asks for the total size");
    p.send_line("1M").expect("answer");
    p.exp_string("Stream ASKED was created").expect("created");
    p.exp_eof().expect("exits");

    let v = s.json(&["stream", "info", "ASKED"]);
    assert_eq!(v["config"]["max_bytes"], 1_048_576);
    assert_eq!(v["config"]["subjects"], serde_json::json!(["asked.>"]));
}

#[test]
fn stream_add_prompts_for_the_name() {
    let s = Server::natrium();
    let cfg = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(NATRIUM);
    cmd.args([
        "-s",
        &s.url,
        "stream",
        "add",
        "--defaults",
        "--subjects",
        "named.*",
    ])
    .env("XDG_CONFIG_HOME", cfg.path())
    .env("TERM", "dumb")
    .env_remove("NATS_URL");
    let mut p = rexpect::session::spawn_command(cmd, Some(20_000)).expect("spawn in a pty");
    p.exp_string("Stream Name").expect("asks for the name");
    p.send_line("NAMED").expect("answer");
    p.exp_string("Stream NAMED was created").expect("created");
    p.exp_eof().expect("exits");
    assert_eq!(
        s.json(&["stream", "info", "NAMED"])["config"]["name"],
        "NAMED"
    );
}

#[test]
fn consumer_add_prompts_for_policies() {
    let s = Server::natrium();
    s.ok(&["stream", "add", "CP", "--subjects", "cp", "--defaults"]);
    let cfg = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(NATRIUM);
    cmd.args(["-s", &s.url, "consumer", "add", "CP", "--ack", "none"])
        .env("XDG_CONFIG_HOME", cfg.path())
        .env("TERM", "dumb")
        .env_remove("NATS_URL");
    let mut p = rexpect::session::spawn_command(cmd, Some(20_000)).expect("spawn in a pty");
    p.exp_string("Consumer name").expect("asks for the name");
    p.send_line("ASKED").expect("answer");
    p.exp_string("Start policy")
        .expect("asks for the start policy");
    // Second choice: "new".
    p.send("\x1b[B").expect("arrow down");
    p.send_line("").expect("choose");
    p.exp_string("Information for Consumer CP > ASKED")
        .expect("created");
    p.exp_eof().expect("exits");
    let v = s.json(&["consumer", "info", "CP", "ASKED"]);
    assert_eq!(v["config"]["deliver_policy"], "new");
    // Given on the command line, not asked.
    assert_eq!(v["config"]["ack_policy"], "none");
}
