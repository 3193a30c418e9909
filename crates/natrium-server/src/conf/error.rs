//! Errors and warnings produced while reading a config file.
//!
//! Operators fix configs by jumping to a line, so every error and warning carries the file,
//! line and column it is about, and renders as `file:line:col: message` exactly like
//! nats-server does. The options mapper builds its own errors through the same type (see
//! [`Pos::error`](super::Pos::error)) so that parse errors and semantic errors look alike.

use std::fmt;
use std::path::{Path, PathBuf};

use super::value::Pos;

/// What went wrong, for callers (and tests) that want to branch on the class of error
/// without matching on message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfErrorKind {
    /// The text does not follow the config grammar (bad token, missing terminator, …).
    Syntax,
    /// A file (the config itself or an included one) could not be read.
    Io,
    /// An `include` directive could not be honoured (cycle, depth limit).
    Include,
    /// A `$variable` reference could not be resolved or its environment value not parsed.
    Variable,
    /// A value has the wrong type or cannot be converted (raised by the typed helpers and
    /// by the options mapper).
    Type,
    /// Nesting of maps, arrays, includes or variable expansions is deeper than supported.
    Limit,
}

/// A config error pointing at a place in a config file.
///
/// `Display` renders `file:line:col: message` (nats-server's format). Without a file (text
/// parsed from a string) the prefix is `line:col: `; errors about a whole file (it cannot
/// be opened) have `line == 0` and render as `file: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", location_prefix(.file.as_deref(), *.line, *.column))]
pub struct ConfError {
    /// The file the error is in; `None` for text that did not come from a file.
    pub file: Option<PathBuf>,
    /// 1-based line number; 0 when the error concerns the file as a whole.
    pub line: u32,
    /// 1-based column (in characters); 0 when the error concerns the file as a whole.
    pub column: u32,
    /// Human-readable description, worded like nats-server's where one exists.
    pub message: String,
    /// Class of the error.
    pub kind: ConfErrorKind,
}

impl ConfError {
    /// An error of kind [`ConfErrorKind::Type`] at `pos` (same as [`Pos::error`]).
    pub fn at(pos: &Pos, message: impl Into<String>) -> Self {
        pos.error(message)
    }

    /// Returns the same error with `prefix` and a space put in front of the message; used
    /// to name the option, as nats-server does (`max_mem_store <reason>`).
    #[must_use]
    pub fn prefixed(mut self, prefix: &str) -> Self {
        self.message = format!("{prefix} {}", self.message);
        self
    }
}

/// A non-fatal remark about a config value (e.g. an integer used where a duration string is
/// preferred). Rendered like [`ConfError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfWarning {
    /// The file the warning is about; `None` for text that did not come from a file.
    pub file: Option<PathBuf>,
    /// 1-based line number.
    pub line: u32,
    /// 1-based column (in characters).
    pub column: u32,
    /// Human-readable description, worded like nats-server's.
    pub message: String,
}

impl fmt::Display for ConfWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}",
            location_prefix(self.file.as_deref(), self.line, self.column),
            self.message
        )
    }
}

/// Renders the `file:line:col: ` prefix shared by errors and warnings.
fn location_prefix(file: Option<&Path>, line: u32, column: u32) -> String {
    match (file, line) {
        (Some(file), 0) => format!("{}: ", file.display()),
        (Some(file), _) => format!("{}:{line}:{column}: ", file.display()),
        (None, 0) => String::new(),
        (None, _) => format!("{line}:{column}: "),
    }
}

/// Describes an I/O error the way Go's `os` package does (`no such file or directory`),
/// without Rust's ` (os error 2)` suffix, so messages read like nats-server's.
pub(crate) fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error ") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}
