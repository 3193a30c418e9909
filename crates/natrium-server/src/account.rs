//! Accounts: isolated subject spaces, and the imports and exports that connect them.
//!
//! Every client is bound to one account, and a publish only reaches subscriptions in the
//! same account's index. Without an `accounts` block every client is in the global account
//! `$G`.
//!
//! Imports are not a second delivery mechanism: each one is an internal subscription in an
//! account's ordinary index, whose handler re-publishes into the other account.
//! - A stream import of `S` from account E into account A subscribes to `S` in E and
//!   re-publishes into A (under a prefix or a `to` subject).
//! - A service import subscribes in A to the local subject; a request is re-published into E
//!   on the exported subject with a fresh reply subject `_R_.<token>.<id>`, remembered in E's
//!   response table. E's internal subscription on `_R_.<token>.>` routes each response back
//!   into A on the requester's reply subject. Singleton responses close the route after one
//!   message; stream and chunked ones when it expires.

use crate::client::deliver::{DeliveryCtx, Publisher};
use crate::client::mono_nanos;
use crate::client::subscription::{InternalHandler, Subscription};
use crate::options::{AccountConfig, AccountJsLimits, AccountLimits, ExportConfig, ResponseType};
use crate::protocol::PubMsg;
use crate::subject_mapping::{Transform, check_import_mapping, service_import_transform};
use crate::sublist::{Sublist, subject_is_subset_match};
use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Name of the global account.
pub const GLOBAL_ACCOUNT: &str = "$G";
/// Default name of the system account.
pub const SYSTEM_ACCOUNT: &str = "$SYS";
/// Prefix of service-import reply subjects.
pub const REPLY_PREFIX: &str = "_R_.";
/// Most open response routes an account keeps before pruning expired ones.
const MAX_RESPONSE_ROUTES: usize = 100_000;

/// Where a response to a service import goes back to.
struct ResponseRoute {
    /// The importing account.
    dest: Weak<Account>,
    /// The requester's own reply subject.
    reply: Box<[u8]>,
    /// Close after one response.
    singleton: bool,
    /// Expiry (mono nanos).
    expires_at: u64,
}

/// One import as monitoring shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportInfo {
    /// Subject in the exporting account.
    pub subject: String,
    /// Exporting account.
    pub account: String,
    /// Local subject.
    pub local_subject: String,
    /// Service rather than stream.
    pub service: bool,
    /// Shares the requestor identity.
    pub share: bool,
}

/// One account.
pub struct Account {
    /// Account name.
    pub name: String,
    /// The account's subject index.
    pub sublist: Sublist<Subscription>,
    /// Connection and payload limits (a reload may change them: read with
    /// [`Account::limits`], once per decision).
    limits: parking_lot::RwLock<AccountLimits>,
    /// JetStream limits, when JetStream is enabled for the account.
    pub jetstream: Option<AccountJsLimits>,
    /// Exports (a reload or an account push may change them: read with
    /// [`Account::exports`]).
    exports: parking_lot::RwLock<Vec<ExportConfig>>,
    /// The imports as configured, to tell whether a reload changed them.
    import_config: Mutex<Vec<crate::options::ImportConfig>>,
    /// Imports into this account, for monitoring.
    pub imports: Mutex<Vec<ImportInfo>>,
    /// Whether this is the system account.
    pub is_system: bool,
    /// Client connections bound to this account.
    pub nconns: AtomicUsize,
    /// Traffic of this account's connections that have closed: (in msgs, in bytes, out
    /// msgs, out bytes). Live connections are summed on demand.
    pub closed_traffic: Mutex<[u64; 4]>,
    /// Open service-import response routes, by the `_R_` reply subject.
    responses: Mutex<FxHashMap<Box<[u8]>, ResponseRoute>>,
    /// This account's `_R_.<token>.` prefix, and whether its router is subscribed.
    reply_prefix: String,
    /// The response router's subscription, created on first use.
    router: Mutex<Option<Arc<Subscription>>>,
    /// Internal subscriptions created for imports (removed on reload).
    import_subs: Mutex<Vec<(Arc<Account>, Arc<Subscription>)>>,
    /// Subject mappings applied to what this account's clients publish (`None`: none,
    /// and publishing pays nothing for the feature).
    /// Readers keep their own copy of the `Arc`, refreshed when the options change, so
    /// publishing takes no lock for it.
    /// `None` when there are none (publishing then pays nothing for them).
    mappings: parking_lot::RwLock<Option<Arc<crate::subject_mapping::Mappings>>>,
    /// Push consumers waiting for a subscriber on their deliver subject, woken by the
    /// client `SUB` path (see [`crate::interest_watch`]).
    pub interest_watch: Arc<crate::interest_watch::InterestWatch>,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A short random token for an account's reply prefix.
fn reply_token() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    (0..6)
        .map(|_| ALPHABET[(rand::random::<u32>() as usize) % ALPHABET.len()] as char)
        .collect()
}

