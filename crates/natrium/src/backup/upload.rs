//! Journaled multipart uploads: how an `s3://` archive is written so that a killed
//! backup can be resumed.
//!
//! Why not object_store's `WriteMultipart`: a multipart upload whose process dies
//! (SIGKILL, a crashed host) leaves its parts on the server, invisible, and nothing
//! that names them — the upload id lived only in the dead process. No object, no
//! prefix to keep: the interrupted backup could only start over. So this writer drives
//! the upload through [`MultipartStore`] itself and keeps a *journal* object beside the
//! archive (`stream.tar.s2.upload.json`, see [`JOURNAL_SUFFIX`]): the upload id, and
//! the ETag and size of every part that completed, as one unbroken run from the first
//! part (a part that finished ahead of an earlier one waits for it). The journal is
//! written when the upload starts, rewritten as the run grows (one small PUT, at most
//! one in flight, so it never holds up the parts and a later version can never be
//! overtaken by an earlier one), and deleted once the upload completes.
//!
//! `--resume` then completes the journaled run into the archive's own key (an upload
//! can only complete where it was started): the object becomes a prefix of the
//! archive, cut at a part boundary — exactly what an interrupted local backup leaves in
//! its file — and `resume` carries on from the last intact message in it.
//!
//! A journal marked not resumable belongs to an upload that *replaces* an existing
//! object (the merged archive a resume writes over the kept prefix). Its parts are
//! never completed from the journal, only aborted: a resume interrupted during its
//! merge keeps the prefix it had rather than a shorter one. Whatever journal a new
//! upload of the same object finds is aborted first (the new backup supersedes it),
//! and so is every journal under a prefix that `backup prune` deletes; a bucket
//! lifecycle rule (`AbortIncompleteMultipartUpload`) covers uploads nobody resumes.
//!
//! Memory: one part being filled plus the parts in flight, as before.

use bytes::Bytes;
use object_store::multipart::PartId;
use object_store::path::Path as ObjPath;
use object_store::{MultipartId, PutPayloadMut};
use serde::{Deserialize, Serialize};
use tokio::task::{JoinHandle, JoinSet};

use super::BackupError;
use super::target::{ObjectTarget, UploadShape};

/// The journal of the upload of `NAME` is the object `NAME` + this.
pub const JOURNAL_SUFFIX: &str = ".upload.json";
/// Most parts a journal may list (S3 allows 10,000 per upload).
const MAX_JOURNAL_PARTS: usize = 10_000;

/// What the journal object holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Journal {
    /// The multipart upload's id.
    pub upload_id: String,
    /// Whether the listed parts may be completed into the object on resume (an upload
    /// of a new archive) or only aborted (an upload replacing an existing object).
    pub resumable: bool,
    /// The completed parts `1..=n`, in order.
    pub parts: Vec<JournalPart>,
}

/// One completed part.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct JournalPart {
    /// The part's ETag (what completing the upload names it by).
    pub etag: String,
    /// Its size in bytes.
    pub bytes: u64,
}

impl Journal {
    /// Bytes in the listed parts.
    pub fn bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.bytes).sum()
    }

    /// Parse a journal object, refusing one with more parts than an upload can have.
    pub fn parse(bytes: &[u8]) -> Result<Journal, String> {
        let j: Journal = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if j.parts.len() > MAX_JOURNAL_PARTS {
            return Err(format!(
                "{} parts, more than an upload can have",
                j.parts.len()
            ));
        }
        Ok(j)
    }
}

/// The result of one part upload: its index, size and id (or the error).
type PartResult = (usize, u64, object_store::Result<PartId>);

