//! `/subsz` (alias `/subscriptionsz`): the subject index's counters and, on request, its
//! client subscriptions.
//!
//! The counters are summed over accounts (or one account with `acc=`) exactly as
//! nats-server's `SublistStats.add` does, which [`SublistStats::add`] mirrors. The list
//! (`subs=1`) is filtered by `test=<publish subject>` and paged with `offset`/`limit`
//! after filtering; `total` is the filtered count. Server-internal subscriptions have no
//! client and are left out of the list (nats-server's internal ones belong to its system
//! client, which natrium does not have), but they are in `num_subscriptions`.

use super::Monitor;
use super::json::GoTime;
use super::query::{Query, QueryError};
use crate::client::subscription::Subscription;
use crate::sublist::{SublistStats, is_valid_literal_subject, subject_matches};
use serde::Serialize;
use std::time::SystemTime;

/// Default page size for `/subsz` and `/connz` lists.
pub const DEFAULT_LIST_SIZE: i64 = 1024;

/// Why `/subsz` refused a request (HTTP 400, `Display` is the body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubszError {
    /// `test` is not a valid publish subject.
    #[error("invalid test subject, must be valid publish subject: {0}")]
    InvalidTest(String),
}

/// `/subsz` request options.
#[derive(Debug, Clone, Default)]
pub struct SubszOptions {
    /// Include the subscription list (`subs`).
    pub subs: bool,
    /// Skip this many list entries (`offset`).
    pub offset: i64,
    /// At most this many list entries (`limit`; 0 or less means 1024).
    pub limit: i64,
    /// Only this account (`acc`).
    pub account: String,
    /// Only subscriptions a publish to this subject would reach (`test`).
    pub test: String,
}

impl SubszOptions {
    /// Decodes the query string as nats-server's `HandleSubsz` does.
    pub fn from_query(q: &Query) -> Result<Self, QueryError> {
        Ok(SubszOptions {
            subs: q.bool("subs")?,
            offset: q.int("offset")?,
            limit: q.int("limit")?,
            account: q.get("acc").to_string(),
            test: q.get("test").to_string(),
        })
    }
}

/// Sublist counters as nats-server prints them.
#[derive(Debug, Clone, Serialize)]
pub struct SublistStatsJson {
    /// Subscriptions present.
    pub num_subscriptions: u64,
    /// Subjects in the match cache.
    pub num_cache: u64,
    /// Inserts since start.
    pub num_inserts: u64,
    /// Removals since start.
    pub num_removes: u64,
    /// Matches since start.
    pub num_matches: u64,
    /// Share of matches served from the cache.
    pub cache_hit_rate: f64,
    /// Largest fanout among cached results.
    pub max_fanout: u64,
    /// Mean fanout among cached results.
    pub avg_fanout: f64,
}

impl From<&SublistStats> for SublistStatsJson {
    fn from(s: &SublistStats) -> Self {
        SublistStatsJson {
            num_subscriptions: s.num_subs,
            num_cache: s.num_cache,
            num_inserts: s.num_inserts,
            num_removes: s.num_removes,
            num_matches: s.num_matches,
            cache_hit_rate: s.cache_hit_rate,
            max_fanout: s.max_fanout,
            avg_fanout: s.avg_fanout,
        }
    }
}

/// One subscription in `/subsz` and `/connz?subs=detail` lists.
#[derive(Debug, Clone, Serialize)]
pub struct SubDetail {
    /// Account name (`/subsz` only).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub account: String,
    /// Account name tag, the name unless tagged (`/subsz` only).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub account_tag: String,
    /// Subject as subscribed.
    pub subject: String,
    /// Queue group.
    #[serde(rename = "qgroup", skip_serializing_if = "String::is_empty")]
    pub queue: String,
    /// Client's subscription id.
    pub sid: String,
    /// Messages delivered.
    pub msgs: u64,
    /// Auto-unsubscribe limit, if set.
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    /// Owning connection.
    pub cid: u64,
}

