//! Resumable restores, end to end: `natrium stream restore DIR` killed (SIGKILL) in
//! the middle of a large upload leaves no stream behind, and `--resume` continues it
//! from the last sequence natrium-server kept, ending in exactly the backed-up stream
//! (every message, every consumer). A resume with nothing to continue, and a resume
//! against nats-server, are one clear error each and create nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use common::moto::{Moto, moto_bin};
use common::{NATRIUM, Server, ok_json};
use futures::StreamExt;

/// Stream `name` with `count` incompressible messages of `size` bytes on three
/// subjects, a few deleted, and two durable consumers with acks and pending.
async fn fill(js: &jetstream::Context, name: &str, count: u32, size: usize) {
    js.create_stream(stream::Config {
        name: name.into(),
        subjects: vec![format!("{name}.>")],
        ..Default::default()
    })
    .await
    .unwrap();
    common::publish_noise(js, name, u64::from(count), size, 0x9e37_79b9_7f4a_7c15, 128).await;
    let st = js.get_stream(name).await.unwrap();
    for seq in [2, 3, u64::from(count) / 2] {
        st.delete_message(seq).await.unwrap();
    }
    for (durable, take, ack) in [("C1", 20, 15), ("C2", 5, 5)] {
        let c: consumer::PullConsumer = st
            .create_consumer(consumer::pull::Config {
                durable_name: Some(durable.into()),
                ..Default::default()
            })
            .await
            .unwrap();
        let mut batch = c.fetch().max_messages(take).messages().await.unwrap();
        let mut n = 0;
        while let Some(m) = batch.next().await {
            let m = m.unwrap();
            n += 1;
            if n <= ack {
                m.double_ack().await.unwrap();
            }
        }
        assert_eq!(n, take);
    }
}

