//! Backups to and from object storage (`s3://bucket/prefix`), end to end against a real
//! S3-compatible server on loopback: moto in server mode (`moto_server`, pinned in
//! tests/python/requirements.txt), spawned per test on a free port. No in-process mock:
//! the CLI talks real HTTP with SigV4 signing to a separate process.
//!
//! `MOTO_SERVER_BIN` names the binary; scripts/test.sh (CI) always sets it, and a test
//! fails if it is set but missing. In a plain `cargo test` without it these tests print
//! a notice and pass without running (local folders are covered by backup_cli.rs).
//!
//! Also here: `backup ls` / `backup prune` on local folders and on s3 prefixes.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use common::moto::{Moto, moto_bin};
use common::{NATRIUM, Server, ok_json};
use futures::StreamExt;
use object_store::ObjectStoreExt;
use serde_json::Value;

/// The CLI with the AWS variables pointing at `moto`.
fn s3cli(moto: &Moto, server: Option<&str>) -> Command {
    let mut c = Command::new(NATRIUM);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    c.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", moto.endpoint())
        .stdin(Stdio::null());
    if let Some(url) = server {
        c.args(["-s", url]);
    }
    c
}

fn run(mut c: Command, args: &[&str]) -> Output {
    c.args(args).output().expect("run natrium")
}

