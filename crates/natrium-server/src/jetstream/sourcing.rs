//! Mirrors and sources: streams that copy the messages of other streams.
//!
//! Why in-process: nats-server drives a mirror or a source through an internal consumer
//! on the origin stream (a push consumer with flow control and heartbeats, over
//! subjects), because its origin may live on another server. natrium is one server, so
//! every origin's store is right here: in the same account, or for an `external` link
//! in the account its API prefix leads to through the account's imports
//! ([`external_account`]). So a *link* (one
//! per mirror or source) reads the origin's store in sequence order and hands the
//! messages to the sourcing stream's own publish queue, where they are checked, stored
//! and made durable like any publish (group commit included). No consumer shows up on
//! the origin, as nats-server hides the ones it uses for this.
//!
//! What a copy looks like, as nats-server stores it:
//! - a mirror keeps the origin's sequence, timestamp, subject (after the mirror's own
//!   subject transforms) and headers; origin sequences it does not hold (deleted, or
//!   filtered out) are skipped, so sequences line up with the origin;
//! - a source appends with a new sequence and the current time, with the header
//!   `Nats-Stream-Source: <origin> <origin seq> <filter> <destination> <subject>
//!   <origin identity>` (identity: a hash of the origin's creation time) in place of
//!   any `Nats-Stream-Source`, `Nats-Expected-*` and `Nats-Batch-*` it had.
//!
//! Where a link starts: a mirror after its own last sequence; a source after the
//! later of two records: the newest copy of its own in the stream (the last
//! `Nats-Stream-Source` naming it, found by reading the stream backwards once at start)
//! and `sources.nmeta` in the stream's directory, where the links of a file stream note
//! how far their *durable* copies go, at most once a second and when idle (so a source
//! whose copies were all purged or aged out does not start over, as nats-server 2.12+
//! keeps its `SourcesState`). Without either, at the configured `opt_start_seq` /
//! `opt_start_time`, or the origin's first message. Neither record can run ahead of the
//! stored copies, so a crash copies again at most what it lost, and never skips one.
//!
//! A link is a consumer of its origin, as nats-server's are: it joins the origin's
//! `readers`, so an interest origin keeps what the link has not copied yet, and a
//! work-queue origin gives away what the link copied.
//!
//! Invariants:
//! - One task per link, with at most one batch in the stream's queue at a time; it waits
//!   until the stream has finished that batch before reading on, so a link's messages
//!   are stored in origin order.
//! - A link's progress (`sseq`, and so `sources.nmeta` and the origin's retention) moves
//!   only when the stream reports a copy durable (`Stream::answer`); a batch whose fsync
//!   fails is reported refused and read again.
//! - A copy the stream refuses (a limit with discard new, a sealed stream, ...) stops the
//!   link at that origin sequence: the stream task drops the rest of the link's batch
//!   ([`Link::failed`] is set), and the link retries from that sequence after a
//!   back-off, as nats-server re-creates its consumer there.
//! - Lock order: [`Link::state`] is a leaf lock.

use super::api::errors::ApiError;
use super::api::stream::{
    ExternalStream, RetentionPolicy, StreamConfig, StreamSource, StreamSourceInfo, SubjectTransform,
};
use super::api::time::Timestamp;
use super::headers;
use super::stream::{Stream, now_nanos, transform_subject};
use crate::server::ServerShared;
use natrium_store::{StoredMsg, StreamStore, SubjectFilter};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Messages one link reads per batch.
const BATCH_MSGS: usize = 256;
/// Bytes one link reads per batch (beyond its first message).
const BATCH_BYTES: usize = 1024 * 1024;
/// How often an idle link looks at its origin again (it may have been deleted or
/// created meanwhile), and so how stale `active` can get.
const IDLE_CHECK: Duration = Duration::from_secs(1);
/// Least time between two writes of a stream's progress record while its sources copy.
const SAVE_EVERY: Duration = Duration::from_secs(1);
/// First and longest wait before a link retries after the stream refused a copy.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Where a queued copy came from: the stream task records its outcome in the link.
pub struct SourcedBy {
    /// The link that read it.
    pub link: Arc<Link>,
    /// Its sequence in the origin.
    pub origin_seq: u64,
    /// For a mirror: the origin's timestamp; the copy is stored at `origin_seq`.
    pub mirror_ts: Option<i64>,
}

/// One mirror or source of a stream.
pub struct Link {
    /// nats-server's index name, `<origin> <filter> <destination>`: tells the sources of
    /// one stream apart, and is what `Nats-Stream-Source` headers name.
    pub iname: String,
    /// The configured source (or mirror).
    pub cfg: StreamSource,
    /// Mirror (keeps sequences) or source (appends).
    pub mirror: bool,
    /// What the link reads from the origin: the union of its filters.
    filter: SubjectFilter,
    /// `(filter, destination)` pairs applied in order to a copied subject; the first
    /// filter that matches maps it (an empty destination keeps the subject).
    transforms: Vec<SubjectTransform>,
    /// Progress and status.
    state: Mutex<LinkState>,
    /// Set when the link is removed (stream deleted or updated without it).
    stopped: AtomicBool,
    /// Wakes the link's task when it is stopped.
    wake: tokio::sync::Notify,
    /// The origin stream this link is registered with as a reader (see
    /// `Stream::readers`), so it can leave when it stops or the origin changes.
    origin: Mutex<Weak<Stream>>,
}

/// What a link knows about its progress.
#[derive(Default)]
struct LinkState {
    /// The last origin sequence whose copy is stored and durable (or found already
    /// stored); 0 before any. What `sources.nmeta` records.
    sseq: u64,
    /// The next origin sequence to read (0: from `sseq`): past what a filtered link has
    /// looked at already, so it does not read the origin again from its last copy
    /// whenever the origin grows.
    next: u64,
    /// The identity of the origin it read last (a hash of its creation time): a source
    /// whose origin was deleted and created again starts over on the new one, as
    /// nats-server's sources do.
    origin_ident: String,
    /// Whether `sseq` has been settled from the stream's content yet.
    started: bool,
    /// When the origin was last seen (Unix ns); 0 if never.
    last_active: i64,
    /// Why the link cannot run (its origin does not exist), shown in stream info.
    error: Option<ApiError>,
    /// Set by the stream task when it refused a copy: that copy's origin sequence.
    failed: Option<u64>,
}

