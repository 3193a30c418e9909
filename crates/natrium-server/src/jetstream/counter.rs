//! Message counters (`allow_msg_counter`, ADR-49): a publish carries `Nats-Incr: <integer>`
//! and no payload; the stream stores `{"val":"<sum>"}` where the sum is the subject's
//! previous value plus the increment, and answers with the sum in the PubAck (`val`).
//!
//! Why decimal strings: nats-server sums with arbitrary-precision integers (Go `big.Int`),
//! so values far beyond 128 bits are legal and must round-trip exactly. The arithmetic here
//! works on decimal digit strings, bounded by the header size limit of the increment and
//! the stored value (each addition grows the result by at most one digit).

use super::api::errors::ApiError;
use super::headers;

/// `Nats-Incr`: the increment header.
pub const INCR: &str = "Nats-Incr";

/// `Nats-Counter-Sources`: on a counter stream that sources other counters, the last
/// total seen from each origin stream and subject (`{"<origin>":{"<subject>":"<val>"}}`),
/// carried on every counter message of the subject so the next copy can add only the
/// difference.
pub const COUNTER_SOURCES: &str = "Nats-Counter-Sources";

/// Headers nats-server refuses beside `Nats-Incr` (`message counter increment is
/// invalid`): expectations and rollups do not combine with counters.
const REFUSED_WITH_INCR: [&str; 6] = [
    headers::EXPECTED_STREAM,
    headers::EXPECTED_LAST_SEQ,
    headers::EXPECTED_LAST_SUBJ_SEQ,
    headers::EXPECTED_LAST_SUBJ_SEQ_SUBJ,
    headers::EXPECTED_LAST_MSG_ID,
    headers::ROLLUP,
];

/// A signed decimal integer: `neg` and its digits without leading zeros (`""` is zero,
/// never negative).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Decimal {
    /// Negative.
    neg: bool,
    /// Magnitude digits, most significant first, no leading zeros.
    digits: Vec<u8>,
}

impl Decimal {
    /// Go `big.Int.SetString(s, 10)`: an optional sign, then ASCII digits only.
    fn parse(s: &[u8]) -> Option<Decimal> {
        let (neg, rest) = match s.first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        if rest.is_empty() || !rest.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let start = rest.iter().position(|&d| d != b'0').unwrap_or(rest.len());
        let digits = rest[start..].iter().map(|d| d - b'0').collect::<Vec<_>>();
        Some(Decimal {
            neg: neg && !digits.is_empty(),
            digits,
        })
    }

    fn to_text(&self) -> String {
        if self.digits.is_empty() {
            return "0".to_string();
        }
        let mut s = String::with_capacity(self.digits.len() + 1);
        if self.neg {
            s.push('-');
        }
        s.extend(self.digits.iter().map(|d| char::from(b'0' + d)));
        s
    }

    fn zero() -> Decimal {
        Decimal {
            neg: false,
            digits: Vec::new(),
        }
    }

    fn negated(&self) -> Decimal {
        Decimal {
            neg: !self.neg && !self.digits.is_empty(),
            digits: self.digits.clone(),
        }
    }

    /// A counter body's `val` (`{"val":"<integer>"}`); `None` if it is not one.
    fn of_body(body: &[u8]) -> Option<Decimal> {
        #[derive(serde::Deserialize)]
        struct Body {
            val: String,
        }
        serde_json::from_slice::<Body>(body)
            .ok()
            .and_then(|b| Decimal::parse(b.val.as_bytes()))
    }

    fn add(&self, other: &Decimal) -> Decimal {
        if self.neg == other.neg {
            return Decimal {
                neg: self.neg,
                digits: add_mag(&self.digits, &other.digits),
            };
        }
        // Opposite signs: subtract the smaller magnitude from the larger.
        let (big, small, neg) = match cmp_mag(&self.digits, &other.digits) {
            std::cmp::Ordering::Less => (&other.digits, &self.digits, other.neg),
            _ => (&self.digits, &other.digits, self.neg),
        };
        let digits = sub_mag(big, small);
        Decimal {
            neg: neg && !digits.is_empty(),
            digits,
        }
    }
}

