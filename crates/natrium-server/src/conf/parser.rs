//! Recursive-descent parser building the [`Map`] tree, with variables and includes.
//!
//! Variables and includes are resolved while parsing, not afterwards, because their
//! meaning depends on parse order: a `$name` sees only keys defined *before* it in the
//! enclosing maps, and an included file's keys land in the map being built at the point of
//! the `include`. The parser therefore keeps a stack of the maps under construction (the
//! variable scopes, innermost last).
//!
//! Everything that could recurse without bound on hostile input — nested maps and arrays,
//! nested includes, environment values that reference further variables — goes through
//! one shared depth counter, so any input fails cleanly instead of overflowing the stack.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::{ConfError, ConfErrorKind, io_reason};
use super::lexer::{
    Cursor, Mark, Scalar, SyntaxError, date_from_text, float_from_text, int_from_text, is_newline,
    is_space, show,
};
use super::value::{Entry, Map, Pos, Spanned, Value};

/// Deepest nesting of maps, arrays, includes and variable expansions (together) accepted.
pub const MAX_DEPTH: usize = 100;

/// Deepest chain of files including each other accepted.
pub const MAX_INCLUDE_DEPTH: usize = 16;

/// Looks up an environment variable; `None` means "not set".
pub type EnvLookup<'e> = &'e dyn Fn(&str) -> Option<String>;

/// State shared by the parser of a file and the parsers it starts for included files and
/// for environment values.
pub(crate) struct Shared<'e> {
    /// Where `$NAME` looks when no enclosing map defines `NAME`.
    env: EnvLookup<'e>,
    /// Environment variables being expanded right now, to detect reference cycles.
    env_refs: Vec<String>,
    /// Files being parsed right now (outermost first), to detect include cycles.
    includes: Vec<PathBuf>,
    /// Current nesting depth (maps, arrays, includes, variable expansions).
    depth: usize,
}

impl<'e> Shared<'e> {
    /// Fresh state using `env` for environment lookups.
    pub fn new(env: EnvLookup<'e>) -> Self {
        Self {
            env,
            env_refs: Vec::new(),
            includes: Vec::new(),
            depth: 0,
        }
    }

    /// Records that `path` is being parsed (for cycle detection).
    pub fn enter_file(&mut self, path: &Path) {
        self.includes.push(canonical(path));
    }
}

/// Where an entry is being parsed; the grammar differs slightly between the two.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    /// Top level of a document (also inside the optional outer `{ }`): a newline right
    /// after `key:` is an error and a key without a value is "config is invalid".
    Top,
    /// Inside `key { … }`: newlines may separate key and value.
    Map,
}

/// Parser for one document (a file, a string, or an environment value).
pub(crate) struct Parser<'src, 'sh, 'e> {
    /// Scanning position.
    cur: Cursor<'src>,
    /// File being parsed, attached to every position.
    file: Option<Arc<PathBuf>>,
    /// Directory that relative includes are resolved against; `None` means the current
    /// working directory.
    base_dir: Option<PathBuf>,
    /// State shared with nested parsers.
    shared: &'sh mut Shared<'e>,
    /// Maps under construction, outermost first; they are the variable scopes.
    scopes: Vec<Map>,
}

impl<'src, 'sh, 'e> Parser<'src, 'sh, 'e> {
    /// A parser for `src`, which came from `file` (if any); includes are resolved against
    /// `base_dir` (the current directory if `None`).
    pub fn new(
        src: &'src str,
        file: Option<Arc<PathBuf>>,
        base_dir: Option<PathBuf>,
        shared: &'sh mut Shared<'e>,
    ) -> Self {
        let mut cur = Cursor::new(src);
        // A byte-order mark is not part of the first key.
        if cur.peek() == Some('\u{feff}') {
            cur.bump();
        }
        Self {
            cur,
            file,
            base_dir,
            shared,
            scopes: Vec::new(),
        }
    }

    /// Position of `at` in this document.
    fn pos(&self, at: Mark) -> Pos {
        Pos {
            file: self.file.clone(),
            line: at.line,
            column: at.column,
        }
    }

    /// Error of `kind` at `at`.
    fn error(&self, at: Mark, kind: ConfErrorKind, message: impl Into<String>) -> ConfError {
        self.pos(at).error_of(kind, message)
    }

