//! Message body templates, as `nats pub`/`nats reply` understand them:
//! `{{Count}}`, `{{TimeStamp}}`, `{{Unix}}`, `{{UnixNano}}`, `{{Time}}`,
//! `{{ID}}`, `{{Random MIN MAX}}` (random text of MIN..=MAX characters) and,
//! for replies, `{{Request}}` (the request body).
//!
//! Parsing happens once up front so that a typo is a usage error before
//! anything is sent.

use rand::RngExt;

use crate::error::{Error, Result};

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Count,
    TimeStamp,
    Unix,
    UnixNano,
    Time,
    Id,
    Random(usize, usize),
    Request,
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    parts: Vec<Part>,
}

/// Values a template is expanded with.
#[derive(Debug, Default)]
pub struct Vars<'a> {
    /// 1-based message number.
    pub count: u64,
    /// The request body (replies only).
    pub request: &'a [u8],
}

impl Template {
    /// Parses `src`; `allow_request` admits `{{Request}}`.
    pub fn parse(src: &str, allow_request: bool) -> Result<Template> {
        let mut parts = Vec::new();
        let mut rest = src;
        while let Some(start) = rest.find("{{") {
            let Some(len) = rest[start + 2..].find("}}") else {
                return Err(Error::Usage(format!(
                    "template {src:?}: '{{{{' without a closing '}}}}'"
                )));
            };
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_string()));
            }
            let inner = rest[start + 2..start + 2 + len].trim();
            let words: Vec<&str> = inner.split_whitespace().collect();
            let part = match words.as_slice() {
                ["Count"] | [".Count"] => Part::Count,
                ["TimeStamp"] | [".TimeStamp"] => Part::TimeStamp,
                ["Unix"] | [".Unix"] => Part::Unix,
                ["UnixNano"] | [".UnixNano"] => Part::UnixNano,
                ["Time"] | [".Time"] => Part::Time,
                ["ID"] | [".ID"] => Part::Id,
                ["Request"] | [".Request"] if allow_request => Part::Request,
                ["Random", a, b] => {
                    let lo: usize = a.parse().map_err(|_| bad(src, inner))?;
                    let hi: usize = b.parse().map_err(|_| bad(src, inner))?;
                    if lo > hi || hi > 1 << 20 {
                        return Err(bad(src, inner));
                    }
                    Part::Random(lo, hi)
                }
                _ => return Err(bad(src, inner)),
            };
            parts.push(part);
            rest = &rest[start + 2 + len + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// Expands the template.
    pub fn render(&self, vars: &Vars<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        let now = time::OffsetDateTime::now_utc();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.extend_from_slice(t.as_bytes()),
                Part::Count => out.extend_from_slice(vars.count.to_string().as_bytes()),
                Part::TimeStamp => out.extend_from_slice(crate::output::now_rfc3339().as_bytes()),
                Part::Unix => out.extend_from_slice(now.unix_timestamp().to_string().as_bytes()),
                Part::UnixNano => {
                    out.extend_from_slice(now.unix_timestamp_nanos().to_string().as_bytes())
                }
                Part::Time => out.extend_from_slice(
                    format!("{:02}:{:02}:{:02}", now.hour(), now.minute(), now.second()).as_bytes(),
                ),
                Part::Id => {
                    let mut rng = rand::rng();
                    let id: String = (0..22)
                        .map(|_| {
                            const A: &[u8] =
                                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
                            A[rng.random_range(0..A.len())] as char
                        })
                        .collect();
                    out.extend_from_slice(id.as_bytes());
                }
                Part::Random(lo, hi) => {
                    let mut rng = rand::rng();
                    let n = rng.random_range(*lo..=*hi);
                    for _ in 0..n {
                        out.push(rng.random_range(b'a'..=b'z'));
                    }
                }
                Part::Request => out.extend_from_slice(vars.request),
            }
        }
        out
    }
}

fn bad(src: &str, inner: &str) -> Error {
    Error::Usage(format!(
        "template {src:?}: unknown placeholder {{{{{inner}}}}} (use Count, TimeStamp, Unix, UnixNano, Time, ID, Random MIN MAX{})",
        ", Request in replies"
    ))
}

/// Parses `-H key:value` header arguments.
pub fn parse_header(arg: &str) -> Result<(String, String), String> {
    match arg.split_once(':') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("invalid header {arg:?}: expected KEY:VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let t = Template::parse("n={{Count}} {{ Count }}!", false).expect("parse");
        assert_eq!(
            t.render(&Vars {
                count: 7,
                request: b""
            }),
            b"n=7 7!"
        );
        assert!(Template::parse("{{Nope}}", false).is_err());
        assert!(Template::parse("{{Request}}", false).is_err());
        assert!(Template::parse("{{Count", false).is_err());
        let r = Template::parse("re: {{Request}}", true).expect("parse");
        assert_eq!(
            r.render(&Vars {
                count: 1,
                request: b"hi"
            }),
            b"re: hi"
        );
        let rnd = Template::parse("{{Random 3 3}}", false).expect("parse");
        assert_eq!(rnd.render(&Vars::default()).len(), 3);
        let plain = Template::parse("plain", false).expect("parse");
        assert_eq!(plain.render(&Vars::default()), b"plain");
        assert!(parse_header("a:b").is_ok());
        assert!(parse_header("ab").is_err());
    }
}