fn cmp_mag(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn add_mag(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len().max(b.len()) + 1);
    let (mut i, mut j, mut carry) = (a.len(), b.len(), 0u8);
    while i > 0 || j > 0 || carry > 0 {
        let mut d = carry;
        if i > 0 {
            i -= 1;
            d += a[i];
        }
        if j > 0 {
            j -= 1;
            d += b[j];
        }
        out.push(d % 10);
        carry = d / 10;
    }
    out.reverse();
    out
}

/// `a - b` for `a >= b` (magnitudes).
fn sub_mag(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len());
    let (mut j, mut borrow) = (b.len(), 0i8);
    for i in (0..a.len()).rev() {
        let mut d = a[i] as i8 - borrow;
        if j > 0 {
            j -= 1;
            d -= b[j] as i8;
        }
        borrow = i8::from(d < 0);
        out.push((d + 10 * borrow) as u8);
    }
    while out.last() == Some(&0) {
        out.pop();
    }
    out.reverse();
    out
}

/// The `Nats-Incr` checks of a publish that come first in nats-server's order: not an
/// integer, counters not allowed (`counters`), a payload, other expectation/rollup
/// headers. `Ok(None)` without an increment (absent or empty): on a counter stream that
/// is [`ApiError::message_incr_missing`], which nats-server checks only after the
/// expected-stream, TTL and message-id checks (the caller's job).
pub fn increment(
    hdrs: &[u8],
    payload: &[u8],
    counters: bool,
) -> Result<Option<IncrValue>, ApiError> {
    let Some(raw) = headers::get_set(hdrs, INCR) else {
        return Ok(None);
    };
    let incr =
        Decimal::parse(leading_spaces_off(raw)).ok_or_else(ApiError::message_incr_invalid)?;
    if !counters {
        return Err(ApiError::message_incr_disabled());
    }
    if !payload.is_empty() {
        return Err(ApiError::message_incr_payload());
    }
    if REFUSED_WITH_INCR
        .iter()
        .any(|h| headers::get_set(hdrs, h).is_some())
    {
        return Err(ApiError::message_incr_invalid());
    }
    Ok(Some(IncrValue(incr)))
}

/// An increment as nats-server reads it: leading spaces dropped, nothing else (`"1 "`
/// and `"\t1"` are invalid there).
fn leading_spaces_off(raw: &[u8]) -> &[u8] {
    let start = raw.iter().position(|b| *b != b' ').unwrap_or(raw.len());
    &raw[start..]
}

/// The increment of a message a source copies into a counter stream: only its form is
/// checked (a copy keeps its payload, the origin's total, and is stored whatever else it
/// carries, as nats-server stores copies verbatim). `Ok(None)` without one.
pub fn copied_increment(hdrs: &[u8]) -> Result<Option<IncrValue>, ApiError> {
    match headers::get_set(hdrs, INCR) {
        None => Ok(None),
        Some(raw) => Decimal::parse(leading_spaces_off(raw))
            .map(|d| Some(IncrValue(d)))
            .ok_or_else(ApiError::message_incr_invalid),
    }
}

/// A checked increment (see [`increment`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncrValue(Decimal);

/// The subject's last counter message, as stored.
#[derive(Debug, Clone, Copy)]
pub struct Previous<'a> {
    /// Its body, `{"val":"<total>"}`.
    pub payload: &'a [u8],
    /// Its header block (for `Nats-Counter-Sources`).
    pub hdrs: &'a [u8],
}

/// What a counter message stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// The subject's new total, for the PubAck's `val`.
    pub total: String,
    /// The stored body, `{"val":"<total>"}`.
    pub body: Vec<u8>,
    /// The header block to store instead of the published one, when it changes: a
    /// copy's `Nats-Incr` becomes the difference it makes, and `Nats-Counter-Sources`
    /// is set whenever the subject counts any source.
    pub hdrs: Option<Vec<u8>>,
}