    /// Syntax error at `at`.
    fn syntax(&self, at: Mark, message: impl Into<String>) -> ConfError {
        self.error(at, ConfErrorKind::Syntax, message)
    }

    /// Syntax error at the next character.
    fn syntax_here(&self, message: impl Into<String>) -> ConfError {
        self.syntax(self.cur.mark(), message)
    }

    /// Attaches the file to a scanner error.
    fn scan_error(&self, e: SyntaxError) -> ConfError {
        self.syntax(e.at, e.message)
    }

    /// Runs `f` one nesting level deeper, failing if that is too deep.
    fn nested<T>(
        &mut self,
        at: Mark,
        what: &str,
        f: impl FnOnce(&mut Self) -> Result<T, ConfError>,
    ) -> Result<T, ConfError> {
        if self.shared.depth >= MAX_DEPTH {
            return Err(self.error(
                at,
                ConfErrorKind::Limit,
                format!("{what} nested too deeply (the limit is {MAX_DEPTH} levels)"),
            ));
        }
        self.shared.depth += 1;
        let result = f(self);
        self.shared.depth -= 1;
        result
    }

    /// Parses the whole document into a map.
    pub fn parse_document(mut self) -> Result<Map, ConfError> {
        self.scopes.push(Map::new());
        let result = self.parse_top_entries();
        let map = self.scopes.pop().unwrap_or_default();
        result.map(|()| map)
    }

    /// The top-level loop: entries, optionally wrapped in (possibly nested) braces.
    fn parse_top_entries(&mut self) -> Result<(), ConfError> {
        let mut braces = 0usize;
        loop {
            self.cur.skip_spaces_and_comments();
            let at = self.cur.mark();
            match self.cur.peek() {
                None => return Ok(()),
                Some('{') => {
                    if braces >= MAX_DEPTH {
                        return Err(self.error(
                            at,
                            ConfErrorKind::Limit,
                            "too many nested outer braces",
                        ));
                    }
                    self.cur.bump();
                    braces += 1;
                    continue;
                }
                Some('}') => {
                    self.cur.bump();
                    if braces > 0 {
                        braces -= 1;
                        continue;
                    }
                    // nats-server tolerates a stray closing brace at the very end.
                    if self.cur.only_trivia_left() {
                        return Ok(());
                    }
                    return Err(self.syntax(at, "Unexpected '}' without a matching '{'."));
                }
                Some(c @ (':' | '=')) => {
                    return Err(self.syntax(at, format!("Unexpected key separator '{c}'.")));
                }
                Some(c @ (',' | ';')) => {
                    return Err(
                        self.syntax(at, format!("Unexpected '{c}' where a key was expected."))
                    );
                }
                Some('/') => {
                    return Err(
                        self.syntax(at, "Unexpected '/' (comments start with '//' or '#').")
                    );
                }
                Some(_) => {}
            }
            self.parse_entry(Context::Top)?;
            self.top_value_end(&mut braces)?;
        }
    }

    /// After a top-level entry: blanks, then a comment, newline, `;`, `,`, `}` or the end.
    fn top_value_end(&mut self, braces: &mut usize) -> Result<(), ConfError> {
        self.cur.skip_blanks();
        if self.cur.at_comment() {
            self.cur.skip_comment();
            return Ok(());
        }
        match self.cur.peek() {
            None => Ok(()),
            Some(c) if is_newline(c) || c == ';' || c == ',' => {
                self.cur.bump();
                Ok(())
            }
            Some('}') => {
                // Closes the outer braces; without any, nats-server takes it as a separator.
                self.cur.bump();
                *braces = braces.saturating_sub(1);
                Ok(())
            }
            Some(c) => Err(self.syntax_here(format!(
                "Expected a top-level value to end with a new line, comment or EOF, but got \
                 '{}' instead.",
                show(Some(c))
            ))),
        }
    }

