//! Compiled user permissions: who may publish and subscribe to what.
//!
//! Config permissions are lists of subjects with wildcards; checking a subject against
//! them is a subject-index match, so each list compiles into a [`Sublist`]. Publish checks
//! happen on every message, so the reader keeps a small per-connection cache of results
//! (see `reader.rs`); subscribe checks happen once per SUB.
//!
//! The rules follow nats-server (`canSubscribe`, `pubAllowedFullCheck`, `checkDenySub`):
//! - no allow list means everything is allowed; deny always wins over allow;
//! - subscribe entries may be `"subject queue"`: such an entry only admits (or denies)
//!   that queue group;
//! - a wildcard subscription that overlaps a deny entry is allowed, but messages on denied
//!   subjects are filtered out at delivery;
//! - `allow_responses` grants temporary publish rights to the reply subjects of messages
//!   the client received.

use crate::options::{Permissions, ResponsePermission, SubjectPermission};
use crate::sublist::{
    Sublist, subject_is_literal, subject_is_subset_match, subject_matches, subjects_collide,
};
use std::sync::Arc;
use std::time::Duration;

/// One compiled allow or deny list.
#[derive(Default)]
struct Rules {
    /// The subjects (and optional queues) as an index.
    index: Sublist<()>,
    /// The entries' subjects (queue qualifiers dropped), for the delivery-time overlap test.
    subjects: Vec<String>,
    /// Whether the list has any entries at all.
    any: bool,
}

impl Rules {
    fn compile(list: &[String]) -> Rules {
        let mut r = Rules {
            index: Sublist::with_cache(false),
            subjects: Vec::new(),
            any: !list.is_empty(),
        };
        for entry in list {
            let mut parts = entry.split_whitespace();
            let subject = parts.next().unwrap_or_default();
            let queue = parts.next();
            // Validated when the config was parsed; an entry that still fails is skipped.
            let _ = r
                .index
                .insert(subject.as_bytes(), queue.map(str::as_bytes), Arc::new(()));
            r.subjects.push(subject.to_string());
        }
        r
    }

    /// Whether a plain (non-queue) entry covers `subject`.
    fn matches(&self, subject: &[u8]) -> bool {
        !self.index.match_subject(subject).psubs.is_empty()
    }
}

/// Whether a queue entry of `index` whose subject covers `subject` names the queue group
/// `q`: by its exact name, or as a pattern when the entry's queue has wildcards (`"foo
/// q.*"` covers group `q.1`), as nats-server's `queueMatches` (a `*` or `>` can also be
/// part of a literal group name, hence the exact comparison first).
fn queue_in(index: &Sublist<()>, subject: &[u8], q: &[u8]) -> bool {
    let mut found = false;
    index.for_each(|s, queue, _| {
        if found || !subject_matches(s, subject) {
            return;
        }
        if let Some(name) = queue {
            found = name == q || (!subject_is_literal(name) && subject_is_subset_match(q, name));
        }
    });
    found
}

/// A subject permission compiled.
struct Compiled {
    /// `None`: no allow list (everything allowed).
    allow: Option<Rules>,
    /// Deny list (possibly empty).
    deny: Rules,
}

impl Compiled {
    fn new(p: &SubjectPermission) -> Compiled {
        Compiled {
            allow: p.allow.as_deref().map(Rules::compile),
            deny: Rules::compile(&p.deny),
        }
    }
}

/// A user's permissions, ready to check.
pub struct ClientPerms {
    /// Publish rules.
    publish: Option<Compiled>,
    /// Subscribe rules.
    subscribe: Option<Compiled>,
    /// Response rights.
    pub response: Option<ResponsePermission>,
    /// The rules as configured (for `$SYS.REQ.USER.INFO`, which reports them).
    pub source: Permissions,
}

impl std::fmt::Debug for ClientPerms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientPerms").finish_non_exhaustive()
    }
}

impl ClientPerms {
    /// Compile config permissions.
    pub fn compile(p: &Permissions) -> ClientPerms {
        ClientPerms {
            publish: p.publish.as_ref().map(Compiled::new),
            subscribe: p.subscribe.as_ref().map(Compiled::new),
            response: p.response,
            source: p.clone(),
        }
    }

