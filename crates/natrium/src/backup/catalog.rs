//! `natrium backup ls TARGET` and `natrium backup prune TARGET --keep N`: the backups
//! kept side by side in one folder or object prefix.
//!
//! Why: nightly backups pile up (`s3://bucket/nightly/2026-11-01/`, `…-02/`, …) and an
//! operator needs to see what is there and drop the old ones without deleting an
//! incremental whose parent is still needed, or the parent of a kept incremental. So
//! backups are grouped into *chains*: a full backup and every incremental that
//! (transitively) builds on it. `prune --keep N` keeps the newest N chains whole.
//!
//! What counts as a backup below TARGET (each child folder/prefix is looked at):
//! - a stream backup: it holds `backup.json`, `stream.tar.s2` or `INCOMPLETE`;
//! - an account backup: it holds `account.json` or stream-backup sub-folders.
//!
//! TARGET itself may also be one backup (it holds `backup.json`, `stream.tar.s2` or
//! `account.json`); then `ls` shows just it and `prune` refuses.
//!
//! Incremental backups describe themselves in `backup.json` (or `account.json`) under
//! `"natrium": {"id", "kind": "full"|"incremental", "parent", "parent_id",
//! "watermark", "created"}`. A backup without that key is a full chain of one. An
//! incremental belongs to the chain of its parent, found by `parent_id` (another
//! backup's `id`) or else by `parent` (a path or URL whose last component names a
//! sibling). An incremental whose parent is gone roots a chain of its own.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;

use super::BackupError;
use super::layout::{ARCHIVE, INCOMPLETE, META};
use super::target::{Listed, Target};

/// Natrium's account-level file.
pub const ACCOUNT_META: &str = "account.json";

/// One backup found at a target.
#[derive(Debug, Clone, Serialize)]
pub struct BackupEntry {
    /// Its folder name below the target (empty when the target itself is the backup).
    pub name: String,
    /// Where it is (a path or an `s3://` URL).
    pub location: String,
    /// `"stream"` or `"account"`.
    pub kind: &'static str,
    /// Finished (not marked `INCOMPLETE`, metadata present).
    pub complete: bool,
    /// When it was taken (RFC 3339): `natrium.created`, else the account freeze time,
    /// else the newest file's modification time.
    pub time: String,
    /// The same, Unix seconds (for ordering).
    #[serde(skip)]
    pub unix: i64,
    /// The streams it holds.
    pub streams: Vec<String>,
    /// Per stream, the last sequence it covers.
    pub last_seq: BTreeMap<String, u64>,
    /// Natrium's watermark (`natrium.watermark`), if written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watermark: Option<Value>,
    /// Total bytes of its files.
    pub size: u64,
    /// The `natrium` key (id, kind, parent, …), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub natrium: Option<Value>,
    /// Name of the backup that roots its chain (itself for a full backup).
    pub chain: String,
}

impl BackupEntry {
    fn id(&self) -> String {
        self.natrium
            .as_ref()
            .and_then(|n| n.get("id"))
            .and_then(Value::as_str)
            .map_or_else(|| self.name.clone(), str::to_string)
    }

    fn is_incremental(&self) -> bool {
        self.natrium
            .as_ref()
            .and_then(|n| n.get("kind"))
            .and_then(Value::as_str)
            == Some("incremental")
    }
}

/// Every backup at `target`, oldest first, with chains filled in.
pub async fn list(target: &Target) -> Result<Vec<BackupEntry>, BackupError> {
    let files = target.list_recursive().await?;
    let mut entries = Vec::new();
    let top: Vec<&Listed> = files.iter().filter(|f| !f.rel.contains('/')).collect();
    let has_top = |n: &str| top.iter().any(|f| f.rel == n);
    if has_top(ACCOUNT_META) {
        entries.push(describe(target, "", "account", &files).await?);
    } else if has_top(META) || has_top(ARCHIVE) {
        entries.push(describe(target, "", "stream", &files).await?);
    } else if has_top(INCOMPLETE) {
        let kind = if files.iter().any(|f| f.rel.contains('/')) {
            "account"
        } else {
            "stream"
        };
        entries.push(describe(target, "", kind, &files).await?);
    } else {
        let mut groups: BTreeMap<&str, Vec<Listed>> = BTreeMap::new();
        for f in &files {
            if let Some((g, rest)) = f.rel.split_once('/') {
                groups.entry(g).or_default().push(Listed {
                    rel: rest.to_string(),
                    size: f.size,
                    modified: f.modified,
                });
            }
        }
        for (g, inner) in groups {
            let deep = inner.iter().any(|f| f.rel.contains('/'));
            let has = |n: &str| inner.iter().any(|f| f.rel == n);
            let kind = if has(ACCOUNT_META) || deep {
                "account"
            } else if has(META) || has(ARCHIVE) || has(INCOMPLETE) {
                "stream"
            } else {
                continue;
            };
            entries.push(describe(&target.join(g), g, kind, &inner).await?);
        }
    }
    assign_chains(&mut entries);
    entries.sort_by(|a, b| a.unix.cmp(&b.unix).then(a.name.cmp(&b.name)));
    Ok(entries)
}