impl Account {
    /// A new, empty account.
    pub fn new(name: &str, cache: bool) -> Self {
        Self::from_config(
            &AccountConfig {
                name: name.to_string(),
                ..AccountConfig::default()
            },
            cache,
            false,
        )
    }

    /// The connection and payload limits in force.
    pub fn limits(&self) -> AccountLimits {
        *self.limits.read()
    }

    /// Replace the limits (config reload).
    pub fn set_limits(&self, limits: AccountLimits) {
        *self.limits.write() = limits;
    }

    /// An account from its configuration (imports are wired separately, once every
    /// account exists).
    pub fn from_config(c: &AccountConfig, cache: bool, is_system: bool) -> Self {
        Account {
            name: c.name.clone(),
            sublist: Sublist::with_cache(cache),
            limits: parking_lot::RwLock::new(c.limits),
            jetstream: c.jetstream,
            exports: parking_lot::RwLock::new(c.exports.clone()),
            import_config: Mutex::new(Vec::new()),
            imports: Mutex::new(Vec::new()),
            is_system,
            nconns: AtomicUsize::new(0),
            closed_traffic: Mutex::new([0; 4]),
            responses: Mutex::new(FxHashMap::default()),
            reply_prefix: format!("{REPLY_PREFIX}{}.", reply_token()),
            router: Mutex::new(None),
            import_subs: Mutex::new(Vec::new()),
            mappings: parking_lot::RwLock::new(
                crate::subject_mapping::Mappings::build(&c.mappings).map(Arc::new),
            ),
            interest_watch: Arc::default(),
        }
    }

    /// A client subscription on `subject` was just added to this account's index: wake
    /// the push consumers waiting for it, here and, through this account's stream
    /// imports, in the exporting accounts (an import's subscription in the exporter is
    /// what counts there; a waiter it matches checks for itself whether the new
    /// subscriber reaches it).
    ///
    /// Lock order: `import_subs`, then the exporter's watch (a leaf lock).
    pub fn subscribed(&self, subject: &[u8]) {
        self.interest_watch.subscribed(subject);
        for (exporter, sub) in self.import_subs.lock().iter() {
            if !std::ptr::eq(Arc::as_ptr(exporter), self) && exporter.interest_watch.waiting() > 0 {
                exporter.interest_watch.subscribed(&sub.subject);
            }
        }
    }

    /// Client connections bound to this account.
    pub fn num_connections(&self) -> usize {
        self.nconns.load(Ordering::Relaxed)
    }

    /// The export that covers `subject` for `importer`, if it is allowed.
    pub fn export_for(&self, subject: &str, service: bool, importer: &str) -> Option<ExportConfig> {
        self.exports
            .read()
            .iter()
            .find(|e| {
                e.service == service
                    && subject_is_subset_match(subject.as_bytes(), e.subject.as_bytes())
                    && e.accounts
                        .as_ref()
                        .is_none_or(|list| list.iter().any(|a| a == importer))
            })
            .cloned()
    }

    /// The subject mappings in force.
    pub fn mappings(&self) -> Option<Arc<crate::subject_mapping::Mappings>> {
        self.mappings.read().clone()
    }

    /// Replace the mappings (a reload or an account push); readers pick them up with the
    /// new options.
    pub fn set_mappings(&self, config: &[crate::subject_mapping::MappingConfig]) {
        *self.mappings.write() = crate::subject_mapping::Mappings::build(config).map(Arc::new);
    }

    /// The exports in force.
    pub fn exports(&self) -> Vec<ExportConfig> {
        self.exports.read().clone()
    }

    /// Replace the exports (a reload or an account push); the importers' imports are
    /// wired again by the caller.
    pub fn set_exports(&self, exports: Vec<ExportConfig>) {
        *self.exports.write() = exports;
    }

