//! The JetStream engine: which accounts have JetStream, their streams, and recovering
//! everything from disk at start.
//!
//! On disk (as nats-server lays it out): `<store_dir>/jetstream/<account>/streams/<stream>/`.
//! A file stream's directory is a `natrium-store` file store, whose stream metadata blob
//! holds the stream's config and creation time. Memory streams (and their consumers)
//! leave nothing on disk and are gone after a restart, as with a standalone nats-server.
//! A `memory-stream.json` left by earlier natrium builds, which did keep memory stream
//! configs, is removed at start.
//!
//! Lock order: `JetStream::accounts` before `JsAccount::streams`; neither is held while a
//! stream's store is opened, synced or deleted, nor while publishing.

use super::api::stream::{StorageType as ApiStorage, StreamConfig};
use super::api::time::Timestamp;
use super::config::JsConfig;
use super::consumer::ConsumerMeta;
use super::limits::{ServerLimits, Storage, accounts_fit_message, check_accounts_fit};
use super::stream::{Stream, store_config};
use crate::account::Account;
use crate::options::AccountJsLimits;
use crate::server::ServerShared;
use crate::{error, info, warn};
use natrium_store::{
    ConsumerPolicy, Durability, FileStore, FileStoreOptions, MemStore, StreamStore,
};
use parking_lot::RwLock;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

/// File name of a memory stream's config as earlier natrium builds persisted it.
const LEGACY_MEMORY_META: &str = "memory-stream.json";

/// What we persist about a stream besides its messages.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamMeta {
    /// The stored configuration.
    pub config: StreamConfig,
    /// Creation time.
    pub created: Timestamp,
}

/// Why a stream could not be created or opened.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The store failed.
    #[error("{0}")]
    Store(#[from] natrium_store::StoreError),
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Metadata could not be read.
    #[error("stream metadata in {path}: {detail}")]
    Meta {
        /// Where.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
}

/// Write `bytes` to `path` so that a crash leaves either the old or the new content:
/// temp file, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), EngineError> {
    use std::io::Write;
    let io = |op: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |source| EngineError::Io {
            op,
            path: p,
            source,
        }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io("create", &tmp))?;
    f.write_all(bytes).map_err(io("write", &tmp))?;
    f.sync_all().map_err(io("fsync", &tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io("rename", path))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync dir", dir))?;
    Ok(())
}

/// Remove what earlier natrium builds kept of a memory stream: its `memory-stream.json`
/// and `consumers/*.json`, then the (then empty) directories. Anything else in the
/// directory is left alone, and so is the directory then.
fn remove_legacy_memory_stream(dir: &Path) -> Result<(), EngineError> {
    let io = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| EngineError::Io { op, path, source }
    };
    let consumers = dir.join("consumers");
    if let Ok(entries) = std::fs::read_dir(&consumers) {
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().is_some_and(|x| x == "json") {
                std::fs::remove_file(&path).map_err(io("remove", &path))?;
            }
        }
        std::fs::remove_dir(&consumers).map_err(io("rmdir", &consumers))?;
    }
    let meta = dir.join(LEGACY_MEMORY_META);
    std::fs::remove_file(&meta).map_err(io("remove", &meta))?;
    std::fs::remove_dir(dir).map_err(io("rmdir", dir))?;
    Ok(())
}

/// JetStream state of one account.
pub struct JsAccount {
    /// The account.
    pub account: Arc<Account>,
    /// Its JetStream limits (replaced by a reload).
    pub live_limits: RwLock<AccountJsLimits>,
    /// Streams by name.
    pub streams: RwLock<BTreeMap<String, Arc<Stream>>>,
    /// `<store>/jetstream/<account>/streams`.
    pub dir: PathBuf,
    /// API requests handled for this account.
    pub api_total: AtomicU64,
    /// API requests that failed.
    pub api_errors: AtomicU64,
    /// Stream restores in progress or parked for a resume.
    pub restores: super::restore::RestoreSlots,
    /// Bytes stored by the account's streams, memory and file (in that order): each
    /// stream's bytes gauge is attached here while the stream is in `streams`, so the
    /// limit check of a publish batch reads one number instead of summing every stream.
    used: StorageTotals,
    /// The server's totals (`JetStream::used`), which the account's streams are attached
    /// to as well.
    server_used: StorageTotals,
}

