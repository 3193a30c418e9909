//! JSON output byte-compatible with Go's `encoding/json`.
//!
//! nats-server answers with `json.MarshalIndent(v, "", "  ")` (and plain `json.Marshal`
//! for `/healthz`). serde_json's pretty printer already has the same layout (2-space
//! indent, `"key": value`, `[]`/`{}` for empty containers), so rather than a second JSON
//! writer we plug a [`serde_json::ser::Formatter`] into it that changes only what differs:
//!
//! * **strings**: Go escapes `<`, `>`, `&`, U+2028 and U+2029 as `\u003c`, `\u003e`,
//!   `\u0026`, `\u2028`, `\u2029` (HTML safety). Doing it in the formatter touches only
//!   string contents, never structure, and covers the two line separators that
//!   `protocol::write::go_json_escape` leaves alone.
//! * **floats**: Go writes `2`, not `2.0`, and uses exponents only outside [1e-6, 1e21)
//!   (see [`super::format::go_float`]).
//!
//! Field order is the struct declaration order, which the endpoint modules keep equal to
//! nats-server's structs.

use super::format::{go_float, rfc3339_nano};
use serde::{Serialize, Serializer};
use serde_json::ser::{CompactFormatter, Formatter, PrettyFormatter};
use std::io;
use std::time::SystemTime;

/// A formatter that writes like Go's `encoding/json`, delegating layout to `inner`.
struct GoFormatter<F> {
    /// serde_json's pretty or compact formatter, which does the layout.
    inner: F,
}

impl<F: Formatter> Formatter for GoFormatter<F> {
    fn write_f32<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f32) -> io::Result<()> {
        w.write_all(go_float(f64::from(value)).as_bytes())
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f64) -> io::Result<()> {
        w.write_all(go_float(value).as_bytes())
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let esc = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            w.write_all(&fragment.as_bytes()[start..i])?;
            w.write_all(esc.as_bytes())?;
            start = i + c.len_utf8();
        }
        w.write_all(&fragment.as_bytes()[start..])
    }

    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.begin_array(w)
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_array(w)
    }

    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.inner.begin_array_value(w, first)
    }

    fn end_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_array_value(w)
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.begin_object(w)
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_object(w)
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.inner.begin_object_key(w, first)
    }

    fn end_object_key<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_object_key(w)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.begin_object_value(w)
    }

    fn end_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_object_value(w)
    }
}

/// Serialise with `formatter` into a string.
fn write_with<T: Serialize + ?Sized, F: Formatter>(
    value: &T,
    formatter: F,
) -> Result<String, serde_json::Error> {
    let mut buf = Vec::with_capacity(1024);
    let mut ser =
        serde_json::Serializer::with_formatter(&mut buf, GoFormatter { inner: formatter });
    value.serialize(&mut ser)?;
    // serde_json writes only valid UTF-8; a failure here would be a serde_json bug.
    String::from_utf8(buf).map_err(|e| serde::ser::Error::custom(e.to_string()))
}

/// `json.MarshalIndent(value, "", "  ")`.
pub fn to_pretty<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    write_with(value, PrettyFormatter::with_indent(b"  "))
}

/// `json.Marshal(value)`.
pub fn to_compact<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    write_with(value, CompactFormatter)
}

/// A wall-clock time that serialises as Go's `time.Time` does (RFC 3339, UTC, trimmed
/// nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GoTime(pub SystemTime);

impl Serialize for GoTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&rfc3339_nano(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Sample {
        name: &'static str,
        rate: f64,
        whole: f64,
        empty: Vec<u8>,
        obj: std::collections::BTreeMap<String, u8>,
        list: Vec<u8>,
    }

    fn sample() -> Sample {
        Sample {
            name: "a<b>&c\u{2028}µ\"",
            rate: 0.25,
            whole: 2.0,
            empty: Vec::new(),
            obj: std::collections::BTreeMap::new(),
            list: vec![1, 2],
        }
    }

    #[test]
    fn pretty_matches_marshal_indent() {
        let out = to_pretty(&sample()).expect("serialises");
        assert_eq!(
            out,
            "{\n  \"name\": \"a\\u003cb\\u003e\\u0026c\\u2028µ\\\"\",\n  \"rate\": 0.25,\n  \
             \"whole\": 2,\n  \"empty\": [],\n  \"obj\": {},\n  \"list\": [\n    1,\n    2\n  ]\n}"
        );
    }

    #[test]
    fn compact_matches_marshal() {
        let out = to_compact(&sample()).expect("serialises");
        assert_eq!(
            out,
            "{\"name\":\"a\\u003cb\\u003e\\u0026c\\u2028µ\\\"\",\"rate\":0.25,\"whole\":2,\
             \"empty\":[],\"obj\":{},\"list\":[1,2]}"
        );
    }
}
