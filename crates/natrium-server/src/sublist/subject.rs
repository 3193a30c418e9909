//! Subject syntax: validation and wildcard matching on raw bytes.
//!
//! Subjects arrive straight off the wire, so everything here works on `&[u8]`, never
//! allocates, never recurses and never panics, whatever the input. The rules (protocol
//! reference §6) are:
//!
//! * tokens are separated by `.`; an empty subject or an empty token (leading or trailing
//!   dot, `..`) is invalid;
//! * whitespace (space, tab, CR, LF, FF) is invalid anywhere;
//! * `*` and `>` are wildcards only when they are a whole token (`a.b*` is a literal);
//!   `*` matches exactly one token, `>` one or more trailing tokens and must be last.
//!
//! A *literal* subject (what a publisher sends) is matched token by token against a
//! pattern; its own tokens are compared as plain bytes, even `*` or `>`. That is how
//! nats-server treats a non-pedantic `PUB foo.*`: only wildcard subscriptions such as
//! `foo.*` or `foo.>` receive it, never `foo.bar`.

/// Token separator.
pub(crate) const TSEP: u8 = b'.';

/// What one token of a subscription subject means to the trie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Token<'a> {
    /// A plain token, matched byte for byte.
    Literal(&'a [u8]),
    /// `*`: exactly one token.
    Pwc,
    /// `>`: one or more trailing tokens.
    Fwc,
}

impl<'a> Token<'a> {
    /// Classifies a token of a subscription subject.
    pub(crate) fn of(t: &'a [u8]) -> Self {
        match t {
            b"*" => Token::Pwc,
            b">" => Token::Fwc,
            _ => Token::Literal(t),
        }
    }
}

/// Splits a subject into its tokens (an empty subject yields one empty token).
pub(crate) fn tokens(subject: &[u8]) -> std::slice::Split<'_, u8, impl FnMut(&u8) -> bool> {
    subject.split(|&b| b == TSEP)
}

/// The bytes nats-server refuses inside a subject token.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0x0c)
}

/// Whether `s` is acceptable as a subscription subject: non-empty, no empty token, no
/// whitespace, and `>` only as the last token. `*` may appear as any whole token, and
/// tokens such as `a*` or `b>` are plain literals.
pub fn is_valid_subject(s: &[u8]) -> bool {
    if s.is_empty() {
        return false;
    }
    let mut after_fwc = false;
    for t in tokens(s) {
        if t.is_empty() || after_fwc || t.iter().any(|&b| is_space(b)) {
            return false;
        }
        after_fwc = t == b">";
    }
    true
}

/// Whether `s` is a valid subject without wildcard tokens: what a pedantic client may
/// publish to, and what JetStream requires where a single subject is meant.
pub fn is_valid_literal_subject(s: &[u8]) -> bool {
    is_valid_subject(s) && subject_is_literal(s)
}

/// Whether no token of `s` is a wildcard. Does not check validity: `a..b` is "literal".
pub fn subject_is_literal(s: &[u8]) -> bool {
    tokens(s).all(|t| t != b"*" && t != b">")
}

/// Whether the literal `subject` is matched by `pattern` (which may hold wildcards).
///
/// The subject's tokens are compared as bytes, so a `*` token in `subject` is only
/// matched by a `*` or `>` in the pattern (see the module docs). Returns `false` when
/// either side is empty, has an empty token, or the pattern has `>` before its end.
pub fn subject_matches(pattern: &[u8], subject: &[u8]) -> bool {
    if pattern.is_empty() || subject.is_empty() {
        return false;
    }
    let mut subj = tokens(subject);
    let mut pat = tokens(pattern);
    while let Some(p) = pat.next() {
        let Some(s) = subj.next() else {
            return false;
        };
        if s.is_empty() || p.is_empty() {
            return false;
        }
        match Token::of(p) {
            // `>` has just consumed `s`, which is the "one or more" it needs; it must be
            // the pattern's last token and the rest of the subject must be well formed.
            Token::Fwc => return pat.next().is_none() && subj.all(|t| !t.is_empty()),
            Token::Pwc => {}
            Token::Literal(l) => {
                if l != s {
                    return false;
                }
            }
        }
    }
    subj.next().is_none()
}