    /// The imports as last wired from the configuration.
    pub fn import_config(&self) -> Vec<crate::options::ImportConfig> {
        self.import_config.lock().clone()
    }

    /// Remove every internal subscription made for this account's imports.
    pub fn clear_imports(&self) {
        for (acc, sub) in self.import_subs.lock().drain(..) {
            crate::client::deliver::remove_sub(&acc, &sub);
        }
        self.imports.lock().clear();
    }

    /// Open a response route and return the `_R_` reply subject for it.
    fn open_route(
        self: &Arc<Self>,
        dest: &Arc<Account>,
        reply: &[u8],
        export: &ExportConfig,
    ) -> Vec<u8> {
        self.ensure_router();
        let mut subject = self.reply_prefix.clone().into_bytes();
        let id: u64 = rand::random();
        subject.extend_from_slice(format!("{id:x}").as_bytes());
        let now = mono_nanos();
        let mut routes = self.responses.lock();
        if routes.len() >= MAX_RESPONSE_ROUTES {
            routes.retain(|_, r| r.expires_at > now);
        }
        routes.insert(
            subject.clone().into_boxed_slice(),
            ResponseRoute {
                dest: Arc::downgrade(dest),
                reply: reply.into(),
                singleton: export.response_type == ResponseType::Singleton,
                expires_at: now.saturating_add(export.response_threshold.as_nanos() as u64),
            },
        );
        subject
    }

    /// Subscribe this account's response router on `_R_.<token>.>` once.
    fn ensure_router(self: &Arc<Self>) {
        let mut router = self.router.lock();
        if router.is_some() {
            return;
        }
        let subject = format!("{}>", self.reply_prefix);
        let handler = Arc::new(ResponseRouter);
        let sub = Arc::new(Subscription::internal(handler, subject.as_bytes(), None));
        if self
            .sublist
            .insert(subject.as_bytes(), None, sub.clone())
            .is_ok()
        {
            *router = Some(sub);
        }
    }

    /// Number of open response routes (for monitoring and tests).
    pub fn open_responses(&self) -> usize {
        self.responses.lock().len()
    }
}

/// Routes responses on `_R_.<token>.>` back to the importing account.
struct ResponseRouter;

impl InternalHandler for ResponseRouter {
    fn handle(
        &self,
        ctx: &mut DeliveryCtx,
        account: &Arc<Account>,
        _sub: &Subscription,
        _publisher: Publisher<'_>,
        routed_by: &[u8],
        msg: PubMsg<'_>,
    ) -> bool {
        let now = mono_nanos();
        let (dest, reply) = {
            let mut routes = account.responses.lock();
            let Some(route) = routes.get(routed_by) else {
                return false;
            };
            if route.expires_at <= now {
                routes.remove(routed_by);
                return false;
            }
            let out = (route.dest.upgrade(), route.reply.clone());
            if route.singleton {
                routes.remove(routed_by);
            }
            out
        };
        let Some(dest) = dest else {
            return false;
        };
        if routed_by != msg.subject {
            // A JetStream delivery answering an imported pull request: to the requester's
            // inbox, still showing the stream subject and with its ack reply.
            return ctx.publish_routed(&dest, &reply, Publisher::SERVER, msg);
        }
        ctx.publish(
            &dest,
            Publisher::SERVER,
            PubMsg {
                subject: &reply,
                reply: None,
                headers: msg.headers,
                payload: msg.payload,
            },
        )
    }
}

/// A stream import: messages published in the exporter are re-published into the importer.
pub struct StreamImport {
    /// The importing account.
    pub dest: Weak<Account>,
    /// Subject transform.
    pub transform: Transform,
}

impl InternalHandler for StreamImport {
    fn handle(
        &self,
        ctx: &mut DeliveryCtx,
        _account: &Arc<Account>,
        _sub: &Subscription,
        _publisher: Publisher<'_>,
        routed_by: &[u8],
        msg: PubMsg<'_>,
    ) -> bool {
        let Some(dest) = self.dest.upgrade() else {
            return false;
        };
        let route = self.transform.apply(routed_by);
        if routed_by != msg.subject {
            // A JetStream delivery to an exported deliver subject: routed by it in the
            // importer too, still showing the stream subject.
            return ctx.publish_routed(&dest, &route, Publisher::SERVER, msg);
        }
        ctx.publish(
            &dest,
            Publisher::SERVER,
            PubMsg {
                subject: &route,
                ..msg
            },
        )
    }