fn parse_json(t: &Target, name: &str, bytes: &[u8]) -> Result<Value, BackupError> {
    serde_json::from_slice(bytes).map_err(|e| BackupError::Json {
        path: t.location(name),
        detail: e.to_string(),
    })
}

fn rfc3339_unix(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(time::OffsetDateTime::unix_timestamp)
}

fn unix_rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Read one backup's metadata. `files` are its files, relative to `t`.
async fn describe(
    t: &Target,
    name: &str,
    kind: &'static str,
    files: &[Listed],
) -> Result<BackupEntry, BackupError> {
    let has = |n: &str| files.iter().any(|f| f.rel == n);
    let size = files.iter().map(|f| f.size).sum();
    let newest = files.iter().map(|f| f.modified).max().unwrap_or(0);
    let mut e = BackupEntry {
        name: name.to_string(),
        location: t.display(),
        kind,
        complete: false,
        time: String::new(),
        unix: newest,
        streams: Vec::new(),
        last_seq: BTreeMap::new(),
        watermark: None,
        size,
        natrium: None,
        chain: String::new(),
    };
    let mut stated_time = None;
    if kind == "stream" {
        e.complete = has(META) && has(ARCHIVE) && !has(INCOMPLETE);
        if has(META) {
            let v = parse_json(t, META, &t.read_small(META).await?)?;
            stream_meta(&v, &mut e);
            e.natrium = v.get("natrium").cloned();
        }
    } else {
        // Stream sub-folders.
        let mut subs: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for f in files {
            if let Some((s, rest)) = f.rel.split_once('/') {
                subs.entry(s).or_default().push(rest);
            }
        }
        let marked = has(INCOMPLETE)
            || subs
                .values()
                .any(|fs| fs.contains(&INCOMPLETE) || !fs.contains(&META));
        let account = if has(ACCOUNT_META) {
            Some(parse_json(
                t,
                ACCOUNT_META,
                &t.read_small(ACCOUNT_META).await?,
            )?)
        } else {
            None
        };
        e.complete = !marked && !subs.is_empty();
        match &account {
            Some(a) => {
                stated_time = a.get("time").and_then(Value::as_str).and_then(rfc3339_unix);
                if let Some(m) = a.get("streams").and_then(Value::as_object) {
                    for (s, v) in m {
                        let ls = v.get("last_seq").and_then(Value::as_u64).unwrap_or(0);
                        e.last_seq.insert(s.clone(), ls);
                    }
                }
                e.natrium = a.get("natrium").cloned();
            }
            // A nats CLI account backup: no account.json; each stream tells its own.
            None => {
                for (s, fs) in &subs {
                    if fs.contains(&META) {
                        let st = t.join(s);
                        let v = parse_json(&st, META, &st.read_small(META).await?)?;
                        stream_meta(&v, &mut e);
                    }
                }
            }
        }
        if e.natrium.is_none() {
            // Incremental account backups may describe themselves per stream only.
            if let Some((s, _)) = subs.iter().find(|(_, fs)| fs.contains(&META)) {
                let st = t.join(s);
                let v = parse_json(&st, META, &st.read_small(META).await?)?;
                e.natrium = v.get("natrium").cloned();
            }
        }
        for s in subs.keys() {
            if !e.streams.iter().any(|x| x == s) {
                e.streams.push((*s).to_string());
            }
        }
        e.streams.sort();
    }
    if let Some(n) = &e.natrium {
        e.watermark = n.get("watermark").cloned();
        if let Some(t) = n
            .get("created")
            .and_then(Value::as_str)
            .and_then(rfc3339_unix)
        {
            stated_time = Some(t);
        }
    }
    if let Some(t) = stated_time {
        e.unix = t;
    }
    e.time = unix_rfc3339(e.unix);
    Ok(e)
}