/// A failure with exactly one line on stderr that contains `want`.
fn one_line_error(out: Output, want: &str) {
    assert!(!out.status.success(), "should have failed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(want), "expected {want:?} in: {err}");
    assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
}

/// A backup left unfinished at `target` (`kind` "stream" or "account"): restore into
/// `server` refuses it in one line, verify fails, and `backup ls` of `parent` lists it
/// as incomplete. Returns the `ls` answer.
fn assert_unfinished(
    moto: &Moto,
    server: &Server,
    kind: &str,
    target: &str,
    parent: &str,
) -> Value {
    one_line_error(
        run(s3cli(moto, Some(&server.url)), &[kind, "restore", target]),
        "incomplete",
    );
    assert!(
        !run(s3cli(moto, None), &["backup", "verify", target])
            .status
            .success()
    );
    let ls = ok_json(run(s3cli(moto, None), &["backup", "ls", parent, "--json"]));
    assert_eq!(ls[0]["complete"], false, "{ls}");
    ls
}

/// Fill stream `name` with `count` incompressible payloads of `size` bytes (pipelined
/// publishes), plus a durable consumer "D".
async fn fill_random(js: &jetstream::Context, name: &str, count: usize, size: usize) {
    js.create_stream(stream::Config {
        name: name.into(),
        subjects: vec![format!("{name}.>")],
        max_message_size: 1 << 20,
        ..Default::default()
    })
    .await
    .unwrap();
    common::publish_noise(
        js,
        name,
        count as u64,
        size,
        0x9E37_79B9_7F4A_7C15 ^ name.len() as u64,
        64,
    )
    .await;
    js.create_consumer_on_stream(
        consumer::pull::Config {
            durable_name: Some("D".into()),
            ..Default::default()
        },
        name,
    )
    .await
    .unwrap();
}

/// (last_seq, per message (seq, subject, payload hash)), read with an ordered consumer.
async fn digest(js: &jetstream::Context, name: &str) -> (u64, Vec<(u64, String, u64)>) {
    let mut st = js.get_stream(name).await.unwrap();
    let info = st.info().await.unwrap().state.clone();
    let c = st
        .create_consumer(consumer::pull::OrderedConfig::default())
        .await
        .unwrap();
    let mut msgs = c.messages().await.unwrap();
    let mut out = Vec::new();
    while (out.len() as u64) < info.messages {
        let m = tokio::time::timeout(Duration::from_secs(30), msgs.next())
            .await
            .expect("messages stalled")
            .expect("messages ended")
            .unwrap();
        let seq = m.info().unwrap().stream_sequence;
        // FNV-1a: enough to tell payloads apart.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in m.payload.iter() {
            h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
        out.push((seq, m.subject.to_string(), h));
    }
    (info.last_sequence, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_backup_and_restore_of_100_mib() {
    let Some(bin) = moto_bin() else { return };
    let moto = Moto::start(&bin, false);
    moto.create_bucket("bkt");
    let a = Server::natrium();
    let js = a.js().await;
    // 1650 × 64 KiB random = 103 MiB.
    let t0 = Instant::now();
    fill_random(&js, "BIG", 1650, 64 * 1024).await;
    eprintln!("fill: {:?}", t0.elapsed());
    let t0 = Instant::now();
    let want = digest(&js, "BIG").await;
    eprintln!("digest: {:?}", t0.elapsed());
    assert_eq!(want.1.len(), 1650);

    let t0 = Instant::now();
    let b = ok_json(run(
        s3cli(&moto, Some(&a.url)),
        &[
            "stream",
            "backup",
            "BIG",
            "s3://bkt/nightly/big",
            "--json",
            "--chunk-size",
            "1MB",
        ],
    ));
    eprintln!("s3 backup of {} bytes: {:?}", b["bytes"], t0.elapsed());
    assert!(b["bytes"].as_u64().unwrap() >= 100 << 20, "{b}");
    assert_eq!(b["last_seq"], 1650);
    let keys = moto.keys("bkt", "nightly/big/");
    assert_eq!(
        keys,
        vec!["nightly/big/backup.json", "nightly/big/stream.tar.s2"],
        "exactly the folder layout, no marker left"
    );

    // verify streams from the object store.
    let v = ok_json(run(
        s3cli(&moto, None),
        &["backup", "verify", "s3://bkt/nightly/big", "--json"],
    ));
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["total_messages"], 1650, "{v}");

    let t0 = Instant::now();
    let c = Server::natrium();
    let r = ok_json(run(
        s3cli(&moto, Some(&c.url)),
        &["stream", "restore", "s3://bkt/nightly/big", "--json"],
    ));
    eprintln!("s3 restore: {:?}", t0.elapsed());
    assert_eq!(r["messages"], 1650, "{r}");
    // The durable, and the ordered consumer digest() left, come along.
    assert!(r["consumers"].as_u64().unwrap() >= 1, "{r}");
    let jc = c.js().await;
    let d: consumer::PullConsumer = jc
        .get_stream("BIG")
        .await
        .unwrap()
        .get_consumer("D")
        .await
        .unwrap();
    assert_eq!(d.cached_info().name, "D");
    let got = digest(&jc, "BIG").await;
    assert_eq!(got, want);

    // A second backup into the same prefix is refused.
    one_line_error(
        run(
            s3cli(&moto, Some(&a.url)),
            &["stream", "backup", "BIG", "s3://bkt/nightly/big"],
        ),
        "already holds a backup",
    );
}

/// A small stream "name" with consumer "D" and some acks.
async fn small(js: &jetstream::Context, name: &str, n: usize) {
    fill_random(js, name, n, 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_account_backup_and_restore() {
    let Some(bin) = moto_bin() else { return };
    let moto = Moto::start(&bin, false);
    moto.create_bucket("acct");
    let a = Server::natrium();
    let js = a.js().await;
    for (name, n) in [("A1", 30), ("A2", 5), ("A3", 70)] {
        small(&js, name, n).await;
    }
    let b = ok_json(run(
        s3cli(&moto, Some(&a.url)),
        &["account", "backup", "s3://acct/x/y", "--json"],
    ));
    assert_eq!(b["consistent"], true, "{b}");
    assert_eq!(b["streams"].as_array().unwrap().len(), 3);
    let keys = moto.keys("acct", "x/y/");
    assert!(keys.contains(&"x/y/account.json".to_string()), "{keys:?}");
    assert!(
        keys.contains(&"x/y/A2/stream.tar.s2".to_string()),
        "{keys:?}"
    );
    assert!(!keys.iter().any(|k| k.ends_with("INCOMPLETE")), "{keys:?}");
    let v = ok_json(run(
        s3cli(&moto, None),
        &["backup", "verify", "s3://acct/x/y", "--json"],
    ));
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["kind"], "account", "{v}");

    let c = Server::natrium();
    let r = ok_json(run(
        s3cli(&moto, Some(&c.url)),
        &["account", "restore", "s3://acct/x/y", "--json"],
    ));
    assert_eq!(r["restored"].as_array().unwrap().len(), 3, "{r}");
    let jc = c.js().await;
    for name in ["A1", "A2", "A3"] {
        assert_eq!(digest(&jc, name).await, digest(&js, name).await, "{name}");
    }

    // What a cut account backup leaves at its root: the marker. Restore and verify
    // refuse it, ls shows it unfinished.
    let (st, body) = moto.http("PUT", "/acct/x/y/INCOMPLETE");
    assert_eq!(st, 200, "{body}");
    let d = Server::natrium();
    let ls = assert_unfinished(&moto, &d, "account", "s3://acct/x/y", "s3://acct/x");
    assert_eq!(ls[0]["kind"], "account", "{ls}");
}

/// ls and prune on one target (local folder or s3 prefix): three backups a second
/// apart; keep 2 deletes the oldest.
async fn ls_and_prune(mk: impl Fn() -> Command, url: &str, target: &str) {
    for i in 1..=3 {
        ok_json(run(
            {
                let mut c = mk();
                c.args(["-s", url]);
                c
            },
            &[
                "stream",
                "backup",
                "LP",
                &format!("{target}/b{i}"),
                "--json",
            ],
        ));
        if i < 3 {
            std::thread::sleep(Duration::from_millis(1100));
        }
    }
    let ls = ok_json(run(mk(), &["backup", "ls", target, "--json"]));
    let names: Vec<&str> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["b1", "b2", "b3"], "{ls}");
    for e in ls.as_array().unwrap() {
        assert_eq!(e["complete"], true, "{e}");
        assert_eq!(e["streams"], serde_json::json!(["LP"]), "{e}");
        assert_eq!(e["last_seq"]["LP"], 12, "{e}");
        assert!(e["size"].as_u64().unwrap() > 500, "{e}");
        assert!(e["time"].as_str().unwrap().starts_with("20"), "{e}");
    }
    let table = run(mk(), &["backup", "ls", target]);
    assert!(table.status.success());
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("b2") && text.contains("LP@12"), "{text}");

    let dry = run(
        mk(),
        &["backup", "prune", target, "--keep", "2", "--dry-run"],
    );
    assert!(dry.status.success());
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(
        text.contains("Would delete") && text.contains("b1"),
        "{text}"
    );
    assert!(!text.contains("b2") && !text.contains("b3"), "{text}");
    assert_eq!(
        ok_json(run(mk(), &["backup", "ls", target, "--json"]))
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let p = run(mk(), &["backup", "prune", target, "--keep", "2"]);
    assert!(p.status.success(), "{}", String::from_utf8_lossy(&p.stderr));
    assert!(String::from_utf8_lossy(&p.stdout).contains("Deleting"));
    let ls = ok_json(run(mk(), &["backup", "ls", target, "--json"]));
    let names: Vec<&str> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["b2", "b3"]);
    // Nothing left to prune; keep 0 is refused.
    let again = run(mk(), &["backup", "prune", target, "--keep", "2"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("Nothing to prune"));
    assert!(
        !run(mk(), &["backup", "prune", target, "--keep", "0"])
            .status
            .success()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ls_and_prune_on_local_folder_and_s3() {
    let a = Server::natrium();
    small(&a.js().await, "LP", 12).await;
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("backups");
    ls_and_prune(|| Command::new(NATRIUM), &a.url, local.to_str().unwrap()).await;
    assert!(!local.join("b1").exists() && local.join("b2").join("backup.json").is_file());
    // file:// URLs name the same folder.
    let ls = ok_json(run(
        Command::new(NATRIUM),
        &[
            "backup",
            "ls",
            &format!("file://{}", local.display()),
            "--json",
        ],
    ));
    assert_eq!(ls.as_array().unwrap().len(), 2);

    let Some(bin) = moto_bin() else { return };
    let moto = Moto::start(&bin, false);
    moto.create_bucket("lpr");
    ls_and_prune(|| s3cli(&moto, None), &a.url, "s3://lpr/daily").await;
    let keys = moto.keys("lpr", "daily/");
    assert!(keys.iter().all(|k| !k.starts_with("daily/b1/")), "{keys:?}");
    assert_eq!(keys.len(), 4, "{keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_errors_are_one_clear_line() {
    let Some(bin) = moto_bin() else { return };
    let moto = Moto::start(&bin, false);
    moto.create_bucket("real");
    let a = Server::natrium();
    small(&a.js().await, "E", 3).await;
    let cli = || s3cli(&moto, Some(&a.url));
    one_line_error(
        run(cli(), &["stream", "backup", "E", "gs://b/p"]),
        "unsupported URL scheme",
    );
    one_line_error(
        run(cli(), &["stream", "backup", "E", "s3:///p"]),
        "no bucket",
    );
    one_line_error(
        run(cli(), &["stream", "backup", "E", "s3://missing/p"]),
        "bucket does not exist",
    );
    one_line_error(
        run(cli(), &["stream", "restore", "s3://missing/p"]),
        "bucket does not exist",
    );
    one_line_error(
        run(cli(), &["stream", "restore", "s3://real/nothing-here"]),
        "not found",
    );
    // Nothing interrupted to resume: an empty prefix, and a finished backup.
    one_line_error(
        run(
            cli(),
            &[
                "stream",
                "backup",
                "E",
                "s3://real/nothing-here",
                "--resume",
            ],
        ),
        "holds no interrupted backup to resume",
    );
    ok_json(run(
        cli(),
        &["stream", "backup", "E", "s3://real/done", "--json"],
    ));
    one_line_error(
        run(
            cli(),
            &["stream", "backup", "E", "s3://real/done", "--resume"],
        ),
        "holds no interrupted backup to resume",
    );
    assert_eq!(
        moto.keys("real", "done/"),
        vec!["done/backup.json", "done/stream.tar.s2"],
        "a refused resume changes nothing"
    );
    one_line_error(
        run(cli(), &["backup", "ls", "s3://missing/p"]),
        "bucket does not exist",
    );
    // Nothing listens there.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let mut c = cli();
    c.env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{dead_port}"));
    one_line_error(
        run(c, &["stream", "backup", "E", "s3://real/p"]),
        "cannot reach the object store",
    );
    // A server that knows none of our credentials.
    let strict = Moto::start(&bin, true);
    one_line_error(
        run(
            s3cli(&strict, Some(&a.url)),
            &["stream", "backup", "E", "s3://real/p"],
        ),
        "access denied",
    );
    one_line_error(
        run(s3cli(&strict, None), &["backup", "verify", "s3://real/p"]),
        "access denied",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_s3_backup_is_left_incomplete() {
    let Some(bin) = moto_bin() else { return };
    let moto = Moto::start(&bin, false);
    moto.create_bucket("kill");
    let a = Server::natrium();
    let js = a.js().await;
    fill_random(&js, "K", 600, 64 * 1024).await;
    let want = digest(&js, "K").await;
    // Small chunks and a small window: the transfer takes a while.
    let mut child = s3cli(&moto, Some(&a.url))
        .args([
            "stream",
            "backup",
            "K",
            "s3://kill/cut",
            "--chunk-size",
            "16KB",
            "--window-size",
            "64KB",
            "-q",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !moto
        .keys("kill", "cut/")
        .contains(&"cut/INCOMPLETE".to_string())
    {
        assert!(Instant::now() < deadline, "backup never started");
        assert!(child.try_wait().unwrap().is_none(), "backup ended too soon");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Kill it once its multipart upload is under way (the journal object exists),
    // not after a fixed pause: a fast machine finished the whole backup in one.
    while !moto
        .keys("kill", "cut/")
        .contains(&"cut/stream.tar.s2.upload.json".to_string())
    {
        assert!(Instant::now() < deadline, "the upload never started");
        assert!(
            child.try_wait().unwrap().is_none(),
            "backup finished before it could be killed; make the stream bigger"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // SIGKILL (what `Child::kill` sends on Unix): no cleanup runs.
    child.kill().expect("SIGKILL the CLI");
    let _ = child.wait();
    let keys = moto.keys("kill", "cut/");
    assert_eq!(
        keys,
        vec!["cut/INCOMPLETE", "cut/stream.tar.s2.upload.json"],
        "a cut upload is invisible; only its journal is there"
    );
    assert_eq!(moto.uploads("kill"), 1);

    let c = Server::natrium();
    let ls = assert_unfinished(&moto, &c, "stream", "s3://kill/cut", "s3://kill");
    assert_eq!(ls[0]["name"], "cut", "{ls}");

    // Nothing is corrupted: the stream is intact and a new backup into the same prefix
    // (it holds only the marker and the journal) supersedes the interrupted one (its
    // upload is aborted), completes and restores everything.
    assert_eq!(digest(&js, "K").await, want);
    ok_json(run(
        s3cli(&moto, Some(&a.url)),
        &["stream", "backup", "K", "s3://kill/cut", "--json"],
    ));
    assert_eq!(
        moto.keys("kill", "cut/"),
        vec!["cut/backup.json", "cut/stream.tar.s2"]
    );
    assert_eq!(moto.uploads("kill"), 0, "no stale upload left");
    let r = ok_json(run(
        s3cli(&moto, Some(&c.url)),
        &["stream", "restore", "s3://kill/cut", "--json"],
    ));
    assert_eq!(r["messages"], 600);
    assert_eq!(digest(&c.js().await, "K").await, want);
}

/// What a consumer's state looks like from outside: delivered and ack floor (stream
/// sequences) and messages pending.
async fn consumer_state(js: &jetstream::Context, stream: &str, name: &str) -> (u64, u64, u64) {
    let mut c: consumer::PullConsumer = js
        .get_stream(stream)
        .await
        .unwrap()
        .get_consumer(name)
        .await
        .unwrap();
    let i = c.info().await.unwrap();
    (
        i.delivered.stream_sequence,
        i.ack_floor.stream_sequence,
        i.num_pending,
    )
}

/// Pull `n` messages with consumer "D" of `stream` and ack them.
async fn ack_some(js: &jetstream::Context, stream: &str, n: usize) {
    let c: consumer::PullConsumer = js
        .get_stream(stream)
        .await
        .unwrap()
        .get_consumer("D")
        .await
        .unwrap();
    let mut got = c
        .fetch()
        .max_messages(n)
        .expires(Duration::from_secs(5))
        .messages()
        .await
        .unwrap();
    let mut acked = 0;
    while let Some(m) = got.next().await {
        m.unwrap().double_ack().await.unwrap();
        acked += 1;
    }
    assert_eq!(acked, n);
}

/// The issue's S3 test: a backup of more than 100 MiB to moto is killed (SIGKILL, no
/// cleanup) once its journal shows at least one completed part; `--resume` keeps those
/// parts, fetches only the messages after the last intact one (the stream has moved
/// on meanwhile), and the result verifies and restores to exactly the stream and
/// consumer as they stand at the resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_s3_backup_resumes_where_it_stopped() {
    let Some(bin) = moto_bin() else { return };
    let moto = Moto::start(&bin, false);
    moto.create_bucket("res");
    let a = Server::natrium();
    let js = a.js().await;
    // 1650 × 64 KiB random = 103 MiB.
    let t0 = Instant::now();
    fill_random(&js, "R", 1650, 64 * 1024).await;
    ack_some(&js, "R", 40).await;
    eprintln!("fill: {:?}", t0.elapsed());

    let t0 = Instant::now();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = s3cli(&moto, Some(&a.url))
        .args(["stream", "backup", "R", "s3://res/cut", "-q"])
        .stdout(Stdio::null())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    // Kill it once the journal lists a completed part (a 8 MiB part of 103 MiB). moto
    // refuses unsigned reads of objects, so the journal is read with a signed client.
    let store = moto.store("res");
    let journal = object_store::path::Path::from("cut/stream.tar.s2.upload.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    let journaled = loop {
        if let Ok(got) = store.get(&journal).await
            && let Ok(body) = got.bytes().await
            && let Ok(j) = serde_json::from_slice::<Value>(&body)
            && j["parts"].as_array().is_some_and(|p| !p.is_empty())
        {
            break j;
        }
        assert!(Instant::now() < deadline, "no part was journaled in time");
        assert!(
            child.try_wait().unwrap().is_none(),
            "backup ended too soon: {}",
            std::fs::read_to_string(log.path()).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // SIGKILL (what `Child::kill` sends on Unix): no chance to clean up.
    child.kill().expect("SIGKILL the CLI");
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the backup finished before it was killed: {status}"
    );
    let kept_bytes: u64 = journaled["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["bytes"].as_u64().unwrap())
        .sum();
    eprintln!(
        "killed after {:?} with {kept_bytes} bytes journaled",
        t0.elapsed()
    );
    assert!(kept_bytes >= 5 << 20, "{journaled}");
    assert!(
        !moto
            .keys("res", "cut/")
            .contains(&"cut/stream.tar.s2".to_string())
    );
    let c = Server::natrium();
    assert_unfinished(&moto, &c, "stream", "s3://res/cut", "s3://res");

    // The stream moves on: deletes among the kept part and after it, new messages,
    // more acks.
    let st = js.get_stream("R").await.unwrap();
    st.delete_message(5).await.unwrap();
    st.delete_message(1600).await.unwrap();
    let mut acks = Vec::new();
    for i in 0..20 {
        acks.push(
            js.publish(format!("R.new{i}"), format!("late {i}").into())
                .await
                .unwrap(),
        );
    }
    for p in acks {
        p.await.unwrap();
    }
    ack_some(&js, "R", 25).await;
    let want = digest(&js, "R").await;
    let want_d = consumer_state(&js, "R", "D").await;
    assert_eq!(want.0, 1670);

    let t0 = Instant::now();
    let r = ok_json(run(
        s3cli(&moto, Some(&a.url)),
        &[
            "stream",
            "backup",
            "R",
            "s3://res/cut",
            "--resume",
            "--json",
        ],
    ));
    eprintln!("resume: {:?}: {r}", t0.elapsed());
    let kept = r["resumed_after"].as_u64().unwrap();
    // At least the messages the journaled parts held whole, and fewer than all. Each
    // message takes its 64 KiB (barely compressible: the S2 writer mostly stores its
    // chunks as they are) plus its archive entry's header; what the parts hold beyond
    // the last whole message is at most the last, partial S2 frame (1 MiB) and the
    // message cut by it, plus the archive's leading state and config entries.
    let per_msg = (64 << 10) + 128;
    assert!(
        kept * per_msg + (1 << 20) + (128 << 10) >= kept_bytes,
        "{r}"
    );
    assert!(kept < 1650, "{r}");
    assert_eq!(r["last_seq"], 1670, "{r}");
    assert_eq!(r["messages"], 1668, "{r}");
    assert_eq!(
        moto.keys("res", "cut/"),
        vec!["cut/backup.json", "cut/stream.tar.s2"],
        "no marker, journal or scratch object left"
    );
    assert_eq!(moto.uploads("res"), 0, "no stale upload left");

    let v = ok_json(run(
        s3cli(&moto, None),
        &["backup", "verify", "s3://res/cut", "--json"],
    ));
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["total_messages"], 1668, "{v}");

    let t0 = Instant::now();
    let rr = ok_json(run(
        s3cli(&moto, Some(&c.url)),
        &["stream", "restore", "s3://res/cut", "--json"],
    ));
    eprintln!("restore: {:?}", t0.elapsed());
    assert_eq!(rr["messages"], 1668, "{rr}");
    let jc = c.js().await;
    assert_eq!(consumer_state(&jc, "R", "D").await, want_d);
    assert_eq!(digest(&jc, "R").await, want);
}

/// An interrupted s3 backup whose journal lists nothing usable — killed before its
/// first part completed, or naming an upload the store no longer has — keeps nothing:
/// `--resume` takes a full backup instead, and leaves no journal behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_resume_with_nothing_kept_takes_a_full_backup() {
    let Some(bin) = moto_bin() else { return };
    let moto = Moto::start(&bin, false);
    moto.create_bucket("nokeep");
    let a = Server::natrium();
    let js = a.js().await;
    small(&js, "N", 25).await;
    let want = digest(&js, "N").await;
    let store = moto.store("nokeep");
    let put = |key: &str, body: &str| {
        let store = &store;
        let (key, body) = (key.to_string(), body.to_string());
        async move {
            store
                .put(&object_store::path::Path::from(key), body.into())
                .await
                .unwrap();
        }
    };
    for (prefix, journal) in [
        (
            "none",
            r#"{"upload_id":"gone","resumable":true,"parts":[]}"#,
        ),
        (
            "gone",
            r#"{"upload_id":"gone","resumable":true,"parts":[{"etag":"\"x\"","bytes":8388608}]}"#,
        ),
    ] {
        put(
            &format!("{prefix}/INCOMPLETE"),
            "backup of stream N in progress\n",
        )
        .await;
        put(&format!("{prefix}/stream.tar.s2.upload.json"), journal).await;
        let url = format!("s3://nokeep/{prefix}");
        let r = ok_json(run(
            s3cli(&moto, Some(&a.url)),
            &["stream", "backup", "N", &url, "--resume", "--json"],
        ));
        assert_eq!(r["messages"], 25, "{prefix}: {r}");
        assert!(r.get("resumed_after").is_none(), "{prefix}: {r}");
        assert_eq!(
            moto.keys("nokeep", &format!("{prefix}/")),
            vec![
                format!("{prefix}/backup.json"),
                format!("{prefix}/stream.tar.s2")
            ]
        );
        let c = Server::natrium();
        ok_json(run(
            s3cli(&moto, Some(&c.url)),
            &["stream", "restore", &url, "--json"],
        ));
        assert_eq!(digest(&c.js().await, "N").await, want, "{prefix}");
    }
    // The marker of another stream's backup is not resumed as this one.
    put("other/INCOMPLETE", "backup of stream OTHER in progress\n").await;
    one_line_error(
        run(
            s3cli(&moto, Some(&a.url)),
            &["stream", "backup", "N", "s3://nokeep/other", "--resume"],
        ),
        "interrupted backup of another stream",
    );
}

/// Publish `n` small messages to `subject`, each acknowledged.
async fn publish_n(js: &jetstream::Context, subject: &str, n: usize) {
    for i in 0..n {
        js.publish(subject.to_string(), format!("more-{i}").into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

/// `backup.json`'s natrium section of the backup at `prefix` in `bucket`.
async fn natrium_section_s3(moto: &Moto, bucket: &str, prefix: &str) -> Value {
    let key = object_store::path::Path::from(format!("{prefix}/backup.json"));
    let body = moto
        .store(bucket)
        .get(&key)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    v["natrium"].clone()
}

/// Incremental backups with `s3://` targets (issue 8): a full backup to s3, changes
/// (new messages, deletes, acks), `--since` incrementals to s3 after an s3 parent and
/// after a local one; `backup verify` walks each chain on s3 and `stream restore` of
/// its last link rebuilds the stream exactly as it stood at that link's watermark. A
/// damaged or missing parent on s3 fails verify and is refused by restore before any
/// stream is created. Account backups with `--since` on s3 too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_incremental_chains() {
    let Some(bin) = moto_bin() else { return };
    let moto = Moto::start(&bin, false);
    moto.create_bucket("inc");
    let a = Server::natrium();
    let js = a.js().await;
    let local = tempfile::tempdir().unwrap();
    let lfull = local.path().join("lfull");
    let lfull = lfull.to_str().unwrap();
    let backup = |dir: &str, since: Option<&str>| {
        let mut args = vec!["stream", "backup", "INC", dir, "--json"];
        if let Some(s) = since {
            args.extend(["--since", s]);
        }
        ok_json(run(s3cli(&moto, Some(&a.url)), &args))
    };

    small(&js, "INC", 40).await;
    assert_eq!(backup("s3://inc/n/full", None)["last_seq"], 40);
    publish_n(&js, "INC.s0", 20).await;
    let st = js.get_stream("INC").await.unwrap();
    st.delete_message(5).await.unwrap();
    st.delete_message(45).await.unwrap();
    ack_some(&js, "INC", 10).await;
    let inc1 = backup("s3://inc/n/inc1", Some("s3://inc/n/full"));
    assert_eq!(inc1["last_seq"], 60, "{inc1}");
    publish_n(&js, "INC.s1", 10).await;
    st.delete_message(62).await.unwrap();
    ack_some(&js, "INC", 5).await;
    assert_eq!(backup(lfull, None)["last_seq"], 70);
    let inc2 = backup("s3://inc/n/inc2", Some("s3://inc/n/inc1"));
    assert_eq!(inc2["last_seq"], 70, "{inc2}");
    let want2 = digest(&js, "INC").await;
    let want2_d = consumer_state(&js, "INC", "D").await;
    // An s3 incremental after a local full backup.
    publish_n(&js, "INC.s2", 5).await;
    st.delete_message(72).await.unwrap();
    let inc3 = backup("s3://inc/m/inc3", Some(lfull));
    assert_eq!(inc3["last_seq"], 75, "{inc3}");
    let want3 = digest(&js, "INC").await;
    // And a local incremental after an s3 parent.
    let linc = local.path().join("linc");
    let linc = linc.to_str().unwrap();
    assert_eq!(backup(linc, Some("s3://inc/n/inc2"))["last_seq"], 75);
    // Changes after the last links are in none of them.
    publish_n(&js, "INC.s0", 3).await;
    st.delete_message(10).await.unwrap();

    // Parents are recorded relative within the bucket, or where they are.
    let full = natrium_section_s3(&moto, "inc", "n/full").await;
    let n1 = natrium_section_s3(&moto, "inc", "n/inc1").await;
    let n2 = natrium_section_s3(&moto, "inc", "n/inc2").await;
    let n3 = natrium_section_s3(&moto, "inc", "m/inc3").await;
    assert_eq!(full["kind"], "full");
    assert_eq!(n1["kind"], "incremental");
    assert_eq!(n1["parent"], "../full", "{n1}");
    assert_eq!(n1["parent_id"], full["id"]);
    assert_eq!(n1["since"], 40);
    assert_eq!(n2["parent"], "../inc1", "{n2}");
    assert_eq!(n2["since"], 60);
    let lcanon = std::fs::canonicalize(lfull).unwrap();
    assert_eq!(n3["parent"], lcanon.to_str().unwrap(), "{n3}");
    assert_eq!(n3["since"], 70);

    // verify walks the chain on s3.
    let v = ok_json(run(
        s3cli(&moto, None),
        &["backup", "verify", "s3://inc/n/inc2", "--json"],
    ));
    assert_eq!(v["ok"], true, "{v}");
    let links = v["links"].as_array().unwrap();
    assert_eq!(links.len(), 3, "{v}");
    assert_eq!(links[0]["format"], "v2", "{v}");
    assert_eq!(links[2]["format"], "incremental", "{v}");
    assert_eq!(links[2]["since"], 60, "{v}");
    let v = ok_json(run(
        s3cli(&moto, None),
        &["backup", "verify", "s3://inc/m/inc3", "--json"],
    ));
    assert_eq!(v["links"].as_array().unwrap().len(), 2, "{v}");
    let bj: Value =
        serde_json::from_slice(&std::fs::read(format!("{linc}/backup.json")).unwrap()).unwrap();
    assert_eq!(bj["natrium"]["parent"], "s3://inc/n/inc2", "{bj}");
    let v = ok_json(run(
        s3cli(&moto, None),
        &["backup", "verify", linc, "--json"],
    ));
    assert_eq!(v["links"].as_array().unwrap().len(), 4, "{v}");

    // Restores: each chain into a fresh server, the stream at its last watermark.
    let c = Server::natrium();
    let r = ok_json(run(
        s3cli(&moto, Some(&c.url)),
        &["stream", "restore", "s3://inc/n/inc2", "--json"],
    ));
    assert_eq!(r["last_seq"], 70, "{r}");
    let jc = c.js().await;
    assert_eq!(digest(&jc, "INC").await, want2);
    assert_eq!(consumer_state(&jc, "INC", "D").await, want2_d);
    let d = Server::natrium();
    let r = ok_json(run(
        s3cli(&moto, Some(&d.url)),
        &["stream", "restore", "s3://inc/m/inc3", "--json"],
    ));
    assert_eq!(r["last_seq"], 75, "{r}");
    assert_eq!(digest(&d.js().await, "INC").await, want3);

    // Account backups: --since an earlier account backup on s3.
    ok_json(run(
        s3cli(&moto, Some(&a.url)),
        &["account", "backup", "s3://inc/acct/full", "--json"],
    ));
    publish_n(&js, "INC.s1", 4).await;
    let ab = ok_json(run(
        s3cli(&moto, Some(&a.url)),
        &[
            "account",
            "backup",
            "s3://inc/acct/inc",
            "--since",
            "s3://inc/acct/full",
            "--json",
        ],
    ));
    assert_eq!(ab["streams"][0]["last_seq"], 82, "{ab}");
    let an = natrium_section_s3(&moto, "inc", "acct/inc/INC").await;
    assert_eq!(an["kind"], "incremental", "{an}");
    assert_eq!(an["parent"], "../../full/INC", "{an}");
    let v = ok_json(run(
        s3cli(&moto, None),
        &["backup", "verify", "s3://inc/acct/inc", "--json"],
    ));
    assert_eq!(v["ok"], true, "{v}");
    let want_acct = digest(&js, "INC").await;
    let e = Server::natrium();
    ok_json(run(
        s3cli(&moto, Some(&e.url)),
        &["account", "restore", "s3://inc/acct/inc", "--json"],
    ));
    assert_eq!(digest(&e.js().await, "INC").await, want_acct);
    // The account's stream chains are checked by verify: a damaged parent fails it.
    let store = moto.store("inc");
    let acct_full = object_store::path::Path::from("acct/full/INC/stream.tar.s2");
    let good = store.get(&acct_full).await.unwrap().bytes().await.unwrap();
    store
        .put(&acct_full, good.slice(..good.len() / 2).into())
        .await
        .unwrap();
    let out = run(
        s3cli(&moto, None),
        &["backup", "verify", "s3://inc/acct/inc", "--json"],
    );
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("acct/full/INC"), "{text}");

    // A damaged link: verify names it, restore refuses before creating the stream.
    let archive = object_store::path::Path::from("n/inc1/stream.tar.s2");
    let good = store.get(&archive).await.unwrap().bytes().await.unwrap();
    let mut bad = good.to_vec();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    store.put(&archive, bad.into()).await.unwrap();
    let out = run(
        s3cli(&moto, None),
        &["backup", "verify", "s3://inc/n/inc2", "--json"],
    );
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("n/inc1") && text.contains("damaged"),
        "{text}"
    );
    let f = Server::natrium();
    let out = run(
        s3cli(&moto, Some(&f.url)),
        &["stream", "restore", "s3://inc/n/inc2"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("chain broken"), "{err}");
    let jf = f.js().await;
    assert!(jf.get_stream("INC").await.is_err(), "nothing restored");

    // A missing parent: the full backup gone.
    store.put(&archive, good.into()).await.unwrap();
    store
        .delete(&object_store::path::Path::from("n/full/backup.json"))
        .await
        .unwrap();
    let out = run(
        s3cli(&moto, None),
        &["backup", "verify", "s3://inc/n/inc2", "--json"],
    );
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("parent") && text.contains("n/full"), "{text}");
    let out = run(
        s3cli(&moto, Some(&f.url)),
        &["stream", "restore", "s3://inc/n/inc2"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("chain broken") && err.contains("n/full"),
        "{err}"
    );
    assert!(jf.get_stream("INC").await.is_err(), "nothing restored");
}

/// A TCP proxy on loopback to `to` that passes bytes at about `up` bytes per second
/// from client to server and `down` from server to client: a thin link to the object
/// store.
async fn thin_link(to: u16, up: u64, down: u64) -> (u16, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
    async fn pump(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin, rate: u64) {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = from.read(&mut buf).await {
            if n == 0 || to.write_all(&buf[..n]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs_f64(n as f64 / rate as f64)).await;
        }
        let _ = to.shutdown().await;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(outbound) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await else {
                    return;
                };
                let (from_client, to_client) = inbound.into_split();
                let (from_server, to_server) = outbound.into_split();
                tokio::join!(
                    pump(from_client, to_server, up),
                    pump(from_server, to_client, down)
                );
            });
        }
    });
    (port, task)
}

/// Unthrottled, for practical purposes.
const FAST: u64 = 1 << 40;

/// A backup to an object store slower than the snapshot's flow timeout allows: each
/// 5 MiB part takes ~7 s through a ~700 KB/s uplink, one part at a time, so the CLI
/// holds back the stream's chunks (and their acks) longer than the server's 5 s, with
/// the server's window (256 KiB) full. The CLI's keep-alives keep the transfer going;
/// the backup completes and restores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_object_store_does_not_time_the_backup_out() {
    let Some(bin) = moto_bin() else { return };
    let moto = Moto::start(&bin, false);
    moto.create_bucket("slow");
    let (port, _proxy) = thin_link(moto.port, 700 * 1000, FAST).await;
    let a = Server::natrium();
    let js = a.js().await;
    // ~11 MiB of incompressible data: three parts, the second held back for a whole
    // upload of the first.
    fill_random(&js, "SLOW", 1100, 10 * 1024).await;
    let want = digest(&js, "SLOW").await;
    let mut c = s3cli(&moto, Some(&a.url));
    c.env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("NATRIUM_S3_PART_MIB", "5")
        .env("NATRIUM_S3_PARTS_IN_FLIGHT", "1");
    let started = Instant::now();
    // A small window, so that the server runs out of it while the CLI waits for a part.
    let r = ok_json(run(
        c,
        &[
            "stream",
            "backup",
            "SLOW",
            "s3://slow/b",
            "--window-size",
            "256KiB",
            "--json",
        ],
    ));
    assert!(
        started.elapsed() > Duration::from_secs(10),
        "the uplink was not slow enough to test anything ({:?})",
        started.elapsed()
    );
    assert_eq!(r["messages"], 1100, "{r}");
    let b = Server::natrium();
    ok_json(run(
        s3cli(&moto, Some(&b.url)),
        &["stream", "restore", "s3://slow/b", "--json"],
    ));
    assert!(
        digest(&b.js().await, "SLOW").await == want,
        "restored stream differs"
    );
}

/// nats-server takes no keep-alives: the same slow backup from it ends with its
/// `408 No Flow Response`, and the CLI says what to do about it (docs/compat.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_object_store_times_out_a_nats_server_backup_with_a_hint() {
    let Some(bin) = moto_bin() else { return };
    let Some(n) = Server::nats("a_slow_object_store_times_out_a_nats_server_backup_with_a_hint")
    else {
        return;
    };
    let moto = Moto::start(&bin, false);
    moto.create_bucket("slown");
    let (port, _proxy) = thin_link(moto.port, 700 * 1000, FAST).await;
    fill_random(&n.js().await, "SLOWN", 1100, 10 * 1024).await;
    let mut c = s3cli(&moto, Some(&n.url));
    c.env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("NATRIUM_S3_PART_MIB", "5")
        .env("NATRIUM_S3_PARTS_IN_FLIGHT", "1");
    let out = run(
        c,
        &[
            "stream",
            "backup",
            "SLOWN",
            "s3://slown/b",
            "--window-size",
            "256KiB",
        ],
    );
    assert!(
        !out.status.success(),
        "nats-server took no keep-alives, yet it finished"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("408 No Flow Response") && err.contains("--window-size"),
        "{err}"
    );
}

/// A restore from an object store slower than the server's 5 s restore idle timeout
/// allows per chunk: through a ~120 KB/s downlink a whole 1 MiB chunk takes ~9 s, so
/// the CLI sends what has arrived after a second instead; the restore completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_object_store_does_not_time_the_restore_out() {
    let Some(bin) = moto_bin() else { return };
    let moto = Moto::start(&bin, false);
    moto.create_bucket("slowr");
    let a = Server::natrium();
    let js = a.js().await;
    // ~1.5 MiB of incompressible data.
    fill_random(&js, "SLOWR", 150, 10 * 1024).await;
    let want = digest(&js, "SLOWR").await;
    ok_json(run(
        s3cli(&moto, Some(&a.url)),
        &["stream", "backup", "SLOWR", "s3://slowr/b", "--json"],
    ));
    let (port, _proxy) = thin_link(moto.port, FAST, 120 * 1000).await;
    let b = Server::natrium();
    let mut c = s3cli(&moto, Some(&b.url));
    c.env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"));
    let started = Instant::now();
    ok_json(run(c, &["stream", "restore", "s3://slowr/b", "--json"]));
    assert!(
        started.elapsed() > Duration::from_secs(8),
        "the downlink was not slow enough to test anything ({:?})",
        started.elapsed()
    );
    assert!(
        digest(&b.js().await, "SLOWR").await == want,
        "restored stream differs"
    );
}