/// A multipart upload with a journal.
pub struct PartWriter {
    /// Where.
    target: ObjectTarget,
    /// Object name below the target.
    name: String,
    /// Its key.
    key: ObjPath,
    /// The upload's id.
    id: MultipartId,
    /// Part size and parts in flight.
    shape: UploadShape,
    /// Whether the journal lists parts for `--resume` (see the module doc).
    resumable: bool,
    /// The part being filled.
    buf: PutPayloadMut,
    /// Per part started: its id and size once it completed.
    parts: Vec<Option<(PartId, u64)>>,
    /// Parts uploading.
    running: JoinSet<PartResult>,
    /// Parts listed in the last journal known to be written.
    journaled: usize,
    /// The journal write in flight, if any: the parts it lists, and whether it worked.
    journal_put: Option<(usize, JoinHandle<bool>)>,
}

impl std::fmt::Debug for PartWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartWriter")
            .field("object", &self.target.url(Some(&self.name)))
            .field("parts", &self.parts.len())
            .finish()
    }
}

impl PartWriter {
    /// Start the upload of `name` and journal it. An interrupted upload of the same
    /// object journaled earlier is aborted first: this one supersedes it.
    pub async fn start(
        target: &ObjectTarget,
        name: &str,
        shape: UploadShape,
        resumable: bool,
    ) -> Result<PartWriter, BackupError> {
        target.abandon_upload(name).await?;
        let key = target.key(name);
        let id = target
            .multipart
            .create_multipart(&key)
            .await
            .map_err(|e| target.err(Some(name), e))?;
        let w = PartWriter {
            target: target.clone(),
            name: name.to_string(),
            key,
            id,
            shape,
            resumable,
            buf: PutPayloadMut::new(),
            parts: Vec::new(),
            running: JoinSet::new(),
            journaled: 0,
            journal_put: None,
        };
        // At once, so that even a run killed before its first part can be cleaned up.
        w.put_journal(0).await?;
        Ok(w)
    }

    /// Append `b`; sends a part when one is full, waiting while too many are in flight
    /// (back-pressure).
    pub async fn write(&mut self, b: Bytes) -> Result<(), BackupError> {
        while let Some(r) = self.running.try_join_next() {
            self.record(r)?;
        }
        self.journal().await;
        self.buf.push(b);
        if self.buf.content_length() >= self.shape.part {
            self.send_part().await?;
        }
        Ok(())
    }

    /// Send the buffered bytes as the next part.
    async fn send_part(&mut self) -> Result<(), BackupError> {
        while self.running.len() >= self.shape.in_flight.max(1) {
            if let Some(r) = self.running.join_next().await {
                self.record(r)?;
            }
        }
        self.journal().await;
        let payload = std::mem::take(&mut self.buf).freeze();
        let n = payload.content_length() as u64;
        let idx = self.parts.len();
        self.parts.push(None);
        let store = self.target.multipart.clone();
        let (key, id) = (self.key.clone(), self.id.clone());
        self.running.spawn(async move {
            let r = store.put_part(&key, &id, idx, payload).await;
            (idx, n, r)
        });
        Ok(())
    }

    /// Note a finished part.
    fn record(&mut self, r: Result<PartResult, tokio::task::JoinError>) -> Result<(), BackupError> {
        let (idx, n, r) = r.map_err(|e| BackupError::Protocol(format!("part upload task: {e}")))?;
        let part = r.map_err(|e| self.target.err(Some(&self.name), e))?;
        if let Some(slot) = self.parts.get_mut(idx) {
            *slot = Some((part, n));
        }
        Ok(())
    }

    /// Parts completed in one run from the first.
    fn completed_run(&self) -> usize {
        self.parts.iter().take_while(|p| p.is_some()).count()
    }

    /// The journal listing the first `n` parts.
    fn journal_body(&self, n: usize) -> Result<Bytes, BackupError> {
        let j = Journal {
            upload_id: self.id.clone(),
            resumable: self.resumable,
            parts: self.parts[..n]
                .iter()
                .flatten()
                .map(|(p, b)| JournalPart {
                    etag: p.content_id.clone(),
                    bytes: *b,
                })
                .collect(),
        };
        serde_json::to_vec(&j)
            .map(Bytes::from)
            .map_err(|e| BackupError::Protocol(format!("journal: {e}")))
    }