    fn has_interest(&self, subject: &[u8]) -> bool {
        self.dest
            .upgrade()
            .is_some_and(|d| d.sublist.has_interest(&self.transform.apply(subject)))
    }
}

/// A service import: requests in the importer are re-published into the exporter with a
/// reply subject that routes responses back.
pub struct ServiceImport {
    /// The exporting account.
    pub exporter: Weak<Account>,
    /// The export in force (response type and threshold).
    pub export: ExportConfig,
    /// Local → remote subject transform.
    pub transform: Transform,
}

impl InternalHandler for ServiceImport {
    fn handle(
        &self,
        ctx: &mut DeliveryCtx,
        account: &Arc<Account>,
        _sub: &Subscription,
        publisher: Publisher<'_>,
        _routed_by: &[u8],
        msg: PubMsg<'_>,
    ) -> bool {
        let Some(exporter) = self.exporter.upgrade() else {
            return false;
        };
        let subject = self.transform.apply(msg.subject);
        let reply = msg
            .reply
            .map(|r| exporter.open_route(account, r, &self.export));
        // Tell the service who asks, as nats-server does with `Nats-Request-Info`.
        let rtt = publisher.conn.map_or(0, |c| c.meta.lock().rtt_nanos);
        let info = format!(
            "Nats-Request-Info: {{\"acc\":{},\"rtt\":{rtt}}}\r\n",
            serde_json::Value::String(account.name.clone())
        );
        let headers = with_header(msg.headers, &info);
        ctx.publish(
            &exporter,
            Publisher::SERVER,
            PubMsg {
                subject: &subject,
                reply: reply.as_deref(),
                headers: Some(&headers),
                payload: msg.payload,
            },
        )
    }
}

/// Append one `Key: value\r\n` line to a header block (making one if there is none).
pub fn with_header(headers: Option<&[u8]>, line: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(headers.map_or(12, <[u8]>::len) + line.len());
    match headers {
        Some(h) if h.ends_with(b"\r\n\r\n") => {
            out.extend_from_slice(&h[..h.len() - 2]);
        }
        Some(h) if h.ends_with(b"\r\n") => out.extend_from_slice(h),
        _ => out.extend_from_slice(b"NATS/1.0\r\n"),
    }
    out.extend_from_slice(line.as_bytes());
    out.extend_from_slice(b"\r\n");
    out
}

/// Why an import could not be wired.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// The exporting account does not exist.
    #[error("{account:?} account not defined for {kind} import")]
    NoAccount {
        /// Account named by the import.
        account: String,
        /// `stream` or `service`.
        kind: &'static str,
    },
    /// No export covers the subject for this importer.
    #[error("Error adding {kind} import {subject:?}: {kind} import not authorized")]
    NotAuthorized {
        /// Imported subject.
        subject: String,
        /// `stream` or `service`.
        kind: &'static str,
    },
    /// The `to` mapping cannot be applied to the subject (nats-server refuses these too).
    #[error("Error adding {kind} import {subject:?}: invalid mapping destination: {reason}")]
    BadMapping {
        /// Imported subject.
        subject: String,
        /// `stream` or `service`.
        kind: &'static str,
        /// What is wrong with `to`.
        reason: String,
    },
    /// The subject could not be subscribed.
    #[error("Error adding {kind} import {subject:?}: invalid subject")]
    InvalidSubject {
        /// Subject.
        subject: String,
        /// `stream` or `service`.
        kind: &'static str,
    },
}

/// Wire `importer`'s configured imports, given all accounts by name.
pub fn wire_imports(
    importer: &Arc<Account>,
    config: &AccountConfig,
    accounts: &FxHashMap<String, Arc<Account>>,
) -> Result<(), ImportError> {
    *importer.import_config.lock() = config.imports.clone();
    for imp in &config.imports {
        wire_import(importer, imp, accounts)?;
    }
    Ok(())
}

