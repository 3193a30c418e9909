//! Subject mappings: import `to` subjects, stream `subject_transform` and `republish`
//! destinations.
//!
//! Why one module: nats-server has a single subject-transform language (`*`, `>`, `$n`,
//! `{{wildcard(n)}}` and other `{{function(..)}}`s), and three places here read it:
//! imports (mapping every routed message, and checked when the config loads), stream
//! transforms and republish (checked on STREAM.CREATE/UPDATE with nats-server's error
//! texts). Each reads a destination token through [`DestToken::of`], so `{{ Wildcard( 2 ) }}`
//! or `$0` mean the same thing everywhere; the callers differ only in what they accept.

/// Mapping functions nats-server knows besides `wildcard` (natrium refuses them as not
/// supported yet, 10052; anything else is an unknown function, 10156).
const OTHER_MAPPING_FUNCTIONS: &[&str] = &[
    "partition",
    "splitfromleft",
    "splitfromright",
    "slicefromleft",
    "slicefromright",
    "split",
    "left",
    "right",
    "random",
];

/// One token of a mapping destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestToken<'a> {
    /// `*`: the source's next `*` match, in order.
    Star,
    /// `>`: what the source's `>` matched.
    Rest,
    /// `$n` as written (`$0` and `$-1` included: callers judge the range).
    Dollar(i64),
    /// `{{wildcard(n)}}` (case and spaces inside the braces ignored, as nats-server).
    Wildcard(i64),
    /// `{{name(..)}}` of a mapping function nats-server knows besides `wildcard`.
    OtherFunction,
    /// `{{..}}` naming no known function (or not a call at all).
    UnknownFunction,
    /// `{{wildcard(..)}}` whose argument is not a number.
    BadArgument,
    /// Anything else, copied as is (`$x` and `a{{b` included).
    Literal(&'a str),
}

impl<'a> DestToken<'a> {
    /// Classifies one token. Allocates only for `{{..}}` tokens.
    pub fn of(tok: &'a str) -> DestToken<'a> {
        match tok {
            "*" => return DestToken::Star,
            ">" => return DestToken::Rest,
            _ => {}
        }
        if let Some(n) = tok.strip_prefix('$').and_then(|d| d.parse::<i64>().ok()) {
            return DestToken::Dollar(n);
        }
        let Some(inner) = tok.strip_prefix("{{").and_then(|t| t.strip_suffix("}}")) else {
            return DestToken::Literal(tok);
        };
        let inner: String = inner.chars().filter(|c| !c.is_whitespace()).collect();
        let lower = inner.to_ascii_lowercase();
        let Some((name, args)) = lower.split_once('(') else {
            return DestToken::UnknownFunction;
        };
        if name == "wildcard" {
            return match args.strip_suffix(')').and_then(|a| a.parse::<i64>().ok()) {
                Some(n) => DestToken::Wildcard(n),
                None => DestToken::BadArgument,
            };
        }
        if OTHER_MAPPING_FUNCTIONS.contains(&name) {
            DestToken::OtherFunction
        } else {
            DestToken::UnknownFunction
        }
    }

    /// The source `*` this token takes (1-based) when it is a reference to one: `$n` or
    /// `{{wildcard(n)}}` with `n` ≥ 1.
    pub fn wildcard_ref(self) -> Option<usize> {
        match self {
            DestToken::Dollar(n) | DestToken::Wildcard(n) if n >= 1 => usize::try_from(n).ok(),
            _ => None,
        }
    }
}

/// Subject transform for imports: a literal prefix, or a `to` subject whose wildcards
/// (`*`, `>`) and `$N` references are filled from the source subject's wildcard tokens.
#[derive(Debug, Clone)]
pub enum Transform {
    /// Keep the subject.
    Same,
    /// `prefix.subject`.
    Prefix(String),
    /// Map the source pattern onto `to`.
    Map {
        /// Source pattern.
        from: String,
        /// Destination pattern.
        to: String,
    },
}

impl Transform {
    /// Apply to a published subject that matched the source pattern.
    pub fn apply(&self, subject: &[u8]) -> Vec<u8> {
        match self {
            Transform::Same => subject.to_vec(),
            Transform::Prefix(p) => {
                let mut out = Vec::with_capacity(p.len() + 1 + subject.len());
                out.extend_from_slice(p.as_bytes());
                out.push(b'.');
                out.extend_from_slice(subject);
                out
            }
            Transform::Map { from, to } => map_subject(from, to, subject),
        }
    }
}

/// Maps `subject` (which matched the pattern `from`) onto `to`, as nats-server's subject
/// transforms do: a `*` token in `to` takes the next `*` match of `from`, in order; `$n`
/// and `{{wildcard(n)}}` take the `n`th `*` match (1-based, counting `*` tokens only);
/// a `>` takes what `from`'s `>` matched (the rest of the subject).
pub fn map_subject(from: &str, to: &str, subject: &[u8]) -> Vec<u8> {
    let src: Vec<&[u8]> = subject.split(|&b| b == b'.').collect();
    let mut stars: Vec<&[u8]> = Vec::new();
    let mut rest: Vec<u8> = Vec::new();
    for (i, tok) in from.split('.').enumerate() {
        match tok {
            "*" => stars.push(src.get(i).copied().unwrap_or_default()),
            ">" => rest = src.get(i..).map(|r| r.join(&b'.')).unwrap_or_default(),
            _ => {}
        }
    }
    let mut next = 0usize;
    let mut out: Vec<u8> = Vec::with_capacity(to.len() + subject.len());
    for (i, tok) in to.split('.').enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        let t = DestToken::of(tok);
        match t {
            DestToken::Star => {
                out.extend_from_slice(stars.get(next).copied().unwrap_or_default());
                next += 1;
            }
            DestToken::Rest => out.extend_from_slice(&rest),
            _ => match t.wildcard_ref() {
                Some(n) => out.extend_from_slice(stars.get(n - 1).copied().unwrap_or_default()),
                None => out.extend_from_slice(tok.as_bytes()),
            },
        }
    }
    out
}