    /// The rules as nats-server reports them in `$SYS.REQ.USER.INFO` (Go's
    /// `Permissions`: `publish` and `subscribe` with their `allow`/`deny` lists, and
    /// `responses` when response rights are granted).
    pub fn to_json(&self) -> serde_json::Value {
        // A side without rules is `{}`, as nats-server reports it.
        let side = |p: &Option<crate::options::SubjectPermission>| match p {
            None => serde_json::Value::Object(serde_json::Map::new()),
            Some(p) => {
                let mut m = serde_json::Map::new();
                if let Some(allow) = p.allow.as_ref().filter(|a| !a.is_empty()) {
                    m.insert("allow".into(), allow.clone().into());
                }
                if !p.deny.is_empty() {
                    m.insert("deny".into(), p.deny.clone().into());
                }
                serde_json::Value::Object(m)
            }
        };
        let mut out = serde_json::json!({
            "publish": side(&self.source.publish),
            "subscribe": side(&self.source.subscribe),
        });
        if let Some(r) = &self.source.response {
            out["responses"] = serde_json::json!({
                "max": r.max_msgs,
                "ttl": r.expires.map_or(0, |d| d.as_nanos() as i64),
            });
        }
        out
    }

    /// Whether publishing to `subject` is allowed by the static rules (response rights are
    /// checked separately).
    pub fn can_publish(&self, subject: &[u8]) -> bool {
        let Some(p) = &self.publish else {
            return true;
        };
        if let Some(allow) = &p.allow
            && !allow.matches(subject)
        {
            return false;
        }
        !(p.deny.any && p.deny.matches(subject))
    }

    /// Whether subscribing to `subject` (in `queue`) is allowed.
    pub fn can_subscribe(&self, subject: &[u8], queue: Option<&[u8]>) -> bool {
        let Some(p) = &self.subscribe else {
            return true;
        };
        if let Some(allow) = &p.allow {
            let m = allow.index.match_subject(subject);
            let mut allowed = !m.psubs.is_empty();
            if let Some(q) = queue
                && !m.qsubs.is_empty()
            {
                // The queue appears in the allow list: only those queues.
                allowed = queue_in(&allow.index, subject, q);
            }
            if !allowed {
                return false;
            }
        }
        if p.deny.any {
            let m = p.deny.index.match_subject(subject);
            if !m.psubs.is_empty() {
                return false;
            }
            if let Some(q) = queue
                && !m.qsubs.is_empty()
                && queue_in(&p.deny.index, subject, q)
            {
                return false;
            }
        }
        true
    }

    /// Whether this user's subscriptions need a delivery-time deny check: true when a
    /// (wildcard or queue) subscription can overlap a deny entry.
    pub fn sub_needs_delivery_filter(&self, subject: &[u8], queue: Option<&[u8]>) -> bool {
        let Some(p) = &self.subscribe else {
            return false;
        };
        if !p.deny.any {
            return false;
        }
        (!subject_is_literal(subject) || queue.is_some())
            && p.deny
                .subjects
                .iter()
                .any(|d| subjects_collide(d.as_bytes(), subject))
    }

    /// Whether a message on `subject` may be delivered to a subscription in `queue`.
    pub fn delivery_denied(&self, subject: &[u8], queue: Option<&[u8]>) -> bool {
        let Some(p) = &self.subscribe else {
            return false;
        };
        if !p.deny.any {
            return false;
        }
        let m = p.deny.index.match_subject(subject);
        if !m.psubs.is_empty() {
            return true;
        }
        match queue {
            Some(q) => !m.qsubs.is_empty() && queue_in(&p.deny.index, subject, q),
            None => false,
        }
    }

    /// Whether there are response rights to track.
    pub fn tracks_responses(&self) -> bool {
        self.response.is_some()
    }
}

/// One granted response right: the reply subject may be published to `remaining` more
/// times until `expires`.
#[derive(Debug, Clone, Copy)]
pub struct ResponseGrant {
    /// Publishes left; negative means unlimited.
    pub remaining: i64,
    /// Expiry (mono nanos), or `None` for never.
    pub expires_at: Option<u64>,
}

