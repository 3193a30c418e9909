//! `natrium kv …` and `natrium object …` against natrium-server and (when
//! installed) nats-server.

mod common;

use common::{Server, assert_one_line_error};
use serde_json::Value;

#[test]
fn kv_lifecycle() {
    for s in Server::both("kv_lifecycle") {
        let k = s.kind;
        let v = s.json(&["kv", "add", "CFG", "--history", "5"]);
        assert_eq!(v["config"]["name"], "KV_CFG", "{k:?}");
        assert_eq!(v["config"]["max_msgs_per_subject"], 5);

        assert_eq!(s.ok(&["kv", "put", "CFG", "a", "one"]), "one\n");
        let p = s.json(&["kv", "put", "CFG", "a", "two"]);
        assert_eq!(p["revision"], 2);
        s.ok(&["kv", "put", "CFG", "b", "bee"]);

        let g = s.json(&["kv", "get", "CFG", "a"]);
        assert_eq!(g["value"], "two");
        assert_eq!(g["revision"], 2);
        assert_eq!(g["operation"], "PUT");
        assert_eq!(s.ok(&["kv", "get", "CFG", "a", "--raw"]), "two\n");
        assert_eq!(
            s.ok(&["kv", "get", "CFG", "a", "--revision", "1", "--raw"]),
            "one\n"
        );
        let text = s.ok(&["kv", "get", "CFG", "a"]);
        assert!(text.starts_with("CFG > a revision: 2 created @ "), "{text}");

        let h = s.json(&["kv", "history", "CFG", "a"]);
        let vals: Vec<&str> = h
            .as_array()
            .expect("array")
            .iter()
            .map(|e| e["value"].as_str().expect("value"))
            .collect();
        assert_eq!(vals, ["one", "two"]);
        let ht = s.ok(&["kv", "history", "CFG", "a"]);
        assert!(ht.contains("History for CFG > a"), "{ht}");

        assert_eq!(s.json(&["kv", "ls", "CFG"]), serde_json::json!(["a", "b"]));
        let buckets = s.json(&["kv", "ls"]);
        assert_eq!(buckets[0]["bucket"], "CFG");
        let table = s.ok(&["kv", "ls"]);
        assert!(table.lines().any(|l| l.contains("CFG")), "{table}");

        // watch delivers the current values first.
        let w: Vec<Value> = s
            .ok(&["kv", "watch", "CFG", "--count", "2", "--json"])
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(w.len(), 2);
        assert_eq!(w[0]["key"], "a");
        assert_eq!(w[0]["value"], "two");
        assert_eq!(w[1]["key"], "b");

        s.ok(&["kv", "del", "CFG", "a", "-f"]);
        let (code, err) = s.fails(&["kv", "get", "CFG", "a"]);
        assert_eq!(code, 1);
        assert_one_line_error(&err);
        assert!(err.contains("key not found"), "{err}");
        s.ok(&["kv", "purge", "CFG", "b", "-f"]);
        assert_eq!(s.json(&["kv", "ls", "CFG"]), serde_json::json!([]));

        s.ok(&["kv", "rm", "CFG", "-f"]);
        let (code, err) = s.fails(&["kv", "info", "CFG"]);
        assert_eq!(code, 1);
        assert_one_line_error(&err);
    }
}

/// `kv create`, `update`, `revert`, `compact`, `edit` and `del BUCKET`, shaped like the
/// nats CLI's commands of those names.
#[test]
fn kv_conditional_writes_revert_compact_edit() {
    for s in Server::both("kv_conditional") {
        let k = s.kind;
        s.ok(&["kv", "add", "C", "--history", "5"]);

        // create: only for a new key, or one whose last operation was a delete.
        let c = s.json(&["kv", "create", "C", "a", "one"]);
        assert_eq!(c["revision"], 1, "{k:?}");
        let (code, err) = s.fails(&["kv", "create", "C", "a", "again"]);
        assert_eq!(code, 1, "{k:?}");
        assert_one_line_error(&err);
        assert!(err.contains("the key exists"), "{k:?}: {err}");

        // update: only from the stated revision.
        assert_eq!(s.ok(&["kv", "update", "C", "a", "two", "1"]), "two\n");
        let (code, err) = s.fails(&["kv", "update", "C", "a", "three", "1"]);
        assert_eq!(code, 1);
        assert!(err.contains("no longer at revision 1"), "{k:?}: {err}");
        assert_eq!(s.ok(&["kv", "get", "C", "a", "--raw"]), "two\n");

        // revert: the old value comes back as a new revision; history is kept.
        let r = s.json(&["kv", "revert", "C", "a", "1", "-f"]);
        assert_eq!(r["revision"], 3, "{k:?}");
        assert_eq!(s.ok(&["kv", "get", "C", "a", "--raw"]), "one\n");
        let table = s.ok(&["kv", "revert", "C", "a", "2", "-f"]);
        assert!(table.contains("History for C > a"), "{k:?}: {table}");
        assert_eq!(s.ok(&["kv", "get", "C", "a", "--raw"]), "two\n");
        let (_, err) = s.fails(&["kv", "revert", "C", "a", "99", "-f"]);
        assert!(err.contains("revision 99 not found"), "{k:?}: {err}");

        // a deleted key may be created again.
        s.ok(&["kv", "put", "C", "b", "bee"]);
        s.ok(&["kv", "del", "C", "b", "-f"]);
        assert_eq!(s.json(&["kv", "create", "C", "b", "new"])["revision"], 7);
        s.ok(&["kv", "del", "C", "b", "-f"]);

        // compact: the deleted key's history goes, its recent marker stays; a and its
        // 4 revisions are untouched.
        let before = s.json(&["kv", "info", "C"]);
        assert_eq!(before["state"]["messages"], 8, "{k:?}: {before}");
        let cmp = s.json(&["kv", "compact", "C", "-f"]);
        assert_eq!(cmp["purged_keys"], 1, "{k:?}");
        assert_eq!(cmp["markers_kept"], 1);
        let after = s.json(&["kv", "info", "C"]);
        assert_eq!(after["state"]["messages"], 5, "{k:?}: {after}");
        let h = s.json(&["kv", "history", "C", "b"]);
        let ops: Vec<&str> = h
            .as_array()
            .expect("array")
            .iter()
            .map(|e| e["operation"].as_str().expect("op"))
            .collect();
        assert_eq!(ops, ["DEL"], "{k:?}");
        assert_eq!(
            s.json(&["kv", "history", "C", "a"])
                .as_array()
                .map(Vec::len),
            Some(4)
        );

        // edit: only the settings given change.
        let e = s.json(&[
            "kv",
            "edit",
            "C",
            "--history",
            "2",
            "--ttl",
            "1m",
            "--description",
            "edited",
        ]);
        assert_eq!(e["config"]["max_msgs_per_subject"], 2, "{k:?}");
        assert_eq!(e["config"]["max_age"], 60_000_000_000i64);
        assert_eq!(e["config"]["duplicate_window"], 60_000_000_000i64);
        assert_eq!(e["config"]["description"], "edited");
        assert_eq!(e["config"]["max_msg_size"], -1);
        let (_, err) = s.fails(&["kv", "edit", "C", "--history", "65"]);
        assert!(err.contains("history must be between 1 and 64"), "{err}");

        // del with no key deletes the bucket (as `nats kv del BUCKET`).
        s.ok(&["kv", "del", "C", "-f"]);
        let (code, _) = s.fails(&["kv", "info", "C"]);
        assert_eq!(code, 1, "{k:?}");
    }
}

