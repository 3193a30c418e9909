//! `natrium stream …`, `consumer …` and `account info` against
//! natrium-server and (when installed) nats-server, with `--json` output
//! parsed and checked, and tables checked by their key lines.

mod common;

use std::time::Duration;

use base64::Engine;
use common::{Server, assert_one_line_error};
use serde_json::Value;

/// Polls `f` until it returns true (stores are asynchronous on nats-server).
fn eventually(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..100 {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn stream_lifecycle() {
    for s in Server::both("stream_lifecycle") {
        let k = s.kind;
        let v = s.json(&[
            "stream",
            "add",
            "ORDERS",
            "--subjects",
            "ORDERS.*",
            "--defaults",
        ]);
        assert_eq!(v["config"]["name"], "ORDERS", "{k:?}");
        assert_eq!(v["config"]["subjects"], serde_json::json!(["ORDERS.*"]));
        assert_eq!(v["state"]["messages"], 0);

        // Text output of add/info.
        let info = s.ok(&["stream", "info", "ORDERS"]);
        assert!(info.contains("Information for Stream ORDERS"), "{info}");
        assert!(info.contains("Subjects: ORDERS.*"), "{info}");
        assert!(info.contains("Retention: File - Limits"), "{info}");

        s.ok(&[
            "pub",
            "ORDERS.new",
            "order {{Count}}",
            "--count",
            "5",
            "-H",
            "Src:test",
            "-q",
        ]);
        assert!(
            eventually(|| s.json(&["stream", "info", "ORDERS"])["state"]["messages"] == 5),
            "{k:?}: 5 messages stored"
        );

        // ls: JSON, names, table.
        let ls = s.json(&["stream", "ls"]);
        let arr = ls.as_array().expect("array");
        assert_eq!(arr.len(), 1);
        assert_eq!(arr[0]["config"]["name"], "ORDERS");
        assert_eq!(s.ok(&["stream", "ls", "--names"]), "ORDERS\n");
        let table = s.ok(&["stream", "ls"]);
        let header = table.lines().find(|l| l.contains("Name")).expect("header");
        for col in ["Description", "Created", "Messages", "Size", "Last Message"] {
            assert!(header.contains(col), "{table}");
        }
        let row = table.lines().find(|l| l.contains("ORDERS")).expect("row");
        assert!(row.contains(" 5 "), "{table}");

        // get: JSON (API answer), raw, last-for, headers in text.
        let g = s.json(&["stream", "get", "ORDERS", "1"]);
        assert_eq!(g["message"]["subject"], "ORDERS.new");
        assert_eq!(g["message"]["seq"], 1);
        let data = base64::engine::general_purpose::STANDARD
            .decode(g["message"]["data"].as_str().expect("data"))
            .expect("base64");
        assert_eq!(data, b"order 1");
        assert_eq!(
            s.ok(&["stream", "get", "ORDERS", "3", "--raw"]),
            "order 3\n"
        );
        let last = s.json(&["stream", "get", "ORDERS", "--last-for", "ORDERS.new"]);
        assert_eq!(last["message"]["seq"], 5);
        let text = s.ok(&["stream", "get", "ORDERS", "2"]);
        assert!(text.contains("Item: ORDERS#2"), "{text}");
        assert!(text.contains("Src: test"), "{text}");

        // view.
        let lines: Vec<Value> = s
            .ok(&["stream", "view", "ORDERS", "--count", "2", "--json"])
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["seq"], 1);
        assert_eq!(lines[1]["seq"], 2);
        assert_eq!(
            s.ok(&["stream", "view", "ORDERS", "--since", "4", "--raw"]),
            "order 4\norder 5\n"
        );

        // rmm, then get of the deleted message fails with the server's words.
        s.ok(&["stream", "rmm", "ORDERS", "2", "-f"]);
        let (code, err) = s.fails(&["stream", "get", "ORDERS", "2"]);
        assert_eq!(code, 1);
        assert_one_line_error(&err);
        assert!(err.contains("err_code 10037"), "{k:?}: {err}");

        // edit.
        let e = s.json(&["stream", "edit", "ORDERS", "--max-msgs", "100", "-f"]);
        assert_eq!(e["config"]["max_msgs"], 100);
        assert_eq!(e["config"]["subjects"], serde_json::json!(["ORDERS.*"]));

        // purge --keep: 4 messages left, keep 2.
        let p = s.json(&["stream", "purge", "ORDERS", "--keep", "2", "-f"]);
        assert_eq!(p["success"], true);
        assert_eq!(p["purged"], 2);

        let r = s.json(&["stream", "report"]);
        assert_eq!(r[0]["stream"], "ORDERS");
        assert_eq!(r[0]["messages"], 2);
        let rt = s.ok(&["stream", "report"]);
        assert!(rt.contains("Stream Report"), "{rt}");

        // rm needs -f off a terminal.
        let (code, err) = s.fails(&["stream", "rm", "ORDERS"]);
        assert_eq!(code, 2);
        assert_one_line_error(&err);
        assert!(err.contains("add -f"), "{err}");
        s.ok(&["stream", "rm", "ORDERS", "-f"]);
        let (code, err) = s.fails(&["stream", "info", "ORDERS"]);
        assert_eq!(code, 1);
        assert_one_line_error(&err);
        assert!(err.contains("stream not found"), "{err}");
        assert!(err.contains("err_code 10059"), "{err}");
    }
}

#[test]
fn stream_add_from_file_and_missing_values() {
    for s in Server::both("stream_add_from_file_and_missing_values") {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("s.json");
        std::fs::write(
            &cfg,
            r#"{"name":"CFG","subjects":["cfg.>"],"storage":"memory","max_msgs":10}"#,
        )
        .expect("write");
        let v = s.json(&[
            "stream",
            "add",
            "--config",
            cfg.to_str().expect("utf8"),
            "--max-age",
            "1h",
        ]);
        assert_eq!(v["config"]["name"], "CFG");
        assert_eq!(v["config"]["storage"], "memory");
        assert_eq!(v["config"]["max_msgs"], 10);
        assert_eq!(v["config"]["max_age"], 3_600_000_000_000u64);

        // Every-field flags reach the server's configuration.
        let v = s.json(&[
            "stream",
            "add",
            "FULL",
            "--subjects",
            "full.a,full.b",
            "--defaults",
            "--storage",
            "memory",
            "--retention",
            "workqueue",
            "--discard",
            "new",
            "--max-msgs",
            "1000",
            "--max-bytes",
            "1M",
            "--max-msg-size",
            "1K",
            "--max-msgs-per-subject",
            "50",
            "--dupe-window",
            "30s",
            "--description",
            "all flags",
            "--allow-rollup",
            "--deny-delete",
            "--metadata",
            "team=ops",
        ]);
        let c = &v["config"];
        assert_eq!(c["subjects"], serde_json::json!(["full.a", "full.b"]));
        assert_eq!(c["storage"], "memory");
        assert_eq!(c["retention"], "workqueue");
        assert_eq!(c["discard"], "new");
        assert_eq!(c["max_msgs"], 1000);
        assert_eq!(c["max_bytes"], 1_048_576);
        assert_eq!(c["max_msg_size"], 1024);
        assert_eq!(c["max_msgs_per_subject"], 50);
        assert_eq!(c["duplicate_window"], 30_000_000_000u64);
        assert_eq!(c["description"], "all flags");
        assert_eq!(c["allow_rollup_hdrs"], true);
        assert_eq!(c["deny_delete"], true);
        assert_eq!(c["deny_purge"], false);
        assert_eq!(c["metadata"]["team"], "ops");

        // Off a terminal, missing settings are one clear line naming them.
        let (code, err) = s.fails(&["stream", "add", "NOPE", "--subjects", "n"]);
        assert_eq!(code, 2);
        assert_one_line_error(&err);
        assert!(err.contains("--max-bytes"), "{err}");
        assert!(err.contains("--defaults"), "{err}");

        // The server's refusal comes back with its code.
        let (code, err) = s.fails(&["stream", "add", "CFG2", "--subjects", "cfg.x", "--defaults"]);
        assert_eq!(code, 1);
        assert_one_line_error(&err);
        assert!(err.contains("err_code 10065"), "{:?}: {err}", s.kind);
    }
}

#[test]
fn purge_by_subject_and_sequence() {
    for s in Server::both("purge_by_subject_and_sequence") {
        s.ok(&["stream", "add", "P", "--subjects", "p.*", "--defaults"]);
        s.ok(&["pub", "p.a", "a", "--count", "3", "-q"]);
        s.ok(&["pub", "p.b", "b", "--count", "2", "-q"]);
        assert!(eventually(
            || s.json(&["stream", "info", "P"])["state"]["messages"] == 5
        ));
        let r = s.json(&["stream", "purge", "P", "--subject", "p.a", "-f"]);
        assert_eq!(r["purged"], 3, "{:?}", s.kind);
        // Below sequence 5: the p.b at 4 goes, the one at 5 stays.
        let r = s.json(&["stream", "purge", "P", "--seq", "5", "-f"]);
        assert_eq!(r["purged"], 1, "{:?}", s.kind);
        let i = s.json(&["stream", "info", "P"]);
        assert_eq!(i["state"]["messages"], 1);
        assert_eq!(i["state"]["first_seq"], 5);
        let text = s.ok(&["stream", "purge", "P", "-f"]);
        assert_eq!(text, "Purged 1 messages from P\n");
    }
}

#[test]
fn consumer_lifecycle() {
    for s in Server::both("consumer_lifecycle") {
        let k = s.kind;
        s.ok(&[
            "stream",
            "add",
            "JOBS",
            "--subjects",
            "jobs.*",
            "--defaults",
        ]);
        s.ok(&["pub", "jobs.a", "job {{Count}}", "--count", "3", "-q"]);
        assert!(eventually(|| s.json(&["stream", "info", "JOBS"])["state"]
            ["messages"]
            == 3));

        let c = s.json(&["consumer", "add", "JOBS", "C1", "--ack-wait", "30s"]);
        assert_eq!(c["name"], "C1", "{k:?}");
        assert_eq!(c["config"]["durable_name"], "C1");
        assert_eq!(c["config"]["ack_policy"], "explicit");
        assert_eq!(c["config"]["ack_wait"], 30_000_000_000u64);
        assert_eq!(c["num_pending"], 3);

        let ls = s.json(&["consumer", "ls", "JOBS"]);
        assert_eq!(ls.as_array().expect("array").len(), 1);
        assert_eq!(s.ok(&["consumer", "ls", "JOBS", "--names"]), "C1\n");
        let table = s.ok(&["consumer", "ls", "JOBS"]);
        assert!(table.contains("Consumers for Stream JOBS"), "{table}");
        assert!(table.lines().any(|l| l.contains("C1")), "{table}");

        // next with ack: two messages, then nothing pending for them.
        let got: Vec<Value> = s
            .ok(&["consumer", "next", "JOBS", "C1", "--count", "2", "--json"])
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(got.len(), 2, "{k:?}");
        assert_eq!(got[0]["data"], "job 1");
        assert_eq!(got[1]["data"], "job 2");
        assert_eq!(got[1]["stream_seq"], 2);
        assert!(eventually(|| {
            let i = s.json(&["consumer", "info", "JOBS", "C1"]);
            i["ack_floor"]["stream_seq"] == 2 && i["num_ack_pending"] == 0
        }));

        // next without ack leaves one pending.
        assert_eq!(
            s.ok(&["consumer", "next", "JOBS", "C1", "--no-ack", "--raw"]),
            "job 3\n"
        );
        let i = s.json(&["consumer", "info", "JOBS", "C1"]);
        assert_eq!(i["num_ack_pending"], 1);
        let text = s.ok(&["consumer", "info", "JOBS", "C1"]);
        assert!(
            text.contains("Information for Consumer JOBS > C1"),
            "{text}"
        );
        assert!(text.contains("Outstanding Acks: 1"), "{text}");

        // The report table, as a snapshot (every column is deterministic).
        let expected = "\
Consumer report for JOBS with 1 consumers
╭──────────┬──────┬────────────┬──────────┬─────────────┬─────────────┬─────────────┬─────────╮
│ Consumer ┆ Mode ┆ Ack Policy ┆ Ack Wait ┆ Ack Pending ┆ Redelivered ┆ Unprocessed ┆ Waiting │
╞══════════╪══════╪════════════╪══════════╪═════════════╪═════════════╪═════════════╪═════════╡
│ C1       ┆ Pull ┆ explicit   ┆ 30s      ┆ 1           ┆ 0           ┆ 0           ┆ 0       │
╰──────────┴──────┴────────────┴──────────┴─────────────┴─────────────┴─────────────┴─────────╯
";
        assert_eq!(s.ok(&["consumer", "report", "JOBS"]), expected, "{k:?}");

        // Nothing left: a clear failure.
        let (code, err) = s.fails(&["consumer", "next", "JOBS", "C1", "--wait", "300ms"]);
        assert_eq!(code, 1);
        assert_one_line_error(&err);

        let r = s.json(&["consumer", "report", "JOBS"]);
        assert_eq!(r[0]["name"], "C1");
        assert_eq!(r[0]["mode"], "Pull");
        assert_eq!(r[0]["num_ack_pending"], 1);

        let e = s.json(&["consumer", "edit", "JOBS", "C1", "--description", "changed"]);
        assert_eq!(e["config"]["description"], "changed");

        let f = s.json(&[
            "consumer", "add", "JOBS", "C2", "--filter", "jobs.b", "--ack", "none",
        ]);
        assert_eq!(f["config"]["filter_subject"], "jobs.b");
        assert_eq!(f["config"]["ack_policy"], "none");
        assert_eq!(f["num_pending"], 0);

        s.ok(&["consumer", "rm", "JOBS", "C1", "-f"]);
        let (code, err) = s.fails(&["consumer", "info", "JOBS", "C1"]);
        assert_eq!(code, 1);
        assert_one_line_error(&err);
        assert!(err.contains("err_code 10014"), "{k:?}: {err}");
    }
}

#[test]
fn account_info_shows_usage_and_limits() {
    for s in Server::both("account_info_shows_usage_and_limits") {
        s.ok(&["stream", "add", "A1", "--subjects", "a1", "--defaults"]);
        let v = s.json(&["account", "info"]);
        assert_eq!(v["streams"], 1, "{:?}", s.kind);
        assert!(v["limits"].is_object());
        let text = s.ok(&["account", "info"]);
        assert!(text.contains("Account Usage:"), "{text}");
        assert!(text.contains("Streams: 1 of Unlimited"), "{text}");
        assert!(text.contains("Connected URL: nats://127.0.0.1:"), "{text}");

        // Reports: our own connection is among the account's.
        let conns = s.json(&["account", "report", "connections"]);
        let names: Vec<&str> = conns
            .as_array()
            .expect("array")
            .iter()
            .flat_map(|a| {
                a["data"]["connections"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|c| c["name"].as_str().map(|_| "named"))
            .collect();
        assert!(!names.is_empty(), "{:?}: {conns}", s.kind);
        let table = s.ok(&["account", "report", "connections"]);
        assert!(table.lines().any(|l| l.contains("natrium")), "{table}");
        let stats = s.json(&["account", "report", "statistics"]);
        let acc = &stats[0]["data"]["account_statz"][0];
        assert!(acc["conns"].as_u64().expect("conns") >= 1, "{stats}");
        let table = s.ok(&["account", "report", "statistics"]);
        assert!(table.contains("Account Statistics"), "{table}");
    }
}

/// `stream subjects`, `seal` and `copy`, and `consumer pause`, `resume`, `unpin` and
/// `copy`, shaped like the nats CLI's commands of those names.
#[test]
fn stream_and_consumer_maintenance_commands() {
    for s in Server::both("stream_and_consumer_maintenance") {
        let k = s.kind;
        s.ok(&["stream", "add", "M", "--subjects", "m.>", "--defaults"]);
        s.ok(&["pub", "m.a", "x", "--count", "3", "-q"]);
        s.ok(&["pub", "m.b.1", "x", "-q"]);
        s.ok(&["pub", "m.b.2", "x", "--count", "2", "-q"]);
        assert!(eventually(
            || s.json(&["stream", "info", "M"])["state"]["messages"] == 6
        ));

        // subjects: counts, filter, order.
        let all = s.json(&["stream", "subjects", "M"]);
        assert_eq!(
            all,
            serde_json::json!({"m.a": 3, "m.b.1": 1, "m.b.2": 2}),
            "{k:?}"
        );
        assert_eq!(
            s.ok(&["stream", "subjects", "M", "--names"]),
            "m.a\nm.b.2\nm.b.1\n"
        );
        assert_eq!(
            s.ok(&[
                "stream", "subjects", "M", "m.b.*", "--names", "--sort", "name", "-R"
            ]),
            "m.b.2\nm.b.1\n"
        );
        let table = s.ok(&["stream", "subjects", "M"]);
        assert!(table.contains("3 Subjects in stream M"), "{k:?}: {table}");
        assert_eq!(
            s.ok(&["stream", "subjects", "M", "x.>"]),
            "No subjects found matching x.>\n"
        );

        // copy: the configuration with a new name; flags change it.
        let c = s.json(&[
            "stream",
            "copy",
            "M",
            "M2",
            "--subjects",
            "m2.>",
            "--max-msgs",
            "10",
        ]);
        assert_eq!(c["config"]["name"], "M2", "{k:?}");
        assert_eq!(c["config"]["subjects"], serde_json::json!(["m2.>"]));
        assert_eq!(c["config"]["max_msgs"], 10);
        assert_eq!(c["state"]["messages"], 0);
        // Without new subjects the copy overlaps its source: the server's own error.
        let (code, err) = s.fails(&["stream", "copy", "M", "M3"]);
        assert_eq!(code, 1);
        assert!(err.contains("err_code 10065"), "{k:?}: {err}");

        // consumer copy, pause, resume.
        s.ok(&[
            "consumer",
            "add",
            "M",
            "C1",
            "--defaults",
            "--filter",
            "m.a",
        ]);
        let cp = s.json(&["consumer", "copy", "M", "C1", "C2", "--filter", "m.b.>"]);
        assert_eq!(cp["name"], "C2", "{k:?}");
        assert_eq!(cp["config"]["durable_name"], "C2");
        assert_eq!(cp["config"]["filter_subject"], "m.b.>");
        assert_eq!(cp["num_pending"], 3);
        let p = s.json(&["consumer", "pause", "M", "C2", "1h", "-f"]);
        assert_eq!(p["paused"], true, "{k:?}");
        let left = p["pause_remaining"].as_u64().expect("remaining");
        assert!(
            left > 3_590_000_000_000 && left <= 3_600_000_000_000,
            "{left}"
        );
        let info = s.json(&["consumer", "info", "M", "C2"]);
        assert_eq!(info["paused"], true);
        let text = s.ok(&["consumer", "pause", "M", "C2", "2030-01-02 03:04:05", "-f"]);
        assert!(
            text.starts_with("Paused M > C2 until 2030-01-02T03:04:05"),
            "{k:?}: {text}"
        );
        let (code, err) = s.fails(&["consumer", "pause", "M", "C2", "2001-01-01T00:00:00Z", "-f"]);
        assert_eq!(code, 1);
        assert!(err.contains("did not pause"), "{k:?}: {err}");
        let (_, err) = s.fails(&["consumer", "pause", "M", "C2", "soon", "-f"]);
        assert!(err.contains("expected a duration"), "{err}");
        assert_eq!(
            s.ok(&["consumer", "resume", "M", "C2", "-f"]),
            "Consumer M > C2 was resumed\n"
        );
        assert_eq!(
            s.json(&["consumer", "info", "M", "C2"])["paused"],
            Value::Null
        );

        // unpin: a pinned-client group.
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("pinned.json");
        std::fs::write(
            &cfg,
            r#"{"durable_name":"P","ack_policy":"explicit","priority_groups":["G"],"priority_policy":"pinned_client"}"#,
        )
        .expect("write");
        s.ok(&[
            "consumer",
            "add",
            "M",
            "P",
            "--config",
            cfg.to_str().expect("utf8"),
            "--defaults",
        ]);
        assert_eq!(
            s.ok(&["consumer", "unpin", "M", "P", "G", "-f"]),
            "Unpinned the client of group G on M > P\n",
            "{k:?}"
        );
        let (code, err) = s.fails(&["consumer", "unpin", "M", "P", "NOPE", "-f"]);
        assert_eq!(code, 1, "{k:?}");
        assert_one_line_error(&err);

        // seal: no more messages.
        let sealed = s.json(&["stream", "seal", "M", "-f"]);
        assert_eq!(sealed["config"]["sealed"], true, "{k:?}");
        let (code, err) = s.fails(&["stream", "purge", "M", "-f"]);
        assert_eq!(code, 1);
        assert!(err.contains("err_code 10109"), "{k:?}: {err}");
    }
}

/// `pub -J` waits for the PubAck; `sub` with JetStream flags reads the stream through an
/// ordered consumer (`--all`, `--last`, `--start-sequence`, `--new`, `-T`).
#[test]
fn pub_jetstream_and_sub_from_a_stream() {
    for s in Server::both("pub_jetstream_and_sub_from_a_stream") {
        let k = s.kind;
        s.ok(&["stream", "add", "S", "--subjects", "s.>", "--defaults"]);
        assert_eq!(
            s.ok(&["pub", "-J", "s.a", "one"]),
            ">>> Stored in Stream: S Sequence: 1\n",
            "{k:?}"
        );
        let ack: Value =
            serde_json::from_str(s.ok(&["pub", "--jetstream", "s.b", "two", "--json"]).trim())
                .expect("json");
        assert_eq!(ack["stream"], "S", "{k:?}");
        assert_eq!(ack["seq"], 2);
        let dup = s.ok(&[
            "pub",
            "-J",
            "s.a",
            "three",
            "-H",
            "Nats-Msg-Id:m1",
            "--count",
            "2",
        ]);
        assert_eq!(
            dup,
            ">>> Stored in Stream: S Sequence: 3\n>>> Stored in Stream: S Sequence: 3 Duplicate: true\n",
            "{k:?}"
        );
        let (code, err) = s.fails(&["pub", "-J", "nowhere", "x"]);
        assert_eq!(code, 1);
        assert_one_line_error(&err);
        assert!(err.contains("no stream takes the subject"), "{k:?}: {err}");

        let all: Vec<Value> = s
            .ok(&["sub", "s.>", "--all", "-T", "--json"])
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        let seqs: Vec<u64> = all
            .iter()
            .map(|m| m["seq"].as_u64().expect("seq"))
            .collect();
        assert_eq!(seqs, [1, 2, 3], "{k:?}");
        assert_eq!(all[2]["pending"], 0);
        assert_eq!(all[1]["data"], "two");
        assert_eq!(all[0]["stream"], "S");
        assert_eq!(
            s.ok(&["sub", "s.a", "--last", "-T", "--raw"]),
            "three\n",
            "{k:?}"
        );
        assert_eq!(
            s.ok(&["sub", "s.>", "--start-sequence", "2", "-T", "--raw"]),
            "two\nthree\n"
        );
        let text = s.ok(&["sub", "s.b", "--stream", "S", "--all", "-T"]);
        assert!(
            text.starts_with("[#1] Received JetStream message: stream: S seq: 2 / pending: 0 / subject: s.b / time: "),
            "{k:?}: {text}"
        );
        // Nothing new: -T ends at once.
        assert_eq!(s.ok(&["sub", "s.>", "--new", "-T"]), "", "{k:?}");
        let (code, err) = s.fails(&["sub", "t.x", "--all", "-T"]);
        assert_eq!(code, 1);
        assert!(err.contains("no stream takes it"), "{k:?}: {err}");
    }
}