impl Link {
    /// A link for `src`, a mirror when `mirror`.
    fn new(src: &StreamSource, mirror: bool) -> Option<Arc<Link>> {
        let filters: Vec<String> = if !src.subject_transforms.is_empty() {
            src.subject_transforms
                .iter()
                .map(|t| {
                    if t.src.is_empty() {
                        ">".to_string()
                    } else {
                        t.src.clone()
                    }
                })
                .collect()
        } else if !src.filter_subject.is_empty() {
            vec![src.filter_subject.clone()]
        } else {
            vec![">".to_string()]
        };
        let filter = if filters.iter().any(|f| f == ">") {
            SubjectFilter::all()
        } else {
            SubjectFilter::multi(filters.iter()).ok()?
        };
        Some(Arc::new(Link {
            iname: super::api::stream_check::source_index_name(src),
            cfg: src.clone(),
            mirror,
            filter,
            transforms: src.subject_transforms.clone(),
            state: Mutex::new(LinkState::default()),
            stopped: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
            origin: Mutex::new(Weak::new()),
        }))
    }

    /// Whether the link copies messages on `subject` (its filters).
    pub fn matches(&self, subject: &str) -> bool {
        self.filter.matches(subject)
    }

    /// Whether origin message `seq` (on one of the link's subjects) has been copied
    /// durably: for interest retention on the origin, the link has "acknowledged" it.
    pub fn copied(&self, seq: u64) -> bool {
        seq <= self.state.lock().sseq
    }

    /// Read `origin` from now on: join its readers (leaving a previous origin's).
    fn register(self: &Arc<Self>, origin: &Arc<Stream>) {
        let mut current = self.origin.lock();
        if current.upgrade().is_some_and(|o| Arc::ptr_eq(&o, origin)) {
            return;
        }
        if let Some(old) = current.upgrade() {
            old.readers.write().retain(|l| !Arc::ptr_eq(l, self));
        }
        origin.readers.write().push(self.clone());
        *current = Arc::downgrade(origin);
    }

    /// Leave the origin's readers.
    fn unregister(self: &Arc<Self>) {
        let old = std::mem::take(&mut *self.origin.lock());
        if let Some(o) = old.upgrade() {
            o.readers.write().retain(|l| !Arc::ptr_eq(l, self));
        }
    }

    /// Whether the stream task should drop this link's queued copies (one was refused
    /// and the link will read them again).
    pub fn failed(&self) -> bool {
        self.state.lock().failed.is_some()
    }

    /// The stream task's outcome for a copy: stored and durable (or not needed), or
    /// refused (by a check, or because its batch did not become durable). Copies are
    /// reported in origin order, so the first refusal is where the link reads again.
    pub fn record(&self, origin_seq: u64, stored: bool) {
        let mut st = self.state.lock();
        if stored {
            // Copies before a refusal in the same batch still count (they are reported
            // once durable, after the refusal was).
            if st.failed.is_none_or(|f| origin_seq < f) {
                st.sseq = st.sseq.max(origin_seq);
            }
        } else if st.failed.is_none_or(|f| origin_seq < f) {
            st.failed = Some(origin_seq);
        }
    }