/// Bytes used per storage type, kept up to date by the stores' gauges
/// (`natrium_store::gauge`): index 0 memory, 1 file.
pub type StorageTotals = [Arc<AtomicU64>; 2];

/// The index of a storage type in [`StorageTotals`].
pub fn totals_index(memory: bool) -> usize {
    usize::from(!memory)
}

impl std::fmt::Debug for JsAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsAccount")
            .field("account", &self.account.name)
            .finish_non_exhaustive()
    }
}

impl JsAccount {
    /// The account's current JetStream limits.
    pub fn limits(&self) -> AccountJsLimits {
        *self.live_limits.read()
    }

    /// A stream by name.
    pub fn stream(&self, name: &str) -> Option<Arc<Stream>> {
        self.streams.read().get(name).cloned()
    }

    /// Bytes stored by the account's streams of one storage type.
    pub fn usage(&self, memory: bool) -> u64 {
        self.used[totals_index(memory)].load(Ordering::Relaxed)
    }

    /// Makes `stream` the account's stream of its name, counting its bytes in the
    /// account's and the server's usage. A stream it replaces stops counting.
    pub fn insert_stream(&self, stream: Arc<Stream>) {
        let i = totals_index(stream.is_memory());
        let gauge = stream.store.bytes_gauge();
        let mut streams = self.streams.write();
        // Attach under the map's lock, so that usage never counts a stream that is not
        // in the map, nor misses one that is.
        gauge.attach(self.used[i].clone());
        gauge.attach(self.server_used[i].clone());
        if let Some(old) = streams.insert(stream.name.clone(), stream) {
            old.store.bytes_gauge().detach_all();
        }
    }

    /// Takes the stream `name` out of the account; its bytes stop counting.
    pub fn remove_stream(&self, name: &str) -> Option<Arc<Stream>> {
        let stream = self.streams.write().remove(name)?;
        stream.store.bytes_gauge().detach_all();
        Some(stream)
    }

    /// Takes the stream `name` out of the account, stops it and deletes its data (a
    /// stream delete; a restore that failed after its stream went live). `None` when
    /// there is no such stream.
    pub fn delete_stream(&self, name: &str) -> Option<Result<(), natrium_store::StoreError>> {
        let stream = self.remove_stream(name)?;
        stream.close();
        let deleted = stream.store.delete();
        if deleted.is_ok()
            && let Some(dir) = &stream.dir
        {
            let _ = std::fs::remove_dir_all(dir);
        }
        Some(deleted)
    }
}

/// The server's JetStream.
pub struct JetStream {
    /// Resolved server-level configuration (as at start; the limits in force are in
    /// `limits`).
    pub config: JsConfig,
    /// The server's storage limits, changeable by a reload.
    pub limits: ServerLimits,
    /// The server.
    pub server: Weak<ServerShared>,
    /// Accounts with JetStream, by name.
    pub accounts: RwLock<FxHashMap<String, Arc<JsAccount>>>,
    /// API requests handled.
    pub api_total: AtomicU64,
    /// API requests that failed.
    pub api_errors: AtomicU64,
    /// Durability of file streams: `Always` unless `sync_interval` says otherwise.
    pub durability: Durability,
    /// JetStream domain.
    pub domain: String,
    /// The `$JS.API.>` handler, to subscribe accounts added later.
    pub api_handler:
        parking_lot::Mutex<Option<Arc<dyn crate::client::subscription::InternalHandler>>>,
    /// Set while some stream's task runs an fsync on its own worker thread (a quiet
    /// stream's shortcut, see `Stream::run`): at most one worker at a time may be tied up
    /// by the disk, so the other workers keep serving, and busy streams keep their
    /// fsyncs on the blocking pool, where any number may run at once.
    pub inline_fsync: AtomicBool,
    /// How many fsyncs streams ran that way since start (for tests and diagnostics).
    pub inline_fsyncs: AtomicU64,
    /// Bytes stored by all accounts' streams, memory and file: every stream in an
    /// account's map has its bytes gauge attached here (see `JsAccount::insert_stream`).
    pub used: StorageTotals,
    /// Rounds of live traffic since start: a publish batch stored by any stream, or a
    /// consumer's round that delivered or acknowledged messages. Bulk work (a
    /// snapshot's transfer, a restore's import) watches it to know when live clients
    /// are there to yield to (`background::Yielder`).
    pub live_work: AtomicU64,
    /// `jetstream { backup_share }`: percent of the time a snapshot transfer may work
    /// while publishes arrive (see `background::Yielder`). A reload changes it, also
    /// for transfers under way (read at every step).
    pub backup_share: std::sync::atomic::AtomicU8,
    /// `jetstream { restore_share }`: the same for a restore's import (default 100: a
    /// restore is usually wanted done; see `background`).
    pub restore_share: std::sync::atomic::AtomicU8,
    /// Group fsyncs of all file streams (`FileStoreOptions::disk_fsyncs`): a backup's
    /// read-ahead keeps its reads short while any stream's writers wait for fsyncs.
    pub disk_fsyncs: Arc<AtomicU64>,
    /// Atomic batches open in all streams (`atomic_batch::Batches` share it), held under
    /// `batch_limits.max_inflight_total`.
    pub atomic_batches: Arc<std::sync::atomic::AtomicUsize>,
    /// Fast batches open in all streams (`fast_batch::FastBatches` share it).
    pub fast_batches: Arc<std::sync::atomic::AtomicUsize>,
    /// `jetstream { limits { batch { … } } }` or nats-server's defaults.
    pub batch_limits: super::atomic_batch::BatchLimits,
    /// `jetstream { limits { … } }` that stream and consumer configs are checked against.
    pub api_limits: super::api::ServerLimits,
}

