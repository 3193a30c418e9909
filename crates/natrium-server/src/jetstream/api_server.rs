//! Serving `$JS.API.>`: one internal subscription per account, one worker thread.
//!
//! Why a worker thread: API requests create directories, open stores and fsync metadata.
//! They must not run on the publisher's reader task, nor block an async worker. So the
//! subscription copies each request onto a queue and a dedicated thread answers them in
//! order (as nats-server's API queue does). Direct gets are the exception: they are reads
//! served from memory or the page cache and sit on the hot path of KV `get`, so they are
//! answered inline.
//!
//! Subjects nobody handles get no answer at all (nats-server's `$JS.API.>` subscription
//! swallows them); direct gets on a stream without `allow_direct` report "not delivered",
//! so a `no_responders` client gets its 503, as from nats-server where nobody listens.

use super::api::errors::ApiError;
use super::engine::{JetStream, JsAccount};
use crate::account::Account;
use crate::client::deliver::{DeliveryCtx, Publisher};
use crate::client::subscription::{InternalHandler, Subscription};
use crate::protocol::PubMsg;
use crate::server::ServerShared;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

/// Longest an API request waits for the same client's earlier stream writes.
const BARRIER_MAX: std::time::Duration = std::time::Duration::from_secs(5);
/// Most API requests queued before new ones are refused.
const MAX_QUEUED_REQUESTS: usize = 10_000;

/// One API request, copied off the publisher's task.
pub struct ApiRequest {
    /// Account it was made in.
    pub account: Arc<Account>,
    /// Full subject.
    pub subject: String,
    /// Where the answer goes.
    pub reply: Option<Vec<u8>>,
    /// Header block.
    pub headers: Option<Vec<u8>>,
    /// Body.
    pub payload: Vec<u8>,
    /// Stream writes by the same client that must be stored before this is answered
    /// (a client's publishes and its later requests are handled in order, as in
    /// nats-server).
    pub after: Vec<(tokio::sync::watch::Receiver<u64>, u64)>,
    /// Who asked, taken only while someone listens for API audit advisories.
    pub client: Option<super::advisory::RequestClient>,
}

impl ApiRequest {
    /// Subject tokens after `$JS.API.`.
    pub fn tokens(&self) -> Vec<&str> {
        self.subject
            .strip_prefix("$JS.API.")
            .map(|rest| rest.split('.').collect())
            .unwrap_or_default()
    }
}

/// How an answered request counts in the account's API stats (`api.total`,
/// `api.errors`). nats-server counts when it sends through its API response helpers, so
/// a few answers do not count the way their body suggests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tally {
    /// Counts in `api.total`.
    Success,
    /// Counts in `api.total` and `api.errors`.
    Error,
    /// Counts nowhere (a `STREAM.MSG.GET` that found its message is sent directly).
    Uncounted,
}

/// An answer: the JSON text, and how it counts in the API stats.
pub struct ApiAnswer {
    /// Body.
    pub body: String,
    /// How it counts.
    pub tally: Tally,
    /// Run once the answer is published (a snapshot's chunks must follow its answer).
    pub then: Option<Box<dyn FnOnce() + Send>>,
}

impl ApiAnswer {
    /// A success.
    pub fn ok(body: String) -> Self {
        ApiAnswer {
            body,
            tally: Tally::Success,
            then: None,
        }
    }

    /// Run `f` after the answer is out.
    pub fn then(mut self, f: impl FnOnce() + Send + 'static) -> Self {
        self.then = Some(Box::new(f));
        self
    }

    /// An error.
    pub fn err(body: String) -> Self {
        ApiAnswer {
            body,
            tally: Tally::Error,
            then: None,
        }
    }

    /// The same answer, counted as `tally` says.
    #[must_use]
    pub fn counted_as(self, tally: Tally) -> Self {
        ApiAnswer { tally, ..self }
    }
}

/// nats-server's answer to a JetStream API request from the system account.
const SYSTEM_NOT_ENABLED: &str = r#"{"type":"io.nats.jetstream.api.v1.system_response","error":{"code":503,"err_code":10039,"description":"JetStream not enabled for account"}}"#;

