//! NATS subject filters.
//!
//! Why a parsed type: consumers call `load_next_msg` in a tight loop with the same filter.
//! Parsing the filter once (into literal / wildcard patterns) keeps each call
//! allocation-free and lets the stores pick a strategy: a literal filter goes straight
//! to the per-subject sequence list, a wildcard filter either walks the matching subjects
//! or scans the sequence index, whichever touches fewer entries.
//!
//! Semantics are NATS': tokens are separated by `.`, `*` matches exactly one token, `>`
//! matches one or more trailing tokens and must be the last token. The empty filter and
//! `>` match every subject.

use crate::error::{Result, StoreError};

/// One pattern of a filter.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    /// The pattern as given.
    raw: String,
    /// True when the pattern has no `*` / `>` token.
    literal: bool,
}

/// A parsed set of subject patterns; a subject matches if any pattern matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectFilter {
    /// The patterns. Empty means "everything".
    patterns: Vec<Pattern>,
}

impl SubjectFilter {
    /// A filter matching every subject.
    pub fn all() -> Self {
        SubjectFilter {
            patterns: Vec::new(),
        }
    }

    /// Parses one pattern. `""` and `">"` mean every subject.
    pub fn new(filter: &str) -> Result<Self> {
        Self::multi([filter])
    }

    /// Parses several patterns (e.g. a consumer's `filter_subjects`). A subject matches if
    /// any pattern matches. If any pattern is `""` or `">"` the filter matches everything.
    pub fn multi<I, S>(filters: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut patterns = Vec::new();
        for f in filters {
            let f = f.as_ref();
            if f.is_empty() || f == ">" {
                return Ok(Self::all());
            }
            let literal = validate_pattern(f)?;
            patterns.push(Pattern {
                raw: f.to_string(),
                literal,
            });
        }
        Ok(SubjectFilter { patterns })
    }

    /// True when the filter matches every subject.
    pub fn is_all(&self) -> bool {
        self.patterns.is_empty()
    }

    /// If the filter is exactly one literal subject, returns it.
    pub fn as_literal(&self) -> Option<&str> {
        match self.patterns.as_slice() {
            [p] if p.literal => Some(&p.raw),
            _ => None,
        }
    }

    /// True if every pattern is a literal subject (no wildcards).
    pub fn all_literal(&self) -> bool {
        !self.patterns.is_empty() && self.patterns.iter().all(|p| p.literal)
    }

    /// The literal patterns, when [`Self::all_literal`] holds.
    pub fn literals(&self) -> impl Iterator<Item = &str> {
        self.patterns.iter().map(|p| p.raw.as_str())
    }

    /// True if `subject` matches.
    #[inline]
    pub fn matches(&self, subject: &str) -> bool {
        self.patterns.is_empty()
            || self.patterns.iter().any(|p| {
                if p.literal {
                    p.raw == subject
                } else {
                    subject_matches(&p.raw, subject)
                }
            })
    }
}

impl std::fmt::Display for SubjectFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.patterns.is_empty() {
            return f.write_str(">");
        }
        for (i, p) in self.patterns.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(&p.raw)?;
        }
        Ok(())
    }
}

/// Validates a pattern; returns true if it is literal.
fn validate_pattern(p: &str) -> Result<bool> {
    let bad = || StoreError::InvalidArgument(format!("invalid subject filter {p:?}"));
    let mut literal = true;
    let mut toks = p.split('.').peekable();
    while let Some(t) = toks.next() {
        if t.is_empty()
            || t.bytes()
                .any(|b| b == b' ' || b == b'\t' || b == b'\r' || b == b'\n')
        {
            return Err(bad());
        }
        if t == "*" {
            literal = false;
        } else if t == ">" {
            if toks.peek().is_some() {
                return Err(bad());
            }
            literal = false;
        }
    }
    Ok(literal)
}

/// Validates a subject a message is stored under: non-empty, no empty tokens, no
/// whitespace.
///
/// Wildcard tokens (`*`, `>`) are taken, as nats-server stores them: a raw publish to
/// `s.*` is a message on the subject `s.*`, and clients rely on it (nats.py's
/// `kv.purge("a.*")` publishes a rollup marker there, which purges every `a.<key>`).
/// Such a subject is stored as it is; where a stored subject is later used as a
/// filter (a rollup, a last-by-subject get) its wildcards act as wildcards, as in
/// nats-server.
pub fn validate_subject(s: &str) -> Result<()> {
    let bad = || StoreError::InvalidSubject {
        subject: s.to_string(),
    };
    if s.is_empty() || s.len() > u16::MAX as usize {
        return Err(bad());
    }
    for t in s.split('.') {
        if t.is_empty() {
            return Err(bad());
        }
        if t.bytes()
            .any(|b| b == b' ' || b == b'\t' || b == b'\r' || b == b'\n')
        {
            return Err(bad());
        }
    }
    Ok(())
}

/// True if the literal `subject` matches the (possibly wildcard) `pattern`.
pub fn subject_matches(pattern: &str, subject: &str) -> bool {
    if pattern.is_empty() || pattern == ">" {
        return true;
    }
    let mut pt = pattern.split('.');
    let mut st = subject.split('.');
    loop {
        match (pt.next(), st.next()) {
            (None, None) => return true,
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(p), Some(s)) if p == s => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_matching() {
        assert!(subject_matches("foo.*", "foo.bar"));
        assert!(!subject_matches("foo.*", "foo.bar.baz"));
        assert!(subject_matches("foo.>", "foo.bar.baz"));
        assert!(!subject_matches("foo.>", "foo"));
        assert!(subject_matches("*.bar", "foo.bar"));
        assert!(!subject_matches("foo.bar", "foo.baz"));
        assert!(subject_matches("foo.bar", "foo.bar"));
        assert!(subject_matches(">", "a.b.c"));
        assert!(!subject_matches("a.*.c", "a.b.d"));
    }

    #[test]
    fn filter_parsing() {
        assert!(SubjectFilter::new("").unwrap().is_all());
        assert!(SubjectFilter::new(">").unwrap().is_all());
        assert_eq!(SubjectFilter::new("a.b").unwrap().as_literal(), Some("a.b"));
        assert_eq!(SubjectFilter::new("a.*").unwrap().as_literal(), None);
        assert!(SubjectFilter::new("a.>.b").is_err());
        assert!(SubjectFilter::new("a..b").is_err());
        let m = SubjectFilter::multi(["a.*", "b.c"]).unwrap();
        assert!(m.matches("a.x") && m.matches("b.c") && !m.matches("b.d"));
        assert!(SubjectFilter::multi(["a", ">"]).unwrap().is_all());
    }

    #[test]
    fn subject_validation() {
        assert!(validate_subject("a.b").is_ok());
        assert!(validate_subject("").is_err());
        assert!(validate_subject("a.*").is_ok());
        assert!(validate_subject("a.>.b").is_ok());
        assert!(validate_subject("a. b").is_err());
        assert!(validate_subject("a..b").is_err());
    }
}