/// Stream name and last sequence from a `backup.json`.
fn stream_meta(v: &Value, e: &mut BackupEntry) {
    let name = v
        .pointer("/config/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let last = v
        .pointer("/state/last_seq")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if !name.is_empty() {
        e.last_seq.insert(name.clone(), last);
        if !e.streams.contains(&name) {
            e.streams.push(name);
        }
    }
}

/// Fill `chain` of every entry: the name of the full backup its parents lead to.
pub fn assign_chains(entries: &mut [BackupEntry]) {
    let by_id: HashMap<String, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.id(), i))
        .collect();
    let by_name: HashMap<String, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.name.clone(), i))
        .collect();
    let parent_of = |e: &BackupEntry| -> Option<usize> {
        if !e.is_incremental() {
            return None;
        }
        let n = e.natrium.as_ref()?;
        if let Some(i) = n
            .get("parent_id")
            .and_then(Value::as_str)
            .and_then(|id| by_id.get(id))
        {
            return Some(*i);
        }
        let parent = n.get("parent").and_then(Value::as_str)?;
        let last = parent.trim_end_matches('/').rsplit('/').next()?;
        by_name.get(last).copied()
    };
    let parents: Vec<Option<usize>> = entries.iter().map(parent_of).collect();
    let roots: Vec<usize> = (0..entries.len())
        .map(|mut i| {
            // Bounded walk: a cycle in hand-edited metadata cannot loop forever.
            for _ in 0..entries.len() {
                match parents[i] {
                    Some(p) if p != i => i = p,
                    _ => break,
                }
            }
            i
        })
        .collect();
    let names: Vec<String> = roots.iter().map(|&r| entries[r].name.clone()).collect();
    for (e, n) in entries.iter_mut().zip(names) {
        e.chain = n;
    }
}

/// Which backups `prune --keep keep` deletes: every member of all but the newest
/// `keep` chains (a chain dates from its root), plus unfinished backups older than
/// the oldest kept chain (a backup still being written is newer, and stays). Returned
/// newest first, so incrementals go before the backups they build on.
pub fn to_prune(entries: &[BackupEntry], keep: usize) -> Vec<&BackupEntry> {
    let mut roots: Vec<&BackupEntry> = entries
        .iter()
        .filter(|e| e.complete && e.chain == e.name)
        .collect();
    roots.sort_by(|a, b| b.unix.cmp(&a.unix).then(b.name.cmp(&a.name)));
    let kept: Vec<&str> = roots.iter().take(keep).map(|e| e.name.as_str()).collect();
    let oldest_kept = roots.iter().take(keep).map(|e| e.unix).min();
    let mut out: Vec<&BackupEntry> = entries
        .iter()
        .filter(|e| {
            if e.complete || kept.contains(&e.chain.as_str()) {
                !kept.contains(&e.chain.as_str())
            } else {
                oldest_kept.is_some_and(|t| e.unix < t)
            }
        })
        .collect();
    out.sort_by(|a, b| b.unix.cmp(&a.unix).then(b.name.cmp(&a.name)));
    out
}