/// Wire one import into `importer`, given all accounts by name.
pub fn wire_import(
    importer: &Arc<Account>,
    imp: &crate::options::ImportConfig,
    accounts: &FxHashMap<String, Arc<Account>>,
) -> Result<(), ImportError> {
    {
        let kind = if imp.service { "service" } else { "stream" };
        let exporter = accounts
            .get(&imp.account)
            .ok_or_else(|| ImportError::NoAccount {
                account: imp.account.clone(),
                kind,
            })?;
        let export = exporter
            .export_for(&imp.subject, imp.service, &importer.name)
            .ok_or_else(|| ImportError::NotAuthorized {
                subject: imp.subject.clone(),
                kind,
            })?;
        let invalid = || ImportError::InvalidSubject {
            subject: imp.subject.clone(),
            kind,
        };
        // Only a subject with wildcards is mapped strictly (a literal one keeps the
        // earlier, lenient mapping onto it, as nats-server builds no transform then).
        if imp.prefix.is_none()
            && let Some(to) = &imp.to
            && *to != imp.subject
            && !crate::sublist::subject_is_literal(imp.subject.as_bytes())
        {
            check_import_mapping(&imp.subject, to).map_err(|reason| ImportError::BadMapping {
                subject: imp.subject.clone(),
                kind,
                reason,
            })?;
        }
        if imp.service {
            let (local, transform) = service_import_transform(&imp.subject, imp.to.as_deref());
            let handler = Arc::new(ServiceImport {
                exporter: Arc::downgrade(exporter),
                export,
                transform,
            });
            let sub = Arc::new(Subscription::internal(handler, local.as_bytes(), None));
            importer
                .sublist
                .insert(local.as_bytes(), None, sub.clone())
                .map_err(|_| invalid())?;
            importer.import_subs.lock().push((importer.clone(), sub));
            importer.imports.lock().push(ImportInfo {
                subject: imp.subject.clone(),
                account: imp.account.clone(),
                local_subject: local,
                service: true,
                share: imp.share,
            });
        } else {
            let transform = match (&imp.prefix, &imp.to) {
                (Some(p), _) => Transform::Prefix(p.clone()),
                (None, Some(to)) if *to != imp.subject => Transform::Map {
                    from: imp.subject.clone(),
                    to: to.clone(),
                },
                _ => Transform::Same,
            };
            let local = match &transform {
                Transform::Same => imp.subject.clone(),
                Transform::Prefix(p) => format!("{p}.{}", imp.subject),
                Transform::Map { to, .. } => to.clone(),
            };
            let handler = Arc::new(StreamImport {
                dest: Arc::downgrade(importer),
                transform,
            });
            let sub = Arc::new(Subscription::internal(
                handler,
                imp.subject.as_bytes(),
                None,
            ));
            exporter
                .sublist
                .insert(imp.subject.as_bytes(), None, sub.clone())
                .map_err(|_| invalid())?;
            importer.import_subs.lock().push((exporter.clone(), sub));
            importer.imports.lock().push(ImportInfo {
                subject: imp.subject.clone(),
                account: imp.account.clone(),
                local_subject: local,
                service: false,
                share: false,
            });
        }
    }
    Ok(())
}

/// Default lifetime of a service response route.
pub const DEFAULT_RESPONSE_THRESHOLD: Duration = Duration::from_secs(120);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_appended() {
        assert_eq!(with_header(None, "A: b\r\n"), b"NATS/1.0\r\nA: b\r\n\r\n");
        assert_eq!(
            with_header(Some(b"NATS/1.0\r\nX: 1\r\n\r\n"), "A: b\r\n"),
            b"NATS/1.0\r\nX: 1\r\nA: b\r\n\r\n"
        );
    }

    #[test]
    fn exports_authorize_importers() {
        let acc = Account::from_config(
            &AccountConfig {
                name: "E".into(),
                exports: vec![
                    ExportConfig {
                        subject: "svc.>".into(),
                        service: true,
                        accounts: Some(vec!["A".into()]),
                        response_type: ResponseType::Singleton,
                        response_threshold: DEFAULT_RESPONSE_THRESHOLD,
                    },
                    ExportConfig {
                        subject: "pub.>".into(),
                        service: false,
                        accounts: None,
                        response_type: ResponseType::Singleton,
                        response_threshold: DEFAULT_RESPONSE_THRESHOLD,
                    },
                ],
                ..AccountConfig::default()
            },
            true,
            false,
        );
        assert!(acc.export_for("svc.x", true, "A").is_some());
        assert!(acc.export_for("svc.x", true, "B").is_none());
        assert!(acc.export_for("svc.x", false, "A").is_none());
        assert!(acc.export_for("pub.a.b", false, "anyone").is_some());
        assert!(acc.export_for("other", false, "A").is_none());
    }
}