/// Origin stream → origin subject → last total seen from it (sorted, as Go's
/// `json.Marshal` writes map keys).
type Sources = std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>;

impl IncrValue {
    /// What storing this increment on `subject` writes, given the subject's previous
    /// counter message, as nats-server's `processJetStreamMsg` works it out:
    ///
    /// - the total and the sources seen so far come from the previous message (a body
    ///   or `Nats-Counter-Sources` that does not parse is `message counter is broken`);
    /// - a copy from a source (`Nats-Stream-Source: <origin> <seq> <filter> <dest>
    ///   <subject> …`) carries the origin's total in its payload: it adds the difference
    ///   to the last total seen from that origin stream and subject, and its
    ///   `Nats-Incr` is rewritten to that difference;
    /// - the sources map rides on every message of the subject once it holds any.
    pub fn update(
        &self,
        previous: Option<Previous<'_>>,
        hdrs: &[u8],
        payload: &[u8],
        subject: &str,
    ) -> Result<Update, ApiError> {
        let mut total = Decimal::zero();
        let mut sources = Sources::new();
        if let Some(p) = previous {
            total = Decimal::of_body(p.payload).ok_or_else(ApiError::message_counter_broken)?;
            if let Some(v) = headers::get_set(p.hdrs, COUNTER_SOURCES) {
                sources = serde_json::from_slice::<Option<Sources>>(v)
                    .map_err(|_| ApiError::message_counter_broken())?
                    .unwrap_or_default();
            }
        }
        let mut incr = self.0.clone();
        let mut out: Option<Vec<u8>> = None;
        if let Some(src) = headers::get_set_str(hdrs, headers::STREAM_SOURCE) {
            let fields: Vec<&str> = src.split(' ').collect();
            let origin = fields[0].to_string();
            let origin_subject = fields.get(4).copied().unwrap_or(subject).to_string();
            // A `val` that is not a number counts as 0 (Go's `SetString` fails quietly).
            let sourced = go_counter_value(payload).ok_or_else(ApiError::message_counter_broken)?;
            let sourced = Decimal::parse(sourced.as_bytes()).unwrap_or_else(Decimal::zero);
            let seen = sources.entry(origin).or_default();
            let before = seen
                .get(&origin_subject)
                .and_then(|v| Decimal::parse(v.as_bytes()))
                .unwrap_or_else(Decimal::zero);
            seen.insert(origin_subject, sourced.to_text());
            incr = sourced.add(&before.negated());
            out = Some(headers::set_header(hdrs, INCR, &incr.to_text()));
        }
        let total = total.add(&incr).to_text();
        if !sources.is_empty() {
            let block = out.as_deref().unwrap_or(hdrs);
            out = Some(headers::set_header(
                block,
                COUNTER_SOURCES,
                &sources_json(&sources),
            ));
        }
        Ok(Update {
            body: body(&total),
            total,
            hdrs: out,
        })
    }
}

/// The sources map as Go's `json.Marshal` writes it (sorted keys, Go's escaping).
fn sources_json(sources: &Sources) -> String {
    super::api::to_go_json(sources)
}

/// The `val` of a counter body as Go's `json.Unmarshal` into a struct with a string
/// field `val` reads it: `None` (an error) unless the body is a JSON object or `null`;
/// the key matched without regard to case; a missing or `null` value is `""`; a value
/// that is not a string is an error.
fn go_counter_value(payload: &[u8]) -> Option<String> {
    match serde_json::from_slice::<serde_json::Value>(payload).ok()? {
        serde_json::Value::Null => Some(String::new()),
        serde_json::Value::Object(fields) => {
            // Go prefers the exact key, then a case-insensitive one.
            let v = fields.get("val").or_else(|| {
                fields
                    .iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case("val"))
                    .map(|(_, v)| v)
                    .next_back()
            });
            match v {
                None | Some(serde_json::Value::Null) => Some(String::new()),
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(_) => None,
            }
        }
        _ => None,
    }
}