    /// Parses `key [:|=] value` or `include path` into the innermost scope.
    fn parse_entry(&mut self, ctx: Context) -> Result<(), ConfError> {
        let key_at = self.cur.mark();
        let (key, quoted) = match self.cur.peek() {
            Some(q @ ('"' | '\'')) => (
                self.cur
                    .scan_quoted_key(q)
                    .map_err(|e| self.scan_error(e))?,
                true,
            ),
            _ => (self.cur.scan_bare_key(), false),
        };
        if !quoted && key.eq_ignore_ascii_case("include") && self.cur.peek().is_some_and(is_space) {
            return self.parse_include(key_at);
        }

        self.cur.skip_spaces();
        let mut separated = false;
        match self.cur.peek() {
            None => {
                return Err(match ctx {
                    Context::Top => self.syntax(
                        key_at,
                        format!("config is invalid: key '{key}' has no value"),
                    ),
                    Context::Map => self.syntax_here("Unexpected EOF processing map."),
                });
            }
            Some(':' | '=') => {
                self.cur.bump();
                separated = true;
            }
            Some(_) => {}
        }
        match ctx {
            Context::Top => {
                if separated {
                    self.cur.skip_blanks();
                    if self.cur.peek().is_some_and(is_newline) {
                        return Err(self.syntax_here("Expected value but found new line"));
                    }
                }
            }
            Context::Map => {
                self.cur.skip_spaces();
                match self.cur.peek() {
                    None => return Err(self.syntax_here("Unexpected EOF processing map.")),
                    Some(',') => {
                        return Err(self.syntax_here("Unexpected map value terminator ','."));
                    }
                    Some('}') => {
                        return Err(self.syntax_here(format!(
                            "Expected a value for key '{key}' but found '}}'."
                        )));
                    }
                    Some(_) => {}
                }
            }
        }

        let value = self.parse_value(false)?;
        let key_pos = self.pos(key_at);
        self.current_scope().insert(Entry {
            key,
            key_pos,
            value,
            used_as_variable: false,
        });
        Ok(())
    }

    /// The innermost map under construction.
    fn current_scope(&mut self) -> &mut Map {
        if self.scopes.is_empty() {
            self.scopes.push(Map::new());
        }
        let last = self.scopes.len() - 1;
        &mut self.scopes[last]
    }

    /// Parses one value at the cursor (blanks before it are skipped).
    fn parse_value(&mut self, in_array: bool) -> Result<Spanned, ConfError> {
        self.cur.skip_blanks();
        let at = self.cur.mark();
        let scalar = match self.cur.peek() {
            Some('[') => {
                let value = self.nested(at, "arrays and maps", Self::parse_array)?;
                return Ok(Spanned {
                    value,
                    pos: self.pos(at),
                });
            }
            Some('{') => {
                let value = self.nested(at, "arrays and maps", Self::parse_map)?;
                return Ok(Spanned {
                    value,
                    pos: self.pos(at),
                });
            }
            Some('\'') => self.cur.scan_single_quoted().map(Scalar::Str),
            Some('"') => self.cur.scan_double_quoted().map(Scalar::Str),
            Some('(') => self.cur.scan_block().map(Scalar::Str),
            Some('-') => self.cur.scan_negative(),
            Some(c) if c.is_ascii_digit() => self.cur.scan_number(in_array),
            Some('.') => return Err(self.syntax(at, "Floats must start with a digit")),
            Some(c) if is_newline(c) => {
                return Err(self.syntax(at, "Expected value but found new line"));
            }
            _ => self.cur.scan_unquoted(at, ""),
        }
        .map_err(|e| self.scan_error(e))?;

        let value = match scalar {
            Scalar::Str(s) => Value::String(s),
            Scalar::Bool(b) => Value::Bool(b),
            Scalar::Int(text) => Value::Int(int_from_text(&text).map_err(|m| self.syntax(at, m))?),
            Scalar::Float(text) => {
                Value::Float(float_from_text(&text).map_err(|m| self.syntax(at, m))?)
            }
            Scalar::Date(text) => {
                Value::Date(date_from_text(&text).map_err(|m| self.syntax(at, m))?)
            }
            Scalar::Var(name) => return self.resolve_variable(&name, at),
        };
        Ok(Spanned {
            value,
            pos: self.pos(at),
        })
    }

