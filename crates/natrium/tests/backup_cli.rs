//! `natrium stream backup|restore` and `account backup|restore` end to end, run as a
//! user would run them, against natrium-server and against the real nats-server 2.15.1
//! in both directions: a backup from one server restores into the other with every
//! message and the consumers' state intact.
//!
//! Servers are spawned binaries on 127.0.0.1 with a port they pick (`-p -1`, read back
//! from the log), each with its own store directory. nats-server comes from
//! `NATS_SERVER_BIN` or PATH; without it the interop tests print a notice and only the
//! natrium half runs.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use common::{NATRIUM, Server, ok_json};
use futures::StreamExt;
use serde_json::Value;

/// Run the CLI against `url`.
fn cli(url: &str, args: &[&str]) -> Output {
    common::natrium(Some(url), args, &[])
}

/// Stream `name` with 50 messages (some with headers), 2 deletes, and a durable
/// consumer with acks and one pending.
async fn fill(js: &jetstream::Context, name: &str) {
    js.create_stream(stream::Config {
        name: name.into(),
        subjects: vec![format!("{name}.>")],
        ..Default::default()
    })
    .await
    .unwrap();
    publish_range(js, name, 1, 50).await;
    let st = js.get_stream(name).await.unwrap();
    st.delete_message(10).await.unwrap();
    st.delete_message(11).await.unwrap();
    let _: consumer::PullConsumer = st
        .create_consumer(consumer::pull::Config {
            durable_name: Some("D".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    ack_some(js, name, 5).await;
}

/// Everything a comparison needs: (seq, subject, X-I header, payload) per message, and
/// the consumer's (ack floor, delivered, ack pending).
async fn contents(
    js: &jetstream::Context,
    name: &str,
) -> (Vec<(u64, String, String, Vec<u8>)>, (u64, u64, usize)) {
    let mut st = js.get_stream(name).await.unwrap();
    let last = st.info().await.unwrap().state.last_sequence;
    let mut msgs = Vec::new();
    for seq in 1..=last {
        if let Ok(m) = st.get_raw_message(seq).await {
            let h = m
                .headers
                .get("X-I")
                .map(|v| v.as_str().to_string())
                .unwrap_or_default();
            msgs.push((seq, m.subject.to_string(), h, m.payload.to_vec()));
        }
    }
    let mut c: consumer::PullConsumer = st.get_consumer("D").await.unwrap();
    let i = c.info().await.unwrap();
    (
        msgs,
        (
            i.ack_floor.stream_sequence,
            i.delivered.stream_sequence,
            i.num_ack_pending,
        ),
    )
}

async fn backup_restore_between(from: &Server, to: &Server) {
    let js_from = from.js().await;
    fill(&js_from, "ORD").await;
    let want = contents(&js_from, "ORD").await;
    assert_eq!(want.0.len(), 48);
    assert_eq!(want.1, (4, 5, 1));
    let dir = tempfile::tempdir().unwrap();
    let bdir = dir.path().join("ord");
    let b = ok_json(cli(
        &from.url,
        &[
            "stream",
            "backup",
            "ORD",
            bdir.to_str().unwrap(),
            "--json",
            "--chunk-size",
            "1KB",
        ],
    ));
    assert_eq!(b["stream"], "ORD");
    assert_eq!(b["last_seq"], 50);
    assert!(b["chunks"].as_u64().unwrap() >= 2, "{b}");
    assert!(bdir.join("stream.tar.s2").is_file());
    assert!(bdir.join("backup.json").is_file());
    assert!(!bdir.join("INCOMPLETE").exists());

    let r = ok_json(cli(
        &to.url,
        &["stream", "restore", bdir.to_str().unwrap(), "--json"],
    ));
    assert_eq!(r["messages"], 48, "{r}");
    assert_eq!(r["last_seq"], 50);
    let js_to = to.js().await;
    let got = contents(&js_to, "ORD").await;
    assert_eq!(got, want);

    // Restoring again is refused with a clear line and a non-zero exit.
    let again = cli(&to.url, &["stream", "restore", bdir.to_str().unwrap()]);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn natrium_to_natrium() {
    let a = Server::natrium();
    let b = Server::natrium();
    backup_restore_between(&a, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_server_to_natrium() {
    let Some(a) = Server::nats("nats_server_to_natrium") else {
        return;
    };
    let b = Server::natrium();
    backup_restore_between(&a, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn natrium_to_nats_server() {
    let a = Server::natrium();
    let Some(b) = Server::nats("natrium_to_nats_server") else {
        return;
    };
    backup_restore_between(&a, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_backup_and_restore() {
    let a = Server::natrium();
    let js = a.js().await;
    for name in ["A1", "A2", "A3"] {
        fill(&js, name).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let bdir = dir.path().join("acct");
    let b = ok_json(cli(
        &a.url,
        &["account", "backup", bdir.to_str().unwrap(), "--json"],
    ));
    assert_eq!(b["consistent"], true);
    assert_eq!(b["streams"].as_array().unwrap().len(), 3);
    for name in ["A1", "A2", "A3"] {
        assert!(bdir.join(name).join("backup.json").is_file());
    }

    let c = Server::natrium();
    let jsc = c.js().await;
    // A2 exists on the target: refused as a whole, nothing uploaded.
    jsc.create_stream(stream::Config {
        name: "A2".into(),
        subjects: vec!["other".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let out = cli(&c.url, &["account", "restore", bdir.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"A2\""));
    assert!(jsc.get_stream("A1").await.is_err());
    // With --skip-existing the others are restored and A2 is named as skipped.
    let r = ok_json(cli(
        &c.url,
        &[
            "account",
            "restore",
            bdir.to_str().unwrap(),
            "--skip-existing",
            "--json",
        ],
    ));
    assert_eq!(r["skipped"], serde_json::json!(["A2"]));
    assert_eq!(r["restored"].as_array().unwrap().len(), 2);
    assert_eq!(contents(&jsc, "A3").await, contents(&js, "A3").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_backup_is_refused() {
    let a = Server::natrium();
    let js = a.js().await;
    fill(&js, "I").await;
    let dir = tempfile::tempdir().unwrap();
    let bdir = dir.path().join("i");
    ok_json(cli(
        &a.url,
        &["stream", "backup", "I", bdir.to_str().unwrap(), "--json"],
    ));
    // What an interrupted run leaves: the marker is still there.
    std::fs::write(bdir.join("INCOMPLETE"), "backup of stream I in progress\n").unwrap();
    let b = Server::natrium();
    let out = cli(&b.url, &["stream", "restore", bdir.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("incomplete"), "{err}");
    // And a backup never overwrites an existing one.
    let out = cli(&a.url, &["stream", "backup", "I", bdir.to_str().unwrap()]);
    assert!(!out.status.success());
    // A missing stream is a clear API error.
    let out = cli(
        &a.url,
        &[
            "stream",
            "backup",
            "NOPE",
            dir.path().join("n").to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("10059"));
}

/// All streams of an account backup come from one instant: a publisher writes k = 0, 1,
/// 2, … round-robin into five streams, each after the previous was acknowledged, while
/// the backup runs; the restored account must hold exactly k = 0..K, with no gap in any
/// stream and nothing newer in one stream than in another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_backup_is_one_point_in_time() {
    let a = Server::natrium();
    let js = a.js().await;
    for i in 0..5 {
        js.create_stream(stream::Config {
            name: format!("P{i}"),
            subjects: vec![format!("p{i}")],
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let pubjs = a.js().await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let publisher = tokio::spawn(async move {
        let t = std::time::Instant::now();
        let mut k = 0u64;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed)
            && k < 200_000
            && t.elapsed() < Duration::from_secs(30)
        {
            pubjs
                .publish(format!("p{}", k % 5), k.to_string().into())
                .await
                .unwrap()
                .await
                .unwrap();
            k += 1;
        }
        k
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let dir = tempfile::tempdir().unwrap();
    let bdir = dir.path().join("acct");
    let url = a.url.clone();
    let bpath = bdir.clone();
    let out = tokio::task::spawn_blocking(move || {
        cli(
            &url,
            &["account", "backup", bpath.to_str().unwrap(), "--json"],
        )
    })
    .await
    .unwrap();
    let b = ok_json(out);
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let published = publisher.await.unwrap();
    assert_eq!(b["consistent"], true);
    let meta: Value =
        serde_json::from_slice(&std::fs::read(bdir.join("account.json")).unwrap()).unwrap();
    assert_eq!(meta["consistent"], true);

    let c = Server::natrium();
    ok_json(cli(
        &c.url,
        &["account", "restore", bdir.to_str().unwrap(), "--json"],
    ));
    let jsc = c.js().await;
    let mut ks = Vec::new();
    for i in 0..5 {
        let mut st = jsc.get_stream(format!("P{i}")).await.unwrap();
        let last = st.info().await.unwrap().state.last_sequence;
        for seq in 1..=last {
            let m = st.get_raw_message(seq).await.unwrap();
            let k: u64 = std::str::from_utf8(&m.payload).unwrap().parse().unwrap();
            assert_eq!(k % 5, i, "k {k} in stream P{i}");
            ks.push(k);
        }
    }
    ks.sort_unstable();
    let n = ks.len() as u64;
    assert!(n > 0 && n < published, "captured {n} of {published}");
    assert_eq!(ks, (0..n).collect::<Vec<_>>(), "not one point in time");
}

/// Against nats-server (no freeze API) the account backup falls back to one stream at a
/// time, says so, and records it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_backup_falls_back_on_nats_server() {
    let Some(a) = Server::nats("account_backup_falls_back_on_nats_server") else {
        return;
    };
    let js = a.js().await;
    fill(&js, "N1").await;
    fill(&js, "N2").await;
    let dir = tempfile::tempdir().unwrap();
    let bdir = dir.path().join("acct");
    let out = cli(
        &a.url,
        &["account", "backup", bdir.to_str().unwrap(), "--json"],
    );
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let b = ok_json(out);
    assert_eq!(b["consistent"], false);
    assert!(err.contains("stream by stream"), "{err}");
    assert_eq!(b["streams"].as_array().unwrap().len(), 2);
    let c = Server::natrium();
    ok_json(cli(
        &c.url,
        &["account", "restore", bdir.to_str().unwrap(), "--json"],
    ));
    assert_eq!(
        contents(&c.js().await, "N2").await,
        contents(&js, "N2").await
    );
}

/// `backup verify` checks what the backup commands wrote, offline, and refuses an
/// interrupted or damaged one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_checks_backups_offline() {
    let a = Server::natrium();
    let js = a.js().await;
    fill(&js, "V1").await;
    fill(&js, "V2").await;
    let dir = tempfile::tempdir().unwrap();
    let bdir = dir.path().join("acct");
    ok_json(cli(
        &a.url,
        &["account", "backup", bdir.to_str().unwrap(), "--json"],
    ));
    drop(a);
    let run = |p: &Path| {
        Command::new(NATRIUM)
            .args(["backup", "verify"])
            .arg(p)
            .arg("--json")
            .output()
            .unwrap()
    };
    let v = ok_json(run(&bdir));
    assert!(v.to_string().contains("V1"), "{v}");
    assert!(run(&bdir.join("V2")).status.success());
    // Damage one archive: verify fails.
    let arch = bdir.join("V2").join("stream.tar.s2");
    let mut bytes = std::fs::read(&arch).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0x55;
    std::fs::write(&arch, bytes).unwrap();
    assert!(!run(&bdir.join("V2")).status.success());
    // An interrupted backup is refused.
    std::fs::write(bdir.join("V1").join("INCOMPLETE"), "x").unwrap();
    let out = run(&bdir.join("V1"));
    assert!(!out.status.success());
}

/// Publish `from..=to` on `name.s{i % 4}` (every 7th with an `X-I` header).
async fn publish_range(js: &jetstream::Context, name: &str, from: u32, to: u32) {
    for i in from..=to {
        let mut h = async_nats::HeaderMap::new();
        if i % 7 == 0 {
            h.insert("X-I", i.to_string().as_str());
        }
        js.publish_with_headers(format!("{name}.s{}", i % 4), h, format!("body-{i}").into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

/// Fetch `n` messages from consumer `D` of `name` and ack all but the last.
async fn ack_some(js: &jetstream::Context, name: &str, n: usize) {
    let st = js.get_stream(name).await.unwrap();
    let c: consumer::PullConsumer = st.get_consumer("D").await.unwrap();
    let mut batch = c.fetch().max_messages(n).messages().await.unwrap();
    let mut k = 0;
    while let Some(m) = batch.next().await {
        k += 1;
        if k < n {
            m.unwrap().double_ack().await.unwrap();
        }
    }
}

/// (first seq, last seq, messages, deleted count) of a stream.
async fn seq_state(js: &jetstream::Context, name: &str) -> (u64, u64, u64, u64) {
    let mut st = js.get_stream(name).await.unwrap();
    let i = st.info().await.unwrap().state.clone();
    (
        i.first_sequence,
        i.last_sequence,
        i.messages,
        i.last_sequence.saturating_sub(i.first_sequence) + 1 - i.messages,
    )
}

fn natrium_section(dir: &Path) -> Value {
    let v: Value =
        serde_json::from_slice(&std::fs::read(dir.join("backup.json")).unwrap()).unwrap();
    v["natrium"].clone()
}

/// Build full → inc1 → inc2 of stream `name` on `a` under `root`, with publishes,
/// deletes, a filtered purge, a purge up to a sequence and consumer acks in between.
/// Returns what the stream held when inc2 was taken.
async fn build_chain(
    a: &Server,
    name: &str,
    root: &Path,
) -> (
    (Vec<(u64, String, String, Vec<u8>)>, (u64, u64, usize)),
    (u64, u64, u64, u64),
) {
    let js = a.js().await;
    fill(&js, name).await;
    let b = |dir: &str, since: Option<&str>| {
        let d = root.join(dir);
        let mut args = vec!["stream", "backup", name, d.to_str().unwrap(), "--json"];
        let prev;
        if let Some(s) = since {
            prev = root.join(s);
            args.push("--since");
            args.push(prev.to_str().unwrap());
        }
        ok_json(cli(&a.url, &args))
    };
    let full = b("full", None);
    assert_eq!(full["last_seq"], 50);
    // Changes: new messages, deletes below and above the watermark, a filtered purge,
    // acks.
    publish_range(&js, name, 51, 70).await;
    let st = js.get_stream(name).await.unwrap();
    st.delete_message(5).await.unwrap();
    st.delete_message(60).await.unwrap();
    st.purge().filter(format!("{name}.s1")).await.unwrap();
    ack_some(&js, name, 10).await;
    let inc1 = b("inc1", Some("full"));
    assert_eq!(inc1["last_seq"], 70);
    // More: a purge up to a sequence, a delete, new messages, acks.
    publish_range(&js, name, 71, 90).await;
    st.purge().sequence(20).await.unwrap();
    st.delete_message(44).await.unwrap();
    st.delete_message(88).await.unwrap();
    ack_some(&js, name, 6).await;
    let want = contents(&js, name).await;
    let want_state = seq_state(&js, name).await;
    let _now = b("now", None);
    let inc2 = b("inc2", Some("inc1"));
    assert_eq!(inc2["last_seq"], 90);
    // Changes after inc2 are not in it.
    publish_range(&js, name, 91, 95).await;
    st.delete_message(30).await.unwrap();
    (want, want_state)
}

/// An incremental chain full → inc1 → inc2 restores the stream exactly as it stood when
/// inc2 was taken: every message (sequence, subject, header, payload), the deleted
/// sequences, first/last sequence and the consumer's state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_chain_restores_the_last_point_in_time() {
    let a = Server::natrium();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (want, want_state) = build_chain(&a, "INC", root).await;
    assert_eq!(want_state.0, 20, "purge up to 20 moved the first sequence");
    assert!(want_state.3 > 5, "{want_state:?}");

    // The folders record the chain.
    let full = natrium_section(&root.join("full"));
    let inc1 = natrium_section(&root.join("inc1"));
    let inc2 = natrium_section(&root.join("inc2"));
    assert_eq!(full["kind"], "full");
    assert_eq!(inc1["kind"], "incremental");
    assert_eq!(inc1["parent"], "../full");
    assert_eq!(inc1["parent_id"], full["id"]);
    assert_eq!(inc1["since"], 50);
    assert_eq!(inc2["parent_id"], inc1["id"]);
    assert_eq!(inc2["since"], 70);
    assert_eq!(inc2["watermark"], 90);
    // An incremental archive holds only the new messages.
    let size = |d: &str| {
        std::fs::metadata(root.join(d).join("stream.tar.s2"))
            .unwrap()
            .len()
    };
    assert!(
        size("inc2") < size("full"),
        "{} vs {}",
        size("inc2"),
        size("full")
    );

    // verify walks the whole chain.
    let v = Command::new(NATRIUM)
        .args(["backup", "verify"])
        .arg(root.join("inc2"))
        .arg("--json")
        .output()
        .unwrap();
    let v = ok_json(v);
    assert_eq!(v["ok"], true);
    let links = v["links"].as_array().unwrap();
    assert_eq!(links.len(), 3);
    assert_eq!(links[0]["format"], "v2");
    assert_eq!(links[2]["format"], "incremental");
    assert_eq!(links[2]["since"], 70);

    let b = Server::natrium();
    let r = ok_json(cli(
        &b.url,
        &[
            "stream",
            "restore",
            root.join("inc2").to_str().unwrap(),
            "--json",
        ],
    ));
    assert_eq!(r["last_seq"], 90, "{r}");
    let jsb = b.js().await;
    ok_json(cli(
        &b.url,
        &[
            "stream",
            "restore",
            root.join("now").to_str().unwrap(),
            "--name",
            "NOW",
            "--json",
        ],
    ));
    // A full backup taken at the same moment restores the same stream.
    assert_eq!(contents(&jsb, "NOW").await, want);
    assert_eq!(contents(&jsb, "INC").await, want);
    assert_eq!(seq_state(&jsb, "INC").await, want_state);

    // The middle of the chain restores its own point in time (under another name).
    let r = ok_json(cli(
        &b.url,
        &[
            "stream",
            "restore",
            root.join("inc1").to_str().unwrap(),
            "--name",
            "INC1",
            "--json",
        ],
    ));
    assert_eq!(r["last_seq"], 70, "{r}");

    // The restore half needs no natrium extension: the merged chain goes into
    // nats-server 2.15 too.
    if let Some(n) = Server::nats("incremental_chain_restores_the_last_point_in_time") {
        ok_json(cli(
            &n.url,
            &[
                "stream",
                "restore",
                root.join("inc2").to_str().unwrap(),
                "--json",
            ],
        ));
        let jsn = n.js().await;
        assert_eq!(contents(&jsn, "INC").await, want);
        assert_eq!(seq_state(&jsn, "INC").await, want_state);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// A damaged link — a flipped bit in inc1's archive, a missing parent folder, a
/// parent replaced by another backup (wrong id) — is reported by `backup verify` (exit
/// status non-zero) and refused by restore before anything is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_chain_is_detected_and_refused() {
    let a = Server::natrium();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    std::fs::create_dir_all(&good).unwrap();
    build_chain(&a, "DMG", &good).await;
    let b = Server::natrium();
    let jsb = b.js().await;
    type Damage<'a> = (&'a str, &'a dyn Fn(&Path));
    let damage: [Damage; 3] = [
        ("bitflip", &|root: &Path| {
            let arch = root.join("inc1").join("stream.tar.s2");
            let mut bytes = std::fs::read(&arch).unwrap();
            let n = bytes.len();
            bytes[n / 2] ^= 0x10;
            std::fs::write(&arch, bytes).unwrap();
        }),
        ("missing", &|root: &Path| {
            std::fs::remove_dir_all(root.join("full")).unwrap();
        }),
        ("wrong-id", &|root: &Path| {
            let p = root.join("inc1").join("backup.json");
            let mut v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            v["natrium"]["parent_id"] = "0123456789abcdef0123456789abcdef".into();
            std::fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
        }),
    ];
    for (what, f) in damage {
        let root = dir.path().join(what);
        copy_dir(&good, &root);
        f(&root);
        let inc2 = root.join("inc2");
        let v = Command::new(NATRIUM)
            .args(["backup", "verify"])
            .arg(&inc2)
            .output()
            .unwrap();
        assert!(!v.status.success(), "{what}: verify passed");
        let text = String::from_utf8_lossy(&v.stdout);
        assert!(text.contains("DAMAGED"), "{what}: {text}");
        let out = cli(&b.url, &["stream", "restore", inc2.to_str().unwrap()]);
        assert!(!out.status.success(), "{what}: restore passed");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("backup chain broken"), "{what}: {err}");
        assert!(
            jsb.get_stream("DMG").await.is_err(),
            "{what}: stream created"
        );
    }
    // The undamaged chain still restores.
    ok_json(cli(
        &b.url,
        &[
            "stream",
            "restore",
            good.join("inc2").to_str().unwrap(),
            "--json",
        ],
    ));
    assert!(jsb.get_stream("DMG").await.is_ok());
}

/// `--since` against nats-server, which ignores the extension, is refused with a clear
/// error and leaves no folder behind (no full archive labelled incremental).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_against_nats_server_is_refused() {
    let Some(a) = Server::nats("since_against_nats_server_is_refused") else {
        return;
    };
    let js = a.js().await;
    fill(&js, "NS").await;
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    let inc = dir.path().join("inc");
    ok_json(cli(
        &a.url,
        &["stream", "backup", "NS", full.to_str().unwrap(), "--json"],
    ));
    let out = cli(
        &a.url,
        &[
            "stream",
            "backup",
            "NS",
            inc.to_str().unwrap(),
            "--since",
            full.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not support incremental backups"),
        "{err}"
    );
    assert!(!inc.exists(), "a folder was left behind");
}

/// `account backup --since PREV`: every stream that PREV holds is backed up
/// incrementally (a new stream in full), and `account restore` replays each chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_incremental_backup() {
    let a = Server::natrium();
    let js = a.js().await;
    fill(&js, "AC1").await;
    fill(&js, "AC2").await;
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    let inc = dir.path().join("inc");
    ok_json(cli(
        &a.url,
        &["account", "backup", full.to_str().unwrap(), "--json"],
    ));
    publish_range(&js, "AC1", 51, 60).await;
    js.get_stream("AC2")
        .await
        .unwrap()
        .purge()
        .sequence(30)
        .await
        .unwrap();
    ack_some(&js, "AC1", 5).await;
    fill(&js, "AC3").await;
    let b = ok_json(cli(
        &a.url,
        &[
            "account",
            "backup",
            inc.to_str().unwrap(),
            "--since",
            full.to_str().unwrap(),
            "--json",
        ],
    ));
    assert_eq!(b["consistent"], true);
    assert_eq!(natrium_section(&inc.join("AC1"))["kind"], "incremental");
    assert_eq!(
        natrium_section(&inc.join("AC1"))["parent"],
        "../../full/AC1"
    );
    assert_eq!(natrium_section(&inc.join("AC3"))["kind"], "full");
    let v = Command::new(NATRIUM)
        .args(["backup", "verify"])
        .arg(&inc)
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
    let c = Server::natrium();
    ok_json(cli(
        &c.url,
        &["account", "restore", inc.to_str().unwrap(), "--json"],
    ));
    let jsc = c.js().await;
    for name in ["AC1", "AC2", "AC3"] {
        assert_eq!(
            contents(&jsc, name).await,
            contents(&js, name).await,
            "{name}"
        );
        assert_eq!(
            seq_state(&jsc, name).await,
            seq_state(&js, name).await,
            "{name}"
        );
    }
    // A broken chain in one stream folder fails the account's verify.
    std::fs::remove_dir_all(full.join("AC2")).unwrap();
    let v = Command::new(NATRIUM)
        .args(["backup", "verify"])
        .arg(&inc)
        .output()
        .unwrap();
    assert!(!v.status.success());
}

/// Publishes messages `from..=to` of ~1 KB poorly compressible payloads to `name.sN`.
async fn publish_noise(js: &jetstream::Context, name: &str, from: u32, to: u32) {
    let mut acks = Vec::new();
    for i in from..=to {
        let body: String = (0..1000u32)
            .map(|k| {
                char::from(b'!' + ((i.wrapping_mul(2654435761) ^ k.wrapping_mul(40503)) % 90) as u8)
            })
            .collect();
        acks.push(
            js.publish(format!("{name}.s{}", i % 3), body.into())
                .await
                .unwrap(),
        );
        if acks.len() >= 256 {
            for a in acks.drain(..) {
                a.await.unwrap();
            }
        }
    }
    for a in acks.drain(..) {
        a.await.unwrap();
    }
}

/// An interrupted incremental backup resumes, with the same `--since`, into the
/// incremental backup that was asked for: it still continues the full backup, and the
/// chain restores the stream as it stands at the resume, with the deletes made in the
/// meantime below the full backup's watermark, in the kept part and after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_incremental_backup_resumes() {
    let a = Server::natrium();
    let js = a.js().await;
    js.create_stream(stream::Config {
        name: "RI".into(),
        subjects: vec!["RI.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    publish_noise(&js, "RI", 1, 300).await;
    let _: consumer::PullConsumer = js
        .get_stream("RI")
        .await
        .unwrap()
        .create_consumer(consumer::pull::Config {
            durable_name: Some("D".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    ack_some(&js, "RI", 5).await;
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    ok_json(cli(
        &a.url,
        &["stream", "backup", "RI", full.to_str().unwrap(), "--json"],
    ));
    // ~3 MB: three archive chunks of 1 MiB, so a cut keeps whole ones.
    publish_noise(&js, "RI", 301, 3300).await;
    let inc = dir.path().join("inc");
    let args = |extra: &[&str]| {
        let mut v = vec![
            "stream".to_string(),
            "backup".into(),
            "RI".into(),
            inc.to_str().unwrap().into(),
            "--json".into(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |v: Vec<String>| {
        let v: Vec<&str> = v.iter().map(String::as_str).collect();
        cli(&a.url, &v)
    };
    ok_json(run(args(&["--since", full.to_str().unwrap()])));
    // Cut it off as an interrupted run leaves it.
    let arch = inc.join("stream.tar.s2");
    let bytes = std::fs::read(&arch).unwrap();
    std::fs::write(&arch, &bytes[..bytes.len() * 2 / 3]).unwrap();
    std::fs::remove_file(inc.join("backup.json")).unwrap();
    std::fs::write(inc.join("INCOMPLETE"), "backup of stream RI in progress\n").unwrap();
    // Meanwhile: deletes below the full backup's watermark, in the kept part (early in
    // the increment) and after it; more messages.
    let st = js.get_stream("RI").await.unwrap();
    for seq in [5, 310, 3299] {
        st.delete_message(seq).await.unwrap();
    }
    publish_noise(&js, "RI", 3301, 3320).await;
    ack_some(&js, "RI", 7).await;
    // Without --since the CLI says what it needs, and keeps the folder as it is.
    let o = run(args(&["--resume"]));
    assert!(
        !o.status.success(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--since"), "{err}");
    assert!(inc.join("INCOMPLETE").exists());
    let r = ok_json(run(args(&["--resume", "--since", full.to_str().unwrap()])));
    let kept = r["resumed_after"].as_u64().unwrap();
    assert!(kept > 400 && kept < 3299, "{r}");
    assert_eq!(r["last_seq"], 3320);
    assert!(!inc.join("INCOMPLETE").exists());
    let sec = natrium_section(&inc);
    assert_eq!(sec["kind"], "incremental", "{sec}");
    assert_eq!(sec["since"], 300, "{sec}");
    assert_eq!(sec["parent_id"], natrium_section(&full)["id"], "{sec}");
    let v = Command::new(NATRIUM)
        .args(["backup", "verify"])
        .arg(&inc)
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
    let b = Server::natrium();
    ok_json(cli(
        &b.url,
        &["stream", "restore", inc.to_str().unwrap(), "--json"],
    ));
    let jsb = b.js().await;
    assert_eq!(contents(&jsb, "RI").await, contents(&js, "RI").await);
    assert_eq!(seq_state(&jsb, "RI").await, seq_state(&js, "RI").await);
}

/// `stream backup --resume` finishes an interrupted backup: the intact part of the
/// archive is kept, only the rest is fetched, and the result is an ordinary full backup
/// of the stream as it stands at the resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_backup_resumes() {
    let a = Server::natrium();
    let js = a.js().await;
    js.create_stream(stream::Config {
        name: "RS".into(),
        subjects: vec!["RS.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    // About 2 MB of poorly compressible payloads: several archive frames.
    publish_noise(&js, "RS", 1, 2000).await;
    let dir = tempfile::tempdir().unwrap();
    let bdir = dir.path().join("rs");
    ok_json(cli(
        &a.url,
        &["stream", "backup", "RS", bdir.to_str().unwrap(), "--json"],
    ));
    // What an interrupted run leaves: the marker, part of the archive, no backup.json.
    let arch = bdir.join("stream.tar.s2");
    let bytes = std::fs::read(&arch).unwrap();
    std::fs::write(&arch, &bytes[..bytes.len() * 2 / 3]).unwrap();
    std::fs::remove_file(bdir.join("backup.json")).unwrap();
    std::fs::write(bdir.join("INCOMPLETE"), "backup of stream RS in progress\n").unwrap();
    // The stream moves on meanwhile.
    let st = js.get_stream("RS").await.unwrap();
    st.delete_message(7).await.unwrap();
    st.delete_message(1999).await.unwrap();
    publish_range(&js, "RS", 1, 20).await;
    let want = {
        let mut s = js.get_stream("RS").await.unwrap();
        let last = s.info().await.unwrap().state.last_sequence;
        let mut v = Vec::new();
        for seq in 1..=last {
            if let Ok(m) = s.get_raw_message(seq).await {
                v.push((seq, m.subject.to_string(), m.payload.to_vec()));
            }
        }
        v
    };
    let r = ok_json(cli(
        &a.url,
        &[
            "stream",
            "backup",
            "RS",
            bdir.to_str().unwrap(),
            "--resume",
            "--json",
        ],
    ));
    let kept = r["resumed_after"].as_u64().unwrap();
    assert!(kept > 100 && kept < 2000, "{r}");
    assert_eq!(r["last_seq"], 2020);
    assert!(!bdir.join("INCOMPLETE").exists());
    assert_eq!(natrium_section(&bdir)["kind"], "full");
    // Nothing of the scratch work is left.
    let names: Vec<_> = std::fs::read_dir(&bdir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let b = Server::natrium();
    ok_json(cli(
        &b.url,
        &["stream", "restore", bdir.to_str().unwrap(), "--json"],
    ));
    let jsb = b.js().await;
    let mut s = jsb.get_stream("RS").await.unwrap();
    let last = s.info().await.unwrap().state.last_sequence;
    let mut got = Vec::new();
    for seq in 1..=last {
        if let Ok(m) = s.get_raw_message(seq).await {
            got.push((seq, m.subject.to_string(), m.payload.to_vec()));
        }
    }
    assert_eq!(got.len(), want.len());
    assert!(got == want, "restored stream differs");
    // A finished backup is not resumed.
    let again = cli(
        &a.url,
        &["stream", "backup", "RS", bdir.to_str().unwrap(), "--resume"],
    );
    assert!(!again.status.success());
}

/// A restore sent as thousands of small chunks (the target server's `max_payload` is
/// 4 KiB, so the CLI uploads 4 KiB at a time with 8 unanswered) restores the stream
/// exactly, three times over: the server reads the chunks as one byte stream and checks
/// every S2 frame's checksum, so a chunk lost, repeated or out of order fails it. (The
/// ordering itself is pinned down by `stream_restore`'s unit test, which makes the
/// uploader's answers pile up on purpose.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_in_thousands_of_small_chunks_arrives_in_order() {
    let from = Server::natrium();
    let js = from.js().await;
    js.create_stream(stream::Config {
        name: "MANY".into(),
        subjects: vec!["MANY.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    // 12 MiB of incompressible messages: ~3,000 upload chunks of 4 KiB.
    common::publish_noise(&js, "MANY", 3_000, 4096, 0x51_7cc1_b727_220a, 256).await;
    let dir = tempfile::tempdir().unwrap();
    let bdir = dir.path().join("many");
    ok_json(cli(
        &from.url,
        &["stream", "backup", "MANY", bdir.to_str().unwrap(), "--json"],
    ));
    let conf = dir.path().join("small.conf");
    std::fs::write(&conf, "max_payload: 4096\n").unwrap();
    for round in 0..3 {
        let to = Server::natrium_with(&["-c", conf.to_str().unwrap()]);
        let r = ok_json(cli(
            &to.url,
            &["stream", "restore", bdir.to_str().unwrap(), "--json"],
        ));
        assert_eq!(r["messages"], 3_000, "round {round}: {r}");
        assert_eq!(r["last_seq"], 3_000, "round {round}: {r}");
        assert!(
            r["bytes"].as_u64().unwrap() > 3_000 * 4096,
            "round {round}: {r}"
        );
        let js_to = to.js().await;
        let mut a = js.get_stream("MANY").await.unwrap();
        let b = js_to.get_stream("MANY").await.unwrap();
        assert_eq!(
            a.info().await.unwrap().state.bytes,
            b.clone().info().await.unwrap().state.bytes
        );
        for seq in [1, 1_500, 3_000] {
            let x = a.get_raw_message(seq).await.unwrap();
            let y = b.get_raw_message(seq).await.unwrap();
            assert_eq!(x.payload, y.payload, "round {round}, seq {seq}");
        }
    }
}

/// Ctrl-C in the middle of a real transfer (SIGINT to the CLI process, not a simulated
/// marker): the CLI says so and exits non-zero, the folder keeps its INCOMPLETE marker
/// and has no `backup.json`, and both `backup verify` and a restore refuse it. A window
/// of one 1 KiB chunk makes every KiB a round trip, so the backup of ~8 MiB takes long
/// enough to be interrupted after data has arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_mid_backup_leaves_a_folder_that_restore_refuses() {
    let a = Server::natrium();
    fill_cc(&a).await;
    let dir = tempfile::tempdir().unwrap();
    let bdir = dir.path().join("cc");
    let mut child = slow_backup(&a, "CC", &bdir, dir.path());
    // Wait until part of the archive has arrived (so the transfer is under way and
    // the CLI's Ctrl-C handler is installed), then interrupt.
    wait_for_archive(&mut child, &bdir);
    let archive = bdir.join("stream.tar.s2");
    // Handled by the CLI (an exit code, not death by the signal), and said so.
    let err = common::ctrl_c(child);
    assert!(err.contains("interrupted"), "{err}");
    assert!(bdir.join("INCOMPLETE").exists(), "the marker is gone");
    assert!(
        !bdir.join("backup.json").exists(),
        "backup.json was written"
    );
    let size = std::fs::metadata(&archive).unwrap().len();
    assert!(
        size < 8000 * 1024,
        "the whole archive arrived ({size} bytes)"
    );

    let out = common::natrium(None, &["backup", "verify", bdir.to_str().unwrap()], &[]);
    assert!(!out.status.success(), "verify passed an interrupted backup");
    let b = Server::natrium();
    let out = cli(&b.url, &["stream", "restore", bdir.to_str().unwrap()]);
    assert!(!out.status.success(), "restore took an interrupted backup");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("incomplete"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: Vec<String> = b
        .js()
        .await
        .stream_names()
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(names.is_empty(), "{names:?}");
}

/// Stream `CC` with 8,000 messages of 1 KiB (~8 MiB).
async fn fill_cc(server: &Server) {
    let js = server.js().await;
    js.create_stream(stream::Config {
        name: "CC".into(),
        subjects: vec!["cc.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let body = bytes::Bytes::from(vec![b'k'; 1024]);
    // In rounds: async-nats holds back publishes while too many acks are outstanding.
    for round in 0..16u32 {
        let mut acks = Vec::with_capacity(500);
        for i in 0..500u32 {
            let subject = format!("cc.{}", (round * 500 + i) % 16);
            acks.push(js.publish(subject, body.clone()).await.unwrap());
        }
        for ack in acks {
            ack.await.unwrap();
        }
    }
}

/// Start `natrium stream backup STREAM BDIR` with a window of one 1 KiB chunk, so that
/// every KiB is a round trip and a backup of megabytes can be cut in the middle.
fn slow_backup(
    server: &Server,
    stream: &str,
    bdir: &Path,
    config_home: &Path,
) -> std::process::Child {
    Command::new(NATRIUM)
        .args([
            "-s",
            &server.url,
            "stream",
            "backup",
            stream,
            bdir.to_str().unwrap(),
            "--chunk-size",
            "1KiB",
            "--window-size",
            "1KiB",
            "--quiet",
        ])
        .env("XDG_CONFIG_HOME", config_home)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run natrium")
}

/// Wait (at most 20 s) until at least 64 KiB of the archive in `bdir` has arrived,
/// failing if the backup ends first.
fn wait_for_archive(child: &mut std::process::Child, bdir: &Path) {
    let archive = bdir.join("stream.tar.s2");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::fs::metadata(&archive).map_or(0, |m| m.len()) < 64 * 1024 {
        assert!(
            std::time::Instant::now() < deadline,
            "the backup wrote nothing within 20 s"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the backup ended before it could be interrupted"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The server dies (SIGKILL) in the middle of a backup: the CLI gives up with an
/// error instead of hanging, the folder stays marked incomplete, and after the server
/// restarts the same backup finishes with `--resume`, verifies, and restores every
/// message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_cut_by_a_server_crash_resumes_after_restart() {
    let mut a = Server::natrium();
    fill_cc(&a).await;
    let dir = tempfile::tempdir().unwrap();
    let bdir = dir.path().join("cc");
    let mut child = slow_backup(&a, "CC", &bdir, dir.path());
    wait_for_archive(&mut child, &bdir);
    a.crash_and_restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the backup client did not end after its server died");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        !out.status.success(),
        "a backup cut by the server reported success"
    );
    assert!(bdir.join("INCOMPLETE").exists(), "the marker is gone");
    assert!(
        !bdir.join("backup.json").exists(),
        "backup.json was written"
    );

    let r = ok_json(cli(
        &a.url,
        &[
            "stream",
            "backup",
            "CC",
            bdir.to_str().unwrap(),
            "--resume",
            "--json",
        ],
    ));
    assert!(r["resumed_after"].as_u64().is_some_and(|n| n > 0), "{r}");
    assert_eq!(r["messages"], 8000, "{r}");
    let out = common::natrium(None, &["backup", "verify", bdir.to_str().unwrap()], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let b = Server::natrium();
    ok_json(cli(
        &b.url,
        &["stream", "restore", bdir.to_str().unwrap(), "--json"],
    ));
    let st = b
        .js()
        .await
        .get_stream("CC")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .clone();
    assert_eq!(
        (st.messages, st.first_sequence, st.last_sequence),
        (8000, 1, 8000)
    );
    let (src, dst) = (
        a.js().await.get_stream("CC").await.unwrap(),
        b.js().await.get_stream("CC").await.unwrap(),
    );
    for seq in [1, 2, 1000, 4000, 7999, 8000] {
        let (x, y) = (
            src.get_raw_message(seq).await.unwrap(),
            dst.get_raw_message(seq).await.unwrap(),
        );
        assert_eq!(
            (&x.subject, &x.payload, x.time),
            (&y.subject, &y.payload, y.time),
            "seq {seq}"
        );
    }
}

/// A natrium backup (a v2 archive) restores into nats-server 2.14, which reads only v1
/// archives: the CLI converts it as it uploads. Messages, deletes in the middle and at
/// the end, the consumer's state and a whole account come through; an incremental
/// chain is refused with a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn natrium_to_nats_server_2_14_converts_to_v1() {
    let a = Server::natrium();
    let Some(b) = Server::nats_214("natrium_to_nats_server_2_14") else {
        return;
    };
    backup_restore_between(&a, &b).await;

    // Deleted sequences after the last message, and an emptied stream, keep their range.
    let js = a.js().await;
    for name in ["TAIL", "EMPTY"] {
        js.create_stream(stream::Config {
            name: name.into(),
            subjects: vec![format!("{name}.>")],
            ..Default::default()
        })
        .await
        .unwrap();
        publish_range(&js, name, 1, 5).await;
    }
    let tail = js.get_stream("TAIL").await.unwrap();
    tail.delete_message(5).await.unwrap();
    tail.delete_message(4).await.unwrap();
    js.get_stream("EMPTY").await.unwrap().purge().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let acct = dir.path().join("acct");
    ok_json(cli(
        &a.url,
        &["account", "backup", acct.to_str().unwrap(), "--json"],
    ));
    // ORD is on the target already (restored above).
    let r = ok_json(cli(
        &b.url,
        &[
            "account",
            "restore",
            acct.to_str().unwrap(),
            "--skip-existing",
            "--json",
        ],
    ));
    assert_eq!(r["restored"].as_array().map(Vec::len), Some(2), "{r}");
    assert_eq!(r["skipped"], serde_json::json!(["ORD"]));
    let jsb = b.js().await;
    assert_eq!(seq_state(&jsb, "TAIL").await, seq_state(&js, "TAIL").await);
    assert_eq!(
        seq_state(&jsb, "EMPTY").await,
        seq_state(&js, "EMPTY").await
    );
    let mut t = jsb.get_stream("TAIL").await.unwrap();
    let t = t.info().await.unwrap().state.clone();
    assert_eq!((t.messages, t.first_sequence, t.last_sequence), (3, 1, 5));
    let mut ta = js.get_stream("TAIL").await.unwrap();
    let ta = ta.info().await.unwrap().state.clone();
    assert_eq!(
        t.last_timestamp, ta.last_timestamp,
        "the last time of a stream ending in deletes"
    );
    let mut e = jsb.get_stream("EMPTY").await.unwrap();
    let e = e.info().await.unwrap().state.clone();
    assert_eq!((e.messages, e.first_sequence, e.last_sequence), (0, 6, 5));
    assert_eq!(contents(&jsb, "ORD").await, contents(&js, "ORD").await);

    // A memory stream would come back empty there: refused, nothing created.
    js.create_stream(stream::Config {
        name: "MEM".into(),
        subjects: vec!["MEM.>".into()],
        storage: stream::StorageType::Memory,
        ..Default::default()
    })
    .await
    .unwrap();
    publish_range(&js, "MEM", 1, 3).await;
    let mem = dir.path().join("mem");
    ok_json(cli(
        &a.url,
        &["stream", "backup", "MEM", mem.to_str().unwrap(), "--json"],
    ));
    let out = cli(&b.url, &["stream", "restore", mem.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("memory-storage"), "{err}");
    assert!(jsb.get_stream("MEM").await.is_err());

    // An incremental chain cannot go into a v1-only server.
    let chain = dir.path().join("chain");
    std::fs::create_dir_all(&chain).unwrap();
    build_chain(&a, "CH", &chain).await;
    let out = cli(
        &b.url,
        &["stream", "restore", chain.join("inc2").to_str().unwrap()],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("incremental backup") && err.contains("2.15"),
        "{err}"
    );
    assert!(jsb.get_stream("CH").await.is_err());
}