/// Whether every literal subject matched by `subject` is also matched by `test`; both
/// may contain wildcards. `foo.*` is a subset of `>`, `*.*` and `foo.*`, but not of
/// `foo.bar`. Used by JetStream for consumer filters and stream subject checks.
///
/// Returns `false` if either side has an empty token.
pub fn subject_is_subset_match(subject: &[u8], test: &[u8]) -> bool {
    let mut sub = tokens(subject);
    let mut tst = tokens(test);
    loop {
        match (sub.next(), tst.next()) {
            (None, None) => return true,
            (Some(s), Some(t)) => {
                if s.is_empty() || t.is_empty() {
                    return false;
                }
                match (Token::of(s), Token::of(t)) {
                    // `>` in `test` covers whatever `subject` has from here on.
                    (_, Token::Fwc) => return sub.all(|x| !x.is_empty()),
                    // `subject` goes on for any number of tokens; nothing but `>` covers it.
                    (Token::Fwc, _) => return false,
                    (Token::Pwc, Token::Pwc) => {}
                    (Token::Pwc, Token::Literal(_)) => return false,
                    (Token::Literal(_), Token::Pwc) => {}
                    (Token::Literal(a), Token::Literal(b)) => {
                        if a != b {
                            return false;
                        }
                    }
                }
            }
            // Different token counts with no `>` to absorb the difference.
            _ => return false,
        }
    }
}

