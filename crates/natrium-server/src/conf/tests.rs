//! Tests for the config parser: the whole grammar, nats-server's traps (checked against
//! the real nats-server 2.15.1 binary), error positions, includes, variables, the typed
//! accessors, and a bounded garbage-input loop that must never panic.

use super::*;
use std::path::PathBuf;
use std::time::Duration;

/// An environment with nothing set.
fn no_env(_: &str) -> Option<String> {
    None
}

/// Parses `text` with an empty environment, panicking with the error on failure.
fn parse(text: &str) -> Map {
    parse_str_with_env(text, &no_env).unwrap_or_else(|e| panic!("{text:?} failed: {e}"))
}

/// Parses `text` with an empty environment, expecting an error.
fn parse_err(text: &str) -> ConfError {
    match parse_str_with_env(text, &no_env) {
        Ok(m) => panic!("{text:?} should fail but parsed as {m:?}"),
        Err(e) => e,
    }
}

/// Parses `text` with the given environment.
fn parse_env(text: &str, vars: &[(&str, &str)]) -> Result<Map, ConfError> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let env = move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    parse_str_with_env(text, &env)
}

/// The value of `key` (case-insensitive) in `map`.
fn get<'a>(map: &'a Map, key: &str) -> &'a Value {
    &map.get(key)
        .unwrap_or_else(|| panic!("no key {key:?} in {map:?}"))
        .value
        .value
}

/// The single value of the single-entry document `x: <value>`.
fn value_of(value_text: &str) -> Value {
    get(&parse(&format!("x: {value_text}")), "x").clone()
}

/// Shorthand for a string value.
fn s(text: &str) -> Value {
    Value::String(text.to_string())
}

/// The elements of an array value, without positions.
fn items(v: &Value) -> Vec<Value> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v:?}"))
        .iter()
        .map(|i| i.value.clone())
        .collect()
}

/// The directory of the on-disk fixtures.
fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/conf_fixtures")
}

