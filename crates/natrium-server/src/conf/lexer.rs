//! Character-level scanning of config text: keys, strings, numbers, dates, comments.
//!
//! The NATS config format has no separate tokenizer in the usual sense: what a run of
//! characters means depends on where it appears (`include` is a keyword only in key
//! position, `#` starts a comment between entries but is an ordinary character inside an
//! unquoted value, a digit followed by `s` turns a number into a string…). So this module
//! only offers a cursor and one scanner per kind of lexeme; the parser decides which
//! scanner to call where. The scanners reproduce nats-server's lexer decisions (which
//! character ends what, and which suffixes make an integer), because a config that the
//! real server accepts must mean the same thing here.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// A place in the text: 1-based line and column (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mark {
    /// 1-based line.
    pub line: u32,
    /// 1-based column in characters.
    pub column: u32,
}

/// A syntax error found while scanning, before the parser attaches the file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    /// Where the problem is.
    pub at: Mark,
    /// What the problem is.
    pub message: String,
}

/// Result type of the scanners.
pub(crate) type Scan<T> = Result<T, SyntaxError>;

/// A scalar lexeme, classified but not yet converted (conversion of integers and dates can
/// fail and is done by [`int_from_text`] and [`date_from_text`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    /// Any kind of string.
    Str(String),
    /// Integer text, possibly with a size suffix (`-12`, `64MB`).
    Int(String),
    /// Float text (`1.5`).
    Float(String),
    /// Boolean word.
    Bool(bool),
    /// Date text (`2006-01-02T15:04:05Z`).
    Date(String),
    /// `$name` reference; holds the name without `$`.
    Var(String),
}

/// A cursor over config text that tracks line and column.
pub(crate) struct Cursor<'a> {
    /// The whole text.
    src: &'a str,
    /// Byte offset of the next character.
    pos: usize,
    /// Line of the next character.
    line: u32,
    /// Column of the next character.
    column: u32,
}

/// Go's `unicode.IsSpace`: ends keys and is skipped between entries.
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace()
}

/// Space or tab: what may separate a value from its terminator.
pub(crate) fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Line ends (a lone `\r` counts, as in nats-server).
pub(crate) fn is_newline(c: char) -> bool {
    c == '\n' || c == '\r'
}

/// Letters that start a size suffix on an unquoted integer.
fn is_size_suffix(c: char) -> bool {
    matches!(c.to_ascii_lowercase(), 'k' | 'm' | 'g' | 't' | 'p' | 'e')
}

/// Characters after which an integer is complete (`None` is end of input).
fn ends_number(c: Option<char>) -> bool {
    match c {
        None => true,
        Some(c) => is_newline(c) || is_blank(c) || matches!(c, '}' | ';' | ','),
    }
}