/// The `$JS.API.>` subscription handler.
struct ApiSub {
    /// The engine.
    js: Weak<JetStream>,
    /// The worker's queue.
    queue: std::sync::mpsc::SyncSender<ApiRequest>,
}

impl InternalHandler for ApiSub {
    fn handle(
        &self,
        ctx: &mut DeliveryCtx,
        account: &Arc<Account>,
        _sub: &Subscription,
        publisher: Publisher<'_>,
        _routed_by: &[u8],
        msg: PubMsg<'_>,
    ) -> bool {
        let Some(js) = self.js.upgrade() else {
            return false;
        };
        // The system account has no JetStream: nats-server answers everything but INFO
        // (account purges aside) with one `system_response` error, whatever the request.
        if account.is_system
            && msg.subject != b"$JS.API.INFO"
            && !msg.subject.starts_with(b"$JS.API.ACCOUNT.PURGE.")
        {
            if let Some(reply) = msg.reply {
                publish(ctx, account, reply, SYSTEM_NOT_ENABLED.as_bytes());
            }
            return true;
        }
        // Direct gets are subscribed per stream in nats-server: without a stream name
        // nobody listens (the requester gets no responders, not a timeout).
        if msg.subject == b"$JS.API.DIRECT.GET" {
            return false;
        }
        let after = ctx.open_barriers();
        if msg.subject.starts_with(b"$JS.API.DIRECT.GET.") && after.is_empty() {
            return super::direct::direct_get(&js, ctx, account, msg);
        }
        if let Some(rest) = msg.subject.strip_prefix(b"$JS.API.CONSUMER.MSG.NEXT.") {
            return pull_request(&js, ctx, account, rest, msg);
        }
        let req = ApiRequest {
            account: account.clone(),
            subject: String::from_utf8_lossy(msg.subject).into_owned(),
            reply: msg.reply.map(<[u8]>::to_vec),
            headers: msg.headers.map(<[u8]>::to_vec),
            payload: msg.payload.to_vec(),
            after,
            client: publisher
                .conn
                .filter(|_| {
                    account
                        .sublist
                        .has_interest(super::advisory::API_AUDIT_SUBJECT.as_bytes())
                })
                .map(|c| super::advisory::RequestClient::of(c, &ctx.server.server_name)),
        };
        if let Err(std::sync::mpsc::TrySendError::Full(req)) = self.queue.try_send(req)
            && let Some(reply) = &req.reply
        {
            let body = format!(
                "{{\"error\":{}}}",
                super::api::to_go_json(&ApiError::insufficient_resources())
            );
            publish(ctx, account, reply, body.as_bytes());
        }
        true
    }
}

/// `$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`: handed to the pull consumer (a push
/// consumer answers `409 Consumer is push based`, as nats-server's does). Not delivered
/// (so the requester gets a 503 no-responders status, as from nats-server) when the
/// consumer does not exist: nobody listens there.
fn pull_request(
    js: &JetStream,
    ctx: &mut DeliveryCtx,
    account: &Arc<Account>,
    rest: &[u8],
    msg: PubMsg<'_>,
) -> bool {
    let Ok(rest) = std::str::from_utf8(rest) else {
        return false;
    };
    let Some((stream, consumer)) = rest.split_once('.') else {
        return false;
    };
    let Some(c) = js
        .account(&account.name)
        .and_then(|a| a.stream(stream))
        .and_then(|s| s.consumer(consumer))
    else {
        return false;
    };
    let Some(reply) = msg.reply else {
        return true;
    };
    super::consumer::subs::pull_request(&c, ctx, account, reply, msg.headers, msg.payload);
    true
}

/// Publish an answer into `account`.
pub fn publish(ctx: &mut DeliveryCtx, account: &Arc<Account>, reply: &[u8], body: &[u8]) {
    // Replies go to per-request inboxes: nothing to gain from caching their match.
    ctx.publish_once(
        account,
        Publisher::SERVER,
        PubMsg {
            subject: reply,
            reply: None,
            headers: None,
            payload: body,
        },
    );
}