/// `jetstream { backup_share }` or its default.
fn backup_share(o: &crate::options::JetStreamOptions) -> u8 {
    o.backup_share
        .unwrap_or(super::background::DEFAULT_BACKUP_SHARE)
}

/// `jetstream { restore_share }` or its default (100: never yield).
fn restore_share(o: &crate::options::JetStreamOptions) -> u8 {
    o.restore_share.unwrap_or(100)
}

impl std::fmt::Debug for JetStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStream").finish_non_exhaustive()
    }
}

impl JetStream {
    /// Start JetStream for `server`: recover every JetStream-enabled account's streams.
    ///
    /// # Errors
    /// The accounts' limits do not fit the server's (nats-server's message, after
    /// `Can't start JetStream: `).
    pub fn start(server: &Arc<ServerShared>, config: JsConfig) -> Result<Arc<JetStream>, String> {
        let opts = server.opts();
        let durability = match opts.jetstream.sync_interval {
            Some(Some(d)) => Durability::Interval(d),
            Some(None) | None => Durability::Always,
        };
        let limits = ServerLimits::new(config.max_memory, config.max_store);
        let js = Arc::new(JetStream {
            limits,
            config,
            server: Arc::downgrade(server),
            accounts: RwLock::new(FxHashMap::default()),
            api_total: AtomicU64::new(0),
            api_errors: AtomicU64::new(0),
            durability,
            domain: opts.jetstream.domain.clone().unwrap_or_default(),
            api_handler: parking_lot::Mutex::new(None),
            inline_fsync: AtomicBool::new(false),
            used: Default::default(),
            inline_fsyncs: AtomicU64::new(0),
            live_work: AtomicU64::new(0),
            disk_fsyncs: Arc::new(AtomicU64::new(0)),
            backup_share: std::sync::atomic::AtomicU8::new(backup_share(&opts.jetstream)),
            restore_share: std::sync::atomic::AtomicU8::new(restore_share(&opts.jetstream)),
            atomic_batches: Default::default(),
            fast_batches: Default::default(),
            batch_limits: opts.jetstream.batch_limits,
            api_limits: opts.jetstream.api_limits,
        });
        drop(opts);
        for account in server.accounts() {
            if let Some(limits) = account.jetstream {
                if let Err(e) = js.check_fits(&account.name, &limits) {
                    js.shutdown();
                    return Err(e);
                }
                js.enable_account(server, account, limits);
            }
        }
        Ok(js)
    }