/// Renders a character for an error message the way nats-server does (newlines escaped),
/// with end of input spelled out.
pub(crate) fn show(c: Option<char>) -> String {
    match c {
        None => "EOF".to_string(),
        Some('\n') => "\\n".to_string(),
        Some('\r') => "\\r".to_string(),
        Some('\t') => "\\t".to_string(),
        Some(c) => c.to_string(),
    }
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `src`.
    pub fn new(src: &'a str) -> Self {
        Self {
            src,
            pos: 0,
            line: 1,
            column: 1,
        }
    }

    /// The next character, if any.
    pub fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    /// The character after the next one, if any.
    pub fn peek2(&self) -> Option<char> {
        let mut chars = self.src[self.pos..].chars();
        chars.next();
        chars.next()
    }

    /// Consumes and returns the next character.
    pub fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line = self.line.saturating_add(1);
            self.column = 1;
        } else {
            self.column = self.column.saturating_add(1);
        }
        Some(c)
    }

    /// Position of the next character.
    pub fn mark(&self) -> Mark {
        Mark {
            line: self.line,
            column: self.column,
        }
    }

    /// Byte offset of the next character.
    fn offset(&self) -> usize {
        self.pos
    }

    /// Text from byte offset `from` up to the cursor.
    fn since(&self, from: usize) -> &'a str {
        &self.src[from..self.pos]
    }

    /// Error at the next character.
    pub fn error_here(&self, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            at: self.mark(),
            message: message.into(),
        }
    }

    /// Consumes characters while `pred` holds.
    fn eat_while(&mut self, pred: impl Fn(char) -> bool) {
        while self.peek().is_some_and(&pred) {
            self.bump();
        }
    }

    /// Skips spaces and tabs.
    pub fn skip_blanks(&mut self) {
        self.eat_while(is_blank);
    }

    /// Skips any whitespace including newlines.
    pub fn skip_spaces(&mut self) {
        self.eat_while(is_space);
    }

    /// Whether a comment (`#` or `//`) starts at the cursor.
    pub fn at_comment(&self) -> bool {
        match self.peek() {
            Some('#') => true,
            Some('/') => self.peek2() == Some('/'),
            _ => false,
        }
    }

    /// Skips a comment up to (not including) the end of its line.
    pub fn skip_comment(&mut self) {
        self.eat_while(|c| !is_newline(c));
    }

    /// Skips whitespace, newlines and comments: what may precede a key.
    pub fn skip_spaces_and_comments(&mut self) {
        loop {
            self.skip_spaces();
            if self.at_comment() {
                self.skip_comment();
            } else {
                return;
            }
        }
    }

    /// Whether only whitespace and comments remain.
    pub fn only_trivia_left(&self) -> bool {
        let mut probe = Cursor {
            src: self.src,
            pos: self.pos,
            line: self.line,
            column: self.column,
        };
        probe.skip_spaces_and_comments();
        probe.peek().is_none()
    }

    /// Scans an unquoted key: everything up to whitespace, `:`, `=` or end of input.
    pub fn scan_bare_key(&mut self) -> String {
        let start = self.offset();
        self.eat_while(|c| !is_space(c) && c != ':' && c != '=');
        self.since(start).to_string()
    }

    /// Scans a key quoted with `quote` (at the cursor). No escapes are processed.
    pub fn scan_quoted_key(&mut self, quote: char) -> Scan<String> {
        let open = self.mark();
        self.bump();
        let start = self.offset();
        self.eat_while(|c| c != quote);
        if self.peek().is_none() {
            return Err(self.error_here(format!(
                "Unexpected EOF processing quoted key started at line {}, column {}.",
                open.line, open.column
            )));
        }
        let key = self.since(start).to_string();
        self.bump();
        Ok(key)
    }

    /// Scans a single-quoted string (at the cursor): raw, no escapes, may span lines.
    pub fn scan_single_quoted(&mut self) -> Scan<String> {
        let open = self.mark();
        self.bump();
        let start = self.offset();
        self.eat_while(|c| c != '\'');
        if self.peek().is_none() {
            return Err(self.error_here(format!(
                "Unexpected EOF. (string started at line {}, column {} is not closed)",
                open.line, open.column
            )));
        }
        let text = self.since(start).to_string();
        self.bump();
        Ok(text)
    }

    /// Scans a double-quoted string (at the cursor), processing escapes; may span lines.
    pub fn scan_double_quoted(&mut self) -> Scan<String> {
        let open = self.mark();
        self.bump();
        let mut buf = Vec::new();
        loop {
            match self.peek() {
                None => {
                    return Err(self.error_here(format!(
                        "Unexpected EOF. (string started at line {}, column {} is not closed)",
                        open.line, open.column
                    )));
                }
                Some('"') => {
                    self.bump();
                    return bytes_to_string(buf, open);
                }
                Some('\\') => {
                    self.bump();
                    self.scan_escape(&mut buf)?;
                }
                Some(c) => {
                    self.bump();
                    push_char(&mut buf, c);
                }
            }
        }
    }

    /// Scans the escape after a backslash (already consumed) and appends its byte(s).
    fn scan_escape(&mut self, buf: &mut Vec<u8>) -> Scan<()> {
        let at = self.mark();
        let byte = match self.bump() {
            Some('t') => b'\t',
            Some('n') => b'\n',
            Some('r') => b'\r',
            Some('"') => b'"',
            Some('\\') => b'\\',
            Some('x') => {
                let hi = self.bump();
                let lo = if hi.is_some_and(is_newline) {
                    None
                } else {
                    self.bump()
                };
                if hi.is_some_and(is_newline) || lo.is_some_and(is_newline) {
                    return Err(SyntaxError {
                        at,
                        message: "Expected two hexadecimal digits after '\\x', but hit end of line"
                            .to_string(),
                    });
                }
                match (
                    hi.and_then(|c| c.to_digit(16)),
                    lo.and_then(|c| c.to_digit(16)),
                ) {
                    // Both digits are < 16, so the byte fits.
                    (Some(h), Some(l)) => ((h << 4) | l) as u8,
                    _ => {
                        let got: String = [hi, lo].iter().flatten().collect();
                        return Err(SyntaxError {
                            at,
                            message: format!(
                                "Expected two hexadecimal digits after '\\x', but got '{got}'"
                            ),
                        });
                    }
                }
            }
            other => {
                return Err(SyntaxError {
                    at,
                    message: format!(
                        "Invalid escape character '{}'. Only the following escape characters \
                         are allowed: \\xXX, \\t, \\n, \\r, \\\", \\\\.",
                        show(other)
                    ),
                });
            }
        };
        buf.push(byte);
        Ok(())
    }

    /// Scans a block string (cursor at `(`): everything up to a `)` that stands alone on
    /// its line. The text keeps its newlines, including the one before the `)`.
    pub fn scan_block(&mut self) -> Scan<String> {
        let open = self.mark();
        self.bump();
        let start = self.offset();
        let mut prev = '(';
        loop {
            let Some(c) = self.peek() else {
                return Err(self.error_here(format!(
                    "Unexpected EOF processing block. (block started at line {}, column {} \
                     needs a ')' alone on a line)",
                    open.line, open.column
                )));
            };
            if c == ')' && prev == '\n' {
                let after = &self.src[self.pos + 1..];
                if after.is_empty() || after.starts_with('\n') || after.starts_with("\r\n") {
                    let text = self.since(start).to_string();
                    self.bump();
                    return Ok(text);
                }
            }
            self.bump();
            prev = c;
        }
    }

    /// Scans an unquoted value (string, boolean or variable). `start` is where the value
    /// began and `prefix` what a number scanner already consumed of it.
    pub fn scan_unquoted(&mut self, start: Mark, prefix: &str) -> Scan<Scalar> {
        let mut buf = prefix.as_bytes().to_vec();
        let mut plain = true;
        loop {
            match self.peek() {
                None => break,
                Some(c) if is_newline(c) || is_blank(c) || matches!(c, ';' | ',' | ']' | '}') => {
                    break;
                }
                Some('\'') => {
                    // nats-server ends an unquoted value at a single quote and drops it.
                    self.bump();
                    plain = false;
                    break;
                }
                Some('\\') => {
                    self.bump();
                    self.scan_escape(&mut buf)?;
                    plain = false;
                }
                Some(c) => {
                    self.bump();
                    push_char(&mut buf, c);
                }
            }
        }
        let text = bytes_to_string(buf, start)?;
        if plain {
            match text.to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" => return Ok(Scalar::Bool(true)),
                "false" | "no" | "off" => return Ok(Scalar::Bool(false)),
                _ => {}
            }
            if let Some(name) = text.strip_prefix('$') {
                return Ok(Scalar::Var(name.to_string()));
            }
        }
        Ok(Scalar::Str(text))
    }

    /// Scans a value starting with a digit: integer (with size suffix), float, date, IP
    /// address or a string that merely starts with a digit (`2s`, `10ms`).
    ///
    /// `in_array` makes `]` end a plain integer; nats-server instead glues the `]` into a
    /// string there, which makes `[1,2]` a syntax error.
    pub fn scan_number(&mut self, in_array: bool) -> Scan<Scalar> {
        let start = self.mark();
        let from = self.offset();
        self.eat_while(|c| c.is_ascii_digit());
        match self.peek() {
            Some('-') => {
                let digits = self.offset() - from;
                if digits != 4 {
                    return Err(self.error_here("All ISO8601 dates must be in full Zulu form."));
                }
                self.bump();
                self.scan_date_rest(from)
            }
            Some('.') => {
                self.bump();
                self.scan_fraction(from)
            }
            Some(c) if is_size_suffix(c) => {
                self.bump();
                self.scan_size_suffix(start, from)
            }
            c if ends_number(c) || (in_array && c == Some(']')) => {
                Ok(Scalar::Int(self.since(from).to_string()))
            }
            None => Ok(Scalar::Int(self.since(from).to_string())),
            Some(_) => {
                // The first non-numeric character is taken as is (nats-server does not even
                // treat it as a terminator or escape), the rest is an unquoted string.
                self.bump();
                let prefix = self.since(from);
                self.scan_unquoted(start, prefix)
            }
        }
    }

    /// Scans a negative number (cursor at `-`).
    pub fn scan_negative(&mut self) -> Scan<Scalar> {
        let start = self.mark();
        let from = self.offset();
        self.bump();
        match self.peek() {
            Some(c) if c.is_ascii_digit() => {}
            Some('.') => return Err(self.error_here("Floats must start with a digit, not '.'.")),
            other => {
                return Err(self.error_here(format!("Expected a digit but got '{}'.", show(other))));
            }
        }
        self.eat_while(|c| c.is_ascii_digit());
        match self.peek() {
            Some('.') => {
                self.bump();
                self.scan_fraction(from)
            }
            Some(c) if is_size_suffix(c) => {
                self.bump();
                self.scan_size_suffix(start, from)
            }
            _ => Ok(Scalar::Int(self.since(from).to_string())),
        }
    }

    /// After `digits.`: the fraction of a float, or the rest of an IP address.
    fn scan_fraction(&mut self, from: usize) -> Scan<Scalar> {
        let next = self.peek();
        if !next.is_some_and(|c| c.is_ascii_digit()) {
            return Err(self.error_here(format!(
                "Floats must have a digit after the '.', but got '{}' instead.",
                show(next)
            )));
        }
        self.eat_while(|c| c.is_ascii_digit());
        if self.peek() == Some('.') {
            // A second dot: this is an IP address (possibly with a port or a range).
            self.eat_while(|c| c.is_ascii_digit() || matches!(c, '.' | ':' | '-'));
            return Ok(Scalar::Str(self.since(from).to_string()));
        }
        Ok(Scalar::Float(self.since(from).to_string()))
    }

    /// After `digits` and a size letter: optional `b`/`i` letters, then either the integer
    /// ends or the whole thing turns out to be a string (`2ms`, `1m30s`: nats-server 2.15.1
    /// makes these strings, although its source suggests a digit would end the integer).
    fn scan_size_suffix(&mut self, start: Mark, from: usize) -> Scan<Scalar> {
        self.eat_while(|c| matches!(c, 'b' | 'B' | 'i' | 'I'));
        if ends_number(self.peek()) {
            return Ok(Scalar::Int(self.since(from).to_string()));
        }
        let prefix = self.since(from);
        self.scan_unquoted(start, prefix)
    }

    /// After `YYYY-`: the rest of a Zulu timestamp.
    fn scan_date_rest(&mut self, from: usize) -> Scan<Scalar> {
        for expected in "00-00T00:00:00Z".chars() {
            let got = self.peek();
            if expected == '0' {
                if !got.is_some_and(|c| c.is_ascii_digit()) {
                    return Err(self.error_here(format!(
                        "Expected digit in ISO8601 datetime, but found '{}' instead.",
                        show(got)
                    )));
                }
            } else if got != Some(expected) {
                return Err(self.error_here(format!(
                    "Expected '{expected}' in ISO8601 datetime, but found '{}' instead.",
                    show(got)
                )));
            }
            self.bump();
        }
        Ok(Scalar::Date(self.since(from).to_string()))
    }
}