/// Start the worker and subscribe `$JS.API.>` in every account.
pub fn start(js: &Arc<JetStream>, server: &Arc<ServerShared>) {
    let (tx, rx) = std::sync::mpsc::sync_channel::<ApiRequest>(MAX_QUEUED_REQUESTS);
    let worker_js = js.clone();
    let handle = tokio::runtime::Handle::current();
    let spawned = std::thread::Builder::new()
        .name("natrium-js-api".to_string())
        .spawn(move || {
            let _guard = handle.enter();
            while let Ok(req) = rx.recv() {
                answer(&worker_js, req);
            }
        });
    if let Err(e) = spawned {
        crate::error!(
            server.log,
            "Could not start the JetStream API worker: {}",
            e
        );
        return;
    }
    let handler: Arc<dyn InternalHandler> = Arc::new(ApiSub {
        js: Arc::downgrade(js),
        queue: tx,
    });
    for account in server.accounts() {
        subscribe_account(&account, &handler, &js.domain);
    }
    *js.api_handler.lock() = Some(handler);
}

/// Subscribe the API handler in one account: `$JS.API.>`, and with a JetStream
/// `domain`, also `$JS.<domain>.API.>` (see [`DomainSub`]).
pub fn subscribe_account(account: &Arc<Account>, handler: &Arc<dyn InternalHandler>, domain: &str) {
    let sub = Arc::new(Subscription::internal(handler.clone(), b"$JS.API.>", None));
    let _ = account.sublist.insert(b"$JS.API.>", None, sub);
    if !domain.is_empty() {
        let prefix = format!("$JS.{domain}.API.").into_bytes();
        let pattern = [&prefix[..], b">"].concat();
        let sub = Arc::new(Subscription::internal(
            Arc::new(DomainSub { prefix }),
            &pattern,
            None,
        ));
        let _ = account.sublist.insert(&pattern, None, sub);
    }
}

/// `$JS.<domain>.API.>`: the API as clients address it when they name the server's
/// JetStream domain (nats.go, nats-py, async-nats with a `domain` option). nats-server
/// maps these subjects onto `$JS.API.>`; so does this handler, re-publishing each
/// request in the same account under `$JS.API.` with its reply and headers, so every
/// API handler (pull requests and direct gets too) serves it unchanged.
struct DomainSub {
    /// `$JS.<domain>.API.`.
    prefix: Vec<u8>,
}

impl InternalHandler for DomainSub {
    fn handle(
        &self,
        ctx: &mut DeliveryCtx,
        account: &Arc<Account>,
        _sub: &Subscription,
        publisher: Publisher<'_>,
        _routed_by: &[u8],
        msg: PubMsg<'_>,
    ) -> bool {
        let Some(rest) = msg.subject.strip_prefix(&self.prefix[..]) else {
            return false;
        };
        let subject = [&b"$JS.API."[..], rest].concat();
        ctx.publish_once(
            account,
            publisher,
            PubMsg {
                subject: &subject,
                reply: msg.reply,
                headers: msg.headers,
                payload: msg.payload,
            },
        )
    }
}