/// FNV-1a of a payload (the comparison keeps hashes, not 30 MB).
fn hash(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Every message as (seq, subject, payload hash), and each consumer's (name, ack
/// floor, delivered, ack pending, pending).
async fn digest(js: &jetstream::Context, name: &str) -> Digest {
    let mut st = js.get_stream(name).await.unwrap();
    let count = st.info().await.unwrap().state.messages;
    // One ordered consumer streams them all (much faster than a get per sequence).
    let reader = st
        .create_consumer(consumer::pull::OrderedConfig::default())
        .await
        .unwrap();
    let mut all = reader.messages().await.unwrap();
    let mut msgs = Vec::new();
    while (msgs.len() as u64) < count {
        let m = tokio::time::timeout(Duration::from_secs(20), all.next())
            .await
            .expect("messages in time")
            .unwrap()
            .unwrap();
        let seq = m.info().unwrap().stream_sequence;
        msgs.push((seq, m.subject.to_string(), hash(&m.payload)));
    }
    let mut cons = Vec::new();
    for c in ["C1", "C2"] {
        let mut pc: consumer::PullConsumer = st.get_consumer(c).await.unwrap();
        let i = pc.info().await.unwrap();
        cons.push((
            c.to_string(),
            i.ack_floor.stream_sequence,
            i.delivered.stream_sequence,
            i.num_ack_pending,
            i.num_pending,
        ));
    }
    (msgs, cons)
}

/// Bytes under `dir`, recursively.
fn du(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => du(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// The restore staging folders of stream `name` on a natrium-server.
fn staging(server: &Server, name: &str) -> Vec<PathBuf> {
    let streams = server
        .store_dir()
        .join("jetstream")
        .join("$G")
        .join("streams");
    std::fs::read_dir(streams)
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(&format!(".restore-{name}-"))
                })
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

async fn missing(js: &jetstream::Context, name: &str) -> bool {
    js.get_stream(name).await.is_err()
}

/// The CLI against `url`, with `env` set (and nothing of the caller's NATS_*/AWS_*).
fn cli(url: &str, env: &[(&str, String)]) -> Command {
    let mut c = Command::new(NATRIUM);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("AWS_") || k.starts_with("NATS_") {
            c.env_remove(&*k);
        }
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.args(["-s", url]).stdin(Stdio::null());
    c
}

/// How a restore is cut short.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cut {
    /// SIGKILL: no chance to clean up.
    Kill,
    /// SIGINT (Ctrl-C): the CLI stops and says how to resume.
    CtrlC,
}

/// Restore `target` into `b`, cut the CLI short once the server staged a third of
/// `archive` bytes, check nothing is visible, resume, and compare with `want`.
async fn kill_and_resume(
    b: &Server,
    target: &str,
    env: &[(&str, String)],
    archive: u64,
    want: &Digest,
) {
    cut_and_resume(b, target, env, archive, want, Cut::Kill).await;
}

/// [`kill_and_resume`], cut either way.
async fn cut_and_resume(
    b: &Server,
    target: &str,
    env: &[(&str, String)],
    archive: u64,
    want: &Digest,
    cut: Cut,
) {
    let jsb = b.js().await;
    let mut child = cli(&b.url, env)
        .args(["stream", "restore", target, "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill it once the server holds a good part of the stream (staged, hidden).
    wait_until_staged(b, &mut child, archive);
    match cut {
        // SIGKILL (what `Child::kill` sends on Unix): no chance to clean up.
        Cut::Kill => {
            child.kill().expect("SIGKILL the CLI");
            let _ = child.wait();
        }
        Cut::CtrlC => {
            // Handled (an exit code, not death by the signal), with the way on.
            let err = common::ctrl_c(child);
            assert!(
                err.contains("interrupted") && err.contains("--resume"),
                "{err}"
            );
        }
    }
    assert!(missing(&jsb, "BIG").await, "a cut restore is visible");

    // The resume waits for the server to park the cut upload, then sends the rest.
    let r = ok_json(
        cli(&b.url, env)
            .args(["stream", "restore", target, "--resume", "--json"])
            .output()
            .unwrap(),
    );
    let sent = r["bytes"].as_u64().unwrap();
    assert!(
        sent > 0 && sent < archive * 3 / 4,
        "resume sent {sent} of {archive}: {r}"
    );
    assert_eq!(r["consumers"], 2, "{r}");
    assert!(digest(&jsb, "BIG").await == *want, "resumed stream differs");
    assert!(staging(b, "BIG").is_empty());
}

/// A natrium-server stream `BIG` of about 24 MiB with its consumers, backed up into
/// `dir/big`: the folder, the stream's digest and the archive's size.
async fn big_backup(dir: &Path) -> (PathBuf, Digest, u64) {
    let a = Server::natrium();
    let js = a.js().await;
    fill(&js, "BIG", 2000, 12 * 1024).await;
    let bdir = dir.join("big");
    ok_json(common::natrium(
        Some(&a.url),
        &["stream", "backup", "BIG", bdir.to_str().unwrap(), "--json"],
        &[],
    ));
    // After the backup: the digest's ordered consumer is not part of it.
    let want = digest(&js, "BIG").await;
    let archive = std::fs::metadata(bdir.join("stream.tar.s2")).unwrap().len();
    assert!(archive > 16 << 20, "archive of {archive} bytes");
    (bdir, want, archive)
}

/// Wait (at most 60 s) until `b` has staged a third of `archive` bytes of the restore
/// `child` runs, failing if the restore ends first.
fn wait_until_staged(b: &Server, child: &mut std::process::Child, archive: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let staged: u64 = staging(b, "BIG").iter().map(|p| du(p)).sum();
        if staged > archive / 3 {
            return;
        }
        assert!(Instant::now() < deadline, "restore never got going");
        assert!(
            child.try_wait().unwrap().is_none(),
            "restore finished before it could be cut; make the stream bigger"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

type Digest = (Vec<(u64, String, u64)>, Vec<(String, u64, u64, usize, u64)>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_restore_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let (bdir, want, archive) = big_backup(dir.path()).await;
    let bpath = bdir.to_str().unwrap();

    let b = Server::natrium();
    kill_and_resume(&b, bpath, &[], archive, &want).await;
    let jsb = b.js().await;
    // Ctrl-C instead of a kill: the same, into another fresh server.
    let c = Server::natrium();
    cut_and_resume(&c, bpath, &[], archive, &want, Cut::CtrlC).await;

    // Nothing left to resume: one clear line, and no stream under that name.
    let out = common::natrium(
        Some(&b.url),
        &["stream", "restore", bpath, "--name", "OTHER", "--resume"],
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no interrupted restore"), "{err}");
    common::assert_one_line_error(&err);
    assert!(missing(&jsb, "OTHER").await);

    // nats-server cannot resume: a clear error, nothing created.
    if let Some(n) = Server::nats("killed_restore_resumes_where_it_stopped") {
        let out = common::natrium(Some(&n.url), &["stream", "restore", bpath, "--resume"], &[]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("cannot resume restores"), "{err}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(missing(&n.js().await, "BIG").await);
    }
}

/// The same from an `s3://` backup, against moto (`MOTO_SERVER_BIN`, as in
/// backup_s3.rs; without it the test prints a notice and passes without running).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_s3_restore_resumes() {
    let Some(bin) = moto_bin() else {
        return;
    };
    let moto = Moto::start(&bin, false);
    moto.create_bucket("resume");
    let env = moto.aws_env();

    let a = Server::natrium();
    let js = a.js().await;
    fill(&js, "BIG", 1400, 12 * 1024).await;
    let r = ok_json(
        cli(&a.url, &env)
            .args(["stream", "backup", "BIG", "s3://resume/big", "--json"])
            .output()
            .unwrap(),
    );
    let want = digest(&js, "BIG").await;
    let archive = r["bytes"].as_u64().unwrap();
    assert!(archive > 12 << 20, "{r}");
    let b = Server::natrium();
    kill_and_resume(&b, "s3://resume/big", &env, archive, &want).await;
}

/// `account restore --resume` after an account restore that stopped between streams:
/// the streams that exist are skipped, those with nothing to resume are restored from
/// the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_restore_resume_skips_done_streams() {
    let a = Server::natrium();
    let js = a.js().await;
    fill(&js, "A1", 60, 1024).await;
    fill(&js, "A2", 40, 1024).await;
    let dir = tempfile::tempdir().unwrap();
    let adir = dir.path().join("acct");
    let apath = adir.to_str().unwrap();
    ok_json(common::natrium(
        Some(&a.url),
        &["account", "backup", apath, "--json"],
        &[],
    ));
    let want1 = digest(&js, "A1").await;
    let want2 = digest(&js, "A2").await;
    let b = Server::natrium();
    // The first run got as far as A1.
    ok_json(common::natrium(
        Some(&b.url),
        &[
            "stream",
            "restore",
            adir.join("A1").to_str().unwrap(),
            "--json",
        ],
        &[],
    ));
    let r = ok_json(common::natrium(
        Some(&b.url),
        &["account", "restore", apath, "--resume", "--json"],
        &[],
    ));
    assert_eq!(r["skipped"], serde_json::json!(["A1"]), "{r}");
    assert_eq!(r["restored"][0]["stream"], "A2", "{r}");
    let jsb = b.js().await;
    assert!(digest(&jsb, "A1").await == want1);
    assert!(digest(&jsb, "A2").await == want2);
}

/// The server, not the client, dies mid-restore (SIGKILL while it stages the upload):
/// after a restart the stream does not exist, the staging folder is gone (removed at
/// start, before recovery), and a new restore of the same backup gives the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_restore_restarts_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let (bdir, want, archive) = big_backup(dir.path()).await;
    let bpath = bdir.to_str().unwrap();

    let mut b = Server::natrium();
    let mut child = cli(&b.url, &[])
        .args(["stream", "restore", bpath, "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until_staged(&b, &mut child, archive);
    b.crash_and_restart();
    // The client loses its server; it must give up, not hang.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the restore client did not end after its server died");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        !status.success(),
        "a restore cut by the server reported success"
    );
    let jsb = b.js().await;
    assert!(
        missing(&jsb, "BIG").await,
        "a cut restore is visible after restart"
    );
    assert!(
        staging(&b, "BIG").is_empty(),
        "staging left after restart: {:?}",
        staging(&b, "BIG")
    );
    ok_json(common::natrium(
        Some(&b.url),
        &["stream", "restore", bpath, "--json"],
        &[],
    ));
    assert!(digest(&jsb, "BIG").await == want, "restored stream differs");
}
