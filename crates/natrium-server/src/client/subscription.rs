//! A subscription: what the subject index stores and what delivery needs.
//!
//! A subscription belongs either to a client connection (deliver as `MSG` into its outbound
//! buffer) or to the server itself (an internal handler, e.g. JetStream's API or a stream's
//! subjects). Keeping both in one index means internal services see exactly the routing,
//! wildcards and queue semantics that clients see.

use super::ClientConn;
use super::deliver::{DeliveryCtx, Publisher};
use crate::account::Account;
use crate::protocol::PubMsg;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A server-side subscriber. It is called on the publisher's task, so it must be quick:
/// copy what it needs and hand work to its own task, or route the message onwards through
/// `ctx` (service and stream imports). Returns whether the message was delivered anywhere,
/// which decides no-responders for the publisher.
pub trait InternalHandler: Send + Sync {
    /// Handle one message published in `account`. `routed_by` is the subject the message
    /// was matched by: its own subject, except for JetStream deliveries, which are routed
    /// by a deliver or reply subject and show the stream subject (an import passing such
    /// a delivery on must route it by `routed_by`, not by `msg.subject`).
    fn handle(
        &self,
        ctx: &mut DeliveryCtx,
        account: &Arc<Account>,
        sub: &Subscription,
        publisher: Publisher<'_>,
        routed_by: &[u8],
        msg: PubMsg<'_>,
    ) -> bool;

    /// Whether a message routed by `subject` would reach anyone through this handler: a
    /// push consumer delivers only while its deliver subject has interest, and an import
    /// passes it on only to where its importer has subscribers. Default: yes.
    fn has_interest(&self, _subject: &[u8]) -> bool {
        true
    }
}

/// Who receives the messages.
pub enum SubTarget {
    /// A client connection.
    Client(Arc<ClientConn>),
    /// A server-internal handler.
    Internal(Arc<dyn InternalHandler>),
}

/// One subscription.
pub struct Subscription {
    /// The receiver.
    pub target: SubTarget,
    /// Subject as subscribed (may contain wildcards).
    pub subject: Box<[u8]>,
    /// Queue group name.
    pub queue: Option<Box<[u8]>>,
    /// Client-chosen id, echoed in every `MSG`.
    pub sid: Box<[u8]>,
    /// Auto-unsubscribe limit (`UNSUB sid max`); 0 means none.
    pub max: AtomicU64,
    /// Messages delivered so far (counts toward `max`, shown in `/subsz`).
    pub delivered: AtomicU64,
    /// Set once removed, so a racing delivery does not deliver past removal.
    pub closed: AtomicBool,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("subject", &String::from_utf8_lossy(&self.subject))
            .field("sid", &String::from_utf8_lossy(&self.sid))
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// A client subscription.
    pub fn client(conn: Arc<ClientConn>, subject: &[u8], queue: Option<&[u8]>, sid: &[u8]) -> Self {
        Subscription {
            target: SubTarget::Client(conn),
            subject: subject.into(),
            queue: queue.map(Into::into),
            sid: sid.into(),
            max: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        }
    }

    /// An internal subscription.
    pub fn internal(
        handler: Arc<dyn InternalHandler>,
        subject: &[u8],
        queue: Option<&[u8]>,
    ) -> Self {
        Subscription {
            target: SubTarget::Internal(handler),
            subject: subject.into(),
            queue: queue.map(Into::into),
            sid: Box::default(),
            max: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        }
    }

    /// The owning client, if any.
    pub fn client_conn(&self) -> Option<&Arc<ClientConn>> {
        match &self.target {
            SubTarget::Client(c) => Some(c),
            SubTarget::Internal(_) => None,
        }
    }

    /// Whether the subscription has been removed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}