/// Checks an import's `to` mapping of `from` as nats-server does when it loads the
/// config: references name existing `*` wildcards of `from`, and every one of them is
/// used (else nats-server refuses: "not using all of the token wildcard(s)"); a `>` in
/// `from` needs one in `to`.
pub fn check_import_mapping(from: &str, to: &str) -> Result<(), String> {
    let stars = from.split('.').filter(|t| *t == "*").count();
    let mut used = vec![false; stars];
    let mut next = 0usize;
    for tok in to.split('.') {
        let t = DestToken::of(tok);
        let n = match t {
            DestToken::Star => {
                next += 1;
                next
            }
            DestToken::Rest => continue,
            DestToken::Literal(l) if !l.starts_with('$') && !l.contains("{{") => continue,
            _ => match t.wildcard_ref() {
                Some(n) => n,
                None => return Err(format!("unknown mapping function {tok:?} in {to}")),
            },
        };
        match used.get_mut(n - 1) {
            Some(u) => *u = true,
            None => return Err(format!("wildcard index {n} out of range in {to}")),
        }
    }
    if used.iter().any(|u| !u) {
        return Err(format!("not using all of the token wildcard(s) in {to}"));
    }
    if from.ends_with('>') != to.split('.').any(|t| t == ">") {
        return Err(format!("the full wildcard of {from} and {to} must match"));
    }
    Ok(())
}

/// A service import of `subject` made available as `to` (its `to`, else the subject
/// itself): the local subject the importer's requests are matched by, and the transform
/// that turns such a request into the exporter's subject.
pub fn service_import_transform(subject: &str, to: Option<&str>) -> (String, Transform) {
    match to {
        Some(to) if to != subject => {
            let (local, back) = reverse_import_mapping(subject, to);
            (
                local.clone(),
                Transform::Map {
                    from: local,
                    to: back,
                },
            )
        }
        _ => (subject.to_string(), Transform::Same),
    }
}

/// For a service import whose `to` (what importers publish to) names `subject`'s
/// wildcards: the pattern importers' requests match (each reference becomes `*`), and
/// the mapping from it back onto the exporter's subject (each `*` of `subject` becomes a
/// reference to the local wildcard that carries it). `local.$1.x` for `svc.*` gives
/// `local.*.x` and `svc.$1`.
pub fn reverse_import_mapping(subject: &str, to: &str) -> (String, String) {
    // Which `subject` wildcard each local `*` carries (1-based), in order.
    let mut carries: Vec<usize> = Vec::new();
    let mut next = 0usize;
    let local: Vec<&str> = to
        .split('.')
        .map(|tok| {
            let t = DestToken::of(tok);
            if t == DestToken::Star {
                next += 1;
                carries.push(next);
                return "*";
            }
            match t.wildcard_ref() {
                Some(n) => {
                    carries.push(n);
                    "*"
                }
                None => tok,
            }
        })
        .collect();
    let mut k = 0usize;
    let back: Vec<String> = subject
        .split('.')
        .map(|tok| {
            if tok != "*" {
                return tok.to_string();
            }
            k += 1;
            match carries.iter().position(|&c| c == k) {
                Some(j) => format!("${}", j + 1),
                None => "*".to_string(),
            }
        })
        .collect();
    (local.join("."), back.join("."))
}

/// Whether every mapping function in a stream transform or republish destination (for
/// source `src`, empty meaning every subject) is one natrium applies; `Err` names the
/// first token that is not.
pub fn check_transform_dest(src: &str, dest: &str) -> Result<(), String> {
    if !has_other_function(dest) {
        return Ok(());
    }
    let src = if src.is_empty() { ">" } else { src };
    compile_dest(src, dest).map(|_| ()).map_err(|_| {
        dest.split('.')
            .find(|t| t.contains("{{"))
            .unwrap_or(dest)
            .to_string()
    })
}

/// Whether `dest` uses a mapping function other than `wildcard`.
fn has_other_function(dest: &str) -> bool {
    dest.split('.')
        .any(|t| matches!(DestToken::of(t), DestToken::OtherFunction))
}

/// Maps `subject` (which matched `from`) onto `to` with every mapping function
/// nats-server has, or `None` if `to` does not compile. [`map_subject`] is the faster
/// path for destinations without functions.
pub fn map_subject_with_functions(from: &str, to: &str, subject: &[u8]) -> Option<Vec<u8>> {
    if !has_other_function(to) {
        return Some(map_subject(from, to, subject));
    }
    let parts = compile_dest(from, to).ok()?;
    Some(apply_dest(&parts, from.split('.').count(), subject))
}