    /// Parses `[ … ]` (cursor at `[`).
    fn parse_array(&mut self) -> Result<Value, ConfError> {
        self.cur.bump();
        let mut items = Vec::new();
        loop {
            self.cur.skip_spaces_and_comments();
            match self.cur.peek() {
                None => return Err(self.syntax_here("Unexpected EOF processing array.")),
                Some(',') => return Err(self.syntax_here("Unexpected array value terminator ','.")),
                Some(']') => {
                    self.cur.bump();
                    return Ok(Value::Array(items));
                }
                Some(_) => {}
            }
            items.push(self.parse_value(true)?);

            self.cur.skip_blanks();
            if self.cur.at_comment() {
                self.cur.skip_comment();
            }
            match self.cur.peek() {
                Some(c) if c == ',' || is_newline(c) => {
                    self.cur.bump();
                }
                Some(']') => {
                    self.cur.bump();
                    return Ok(Value::Array(items));
                }
                None => return Err(self.syntax_here("Unexpected EOF processing array.")),
                Some(c) => {
                    return Err(self.syntax_here(format!(
                        "Expected an array value terminator ',' or an array terminator ']', \
                         but got '{}' instead.",
                        show(Some(c))
                    )));
                }
            }
        }
    }

    /// Parses `{ … }` (cursor at `{`), with the new map as the innermost variable scope.
    fn parse_map(&mut self) -> Result<Value, ConfError> {
        self.cur.bump();
        self.scopes.push(Map::new());
        let result = self.parse_map_entries();
        let map = self.scopes.pop().unwrap_or_default();
        result.map(|()| Value::Map(map))
    }

    /// The entries of a map up to and including its `}`.
    fn parse_map_entries(&mut self) -> Result<(), ConfError> {
        loop {
            self.cur.skip_spaces_and_comments();
            match self.cur.peek() {
                None => return Err(self.syntax_here("Unexpected EOF processing map.")),
                Some('}') => {
                    self.cur.bump();
                    return Ok(());
                }
                Some(']') => {
                    return Err(self.syntax_here("Unexpected array end ']' processing map."));
                }
                Some(c @ (':' | '=')) => {
                    return Err(self.syntax_here(format!("Unexpected key separator '{c}'.")));
                }
                Some(c @ (',' | ';')) => {
                    return Err(
                        self.syntax_here(format!("Unexpected '{c}' where a key was expected."))
                    );
                }
                Some(_) => {}
            }
            self.parse_entry(Context::Map)?;

            self.cur.skip_blanks();
            if self.cur.at_comment() {
                self.cur.skip_comment();
            }
            match self.cur.peek() {
                Some(c) if c == ',' || c == ';' || is_newline(c) => {
                    self.cur.bump();
                }
                Some('}') => {
                    self.cur.bump();
                    return Ok(());
                }
                None => return Err(self.syntax_here("Unexpected EOF processing map.")),
                Some(c) => {
                    return Err(self.syntax_here(format!(
                        "Expected a map value terminator ',' or a map terminator '}}', but got \
                         '{}' instead.",
                        show(Some(c))
                    )));
                }
            }
        }
    }

    /// Parses the path after `include` (cursor after the keyword) and merges that file's
    /// entries into the innermost scope.
    fn parse_include(&mut self, at: Mark) -> Result<(), ConfError> {
        self.cur.skip_blanks();
        let path = match self.cur.peek() {
            Some(q @ ('"' | '\'')) => {
                self.cur.bump();
                let mut path = String::new();
                loop {
                    match self.cur.bump() {
                        Some(c) if c == q => break,
                        Some(c) => path.push(c),
                        None => {
                            let what = if q == '"' { "double quoted" } else { "quoted" };
                            return Err(
                                self.syntax_here(format!("Unexpected EOF in {what} include"))
                            );
                        }
                    }
                }
                path
            }
            other => {
                let found = match other {
                    None => Some("end of file"),
                    Some('[') => Some("start of an array"),
                    Some('{') => Some("start of a map"),
                    Some('(') => Some("start of a block"),
                    Some('\\') => Some("escape sequence"),
                    Some(c) if c.is_ascii_digit() || c == '-' => Some("start of a number"),
                    Some(c) if is_newline(c) => Some("new line"),
                    Some(_) => None,
                };
                if let Some(found) = found {
                    return Err(
                        self.syntax_here(format!("Expected include value but found {found}"))
                    );
                }
                let mut path = String::new();
                while let Some(c) = self.cur.peek() {
                    if is_newline(c) || c == ' ' || c == '\t' || c == ';' || c == '}' {
                        break;
                    }
                    self.cur.bump();
                    if c == '\'' {
                        break;
                    }
                    path.push(c);
                }
                path
            }
        };
        self.include_file(&path, at)
    }