impl ResponseGrant {
    /// A new grant under `rp`, starting `now` (mono nanos).
    pub fn new(rp: &ResponsePermission, now: u64) -> Self {
        ResponseGrant {
            remaining: rp.max_msgs,
            expires_at: rp
                .expires
                .map(|d: Duration| now.saturating_add(d.as_nanos() as u64)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perms(
        publish: Option<(&[&str], &[&str])>,
        subscribe: Option<(&[&str], &[&str])>,
    ) -> ClientPerms {
        let sp = |(a, d): (&[&str], &[&str])| SubjectPermission {
            allow: (!a.is_empty()).then(|| a.iter().map(|s| s.to_string()).collect()),
            deny: d.iter().map(|s| s.to_string()).collect(),
        };
        ClientPerms::compile(&Permissions {
            publish: publish.map(sp),
            subscribe: subscribe.map(sp),
            response: None,
        })
    }

    #[test]
    fn publish_allow_and_deny() {
        let p = perms(Some((&["ok.>", "_INBOX.>"], &["ok.secret"])), None);
        assert!(p.can_publish(b"ok.x"));
        assert!(p.can_publish(b"_INBOX.abc"));
        assert!(!p.can_publish(b"notok"));
        assert!(!p.can_publish(b"ok.secret"));
        let deny_only = perms(Some((&[], &["admin.>"])), None);
        assert!(deny_only.can_publish(b"anything"));
        assert!(!deny_only.can_publish(b"admin.x"));
        assert!(perms(None, None).can_publish(b"x"));
    }

    #[test]
    fn subscribe_with_queues() {
        // allow = ["foo", "bar v1"]: plain or any queue on foo; only queue v1 on bar.
        let p = perms(None, Some((&["foo", "bar v1"], &[])));
        assert!(p.can_subscribe(b"foo", None));
        assert!(p.can_subscribe(b"foo", Some(b"any")));
        assert!(!p.can_subscribe(b"bar", None));
        assert!(p.can_subscribe(b"bar", Some(b"v1")));
        assert!(!p.can_subscribe(b"bar", Some(b"v2")));
        let d = perms(None, Some((&[], &["secret.>", "work bad"])));
        assert!(!d.can_subscribe(b"secret.x", None));
        assert!(!d.can_subscribe(b"secret.x", Some(b"q")));
        assert!(d.can_subscribe(b"work", Some(b"good")));
        assert!(!d.can_subscribe(b"work", Some(b"bad")));
        assert!(d.can_subscribe(b"public", None));
    }

    #[test]
    fn queue_names_in_entries_are_patterns() {
        // As nats-server's `queueMatches`: "foo q.*" covers groups q.1 and q.x, not q or
        // q.1.2; a group literally named "q.*" matches too.
        let p = perms(None, Some((&["foo q.*", "bar v.>"], &[])));
        assert!(p.can_subscribe(b"foo", Some(b"q.1")));
        assert!(p.can_subscribe(b"foo", Some(b"q.*")));
        assert!(!p.can_subscribe(b"foo", Some(b"q")));
        assert!(!p.can_subscribe(b"foo", Some(b"q.1.2")));
        assert!(p.can_subscribe(b"bar", Some(b"v.1.2")));
        let d = perms(None, Some((&[">"], &["foo q.*"])));
        assert!(!d.can_subscribe(b"foo", Some(b"q.1")));
        assert!(d.can_subscribe(b"foo", Some(b"q")));
        assert!(d.can_subscribe(b"foo", None));
        assert!(d.delivery_denied(b"foo", Some(b"q.7")));
        assert!(!d.delivery_denied(b"foo", Some(b"r")));
    }

    #[test]
    fn wildcard_subscription_is_filtered_at_delivery() {
        let p = perms(None, Some((&[], &["secret.>"])));
        // `>` is allowed as a subscription, but secret subjects are not delivered.
        assert!(p.can_subscribe(b">", None));
        assert!(p.sub_needs_delivery_filter(b">", None));
        assert!(!p.sub_needs_delivery_filter(b"public.*", None));
        assert!(p.delivery_denied(b"secret.x", None));
        assert!(!p.delivery_denied(b"public.x", None));
    }
}
