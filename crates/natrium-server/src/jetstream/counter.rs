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
    let incr = Decimal::parse(raw.trim_ascii()).ok_or_else(ApiError::message_incr_invalid)?;
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

/// A checked increment (see [`increment`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncrValue(Decimal);

impl IncrValue {
    /// The new total: the previous stored counter message's `val` (`None`: the subject
    /// has none, counting from 0) plus the increment. A previous body that is not a
    /// counter value is `message counter is broken`.
    pub fn apply(&self, previous: Option<&[u8]>) -> Result<String, ApiError> {
        let prev = match previous {
            None => Decimal {
                neg: false,
                digits: Vec::new(),
            },
            Some(body) => {
                #[derive(serde::Deserialize)]
                struct Body {
                    val: String,
                }
                serde_json::from_slice::<Body>(body)
                    .ok()
                    .and_then(|b| Decimal::parse(b.val.as_bytes()))
                    .ok_or_else(ApiError::message_counter_broken)?
            }
        };
        Ok(prev.add(&self.0).to_text())
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
            .and_then(|i| i.apply(body.as_deref()))
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
        let broken = IncrValue(Decimal::parse(b"1").expect("1")).apply(Some(b"{}"));
        assert_eq!(broken.map_err(|e| e.err_code), Err(10172));
    }
}