/// Handle one request on the worker and publish the answer.
fn answer(js: &Arc<JetStream>, mut req: ApiRequest) {
    let Some(server) = js.server.upgrade() else {
        return;
    };
    if !req.after.is_empty() {
        let handle = tokio::runtime::Handle::current();
        for (mut rx, n) in req.after.drain(..) {
            let _ = handle.block_on(tokio::time::timeout(BARRIER_MAX, rx.wait_for(|p| *p >= n)));
        }
    }
    if req.subject.starts_with("$JS.API.DIRECT.GET.") {
        // Queued only to wait for the barriers above; answered as inline.
        let mut ctx = DeliveryCtx::new(server.clone(), rand::random());
        super::direct::direct_get(
            js,
            &mut ctx,
            &req.account,
            PubMsg {
                subject: req.subject.as_bytes(),
                reply: req.reply.as_deref(),
                headers: req.headers.as_deref(),
                payload: &req.payload,
            },
        );
        ctx.flush();
        return;
    }
    let jsa = js.account(&req.account.name);
    let Some(mut answer) = dispatch(js, jsa.as_ref(), &req) else {
        // No handler: nats-server neither answers nor counts it.
        return;
    };
    if answer.tally != Tally::Uncounted {
        js.api_total.fetch_add(1, Ordering::Relaxed);
        if let Some(a) = &jsa {
            a.api_total.fetch_add(1, Ordering::Relaxed);
        }
    }
    if answer.tally == Tally::Error {
        js.api_errors.fetch_add(1, Ordering::Relaxed);
        if let Some(a) = &jsa {
            a.api_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    if let Some(reply) = &req.reply {
        let mut ctx = DeliveryCtx::new(server.clone(), rand::random());
        publish(&mut ctx, &req.account, reply, answer.body.as_bytes());
        ctx.flush();
    }
    if answer.tally != Tally::Uncounted {
        audit(js, &server, &req, &answer.body);
    }
    if let Some(then) = answer.then.take() {
        then();
    }
}

/// The API audit advisory of an answered request, as nats-server sends it from its API
/// response helpers (so a request answered outside them, a `STREAM.MSG.GET` that found
/// its message, has none). Requests that arrived while nobody listened carry no client
/// and are skipped: the advisory would name nobody.
fn audit(js: &JetStream, server: &Arc<ServerShared>, req: &ApiRequest, response: &str) {
    let Some(client) = &req.client else {
        return;
    };
    let request = String::from_utf8_lossy(&req.payload);
    super::advisory::send_now(
        server,
        &req.account,
        super::advisory::API_AUDIT_SUBJECT,
        &super::advisory::ApiAudit {
            typed: super::advisory::Typed::new(super::advisory::API_AUDIT),
            server: &server.server_name,
            client,
            subject: &req.subject,
            request: &request,
            response,
            domain: &js.domain,
        },
    );
}

/// `$JS.API.ACCOUNT.PURGE.<account>`, from the system account only: deletes every stream
/// of the account (their consumers and files with them) and answers `initiated`, as
/// nats-server does, also for an account with nothing to purge. Anyone else gets no
/// answer (nats-server serves it on the system account's API only).
fn account_purge(js: &Arc<JetStream>, req: &ApiRequest, target: &str) -> Option<ApiAnswer> {
    if !req.account.is_system {
        return None;
    }
    let server = js.server.upgrade()?;
    if let Some(jsa) = js.account(target) {
        let names: Vec<String> = jsa.streams.read().keys().cloned().collect();
        for name in names {
            if let Some(Ok(())) = jsa.delete_stream(&name) {
                super::advisory::stream_action(&server, &jsa.account, &name, "delete", &js.domain);
            }
        }
    }
    Some(ApiAnswer::ok(
        super::api::ApiResponse::new(super::api::account::AccountPurgeBody { initiated: true })
            .to_json(),
    ))
}

/// Route a request to its handler. `None`: no handler (no answer, as nats-server).
fn dispatch(
    js: &Arc<JetStream>,
    jsa: Option<&Arc<JsAccount>>,
    req: &ApiRequest,
) -> Option<ApiAnswer> {
    let tokens = req.tokens();
    if let ["ACCOUNT", "PURGE", target] = tokens.as_slice() {
        return account_purge(js, req, target);
    }
    let consumer = super::api_consumers::is_known(&tokens);
    if !consumer && !super::api_streams::is_known(&tokens) {
        return None;
    }
    let error_for = |e: ApiError| {
        if consumer {
            super::api_consumers::error_for(&tokens, e)
        } else {
            super::api_streams::error_for(&tokens, e)
        }
    };
    if let Some(h) = &req.headers
        && let Some(level) = super::headers::get_str(h, super::headers::REQUIRED_API_LEVEL)
        && super::api::required_api_level_unmet(level)
    {
        return Some(error_for(ApiError::required_api_level()));
    }
    let Some(jsa) = jsa else {
        return Some(error_for(ApiError::not_enabled_for_account()));
    };
    if consumer {
        return super::api_consumers::handle(js, jsa, req, &tokens);
    }
    super::api_streams::handle(js, jsa, req, &tokens)
}