/// Appends a character's UTF-8 bytes.
fn push_char(buf: &mut Vec<u8>, c: char) {
    let mut tmp = [0u8; 4];
    buf.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
}

/// Turns scanned bytes into a string; `\xHH` escapes can produce invalid UTF-8, which a
/// Rust string cannot hold, so that is an error at the start of the string.
fn bytes_to_string(buf: Vec<u8>, start: Mark) -> Scan<String> {
    String::from_utf8(buf).map_err(|_| SyntaxError {
        at: start,
        message: "string is not valid UTF-8 after processing its \\x escapes".to_string(),
    })
}

/// Converts integer text with an optional size suffix: `k m g t p e` are powers of 1000,
/// `kb ki kib …` powers of 1024 (case-insensitive).
pub(crate) fn int_from_text(text: &str) -> Result<i64, String> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '-'))
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(split);
    let number: i64 = digits
        .parse()
        .map_err(|e: std::num::ParseIntError| match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                format!("integer '{text}' is out of the range")
            }
            _ => format!("expected integer, but got '{text}'"),
        })?;
    let suffix = suffix.to_ascii_lowercase();
    let multiplier: i64 = match suffix.as_str() {
        "" => 1,
        "k" => 1_000,
        "m" => 1_000_000,
        "g" => 1_000_000_000,
        "t" => 1_000_000_000_000,
        "p" => 1_000_000_000_000_000,
        "e" => 1_000_000_000_000_000_000,
        "kb" | "ki" | "kib" => 1 << 10,
        "mb" | "mi" | "mib" => 1 << 20,
        "gb" | "gi" | "gib" => 1 << 30,
        "tb" | "ti" | "tib" => 1 << 40,
        "pb" | "pi" | "pib" => 1 << 50,
        "eb" | "ei" | "eib" => 1 << 60,
        _ => {
            return Err(format!(
                "invalid size suffix '{suffix}' in '{text}' (use k, kb, ki or kib and the \
                 like for m, g, t, p, e)"
            ));
        }
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("integer '{text}' is out of the range"))
}

