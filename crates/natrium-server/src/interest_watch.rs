//! Wake-ups for push consumers that wait for a subscriber.
//!
//! Why: clients commonly create a push consumer first and subscribe to its deliver
//! subject only once the create answer is back (nats.py does). Until then the consumer
//! has nobody to deliver to. Polling the subject index for that subscriber costs the
//! poll interval in latency on every new push consumer (it was 50 ms, against 1-2 ms on
//! nats-server, which registers for interest changes on the deliver subject). So a
//! consumer without a subscriber registers its deliver subject here, and the client
//! `SUB` path wakes it as soon as a matching subscription is in the index.
//!
//! What it costs: a `SUB` in an account where no consumer waits pays one atomic load.
//! Otherwise a literal subscription is one hash lookup; a wildcard subscription is
//! matched against every waiting subject (there are as many as push consumers without
//! a subscriber, usually few).
//!
//! The watch is a hint, not the source of truth: the consumer still asks the subject
//! index whether its subscriber counts (queue group, imports), and keeps a slow poll for
//! interest that arrives by other paths (an importing account's subscription).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use tokio::sync::Notify;

use crate::sublist::{subject_is_literal, subject_matches};

/// The deliver subjects that push consumers of one account wait on.
#[derive(Default)]
pub struct InterestWatch {
    /// How many watches are registered: the `SUB` path reads only this when it is zero.
    waiting: AtomicUsize,
    /// The next waiter id: unique per watch, so a guard removes only its own waiter.
    next_id: AtomicU64,
    /// Waiters by literal deliver subject.
    by_subject: Mutex<FxHashMap<Box<[u8]>, Vec<Waiter>>>,
}

/// One registered waiter.
struct Waiter {
    /// Identifies the waiter for removal (several consumers may share a subject).
    id: u64,
    /// Woken (a permit is stored if nobody waits yet) when a subscription matches.
    notify: Arc<Notify>,
}

impl std::fmt::Debug for InterestWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterestWatch")
            .field("waiting", &self.waiting.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// A registration; dropping it removes the waiter.
#[derive(Debug)]
pub struct WatchGuard {
    /// The watch it is registered with.
    watch: Arc<InterestWatch>,
    /// The waited-on subject.
    subject: Box<[u8]>,
    /// The waiter's id under that subject.
    id: u64,
}

impl WatchGuard {
    /// The subject this registration waits on.
    pub fn subject(&self) -> &[u8] {
        &self.subject
    }
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        let mut map = self.watch.by_subject.lock();
        if let Some(list) = map.get_mut(&self.subject) {
            let before = list.len();
            list.retain(|w| w.id != self.id);
            if list.len() < before {
                self.watch.waiting.fetch_sub(1, Ordering::AcqRel);
            }
            if list.is_empty() {
                map.remove(&self.subject);
            }
        }
    }
}

impl InterestWatch {
    /// Wake `notify` when a subscription matching the literal `subject` is added, until
    /// the returned guard is dropped.
    pub fn watch(self: &Arc<Self>, subject: &[u8], notify: Arc<Notify>) -> WatchGuard {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut map = self.by_subject.lock();
        map.entry(subject.into())
            .or_default()
            .push(Waiter { id, notify });
        self.waiting.fetch_add(1, Ordering::AcqRel);
        drop(map);
        WatchGuard {
            watch: self.clone(),
            subject: subject.into(),
            id,
        }
    }

    /// A subscription on `subject` (literal or wildcard) was just added to the
    /// account's subject index: wake whoever waits on a subject it matches.
    pub fn subscribed(&self, subject: &[u8]) {
        if self.waiting.load(Ordering::Acquire) == 0 {
            return;
        }
        let map = self.by_subject.lock();
        if subject_is_literal(subject) {
            if let Some(list) = map.get(subject) {
                list.iter().for_each(|w| w.notify.notify_one());
            }
            return;
        }
        for (waited, list) in map.iter() {
            if subject_matches(subject, waited) {
                list.iter().for_each(|w| w.notify.notify_one());
            }
        }
    }

    /// How many waiters are registered (tests, monitoring).
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::future::Future;

    /// Whether a wake-up is stored: a stored permit completes `notified()` at once
    /// (and is used up by it).
    fn woken(n: &Notify) -> bool {
        let f = n.notified();
        tokio::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        f.as_mut().poll(&mut cx).is_ready()
    }

    #[test]
    fn a_literal_or_matching_wildcard_subscription_wakes_the_waiter() {
        let w = Arc::new(InterestWatch::default());
        let n = Arc::new(Notify::new());
        let g = w.watch(b"_INBOX.abc.d1", n.clone());
        assert_eq!(w.waiting(), 1);
        w.subscribed(b"_INBOX.abc.other");
        assert!(!woken(&n), "a different literal subject does not wake");
        w.subscribed(b"_INBOX.xyz.*");
        assert!(!woken(&n), "a non-matching wildcard does not wake");
        w.subscribed(b"_INBOX.abc.d1");
        assert!(woken(&n), "the literal subject wakes");
        w.subscribed(b"_INBOX.abc.*");
        assert!(woken(&n), "a matching `*` wakes");
        w.subscribed(b"_INBOX.>");
        assert!(woken(&n), "a matching `>` wakes");
        drop(g);
        assert_eq!(w.waiting(), 0);
        w.subscribed(b"_INBOX.abc.d1");
        assert!(!woken(&n), "a dropped guard no longer wakes");
    }

    #[test]
    fn waiters_on_one_subject_are_removed_one_by_one() {
        let w = Arc::new(InterestWatch::default());
        let (a, b) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let ga = w.watch(b"d", a.clone());
        let gb = w.watch(b"d", b.clone());
        assert_eq!(w.waiting(), 2);
        drop(ga);
        assert_eq!(w.waiting(), 1);
        w.subscribed(b"d");
        assert!(!woken(&a));
        assert!(woken(&b));
        assert_eq!(gb.subject(), b"d");
        drop(gb);
        assert_eq!(w.waiting(), 0);
        assert!(w.by_subject.lock().is_empty());
    }
}
