//! Consistent account snapshots: every stream and consumer of an account captured at one
//! instant (a natrium extension; `docs/api.md`).
//!
//! Why: `nats account backup` loops over streams, each snapshot at its own moment, so
//! a restored account mixes times — an order in one stream without its payment in
//! another. Here the client first asks `$JS.API.NATRIUM.ACCOUNT.FREEZE`; the server
//! closes the account's *gate* for an instant (every stream's writer holds the gate
//! shared while it stores a batch, so closing it waits for batches in progress and
//! holds new ones), takes a point-in-time capture of each stream (`snapshot::take_capture`:
//! a pinned view of its messages and its consumers' states), opens the gate, and answers
//! with a token and each stream's watermark. Then the client runs the ordinary snapshot
//! protocol per stream, adding `"natrium_freeze": "<token>"` to the request, and gets
//! exactly the frozen capture. Publishers pause for the time it takes to pin the views
//! (microseconds per stream), not for the backup.
//!
//! A freeze whose captures go unused for [`FREEZE_TTL`] is dropped (captures hold
//! store resources: each pinned view keeps its segment files open, deleted ones
//! included, and records every message removed below its watermark). "Unused" means
//! no claim and no transfer of one of its captures running: a claimed capture keeps
//! its freeze alive until its transfer ends (`FreezeUse`), and the clock starts again
//! then, so an account backup whose streams take hours one after the other keeps its
//! point in time. A reaper thread drops freezes on time, so a client that died between
//! the freeze and its claims costs that for the TTL, not until someone happens to
//! freeze or claim again.

use super::api::errors::ApiError;
use super::api_server::ApiAnswer;
use super::engine::JsAccount;
use super::snapshot::Capture;
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// How long a freeze's captures wait, unused, to be claimed.
pub const FREEZE_TTL: Duration = Duration::from_secs(600);
/// The answer's type.
pub const FREEZE_RESPONSE: &str = "io.natrium.api.v1.account_freeze_response";

/// The freeze gate of `account` (shared by all its streams).
pub fn gate(account: &str) -> Arc<RwLock<()>> {
    static GATES: OnceLock<Mutex<HashMap<String, Arc<RwLock<()>>>>> = OnceLock::new();
    GATES
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .entry(account.to_string())
        .or_default()
        .clone()
}

/// One freeze's unclaimed captures.
struct Frozen {
    account: String,
    /// When the freeze was taken, or last used (a claim, or the end of a transfer of
    /// one of its captures).
    taken: Instant,
    /// Transfers of its captures running now (the freeze does not expire meanwhile).
    active: usize,
    captures: HashMap<String, (super::api::stream::StreamState, Capture)>,
}

/// A claimed capture's hold on its freeze: counted in `active` while it lives; when
/// dropped (the transfer ended), the freeze's clock starts again.
pub(crate) struct FreezeUse {
    token: String,
}

impl Drop for FreezeUse {
    fn drop(&mut self) {
        if let Some(f) = frozen().lock().get_mut(&self.token) {
            f.active = f.active.saturating_sub(1);
            f.taken = Instant::now();
        }
    }
}

fn frozen() -> &'static Mutex<HashMap<String, Frozen>> {
    static FROZEN: OnceLock<Mutex<HashMap<String, Frozen>>> = OnceLock::new();
    FROZEN.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Drop expired freezes.
fn expire(now: Instant) {
    expire_older(now, FREEZE_TTL);
}

/// Drop freezes taken `ttl` or longer before `now`.
fn expire_older(now: Instant, ttl: Duration) {
    frozen()
        .lock()
        .retain(|_, f| f.active > 0 || now.duration_since(f.taken) < ttl);
}

/// Whether the reaper thread runs (it ends when no freeze is left).
static REAPER: AtomicBool = AtomicBool::new(false);

/// Make sure a reaper drops every freeze once it is `ttl` old. Call after inserting
/// a freeze. Returns whether this call started the thread (false: one runs already,
/// or the thread could not be started, in which case `expire` on the next freeze or
/// claim still does it).
fn ensure_reaper(ttl: Duration) -> bool {
    if REAPER.swap(true, Ordering::AcqRel) {
        return false;
    }
    let started = std::thread::Builder::new()
        .name("natrium-freeze-reaper".into())
        .spawn(move || {
            loop {
                let wait = {
                    let all = frozen().lock();
                    if all.is_empty() {
                        // Cleared under the map's lock: a freeze inserted after this
                        // point finds the flag down and starts a new reaper.
                        REAPER.store(false, Ordering::Release);
                        return;
                    }
                    // Freezes in use are looked at again a TTL from now at the latest
                    // (their clock restarts when their transfers end).
                    let oldest = all
                        .values()
                        .filter(|f| f.active == 0)
                        .map(|f| f.taken)
                        .min();
                    let now = Instant::now();
                    oldest.map_or(ttl, |t| (t + ttl).saturating_duration_since(now))
                };
                std::thread::sleep(wait + Duration::from_millis(10));
                expire_older(Instant::now(), ttl);
            }
        })
        .is_ok();
    if !started {
        REAPER.store(false, Ordering::Release);
    }
    started
}

