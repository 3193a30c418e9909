//! The parsed config tree.
//!
//! nats-server reports configuration mistakes at the line of the offending key, and it
//! exempts keys that were only defined to be used as `$variables` from its unknown-field
//! check. So the tree keeps, next to every value, where it came from (file, line, column)
//! and whether a key was referenced as a variable. Maps keep file order (a `Vec`, not a hash
//! map) so that later definitions win in a predictable way and errors come out in the order
//! the operator wrote the file.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use time::OffsetDateTime;

use super::error::{ConfError, ConfErrorKind, ConfWarning};

/// A position in a config file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Pos {
    /// The file, shared by all positions in it; `None` for text parsed from a string or an
    /// environment variable's value.
    pub file: Option<Arc<PathBuf>>,
    /// 1-based line number.
    pub line: u32,
    /// 1-based column, counted in characters.
    pub column: u32,
}

impl Pos {
    /// Builds an error located here, of kind [`ConfErrorKind::Type`] (the kind the options
    /// mapper wants for "this value is not acceptable").
    pub fn error(&self, message: impl Into<String>) -> ConfError {
        self.error_of(ConfErrorKind::Type, message)
    }

    /// Builds an error located here with an explicit kind.
    pub fn error_of(&self, kind: ConfErrorKind, message: impl Into<String>) -> ConfError {
        ConfError {
            file: self.file.as_deref().cloned(),
            line: self.line,
            column: self.column,
            message: message.into(),
            kind,
        }
    }

    /// Builds a warning located here.
    pub fn warning(&self, message: impl Into<String>) -> ConfWarning {
        ConfWarning {
            file: self.file.as_deref().cloned(),
            line: self.line,
            column: self.column,
            message: message.into(),
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{}:{}:{}", file.display(), self.line, self.column),
            None => write!(f, "{}:{}", self.line, self.column),
        }
    }
}

/// A config value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `{ key: value, … }` (or a whole file).
    Map(Map),
    /// `[ value, … ]`.
    Array(Vec<Spanned>),
    /// Quoted, unquoted or block (`( … )`) string.
    String(String),
    /// Integer, with any size suffix (`1k`, `2MB`, …) already applied.
    Int(i64),
    /// Decimal number with a fractional part (`0.5`).
    Float(f64),
    /// `true/false/yes/no/on/off` (any case, unquoted).
    Bool(bool),
    /// Unquoted ISO-8601 Zulu timestamp such as `2006-01-02T15:04:05Z` (always UTC).
    Date(OffsetDateTime),
}

impl Value {
    /// A short name of the value's type for error messages ("string", "integer", …).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Map(_) => "map",
            Value::Array(_) => "array",
            Value::String(_) => "string",
            Value::Int(_) => "integer",
            Value::Float(_) => "float",
            Value::Bool(_) => "boolean",
            Value::Date(_) => "date",
        }
    }

    /// The map, if this is one.
    pub fn as_map(&self) -> Option<&Map> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The elements, if this is an array.
    pub fn as_array(&self) -> Option<&[Spanned]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The text, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

/// A value together with the position it was written at.
///
/// For a value obtained through a `$variable`, the position is that of the reference.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned {
    /// The value.
    pub value: Value,
    /// Where the value starts (for maps and arrays: the opening bracket).
    pub pos: Pos,
}

impl Spanned {
    /// Builds a [`ConfErrorKind::Type`] error pointing at this value.
    pub fn error(&self, message: impl Into<String>) -> ConfError {
        self.pos.error(message)
    }

    /// Moves this value and everything nested in it to `pos`. Used for values that come
    /// from an environment variable, whose own text has no place in any file.
    pub(crate) fn relocate(&mut self, pos: &Pos) {
        self.pos = pos.clone();
        match &mut self.value {
            Value::Map(map) => {
                for entry in &mut map.entries {
                    entry.key_pos = pos.clone();
                    entry.value.relocate(pos);
                }
            }
            Value::Array(items) => {
                for item in items {
                    item.relocate(pos);
                }
            }
            _ => {}
        }
    }
}

/// One `key: value` entry of a map.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The key as written (case preserved; quotes removed).
    pub key: String,
    /// Where the key starts (for a quoted key: its opening quote).
    pub key_pos: Pos,
    /// The value.
    pub value: Spanned,
    /// Whether some later `$key` reference used this entry as a variable. The server
    /// exempts such entries from its unknown-field check.
    pub used_as_variable: bool,
}

impl Entry {
    /// Builds a [`ConfErrorKind::Type`] error pointing at this entry's key, which is where
    /// nats-server reports problems with an option.
    pub fn error(&self, message: impl Into<String>) -> ConfError {
        self.key_pos.error(message)
    }
}

/// A map in file order.
///
/// A key defined twice (same spelling) keeps only its last definition, placed at the
/// position of that last definition, as nats-server's map assignment does. Keys that differ
/// only in case are kept apart (variable references are case-sensitive), but the lookup
/// helpers compare case-insensitively, like the server's option matching; when several
/// entries match, the one defined last wins.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Map {
    /// The entries, in the order of their (last) definition.
    pub entries: Vec<Entry>,
}

impl Map {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The last entry whose key equals `key_ci` ignoring case.
    pub fn get(&self, key_ci: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .rev()
            .find(|e| keys_equal_ignore_case(&e.key, key_ci))
    }

    /// The value of [`Map::get`].
    pub fn get_value(&self, key_ci: &str) -> Option<&Spanned> {
        self.get(key_ci).map(|e| &e.value)
    }

    /// The entry whose key is exactly `key` (case-sensitive, as variable lookup is).
    pub fn get_exact(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }

    /// Mutable access to the entry whose key is exactly `key`.
    pub(crate) fn get_exact_mut(&mut self, key: &str) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.key == key)
    }

    /// Adds an entry; an existing entry with exactly the same key is replaced (and the new
    /// one goes to the end, as it is now the latest definition).
    pub fn insert(&mut self, entry: Entry) {
        self.entries.retain(|e| e.key != entry.key);
        self.entries.push(entry);
    }

    /// Iterates over the entries in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, Entry> {
        self.entries.iter()
    }

    /// Iterates over the keys in file order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.key.as_str())
    }
}

impl<'a> IntoIterator for &'a Map {
    type Item = &'a Entry;
    type IntoIter = std::slice::Iter<'a, Entry>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter()
    }
}

/// Case-insensitive key comparison matching Go's `strings.ToLower` on both sides.
pub fn keys_equal_ignore_case(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        a.to_lowercase() == b.to_lowercase()
    }
}