    /// Whether an account with `limits` can be enabled next to the ones already enabled
    /// (nats-server's `sufficientResources`).
    ///
    /// # Errors
    /// nats-server's message: `Error enabling jetstream on configured accounts: …`.
    pub fn check_fits(&self, name: &str, limits: &AccountJsLimits) -> Result<(), String> {
        let accounts = self.accounts.read();
        let mut others: Vec<(AccountJsLimits, (i64, i64))> = accounts
            .values()
            .filter(|a| a.account.name != name)
            .map(|a| {
                (
                    a.limits(),
                    (
                        super::limits::account_reserved(a, Storage::Memory, None),
                        super::limits::account_reserved(a, Storage::File, None),
                    ),
                )
            })
            .collect();
        drop(accounts);
        others.push((*limits, (0, 0)));
        check_accounts_fit(
            self.limits.max(Storage::Memory),
            self.limits.max(Storage::File),
            others.iter().map(|(l, r)| (l, *r)),
        )
        .map_err(|e| accounts_fit_message(&e))
    }

    /// The server limits and the accounts with JetStream a reloaded configuration asks
    /// for, checked like nats-server's `sufficientResources` (nothing is changed).
    ///
    /// # Errors
    /// The new limits do not fit (nats-server's message for enabling accounts).
    #[allow(clippy::type_complexity)]
    pub fn check_reload(
        &self,
        server: &Arc<ServerShared>,
        opts: &crate::options::Options,
    ) -> Result<(i64, i64, Vec<(String, AccountJsLimits)>), String> {
        let (mem, store) = super::config::reload_limits(&opts.jetstream, &self.config);
        let sys = opts.accounts.system_account_name().to_string();
        let mut wanted: Vec<(String, AccountJsLimits)> = opts
            .accounts
            .accounts
            .iter()
            .filter(|c| c.name != sys)
            .filter_map(|c| c.jetstream.map(|l| (c.name.clone(), l)))
            .collect();
        if !opts.accounts.accounts_block
            && let Some(g) = server.account(crate::account::GLOBAL_ACCOUNT)
            && let Some(l) = g.jetstream
        {
            wanted.push((g.name.clone(), l));
        }
        wanted.sort_by(|a, b| a.0.cmp(&b.0));
        let reserved = |name: &str| {
            self.account(name).map_or((0, 0), |a| {
                (
                    super::limits::account_reserved(&a, Storage::Memory, None),
                    super::limits::account_reserved(&a, Storage::File, None),
                )
            })
        };
        let check: Vec<(AccountJsLimits, (i64, i64))> =
            wanted.iter().map(|(n, l)| (*l, reserved(n))).collect();
        check_accounts_fit(mem, store, check.iter().map(|(l, r)| (l, *r)))
            .map_err(|e| accounts_fit_message(&e))?;
        Ok((mem, store, wanted))
    }

    /// Options for opening a file stream's store: the server's durability, and the
    /// fsync counter all its file stores share (`FileStoreOptions::disk_fsyncs`).
    pub fn file_store_options(&self) -> FileStoreOptions {
        FileStoreOptions {
            durability: self.durability,
            disk_fsyncs: Some(self.disk_fsyncs.clone()),
            ..FileStoreOptions::default()
        }
    }

    /// Apply a reloaded configuration (after the accounts were reloaded): new server
    /// limits, new account limits, JetStream for accounts that gained it.
    ///
    /// # Errors
    /// The new limits do not fit; nothing is changed then.
    pub fn reload(
        &self,
        server: &Arc<ServerShared>,
        opts: &crate::options::Options,
    ) -> Result<(), String> {
        let (mem, store, wanted) = self.check_reload(server, opts)?;
        self.limits.set(mem, store);
        self.backup_share
            .store(backup_share(&opts.jetstream), Ordering::Relaxed);
        self.restore_share
            .store(restore_share(&opts.jetstream), Ordering::Relaxed);
        for (name, l) in wanted {
            match self.account(&name) {
                Some(jsa) => *jsa.live_limits.write() = l,
                None => {
                    if let Some(account) = server.account(&name) {
                        self.enable_account(server, account, l);
                    }
                }
            }
        }
        Ok(())
    }