/// Why nats-server refuses a subject transform's destination (the text after `stream
/// transform: `), or `None`. Its checks run in this order: every token is non-empty, none
/// follows a `>` and every `{{..}}` names a known function (`ValidateMapping`); then the
/// destination has no `*` and has a `>` exactly when the source has one, an empty source
/// counting as `>` (`NewSubjectTransform`: "invalid subject"); then each `$n` or
/// `{{wildcard(n)}}` names one of the source's `*` (1-based). An empty destination is no
/// transform at all.
pub fn transform_dest_error(src: &str, dest: &str) -> Option<String> {
    if dest.is_empty() {
        return None;
    }
    let mapping = |why: String| Some(format!("invalid mapping destination: {why}"));
    let src = if src.is_empty() { ">" } else { src };
    let mut after_rest = false;
    for tok in dest.split('.') {
        if tok.is_empty() || after_rest {
            return mapping("invalid transform".to_string());
        }
        match DestToken::of(tok) {
            DestToken::UnknownFunction => return mapping(format!("unknown function in {tok}")),
            DestToken::Rest => after_rest = true,
            _ => {}
        }
    }
    let stars = src.split('.').filter(|t| *t == "*").count();
    let src_gt = src.ends_with(".>") || src == ">";
    let dest_star = dest.split('.').any(|t| t == "*");
    if dest_star || src_gt != after_rest {
        return Some("invalid subject".to_string());
    }
    for tok in dest.split('.') {
        let index = match DestToken::of(tok) {
            DestToken::Wildcard(n) => n,
            // `$0` is left as nats-server leaves it.
            DestToken::Dollar(0) => continue,
            DestToken::Dollar(n) => n,
            DestToken::BadArgument => {
                return mapping(format!(
                    "function argument is invalid or in the wrong format in {tok}"
                ));
            }
            _ => continue,
        };
        if index < 1 || index as usize > stars {
            return mapping(format!("wildcard index out of range in {tok}: [{index}]"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_classified_once_for_everyone() {
        assert_eq!(DestToken::of("*"), DestToken::Star);
        assert_eq!(DestToken::of(">"), DestToken::Rest);
        assert_eq!(DestToken::of("$2"), DestToken::Dollar(2));
        assert_eq!(DestToken::of("$0").wildcard_ref(), None);
        assert_eq!(DestToken::of("$x"), DestToken::Literal("$x"));
        assert_eq!(DestToken::of("{{ Wildcard( 3 ) }}"), DestToken::Wildcard(3));
        assert_eq!(DestToken::of("{{wildcard(3)}}").wildcard_ref(), Some(3));
        assert_eq!(DestToken::of("{{wildcard(x)}}"), DestToken::BadArgument);
        assert_eq!(DestToken::of("{{split(1,-)}}"), DestToken::OtherFunction);
        assert_eq!(DestToken::of("{{nope(1)}}"), DestToken::UnknownFunction);
        assert_eq!(DestToken::of("{{nope}}"), DestToken::UnknownFunction);
        assert_eq!(DestToken::of("a{{b"), DestToken::Literal("a{{b"));
    }

    #[test]
    fn transforms() {
        assert_eq!(Transform::Same.apply(b"a.b"), b"a.b");
        assert_eq!(
            Transform::Prefix("from_a".into()).apply(b"pub.x"),
            b"from_a.pub.x"
        );
        let t = Transform::Map {
            from: "svc.*.*".into(),
            to: "local.$2.$1".into(),
        };
        assert_eq!(t.apply(b"svc.a.b"), b"local.b.a");
        // `>` takes what `>` matched; `$n` counts `*` tokens only.
        let t = Transform::Map {
            from: "ev.*.>".into(),
            to: "mine.$1.>".into(),
        };
        assert_eq!(t.apply(b"ev.k.z.w"), b"mine.k.z.w");
        let t = Transform::Map {
            from: "ev.*.>".into(),
            to: "m.{{wildcard(1)}}.$1.>".into(),
        };
        assert_eq!(t.apply(b"ev.k.z.w"), b"m.k.k.z.w");
        let t = Transform::Map {
            from: "orders.*".into(),
            to: "imported.*".into(),
        };
        assert_eq!(t.apply(b"orders.1"), b"imported.1");
        let t = Transform::Map {
            from: "svc.x".into(),
            to: "local.x".into(),
        };
        assert_eq!(t.apply(b"svc.x"), b"local.x");
        // Not references: copied as they are.
        let t = Transform::Map {
            from: "a.*".into(),
            to: "b.$0.$x.$1".into(),
        };
        assert_eq!(t.apply(b"a.k"), b"b.$0.$x.k");
    }

    #[test]
    fn import_mappings_are_checked_as_nats_server_does() {
        assert!(check_import_mapping("ev.*.>", "mine.$1.>").is_ok());
        assert!(check_import_mapping("ev.*.*", "mine.$2.$1").is_ok());
        assert!(check_import_mapping("ev.*", "mine.{{wildcard(1)}}.x").is_ok());
        assert!(check_import_mapping("ev.*.>", "mine.*.>").is_ok());
        let e = check_import_mapping("ev.*.>", "mine.>").unwrap_err();
        assert!(e.contains("not using all of the token wildcard(s)"), "{e}");
        assert!(check_import_mapping("ev.*", "mine.$2").is_err());
        assert!(check_import_mapping("ev.*", "mine.{{split(1,-)}}").is_err());
        assert!(check_import_mapping("ev.*", "mine.$1.$x").is_err());
        assert!(check_import_mapping("ev.*", "mine.$1.a{{b").is_err());
        assert!(check_import_mapping("ev.>", "mine.x").is_err());
    }

    #[test]
    fn service_imports_map_requests_back() {
        let (local, back) = reverse_import_mapping("svc.*", "local.$1.x");
        assert_eq!((local.as_str(), back.as_str()), ("local.*.x", "svc.$1"));
        let t = Transform::Map {
            from: local,
            to: back,
        };
        assert_eq!(t.apply(b"local.k.x"), b"svc.k");
        let (local, back) =
            reverse_import_mapping("ev.*.*", "mine.{{wildcard(2)}}.{{wildcard(1)}}");
        assert_eq!((local.as_str(), back.as_str()), ("mine.*.*", "ev.$2.$1"));
        let t = Transform::Map {
            from: local,
            to: back,
        };
        assert_eq!(t.apply(b"mine.z.k"), b"ev.k.z");
        let (local, back) = reverse_import_mapping("ev.*.>", "mine.$1.>");
        let t = Transform::Map {
            from: local,
            to: back,
        };
        assert_eq!(t.apply(b"mine.k.z.w"), b"ev.k.z.w");
    }

    #[test]
    fn transform_functions_are_checked_against_the_source() {
        assert!(check_transform_dest("a.*.*", "p.$1.{{wildcard(2)}}.x").is_ok());
        assert!(check_transform_dest("a.*", "p.{{split(1,-)}}").is_ok());
        assert!(check_transform_dest("", "p.{{partition(3)}}").is_ok());
        assert_eq!(
            check_transform_dest("a.*", "p.{{split(2,-)}}"),
            Err("{{split(2,-)}}".to_string())
        );
        assert_eq!(
            map_subject_with_functions("a.*", "p.{{left(1,2)}}", b"a.xyz"),
            Some(b"p.xy".to_vec())
        );
    }

    #[test]
    fn transform_destinations_are_checked_as_nats_server_checks_them() {
        // Accepted: references in range, as many `*`, a `>` with a `>`, no destination.
        for (src, dest) in [
            ("a.*", "p.$1"),
            ("a.*.*", "p.{{wildcard(2)}}.$1"),
            ("a.>", "p.>"),
            ("a.*.>", "p.$1.>"),
            ("a.*", ""),
            ("a.*", "p.{{partition(3,1)}}"),
            ("a.*", "p.$0"),
            ("", "z.>"),
        ] {
            assert_eq!(transform_dest_error(src, dest), None, "{src} -> {dest}");
        }
        // Refused, with nats-server 2.15.1's texts (after `stream transform: `).
        for (src, dest, why) in [
            (
                "a.*",
                "p.$2",
                "invalid mapping destination: wildcard index out of range in $2: [2]",
            ),
            (
                "a.*",
                "p.{{wildcard(3)}}",
                "invalid mapping destination: wildcard index out of range in {{wildcard(3)}}: [3]",
            ),
            (
                "a.*",
                "p.{{wildcard(x)}}",
                "invalid mapping destination: function argument is invalid or in the wrong format in {{wildcard(x)}}",
            ),
            (
                "a.*",
                "p.{{nope(1)}}",
                "invalid mapping destination: unknown function in {{nope(1)}}",
            ),
            (
                "a.*",
                "p..x",
                "invalid mapping destination: invalid transform",
            ),
            ("a.*", "p.*", "invalid subject"),
            ("a.*", "p.*.*", "invalid subject"),
            ("a.*", "p.>", "invalid subject"),
            ("a.>", "p.*", "invalid subject"),
            ("a.>", "p.x", "invalid subject"),
            ("a.*.>", "p.$1", "invalid subject"),
            ("", "q.x", "invalid subject"),
            ("", "q.$1", "invalid subject"),
            ("", "q.*", "invalid subject"),
            (
                "a.>",
                "p.>.x",
                "invalid mapping destination: invalid transform",
            ),
        ] {
            assert_eq!(
                transform_dest_error(src, dest).as_deref(),
                Some(why),
                "{src} -> {dest}"
            );
        }
    }
}

/// One configured subject mapping (`mappings { src: dest }`, or weighted
/// `src: [{destination: d, weight: 40%}, ...]`), as the config gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingConfig {
    /// Source subject (wildcards allowed).
    pub from: String,
    /// Destinations and their weights in percent (a plain `src: dest` is one at 100).
    pub dests: Vec<(String, u8)>,
}

/// A mapping function in a destination token (`{{name(args)}}`), with its wildcard
/// arguments already turned into source token positions.
#[derive(Debug, Clone, PartialEq, Eq)]
enum MapFn {
    /// `partition(n, w...)`: FNV-1a of the named tokens (or of the whole subject), mod n.
    Partition(u32, Vec<usize>),
    /// `splitFromLeft(w, pos)`.
    SplitFromLeft(usize, i64),
    /// `splitFromRight(w, pos)`.
    SplitFromRight(usize, i64),
    /// `sliceFromLeft(w, size)`.
    SliceFromLeft(usize, i64),
    /// `sliceFromRight(w, size)`.
    SliceFromRight(usize, i64),
    /// `split(w, delimiter)`.
    Split(usize, String),
    /// `left(w, len)`.
    Left(usize, i64),
    /// `right(w, len)`.
    Right(usize, i64),
    /// `random(n)`.
    Random(u32),
}

/// One part of a compiled mapping destination.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DestPart {
    /// Copied as is.
    Literal(String),
    /// The source token at this position.
    Token(usize),
    /// Everything the source's `>` matched.
    Rest,
    /// A mapping function.
    Func(MapFn),
}

/// Parses the arguments of `{{name(args)}}` (`name` case-insensitive, spaces allowed
/// around the braces, the name and the arguments), or `None` if `tok` is not such a call.
fn function_call(tok: &str) -> Option<(String, Vec<String>)> {
    let inner = tok.strip_prefix("{{")?.strip_suffix("}}")?.trim();
    let (name, rest) = inner.split_once('(')?;
    let args = rest.trim_end().strip_suffix(')')?;
    let args = args.split(',').map(|a| a.trim().to_string()).collect();
    Some((name.trim().to_ascii_lowercase(), args))
}

/// Compiles a mapping destination for source `from` (nats-server's
/// `NewSubjectTransform` rules): `*` takes the next source `*`, `$n` and
/// `{{wildcard(n)}}` the `n`th, `>` the rest, and the other mapping functions their
/// arguments (wildcard numbers, then an integer or a delimiter).
fn compile_dest(from: &str, to: &str) -> Result<Vec<DestPart>, String> {
    if to.is_empty() || to.split('.').any(str::is_empty) {
        return Err("invalid mapping destination".into());
    }
    // Source token position of each `*`, in order (wildcard n is stars[n - 1]).
    let stars: Vec<usize> = from
        .split('.')
        .enumerate()
        .filter(|(_, t)| *t == "*")
        .map(|(i, _)| i)
        .collect();
    let wildcard = |arg: &str, tok: &str| -> Result<usize, String> {
        let n: usize = arg
            .parse()
            .map_err(|_| format!("invalid mapping destination: invalid argument in {tok}"))?;
        n.checked_sub(1)
            .and_then(|i| stars.get(i).copied())
            .ok_or_else(|| {
                format!("invalid mapping destination: wildcard index out of range in {tok}")
            })
    };
    let int = |arg: &str, tok: &str| -> Result<i64, String> {
        arg.parse::<i32>()
            .map(i64::from)
            .map_err(|_| format!("invalid mapping destination: invalid argument in {tok}"))
    };
    let mut next_star = 0usize;
    let mut parts = Vec::new();
    for tok in to.split('.') {
        let part = match DestToken::of(tok) {
            DestToken::Star => {
                let p = stars.get(next_star).copied().ok_or_else(|| {
                    "invalid mapping destination: more `*` than the source has".to_string()
                })?;
                next_star += 1;
                DestPart::Token(p)
            }
            DestToken::Rest => DestPart::Rest,
            DestToken::Literal(l) => DestPart::Literal(l.to_string()),
            DestToken::Dollar(_) | DestToken::Wildcard(_) => DestPart::Token(wildcard(
                &match DestToken::of(tok) {
                    DestToken::Dollar(n) | DestToken::Wildcard(n) => n.to_string(),
                    _ => String::new(),
                },
                tok,
            )?),
            DestToken::UnknownFunction | DestToken::BadArgument => {
                return Err(format!("invalid mapping destination: {tok}"));
            }
            DestToken::OtherFunction => {
                let (name, args) = function_call(tok)
                    .ok_or_else(|| format!("invalid mapping destination: {tok}"))?;
                let two = |args: &[String]| -> Result<(), String> {
                    match args.len() {
                        0 | 1 => Err(format!(
                            "invalid mapping destination: not enough arguments in {tok}"
                        )),
                        2 => Ok(()),
                        _ => Err(format!(
                            "invalid mapping destination: too many arguments in {tok}"
                        )),
                    }
                };
                let f = match name.as_str() {
                    "partition" => {
                        let n = args.first().filter(|a| !a.is_empty()).ok_or_else(|| {
                            format!("invalid mapping destination: not enough arguments in {tok}")
                        })?;
                        let n: u32 = n.parse().map_err(|_| {
                            format!("invalid mapping destination: invalid argument in {tok}")
                        })?;
                        let ws = args[1..]
                            .iter()
                            .map(|a| wildcard(a, tok))
                            .collect::<Result<_, _>>()?;
                        MapFn::Partition(n, ws)
                    }
                    "random" => {
                        if args.len() != 1 || args[0].is_empty() {
                            return Err(format!(
                                "invalid mapping destination: not enough arguments in {tok}"
                            ));
                        }
                        MapFn::Random(args[0].parse().map_err(|_| {
                            format!("invalid mapping destination: invalid argument in {tok}")
                        })?)
                    }
                    "split" => {
                        two(&args)?;
                        if args[1].contains(' ') || args[1].contains('.') {
                            return Err(format!(
                                "invalid mapping destination: invalid argument in {tok}"
                            ));
                        }
                        MapFn::Split(wildcard(&args[0], tok)?, args[1].clone())
                    }
                    other => {
                        two(&args)?;
                        let (w, n) = (wildcard(&args[0], tok)?, int(&args[1], tok)?);
                        match other {
                            "splitfromleft" => MapFn::SplitFromLeft(w, n),
                            "splitfromright" => MapFn::SplitFromRight(w, n),
                            "slicefromleft" => MapFn::SliceFromLeft(w, n),
                            "slicefromright" => MapFn::SliceFromRight(w, n),
                            "left" => MapFn::Left(w, n),
                            "right" => MapFn::Right(w, n),
                            _ => return Err(format!("invalid mapping destination: {tok}")),
                        }
                    }
                };
                DestPart::Func(f)
            }
        };
        parts.push(part);
    }
    Ok(parts)
}

/// Checks a mapping destination against its source as nats-server does when it adds
/// the mapping (no `*` in the destination, a `>` on both sides or neither, references
/// name a `*` of the source, functions have valid arguments).
pub fn check_mapping_dest(from: &str, to: &str) -> Result<(), String> {
    // Only the "invalid subject" verdict is taken from the transform check: its token
    // errors come first there, and `compile_dest` words those as nats-server's config does.
    if let Some(why) = transform_dest_error(from, to).filter(|w| w == "invalid subject") {
        return Err(why);
    }
    compile_dest(from, to).map(|_| ())
}

fn fnv1a32(parts: &[&[u8]]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for p in parts {
        for b in *p {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
    }
    h
}

/// Appends what `f` makes of the source `tokens` (nats-server's
/// `TransformTokenizedSubject`, case by case).
fn apply_fn(f: &MapFn, subject: &[u8], tokens: &[&[u8]], out: &mut Vec<u8>) {
    let tok = |i: usize| tokens.get(i).copied().unwrap_or_default();
    let number = |n: u32, out: &mut Vec<u8>| out.extend_from_slice(n.to_string().as_bytes());
    match f {
        MapFn::Partition(n, ws) => {
            let h = if ws.is_empty() {
                fnv1a32(&[subject])
            } else {
                let parts: Vec<&[u8]> = ws.iter().map(|&i| tok(i)).collect();
                fnv1a32(&parts)
            };
            number(if *n == 0 { 0 } else { h % n }, out);
        }
        MapFn::Random(n) => number(
            if *n == 0 {
                0
            } else {
                rand::random::<u32>() % n
            },
            out,
        ),
        MapFn::SplitFromLeft(w, pos) | MapFn::SplitFromRight(w, pos) => {
            let t = tok(*w);
            let len = t.len() as i64;
            if *pos > 0 && *pos < len {
                let at = match f {
                    MapFn::SplitFromLeft(..) => *pos,
                    _ => len - pos,
                } as usize;
                out.extend_from_slice(&t[..at]);
                out.push(b'.');
                out.extend_from_slice(&t[at..]);
            } else {
                out.extend_from_slice(t);
            }
        }
        MapFn::SliceFromLeft(w, size) => {
            let t = tok(*w);
            let (len, size) = (t.len(), *size);
            if size > 0 && (size as usize) < len {
                let size = size as usize;
                let mut i = 0;
                while i + size <= len {
                    if i != 0 {
                        out.push(b'.');
                    }
                    out.extend_from_slice(&t[i..i + size]);
                    if i + size != len && i + 2 * size > len {
                        out.push(b'.');
                        out.extend_from_slice(&t[i + size..]);
                        break;
                    }
                    i += size;
                }
            } else {
                out.extend_from_slice(t);
            }
        }
        MapFn::SliceFromRight(w, size) => {
            let t = tok(*w);
            let (len, size) = (t.len(), *size);
            if size > 0 && (size as usize) < len {
                let size = size as usize;
                let rem = len % size;
                if rem > 0 {
                    out.extend_from_slice(&t[..rem]);
                    out.push(b'.');
                }
                let mut i = rem;
                while i + size <= len {
                    out.extend_from_slice(&t[i..i + size]);
                    if i + size < len {
                        out.push(b'.');
                    }
                    i += size;
                }
            } else {
                out.extend_from_slice(t);
            }
        }
        MapFn::Split(w, delim) => {
            let t = tok(*w);
            let pieces: Vec<&[u8]> = split_bytes(t, delim.as_bytes());
            for (j, piece) in pieces.iter().enumerate() {
                out.extend_from_slice(piece);
                if j + 1 < pieces.len()
                    && !pieces[j + 1].is_empty()
                    && !(j == 0 && piece.is_empty())
                {
                    out.push(b'.');
                }
            }
        }
        MapFn::Left(w, n) | MapFn::Right(w, n) => {
            let t = tok(*w);
            let len = t.len() as i64;
            if *n > 0 && *n < len {
                let n = *n as usize;
                match f {
                    MapFn::Left(..) => out.extend_from_slice(&t[..n]),
                    _ => out.extend_from_slice(&t[t.len() - n..]),
                }
            } else {
                out.extend_from_slice(t);
            }
        }
    }
}

/// `s` split on every `delim` (Go's `strings.Split`; an empty delimiter splits into
/// single bytes).
fn split_bytes<'a>(s: &'a [u8], delim: &[u8]) -> Vec<&'a [u8]> {
    if delim.is_empty() {
        return s.chunks(1).collect();
    }
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + delim.len() <= s.len() {
        if &s[i..i + delim.len()] == delim {
            out.push(&s[start..i]);
            i += delim.len();
            start = i;
        } else {
            i += 1;
        }
    }
    out.push(&s[start..]);
    out
}

/// Applies a compiled destination to a subject its source matched.
fn apply_dest(parts: &[DestPart], from_len: usize, subject: &[u8]) -> Vec<u8> {
    let tokens: Vec<&[u8]> = subject.split(|&b| b == b'.').collect();
    let mut out = Vec::with_capacity(subject.len() + 16);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        match part {
            DestPart::Literal(l) => out.extend_from_slice(l.as_bytes()),
            DestPart::Token(p) => {
                out.extend_from_slice(tokens.get(*p).copied().unwrap_or_default())
            }
            // The source's `>` is its last token: the rest starts at that position.
            DestPart::Rest => {
                let rest = tokens.get(from_len.saturating_sub(1)..).unwrap_or_default();
                out.extend_from_slice(&rest.join(&b'.'));
            }
            DestPart::Func(f) => apply_fn(f, subject, &tokens, &mut out),
        }
    }
    out
}