    /// Write the journal listing the first `n` parts, and wait for it.
    async fn put_journal(&self, n: usize) -> Result<(), BackupError> {
        let body = self.journal_body(n)?;
        self.target.put_small(&journal_name(&self.name), body).await
    }

    /// Takes the result of a finished journal write: `journaled` moves only when the
    /// write worked, so a failed one is written again (listing everything) by the next
    /// [`journal`](Self::journal) or by [`stop`](Self::stop).
    async fn settle_journal(&mut self) {
        if let Some((n, h)) = self.journal_put.take()
            && let Ok(true) = h.await
        {
            self.journaled = self.journaled.max(n);
        }
    }

    /// Rewrite the journal in the background if the completed run grew and no earlier
    /// write is still in flight (a failed write only costs resumability until the next
    /// one, which lists everything again).
    async fn journal(&mut self) {
        if !self.resumable {
            return;
        }
        if self
            .journal_put
            .as_ref()
            .is_some_and(|(_, h)| !h.is_finished())
        {
            return;
        }
        self.settle_journal().await;
        let n = self.completed_run();
        if n <= self.journaled {
            return;
        }
        let Ok(body) = self.journal_body(n) else {
            return;
        };
        let t = self.target.clone();
        let name = journal_name(&self.name);
        self.journal_put = Some((
            n,
            tokio::spawn(async move { t.put_small(&name, body).await.is_ok() }),
        ));
    }

    /// Send the last part, wait for all, complete the upload, drop the journal.
    pub async fn finish(mut self) -> Result<(), BackupError> {
        if self.parts.is_empty() || self.buf.content_length() > 0 {
            self.send_part().await?;
        }
        while let Some(r) = self.running.join_next().await {
            self.record(r)?;
        }
        self.settle_journal().await;
        let parts: Option<Vec<PartId>> =
            self.parts.into_iter().map(|p| p.map(|(p, _)| p)).collect();
        let parts = parts.ok_or_else(|| BackupError::Protocol("a part never completed".into()))?;
        self.target
            .multipart
            .complete_multipart(&self.key, &self.id, parts)
            .await
            .map_err(|e| self.target.err(Some(&self.name), e))?;
        self.target
            .remove_if_present(&journal_name(&self.name))
            .await
    }

    /// Stop after a failure elsewhere. A resumable upload keeps what completed: the
    /// parts in flight are waited for and the journal brought up to date, for
    /// `--resume`. Any other is aborted. Best effort: the failure that stopped it is
    /// what gets reported.
    pub async fn stop(mut self) {
        if self.resumable {
            while let Some(r) = self.running.join_next().await {
                let _ = self.record(r);
            }
            self.settle_journal().await;
            let n = self.completed_run();
            if n > self.journaled {
                let _ = self.put_journal(n).await;
            }
        } else {
            self.running.abort_all();
            let _ = self
                .target
                .multipart
                .abort_multipart(&self.key, &self.id)
                .await;
            let _ = self
                .target
                .remove_if_present(&journal_name(&self.name))
                .await;
        }
    }
}

/// The journal object of `name`.
pub fn journal_name(name: &str) -> String {
    format!("{name}{JOURNAL_SUFFIX}")
}

/// What [`ObjectTarget::recover_upload`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovered {
    /// No journal: nothing to do.
    Nothing,
    /// The journaled parts were completed into the object: this many bytes.
    Completed(u64),
    /// A journal without usable parts (none completed, or a replacing upload): the
    /// upload was aborted.
    Aborted,
    /// The journal named an upload the store no longer knows (completed or aborted
    /// earlier): it was dropped.
    Gone,
}

impl ObjectTarget {
    /// The journal of an interrupted upload of `name`, if there is one.
    pub async fn read_journal(&self, name: &str) -> Result<Option<Journal>, BackupError> {
        let jn = journal_name(name);
        let t = super::target::Target::Object(self.clone());
        if !t.exists(&jn).await? {
            return Ok(None);
        }
        let bytes = t.read_small(&jn).await?;
        Journal::parse(&bytes)
            .map(Some)
            .map_err(|detail| BackupError::Json {
                path: t.location(&jn),
                detail,
            })
    }