/// A fresh, empty directory under the system temp dir.
fn temp_dir(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("natrium-conf-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// A spanned value for the accessor tests.
fn spanned(value: Value) -> Spanned {
    Spanned {
        value,
        pos: Pos {
            file: None,
            line: 3,
            column: 7,
        },
    }
}

// ---------------------------------------------------------------------------------------
// Keys, separators, entries

#[test]
fn key_value_separators_are_equivalent() {
    for text in [
        "port: 4222",
        "port = 4222",
        "port 4222",
        "port:4222",
        "port=4222",
        "port\t4222",
    ] {
        assert_eq!(get(&parse(text), "port"), &Value::Int(4222), "{text:?}");
    }
}

#[test]
fn key_and_value_may_be_split_by_newlines_without_separator() {
    // nats-server skips all whitespace between a top-level key and `=`/`:` or the value.
    assert_eq!(get(&parse("port\n\n  4222\n"), "port"), &Value::Int(4222));
    assert_eq!(get(&parse("port\n= 4222\n"), "port"), &Value::Int(4222));
}

#[test]
fn newline_right_after_top_level_separator_is_an_error() {
    let e = parse_err("port =\n 4222\n");
    assert_eq!(e.message, "Expected value but found new line");
    assert_eq!((e.line, e.column), (1, 7));
    assert_eq!(e.kind, ConfErrorKind::Syntax);
}

#[test]
fn entries_separated_by_newline_semicolon_comma() {
    let m = parse("a: 1; b: 2, c: 3\nd: 4;\ne: 5,\n");
    assert_eq!(m.keys().collect::<Vec<_>>(), ["a", "b", "c", "d", "e"]);
    assert_eq!(get(&m, "e"), &Value::Int(5));
    let m = parse("http_port = 18230; server_name x");
    assert_eq!(get(&m, "server_name"), &s("x"));
}

#[test]
fn two_entries_on_a_line_need_a_separator() {
    let e = parse_err("port: 4222 server_name: x\n");
    assert_eq!(
        e.message,
        "Expected a top-level value to end with a new line, comment or EOF, but got 's' instead."
    );
    assert_eq!((e.line, e.column), (1, 12));
}

#[test]
fn doubled_separator_is_an_error() {
    // nats-server turns `;server_name` into a (then unknown) key; we refuse it outright.
    let e = parse_err("port: 4222;;server_name: x\n");
    assert_eq!((e.line, e.column), (1, 12));
}

#[test]
fn key_without_value_is_invalid() {
    let e = parse_err("port: 1\nfoo\n");
    assert!(e.message.starts_with("config is invalid"), "{e}");
    assert_eq!((e.line, e.column), (2, 1));
}

#[test]
fn separator_then_end_of_file_gives_empty_string() {
    // As in nats-server (`server_name:` at EOF is valid and empty).
    assert_eq!(get(&parse("server_name:"), "server_name"), &s(""));
    assert_eq!(get(&parse("a: ;b: 2"), "a"), &s(""));
}

#[test]
fn quoted_keys() {
    let m = parse("\"a b\": 1\n'x.y' = 2\n\"include\" foo\n\"\": 3\n");
    assert_eq!(get(&m, "a b"), &Value::Int(1));
    assert_eq!(get(&m, "x.y"), &Value::Int(2));
    // A quoted `include` is an ordinary key.
    assert_eq!(get(&m, "include"), &s("foo"));
    assert_eq!(get(&m, ""), &Value::Int(3));
    let e = parse_err("\"abc: 1\n");
    assert_eq!(e.kind, ConfErrorKind::Syntax);
}

#[test]
fn keys_keep_spelling_and_lookup_ignores_case() {
    let m = parse("Max_Payload: 10\n");
    let entry = m.get("max_payload").expect("case-insensitive lookup");
    assert_eq!(entry.key, "Max_Payload");
    assert!(m.get_exact("max_payload").is_none());
    assert!(keys_equal_ignore_case("ÄB", "äb"));
}

#[test]
fn duplicate_key_last_definition_wins() {
    let m = parse("a: 1\nb: 2\na: 3\n");
    assert_eq!(m.len(), 2);
    assert_eq!(get(&m, "a"), &Value::Int(3));
    assert_eq!(m.keys().collect::<Vec<_>>(), ["b", "a"]);
    assert_eq!(m.get("a").map(|e| e.key_pos.line), Some(3));
    // Different case: both kept, the later one wins for case-insensitive lookups.
    let m = parse("Port: 1\nport: 2\n");
    assert_eq!(m.len(), 2);
    assert_eq!(get(&m, "PORT"), &Value::Int(2));
}

#[test]
fn key_and_value_positions() {
    let m = parse("a: 1\n  bb = \"x\"\n\tc {\n    d: [1, 2 ]\n  }\n");
    let b = m.get("bb").expect("bb");
    assert_eq!((b.key_pos.line, b.key_pos.column), (2, 3));
    assert_eq!((b.value.pos.line, b.value.pos.column), (2, 8));
    let c = m.get("c").expect("c");
    assert_eq!((c.key_pos.line, c.key_pos.column), (3, 2));
    assert_eq!((c.value.pos.line, c.value.pos.column), (3, 4));
    let d = c.value.value.as_map().and_then(|m| m.get("d")).expect("d");
    assert_eq!((d.value.pos.line, d.value.pos.column), (4, 8));
    let second = &d.value.value.as_array().expect("array")[1];
    assert_eq!((second.pos.line, second.pos.column), (4, 12));
    assert_eq!(b.key_pos.file, None);
}

// ---------------------------------------------------------------------------------------
// Outer braces and stray braces

#[test]
fn whole_file_may_be_wrapped_in_braces() {
    let m = parse("{\n  port: 4222\n  server_name = x;\n}\n");
    assert_eq!(get(&m, "port"), &Value::Int(4222));
    assert_eq!(get(&m, "server_name"), &s("x"));
    let m = parse("{ port: 4222, }\nserver_name: y\n");
    assert_eq!(get(&m, "server_name"), &s("y"));
    let m = parse("{ { port: 4222 } }");
    assert_eq!(get(&m, "port"), &Value::Int(4222));
}

#[test]
fn stray_closing_brace_tolerated_only_at_the_end() {
    // nats-server accepts these two.
    assert_eq!(get(&parse("port: 4222\n}\n"), "port"), &Value::Int(4222));
    let m = parse("port: 4222 }\nserver_name: x\n");
    assert_eq!(get(&m, "server_name"), &s("x"));
    let e = parse_err("port: 1\n}\nserver_name: x\n");
    assert_eq!((e.line, e.column), (2, 1));
}

// ---------------------------------------------------------------------------------------
// Comments

#[test]
fn comments_anywhere_whitespace_is() {
    let text = "# head\n// also\nport: 4222 # trailing\nserver_name: x // trailing\n\
                auth { # in map\n  user: a // after value\n  # own line\n  pass: b\n}\n\
                list: [ # after bracket\n  a # after element\n  // own line\n  b\n]\n";
    let m = parse(text);
    assert_eq!(get(&m, "port"), &Value::Int(4222));
    assert_eq!(get(&m, "server_name"), &s("x"));
    let auth = get(&m, "auth").as_map().expect("map");
    assert_eq!(get(auth, "user"), &s("a"));
    assert_eq!(get(auth, "pass"), &s("b"));
    assert_eq!(items(get(&m, "list")), [s("a"), s("b")]);
}

#[test]
fn hash_in_value_position_is_part_of_the_value() {
    // Trap checked against nats-server: a comment cannot start where a value is expected,
    // and `#` does not end an unquoted value.
    assert_eq!(value_of("#x"), s("#x"));
    assert_eq!(value_of("4222#c"), s("4222#c"));
    assert_eq!(value_of("x#y"), s("x#y"));
}

#[test]
fn lone_slash_where_a_key_is_expected_is_an_error() {
    let e = parse_err("port: 1\n/x: 2\n");
    assert_eq!((e.line, e.column), (2, 1));
}

// ---------------------------------------------------------------------------------------
// Maps

#[test]
fn map_forms_and_nesting() {
    for text in [
        "auth { user: a }",
        "auth: { user: a }",
        "auth = { user: a }",
        "auth {\n user: a\n}",
        "auth\n{\n user = a;\n}",
    ] {
        let m = parse(text);
        let auth = get(&m, "auth")
            .as_map()
            .unwrap_or_else(|| panic!("{text:?}"));
        assert_eq!(get(auth, "user"), &s("a"), "{text:?}");
    }
    let m = parse("a { b { c { d: 1, e: [ { f: 2 } ] } } }");
    let c = get(
        get(get(&m, "a").as_map().expect("a"), "b")
            .as_map()
            .expect("b"),
        "c",
    );
    let c = c.as_map().expect("c");
    assert_eq!(get(c, "d"), &Value::Int(1));
    let e = items(get(c, "e"));
    assert_eq!(
        get(e[0].as_map().expect("map in array"), "f"),
        &Value::Int(2)
    );
    assert_eq!(get(&parse("x {}"), "x"), &Value::Map(Map::new()));
}

#[test]
fn map_entries_separators_and_newline_after_separator() {
    let m = parse("auth {\n user:\n a\n password =\n b, token: c; x: 1,\n}\n");
    let auth = get(&m, "auth").as_map().expect("map");
    assert_eq!(get(auth, "user"), &s("a"));
    assert_eq!(get(auth, "password"), &s("b"));
    assert_eq!(get(auth, "token"), &s("c"));
    assert_eq!(get(auth, "x"), &Value::Int(1));
}

#[test]
fn map_errors() {
    let e = parse_err("auth { user: a password: b }");
    assert_eq!(
        e.message,
        "Expected a map value terminator ',' or a map terminator '}', but got 'p' instead."
    );
    assert_eq!((e.line, e.column), (1, 16));

    // nats-server silently misfiles this one; we refuse it.
    let e = parse_err("auth { user: }");
    assert_eq!((e.line, e.column), (1, 14));

    let e = parse_err("auth { user: a,, password: b }");
    assert_eq!((e.line, e.column), (1, 16));

    let e = parse_err("auth {\n user: a\n");
    assert_eq!(e.message, "Unexpected EOF processing map.");
    assert_eq!(e.line, 3);

    let e = parse_err("auth { ] }");
    assert_eq!(e.message, "Unexpected array end ']' processing map.");

    let e = parse_err("auth { : a }");
    assert_eq!(e.message, "Unexpected key separator ':'.");

    let e = parse_err("auth { user: , }");
    assert_eq!(e.message, "Unexpected map value terminator ','.");

    // A brace glued to the key makes it part of the key (as in nats-server).
    let e = parse_err("authorization{\n user: a\n}\n");
    assert_eq!(e.line, 2);
}

// ---------------------------------------------------------------------------------------
// Arrays

#[test]
fn arrays_of_everything() {
    let m = parse(
        "a: [1, \"two\", 3.5, true, [x, y], { k: v }]\n\
         b: [\n  one\n  two,\n  three,\n]\n\
         c: []\n\
         d: [ 1, 2 ]\n",
    );
    let a = items(get(&m, "a"));
    assert_eq!(
        a[..4],
        [
            Value::Int(1),
            s("two"),
            Value::Float(3.5),
            Value::Bool(true)
        ]
    );
    assert_eq!(items(&a[4]), [s("x"), s("y")]);
    assert_eq!(get(a[5].as_map().expect("map"), "k"), &s("v"));
    assert_eq!(items(get(&m, "b")), [s("one"), s("two"), s("three")]);
    assert_eq!(items(get(&m, "c")), Vec::<Value>::new());
    assert_eq!(items(get(&m, "d")), [Value::Int(1), Value::Int(2)]);
}

#[test]
fn integer_right_before_closing_bracket() {
    // nats-server glues the `]` into a string and fails on `[1,2]`; we take the evident
    // meaning. Floats and negatives already worked there.
    assert_eq!(items(&value_of("[1,2]")), [Value::Int(1), Value::Int(2)]);
    assert_eq!(
        items(&value_of("[-1,2.5]")),
        [Value::Int(-1), Value::Float(2.5)]
    );
    // Outside arrays the nats-server behaviour stays: `1]` is the string "1]".
    assert_eq!(value_of("1]"), s("1]"));
}

#[test]
fn size_integer_before_closing_bracket_is_a_string_like_nats_server() {
    // Checked with nats-server: `[1k]` gives the string "1k" while `[1k, 2]` gives 1000.
    assert_eq!(items(&value_of("[1k]")), [s("1k")]);
    assert_eq!(
        items(&value_of("[1k, 2 ]")),
        [Value::Int(1000), Value::Int(2)]
    );
}

#[test]
fn array_errors() {
    let e = parse_err("x = [a\n, b]");
    assert_eq!(e.message, "Unexpected array value terminator ','.");
    assert_eq!((e.line, e.column), (2, 1));
    let e = parse_err("x = [,a]");
    assert_eq!((e.line, e.column), (1, 6));
    let e = parse_err("x = [a,,b]");
    assert_eq!((e.line, e.column), (1, 8));
    let e = parse_err("x = [ a b ]");
    assert_eq!(
        e.message,
        "Expected an array value terminator ',' or an array terminator ']', but got 'b' instead."
    );
    assert_eq!((e.line, e.column), (1, 9));
    let e = parse_err("x = [ a,\n");
    assert_eq!(e.message, "Unexpected EOF processing array.");
}

// ---------------------------------------------------------------------------------------
// Strings

#[test]
fn double_quoted_escapes() {
    assert_eq!(
        value_of(r#""a\tb\nc\rd\"e\\f\x41\x7a""#),
        s("a\tb\nc\rd\"e\\fAz")
    );
    assert_eq!(value_of(r#""\xc3\xa9""#), s("é"));
    assert_eq!(value_of("\"multi\nline\""), s("multi\nline"));
    assert_eq!(value_of("\"\""), s(""));
    // Quoted words are never booleans, numbers or variables.
    assert_eq!(value_of("\"true\""), s("true"));
    assert_eq!(value_of("\"12\""), s("12"));
    assert_eq!(value_of("\"$pv\""), s("$pv"));
}

#[test]
fn double_quoted_escape_errors() {
    let e = parse_err("a: 1\nx: \"ab\\q\"\n");
    assert_eq!(
        e.message,
        "Invalid escape character 'q'. Only the following escape characters are allowed: \
         \\xXX, \\t, \\n, \\r, \\\", \\\\."
    );
    assert_eq!((e.line, e.column), (2, 8));
    let e = parse_err("x: \"\\x4\"\n");
    assert_eq!(
        e.message,
        "Expected two hexadecimal digits after '\\x', but got '4\"'"
    );
    let e = parse_err("x: \"\\xZZ\"");
    assert_eq!(
        e.message,
        "Expected two hexadecimal digits after '\\x', but got 'ZZ'"
    );
    let e = parse_err("x: \"a\\x\"\n");
    assert_eq!(
        e.message,
        "Expected two hexadecimal digits after '\\x', but hit end of line"
    );
    let e = parse_err("x: \"\\xff\"");
    assert!(e.message.contains("UTF-8"), "{e}");
    let e = parse_err("x: \"abc\n");
    assert!(e.message.starts_with("Unexpected EOF."), "{e}");
    assert_eq!(e.line, 2);
    // Something glued after the closing quote.
    let e = parse_err("x: \"x\"y\n");
    assert_eq!((e.line, e.column), (1, 7));
}

#[test]
fn single_quoted_strings_are_raw() {
    assert_eq!(value_of(r"'a\tb\q'"), s(r"a\tb\q"));
    assert_eq!(value_of("'line1\nline2'"), s("line1\nline2"));
    assert_eq!(value_of("'$NOT_A_VAR'"), s("$NOT_A_VAR"));
    let e = parse_err("x: 'abc");
    assert!(e.message.starts_with("Unexpected EOF."), "{e}");
}

#[test]
fn unquoted_strings() {
    for text in [
        "127.0.0.1:4222",
        "nats://h:1",
        "nats://user:pw@host:4222/x?y=z",
        "/tmp/js",
        "2s",
        "10ms",
        "1m30s",
        "1h",
        "ab$c",
        "a=b:c",
        "x{y",
        "ab\"c\"",
        "1.2.3",
        "-1.2.3",
        "12abc",
        "1Ghz",
        "3Mbs",
        "1kbx",
        "0x10",
        "+5",
        "1_000",
        "héllo",
    ] {
        assert_eq!(value_of(text), s(text), "{text:?}");
    }
}

#[test]
fn unquoted_string_terminators_and_escapes() {
    let m = parse("a: foo;b: bar,c: baz\nd { e: qux}\n");
    assert_eq!(get(&m, "a"), &s("foo"));
    assert_eq!(get(&m, "b"), &s("bar"));
    assert_eq!(get(&m, "c"), &s("baz"));
    assert_eq!(get(get(&m, "d").as_map().expect("map"), "e"), &s("qux"));
    // Escapes are processed in unquoted strings too (nats-server does).
    assert_eq!(value_of(r"a\tb"), s("a\tb"));
    assert_eq!(value_of(r"a\x41"), s("aA"));
    let e = parse_err(r"x: C:\path");
    assert!(e.message.starts_with("Invalid escape character 'p'"), "{e}");
    // A single quote ends an unquoted value and is dropped; the result is never a boolean.
    assert_eq!(value_of("true'"), s("true"));
    let e = parse_err("x: abc'def\n");
    assert_eq!((e.line, e.column), (1, 8));
    // Only space and tab end a value: a no-break space is part of it.
    assert_eq!(value_of("a\u{a0}b"), s("a\u{a0}b"));
    let e = parse_err("x: foo bar\n");
    assert_eq!((e.line, e.column), (1, 8));
}

#[test]
fn variables_are_not_interpolated_inside_strings() {
    // Checked with nats-server: this is a parse error, not an expansion.
    let e = parse_err("listen: 127.0.0.1:$PORT\n");
    assert_eq!(
        e.message,
        "Expected a top-level value to end with a new line, comment or EOF, but got '$' instead."
    );
    assert_eq!((e.line, e.column), (1, 19));
    // When the `$` is not right after an IP-like prefix it is just part of the string.
    assert_eq!(value_of("nats://h:$PORT"), s("nats://h:$PORT"));
}

#[test]
fn block_strings() {
    assert_eq!(value_of("(\nline1\n  line2\n)\n"), s("\nline1\n  line2\n"));
    assert_eq!(value_of("(abc\nxyz\n)\n"), s("abc\nxyz\n"));
    // A `)` that is not alone on its line does not end the block.
    assert_eq!(value_of("(\nxyz\n  )\n)\n"), s("\nxyz\n  )\n"));
    assert_eq!(value_of("(\na ) b\n)x\n)\n"), s("\na ) b\n)x\n"));
    // Closing at end of file: nats-server keeps the `)` in the value; we do not.
    assert_eq!(value_of("(\nxyz\n)"), s("\nxyz\n"));
    // CRLF line ends (nats-server never finds the end of such a block).
    assert_eq!(value_of("(\r\nxyz\r\n)\r\n"), s("\r\nxyz\r\n"));
    let m = parse("pem (\n-----BEGIN-----\nAAA\n-----END-----\n)\nport: 1\n");
    assert_eq!(
        get(&m, "pem"),
        &s("\n-----BEGIN-----\nAAA\n-----END-----\n")
    );
    assert_eq!(get(&m, "port"), &Value::Int(1));
    let e = parse_err("x: (\nabc\n");
    assert!(
        e.message.starts_with("Unexpected EOF processing block."),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------
// Booleans, numbers, dates

#[test]
fn booleans_any_case() {
    for (text, want) in [
        ("true", true),
        ("TRUE", true),
        ("yes", true),
        ("Yes", true),
        ("on", true),
        ("ON", true),
        ("false", false),
        ("False", false),
        ("no", false),
        ("NO", false),
        ("off", false),
        ("oFf", false),
    ] {
        assert_eq!(value_of(text), Value::Bool(want), "{text:?}");
    }
    assert_eq!(value_of("truex"), s("truex"));
}

#[test]
fn integers() {
    assert_eq!(value_of("0"), Value::Int(0));
    assert_eq!(value_of("007"), Value::Int(7));
    assert_eq!(value_of("-12"), Value::Int(-12));
    assert_eq!(value_of("9223372036854775807"), Value::Int(i64::MAX));
    assert_eq!(value_of("-9223372036854775808"), Value::Int(i64::MIN));
    let e = parse_err("x: 99999999999999999999");
    assert_eq!(
        e.message,
        "integer '99999999999999999999' is out of the range"
    );
    assert_eq!((e.line, e.column), (1, 4));
}

#[test]
fn size_suffixes() {
    for (text, want) in [
        ("1k", 1_000),
        ("1K", 1_000),
        ("2m", 2_000_000),
        ("1G", 1_000_000_000),
        ("1g", 1_000_000_000),
        ("3t", 3_000_000_000_000),
        ("1p", 1_000_000_000_000_000),
        ("1e", 1_000_000_000_000_000_000),
        ("1kb", 1024),
        ("1KI", 1024),
        ("1KiB", 1024),
        ("2MB", 2_097_152),
        ("512MiB", 536_870_912),
        ("5Gi", 5_368_709_120),
        ("1tb", 1 << 40),
        ("1pib", 1 << 50),
        ("7EB", 7 << 60),
        ("-1k", -1_000),
        ("-2mb", -2_097_152),
    ] {
        assert_eq!(value_of(text), Value::Int(want), "{text:?}");
    }
}

#[test]
fn size_suffix_errors() {
    // nats-server wraps around silently here; we refuse.
    let e = parse_err("x: 8eb");
    assert_eq!(e.message, "integer '8eb' is out of the range");
    // nats-server silently drops the key for an unknown suffix combination.
    let e = parse_err("x: 2mbi");
    assert!(e.message.starts_with("invalid size suffix"), "{e}");
    assert_eq!((e.line, e.column), (1, 4));
}

#[test]
fn unquoted_two_m_is_mega_not_minutes() {
    // The famous trap: `ping_interval 2m` is two million (seconds, once mapped).
    let m = parse("ping_interval 2m\n");
    let v = m.get_value("ping_interval").expect("key");
    assert_eq!(v.value, Value::Int(2_000_000));
    let (d, warning) = duration(v, "ping_interval").expect("duration");
    assert_eq!(d, Duration::from_secs(2_000_000));
    assert!(warning.is_some());
}

#[test]
fn floats() {
    assert_eq!(value_of("1.5"), Value::Float(1.5));
    assert_eq!(value_of("-0.25"), Value::Float(-0.25));
    assert_eq!(value_of("0.5"), Value::Float(0.5));
    let e = parse_err("x: .5");
    assert_eq!(e.message, "Floats must start with a digit");
    let e = parse_err("x: -.5");
    assert_eq!(e.message, "Floats must start with a digit, not '.'.");
    let e = parse_err("x: 1.\n");
    assert_eq!(
        e.message,
        "Floats must have a digit after the '.', but got '\\n' instead."
    );
    let e = parse_err("x: 1.5k");
    assert_eq!((e.line, e.column), (1, 7));
    let e = parse_err("x: -");
    assert_eq!(e.message, "Expected a digit but got 'EOF'.");
    let e = parse_err("x: -5s");
    assert_eq!((e.line, e.column), (1, 6));
}

#[test]
fn dates() {
    let v = value_of("2006-01-02T15:04:05Z");
    let Value::Date(d) = v else {
        panic!("not a date: {v:?}")
    };
    assert_eq!(d.unix_timestamp(), 1_136_214_245);
    let e = parse_err("x: 2006-13-45T99:99:99Z");
    assert_eq!(
        e.message,
        "expected Zulu formatted DateTime, but got '2006-13-45T99:99:99Z'"
    );
    let e = parse_err("x: 2006-02-29T00:00:00Z");
    assert!(e.message.starts_with("expected Zulu"), "{e}");
    let e = parse_err("x: 2006-01-02T15:04:05\n");
    assert_eq!(
        e.message,
        "Expected 'Z' in ISO8601 datetime, but found '\\n' instead."
    );
    let e = parse_err("x: 12-34");
    assert_eq!(e.message, "All ISO8601 dates must be in full Zulu form.");
    let e = parse_err("x: 2006-0a");
    assert_eq!(
        e.message,
        "Expected digit in ISO8601 datetime, but found 'a' instead."
    );
}

// ---------------------------------------------------------------------------------------
// Variables

#[test]
fn variable_from_enclosing_maps_innermost_first() {
    let m = parse("pv: 5\nauth { pv: 6, timeout: $pv }\nport: $pv\n");
    assert_eq!(get(&m, "port"), &Value::Int(5));
    let auth = get(&m, "auth").as_map().expect("map");
    assert_eq!(get(auth, "timeout"), &Value::Int(6));
    assert!(m.get("pv").is_some_and(|e| e.used_as_variable));
    assert!(auth.get("pv").is_some_and(|e| e.used_as_variable));
    assert!(!m.get("port").is_some_and(|e| e.used_as_variable));
}

#[test]
fn variable_reaches_through_arrays_and_copies_structures() {
    let m = parse("T: abc\nlist: [$T, { a: $T }]\nM { k: 1 }\ncopy: $M\n");
    let list = items(get(&m, "list"));
    assert_eq!(list[0], s("abc"));
    assert_eq!(get(list[1].as_map().expect("map"), "a"), &s("abc"));
    assert_eq!(
        get(get(&m, "copy").as_map().expect("map"), "k"),
        &Value::Int(1)
    );
    assert!(m.get("M").is_some_and(|e| e.used_as_variable));
}

#[test]
fn variable_position_is_the_reference() {
    let m = parse("T: abc\n\nname:   $T\n");
    let v = m.get_value("name").expect("name");
    assert_eq!((v.pos.line, v.pos.column), (3, 9));
}

#[test]
fn variable_uses_latest_definition_and_exact_case() {
    let m = parse("T: abc\nT: def\nserver_name: $T\n");
    assert_eq!(get(&m, "server_name"), &s("def"));
    let e = parse_err("NAME: abc\nserver_name: $name\n");
    assert_eq!(
        e.message,
        "variable reference for 'name' on line 2 can not be found"
    );
    assert_eq!((e.line, e.column), (2, 14));
    assert_eq!(e.kind, ConfErrorKind::Variable);
}

#[test]
fn variable_must_be_defined_before_and_in_an_enclosing_map() {
    let e = parse_err("server_name: $name\nname: abc\n");
    assert_eq!(
        e.message,
        "variable reference for 'name' on line 1 can not be found"
    );
    let e = parse_err("x { y: 5 }\nport: $y\n");
    assert_eq!(
        e.message,
        "variable reference for 'y' on line 2 can not be found"
    );
    let e = parse_err("port: $\n");
    assert_eq!(
        e.message,
        "variable reference for '' on line 1 can not be found"
    );
}

#[test]
fn bcrypt_hashes_are_not_variables() {
    let hash = "$2a$11$W2zko751KUvVy59mUTWmpOdWjpEm5qhcCZRd05GjI/sSOT.xtiHyG";
    let m = parse(&format!("authorization {{ user: a, password: {hash} }}"));
    let auth = get(&m, "authorization").as_map().expect("map");
    assert_eq!(get(auth, "password"), &s(hash));
    // nats-server special-cases exactly `$2a$`; `$2b$` is an (unknown) variable.
    let e = parse_err("password: $2b$10$abc\n");
    assert_eq!(
        e.message,
        "variable reference for '2b$10$abc' on line 1 can not be found"
    );
}

#[test]
fn escaped_or_quote_ended_dollar_words_are_strings() {
    assert_eq!(value_of(r"$a\tb"), s("$a\tb"));
    assert_eq!(value_of("$abc'"), s("$abc"));
}

// ---------------------------------------------------------------------------------------
// Environment

#[test]
fn environment_values_are_parsed_as_config_values() {
    let m = parse_env("max_pending: $MAXPEND\n", &[("MAXPEND", "12MB")]).expect("parse");
    assert_eq!(get(&m, "max_pending"), &Value::Int(12_582_912));
    let m = parse_env(
        "a: $S\nb: $Q\nc: $M\nd: $L\ne: $E\nf: $C\ng: $B\n",
        &[
            ("S", "hello"),
            ("Q", "\"quoted value\""),
            ("M", "{ k: 1 }"),
            ("L", "[1, 2 ]"),
            ("E", ""),
            ("C", "7 # comment"),
            ("B", "yes"),
        ],
    )
    .expect("parse");
    assert_eq!(get(&m, "a"), &s("hello"));
    assert_eq!(get(&m, "b"), &s("quoted value"));
    assert_eq!(
        get(get(&m, "c").as_map().expect("map"), "k"),
        &Value::Int(1)
    );
    assert_eq!(items(get(&m, "d")), [Value::Int(1), Value::Int(2)]);
    assert_eq!(get(&m, "e"), &s(""));
    assert_eq!(get(&m, "f"), &Value::Int(7));
    assert_eq!(get(&m, "g"), &Value::Bool(true));
}

#[test]
fn environment_value_positions_are_the_reference() {
    let m = parse_env("\n  x: $M\n", &[("M", "{ k: [1] }")]).expect("parse");
    let x = m.get_value("x").expect("x");
    assert_eq!((x.pos.line, x.pos.column), (2, 6));
    let k = x.value.as_map().and_then(|m| m.get("k")).expect("k");
    assert_eq!((k.key_pos.line, k.key_pos.column), (2, 6));
    assert_eq!((k.value.pos.line, k.value.pos.column), (2, 6));
}

#[test]
fn config_variables_shadow_the_environment() {
    let m = parse_env("X: 1\nport: $X\n", &[("X", "2")]).expect("parse");
    assert_eq!(get(&m, "port"), &Value::Int(1));
}

#[test]
fn environment_values_chain_but_do_not_see_config_keys() {
    let m = parse_env("port: $A\n", &[("A", "$B"), ("B", "3kb")]).expect("parse");
    assert_eq!(get(&m, "port"), &Value::Int(3072));
    let e = parse_env("X: 5\nport: $E\n", &[("E", "$X")]).expect_err("must fail");
    assert_eq!(
        e.message,
        "variable reference for 'E' on line 2 could not be parsed: variable reference for 'X' \
         on line 1 can not be found"
    );
    assert_eq!((e.line, e.column), (2, 7));
}

#[test]
fn unparsable_environment_value() {
    let e = parse_env("server_name: $E\n", &[("E", "a b")]).expect_err("must fail");
    assert!(
        e.message
            .starts_with("variable reference for 'E' on line 1 could not be parsed: Expected a"),
        "{e}"
    );
    assert_eq!(e.kind, ConfErrorKind::Variable);
}

#[test]
fn environment_reference_cycles_are_detected() {
    let e = parse_env("port: $A\n", &[("A", "$B"), ("B", "$A")]).expect_err("cycle");
    assert_eq!(
        e.message,
        "variable reference for 'A' on line 1 could not be parsed: variable reference for 'B' \
         on line 1 could not be parsed: variable reference for 'A' on line 1 could not be \
         parsed: variable reference cycle for 'A'"
    );
    let e = parse_env("port: $A\n", &[("A", "$A")]).expect_err("self cycle");
    assert!(
        e.message.ends_with("variable reference cycle for 'A'"),
        "{e}"
    );
}

#[test]
fn endless_distinct_environment_chain_is_bounded() {
    // Every name expands to a new name: no cycle, but it must stop.
    let env = |name: &str| Some(format!("${name}x"));
    let e = parse_str_with_env("port: $A\n", &env).expect_err("must stop");
    assert_eq!(e.kind, ConfErrorKind::Limit);
}

#[test]
fn process_env_refuses_impossible_names() {
    assert_eq!(process_env(""), None);
    assert_eq!(process_env("A=B"), None);
    assert_eq!(process_env("A\0B"), None);
}

// ---------------------------------------------------------------------------------------
// Includes

#[test]
fn includes_relative_to_the_including_file() {
    let m = parse_file_with_env(&fixtures().join("main.conf"), &no_env).expect("main.conf");
    assert_eq!(get(&m, "port"), &Value::Int(4222));
    // From sub/limits.conf, which itself includes deeper.conf relative to sub/.
    assert_eq!(get(&m, "max_pending"), &Value::Int(64 << 20));
    assert_eq!(get(&m, "debug"), &Value::Bool(true));
    // A variable defined in an included file, used after the include.
    assert_eq!(get(&m, "max_payload"), &Value::Int(2 << 20));
    assert!(m.get("PAYLOAD").is_some_and(|e| e.used_as_variable));
    // Include inside a block merges into that block.
    let auth = get(&m, "authorization").as_map().expect("map");
    assert_eq!(get(auth, "user"), &s("alice"));
    assert_eq!(get(auth, "password"), &s("$2a$11$abcdefghijklmnopqrstuv"));
    // Single-quoted include path with a space.
    assert_eq!(get(&m, "server_name"), &s("from_quoted"));
}

#[test]
fn included_entries_carry_their_file() {
    let m = parse_file_with_env(&fixtures().join("main.conf"), &no_env).expect("main.conf");
    let pending = m.get("max_pending").expect("max_pending");
    let file = pending.key_pos.file.as_deref().expect("file");
    assert!(file.ends_with("sub/limits.conf"), "{}", file.display());
    assert_eq!((pending.key_pos.line, pending.key_pos.column), (2, 1));
    let port = m.get("port").expect("port");
    assert!(
        port.key_pos
            .file
            .as_deref()
            .is_some_and(|f| f.ends_with("main.conf"))
    );
}

#[test]
fn include_errors() {
    let e = parse_file_with_env(&fixtures().join("self.conf"), &no_env).expect_err("self");
    assert_eq!(e.kind, ConfErrorKind::Include);
    assert!(e.message.contains("include cycle"), "{e}");

    let e = parse_file_with_env(&fixtures().join("cycle_a.conf"), &no_env).expect_err("cycle");
    assert_eq!(e.kind, ConfErrorKind::Include);

    let e = parse_file_with_env(&fixtures().join("missing_include.conf"), &no_env)
        .expect_err("missing");
    assert_eq!(e.kind, ConfErrorKind::Io);
    assert!(
        e.message
            .starts_with("error parsing include file 'nope.conf', open "),
        "{e}"
    );
    assert!(
        e.message.ends_with("nope.conf: no such file or directory"),
        "{e}"
    );
    assert_eq!((e.line, e.column), (2, 3));
    assert!(
        e.file
            .as_deref()
            .is_some_and(|f| f.ends_with("missing_include.conf"))
    );

    // An error inside an included file points into that file.
    let e = parse_file_with_env(&fixtures().join("bad_include.conf"), &no_env).expect_err("broken");
    assert!(
        e.file
            .as_deref()
            .is_some_and(|f| f.ends_with("sub/broken.conf")),
        "{e}"
    );
    assert_eq!((e.line, e.column), (2, 6));
    assert!(
        e.to_string()
            .contains("sub/broken.conf:2:6: Invalid escape character 'q'"),
        "{e}"
    );

    // Included files do not see the includer's variables (as in nats-server).
    let e =
        parse_file_with_env(&fixtures().join("parent_var.conf"), &no_env).expect_err("parent var");
    assert_eq!(
        e.message,
        "variable reference for 'PV' on line 1 can not be found"
    );
}

#[test]
fn include_keyword_rules() {
    let dir = temp_dir("kw");
    std::fs::write(dir.join("inc.conf"), "port: 7\n").expect("write");
    let m = parse_str_in_dir("INCLUDE inc.conf; server_name: x\n", &dir, &no_env).expect("ok");
    assert_eq!(get(&m, "port"), &Value::Int(7));
    assert_eq!(get(&m, "server_name"), &s("x"));
    let m = parse_str_in_dir("a { include \"inc.conf\"}\n", &dir, &no_env).expect("ok");
    assert_eq!(
        get(get(&m, "a").as_map().expect("map"), "port"),
        &Value::Int(7)
    );
    // `include:` is an ordinary key.
    let m = parse_str_in_dir("include: foo\n", &dir, &no_env).expect("ok");
    assert_eq!(get(&m, "include"), &s("foo"));
    for (text, msg) in [
        (
            "include\ninc.conf\n",
            "Expected include value but found new line",
        ),
        (
            "include [a]\n",
            "Expected include value but found start of an array",
        ),
        (
            "include 1.conf\n",
            "Expected include value but found start of a number",
        ),
        (
            "include \"inc.conf\n",
            "Unexpected EOF in double quoted include",
        ),
    ] {
        let e = parse_str_in_dir(text, &dir, &no_env).expect_err(text);
        assert_eq!(e.message, msg, "{text:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn absolute_include_path_is_used_as_is() {
    // nats-server joins it under the including directory instead; we honour it.
    let dir = temp_dir("abs");
    let inc = dir.join("abs.conf");
    std::fs::write(&inc, "port: 9\n").expect("write");
    let text = format!("include '{}'\n", inc.display());
    let m = parse_str_in_dir(&text, &fixtures(), &no_env).expect("ok");
    assert_eq!(get(&m, "port"), &Value::Int(9));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn deep_include_chain_is_bounded() {
    let dir = temp_dir("chain");
    let files = MAX_INCLUDE_DEPTH + 3;
    for i in 0..files {
        std::fs::write(
            dir.join(format!("f{i}.conf")),
            format!("k{i}: {i}\ninclude f{}.conf\n", i + 1),
        )
        .expect("write");
    }
    std::fs::write(dir.join(format!("f{files}.conf")), "end: true\n").expect("write");
    let e = parse_file_with_env(&dir.join("f0.conf"), &no_env).expect_err("too deep");
    assert_eq!(e.kind, ConfErrorKind::Include);
    assert!(e.message.contains("nested more than"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_config_file() {
    let path = fixtures().join("does-not-exist.conf");
    let e = parse_file_with_env(&path, &no_env).expect_err("missing");
    assert_eq!(e.kind, ConfErrorKind::Io);
    assert_eq!(e.line, 0);
    assert_eq!(
        e.to_string(),
        format!(
            "{p}: open {p}: no such file or directory",
            p = path.display()
        )
    );
}

// ---------------------------------------------------------------------------------------
// Error rendering

#[test]
fn error_display_matches_nats_server_format() {
    let dir = temp_dir("disp");
    let path = dir.join("bad.conf");
    std::fs::write(&path, "port: 1\nx: \"\\q\"\n").expect("write");
    let e = parse_file_with_env(&path, &no_env).expect_err("bad escape");
    assert_eq!(
        e.to_string(),
        format!(
            "{}:2:6: Invalid escape character 'q'. Only the following escape characters are \
             allowed: \\xXX, \\t, \\n, \\r, \\\", \\\\.",
            path.display()
        )
    );
    let e = parse_err("a: 1\nb: [,]\n");
    assert_eq!(e.to_string(), "2:5: Unexpected array value terminator ','.");
    let w = spanned(Value::Int(1)).pos.warning("careful");
    assert_eq!(w.to_string(), "3:7: careful");
    let e = ConfError::at(&spanned(Value::Int(1)).pos, "bad").prefixed("max_mem_store");
    assert_eq!(e.to_string(), "3:7: max_mem_store bad");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------
// Typed accessors

#[test]
fn accessor_as_size() {
    let m = parse("max_payload: 2MB\nbad: \"1MB\"\n");
    assert_eq!(as_size(m.get_value("max_payload").expect("v")), Ok(2 << 20));
    let e = as_size(m.get_value("bad").expect("v")).expect_err("string");
    assert_eq!((e.line, e.column), (2, 6));
    assert_eq!(e.kind, ConfErrorKind::Type);
    assert!(e.message.contains("\"1MB\""), "{e}");
}

#[test]
fn accessor_storage_size() {
    let m = parse("a: \"1G\"\nb: 1G\nc: \"512M\"\nd: \"\"\ne: \"2K\"\nf: \"-1T\"\n");
    let v = |k: &str| m.get_value(k).expect("value").clone();
    assert_eq!(storage_size(&v("a")), Ok(1 << 30));
    assert_eq!(storage_size(&v("b")), Ok(1_000_000_000));
    assert_eq!(storage_size(&v("c")), Ok(512 << 20));
    assert_eq!(storage_size(&v("d")), Ok(0));
    assert_eq!(storage_size(&v("e")), Ok(2048));
    assert_eq!(storage_size(&v("f")), Ok(-(1 << 40)));
    for (text, msg) in [
        ("1GB", "strconv.ParseInt: parsing \"1G\": invalid syntax"),
        ("1X", "sizes defined as strings must end in K, M, G, T"),
        ("G", "strconv.ParseInt: parsing \"\": invalid syntax"),
        ("1g", "sizes defined as strings must end in K, M, G, T"),
        (
            "99999999999999999999K",
            "strconv.ParseInt: parsing \"99999999999999999999\": value out of range",
        ),
    ] {
        let e = storage_size(&spanned(s(text))).expect_err(text);
        assert_eq!(e.message, msg, "{text:?}");
        assert_eq!((e.line, e.column), (3, 7));
    }
    let e = storage_size(&spanned(Value::Float(1.5))).expect_err("float");
    assert_eq!(e.message, "must be int64 or string");
    assert_eq!(
        e.prefixed("max_mem_store").message,
        "max_mem_store must be int64 or string"
    );
    assert!(storage_size(&spanned(s("9000000T"))).is_err());
}

#[test]
fn accessor_duration_strings() {
    for (text, nanos) in [
        ("1m30s", 90_000_000_000i64),
        ("100ms", 100_000_000),
        ("1.5h", 5_400_000_000_000),
        ("300us", 300_000),
        ("300\u{b5}s", 300_000),
        ("300\u{3bc}s", 300_000),
        ("2h45m", 9_900_000_000_000),
        ("10ns", 10),
        ("0", 0),
        ("+5s", 5_000_000_000),
        (".5s", 500_000_000),
        ("1.s", 1_000_000_000),
    ] {
        let (d, w) = duration(&spanned(s(text)), "ping_interval").expect(text);
        assert_eq!(d, Duration::from_nanos(nanos as u64), "{text:?}");
        assert!(w.is_none());
    }
    let (ns, _) = duration_nanos(&spanned(s("-1.5s")), "x").expect("negative");
    assert_eq!(ns, -1_500_000_000);
    let e = duration(&spanned(s("-1s")), "ping_interval").expect_err("negative");
    assert!(e.message.contains("negative"), "{e}");
}

#[test]
fn accessor_duration_errors_match_go() {
    for (text, msg) in [
        (
            "2x",
            "error parsing ping_interval: time: unknown unit \"x\" in duration \"2x\"",
        ),
        (
            "1",
            "error parsing ping_interval: time: missing unit in duration \"1\"",
        ),
        (
            "",
            "error parsing ping_interval: time: invalid duration \"\"",
        ),
        (
            "-",
            "error parsing ping_interval: time: invalid duration \"-\"",
        ),
        (
            "s",
            "error parsing ping_interval: time: invalid duration \"s\"",
        ),
        (
            ".s",
            "error parsing ping_interval: time: invalid duration \".s\"",
        ),
        (
            "1é",
            "error parsing ping_interval: time: unknown unit \"\\xc3\\xa9\" in duration \"1\\xc3\\xa9\"",
        ),
    ] {
        let e = duration(&spanned(s(text)), "ping_interval").expect_err(text);
        assert_eq!(e.message, msg, "{text:?}");
        assert_eq!((e.line, e.column), (3, 7));
    }
}

#[test]
fn go_duration_limits() {
    assert_eq!(parse_go_duration("9223372036854775807ns"), Ok(i64::MAX));
    assert_eq!(parse_go_duration("-9223372036854775808ns"), Ok(i64::MIN));
    assert!(parse_go_duration("9223372036854775808ns").is_err());
    assert!(parse_go_duration("2562048h").is_err());
    assert_eq!(
        parse_go_duration("2562047h"),
        Ok(2_562_047 * 3_600_000_000_000)
    );
    assert_eq!(
        parse_go_duration("1.00000000000000000000001s"),
        Ok(1_000_000_000)
    );
    assert!(parse_go_duration("99999999999999999999s").is_err());
    // Each part alone is at the limit; their sum must not wrap around.
    assert!(parse_go_duration("9223372036854775808ns9223372036854775808ns").is_err());
    assert!(parse_go_duration("-9223372036854775808ns1ns").is_err());
}

#[test]
fn accessor_duration_integer_is_seconds_with_warning() {
    let m = parse("ping_interval: 2\n");
    let (d, w) = duration(m.get_value("ping_interval").expect("v"), "ping_interval").expect("ok");
    assert_eq!(d, Duration::from_secs(2));
    let w = w.expect("warning");
    assert_eq!(w.message, "ping_interval should be converted to a duration");
    assert_eq!((w.line, w.column), (1, 16));
    let e = duration(&spanned(Value::Float(1.5)), "ping_interval").expect_err("float");
    assert_eq!(e.kind, ConfErrorKind::Type);
    let e = duration(&spanned(Value::Int(-1)), "ping_interval").expect_err("negative");
    assert!(e.message.contains("negative"), "{e}");
    assert!(duration_nanos(&spanned(Value::Int(i64::MAX)), "x").is_err());
}

#[test]
fn accessor_duration_strict() {
    assert_eq!(
        duration_strict(&spanned(s("30s")), "lame_duck_duration"),
        Ok(Duration::from_secs(30))
    );
    let e = duration_strict(&spanned(Value::Int(30)), "lame_duck_duration").expect_err("int");
    assert!(e.message.contains("lame_duck_duration"), "{e}");
    assert_eq!((e.line, e.column), (3, 7));
    let e = duration_strict(&spanned(s("30")), "lame_duck_duration").expect_err("no unit");
    assert_eq!(
        e.message,
        "error parsing lame_duck_duration: time: missing unit in duration \"30\""
    );
}

#[test]
fn accessor_scalars() {
    assert_eq!(as_bool(&spanned(Value::Bool(true))), Ok(true));
    assert_eq!(as_string(&spanned(s("x"))), Ok("x"));
    assert_eq!(as_i64(&spanned(Value::Int(-3))), Ok(-3));
    assert_eq!(as_f64(&spanned(Value::Float(0.5))), Ok(0.5));
    assert_eq!(as_f64(&spanned(Value::Int(2))), Ok(2.0));
    let e = as_bool(&spanned(s("yes"))).expect_err("quoted yes");
    assert_eq!(e.message, "expected a boolean, got string \"yes\"");
    assert_eq!((e.line, e.column), (3, 7));
    assert!(as_string(&spanned(Value::Int(1))).is_err());
    assert!(as_i64(&spanned(Value::Float(1.0))).is_err());
    assert!(as_f64(&spanned(s("1.0"))).is_err());
    let e = as_string(&spanned(Value::Map(Map::new()))).expect_err("map");
    assert_eq!(e.message, "expected a string, got map");
}

// ---------------------------------------------------------------------------------------
// Robustness

#[test]
fn deep_nesting_fails_cleanly() {
    let text = format!("a: {}", "[".repeat(100_000));
    let e = parse_err(&text);
    assert_eq!(e.kind, ConfErrorKind::Limit);
    let text = format!("a: {}", "{b: ".repeat(100_000));
    let e = parse_err(&text);
    assert_eq!(e.kind, ConfErrorKind::Limit);
    let text = "{".repeat(100_000);
    assert_eq!(parse_err(&text).kind, ConfErrorKind::Limit);
    // Just under the limit is fine.
    let depth = MAX_DEPTH - 1;
    let text = format!("a: {}{}", "[".repeat(depth), "]".repeat(depth));
    assert!(parse_str_with_env(&text, &no_env).is_ok());
}

#[test]
fn byte_order_mark_is_skipped() {
    let m = parse("\u{feff}port: 1\n");
    assert_eq!(get(&m, "port"), &Value::Int(1));
}

#[test]
fn crlf_files() {
    let m = parse("port: 1\r\nauth {\r\n  user: a\r\n}\r\nlist: [\r\n a\r\n b\r\n]\r\n");
    assert_eq!(get(&m, "port"), &Value::Int(1));
    assert_eq!(get(get(&m, "auth").as_map().expect("map"), "user"), &s("a"));
    assert_eq!(items(get(&m, "list")), [s("a"), s("b")]);
    assert_eq!(m.get("list").map(|e| e.key_pos.line), Some(5));
}

/// Small deterministic xorshift generator for the garbage loop.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Checks that every position in a parsed tree lies inside the text.
fn assert_positions_within(map: &Map, lines: u32) {
    for entry in map {
        assert!(
            entry.key_pos.line >= 1 && entry.key_pos.line <= lines,
            "{entry:?}"
        );
        assert!(entry.key_pos.column >= 1, "{entry:?}");
        assert_value_within(&entry.value, lines);
    }
}

/// See [`assert_positions_within`].
fn assert_value_within(v: &Spanned, lines: u32) {
    assert!(
        v.pos.line >= 1 && v.pos.line <= lines && v.pos.column >= 1,
        "{v:?}"
    );
    match &v.value {
        Value::Map(m) => assert_positions_within(m, lines),
        Value::Array(items) => items.iter().for_each(|i| assert_value_within(i, lines)),
        _ => {}
    }
}

#[test]
fn garbage_input_never_panics() {
    const PIECES: &[&str] = &[
        "{",
        "}",
        "[",
        "]",
        "(",
        ")",
        "\n",
        "\r\n",
        " ",
        "\t",
        ":",
        "=",
        ",",
        ";",
        "#",
        "//",
        "/",
        "\"",
        "'",
        "\\",
        "\\x4",
        "\\xzz",
        "$",
        "$A",
        "$B",
        "$2a$",
        "include ",
        "a",
        "key",
        "1",
        "-",
        ".",
        "k",
        "mb",
        "ib",
        "2006-01-02T15:04:05Z",
        "2006-",
        "true",
        "é",
        "\u{a0}",
        "\u{feff}",
        "\0",
        "x\n)\n",
        "\n)",
    ];
    let env = |name: &str| match name {
        "A" => Some("$B".to_string()),
        "B" => Some("{ x: $A }".to_string()),
        "C" => Some("[1, \"2\", (\n".to_string()),
        _ => None,
    };
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut ok, mut failed) = (0usize, 0usize);
    for round in 0..4000 {
        let text = if round % 2 == 0 {
            let len = rng.below(64);
            let bytes: Vec<u8> = (0..len).map(|_| (rng.next() & 0xff) as u8).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        } else {
            let len = rng.below(40);
            (0..len).map(|_| PIECES[rng.below(PIECES.len())]).collect()
        };
        let lines = u32::try_from(text.matches('\n').count() + 1).expect("small");
        match parse_str_with_env(&text, &env) {
            Ok(map) => {
                ok += 1;
                assert_positions_within(&map, lines);
            }
            Err(e) => {
                failed += 1;
                assert!(e.line >= 1 && e.line <= lines, "{text:?}: {e}");
                assert!(e.column >= 1, "{text:?}: {e}");
                assert!(!e.message.is_empty());
            }
        }
    }
    // Both outcomes must occur, or the generator is not exercising the parser.
    assert!(ok > 100 && failed > 100, "ok={ok} failed={failed}");
}

#[test]
fn nesting_limit_fits_in_one_mebibyte_of_stack() {
    // Guards MAX_DEPTH against growing stack frames: the deepest accepted nesting (maps,
    // and an endless environment chain stopped by the limit) must run on a 1 MiB stack
    // even in debug builds, leaving tokio's 2 MiB worker stacks a wide margin.
    let result = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(|| {
            let depth = MAX_DEPTH - 1;
            let text = format!("a: {}1{}", "{b: ".repeat(depth), "}".repeat(depth));
            let maps = parse_str_with_env(&text, &no_env).is_ok();
            let env = |name: &str| Some(format!("${name}x"));
            let chain = parse_str_with_env("port: $A", &env).map_err(|e| e.kind);
            (maps, chain)
        })
        .expect("spawn")
        .join()
        .expect("no stack overflow");
    assert_eq!(result, (true, Err(ConfErrorKind::Limit)));
}

#[test]
fn duration_and_size_strings_never_panic() {
    const PIECES: &[&str] = &[
        "0",
        "1",
        "9",
        "9223372036854775808",
        "99999999999999999999",
        ".",
        "-",
        "+",
        "ns",
        "us",
        "\u{b5}s",
        "ms",
        "s",
        "m",
        "h",
        "x",
        "K",
        "M",
        "G",
        "T",
        "é",
        "",
    ];
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let (mut ok, mut failed) = (0usize, 0usize);
    for _ in 0..5000 {
        let len = rng.below(6);
        let text: String = (0..len).map(|_| PIECES[rng.below(PIECES.len())]).collect();
        match parse_go_duration(&text) {
            Ok(_) => ok += 1,
            Err(m) => {
                failed += 1;
                assert!(m.starts_with("time: "), "{text:?}: {m}");
            }
        }
        if let Err(m) = storage_size_str(&text) {
            assert!(!m.is_empty());
        }
    }
    assert!(ok > 100 && failed > 100, "ok={ok} failed={failed}");
}

#[test]
fn includes_read_only_bounded_regular_files() {
    // A device or a directory is refused at once (not read forever, not blocked on).
    for (path, why) in [
        ("/dev/zero", "not a regular file"),
        ("/dev/null", "not a regular file"),
        ("/tmp", "not a regular file"),
    ] {
        let text = format!("include '{path}'\n");
        let e = parse_str_in_dir(&text, &fixtures(), &no_env).expect_err(path);
        assert_eq!(e.kind, ConfErrorKind::Io, "{path}: {e}");
        assert!(e.message.contains(why), "{path}: {e}");
    }
    // A file past the size bound is refused by its size, before it is read.
    let dir = temp_dir("big");
    let big = dir.join("big.conf");
    let f = std::fs::File::create(&big).expect("create");
    f.set_len(super::MAX_CONFIG_FILE_BYTES + 1).expect("grow");
    let e = parse_str_in_dir(
        &format!("include '{}'\n", big.display()),
        &fixtures(),
        &no_env,
    )
    .expect_err("too big");
    assert!(e.message.contains("larger than"), "{e}");
    let e = super::parse_file(&big).expect_err("too big");
    assert!(e.message.contains("larger than"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
