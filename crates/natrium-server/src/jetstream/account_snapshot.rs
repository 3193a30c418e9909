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
//! Captures not claimed within [`FREEZE_TTL`] are dropped (they hold store resources).

use super::api::errors::ApiError;
use super::api_server::ApiAnswer;
use super::engine::JsAccount;
use super::snapshot::Capture;
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
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
    frozen()
        .lock()
        .retain(|_, f| now.duration_since(f.taken) < FREEZE_TTL);
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
    Ok(ApiAnswer::ok(body))
}
