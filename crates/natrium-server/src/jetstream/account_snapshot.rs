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
//! Captures not claimed within [`FREEZE_TTL`] are dropped (they hold store resources:
//! each pinned view keeps its segment files open, deleted ones included, and records
//! every message removed below its watermark). A reaper thread does it on time, so a
//! client that died between the freeze and its claims costs that for the TTL, not
//! until someone happens to freeze or claim again.

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

/// How long a freeze's captures wait to be claimed.
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
    taken: Instant,
    captures: HashMap<String, (super::api::stream::StreamState, Capture)>,
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
        .retain(|_, f| now.duration_since(f.taken) < ttl);
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
                    let Some(oldest) = all.values().map(|f| f.taken).min() else {
                        // Cleared under the map's lock: a freeze inserted after this
                        // point finds the flag down and starts a new reaper.
                        REAPER.store(false, Ordering::Release);
                        return;
                    };
                    (oldest + ttl).saturating_duration_since(Instant::now())
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
    let c = f.captures.remove(stream);
    if f.captures.is_empty() {
        all.remove(token);
    }
    c
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
            captures,
        },
    );
    ensure_reaper(FREEZE_TTL);
    Ok(ApiAnswer::ok(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unclaimed freeze goes when its time is up, with no further freeze or claim
    /// to trigger it, and the reaper ends once nothing is left.
    #[test]
    fn the_reaper_drops_unclaimed_freezes_on_time() {
        let token = "reaper-test-token".to_string();
        frozen().lock().insert(
            token.clone(),
            Frozen {
                account: "A".into(),
                taken: Instant::now(),
                captures: HashMap::new(),
            },
        );
        assert!(
            ensure_reaper(Duration::from_millis(200)),
            "a reaper ran already"
        );
        assert!(frozen().lock().contains_key(&token), "dropped too early");
        let deadline = Instant::now() + Duration::from_secs(5);
        while frozen().lock().contains_key(&token) {
            assert!(Instant::now() < deadline, "the freeze outlived its time");
            std::thread::sleep(Duration::from_millis(10));
        }
        while REAPER.load(Ordering::Acquire) {
            assert!(Instant::now() < deadline, "the reaper did not end");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