/// The stored body of a counter message.
pub fn body(total: &str) -> Vec<u8> {
    format!("{{\"val\":\"{total}\"}}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(prev: Option<&str>, incr: &str) -> Result<String, u16> {
        let h = format!("NATS/1.0\r\n{INCR}: {incr}\r\n\r\n");
        let body = prev.map(body);
        increment(h.as_bytes(), b"", true)
            .and_then(|i| i.ok_or_else(ApiError::message_incr_missing))
            .and_then(|i| {
                let prev = body.as_deref().map(|b| Previous {
                    payload: b,
                    hdrs: b"",
                });
                i.update(prev, h.as_bytes(), b"", "s")
            })
            .map(|u| u.total)
            .map_err(|e| e.err_code)
    }

    #[test]
    fn the_first_checks_in_nats_server_order() {
        let code = |h: &str, payload: &[u8], counters: bool| {
            increment(h.as_bytes(), payload, counters)
                .map(|i| i.is_some())
                .map_err(|e| e.err_code)
        };
        // Not an integer comes before "counters are off".
        assert_eq!(
            code("NATS/1.0\r\nNats-Incr: x\r\n\r\n", b"", false),
            Err(10171)
        );
        assert_eq!(
            code("NATS/1.0\r\nNats-Incr: 1\r\n\r\n", b"", false),
            Err(10168)
        );
        assert_eq!(
            code("NATS/1.0\r\nNats-Incr: 1\r\n\r\n", b"p", true),
            Err(10170)
        );
        // Missing (absent or empty) is left to the caller, checked later.
        assert_eq!(code("NATS/1.0\r\nNats-Incr:\r\n\r\n", b"", true), Ok(false));
        assert_eq!(code("NATS/1.0\r\nA: b\r\n\r\n", b"", true), Ok(false));
    }

    fn copy(origin_subject: &str, val: &str, incr: &str) -> (Vec<u8>, Vec<u8>) {
        let h = format!(
            "NATS/1.0\r\n{INCR}: {incr}\r\nNats-Stream-Source: ORIG 7 > > {origin_subject}\r\n\r\n"
        );
        (h.into_bytes(), body(val))
    }

    #[test]
    fn copies_add_the_difference_from_their_origin_and_subject() {
        let incr = |h: &[u8]| copied_increment(h).expect("form").expect("present");
        // First copy of c.a from ORIG: total 5 there, nothing here yet.
        let (h1, b1) = copy("c.a", "5", "5");
        let u1 = incr(&h1).update(None, &h1, &b1, "c.a").expect("update");
        assert_eq!(u1.total, "5");
        let h1s = u1.hdrs.expect("headers");
        assert_eq!(
            String::from_utf8_lossy(&h1s),
            "NATS/1.0\r\nNats-Incr: 5\r\nNats-Stream-Source: ORIG 7 > > c.a\r\nNats-Counter-Sources: {\"ORIG\":{\"c.a\":\"5\"}}\r\n\r\n"
        );
        // A local increment of 100 carries the sources on.
        let local = b"NATS/1.0\r\nNats-Incr: 100\r\n\r\n";
        let prev = Previous {
            payload: &u1.body,
            hdrs: &h1s,
        };
        let u2 = increment(local, b"", true)
            .expect("ok")
            .expect("incr")
            .update(Some(prev), local, b"", "c.a")
            .expect("update");
        assert_eq!(u2.total, "105");
        let h2s = u2.hdrs.expect("headers");
        assert!(
            String::from_utf8_lossy(&h2s)
                .ends_with("Nats-Counter-Sources: {\"ORIG\":{\"c.a\":\"5\"}}\r\n\r\n")
        );
        // The origin moves to 3 (its own increment -2): only -2 is added here, whatever
        // the copy's own Nats-Incr said.
        let (h3, b3) = copy("c.a", "3", "999");
        let prev = Previous {
            payload: &u2.body,
            hdrs: &h2s,
        };
        let u3 = incr(&h3)
            .update(Some(prev), &h3, &b3, "c.a")
            .expect("update");
        assert_eq!(u3.total, "103");
        let h3s = String::from_utf8_lossy(&u3.hdrs.expect("headers")).into_owned();
        assert!(h3s.starts_with("NATS/1.0\r\nNats-Incr: -2\r\n"), "{h3s}");
        // Another origin subject is counted on its own.
        let (h4, b4) = copy("c.b", "10", "10");
        let prev = Previous {
            payload: &u3.body,
            hdrs: h3s.as_bytes(),
        };
        let u4 = incr(&h4)
            .update(Some(prev), &h4, &b4, "c.a")
            .expect("update");
        assert_eq!(u4.total, "113");
        assert!(
            String::from_utf8_lossy(&u4.hdrs.expect("h"))
                .contains("{\"ORIG\":{\"c.a\":\"3\",\"c.b\":\"10\"}}")
        );
        // Broken sources or a copy whose body is not a counter: refused.
        let bad = Previous {
            payload: &u1.body,
            hdrs: b"NATS/1.0\r\nNats-Counter-Sources: [\r\n\r\n",
        };
        assert_eq!(
            incr(&h3)
                .update(Some(bad), &h3, &b3, "c.a")
                .map_err(|e| e.err_code),
            Err(10172)
        );
        assert_eq!(
            incr(&h3)
                .update(None, &h3, b"nope", "c.a")
                .map_err(|e| e.err_code),
            Err(10172)
        );
        assert_eq!(
            copied_increment(b"NATS/1.0\r\nNats-Incr: x\r\n\r\n").map_err(|e| e.err_code),
            Err(10171)
        );
        let broken = incr(&h3).update(None, &h3, b"[1]", "c.a");
        assert_eq!(broken.map_err(|e| e.err_code), Err(10172));
        // As Go's json.Unmarshal: null, `{}` and another case of the key are read.
        for body in [&b"null"[..], b"{}", b"{\"VAL\":\"4\"}"] {
            assert!(incr(&h3).update(None, &h3, body, "c.a").is_ok(), "{body:?}");
        }
        // A subject with characters Go's JSON escapes.
        let (h5, b5) = copy("c.<&>", "1", "1");
        let u5 = incr(&h5).update(None, &h5, &b5, "c.a").expect("update");
        let h5s = String::from_utf8_lossy(&u5.hdrs.expect("h")).into_owned();
        assert!(
            h5s.contains(r#"{"ORIG":{"c.\u003c\u0026\u003e":"1"}}"#),
            "{h5s}"
        );
    }

    #[test]
    fn sums_like_big_int() {
        assert_eq!(sum(None, "5"), Ok("5".into()));
        assert_eq!(sum(Some("5"), "-2"), Ok("3".into()));
        assert_eq!(sum(Some("3"), "+10"), Ok("13".into()));
        assert_eq!(
            sum(Some("13"), "99999999999999999999999999999999"),
            Ok("100000000000000000000000000000012".into())
        );
        assert_eq!(sum(None, "-0005"), Ok("-5".into()));
        assert_eq!(sum(Some("-5"), "5"), Ok("0".into()));
        assert_eq!(sum(Some("-5"), "3"), Ok("-2".into()));
        assert_eq!(sum(Some("2"), "-1000"), Ok("-998".into()));
        assert_eq!(sum(Some("1000"), "-1"), Ok("999".into()));
        assert_eq!(sum(Some("0"), "-0"), Ok("0".into()));
        for bad in ["x", "1.5", "1_000", "0x10", "-", "+"] {
            assert_eq!(sum(None, bad), Err(10171), "{bad}");
        }
        let prev = Previous {
            payload: b"{}",
            hdrs: b"",
        };
        let broken = IncrValue(Decimal::parse(b"1").expect("1")).update(Some(prev), b"", b"", "s");
        assert_eq!(broken.map_err(|e| e.err_code), Err(10172));
    }
}
