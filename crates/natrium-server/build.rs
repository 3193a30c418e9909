//! Generates the JetStream API error table (`ErrorId` and the `ApiError` constructors)
//! from `data/jetstream-errors.json`, a verbatim copy of nats-server's `server/errors.json`.
//!
//! Why generate instead of hand-writing: clients match on `err_code`, so every one of the
//! ~230 entries must carry exactly nats-server's `code`/`err_code`/description. Keeping the
//! upstream JSON file as the single source means an upgrade is a file copy, and the checks
//! below (unique codes, unique names) catch a bad copy at build time.
//!
//! Naming follows nats-server's own generator (`server/errors_gen.go`): the Go constructor
//! `NewJSStreamNotFoundError` for constant `JSStreamNotFoundErr` becomes the Rust
//! constructor `ApiError::stream_not_found()` and the variant `ErrorId::StreamNotFound`.
//! Description placeholders (`{err}`, `{stream}`, ...) become constructor parameters in
//! the same (alphabetical) order as the Go function's parameters.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

const TABLE: &str = "data/jetstream-errors.json";

/// One row of the table, with the names derived from its constant.
struct Entry {
    constant: String,
    code: u64,
    err_code: u64,
    description: String,
    comment: String,
    /// `stream_not_found`
    snake: String,
    /// `StreamNotFound`
    camel: String,
    /// `["prefix", "subject"]`, sorted like the Go generator sorts them.
    tags: Vec<String>,
}

fn main() {
    println!("cargo:rerun-if-changed={TABLE}");
    println!("cargo:rerun-if-changed=build.rs");

    let text = std::fs::read_to_string(TABLE).unwrap_or_else(|e| panic!("reading {TABLE}: {e}"));
    let rows: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {TABLE}: {e}"));
    let rows = rows
        .as_array()
        .unwrap_or_else(|| panic!("{TABLE}: expected a JSON array"));

    let mut entries = Vec::with_capacity(rows.len());
    for row in rows {
        let field = |name: &str| -> &serde_json::Value {
            row.get(name)
                .unwrap_or_else(|| panic!("{TABLE}: entry without `{name}`: {row}"))
        };
        let text_field = |name: &str| -> String {
            field(name)
                .as_str()
                .unwrap_or_else(|| panic!("{TABLE}: `{name}` is not a string: {row}"))
                .to_string()
        };
        let num_field = |name: &str| -> u64 {
            field(name)
                .as_u64()
                .unwrap_or_else(|| panic!("{TABLE}: `{name}` is not an integer: {row}"))
        };
        let constant = text_field("constant");
        let description = text_field("description");
        let err_code = num_field("error_code");
        assert!(
            err_code <= u64::from(u16::MAX),
            "{constant}: error_code overflows u16"
        );
        let code = num_field("code");
        assert!(
            code <= u64::from(u16::MAX),
            "{constant}: code overflows u16"
        );
        let snake = snake_case(&base_name(&constant));
        let camel = snake.split('_').map(capitalize).collect::<String>();
        entries.push(Entry {
            tags: placeholders(&description),
            comment: row
                .get("comment")
                .and_then(|c| c.as_str())
                .unwrap_or_default()
                .to_string(),
            constant,
            code,
            err_code,
            description,
            snake,
            camel,
        });
    }
    entries.sort_by_key(|e| e.err_code);

    let mut seen_codes = BTreeSet::new();
    let mut seen_names = BTreeSet::new();
    for e in &entries {
        assert!(
            seen_codes.insert(e.err_code),
            "duplicate error_code {}",
            e.err_code
        );
        assert!(
            seen_names.insert(e.snake.clone()),
            "duplicate name {}",
            e.snake
        );
    }

    let out = generate(&entries);
    let dest =
        PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_else(|| panic!("OUT_DIR unset")))
            .join("jetstream_errors.rs");
    std::fs::write(&dest, out).unwrap_or_else(|e| panic!("writing {}: {e}", dest.display()));
}

/// `JSStreamNotFoundErr` -> `StreamNotFound`, exactly like `funcNameForConstant` in
/// nats-server's `errors_gen.go` (minus the `New` prefix, `Error` suffix and `JS`).
fn base_name(constant: &str) -> String {
    let mut name = if let Some(s) = constant.strip_suffix("ErrF") {
        s.to_string()
    } else if let Some(s) = constant.strip_suffix("Err") {
        s.to_string()
    } else if let Some(s) = constant.strip_suffix("ErrorF") {
        format!("{s}Error")
    } else if let Some(s) = constant.strip_suffix('F') {
        s.to_string()
    } else {
        constant.to_string()
    };
    if let Some(s) = name.strip_suffix("Error") {
        name = s.to_string();
    }
    name.strip_prefix("JS").unwrap_or(&name).to_string()
}

/// `StreamWrongLastMsgID` -> `stream_wrong_last_msg_id`, `InvalidJSON` -> `invalid_json`.
fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower)
            {
                out.push('_');
            }
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

fn capitalize(word: &str) -> String {
    let mut c = word.chars();
    match c.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

/// The `{tag}` names in a description, sorted (the Go generator sorts them too, which
/// fixes the parameter order of the constructors).
fn placeholders(description: &str) -> Vec<String> {
    let mut tags = BTreeSet::new();
    let mut rest = description;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        if close > 0 {
            tags.insert(after[..close].to_string());
        }
        rest = &after[close + 1..];
    }
    tags.into_iter().collect()
}