    /// Enable JetStream for an account and recover its streams.
    pub fn enable_account(
        &self,
        server: &Arc<ServerShared>,
        account: Arc<Account>,
        limits: AccountJsLimits,
    ) -> Arc<JsAccount> {
        let dir = self.config.store_dir.join(&account.name).join("streams");
        let jsa = Arc::new(JsAccount {
            account,
            live_limits: RwLock::new(limits),
            streams: RwLock::new(BTreeMap::new()),
            dir,
            api_total: AtomicU64::new(0),
            api_errors: AtomicU64::new(0),
            restores: Default::default(),
            used: Default::default(),
            server_used: self.used.clone(),
        });
        self.recover_streams(server, &jsa);
        self.accounts
            .write()
            .insert(jsa.account.name.clone(), jsa.clone());
        jsa
    }

    /// The JetStream state of an account, if enabled.
    pub fn account(&self, name: &str) -> Option<Arc<JsAccount>> {
        self.accounts.read().get(name).cloned()
    }

    /// Open (or create) the store for a stream config.
    pub fn open_store(
        &self,
        dir: &Path,
        cfg: &StreamConfig,
    ) -> Result<Arc<dyn StreamStore>, EngineError> {
        if cfg.storage == ApiStorage::Memory {
            return Ok(Arc::new(MemStore::new(store_config(cfg))));
        }
        let opts = FileStoreOptions {
            config: store_config(cfg),
            ..self.file_store_options()
        };
        let store = FileStore::open(dir, opts)?;
        Ok(Arc::new(store))
    }

    /// Persist a stream's config and creation time in its file store. Memory streams
    /// are not persisted (nothing to do).
    pub fn persist_meta(&self, stream: &Stream, meta: &StreamMeta) -> Result<(), EngineError> {
        if stream.is_memory() {
            return Ok(());
        }
        let bytes = serde_json::to_vec(meta).map_err(|e| EngineError::Meta {
            path: stream.dir.clone().unwrap_or_default(),
            detail: e.to_string(),
        })?;
        stream.store.write_stream_meta(&bytes)?;
        Ok(())
    }

    /// Recover an account's streams from its directory. A stream that cannot be opened is
    /// logged and left on disk untouched (never deleted), so an operator can look at it.
    fn recover_streams(&self, server: &Arc<ServerShared>, jsa: &Arc<JsAccount>) {
        let Ok(entries) = std::fs::read_dir(&jsa.dir) else {
            return;
        };
        let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        names.sort();
        for gone in super::restore::remove_leftovers(&jsa.dir) {
            warn!(
                server.log,
                "Removed {} (an unfinished restore)",
                gone.display()
            );
        }
        for dir in names {
            let hidden = dir
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if !dir.is_dir() || hidden {
                continue;
            }
            if dir.join(LEGACY_MEMORY_META).exists() {
                match remove_legacy_memory_stream(&dir) {
                    Ok(()) => info!(
                        server.log,
                        "Removed the memory stream config left in {} (memory streams are not kept across restarts)",
                        dir.display()
                    ),
                    Err(e) => warn!(
                        server.log,
                        "Could not remove the memory stream config left in {}: {}",
                        dir.display(),
                        e
                    ),
                }
                continue;
            }
            match self.recover_one(server, jsa, &dir) {
                Ok(stream) => {
                    info!(
                        server.log,
                        "  Restored {} messages for stream '{} > {}'",
                        stream.store.fast_state().msgs,
                        jsa.account.name,
                        stream.name
                    );
                }
                Err(e) => {
                    error!(
                        server.log,
                        "Error recovering stream in {}: {} (left on disk untouched)",
                        dir.display(),
                        e
                    );
                }
            }
        }
    }

    fn recover_one(
        &self,
        server: &Arc<ServerShared>,
        jsa: &Arc<JsAccount>,
        dir: &Path,
    ) -> Result<Arc<Stream>, EngineError> {
        let opts = self.file_store_options();
        let store = FileStore::open(dir, opts)?;
        let report = store.recovery_report();
        if !report.is_clean() {
            warn!(
                server.log,
                "Stream recovery in {}: {:?}",
                dir.display(),
                report
            );
        }
        self.adopt_stream_store(server, jsa, dir, Arc::new(store))
    }