/// Whether some literal subject could be matched by both `a` and `b` (both may contain
/// wildcards). JetStream uses this to reject streams whose subjects overlap.
///
/// Returns `false` if either side has an empty token.
pub fn subjects_collide(a: &[u8], b: &[u8]) -> bool {
    let mut ta = tokens(a);
    let mut tb = tokens(b);
    loop {
        match (ta.next(), tb.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) => {
                if x.is_empty() || y.is_empty() {
                    return false;
                }
                match (Token::of(x), Token::of(y)) {
                    // `>` needs one token or more and both sides have one here; any
                    // extra tokens on the other side are absorbed by it too.
                    (Token::Fwc, _) | (_, Token::Fwc) => {
                        return ta.all(|t| !t.is_empty()) && tb.all(|t| !t.is_empty());
                    }
                    (Token::Pwc, _) | (_, Token::Pwc) => {}
                    (Token::Literal(p), Token::Literal(q)) => {
                        if p != q {
                            return false;
                        }
                    }
                }
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_follows_the_protocol_reference() {
        for ok in [
            "a",
            "a.b",
            "a.*",
            "*",
            ">",
            "a.>",
            "*.*.>",
            "a.b*",
            "a*.b",
            "b>.c",
            "$JS.API.>",
            "_INBOX.x",
        ] {
            assert!(is_valid_subject(ok.as_bytes()), "{ok} should be valid");
        }
        for bad in [
            "", ".", "a..b", ".a", "a.", "a.>.b", ">.a", "a b", "a\tb", "a.\r", "\n", "a.\x0c",
            "> ",
        ] {
            assert!(
                !is_valid_subject(bad.as_bytes()),
                "{bad:?} should be invalid"
            );
        }
    }

    #[test]
    fn literal_checks() {
        assert!(is_valid_literal_subject(b"a.b*.c>"));
        assert!(!is_valid_literal_subject(b"a.*"));
        assert!(!is_valid_literal_subject(b"a.>"));
        assert!(!is_valid_literal_subject(b"a..b"));
        assert!(subject_is_literal(b"a.b"));
        assert!(subject_is_literal(b"a*.b>"));
        assert!(!subject_is_literal(b"*"));
        assert!(!subject_is_literal(b"x.>"));
    }

    #[test]
    fn matching() {
        let cases: &[(&str, &str, bool)] = &[
            ("a.b", "a.b", true),
            ("a.b", "a.c", false),
            ("a.*", "a.b", true),
            ("a.*", "a", false),
            ("a.*", "a.b.c", false),
            ("a.>", "a.b.c", true),
            ("a.>", "a", false),
            (">", "a", true),
            (">", "$JS.API.INFO", true),
            ("*.b.>", "x.b.c", true),
            ("*.b.>", "x.b", false),
            ("a.b*", "a.bc", false),
            ("a.b*", "a.b*", true),
            // A publish subject's `*` is literal: only a wildcard pattern matches it.
            ("a.*", "a.*", true),
            ("a.b", "a.*", false),
            // Malformed input never matches.
            ("", "", false),
            ("a..b", "a..b", false),
            ("a.>.b", "a.x.b", false),
            (">", "a..b", false),
            ("a.*", "a.", false),
        ];
        for (p, s, want) in cases {
            assert_eq!(
                subject_matches(p.as_bytes(), s.as_bytes()),
                *want,
                "{p} vs {s}"
            );
        }
    }

    #[test]
    fn subset_and_collide() {
        let subset: &[(&str, &str, bool)] = &[
            ("foo.*", ">", true),
            ("foo.*", "*.*", true),
            ("foo.*", "foo.*", true),
            ("foo.*", "foo.bar", false),
            ("foo.bar", "foo.*", true),
            ("foo.>", "foo.*", false),
            ("foo.*", "foo.>", true),
            ("foo", "foo.>", false),
            ("foo.bar.baz", "foo.>", true),
            ("foo.>", "foo.>", true),
            (">", "foo.>", false),
            ("a.b", "a.b.c", false),
            ("a..b", ">", false),
        ];
        for (s, t, want) in subset {
            assert_eq!(
                subject_is_subset_match(s.as_bytes(), t.as_bytes()),
                *want,
                "{s} ⊆ {t}"
            );
        }
        let collide: &[(&str, &str, bool)] = &[
            ("a.>", "*.b.c", true),
            ("a.*", "a.>", true),
            ("a.b.>", "a.*", false),
            (">", "a.b", true),
            ("a.b", "a.b", true),
            ("a.b", "a.c", false),
            ("a.*", "*.b", true),
            ("a.*", "b.*", false),
            ("a.*", "a.*.*", false),
            ("a", "a.>", false),
            ("*", ">", true),
            ("a..b", "a..b", false),
        ];
        for (a, b, want) in collide {
            assert_eq!(
                subjects_collide(a.as_bytes(), b.as_bytes()),
                *want,
                "{a} ∩ {b}"
            );
            assert_eq!(
                subjects_collide(b.as_bytes(), a.as_bytes()),
                *want,
                "{b} ∩ {a}"
            );
        }
    }

    /// Brute force over a small universe: the helpers must agree with `subject_matches`
    /// applied to every literal subject of up to four tokens.
    #[test]
    fn helpers_agree_with_enumeration() {
        let lits = ["a", "b"];
        let mut literal_subjects: Vec<String> = Vec::new();
        let mut frontier = vec![String::new()];
        for _ in 0..4 {
            let mut next = Vec::new();
            for p in &frontier {
                for t in lits {
                    let s = if p.is_empty() {
                        t.to_string()
                    } else {
                        format!("{p}.{t}")
                    };
                    literal_subjects.push(s.clone());
                    next.push(s);
                }
            }
            frontier = next;
        }
        let toks = ["a", "b", "*", ">"];
        let mut patterns: Vec<String> = Vec::new();
        let mut frontier = vec![String::new()];
        for _ in 0..3 {
            let mut next = Vec::new();
            for p in &frontier {
                for t in toks {
                    let s = if p.is_empty() {
                        t.to_string()
                    } else {
                        format!("{p}.{t}")
                    };
                    if is_valid_subject(s.as_bytes()) {
                        patterns.push(s.clone());
                    }
                    if t != ">" {
                        next.push(s);
                    }
                }
            }
            frontier = next;
        }
        // Patterns only reach three tokens, so four-token literals are enough to see `>`
        // absorb more than one token; longer literals cannot change any answer.
        let matched = |p: &str| -> Vec<bool> {
            literal_subjects
                .iter()
                .map(|s| subject_matches(p.as_bytes(), s.as_bytes()))
                .collect()
        };
        for a in &patterns {
            let ma = matched(a);
            for b in &patterns {
                let mb = matched(b);
                let collide = ma.iter().zip(&mb).any(|(x, y)| *x && *y);
                let subset = ma.iter().zip(&mb).all(|(x, y)| !*x || *y);
                assert_eq!(
                    subjects_collide(a.as_bytes(), b.as_bytes()),
                    collide,
                    "{a} ∩ {b}"
                );
                assert_eq!(
                    subject_is_subset_match(a.as_bytes(), b.as_bytes()),
                    subset,
                    "{a} ⊆ {b}"
                );
            }
        }
    }
}