    /// Parses the file `rel` (relative to this document's directory) and merges it.
    fn include_file(&mut self, rel: &str, at: Mark) -> Result<(), ConfError> {
        let path = match &self.base_dir {
            Some(dir) => dir.join(rel),
            None => PathBuf::from(rel),
        };
        let include_error = |p: &Self, kind, detail: String| {
            p.error(
                at,
                kind,
                format!("error parsing include file '{rel}', {detail}"),
            )
        };
        if self.shared.includes.len() > MAX_INCLUDE_DEPTH {
            return Err(include_error(
                self,
                ConfErrorKind::Include,
                format!("includes are nested more than {MAX_INCLUDE_DEPTH} levels deep"),
            ));
        }
        let canon = canonical(&path);
        if self.shared.includes.contains(&canon) {
            return Err(include_error(
                self,
                ConfErrorKind::Include,
                format!("include cycle: {} is already being parsed", path.display()),
            ));
        }
        let bytes = super::read_config_file(&path).map_err(|e| {
            include_error(
                self,
                ConfErrorKind::Io,
                format!("open {}: {}", path.display(), io_reason(&e)),
            )
        })?;
        let text = String::from_utf8_lossy(&bytes);
        let base_dir = path.parent().map(Path::to_path_buf);
        let file = Some(Arc::new(path));

        self.shared.includes.push(canon);
        let included = self.nested(at, "includes", |p| {
            Parser::new(&text, file, base_dir, p.shared).parse_document()
        });
        self.shared.includes.pop();

        let scope = self.current_scope();
        for entry in included?.entries {
            scope.insert(entry);
        }
        Ok(())
    }

    /// Resolves `$name` found at `at`: a bcrypt hash, then the enclosing maps (innermost
    /// first, exact spelling), then the environment.
    fn resolve_variable(&mut self, name: &str, at: Mark) -> Result<Spanned, ConfError> {
        let pos = self.pos(at);
        // Unquoted bcrypt hashes (`$2a$11$…`) look like variables; nats-server special-cases
        // exactly this prefix.
        if name.starts_with("2a$") {
            return Ok(Spanned {
                value: Value::String(format!("${name}")),
                pos,
            });
        }
        for scope in self.scopes.iter_mut().rev() {
            if let Some(entry) = scope.get_exact_mut(name) {
                entry.used_as_variable = true;
                return Ok(Spanned {
                    value: entry.value.value.clone(),
                    pos,
                });
            }
        }

        let line = at.line;
        let unparsable = |p: &Self, reason: &str| {
            p.error(
                at,
                ConfErrorKind::Variable,
                format!(
                    "variable reference for '{name}' on line {line} could not be parsed: {reason}"
                ),
            )
        };
        let not_found = |p: &Self| {
            p.error(
                at,
                ConfErrorKind::Variable,
                format!("variable reference for '{name}' on line {line} can not be found"),
            )
        };
        if self.shared.env_refs.iter().any(|r| r == name) {
            return Err(unparsable(
                self,
                &format!("variable reference cycle for '{name}'"),
            ));
        }
        let raw = if name.is_empty() || name.contains(['=', '\0']) {
            None
        } else {
            (self.shared.env)(name)
        };
        let Some(raw) = raw else {
            return Err(not_found(self));
        };

        // nats-server parses the value as the document `pk=<value>`, so an environment
        // value is typed like any config value (`12MB` is an integer).
        let text = format!("pk={raw}");
        self.shared.env_refs.push(name.to_string());
        let parsed = self.nested(at, "variable expansions", |p| {
            Parser::new(&text, None, None, p.shared).parse_document()
        });
        self.shared.env_refs.pop();
        match parsed {
            Err(e) if e.kind == ConfErrorKind::Limit => Err(e),
            Err(e) => Err(unparsable(self, &e.message)),
            Ok(map) => match map.get_exact("pk") {
                Some(entry) => {
                    let mut value = entry.value.clone();
                    value.relocate(&pos);
                    Ok(value)
                }
                None => Err(not_found(self)),
            },
        }
    }
}

/// The canonical form of `path` for cycle detection, or `path` itself when it does not
/// exist (the read that follows will report that).
fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}