    /// Makes an open file store in `dir`, holding its stream metadata, the account's
    /// stream of that name, with its durable consumers: the second half of recovery,
    /// also used by a restore for the staged store it moved into place
    /// (`FileStore::move_to`), which need not be opened and scanned again.
    pub(crate) fn adopt_stream_store(
        &self,
        server: &Arc<ServerShared>,
        jsa: &Arc<JsAccount>,
        dir: &Path,
        store: Arc<dyn StreamStore>,
    ) -> Result<Arc<Stream>, EngineError> {
        let bytes = store.stream_meta()?.ok_or_else(|| EngineError::Meta {
            path: dir.to_path_buf(),
            detail: "no stream metadata".to_string(),
        })?;
        let meta: StreamMeta = serde_json::from_slice(&bytes).map_err(|e| EngineError::Meta {
            path: dir.to_path_buf(),
            detail: e.to_string(),
        })?;
        store.update_config(store_config(&meta.config))?;
        let stream = Stream::new(
            jsa.account.clone(),
            meta.config,
            meta.created,
            store,
            Some(dir.to_path_buf()),
            self.domain.clone(),
        );
        stream.subscribe();
        stream.spawn(server.clone());
        jsa.insert_stream(stream.clone());
        self.recover_consumers(server, &stream);
        Ok(stream)
    }

    /// Recover a (file) stream's durable consumers. One that cannot be opened is logged
    /// and left on disk.
    fn recover_consumers(&self, server: &Arc<ServerShared>, stream: &Arc<Stream>) {
        let mut found: Vec<(String, ConsumerMeta)> = Vec::new();
        let parse = |bytes: &[u8]| serde_json::from_slice::<ConsumerMeta>(bytes);
        let names = match stream.store.consumer_names() {
            Ok(n) => n,
            Err(_) => return,
        };
        for name in names {
            let opened = stream
                .store
                .consumer_store(&name, ConsumerPolicy::default())
                .and_then(|cs| {
                    let blob = cs.config()?;
                    // Reopened below with the consumer's own policy.
                    cs.stop()?;
                    Ok(blob)
                });
            match opened {
                Ok(Some(blob)) => match parse(&blob) {
                    Ok(meta) => found.push((name, meta)),
                    Err(e) => error!(
                        server.log,
                        "Error recovering consumer '{} > {}': bad config: {}", stream.name, name, e
                    ),
                },
                Ok(None) => warn!(
                    server.log,
                    "Consumer '{} > {}' has no config; left on disk", stream.name, name
                ),
                Err(e) => error!(
                    server.log,
                    "Error recovering consumer '{} > {}': {}", stream.name, name, e
                ),
            }
        }
        for (name, meta) in found {
            match super::api_consumers::open_consumer(
                stream,
                meta.config,
                name.clone(),
                meta.created,
                true,
                true,
            ) {
                Ok(c) => {
                    stream.consumers.write().insert(name, c.clone());
                    c.start(server.clone());
                }
                Err(e) => error!(
                    server.log,
                    "Error recovering consumer '{} > {}': {} (left on disk untouched)",
                    stream.name,
                    name,
                    e
                ),
            }
        }
    }

    /// Tell every waiting pull request that the server is stopping (`409 Server
    /// Shutdown` with its pending counts, as nats-server does for R1 consumers). Called
    /// before the connections close, which write out what is queued for them first.
    /// Returns how many requests were told.
    pub fn signal_pull_consumers(&self, server: &Arc<crate::server::ServerShared>) -> usize {
        let mut ctx = crate::client::deliver::DeliveryCtx::new(server.clone(), rand::random());
        let mut told = 0;
        // Collected first: no JetStream lock is held while the statuses are routed.
        let streams: Vec<Arc<Stream>> = self
            .accounts
            .read()
            .values()
            .flat_map(|jsa| jsa.streams.read().values().cloned().collect::<Vec<_>>())
            .collect();
        for stream in streams {
            let consumers: Vec<Arc<super::consumer::Consumer>> =
                stream.consumers.read().values().cloned().collect();
            for c in consumers {
                let statuses = c.machine.lock().shutdown_statuses();
                for st in &statuses {
                    super::consumer::subs::send_status(
                        &mut ctx,
                        &stream.account,
                        &st.reply,
                        &st.line,
                        &st.headers,
                    );
                }
                told += statuses.len();
            }
        }
        ctx.flush();
        told
    }

    /// Stop every stream (server shutdown): no more publishes, stores flushed and closed.
    pub fn shutdown(&self) {
        for jsa in self.accounts.read().values() {
            for s in jsa.streams.read().values() {
                s.close();
                let _ = s.store.stop();
            }
        }
    }
}