    /// Abort the upload of `name` a journal names (if the store still has it) and
    /// remove the journal.
    pub async fn abandon_upload(&self, name: &str) -> Result<(), BackupError> {
        if let Some(j) = self.read_journal(name).await? {
            // The upload may be gone already (completed, aborted, expired): fine.
            let _ = self
                .multipart
                .abort_multipart(&self.key(name), &j.upload_id)
                .await;
            self.remove_if_present(&journal_name(name)).await?;
        }
        Ok(())
    }

    /// Make what an interrupted resumable upload of `name` completed the object
    /// `name` (a prefix of what was being written), and remove the journal.
    pub async fn recover_upload(&self, name: &str) -> Result<Recovered, BackupError> {
        let Some(j) = self.read_journal(name).await? else {
            return Ok(Recovered::Nothing);
        };
        let key = self.key(name);
        let out = if !j.resumable || j.parts.is_empty() {
            let _ = self.multipart.abort_multipart(&key, &j.upload_id).await;
            Recovered::Aborted
        } else {
            let parts = j
                .parts
                .iter()
                .map(|p| PartId {
                    content_id: p.etag.clone(),
                })
                .collect();
            match self
                .multipart
                .complete_multipart(&key, &j.upload_id, parts)
                .await
            {
                Ok(_) => Recovered::Completed(j.bytes()),
                // Completed by an earlier resume that stopped before dropping the
                // journal, or aborted/expired: whatever the object holds is what there is.
                Err(_) => Recovered::Gone,
            }
        };
        self.remove_if_present(&journal_name(name)).await?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::stream::BoxStream;
    use object_store::memory::InMemory;
    use object_store::{
        CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
        ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult,
    };
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// An in-memory store whose single-object PUTs of journals fail while `fail` is
    /// set: the S3 failure a loopback server cannot be told to produce.
    #[derive(Debug)]
    struct FailingJournals {
        inner: Arc<InMemory>,
        fail: AtomicBool,
        failed: AtomicUsize,
    }

    impl std::fmt::Display for FailingJournals {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "FailingJournals")
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for FailingJournals {
        async fn put_opts(
            &self,
            location: &ObjPath,
            payload: PutPayload,
            opts: PutOptions,
        ) -> object_store::Result<PutResult> {
            if self.fail.load(Ordering::SeqCst) && location.as_ref().ends_with(JOURNAL_SUFFIX) {
                self.failed.fetch_add(1, Ordering::SeqCst);
                return Err(object_store::Error::Generic {
                    store: "test",
                    source: "injected journal write failure".into(),
                });
            }
            self.inner.put_opts(location, payload, opts).await
        }
        async fn put_multipart_opts(
            &self,
            location: &ObjPath,
            opts: PutMultipartOptions,
        ) -> object_store::Result<Box<dyn MultipartUpload>> {
            self.inner.put_multipart_opts(location, opts).await
        }
        async fn get_opts(
            &self,
            location: &ObjPath,
            options: GetOptions,
        ) -> object_store::Result<GetResult> {
            self.inner.get_opts(location, options).await
        }
        fn delete_stream(
            &self,
            locations: BoxStream<'static, object_store::Result<ObjPath>>,
        ) -> BoxStream<'static, object_store::Result<ObjPath>> {
            self.inner.delete_stream(locations)
        }
        fn list(
            &self,
            prefix: Option<&ObjPath>,
        ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
            self.inner.list(prefix)
        }
        async fn list_with_delimiter(
            &self,
            prefix: Option<&ObjPath>,
        ) -> object_store::Result<ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }
        async fn copy_opts(
            &self,
            from: &ObjPath,
            to: &ObjPath,
            options: CopyOptions,
        ) -> object_store::Result<()> {
            self.inner.copy_opts(from, to, options).await
        }
    }

    /// Journal writes that fail while parts complete must not leave a stale resume
    /// point: the next journal write, or `stop()`, lists every completed part, and the
    /// upload recovers to all of them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_journal_write_is_redone_and_recovery_keeps_every_part() {
        let mem = Arc::new(InMemory::new());
        let store = Arc::new(FailingJournals {
            inner: mem.clone(),
            fail: AtomicBool::new(false),
            failed: AtomicUsize::new(0),
        });
        let target = ObjectTarget {
            store: store.clone(),
            multipart: mem.clone(),
            bucket: "b".into(),
            prefix: ObjPath::from("p"),
        };
        let shape = UploadShape {
            part: 1024,
            in_flight: 2,
        };
        let name = "stream.tar.s2";
        let mut w = PartWriter::start(&target, name, shape, true).await.unwrap();
        store.fail.store(true, Ordering::SeqCst);
        let mut sent = Vec::new();
        for i in 0..8u8 {
            let piece = Bytes::from(vec![i; 1024]);
            sent.extend_from_slice(&piece);
            w.write(piece).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        // Once the 8 parts completed, one more write starts a journal write that lists
        // all 8, and fails too (polled, bounded: the parts and the journal write run on
        // other tasks).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            while let Some(r) = w.running.try_join_next() {
                w.record(r).unwrap();
            }
            if w.completed_run() == 8 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "parts did not complete"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        while w
            .journal_put
            .as_ref()
            .is_some_and(|(_, h)| !h.is_finished())
        {
            assert!(std::time::Instant::now() < deadline, "journal write hangs");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let failed = store.failed.load(Ordering::SeqCst);
        w.write(Bytes::from_static(b"tail")).await.unwrap();
        assert_eq!(w.journal_put.as_ref().map(|(n, _)| *n), Some(8));
        while store.failed.load(Ordering::SeqCst) == failed {
            assert!(
                std::time::Instant::now() < deadline,
                "no journal write failed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        // While the failures lasted, the journal still lists no part.
        let j = target.read_journal(name).await.unwrap().unwrap();
        assert!(j.parts.is_empty(), "{j:?}");
        // The store recovers; the run stops (as on Ctrl-C) and brings the journal up
        // to date with every part that completed, although the last (failed) attempt
        // already listed them all.
        store.fail.store(false, Ordering::SeqCst);
        w.stop().await;
        let j = target.read_journal(name).await.unwrap().unwrap();
        let listed = j.bytes() as usize;
        assert_eq!(listed, 8 * 1024, "{j:?}");
        // Recovery completes the upload from the journal: the object is exactly the
        // listed prefix of what was written.
        match target.recover_upload(name).await.unwrap() {
            Recovered::Completed(b) => assert_eq!(b as usize, listed),
            other => panic!("{other:?}"),
        }
        let got = mem
            .get(&target.key(name))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(&got[..], &sent[..listed]);
    }

    #[test]
    fn journal_round_trips_and_is_bounded() {
        let j = Journal {
            upload_id: "u1".into(),
            resumable: true,
            parts: vec![
                JournalPart {
                    etag: "\"e1\"".into(),
                    bytes: 8 << 20,
                },
                JournalPart {
                    etag: "\"e2\"".into(),
                    bytes: 5,
                },
            ],
        };
        let b = serde_json::to_vec(&j).unwrap();
        assert_eq!(Journal::parse(&b).unwrap(), j);
        assert_eq!(j.bytes(), (8 << 20) + 5);
        let many = Journal {
            parts: vec![j.parts[1].clone(); MAX_JOURNAL_PARTS + 1],
            ..j
        };
        let e = Journal::parse(&serde_json::to_vec(&many).unwrap()).unwrap_err();
        assert!(e.contains("more than an upload"), "{e}");
        assert!(Journal::parse(b"{}").is_err());
        assert_eq!(journal_name("stream.tar.s2"), "stream.tar.s2.upload.json");
    }
}