#[test]
fn object_lifecycle() {
    for s in Server::both("object_lifecycle") {
        let k = s.kind;
        let v = s.json(&["object", "add", "FILES", "--description", "test files"]);
        assert_eq!(v["config"]["name"], "OBJ_FILES", "{k:?}");

        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("big.bin");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&src, &data).expect("write");
        let p = s.json(&["object", "put", "FILES", src.to_str().expect("utf8")]);
        assert_eq!(p["name"], "big.bin");
        assert_eq!(p["size"], 300_000);

        let ls = s.json(&["object", "ls", "FILES"]);
        assert_eq!(ls.as_array().expect("array").len(), 1);
        assert_eq!(ls[0]["name"], "big.bin");
        let table = s.ok(&["object", "ls", "FILES"]);
        assert!(table.lines().any(|l| l.contains("big.bin")), "{table}");
        let buckets = s.json(&["object", "ls"]);
        assert_eq!(buckets[0]["bucket"], "FILES");

        let i = s.json(&["object", "info", "FILES", "big.bin"]);
        assert_eq!(i["size"], 300_000);
        let text = s.ok(&["object", "info", "FILES"]);
        assert!(
            text.contains("Information for Object Store Bucket FILES"),
            "{text}"
        );

        let dst = dir.path().join("copy.bin");
        s.ok(&[
            "object",
            "get",
            "FILES",
            "big.bin",
            "-O",
            dst.to_str().expect("utf8"),
        ]);
        assert_eq!(std::fs::read(&dst).expect("read"), data);

        let w: Value = serde_json::from_str(
            s.ok(&["object", "watch", "FILES", "--count", "1", "--json"])
                .trim(),
        )
        .expect("json");
        assert_eq!(w["name"], "big.bin");

        s.ok(&["object", "rm", "FILES", "big.bin", "-f"]);
        assert_eq!(s.json(&["object", "ls", "FILES"]), serde_json::json!([]));
        let (code, err) = s.fails(&["object", "get", "FILES", "big.bin"]);
        assert_eq!(code, 1);
        assert_one_line_error(&err);
        s.ok(&["object", "rm", "FILES", "-f"]);
        assert_eq!(s.json(&["object", "ls"]), serde_json::json!([]));
    }
}

/// `object edit` changes only what is given; `object seal` makes the bucket read-only.
#[test]
fn object_edit_and_seal() {
    for s in Server::both("object_edit_and_seal") {
        let k = s.kind;
        s.ok(&["object", "add", "B", "--description", "before"]);
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("a.txt");
        std::fs::write(&f, b"hello").expect("write");
        s.ok(&["object", "put", "B", f.to_str().expect("utf8")]);

        let e = s.json(&[
            "object",
            "edit",
            "B",
            "--max-bucket-size",
            "10MiB",
            "--ttl",
            "1h",
        ]);
        assert_eq!(e["config"]["max_bytes"], 10 * 1024 * 1024, "{k:?}");
        assert_eq!(e["config"]["max_age"], 3_600_000_000_000i64);
        assert_eq!(e["config"]["description"], "before");

        let sealed = s.json(&["object", "seal", "B", "-f"]);
        assert_eq!(sealed["config"]["sealed"], true, "{k:?}");
        // Still readable, no longer writable.
        let out = dir.path().join("out.txt");
        s.ok(&[
            "object",
            "get",
            "B",
            "a.txt",
            "-O",
            out.to_str().expect("utf8"),
        ]);
        assert_eq!(std::fs::read(&out).expect("read"), b"hello");
        let (code, err) = s.fails(&[
            "object",
            "put",
            "B",
            f.to_str().expect("utf8"),
            "--name",
            "b.txt",
        ]);
        assert_eq!(code, 1, "{k:?}");
        assert_one_line_error(&err);
        let (code, _) = s.fails(&["object", "seal", "NOPE", "-f"]);
        assert_eq!(code, 1);
    }
}
