//! A store's accounted bytes, readable without the store's lock, and kept added into
//! totals that the store's owner attaches (an account's, the server's).
//!
//! Why: JetStream checks the account's and the server's storage limits for every
//! publish batch. Reading each stream's bytes for that (even lock-free) costs a pointer
//! chase per stream, and with 1,000 streams that was a quarter of the server's CPU. So
//! each store pushes every change of its bytes, as a delta, into the totals it is
//! attached to, and a limit check reads one number per total.
//!
//! Invariant: every attached total holds, besides whatever else it sums, exactly this
//! gauge's current value. Changes, [`BytesGauge::attach`] and [`BytesGauge::detach_all`]
//! are serialized by the gauge's own mutex, so a total never receives a delta for bytes
//! it was not given, nor misses one. Lock order: the store's lock, then this mutex;
//! nothing is called while holding it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// One store's accounted bytes plus the totals they are added into.
#[derive(Debug, Default)]
pub struct BytesGauge {
    /// The bytes, for lock-free reads.
    bytes: AtomicU64,
    /// Totals this gauge's bytes are part of (usually an account's and the server's).
    totals: Mutex<Vec<Arc<AtomicU64>>>,
}

impl BytesGauge {
    /// A gauge at 0 attached to nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current bytes.
    pub fn get(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Sets the bytes, moving every attached total by the difference.
    pub(crate) fn set(&self, bytes: u64) {
        let totals = self.totals.lock();
        let old = self.bytes.swap(bytes, Ordering::Relaxed);
        if old != bytes {
            // Wrapping arithmetic adds a negative difference correctly.
            let delta = bytes.wrapping_sub(old);
            for t in totals.iter() {
                t.fetch_add(delta, Ordering::Relaxed);
            }
        }
    }

    /// Adds this gauge's bytes into `total` and keeps them added until
    /// [`BytesGauge::detach_all`]. Attaching the same total twice counts twice.
    pub fn attach(&self, total: Arc<AtomicU64>) {
        let mut totals = self.totals.lock();
        total.fetch_add(self.bytes.load(Ordering::Relaxed), Ordering::Relaxed);
        totals.push(total);
    }

    /// Takes this gauge's bytes back out of every attached total and forgets them (the
    /// store left its owner, e.g. its stream was deleted).
    pub fn detach_all(&self) {
        let mut totals = self.totals.lock();
        let bytes = self.bytes.load(Ordering::Relaxed);
        for t in totals.drain(..) {
            t.fetch_sub(bytes, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_follow_every_change_between_attach_and_detach() {
        let a = BytesGauge::new();
        let b = BytesGauge::new();
        let account = Arc::new(AtomicU64::new(0));
        let server = Arc::new(AtomicU64::new(7)); // other owners' bytes
        a.set(100);
        a.attach(account.clone());
        a.attach(server.clone());
        assert_eq!(account.load(Ordering::Relaxed), 100);
        assert_eq!(server.load(Ordering::Relaxed), 107);
        b.attach(account.clone());
        b.set(50);
        a.set(40); // shrinks: a negative delta
        assert_eq!(account.load(Ordering::Relaxed), 90);
        assert_eq!(server.load(Ordering::Relaxed), 47);
        a.detach_all();
        assert_eq!(account.load(Ordering::Relaxed), 50);
        assert_eq!(server.load(Ordering::Relaxed), 7);
        a.set(1_000); // detached: no longer counted
        assert_eq!(account.load(Ordering::Relaxed), 50);
        assert_eq!(a.get(), 1_000);
    }

    #[test]
    fn concurrent_changes_and_attach_keep_the_total_exact() {
        let g = Arc::new(BytesGauge::new());
        let total = Arc::new(AtomicU64::new(0));
        let writer = {
            let g = g.clone();
            std::thread::spawn(move || {
                for i in 0..20_000u64 {
                    g.set(i % 997);
                }
                g.set(123);
            })
        };
        g.attach(total.clone());
        writer.join().expect("writer thread");
        assert_eq!(total.load(Ordering::Relaxed), 123);
    }
}