    /// Stop the link's task.
    fn stop(self: &Arc<Self>) {
        self.stopped.store(true, Ordering::Release);
        self.unregister();
        self.wake.notify_one();
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// The subject a copy is stored under.
    fn map_subject(&self, subject: &str) -> Option<String> {
        for t in &self.transforms {
            let src = if t.src.is_empty() { ">" } else { &t.src };
            if crate::sublist::subject_matches(src.as_bytes(), subject.as_bytes()) {
                if t.dest.is_empty() {
                    return None;
                }
                return transform_subject(src, &t.dest, subject);
            }
        }
        None
    }

    /// The status nats-server reports for the link (`StreamSourceInfo`).
    pub fn info(&self, origin: Option<&Arc<Stream>>) -> StreamSourceInfo {
        let st = self.state.lock();
        let (sseq, next, last_active, error) = (st.sseq, st.next, st.last_active, st.error.clone());
        drop(st);
        // What is left to copy from where the link reads (its start, for a new one);
        // through a durable consumer, only what that consumer's filter takes.
        let lag = origin.map_or(0, |o| {
            let start = sseq.saturating_add(1).max(next);
            match self.cfg.consumer.as_ref().and_then(|c| o.consumer(&c.name)) {
                Some(c) => c.stored_from(start),
                None => o.store.num_pending(start, &self.filter, false),
            }
        });
        StreamSourceInfo {
            name: self.cfg.name.clone(),
            external: self.cfg.external.clone(),
            lag,
            // Only sources report the origin sequence they are at (nats-server 2.15).
            seq: if self.mirror { 0 } else { sseq },
            active: if last_active == 0 {
                -1
            } else {
                now_nanos().saturating_sub(last_active).max(0)
            },
            error,
            filter_subject: self.cfg.filter_subject.clone(),
            subject_transforms: self.cfg.subject_transforms.clone(),
        }
    }

    /// The header block of a source's copy of origin message `seq` (on `subject`, with
    /// headers `hdrs`) into `out` (replacing what it held): the origin's headers,
    /// rewritten as `headers::sourced_block` does, with `Nats-Stream-Source: <origin>
    /// <seq> <filter> <dest> <subject> <identity>`.
    fn source_block(&self, out: &mut Vec<u8>, seq: u64, subject: &str, hdrs: &[u8], ident: &str) {
        let mut parts = self.iname.splitn(3, ' ');
        let origin = parts.next().unwrap_or_default();
        let filter = parts.next().unwrap_or(">");
        let dest = parts.next().unwrap_or(">");
        headers::sourced_block(
            out,
            hdrs,
            format_args!("{origin} {seq} {filter} {dest} {subject} {ident}"),
        );
    }
}

/// The `(index name, origin sequence)` a `Nats-Stream-Source` value names
/// (`<origin> <seq> <filter> <destination> <subject> [<identity>]`); `None` for other
/// forms (nats-server's older two-field and ack-reply forms are not written by natrium
/// and name no filter, so they cannot be matched to a link exactly).
pub fn parse_source_header(value: &str) -> Option<(String, u64)> {
    let fields: Vec<&str> = value.split(' ').collect();
    if fields.len() < 5 {
        return None;
    }
    let seq = fields[1].parse().ok()?;
    Some((format!("{} {} {}", fields[0], fields[2], fields[3]), seq))
}

/// A stream's identity as nats-server derives it (`getHash` of its creation time in
/// RFC 3339 with nanoseconds): 8 characters of base 62 taken from a SHA-256.
pub fn stream_identity(created: &Timestamp) -> String {
    short_hash(&created.to_utc().to_rfc3339_nano())
}

/// nats-server's `getHash`: the first 8 bytes of the SHA-256 of `s`, each as one of 62
/// digits (stream identities, and the API prefix of an external link's index name).
pub fn short_hash(s: &str) -> String {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    Sha256::digest(s.as_bytes())[..8]
        .iter()
        .map(|b| DIGITS[(*b as usize) % DIGITS.len()] as char)
        .collect()
}

/// The links of one stream.
#[derive(Default)]
pub struct Links {
    /// Running links, the mirror or the sources in config order.
    links: Mutex<Vec<Arc<Link>>>,
    /// When `sources.nmeta` was last written, and what it holds.
    saved: Mutex<Saved>,
}

/// The persisted progress record's bookkeeping.
#[derive(Default)]
struct Saved {
    /// When it was last written.
    at: Option<std::time::Instant>,
    /// `(index name, durable origin sequence)` as last written (or read at start): a
    /// link that has not settled yet keeps its entry from here.
    record: Vec<(String, u64)>,
    /// Whether `record` has been read from the file yet.
    loaded: bool,
}

/// The progress record's file in a stream's directory.
const SOURCES_FILE: &str = "sources.nmeta";

/// The progress record of the stream in `dir`: index name → last durable origin
/// sequence. A missing file is an empty record; a damaged one is logged by the caller
/// and ignored (the backwards scan still finds where each source was).
fn read_record(dir: &std::path::Path) -> Result<Vec<(String, u64)>, String> {
    use natrium_store::file::meta::{MetaKind, read_meta};
    match read_meta(&dir.join(SOURCES_FILE), MetaKind::SourcesState) {
        Ok(None) => Ok(Vec::new()),
        Ok(Some(bytes)) => serde_json::from_slice(&bytes).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

impl Links {
    /// Start, keep or stop links so they match `cfg` (at start and after an update).
    /// A source whose index name is unchanged keeps running where it was.
    pub fn reconcile(&self, stream: &Arc<Stream>, server: &Arc<ServerShared>, cfg: &StreamConfig) {
        let wanted: Vec<(&StreamSource, bool)> = match &cfg.mirror {
            Some(m) => vec![(m, true)],
            None => cfg.sources.iter().map(|s| (s, false)).collect(),
        };
        let mut links = self.links.lock();
        let mut next: Vec<Arc<Link>> = Vec::with_capacity(wanted.len());
        for (src, mirror) in wanted {
            let iname = super::api::stream_check::source_index_name(src);
            // Same index name, same filters and transforms: the running link goes on (a
            // changed `opt_start_*` only matters to a link that starts from nothing; a
            // new link would race the old one's batch in flight and copy twice).
            if let Some(pos) = links
                .iter()
                .position(|l| l.iname == iname && l.mirror == mirror)
            {
                next.push(links.remove(pos));
                continue;
            }
            let Some(link) = Link::new(src, mirror) else {
                continue;
            };
            if link.cfg.consumer.is_some() {
                tokio::spawn(through_consumer::run(
                    link.clone(),
                    Arc::downgrade(stream),
                    server.clone(),
                ));
            } else {
                tokio::spawn(run(link.clone(), Arc::downgrade(stream), server.clone()));
            }
            next.push(link);
        }
        for gone in links.drain(..) {
            gone.stop();
        }
        *links = next;
    }

    /// The recorded progress of link `iname` (read from the file the first time).
    fn recorded(&self, stream: &Stream, iname: &str, server: &ServerShared) -> u64 {
        let mut saved = self.saved.lock();
        if !saved.loaded {
            saved.loaded = true;
            if let Some(dir) = &stream.dir {
                match read_record(dir) {
                    Ok(r) => saved.record = r,
                    Err(e) => crate::warn!(
                        server.log,
                        "Ignoring the sources record of stream '{}' ({e}); its sources resume after their newest copies",
                        stream.name
                    ),
                }
            }
        }
        saved
            .record
            .iter()
            .find(|(i, _)| i == iname)
            .map_or(0, |(_, seq)| *seq)
    }

    /// Write the progress record of `stream` (its directory `dir`) if it changed and was
    /// last written over a second ago (`force`: whatever the time). Blocking: called off
    /// the async workers. Under an interval durability the stream is fsynced first, so
    /// the record never claims copies a crash could still take away.
    fn save(&self, stream: &Stream, dir: &std::path::Path, force: bool) {
        use natrium_store::file::meta::{MetaKind, write_meta};
        if stream.is_closed() {
            return;
        }
        let links = self.links.lock().clone();
        let mut saved = self.saved.lock();
        if !saved.loaded {
            // Nothing settled yet: nothing new to say.
            return;
        }
        let record: Vec<(String, u64)> = links
            .iter()
            .filter(|l| !l.mirror)
            .map(|l| {
                let kept = saved
                    .record
                    .iter()
                    .find(|(i, _)| *i == l.iname)
                    .map_or(0, |(_, s)| *s);
                (l.iname.clone(), l.state.lock().sseq.max(kept))
            })
            .filter(|(_, seq)| *seq > 0)
            .collect();
        if saved.record == record || (!force && saved.at.is_some_and(|t| t.elapsed() < SAVE_EVERY))
        {
            return;
        }
        let Ok(bytes) = serde_json::to_vec(&record) else {
            return;
        };
        if !matches!(stream.store.durability(), natrium_store::Durability::Always)
            && stream.store.sync().is_err()
        {
            return;
        }
        // A failed write leaves the previous record, which is behind, never ahead: the
        // next batch tries again.
        if write_meta(&dir.join(SOURCES_FILE), MetaKind::SourcesState, &bytes).is_ok() {
            saved.record = record;
            saved.at = Some(std::time::Instant::now());
        }
    }

    /// Stop every link (the stream is deleted or the server stops).
    pub fn stop_all(&self) {
        for link in self.links.lock().drain(..) {
            link.stop();
        }
    }

    /// The mirror's status, if the stream is a mirror.
    pub fn mirror_info(&self, server: &ServerShared, account: &str) -> Option<StreamSourceInfo> {
        let links = self.links.lock().clone();
        links
            .iter()
            .find(|l| l.mirror)
            .map(|l| l.info(lookup(server, account, &l.cfg).as_ref()))
    }

    /// The sources' statuses.
    pub fn sources_info(&self, server: &ServerShared, account: &str) -> Vec<StreamSourceInfo> {
        let links = self.links.lock().clone();
        links
            .iter()
            .filter(|l| !l.mirror)
            .map(|l| l.info(lookup(server, account, &l.cfg).as_ref()))
            .collect()
    }
}

/// The live origin stream of link `src` of a stream in `account`: `src.name` in the
/// same account, or for an `external` link in the account its API prefix leads to.
fn lookup(server: &ServerShared, account: &str, src: &StreamSource) -> Option<Arc<Stream>> {
    let origin_account = match &src.external {
        None => account.to_string(),
        Some(ext) => external_account(server, account, src, ext)?,
    };
    server
        .js
        .get()?
        .account(&origin_account)?
        .stream(&src.name)
        .filter(|s| !s.is_closed())
}

/// The account whose JetStream an `external` link (API prefix `api`) reaches from
/// `account`, and whose messages can reach `account` back: where nats-server's
/// consumer-create request for the link (`<api>.CONSUMER.CREATE.<origin>[.<name>.
/// <filter>]`) would be answered, and from where its deliveries (`<deliver>.<name>`)
/// would come. That takes, from one exporting account:
/// - a service import whose local subject covers the request and maps it onto the
///   exporter's `$JS.API` request for the same origin and filter (what nats-server's API
///   would check against the request's body), under an export that admits `account`;
/// - a stream import that brings the deliveries over unrenamed, under an export that
///   admits `account`.
///
/// `None` when no account qualifies: nothing is copied, as nats-server copies nothing
/// when its request or its deliveries cannot get through. (A request through this
/// server's own `$JS.<domain>.API` is not answered either: nats-server maps domain
/// subjects for clients, not for a stream's own requests.)
fn external_account(
    server: &ServerShared,
    account: &str,
    src: &StreamSource,
    ext: &ExternalStream,
) -> Option<String> {
    use crate::subject_mapping::service_import_transform;
    // A link through a durable consumer resets it and takes its deliveries; any other
    // link creates a consumer that delivers under the deliver prefix.
    let (tail, delivery) = match &src.consumer {
        Some(c) => (
            format!("CONSUMER.RESET.{}.{}", src.name, c.name),
            c.deliver_subject.clone(),
        ),
        None => {
            if ext.deliver.is_empty() {
                return None;
            }
            let filter = match (
                src.filter_subject.as_str(),
                src.subject_transforms.as_slice(),
            ) {
                (f, []) if !f.is_empty() => Some(f),
                (_, [one]) if !one.src.is_empty() => Some(one.src.as_str()),
                _ => None,
            };
            let tail = match filter {
                Some(f) => format!("CONSUMER.CREATE.{}.link.{f}", src.name),
                None => format!("CONSUMER.CREATE.{}", src.name),
            };
            (tail, format!("{}.link", ext.deliver))
        }
    };
    let request = format!("{}.{tail}", ext.api).replace("..", ".");
    let answered_as = format!("$JS.API.{tail}");
    let acc = server.account(account)?;
    let imports = acc.import_config();
    let api_of = imports.iter().filter(|i| i.service).find_map(|imp| {
        let (local, transform) = service_import_transform(&imp.subject, imp.to.as_deref());
        if !crate::sublist::subject_matches(local.as_bytes(), request.as_bytes()) {
            return None;
        }
        let mapped = transform.apply(request.as_bytes());
        (mapped == answered_as.as_bytes()
            && admits(server, &imp.account, &answered_as, true, account))
        .then(|| imp.account.clone())
    })?;
    imported_unrenamed(server, account, &api_of, &delivery, false).then_some(api_of)
}

/// Whether `exporter` exports `subject` (a service when `service`, else a stream) to
/// `account`.
fn admits(
    server: &ServerShared,
    exporter: &str,
    subject: &str,
    service: bool,
    account: &str,
) -> bool {
    server
        .account(exporter)
        .is_some_and(|e| e.export_for(subject, service, account).is_some())
}

/// Whether `account` imports `subject` from `exporter` as it is (not renamed, no
/// prefix; a service import when `service`, else a stream import), under an export
/// that admits it.
fn imported_unrenamed(
    server: &ServerShared,
    account: &str,
    exporter: &str,
    subject: &str,
    service: bool,
) -> bool {
    let Some(acc) = server.account(account) else {
        return false;
    };
    acc.import_config().iter().any(|imp| {
        imp.service == service
            && imp.account == exporter
            && imp.prefix.is_none()
            && imp.to.as_ref().is_none_or(|to| *to == imp.subject)
            && crate::sublist::subject_matches(imp.subject.as_bytes(), subject.as_bytes())
            && admits(server, exporter, subject, service, account)
    })
}

/// Whether flow-control answers from `account` reach consumer `consumer` of stream
/// `origin` in `exporter`: a service import from `exporter` that takes
/// `$JS.FC.<origin>.<consumer>.*` over unrenamed, under an export that admits `account`
/// (nats-server's setup for external links, `$JS.FC.>`). Without it the deliveries of a
/// link through a durable consumer are copied but never acknowledged, as there.
fn fc_reaches(
    server: &ServerShared,
    account: &str,
    exporter: &str,
    origin: &str,
    consumer: &str,
) -> bool {
    let reply = format!("$JS.FC.{origin}.{consumer}.x");
    imported_unrenamed(server, account, exporter, &reply, true)
}

/// Where a link starts reading in `origin` when the stream (`target`) holds nothing of
/// it yet, as nats-server sets up a new source's consumer: `opt_start_seq`; else
/// `opt_start_time`, but not before the stream's own last message; else, for a stream
/// that has had messages removed from its front (first sequence above 1), after its last
/// message's time (so re-adding a source to a purged stream does not copy its origin
/// again); else the origin's first message. Worked out once per link start: a start time
/// in the future is where it stays, not a moving target.
fn configured_start(src: &StreamSource, origin: &dyn StreamStore, target: &dyn StreamStore) -> u64 {
    if src.opt_start_seq > 0 {
        return src.opt_start_seq;
    }
    let st = target.fast_state();
    let last_ts = (st.last_ts > 0).then_some(st.last_ts);
    match (&src.opt_start_time, last_ts) {
        (Some(t), Some(last)) => origin.seq_from_time(t.unix_nanos_saturating().max(last)),
        (Some(t), None) => origin.seq_from_time(t.unix_nanos_saturating()),
        (None, Some(last)) if st.first_seq > 1 => origin.seq_from_time(last),
        _ => 1,
    }
}

/// The origin sequence of the newest copy in `store` made by link `iname` (0: none),
/// reading backwards from the end.
fn newest_copy(store: &dyn StreamStore, iname: &str) -> u64 {
    let all = SubjectFilter::all();
    let mut at = store.fast_state().last_seq;
    while at > 0 {
        let Ok(msg) = store.load_prev_msg(&all, at) else {
            break;
        };
        at = msg.seq.saturating_sub(1);
        if let Some((name, seq)) =
            headers::get_set_str(&msg.hdrs, headers::STREAM_SOURCE).and_then(parse_source_header)
            && name == iname
        {
            return seq;
        }
    }
    0
}

/// Settle where `link` starts, from the stream's content and progress record (see the
/// module docs). `Link::state` is a leaf lock: never held while the store is read.
fn settle_start(link: &Link, stream: &Stream, server: &ServerShared) {
    if link.state.lock().started {
        return;
    }
    let start = if link.mirror {
        stream.store.fast_state().last_seq
    } else {
        newest_copy(&*stream.store, &link.iname).max(stream.links.recorded(
            stream,
            &link.iname,
            server,
        ))
    };
    let mut st = link.state.lock();
    st.started = true;
    st.sseq = st.sseq.max(start);
}

/// Read up to one batch of `origin` messages for `link` from sequence `from`.
fn read_batch(link: &Link, origin: &dyn StreamStore, from: u64) -> Vec<StoredMsg> {
    let mut out = Vec::new();
    let mut bytes = 0usize;
    let mut next = from;
    while out.len() < BATCH_MSGS && bytes < BATCH_BYTES {
        match origin.load_next_msg(&link.filter, next) {
            Ok(m) => {
                next = m.seq + 1;
                bytes += m.payload.len() + m.hdrs.len() + m.subject.len();
                out.push(m);
            }
            Err(_) => break,
        }
    }
    out
}

/// Sleep `d`, or less if the link is stopped meanwhile.
async fn pause(link: &Link, d: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = link.wake.notified() => {}
    }
}

/// A link's task: copy what the origin has, then wait for more.
async fn run(link: Arc<Link>, stream: Weak<Stream>, server: Arc<ServerShared>) {
    let mut retry = RETRY_MIN;
    // The progress last handed to the record's writer when idle.
    let mut idle_saved = 0u64;
    // A copy's header block, rebuilt in place for each copy.
    let mut block: Vec<u8> = Vec::new();
    loop {
        if link.is_stopped() {
            link.unregister();
            return;
        }
        let Some(target) = stream.upgrade().filter(|s| !s.is_closed()) else {
            link.unregister();
            return;
        };
        let Some(origin) = lookup(&server, &target.account.name, &link.cfg) else {
            link.unregister();
            link.state.lock().error = Some(ApiError::stream_not_found());
            drop(target);
            pause(&link, IDLE_CHECK).await;
            continue;
        };
        link.register(&origin);
        let ident = stream_identity(&origin.created);
        {
            let mut st = link.state.lock();
            if st.origin_ident != ident {
                if !st.origin_ident.is_empty() && !link.mirror {
                    // A new stream under the old name: its sequences start over.
                    st.sseq = 0;
                    st.next = 0;
                }
                st.origin_ident = ident.clone();
            }
        }
        if !link.state.lock().started {
            let (t, l, s) = (target.clone(), link.clone(), server.clone());
            // The backwards read of a source's start touches the disk: off the workers.
            if tokio::task::spawn_blocking(move || settle_start(&l, &t, &s))
                .await
                .is_err()
            {
                link.unregister();
                return;
            }
        }
        let fresh = {
            let mut st = link.state.lock();
            st.error = None;
            st.last_active = now_nanos();
            st.sseq == 0 && st.next == 0
        };
        // Worked out once: stores are read without the link's lock held.
        let start = fresh.then(|| configured_start(&link.cfg, &*origin.store, &*target.store));
        let from = {
            let mut st = link.state.lock();
            if let Some(start) = start
                && st.next == 0
            {
                st.next = start.max(1);
            }
            (st.sseq + 1).max(st.next)
        };
        // An empty mirror starting past sequence 1 reports that start at once (first
        // `start`, last `start - 1`), as nats-server's; only the link writes to a mirror.
        if link.mirror
            && let Some(start) = start.filter(|s| *s > 1)
            && target.store.fast_state().last_seq == 0
        {
            let store = target.store.clone();
            let _ = tokio::task::spawn_blocking(move || store.compact(start)).await;
        }
        let mut seen = origin.last_seq.subscribe();
        // Everything up to here is durable in the origin, so readable: a read that finds
        // nothing has looked at all of it.
        let readable = *seen.borrow_and_update();
        let batch = read_batch(&link, &*origin.store, from);
        if batch.is_empty() {
            let sseq = {
                let mut st = link.state.lock();
                st.next = st.next.max(from).max(readable.saturating_add(1));
                st.sseq
            };
            drop(origin);
            // Idle: the record catches up with the last batches (once per change).
            if let Some(dir) = target.dir.clone()
                && !link.mirror
                && sseq != idle_saved
            {
                idle_saved = sseq;
                let t = target.clone();
                let _ = tokio::task::spawn_blocking(move || t.links.save(&t, &dir, true)).await;
            }
            drop(target);
            tokio::select! {
                _ = seen.changed() => {}
                _ = link.wake.notified() => {}
                _ = tokio::time::sleep(IDLE_CHECK) => {}
            }
            continue;
        }
        let origin_weak = Arc::downgrade(&origin);
        drop(origin);
        let mut last_queued = None;
        let mut queued_seqs: Vec<u64> = Vec::with_capacity(batch.len());
        for m in batch {
            let subject = link.map_subject(&m.subject);
            let subject = subject.as_deref().unwrap_or(&m.subject);
            let by = SourcedBy {
                link: link.clone(),
                origin_seq: m.seq,
                mirror_ts: link.mirror.then_some(m.ts),
            };
            let queued = if link.mirror {
                let hdrs = (!m.hdrs.is_empty()).then_some(&m.hdrs[..]);
                target.enqueue_sourced(subject, hdrs, &m.payload, by)
            } else {
                link.source_block(&mut block, m.seq, &m.subject, &m.hdrs, &ident);
                target.enqueue_sourced(subject, Some(&block), &m.payload, by)
            };
            match queued {
                Ok(n) => {
                    last_queued = Some(n);
                    queued_seqs.push(m.seq);
                }
                // The stream's queue is full or the stream is going: read again later.
                Err(_) => break,
            }
        }
        let mut processed = target.processed.subscribe();
        let dir = target.dir.clone().filter(|_| !link.mirror);
        drop(target);
        if let Some(n) = last_queued {
            tokio::select! {
                _ = processed.wait_for(|p| *p >= n) => {}
                _ = link.wake.notified() => {
                    link.unregister();
                    return;
                }
            }
        }
        // The stream reports copies to the link once they are durable (or refused).
        let (failed, copied_to) = {
            let mut st = link.state.lock();
            let failed = st.failed.take();
            st.next = match (failed, queued_seqs.last()) {
                (Some(f), _) => f,
                (None, Some(last)) => last + 1,
                (None, None) => st.next,
            };
            (failed, st.sseq)
        };
        // A work-queue origin gives away what was copied; an interest origin drops what
        // nobody else wants any more (the link counts as a consumer there).
        if let Some(origin) = origin_weak.upgrade()
            && origin.retention() != RetentionPolicy::Limits
        {
            let done: Vec<u64> = queued_seqs
                .into_iter()
                .filter(|s| *s <= copied_to)
                .collect();
            if !done.is_empty() {
                origin.apply_retention(&done);
            }
        }
        if let (Some(dir), Some(target)) = (dir, stream.upgrade()) {
            let _ =
                tokio::task::spawn_blocking(move || target.links.save(&target, &dir, false)).await;
        }
        match (failed, last_queued) {
            (None, Some(_)) => retry = RETRY_MIN,
            _ => {
                pause(&link, retry).await;
                retry = (retry * 2).min(RETRY_MAX);
            }
        }
    }
}

/// Mirrors and sources through a durable consumer of the origin (`consumer: {name,
/// deliver_subject}`, nats-server 2.15): the origin's owner made a push consumer with
/// the `flow_control` ack policy, and the link takes what that consumer delivers.
///
/// Why not the store reads of [`run`]: the consumer is the origin side's record of how
/// far the link got (its ack floor), and its filters decide what is copied, so the link
/// drives it as nats-server's does: it resets the consumer to its ack floor, then
/// subscribes to the deliver subject, copies each delivery (a mirror at the origin's
/// sequence and time; a source as a copy whose `Nats-Stream-Source` names
/// `<origin>:C=<hash of the consumer name>`), skipping what it holds already, and
/// answers each flow-control request (or the one a heartbeat reports stalled), once the
/// copies before it are durable, with `Nats-Last-Stream` / `Nats-Last-Consumer`, which
/// acknowledges them on the origin. A copy the stream refuses, a full stream queue or a
/// gap in the consumer's sequence starts a new round from the ack floor, so nothing is
/// skipped and nothing stored twice.
///
/// Bounded memory: deliveries wait in an unbounded channel, but the consumer's flow
/// control stops it once a window of unanswered bytes is out, and requests are answered
/// only after the copies before them are durable.
mod through_consumer {
    use super::*;
    use crate::account::Account;
    use crate::client::deliver::{DeliveryCtx, Publisher};
    use crate::client::subscription::{InternalHandler, Subscription};
    use crate::protocol::PubMsg;
    use std::collections::VecDeque;
    use tokio::sync::mpsc;

    /// What the deliver-subject subscription hands to the link.
    enum Pushed {
        /// A delivery: stream and consumer sequences and the stored time, from its ack
        /// reply; its subject, headers and payload copied into one buffer.
        Msg {
            sseq: u64,
            dseq: u64,
            ts: i64,
            data: Vec<u8>,
            /// Where the subject ends in `data`.
            subject_end: usize,
            /// Where the headers end in `data` (the payload follows).
            hdrs_end: usize,
        },
        /// A flow-control request to answer on `reply`: a request, or the unanswered one
        /// an idle heartbeat names (`Nats-Consumer-Stalled`), as nats-server answers both.
        FlowControl { reply: String },
        /// An idle heartbeat: the consumer is alive.
        Alive,
    }

    struct DeliverSub {
        tx: mpsc::UnboundedSender<Pushed>,
        /// `<stream>.<consumer>.` of the origin consumer: replies naming another are not
        /// its deliveries (nats-server's `isCurrentSub`).
        names: String,
    }

    /// A delivery's ack reply: `$JS.ACK.<stream>.<consumer>.<count>.<sseq>.<dseq>.<ts>.
    /// <pending>` (9 tokens), or with a domain and an account hash after `ACK` (11 or
    /// more, as nats-server accepts). Returns `(stream, consumer, count, sseq, dseq, ts)`.
    fn ack_tokens(reply: &[u8]) -> Option<(&str, &str, u64, u64, u64, i64)> {
        let text = std::str::from_utf8(reply).ok()?;
        let t: Vec<&str> = text.split('.').collect();
        if t.len() < 9 || t[0] != "$JS" || t[1] != "ACK" {
            return None;
        }
        let at = match t.len() {
            9 => 2,
            n if n >= 11 => 4,
            _ => return None,
        };
        Some((
            t[at],
            t[at + 1],
            t[at + 2].parse().ok()?,
            t[at + 3].parse().ok()?,
            t[at + 4].parse().ok()?,
            t[at + 5].parse().ok()?,
        ))
    }

    impl InternalHandler for DeliverSub {
        fn handle(
            &self,
            _ctx: &mut DeliveryCtx,
            _account: &Arc<Account>,
            _sub: &Subscription,
            _publisher: Publisher<'_>,
            _routed_by: &[u8],
            msg: PubMsg<'_>,
        ) -> bool {
            let hdrs = msg.headers.unwrap_or(&[]);
            let pushed = if hdrs.starts_with(b"NATS/1.0 100") {
                let stalled = headers::get_set_str(hdrs, "Nats-Consumer-Stalled");
                match (msg.reply, stalled) {
                    (Some(r), _)
                        if memchr::memmem::find(hdrs, b"FlowControl Request").is_some() =>
                    {
                        Pushed::FlowControl {
                            reply: String::from_utf8_lossy(r).into_owned(),
                        }
                    }
                    (_, Some(fc)) => Pushed::FlowControl {
                        reply: fc.to_string(),
                    },
                    _ => Pushed::Alive,
                }
            } else {
                let Some((stream, consumer, count, sseq, dseq, ts)) =
                    msg.reply.and_then(ack_tokens)
                else {
                    return true;
                };
                let named = self
                    .names
                    .strip_prefix(stream)
                    .and_then(|r| r.strip_prefix('.'))
                    .and_then(|r| r.strip_prefix(consumer))
                    == Some(".");
                // Not the origin consumer's, or a redelivery (none under this ack policy).
                if !named || count != 1 {
                    return true;
                }
                let mut data =
                    Vec::with_capacity(msg.subject.len() + hdrs.len() + msg.payload.len());
                data.extend_from_slice(msg.subject);
                data.extend_from_slice(hdrs);
                data.extend_from_slice(msg.payload);
                Pushed::Msg {
                    sseq,
                    dseq,
                    ts,
                    data,
                    subject_end: msg.subject.len(),
                    hdrs_end: msg.subject.len() + hdrs.len(),
                }
            };
            let _ = self.tx.send(pushed);
            true
        }
    }

    /// The subscription, removed from the origin account when dropped.
    struct Subscribed {
        account: Arc<Account>,
        sub: Arc<Subscription>,
    }

    impl Drop for Subscribed {
        fn drop(&mut self) {
            crate::client::deliver::remove_sub(&self.account, &self.sub);
        }
    }

    /// Answers a flow-control request, acknowledging up to `(sseq, dseq)` (nothing with
    /// `sseq` 0).
    fn answer(server: &Arc<ServerShared>, account: &Arc<Account>, reply: &str, last: (u64, u64)) {
        let hdrs = (last.0 > 0).then(|| {
            format!(
                "NATS/1.0\r\nNats-Last-Consumer: {}\r\nNats-Last-Stream: {}\r\n\r\n",
                last.1, last.0
            )
        });
        let mut ctx = DeliveryCtx::new(server.clone(), rand::random());
        ctx.publish_routed(
            account,
            reply.as_bytes(),
            Publisher::SERVER,
            PubMsg {
                subject: reply.as_bytes(),
                reply: None,
                headers: hdrs.as_deref().map(str::as_bytes),
                payload: b"",
            },
        );
        ctx.flush();
    }

    /// Why a round of the link ended.
    enum Ended {
        /// The link was stopped.
        Stopped,
        /// Go again at once (the origin or consumer changed, the deliveries stopped).
        Again,
        /// Go again after a back-off (a copy was refused, the queue was full).
        Refused,
    }

    pub(super) async fn run(link: Arc<Link>, stream: Weak<Stream>, server: Arc<ServerShared>) {
        let Some(cons) = link.cfg.consumer.clone() else {
            return;
        };
        let mut retry = RETRY_MIN;
        loop {
            if link.is_stopped() {
                return;
            }
            let Some(target) = stream.upgrade().filter(|s| !s.is_closed()) else {
                return;
            };
            match round(&link, &cons, &target, &server).await {
                Ended::Stopped => return,
                Ended::Again => {
                    retry = RETRY_MIN;
                    drop(target);
                    pause(&link, IDLE_CHECK).await;
                }
                Ended::Refused => {
                    drop(target);
                    pause(&link, retry).await;
                    retry = (retry * 2).min(RETRY_MAX);
                }
            }
        }
    }

    /// One subscription's life: find the origin and its consumer, reset it, copy its
    /// deliveries and answer its flow-control requests until something changes.
    async fn round(
        link: &Arc<Link>,
        cons: &super::super::api::stream::StreamConsumerSource,
        target: &Arc<Stream>,
        server: &Arc<ServerShared>,
    ) -> Ended {
        use super::super::api::consumer::AckPolicy;
        use super::super::api::errors::ErrorId;
        // Without its origin or consumer the link waits, showing no error (as
        // nats-server's, whose reset request just goes unanswered).
        let Some((origin, consumer)) = lookup(server, &target.account.name, &link.cfg)
            .and_then(|o| o.consumer(&cons.name).map(|c| (o, c)))
        else {
            return Ended::Again;
        };
        {
            let cfg = consumer.config();
            if cfg.ack_policy != AckPolicy::FlowControl
                || cfg.deliver_subject != cons.deliver_subject
            {
                link.state.lock().error = Some(ApiError::from_id(if link.mirror {
                    ErrorId::MirrorConsumerRequiresAckFc
                } else {
                    ErrorId::SourceConsumerRequiresAckFc
                }));
                return Ended::Again;
            }
        }
        // A new origin under the old name: a source starts over on it (a mirror's
        // sequences are the origin's own).
        let ident = stream_identity(&origin.created);
        {
            let mut st = link.state.lock();
            if st.origin_ident != ident {
                if !st.origin_ident.is_empty() && !link.mirror {
                    st.sseq = 0;
                }
                st.origin_ident = ident.clone();
            }
        }
        // Where the copies end: a mirror's last sequence, or a source's own last copy in
        // the stream, found once.
        if !link.state.lock().started {
            let store = target.store.clone();
            let iname = link.iname.clone();
            let mirror = link.mirror;
            let Ok(last) = tokio::task::spawn_blocking(move || {
                if mirror {
                    store.fast_state().last_seq
                } else {
                    newest_copy(&*store, &iname)
                }
            })
            .await
            else {
                return Ended::Stopped;
            };
            let mut st = link.state.lock();
            st.sseq = st.sseq.max(last);
            st.started = true;
        }
        // Back to the consumer's ack floor, as nats-server resets it: what it delivered
        // and was not acknowledged goes out again; what is already copied is skipped
        // below, and acknowledged with the next answer. Only then the subscription, so
        // nothing delivered before the reset arrives.
        let c2 = consumer.clone();
        let reset = tokio::task::spawn_blocking(move || c2.reset_to(None)).await;
        if !matches!(reset, Ok(Ok(_))) {
            return Ended::Refused;
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        let sub = Arc::new(Subscription::internal(
            Arc::new(DeliverSub {
                tx,
                names: format!("{}.{}.", origin.name, cons.name),
            }),
            cons.deliver_subject.as_bytes(),
            None,
        ));
        if origin
            .account
            .sublist
            .insert(cons.deliver_subject.as_bytes(), None, sub.clone())
            .is_err()
        {
            return Ended::Again;
        }
        // The origin's consumer waits for this subscriber (`interest_watch.rs`).
        origin
            .account
            .interest_watch
            .subscribed(cons.deliver_subject.as_bytes());
        let _subscribed = Subscribed {
            account: origin.account.clone(),
            sub,
        };
        {
            let mut st = link.state.lock();
            st.error = None;
            st.failed = None;
            st.last_active = now_nanos();
        }
        let account = origin.account.clone();
        // A local link's answers reach the consumer; an external one's only through an
        // import of the flow-control subjects.
        let acks = link.cfg.external.is_none()
            || fc_reaches(
                server,
                &target.account.name,
                &account.name,
                &origin.name,
                &cons.name,
            );
        let origin_weak = Arc::downgrade(&origin);
        let consumer_weak = Arc::downgrade(&consumer);
        drop((origin, consumer));
        let copied = link.state.lock().sseq;
        // Queued copies not yet known durable: (stream seq, consumer seq).
        let mut queued: VecDeque<(u64, u64)> = VecDeque::new();
        let mut last_queued: Option<u64> = None;
        // What the next answer acknowledges: the last delivery copied durably (or
        // skipped as copied already), as (stream seq, consumer seq).
        let mut done = (0u64, 0u64);
        // The last delivery's consumer sequence: they must follow on without a gap.
        let mut last_dseq = 0u64;
        let mut block: Vec<u8> = Vec::new();
        let mut check = tokio::time::interval(IDLE_CHECK);
        check.tick().await;
        let ended = loop {
            let pushed = tokio::select! {
                p = rx.recv() => p,
                _ = link.wake.notified() => return Ended::Stopped,
                _ = check.tick() => {
                    let gone = origin_weak.upgrade().is_none_or(|o| o.is_closed())
                        || consumer_weak.upgrade().is_none_or(|c| c.is_closed());
                    if gone || link.is_stopped() || target.is_closed() {
                        break Ended::Again;
                    }
                    continue;
                }
            };
            let Some(pushed) = pushed else {
                break Ended::Again;
            };
            link.state.lock().last_active = now_nanos();
            match pushed {
                Pushed::Alive => {}
                Pushed::Msg {
                    sseq,
                    dseq,
                    ts,
                    data,
                    subject_end,
                    hdrs_end,
                } => {
                    let (subject, rest) = data.split_at(subject_end);
                    let (hdrs, payload) = rest.split_at(hdrs_end - subject_end);
                    // The protocol parser takes only UTF-8 subjects.
                    let Ok(subject) = std::str::from_utf8(subject) else {
                        continue;
                    };
                    // A gap in the consumer's sequence: something was missed; reset.
                    if dseq != last_dseq + 1 {
                        break Ended::Refused;
                    }
                    last_dseq = dseq;
                    // Copied before the reset: only acknowledged with the next answer.
                    if sseq <= copied || queued.back().is_some_and(|q| sseq <= q.0) {
                        if queued.is_empty() {
                            done = (sseq, dseq);
                        }
                        continue;
                    }
                    let mapped = link.map_subject(subject);
                    let by = SourcedBy {
                        link: link.clone(),
                        origin_seq: sseq,
                        mirror_ts: link.mirror.then_some(ts),
                    };
                    // A mirror keeps the origin's headers; a source's copy says where it
                    // came from.
                    let block: Option<&[u8]> = if link.mirror {
                        (!hdrs.is_empty()).then_some(hdrs)
                    } else {
                        link.source_block(&mut block, sseq, subject, hdrs, &ident);
                        Some(&block)
                    };
                    match target.enqueue_sourced(
                        mapped.as_deref().unwrap_or(subject),
                        block,
                        payload,
                        by,
                    ) {
                        Ok(n) => {
                            last_queued = Some(n);
                            queued.push_back((sseq, dseq));
                        }
                        Err(_) => break Ended::Refused,
                    }
                }
                Pushed::FlowControl { reply } => {
                    if let Some(n) = last_queued {
                        let mut processed = target.processed.subscribe();
                        tokio::select! {
                            _ = processed.wait_for(|p| *p >= n) => {}
                            _ = link.wake.notified() => return Ended::Stopped,
                        }
                    }
                    let (durable, failed) = {
                        let st = link.state.lock();
                        (st.sseq, st.failed.is_some())
                    };
                    while let Some(&(s, d)) = queued.front() {
                        if s > durable {
                            break;
                        }
                        done = (s, d);
                        queued.pop_front();
                    }
                    if acks {
                        answer(server, &account, &reply, done);
                    }
                    if failed {
                        break Ended::Refused;
                    }
                }
            }
        };
        // What was queued settles before the next round resets the consumer; the
        // subscription goes with this round.
        drop(_subscribed);
        if let Some(n) = last_queued {
            let mut processed = target.processed.subscribe();
            tokio::select! {
                _ = processed.wait_for(|p| *p >= n) => {}
                _ = link.wake.notified() => return Ended::Stopped,
            }
        }
        link.state.lock().failed = None;
        ended
    }

    #[cfg(test)]
    mod tests {
        use super::ack_tokens;

        #[test]
        fn ack_replies_name_the_consumer_and_its_sequences() {
            assert_eq!(
                ack_tokens(b"$JS.ACK.O.C.1.17.5.1795875321000000000.0"),
                Some(("O", "C", 1, 17, 5, 1795875321000000000))
            );
            assert_eq!(
                ack_tokens(b"$JS.ACK.dom.HASH.O.C.2.17.5.1795875321000000000.0"),
                Some(("O", "C", 2, 17, 5, 1795875321000000000))
            );
            assert_eq!(
                ack_tokens(b"$JS.ACK.dom.HASH.O.C.1.17.5.9.0.rand"),
                Some(("O", "C", 1, 17, 5, 9))
            );
            assert_eq!(ack_tokens(b"$JS.ACK.O.C.1.17.5.1.0.x"), None);
            assert_eq!(ack_tokens(b"$JS.FC.O.C.1234"), None);
            assert_eq!(ack_tokens(b"$JS.ACK.O.C.x.17.5.0.0"), None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_nats_servers_hash_of_the_creation_time() {
        // Measured on nats-server 2.15.1: a stream created at this instant has this
        // identity in its sources' headers.
        let t = Timestamp::parse_rfc3339("2026-11-30T10:50:26.99290866Z").unwrap();
        assert_eq!(stream_identity(&t), "fTgJLWP5");
    }

    #[test]
    fn source_headers_name_their_link() {
        assert_eq!(
            parse_source_header("O 4 o.1 > o.1 fTgJLWP5"),
            Some(("O o.1 >".to_string(), 4))
        );
        assert_eq!(
            parse_source_header("O 12 o.0 t.0 o.0"),
            Some(("O o.0 t.0".to_string(), 12))
        );
        assert_eq!(parse_source_header("O 12"), None);
        assert_eq!(parse_source_header("O x > > a"), None);
        let src = StreamSource {
            name: "O".into(),
            subject_transforms: vec![SubjectTransform {
                src: "o.0".into(),
                dest: "t.0".into(),
            }],
            ..StreamSource::default()
        };
        let link = Link::new(&src, false).unwrap();
        let m = StoredMsg {
            seq: 3,
            ts: 1,
            subject: "o.0".into(),
            hdrs: bytes::Bytes::from_static(b"NATS/1.0\r\nNats-Expected-Stream: O\r\nK: v\r\n\r\n"),
            payload: bytes::Bytes::new(),
            ttl: None,
        };
        let mut block = b"left over".to_vec();
        link.source_block(&mut block, m.seq, &m.subject, &m.hdrs, "ID");
        assert_eq!(
            block,
            b"NATS/1.0\r\nK: v\r\nNats-Stream-Source: O 3 o.0 t.0 o.0 ID\r\n\r\n"
        );
        assert_eq!(link.map_subject("o.0").as_deref(), Some("t.0"));
        assert_eq!(link.map_subject("o.1"), None);
    }
}