/// A mapping ready to apply: destinations sorted by weight, each with the upper bound of
/// its share of `0..100`; `None` keeps the subject (the weight left over when the
/// destinations do not add up to 100, as nats-server).
#[derive(Debug, Clone)]
struct Mapping {
    from: String,
    /// Tokens in `from` (for `>`).
    from_len: usize,
    literal: bool,
    dests: Vec<(Option<Vec<DestPart>>, u8)>,
}

/// An account's subject mappings, applied to what its clients publish before it is
/// routed: the first mapping whose source matches picks a destination by weight.
#[derive(Debug, Clone, Default)]
pub struct Mappings {
    list: Vec<Mapping>,
}

impl Mappings {
    /// Builds from checked configs (a destination that does not compile is skipped);
    /// `None` when there are none (the publish path then pays nothing).
    pub fn build(configs: &[MappingConfig]) -> Option<Mappings> {
        if configs.is_empty() {
            return None;
        }
        let list = configs
            .iter()
            .map(|c| {
                let mut dests: Vec<(Option<Vec<DestPart>>, u8)> = c
                    .dests
                    .iter()
                    .filter_map(|(d, w)| compile_dest(&c.from, d).ok().map(|p| (Some(p), *w)))
                    .collect();
                let total: u32 = c.dests.iter().map(|(_, w)| u32::from(*w)).sum();
                let listed_self = c.dests.iter().any(|(d, _)| *d == c.from);
                if total != 100 && !listed_self {
                    let rest = if c.dests.is_empty() {
                        100
                    } else {
                        100 - total.min(100)
                    };
                    dests.push((None, rest as u8));
                }
                dests.sort_by_key(|(_, w)| *w);
                let mut upto = 0u8;
                for d in &mut dests {
                    upto = upto.saturating_add(d.1);
                    d.1 = upto;
                }
                Mapping {
                    literal: !c.from.split('.').any(|t| t == "*" || t == ">"),
                    from_len: c.from.split('.').count(),
                    from: c.from.clone(),
                    dests,
                }
            })
            .collect();
        Some(Mappings { list })
    }