/// For `skip_serializing_if`.
fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl SubDetail {
    /// The entry for `sub`, owned by connection `cid`, without account fields.
    pub fn new(sub: &Subscription, cid: u64) -> Self {
        SubDetail {
            account: String::new(),
            account_tag: String::new(),
            subject: String::from_utf8_lossy(&sub.subject).into_owned(),
            queue: sub
                .queue
                .as_deref()
                .map(|q| String::from_utf8_lossy(q).into_owned())
                .unwrap_or_default(),
            sid: String::from_utf8_lossy(&sub.sid).into_owned(),
            msgs: sub.delivered.load(std::sync::atomic::Ordering::Relaxed),
            max: sub.max.load(std::sync::atomic::Ordering::Relaxed),
            cid,
        }
    }
}

/// The `/subsz` body.
#[derive(Debug, Clone, Serialize)]
pub struct Subsz {
    /// Server id.
    pub server_id: String,
    /// Now.
    pub now: GoTime,
    /// Counters.
    #[serde(flatten)]
    pub stats: SublistStatsJson,
    /// List entries after filtering, before paging (0 without `subs`).
    pub total: usize,
    /// Page offset.
    pub offset: i64,
    /// Page size.
    pub limit: i64,
    /// The page (omitted when empty).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subscriptions_list: Vec<SubDetail>,
}

/// Builds `/subsz`.
pub fn subsz(mon: &Monitor, o: &SubszOptions) -> Result<Subsz, SubszError> {
    let offset = o.offset.max(0);
    let limit = if o.limit <= 0 {
        DEFAULT_LIST_SIZE
    } else {
        o.limit
    };
    if !o.test.is_empty() && !is_valid_literal_subject(o.test.as_bytes()) {
        return Err(SubszError::InvalidTest(o.test.clone()));
    }
    let s = mon.server();
    let mut stats = SublistStats::default();
    let mut details = Vec::new();
    for acc in s.accounts() {
        if !o.account.is_empty() && acc.name != o.account {
            continue;
        }
        stats.add(&acc.sublist.stats());
        if !o.subs {
            continue;
        }
        // Runs under the sublist's read lock: only atomics are read in here.
        acc.sublist.for_each(|subject, _queue, sub| {
            // Internal subscriptions (system services, imports) are listed too, as
            // nats-server lists its internal clients' subscriptions; they have no cid.
            let cid = sub.client_conn().map_or(0, |c| c.cid);
            if !o.test.is_empty() && !subject_matches(subject, o.test.as_bytes()) {
                return;
            }
            let mut d = SubDetail::new(sub, cid);
            d.account = acc.name.clone();
            d.account_tag = acc.name.clone();
            details.push(d);
        });
    }
    let total = details.len();
    let (lo, hi) = page_bounds(offset, limit, total);
    Ok(Subsz {
        server_id: s.server_id.clone(),
        now: GoTime(SystemTime::now()),
        stats: SublistStatsJson::from(&stats),
        total,
        offset,
        limit,
        subscriptions_list: details.drain(lo..hi).collect(),
    })
}

/// The slice `[lo, hi)` of `len` entries that `offset`/`limit` select, clamped as
/// nats-server clamps them.
pub fn page_bounds(offset: i64, limit: i64, len: usize) -> (usize, usize) {
    let lo = usize::try_from(offset.max(0))
        .unwrap_or(usize::MAX)
        .min(len);
    let take = usize::try_from(limit.max(0)).unwrap_or(usize::MAX);
    (lo, lo + take.min(len - lo))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_clamps() {
        assert_eq!(page_bounds(0, 1024, 3), (0, 3));
        assert_eq!(page_bounds(1, 1, 3), (1, 2));
        assert_eq!(page_bounds(5, 2, 3), (3, 3));
        assert_eq!(page_bounds(2, 10, 3), (2, 3));
    }
}