/// Take the frozen capture of `stream` (once).
pub(crate) fn claim(
    token: &str,
    account: &str,
    stream: &str,
) -> Option<(super::api::stream::StreamState, Capture)> {
    expire(Instant::now());
    let mut all = frozen().lock();
    let f = all.get_mut(token)?;
    if f.account != account {
        return None;
    }
    let (state, mut capture) = f.captures.remove(stream)?;
    if f.captures.is_empty() {
        // Nothing left to wait for: the freeze ends with this claim.
        all.remove(token);
    } else {
        f.active += 1;
        f.taken = Instant::now();
        capture.in_use = Some(FreezeUse {
            token: token.to_string(),
        });
    }
    Some((state, capture))
}

/// Per-stream line of the answer.
#[derive(Debug, Serialize)]
struct Watermark {
    /// Last sequence in the snapshot.
    last_seq: u64,
    /// Messages at that moment.
    messages: u64,
    /// Consumers captured.
    consumers: i64,
}

/// `io.natrium.api.v1.account_freeze_response`.
#[derive(Debug, Serialize)]
struct FreezeResponse {
    #[serde(rename = "type")]
    kind: &'static str,
    /// Claim token for the per-stream snapshots.
    token: String,
    /// When the account was frozen.
    time: super::api::time::Timestamp,
    /// Seconds the captures stay claimable.
    expires_in: u64,
    /// Each stream's watermark.
    streams: BTreeMap<String, Watermark>,
}

/// `$JS.API.NATRIUM.ACCOUNT.FREEZE`: capture every stream of the account at one instant.
pub fn account_freeze(jsa: &Arc<JsAccount>) -> Result<ApiAnswer, ApiError> {
    expire(Instant::now());
    let streams: Vec<_> = jsa.streams.read().values().cloned().collect();
    let gate = gate(&jsa.account.name);
    let time = super::api::time::Timestamp::now();
    let mut captures = HashMap::new();
    {
        let _closed = gate.write();
        for s in &streams {
            captures.insert(s.name.clone(), super::snapshot::take_capture(s)?);
        }
    }
    let token = crate::system::event_id();
    let streams = captures
        .iter()
        .map(|(name, (st, cap))| {
            (
                name.clone(),
                Watermark {
                    last_seq: cap.watermark(),
                    messages: st.messages,
                    consumers: st.consumer_count,
                },
            )
        })
        .collect();
    let body = serde_json::to_string(&FreezeResponse {
        kind: FREEZE_RESPONSE,
        token: token.clone(),
        time,
        expires_in: FREEZE_TTL.as_secs(),
        streams,
    })
    .map_err(|e| ApiError::stream_snapshot(e.to_string()))?;
    frozen().lock().insert(
        token,
        Frozen {
            account: jsa.account.name.clone(),
            taken: Instant::now(),
            active: 0,
            captures,
        },
    );
    ensure_reaper(FREEZE_TTL);
    Ok(ApiAnswer::ok(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unused freeze goes when its time is up, with no further freeze or claim to
    /// trigger it; one whose capture is being transferred stays, and its clock starts
    /// again when the transfer ends; the reaper ends once nothing is left.
    #[test]
    fn the_reaper_drops_unused_freezes_on_time() {
        let ttl = Duration::from_millis(200);
        let (idle, busy) = (
            "reaper-test-idle".to_string(),
            "reaper-test-busy".to_string(),
        );
        for (token, active) in [(&idle, 0), (&busy, 1)] {
            frozen().lock().insert(
                token.clone(),
                Frozen {
                    account: "A".into(),
                    taken: Instant::now(),
                    active,
                    captures: HashMap::new(),
                },
            );
        }
        // The transfer of one of `busy`'s captures.
        let transfer = FreezeUse {
            token: busy.clone(),
        };
        assert!(ensure_reaper(ttl), "a reaper ran already");
        let present = |t: &String| frozen().lock().contains_key(t);
        assert!(present(&idle), "dropped too early");
        let deadline = Instant::now() + Duration::from_secs(5);
        while present(&idle) {
            assert!(
                Instant::now() < deadline,
                "the idle freeze outlived its time"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(ttl * 2);
        assert!(present(&busy), "a freeze in use was dropped");
        let ended = Instant::now();
        drop(transfer);
        assert!(present(&busy), "dropped as its transfer ended");
        while present(&busy) {
            assert!(
                Instant::now() < deadline,
                "the freeze outlived its time after use"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(ended.elapsed() >= ttl, "its clock did not start again");
        while REAPER.load(Ordering::Acquire) {
            assert!(Instant::now() < deadline, "the reaper did not end");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