    /// The subject `subject` is published to after mapping, or `None` to keep it.
    pub fn select(&self, subject: &[u8]) -> Option<Vec<u8>> {
        let m = self.list.iter().find(|m| {
            if m.literal {
                m.from.as_bytes() == subject
            } else {
                crate::sublist::subject_matches(m.from.as_bytes(), subject)
            }
        })?;
        let dest = match m.dests.as_slice() {
            [(d, 100)] => d.as_ref(),
            dests => {
                let w = (rand::random::<u32>() % 100) as u8;
                dests
                    .iter()
                    .find(|(_, upto)| w < *upto)
                    .and_then(|(d, _)| d.as_ref())
            }
        }?;
        Some(apply_dest(dest, m.from_len, subject))
    }
}

#[cfg(test)]
mod mapping_tests {
    use super::*;

    fn one(from: &str, to: &str, subject: &str) -> String {
        let m = Mappings::build(&[cfg(from, &[(to, 100)])]).unwrap();
        String::from_utf8(m.select(subject.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn mapping_functions_as_nats_server() {
        // FNV-1a 32 of "key1" is 0x5b5ac2f0 -> mod 4 = 0 (checked against nats-server by
        // the differential test); of the whole subject when no tokens are named.
        assert_eq!(fnv1a32(&[b"a"]), 0xe40c292c);
        assert_eq!(
            one("p.*", "out.{{partition(4,1)}}", "p.key1"),
            format!("out.{}", fnv1a32(&[b"key1"]) % 4)
        );
        assert_eq!(
            one("p.*", "out.{{Partition(5)}}", "p.x"),
            format!("out.{}", fnv1a32(&[b"p.x"]) % 5)
        );
        assert_eq!(one("s.*", "{{splitFromLeft(1,2)}}", "s.abcdef"), "ab.cdef");
        assert_eq!(one("s.*", "{{splitFromRight(1,2)}}", "s.abcdef"), "abcd.ef");
        assert_eq!(one("s.*", "{{splitFromLeft(1,9)}}", "s.abc"), "abc");
        assert_eq!(one("s.*", "{{sliceFromLeft(1,2)}}", "s.abcde"), "ab.cd.e");
        assert_eq!(one("s.*", "{{sliceFromRight(1,2)}}", "s.abcde"), "a.bc.de");
        assert_eq!(one("s.*", "{{left(1,2)}}", "s.abcde"), "ab");
        assert_eq!(one("s.*", "{{right(1,2)}}", "s.abcde"), "de");
        assert_eq!(one("s.*", "{{split(1,-)}}", "s.a-b--c-"), "a.b.c");
        assert_eq!(one("s.*", "{{split(1,-)}}", "s.-a"), "a");
        let r = one("r", "r.{{random(3)}}", "r");
        assert!(["r.0", "r.1", "r.2"].contains(&r.as_str()), "{r}");
        assert_eq!(one("a.*.>", "b.$1.>", "a.x.y.z"), "b.x.y.z");
    }

    fn cfg(from: &str, dests: &[(&str, u8)]) -> MappingConfig {
        MappingConfig {
            from: from.into(),
            dests: dests.iter().map(|(d, w)| (d.to_string(), *w)).collect(),
        }
    }

    #[test]
    fn first_matching_source_maps_with_its_wildcards() {
        let m = Mappings::build(&[
            cfg("orders.new", &[("orders.v2.new", 100)]),
            cfg("req.*.*", &[("svc.$2.{{wildcard(1)}}", 100)]),
            cfg("events.>", &[("archive.>", 100)]),
        ])
        .unwrap();
        assert_eq!(m.select(b"orders.new").unwrap(), b"orders.v2.new");
        assert_eq!(m.select(b"req.a.b").unwrap(), b"svc.b.a");
        assert_eq!(m.select(b"events.x.y").unwrap(), b"archive.x.y");
        assert_eq!(m.select(b"orders.old"), None);
        assert!(Mappings::build(&[]).is_none());
    }

    #[test]
    fn weights_split_the_traffic_and_the_rest_keeps_the_subject() {
        let m = Mappings::build(&[cfg("w", &[("a", 30), ("b", 20)])]).unwrap();
        let (mut a, mut b, mut same) = (0, 0, 0);
        for _ in 0..10_000 {
            match m.select(b"w") {
                Some(s) if s == b"a" => a += 1,
                Some(s) if s == b"b" => b += 1,
                None => same += 1,
                Some(other) => panic!("{other:?}"),
            }
        }
        // 30% / 20% / 50%, within a wide margin.
        assert!((2_500..3_500).contains(&a), "{a}");
        assert!((1_500..2_500).contains(&b), "{b}");
        assert!((4_500..5_500).contains(&same), "{same}");
        // Listing the source itself means the rest is dropped on purpose: all traffic
        // goes to the listed ones.
        let m = Mappings::build(&[cfg("w", &[("a", 50), ("w", 50)])]).unwrap();
        for _ in 0..200 {
            let s = m.select(b"w");
            assert!(s.as_deref() == Some(b"a".as_slice()) || s.as_deref() == Some(b"w".as_slice()));
        }
    }

    #[test]
    fn destination_checks() {
        assert!(check_mapping_dest("a.*", "b.$1").is_ok());
        assert!(
            check_mapping_dest("a.*", "b").is_ok(),
            "dropping a wildcard is allowed"
        );
        assert!(
            check_mapping_dest("a.*", "b.$2")
                .unwrap_err()
                .contains("out of range")
        );
        assert!(check_mapping_dest("a.*", "b.{{nope(1)}}").is_err());
        assert!(check_mapping_dest("a.*", "b.{{partition(3,1)}}").is_ok());
        assert!(check_mapping_dest("a.*", "b.{{partition(3,2)}}").is_err());
        assert!(
            check_mapping_dest("a.*", "b.{{left(1)}}")
                .unwrap_err()
                .contains("not enough")
        );
        assert!(check_mapping_dest("a.*", "b.{{split(1,a b)}}").is_err());
        assert!(check_mapping_dest("a", "b..c").is_err());
        // As nats-server 2.15.1: `Error adding mapping for "a.*" to "b.*" : invalid subject`.
        assert_eq!(
            check_mapping_dest("a.*", "b.*"),
            Err("invalid subject".into())
        );
        assert_eq!(
            check_mapping_dest("a.>", "b.x"),
            Err("invalid subject".into())
        );
        assert_eq!(
            check_mapping_dest("a.*", "b.>"),
            Err("invalid subject".into())
        );
        assert!(check_mapping_dest("a.>", "b.>").is_ok());
    }
}