/// Delete one backup: its metadata first (so a prune cut short leaves something
/// restore refuses, never something that looks whole), then everything else.
pub async fn delete(target: &Target, e: &BackupEntry) -> Result<(), BackupError> {
    let t = target.join(&e.name);
    for m in [META, ACCOUNT_META] {
        if t.exists(m).await? {
            t.remove(m).await?;
        }
    }
    t.remove_all().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A stream backup folder with a hand-written backup.json.
    fn stream_backup(dir: &std::path::Path, name: &str, last_seq: u64, natrium: Option<Value>) {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        let mut bj = json!({"config": {"name": "ORDERS"}, "state": {"last_seq": last_seq}});
        if let Some(n) = natrium {
            bj["natrium"] = n;
        }
        std::fs::write(d.join(META), serde_json::to_vec(&bj).unwrap()).unwrap();
        std::fs::write(d.join(ARCHIVE), vec![0u8; 100 + last_seq as usize]).unwrap();
    }

    fn nat(id: &str, kind: &str, parent: Option<&str>, created: &str) -> Value {
        let mut v = json!({"id": id, "kind": kind, "watermark": {"ORDERS": 1}, "created": created});
        if let Some(p) = parent {
            v["parent_id"] = json!(p);
            v["parent"] = json!(format!("/somewhere/else/{p}-dir"));
        }
        v
    }

    #[tokio::test]
    async fn chains_group_incrementals_with_their_full_backup() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        // Chain A: full a0 + a1 + a2 (a2 found through `parent` only).
        stream_backup(
            root,
            "a0",
            10,
            Some(nat("A0", "full", None, "2026-01-01T00:00:00Z")),
        );
        stream_backup(
            root,
            "a1",
            20,
            Some(nat("A1", "incremental", Some("A0"), "2026-01-02T00:00:00Z")),
        );
        let mut a2 = nat("A2", "incremental", None, "2026-01-03T00:00:00Z");
        a2["parent"] = json!("s3://bucket/x/a1/");
        stream_backup(root, "a2", 30, Some(a2));
        // A legacy backup (no natrium key) in between: a chain of one.
        stream_backup(root, "legacy", 5, None);
        // Chain B: newer full + incremental.
        stream_backup(
            root,
            "b0",
            40,
            Some(nat("B0", "full", None, "2026-02-01T00:00:00Z")),
        );
        stream_backup(
            root,
            "b1",
            50,
            Some(nat("B1", "incremental", Some("B0"), "2026-02-02T00:00:00Z")),
        );
        // Chain C: newest full alone.
        stream_backup(
            root,
            "c0",
            60,
            Some(nat("C0", "full", None, "2026-03-01T00:00:00Z")),
        );
        // An unfinished one, old (mtime now, so newest: must survive).
        std::fs::create_dir_all(root.join("running")).unwrap();
        std::fs::write(root.join("running").join(INCOMPLETE), b"x").unwrap();
        // Something that is no backup.
        std::fs::create_dir_all(root.join("notes")).unwrap();
        std::fs::write(root.join("notes").join("readme.txt"), b"hi").unwrap();

        let t = Target::Local(root.to_path_buf());
        let entries = list(&t).await.unwrap();
        let chain = |n: &str| entries.iter().find(|e| e.name == n).unwrap().chain.clone();
        assert_eq!(chain("a0"), "a0");
        assert_eq!(chain("a1"), "a0");
        assert_eq!(chain("a2"), "a0");
        assert_eq!(chain("b1"), "b0");
        assert_eq!(chain("legacy"), "legacy");
        assert!(entries.iter().all(|e| e.name != "notes"));
        let running = entries.iter().find(|e| e.name == "running").unwrap();
        assert!(!running.complete);
        let a1 = entries.iter().find(|e| e.name == "a1").unwrap();
        assert_eq!(a1.last_seq.get("ORDERS"), Some(&20));
        assert_eq!(a1.time, "2026-01-02T00:00:00Z");
        assert_eq!(
            a1.size,
            120 + std::fs::metadata(root.join("a1").join(META)).unwrap().len()
        );

        // legacy's mtime is now: it is the newest chain. Keep 2: legacy and c0.
        let del: Vec<&str> = to_prune(&entries, 2)
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(del, vec!["b1", "b0", "a2", "a1", "a0"]);
        // Keep 3: b0's chain stays whole.
        let del: Vec<&str> = to_prune(&entries, 3)
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(del, vec!["a2", "a1", "a0"]);
        assert!(to_prune(&entries, 10).is_empty());

        for e in to_prune(&entries, 3) {
            delete(&t, e).await.unwrap();
        }
        let left: Vec<String> = list(&t)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(left.len(), 5, "{left:?}");
        assert!(
            !root.join("a0").exists() && root.join("b0").exists() && root.join("notes").exists()
        );
    }

    #[test]
    fn orphan_incremental_roots_its_own_chain_and_cycles_end() {
        let mk = |name: &str, n: Value| BackupEntry {
            name: name.into(),
            location: name.into(),
            kind: "stream",
            complete: true,
            time: String::new(),
            unix: 0,
            streams: vec![],
            last_seq: BTreeMap::new(),
            watermark: None,
            size: 0,
            natrium: Some(n),
            chain: String::new(),
        };
        let mut es = vec![
            mk(
                "x",
                json!({"id": "X", "kind": "incremental", "parent_id": "GONE"}),
            ),
            mk(
                "p",
                json!({"id": "P", "kind": "incremental", "parent_id": "Q"}),
            ),
            mk(
                "q",
                json!({"id": "Q", "kind": "incremental", "parent_id": "P"}),
            ),
        ];
        assign_chains(&mut es);
        assert_eq!(es[0].chain, "x");
        // A cycle resolves to some member, never hangs.
        assert!(es[1].chain == "p" || es[1].chain == "q");
    }
}