/// Rust identifiers that a placeholder could collide with.
fn param_name(tag: &str) -> String {
    match tag {
        "type" | "match" | "ref" | "self" | "mod" | "use" | "fn" | "in" | "loop" => {
            format!("{tag}_")
        }
        _ => tag.to_string(),
    }
}

fn doc_line(e: &Entry) -> String {
    let mut s = format!(
        "`{}` (err_code {}, code {}): `{}`",
        e.constant,
        e.err_code,
        e.code,
        e.description.replace('`', "'")
    );
    if !e.comment.is_empty() {
        let _ = write!(s, " ({})", e.comment.replace(['`', '[', ']'], "'"));
    }
    s
}

fn generate(entries: &[Entry]) -> String {
    let mut o = String::new();
    o.push_str("// Generated by build.rs from data/jetstream-errors.json. Do not edit.\n\n");

    o.push_str(
        "/// Every JetStream API error nats-server defines, one variant per `constant` of\n",
    );
    o.push_str("/// `errors.json`. The discriminant is the `err_code` clients match on.\n");
    o.push_str("#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]\n");
    o.push_str("#[repr(u16)]\npub enum ErrorId {\n");
    for e in entries {
        let _ = writeln!(o, "    /// {}", doc_line(e));
        let _ = writeln!(o, "    {} = {},", e.camel, e.err_code);
    }
    o.push_str("}\n\n");

    o.push_str("impl ErrorId {\n");
    o.push_str("    /// All entries, ordered by `err_code`.\n");
    let _ = writeln!(o, "    pub const ALL: [ErrorId; {}] = [", entries.len());
    for e in entries {
        let _ = writeln!(o, "        ErrorId::{},", e.camel);
    }
    o.push_str("    ];\n\n");

    o.push_str("    /// The JetStream error code (`err_code` in responses).\n");
    o.push_str("    pub const fn err_code(self) -> u16 {\n        self as u16\n    }\n\n");

    o.push_str("    /// The HTTP-like status (`code` in responses).\n");
    o.push_str("    pub const fn code(self) -> u16 {\n        match self {\n");
    for e in entries {
        let _ = writeln!(o, "            ErrorId::{} => {},", e.camel, e.code);
    }
    o.push_str("        }\n    }\n\n");

    o.push_str("    /// The description template, with `{placeholders}` unsubstituted.\n");
    o.push_str("    pub const fn template(self) -> &'static str {\n        match self {\n");
    for e in entries {
        let _ = writeln!(
            o,
            "            ErrorId::{} => {:?},",
            e.camel, e.description
        );
    }
    o.push_str("        }\n    }\n\n");

    o.push_str("    /// The Go constant name in nats-server (`JSStreamNotFoundErr`).\n");
    o.push_str("    pub const fn constant(self) -> &'static str {\n        match self {\n");
    for e in entries {
        let _ = writeln!(o, "            ErrorId::{} => {:?},", e.camel, e.constant);
    }
    o.push_str("        }\n    }\n\n");

    o.push_str("    /// The placeholder names of the template, in constructor-parameter order.\n");
    o.push_str(
        "    pub const fn placeholders(self) -> &'static [&'static str] {\n        match self {\n",
    );
    for e in entries {
        let tags: Vec<String> = e.tags.iter().map(|t| format!("{t:?}")).collect();
        let _ = writeln!(
            o,
            "            ErrorId::{} => &[{}],",
            e.camel,
            tags.join(", ")
        );
    }
    o.push_str("        }\n    }\n\n");

    o.push_str("    /// Looks an entry up by its `err_code`.\n");
    o.push_str("    pub const fn from_err_code(err_code: u16) -> Option<ErrorId> {\n        match err_code {\n");
    for e in entries {
        let _ = writeln!(
            o,
            "            {} => Some(ErrorId::{}),",
            e.err_code, e.camel
        );
    }
    o.push_str("            _ => None,\n        }\n    }\n}\n\n");

    o.push_str("impl ApiError {\n");
    for e in entries {
        let _ = writeln!(o, "    /// {}", doc_line(e));
        if e.tags.is_empty() {
            let _ = writeln!(o, "    pub fn {}() -> ApiError {{", e.snake);
            let _ = writeln!(o, "        ApiError::from_id(ErrorId::{})", e.camel);
        } else {
            let params: Vec<String> = e
                .tags
                .iter()
                .map(|t| format!("{}: impl ::core::fmt::Display", param_name(t)))
                .collect();
            let _ = writeln!(
                o,
                "    pub fn {}({}) -> ApiError {{",
                e.snake,
                params.join(", ")
            );
            let args: Vec<String> = e
                .tags
                .iter()
                .map(|t| format!("({:?}, &{} as &dyn ::core::fmt::Display)", t, param_name(t)))
                .collect();
            let _ = writeln!(
                o,
                "        ApiError::from_template(ErrorId::{}, &[{}])",
                e.camel,
                args.join(", ")
            );
        }
        o.push_str("    }\n\n");
    }
    o.push_str("}\n");
    o
}