/// Converts float text (`digits.digits`, optionally negative).
pub(crate) fn float_from_text(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .map_err(|_| format!("expected float, but got '{text}'"))
}

/// Converts `YYYY-MM-DDTHH:MM:SSZ` (shape already checked by the scanner) to a UTC time,
/// rejecting impossible dates and times.
pub(crate) fn date_from_text(text: &str) -> Result<OffsetDateTime, String> {
    let bad = || format!("expected Zulu formatted DateTime, but got '{text}'");
    let field = |range: std::ops::Range<usize>| -> Result<u32, String> {
        text.get(range)
            .and_then(|s| s.parse::<u32>().ok())
            .ok_or_else(bad)
    };
    let year = i32::try_from(field(0..4)?).map_err(|_| bad())?;
    let month = u8::try_from(field(5..7)?).map_err(|_| bad())?;
    let day = u8::try_from(field(8..10)?).map_err(|_| bad())?;
    let hour = u8::try_from(field(11..13)?).map_err(|_| bad())?;
    let minute = u8::try_from(field(14..16)?).map_err(|_| bad())?;
    let second = u8::try_from(field(17..19)?).map_err(|_| bad())?;
    let month = Month::try_from(month).map_err(|_| bad())?;
    let date = Date::from_calendar_date(year, month, day).map_err(|_| bad())?;
    let time = Time::from_hms(hour, minute, second).map_err(|_| bad())?;
    Ok(PrimitiveDateTime::new(date, time).assume_utc())
}
