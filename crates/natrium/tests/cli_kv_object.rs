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
